/*
 * test_tfa.c - two-factor login of crypto officers in the core (hsm.h
 * "two-factor login", src/hsm/users.c). The officer's RSA keys and
 * signatures are made here with OpenSSL, as the officer does outside the
 * HSM (openssl genpkey; openssl dgst -sha256 -sign over the digest).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "hsm/hsm.h"
#include "hsm/internal.h"

#define PW(s) (const uint8_t *)(s), strlen(s)
#define CO_PW "copass1"
#define A_PW "alicepw1"

/* An officer's key pair, outside the HSM. */
struct officer {
    EVP_PKEY *key;
    char pem[1024];
    size_t pemlen;
};

static void officer_init(struct officer *o, const char *alg, unsigned bits)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *mem = NULL;
    long n;

    memset(o, 0, sizeof(*o));
    o->key = strcmp(alg, "EC") == 0 ? EVP_EC_gen("P-256") : EVP_RSA_gen(bits);
    assert_non_null(o->key);
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PUBKEY(b, o->key), 1);
    n = BIO_get_mem_data(b, &mem);
    assert_true(n > 0 && (size_t)n < sizeof(o->pem));
    memcpy(o->pem, mem, (size_t)n);
    o->pemlen = (size_t)n;
    BIO_free(b);
}

/* SHA256 with the key's scheme over the digest bytes, as `openssl dgst
 * -sha256 -sign` makes it. */
static size_t sign(const struct officer *o, const uint8_t *msg, size_t len,
                   uint8_t *sig, size_t room)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    size_t n = room;

    assert_non_null(c);
    assert_int_equal(EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, o->key),
                     1);
    assert_int_equal(EVP_DigestSign(c, sig, &n, msg, len), 1);
    EVP_MD_CTX_free(c);
    return n;
}

static struct officer k1, k2, small, ec;
static uint64_t now = 1700000000;

static uint64_t test_clock(void)
{
    return now;
}

struct fixture {
    char dir[64];
    struct config cfg;
    hsm_t *hsm;
    hsm_conn_t *co;  /* admin logged in */
    hsm_conn_t *app; /* nobody logged in */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-tfa-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    config_defaults(&f->cfg);
    snprintf(f->cfg.store, sizeof(f->cfg.store), "%s/store", f->dir);
    f->cfg.kdf_iterations = 1000;
    if (hsm_open(&f->cfg, &f->hsm) != CKR_OK ||
        hsm_init_token(f->hsm, NULL, PW(CO_PW), "tfa") != CKR_OK ||
        hsm_conn_open(f->hsm, &f->co) != CKR_OK ||
        hsm_conn_open(f->hsm, &f->app) != CKR_OK ||
        hsm_login(f->co, HSM_LOGIN_SO, NULL, PW(CO_PW)) != CKR_OK)
        return -1;
    hsm_tfa_clock_hook = test_clock;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    hsm_tfa_clock_hook = NULL;
    hsm_conn_close(f->co);
    hsm_conn_close(f->app);
    hsm_close(f->hsm);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* listUsers' view of user name: false when there is none. */
static bool user_info(struct fixture *f, const char *name, hsm_user_info_t *out)
{
    hsm_user_info_t *u = NULL;
    size_t n = 0;
    bool found = false;

    assert_int_equal(hsm_user_list(f->co, &u, &n), CKR_OK);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(u[i].name, name) == 0) {
            *out = u[i];
            found = true;
        }
    }
    free(u);
    return found;
}

/* A challenge on conn for (kind, name), signed by o. */
static size_t signed_challenge(hsm_conn_t *conn, hsm_login_kind_t kind,
                               const char *name, const struct officer *o,
                               uint8_t *sig, size_t room)
{
    uint8_t d[HSM_DIGEST_LEN];

    assert_int_equal(hsm_login_challenge(conn, kind, name, d), CKR_OK);
    return sign(o, d, sizeof(d), sig, room);
}

/* CO alice with 2FA on under k1, created by admin. */
static void make_alice(struct fixture *f)
{
    uint8_t sig[512];
    size_t n =
        signed_challenge(f->co, HSM_LOGIN_SO, "alice", &k1, sig, sizeof(sig));
    hsm_uid_t uid = 0;
    hsm_user_info_t u;

    assert_int_equal(hsm_user_create_2fa(f->co, "alice", PW(A_PW),
                                         (const uint8_t *)k1.pem, k1.pemlen,
                                         sig, n, &uid),
                     CKR_OK);
    assert_true(uid > 0);
    assert_true(user_info(f, "alice", &u));
    assert_int_equal(u.type, HSM_USER_CO);
    assert_true(u.twofa);
    assert_true(u.mofn_pubkey);
}

static CK_RV login_2fa(hsm_conn_t *conn, const char *pw,
                       const struct officer *o)
{
    uint8_t sig[512];
    size_t n =
        signed_challenge(conn, HSM_LOGIN_SO, "alice", o, sig, sizeof(sig));

    return hsm_login_2fa(conn, HSM_LOGIN_SO, "alice", PW(pw), sig, n);
}

static unsigned long failures(struct fixture *f, const char *name)
{
    hsm_user_info_t u;

    assert_true(user_info(f, name, &u));
    return u.login_failures;
}

/* ------------------------------------------------------------- tests */

/* Enable at creation, log in with the signature; the password alone, or
 * with another key's signature, fails and counts; a success clears. */
static void test_login(void **state)
{
    struct fixture *f = *state;
    uint8_t d1[HSM_DIGEST_LEN], d2[HSM_DIGEST_LEN];

    make_alice(f);
    assert_int_equal(hsm_login(f->app, HSM_LOGIN_SO, "alice", PW(A_PW)),
                     CKR_PIN_INCORRECT);
    assert_int_equal(failures(f, "alice"), 1);
    assert_int_equal(login_2fa(f->app, A_PW, &k2), CKR_PIN_INCORRECT);
    assert_int_equal(failures(f, "alice"), 2);
    /* no challenge at all: the signature cannot be over anything */
    assert_int_equal(hsm_login_2fa(f->app, HSM_LOGIN_SO, "alice", PW(A_PW),
                                   (const uint8_t *)"x", 1),
                     CKR_PIN_INCORRECT);
    assert_int_equal(failures(f, "alice"), 3);
    assert_int_equal(login_2fa(f->app, "wrongpw", &k1), CKR_PIN_INCORRECT);
    assert_int_equal(failures(f, "alice"), 4);
    assert_int_equal(hsm_conn_user_type(f->app, NULL), HSM_USER_NONE);
    assert_int_equal(login_2fa(f->app, A_PW, &k1), CKR_OK);
    assert_int_equal(hsm_conn_user_type(f->app, NULL), HSM_USER_CO);
    assert_int_equal(failures(f, "alice"), 0);
    /* fresh digests each time */
    assert_int_equal(hsm_login_challenge(f->co, HSM_LOGIN_SO, "x", d1), CKR_OK);
    assert_int_equal(hsm_login_challenge(f->co, HSM_LOGIN_SO, "x", d2), CKR_OK);
    assert_memory_not_equal(d1, d2, sizeof(d1));
}

/* A login ticket carries the 2FA login as it was made: redeemed on
 * another connection without a second signature (no login, no ticket);
 * a password change (which turns 2FA off) ends the ticket. */
static void test_ticket(void **state)
{
    struct fixture *f = *state;
    uint8_t t[HSM_TICKET_LEN];
    hsm_conn_t *c = NULL;

    make_alice(f);
    assert_int_equal(hsm_login_ticket(f->app, t), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(login_2fa(f->app, A_PW, &k1), CKR_OK);
    assert_int_equal(hsm_login_ticket(f->app, t), CKR_OK);
    assert_int_equal(hsm_conn_open(f->hsm, &c), CKR_OK);
    assert_int_equal(hsm_login_redeem(c, t, sizeof(t)), CKR_OK);
    assert_int_equal(hsm_conn_user_type(c, NULL), HSM_USER_CO);
    assert_int_equal(hsm_logout(c), CKR_OK);
    assert_int_equal(hsm_user_set_password(f->co, "alice", PW("alicepw2")),
                     CKR_OK);
    assert_int_equal(hsm_login_redeem(c, t, sizeof(t)), CKR_PIN_INCORRECT);
    hsm_conn_close(c);
}

/* Wrong signatures with the right password lock the user; then even the
 * right signature is CKR_PIN_LOCKED. */
static void test_lockout(void **state)
{
    struct fixture *f = *state;

    make_alice(f);
    for (unsigned i = 0; i < f->cfg.login_failure_limit; i++)
        assert_int_equal(login_2fa(f->app, A_PW, &k2), CKR_PIN_INCORRECT);
    assert_int_equal(login_2fa(f->app, A_PW, &k1), CKR_PIN_LOCKED);
    assert_int_equal(hsm_conn_user_type(f->app, NULL), HSM_USER_NONE);
}

/* A challenge is good once, on its connection, for its kind and name,
 * until it expires. */
static void test_challenge_binding(void **state)
{
    struct fixture *f = *state;
    hsm_conn_t *other;
    uint8_t sig[512];
    size_t n;

    make_alice(f);
    assert_int_equal(hsm_conn_open(f->hsm, &other), CKR_OK);
    /* used once: the same signature again */
    n = signed_challenge(f->app, HSM_LOGIN_SO, "alice", &k1, sig, sizeof(sig));
    assert_int_equal(
        hsm_login_2fa(f->app, HSM_LOGIN_SO, "alice", PW(A_PW), sig, n), CKR_OK);
    assert_int_equal(hsm_logout(f->app), CKR_OK);
    assert_int_equal(
        hsm_login_2fa(f->app, HSM_LOGIN_SO, "alice", PW(A_PW), sig, n),
        CKR_PIN_INCORRECT);
    /* a failed try spends it too */
    n = signed_challenge(f->app, HSM_LOGIN_SO, "alice", &k1, sig, sizeof(sig));
    assert_int_equal(
        hsm_login_2fa(f->app, HSM_LOGIN_SO, "alice", PW("wrongpw"), sig, n),
        CKR_PIN_INCORRECT);
    assert_int_equal(
        hsm_login_2fa(f->app, HSM_LOGIN_SO, "alice", PW(A_PW), sig, n),
        CKR_PIN_INCORRECT);
    /* another connection's challenge */
    n = signed_challenge(other, HSM_LOGIN_SO, "alice", &k1, sig, sizeof(sig));
    assert_int_equal(
        hsm_login_2fa(f->app, HSM_LOGIN_SO, "alice", PW(A_PW), sig, n),
        CKR_PIN_INCORRECT);
    /* (a good login clears the failures so far: the limit is 5) */
    assert_int_equal(login_2fa(f->app, A_PW, &k1), CKR_OK);
    assert_int_equal(hsm_logout(f->app), CKR_OK);
    /* another user's, another kind's */
    n = signed_challenge(f->app, HSM_LOGIN_SO, "admin", &k1, sig, sizeof(sig));
    assert_int_equal(
        hsm_login_2fa(f->app, HSM_LOGIN_SO, "alice", PW(A_PW), sig, n),
        CKR_PIN_INCORRECT);
    n = signed_challenge(f->app, HSM_LOGIN_USER, "alice", &k1, sig,
                         sizeof(sig));
    assert_int_equal(
        hsm_login_2fa(f->app, HSM_LOGIN_SO, "alice", PW(A_PW), sig, n),
        CKR_PIN_INCORRECT);
    /* the name compares case-insensitively, as user names do */
    n = signed_challenge(f->app, HSM_LOGIN_SO, "ALICE", &k1, sig, sizeof(sig));
    assert_int_equal(
        hsm_login_2fa(f->app, HSM_LOGIN_SO, "alice", PW(A_PW), sig, n), CKR_OK);
    assert_int_equal(hsm_logout(f->app), CKR_OK);
    /* expiry */
    n = signed_challenge(f->app, HSM_LOGIN_SO, "alice", &k1, sig, sizeof(sig));
    now += HSM_TFA_CHALLENGE_LIFETIME;
    assert_int_equal(
        hsm_login_2fa(f->app, HSM_LOGIN_SO, "alice", PW(A_PW), sig, n),
        CKR_PIN_INCORRECT);
    n = signed_challenge(f->app, HSM_LOGIN_SO, "alice", &k1, sig, sizeof(sig));
    now += HSM_TFA_CHALLENGE_LIFETIME - 1;
    assert_int_equal(
        hsm_login_2fa(f->app, HSM_LOGIN_SO, "alice", PW(A_PW), sig, n), CKR_OK);
    /* a new challenge replaces the last one */
    assert_int_equal(hsm_logout(f->app), CKR_OK);
    n = signed_challenge(f->app, HSM_LOGIN_SO, "alice", &k1, sig, sizeof(sig));
    {
        uint8_t d[HSM_DIGEST_LEN];

        assert_int_equal(hsm_login_challenge(f->app, HSM_LOGIN_SO, "alice", d),
                         CKR_OK);
    }
    assert_int_equal(
        hsm_login_2fa(f->app, HSM_LOGIN_SO, "alice", PW(A_PW), sig, n),
        CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login_challenge(f->app, (hsm_login_kind_t)7, "alice",
                                         (uint8_t[HSM_DIGEST_LEN]){0}),
                     CKR_ARGUMENTS_BAD);
    hsm_conn_close(other);
}

/* What does not prove the key creates nothing, each with its code. */
static void test_enroll_refusals(void **state)
{
    struct fixture *f = *state;
    uint8_t sig[512], big[HSM_QUORUM_PUBKEY_MAX + 1];
    hsm_user_info_t u;
    size_t n;

    /* no challenge */
    n = sign(&k1, (const uint8_t *)"x", 1, sig, sizeof(sig));
    assert_int_equal(hsm_user_create_2fa(f->co, "alice", PW(A_PW),
                                         (const uint8_t *)k1.pem, k1.pemlen,
                                         sig, n, NULL),
                     CKR_SIGNATURE_INVALID);
    /* signed by another key than the one given */
    n = signed_challenge(f->co, HSM_LOGIN_SO, "alice", &k2, sig, sizeof(sig));
    assert_int_equal(hsm_user_create_2fa(f->co, "alice", PW(A_PW),
                                         (const uint8_t *)k1.pem, k1.pemlen,
                                         sig, n, NULL),
                     CKR_SIGNATURE_INVALID);
    /* a challenge for another name */
    n = signed_challenge(f->co, HSM_LOGIN_SO, "bob", &k1, sig, sizeof(sig));
    assert_int_equal(hsm_user_create_2fa(f->co, "alice", PW(A_PW),
                                         (const uint8_t *)k1.pem, k1.pemlen,
                                         sig, n, NULL),
                     CKR_SIGNATURE_INVALID);
    /* not RSA-2048 */
    n = signed_challenge(f->co, HSM_LOGIN_SO, "alice", &small, sig,
                         sizeof(sig));
    assert_int_equal(hsm_user_create_2fa(f->co, "alice", PW(A_PW),
                                         (const uint8_t *)small.pem,
                                         small.pemlen, sig, n, NULL),
                     CKR_KEY_SIZE_RANGE);
    n = signed_challenge(f->co, HSM_LOGIN_SO, "alice", &ec, sig, sizeof(sig));
    assert_int_equal(hsm_user_create_2fa(f->co, "alice", PW(A_PW),
                                         (const uint8_t *)ec.pem, ec.pemlen,
                                         sig, n, NULL),
                     CKR_KEY_TYPE_INCONSISTENT);
    /* hostile lengths */
    n = signed_challenge(f->co, HSM_LOGIN_SO, "alice", &k1, sig, sizeof(sig));
    assert_int_equal(
        hsm_user_create_2fa(f->co, "alice", PW(A_PW), NULL, 0, sig, n, NULL),
        CKR_ARGUMENTS_BAD);
    memset(big, 'A', sizeof(big));
    assert_int_equal(hsm_user_create_2fa(f->co, "alice", PW(A_PW), big,
                                         sizeof(big), sig, n, NULL),
                     CKR_ARGUMENTS_BAD);
    n = signed_challenge(f->co, HSM_LOGIN_SO, "alice", &k1, sig, sizeof(sig));
    assert_int_equal(hsm_user_create_2fa(f->co, "alice", PW(A_PW),
                                         (const uint8_t *)k1.pem, k1.pemlen,
                                         sig, 0, NULL),
                     CKR_SIGNATURE_INVALID);
    n = signed_challenge(f->co, HSM_LOGIN_SO, "alice", &k1, sig, sizeof(sig));
    assert_int_equal(hsm_user_create_2fa(f->co, "alice", PW(A_PW),
                                         (const uint8_t *)k1.pem, k1.pemlen,
                                         sig, HSM_TFA_SIG_MAX + 1, NULL),
                     CKR_SIGNATURE_INVALID);
    assert_false(user_info(f, "alice", &u));
    /* the proof is right but the call is not allowed: nobody logged in */
    n = signed_challenge(f->app, HSM_LOGIN_SO, "alice", &k1, sig, sizeof(sig));
    assert_int_equal(hsm_user_create_2fa(f->app, "alice", PW(A_PW),
                                         (const uint8_t *)k1.pem, k1.pemlen,
                                         sig, n, NULL),
                     CKR_USER_NOT_LOGGED_IN);
    assert_false(user_info(f, "alice", &u));
}

/* Rotate, disable; a password change without a key turns 2FA off and
 * removes the key; a user without 2FA keeps its quorum key. */
static void test_password_changes(void **state)
{
    struct fixture *f = *state;
    uint8_t sig[512], *der = NULL;
    hsm_user_info_t u;
    size_t n, len = 0;

    make_alice(f);
    /* rotate to k2: k1 no longer logs in */
    n = signed_challenge(f->co, HSM_LOGIN_SO, "alice", &k2, sig, sizeof(sig));
    assert_int_equal(hsm_user_set_password_2fa(f->co, "alice", PW(A_PW),
                                               (const uint8_t *)k2.pem,
                                               k2.pemlen, sig, n),
                     CKR_OK);
    assert_int_equal(login_2fa(f->app, A_PW, &k1), CKR_PIN_INCORRECT);
    assert_int_equal(login_2fa(f->app, A_PW, &k2), CKR_OK);
    /* the logged-in officer re-keys itself */
    n = signed_challenge(f->app, HSM_LOGIN_SO, "alice", &k1, sig, sizeof(sig));
    assert_int_equal(hsm_user_set_password_2fa(f->app, "alice", PW(A_PW),
                                               (const uint8_t *)k1.pem,
                                               k1.pemlen, sig, n),
                     CKR_OK);
    assert_int_equal(hsm_logout(f->app), CKR_OK);
    assert_int_equal(login_2fa(f->app, A_PW, &k1), CKR_OK);
    assert_int_equal(hsm_logout(f->app), CKR_OK);
    /* without a key: 2FA and the key go */
    assert_int_equal(hsm_user_set_password(f->co, "alice", PW(A_PW)), CKR_OK);
    assert_true(user_info(f, "alice", &u));
    assert_false(u.twofa);
    assert_false(u.mofn_pubkey);
    assert_int_equal(hsm_login(f->app, HSM_LOGIN_SO, "alice", PW(A_PW)),
                     CKR_OK);
    assert_int_equal(hsm_logout(f->app), CKR_OK);
    /* a quorum key without 2FA stays through a password change */
    pthread_mutex_lock(&f->hsm->lock);
    {
        uint8_t *kder = NULL;
        size_t klen = 0;

        assert_int_equal(crypto_quorum_key_parse((const uint8_t *)k2.pem,
                                                 k2.pemlen, &kder, &klen),
                         CKR_OK);
        assert_int_equal(
            hsm_user_qkey_set_locked(f->hsm, u.id, kder, klen, false), CKR_OK);
        free(kder);
    }
    pthread_mutex_unlock(&f->hsm->lock);
    assert_int_equal(hsm_user_set_password(f->co, "alice", PW("newpass1")),
                     CKR_OK);
    assert_true(user_info(f, "alice", &u));
    assert_true(u.mofn_pubkey);
    assert_false(u.twofa);
    pthread_mutex_lock(&f->hsm->lock);
    assert_int_equal(hsm_user_qkey_get_locked(f->hsm, u.id, &der, &len, NULL,
                                              (bool[1]){false}),
                     CKR_OK);
    pthread_mutex_unlock(&f->hsm->lock);
    assert_non_null(der);
    free(der);
    /* 2FA is for COs */
    assert_int_equal(
        hsm_user_create(f->co, HSM_USER_CU, "carol", PW("carolpw1"), NULL),
        CKR_OK);
    n = signed_challenge(f->co, HSM_LOGIN_SO, "carol", &k1, sig, sizeof(sig));
    assert_int_equal(hsm_user_set_password_2fa(f->co, "carol", PW("carolpw1"),
                                               (const uint8_t *)k1.pem,
                                               k1.pemlen, sig, n),
                     CKR_USER_TYPE_INVALID);
    assert_true(user_info(f, "carol", &u));
    assert_false(u.twofa);
}

/* No path authenticates a 2FA user by password alone: C_SetPIN without a
 * login, re-initialization. Each counts. */
static void test_no_password_only_path(void **state)
{
    struct fixture *f = *state;
    hsm_user_info_t u;

    make_alice(f);
    assert_int_equal(hsm_set_password(f->app, "alice", PW(A_PW), PW("newpw12")),
                     CKR_PIN_INCORRECT);
    assert_int_equal(failures(f, "alice"), 1);
    assert_int_equal(hsm_init_token(f->hsm, "alice", PW(A_PW), "gone"),
                     CKR_PIN_INCORRECT);
    assert_int_equal(failures(f, "alice"), 2);
    assert_true(user_info(f, "alice", &u));
    assert_true(u.twofa);
    /* logged in with both factors, its own C_SetPIN works (and, without
     * a key, turns 2FA off as every password change does) */
    assert_int_equal(login_2fa(f->app, A_PW, &k1), CKR_OK);
    assert_int_equal(hsm_set_password(f->app, NULL, PW(A_PW), PW("newpw12")),
                     CKR_OK);
    assert_true(user_info(f, "alice", &u));
    assert_false(u.twofa);
}

/* The 2FA key is the quorum key: one key, one officer; and creating a 2FA
 * officer or re-keying another one is user management, which a quorum
 * guards (service 3). */
static void test_with_quorum(void **state)
{
    struct fixture *f = *state;
    uint8_t sig[512];
    hsm_user_info_t u;
    size_t n;

    make_alice(f);
    /* k1 is alice's: bob may not have it */
    n = signed_challenge(f->co, HSM_LOGIN_SO, "bob", &k1, sig, sizeof(sig));
    assert_int_equal(hsm_user_create_2fa(f->co, "bob", PW("bobpass1"),
                                         (const uint8_t *)k1.pem, k1.pemlen,
                                         sig, n, NULL),
                     CKR_ACTION_PROHIBITED);
    assert_false(user_info(f, "bob", &u));
    /* M = 2 on user management (set in the store: the approval dance is
     * test_quorum's) */
    pthread_mutex_lock(&f->hsm->lock);
    assert_int_equal(store_quorum_m_set(f->hsm->st, HSM_QUORUM_SVC_USER_MGMT,
                                        2),
                     CKR_OK);
    pthread_mutex_unlock(&f->hsm->lock);
    n = signed_challenge(f->co, HSM_LOGIN_SO, "bob", &k2, sig, sizeof(sig));
    assert_int_equal(hsm_user_create_2fa(f->co, "bob", PW("bobpass1"),
                                         (const uint8_t *)k2.pem, k2.pemlen,
                                         sig, n, NULL),
                     CKR_FUNCTION_REJECTED);
    assert_false(user_info(f, "bob", &u));
    n = signed_challenge(f->co, HSM_LOGIN_SO, "alice", &k2, sig, sizeof(sig));
    assert_int_equal(hsm_user_set_password_2fa(f->co, "alice", PW("otherpw1"),
                                               (const uint8_t *)k2.pem,
                                               k2.pemlen, sig, n),
                     CKR_FUNCTION_REJECTED);
    assert_int_equal(login_2fa(f->app, A_PW, &k1), CKR_OK); /* unchanged */
    /* her own key is hers to rotate: no quorum for oneself */
    n = signed_challenge(f->app, HSM_LOGIN_SO, "alice", &k2, sig, sizeof(sig));
    assert_int_equal(hsm_user_set_password_2fa(f->app, "alice", PW(A_PW),
                                               (const uint8_t *)k2.pem,
                                               k2.pemlen, sig, n),
                     CKR_OK);
    /* her key is one an M of 2 needs: a password change that would drop
     * it (and 2FA) is refused, changing nothing */
    assert_int_equal(hsm_user_set_password(f->app, "alice", PW("newpass1")),
                     CKR_ACTION_PROHIBITED);
    assert_true(user_info(f, "alice", &u));
    assert_true(u.twofa);
    assert_int_equal(hsm_logout(f->app), CKR_OK);
    assert_int_equal(login_2fa(f->app, A_PW, &k2), CKR_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_challenge_binding, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_enroll_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_password_only_path, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_with_quorum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ticket, setup, teardown),
    };
    int rc;

    if (crypto_init() != CKR_OK)
        return 1;
    officer_init(&k1, "RSA", 2048);
    officer_init(&k2, "RSA", 2048);
    officer_init(&small, "RSA", 1024);
    officer_init(&ec, "EC", 0);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    EVP_PKEY_free(k1.key);
    EVP_PKEY_free(k2.key);
    EVP_PKEY_free(small.key);
    EVP_PKEY_free(ec.key);
    return rc;
}
