/*
 * test_quorum.c - quorum (M of N) approval in the core (hsm.h "quorum",
 * src/hsm/quorum.c), the approvers' keys (src/hsm/crypto/qkey.c) and the
 * accessor two-factor login shares (internal.h). Approvers' keys and
 * signatures are made here with OpenSSL, as an approver would outside the
 * HSM (openssl genpkey; openssl dgst -sha256 -sign).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "hsm/hsm.h"
#include "hsm/internal.h"

#define PW(s) (const uint8_t *)(s), strlen(s)
#define CO_PW "copass1"

/* An approver's key pair, outside the HSM. */
struct approver {
    EVP_PKEY *key;
    uint8_t der[600]; /* SPKI DER */
    size_t derlen;
    char pem[1024];
    size_t pemlen;
};

static EVP_PKEY *rsa_new(unsigned bits)
{
    EVP_PKEY *k = EVP_RSA_gen(bits);

    assert_non_null(k);
    return k;
}

static void approver_init(struct approver *a, unsigned bits)
{
    unsigned char *p = a->der;
    BIO *b = BIO_new(BIO_s_mem());
    char *mem = NULL;
    long n;
    int len;

    memset(a, 0, sizeof(*a));
    a->key = rsa_new(bits);
    len = i2d_PUBKEY(a->key, NULL);
    assert_true(len > 0 && (size_t)len <= sizeof(a->der));
    assert_int_equal(i2d_PUBKEY(a->key, &p), len);
    a->derlen = (size_t)len;
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PUBKEY(b, a->key), 1);
    n = BIO_get_mem_data(b, &mem);
    assert_true(n > 0 && (size_t)n < sizeof(a->pem));
    memcpy(a->pem, mem, (size_t)n);
    a->pemlen = (size_t)n;
    BIO_free(b);
}

static void approver_free(struct approver *a)
{
    EVP_PKEY_free(a->key);
    a->key = NULL;
}

/* SHA256-RSA-PKCS over msg, as `openssl dgst -sha256 -sign` makes it. */
static size_t sign(const struct approver *a, const uint8_t *msg, size_t len,
                   uint8_t *sig, size_t room)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    size_t n = room;

    assert_non_null(c);
    assert_int_equal(EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, a->key),
                     1);
    assert_int_equal(EVP_DigestSign(c, sig, &n, msg, len), 1);
    EVP_MD_CTX_free(c);
    return n;
}

struct fixture {
    char dir[64];
    struct config cfg;
    hsm_t *hsm;
    hsm_conn_t *conn;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-quorum-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    config_defaults(&f->cfg);
    snprintf(f->cfg.store, sizeof(f->cfg.store), "%s/store", f->dir);
    f->cfg.kdf_iterations = 1000;
    if (hsm_open(&f->cfg, &f->hsm) != CKR_OK ||
        hsm_conn_open(f->hsm, &f->conn) != CKR_OK)
        return -1;
    if (hsm_init_token(f->hsm, NULL, PW(CO_PW), "quorum") != CKR_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    hsm_quorum_clock_hook = NULL;
    hsm_close(f->hsm);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static hsm_user_info_t *user_named(hsm_user_info_t *u, size_t n,
                                   const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(u[i].name, name) == 0)
            return &u[i];
    fail_msg("no user %s", name);
    return NULL;
}

/* ----------------------------------------------------------- the keys */

/* PEM and DER SPKI of an RSA-2048 key parse to the same canonical DER;
 * anything else is refused with its own code. */
static void test_key_parse(void **state)
{
    struct approver a, small;
    uint8_t *der = NULL, bad[700];
    size_t len = 0;
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    unsigned char ecder[200], *p = ecder;
    int eclen;

    (void)state;
    assert_int_equal(crypto_init(), CKR_OK);
    approver_init(&a, 2048);
    approver_init(&small, 1024);
    assert_int_equal(
        crypto_quorum_key_parse((const uint8_t *)a.pem, a.pemlen, &der, &len),
        CKR_OK);
    assert_int_equal(len, a.derlen);
    assert_memory_equal(der, a.der, len);
    free(der);
    assert_int_equal(crypto_quorum_key_parse(a.der, a.derlen, &der, &len),
                     CKR_OK);
    assert_memory_equal(der, a.der, len);
    free(der);
    /* 1024 bits, an EC key, trailing bytes, truncation, junk, another PEM
     * label, nothing, too much. */
    assert_int_equal(
        crypto_quorum_key_parse(small.der, small.derlen, &der, &len),
        CKR_KEY_SIZE_RANGE);
    assert_null(der);
    assert_non_null(ec);
    eclen = i2d_PUBKEY(ec, &p);
    assert_true(eclen > 0);
    assert_int_equal(crypto_quorum_key_parse(ecder, (size_t)eclen, &der, &len),
                     CKR_KEY_TYPE_INCONSISTENT);
    memcpy(bad, a.der, a.derlen);
    bad[a.derlen] = 0;
    assert_int_equal(crypto_quorum_key_parse(bad, a.derlen + 1, &der, &len),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(crypto_quorum_key_parse(a.der, a.derlen - 1, &der, &len),
                     CKR_ARGUMENTS_BAD);
    memset(bad, 'A', sizeof(bad));
    assert_int_equal(crypto_quorum_key_parse(bad, sizeof(bad), &der, &len),
                     CKR_ARGUMENTS_BAD);
    {
        char other[1100];
        char *b = strstr(a.pem, "PUBLIC KEY");

        assert_non_null(b);
        snprintf(other, sizeof(other), "-----BEGIN CERTIFICATE-----%s",
                 strchr(b, '\n'));
        assert_int_equal(crypto_quorum_key_parse((const uint8_t *)other,
                                                 strlen(other), &der, &len),
                         CKR_ARGUMENTS_BAD);
    }
    assert_int_equal(crypto_quorum_key_parse(a.der, 0, &der, &len),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(crypto_quorum_key_parse(NULL, 10, &der, &len),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(crypto_quorum_key_parse(a.der, 4097, &der, &len),
                     CKR_ARGUMENTS_BAD);
    assert_null(der);
    EVP_PKEY_free(ec);
    approver_free(&a);
    approver_free(&small);
    crypto_fini();
}

/* The SPKI DER of an RSA public key with a's modulus and exponent e. */
static int spki_with_e(const struct approver *a, unsigned long e,
                       unsigned char *out)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    BIGNUM *n = NULL, *bne = BN_new();
    OSSL_PARAM *ps = NULL;
    EVP_PKEY *pk = NULL;
    unsigned char *p = out;
    int len;

    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(bne);
    assert_int_equal(EVP_PKEY_get_bn_param(a->key, OSSL_PKEY_PARAM_RSA_N, &n),
                     1);
    assert_int_equal(BN_set_word(bne, e), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, bne), 1);
    ps = OSSL_PARAM_BLD_to_param(b);
    assert_non_null(ps);
    assert_int_equal(EVP_PKEY_fromdata_init(c), 1);
    assert_int_equal(EVP_PKEY_fromdata(c, &pk, EVP_PKEY_PUBLIC_KEY, ps), 1);
    len = i2d_PUBKEY(pk, &p);
    assert_true(len > 0 && len < 600);
    EVP_PKEY_free(pk);
    OSSL_PARAM_free(ps);
    OSSL_PARAM_BLD_free(b);
    EVP_PKEY_CTX_free(c);
    BN_free(n);
    BN_free(bne);
    return len;
}

/* A key whose signatures anyone can make (e = 1: the "signature" is the
 * padded message) or whose exponent is small or even proves nothing: not
 * a quorum or 2FA key. 65537 and above, odd, is. */
static void test_key_exponent(void **state)
{
    struct approver a;
    unsigned char d[600];
    uint8_t *der = NULL;
    size_t len = 0;
    int dl;

    (void)state;
    assert_int_equal(crypto_init(), CKR_OK);
    approver_init(&a, 2048);
    dl = spki_with_e(&a, 1, d);
    assert_int_equal(crypto_quorum_key_parse(d, (size_t)dl, &der, &len),
                     CKR_ARGUMENTS_BAD);
    assert_null(der);
    dl = spki_with_e(&a, 3, d);
    assert_int_equal(crypto_quorum_key_parse(d, (size_t)dl, &der, &len),
                     CKR_ARGUMENTS_BAD);
    dl = spki_with_e(&a, 65538, d);
    assert_int_equal(crypto_quorum_key_parse(d, (size_t)dl, &der, &len),
                     CKR_ARGUMENTS_BAD);
    dl = spki_with_e(&a, 65539, d);
    assert_int_equal(crypto_quorum_key_parse(d, (size_t)dl, &der, &len),
                     CKR_OK);
    free(der);
    approver_free(&a);
    crypto_fini();
}

/* A signature verifies over its message only, under its key only. */
static void test_verify(void **state)
{
    struct approver a, b;
    static const uint8_t msg[] = "a quorum token";
    uint8_t sig[512], other[512];
    size_t n, m;

    (void)state;
    assert_int_equal(crypto_init(), CKR_OK);
    approver_init(&a, 2048);
    approver_init(&b, 2048);
    n = sign(&a, msg, sizeof(msg), sig, sizeof(sig));
    assert_int_equal(n, 256);
    assert_int_equal(
        crypto_quorum_verify(a.der, a.derlen, msg, sizeof(msg), sig, n),
        CKR_OK);
    assert_int_equal(
        crypto_quorum_verify(b.der, b.derlen, msg, sizeof(msg), sig, n),
        CKR_SIGNATURE_INVALID);
    assert_int_equal(
        crypto_quorum_verify(a.der, a.derlen, msg, sizeof(msg) - 1, sig, n),
        CKR_SIGNATURE_INVALID);
    sig[10] ^= 1;
    assert_int_equal(
        crypto_quorum_verify(a.der, a.derlen, msg, sizeof(msg), sig, n),
        CKR_SIGNATURE_INVALID);
    sig[10] ^= 1;
    assert_int_equal(
        crypto_quorum_verify(a.der, a.derlen, msg, sizeof(msg), sig, n - 1),
        CKR_SIGNATURE_LEN_RANGE);
    assert_int_equal(
        crypto_quorum_verify(a.der, a.derlen, msg, sizeof(msg), NULL, 0),
        CKR_SIGNATURE_LEN_RANGE);
    /* SHA-1 instead of SHA-256: not this mechanism. */
    {
        EVP_MD_CTX *c = EVP_MD_CTX_new();

        m = sizeof(other);
        assert_int_equal(EVP_DigestSignInit(c, NULL, EVP_sha1(), NULL, a.key),
                         1);
        assert_int_equal(EVP_DigestSign(c, other, &m, msg, sizeof(msg)), 1);
        EVP_MD_CTX_free(c);
        assert_int_equal(
            crypto_quorum_verify(a.der, a.derlen, msg, sizeof(msg), other, m),
            CKR_SIGNATURE_INVALID);
    }
    approver_free(&a);
    approver_free(&b);
    crypto_fini();
}

/* ------------------------------------------------- the stored key, flags */

/* tfa's accessor: what it sets, hsm_user_list shows and get returns. */
static void test_accessor_and_user_list(void **state)
{
    struct fixture *f = *state;
    struct approver a;
    hsm_user_info_t *u = NULL;
    uint8_t *der = NULL;
    size_t n = 0, len = 0;
    bool twofa = false, found = false;
    hsm_uid_t co = 0;

    approver_init(&a, 2048);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    assert_int_equal(
        hsm_user_create(f->conn, HSM_USER_CO, "co2", PW("co2pass"), &co),
        CKR_OK);
    assert_int_equal(hsm_user_list(f->conn, &u, &n), CKR_OK);
    assert_false(user_named(u, n, "co2")->mofn_pubkey);
    assert_false(user_named(u, n, "co2")->twofa);
    free(u);

    pthread_mutex_lock(&f->hsm->lock);
    assert_int_equal(
        hsm_user_qkey_set_locked(f->hsm, co, a.der, a.derlen, true), CKR_OK);
    assert_int_equal(
        hsm_user_qkey_set_locked(f->hsm, 999, a.der, a.derlen, true),
        CKR_ARGUMENTS_BAD);
    /* One key, one user: admin (uid 1) cannot have co2's. */
    assert_int_equal(hsm_user_qkey_set_locked(f->hsm, 1, a.der, a.derlen, true),
                     CKR_ACTION_PROHIBITED);
    assert_int_equal(
        hsm_user_qkey_get_locked(f->hsm, co, &der, &len, &twofa, &found),
        CKR_OK);
    pthread_mutex_unlock(&f->hsm->lock);
    assert_true(found);
    assert_true(twofa);
    assert_int_equal(len, a.derlen);
    assert_memory_equal(der, a.der, len);
    free(der);

    assert_int_equal(hsm_user_list(f->conn, &u, &n), CKR_OK);
    assert_true(user_named(u, n, "co2")->mofn_pubkey);
    assert_true(user_named(u, n, "co2")->twofa);
    assert_false(user_named(u, n, "admin")->mofn_pubkey);
    free(u);

    /* Cleared: both flags go. The login stood throughout. */
    pthread_mutex_lock(&f->hsm->lock);
    assert_int_equal(hsm_user_qkey_set_locked(f->hsm, co, NULL, 0, false),
                     CKR_OK);
    pthread_mutex_unlock(&f->hsm->lock);
    assert_int_equal(hsm_user_list(f->conn, &u, &n), CKR_OK);
    assert_false(user_named(u, n, "co2")->mofn_pubkey);
    assert_false(user_named(u, n, "co2")->twofa);
    free(u);
    assert_int_equal(hsm_conn_user_type(f->conn, NULL), HSM_USER_CO);
    approver_free(&a);
}

/* ------------------------------------------------------- the full flow */

#define NCO 3
static const char *const co_names[NCO] = {"admin", "co2", "co3"};
static const char *const co_pws[NCO] = {CO_PW, "co2pass", "co3pass"};

/* Three COs, each logged in on its own connection with its own key pair
 * (not registered yet); the primary is f->conn. */
struct flow {
    struct fixture *f;
    hsm_conn_t *c[NCO];
    struct approver a[NCO];
};

static void flow_init(struct fixture *f, struct flow *w)
{
    memset(w, 0, sizeof(*w));
    w->f = f;
    w->c[0] = f->conn;
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    for (int i = 1; i < NCO; i++) {
        assert_int_equal(hsm_user_create(f->conn, HSM_USER_CO, co_names[i],
                                         PW(co_pws[i]), NULL),
                         CKR_OK);
        assert_int_equal(hsm_conn_open(f->hsm, &w->c[i]), CKR_OK);
        assert_int_equal(
            hsm_login(w->c[i], HSM_LOGIN_SO, co_names[i], PW(co_pws[i])),
            CKR_OK);
    }
    for (int i = 0; i < NCO; i++)
        approver_init(&w->a[i], 2048);
}

static void flow_free(struct flow *w)
{
    for (int i = 0; i < NCO; i++)
        approver_free(&w->a[i]);
    for (int i = 1; i < NCO; i++)
        hsm_conn_close(w->c[i]);
}

/* registerQuorumPubKey for CO i with its own key: the signed registration
 * token proves possession. */
static CK_RV reg(struct flow *w, int i)
{
    static const uint8_t rt[] = "registration token of a quorum key";
    uint8_t sig[512];
    size_t n = sign(&w->a[i], rt, sizeof(rt), sig, sizeof(sig));

    return hsm_quorum_register_key(w->c[i], co_names[i], rt, sizeof(rt), sig, n,
                                   (const uint8_t *)w->a[i].pem,
                                   w->a[i].pemlen);
}

static void reg_all(struct flow *w)
{
    for (int i = 0; i < NCO; i++)
        assert_int_equal(reg(w, i), CKR_OK);
}

struct tok {
    uint8_t b[HSM_QUORUM_TOKEN_BYTES_MAX];
    size_t len;
};

/* getToken by CO i. */
static void get_tok(struct flow *w, int i, unsigned service, struct tok *t)
{
    t->len = sizeof(t->b);
    assert_int_equal(
        hsm_quorum_get_token(w->c[i], service, co_names[i], t->b, &t->len),
        CKR_OK);
    assert_true(t->len > 0 && t->len <= sizeof(t->b));
}

/* approveToken submitted on CO by's connection with the signatures of the
 * COs listed (-1 ends); res gets each result. */
static CK_RV approve(struct flow *w, int by, const struct tok *t,
                     const int *who, CK_RV *res)
{
    hsm_quorum_approval_t ap[NCO * 2];
    uint8_t sigs[NCO * 2][512];
    size_t n = 0;

    for (; who[n] >= 0; n++) {
        memset(&ap[n], 0, sizeof(ap[n]));
        ap[n].type = HSM_USER_CO;
        snprintf(ap[n].name, sizeof(ap[n].name), "%s", co_names[who[n]]);
        ap[n].sig_len =
            sign(&w->a[who[n]], t->b, t->len, sigs[n], sizeof(sigs[n]));
        ap[n].sig = sigs[n];
    }
    return hsm_quorum_approve(w->c[by], t->b, t->len, ap, n, res);
}

/* Approves with the listed COs, every approval accepted. */
static void approve_ok(struct flow *w, int by, const struct tok *t,
                       const int *who)
{
    CK_RV res[NCO * 2];
    size_t n = 0;

    while (who[n] >= 0)
        n++;
    assert_int_equal(approve(w, by, t, who, res), CKR_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(res[i], CKR_OK);
}

/* Service 4 at 2, then service 3 at m with a service-4 token. */
static void quorum_on(struct flow *w, unsigned m3)
{
    static const int two[] = {1, 2, -1};
    struct tok t;

    reg_all(w);
    assert_int_equal(hsm_quorum_set_m(w->c[0], HSM_QUORUM_SVC_MISC_CO, 2),
                     CKR_OK);
    get_tok(w, 0, HSM_QUORUM_SVC_MISC_CO, &t);
    approve_ok(w, 0, &t, two);
    assert_int_equal(hsm_quorum_set_m(w->c[0], HSM_QUORUM_SVC_USER_MGMT, m3),
                     CKR_OK);
}

static bool user_exists(struct fixture *f, const char *name)
{
    hsm_user_info_t *u = NULL;
    size_t n = 0;
    bool found = false;

    assert_int_equal(hsm_user_list(f->conn, &u, &n), CKR_OK);
    for (size_t i = 0; i < n; i++)
        if (strcmp(u[i].name, name) == 0)
            found = true;
    free(u);
    return found;
}

static size_t live_tokens(struct flow *w)
{
    hsm_quorum_token_info_t *ti = NULL;
    size_t n = 0;

    assert_int_equal(hsm_quorum_list_tokens(w->c[0], &ti, &n), CKR_OK);
    free(ti);
    return n;
}

/* registerQuorumPubKey: listUsers shows it; every bad input is refused
 * with its own code and registers nothing. */
static void test_register(void **state)
{
    struct fixture *f = *state;
    static const uint8_t rt[] = "registration token";
    uint8_t sig[512], big[HSM_QUORUM_PUBKEY_MAX + 1];
    struct approver small;
    struct flow w;
    hsm_user_info_t *u = NULL;
    hsm_conn_t *cu = NULL;
    size_t n, sl;

    flow_init(f, &w);
    approver_init(&small, 1024);
    sl = sign(&w.a[1], rt, sizeof(rt), sig, sizeof(sig));
    /* Hostile lengths, NULLs. */
    assert_int_equal(hsm_quorum_register_key(w.c[1], "co2", NULL, 5, sig, sl,
                                             (const uint8_t *)w.a[1].pem,
                                             w.a[1].pemlen),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_register_key(w.c[1], "co2", rt, 0, sig, sl,
                                             (const uint8_t *)w.a[1].pem,
                                             w.a[1].pemlen),
                     CKR_ARGUMENTS_BAD);
    memset(big, 'x', sizeof(big));
    assert_int_equal(hsm_quorum_register_key(
                         w.c[1], "co2", big, HSM_QUORUM_REG_TOKEN_MAX + 1, sig,
                         sl, (const uint8_t *)w.a[1].pem, w.a[1].pemlen),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_register_key(w.c[1], "co2", rt, sizeof(rt), sig,
                                             HSM_QUORUM_SIG_MAX + 1,
                                             (const uint8_t *)w.a[1].pem,
                                             w.a[1].pemlen),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(
        hsm_quorum_register_key(w.c[1], "co2", rt, sizeof(rt), NULL, 0,
                                (const uint8_t *)w.a[1].pem, w.a[1].pemlen),
        CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_register_key(w.c[1], "co2", rt, sizeof(rt), sig,
                                             sl, big, sizeof(big)),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_register_key(w.c[1], "co2", rt, sizeof(rt), sig,
                                             sl, big, 100),
                     CKR_ARGUMENTS_BAD); /* not a key */
    assert_int_equal(hsm_quorum_register_key(w.c[1], NULL, rt, sizeof(rt), sig,
                                             sl, (const uint8_t *)w.a[1].pem,
                                             w.a[1].pemlen),
                     CKR_ARGUMENTS_BAD);
    /* Not RSA-2048; a signature by another key or over other bytes;
     * another CO's name. */
    assert_int_equal(hsm_quorum_register_key(w.c[1], "co2", rt, sizeof(rt), sig,
                                             sl, small.der, small.derlen),
                     CKR_KEY_SIZE_RANGE);
    assert_int_equal(hsm_quorum_register_key(w.c[1], "co2", rt, sizeof(rt), sig,
                                             sl, w.a[2].der, w.a[2].derlen),
                     CKR_SIGNATURE_INVALID);
    assert_int_equal(hsm_quorum_register_key(w.c[1], "co2", rt, sizeof(rt) - 1,
                                             sig, sl, w.a[1].der,
                                             w.a[1].derlen),
                     CKR_SIGNATURE_INVALID);
    assert_int_equal(hsm_quorum_register_key(w.c[1], "co3", rt, sizeof(rt), sig,
                                             sl, w.a[1].der, w.a[1].derlen),
                     CKR_ACTION_PROHIBITED);
    /* Nothing registered so far. */
    assert_int_equal(hsm_user_list(f->conn, &u, &n), CKR_OK);
    for (size_t i = 0; i < n; i++)
        assert_false(u[i].mofn_pubkey);
    free(u);

    assert_int_equal(reg(&w, 1), CKR_OK);
    assert_int_equal(hsm_quorum_register_key(w.c[1], "CO2", rt, sizeof(rt), sig,
                                             sl, w.a[1].der, w.a[1].derlen),
                     CKR_OK); /* again, DER, the name in another case */
    assert_int_equal(hsm_user_list(f->conn, &u, &n), CKR_OK);
    assert_true(user_named(u, n, "co2")->mofn_pubkey);
    assert_false(user_named(u, n, "co2")->twofa);
    assert_false(user_named(u, n, "co3")->mofn_pubkey);
    free(u);
    /* co3 cannot register co2's key (one key, one approver). */
    assert_int_equal(hsm_quorum_register_key(w.c[2], "co3", rt, sizeof(rt), sig,
                                             sl, w.a[1].der, w.a[1].derlen),
                     CKR_ACTION_PROHIBITED);
    /* A CU, a public session: not theirs. */
    assert_int_equal(
        hsm_user_create(f->conn, HSM_USER_CU, "cu1", PW("cupass1"), NULL),
        CKR_OK);
    assert_int_equal(hsm_conn_open(f->hsm, &cu), CKR_OK);
    assert_int_equal(hsm_quorum_register_key(cu, "cu1", rt, sizeof(rt), sig, sl,
                                             w.a[1].der, w.a[1].derlen),
                     CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_login(cu, HSM_LOGIN_USER, "cu1", PW("cupass1")),
                     CKR_OK);
    assert_int_equal(hsm_quorum_register_key(cu, "cu1", rt, sizeof(rt), sig, sl,
                                             w.a[1].der, w.a[1].derlen),
                     CKR_USER_NOT_LOGGED_IN);
    hsm_conn_close(cu);
    approver_free(&small);
    flow_free(&w);
}

/* setMValue's range and invariants; service 4 guards it. */
static void test_set_m(void **state)
{
    struct fixture *f = *state;
    static const int one[] = {0, -1}, two[] = {1, 2, -1};
    struct flow w;
    struct tok t;
    unsigned m = 0;

    flow_init(f, &w);
    assert_int_equal(hsm_quorum_get_m(w.c[0], 3, &m), CKR_OK);
    assert_int_equal(m, 1);
    assert_int_equal(hsm_quorum_get_m(w.c[0], 5, &m), CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_get_m(w.c[0], 3, NULL), CKR_ARGUMENTS_BAD);
    /* No registered key: M stays 1. */
    assert_int_equal(hsm_quorum_set_m(w.c[0], 4, 2), CKR_ARGUMENTS_BAD);
    assert_int_equal(reg(&w, 0), CKR_OK);
    assert_int_equal(reg(&w, 1), CKR_OK);
    assert_int_equal(hsm_quorum_set_m(w.c[0], 4, 3), CKR_ARGUMENTS_BAD);
    assert_int_equal(reg(&w, 2), CKR_OK);
    assert_int_equal(hsm_quorum_set_m(w.c[0], 4, 0), CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_set_m(w.c[0], 4, HSM_QUORUM_M_MAX + 1),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_set_m(w.c[0], 2, 2), CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_set_m(w.c[0], 5, 2), CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_set_m(w.c[0], 4, 4), CKR_ARGUMENTS_BAD);
    /* Service 3 cannot rise while service 4 is 1. */
    assert_int_equal(hsm_quorum_set_m(w.c[0], 3, 2), CKR_FUNCTION_REJECTED);
    assert_int_equal(hsm_quorum_get_m(w.c[0], 3, &m), CKR_OK);
    assert_int_equal(m, 1);
    assert_int_equal(hsm_quorum_set_m(w.c[1], 4, 2), CKR_OK);
    /* Now setMValue needs an approved service-4 token of its own login. */
    assert_int_equal(hsm_quorum_set_m(w.c[0], 3, 2), CKR_FUNCTION_REJECTED);
    get_tok(&w, 0, 4, &t);
    approve_ok(&w, 0, &t, one);
    assert_int_equal(hsm_quorum_set_m(w.c[0], 3, 2), CKR_FUNCTION_REJECTED);
    assert_int_equal(hsm_quorum_set_m(w.c[1], 3, 2), CKR_FUNCTION_REJECTED);
    approve_ok(&w, 2, &t, two); /* another CO submits: three now */
    assert_int_equal(hsm_quorum_set_m(w.c[1], 3, 2),
                     CKR_FUNCTION_REJECTED); /* not co2's token */
    assert_int_equal(hsm_quorum_set_m(w.c[0], 3, 2), CKR_OK);
    assert_int_equal(hsm_quorum_get_m(w.c[2], 3, &m), CKR_OK);
    assert_int_equal(m, 2);
    /* Used up. */
    assert_int_equal(live_tokens(&w), 0);
    assert_int_equal(hsm_quorum_set_m(w.c[0], 3, 1), CKR_FUNCTION_REJECTED);
    /* Service 4 cannot drop to 1 under service 3 at 2, even approved. */
    get_tok(&w, 0, 4, &t);
    approve_ok(&w, 0, &t, two);
    assert_int_equal(hsm_quorum_set_m(w.c[0], 4, 1), CKR_FUNCTION_REJECTED);
    assert_int_equal(hsm_quorum_get_m(w.c[0], 4, &m), CKR_OK);
    assert_int_equal(m, 2);
    /* Nor can an approver's deletion leave fewer keys than M: co3 has
     * one, and deleting it would leave 2 = M; a fourth step would not. */
    assert_int_equal(live_tokens(&w), 1);
    flow_free(&w);
}

/* The flow: M=2 on service 3 refuses createUser with one approval
 * and allows it with two; the token is good once. */
static void test_create_user_m2(void **state)
{
    struct fixture *f = *state;
    static const int one[] = {1, -1}, other[] = {2, -1};
    struct flow w;
    struct tok t;
    CK_RV res[2];

    flow_init(f, &w);
    quorum_on(&w, 2);
    /* No token. */
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "alice", PW("alicepw1"), NULL),
        CKR_FUNCTION_REJECTED);
    assert_false(user_exists(f, "alice"));
    get_tok(&w, 0, HSM_QUORUM_SVC_USER_MGMT, &t);
    approve_ok(&w, 0, &t, one);
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "alice", PW("alicepw1"), NULL),
        CKR_FUNCTION_REJECTED);
    assert_false(user_exists(f, "alice"));
    /* The token stays for the next approval. */
    approve_ok(&w, 0, &t, other);
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "alice", PW("alicepw1"), NULL),
        CKR_OK);
    assert_true(user_exists(f, "alice"));
    /* Replay: the token is gone, its approvals with it. */
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "bob", PW("bobpass1"), NULL),
        CKR_FUNCTION_REJECTED);
    assert_int_equal(approve(&w, 0, &t, one, res), CKR_DATA_INVALID);
    assert_false(user_exists(f, "bob"));
    flow_free(&w);
}

/* Every service-3 operation on another user is guarded; one's own
 * password is not. A refused one changes nothing. */
static void test_guarded_operations(void **state)
{
    struct fixture *f = *state;
    static const int two[] = {1, 2, -1};
    struct flow w;
    struct tok t;
    hsm_conn_t *cu = NULL;

    flow_init(f, &w);
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "alice", PW("alicepw1"), NULL),
        CKR_OK);
    quorum_on(&w, 2);
    assert_int_equal(hsm_conn_open(f->hsm, &cu), CKR_OK);
    /* changePswd of another user, C_InitPIN of another (existing or new),
     * deleteUser. */
    assert_int_equal(hsm_user_set_password(w.c[0], "alice", PW("alicepw2")),
                     CKR_FUNCTION_REJECTED);
    assert_int_equal(hsm_init_pin(w.c[0], "alice", PW("alicepw3")),
                     CKR_FUNCTION_REJECTED);
    assert_int_equal(hsm_init_pin(w.c[0], "carol", PW("carolpw1")),
                     CKR_FUNCTION_REJECTED);
    assert_false(user_exists(f, "carol"));
    assert_int_equal(hsm_user_delete(w.c[0], "alice"), CKR_FUNCTION_REJECTED);
    assert_true(user_exists(f, "alice"));
    /* Nothing changed: alice's password is the first. */
    assert_int_equal(hsm_login(cu, HSM_LOGIN_USER, "alice", PW("alicepw1")),
                     CKR_OK);
    assert_int_equal(hsm_logout(cu), CKR_OK);
    /* One's own password needs no quorum. */
    assert_int_equal(hsm_user_set_password(w.c[1], "co2", PW("co2pass2")),
                     CKR_OK);
    /* co2's login stood (its own change); the others each need a token. */
    get_tok(&w, 0, 3, &t);
    approve_ok(&w, 0, &t, two);
    assert_int_equal(hsm_user_set_password(w.c[0], "alice", PW("alicepw2")),
                     CKR_OK);
    assert_int_equal(hsm_login(cu, HSM_LOGIN_USER, "alice", PW("alicepw2")),
                     CKR_OK);
    assert_int_equal(hsm_logout(cu), CKR_OK);
    assert_int_equal(hsm_init_pin(w.c[0], "alice", PW("alicepw3")),
                     CKR_FUNCTION_REJECTED);
    get_tok(&w, 0, 3, &t);
    approve_ok(&w, 0, &t, two);
    assert_int_equal(hsm_init_pin(w.c[0], "alice", PW("alicepw3")), CKR_OK);
    get_tok(&w, 0, 3, &t);
    approve_ok(&w, 0, &t, two);
    assert_int_equal(hsm_user_delete(w.c[0], "alice"), CKR_OK);
    assert_false(user_exists(f, "alice"));
    /* A service-4 token does not serve service 3. */
    get_tok(&w, 0, 4, &t);
    approve_ok(&w, 0, &t, two);
    assert_int_equal(hsm_init_pin(w.c[0], "dave", PW("davepw11")),
                     CKR_FUNCTION_REJECTED);
    /* An approver whose deletion would leave fewer keys than M stays. */
    assert_int_equal(hsm_quorum_set_m(w.c[0], 3, 3), CKR_OK);
    assert_int_equal(hsm_logout(w.c[2]), CKR_OK);
    get_tok(&w, 0, 3, &t);
    approve_ok(&w, 0, &t, (const int[]){0, 1, 2, -1});
    assert_int_equal(hsm_user_delete(w.c[0], "co3"), CKR_ACTION_PROHIBITED);
    assert_int_equal(live_tokens(&w), 1); /* not used */
    hsm_conn_close(cu);
    flow_free(&w);
}

/* C_InitToken's re-initialization deletes every CU on one CO's password
 * and no token can come with it: refused while service 3 is above 1 (a
 * wrong password still counted first), nothing deleted, the refusal
 * audited; with service 3 back at 1 (a service-4 quorum) it runs. */
static void test_reinit_guarded(void **state)
{
    struct fixture *f = *state;
    static const int two[] = {1, 2, -1};
    hsm_audit_record_t *recs = NULL;
    size_t nrec = 0, refused = 0;
    hsm_token_info_t ti;
    hsm_conn_t *cu = NULL;
    struct flow w;
    struct tok t;

    flow_init(f, &w);
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "alice", PW("alicepw1"), NULL),
        CKR_OK);
    quorum_on(&w, 2);
    assert_int_equal(hsm_init_token(f->hsm, "co2", PW("wrongpw"), "gone"),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_init_token(f->hsm, "co2", PW("co2pass"), "gone"),
                     CKR_FUNCTION_REJECTED);
    assert_int_equal(hsm_init_token(f->hsm, NULL, PW(CO_PW), "gone"),
                     CKR_FUNCTION_REJECTED);
    /* Nothing changed: alice stays, every login stands, the label too. */
    assert_true(user_exists(f, "alice"));
    assert_int_equal(hsm_token_info(f->hsm, w.c[0], &ti), CKR_OK);
    assert_string_equal(ti.label, "quorum");
    assert_int_equal(hsm_conn_open(f->hsm, &cu), CKR_OK);
    assert_int_equal(hsm_login(cu, HSM_LOGIN_USER, "alice", PW("alicepw1")),
                     CKR_OK);
    assert_int_equal(hsm_logout(cu), CKR_OK);
    assert_int_equal(
        hsm_audit_read(w.c[0], 0, HSM_AUDIT_READ_MAX, &recs, &nrec), CKR_OK);
    for (size_t i = 0; i < nrec; i++)
        if (strcmp(recs[i].op, "quorum_refused") == 0 &&
            recs[i].oid == HSM_QUORUM_SVC_USER_MGMT)
            refused++;
    assert_int_equal(refused, 2);
    free(recs);
    /* Service 3 back to 1 with a service-4 quorum: re-initialization
     * runs. */
    get_tok(&w, 0, HSM_QUORUM_SVC_MISC_CO, &t);
    approve_ok(&w, 0, &t, two);
    assert_int_equal(hsm_quorum_set_m(w.c[0], HSM_QUORUM_SVC_USER_MGMT, 1),
                     CKR_OK);
    assert_int_equal(hsm_init_token(f->hsm, "co2", PW("co2pass"), "gone"),
                     CKR_OK);
    assert_int_equal(hsm_login(cu, HSM_LOGIN_USER, "alice", PW("alicepw1")),
                     CKR_USER_PIN_NOT_INITIALIZED);
    hsm_conn_close(cu);
    flow_free(&w);
}

/* Approvals that must not count: an unregistered key, a signature over
 * other bytes or by another key, the same approver twice; and hostile
 * arguments. */
static void test_approvals_hostile(void **state)
{
    struct fixture *f = *state;
    static const int self[] = {0, -1}, selftwice[] = {0, 0, -1};
    hsm_quorum_approval_t ap[HSM_QUORUM_M_MAX + 1];
    struct approver stranger;
    uint8_t sig[512];
    struct flow w;
    struct tok t, t2;
    CK_RV res[HSM_QUORUM_M_MAX + 1];
    hsm_quorum_token_info_t *ti = NULL;
    size_t n = 0;

    flow_init(f, &w);
    quorum_on(&w, 2);
    approver_init(&stranger, 2048);
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CO, "co4", PW("co4pass"), NULL),
        CKR_FUNCTION_REJECTED); /* guarded: needs a token */
    get_tok(&w, 0, 3, &t);
    get_tok(&w, 0, 3, &t2);
    assert_true(t.len != t2.len || memcmp(t.b, t2.b, t.len) != 0);
    /* The requester twice, in one call and in two: counts once. */
    assert_int_equal(approve(&w, 0, &t, selftwice, res), CKR_OK);
    assert_int_equal(res[0], CKR_OK);
    assert_int_equal(res[1], CKR_FUNCTION_REJECTED);
    assert_int_equal(approve(&w, 0, &t, self, res), CKR_OK);
    assert_int_equal(res[0], CKR_FUNCTION_REJECTED);
    /* co2's name, signed by a key nobody registered; co2's key over the
     * other token (the wrong digest); co3's key in co2's name. */
    memset(ap, 0, sizeof(ap));
    ap[0].type = HSM_USER_CO;
    snprintf(ap[0].name, sizeof(ap[0].name), "co2");
    ap[0].sig_len = sign(&stranger, t.b, t.len, sig, sizeof(sig));
    ap[0].sig = sig;
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_SIGNATURE_INVALID);
    ap[0].sig_len = sign(&w.a[1], t2.b, t2.len, sig, sizeof(sig));
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_SIGNATURE_INVALID);
    ap[0].sig_len = sign(&w.a[2], t.b, t.len, sig, sizeof(sig));
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_SIGNATURE_INVALID);
    /* An approver that is not a CO, does not exist, has no key; a bad
     * type; a name without its NUL; no signature, an oversized one. */
    ap[0].sig_len = sign(&w.a[1], t.b, t.len, sig, sizeof(sig));
    ap[0].type = HSM_USER_CU;
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_USER_TYPE_INVALID);
    ap[0].type = HSM_USER_CO;
    snprintf(ap[0].name, sizeof(ap[0].name), "nobody");
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_ARGUMENTS_BAD);
    snprintf(ap[0].name, sizeof(ap[0].name), "app_user");
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_ARGUMENTS_BAD);
    memset(ap[0].name, 'a', sizeof(ap[0].name));
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_ARGUMENTS_BAD);
    snprintf(ap[0].name, sizeof(ap[0].name), "co2");
    ap[0].sig = NULL;
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_SIGNATURE_LEN_RANGE);
    ap[0].sig = sig;
    ap[0].sig_len = HSM_QUORUM_SIG_MAX + 1;
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_SIGNATURE_LEN_RANGE);
    ap[0].sig_len = 255;
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_SIGNATURE_LEN_RANGE);
    /* The call itself: NULLs, 0, too many, too long, changed bytes. */
    ap[0].sig_len = sign(&w.a[1], t.b, t.len, sig, sizeof(sig));
    assert_int_equal(hsm_quorum_approve(w.c[0], NULL, t.len, ap, 1, res),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, 0, ap, 1, res),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b,
                                        HSM_QUORUM_TOKEN_BYTES_MAX + 1, ap, 1,
                                        res),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, NULL, 1, res),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 0, res),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(
        hsm_quorum_approve(w.c[0], t.b, t.len, ap, HSM_QUORUM_M_MAX + 1, res),
        CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, NULL),
                     CKR_ARGUMENTS_BAD);
    t.b[5] ^= 1;
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, res),
                     CKR_DATA_INVALID);
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len - 1, ap, 1, res),
                     CKR_DATA_INVALID);
    t.b[5] ^= 1;
    /* Through all that, one approval counted: still refused. */
    assert_int_equal(hsm_quorum_list_tokens(w.c[1], &ti, &n), CKR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ti[0].given, 1);
    assert_int_equal(ti[0].napprovers, 1);
    assert_string_equal(ti[0].approvers[0], "admin");
    assert_int_equal(ti[1].given, 0);
    free(ti);
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "eve", PW("evepass1"), NULL),
        CKR_FUNCTION_REJECTED);
    assert_false(user_exists(f, "eve"));
    /* The good one, by co2, now makes two. */
    assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, ap, 1, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_OK);
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "eve", PW("evepass1"), NULL),
        CKR_OK);
    approver_free(&stranger);
    flow_free(&w);
}

static uint64_t fake_now;
static uint64_t fake_clock(void)
{
    return fake_now;
}

/* A token expires after quorum_token_lifetime (600 s by default). */
static void test_expiry(void **state)
{
    struct fixture *f = *state;
    static const int two[] = {1, 2, -1};
    hsm_quorum_token_info_t *ti = NULL;
    struct flow w;
    struct tok t;
    CK_RV res[2];
    size_t n = 0;

    flow_init(f, &w);
    quorum_on(&w, 2);
    fake_now = (uint64_t)time(NULL);
    hsm_quorum_clock_hook = fake_clock;
    get_tok(&w, 0, 3, &t);
    approve_ok(&w, 0, &t, two);
    fake_now += 599;
    assert_int_equal(hsm_quorum_list_tokens(w.c[0], &ti, &n), CKR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ti[0].seconds_left, 1);
    assert_int_equal(ti[0].needed, 2);
    assert_int_equal(ti[0].given, 2);
    assert_int_equal(ti[0].service, 3);
    assert_string_equal(ti[0].user, "admin");
    free(ti);
    fake_now += 1;
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "late", PW("latepw11"), NULL),
        CKR_FUNCTION_REJECTED);
    assert_int_equal(approve(&w, 0, &t, two, res), CKR_DATA_INVALID);
    assert_int_equal(live_tokens(&w), 0);
    assert_false(user_exists(f, "late"));
    flow_free(&w);
}

/* The configured lifetime (on the fake clock: with the real one and a 1 s
 * lifetime, a loaded machine let the token expire before its approvals). */
static void test_expiry_config(void **state)
{
    struct fixture *f = *state;
    static const int two[] = {1, 2, -1};
    hsm_quorum_token_info_t *ti = NULL;
    struct flow w;
    struct tok t;
    size_t n = 0;

    hsm_close(f->hsm);
    f->cfg.quorum_token_lifetime = 5;
    assert_int_equal(hsm_open(&f->cfg, &f->hsm), CKR_OK);
    assert_int_equal(hsm_conn_open(f->hsm, &f->conn), CKR_OK);
    flow_init(f, &w);
    quorum_on(&w, 2); /* its service-4 token was used at once */
    fake_now = (uint64_t)time(NULL);
    hsm_quorum_clock_hook = fake_clock;
    get_tok(&w, 0, 3, &t);
    approve_ok(&w, 0, &t, two);
    fake_now += 4;
    assert_int_equal(hsm_quorum_list_tokens(w.c[0], &ti, &n), CKR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ti[0].seconds_left, 1);
    free(ti);
    fake_now += 1;
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "late", PW("latepw11"), NULL),
        CKR_FUNCTION_REJECTED);
    assert_false(user_exists(f, "late"));
    flow_free(&w);
}

/* A token dies with its requester's login: logout, the connection's close,
 * the requester's password reset by another CO. */
static void test_dies_with_login(void **state)
{
    struct fixture *f = *state;
    static const int two[] = {0, 2, -1};
    struct flow w;
    struct tok t;
    CK_RV res[2];

    flow_init(f, &w);
    quorum_on(&w, 2);
    /* Logout. */
    get_tok(&w, 1, 3, &t);
    approve_ok(&w, 1, &t, two);
    assert_int_equal(live_tokens(&w), 1);
    assert_int_equal(hsm_logout(w.c[1]), CKR_OK);
    assert_int_equal(live_tokens(&w), 0);
    assert_int_equal(hsm_login(w.c[1], HSM_LOGIN_SO, "co2", PW(co_pws[1])),
                     CKR_OK);
    assert_int_equal(
        hsm_user_create(w.c[1], HSM_USER_CU, "x1", PW("x1pass1"), NULL),
        CKR_FUNCTION_REJECTED);
    assert_int_equal(approve(&w, 1, &t, two, res), CKR_DATA_INVALID);
    /* The connection's close. */
    get_tok(&w, 1, 3, &t);
    approve_ok(&w, 1, &t, two);
    hsm_conn_close(w.c[1]);
    assert_int_equal(live_tokens(&w), 0);
    assert_int_equal(hsm_conn_open(f->hsm, &w.c[1]), CKR_OK);
    assert_int_equal(hsm_login(w.c[1], HSM_LOGIN_SO, "co2", PW(co_pws[1])),
                     CKR_OK);
    /* Another CO resets co2's password (guarded, so co3 asks): co2's login
     * and its token end. */
    get_tok(&w, 1, 3, &t);
    approve_ok(&w, 1, &t, two);
    {
        struct tok t3;
        static const int two3[] = {0, 1, -1};

        get_tok(&w, 2, 3, &t3);
        approve_ok(&w, 2, &t3, two3);
        assert_int_equal(hsm_user_set_password(w.c[2], "co2", PW("co2new1")),
                         CKR_OK);
    }
    assert_int_equal(
        hsm_user_create(w.c[1], HSM_USER_CU, "x2", PW("x2pass1"), NULL),
        CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(live_tokens(&w), 0);
    flow_free(&w);
}

/* At most HSM_QUORUM_TOKENS_MAX live tokens; the next is refused until
 * one goes. */
static void test_token_limit(void **state)
{
    struct fixture *f = *state;
    struct flow w;
    struct tok t;
    size_t need = 0;

    flow_init(f, &w);
    reg_all(&w);
    /* The two-call convention issues nothing. */
    assert_int_equal(hsm_quorum_get_token(w.c[0], 3, "admin", NULL, &need),
                     CKR_OK);
    assert_true(need > 0 && need <= HSM_QUORUM_TOKEN_BYTES_MAX);
    t.len = need - 100;
    assert_int_equal(hsm_quorum_get_token(w.c[0], 3, "admin", t.b, &t.len),
                     CKR_BUFFER_TOO_SMALL);
    assert_int_equal(t.len, need);
    assert_int_equal(live_tokens(&w), 0);
    for (int i = 0; i < HSM_QUORUM_TOKENS_MAX; i++)
        get_tok(&w, i % NCO, 3 + (unsigned)(i % 2), &t);
    assert_int_equal(live_tokens(&w), HSM_QUORUM_TOKENS_MAX);
    t.len = sizeof(t.b);
    assert_int_equal(hsm_quorum_get_token(w.c[0], 3, "admin", t.b, &t.len),
                     CKR_FUNCTION_REJECTED);
    assert_int_equal(hsm_quorum_del_token(w.c[1], 1), CKR_OK);
    get_tok(&w, 0, 3, &t);
    t.len = sizeof(t.b);
    assert_int_equal(hsm_quorum_get_token(w.c[0], 3, "admin", t.b, &t.len),
                     CKR_FUNCTION_REJECTED);
    /* A logout frees its share (a third of them). */
    assert_int_equal(hsm_logout(w.c[2]), CKR_OK);
    assert_int_equal(live_tokens(&w), HSM_QUORUM_TOKENS_MAX - 341);
    get_tok(&w, 0, 3, &t);
    flow_free(&w);
}

/* getToken, listTokens, delToken: arguments and who may. */
static void test_tokens_calls(void **state)
{
    struct fixture *f = *state;
    static const int one[] = {1, -1};
    hsm_quorum_token_info_t *ti = NULL;
    hsm_conn_t *cu = NULL;
    struct flow w;
    struct tok t;
    size_t n = 0;
    uint32_t id;

    flow_init(f, &w);
    reg_all(&w);
    t.len = sizeof(t.b);
    assert_int_equal(hsm_quorum_get_token(w.c[0], 5, "admin", t.b, &t.len),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_get_token(w.c[0], 3, "co2", t.b, &t.len),
                     CKR_ARGUMENTS_BAD); /* for oneself only */
    assert_int_equal(hsm_quorum_get_token(w.c[0], 3, NULL, t.b, &t.len),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_get_token(w.c[0], 3, "admin", t.b, NULL),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(live_tokens(&w), 0);
    get_tok(&w, 1, 3, &t);
    assert_non_null(memmem(t.b, t.len, "user: co2\n", 10));
    assert_non_null(memmem(t.b, t.len, "service: 3\n", 11));
    approve_ok(&w, 2, &t, one);
    assert_int_equal(hsm_quorum_list_tokens(w.c[2], &ti, &n), CKR_OK);
    assert_int_equal(n, 1);
    id = ti[0].id;
    assert_int_equal(ti[0].needed, 1);
    assert_int_equal(ti[0].given, 1);
    assert_string_equal(ti[0].user, "co2");
    assert_string_equal(ti[0].approvers[0], "co2");
    free(ti);
    assert_int_equal(hsm_quorum_list_tokens(w.c[2], NULL, &n),
                     CKR_ARGUMENTS_BAD);
    /* Not for a CU or a public session. */
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "cu1", PW("cupass1"), NULL),
        CKR_OK);
    assert_int_equal(hsm_conn_open(f->hsm, &cu), CKR_OK);
    assert_int_equal(hsm_quorum_list_tokens(cu, &ti, &n),
                     CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_quorum_del_token(cu, id), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_login(cu, HSM_LOGIN_USER, "cu1", PW("cupass1")),
                     CKR_OK);
    assert_int_equal(hsm_quorum_list_tokens(cu, &ti, &n),
                     CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_quorum_del_token(cu, id), CKR_USER_NOT_LOGGED_IN);
    t.len = sizeof(t.b);
    assert_int_equal(hsm_quorum_get_token(cu, 3, "cu1", t.b, &t.len),
                     CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_quorum_set_m(cu, 3, 1), CKR_USER_NOT_LOGGED_IN);
    /* Any CO deletes; an unknown id is refused. */
    assert_int_equal(hsm_quorum_del_token(w.c[2], id + 1000),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_quorum_del_token(w.c[2], id), CKR_OK);
    assert_int_equal(hsm_quorum_del_token(w.c[2], id), CKR_ARGUMENTS_BAD);
    assert_int_equal(live_tokens(&w), 0);
    hsm_conn_close(cu);
    flow_free(&w);
}

/* Every step leaves its audit record, refusals with their reason. */
static void test_audit_records(void **state)
{
    struct fixture *f = *state;
    static const int one[] = {1, -1}, bad[] = {1, -1};
    hsm_audit_record_t *r = NULL;
    struct flow w;
    struct tok t, t2;
    CK_RV res[2];
    size_t n = 0;
    bool seen[8] = {false};

    flow_init(f, &w);
    quorum_on(&w, 2);
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "a1", PW("a1pass1"), NULL),
        CKR_FUNCTION_REJECTED);
    get_tok(&w, 0, 3, &t);
    get_tok(&w, 0, 3, &t2);
    /* co2 signs t2's bytes but submits them for t: rejected. */
    {
        hsm_quorum_approval_t ap;
        uint8_t sig[512];

        memset(&ap, 0, sizeof(ap));
        ap.type = HSM_USER_CO;
        snprintf(ap.name, sizeof(ap.name), "co2");
        ap.sig_len = sign(&w.a[1], t2.b, t2.len, sig, sizeof(sig));
        ap.sig = sig;
        assert_int_equal(hsm_quorum_approve(w.c[0], t.b, t.len, &ap, 1, res),
                         CKR_OK);
        assert_int_equal(res[0], CKR_SIGNATURE_INVALID);
    }
    (void)bad;
    approve_ok(&w, 0, &t, one);
    approve_ok(&w, 0, &t, (const int[]){2, -1});
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "a1", PW("a1pass1"), NULL),
        CKR_OK);
    assert_int_equal(hsm_audit_read(w.c[0], 0, HSM_AUDIT_READ_MAX, &r, &n),
                     CKR_OK);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r[i].op, "quorum_register_key") == 0 && r[i].result == 0)
            seen[0] = true;
        if (strcmp(r[i].op, "quorum_set_m") == 0 && r[i].result == 0 &&
            r[i].oid == 3)
            seen[1] = true;
        if (strcmp(r[i].op, "quorum_token") == 0 && r[i].result == 0)
            seen[2] = true;
        if (strcmp(r[i].op, "quorum_approve") == 0 &&
            r[i].result == CKR_SIGNATURE_INVALID && r[i].user == 3)
            seen[3] = true;
        if (strcmp(r[i].op, "quorum_approve") == 0 && r[i].result == 0)
            seen[4] = true;
        if (strcmp(r[i].op, "quorum_refused") == 0 &&
            r[i].result == CKR_FUNCTION_REJECTED && r[i].oid == 3)
            seen[5] = true;
        /* The use and the creation share a transaction: adjacent. */
        if (strcmp(r[i].op, "quorum_used") == 0 && i + 1 < n &&
            strcmp(r[i + 1].op, "create_user") == 0)
            seen[6] = true;
    }
    free(r);
    for (int i = 0; i < 7; i++)
        assert_true(seen[i]);
    flow_free(&w);
}

/* Never fewer registered keys than an M needs: a key's removal (tfa turns
 * 2FA off through the accessor) is refused when it would leave too few,
 * and nothing changes. */
static void test_keys_kept(void **state)
{
    struct fixture *f = *state;
    hsm_user_info_t *u = NULL;
    hsm_uid_t co2 = 0, co3 = 0;
    struct flow w;
    size_t n = 0;

    flow_init(f, &w);
    quorum_on(&w, 2); /* M 2 and 2, three keys */
    hsm_conn_user_type(w.c[1], &co2);
    hsm_conn_user_type(w.c[2], &co3);
    pthread_mutex_lock(&f->hsm->lock);
    assert_int_equal(hsm_user_qkey_set_locked(f->hsm, co3, NULL, 0, false),
                     CKR_OK);
    assert_int_equal(hsm_user_qkey_set_locked(f->hsm, co2, NULL, 0, false),
                     CKR_ACTION_PROHIBITED);
    /* A rotation keeps the count: allowed. */
    assert_int_equal(
        hsm_user_qkey_set_locked(f->hsm, co2, w.a[2].der, w.a[2].derlen, false),
        CKR_OK);
    pthread_mutex_unlock(&f->hsm->lock);
    assert_int_equal(hsm_user_list(f->conn, &u, &n), CKR_OK);
    assert_true(user_named(u, n, "co2")->mofn_pubkey);
    assert_false(user_named(u, n, "co3")->mofn_pubkey);
    free(u);
    flow_free(&w);
}

/* Two cores on one store, as two processes would be: a token one issues,
 * the other sees and approves; only its own login can use it; it dies
 * with that login for both. */
static void test_two_cores(void **state)
{
    struct fixture *f = *state;
    static const int two[] = {1, 2, -1};
    hsm_quorum_token_info_t *ti = NULL;
    hsm_t *h2 = NULL;
    hsm_conn_t *c2 = NULL;
    struct flow w;
    struct tok t, t2;
    CK_RV res[2];
    size_t n = 0;

    flow_init(f, &w);
    quorum_on(&w, 2);
    assert_int_equal(hsm_open(&f->cfg, &h2), CKR_OK);
    assert_int_equal(hsm_conn_open(h2, &c2), CKR_OK);
    assert_int_equal(hsm_login(c2, HSM_LOGIN_SO, "co2", PW(co_pws[1])), CKR_OK);
    /* Issued here, listed and approved there. */
    get_tok(&w, 0, 3, &t);
    assert_int_equal(hsm_quorum_list_tokens(c2, &ti, &n), CKR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ti[0].user, "admin");
    free(ti);
    {
        struct flow w2 = w;

        w2.c[1] = c2; /* co2 submits from the other core */
        approve_ok(&w2, 1, &t, two);
    }
    /* The other core's login of co2 cannot use admin's token, nor can
     * co2 there use a token of co2's login here. */
    assert_int_equal(
        hsm_user_create(c2, HSM_USER_CU, "x3", PW("x3pass1"), NULL),
        CKR_FUNCTION_REJECTED);
    get_tok(&w, 1, 3, &t2);
    approve_ok(&w, 1, &t2, two);
    assert_int_equal(
        hsm_user_create(c2, HSM_USER_CU, "x3", PW("x3pass1"), NULL),
        CKR_FUNCTION_REJECTED);
    assert_false(user_exists(f, "x3"));
    assert_int_equal(
        hsm_user_create(w.c[0], HSM_USER_CU, "x3", PW("x3pass1"), NULL),
        CKR_OK);
    /* co2's token here dies with its login here; the other core sees it
     * gone. */
    assert_int_equal(hsm_logout(w.c[1]), CKR_OK);
    assert_int_equal(hsm_quorum_list_tokens(c2, &ti, &n), CKR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(approve(&w, 0, &t2, two, res), CKR_DATA_INVALID);
    hsm_close(h2);
    flow_free(&w);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_parse),
        cmocka_unit_test(test_key_exponent),
        cmocka_unit_test(test_verify),
        T(test_accessor_and_user_list),
        T(test_register),
        T(test_set_m),
        T(test_create_user_m2),
        T(test_guarded_operations),
        T(test_reinit_guarded),
        T(test_approvals_hostile),
        T(test_expiry),
        T(test_expiry_config),
        T(test_dies_with_login),
        T(test_token_limit),
        T(test_tokens_calls),
        T(test_audit_records),
        T(test_keys_kept),
        T(test_two_cores),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
