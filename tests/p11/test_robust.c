/*
 * test_robust.c - robustness (issue 11): parameter layouts decided by length, failed calls leave nothing stored, token secrets at the attribute limit, the AEAD buffer limit.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
/* The attribute value limit of the module (HSM_ATTR_VALUE_MAX). */
#define VALUE_MAX 65536u

static CK_SESSION_HANDLE S;
static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

/* An activated token and alice logged in, in session S. */
static void cu_session(void)
{
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    S = p11_open_rw();
    p11_login_cu(S, "alice", P11_ALICE_PW);
}

/* The configuration switch this group's rules answer to is accepted. */
static void test_robust_config(void **state)
{
    (void)state;
    assert_rv(p11_fresh_rv("aead_max_buffer = 4096\n"), CKR_OK);
}

/* ------------------------------------------------------------ PBKDF2 */

static const CK_BYTE rfc6070_iter2[20] = {
    0xea, 0x6c, 0x01, 0x4d, 0xc7, 0x2d, 0x6f, 0x8c, 0xcd, 0x1e,
    0xd9, 0x2a, 0xce, 0x1d, 0x41, 0xf0, 0xd8, 0xde, 0x89, 0x57};

/* C_GenerateKey(CKM_PKCS5_PBKD2) of a 20-byte generic secret. */
static CK_RV pbkdf2_gen(void *param, CK_ULONG len, CK_ULONG value_len,
                        CK_OBJECT_HANDLE *k)
{
    CK_MECHANISM m = {CKM_PKCS5_PBKD2, param, len};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_VALUE_LEN, &value_len, sizeof(value_len)},
        {CKA_SENSITIVE, &no, 1},
        {CKA_LABEL, "pbkdf2", 6},
    };

    *k = CK_INVALID_HANDLE;
    return p11->C_GenerateKey(S, &m, t, N(t), k);
}

/*
 * The layout is told by ulParameterLen alone. CK_PKCS5_PBKD2_PARAMS2 gives
 * RFC 6070's answer. The 2.40 CK_PKCS5_PBKD2_PARAMS works where its size
 * differs; where both are the same size (LP64, ILP32) its length pointer is
 * read as a length, too long: refused, and nothing is made.
 */
static void test_pbkd2_layout_by_length(void **state)
{
    static const CK_BYTE salt[] = "salt";
    static CK_UTF8CHAR pw[] = "password";
    CK_ULONG pwlen = 8;
    CK_PKCS5_PBKD2_PARAMS2 p2 = {CKZ_SALT_SPECIFIED,
                                 (void *)salt,
                                 4,
                                 2,
                                 CKP_PKCS5_PBKD2_HMAC_SHA1,
                                 NULL,
                                 0,
                                 pw,
                                 8};
    CK_PKCS5_PBKD2_PARAMS p1 = {CKZ_SALT_SPECIFIED,
                                (void *)salt,
                                4,
                                2,
                                CKP_PKCS5_PBKD2_HMAC_SHA1,
                                NULL,
                                0,
                                pw,
                                &pwlen};
    CK_BYTE out[64];
    CK_OBJECT_HANDLE k;

    (void)state;
    cu_session();
    assert_rv(pbkdf2_gen(&p2, sizeof(p2), 20, &k), CKR_OK);
    assert_int_equal(p11_get_bytes(S, k, CKA_VALUE, out, sizeof(out)), 20);
    assert_memory_equal(out, rfc6070_iter2, 20);
    assert_rv(p11->C_DestroyObject(S, k), CKR_OK);

    if (sizeof(p1) != sizeof(p2)) {
        assert_rv(pbkdf2_gen(&p1, sizeof(p1), 20, &k), CKR_OK);
        assert_int_equal(p11_get_bytes(S, k, CKA_VALUE, out, sizeof(out)), 20);
        assert_memory_equal(out, rfc6070_iter2, 20);
    } else {
        assert_rv(pbkdf2_gen(&p1, sizeof(p1), 20, &k),
                  CKR_MECHANISM_PARAM_INVALID);
        assert_int_equal(k, CK_INVALID_HANDLE);
        assert_int_equal(p11_count_label(S, "pbkdf2"), 0);
    }
}

/*
 * A password longer than 64 KiB is refused with a precise code (it used to
 * be taken for a pointer to the length and killed the process), as is every
 * other field out of its bounds and every wrong ulParameterLen; 64 KiB
 * itself works. Nothing is made by a refused call.
 */
static void test_pbkd2_bounds(void **state)
{
    static const CK_BYTE salt[] = "salt";
    CK_UTF8CHAR *big = calloc(1, 2 * VALUE_MAX + 16);
    CK_PKCS5_PBKD2_PARAMS2 ok = {CKZ_SALT_SPECIFIED,
                                 (void *)salt,
                                 4,
                                 1,
                                 CKP_PKCS5_PBKD2_HMAC_SHA256,
                                 NULL,
                                 0,
                                 big,
                                 VALUE_MAX};
    CK_PKCS5_PBKD2_PARAMS2 p;
    CK_BYTE prf_data[4] = {0};
    CK_BYTE room[2 * sizeof(p)];
    CK_OBJECT_HANDLE k;
    int fails = 0;

    (void)state;
    assert_non_null(big);
    memset(big, 'p', 2 * VALUE_MAX + 16);
    cu_session();

    /* The largest password, 64 KiB, works. */
    assert_rv(pbkdf2_gen(&ok, sizeof(ok), 32, &k), CKR_OK);
    assert_rv(p11->C_DestroyObject(S, k), CKR_OK);

    /* Over 64 KiB: the process lives and the call is refused. */
    p = ok;
    p.ulPasswordLen = VALUE_MAX + 1;
    expect_rv(fails, pbkdf2_gen(&p, sizeof(p), 32, &k),
              CKR_MECHANISM_PARAM_INVALID);
    p.ulPasswordLen = 2 * VALUE_MAX;
    expect_rv(fails, pbkdf2_gen(&p, sizeof(p), 32, &k),
              CKR_MECHANISM_PARAM_INVALID);
    p.ulPasswordLen = 0;
    expect_rv(fails, pbkdf2_gen(&p, sizeof(p), 32, &k),
              CKR_MECHANISM_PARAM_INVALID);
    p = ok;
    p.pPassword = NULL;
    expect_rv(fails, pbkdf2_gen(&p, sizeof(p), 32, &k),
              CKR_MECHANISM_PARAM_INVALID);
    /* Salt, iterations, PRF data. */
    p = ok;
    p.pSaltSourceData = big;
    p.ulSaltSourceDataLen = VALUE_MAX + 1;
    expect_rv(fails, pbkdf2_gen(&p, sizeof(p), 32, &k),
              CKR_MECHANISM_PARAM_INVALID);
    p = ok;
    p.iterations = 0;
    expect_rv(fails, pbkdf2_gen(&p, sizeof(p), 32, &k),
              CKR_MECHANISM_PARAM_INVALID);
    p.iterations = 10000001;
    expect_rv(fails, pbkdf2_gen(&p, sizeof(p), 32, &k),
              CKR_MECHANISM_PARAM_INVALID);
    p = ok;
    p.pPrfData = prf_data;
    p.ulPrfDataLen = sizeof(prf_data);
    expect_rv(fails, pbkdf2_gen(&p, sizeof(p), 32, &k),
              CKR_MECHANISM_PARAM_INVALID);
    /* The work is bounded as a whole: the most iterations allowed, for
     * more than one output block of SHA-256. */
    p = ok;
    p.ulPasswordLen = 8;
    p.iterations = 10000000;
    expect_rv(fails, pbkdf2_gen(&p, sizeof(p), 64, &k), CKR_KEY_SIZE_RANGE);

    /* Wrong lengths: no layout is guessed. */
    memset(room, 0, sizeof(room));
    memcpy(room, &ok, sizeof(ok));
    expect_rv(fails, pbkdf2_gen(room, sizeof(ok) - 1, 32, &k),
              CKR_MECHANISM_PARAM_INVALID);
    expect_rv(fails, pbkdf2_gen(room, sizeof(ok) - sizeof(CK_ULONG), 32, &k),
              CKR_MECHANISM_PARAM_INVALID);
    expect_rv(fails, pbkdf2_gen(room, sizeof(ok) + sizeof(CK_ULONG), 32, &k),
              CKR_MECHANISM_PARAM_INVALID);
    expect_rv(fails, pbkdf2_gen(room, 0, 32, &k), CKR_MECHANISM_PARAM_INVALID);
    expect_rv(fails, pbkdf2_gen(NULL, sizeof(ok), 32, &k),
              CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(fails, 0);
    assert_int_equal(p11_count_label(S, "pbkdf2"), 0);
    free(big);
}

/* ------------------------------------------------------------ sizes */

/* A template for a secret of len bytes ('a' + len % 26) or a data object. */
static CK_RV make_value(bool data, CK_BBOOL token, CK_BYTE *v, CK_ULONG len,
                        const char *label, CK_OBJECT_HANDLE *h)
{
    CK_OBJECT_CLASS cls = data ? CKO_DATA : CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &token, 1},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VALUE, v, len},
        {CKA_PRIVATE, &yes, 1},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_SENSITIVE, &no, 1},
    };

    *h = CK_INVALID_HANDLE;
    return p11->C_CreateObject(S, t, data ? 5 : N(t), h);
}

/* The object labelled label's CKA_VALUE is len bytes of v. */
static void assert_value(const char *label, const CK_BYTE *v, CK_ULONG len)
{
    CK_ATTRIBUTE t[] = {{CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE h;
    CK_BYTE *got = malloc(len + 1);

    assert_non_null(got);
    assert_int_equal(p11_find_all(S, t, 1, &h, 1), 1);
    assert_int_equal(p11_get_bytes(S, h, CKA_VALUE, got, len + 1), len);
    assert_memory_equal(got, v, len);
    free(got);
}

/*
 * Every value the attribute limit accepts is accepted for token objects
 * too (the sealed form is 28 bytes longer and fits where it is stored),
 * and survives C_Finalize/C_Initialize unchanged; one byte more is refused
 * with CKR_ATTRIBUTE_VALUE_INVALID for token and session objects alike,
 * storing nothing. Generic secrets and data objects (private: sealed).
 */
static void test_secret_at_value_limit(void **state)
{
    static const CK_ULONG sizes[] = {65508, 65509, 65536, 65537};
    CK_BYTE *v = malloc(VALUE_MAX + 1);
    char label[64];
    CK_OBJECT_HANDLE h;
    int fails = 0;

    (void)state;
    assert_non_null(v);
    cu_session();
    for (int data = 0; data < 2; data++) {
        for (int token = 0; token < 2; token++) {
            for (size_t i = 0; i < N(sizes); i++) {
                CK_RV want = sizes[i] <= VALUE_MAX
                                 ? CKR_OK
                                 : CKR_ATTRIBUTE_VALUE_INVALID;

                memset(v, 'a' + (int)(i + 4 * token + 8 * data) % 26,
                       VALUE_MAX + 1);
                snprintf(label, sizeof(label), "%s-%s-%lu",
                         data ? "data" : "secret", token ? "tok" : "ses",
                         (unsigned long)sizes[i]);
                expect_rv(fails,
                          make_value(data, token ? CK_TRUE : CK_FALSE, v,
                                     sizes[i], label, &h),
                          want);
                if (want == CKR_OK) {
                    assert_value(label, v, sizes[i]);
                } else {
                    assert_int_equal(h, CK_INVALID_HANDLE);
                    assert_int_equal(p11_count_label(S, label), 0);
                }
            }
        }
    }
    assert_int_equal(fails, 0);

    /* The token ones come back the same after a restart. */
    p11_restart();
    S = p11_open_rw();
    p11_login_cu(S, "alice", P11_ALICE_PW);
    for (int data = 0; data < 2; data++) {
        for (size_t i = 0; i < N(sizes); i++) {
            memset(v, 'a' + (int)(i + 4 + 8 * data) % 26, VALUE_MAX + 1);
            snprintf(label, sizeof(label), "%s-tok-%lu",
                     data ? "data" : "secret", (unsigned long)sizes[i]);
            if (sizes[i] <= VALUE_MAX) {
                assert_value(label, v, sizes[i]);
            } else {
                assert_int_equal(p11_count_label(S, label), 0);
            }
            snprintf(label, sizeof(label), "%s-ses-%lu",
                     data ? "data" : "secret", (unsigned long)sizes[i]);
            assert_int_equal(p11_count_label(S, label), 0);
        }
    }
    free(v);
}

/* The other ways to a token secret at the limit: C_GenerateKey of 64 KiB
 * and C_SetAttributeValue of a private data object's value to 64 KiB. */
static void test_secret_at_limit_generate_set(void **state)
{
    CK_MECHANISM gen = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    CK_ULONG len = VALUE_MAX;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, 1},
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {CKA_SENSITIVE, &no, 1},
        {CKA_LABEL, "gen", 3},
    };
    CK_BYTE *v = malloc(VALUE_MAX + 1), *got = malloc(VALUE_MAX + 1);
    CK_ATTRIBUTE set[] = {{CKA_VALUE, v, VALUE_MAX}};
    CK_OBJECT_HANDLE k, d;

    (void)state;
    assert_non_null(v);
    assert_non_null(got);
    cu_session();
    assert_rv(p11->C_GenerateKey(S, &gen, t, N(t), &k), CKR_OK);
    assert_int_equal(p11_get_bytes(S, k, CKA_VALUE, got, VALUE_MAX + 1),
                     VALUE_MAX);

    memset(v, 'z', VALUE_MAX + 1);
    assert_rv(make_value(true, CK_TRUE, v, 4, "set", &d), CKR_OK);
    assert_rv(p11->C_SetAttributeValue(S, d, set, 1), CKR_OK);
    set[0].ulValueLen = VALUE_MAX + 1;
    assert_rv(p11->C_SetAttributeValue(S, d, set, 1),
              CKR_ATTRIBUTE_VALUE_INVALID);
    p11_restart();
    S = p11_open_rw();
    p11_login_cu(S, "alice", P11_ALICE_PW);
    assert_value("set", v, VALUE_MAX);
    assert_int_equal(p11_count_label(S, "gen"), 1);
    free(v);
    free(got);
}

/* ------------------------------------------------------------ AEAD */

enum aead { A_GCM, A_CCM, A_CHACHA };

static CK_BYTE aead_iv[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

/* The mechanism of kind with its parameter in the caller's storage (CCM
 * needs the plaintext length). */
static void aead_mech(enum aead kind, CK_ULONG ptlen, CK_MECHANISM *m,
                      CK_GCM_PARAMS *g, CK_CCM_PARAMS *c,
                      CK_SALSA20_CHACHA20_POLY1305_PARAMS *x)
{
    memset(m, 0, sizeof(*m));
    if (kind == A_GCM) {
        *g = (CK_GCM_PARAMS){aead_iv, 12, 96, NULL, 0, 128};
        *m = (CK_MECHANISM){CKM_AES_GCM, g, sizeof(*g)};
    } else if (kind == A_CCM) {
        *c = (CK_CCM_PARAMS){ptlen, aead_iv, 12, NULL, 0, 16};
        *m = (CK_MECHANISM){CKM_AES_CCM, c, sizeof(*c)};
    } else {
        *x = (CK_SALSA20_CHACHA20_POLY1305_PARAMS){aead_iv, 12, NULL, 0};
        *m = (CK_MECHANISM){CKM_CHACHA20_POLY1305, x, sizeof(*x)};
    }
}

static CK_OBJECT_HANDLE aead_key(enum aead kind)
{
    CK_MECHANISM gen = {
        kind == A_CHACHA ? CKM_CHACHA20_KEY_GEN : CKM_AES_KEY_GEN, NULL, 0};
    CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = {
        {CKA_ENCRYPT, &yes, 1},
        {CKA_DECRYPT, &yes, 1},
        {CKA_VALUE_LEN, &len, sizeof(len)},
    };
    CK_OBJECT_HANDLE k;

    assert_rv(p11->C_GenerateKey(S, &gen, t, kind == A_CHACHA ? 2 : 3, &k),
              CKR_OK);
    return k;
}

/* ct (ptlen + 16 bytes) of ptlen bytes of 'm' under k. */
static CK_BYTE *aead_seal(enum aead kind, CK_OBJECT_HANDLE k, CK_ULONG ptlen)
{
    CK_MECHANISM m;
    CK_GCM_PARAMS g;
    CK_CCM_PARAMS c;
    CK_SALSA20_CHACHA20_POLY1305_PARAMS x;
    CK_BYTE *pt = malloc(ptlen + 1), *ct = malloc(ptlen + 16);
    CK_ULONG ctlen = ptlen + 16;

    assert_non_null(pt);
    assert_non_null(ct);
    memset(pt, 'm', ptlen + 1);
    aead_mech(kind, ptlen, &m, &g, &c, &x);
    assert_rv(p11->C_EncryptInit(S, &m, k), CKR_OK);
    assert_rv(p11->C_Encrypt(S, pt, ptlen, ct, &ctlen), CKR_OK);
    assert_int_equal(ctlen, ptlen + 16);
    free(pt);
    return ct;
}

/* Multi-part decryption of ctlen bytes of ct, in parts of at most part
 * bytes: what the first failing call returned (CKR_OK when all worked and
 * the plaintext came back). */
static CK_RV aead_open_parts(enum aead kind, CK_OBJECT_HANDLE k,
                             const CK_BYTE *ct, CK_ULONG ctlen, CK_ULONG part)
{
    CK_MECHANISM m;
    CK_GCM_PARAMS g;
    CK_CCM_PARAMS c;
    CK_SALSA20_CHACHA20_POLY1305_PARAMS x;
    CK_BYTE *pt = malloc(ctlen + 16);
    CK_ULONG done = 0, got = 0, l;
    CK_RV rv = CKR_OK;

    assert_non_null(pt);
    aead_mech(kind, ctlen - 16, &m, &g, &c, &x);
    assert_rv(p11->C_DecryptInit(S, &m, k), CKR_OK);
    while (done < ctlen && rv == CKR_OK) {
        CK_ULONG n = ctlen - done < part ? ctlen - done : part;

        l = ctlen + 16 - got;
        rv = p11->C_DecryptUpdate(S, (CK_BYTE_PTR)ct + done, n, pt + got, &l);
        if (rv == CKR_OK) {
            done += n;
            got += l;
        }
    }
    if (rv == CKR_OK) {
        l = ctlen + 16 - got;
        rv = p11->C_DecryptFinal(S, pt + got, &l);
        got += l;
    }
    if (rv == CKR_OK) {
        CK_BYTE *want = malloc(ctlen);

        assert_non_null(want);
        memset(want, 'm', ctlen);
        assert_int_equal(got, ctlen - 16);
        assert_memory_equal(pt, want, got);
        free(want);
    }
    free(pt);
    return rv;
}

/*
 * aead_max_buffer bounds what an AEAD decryption keeps before its tag is
 * checked, per operation: with a limit of 4096, multi-part decryption of
 * 4096 bytes of ciphertext works and of 4097 is refused at the update that
 * goes beyond (CKR_ENCRYPTED_DATA_LEN_RANGE, the code C_DecryptUpdate has
 * for it), which ends the operation. GCM, CCM and ChaCha20-Poly1305, and
 * one-shot C_Decrypt alike (it keeps the plaintext while the caller's
 * buffer is too small).
 */
static void test_aead_buffer_limit(void **state)
{
    (void)state;
    p11_fresh("aead_max_buffer = 4096");
    cu_session();
    for (int kind = A_GCM; kind <= A_CHACHA; kind++) {
        CK_OBJECT_HANDLE k = aead_key((enum aead)kind);
        CK_BYTE *ok = aead_seal((enum aead)kind, k, 4096 - 16);
        CK_BYTE *big = aead_seal((enum aead)kind, k, 4097 - 16);
        CK_MECHANISM m;
        CK_GCM_PARAMS g;
        CK_CCM_PARAMS c;
        CK_SALSA20_CHACHA20_POLY1305_PARAMS x;
        CK_BYTE out[8192];
        CK_ULONG l = sizeof(out);

        assert_rv(aead_open_parts((enum aead)kind, k, ok, 4096, 1000), CKR_OK);
        assert_rv(aead_open_parts((enum aead)kind, k, ok, 4096, 4096), CKR_OK);
        assert_rv(aead_open_parts((enum aead)kind, k, big, 4097, 1000),
                  CKR_ENCRYPTED_DATA_LEN_RANGE);
        /* The operation ended with the refusal. */
        l = sizeof(out);
        assert_rv(p11->C_DecryptFinal(S, out, &l),
                  CKR_OPERATION_NOT_INITIALIZED);
        assert_rv(aead_open_parts((enum aead)kind, k, big, 4097, 4097),
                  CKR_ENCRYPTED_DATA_LEN_RANGE);
        l = sizeof(out);
        assert_rv(p11->C_DecryptUpdate(S, big, 1, out, &l),
                  CKR_OPERATION_NOT_INITIALIZED);

        aead_mech((enum aead)kind, 4096 - 16, &m, &g, &c, &x);
        assert_rv(p11->C_DecryptInit(S, &m, k), CKR_OK);
        l = sizeof(out);
        assert_rv(p11->C_Decrypt(S, ok, 4096, out, &l), CKR_OK);
        assert_int_equal(l, 4096 - 16);
        aead_mech((enum aead)kind, 4097 - 16, &m, &g, &c, &x);
        assert_rv(p11->C_DecryptInit(S, &m, k), CKR_OK);
        l = sizeof(out);
        assert_rv(p11->C_Decrypt(S, big, 4097, out, &l),
                  CKR_ENCRYPTED_DATA_LEN_RANGE);
        free(ok);
        free(big);
    }
}

/* The default limit is 1 MiB: a 1 MiB ciphertext decrypts in parts, one
 * byte more does not. */
static void test_aead_buffer_default(void **state)
{
    CK_OBJECT_HANDLE k;
    CK_BYTE *ok, *big;

    (void)state;
    cu_session();
    k = aead_key(A_GCM);
    ok = aead_seal(A_GCM, k, 1024 * 1024 - 16);
    big = aead_seal(A_GCM, k, 1024 * 1024 + 1 - 16);
    assert_rv(aead_open_parts(A_GCM, k, ok, 1024 * 1024, 65536), CKR_OK);
    assert_rv(aead_open_parts(A_GCM, k, big, 1024 * 1024 + 1, 65536),
              CKR_ENCRYPTED_DATA_LEN_RANGE);
    free(ok);
    free(big);
}

/* A message decrypted in parts (C_DecryptMessageNext) is held until its
 * tag too, and bounded the same way. */
static void test_aead_buffer_message(void **state)
{
    CK_OBJECT_HANDLE k;
    CK_MECHANISM m = {CKM_AES_GCM, NULL, 0};
    CK_BYTE tag[16] = {0};
    CK_GCM_MESSAGE_PARAMS p = {aead_iv, 12, 0, CKG_NO_GENERATE, tag, 128};
    CK_BYTE *ct = calloc(1, 8192), *pt = malloc(8192);
    CK_ULONG l;

    (void)state;
    assert_non_null(ct);
    assert_non_null(pt);
    p11_fresh("aead_max_buffer = 4096");
    cu_session();
    k = aead_key(A_GCM);
    assert_rv(p11->C_MessageDecryptInit(S, &m, k), CKR_OK);
    assert_rv(p11->C_DecryptMessageBegin(S, &p, sizeof(p), NULL, 0), CKR_OK);
    l = 8192;
    assert_rv(p11->C_DecryptMessageNext(S, &p, sizeof(p), ct, 4096, pt, &l, 0),
              CKR_OK);
    l = 8192;
    assert_rv(p11->C_DecryptMessageNext(S, &p, sizeof(p), ct, 1, pt, &l,
                                        CKF_END_OF_MESSAGE),
              CKR_ENCRYPTED_DATA_LEN_RANGE);
    assert_rv(p11->C_MessageDecryptFinal(S), CKR_OK);
    free(ct);
    free(pt);
}

int p11_group_robust(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, p11_setup, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_robust_config),
        T(test_pbkd2_layout_by_length),
        T(test_pbkd2_bounds),
        T(test_secret_at_value_limit),
        T(test_secret_at_limit_generate_set),
        T(test_aead_buffer_limit),
        T(test_aead_buffer_default),
        T(test_aead_buffer_message),
    };
#undef T

    return cmocka_run_group_tests_name("robustness", tests, NULL, NULL);
}
