/*
 * test_separation.c - key separation (issue 11) and the attribute defaults
 * (issue 12), through the module: no key both wraps and decrypts (nor both
 * unwraps and encrypts), so that C_WrapKey then C_Decrypt under the same
 * key never gives a key back in clear (AES KW, KWP, ECB, CBC-PAD, also
 * with a wrapping key the CO marked trusted); each entry point refuses the
 * pair with its exact code and leaves nothing behind; the defaults never
 * make the pair; the key-wrap mechanisms are no ciphers; key_separation =
 * off restores the old behaviour, and a key made then no longer wraps once
 * the rule is back; every default of every class as the spec's tables
 * give it (CKA_DERIVE FALSE) or as the README names the token's choice.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11util.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))
#define BUF_MAX 4096

static CK_BBOOL yes = CK_TRUE;
static CK_BBOOL no = CK_FALSE;
static CK_OBJECT_CLASS c_secret = CKO_SECRET_KEY;
static CK_KEY_TYPE k_aes = CKK_AES;
static CK_KEY_TYPE k_gen = CKK_GENERIC_SECRET;

/* The session of the running test: alice logged in, RW. */
static CK_SESSION_HANDLE S;

static const CK_BYTE kek_val[32] = {
    0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae,
    0xf0, 0x85, 0x7d, 0x77, 0x81, 0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61,
    0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4};
/* The key the attacker wants: 16 bytes, a whole block for ECB. */
static const CK_BYTE target_val[16] = {0xc0, 0xff, 0xee, 0x11, 0x22, 0x33,
                                       0x44, 0x55, 0x66, 0x77, 0x88, 0x99,
                                       0xaa, 0xbb, 0xcc, 0xdd};
static CK_BYTE iv16[16] = {0, 1, 2,  3,  4,  5,  6,  7,
                           8, 9, 10, 11, 12, 13, 14, 15};

/* ------------------------------------------------------------ helpers */

/* A fresh token (extra_conf as p11_fresh), alice logged in on S. */
static void start(const char *extra_conf)
{
    p11_fresh(extra_conf);
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    S = p11_open_rw();
    p11_login_cu(S, "alice", P11_ALICE_PW);
}

static int setup_sep(void **state)
{
    (void)state;
    start(NULL);
    return 0;
}

/* The shared template builder (p11util.h); no test here names a type
 * twice, so its replacing is never used. */
#define t_add p11_tmpl_set
#define t_bool p11_tmpl_bool

/* A session AES key with the value given and no usage attribute named. */
static void t_aes(struct p11_tmpl *t, const CK_BYTE *v, CK_ULONG len)
{
    memset(t, 0, sizeof(*t));
    t_add(t, CKA_CLASS, &c_secret, sizeof(c_secret));
    t_add(t, CKA_KEY_TYPE, &k_aes, sizeof(k_aes));
    t_bool(t, CKA_TOKEN, false);
    t_add(t, CKA_VALUE, v, len);
}

static CK_OBJECT_HANDLE create(struct p11_tmpl *t)
{
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

    assert_rv(p11->C_CreateObject(S, t->a, t->n, &h), CKR_OK);
    return h;
}

/* An AES key that wraps (CKA_WRAP TRUE, nothing else named). */
static CK_OBJECT_HANDLE make_wrapper(bool token)
{
    struct p11_tmpl t;

    t_aes(&t, kek_val, sizeof(kek_val));
    t.a[2].pValue = token ? &yes : &no; /* CKA_TOKEN */
    t_bool(&t, CKA_WRAP, true);
    return create(&t);
}

/* The key to steal: extractable, sensitive (its value is not readable). */
static CK_OBJECT_HANDLE make_target(bool wrap_with_trusted)
{
    struct p11_tmpl t;

    t_aes(&t, target_val, sizeof(target_val));
    t_bool(&t, CKA_SENSITIVE, true);
    t_bool(&t, CKA_EXTRACTABLE, true);
    if (wrap_with_trusted) {
        t_bool(&t, CKA_WRAP_WITH_TRUSTED, true);
    }
    return create(&t);
}

static CK_BBOOL get_bool(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type)
{
    return p11_get_bool(S, h, type);
}

static CK_RV set_bool(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, bool v)
{
    CK_ATTRIBUTE a = {type, v ? &yes : &no, sizeof(CK_BBOOL)};

    return p11->C_SetAttributeValue(S, h, &a, 1);
}

static CK_RV copy_with(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type, bool v,
                       CK_OBJECT_HANDLE *out)
{
    CK_ATTRIBUTE a = {type, v ? &yes : &no, sizeof(CK_BBOOL)};

    *out = CK_INVALID_HANDLE;
    return p11->C_CopyObject(S, h, &a, 1, out);
}

static CK_RV wrap(CK_MECHANISM *m, CK_OBJECT_HANDLE wk, CK_OBJECT_HANDLE k,
                  CK_BYTE *out, CK_ULONG *len)
{
    *len = BUF_MAX;
    return p11->C_WrapKey(S, m, wk, k, out, len);
}

/* C_DecryptInit then C_Decrypt in one; the init's code if it fails. */
static CK_RV decrypt(CK_MECHANISM *m, CK_OBJECT_HANDLE k, CK_BYTE *in,
                     CK_ULONG inlen, CK_BYTE *out, CK_ULONG *outlen)
{
    CK_RV rv = p11->C_DecryptInit(S, m, k);

    if (rv != CKR_OK) {
        return rv;
    }
    *outlen = BUF_MAX;
    return p11->C_Decrypt(S, in, inlen, out, outlen);
}

/* The object id as nimbus-mgmt names it. */
static unsigned long long object_id(CK_OBJECT_HANDLE h)
{
    CK_BYTE id[8];
    unsigned long long v = 0;

    assert_int_equal(p11_get_bytes(S, h, CKA_NIMBUS_OBJECT_ID, id, 8), 8);
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | id[i];
    }
    return v;
}

/* The CO marks a token key trusted through nimbus-mgmt (setAttribute of
 * CKA_TRUSTED, 134); false when the shell is not there to run. */
static bool co_trust(CK_OBJECT_HANDLE h)
{
    const char *top = getenv("NIMBUS_TOP_BUILDDIR");
    char cmd[1024];

    if (top == NULL || *top == '\0') {
        return false;
    }
    snprintf(cmd, sizeof(cmd),
             "'%s/nimbus-mgmt' -y -c 'loginHSM CO admin %s; setAttribute "
             "%llu 134 1' >'%s/mgmt.out' 2>&1",
             top, P11_SO_PW, object_id(h), p11_dir());
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof(cmd), "cat '%s/mgmt.out' >&2", p11_dir());
        (void)system(cmd);
        fail_msg("nimbus-mgmt setAttribute CKA_TRUSTED failed");
    }
    return true;
}

/* ------------------------------------------------------------ attack */

/*
 * Wrap-then-decrypt, under each mechanism that can do both: the wrapping
 * key cannot be made a decryption key (create, set, copy), so C_Decrypt
 * of the blob under it is refused and the target's value never appears.
 */
static void test_wrap_then_decrypt(void **state)
{
    static const struct {
        const char *name;
        CK_MECHANISM m;
        CK_RV decrypt_rv; /* C_DecryptInit with the wrapping key */
    } mechs[] = {
        {"AES-KW", {CKM_AES_KEY_WRAP, NULL, 0}, CKR_MECHANISM_INVALID},
        {"AES-KWP", {CKM_AES_KEY_WRAP_KWP, NULL, 0}, CKR_MECHANISM_INVALID},
        {"AES-ECB", {CKM_AES_ECB, NULL, 0}, CKR_KEY_FUNCTION_NOT_PERMITTED},
        {"AES-CBC-PAD",
         {CKM_AES_CBC_PAD, iv16, sizeof(iv16)},
         CKR_KEY_FUNCTION_NOT_PERMITTED},
    };
    CK_OBJECT_HANDLE target = make_target(false);

    (void)state;
    for (size_t i = 0; i < N(mechs); i++) {
        CK_MECHANISM m = mechs[i].m;
        CK_BYTE blob[BUF_MAX], out[BUF_MAX];
        CK_ULONG len, olen = 0;
        CK_OBJECT_HANDLE w, h;
        CK_ULONG before = p11_count_all(S);
        struct p11_tmpl t;

        print_message("%s\n", mechs[i].name);
        /* A key that would both wrap and decrypt is never made. */
        t_aes(&t, kek_val, sizeof(kek_val));
        t_bool(&t, CKA_WRAP, true);
        t_bool(&t, CKA_DECRYPT, true);
        h = CK_INVALID_HANDLE;
        assert_rv(p11->C_CreateObject(S, t.a, t.n, &h),
                  CKR_TEMPLATE_INCONSISTENT);
        assert_int_equal(h, CK_INVALID_HANDLE);
        assert_int_equal(p11_count_all(S), before);

        /* A wrapping key wraps... */
        w = make_wrapper(false);
        assert_int_equal(get_bool(w, CKA_DECRYPT), CK_FALSE);
        assert_rv(wrap(&m, w, target, blob, &len), CKR_OK);
        /* ...and does not decrypt what it wrapped. */
        assert_rv(decrypt(&m, w, blob, len, out, &olen), mechs[i].decrypt_rv);
        /* Nor can it be turned into a decryption key, or copied as one. */
        assert_rv(set_bool(w, CKA_DECRYPT, true), CKR_ATTRIBUTE_VALUE_INVALID);
        assert_int_equal(get_bool(w, CKA_DECRYPT), CK_FALSE);
        before = p11_count_all(S);
        assert_rv(copy_with(w, CKA_DECRYPT, true, &h),
                  CKR_TEMPLATE_INCONSISTENT);
        assert_int_equal(h, CK_INVALID_HANDLE);
        assert_int_equal(p11_count_all(S), before);
        assert_rv(decrypt(&m, w, blob, len, out, &olen), mechs[i].decrypt_rv);
        assert_rv(p11->C_DestroyObject(S, w), CKR_OK);
    }
}

/*
 * The same with a wrapping key the CO marked trusted: the one kind of key
 * that wraps CKA_WRAP_WITH_TRUSTED keys, which no one can make by himself.
 * It wraps such a key, and neither it nor a trusted decryption key turned
 * wrapping key decrypts the blob.
 */
static void test_wrap_then_decrypt_trusted(void **state)
{
    CK_MECHANISM kw = {CKM_AES_KEY_WRAP, NULL, 0};
    CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
    CK_OBJECT_HANDLE w, d, target;
    CK_BYTE blob[BUF_MAX], out[BUF_MAX];
    CK_ULONG len, olen = 0;
    struct p11_tmpl t;

    (void)state;
    w = make_wrapper(true);
    target = make_target(true);
    assert_rv(wrap(&kw, w, target, blob, &len), CKR_KEY_NOT_WRAPPABLE);
    if (!co_trust(w)) {
        print_message("NIMBUS_TOP_BUILDDIR unset: no nimbus-mgmt: skipped\n");
        skip();
    }
    assert_int_equal(get_bool(w, CKA_TRUSTED), CK_TRUE);
    assert_rv(wrap(&kw, w, target, blob, &len), CKR_OK);
    assert_rv(decrypt(&kw, w, blob, len, out, &olen), CKR_MECHANISM_INVALID);
    assert_rv(decrypt(&ecb, w, blob, len, out, &olen),
              CKR_KEY_FUNCTION_NOT_PERMITTED);
    assert_rv(set_bool(w, CKA_DECRYPT, true), CKR_ATTRIBUTE_VALUE_INVALID);
    assert_int_equal(get_bool(w, CKA_DECRYPT), CK_FALSE);

    /* A trusted decryption key may not become a wrapping key either. */
    t_aes(&t, kek_val, 16);
    t.a[2].pValue = &yes; /* CKA_TOKEN */
    d = create(&t);
    assert_int_equal(get_bool(d, CKA_DECRYPT), CK_TRUE);
    assert_true(co_trust(d));
    assert_rv(set_bool(d, CKA_WRAP, true), CKR_ATTRIBUTE_VALUE_INVALID);
    assert_int_equal(get_bool(d, CKA_WRAP), CK_FALSE);
    assert_rv(wrap(&ecb, d, target, blob, &len),
              CKR_KEY_FUNCTION_NOT_PERMITTED);
}

/* ------------------------------------------------------------ entry points */

/*
 * Every call that makes or changes a key refuses the pair with its code
 * and leaves nothing: C_CreateObject, C_GenerateKey, C_GenerateKeyPair
 * (where one key cannot even hold a pair), C_UnwrapKey, C_DeriveKey,
 * C_CopyObject (CKR_TEMPLATE_INCONSISTENT) and C_SetAttributeValue
 * (CKR_ATTRIBUTE_VALUE_INVALID).
 */
static void test_entry_points(void **state)
{
    static const CK_ATTRIBUTE_TYPE pairs[2][2] = {{CKA_WRAP, CKA_DECRYPT},
                                                  {CKA_UNWRAP, CKA_ENCRYPT}};
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
    CK_BYTE data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CK_KEY_DERIVATION_STRING_DATA sd = {data, sizeof(data)};
    CK_MECHANISM cat = {CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd)};
    CK_ULONG len16 = 16;
    CK_OBJECT_HANDLE kek, target, base, h, pub, priv;
    CK_BYTE blob[BUF_MAX];
    CK_ULONG blen, before;
    struct p11_tmpl t;

    (void)state;
    t_aes(&t, kek_val, sizeof(kek_val));
    t_bool(&t, CKA_WRAP, true);
    t_bool(&t, CKA_UNWRAP, true);
    kek = create(&t);
    target = make_target(false);
    assert_rv(wrap(&kwp, kek, target, blob, &blen), CKR_OK);
    memset(&t, 0, sizeof(t));
    t_add(&t, CKA_CLASS, &c_secret, sizeof(c_secret));
    t_add(&t, CKA_KEY_TYPE, &k_gen, sizeof(k_gen));
    t_bool(&t, CKA_TOKEN, false);
    t_add(&t, CKA_VALUE, kek_val, sizeof(kek_val));
    t_bool(&t, CKA_DERIVE, true);
    base = create(&t);

    for (size_t p = 0; p < 2; p++) {
        before = p11_count_all(S);

        /* C_CreateObject */
        t_aes(&t, kek_val, 16);
        t_bool(&t, pairs[p][0], true);
        t_bool(&t, pairs[p][1], true);
        h = CK_INVALID_HANDLE;
        assert_rv(p11->C_CreateObject(S, t.a, t.n, &h),
                  CKR_TEMPLATE_INCONSISTENT);
        /* C_GenerateKey */
        memset(&t, 0, sizeof(t));
        t_bool(&t, CKA_TOKEN, false);
        t_add(&t, CKA_VALUE_LEN, &len16, sizeof(len16));
        t_bool(&t, pairs[p][0], true);
        t_bool(&t, pairs[p][1], true);
        assert_rv(p11->C_GenerateKey(S, &gen, t.a, t.n, &h),
                  CKR_TEMPLATE_INCONSISTENT);
        /* C_UnwrapKey */
        memset(&t, 0, sizeof(t));
        t_add(&t, CKA_CLASS, &c_secret, sizeof(c_secret));
        t_add(&t, CKA_KEY_TYPE, &k_aes, sizeof(k_aes));
        t_bool(&t, CKA_TOKEN, false);
        t_bool(&t, pairs[p][0], true);
        t_bool(&t, pairs[p][1], true);
        assert_rv(p11->C_UnwrapKey(S, &kwp, kek, blob, blen, t.a, t.n, &h),
                  CKR_TEMPLATE_INCONSISTENT);
        /* C_DeriveKey */
        memset(&t, 0, sizeof(t));
        t_add(&t, CKA_CLASS, &c_secret, sizeof(c_secret));
        t_add(&t, CKA_KEY_TYPE, &k_gen, sizeof(k_gen));
        t_bool(&t, CKA_TOKEN, false);
        t_bool(&t, pairs[p][0], true);
        t_bool(&t, pairs[p][1], true);
        assert_rv(p11->C_DeriveKey(S, &cat, base, t.a, t.n, &h),
                  CKR_TEMPLATE_INCONSISTENT);
        assert_int_equal(h, CK_INVALID_HANDLE);
        assert_int_equal(p11_count_all(S), before);

        /* C_CopyObject and C_SetAttributeValue, from either side. */
        for (int side = 0; side < 2; side++) {
            CK_OBJECT_HANDLE k;

            t_aes(&t, kek_val, 16);
            t_bool(&t, pairs[p][side], true);
            t_bool(&t, pairs[p][1 - side], false);
            k = create(&t);
            before = p11_count_all(S);
            assert_rv(copy_with(k, pairs[p][1 - side], true, &h),
                      CKR_TEMPLATE_INCONSISTENT);
            assert_int_equal(h, CK_INVALID_HANDLE);
            assert_int_equal(p11_count_all(S), before);
            assert_rv(set_bool(k, pairs[p][1 - side], true),
                      CKR_ATTRIBUTE_VALUE_INVALID);
            assert_int_equal(get_bool(k, pairs[p][1 - side]), CK_FALSE);
            assert_int_equal(get_bool(k, pairs[p][side]), CK_TRUE);
            /* Changing roles in one call is fine. */
            {
                CK_ATTRIBUTE swap[2] = {
                    {pairs[p][side], &no, sizeof(no)},
                    {pairs[p][1 - side], &yes, sizeof(yes)},
                };

                assert_rv(p11->C_SetAttributeValue(S, k, swap, 2), CKR_OK);
                assert_int_equal(get_bool(k, pairs[p][side]), CK_FALSE);
                assert_int_equal(get_bool(k, pairs[p][1 - side]), CK_TRUE);
            }
        }
    }

    /* C_GenerateKeyPair: neither key of a pair can hold both members (the
     * public key has no CKA_DECRYPT, the private key no CKA_WRAP). */
    {
        static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                       0xce, 0x3d, 0x03, 0x01, 0x07};
        CK_MECHANISM ecgen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
        CK_ATTRIBUTE pt[] = {{CKA_TOKEN, &no, sizeof(no)},
                             {CKA_EC_PARAMS, (void *)p256, sizeof(p256)},
                             {CKA_WRAP, &yes, sizeof(yes)},
                             {CKA_DECRYPT, &yes, sizeof(yes)}};
        CK_ATTRIBUTE vt[] = {{CKA_TOKEN, &no, sizeof(no)},
                             {CKA_UNWRAP, &yes, sizeof(yes)},
                             {CKA_ENCRYPT, &yes, sizeof(yes)}};

        before = p11_count_all(S);
        assert_rv(
            p11->C_GenerateKeyPair(S, &ecgen, pt, N(pt), vt, 1, &pub, &priv),
            CKR_ATTRIBUTE_TYPE_INVALID);
        assert_rv(
            p11->C_GenerateKeyPair(S, &ecgen, pt, 3, vt, N(vt), &pub, &priv),
            CKR_ATTRIBUTE_TYPE_INVALID);
        assert_int_equal(p11_count_all(S), before);
    }
}

/* ------------------------------------------------------------ defaults */

/* A secret key's usage defaults never make a pair. */
static void test_usage_defaults(void **state)
{
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
    CK_ULONG len16 = 16;
    CK_ATTRIBUTE gt[] = {{CKA_TOKEN, &no, sizeof(no)},
                         {CKA_VALUE_LEN, &len16, sizeof(len16)}};
    CK_OBJECT_HANDLE k, kek, target;
    CK_BYTE blob[BUF_MAX];
    CK_ULONG blen;
    struct p11_tmpl t;

    (void)state;
    /* Nothing asked: a cipher and MAC key, no wrap side, no derive. */
    assert_rv(p11->C_GenerateKey(S, &gen, gt, N(gt), &k), CKR_OK);
    assert_int_equal(get_bool(k, CKA_ENCRYPT), CK_TRUE);
    assert_int_equal(get_bool(k, CKA_DECRYPT), CK_TRUE);
    assert_int_equal(get_bool(k, CKA_SIGN), CK_TRUE);
    assert_int_equal(get_bool(k, CKA_VERIFY), CK_TRUE);
    assert_int_equal(get_bool(k, CKA_WRAP), CK_FALSE);
    assert_int_equal(get_bool(k, CKA_UNWRAP), CK_FALSE);
    assert_int_equal(get_bool(k, CKA_DERIVE), CK_FALSE);

    /* CKA_WRAP asked: CKA_DECRYPT defaults FALSE, CKA_ENCRYPT stays. */
    t_aes(&t, kek_val, 16);
    t_bool(&t, CKA_WRAP, true);
    k = create(&t);
    assert_int_equal(get_bool(k, CKA_DECRYPT), CK_FALSE);
    assert_int_equal(get_bool(k, CKA_ENCRYPT), CK_TRUE);
    assert_int_equal(get_bool(k, CKA_UNWRAP), CK_FALSE);
    /* CKA_UNWRAP asked: CKA_ENCRYPT defaults FALSE, CKA_DECRYPT stays. */
    t_aes(&t, kek_val, 16);
    t_bool(&t, CKA_UNWRAP, true);
    k = create(&t);
    assert_int_equal(get_bool(k, CKA_ENCRYPT), CK_FALSE);
    assert_int_equal(get_bool(k, CKA_DECRYPT), CK_TRUE);
    assert_int_equal(get_bool(k, CKA_WRAP), CK_FALSE);
    /* Both asked: a key-encryption key only. */
    t_aes(&t, kek_val, 16);
    t_bool(&t, CKA_WRAP, true);
    t_bool(&t, CKA_UNWRAP, true);
    kek = create(&t);
    assert_int_equal(get_bool(kek, CKA_ENCRYPT), CK_FALSE);
    assert_int_equal(get_bool(kek, CKA_DECRYPT), CK_FALSE);
    /* WRAP with ENCRYPT (not a pair) is allowed when asked. */
    t_aes(&t, kek_val, 16);
    t_bool(&t, CKA_WRAP, true);
    t_bool(&t, CKA_ENCRYPT, true);
    k = create(&t);
    assert_int_equal(get_bool(k, CKA_DECRYPT), CK_FALSE);
    /* An unwrapped key gets the same defaults. */
    target = make_target(false);
    assert_rv(wrap(&kwp, kek, target, blob, &blen), CKR_OK);
    memset(&t, 0, sizeof(t));
    t_add(&t, CKA_CLASS, &c_secret, sizeof(c_secret));
    t_add(&t, CKA_KEY_TYPE, &k_aes, sizeof(k_aes));
    t_bool(&t, CKA_TOKEN, false);
    assert_rv(p11->C_UnwrapKey(S, &kwp, kek, blob, blen, t.a, t.n, &k), CKR_OK);
    assert_int_equal(get_bool(k, CKA_WRAP), CK_FALSE);
    assert_int_equal(get_bool(k, CKA_UNWRAP), CK_FALSE);
    assert_int_equal(get_bool(k, CKA_DECRYPT), CK_TRUE);
    assert_int_equal(get_bool(k, CKA_DERIVE), CK_FALSE);
}

/* Attribute checks that name the attribute when they fail. */
static int expect_bool(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                       CK_BBOOL want, const char *what)
{
    CK_BBOOL v = 0xAA;
    CK_ATTRIBUTE a = {type, &v, sizeof(v)};
    CK_RV rv = p11->C_GetAttributeValue(S, h, &a, 1);

    if (rv != CKR_OK || a.ulValueLen != sizeof(v) || v != want) {
        print_error("%s: attribute 0x%lx: %s, value %d, wanted %d\n", what,
                    (unsigned long)type, p11_rv_name(rv), v, want);
        return 1;
    }
    return 0;
}

static int expect_ulong(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                        CK_ULONG want, const char *what)
{
    CK_ULONG v = 0xAA;
    CK_ATTRIBUTE a = {type, &v, sizeof(v)};
    CK_RV rv = p11->C_GetAttributeValue(S, h, &a, 1);

    if (rv != CKR_OK || a.ulValueLen != sizeof(v) || v != want) {
        print_error("%s: attribute 0x%lx: %s, value 0x%lx, wanted 0x%lx\n",
                    what, (unsigned long)type, p11_rv_name(rv),
                    (unsigned long)v, (unsigned long)want);
        return 1;
    }
    return 0;
}

/* The attribute is there and empty ("default empty" in the tables). */
static int expect_empty(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                        const char *what)
{
    CK_ATTRIBUTE a = {type, NULL, 0};
    CK_RV rv = p11->C_GetAttributeValue(S, h, &a, 1);

    if (rv != CKR_OK || a.ulValueLen != 0) {
        print_error("%s: attribute 0x%lx: %s, length %ld, wanted empty\n", what,
                    (unsigned long)type, p11_rv_name(rv), (long)a.ulValueLen);
        return 1;
    }
    return 0;
}

/* The storage object defaults (TOKEN, MODIFIABLE, COPYABLE, DESTROYABLE,
 * LABEL from the spec; PRIVATE the token's choice per class). */
static int expect_storage(CK_OBJECT_HANDLE h, CK_BBOOL priv, const char *what)
{
    int f = 0;

    f += expect_bool(h, CKA_TOKEN, CK_FALSE, what);
    f += expect_bool(h, CKA_PRIVATE, priv, what);
    f += expect_bool(h, CKA_MODIFIABLE, CK_TRUE, what);
    f += expect_bool(h, CKA_COPYABLE, CK_TRUE, what);
    f += expect_bool(h, CKA_DESTROYABLE, CK_TRUE, what);
    f += expect_empty(h, CKA_LABEL, what);
    return f;
}

/* The common key defaults; gen: the generating mechanism, or
 * CK_UNAVAILABLE_INFORMATION for a key that was not generated. */
static int expect_key(CK_OBJECT_HANDLE h, CK_MECHANISM_TYPE gen,
                      const char *what)
{
    int f = 0;

    f += expect_empty(h, CKA_ID, what);
    f += expect_empty(h, CKA_START_DATE, what);
    f += expect_empty(h, CKA_END_DATE, what);
    f += expect_bool(h, CKA_DERIVE, CK_FALSE, what);
    f += expect_bool(h, CKA_LOCAL,
                     gen != CK_UNAVAILABLE_INFORMATION ? CK_TRUE : CK_FALSE,
                     what);
    f += expect_ulong(h, CKA_KEY_GEN_MECHANISM, gen, what);
    f += expect_empty(h, CKA_ALLOWED_MECHANISMS, what);
    return f;
}

static int expect_public(CK_OBJECT_HANDLE h, CK_MECHANISM_TYPE gen,
                         const char *what)
{
    int f = expect_storage(h, CK_FALSE, what) + expect_key(h, gen, what);

    f += expect_empty(h, CKA_SUBJECT, what);
    f += expect_bool(h, CKA_ENCRYPT, CK_TRUE, what);
    f += expect_bool(h, CKA_VERIFY, CK_TRUE, what);
    f += expect_bool(h, CKA_VERIFY_RECOVER, CK_FALSE, what);
    f += expect_bool(h, CKA_WRAP, CK_TRUE, what);
    f += expect_bool(h, CKA_TRUSTED, CK_FALSE, what);
    return f;
}

static int expect_private(CK_OBJECT_HANDLE h, CK_MECHANISM_TYPE gen,
                          const char *what)
{
    bool local = gen != CK_UNAVAILABLE_INFORMATION;
    int f = expect_storage(h, CK_TRUE, what) + expect_key(h, gen, what);

    f += expect_empty(h, CKA_SUBJECT, what);
    f += expect_bool(h, CKA_SENSITIVE, CK_TRUE, what);
    f += expect_bool(h, CKA_DECRYPT, CK_TRUE, what);
    f += expect_bool(h, CKA_SIGN, CK_TRUE, what);
    f += expect_bool(h, CKA_SIGN_RECOVER, CK_FALSE, what);
    f += expect_bool(h, CKA_UNWRAP, CK_TRUE, what);
    f += expect_bool(h, CKA_EXTRACTABLE, CK_TRUE, what);
    f += expect_bool(h, CKA_ALWAYS_SENSITIVE, local ? CK_TRUE : CK_FALSE, what);
    f += expect_bool(h, CKA_NEVER_EXTRACTABLE, CK_FALSE, what);
    f += expect_bool(h, CKA_WRAP_WITH_TRUSTED, CK_FALSE, what);
    f += expect_bool(h, CKA_ALWAYS_AUTHENTICATE, CK_FALSE, what);
    return f;
}

static int expect_secret(CK_OBJECT_HANDLE h, CK_MECHANISM_TYPE gen,
                         const char *what)
{
    bool local = gen != CK_UNAVAILABLE_INFORMATION;
    int f = expect_storage(h, CK_TRUE, what) + expect_key(h, gen, what);

    f += expect_bool(h, CKA_SENSITIVE, CK_TRUE, what);
    f += expect_bool(h, CKA_ENCRYPT, CK_TRUE, what);
    f += expect_bool(h, CKA_DECRYPT, CK_TRUE, what);
    f += expect_bool(h, CKA_SIGN, CK_TRUE, what);
    f += expect_bool(h, CKA_VERIFY, CK_TRUE, what);
    f += expect_bool(h, CKA_WRAP, CK_FALSE, what);
    f += expect_bool(h, CKA_UNWRAP, CK_FALSE, what);
    f += expect_bool(h, CKA_EXTRACTABLE, CK_TRUE, what);
    f += expect_bool(h, CKA_ALWAYS_SENSITIVE, local ? CK_TRUE : CK_FALSE, what);
    f += expect_bool(h, CKA_NEVER_EXTRACTABLE, CK_FALSE, what);
    f += expect_bool(h, CKA_WRAP_WITH_TRUSTED, CK_FALSE, what);
    f += expect_bool(h, CKA_TRUSTED, CK_FALSE, what);
    return f;
}

/*
 * Every default of every class, made each way the class can be made,
 * against the spec's tables (common object, storage, key, public, private,
 * secret key, certificate, X.509, data) and, where the spec leaves it to
 * the token, against the choices the README lists.
 */
static void test_class_defaults(void **state)
{
    static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                   0xce, 0x3d, 0x03, 0x01, 0x07};
    static const CK_BYTE e[] = {1, 0, 1};
    static CK_BYTE modulus[128] = {0xC3};
    static CK_BYTE ec_value[32] = {0x01, 0x02, 0x03};
    static const CK_BYTE subject[] = {0x30, 0x00};
    static const CK_BYTE cert_der[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    CK_OBJECT_CLASS c_data = CKO_DATA, c_cert = CKO_CERTIFICATE;
    CK_OBJECT_CLASS c_pub = CKO_PUBLIC_KEY, c_priv = CKO_PRIVATE_KEY;
    CK_CERTIFICATE_TYPE x509 = CKC_X_509;
    CK_KEY_TYPE k_rsa = CKK_RSA, k_ec = CKK_EC;
    CK_MECHANISM ecgen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_MECHANISM aesgen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_MECHANISM gengen = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    CK_ULONG len16 = 16;
    CK_OBJECT_HANDLE h, pub, priv;
    int f = 0;

    (void)state;
    modulus[127] = 0x01;
    {
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &c_data, sizeof(c_data)}};

        assert_rv(p11->C_CreateObject(S, t, N(t), &h), CKR_OK);
        f += expect_storage(h, CK_TRUE, "data");
        f += expect_empty(h, CKA_APPLICATION, "data");
        f += expect_empty(h, CKA_OBJECT_ID, "data");
        f += expect_empty(h, CKA_VALUE, "data");
    }
    {
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &c_cert, sizeof(c_cert)},
                            {CKA_CERTIFICATE_TYPE, &x509, sizeof(x509)},
                            {CKA_SUBJECT, (void *)subject, sizeof(subject)},
                            {CKA_VALUE, (void *)cert_der, sizeof(cert_der)}};

        assert_rv(p11->C_CreateObject(S, t, N(t), &h), CKR_OK);
        f += expect_storage(h, CK_FALSE, "certificate");
        f += expect_bool(h, CKA_TRUSTED, CK_FALSE, "certificate");
        f += expect_ulong(h, CKA_CERTIFICATE_CATEGORY, 0, "certificate");
        f += expect_empty(h, CKA_START_DATE, "certificate");
        f += expect_empty(h, CKA_END_DATE, "certificate");
        f += expect_empty(h, CKA_PUBLIC_KEY_INFO, "certificate");
        f += expect_empty(h, CKA_ID, "certificate");
        f += expect_empty(h, CKA_ISSUER, "certificate");
        f += expect_empty(h, CKA_SERIAL_NUMBER, "certificate");
        f += expect_empty(h, CKA_URL, "certificate");
        f += expect_empty(h, CKA_HASH_OF_SUBJECT_PUBLIC_KEY, "certificate");
        f += expect_empty(h, CKA_HASH_OF_ISSUER_PUBLIC_KEY, "certificate");
        f += expect_ulong(h, CKA_JAVA_MIDP_SECURITY_DOMAIN, 0, "certificate");
        f += expect_ulong(h, CKA_NAME_HASH_ALGORITHM, CKM_SHA_1, "certificate");
    }
    {
        CK_ATTRIBUTE pt[] = {{CKA_TOKEN, &no, sizeof(no)},
                             {CKA_EC_PARAMS, (void *)p256, sizeof(p256)}};
        CK_ATTRIBUTE vt[] = {{CKA_TOKEN, &no, sizeof(no)}};

        assert_rv(p11->C_GenerateKeyPair(S, &ecgen, pt, N(pt), vt, N(vt), &pub,
                                         &priv),
                  CKR_OK);
        f += expect_public(pub, CKM_EC_KEY_PAIR_GEN, "generated public");
        f += expect_private(priv, CKM_EC_KEY_PAIR_GEN, "generated private");
    }
    {
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &c_pub, sizeof(c_pub)},
                            {CKA_KEY_TYPE, &k_rsa, sizeof(k_rsa)},
                            {CKA_MODULUS, modulus, sizeof(modulus)},
                            {CKA_PUBLIC_EXPONENT, (void *)e, sizeof(e)}};

        assert_rv(p11->C_CreateObject(S, t, N(t), &h), CKR_OK);
        f += expect_public(h, CK_UNAVAILABLE_INFORMATION, "created public");
    }
    {
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &c_priv, sizeof(c_priv)},
                            {CKA_KEY_TYPE, &k_ec, sizeof(k_ec)},
                            {CKA_EC_PARAMS, (void *)p256, sizeof(p256)},
                            {CKA_VALUE, ec_value, sizeof(ec_value)}};

        assert_rv(p11->C_CreateObject(S, t, N(t), &h), CKR_OK);
        f += expect_private(h, CK_UNAVAILABLE_INFORMATION, "created private");
    }
    {
        CK_ATTRIBUTE t[] = {{CKA_TOKEN, &no, sizeof(no)},
                            {CKA_VALUE_LEN, &len16, sizeof(len16)}};

        assert_rv(p11->C_GenerateKey(S, &aesgen, t, N(t), &h), CKR_OK);
        f += expect_secret(h, CKM_AES_KEY_GEN, "generated AES");
        assert_rv(p11->C_GenerateKey(S, &gengen, t, N(t), &h), CKR_OK);
        f += expect_secret(h, CKM_GENERIC_SECRET_KEY_GEN, "generated generic");
    }
    {
        struct p11_tmpl t;

        t_aes(&t, kek_val, 16);
        h = create(&t);
        f += expect_secret(h, CK_UNAVAILABLE_INFORMATION, "created AES");
    }
    assert_int_equal(f, 0);
}

/* ------------------------------------------------------------ mechanisms */

/* AES key wrap (and the other key-wrap mechanisms) are no ciphers. */
static void test_kw_not_cipher(void **state)
{
    static const CK_MECHANISM_TYPE kws[] = {
        CKM_AES_KEY_WRAP,
        CKM_AES_KEY_WRAP_KWP,
        CKM_RSA_AES_KEY_WRAP,
        CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD,
        CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD,
        CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD,
    };
    CK_OBJECT_HANDLE k;
    struct p11_tmpl t;

    (void)state;
    t_aes(&t, kek_val, 32);
    t_bool(&t, CKA_ENCRYPT, true);
    t_bool(&t, CKA_DECRYPT, true);
    k = create(&t);
    for (size_t i = 0; i < N(kws); i++) {
        CK_MECHANISM m = {kws[i], NULL, 0};
        CK_MECHANISM_INFO info;

        print_message("0x%lx\n", (unsigned long)kws[i]);
        assert_rv(p11->C_GetMechanismInfo(0, kws[i], &info), CKR_OK);
        assert_int_equal(info.flags & (CKF_ENCRYPT | CKF_DECRYPT), 0);
        assert_int_equal(info.flags & (CKF_WRAP | CKF_UNWRAP),
                         CKF_WRAP | CKF_UNWRAP);
        if (kws[i] == CKM_RSA_AES_KEY_WRAP) {
            continue; /* an RSA mechanism: the AES key is the wrong type */
        }
        assert_rv(p11->C_EncryptInit(S, &m, k), CKR_MECHANISM_INVALID);
        assert_rv(p11->C_DecryptInit(S, &m, k), CKR_MECHANISM_INVALID);
        assert_rv(p11->C_MessageEncryptInit(S, &m, k), CKR_MECHANISM_INVALID);
        assert_rv(p11->C_MessageDecryptInit(S, &m, k), CKR_MECHANISM_INVALID);
    }
    /* Nothing was left active: an ordinary cipher still starts. */
    {
        CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};

        assert_rv(p11->C_EncryptInit(S, &ecb, k), CKR_OK);
    }
}

/* ------------------------------------------------------------ switch */

/*
 * key_separation = off: the pair may be made, the defaults are the old
 * ones, AES key wrap is a cipher again, and wrap-then-decrypt gives the
 * key back (what the switch opens). Back on, the key made then still has
 * its pair but no longer wraps until one side is cleared.
 */
static void test_switch_off_then_on(void **state)
{
    CK_MECHANISM kw = {CKM_AES_KEY_WRAP, NULL, 0};
    CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
    CK_MECHANISM_INFO info;
    CK_OBJECT_HANDLE w, target, k;
    CK_BYTE blob[BUF_MAX], out[BUF_MAX];
    CK_ULONG len, olen = 0;
    struct p11_tmpl t;

    (void)state;
    start("key_separation = off");
    assert_rv(p11->C_GetMechanismInfo(0, CKM_AES_KEY_WRAP, &info), CKR_OK);
    assert_int_equal(info.flags & (CKF_ENCRYPT | CKF_DECRYPT),
                     CKF_ENCRYPT | CKF_DECRYPT);
    t_aes(&t, kek_val, 16);
    k = create(&t);
    assert_int_equal(get_bool(k, CKA_WRAP), CK_TRUE);
    assert_int_equal(get_bool(k, CKA_UNWRAP), CK_TRUE);
    assert_int_equal(get_bool(k, CKA_DECRYPT), CK_TRUE);
    /* CKA_DERIVE is the spec's default, not part of the switch. */
    assert_int_equal(get_bool(k, CKA_DERIVE), CK_FALSE);

    t_aes(&t, kek_val, sizeof(kek_val));
    t.a[2].pValue = &yes; /* a token key: it outlives the restart */
    t_bool(&t, CKA_WRAP, true);
    t_bool(&t, CKA_DECRYPT, true);
    w = create(&t);
    target = make_target(false);
    assert_rv(wrap(&kw, w, target, blob, &len), CKR_OK);
    assert_rv(decrypt(&kw, w, blob, len, out, &olen), CKR_OK);
    assert_int_equal(olen, sizeof(target_val));
    assert_memory_equal(out, target_val, sizeof(target_val));
    assert_rv(wrap(&ecb, w, target, blob, &len), CKR_OK);
    assert_rv(decrypt(&ecb, w, blob, len, out, &olen), CKR_OK);
    assert_memory_equal(out, target_val, sizeof(target_val));

    /* The same store with the rule back on. */
    p11_restart_conf("key_separation = on\n");
    S = p11_open_rw();
    p11_login_cu(S, "alice", P11_ALICE_PW);
    {
        CK_ATTRIBUTE f = {CKA_WRAP, &yes, sizeof(yes)};

        assert_int_equal(p11_find_all(S, &f, 1, &w, 1), 1);
    }
    target = make_target(false);
    assert_int_equal(get_bool(w, CKA_DECRYPT), CK_TRUE);
    assert_rv(wrap(&kw, w, target, blob, &len), CKR_KEY_FUNCTION_NOT_PERMITTED);
    assert_rv(wrap(&ecb, w, target, blob, &len),
              CKR_KEY_FUNCTION_NOT_PERMITTED);
    assert_rv(p11->C_DecryptInit(S, &kw, w), CKR_MECHANISM_INVALID);
    /* It may be relabelled, not copied; clearing CKA_DECRYPT frees it. */
    {
        CK_ATTRIBUTE lab = {CKA_LABEL, "legacy", 6};

        assert_rv(p11->C_SetAttributeValue(S, w, &lab, 1), CKR_OK);
        assert_rv(p11->C_CopyObject(S, w, &lab, 1, &k),
                  CKR_TEMPLATE_INCONSISTENT);
    }
    assert_rv(set_bool(w, CKA_DECRYPT, false), CKR_OK);
    assert_rv(wrap(&kw, w, target, blob, &len), CKR_OK);
    assert_rv(decrypt(&ecb, w, blob, len, out, &olen),
              CKR_KEY_FUNCTION_NOT_PERMITTED);
}

/* The configuration switch this group's rules answer to is accepted. */
static void test_separation_config(void **state)
{
    (void)state;
    assert_rv(p11_fresh_rv("key_separation = off\n"), CKR_OK);
}

int p11_group_separation(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, p11_setup, p11_teardown)
#define TS(f) cmocka_unit_test_setup_teardown(f, setup_sep, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_separation_config),
        TS(test_wrap_then_decrypt),
        TS(test_wrap_then_decrypt_trusted),
        TS(test_entry_points),
        TS(test_usage_defaults),
        TS(test_class_defaults),
        TS(test_kw_not_cipher),
        T(test_switch_off_then_on),
    };
#undef TS
#undef T

    return cmocka_run_group_tests_name("key separation", tests, NULL, NULL);
}
