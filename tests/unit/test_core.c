/* test_core.c - the HSM core through its API (hsm.h), without PKCS#11. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hsm/hsm.h"
#include "hsm/internal.h"
#include "mechtest.h"
#include "nimbus/pkcs11-vendor.h"

#define PW(s) (const uint8_t *)(s), strlen(s)

struct fixture {
    char dir[64];
    struct config cfg;
    hsm_t *hsm;
    hsm_conn_t *conn;
    hsm_sid_t sid;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-core-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    config_defaults(&f->cfg);
    snprintf(f->cfg.store, sizeof(f->cfg.store), "%s/store", f->dir);
    f->cfg.kdf_iterations = 1000;
    if (hsm_open(&f->cfg, &f->hsm) != CKR_OK ||
        hsm_conn_open(f->hsm, &f->conn) != CKR_OK ||
        hsm_session_open(f->conn, true, &f->sid) != CKR_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    hsm_close(f->hsm); /* closes the connection too */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* Activates with CO password "copass1" and creates CU name/pw. */
static void activate_and_add(struct fixture *f, const char *name,
                             const char *pw)
{
    assert_int_equal(hsm_init_token(f->hsm, NULL, PW("copass1"), "test"),
                     CKR_OK);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(hsm_init_pin(f->conn, name, PW(pw)), CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
}

static CK_RV make_data(struct fixture *f, const char *label, bool token,
                       hsm_oid_t *oid)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL tok = token ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &tok, sizeof(tok)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VALUE, "hello", 5},
    };
    return hsm_object_create(f->conn, f->sid, t, 4, oid);
}

static void test_fresh_store(void **state)
{
    struct fixture *f = *state;
    hsm_token_info_t ti;
    hsm_user_info_t *users = NULL;
    size_t n = 0;
    struct stat st;
    char path[PATH_MAX + 64];

    assert_int_equal(hsm_token_info(f->hsm, f->conn, &ti), CKR_OK);
    assert_false(ti.activated);
    assert_true(ti.preco);
    assert_false(ti.cu_exists);
    assert_string_equal(ti.label, "nimbus");
    assert_int_equal(strlen(ti.serial), 16);

    assert_int_equal(hsm_user_list(f->conn, &users, &n), CKR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(users[0].id, 1);
    assert_int_equal(users[0].type, HSM_USER_PRECO);
    assert_string_equal(users[0].name, "admin");
    assert_int_equal(users[1].id, 2);
    assert_int_equal(users[1].type, HSM_USER_AU);
    assert_string_equal(users[1].name, "app_user");
    free(users);

    snprintf(path, sizeof(path), "%s/token0.key", f->cfg.store);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);
}

static void test_activation_by_set_password(void **state)
{
    struct fixture *f = *state;
    hsm_token_info_t ti;
    hsm_oid_t oid;

    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("password")),
                     CKR_OK);
    assert_int_equal(hsm_conn_user_type(f->conn, NULL), HSM_USER_PRECO);
    /* PRECO may do nothing else. */
    assert_int_equal(make_data(f, "x", false, &oid), CKR_PIN_EXPIRED);
    assert_int_equal(hsm_init_pin(f->conn, "alice", PW("alicepw1")),
                     CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(
        hsm_set_password(f->conn, NULL, PW("password"), PW("short")),
        CKR_PIN_LEN_RANGE);
    assert_int_equal(
        hsm_set_password(f->conn, NULL, PW("wrongpw1"), PW("newpass1")),
        CKR_PIN_INCORRECT);
    assert_int_equal(
        hsm_set_password(f->conn, NULL, PW("password"), PW("newpass1")),
        CKR_OK);
    assert_int_equal(hsm_conn_user_type(f->conn, NULL), HSM_USER_CO);
    assert_int_equal(hsm_token_info(f->hsm, f->conn, &ti), CKR_OK);
    assert_true(ti.activated);
    assert_false(ti.preco);
    /* The old password is gone, the new one works. */
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("password")),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, "ADMIN", PW("newpass1")),
                     CKR_OK);
}

static void test_login_rules(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, NULL, PW("whatever")),
                     CKR_USER_PIN_NOT_INITIALIZED);
    activate_and_add(f, "alice", "alicepw1");
    /* Unknown name, wrong type, wrong password: one answer. */
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "bob", PW("alicepw1")),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "admin", PW("copass1")),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("x")),
                     CKR_PIN_INCORRECT);
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "bad name!", PW("alicepw1")),
        CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_AU, NULL, PW("anything")),
                     CKR_PIN_INCORRECT);
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "Alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_USER_ALREADY_LOGGED_IN);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
    assert_int_equal(hsm_init_pin(f->conn, "bob", PW("bobpass1")),
                     CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_USER_NOT_LOGGED_IN);
}

static void test_lockout(void **state)
{
    struct fixture *f = *state;
    hsm_token_info_t ti;

    f->cfg.login_failure_limit = 5;
    activate_and_add(f, "user", "userpass");
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(
            hsm_login(f->conn, HSM_LOGIN_USER, NULL, PW("wrongpass")),
            CKR_PIN_INCORRECT);
        assert_int_equal(hsm_token_info(f->hsm, f->conn, &ti), CKR_OK);
        assert_int_equal(ti.user_failures, (unsigned long)i);
    }
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, NULL, PW("userpass")),
                     CKR_PIN_LOCKED);

    /* Across a close and reopen: still locked. */
    hsm_close(f->hsm);
    assert_int_equal(hsm_open(&f->cfg, &f->hsm), CKR_OK);
    assert_int_equal(hsm_conn_open(f->hsm, &f->conn), CKR_OK);
    assert_int_equal(hsm_session_open(f->conn, true, &f->sid), CKR_OK);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, NULL, PW("userpass")),
                     CKR_PIN_LOCKED);

    /* A CO reset unlocks. */
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(hsm_init_pin(f->conn, NULL, PW("userpass2")), CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    /* Success resets the count. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            hsm_login(f->conn, HSM_LOGIN_USER, NULL, PW("wrongpass")),
            CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, NULL, PW("userpass2")),
                     CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            hsm_login(f->conn, HSM_LOGIN_USER, NULL, PW("wrongpass")),
            CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, NULL, PW("userpass2")),
                     CKR_OK);
}

static void test_objects_and_ownership(void **state)
{
    struct fixture *f = *state;
    hsm_oid_t a_priv, a_sess, b_oid, *found = NULL;
    size_t n = 0;
    CK_ATTRIBUTE_TYPE types[] = {CKA_LABEL, CKA_VALUE, CKA_NIMBUS_OWNER,
                                 CKA_MODULUS};
    hsm_attr_t out[4];
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE by_class = {CKA_CLASS, &cls, sizeof(cls)};
    CK_ATTRIBUTE newlabel = {CKA_LABEL, "renamed", 7};
    hsm_uid_t alice = 0;

    activate_and_add(f, "alice", "alicepw1");
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(hsm_init_pin(f->conn, "bob", PW("bobpass1")), CKR_OK);
    /* The CO cannot create, and finds nothing. */
    assert_int_equal(make_data(f, "co", true, &a_priv), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);

    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")), CKR_OK);
    hsm_conn_user_type(f->conn, &alice);
    assert_int_equal(make_data(f, "alice-token", true, &a_priv), CKR_OK);
    assert_int_equal(make_data(f, "alice-session", false, &a_sess), CKR_OK);
    assert_true(a_sess > a_priv);

    assert_int_equal(hsm_object_get(f->conn, f->sid, a_priv, types, 4, out),
                     CKR_OK);
    assert_int_equal(out[0].status, HSM_ATTR_OK);
    assert_memory_equal(out[0].value, "alice-token", 11);
    assert_int_equal(out[1].status, HSM_ATTR_OK);
    assert_int_equal(out[1].len, 5);
    assert_int_equal(out[2].status, HSM_ATTR_OK);
    assert_int_equal(*(CK_ULONG *)out[2].value, alice);
    assert_int_equal(out[3].status, HSM_ATTR_INVALID);
    hsm_attrs_free(out, 4);

    assert_int_equal(hsm_object_find(f->conn, f->sid, &by_class, 1, &found, &n),
                     CKR_OK);
    assert_int_equal(n, 2);
    assert_true(found[0] == a_priv && found[1] == a_sess);
    free(found);
    {
        /* find by the stable id, 8 bytes big-endian */
        uint8_t idbe[8];
        CK_ATTRIBUTE by_id = {CKA_NIMBUS_OBJECT_ID, idbe, sizeof(idbe)};

        for (int b = 0; b < 8; b++)
            idbe[b] = (uint8_t)(a_sess >> (56 - 8 * b));
        assert_int_equal(
            hsm_object_find(f->conn, f->sid, &by_id, 1, &found, &n), CKR_OK);
        assert_int_equal(n, 1);
        assert_true(found[0] == a_sess);
        free(found);
        by_id.ulValueLen = 4;
        assert_int_equal(
            hsm_object_find(f->conn, f->sid, &by_id, 1, &found, &n), CKR_OK);
        assert_int_equal(n, 0);
        free(found);
    }
    assert_int_equal(hsm_object_set(f->conn, f->sid, a_priv, &newlabel, 1),
                     CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);

    /* bob sees nothing of alice's, not even by id. */
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "bob", PW("bobpass1")),
                     CKR_OK);
    assert_int_equal(hsm_object_find(f->conn, f->sid, &by_class, 1, &found, &n),
                     CKR_OK);
    assert_int_equal(n, 0);
    free(found);
    assert_int_equal(hsm_object_get(f->conn, f->sid, a_priv, types, 1, out),
                     CKR_OBJECT_HANDLE_INVALID);
    assert_int_equal(hsm_object_destroy(f->conn, f->sid, a_priv),
                     CKR_OBJECT_HANDLE_INVALID);
    assert_int_equal(make_data(f, "bob", true, &b_oid), CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);

    /* A CU that owns keys cannot be deleted. */
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(hsm_user_delete(f->conn, "bob"), CKR_ACTION_PROHIBITED);
    assert_int_equal(hsm_user_delete(f->conn, "admin"), CKR_ACTION_PROHIBITED);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);

    /* alice's session object died with nothing; her label change held. */
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(hsm_object_get(f->conn, f->sid, a_priv, types, 1, out),
                     CKR_OK);
    assert_memory_equal(out[0].value, "renamed", 7);
    hsm_attrs_free(out, 1);
    /* private session objects die at logout */
    assert_int_equal(hsm_object_get(f->conn, f->sid, a_sess, types, 1, out),
                     CKR_OBJECT_HANDLE_INVALID);
    assert_int_equal(hsm_object_destroy(f->conn, f->sid, a_priv), CKR_OK);
    assert_int_equal(hsm_object_get(f->conn, f->sid, a_priv, types, 1, out),
                     CKR_OBJECT_HANDLE_INVALID);
}

/* Key values never appear in clear in the database file. */
static void test_sealed_at_rest(void **state)
{
    struct fixture *f = *state;
    static const char secret[] = "0123456789abcdefSECRETKEYBYTES!!";
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL tru = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &tru, sizeof(tru)},
        {CKA_VALUE, (void *)secret, 32},
    };
    hsm_oid_t oid;
    char path[PATH_MAX + 64];
    FILE *fp;
    char *buf;
    long len;
    CK_ATTRIBUTE_TYPE vt = CKA_VALUE;
    hsm_attr_t out;

    activate_and_add(f, "alice", "alicepw1");
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(hsm_object_create(f->conn, f->sid, t, 4, &oid), CKR_OK);
    assert_int_equal(hsm_object_get(f->conn, f->sid, oid, &vt, 1, &out),
                     CKR_OK);
    assert_int_equal(out.status, HSM_ATTR_SENSITIVE);
    hsm_attrs_free(&out, 1);
    hsm_close(f->hsm);
    f->hsm = NULL;

    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/token0.db%s", f->cfg.store,
                 i == 0 ? "" : "-wal");
        fp = fopen(path, "rb");
        if (fp == NULL)
            continue;
        fseek(fp, 0, SEEK_END);
        len = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        buf = malloc((size_t)len + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
        fclose(fp);
        assert_null(memmem(buf, (size_t)len, "SECRETKEYBYTES", 14));
        assert_null(memmem(buf, (size_t)len, "alicepw1", 8));
        assert_null(memmem(buf, (size_t)len, "copass1", 7));
        free(buf);
    }
    assert_int_equal(hsm_open(&f->cfg, &f->hsm), CKR_OK);
}

/* Another master key does not open the store. */
static void test_wrong_master_key(void **state)
{
    struct fixture *f = *state;
    char path[PATH_MAX + 64];
    FILE *fp;
    hsm_t *h = NULL;

    hsm_close(f->hsm);
    f->hsm = NULL;
    snprintf(path, sizeof(path), "%s/token0.key", f->cfg.store);
    fp = fopen(path, "r+b");
    assert_non_null(fp);
    fputc('X', fp);
    fclose(fp);
    assert_int_equal(hsm_open(&f->cfg, &h), CKR_DEVICE_ERROR);
    assert_null(h);
    unlink(path);
    assert_int_equal(hsm_open(&f->cfg, &h), CKR_DEVICE_ERROR);
    /* leave a valid store for teardown */
    snprintf(path, sizeof(path), "rm -rf '%s'", f->cfg.store);
    assert_int_equal(system(path), 0);
    assert_int_equal(hsm_open(&f->cfg, &f->hsm), CKR_OK);
}

static void test_reinit_token(void **state)
{
    struct fixture *f = *state;
    hsm_oid_t oid, *found = NULL;
    size_t n = 9;
    hsm_token_info_t ti;

    activate_and_add(f, "alice", "alicepw1");
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(make_data(f, "keep?", true, &oid), CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(hsm_init_token(f->hsm, NULL, PW("wrongpass"), "again"),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_init_token(f->hsm, "admin", PW("copass1"), "again"),
                     CKR_OK);
    assert_int_equal(hsm_token_info(f->hsm, f->conn, &ti), CKR_OK);
    assert_string_equal(ti.label, "again");
    assert_false(ti.cu_exists);
    assert_true(ti.activated);
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_USER_PIN_NOT_INITIALIZED);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(hsm_init_pin(f->conn, "alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(hsm_object_find(f->conn, f->sid, NULL, 0, &found, &n),
                     CKR_OK);
    assert_int_equal(n, 0);
    free(found);
}

static void test_sharing(void **state)
{
    struct fixture *f = *state;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_BBOOL tru = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &tru, sizeof(tru)},
        {CKA_VALUE, "0123456789abcdef", 16},
    };
    CK_ATTRIBUTE_TYPE shared = CKA_NIMBUS_SHARED_USERS;
    hsm_attr_t out;
    hsm_oid_t oid, *found = NULL;
    hsm_uid_t bob = 0;
    size_t n = 0;

    activate_and_add(f, "alice", "alicepw1");
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(
        hsm_user_create(f->conn, HSM_USER_CU, "bob", PW("bobpass1"), &bob),
        CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(hsm_object_create(f->conn, f->sid, t, 4, &oid), CKR_OK);
    assert_int_equal(hsm_object_share(f->conn, oid, bob, true), CKR_OK);
    assert_int_equal(hsm_object_get(f->conn, f->sid, oid, &shared, 1, &out),
                     CKR_OK);
    assert_int_equal(out.len, sizeof(CK_ULONG));
    assert_int_equal(*(CK_ULONG *)out.value, bob);
    hsm_attrs_free(&out, 1);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);

    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "bob", PW("bobpass1")),
                     CKR_OK);
    assert_int_equal(hsm_object_find(f->conn, f->sid, NULL, 0, &found, &n),
                     CKR_OK);
    assert_int_equal(n, 1);
    assert_true(found[0] == oid);
    free(found);
    /* bob may use it, not change, share or destroy it */
    assert_int_equal(hsm_object_destroy(f->conn, f->sid, oid),
                     CKR_ACTION_PROHIBITED);
    assert_int_equal(hsm_object_share(f->conn, oid, bob, false),
                     CKR_ACTION_PROHIBITED);
}

/* The CO marks a key trusted (footnote 10's SO); then it may wrap keys
 * that have CKA_WRAP_WITH_TRUSTED, and before that it may not. */
static void test_trusted(void **state)
{
    struct fixture *f = *state;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL tru = CK_TRUE;
    CK_ATTRIBUTE wk_t[] = {
        {CKA_CLASS, &cls, sizeof(cls)}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &tru, sizeof(tru)}, {CKA_VALUE, "0123456789abcdef", 16},
        {CKA_WRAP, &tru, sizeof(tru)},
    };
    CK_ATTRIBUTE key_t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &tru, sizeof(tru)},
        {CKA_VALUE, "fedcba9876543210", 16},
        {CKA_WRAP_WITH_TRUSTED, &tru, sizeof(tru)},
    };
    CK_MECHANISM kw = {CKM_AES_KEY_WRAP, NULL, 0};
    CK_ATTRIBUTE_TYPE tt = CKA_TRUSTED;
    hsm_oid_t wk, key, data;
    hsm_attr_t out;
    uint8_t *blob = NULL;
    size_t bloblen = 0;

    activate_and_add(f, "alice", "alicepw1");
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(hsm_object_create(f->conn, f->sid, wk_t, 5, &wk), CKR_OK);
    assert_int_equal(hsm_object_create(f->conn, f->sid, key_t, 5, &key),
                     CKR_OK);
    assert_int_equal(make_data(f, "d", true, &data), CKR_OK);
    /* a CU cannot, and the wrap is refused while the key is untrusted */
    assert_int_equal(hsm_object_set_trusted(f->conn, wk, true),
                     CKR_USER_NOT_LOGGED_IN);
    assert_int_not_equal(
        t_wrap_key(f->conn, f->sid, &kw, wk, key, &blob, &bloblen), CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);

    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(hsm_object_set_trusted(f->conn, wk, true), CKR_OK);
    assert_int_equal(hsm_object_set_trusted(f->conn, data, true),
                     CKR_ATTRIBUTE_TYPE_INVALID);
    assert_int_equal(hsm_object_set_trusted(f->conn, 99999, true),
                     CKR_OBJECT_HANDLE_INVALID);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);

    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(hsm_object_get(f->conn, f->sid, wk, &tt, 1, &out), CKR_OK);
    assert_int_equal(out.status, HSM_ATTR_OK);
    assert_int_equal(out.value[0], CK_TRUE);
    hsm_attrs_free(&out, 1);
    assert_int_equal(t_wrap_key(f->conn, f->sid, &kw, wk, key, &blob, &bloblen),
                     CKR_OK);
    assert_int_equal(bloblen, 24);
    free(blob);
}

/* ------------------------------------------- password checks and the lock */

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Reopens f's HSM with this KDF cost and failure limit, then activates it
 * and adds CU "user" (verifiers made at that cost). */
static void reopen_with(struct fixture *f, unsigned long iterations,
                        unsigned long limit)
{
    hsm_close(f->hsm);
    f->cfg.kdf_iterations = iterations;
    f->cfg.login_failure_limit = limit;
    assert_int_equal(hsm_open(&f->cfg, &f->hsm), CKR_OK);
    assert_int_equal(hsm_conn_open(f->hsm, &f->conn), CKR_OK);
    assert_int_equal(hsm_session_open(f->conn, true, &f->sid), CKR_OK);
    activate_and_add(f, "user", "userpass");
}

struct guesser {
    hsm_conn_t *conn;
    int tries; /* attempts to make; < 0: until stop is set */
    const int *stop;
    int incorrect; /* answers CKR_PIN_INCORRECT */
    int locked;    /* answers CKR_PIN_LOCKED */
    int other;     /* any other answer */
};

static void *guess(void *arg)
{
    struct guesser *g = arg;

    for (int i = 0; g->tries < 0 ? !__atomic_load_n(g->stop, __ATOMIC_ACQUIRE)
                                 : i < g->tries;
         i++) {
        CK_RV rv = hsm_login(g->conn, HSM_LOGIN_USER, NULL, PW("wrongpass"));

        if (rv == CKR_PIN_INCORRECT)
            __atomic_add_fetch(&g->incorrect, 1, __ATOMIC_RELEASE);
        else if (rv == CKR_PIN_LOCKED)
            g->locked++;
        else
            g->other++;
    }
    return NULL;
}

/*
 * A thread parked inside a password KDF (hsm_kdf_hook, which the core calls
 * outside hsm->lock just before one) until the test lets it go. If the KDF
 * ran under the lock, the test's other calls would wait for the park and
 * the park would give up after 30 s: timed_out says so.
 */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int parked;
    int release;
    int timed_out;
} park = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void park_hook(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    pthread_mutex_lock(&park.mu);
    park.parked++;
    pthread_cond_broadcast(&park.cv);
    while (!park.release && !park.timed_out) {
        if (pthread_cond_timedwait(&park.cv, &park.mu, &ts) != 0)
            park.timed_out = 1;
    }
    park.parked--;
    pthread_cond_broadcast(&park.cv);
    pthread_mutex_unlock(&park.mu);
}

static void park_arm(void)
{
    pthread_mutex_lock(&park.mu);
    park.parked = 0;
    park.release = 0;
    park.timed_out = 0;
    pthread_mutex_unlock(&park.mu);
    hsm_kdf_hook = park_hook;
}

/* Waits (up to 30 s) until a thread is parked in a KDF. */
static void park_wait(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    int parked;

    pthread_mutex_lock(&park.mu);
    while (park.parked == 0 &&
           pthread_cond_timedwait(&park.cv, &park.mu, &ts) == 0)
        ;
    parked = park.parked;
    if (parked != 1) { /* let whatever parked go before failing */
        park.release = 1;
        pthread_cond_broadcast(&park.cv);
    }
    pthread_mutex_unlock(&park.mu);
    if (parked != 1)
        hsm_kdf_hook = NULL;
    assert_int_equal(parked, 1);
}

/* Another connection's calls answered while the KDF is parked, then the
 * park let go. */
static void park_check_and_release(hsm_t *hsm, hsm_conn_t *other)
{
    hsm_token_info_t ti;
    hsm_user_info_t *users = NULL;
    size_t n = 0;
    CK_RV rv_info, rv_list;
    int timed_out, parked;

    rv_info = hsm_token_info(hsm, other, &ti);
    rv_list = hsm_user_list(other, &users, &n);
    free(users);
    pthread_mutex_lock(&park.mu);
    timed_out = park.timed_out;
    parked = park.parked;
    park.release = 1;
    pthread_cond_broadcast(&park.cv);
    pthread_mutex_unlock(&park.mu);
    hsm_kdf_hook = NULL; /* the parked thread goes on; nothing else parks */
    assert_int_equal(rv_info, CKR_OK);
    assert_int_equal(rv_list, CKR_OK);
    assert_true(n >= 2);
    assert_int_equal(timed_out, 0); /* answered while parked */
    assert_int_equal(parked, 1);
}

/*
 * A wrong-password login on one connection does not hold up another
 * connection's calls: the KDF runs outside hsm->lock. The login is held in
 * its KDF while the other connection calls, so no timing decides.
 */
static void test_login_does_not_block(void **state)
{
    struct fixture *f = *state;
    hsm_conn_t *other = NULL;
    hsm_token_info_t ti;
    struct guesser g = {0};
    pthread_t th;

    reopen_with(f, 1000, 1000000);
    assert_int_equal(hsm_conn_open(f->hsm, &other), CKR_OK);
    g.conn = f->conn;
    g.tries = 1;
    park_arm();
    assert_int_equal(pthread_create(&th, NULL, guess, &g), 0);
    park_wait();
    park_check_and_release(f->hsm, other);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(g.incorrect, 1);
    assert_int_equal(g.other, 0);
    /* The attempt counted. */
    assert_int_equal(hsm_token_info(f->hsm, other, &ti), CKR_OK);
    assert_int_equal(ti.user_failures, 1);
    /* And the right password still logs in, resetting the count. */
    assert_int_equal(hsm_login(other, HSM_LOGIN_USER, NULL, PW("userpass")),
                     CKR_OK);
    assert_int_equal(hsm_token_info(f->hsm, other, &ti), CKR_OK);
    assert_int_equal(ti.user_failures, 0);
    hsm_conn_close(other);
}

/* One user administration call of a CO, in a thread. */
struct admin {
    hsm_conn_t *conn;
    int what; /* 0 create, 1 C_InitPIN, 2 changePswd */
    CK_RV rv;
};

static void *administer(void *arg)
{
    struct admin *a = arg;

    if (a->what == 0)
        a->rv = hsm_user_create(a->conn, HSM_USER_CU, "cu0", PW("firstpw1"),
                                NULL);
    else if (a->what == 1)
        a->rv = hsm_init_pin(a->conn, "cu0", PW("secondpw"));
    else
        a->rv = hsm_user_set_password(a->conn, "cu0", PW("thirdpw1"));
    return NULL;
}

/*
 * Making a password verifier (create user, C_InitPIN, changePswd) costs a
 * login's KDF time and runs outside hsm->lock: a CO managing users does
 * not hold up another connection's calls. Each call is held in its KDF
 * while the other connection calls.
 */
static void test_verifier_does_not_block(void **state)
{
    static const char *const pws[] = {"firstpw1", "secondpw", "thirdpw1"};
    struct fixture *f = *state;
    hsm_conn_t *other = NULL;
    pthread_t th;

    reopen_with(f, 1000, 1000000);
    assert_int_equal(hsm_conn_open(f->hsm, &other), CKR_OK);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    for (int what = 0; what < 3; what++) {
        struct admin a = {f->conn, what, CKR_GENERAL_ERROR};

        park_arm();
        assert_int_equal(pthread_create(&th, NULL, administer, &a), 0);
        park_wait();
        park_check_and_release(f->hsm, other);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(a.rv, CKR_OK);
        /* The verifier made outside the lock is the one stored. */
        assert_int_equal(
            hsm_login(other, HSM_LOGIN_USER, "cu0",
                      (const uint8_t *)pws[what], strlen(pws[what])),
            CKR_OK);
        assert_int_equal(hsm_logout(other), CKR_OK);
        if (what > 0)
            assert_int_equal(hsm_login(other, HSM_LOGIN_USER, "cu0",
                                       (const uint8_t *)pws[what - 1],
                                       strlen(pws[what - 1])),
                             CKR_PIN_INCORRECT);
    }
    hsm_conn_close(other);
}

#define GUESSERS 4

/* Runs GUESSERS threads, half on each connection, tries attempts each. */
static void guess_all(hsm_conn_t *a, hsm_conn_t *b, int tries,
                      struct guesser *g)
{
    pthread_t th[GUESSERS];

    for (int i = 0; i < GUESSERS; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        g[i].conn = i % 2 ? b : a;
        g[i].tries = tries;
        assert_int_equal(pthread_create(&th[i], NULL, guess, &g[i]), 0);
    }
    for (int i = 0; i < GUESSERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
}

/* Concurrent wrong passwords on two connections all count, up to the limit
 * exactly; then the user is locked, even to the right password. */
static void test_lockout_concurrent(void **state)
{
    struct fixture *f = *state;
    hsm_conn_t *other = NULL;
    struct guesser g[GUESSERS];
    hsm_token_info_t ti;
    int incorrect = 0, locked = 0;

    reopen_with(f, 20000, 10);
    assert_int_equal(hsm_conn_open(f->hsm, &other), CKR_OK);

    /* 8 attempts under the limit of 10: all wrong, all counted. */
    guess_all(f->conn, other, 2, g);
    for (int i = 0; i < GUESSERS; i++) {
        assert_int_equal(g[i].incorrect, 2);
        assert_int_equal(g[i].other, 0);
    }
    assert_int_equal(hsm_token_info(f->hsm, other, &ti), CKR_OK);
    assert_int_equal(ti.user_failures, 8);

    /* 12 more: exactly 2 are checked, the other 10 find the user locked. */
    guess_all(f->conn, other, 3, g);
    for (int i = 0; i < GUESSERS; i++) {
        incorrect += g[i].incorrect;
        locked += g[i].locked;
        assert_int_equal(g[i].other, 0);
    }
    assert_int_equal(incorrect, 2);
    assert_int_equal(locked, 10);
    assert_int_equal(hsm_token_info(f->hsm, other, &ti), CKR_OK);
    assert_int_equal(ti.user_failures, 10);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, NULL, PW("userpass")),
                     CKR_PIN_LOCKED);
    assert_int_equal(hsm_login(other, HSM_LOGIN_USER, NULL, PW("userpass")),
                     CKR_PIN_LOCKED);
    assert_int_equal(hsm_token_info(f->hsm, other, &ti), CKR_OK);
    assert_int_equal(ti.user_failures, 10);
}

struct login_try {
    hsm_conn_t *conn;
    const char *pw;
    CK_RV rv;
};

static void *try_login(void *arg)
{
    struct login_try *t = arg;

    t->rv = hsm_login(t->conn, HSM_LOGIN_USER, NULL, PW(t->pw));
    return NULL;
}

/*
 * Many right-password logins of one user at once, more than the failure
 * limit: each charges a failure before its KDF, so the in-flight charges
 * alone reach the limit. None may answer CKR_PIN_LOCKED (they wait for the
 * checks under way), and the count is back to 0 after.
 */
static void test_right_logins_concurrent(void **state)
{
    enum { N = 8 };
    struct fixture *f = *state;
    struct login_try t[N];
    pthread_t th[N];
    hsm_token_info_t ti;

    reopen_with(f, 20000, 2);
    for (int i = 0; i < N; i++) {
        t[i].conn = NULL;
        t[i].pw = "userpass";
        t[i].rv = CKR_GENERAL_ERROR;
        assert_int_equal(hsm_conn_open(f->hsm, &t[i].conn), CKR_OK);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&th[i], NULL, try_login, &t[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (t[i].rv != CKR_OK)
            fail_msg("login %d of %d at once: 0x%lx", i, N, t[i].rv);
    }
    assert_int_equal(hsm_token_info(f->hsm, t[0].conn, &ti), CKR_OK);
    assert_int_equal(ti.user_failures, 0);
    for (int i = 0; i < N; i++)
        hsm_conn_close(t[i].conn);
}

/* Hostile: a CO resets the password while a login with the old one is in
 * its KDF. That login never stands on the old verifier: it fails, or (if it
 * won the race outright) the next call drops it. */
static void test_reset_during_login(void **state)
{
    struct fixture *f = *state;
    struct login_try t = {0};
    hsm_conn_t *other = NULL;
    hsm_uid_t uid = 0;
    pthread_t th;
    double kdf, t0;

    reopen_with(f, 400000, 100);
    assert_int_equal(hsm_conn_open(f->hsm, &other), CKR_OK);
    t0 = now_ms();
    assert_int_equal(hsm_login(other, HSM_LOGIN_USER, NULL, PW("wrongpass")),
                     CKR_PIN_INCORRECT);
    kdf = now_ms() - t0;
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    t.conn = other;
    t.pw = "userpass";
    assert_int_equal(pthread_create(&th, NULL, try_login, &t), 0);
    usleep((useconds_t)(kdf * 1000 / 3));
    assert_int_equal(hsm_init_pin(f->conn, NULL, PW("newpass1")), CKR_OK);
    assert_int_equal(pthread_join(th, NULL), 0);
    print_message("login during the reset: 0x%lx\n", (unsigned long)t.rv);
    if (t.rv == CKR_OK) {
        assert_int_equal(
            hsm_set_password(other, NULL, PW("userpass"), PW("another1")),
            CKR_USER_NOT_LOGGED_IN);
    } else {
        assert_int_equal(t.rv, CKR_PIN_INCORRECT);
    }
    assert_int_equal(hsm_conn_user_type(other, &uid), HSM_USER_NONE);
    assert_int_equal(hsm_login(other, HSM_LOGIN_USER, NULL, PW("userpass")),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login(other, HSM_LOGIN_USER, NULL, PW("newpass1")),
                     CKR_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_by_set_password, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_login_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lockout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_does_not_block, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_verifier_does_not_block, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_right_logins_concurrent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lockout_concurrent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reset_during_login, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_objects_and_ownership, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sealed_at_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_master_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reinit_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sharing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trusted, setup, teardown),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
