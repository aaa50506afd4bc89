/*
 * test_store.c - unit tests of the SQLite store (src/store/store.c).
 *
 * Each test gets a fresh directory from mkdtemp. SQLite is used directly
 * only to look at or damage the file from outside, as another program
 * would (schema version row, a future version, EXPLAIN QUERY PLAN).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/store.h"

/* User types as the core stores them (only the integers matter here). */
#define T_PRECO 0
#define T_CO 1
#define T_CU 2
#define T_AU 3

struct fx {
    char dir[PATH_MAX - 64];
    char path[PATH_MAX];
    store_t *st;
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");
    int n;

    if (f == NULL) {
        return -1;
    }
    n = snprintf(f->dir, sizeof(f->dir), "%s/nimbus-store-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= sizeof(f->dir) || mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/token.db", f->dir);
    *state = f;
    return 0;
}

static void remove_db(const char *path)
{
    char p[PATH_MAX + 8];

    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-journal", path);
    unlink(p);
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    store_close(f->st);
    remove_db(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Opens the fixture's store, expecting a new file. */
static store_t *open_new(struct fx *f)
{
    bool created = false;

    assert_int_equal(store_open(f->path, &f->st, &created), CKR_OK);
    assert_non_null(f->st);
    assert_true(created);
    return f->st;
}

static void reopen(struct fx *f)
{
    bool created = true;

    store_close(f->st);
    f->st = NULL;
    assert_int_equal(store_open(f->path, &f->st, &created), CKR_OK);
    assert_false(created);
}

/* Runs one SQL statement on the file from outside the store. */
static void outside_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static int64_t outside_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int64_t v;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_type(s, 0), SQLITE_INTEGER);
    v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void set_label(store_object_t *o, const char *label)
{
    o->label = (uint8_t *)label;
    o->label_len = label ? strlen(label) : 0;
}

static uint64_t add_object(store_t *st, uint32_t owner, CK_ULONG cls,
                           CK_ULONG kt, bool priv, const char *label,
                           const char *ckid)
{
    store_object_t o;
    uint8_t attrs[4] = {1, 2, 3, 4};
    uint64_t id = 0;

    memset(&o, 0, sizeof(o));
    o.owner = owner;
    o.cls = cls;
    o.key_type = kt;
    o.is_private = priv;
    set_label(&o, label);
    o.ckid = (uint8_t *)ckid;
    o.ckid_len = ckid ? strlen(ckid) : 0;
    o.attrs = attrs;
    o.attrs_len = sizeof(attrs);
    assert_int_equal(store_object_insert(st, &o, &id), CKR_OK);
    assert_true(id > 0);
    return id;
}

static size_t find(store_t *st, const store_query_t *q, store_hit_t **hits)
{
    size_t n = 99;

    *hits = NULL;
    assert_int_equal(store_object_find(st, q, hits, &n), CKR_OK);
    return n;
}

/* ------------------------------------------------------------- open */

static void test_open_creates_0600(void **state)
{
    struct fx *f = *state;
    struct stat sb;
    char p[PATH_MAX + 8];
    mode_t old;

    /* A permissive umask must not widen the file. */
    old = umask(0);
    open_new(f);
    umask(old);
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* The side files exist while the store is open and after a write. */
    assert_int_equal(store_meta_set(f->st, "k", (const uint8_t *)"v", 1),
                     CKR_OK);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* The schema version row, an integer. */
    assert_int_equal(outside_int(f->path, "SELECT value FROM meta WHERE "
                                          "key = 'schema_version'"),
                     STORE_SCHEMA_VERSION);
}

static void test_open_pragmas_and_reopen(void **state)
{
    struct fx *f = *state;
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;

    open_new(f);
    /* WAL is a property of the file: another connection sees it. */
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);

    reopen(f);
    reopen(f);
}

static void test_reopen_keeps_data(void **state)
{
    struct fx *f = *state;
    store_user_t u;
    store_object_t o;
    uint8_t *val = NULL;
    size_t len = 0;
    uint64_t oid, gen = 0;
    bool found = false;

    open_new(f);
    assert_int_equal(store_user_insert(f->st, 1, "admin", T_PRECO,
                                       (const uint8_t *)"vvvv", 4, NULL),
                     CKR_OK);
    oid = add_object(f->st, 1, CKO_SECRET_KEY, CKK_AES, true, "k1", "id1");
    assert_int_equal(
        store_meta_set(f->st, "label", (const uint8_t *)"token", 5), CKR_OK);
    assert_int_equal(store_bump_generation(f->st), CKR_OK);

    reopen(f);

    assert_int_equal(store_user_by_id(f->st, 1, &u, &found), CKR_OK);
    assert_true(found);
    assert_string_equal(u.name, "admin");
    assert_int_equal(u.verifier_len, 4);
    assert_memory_equal(u.verifier, "vvvv", 4);
    store_user_clear(&u);

    assert_int_equal(store_object_get(f->st, oid, &o, &found), CKR_OK);
    assert_true(found);
    assert_int_equal(o.label_len, 2);
    assert_memory_equal(o.label, "k1", 2);
    store_object_clear(&o);

    assert_int_equal(store_meta_get(f->st, "label", &val, &len), CKR_OK);
    assert_non_null(val);
    assert_int_equal(len, 5);
    assert_memory_equal(val, "token", 5);
    free(val);

    assert_int_equal(store_generation(f->st, &gen), CKR_OK);
    assert_int_equal(gen, 1);
}

static void test_future_schema_refused(void **state)
{
    struct fx *f = *state;
    char sql[128];
    store_t *st2 = (store_t *)(uintptr_t)1; /* must be reset to NULL */
    bool created = true;

    open_new(f);
    store_close(f->st);
    f->st = NULL;
    snprintf(sql, sizeof(sql),
             "UPDATE meta SET value = %d WHERE key = 'schema_version'",
             STORE_SCHEMA_VERSION + 1);
    outside_exec(f->path, sql);

    assert_int_equal(store_open(f->path, &st2, &created), CKR_DEVICE_ERROR);
    assert_null(st2);
    assert_false(created);

    /* A missing version row is no better. */
    outside_exec(f->path, "DELETE FROM meta WHERE key = 'schema_version'");
    assert_int_equal(store_open(f->path, &st2, NULL), CKR_DEVICE_ERROR);
    assert_null(st2);
}

static void test_corrupt_file_refused(void **state)
{
    struct fx *f = *state;
    uint8_t junk[8192];
    store_t *st2 = NULL;
    bool created = true;
    size_t i;
    int fd;

    for (i = 0; i < sizeof(junk); i++) {
        junk[i] = (uint8_t)(i * 131u + 7u);
    }
    fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);

    assert_int_equal(store_open(f->path, &st2, &created), CKR_DEVICE_ERROR);
    assert_null(st2);
    assert_false(created);
    /* The file was left as it was. */
    {
        struct stat sb;

        assert_int_equal(stat(f->path, &sb), 0);
        assert_int_equal(sb.st_size, sizeof(junk));
    }
}

static void test_foreign_database_refused(void **state)
{
    struct fx *f = *state;
    store_t *st2 = NULL;

    outside_exec(f->path, "CREATE TABLE other(x); INSERT INTO other "
                          "VALUES(1);");
    assert_int_equal(store_open(f->path, &st2, NULL), CKR_DEVICE_ERROR);
    assert_null(st2);
}

static void test_empty_file_is_initialized(void **state)
{
    struct fx *f = *state;
    bool created = false;
    int fd;

    /* A crash between creating the file and the schema commit. */
    fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(store_open(f->path, &f->st, &created), CKR_OK);
    assert_true(created);
}

/* ------------------------------------------------------------- meta */

static void test_meta_and_generation(void **state)
{
    struct fx *f = *state;
    uint8_t *val = (uint8_t *)"x";
    size_t len = 5;
    uint64_t gen = 99;

    open_new(f);
    assert_int_equal(store_meta_get(f->st, "serial", &val, &len), CKR_OK);
    assert_null(val);
    assert_int_equal(len, 0);

    assert_int_equal(store_meta_set(f->st, "serial", NULL, 0), CKR_OK);
    assert_int_equal(store_meta_get(f->st, "serial", &val, &len), CKR_OK);
    assert_non_null(val); /* present, empty */
    assert_int_equal(len, 0);
    free(val);

    assert_int_equal(
        store_meta_set(f->st, "serial", (const uint8_t *)"\0\1\2", 3), CKR_OK);
    assert_int_equal(store_meta_get(f->st, "serial", &val, &len), CKR_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(val, "\0\1\2", 3);
    free(val);

    assert_int_equal(store_generation(f->st, &gen), CKR_OK);
    assert_int_equal(gen, 0);
    assert_int_equal(store_bump_generation(f->st), CKR_OK);
    assert_int_equal(store_begin(f->st, true), CKR_OK);
    assert_int_equal(store_bump_generation(f->st), CKR_OK);
    assert_int_equal(store_commit(f->st), CKR_OK);
    assert_int_equal(store_generation(f->st, &gen), CKR_OK);
    assert_int_equal(gen, 2);
    /* A rolled back bump never happened. */
    assert_int_equal(store_begin(f->st, true), CKR_OK);
    assert_int_equal(store_bump_generation(f->st), CKR_OK);
    store_rollback(f->st);
    assert_int_equal(store_generation(f->st, &gen), CKR_OK);
    assert_int_equal(gen, 2);
}

/* ------------------------------------------------------------ users */

static void test_users(void **state)
{
    struct fx *f = *state;
    store_user_t u, *list = NULL;
    size_t n = 0, i;
    uint32_t id = 0;
    bool found = true;

    open_new(f);
    assert_int_equal(store_user_insert(f->st, 1, "admin", T_PRECO,
                                       (const uint8_t *)"v1", 2, &id),
                     CKR_OK);
    assert_int_equal(id, 1);
    assert_int_equal(store_user_insert(f->st, 2, "app_user", T_AU,
                                       (const uint8_t *)"v2", 2, &id),
                     CKR_OK);
    assert_int_equal(id, 2);
    assert_int_equal(store_user_insert(f->st, 0, "Alice", T_CU,
                                       (const uint8_t *)"v3", 2, &id),
                     CKR_OK);
    assert_int_equal(id, 3);

    /* Names compare without case; the stored spelling comes back. */
    assert_int_equal(store_user_by_name(f->st, "aLiCe", &u, &found), CKR_OK);
    assert_true(found);
    assert_int_equal(u.id, 3);
    assert_int_equal(u.type, T_CU);
    assert_string_equal(u.name, "Alice");
    assert_int_equal(u.failures, 0);
    store_user_clear(&u);
    assert_null(u.verifier);

    /* A duplicate in any case is refused, and changes nothing. */
    assert_int_equal(store_user_insert(f->st, 0, "ALICE", T_CU,
                                       (const uint8_t *)"zz", 2, &id),
                     CKR_FUNCTION_FAILED);
    assert_int_equal(store_user_insert(f->st, 3, "bob", T_CU, NULL, 0, &id),
                     CKR_FUNCTION_FAILED); /* duplicate id */
    /* Bad lengths. */
    assert_int_equal(store_user_insert(f->st, 0, "", T_CU, NULL, 0, &id),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(store_user_insert(f->st, 0,
                                       "a23456789012345678901234567890123",
                                       T_CU, NULL, 0, &id),
                     CKR_ARGUMENTS_BAD);
    /* 31 characters is fine. */
    assert_int_equal(store_user_insert(f->st, 0,
                                       "a234567890123456789012345678901", T_CU,
                                       NULL, 0, &id),
                     CKR_OK);
    assert_int_equal(id, 4);
    assert_int_equal(store_user_insert(f->st, 10, "carol", T_CO, NULL, 0, &id),
                     CKR_OK);
    assert_int_equal(store_user_insert(f->st, 0, "dave", T_CU, NULL, 0, &id),
                     CKR_OK);
    assert_int_equal(id, 11);

    /* Not found leaves u untouched. */
    memset(&u, 0x5a, sizeof(u));
    assert_int_equal(store_user_by_name(f->st, "nobody", &u, &found), CKR_OK);
    assert_false(found);
    assert_int_equal(u.id, 0x5a5a5a5a);
    found = true;
    assert_int_equal(store_user_by_id(f->st, 77, &u, &found), CKR_OK);
    assert_false(found);
    assert_int_equal(u.id, 0x5a5a5a5a);

    /* Ascending id. */
    assert_int_equal(store_user_list(f->st, &list, &n), CKR_OK);
    assert_int_equal(n, 6);
    for (i = 1; i < n; i++) {
        assert_true(list[i - 1].id < list[i].id);
    }
    assert_string_equal(list[0].name, "admin");
    assert_string_equal(list[5].name, "dave");
    assert_memory_equal(list[1].verifier, "v2", 2);
    for (i = 0; i < n; i++) {
        store_user_clear(&list[i]);
    }
    free(list);

    assert_int_equal(store_user_count_type(f->st, T_CU, &n), CKR_OK);
    assert_int_equal(n, 3);
    assert_int_equal(store_user_set_type(f->st, 3, T_CO), CKR_OK);
    assert_int_equal(store_user_count_type(f->st, T_CO, &n), CKR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(store_user_set_type(f->st, 99, T_CO), CKR_FUNCTION_FAILED);

    assert_int_equal(store_user_delete_type(f->st, T_PRECO), CKR_OK);
    assert_int_equal(store_user_count_type(f->st, T_PRECO, &n), CKR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_user_delete(f->st, 11), CKR_OK);
    assert_int_equal(store_user_by_id(f->st, 11, &u, &found), CKR_OK);
    assert_false(found);
    /* The id of a deleted user is not given out again. */
    assert_int_equal(store_user_insert(f->st, 0, "erin", T_CU, NULL, 0, &id),
                     CKR_OK);
    assert_int_equal(id, 12);
    /* The name is free again. */
    assert_int_equal(store_user_insert(f->st, 0, "Dave", T_CU, NULL, 0, &id),
                     CKR_OK);
}

static void test_user_failures(void **state)
{
    struct fx *f = *state;
    store_user_t u;
    uint32_t fails = 99, i;
    bool found = false;

    open_new(f);
    assert_int_equal(store_user_insert(f->st, 0, "alice", T_CU,
                                       (const uint8_t *)"old", 3, NULL),
                     CKR_OK);
    for (i = 1; i <= 3; i++) {
        bool charged = false;

        assert_int_equal(
            store_user_charge_failure(f->st, 1, 3, &fails, &charged), CKR_OK);
        assert_int_equal(fails, i);
        assert_true(charged); /* the last try, too, may be tried */
    }
    /* At the limit: stays there, and says no try was charged. */
    {
        bool charged = true;

        assert_int_equal(
            store_user_charge_failure(f->st, 1, 3, &fails, &charged), CKR_OK);
        assert_int_equal(fails, 3);
        assert_false(charged);
    }
    /* A higher limit lets it go on. */
    assert_int_equal(store_user_charge_failure(f->st, 1, 5, &fails, NULL),
                     CKR_OK);
    assert_int_equal(fails, 4);
    assert_int_equal(store_user_by_name(f->st, "alice", &u, &found), CKR_OK);
    assert_int_equal(u.failures, 4);
    store_user_clear(&u);

    assert_int_equal(store_user_reset_failures(f->st, 1), CKR_OK);
    assert_int_equal(store_user_charge_failure(f->st, 1, 3, &fails, NULL),
                     CKR_OK);
    assert_int_equal(fails, 1);

    /* A new verifier clears the count. */
    assert_int_equal(
        store_user_set_verifier(f->st, 1, (const uint8_t *)"newer", 5), CKR_OK);
    assert_int_equal(store_user_by_id(f->st, 1, &u, &found), CKR_OK);
    assert_true(found);
    assert_int_equal(u.failures, 0);
    assert_int_equal(u.verifier_len, 5);
    assert_memory_equal(u.verifier, "newer", 5);
    store_user_clear(&u);

    /* Inside a caller's transaction it joins it. */
    assert_int_equal(store_begin(f->st, true), CKR_OK);
    assert_int_equal(store_user_charge_failure(f->st, 1, 3, &fails, NULL),
                     CKR_OK);
    assert_int_equal(fails, 1);
    assert_int_equal(store_commit(f->st), CKR_OK);

    assert_int_equal(store_user_charge_failure(f->st, 42, 3, &fails, NULL),
                     CKR_FUNCTION_FAILED);
    assert_int_equal(store_user_set_verifier(f->st, 42, NULL, 0),
                     CKR_FUNCTION_FAILED);
    assert_int_equal(store_user_reset_failures(f->st, 42), CKR_FUNCTION_FAILED);
}

/* ---------------------------------------------------------- objects */

static void test_object_crud(void **state)
{
    struct fx *f = *state;
    store_object_t o, g;
    uint8_t big_attrs[1000];
    const char *evil = "x' OR 1=1; DROP TABLE objects; --";
    uint64_t id1, id2, id3;
    bool found = false;
    size_t i;

    open_new(f);
    for (i = 0; i < sizeof(big_attrs); i++) {
        big_attrs[i] = (uint8_t)i;
    }
    memset(&o, 0, sizeof(o));
    o.owner = 3;
    o.cls = CKO_PRIVATE_KEY;
    o.key_type = CK_UNAVAILABLE_INFORMATION;
    o.is_private = true;
    set_label(&o, evil);
    o.attrs = big_attrs;
    o.attrs_len = sizeof(big_attrs);
    assert_int_equal(store_object_insert(f->st, &o, &id1), CKR_OK);

    assert_int_equal(store_object_get(f->st, id1, &g, &found), CKR_OK);
    assert_true(found);
    assert_int_equal(g.id, id1);
    assert_int_equal(g.owner, 3);
    assert_int_equal(g.cls, CKO_PRIVATE_KEY);
    assert_true(g.key_type == CK_UNAVAILABLE_INFORMATION);
    assert_true(g.is_private);
    assert_int_equal(g.label_len, strlen(evil));
    assert_memory_equal(g.label, evil, strlen(evil));
    assert_null(g.ckid);
    assert_int_equal(g.ckid_len, 0);
    assert_int_equal(g.attrs_len, sizeof(big_attrs));
    assert_memory_equal(g.attrs, big_attrs, sizeof(big_attrs));
    store_object_clear(&g);
    assert_null(g.attrs);

    /* Update rewrites every column. */
    o.id = id1;
    o.owner = 4;
    o.cls = CKO_SECRET_KEY;
    o.key_type = CKK_AES;
    o.is_private = false;
    set_label(&o, "renamed");
    o.ckid = (uint8_t *)"\x01\x02";
    o.ckid_len = 2;
    o.attrs_len = 10;
    assert_int_equal(store_object_update(f->st, &o), CKR_OK);
    assert_int_equal(store_object_get(f->st, id1, &g, &found), CKR_OK);
    assert_true(found);
    assert_int_equal(g.owner, 4);
    assert_int_equal(g.cls, CKO_SECRET_KEY);
    assert_int_equal(g.key_type, CKK_AES);
    assert_false(g.is_private);
    assert_int_equal(g.label_len, 7);
    assert_memory_equal(g.label, "renamed", 7);
    assert_int_equal(g.ckid_len, 2);
    assert_memory_equal(g.ckid, "\x01\x02", 2);
    assert_int_equal(g.attrs_len, 10);
    store_object_clear(&g);

    o.id = 9999;
    assert_int_equal(store_object_update(f->st, &o), CKR_FUNCTION_FAILED);

    /* Ids are never reused. */
    id2 = add_object(f->st, 4, CKO_DATA, CK_UNAVAILABLE_INFORMATION, false, "d",
                     NULL);
    assert_true(id2 > id1);
    assert_int_equal(store_object_delete(f->st, id2), CKR_OK);
    found = true;
    assert_int_equal(store_object_get(f->st, id2, &g, &found), CKR_OK);
    assert_false(found);
    id3 = add_object(f->st, 4, CKO_DATA, CK_UNAVAILABLE_INFORMATION, false, "d",
                     NULL);
    assert_true(id3 > id2);
    assert_int_equal(store_object_delete_all(f->st), CKR_OK);
    assert_int_equal(store_object_get(f->st, id1, &g, &found), CKR_OK);
    assert_false(found);
    assert_true(add_object(f->st, 4, CKO_DATA, 0, false, "d", NULL) > id3);
    reopen(f);
    assert_true(add_object(f->st, 4, CKO_DATA, 0, false, "d", NULL) > id3 + 1);

    /* Limits. */
    o.label_len = 64 * 1024 + 1;
    o.label = calloc(1, o.label_len);
    assert_non_null(o.label);
    assert_int_equal(store_object_insert(f->st, &o, &id1), CKR_ARGUMENTS_BAD);
    o.label_len = 64 * 1024;
    assert_int_equal(store_object_insert(f->st, &o, &id1), CKR_OK);
    free(o.label);
}

static void test_object_find(void **state)
{
    struct fx *f = *state;
    store_query_t q;
    store_hit_t *h = NULL;
    uint64_t a, b, c, d, e;
    size_t n;

    open_new(f);
    a = add_object(f->st, 3, CKO_SECRET_KEY, CKK_AES, true, "web", "01");
    b = add_object(f->st, 3, CKO_PRIVATE_KEY, CKK_RSA, true, "web", "02");
    c = add_object(f->st, 3, CKO_PUBLIC_KEY, CKK_RSA, false, "web", "02");
    d = add_object(f->st, 4, CKO_DATA, CK_UNAVAILABLE_INFORMATION, false, "",
                   NULL);
    e = add_object(f->st, 4, CKO_SECRET_KEY, CKK_AES, true, "db", "01");

    memset(&q, 0, sizeof(q));
    n = find(f->st, &q, &h); /* everything, ascending */
    assert_int_equal(n, 5);
    assert_true(h[0].id == a && h[1].id == b && h[2].id == c && h[3].id == d &&
                h[4].id == e);
    assert_int_equal(h[3].owner, 4);
    assert_int_equal(h[3].cls, CKO_DATA);
    free(h);

    q.has_label = true;
    q.label = (const uint8_t *)"web";
    q.label_len = 3;
    n = find(f->st, &q, &h);
    assert_int_equal(n, 3);
    assert_true(h[0].id == a && h[1].id == b && h[2].id == c);
    free(h);

    q.has_cls = true;
    q.cls = CKO_PRIVATE_KEY;
    n = find(f->st, &q, &h);
    assert_int_equal(n, 1);
    assert_true(h[0].id == b);
    assert_true(h[0].is_private);
    free(h);

    /* label + ckid */
    q.has_cls = false;
    q.has_ckid = true;
    q.ckid = (const uint8_t *)"02";
    q.ckid_len = 2;
    n = find(f->st, &q, &h);
    assert_int_equal(n, 2);
    assert_true(h[0].id == b && h[1].id == c);
    free(h);

    /* + private */
    q.has_private = true;
    q.is_private = false;
    n = find(f->st, &q, &h);
    assert_int_equal(n, 1);
    assert_true(h[0].id == c);
    assert_false(h[0].is_private);
    free(h);

    /* ckid alone */
    memset(&q, 0, sizeof(q));
    q.has_ckid = true;
    q.ckid = (const uint8_t *)"01";
    q.ckid_len = 2;
    n = find(f->st, &q, &h);
    assert_int_equal(n, 2);
    assert_true(h[0].id == a && h[1].id == e);
    free(h);

    /* key type alone, then with class */
    memset(&q, 0, sizeof(q));
    q.has_key_type = true;
    q.key_type = CKK_RSA;
    n = find(f->st, &q, &h);
    assert_int_equal(n, 2);
    free(h);
    q.has_cls = true;
    q.cls = CKO_PUBLIC_KEY;
    n = find(f->st, &q, &h);
    assert_int_equal(n, 1);
    assert_true(h[0].id == c);
    free(h);

    /* CK_UNAVAILABLE_INFORMATION is a value like any other. */
    memset(&q, 0, sizeof(q));
    q.has_key_type = true;
    q.key_type = CK_UNAVAILABLE_INFORMATION;
    n = find(f->st, &q, &h);
    assert_int_equal(n, 1);
    assert_true(h[0].id == d);
    free(h);

    /* class alone */
    memset(&q, 0, sizeof(q));
    q.has_cls = true;
    q.cls = CKO_SECRET_KEY;
    n = find(f->st, &q, &h);
    assert_int_equal(n, 2);
    assert_true(h[0].id == a && h[1].id == e);
    free(h);

    /* An empty label matches only the empty label. */
    memset(&q, 0, sizeof(q));
    q.has_label = true;
    q.label = NULL;
    q.label_len = 0;
    n = find(f->st, &q, &h);
    assert_int_equal(n, 1);
    assert_true(h[0].id == d);
    free(h);

    /* No match: n 0. */
    q.label = (const uint8_t *)"nope";
    q.label_len = 4;
    n = find(f->st, &q, &h);
    assert_int_equal(n, 0);
    free(h);

    /* A prefix is not a match. */
    q.label = (const uint8_t *)"we";
    q.label_len = 2;
    assert_int_equal(find(f->st, &q, &h), 0);
    free(h);
}

static void test_shares(void **state)
{
    struct fx *f = *state;
    store_query_t q;
    store_hit_t *h = NULL;
    uint32_t *uids = NULL;
    uint64_t a, b;
    bool shared = true;
    size_t n = 0;

    open_new(f);
    assert_int_equal(store_user_insert(f->st, 3, "owner", T_CU, NULL, 0, NULL),
                     CKR_OK);
    assert_int_equal(store_user_insert(f->st, 4, "friend", T_CU, NULL, 0, NULL),
                     CKR_OK);
    assert_int_equal(store_user_insert(f->st, 5, "other", T_CU, NULL, 0, NULL),
                     CKR_OK);
    a = add_object(f->st, 3, CKO_SECRET_KEY, CKK_AES, true, "a", NULL);
    b = add_object(f->st, 3, CKO_SECRET_KEY, CKK_AES, true, "b", NULL);

    assert_int_equal(store_share_has(f->st, a, 4, &shared), CKR_OK);
    assert_false(shared);
    assert_int_equal(store_share_set(f->st, a, 5, true), CKR_OK);
    assert_int_equal(store_share_set(f->st, a, 4, true), CKR_OK);
    assert_int_equal(store_share_set(f->st, a, 4, true), CKR_OK); /* twice */
    assert_int_equal(store_share_set(f->st, b, 5, true), CKR_OK);
    assert_int_equal(store_share_has(f->st, a, 4, &shared), CKR_OK);
    assert_true(shared);
    assert_int_equal(store_share_list(f->st, a, &uids, &n), CKR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(uids[0], 4);
    assert_int_equal(uids[1], 5);
    free(uids);

    /* Unknown object or user. */
    assert_int_equal(store_share_set(f->st, 999, 4, true), CKR_FUNCTION_FAILED);
    assert_int_equal(store_share_set(f->st, a, 999, true), CKR_FUNCTION_FAILED);

    memset(&q, 0, sizeof(q));
    q.for_user = 4;
    n = find(f->st, &q, &h);
    assert_int_equal(n, 2);
    assert_true(h[0].id == a && h[0].shared_with_user);
    assert_true(h[1].id == b && !h[1].shared_with_user);
    free(h);
    q.for_user = 5;
    n = find(f->st, &q, &h);
    assert_true(n == 2 && h[0].shared_with_user && h[1].shared_with_user);
    free(h);

    assert_int_equal(store_share_set(f->st, a, 5, false), CKR_OK);
    assert_int_equal(store_share_has(f->st, a, 5, &shared), CKR_OK);
    assert_false(shared);
    assert_int_equal(store_share_set(f->st, a, 5, false), CKR_OK);

    /* Deleting the object takes its shares. */
    assert_int_equal(store_object_delete(f->st, a), CKR_OK);
    assert_int_equal(store_share_list(f->st, a, &uids, &n), CKR_OK);
    assert_int_equal(n, 0);
    free(uids);
    assert_int_equal(outside_int(f->path, "SELECT count(*) FROM shares WHERE "
                                          "object_id = 1"),
                     0);
    /* Deleting a user takes the shares to that user. */
    assert_int_equal(store_user_delete(f->st, 5), CKR_OK);
    assert_int_equal(store_share_has(f->st, b, 5, &shared), CKR_OK);
    assert_false(shared);
    assert_int_equal(outside_int(f->path, "SELECT count(*) FROM shares"), 0);
}

static void test_count_owner_delete_all(void **state)
{
    struct fx *f = *state;
    store_query_t q;
    store_hit_t *h = NULL;
    size_t n = 99;

    open_new(f);
    add_object(f->st, 3, CKO_DATA, 0, false, "x", NULL);
    add_object(f->st, 3, CKO_DATA, 0, false, "y", NULL);
    add_object(f->st, 4, CKO_DATA, 0, false, "z", NULL);
    assert_int_equal(store_object_count_owner(f->st, 3, &n), CKR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(store_object_count_owner(f->st, 4, &n), CKR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_object_count_owner(f->st, 5, &n), CKR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_object_delete_all(f->st), CKR_OK);
    assert_int_equal(store_object_count_owner(f->st, 3, &n), CKR_OK);
    assert_int_equal(n, 0);
    memset(&q, 0, sizeof(q));
    assert_int_equal(find(f->st, &q, &h), 0);
    free(h);
}

/* ----------------------------------------------------- transactions */

static void test_rollback_discards(void **state)
{
    struct fx *f = *state;
    store_object_t g;
    store_user_t u;
    uint64_t id;
    bool found = true;

    open_new(f);
    assert_int_equal(store_begin(f->st, true), CKR_OK);
    id = add_object(f->st, 3, CKO_DATA, 0, false, "gone", NULL);
    assert_int_equal(store_user_insert(f->st, 0, "ghost", T_CU, NULL, 0, NULL),
                     CKR_OK);
    /* Visible inside the transaction. */
    assert_int_equal(store_object_get(f->st, id, &g, &found), CKR_OK);
    assert_true(found);
    store_object_clear(&g);
    store_rollback(f->st);
    store_rollback(f->st); /* harmless */

    assert_int_equal(store_object_get(f->st, id, &g, &found), CKR_OK);
    assert_false(found);
    assert_int_equal(store_user_by_name(f->st, "ghost", &u, &found), CKR_OK);
    assert_false(found);

    /* A read transaction commits too. */
    assert_int_equal(store_begin(f->st, false), CKR_OK);
    assert_int_equal(store_user_by_name(f->st, "ghost", &u, &found), CKR_OK);
    assert_int_equal(store_commit(f->st), CKR_OK);
}

static void test_two_handles(void **state)
{
    struct fx *f = *state;
    store_t *other = NULL;
    store_query_t q;
    store_hit_t *h = NULL;
    store_object_t g;
    bool created = true, found = true;
    uint64_t id, gen1 = 0, gen2 = 0;
    uint32_t fails = 0;
    store_user_t u;

    open_new(f);
    assert_int_equal(store_open(f->path, &other, &created), CKR_OK);
    assert_false(created);

    assert_int_equal(store_begin(f->st, true), CKR_OK);
    id = add_object(f->st, 3, CKO_DATA, 0, false, "shared", NULL);
    assert_int_equal(store_bump_generation(f->st), CKR_OK);

    /* Not visible to the other handle before the commit. */
    assert_int_equal(store_object_get(other, id, &g, &found), CKR_OK);
    assert_false(found);
    memset(&q, 0, sizeof(q));
    q.has_label = true;
    q.label = (const uint8_t *)"shared";
    q.label_len = 6;
    assert_int_equal(find(other, &q, &h), 0);
    free(h);
    assert_int_equal(store_generation(other, &gen1), CKR_OK);

    assert_int_equal(store_commit(f->st), CKR_OK);

    assert_int_equal(store_object_get(other, id, &g, &found), CKR_OK);
    assert_true(found);
    store_object_clear(&g);
    assert_int_equal(find(other, &q, &h), 1);
    assert_true(h[0].id == id);
    free(h);
    assert_int_equal(store_generation(other, &gen2), CKR_OK);
    assert_int_equal(gen2, gen1 + 1);

    /* A failure charged through one handle counts in the other. */
    assert_int_equal(store_user_insert(f->st, 0, "alice", T_CU, NULL, 0, NULL),
                     CKR_OK);
    assert_int_equal(store_user_charge_failure(other, 1, 5, &fails, NULL),
                     CKR_OK);
    assert_int_equal(store_user_charge_failure(f->st, 1, 5, &fails, NULL),
                     CKR_OK);
    assert_int_equal(fails, 2);
    assert_int_equal(store_user_by_id(other, 1, &u, &found), CKR_OK);
    assert_int_equal(u.failures, 2);
    store_user_clear(&u);

    store_close(other);
}

/* ------------------------------------------------------ many objects */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The statement store_object_find writes for a label (and a class), so
 * that its plan can be read from outside. Keep in step with store.c. */
#define FIND_LABEL_SQL                                                         \
    "SELECT o.id, o.owner, o.class, o.private, EXISTS(SELECT 1 FROM shares "   \
    "WHERE object_id = o.id AND user_id = ?1) FROM objects o WHERE 1 AND "     \
    "o.label = ? AND +o.class = ? ORDER BY o.id"

static void test_many_objects(void **state)
{
    struct fx *f = *state;
    enum { N = 20000 };
    char label[32];
    store_query_t q;
    store_hit_t *h = NULL;
    uint64_t want = 0, id;
    double t0, t1, t2;
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    bool uses_index = false, scans = false;
    int i;

    open_new(f);
    t0 = now_s();
    assert_int_equal(store_begin(f->st, true), CKR_OK);
    for (i = 0; i < N; i++) {
        snprintf(label, sizeof(label), "key-%05d", i);
        id = add_object(f->st, (uint32_t)(3 + i % 7),
                        i % 2 ? CKO_SECRET_KEY : CKO_PRIVATE_KEY,
                        i % 2 ? CKK_AES : CKK_EC, true, label, NULL);
        if (i == 12345) {
            want = id;
        }
    }
    assert_int_equal(store_commit(f->st), CKR_OK);
    t1 = now_s();

    memset(&q, 0, sizeof(q));
    q.has_label = true;
    q.label = (const uint8_t *)"key-12345";
    q.label_len = 9;
    q.has_cls = true;
    q.cls = CKO_SECRET_KEY;
    assert_int_equal(find(f->st, &q, &h), 1);
    t2 = now_s();
    assert_true(h[0].id == want);
    assert_int_equal(h[0].owner, 3 + 12345 % 7);
    free(h);
    print_message("store: %d inserts in one transaction: %.3f s; "
                  "find by label+class: %.6f s\n",
                  N, t1 - t0, t2 - t1);

    q.has_cls = false;
    assert_int_equal(find(f->st, &q, &h), 1);
    assert_true(h[0].id == want);
    free(h);
    q.has_cls = true;
    q.cls = CKO_PRIVATE_KEY; /* wrong class */
    assert_int_equal(find(f->st, &q, &h), 0);
    free(h);

    /* The plan: a search through the label index, no full scan. */
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "EXPLAIN QUERY PLAN " FIND_LABEL_SQL,
                                        -1, &s, NULL),
                     SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(s, 3);

        print_message("plan: %s\n", detail);
        if (strstr(detail, "INDEX objects_label") != NULL) {
            uses_index = true;
        }
        if (strncmp(detail, "SCAN o", 6) == 0) {
            scans = true;
        }
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    assert_true(uses_index);
    assert_false(scans);
}

/* ------------------------------------------------------------- quorum */

/* A version 4 file (made by turning a fresh one back: the quorum tables
 * and columns gone, version 4) migrates to 5 keeping its users, none with
 * a quorum key or 2FA. */
static void test_schema_4_to_5(void **state)
{
    struct fx *f = *state;
    store_user_t u;
    uint8_t *key = NULL;
    size_t len = 9, n = 9;
    bool found = false, twofa = true;
    uint32_t id = 0;

    open_new(f);
    assert_int_equal(store_user_insert(f->st, 0, "officer", T_CO,
                                       (const uint8_t *)"v1", 2, &id),
                     CKR_OK);
    store_close(f->st);
    f->st = NULL;
    outside_exec(f->path, "DROP TABLE cluster_ids;"
                          "DROP TABLE cluster_origins;"
                          "DROP TABLE cluster_applied;"
                          "ALTER TABLE objects DROP COLUMN version;"
                          "DROP TABLE quorum_approvals;"
                          "DROP TABLE quorum_tokens;"
                          "DROP TABLE quorum_m;"
                          "ALTER TABLE users DROP COLUMN mofn_pubkey;"
                          "ALTER TABLE users DROP COLUMN twofa;"
                          "UPDATE meta SET value = 4 "
                          "WHERE key = 'schema_version'");
    assert_int_equal(outside_int(f->path, "SELECT count(*) FROM sqlite_master "
                                          "WHERE name LIKE 'quorum%'"),
                     0);
    reopen(f);
    assert_int_equal(outside_int(f->path, "SELECT value FROM meta WHERE "
                                          "key = 'schema_version'"),
                     STORE_SCHEMA_VERSION);
    assert_int_equal(store_user_by_id(f->st, id, &u, &found), CKR_OK);
    assert_true(found);
    assert_string_equal(u.name, "officer");
    assert_false(u.mofn_pubkey);
    assert_false(u.twofa);
    assert_int_equal(u.verifier_len, 2);
    store_user_clear(&u);
    assert_int_equal(store_user_mofn_get(f->st, id, &key, &len, &twofa, &found),
                     CKR_OK);
    assert_true(found);
    assert_null(key);
    assert_int_equal(len, 0);
    assert_false(twofa);
    assert_int_equal(store_user_count_mofn(f->st, T_CO, &n), CKR_OK);
    assert_int_equal(n, 0);
    /* The new tables work. */
    assert_int_equal(store_user_mofn_set(f->st, id, (const uint8_t *)"k", 1,
                                         true),
                     CKR_OK);
    assert_int_equal(store_user_count_mofn(f->st, T_CO, &n), CKR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_quorum_m_set(f->st, 3, 2), CKR_OK);
}

/* A user's key and flag: set, read, listed, cleared; limits. */
static void test_user_mofn(void **state)
{
    struct fx *f = *state;
    uint8_t big[STORE_QUORUM_KEY_MAX + 1], *key = NULL;
    store_user_t *list = NULL, u;
    size_t len = 0, n = 0;
    bool found = false, twofa = false;
    uint32_t a = 0, b = 0;
    uint64_t version = 0;

    memset(big, 0x30, sizeof(big));
    open_new(f);
    assert_int_equal(store_user_insert(f->st, 0, "a", T_CO,
                                       (const uint8_t *)"v", 1, &a),
                     CKR_OK);
    assert_int_equal(store_user_insert(f->st, 0, "b", T_CU,
                                       (const uint8_t *)"v", 1, &b),
                     CKR_OK);
    assert_int_equal(store_user_by_id(f->st, a, &u, &found), CKR_OK);
    version = u.version;
    store_user_clear(&u);
    assert_int_equal(store_user_mofn_set(f->st, a, big, STORE_QUORUM_KEY_MAX,
                                         false),
                     CKR_OK);
    assert_int_equal(store_user_mofn_set(f->st, b, NULL, 0, true), CKR_OK);
    /* Too long, or no such user: nothing changes. */
    assert_int_equal(store_user_mofn_set(f->st, a, big, sizeof(big), true),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(store_user_mofn_set(f->st, 99, big, 1, true),
                     CKR_FUNCTION_FAILED);
    assert_int_equal(store_user_mofn_get(f->st, a, &key, &len, &twofa, &found),
                     CKR_OK);
    assert_true(found);
    assert_int_equal(len, STORE_QUORUM_KEY_MAX);
    assert_memory_equal(key, big, len);
    assert_false(twofa);
    free(key);
    assert_int_equal(store_user_mofn_get(f->st, 99, NULL, NULL, &twofa, &found),
                     CKR_OK);
    assert_false(found);
    assert_int_equal(store_user_list(f->st, &list, &n), CKR_OK);
    assert_int_equal(n, 2);
    assert_true(list[0].mofn_pubkey);
    assert_false(list[0].twofa);
    assert_false(list[1].mofn_pubkey);
    assert_true(list[1].twofa);
    /* Logins stand: the version did not move. */
    assert_int_equal(list[0].version, version);
    store_user_clear(&list[0]);
    store_user_clear(&list[1]);
    free(list);
    assert_int_equal(store_user_count_mofn(f->st, T_CO, &n), CKR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_user_count_mofn(f->st, T_CU, &n), CKR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_user_mofn_set(f->st, a, NULL, 0, false), CKR_OK);
    assert_int_equal(store_user_count_mofn(f->st, T_CO, &n), CKR_OK);
    assert_int_equal(n, 0);
}

static void qtoken_fill(store_qtoken_t *t, unsigned service, uint32_t who,
                        uint8_t login, uint8_t dg, uint64_t expires)
{
    memset(t, 0, sizeof(*t));
    t->service = service;
    t->requester = who;
    t->requester_version = 7;
    memset(t->login_id, login, sizeof(t->login_id));
    t->issued = 1000;
    t->expires = expires;
    t->needed = 2;
    memset(t->digest, dg, sizeof(t->digest));
}

/* M values, tokens and approvals: every call, and what goes with what. */
static void test_quorum_tokens(void **state)
{
    struct fx *f = *state;
    store_qtoken_t t, got, *list = NULL;
    uint8_t dg[STORE_QTOKEN_DIGEST_LEN], login[STORE_LOGIN_ID_LEN];
    uint32_t a = 0, b = 0, t1 = 0, t2 = 0, t3 = 0, *uids = NULL;
    unsigned m = 0;
    size_t n = 0;
    bool found = false, added = false, deleted = false;

    open_new(f);
    assert_int_equal(store_user_insert(f->st, 0, "a", T_CO,
                                       (const uint8_t *)"v", 1, &a),
                     CKR_OK);
    assert_int_equal(store_user_insert(f->st, 0, "b", T_CO,
                                       (const uint8_t *)"v", 1, &b),
                     CKR_OK);
    /* M: 1 until set; out of range refused. */
    assert_int_equal(store_quorum_m_get(f->st, 3, &m), CKR_OK);
    assert_int_equal(m, 1);
    assert_int_equal(store_quorum_m_set(f->st, 3, 2), CKR_OK);
    assert_int_equal(store_quorum_m_set(f->st, 3, 0), CKR_ARGUMENTS_BAD);
    assert_int_equal(store_quorum_m_set(f->st, 3, 256), CKR_ARGUMENTS_BAD);
    assert_int_equal(store_quorum_m_get(f->st, 3, &m), CKR_OK);
    assert_int_equal(m, 2);
    assert_int_equal(store_quorum_m_get(f->st, 4, &m), CKR_OK);
    assert_int_equal(m, 1);

    qtoken_fill(&t, 3, a, 0x11, 0xd1, 2000);
    assert_int_equal(store_qtoken_insert(f->st, &t, &t1), CKR_OK);
    qtoken_fill(&t, 4, a, 0x11, 0xd2, 3000);
    assert_int_equal(store_qtoken_insert(f->st, &t, &t2), CKR_OK);
    qtoken_fill(&t, 3, b, 0x22, 0xd3, 4000);
    assert_int_equal(store_qtoken_insert(f->st, &t, &t3), CKR_OK);
    assert_true(t1 > 0 && t2 > t1 && t3 > t2);
    /* A digest is unique; a requester must exist. */
    qtoken_fill(&t, 3, b, 0x22, 0xd3, 4000);
    assert_int_equal(store_qtoken_insert(f->st, &t, NULL),
                     CKR_FUNCTION_FAILED);
    qtoken_fill(&t, 3, 99, 0x22, 0xd4, 4000);
    assert_int_equal(store_qtoken_insert(f->st, &t, NULL),
                     CKR_FUNCTION_FAILED);
    assert_int_equal(store_qtoken_count(f->st, &n), CKR_OK);
    assert_int_equal(n, 3);

    memset(dg, 0xd2, sizeof(dg));
    assert_int_equal(store_qtoken_by_digest(f->st, dg, &got, &found), CKR_OK);
    assert_true(found);
    assert_int_equal(got.id, t2);
    assert_int_equal(got.service, 4);
    assert_int_equal(got.requester, a);
    assert_int_equal(got.requester_version, 7);
    assert_int_equal(got.issued, 1000);
    assert_int_equal(got.expires, 3000);
    assert_int_equal(got.needed, 2);
    memset(login, 0x11, sizeof(login));
    assert_memory_equal(got.login_id, login, sizeof(login));
    memset(dg, 0xee, sizeof(dg));
    assert_int_equal(store_qtoken_by_digest(f->st, dg, &got, &found), CKR_OK);
    assert_false(found);
    assert_int_equal(store_qtoken_get(f->st, t3, &got, &found), CKR_OK);
    assert_true(found);
    assert_int_equal(got.requester, b);

    /* One approval per approver. */
    assert_int_equal(store_qtoken_approve(f->st, t1, b, &added), CKR_OK);
    assert_true(added);
    assert_int_equal(store_qtoken_approve(f->st, t1, b, &added), CKR_OK);
    assert_false(added);
    assert_int_equal(store_qtoken_approve(f->st, t1, a, &added), CKR_OK);
    assert_true(added);
    assert_int_equal(store_qtoken_approve(f->st, t3, a, &added), CKR_OK);
    assert_int_equal(store_qtoken_approve(f->st, 999, a, &added),
                     CKR_FUNCTION_FAILED); /* no such token */
    assert_int_equal(store_qtoken_approvers(f->st, t1, &uids, &n), CKR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(uids[0], a);
    assert_int_equal(uids[1], b);
    free(uids);

    /* Expired ones go, with their approvals. */
    assert_int_equal(store_qtoken_purge(f->st, 1999, &n), CKR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_qtoken_purge(f->st, 2000, &n), CKR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_qtoken_get(f->st, t1, &got, &found), CKR_OK);
    assert_false(found);
    assert_int_equal(outside_int(f->path, "SELECT count(*) FROM "
                                          "quorum_approvals"),
                     1);
    /* A login's tokens go with it. */
    assert_int_equal(store_qtoken_delete_login(f->st, login), CKR_OK);
    assert_int_equal(store_qtoken_list(f->st, &list, &n), CKR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].id, t3);
    free(list);
    /* A deleted approver's approvals go; a deleted requester's tokens. */
    assert_int_equal(store_user_delete(f->st, a), CKR_OK);
    assert_int_equal(store_qtoken_approvers(f->st, t3, &uids, &n), CKR_OK);
    assert_int_equal(n, 0);
    assert_null(uids);
    assert_int_equal(store_user_delete(f->st, b), CKR_OK);
    assert_int_equal(store_qtoken_count(f->st, &n), CKR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_qtoken_delete(f->st, t3, &deleted), CKR_OK);
    assert_false(deleted);
    assert_int_equal(store_qtoken_list(f->st, &list, &n), CKR_OK);
    assert_int_equal(n, 0);
    assert_null(list);
    /* Ids are never reused. */
    assert_int_equal(store_user_insert(f->st, 0, "c", T_CO,
                                       (const uint8_t *)"v", 1, &a),
                     CKR_OK);
    qtoken_fill(&t, 3, a, 0x33, 0xd5, 4000);
    assert_int_equal(store_qtoken_insert(f->st, &t, &t1), CKR_OK);
    assert_true(t1 > t3);
    assert_int_equal(store_qtoken_delete(f->st, t1, &deleted), CKR_OK);
    assert_true(deleted);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
        T(test_open_creates_0600),
        T(test_open_pragmas_and_reopen),
        T(test_reopen_keeps_data),
        T(test_future_schema_refused),
        T(test_corrupt_file_refused),
        T(test_foreign_database_refused),
        T(test_empty_file_is_initialized),
        T(test_meta_and_generation),
        T(test_users),
        T(test_user_failures),
        T(test_object_crud),
        T(test_object_find),
        T(test_shares),
        T(test_count_owner_delete_all),
        T(test_rollback_discards),
        T(test_two_handles),
        T(test_many_objects),
        T(test_schema_4_to_5),
        T(test_user_mofn),
        T(test_quorum_tokens),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
