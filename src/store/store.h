/*
 * store.h - the SQLite store: users, objects, shares, token metadata.
 *
 * The store keeps what the core hands it: it does not seal, verify or
 * decide anything. Secrets arrive already sealed (object attribute blobs)
 * or as verifiers (users). Every change runs in a transaction; a write
 * transaction is BEGIN IMMEDIATE so that two processes serialize.
 *
 * A store_t is used by one thread at a time: the core holds its lock
 * around every call sequence from store_begin() to store_commit().
 * Return values: CKR_OK; CKR_DEVICE_ERROR (I/O, corrupt file, busy past
 * the timeout); CKR_HOST_MEMORY; CKR_FUNCTION_FAILED for a constraint
 * violation (e.g. a duplicate user name).
 */
#ifndef NIMBUS_STORE_H
#define NIMBUS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pkcs11/pkcs11.h"

typedef struct store store_t;

#define STORE_SCHEMA_VERSION 6

/* Opens (creating if missing, mode 0600) the database at path; creates the
 * schema or migrates it. *created tells whether the file was new. */
CK_RV store_open(const char *path, store_t **out, bool *created);
void store_close(store_t *st);

/* Transactions. write=true takes the write lock at once (IMMEDIATE). */
CK_RV store_begin(store_t *st, bool write);
CK_RV store_commit(store_t *st);
void store_rollback(store_t *st);
/* In a cluster (a journal attached, below): reserves, through the log,
 * the global ids that the next write transactions' inserts take, when
 * this handle's blocks run low; store_begin(write) then has nothing to
 * submit before its transaction. Outside a transaction. CKR_OK at once
 * without a journal or when the blocks suffice. */
CK_RV store_reserve(store_t *st);
/*
 * A precondition of the open write transaction, checked now: rv (one of
 * CKR_ACTION_PROHIBITED, CKR_ARGUMENTS_BAD, CKR_DATA_INVALID,
 * CKR_FUNCTION_REJECTED, CKR_USER_NOT_LOGGED_IN) when it does not hold.
 * In a cluster it is also an operation of the entry, checked again where
 * it stands when every node applies it: two writers that both saw it hold
 * on their own node's state (or one node's, with its lock let go while
 * the first waited) cannot both pass.
 */
enum store_require {
    /* user id exists with type type */
    STORE_REQUIRE_USER_TYPE = 1,
    /* user id exists and owns no object; when its type is type, another
     * user of that type exists (never the last CO) */
    STORE_REQUIRE_USER_DELETABLE = 2,
    /* fewer than id quorum tokens (type 0) */
    STORE_REQUIRE_QTOKENS_BELOW = 3,
};
CK_RV store_require(store_t *st, enum store_require what, uint64_t id, int type,
                    CK_RV rv);
/* Whether store_begin() is in force on this handle. */
bool store_in_tx(const store_t *st);

/* Token metadata: a small key/value table (label, serial, activated, ...).
 * store_meta_get: *val malloc'd, CKR_OK with *val NULL when absent. */
CK_RV store_meta_get(store_t *st, const char *key, uint8_t **val, size_t *len);
CK_RV store_meta_set(store_t *st, const char *key, const uint8_t *val,
                     size_t len);
/* A counter bumped by every write transaction of any process: a reader
 * compares it to learn whether anything changed since it last looked. */
CK_RV store_generation(store_t *st, uint64_t *gen);
CK_RV store_bump_generation(store_t *st);

/* ------------------------------------------------------------- users */

typedef struct {
    uint32_t id;
    int type;          /* hsm_user_type_t, stored as an integer */
    char name[32];     /* as created; compared without case */
    uint8_t *verifier; /* malloc'd; free with store_user_clear */
    size_t verifier_len;
    uint32_t failures; /* consecutive failed logins */
    uint64_t version;  /* bumped by password changes and re-initialization */
    bool mofn_pubkey;  /* a quorum key is registered (schema 5) */
    bool twofa;        /* two-factor login is on (schema 5) */
} store_user_t;

void store_user_clear(store_user_t *u);

/* *found false (and u untouched) when no such user. */
CK_RV store_user_by_name(store_t *st, const char *name, store_user_t *u,
                         bool *found);
CK_RV store_user_by_id(store_t *st, uint32_t id, store_user_t *u, bool *found);
/* All users by ascending id; *users malloc'd, each to be cleared. */
CK_RV store_user_list(store_t *st, store_user_t **users, size_t *n);
/* id 0: the next free id. A duplicate name (any case): CKR_FUNCTION_FAILED */
CK_RV store_user_insert(store_t *st, uint32_t id, const char *name, int type,
                        const uint8_t *verifier, size_t verifier_len,
                        uint32_t *out_id);
/* Sets the verifier, clears the failure count, bumps the version. */
CK_RV store_user_set_verifier(store_t *st, uint32_t id, const uint8_t *verifier,
                              size_t verifier_len);
CK_RV store_user_set_type(store_t *st, uint32_t id, int type);
/*
 * Atomically adds one failure unless the count has reached limit; returns
 * the count after the call in *failures, and in *charged (may be NULL)
 * whether a failure was added, i.e. whether the caller may try the
 * password. Committed at once (its own transaction) so that a crash after
 * it still counts the attempt.
 */
CK_RV store_user_charge_failure(store_t *st, uint32_t id, uint32_t limit,
                                uint32_t *failures, bool *charged);
CK_RV store_user_reset_failures(store_t *st, uint32_t id);
CK_RV store_user_delete(store_t *st, uint32_t id);
CK_RV store_user_delete_type(store_t *st, int type);
CK_RV store_user_count_type(store_t *st, int type, size_t *n);
/* The version of user id; *found false when the user is gone. One indexed
 * read: cheap enough for every call that needs a role. */
CK_RV store_user_version(store_t *st, uint32_t id, uint64_t *version,
                         bool *found);
/* Bumps every user's version (re-initialization: no login survives it). */
CK_RV store_user_bump_versions(store_t *st);

/*
 * Logins across processes, beside the database at dbpath: mark holds user
 * uid as logged in until unmark(*fd) or the process's end (a crash too);
 * held tells whether any process, this one included, holds uid.
 */
CK_RV store_login_mark(const char *dbpath, uint32_t uid, int *fd);
void store_login_unmark(int fd);
CK_RV store_login_held(const char *dbpath, uint32_t uid, bool *held);

/* ------------------------------------------------------------- objects */

/* The columns the store indexes, and the attribute blob. */
typedef struct {
    uint64_t id;
    uint32_t owner;
    CK_ULONG cls;      /* CKA_CLASS */
    CK_ULONG key_type; /* CKA_KEY_TYPE, CK_UNAVAILABLE_INFORMATION if none */
    bool is_private;   /* CKA_PRIVATE */
    uint8_t *label;    /* CKA_LABEL, may be NULL with label_len 0 */
    size_t label_len;
    uint8_t *ckid; /* CKA_ID */
    size_t ckid_len;
    uint8_t *attrs; /* serialized attributes, sensitive ones sealed */
    size_t attrs_len;
} store_object_t;

void store_object_clear(store_object_t *o);

/* Inserts with a fresh id (never reused, even after a delete). */
CK_RV store_object_insert(store_t *st, const store_object_t *o, uint64_t *id);
/* Rewrites every column of object o->id. */
CK_RV store_object_update(store_t *st, const store_object_t *o);
CK_RV store_object_get(store_t *st, uint64_t id, store_object_t *o,
                       bool *found);
CK_RV store_object_delete(store_t *st, uint64_t id);
/* An object's version (1 at insert, bumped by each update). */
CK_RV store_object_version(store_t *st, uint64_t id, uint64_t *version,
                           bool *found);
/*
 * Inserts o (its blob sealed under this node's key) with the id and
 * version given: a masked object put back (insertMaskedObject). An object
 * with that id and version already there: nothing done, *changed false;
 * with another version: CKR_DATA_INVALID. In cluster mode the apply
 * also refuses (CKR_DATA_INVALID) an id the cluster never handed out (at
 * or above its object counter): a node's reserved block may hold it.
 */
CK_RV store_object_put(store_t *st, const store_object_t *o, uint64_t id,
                       uint64_t version, bool *changed);
CK_RV store_object_delete_all(store_t *st);
CK_RV store_object_count_owner(store_t *st, uint32_t owner, size_t *n);
/* The ids of the objects owner owns, ascending; *ids malloc'd. */
CK_RV store_object_list_owner(store_t *st, uint32_t owner, uint64_t **ids,
                              size_t *n);

/* A search on the indexed columns; a NULL/absent field matches anything. */
typedef struct {
    bool has_cls;
    CK_ULONG cls;
    bool has_key_type;
    CK_ULONG key_type;
    bool has_label;
    const uint8_t *label;
    size_t label_len;
    bool has_ckid;
    const uint8_t *ckid;
    size_t ckid_len;
    bool has_private;
    bool is_private;
    uint32_t for_user; /* fills shared_with_user of each hit */
} store_query_t;

typedef struct {
    uint64_t id;
    uint32_t owner;
    CK_ULONG cls;
    bool is_private;
    bool shared_with_user;
} store_hit_t;

/* *hits malloc'd, ascending id. */
CK_RV store_object_find(store_t *st, const store_query_t *q, store_hit_t **hits,
                        size_t *n);

/* Shares: which users (other than the owner) may use an object. */
CK_RV store_share_set(store_t *st, uint64_t oid, uint32_t uid, bool shared);
CK_RV store_share_list(store_t *st, uint64_t oid, uint32_t **uids, size_t *n);
CK_RV store_share_has(store_t *st, uint64_t oid, uint32_t uid, bool *shared);
/* The objects shared with user uid, ascending; *oids malloc'd. */
CK_RV store_share_list_user(store_t *st, uint32_t uid, uint64_t **oids,
                            size_t *n);

/* ------------------------------------------------------------- quorum */

/*
 * Quorum (M of N) state, schema 5. The store keeps what the core hands
 * it: a user's registered key is opaque bytes (the core parses and checks
 * it), a token is the SHA-256 of the bytes the core issued. Rows of a
 * deleted user (its key, its tokens, its approvals) go with the user.
 */
#define STORE_QUORUM_KEY_MAX 4096u /* a registered key, DER SPKI */
#define STORE_LOGIN_ID_LEN 16      /* a login's random id */
#define STORE_QTOKEN_DIGEST_LEN 32

/* The registered key of user id (*key malloc'd, NULL when none) and its
 * 2FA flag; *found false when no such user. key or len may be NULL when
 * only the flag is wanted. */
CK_RV store_user_mofn_get(store_t *st, uint32_t id, uint8_t **key, size_t *len,
                          bool *twofa, bool *found);
/* Sets both (key NULL with len 0: no key). The user's version is not
 * bumped: its logins stand. No such user: CKR_FUNCTION_FAILED. */
CK_RV store_user_mofn_set(store_t *st, uint32_t id, const uint8_t *key,
                          size_t len, bool twofa);
/* How many users of type have a registered key. */
CK_RV store_user_count_mofn(store_t *st, int type, size_t *n);

/* M of a service: 1 (off) when never set. */
CK_RV store_quorum_m_get(store_t *st, unsigned service, unsigned *m);
CK_RV store_quorum_m_set(store_t *st, unsigned service, unsigned m);

typedef struct {
    uint32_t id; /* never reused */
    unsigned service;
    uint32_t requester;          /* user id */
    uint64_t requester_version;  /* the user's version at issue */
    uint8_t login_id[STORE_LOGIN_ID_LEN]; /* the requester's login */
    uint64_t issued, expires;    /* seconds since the epoch */
    unsigned needed;             /* M at issue */
    uint8_t digest[STORE_QTOKEN_DIGEST_LEN]; /* SHA-256 of the token */
} store_qtoken_t;

/* Inserts t (t->id ignored) with a fresh id. A digest already present:
 * CKR_FUNCTION_FAILED. */
CK_RV store_qtoken_insert(store_t *st, const store_qtoken_t *t, uint32_t *id);
/* *found false (t untouched) when absent. */
CK_RV store_qtoken_get(store_t *st, uint32_t id, store_qtoken_t *t,
                       bool *found);
CK_RV store_qtoken_by_digest(store_t *st,
                             const uint8_t digest[STORE_QTOKEN_DIGEST_LEN],
                             store_qtoken_t *t, bool *found);
/* Every token by ascending id; *ts malloc'd (NULL when none). */
CK_RV store_qtoken_list(store_t *st, store_qtoken_t **ts, size_t *n);
CK_RV store_qtoken_count(store_t *st, size_t *n);
/* *deleted (may be NULL) tells whether the row existed. */
CK_RV store_qtoken_delete(store_t *st, uint32_t id, bool *deleted);
CK_RV store_qtoken_delete_login(store_t *st,
                                const uint8_t login_id[STORE_LOGIN_ID_LEN]);
/* Deletes the tokens whose expiry is at or before now; *purged (may be
 * NULL) tells how many. */
CK_RV store_qtoken_purge(store_t *st, uint64_t now, size_t *purged);
/* Records approver's approval of token id; *added false when it was
 * already there (the same approver counts once). */
CK_RV store_qtoken_approve(store_t *st, uint32_t id, uint32_t approver,
                           bool *added);
/* The approvers of token id, ascending; *uids malloc'd (NULL when none). */
CK_RV store_qtoken_approvers(store_t *st, uint32_t id, uint32_t **uids,
                             size_t *n);

/* ------------------------------------------------------------- audit */

/*
 * The audit table keeps what the core hands it (the core computes the hash
 * chain). A record read back whose columns do not have their type or fit
 * their limits (an outside edit) comes back with malformed set and the rest
 * as far as it could be read, so that the core can name it.
 */
#define STORE_AUDIT_TEXT_MAX 32 /* hsm_id and operation */
#define STORE_AUDIT_HASH_LEN 32
#define STORE_AUDIT_READ_MAX 4096 /* records in one store_audit_read */
#define STORE_AUDIT_PEER_MAX 255  /* the connection's peer, may be empty */
/* Record formats: 1 before the peer column (schema 3 and older), 2 with
 * it. The core's hash covers the peer of format 2 records only. */
#define STORE_AUDIT_FMT_PEER 2

typedef struct {
    uint64_t seq;  /* 1, 2, ... */
    uint64_t time; /* seconds since the epoch (UTC) */
    char hsm_id[STORE_AUDIT_TEXT_MAX + 1];
    uint32_t user;
    char op[STORE_AUDIT_TEXT_MAX + 1];
    uint64_t oid;
    uint64_t result; /* a CK_RV */
    uint8_t hash[STORE_AUDIT_HASH_LEN];
    unsigned fmt; /* 1 or STORE_AUDIT_FMT_PEER */
    char peer[STORE_AUDIT_PEER_MAX + 1];
    bool malformed;
} store_audit_t;

/* Appends a record (seq must be new: else CKR_FUNCTION_FAILED). */
CK_RV store_audit_insert(store_t *st, const store_audit_t *rec);
/* Up to max (<= STORE_AUDIT_READ_MAX) records with seq > after, by
 * ascending seq; *recs malloc'd (NULL when none). */
CK_RV store_audit_read(store_t *st, uint64_t after, size_t max,
                       store_audit_t **recs, size_t *n);

/* ------------------------------------------------------------- cluster */

/*
 * Cluster mode (section 11): the replicated state changes only through the
 * log. A handle with a journal attached (store_journal_attach) records
 * every write call of a write transaction as one operation of an entry,
 * and also runs it locally so that the transaction reads its own writes.
 * store_commit() then rolls the local transaction back, hands the encoded
 * entry to j->submit (which appends it to the log and waits until this
 * node has applied it) and returns the entry's result: CKR_OK when every
 * operation applied, else the first failure's CK_RV (nothing of the entry
 * applied). A write transaction that recorded nothing commits as before.
 *
 * What is replicated: users (with failure counts and versions), objects,
 * shares, quorum state, audit records, the label and serial. What stays
 * on the node: the generation counter (bumped by each applied entry), the
 * master-key check, the audit head (each node chains the records as it
 * applies them, so equal logs give equal chains), the cluster tables
 * below, and anything store_begin_local() writes.
 *
 * Ids are global: an object, user or quorum token inserted with id 0 gets
 * one from a block this node reserved through the log (ids never come
 * back, and the same object has the same id on every node).
 *
 * Object attribute blobs are sealed under the node's own store key; in an
 * entry (and in a snapshot) they travel masked: j->mask turns a local blob
 * into its masked form when an operation is recorded, j->unmask turns it
 * back, under the applying node's key, when it is applied. Each object has
 * a version, 1 at insert and bumped by each update, bound into the mask.
 */
struct store_journal {
    void *ctx;
    CK_RV (*mask)(void *ctx, uint64_t oid, uint64_t version,
                  const uint8_t *blob, size_t len, uint8_t **out,
                  size_t *outlen);
    CK_RV (*unmask)(void *ctx, uint64_t oid, uint64_t version,
                    const uint8_t *masked, size_t len, uint8_t **out,
                    size_t *outlen);
    /* Chains rec (seq 0, hash unset) onto the audit log of st, inside
     * st's open transaction: sets seq and hash, inserts it and moves the
     * head. */
    CK_RV (*audit_append)(void *ctx, store_t *st, store_audit_t *rec);
    /* Appends entry to the log and waits for this node's apply of it;
     * *res and *reslen: what store_journal_apply returned for it there. */
    CK_RV (*submit)(void *ctx, const uint8_t *entry, size_t len,
                    uint8_t **res, size_t *reslen);
};

/* j (kept by reference, may be NULL to detach) on st. */
void store_journal_attach(store_t *st, const struct store_journal *j);
/* A write transaction that bypasses the journal: node-local state only
 * (the master-key check, the cluster key, id blocks' local cursors). */
CK_RV store_begin_local(store_t *st);

/*
 * Applies the committed entry at index in one transaction together with
 * the applied index; an index at or below the applied one changes nothing.
 * origin/seq: an (origin, seq) at or below the last one applied for that
 * origin changes nothing and returns the result recorded for it. *res
 * (malloc'd) is the encoded result for the submitter. Returns CKR_OK also
 * when an operation failed (the entry is then a no-op and the failure is
 * in *res); CKR_DEVICE_ERROR / CKR_HOST_MEMORY when the store could not
 * be written (the node must stop).
 */
CK_RV store_journal_apply(store_t *st, const struct store_journal *j,
                          uint64_t index, uint64_t origin, uint64_t seq,
                          const uint8_t *entry, size_t len, uint8_t **res,
                          size_t *reslen);
CK_RV store_journal_applied(store_t *st, uint64_t *index);
/*
 * For the handle that applies the log: its commits do not wait for the
 * disk (synchronous = NORMAL; in WAL mode a power cut may lose the last
 * transactions but never corrupts the file). The raft log makes an entry
 * durable before it is applied, and a restart restores the last snapshot
 * and applies the log after it again, so a lost apply comes back.
 */
CK_RV store_durable_by_log(store_t *st);

/* The replicated state with its applied index, objects masked (*buf
 * malloc'd); and its inverse, which keeps the node-local state. */
CK_RV store_snapshot(store_t *st, const struct store_journal *j, uint8_t **buf,
                     size_t *len);
CK_RV store_restore(store_t *st, const struct store_journal *j,
                    const uint8_t *buf, size_t len);

/*
 * A backup restored (src/hsm/backup.c), recorded in the open journal
 * transaction as one operation: snap is a store_snapshot image (objects
 * masked), users the ids of the users the caller found (ascending). The
 * apply, on every node, replaces users, objects, shares and quorum M
 * values with the image's only when the state holds exactly those users,
 * no object and no quorum token (else CKR_ACTION_PROHIBITED), a damaged
 * image is CKR_DATA_INVALID; it keeps the applied index, the origins, the
 * audit log and the meta rows, raises the id counters to the image's,
 * moves every restored user's version above every version either side
 * had (no login or ticket of the old users stands) and drops the id
 * blocks nodes had reserved. A handle without a journal:
 * CKR_FUNCTION_NOT_SUPPORTED; an image over STORE_RESTORE_MAX (what one
 * log entry carries): CKR_DATA_LEN_RANGE.
 */
#define STORE_RESTORE_MAX (16u * 1024u * 1024u - 64u * 1024u)
#define STORE_RESTORE_USERS_MAX 1024u
CK_RV store_restore_backup(store_t *st, const uint8_t *snap, size_t len,
                           const uint32_t *users, size_t nusers);

/* What a store_snapshot image holds: its applied index, its users and
 * token objects, and store_digest_input of its state (*digest malloc'd;
 * the same bytes the store gave at that index). CKR_DATA_INVALID: not an
 * image of this schema. */
typedef struct {
    uint64_t applied;
    uint64_t users;
    uint64_t objects;
} store_snap_info_t;
CK_RV store_snapshot_info(const uint8_t *buf, size_t len,
                          store_snap_info_t *info, uint8_t **digest,
                          size_t *dlen);

/* The replicated state's ids and versions (users, objects, shares, quorum
 * state; of the audit records their count and the last one's seq, not
 * their times), and the applied index, as canonical bytes (*buf
 * malloc'd): equal bytes at an equal index mean the nodes are in sync.
 * The store hashes nothing (no crypto outside src/hsm/crypto/): the core
 * hashes them into the digest it shows. */
CK_RV store_digest_input(store_t *st, uint8_t **buf, size_t *len,
                         uint64_t *applied);

#endif
