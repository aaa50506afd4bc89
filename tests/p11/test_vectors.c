/*
 * test_vectors.c - the Wycheproof vectors through the module.
 *
 * Every file of $NIMBUS_TESTVECTORS/wycheproof (default: ../shared/
 * testvectors beside the source tree) that the module's mechanisms cover is
 * one cmocka test. Keys are imported with C_CreateObject as session objects
 * of a CU (one import per test group where the group shares a key), and the
 * operations go through C_Verify, C_Sign, C_Encrypt, C_Decrypt, C_WrapKey,
 * C_UnwrapKey and C_DeriveKey. Valid
 * vectors must pass, invalid ones must be rejected (with a code that says
 * so, not CKR_GENERAL_ERROR), acceptable ones are counted either way. Each
 * file prints "file: N valid ok, M invalid rejected, K acceptable (a
 * accepted, r rejected), S skipped (why)" and the first failures.
 *
 * ECDSA DER files: a token takes r||s, so the harness converts the DER
 * signature itself; a signature that is not strict DER (or whose integers
 * do not fit the curve order's length) is rejected here and counted apart
 * ("D refused by the harness's DER parser").
 *
 * Symmetric files (issue 4): AES-GCM through C_Encrypt/C_Decrypt with
 * CK_GCM_PARAMS (a 0-byte IV cannot be expressed: ulIvLen must be at least
 * 1; a 12-byte all-zero IV asks the token to make the IV on encryption, so
 * such vectors are checked by decryption only); AES-CBC-PKCS5 with
 * CKM_AES_CBC_PAD; AES-KW and AES-KWP with C_WrapKey of the message
 * imported as a generic secret and C_UnwrapKey of the ciphertext (a 0-byte
 * message cannot be a key: skipped); AES-CMAC with C_Sign/C_Verify
 * (CKM_AES_CMAC_GENERAL for short tags); HKDF with C_DeriveKey
 * (CKM_HKDF_DERIVE, an empty salt as CKF_HKDF_SALT_NULL, which RFC 5869
 * defines as the same; an empty IKM cannot be a key: skipped).
 */
#include "config.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "p11util.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))
#define MAX_FILES 256
#define FAILURES_SHOWN 8
/* Larger than any output here (RSA-8192 blocks). */
#define OUT_MAX 1100

static CK_SESSION_HANDLE S;
static CK_BBOOL yes = CK_TRUE;
static CK_BBOOL no = CK_FALSE;
static char vec_dir[4096];

/* ------------------------------------------------------------ tables */

struct curve {
    const char *name;
    CK_KEY_TYPE kt;
    const CK_BYTE *params;
    size_t params_len;
    size_t len; /* order / field bytes; Edwards/Montgomery: key bytes */
};

static const CK_BYTE oid_p224[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x21};
static const CK_BYTE oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                   0xce, 0x3d, 0x03, 0x01, 0x07};
static const CK_BYTE oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const CK_BYTE oid_p521[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};
static const CK_BYTE oid_k256[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a};
static const CK_BYTE oid_bp256[] = {0x06, 0x09, 0x2b, 0x24, 0x03, 0x03,
                                    0x02, 0x08, 0x01, 0x01, 0x07};
static const CK_BYTE oid_bp384[] = {0x06, 0x09, 0x2b, 0x24, 0x03, 0x03,
                                    0x02, 0x08, 0x01, 0x01, 0x0b};
static const CK_BYTE oid_bp512[] = {0x06, 0x09, 0x2b, 0x24, 0x03, 0x03,
                                    0x02, 0x08, 0x01, 0x01, 0x0d};
static const CK_BYTE oid_ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const CK_BYTE oid_ed448[] = {0x06, 0x03, 0x2b, 0x65, 0x71};
static const CK_BYTE oid_x25519[] = {0x06, 0x03, 0x2b, 0x65, 0x6e};
static const CK_BYTE oid_x448[] = {0x06, 0x03, 0x2b, 0x65, 0x6f};

#define CURVE(n, k, o, l)                                                      \
    {                                                                          \
        n, k, o, sizeof(o), l                                                  \
    }
static const struct curve curves[] = {
    CURVE("secp224r1", CKK_EC, oid_p224, 28),
    CURVE("secp256r1", CKK_EC, oid_p256, 32),
    CURVE("secp384r1", CKK_EC, oid_p384, 48),
    CURVE("secp521r1", CKK_EC, oid_p521, 66),
    CURVE("secp256k1", CKK_EC, oid_k256, 32),
    CURVE("brainpoolP256r1", CKK_EC, oid_bp256, 32),
    CURVE("brainpoolP384r1", CKK_EC, oid_bp384, 48),
    CURVE("brainpoolP512r1", CKK_EC, oid_bp512, 64),
    CURVE("edwards25519", CKK_EC_EDWARDS, oid_ed25519, 32),
    CURVE("edwards448", CKK_EC_EDWARDS, oid_ed448, 57),
    CURVE("curve25519", CKK_EC_MONTGOMERY, oid_x25519, 32),
    CURVE("curve448", CKK_EC_MONTGOMERY, oid_x448, 56),
};
#undef CURVE

static const struct curve *curve_find(const char *name)
{
    for (size_t i = 0; name != NULL && i < N(curves); i++) {
        if (strcmp(curves[i].name, name) == 0) {
            return &curves[i];
        }
    }
    return NULL;
}

struct hash {
    const char *name;
    CK_MECHANISM_TYPE digest;
    CK_MECHANISM_TYPE ecdsa;
    CK_MECHANISM_TYPE rsa_pkcs;
    CK_MECHANISM_TYPE rsa_pss;
    CK_MECHANISM_TYPE hmac;
    CK_MECHANISM_TYPE hmac_general;
    CK_RSA_PKCS_MGF_TYPE mgf;
    size_t len;
};

static const struct hash hashes[] = {
    {"SHA-1", CKM_SHA_1, CKM_ECDSA_SHA1, CKM_SHA1_RSA_PKCS,
     CKM_SHA1_RSA_PKCS_PSS, CKM_SHA_1_HMAC, CKM_SHA_1_HMAC_GENERAL,
     CKG_MGF1_SHA1, 20},
    {"SHA-224", CKM_SHA224, CKM_ECDSA_SHA224, CKM_SHA224_RSA_PKCS,
     CKM_SHA224_RSA_PKCS_PSS, CKM_SHA224_HMAC, CKM_SHA224_HMAC_GENERAL,
     CKG_MGF1_SHA224, 28},
    {"SHA-256", CKM_SHA256, CKM_ECDSA_SHA256, CKM_SHA256_RSA_PKCS,
     CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256_HMAC, CKM_SHA256_HMAC_GENERAL,
     CKG_MGF1_SHA256, 32},
    {"SHA-384", CKM_SHA384, CKM_ECDSA_SHA384, CKM_SHA384_RSA_PKCS,
     CKM_SHA384_RSA_PKCS_PSS, CKM_SHA384_HMAC, CKM_SHA384_HMAC_GENERAL,
     CKG_MGF1_SHA384, 48},
    {"SHA-512", CKM_SHA512, CKM_ECDSA_SHA512, CKM_SHA512_RSA_PKCS,
     CKM_SHA512_RSA_PKCS_PSS, CKM_SHA512_HMAC, CKM_SHA512_HMAC_GENERAL,
     CKG_MGF1_SHA512, 64},
    {"SHA3-224", CKM_SHA3_224, CKM_ECDSA_SHA3_224, CKM_SHA3_224_RSA_PKCS,
     CKM_SHA3_224_RSA_PKCS_PSS, CKM_SHA3_224_HMAC, CKM_SHA3_224_HMAC_GENERAL,
     CKG_MGF1_SHA3_224, 28},
    {"SHA3-256", CKM_SHA3_256, CKM_ECDSA_SHA3_256, CKM_SHA3_256_RSA_PKCS,
     CKM_SHA3_256_RSA_PKCS_PSS, CKM_SHA3_256_HMAC, CKM_SHA3_256_HMAC_GENERAL,
     CKG_MGF1_SHA3_256, 32},
    {"SHA3-384", CKM_SHA3_384, CKM_ECDSA_SHA3_384, CKM_SHA3_384_RSA_PKCS,
     CKM_SHA3_384_RSA_PKCS_PSS, CKM_SHA3_384_HMAC, CKM_SHA3_384_HMAC_GENERAL,
     CKG_MGF1_SHA3_384, 48},
    {"SHA3-512", CKM_SHA3_512, CKM_ECDSA_SHA3_512, CKM_SHA3_512_RSA_PKCS,
     CKM_SHA3_512_RSA_PKCS_PSS, CKM_SHA3_512_HMAC, CKM_SHA3_512_HMAC_GENERAL,
     CKG_MGF1_SHA3_512, 64},
};

static const struct hash *hash_find(const char *name)
{
    for (size_t i = 0; name != NULL && i < N(hashes); i++) {
        if (strcmp(hashes[i].name, name) == 0) {
            return &hashes[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ counting */

enum outcome {
    OUT_ACCEPT, /* the module did it and the output matches */
    OUT_REJECT, /* the module refused (rv says how) */
    OUT_WRONG,  /* the module did it with another output */
    OUT_SKIP,   /* not run (why) */
};

struct counts {
    const char *file;
    unsigned valid_ok;
    unsigned invalid_rejected;
    unsigned acc_accepted;
    unsigned acc_rejected;
    unsigned skipped;
    unsigned failures;
    unsigned der_refused;
    char skip_why[160];
};

/* Codes that mean "refused" rather than "broken". */
static bool rejection_code(CK_RV rv)
{
    switch (rv) {
    case CKR_GENERAL_ERROR:
    case CKR_HOST_MEMORY:
    case CKR_ARGUMENTS_BAD:
    case CKR_FUNCTION_NOT_SUPPORTED:
    case CKR_MECHANISM_INVALID:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_OPERATION_ACTIVE:
    case CKR_OPERATION_NOT_INITIALIZED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
        return false;
    default:
        return rv != CKR_OK;
    }
}

static void failure(struct counts *c, const json_t *t, const char *msg,
                    const char *what, CK_RV rv)
{
    const char *comment = json_get_str(t, "comment");
    const char *result = json_get_str(t, "result");

    c->failures++;
    if (c->failures > FAILURES_SHOWN) {
        return;
    }
    print_error("%s tcId %lld (%s; %s): %s: %s -> %s\n", c->file,
                json_get_int(t, "tcId", -1), result != NULL ? result : "?",
                comment != NULL && *comment != '\0' ? comment : "-", msg, what,
                p11_rv_name(rv));
}

static void record(struct counts *c, const json_t *t, enum outcome o, CK_RV rv,
                   const char *what)
{
    const char *result = json_get_str(t, "result");

    if (o == OUT_SKIP) {
        c->skipped++;
        if (c->skip_why[0] == '\0') {
            snprintf(c->skip_why, sizeof(c->skip_why), "%s", what);
        }
        return;
    }
    if (result == NULL) {
        failure(c, t, "no result field", what, rv);
    } else if (strcmp(result, "valid") == 0) {
        if (o == OUT_ACCEPT) {
            c->valid_ok++;
        } else if (o == OUT_WRONG) {
            failure(c, t, "valid vector, another output", what, rv);
        } else {
            failure(c, t, "valid vector rejected", what, rv);
        }
    } else if (strcmp(result, "invalid") == 0) {
        if (o == OUT_REJECT && rejection_code(rv)) {
            c->invalid_rejected++;
        } else if (o == OUT_REJECT) {
            failure(c, t, "invalid vector refused for a wrong reason", what,
                    rv);
        } else {
            failure(c, t, "invalid vector accepted", what, rv);
        }
    } else if (strcmp(result, "acceptable") == 0) {
        if (o == OUT_ACCEPT) {
            c->acc_accepted++;
        } else if (o == OUT_REJECT && rejection_code(rv)) {
            c->acc_rejected++;
        } else if (o == OUT_REJECT) {
            failure(c, t, "acceptable vector refused for a wrong reason", what,
                    rv);
        } else {
            failure(c, t, "acceptable vector, another output", what, rv);
        }
    } else {
        failure(c, t, "unknown result", result, rv);
    }
}

static void print_counts(const struct counts *c)
{
    print_message("%s: %u valid ok, %u invalid rejected, %u acceptable (%u "
                  "accepted, %u rejected), %u skipped%s%s%s",
                  c->file, c->valid_ok, c->invalid_rejected,
                  c->acc_accepted + c->acc_rejected, c->acc_accepted,
                  c->acc_rejected, c->skipped, c->skipped > 0 ? " (" : "",
                  c->skipped > 0 ? c->skip_why : "", c->skipped > 0 ? ")" : "");
    if (c->der_refused > 0) {
        print_message("; %u refused by the harness's DER parser",
                      c->der_refused);
    }
    if (c->failures > 0) {
        print_message("; %u FAILED", c->failures);
    }
    print_message("\n");
}

/* ------------------------------------------------------------ bytes */

struct bytes {
    CK_BYTE *p; /* never NULL after unhex */
    size_t len;
};

static int hexdig(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* The hex string member key of obj; a harness error fails the test. */
static struct bytes unhex(const json_t *obj, const char *key)
{
    const char *s = json_get_str(obj, key);
    struct bytes b = {NULL, 0};
    size_t n;

    if (s == NULL) {
        fail_msg("member %s missing or not a string", key);
    }
    n = strlen(s);
    if (n % 2 != 0) {
        fail_msg("member %s: odd hex length", key);
    }
    b.p = malloc(n / 2 + 1);
    assert_non_null(b.p);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexdig(s[2 * i]);
        int lo = hexdig(s[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            free(b.p);
            fail_msg("member %s: not hex", key);
        }
        b.p[i] = (CK_BYTE)((hi << 4) | lo);
    }
    b.len = n / 2;
    return b;
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
}

/* A big-endian integer without its leading zero bytes (at least 1 byte). */
static void strip_zeros(struct bytes *b)
{
    size_t z = 0;

    while (z + 1 < b->len && b->p[z] == 0) {
        z++;
    }
    memmove(b->p, b->p + z, b->len - z);
    b->len -= z;
}

/* Left-pads (after stripping) to len bytes; false when it does not fit. */
static bool pad_to(struct bytes *b, size_t len)
{
    CK_BYTE *p;

    strip_zeros(b);
    if (b->len > len) {
        return false;
    }
    p = calloc(1, len + 1);
    assert_non_null(p);
    memcpy(p + len - b->len, b->p, b->len);
    free(b->p);
    b->p = p;
    b->len = len;
    return true;
}

static bool bytes_eq(const CK_BYTE *a, size_t alen, const struct bytes *b)
{
    return alen == b->len && (alen == 0 || memcmp(a, b->p, alen) == 0);
}

/* DER OCTET STRING around p (for CKA_EC_POINT); *out malloc'd. */
static size_t der_octet_string(const CK_BYTE *p, size_t n, CK_BYTE **out)
{
    size_t hdr = n < 0x80 ? 2 : n < 0x100 ? 3 : 4;
    CK_BYTE *o = malloc(hdr + n + 1);

    assert_non_null(o);
    assert_true(n < 0x10000);
    o[0] = 0x04;
    if (n < 0x80) {
        o[1] = (CK_BYTE)n;
    } else if (n < 0x100) {
        o[1] = 0x81;
        o[2] = (CK_BYTE)n;
    } else {
        o[1] = 0x82;
        o[2] = (CK_BYTE)(n >> 8);
        o[3] = (CK_BYTE)n;
    }
    memcpy(o + hdr, p, n);
    *out = o;
    return hdr + n;
}

/*
 * Strict DER: a definite length in its shortest form, at most 4 bytes,
 * within the n bytes that remain.
 */
static bool der_length(const CK_BYTE *p, size_t n, size_t *off, size_t *len)
{
    size_t k, v = 0;

    if (*off >= n) {
        return false;
    }
    if (p[*off] < 0x80) {
        *len = p[(*off)++];
    } else {
        k = p[(*off)++] & 0x7f;
        if (k == 0 || k > 4 || n - *off < k || p[*off] == 0) {
            return false;
        }
        for (size_t i = 0; i < k; i++) {
            v = (v << 8) | p[(*off)++];
        }
        if (v < 0x80) {
            return false;
        }
        *len = v;
    }
    return *len <= n - *off;
}

/* A non-negative minimal INTEGER, right-aligned into out[0..olen). */
static bool der_uint(const CK_BYTE *p, size_t n, size_t *off, CK_BYTE *out,
                     size_t olen)
{
    size_t len;
    const CK_BYTE *c;

    if (*off >= n || p[(*off)++] != 0x02 || !der_length(p, n, off, &len) ||
        len == 0) {
        return false;
    }
    c = p + *off;
    *off += len;
    if ((c[0] & 0x80) != 0) {
        return false; /* negative */
    }
    if (c[0] == 0 && len > 1) {
        if ((c[1] & 0x80) == 0) {
            return false; /* not minimal */
        }
        c++;
        len--;
    }
    if (len > olen) {
        return false;
    }
    memset(out, 0, olen);
    memcpy(out + olen - len, c, len);
    return true;
}

/* SEQUENCE { r INTEGER, s INTEGER } -> r||s, each olen bytes. */
static bool ecdsa_der_to_raw(const struct bytes *sig, size_t olen, CK_BYTE *raw)
{
    size_t off = 0, len;

    if (sig->len < 2 || sig->p[0] != 0x30) {
        return false;
    }
    off = 1;
    if (!der_length(sig->p, sig->len, &off, &len) || off + len != sig->len) {
        return false;
    }
    return der_uint(sig->p, sig->len, &off, raw, olen) &&
           der_uint(sig->p, sig->len, &off, raw + olen, olen) &&
           off == sig->len;
}

/*
 * The public point of a SubjectPublicKeyInfo naming cv by OID (ecPublicKey,
 * named curve, BIT STRING with no unused bits): what an application takes
 * out of an X.509 key before it hands the point to C_DeriveKey. Anything
 * else (another curve, explicit parameters, bad DER) is refused here.
 */
static bool spki_point(const struct bytes *spki, const struct curve *cv,
                       struct bytes *pt)
{
    static const CK_BYTE ec_alg[] = {0x06, 0x07, 0x2a, 0x86, 0x48,
                                     0xce, 0x3d, 0x02, 0x01};
    const CK_BYTE *p = spki->p;
    size_t n = spki->len, off = 0, len, alg_end;

    if (n < 2 || p[off++] != 0x30 || !der_length(p, n, &off, &len) ||
        off + len != n || off >= n || p[off++] != 0x30 ||
        !der_length(p, n, &off, &len)) {
        return false;
    }
    alg_end = off + len;
    if (alg_end - off != sizeof(ec_alg) + cv->params_len ||
        memcmp(p + off, ec_alg, sizeof(ec_alg)) != 0 ||
        memcmp(p + off + sizeof(ec_alg), cv->params, cv->params_len) != 0) {
        return false;
    }
    off = alg_end;
    if (off >= n || p[off++] != 0x03 || !der_length(p, n, &off, &len) ||
        off + len != n || len < 2 || p[off] != 0x00) {
        return false;
    }
    pt->len = len - 1;
    pt->p = malloc(pt->len);
    if (pt->p == NULL) {
        return false;
    }
    memcpy(pt->p, p + off + 1, pt->len);
    return true;
}

/* ------------------------------------------------------------ module */

static void destroy(CK_OBJECT_HANDLE h)
{
    if (h != CK_INVALID_HANDLE) {
        CK_RV rv = p11->C_DestroyObject(S, h);

        if (rv != CKR_OK) {
            fail_msg("C_DestroyObject: %s", p11_rv_name(rv));
        }
    }
}

static CK_RV import_ec_public(const struct curve *cv, const struct bytes *pt,
                              CK_OBJECT_HANDLE *h)
{
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_KEY_TYPE kt = cv->kt;
    CK_BYTE *der = NULL;
    size_t der_len = der_octet_string(pt->p, pt->len, &der);
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_VERIFY, &yes, sizeof(yes)},
        {CKA_EC_PARAMS, (void *)cv->params, cv->params_len},
        {CKA_EC_POINT, der, der_len},
    };
    CK_RV rv;

    *h = CK_INVALID_HANDLE;
    rv = p11->C_CreateObject(S, t, N(t), h);
    free(der);
    return rv;
}

static CK_RV import_ec_private(const struct curve *cv, const struct bytes *d,
                               CK_OBJECT_HANDLE *h)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_KEY_TYPE kt = cv->kt;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_DERIVE, &yes, sizeof(yes)},
        /* not sensitive: what a sensitive key derives is sensitive too */
        {CKA_SENSITIVE, &no, sizeof(no)},
        {CKA_EC_PARAMS, (void *)cv->params, cv->params_len},
        {CKA_VALUE, d->p, d->len},
    };

    *h = CK_INVALID_HANDLE;
    return p11->C_CreateObject(S, t, N(t), h);
}

/* RSA public key from group.publicKey (or the public half of privateKey). */
static CK_RV import_rsa_public(const json_t *key, CK_OBJECT_HANDLE *h)
{
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_KEY_TYPE kt = CKK_RSA;
    struct bytes n = unhex(key, "modulus");
    struct bytes e = unhex(key, "publicExponent");
    CK_RV rv;

    strip_zeros(&n);
    strip_zeros(&e);
    {
        CK_ATTRIBUTE t[] = {
            {CKA_CLASS, &cls, sizeof(cls)}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
            {CKA_TOKEN, &no, sizeof(no)},   {CKA_VERIFY, &yes, sizeof(yes)},
            {CKA_MODULUS, n.p, n.len},      {CKA_PUBLIC_EXPONENT, e.p, e.len},
        };

        *h = CK_INVALID_HANDLE;
        rv = p11->C_CreateObject(S, t, N(t), h);
    }
    bytes_free(&n);
    bytes_free(&e);
    return rv;
}

/* RSA private key from group.privateKey, with its CRT values if given. */
static CK_RV import_rsa_private(const json_t *key, CK_OBJECT_HANDLE *h)
{
    static const struct {
        const char *name;
        CK_ATTRIBUTE_TYPE type;
    } parts[] = {
        {"modulus", CKA_MODULUS},
        {"publicExponent", CKA_PUBLIC_EXPONENT},
        {"privateExponent", CKA_PRIVATE_EXPONENT},
        {"prime1", CKA_PRIME_1},
        {"prime2", CKA_PRIME_2},
        {"exponent1", CKA_EXPONENT_1},
        {"exponent2", CKA_EXPONENT_2},
        {"coefficient", CKA_COEFFICIENT},
    };
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_KEY_TYPE kt = CKK_RSA;
    struct bytes v[N(parts)];
    CK_ATTRIBUTE t[6 + N(parts)] = {
        {CKA_CLASS, &cls, sizeof(cls)},   {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},     {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)}, {CKA_SENSITIVE, &yes, sizeof(yes)},
    };
    CK_ULONG n = 6;
    CK_RV rv;

    memset(v, 0, sizeof(v));
    for (size_t i = 0; i < N(parts); i++) {
        if (json_get_str(key, parts[i].name) == NULL) {
            continue;
        }
        v[i] = unhex(key, parts[i].name);
        strip_zeros(&v[i]);
        t[n].type = parts[i].type;
        t[n].pValue = v[i].p;
        t[n].ulValueLen = v[i].len;
        n++;
    }
    *h = CK_INVALID_HANDLE;
    rv = p11->C_CreateObject(S, t, n, h);
    for (size_t i = 0; i < N(parts); i++) {
        bytes_free(&v[i]);
    }
    return rv;
}

static CK_RV import_secret(const struct bytes *k, CK_OBJECT_HANDLE *h)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},  {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},    {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_VERIFY, &yes, sizeof(yes)}, {CKA_VALUE, k->p, k->len},
    };

    *h = CK_INVALID_HANDLE;
    return p11->C_CreateObject(S, t, N(t), h);
}

/* C_VerifyInit + C_Verify: accepted, or the code that refused it. */
static enum outcome verify(CK_MECHANISM *m, CK_OBJECT_HANDLE key,
                           const struct bytes *msg, const CK_BYTE *sig,
                           size_t siglen, CK_RV *rv, const char **what)
{
    *what = "C_VerifyInit";
    *rv = p11->C_VerifyInit(S, m, key);
    if (*rv != CKR_OK) {
        return OUT_REJECT;
    }
    *what = "C_Verify";
    *rv = p11->C_Verify(S, msg->p, msg->len, (CK_BYTE_PTR)sig, siglen);
    return *rv == CKR_OK ? OUT_ACCEPT : OUT_REJECT;
}

/* ------------------------------------------------------------ files */

/* Every test of group g is skipped for the same reason. */
static void skip_group(struct counts *c, const json_t *g, const char *why)
{
    for (size_t i = 0; i < json_count(json_get(g, "tests")); i++) {
        record(c, json_at(json_get(g, "tests"), i), OUT_SKIP, CKR_OK, why);
    }
}

static void run_ecdsa(const json_t *doc, struct counts *c, bool der)
{
    const json_t *groups = json_get(doc, "testGroups");

    for (size_t gi = 0; gi < json_count(groups); gi++) {
        const json_t *g = json_at(groups, gi);
        const json_t *pk = json_get(g, "publicKey");
        const json_t *tests = json_get(g, "tests");
        const struct curve *cv = curve_find(json_get_str(pk, "curve"));
        const struct hash *hs = hash_find(json_get_str(g, "sha"));
        CK_MECHANISM m = {0, NULL, 0};
        CK_OBJECT_HANDLE key;
        struct bytes pt;
        CK_RV krv;

        if (cv == NULL || cv->kt != CKK_EC) {
            skip_group(c, g, "curve not handled by the harness");
            continue;
        }
        if (hs == NULL) {
            skip_group(c, g, "hash not handled by the harness");
            continue;
        }
        m.mechanism = hs->ecdsa;
        pt = unhex(pk, "uncompressed");
        krv = import_ec_public(cv, &pt, &key);
        bytes_free(&pt);
        for (size_t ti = 0; ti < json_count(tests); ti++) {
            const json_t *t = json_at(tests, ti);
            struct bytes msg, sig;
            CK_BYTE raw[2 * 66];
            const CK_BYTE *s;
            size_t slen;
            const char *what;
            enum outcome o;
            CK_RV rv;

            if (krv != CKR_OK) {
                record(c, t, OUT_REJECT, krv, "C_CreateObject (public key)");
                continue;
            }
            msg = unhex(t, "msg");
            sig = unhex(t, "sig");
            s = sig.p;
            slen = sig.len;
            if (der) {
                if (!ecdsa_der_to_raw(&sig, cv->len, raw)) {
                    c->der_refused++;
                    record(c, t, OUT_REJECT, CKR_SIGNATURE_INVALID,
                           "the harness's DER parser");
                    bytes_free(&msg);
                    bytes_free(&sig);
                    continue;
                }
                s = raw;
                slen = 2 * cv->len;
            }
            o = verify(&m, key, &msg, s, slen, &rv, &what);
            record(c, t, o, rv, what);
            bytes_free(&msg);
            bytes_free(&sig);
        }
        if (krv == CKR_OK) {
            destroy(key);
        }
    }
}

static void run_eddsa(const json_t *doc, struct counts *c)
{
    const json_t *groups = json_get(doc, "testGroups");

    for (size_t gi = 0; gi < json_count(groups); gi++) {
        const json_t *g = json_at(groups, gi);
        const json_t *pk = json_get(g, "publicKey");
        const json_t *tests = json_get(g, "tests");
        const struct curve *cv = curve_find(json_get_str(pk, "curve"));
        CK_MECHANISM m = {CKM_EDDSA, NULL, 0};
        CK_OBJECT_HANDLE key;
        struct bytes pt;
        CK_RV krv;

        if (cv == NULL || cv->kt != CKK_EC_EDWARDS) {
            skip_group(c, g, "curve not handled by the harness");
            continue;
        }
        pt = unhex(pk, "pk");
        krv = import_ec_public(cv, &pt, &key);
        bytes_free(&pt);
        for (size_t ti = 0; ti < json_count(tests); ti++) {
            const json_t *t = json_at(tests, ti);
            struct bytes msg, sig;
            const char *what;
            enum outcome o;
            CK_RV rv;

            if (krv != CKR_OK) {
                record(c, t, OUT_REJECT, krv, "C_CreateObject (public key)");
                continue;
            }
            msg = unhex(t, "msg");
            sig = unhex(t, "sig");
            o = verify(&m, key, &msg, sig.p, sig.len, &rv, &what);
            record(c, t, o, rv, what);
            bytes_free(&msg);
            bytes_free(&sig);
        }
        if (krv == CKR_OK) {
            destroy(key);
        }
    }
}

/*
 * ECDH (raw point) and X25519: the private key is imported, the peer's
 * public value goes in CK_ECDH1_DERIVE_PARAMS (CKD_NULL), and the derived
 * generic secret is read back and compared.
 */
static enum outcome derive_shared(const struct curve *cv,
                                  const struct bytes *priv,
                                  const struct bytes *pub,
                                  const struct bytes *shared, CK_RV *rv,
                                  const char **what)
{
    CK_ECDH1_DERIVE_PARAMS p = {CKD_NULL, 0, NULL, (CK_ULONG)pub->len, pub->p};
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof(p)};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ULONG vlen = (CK_ULONG)(shared->len > 0 ? shared->len : cv->len);
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_SENSITIVE, &no, sizeof(no)},
        {CKA_EXTRACTABLE, &yes, sizeof(yes)},
        {CKA_VALUE_LEN, &vlen, sizeof(vlen)},
    };
    CK_OBJECT_HANDLE key, secret = CK_INVALID_HANDLE;
    CK_BYTE out[OUT_MAX];
    CK_ATTRIBUTE va = {CKA_VALUE, out, sizeof(out)};
    enum outcome o;

    *what = "C_CreateObject (private key)";
    *rv = import_ec_private(cv, priv, &key);
    if (*rv != CKR_OK) {
        return OUT_REJECT;
    }
    *what = "C_DeriveKey";
    *rv = p11->C_DeriveKey(S, &m, key, t, N(t), &secret);
    if (*rv != CKR_OK) {
        destroy(key);
        return OUT_REJECT;
    }
    *what = "C_GetAttributeValue(CKA_VALUE)";
    *rv = p11->C_GetAttributeValue(S, secret, &va, 1);
    if (*rv != CKR_OK) {
        o = OUT_REJECT;
        /* A derived secret we cannot read is a module failure. */
        *rv = CKR_GENERAL_ERROR;
    } else {
        o = bytes_eq(out, va.ulValueLen, shared) ? OUT_ACCEPT : OUT_WRONG;
        *what = "C_DeriveKey";
    }
    destroy(secret);
    destroy(key);
    return o;
}

static void run_ecdh(const json_t *doc, struct counts *c, bool spki)
{
    const json_t *groups = json_get(doc, "testGroups");

    for (size_t gi = 0; gi < json_count(groups); gi++) {
        const json_t *g = json_at(groups, gi);
        const json_t *tests = json_get(g, "tests");
        const struct curve *cv = curve_find(json_get_str(g, "curve"));

        if (cv == NULL || cv->kt == CKK_EC_EDWARDS) {
            skip_group(c, g, "curve not handled by the harness");
            continue;
        }
        for (size_t ti = 0; ti < json_count(tests); ti++) {
            const json_t *t = json_at(tests, ti);
            struct bytes priv = unhex(t, "private");
            struct bytes pub = unhex(t, "public");
            struct bytes shared = unhex(t, "shared");
            struct bytes pt = {NULL, 0};
            const char *what = "";
            enum outcome o;
            CK_RV rv = CKR_OK;

            /* Weierstrass private values are integers; X25519's are byte
             * strings taken as they are. */
            if (cv->kt == CKK_EC && !pad_to(&priv, cv->len)) {
                o = OUT_SKIP;
                what = "private value longer than the curve";
            } else if (spki && !spki_point(&pub, cv, &pt)) {
                c->der_refused++;
                o = OUT_REJECT;
                rv = CKR_DOMAIN_PARAMS_INVALID;
                what = "the harness's SubjectPublicKeyInfo parser";
            } else if (spki) {
                o = derive_shared(cv, &priv, &pt, &shared, &rv, &what);
                bytes_free(&pt);
            } else {
                o = derive_shared(cv, &priv, &pub, &shared, &rv, &what);
            }
            record(c, t, o, rv, what);
            bytes_free(&priv);
            bytes_free(&pub);
            bytes_free(&shared);
        }
    }
}

static void run_hmac(const json_t *doc, struct counts *c)
{
    const char *alg = json_get_str(doc, "algorithm");
    const json_t *groups = json_get(doc, "testGroups");
    const struct hash *hs = NULL;
    char name[16];

    /* "HMACSHA256" -> "SHA-256"; "HMACSHA3-256" -> "SHA3-256" */
    if (alg != NULL && strncmp(alg, "HMACSHA", 7) == 0) {
        if (strncmp(alg + 7, "3-", 2) == 0) {
            snprintf(name, sizeof(name), "SHA3%s", alg + 8);
        } else {
            snprintf(name, sizeof(name), "SHA-%s", alg + 7);
        }
        hs = hash_find(name);
    }
    for (size_t gi = 0; gi < json_count(groups); gi++) {
        const json_t *g = json_at(groups, gi);
        const json_t *tests = json_get(g, "tests");
        CK_ULONG tag_bytes = (CK_ULONG)json_get_int(g, "tagSize", 0) / 8;
        CK_MAC_GENERAL_PARAMS gp = tag_bytes;
        CK_MECHANISM m = {0, NULL, 0};

        if (hs == NULL) {
            skip_group(c, g, "MAC algorithm not handled by the harness");
            continue;
        }
        if (tag_bytes == hs->len) {
            m.mechanism = hs->hmac;
        } else {
            m.mechanism = hs->hmac_general;
            m.pParameter = &gp;
            m.ulParameterLen = sizeof(gp);
        }
        for (size_t ti = 0; ti < json_count(tests); ti++) {
            const json_t *t = json_at(tests, ti);
            struct bytes k = unhex(t, "key");
            struct bytes msg = unhex(t, "msg");
            struct bytes tag = unhex(t, "tag");
            CK_BYTE out[OUT_MAX];
            CK_ULONG outlen = sizeof(out);
            CK_OBJECT_HANDLE key;
            const char *what = "C_CreateObject (key)";
            enum outcome o = OUT_REJECT;
            CK_RV rv;

            rv = import_secret(&k, &key);
            if (rv == CKR_OK) {
                /* The tag the module computes... */
                what = "C_SignInit";
                rv = p11->C_SignInit(S, &m, key);
                if (rv == CKR_OK) {
                    what = "C_Sign";
                    rv = p11->C_Sign(S, msg.p, msg.len, out, &outlen);
                }
                /* ...must equal a valid vector's tag; verification is the
                 * verdict. */
                if (rv == CKR_OK) {
                    bool same = bytes_eq(out, outlen, &tag);

                    o = verify(&m, key, &msg, tag.p, tag.len, &rv, &what);
                    if (o == OUT_ACCEPT && !same) {
                        o = OUT_WRONG;
                        what = "C_Sign and C_Verify disagree:";
                    } else if (o == OUT_REJECT && same) {
                        o = OUT_WRONG;
                        what = "C_Verify refused C_Sign's own tag:";
                    }
                } else {
                    o = OUT_REJECT;
                }
                destroy(key);
            }
            record(c, t, o, rv, what);
            bytes_free(&k);
            bytes_free(&msg);
            bytes_free(&tag);
        }
    }
}

enum rsa_kind {
    RSA_PKCS1_VERIFY,
    RSA_PKCS1_SIGN,
    RSA_PSS_VERIFY,
    RSA_OAEP_DECRYPT,
    RSA_PKCS1_DECRYPT,
};

static void run_rsa(const json_t *doc, struct counts *c, enum rsa_kind kind)
{
    const json_t *groups = json_get(doc, "testGroups");

    for (size_t gi = 0; gi < json_count(groups); gi++) {
        const json_t *g = json_at(groups, gi);
        const json_t *tests = json_get(g, "tests");
        const struct hash *hs = hash_find(json_get_str(g, "sha"));
        const struct hash *mgf = hash_find(json_get_str(g, "mgfSha"));
        CK_RSA_PKCS_PSS_PARAMS pss;
        CK_RSA_PKCS_OAEP_PARAMS oaep;
        CK_MECHANISM m = {0, NULL, 0};
        CK_OBJECT_HANDLE key;
        const char *kwhat;
        CK_RV krv;

        memset(&pss, 0, sizeof(pss));
        memset(&oaep, 0, sizeof(oaep));
        switch (kind) {
        case RSA_PKCS1_VERIFY:
        case RSA_PKCS1_SIGN:
            m.mechanism = hs != NULL ? hs->rsa_pkcs : 0;
            break;
        case RSA_PSS_VERIFY:
            m.mechanism = hs != NULL ? hs->rsa_pss : 0;
            pss.hashAlg = hs != NULL ? hs->digest : 0;
            pss.mgf = mgf != NULL ? mgf->mgf : 0;
            pss.sLen = (CK_ULONG)json_get_int(g, "sLen", 0);
            m.pParameter = &pss;
            m.ulParameterLen = sizeof(pss);
            break;
        case RSA_OAEP_DECRYPT:
            m.mechanism = CKM_RSA_PKCS_OAEP;
            oaep.hashAlg = hs != NULL ? hs->digest : 0;
            oaep.mgf = mgf != NULL ? mgf->mgf : 0;
            oaep.source = CKZ_DATA_SPECIFIED;
            m.pParameter = &oaep;
            m.ulParameterLen = sizeof(oaep);
            break;
        case RSA_PKCS1_DECRYPT:
            m.mechanism = CKM_RSA_PKCS;
            break;
        }
        if (kind != RSA_PKCS1_DECRYPT && hs == NULL) {
            skip_group(c, g, "hash not handled by the harness");
            continue;
        }
        if ((kind == RSA_PSS_VERIFY || kind == RSA_OAEP_DECRYPT) &&
            (mgf == NULL || strcmp(json_get_str(g, "mgf"), "MGF1") != 0)) {
            skip_group(c, g, "mask generation not handled by the harness");
            continue;
        }
        if (kind == RSA_PKCS1_VERIFY || kind == RSA_PSS_VERIFY) {
            kwhat = "C_CreateObject (public key)";
            krv = import_rsa_public(json_get(g, "publicKey"), &key);
        } else {
            kwhat = "C_CreateObject (private key)";
            krv = import_rsa_private(json_get(g, "privateKey"), &key);
        }
        for (size_t ti = 0; ti < json_count(tests); ti++) {
            const json_t *t = json_at(tests, ti);
            CK_BYTE out[OUT_MAX];
            CK_ULONG outlen = sizeof(out);
            struct bytes in, want, label = {NULL, 0};
            const char *what = kwhat;
            enum outcome o = OUT_REJECT;
            CK_RV rv = krv;

            if (krv != CKR_OK) {
                record(c, t, OUT_REJECT, krv, kwhat);
                continue;
            }
            if (kind == RSA_OAEP_DECRYPT || kind == RSA_PKCS1_DECRYPT) {
                in = unhex(t, "ct");
                want = unhex(t, "msg");
            } else {
                in = unhex(t, "msg");
                want = unhex(t, "sig");
            }
            switch (kind) {
            case RSA_PKCS1_VERIFY:
            case RSA_PSS_VERIFY:
                o = verify(&m, key, &in, want.p, want.len, &rv, &what);
                break;
            case RSA_PKCS1_SIGN:
                what = "C_SignInit";
                rv = p11->C_SignInit(S, &m, key);
                if (rv == CKR_OK) {
                    what = "C_Sign";
                    rv = p11->C_Sign(S, in.p, in.len, out, &outlen);
                }
                if (rv == CKR_OK) {
                    o = bytes_eq(out, outlen, &want) ? OUT_ACCEPT : OUT_WRONG;
                }
                break;
            case RSA_OAEP_DECRYPT:
            case RSA_PKCS1_DECRYPT:
                if (kind == RSA_OAEP_DECRYPT) {
                    label = unhex(t, "label");
                    oaep.pSourceData = label.len > 0 ? label.p : NULL;
                    oaep.ulSourceDataLen = (CK_ULONG)label.len;
                }
                what = "C_DecryptInit";
                rv = p11->C_DecryptInit(S, &m, key);
                if (rv == CKR_OK) {
                    what = "C_Decrypt";
                    rv = p11->C_Decrypt(S, in.p, in.len, out, &outlen);
                }
                if (rv == CKR_OK) {
                    o = bytes_eq(out, outlen, &want) ? OUT_ACCEPT : OUT_WRONG;
                }
                bytes_free(&label);
                break;
            }
            record(c, t, o, rv, what);
            bytes_free(&in);
            bytes_free(&want);
        }
        if (krv == CKR_OK) {
            destroy(key);
        }
    }
}

/* ------------------------------------------------------------ symmetric */

/*
 * An AES key for the ciphers and MACs the files need, or (kek) one that
 * wraps and unwraps: key separation keeps the two apart.
 */
static CK_RV import_aes_for(const struct bytes *k, bool kek,
                            CK_OBJECT_HANDLE *h)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL cipher = kek ? CK_FALSE : CK_TRUE;
    CK_BBOOL wrap = kek ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},  {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},    {CKA_ENCRYPT, &cipher, 1},
        {CKA_DECRYPT, &cipher, 1},       {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_VERIFY, &yes, sizeof(yes)}, {CKA_WRAP, &wrap, 1},
        {CKA_UNWRAP, &wrap, 1},          {CKA_VALUE, k->p, k->len},
    };

    *h = CK_INVALID_HANDLE;
    return p11->C_CreateObject(S, t, N(t), h);
}

static CK_RV import_aes(const struct bytes *k, CK_OBJECT_HANDLE *h)
{
    return import_aes_for(k, false, h);
}

/* One-shot encryption or decryption; *out malloc'd. */
static CK_RV crypt_once(bool enc, CK_MECHANISM *m, CK_OBJECT_HANDLE k,
                        const struct bytes *in, CK_BYTE **out, CK_ULONG *outlen)
{
    CK_RV rv;

    *out = NULL;
    *outlen = 0;
    rv = enc ? p11->C_EncryptInit(S, m, k) : p11->C_DecryptInit(S, m, k);
    if (rv != CKR_OK) {
        return rv;
    }
    rv = enc ? p11->C_Encrypt(S, in->p, in->len, NULL, outlen)
             : p11->C_Decrypt(S, in->p, in->len, NULL, outlen);
    if (rv != CKR_OK) {
        return rv;
    }
    *out = malloc(*outlen + 1);
    assert_non_null(*out);
    rv = enc ? p11->C_Encrypt(S, in->p, in->len, *out, outlen)
             : p11->C_Decrypt(S, in->p, in->len, *out, outlen);
    return rv;
}

static struct bytes concat(const struct bytes *a, const struct bytes *b)
{
    struct bytes r;

    r.len = a->len + b->len;
    r.p = malloc(r.len + 1);
    assert_non_null(r.p);
    memcpy(r.p, a->p, a->len);
    memcpy(r.p + a->len, b->p, b->len);
    return r;
}

static bool all_zero(const struct bytes *b)
{
    for (size_t i = 0; i < b->len; i++) {
        if (b->p[i] != 0) {
            return false;
        }
    }
    return true;
}

/*
 * A valid vector: encryption gives ct (when enc), decryption of ct gives
 * msg. Invalid: decryption of ct is refused.
 */
static void crypt_vector(struct counts *c, const json_t *t, CK_MECHANISM *m,
                         const struct bytes *key, const struct bytes *msg,
                         const struct bytes *ct, bool enc)
{
    const char *result = json_get_str(t, "result");
    bool valid = result != NULL && strcmp(result, "valid") == 0;
    const char *what = "C_CreateObject (key)";
    enum outcome o = OUT_REJECT;
    CK_OBJECT_HANDLE k;
    CK_BYTE *out = NULL;
    CK_ULONG outlen = 0;
    CK_RV rv;

    rv = import_aes(key, &k);
    if (rv != CKR_OK) {
        record(c, t, OUT_REJECT, rv, what);
        return;
    }
    if (valid && enc) {
        what = "C_Encrypt";
        rv = crypt_once(true, m, k, msg, &out, &outlen);
        if (rv != CKR_OK || !bytes_eq(out, outlen, ct)) {
            record(c, t, rv == CKR_OK ? OUT_WRONG : OUT_REJECT, rv, what);
            free(out);
            destroy(k);
            return;
        }
        free(out);
        out = NULL;
    }
    what = "C_Decrypt";
    rv = crypt_once(false, m, k, ct, &out, &outlen);
    if (rv == CKR_OK) {
        o = bytes_eq(out, outlen, msg) ? OUT_ACCEPT : OUT_WRONG;
    }
    record(c, t, o, rv, what);
    free(out);
    destroy(k);
}

static void run_aes_gcm(const json_t *doc, struct counts *c)
{
    const json_t *groups = json_get(doc, "testGroups");

    for (size_t gi = 0; gi < json_count(groups); gi++) {
        const json_t *g = json_at(groups, gi);
        const json_t *tests = json_get(g, "tests");
        CK_ULONG tag_bits = (CK_ULONG)json_get_int(g, "tagSize", 0);

        for (size_t ti = 0; ti < json_count(tests); ti++) {
            const json_t *t = json_at(tests, ti);
            struct bytes key = unhex(t, "key");
            struct bytes iv = unhex(t, "iv");
            struct bytes a = unhex(t, "aad");
            struct bytes msg = unhex(t, "msg");
            struct bytes ct = unhex(t, "ct");
            struct bytes tag = unhex(t, "tag");
            struct bytes full = concat(&ct, &tag);
            CK_GCM_PARAMS p = {iv.p, iv.len, iv.len * 8, a.p, a.len, tag_bits};
            CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof(p)};

            if (iv.len == 0) {
                record(c, t, OUT_SKIP, CKR_OK,
                       "0-byte IV: CK_GCM_PARAMS.ulIvLen must be >= 1");
            } else if (iv.len > 128) {
                record(c, t, OUT_SKIP, CKR_OK,
                       "IV over 128 bytes: OpenSSL 3.0's GCM takes no more");
            } else {
                /* 12 zero bytes ask the token for an IV on encryption. */
                bool enc = !(iv.len == 12 && all_zero(&iv));

                crypt_vector(c, t, &m, &key, &msg, &full, enc);
            }
            bytes_free(&key);
            bytes_free(&iv);
            bytes_free(&a);
            bytes_free(&msg);
            bytes_free(&ct);
            bytes_free(&tag);
            bytes_free(&full);
        }
    }
}

static void run_aes_cbc_pad(const json_t *doc, struct counts *c)
{
    const json_t *groups = json_get(doc, "testGroups");

    for (size_t gi = 0; gi < json_count(groups); gi++) {
        const json_t *tests = json_get(json_at(groups, gi), "tests");

        for (size_t ti = 0; ti < json_count(tests); ti++) {
            const json_t *t = json_at(tests, ti);
            struct bytes key = unhex(t, "key");
            struct bytes iv = unhex(t, "iv");
            struct bytes msg = unhex(t, "msg");
            struct bytes ct = unhex(t, "ct");
            CK_MECHANISM m = {CKM_AES_CBC_PAD, iv.p, iv.len};

            crypt_vector(c, t, &m, &key, &msg, &ct, true);
            bytes_free(&key);
            bytes_free(&iv);
            bytes_free(&msg);
            bytes_free(&ct);
        }
    }
}

/* A secret to be wrapped: a generic secret with the message as value. */
static CK_RV import_wrappable(const struct bytes *v, CK_OBJECT_HANDLE *h)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},   {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},     {CKA_EXTRACTABLE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &no, sizeof(no)}, {CKA_VALUE, v->p, v->len},
    };

    *h = CK_INVALID_HANDLE;
    return p11->C_CreateObject(S, t, N(t), h);
}

/*
 * AES-KW / AES-KWP: a valid vector wraps the message (imported as a
 * generic secret) to ct and unwraps ct back to it; an invalid one must not
 * unwrap.
 */
static void keywrap_vector(struct counts *c, const json_t *t, CK_MECHANISM *m,
                           const struct bytes *key, const struct bytes *msg,
                           const struct bytes *ct)
{
    const char *result = json_get_str(t, "result");
    bool valid = result != NULL && strcmp(result, "valid") == 0;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ATTRIBUTE ut[] = {
        {CKA_CLASS, &cls, sizeof(cls)},   {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},     {CKA_EXTRACTABLE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &no, sizeof(no)},
    };
    const char *what = "C_CreateObject (wrapping key)";
    CK_OBJECT_HANDLE wk, k = CK_INVALID_HANDLE, u = CK_INVALID_HANDLE;
    CK_BYTE out[OUT_MAX];
    CK_ULONG outlen = sizeof(out);
    enum outcome o = OUT_REJECT;
    CK_RV rv;

    rv = import_aes_for(key, true, &wk);
    if (rv != CKR_OK) {
        record(c, t, OUT_REJECT, rv, what);
        return;
    }
    if (valid) {
        what = "C_CreateObject (key to wrap)";
        rv = import_wrappable(msg, &k);
        if (rv == CKR_OK) {
            what = "C_WrapKey";
            rv = p11->C_WrapKey(S, m, wk, k, out, &outlen);
        }
        if (rv != CKR_OK || !bytes_eq(out, outlen, ct)) {
            record(c, t, rv == CKR_OK ? OUT_WRONG : OUT_REJECT, rv, what);
            destroy(k);
            destroy(wk);
            return;
        }
        destroy(k);
    }
    what = "C_UnwrapKey";
    rv = p11->C_UnwrapKey(S, m, wk, ct->p, ct->len, ut, N(ut), &u);
    if (rv == CKR_OK) {
        CK_ATTRIBUTE a = {CKA_VALUE, out, sizeof(out)};

        what = "C_GetAttributeValue (unwrapped)";
        rv = p11->C_GetAttributeValue(S, u, &a, 1);
        o = rv == CKR_OK && bytes_eq(out, a.ulValueLen, msg) ? OUT_ACCEPT
                                                             : OUT_WRONG;
        destroy(u);
    }
    record(c, t, o, rv, what);
    destroy(wk);
}

static void run_keywrap(const json_t *doc, struct counts *c, bool kwp)
{
    const json_t *groups = json_get(doc, "testGroups");
    CK_MECHANISM m = {kwp ? CKM_AES_KEY_WRAP_KWP : CKM_AES_KEY_WRAP, NULL, 0};

    for (size_t gi = 0; gi < json_count(groups); gi++) {
        const json_t *tests = json_get(json_at(groups, gi), "tests");

        for (size_t ti = 0; ti < json_count(tests); ti++) {
            const json_t *t = json_at(tests, ti);
            struct bytes key = unhex(t, "key");
            struct bytes msg = unhex(t, "msg");
            struct bytes ct = unhex(t, "ct");
            const char *result = json_get_str(t, "result");

            if (msg.len == 0 && result != NULL &&
                strcmp(result, "invalid") != 0) {
                record(c, t, OUT_SKIP, CKR_OK,
                       "a 0-byte message cannot be a key to wrap");
            } else {
                keywrap_vector(c, t, &m, &key, &msg, &ct);
            }
            bytes_free(&key);
            bytes_free(&msg);
            bytes_free(&ct);
        }
    }
}

static void run_cmac(const json_t *doc, struct counts *c)
{
    const json_t *groups = json_get(doc, "testGroups");

    for (size_t gi = 0; gi < json_count(groups); gi++) {
        const json_t *g = json_at(groups, gi);
        const json_t *tests = json_get(g, "tests");
        CK_ULONG tag_bytes = (CK_ULONG)json_get_int(g, "tagSize", 0) / 8;
        CK_MAC_GENERAL_PARAMS gp = tag_bytes;
        CK_MECHANISM m = {CKM_AES_CMAC, NULL, 0};

        if (tag_bytes != 16) {
            m.mechanism = CKM_AES_CMAC_GENERAL;
            m.pParameter = &gp;
            m.ulParameterLen = sizeof(gp);
        }
        for (size_t ti = 0; ti < json_count(tests); ti++) {
            const json_t *t = json_at(tests, ti);
            struct bytes k = unhex(t, "key");
            struct bytes msg = unhex(t, "msg");
            struct bytes tag = unhex(t, "tag");
            CK_BYTE out[OUT_MAX];
            CK_ULONG outlen = sizeof(out);
            CK_OBJECT_HANDLE key;
            const char *what = "C_CreateObject (key)";
            enum outcome o = OUT_REJECT;
            CK_RV rv;

            rv = import_aes(&k, &key);
            if (rv == CKR_OK) {
                what = "C_SignInit";
                rv = p11->C_SignInit(S, &m, key);
                if (rv == CKR_OK) {
                    what = "C_Sign";
                    rv = p11->C_Sign(S, msg.p, msg.len, out, &outlen);
                }
                if (rv == CKR_OK) {
                    bool same = bytes_eq(out, outlen, &tag);

                    o = verify(&m, key, &msg, tag.p, tag.len, &rv, &what);
                    if (o == OUT_ACCEPT && !same) {
                        o = OUT_WRONG;
                        what = "C_Sign and C_Verify disagree:";
                    } else if (o == OUT_REJECT && same) {
                        o = OUT_WRONG;
                        what = "C_Verify refused C_Sign's own tag:";
                    }
                }
                destroy(key);
            }
            record(c, t, o, rv, what);
            bytes_free(&k);
            bytes_free(&msg);
            bytes_free(&tag);
        }
    }
}

static void run_hkdf(const json_t *doc, struct counts *c)
{
    const char *alg = json_get_str(doc, "algorithm");
    const json_t *groups = json_get(doc, "testGroups");
    CK_MECHANISM_TYPE hash = 0;

    /* "HKDF-SHA-256" -> CKM_SHA256 */
    if (alg != NULL && strncmp(alg, "HKDF-", 5) == 0) {
        const struct hash *h = hash_find(alg + 5);

        hash = h != NULL ? h->digest : 0;
    }
    for (size_t gi = 0; gi < json_count(groups); gi++) {
        const json_t *g = json_at(groups, gi);
        const json_t *tests = json_get(g, "tests");

        if (hash == 0) {
            skip_group(c, g, "hash not handled by the harness");
            continue;
        }
        for (size_t ti = 0; ti < json_count(tests); ti++) {
            const json_t *t = json_at(tests, ti);
            struct bytes ikm = unhex(t, "ikm");
            struct bytes salt = unhex(t, "salt");
            struct bytes info = unhex(t, "info");
            struct bytes okm = unhex(t, "okm");
            CK_ULONG size = (CK_ULONG)json_get_int(t, "size", 0);
            CK_HKDF_PARAMS p;
            CK_MECHANISM m = {CKM_HKDF_DERIVE, &p, sizeof(p)};
            CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
            CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
            CK_ATTRIBUTE bt[] = {
                {CKA_CLASS, &cls, sizeof(cls)},
                {CKA_KEY_TYPE, &kt, sizeof(kt)},
                {CKA_TOKEN, &no, sizeof(no)},
                {CKA_DERIVE, &yes, sizeof(yes)},
                {CKA_SENSITIVE, &no, sizeof(no)}, /* the OKM is read back */
                {CKA_VALUE, ikm.p, ikm.len},
            };
            CK_ATTRIBUTE dt[] = {
                {CKA_CLASS, &cls, sizeof(cls)},
                {CKA_KEY_TYPE, &kt, sizeof(kt)},
                {CKA_TOKEN, &no, sizeof(no)},
                {CKA_EXTRACTABLE, &yes, sizeof(yes)},
                {CKA_SENSITIVE, &no, sizeof(no)},
                {CKA_VALUE_LEN, &size, sizeof(size)},
            };
            CK_OBJECT_HANDLE base, d;
            const char *what = "C_CreateObject (IKM)";
            enum outcome o = OUT_REJECT;
            CK_RV rv;

            memset(&p, 0, sizeof(p));
            p.bExtract = CK_TRUE;
            p.bExpand = CK_TRUE;
            p.prfHashMechanism = hash;
            /* RFC 5869 2.2: no salt is HashLen zeros, as is an empty one. */
            p.ulSaltType =
                salt.len > 0 ? CKF_HKDF_SALT_DATA : CKF_HKDF_SALT_NULL;
            p.pSalt = salt.len > 0 ? salt.p : NULL;
            p.ulSaltLen = salt.len;
            p.pInfo = info.len > 0 ? info.p : NULL;
            p.ulInfoLen = info.len;
            if (ikm.len == 0) {
                record(c, t, OUT_SKIP, CKR_OK,
                       "an empty IKM cannot be a key to derive from");
                goto next;
            }
            rv = p11->C_CreateObject(S, bt, N(bt), &base);
            if (rv == CKR_OK) {
                what = "C_DeriveKey";
                rv = p11->C_DeriveKey(S, &m, base, dt, N(dt), &d);
                if (rv == CKR_OK) {
                    CK_ATTRIBUTE a = {CKA_VALUE, NULL, 0};

                    what = "C_GetAttributeValue (derived)";
                    a.pValue = malloc(size + 1);
                    assert_non_null(a.pValue);
                    a.ulValueLen = size;
                    rv = p11->C_GetAttributeValue(S, d, &a, 1);
                    o = rv == CKR_OK && bytes_eq(a.pValue, a.ulValueLen, &okm)
                            ? OUT_ACCEPT
                            : OUT_WRONG;
                    free(a.pValue);
                    destroy(d);
                }
                destroy(base);
            }
            record(c, t, o, rv, what);
        next:
            bytes_free(&ikm);
            bytes_free(&salt);
            bytes_free(&info);
            bytes_free(&okm);
        }
    }
}

/* ------------------------------------------------------------ driver */

/* Families the module does not cover: none at the moment (kept for the
 * next one). */
static const char *not_covered(const char *file)
{
    (void)file;
    return NULL;
}

static void test_file(void **state)
{
    const char *file = *state;
    char path[sizeof(vec_dir) + 256];
    char err[256];
    struct counts c;
    const char *schema;
    const char *why;
    json_t *doc;
    time_t t0 = time(NULL);

    memset(&c, 0, sizeof(c));
    c.file = file;
    why = not_covered(file);
    if (why != NULL) {
        print_message("%s: skipped (%s)\n", file, why);
        skip();
    }
    snprintf(path, sizeof(path), "%s/%s", vec_dir, file);
    doc = json_load_file(path, err, sizeof(err));
    if (doc == NULL) {
        fail_msg("%s", err);
    }
    schema = json_get_str(doc, "schema");
    if (schema == NULL) {
        schema = "";
    }
    if (strcmp(schema, "ecdsa_verify_schema_v1.json") == 0) {
        run_ecdsa(doc, &c, true);
    } else if (strcmp(schema, "ecdsa_p1363_verify_schema_v1.json") == 0) {
        run_ecdsa(doc, &c, false);
    } else if (strcmp(schema, "eddsa_verify_schema_v1.json") == 0) {
        run_eddsa(doc, &c);
    } else if (strcmp(schema, "ecdh_ecpoint_test_schema_v1.json") == 0 ||
               strcmp(schema, "xdh_comp_schema_v1.json") == 0) {
        run_ecdh(doc, &c, false);
    } else if (strcmp(schema, "ecdh_test_schema_v1.json") == 0) {
        run_ecdh(doc, &c, true);
    } else if (strcmp(schema, "mac_test_schema_v1.json") == 0 &&
               strncmp(file, "hmac_", 5) == 0) {
        run_hmac(doc, &c);
    } else if (strcmp(schema, "rsassa_pkcs1_verify_schema_v1.json") == 0) {
        run_rsa(doc, &c, RSA_PKCS1_VERIFY);
    } else if (strcmp(schema, "rsassa_pkcs1_generate_schema_v1.json") == 0) {
        run_rsa(doc, &c, RSA_PKCS1_SIGN);
    } else if (strcmp(schema, "rsassa_pss_verify_schema_v1.json") == 0) {
        run_rsa(doc, &c, RSA_PSS_VERIFY);
    } else if (strcmp(schema, "rsaes_oaep_decrypt_schema_v1.json") == 0) {
        run_rsa(doc, &c, RSA_OAEP_DECRYPT);
    } else if (strcmp(schema, "rsaes_pkcs1_decrypt_schema_v1.json") == 0) {
        run_rsa(doc, &c, RSA_PKCS1_DECRYPT);
    } else if (strcmp(schema, "aead_test_schema_v1.json") == 0 &&
               strncmp(file, "aes_gcm", 7) == 0) {
        run_aes_gcm(doc, &c);
    } else if (strcmp(schema, "ind_cpa_test_schema_v1.json") == 0 &&
               strncmp(file, "aes_cbc_pkcs5", 13) == 0) {
        run_aes_cbc_pad(doc, &c);
    } else if (strcmp(schema, "keywrap_test_schema_v1.json") == 0) {
        run_keywrap(doc, &c, strncmp(file, "aes_kwp", 7) == 0);
    } else if (strcmp(schema, "mac_test_schema_v1.json") == 0 &&
               strncmp(file, "aes_cmac", 8) == 0) {
        run_cmac(doc, &c);
    } else if (strcmp(schema, "hkdf_test_schema_v1.json") == 0) {
        run_hkdf(doc, &c);
    } else {
        json_free(doc);
        print_message("%s: skipped (schema %s is not handled)\n", file, schema);
        skip();
    }
    json_free(doc);
    print_counts(&c);
    if (time(NULL) - t0 > 10) {
        print_message("    (%s took %ld s)\n", file, (long)(time(NULL) - t0));
    }
    if (c.valid_ok + c.invalid_rejected + c.acc_accepted + c.acc_rejected ==
        0) {
        fail_msg("%s: no vector ran", file);
    }
    if (c.failures > 0) {
        fail_msg("%s: %u vector(s) failed", file, c.failures);
    }
}

static int group_setup(void **state)
{
    (void)state;
    p11_fresh(NULL);
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    S = p11_open_rw();
    p11_login_cu(S, "alice", P11_ALICE_PW);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    p11_cleanup();
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int main(void)
{
    const char *base = getenv("NIMBUS_TESTVECTORS");
    const char *top = getenv("NIMBUS_TOP_SRCDIR");
    struct CMUnitTest tests[MAX_FILES];
    char *names[MAX_FILES];
    size_t n = 0;
    struct dirent *de;
    DIR *d;
    int failed;

    if (base != NULL && *base != '\0') {
        snprintf(vec_dir, sizeof(vec_dir), "%s/wycheproof", base);
    } else if (top != NULL && *top != '\0') {
        snprintf(vec_dir, sizeof(vec_dir),
                 "%s/../shared/testvectors/wycheproof", top);
    } else {
        snprintf(vec_dir, sizeof(vec_dir), "../shared/testvectors/wycheproof");
    }
    d = opendir(vec_dir);
    if (d == NULL) {
        fprintf(stderr,
                "test_vectors: no Wycheproof vectors at %s (set "
                "NIMBUS_TESTVECTORS to the testvectors folder): skipped\n",
                vec_dir);
        return 77;
    }
    while ((de = readdir(d)) != NULL && n < MAX_FILES) {
        if (!ends_with(de->d_name, ".json")) {
            continue;
        }
        names[n] = strdup(de->d_name);
        if (names[n] == NULL) {
            closedir(d);
            return 99;
        }
        n++;
    }
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "test_vectors: no .json files in %s: skipped\n",
                vec_dir);
        return 77;
    }
    qsort(names, n, sizeof(names[0]), name_cmp);
    if (p11_load() != 0) {
        return 99;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&tests[i], 0, sizeof(tests[i]));
        tests[i].name = names[i];
        tests[i].test_func = test_file;
        tests[i].initial_state = names[i];
    }
    failed = _cmocka_run_group_tests("wycheproof", tests, n, group_setup,
                                     group_teardown);
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    unsetenv("NIMBUS_CONF");
    if (p11_remote_failures() > 0) {
        fprintf(stderr, "test_vectors: %d nimbusd run(s) did not end cleanly\n",
                p11_remote_failures());
        failed += p11_remote_failures();
    }
    return failed > 90 ? 90 : failed;
}
