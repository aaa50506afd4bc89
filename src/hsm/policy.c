/*
 * policy.c - the permission table (ARCHITECTURE section 3) and the
 * ownership rules. The table is the policy: one cell per (operation, user
 * type), holding the return code of a refusal or CKR_OK.
 */
#include "config.h"

#include "common/log.h"
#include "common/util.h"
#include "hsm/policy.h"

#define OK CKR_OK
#define NLI CKR_USER_NOT_LOGGED_IN
#define EXP CKR_PIN_EXPIRED
/* Not a return code: CKR_OK when public objects are visible (the default,
 * config public_objects), else CKR_USER_NOT_LOGGED_IN. */
#define PUB ((CK_RV)~0UL)

/* Columns: unauthenticated, PRECO, CO, CU, AU (hsm_user_type_t order). */
static const struct {
    const char *name;
    CK_RV cell[5];
} policy_table[HSM_OP_COUNT] = {
    /*                                   none  PRECO  CO   CU   AU */
    [HSM_OP_BASIC_INFO] = {"basic info", {OK, OK, OK, OK, OK}},
    [HSM_OP_CHANGE_OWN_PW] = {"change own password", {NLI, OK, OK, OK, OK}},
    [HSM_OP_CHANGE_ANY_PW] = {"change any password", {NLI, NLI, OK, NLI, NLI}},
    [HSM_OP_MANAGE_USERS] = {"add, remove users", {NLI, NLI, OK, NLI, NLI}},
    [HSM_OP_SYNC_STATUS] = {"sync status", {NLI, EXP, OK, OK, OK}},
    [HSM_OP_MASKED_OBJECTS] = {"masked objects", {NLI, EXP, OK, OK, OK}},
    [HSM_OP_KEY_MANAGEMENT] = {"key management", {NLI, EXP, NLI, OK, NLI}},
    /* A public session reads public objects only (hsm_policy_object). */
    [HSM_OP_OBJECT_READ] = {"read objects", {PUB, EXP, NLI, OK, NLI}},
    [HSM_OP_ENCRYPT_DECRYPT] = {"encrypt, decrypt", {NLI, EXP, NLI, OK, NLI}},
    [HSM_OP_SIGN_VERIFY] = {"sign, verify", {NLI, EXP, NLI, OK, NLI}},
    [HSM_OP_DIGEST_HMAC] = {"digests and HMACs", {NLI, EXP, NLI, OK, NLI}},
    [HSM_OP_RANDOM] = {"random", {PUB, NLI, OK, OK, OK}},
    /* PKCS#11 lets only the SO set CKA_TRUSTED; the cloud HSM's CO does it
     * from its management shell. It is no key use: the CO never sees the
     * key's value, only marks it as trusted for CKA_WRAP_WITH_TRUSTED. */
    [HSM_OP_TRUST_KEYS] = {"mark keys trusted", {NLI, NLI, OK, NLI, NLI}},
    /* Quorum (M of N) approval guards user management: the COs' affair
     * (registerQuorumPubKey, setMValue, getMValue, getToken, approveToken,
     * listTokens, delToken). */
    [HSM_OP_QUORUM] = {"quorum approval", {NLI, NLI, OK, NLI, NLI}},
    /* Cluster membership (addNode, removeNode, transferLeader) is
     * operating the HSM, as user management is: the COs' affair. The
     * node list and digests are sync status. */
    [HSM_OP_CLUSTER_ADMIN] = {"cluster membership", {NLI, NLI, OK, NLI, NLI}},
    /* Backing up and restoring the cluster's state is operating the HSM
     * too (ARCHITECTURE section 11): the COs'. A backup holds every user
     * and key (sealed): the AU, who syncs single masked objects, and the
     * CUs, who own keys, neither take nor replace it. */
    [HSM_OP_BACKUP] = {"cluster backup", {NLI, NLI, OK, NLI, NLI}},
    [HSM_OP_RESTORE] = {"cluster restore", {NLI, NLI, OK, NLI, NLI}},
};

CK_RV hsm_policy_check_in(const hsm_policy_conf_t *conf, hsm_user_type_t type,
                          hsm_op_t op)
{
    CK_RV cell;

    return_val_if_fail(conf != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail((unsigned)op < HSM_OP_COUNT, CKR_GENERAL_ERROR);
    return_val_if_fail((unsigned)type <= HSM_USER_AU, CKR_GENERAL_ERROR);
    cell = policy_table[op].cell[type];
    if (cell == PUB)
        return conf->public_objects ? CKR_OK : NLI;
    return cell;
}

CK_RV hsm_policy_check(hsm_user_type_t type, hsm_op_t op)
{
    static const hsm_policy_conf_t strict = {.public_objects = false};

    return hsm_policy_check_in(&strict, type, op);
}

const char *hsm_policy_op_name(hsm_op_t op)
{
    if ((unsigned)op >= HSM_OP_COUNT)
        return "?";
    return policy_table[op].name;
}

CK_RV hsm_policy_key_listing(hsm_user_type_t type, hsm_uid_t uid,
                             hsm_uid_t target)
{
    CK_RV rv = hsm_policy_check(type, HSM_OP_SYNC_STATUS);

    if (rv == CKR_OK && type == HSM_USER_CU && target != uid)
        rv = CKR_ACTION_PROHIBITED; /* a CU lists its own key set only */
    return rv;
}

/*
 * Ownership: the CU that created an object owns it. A CU sees what it owns,
 * what is shared with it, and every CU's public keys and certificates that
 * are not CKA_PRIVATE. Only the owner may change, destroy, wrap, derive
 * from or share it; users it is shared with may only use it; public keys
 * and certificates are usable by every CU.
 *
 * A public session (unless conf hides them) sees every CU's token
 * certificates, public keys and data objects that are not CKA_PRIVATE, and
 * may only read them. Nobody else (PRECO, CO, AU) sees any object.
 */
CK_RV hsm_policy_object(const hsm_policy_conf_t *conf, hsm_user_type_t type,
                        hsm_uid_t uid, const hsm_object_meta_t *obj,
                        hsm_access_t access)
{
    bool owner, visible;

    return_val_if_fail(conf != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(obj != NULL, CKR_GENERAL_ERROR);
    if (type == HSM_USER_NONE) {
        visible = conf->public_objects && obj->is_token && !obj->is_private &&
                  (obj->is_public_item || obj->is_data);
        if (!visible)
            return CKR_OBJECT_HANDLE_INVALID;
        return access == HSM_ACCESS_SEE ? CKR_OK : CKR_ACTION_PROHIBITED;
    }
    if (type != HSM_USER_CU)
        return CKR_OBJECT_HANDLE_INVALID;
    owner = obj->owner == uid;
    /* What a public session reads (CKA_PRIVATE false: certificates,
     * public keys, data objects), a login never hides. */
    visible = owner || obj->shared_with_user ||
              ((obj->is_public_item || obj->is_data) && !obj->is_private);
    if (!visible)
        return CKR_OBJECT_HANDLE_INVALID;
    switch (access) {
    case HSM_ACCESS_SEE:
    case HSM_ACCESS_USE:
        return CKR_OK;
    case HSM_ACCESS_OWN:
        return owner ? CKR_OK : CKR_ACTION_PROHIBITED;
    }
    return CKR_GENERAL_ERROR;
}
