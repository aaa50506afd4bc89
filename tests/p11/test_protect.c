/*
 * test_protect.c - key protection: derived keys inherit the protection of
 * every key they are made from, whatever the derivation; attributes an
 * unwrap or derive template fixed stay fixed through C_SetAttributeValue,
 * C_CopyObject and a restart; a key a derivation reads must allow
 * derivation; unwrapping with a cipher into a readable key needs a key
 * that may decrypt; CKM_CONCATENATE_DATA_AND_BASE. Each sequence here
 * read a key in clear before the rule it tests.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11util.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))
#define BUF_MAX 4096
/* Our internal attribute that remembers the fixed types (attrs.h). */
#define FIXED_TYPES (CKA_VENDOR_DEFINED | 0x4E42FF01UL)

static CK_BBOOL yes = CK_TRUE;
static CK_BBOOL no = CK_FALSE;

/* The fixture's session: alice logged in, RW. */
static CK_SESSION_HANDLE S;

static const CK_BYTE k16[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                                0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
static const CK_BYTE k32[32] = {0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe,
                                0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d, 0x77, 0x81,
                                0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61, 0x08, 0xd7,
                                0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4};

static int setup_protect(void **state)
{
    (void)state;
    p11_fresh(NULL);
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    p11_create_cu("bob", P11_BOB_PW);
    S = p11_open_rw();
    p11_login_cu(S, "alice", P11_ALICE_PW);
    return 0;
}

/* ------------------------------------------------------------ templates */

/* Short names for the shared builder (p11util.h). */
#define t_set p11_tmpl_set
#define t_bool p11_tmpl_bool
#define t_ulong p11_tmpl_ulong

/* A session secret key of type kt with every usage flag named (so that
 * no default decides a test); protection as given. */
static void t_key(struct p11_tmpl *t, CK_KEY_TYPE kt, bool sensitive,
                  bool extractable)
{
    memset(t, 0, sizeof(*t));
    t_ulong(t, CKA_CLASS, CKO_SECRET_KEY);
    t_ulong(t, CKA_KEY_TYPE, kt);
    t_bool(t, CKA_TOKEN, false);
    t_bool(t, CKA_SENSITIVE, sensitive);
    t_bool(t, CKA_EXTRACTABLE, extractable);
    t_bool(t, CKA_ENCRYPT, false);
    t_bool(t, CKA_DECRYPT, false);
    t_bool(t, CKA_SIGN, false);
    t_bool(t, CKA_VERIFY, false);
    t_bool(t, CKA_WRAP, false);
    t_bool(t, CKA_UNWRAP, false);
    t_bool(t, CKA_DERIVE, true);
}

static CK_OBJECT_HANDLE t_create(struct p11_tmpl *t, const void *v,
                                 CK_ULONG len)
{
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

    t_set(t, CKA_VALUE, v, len);
    assert_rv(p11->C_CreateObject(S, t->a, t->n, &h), CKR_OK);
    return h;
}

/* A generated AES-128 key that was always sensitive and never
 * extractable, allowed to derive. */
static CK_OBJECT_HANDLE gen_locked_aes(void)
{
    CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    struct p11_tmpl t;

    t_key(&t, CKK_AES, true, false);
    t_ulong(&t, CKA_VALUE_LEN, 16);
    assert_rv(p11->C_GenerateKey(S, &m, t.a, t.n, &h), CKR_OK);
    assert_int_equal(p11_get_bool(S, h, CKA_ALWAYS_SENSITIVE), CK_TRUE);
    assert_int_equal(p11_get_bool(S, h, CKA_NEVER_EXTRACTABLE), CK_TRUE);
    return h;
}

/* The template of a derived key: generic secret (or kt), len bytes (0:
 * not named), nothing said about its protection. */
static void t_derived(struct p11_tmpl *t, CK_KEY_TYPE kt, CK_ULONG len)
{
    memset(t, 0, sizeof(*t));
    t_ulong(t, CKA_CLASS, CKO_SECRET_KEY);
    t_ulong(t, CKA_KEY_TYPE, kt);
    t_bool(t, CKA_TOKEN, false);
    if (len > 0) {
        t_ulong(t, CKA_VALUE_LEN, len);
    }
}

/* Whether reading CKA_VALUE of h is refused as sensitive. */
static void assert_value_hidden(CK_OBJECT_HANDLE h)
{
    CK_BYTE buf[BUF_MAX];
    CK_ATTRIBUTE a = {CKA_VALUE, buf, sizeof(buf)};

    assert_rv(p11->C_GetAttributeValue(S, h, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
    assert_int_equal(a.ulValueLen, CK_UNAVAILABLE_INFORMATION);
}

/*
 * The rule for one derivation from protected keys (m, base, a derived key
 * of type kt and len bytes): a template asking for SENSITIVE FALSE and/or
 * EXTRACTABLE TRUE is CKR_TEMPLATE_INCONSISTENT and makes nothing; a
 * silent one gets a sensitive, unextractable key whose value stays
 * hidden. always: every key read was always sensitive / never extractable.
 */
static CK_OBJECT_HANDLE check_inherits(CK_MECHANISM *m, CK_OBJECT_HANDLE base,
                                       CK_KEY_TYPE kt, CK_ULONG len,
                                       bool always)
{
    static const struct {
        int sensitive, extractable; /* -1: not named */
    } asks[] = {{0, 1}, {0, -1}, {-1, 1}, {1, 1}, {0, 0}};
    CK_ULONG before = p11_count_all(S);
    CK_OBJECT_HANDLE d = CK_INVALID_HANDLE;
    struct p11_tmpl t;
    CK_ATTRIBUTE set = {CKA_SENSITIVE, &no, sizeof(no)};

    for (size_t i = 0; i < N(asks); i++) {
        t_derived(&t, kt, len);
        if (asks[i].sensitive >= 0) {
            t_bool(&t, CKA_SENSITIVE, asks[i].sensitive);
        }
        if (asks[i].extractable >= 0) {
            t_bool(&t, CKA_EXTRACTABLE, asks[i].extractable);
        }
        d = CK_INVALID_HANDLE;
        assert_rv(p11->C_DeriveKey(S, m, base, t.a, t.n, &d),
                  CKR_TEMPLATE_INCONSISTENT);
        assert_int_equal(d, CK_INVALID_HANDLE);
        assert_int_equal(p11_count_all(S), before);
    }
    t_derived(&t, kt, len);
    assert_rv(p11->C_DeriveKey(S, m, base, t.a, t.n, &d), CKR_OK);
    assert_int_equal(p11_count_all(S), before + 1);
    assert_int_equal(p11_get_bool(S, d, CKA_SENSITIVE), CK_TRUE);
    assert_int_equal(p11_get_bool(S, d, CKA_EXTRACTABLE), CK_FALSE);
    assert_int_equal(p11_get_bool(S, d, CKA_ALWAYS_SENSITIVE),
                     always ? CK_TRUE : CK_FALSE);
    assert_int_equal(p11_get_bool(S, d, CKA_NEVER_EXTRACTABLE),
                     always ? CK_TRUE : CK_FALSE);
    assert_value_hidden(d);
    /* ...and the sticky rules keep it so. */
    assert_rv(p11->C_SetAttributeValue(S, d, &set, 1), CKR_ATTRIBUTE_READ_ONLY);
    return d;
}

/* ------------------------------------------------------------ inherit */

/* The reported sequence: a one-byte concatenation of a locked AES key. */
static void test_inherit_concat(void **state)
{
    CK_OBJECT_HANDLE base = gen_locked_aes();
    CK_OBJECT_HANDLE base2 = gen_locked_aes();
    CK_BYTE zero = 0;
    CK_KEY_DERIVATION_STRING_DATA sd = {&zero, 1};
    CK_MECHANISM bd = {CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd)};
    CK_MECHANISM db = {CKM_CONCATENATE_DATA_AND_BASE, &sd, sizeof(sd)};
    CK_OBJECT_HANDLE other = base2;
    CK_MECHANISM bk = {CKM_CONCATENATE_BASE_AND_KEY, &other, sizeof(other)};

    (void)state;
    check_inherits(&bd, base, CKK_GENERIC_SECRET, 0, true);
    /* the truncated twin of the base key too */
    check_inherits(&bd, base, CKK_AES, 16, true);
    check_inherits(&db, base, CKK_GENERIC_SECRET, 0, true);
    check_inherits(&bk, base, CKK_GENERIC_SECRET, 0, true);
}

/* A readable base with a protected second key: the second key decides. */
static void test_inherit_second_key(void **state)
{
    CK_OBJECT_HANDLE base, locked = gen_locked_aes();
    CK_OBJECT_HANDLE other = locked;
    CK_MECHANISM bk = {CKM_CONCATENATE_BASE_AND_KEY, &other, sizeof(other)};
    struct p11_tmpl t;

    (void)state;
    t_key(&t, CKK_GENERIC_SECRET, false, true);
    base = t_create(&t, k16, sizeof(k16));
    /* The base was never "always sensitive": neither is the result. */
    check_inherits(&bk, base, CKK_GENERIC_SECRET, 0, false);
}

static void test_inherit_aes_data(void **state)
{
    CK_OBJECT_HANDLE base = gen_locked_aes();
    CK_KEY_DERIVATION_STRING_DATA sd = {(CK_BYTE_PTR)k32, 32};
    CK_MECHANISM ecb = {CKM_AES_ECB_ENCRYPT_DATA, &sd, sizeof(sd)};
    CK_AES_CBC_ENCRYPT_DATA_PARAMS cp;
    CK_MECHANISM cbc = {CKM_AES_CBC_ENCRYPT_DATA, &cp, sizeof(cp)};

    (void)state;
    memset(&cp, 0, sizeof(cp));
    cp.pData = (CK_BYTE_PTR)k32;
    cp.length = 32;
    check_inherits(&ecb, base, CKK_GENERIC_SECRET, 0, true);
    check_inherits(&cbc, base, CKK_AES, 16, true);
}

static void test_inherit_hkdf(void **state)
{
    CK_OBJECT_HANDLE base = gen_locked_aes(), readable, d;
    CK_HKDF_PARAMS p;
    CK_MECHANISM m = {CKM_HKDF_DERIVE, &p, sizeof(p)};
    struct p11_tmpl t;

    (void)state;
    memset(&p, 0, sizeof(p));
    p.bExtract = CK_TRUE;
    p.bExpand = CK_TRUE;
    p.prfHashMechanism = CKM_SHA256;
    p.ulSaltType = CKF_HKDF_SALT_DATA;
    p.pSalt = (CK_BYTE_PTR)k16;
    p.ulSaltLen = sizeof(k16);
    p.pInfo = (CK_BYTE_PTR)k32;
    p.ulInfoLen = 8;
    check_inherits(&m, base, CKK_GENERIC_SECRET, 32, true);

    /* A protected salt key protects the result of a readable base. */
    t_key(&t, CKK_GENERIC_SECRET, false, true);
    readable = t_create(&t, k32, sizeof(k32));
    p.ulSaltType = CKF_HKDF_SALT_KEY;
    p.pSalt = NULL;
    p.ulSaltLen = 0;
    p.hSaltKey = base;
    check_inherits(&m, readable, CKK_GENERIC_SECRET, 32, false);

    /* CKM_HKDF_DATA makes a data object, which nothing protects. */
    m.mechanism = CKM_HKDF_DATA;
    p.ulSaltType = CKF_HKDF_SALT_DATA;
    p.pSalt = (CK_BYTE_PTR)k16;
    p.ulSaltLen = sizeof(k16);
    p.hSaltKey = CK_INVALID_HANDLE;
    memset(&t, 0, sizeof(t));
    t_ulong(&t, CKA_CLASS, CKO_DATA);
    t_bool(&t, CKA_TOKEN, false);
    t_ulong(&t, CKA_VALUE_LEN, 32);
    {
        CK_ULONG before = p11_count_all(S);

        assert_rv(p11->C_DeriveKey(S, &m, base, t.a, t.n, &d),
                  CKR_TEMPLATE_INCONSISTENT);
        assert_int_equal(p11_count_all(S), before);
        /* From a readable key it still works. */
        assert_rv(p11->C_DeriveKey(S, &m, readable, t.a, t.n, &d), CKR_OK);
        assert_int_equal(p11_get_ulong(S, d, CKA_CLASS), CKO_DATA);
    }
}

static void test_inherit_sp800_108(void **state)
{
    CK_OBJECT_HANDLE base = gen_locked_aes();
    CK_SP800_108_COUNTER_FORMAT cf = {CK_FALSE, 32};
    CK_BYTE label[] = "label";
    CK_PRF_DATA_PARAM dp[] = {
        {CK_SP800_108_ITERATION_VARIABLE, &cf, sizeof(cf)},
        {CK_SP800_108_BYTE_ARRAY, label, 5},
    };
    CK_PRF_DATA_PARAM fdp[] = {
        {CK_SP800_108_ITERATION_VARIABLE, NULL, 0},
        {CK_SP800_108_BYTE_ARRAY, label, 5},
    };
    CK_SP800_108_KDF_PARAMS cp = {CKM_AES_CMAC, N(dp), dp, 0, NULL};
    CK_SP800_108_FEEDBACK_KDF_PARAMS fp = {CKM_AES_CMAC, N(fdp), fdp, 0,
                                           NULL,         0,      NULL};
    CK_MECHANISM counter = {CKM_SP800_108_COUNTER_KDF, &cp, sizeof(cp)};
    CK_MECHANISM feedback = {CKM_SP800_108_FEEDBACK_KDF, &fp, sizeof(fp)};

    (void)state;
    check_inherits(&counter, base, CKK_AES, 32, true);
    check_inherits(&feedback, base, CKK_GENERIC_SECRET, 20, true);
}

/* The raw public value of an EC key (CKA_EC_POINT's OCTET STRING body). */
static CK_ULONG raw_point(CK_OBJECT_HANDLE pub, CK_BYTE *out)
{
    CK_BYTE der[256];
    CK_ULONG len = p11_get_bytes(S, pub, CKA_EC_POINT, der, sizeof(der));
    CK_ULONG hdr = der[1] < 0x80 ? 2 : 2 + (der[1] & 0x7f);

    assert_int_equal(der[0], 0x04);
    assert_true(len > hdr);
    memcpy(out, der + hdr, len - hdr);
    return len - hdr;
}

static void gen_p256(CK_BBOOL sensitive, CK_OBJECT_HANDLE *pub,
                     CK_OBJECT_HANDLE *priv)
{
    static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                   0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE tpub[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_EC_PARAMS, (void *)p256, sizeof(p256)},
    };
    CK_ATTRIBUTE tpriv[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_SENSITIVE, &sensitive, sizeof(sensitive)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_SIGN, &no, sizeof(no)},
        {CKA_DERIVE, &yes, sizeof(yes)},
    };

    assert_rv(p11->C_GenerateKeyPair(S, &m, tpub, N(tpub), tpriv, N(tpriv), pub,
                                     priv),
              CKR_OK);
}

static void test_inherit_ecdh(void **state)
{
    CK_OBJECT_HANDLE pa, ka, pb, kb;
    CK_BYTE point[128];
    CK_ECDH1_DERIVE_PARAMS p;
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof(p)};

    (void)state;
    gen_p256(CK_TRUE, &pa, &ka);
    gen_p256(CK_FALSE, &pb, &kb);
    memset(&p, 0, sizeof(p));
    p.kdf = CKD_NULL;
    p.ulPublicDataLen = raw_point(pb, point);
    p.pPublicData = point;
    check_inherits(&m, ka, CKK_GENERIC_SECRET, 32, true);
    /* The same peer with the X9.63 KDF. */
    p.kdf = CKD_SHA256_KDF;
    check_inherits(&m, ka, CKK_AES, 16, true);
}

/* The trusted twin: CKA_WRAP_WITH_TRUSTED carries over to what a derive
 * makes, so the twin does not leave under an untrusted key either. */
static void test_inherit_trusted(void **state)
{
    CK_OBJECT_HANDLE base, twin, wk, d;
    CK_BYTE zero = 0;
    CK_KEY_DERIVATION_STRING_DATA sd = {&zero, 1};
    CK_MECHANISM cat = {CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd)};
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
    CK_BYTE blob[BUF_MAX];
    CK_ULONG len, before;
    struct p11_tmpl t;

    (void)state;
    t_key(&t, CKK_AES, true, true);
    t_bool(&t, CKA_WRAP_WITH_TRUSTED, true);
    base = t_create(&t, k16, sizeof(k16));
    t_key(&t, CKK_AES, true, false);
    t_bool(&t, CKA_DERIVE, false);
    t_bool(&t, CKA_WRAP, true);
    wk = t_create(&t, k32, sizeof(k32));
    assert_int_equal(p11_get_bool(S, wk, CKA_TRUSTED), CK_FALSE);
    len = sizeof(blob);
    assert_rv(p11->C_WrapKey(S, &kwp, wk, base, blob, &len),
              CKR_KEY_NOT_WRAPPABLE);

    t_derived(&t, CKK_AES, 16);
    assert_rv(p11->C_DeriveKey(S, &cat, base, t.a, t.n, &twin), CKR_OK);
    assert_int_equal(p11_get_bool(S, twin, CKA_WRAP_WITH_TRUSTED), CK_TRUE);
    assert_int_equal(p11_get_bool(S, twin, CKA_EXTRACTABLE), CK_TRUE);
    len = sizeof(blob);
    assert_rv(p11->C_WrapKey(S, &kwp, wk, twin, blob, &len),
              CKR_KEY_NOT_WRAPPABLE);
    /* Asking for a twin without the flag makes nothing. */
    before = p11_count_all(S);
    t_bool(&t, CKA_WRAP_WITH_TRUSTED, false);
    assert_rv(p11->C_DeriveKey(S, &cat, base, t.a, t.n, &d),
              CKR_TEMPLATE_INCONSISTENT);
    assert_int_equal(p11_count_all(S), before);
}

/* Keys without protection still give readable results. */
static void test_inherit_readable(void **state)
{
    CK_OBJECT_HANDLE base, d;
    CK_BYTE zero = 0, out[64];
    CK_KEY_DERIVATION_STRING_DATA sd = {&zero, 1};
    CK_MECHANISM cat = {CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd)};
    struct p11_tmpl t;

    (void)state;
    t_key(&t, CKK_GENERIC_SECRET, false, true);
    base = t_create(&t, k16, sizeof(k16));
    t_derived(&t, CKK_GENERIC_SECRET, 0);
    t_bool(&t, CKA_SENSITIVE, false);
    assert_rv(p11->C_DeriveKey(S, &cat, base, t.a, t.n, &d), CKR_OK);
    assert_int_equal(p11_get_bytes(S, d, CKA_VALUE, out, sizeof(out)), 17);
    assert_memory_equal(out, k16, 16);
    assert_int_equal(out[16], 0);
    assert_int_equal(p11_get_bool(S, d, CKA_ALWAYS_SENSITIVE), CK_FALSE);
    assert_int_equal(p11_get_bool(S, d, CKA_NEVER_EXTRACTABLE), CK_FALSE);
}

/* ------------------------------------------------------------ data || base */

static void test_concat_data_and_base(void **state)
{
    static const CK_BYTE data[5] = {'d', 'a', 't', 'a', ':'};
    CK_KEY_DERIVATION_STRING_DATA sd = {(CK_BYTE_PTR)data, sizeof(data)};
    CK_MECHANISM m = {CKM_CONCATENATE_DATA_AND_BASE, &sd, sizeof(sd)};
    CK_MECHANISM_TYPE list[256];
    CK_ULONG n = N(list);
    CK_MECHANISM_INFO info;
    CK_OBJECT_HANDLE base, d;
    CK_BYTE out[64];
    bool listed = false;
    struct p11_tmpl t;

    (void)state;
    assert_rv(p11->C_GetMechanismList(0, list, &n), CKR_OK);
    for (CK_ULONG i = 0; i < n; i++) {
        listed = listed || list[i] == CKM_CONCATENATE_DATA_AND_BASE;
    }
    assert_true(listed);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_CONCATENATE_DATA_AND_BASE, &info),
              CKR_OK);
    assert_true(info.flags & CKF_DERIVE);
    assert_false(info.flags & (CKF_ENCRYPT | CKF_SIGN | CKF_WRAP));

    t_key(&t, CKK_GENERIC_SECRET, false, true);
    base = t_create(&t, k16, sizeof(k16));
    /* data || base, at its natural length */
    t_derived(&t, CKK_GENERIC_SECRET, 0);
    t_bool(&t, CKA_SENSITIVE, false);
    assert_rv(p11->C_DeriveKey(S, &m, base, t.a, t.n, &d), CKR_OK);
    assert_int_equal(p11_get_ulong(S, d, CKA_VALUE_LEN), 21);
    assert_int_equal(p11_get_bytes(S, d, CKA_VALUE, out, sizeof(out)), 21);
    assert_memory_equal(out, data, 5);
    assert_memory_equal(out + 5, k16, 16);
    assert_int_equal(p11_get_bool(S, d, CKA_LOCAL), CK_FALSE);
    /* an AES key: the leading 16 bytes */
    t_derived(&t, CKK_AES, 16);
    t_bool(&t, CKA_SENSITIVE, false);
    assert_rv(p11->C_DeriveKey(S, &m, base, t.a, t.n, &d), CKR_OK);
    assert_int_equal(p11_get_bytes(S, d, CKA_VALUE, out, sizeof(out)), 16);
    assert_memory_equal(out, data, 5);
    assert_memory_equal(out + 5, k16, 11);
    /* longer than data || base, no data, a short parameter */
    t_derived(&t, CKK_GENERIC_SECRET, 22);
    assert_rv(p11->C_DeriveKey(S, &m, base, t.a, t.n, &d),
              CKR_TEMPLATE_INCONSISTENT);
    t_derived(&t, CKK_GENERIC_SECRET, 0);
    sd.ulLen = 0;
    assert_rv(p11->C_DeriveKey(S, &m, base, t.a, t.n, &d),
              CKR_MECHANISM_PARAM_INVALID);
    sd.ulLen = sizeof(data);
    m.ulParameterLen = sizeof(sd) - 1;
    assert_rv(p11->C_DeriveKey(S, &m, base, t.a, t.n, &d),
              CKR_MECHANISM_PARAM_INVALID);
    m.ulParameterLen = sizeof(sd);
    /* CKA_DERIVE FALSE */
    t_key(&t, CKK_GENERIC_SECRET, false, true);
    t_bool(&t, CKA_DERIVE, false);
    base = t_create(&t, k16, sizeof(k16));
    t_derived(&t, CKK_GENERIC_SECRET, 0);
    assert_rv(p11->C_DeriveKey(S, &m, base, t.a, t.n, &d),
              CKR_KEY_FUNCTION_NOT_PERMITTED);
}

/* ------------------------------------------------------------ usage */

/* The keys a derivation reads besides its base need CKA_DERIVE. */
static void test_other_key_needs_derive(void **state)
{
    CK_OBJECT_HANDLE base, nod, d;
    CK_OBJECT_HANDLE other;
    CK_MECHANISM bk = {CKM_CONCATENATE_BASE_AND_KEY, &other, sizeof(other)};
    CK_HKDF_PARAMS p;
    CK_MECHANISM hk = {CKM_HKDF_DERIVE, &p, sizeof(p)};
    CK_ULONG before;
    struct p11_tmpl t;

    (void)state;
    t_key(&t, CKK_GENERIC_SECRET, false, true);
    base = t_create(&t, k16, sizeof(k16));
    t_key(&t, CKK_GENERIC_SECRET, false, true);
    t_bool(&t, CKA_DERIVE, false);
    t_bool(&t, CKA_SIGN, true);
    nod = t_create(&t, k32, sizeof(k32));

    before = p11_count_all(S);
    other = nod;
    t_derived(&t, CKK_GENERIC_SECRET, 0);
    assert_rv(p11->C_DeriveKey(S, &bk, base, t.a, t.n, &d),
              CKR_KEY_FUNCTION_NOT_PERMITTED);
    memset(&p, 0, sizeof(p));
    p.bExtract = CK_TRUE;
    p.bExpand = CK_TRUE;
    p.prfHashMechanism = CKM_SHA256;
    p.ulSaltType = CKF_HKDF_SALT_KEY;
    p.hSaltKey = nod;
    t_derived(&t, CKK_GENERIC_SECRET, 32);
    assert_rv(p11->C_DeriveKey(S, &hk, base, t.a, t.n, &d),
              CKR_KEY_FUNCTION_NOT_PERMITTED);
    assert_int_equal(p11_count_all(S), before);
    /* With CKA_DERIVE both work. */
    other = base;
    t_derived(&t, CKK_GENERIC_SECRET, 0);
    assert_rv(p11->C_DeriveKey(S, &bk, base, t.a, t.n, &d), CKR_OK);
    p.hSaltKey = base;
    t_derived(&t, CKK_GENERIC_SECRET, 32);
    assert_rv(p11->C_DeriveKey(S, &hk, base, t.a, t.n, &d), CKR_OK);
}

/* Unwrapping with a cipher into a readable key is decryption: it needs a
 * key that may decrypt. Key-wrap mechanisms are not ciphers. */
static void test_unwrap_is_not_decrypt(void **state)
{
    CK_OBJECT_HANDLE uw, wr, dec, u;
    CK_OBJECT_HANDLE rpub, rpriv;
    CK_BYTE iv[16] = {0};
    CK_MECHANISM cbc = {CKM_AES_CBC_PAD, iv, sizeof(iv)};
    CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
    CK_RSA_PKCS_OAEP_PARAMS op = {CKM_SHA256, CKG_MGF1_SHA256, 0, NULL, 0};
    CK_MECHANISM oaep = {CKM_RSA_PKCS_OAEP, &op, sizeof(op)};
    CK_BYTE blob[BUF_MAX], garbage[48], out[64];
    CK_ULONG len, before;
    struct p11_tmpl t, ut;
    CK_OBJECT_HANDLE secret;

    (void)state;
    /* uw unwraps but may not decrypt; wr is the same value, wrapping. */
    t_key(&t, CKK_AES, true, false);
    t_bool(&t, CKA_DERIVE, false);
    t_bool(&t, CKA_UNWRAP, true);
    uw = t_create(&t, k32, sizeof(k32));
    t_key(&t, CKK_AES, true, false);
    t_bool(&t, CKA_DERIVE, false);
    t_bool(&t, CKA_WRAP, true);
    wr = t_create(&t, k32, sizeof(k32));
    t_key(&t, CKK_GENERIC_SECRET, true, true);
    secret = t_create(&t, k16, sizeof(k16));

    memset(&ut, 0, sizeof(ut));
    t_ulong(&ut, CKA_CLASS, CKO_SECRET_KEY);
    t_ulong(&ut, CKA_KEY_TYPE, CKK_GENERIC_SECRET);
    t_bool(&ut, CKA_TOKEN, false);
    t_bool(&ut, CKA_SENSITIVE, false);
    t_bool(&ut, CKA_EXTRACTABLE, true);

    /* Any ciphertext, readable out: refused before it is decrypted (no
     * padding answer either), nothing made. */
    before = p11_count_all(S);
    memset(garbage, 0x5a, sizeof(garbage));
    assert_rv(
        p11->C_UnwrapKey(S, &cbc, uw, garbage, sizeof(garbage), ut.a, ut.n, &u),
        CKR_TEMPLATE_INCONSISTENT);
    assert_rv(p11->C_UnwrapKey(S, &ecb, uw, garbage, 32, ut.a, ut.n, &u),
              CKR_TEMPLATE_INCONSISTENT);
    assert_int_equal(p11_count_all(S), before);
    /* A real blob: refused as readable, fine as sensitive. */
    len = sizeof(blob);
    assert_rv(p11->C_WrapKey(S, &cbc, wr, secret, blob, &len), CKR_OK);
    assert_rv(p11->C_UnwrapKey(S, &cbc, uw, blob, len, ut.a, ut.n, &u),
              CKR_TEMPLATE_INCONSISTENT);
    assert_int_equal(p11_count_all(S), before);
    /* Sensitive but extractable: the second hop (wrap it under the
     * caller's own key, unwrap that as not sensitive) would read it. */
    t_bool(&ut, CKA_SENSITIVE, true);
    assert_rv(p11->C_UnwrapKey(S, &cbc, uw, blob, len, ut.a, ut.n, &u),
              CKR_TEMPLATE_INCONSISTENT);
    assert_int_equal(p11_count_all(S), before);
    /* Silent on CKA_EXTRACTABLE: sensitive and not extractable, so it can
     * be used but never wrapped out. */
    {
        struct p11_tmpl us;
        CK_OBJECT_HANDLE own;

        memset(&us, 0, sizeof(us));
        t_ulong(&us, CKA_CLASS, CKO_SECRET_KEY);
        t_ulong(&us, CKA_KEY_TYPE, CKK_GENERIC_SECRET);
        t_bool(&us, CKA_TOKEN, false);
        t_bool(&us, CKA_SENSITIVE, true);
        assert_rv(p11->C_UnwrapKey(S, &cbc, uw, blob, len, us.a, us.n, &u),
                  CKR_OK);
        assert_value_hidden(u);
        assert_int_equal(p11_get_bool(S, u, CKA_EXTRACTABLE), CK_FALSE);
        t_key(&t, CKK_AES, true, false);
        t_bool(&t, CKA_DERIVE, false);
        t_bool(&t, CKA_WRAP, true);
        own = t_create(&t, k16, sizeof(k16));
        len = sizeof(blob);
        assert_rv(p11->C_WrapKey(S, &kwp, own, u, blob, &len),
                  CKR_KEY_UNEXTRACTABLE);
        assert_rv(p11->C_WrapKey(S, &cbc, wr, secret, blob, &len), CKR_OK);
    }
    /* A key-wrap mechanism is not a cipher: a readable key is allowed. */
    t_bool(&ut, CKA_SENSITIVE, false);
    len = sizeof(blob);
    assert_rv(p11->C_WrapKey(S, &kwp, wr, secret, blob, &len), CKR_OK);
    assert_rv(p11->C_UnwrapKey(S, &kwp, uw, blob, len, ut.a, ut.n, &u), CKR_OK);
    assert_int_equal(p11_get_bytes(S, u, CKA_VALUE, out, sizeof(out)), 16);
    assert_memory_equal(out, k16, 16);
    /* A key that may decrypt anyway may unwrap into a readable key. */
    t_key(&t, CKK_AES, true, false);
    t_bool(&t, CKA_DERIVE, false);
    t_bool(&t, CKA_UNWRAP, true);
    t_bool(&t, CKA_DECRYPT, true);
    dec = t_create(&t, k32, sizeof(k32));
    len = sizeof(blob);
    assert_rv(p11->C_WrapKey(S, &cbc, wr, secret, blob, &len), CKR_OK);
    assert_rv(p11->C_UnwrapKey(S, &cbc, dec, blob, len, ut.a, ut.n, &u),
              CKR_OK);
    assert_int_equal(p11_get_bytes(S, u, CKA_VALUE, out, sizeof(out)), 16);
    assert_memory_equal(out, k16, 16);

    /* RSA OAEP, a private key that unwraps but may not decrypt. */
    {
        CK_MECHANISM gen = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
        CK_ULONG bits = 2048;
        CK_BYTE e[] = {1, 0, 1};
        CK_ATTRIBUTE tpub[] = {
            {CKA_TOKEN, &no, sizeof(no)},
            {CKA_MODULUS_BITS, &bits, sizeof(bits)},
            {CKA_PUBLIC_EXPONENT, e, sizeof(e)},
            {CKA_ENCRYPT, &no, sizeof(no)},
            {CKA_WRAP, &yes, sizeof(yes)},
        };
        CK_ATTRIBUTE tpriv[] = {
            {CKA_TOKEN, &no, sizeof(no)},  {CKA_DECRYPT, &no, sizeof(no)},
            {CKA_SIGN, &no, sizeof(no)},   {CKA_UNWRAP, &yes, sizeof(yes)},
            {CKA_DERIVE, &no, sizeof(no)},
        };

        assert_rv(p11->C_GenerateKeyPair(S, &gen, tpub, N(tpub), tpriv,
                                         N(tpriv), &rpub, &rpriv),
                  CKR_OK);
        len = sizeof(blob);
        assert_rv(p11->C_WrapKey(S, &oaep, rpub, secret, blob, &len), CKR_OK);
        before = p11_count_all(S);
        assert_rv(p11->C_UnwrapKey(S, &oaep, rpriv, blob, len, ut.a, ut.n, &u),
                  CKR_TEMPLATE_INCONSISTENT);
        assert_int_equal(p11_count_all(S), before);
        t_bool(&ut, CKA_SENSITIVE, true);
        assert_rv(p11->C_UnwrapKey(S, &oaep, rpriv, blob, len, ut.a, ut.n, &u),
                  CKR_TEMPLATE_INCONSISTENT);
        t_bool(&ut, CKA_EXTRACTABLE, false);
        assert_rv(p11->C_UnwrapKey(S, &oaep, rpriv, blob, len, ut.a, ut.n, &u),
                  CKR_OK);
        assert_value_hidden(u);
    }
}

/* ------------------------------------------------------------ fixed */

/* The object id as nimbus-mgmt names it. */
static unsigned long long object_id(CK_OBJECT_HANDLE h)
{
    CK_BYTE id[8];
    unsigned long long v = 0;

    assert_int_equal(p11_get_bytes(S, h, CKA_NIMBUS_OBJECT_ID, id, sizeof(id)),
                     8);
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | id[i];
    }
    return v;
}

/* bob's user id (the owner of a key bob makes); leaves alice logged in. */
static CK_ULONG bob_uid(void)
{
    CK_OBJECT_HANDLE h;
    CK_ULONG uid;
    struct p11_tmpl t;

    assert_rv(p11->C_Logout(S), CKR_OK);
    p11_login_cu(S, "bob", P11_BOB_PW);
    t_key(&t, CKK_AES, true, false);
    h = t_create(&t, k16, sizeof(k16));
    uid = p11_get_ulong(S, h, CKA_NIMBUS_OWNER);
    assert_rv(p11->C_Logout(S), CKR_OK);
    p11_login_cu(S, "alice", P11_ALICE_PW);
    return uid;
}

/* alice shares her token key h with user uid through nimbus-mgmt; false
 * when the shell is not at hand (the caller skips). */
static bool share(CK_OBJECT_HANDLE h, CK_ULONG uid)
{
    const char *top = getenv("NIMBUS_TOP_BUILDDIR");
    char cmd[1024];

    if (top == NULL || *top == '\0') {
        return false;
    }
    snprintf(cmd, sizeof(cmd),
             "'%s/nimbus-mgmt' -y -c 'loginHSM CU alice %s; shareKey %llu "
             "%lu 1' >'%s/mgmt.out' 2>&1",
             top, P11_ALICE_PW, object_id(h), (unsigned long)uid, p11_dir());
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof(cmd), "cat '%s/mgmt.out' >&2", p11_dir());
        (void)system(cmd);
        fail_msg("nimbus-mgmt shareKey failed");
    }
    return true;
}

static CK_OBJECT_HANDLE find_label(const char *label)
{
    CK_ATTRIBUTE f = {CKA_LABEL, (void *)label, (CK_ULONG)strlen(label)};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

    assert_int_equal(p11_find_all(S, &f, 1, &h, 1), 1);
    return h;
}

/* What bob may not do to the key he unwrapped under alice's template. */
static void assert_fixed(CK_OBJECT_HANDLE u)
{
    CK_ATTRIBUTE derive = {CKA_DERIVE, &yes, sizeof(yes)};
    CK_ATTRIBUTE two[] = {
        {CKA_LABEL, "relabelled", 10},
        {CKA_DERIVE, &yes, sizeof(yes)},
    };
    CK_ATTRIBUTE ext = {CKA_EXTRACTABLE, &yes, sizeof(yes)};
    CK_ULONG dummy = 0;
    CK_ATTRIBUTE fixed = {FIXED_TYPES, &dummy, sizeof(dummy)};
    CK_BYTE label[32];
    CK_ULONG before = p11_count_all(S);
    CK_OBJECT_HANDLE c = CK_INVALID_HANDLE;

    assert_rv(p11->C_SetAttributeValue(S, u, &derive, 1),
              CKR_ATTRIBUTE_READ_ONLY);
    assert_rv(p11->C_SetAttributeValue(S, u, two, N(two)),
              CKR_ATTRIBUTE_READ_ONLY);
    assert_rv(p11->C_SetAttributeValue(S, u, &ext, 1), CKR_ATTRIBUTE_READ_ONLY);
    assert_rv(p11->C_CopyObject(S, u, &derive, 1, &c), CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(c, CK_INVALID_HANDLE);
    assert_int_equal(p11_count_all(S), before);
    /* nothing changed */
    assert_int_equal(p11_get_bool(S, u, CKA_DERIVE), CK_FALSE);
    assert_int_equal(p11_get_bytes(S, u, CKA_LABEL, label, sizeof(label)), 7);
    assert_memory_equal(label, "laundry", 7);
    /* the memory of it is the token's own */
    fixed.ulValueLen = sizeof(dummy);
    assert_rv(p11->C_GetAttributeValue(S, u, &fixed, 1),
              CKR_ATTRIBUTE_TYPE_INVALID);
    fixed.ulValueLen = 0;
    assert_rv(p11->C_SetAttributeValue(S, u, &fixed, 1),
              CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(p11_find_all(S, &fixed, 1, NULL, 0), 0);
}

static void test_unwrap_template_fixed(void **state)
{
    CK_ATTRIBUTE utmpl[] = {
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_DERIVE, &no, sizeof(no)},
    };
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
    CK_BYTE zero = 0;
    CK_KEY_DERIVATION_STRING_DATA sd = {&zero, 1};
    CK_MECHANISM cat = {CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd)};
    CK_OBJECT_HANDLE w, k, u, c, d;
    CK_ULONG uid = bob_uid();
    CK_BYTE blob[BUF_MAX];
    CK_ULONG len;
    struct p11_tmpl t;

    (void)state;
    /* alice: a wrap-only token key with an unwrap template, shared. */
    t_key(&t, CKK_AES, true, false);
    t_bool(&t, CKA_TOKEN, true);
    t_bool(&t, CKA_DERIVE, false);
    t_bool(&t, CKA_WRAP, true);
    t_bool(&t, CKA_UNWRAP, true);
    t_set(&t, CKA_LABEL, "wrapper", 7);
    t_set(&t, CKA_UNWRAP_TEMPLATE, utmpl, sizeof(utmpl));
    w = t_create(&t, k32, sizeof(k32));
    if (!share(w, uid)) {
        print_message("NIMBUS_TOP_BUILDDIR unset: skipped\n");
        skip();
    }
    t_key(&t, CKK_AES, true, true);
    k = t_create(&t, k16, sizeof(k16));
    len = sizeof(blob);
    assert_rv(p11->C_WrapKey(S, &kwp, w, k, blob, &len), CKR_OK);

    /* bob unwraps alice's key under the shared key. */
    assert_rv(p11->C_Logout(S), CKR_OK);
    p11_login_cu(S, "bob", P11_BOB_PW);
    w = find_label("wrapper");
    memset(&t, 0, sizeof(t));
    t_ulong(&t, CKA_CLASS, CKO_SECRET_KEY);
    t_ulong(&t, CKA_KEY_TYPE, CKK_AES);
    t_bool(&t, CKA_TOKEN, true);
    t_set(&t, CKA_LABEL, "laundry", 7);
    assert_rv(p11->C_UnwrapKey(S, &kwp, w, blob, len, t.a, t.n, &u), CKR_OK);
    assert_int_equal(p11_get_bool(S, u, CKA_DERIVE), CK_FALSE);
    assert_int_equal(p11_get_bool(S, u, CKA_SENSITIVE), CK_TRUE);
    assert_int_equal(p11_get_bool(S, u, CKA_EXTRACTABLE), CK_FALSE);
    assert_fixed(u);
    /* An attribute the template did not name still changes. */
    {
        CK_ATTRIBUTE enc = {CKA_ENCRYPT, &yes, sizeof(yes)};

        assert_rv(p11->C_SetAttributeValue(S, u, &enc, 1), CKR_OK);
        assert_int_equal(p11_get_bool(S, u, CKA_ENCRYPT), CK_TRUE);
    }
    /* A plain copy keeps the rule. */
    {
        CK_ATTRIBUTE tok = {CKA_TOKEN, &no, sizeof(no)};

        assert_rv(p11->C_CopyObject(S, u, &tok, 1, &c), CKR_OK);
        assert_fixed(c);
    }
    /* ...and no derivation reads it. */
    t_derived(&t, CKK_GENERIC_SECRET, 0);
    assert_rv(p11->C_DeriveKey(S, &cat, u, t.a, t.n, &d),
              CKR_KEY_FUNCTION_NOT_PERMITTED);

    /* The store keeps it across a restart. */
    p11_restart();
    S = p11_open_rw();
    p11_login_cu(S, "bob", P11_BOB_PW);
    u = find_label("laundry");
    assert_fixed(u);
}

/* What a base key's CKA_DERIVE_TEMPLATE fixed stays fixed too. */
static void test_derive_template_fixed(void **state)
{
    CK_ATTRIBUTE dtmpl[] = {
        {CKA_SIGN, &no, sizeof(no)},
        {CKA_DERIVE, &no, sizeof(no)},
    };
    CK_BYTE zero = 0;
    CK_KEY_DERIVATION_STRING_DATA sd = {&zero, 1};
    CK_MECHANISM cat = {CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd)};
    CK_ATTRIBUTE sign = {CKA_SIGN, &yes, sizeof(yes)};
    CK_ATTRIBUTE verify = {CKA_VERIFY, &yes, sizeof(yes)};
    CK_OBJECT_HANDLE base, d, c;
    struct p11_tmpl t;

    (void)state;
    t_key(&t, CKK_GENERIC_SECRET, true, false);
    t_set(&t, CKA_DERIVE_TEMPLATE, dtmpl, sizeof(dtmpl));
    base = t_create(&t, k16, sizeof(k16));
    t_derived(&t, CKK_GENERIC_SECRET, 0);
    assert_rv(p11->C_DeriveKey(S, &cat, base, t.a, t.n, &d), CKR_OK);
    assert_int_equal(p11_get_bool(S, d, CKA_SIGN), CK_FALSE);
    assert_rv(p11->C_SetAttributeValue(S, d, &sign, 1),
              CKR_ATTRIBUTE_READ_ONLY);
    assert_rv(p11->C_CopyObject(S, d, &sign, 1, &c), CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(p11_get_bool(S, d, CKA_SIGN), CK_FALSE);
    assert_rv(p11->C_SetAttributeValue(S, d, &verify, 1), CKR_OK);

    /* ECDH reads the private key's derive template as well. */
    {
        CK_OBJECT_HANDLE pa, ka, pb, kb;
        CK_BYTE point[128];
        CK_ECDH1_DERIVE_PARAMS p;
        CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof(p)};

        gen_p256(CK_FALSE, &pb, &kb);
        memset(&p, 0, sizeof(p));
        p.kdf = CKD_NULL;
        p.ulPublicDataLen = raw_point(pb, point);
        p.pPublicData = point;
        /* the private key of a pair made with a derive template */
        {
            static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x03, 0x01, 0x07};
            CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
            CK_ATTRIBUTE tpub[] = {
                {CKA_TOKEN, &no, sizeof(no)},
                {CKA_EC_PARAMS, (void *)p256, sizeof(p256)},
            };
            CK_ATTRIBUTE tpriv[] = {
                {CKA_TOKEN, &no, sizeof(no)},
                {CKA_SIGN, &no, sizeof(no)},
                {CKA_DERIVE, &yes, sizeof(yes)},
                {CKA_DERIVE_TEMPLATE, dtmpl, sizeof(dtmpl)},
            };

            assert_rv(p11->C_GenerateKeyPair(S, &gen, tpub, N(tpub), tpriv,
                                             N(tpriv), &pa, &ka),
                      CKR_OK);
        }
        t_derived(&t, CKK_GENERIC_SECRET, 32);
        t_bool(&t, CKA_SIGN, true);
        assert_rv(p11->C_DeriveKey(S, &m, ka, t.a, t.n, &d),
                  CKR_TEMPLATE_INCONSISTENT);
        t_derived(&t, CKK_GENERIC_SECRET, 32);
        assert_rv(p11->C_DeriveKey(S, &m, ka, t.a, t.n, &d), CKR_OK);
        assert_int_equal(p11_get_bool(S, d, CKA_SIGN), CK_FALSE);
        assert_rv(p11->C_SetAttributeValue(S, d, &sign, 1),
                  CKR_ATTRIBUTE_READ_ONLY);
    }
}

/* A key shared for nothing but encryption yields no HMAC of it to the
 * user it is shared with, through HKDF's salt key. */
static void test_shared_salt_key(void **state)
{
    CK_OBJECT_HANDLE k, base, d;
    CK_ULONG uid = bob_uid(), before;
    CK_HKDF_PARAMS p;
    CK_MECHANISM m = {CKM_HKDF_DERIVE, &p, sizeof(p)};
    struct p11_tmpl t;

    (void)state;
    t_key(&t, CKK_GENERIC_SECRET, true, false);
    t_bool(&t, CKA_TOKEN, true);
    t_bool(&t, CKA_DERIVE, false);
    t_bool(&t, CKA_SIGN, false);
    t_set(&t, CKA_LABEL, "encrypt-only", 12);
    k = t_create(&t, k32, sizeof(k32));
    if (!share(k, uid)) {
        print_message("NIMBUS_TOP_BUILDDIR unset: skipped\n");
        skip();
    }
    assert_rv(p11->C_Logout(S), CKR_OK);
    p11_login_cu(S, "bob", P11_BOB_PW);
    k = find_label("encrypt-only");
    t_key(&t, CKK_GENERIC_SECRET, false, true);
    base = t_create(&t, k16, sizeof(k16));
    memset(&p, 0, sizeof(p));
    p.bExtract = CK_TRUE;
    p.bExpand = CK_FALSE;
    p.prfHashMechanism = CKM_SHA256;
    p.ulSaltType = CKF_HKDF_SALT_KEY;
    p.hSaltKey = k;
    before = p11_count_all(S);
    t_derived(&t, CKK_GENERIC_SECRET, 0);
    assert_rv(p11->C_DeriveKey(S, &m, base, t.a, t.n, &d),
              CKR_KEY_FUNCTION_NOT_PERMITTED);
    t_bool(&t, CKA_SENSITIVE, false);
    assert_rv(p11->C_DeriveKey(S, &m, base, t.a, t.n, &d),
              CKR_KEY_FUNCTION_NOT_PERMITTED);
    assert_int_equal(p11_count_all(S), before);
}

/* The configuration switch this group's rules answer to is accepted. */
static void test_protect_config(void **state)
{
    (void)state;
    assert_rv(p11_fresh_rv("key_separation = on\n"), CKR_OK);
}

int p11_group_protect(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_protect, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_inherit_concat),
        T(test_inherit_second_key),
        T(test_inherit_aes_data),
        T(test_inherit_hkdf),
        T(test_inherit_sp800_108),
        T(test_inherit_ecdh),
        T(test_inherit_trusted),
        T(test_inherit_readable),
        T(test_concat_data_and_base),
        T(test_other_key_needs_derive),
        T(test_unwrap_is_not_decrypt),
        T(test_unwrap_template_fixed),
        T(test_derive_template_fixed),
        T(test_shared_salt_key),
        cmocka_unit_test_setup_teardown(test_protect_config, p11_setup,
                                        p11_teardown),
    };
#undef T

    return cmocka_run_group_tests_name("key protection", tests, NULL, NULL);
}
