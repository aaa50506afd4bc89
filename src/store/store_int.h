/*
 * store_int.h - what store.c and journal.c share inside src/store/ (the
 * handle's fields and the journal's hooks). Nothing outside the store
 * includes it.
 */
#ifndef NIMBUS_STORE_INT_H
#define NIMBUS_STORE_INT_H

#include <sqlite3.h>

#include "store/store.h"

/* What the open transaction of a handle is. */
enum store_tx {
    STORE_TX_NONE,
    STORE_TX_READ,
    STORE_TX_WRITE,   /* no journal attached: writes go to the file */
    STORE_TX_JOURNAL, /* journal attached: replicated writes are recorded */
    STORE_TX_LOCAL,   /* store_begin_local: node-local writes only */
    STORE_TX_APPLY,   /* store_journal_apply: an entry's operations run */
};

/* The kinds of global id a node reserves in blocks. */
enum store_kind {
    STORE_KIND_USER = 1,
    STORE_KIND_OBJECT = 2,
    STORE_KIND_QTOKEN = 3,
    STORE_KIND_END
};

/* The limits of what the store keeps (and of what an entry may carry). */
#define STORE_NAME_MAX 31             /* user names, UTIL_USER_NAME_MAX */
#define STORE_LABEL_MAX (64u * 1024u) /* CKA_LABEL */
#define STORE_CKID_MAX (64u * 1024u)  /* CKA_ID */
#define STORE_ATTRS_MAX (16u * 1024u * 1024u) /* serialized attributes */
#define STORE_VERIFIER_MAX 4096u              /* a password verifier */
#define STORE_META_KEY_MAX 64u
#define STORE_META_VALUE_MAX (1024u * 1024u)

#define STORE_STMT_MAX 64

struct store {
    sqlite3 *db;
    bool in_tx; /* store_begin() done, store_commit/rollback not yet */
    enum store_tx tx;
    sqlite3_stmt *stmt[STORE_STMT_MAX];
    /* store_object_find's statements, one per set of indexed terms
     * (label, ckid, class, key_type, private: 2^5), prepared once. */
    sqlite3_stmt *find_stmt[32];

    /* Cluster mode (journal.c). */
    const struct store_journal *j;
    struct {
        uint64_t next, end; /* [next, end): this node's ids still free */
    } block[STORE_KIND_END];
    uint8_t **jops; /* the open transaction's packed operations */
    size_t *jlens;
    size_t jn, jcap, jbytes;
    CK_RV jfail; /* a recording that failed: the commit fails with it */
    /* The restore (meta "restore_index") the blocks were reserved after:
     * a restore brings rows with ids of another cluster's counters, so
     * blocks reserved before it are dropped. */
    uint64_t block_epoch;
};

/* store.c's helpers, for journal.c. */
CK_RV store_int_rv(store_t *st, int rc, const char *what);
CK_RV store_int_exec(store_t *st, const char *sql, const char *what);
/* Inserts with the id given (objects get version 1). */
CK_RV store_int_object_insert_id(store_t *st, const store_object_t *o,
                                 uint64_t id);
CK_RV store_int_object_version(store_t *st, uint64_t id, uint64_t *version,
                               bool *found);
/* Inserts with the id and version given (no check, no recording). */
CK_RV store_int_object_put(store_t *st, const store_object_t *o, uint64_t id,
                           uint64_t version);
CK_RV store_int_qtoken_insert_id(store_t *st, const store_qtoken_t *t,
                                 uint32_t id);

/*
 * The journal's hooks (journal.c). store_jr_check: whether a replicated
 * write may run now (CKR_OK), i.e. no journal, or a journal transaction,
 * or an apply; a replicated write in a read or local transaction of a
 * handle with a journal, or outside any transaction, is a caller bug.
 * store_jr_recording: whether the write just made must be recorded.
 */
CK_RV store_jr_check(store_t *st);
bool store_jr_recording(const store_t *st);
/* The next id of this node's block of kind (*id 0 when none is left). */
CK_RV store_jr_take_id(store_t *st, enum store_kind kind, uint64_t *id);
/* Reserves a block of each kind that runs low (exhausted: has no id
 * left), through the log; outside a transaction. */
CK_RV store_jr_reserve(store_t *st, bool exhausted);
CK_RV store_jr_commit(store_t *st);
void store_jr_reset(store_t *st);
CK_RV store_jr_charge(store_t *st, uint32_t id, uint32_t limit,
                      uint32_t *failures, bool *charged);
bool store_jr_meta_local(const char *key);

/* Recorders: each appends one operation to the open transaction's entry
 * (a failure is kept in st->jfail for the commit). */
void store_jr_meta_set(store_t *st, const char *key, const uint8_t *val,
                       size_t len);
void store_jr_user_insert(store_t *st, uint32_t id, const char *name, int type,
                          const uint8_t *verifier, size_t len);
void store_jr_user_verifier(store_t *st, uint32_t id, const uint8_t *verifier,
                            size_t len);
void store_jr_user_type(store_t *st, uint32_t id, int type);
void store_jr_user_charge(store_t *st, uint32_t id, uint32_t limit);
void store_jr_user_reset(store_t *st, uint32_t id);
void store_jr_user_delete(store_t *st, uint32_t id);
void store_jr_user_delete_type(store_t *st, int type);
void store_jr_user_bump_versions(store_t *st);
void store_jr_object(store_t *st, const store_object_t *o, uint64_t id,
                     bool insert);
void store_jr_object_delete(store_t *st, uint64_t id);
void store_jr_object_put(store_t *st, const store_object_t *o, uint64_t id,
                         uint64_t version);
void store_jr_object_delete_all(store_t *st);
void store_jr_share(store_t *st, uint64_t oid, uint32_t uid, bool shared);
void store_jr_user_mofn(store_t *st, uint32_t id, const uint8_t *key,
                        size_t len, bool twofa);
void store_jr_quorum_m(store_t *st, unsigned service, unsigned m);
void store_jr_qtoken_insert(store_t *st, const store_qtoken_t *t, uint32_t id);
void store_jr_qtoken_delete(store_t *st, uint32_t id, bool must_delete);
void store_jr_qtoken_delete_login(store_t *st,
                                  const uint8_t login_id[STORE_LOGIN_ID_LEN]);
void store_jr_qtoken_purge(store_t *st, uint64_t now);
void store_jr_qtoken_approve(store_t *st, uint32_t id, uint32_t approver,
                             bool must_add);
void store_jr_audit(store_t *st, const store_audit_t *rec);

#endif
