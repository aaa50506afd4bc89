/*
 * qkey.c - the keys of quorum approvers and two-factor logins
 * (ARCHITECTURE section 12): an RSA-2048 public key given as a PEM or DER
 * SubjectPublicKeyInfo, and SHA256-RSA-PKCS signatures made with its
 * private key outside the HSM (openssl dgst -sha256 -sign).
 *
 * The key is parsed only to read its modulus and exponent; the signature
 * is checked by the mechanism code's own RSA verifier on a key built by our
 * provider (cops), as every other key of the token is.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "hsm/attrs.h"
#include "hsm/crypto/cops.h"
#include "hsm/crypto/crypto.h"

#define PEM_PUBKEY_NAME "PUBLIC KEY"

/* Whether in, past leading white space, starts a PEM block. */
static bool looks_pem(const uint8_t *in, size_t len)
{
    static const char dash[] = "-----BEGIN ";
    size_t i = 0;

    while (i < len &&
           (in[i] == ' ' || in[i] == '\t' || in[i] == '\r' || in[i] == '\n'))
        i++;
    return len - i >= sizeof(dash) - 1 &&
           memcmp(in + i, dash, sizeof(dash) - 1) == 0;
}

/* The DER of the one "PUBLIC KEY" block of a PEM text (*der from
 * OPENSSL_malloc). Anything else (another label, no block, bad base64,
 * headers): CKR_ARGUMENTS_BAD. */
static CK_RV pem_to_der(const uint8_t *in, size_t len, unsigned char **der,
                        long *derlen)
{
    char *name = NULL, *header = NULL;
    BIO *bio;
    CK_RV rv = CKR_ARGUMENTS_BAD;

    *der = NULL;
    *derlen = 0;
    bio = BIO_new_mem_buf(in, (int)len);
    if (bio == NULL)
        return CKR_HOST_MEMORY;
    if (PEM_read_bio(bio, &name, &header, der, derlen) == 1 &&
        strcmp(name, PEM_PUBKEY_NAME) == 0 && header[0] == '\0' && *derlen > 0)
        rv = CKR_OK;
    ERR_clear_error();
    if (rv != CKR_OK) {
        OPENSSL_free(*der);
        *der = NULL;
        *derlen = 0;
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    BIO_free(bio);
    return rv;
}

/* Parses a DER SubjectPublicKeyInfo that must be exactly len bytes. */
static CK_RV der_to_pkey(const unsigned char *der, long len, EVP_PKEY **out)
{
    const unsigned char *p = der;
    EVP_PKEY *pk;

    *out = NULL;
    pk = d2i_PUBKEY_ex(NULL, &p, len, crypto_libctx(), NULL);
    if (pk == NULL || p != der + len) {
        ERR_clear_error();
        EVP_PKEY_free(pk);
        return CKR_ARGUMENTS_BAD;
    }
    *out = pk;
    return CKR_OK;
}

/* A public exponent of at least 65537 and odd (SP 800-56B): with e = 1
 * the "signature" is the padded message itself, which anyone can make,
 * and a 2FA or quorum key must not be forgeable by everyone. */
static bool exponent_ok(EVP_PKEY *pk)
{
    BIGNUM *e = NULL;
    bool ok;

    if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
        ERR_clear_error();
        return false;
    }
    ok = BN_is_odd(e) && BN_num_bits(e) >= 17;
    BN_free(e);
    return ok;
}

CK_RV crypto_quorum_key_parse(const uint8_t *in, size_t len, uint8_t **der,
                              size_t *derlen)
{
    unsigned char *pem_der = NULL, *enc = NULL;
    const unsigned char *d;
    long dlen;
    EVP_PKEY *pk = NULL;
    int n;
    CK_RV rv;

    if (in == NULL || der == NULL || derlen == NULL)
        return CKR_ARGUMENTS_BAD;
    *der = NULL;
    *derlen = 0;
    if (len == 0 || len > CRYPTO_QUORUM_KEY_IN_MAX)
        return CKR_ARGUMENTS_BAD;
    if (looks_pem(in, len)) {
        if ((rv = pem_to_der(in, len, &pem_der, &dlen)) != CKR_OK)
            return rv;
        d = pem_der;
    } else {
        d = in;
        dlen = (long)len;
    }
    if ((rv = der_to_pkey(d, dlen, &pk)) != CKR_OK)
        goto out;
    /* rsaEncryption only: an RSA-PSS key's signatures are not PKCS#1 v1.5 */
    if (!EVP_PKEY_is_a(pk, "RSA") || EVP_PKEY_is_a(pk, "RSA-PSS")) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    if (EVP_PKEY_get_bits(pk) != CRYPTO_QUORUM_RSA_BITS) {
        rv = CKR_KEY_SIZE_RANGE;
        goto out;
    }
    if (!exponent_ok(pk)) {
        rv = CKR_ARGUMENTS_BAD; /* a public key that proves nothing */
        goto out;
    }
    n = i2d_PUBKEY(pk, &enc); /* canonical DER, whatever came in */
    if (n <= 0) {
        ERR_clear_error();
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    *der = malloc((size_t)n);
    if (*der == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    memcpy(*der, enc, (size_t)n);
    *derlen = (size_t)n;
    rv = CKR_OK;
out:
    OPENSSL_free(enc);
    OPENSSL_free(pem_der);
    EVP_PKEY_free(pk);
    return rv;
}

/* CKA_MODULUS / CKA_PUBLIC_EXPONENT of l from pk's parameter name. */
static CK_RV set_bn(attr_list_t *l, CK_ATTRIBUTE_TYPE type, EVP_PKEY *pk,
                    const char *param)
{
    unsigned char buf[CRYPTO_QUORUM_RSA_BITS / 8];
    BIGNUM *bn = NULL;
    int n;
    CK_RV rv;

    if (EVP_PKEY_get_bn_param(pk, param, &bn) != 1) {
        ERR_clear_error();
        return CKR_ARGUMENTS_BAD;
    }
    n = BN_num_bytes(bn);
    if (n <= 0 || (size_t)n > sizeof(buf) || BN_bn2bin(bn, buf) != n) {
        BN_free(bn);
        return CKR_ARGUMENTS_BAD;
    }
    BN_free(bn);
    rv = attr_list_set(l, type, buf, (size_t)n);
    return rv;
}

CK_RV crypto_quorum_verify(const uint8_t *der, size_t derlen,
                           const uint8_t *msg, size_t msglen,
                           const uint8_t *sig, size_t siglen)
{
    static const uint8_t empty[1];
    cops_params_t p;
    attr_list_t l;
    EVP_PKEY *pk = NULL;
    cops_key_t *key = NULL;
    cops_op_t *op = NULL;
    CK_RV rv;

    if (der == NULL || derlen == 0 || derlen > CRYPTO_QUORUM_KEY_IN_MAX ||
        (msg == NULL && msglen > 0))
        return CKR_ARGUMENTS_BAD;
    if (sig == NULL || siglen != CRYPTO_QUORUM_RSA_BITS / 8)
        return CKR_SIGNATURE_LEN_RANGE;
    memset(&l, 0, sizeof(l));
    memset(&p, 0, sizeof(p));
    if ((rv = der_to_pkey(der, (long)derlen, &pk)) != CKR_OK)
        return rv;
    if (!EVP_PKEY_is_a(pk, "RSA") || EVP_PKEY_is_a(pk, "RSA-PSS") ||
        EVP_PKEY_get_bits(pk) != CRYPTO_QUORUM_RSA_BITS) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    if ((rv = attr_list_set_ulong(&l, CKA_CLASS, CKO_PUBLIC_KEY)) != CKR_OK ||
        (rv = attr_list_set_ulong(&l, CKA_KEY_TYPE, CKK_RSA)) != CKR_OK ||
        (rv = set_bn(&l, CKA_MODULUS, pk, OSSL_PKEY_PARAM_RSA_N)) != CKR_OK ||
        (rv = set_bn(&l, CKA_PUBLIC_EXPONENT, pk, OSSL_PKEY_PARAM_RSA_E)) !=
            CKR_OK ||
        (rv = cops_key_from_attrs(&l, &key)) != CKR_OK)
        goto out;
    p.hash = COPS_HASH_SHA256;
    if ((rv = cops_op_new(&cops_rsa_pkcs_hash, HSM_OPK_VERIFY, key, &p, &op)) !=
        CKR_OK)
        goto out;
    rv = cops_op_verify(op, msg != NULL ? msg : empty, msglen, true, sig,
                        siglen);
    if (rv != CKR_OK && rv != CKR_SIGNATURE_LEN_RANGE && rv != CKR_HOST_MEMORY)
        rv = CKR_SIGNATURE_INVALID;
out:
    cops_op_free(op);
    cops_key_unref(key);
    attr_list_free(&l);
    EVP_PKEY_free(pk);
    return rv;
}
