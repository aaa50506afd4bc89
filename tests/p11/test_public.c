/*
 * test_public.c - public sessions: a session that is not logged in finds
 * and reads public token objects (certificates, public keys, data objects
 * with CKA_PRIVATE false) of every CU and draws random numbers, nothing
 * else; public_objects = hidden shows nothing and refuses random.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p11util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

static const CK_BYTE p256_params[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                      0xce, 0x3d, 0x03, 0x01, 0x07};
/* Not parsed by the token: any bytes make a certificate object. */
static const CK_BYTE cert_value[] = "public-cert-bytes";

/* What alice (and bob) leave on the token before logging out. */
struct objs {
    CK_OBJECT_HANDLE pub, priv, cert, data, privdata, privpub, pubsecret;
    CK_BYTE point[80];
    CK_ULONG point_len;
};

static CK_OBJECT_HANDLE make(CK_SESSION_HANDLE s, CK_ATTRIBUTE *t, CK_ULONG n)
{
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

    assert_rv(p11->C_CreateObject(s, t, n, &h), CKR_OK);
    return h;
}

static CK_OBJECT_HANDLE make_cert(CK_SESSION_HANDLE s, const char *label)
{
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE ct = CKC_X_509;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_CERTIFICATE_TYPE, &ct, sizeof(ct)},
        {CKA_SUBJECT, "subj", 4},
        {CKA_VALUE, (void *)cert_value, sizeof(cert_value)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, "\x01", 1},
        {CKA_TOKEN, &yes, sizeof(yes)},
    };

    return make(s, t, N(t));
}

/* alice's objects, made in s (logged in as alice); returns logged in. */
static void make_objects(CK_SESSION_HANDLE s, struct objs *o)
{
    CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_OBJECT_CLASS sec = CKO_SECRET_KEY, pubc = CKO_PUBLIC_KEY;
    CK_KEY_TYPE aes = CKK_AES, ec = CKK_EC;
    CK_BYTE v16[16] = {7};
    CK_ATTRIBUTE pubt[] = {
        {CKA_EC_PARAMS, (void *)p256_params, sizeof(p256_params)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_LABEL, "pub", 3},
        {CKA_ID, "\x01", 1},
        {CKA_VERIFY, &yes, sizeof(yes)},
    };
    CK_ATTRIBUTE privt[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_LABEL, "priv", 4},
        {CKA_ID, "\x01", 1},
        {CKA_SIGN, &yes, sizeof(yes)},
    };
    CK_ATTRIBUTE sect[] = {
        {CKA_CLASS, &sec, sizeof(sec)}, {CKA_KEY_TYPE, &aes, sizeof(aes)},
        {CKA_VALUE, v16, sizeof(v16)},  {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &no, sizeof(no)}, {CKA_LABEL, "pubsecret", 9},
    };

    assert_rv(p11->C_GenerateKeyPair(s, &m, pubt, N(pubt), privt, N(privt),
                                     &o->pub, &o->priv),
              CKR_OK);
    o->point_len =
        p11_get_bytes(s, o->pub, CKA_EC_POINT, o->point, sizeof(o->point));
    o->cert = make_cert(s, "cert");
    o->data = p11_make_data_priv(s, "data", CK_TRUE, CK_FALSE);
    o->privdata = p11_make_data_priv(s, "privdata", CK_TRUE, CK_TRUE);
    {
        CK_BYTE point[80];
        CK_ULONG n = o->point_len;
        CK_ATTRIBUTE t[] = {
            {CKA_CLASS, &pubc, sizeof(pubc)},
            {CKA_KEY_TYPE, &ec, sizeof(ec)},
            {CKA_EC_PARAMS, (void *)p256_params, sizeof(p256_params)},
            {CKA_EC_POINT, point, n},
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_PRIVATE, &yes, sizeof(yes)},
            {CKA_LABEL, "privpub", 7},
        };

        memcpy(point, o->point, n);
        o->privpub = make(s, t, N(t));
    }
    o->pubsecret = make(s, sect, N(sect));
    /* a public session object: lives on after logout, but is no token
     * object, so a public session does not see it */
    p11_make_data_priv(s, "sessdata", CK_FALSE, CK_FALSE);
}

/* A token with alice's objects and bob's certificate; every session
 * logged out. Returns a RW session of this application. */
static CK_SESSION_HANDLE setup_token(const char *conf, struct objs *o)
{
    CK_SESSION_HANDLE s;

    p11_fresh(conf);
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    p11_create_cu("bob", P11_BOB_PW);
    s = p11_open_rw();
    p11_login_cu(s, "bob", P11_BOB_PW);
    make_cert(s, "bobcert");
    assert_rv(p11->C_Logout(s), CKR_OK);
    p11_login_cu(s, "alice", P11_ALICE_PW);
    make_objects(s, o);
    assert_rv(p11->C_Logout(s), CKR_OK);
    return s;
}

static CK_ULONG count_class(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls)
{
    CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof(cls)};

    return p11_find_all(s, &t, 1, NULL, 0);
}

static CK_OBJECT_HANDLE find_label(CK_SESSION_HANDLE s, const char *label)
{
    CK_ATTRIBUTE t = {CKA_LABEL, (void *)label, strlen(label)};
    CK_OBJECT_HANDLE h[2];

    assert_int_equal(p11_find_all(s, &t, 1, h, 2), 1);
    return h[0];
}

/* ------------------------------------------------------------ reading */

static void test_public_reads(void **state)
{
    struct objs o;
    CK_SESSION_HANDLE s, ro;
    CK_OBJECT_HANDLE got[16], pub, cert, data;
    CK_BYTE buf[128];
    CK_ULONG n, size;
    const char *hidden_labels[] = {"priv", "privdata", "privpub", "pubsecret",
                                   "sessdata"};

    (void)state;
    s = setup_token(NULL, &o);
    ro = p11_open_ro();
    assert_int_equal(p11_session_state(ro), CKS_RO_PUBLIC_SESSION);

    /* exactly the public token objects of every CU */
    assert_int_equal(p11_find_all(ro, NULL, 0, got, 16), 4);
    assert_int_equal(p11_find_all(s, NULL, 0, NULL, 0), 4);
    assert_int_equal(count_class(ro, CKO_CERTIFICATE), 2);
    assert_int_equal(count_class(ro, CKO_PUBLIC_KEY), 1);
    assert_int_equal(count_class(ro, CKO_DATA), 1);
    assert_int_equal(count_class(ro, CKO_PRIVATE_KEY), 0);
    assert_int_equal(count_class(ro, CKO_SECRET_KEY), 0);
    for (size_t i = 0; i < N(hidden_labels); i++)
        assert_int_equal(p11_count_label(ro, hidden_labels[i]), 0);
    {
        CK_ATTRIBUTE t = {CKA_PRIVATE, &yes, sizeof(yes)};

        assert_int_equal(p11_find_all(ro, &t, 1, NULL, 0), 0);
    }
    {
        /* CKA_ID 01: the public key and alice's certificate, as a
         * pkcs11: URI lookup asks (not the private key of that id) */
        CK_ATTRIBUTE t = {CKA_ID, "\x01", 1};

        assert_int_equal(p11_find_all(ro, &t, 1, NULL, 0), 3);
    }
    {
        /* a template the store does not index: the loading path */
        CK_ATTRIBUTE t = {CKA_EC_POINT, o.point, o.point_len};

        assert_int_equal(p11_find_all(ro, &t, 1, got, 16), 1);
        assert_int_equal(p11_get_ulong(ro, got[0], CKA_CLASS), CKO_PUBLIC_KEY);
    }
    {
        CK_ATTRIBUTE t = {CKA_VALUE, "v", 1};

        assert_int_equal(p11_find_all(ro, &t, 1, got, 16), 1);
        assert_int_equal(p11_get_ulong(ro, got[0], CKA_CLASS), CKO_DATA);
    }

    /* every attribute a CU reads of them */
    pub = find_label(ro, "pub");
    cert = find_label(ro, "cert");
    data = find_label(ro, "data");
    n = p11_get_bytes(ro, pub, CKA_EC_POINT, buf, sizeof(buf));
    assert_int_equal(n, o.point_len);
    assert_memory_equal(buf, o.point, n);
    assert_int_equal(p11_get_bytes(ro, pub, CKA_EC_PARAMS, buf, sizeof(buf)),
                     sizeof(p256_params));
    assert_int_equal(p11_get_bool(ro, pub, CKA_PRIVATE), CK_FALSE);
    assert_int_equal(p11_get_bool(ro, pub, CKA_VERIFY), CK_TRUE);
    n = p11_get_bytes(ro, cert, CKA_VALUE, buf, sizeof(buf));
    assert_int_equal(n, sizeof(cert_value));
    assert_memory_equal(buf, cert_value, n);
    assert_int_equal(p11_get_bytes(ro, data, CKA_VALUE, buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 'v');
    assert_int_equal(p11_get_ulong(ro, cert, CKA_NIMBUS_OWNER),
                     p11_get_ulong(ro, pub, CKA_NIMBUS_OWNER));
    assert_rv(p11->C_GetObjectSize(ro, pub, &size), CKR_OK);
    assert_rv(p11->C_GetObjectSize(ro, data, &size), CKR_OK);
    /* the same handles in every session of the application */
    assert_int_equal(find_label(s, "pub"), pub);

    /* logging in keeps them and adds the private ones */
    p11_login_cu(s, "alice", P11_ALICE_PW);
    assert_int_equal(p11_count_all(ro), 9);
    assert_int_equal(p11_get_ulong(ro, pub, CKA_CLASS), CKO_PUBLIC_KEY);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_int_equal(p11_count_all(ro), 4);
    assert_rv(p11->C_CloseSession(ro), CKR_OK);
}

/* Random in a public session. */
static void test_public_random(void **state)
{
    CK_SESSION_HANDLE s;
    CK_BYTE a[32], b[32], zero[32] = {0};

    (void)state;
    p11_activate(P11_SO_PW);
    s = p11_open_ro();
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    assert_rv(p11->C_GenerateRandom(s, a, sizeof(a)), CKR_OK);
    assert_rv(p11->C_GenerateRandom(s, b, sizeof(b)), CKR_OK);
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_memory_not_equal(a, b, sizeof(a));
    assert_rv(p11->C_GenerateRandom(s, NULL, 4), CKR_ARGUMENTS_BAD);
}

/* ------------------------------------------------------------ refusals */

/*
 * Everything else stays refused: the permission table's
 * CKR_USER_NOT_LOGGED_IN where the call has that code, and
 * CKR_ACTION_PROHIBITED for C_DestroyObject, which has not; nothing
 * changes on the token.
 */
static void test_public_refusals(void **state)
{
    struct objs o;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE pub, cert, data, h = CK_INVALID_HANDLE, h2;
    CK_OBJECT_CLASS dcls = CKO_DATA;
    CK_KEY_TYPE aes = CKK_AES;
    CK_OBJECT_CLASS sec = CKO_SECRET_KEY;
    CK_ULONG len16 = 16;
    CK_ATTRIBUTE newobj[] = {
        {CKA_CLASS, &dcls, sizeof(dcls)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_LABEL, "new", 3},
    };
    CK_ATTRIBUTE newtok[] = {
        {CKA_CLASS, &dcls, sizeof(dcls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_LABEL, "new", 3},
    };
    CK_ATTRIBUTE lab = {CKA_LABEL, "renamed", 7};
    CK_ATTRIBUTE keyt[] = {
        {CKA_CLASS, &sec, sizeof(sec)},
        {CKA_KEY_TYPE, &aes, sizeof(aes)},
        {CKA_VALUE_LEN, &len16, sizeof(len16)},
    };
    CK_ATTRIBUTE ecp = {CKA_EC_PARAMS, (void *)p256_params,
                        sizeof(p256_params)};
    CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
    CK_MECHANISM aesgen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_MECHANISM ecgen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ECDH1_DERIVE_PARAMS dp = {CKD_NULL, 0, NULL, 0, NULL};
    CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &dp, sizeof(dp)};
    CK_MECHANISM kw = {CKM_AES_KEY_WRAP, NULL, 0};
    CK_BYTE wrapped[64] = {1}, buf[64];
    CK_ULONG n = sizeof(buf);
    int fails = 0;

    (void)state;
    s = setup_token(NULL, &o);
    pub = find_label(s, "pub");
    cert = find_label(s, "cert");
    data = find_label(s, "data");
    dp.pPublicData = o.point;
    dp.ulPublicDataLen = o.point_len;

    expect_rv(fails, p11->C_CreateObject(s, newobj, N(newobj), &h),
              CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails, p11->C_CreateObject(s, newtok, N(newtok), &h),
              CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails, p11->C_CopyObject(s, pub, NULL, 0, &h),
              CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails, p11->C_CopyObject(s, data, &lab, 1, &h),
              CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails, p11->C_SetAttributeValue(s, cert, &lab, 1),
              CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails, p11->C_SetAttributeValue(s, data, &lab, 1),
              CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails, p11->C_DestroyObject(s, pub), CKR_ACTION_PROHIBITED);
    expect_rv(fails, p11->C_DestroyObject(s, cert), CKR_ACTION_PROHIBITED);
    expect_rv(fails, p11->C_DestroyObject(s, data), CKR_ACTION_PROHIBITED);
    expect_rv(fails, p11->C_VerifyInit(s, &ecdsa, pub), CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails, p11->C_EncryptInit(s, &ecdsa, pub),
              CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails, p11->C_DigestInit(s, &sha), CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails, p11->C_GenerateKey(s, &aesgen, keyt, N(keyt), &h),
              CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails,
              p11->C_GenerateKeyPair(s, &ecgen, &ecp, 1, NULL, 0, &h, &h2),
              CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails, p11->C_DeriveKey(s, &ecdh, pub, keyt, N(keyt), &h),
              CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails, p11->C_WrapKey(s, &kw, pub, data, buf, &n),
              CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails,
              p11->C_UnwrapKey(s, &kw, pub, wrapped, 24, keyt, N(keyt), &h),
              CKR_USER_NOT_LOGGED_IN);
    expect_rv(fails, p11->C_MessageEncryptInit(s, &ecdsa, pub),
              CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(fails, 0);

    /* nothing changed */
    assert_int_equal(p11_count_all(s), 4);
    p11_login_cu(s, "alice", P11_ALICE_PW);
    assert_int_equal(p11_count_label(s, "renamed"), 0);
    assert_int_equal(p11_count_label(s, "new"), 0);
    assert_int_equal(p11_count_all(s), 9);
}

/* ------------------------------------------------------------ hidden */

static void test_public_hidden(void **state)
{
    struct objs o;
    CK_SESSION_HANDLE s, ro;
    CK_BYTE a[16];

    (void)state;
    s = setup_token("public_objects = hidden\n", &o);
    ro = p11_open_ro();
    assert_int_equal(p11_count_all(ro), 0);
    assert_int_equal(p11_count_all(s), 0);
    assert_int_equal(count_class(ro, CKO_CERTIFICATE), 0);
    {
        CK_ATTRIBUTE t = {CKA_EC_POINT, o.point, o.point_len};

        assert_int_equal(p11_find_all(ro, &t, 1, NULL, 0), 0);
    }
    assert_rv(p11->C_GenerateRandom(ro, a, sizeof(a)), CKR_USER_NOT_LOGGED_IN);
    /* a CU still sees everything it did */
    p11_login_cu(s, "alice", P11_ALICE_PW);
    assert_int_equal(p11_count_all(ro), 9);
    assert_rv(p11->C_GenerateRandom(ro, a, sizeof(a)), CKR_OK);
}

/* ------------------------------------------------------------ hostile */

/*
 * Handles a public session got while logged in name nothing after the
 * logout, neither private objects nor public ones (handles die at
 * C_Logout); the public ones come back under new handles.
 */
static void test_public_old_handles(void **state)
{
    struct objs o;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE privdata, priv, pub, newpub;
    CK_ATTRIBUTE lab = {CKA_LABEL, NULL, 0};
    CK_ULONG size;
    CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};

    (void)state;
    s = setup_token(NULL, &o);
    p11_login_cu(s, "alice", P11_ALICE_PW);
    privdata = find_label(s, "privdata");
    priv = find_label(s, "priv");
    pub = find_label(s, "pub");
    assert_rv(p11->C_Logout(s), CKR_OK);

    assert_rv(p11->C_GetAttributeValue(s, privdata, &lab, 1),
              CKR_OBJECT_HANDLE_INVALID);
    assert_rv(p11->C_GetObjectSize(s, priv, &size), CKR_OBJECT_HANDLE_INVALID);
    assert_rv(p11->C_DestroyObject(s, privdata), CKR_OBJECT_HANDLE_INVALID);
    assert_rv(p11->C_SignInit(s, &ecdsa, priv), CKR_USER_NOT_LOGGED_IN);
    assert_rv(p11->C_GetAttributeValue(s, pub, &lab, 1),
              CKR_OBJECT_HANDLE_INVALID);
    newpub = find_label(s, "pub");
    assert_true(newpub != pub);
    assert_rv(p11->C_GetAttributeValue(s, newpub, &lab, 1), CKR_OK);
    /* no number near the ones handed out names a private object */
    for (CK_OBJECT_HANDLE h = 1; h < newpub + 64; h++) {
        CK_BBOOL priv_v = CK_FALSE;
        CK_ATTRIBUTE t = {CKA_PRIVATE, &priv_v, sizeof(priv_v)};
        CK_RV rv = p11->C_GetAttributeValue(s, h, &t, 1);

        if (rv == CKR_OK)
            assert_int_equal(priv_v, CK_FALSE);
        else
            assert_rv(rv, CKR_OBJECT_HANDLE_INVALID);
    }
}

/*
 * A public session searches while the application logs in and out in
 * another thread. Handles that C_FindObjects hands out while logged out
 * (no login from before it to after it) are the public objects only, even
 * when C_FindObjectsInit began as alice and her logout raced its search:
 * that search is cancelled by the logout or redone for the public view.
 */
#define RACE_PRIVATE 300

struct race {
    CK_SESSION_HANDLE login_s, find_s;
    atomic_uint ver; /* odd: a login may be in force */
    atomic_bool stop;
    int bad;
};

static void *race_login(void *arg)
{
    struct race *r = arg;

    while (!atomic_load(&r->stop)) {
        atomic_fetch_add(&r->ver, 1);
        if (p11_login(r->login_s, CKU_USER, "alice:" P11_ALICE_PW) != CKR_OK)
            r->bad++;
        usleep(200);
        if (p11->C_Logout(r->login_s) != CKR_OK)
            r->bad++;
        atomic_fetch_add(&r->ver, 1);
        /* leave the searcher whole logged-out windows too, now and then
         * long ones (a slow, sanitized build still gets some) */
        if (atomic_load(&r->ver) % 32 == 0)
            usleep(20000);
        else
            usleep(300 + (unsigned)(atomic_load(&r->ver) % 7) * 100);
    }
    return NULL;
}

static void test_public_login_race(void **state)
{
    struct objs o;
    struct race r;
    pthread_t t;
    int checked = 0, leaks = 0;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.login_s = setup_token(NULL, &o);
    /* many private objects: alice's searches take long enough to race */
    p11_login_cu(r.login_s, "alice", P11_ALICE_PW);
    for (int i = 0; i < RACE_PRIVATE; i++)
        p11_make_data(r.login_s, "race", CK_TRUE);
    assert_rv(p11->C_Logout(r.login_s), CKR_OK);
    r.find_s = p11_open_ro();
    atomic_init(&r.ver, 0);
    atomic_init(&r.stop, false);
    assert_int_equal(pthread_create(&t, NULL, race_login, &r), 0);
    for (int i = 0; i < 1000; i++) {
        CK_OBJECT_HANDLE h[64];
        CK_ULONG n = 0, total = 0;
        unsigned v1, v2;
        CK_RV rv = p11->C_FindObjectsInit(r.find_s, NULL, 0);

        assert_rv(rv, CKR_OK);
        v1 = atomic_load(&r.ver);
        do {
            rv = p11->C_FindObjects(r.find_s, h, 64, &n);
            if (rv != CKR_OK)
                break; /* cancelled by a logout */
            total += n;
        } while (n > 0);
        v2 = atomic_load(&r.ver);
        p11->C_FindObjectsFinal(r.find_s);
        if (rv != CKR_OK) {
            assert_rv(rv, CKR_OPERATION_NOT_INITIALIZED);
            continue;
        }
        if (v1 == v2 && v1 % 2 == 0) {
            checked++;
            if (total != 4)
                leaks++;
        } else if (total != 4 && total != 9 + RACE_PRIVATE) {
            leaks++;
        }
    }
    atomic_store(&r.stop, true);
    pthread_join(t, NULL);
    assert_int_equal(r.bad, 0);
    assert_int_equal(leaks, 0);
    /* the check ran at all */
    assert_true(checked > 0);
}

int p11_group_public(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, p11_setup, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_public_reads),       T(test_public_random),
        T(test_public_refusals),    T(test_public_hidden),
        T(test_public_old_handles), T(test_public_login_race),
    };
#undef T

    return cmocka_run_group_tests_name("public objects", tests, NULL, NULL);
}
