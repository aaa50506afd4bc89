/* internal.h - core structures shared by core.c, users.c and object.c.
 * Nothing outside src/hsm/ includes this. */
#ifndef NIMBUS_HSM_INTERNAL_H
#define NIMBUS_HSM_INTERNAL_H

#include <pthread.h>

#include "hsm/attrs.h"
#include "hsm/crypto/crypto.h"
#include "hsm/hsm.h"
#include "hsm/policy.h"
#include "store/store.h"

/* Session object ids have the top bit set: never a store id. */
#define HSM_SESSION_OID_BIT (UINT64_C(1) << 63)

struct hsm {
    struct config cfg;
    store_t *st;
    uint8_t mkey[CRYPTO_MASTER_KEY_LEN];
    /* Serializes every use of st and of the connections' state. */
    pthread_mutex_t lock;
    hsm_conn_t *conns; /* list, for reinit checks */
};

/* An object that lives in one session (CKA_TOKEN FALSE). */
struct hsm_sobj {
    hsm_oid_t id;
    hsm_sid_t sid;
    hsm_uid_t owner;
    attr_list_t attrs;
    struct hsm_sobj *next;
};

struct hsm_session {
    hsm_sid_t id;
    bool rw;
    bool used;
};

struct hsm_conn {
    hsm_t *hsm;
    hsm_user_type_t type;
    hsm_uid_t uid;
    struct hsm_session *sessions;
    size_t nsessions;
    hsm_sid_t next_sid;
    struct hsm_sobj *sobjs;
    uint64_t next_soid;
    hsm_conn_t *next;
};

/* A token or session object loaded for a call. */
struct hsm_obj {
    hsm_oid_t id;
    bool token;
    hsm_uid_t owner;
    attr_list_t attrs;     /* clear values */
    struct hsm_sobj *sobj; /* session object, else NULL */
};

/* core.c */
struct hsm_session *hsm_session_find_locked(hsm_conn_t *conn, hsm_sid_t sid);
CK_RV hsm_meta_get_str_locked(hsm_t *hsm, const char *key, char *buf,
                              size_t buflen);
/* object.c */
void hsm_sobjs_destroy_locked(hsm_conn_t *conn, hsm_sid_t sid,
                              bool private_only);
/* users.c */
CK_RV hsm_store_init_locked(hsm_t *hsm);

#endif
