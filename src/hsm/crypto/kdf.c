/*
 * kdf.c - key derivation primitives: HKDF (EVP_KDF "HKDF"), PBKDF2
 * (EVP_KDF "PBKDF2") and the PRF blocks of SP 800-108 (HMAC or AES-CMAC
 * through EVP_MAC). The SP 800-108 iteration itself is in keygen.c, since
 * PKCS#11 describes its input as a free list of data fields that OpenSSL's
 * KBKDF cannot express.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "common/log.h"
#include "hsm/crypto/cops.h"
#include "hsm/crypto/crypto.h"

static CK_RV kdf_run(const char *name, OSSL_PARAM *params, uint8_t *out,
                     size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(crypto_libctx(), name, NULL);
    EVP_KDF_CTX *ctx = NULL;
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (kdf == NULL || (ctx = EVP_KDF_CTX_new(kdf)) == NULL) {
        cops_log_ossl(name);
        goto out;
    }
    if (EVP_KDF_derive(ctx, out, outlen, params) != 1) {
        cops_log_ossl(name);
        goto out;
    }
    rv = CKR_OK;
out:
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rv;
}

CK_RV cops_hkdf(cops_hash_t h, bool extract, bool expand, const uint8_t *salt,
                size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                const uint8_t *info, size_t infolen, uint8_t *out,
                size_t outlen)
{
    static const uint8_t empty[1];
    const char *md = cops_hash_name(h);
    OSSL_PARAM params[6];
    int mode;
    size_t n = 0;

    if (md == NULL || (!extract && !expand)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if (extract && expand) {
        mode = EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND;
    } else if (extract) {
        mode = EVP_KDF_HKDF_MODE_EXTRACT_ONLY;
        if (outlen != cops_hash_len(h)) {
            return CKR_TEMPLATE_INCONSISTENT;
        }
    } else {
        mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    }
    if (expand && outlen > 255 * cops_hash_len(h)) {
        return CKR_TEMPLATE_INCONSISTENT;
    }
    params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    params[n++] =
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md, 0);
    params[n++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_KEY, (void *)(ikmlen > 0 ? ikm : empty), ikmlen);
    if (salt != NULL && saltlen > 0) {
        params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                                        (void *)salt, saltlen);
    }
    if (infolen > 0) {
        params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                        (void *)info, infolen);
    }
    params[n] = OSSL_PARAM_construct_end();
    return kdf_run("HKDF", params, out, outlen);
}

CK_RV crypto_hkdf_sha256(const uint8_t *ikm, size_t ikmlen, const uint8_t *info,
                         size_t infolen, uint8_t *out, size_t outlen)
{
    return cops_hkdf(COPS_HASH_SHA256, true, true, NULL, 0, ikm, ikmlen, info,
                     infolen, out, outlen);
}

CK_RV cops_pbkdf2(cops_hash_t h, const uint8_t *pw, size_t pwlen,
                  const uint8_t *salt, size_t saltlen, unsigned long iter,
                  uint8_t *out, size_t outlen)
{
    static const uint8_t empty[1];
    const char *md = cops_hash_name(h);
    OSSL_PARAM params[6];
    uint64_t it = iter;
    int pkcs5 = 1; /* no SP 800-132 lower bounds: PKCS#5 as written */

    if (md == NULL || iter == 0) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    params[0] =
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md, 0);
    params[1] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_PASSWORD, (void *)(pwlen > 0 ? pw : empty), pwlen);
    params[2] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, (void *)(saltlen > 0 ? salt : empty), saltlen);
    params[3] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_ITER, &it);
    params[4] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_PKCS5, &pkcs5);
    params[5] = OSSL_PARAM_construct_end();
    return kdf_run("PBKDF2", params, out, outlen);
}

CK_RV cops_prf(cops_hash_t h, const uint8_t *key, size_t keylen,
               const uint8_t *data, size_t datalen, uint8_t *out,
               size_t *outlen)
{
    char cipher[24];
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    size_t n = 0;
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (h != COPS_HASH_NONE) {
        params[0] = OSSL_PARAM_construct_utf8_string(
            OSSL_MAC_PARAM_DIGEST, (char *)cops_hash_name(h), 0);
        mac = EVP_MAC_fetch(crypto_libctx(), "HMAC", NULL);
    } else {
        if (keylen != 16 && keylen != 24 && keylen != 32) {
            return CKR_KEY_TYPE_INCONSISTENT;
        }
        snprintf(cipher, sizeof(cipher), "AES-%zu-CBC", keylen * 8);
        params[0] =
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0);
        mac = EVP_MAC_fetch(crypto_libctx(), "CMAC", NULL);
    }
    params[1] = OSSL_PARAM_construct_end();
    if (mac == NULL || (ctx = EVP_MAC_CTX_new(mac)) == NULL) {
        cops_log_ossl("PRF");
        goto out;
    }
    if (EVP_MAC_init(ctx, key, keylen, params) != 1 ||
        (datalen > 0 && EVP_MAC_update(ctx, data, datalen) != 1) ||
        EVP_MAC_final(ctx, out, &n, COPS_HASH_MAX) != 1) {
        cops_log_ossl("PRF");
        goto out;
    }
    *outlen = n;
    rv = CKR_OK;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rv;
}
