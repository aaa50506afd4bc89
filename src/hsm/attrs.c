/*
 * attrs.c - attribute lists and the attribute schema engine.
 *
 * Every object class and key type has a table of the attributes it may
 * carry. A row holds the attribute type, its flags (named after the
 * footnotes of the PKCS#11 attribute tables, 2.40 / 3.0 section 4.2), the
 * kind of value it takes, its default and an optional extra check. The
 * schema of an object is the concatenation of a few tables: the common
 * object attributes, the attributes of its class (and of keys in general)
 * and those of its key type. One engine applies a schema to create,
 * generate, unwrap, derive, copy and set.
 *
 * Choices this file makes where the specification leaves them to the token
 * (footnote 9, "token-specific default") are written next to the rows.
 */
#include "hsm/attrs.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/crypto/crypto.h"
#include "nimbus/pkcs11-vendor.h"

/* Fallbacks in case the vendor header loses one; same values. */
#ifndef CKA_NIMBUS_OWNER
#define CKA_NIMBUS_OWNER (CKA_VENDOR_DEFINED | 0x4E420001UL)
#endif
#ifndef CKA_NIMBUS_SHARED_USERS
#define CKA_NIMBUS_SHARED_USERS (CKA_VENDOR_DEFINED | 0x4E420002UL)
#endif
#ifndef CKA_NIMBUS_OBJECT_ID
#define CKA_NIMBUS_OBJECT_ID (CKA_VENDOR_DEFINED | 0x4E420003UL)
#endif

/* Every vendor attribute of ours lives in this block of 2^16 types. */
#define ATTR_NIMBUS_BLOCK (CKA_VENDOR_DEFINED | 0x4E420000UL)
#define ATTR_NIMBUS_MASK (~(CK_ATTRIBUTE_TYPE)0xFFFF)

/* Largest number of attributes a stored list may hold. */
#define ATTR_LIST_MAX (ATTR_TEMPLATE_MAX * 4)

/* ------------------------------------------------------------ flags */

/* The footnotes of the attribute tables (PKCS#11 2.40 / 3.0 sec. 4.2). */
#define ATTR_F_REQ_CREATE (1u << 1)    /* 1: must be given on create */
#define ATTR_F_NO_CREATE (1u << 2)     /* 2: must not be given on create */
#define ATTR_F_REQ_GENERATE (1u << 3)  /* 3: must be given on generate */
#define ATTR_F_NO_GENERATE (1u << 4)   /* 4: must not be given on generate */
#define ATTR_F_REQ_UNWRAP (1u << 5)    /* 5: must be given on unwrap */
#define ATTR_F_NO_UNWRAP (1u << 6)     /* 6: not on unwrap (nor derive) */
#define ATTR_F_SENSITIVE (1u << 7)     /* 7: hidden if sensitive/unextr. */
#define ATTR_F_MODIFIABLE (1u << 8)    /* 8: C_SetAttributeValue, copy */
#define ATTR_F_DEFAULT_TOKEN (1u << 9) /* 9: token-specific default */
#define ATTR_F_SO_TRUE_ONLY (1u << 10) /* 10: only the SO sets it TRUE */
#define ATTR_F_STICKY_TRUE (1u << 11)  /* 11: cannot change once TRUE */
#define ATTR_F_STICKY_FALSE (1u << 12) /* 12: cannot change once FALSE */
/* Our own. */
#define ATTR_F_TOKEN_SET (1u << 16) /* set by the token, never a template */
#define ATTR_F_SECRET (1u << 17)    /* sealed at rest */
#define ATTR_F_COPY_ONLY (1u << 18) /* C_CopyObject may change it */
#define ATTR_F_DERIVE_OK (1u << 19) /* NO_UNWRAP does not hold for derive */

/* Shorthands for the usual combinations. */
#define F_KEYPART                                                              \
    (ATTR_F_REQ_CREATE | ATTR_F_NO_GENERATE | ATTR_F_NO_UNWRAP |               \
     ATTR_F_SENSITIVE | ATTR_F_SECRET)
#define F_CRT                                                                  \
    (ATTR_F_NO_GENERATE | ATTR_F_NO_UNWRAP | ATTR_F_SENSITIVE | ATTR_F_SECRET)
#define F_USAGE (ATTR_F_MODIFIABLE | ATTR_F_DEFAULT_TOKEN)

/* ------------------------------------------------------------ rows */

typedef enum {
    AK_BOOL,      /* exactly sizeof(CK_BBOOL), 0 or 1 */
    AK_ULONG,     /* exactly sizeof(CK_ULONG) */
    AK_BYTES,     /* min..max bytes */
    AK_DATE,      /* empty or 8 digits YYYYMMDD */
    AK_MECH_LIST, /* a multiple of sizeof(CK_MECHANISM_TYPE) */
    AK_TEMPLATE,  /* CK_ATTRIBUTE[] in; stored as attr_list_serialize */
} attr_kind_t;

typedef enum {
    AD_NONE,   /* absent unless given */
    AD_FALSE,  /* CK_FALSE */
    AD_TRUE,   /* CK_TRUE */
    AD_ULONG,  /* the row's dval */
    AD_EMPTY,  /* an empty value */
    AD_ENGINE, /* computed by engine_default() */
} attr_default_t;

/* Extra check of one value; returns CKR_OK or CKR_ATTRIBUTE_VALUE_INVALID. */
typedef CK_RV (*attr_check_fn)(const uint8_t *v, size_t len);

typedef struct {
    CK_ATTRIBUTE_TYPE type;
    uint32_t flags;
    attr_kind_t kind;
    uint32_t min, max; /* AK_BYTES */
    attr_default_t dflt;
    CK_ULONG dval; /* AD_ULONG */
    attr_check_fn check;
} attr_row_t;

typedef struct {
    const attr_row_t *rows;
    size_t n;
} attr_table_t;

#define TABLE(t)                                                               \
    {                                                                          \
        (t), UTIL_ARRAY_SIZE(t)                                                \
    }

static CK_ULONG load_ulong(const uint8_t *v)
{
    CK_ULONG u;

    memcpy(&u, v, sizeof(u));
    return u;
}

/* ------------------------------------------------------------ checks */

static CK_RV check_class(const uint8_t *v, size_t len)
{
    (void)len;
    switch (load_ulong(v)) {
    case CKO_DATA:
    case CKO_CERTIFICATE:
    case CKO_PUBLIC_KEY:
    case CKO_PRIVATE_KEY:
    case CKO_SECRET_KEY:
        return CKR_OK;
    default:
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
}

static bool key_type_known(CK_KEY_TYPE kt)
{
    switch (kt) {
    case CKK_RSA:
    case CKK_EC:
    case CKK_EC_EDWARDS:
    case CKK_EC_MONTGOMERY:
    case CKK_AES:
    case CKK_GENERIC_SECRET:
    case CKK_DES3:
    case CKK_SHA_1_HMAC:
    case CKK_SHA224_HMAC:
    case CKK_SHA256_HMAC:
    case CKK_SHA384_HMAC:
    case CKK_SHA512_HMAC:
    case CKK_CHACHA20:
    case CKK_HKDF:
        return true;
    default:
        return false;
    }
}

static CK_RV check_key_type(const uint8_t *v, size_t len)
{
    (void)len;
    return key_type_known(load_ulong(v)) ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

static CK_RV check_cert_type(const uint8_t *v, size_t len)
{
    (void)len;
    return load_ulong(v) == CKC_X_509 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

/* CKA_CERTIFICATE_CATEGORY and CKA_JAVA_MIDP_SECURITY_DOMAIN: 0..3. */
static CK_RV check_0_to_3(const uint8_t *v, size_t len)
{
    (void)len;
    return load_ulong(v) <= 3 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

static CK_RV check_aes_value(const uint8_t *v, size_t len)
{
    (void)v;
    if (len == 16 || len == 24 || len == 32) {
        return CKR_OK;
    }
    return CKR_ATTRIBUTE_VALUE_INVALID;
}

static CK_RV check_aes_value_len(const uint8_t *v, size_t len)
{
    CK_ULONG n;

    (void)len;
    n = load_ulong(v);
    if (n == 16 || n == 24 || n == 32) {
        return CKR_OK;
    }
    return CKR_ATTRIBUTE_VALUE_INVALID;
}

static CK_RV check_chacha_value_len(const uint8_t *v, size_t len)
{
    (void)len;
    return load_ulong(v) == 32 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

static CK_RV check_secret_value_len(const uint8_t *v, size_t len)
{
    CK_ULONG n;

    (void)len;
    n = load_ulong(v);
    if (n >= 1 && n <= ATTR_VALUE_MAX) {
        return CKR_OK;
    }
    return CKR_ATTRIBUTE_VALUE_INVALID;
}

/* CKA_MODULUS_BITS: the mechanism table checks the real range later. */
static CK_RV check_modulus_bits(const uint8_t *v, size_t len)
{
    CK_ULONG n;

    (void)len;
    n = load_ulong(v);
    if (n >= 1 && n <= (CK_ULONG)ATTR_VALUE_MAX * 8) {
        return CKR_OK;
    }
    return CKR_ATTRIBUTE_VALUE_INVALID;
}

/*
 * DER definite length at in[0..len): on success *hdr is the number of length
 * bytes and *clen the content length. Minimal encoding only (DER).
 */
static bool der_length(const uint8_t *in, size_t len, size_t *hdr, size_t *clen)
{
    size_t nb, i, v = 0;

    if (len < 1) {
        return false;
    }
    if (in[0] < 0x80) {
        *hdr = 1;
        *clen = in[0];
        return true;
    }
    nb = in[0] & 0x7F;
    if (nb == 0 || nb > 3 || nb + 1 > len || in[1] == 0) {
        return false;
    }
    for (i = 0; i < nb; i++) {
        v = (v << 8) | in[1 + i];
    }
    if (v < 0x80) {
        return false; /* should have used the short form */
    }
    *hdr = 1 + nb;
    *clen = v;
    return true;
}

/* One complete DER TLV with the given tag spanning exactly in[0..len). */
static bool der_tlv_exact(const uint8_t *in, size_t len, uint8_t tag,
                          const uint8_t **content, size_t *clen)
{
    size_t hdr, n;

    if (len < 2 || in[0] != tag) {
        return false;
    }
    if (!der_length(in + 1, len - 1, &hdr, &n)) {
        return false;
    }
    if (n != len - 1 - hdr) {
        return false;
    }
    *content = in + 1 + hdr;
    *clen = n;
    return true;
}

/* CKA_EC_PARAMS: a named curve, as a DER OID or a DER PrintableString. */
static CK_RV check_ec_params(const uint8_t *v, size_t len)
{
    const uint8_t *c;
    size_t n, i;

    if (der_tlv_exact(v, len, 0x06, &c, &n)) {
        /* Sub-identifiers: the last byte ends one, none starts 0x80. */
        if (n == 0 || (c[n - 1] & 0x80) != 0) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        for (i = 0; i < n; i++) {
            if (c[i] == 0x80 && (i == 0 || (c[i - 1] & 0x80) == 0)) {
                return CKR_ATTRIBUTE_VALUE_INVALID;
            }
        }
        return CKR_OK;
    }
    if (der_tlv_exact(v, len, 0x13, &c, &n)) {
        if (n == 0) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        for (i = 0; i < n; i++) {
            /* The PrintableString alphabet (X.680). */
            uint8_t ch = c[i];
            bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                      (ch >= '0' && ch <= '9') || strchr(" '()+,-./:=?", ch);
            if (ch == 0 || !ok) {
                return CKR_ATTRIBUTE_VALUE_INVALID;
            }
        }
        return CKR_OK;
    }
    /* Explicit ECParameters (SEQUENCE { version 1, ... }) or implicitlyCA
     * (NULL): other ways to name a curve, but only named curves are
     * offered. */
    if ((der_tlv_exact(v, len, 0x30, &c, &n) && n > 3 && c[0] == 0x02 &&
         c[1] == 0x01 && c[2] == 0x01) ||
        (len == 2 && v[0] == 0x05 && v[1] == 0x00)) {
        return CKR_CURVE_NOT_SUPPORTED;
    }
    return CKR_ATTRIBUTE_VALUE_INVALID;
}

/* ------------------------------------------------------------ EC points */

/* Curves whose point size we know: the EC_PARAMS bytes and field size. */
typedef struct {
    const char *der; /* the whole DER EC_PARAMS */
    size_t der_len;
    size_t k; /* field bytes (Weierstrass) or raw key bytes (Ed/X) */
} attr_curve_t;

#define CURVE(s, k)                                                            \
    {                                                                          \
        s, sizeof(s) - 1, k                                                    \
    }

static const attr_curve_t attr_curves[] = {
    CURVE("\x06\x08\x2A\x86\x48\xCE\x3D\x03\x01\x01", 24),     /* P-192 */
    CURVE("\x06\x05\x2B\x81\x04\x00\x21", 28),                 /* P-224 */
    CURVE("\x06\x08\x2A\x86\x48\xCE\x3D\x03\x01\x07", 32),     /* P-256 */
    CURVE("\x06\x05\x2B\x81\x04\x00\x22", 48),                 /* P-384 */
    CURVE("\x06\x05\x2B\x81\x04\x00\x23", 66),                 /* P-521 */
    CURVE("\x06\x05\x2B\x81\x04\x00\x0A", 32),                 /* secp256k1 */
    CURVE("\x06\x09\x2B\x24\x03\x03\x02\x08\x01\x01\x07", 32), /* bp256r1 */
    CURVE("\x06\x09\x2B\x24\x03\x03\x02\x08\x01\x01\x0B", 48), /* bp384r1 */
    CURVE("\x06\x09\x2B\x24\x03\x03\x02\x08\x01\x01\x0D", 64), /* bp512r1 */
    CURVE("\x06\x03\x2B\x65\x70", 32),                         /* Ed25519 */
    CURVE("\x06\x03\x2B\x65\x71", 57),                         /* Ed448 */
    CURVE("\x06\x03\x2B\x65\x6E", 32),                         /* X25519 */
    CURVE("\x06\x03\x2B\x65\x6F", 56),                         /* X448 */
    CURVE("\x13\x0C"
          "edwards25519",
          32),
    CURVE("\x13\x0A"
          "edwards448",
          57),
    CURVE("\x13\x0A"
          "curve25519",
          32),
    CURVE("\x13\x08"
          "curve448",
          56),
};

/* Field (or raw key) size of the curve params name; 0 when unknown. */
static size_t curve_size(const uint8_t *params, size_t len)
{
    size_t i;

    if (params == NULL) {
        return 0;
    }
    for (i = 0; i < UTIL_ARRAY_SIZE(attr_curves); i++) {
        if (attr_curves[i].der_len == len &&
            memcmp(attr_curves[i].der, params, len) == 0) {
            return attr_curves[i].k;
        }
    }
    return 0;
}

/*
 * Whether p[0..n) is a well-formed raw public point for the key type; k is
 * the curve's size when known (exact lengths), else 0 (shape only).
 */
static bool point_ok(CK_KEY_TYPE kt, size_t k, const uint8_t *p, size_t n)
{
    if (kt == CKK_EC_EDWARDS) {
        return k != 0 ? n == k : (n == 32 || n == 57);
    }
    if (kt == CKK_EC_MONTGOMERY) {
        return k != 0 ? n == k : (n == 32 || n == 56);
    }
    if (n < 2) {
        return false;
    }
    if (p[0] == 0x04) {
        return k != 0 ? n == 1 + 2 * k : (n >= 3 && n % 2 == 1);
    }
    if (p[0] == 0x02 || p[0] == 0x03) {
        return k != 0 ? n == 1 + k : true;
    }
    return false;
}

/*
 * CKA_EC_POINT is stored as the DER OCTET STRING holding the point (what
 * the specification asks for). Applications also hand in the raw point.
 * The input is taken as DER when it is exactly one OCTET STRING whose
 * content is a well-formed point, else as a raw point when it is one, else
 * it is refused. When the curve is known the lengths are exact, and the two
 * forms of one curve never have the same length (raw 1+2k or 1+k, DER 2
 * or 3 bytes more), so there is no ambiguity; for an unknown curve a raw
 * point that happens to parse as DER is kept as DER.
 */
static CK_RV ec_point_normalize(CK_KEY_TYPE kt, const uint8_t *params,
                                size_t params_len, const uint8_t *in,
                                size_t len, uint8_t **out, size_t *out_len)
{
    size_t k = curve_size(params, params_len);
    const uint8_t *c;
    size_t n, hdr;
    uint8_t *buf;

    if (der_tlv_exact(in, len, 0x04, &c, &n) && point_ok(kt, k, c, n)) {
        /* Already the DER form: kept as is. */
        buf = malloc(len);
        if (buf == NULL) {
            return CKR_HOST_MEMORY;
        }
        memcpy(buf, in, len);
        *out = buf;
        *out_len = len;
        return CKR_OK;
    }
    if (!point_ok(kt, k, in, len) || len > 0xFFFF) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    hdr = len < 0x80 ? 2 : (len < 0x100 ? 3 : 4);
    buf = malloc(hdr + len);
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    buf[0] = 0x04;
    if (hdr == 2) {
        buf[1] = (uint8_t)len;
    } else if (hdr == 3) {
        buf[1] = 0x81;
        buf[2] = (uint8_t)len;
    } else {
        buf[1] = 0x82;
        buf[2] = (uint8_t)(len >> 8);
        buf[3] = (uint8_t)len;
    }
    memcpy(buf + hdr, in, len);
    *out = buf;
    *out_len = hdr + len;
    return CKR_OK;
}

/* ------------------------------------------------------------ tables */

#define R_BOOL(t, f, d)                                                        \
    {                                                                          \
        (t), (f), AK_BOOL, 0, 0, (d), 0, NULL                                  \
    }
#define R_ULONG(t, f, d, v, c)                                                 \
    {                                                                          \
        (t), (f), AK_ULONG, 0, 0, (d), (v), (c)                                \
    }
#define R_BYTES(t, f, lo, hi, d, c)                                            \
    {                                                                          \
        (t), (f), AK_BYTES, (lo), (hi), (d), 0, (c)                            \
    }
#define R_TEMPLATE(t)                                                          \
    {                                                                          \
        (t), 0, AK_TEMPLATE, 0, 0, AD_NONE, 0, NULL                            \
    }
#define R_DATE(t, f)                                                           \
    {                                                                          \
        (t), (f), AK_DATE, 0, 0, AD_EMPTY, 0, NULL                             \
    }

/*
 * Every object. CKA_PRIVATE's default depends on the class (our
 * token-specific choice): TRUE for private keys, secret keys and data
 * objects, FALSE for public keys and certificates, so that a public
 * session can find certificates and public keys as applications expect
 * while nothing secret is readable without a login.
 *
 * C_CopyObject may change CKA_TOKEN, CKA_PRIVATE (FALSE to TRUE only: a
 * copy must not publish a private data object), CKA_MODIFIABLE (TRUE to
 * FALSE only) and CKA_DESTROYABLE. CKA_COPYABLE can go TRUE to FALSE.
 */
static const attr_row_t t_common[] = {
    R_ULONG(CKA_CLASS, ATTR_F_REQ_CREATE | ATTR_F_REQ_UNWRAP, AD_ENGINE, 0,
            check_class),
    R_BOOL(CKA_TOKEN, ATTR_F_COPY_ONLY, AD_FALSE),
    R_BOOL(CKA_PRIVATE,
           ATTR_F_COPY_ONLY | ATTR_F_STICKY_TRUE | ATTR_F_DEFAULT_TOKEN,
           AD_ENGINE),
    R_BOOL(CKA_MODIFIABLE, ATTR_F_COPY_ONLY | ATTR_F_STICKY_FALSE, AD_TRUE),
    R_BYTES(CKA_LABEL, ATTR_F_MODIFIABLE, 0, ATTR_VALUE_MAX, AD_EMPTY, NULL),
    R_BOOL(CKA_COPYABLE, ATTR_F_MODIFIABLE | ATTR_F_STICKY_FALSE, AD_TRUE),
    R_BOOL(CKA_DESTROYABLE, ATTR_F_COPY_ONLY, AD_TRUE),
    R_BYTES(CKA_UNIQUE_ID, ATTR_F_TOKEN_SET, 0, ATTR_VALUE_MAX, AD_NONE, NULL),
};

/* Data objects: we let C_SetAttributeValue change all three (as SoftHSM). */
static const attr_row_t t_data[] = {
    R_BYTES(CKA_APPLICATION, ATTR_F_MODIFIABLE, 0, ATTR_VALUE_MAX, AD_EMPTY,
            NULL),
    R_BYTES(CKA_OBJECT_ID, ATTR_F_MODIFIABLE, 0, ATTR_VALUE_MAX, AD_EMPTY,
            NULL),
    R_BYTES(CKA_VALUE, ATTR_F_MODIFIABLE, 0, ATTR_VALUE_MAX, AD_EMPTY, NULL),
};

static const attr_row_t t_cert[] = {
    R_ULONG(CKA_CERTIFICATE_TYPE, ATTR_F_REQ_CREATE, AD_NONE, 0,
            check_cert_type),
    R_BOOL(CKA_TRUSTED, ATTR_F_SO_TRUE_ONLY, AD_FALSE),
    R_ULONG(CKA_CERTIFICATE_CATEGORY, ATTR_F_DEFAULT_TOKEN, AD_ULONG, 0,
            check_0_to_3),
    /* CKA_CHECK_VALUE is left absent: the core computes it. */
    R_BYTES(CKA_CHECK_VALUE, 0, 0, 3, AD_NONE, NULL),
    R_DATE(CKA_START_DATE, 0),
    R_DATE(CKA_END_DATE, 0),
    R_BYTES(CKA_PUBLIC_KEY_INFO, 0, 0, ATTR_VALUE_MAX, AD_EMPTY, NULL),
};

/* X.509: only CKA_ID (and the label) may change; the content is fixed. */
static const attr_row_t t_x509[] = {
    R_BYTES(CKA_SUBJECT, ATTR_F_REQ_CREATE, 0, ATTR_VALUE_MAX, AD_NONE, NULL),
    R_BYTES(CKA_ID, ATTR_F_MODIFIABLE, 0, ATTR_VALUE_MAX, AD_EMPTY, NULL),
    R_BYTES(CKA_ISSUER, 0, 0, ATTR_VALUE_MAX, AD_EMPTY, NULL),
    R_BYTES(CKA_SERIAL_NUMBER, 0, 0, ATTR_VALUE_MAX, AD_EMPTY, NULL),
    R_BYTES(CKA_VALUE, ATTR_F_REQ_CREATE, 1, ATTR_VALUE_MAX, AD_NONE, NULL),
    R_BYTES(CKA_URL, 0, 0, ATTR_VALUE_MAX, AD_EMPTY, NULL),
    R_BYTES(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, 0, 0, ATTR_VALUE_MAX, AD_EMPTY,
            NULL),
    R_BYTES(CKA_HASH_OF_ISSUER_PUBLIC_KEY, 0, 0, ATTR_VALUE_MAX, AD_EMPTY,
            NULL),
    R_ULONG(CKA_JAVA_MIDP_SECURITY_DOMAIN, 0, AD_ULONG, 0, check_0_to_3),
    R_ULONG(CKA_NAME_HASH_ALGORITHM, 0, AD_ULONG, CKM_SHA_1, NULL),
};

/*
 * Every key. CKA_KEY_GEN_MECHANISM is CK_UNAVAILABLE_INFORMATION unless the
 * core sets the generating mechanism; CKA_LOCAL is TRUE only on generate.
 */
static const attr_row_t t_key[] = {
    R_ULONG(CKA_KEY_TYPE, ATTR_F_REQ_CREATE | ATTR_F_REQ_UNWRAP, AD_ENGINE, 0,
            check_key_type),
    R_BYTES(CKA_ID, ATTR_F_MODIFIABLE, 0, ATTR_VALUE_MAX, AD_EMPTY, NULL),
    R_DATE(CKA_START_DATE, ATTR_F_MODIFIABLE),
    R_DATE(CKA_END_DATE, ATTR_F_MODIFIABLE),
    R_BOOL(CKA_LOCAL, ATTR_F_TOKEN_SET, AD_ENGINE),
    R_ULONG(CKA_KEY_GEN_MECHANISM, ATTR_F_TOKEN_SET, AD_ULONG,
            CK_UNAVAILABLE_INFORMATION, NULL),
    {CKA_ALLOWED_MECHANISMS, 0, AK_MECH_LIST, 0, ATTR_VALUE_MAX, AD_EMPTY, 0,
     NULL},
};

/*
 * Usage flags (footnote 9) default TRUE for what the class can do, so that
 * a key made without naming CKA_SIGN signs, as with most tokens; the
 * "recover" flags default FALSE. CKA_DERIVE defaults FALSE, as the common
 * key attributes table says. CKA_SENSITIVE defaults TRUE (a secure
 * default; the secret key table says FALSE), CKA_EXTRACTABLE TRUE
 * (wrapping works, as on cloud HSMs). A secret key's wrap/unwrap and
 * encrypt/decrypt defaults follow key separation (engine_default):
 * CKA_WRAP and CKA_UNWRAP only when asked.
 */
static const attr_row_t t_public[] = {
    R_BYTES(CKA_SUBJECT, ATTR_F_MODIFIABLE, 0, ATTR_VALUE_MAX, AD_EMPTY, NULL),
    R_BOOL(CKA_ENCRYPT, F_USAGE, AD_TRUE),
    R_BOOL(CKA_VERIFY, F_USAGE, AD_TRUE),
    R_BOOL(CKA_VERIFY_RECOVER, F_USAGE, AD_FALSE),
    R_BOOL(CKA_WRAP, F_USAGE, AD_TRUE),
    R_BOOL(CKA_DERIVE, F_USAGE, AD_FALSE),
    R_BOOL(CKA_TRUSTED, ATTR_F_SO_TRUE_ONLY, AD_FALSE),
    R_BYTES(CKA_PUBLIC_KEY_INFO, 0, 0, ATTR_VALUE_MAX, AD_EMPTY, NULL),
    R_TEMPLATE(CKA_WRAP_TEMPLATE),
};

static const attr_row_t t_private[] = {
    R_BYTES(CKA_SUBJECT, ATTR_F_MODIFIABLE, 0, ATTR_VALUE_MAX, AD_EMPTY, NULL),
    R_BOOL(CKA_SENSITIVE,
           ATTR_F_MODIFIABLE | ATTR_F_DEFAULT_TOKEN | ATTR_F_STICKY_TRUE,
           AD_TRUE),
    R_BOOL(CKA_DECRYPT, F_USAGE, AD_TRUE),
    R_BOOL(CKA_SIGN, F_USAGE, AD_TRUE),
    R_BOOL(CKA_SIGN_RECOVER, F_USAGE, AD_FALSE),
    R_BOOL(CKA_UNWRAP, F_USAGE, AD_TRUE),
    R_BOOL(CKA_DERIVE, F_USAGE, AD_FALSE),
    R_BOOL(CKA_EXTRACTABLE,
           ATTR_F_MODIFIABLE | ATTR_F_DEFAULT_TOKEN | ATTR_F_STICKY_FALSE,
           AD_TRUE),
    R_BOOL(CKA_ALWAYS_SENSITIVE, ATTR_F_TOKEN_SET, AD_ENGINE),
    R_BOOL(CKA_NEVER_EXTRACTABLE, ATTR_F_TOKEN_SET, AD_ENGINE),
    R_BOOL(CKA_WRAP_WITH_TRUSTED,
           ATTR_F_MODIFIABLE | ATTR_F_DEFAULT_TOKEN | ATTR_F_STICKY_TRUE,
           AD_FALSE),
    R_BOOL(CKA_ALWAYS_AUTHENTICATE, 0, AD_FALSE),
    R_BYTES(CKA_PUBLIC_KEY_INFO, 0, 0, ATTR_VALUE_MAX, AD_EMPTY, NULL),
    R_TEMPLATE(CKA_UNWRAP_TEMPLATE),
    R_TEMPLATE(CKA_DERIVE_TEMPLATE),
};

static const attr_row_t t_secret[] = {
    R_BOOL(CKA_SENSITIVE,
           ATTR_F_MODIFIABLE | ATTR_F_DEFAULT_TOKEN | ATTR_F_STICKY_TRUE,
           AD_TRUE),
    R_BOOL(CKA_ENCRYPT, F_USAGE, AD_ENGINE),
    R_BOOL(CKA_DECRYPT, F_USAGE, AD_ENGINE),
    R_BOOL(CKA_SIGN, F_USAGE, AD_TRUE),
    R_BOOL(CKA_VERIFY, F_USAGE, AD_TRUE),
    R_BOOL(CKA_WRAP, F_USAGE, AD_ENGINE),
    R_BOOL(CKA_UNWRAP, F_USAGE, AD_ENGINE),
    R_BOOL(CKA_DERIVE, F_USAGE, AD_FALSE),
    R_BOOL(CKA_EXTRACTABLE,
           ATTR_F_MODIFIABLE | ATTR_F_DEFAULT_TOKEN | ATTR_F_STICKY_FALSE,
           AD_TRUE),
    R_BOOL(CKA_ALWAYS_SENSITIVE, ATTR_F_TOKEN_SET, AD_ENGINE),
    R_BOOL(CKA_NEVER_EXTRACTABLE, ATTR_F_TOKEN_SET, AD_ENGINE),
    R_BYTES(CKA_CHECK_VALUE, 0, 0, 3, AD_NONE, NULL),
    R_BOOL(CKA_WRAP_WITH_TRUSTED,
           ATTR_F_MODIFIABLE | ATTR_F_DEFAULT_TOKEN | ATTR_F_STICKY_TRUE,
           AD_FALSE),
    R_BOOL(CKA_TRUSTED, ATTR_F_SO_TRUE_ONLY, AD_FALSE),
    R_TEMPLATE(CKA_WRAP_TEMPLATE),
    R_TEMPLATE(CKA_UNWRAP_TEMPLATE),
    R_TEMPLATE(CKA_DERIVE_TEMPLATE),
};

static const attr_row_t t_rsa_public[] = {
    R_BYTES(CKA_MODULUS, ATTR_F_REQ_CREATE | ATTR_F_NO_GENERATE, 1,
            ATTR_VALUE_MAX, AD_NONE, NULL),
    /* Set by the engine from CKA_MODULUS on create. */
    R_ULONG(CKA_MODULUS_BITS, ATTR_F_NO_CREATE | ATTR_F_REQ_GENERATE, AD_ENGINE,
            0, check_modulus_bits),
    R_BYTES(CKA_PUBLIC_EXPONENT, ATTR_F_REQ_CREATE, 1, ATTR_VALUE_MAX, AD_NONE,
            NULL),
};

static const attr_row_t t_rsa_private[] = {
    R_BYTES(CKA_MODULUS,
            ATTR_F_REQ_CREATE | ATTR_F_NO_GENERATE | ATTR_F_NO_UNWRAP, 1,
            ATTR_VALUE_MAX, AD_NONE, NULL),
    R_BYTES(CKA_PUBLIC_EXPONENT, ATTR_F_NO_GENERATE | ATTR_F_NO_UNWRAP, 1,
            ATTR_VALUE_MAX, AD_NONE, NULL),
    R_BYTES(CKA_PRIVATE_EXPONENT, F_KEYPART, 1, ATTR_VALUE_MAX, AD_NONE, NULL),
    R_BYTES(CKA_PRIME_1, F_CRT, 1, ATTR_VALUE_MAX, AD_NONE, NULL),
    R_BYTES(CKA_PRIME_2, F_CRT, 1, ATTR_VALUE_MAX, AD_NONE, NULL),
    R_BYTES(CKA_EXPONENT_1, F_CRT, 1, ATTR_VALUE_MAX, AD_NONE, NULL),
    R_BYTES(CKA_EXPONENT_2, F_CRT, 1, ATTR_VALUE_MAX, AD_NONE, NULL),
    R_BYTES(CKA_COEFFICIENT, F_CRT, 1, ATTR_VALUE_MAX, AD_NONE, NULL),
};

/* EC, Edwards and Montgomery keys share these. CKA_EC_POINT is normalized
 * by the engine (ec_point_normalize), which needs the key type. */
static const attr_row_t t_ec_public[] = {
    R_BYTES(CKA_EC_PARAMS, ATTR_F_REQ_CREATE | ATTR_F_REQ_GENERATE, 1,
            ATTR_VALUE_MAX, AD_NONE, check_ec_params),
    R_BYTES(CKA_EC_POINT, ATTR_F_REQ_CREATE | ATTR_F_NO_GENERATE, 1,
            ATTR_VALUE_MAX, AD_NONE, NULL),
};

static const attr_row_t t_ec_private[] = {
    R_BYTES(CKA_EC_PARAMS,
            ATTR_F_REQ_CREATE | ATTR_F_NO_GENERATE | ATTR_F_NO_UNWRAP, 1,
            ATTR_VALUE_MAX, AD_NONE, check_ec_params),
    R_BYTES(CKA_VALUE, F_KEYPART, 1, ATTR_VALUE_MAX, AD_NONE, NULL),
};

/*
 * Secret keys. CKA_VALUE_LEN is set by the engine from CKA_VALUE on create
 * so that it is readable. Footnote 6 keeps it out of unwrap templates, but
 * the AES-ECB and AES-CBC unwrap of the mechanism section truncates the
 * decrypted value to the template's CKA_VALUE_LEN (the zero padding of a
 * key that is not a whole number of blocks), so it is allowed on unwrap;
 * C_DeriveKey needs it to know how long the new key is.
 */
static const attr_row_t t_aes[] = {
    R_BYTES(CKA_VALUE, F_KEYPART, 16, 32, AD_NONE, check_aes_value),
    R_ULONG(CKA_VALUE_LEN,
            ATTR_F_NO_CREATE | ATTR_F_REQ_GENERATE | ATTR_F_DERIVE_OK,
            AD_ENGINE, 0, check_aes_value_len),
};

static const attr_row_t t_generic[] = {
    R_BYTES(CKA_VALUE, F_KEYPART, 1, ATTR_VALUE_MAX, AD_NONE, NULL),
    R_ULONG(CKA_VALUE_LEN,
            ATTR_F_NO_CREATE | ATTR_F_REQ_GENERATE | ATTR_F_DERIVE_OK,
            AD_ENGINE, 0, check_secret_value_len),
};

/* ChaCha20: 256-bit keys; CKA_VALUE_LEN may be given (32) or left out. */
static const attr_row_t t_chacha20[] = {
    R_BYTES(CKA_VALUE, F_KEYPART, 32, 32, AD_NONE, NULL),
    R_ULONG(CKA_VALUE_LEN, ATTR_F_NO_CREATE | ATTR_F_DERIVE_OK, AD_ENGINE, 0,
            check_chacha_value_len),
};

/* DES3: the length is fixed, so CKA_VALUE_LEN is the token's alone. */
static const attr_row_t t_des3[] = {
    R_BYTES(CKA_VALUE, F_KEYPART, 24, 24, AD_NONE, NULL),
    R_ULONG(CKA_VALUE_LEN, ATTR_F_TOKEN_SET, AD_ENGINE, 0, NULL),
};

/* The schema of one (class, key type): the tables in lookup order. */
typedef struct {
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE kt;
    attr_table_t t[4];
    size_t n;
} attr_schema_t;

static bool is_key_class(CK_OBJECT_CLASS cls)
{
    return cls == CKO_PUBLIC_KEY || cls == CKO_PRIVATE_KEY ||
           cls == CKO_SECRET_KEY;
}

static bool is_ec_family(CK_KEY_TYPE kt)
{
    return kt == CKK_EC || kt == CKK_EC_EDWARDS || kt == CKK_EC_MONTGOMERY;
}

/*
 * Fills s for (cls, kt). CKR_ATTRIBUTE_VALUE_INVALID for an unsupported
 * class, CKR_TEMPLATE_INCONSISTENT for a key type the class cannot have.
 */
static CK_RV schema_get(CK_OBJECT_CLASS cls, CK_KEY_TYPE kt, attr_schema_t *s)
{
    static const attr_table_t common = TABLE(t_common);
    static const attr_table_t key = TABLE(t_key);
    bool asym = kt == CKK_RSA || is_ec_family(kt);

    memset(s, 0, sizeof(*s));
    s->cls = cls;
    s->kt = kt;
    s->t[s->n++] = common;
    switch (cls) {
    case CKO_DATA:
        s->t[s->n++] = (attr_table_t)TABLE(t_data);
        return CKR_OK;
    case CKO_CERTIFICATE:
        s->t[s->n++] = (attr_table_t)TABLE(t_cert);
        s->t[s->n++] = (attr_table_t)TABLE(t_x509);
        return CKR_OK;
    case CKO_PUBLIC_KEY:
    case CKO_PRIVATE_KEY:
    case CKO_SECRET_KEY:
        break;
    default:
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    if (!key_type_known(kt)) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    if ((cls == CKO_SECRET_KEY) == asym) {
        return CKR_TEMPLATE_INCONSISTENT;
    }
    s->t[s->n++] = key;
    if (cls == CKO_PUBLIC_KEY) {
        s->t[s->n++] = (attr_table_t)TABLE(t_public);
        if (kt == CKK_RSA) {
            s->t[s->n++] = (attr_table_t)TABLE(t_rsa_public);
        } else {
            s->t[s->n++] = (attr_table_t)TABLE(t_ec_public);
        }
    } else if (cls == CKO_PRIVATE_KEY) {
        s->t[s->n++] = (attr_table_t)TABLE(t_private);
        if (kt == CKK_RSA) {
            s->t[s->n++] = (attr_table_t)TABLE(t_rsa_private);
        } else {
            s->t[s->n++] = (attr_table_t)TABLE(t_ec_private);
        }
    } else {
        s->t[s->n++] = (attr_table_t)TABLE(t_secret);
        if (kt == CKK_AES) {
            s->t[s->n++] = (attr_table_t)TABLE(t_aes);
        } else if (kt == CKK_DES3) {
            s->t[s->n++] = (attr_table_t)TABLE(t_des3);
        } else if (kt == CKK_CHACHA20) {
            s->t[s->n++] = (attr_table_t)TABLE(t_chacha20);
        } else {
            s->t[s->n++] = (attr_table_t)TABLE(t_generic);
        }
    }
    return CKR_OK;
}

static const attr_row_t *schema_find(const attr_schema_t *s,
                                     CK_ATTRIBUTE_TYPE type)
{
    size_t i, j;

    for (i = 0; i < s->n; i++) {
        for (j = 0; j < s->t[i].n; j++) {
            if (s->t[i].rows[j].type == type) {
                return &s->t[i].rows[j];
            }
        }
    }
    return NULL;
}

/* CKA_NIMBUS_OWNER, CKA_NIMBUS_SHARED_USERS, CKA_NIMBUS_OBJECT_ID and any
 * later one of ours: all read-only, kept by the core outside the list. */
static bool is_vendor_attr(CK_ATTRIBUTE_TYPE type)
{
    return (type & ATTR_NIMBUS_MASK) == ATTR_NIMBUS_BLOCK;
}

/*
 * Error for a type the schema does not have. Our vendor attributes (owner,
 * shared users, object id) are the token's: a template that names one is
 * CKR_ATTRIBUTE_READ_ONLY.
 */
static CK_RV unknown_type_rv(CK_ATTRIBUTE_TYPE type)
{
    if (is_vendor_attr(type)) {
        return CKR_ATTRIBUTE_READ_ONLY;
    }
    return CKR_ATTRIBUTE_TYPE_INVALID;
}

/* ------------------------------------------------------------ values */

static bool same_value(const void *a, size_t alen, const void *b, size_t blen);

static bool is_template_type(CK_ATTRIBUTE_TYPE t)
{
    return t == CKA_WRAP_TEMPLATE || t == CKA_UNWRAP_TEMPLATE ||
           t == CKA_DERIVE_TEMPLATE;
}

/*
 * CKA_WRAP_TEMPLATE & co arrive as the serialized list hsm_object_get gives
 * (the front end converts its caller's CK_ATTRIBUTE array; a remote client
 * sends the bytes itself, so nothing in them is trusted): well formed, types
 * ascending, at most ATTR_TEMPLATE_MAX attributes, none itself a template
 * or one of our vendor attributes, each value within ATTR_VALUE_MAX.
 * *out (may be NULL) gets the parsed list.
 */
static CK_RV template_parse(const void *blob, size_t len, attr_list_t *out)
{
    attr_list_t t = {NULL, 0, 0};
    CK_RV rv;

    if (len > ATTR_VALUE_MAX || (len > 0 && blob == NULL)) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    if (len == 0) {
        return CKR_OK; /* an empty template */
    }
    rv = attr_list_deserialize(blob, len, &t);
    if (rv == CKR_HOST_MEMORY) {
        return rv;
    }
    if (rv != CKR_OK || t.n > ATTR_TEMPLATE_MAX) {
        attr_list_free(&t);
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    for (size_t i = 0; i < t.n; i++) {
        if (is_template_type(t.v[i].type) || is_vendor_attr(t.v[i].type) ||
            t.v[i].len > ATTR_VALUE_MAX) {
            attr_list_free(&t);
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
    }
    if (out != NULL) {
        *out = t;
    } else {
        attr_list_free(&t);
    }
    return CKR_OK;
}

static CK_RV check_template(const CK_ATTRIBUTE *a)
{
    return template_parse(a->pValue, a->ulValueLen, NULL);
}

/* The stored form of a template attribute: its list, serialized again
 * (what is stored is always the token's own canonical bytes). */
static CK_RV template_store(const CK_ATTRIBUTE *a, attr_list_t *l)
{
    attr_list_t t = {NULL, 0, 0};
    uint8_t *blob = NULL;
    size_t bloblen = 0;
    CK_RV rv;

    rv = template_parse(a->pValue, a->ulValueLen, &t);
    if (rv == CKR_OK) {
        rv = attr_list_serialize(&t, &blob, &bloblen);
    }
    if (rv == CKR_OK) {
        rv = attr_list_set(l, a->type, blob, bloblen);
    }
    util_free_wipe(blob, bloblen);
    attr_list_free(&t);
    return rv;
}

static CK_RV check_value(const attr_row_t *row, const CK_ATTRIBUTE *a)
{
    const uint8_t *v = a->pValue;
    size_t len = a->ulValueLen;
    size_t i;

    if (len > ATTR_VALUE_MAX || (len > 0 && v == NULL)) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    switch (row->kind) {
    case AK_BOOL:
        if (len != sizeof(CK_BBOOL) || (v[0] != CK_FALSE && v[0] != CK_TRUE)) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        break;
    case AK_ULONG:
        if (len != sizeof(CK_ULONG)) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        break;
    case AK_BYTES:
        if (len < row->min || len > row->max) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        break;
    case AK_DATE:
        if (len != 0 && len != sizeof(CK_DATE)) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        for (i = 0; i < len; i++) {
            if (v[i] < '0' || v[i] > '9') {
                return CKR_ATTRIBUTE_VALUE_INVALID;
            }
        }
        break;
    case AK_MECH_LIST:
        if (len % sizeof(CK_MECHANISM_TYPE) != 0) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        break;
    case AK_TEMPLATE:
        return check_template(a);
    }
    if (row->check != NULL) {
        return row->check(v, len);
    }
    return CKR_OK;
}

static bool attr_is_true(const CK_ATTRIBUTE *a)
{
    return a->ulValueLen == sizeof(CK_BBOOL) &&
           *(const CK_BBOOL *)a->pValue == CK_TRUE;
}

static bool same_value(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* ------------------------------------------------------------ lists */

static size_t list_lower_bound(const attr_list_t *l, CK_ATTRIBUTE_TYPE type)
{
    size_t lo = 0, hi = l->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid].type < type) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

void attr_list_free(attr_list_t *l)
{
    size_t i;

    if (l == NULL) {
        return;
    }
    for (i = 0; i < l->n; i++) {
        crypto_secret_free_any(l->v[i].value, l->v[i].len);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
    l->cap = 0;
}

const attr_t *attr_list_find(const attr_list_t *l, CK_ATTRIBUTE_TYPE type)
{
    size_t i;

    return_val_if_fail(l != NULL, NULL);
    i = list_lower_bound(l, type);
    if (i < l->n && l->v[i].type == type) {
        return &l->v[i];
    }
    return NULL;
}

CK_RV attr_list_set(attr_list_t *l, CK_ATTRIBUTE_TYPE type, const void *value,
                    size_t len)
{
    uint8_t *copy = NULL;
    size_t i;

    return_val_if_fail(l != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(len == 0 || value != NULL, CKR_GENERAL_ERROR);
    if (len > ATTR_VALUE_MAX) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    if (len > 0) {
        copy = malloc(len);
        if (copy == NULL) {
            return CKR_HOST_MEMORY;
        }
        memcpy(copy, value, len);
    }
    i = list_lower_bound(l, type);
    if (i < l->n && l->v[i].type == type) {
        crypto_secret_free_any(l->v[i].value, l->v[i].len);
        l->v[i].value = copy;
        l->v[i].len = len;
        return CKR_OK;
    }
    if (l->n >= ATTR_LIST_MAX) {
        util_free_wipe(copy, len);
        return CKR_GENERAL_ERROR;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap == 0 ? 16 : l->cap * 2;
        attr_t *nv = realloc(l->v, cap * sizeof(*nv));
        if (nv == NULL) {
            util_free_wipe(copy, len);
            return CKR_HOST_MEMORY;
        }
        l->v = nv;
        l->cap = cap;
    }
    memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof(l->v[0]));
    l->v[i].type = type;
    l->v[i].value = copy;
    l->v[i].len = len;
    l->n++;
    return CKR_OK;
}

CK_RV attr_list_set_bool(attr_list_t *l, CK_ATTRIBUTE_TYPE type, bool v)
{
    CK_BBOOL b = v ? CK_TRUE : CK_FALSE;

    return attr_list_set(l, type, &b, sizeof(b));
}

CK_RV attr_list_set_ulong(attr_list_t *l, CK_ATTRIBUTE_TYPE type, CK_ULONG v)
{
    return attr_list_set(l, type, &v, sizeof(v));
}

void attr_list_remove(attr_list_t *l, CK_ATTRIBUTE_TYPE type)
{
    size_t i;

    if (l == NULL) {
        return;
    }
    i = list_lower_bound(l, type);
    if (i >= l->n || l->v[i].type != type) {
        return;
    }
    crypto_secret_free_any(l->v[i].value, l->v[i].len);
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
    l->n--;
}

bool attr_list_bool(const attr_list_t *l, CK_ATTRIBUTE_TYPE type, bool dflt)
{
    const attr_t *a = attr_list_find(l, type);

    if (a == NULL || a->len != sizeof(CK_BBOOL)) {
        return dflt;
    }
    if (a->value[0] == CK_TRUE) {
        return true;
    }
    if (a->value[0] == CK_FALSE) {
        return false;
    }
    return dflt;
}

CK_ULONG attr_list_ulong(const attr_list_t *l, CK_ATTRIBUTE_TYPE type,
                         CK_ULONG dflt)
{
    const attr_t *a = attr_list_find(l, type);

    if (a == NULL || a->len != sizeof(CK_ULONG)) {
        return dflt;
    }
    return load_ulong(a->value);
}

CK_RV attr_list_dup(const attr_list_t *src, attr_list_t *dst)
{
    attr_list_t out = {NULL, 0, 0};
    size_t i;

    return_val_if_fail(src != NULL && dst != NULL, CKR_GENERAL_ERROR);
    *dst = out;
    if (src->n == 0) {
        return CKR_OK;
    }
    out.v = calloc(src->n, sizeof(*out.v));
    if (out.v == NULL) {
        return CKR_HOST_MEMORY;
    }
    out.cap = src->n;
    for (i = 0; i < src->n; i++) {
        out.v[i].type = src->v[i].type;
        if (src->v[i].len > 0) {
            /* A secret stays in secret memory in the copy. */
            out.v[i].value = crypto_secret_owns(src->v[i].value)
                                 ? crypto_secret_alloc(src->v[i].len)
                                 : malloc(src->v[i].len);
            if (out.v[i].value == NULL) {
                attr_list_free(&out);
                return CKR_HOST_MEMORY;
            }
            memcpy(out.v[i].value, src->v[i].value, src->v[i].len);
            out.v[i].len = src->v[i].len;
        }
        out.n = i + 1;
    }
    *dst = out;
    return CKR_OK;
}

/* ------------------------------------------------------------ storage */

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

CK_RV attr_list_serialize(const attr_list_t *l, uint8_t **out, size_t *len)
{
    size_t total = 4, i, off;
    uint8_t *buf;

    return_val_if_fail(l != NULL && out != NULL && len != NULL,
                       CKR_GENERAL_ERROR);
    *out = NULL;
    *len = 0;
    return_val_if_fail(l->n <= ATTR_LIST_MAX, CKR_GENERAL_ERROR);
    for (i = 0; i < l->n; i++) {
        return_val_if_fail(l->v[i].len <= ATTR_STORED_MAX, CKR_GENERAL_ERROR);
        total += 12 + l->v[i].len;
    }
    buf = malloc(total);
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    put_be(buf, l->n, 4);
    off = 4;
    for (i = 0; i < l->n; i++) {
        put_be(buf + off, l->v[i].type, 8);
        put_be(buf + off + 8, l->v[i].len, 4);
        off += 12;
        if (l->v[i].len > 0) {
            memcpy(buf + off, l->v[i].value, l->v[i].len);
        }
        off += l->v[i].len;
    }
    *out = buf;
    *len = total;
    return CKR_OK;
}

/*
 * The blob comes from the store: a file anyone may have damaged. Every
 * count and length is checked against what is left and against the named
 * limits before anything is allocated; any defect is CKR_GENERAL_ERROR.
 * l is an output: what it held before is not freed.
 */
CK_RV attr_list_deserialize(const uint8_t *in, size_t len, attr_list_t *l)
{
    attr_list_t tmp = {NULL, 0, 0};
    CK_RV rv = CKR_GENERAL_ERROR;
    uint64_t count, i, type, vlen;
    size_t off = 4;

    return_val_if_fail(l != NULL, CKR_GENERAL_ERROR);
    l->v = NULL;
    l->n = 0;
    l->cap = 0;
    if (in == NULL || len < 4) {
        goto out;
    }
    count = get_be(in, 4);
    if (count > ATTR_LIST_MAX || count > (len - 4) / 12) {
        goto out;
    }
    if (count > 0) {
        tmp.v = calloc((size_t)count, sizeof(*tmp.v));
        if (tmp.v == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        tmp.cap = (size_t)count;
    }
    for (i = 0; i < count; i++) {
        if (len - off < 12) {
            goto out;
        }
        type = get_be(in + off, 8);
        vlen = get_be(in + off + 8, 4);
        off += 12;
        if (type > (CK_ULONG)-1 || vlen > ATTR_STORED_MAX || vlen > len - off) {
            goto out;
        }
        if (tmp.n > 0 && (CK_ATTRIBUTE_TYPE)type <= tmp.v[tmp.n - 1].type) {
            goto out;
        }
        tmp.v[tmp.n].type = (CK_ATTRIBUTE_TYPE)type;
        if (vlen > 0) {
            tmp.v[tmp.n].value = malloc((size_t)vlen);
            if (tmp.v[tmp.n].value == NULL) {
                rv = CKR_HOST_MEMORY;
                goto out;
            }
            memcpy(tmp.v[tmp.n].value, in + off, (size_t)vlen);
            tmp.v[tmp.n].len = (size_t)vlen;
        }
        tmp.n++;
        off += (size_t)vlen;
    }
    if (off != len) {
        goto out; /* trailing bytes */
    }
    *l = tmp;
    tmp.v = NULL;
    tmp.n = 0;
    rv = CKR_OK;
out:
    if (rv != CKR_OK) {
        log_error("damaged attribute blob (%zu bytes)", len);
    }
    attr_list_free(&tmp);
    return rv;
}

/* ------------------------------------------------------------ engine */

/*
 * The class and key type of a new object: the caller's (from the
 * mechanism) when given, else the template's. Both are settled before any
 * other attribute is looked at, since nothing else can be checked without
 * them: a malformed or unsupported value is CKR_ATTRIBUTE_VALUE_INVALID,
 * two different values CKR_TEMPLATE_INCONSISTENT, none
 * CKR_TEMPLATE_INCOMPLETE.
 */
static CK_RV resolve_ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG given,
                           const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                           CK_ULONG *out)
{
    CK_ULONG v = given, i;
    bool have = given != CK_UNAVAILABLE_INFORMATION;

    for (i = 0; i < count; i++) {
        CK_ULONG u;
        if (tmpl[i].type != type) {
            continue;
        }
        if (tmpl[i].ulValueLen != sizeof(CK_ULONG) || tmpl[i].pValue == NULL) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        u = load_ulong(tmpl[i].pValue);
        if (have && u != v) {
            return CKR_TEMPLATE_INCONSISTENT;
        }
        v = u;
        have = true;
    }
    if (!have) {
        return CKR_TEMPLATE_INCOMPLETE;
    }
    *out = v;
    return CKR_OK;
}

/* Whether the row may appear in a template for op (else READ_ONLY). */
static bool allowed_for_op(const attr_row_t *row, attr_op_t op)
{
    if (row->flags & ATTR_F_TOKEN_SET) {
        return false;
    }
    switch (op) {
    case ATTR_OP_CREATE:
        return !(row->flags & ATTR_F_NO_CREATE);
    case ATTR_OP_GENERATE:
        return !(row->flags & ATTR_F_NO_GENERATE);
    case ATTR_OP_UNWRAP:
        return !(row->flags & ATTR_F_NO_UNWRAP);
    case ATTR_OP_DERIVE:
        return !(row->flags & ATTR_F_NO_UNWRAP) ||
               (row->flags & ATTR_F_DERIVE_OK);
    }
    return false;
}

static bool required_for_op(const attr_row_t *row, attr_op_t op)
{
    switch (op) {
    case ATTR_OP_CREATE:
        return row->flags & ATTR_F_REQ_CREATE;
    case ATTR_OP_GENERATE:
        return row->flags & ATTR_F_REQ_GENERATE;
    case ATTR_OP_UNWRAP:
        return row->flags & ATTR_F_REQ_UNWRAP;
    case ATTR_OP_DERIVE:
        return false;
    }
    return false;
}

const CK_ATTRIBUTE *attr_tmpl_find(const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                                   CK_ATTRIBUTE_TYPE type)
{
    CK_ULONG i;

    for (i = 0; i < count; i++) {
        if (tmpl[i].type == type) {
            return &tmpl[i];
        }
    }
    return NULL;
}

/* Sanity of the template as a whole (the front end checked pointers). */
static CK_RV tmpl_check(const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    if (count > ATTR_TEMPLATE_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    if (count > 0 && tmpl == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    return CKR_OK;
}

/* ------------------------------------------------------------ separation */

/*
 * The pairs key separation forbids on one key: the first would export
 * (or import) keys, the second would reveal (or make) the same bytes.
 */
static const struct {
    CK_ATTRIBUTE_TYPE wrap, cipher;
} sep_pairs[] = {
    {CKA_WRAP, CKA_DECRYPT},
    {CKA_UNWRAP, CKA_ENCRYPT},
};

/* Whether l carries both members of a pair. */
static bool separation_conflict(const attr_list_t *l)
{
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(sep_pairs); i++) {
        if (attr_list_bool(l, sep_pairs[i].wrap, false) &&
            attr_list_bool(l, sep_pairs[i].cipher, false)) {
            return true;
        }
    }
    return false;
}

/*
 * Whether a set template gives the result l a pair by turning one of its
 * members TRUE (a key that already had the pair may still be relabelled,
 * or lose the pair; it cannot be given the pair anew).
 */
static bool separation_set_conflict(const attr_list_t *l,
                                    const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(sep_pairs); i++) {
        if (!attr_list_bool(l, sep_pairs[i].wrap, false) ||
            !attr_list_bool(l, sep_pairs[i].cipher, false)) {
            continue;
        }
        for (CK_ULONG j = 0; j < count; j++) {
            if ((tmpl[j].type == sep_pairs[i].wrap ||
                 tmpl[j].type == sep_pairs[i].cipher) &&
                attr_is_true(&tmpl[j])) {
                return true;
            }
        }
    }
    return false;
}

bool attrs_separation_blocks(const attr_list_t *l, CK_ATTRIBUTE_TYPE usage)
{
    return_val_if_fail(l != NULL, true);
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(sep_pairs); i++) {
        if (usage == sep_pairs[i].wrap &&
            attr_list_bool(l, sep_pairs[i].cipher, false)) {
            return true;
        }
    }
    return false;
}

/*
 * A secret key's default for a member of a separation pair: the wrap side
 * only when asked; the cipher side unless the template asked for its wrap
 * side. With separation off, TRUE (the permissive defaults).
 */
static bool separation_default(const attr_caller_t *caller,
                               CK_ATTRIBUTE_TYPE type, const attr_list_t *l)
{
    if (caller->separation_off) {
        return true;
    }
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(sep_pairs); i++) {
        if (type == sep_pairs[i].cipher) {
            return !attr_list_bool(l, sep_pairs[i].wrap, false);
        }
    }
    return false;
}

/* Value of one AD_ENGINE default (or of the token-set attributes). */
static CK_RV engine_default(attr_op_t op, const attr_caller_t *caller,
                            const attr_schema_t *s, const attr_row_t *row,
                            attr_list_t *l)
{
    const attr_t *a;

    switch (row->type) {
    case CKA_ENCRYPT:
    case CKA_DECRYPT:
    case CKA_WRAP:
    case CKA_UNWRAP:
        return attr_list_set_bool(l, row->type,
                                  separation_default(caller, row->type, l));
    case CKA_CLASS:
        return attr_list_set_ulong(l, CKA_CLASS, s->cls);
    case CKA_KEY_TYPE:
        return attr_list_set_ulong(l, CKA_KEY_TYPE, s->kt);
    case CKA_PRIVATE:
        return attr_list_set_bool(l, CKA_PRIVATE,
                                  s->cls == CKO_PRIVATE_KEY ||
                                      s->cls == CKO_SECRET_KEY ||
                                      s->cls == CKO_DATA);
    case CKA_LOCAL:
        return attr_list_set_bool(l, CKA_LOCAL, op == ATTR_OP_GENERATE);
    case CKA_ALWAYS_SENSITIVE:
        /* For unwrap and derive the core overrides it from the source. */
        return attr_list_set_bool(l, CKA_ALWAYS_SENSITIVE,
                                  op == ATTR_OP_GENERATE &&
                                      attr_list_bool(l, CKA_SENSITIVE, false));
    case CKA_NEVER_EXTRACTABLE:
        return attr_list_set_bool(
            l, CKA_NEVER_EXTRACTABLE,
            op == ATTR_OP_GENERATE &&
                !attr_list_bool(l, CKA_EXTRACTABLE, true));
    case CKA_MODULUS_BITS:
        a = attr_list_find(l, CKA_MODULUS);
        if (a != NULL) {
            size_t i = 0, bits;
            while (i < a->len && a->value[i] == 0) {
                i++;
            }
            bits = (a->len - i) * 8;
            if (i < a->len) {
                uint8_t top = a->value[i];
                while (!(top & 0x80)) {
                    top <<= 1;
                    bits--;
                }
            }
            return attr_list_set_ulong(l, CKA_MODULUS_BITS, bits);
        }
        return CKR_OK;
    case CKA_VALUE_LEN:
        if (s->kt == CKK_DES3) {
            return attr_list_set_ulong(l, CKA_VALUE_LEN, 24);
        }
        if (s->kt == CKK_CHACHA20) {
            return attr_list_set_ulong(l, CKA_VALUE_LEN, 32);
        }
        a = attr_list_find(l, CKA_VALUE);
        if (a != NULL) {
            return attr_list_set_ulong(l, CKA_VALUE_LEN, a->len);
        }
        return CKR_OK;
    default:
        return CKR_GENERAL_ERROR;
    }
}

/* Applies a row's default when the attribute is absent. */
static CK_RV apply_default(attr_op_t op, const attr_caller_t *caller,
                           const attr_schema_t *s, const attr_row_t *row,
                           attr_list_t *l)
{
    if (attr_list_find(l, row->type) != NULL) {
        return CKR_OK;
    }
    switch (row->dflt) {
    case AD_NONE:
        return CKR_OK;
    case AD_FALSE:
        return attr_list_set_bool(l, row->type, false);
    case AD_TRUE:
        return attr_list_set_bool(l, row->type, true);
    case AD_ULONG:
        return attr_list_set_ulong(l, row->type, row->dval);
    case AD_EMPTY:
        return attr_list_set(l, row->type, NULL, 0);
    case AD_ENGINE:
        return engine_default(op, caller, s, row, l);
    }
    return CKR_GENERAL_ERROR;
}

/*
 * Engine-computed defaults depend on other attributes (ALWAYS_SENSITIVE on
 * SENSITIVE, MODULUS_BITS on MODULUS ...), so they run after all others.
 */
static CK_RV apply_defaults(attr_op_t op, const attr_caller_t *caller,
                            const attr_schema_t *s, attr_list_t *l)
{
    size_t i, j;
    int pass;
    CK_RV rv;

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < s->n; i++) {
            for (j = 0; j < s->t[i].n; j++) {
                const attr_row_t *row = &s->t[i].rows[j];
                if ((row->dflt == AD_ENGINE) != (pass == 1)) {
                    continue;
                }
                rv = apply_default(op, caller, s, row, l);
                if (rv != CKR_OK) {
                    return rv;
                }
            }
        }
    }
    return CKR_OK;
}

/* Stores one checked template value (normalizing CKA_EC_POINT). */
static CK_RV store_value(const attr_schema_t *s, const CK_ATTRIBUTE *a,
                         const CK_ATTRIBUTE *params, attr_list_t *l)
{
    uint8_t *norm = NULL;
    size_t norm_len = 0;
    CK_RV rv;

    if (a->type == CKA_EC_POINT && is_ec_family(s->kt)) {
        rv = ec_point_normalize(s->kt, params ? params->pValue : NULL,
                                params ? params->ulValueLen : 0, a->pValue,
                                a->ulValueLen, &norm, &norm_len);
        if (rv != CKR_OK) {
            return rv;
        }
        rv = attr_list_set(l, a->type, norm, norm_len);
        free(norm);
        return rv;
    }
    if (is_template_type(a->type)) {
        return template_store(a, l);
    }
    return attr_list_set(l, a->type, a->pValue, a->ulValueLen);
}

/*
 * Whether a template attribute repeats an earlier one of the same template
 * (*dup set) and if so whether with a different value (*differs).
 */
static void tmpl_repeat(const CK_ATTRIBUTE *tmpl, CK_ULONG i, bool *dup,
                        bool *differs)
{
    CK_ULONG j;

    *dup = false;
    *differs = false;
    for (j = 0; j < i; j++) {
        if (tmpl[j].type != tmpl[i].type) {
            continue;
        }
        *dup = true;
        if (!same_value(tmpl[j].pValue, tmpl[j].ulValueLen, tmpl[i].pValue,
                        tmpl[i].ulValueLen)) {
            *differs = true;
        }
        return;
    }
}

CK_RV attrs_new_object(attr_op_t op, const attr_caller_t *caller,
                       CK_OBJECT_CLASS cls, CK_KEY_TYPE key_type,
                       const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                       attr_list_t *out)
{
    attr_list_t l = {NULL, 0, 0};
    attr_schema_t s;
    const CK_ATTRIBUTE *params;
    CK_RV rv, deferred = CKR_OK;
    CK_ULONG i, kt = CK_UNAVAILABLE_INFORMATION;
    size_t j, k;

    return_val_if_fail(caller != NULL && out != NULL, CKR_GENERAL_ERROR);
    out->v = NULL;
    out->n = 0;
    out->cap = 0;
    if (op != ATTR_OP_CREATE) {
        /* Only keys are generated, unwrapped and derived. */
        return_val_if_fail(cls == CK_UNAVAILABLE_INFORMATION ||
                               is_key_class(cls),
                           CKR_GENERAL_ERROR);
    }
    rv = tmpl_check(tmpl, count);
    if (rv != CKR_OK) {
        return rv;
    }

    rv = resolve_ulong(CKA_CLASS,
                       op == ATTR_OP_CREATE ? CK_UNAVAILABLE_INFORMATION : cls,
                       tmpl, count, &cls);
    if (rv != CKR_OK) {
        return rv;
    }
    if (op != ATTR_OP_CREATE && !is_key_class(cls)) {
        return CKR_TEMPLATE_INCONSISTENT;
    }
    if (is_key_class(cls)) {
        rv = resolve_ulong(CKA_KEY_TYPE,
                           op == ATTR_OP_CREATE ? CK_UNAVAILABLE_INFORMATION
                                                : key_type,
                           tmpl, count, &kt);
        if (rv != CKR_OK) {
            return rv;
        }
    }
    rv = schema_get(cls, kt, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    params = attr_tmpl_find(tmpl, count, CKA_EC_PARAMS);
    /* Class and key type are settled: they head the list. */
    rv = attr_list_set_ulong(&l, CKA_CLASS, cls);
    if (rv == CKR_OK && is_key_class(cls)) {
        rv = attr_list_set_ulong(&l, CKA_KEY_TYPE, kt);
    }
    if (rv != CKR_OK) {
        goto out;
    }

    /* Each attribute in template order: first per-attribute error wins. */
    for (i = 0; i < count; i++) {
        const CK_ATTRIBUTE *a = &tmpl[i];
        const attr_row_t *row = schema_find(&s, a->type);
        bool dup, differs;

        if (row == NULL) {
            rv = unknown_type_rv(a->type);
            goto out;
        }
        if (!allowed_for_op(row, op)) {
            rv = CKR_ATTRIBUTE_READ_ONLY;
            goto out;
        }
        rv = check_value(row, a);
        if (rv != CKR_OK) {
            goto out;
        }
        if ((row->flags & ATTR_F_SO_TRUE_ONLY) && attr_is_true(a) &&
            !caller->is_so) {
            rv = CKR_ATTRIBUTE_READ_ONLY;
            goto out;
        }
        tmpl_repeat(tmpl, i, &dup, &differs);
        if (differs && deferred == CKR_OK) {
            deferred = CKR_TEMPLATE_INCONSISTENT;
        }
        if (dup) {
            continue;
        }
        rv = store_value(&s, a, params, &l);
        if (rv != CKR_OK) {
            goto out;
        }
    }
    if (deferred != CKR_OK) {
        rv = deferred;
        goto out;
    }

    /* Required attributes (footnotes 1, 3, 5). */
    for (j = 0; j < s.n; j++) {
        for (k = 0; k < s.t[j].n; k++) {
            const attr_row_t *row = &s.t[j].rows[k];
            if (required_for_op(row, op) &&
                attr_list_find(&l, row->type) == NULL) {
                rv = CKR_TEMPLATE_INCOMPLETE;
                goto out;
            }
        }
    }

    rv = apply_defaults(op, caller, &s, &l);
    if (rv != CKR_OK) {
        goto out;
    }
    if (!caller->separation_off && separation_conflict(&l)) {
        rv = CKR_TEMPLATE_INCONSISTENT;
        goto out;
    }
    *out = l;
    l.v = NULL;
    l.n = 0;
    rv = CKR_OK;
out:
    attr_list_free(&l);
    return rv;
}

/* Schema of an existing object; a list without a class is damaged. */
static CK_RV schema_of(const attr_list_t *l, attr_schema_t *s)
{
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE kt = CK_UNAVAILABLE_INFORMATION;

    cls = attr_list_ulong(l, CKA_CLASS, CK_UNAVAILABLE_INFORMATION);
    if (is_key_class(cls)) {
        kt = attr_list_ulong(l, CKA_KEY_TYPE, CK_UNAVAILABLE_INFORMATION);
    }
    if (schema_get(cls, kt, s) != CKR_OK) {
        return CKR_GENERAL_ERROR;
    }
    return CKR_OK;
}

/*
 * Applies tmpl to a copy of cur: shared by set and copy. copy selects the
 * C_CopyObject rules (ATTR_F_COPY_ONLY attributes also allowed; when cur
 * is not modifiable only those).
 */
static CK_RV apply_changes(const attr_caller_t *caller, const attr_list_t *cur,
                           const CK_ATTRIBUTE *tmpl, CK_ULONG count, bool copy,
                           attr_list_t *out)
{
    attr_list_t l = {NULL, 0, 0};
    attr_schema_t s;
    CK_RV rv, deferred = CKR_OK;
    bool modifiable;
    CK_ULONG i;

    rv = tmpl_check(tmpl, count);
    if (rv != CKR_OK) {
        return rv;
    }
    rv = schema_of(cur, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    modifiable = attr_list_bool(cur, CKA_MODIFIABLE, true);
    rv = attr_list_dup(cur, &l);
    if (rv != CKR_OK) {
        return rv;
    }
    for (i = 0; i < count; i++) {
        const CK_ATTRIBUTE *a = &tmpl[i];
        const attr_row_t *row = schema_find(&s, a->type);
        const attr_t *old;
        bool dup, differs, allowed;

        if (row == NULL) {
            rv = unknown_type_rv(a->type);
            goto out;
        }
        allowed = (row->flags & ATTR_F_MODIFIABLE) && modifiable;
        if (copy && (row->flags & ATTR_F_COPY_ONLY)) {
            allowed = true;
        }
        /* What an unwrap or derive template fixed, no set or copy undoes
         * (else a shared wrap-only key's CKA_UNWRAP_TEMPLATE is advice). */
        if (!allowed || (row->flags & ATTR_F_TOKEN_SET) ||
            attrs_is_fixed(cur, a->type)) {
            rv = CKR_ATTRIBUTE_READ_ONLY;
            goto out;
        }
        rv = check_value(row, a);
        if (rv != CKR_OK) {
            goto out;
        }
        /* Sticky rules (footnotes 11, 12), judged against the original. */
        old = attr_list_find(cur, a->type);
        if (old != NULL && old->len == sizeof(CK_BBOOL)) {
            bool was = old->value[0] == CK_TRUE;
            bool now = attr_is_true(a);
            if ((row->flags & ATTR_F_STICKY_TRUE) && was && !now) {
                rv = CKR_ATTRIBUTE_READ_ONLY;
                goto out;
            }
            if ((row->flags & ATTR_F_STICKY_FALSE) && !was && now) {
                rv = CKR_ATTRIBUTE_READ_ONLY;
                goto out;
            }
        }
        if ((row->flags & ATTR_F_SO_TRUE_ONLY) && attr_is_true(a) &&
            !caller->is_so) {
            rv = CKR_ATTRIBUTE_READ_ONLY;
            goto out;
        }
        tmpl_repeat(tmpl, i, &dup, &differs);
        if (differs && deferred == CKR_OK) {
            deferred = CKR_TEMPLATE_INCONSISTENT;
        }
        if (dup) {
            continue;
        }
        rv = attr_list_set(&l, a->type, a->pValue, a->ulValueLen);
        if (rv != CKR_OK) {
            goto out;
        }
    }
    if (deferred != CKR_OK) {
        rv = deferred;
        goto out;
    }
    /* A copy is a new object: no pair at all; a set may not add one. */
    if (!caller->separation_off) {
        if (copy && separation_conflict(&l)) {
            rv = CKR_TEMPLATE_INCONSISTENT;
            goto out;
        }
        if (!copy && separation_set_conflict(&l, tmpl, count)) {
            rv = CKR_ATTRIBUTE_VALUE_INVALID;
            goto out;
        }
    }
    *out = l;
    l.v = NULL;
    l.n = 0;
    rv = CKR_OK;
out:
    attr_list_free(&l);
    return rv;
}

/*
 * Footnote 8 allows a token to refuse changes during C_CopyObject. Ours:
 * CKA_TOKEN, CKA_PRIVATE (FALSE to TRUE), CKA_MODIFIABLE (TRUE to FALSE),
 * CKA_DESTROYABLE always; the attributes C_SetAttributeValue may change
 * only when the source itself is modifiable (so a copy cannot relabel a
 * read-only object). CKA_UNIQUE_ID is dropped: the core assigns a new one.
 */
CK_RV attrs_copy(const attr_caller_t *caller, const attr_list_t *src,
                 const CK_ATTRIBUTE *tmpl, CK_ULONG count, attr_list_t *out)
{
    CK_RV rv;

    return_val_if_fail(caller != NULL && src != NULL && out != NULL,
                       CKR_GENERAL_ERROR);
    out->v = NULL;
    out->n = 0;
    out->cap = 0;
    if (!attr_list_bool(src, CKA_COPYABLE, true)) {
        return CKR_ACTION_PROHIBITED;
    }
    rv = apply_changes(caller, src, tmpl, count, true, out);
    if (rv != CKR_OK) {
        return rv;
    }
    attr_list_remove(out, CKA_UNIQUE_ID);
    return CKR_OK;
}

/*
 * Setting an attribute that is not modifiable is CKR_ATTRIBUTE_READ_ONLY
 * even when the value equals the current one (as SoftHSM). Setting
 * CKA_SENSITIVE TRUE later leaves CKA_ALWAYS_SENSITIVE as it was; setting
 * CKA_EXTRACTABLE FALSE later leaves CKA_NEVER_EXTRACTABLE as it was.
 */
CK_RV attrs_set(const attr_caller_t *caller, const attr_list_t *cur,
                const CK_ATTRIBUTE *tmpl, CK_ULONG count, attr_list_t *out)
{
    return_val_if_fail(caller != NULL && cur != NULL && out != NULL,
                       CKR_GENERAL_ERROR);
    out->v = NULL;
    out->n = 0;
    out->cap = 0;
    if (!attr_list_bool(cur, CKA_MODIFIABLE, true)) {
        return CKR_ACTION_PROHIBITED;
    }
    return apply_changes(caller, cur, tmpl, count, false, out);
}

/* Footnote 7 holds for this object: sensitive or unextractable key. */
static bool key_hidden(const attr_list_t *l)
{
    return attr_list_bool(l, CKA_SENSITIVE, true) ||
           !attr_list_bool(l, CKA_EXTRACTABLE, false);
}

/*
 * PKCS#11 C_GetAttributeValue: "if the specified attribute (i.e., the
 * attribute specified by the type field) for the object cannot be revealed
 * because the object is sensitive or unextractable, then ... set to
 * CK_UNAVAILABLE_INFORMATION" (HSM_ATTR_SENSITIVE here); "if the specified
 * attribute for the object is invalid (the object does not possess such an
 * attribute)" (HSM_ATTR_INVALID). An attribute of the schema without a
 * stored value (CKA_CHECK_VALUE before the core computed it, CRT parts a
 * created key did not carry) reads as empty: it is hidden when footnote 7
 * holds, so that the reply does not tell which parts exist.
 */
hsm_attr_status_t attrs_read(const attr_list_t *l, CK_ATTRIBUTE_TYPE type,
                             const uint8_t **value, size_t *len)
{
    const attr_row_t *row;
    attr_schema_t s;
    const attr_t *a;

    return_val_if_fail(l != NULL && value != NULL && len != NULL,
                       HSM_ATTR_INVALID);
    *value = NULL;
    *len = 0;
    if (schema_of(l, &s) != CKR_OK) {
        return HSM_ATTR_INVALID;
    }
    if (is_vendor_attr(type)) {
        /* Ours in the list (ATTR_FIXED_TYPES) are the token's alone. */
        return HSM_ATTR_INVALID;
    }
    row = schema_find(&s, type);
    a = attr_list_find(l, type);
    if (row != NULL && (row->flags & ATTR_F_SENSITIVE) && key_hidden(l)) {
        return HSM_ATTR_SENSITIVE;
    }
    if (a != NULL) {
        *value = a->value;
        *len = a->len;
        return HSM_ATTR_OK;
    }
    if (row != NULL &&
        (row->kind == AK_BYTES || row->kind == AK_DATE ||
         row->kind == AK_MECH_LIST || row->kind == AK_TEMPLATE)) {
        return HSM_ATTR_OK;
    }
    return HSM_ATTR_INVALID;
}

CK_RV attrs_check_value(const attr_list_t *l, CK_ATTRIBUTE_TYPE type,
                        const void *value, size_t len)
{
    const attr_row_t *row;
    attr_schema_t s;
    CK_ATTRIBUTE a;

    return_val_if_fail(l != NULL, CKR_GENERAL_ERROR);
    if (schema_of(l, &s) != CKR_OK) {
        return CKR_GENERAL_ERROR;
    }
    row = schema_find(&s, type);
    if (row == NULL) {
        return CKR_ATTRIBUTE_TYPE_INVALID;
    }
    a.type = type;
    a.pValue = (void *)value;
    a.ulValueLen = len;
    return check_value(row, &a);
}

bool attrs_is_fixed(const attr_list_t *l, CK_ATTRIBUTE_TYPE type)
{
    const attr_t *f = attr_list_find(l, ATTR_FIXED_TYPES);

    if (f == NULL) {
        return false;
    }
    for (size_t i = 0; i + sizeof(CK_ATTRIBUTE_TYPE) <= f->len;
         i += sizeof(CK_ATTRIBUTE_TYPE)) {
        CK_ATTRIBUTE_TYPE t;

        memcpy(&t, f->value + i, sizeof(t));
        if (t == type) {
            return true;
        }
    }
    return false;
}

CK_RV attrs_fix(attr_list_t *l, const attr_list_t *fixed)
{
    const attr_t *f;
    CK_ATTRIBUTE_TYPE *types;
    size_t n = 0, have;
    CK_RV rv;

    return_val_if_fail(l != NULL && fixed != NULL, CKR_GENERAL_ERROR);
    if (fixed->n == 0) {
        return CKR_OK;
    }
    f = attr_list_find(l, ATTR_FIXED_TYPES);
    have = f != NULL ? f->len / sizeof(CK_ATTRIBUTE_TYPE) : 0;
    types = calloc(have + fixed->n, sizeof(*types));
    if (types == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (have > 0) {
        memcpy(types, f->value, have * sizeof(*types));
        n = have;
    }
    for (size_t i = 0; i < fixed->n; i++) {
        if (!attrs_is_fixed(l, fixed->v[i].type)) {
            types[n++] = fixed->v[i].type;
        }
    }
    rv = attr_list_set(l, ATTR_FIXED_TYPES, types, n * sizeof(*types));
    free(types);
    return rv;
}

bool attrs_is_secret(const attr_list_t *l, CK_ATTRIBUTE_TYPE type)
{
    const attr_row_t *row;
    attr_schema_t s;
    CK_OBJECT_CLASS cls;

    return_val_if_fail(l != NULL, true);
    cls = attr_list_ulong(l, CKA_CLASS, CK_UNAVAILABLE_INFORMATION);
    if (cls == CKO_DATA) {
        return type == CKA_VALUE && attr_list_bool(l, CKA_PRIVATE, true);
    }
    if (schema_of(l, &s) != CKR_OK) {
        /* Unknown shape: keep everything sealed rather than guess. */
        return true;
    }
    row = schema_find(&s, type);
    return row != NULL && (row->flags & ATTR_F_SECRET);
}

/*
 * C_FindObjects: byte-for-byte comparison. A template that names a secret
 * attribute never matches (no oracle on key values), nor one naming an
 * attribute the object does not have. Our vendor attributes (owner, shared
 * users, object id) are not in the list: the core must take them out of
 * the template and match them itself; left in, they never match here.
 */
bool attrs_match(const attr_list_t *l, const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    CK_ULONG i;

    return_val_if_fail(l != NULL, false);
    return_val_if_fail(count == 0 || tmpl != NULL, false);
    for (i = 0; i < count; i++) {
        const attr_t *a;

        if (is_vendor_attr(tmpl[i].type) || attrs_is_secret(l, tmpl[i].type)) {
            return false;
        }
        a = attr_list_find(l, tmpl[i].type);
        if (a == NULL || tmpl[i].ulValueLen == CK_UNAVAILABLE_INFORMATION ||
            (tmpl[i].ulValueLen > 0 && tmpl[i].pValue == NULL)) {
            return false;
        }
        if (!same_value(a->value, a->len, tmpl[i].pValue, tmpl[i].ulValueLen)) {
            return false;
        }
    }
    return true;
}
