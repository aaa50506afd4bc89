/*
 * policy.h - the permission table of ARCHITECTURE section 3, and the object
 * ownership rules. Every permission decision in Nimbus is one of these two
 * calls; no call site tests a role itself.
 */
#ifndef NIMBUS_POLICY_H
#define NIMBUS_POLICY_H

#include <stdbool.h>

#include "hsm/hsm.h"

/* Rows of the permission table. */
typedef enum {
    HSM_OP_BASIC_INFO = 0,  /* token info, user list, mechanism list */
    HSM_OP_CHANGE_OWN_PW,   /* C_SetPIN on oneself */
    HSM_OP_CHANGE_ANY_PW,   /* C_InitPIN on an existing user, changePswd */
    HSM_OP_MANAGE_USERS,    /* create, delete users */
    HSM_OP_SYNC_STATUS,     /* key set digests, cluster nodes and digest */
    HSM_OP_MASKED_OBJECTS,  /* extract, insert masked objects */
    HSM_OP_KEY_MANAGEMENT,  /* create, copy, destroy, set, wrap, unwrap */
    HSM_OP_OBJECT_READ,     /* find objects, read attributes (ours) */
    HSM_OP_ENCRYPT_DECRYPT, /* encrypt, decrypt */
    HSM_OP_SIGN_VERIFY,     /* sign, verify */
    HSM_OP_DIGEST_HMAC,     /* digests and HMACs */
    HSM_OP_RANDOM,          /* C_GenerateRandom (ours) */
    HSM_OP_TRUST_KEYS,      /* set CKA_TRUSTED: the SO only (footnote 10) */
    HSM_OP_QUORUM,          /* quorum keys, M values, tokens, approvals */
    HSM_OP_CLUSTER_ADMIN,   /* add, remove nodes, transfer leadership */
    HSM_OP_BACKUP,          /* a cluster's state to a backup file */
    HSM_OP_RESTORE,         /* a backup file into an empty cluster */
    HSM_OP_COUNT
} hsm_op_t;

/* The settings of nimbus.conf that change cells of the table. */
typedef struct {
    /* public_objects = visible: a public session finds and reads public
     * token objects and draws random numbers */
    bool public_objects;
} hsm_policy_conf_t;

/*
 * CKR_OK when a user of this type may do op under conf; otherwise the
 * return code that says why (CKR_USER_NOT_LOGGED_IN, or CKR_PIN_EXPIRED
 * for PRECO, whose only allowed act is to change its password).
 */
CK_RV hsm_policy_check_in(const hsm_policy_conf_t *conf, hsm_user_type_t type,
                          hsm_op_t op);

/* The same under the strictest settings (public objects hidden): for the
 * operations whose cells no setting changes. */
CK_RV hsm_policy_check(hsm_user_type_t type, hsm_op_t op);
/* The verdict on op for the user logged in on conn, its login checked
 * first as every core call checks it (users.c): a login whose user was
 * deleted, changed or replaced by a restore ends here and is refused,
 * never judged by the role it had. For the daemon's own calls. */
CK_RV hsm_conn_policy_check(hsm_conn_t *conn, hsm_op_t op);
const char *hsm_policy_op_name(hsm_op_t op);

/*
 * Listing a user's key set (ids, owner, shared users; never values: the
 * shell's findAllKeys): the table's sync-status row, and a CU lists only
 * its own set. CKR_OK or the refusal's code.
 */
CK_RV hsm_policy_key_listing(hsm_user_type_t type, hsm_uid_t uid,
                             hsm_uid_t target);

/* What a user wants to do with an object. */
typedef enum {
    HSM_ACCESS_SEE = 0, /* find it, read its attributes */
    HSM_ACCESS_USE,     /* use it in a crypto operation */
    HSM_ACCESS_OWN,     /* modify, destroy, wrap, derive from, share */
} hsm_access_t;

/* Who an object belongs to, as the policy needs it. */
typedef struct {
    hsm_uid_t owner;
    bool is_private;       /* CKA_PRIVATE */
    bool is_public_item;   /* a public key or a certificate */
    bool is_data;          /* CKO_DATA */
    bool is_token;         /* CKA_TOKEN: in the store, not in a session */
    bool shared_with_user; /* the asking user is in the shared list */
} hsm_object_meta_t;

/*
 * CKR_OK, or CKR_OBJECT_HANDLE_INVALID (may not see it) or
 * CKR_ACTION_PROHIBITED (sees it, may not do this).
 */
CK_RV hsm_policy_object(const hsm_policy_conf_t *conf, hsm_user_type_t type,
                        hsm_uid_t uid, const hsm_object_meta_t *obj,
                        hsm_access_t access);

#endif
