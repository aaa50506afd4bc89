/*
 * digest.c - hashes: their names and sizes, the digest family (CKM_SHA*)
 * and the HMAC family (CKM_SHA*_HMAC and _GENERAL, through EVP_MAC).
 */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "common/log.h"
#include "hsm/crypto/cops.h"
#include "hsm/crypto/crypto.h"

static const struct {
    const char *name;
    size_t len;
} digest_hashes[COPS_HASH_COUNT] = {
    [COPS_HASH_NONE] = {NULL, 0},
    [COPS_HASH_SHA1] = {"SHA1", 20},
    [COPS_HASH_SHA224] = {"SHA224", 28},
    [COPS_HASH_SHA256] = {"SHA256", 32},
    [COPS_HASH_SHA384] = {"SHA384", 48},
    [COPS_HASH_SHA512] = {"SHA512", 64},
    [COPS_HASH_SHA512_224] = {"SHA512-224", 28},
    [COPS_HASH_SHA512_256] = {"SHA512-256", 32},
    [COPS_HASH_SHA3_224] = {"SHA3-224", 28},
    [COPS_HASH_SHA3_256] = {"SHA3-256", 32},
    [COPS_HASH_SHA3_384] = {"SHA3-384", 48},
    [COPS_HASH_SHA3_512] = {"SHA3-512", 64},
};

size_t cops_hash_len(cops_hash_t h)
{
    return (unsigned)h < COPS_HASH_COUNT ? digest_hashes[h].len : 0;
}

const char *cops_hash_name(cops_hash_t h)
{
    return (unsigned)h < COPS_HASH_COUNT ? digest_hashes[h].name : NULL;
}

/* ------------------------------------------------------------ cache */

/*
 * Fetching an algorithm is a name lookup under OpenSSL's store lock: a few
 * thousand instructions per operation. While a cops_init reference is
 * held, each algorithm is fetched once and kept until the last cops_fini;
 * without one (a test calling cops directly) every call fetches.
 */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned long cache_refs;
static _Atomic(EVP_MD *) md_cache[COPS_HASH_COUNT];
static _Atomic(EVP_MAC *) hmac_cache;

CK_RV cops_init(void)
{
    CK_RV rv = CKR_OK;

    pthread_mutex_lock(&cache_lock);
    if (atomic_load(&cache_refs) == ULONG_MAX) {
        rv = CKR_GENERAL_ERROR;
    } else {
        atomic_fetch_add(&cache_refs, 1);
    }
    pthread_mutex_unlock(&cache_lock);
    return rv;
}

void cops_fini(void)
{
    pthread_mutex_lock(&cache_lock);
    if (atomic_load(&cache_refs) > 0 && atomic_fetch_sub(&cache_refs, 1) == 1) {
        for (size_t i = 0; i < COPS_HASH_COUNT; i++) {
            EVP_MD_free(atomic_exchange(&md_cache[i], NULL));
        }
        EVP_MAC_free(atomic_exchange(&hmac_cache, NULL));
        cops_sym_cache_clear();
        cops_pkey_cache_clear();
    }
    pthread_mutex_unlock(&cache_lock);
}

bool cops_cache_on(void)
{
    return atomic_load(&cache_refs) > 0;
}

/* The EVP_MD of h: a new reference (EVP_MD_free), NULL when unknown. */
static EVP_MD *digest_md(cops_hash_t h)
{
    EVP_MD *md, *none = NULL;

    if ((unsigned)h >= COPS_HASH_COUNT || digest_hashes[h].name == NULL) {
        return NULL;
    }
    if (cops_cache_on() && (md = atomic_load(&md_cache[h])) != NULL) {
        return EVP_MD_up_ref(md) == 1 ? md : NULL;
    }
    md = EVP_MD_fetch(crypto_libctx(), digest_hashes[h].name, NULL);
    if (md == NULL || !cops_cache_on()) {
        return md;
    }
    if (EVP_MD_up_ref(md) != 1) {
        return md; /* not cached */
    }
    if (!atomic_compare_exchange_strong(&md_cache[h], &none, md)) {
        EVP_MD_free(md); /* another thread cached it first */
    }
    return md;
}

/* The HMAC EVP_MAC: a new reference (EVP_MAC_free). */
static EVP_MAC *digest_hmac(void)
{
    EVP_MAC *mac, *none = NULL;

    if (cops_cache_on() && (mac = atomic_load(&hmac_cache)) != NULL) {
        return EVP_MAC_up_ref(mac) == 1 ? mac : NULL;
    }
    mac = EVP_MAC_fetch(crypto_libctx(), "HMAC", NULL);
    if (mac == NULL || !cops_cache_on() || EVP_MAC_up_ref(mac) != 1) {
        return mac;
    }
    if (!atomic_compare_exchange_strong(&hmac_cache, &none, mac)) {
        EVP_MAC_free(mac);
    }
    return mac;
}

/* ------------------------------------------------------------ digests */

static CK_RV digest_init(cops_op_t *op, const cops_params_t *p)
{
    EVP_MD *md;
    EVP_MD_CTX *ctx;
    int ok;

    md = digest_md(p->hash);
    if (md == NULL) {
        cops_log_ossl("EVP_MD_fetch");
        return CKR_MECHANISM_INVALID;
    }
    ctx = EVP_MD_CTX_new();
    ok = ctx != NULL && EVP_DigestInit_ex2(ctx, md, NULL) == 1;
    EVP_MD_free(md);
    if (!ok) {
        EVP_MD_CTX_free(ctx);
        cops_log_ossl("EVP_DigestInit_ex2");
        return CKR_HOST_MEMORY;
    }
    op->mdctx = ctx;
    return CKR_OK;
}

static CK_RV digest_output_len(const cops_op_t *op, bool final, size_t inlen,
                               size_t *outlen)
{
    (void) final;
    (void)inlen;
    *outlen = cops_hash_len(op->p.hash);
    return CKR_OK;
}

static CK_RV digest_feed(cops_op_t *op, const uint8_t *in, size_t inlen)
{
    if (inlen > 0 && EVP_DigestUpdate(op->mdctx, in, inlen) != 1) {
        cops_log_ossl("EVP_DigestUpdate");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static CK_RV digest_update(cops_op_t *op, const uint8_t *in, size_t inlen,
                           uint8_t *out, size_t *outlen)
{
    (void)out;
    (void)outlen;
    return digest_feed(op, in, inlen);
}

static CK_RV digest_final(cops_op_t *op, uint8_t *out, size_t *outlen)
{
    size_t n = cops_hash_len(op->p.hash);
    unsigned int got = 0;

    if (*outlen < n) {
        *outlen = n;
        return CKR_BUFFER_TOO_SMALL;
    }
    if (EVP_DigestFinal_ex(op->mdctx, out, &got) != 1 || got != n) {
        cops_log_ossl("EVP_DigestFinal_ex");
        return CKR_FUNCTION_FAILED;
    }
    *outlen = n;
    return CKR_OK;
}

static CK_RV digest_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                            uint8_t *out, size_t *outlen)
{
    CK_RV rv;

    if (*outlen < cops_hash_len(op->p.hash)) {
        *outlen = cops_hash_len(op->p.hash);
        return CKR_BUFFER_TOO_SMALL;
    }
    if ((rv = digest_feed(op, in, inlen)) != CKR_OK) {
        return rv;
    }
    return digest_final(op, out, outlen);
}

/* Another digest with the same hash: the context is initialised again
 * (the algorithm it holds is kept, nothing fetched). */
static CK_RV digest_reset(cops_op_t *op, const cops_params_t *prev)
{
    if (op->mdctx == NULL || prev->hash != op->p.hash) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (EVP_DigestInit_ex2(op->mdctx, NULL, NULL) != 1) {
        cops_log_ossl("EVP_DigestInit_ex2");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static void digest_cleanup(cops_op_t *op)
{
    EVP_MD_CTX_free(op->mdctx);
    op->mdctx = NULL;
}

const cops_impl_t cops_digest = {
    .name = "digest",
    .init = digest_init,
    .output_len = digest_output_len,
    .update = digest_update,
    .final = digest_final,
    .oneshot = digest_oneshot,
    .reset = digest_reset,
    .cleanup = digest_cleanup,
};

/* ------------------------------------------------------------ HMAC */

static CK_RV hmac_init(cops_op_t *op, const cops_params_t *p)
{
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (op->key == NULL || op->key->secret == NULL) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    mac = digest_hmac();
    if (mac == NULL) {
        cops_log_ossl("EVP_MAC_fetch(HMAC)");
        return CKR_FUNCTION_FAILED;
    }
    ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    if (ctx == NULL) {
        return CKR_HOST_MEMORY;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(
        OSSL_MAC_PARAM_DIGEST, (char *)cops_hash_name(p->hash), 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(ctx, op->key->secret, op->key->secret_len, params) != 1) {
        cops_log_ossl("EVP_MAC_init");
        goto out;
    }
    if (op->p.mac_len == 0) {
        op->p.mac_len = cops_hash_len(p->hash);
    }
    op->macctx = ctx;
    ctx = NULL;
    rv = CKR_OK;
out:
    EVP_MAC_CTX_free(ctx);
    return rv;
}

static CK_RV hmac_output_len(const cops_op_t *op, bool final, size_t inlen,
                             size_t *outlen)
{
    (void) final;
    (void)inlen;
    *outlen = op->p.mac_len;
    return CKR_OK;
}

static CK_RV hmac_feed(cops_op_t *op, const uint8_t *in, size_t inlen)
{
    if (inlen > 0 && EVP_MAC_update(op->macctx, in, inlen) != 1) {
        cops_log_ossl("EVP_MAC_update");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static CK_RV hmac_update(cops_op_t *op, const uint8_t *in, size_t inlen,
                         uint8_t *out, size_t *outlen)
{
    (void)out;
    (void)outlen;
    return hmac_feed(op, in, inlen);
}

/* The full MAC into mac[COPS_HASH_MAX]. */
static CK_RV hmac_compute(cops_op_t *op, uint8_t mac[COPS_HASH_MAX])
{
    size_t n = 0;

    if (EVP_MAC_final(op->macctx, mac, &n, COPS_HASH_MAX) != 1 ||
        n != cops_hash_len(op->p.hash)) {
        cops_log_ossl("EVP_MAC_final");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static CK_RV hmac_final(cops_op_t *op, uint8_t *out, size_t *outlen)
{
    uint8_t mac[COPS_HASH_MAX];
    CK_RV rv;

    if (op->kind != HSM_OPK_SIGN) {
        return CKR_GENERAL_ERROR;
    }
    if (*outlen < op->p.mac_len) {
        *outlen = op->p.mac_len;
        return CKR_BUFFER_TOO_SMALL;
    }
    if ((rv = hmac_compute(op, mac)) == CKR_OK) {
        memcpy(out, mac, op->p.mac_len);
        *outlen = op->p.mac_len;
    }
    crypto_wipe(mac, sizeof(mac));
    return rv;
}

static CK_RV hmac_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                          uint8_t *out, size_t *outlen)
{
    CK_RV rv;

    if (*outlen < op->p.mac_len) {
        *outlen = op->p.mac_len;
        return CKR_BUFFER_TOO_SMALL;
    }
    if ((rv = hmac_feed(op, in, inlen)) != CKR_OK) {
        return rv;
    }
    return hmac_final(op, out, outlen);
}

static CK_RV hmac_verify(cops_op_t *op, const uint8_t *data, size_t datalen,
                         bool oneshot, const uint8_t *sig, size_t siglen)
{
    uint8_t mac[COPS_HASH_MAX];
    CK_RV rv;

    if (siglen != op->p.mac_len) {
        return CKR_SIGNATURE_LEN_RANGE;
    }
    if (oneshot && (rv = hmac_feed(op, data, datalen)) != CKR_OK) {
        return rv;
    }
    if ((rv = hmac_compute(op, mac)) == CKR_OK &&
        CRYPTO_memcmp(mac, sig, siglen) != 0) {
        rv = CKR_SIGNATURE_INVALID;
    }
    crypto_wipe(mac, sizeof(mac));
    return rv;
}

/* Another MAC with the same key (the op's) and hash: EVP_MAC_init without
 * a key starts again from the keyed state, no fetch and no re-keying. */
static CK_RV hmac_reset(cops_op_t *op, const cops_params_t *prev)
{
    if (op->macctx == NULL || prev->hash != op->p.hash) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (EVP_MAC_init(op->macctx, NULL, 0, NULL) != 1) {
        cops_log_ossl("EVP_MAC_init");
        return CKR_FUNCTION_FAILED;
    }
    if (op->p.mac_len == 0) {
        op->p.mac_len = cops_hash_len(op->p.hash);
    }
    return CKR_OK;
}

static void hmac_cleanup(cops_op_t *op)
{
    EVP_MAC_CTX_free(op->macctx);
    op->macctx = NULL;
}

const cops_impl_t cops_hmac = {
    .name = "HMAC",
    .init = hmac_init,
    .output_len = hmac_output_len,
    .update = hmac_update,
    .final = hmac_final,
    .oneshot = hmac_oneshot,
    .verify = hmac_verify,
    .reset = hmac_reset,
    .cleanup = hmac_cleanup,
};
