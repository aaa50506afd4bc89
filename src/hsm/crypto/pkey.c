/*
 * pkey.c - keys: built from attribute lists (once, then cached by the core),
 * generated, exported back to attributes; ECDH and the X9.63 KDF.
 */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/crypto/cops.h"
#include "hsm/crypto/crypto.h"

/*
 * Every key is made by our own provider's key managers (crypto.h,
 * CRYPTO_KEYS_PROPQ): OpenSSL 3.0 consults a default ENGINE by key type
 * name even for a private library context, and an application that set
 * the pkcs11 engine as default for RSA/EC (Apache's SSLCryptoDevice,
 * openssl -engine pkcs11) would otherwise route our own keys into it.
 */
#define KEYTYPE_RSA crypto_keytype("RSA")
#define KEYTYPE_EC crypto_keytype("EC")

/* Largest RSA modulus we build a key from, in bytes (16384 bits). */
#define PKEY_RSA_MAX_BYTES 2048
/* Largest public exponent accepted on generation, in bytes. */
#define PKEY_RSA_E_MAX_BYTES 64

/* ------------------------------------------------------------ curves */

typedef struct {
    CK_KEY_TYPE kt;
    const char *oid; /* DER OID, tag and length included */
    size_t oid_len;
    const char *names[4]; /* PrintableString names accepted */
    const char *ossl;     /* group name (EC) or key type (Ed/X) */
    CK_ULONG bits;        /* cops_key_size */
    size_t field_len;     /* coordinate / raw key bytes */
    size_t out_len;       /* ECDSA: order bytes; EdDSA: signature bytes */
} pkey_curve_t;

#define OID(s) s, sizeof(s) - 1

static const pkey_curve_t pkey_curves[] = {
    {CKK_EC,
     OID("\x06\x05\x2B\x81\x04\x00\x21"),
     {"secp224r1", "P-224"},
     "P-224",
     224,
     28,
     28},
    {CKK_EC,
     OID("\x06\x08\x2A\x86\x48\xCE\x3D\x03\x01\x07"),
     {"prime256v1", "secp256r1", "P-256"},
     "P-256",
     256,
     32,
     32},
    {CKK_EC,
     OID("\x06\x05\x2B\x81\x04\x00\x22"),
     {"secp384r1", "P-384"},
     "P-384",
     384,
     48,
     48},
    {CKK_EC,
     OID("\x06\x05\x2B\x81\x04\x00\x23"),
     {"secp521r1", "P-521"},
     "P-521",
     521,
     66,
     66},
    {CKK_EC,
     OID("\x06\x05\x2B\x81\x04\x00\x0A"),
     {"secp256k1"},
     "secp256k1",
     256,
     32,
     32},
    {CKK_EC,
     OID("\x06\x09\x2B\x24\x03\x03\x02\x08\x01\x01\x07"),
     {"brainpoolP256r1"},
     "brainpoolP256r1",
     256,
     32,
     32},
    {CKK_EC,
     OID("\x06\x09\x2B\x24\x03\x03\x02\x08\x01\x01\x0B"),
     {"brainpoolP384r1"},
     "brainpoolP384r1",
     384,
     48,
     48},
    {CKK_EC,
     OID("\x06\x09\x2B\x24\x03\x03\x02\x08\x01\x01\x0D"),
     {"brainpoolP512r1"},
     "brainpoolP512r1",
     512,
     64,
     64},
    {CKK_EC_EDWARDS,
     OID("\x06\x03\x2B\x65\x70"),
     {"edwards25519"},
     "ED25519",
     255,
     32,
     64},
    {CKK_EC_EDWARDS,
     OID("\x06\x03\x2B\x65\x71"),
     {"edwards448"},
     "ED448",
     448,
     57,
     114},
    {CKK_EC_MONTGOMERY,
     OID("\x06\x03\x2B\x65\x6E"),
     {"curve25519"},
     "X25519",
     255,
     32,
     0},
    {CKK_EC_MONTGOMERY,
     OID("\x06\x03\x2B\x65\x6F"),
     {"curve448"},
     "X448",
     448,
     56,
     0},
};

_Static_assert(UTIL_ARRAY_SIZE(pkey_curves) == 12,
               "pkey_kg below has one initialiser per curve");

/* DER length at in[0..len): *hdr length bytes, *clen content length. */
static bool der_len(const uint8_t *in, size_t len, size_t *hdr, size_t *clen)
{
    size_t nb, v = 0;

    if (len < 1) {
        return false;
    }
    if (in[0] < 0x80) {
        *hdr = 1;
        *clen = in[0];
        return true;
    }
    nb = in[0] & 0x7F;
    if (nb == 0 || nb > 2 || nb + 1 > len) {
        return false;
    }
    for (size_t i = 0; i < nb; i++) {
        v = (v << 8) | in[1 + i];
    }
    *hdr = 1 + nb;
    *clen = v;
    return true;
}

/* The content of one TLV with tag spanning exactly in[0..len). */
static bool der_unwrap(const uint8_t *in, size_t len, uint8_t tag,
                       const uint8_t **c, size_t *clen)
{
    size_t hdr, n;

    if (len < 2 || in[0] != tag || !der_len(in + 1, len - 1, &hdr, &n) ||
        n != len - 1 - hdr) {
        return false;
    }
    *c = in + 1 + hdr;
    *clen = n;
    return true;
}

static const pkey_curve_t *curve_find(const uint8_t *params, size_t len)
{
    const uint8_t *c;
    size_t n;

    if (params == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(pkey_curves); i++) {
        if (pkey_curves[i].oid_len == len &&
            memcmp(pkey_curves[i].oid, params, len) == 0) {
            return &pkey_curves[i];
        }
    }
    if (!der_unwrap(params, len, 0x13, &c, &n)) {
        return NULL;
    }
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(pkey_curves); i++) {
        for (size_t j = 0; j < UTIL_ARRAY_SIZE(pkey_curves[i].names); j++) {
            const char *name = pkey_curves[i].names[j];

            if (name != NULL && strlen(name) == n && memcmp(name, c, n) == 0) {
                return &pkey_curves[i];
            }
        }
    }
    return NULL;
}

CK_RV cops_curve_check(CK_KEY_TYPE kt, const uint8_t *params, size_t len,
                       CK_ULONG *bits)
{
    const pkey_curve_t *cv = curve_find(params, len);

    if (cv == NULL || cv->kt != kt) {
        return CKR_CURVE_NOT_SUPPORTED;
    }
    *bits = cv->bits;
    return CKR_OK;
}

/* ------------------------------------------------------------ key objects */

static cops_key_t *key_new(CK_OBJECT_CLASS cls, CK_KEY_TYPE kt)
{
    cops_key_t *k = calloc(1, sizeof(*k));

    if (k != NULL) {
        atomic_init(&k->refs, 1);
        k->cls = cls;
        k->kt = kt;
    }
    return k;
}

cops_key_t *cops_key_ref(cops_key_t *k)
{
    if (k != NULL) {
        atomic_fetch_add(&k->refs, 1);
    }
    return k;
}

void cops_key_unref(cops_key_t *k)
{
    if (k == NULL || atomic_fetch_sub(&k->refs, 1) != 1) {
        return;
    }
    EVP_PKEY_free(k->pkey);
    crypto_secret_free(k->secret);
    free(k);
}

CK_ULONG cops_key_size(const cops_key_t *k)
{
    return k->size;
}

CK_KEY_TYPE cops_key_type(const cops_key_t *k)
{
    return k->kt;
}

static const attr_t *need(const attr_list_t *l, CK_ATTRIBUTE_TYPE t)
{
    const attr_t *a = attr_list_find(l, t);

    return a != NULL && a->len > 0 ? a : NULL;
}

/* Pushes a big-endian attribute as a BIGNUM parameter (absent: skipped
 * unless required). */
static CK_RV push_bn(OSSL_PARAM_BLD *bld, const char *key, const attr_list_t *l,
                     CK_ATTRIBUTE_TYPE t, bool required, BIGNUM **keep)
{
    const attr_t *a = need(l, t);

    if (a == NULL) {
        return required ? CKR_TEMPLATE_INCOMPLETE : CKR_OK;
    }
    if (a->len > PKEY_RSA_MAX_BYTES) {
        return CKR_KEY_SIZE_RANGE;
    }
    *keep = BN_bin2bn(a->value, (int)a->len, NULL);
    if (*keep == NULL || !OSSL_PARAM_BLD_push_BN(bld, key, *keep)) {
        return CKR_HOST_MEMORY;
    }
    return CKR_OK;
}

static CK_RV fromdata_in(const char *type, const char *propq, int selection,
                         OSSL_PARAM *params, EVP_PKEY **out)
{
    EVP_PKEY_CTX *ctx;
    CK_RV rv = CKR_FUNCTION_FAILED;

    ctx = EVP_PKEY_CTX_new_from_name(crypto_libctx(), type, propq);
    if (ctx == NULL) {
        cops_log_ossl("EVP_PKEY_CTX_new_from_name");
        return CKR_HOST_MEMORY;
    }
    if (EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, out, selection, params) != 1) {
        cops_log_ossl("EVP_PKEY_fromdata");
        goto out;
    }
    rv = CKR_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    return rv;
}

/* A key of ours (see KEYTYPE_RSA). */
static CK_RV fromdata(const char *type, int selection, OSSL_PARAM *params,
                      EVP_PKEY **out)
{
    return fromdata_in(type, CRYPTO_KEYS_PROPQ, selection, params, out);
}

/* The RSA key components, OpenSSL's parameter name and the attribute: n and
 * e (the public key), d, then the five CRT values. */
static const struct {
    const char *name;
    CK_ATTRIBUTE_TYPE t;
} rsa_params[] = {
    {OSSL_PKEY_PARAM_RSA_N, CKA_MODULUS},
    {OSSL_PKEY_PARAM_RSA_E, CKA_PUBLIC_EXPONENT},
    {OSSL_PKEY_PARAM_RSA_D, CKA_PRIVATE_EXPONENT},
    {OSSL_PKEY_PARAM_RSA_FACTOR1, CKA_PRIME_1},
    {OSSL_PKEY_PARAM_RSA_FACTOR2, CKA_PRIME_2},
    {OSSL_PKEY_PARAM_RSA_EXPONENT1, CKA_EXPONENT_1},
    {OSSL_PKEY_PARAM_RSA_EXPONENT2, CKA_EXPONENT_2},
    {OSSL_PKEY_PARAM_RSA_COEFFICIENT1, CKA_COEFFICIENT},
};
#define RSA_PUBLIC_PARAMS 2 /* n, e */
#define RSA_CRT_FIRST 3     /* the CRT values follow d */

static CK_RV rsa_from_attrs(const attr_list_t *l, bool priv, cops_key_t *k)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    BIGNUM *bn[UTIL_ARRAY_SIZE(rsa_params)] = {NULL};
    EVP_PKEY *pkey = NULL;
    bool all_crt = true;
    CK_RV rv;
    int bits;

    if (bld == NULL) {
        return CKR_HOST_MEMORY;
    }
    /* n and e, and d for a private key. */
    for (size_t i = 0; i < (priv ? RSA_CRT_FIRST : RSA_PUBLIC_PARAMS); i++) {
        rv = push_bn(bld, rsa_params[i].name, l, rsa_params[i].t, true, &bn[i]);
        if (rv != CKR_OK) {
            goto out;
        }
    }
    /* The CRT parts are used only when all five are there. */
    for (size_t i = RSA_CRT_FIRST; priv && i < UTIL_ARRAY_SIZE(rsa_params);
         i++) {
        all_crt = all_crt && need(l, rsa_params[i].t) != NULL;
    }
    for (size_t i = RSA_CRT_FIRST;
         priv && all_crt && i < UTIL_ARRAY_SIZE(rsa_params); i++) {
        rv = push_bn(bld, rsa_params[i].name, l, rsa_params[i].t, true, &bn[i]);
        if (rv != CKR_OK) {
            goto out;
        }
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    rv = fromdata(KEYTYPE_RSA, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                  params, &pkey);
    if (rv != CKR_OK) {
        goto out;
    }
    bits = EVP_PKEY_get_bits(pkey);
    if (bits <= 0) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    k->pkey = pkey;
    pkey = NULL;
    k->size = (CK_ULONG)bits;
    k->out_len = ((size_t)bits + 7) / 8;
out:
    EVP_PKEY_free(pkey);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(bn); i++) {
        BN_clear_free(bn[i]);
    }
    return rv;
}

/* The raw point of CKA_EC_POINT (stored as a DER OCTET STRING; a raw value
 * is accepted too). */
static bool point_of(const attr_t *a, const pkey_curve_t *cv, const uint8_t **p,
                     size_t *n)
{
    size_t raw = cv->kt == CKK_EC ? 1 + 2 * cv->field_len : cv->field_len;

    if (der_unwrap(a->value, a->len, 0x04, p, n) && *n == raw) {
        return true;
    }
    *p = a->value;
    *n = a->len;
    return a->len == raw || (cv->kt == CKK_EC && a->len == 1 + cv->field_len);
}

/*
 * The uncompressed public point of an EC private key: from its
 * CKA_PUBLIC_KEY_INFO when the object has one, else d * G.
 */
static CK_RV ec_public_of(const attr_list_t *l, const pkey_curve_t *cv,
                          const BIGNUM *d, uint8_t *out, size_t room,
                          size_t *outlen)
{
    const attr_t *spki = need(l, CKA_PUBLIC_KEY_INFO);
    EC_GROUP *g = NULL;
    EC_POINT *pt = NULL;
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (spki != NULL) {
        const unsigned char *q = spki->value;
        EVP_PKEY *pk =
            d2i_PUBKEY_ex(NULL, &q, (long)spki->len, crypto_libctx(), NULL);
        int ok = pk != NULL &&
                 EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY,
                                                 out, room, outlen) == 1;

        EVP_PKEY_free(pk);
        if (ok) {
            return CKR_OK;
        }
        ERR_clear_error();
    }
    g = EC_GROUP_new_by_curve_name_ex(crypto_libctx(), NULL,
                                      OBJ_sn2nid(cv->ossl) != NID_undef
                                          ? OBJ_sn2nid(cv->ossl)
                                          : EC_curve_nist2nid(cv->ossl));
    if (g == NULL || (pt = EC_POINT_new(g)) == NULL ||
        EC_POINT_mul(g, pt, d, NULL, NULL, NULL) != 1) {
        goto out;
    }
    *outlen = EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, out,
                                 room, NULL);
    if (*outlen > 0) {
        rv = CKR_OK;
    }
out:
    if (rv != CKR_OK) {
        cops_log_ossl("EC public point");
    }
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    return rv;
}

static CK_RV ec_from_attrs(const attr_list_t *l, bool priv, cops_key_t *k)
{
    const attr_t *params = need(l, CKA_EC_PARAMS);
    const attr_t *a = need(l, priv ? CKA_VALUE : CKA_EC_POINT);
    const pkey_curve_t *cv;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *op = NULL;
    BIGNUM *d = NULL;
    EVP_PKEY *pkey = NULL;
    const uint8_t *p;
    size_t n;
    uint8_t pub[1 + 2 * 66];
    size_t publen = 0;
    CK_RV rv = CKR_HOST_MEMORY;

    if (params == NULL || a == NULL) {
        return CKR_TEMPLATE_INCOMPLETE;
    }
    cv = curve_find(params->value, params->len);
    if (cv == NULL || cv->kt != k->kt) {
        return CKR_CURVE_NOT_SUPPORTED;
    }
    k->size = cv->bits;
    k->out_len = cv->out_len;
    k->field_len = cv->field_len;
    k->group = cv->ossl;
    if (k->kt != CKK_EC) {
        if (priv) {
            if (a->len != cv->field_len) {
                return CKR_FUNCTION_FAILED;
            }
            pkey = EVP_PKEY_new_raw_private_key_ex(
                crypto_libctx(), crypto_keytype(cv->ossl), CRYPTO_KEYS_PROPQ,
                a->value, a->len);
        } else {
            if (!point_of(a, cv, &p, &n)) {
                return CKR_FUNCTION_FAILED;
            }
            pkey = EVP_PKEY_new_raw_public_key_ex(crypto_libctx(),
                                                  crypto_keytype(cv->ossl),
                                                  CRYPTO_KEYS_PROPQ, p, n);
        }
        if (pkey == NULL) {
            cops_log_ossl("EVP_PKEY_new_raw_key");
            return CKR_FUNCTION_FAILED;
        }
        k->pkey = pkey;
        return CKR_OK;
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL || !OSSL_PARAM_BLD_push_utf8_string(
                           bld, OSSL_PKEY_PARAM_GROUP_NAME, cv->ossl, 0)) {
        goto out;
    }
    if (priv) {
        if (a->len > cv->field_len + 1) {
            rv = CKR_FUNCTION_FAILED;
            goto out;
        }
        d = BN_bin2bn(a->value, (int)a->len, NULL);
        if (d == NULL ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d)) {
            goto out;
        }
        /* The public point too: PKCS#8 export (wrapping) needs it. */
        if ((rv = ec_public_of(l, cv, d, pub, sizeof(pub), &publen)) !=
            CKR_OK) {
            goto out;
        }
        rv = CKR_HOST_MEMORY;
        if (!OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                              publen)) {
            goto out;
        }
    } else {
        if (!point_of(a, cv, &p, &n)) {
            rv = CKR_FUNCTION_FAILED;
            goto out;
        }
        if (!OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, p,
                                              n)) {
            goto out;
        }
    }
    op = OSSL_PARAM_BLD_to_param(bld);
    if (op == NULL) {
        goto out;
    }
    rv = fromdata(KEYTYPE_EC, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, op,
                  &pkey);
    if (rv != CKR_OK) {
        goto out;
    }
    k->pkey = pkey;
out:
    OSSL_PARAM_free(op);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(d);
    return rv;
}

CK_RV cops_key_from_attrs(const attr_list_t *l, cops_key_t **out)
{
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE kt;
    cops_key_t *k;
    const attr_t *v;
    CK_RV rv;

    *out = NULL;
    cls = attr_list_ulong(l, CKA_CLASS, CK_UNAVAILABLE_INFORMATION);
    kt = attr_list_ulong(l, CKA_KEY_TYPE, CK_UNAVAILABLE_INFORMATION);
    if (cls != CKO_PUBLIC_KEY && cls != CKO_PRIVATE_KEY &&
        cls != CKO_SECRET_KEY) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    k = key_new(cls, kt);
    if (k == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (cls == CKO_SECRET_KEY) {
        v = attr_list_find(l, CKA_VALUE);
        if (v == NULL || v->len == 0) {
            rv = CKR_KEY_TYPE_INCONSISTENT;
            goto out;
        }
        /* The parsed key lives as long as its cache entry: secret
         * memory (crypto.h). */
        k->secret = crypto_secret_alloc(v->len);
        if (k->secret == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        memcpy(k->secret, v->value, v->len);
        k->secret_len = v->len;
        k->size = v->len;
        rv = CKR_OK;
    } else if (kt == CKK_RSA) {
        rv = rsa_from_attrs(l, cls == CKO_PRIVATE_KEY, k);
    } else if (kt == CKK_EC || kt == CKK_EC_EDWARDS ||
               kt == CKK_EC_MONTGOMERY) {
        rv = ec_from_attrs(l, cls == CKO_PRIVATE_KEY, k);
    } else {
        rv = CKR_KEY_TYPE_INCONSISTENT;
    }
    if (rv == CKR_TEMPLATE_INCOMPLETE) {
        rv = CKR_FUNCTION_FAILED; /* a stored key lacks a part */
    }
out:
    if (rv != CKR_OK) {
        cops_key_unref(k);
        return rv;
    }
    *out = k;
    return CKR_OK;
}

/* ------------------------------------------------------------ export */

static CK_RV set_bn_param(const EVP_PKEY *pkey, const char *name,
                          attr_list_t *l, CK_ATTRIBUTE_TYPE t, size_t pad)
{
    BIGNUM *bn = NULL;
    uint8_t *buf = NULL;
    size_t n;
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1) {
        cops_log_ossl("EVP_PKEY_get_bn_param");
        return CKR_FUNCTION_FAILED;
    }
    n = (size_t)BN_num_bytes(bn);
    if (pad > n) {
        n = pad;
    }
    if (n == 0) {
        n = 1;
    }
    buf = malloc(n);
    if (buf == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (BN_bn2binpad(bn, buf, (int)n) < 0) {
        goto out;
    }
    rv = attr_list_set(l, t, buf, n);
out:
    util_free_wipe(buf, n);
    BN_clear_free(bn);
    return rv;
}

/* The first n components of rsa_params, from pkey into l. */
static CK_RV set_rsa_params(const EVP_PKEY *pkey, attr_list_t *l, size_t n)
{
    CK_RV rv = CKR_OK;

    for (size_t i = 0; i < n && rv == CKR_OK; i++) {
        rv = set_bn_param(pkey, rsa_params[i].name, l, rsa_params[i].t, 0);
    }
    return rv;
}

/* CKA_PUBLIC_KEY_INFO: the DER SubjectPublicKeyInfo. */
static CK_RV set_spki(EVP_PKEY *pkey, attr_list_t *l)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pkey, &der);
    CK_RV rv;

    if (n <= 0) {
        cops_log_ossl("i2d_PUBKEY");
        return CKR_FUNCTION_FAILED;
    }
    rv = attr_list_set(l, CKA_PUBLIC_KEY_INFO, der, (size_t)n);
    OPENSSL_free(der);
    return rv;
}

/* A DER length below 256 at buf[*off]. */
static void der_put_len(uint8_t *buf, size_t *off, size_t len)
{
    if (len >= 0x80) {
        buf[(*off)++] = 0x81;
    }
    buf[(*off)++] = (uint8_t)len;
}

/*
 * CKA_PUBLIC_KEY_INFO of a curve key, built here from the raw public key:
 * SEQUENCE { SEQUENCE { algorithm OID [, named curve OID] }, BIT STRING }.
 * The same bytes as i2d_PUBKEY (named curve, uncompressed point), which
 * goes through the encoder framework and costs more than the key
 * generation itself.
 */
static CK_RV set_curve_spki(const pkey_curve_t *cv, const uint8_t *pt, size_t n,
                            attr_list_t *pub, attr_list_t *priv)
{
    static const uint8_t ec_oid[] = {0x06, 0x07, 0x2A, 0x86, 0x48,
                                     0xCE, 0x3D, 0x02, 0x01};
    uint8_t buf[192];
    size_t alg = cv->oid_len + (cv->kt == CKK_EC ? sizeof(ec_oid) : 0);
    size_t bits = 1 + n;
    size_t inner = 2 + alg + 1 + (bits >= 0x80 ? 2 : 1) + bits;
    size_t off = 0;
    CK_RV rv;

    if (alg >= 0x80 || bits > 0xFF || inner > 0xFF || inner + 3 > sizeof(buf)) {
        return CKR_GENERAL_ERROR;
    }
    buf[off++] = 0x30;
    der_put_len(buf, &off, inner);
    buf[off++] = 0x30;
    buf[off++] = (uint8_t)alg;
    if (cv->kt == CKK_EC) {
        memcpy(buf + off, ec_oid, sizeof(ec_oid));
        off += sizeof(ec_oid);
    }
    memcpy(buf + off, cv->oid, cv->oid_len);
    off += cv->oid_len;
    buf[off++] = 0x03;
    der_put_len(buf, &off, bits);
    buf[off++] = 0x00; /* no unused bits */
    memcpy(buf + off, pt, n);
    off += n;
    if ((rv = attr_list_set(pub, CKA_PUBLIC_KEY_INFO, buf, off)) != CKR_OK) {
        return rv;
    }
    return attr_list_set(priv, CKA_PUBLIC_KEY_INFO, buf, off);
}

/* CKA_EC_POINT as a DER OCTET STRING of the raw point. */
static CK_RV set_point(const uint8_t *p, size_t n, attr_list_t *l)
{
    uint8_t buf[4 + 2 * 66 + 1];
    size_t hdr = n < 0x80 ? 2 : 3;
    CK_RV rv;

    if (n > 0xFF || hdr + n > sizeof(buf)) {
        return CKR_GENERAL_ERROR;
    }
    buf[0] = 0x04;
    if (hdr == 2) {
        buf[1] = (uint8_t)n;
    } else {
        buf[1] = 0x81;
        buf[2] = (uint8_t)n;
    }
    memcpy(buf + hdr, p, n);
    rv = attr_list_set(l, CKA_EC_POINT, buf, hdr + n);
    return rv;
}

static CK_RV keygen(const char *type, const char *group, const BIGNUM *e,
                    CK_ULONG bits, EVP_PKEY **out)
{
    EVP_PKEY_CTX *ctx;
    CK_RV rv = CKR_FUNCTION_FAILED;

    *out = NULL;
    ctx = EVP_PKEY_CTX_new_from_name(crypto_libctx(), type, CRYPTO_KEYS_PROPQ);
    if (ctx == NULL) {
        cops_log_ossl("EVP_PKEY_CTX_new_from_name");
        return CKR_HOST_MEMORY;
    }
    if (EVP_PKEY_keygen_init(ctx) != 1) {
        goto out;
    }
    if (group != NULL && EVP_PKEY_CTX_set_group_name(ctx, group) != 1) {
        goto out;
    }
    if (bits != 0 &&
        (EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits) != 1 ||
         EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, (BIGNUM *)e) != 1)) {
        goto out;
    }
    if (EVP_PKEY_generate(ctx, out) != 1) {
        goto out;
    }
    rv = CKR_OK;
out:
    if (rv != CKR_OK) {
        cops_log_ossl("key generation");
    }
    EVP_PKEY_CTX_free(ctx);
    return rv;
}

/*
 * Key generation contexts of the curves, kept while cops_cache_on(): a
 * new context makes its EC_GROUP again (Montgomery setup, a modular
 * inverse), which costs more than the generation itself; a context that
 * has generated once keeps it. Each curve has a small stack of idle
 * contexts, so that threads generating at once each get their own.
 */
#define PKEY_KG_IDLE 4

static struct {
    pthread_mutex_t lock;
    EVP_PKEY_CTX *idle[PKEY_KG_IDLE];
    size_t n;
} pkey_kg[UTIL_ARRAY_SIZE(pkey_curves)] = {
#define PKEY_KG_INIT                                                           \
    {                                                                          \
        .lock = PTHREAD_MUTEX_INITIALIZER                                      \
    }
    PKEY_KG_INIT, PKEY_KG_INIT, PKEY_KG_INIT, PKEY_KG_INIT,
    PKEY_KG_INIT, PKEY_KG_INIT, PKEY_KG_INIT, PKEY_KG_INIT,
    PKEY_KG_INIT, PKEY_KG_INIT, PKEY_KG_INIT, PKEY_KG_INIT,
#undef PKEY_KG_INIT
};

void cops_pkey_cache_clear(void)
{
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(pkey_kg); i++) {
        pthread_mutex_lock(&pkey_kg[i].lock);
        while (pkey_kg[i].n > 0) {
            EVP_PKEY_CTX_free(pkey_kg[i].idle[--pkey_kg[i].n]);
        }
        pthread_mutex_unlock(&pkey_kg[i].lock);
    }
}

/* A key pair on curve cv, through a kept context when there is one. */
static CK_RV curve_keygen(const pkey_curve_t *cv, EVP_PKEY **out)
{
    size_t i = (size_t)(cv - pkey_curves);
    EVP_PKEY_CTX *ctx = NULL;
    bool keep = cops_cache_on();
    CK_RV rv = CKR_FUNCTION_FAILED;

    *out = NULL;
    if (keep) {
        pthread_mutex_lock(&pkey_kg[i].lock);
        if (pkey_kg[i].n > 0) {
            ctx = pkey_kg[i].idle[--pkey_kg[i].n];
        }
        pthread_mutex_unlock(&pkey_kg[i].lock);
    }
    if (ctx == NULL) {
        ctx = EVP_PKEY_CTX_new_from_name(
            crypto_libctx(),
            cv->kt == CKK_EC ? KEYTYPE_EC : crypto_keytype(cv->ossl),
            CRYPTO_KEYS_PROPQ);
        if (ctx == NULL) {
            cops_log_ossl("EVP_PKEY_CTX_new_from_name");
            return CKR_HOST_MEMORY;
        }
        if (EVP_PKEY_keygen_init(ctx) != 1 ||
            (cv->kt == CKK_EC &&
             EVP_PKEY_CTX_set_group_name(ctx, cv->ossl) != 1)) {
            goto out;
        }
    }
    if (EVP_PKEY_generate(ctx, out) != 1) {
        goto out;
    }
    rv = CKR_OK;
    if (keep) {
        pthread_mutex_lock(&pkey_kg[i].lock);
        if (pkey_kg[i].n < PKEY_KG_IDLE) {
            pkey_kg[i].idle[pkey_kg[i].n++] = ctx;
            ctx = NULL;
        }
        pthread_mutex_unlock(&pkey_kg[i].lock);
    }
out:
    if (rv != CKR_OK) {
        cops_log_ossl("key generation");
    }
    EVP_PKEY_CTX_free(ctx);
    return rv;
}

CK_RV cops_generate_rsa(CK_ULONG bits, const uint8_t *e, size_t elen,
                        attr_list_t *pub, attr_list_t *priv)
{
    static const uint8_t f4[] = {0x01, 0x00, 0x01};
    EVP_PKEY *pkey = NULL;
    BIGNUM *bn = NULL;
    CK_RV rv;

    if (e == NULL) {
        e = f4;
        elen = sizeof(f4);
    }
    if (elen == 0 || elen > PKEY_RSA_E_MAX_BYTES) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    bn = BN_bin2bn(e, (int)elen, NULL);
    if (bn == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (!BN_is_odd(bn) || BN_is_one(bn)) {
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
        goto out;
    }
    if ((rv = keygen(KEYTYPE_RSA, NULL, bn, bits, &pkey)) != CKR_OK) {
        goto out;
    }
    if ((rv = set_rsa_params(pkey, pub, RSA_PUBLIC_PARAMS)) != CKR_OK ||
        (rv = set_spki(pkey, pub)) != CKR_OK ||
        (rv = set_rsa_params(pkey, priv, UTIL_ARRAY_SIZE(rsa_params))) !=
            CKR_OK) {
        goto out;
    }
    rv = set_spki(pkey, priv);
out:
    BN_free(bn);
    EVP_PKEY_free(pkey);
    return rv;
}

CK_RV cops_generate_ec(CK_KEY_TYPE kt, const uint8_t *params, size_t plen,
                       attr_list_t *pub, attr_list_t *priv)
{
    const pkey_curve_t *cv = curve_find(params, plen);
    uint8_t raw[1 + 2 * 66];
    size_t n = 0;
    EVP_PKEY *pkey = NULL;
    CK_RV rv;

    if (cv == NULL || cv->kt != kt) {
        return CKR_CURVE_NOT_SUPPORTED;
    }
    if ((rv = curve_keygen(cv, &pkey)) != CKR_OK) {
        return rv;
    }
    rv = CKR_FUNCTION_FAILED;
    if (kt == CKK_EC) {
        if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, raw,
                                            sizeof(raw), &n) != 1) {
            goto out;
        }
        if ((rv = set_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, priv, CKA_VALUE,
                               cv->out_len)) != CKR_OK) {
            goto out;
        }
    } else {
        n = sizeof(raw);
        if (EVP_PKEY_get_raw_public_key(pkey, raw, &n) != 1) {
            goto out;
        }
        {
            uint8_t sk[57];
            size_t skn = sizeof(sk);

            if (EVP_PKEY_get_raw_private_key(pkey, sk, &skn) != 1) {
                goto out;
            }
            rv = attr_list_set(priv, CKA_VALUE, sk, skn);
            crypto_wipe(sk, sizeof(sk));
            if (rv != CKR_OK) {
                goto out;
            }
        }
    }
    if ((rv = set_point(raw, n, pub)) != CKR_OK ||
        (rv = set_curve_spki(cv, raw, n, pub, priv)) != CKR_OK) {
        goto out;
    }
    rv = CKR_OK;
out:
    if (rv == CKR_FUNCTION_FAILED) {
        cops_log_ossl("key export");
    }
    EVP_PKEY_free(pkey);
    return rv;
}

/* ------------------------------------------------------------ ECDH */

/* The peer's key on the curve of priv, from a raw or DER-wrapped point. */
static CK_RV peer_key(const cops_key_t *priv, const uint8_t *in, size_t len,
                      EVP_PKEY **out)
{
    size_t raw = priv->kt == CKK_EC ? 1 + 2 * priv->field_len : priv->field_len;
    size_t comp = priv->kt == CKK_EC ? 1 + priv->field_len : 0;
    OSSL_PARAM params[3];
    const uint8_t *p = in;
    size_t n = len;

    *out = NULL;
    if (n != raw && n != comp) {
        if (!der_unwrap(in, len, 0x04, &p, &n) || (n != raw && n != comp)) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
    }
    if (priv->kt != CKK_EC) {
        *out = EVP_PKEY_new_raw_public_key_ex(crypto_libctx(),
                                              crypto_keytype(priv->group),
                                              CRYPTO_KEYS_PROPQ, p, n);
        return *out != NULL ? CKR_OK : CKR_MECHANISM_PARAM_INVALID;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                 (char *)priv->group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                                  (void *)p, n);
    params[2] = OSSL_PARAM_construct_end();
    /* The EC peer only ever goes to the default provider's key exchange
     * (never into a context of its own, so no ENGINE sees it): made by
     * that provider's key manager (named by OID, which maps to no NID), it
     * is not exported again at every derivation. */
    if (fromdata_in("1.2.840.10045.2.1", "provider=default",
                    EVP_PKEY_PUBLIC_KEY, params, out) != CKR_OK) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    return CKR_OK;
}

CK_RV cops_ecdh(const cops_key_t *priv, const uint8_t *peer, size_t peerlen,
                uint8_t **z, size_t *zlen)
{
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pk = NULL;
    uint8_t *buf = NULL;
    size_t n = 0;
    CK_RV rv;

    *z = NULL;
    *zlen = 0;
    if (priv->pkey == NULL || priv->cls != CKO_PRIVATE_KEY) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    if ((rv = peer_key(priv, peer, peerlen, &pk)) != CKR_OK) {
        ERR_clear_error();
        return rv;
    }
    rv = CKR_FUNCTION_FAILED;
    ctx = EVP_PKEY_CTX_new_from_pkey(crypto_libctx(), priv->pkey, NULL);
    if (ctx == NULL || EVP_PKEY_derive_init(ctx) != 1) {
        goto out;
    }
    /*
     * The peer must be on the curve and not the identity. For the EC
     * curves (all of prime order, cofactor 1: see pkey_curves) the import
     * above has checked the first (EC_POINT_set_affine_coordinates refuses
     * a point off the curve) and the length checks of peer_key exclude the
     * second, which makes OpenSSL's full public key check (one more scalar
     * multiplication, n * Q = O) redundant: it is left out. Montgomery keys
     * keep OpenSSL's check and the all-zero result check below.
     */
    if (EVP_PKEY_derive_set_peer_ex(ctx, pk, priv->kt == CKK_EC ? 0 : 1) != 1) {
        ERR_clear_error();
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    if (EVP_PKEY_derive(ctx, NULL, &n) != 1 || n == 0) {
        goto out;
    }
    buf = malloc(n);
    if (buf == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (EVP_PKEY_derive(ctx, buf, &n) != 1) {
        /* X25519/X448: an all-zero result (a small-order point). */
        ERR_clear_error();
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    *z = buf;
    *zlen = n;
    buf = NULL;
    rv = CKR_OK;
out:
    if (rv == CKR_FUNCTION_FAILED) {
        cops_log_ossl("ECDH");
    }
    util_free_wipe(buf, n);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return rv;
}

CK_RV cops_x963_kdf(cops_hash_t h, const uint8_t *z, size_t zlen,
                    const uint8_t *info, size_t infolen, uint8_t *out,
                    size_t outlen)
{
    static const uint8_t empty[1];
    const char *md = cops_hash_name(h);
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *ctx = NULL;
    OSSL_PARAM params[4];
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (md == NULL) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    kdf = EVP_KDF_fetch(crypto_libctx(), OSSL_KDF_NAME_X963KDF, NULL);
    if (kdf == NULL || (ctx = EVP_KDF_CTX_new(kdf)) == NULL) {
        goto out;
    }
    params[0] =
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md, 0);
    params[1] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)z, zlen);
    params[2] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_INFO, (void *)(info != NULL ? info : empty), infolen);
    params[3] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(ctx, out, outlen, params) != 1) {
        goto out;
    }
    rv = CKR_OK;
out:
    if (rv != CKR_OK) {
        cops_log_ossl("X963KDF");
    }
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rv;
}

/* ------------------------------------------------------------ PKCS#8 */

CK_RV cops_key_to_pkcs8(const cops_key_t *k, uint8_t **der, size_t *len)
{
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    unsigned char *buf = NULL;
    int n;

    *der = NULL;
    *len = 0;
    if (k->pkey == NULL || k->cls != CKO_PRIVATE_KEY) {
        return CKR_KEY_NOT_WRAPPABLE;
    }
    p8 = EVP_PKEY2PKCS8(k->pkey);
    if (p8 == NULL) {
        cops_log_ossl("EVP_PKEY2PKCS8");
        return CKR_KEY_NOT_WRAPPABLE;
    }
    n = i2d_PKCS8_PRIV_KEY_INFO(p8, &buf);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (n <= 0) {
        cops_log_ossl("i2d_PKCS8_PRIV_KEY_INFO");
        return CKR_FUNCTION_FAILED;
    }
    *der = malloc((size_t)n);
    if (*der == NULL) {
        OPENSSL_clear_free(buf, (size_t)n);
        return CKR_HOST_MEMORY;
    }
    memcpy(*der, buf, (size_t)n);
    *len = (size_t)n;
    OPENSSL_clear_free(buf, (size_t)n);
    return CKR_OK;
}

/* The curve table row of an EC or raw key. */
static const pkey_curve_t *curve_of_pkey(EVP_PKEY *pkey, CK_KEY_TYPE *kt)
{
    char group[64];
    size_t glen = 0;

    if (EVP_PKEY_is_a(pkey, "EC")) {
        *kt = CKK_EC;
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
                                           group, sizeof(group), &glen) != 1) {
            return NULL;
        }
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(pkey_curves); i++) {
            const pkey_curve_t *cv = &pkey_curves[i];

            if (cv->kt != CKK_EC) {
                continue;
            }
            if (strcmp(cv->ossl, group) == 0) {
                return cv;
            }
            for (size_t j = 0; j < UTIL_ARRAY_SIZE(cv->names); j++) {
                if (cv->names[j] != NULL && strcmp(cv->names[j], group) == 0) {
                    return cv;
                }
            }
        }
        return NULL;
    }
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(pkey_curves); i++) {
        const pkey_curve_t *cv = &pkey_curves[i];

        if (cv->kt != CKK_EC && EVP_PKEY_is_a(pkey, cv->ossl)) {
            *kt = cv->kt;
            return cv;
        }
    }
    return NULL;
}

CK_RV cops_pkcs8_to_attrs(const uint8_t *der, size_t len, CK_KEY_TYPE *kt,
                          attr_list_t *l)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8;
    EVP_PKEY *pkey = NULL;
    const pkey_curve_t *cv;
    CK_RV rv = CKR_WRAPPED_KEY_INVALID;

    if (len == 0 || len > LONG_MAX) {
        return CKR_WRAPPED_KEY_INVALID;
    }
    p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    if (p8 == NULL || p != der + len) {
        ERR_clear_error();
        PKCS8_PRIV_KEY_INFO_free(p8);
        return CKR_WRAPPED_KEY_INVALID;
    }
    pkey = EVP_PKCS82PKEY_ex(p8, crypto_libctx(), NULL);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (pkey == NULL) {
        ERR_clear_error();
        return CKR_WRAPPED_KEY_INVALID;
    }
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        *kt = CKK_RSA;
        if (set_rsa_params(pkey, l, UTIL_ARRAY_SIZE(rsa_params)) != CKR_OK) {
            rv = CKR_WRAPPED_KEY_INVALID;
            goto out;
        }
    } else {
        cv = curve_of_pkey(pkey, kt);
        if (cv == NULL) {
            goto out;
        }
        if ((rv = attr_list_set(l, CKA_EC_PARAMS, cv->oid, cv->oid_len)) !=
            CKR_OK) {
            goto out;
        }
        if (cv->kt == CKK_EC) {
            rv = set_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, l, CKA_VALUE,
                              cv->out_len);
        } else {
            uint8_t sk[64];
            size_t skn = sizeof(sk);

            if (EVP_PKEY_get_raw_private_key(pkey, sk, &skn) != 1) {
                rv = CKR_WRAPPED_KEY_INVALID;
                goto out;
            }
            rv = attr_list_set(l, CKA_VALUE, sk, skn);
            crypto_wipe(sk, sizeof(sk));
        }
        if (rv != CKR_OK) {
            goto out;
        }
    }
    rv = set_spki(pkey, l);
out:
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    return rv;
}
