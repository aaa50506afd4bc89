/*
 * test_audit.c - the audit log through the HSM API (hsm.h): every event
 * kind leaves its record, a rolled-back change leaves none, and edits made
 * to the database behind the HSM's back (a field changed, a record deleted,
 * two swapped, one added) are found by hsm_audit_verify, which names the
 * first broken record. Also the management calls the shell uses
 * (hsm_user_set_password, hsm_key_list, hsm_key_info).
 *
 * The records are read back straight from the database with SQLite, so
 * that reading them adds none.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "hsm/crypto/crypto.h"
#include "hsm/hsm.h"
#include "mechtest.h"
#include "nimbus/pkcs11-vendor.h"

#define PW(s) (const uint8_t *)(s), strlen(s)
#define CO_PW "copass11"
#define ALICE_PW "alicepw1"
#define BOB_PW "bobpass1"
#define MAX_RECS 256

struct fixture {
    char dir[64];
    char db[PATH_MAX + 16];
    struct config cfg;
    hsm_t *hsm;
    hsm_conn_t *conn;
    hsm_sid_t sid;
};

/* One record as the test reads it from the database. */
struct rec {
    long long seq;
    char op[40];
    long long user;
    long long oid;
    long long result;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-audit-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    config_defaults(&f->cfg);
    snprintf(f->cfg.store, sizeof(f->cfg.store), "%s/store", f->dir);
    snprintf(f->db, sizeof(f->db), "%s/token0.db", f->cfg.store);
    f->cfg.kdf_iterations = 1000;
    f->cfg.login_failure_limit = 5;
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

    hsm_close(f->hsm);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* ------------------------------------------------------------ helpers */

/* Runs SQL on the database through a connection of our own. */
static void outside_exec(struct fixture *f, const char *sql)
{
    sqlite3 *db = NULL;
    char *err = NULL;

    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "sql: %s: %s\n", sql, err ? err : "?");
        sqlite3_free(err);
        sqlite3_close(db);
        fail();
    }
    sqlite3_close(db);
}

/* Every record, by seq. Returns the count. */
static size_t read_recs(struct fixture *f, struct rec *out, size_t max)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    size_t n = 0;

    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT seq, operation, user_id, "
                                        "object_id, result FROM audit "
                                        "ORDER BY seq",
                                        -1, &s, NULL),
                     SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
        assert_true(n < max);
        out[n].seq = sqlite3_column_int64(s, 0);
        snprintf(out[n].op, sizeof(out[n].op), "%s",
                 (const char *)sqlite3_column_text(s, 1));
        out[n].user = sqlite3_column_int64(s, 2);
        out[n].oid = sqlite3_column_int64(s, 3);
        out[n].result = sqlite3_column_int64(s, 4);
        n++;
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static size_t count_recs(struct fixture *f)
{
    struct rec r[MAX_RECS];

    return read_recs(f, r, MAX_RECS);
}

/* Asserts that the records from index *i on are, in order, the expected
 * (op, user, oid, result) ones, and moves *i past them. */
struct want {
    const char *op;
    long long user;
    long long oid; /* -1: any */
    CK_RV result;
};

static void expect_recs(struct fixture *f, size_t *i, const struct want *w,
                        size_t nw)
{
    struct rec r[MAX_RECS];
    size_t n = read_recs(f, r, MAX_RECS);

    assert_true(*i + nw <= n);
    for (size_t k = 0; k < nw; k++) {
        const struct rec *got = &r[*i + k];

        if (strcmp(got->op, w[k].op) != 0 || got->user != w[k].user ||
            (w[k].oid >= 0 && got->oid != w[k].oid) ||
            (CK_RV)got->result != w[k].result) {
            fprintf(stderr,
                    "record %lld: got %s user %lld oid %lld rv 0x%llx, "
                    "want %s user %lld oid %lld rv 0x%lx\n",
                    got->seq, got->op, got->user, got->oid, got->result,
                    w[k].op, w[k].user, w[k].oid, (unsigned long)w[k].result);
            fail();
        }
        assert_int_equal(got->seq, (long long)(*i + k + 1));
    }
    *i += nw;
    assert_int_equal(*i, n); /* nothing else was recorded */
}

#define EXPECT(f, i, ...)                                                      \
    do {                                                                       \
        const struct want w_[] = {__VA_ARGS__};                                \
        expect_recs((f), (i), w_, sizeof(w_) / sizeof(w_[0]));                 \
    } while (0)

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

static CK_RV make_secret(struct fixture *f, hsm_oid_t *oid)
{
    static const uint8_t key[16] = {1, 2,  3,  4,  5,  6,  7,  8,
                                    9, 10, 11, 12, 13, 14, 15, 16};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &yes, sizeof(yes)},        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_VALUE, (void *)key, sizeof(key)},
    };
    return hsm_object_create(f->conn, f->sid, t, 5, oid);
}

/* Activates (CO_PW) and creates CUs alice (3) and bob (4); logs out. */
static void populate(struct fixture *f)
{
    assert_int_equal(hsm_init_token(f->hsm, NULL, PW(CO_PW), "audit"), CKR_OK);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    assert_int_equal(
        hsm_user_create(f->conn, HSM_USER_CU, "alice", PW(ALICE_PW), NULL),
        CKR_OK);
    assert_int_equal(
        hsm_user_create(f->conn, HSM_USER_CU, "bob", PW(BOB_PW), NULL), CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
}

static hsm_audit_check_t verify_as_co(struct fixture *f)
{
    hsm_audit_check_t c;

    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    assert_int_equal(hsm_audit_verify(f->conn, &c), CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    return c;
}

/* ------------------------------------------------------------ events */

static void test_user_events(void **state)
{
    struct fixture *f = *state;
    size_t i = 0;

    assert_int_equal(count_recs(f), 0); /* a fresh store: an empty log */

    /* activation through C_InitToken */
    assert_int_equal(hsm_init_token(f->hsm, NULL, PW(CO_PW), "audit"), CKR_OK);
    EXPECT(f, &i, {"activate", 1, 1, CKR_OK});

    /* login, a failed login by an unknown name (user 0), logout */
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("wrongpw1")),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, "nobody", PW(CO_PW)),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    EXPECT(f, &i, {"login", 1, 0, CKR_PIN_INCORRECT},
           {"login", 0, 0, CKR_PIN_INCORRECT}, {"login", 1, 0, CKR_OK});
    /* a login while logged in tries no password: no record */
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)),
                     CKR_USER_ALREADY_LOGGED_IN);
    assert_int_equal(count_recs(f), i);

    /* users: create (both calls), password reset, delete */
    assert_int_equal(
        hsm_user_create(f->conn, HSM_USER_CU, "alice", PW(ALICE_PW), NULL),
        CKR_OK);
    assert_int_equal(hsm_init_pin(f->conn, "bob", PW(BOB_PW)), CKR_OK);
    assert_int_equal(hsm_user_create(f->conn, HSM_USER_CO, "officer2",
                                     PW("officer2pw"), NULL),
                     CKR_OK);
    assert_int_equal(hsm_init_pin(f->conn, "bob", PW("bobpass2")), CKR_OK);
    assert_int_equal(hsm_user_set_password(f->conn, "alice", PW("alicepw2")),
                     CKR_OK);
    assert_int_equal(hsm_user_delete(f->conn, "officer2"), CKR_OK);
    EXPECT(f, &i, {"create_user", 1, 3, CKR_OK}, {"create_user", 1, 4, CKR_OK},
           {"create_user", 1, 5, CKR_OK}, {"change_password", 1, 4, CKR_OK},
           {"change_password", 1, 3, CKR_OK}, {"delete_user", 1, 5, CKR_OK});

    /* refused management changes write nothing */
    assert_int_equal(hsm_user_delete(f->conn, "admin"), CKR_ACTION_PROHIBITED);
    assert_int_equal(
        hsm_user_create(f->conn, HSM_USER_CU, "alice", PW(ALICE_PW), NULL),
        CKR_PIN_INVALID);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_USER_NOT_LOGGED_IN);
    EXPECT(f, &i, {"logout", 1, 0, CKR_OK},
           {"logout", 0, 0, CKR_USER_NOT_LOGGED_IN});

    /* lockout: the fifth failure locks, with its own record */
    for (int k = 0; k < 5; k++)
        assert_int_equal(
            hsm_login(f->conn, HSM_LOGIN_USER, "bob", PW("wrongpw1")),
            CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "bob", PW("bobpass2")),
                     CKR_PIN_LOCKED);
    EXPECT(
        f, &i, {"login", 4, 0, CKR_PIN_INCORRECT},
        {"login", 4, 0, CKR_PIN_INCORRECT}, {"login", 4, 0, CKR_PIN_INCORRECT},
        {"login", 4, 0, CKR_PIN_INCORRECT}, {"login", 4, 0, CKR_PIN_INCORRECT},
        {"lockout", 4, 4, CKR_PIN_LOCKED}, {"login", 4, 0, CKR_PIN_LOCKED});

    /* a user's own password change (C_SetPIN), good and wrong old */
    assert_int_equal(
        hsm_set_password(f->conn, "alice", PW("wrongpw1"), PW("alicepw3")),
        CKR_PIN_INCORRECT);
    assert_int_equal(
        hsm_set_password(f->conn, "alice", PW("alicepw2"), PW("alicepw3")),
        CKR_OK);
    EXPECT(f, &i, {"change_password", 3, 3, CKR_PIN_INCORRECT},
           {"change_password", 3, 3, CKR_OK});

    /* re-initialization: a wrong CO password, then the real thing */
    assert_int_equal(hsm_init_token(f->hsm, NULL, PW("wrongpw1"), "again"),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_init_token(f->hsm, NULL, PW(CO_PW), "again"), CKR_OK);
    EXPECT(f, &i, {"reinit_token", 1, 0, CKR_PIN_INCORRECT},
           {"reinit_token", 1, 0, CKR_OK});

    assert_int_equal(verify_as_co(f).status, HSM_AUDIT_INTACT);
}

static void test_activation_by_change_password(void **state)
{
    struct fixture *f = *state;
    hsm_user_info_t *u = NULL;
    size_t n = 0, i = 0;

    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(HSM_PRECO_PASSWORD)), CKR_OK);
    /* a PRECO may not set anyone else's password */
    assert_int_equal(hsm_user_set_password(f->conn, "app_user", PW("apppass1")),
                     CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_user_set_password(f->conn, "admin", PW("short")),
                     CKR_PIN_LEN_RANGE);
    assert_int_equal(hsm_user_set_password(f->conn, "admin", PW(CO_PW)),
                     CKR_OK);
    assert_int_equal(hsm_conn_user_type(f->conn, NULL), HSM_USER_CO);
    assert_int_equal(hsm_user_list(f->conn, &u, &n), CKR_OK);
    assert_int_equal(n, 2);
    assert_true(u[0].primary);
    assert_int_equal(u[0].type, HSM_USER_CO);
    free(u);
    EXPECT(f, &i, {"login", 1, 0, CKR_OK},
           {"change_password", 1, 2, CKR_USER_NOT_LOGGED_IN},
           {"activate", 1, 1, CKR_PIN_LEN_RANGE}, {"activate", 1, 1, CKR_OK});
    /* the CO gives the AU a password: it can log in then */
    assert_int_equal(hsm_user_set_password(f->conn, "app_user", PW("apppass1")),
                     CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_AU, NULL, PW("apppass1")),
                     CKR_OK);
    EXPECT(f, &i, {"change_password", 1, 2, CKR_OK}, {"logout", 1, 0, CKR_OK},
           {"login", 2, 0, CKR_OK});
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(verify_as_co(f).status, HSM_AUDIT_INTACT);
}

static void test_key_events(void **state)
{
    struct fixture *f = *state;
    hsm_oid_t data, sess, key, copy;
    CK_ATTRIBUTE set = {CKA_LABEL, "renamed", 7};
    CK_ATTRIBUTE copy_tmpl = {CKA_LABEL, "copy", 4};
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_ULONG len = 16;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE gen_tmpl[] = {
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {CKA_TOKEN, &yes, sizeof(yes)},
    };
    hsm_oid_t genkey = 0;
    size_t i;
    CK_RV rv;

    populate(f);
    i = count_recs(f);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW(ALICE_PW)),
                     CKR_OK);
    assert_int_equal(make_data(f, "data", true, &data), CKR_OK);
    assert_int_equal(make_secret(f, &key), CKR_OK);
    /* session objects are not audited */
    assert_int_equal(make_data(f, "sess", false, &sess), CKR_OK);
    assert_int_equal(hsm_object_destroy(f->conn, f->sid, sess), CKR_OK);
    assert_int_equal(hsm_object_set(f->conn, f->sid, data, &set, 1), CKR_OK);
    assert_int_equal(
        hsm_object_copy(f->conn, f->sid, data, &copy_tmpl, 1, &copy), CKR_OK);
    assert_int_equal(hsm_object_share(f->conn, key, 4, true), CKR_OK);
    assert_int_equal(hsm_object_share(f->conn, key, 4, false), CKR_OK);
    assert_int_equal(hsm_object_destroy(f->conn, f->sid, copy), CKR_OK);
    EXPECT(f, &i, {"login", 3, 0, CKR_OK}, {"create", 3, (long long)data, 0},
           {"import", 3, (long long)key, 0},
           {"set_attribute", 3, (long long)data, 0},
           {"copy", 3, (long long)copy, 0}, {"share", 3, (long long)key, 0},
           {"unshare", 3, (long long)key, 0},
           {"destroy", 3, (long long)copy, 0});

    /* refused key changes write nothing: not the owner, not visible */
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "bob", PW(BOB_PW)),
                     CKR_OK);
    assert_int_equal(hsm_object_share(f->conn, key, 4, true),
                     CKR_OBJECT_HANDLE_INVALID);
    assert_int_equal(hsm_object_destroy(f->conn, f->sid, data),
                     CKR_OBJECT_HANDLE_INVALID);
    EXPECT(f, &i, {"logout", 3, 0, CKR_OK}, {"login", 4, 0, CKR_OK});

    /* key generation, when the crypto core has the mechanism */
    rv = t_generate_key(f->conn, f->sid, &gen, gen_tmpl, 2, &genkey);
    if (rv == CKR_OK) {
        EXPECT(f, &i, {"generate", 4, (long long)genkey, 0});
    } else {
        fprintf(stderr,
                "note: AES key generation gave 0x%lx: its record "
                "is not checked\n",
                (unsigned long)rv);
        assert_int_equal(count_recs(f), i);
    }
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(verify_as_co(f).status, HSM_AUDIT_INTACT);
}

/* No field of any record holds a password. */
static void test_no_secret_in_records(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    const char *secrets[] = {CO_PW, ALICE_PW, BOB_PW};
    int rows = 0;

    populate(f);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW(BOB_PW)),
                     CKR_PIN_INCORRECT);
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT hsm_id || ' ' || user_id || ' ' || "
                           "operation || ' ' || object_id || ' ' || result "
                           "|| ' ' || hex(hash) FROM audit",
                           -1, &s, NULL),
        SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *row = (const char *)sqlite3_column_text(s, 0);

        rows++;
        for (size_t k = 0; k < sizeof(secrets) / sizeof(secrets[0]); k++)
            assert_null(strstr(row, secrets[k]));
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    assert_true(rows >= 6);
}

/* ------------------------------------------------------------ rollback */

static void test_rolled_back_change_leaves_no_record(void **state)
{
    struct fixture *f = *state;
    hsm_user_info_t *u = NULL;
    hsm_oid_t oid;
    size_t before, n = 0;

    populate(f);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    /* Make the last step of every change fail: the generation bump comes
     * after the audit record in the transaction, so both roll back. */
    outside_exec(f, "CREATE TRIGGER no_bump BEFORE UPDATE ON meta "
                    "WHEN NEW.key = 'generation' "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END;");
    before = count_recs(f);
    assert_int_not_equal(
        hsm_user_create(f->conn, HSM_USER_CU, "carol", PW("carolpw1"), NULL),
        CKR_OK);
    assert_int_not_equal(hsm_user_delete(f->conn, "bob"), CKR_OK);
    assert_int_equal(count_recs(f), before);
    assert_int_equal(hsm_user_list(f->conn, &u, &n), CKR_OK);
    assert_int_equal(n, 4); /* no carol, bob still there */
    free(u);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);

    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW(ALICE_PW)),
                     CKR_OK);
    before = count_recs(f);
    assert_int_not_equal(make_data(f, "lost", true, &oid), CKR_OK);
    assert_int_equal(count_recs(f), before);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);

    outside_exec(f, "DROP TRIGGER no_bump;");
    assert_int_equal(verify_as_co(f).status, HSM_AUDIT_INTACT);
}

/* ------------------------------------------------------------ tampering */

/* A store with a few records; returns how many. */
static size_t some_records(struct fixture *f)
{
    populate(f);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "bob", PW("wrong11")),
                     CKR_PIN_INCORRECT);
    return count_recs(f);
}

static void expect_broken(struct fixture *f, hsm_audit_status_t status,
                          uint64_t first_bad)
{
    hsm_audit_check_t c = verify_as_co(f);

    if (c.status != status || c.first_bad != first_bad) {
        fprintf(stderr, "verify: status %d record %llu, want %d record %llu\n",
                c.status, (unsigned long long)c.first_bad, status,
                (unsigned long long)first_bad);
        fail();
    }
}

static void test_intact_chain(void **state)
{
    struct fixture *f = *state;
    size_t n = some_records(f);
    hsm_audit_check_t c = verify_as_co(f);

    assert_int_equal(c.status, HSM_AUDIT_INTACT);
    /* the CO login before the check is recorded and checked too */
    assert_int_equal(c.records, n + 1);
}

static void test_edited_field(void **state)
{
    struct fixture *f = *state;

    /* record 6 is bob's failed login: make it look like a success */
    assert_int_equal(some_records(f), 6);
    outside_exec(f, "UPDATE audit SET result = 0 WHERE seq = 6");
    expect_broken(f, HSM_AUDIT_HASH_MISMATCH, 6);
}

static void test_edited_operation_and_user(void **state)
{
    struct fixture *f = *state;

    some_records(f);
    outside_exec(f, "UPDATE audit SET user_id = 4 WHERE seq = 5");
    outside_exec(f, "UPDATE audit SET operation = 'logout' WHERE seq = 6");
    expect_broken(f, HSM_AUDIT_HASH_MISMATCH, 5);
}

static void test_edited_time(void **state)
{
    struct fixture *f = *state;

    some_records(f);
    outside_exec(f, "UPDATE audit SET time = time - 3600 WHERE seq = 2");
    expect_broken(f, HSM_AUDIT_HASH_MISMATCH, 2);
}

static void test_malformed_field(void **state)
{
    struct fixture *f = *state;

    some_records(f);
    outside_exec(f, "UPDATE audit SET hash = x'00' WHERE seq = 3");
    expect_broken(f, HSM_AUDIT_MALFORMED, 3);
}

static void test_deleted_record(void **state)
{
    struct fixture *f = *state;

    some_records(f);
    outside_exec(f, "DELETE FROM audit WHERE seq = 4");
    expect_broken(f, HSM_AUDIT_MISSING, 4);
}

static void test_deleted_first_record(void **state)
{
    struct fixture *f = *state;

    some_records(f);
    outside_exec(f, "DELETE FROM audit WHERE seq = 1");
    expect_broken(f, HSM_AUDIT_MISSING, 1);
}

static void test_deleted_last_records(void **state)
{
    struct fixture *f = *state;
    size_t n = some_records(f);
    char sql[96];

    snprintf(sql, sizeof(sql), "DELETE FROM audit WHERE seq >= %zu", n - 1);
    outside_exec(f, sql);
    /* the CO login of the check becomes record n + 1: n - 1 is the first
     * missing one */
    expect_broken(f, HSM_AUDIT_MISSING, n - 1);
}

static void test_truncated_log(void **state)
{
    struct fixture *f = *state;
    hsm_audit_check_t c;
    size_t n;

    some_records(f);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    n = count_recs(f);
    /* the tail is cut while the CO is logged in: no record comes after */
    {
        char sql[64];

        snprintf(sql, sizeof(sql), "DELETE FROM audit WHERE seq = %zu", n);
        outside_exec(f, sql);
    }
    assert_int_equal(hsm_audit_verify(f->conn, &c), CKR_OK);
    assert_int_equal(c.status, HSM_AUDIT_TRUNCATED);
    assert_int_equal(c.first_bad, n);
}

static void test_swapped_records(void **state)
{
    struct fixture *f = *state;

    some_records(f);
    outside_exec(f, "UPDATE audit SET seq = 1000 WHERE seq = 3;"
                    "UPDATE audit SET seq = 3 WHERE seq = 4;"
                    "UPDATE audit SET seq = 4 WHERE seq = 1000;");
    expect_broken(f, HSM_AUDIT_HASH_MISMATCH, 3);
}

static void test_inserted_record(void **state)
{
    struct fixture *f = *state;
    size_t n = some_records(f);
    hsm_audit_check_t c;
    char sql[256];

    /* a forged record in the middle (renumbering what follows) */
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    snprintf(sql, sizeof(sql),
             "UPDATE audit SET seq = seq + 1000 WHERE seq >= 4;"
             "UPDATE audit SET seq = seq - 999 WHERE seq >= 1000;"
             "INSERT INTO audit VALUES(4, 0, 'x', 1, 'login', 0, 0, "
             "zeroblob(32), '', 2);");
    outside_exec(f, sql);
    assert_int_equal(hsm_audit_verify(f->conn, &c), CKR_OK);
    assert_int_equal(c.status, HSM_AUDIT_HASH_MISMATCH);
    assert_int_equal(c.first_bad, 4);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    (void)n;
}

static void test_appended_record(void **state)
{
    struct fixture *f = *state;
    hsm_audit_check_t c;
    size_t n;
    char sql[256];

    some_records(f);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    n = count_recs(f);
    /* a copy of the last record as a new one: its hash cannot match */
    snprintf(sql, sizeof(sql),
             "INSERT INTO audit SELECT seq + 1, time, hsm_id, user_id, "
             "operation, object_id, result, hash, peer, fmt FROM audit "
             "WHERE seq = %zu",
             n);
    outside_exec(f, sql);
    assert_int_equal(hsm_audit_verify(f->conn, &c), CKR_OK);
    assert_int_equal(c.status, HSM_AUDIT_HASH_MISMATCH);
    assert_int_equal(c.first_bad, n + 1);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
}

/* The log survives a close and reopen, and appends go on chaining. */
static void test_chain_across_reopen(void **state)
{
    struct fixture *f = *state;
    size_t n = some_records(f);

    hsm_close(f->hsm);
    assert_int_equal(hsm_open(&f->cfg, &f->hsm), CKR_OK);
    assert_int_equal(hsm_conn_open(f->hsm, &f->conn), CKR_OK);
    assert_int_equal(hsm_session_open(f->conn, true, &f->sid), CKR_OK);
    assert_int_equal(count_recs(f), n);
    assert_int_equal(verify_as_co(f).status, HSM_AUDIT_INTACT);
}

/* ------------------------------------------------------------ access */

static void test_who_reads_the_log(void **state)
{
    struct fixture *f = *state;
    hsm_audit_record_t *r = NULL;
    hsm_audit_check_t c;
    size_t n = 0;

    populate(f);
    /* nobody logged in, a CU, the AU: refused */
    assert_int_equal(hsm_audit_read(f->conn, 0, 10, &r, &n),
                     CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_audit_verify(f->conn, &c), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW(ALICE_PW)),
                     CKR_OK);
    assert_int_not_equal(hsm_audit_read(f->conn, 0, 10, &r, &n), CKR_OK);
    assert_int_not_equal(hsm_audit_verify(f->conn, &c), CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);

    /* the CO reads it in pages */
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    assert_int_equal(hsm_audit_read(f->conn, 0, 0, &r, &n), CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_audit_read(f->conn, 0, 3, &r, &n), CKR_OK);
    assert_int_equal(n, 3);
    assert_int_equal(r[0].seq, 1);
    assert_string_equal(r[0].op, "activate");
    assert_int_equal(r[0].user, 1);
    assert_int_equal(strlen(r[0].hsm_id), 16);
    assert_int_equal(r[2].seq, 3);
    assert_string_equal(r[2].op, "create_user");
    assert_int_equal(r[2].oid, 3);
    free(r);
    assert_int_equal(hsm_audit_read(f->conn, 3, 100, &r, &n), CKR_OK);
    assert_true(n >= 3);
    assert_int_equal(r[0].seq, 4);
    free(r);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
}

/* ------------------------------------------------------------ key listing */

static void test_key_list_and_info(void **state)
{
    struct fixture *f = *state;
    uint8_t d1[HSM_DIGEST_LEN], d2[HSM_DIGEST_LEN], d3[HSM_DIGEST_LEN];
    hsm_key_ref_t *keys = NULL;
    hsm_uid_t owner = 0, *shared = NULL;
    hsm_oid_t a1, a2;
    size_t n = 0;

    populate(f);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW(ALICE_PW)),
                     CKR_OK);
    assert_int_equal(make_data(f, "a1", true, &a1), CKR_OK);
    assert_int_equal(make_secret(f, &a2), CKR_OK);
    assert_int_equal(hsm_key_list(f->conn, 3, &keys, &n, d1), CKR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(keys[0].oid, a1);
    assert_true(keys[0].owned);
    assert_int_equal(keys[1].oid, a2);
    free(keys);
    /* a CU lists its own key set only */
    assert_int_equal(hsm_key_list(f->conn, 4, &keys, &n, d2),
                     CKR_ACTION_PROHIBITED);
    /* sharing changes the digest; unsharing restores it */
    assert_int_equal(hsm_object_share(f->conn, a2, 4, true), CKR_OK);
    assert_int_equal(hsm_key_list(f->conn, 3, &keys, &n, d2), CKR_OK);
    free(keys);
    assert_memory_not_equal(d1, d2, sizeof(d1));
    assert_int_equal(hsm_key_info(f->conn, a2, &owner, &shared, &n), CKR_OK);
    assert_int_equal(owner, 3);
    assert_int_equal(n, 1);
    assert_int_equal(shared[0], 4);
    free(shared);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);

    /* bob sees it as shared (s); the CO sees ids, never values */
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "bob", PW(BOB_PW)),
                     CKR_OK);
    assert_int_equal(hsm_key_list(f->conn, 4, &keys, &n, d3), CKR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(keys[0].oid, a2);
    assert_false(keys[0].owned);
    free(keys);
    assert_int_equal(hsm_key_info(f->conn, a1, &owner, &shared, &n),
                     CKR_OBJECT_HANDLE_INVALID);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    assert_int_equal(hsm_key_list(f->conn, 3, &keys, &n, d3), CKR_OK);
    assert_int_equal(n, 2);
    free(keys);
    assert_memory_equal(d2, d3, sizeof(d2)); /* same set, same digest */
    assert_int_equal(hsm_key_info(f->conn, a1, &owner, &shared, &n), CKR_OK);
    assert_int_equal(owner, 3);
    assert_int_equal(n, 0);
    assert_int_equal(hsm_key_info(f->conn, 999, &owner, &shared, &n),
                     CKR_OBJECT_HANDLE_INVALID);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    /* not logged in: no sync status */
    assert_int_equal(hsm_key_list(f->conn, 3, &keys, &n, d3),
                     CKR_USER_NOT_LOGGED_IN);
}

static void test_set_password_rules(void **state)
{
    struct fixture *f = *state;

    populate(f);
    assert_int_equal(hsm_user_set_password(f->conn, "bob", PW("bobpass9")),
                     CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW(ALICE_PW)),
                     CKR_OK);
    /* a CU: its own only */
    assert_int_not_equal(hsm_user_set_password(f->conn, "bob", PW("bobpass9")),
                         CKR_OK);
    assert_int_equal(hsm_user_set_password(f->conn, "nobody", PW("abcdefg1")),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_user_set_password(f->conn, "ALICE", PW("alicepw9")),
                     CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW(ALICE_PW)),
                     CKR_PIN_INCORRECT);
    /* a CO: anyone's, and it unlocks */
    for (int k = 0; k < 4; k++)
        assert_int_equal(
            hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("wrongpw1")),
            CKR_PIN_INCORRECT);
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw9")),
        CKR_PIN_LOCKED);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    assert_int_equal(hsm_user_set_password(f->conn, "alice", PW("alicepw8")),
                     CKR_OK);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw8")), CKR_OK);
    /* a logged-in user cannot be deleted (another connection) */
    {
        hsm_conn_t *co = NULL;

        assert_int_equal(hsm_conn_open(f->hsm, &co), CKR_OK);
        assert_int_equal(hsm_login(co, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
        assert_int_equal(hsm_user_delete(co, "alice"), CKR_ACTION_PROHIBITED);
        assert_int_equal(hsm_logout(f->conn), CKR_OK);
        assert_int_equal(hsm_user_delete(co, "alice"), CKR_OK);
        hsm_conn_close(co);
    }
}

/* ------------------------------------------------------------ peers */

/* The audit records of the CO's reads, by hsm_audit_read (CO logged in by
 * the caller). */
static size_t audit_read_all(hsm_conn_t *conn, hsm_audit_record_t **recs)
{
    size_t n = 0;

    assert_int_equal(hsm_audit_read(conn, 0, HSM_AUDIT_READ_MAX, recs, &n),
                     CKR_OK);
    return n;
}

/* Each connection's records carry its own peer; the chain covers it. */
static void test_peer_recorded(void **state)
{
    struct fixture *f = *state;
    hsm_conn_t *other = NULL;
    hsm_audit_record_t *r = NULL;
    hsm_audit_check_t c;
    size_t n, first;

    populate(f); /* before any peer: records with an empty one */
    first = count_recs(f);
    assert_int_equal(hsm_conn_set_peer(f->conn, "uid=1000 pid=42"), CKR_OK);
    assert_int_equal(hsm_conn_open(f->hsm, &other), CKR_OK);
    assert_int_equal(hsm_conn_set_peer(other, "CN=client two,O=Example"),
                     CKR_OK);
    assert_int_equal(hsm_login(other, HSM_LOGIN_USER, "bob", PW("wrong11")),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    n = audit_read_all(f->conn, &r);
    assert_int_equal(n, first + 2);
    for (size_t i = 0; i < first; i++)
        assert_string_equal(r[i].peer, "");
    assert_string_equal(r[first].op, "login");
    assert_int_equal(r[first].result, CKR_PIN_INCORRECT);
    assert_string_equal(r[first].peer, "CN=client two,O=Example");
    assert_int_equal(r[first + 1].result, CKR_OK);
    assert_string_equal(r[first + 1].peer, "uid=1000 pid=42");
    free(r);
    assert_int_equal(hsm_audit_verify(f->conn, &c), CKR_OK);
    assert_int_equal(c.status, HSM_AUDIT_INTACT);

    /* Cleared: records name no peer again. */
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    assert_int_equal(hsm_conn_set_peer(f->conn, NULL), CKR_OK);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    n = audit_read_all(f->conn, &r);
    assert_string_equal(r[n - 1].peer, "");
    assert_string_equal(r[n - 2].peer, "uid=1000 pid=42"); /* the logout */
    free(r);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    hsm_conn_close(other);
}

/* A login that ends with its connection (nimbusd cut the client off
 * after io_timeout, the client died, the application's C_Finalize) is
 * recorded as a logout with CKR_SESSION_CLOSED, naming the connection's
 * peer; a connection that was not logged in leaves no record. */
static void test_conn_close_ends_login(void **state)
{
    struct fixture *f = *state;
    hsm_conn_t *other = NULL, *idle = NULL;
    hsm_audit_record_t *r = NULL;
    hsm_audit_check_t c;
    size_t n, before;

    populate(f);
    assert_int_equal(hsm_conn_open(f->hsm, &other), CKR_OK);
    assert_int_equal(hsm_conn_set_peer(other, "uid=1000 pid=77"), CKR_OK);
    assert_int_equal(hsm_login(other, HSM_LOGIN_USER, "bob", PW(BOB_PW)),
                     CKR_OK);
    assert_int_equal(hsm_conn_open(f->hsm, &idle), CKR_OK);
    assert_int_equal(hsm_conn_set_peer(idle, "uid=1001 pid=78"), CKR_OK);
    before = count_recs(f);
    hsm_conn_close(idle);
    assert_int_equal(count_recs(f), before);
    hsm_conn_close(other);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    n = audit_read_all(f->conn, &r);
    assert_int_equal(n, before + 2); /* the end of bob's login, the CO's */
    assert_string_equal(r[before].op, "logout");
    assert_int_equal(r[before].result, CKR_SESSION_CLOSED);
    assert_string_equal(r[before].peer, "uid=1000 pid=77");
    assert_string_equal(r[before + 1].op, "login");
    assert_string_equal(r[before + 1].peer, "");
    free(r);
    assert_int_equal(hsm_audit_verify(f->conn, &c), CKR_OK);
    assert_int_equal(c.status, HSM_AUDIT_INTACT);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
}

/* A peer that does not fit, or would break a log line, is refused and
 * leaves the one set before. */
static void test_peer_hostile(void **state)
{
    struct fixture *f = *state;
    char big[HSM_PEER_MAX + 2];
    hsm_audit_record_t *r = NULL;
    size_t n;

    populate(f);
    assert_int_equal(hsm_conn_set_peer(f->conn, "uid=1"), CKR_OK);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(hsm_conn_set_peer(f->conn, big), CKR_ARGUMENTS_BAD);
    big[HSM_PEER_MAX] = '\0'; /* exactly the limit fits */
    assert_int_equal(hsm_conn_set_peer(f->conn, big), CKR_OK);
    assert_int_equal(hsm_conn_set_peer(f->conn, "uid=1\nuser 1 login ok"),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_conn_set_peer(f->conn, "tab\there"),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_conn_set_peer(f->conn, "del\x7f"), CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    n = audit_read_all(f->conn, &r);
    assert_int_equal(strlen(r[n - 1].peer), HSM_PEER_MAX);
    free(r);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
}

/* The peer is under the hash: editing it, or turning the record back into
 * the format without a peer, is found. */
static void test_peer_edited(void **state)
{
    struct fixture *f = *state;
    char sql[256];
    size_t n;

    populate(f);
    assert_int_equal(hsm_conn_set_peer(f->conn, "uid=1000 pid=42"), CKR_OK);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_USER, "bob", PW("wrong11")),
                     CKR_PIN_INCORRECT);
    n = count_recs(f);
    snprintf(sql, sizeof(sql),
             "UPDATE audit SET peer = 'uid=0 pid=1' WHERE seq = %zu", n);
    outside_exec(f, sql);
    expect_broken(f, HSM_AUDIT_HASH_MISMATCH, n);
    snprintf(sql, sizeof(sql),
             "UPDATE audit SET peer = '', fmt = 1 WHERE seq = %zu", n);
    outside_exec(f, sql);
    expect_broken(f, HSM_AUDIT_MALFORMED, n);
    snprintf(sql, sizeof(sql),
             "UPDATE audit SET peer = 'uid=1000 pid=42', fmt = 7 "
             "WHERE seq = %zu",
             n);
    outside_exec(f, sql);
    expect_broken(f, HSM_AUDIT_MALFORMED, n);
}

/* Writes a u64 big-endian. */
static size_t be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
    return 8;
}

/*
 * Turns the store into what a schema 3 build left: the audit table
 * without the peer and format columns, every record hashed in the format
 * of then (written out here independently of audit.c), the head and the
 * schema version to match.
 */
static void make_schema_3(struct fixture *f)
{
    uint8_t prev[32] = {0}, head[40];
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL, *u = NULL;
    uint64_t seq = 0;

    assert_int_equal(crypto_init(), CKR_OK); /* the token is closed */
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT seq, time, hsm_id, user_id, "
                                        "operation, object_id, result FROM "
                                        "audit ORDER BY seq",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "UPDATE audit SET hash = ?1 WHERE "
                                        "seq = ?2",
                                        -1, &u, NULL),
                     SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
        uint8_t buf[256];
        size_t p = 0, len;
        uint32_t user = (uint32_t)sqlite3_column_int64(s, 3);

        memcpy(buf, prev, 32);
        p = 32;
        seq = (uint64_t)sqlite3_column_int64(s, 0);
        p += be64(buf + p, seq);
        p += be64(buf + p, (uint64_t)sqlite3_column_int64(s, 1));
        len = (size_t)sqlite3_column_bytes(s, 2);
        buf[p++] = (uint8_t)len;
        memcpy(buf + p, sqlite3_column_text(s, 2), len);
        p += len;
        buf[p++] = (uint8_t)(user >> 24);
        buf[p++] = (uint8_t)(user >> 16);
        buf[p++] = (uint8_t)(user >> 8);
        buf[p++] = (uint8_t)user;
        len = (size_t)sqlite3_column_bytes(s, 4);
        buf[p++] = (uint8_t)len;
        memcpy(buf + p, sqlite3_column_text(s, 4), len);
        p += len;
        p += be64(buf + p, (uint64_t)sqlite3_column_int64(s, 5));
        p += be64(buf + p, (uint64_t)sqlite3_column_int64(s, 6));
        assert_int_equal(crypto_sha256(buf, p, prev), CKR_OK);
        sqlite3_bind_blob(u, 1, prev, 32, SQLITE_STATIC);
        sqlite3_bind_int64(u, 2, (int64_t)seq);
        assert_int_equal(sqlite3_step(u), SQLITE_DONE);
        sqlite3_reset(u);
    }
    sqlite3_finalize(s);
    sqlite3_finalize(u);
    be64(head, seq);
    memcpy(head + 8, prev, 32);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "UPDATE meta SET value = ?1 WHERE "
                                        "key = 'audit_head'",
                                        -1, &u, NULL),
                     SQLITE_OK);
    sqlite3_bind_blob(u, 1, head, sizeof(head), SQLITE_STATIC);
    assert_int_equal(sqlite3_step(u), SQLITE_DONE);
    sqlite3_finalize(u);
    assert_int_equal(sqlite3_exec(db,
                                  "ALTER TABLE audit DROP COLUMN peer;"
                                  "ALTER TABLE audit DROP COLUMN fmt;"
                                  /* and what schema 5 added */
                                  "DROP TABLE quorum_approvals;"
                                  "DROP TABLE quorum_tokens;"
                                  "DROP TABLE quorum_m;"
                                  "ALTER TABLE users DROP COLUMN mofn_pubkey;"
                                  "ALTER TABLE users DROP COLUMN twofa;"
                                  "DROP TABLE cluster_ids;"
                                  "DROP TABLE cluster_origins;"
                                  "DROP TABLE cluster_applied;"
                                  "ALTER TABLE objects DROP COLUMN version;"
                                  "UPDATE meta SET value = 3 WHERE key = "
                                  "'schema_version';"
                                  "COMMIT",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    crypto_fini();
}

/* A log written before peers were kept: the migration keeps it verifying,
 * and the records after it carry peers. */
static void test_peer_migration(void **state)
{
    struct fixture *f = *state;
    hsm_audit_record_t *r = NULL;
    hsm_audit_check_t c;
    size_t old, n;
    char sql[128];

    old = some_records(f);
    hsm_close(f->hsm);
    make_schema_3(f);
    assert_int_equal(hsm_open(&f->cfg, &f->hsm), CKR_OK);
    assert_int_equal(hsm_conn_open(f->hsm, &f->conn), CKR_OK);
    assert_int_equal(hsm_session_open(f->conn, true, &f->sid), CKR_OK);
    assert_int_equal(hsm_conn_set_peer(f->conn, "uid=1000 pid=42"), CKR_OK);
    assert_int_equal(hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    assert_int_equal(hsm_audit_verify(f->conn, &c), CKR_OK);
    assert_int_equal(c.status, HSM_AUDIT_INTACT);
    n = audit_read_all(f->conn, &r);
    assert_int_equal(n, old + 1);
    assert_string_equal(r[old - 1].peer, "");
    assert_string_equal(r[old].peer, "uid=1000 pid=42");
    free(r);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    /* An old record is still under its old hash. */
    snprintf(sql, sizeof(sql),
             "UPDATE audit SET operation = 'logout' WHERE seq = 2");
    outside_exec(f, sql);
    expect_broken(f, HSM_AUDIT_HASH_MISMATCH, 2);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_user_events),
        T(test_activation_by_change_password),
        T(test_key_events),
        T(test_no_secret_in_records),
        T(test_rolled_back_change_leaves_no_record),
        T(test_intact_chain),
        T(test_edited_field),
        T(test_edited_operation_and_user),
        T(test_edited_time),
        T(test_malformed_field),
        T(test_deleted_record),
        T(test_deleted_first_record),
        T(test_deleted_last_records),
        T(test_truncated_log),
        T(test_swapped_records),
        T(test_inserted_record),
        T(test_appended_record),
        T(test_chain_across_reopen),
        T(test_who_reads_the_log),
        T(test_key_list_and_info),
        T(test_set_password_rules),
        T(test_peer_recorded),
        T(test_conn_close_ends_login),
        T(test_peer_hostile),
        T(test_peer_edited),
        T(test_peer_migration),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
