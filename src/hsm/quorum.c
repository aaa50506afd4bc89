/*
 * quorum.c - quorum (M of N) approval of user management, and the store of
 * the approvers' keys that two-factor login shares (ARCHITECTURE section
 * 12, hsm.h "quorum").
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/internal.h"

uint64_t (*hsm_quorum_clock_hook)(void);

/* ------------------------------------------------ keys (tfa shares them) */

CK_RV hsm_user_qkey_get_locked(hsm_t *hsm, hsm_uid_t uid, uint8_t **der,
                               size_t *len, bool *twofa, bool *found)
{
    return store_user_mofn_get(hsm->st, uid, der, len, twofa, found);
}

CK_RV hsm_user_qkey_set_locked(hsm_t *hsm, hsm_uid_t uid, const uint8_t *der,
                               size_t len, bool twofa)
{
    bool own = !store_in_tx(hsm->st);
    CK_RV rv;

    if ((der == NULL) != (len == 0) || len > STORE_QUORUM_KEY_MAX)
        return CKR_ARGUMENTS_BAD;
    if (own && (rv = store_begin(hsm->st, true)) != CKR_OK)
        return rv;
    rv = store_user_mofn_set(hsm->st, uid, der, len, twofa);
    if (rv == CKR_FUNCTION_FAILED)
        rv = CKR_ARGUMENTS_BAD; /* no such user */
    if (rv == CKR_OK && own)
        rv = store_bump_generation(hsm->st);
    if (own) {
        if (rv == CKR_OK)
            rv = store_commit(hsm->st);
        else
            store_rollback(hsm->st);
    }
    return rv;
}

/* ------------------------------------------------------------- logins */

CK_RV hsm_quorum_login_begin_locked(hsm_conn_t *conn)
{
    return crypto_random(conn->login_id, sizeof(conn->login_id));
}

void hsm_quorum_login_end_locked(hsm_conn_t *conn)
{
    static const uint8_t zero[STORE_LOGIN_ID_LEN];
    hsm_t *hsm = conn->hsm;

    if (memcmp(conn->login_id, zero, sizeof(zero)) == 0)
        return;
    /* Inside another change's transaction the delete would share its fate:
     * left then, the tokens are dead anyway (no login carries their id)
     * and go with the next purge or their expiry. */
    if (!store_in_tx(hsm->st) &&
        store_qtoken_delete_login(hsm->st, conn->login_id) != CKR_OK)
        log_warn("quorum: the tokens of an ended login stay until expiry");
    util_wipe(conn->login_id, sizeof(conn->login_id));
}

/* ------------------------------------------------------------- calls */

CK_RV hsm_quorum_register_key(hsm_conn_t *conn, const char *name,
                              const uint8_t *reg_token, size_t token_len,
                              const uint8_t *sig, size_t sig_len,
                              const uint8_t *pubkey, size_t pubkey_len)
{
    (void)conn, (void)name, (void)reg_token, (void)token_len, (void)sig;
    (void)sig_len, (void)pubkey, (void)pubkey_len;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV hsm_quorum_set_m(hsm_conn_t *conn, unsigned service, unsigned m)
{
    (void)conn, (void)service, (void)m;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV hsm_quorum_get_m(hsm_conn_t *conn, unsigned service, unsigned *m)
{
    (void)conn, (void)service, (void)m;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV hsm_quorum_get_token(hsm_conn_t *conn, unsigned service, const char *name,
                           uint8_t *token, size_t *len)
{
    (void)conn, (void)service, (void)name, (void)token, (void)len;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV hsm_quorum_approve(hsm_conn_t *conn, const uint8_t *token,
                         size_t token_len, const hsm_quorum_approval_t *a,
                         size_t n, CK_RV *results)
{
    (void)conn, (void)token, (void)token_len, (void)a, (void)n, (void)results;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV hsm_quorum_list_tokens(hsm_conn_t *conn, hsm_quorum_token_info_t **out,
                             size_t *n)
{
    (void)conn, (void)out, (void)n;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV hsm_quorum_del_token(hsm_conn_t *conn, uint32_t id)
{
    (void)conn, (void)id;
    return CKR_FUNCTION_NOT_SUPPORTED;
}
