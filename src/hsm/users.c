/*
 * users.c - users, activation, login and lockout.
 *
 * Lockout is charged before the password is checked: one atomic store
 * update adds a failure unless the limit is reached, then the verifier is
 * checked and a success clears the count. Two processes guessing at once
 * can never get more than the limit of tries, and a process killed in the
 * middle of a check has spent its try.
 *
 * Audit: every change here writes its record inside its own transaction
 * (activation, password change, user create/delete, re-initialization, a
 * successful login with its failure reset); a failed login, logout or
 * password change gets a small transaction of its own, with a "lockout"
 * record beside it when that failure locked the user. For user events the
 * record's object id is the target user's id.
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

#define META_LABEL "label"
#define META_SERIAL "serial"
#define META_KEY_CHECK "key_check"
#define KEY_CHECK_AD "nimbus-key-check"
#define KEY_CHECK_TEXT "nimbus master key check"

#define PRECO_UID 1
#define AU_UID 2

#define EV_LOGIN "login"
#define EV_LOGOUT "logout"
#define EV_CONTEXT_LOGIN "context_login"
#define EV_LOCKOUT "lockout"
#define EV_ACTIVATE "activate"
#define EV_REINIT "reinit_token"
#define EV_CHANGE_PW "change_password"
#define EV_CREATE_USER "create_user"
#define EV_DELETE_USER "delete_user"
#define EV_LOGIN_2FA "login_2fa" /* a login of a user with 2FA */
#define EV_TFA_ON "2fa_on"       /* 2FA turned on, or its key rotated */
#define EV_TFA_OFF "2fa_off"     /* 2FA and the registered key removed */

/* A 2FA key, parsed (crypto_quorum_key_parse) and proven (a signature
 * over the connection's challenge verified), to register. */
struct tfa_key {
    uint8_t *der;
    size_t len;
};

void (*hsm_kdf_hook)(void);
uint64_t (*hsm_tfa_clock_hook)(void);

static uint64_t tfa_now(void)
{
    return hsm_tfa_clock_hook != NULL ? hsm_tfa_clock_hook()
                                      : (uint64_t)time(NULL);
}

/*
 * Inside the write transaction of a password change of user uid (or of
 * its creation): with tk, 2FA on with that key (the quorum key too);
 * without, a user that had 2FA loses it and its registered key (the cloud
 * HSM's rule), a user without keeps its quorum key. Audited as actor.
 */
static CK_RV tfa_with_password_tx_locked(hsm_t *hsm, hsm_uid_t uid,
                                         hsm_uid_t actor,
                                         const struct tfa_key *tk)
{
    bool twofa = false, found = false;
    CK_RV rv;

    if (tk != NULL) {
        rv = hsm_user_qkey_set_locked(hsm, uid, tk->der, tk->len, true);
        /* the key is another user's: not a quorum refusal (which the
         * shell would report as RET_MXN_AUTH_FAILED) */
        if (rv == CKR_FUNCTION_REJECTED)
            rv = CKR_ACTION_PROHIBITED;
        if (rv != CKR_OK)
            return rv;
        return hsm_audit_tx_locked(hsm, actor, EV_TFA_ON, uid, CKR_OK);
    }
    /* read inside the transaction: what a check made meanwhile left */
    if ((rv = hsm_user_qkey_get_locked(hsm, uid, NULL, NULL, &twofa, &found)) !=
        CKR_OK)
        return rv;
    if (!found || !twofa)
        return CKR_OK;
    if ((rv = hsm_user_qkey_set_locked(hsm, uid, NULL, 0, false)) != CKR_OK)
        return rv;
    log_info("user %u: 2FA and its registered key removed with the "
             "password change",
             uid);
    return hsm_audit_tx_locked(hsm, actor, EV_TFA_OFF, uid, CKR_OK);
}

/* The name a challenge or login of kind means (name NULL: the default). */
static const char *default_name(hsm_t *hsm, hsm_login_kind_t kind);

/*
 * Takes the connection's challenge: it is gone after this whatever the
 * answer. true, with its digest, when it was made for kind and name and
 * has not expired.
 */
static bool tfa_take_locked(hsm_conn_t *conn, hsm_login_kind_t kind,
                            const char *name, uint8_t digest[HSM_DIGEST_LEN])
{
    struct hsm_tfa_challenge *c = &conn->tfa;
    bool ok;

    if (name == NULL)
        name = default_name(conn->hsm, kind);
    ok = c->set && c->kind == kind && c->name[0] != '\0' &&
         strcasecmp(c->name, name) == 0 && tfa_now() < c->expires;
    if (ok)
        memcpy(digest, c->digest, HSM_DIGEST_LEN);
    util_wipe(c, sizeof(*c));
    return ok;
}

/* Whether sig is user uid's signature over digest, under its registered
 * key. */
static bool tfa_sig_ok_locked(hsm_t *hsm, hsm_uid_t uid,
                              const uint8_t digest[HSM_DIGEST_LEN],
                              const uint8_t *sig, size_t siglen)
{
    uint8_t *der = NULL;
    size_t len = 0;
    bool twofa = false, found = false, ok = false;

    if (sig == NULL || siglen == 0 || siglen > HSM_TFA_SIG_MAX)
        return false;
    if (hsm_user_qkey_get_locked(hsm, uid, &der, &len, &twofa, &found) ==
            CKR_OK &&
        found && twofa && der != NULL)
        ok = crypto_quorum_verify(der, len, digest, HSM_DIGEST_LEN, sig,
                                  siglen) == CKR_OK;
    free(der);
    return ok;
}

CK_RV hsm_login_challenge(hsm_conn_t *conn, hsm_login_kind_t kind,
                          const char *name, uint8_t digest[HSM_DIGEST_LEN])
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    struct hsm_tfa_challenge c;
    CK_RV rv;

    if (kind != HSM_LOGIN_SO && kind != HSM_LOGIN_USER && kind != HSM_LOGIN_AU)
        return CKR_ARGUMENTS_BAD;
    memset(&c, 0, sizeof(c));
    if (name == NULL)
        name = default_name(hsm, kind);
    /* A name no user can have gets a challenge that matches nothing. */
    if (util_user_name_valid(name, strlen(name)))
        snprintf(c.name, sizeof(c.name), "%s", name);
    if ((rv = crypto_random(c.digest, sizeof(c.digest))) != CKR_OK)
        return rv;
    c.set = true;
    c.kind = kind;
    c.expires = tfa_now() + HSM_TFA_CHALLENGE_LIFETIME;
    pthread_mutex_lock(&hsm->lock);
    conn->tfa = c;
    pthread_mutex_unlock(&hsm->lock);
    memcpy(digest, c.digest, HSM_DIGEST_LEN);
    util_wipe(&c, sizeof(c));
    return CKR_OK;
}

/*
 * The second factor of a create or password change for CO name: the
 * connection's challenge (consumed), pubkey parsed, sig verified over it.
 * tk->der malloc'd on success.
 */
static CK_RV tfa_key_prove(hsm_conn_t *conn, const char *name,
                           const uint8_t *pubkey, size_t pubkey_len,
                           const uint8_t *sig, size_t siglen,
                           struct tfa_key *tk)
{
    uint8_t digest[HSM_DIGEST_LEN];
    bool have;
    CK_RV rv;

    tk->der = NULL;
    tk->len = 0;
    pthread_mutex_lock(&conn->hsm->lock);
    have = tfa_take_locked(conn, HSM_LOGIN_SO, name, digest);
    pthread_mutex_unlock(&conn->hsm->lock);
    if (pubkey == NULL || pubkey_len == 0 || pubkey_len > HSM_QUORUM_PUBKEY_MAX)
        return CKR_ARGUMENTS_BAD;
    if ((rv = crypto_quorum_key_parse(pubkey, pubkey_len, &tk->der,
                                      &tk->len)) != CKR_OK)
        return rv;
    if (!have || sig == NULL || siglen == 0 || siglen > HSM_TFA_SIG_MAX ||
        crypto_quorum_verify(tk->der, tk->len, digest, HSM_DIGEST_LEN, sig,
                             siglen) != CKR_OK) {
        free(tk->der);
        tk->der = NULL;
        tk->len = 0;
        return CKR_SIGNATURE_INVALID;
    }
    return CKR_OK;
}

static bool pw_len_ok(size_t len)
{
    return len >= HSM_PASSWORD_MIN && len <= HSM_PASSWORD_MAX;
}

static CK_RV make_verifier(hsm_t *hsm, const uint8_t *pw, size_t pwlen,
                           uint8_t **ver, size_t *verlen)
{
    return crypto_pw_make(pw, pwlen, hsm->cfg.kdf_iterations, ver, verlen);
}

/*
 * A password verifier made before hsm->lock is taken: its KDF costs a
 * login's time, which other connections' calls must not wait for.
 */
struct pw_pre {
    uint8_t *ver; /* NULL: none made, set_verifier_locked makes it */
    size_t len;
};

/* Makes pre's verifier for pw when the connection's user may do op now.
 * The verdict is checked again under the lock by the caller: a refused
 * caller costs no KDF here, and one refused later wastes one. */
static void pw_prepare(hsm_conn_t *conn, hsm_op_t op, const uint8_t *pw,
                       size_t pwlen, struct pw_pre *pre)
{
    hsm_t *hsm = conn->hsm;
    hsm_policy_conf_t pc;
    CK_RV rv;

    pre->ver = NULL;
    pre->len = 0;
    if (!pw_len_ok(pwlen))
        return;
    /* The policy alone: no store read, and no side effect (a stale login
     * is found and ended by the caller's own check, as without this). */
    pthread_mutex_lock(&hsm->lock);
    pc = hsm_policy_conf(hsm);
    rv = hsm_policy_check_in(&pc, conn->type, op);
    pthread_mutex_unlock(&hsm->lock);
    if (rv == CKR_OK && hsm_kdf_hook != NULL)
        hsm_kdf_hook();
    if (rv == CKR_OK &&
        make_verifier(hsm, pw, pwlen, &pre->ver, &pre->len) != CKR_OK) {
        pre->ver = NULL;
        pre->len = 0;
    }
}

static void pw_pre_clear(struct pw_pre *pre)
{
    util_free_wipe(pre->ver, pre->len);
    pre->ver = NULL;
    pre->len = 0;
}

/* The first users (PRECO admin, AU app_user), the serial and the label,
 * inside the caller's write transaction. */
static CK_RV seed_locked(hsm_t *hsm)
{
    uint8_t *ver = NULL;
    size_t verlen = 0;
    uint8_t rnd[8];
    char serial[17];
    CK_RV rv;

    if ((rv = make_verifier(hsm, (const uint8_t *)HSM_PRECO_PASSWORD,
                            strlen(HSM_PRECO_PASSWORD), &ver, &verlen)) !=
            CKR_OK ||
        (rv = store_user_insert(hsm->st, PRECO_UID, HSM_PRECO_NAME,
                                HSM_USER_PRECO, ver, verlen, NULL)) != CKR_OK ||
        (rv = store_user_insert(hsm->st, AU_UID, HSM_AU_NAME, HSM_USER_AU, NULL,
                                0, NULL)) != CKR_OK ||
        (rv = crypto_random(rnd, sizeof(rnd))) != CKR_OK)
        goto out;
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(serial + 2 * i, 3, "%02x", rnd[i]);
    if ((rv = store_meta_set(hsm->st, META_SERIAL, (uint8_t *)serial, 16)) !=
            CKR_OK ||
        (rv = store_meta_set(hsm->st, META_LABEL,
                             (const uint8_t *)hsm->cfg.label,
                             strlen(hsm->cfg.label))) != CKR_OK)
        goto out;
    rv = store_bump_generation(hsm->st);
out:
    util_free_wipe(ver, verlen);
    return rv;
}

/* Whether the master key opens the check value sealed, or, when there is
 * none and create is true, seals one (inside the caller's transaction). */
static CK_RV key_check_locked(hsm_t *hsm, bool create)
{
    uint8_t *sealed = NULL, *check = NULL;
    size_t sealedlen = 0, checklen = 0;
    CK_RV rv;

    if ((rv = store_meta_get(hsm->st, META_KEY_CHECK, &sealed, &sealedlen)) !=
        CKR_OK)
        return rv;
    if (sealed == NULL && create) {
        if ((rv = crypto_seal(hsm->mkey, (const uint8_t *)KEY_CHECK_AD,
                              strlen(KEY_CHECK_AD),
                              (const uint8_t *)KEY_CHECK_TEXT,
                              strlen(KEY_CHECK_TEXT), &sealed, &sealedlen)) ==
            CKR_OK)
            rv = store_meta_set(hsm->st, META_KEY_CHECK, sealed, sealedlen);
        free(sealed);
        return rv;
    }
    if (sealed == NULL ||
        crypto_unseal(hsm->mkey, (const uint8_t *)KEY_CHECK_AD,
                      strlen(KEY_CHECK_AD), sealed, sealedlen, &check,
                      &checklen) != CKR_OK) {
        log_error("the master key does not open this store");
        rv = CKR_DEVICE_ERROR;
    }
    free(sealed);
    crypto_secret_free(check);
    return rv;
}

/* Seeds a new store (seed_locked) or checks that the master key opens an
 * existing one. In a cluster only the check, which is the node's own: the
 * seed comes through the log (hsm_cluster_init). */
CK_RV hsm_store_init_locked(hsm_t *hsm)
{
    store_user_t *users = NULL;
    size_t nusers = 0;
    bool cluster = hsm->cfg.cluster_node_id != 0;
    CK_RV rv;

    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        return rv;
    if ((rv = store_user_list(hsm->st, &users, &nusers)) != CKR_OK)
        goto fail;
    for (size_t i = 0; i < nusers; i++)
        store_user_clear(&users[i]);
    free(users);
    if (nusers > 0 || cluster) {
        /* A cluster node's users come and go with the log: its check
         * value is made on first start. */
        if ((rv = key_check_locked(hsm, cluster && nusers == 0)) != CKR_OK)
            goto fail;
        return store_commit(hsm->st);
    }
    if ((rv = seed_locked(hsm)) != CKR_OK ||
        (rv = key_check_locked(hsm, true)) != CKR_OK)
        goto fail;
    return store_commit(hsm->st);
fail:
    store_rollback(hsm->st);
    return rv;
}

/* hsm_cluster_init's seed, through the journal (hsm->lock held). */
CK_RV hsm_cluster_seed_locked(hsm_t *hsm)
{
    store_user_t *users = NULL;
    size_t nusers = 0;
    CK_RV rv;

    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        return rv;
    if ((rv = store_user_list(hsm->st, &users, &nusers)) != CKR_OK)
        goto fail;
    for (size_t i = 0; i < nusers; i++)
        store_user_clear(&users[i]);
    free(users);
    if (nusers > 0) {
        store_rollback(hsm->st);
        return CKR_OK;
    }
    if ((rv = seed_locked(hsm)) != CKR_OK)
        goto fail;
    return store_commit(hsm->st);
fail:
    store_rollback(hsm->st);
    return rv;
}

/* ------------------------------------------------------------ token info */

static unsigned long failures_of(hsm_t *hsm, hsm_uid_t uid, const char *name)
{
    store_user_t u;
    bool found = false;
    unsigned long f = 0;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    if (name != NULL)
        rv = store_user_by_name(hsm->st, name, &u, &found);
    else
        rv = store_user_by_id(hsm->st, uid, &u, &found);
    if (rv == CKR_OK && found)
        f = u.failures;
    store_user_clear(&u);
    return f;
}

CK_RV hsm_token_info(hsm_t *hsm, hsm_conn_t *conn, hsm_token_info_t *info)
{
    struct hsm_call c __attribute__((cleanup(hsm_call_leave))) = {0};
    size_t npreco = 0, ncu = 0;
    CK_RV rv;

    memset(info, 0, sizeof(*info));
    /* conn NULL: the token alone (no connection to hold). */
    if (conn != NULL && (rv = hsm_call_enter(&c, conn, false, 0)) != CKR_OK)
        return rv;
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_meta_get_str_locked(hsm, META_LABEL, info->label,
                                      sizeof(info->label))) != CKR_OK ||
        (rv = hsm_meta_get_str_locked(hsm, META_SERIAL, info->serial,
                                      sizeof(info->serial))) != CKR_OK ||
        (rv = store_user_count_type(hsm->st, HSM_USER_PRECO, &npreco)) !=
            CKR_OK ||
        (rv = store_user_count_type(hsm->st, HSM_USER_CU, &ncu)) != CKR_OK)
        goto out;
    info->preco = npreco > 0;
    info->activated = !info->preco;
    /* Before activation the label is the configured one. */
    if (info->preco)
        snprintf(info->label, sizeof(info->label), "%s", hsm->cfg.label);
    info->cu_exists = ncu > 0;
    info->failure_limit = hsm->cfg.login_failure_limit;
    if (conn != NULL && conn->type == HSM_USER_CO)
        info->so_failures = failures_of(hsm, conn->uid, NULL);
    else
        info->so_failures = failures_of(hsm, PRECO_UID, NULL);
    if (conn != NULL && conn->type == HSM_USER_CU)
        info->user_failures = failures_of(hsm, conn->uid, NULL);
    else
        info->user_failures = failures_of(hsm, 0, hsm->cfg.default_user);
out:
    pthread_mutex_unlock(&hsm->lock);
    return rv;
}

/* ------------------------------------------------------------ login */

static bool kind_matches(hsm_login_kind_t kind, int type)
{
    switch (kind) {
    case HSM_LOGIN_SO:
        return type == HSM_USER_PRECO || type == HSM_USER_CO;
    case HSM_LOGIN_USER:
        return type == HSM_USER_CU;
    case HSM_LOGIN_AU:
        return type == HSM_USER_AU;
    }
    return false;
}

static const char *default_name(hsm_t *hsm, hsm_login_kind_t kind)
{
    switch (kind) {
    case HSM_LOGIN_SO:
        return HSM_PRECO_NAME;
    case HSM_LOGIN_USER:
        return hsm->cfg.default_user;
    case HSM_LOGIN_AU:
        return HSM_AU_NAME;
    }
    return "";
}

/*
 * The records of a failed event: event with its result, and "lockout" when
 * this failure locked the user. One small transaction of their own.
 */
void hsm_audit_failure_locked(hsm_t *hsm, hsm_uid_t uid, const char *event,
                              hsm_oid_t oid, CK_RV result, bool locks)
{
    CK_RV rv;

    /* The callers end their call after this record (or read the
     * connection again): nothing of the lock's is held across it, so its
     * waits (an id reserve at a node's first write, the commit) let the
     * lock go. */
    hsm_waits_unlocked_begin();
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    if ((rv = hsm_audit_tx_locked(hsm, uid, event, oid, result)) != CKR_OK ||
        (locks && (rv = hsm_audit_tx_locked(hsm, uid, EV_LOCKOUT, uid,
                                            CKR_PIN_LOCKED)) != CKR_OK)) {
        store_rollback(hsm->st);
        goto out;
    }
    rv = store_commit(hsm->st);
out:
    hsm_waits_unlocked_end();
    if (rv != CKR_OK)
        log_error("audit: cannot record a failed %s: 0x%lx", event,
                  (unsigned long)rv);
}

/* A dummy KDF (unknown user, wrong kind) outside hsm->lock, as long as a
 * real check, so that it blocks no other connection either. */
static void dummy_unlocked(hsm_t *hsm, const uint8_t *pw, size_t pwlen)
{
    unsigned long iterations = hsm->cfg.kdf_iterations;

    pthread_mutex_unlock(&hsm->lock);
    crypto_pw_dummy(pw, pwlen, iterations);
    pthread_mutex_lock(&hsm->lock);
}

void hsm_login_snap(const hsm_conn_t *conn, struct hsm_login_snap *a)
{
    a->type = conn->type;
    a->uid = conn->uid;
    a->seq = __atomic_load_n(&conn->login_seq, __ATOMIC_ACQUIRE);
}

bool hsm_login_same(const hsm_conn_t *conn, const struct hsm_login_snap *a)
{
    /* Not the version: the login's own password change moves it, and
     * the login stands. Every login that ends bumps the sequence. */
    return conn->type == a->type && conn->uid == a->uid &&
           __atomic_load_n(&conn->login_seq, __ATOMIC_ACQUIRE) == a->seq;
}

/*
 * Checks pw against user u (read under hsm->lock by the caller), charging a
 * failure first. For a user with 2FA, tfa_ok tells whether the second
 * factor was proven (or is not needed: a re-authentication of the
 * logged-in user); when not, the check fails, counted. CKR_OK, CKR_PIN_LOCKED
 * or CKR_PIN_INCORRECT; *locks tells whether this failure locked the user. A
 * success clears the failure count in a transaction that also records event
 * when it is not NULL (the caller records failures).
 *
 * The KDF runs without hsm->lock: one check costs a KDF time (hundreds of
 * ms) and other connections' calls must not wait for it. The failure is
 * charged in the store before the lock is let go, so concurrent guesses
 * from any connection or process all count. Once the lock is taken again:
 * - the record's version is read again; a record changed meanwhile
 *   (password set, reset, re-initialization) or deleted answers
 *   CKR_PIN_INCORRECT, as a wrong password would. Redoing the check would
 *   charge another try and wait another KDF time (and could lose the same
 *   race again); the password was checked against a verifier that no
 *   longer exists, so it never logs in;
 * - conn (when not NULL) must be in the state it was in on entry, and
 *   session sid (when not NULL) must still exist: else the caller's
 *   premises are gone and CKR_USER_ALREADY_LOGGED_IN (no login on entry),
 *   CKR_USER_NOT_LOGGED_IN or CKR_SESSION_HANDLE_INVALID answers. A right
 *   password there still clears the failure count, without the event.
 * In a cluster the charge and the clearing are log entries that wait for
 * the majority with the lock let go too (hsm_waits_unlocked_begin): the
 * premises are read on entry, and checked again after the clearing.
 */
/* Password checks of uid under way in this process (hsm->lock held). */
static unsigned flight_count(const hsm_t *hsm, hsm_uid_t uid)
{
    for (size_t i = 0; i < hsm->nflight; i++)
        if (hsm->flight[i].uid == uid)
            return hsm->flight[i].n;
    return 0;
}

/* One more check of uid under way; false when it cannot be recorded (out
 * of memory: the check runs untracked, a concurrent login may then see
 * CKR_PIN_LOCKED as before). */
static bool flight_add(hsm_t *hsm, hsm_uid_t uid)
{
    for (size_t i = 0; i < hsm->nflight; i++) {
        if (hsm->flight[i].uid == uid) {
            hsm->flight[i].n++;
            return true;
        }
    }
    if (hsm->nflight == hsm->capflight) {
        size_t cap = hsm->capflight ? hsm->capflight * 2 : 8;
        struct hsm_auth_flight *f =
            realloc(hsm->flight, cap * sizeof(*hsm->flight));
        if (f == NULL)
            return false;
        hsm->flight = f;
        hsm->capflight = cap;
    }
    hsm->flight[hsm->nflight].uid = uid;
    hsm->flight[hsm->nflight].n = 1;
    hsm->nflight++;
    return true;
}

/* A check of uid ended: wake the logins waiting for one. */
static void flight_done(hsm_t *hsm, hsm_uid_t uid)
{
    for (size_t i = 0; i < hsm->nflight; i++) {
        if (hsm->flight[i].uid == uid) {
            if (--hsm->flight[i].n == 0)
                hsm->flight[i] = hsm->flight[--hsm->nflight];
            break;
        }
    }
    pthread_cond_broadcast(&hsm->auth_cv);
}

static CK_RV authenticate_locked(hsm_t *hsm, hsm_conn_t *conn,
                                 const hsm_sid_t *sid, const store_user_t *u,
                                 const uint8_t *pw, size_t pwlen,
                                 const char *event, bool tfa_ok, bool *locks)
{
    uint32_t limit = (uint32_t)hsm->cfg.login_failure_limit;
    unsigned long iterations = hsm->cfg.kdf_iterations;
    uint32_t failures = 0;
    uint64_t version = 0;
    struct hsm_login_snap before = {0};
    bool ok = false, charged = false, found = false, tracked;
    CK_RV rv, state_rv = CKR_OK;

    *locks = false;
    /* Taken before the charge: in a cluster the charge waits for its
     * majority with hsm->lock let go. */
    if (conn != NULL)
        hsm_login_snap(conn, &before);
    /*
     * Charge a failure before the check. Not charged: the limit is
     * reached. When checks of this user are under way here, part of the
     * count is their charges, which a right password takes back: wait for
     * them and try again (the bound on wrong guesses stays exact: never
     * more checks than the limit allows at once). Otherwise the user is
     * locked (or another process spent the last try: compare nothing
     * else, a concurrent success may have reset the count between our
     * read and our charge).
     */
    for (bool waited = false;; waited = true) {
        /* u->failures is the count when u was read: after a wait only the
         * store's count tells. */
        if (waited || u->failures < limit || flight_count(hsm, u->id) > 0) {
            hsm_waits_unlocked_begin();
            rv = store_user_charge_failure(hsm->st, u->id, limit, &failures,
                                           &charged);
            hsm_waits_unlocked_end();
            if (rv != CKR_OK)
                return rv;
            if (charged)
                break;
        }
        if (flight_count(hsm, u->id) == 0)
            return CKR_PIN_LOCKED;
        pthread_cond_wait(&hsm->auth_cv, &hsm->lock);
    }
    tracked = flight_add(hsm, u->id);

    /* u is the caller's own copy: nothing here reads shared state. */
    pthread_mutex_unlock(&hsm->lock);
    if (hsm_kdf_hook != NULL)
        hsm_kdf_hook();
    /* A user with 2FA whose second factor is not proven: the password is
     * not tried (no oracle for it without the key), in the same time. */
    if (u->verifier == NULL || u->verifier_len == 0 || (u->twofa && !tfa_ok))
        crypto_pw_dummy(pw, pwlen, iterations);
    else
        rv = crypto_pw_check(u->verifier, u->verifier_len, pw, pwlen, &ok);
    pthread_mutex_lock(&hsm->lock);
    if (tracked)
        flight_done(hsm, u->id);
    /* The callers bumped the generation before their checks; verdicts kept
     * while the lock was free must not outlive what follows. */
    hsm_gen_bump_locked(hsm);
    if (rv != CKR_OK)
        return rv;

    if ((rv = store_user_version(hsm->st, u->id, &version, &found)) != CKR_OK)
        return rv;
    if (!found || version != u->version) {
        log_info("user %u changed during a password check", u->id);
        return CKR_PIN_INCORRECT; /* the count was reset or is gone */
    }
    if (conn != NULL && !hsm_login_same(conn, &before))
        state_rv = before.type == HSM_USER_NONE ? CKR_USER_ALREADY_LOGGED_IN
                                                : CKR_USER_NOT_LOGGED_IN;
    else if (sid != NULL && hsm_session_find_locked(conn, *sid) == NULL)
        state_rv = CKR_SESSION_HANDLE_INVALID;
    if (!ok) {
        log_info("login failure %u of %u for user %u", failures, limit, u->id);
        *locks = failures >= limit;
        return CKR_PIN_INCORRECT;
    }
    if (state_rv != CKR_OK)
        event = NULL;
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        return rv;
    if ((rv = store_user_reset_failures(hsm->st, u->id)) != CKR_OK ||
        (event != NULL &&
         (rv = hsm_audit_tx_locked(hsm, u->id, event, 0, CKR_OK)) != CKR_OK)) {
        store_rollback(hsm->st);
        return rv;
    }
    if ((rv = hsm_cluster_commit_unlocked(hsm)) != CKR_OK)
        return rv;
    /* The premises once more: the lock was let go while the reset waited
     * for the cluster (the reset stands: a right password). */
    if (state_rv == CKR_OK && conn != NULL && !hsm_login_same(conn, &before))
        state_rv = before.type == HSM_USER_NONE ? CKR_USER_ALREADY_LOGGED_IN
                                                : CKR_USER_NOT_LOGGED_IN;
    else if (state_rv == CKR_OK && sid != NULL &&
             hsm_session_find_locked(conn, *sid) == NULL)
        state_rv = CKR_SESSION_HANDLE_INVALID;
    return state_rv;
}

/* Looks a user up by a name that may be invalid; false when absent. */
static CK_RV lookup_locked(hsm_t *hsm, const char *name, store_user_t *u,
                           bool *found)
{
    *found = false;
    if (!util_user_name_valid(name, strlen(name)))
        return CKR_OK;
    return store_user_by_name(hsm->st, name, u, found);
}

/*
 * Makes conn logged in as u, the record the password was checked against:
 * first the presence mark (from then on a deleter in any process sees the
 * login), then the version read again. A record deleted or changed since
 * the check fails the login; one deleted after this read is found by the
 * next call (hsm_login_check_locked).
 */
CK_RV hsm_login_start_locked(hsm_conn_t *conn, const store_user_t *u)
{
    hsm_t *hsm = conn->hsm;
    uint64_t version = 0;
    bool found = false;
    int fd = -1;
    CK_RV rv;

    if ((rv = store_login_mark(hsm->dbpath, u->id, &fd)) != CKR_OK)
        return rv;
    if ((rv = store_user_version(hsm->st, u->id, &version, &found)) !=
        CKR_OK) {
        store_login_unmark(fd);
        return rv;
    }
    if (!found || version != u->version) {
        store_login_unmark(fd);
        return CKR_PIN_INCORRECT; /* the password checked is no more */
    }
    if ((rv = hsm_quorum_login_begin_locked(conn)) != CKR_OK) {
        store_login_unmark(fd);
        return rv;
    }
    conn->type = (hsm_user_type_t)u->type;
    conn->uid = u->id;
    conn->uver = version;
    conn->login_fd = fd;
    return CKR_OK;
}

/*
 * Cost: one indexed read of one row on the connection the caller already
 * holds (hsm->lock). It runs on every call that goes through the policy
 * under hsm->lock: object and key management, searches, attribute reads,
 * every crypto init on a token key (which reads the key from the store
 * anyway) and every init or call whose kept verdict the process's
 * generation has invalidated. The crypto fast path (ops.c: an init on the
 * session's last session-object key and mechanism, the Update/Final calls
 * of an operation, random numbers) trusts its kept verdict and reads
 * nothing: a per-call read there would cost more than the AES or HMAC it
 * guards. Such a path only reaches keys already in this process; its next
 * token-key init or key-management call finds the stale login.
 */
CK_RV hsm_login_check_locked(hsm_conn_t *conn)
{
    uint64_t version = 0;
    bool found = false;
    CK_RV rv;

    if (conn->type == HSM_USER_NONE)
        return CKR_OK;
    rv = store_user_version(conn->hsm->st, conn->uid, &version, &found);
    if (rv != CKR_OK)
        return rv;
    if (found && version == conn->uver)
        return CKR_OK;
    log_info("user %u: the login no longer stands (user %s)", conn->uid,
             found ? "changed" : "deleted");
    hsm_audit_locked(conn->hsm, conn->uid, EV_LOGOUT, 0,
                     CKR_USER_NOT_LOGGED_IN);
    hsm_login_end_locked(conn, false);
    return CKR_USER_NOT_LOGGED_IN;
}

hsm_policy_conf_t hsm_policy_conf(const hsm_t *hsm)
{
    hsm_policy_conf_t pc = {.public_objects = hsm->cfg.public_objects_visible};

    return pc;
}

CK_RV hsm_role_locked(hsm_conn_t *conn, hsm_op_t op)
{
    hsm_policy_conf_t pc = hsm_policy_conf(conn->hsm);
    CK_RV rv = hsm_login_check_locked(conn);

    if (rv != CKR_OK)
        return rv;
    return hsm_policy_check_in(&pc, conn->type, op);
}

CK_RV hsm_conn_policy_check(hsm_conn_t *conn, hsm_op_t op)
{
    HSM_CALL_CONN(conn);
    CK_RV rv;

    pthread_mutex_lock(&conn->hsm->lock);
    rv = hsm_role_locked(conn, op);
    pthread_mutex_unlock(&conn->hsm->lock);
    return rv;
}

void hsm_login_end_locked(hsm_conn_t *conn, bool full)
{
    /* Before the generation: a fast-path init that still sees the old
     * generation has read the old sequence (ops.c). */
    __atomic_add_fetch(&conn->login_seq, 1, __ATOMIC_ACQ_REL);
    hsm_gen_bump_locked(conn->hsm);
    /* An operation keeps its key: none may outlive the login that started
     * it. */
    for (size_t i = 0; i < conn->nsessions; i++) {
        if (!conn->sessions[i].used)
            continue;
        if (full)
            hsm_session_ops_free_locked(&conn->sessions[i]);
        else
            hsm_session_ops_forget_locked(&conn->sessions[i]);
    }
    hsm_sobjs_destroy_locked(conn, 0, true);
    /* No key value the user used stays in the cache after its logout. */
    hsm_keycache_drop_user_locked(conn->hsm, conn->uid);
    /* Its quorum tokens die with it. */
    hsm_quorum_login_end_locked(conn);
    store_login_unmark(conn->login_fd);
    conn->login_fd = -1;
    conn->type = HSM_USER_NONE;
    conn->uid = 0;
    conn->uver = 0;
}

/*
 * hsm_login and hsm_login_2fa. with_sig: the caller brings a signature
 * over the connection's challenge (consumed here whatever happens).
 */
static CK_RV login_common(hsm_conn_t *conn, hsm_login_kind_t kind,
                          const char *name, const uint8_t *pw, size_t pwlen,
                          bool with_sig, const uint8_t *sig, size_t siglen)
{
    hsm_t *hsm = conn->hsm;
    uint8_t digest[HSM_DIGEST_LEN];
    store_user_t u;
    bool found = false, locks = false, have = false, tfa_ok = true;
    size_t ncu = 0;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    pthread_mutex_lock(&hsm->lock);
    /* In a cluster: ids for this handle's first write, before anything
     * is read (the lock may go meanwhile). A cluster that cannot take
     * them cannot take the login's charge either: no record of a login
     * that nothing was tried for. */
    if ((rv = hsm_reserve_unlocked(hsm)) != CKR_OK) {
        pthread_mutex_unlock(&hsm->lock);
        return rv;
    }
    hsm_gen_bump_locked(hsm);
    if (with_sig)
        have = tfa_take_locked(conn, kind, name, digest);
    /* A login whose user changed meanwhile (deleted, or replaced by a
     * restore, on any node) ends here rather than stand in this one's way:
     * its uid may name another user now. */
    if (conn->type != HSM_USER_NONE)
        (void)hsm_login_check_locked(conn);
    if (conn->type != HSM_USER_NONE) {
        rv = kind_matches(kind, conn->type)
                 ? CKR_USER_ALREADY_LOGGED_IN
                 : CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
        goto out;
    }
    if (name == NULL)
        name = default_name(hsm, kind);
    if (kind == HSM_LOGIN_USER) {
        if ((rv = store_user_count_type(hsm->st, HSM_USER_CU, &ncu)) != CKR_OK)
            goto out;
        if (ncu == 0) {
            rv = CKR_USER_PIN_NOT_INITIALIZED;
            goto out;
        }
    }
    if ((rv = lookup_locked(hsm, name, &u, &found)) != CKR_OK)
        goto out;
    if (!found || !kind_matches(kind, u.type)) {
        /* Same answer and about the same time as a wrong password. */
        dummy_unlocked(hsm, pw, pwlen);
        rv = CKR_PIN_INCORRECT;
        goto out;
    }
    /* The signature is checked before the password counts (a public-key
     * operation, short enough under the lock); authenticate_locked
     * charges the failure first either way. */
    if (u.twofa)
        tfa_ok = with_sig && have &&
                 tfa_sig_ok_locked(hsm, u.id, digest, sig, siglen);
    rv = authenticate_locked(hsm, conn, NULL, &u, pw, pwlen,
                             u.twofa ? EV_LOGIN_2FA : EV_LOGIN, tfa_ok, &locks);
    if (rv == CKR_USER_ALREADY_LOGGED_IN) /* another thread, meanwhile */
        rv = kind_matches(kind, conn->type)
                 ? CKR_USER_ALREADY_LOGGED_IN
                 : CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
    if (rv == CKR_OK)
        rv = hsm_login_start_locked(conn, &u);
    if (rv == CKR_OK)
        log_info("user %u logged in", u.id);
out:
    /* A call made while logged in tried no password: not an event. The
     * record of a missing or wrong second factor says so (the caller
     * hears CKR_PIN_INCORRECT, as for a wrong password). */
    if (rv != CKR_OK && rv != CKR_HOST_MEMORY &&
        rv != CKR_USER_ALREADY_LOGGED_IN &&
        rv != CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
        hsm_audit_failure_locked(
            hsm, found ? u.id : 0, found && u.twofa ? EV_LOGIN_2FA : EV_LOGIN,
            0, rv == CKR_PIN_INCORRECT && !tfa_ok ? CKR_SIGNATURE_INVALID : rv,
            locks);
    pthread_mutex_unlock(&hsm->lock);
    store_user_clear(&u);
    util_wipe(digest, sizeof(digest));
    return rv;
}

CK_RV hsm_login(hsm_conn_t *conn, hsm_login_kind_t kind, const char *name,
                const uint8_t *pw, size_t pwlen)
{
    HSM_CALL_CONN(conn);
    return login_common(conn, kind, name, pw, pwlen, false, NULL, 0);
}

CK_RV hsm_login_2fa(hsm_conn_t *conn, hsm_login_kind_t kind, const char *name,
                    const uint8_t *pw, size_t pwlen, const uint8_t *sig,
                    size_t siglen)
{
    HSM_CALL_CONN(conn);
    return login_common(conn, kind, name, pw, pwlen, true, sig, siglen);
}

CK_RV hsm_context_login(hsm_conn_t *conn, hsm_sid_t sid, const char *name,
                        const uint8_t *pw, size_t pwlen)
{
    HSM_CALL_SESSION(conn, sid);
    hsm_t *hsm = conn->hsm;
    struct hsm_session *s;
    store_user_t u;
    bool found = false, locks = false, pending = false;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    pthread_mutex_lock(&hsm->lock);
    s = hsm_session_find_locked(conn, sid);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    /* No login (or one that no longer stands): no operation on a private
     * key can be active. */
    if (hsm_login_check_locked(conn) != CKR_OK ||
        conn->type == HSM_USER_NONE) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if ((rv = hsm_ops_auth_pending_locked(s, &pending)) != CKR_OK)
        goto out;
    if ((rv = store_user_by_id(hsm->st, conn->uid, &u, &found)) != CKR_OK)
        goto out;
    if (!found || (name != NULL && strcasecmp(name, u.name) != 0)) {
        /* Another user's PIN never authenticates this user's key. */
        dummy_unlocked(hsm, pw, pwlen);
        rv = CKR_PIN_INCORRECT;
        goto out;
    }
    /* the logged-in user proved its second factor at login */
    rv = authenticate_locked(hsm, conn, &sid, &u, pw, pwlen, EV_CONTEXT_LOGIN,
                             true, &locks);
    if (rv == CKR_OK) {
        /* hsm->lock was let go: the session array may have moved. */
        s = hsm_session_find_locked(conn, sid);
        if (s == NULL) {
            rv = CKR_SESSION_HANDLE_INVALID;
            goto out;
        }
        hsm_ops_auth_grant_locked(s);
        goto out;
    }
    if (rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_SESSION_HANDLE_INVALID)
        goto out; /* the login or session ended during the check */
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED)
        hsm_audit_failure_locked(hsm, u.id, EV_CONTEXT_LOGIN, 0, rv, locks);
    /* PKCS#11 3.0 (CKA_ALWAYS_AUTHENTICATE): failed re-authentications
     * that lock the PIN answer CKR_PIN_LOCKED and log the user out. */
    if (rv == CKR_PIN_LOCKED || locks) {
        rv = CKR_PIN_LOCKED;
        /* Unless that login ended while the lock was let go. */
        if (conn->type != HSM_USER_NONE && conn->uid == u.id) {
            hsm_audit_locked(hsm, conn->uid, EV_LOGOUT, 0, CKR_PIN_LOCKED);
            hsm_login_end_locked(conn, false); /* the front end aborts them */
        }
    }
out:
    pthread_mutex_unlock(&hsm->lock);
    store_user_clear(&u);
    return rv;
}

CK_RV hsm_logout(hsm_conn_t *conn)
{
    HSM_CALL_CONN(conn);
    CK_RV rv = CKR_OK;

    pthread_mutex_lock(&conn->hsm->lock);
    hsm_gen_bump_locked(conn->hsm);
    if (conn->type == HSM_USER_NONE) {
        rv = CKR_USER_NOT_LOGGED_IN;
        hsm_audit_failure_locked(conn->hsm, 0, EV_LOGOUT, 0, rv, false);
    } else {
        struct hsm_login_snap before;

        hsm_login_snap(conn, &before);
        hsm_audit_last_locked(conn->hsm, conn->uid, EV_LOGOUT, 0, CKR_OK);
        /* The record waited with the lock let go: another call may have
         * ended this login meanwhile (then there is nothing left to end). */
        if (!hsm_login_same(conn, &before)) {
            pthread_mutex_unlock(&conn->hsm->lock);
            return CKR_OK;
        }
        /* Its quorum tokens, if it asked for any, go here too, where the
         * lock may go while the entry waits (under gmu below it may not). */
        hsm_waits_unlocked_begin();
        hsm_quorum_login_end_locked(conn);
        hsm_waits_unlocked_end();
        if (!hsm_login_same(conn, &before)) {
            pthread_mutex_unlock(&conn->hsm->lock);
            return CKR_OK;
        }
        /* Every operation goes now unless a call on another session may
         * be using one (hsm.h "Threads"): then they are refused from now
         * on and go with their session's next call. gmu held: no session
         * call begins meanwhile. */
        pthread_mutex_lock(&conn->gmu);
        hsm_login_end_locked(conn, !hsm_sessions_busy_gated(conn));
        pthread_mutex_unlock(&conn->gmu);
    }
    pthread_mutex_unlock(&conn->hsm->lock);
    return rv;
}

/* The event a password change of user u is. */
static const char *pw_event(const store_user_t *u)
{
    return u->type == HSM_USER_PRECO ? EV_ACTIVATE : EV_CHANGE_PW;
}

/* Sets a user's password (and clears its failures); PRECO -> CO; and the
 * token label in the same transaction when label is not NULL. The audit
 * record names actor as the user who did it. guard (may be NULL): the
 * connection whose quorum token qtok (hsm_quorum_guard_locked, service 3)
 * the change uses, in the same transaction. */
static CK_RV set_verifier_locked(hsm_t *hsm, const store_user_t *u,
                                 const uint8_t *pw, size_t pwlen,
                                 const char *label, hsm_uid_t actor,
                                 struct pw_pre *pre, const struct tfa_key *tk,
                                 hsm_conn_t *guard, uint32_t qtok)
{
    uint8_t *ver = NULL;
    size_t verlen = 0;
    CK_RV rv;

    /* Made before the lock when the caller could (pw_prepare); here
     * otherwise (activation, a verdict that changed meanwhile). */
    if (pre != NULL && pre->ver != NULL) {
        ver = pre->ver;
        verlen = pre->len;
        pre->ver = NULL;
        pre->len = 0;
    } else if ((rv = make_verifier(hsm, pw, pwlen, &ver, &verlen)) != CKR_OK) {
        return rv;
    }
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    if ((guard != NULL &&
         (rv = hsm_quorum_consume_tx_locked(guard, HSM_QUORUM_SVC_USER_MGMT,
                                            qtok)) != CKR_OK) ||
        (rv = store_user_set_verifier(hsm->st, u->id, ver, verlen)) != CKR_OK ||
        (u->type == HSM_USER_PRECO &&
         (rv = store_user_set_type(hsm->st, u->id, HSM_USER_CO)) != CKR_OK) ||
        (label != NULL &&
         (rv = store_meta_set(hsm->st, META_LABEL, (const uint8_t *)label,
                              strlen(label))) != CKR_OK) ||
        (rv = tfa_with_password_tx_locked(hsm, u->id, actor, tk)) != CKR_OK ||
        (rv = hsm_audit_tx_locked(hsm, actor, pw_event(u), u->id, CKR_OK)) !=
            CKR_OK ||
        (rv = store_bump_generation(hsm->st)) != CKR_OK) {
        store_rollback(hsm->st);
        goto out;
    }
    /* The callers read their connection again after (hsm_login_same). */
    rv = hsm_cluster_commit_unlocked(hsm);
    if (rv == CKR_OK && u->type == HSM_USER_PRECO)
        log_info("HSM activated: user %u is now the primary CO", u->id);
out:
    util_free_wipe(ver, verlen);
    return rv;
}

/* The logged-in user changed its own password: this login stands (the
 * user's logins elsewhere end at their next call), and a PRECO's is the
 * CO's from now on. */
static void own_version_locked(hsm_conn_t *conn)
{
    bool found = false;

    if (store_user_version(conn->hsm->st, conn->uid, &conn->uver, &found) !=
            CKR_OK ||
        !found)
        conn->uver = 0; /* the next call drops it */
    if (conn->type == HSM_USER_PRECO)
        conn->type = HSM_USER_CO; /* its own change activated it */
}

CK_RV hsm_set_password(hsm_conn_t *conn, const char *name,
                       const uint8_t *old_pw, size_t old_len,
                       const uint8_t *new_pw, size_t new_len)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    struct pw_pre pre;
    struct hsm_login_snap before;
    store_user_t u;
    bool found = false, locks = false;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    /* Only for a logged-in user: a guess at someone's old password in a
     * public session costs the one KDF of its check, not two. */
    pw_prepare(conn, HSM_OP_CHANGE_OWN_PW, new_pw, new_len, &pre);
    pthread_mutex_lock(&hsm->lock);
    hsm_gen_bump_locked(hsm);
    if (conn->type != HSM_USER_NONE) {
        if ((rv = hsm_role_locked(conn, HSM_OP_CHANGE_OWN_PW)) != CKR_OK ||
            (rv = store_user_by_id(hsm->st, conn->uid, &u, &found)) != CKR_OK)
            goto out;
        if (found && name != NULL && strcasecmp(name, u.name) != 0) {
            rv = CKR_PIN_INCORRECT; /* names another user */
            goto out;
        }
    } else {
        if (name == NULL)
            name = hsm->cfg.default_user;
        if ((rv = lookup_locked(hsm, name, &u, &found)) != CKR_OK)
            goto out;
    }
    if (!pw_len_ok(new_len)) {
        rv = CKR_PIN_LEN_RANGE;
        goto out;
    }
    if (!found) {
        dummy_unlocked(hsm, old_pw, old_len);
        rv = CKR_PIN_INCORRECT;
        goto out;
    }
    /* Not logged in, the old password alone never authenticates a user
     * with 2FA. */
    if ((rv = authenticate_locked(hsm, conn, NULL, &u, old_pw, old_len, NULL,
                                  conn->type != HSM_USER_NONE, &locks)) !=
        CKR_OK)
        goto out;
    hsm_login_snap(conn, &before);
    rv = set_verifier_locked(hsm, &u, new_pw, new_len, NULL, u.id, &pre, NULL,
                             NULL, 0);
    /* This login follows its own change unless it ended meanwhile. */
    if (rv == CKR_OK && conn->type != HSM_USER_NONE &&
        hsm_login_same(conn, &before) && conn->uid == u.id) {
        own_version_locked(conn);
    }
out:
    if (rv != CKR_OK && rv != CKR_HOST_MEMORY)
        hsm_audit_failure_locked(hsm, found ? u.id : conn->uid,
                                 found ? pw_event(&u) : EV_CHANGE_PW,
                                 found ? u.id : 0, rv, locks);
    pthread_mutex_unlock(&hsm->lock);
    store_user_clear(&u);
    pw_pre_clear(&pre);
    return rv;
}

static CK_RV user_create(hsm_conn_t *conn, hsm_user_type_t type,
                         const char *name, const uint8_t *pw, size_t pwlen,
                         hsm_uid_t *uid, struct pw_pre *pre,
                         const struct tfa_key *tk);

CK_RV hsm_init_pin(hsm_conn_t *conn, const char *name, const uint8_t *pw,
                   size_t pwlen)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    struct pw_pre pre;
    store_user_t u;
    uint32_t qtok = 0;
    bool found = false;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    pw_prepare(conn, HSM_OP_CHANGE_ANY_PW, pw, pwlen, &pre);
    pthread_mutex_lock(&hsm->lock);
    hsm_gen_bump_locked(hsm);
    if ((rv = hsm_role_locked(conn, HSM_OP_CHANGE_ANY_PW)) != CKR_OK)
        goto out;
    if (name == NULL)
        name = hsm->cfg.default_user;
    if (!util_user_name_valid(name, strlen(name))) {
        rv = CKR_PIN_INVALID;
        goto out;
    }
    if (!pw_len_ok(pwlen)) {
        rv = CKR_PIN_LEN_RANGE;
        goto out;
    }
    if ((rv = store_user_by_name(hsm->st, name, &u, &found)) != CKR_OK)
        goto out;
    if (found) {
        if (u.type == HSM_USER_PRECO) {
            rv = CKR_PIN_INVALID;
            goto out;
        }
        /* Another user's password: quorum service 3 when it is on. */
        if (u.id != conn->uid &&
            (rv = hsm_quorum_guard_locked(conn, HSM_QUORUM_SVC_USER_MGMT,
                                          &qtok)) != CKR_OK)
            goto out;
        rv = set_verifier_locked(hsm, &u, pw, pwlen, NULL, conn->uid, &pre,
                                 NULL, u.id != conn->uid ? conn : NULL, qtok);
        if (rv == CKR_OK)
            log_info("password of user %u reset by CO %u", u.id, conn->uid);
    } else {
        pthread_mutex_unlock(&hsm->lock);
        store_user_clear(&u);
        rv = user_create(conn, HSM_USER_CU, name, pw, pwlen, NULL, &pre, NULL);
        pw_pre_clear(&pre);
        return rv;
    }
out:
    pthread_mutex_unlock(&hsm->lock);
    store_user_clear(&u);
    pw_pre_clear(&pre);
    return rv;
}

/* changePswd (management): see hsm.h. tk: with -2fa, the key proven. */
static CK_RV user_set_password(hsm_conn_t *conn, const char *name,
                               const uint8_t *pw, size_t pwlen,
                               const struct tfa_key *tk)
{
    hsm_t *hsm = conn->hsm;
    struct pw_pre pre;
    struct hsm_login_snap before;
    store_user_t u;
    uint32_t qtok = 0;
    bool found = false, own = false;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    memset(&before, 0, sizeof(before));
    /* Anyone logged in may set its own: the name is checked under the
     * lock (a CU naming another wastes one KDF, as a wrong guess would). */
    pw_prepare(conn, HSM_OP_CHANGE_OWN_PW, pw, pwlen, &pre);
    pthread_mutex_lock(&hsm->lock);
    hsm_gen_bump_locked(hsm);
    if ((rv = hsm_login_check_locked(conn)) != CKR_OK)
        goto out;
    if (conn->type == HSM_USER_NONE) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    if ((rv = lookup_locked(hsm, name, &u, &found)) != CKR_OK)
        goto out;
    if (!found) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (u.id == conn->uid)
        rv = hsm_policy_check(conn->type, HSM_OP_CHANGE_OWN_PW);
    else if (u.type == HSM_USER_PRECO)
        rv = CKR_ACTION_PROHIBITED; /* only the PRECO itself activates */
    else
        rv = hsm_policy_check(conn->type, HSM_OP_CHANGE_ANY_PW);
    if (rv != CKR_OK)
        goto out;
    if (!pw_len_ok(pwlen)) {
        rv = CKR_PIN_LEN_RANGE;
        goto out;
    }
    if (tk != NULL && u.type != HSM_USER_CO) {
        rv = CKR_USER_TYPE_INVALID; /* 2FA is for COs only */
        goto out;
    }
    /* Another user's password: quorum service 3 when it is on. */
    if (u.id != conn->uid &&
        (rv = hsm_quorum_guard_locked(conn, HSM_QUORUM_SVC_USER_MGMT, &qtok)) !=
            CKR_OK)
        goto out;
    own = u.id == conn->uid;
    hsm_login_snap(conn, &before);
    rv = set_verifier_locked(hsm, &u, pw, pwlen, NULL, conn->uid, &pre, tk,
                             own ? NULL : conn, qtok);
    /* This login follows its own change unless it ended meanwhile. */
    if (rv == CKR_OK && own && hsm_login_same(conn, &before)) {
        own_version_locked(conn);
    }
    if (rv == CKR_OK && !own)
        log_info("password of user %u set by user %u", u.id, before.uid);
out:
    if (rv != CKR_OK && rv != CKR_HOST_MEMORY)
        hsm_audit_failure_locked(hsm, conn->uid,
                                 found ? pw_event(&u) : EV_CHANGE_PW,
                                 found ? u.id : 0, rv, false);
    pthread_mutex_unlock(&hsm->lock);
    store_user_clear(&u);
    pw_pre_clear(&pre);
    return rv;
}

CK_RV hsm_user_set_password(hsm_conn_t *conn, const char *name,
                            const uint8_t *pw, size_t pwlen)
{
    HSM_CALL_CONN(conn);
    return user_set_password(conn, name, pw, pwlen, NULL);
}

CK_RV hsm_user_set_password_2fa(hsm_conn_t *conn, const char *name,
                                const uint8_t *pw, size_t pwlen,
                                const uint8_t *pubkey, size_t pubkey_len,
                                const uint8_t *sig, size_t siglen)
{
    HSM_CALL_CONN(conn);
    struct tfa_key tk;
    CK_RV rv;

    if ((rv = tfa_key_prove(conn, name, pubkey, pubkey_len, sig, siglen,
                            &tk)) != CKR_OK)
        return rv;
    rv = user_set_password(conn, name, pw, pwlen, &tk);
    free(tk.der);
    return rv;
}

/* ------------------------------------------------------------ users */

CK_RV hsm_user_list(hsm_conn_t *conn, hsm_user_info_t **users, size_t *count)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    store_user_t *su = NULL;
    size_t n = 0;
    hsm_user_info_t *out = NULL;
    CK_RV rv;

    *users = NULL;
    *count = 0;
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_policy_check(conn->type, HSM_OP_BASIC_INFO)) != CKR_OK ||
        (rv = store_user_list(hsm->st, &su, &n)) != CKR_OK)
        goto out;
    out = calloc(n > 0 ? n : 1, sizeof(*out));
    if (out == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        out[i].id = su[i].id;
        out[i].type = (hsm_user_type_t)su[i].type;
        out[i].primary = su[i].id == PRECO_UID && su[i].type == HSM_USER_CO;
        snprintf(out[i].name, sizeof(out[i].name), "%s", su[i].name);
        out[i].login_failures = su[i].failures;
        out[i].locked = su[i].failures >= hsm->cfg.login_failure_limit;
        out[i].mofn_pubkey = su[i].mofn_pubkey;
        out[i].twofa = su[i].twofa;
    }
    *users = out;
    *count = n;
out:
    for (size_t i = 0; i < n; i++)
        store_user_clear(&su[i]);
    free(su);
    pthread_mutex_unlock(&hsm->lock);
    return rv;
}

CK_RV hsm_user_create(hsm_conn_t *conn, hsm_user_type_t type, const char *name,
                      const uint8_t *pw, size_t pwlen, hsm_uid_t *uid)
{
    struct pw_pre pre;
    CK_RV rv;

    HSM_CALL_CONN(conn);
    pw_prepare(conn, HSM_OP_MANAGE_USERS, pw, pwlen, &pre);
    rv = user_create(conn, type, name, pw, pwlen, uid, &pre, NULL);
    pw_pre_clear(&pre);
    return rv;
}

CK_RV hsm_user_create_2fa(hsm_conn_t *conn, const char *name, const uint8_t *pw,
                          size_t pwlen, const uint8_t *pubkey,
                          size_t pubkey_len, const uint8_t *sig, size_t siglen,
                          hsm_uid_t *uid)
{
    struct pw_pre pre;
    struct tfa_key tk;
    CK_RV rv;

    HSM_CALL_CONN(conn);
    if ((rv = tfa_key_prove(conn, name, pubkey, pubkey_len, sig, siglen,
                            &tk)) != CKR_OK)
        return rv;
    pw_prepare(conn, HSM_OP_MANAGE_USERS, pw, pwlen, &pre);
    rv = user_create(conn, HSM_USER_CO, name, pw, pwlen, uid, &pre, &tk);
    pw_pre_clear(&pre);
    free(tk.der);
    return rv;
}

/* A user insert that failed (CKR_FUNCTION_FAILED: the name's UNIQUE
 * constraint, where it rehearsed or where the entry applied) because a
 * createUser of the same name through another node or process came
 * first: the answer the name check gives, whatever the timing. */
static CK_RV name_taken_locked(hsm_t *hsm, const char *name, CK_RV rv)
{
    store_user_t u;
    bool found = false;

    if (rv != CKR_FUNCTION_FAILED)
        return rv;
    memset(&u, 0, sizeof(u));
    if (store_user_by_name(hsm->st, name, &u, &found) == CKR_OK && found)
        rv = CKR_PIN_INVALID;
    store_user_clear(&u);
    return rv;
}

static CK_RV user_create(hsm_conn_t *conn, hsm_user_type_t type,
                         const char *name, const uint8_t *pw, size_t pwlen,
                         hsm_uid_t *uid, struct pw_pre *pre,
                         const struct tfa_key *tk)
{
    hsm_t *hsm = conn->hsm;
    uint8_t *ver = NULL;
    size_t verlen = 0;
    uint32_t id = 0, qtok = 0;
    store_user_t u;
    bool found = false;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    pthread_mutex_lock(&hsm->lock);
    /* The id, before the checks: this may let the lock go. */
    if ((rv = hsm_reserve_unlocked(hsm)) != CKR_OK)
        goto out;
    hsm_gen_bump_locked(hsm);
    if ((rv = hsm_role_locked(conn, HSM_OP_MANAGE_USERS)) != CKR_OK)
        goto out;
    if (type != HSM_USER_CO && type != HSM_USER_CU) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!util_user_name_valid(name, strlen(name))) {
        rv = CKR_PIN_INVALID;
        goto out;
    }
    if (!pw_len_ok(pwlen)) {
        rv = CKR_PIN_LEN_RANGE;
        goto out;
    }
    if ((rv = store_user_by_name(hsm->st, name, &u, &found)) != CKR_OK)
        goto out;
    if (found) {
        rv = CKR_PIN_INVALID; /* the name is taken */
        goto out;
    }
    if ((rv = hsm_quorum_guard_locked(conn, HSM_QUORUM_SVC_USER_MGMT,
                                      &qtok)) != CKR_OK)
        goto out;
    if (pre->ver != NULL) {
        ver = pre->ver; /* made before the lock */
        verlen = pre->len;
        pre->ver = NULL;
        pre->len = 0;
    } else if ((rv = make_verifier(hsm, pw, pwlen, &ver, &verlen)) != CKR_OK) {
        goto out;
    }
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    if ((rv = hsm_quorum_consume_tx_locked(conn, HSM_QUORUM_SVC_USER_MGMT,
                                           qtok)) != CKR_OK ||
        (rv = store_user_insert(hsm->st, 0, name, type, ver, verlen, &id)) !=
            CKR_OK ||
        (rv = hsm_audit_tx_locked(hsm, conn->uid, EV_CREATE_USER, id,
                                  CKR_OK)) != CKR_OK ||
        (tk != NULL && (rv = tfa_with_password_tx_locked(hsm, id, conn->uid,
                                                         tk)) != CKR_OK) ||
        (rv = store_bump_generation(hsm->st)) != CKR_OK) {
        store_rollback(hsm->st);
        rv = name_taken_locked(hsm, name, rv);
        goto out;
    }
    if ((rv = hsm_cluster_commit_unlocked(hsm)) != CKR_OK) {
        rv = name_taken_locked(hsm, name, rv);
        goto out;
    }
    log_info("user %u created", id);
    if (uid != NULL)
        *uid = id;
out:
    pthread_mutex_unlock(&hsm->lock);
    util_free_wipe(ver, verlen);
    store_user_clear(&u);
    return rv;
}

/* Whether user uid is logged in on a connection of this process or of
 * any other process on this store (the presence marks). */
static CK_RV logged_in_locked(hsm_t *hsm, hsm_uid_t uid, bool *in)
{
    for (hsm_conn_t *c = hsm->conns; c != NULL; c = c->next) {
        if (c->type != HSM_USER_NONE && c->uid == uid) {
            *in = true;
            return CKR_OK;
        }
    }
    return store_login_held(hsm->dbpath, uid, in);
}

CK_RV hsm_user_delete(hsm_conn_t *conn, const char *name)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    store_user_t u;
    bool found = false, in = false;
    size_t n = 0;
    uint32_t qtok = 0;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_reserve_unlocked(hsm)) != CKR_OK)
        goto out;
    hsm_gen_bump_locked(hsm);
    if ((rv = hsm_role_locked(conn, HSM_OP_MANAGE_USERS)) != CKR_OK ||
        (rv = lookup_locked(hsm, name, &u, &found)) != CKR_OK)
        goto out;
    if (!found) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (u.type == HSM_USER_AU || u.type == HSM_USER_PRECO) {
        rv = CKR_ACTION_PROHIBITED;
        goto out;
    }
    if (u.type == HSM_USER_CO) {
        if ((rv = store_user_count_type(hsm->st, HSM_USER_CO, &n)) != CKR_OK)
            goto out;
        if (n <= 1) {
            rv = CKR_ACTION_PROHIBITED;
            goto out;
        }
        /* Never fewer approvers than an M needs. */
        if (u.mofn_pubkey && (rv = hsm_quorum_keeps_locked(hsm)) != CKR_OK)
            goto out;
    }
    if ((rv = hsm_quorum_guard_locked(conn, HSM_QUORUM_SVC_USER_MGMT,
                                      &qtok)) != CKR_OK)
        goto out;
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    /* A CU that owns keys stays, and so does the last CO, also when the
     * entry applies: another node's key creation or CO deletion (or this
     * node's, while this one waits) may come first. */
    if ((rv = hsm_quorum_consume_tx_locked(conn, HSM_QUORUM_SVC_USER_MGMT,
                                           qtok)) != CKR_OK ||
        (rv = store_require(hsm->st, STORE_REQUIRE_USER_DELETABLE, u.id,
                            HSM_USER_CO, CKR_ACTION_PROHIBITED)) != CKR_OK) {
        store_rollback(hsm->st);
        goto out;
    }
    /* Under the write lock: a login marks itself before it reads the
     * record, so it is either seen here or finds the record gone. */
    if ((rv = logged_in_locked(hsm, u.id, &in)) != CKR_OK || in) {
        store_rollback(hsm->st);
        if (rv == CKR_OK)
            rv = CKR_ACTION_PROHIBITED; /* logged in somewhere */
        goto out;
    }
    if ((rv = store_user_delete(hsm->st, u.id)) != CKR_OK ||
        (rv = hsm_audit_tx_locked(hsm, conn->uid, EV_DELETE_USER, u.id,
                                  CKR_OK)) != CKR_OK ||
        (rv = store_bump_generation(hsm->st)) != CKR_OK) {
        store_rollback(hsm->st);
        goto out;
    }
    rv = hsm_cluster_commit_unlocked(hsm);
out:
    pthread_mutex_unlock(&hsm->lock);
    store_user_clear(&u);
    return rv;
}

/* ------------------------------------------------------------ C_InitToken */

CK_RV hsm_init_token(hsm_t *hsm, const char *name, const uint8_t *pw,
                     size_t pwlen, const char *label)
{
    store_user_t u;
    bool found = false, locks = false;
    size_t npreco = 0;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    pthread_mutex_lock(&hsm->lock);
    hsm_gen_bump_locked(hsm);
    if ((rv = store_user_count_type(hsm->st, HSM_USER_PRECO, &npreco)) !=
        CKR_OK)
        goto out;
    if (name == NULL)
        name = HSM_PRECO_NAME;
    if ((rv = lookup_locked(hsm, name, &u, &found)) != CKR_OK)
        goto out;

    if (npreco > 0) {
        /* Activation: the SO PIN given becomes the CO's password. */
        if (!pw_len_ok(pwlen)) {
            rv = CKR_PIN_LEN_RANGE;
            goto out;
        }
        if (!found || u.type != HSM_USER_PRECO) {
            rv = CKR_PIN_INCORRECT;
            goto out;
        }
        rv = set_verifier_locked(hsm, &u, pw, pwlen, label, u.id, NULL, NULL,
                                 NULL, 0);
        goto out;
    } else {
        /* Re-initialization: a CO's password, then zeroize keys and CUs. */
        if (!found || u.type != HSM_USER_CO) {
            dummy_unlocked(hsm, pw, pwlen);
            rv = CKR_PIN_INCORRECT;
            goto out;
        }
        /* A CO with 2FA cannot re-initialize by password alone. */
        if ((rv = authenticate_locked(hsm, NULL, NULL, &u, pw, pwlen, NULL,
                                      false, &locks)) != CKR_OK)
            goto out;
        /* It deletes every CU: user management, which a quorum may guard
         * (set service 3 back to 1 first, with a service-4 quorum). */
        if ((rv = hsm_quorum_reinit_locked(hsm, u.id)) != CKR_OK)
            goto out;
        if ((rv = store_begin(hsm->st, true)) != CKR_OK)
            goto out;
        if ((rv = store_object_delete_all(hsm->st)) != CKR_OK ||
            (rv = store_user_delete_type(hsm->st, HSM_USER_CU)) != CKR_OK ||
            (rv = store_user_bump_versions(hsm->st)) != CKR_OK ||
            (rv = hsm_audit_tx_locked(hsm, u.id, EV_REINIT, 0, CKR_OK)) !=
                CKR_OK) {
            store_rollback(hsm->st);
            goto out;
        }
        log_info("token re-initialized by CO %u: keys and CUs zeroized", u.id);
    }
    if ((rv = store_meta_set(hsm->st, META_LABEL, (const uint8_t *)label,
                             strlen(label))) != CKR_OK ||
        (rv = store_bump_generation(hsm->st)) != CKR_OK) {
        store_rollback(hsm->st);
        goto out;
    }
    rv = hsm_cluster_commit_unlocked(hsm);
    if (rv == CKR_OK && npreco == 0)
        hsm_keycache_clear_locked(hsm); /* every key is gone */
out:
    if (rv != CKR_OK && rv != CKR_HOST_MEMORY)
        hsm_audit_failure_locked(hsm, found ? u.id : 0,
                                 npreco > 0 ? EV_ACTIVATE : EV_REINIT, 0, rv,
                                 locks);
    pthread_mutex_unlock(&hsm->lock);
    store_user_clear(&u);
    return rv;
}
