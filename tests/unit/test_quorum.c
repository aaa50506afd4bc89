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
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
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

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_parse),
        cmocka_unit_test(test_verify),
        T(test_accessor_and_user_list),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
