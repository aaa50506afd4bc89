/*
 * fuzz_p11.c - libFuzzer target over the PKCS#11 front end: templates,
 * mechanism parameters, wrap/unwrap/derive.
 *
 * The input drives a small interpreter. Each step picks a call
 * (C_CreateObject, C_GenerateKey(Pair), C_Encrypt/Decrypt/Sign/Verify,
 * C_WrapKey, C_UnwrapKey, C_DeriveKey, C_SetAttributeValue, C_CopyObject,
 * C_GetAttributeValue, ...) and builds its arguments from the next bytes:
 * templates whose lengths disagree with their types, nested templates,
 * mechanism parameters laid out per mechanism with lengths that are too
 * short, too long or absurd, and NULL pointers.
 *
 * A caller that lies about the size of its own buffer is outside what a
 * module can check, so every pointer handed in points into one arena with
 * at least ARENA_TAIL readable bytes behind it: only a length beyond every
 * limit of the module could read past the arena, and ASan reports that.
 * Raw input bytes never fill a pointer field of the layout a parameter is
 * built for.
 *
 * The token is set up once (a fresh store in a temporary directory,
 * activated, a CU logged in, a few keys of each kind made as session
 * objects of a session that stays open). Each input runs in its own
 * session on copies of those keys; closing that session drops what it
 * made, and token objects it made are destroyed after it: the store does
 * not grow and every input starts from the same state.
 */
#include "config.h"

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pkcs11/pkcs11.h"

#include "nimbus/pkcs11-vendor.h"

/* The module's own entry point (src/pkcs11/mod.h), linked in. */
CK_RV mod_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define ARENA_PTR_MAX (2u * 1024 * 1024) /* pointers point below this */
#define ARENA_TAIL (3u * 1024 * 1024)    /* readable bytes behind them */
#define ARENA_SIZE (ARENA_PTR_MAX + ARENA_TAIL)
#define DATA_MAX (256u * 1024) /* data lengths actually backed */
#define OBJ_MAX 48
#define STEPS_MAX 24

#define SO_PIN "fuzzsopass1"
#define CU_PIN "fuzz:fuzzpass1"

static CK_FUNCTION_LIST_PTR f;
static bool trace; /* FUZZ_P11_TRACE set: each call and its result */
static CK_SESSION_HANDLE base_session;
static CK_OBJECT_HANDLE base_keys[16];
static size_t n_base;
static char tmpdir[PATH_MAX];
static uint8_t *arena;
static size_t arena_off, arena_high;
static bool arena_full;

/* ------------------------------------------------------------ input */

typedef struct {
    const uint8_t *p;
    size_t n;
} rd_t;

static uint8_t u8(rd_t *r)
{
    uint8_t b;

    if (r->n == 0) {
        return 0;
    }
    b = *r->p;
    r->p++;
    r->n--;
    return b;
}

static CK_ULONG raw_ulong(rd_t *r)
{
    CK_ULONG v = 0;

    for (size_t i = 0; i < sizeof(v); i++) {
        v = v << 8 | u8(r);
    }
    return v;
}

/* Lengths and numbers: the boundaries of the module's limits first. */
static CK_ULONG pick_ulong(rd_t *r)
{
    static const CK_ULONG interesting[] = {
        0,
        1,
        2,
        3,
        4,
        7,
        8,
        12,
        13,
        16,
        20,
        24,
        28,
        32,
        48,
        64,
        96,
        128,
        255,
        256,
        1024,
        2048,
        4096,
        4097,
        65508,
        65509,
        65535,
        65536,
        65537,
        1048576,
        1048577,
        0x7fffffff,
        0xffffffff,
        0x100000000,
        ~(CK_ULONG)0,
        ~(CK_ULONG)0 - 1,
        (CK_ULONG)1 << 63,
    };
    uint8_t b = u8(r);

    if (b < 0x80) {
        return interesting[b % N(interesting)];
    }
    if (b < 0xe0) {
        return b & 0x3f;
    }
    return raw_ulong(r);
}

/* A length actually backed by the arena (a larger claim is kept as a
 * claim with a small buffer behind it). */
static CK_ULONG pick_len(rd_t *r)
{
    return pick_ulong(r);
}

/* ------------------------------------------------------------ arena */

static uint8_t *arena_take(size_t n)
{
    uint8_t *p;
    size_t need = n > ARENA_TAIL ? 64 : n;

    arena_off = (arena_off + 15) & ~(size_t)15;
    if (arena_off + need > ARENA_PTR_MAX) {
        /* Never reuse what this input built: the arguments being built
         * go to one spare place (they may alias, so the call they are for
         * is not made, see T) and the input ends. */
        arena_full = true;
        arena_high = ARENA_SIZE;
        return arena + ARENA_PTR_MAX;
    }
    p = arena + arena_off;
    arena_off += need;
    /* What the module may have written, wiped after the run: outputs
     * behind a short buffer are at most an attribute or a data block. */
    if (arena_off + DATA_MAX + 64 * 1024 > arena_high) {
        arena_high = arena_off + DATA_MAX + 64 * 1024;
    }
    return p;
}

/* claim bytes at a fresh place, the first of them from the input. */
static uint8_t *arena_bytes(rd_t *r, CK_ULONG claim)
{
    size_t backed = claim > DATA_MAX ? 64 : (size_t)claim;
    uint8_t *p = arena_take(backed);
    size_t take = backed < r->n ? backed : r->n;

    if (take > 64) {
        take = 64;
    }
    memcpy(p, r->p, take);
    r->p += take;
    r->n -= take;
    memset(p + take, 0, backed - take);
    return p;
}

/* ------------------------------------------------------------ names */

static const CK_ATTRIBUTE_TYPE attr_types[] = {
    CKA_CLASS,
    CKA_KEY_TYPE,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_VALUE,
    CKA_VALUE_LEN,
    CKA_SENSITIVE,
    CKA_EXTRACTABLE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_DERIVE,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_ID,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_MODULUS,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED,
    CKA_WRAP_TEMPLATE,
    CKA_UNWRAP_TEMPLATE,
    CKA_DERIVE_TEMPLATE,
    CKA_ALLOWED_MECHANISMS,
    CKA_APPLICATION,
    CKA_OBJECT_ID,
    CKA_CERTIFICATE_TYPE,
    CKA_SUBJECT,
    CKA_CHECK_VALUE,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_KEY_GEN_MECHANISM,
    CKA_LOCAL,
    CKA_NEVER_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_SIGN_RECOVER,
    CKA_VERIFY_RECOVER,
    CKA_PUBLIC_KEY_INFO,
    CKA_NIMBUS_OWNER,
    CKA_NIMBUS_SHARED_USERS,
    CKA_NIMBUS_OBJECT_ID,
    CKA_VALUE_BITS,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
};

static const CK_ULONG classes[] = {
    CKO_DATA,       CKO_CERTIFICATE, CKO_PUBLIC_KEY,        CKO_PRIVATE_KEY,
    CKO_SECRET_KEY, CKO_HW_FEATURE,  CKO_DOMAIN_PARAMETERS, CKO_MECHANISM,
    CKO_PROFILE,
};

static const CK_ULONG key_types[] = {
    CKK_RSA,  CKK_EC,         CKK_GENERIC_SECRET, CKK_AES,
    CKK_DES3, CKK_CHACHA20,   CKK_EC_EDWARDS,     CKK_EC_MONTGOMERY,
    CKK_HKDF, CKK_SHA_1_HMAC, CKK_SHA256_HMAC,    CKK_SHA512_HMAC,
    CKK_DSA,  CKK_DH,         CKK_POLY1305,
};

/* DER of namedCurve OIDs and names the module knows, and a few it does not. */
static const struct {
    const uint8_t *der;
    size_t len;
} ec_params[] = {
#define EP(...)                                                                \
    {                                                                          \
        (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}) \
    }
    EP(0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07),
    EP(0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22),
    EP(0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23),
    EP(0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x21),
    EP(0x06, 0x03, 0x2b, 0x65, 0x70),
    EP(0x06, 0x03, 0x2b, 0x65, 0x71),
    EP(0x06, 0x03, 0x2b, 0x65, 0x6e),
    EP(0x06, 0x03, 0x2b, 0x65, 0x6f),
    EP(0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'),
    EP(0x06, 0x09, 0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07),
    EP(0x05, 0x00),
    EP(0x06, 0x00),
    EP(0x06, 0x81),
#undef EP
};

/*
 * Mechanisms and the layout of their parameter, one letter per field:
 * u a number; w a word of raw bytes (CK_BBOOLs and padding); B 16 raw
 * bytes; d a data pointer then its length; L a length then its data
 * pointer; h an object handle; I a PBKDF2 iteration count; O a pointer to
 * a CK_RSA_PKCS_OAEP_PARAMS; K a CK_PRF_DATA_PARAM count then array; z a
 * pointer never to be read (NULL or zeroes); P a data pointer then a
 * pointer to its length (the 2.40 PBKDF2 layout); H a hash, MGF or PRF
 * name; r raw bytes of a length from the input (IVs); "" none.
 */
static const struct {
    CK_MECHANISM_TYPE type;
    const char *layout;
} mechs[] = {
    {CKM_RSA_PKCS_KEY_PAIR_GEN, ""},
    {CKM_RSA_PKCS, ""},
    {CKM_RSA_X_509, ""},
    {CKM_SHA256_RSA_PKCS, ""},
    {CKM_RSA_PKCS_OAEP, "HHud"},
    {CKM_RSA_PKCS_PSS, "HHu"},
    {CKM_SHA256_RSA_PKCS_PSS, "HHu"},
    {CKM_RSA_AES_KEY_WRAP, "uO"},
    {CKM_DES3_KEY_GEN, ""},
    {CKM_DES3_ECB, ""},
    {CKM_DES3_CBC, "r"},
    {CKM_DES3_CBC_PAD, "r"},
    {CKM_SHA256, ""},
    {CKM_SHA256_HMAC, ""},
    {CKM_SHA256_HMAC_GENERAL, "u"},
    {CKM_SHA_1_HMAC, ""},
    {CKM_GENERIC_SECRET_KEY_GEN, ""},
    {CKM_CONCATENATE_BASE_AND_KEY, "h"},
    {CKM_CONCATENATE_BASE_AND_DATA, "d"},
    {CKM_SP800_108_COUNTER_KDF, "HKuz"},
    {CKM_SP800_108_FEEDBACK_KDF, "HKLuz"},
    {CKM_PKCS5_PBKD2, "udIudd"},
    {CKM_PKCS5_PBKD2, "udIudP"},
    {CKM_EC_KEY_PAIR_GEN, ""},
    {CKM_ECDSA, ""},
    {CKM_ECDSA_SHA256, ""},
    {CKM_ECDH1_DERIVE, "uLL"},
    {CKM_EC_EDWARDS_KEY_PAIR_GEN, ""},
    {CKM_EC_MONTGOMERY_KEY_PAIR_GEN, ""},
    {CKM_EDDSA, "wL"},
    {CKM_AES_KEY_GEN, ""},
    {CKM_AES_ECB, ""},
    {CKM_AES_CBC, "r"},
    {CKM_AES_CBC_PAD, "r"},
    {CKM_AES_CTR, "uB"},
    {CKM_AES_GCM, "dudu"},
    {CKM_AES_GCM, "ddu"},
    {CKM_AES_CCM, "uddu"},
    {CKM_AES_CMAC, ""},
    {CKM_AES_CMAC_GENERAL, "u"},
    {CKM_AES_ECB_ENCRYPT_DATA, "d"},
    {CKM_AES_CBC_ENCRYPT_DATA, "Bd"},
    {CKM_CHACHA20_KEY_GEN, ""},
    {CKM_AES_KEY_WRAP, "r"},
    {CKM_AES_KEY_WRAP_KWP, "r"},
    {CKM_CHACHA20_POLY1305, "dd"},
    {CKM_HKDF_DERIVE, "wHudhd"},
    {CKM_HKDF_DATA, "wHudhd"},
    {CKM_CLOUDHSM_AES_GCM, "dudu"},
    {CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD, "r"},
    {CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD, "r"},
    {CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD, "r"},
    {CKM_XOR_BASE_AND_DATA, "d"},
    {CKM_MD5, ""},
};

/* ------------------------------------------------------------ objects */

typedef struct {
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE obj[OBJ_MAX];
    size_t n;
    uint8_t *last; /* the last output (wrapped key, ciphertext ...) */
    CK_ULONG last_len;
} run_t;

static CK_RV traced(const char *call, CK_RV rv)
{
    if (trace) {
        fprintf(stderr, "  %s: 0x%lx\n", call, (unsigned long)rv);
    }
    return rv;
}
/* A call whose arguments did not fit the arena is not made: they may
 * alias each other (arena_take). */
#define T(call) (arena_full ? CKR_FUNCTION_FAILED : traced(#call, call))

static void keep(run_t *x, CK_RV rv, CK_OBJECT_HANDLE h)
{
    if (rv == CKR_OK && x->n < OBJ_MAX) {
        x->obj[x->n++] = h;
    }
}

static CK_OBJECT_HANDLE pick_obj(rd_t *r, run_t *x)
{
    uint8_t b = u8(r);

    if (x->n == 0 || b >= 0xf8) {
        return b == 0xff ? CK_INVALID_HANDLE : (CK_OBJECT_HANDLE)b << 20;
    }
    return x->obj[b % x->n];
}

/* ------------------------------------------------------------ templates */

static bool is_template_attr(CK_ATTRIBUTE_TYPE t)
{
    return t == CKA_WRAP_TEMPLATE || t == CKA_UNWRAP_TEMPLATE ||
           t == CKA_DERIVE_TEMPLATE;
}

static CK_ATTRIBUTE *build_template(rd_t *r, CK_ULONG *count, int depth);

static void build_value(rd_t *r, CK_ATTRIBUTE *a, int depth)
{
    uint8_t kind = u8(r);

    a->pValue = NULL;
    a->ulValueLen = 0;
    if (is_template_attr(a->type)) {
        /* Never raw bytes: the module reads these as CK_ATTRIBUTEs. */
        if (depth > 0 || kind % 4 == 0) {
            a->ulValueLen = pick_ulong(r);
            return; /* NULL with any length */
        }
        {
            CK_ULONG n;
            CK_ATTRIBUTE *in = build_template(r, &n, depth + 1);
            CK_ULONG full = n * sizeof(CK_ATTRIBUTE);
            uint8_t cut = u8(r);

            a->pValue = in;
            /* Only ever shorter than the array: a cut inside an entry. */
            a->ulValueLen = cut < 0xc0 || full == 0 ? full : full - cut % full;
        }
        return;
    }
    switch (kind % 8) {
    case 0: { /* CK_BBOOL, sometimes neither true nor false */
        uint8_t *v = arena_take(1);

        *v = u8(r);
        *v = *v < 0xc0 ? *v & 1 : *v;
        a->pValue = v;
        a->ulValueLen = 1;
        break;
    }
    case 1: { /* CK_ULONG: a class, a key type or a number */
        CK_ULONG *v = (CK_ULONG *)arena_take(sizeof(CK_ULONG));
        uint8_t how = u8(r);

        if (a->type == CKA_CLASS && how < 0xe0) {
            *v = classes[how % N(classes)];
        } else if (a->type == CKA_KEY_TYPE && how < 0xe0) {
            *v = key_types[how % N(key_types)];
        } else if (a->type == CKA_MODULUS_BITS && how < 0xe0) {
            *v = how & 1 ? 1024 : 512 + how;
        } else {
            *v = pick_ulong(r);
        }
        a->pValue = v;
        a->ulValueLen = sizeof(CK_ULONG);
        break;
    }
    case 2: /* a length that lies about the type's size */
        a->ulValueLen = pick_len(r);
        a->pValue = arena_bytes(r, a->ulValueLen);
        break;
    case 3: /* NULL with a length */
        a->ulValueLen = pick_ulong(r);
        break;
    case 4: /* a curve */
        if (a->type == CKA_EC_PARAMS || a->type == CKA_VALUE) {
            uint8_t i = u8(r) % N(ec_params);
            uint8_t *v = arena_take(ec_params[i].len);

            memcpy(v, ec_params[i].der, ec_params[i].len);
            a->pValue = v;
            a->ulValueLen = ec_params[i].len;
            break;
        }
        __attribute__((fallthrough));
    case 5: { /* CK_MECHANISM_TYPE array */
        CK_ULONG n = u8(r) % 5;
        CK_ULONG *v = (CK_ULONG *)arena_take(n * sizeof(CK_ULONG) + 8);

        for (CK_ULONG i = 0; i < n; i++) {
            v[i] = mechs[u8(r) % N(mechs)].type;
        }
        a->pValue = v;
        a->ulValueLen = n * sizeof(CK_ULONG);
        break;
    }
    default: /* bytes of a small length */
        a->ulValueLen = u8(r) % 72;
        a->pValue = arena_bytes(r, a->ulValueLen);
        break;
    }
}

static CK_ATTRIBUTE *build_template(rd_t *r, CK_ULONG *count, int depth)
{
    uint8_t b = u8(r);
    CK_ULONG n = b % 10;
    CK_ATTRIBUTE *t;

    if (b >= 0xfc) {
        *count = b == 0xff ? 0 : 3; /* NULL template, with or without count */
        return NULL;
    }
    t = (CK_ATTRIBUTE *)arena_take((n + 1) * sizeof(CK_ATTRIBUTE));
    for (CK_ULONG i = 0; i < n; i++) {
        uint8_t ty = u8(r);

        t[i].type = ty < 0xf0 ? attr_types[ty % N(attr_types)] : pick_ulong(r);
        build_value(r, &t[i], depth);
    }
    *count = n;
    return t;
}

/* ------------------------------------------------------------ parameters */

static void *build_oaep(rd_t *r)
{
    CK_RSA_PKCS_OAEP_PARAMS *o =
        (CK_RSA_PKCS_OAEP_PARAMS *)arena_take(sizeof(*o));
    static const CK_ULONG hashes[] = {CKM_SHA_1, CKM_SHA256, CKM_SHA512, 0};
    static const CK_ULONG mgfs[] = {CKG_MGF1_SHA1, CKG_MGF1_SHA256,
                                    CKG_MGF1_SHA512, 0};

    o->hashAlg = hashes[u8(r) % N(hashes)];
    o->mgf = mgfs[u8(r) % N(mgfs)];
    o->source = u8(r) % 3;
    o->ulSourceDataLen = pick_len(r);
    o->pSourceData = u8(r) % 4 == 0 ? NULL : arena_bytes(r, o->ulSourceDataLen);
    return o;
}

static void *build_prf_list(rd_t *r, CK_ULONG count)
{
    CK_PRF_DATA_PARAM *d;

    if (count > 40) {
        return arena_take(64); /* zeroes: a count the module must refuse */
    }
    d = (CK_PRF_DATA_PARAM *)arena_take((count + 1) * sizeof(*d));
    for (CK_ULONG i = 0; i < count; i++) {
        uint8_t t = u8(r);

        d[i].type = t % 6;
        switch (t % 3) {
        case 0: { /* CK_SP800_108_COUNTER_FORMAT or DKM length format */
            CK_ULONG *v = (CK_ULONG *)arena_take(4 * sizeof(CK_ULONG));

            v[0] = u8(r) % 3;
            v[1] = u8(r) % 3;
            v[2] = u8(r);
            v[1] = v[1] == 2 ? pick_ulong(r) : v[1] * 32;
            d[i].pValue = v;
            d[i].ulValueLen = (u8(r) % 4) * sizeof(CK_ULONG);
            break;
        }
        case 1:
            d[i].ulValueLen = pick_len(r);
            d[i].pValue = arena_bytes(r, d[i].ulValueLen);
            break;
        default:
            d[i].pValue = NULL;
            d[i].ulValueLen = u8(r) % 2;
            break;
        }
    }
    return d;
}

/* The parameter of mech, laid out as its table row says, then given a
 * length that is right, or wrong by whole words, or anything. */
static void build_mech(rd_t *r, run_t *x, CK_MECHANISM *m)
{
    uint8_t which = u8(r);
    const char *lay;
    CK_ULONG words[24];
    size_t nw = 0, bytes;
    uint8_t how;

    memset(m, 0, sizeof(*m));
    if (which >= 0xf8) {
        m->mechanism = pick_ulong(r);
        lay = "";
    } else {
        m->mechanism = mechs[which % N(mechs)].type;
        lay = mechs[which % N(mechs)].layout;
    }
    if (strcmp(lay, "r") == 0) {
        m->ulParameterLen = u8(r) % 20;
        m->pParameter = arena_bytes(r, m->ulParameterLen);
        goto lie;
    }
    memset(words, 0, sizeof(words));
    for (const char *c = lay; *c != '\0' && nw + 2 <= N(words); c++) {
        switch (*c) {
        case 'u':
            words[nw++] = pick_ulong(r);
            break;
        case 'w':
        case 'B':
            for (int i = 0; i < (*c == 'B' ? 2 : 1); i++) {
                uint8_t b[8];

                for (size_t k = 0; k < 8; k++) {
                    b[k] = u8(r);
                    if (*c == 'w' && b[k] < 0xc0) {
                        b[k] &= 1; /* mostly true or false */
                    }
                }
                memcpy(&words[nw++], b, 8);
            }
            break;
        case 'I': {
            CK_ULONG it = pick_ulong(r);

            /* Keep inputs fast: the work of a count the module accepts is
             * not what is under test. */
            words[nw++] = it <= 10000000UL && it > 16 ? it % 16 + 1 : it;
            break;
        }
        case 'd':
        case 'L': {
            CK_ULONG len = pick_len(r);
            void *ptr = u8(r) % 8 == 0 ? NULL : arena_bytes(r, len);

            if (*c == 'd') {
                memcpy(&words[nw++], &ptr, sizeof(ptr));
                words[nw++] = len;
            } else {
                words[nw++] = len;
                memcpy(&words[nw++], &ptr, sizeof(ptr));
            }
            break;
        }
        case 'h':
            words[nw++] = pick_obj(r, x);
            break;
        case 'O': {
            void *ptr = u8(r) % 8 == 0 ? NULL : build_oaep(r);

            memcpy(&words[nw++], &ptr, sizeof(ptr));
            break;
        }
        case 'K': {
            CK_ULONG n = u8(r) < 0xf0 ? u8(r) % 6 : pick_ulong(r);
            void *ptr = u8(r) % 16 == 0 ? NULL : build_prf_list(r, n);

            words[nw++] = n;
            memcpy(&words[nw++], &ptr, sizeof(ptr));
            break;
        }
        case 'z': {
            void *ptr = u8(r) % 2 ? NULL : arena_take(256);

            memcpy(&words[nw++], &ptr, sizeof(ptr));
            break;
        }
        case 'P': {
            CK_ULONG *v = (CK_ULONG *)arena_take(sizeof(CK_ULONG));
            void *ptr;

            *v = pick_len(r);
            ptr = arena_bytes(r, *v);
            memcpy(&words[nw++], &ptr, sizeof(ptr));
            memcpy(&words[nw++], &v, sizeof(v));
            break;
        }
        case 'H': {
            static const CK_ULONG names[] = {
                CKM_SHA_1,       CKM_SHA256,      CKM_SHA384,
                CKM_SHA512,      CKM_SHA3_256,    CKG_MGF1_SHA1,
                CKG_MGF1_SHA256, CKG_MGF1_SHA512, CKM_SHA256_HMAC,
                CKM_SHA_1_HMAC,  CKM_AES_CMAC,    CKM_MD5,
            };
            uint8_t b = u8(r);

            words[nw++] = b < 0xe0 ? names[b % N(names)] : pick_ulong(r);
            break;
        }
        default:
            break;
        }
    }
    bytes = nw * sizeof(CK_ULONG);
    m->pParameter = bytes > 0 ? arena_take(sizeof(words)) : NULL;
    if (bytes > 0) {
        memcpy(m->pParameter, words, sizeof(words));
    }
    m->ulParameterLen = bytes;
lie:
    how = u8(r);
    if (how >= 0xe0) {
        /* Whole words off (another layout's size), or any length over a
         * buffer of zeroes. */
        if (how & 1) {
            m->ulParameterLen += (CK_ULONG)((how >> 1) % 5) * 8;
            m->ulParameterLen -= 16;
        } else {
            m->ulParameterLen = pick_ulong(r);
            if (m->pParameter == NULL || m->ulParameterLen > sizeof(words)) {
                m->pParameter = how & 2 ? NULL : arena_take(64);
            }
        }
        if (m->ulParameterLen > sizeof(words) && m->pParameter != NULL &&
            m->ulParameterLen <= DATA_MAX) {
            /* The caller's buffer really is this long (zeroes after). */
            uint8_t *big = arena_take(m->ulParameterLen);

            memmove(big, m->pParameter, sizeof(words));
            memset(big + sizeof(words), 0, m->ulParameterLen - sizeof(words));
            m->pParameter = big;
        }
    } else if (how >= 0xd8) {
        m->pParameter = NULL;
    }
}

/* ------------------------------------------------------------ steps */

/* An output buffer: NULL (a length query) or room of a claimed length. */
static CK_BYTE_PTR out_buf(rd_t *r, CK_ULONG *len)
{
    uint8_t b = u8(r);

    if (b < 0x30) {
        *len = pick_ulong(r);
        return NULL;
    }
    *len = b < 0xe0 ? 4096 : pick_ulong(r);
    return arena_take(*len > DATA_MAX ? DATA_MAX : *len);
}

static void keep_output(run_t *x, CK_RV rv, CK_BYTE_PTR out, CK_ULONG len)
{
    if (rv == CKR_OK && out != NULL && len <= DATA_MAX) {
        x->last = out;
        x->last_len = len;
    }
}

/* Input data: fresh bytes, or the last output. */
static CK_BYTE_PTR in_data(rd_t *r, run_t *x, CK_ULONG *len)
{
    uint8_t b = u8(r);

    if (b < 0x40 && x->last != NULL) {
        *len = x->last_len;
        return x->last;
    }
    if (b >= 0xf8) {
        *len = b & 1 ? 0 : pick_ulong(r);
        return NULL;
    }
    *len = pick_len(r);
    if (*len > DATA_MAX) {
        *len = *len % DATA_MAX;
    }
    return arena_bytes(r, *len);
}

/* Skip key pair generation that is only slow (a big modulus). */
static bool slow_pair(const CK_MECHANISM *m, const CK_ATTRIBUTE *t, CK_ULONG n)
{
    if (m->mechanism != CKM_RSA_PKCS_KEY_PAIR_GEN || t == NULL) {
        return false;
    }
    for (CK_ULONG i = 0; i < n; i++) {
        if (t[i].type == CKA_MODULUS_BITS && t[i].pValue != NULL &&
            t[i].ulValueLen == sizeof(CK_ULONG) &&
            *(CK_ULONG *)t[i].pValue > 2048 &&
            *(CK_ULONG *)t[i].pValue <= 16384) {
            return true;
        }
    }
    return false;
}

static void step_crypt(rd_t *r, run_t *x, int kind)
{
    CK_MECHANISM m;
    CK_OBJECT_HANDLE k;
    CK_BYTE_PTR in, out;
    CK_ULONG inlen, outlen;
    CK_RV rv;
    uint8_t mode;

    build_mech(r, x, &m);
    k = pick_obj(r, x);
    switch (kind) {
    case 0:
        rv = T(f->C_EncryptInit(x->s, u8(r) == 0xff ? NULL : &m, k));
        break;
    case 1:
        rv = T(f->C_DecryptInit(x->s, &m, k));
        break;
    case 2:
        rv = T(f->C_SignInit(x->s, &m, k));
        break;
    default:
        rv = T(f->C_VerifyInit(x->s, &m, k));
        break;
    }
    if (rv != CKR_OK) {
        return;
    }
    mode = u8(r);
    for (int part = 0; part < 8; part++) {
        in = in_data(r, x, &inlen);
        out = out_buf(r, &outlen);
        if (mode % 2 == 0) { /* single part */
            switch (kind) {
            case 0:
                rv = T(f->C_Encrypt(x->s, in, inlen, out, &outlen));
                break;
            case 1:
                rv = T(f->C_Decrypt(x->s, in, inlen, out, &outlen));
                break;
            case 2:
                rv = T(f->C_Sign(x->s, in, inlen, out, &outlen));
                break;
            default:
                rv = T(f->C_Verify(x->s, in, inlen, out, outlen % 600));
                break;
            }
        } else if (u8(r) % 4 != 0) {
            switch (kind) {
            case 0:
                rv = T(f->C_EncryptUpdate(x->s, in, inlen, out, &outlen));
                break;
            case 1:
                rv = T(f->C_DecryptUpdate(x->s, in, inlen, out, &outlen));
                break;
            case 2:
                rv = T(f->C_SignUpdate(x->s, in, inlen));
                break;
            default:
                rv = T(f->C_VerifyUpdate(x->s, in, inlen));
                break;
            }
        } else {
            switch (kind) {
            case 0:
                rv = T(f->C_EncryptFinal(x->s, out, &outlen));
                break;
            case 1:
                rv = T(f->C_DecryptFinal(x->s, out, &outlen));
                break;
            case 2:
                rv = T(f->C_SignFinal(x->s, out, &outlen));
                break;
            default:
                rv = T(f->C_VerifyFinal(x->s, in, inlen % 600));
                break;
            }
        }
        keep_output(x, rv, out, outlen);
        /* A finished or failed operation ends; a length query goes on. */
        if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL) {
            break;
        }
        if (u8(r) % 3 == 0) {
            break;
        }
    }
    /* End whatever is left, so the next step can start one. */
    switch (kind) {
    case 0:
        (void)T(f->C_EncryptInit(x->s, NULL, CK_INVALID_HANDLE));
        break;
    case 1:
        (void)T(f->C_DecryptInit(x->s, NULL, CK_INVALID_HANDLE));
        break;
    case 2:
        (void)T(f->C_SignInit(x->s, NULL, CK_INVALID_HANDLE));
        break;
    default:
        (void)T(f->C_VerifyInit(x->s, NULL, CK_INVALID_HANDLE));
        break;
    }
}

static void step(rd_t *r, run_t *x)
{
    CK_MECHANISM m;
    CK_ATTRIBUTE *t, *t2;
    CK_ULONG n, n2, len;
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE, h2 = CK_INVALID_HANDLE, a, b;
    CK_BYTE_PTR buf;
    CK_RV rv;

    switch (u8(r) % 16) {
    case 0:
        t = build_template(r, &n, 0);
        rv = T(f->C_CreateObject(x->s, t, n, &h));
        keep(x, rv, h);
        break;
    case 1:
        build_mech(r, x, &m);
        t = build_template(r, &n, 0);
        rv = T(f->C_GenerateKey(x->s, &m, t, n, &h));
        keep(x, rv, h);
        break;
    case 2:
        build_mech(r, x, &m);
        t = build_template(r, &n, 0);
        t2 = build_template(r, &n2, 0);
        if (slow_pair(&m, t, n) || slow_pair(&m, t2, n2)) {
            break;
        }
        rv = T(f->C_GenerateKeyPair(x->s, &m, t, n, t2, n2, &h, &h2));
        keep(x, rv, h);
        keep(x, rv, h2);
        break;
    case 3:
    case 4:
    case 5:
    case 6:
        step_crypt(r, x, u8(r) % 4);
        break;
    case 7:
        build_mech(r, x, &m);
        a = pick_obj(r, x);
        b = pick_obj(r, x);
        buf = out_buf(r, &len);
        rv = T(f->C_WrapKey(x->s, &m, a, b, buf, &len));
        keep_output(x, rv, buf, len);
        break;
    case 8:
        build_mech(r, x, &m);
        a = pick_obj(r, x);
        buf = in_data(r, x, &len);
        t = build_template(r, &n, 0);
        rv = T(f->C_UnwrapKey(x->s, &m, a, buf, len, t, n, &h));
        keep(x, rv, h);
        break;
    case 9:
        build_mech(r, x, &m);
        a = pick_obj(r, x);
        t = build_template(r, &n, 0);
        rv = T(f->C_DeriveKey(x->s, &m, a, t, n, &h));
        keep(x, rv, h);
        break;
    case 10:
        a = pick_obj(r, x);
        t = build_template(r, &n, 0);
        (void)T(f->C_SetAttributeValue(x->s, a, t, n));
        break;
    case 11:
        a = pick_obj(r, x);
        t = build_template(r, &n, 0);
        rv = T(f->C_CopyObject(x->s, a, t, n, &h));
        keep(x, rv, h);
        break;
    case 12:
    case 13:
        a = pick_obj(r, x);
        t = build_template(r, &n, 0);
        /* Room as claimed: C_GetAttributeValue writes into the values. */
        for (CK_ULONG i = 0; t != NULL && i < n; i++) {
            if (t[i].pValue == NULL && !is_template_attr(t[i].type) &&
                u8(r) % 2 == 0) {
                t[i].pValue = arena_take(
                    t[i].ulValueLen > DATA_MAX ? 64 : t[i].ulValueLen);
            }
        }
        (void)T(f->C_GetAttributeValue(x->s, a, t, n));
        break;
    case 14: {
        CK_OBJECT_HANDLE found[8];
        CK_ULONG nf = 0;

        t = build_template(r, &n, 0);
        if (!arena_full && f->C_FindObjectsInit(x->s, t, n) == CKR_OK) {
            (void)T(f->C_FindObjects(x->s, found, u8(r) % 9, &nf));
            (void)T(f->C_FindObjectsFinal(x->s));
        }
        break;
    }
    default:
        (void)T(f->C_DestroyObject(x->s, pick_obj(r, x)));
        break;
    }
}

/* ------------------------------------------------------------ setup */

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX + 300];

    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            rm_tree(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

static void teardown(void)
{
    if (f != NULL) {
        (void)f->C_Finalize(NULL);
        f = NULL;
    }
    if (tmpdir[0] != '\0') {
        rm_tree(tmpdir);
        tmpdir[0] = '\0';
    }
    free(arena);
    arena = NULL;
}

static void die(const char *what, CK_RV rv)
{
    fprintf(stderr, "fuzz_p11 setup: %s: 0x%lx\n", what, (unsigned long)rv);
    teardown();
    exit(1);
}

static void base_key(CK_MECHANISM_TYPE mt, CK_ATTRIBUTE *t, CK_ULONG n,
                     CK_ATTRIBUTE *t2, CK_ULONG n2)
{
    CK_MECHANISM m = {mt, NULL, 0};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE, h2 = CK_INVALID_HANDLE;
    CK_RV rv;

    if (t2 == NULL) {
        rv = f->C_GenerateKey(base_session, &m, t, n, &h);
    } else {
        rv = f->C_GenerateKeyPair(base_session, &m, t, n, t2, n2, &h, &h2);
    }
    if (trace) {
        fprintf(stderr, "fuzz_p11: base key 0x%lx: 0x%lx\n", (unsigned long)mt,
                (unsigned long)rv);
    }
    /* A key this build refuses (key separation, DES3 off) is left out. */
    if (rv == CKR_OK && n_base + 2 <= N(base_keys)) {
        base_keys[n_base++] = h;
        if (h2 != CK_INVALID_HANDLE) {
            base_keys[n_base++] = h2;
        }
    }
}

static void setup(void)
{
    static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    static CK_ULONG k16 = 16, k32 = 32, bits = 1024;
    static CK_BYTE e[] = {1, 0, 1};
    static CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                             0xce, 0x3d, 0x03, 0x01, 0x07};
    static CK_BYTE x25519[] = {0x06, 0x03, 0x2b, 0x65, 0x6e};
    static CK_BYTE ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
    CK_UTF8CHAR label[32];
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char conf[PATH_MAX + 64], text[PATH_MAX + 200];
    FILE *fp;
    CK_RV rv;

    arena = calloc(1, ARENA_SIZE);
    if (arena == NULL) {
        die("arena", CKR_HOST_MEMORY);
    }
    snprintf(tmpdir, sizeof(tmpdir), "%s/nimbus-fuzz-XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL) {
        tmpdir[0] = '\0';
        die("mkdtemp", CKR_GENERAL_ERROR);
    }
    snprintf(conf, sizeof(conf), "%s/nimbus.conf", tmpdir);
    snprintf(text, sizeof(text),
             "store = %s/store\nkdf_iterations = 1000\n"
             "login_failure_limit = 1000\n",
             tmpdir);
    fp = fopen(conf, "w");
    if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0) {
        die("nimbus.conf", CKR_GENERAL_ERROR);
    }
    setenv("NIMBUS_CONF", conf, 1);
    if ((rv = mod_C_GetFunctionList(&f)) != CKR_OK) {
        die("C_GetFunctionList", rv);
    }
    atexit(teardown);
    if ((rv = f->C_Initialize(NULL)) != CKR_OK) {
        die("C_Initialize", rv);
    }
    memset(label, ' ', sizeof(label));
    memcpy(label, "fuzz", 4);
    if ((rv = f->C_InitToken(0, (CK_UTF8CHAR_PTR)SO_PIN, strlen(SO_PIN),
                             label)) != CKR_OK ||
        (rv = f->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                               NULL, &s)) != CKR_OK ||
        (rv = f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)SO_PIN, strlen(SO_PIN))) !=
            CKR_OK ||
        (rv = f->C_InitPIN(s, (CK_UTF8CHAR_PTR)CU_PIN, strlen(CU_PIN))) !=
            CKR_OK ||
        (rv = f->C_Logout(s)) != CKR_OK ||
        (rv = f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)CU_PIN,
                         strlen(CU_PIN))) != CKR_OK) {
        die("activation and login", rv);
    }
    base_session = s;
    {
        CK_ATTRIBUTE aes_crypt[] = {
            {CKA_VALUE_LEN, &k32, sizeof(k32)},
            {CKA_ENCRYPT, &yes, 1},
            {CKA_DECRYPT, &yes, 1},
            {CKA_SIGN, &yes, 1},
            {CKA_VERIFY, &yes, 1},
            {CKA_DERIVE, &yes, 1},
            {CKA_EXTRACTABLE, &yes, 1},
            {CKA_SENSITIVE, &no, 1},
        };
        CK_ATTRIBUTE aes_wrap[] = {
            {CKA_VALUE_LEN, &k16, sizeof(k16)},
            {CKA_WRAP, &yes, 1},
            {CKA_UNWRAP, &yes, 1},
            {CKA_EXTRACTABLE, &yes, 1},
        };
        CK_ATTRIBUTE secret[] = {
            {CKA_VALUE_LEN, &k32, sizeof(k32)},
            {CKA_DERIVE, &yes, 1},
            {CKA_SIGN, &yes, 1},
            {CKA_VERIFY, &yes, 1},
            {CKA_EXTRACTABLE, &yes, 1},
            {CKA_SENSITIVE, &no, 1},
        };
        CK_ATTRIBUTE chacha[] = {
            {CKA_ENCRYPT, &yes, 1},
            {CKA_DECRYPT, &yes, 1},
            {CKA_EXTRACTABLE, &yes, 1},
        };
        CK_ATTRIBUTE des3[] = {
            {CKA_ENCRYPT, &yes, 1},
            {CKA_DECRYPT, &yes, 1},
            {CKA_EXTRACTABLE, &yes, 1},
        };
        CK_ATTRIBUTE rsa_pub[] = {
            {CKA_MODULUS_BITS, &bits, sizeof(bits)},
            {CKA_PUBLIC_EXPONENT, e, sizeof(e)},
            {CKA_ENCRYPT, &yes, 1},
            {CKA_VERIFY, &yes, 1},
            {CKA_WRAP, &yes, 1},
        };
        CK_ATTRIBUTE rsa_priv[] = {
            {CKA_DECRYPT, &yes, 1},
            {CKA_SIGN, &yes, 1},
            {CKA_UNWRAP, &yes, 1},
            {CKA_EXTRACTABLE, &yes, 1},
        };
        CK_ATTRIBUTE ec_pub[] = {
            {CKA_EC_PARAMS, p256, sizeof(p256)},
            {CKA_VERIFY, &yes, 1},
        };
        CK_ATTRIBUTE ec_priv[] = {
            {CKA_SIGN, &yes, 1},
            {CKA_DERIVE, &yes, 1},
            {CKA_EXTRACTABLE, &yes, 1},
        };
        CK_ATTRIBUTE ed_pub[] = {{CKA_EC_PARAMS, ed25519, sizeof(ed25519)}};
        CK_ATTRIBUTE ed_priv[] = {{CKA_SIGN, &yes, 1}};
        CK_ATTRIBUTE x_pub[] = {{CKA_EC_PARAMS, x25519, sizeof(x25519)}};
        CK_ATTRIBUTE x_priv[] = {{CKA_DERIVE, &yes, 1}};

        base_key(CKM_AES_KEY_GEN, aes_crypt, N(aes_crypt), NULL, 0);
        base_key(CKM_AES_KEY_GEN, aes_wrap, N(aes_wrap), NULL, 0);
        base_key(CKM_GENERIC_SECRET_KEY_GEN, secret, N(secret), NULL, 0);
        base_key(CKM_CHACHA20_KEY_GEN, chacha, N(chacha), NULL, 0);
        base_key(CKM_DES3_KEY_GEN, des3, N(des3), NULL, 0);
        base_key(CKM_RSA_PKCS_KEY_PAIR_GEN, rsa_pub, N(rsa_pub), rsa_priv,
                 N(rsa_priv));
        base_key(CKM_EC_KEY_PAIR_GEN, ec_pub, N(ec_pub), ec_priv, N(ec_priv));
        base_key(CKM_EC_EDWARDS_KEY_PAIR_GEN, ed_pub, N(ed_pub), ed_priv,
                 N(ed_priv));
        base_key(CKM_EC_MONTGOMERY_KEY_PAIR_GEN, x_pub, N(x_pub), x_priv,
                 N(x_priv));
    }
    if (trace) {
        fprintf(stderr, "fuzz_p11: %zu base keys\n", n_base);
    }
    if (n_base < 8) {
        die("base keys", CKR_GENERAL_ERROR);
    }
}

/* Token objects an input made: destroyed, so the store stays as set up. */
static void drop_token_objects(void)
{
    static CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {{CKA_TOKEN, &yes, 1}};
    CK_OBJECT_HANDLE h[64];
    CK_ULONG n = 0;

    do {
        if (f->C_FindObjectsInit(base_session, t, 1) != CKR_OK) {
            return;
        }
        if (f->C_FindObjects(base_session, h, N(h), &n) != CKR_OK) {
            n = 0;
        }
        (void)f->C_FindObjectsFinal(base_session);
        for (CK_ULONG i = 0; i < n; i++) {
            (void)f->C_DestroyObject(base_session, h[i]);
        }
    } while (n == N(h));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd_t r = {data, size};
    run_t x;

    if (f == NULL) {
        trace = getenv("FUZZ_P11_TRACE") != NULL;
        setup();
    }
    memset(&x, 0, sizeof(x));
    arena_off = 0;
    arena_full = false;
    if (f->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
                         &x.s) != CKR_OK) {
        abort(); /* the token is broken: nothing after this means much */
    }
    for (size_t i = 0; i < n_base; i++) {
        CK_OBJECT_HANDLE h;

        if (f->C_CopyObject(x.s, base_keys[i], NULL, 0, &h) == CKR_OK) {
            keep(&x, CKR_OK, h);
        }
    }
    for (int i = 0; i < STEPS_MAX && r.n > 0 && !arena_full; i++) {
        step(&r, &x);
    }
    (void)f->C_CloseSession(x.s);
    drop_token_objects();
    memset(arena, 0, arena_high < ARENA_SIZE ? arena_high : ARENA_SIZE);
    arena_high = 0;
    return 0;
}
