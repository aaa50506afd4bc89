/*
 * quorum.c - quorum (M of N) approval of user management, and the store of
 * the approvers' keys that two-factor login shares (ARCHITECTURE section
 * 12, hsm.h "quorum").
 *
 * A token is text the HSM makes (service, requester, times, a fresh random
 * nonce); the store keeps only its SHA-256, which is what approvers sign
 * (SHA256-RSA-PKCS over the token bytes), so a token is found again by the
 * bytes an approval names and never by an id an approver could mistype.
 * It lives while it is unexpired and the login that asked for it stands
 * (the same login id, the requester's record at the same version); only
 * that login can use it, once, for its service. Approvals count only
 * while their approver is a CO with a registered key.
 *
 * Invariants of the M values: M <= the number of COs with a registered key
 * when set; M of service 3 above 1 needs M of service 4 above 1 (else one
 * CO could lower service 3 alone, and the quorum on user management would
 * be for show): raising service 3 refuses while service 4 is 1, lowering
 * service 4 to 1 refuses while service 3 is above 1.
 *
 * Audit records: quorum_register_key (oid: the user), quorum_set_m (oid:
 * the service), quorum_token (oid: the token), quorum_approve (user: the
 * approver, 0 when unknown; oid: the token; result: why refused),
 * quorum_del_token, quorum_used (in the guarded operation's transaction)
 * and quorum_refused (oid: the service).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/internal.h"

#define EV_REGISTER "quorum_register_key"
#define EV_SET_M "quorum_set_m"
#define EV_TOKEN "quorum_token"
#define EV_APPROVE "quorum_approve"
#define EV_DEL_TOKEN "quorum_del_token"
#define EV_USED "quorum_used"
#define EV_REFUSED "quorum_refused"

#define META_SERIAL "serial"
#define NONCE_LEN 32

uint64_t (*hsm_quorum_clock_hook)(void);

static uint64_t now_s(void)
{
    if (hsm_quorum_clock_hook != NULL)
        return hsm_quorum_clock_hook();
    return (uint64_t)time(NULL);
}

static bool service_ok(unsigned service)
{
    return service == HSM_QUORUM_SVC_USER_MGMT ||
           service == HSM_QUORUM_SVC_MISC_CO;
}

/* ------------------------------------------------ keys (tfa shares them) */

CK_RV hsm_user_qkey_get_locked(hsm_t *hsm, hsm_uid_t uid, uint8_t **der,
                               size_t *len, bool *twofa, bool *found)
{
    return store_user_mofn_get(hsm->st, uid, der, len, twofa, found);
}

/* Whether a user other than uid has registered der. */
static CK_RV key_taken_locked(hsm_t *hsm, hsm_uid_t uid, const uint8_t *der,
                              size_t len, bool *taken)
{
    store_user_t *users = NULL;
    size_t n = 0;
    CK_RV rv;

    *taken = false;
    if ((rv = store_user_list(hsm->st, &users, &n)) != CKR_OK)
        return rv;
    for (size_t i = 0; i < n && rv == CKR_OK && !*taken; i++) {
        uint8_t *k = NULL;
        size_t klen = 0;
        bool found = false;

        if (users[i].id == uid || !users[i].mofn_pubkey)
            continue;
        rv = store_user_mofn_get(hsm->st, users[i].id, &k, &klen, NULL, &found);
        if (rv == CKR_OK && found && k != NULL && klen == len &&
            memcmp(k, der, len) == 0)
            *taken = true;
        free(k);
    }
    for (size_t i = 0; i < n; i++)
        store_user_clear(&users[i]);
    free(users);
    return rv;
}

/* The COs with a registered key, and the M of services 3 and 4. */
static CK_RV quorum_state_locked(hsm_t *hsm, size_t *keys, unsigned *m3,
                                 unsigned *m4)
{
    CK_RV rv;

    if ((rv = store_user_count_mofn(hsm->st, HSM_USER_CO, keys)) != CKR_OK ||
        (rv = store_quorum_m_get(hsm->st, HSM_QUORUM_SVC_USER_MGMT, m3)) !=
            CKR_OK)
        return rv;
    return store_quorum_m_get(hsm->st, HSM_QUORUM_SVC_MISC_CO, m4);
}

CK_RV hsm_quorum_keeps_locked(hsm_t *hsm)
{
    unsigned m3 = 1, m4 = 1;
    size_t keys = 0;
    CK_RV rv;

    if ((rv = quorum_state_locked(hsm, &keys, &m3, &m4)) != CKR_OK)
        return rv;
    if (keys > 0 && ((m3 > 1 && keys - 1 < m3) || (m4 > 1 && keys - 1 < m4)))
        return CKR_ACTION_PROHIBITED;
    return CKR_OK;
}

CK_RV hsm_user_qkey_set_locked(hsm_t *hsm, hsm_uid_t uid, const uint8_t *der,
                               size_t len, bool twofa)
{
    bool own = !store_in_tx(hsm->st), taken = false, found = false;
    uint64_t version = 0;
    store_user_t u;
    CK_RV rv;

    memset(&u, 0, sizeof(u));

    if ((der == NULL) != (len == 0) || len > STORE_QUORUM_KEY_MAX)
        return CKR_ARGUMENTS_BAD;
    if (own && (rv = store_begin(hsm->st, true)) != CKR_OK)
        return rv;
    if ((rv = store_user_version(hsm->st, uid, &version, &found)) == CKR_OK &&
        !found)
        rv = CKR_ARGUMENTS_BAD; /* no such user */
    /* A CO's key removed: never fewer approvers than an M needs (no token
     * could be approved again, setMValue's included). */
    if (rv == CKR_OK && der == NULL &&
        (rv = store_user_by_id(hsm->st, uid, &u, &found)) == CKR_OK && found &&
        u.type == HSM_USER_CO && u.mofn_pubkey)
        rv = hsm_quorum_keeps_locked(hsm);
    store_user_clear(&u);
    /* One key, one approver: else one key holder approves as two COs. */
    if (rv == CKR_OK && der != NULL &&
        (rv = key_taken_locked(hsm, uid, der, len, &taken)) == CKR_OK && taken)
        rv = CKR_ACTION_PROHIBITED;
    if (rv == CKR_OK) {
        rv = store_user_mofn_set(hsm->st, uid, der, len, twofa);
        if (rv == CKR_FUNCTION_FAILED)
            rv = CKR_ARGUMENTS_BAD; /* no such user */
    }
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

static bool login_id_set(const uint8_t id[STORE_LOGIN_ID_LEN])
{
    static const uint8_t zero[STORE_LOGIN_ID_LEN];

    return memcmp(id, zero, sizeof(zero)) != 0;
}

void hsm_quorum_login_end_locked(hsm_conn_t *conn)
{
    hsm_t *hsm = conn->hsm;

    if (!login_id_set(conn->login_id))
        return;
    /* A login that asked for no token has none to delete: no entry of the
     * log for each logout. */
    if (!conn->login_tokens) {
        util_wipe(conn->login_id, sizeof(conn->login_id));
        return;
    }
    /* Inside another change's transaction the delete would share its fate:
     * left then, the tokens are dead anyway (no login carries their id)
     * and go with the next purge or their expiry. */
    if (!store_in_tx(hsm->st)) {
        /* Its own transaction: in a cluster, an entry of the log, which
         * may wait with the lock let go (hsm_logout): the id is the one
         * read now, and a later login's is not wiped after. */
        uint8_t id[STORE_LOGIN_ID_LEN];
        CK_RV rv;

        memcpy(id, conn->login_id, sizeof(id));
        rv = store_begin(hsm->st, true);
        if (rv == CKR_OK &&
            (rv = store_qtoken_delete_login(hsm->st, id)) == CKR_OK)
            rv = store_commit(hsm->st);
        else if (rv == CKR_OK)
            store_rollback(hsm->st);
        if (rv != CKR_OK)
            log_warn("quorum: the tokens of an ended login stay until "
                     "expiry");
        if (memcmp(id, conn->login_id, sizeof(id)) != 0)
            return; /* ended, and another login began, meanwhile */
    }
    util_wipe(conn->login_id, sizeof(conn->login_id));
    conn->login_tokens = false;
}

/* ------------------------------------------------------------- tokens */

/*
 * Whether token t lives at now: unexpired, its requester's record at the
 * version of the login that asked, and that login still there: a
 * connection of this process carries its id, or (a login of another
 * process) some process holds a login of the requester. A crashed
 * process's token that slips through the last test is usable by no one
 * (no live login carries its id) and goes at its expiry.
 */
static CK_RV token_alive_locked(hsm_t *hsm, const store_qtoken_t *t,
                                uint64_t now, bool *alive)
{
    uint64_t version = 0;
    bool found = false, held = false;
    CK_RV rv;

    *alive = false;
    if (t->expires <= now)
        return CKR_OK;
    if ((rv = store_user_version(hsm->st, t->requester, &version, &found)) !=
            CKR_OK ||
        !found || version != t->requester_version)
        return rv;
    for (hsm_conn_t *c = hsm->conns; c != NULL; c = c->next) {
        if (c->type != HSM_USER_NONE && c->uid == t->requester &&
            memcmp(c->login_id, t->login_id, STORE_LOGIN_ID_LEN) == 0) {
            *alive = true;
            return CKR_OK;
        }
    }
    /* Not one of ours: another process's login, if any process holds a
     * login of the requester (the presence mark cannot tell which). */
    if ((rv = store_login_held(hsm->dbpath, t->requester, &held)) != CKR_OK)
        return rv;
    *alive = held;
    return CKR_OK;
}

/* Deletes the expired and dead tokens (own transaction). */
static CK_RV purge_locked(hsm_t *hsm, uint64_t now)
{
    store_qtoken_t *ts = NULL;
    size_t n = 0, gone = 0;
    CK_RV rv;

    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        return rv;
    if ((rv = store_qtoken_purge(hsm->st, now, &gone)) != CKR_OK ||
        (rv = store_qtoken_list(hsm->st, &ts, &n)) != CKR_OK)
        goto out;
    for (size_t i = 0; i < n && rv == CKR_OK; i++) {
        bool alive = false;

        if ((rv = token_alive_locked(hsm, &ts[i], now, &alive)) == CKR_OK &&
            !alive) {
            rv = store_qtoken_delete(hsm->st, ts[i].id, NULL);
            gone++;
        }
    }
out:
    free(ts);
    if (rv == CKR_OK && gone > 0)
        return store_commit(hsm->st);
    store_rollback(hsm->st); /* nothing to keep: no fsync */
    return rv;
}

/* The approvals of token id that count now: by users who are COs with a
 * registered key. names (may be NULL) gets up to HSM_QUORUM_M_MAX of
 * their names. */
static CK_RV approvals_locked(hsm_t *hsm, uint32_t id, unsigned *given,
                              hsm_quorum_token_info_t *names)
{
    uint32_t *uids = NULL;
    size_t n = 0;
    CK_RV rv;

    *given = 0;
    if ((rv = store_qtoken_approvers(hsm->st, id, &uids, &n)) != CKR_OK)
        return rv;
    for (size_t i = 0; i < n && rv == CKR_OK; i++) {
        store_user_t u;
        bool found = false;

        memset(&u, 0, sizeof(u));
        rv = store_user_by_id(hsm->st, uids[i], &u, &found);
        if (rv == CKR_OK && found && u.type == HSM_USER_CO && u.mofn_pubkey) {
            (*given)++;
            if (names != NULL && names->napprovers < HSM_QUORUM_M_MAX) {
                snprintf(names->approvers[names->napprovers],
                         sizeof(names->approvers[0]), "%s", u.name);
                names->napprovers++;
            }
        }
        store_user_clear(&u);
    }
    free(uids);
    return rv;
}

/* Whether token t of conn's login is ready for service under M m. */
static CK_RV token_ready_locked(hsm_conn_t *conn, const store_qtoken_t *t,
                                unsigned service, unsigned m, uint64_t now,
                                bool *ready)
{
    unsigned given = 0;
    bool alive = false;
    CK_RV rv;

    *ready = false;
    if (t->service != service || t->requester != conn->uid ||
        t->requester_version != conn->uver ||
        memcmp(t->login_id, conn->login_id, STORE_LOGIN_ID_LEN) != 0)
        return CKR_OK;
    if ((rv = token_alive_locked(conn->hsm, t, now, &alive)) != CKR_OK ||
        !alive)
        return rv;
    if ((rv = approvals_locked(conn->hsm, t->id, &given, NULL)) != CKR_OK)
        return rv;
    *ready = given >= m && given >= t->needed;
    return CKR_OK;
}

static void refused_locked(hsm_conn_t *conn, unsigned service)
{
    log_info("quorum: user %u: service %u needs an approved token", conn->uid,
             service);
    hsm_audit_locked(conn->hsm, conn->uid, EV_REFUSED, service,
                     CKR_FUNCTION_REJECTED);
}

CK_RV hsm_quorum_guard_locked(hsm_conn_t *conn, unsigned service, uint32_t *tok)
{
    hsm_t *hsm = conn->hsm;
    store_qtoken_t *ts = NULL;
    uint64_t now = now_s();
    unsigned m = 1;
    size_t n = 0;
    CK_RV rv;

    *tok = 0;
    if ((rv = store_quorum_m_get(hsm->st, service, &m)) != CKR_OK)
        return rv;
    if (m <= 1)
        return CKR_OK;
    if (conn->type == HSM_USER_NONE || !login_id_set(conn->login_id)) {
        refused_locked(conn, service);
        return CKR_FUNCTION_REJECTED;
    }
    if ((rv = store_qtoken_list(hsm->st, &ts, &n)) != CKR_OK)
        return rv;
    for (size_t i = 0; i < n && rv == CKR_OK && *tok == 0; i++) {
        bool ready = false;

        rv = token_ready_locked(conn, &ts[i], service, m, now, &ready);
        if (rv == CKR_OK && ready)
            *tok = ts[i].id;
    }
    free(ts);
    if (rv != CKR_OK)
        return rv;
    if (*tok == 0) {
        refused_locked(conn, service);
        return CKR_FUNCTION_REJECTED;
    }
    return CKR_OK;
}

CK_RV hsm_quorum_reinit_locked(hsm_t *hsm, hsm_uid_t uid)
{
    unsigned m = 1;
    CK_RV rv;

    if ((rv = store_quorum_m_get(hsm->st, HSM_QUORUM_SVC_USER_MGMT, &m)) !=
            CKR_OK ||
        m <= 1)
        return rv;
    log_info("quorum: user %u: re-initialization deletes users, service 3 "
             "needs a quorum",
             uid);
    hsm_audit_locked(hsm, uid, EV_REFUSED, HSM_QUORUM_SVC_USER_MGMT,
                     CKR_FUNCTION_REJECTED);
    return CKR_FUNCTION_REJECTED;
}

CK_RV hsm_quorum_consume_tx_locked(hsm_conn_t *conn, unsigned service,
                                   uint32_t tok)
{
    hsm_t *hsm = conn->hsm;
    store_qtoken_t t;
    unsigned m = 1;
    bool found = false, ready = false, deleted = false;
    CK_RV rv;

    return_val_if_fail(store_in_tx(hsm->st), CKR_GENERAL_ERROR);
    if ((rv = store_quorum_m_get(hsm->st, service, &m)) != CKR_OK)
        return rv;
    if (tok == 0)
        return m <= 1 ? CKR_OK : CKR_FUNCTION_REJECTED; /* M moved since */
    /* Again under the write lock: another process may have deleted it or
     * an approver since the guard looked. */
    if ((rv = store_qtoken_get(hsm->st, tok, &t, &found)) != CKR_OK)
        return rv;
    if (found && (rv = token_ready_locked(conn, &t, service, m, now_s(),
                                          &ready)) != CKR_OK)
        return rv;
    if (!found || !ready)
        return CKR_FUNCTION_REJECTED;
    if ((rv = store_qtoken_delete(hsm->st, tok, &deleted)) != CKR_OK)
        return rv;
    if (!deleted)
        return CKR_FUNCTION_REJECTED;
    return hsm_audit_tx_locked(hsm, conn->uid, EV_USED, tok, CKR_OK);
}

/* ------------------------------------------------------------- calls */

CK_RV hsm_quorum_register_key(hsm_conn_t *conn, const char *name,
                              const uint8_t *reg_token, size_t token_len,
                              const uint8_t *sig, size_t sig_len,
                              const uint8_t *pubkey, size_t pubkey_len)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    store_user_t u;
    uint8_t *der = NULL;
    size_t derlen = 0;
    bool found = false, twofa = false;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_role_locked(conn, HSM_OP_QUORUM)) != CKR_OK)
        goto out;
    if (name == NULL || reg_token == NULL || token_len == 0 ||
        token_len > HSM_QUORUM_REG_TOKEN_MAX || sig == NULL || sig_len == 0 ||
        sig_len > HSM_QUORUM_SIG_MAX || pubkey == NULL || pubkey_len == 0 ||
        pubkey_len > HSM_QUORUM_PUBKEY_MAX) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if ((rv = store_user_by_id(hsm->st, conn->uid, &u, &found)) != CKR_OK)
        goto out;
    if (!found || strcasecmp(name, u.name) != 0) {
        rv = CKR_ACTION_PROHIBITED; /* a CO registers its own key only */
        goto out;
    }
    if ((rv = crypto_quorum_key_parse(pubkey, pubkey_len, &der, &derlen)) !=
        CKR_OK)
        goto out;
    rv = crypto_quorum_verify(der, derlen, reg_token, token_len, sig, sig_len);
    if (rv == CKR_SIGNATURE_LEN_RANGE)
        rv = CKR_SIGNATURE_INVALID;
    if (rv != CKR_OK)
        goto out;
    if ((rv = store_user_mofn_get(hsm->st, conn->uid, NULL, NULL, &twofa,
                                  &found)) != CKR_OK)
        goto out;
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    /* A 2FA user's key is its quorum key: the new one serves both. */
    if ((rv = hsm_user_qkey_set_locked(hsm, conn->uid, der, derlen, twofa)) !=
            CKR_OK ||
        (rv = hsm_audit_tx_locked(hsm, conn->uid, EV_REGISTER, conn->uid,
                                  CKR_OK)) != CKR_OK ||
        (rv = store_bump_generation(hsm->st)) != CKR_OK) {
        store_rollback(hsm->st);
        goto out;
    }
    rv = hsm_cluster_commit_unlocked(hsm); /* then conn read again */
    if (rv == CKR_OK)
        log_info("quorum: user %u registered a key", conn->uid);
out:
    if (rv != CKR_OK && rv != CKR_HOST_MEMORY && conn->type != HSM_USER_NONE)
        hsm_audit_last_locked(hsm, conn->uid, EV_REGISTER, conn->uid, rv);
    pthread_mutex_unlock(&hsm->lock);
    free(der);
    store_user_clear(&u);
    return rv;
}

CK_RV hsm_quorum_set_m(hsm_conn_t *conn, unsigned service, unsigned m)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    unsigned m3 = 1, m4 = 1;
    size_t keys = 0;
    uint32_t tok = 0;
    CK_RV rv;

    pthread_mutex_lock(&hsm->lock);
    hsm_gen_bump_locked(hsm);
    if ((rv = hsm_role_locked(conn, HSM_OP_QUORUM)) != CKR_OK)
        goto out;
    if (!service_ok(service) || m < 1 || m > HSM_QUORUM_M_MAX) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if ((rv = quorum_state_locked(hsm, &keys, &m3, &m4)) != CKR_OK)
        goto out;
    if (m > 1 && m > keys) {
        rv = CKR_ARGUMENTS_BAD; /* not that many approvers */
        goto out;
    }
    if ((service == HSM_QUORUM_SVC_USER_MGMT && m > m3 && m4 <= 1) ||
        (service == HSM_QUORUM_SVC_MISC_CO && m <= 1 && m3 > 1)) {
        refused_locked(conn, HSM_QUORUM_SVC_MISC_CO);
        rv = CKR_FUNCTION_REJECTED;
        goto out;
    }
    if ((rv = hsm_quorum_guard_locked(conn, HSM_QUORUM_SVC_MISC_CO, &tok)) !=
        CKR_OK)
        goto out;
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    if ((rv = hsm_quorum_consume_tx_locked(conn, HSM_QUORUM_SVC_MISC_CO,
                                           tok)) != CKR_OK ||
        (rv = store_quorum_m_set(hsm->st, service, m)) != CKR_OK ||
        (rv = hsm_audit_tx_locked(hsm, conn->uid, EV_SET_M, service, CKR_OK)) !=
            CKR_OK ||
        (rv = store_bump_generation(hsm->st)) != CKR_OK) {
        store_rollback(hsm->st);
        goto out;
    }
    rv = hsm_cluster_commit_unlocked(hsm); /* then conn read again */
    if (rv == CKR_OK)
        log_info("quorum: user %u set M of service %u to %u", conn->uid,
                 service, m);
out:
    if (rv != CKR_OK && rv != CKR_HOST_MEMORY && conn->type != HSM_USER_NONE)
        hsm_audit_last_locked(hsm, conn->uid, EV_SET_M, service, rv);
    pthread_mutex_unlock(&hsm->lock);
    return rv;
}

CK_RV hsm_quorum_get_m(hsm_conn_t *conn, unsigned service, unsigned *m)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    CK_RV rv;

    if (m == NULL)
        return CKR_ARGUMENTS_BAD;
    *m = 0;
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_role_locked(conn, HSM_OP_QUORUM)) == CKR_OK) {
        if (!service_ok(service))
            rv = CKR_ARGUMENTS_BAD;
        else
            rv = store_quorum_m_get(hsm->st, service, m);
    }
    pthread_mutex_unlock(&hsm->lock);
    return rv;
}

/* The token text; its length (snprintf's), whatever room is. */
static size_t token_text(char *buf, size_t room, const char *serial,
                         unsigned service, const char *name, uint64_t issued,
                         uint64_t expires, const char *nonce)
{
    int n = snprintf(buf, room,
                     "Nimbus HSM quorum token\n"
                     "version: 1\n"
                     "hsm: %s\n"
                     "service: %u\n"
                     "user: %s\n"
                     "issued: %llu\n"
                     "expires: %llu\n"
                     "nonce: %s\n",
                     serial, service, name, (unsigned long long)issued,
                     (unsigned long long)expires, nonce);

    return n < 0 ? 0 : (size_t)n;
}

CK_RV hsm_quorum_get_token(hsm_conn_t *conn, unsigned service, const char *name,
                           uint8_t *token, size_t *len)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    char serial[33], nonce_hex[2 * NONCE_LEN + 1], nonce_max[2 * NONCE_LEN + 1];
    char text[HSM_QUORUM_TOKEN_BYTES_MAX + 1];
    uint8_t nonce[NONCE_LEN];
    store_qtoken_t t;
    store_user_t u;
    size_t need, count = 0, tlen;
    uint32_t id = 0;
    uint64_t now;
    bool found = false, audit = false;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    memset(&t, 0, sizeof(t));
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_reserve_unlocked(hsm)) != CKR_OK ||
        (rv = hsm_role_locked(conn, HSM_OP_QUORUM)) != CKR_OK)
        goto out;
    if (len == NULL || name == NULL || !service_ok(service)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if ((rv = store_user_by_id(hsm->st, conn->uid, &u, &found)) != CKR_OK)
        goto out;
    if (!found || strcasecmp(name, u.name) != 0) {
        rv = CKR_ARGUMENTS_BAD; /* a token is for the requester itself */
        goto out;
    }
    if ((rv = hsm_meta_get_str_locked(hsm, META_SERIAL, serial,
                                      sizeof(serial))) != CKR_OK)
        goto out;
    memset(nonce_max, 'f', sizeof(nonce_max) - 1);
    nonce_max[sizeof(nonce_max) - 1] = '\0';
    need = token_text(NULL, 0, serial, service, u.name, UINT64_MAX, UINT64_MAX,
                      nonce_max);
    if (need == 0 || need > HSM_QUORUM_TOKEN_BYTES_MAX) {
        rv = CKR_GENERAL_ERROR;
        goto out;
    }
    if (token == NULL) {
        *len = need; /* nothing issued */
        goto out;
    }
    if (*len < need) {
        *len = need;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    audit = true;
    now = now_s();
    if ((rv = purge_locked(hsm, now)) != CKR_OK ||
        (rv = store_qtoken_count(hsm->st, &count)) != CKR_OK)
        goto out;
    if (count >= HSM_QUORUM_TOKENS_MAX) {
        rv = CKR_FUNCTION_REJECTED;
        goto out;
    }
    if ((rv = store_quorum_m_get(hsm->st, service, &t.needed)) != CKR_OK ||
        (rv = crypto_random(nonce, sizeof(nonce))) != CKR_OK)
        goto out;
    for (size_t i = 0; i < NONCE_LEN; i++)
        snprintf(nonce_hex + 2 * i, 3, "%02x", nonce[i]);
    t.service = service;
    t.requester = conn->uid;
    t.requester_version = conn->uver;
    memcpy(t.login_id, conn->login_id, STORE_LOGIN_ID_LEN);
    t.issued = now;
    t.expires = now + hsm->cfg.quorum_token_lifetime;
    tlen = token_text(text, sizeof(text), serial, service, u.name, t.issued,
                      t.expires, nonce_hex);
    if (tlen == 0 || tlen > need) {
        rv = CKR_GENERAL_ERROR;
        goto out;
    }
    if ((rv = crypto_sha256((const uint8_t *)text, tlen, t.digest)) != CKR_OK)
        goto out;
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    conn->login_tokens = true; /* maybe: an ambiguous failure may commit */
    /* The limit holds also when the entry applies (other nodes' tokens,
     * or this node's issued while this one waited, may come first). */
    if ((rv = store_require(hsm->st, STORE_REQUIRE_QTOKENS_BELOW,
                            HSM_QUORUM_TOKENS_MAX, 0, CKR_FUNCTION_REJECTED)) !=
            CKR_OK ||
        (rv = store_qtoken_insert(hsm->st, &t, &id)) != CKR_OK ||
        (rv = hsm_audit_tx_locked(hsm, conn->uid, EV_TOKEN, id, CKR_OK)) !=
            CKR_OK ||
        (rv = store_bump_generation(hsm->st)) != CKR_OK) {
        store_rollback(hsm->st);
        goto out;
    }
    if ((rv = hsm_cluster_commit_unlocked(hsm)) != CKR_OK)
        goto out;
    memcpy(token, text, tlen);
    *len = tlen;
    log_info("quorum: token %u for service %u issued to user %u", id, service,
             conn->uid);
out:
    if (audit && rv != CKR_OK && rv != CKR_HOST_MEMORY)
        hsm_audit_last_locked(hsm, conn->uid, EV_TOKEN, 0, rv);
    pthread_mutex_unlock(&hsm->lock);
    store_user_clear(&u);
    util_wipe(nonce, sizeof(nonce));
    return rv;
}

/* One approval of token t; its result. */
static CK_RV approve_one_locked(hsm_t *hsm, const store_qtoken_t *t,
                                const uint8_t *token, size_t token_len,
                                const hsm_quorum_approval_t *a,
                                hsm_uid_t *approver)
{
    store_user_t u;
    uint8_t *der = NULL;
    size_t derlen = 0;
    bool found = false, added = false;
    CK_RV rv;

    *approver = 0;
    memset(&u, 0, sizeof(u));
    if (memchr(a->name, '\0', sizeof(a->name)) == NULL ||
        !util_user_name_valid(a->name, strlen(a->name)))
        return CKR_ARGUMENTS_BAD;
    if (a->type != HSM_USER_CO)
        return CKR_USER_TYPE_INVALID; /* approvers are COs */
    if ((rv = store_user_by_name(hsm->st, a->name, &u, &found)) != CKR_OK)
        return rv;
    if (!found || u.type != HSM_USER_CO) {
        rv = CKR_ARGUMENTS_BAD; /* no such CO */
        goto out;
    }
    *approver = u.id;
    if ((rv = store_user_mofn_get(hsm->st, u.id, &der, &derlen, NULL,
                                  &found)) != CKR_OK)
        goto out;
    if (!found || der == NULL) {
        rv = CKR_ARGUMENTS_BAD; /* no registered key */
        goto out;
    }
    if (a->sig == NULL || a->sig_len == 0 || a->sig_len > HSM_QUORUM_SIG_MAX) {
        rv = CKR_SIGNATURE_LEN_RANGE;
        goto out;
    }
    if ((rv = crypto_quorum_verify(der, derlen, token, token_len, a->sig,
                                   a->sig_len)) != CKR_OK)
        goto out;
    if ((rv = store_qtoken_approve(hsm->st, t->id, u.id, &added)) != CKR_OK)
        goto out;
    if (!added)
        rv = CKR_FUNCTION_REJECTED; /* counts once */
out:
    free(der);
    store_user_clear(&u);
    return rv;
}

CK_RV hsm_quorum_approve(hsm_conn_t *conn, const uint8_t *token,
                         size_t token_len, const hsm_quorum_approval_t *a,
                         size_t n, CK_RV *results)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    uint8_t digest[HSM_DIGEST_LEN];
    store_qtoken_t t;
    uint64_t now;
    bool found = false, alive = false;
    CK_RV rv;

    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_role_locked(conn, HSM_OP_QUORUM)) != CKR_OK)
        goto out;
    if (token == NULL || token_len == 0 ||
        token_len > HSM_QUORUM_TOKEN_BYTES_MAX || a == NULL || n == 0 ||
        n > HSM_QUORUM_M_MAX || results == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        results[i] = CKR_FUNCTION_FAILED;
    now = now_s();
    if ((rv = crypto_sha256(token, token_len, digest)) != CKR_OK ||
        (rv = purge_locked(hsm, now)) != CKR_OK ||
        (rv = store_qtoken_by_digest(hsm->st, digest, &t, &found)) != CKR_OK)
        goto out;
    if (found && (rv = token_alive_locked(hsm, &t, now, &alive)) != CKR_OK)
        goto out;
    if (!found || !alive) {
        rv = CKR_DATA_INVALID; /* unknown, expired or dead */
        hsm_audit_last_locked(hsm, conn->uid, EV_APPROVE, found ? t.id : 0, rv);
        goto out;
    }
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    for (size_t i = 0; i < n && rv == CKR_OK; i++) {
        hsm_uid_t who = 0;

        results[i] = approve_one_locked(hsm, &t, token, token_len, &a[i], &who);
        if (results[i] == CKR_HOST_MEMORY || results[i] == CKR_DEVICE_ERROR) {
            rv = results[i];
            break;
        }
        rv = hsm_audit_tx_locked(hsm, who, EV_APPROVE, t.id, results[i]);
        if (results[i] == CKR_OK)
            log_info("quorum: token %u approved by user %u", t.id, who);
    }
    if (rv == CKR_OK)
        rv = store_bump_generation(hsm->st);
    if (rv == CKR_OK)
        rv = hsm_cluster_commit_unlocked(hsm); /* the call ends after */
    else
        store_rollback(hsm->st);
out:
    pthread_mutex_unlock(&hsm->lock);
    return rv;
}

CK_RV hsm_quorum_list_tokens(hsm_conn_t *conn, hsm_quorum_token_info_t **out,
                             size_t *n)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    hsm_quorum_token_info_t *arr = NULL;
    store_qtoken_t *ts = NULL;
    size_t count = 0;
    uint64_t now;
    CK_RV rv;

    if (out == NULL || n == NULL)
        return CKR_ARGUMENTS_BAD;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_role_locked(conn, HSM_OP_QUORUM)) != CKR_OK)
        goto done;
    now = now_s();
    if ((rv = purge_locked(hsm, now)) != CKR_OK ||
        (rv = store_qtoken_list(hsm->st, &ts, &count)) != CKR_OK || count == 0)
        goto done;
    arr = calloc(count, sizeof(*arr));
    if (arr == NULL) {
        rv = CKR_HOST_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < count && rv == CKR_OK; i++) {
        store_user_t u;
        bool found = false;

        memset(&u, 0, sizeof(u));
        arr[i].id = ts[i].id;
        arr[i].service = ts[i].service;
        arr[i].seconds_left = ts[i].expires > now ? ts[i].expires - now : 0;
        arr[i].needed = ts[i].needed;
        rv = store_user_by_id(hsm->st, ts[i].requester, &u, &found);
        if (rv == CKR_OK && found)
            snprintf(arr[i].user, sizeof(arr[i].user), "%s", u.name);
        store_user_clear(&u);
        if (rv == CKR_OK)
            rv = approvals_locked(hsm, ts[i].id, &arr[i].given, &arr[i]);
    }
    if (rv == CKR_OK) {
        *out = arr;
        *n = count;
        arr = NULL;
    }
done:
    pthread_mutex_unlock(&hsm->lock);
    free(arr);
    free(ts);
    return rv;
}

CK_RV hsm_quorum_del_token(hsm_conn_t *conn, uint32_t id)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    bool deleted = false;
    CK_RV rv;

    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_role_locked(conn, HSM_OP_QUORUM)) != CKR_OK)
        goto out;
    if ((rv = purge_locked(hsm, now_s())) != CKR_OK ||
        (rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    if ((rv = store_qtoken_delete(hsm->st, id, &deleted)) == CKR_OK && !deleted)
        rv = CKR_ARGUMENTS_BAD; /* no such token */
    if (rv == CKR_OK && (rv = hsm_audit_tx_locked(hsm, conn->uid, EV_DEL_TOKEN,
                                                  id, CKR_OK)) == CKR_OK)
        rv = store_bump_generation(hsm->st);
    if (rv == CKR_OK)
        rv = hsm_cluster_commit_unlocked(hsm); /* then conn read again */
    else
        store_rollback(hsm->st);
out:
    if (rv != CKR_OK && rv != CKR_HOST_MEMORY && conn->type != HSM_USER_NONE)
        hsm_audit_last_locked(hsm, conn->uid, EV_DEL_TOKEN, id, rv);
    pthread_mutex_unlock(&hsm->lock);
    return rv;
}
