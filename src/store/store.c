/*
 * store.c - the SQLite store (see store.h).
 *
 * SQLite result codes stay inside this file: every one is converted to a
 * CK_RV by sql_rv() at the point where it is received.
 *
 * Durability: WAL with synchronous=FULL, so a commit that returned has
 * been fsync'd to the WAL and survives a kill -9 or a power loss.
 * Concurrency: several processes may open one file; a writer takes the
 * write lock at BEGIN IMMEDIATE, waiting up to STORE_BUSY_TIMEOUT_MS.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "store/store.h"
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/log.h"
#include "common/util.h"

#define STORE_BUSY_TIMEOUT_MS 10000
#define STORE_PATH_MAX 4096u

/* --------------------------------------------------------- statements */

/* The statements prepared once per handle and reset after every use. */
enum stmt_id {
    STMT_META_GET,
    STMT_META_SET,
    STMT_GEN_GET,
    STMT_GEN_BUMP,
    STMT_GEN_INIT,
    STMT_USER_BY_NAME,
    STMT_USER_BY_ID,
    STMT_USER_LIST,
    STMT_USER_INSERT,
    STMT_USER_SET_VERIFIER,
    STMT_USER_SET_TYPE,
    STMT_USER_CHARGE,
    STMT_USER_FAILURES,
    STMT_USER_RESET,
    STMT_USER_DELETE,
    STMT_USER_DELETE_TYPE,
    STMT_USER_COUNT_TYPE,
    STMT_USER_VERSION,
    STMT_USER_BUMP_ALL,
    STMT_OBJ_INSERT,
    STMT_OBJ_INSERT_ID,
    STMT_OBJ_VERSION,
    STMT_OBJ_SET_VERSION,
    STMT_OBJ_UPDATE,
    STMT_OBJ_GET,
    STMT_OBJ_DELETE,
    STMT_OBJ_DELETE_ALL,
    STMT_OBJ_COUNT_OWNER,
    STMT_SHARE_ADD,
    STMT_SHARE_DEL,
    STMT_SHARE_LIST,
    STMT_SHARE_HAS,
    STMT_OBJ_LIST_OWNER,
    STMT_SHARE_LIST_USER,
    STMT_AUDIT_INSERT,
    STMT_AUDIT_READ,
    STMT_USER_MOFN_GET,
    STMT_USER_MOFN_SET,
    STMT_USER_COUNT_MOFN,
    STMT_QM_GET,
    STMT_QM_SET,
    STMT_QT_INSERT,
    STMT_QT_INSERT_ID,
    STMT_QT_GET,
    STMT_QT_BY_DIGEST,
    STMT_QT_LIST,
    STMT_QT_COUNT,
    STMT_QT_DELETE,
    STMT_QT_DELETE_LOGIN,
    STMT_QT_PURGE,
    STMT_QA_ADD,
    STMT_QA_LIST,
    STMT_COUNT
};

#define USER_COLS                                                              \
    "id, type, name, verifier, failures, version, mofn_pubkey IS NOT NULL, "   \
    "twofa"
#define QT_COLS                                                                \
    "id, service, requester, requester_version, login_id, issued, expires, "   \
    "needed, digest"
#define OBJ_COLS "id, owner, class, key_type, private, label, ckid, attrs"

static const char *const stmt_sql[STMT_COUNT] = {
    [STMT_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [STMT_META_SET] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
    [STMT_GEN_GET] = "SELECT value FROM meta WHERE key = 'generation'",
    [STMT_GEN_BUMP] =
        "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
    [STMT_GEN_INIT] =
        "INSERT OR IGNORE INTO meta(key, value) VALUES('generation', 0)",
    [STMT_USER_BY_NAME] = "SELECT " USER_COLS " FROM users WHERE name = ?1",
    [STMT_USER_BY_ID] = "SELECT " USER_COLS " FROM users WHERE id = ?1",
    [STMT_USER_LIST] = "SELECT " USER_COLS " FROM users ORDER BY id",
    [STMT_USER_INSERT] = "INSERT INTO users(id, name, type, verifier) "
                         "VALUES(?1, ?2, ?3, ?4)",
    [STMT_USER_SET_VERIFIER] =
        "UPDATE users SET verifier = ?2, failures = 0, version = version + 1 "
        "WHERE id = ?1",
    [STMT_USER_SET_TYPE] = "UPDATE users SET type = ?2 WHERE id = ?1",
    [STMT_USER_CHARGE] = "UPDATE users SET failures = failures + 1 "
                         "WHERE id = ?1 AND failures < ?2",
    [STMT_USER_FAILURES] = "SELECT failures FROM users WHERE id = ?1",
    [STMT_USER_RESET] = "UPDATE users SET failures = 0 WHERE id = ?1",
    [STMT_USER_DELETE] = "DELETE FROM users WHERE id = ?1",
    [STMT_USER_DELETE_TYPE] = "DELETE FROM users WHERE type = ?1",
    [STMT_USER_COUNT_TYPE] = "SELECT count(*) FROM users WHERE type = ?1",
    [STMT_USER_VERSION] = "SELECT version FROM users WHERE id = ?1",
    [STMT_USER_BUMP_ALL] = "UPDATE users SET version = version + 1",
    [STMT_OBJ_INSERT] =
        "INSERT INTO objects(owner, class, key_type, private, label, ckid, "
        "attrs) VALUES(?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [STMT_OBJ_UPDATE] =
        "UPDATE objects SET owner = ?2, class = ?3, key_type = ?4, "
        "private = ?5, label = ?6, ckid = ?7, attrs = ?8, "
        "version = version + 1 WHERE id = ?1",
    [STMT_OBJ_INSERT_ID] =
        "INSERT INTO objects(id, owner, class, key_type, private, label, "
        "ckid, attrs) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [STMT_OBJ_VERSION] = "SELECT version FROM objects WHERE id = ?1",
    [STMT_OBJ_SET_VERSION] = "UPDATE objects SET version = ?2 WHERE id = ?1",
    [STMT_OBJ_GET] = "SELECT " OBJ_COLS " FROM objects WHERE id = ?1",
    [STMT_OBJ_DELETE] = "DELETE FROM objects WHERE id = ?1",
    [STMT_OBJ_DELETE_ALL] = "DELETE FROM objects",
    [STMT_OBJ_COUNT_OWNER] = "SELECT count(*) FROM objects WHERE owner = ?1",
    [STMT_SHARE_ADD] =
        "INSERT OR IGNORE INTO shares(object_id, user_id) VALUES(?1, ?2)",
    [STMT_SHARE_DEL] = "DELETE FROM shares WHERE object_id = ?1 "
                       "AND user_id = ?2",
    [STMT_SHARE_LIST] = "SELECT user_id FROM shares WHERE object_id = ?1 "
                        "ORDER BY user_id",
    [STMT_SHARE_HAS] = "SELECT 1 FROM shares WHERE object_id = ?1 "
                       "AND user_id = ?2",
    [STMT_OBJ_LIST_OWNER] =
        "SELECT id FROM objects WHERE owner = ?1 ORDER BY id",
    [STMT_SHARE_LIST_USER] = "SELECT object_id FROM shares WHERE user_id = ?1 "
                             "ORDER BY object_id",
    [STMT_AUDIT_INSERT] =
        "INSERT INTO audit(seq, time, hsm_id, user_id, operation, object_id, "
        "result, hash, peer, fmt) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [STMT_AUDIT_READ] =
        "SELECT seq, time, hsm_id, user_id, operation, object_id, result, "
        "hash, peer, fmt FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [STMT_USER_MOFN_GET] = "SELECT mofn_pubkey, twofa FROM users WHERE id = ?1",
    [STMT_USER_MOFN_SET] =
        "UPDATE users SET mofn_pubkey = ?2, twofa = ?3 WHERE id = ?1",
    [STMT_USER_COUNT_MOFN] = "SELECT count(*) FROM users WHERE type = ?1 "
                             "AND mofn_pubkey IS NOT NULL",
    [STMT_QM_GET] = "SELECT m FROM quorum_m WHERE service = ?1",
    [STMT_QM_SET] =
        "INSERT OR REPLACE INTO quorum_m(service, m) VALUES(?1, ?2)",
    [STMT_QT_INSERT] =
        "INSERT INTO quorum_tokens(service, requester, requester_version, "
        "login_id, issued, expires, needed, digest) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [STMT_QT_INSERT_ID] =
        "INSERT INTO quorum_tokens(service, requester, requester_version, "
        "login_id, issued, expires, needed, digest, id) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [STMT_QT_GET] = "SELECT " QT_COLS " FROM quorum_tokens WHERE id = ?1",
    [STMT_QT_BY_DIGEST] =
        "SELECT " QT_COLS " FROM quorum_tokens WHERE digest = ?1",
    [STMT_QT_LIST] = "SELECT " QT_COLS " FROM quorum_tokens ORDER BY id",
    [STMT_QT_COUNT] = "SELECT count(*) FROM quorum_tokens",
    [STMT_QT_DELETE] = "DELETE FROM quorum_tokens WHERE id = ?1",
    [STMT_QT_DELETE_LOGIN] = "DELETE FROM quorum_tokens WHERE login_id = ?1",
    [STMT_QT_PURGE] = "DELETE FROM quorum_tokens WHERE expires <= ?1",
    [STMT_QA_ADD] = "INSERT OR IGNORE INTO quorum_approvals(token_id, "
                    "approver) VALUES(?1, ?2)",
    [STMT_QA_LIST] = "SELECT approver FROM quorum_approvals "
                     "WHERE token_id = ?1 ORDER BY approver",
};

_Static_assert(STMT_COUNT <= STORE_STMT_MAX,
               "struct store holds the statements");

/* ------------------------------------------------------------- schema */

/*
 * Version 1. users.id never comes back after a delete (AUTOINCREMENT), so
 * a session of another process logged in as a deleted user can never act
 * as a newer one; a user's shares go with the user.
 */
static const char schema_v1[] =
    "CREATE TABLE meta ("
    " key TEXT PRIMARY KEY,"
    " value BLOB);"
    "CREATE TABLE users ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT"
    "  CHECK (id BETWEEN 1 AND 4294967295),"
    " name TEXT NOT NULL UNIQUE COLLATE NOCASE"
    "  CHECK (length(name) BETWEEN 1 AND 31),"
    " type INTEGER,"
    " verifier BLOB,"
    " failures INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE objects ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " owner INTEGER,"
    " class INTEGER,"
    " key_type INTEGER,"
    " private INTEGER,"
    " label BLOB,"
    " ckid BLOB,"
    " attrs BLOB);"
    /* The label and CKA_ID indexes cover every column a find returns,
     * so a search by either never reads the table itself. */
    "CREATE INDEX objects_class ON objects(class);"
    "CREATE INDEX objects_label ON objects(label, class, key_type, private,"
    " owner);"
    "CREATE INDEX objects_ckid ON objects(ckid, class, key_type, private,"
    " owner);"
    "CREATE INDEX objects_key_type ON objects(key_type);"
    "CREATE INDEX objects_owner ON objects(owner);"
    "CREATE TABLE shares ("
    " object_id INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,"
    " user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " PRIMARY KEY (object_id, user_id)) WITHOUT ROWID;"
    "CREATE INDEX shares_user ON shares(user_id);";

/* Forward declaration: the migrations run SQL through it. */
static CK_RV exec_sql(store_t *st, const char *sql, const char *what);

/*
 * Version 2: the audit log. One row per security event, hash-chained by
 * the core; seq is the rowid (1, 2, ...), so reading by seq is an index
 * walk. No foreign keys: a record outlives the user and the object it
 * names.
 */
static const char schema_v2_audit[] = "CREATE TABLE audit ("
                                      " seq INTEGER PRIMARY KEY,"
                                      " time INTEGER NOT NULL,"
                                      " hsm_id TEXT NOT NULL,"
                                      " user_id INTEGER NOT NULL,"
                                      " operation TEXT NOT NULL,"
                                      " object_id INTEGER NOT NULL,"
                                      " result INTEGER NOT NULL,"
                                      " hash BLOB NOT NULL);";

static CK_RV migrate_1_to_2(store_t *st)
{
    return exec_sql(st, schema_v2_audit, "migrate 1 -> 2");
}

/*
 * Version 3: a version per user, bumped by every password change and by a
 * re-initialization (deletion removes the row): a login remembers the
 * version it was made with, and a call that finds another one (or no row)
 * knows that the login no longer stands.
 */
static CK_RV migrate_2_to_3(store_t *st)
{
    return exec_sql(st,
                    "ALTER TABLE users ADD COLUMN version INTEGER NOT NULL "
                    "DEFAULT 1",
                    "migrate 2 -> 3");
}

/*
 * Version 4: the audit log names the connection's peer (a unix peer's
 * credentials, a TLS client's certificate subject). Records written before
 * keep format 1 and an empty peer, and verify as they were hashed; new
 * ones are format 2, whose hash covers the peer.
 */
static CK_RV migrate_3_to_4(store_t *st)
{
    return exec_sql(st,
                    "ALTER TABLE audit ADD COLUMN peer TEXT NOT NULL "
                    "DEFAULT '';"
                    "ALTER TABLE audit ADD COLUMN fmt INTEGER NOT NULL "
                    "DEFAULT 1",
                    "migrate 3 -> 4");
}

/*
 * Version 5: quorum (M of N) approval and two-factor login. Per user the
 * registered quorum key (DER SubjectPublicKeyInfo; NULL: none) and the
 * 2FA flag; the M of each service (no row: 1, off); the tokens issued
 * (only the SHA-256 of the bytes handed out: a token is looked up by what
 * the approvers signed) and their approvals, one per approver. A token's
 * ids never come back (AUTOINCREMENT), so a deleted one cannot be named
 * by a later one's approvals; tokens and approvals go with their users.
 */
static CK_RV migrate_4_to_5(store_t *st)
{
    return exec_sql(
        st,
        "ALTER TABLE users ADD COLUMN mofn_pubkey BLOB;"
        "ALTER TABLE users ADD COLUMN twofa INTEGER NOT NULL DEFAULT 0;"
        "CREATE TABLE quorum_m ("
        " service INTEGER PRIMARY KEY,"
        " m INTEGER NOT NULL CHECK (m BETWEEN 1 AND 255));"
        "CREATE TABLE quorum_tokens ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT"
        "  CHECK (id BETWEEN 1 AND 4294967295),"
        " service INTEGER NOT NULL,"
        " requester INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        " requester_version INTEGER NOT NULL,"
        " login_id BLOB NOT NULL,"
        " issued INTEGER NOT NULL,"
        " expires INTEGER NOT NULL,"
        " needed INTEGER NOT NULL,"
        " digest BLOB NOT NULL UNIQUE);"
        "CREATE INDEX quorum_tokens_login ON quorum_tokens(login_id);"
        "CREATE INDEX quorum_tokens_expires ON quorum_tokens(expires);"
        "CREATE INDEX quorum_tokens_requester ON quorum_tokens(requester);"
        "CREATE TABLE quorum_approvals ("
        " token_id INTEGER NOT NULL"
        "  REFERENCES quorum_tokens(id) ON DELETE CASCADE,"
        " approver INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        " PRIMARY KEY (token_id, approver)) WITHOUT ROWID;"
        "CREATE INDEX quorum_approvals_user ON quorum_approvals(approver);",
        "migrate 4 -> 5");
}

/*
 * Version 6: cluster mode (store.h, "cluster"). Each object has a version,
 * 1 at insert and bumped by every update (a masked object binds it). The
 * applied index of the log, the last (seq, result) of each origin, and the
 * next free global id of each kind (users, objects, quorum tokens) are
 * replicated state: they travel in snapshots. The counters start above
 * every id this file ever gave (sqlite_sequence), and users above the
 * core's fixed ids 1 (PRECO) and 2 (AU).
 */
static CK_RV migrate_5_to_6(store_t *st)
{
    return exec_sql(
        st,
        "ALTER TABLE objects ADD COLUMN version INTEGER NOT NULL DEFAULT 1;"
        "CREATE TABLE cluster_applied ("
        " one INTEGER PRIMARY KEY CHECK (one = 1),"
        " idx INTEGER NOT NULL);"
        "INSERT INTO cluster_applied(one, idx) VALUES(1, 0);"
        "CREATE TABLE cluster_origins ("
        " origin INTEGER PRIMARY KEY,"
        " seq INTEGER NOT NULL,"
        " result BLOB NOT NULL);"
        "CREATE TABLE cluster_ids ("
        " kind INTEGER PRIMARY KEY,"
        " next INTEGER NOT NULL CHECK (next >= 1));"
        "INSERT INTO cluster_ids(kind, next) SELECT 1, max(3, 1 + coalesce("
        " (SELECT seq FROM sqlite_sequence WHERE name = 'users'), 0));"
        "INSERT INTO cluster_ids(kind, next) SELECT 2, 1 + coalesce("
        " (SELECT seq FROM sqlite_sequence WHERE name = 'objects'), 0);"
        "INSERT INTO cluster_ids(kind, next) SELECT 3, 1 + coalesce("
        " (SELECT seq FROM sqlite_sequence WHERE name = 'quorum_tokens'), 0);",
        "migrate 5 -> 6");
}

/*
 * Migrations: the entry with from == v turns a version v schema into
 * version v + 1, inside the open transaction. A new file gets schema_v1
 * and then every migration, so that both paths end in the same schema.
 */
struct migration {
    int from;
    CK_RV (*run)(store_t *st);
};

static const struct migration migrations[] = {
    {1, migrate_1_to_2}, {2, migrate_2_to_3}, {3, migrate_3_to_4},
    {4, migrate_4_to_5}, {5, migrate_5_to_6}, {0, NULL}, /* end */
};

/* ------------------------------------------------------------ helpers */

/* Converts a SQLite result code; what names the failed step for the log.
 * Only SQLite's message is logged, never a value. */
static CK_RV sql_rv(store_t *st, int rc, const char *what)
{
    const char *msg = st && st->db ? sqlite3_errmsg(st->db) : "";

    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return CKR_OK;
    case SQLITE_NOMEM:
        log_error("store: %s: out of memory", what);
        return CKR_HOST_MEMORY;
    case SQLITE_CONSTRAINT:
        log_debug("store: %s: %s (%d)", what, msg, rc);
        return CKR_FUNCTION_FAILED;
    default:
        /* BUSY/LOCKED past the timeout, IOERR, CORRUPT, NOTADB, FULL,
         * CANTOPEN, READONLY, and anything unexpected. */
        log_error("store: %s: %s: %s (%d)", what, sqlite3_errstr(rc), msg, rc);
        return CKR_DEVICE_ERROR;
    }
}

CK_RV store_int_rv(store_t *st, int rc, const char *what)
{
    return sql_rv(st, rc, what);
}

CK_RV store_int_exec(store_t *st, const char *sql, const char *what)
{
    return exec_sql(st, sql, what);
}

static int64_t ulong_to_i64(CK_ULONG v)
{
    uint64_t u = (uint64_t)v;
    int64_t r;

    memcpy(&r, &u, sizeof(r)); /* ~0UL becomes -1 and back */
    return r;
}

static CK_ULONG i64_to_ulong(int64_t v)
{
    return (CK_ULONG)(uint64_t)v;
}

/* Binds len bytes; an empty value is an empty blob (never NULL), so that
 * a search for an empty label finds the objects with an empty label. The
 * bytes must stay valid until the statement is reset (put_stmt). */
static int bind_bytes(sqlite3_stmt *s, int i, const void *p, size_t len)
{
    if (len == 0) {
        return sqlite3_bind_zeroblob(s, i, 0);
    }
    return sqlite3_bind_blob64(s, i, p, (sqlite3_uint64)len, SQLITE_STATIC);
}

/* Copies column i into a fresh buffer (NULL for an empty value). */
static CK_RV column_bytes(sqlite3_stmt *s, int i, size_t max, uint8_t **out,
                          size_t *out_len)
{
    const void *p = sqlite3_column_blob(s, i);
    int n = sqlite3_column_bytes(s, i);

    *out = NULL;
    *out_len = 0;
    if (n < 0 || (size_t)n > max) {
        log_error("store: a stored value exceeds its limit");
        return CKR_DEVICE_ERROR;
    }
    if (n == 0) {
        return CKR_OK;
    }
    if (p == NULL) {
        return CKR_HOST_MEMORY; /* sqlite3_column_blob failed to convert */
    }
    *out = malloc((size_t)n);
    if (*out == NULL) {
        return CKR_HOST_MEMORY;
    }
    memcpy(*out, p, (size_t)n);
    *out_len = (size_t)n;
    return CKR_OK;
}

static CK_RV get_stmt(store_t *st, enum stmt_id id, sqlite3_stmt **out)
{
    int rc;

    if (st->stmt[id] == NULL) {
        rc = sqlite3_prepare_v3(st->db, stmt_sql[id], -1,
                                SQLITE_PREPARE_PERSISTENT, &st->stmt[id], NULL);
        if (rc != SQLITE_OK) {
            st->stmt[id] = NULL;
            return sql_rv(st, rc, "prepare");
        }
    }
    *out = st->stmt[id];
    return CKR_OK;
}

/* Resets a cached statement and drops its bindings (they may point into
 * the caller's buffers). */
static void put_stmt(sqlite3_stmt *s)
{
    if (s != NULL) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
}

/* Steps a statement that returns no row; CKR_OK at SQLITE_DONE. */
static CK_RV step_done(store_t *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);

    if (rc == SQLITE_DONE) {
        return CKR_OK;
    }
    if (rc == SQLITE_ROW) {
        log_error("store: %s: unexpected row", what);
        return CKR_DEVICE_ERROR;
    }
    return sql_rv(st, rc, what);
}

/* Steps; *row tells whether a row came. */
static CK_RV step_row(store_t *st, sqlite3_stmt *s, bool *row, const char *what)
{
    int rc = sqlite3_step(s);

    *row = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        return CKR_OK;
    }
    return sql_rv(st, rc, what);
}

static CK_RV exec_sql(store_t *st, const char *sql, const char *what)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

    return sql_rv(st, rc, what);
}

/* Runs a statement that modifies rows, with nparams (0..2) integer
 * parameters p1, p2; *changes (when wanted) tells how many rows. */
static CK_RV exec_id(store_t *st, enum stmt_id id, int64_t p1, int64_t p2,
                     int nparams, int64_t *changes, const char *what)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    rv = get_stmt(st, id, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = SQLITE_OK;
    if (nparams > 0) {
        rc = sqlite3_bind_int64(s, 1, p1);
    }
    if (rc == SQLITE_OK && nparams > 1) {
        rc = sqlite3_bind_int64(s, 2, p2);
    }
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, what);
        goto out;
    }
    rv = step_done(st, s, what);
    if (rv == CKR_OK && changes != NULL) {
        *changes = sqlite3_changes(st->db);
    }
out:
    put_stmt(s);
    return rv;
}

/* The first column of a one-row query (0 when it gives no row), with one
 * integer parameter when p1 is not NULL. */
static CK_RV query_int(store_t *st, enum stmt_id id, const int64_t *p1,
                       int64_t *out, const char *what)
{
    sqlite3_stmt *s = NULL;
    bool row = false;
    CK_RV rv;
    int rc;

    *out = 0;
    rv = get_stmt(st, id, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    if (p1 != NULL && (rc = sqlite3_bind_int64(s, 1, *p1)) != SQLITE_OK) {
        rv = sql_rv(st, rc, what);
        goto out;
    }
    rv = step_row(st, s, &row, what);
    if (rv == CKR_OK && row) {
        *out = sqlite3_column_int64(s, 0);
    }
out:
    put_stmt(s);
    return rv;
}

/* A count(*) query with one integer parameter. */
static CK_RV count_id(store_t *st, enum stmt_id id, int64_t p1, size_t *n,
                      const char *what)
{
    int64_t v = 0;
    CK_RV rv = query_int(st, id, &p1, &v, what);

    *n = (size_t)v;
    return rv;
}

/* Grows an array of elem-sized items to hold at least need items. */
static CK_RV grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    size_t ncap;
    void *p;

    if (need <= *cap) {
        return CKR_OK;
    }
    ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) {
            return CKR_HOST_MEMORY;
        }
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elem) {
        return CKR_HOST_MEMORY;
    }
    p = realloc(*arr, ncap * elem);
    if (p == NULL) {
        return CKR_HOST_MEMORY;
    }
    *arr = p;
    *cap = ncap;
    return CKR_OK;
}

/* ------------------------------------------------------------- open */

/* Creates path with mode 0600 whatever the umask; *made when it did. The
 * directory is synced so that the new name survives a power loss. */
static CK_RV create_file(const char *path, bool *made)
{
    char dir[STORE_PATH_MAX];
    const char *slash;
    int fd, dfd;

    *made = false;
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST) {
            return CKR_OK;
        }
        log_error("store: cannot create %s: %s", path, strerror(errno));
        return CKR_DEVICE_ERROR;
    }
    *made = true;
    if (fchmod(fd, 0600) != 0 || fsync(fd) != 0) {
        log_error("store: cannot set up %s: %s", path, strerror(errno));
        close(fd);
        return CKR_DEVICE_ERROR;
    }
    close(fd);

    slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == path) {
        snprintf(dir, sizeof(dir), "/");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return CKR_OK;
}

/* SQLite gives -wal and -shm the mode of the database file already; this
 * makes sure of it for a file we created. */
static void restrict_side_files(const char *path)
{
    static const char *const suffix[] = {"-wal", "-shm"};
    char p[STORE_PATH_MAX + 8];
    size_t i;

    for (i = 0; i < UTIL_ARRAY_SIZE(suffix); i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        if (chmod(p, 0600) != 0 && errno != ENOENT) {
            log_warn("store: chmod %s: %s", p, strerror(errno));
        }
    }
}

/* Reads the schema version: 0 when there is no meta table yet (an empty
 * file, or one whose creation never committed). */
static CK_RV read_version(store_t *st, int64_t *version)
{
    sqlite3_stmt *s = NULL;
    bool row = false;
    CK_RV rv;
    int rc;

    *version = 0;
    rc = sqlite3_prepare_v2(st->db,
                            "SELECT count(*) FROM sqlite_master "
                            "WHERE type = 'table' AND name = 'meta'",
                            -1, &s, NULL);
    if (rc != SQLITE_OK) {
        return sql_rv(st, rc, "read schema");
    }
    rv = step_row(st, s, &row, "read schema");
    if (rv != CKR_OK || !row || sqlite3_column_int64(s, 0) == 0) {
        goto out;
    }
    sqlite3_finalize(s);
    s = NULL;

    rc = sqlite3_prepare_v2(st->db,
                            "SELECT value FROM meta "
                            "WHERE key = 'schema_version'",
                            -1, &s, NULL);
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "read schema version");
        goto out;
    }
    rv = step_row(st, s, &row, "read schema version");
    if (rv != CKR_OK) {
        goto out;
    }
    if (!row || sqlite3_column_type(s, 0) != SQLITE_INTEGER ||
        sqlite3_column_int64(s, 0) < 1) {
        log_error("store: the schema version row is missing or invalid");
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    *version = sqlite3_column_int64(s, 0);
out:
    sqlite3_finalize(s);
    return rv;
}

/* True when the file holds tables although meta is absent: not ours. */
static CK_RV has_foreign_tables(store_t *st, bool *foreign)
{
    sqlite3_stmt *s = NULL;
    bool row = false;
    CK_RV rv;
    int rc;

    *foreign = false;
    rc = sqlite3_prepare_v2(st->db, "SELECT count(*) FROM sqlite_master", -1,
                            &s, NULL);
    if (rc != SQLITE_OK) {
        return sql_rv(st, rc, "read schema");
    }
    rv = step_row(st, s, &row, "read schema");
    if (rv == CKR_OK && row) {
        *foreign = sqlite3_column_int64(s, 0) != 0;
    }
    sqlite3_finalize(s);
    return rv;
}

static CK_RV set_version(store_t *st, int64_t version)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    rc = sqlite3_prepare_v2(st->db,
                            "INSERT OR REPLACE INTO meta(key, value) "
                            "VALUES('schema_version', ?1)",
                            -1, &s, NULL);
    if (rc != SQLITE_OK) {
        return sql_rv(st, rc, "write schema version");
    }
    rc = sqlite3_bind_int64(s, 1, version);
    rv = rc == SQLITE_OK ? step_done(st, s, "write schema version")
                         : sql_rv(st, rc, "write schema version");
    sqlite3_finalize(s);
    return rv;
}

static CK_RV migrate(store_t *st, int64_t from)
{
    int64_t v;
    size_t i;
    CK_RV rv;

    for (v = from; v < STORE_SCHEMA_VERSION; v++) {
        const struct migration *m = NULL;

        for (i = 0; i < UTIL_ARRAY_SIZE(migrations); i++) {
            if (migrations[i].run != NULL && migrations[i].from == v) {
                m = &migrations[i];
            }
        }
        if (m == NULL) {
            log_error("store: no migration from schema version %" PRId64, v);
            return CKR_DEVICE_ERROR;
        }
        log_info("store: migrating schema %" PRId64 " -> %" PRId64, v, v + 1);
        rv = m->run(st);
        if (rv != CKR_OK) {
            return rv;
        }
    }
    return set_version(st, STORE_SCHEMA_VERSION);
}

/* Creates or migrates the schema under the write lock. Several processes
 * may open a new file at once: the check is repeated under the lock. */
static CK_RV setup_schema(store_t *st, bool *created)
{
    int64_t version = 0;
    bool foreign = false;
    CK_RV rv;

    *created = false;
    rv = read_version(st, &version);
    if (rv != CKR_OK) {
        return rv;
    }
    if (version == STORE_SCHEMA_VERSION) {
        return CKR_OK;
    }
    if (version > STORE_SCHEMA_VERSION) {
        goto too_new;
    }

    rv = exec_sql(st, "BEGIN IMMEDIATE", "begin schema setup");
    if (rv != CKR_OK) {
        return rv;
    }
    rv = read_version(st, &version);
    if (rv != CKR_OK) {
        goto fail;
    }
    if (version == 0) {
        rv = has_foreign_tables(st, &foreign);
        if (rv != CKR_OK) {
            goto fail;
        }
        if (foreign) {
            log_error("store: the file holds a database that is not a "
                      "Nimbus store");
            rv = CKR_DEVICE_ERROR;
            goto fail;
        }
        rv = exec_sql(st, schema_v1, "create schema");
        if (rv == CKR_OK) {
            rv = migrate(st, 1);
        }
        if (rv == CKR_OK) {
            rv = exec_sql(st,
                          "INSERT INTO meta(key, value) "
                          "VALUES('generation', 0)",
                          "create schema");
        }
        *created = rv == CKR_OK;
    } else if (version < STORE_SCHEMA_VERSION) {
        rv = migrate(st, version);
    } else if (version > STORE_SCHEMA_VERSION) {
        exec_sql(st, "ROLLBACK", "rollback");
        goto too_new;
    }
    if (rv != CKR_OK) {
        goto fail;
    }
    rv = exec_sql(st, "COMMIT", "commit schema setup");
    if (rv != CKR_OK) {
        goto fail;
    }
    return CKR_OK;

fail:
    *created = false;
    if (!sqlite3_get_autocommit(st->db)) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rv;

too_new:
    log_error("store: schema version %" PRId64 " is newer than this build "
              "supports (%d)",
              version, STORE_SCHEMA_VERSION);
    return CKR_DEVICE_ERROR;
}

/* Connection settings; the journal_mode query is also the first read of
 * the file, so a file that is not a database fails here. */
static CK_RV configure(store_t *st)
{
    sqlite3_stmt *s = NULL;
    const unsigned char *mode;
    bool row = false;
    CK_RV rv;
    int rc;

    sqlite3_extended_result_codes(st->db, 1);
    rc = sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK) {
        return sql_rv(st, rc, "busy timeout");
    }
#ifdef SQLITE_DBCONFIG_DEFENSIVE
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
#endif
#ifdef SQLITE_DBCONFIG_TRUSTED_SCHEMA
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
#endif

    rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
    if (rc != SQLITE_OK) {
        return sql_rv(st, rc, "journal mode");
    }
    rv = step_row(st, s, &row, "journal mode");
    if (rv == CKR_OK && row) {
        mode = sqlite3_column_text(s, 0);
        if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
            log_warn("store: WAL unavailable, journal mode %s",
                     mode ? (const char *)mode : "?");
        }
    }
    sqlite3_finalize(s);
    if (rv != CKR_OK) {
        return rv;
    }
    return exec_sql(st,
                    "PRAGMA synchronous = FULL;"
                    "PRAGMA foreign_keys = ON;"
                    "PRAGMA secure_delete = ON;"
                    "PRAGMA cache_size = -8192;",
                    "pragmas");
}

CK_RV store_durable_by_log(store_t *st)
{
    return_val_if_fail(st != NULL && !st->in_tx, CKR_GENERAL_ERROR);
    return exec_sql(st, "PRAGMA synchronous = NORMAL", "synchronous");
}

CK_RV store_open(const char *path, store_t **out, bool *created)
{
    store_t *st = NULL;
    bool made = false, fresh = false;
    int flags, rc;
    CK_RV rv;

    return_val_if_fail(path != NULL && *path != '\0', CKR_ARGUMENTS_BAD);
    return_val_if_fail(out != NULL, CKR_ARGUMENTS_BAD);
    *out = NULL;
    if (created != NULL) {
        *created = false;
    }
    if (strlen(path) >= STORE_PATH_MAX) {
        log_error("store: path too long");
        return CKR_ARGUMENTS_BAD;
    }

    rv = create_file(path, &made);
    if (rv != CKR_OK) {
        return rv;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return CKR_HOST_MEMORY;
    }

    /* No SQLITE_OPEN_CREATE: the file exists now, with our mode. */
    flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
#ifdef SQLITE_OPEN_EXRESCODE
    flags |= SQLITE_OPEN_EXRESCODE;
#endif
    rc = sqlite3_open_v2(path, &st->db, flags, NULL);
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "open");
        goto out;
    }
    rv = configure(st);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = setup_schema(st, &fresh);
    if (rv != CKR_OK) {
        goto out;
    }
    if (made) {
        restrict_side_files(path);
    }
    if (created != NULL) {
        *created = fresh;
    }
    *out = st;
    st = NULL;
out:
    if (st != NULL) {
        log_error("store: cannot open the store at %s", path);
        store_close(st);
    }
    return rv;
}

void store_close(store_t *st)
{
    size_t i;
    int rc;

    if (st == NULL) {
        return;
    }
    if (st->in_tx) {
        store_rollback(st);
    }
    store_jr_reset(st);
    for (i = 0; i < STMT_COUNT; i++) {
        sqlite3_finalize(st->stmt[i]);
        st->stmt[i] = NULL;
    }
    for (i = 0; i < sizeof(st->find_stmt) / sizeof(st->find_stmt[0]); i++) {
        sqlite3_finalize(st->find_stmt[i]);
        st->find_stmt[i] = NULL;
    }
    if (st->db != NULL) {
        rc = sqlite3_close(st->db);
        if (rc != SQLITE_OK) {
            log_error("store: close: %s", sqlite3_errstr(rc));
        }
    }
    free(st);
}

/* ------------------------------------------------------- transactions */

/* Opens a transaction of kind tx (the journal's reserve, if any, is
 * already done: it must not run under our own write lock). */
static CK_RV begin_tx(store_t *st, enum store_tx tx)
{
    CK_RV rv;

    rv =
        exec_sql(st, tx == STORE_TX_READ ? "BEGIN DEFERRED" : "BEGIN IMMEDIATE",
                 "begin");
    if (rv == CKR_OK) {
        st->in_tx = true;
        st->tx = tx;
    }
    return rv;
}

CK_RV store_begin(store_t *st, bool write)
{
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(!st->in_tx, CKR_GENERAL_ERROR);
    if (!write) {
        return begin_tx(st, STORE_TX_READ);
    }
    if (st->j == NULL) {
        return begin_tx(st, STORE_TX_WRITE);
    }
    /* Ids for the inserts to come, through the log, before the lock: a
     * caller that cannot wait holding its own locks has called
     * store_reserve first, so that this reserves only on a block that it
     * emptied (never: a transaction inserts fewer than a block's low). */
    if ((rv = store_jr_reserve(st, true)) != CKR_OK) {
        return rv;
    }
    return begin_tx(st, STORE_TX_JOURNAL);
}

CK_RV store_reserve(store_t *st)
{
    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(!st->in_tx, CKR_GENERAL_ERROR);
    if (st->j == NULL) {
        return CKR_OK;
    }
    return store_jr_reserve(st, false);
}

CK_RV store_begin_local(store_t *st)
{
    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(!st->in_tx, CKR_GENERAL_ERROR);
    return begin_tx(st, STORE_TX_LOCAL);
}

CK_RV store_commit(store_t *st)
{
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(st->in_tx, CKR_GENERAL_ERROR);
    if (st->tx == STORE_TX_JOURNAL && (st->jn > 0 || st->jfail != CKR_OK)) {
        /* The writes were a rehearsal: the log's apply makes them (on
         * this handle too, maybe: it is out of its transaction first). */
        st->in_tx = false;
        st->tx = STORE_TX_NONE;
        return store_jr_commit(st);
    }
    store_jr_reset(st);
    if (sqlite3_get_autocommit(st->db)) {
        /* SQLite rolled the transaction back itself after an error
         * (I/O, full disk, out of memory): nothing to commit. */
        st->in_tx = false;
        st->tx = STORE_TX_NONE;
        log_error("store: commit: the transaction was already rolled back");
        return CKR_DEVICE_ERROR;
    }
    rv = exec_sql(st, "COMMIT", "commit");
    if (rv != CKR_OK && !sqlite3_get_autocommit(st->db)) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    st->in_tx = false;
    st->tx = STORE_TX_NONE;
    return rv;
}

bool store_in_tx(const store_t *st)
{
    return st != NULL && st->in_tx;
}

void store_rollback(store_t *st)
{
    int rc;

    if (st == NULL || !st->in_tx) {
        return;
    }
    st->in_tx = false;
    st->tx = STORE_TX_NONE;
    store_jr_reset(st);
    if (sqlite3_get_autocommit(st->db)) {
        return; /* SQLite already rolled back */
    }
    rc = sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        log_warn("store: rollback: %s", sqlite3_errstr(rc));
    }
}

/* --------------------------------------------------------------- meta */

CK_RV store_meta_get(store_t *st, const char *key, uint8_t **val, size_t *len)
{
    sqlite3_stmt *s = NULL;
    bool row = false;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && key != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(val != NULL && len != NULL, CKR_GENERAL_ERROR);
    *val = NULL;
    *len = 0;
    if (strlen(key) > STORE_META_KEY_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    rv = get_stmt(st, STMT_META_GET, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "meta get");
        goto out;
    }
    rv = step_row(st, s, &row, "meta get");
    if (rv != CKR_OK || !row) {
        goto out;
    }
    rv = column_bytes(s, 0, STORE_META_VALUE_MAX, val, len);
    if (rv == CKR_OK && *val == NULL) {
        /* Present but empty: still a non-NULL pointer. */
        *val = malloc(1);
        if (*val == NULL) {
            rv = CKR_HOST_MEMORY;
        }
    }
out:
    put_stmt(s);
    return rv;
}

CK_RV store_meta_set(store_t *st, const char *key, const uint8_t *val,
                     size_t len)
{
    sqlite3_stmt *s = NULL;
    bool replicated;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && key != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(val != NULL || len == 0, CKR_GENERAL_ERROR);
    if (strlen(key) > STORE_META_KEY_MAX || len > STORE_META_VALUE_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    replicated = !store_jr_meta_local(key);
    if (replicated && (rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = get_stmt(st, STMT_META_SET, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) {
        rc = bind_bytes(s, 2, val, len);
    }
    rv = rc == SQLITE_OK ? step_done(st, s, "meta set")
                         : sql_rv(st, rc, "meta set");
    put_stmt(s);
    if (rv == CKR_OK && replicated && store_jr_recording(st)) {
        store_jr_meta_set(st, key, val, len);
    }
    return rv;
}

CK_RV store_generation(store_t *st, uint64_t *gen)
{
    int64_t v = 0;
    CK_RV rv;

    return_val_if_fail(st != NULL && gen != NULL, CKR_GENERAL_ERROR);
    rv = query_int(st, STMT_GEN_GET, NULL, &v, "generation");
    *gen = (uint64_t)v;
    return rv;
}

CK_RV store_bump_generation(store_t *st)
{
    int64_t changes = 0;
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    rv = exec_id(st, STMT_GEN_BUMP, 0, 0, 0, &changes, "bump generation");
    if (rv != CKR_OK || changes != 0) {
        return rv;
    }
    /* The row is made with the schema; recreate it if it went missing. */
    rv = exec_id(st, STMT_GEN_INIT, 0, 0, 0, NULL, "bump generation");
    if (rv != CKR_OK) {
        return rv;
    }
    return exec_id(st, STMT_GEN_BUMP, 0, 0, 0, NULL, "bump generation");
}

/* -------------------------------------------------------------- users */

void store_user_clear(store_user_t *u)
{
    if (u == NULL) {
        return;
    }
    util_free_wipe(u->verifier, u->verifier_len);
    util_wipe(u, sizeof(*u));
}

/* Reads a row of USER_COLS into u. */
static CK_RV read_user(sqlite3_stmt *s, store_user_t *u)
{
    const unsigned char *name;
    int64_t id, failures;
    int nlen;
    CK_RV rv;

    memset(u, 0, sizeof(*u));
    id = sqlite3_column_int64(s, 0);
    name = sqlite3_column_text(s, 2);
    nlen = sqlite3_column_bytes(s, 2);
    if (id < 1 || id > UINT32_MAX || name == NULL || nlen < 1 ||
        nlen > STORE_NAME_MAX) {
        log_error("store: invalid user row");
        return CKR_DEVICE_ERROR;
    }
    u->id = (uint32_t)id;
    u->type = sqlite3_column_int(s, 1);
    memcpy(u->name, name, (size_t)nlen);
    u->name[nlen] = '\0';
    failures = sqlite3_column_int64(s, 4);
    if (failures < 0) {
        failures = 0;
    }
    u->failures = failures > UINT32_MAX ? UINT32_MAX : (uint32_t)failures;
    u->version = (uint64_t)sqlite3_column_int64(s, 5);
    u->mofn_pubkey = sqlite3_column_int(s, 6) != 0;
    u->twofa = sqlite3_column_int(s, 7) != 0;
    rv = column_bytes(s, 3, STORE_VERIFIER_MAX, &u->verifier, &u->verifier_len);
    if (rv != CKR_OK) {
        store_user_clear(u);
    }
    return rv;
}

/* One user by a cached statement whose ?1 is already bound. */
static CK_RV user_lookup(store_t *st, sqlite3_stmt *s, store_user_t *u,
                         bool *found)
{
    store_user_t tmp;
    bool row = false;
    CK_RV rv;

    rv = step_row(st, s, &row, "user lookup");
    if (rv != CKR_OK || !row) {
        goto out;
    }
    rv = read_user(s, &tmp);
    if (rv != CKR_OK) {
        goto out;
    }
    *u = tmp;
    *found = true;
out:
    put_stmt(s);
    return rv;
}

CK_RV store_user_by_name(store_t *st, const char *name, store_user_t *u,
                         bool *found)
{
    sqlite3_stmt *s = NULL;
    size_t len;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && name != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(u != NULL && found != NULL, CKR_GENERAL_ERROR);
    *found = false;
    len = strlen(name);
    if (len == 0 || len > STORE_NAME_MAX) {
        return CKR_OK; /* no such user can exist */
    }
    rv = get_stmt(st, STMT_USER_BY_NAME, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_text(s, 1, name, (int)len, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        put_stmt(s);
        return sql_rv(st, rc, "user by name");
    }
    return user_lookup(st, s, u, found);
}

CK_RV store_user_by_id(store_t *st, uint32_t id, store_user_t *u, bool *found)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(u != NULL && found != NULL, CKR_GENERAL_ERROR);
    *found = false;
    rv = get_stmt(st, STMT_USER_BY_ID, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, id);
    if (rc != SQLITE_OK) {
        put_stmt(s);
        return sql_rv(st, rc, "user by id");
    }
    return user_lookup(st, s, u, found);
}

CK_RV store_user_list(store_t *st, store_user_t **users, size_t *n)
{
    store_user_t *arr = NULL;
    sqlite3_stmt *s = NULL;
    size_t cap = 0, count = 0, i;
    bool row = false;
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(users != NULL && n != NULL, CKR_GENERAL_ERROR);
    *users = NULL;
    *n = 0;
    rv = get_stmt(st, STMT_USER_LIST, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    for (;;) {
        rv = step_row(st, s, &row, "user list");
        if (rv != CKR_OK || !row) {
            break;
        }
        rv = grow((void **)&arr, &cap, count + 1, sizeof(*arr));
        if (rv != CKR_OK) {
            break;
        }
        rv = read_user(s, &arr[count]);
        if (rv != CKR_OK) {
            break;
        }
        count++;
    }
    put_stmt(s);
    if (rv != CKR_OK) {
        for (i = 0; i < count; i++) {
            store_user_clear(&arr[i]);
        }
        free(arr);
        return rv;
    }
    *users = arr;
    *n = count;
    return CKR_OK;
}

CK_RV store_user_insert(store_t *st, uint32_t id, const char *name, int type,
                        const uint8_t *verifier, size_t verifier_len,
                        uint32_t *out_id)
{
    sqlite3_stmt *s = NULL;
    sqlite3_int64 rowid;
    uint64_t gid = 0;
    size_t len;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && name != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(verifier != NULL || verifier_len == 0,
                       CKR_GENERAL_ERROR);
    if (out_id != NULL) {
        *out_id = 0;
    }
    len = strlen(name);
    if (len == 0 || len > STORE_NAME_MAX || verifier_len > STORE_VERIFIER_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    if (id == 0 && store_jr_recording(st)) {
        /* A global id, the same on every node. */
        if ((rv = store_jr_take_id(st, STORE_KIND_USER, &gid)) != CKR_OK) {
            return rv;
        }
        id = (uint32_t)gid;
    }
    rv = get_stmt(st, STMT_USER_INSERT, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    /* id 0: NULL lets SQLite pick one above every id ever used. */
    rc = id == 0 ? sqlite3_bind_null(s, 1) : sqlite3_bind_int64(s, 1, id);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_text(s, 2, name, (int)len, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int(s, 3, type);
    }
    if (rc == SQLITE_OK) {
        rc = bind_bytes(s, 4, verifier, verifier_len);
    }
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "user insert");
        goto out;
    }
    rv = step_done(st, s, "user insert");
    if (rv != CKR_OK) {
        goto out;
    }
    rowid = sqlite3_last_insert_rowid(st->db);
    if (out_id != NULL) {
        *out_id = (uint32_t)rowid; /* the CHECK keeps it in range */
    }
    if (store_jr_recording(st)) {
        store_jr_user_insert(st, (uint32_t)rowid, name, type, verifier,
                             verifier_len);
    }
out:
    put_stmt(s);
    return rv;
}

/* An UPDATE of one user that must hit its row. */
static CK_RV user_update(store_t *st, enum stmt_id sid, uint32_t id, int64_t p2,
                         int nparams, const char *what)
{
    int64_t changes = 0;
    CK_RV rv;

    rv = exec_id(st, sid, id, p2, nparams, &changes, what);
    if (rv == CKR_OK && changes == 0) {
        log_debug("store: %s: no user %" PRIu32, what, id);
        rv = CKR_FUNCTION_FAILED;
    }
    return rv;
}

CK_RV store_user_set_verifier(store_t *st, uint32_t id, const uint8_t *verifier,
                              size_t verifier_len)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(verifier != NULL || verifier_len == 0,
                       CKR_GENERAL_ERROR);
    if (verifier_len > STORE_VERIFIER_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = get_stmt(st, STMT_USER_SET_VERIFIER, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, id);
    if (rc == SQLITE_OK) {
        rc = bind_bytes(s, 2, verifier, verifier_len);
    }
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "set verifier");
        goto out;
    }
    rv = step_done(st, s, "set verifier");
    if (rv == CKR_OK && sqlite3_changes(st->db) == 0) {
        rv = CKR_FUNCTION_FAILED;
    }
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_user_verifier(st, id, verifier, verifier_len);
    }
out:
    put_stmt(s);
    return rv;
}

CK_RV store_user_set_type(store_t *st, uint32_t id, int type)
{
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = user_update(st, STMT_USER_SET_TYPE, id, type, 2, "set type");
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_user_type(st, id, type);
    }
    return rv;
}

/*
 * The increment is one conditional UPDATE, so two processes charging the
 * same user at once can neither lose a count nor pass the limit. With no
 * transaction open on this handle, it runs in its own BEGIN IMMEDIATE ..
 * COMMIT, which makes the count read back the one our UPDATE left, and
 * commits (fsync'd) before we return: a crash right after still counts
 * the attempt. Inside a caller's transaction it simply joins it, and the
 * caller's commit makes it durable.
 */
CK_RV store_user_charge_failure(store_t *st, uint32_t id, uint32_t limit,
                                uint32_t *failures, bool *charged)
{
    sqlite3_stmt *s = NULL;
    bool own_tx = false, row = false;
    int64_t count, changed = 0;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && failures != NULL, CKR_GENERAL_ERROR);
    *failures = 0;
    if (charged != NULL) {
        *charged = false;
    }
    if (st->j != NULL && !st->in_tx) {
        /* An entry of its own: the count is the cluster's. */
        return store_jr_charge(st, id, limit, failures, charged);
    }
    if (st->in_tx && (rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    if (!st->in_tx) {
        rv = exec_sql(st, "BEGIN IMMEDIATE", "charge failure");
        if (rv != CKR_OK) {
            return rv;
        }
        own_tx = true;
    }
    rv =
        exec_id(st, STMT_USER_CHARGE, id, limit, 2, &changed, "charge failure");
    if (rv != CKR_OK) {
        goto out;
    }
    rv = get_stmt(st, STMT_USER_FAILURES, &s);
    if (rv != CKR_OK) {
        goto out;
    }
    rc = sqlite3_bind_int64(s, 1, id);
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "charge failure");
        goto out;
    }
    rv = step_row(st, s, &row, "charge failure");
    if (rv != CKR_OK) {
        goto out;
    }
    if (!row) {
        log_debug("store: charge failure: no user %" PRIu32, id);
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    count = sqlite3_column_int64(s, 0);
    put_stmt(s);
    s = NULL;
    if (own_tx) {
        rv = exec_sql(st, "COMMIT", "charge failure");
        own_tx = rv != CKR_OK;
        if (rv != CKR_OK) {
            goto out;
        }
    }
    if (count < 0) {
        count = 0;
    }
    *failures = count > UINT32_MAX ? UINT32_MAX : (uint32_t)count;
    if (charged != NULL) {
        *charged = changed > 0;
    }
    if (store_jr_recording(st)) {
        store_jr_user_charge(st, id, limit);
    }
out:
    put_stmt(s);
    if (own_tx && !sqlite3_get_autocommit(st->db)) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rv;
}

CK_RV store_user_reset_failures(store_t *st, uint32_t id)
{
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = user_update(st, STMT_USER_RESET, id, 0, 1, "reset failures");
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_user_reset(st, id);
    }
    return rv;
}

CK_RV store_user_delete(store_t *st, uint32_t id)
{
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = exec_id(st, STMT_USER_DELETE, id, 0, 1, NULL, "user delete");
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_user_delete(st, id);
    }
    return rv;
}

CK_RV store_user_delete_type(store_t *st, int type)
{
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = exec_id(st, STMT_USER_DELETE_TYPE, type, 0, 1, NULL, "user delete");
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_user_delete_type(st, type);
    }
    return rv;
}

CK_RV store_user_count_type(store_t *st, int type, size_t *n)
{
    return_val_if_fail(st != NULL && n != NULL, CKR_GENERAL_ERROR);
    return count_id(st, STMT_USER_COUNT_TYPE, type, n, "user count");
}

CK_RV store_user_version(store_t *st, uint32_t id, uint64_t *version,
                         bool *found)
{
    sqlite3_stmt *s = NULL;
    bool row = false;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && version != NULL && found != NULL,
                       CKR_GENERAL_ERROR);
    *version = 0;
    *found = false;
    rv = get_stmt(st, STMT_USER_VERSION, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, id);
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "user version");
        goto out;
    }
    rv = step_row(st, s, &row, "user version");
    if (rv == CKR_OK && row) {
        *version = (uint64_t)sqlite3_column_int64(s, 0);
        *found = true;
    }
out:
    put_stmt(s);
    return rv;
}

CK_RV store_user_bump_versions(store_t *st)
{
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = exec_id(st, STMT_USER_BUMP_ALL, 0, 0, 0, NULL, "bump versions");
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_user_bump_versions(st);
    }
    return rv;
}

/* ------------------------------------------------------------ presence */

/*
 * Who is logged in, across processes: a login holds a shared OFD lock on
 * the byte at offset uid of PATH-logins, through an open file description
 * of its own. The kernel drops the lock when the description is closed or
 * the process dies, so a crashed process never leaves a user undeletable.
 * A deleter asks (F_OFD_GETLK) whether an exclusive lock on that byte
 * would conflict with anyone, this process's other logins included.
 */
static CK_RV presence_open(const char *dbpath, int *fd)
{
    char p[STORE_PATH_MAX + 16];

    *fd = -1;
    if (snprintf(p, sizeof(p), "%s-logins", dbpath) >= (int)sizeof(p)) {
        return CKR_GENERAL_ERROR;
    }
    *fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0) {
        log_error("store: cannot open %s: %s", p, strerror(errno));
        return CKR_DEVICE_ERROR;
    }
    return CKR_OK;
}

static void presence_range(struct flock *fl, short type, uint32_t uid)
{
    memset(fl, 0, sizeof(*fl));
    fl->l_type = type;
    fl->l_whence = SEEK_SET;
    fl->l_start = (off_t)uid;
    fl->l_len = 1;
}

CK_RV store_login_mark(const char *dbpath, uint32_t uid, int *fd)
{
    struct flock fl;
    CK_RV rv;

    return_val_if_fail(dbpath != NULL && fd != NULL, CKR_GENERAL_ERROR);
    if ((rv = presence_open(dbpath, fd)) != CKR_OK) {
        return rv;
    }
    presence_range(&fl, F_RDLCK, uid);
    /* Shared locks never conflict with each other; a deleter only looks
     * (F_OFD_GETLK) and never holds one, so this does not wait. */
    if (fcntl(*fd, F_OFD_SETLKW, &fl) != 0) {
        log_error("store: login lock: %s", strerror(errno));
        close(*fd);
        *fd = -1;
        return CKR_DEVICE_ERROR;
    }
    return CKR_OK;
}

void store_login_unmark(int fd)
{
    if (fd >= 0) {
        close(fd); /* drops the lock */
    }
}

CK_RV store_login_held(const char *dbpath, uint32_t uid, bool *held)
{
    struct flock fl;
    int fd = -1;
    CK_RV rv;

    return_val_if_fail(dbpath != NULL && held != NULL, CKR_GENERAL_ERROR);
    *held = true; /* when in doubt, the user stays */
    if ((rv = presence_open(dbpath, &fd)) != CKR_OK) {
        return rv;
    }
    presence_range(&fl, F_WRLCK, uid);
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0) {
        log_error("store: login lock query: %s", strerror(errno));
        rv = CKR_DEVICE_ERROR;
    } else {
        *held = fl.l_type != F_UNLCK;
    }
    close(fd);
    return rv;
}

/* ------------------------------------------------------------ objects */

void store_object_clear(store_object_t *o)
{
    if (o == NULL) {
        return;
    }
    free(o->label);
    free(o->ckid);
    util_free_wipe(o->attrs, o->attrs_len);
    memset(o, 0, sizeof(*o));
}

static CK_RV check_object(const store_object_t *o)
{
    return_val_if_fail(o->label != NULL || o->label_len == 0,
                       CKR_GENERAL_ERROR);
    return_val_if_fail(o->ckid != NULL || o->ckid_len == 0, CKR_GENERAL_ERROR);
    return_val_if_fail(o->attrs != NULL || o->attrs_len == 0,
                       CKR_GENERAL_ERROR);
    if (o->label_len > STORE_LABEL_MAX || o->ckid_len > STORE_CKID_MAX ||
        o->attrs_len > STORE_ATTRS_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    return CKR_OK;
}

/* Binds ?2..?8 (every column but the id) of an insert or update. */
static int bind_object(sqlite3_stmt *s, const store_object_t *o)
{
    int rc;

    rc = sqlite3_bind_int64(s, 2, o->owner);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 3, ulong_to_i64(o->cls));
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 4, ulong_to_i64(o->key_type));
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int(s, 5, o->is_private ? 1 : 0);
    }
    if (rc == SQLITE_OK) {
        rc = bind_bytes(s, 6, o->label, o->label_len);
    }
    if (rc == SQLITE_OK) {
        rc = bind_bytes(s, 7, o->ckid, o->ckid_len);
    }
    if (rc == SQLITE_OK) {
        rc = bind_bytes(s, 8, o->attrs, o->attrs_len);
    }
    return rc;
}

/* Inserts o with id (0: SQLite's next); *out the id it got. */
static CK_RV object_insert(store_t *st, const store_object_t *o, uint64_t id,
                           uint64_t *out)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    *out = 0;
    if (id > INT64_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    rv = get_stmt(st, id != 0 ? STMT_OBJ_INSERT_ID : STMT_OBJ_INSERT, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = bind_object(s, o);
    if (rc == SQLITE_OK && id != 0) {
        rc = sqlite3_bind_int64(s, 1, (int64_t)id);
    }
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "object insert");
        goto out;
    }
    rv = step_done(st, s, "object insert");
    if (rv == CKR_OK) {
        *out = (uint64_t)sqlite3_last_insert_rowid(st->db);
    }
out:
    put_stmt(s);
    return rv;
}

CK_RV store_object_insert(store_t *st, const store_object_t *o, uint64_t *id)
{
    uint64_t gid = 0, got = 0;
    CK_RV rv;

    return_val_if_fail(st != NULL && o != NULL, CKR_GENERAL_ERROR);
    if (id != NULL) {
        *id = 0;
    }
    rv = check_object(o);
    if (rv != CKR_OK) {
        return rv;
    }
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    if (store_jr_recording(st) &&
        (rv = store_jr_take_id(st, STORE_KIND_OBJECT, &gid)) != CKR_OK) {
        return rv;
    }
    rv = object_insert(st, o, gid, &got);
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_object(st, o, got, true);
    }
    if (rv == CKR_OK && id != NULL) {
        *id = got;
    }
    return rv;
}

CK_RV store_int_object_insert_id(store_t *st, const store_object_t *o,
                                 uint64_t id)
{
    uint64_t got = 0;
    CK_RV rv = check_object(o);

    if (rv != CKR_OK) {
        return rv;
    }
    if (id == 0) {
        return CKR_ARGUMENTS_BAD;
    }
    return object_insert(st, o, id, &got);
}

CK_RV store_int_object_version(store_t *st, uint64_t id, uint64_t *version,
                               bool *found)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    *version = 0;
    *found = false;
    if (id == 0 || id > INT64_MAX) {
        return CKR_OK;
    }
    rv = get_stmt(st, STMT_OBJ_VERSION, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, (int64_t)id);
    rv = rc == SQLITE_OK ? step_row(st, s, found, "object version")
                         : sql_rv(st, rc, "object version");
    if (rv == CKR_OK && *found) {
        *version = (uint64_t)sqlite3_column_int64(s, 0);
    }
    put_stmt(s);
    return rv;
}

CK_RV store_object_version(store_t *st, uint64_t id, uint64_t *version,
                           bool *found)
{
    return_val_if_fail(st != NULL && version != NULL && found != NULL,
                       CKR_GENERAL_ERROR);
    return store_int_object_version(st, id, version, found);
}

CK_RV store_int_object_put(store_t *st, const store_object_t *o, uint64_t id,
                           uint64_t version)
{
    sqlite3_stmt *s = NULL;
    uint64_t got = 0;
    CK_RV rv;
    int rc;

    if ((rv = object_insert(st, o, id, &got)) != CKR_OK) {
        return rv;
    }
    if ((rv = get_stmt(st, STMT_OBJ_SET_VERSION, &s)) != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, (int64_t)id);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 2, (int64_t)version);
    }
    rv = rc == SQLITE_OK ? step_done(st, s, "object version")
                         : sql_rv(st, rc, "object version");
    put_stmt(s);
    return rv;
}

CK_RV store_object_put(store_t *st, const store_object_t *o, uint64_t id,
                       uint64_t version, bool *changed)
{
    uint64_t cur = 0;
    bool found = false;
    CK_RV rv;

    return_val_if_fail(st != NULL && o != NULL && changed != NULL,
                       CKR_GENERAL_ERROR);
    *changed = false;
    if ((rv = check_object(o)) != CKR_OK) {
        return rv;
    }
    if (id == 0 || id > INT64_MAX || version == 0 || version > INT64_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    if ((rv = store_jr_check(st)) != CKR_OK ||
        (rv = store_int_object_version(st, id, &cur, &found)) != CKR_OK) {
        return rv;
    }
    if (found) {
        return cur == version ? CKR_OK : CKR_DATA_INVALID;
    }
    if ((rv = store_int_object_put(st, o, id, version)) != CKR_OK) {
        return rv;
    }
    if (store_jr_recording(st)) {
        store_jr_object_put(st, o, id, version);
    }
    *changed = true;
    return CKR_OK;
}

CK_RV store_object_update(store_t *st, const store_object_t *o)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && o != NULL, CKR_GENERAL_ERROR);
    rv = check_object(o);
    if (rv != CKR_OK) {
        return rv;
    }
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    if (o->id == 0 || o->id > INT64_MAX) {
        return CKR_FUNCTION_FAILED; /* no such object */
    }
    rv = get_stmt(st, STMT_OBJ_UPDATE, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, (int64_t)o->id);
    if (rc == SQLITE_OK) {
        rc = bind_object(s, o);
    }
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "object update");
        goto out;
    }
    rv = step_done(st, s, "object update");
    if (rv == CKR_OK && sqlite3_changes(st->db) == 0) {
        log_debug("store: object update: no object %" PRIu64, o->id);
        rv = CKR_FUNCTION_FAILED;
    }
out:
    put_stmt(s);
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_object(st, o, o->id, false);
    }
    return rv;
}

CK_RV store_object_get(store_t *st, uint64_t id, store_object_t *o, bool *found)
{
    store_object_t tmp;
    sqlite3_stmt *s = NULL;
    bool row = false;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && o != NULL && found != NULL,
                       CKR_GENERAL_ERROR);
    *found = false;
    memset(&tmp, 0, sizeof(tmp));
    if (id == 0 || id > INT64_MAX) {
        return CKR_OK;
    }
    rv = get_stmt(st, STMT_OBJ_GET, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, (int64_t)id);
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "object get");
        goto out;
    }
    rv = step_row(st, s, &row, "object get");
    if (rv != CKR_OK || !row) {
        goto out;
    }
    tmp.id = (uint64_t)sqlite3_column_int64(s, 0);
    tmp.owner = (uint32_t)sqlite3_column_int64(s, 1);
    tmp.cls = i64_to_ulong(sqlite3_column_int64(s, 2));
    tmp.key_type = i64_to_ulong(sqlite3_column_int64(s, 3));
    tmp.is_private = sqlite3_column_int(s, 4) != 0;
    rv = column_bytes(s, 5, STORE_LABEL_MAX, &tmp.label, &tmp.label_len);
    if (rv == CKR_OK) {
        rv = column_bytes(s, 6, STORE_CKID_MAX, &tmp.ckid, &tmp.ckid_len);
    }
    if (rv == CKR_OK) {
        rv = column_bytes(s, 7, STORE_ATTRS_MAX, &tmp.attrs, &tmp.attrs_len);
    }
    if (rv != CKR_OK) {
        store_object_clear(&tmp);
        goto out;
    }
    *o = tmp;
    *found = true;
out:
    put_stmt(s);
    return rv;
}

CK_RV store_object_delete(store_t *st, uint64_t id)
{
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    if (id == 0 || id > INT64_MAX) {
        return CKR_OK;
    }
    rv = exec_id(st, STMT_OBJ_DELETE, (int64_t)id, 0, 1, NULL, "object delete");
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_object_delete(st, id);
    }
    return rv;
}

CK_RV store_object_delete_all(store_t *st)
{
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = exec_id(st, STMT_OBJ_DELETE_ALL, 0, 0, 0, NULL, "object delete all");
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_object_delete_all(st);
    }
    return rv;
}

CK_RV store_object_count_owner(store_t *st, uint32_t owner, size_t *n)
{
    return_val_if_fail(st != NULL && n != NULL, CKR_GENERAL_ERROR);
    return count_id(st, STMT_OBJ_COUNT_OWNER, owner, n, "object count");
}

/*
 * One statement from the fields present. When a label or CKA_ID is given
 * (selective), the class, key type and private terms are written "+col"
 * so that SQLite cannot pick their low-selectivity indexes instead.
 */
/*
 * The find statement for q's set of terms, prepared on first use and kept
 * (a find is then a bind and a step through a covering index, not a parse).
 */
static CK_RV find_stmt(store_t *st, const store_query_t *q, sqlite3_stmt **out)
{
    unsigned k = (q->has_label ? 1u : 0u) | (q->has_ckid ? 2u : 0u) |
                 (q->has_cls ? 4u : 0u) | (q->has_key_type ? 8u : 0u) |
                 (q->has_private ? 16u : 0u);
    const char *weak = q->has_label || q->has_ckid ? "+" : "";
    char sql[512];
    int rc;

    if (st->find_stmt[k] == NULL) {
        snprintf(sql, sizeof(sql),
                 "SELECT o.id, o.owner, o.class, o.private, "
                 "EXISTS(SELECT 1 FROM shares WHERE object_id = o.id "
                 "AND user_id = ?1) FROM objects o WHERE 1%s%s%s%s%s%s%s%s%s"
                 " ORDER BY o.id",
                 q->has_label ? " AND o.label = ?" : "",
                 q->has_ckid ? " AND o.ckid = ?" : "",
                 q->has_cls ? " AND " : "", q->has_cls ? weak : "",
                 q->has_cls ? "o.class = ?" : "",
                 q->has_key_type ? " AND " : "", q->has_key_type ? weak : "",
                 q->has_key_type ? "o.key_type = ?" : "",
                 q->has_private ? " AND o.private = ?" : "");
        rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                &st->find_stmt[k], NULL);
        if (rc != SQLITE_OK) {
            st->find_stmt[k] = NULL;
            return sql_rv(st, rc, "find prepare");
        }
    }
    *out = st->find_stmt[k];
    return CKR_OK;
}

CK_RV store_object_find(store_t *st, const store_query_t *q, store_hit_t **hits,
                        size_t *n)
{
    store_hit_t *arr = NULL;
    sqlite3_stmt *s = NULL;
    size_t cap = 0, count = 0;
    bool row = false;
    int rc, i = 2;
    CK_RV rv;

    return_val_if_fail(st != NULL && q != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(hits != NULL && n != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(!q->has_label || q->label != NULL || q->label_len == 0,
                       CKR_GENERAL_ERROR);
    return_val_if_fail(!q->has_ckid || q->ckid != NULL || q->ckid_len == 0,
                       CKR_GENERAL_ERROR);
    *hits = NULL;
    *n = 0;
    if ((q->has_label && q->label_len > STORE_LABEL_MAX) ||
        (q->has_ckid && q->ckid_len > STORE_CKID_MAX)) {
        return CKR_OK; /* nothing that long is stored */
    }

    rv = find_stmt(st, q, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    /* Bind in the order the terms were written; ?1 is the user. */
    rc = sqlite3_bind_int64(s, 1, q->for_user);
    if (rc == SQLITE_OK && q->has_label) {
        rc = bind_bytes(s, i++, q->label, q->label_len);
    }
    if (rc == SQLITE_OK && q->has_ckid) {
        rc = bind_bytes(s, i++, q->ckid, q->ckid_len);
    }
    if (rc == SQLITE_OK && q->has_cls) {
        rc = sqlite3_bind_int64(s, i++, ulong_to_i64(q->cls));
    }
    if (rc == SQLITE_OK && q->has_key_type) {
        rc = sqlite3_bind_int64(s, i++, ulong_to_i64(q->key_type));
    }
    if (rc == SQLITE_OK && q->has_private) {
        rc = sqlite3_bind_int(s, i++, q->is_private ? 1 : 0);
    }
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "find bind");
        goto out;
    }
    for (;;) {
        rv = step_row(st, s, &row, "find");
        if (rv != CKR_OK || !row) {
            break;
        }
        rv = grow((void **)&arr, &cap, count + 1, sizeof(*arr));
        if (rv != CKR_OK) {
            break;
        }
        arr[count].id = (uint64_t)sqlite3_column_int64(s, 0);
        arr[count].owner = (uint32_t)sqlite3_column_int64(s, 1);
        arr[count].cls = i64_to_ulong(sqlite3_column_int64(s, 2));
        arr[count].is_private = sqlite3_column_int(s, 3) != 0;
        arr[count].shared_with_user = sqlite3_column_int(s, 4) != 0;
        count++;
    }
out:
    put_stmt(s);
    if (rv != CKR_OK) {
        free(arr);
        return rv;
    }
    *hits = arr;
    *n = count;
    return CKR_OK;
}

/* ------------------------------------------------------------- shares */

/* Sharing with a user or an object that does not exist fails
 * (CKR_FUNCTION_FAILED, a foreign key); sharing twice is fine. */
CK_RV store_share_set(store_t *st, uint64_t oid, uint32_t uid, bool shared)
{
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    if (oid == 0 || oid > INT64_MAX) {
        return shared ? CKR_FUNCTION_FAILED : CKR_OK;
    }
    rv = exec_id(st, shared ? STMT_SHARE_ADD : STMT_SHARE_DEL, (int64_t)oid,
                 uid, 2, NULL, "share set");
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_share(st, oid, uid, shared);
    }
    return rv;
}

/* The ids of a one-parameter query, ascending: *out malloc'd, an array of
 * uint64_t (wide) or uint32_t. */
static CK_RV list_ids(store_t *st, enum stmt_id id, int64_t p1, bool wide,
                      void **out, size_t *n, const char *what)
{
    size_t elem = wide ? sizeof(uint64_t) : sizeof(uint32_t);
    uint8_t *arr = NULL;
    sqlite3_stmt *s = NULL;
    size_t cap = 0, count = 0;
    bool row = false;
    CK_RV rv;
    int rc;

    *out = NULL;
    *n = 0;
    rv = get_stmt(st, id, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, p1);
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, what);
        goto out;
    }
    for (;;) {
        rv = step_row(st, s, &row, what);
        if (rv != CKR_OK || !row) {
            break;
        }
        rv = grow((void **)&arr, &cap, count + 1, elem);
        if (rv != CKR_OK) {
            break;
        }
        if (wide) {
            ((uint64_t *)(void *)arr)[count++] =
                (uint64_t)sqlite3_column_int64(s, 0);
        } else {
            ((uint32_t *)(void *)arr)[count++] =
                (uint32_t)sqlite3_column_int64(s, 0);
        }
    }
out:
    put_stmt(s);
    if (rv != CKR_OK) {
        free(arr);
        return rv;
    }
    *out = arr;
    *n = count;
    return CKR_OK;
}

CK_RV store_share_list(store_t *st, uint64_t oid, uint32_t **uids, size_t *n)
{
    void *v = NULL;
    CK_RV rv;

    return_val_if_fail(st != NULL && uids != NULL && n != NULL,
                       CKR_GENERAL_ERROR);
    *uids = NULL;
    *n = 0;
    if (oid == 0 || oid > INT64_MAX) {
        return CKR_OK;
    }
    rv =
        list_ids(st, STMT_SHARE_LIST, (int64_t)oid, false, &v, n, "share list");
    *uids = v;
    return rv;
}

CK_RV store_share_has(store_t *st, uint64_t oid, uint32_t uid, bool *shared)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && shared != NULL, CKR_GENERAL_ERROR);
    *shared = false;
    if (oid == 0 || oid > INT64_MAX) {
        return CKR_OK;
    }
    rv = get_stmt(st, STMT_SHARE_HAS, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, (int64_t)oid);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 2, uid);
    }
    rv = rc == SQLITE_OK ? step_row(st, s, shared, "share has")
                         : sql_rv(st, rc, "share has");
    put_stmt(s);
    return rv;
}

CK_RV store_object_list_owner(store_t *st, uint32_t owner, uint64_t **ids,
                              size_t *n)
{
    void *v = NULL;
    CK_RV rv;

    return_val_if_fail(st != NULL && ids != NULL && n != NULL,
                       CKR_GENERAL_ERROR);
    rv = list_ids(st, STMT_OBJ_LIST_OWNER, owner, true, &v, n, "object list");
    *ids = v;
    return rv;
}

CK_RV store_share_list_user(store_t *st, uint32_t uid, uint64_t **oids,
                            size_t *n)
{
    void *v = NULL;
    CK_RV rv;

    return_val_if_fail(st != NULL && oids != NULL && n != NULL,
                       CKR_GENERAL_ERROR);
    rv = list_ids(st, STMT_SHARE_LIST_USER, uid, true, &v, n, "share list");
    *oids = v;
    return rv;
}

/* -------------------------------------------------------------- audit */

static bool audit_text_ok(const char *t)
{
    size_t len = strlen(t);

    return len > 0 && len <= STORE_AUDIT_TEXT_MAX;
}

CK_RV store_audit_insert(store_t *st, const store_audit_t *rec)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && rec != NULL, CKR_GENERAL_ERROR);
    /* Recorded, the seq may be 0: the applying node chains the record. */
    if ((rec->seq == 0 && !store_jr_recording(st)) || rec->seq > INT64_MAX ||
        rec->time > INT64_MAX ||
        strnlen(rec->hsm_id, sizeof(rec->hsm_id)) > STORE_AUDIT_TEXT_MAX ||
        strnlen(rec->op, sizeof(rec->op)) > STORE_AUDIT_TEXT_MAX ||
        !audit_text_ok(rec->hsm_id) || !audit_text_ok(rec->op) ||
        strnlen(rec->peer, sizeof(rec->peer)) > STORE_AUDIT_PEER_MAX ||
        (rec->fmt != 1 && rec->fmt != STORE_AUDIT_FMT_PEER) ||
        (rec->fmt == 1 && rec->peer[0] != '\0')) {
        return CKR_ARGUMENTS_BAD;
    }
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    /* Recorded without seq and hash (the core's, over this node's
     * chain); a local insert lets the transaction read its own record. */
    if (rec->seq == 0) {
        store_jr_audit(st, rec);
        return CKR_OK;
    }
    rv = get_stmt(st, STMT_AUDIT_INSERT, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, (int64_t)rec->seq);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 2, (int64_t)rec->time);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_text(s, 3, rec->hsm_id, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 4, rec->user);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_text(s, 5, rec->op, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 6, ulong_to_i64((CK_ULONG)rec->oid));
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 7, ulong_to_i64((CK_ULONG)rec->result));
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_blob(s, 8, rec->hash, STORE_AUDIT_HASH_LEN,
                               SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_text(s, 9, rec->peer, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 10, (int64_t)rec->fmt);
    }
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "audit insert");
        goto out;
    }
    rv = step_done(st, s, "audit insert");
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_audit(st, rec);
    }
out:
    put_stmt(s);
    return rv;
}

/* Copies a text column into buf; false when it is not text of 1..max
 * bytes without a NUL. */
static bool audit_column_text(sqlite3_stmt *s, int i, char *buf, size_t max)
{
    const unsigned char *t;
    int n;

    buf[0] = '\0';
    if (sqlite3_column_type(s, i) != SQLITE_TEXT) {
        return false;
    }
    t = sqlite3_column_text(s, i);
    n = sqlite3_column_bytes(s, i);
    if (t == NULL || n <= 0 || (size_t)n > max ||
        memchr(t, '\0', (size_t)n) != NULL) {
        return false;
    }
    memcpy(buf, t, (size_t)n);
    buf[n] = '\0';
    return true;
}

static bool audit_column_int(sqlite3_stmt *s, int i, int64_t *v)
{
    if (sqlite3_column_type(s, i) != SQLITE_INTEGER) {
        *v = 0;
        return false;
    }
    *v = sqlite3_column_int64(s, i);
    return true;
}

/* One row of STMT_AUDIT_READ; whatever does not fit sets malformed. */
static void audit_row(sqlite3_stmt *s, store_audit_t *r)
{
    const void *h;
    int64_t v;
    bool ok = true;

    memset(r, 0, sizeof(*r));
    r->seq = (uint64_t)sqlite3_column_int64(s, 0); /* the rowid */
    ok = audit_column_int(s, 1, &v) && v >= 0;
    r->time = (uint64_t)v;
    ok = audit_column_text(s, 2, r->hsm_id, STORE_AUDIT_TEXT_MAX) && ok;
    ok = audit_column_int(s, 3, &v) && v >= 0 && v <= UINT32_MAX && ok;
    r->user = (uint32_t)v;
    ok = audit_column_text(s, 4, r->op, STORE_AUDIT_TEXT_MAX) && ok;
    ok = audit_column_int(s, 5, &v) && ok;
    r->oid = (uint64_t)i64_to_ulong(v);
    ok = audit_column_int(s, 6, &v) && ok;
    r->result = (uint64_t)i64_to_ulong(v);
    h = sqlite3_column_blob(s, 7);
    if (sqlite3_column_type(s, 7) == SQLITE_BLOB && h != NULL &&
        sqlite3_column_bytes(s, 7) == STORE_AUDIT_HASH_LEN) {
        memcpy(r->hash, h, STORE_AUDIT_HASH_LEN);
    } else {
        ok = false;
    }
    /* The peer may be empty (none named; every format 1 record). */
    if (sqlite3_column_type(s, 8) != SQLITE_TEXT ||
        (sqlite3_column_bytes(s, 8) > 0 &&
         !audit_column_text(s, 8, r->peer, STORE_AUDIT_PEER_MAX))) {
        ok = false;
    }
    ok = audit_column_int(s, 9, &v) && (v == 1 || v == STORE_AUDIT_FMT_PEER) &&
         ok;
    r->fmt = (unsigned)v;
    if (r->fmt == 1 && r->peer[0] != '\0') {
        ok = false; /* format 1 has no peer: its hash would not cover it */
    }
    r->malformed = !ok;
}

CK_RV store_audit_read(store_t *st, uint64_t after, size_t max,
                       store_audit_t **recs, size_t *n)
{
    store_audit_t *arr = NULL;
    sqlite3_stmt *s = NULL;
    size_t count = 0;
    bool row = false;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && recs != NULL && n != NULL,
                       CKR_GENERAL_ERROR);
    *recs = NULL;
    *n = 0;
    if (max == 0 || max > STORE_AUDIT_READ_MAX || after >= INT64_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    arr = calloc(max, sizeof(*arr));
    if (arr == NULL) {
        return CKR_HOST_MEMORY;
    }
    rv = get_stmt(st, STMT_AUDIT_READ, &s);
    if (rv != CKR_OK) {
        free(arr);
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, (int64_t)after);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 2, (int64_t)max);
    }
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "audit read");
        goto out;
    }
    while (count < max) {
        rv = step_row(st, s, &row, "audit read");
        if (rv != CKR_OK || !row) {
            break;
        }
        audit_row(s, &arr[count++]);
    }
out:
    put_stmt(s);
    if (rv != CKR_OK || count == 0) {
        free(arr);
        return rv;
    }
    *recs = arr;
    *n = count;
    return CKR_OK;
}

/* ------------------------------------------------------------- quorum */

CK_RV store_user_mofn_get(store_t *st, uint32_t id, uint8_t **key, size_t *len,
                          bool *twofa, bool *found)
{
    sqlite3_stmt *s = NULL;
    uint8_t *k = NULL;
    size_t klen = 0;
    bool row = false;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && found != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail((key == NULL) == (len == NULL), CKR_GENERAL_ERROR);
    *found = false;
    if (key != NULL) {
        *key = NULL;
        *len = 0;
    }
    if (twofa != NULL) {
        *twofa = false;
    }
    rv = get_stmt(st, STMT_USER_MOFN_GET, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, id);
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "user mofn get");
        goto out;
    }
    rv = step_row(st, s, &row, "user mofn get");
    if (rv != CKR_OK || !row) {
        goto out;
    }
    if (key != NULL && sqlite3_column_type(s, 0) != SQLITE_NULL) {
        rv = column_bytes(s, 0, STORE_QUORUM_KEY_MAX, &k, &klen);
        if (rv != CKR_OK) {
            goto out;
        }
        if (k == NULL) {
            log_error("store: an empty quorum key");
            rv = CKR_DEVICE_ERROR;
            goto out;
        }
        *key = k;
        *len = klen;
    }
    if (twofa != NULL) {
        *twofa = sqlite3_column_int(s, 1) != 0;
    }
    *found = true;
out:
    put_stmt(s);
    return rv;
}

CK_RV store_user_mofn_set(store_t *st, uint32_t id, const uint8_t *key,
                          size_t len, bool twofa)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail((key == NULL) == (len == 0), CKR_GENERAL_ERROR);
    if (len > STORE_QUORUM_KEY_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = get_stmt(st, STMT_USER_MOFN_SET, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, id);
    if (rc == SQLITE_OK) {
        rc = key == NULL ? sqlite3_bind_null(s, 2) : bind_bytes(s, 2, key, len);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int(s, 3, twofa ? 1 : 0);
    }
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "user mofn set");
        goto out;
    }
    rv = step_done(st, s, "user mofn set");
    if (rv == CKR_OK && sqlite3_changes(st->db) == 0) {
        log_debug("store: user mofn set: no user %" PRIu32, id);
        rv = CKR_FUNCTION_FAILED;
    }
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_user_mofn(st, id, key, len, twofa);
    }
out:
    put_stmt(s);
    return rv;
}

CK_RV store_user_count_mofn(store_t *st, int type, size_t *n)
{
    return_val_if_fail(st != NULL && n != NULL, CKR_GENERAL_ERROR);
    return count_id(st, STMT_USER_COUNT_MOFN, type, n, "user count mofn");
}

CK_RV store_quorum_m_get(store_t *st, unsigned service, unsigned *m)
{
    sqlite3_stmt *s = NULL;
    bool row = false;
    int64_t v;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && m != NULL, CKR_GENERAL_ERROR);
    *m = 1;
    rv = get_stmt(st, STMT_QM_GET, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, service);
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "quorum m get");
        goto out;
    }
    rv = step_row(st, s, &row, "quorum m get");
    if (rv == CKR_OK && row) {
        v = sqlite3_column_int64(s, 0);
        if (v < 1 || v > 255) {
            log_error("store: invalid quorum M row");
            rv = CKR_DEVICE_ERROR;
        } else {
            *m = (unsigned)v;
        }
    }
out:
    put_stmt(s);
    return rv;
}

CK_RV store_quorum_m_set(store_t *st, unsigned service, unsigned m)
{
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    if (m < 1 || m > 255) {
        return CKR_ARGUMENTS_BAD;
    }
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = exec_id(st, STMT_QM_SET, service, m, 2, NULL, "quorum m set");
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_quorum_m(st, service, m);
    }
    return rv;
}

/* Reads a row of QT_COLS into t. */
static CK_RV read_qtoken(sqlite3_stmt *s, store_qtoken_t *t)
{
    int64_t id = sqlite3_column_int64(s, 0);
    int64_t service = sqlite3_column_int64(s, 1);
    int64_t requester = sqlite3_column_int64(s, 2);
    int64_t needed = sqlite3_column_int64(s, 7);
    const void *lid = sqlite3_column_blob(s, 4);
    const void *dg = sqlite3_column_blob(s, 8);

    memset(t, 0, sizeof(*t));
    if (id < 1 || id > UINT32_MAX || service < 0 || service > UINT32_MAX ||
        requester < 1 || requester > UINT32_MAX || needed < 0 ||
        needed > 255 || lid == NULL ||
        sqlite3_column_bytes(s, 4) != STORE_LOGIN_ID_LEN || dg == NULL ||
        sqlite3_column_bytes(s, 8) != STORE_QTOKEN_DIGEST_LEN) {
        log_error("store: invalid quorum token row");
        return CKR_DEVICE_ERROR;
    }
    t->id = (uint32_t)id;
    t->service = (unsigned)service;
    t->requester = (uint32_t)requester;
    t->requester_version = (uint64_t)sqlite3_column_int64(s, 3);
    memcpy(t->login_id, lid, STORE_LOGIN_ID_LEN);
    t->issued = (uint64_t)sqlite3_column_int64(s, 5);
    t->expires = (uint64_t)sqlite3_column_int64(s, 6);
    t->needed = (unsigned)needed;
    memcpy(t->digest, dg, STORE_QTOKEN_DIGEST_LEN);
    return CKR_OK;
}

/* Inserts t with id (0: SQLite's next); *out the id it got. */
static CK_RV qtoken_insert(store_t *st, const store_qtoken_t *t, uint32_t id,
                           uint32_t *out)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    *out = 0;
    if (t->issued > INT64_MAX || t->expires > INT64_MAX ||
        t->requester_version > INT64_MAX || t->needed > 255) {
        return CKR_ARGUMENTS_BAD;
    }
    rv = get_stmt(st, id != 0 ? STMT_QT_INSERT_ID : STMT_QT_INSERT, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, t->service);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 2, t->requester);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 3, (int64_t)t->requester_version);
    }
    if (rc == SQLITE_OK) {
        rc = bind_bytes(s, 4, t->login_id, STORE_LOGIN_ID_LEN);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 5, (int64_t)t->issued);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 6, (int64_t)t->expires);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 7, t->needed);
    }
    if (rc == SQLITE_OK) {
        rc = bind_bytes(s, 8, t->digest, STORE_QTOKEN_DIGEST_LEN);
    }
    if (rc == SQLITE_OK && id != 0) {
        rc = sqlite3_bind_int64(s, 9, id);
    }
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "quorum token insert");
        goto out;
    }
    rv = step_done(st, s, "quorum token insert");
    if (rv == CKR_OK) {
        *out = (uint32_t)sqlite3_last_insert_rowid(st->db); /* CHECKed */
    }
out:
    put_stmt(s);
    return rv;
}

CK_RV store_qtoken_insert(store_t *st, const store_qtoken_t *t, uint32_t *id)
{
    uint32_t got = 0;
    uint64_t gid = 0;
    CK_RV rv;

    return_val_if_fail(st != NULL && t != NULL, CKR_GENERAL_ERROR);
    if (id != NULL) {
        *id = 0;
    }
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    if (store_jr_recording(st) &&
        (rv = store_jr_take_id(st, STORE_KIND_QTOKEN, &gid)) != CKR_OK) {
        return rv;
    }
    rv = qtoken_insert(st, t, (uint32_t)gid, &got);
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_qtoken_insert(st, t, got);
    }
    if (rv == CKR_OK && id != NULL) {
        *id = got;
    }
    return rv;
}

CK_RV store_int_qtoken_insert_id(store_t *st, const store_qtoken_t *t,
                                 uint32_t id)
{
    uint32_t got = 0;

    if (id == 0) {
        return CKR_ARGUMENTS_BAD;
    }
    return qtoken_insert(st, t, id, &got);
}

/* One token by a cached statement whose ?1 is already bound. */
static CK_RV qtoken_lookup(store_t *st, sqlite3_stmt *s, store_qtoken_t *t,
                           bool *found)
{
    store_qtoken_t tmp;
    bool row = false;
    CK_RV rv;

    rv = step_row(st, s, &row, "quorum token lookup");
    if (rv == CKR_OK && row) {
        rv = read_qtoken(s, &tmp);
        if (rv == CKR_OK) {
            *t = tmp;
            *found = true;
        }
    }
    put_stmt(s);
    return rv;
}

CK_RV store_qtoken_get(store_t *st, uint32_t id, store_qtoken_t *t,
                       bool *found)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && t != NULL && found != NULL,
                       CKR_GENERAL_ERROR);
    *found = false;
    rv = get_stmt(st, STMT_QT_GET, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, id);
    if (rc != SQLITE_OK) {
        put_stmt(s);
        return sql_rv(st, rc, "quorum token get");
    }
    return qtoken_lookup(st, s, t, found);
}

CK_RV store_qtoken_by_digest(store_t *st,
                             const uint8_t digest[STORE_QTOKEN_DIGEST_LEN],
                             store_qtoken_t *t, bool *found)
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && digest != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(t != NULL && found != NULL, CKR_GENERAL_ERROR);
    *found = false;
    rv = get_stmt(st, STMT_QT_BY_DIGEST, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = bind_bytes(s, 1, digest, STORE_QTOKEN_DIGEST_LEN);
    if (rc != SQLITE_OK) {
        put_stmt(s);
        return sql_rv(st, rc, "quorum token by digest");
    }
    return qtoken_lookup(st, s, t, found);
}

CK_RV store_qtoken_list(store_t *st, store_qtoken_t **ts, size_t *n)
{
    store_qtoken_t *arr = NULL;
    sqlite3_stmt *s = NULL;
    size_t cap = 0, count = 0;
    bool row = false;
    CK_RV rv;

    return_val_if_fail(st != NULL && ts != NULL && n != NULL,
                       CKR_GENERAL_ERROR);
    *ts = NULL;
    *n = 0;
    rv = get_stmt(st, STMT_QT_LIST, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    for (;;) {
        rv = step_row(st, s, &row, "quorum token list");
        if (rv != CKR_OK || !row) {
            break;
        }
        rv = grow((void **)&arr, &cap, count + 1, sizeof(*arr));
        if (rv != CKR_OK) {
            break;
        }
        rv = read_qtoken(s, &arr[count]);
        if (rv != CKR_OK) {
            break;
        }
        count++;
    }
    put_stmt(s);
    if (rv != CKR_OK || count == 0) {
        free(arr);
        return rv;
    }
    *ts = arr;
    *n = count;
    return CKR_OK;
}

CK_RV store_qtoken_count(store_t *st, size_t *n)
{
    int64_t v = 0;
    CK_RV rv;

    return_val_if_fail(st != NULL && n != NULL, CKR_GENERAL_ERROR);
    rv = query_int(st, STMT_QT_COUNT, NULL, &v, "quorum token count");
    *n = (size_t)v;
    return rv;
}

CK_RV store_qtoken_delete(store_t *st, uint32_t id, bool *deleted)
{
    int64_t changes = 0;
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    if (deleted != NULL) {
        *deleted = false;
    }
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = exec_id(st, STMT_QT_DELETE, id, 0, 1, &changes, "quorum token delete");
    if (deleted != NULL) {
        *deleted = rv == CKR_OK && changes > 0;
    }
    /* A caller that asks acts on the answer (a token is used once): the
     * apply must see the row go too. */
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_qtoken_delete(st, id, deleted != NULL && changes > 0);
    }
    return rv;
}

CK_RV store_qtoken_delete_login(store_t *st,
                                const uint8_t login_id[STORE_LOGIN_ID_LEN])
{
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && login_id != NULL, CKR_GENERAL_ERROR);
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = get_stmt(st, STMT_QT_DELETE_LOGIN, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = bind_bytes(s, 1, login_id, STORE_LOGIN_ID_LEN);
    rv = rc == SQLITE_OK ? step_done(st, s, "quorum token delete login")
                         : sql_rv(st, rc, "quorum token delete login");
    put_stmt(s);
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_qtoken_delete_login(st, login_id);
    }
    return rv;
}

CK_RV store_qtoken_purge(store_t *st, uint64_t now, size_t *purged)
{
    int64_t changes = 0;
    CK_RV rv;

    return_val_if_fail(st != NULL, CKR_GENERAL_ERROR);
    if (purged != NULL) {
        *purged = 0;
    }
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    if (now > INT64_MAX) {
        now = INT64_MAX;
    }
    rv = exec_id(st, STMT_QT_PURGE, (int64_t)now, 0, 1, &changes,
                 "quorum token purge");
    if (purged != NULL) {
        *purged = rv == CKR_OK && changes > 0 ? (size_t)changes : 0;
    }
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_qtoken_purge(st, now);
    }
    return rv;
}

CK_RV store_qtoken_approve(store_t *st, uint32_t id, uint32_t approver,
                           bool *added)
{
    int64_t changes = 0;
    CK_RV rv;

    return_val_if_fail(st != NULL && added != NULL, CKR_GENERAL_ERROR);
    *added = false;
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    rv = exec_id(st, STMT_QA_ADD, id, approver, 2, &changes,
                 "quorum approval");
    *added = rv == CKR_OK && changes > 0;
    /* The caller counts the approval when added: the apply must add it
     * too (not an approval another node counted meanwhile). */
    if (rv == CKR_OK && store_jr_recording(st)) {
        store_jr_qtoken_approve(st, id, approver, *added);
    }
    return rv;
}

CK_RV store_qtoken_approvers(store_t *st, uint32_t id, uint32_t **uids,
                             size_t *n)
{
    uint32_t *arr = NULL;
    sqlite3_stmt *s = NULL;
    size_t cap = 0, count = 0;
    bool row = false;
    int64_t v;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && uids != NULL && n != NULL,
                       CKR_GENERAL_ERROR);
    *uids = NULL;
    *n = 0;
    rv = get_stmt(st, STMT_QA_LIST, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    rc = sqlite3_bind_int64(s, 1, id);
    if (rc != SQLITE_OK) {
        rv = sql_rv(st, rc, "quorum approvers");
        goto out;
    }
    for (;;) {
        rv = step_row(st, s, &row, "quorum approvers");
        if (rv != CKR_OK || !row) {
            break;
        }
        v = sqlite3_column_int64(s, 0);
        if (v < 1 || v > UINT32_MAX) {
            log_error("store: invalid quorum approval row");
            rv = CKR_DEVICE_ERROR;
            break;
        }
        rv = grow((void **)&arr, &cap, count + 1, sizeof(*arr));
        if (rv != CKR_OK) {
            break;
        }
        arr[count++] = (uint32_t)v;
    }
out:
    put_stmt(s);
    if (rv != CKR_OK || count == 0) {
        free(arr);
        return rv;
    }
    *uids = arr;
    *n = count;
    return CKR_OK;
}
