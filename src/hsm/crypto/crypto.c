/*
 * crypto.c - the only door to OpenSSL (see crypto.h).
 *
 * Everything runs in one private OSSL_LIB_CTX that loads no configuration
 * file, created by the first crypto_init and freed by the last crypto_fini.
 * The algorithms are fetched once from that context and cached; every call
 * uses its own EVP_*_CTX, so the functions below are safe to call from
 * several threads as long as each caller holds a crypto_init reference.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "hsm/crypto/crypto.h"

/* Sealing: nonce || ct || tag. */
#define CRYPTO_GCM_NONCE_LEN 12
#define CRYPTO_GCM_TAG_LEN 16
/* Largest plaintext (and associated data) crypto_seal accepts. */
#define CRYPTO_SEAL_MAX (16UL * 1024 * 1024)

/* Password verifiers. */
#define CRYPTO_PW_PREFIX "pbkdf2-sha256$"
#define CRYPTO_PW_SALT_LEN 16
#define CRYPTO_PW_HASH_LEN 32
#define CRYPTO_PW_ITER_MIN 1000UL
#define CRYPTO_PW_ITER_MAX 100000000UL
#define CRYPTO_PW_ITER_DIGITS_MAX 9 /* strlen("100000000") */
/* prefix, iterations, '$', salt hex, '$', hash hex */
#define CRYPTO_PW_VERIFIER_MAX                                                 \
    (sizeof(CRYPTO_PW_PREFIX) - 1 + CRYPTO_PW_ITER_DIGITS_MAX + 1 +            \
     2 * CRYPTO_PW_SALT_LEN + 1 + 2 * CRYPTO_PW_HASH_LEN)

/* Master key temporary file name: "<path>.tmp-<16 hex>". */
#define CRYPTO_MK_TMP_SUFFIX_LEN (5 + 16)

/*
 * The key provider. OpenSSL 3.0 hands the operations of a key to the
 * process's default ENGINE for its key type (ENGINE_set_default, Apache's
 * SSLCryptoDevice, default_algorithms in openssl.cnf), even for a key of a
 * private library context: EVP_PKEY_CTX_new_from_pkey and _new_from_name
 * map the first name of the key's key manager ("RSA", "EC", "ED25519" ...)
 * to a legacy NID and ask the ENGINE table for it. libp11's engine then
 * gets our RSA and EC keys, and its legacy path refuses PSS and OAEP.
 *
 * So our keys are made by the key managers of a provider of our own,
 * CRYPTO_KEYS_PROVIDER: the default provider's implementations, listed
 * under a first name no NID has ("NIMBUS-RSA:RSA:rsaEncryption:...").
 * With no NID the context goes straight to the providers. The signature,
 * asymmetric cipher and key exchange implementations are the default
 * provider's, found by the other names; OpenSSL exports a key to the
 * default provider's key manager for them once, and caches that in the
 * EVP_PKEY. The provider shares the default provider's context, which its
 * functions expect.
 */
#define CRYPTO_KEYS_PROVIDER "nimbus-keys"
#define CRYPTO_KEYTYPE_PREFIX "NIMBUS-"

/* The key types we wrap: the default provider's first name, and ours. */
static const struct {
    const char *base;
    const char *ours;
} crypto_keytypes[] = {
    {"RSA", CRYPTO_KEYTYPE_PREFIX "RSA"},
    {"EC", CRYPTO_KEYTYPE_PREFIX "EC"},
    {"ED25519", CRYPTO_KEYTYPE_PREFIX "ED25519"},
    {"ED448", CRYPTO_KEYTYPE_PREFIX "ED448"},
    {"X25519", CRYPTO_KEYTYPE_PREFIX "X25519"},
    {"X448", CRYPTO_KEYTYPE_PREFIX "X448"},
};
#define CRYPTO_KEYTYPES (sizeof(crypto_keytypes) / sizeof(crypto_keytypes[0]))

struct crypto_state {
    unsigned long refs;
    OSSL_LIB_CTX *libctx;
    OSSL_PROVIDER *base; /* "default" in libctx */
    OSSL_PROVIDER *keys; /* CRYPTO_KEYS_PROVIDER in libctx */
    /* its key managers, NULL-terminated; names and properties malloc'd */
    OSSL_ALGORITHM keymgmt[CRYPTO_KEYTYPES + 1];
    EVP_KDF *pbkdf2;
    EVP_CIPHER *aes_gcm;
    EVP_MD *sha256;
};

static pthread_mutex_t crypto_lock = PTHREAD_MUTEX_INITIALIZER;
static struct crypto_state crypto_st;

/* Logs what failed with OpenSSL's first queued error, then empties the
 * queue so that no stale error is seen by the next caller. */
static void crypto_log_ossl(const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
    } else {
        snprintf(buf, sizeof(buf), "no OpenSSL error queued");
    }
    log_error("%s failed: %s", what, buf);
    ERR_clear_error();
}

static const OSSL_ALGORITHM *keys_query(void *provctx, int op, int *no_cache)
{
    (void)provctx;
    *no_cache = 0;
    return op == OSSL_OP_KEYMGMT ? crypto_st.keymgmt : NULL;
}

static const OSSL_DISPATCH keys_dispatch[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))keys_query},
    {0, NULL},
};

static int keys_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                     const OSSL_DISPATCH **out, void **provctx)
{
    (void)handle;
    (void)in;
    *provctx = OSSL_PROVIDER_get0_provider_ctx(crypto_st.base);
    *out = keys_dispatch;
    return *provctx != NULL;
}

/* The default provider's key manager named first `name`, listed in *alg
 * under `ours` and then all its own names. */
static CK_RV keys_wrap(const OSSL_ALGORITHM *base, const char *name,
                       const char *ours, OSSL_ALGORITHM *alg)
{
    size_t n = strlen(name);
    char *names;
    size_t len;

    for (; base->algorithm_names != NULL; base++) {
        if (strncmp(base->algorithm_names, name, n) == 0 &&
            (base->algorithm_names[n] == ':' ||
             base->algorithm_names[n] == '\0')) {
            break;
        }
    }
    if (base->algorithm_names == NULL) {
        log_error("the default provider has no %s key manager", name);
        return CKR_FUNCTION_FAILED;
    }
    len = strlen(ours) + 1 + strlen(base->algorithm_names) + 1;
    names = malloc(len);
    if (names == NULL) {
        return CKR_HOST_MEMORY;
    }
    snprintf(names, len, "%s:%s", ours, base->algorithm_names);
    alg->algorithm_names = names;
    alg->property_definition = CRYPTO_KEYS_PROPQ;
    alg->implementation = base->implementation;
    alg->algorithm_description = base->algorithm_description;
    return CKR_OK;
}

/* Loads the default provider and ours into crypto_st.libctx. */
static CK_RV keys_load_locked(void)
{
    const OSSL_ALGORITHM *base;
    int no_cache = 0;
    CK_RV rv = CKR_OK;

    crypto_st.base = OSSL_PROVIDER_load(crypto_st.libctx, "default");
    if (crypto_st.base == NULL) {
        crypto_log_ossl("OSSL_PROVIDER_load(default)");
        return CKR_FUNCTION_FAILED;
    }
    base = OSSL_PROVIDER_query_operation(crypto_st.base, OSSL_OP_KEYMGMT,
                                         &no_cache);
    if (base == NULL) {
        crypto_log_ossl("OSSL_PROVIDER_query_operation(KEYMGMT)");
        return CKR_FUNCTION_FAILED;
    }
    for (size_t i = 0; i < CRYPTO_KEYTYPES && rv == CKR_OK; i++) {
        rv = keys_wrap(base, crypto_keytypes[i].base, crypto_keytypes[i].ours,
                       &crypto_st.keymgmt[i]);
    }
    OSSL_PROVIDER_unquery_operation(crypto_st.base, OSSL_OP_KEYMGMT, base);
    if (rv != CKR_OK) {
        return rv;
    }
    if (OSSL_PROVIDER_add_builtin(crypto_st.libctx, CRYPTO_KEYS_PROVIDER,
                                  keys_init) != 1 ||
        (crypto_st.keys = OSSL_PROVIDER_load(crypto_st.libctx,
                                             CRYPTO_KEYS_PROVIDER)) == NULL) {
        crypto_log_ossl("OSSL_PROVIDER_load(" CRYPTO_KEYS_PROVIDER ")");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

const char *crypto_keytype(const char *name)
{
    for (size_t i = 0; i < CRYPTO_KEYTYPES; i++) {
        if (strcmp(crypto_keytypes[i].base, name) == 0) {
            return crypto_keytypes[i].ours;
        }
    }
    return NULL;
}

static void crypto_state_free_locked(void)
{
    EVP_KDF_free(crypto_st.pbkdf2);
    EVP_CIPHER_free(crypto_st.aes_gcm);
    EVP_MD_free(crypto_st.sha256);
    /* ours first: it borrows the default provider's context */
    if (crypto_st.keys != NULL) {
        OSSL_PROVIDER_unload(crypto_st.keys);
    }
    if (crypto_st.base != NULL) {
        OSSL_PROVIDER_unload(crypto_st.base);
    }
    OSSL_LIB_CTX_free(crypto_st.libctx);
    for (size_t i = 0; i < CRYPTO_KEYTYPES; i++) {
        free((char *)crypto_st.keymgmt[i].algorithm_names);
    }
    memset(crypto_st.keymgmt, 0, sizeof(crypto_st.keymgmt));
    crypto_st.keys = NULL;
    crypto_st.base = NULL;
    crypto_st.pbkdf2 = NULL;
    crypto_st.aes_gcm = NULL;
    crypto_st.sha256 = NULL;
    crypto_st.libctx = NULL;
}

CK_RV crypto_init(void)
{
    CK_RV rv = CKR_OK;

    pthread_mutex_lock(&crypto_lock);
    if (crypto_st.refs > 0) {
        if (crypto_st.refs == ULONG_MAX) {
            rv = CKR_GENERAL_ERROR;
            goto out;
        }
        crypto_st.refs++;
        goto out;
    }
    /* No OSSL_LIB_CTX_load_config: the application's openssl.cnf (which may
     * load a pkcs11 provider pointing at this very module) is never read
     * into our context. (OpenSSL 3.x itself still loads it once per process
     * into the default context on the first cipher or digest init, through
     * its ENGINE lookup; nothing here can prevent that.) */
    crypto_st.libctx = OSSL_LIB_CTX_new();
    if (crypto_st.libctx == NULL) {
        crypto_log_ossl("OSSL_LIB_CTX_new");
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if ((rv = keys_load_locked()) != CKR_OK) {
        goto out;
    }
    crypto_st.pbkdf2 = EVP_KDF_fetch(crypto_st.libctx, "PBKDF2", NULL);
    if (crypto_st.pbkdf2 == NULL) {
        crypto_log_ossl("EVP_KDF_fetch(PBKDF2)");
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    crypto_st.aes_gcm = EVP_CIPHER_fetch(crypto_st.libctx, "AES-256-GCM", NULL);
    if (crypto_st.aes_gcm == NULL) {
        crypto_log_ossl("EVP_CIPHER_fetch(AES-256-GCM)");
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    crypto_st.sha256 = EVP_MD_fetch(crypto_st.libctx, "SHA256", NULL);
    if (crypto_st.sha256 == NULL) {
        crypto_log_ossl("EVP_MD_fetch(SHA256)");
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    crypto_st.refs = 1;
out:
    if (rv != CKR_OK && crypto_st.refs == 0) {
        crypto_state_free_locked();
    }
    pthread_mutex_unlock(&crypto_lock);
    return rv;
}

/*
 * The last reference frees the context. OpenSSL 3.0 keeps the context's
 * DRBGs per thread and frees those of a thread only at that thread's exit
 * or when the thread itself frees the context: other threads still alive
 * that used it keep theirs (a few KiB each) for good. So C_Finalize while an
 * application's worker threads live leaves those behind; nimbusd joins its
 * workers first.
 */
void crypto_fini(void)
{
    pthread_mutex_lock(&crypto_lock);
    if (crypto_st.refs == 0) {
        pthread_mutex_unlock(&crypto_lock);
        log_error("crypto_fini called without crypto_init");
        return;
    }
    crypto_st.refs--;
    if (crypto_st.refs == 0) {
        crypto_state_free_locked();
    }
    pthread_mutex_unlock(&crypto_lock);
}

void *crypto_libctx(void)
{
    return crypto_st.libctx;
}

void crypto_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0) {
        OPENSSL_cleanse(p, len);
    }
}

CK_RV crypto_random(uint8_t *buf, size_t len)
{
    EVP_RAND_CTX *drbg;

    return_val_if_fail(crypto_st.libctx != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(buf != NULL || len == 0, CKR_GENERAL_ERROR);

    if (len == 0) {
        return CKR_OK;
    }
    /* The context's per-thread public DRBG directly: RAND_bytes_ex would
     * first look for a legacy RAND method under a process-wide write lock
     * (OpenSSL 3.0), which serializes threads. EVP_RAND_generate splits a
     * request larger than the DRBG takes at once. */
    drbg = RAND_get0_public(crypto_st.libctx);
    if (drbg == NULL) {
        crypto_log_ossl("RAND_get0_public");
        return CKR_FUNCTION_FAILED;
    }
    if (EVP_RAND_generate(drbg, buf, len, 0, 0, NULL, 0) != 1) {
        crypto_log_ossl("EVP_RAND_generate");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

CK_RV crypto_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
    static const uint8_t empty[1];
    unsigned int outlen = 0;

    return_val_if_fail(crypto_st.sha256 != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(data != NULL || len == 0, CKR_GENERAL_ERROR);
    return_val_if_fail(out != NULL, CKR_GENERAL_ERROR);

    if (data == NULL) {
        data = empty;
    }
    if (EVP_Digest(data, len, out, &outlen, crypto_st.sha256, NULL) != 1) {
        crypto_log_ossl("EVP_Digest(SHA256)");
        return CKR_FUNCTION_FAILED;
    }
    if (outlen != 32) {
        log_error("SHA-256 gave %u bytes", outlen);
        crypto_wipe(out, 32);
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

/* ------------------------------------------------------------ passwords */

static CK_RV crypto_pbkdf2(const uint8_t *pw, size_t pwlen,
                           const uint8_t salt[CRYPTO_PW_SALT_LEN],
                           unsigned long iterations,
                           uint8_t out[CRYPTO_PW_HASH_LEN])
{
    static const uint8_t empty[1];
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[5];
    uint64_t iter = iterations;
    CK_RV rv = CKR_FUNCTION_FAILED;

    return_val_if_fail(crypto_st.pbkdf2 != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(pw != NULL || pwlen == 0, CKR_GENERAL_ERROR);

    if (pw == NULL) {
        pw = empty;
    }
    kctx = EVP_KDF_CTX_new(crypto_st.pbkdf2);
    if (kctx == NULL) {
        crypto_log_ossl("EVP_KDF_CTX_new(PBKDF2)");
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
                                                  (void *)pw, pwlen);
    params[1] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, (void *)salt, CRYPTO_PW_SALT_LEN);
    params[2] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_ITER, &iter);
    params[3] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[4] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, out, CRYPTO_PW_HASH_LEN, params) != 1) {
        crypto_log_ossl("EVP_KDF_derive(PBKDF2)");
        crypto_wipe(out, CRYPTO_PW_HASH_LEN);
        goto out;
    }
    rv = CKR_OK;
out:
    /* EVP_KDF_CTX_free cleanses the copy of the password it holds. */
    EVP_KDF_CTX_free(kctx);
    return rv;
}

static void crypto_hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
}

/* Lower-case hex digit value, -1 for anything else. */
static int crypto_hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Decodes exactly 2 * len lower-case hex characters. */
static bool crypto_hex_decode(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t i;

    for (i = 0; i < len; i++) {
        int hi = crypto_hex_value(in[2 * i]);
        int lo = crypto_hex_value(in[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool crypto_pw_iterations_valid(unsigned long iterations)
{
    return iterations >= CRYPTO_PW_ITER_MIN && iterations <= CRYPTO_PW_ITER_MAX;
}

/*
 * Strict parse of "pbkdf2-sha256$<iter>$<32 hex>$<64 hex>": decimal
 * iterations without sign or leading zero, lower-case hex, nothing after.
 */
static bool crypto_pw_parse(const uint8_t *ver, size_t verlen,
                            unsigned long *iterations,
                            uint8_t salt[CRYPTO_PW_SALT_LEN],
                            uint8_t hash[CRYPTO_PW_HASH_LEN])
{
    const size_t plen = sizeof(CRYPTO_PW_PREFIX) - 1;
    unsigned long iter = 0;
    size_t pos, ndigits = 0;

    if (verlen > CRYPTO_PW_VERIFIER_MAX || verlen < plen ||
        memcmp(ver, CRYPTO_PW_PREFIX, plen) != 0) {
        return false;
    }
    pos = plen;
    while (pos < verlen && ver[pos] >= '0' && ver[pos] <= '9') {
        if (ndigits == CRYPTO_PW_ITER_DIGITS_MAX) {
            return false;
        }
        if (ndigits == 0 && ver[pos] == '0') {
            return false; /* no leading zero, no "0" */
        }
        iter = iter * 10 + (unsigned long)(ver[pos] - '0');
        ndigits++;
        pos++;
    }
    if (ndigits == 0 || !crypto_pw_iterations_valid(iter)) {
        return false;
    }
    /* '$' salt '$' hash, and the verifier ends there. */
    if (verlen - pos !=
        1 + 2 * CRYPTO_PW_SALT_LEN + 1 + 2 * CRYPTO_PW_HASH_LEN) {
        return false;
    }
    if (ver[pos] != '$' || ver[pos + 1 + 2 * CRYPTO_PW_SALT_LEN] != '$') {
        return false;
    }
    if (!crypto_hex_decode(ver + pos + 1, CRYPTO_PW_SALT_LEN, salt) ||
        !crypto_hex_decode(ver + pos + 2 + 2 * CRYPTO_PW_SALT_LEN,
                           CRYPTO_PW_HASH_LEN, hash)) {
        return false;
    }
    *iterations = iter;
    return true;
}

CK_RV crypto_pw_make(const uint8_t *pw, size_t pwlen, unsigned long iterations,
                     uint8_t **ver, size_t *verlen)
{
    uint8_t salt[CRYPTO_PW_SALT_LEN];
    uint8_t hash[CRYPTO_PW_HASH_LEN];
    char *buf = NULL;
    size_t pos;
    int n;
    CK_RV rv;

    return_val_if_fail(ver != NULL && verlen != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(pw != NULL || pwlen == 0, CKR_GENERAL_ERROR);

    *ver = NULL;
    *verlen = 0;
    if (!crypto_pw_iterations_valid(iterations)) {
        log_error("PBKDF2 iteration count %lu outside %lu..%lu", iterations,
                  CRYPTO_PW_ITER_MIN, CRYPTO_PW_ITER_MAX);
        return CKR_ARGUMENTS_BAD;
    }
    if ((rv = crypto_random(salt, sizeof(salt))) != CKR_OK ||
        (rv = crypto_pbkdf2(pw, pwlen, salt, iterations, hash)) != CKR_OK) {
        goto out;
    }
    buf = malloc(CRYPTO_PW_VERIFIER_MAX + 1);
    if (buf == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    n = snprintf(buf, CRYPTO_PW_VERIFIER_MAX + 1, "%s%lu$", CRYPTO_PW_PREFIX,
                 iterations);
    if (n < 0 ||
        (size_t)n + 2 * CRYPTO_PW_SALT_LEN + 1 + 2 * CRYPTO_PW_HASH_LEN >
            CRYPTO_PW_VERIFIER_MAX) {
        rv = CKR_GENERAL_ERROR;
        goto out;
    }
    pos = (size_t)n;
    crypto_hex_encode(salt, sizeof(salt), buf + pos);
    pos += 2 * sizeof(salt);
    buf[pos++] = '$';
    crypto_hex_encode(hash, sizeof(hash), buf + pos);
    pos += 2 * sizeof(hash);
    buf[pos] = '\0'; /* not counted in *verlen; handy for debuggers */
    *ver = (uint8_t *)buf;
    *verlen = pos;
    buf = NULL;
    rv = CKR_OK;
out:
    free(buf);
    crypto_wipe(hash, sizeof(hash));
    return rv;
}

CK_RV crypto_pw_check(const uint8_t *ver, size_t verlen, const uint8_t *pw,
                      size_t pwlen, bool *ok)
{
    uint8_t salt[CRYPTO_PW_SALT_LEN];
    uint8_t want[CRYPTO_PW_HASH_LEN];
    uint8_t got[CRYPTO_PW_HASH_LEN];
    unsigned long iterations = 0;
    CK_RV rv;

    return_val_if_fail(ok != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(ver != NULL || verlen == 0, CKR_GENERAL_ERROR);
    return_val_if_fail(pw != NULL || pwlen == 0, CKR_GENERAL_ERROR);

    *ok = false;
    if (ver == NULL || !crypto_pw_parse(ver, verlen, &iterations, salt, want)) {
        log_error("malformed password verifier (%zu bytes)", verlen);
        rv = CKR_GENERAL_ERROR;
        goto out;
    }
    if ((rv = crypto_pbkdf2(pw, pwlen, salt, iterations, got)) != CKR_OK) {
        goto out;
    }
    *ok = CRYPTO_memcmp(got, want, sizeof(got)) == 0;
    rv = CKR_OK;
out:
    crypto_wipe(got, sizeof(got));
    crypto_wipe(want, sizeof(want));
    crypto_wipe(salt, sizeof(salt));
    return rv;
}

void crypto_pw_dummy(const uint8_t *pw, size_t pwlen, unsigned long iterations)
{
    static const uint8_t salt[CRYPTO_PW_SALT_LEN] = {
        'n', 'i', 'm', 'b', 'u', 's', '-', 'd',
        'u', 'm', 'm', 'y', '-', 's', 'a', 'l',
    };
    uint8_t out[CRYPTO_PW_HASH_LEN];

    if (iterations < CRYPTO_PW_ITER_MIN) {
        iterations = CRYPTO_PW_ITER_MIN;
    } else if (iterations > CRYPTO_PW_ITER_MAX) {
        iterations = CRYPTO_PW_ITER_MAX;
    }
    if (pw == NULL) {
        pwlen = 0;
    }
    (void)crypto_pbkdf2(pw, pwlen, salt, iterations, out);
    crypto_wipe(out, sizeof(out));
}

/* ---------------------------------------------------------------- seal */

CK_RV crypto_seal(const uint8_t key[CRYPTO_MASTER_KEY_LEN], const uint8_t *ad,
                  size_t adlen, const uint8_t *in, size_t inlen, uint8_t **out,
                  size_t *outlen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    uint8_t *buf = NULL;
    size_t buflen;
    int n = 0, fin = 0;
    CK_RV rv = CKR_FUNCTION_FAILED;

    return_val_if_fail(crypto_st.aes_gcm != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(key != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(out != NULL && outlen != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(ad != NULL || adlen == 0, CKR_GENERAL_ERROR);
    return_val_if_fail(in != NULL || inlen == 0, CKR_GENERAL_ERROR);

    *out = NULL;
    *outlen = 0;
    if (inlen > CRYPTO_SEAL_MAX || adlen > CRYPTO_SEAL_MAX) {
        log_error("refusing to seal %zu bytes (%zu of associated data)", inlen,
                  adlen);
        return CKR_ARGUMENTS_BAD;
    }
    buflen = inlen + CRYPTO_SEAL_OVERHEAD;
    buf = malloc(buflen);
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    if ((rv = crypto_random(buf, CRYPTO_GCM_NONCE_LEN)) != CKR_OK) {
        goto out;
    }
    rv = CKR_FUNCTION_FAILED;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        crypto_log_ossl("EVP_CIPHER_CTX_new");
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    /* The default GCM IV length is 12 bytes. */
    if (EVP_EncryptInit_ex2(ctx, crypto_st.aes_gcm, key, buf, NULL) != 1) {
        crypto_log_ossl("EVP_EncryptInit_ex2(AES-256-GCM)");
        goto out;
    }
    if (adlen > 0 && EVP_EncryptUpdate(ctx, NULL, &n, ad, (int)adlen) != 1) {
        crypto_log_ossl("EVP_EncryptUpdate(AAD)");
        goto out;
    }
    n = 0;
    if (inlen > 0 && EVP_EncryptUpdate(ctx, buf + CRYPTO_GCM_NONCE_LEN, &n, in,
                                       (int)inlen) != 1) {
        crypto_log_ossl("EVP_EncryptUpdate");
        goto out;
    }
    if (EVP_EncryptFinal_ex(ctx, buf + CRYPTO_GCM_NONCE_LEN + n, &fin) != 1) {
        crypto_log_ossl("EVP_EncryptFinal_ex");
        goto out;
    }
    if ((size_t)n + (size_t)fin != inlen) {
        log_error("AES-GCM produced %d bytes for %zu", n + fin, inlen);
        rv = CKR_GENERAL_ERROR;
        goto out;
    }
    params[0] = OSSL_PARAM_construct_octet_string(
        OSSL_CIPHER_PARAM_AEAD_TAG, buf + CRYPTO_GCM_NONCE_LEN + inlen,
        CRYPTO_GCM_TAG_LEN);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_CIPHER_CTX_get_params(ctx, params) != 1) {
        crypto_log_ossl("EVP_CIPHER_CTX_get_params(tag)");
        goto out;
    }
    *out = buf;
    *outlen = buflen;
    buf = NULL;
    rv = CKR_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    free(buf); /* holds no plaintext: only nonce and ciphertext */
    return rv;
}

CK_RV crypto_unseal(const uint8_t key[CRYPTO_MASTER_KEY_LEN], const uint8_t *ad,
                    size_t adlen, const uint8_t *in, size_t inlen,
                    uint8_t **out, size_t *outlen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    uint8_t tag[CRYPTO_GCM_TAG_LEN];
    uint8_t *buf = NULL;
    size_t ctlen;
    int n = 0, fin = 0;
    CK_RV rv = CKR_FUNCTION_FAILED;

    return_val_if_fail(crypto_st.aes_gcm != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(key != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(out != NULL && outlen != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(ad != NULL || adlen == 0, CKR_GENERAL_ERROR);
    return_val_if_fail(in != NULL || inlen == 0, CKR_GENERAL_ERROR);

    *out = NULL;
    *outlen = 0;
    if (inlen > CRYPTO_SEAL_MAX + CRYPTO_SEAL_OVERHEAD ||
        adlen > CRYPTO_SEAL_MAX) {
        log_error("refusing to unseal %zu bytes (%zu of associated data)",
                  inlen, adlen);
        return CKR_ARGUMENTS_BAD;
    }
    if (inlen < CRYPTO_SEAL_OVERHEAD) {
        log_error("sealed value too short (%zu bytes)", inlen);
        return CKR_GENERAL_ERROR;
    }
    ctlen = inlen - CRYPTO_SEAL_OVERHEAD;
    memcpy(tag, in + CRYPTO_GCM_NONCE_LEN + ctlen, sizeof(tag));
    /* The clear value lands in secret memory at once. */
    buf = crypto_secret_alloc(ctlen > 0 ? ctlen : 1);
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        crypto_log_ossl("EVP_CIPHER_CTX_new");
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (EVP_DecryptInit_ex2(ctx, crypto_st.aes_gcm, key, in, NULL) != 1) {
        crypto_log_ossl("EVP_DecryptInit_ex2(AES-256-GCM)");
        goto out;
    }
    if (adlen > 0 && EVP_DecryptUpdate(ctx, NULL, &n, ad, (int)adlen) != 1) {
        crypto_log_ossl("EVP_DecryptUpdate(AAD)");
        goto out;
    }
    n = 0;
    if (ctlen > 0 && EVP_DecryptUpdate(ctx, buf, &n, in + CRYPTO_GCM_NONCE_LEN,
                                       (int)ctlen) != 1) {
        crypto_log_ossl("EVP_DecryptUpdate");
        goto out;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG,
                                                  tag, sizeof(tag));
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_CIPHER_CTX_set_params(ctx, params) != 1) {
        crypto_log_ossl("EVP_CIPHER_CTX_set_params(tag)");
        goto out;
    }
    if (EVP_DecryptFinal_ex(ctx, buf + n, &fin) != 1) {
        /* Wrong key, wrong associated data or a changed byte. */
        log_error("sealed value failed authentication (%zu bytes)", inlen);
        ERR_clear_error();
        rv = CKR_GENERAL_ERROR;
        goto out;
    }
    if ((size_t)n + (size_t)fin != ctlen) {
        log_error("AES-GCM produced %d bytes for %zu", n + fin, ctlen);
        rv = CKR_GENERAL_ERROR;
        goto out;
    }
    *out = buf;
    *outlen = ctlen;
    buf = NULL;
    rv = CKR_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    crypto_secret_free(buf);
    return rv;
}

/* ---------------------------------------------------------- master key */

static CK_RV crypto_write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return CKR_DEVICE_ERROR;
        }
        p += w;
        len -= (size_t)w;
    }
    return CKR_OK;
}

/* fsync the directory that holds path, so that a new entry survives. */
static CK_RV crypto_sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t len;
    int fd;
    CK_RV rv = CKR_OK;

    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else {
        len = slash == path ? 1 : (size_t)(slash - path);
        if (len >= sizeof(dir)) {
            return CKR_DEVICE_ERROR;
        }
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        log_error("cannot open directory %s: %s", dir, strerror(errno));
        return CKR_DEVICE_ERROR;
    }
    if (fsync(fd) != 0) {
        log_error("fsync of directory %s: %s", dir, strerror(errno));
        rv = CKR_DEVICE_ERROR;
    }
    close(fd);
    return rv;
}

/*
 * Creates the key file. The key is written and synced under a temporary
 * name, then link()ed to path, so that path appears only complete: another
 * process racing us either wins the link (we get EEXIST and read its file)
 * or finds our complete file. A crash leaves at most a stray temporary.
 * *exists is set when path was created by someone else meanwhile.
 */
static CK_RV crypto_master_key_create(const char *path,
                                      uint8_t key[CRYPTO_MASTER_KEY_LEN],
                                      bool *exists)
{
    char tmp[PATH_MAX];
    uint8_t rnd[8];
    char rhex[2 * sizeof(rnd) + 1];
    int fd = -1;
    bool created = false;
    CK_RV rv;

    *exists = false;
    if (crypto_random(rnd, sizeof(rnd)) != CKR_OK) {
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    crypto_hex_encode(rnd, sizeof(rnd), rhex);
    rhex[sizeof(rhex) - 1] = '\0';
    if (strlen(path) + CRYPTO_MK_TMP_SUFFIX_LEN >= sizeof(tmp)) {
        log_error("master key path too long");
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp-%s", path, rhex);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        log_error("cannot create master key file %s: %s", tmp, strerror(errno));
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    created = true;
    if (crypto_random(key, CRYPTO_MASTER_KEY_LEN) != CKR_OK) {
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    if (crypto_write_all(fd, key, CRYPTO_MASTER_KEY_LEN) != CKR_OK ||
        fsync(fd) != 0) {
        log_error("cannot write master key file %s: %s", tmp, strerror(errno));
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        log_error("cannot write master key file %s: %s", tmp, strerror(errno));
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    fd = -1;
    if (link(tmp, path) != 0) {
        if (errno == EEXIST) {
            *exists = true;
            rv = CKR_OK;
        } else {
            log_error("cannot create master key file %s: %s", path,
                      strerror(errno));
            rv = CKR_DEVICE_ERROR;
        }
        goto out;
    }
    rv = CKR_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (created) {
        (void)unlink(tmp);
        if (rv == CKR_OK && !*exists) {
            rv = crypto_sync_dir(path);
        }
    }
    if (rv != CKR_OK || *exists) {
        crypto_wipe(key, CRYPTO_MASTER_KEY_LEN);
    }
    return rv;
}

/* Reads an existing key file; *missing is set (and nothing logged) when
 * there is no file at path. */
static CK_RV crypto_master_key_read(const char *path,
                                    uint8_t key[CRYPTO_MASTER_KEY_LEN],
                                    bool *missing)
{
    uint8_t buf[CRYPTO_MASTER_KEY_LEN + 1];
    size_t got = 0;
    struct stat st;
    int fd;
    CK_RV rv = CKR_DEVICE_ERROR;

    *missing = false;
    /* O_NOFOLLOW: a symbolic link fails with ELOOP; O_NONBLOCK: a FIFO does
     * not hang us (fstat then refuses it). */
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) {
            *missing = true;
        } else if (errno == ELOOP) {
            log_error("master key file %s is a symbolic link: refusing", path);
        } else {
            log_error("cannot open master key file %s: %s", path,
                      strerror(errno));
        }
        return CKR_DEVICE_ERROR;
    }
    if (fstat(fd, &st) != 0) {
        log_error("cannot stat master key file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        log_error("master key file %s is not a regular file: refusing", path);
        goto out;
    }
    if (st.st_uid != geteuid()) {
        log_error("master key file %s is owned by uid %lu, not by us "
                  "(uid %lu): refusing",
                  path, (unsigned long)st.st_uid, (unsigned long)geteuid());
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        log_error("master key file %s is %s (mode %04o): refusing", path,
                  (st.st_mode & S_IRWXO) != 0 ? "readable by others"
                                              : "accessible by its group",
                  (unsigned int)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_size != CRYPTO_MASTER_KEY_LEN) {
        log_error("master key file %s holds %lld bytes, not %d: refusing", path,
                  (long long)st.st_size, CRYPTO_MASTER_KEY_LEN);
        goto out;
    }
    /* Read one byte more than needed to notice a file that grew. */
    while (got < sizeof(buf)) {
        ssize_t r = read(fd, buf + got, sizeof(buf) - got);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            log_error("cannot read master key file %s: %s", path,
                      strerror(errno));
            goto out;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    if (got != CRYPTO_MASTER_KEY_LEN) {
        log_error("master key file %s changed size while read: refusing", path);
        goto out;
    }
    memcpy(key, buf, CRYPTO_MASTER_KEY_LEN);
    rv = CKR_OK;
out:
    crypto_wipe(buf, sizeof(buf));
    close(fd);
    return rv;
}

CK_RV crypto_master_key_load(const char *path, bool create,
                             uint8_t key[CRYPTO_MASTER_KEY_LEN])
{
    bool missing = false, exists = false;
    CK_RV rv;

    return_val_if_fail(path != NULL && key != NULL, CKR_GENERAL_ERROR);

    if (path[0] == '\0') {
        log_error("empty master key path");
        return CKR_DEVICE_ERROR;
    }
    rv = crypto_master_key_read(path, key, &missing);
    if (rv == CKR_OK || !missing) {
        return rv;
    }
    if (!create) {
        log_error("master key file %s does not exist", path);
        return CKR_DEVICE_ERROR;
    }
    rv = crypto_master_key_create(path, key, &exists);
    if (rv != CKR_OK || !exists) {
        return rv;
    }
    /* Another process created it between our open and our link. */
    rv = crypto_master_key_read(path, key, &missing);
    if (rv != CKR_OK && missing) {
        log_error("master key file %s vanished while created", path);
    }
    return rv;
}
