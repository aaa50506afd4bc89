/*
 * asym.c - operation contexts (the cops_op_* entry points) and the RSA,
 * ECDSA and EdDSA families behind the mechanism table.
 *
 * Length rules follow the PKCS#11 mechanism tables (k is the modulus length
 * in bytes, n the group order length): CKM_RSA_PKCS signs or encrypts at
 * most k-11 bytes, CKM_RSA_X_509 at most k (left-padded with zeros),
 * CKM_RSA_PKCS_OAEP at most k-2hLen-2; a ciphertext is exactly k bytes
 * (else CKR_ENCRYPTED_DATA_LEN_RANGE); a signature is k, 2n, 64 or 114 bytes
 * (else CKR_SIGNATURE_LEN_RANGE, before any arithmetic).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/crypto/cops.h"
#include "hsm/crypto/crypto.h"

/* DER ECDSA-Sig-Value of the largest curve (P-521): 2 * (66 + 3) + 3. */
#define ASYM_ECDSA_DER_MAX 160

void cops_log_ossl(const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        log_debug("%s failed: %s", what, buf);
    } else {
        log_debug("%s failed", what);
    }
    ERR_clear_error();
}

/* ------------------------------------------------------------ dispatch */

/* The parameters' pointers belong to the caller: cleared after init. */
static void params_forget(cops_params_t *p)
{
    p->label = NULL;
    p->label_len = 0;
    p->context = NULL;
    p->context_len = 0;
    p->iv = NULL;
    p->aad = NULL;
    p->aad_len = 0;
    p->shared_data = NULL;
    p->public_data = NULL;
}

CK_RV cops_op_new(const cops_impl_t *impl, hsm_opkind_t kind, cops_key_t *key,
                  const cops_params_t *p, cops_op_t **out)
{
    cops_op_t *op;
    CK_RV rv;

    return_val_if_fail(impl != NULL && p != NULL && out != NULL,
                       CKR_GENERAL_ERROR);
    *out = NULL;
    if (crypto_libctx() == NULL) {
        return CKR_GENERAL_ERROR;
    }
    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return CKR_HOST_MEMORY;
    }
    op->impl = impl;
    op->kind = kind;
    op->key = cops_key_ref(key);
    op->p = *p;
    rv = impl->init(op, p);
    params_forget(&op->p);
    if (rv != CKR_OK) {
        cops_op_free(op);
        return rv;
    }
    *out = op;
    return CKR_OK;
}

CK_RV cops_op_reuse(cops_op_t *op, const cops_params_t *p)
{
    cops_params_t prev;
    CK_RV rv;

    return_val_if_fail(op != NULL && p != NULL, CKR_GENERAL_ERROR);
    if (op->impl->reset == NULL) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    prev = op->p;
    op->p = *p;
    op->updated = false;
    rv = op->impl->reset(op, &prev);
    params_forget(&op->p);
    return rv;
}

const cops_impl_t *cops_op_impl(const cops_op_t *op)
{
    return op->impl;
}

const cops_key_t *cops_op_key(const cops_op_t *op)
{
    return op->key;
}

bool cops_op_reusable(const cops_op_t *op)
{
    return op != NULL && op->impl->reset != NULL;
}

void cops_op_free(cops_op_t *op)
{
    if (op == NULL) {
        return;
    }
    if (op->impl->cleanup != NULL) {
        op->impl->cleanup(op);
    }
    cops_key_unref(op->key);
    free(op);
}

CK_RV cops_op_output_len(const cops_op_t *op, bool final, size_t inlen,
                         size_t *outlen)
{
    return op->impl->output_len(op, final, inlen, outlen);
}

CK_RV cops_op_update(cops_op_t *op, const uint8_t *in, size_t inlen)
{
    if (op->impl->update == NULL) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (op->kind == HSM_OPK_ENCRYPT || op->kind == HSM_OPK_DECRYPT) {
        return CKR_GENERAL_ERROR; /* cops_op_update_out */
    }
    op->updated = true;
    return op->impl->update(op, in, inlen, NULL, NULL);
}

CK_RV cops_op_update_out(cops_op_t *op, const uint8_t *in, size_t inlen,
                         uint8_t *out, size_t *outlen)
{
    if (op->impl->update == NULL) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (op->kind != HSM_OPK_ENCRYPT && op->kind != HSM_OPK_DECRYPT) {
        *outlen = 0;
        return cops_op_update(op, in, inlen);
    }
    op->updated = true;
    return op->impl->update(op, in, inlen, out, outlen);
}

CK_RV cops_op_final(cops_op_t *op, uint8_t *out, size_t *outlen)
{
    if (op->impl->final == NULL) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    return op->impl->final(op, out, outlen);
}

CK_RV cops_op_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                      uint8_t *out, size_t *outlen)
{
    if (op->impl->oneshot == NULL) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    return op->impl->oneshot(op, in, inlen, out, outlen);
}

CK_RV cops_op_verify(cops_op_t *op, const uint8_t *data, size_t datalen,
                     bool oneshot, const uint8_t *sig, size_t siglen)
{
    if (op->impl->verify == NULL || op->kind != HSM_OPK_VERIFY) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    return op->impl->verify(op, data, datalen, oneshot, sig, siglen);
}

/* ------------------------------------------------------------ helpers */

static EVP_PKEY *pkey_of(const cops_op_t *op)
{
    return op->key != NULL ? op->key->pkey : NULL;
}

/* k, 2n or the EdDSA signature length: the fixed output of the key. */
static size_t key_out(const cops_op_t *op)
{
    return op->key->out_len;
}

/* An EVP_PKEY_CTX set up for op->kind. */
static CK_RV pctx_init(cops_op_t *op, bool recover)
{
    EVP_PKEY_CTX *ctx;
    int r = 0;

    if (pkey_of(op) == NULL) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    ctx = EVP_PKEY_CTX_new_from_pkey(crypto_libctx(), pkey_of(op), NULL);
    if (ctx == NULL) {
        cops_log_ossl("EVP_PKEY_CTX_new_from_pkey");
        return CKR_HOST_MEMORY;
    }
    switch (op->kind) {
    case HSM_OPK_SIGN:
        r = EVP_PKEY_sign_init(ctx);
        break;
    case HSM_OPK_VERIFY:
        r = recover ? EVP_PKEY_verify_recover_init(ctx)
                    : EVP_PKEY_verify_init(ctx);
        break;
    case HSM_OPK_ENCRYPT:
        r = EVP_PKEY_encrypt_init(ctx);
        break;
    case HSM_OPK_DECRYPT:
        r = EVP_PKEY_decrypt_init(ctx);
        break;
    default:
        break;
    }
    if (r != 1) {
        cops_log_ossl("EVP_PKEY_*_init");
        EVP_PKEY_CTX_free(ctx);
        return CKR_FUNCTION_FAILED;
    }
    op->pctx = ctx;
    return CKR_OK;
}

static CK_RV set_params(EVP_PKEY_CTX *ctx, const OSSL_PARAM *params)
{
    if (EVP_PKEY_CTX_set_params(ctx, params) != 1) {
        cops_log_ossl("EVP_PKEY_CTX_set_params");
        return CKR_MECHANISM_PARAM_INVALID;
    }
    return CKR_OK;
}

static CK_RV set_pad(EVP_PKEY_CTX *ctx, int pad)
{
    if (EVP_PKEY_CTX_set_rsa_padding(ctx, pad) != 1) {
        cops_log_ossl("EVP_PKEY_CTX_set_rsa_padding");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static void asym_cleanup(cops_op_t *op)
{
    EVP_PKEY_CTX_free(op->pctx);
    EVP_MD_CTX_free(op->mdctx);
    op->pctx = NULL;
    op->mdctx = NULL;
}

static CK_RV fixed_output_len(const cops_op_t *op, bool final, size_t inlen,
                              size_t *outlen)
{
    (void) final;
    (void)inlen;
    *outlen = key_out(op);
    return CKR_OK;
}

/* Room check shared by every producer of a fixed-length output. */
static bool room(size_t need, size_t *outlen)
{
    if (*outlen < need) {
        *outlen = need;
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ RSA raw */

/*
 * PKCS#1 v1.5 decryption: OpenSSL 3.0 has no implicit rejection (added in
 * 3.2; OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION), so a bad padding is an
 * error here, reported as CKR_ENCRYPTED_DATA_INVALID as PKCS#11 requires.
 * That distinguishable error is a Bleichenbacher padding oracle to whoever
 * may call C_Decrypt with the key; PKCS#11 defines no other behaviour for
 * CKM_RSA_PKCS. Should a newer OpenSSL be used, implicit rejection is
 * switched off explicitly so the behaviour stays the same (and the
 * published invalid-padding vectors are rejected).
 */
static CK_RV rsa_pkcs_init(cops_op_t *op, const cops_params_t *p)
{
    CK_RV rv;

    (void)p;
    if ((rv = pctx_init(op, false)) != CKR_OK ||
        (rv = set_pad(op->pctx, RSA_PKCS1_PADDING)) != CKR_OK) {
        return rv;
    }
#ifdef OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION
    if (op->kind == HSM_OPK_DECRYPT) {
        unsigned int zero = 0;
        OSSL_PARAM params[2];

        params[0] = OSSL_PARAM_construct_uint(
            OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION, &zero);
        params[1] = OSSL_PARAM_construct_end();
        if ((rv = set_params(op->pctx, params)) != CKR_OK) {
            return CKR_FUNCTION_FAILED;
        }
    }
#endif
    return CKR_OK;
}

/* Decrypts a k-byte ciphertext through a k-byte buffer (OpenSSL wants room
 * for k whatever the plaintext length). */
static CK_RV rsa_decrypt(cops_op_t *op, const uint8_t *in, size_t inlen,
                         uint8_t *out, size_t *outlen)
{
    size_t k = key_out(op), n = k;
    uint8_t *buf;
    CK_RV rv;

    if (inlen != k) {
        return CKR_ENCRYPTED_DATA_LEN_RANGE;
    }
    buf = malloc(k);
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (EVP_PKEY_decrypt(op->pctx, buf, &n, in, inlen) != 1) {
        ERR_clear_error();
        rv = CKR_ENCRYPTED_DATA_INVALID;
        goto out;
    }
    if (!room(n, outlen)) {
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    memcpy(out, buf, n);
    *outlen = n;
    rv = CKR_OK;
out:
    util_free_wipe(buf, k);
    return rv;
}

static CK_RV rsa_encrypt(cops_op_t *op, const uint8_t *in, size_t inlen,
                         size_t maxin, uint8_t *out, size_t *outlen)
{
    size_t k = key_out(op);

    if (inlen > maxin) {
        return CKR_DATA_LEN_RANGE;
    }
    if (!room(k, outlen)) {
        return CKR_BUFFER_TOO_SMALL;
    }
    *outlen = k;
    if (EVP_PKEY_encrypt(op->pctx, out, outlen, in, inlen) != 1) {
        cops_log_ossl("EVP_PKEY_encrypt");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static CK_RV rsa_sign_raw(cops_op_t *op, const uint8_t *in, size_t inlen,
                          uint8_t *out, size_t *outlen)
{
    size_t k = key_out(op);

    if (!room(k, outlen)) {
        return CKR_BUFFER_TOO_SMALL;
    }
    *outlen = k;
    if (EVP_PKEY_sign(op->pctx, out, outlen, in, inlen) != 1) {
        cops_log_ossl("EVP_PKEY_sign");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static CK_RV rsa_pkcs_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                              uint8_t *out, size_t *outlen)
{
    size_t k = key_out(op);

    switch (op->kind) {
    case HSM_OPK_SIGN:
        if (inlen > k - 11) {
            return CKR_DATA_LEN_RANGE;
        }
        return rsa_sign_raw(op, in, inlen, out, outlen);
    case HSM_OPK_ENCRYPT:
        return rsa_encrypt(op, in, inlen, k - 11, out, outlen);
    case HSM_OPK_DECRYPT:
        return rsa_decrypt(op, in, inlen, out, outlen);
    default:
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
}

static CK_RV rsa_pkcs_verify(cops_op_t *op, const uint8_t *data, size_t datalen,
                             bool oneshot, const uint8_t *sig, size_t siglen)
{
    size_t k = key_out(op);

    if (!oneshot) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (datalen > k - 11) {
        return CKR_DATA_LEN_RANGE;
    }
    if (siglen != k) {
        return CKR_SIGNATURE_LEN_RANGE;
    }
    if (EVP_PKEY_verify(op->pctx, sig, siglen, data, datalen) != 1) {
        ERR_clear_error();
        return CKR_SIGNATURE_INVALID;
    }
    return CKR_OK;
}

const cops_impl_t cops_rsa_pkcs = {
    .name = "RSA PKCS#1 v1.5",
    .init = rsa_pkcs_init,
    .output_len = fixed_output_len,
    .oneshot = rsa_pkcs_oneshot,
    .verify = rsa_pkcs_verify,
    .cleanup = asym_cleanup,
};

static CK_RV rsa_x509_init(cops_op_t *op, const cops_params_t *p)
{
    CK_RV rv;

    (void)p;
    if ((rv = pctx_init(op, true)) != CKR_OK) {
        return rv;
    }
    return set_pad(op->pctx, RSA_NO_PADDING);
}

/* in (at most k bytes) left-padded with zeros to k bytes in buf. */
static CK_RV left_pad(const uint8_t *in, size_t inlen, size_t k, uint8_t **buf)
{
    if (inlen > k) {
        return CKR_DATA_LEN_RANGE;
    }
    *buf = calloc(1, k);
    if (*buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (inlen > 0) {
        memcpy(*buf + k - inlen, in, inlen);
    }
    return CKR_OK;
}

static CK_RV rsa_x509_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                              uint8_t *out, size_t *outlen)
{
    size_t k = key_out(op);
    uint8_t *buf = NULL;
    CK_RV rv;
    int r;

    if (op->kind == HSM_OPK_DECRYPT) {
        if (inlen != k) {
            return CKR_ENCRYPTED_DATA_LEN_RANGE;
        }
        if (!room(k, outlen)) {
            return CKR_BUFFER_TOO_SMALL;
        }
        *outlen = k;
        if (EVP_PKEY_decrypt(op->pctx, out, outlen, in, inlen) != 1) {
            ERR_clear_error();
            return CKR_ENCRYPTED_DATA_INVALID; /* not below the modulus */
        }
        return CKR_OK;
    }
    if (op->kind != HSM_OPK_SIGN && op->kind != HSM_OPK_ENCRYPT) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if ((rv = left_pad(in, inlen, k, &buf)) != CKR_OK) {
        return rv;
    }
    if (!room(k, outlen)) {
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    *outlen = k;
    if (op->kind == HSM_OPK_SIGN) {
        r = EVP_PKEY_sign(op->pctx, out, outlen, buf, k);
    } else {
        r = EVP_PKEY_encrypt(op->pctx, out, outlen, buf, k);
    }
    /* The only input OpenSSL refuses here is one not below the modulus. */
    rv = r == 1 ? CKR_OK : CKR_DATA_INVALID;
    ERR_clear_error();
out:
    util_free_wipe(buf, k);
    return rv;
}

static CK_RV rsa_x509_verify(cops_op_t *op, const uint8_t *data, size_t datalen,
                             bool oneshot, const uint8_t *sig, size_t siglen)
{
    size_t k = key_out(op), n = k;
    uint8_t *want = NULL, *got = NULL;
    CK_RV rv;

    if (!oneshot) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if ((rv = left_pad(data, datalen, k, &want)) != CKR_OK) {
        return rv;
    }
    if (siglen != k) {
        rv = CKR_SIGNATURE_LEN_RANGE;
        goto out;
    }
    got = malloc(k);
    if (got == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (EVP_PKEY_verify_recover(op->pctx, got, &n, sig, siglen) != 1 ||
        n != k || memcmp(got, want, k) != 0) {
        ERR_clear_error();
        rv = CKR_SIGNATURE_INVALID;
        goto out;
    }
    rv = CKR_OK;
out:
    free(want);
    free(got);
    return rv;
}

const cops_impl_t cops_rsa_x509 = {
    .name = "RSA X.509",
    .init = rsa_x509_init,
    .output_len = fixed_output_len,
    .oneshot = rsa_x509_oneshot,
    .verify = rsa_x509_verify,
    .cleanup = asym_cleanup,
};

/* ------------------------------------------------------------ RSA PSS */

/* The PSS parameters as OSSL_PARAMs (pad mode set separately). */
static CK_RV pss_check(const cops_op_t *op, const cops_params_t *p)
{
    size_t h = cops_hash_len(p->hash);

    if (h == 0 || cops_hash_len(p->mgf1) == 0 ||
        p->salt_len > (size_t)INT32_MAX || key_out(op) < h + 2 ||
        p->salt_len > key_out(op) - h - 2) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    return CKR_OK;
}

static CK_RV rsa_pss_init(cops_op_t *op, const cops_params_t *p)
{
    OSSL_PARAM params[4];
    int salt = (int)p->salt_len;
    CK_RV rv;

    if (pkey_of(op) == NULL) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    if ((rv = pss_check(op, p)) != CKR_OK ||
        (rv = pctx_init(op, false)) != CKR_OK ||
        (rv = set_pad(op->pctx, RSA_PKCS1_PSS_PADDING)) != CKR_OK) {
        return rv;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(
        OSSL_SIGNATURE_PARAM_DIGEST, (char *)cops_hash_name(p->hash), 0);
    params[1] = OSSL_PARAM_construct_utf8_string(
        OSSL_SIGNATURE_PARAM_MGF1_DIGEST, (char *)cops_hash_name(p->mgf1), 0);
    params[2] =
        OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, &salt);
    params[3] = OSSL_PARAM_construct_end();
    return set_params(op->pctx, params);
}

static CK_RV rsa_pss_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                             uint8_t *out, size_t *outlen)
{
    if (op->kind != HSM_OPK_SIGN) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (inlen != cops_hash_len(op->p.hash)) {
        return CKR_DATA_LEN_RANGE;
    }
    return rsa_sign_raw(op, in, inlen, out, outlen);
}

static CK_RV rsa_pss_verify(cops_op_t *op, const uint8_t *data, size_t datalen,
                            bool oneshot, const uint8_t *sig, size_t siglen)
{
    if (!oneshot) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (datalen != cops_hash_len(op->p.hash)) {
        return CKR_DATA_LEN_RANGE;
    }
    if (siglen != key_out(op)) {
        return CKR_SIGNATURE_LEN_RANGE;
    }
    if (EVP_PKEY_verify(op->pctx, sig, siglen, data, datalen) != 1) {
        ERR_clear_error();
        return CKR_SIGNATURE_INVALID;
    }
    return CKR_OK;
}

const cops_impl_t cops_rsa_pss = {
    .name = "RSA PSS",
    .init = rsa_pss_init,
    .output_len = fixed_output_len,
    .oneshot = rsa_pss_oneshot,
    .verify = rsa_pss_verify,
    .cleanup = asym_cleanup,
};

/* ------------------------------------------------------------ RSA OAEP */

static CK_RV rsa_oaep_init(cops_op_t *op, const cops_params_t *p)
{
    static const uint8_t empty[1];
    size_t h = cops_hash_len(p->hash);
    OSSL_PARAM params[4];
    CK_RV rv;

    if (pkey_of(op) == NULL) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    if (h == 0 || cops_hash_len(p->mgf1) == 0 || key_out(op) < 2 * h + 2) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if ((rv = pctx_init(op, false)) != CKR_OK ||
        (rv = set_pad(op->pctx, RSA_PKCS1_OAEP_PADDING)) != CKR_OK) {
        return rv;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(
        OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, (char *)cops_hash_name(p->hash), 0);
    params[1] = OSSL_PARAM_construct_utf8_string(
        OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, (char *)cops_hash_name(p->mgf1), 0);
    /* OpenSSL copies the label. */
    params[2] = OSSL_PARAM_construct_octet_string(
        OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL,
        (void *)(p->label != NULL ? p->label : empty), p->label_len);
    params[3] = OSSL_PARAM_construct_end();
    return set_params(op->pctx, params);
}

static CK_RV rsa_oaep_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                              uint8_t *out, size_t *outlen)
{
    size_t h = cops_hash_len(op->p.hash);

    if (op->kind == HSM_OPK_ENCRYPT) {
        return rsa_encrypt(op, in, inlen, key_out(op) - 2 * h - 2, out, outlen);
    }
    if (op->kind == HSM_OPK_DECRYPT) {
        return rsa_decrypt(op, in, inlen, out, outlen);
    }
    return CKR_FUNCTION_NOT_SUPPORTED;
}

const cops_impl_t cops_rsa_oaep = {
    .name = "RSA OAEP",
    .init = rsa_oaep_init,
    .output_len = fixed_output_len,
    .oneshot = rsa_oaep_oneshot,
    .cleanup = asym_cleanup,
};

/* ------------------------------------------------------------ hash-and-sign
 */

/* EVP_DigestSign/VerifyInit_ex with the hash of p and extra params. */
static CK_RV md_init(cops_op_t *op, const char *mdname, const OSSL_PARAM *prm)
{
    EVP_MD_CTX *ctx;
    int r;

    if (pkey_of(op) == NULL) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    if (op->kind != HSM_OPK_SIGN && op->kind != HSM_OPK_VERIFY) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (op->kind == HSM_OPK_SIGN) {
        r = EVP_DigestSignInit_ex(ctx, NULL, mdname, crypto_libctx(), NULL,
                                  pkey_of(op), prm);
    } else {
        r = EVP_DigestVerifyInit_ex(ctx, NULL, mdname, crypto_libctx(), NULL,
                                    pkey_of(op), prm);
    }
    if (r != 1) {
        cops_log_ossl("EVP_DigestSign/VerifyInit_ex");
        EVP_MD_CTX_free(ctx);
        return CKR_MECHANISM_PARAM_INVALID;
    }
    op->mdctx = ctx;
    return CKR_OK;
}

static CK_RV rsa_pkcs_hash_init(cops_op_t *op, const cops_params_t *p)
{
    OSSL_PARAM params[2];

    params[0] = OSSL_PARAM_construct_utf8_string(
        OSSL_SIGNATURE_PARAM_PAD_MODE, (char *)OSSL_PKEY_RSA_PAD_MODE_PKCSV15,
        0);
    params[1] = OSSL_PARAM_construct_end();
    return md_init(op, cops_hash_name(p->hash), params);
}

static CK_RV rsa_pss_hash_init(cops_op_t *op, const cops_params_t *p)
{
    OSSL_PARAM params[4];
    int salt = (int)p->salt_len;
    CK_RV rv;

    if (pkey_of(op) == NULL) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    if ((rv = pss_check(op, p)) != CKR_OK) {
        return rv;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(
        OSSL_SIGNATURE_PARAM_PAD_MODE, (char *)OSSL_PKEY_RSA_PAD_MODE_PSS, 0);
    params[1] = OSSL_PARAM_construct_utf8_string(
        OSSL_SIGNATURE_PARAM_MGF1_DIGEST, (char *)cops_hash_name(p->mgf1), 0);
    params[2] =
        OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, &salt);
    params[3] = OSSL_PARAM_construct_end();
    return md_init(op, cops_hash_name(p->hash), params);
}

static CK_RV md_feed(cops_op_t *op, const uint8_t *in, size_t inlen)
{
    int r;

    if (inlen == 0) {
        return CKR_OK;
    }
    if (op->kind == HSM_OPK_SIGN) {
        r = EVP_DigestSignUpdate(op->mdctx, in, inlen);
    } else {
        r = EVP_DigestVerifyUpdate(op->mdctx, in, inlen);
    }
    if (r != 1) {
        cops_log_ossl("EVP_DigestSign/VerifyUpdate");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static CK_RV md_update(cops_op_t *op, const uint8_t *in, size_t inlen,
                       uint8_t *out, size_t *outlen)
{
    (void)out;
    (void)outlen;
    return md_feed(op, in, inlen);
}

static CK_RV rsa_hash_final(cops_op_t *op, uint8_t *out, size_t *outlen)
{
    size_t k = key_out(op);

    if (op->kind != HSM_OPK_SIGN) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (!room(k, outlen)) {
        return CKR_BUFFER_TOO_SMALL;
    }
    *outlen = k;
    if (EVP_DigestSignFinal(op->mdctx, out, outlen) != 1) {
        cops_log_ossl("EVP_DigestSignFinal");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static CK_RV rsa_hash_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                              uint8_t *out, size_t *outlen)
{
    CK_RV rv;

    if (!room(key_out(op), outlen)) {
        return CKR_BUFFER_TOO_SMALL;
    }
    if ((rv = md_feed(op, in, inlen)) != CKR_OK) {
        return rv;
    }
    return rsa_hash_final(op, out, outlen);
}

static CK_RV rsa_hash_verify(cops_op_t *op, const uint8_t *data, size_t datalen,
                             bool oneshot, const uint8_t *sig, size_t siglen)
{
    CK_RV rv;

    if (siglen != key_out(op)) {
        return CKR_SIGNATURE_LEN_RANGE;
    }
    if (oneshot && (rv = md_feed(op, data, datalen)) != CKR_OK) {
        return rv;
    }
    if (EVP_DigestVerifyFinal(op->mdctx, sig, siglen) != 1) {
        ERR_clear_error();
        return CKR_SIGNATURE_INVALID;
    }
    return CKR_OK;
}

const cops_impl_t cops_rsa_pkcs_hash = {
    .name = "RSA PKCS#1 v1.5 with hash",
    .init = rsa_pkcs_hash_init,
    .output_len = fixed_output_len,
    .update = md_update,
    .final = rsa_hash_final,
    .oneshot = rsa_hash_oneshot,
    .verify = rsa_hash_verify,
    .cleanup = asym_cleanup,
};

const cops_impl_t cops_rsa_pss_hash = {
    .name = "RSA PSS with hash",
    .init = rsa_pss_hash_init,
    .output_len = fixed_output_len,
    .update = md_update,
    .final = rsa_hash_final,
    .oneshot = rsa_hash_oneshot,
    .verify = rsa_hash_verify,
    .cleanup = asym_cleanup,
};

/* ------------------------------------------------------------ ECDSA */

static CK_RV ecdsa_output_len(const cops_op_t *op, bool final, size_t inlen,
                              size_t *outlen)
{
    (void) final;
    (void)inlen;
    *outlen = 2 * key_out(op);
    return CKR_OK;
}

/* DER ECDSA-Sig-Value -> r || s, n bytes each. */
static CK_RV ecdsa_der_to_raw(const uint8_t *der, size_t derlen, size_t n,
                              uint8_t *out)
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    const BIGNUM *r, *s;
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (sig == NULL) {
        cops_log_ossl("d2i_ECDSA_SIG");
        return rv;
    }
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, out, (int)n) == (int)n &&
        BN_bn2binpad(s, out + n, (int)n) == (int)n) {
        rv = CKR_OK;
    }
    ECDSA_SIG_free(sig);
    return rv;
}

/* r || s (2n bytes) -> DER in der[ASYM_ECDSA_DER_MAX]. */
static CK_RV ecdsa_raw_to_der(const uint8_t *raw, size_t n, uint8_t *der,
                              size_t *derlen)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)n, NULL);
    BIGNUM *s = BN_bin2bn(raw + n, (int)n, NULL);
    unsigned char *p = der;
    CK_RV rv = CKR_HOST_MEMORY;
    int len;

    if (sig == NULL || r == NULL || s == NULL ||
        ECDSA_SIG_set0(sig, r, s) != 1) {
        goto out;
    }
    r = NULL;
    s = NULL;
    len = i2d_ECDSA_SIG(sig, NULL);
    if (len <= 0 || (size_t)len > ASYM_ECDSA_DER_MAX) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    i2d_ECDSA_SIG(sig, &p);
    *derlen = (size_t)len;
    rv = CKR_OK;
out:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return rv;
}

static CK_RV ecdsa_init(cops_op_t *op, const cops_params_t *p)
{
    (void)p;
    if (op->kind != HSM_OPK_SIGN && op->kind != HSM_OPK_VERIFY) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    return pctx_init(op, false);
}

/* The DER signature of a producer into out as r || s. */
static CK_RV ecdsa_finish(cops_op_t *op, const uint8_t *der, size_t derlen,
                          uint8_t *out, size_t *outlen)
{
    CK_RV rv = ecdsa_der_to_raw(der, derlen, key_out(op), out);

    if (rv == CKR_OK) {
        *outlen = 2 * key_out(op);
    }
    return rv;
}

static CK_RV ecdsa_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                           uint8_t *out, size_t *outlen)
{
    uint8_t der[ASYM_ECDSA_DER_MAX];
    size_t derlen = sizeof(der);

    if (op->kind != HSM_OPK_SIGN) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (!room(2 * key_out(op), outlen)) {
        return CKR_BUFFER_TOO_SMALL;
    }
    if (EVP_PKEY_sign(op->pctx, der, &derlen, in, inlen) != 1) {
        cops_log_ossl("EVP_PKEY_sign(ECDSA)");
        return CKR_FUNCTION_FAILED;
    }
    return ecdsa_finish(op, der, derlen, out, outlen);
}

static CK_RV ecdsa_verify(cops_op_t *op, const uint8_t *data, size_t datalen,
                          bool oneshot, const uint8_t *sig, size_t siglen)
{
    uint8_t der[ASYM_ECDSA_DER_MAX];
    size_t derlen = 0;
    CK_RV rv;

    if (!oneshot) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (siglen != 2 * key_out(op)) {
        return CKR_SIGNATURE_LEN_RANGE;
    }
    if ((rv = ecdsa_raw_to_der(sig, key_out(op), der, &derlen)) != CKR_OK) {
        return rv;
    }
    if (EVP_PKEY_verify(op->pctx, der, derlen, data, datalen) != 1) {
        ERR_clear_error();
        return CKR_SIGNATURE_INVALID;
    }
    return CKR_OK;
}

const cops_impl_t cops_ecdsa = {
    .name = "ECDSA",
    .init = ecdsa_init,
    .output_len = ecdsa_output_len,
    .oneshot = ecdsa_oneshot,
    .verify = ecdsa_verify,
    .cleanup = asym_cleanup,
};

static CK_RV ecdsa_hash_init(cops_op_t *op, const cops_params_t *p)
{
    return md_init(op, cops_hash_name(p->hash), NULL);
}

static CK_RV ecdsa_hash_final(cops_op_t *op, uint8_t *out, size_t *outlen)
{
    uint8_t der[ASYM_ECDSA_DER_MAX];
    size_t derlen = sizeof(der);

    if (op->kind != HSM_OPK_SIGN) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (!room(2 * key_out(op), outlen)) {
        return CKR_BUFFER_TOO_SMALL;
    }
    if (EVP_DigestSignFinal(op->mdctx, der, &derlen) != 1) {
        cops_log_ossl("EVP_DigestSignFinal(ECDSA)");
        return CKR_FUNCTION_FAILED;
    }
    return ecdsa_finish(op, der, derlen, out, outlen);
}

static CK_RV ecdsa_hash_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                                uint8_t *out, size_t *outlen)
{
    CK_RV rv;

    if (!room(2 * key_out(op), outlen)) {
        return CKR_BUFFER_TOO_SMALL;
    }
    if ((rv = md_feed(op, in, inlen)) != CKR_OK) {
        return rv;
    }
    return ecdsa_hash_final(op, out, outlen);
}

static CK_RV ecdsa_hash_verify(cops_op_t *op, const uint8_t *data,
                               size_t datalen, bool oneshot, const uint8_t *sig,
                               size_t siglen)
{
    uint8_t der[ASYM_ECDSA_DER_MAX];
    size_t derlen = 0;
    CK_RV rv;

    if (siglen != 2 * key_out(op)) {
        return CKR_SIGNATURE_LEN_RANGE;
    }
    if (oneshot && (rv = md_feed(op, data, datalen)) != CKR_OK) {
        return rv;
    }
    if ((rv = ecdsa_raw_to_der(sig, key_out(op), der, &derlen)) != CKR_OK) {
        return rv;
    }
    if (EVP_DigestVerifyFinal(op->mdctx, der, derlen) != 1) {
        ERR_clear_error();
        return CKR_SIGNATURE_INVALID;
    }
    return CKR_OK;
}

const cops_impl_t cops_ecdsa_hash = {
    .name = "ECDSA with hash",
    .init = ecdsa_hash_init,
    .output_len = ecdsa_output_len,
    .update = md_update,
    .final = ecdsa_hash_final,
    .oneshot = ecdsa_hash_oneshot,
    .verify = ecdsa_hash_verify,
    .cleanup = asym_cleanup,
};

/* ------------------------------------------------------------ EdDSA */

/*
 * Pure Ed25519 and Ed448 (empty context) always. Ed25519ctx, Ed25519ph,
 * Ed448 with a context and Ed448ph need OSSL_SIGNATURE_PARAM_INSTANCE
 * (OpenSSL 3.2 and later); without it they are CKR_MECHANISM_PARAM_INVALID.
 */
static CK_RV eddsa_init(cops_op_t *op, const cops_params_t *p)
{
    bool variant = p->eddsa_ph || p->context_len > 0;
    OSSL_PARAM params[3];
    OSSL_PARAM *prm = NULL;

    if (op->key == NULL || op->key->kt != CKK_EC_EDWARDS) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    if (variant) {
#ifdef OSSL_SIGNATURE_PARAM_INSTANCE
        bool ed448 = op->key->size == 448;
        const char *inst;

        if (ed448) {
            inst = p->eddsa_ph ? "Ed448ph" : "Ed448";
        } else {
            inst = p->eddsa_ph ? "Ed25519ph" : "Ed25519ctx";
        }
        params[0] = OSSL_PARAM_construct_utf8_string(
            OSSL_SIGNATURE_PARAM_INSTANCE, (char *)inst, 0);
        params[1] = OSSL_PARAM_construct_octet_string(
            OSSL_SIGNATURE_PARAM_CONTEXT_STRING, (void *)p->context,
            p->context_len);
        params[2] = OSSL_PARAM_construct_end();
        prm = params;
#else
        (void)params;
        return CKR_MECHANISM_PARAM_INVALID;
#endif
    }
    return md_init(op, NULL, prm);
}

static CK_RV eddsa_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                           uint8_t *out, size_t *outlen)
{
    static const uint8_t empty[1];

    if (op->kind != HSM_OPK_SIGN) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (!room(key_out(op), outlen)) {
        return CKR_BUFFER_TOO_SMALL;
    }
    *outlen = key_out(op);
    if (EVP_DigestSign(op->mdctx, out, outlen, in != NULL ? in : empty,
                       inlen) != 1) {
        cops_log_ossl("EVP_DigestSign(EdDSA)");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static CK_RV eddsa_verify(cops_op_t *op, const uint8_t *data, size_t datalen,
                          bool oneshot, const uint8_t *sig, size_t siglen)
{
    static const uint8_t empty[1];

    if (!oneshot) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (siglen != key_out(op)) {
        return CKR_SIGNATURE_LEN_RANGE;
    }
    if (EVP_DigestVerify(op->mdctx, sig, siglen, data != NULL ? data : empty,
                         datalen) != 1) {
        ERR_clear_error();
        return CKR_SIGNATURE_INVALID;
    }
    return CKR_OK;
}

const cops_impl_t cops_eddsa = {
    .name = "EdDSA",
    .init = eddsa_init,
    .output_len = fixed_output_len,
    .oneshot = eddsa_oneshot,
    .verify = eddsa_verify,
    .cleanup = asym_cleanup,
};
