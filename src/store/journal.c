/*
 * journal.c - the store in cluster mode (store.h, section "cluster"):
 * recording a write transaction as a log entry, applying entries,
 * snapshots, and the digest of the replicated state.
 *
 * An entry is a protobuf Entry (journal.proto) whose operations are
 * packed one by one. Applying decodes every operation as hostile input:
 * each field is bounded as the store's own write functions bound it,
 * before anything runs, so an entry that another node wrote can neither
 * pass a limit nor trip a precondition. The apply uses no clock and no
 * randomness: the same log gives the same store on every node.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "src/store/journal.pb-c.h"
#include "store/store_int.h"

/* An entry's bounds: the operations of one transaction, and their bytes.
 * The engine carries an entry in one frame of 16 MiB (less its header):
 * a transaction larger than that (an object near STORE_ATTRS_MAX) fails
 * at its commit with CKR_DEVICE_MEMORY, on every node alike. */
#define JR_OPS_MAX 65536u
#define JR_ENTRY_MAX (16u * 1024u * 1024u - 8192u)
#define JR_MASK_OVERHEAD 4096u
#define JR_RESULT_MAX 4096u
#define JR_RESERVES_MAX 8u         /* reserve operations in one entry */
#define JR_RESERVE_COUNT_MAX 4096u /* ids in one block */
#define JR_DIGEST_MAX (1024u * 1024u * 1024u) /* the digest's input */

typedef Nimbus__Journal__Op jop_t;

/* A node's id blocks: how many ids it reserves at once, and below how
 * many left it reserves again (at the next write transaction's begin, so
 * that one transaction never runs out: it inserts fewer than low). */
static const struct {
    uint32_t size, low;
} block_conf[STORE_KIND_END] = {
    [STORE_KIND_USER] = {16, 8},
    [STORE_KIND_OBJECT] = {256, 64},
    [STORE_KIND_QTOKEN] = {64, 16},
};

/* The table behind each kind (for the first free id at a reserve). */
static const char *const kind_max_sql[STORE_KIND_END] = {
    [STORE_KIND_USER] = "SELECT coalesce(max(id), 0) FROM users",
    [STORE_KIND_OBJECT] = "SELECT coalesce(max(id), 0) FROM objects",
    [STORE_KIND_QTOKEN] = "SELECT coalesce(max(id), 0) FROM quorum_tokens",
};

/* ----------------------------------------------------------- mode */

void store_journal_attach(store_t *st, const struct store_journal *j)
{
    if (st == NULL) {
        return;
    }
    if (st->in_tx) {
        log_error("store: journal attached inside a transaction");
    }
    st->j = j;
    /* A block reserved under another journal is not ours to use. */
    memset(st->block, 0, sizeof(st->block));
}

/*
 * The meta keys that stay on the node: the generation (bumped by each
 * apply), the master-key check (each node's own key), the audit head
 * (each node chains as it applies), the schema version, and anything a
 * caller names "local.". Every other key (label, serial) is replicated.
 */
bool store_jr_meta_local(const char *key)
{
    static const char *const local[] = {"generation", "key_check", "audit_head",
                                        "schema_version"};
    size_t i;

    for (i = 0; i < UTIL_ARRAY_SIZE(local); i++) {
        if (strcmp(key, local[i]) == 0) {
            return true;
        }
    }
    return strncmp(key, "local.", 6) == 0;
}

CK_RV store_jr_check(store_t *st)
{
    if (st->j == NULL || st->tx == STORE_TX_APPLY) {
        return CKR_OK;
    }
    /* With a journal, the replicated state changes only through it. */
    return_val_if_fail(st->tx == STORE_TX_JOURNAL, CKR_GENERAL_ERROR);
    return CKR_OK;
}

bool store_jr_recording(const store_t *st)
{
    return st->j != NULL && st->tx == STORE_TX_JOURNAL;
}

/* ------------------------------------------------------ recording */

void store_jr_reset(store_t *st)
{
    size_t i;

    for (i = 0; i < st->jn; i++) {
        util_free_wipe(st->jops[i], st->jlens[i]);
    }
    free(st->jops);
    free(st->jlens);
    st->jops = NULL;
    st->jlens = NULL;
    st->jn = st->jcap = st->jbytes = 0;
    st->jfail = CKR_OK;
}

static void jr_fail(store_t *st, CK_RV rv)
{
    if (st->jfail == CKR_OK) {
        st->jfail = rv;
    }
}

/* Packs op and appends it to the open transaction's entry. */
static void jr_add(store_t *st, const jop_t *op)
{
    size_t n, cap;
    uint8_t *buf;
    void *p;

    if (st->jfail != CKR_OK) {
        return;
    }
    n = nimbus__journal__op__get_packed_size(op);
    /* 16: room for each operation's tag and length in the entry. */
    if (st->jn >= JR_OPS_MAX || n > JR_ENTRY_MAX - 16 - st->jbytes) {
        log_error("store: a transaction too large for one log entry");
        jr_fail(st, CKR_DEVICE_MEMORY);
        return;
    }
    if (st->jn == st->jcap) {
        cap = st->jcap ? st->jcap * 2 : 8;
        p = realloc(st->jops, cap * sizeof(*st->jops));
        if (p == NULL) {
            jr_fail(st, CKR_HOST_MEMORY);
            return;
        }
        st->jops = p;
        p = realloc(st->jlens, cap * sizeof(*st->jlens));
        if (p == NULL) {
            jr_fail(st, CKR_HOST_MEMORY);
            return;
        }
        st->jlens = p;
        st->jcap = cap;
    }
    buf = malloc(n > 0 ? n : 1);
    if (buf == NULL) {
        jr_fail(st, CKR_HOST_MEMORY);
        return;
    }
    nimbus__journal__op__pack(op, buf);
    st->jops[st->jn] = buf;
    st->jlens[st->jn] = n;
    st->jn++;
    st->jbytes += n + 16;
}

#define BYTES(p, n) ((ProtobufCBinaryData){.len = (n), .data = (uint8_t *)(p)})

void store_jr_meta_set(store_t *st, const char *key, const uint8_t *val,
                       size_t len)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__MetaSet m = NIMBUS__JOURNAL__META_SET__INIT;

    m.key = (char *)key;
    m.value = BYTES(val, len);
    op.op_case = NIMBUS__JOURNAL__OP__OP_META_SET;
    op.meta_set = &m;
    jr_add(st, &op);
}

void store_jr_user_insert(store_t *st, uint32_t id, const char *name, int type,
                          const uint8_t *verifier, size_t len)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__UserInsert m = NIMBUS__JOURNAL__USER_INSERT__INIT;

    m.id = id;
    m.name = (char *)name;
    m.type = type;
    m.verifier = BYTES(verifier, len);
    op.op_case = NIMBUS__JOURNAL__OP__OP_USER_INSERT;
    op.user_insert = &m;
    jr_add(st, &op);
}

void store_jr_user_verifier(store_t *st, uint32_t id, const uint8_t *verifier,
                            size_t len)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__UserVerifier m = NIMBUS__JOURNAL__USER_VERIFIER__INIT;

    m.id = id;
    m.verifier = BYTES(verifier, len);
    op.op_case = NIMBUS__JOURNAL__OP__OP_USER_SET_VERIFIER;
    op.user_set_verifier = &m;
    jr_add(st, &op);
}

void store_jr_user_type(store_t *st, uint32_t id, int type)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__UserType m = NIMBUS__JOURNAL__USER_TYPE__INIT;

    m.id = id;
    m.type = type;
    op.op_case = NIMBUS__JOURNAL__OP__OP_USER_SET_TYPE;
    op.user_set_type = &m;
    jr_add(st, &op);
}

/* A charge operation in op, its message in m (the caller's storage). */
static void charge_op(jop_t *op, Nimbus__Journal__UserCharge *m, uint32_t id,
                      uint32_t limit)
{
    nimbus__journal__op__init(op);
    nimbus__journal__user_charge__init(m);
    m->id = id;
    m->limit = limit;
    op->op_case = NIMBUS__JOURNAL__OP__OP_USER_CHARGE;
    op->user_charge = m;
}

void store_jr_user_charge(store_t *st, uint32_t id, uint32_t limit)
{
    jop_t op;
    Nimbus__Journal__UserCharge m;

    charge_op(&op, &m, id, limit);
    jr_add(st, &op);
}

static void jr_user_id(store_t *st, Nimbus__Journal__Op__OpCase which,
                       uint32_t id)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__UserId m = NIMBUS__JOURNAL__USER_ID__INIT;

    m.id = id;
    op.op_case = which;
    if (which == NIMBUS__JOURNAL__OP__OP_USER_DELETE) {
        op.user_delete = &m;
    } else {
        op.user_reset_failures = &m;
    }
    jr_add(st, &op);
}

void store_jr_user_reset(store_t *st, uint32_t id)
{
    jr_user_id(st, NIMBUS__JOURNAL__OP__OP_USER_RESET_FAILURES, id);
}

void store_jr_user_delete(store_t *st, uint32_t id)
{
    jr_user_id(st, NIMBUS__JOURNAL__OP__OP_USER_DELETE, id);
}

void store_jr_user_delete_type(store_t *st, int type)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__UserDeleteType m = NIMBUS__JOURNAL__USER_DELETE_TYPE__INIT;

    m.type = type;
    op.op_case = NIMBUS__JOURNAL__OP__OP_USER_DELETE_TYPE;
    op.user_delete_type = &m;
    jr_add(st, &op);
}

static void jr_empty(store_t *st, Nimbus__Journal__Op__OpCase which)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__Empty m = NIMBUS__JOURNAL__EMPTY__INIT;

    op.op_case = which;
    if (which == NIMBUS__JOURNAL__OP__OP_USER_BUMP_VERSIONS) {
        op.user_bump_versions = &m;
    } else {
        op.object_delete_all = &m;
    }
    jr_add(st, &op);
}

void store_jr_user_bump_versions(store_t *st)
{
    jr_empty(st, NIMBUS__JOURNAL__OP__OP_USER_BUMP_VERSIONS);
}

void store_jr_object_delete_all(store_t *st)
{
    jr_empty(st, NIMBUS__JOURNAL__OP__OP_OBJECT_DELETE_ALL);
}

/* An object as the local run left it: its blob masked under the version
 * it now has (1 for an insert). */
static void jr_object(store_t *st, const store_object_t *o, uint64_t id,
                      bool insert, bool put, uint64_t version);

void store_jr_object(store_t *st, const store_object_t *o, uint64_t id,
                     bool insert)
{
    jr_object(st, o, id, insert, false, 1);
}

void store_jr_object_put(store_t *st, const store_object_t *o, uint64_t id,
                         uint64_t version)
{
    jr_object(st, o, id, true, true, version);
}

/* An object as the local run left it: its blob masked under the version
 * it now has (1 for an insert, the given one for a put). */
static void jr_object(store_t *st, const store_object_t *o, uint64_t id,
                      bool insert, bool put, uint64_t version)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__Object m = NIMBUS__JOURNAL__OBJECT__INIT;
    uint8_t *masked = NULL;
    size_t mlen = 0;
    bool found = false;
    CK_RV rv;

    if (st->jfail != CKR_OK) {
        return;
    }
    if (!insert) {
        rv = store_int_object_version(st, id, &version, &found);
        if (rv == CKR_OK && !found) {
            rv = CKR_GENERAL_ERROR; /* updated a moment ago */
        }
        if (rv != CKR_OK) {
            jr_fail(st, rv);
            return;
        }
    }
    if (o->attrs_len > 0) {
        rv = st->j->mask(st->j->ctx, id, version, o->attrs, o->attrs_len,
                         &masked, &mlen);
        if (rv != CKR_OK) {
            log_error("store: cannot mask object %" PRIu64, id);
            jr_fail(st, rv);
            return;
        }
    }
    m.id = id;
    m.version = version;
    m.owner = o->owner;
    m.cls = o->cls;
    m.key_type = o->key_type;
    m.is_private = o->is_private;
    m.label = BYTES(o->label, o->label_len);
    m.ckid = BYTES(o->ckid, o->ckid_len);
    m.attrs = BYTES(masked, mlen);
    op.op_case = insert ? NIMBUS__JOURNAL__OP__OP_OBJECT_INSERT
                        : NIMBUS__JOURNAL__OP__OP_OBJECT_UPDATE;
    if (put) {
        op.op_case = NIMBUS__JOURNAL__OP__OP_OBJECT_PUT;
        op.object_put = &m;
    } else if (insert) {
        op.object_insert = &m;
    } else {
        op.object_update = &m;
    }
    jr_add(st, &op);
    util_free_wipe(masked, mlen);
}

void store_jr_object_delete(store_t *st, uint64_t id)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__ObjectId m = NIMBUS__JOURNAL__OBJECT_ID__INIT;

    m.id = id;
    op.op_case = NIMBUS__JOURNAL__OP__OP_OBJECT_DELETE;
    op.object_delete = &m;
    jr_add(st, &op);
}

void store_jr_share(store_t *st, uint64_t oid, uint32_t uid, bool shared)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__Share m = NIMBUS__JOURNAL__SHARE__INIT;

    m.oid = oid;
    m.uid = uid;
    m.shared = shared;
    op.op_case = NIMBUS__JOURNAL__OP__OP_SHARE_SET;
    op.share_set = &m;
    jr_add(st, &op);
}

void store_jr_user_mofn(store_t *st, uint32_t id, const uint8_t *key,
                        size_t len, bool twofa)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__UserMofn m = NIMBUS__JOURNAL__USER_MOFN__INIT;

    m.id = id;
    m.has_key = key != NULL;
    m.key = BYTES(key, len);
    m.twofa = twofa;
    op.op_case = NIMBUS__JOURNAL__OP__OP_USER_MOFN_SET;
    op.user_mofn_set = &m;
    jr_add(st, &op);
}

void store_jr_quorum_m(store_t *st, unsigned service, unsigned m)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__QuorumM q = NIMBUS__JOURNAL__QUORUM_M__INIT;

    q.service = service;
    q.m = m;
    op.op_case = NIMBUS__JOURNAL__OP__OP_QUORUM_M_SET;
    op.quorum_m_set = &q;
    jr_add(st, &op);
}

void store_jr_qtoken_insert(store_t *st, const store_qtoken_t *t, uint32_t id)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__QToken m = NIMBUS__JOURNAL__QTOKEN__INIT;

    m.id = id;
    m.service = t->service;
    m.requester = t->requester;
    m.requester_version = t->requester_version;
    m.login_id = BYTES(t->login_id, STORE_LOGIN_ID_LEN);
    m.issued = t->issued;
    m.expires = t->expires;
    m.needed = t->needed;
    m.digest = BYTES(t->digest, STORE_QTOKEN_DIGEST_LEN);
    op.op_case = NIMBUS__JOURNAL__OP__OP_QTOKEN_INSERT;
    op.qtoken_insert = &m;
    jr_add(st, &op);
}

void store_jr_qtoken_delete(store_t *st, uint32_t id, bool must_delete)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__QTokenDelete m = NIMBUS__JOURNAL__QTOKEN_DELETE__INIT;

    m.id = id;
    m.must_delete = must_delete;
    op.op_case = NIMBUS__JOURNAL__OP__OP_QTOKEN_DELETE;
    op.qtoken_delete = &m;
    jr_add(st, &op);
}

void store_jr_qtoken_delete_login(store_t *st,
                                  const uint8_t login_id[STORE_LOGIN_ID_LEN])
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__LoginId m = NIMBUS__JOURNAL__LOGIN_ID__INIT;

    m.login_id = BYTES(login_id, STORE_LOGIN_ID_LEN);
    op.op_case = NIMBUS__JOURNAL__OP__OP_QTOKEN_DELETE_LOGIN;
    op.qtoken_delete_login = &m;
    jr_add(st, &op);
}

void store_jr_qtoken_purge(store_t *st, uint64_t now)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__Purge m = NIMBUS__JOURNAL__PURGE__INIT;

    m.now = now;
    op.op_case = NIMBUS__JOURNAL__OP__OP_QTOKEN_PURGE;
    op.qtoken_purge = &m;
    jr_add(st, &op);
}

void store_jr_qtoken_approve(store_t *st, uint32_t id, uint32_t approver,
                             bool must_add)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__Approve m = NIMBUS__JOURNAL__APPROVE__INIT;

    m.id = id;
    m.approver = approver;
    m.must_add = must_add;
    op.op_case = NIMBUS__JOURNAL__OP__OP_QTOKEN_APPROVE;
    op.qtoken_approve = &m;
    jr_add(st, &op);
}

void store_jr_audit(store_t *st, const store_audit_t *rec)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__Audit m = NIMBUS__JOURNAL__AUDIT__INIT;

    m.time = rec->time;
    m.hsm_id = (char *)rec->hsm_id;
    m.user = rec->user;
    m.op = (char *)rec->op;
    m.oid = rec->oid;
    m.result = rec->result;
    m.fmt = rec->fmt;
    m.peer = (char *)rec->peer;
    op.op_case = NIMBUS__JOURNAL__OP__OP_AUDIT_INSERT;
    op.audit_insert = &m;
    jr_add(st, &op);
}

CK_RV store_restore_backup(store_t *st, const uint8_t *snap, size_t len,
                           const uint32_t *users, size_t nusers)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__Restore m = NIMBUS__JOURNAL__RESTORE__INIT;
    CK_RV rv;

    return_val_if_fail(st != NULL && (snap != NULL || len == 0),
                       CKR_GENERAL_ERROR);
    return_val_if_fail(users != NULL || nusers == 0, CKR_GENERAL_ERROR);
    if ((rv = store_jr_check(st)) != CKR_OK) {
        return rv;
    }
    if (!store_jr_recording(st)) {
        return CKR_FUNCTION_NOT_SUPPORTED; /* only a cluster restores */
    }
    if (len == 0 || len > STORE_RESTORE_MAX ||
        nusers > STORE_RESTORE_USERS_MAX) {
        return CKR_DATA_LEN_RANGE;
    }
    m.snapshot = BYTES(snap, len);
    m.n_users = nusers;
    m.users = (uint32_t *)users;
    op.op_case = NIMBUS__JOURNAL__OP__OP_RESTORE;
    op.restore = &m;
    /* Nothing rehearsed: the transaction reads nothing of it afterwards. */
    jr_add(st, &op);
    return st->jfail;
}

/* ---------------------------------------------------- preconditions */

/* The answers a precondition may give: business results, never one that
 * stops a node (rv_fatal) or reads as success. */
static bool require_rv_ok(uint64_t rv)
{
    return rv == CKR_ACTION_PROHIBITED || rv == CKR_ARGUMENTS_BAD ||
           rv == CKR_DATA_INVALID || rv == CKR_FUNCTION_REJECTED ||
           rv == CKR_USER_NOT_LOGGED_IN;
}

/* Whether what holds on st now: CKR_OK, fail, or a store failure. */
static CK_RV require_check(store_t *st, uint32_t what, uint64_t id,
                           uint32_t type, CK_RV fail)
{
    store_user_t u;
    bool found = false;
    size_t n = 0;
    int utype;
    CK_RV rv;

    switch (what) {
    case STORE_REQUIRE_USER_TYPE:
    case STORE_REQUIRE_USER_DELETABLE:
        if (id == 0 || id > UINT32_MAX || type > INT32_MAX) {
            return CKR_DATA_INVALID;
        }
        memset(&u, 0, sizeof(u));
        rv = store_user_by_id(st, (uint32_t)id, &u, &found);
        utype = u.type;
        store_user_clear(&u);
        if (rv != CKR_OK) {
            return rv;
        }
        if (!found) {
            return fail;
        }
        if (what == STORE_REQUIRE_USER_TYPE) {
            return utype == (int)type ? CKR_OK : fail;
        }
        if (utype == (int)type) {
            if ((rv = store_user_count_type(st, (int)type, &n)) != CKR_OK) {
                return rv;
            }
            if (n <= 1) {
                return fail;
            }
        }
        if ((rv = store_object_count_owner(st, (uint32_t)id, &n)) != CKR_OK) {
            return rv;
        }
        return n == 0 ? CKR_OK : fail;
    case STORE_REQUIRE_QTOKENS_BELOW:
        if ((rv = store_qtoken_count(st, &n)) != CKR_OK) {
            return rv;
        }
        return n < id ? CKR_OK : fail;
    default:
        return CKR_DATA_INVALID; /* a precondition this build does not know */
    }
}

CK_RV store_require(store_t *st, enum store_require what, uint64_t id, int type,
                    CK_RV rv)
{
    jop_t op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__Require m = NIMBUS__JOURNAL__REQUIRE__INIT;
    CK_RV r;

    return_val_if_fail(st != NULL && st->in_tx && type >= 0, CKR_GENERAL_ERROR);
    return_val_if_fail(require_rv_ok(rv), CKR_GENERAL_ERROR);
    if ((r = require_check(st, (uint32_t)what, id, (uint32_t)type, rv)) !=
        CKR_OK) {
        return r;
    }
    if (store_jr_recording(st)) {
        m.what = (uint32_t)what;
        m.id = id;
        m.type = (uint32_t)type;
        m.rv = rv;
        op.op_case = NIMBUS__JOURNAL__OP__OP_REQUIRE;
        op.require = &m;
        jr_add(st, &op);
    }
    return CKR_OK;
}

/* ----------------------------------------------------- submitting */

static Nimbus__Journal__Result *result_decode(const uint8_t *res, size_t len)
{
    if (res == NULL || len == 0 || len > JR_RESULT_MAX) {
        return NULL;
    }
    return nimbus__journal__result__unpack(NULL, len, res);
}

/*
 * Packs the n operations into an entry, hands it to the journal and
 * decodes what this node's apply answered into *out. CKR_OK means the
 * entry was applied (its own result may still be a failure).
 */
static CK_RV jr_submit(store_t *st, uint8_t *const *ops, const size_t *lens,
                       size_t n, Nimbus__Journal__Result **out)
{
    Nimbus__Journal__Entry e = NIMBUS__JOURNAL__ENTRY__INIT;
    ProtobufCBinaryData *arr = NULL;
    uint8_t *buf = NULL, *res = NULL;
    size_t len, reslen = 0, i;
    CK_RV rv;

    *out = NULL;
    arr = calloc(n > 0 ? n : 1, sizeof(*arr));
    if (arr == NULL) {
        return CKR_HOST_MEMORY;
    }
    for (i = 0; i < n; i++) {
        arr[i] = BYTES(ops[i], lens[i]);
    }
    e.n_ops = n;
    e.ops = arr;
    len = nimbus__journal__entry__get_packed_size(&e);
    buf = malloc(len > 0 ? len : 1);
    if (buf == NULL) {
        free(arr);
        return CKR_HOST_MEMORY;
    }
    nimbus__journal__entry__pack(&e, buf);
    free(arr);
    rv = st->j->submit(st->j->ctx, buf, len, &res, &reslen);
    util_free_wipe(buf, len);
    if (rv != CKR_OK) {
        free(res);
        return rv;
    }
    *out = result_decode(res, reslen);
    free(res);
    if (*out == NULL) {
        log_error("store: the apply's result does not decode");
        return CKR_DEVICE_ERROR;
    }
    return CKR_OK;
}

/* A single operation as an entry of its own. */
static CK_RV jr_submit_op(store_t *st, const jop_t *op,
                          Nimbus__Journal__Result **out)
{
    size_t len = nimbus__journal__op__get_packed_size(op);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    CK_RV rv;

    *out = NULL;
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    nimbus__journal__op__pack(op, buf);
    rv = jr_submit(st, &buf, &len, 1, out);
    util_free_wipe(buf, len);
    return rv;
}

CK_RV store_jr_commit(store_t *st)
{
    Nimbus__Journal__Result *res = NULL;
    CK_RV rv = st->jfail;
    uint8_t **ops = st->jops;
    size_t *lens = st->jlens, n = st->jn, i;

    /* The local run only rehearsed the writes: they are made by the
     * apply, on every node alike. */
    if (!sqlite3_get_autocommit(st->db)) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    /* The handle is free again before the wait: the submitter may let
     * another thread use it meanwhile (hsm_cluster_commit_unlocked), so
     * the entry's operations leave it first. */
    st->jops = NULL;
    st->jlens = NULL;
    st->jn = 0;
    store_jr_reset(st);
    if (rv == CKR_OK) {
        rv = jr_submit(st, ops, lens, n, &res);
    }
    if (rv == CKR_OK) {
        rv = (CK_RV)res->rv;
    }
    nimbus__journal__result__free_unpacked(res, NULL);
    for (i = 0; i < n; i++) {
        util_free_wipe(ops[i], lens[i]);
    }
    free(ops);
    free(lens);
    return rv;
}

CK_RV store_jr_charge(store_t *st, uint32_t id, uint32_t limit,
                      uint32_t *failures, bool *charged)
{
    jop_t op;
    Nimbus__Journal__UserCharge m;
    Nimbus__Journal__Result *res = NULL;
    CK_RV rv;

    charge_op(&op, &m, id, limit);
    rv = jr_submit_op(st, &op, &res);
    if (rv == CKR_OK) {
        rv = (CK_RV)res->rv;
    }
    if (rv == CKR_OK && (!res->has_failures || !res->has_charged)) {
        log_error("store: a charge's result without its count");
        rv = CKR_DEVICE_ERROR;
    }
    if (rv == CKR_OK) {
        *failures = res->failures;
        if (charged != NULL) {
            *charged = res->charged;
        }
    }
    nimbus__journal__result__free_unpacked(res, NULL);
    return rv;
}

CK_RV store_jr_take_id(store_t *st, enum store_kind kind, uint64_t *id)
{
    *id = 0;
    if (st->block[kind].next >= st->block[kind].end) {
        /* store_begin reserves more than a transaction inserts. */
        log_error("store: no global id left in this node's block");
        return CKR_DEVICE_ERROR;
    }
    *id = st->block[kind].next++;
    return CKR_OK;
}

/* Whether kind's block runs low (exhausted: has no id left at all). */
static bool block_low(const store_t *st, int k, bool exhausted)
{
    uint64_t left = st->block[k].end - st->block[k].next;

    return exhausted ? left == 0 : left < block_conf[k].low;
}

CK_RV store_jr_reserve(store_t *st, bool exhausted)
{
    Nimbus__Journal__Reserve m[STORE_KIND_END];
    jop_t op[STORE_KIND_END];
    uint8_t *bufs[STORE_KIND_END] = {NULL};
    size_t lens[STORE_KIND_END] = {0}, n = 0, i;
    Nimbus__Journal__Result *res = NULL;
    CK_RV rv = CKR_OK;
    uint8_t *ev = NULL;
    size_t evlen = 0;
    uint64_t epoch = 0;
    int k;

    /* A restore since these blocks were reserved: its rows may hold any
     * id below the raised counters. */
    if ((rv = store_meta_get(st, "restore_index", &ev, &evlen)) != CKR_OK) {
        return rv;
    }
    for (i = 0; ev != NULL && evlen == 8 && i < 8; i++) {
        epoch = epoch << 8 | ev[i];
    }
    free(ev);
    if (epoch != st->block_epoch) {
        memset(st->block, 0, sizeof(st->block));
        st->block_epoch = epoch;
    }
    for (k = 1; k < STORE_KIND_END; k++) {
        if (!block_low(st, k, exhausted)) {
            continue;
        }
        nimbus__journal__reserve__init(&m[n]);
        nimbus__journal__op__init(&op[n]);
        m[n].kind = (uint32_t)k;
        m[n].count = block_conf[k].size;
        op[n].op_case = NIMBUS__JOURNAL__OP__OP_RESERVE;
        op[n].reserve = &m[n];
        lens[n] = nimbus__journal__op__get_packed_size(&op[n]);
        bufs[n] = malloc(lens[n]);
        if (bufs[n] == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        nimbus__journal__op__pack(&op[n], bufs[n]);
        n++;
    }
    if (n == 0) {
        return CKR_OK;
    }
    rv = jr_submit(st, bufs, lens, n, &res);
    if (rv == CKR_OK) {
        rv = (CK_RV)res->rv;
    }
    if (rv == CKR_OK && res->n_blocks != n) {
        rv = CKR_DEVICE_ERROR;
    }
    for (i = 0; rv == CKR_OK && i < n; i++) {
        const Nimbus__Journal__Block *b = res->blocks[i];

        if (b->kind != m[i].kind || b->count == 0 ||
            b->first > UINT64_MAX - b->count) {
            log_error("store: a reserve's result does not match it");
            rv = CKR_DEVICE_ERROR;
            break;
        }
        /* Another thread's reserve on this handle may have come back
         * first while this one waited (hsm_reserve_unlocked): a block
         * that is no longer low stays, and ids only go up (the rest of
         * an old block is skipped, a block older than ours is dropped). */
        if (block_low(st, (int)b->kind, false) &&
            b->first >= st->block[b->kind].next) {
            st->block[b->kind].next = b->first;
            st->block[b->kind].end = b->first + b->count;
        }
    }
out:
    nimbus__journal__result__free_unpacked(res, NULL);
    for (i = 0; i < n; i++) {
        free(bufs[i]);
    }
    return rv;
}

/* ---------------------------------------------------------- apply */

/* Ad hoc statements of the journal (one apply prepares a few). */
static CK_RV q_int(store_t *st, const char *sql, int64_t p1, bool has_p1,
                   int64_t *out, bool *row, const char *what)
{
    sqlite3_stmt *s = NULL;
    int rc;
    CK_RV rv = CKR_OK;

    *out = 0;
    *row = false;
    rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK && has_p1) {
        rc = sqlite3_bind_int64(s, 1, p1);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(s, 0);
            *row = true;
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK) {
        rv = store_int_rv(st, rc, what);
    }
    sqlite3_finalize(s);
    return rv;
}

static CK_RV x_int2(store_t *st, const char *sql, int64_t p1, int64_t p2,
                    const char *what)
{
    sqlite3_stmt *s = NULL;
    int rc;

    rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 1, p1);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 2, p2);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_OK ? CKR_OK : store_int_rv(st, rc, what);
}

static int64_t u64_i64(uint64_t v)
{
    int64_t r;

    memcpy(&r, &v, sizeof(r)); /* origins and seqs keep all 64 bits */
    return r;
}

static uint64_t i64_u64(int64_t v)
{
    uint64_t r;

    memcpy(&r, &v, sizeof(r));
    return r;
}

/* An I/O or memory failure: the node cannot keep up with the log. Any
 * other failure is the entry's own and the same on every node. */
static bool rv_fatal(CK_RV rv)
{
    return rv == CKR_DEVICE_ERROR || rv == CKR_HOST_MEMORY;
}

/*
 * What a journal callback (unmask, audit_append) answers about the entry
 * itself, the same on every node that holds the cluster key: a blob that
 * does not unmask, a record out of bounds. Anything else (no cluster key
 * yet, memory, a damaged audit head) is this node's own trouble: were it
 * taken as the entry's failure, this node would skip an entry the others
 * apply. It stops the node instead.
 */
static CK_RV hook_rv(CK_RV rv)
{
    switch (rv) {
    case CKR_OK:
    case CKR_ENCRYPTED_DATA_INVALID:
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
    case CKR_DATA_INVALID:
    case CKR_DATA_LEN_RANGE:
    case CKR_ARGUMENTS_BAD:
        return rv;
    default:
        log_error("store: a journal callback failed on this node: 0x%lx",
                  (unsigned long)rv);
        return CKR_DEVICE_ERROR;
    }
}

/* What an apply collects for its result. */
struct apply_out {
    CK_RV rv;
    uint32_t failed_op;
    bool has_charge;
    uint32_t failures;
    bool charged;
    Nimbus__Journal__Block blocks[JR_RESERVES_MAX];
    size_t n_blocks;
    uint64_t index; /* the entry's */
};

static bool text_ok(const char *s, size_t min, size_t max)
{
    size_t n;

    if (s == NULL) {
        return false;
    }
    n = strnlen(s, max + 1);
    return n >= min && n <= max;
}

static CK_RV ap_reserve(store_t *st, const Nimbus__Journal__Reserve *r,
                        struct apply_out *out)
{
    Nimbus__Journal__Block *b;
    int64_t next = 0, top = 0;
    uint64_t first, limit;
    bool row = false;
    CK_RV rv;

    if (r->kind < 1 || r->kind >= STORE_KIND_END || r->count < 1 ||
        r->count > JR_RESERVE_COUNT_MAX || out->n_blocks >= JR_RESERVES_MAX) {
        return CKR_DATA_INVALID;
    }
    if ((rv = q_int(st, "SELECT next FROM cluster_ids WHERE kind = ?1", r->kind,
                    true, &next, &row, "reserve")) != CKR_OK ||
        (rv = q_int(st, kind_max_sql[r->kind], 0, false, &top, &row,
                    "reserve")) != CKR_OK) {
        return rv;
    }
    /* Above the counter and above every row (a fixed id given
     * explicitly, a store made before the cluster). */
    first = next > 0 ? (uint64_t)next : 1;
    if (top >= 0 && (uint64_t)top >= first) {
        first = (uint64_t)top + 1;
    }
    limit = r->kind == STORE_KIND_OBJECT ? (uint64_t)INT64_MAX : UINT32_MAX;
    if (first > limit || limit - first + 1 < r->count) {
        log_error("store: the global ids of kind %" PRIu32 " are used up",
                  r->kind);
        return CKR_FUNCTION_FAILED;
    }
    rv = x_int2(st,
                "INSERT OR REPLACE INTO cluster_ids(kind, next) "
                "VALUES(?1, ?2)",
                r->kind, (int64_t)(first + r->count), "reserve");
    if (rv != CKR_OK) {
        return rv;
    }
    b = &out->blocks[out->n_blocks++];
    nimbus__journal__block__init(b);
    b->kind = r->kind;
    b->first = first;
    b->count = r->count;
    return CKR_OK;
}

static CK_RV ap_object(store_t *st, const struct store_journal *j,
                       const Nimbus__Journal__Object *m, bool insert, bool put)
{
    store_object_t o;
    uint8_t *blob = NULL;
    size_t bloblen = 0;
    uint64_t cur = 0;
    bool found = false;
    CK_RV rv;

    if (m->label.len > STORE_LABEL_MAX || m->ckid.len > STORE_CKID_MAX ||
        m->attrs.len > STORE_ATTRS_MAX + JR_MASK_OVERHEAD) {
        return CKR_DATA_LEN_RANGE;
    }
    if (m->id == 0 || m->id > INT64_MAX || m->version == 0 ||
        m->version > INT64_MAX || (insert && !put && m->version != 1) ||
        (!insert && m->version == 1)) {
        return CKR_DATA_INVALID;
    }
    if (put) {
        int64_t next = 0;
        bool row = false;

        /* Only an id this cluster handed out: a higher one may lie in a
         * node's reserved block and be given to a new object later. */
        if ((rv = q_int(st, "SELECT next FROM cluster_ids WHERE kind = ?1",
                        STORE_KIND_OBJECT, true, &next, &row, "put")) !=
            CKR_OK) {
            return rv;
        }
        if (!row || next <= 0 || m->id >= (uint64_t)next) {
            return CKR_DATA_INVALID;
        }
        if ((rv = store_int_object_version(st, m->id, &cur, &found)) !=
            CKR_OK) {
            return rv;
        }
        if (found) {
            return cur == m->version ? CKR_OK : CKR_DATA_INVALID;
        }
    }
    if (!insert) {
        /* An update made against another version of the object (another
         * node's update came first) would undo that one. */
        rv = store_int_object_version(st, m->id, &cur, &found);
        if (rv != CKR_OK) {
            return rv;
        }
        if (!found || cur != m->version - 1) {
            return CKR_FUNCTION_FAILED;
        }
    }
    if (m->attrs.len > 0) {
        rv = hook_rv(j->unmask(j->ctx, m->id, m->version, m->attrs.data,
                               m->attrs.len, &blob, &bloblen));
        if (rv != CKR_OK) {
            return rv;
        }
        if (bloblen > STORE_ATTRS_MAX) {
            util_free_wipe(blob, bloblen);
            return CKR_DATA_LEN_RANGE;
        }
    }
    memset(&o, 0, sizeof(o));
    o.id = m->id;
    o.owner = m->owner;
    o.cls = (CK_ULONG)m->cls;
    o.key_type = (CK_ULONG)m->key_type;
    o.is_private = m->is_private;
    o.label = m->label.len > 0 ? m->label.data : NULL;
    o.label_len = m->label.len;
    o.ckid = m->ckid.len > 0 ? m->ckid.data : NULL;
    o.ckid_len = m->ckid.len;
    o.attrs = blob;
    o.attrs_len = blob != NULL ? bloblen : 0;
    rv = put      ? store_int_object_put(st, &o, m->id, m->version)
         : insert ? store_int_object_insert_id(st, &o, m->id)
                  : store_object_update(st, &o);
    util_free_wipe(blob, bloblen);
    return rv;
}

static CK_RV ap_qtoken(store_t *st, const Nimbus__Journal__QToken *m)
{
    store_qtoken_t t;

    if (m->login_id.len != STORE_LOGIN_ID_LEN ||
        m->digest.len != STORE_QTOKEN_DIGEST_LEN) {
        return CKR_DATA_LEN_RANGE;
    }
    if (m->id == 0 || m->requester == 0 || m->needed > 255 ||
        m->issued > INT64_MAX || m->expires > INT64_MAX ||
        m->requester_version > INT64_MAX) {
        return CKR_DATA_INVALID;
    }
    memset(&t, 0, sizeof(t));
    t.service = m->service;
    t.requester = m->requester;
    t.requester_version = m->requester_version;
    memcpy(t.login_id, m->login_id.data, STORE_LOGIN_ID_LEN);
    t.issued = m->issued;
    t.expires = m->expires;
    t.needed = m->needed;
    memcpy(t.digest, m->digest.data, STORE_QTOKEN_DIGEST_LEN);
    return store_int_qtoken_insert_id(st, &t, m->id);
}

static CK_RV ap_audit(store_t *st, const struct store_journal *j,
                      const Nimbus__Journal__Audit *m)
{
    store_audit_t rec;

    if (!text_ok(m->hsm_id, 1, STORE_AUDIT_TEXT_MAX) ||
        !text_ok(m->op, 1, STORE_AUDIT_TEXT_MAX) ||
        !text_ok(m->peer, 0, STORE_AUDIT_PEER_MAX)) {
        return CKR_DATA_LEN_RANGE;
    }
    if (m->time > INT64_MAX ||
        (m->fmt != 1 && m->fmt != STORE_AUDIT_FMT_PEER) ||
        (m->fmt == 1 && m->peer[0] != '\0')) {
        return CKR_DATA_INVALID;
    }
    memset(&rec, 0, sizeof(rec));
    rec.time = m->time;
    memcpy(rec.hsm_id, m->hsm_id, strlen(m->hsm_id));
    rec.user = m->user;
    memcpy(rec.op, m->op, strlen(m->op));
    rec.oid = m->oid;
    rec.result = m->result;
    rec.fmt = m->fmt;
    memcpy(rec.peer, m->peer, strlen(m->peer));
    return hook_rv(j->audit_append(j->ctx, st, &rec));
}

static CK_RV ap_restore(store_t *st, const struct store_journal *j,
                        const Nimbus__Journal__Restore *m, uint64_t index);

/* Runs one decoded operation; bounds first, as the write functions'
 * callers would have. */
static CK_RV ap_op(store_t *st, const struct store_journal *j, const jop_t *op,
                   struct apply_out *out)
{
    bool done = false;
    size_t n;
    CK_RV rv;

    switch (op->op_case) {
    case NIMBUS__JOURNAL__OP__OP_META_SET: {
        const Nimbus__Journal__MetaSet *m = op->meta_set;

        if (!text_ok(m->key, 1, STORE_META_KEY_MAX) ||
            m->value.len > STORE_META_VALUE_MAX) {
            return CKR_DATA_LEN_RANGE;
        }
        if (store_jr_meta_local(m->key)) {
            return CKR_DATA_INVALID; /* never in an entry */
        }
        return store_meta_set(st, m->key, m->value.data, m->value.len);
    }
    case NIMBUS__JOURNAL__OP__OP_USER_INSERT: {
        const Nimbus__Journal__UserInsert *m = op->user_insert;

        if (!text_ok(m->name, 1, STORE_NAME_MAX) ||
            m->verifier.len > STORE_VERIFIER_MAX) {
            return CKR_DATA_LEN_RANGE;
        }
        if (m->id == 0 || !util_user_name_valid(m->name, strlen(m->name))) {
            return CKR_DATA_INVALID;
        }
        return store_user_insert(st, m->id, m->name, m->type, m->verifier.data,
                                 m->verifier.len, NULL);
    }
    case NIMBUS__JOURNAL__OP__OP_USER_SET_VERIFIER: {
        const Nimbus__Journal__UserVerifier *m = op->user_set_verifier;

        if (m->verifier.len > STORE_VERIFIER_MAX) {
            return CKR_DATA_LEN_RANGE;
        }
        return store_user_set_verifier(st, m->id, m->verifier.data,
                                       m->verifier.len);
    }
    case NIMBUS__JOURNAL__OP__OP_USER_SET_TYPE:
        return store_user_set_type(st, op->user_set_type->id,
                                   op->user_set_type->type);
    case NIMBUS__JOURNAL__OP__OP_USER_CHARGE:
        rv = store_user_charge_failure(st, op->user_charge->id,
                                       op->user_charge->limit, &out->failures,
                                       &out->charged);
        out->has_charge = rv == CKR_OK;
        return rv;
    case NIMBUS__JOURNAL__OP__OP_USER_RESET_FAILURES:
        return store_user_reset_failures(st, op->user_reset_failures->id);
    case NIMBUS__JOURNAL__OP__OP_USER_DELETE:
        return store_user_delete(st, op->user_delete->id);
    case NIMBUS__JOURNAL__OP__OP_USER_DELETE_TYPE:
        return store_user_delete_type(st, op->user_delete_type->type);
    case NIMBUS__JOURNAL__OP__OP_USER_BUMP_VERSIONS:
        return store_user_bump_versions(st);
    case NIMBUS__JOURNAL__OP__OP_OBJECT_INSERT:
        return ap_object(st, j, op->object_insert, true, false);
    case NIMBUS__JOURNAL__OP__OP_OBJECT_UPDATE:
        return ap_object(st, j, op->object_update, false, false);
    case NIMBUS__JOURNAL__OP__OP_OBJECT_PUT:
        return ap_object(st, j, op->object_put, true, true);
    case NIMBUS__JOURNAL__OP__OP_OBJECT_DELETE:
        if (op->object_delete->id == 0 || op->object_delete->id > INT64_MAX) {
            return CKR_DATA_INVALID;
        }
        return store_object_delete(st, op->object_delete->id);
    case NIMBUS__JOURNAL__OP__OP_OBJECT_DELETE_ALL:
        return store_object_delete_all(st);
    case NIMBUS__JOURNAL__OP__OP_SHARE_SET:
        if (op->share_set->oid == 0 || op->share_set->oid > INT64_MAX) {
            return CKR_DATA_INVALID;
        }
        return store_share_set(st, op->share_set->oid, op->share_set->uid,
                               op->share_set->shared);
    case NIMBUS__JOURNAL__OP__OP_USER_MOFN_SET: {
        const Nimbus__Journal__UserMofn *m = op->user_mofn_set;

        if (m->has_key && m->key.len > STORE_QUORUM_KEY_MAX) {
            return CKR_DATA_LEN_RANGE;
        }
        if (m->has_key && m->key.len == 0) {
            return CKR_DATA_INVALID;
        }
        return store_user_mofn_set(st, m->id, m->has_key ? m->key.data : NULL,
                                   m->has_key ? m->key.len : 0, m->twofa);
    }
    case NIMBUS__JOURNAL__OP__OP_QUORUM_M_SET:
        if (op->quorum_m_set->m < 1 || op->quorum_m_set->m > 255) {
            return CKR_DATA_INVALID;
        }
        return store_quorum_m_set(st, op->quorum_m_set->service,
                                  op->quorum_m_set->m);
    case NIMBUS__JOURNAL__OP__OP_QTOKEN_INSERT:
        return ap_qtoken(st, op->qtoken_insert);
    case NIMBUS__JOURNAL__OP__OP_QTOKEN_DELETE:
        rv = store_qtoken_delete(st, op->qtoken_delete->id, &done);
        if (rv == CKR_OK && op->qtoken_delete->must_delete && !done) {
            rv = CKR_FUNCTION_FAILED; /* used meanwhile, elsewhere */
        }
        return rv;
    case NIMBUS__JOURNAL__OP__OP_QTOKEN_DELETE_LOGIN:
        if (op->qtoken_delete_login->login_id.len != STORE_LOGIN_ID_LEN) {
            return CKR_DATA_LEN_RANGE;
        }
        return store_qtoken_delete_login(
            st, op->qtoken_delete_login->login_id.data);
    case NIMBUS__JOURNAL__OP__OP_QTOKEN_PURGE:
        return store_qtoken_purge(st, op->qtoken_purge->now, &n);
    case NIMBUS__JOURNAL__OP__OP_QTOKEN_APPROVE:
        rv = store_qtoken_approve(st, op->qtoken_approve->id,
                                  op->qtoken_approve->approver, &done);
        if (rv == CKR_OK && op->qtoken_approve->must_add && !done) {
            rv = CKR_FUNCTION_FAILED;
        }
        return rv;
    case NIMBUS__JOURNAL__OP__OP_AUDIT_INSERT:
        return ap_audit(st, j, op->audit_insert);
    case NIMBUS__JOURNAL__OP__OP_RESERVE:
        return ap_reserve(st, op->reserve, out);
    case NIMBUS__JOURNAL__OP__OP_RESTORE:
        return ap_restore(st, j, op->restore, out->index);
    case NIMBUS__JOURNAL__OP__OP_REQUIRE:
        if (!require_rv_ok(op->require->rv)) {
            return CKR_DATA_INVALID;
        }
        return require_check(st, op->require->what, op->require->id,
                             op->require->type, (CK_RV)op->require->rv);
    default:
        return CKR_DATA_INVALID; /* an operation this build does not know */
    }
}

/* Decodes and runs the entry's operations; out->rv is the first failure.
 * Returns a fatal failure only. */
static CK_RV ap_entry(store_t *st, const struct store_journal *j,
                      const uint8_t *entry, size_t len, struct apply_out *out)
{
    Nimbus__Journal__Entry *e = NULL;
    jop_t *op;
    size_t i;
    CK_RV rv = CKR_OK;

    if (len > JR_ENTRY_MAX) {
        out->rv = CKR_DATA_LEN_RANGE;
        return CKR_OK;
    }
    e = nimbus__journal__entry__unpack(NULL, len, len > 0 ? entry : NULL);
    if (e == NULL) {
        out->rv = CKR_DATA_INVALID;
        return CKR_OK;
    }
    if (e->n_ops > JR_OPS_MAX) {
        out->rv = CKR_DATA_LEN_RANGE;
        goto out;
    }
    for (i = 0; i < e->n_ops && out->rv == CKR_OK; i++) {
        op = nimbus__journal__op__unpack(NULL, e->ops[i].len, e->ops[i].data);
        if (op == NULL) {
            rv = CKR_DATA_INVALID;
        } else {
            rv = ap_op(st, j, op, out);
            nimbus__journal__op__free_unpacked(op, NULL);
        }
        if (rv_fatal(rv)) {
            goto out;
        }
        if (rv != CKR_OK) {
            out->rv = rv;
            out->failed_op = (uint32_t)i;
            rv = CKR_OK;
        }
    }
out:
    nimbus__journal__entry__free_unpacked(e, NULL);
    return rv;
}

static CK_RV result_encode(const struct apply_out *out, uint8_t **res,
                           size_t *reslen)
{
    Nimbus__Journal__Result r = NIMBUS__JOURNAL__RESULT__INIT;
    Nimbus__Journal__Block *bp[JR_RESERVES_MAX];
    size_t i;

    r.rv = out->rv;
    if (out->rv != CKR_OK) {
        r.has_failed_op = true;
        r.failed_op = out->failed_op;
    }
    if (out->rv == CKR_OK && out->has_charge) {
        r.has_failures = r.has_charged = true;
        r.failures = out->failures;
        r.charged = out->charged;
    }
    if (out->rv == CKR_OK) {
        for (i = 0; i < out->n_blocks; i++) {
            bp[i] = (Nimbus__Journal__Block *)&out->blocks[i];
        }
        r.n_blocks = out->n_blocks;
        r.blocks = bp;
    }
    *reslen = nimbus__journal__result__get_packed_size(&r);
    *res = malloc(*reslen > 0 ? *reslen : 1);
    if (*res == NULL) {
        *reslen = 0;
        return CKR_HOST_MEMORY;
    }
    nimbus__journal__result__pack(&r, *res);
    return CKR_OK;
}

/* The result recorded for (origin, seq): the origin's last one when seq
 * is that one's, else (an older seq: nobody waits for it any more) a
 * failure. */
static CK_RV recorded_result(store_t *st, uint64_t origin, uint64_t seq,
                             bool *dup, uint8_t **res, size_t *reslen)
{
    struct apply_out stale;
    sqlite3_stmt *s = NULL;
    const void *p;
    int rc, n;
    CK_RV rv = CKR_OK;

    *dup = false;
    *res = NULL;
    *reslen = 0;
    rc = sqlite3_prepare_v2(st->db,
                            "SELECT seq, result FROM cluster_origins "
                            "WHERE origin = ?1",
                            -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 1, u64_i64(origin));
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
    }
    if (rc == SQLITE_DONE) {
        goto out;
    }
    if (rc != SQLITE_ROW) {
        rv = store_int_rv(st, rc, "journal origin");
        goto out;
    }
    if (seq > i64_u64(sqlite3_column_int64(s, 0))) {
        goto out;
    }
    *dup = true;
    p = sqlite3_column_blob(s, 1);
    n = sqlite3_column_bytes(s, 1);
    if (seq == i64_u64(sqlite3_column_int64(s, 0)) && p != NULL && n > 0 &&
        (size_t)n <= JR_RESULT_MAX) {
        *res = malloc((size_t)n);
        if (*res == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        memcpy(*res, p, (size_t)n);
        *reslen = (size_t)n;
        goto out;
    }
    memset(&stale, 0, sizeof(stale));
    stale.rv = CKR_FUNCTION_FAILED;
    rv = result_encode(&stale, res, reslen);
out:
    sqlite3_finalize(s);
    return rv;
}

static CK_RV set_applied(store_t *st, uint64_t index)
{
    return x_int2(st,
                  "INSERT OR REPLACE INTO cluster_applied(one, idx) "
                  "VALUES(?1, ?2)",
                  1, (int64_t)index, "journal applied");
}

CK_RV store_journal_applied(store_t *st, uint64_t *index)
{
    int64_t v = 0;
    bool row = false;
    CK_RV rv;

    return_val_if_fail(st != NULL && index != NULL, CKR_GENERAL_ERROR);
    rv = q_int(st, "SELECT idx FROM cluster_applied WHERE one = 1", 0, false,
               &v, &row, "journal applied");
    *index = v > 0 ? (uint64_t)v : 0;
    return rv;
}

CK_RV store_journal_apply(store_t *st, const struct store_journal *j,
                          uint64_t index, uint64_t origin, uint64_t seq,
                          const uint8_t *entry, size_t len, uint8_t **res,
                          size_t *reslen)
{
    struct apply_out out;
    uint64_t applied = 0;
    uint8_t *r = NULL;
    size_t rlen = 0;
    bool dup = false, in_savepoint = false;
    sqlite3_stmt *s = NULL;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && j != NULL && res != NULL && reslen != NULL,
                       CKR_GENERAL_ERROR);
    return_val_if_fail(j->unmask != NULL && j->audit_append != NULL,
                       CKR_GENERAL_ERROR);
    return_val_if_fail(entry != NULL || len == 0, CKR_GENERAL_ERROR);
    return_val_if_fail(!st->in_tx, CKR_GENERAL_ERROR);
    *res = NULL;
    *reslen = 0;
    if (index == 0 || index > INT64_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    memset(&out, 0, sizeof(out));
    out.index = index;

    if ((rv = store_int_exec(st, "BEGIN IMMEDIATE", "apply")) != CKR_OK) {
        return rv;
    }
    if ((rv = store_journal_applied(st, &applied)) != CKR_OK) {
        goto fail;
    }
    if (index <= applied) {
        /* Applied already (a replay after a restart): nothing changes. */
        rv = recorded_result(st, origin, seq, &dup, &r, &rlen);
        if (rv == CKR_OK && r == NULL) {
            out.rv = CKR_FUNCTION_FAILED;
            rv = result_encode(&out, &r, &rlen);
        }
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        if (rv == CKR_OK) {
            *res = r;
            *reslen = rlen;
        } else {
            free(r);
        }
        return rv;
    }
    if ((rv = recorded_result(st, origin, seq, &dup, &r, &rlen)) != CKR_OK) {
        goto fail;
    }
    if (!dup) {
        /* The operations, undone together on their first failure. */
        if ((rv = store_int_exec(st, "SAVEPOINT entry", "apply")) != CKR_OK) {
            goto fail;
        }
        in_savepoint = true;
        st->in_tx = true;
        st->tx = STORE_TX_APPLY;
        rv = ap_entry(st, j, entry, len, &out);
        st->in_tx = false;
        st->tx = STORE_TX_NONE;
        if (rv != CKR_OK) {
            goto fail;
        }
        if (out.rv != CKR_OK &&
            (rv = store_int_exec(st, "ROLLBACK TO entry", "apply")) != CKR_OK) {
            goto fail;
        }
        if ((rv = store_int_exec(st, "RELEASE entry", "apply")) != CKR_OK) {
            goto fail;
        }
        in_savepoint = false;
        if ((rv = result_encode(&out, &r, &rlen)) != CKR_OK) {
            goto fail;
        }
        rc = sqlite3_prepare_v2(st->db,
                                "INSERT OR REPLACE INTO cluster_origins"
                                "(origin, seq, result) VALUES(?1, ?2, ?3)",
                                -1, &s, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_int64(s, 1, u64_i64(origin));
        }
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_int64(s, 2, u64_i64(seq));
        }
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_blob(s, 3, r, (int)rlen, SQLITE_STATIC);
        }
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(s);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        sqlite3_finalize(s);
        if (rc != SQLITE_OK) {
            rv = store_int_rv(st, rc, "journal origin");
            goto fail;
        }
    }
    if ((rv = set_applied(st, index)) != CKR_OK ||
        (rv = store_bump_generation(st)) != CKR_OK ||
        (rv = store_int_exec(st, "COMMIT", "apply")) != CKR_OK) {
        goto fail;
    }
    *res = r;
    *reslen = rlen;
    return CKR_OK;

fail:
    (void)in_savepoint;
    st->in_tx = false;
    st->tx = STORE_TX_NONE;
    if (!sqlite3_get_autocommit(st->db)) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    free(r);
    log_error("store: cannot apply entry %" PRIu64 ": 0x%lx", index,
              (unsigned long)rv);
    return rv;
}

/* --------------------------------------------------------- digest */

/* What the digest covers, each in a fixed order. Objects by id and
 * version (their blobs are sealed under each node's own key), users with
 * their lockout counts; of the audit log its length and its last record
 * without the time (the table grows for ever). */
static const char *const digest_sql[] = {
    "SELECT key, value FROM meta WHERE key NOT IN ('generation', "
    "'key_check', 'audit_head', 'schema_version') AND key NOT LIKE 'local.%' "
    "ORDER BY key",
    "SELECT id, type, name, version, failures, mofn_pubkey, twofa "
    "FROM users ORDER BY id",
    "SELECT id, version, owner FROM objects ORDER BY id",
    "SELECT object_id, user_id FROM shares ORDER BY object_id, user_id",
    "SELECT service, m FROM quorum_m ORDER BY service",
    "SELECT id, service, requester, requester_version, login_id, issued, "
    "expires, needed, digest FROM quorum_tokens ORDER BY id",
    "SELECT token_id, approver FROM quorum_approvals "
    "ORDER BY token_id, approver",
    "SELECT count(*), max(seq) FROM audit",
    "SELECT seq, user_id, operation, object_id, result FROM audit "
    "ORDER BY seq DESC LIMIT 1",
    "SELECT kind, next FROM cluster_ids ORDER BY kind",
};

/* A growing byte buffer; a failed growth sticks and is checked once. */
struct dbuf {
    uint8_t *p;
    size_t len, cap;
    bool failed;
};

static void put(struct dbuf *b, const void *data, size_t n)
{
    size_t cap;
    uint8_t *p;

    if (b->failed || n == 0) {
        return;
    }
    if (n > JR_DIGEST_MAX - b->len) {
        b->failed = true;
        return;
    }
    if (b->len + n > b->cap) {
        cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) {
            cap *= 2;
        }
        p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_u8(struct dbuf *b, uint8_t v)
{
    put(b, &v, 1);
}

static void put_u64(struct dbuf *b, uint64_t v)
{
    uint8_t x[8];
    int i;

    for (i = 0; i < 8; i++) {
        x[i] = (uint8_t)(v >> (56 - 8 * i));
    }
    put(b, x, sizeof(x));
}

/* Each value with its type and length, so that no two row sets give the
 * same bytes by shifting them between columns or rows. */
static CK_RV digest_query(store_t *st, struct dbuf *b, size_t q)
{
    sqlite3_stmt *s = NULL;
    int rc, i, cols;

    rc = sqlite3_prepare_v2(st->db, digest_sql[q], -1, &s, NULL);
    if (rc != SQLITE_OK) {
        return store_int_rv(st, rc, "digest");
    }
    put_u8(b, 'T');
    put_u64(b, q);
    cols = sqlite3_column_count(s);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        put_u8(b, 'R');
        for (i = 0; i < cols; i++) {
            switch (sqlite3_column_type(s, i)) {
            case SQLITE_INTEGER:
                put_u8(b, 'i');
                put_u64(b, i64_u64(sqlite3_column_int64(s, i)));
                break;
            case SQLITE_NULL:
                put_u8(b, 'n');
                break;
            default: {
                const void *p = sqlite3_column_blob(s, i);
                int n = sqlite3_column_bytes(s, i);

                put_u8(b, 'b');
                put_u64(b, n > 0 ? (uint64_t)n : 0);
                if (p != NULL && n > 0) {
                    put(b, p, (size_t)n);
                }
                break;
            }
            }
        }
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? CKR_OK : store_int_rv(st, rc, "digest");
}

CK_RV store_digest_input(store_t *st, uint8_t **buf, size_t *len,
                         uint64_t *applied)
{
    static const char tag[] = "nimbus store digest 1";
    struct dbuf b = {NULL, 0, 0, false};
    uint64_t idx = 0;
    bool own = false;
    size_t q;
    CK_RV rv;

    return_val_if_fail(st != NULL && buf != NULL && len != NULL,
                       CKR_GENERAL_ERROR);
    *buf = NULL;
    *len = 0;
    /* One read transaction: the index and the tables agree. */
    if (!st->in_tx) {
        if ((rv = store_int_exec(st, "BEGIN DEFERRED", "digest")) != CKR_OK) {
            return rv;
        }
        own = true;
    }
    put(&b, tag, sizeof(tag) - 1);
    rv = store_journal_applied(st, &idx);
    put_u64(&b, idx);
    for (q = 0; rv == CKR_OK && q < UTIL_ARRAY_SIZE(digest_sql); q++) {
        rv = digest_query(st, &b, q);
    }
    if (own) {
        sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rv == CKR_OK && b.failed) {
        rv = CKR_HOST_MEMORY;
    }
    if (rv != CKR_OK) {
        free(b.p);
        return rv;
    }
    *buf = b.p;
    *len = b.len;
    if (applied != NULL) {
        *applied = idx;
    }
    return CKR_OK;
}

/* ------------------------------------------------------- snapshots */

/* The replicated tables and their columns, parents before children. */
static const struct {
    const char *name, *cols;
} snap_tables[] = {
    {"users", "id, name, type, verifier, failures, version, mofn_pubkey, "
              "twofa"},
    {"objects",
     "id, owner, class, key_type, private, label, ckid, attrs, version"},
    {"shares", "object_id, user_id"},
    {"quorum_m", "service, m"},
    {"quorum_tokens", "id, service, requester, requester_version, login_id, "
                      "issued, expires, needed, digest"},
    {"quorum_approvals", "token_id, approver"},
    {"audit", "seq, time, hsm_id, user_id, operation, object_id, result, "
              "hash, peer, fmt"},
    {"cluster_applied", "one, idx"},
    {"cluster_origins", "origin, seq, result"},
    {"cluster_ids", "kind, next"},
};

/* The meta rows that stay on the node through a snapshot. The audit head
 * travels: every node chains the same records, and the restored audit
 * table needs the head that goes with it. */
#define SNAP_META_LOCAL                                                        \
    "(key IN ('generation', 'key_check', 'schema_version') OR "                \
    "key LIKE 'local.%')"

#define SNAP_MAX ((size_t)1 << 31) /* 2 GiB */

/* Rewrites the attrs of every object of db (schema sch) through fn:
 * mask (snapshot) or unmask (restore). entry: the rows came in a log
 * entry (a restored backup): a row out of bounds or a blob that does not
 * unmask is the entry's failure, not this node's. */
static CK_RV snap_transform(sqlite3 *db, const char *sch,
                            const struct store_journal *j, bool mask,
                            bool entry)
{
    sqlite3_stmt *sel = NULL, *upd = NULL;
    uint8_t *out = NULL;
    size_t outlen = 0;
    char sql[160];
    CK_RV rv = CKR_OK;
    int rc;

    snprintf(sql, sizeof(sql),
             "SELECT id, version, attrs FROM %s.objects "
             "WHERE length(attrs) > 0 ORDER BY id",
             sch);
    rc = sqlite3_prepare_v2(db, sql, -1, &sel, NULL);
    if (rc == SQLITE_OK) {
        snprintf(sql, sizeof(sql),
                 "UPDATE %s.objects SET attrs = ?2 WHERE id = ?1", sch);
        rc = sqlite3_prepare_v2(db, sql, -1, &upd, NULL);
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(sel, 0);
        int64_t ver = sqlite3_column_int64(sel, 1);
        const uint8_t *p = sqlite3_column_blob(sel, 2);
        int n = sqlite3_column_bytes(sel, 2);

        if (id < 1 || ver < 1 || p == NULL || n <= 0 ||
            (size_t)n > STORE_ATTRS_MAX + JR_MASK_OVERHEAD) {
            rv = entry ? CKR_DATA_INVALID : CKR_DEVICE_ERROR;
            break;
        }
        rv = mask ? j->mask(j->ctx, (uint64_t)id, (uint64_t)ver, p, (size_t)n,
                            &out, &outlen)
                  : j->unmask(j->ctx, (uint64_t)id, (uint64_t)ver, p, (size_t)n,
                              &out, &outlen);
        if (rv == CKR_OK && entry && outlen > STORE_ATTRS_MAX) {
            util_free_wipe(out, outlen);
            rv = CKR_DATA_LEN_RANGE;
        }
        if (entry) {
            rv = hook_rv(rv);
        }
        if (rv != CKR_OK) {
            log_error("store: cannot %s object %" PRId64,
                      mask ? "mask" : "unmask", id);
            break;
        }
        rc = sqlite3_bind_int64(upd, 1, id);
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_blob64(upd, 2, out, outlen, SQLITE_STATIC);
        }
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(upd);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        }
        sqlite3_reset(upd);
        sqlite3_clear_bindings(upd);
        util_free_wipe(out, outlen);
        out = NULL;
        outlen = 0;
    }
    if (rv == CKR_OK && rc != SQLITE_OK && rc != SQLITE_DONE) {
        log_error("store: snapshot objects: %s", sqlite3_errmsg(db));
        rv = (rc & 0xff) == SQLITE_NOMEM ? CKR_HOST_MEMORY : CKR_DEVICE_ERROR;
    }
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    return rv;
}

static CK_RV mem_exec(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

    if (rc != SQLITE_OK) {
        log_error("store: snapshot: %s", sqlite3_errmsg(db));
        return (rc & 0xff) == SQLITE_NOMEM ? CKR_HOST_MEMORY : CKR_DEVICE_ERROR;
    }
    return CKR_OK;
}

CK_RV store_snapshot(store_t *st, const struct store_journal *j, uint8_t **buf,
                     size_t *len)
{
    sqlite3 *mem = NULL;
    sqlite3_backup *bk;
    sqlite3_int64 size = 0;
    unsigned char *ser = NULL;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && j != NULL && j->mask != NULL,
                       CKR_GENERAL_ERROR);
    return_val_if_fail(buf != NULL && len != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(!st->in_tx, CKR_GENERAL_ERROR);
    *buf = NULL;
    *len = 0;
    rc = sqlite3_open_v2(":memory:", &mem,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_close(mem);
        return CKR_HOST_MEMORY;
    }
    /* A consistent copy of the whole file (one read transaction). */
    bk = sqlite3_backup_init(mem, "main", st->db, "main");
    if (bk == NULL) {
        log_error("store: snapshot copy: %s", sqlite3_errmsg(mem));
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    rc = sqlite3_backup_step(bk, -1);
    sqlite3_backup_finish(bk);
    if (rc != SQLITE_DONE) {
        log_error("store: snapshot copy: %s", sqlite3_errstr(rc));
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    /* Node-local rows out, blobs masked; VACUUM drops the freed pages
     * that still hold what was replaced. */
    if ((rv = mem_exec(mem, "PRAGMA secure_delete = ON;"
                            "DELETE FROM meta WHERE " SNAP_META_LOCAL
                            " AND key != 'schema_version'")) != CKR_OK ||
        (rv = snap_transform(mem, "main", j, true, false)) != CKR_OK ||
        (rv = mem_exec(mem, "VACUUM")) != CKR_OK) {
        goto out;
    }
    ser = sqlite3_serialize(mem, "main", &size, 0);
    if (ser == NULL || size <= 0 || (uint64_t)size > SNAP_MAX) {
        rv = ser == NULL ? CKR_HOST_MEMORY : CKR_DEVICE_ERROR;
        goto out;
    }
    *buf = malloc((size_t)size);
    if (*buf == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    memcpy(*buf, ser, (size_t)size);
    *len = (size_t)size;
    rv = CKR_OK;
out:
    if (ser != NULL) {
        util_wipe(ser, (size_t)size);
        sqlite3_free(ser);
    }
    sqlite3_close(mem);
    return rv;
}

/* Whether the snapshot attached as sch is a store of our schema version. */
static CK_RV snap_check(store_t *st, const char *sch)
{
    char sql[96];
    int64_t v = 0;
    bool row = false;
    sqlite3_stmt *s = NULL;
    const unsigned char *t;
    bool ok = false;
    int rc;

    snprintf(sql, sizeof(sql), "PRAGMA %s.quick_check", sch);
    rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        t = sqlite3_column_text(s, 0);
        ok = t != NULL && strcmp((const char *)t, "ok") == 0;
    }
    sqlite3_finalize(s);
    if (!ok) {
        log_error("store: the snapshot is not a sound database");
        return CKR_DATA_INVALID;
    }
    snprintf(sql, sizeof(sql),
             "SELECT value FROM %s.meta WHERE key = 'schema_version'", sch);
    if (q_int(st, sql, 0, false, &v, &row, "restore") != CKR_OK || !row ||
        v != STORE_SCHEMA_VERSION) {
        log_error("store: the snapshot is not of schema %d",
                  STORE_SCHEMA_VERSION);
        return CKR_DATA_INVALID;
    }
    return CKR_OK;
}

CK_RV store_restore(store_t *st, const struct store_journal *j,
                    const uint8_t *buf, size_t len)
{
    unsigned char *copy = NULL;
    char sql[512];
    bool attached = false;
    size_t i;
    CK_RV rv;
    int rc;

    return_val_if_fail(st != NULL && j != NULL && j->unmask != NULL,
                       CKR_GENERAL_ERROR);
    return_val_if_fail(buf != NULL || len == 0, CKR_GENERAL_ERROR);
    return_val_if_fail(!st->in_tx, CKR_GENERAL_ERROR);
    if (len == 0 || len > SNAP_MAX) {
        return CKR_DATA_LEN_RANGE;
    }
    copy = sqlite3_malloc64(len);
    if (copy == NULL) {
        return CKR_HOST_MEMORY;
    }
    memcpy(copy, buf, len);
    if ((rv = store_int_exec(st, "ATTACH ':memory:' AS snap", "restore")) !=
        CKR_OK) {
        sqlite3_free(copy);
        return rv;
    }
    attached = true;
    /* Not READONLY: BEGIN IMMEDIATE locks every attached database. */
    rc =
        sqlite3_deserialize(st->db, "snap", copy, (sqlite3_int64)len,
                            (sqlite3_int64)len, SQLITE_DESERIALIZE_FREEONCLOSE);
    if (rc != SQLITE_OK) {
        rv = store_int_rv(st, rc, "restore");
        goto out;
    }
    if ((rv = snap_check(st, "snap")) != CKR_OK) {
        goto out;
    }
    /* One transaction: the replicated tables replaced, the node's own
     * rows (master-key check, generation, local.*) kept. */
    if ((rv = store_int_exec(st, "BEGIN IMMEDIATE", "restore")) != CKR_OK) {
        goto out;
    }
    for (i = UTIL_ARRAY_SIZE(snap_tables); i-- > 0;) {
        snprintf(sql, sizeof(sql), "DELETE FROM main.%s", snap_tables[i].name);
        if ((rv = store_int_exec(st, sql, "restore")) != CKR_OK) {
            goto fail;
        }
    }
    for (i = 0; i < UTIL_ARRAY_SIZE(snap_tables); i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO main.%s(%s) SELECT %s FROM snap.%s",
                 snap_tables[i].name, snap_tables[i].cols, snap_tables[i].cols,
                 snap_tables[i].name);
        if ((rv = store_int_exec(st, sql, "restore")) != CKR_OK) {
            goto fail;
        }
    }
    if ((rv = store_int_exec(st,
                             "DELETE FROM main.meta WHERE NOT " SNAP_META_LOCAL
                             ";INSERT INTO main.meta(key, value) SELECT key, "
                             "value FROM snap.meta WHERE NOT " SNAP_META_LOCAL,
                             "restore")) != CKR_OK ||
        (rv = snap_transform(st->db, "main", j, false, false)) != CKR_OK ||
        (rv = store_bump_generation(st)) != CKR_OK ||
        (rv = store_int_exec(st, "COMMIT", "restore")) != CKR_OK) {
        goto fail;
    }
    goto out;
fail:
    if (!sqlite3_get_autocommit(st->db)) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (rv == CKR_FUNCTION_FAILED) {
        rv = CKR_DATA_INVALID; /* rows that break the schema's rules */
    }
out:
    if (attached) {
        sqlite3_exec(st->db, "DETACH snap", NULL, NULL, NULL);
    }
    return rv;
}

/* ------------------------------------------------------- backups */

/*
 * A snapshot image opens on a connection of its own (read-only, in
 * memory, attached as "snap"): a damaged image can make a connection's
 * every statement fail, and the node's handle must go on.
 */
static CK_RV img_open(const uint8_t *buf, size_t len, store_t *img)
{
    unsigned char *copy;
    CK_RV rv;
    int rc;

    memset(img, 0, sizeof(*img));
    if (len == 0 || len > SNAP_MAX) {
        return CKR_DATA_LEN_RANGE;
    }
    rc = sqlite3_open_v2(":memory:", &img->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_close(img->db);
        img->db = NULL;
        return CKR_HOST_MEMORY;
    }
    if ((rv = store_int_exec(img, "ATTACH ':memory:' AS snap", "image")) !=
        CKR_OK) {
        return rv;
    }
    if ((copy = sqlite3_malloc64(len)) == NULL) {
        return CKR_HOST_MEMORY;
    }
    memcpy(copy, buf, len);
    rc = sqlite3_deserialize(
        img->db, "snap", copy, (sqlite3_int64)len, (sqlite3_int64)len,
        SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY);
    if (rc != SQLITE_OK) {
        return store_int_rv(img, rc, "image");
    }
    return snap_check(img, "snap");
}

static void img_close(store_t *img)
{
    sqlite3_close(img->db);
    img->db = NULL;
}

/* One integer the image answers; a statement it fails is the image's
 * failure (CKR_DATA_INVALID). */
static CK_RV img_int(store_t *img, const char *sql, int64_t *v)
{
    bool row = false;

    if (q_int(img, sql, 0, false, v, &row, "image") != CKR_OK || !row) {
        return CKR_DATA_INVALID;
    }
    return CKR_OK;
}

/* A failure of a restore's insert: a row the schema refuses is the
 * image's (the entry's) failure; memory and I/O are the node's. */
static CK_RV restore_rv(store_t *st, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
        log_warn("store: a restored row refused: %s", sqlite3_errmsg(st->db));
        return CKR_DATA_INVALID;
    default:
        return store_int_rv(st, rc, "restore");
    }
}

/* Copies the rows of the image's table into the same table of st. */
static CK_RV img_copy(store_t *img, store_t *st, const char *table,
                      const char *cols, int ncols)
{
    sqlite3_stmt *sel = NULL, *ins = NULL;
    char sql[512], marks[64];
    size_t off = 0;
    CK_RV rv = CKR_OK;
    int rc, i;

    for (i = 0; i < ncols && off + 4 < sizeof(marks); i++) {
        off += (size_t)snprintf(marks + off, sizeof(marks) - off, "%s?",
                                i > 0 ? "," : "");
    }
    snprintf(sql, sizeof(sql), "SELECT %s FROM snap.%s", cols, table);
    if (sqlite3_prepare_v2(img->db, sql, -1, &sel, NULL) != SQLITE_OK) {
        sqlite3_finalize(sel);
        return CKR_DATA_INVALID; /* the image lacks the table or a column */
    }
    snprintf(sql, sizeof(sql), "INSERT INTO main.%s(%s) VALUES(%s)", table,
             cols, marks);
    rc = sqlite3_prepare_v2(st->db, sql, -1, &ins, NULL);
    if (rc != SQLITE_OK) {
        rv = store_int_rv(st, rc, "restore");
        goto out;
    }
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        for (i = 0; i < ncols && rc == SQLITE_ROW; i++) {
            if (sqlite3_bind_value(ins, i + 1, sqlite3_column_value(sel, i)) !=
                SQLITE_OK) {
                rc = SQLITE_NOMEM;
            }
        }
        if (rc == SQLITE_ROW) {
            rc = sqlite3_step(ins);
        }
        sqlite3_reset(ins);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
            rv = restore_rv(st, rc);
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        log_warn("store: a restored image does not read: %s",
                 sqlite3_errmsg(img->db));
        rv = (rc & 0xff) == SQLITE_NOMEM ? CKR_HOST_MEMORY : CKR_DATA_INVALID;
    }
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    return rv;
}

/* The rows of the image within the bounds the store's writers keep (the
 * schema's own checks run again as the rows go in). */
static const char img_bad_sql[] =
    "SELECT (SELECT count(*) FROM snap.users WHERE typeof(id) != 'integer'"
    " OR typeof(type) != 'integer' OR typeof(version) != 'integer'"
    " OR version < 1 OR version > 4611686018427387903"
    " OR typeof(failures) != 'integer' OR failures < 0"
    " OR (verifier IS NOT NULL AND (typeof(verifier) != 'blob'"
    "  OR length(verifier) > 4096))"
    " OR (mofn_pubkey IS NOT NULL AND (typeof(mofn_pubkey) != 'blob'"
    "  OR length(mofn_pubkey) NOT BETWEEN 1 AND 4096))"
    " OR twofa NOT IN (0, 1))"
    " + (SELECT count(*) FROM snap.objects WHERE typeof(id) != 'integer'"
    " OR id < 1 OR typeof(version) != 'integer' OR version < 1"
    " OR typeof(owner) != 'integer' OR owner NOT BETWEEN 0 AND 4294967295"
    " OR typeof(class) != 'integer' OR typeof(key_type) != 'integer'"
    " OR private NOT IN (0, 1)"
    " OR (label IS NOT NULL AND length(label) > 65536)"
    " OR (ckid IS NOT NULL AND length(ckid) > 65536)"
    " OR (attrs IS NOT NULL AND typeof(attrs) != 'blob'))"
    " + (SELECT count(*) FROM snap.cluster_ids WHERE typeof(kind) !="
    " 'integer' OR kind NOT BETWEEN 1 AND 3 OR typeof(next) != 'integer'"
    " OR next < 1 OR next > 4611686018427387903)";

/* The tables a restore takes from the image, parents first. */
static const struct {
    const char *name, *cols;
    int ncols;
} img_tables[] = {
    {"users", "id, name, type, verifier, failures, version, mofn_pubkey, twofa",
     8},
    {"objects",
     "id, owner, class, key_type, private, label, ckid, attrs, version", 9},
    {"shares", "object_id, user_id", 2},
    {"quorum_m", "service, m", 2},
};

/* Whether st holds nothing a restore could destroy: exactly the users
 * the writer checked (none a crypto user), no key, no quorum token. Only
 * replicated rows are read: the same answer on every node. */
static CK_RV restore_precondition(store_t *st,
                                  const Nimbus__Journal__Restore *m)
{
    sqlite3_stmt *s = NULL;
    int64_t v = 0;
    bool row = false;
    size_t i = 0;
    CK_RV rv;
    int rc;

    if ((rv = q_int(st,
                    "SELECT (SELECT count(*) FROM objects) + "
                    "(SELECT count(*) FROM quorum_tokens)",
                    0, false, &v, &row, "restore")) != CKR_OK) {
        return rv;
    }
    if (v != 0) {
        return CKR_ACTION_PROHIBITED;
    }
    rc = sqlite3_prepare_v2(st->db, "SELECT id FROM users ORDER BY id", -1, &s,
                            NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if (i >= m->n_users ||
            (uint64_t)sqlite3_column_int64(s, 0) != m->users[i]) {
            rc = SQLITE_ROW; /* a user the writer did not see */
            break;
        }
        i++;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return store_int_rv(st, rc, "restore");
    }
    return rc == SQLITE_ROW || i != m->n_users ? CKR_ACTION_PROHIBITED : CKR_OK;
}

static CK_RV ap_restore(store_t *st, const struct store_journal *j,
                        const Nimbus__Journal__Restore *m, uint64_t index)
{
    store_t img;
    uint8_t epoch[8];
    int64_t v = 0, vmax = 0;
    bool row = false;
    char sql[160];
    size_t i;
    CK_RV rv;

    if (m->snapshot.len == 0 || m->snapshot.len > STORE_RESTORE_MAX ||
        m->n_users > STORE_RESTORE_USERS_MAX) {
        return CKR_DATA_LEN_RANGE;
    }
    if ((rv = restore_precondition(st, m)) != CKR_OK) {
        return rv;
    }
    rv = img_open(m->snapshot.data, m->snapshot.len, &img);
    if (rv == CKR_OK && (rv = img_int(&img, img_bad_sql, &v)) == CKR_OK &&
        v != 0) {
        rv = CKR_DATA_INVALID;
    }
    /* Every restored user's version above every version either side had:
     * a login (or ticket) of a user of before names a version no user
     * has any more, and ends at its next call. */
    if (rv == CKR_OK &&
        (rv = img_int(&img, "SELECT coalesce(max(version), 0) FROM snap.users",
                      &vmax)) == CKR_OK &&
        (rv = q_int(st, "SELECT coalesce(max(version), 0) FROM main.users", 0,
                    false, &v, &row, "restore")) == CKR_OK) {
        vmax = v > vmax ? v : vmax;
        if (vmax < 0 || vmax > INT64_MAX / 2) {
            rv = CKR_DATA_INVALID;
        }
    }
    if (rv == CKR_OK &&
        (rv = store_int_exec(st,
                             "DELETE FROM main.quorum_approvals;"
                             "DELETE FROM main.quorum_tokens;"
                             "DELETE FROM main.shares;"
                             "DELETE FROM main.objects;"
                             "DELETE FROM main.users;"
                             "DELETE FROM main.quorum_m;",
                             "restore")) == CKR_OK) {
        for (i = 0; rv == CKR_OK && i < UTIL_ARRAY_SIZE(img_tables); i++) {
            rv = img_copy(&img, st, img_tables[i].name, img_tables[i].cols,
                          img_tables[i].ncols);
        }
    }
    /* The id counters: the higher of both sides, and above every row. */
    for (i = 1; rv == CKR_OK && i < STORE_KIND_END; i++) {
        snprintf(sql, sizeof(sql),
                 "SELECT next FROM snap.cluster_ids WHERE kind = %zu", i);
        if ((rv = img_int(&img, sql, &v)) == CKR_DATA_INVALID) {
            v = 1; /* a kind the image has no counter for */
            rv = CKR_OK;
        }
        if (rv == CKR_OK) {
            rv = x_int2(st,
                        "INSERT INTO cluster_ids(kind, next) VALUES(?1, ?2) "
                        "ON CONFLICT(kind) DO UPDATE SET next = "
                        "max(next, excluded.next)",
                        (int64_t)i, v, "restore");
        }
    }
    img_close(&img);
    if (rv != CKR_OK) {
        return rv;
    }
    snprintf(sql, sizeof(sql),
             "UPDATE users SET version = version + %" PRId64 ";", vmax);
    if ((rv = store_int_exec(st, sql, "restore")) != CKR_OK ||
        (rv = store_int_exec(
             st,
             "UPDATE cluster_ids SET next = max(next, 1 + coalesce((SELECT "
             "max(id) FROM users), 0)) WHERE kind = 1;"
             "UPDATE cluster_ids SET next = max(next, 1 + coalesce((SELECT "
             "max(id) FROM objects), 0)) WHERE kind = 2;",
             "restore")) != CKR_OK) {
        return rv;
    }
    /* Blobs from masked (the image's) to this node's store key. */
    if ((rv = snap_transform(st->db, "main", j, false, true)) != CKR_OK) {
        return rv;
    }
    for (i = 0; i < 8; i++) {
        epoch[i] = (uint8_t)(index >> (56 - 8 * i));
    }
    return store_meta_set(st, "restore_index", epoch, sizeof(epoch));
}

CK_RV store_snapshot_info(const uint8_t *buf, size_t len,
                          store_snap_info_t *info, uint8_t **digest,
                          size_t *dlen)
{
    store_t img;
    int64_t v = 0;
    CK_RV rv;

    return_val_if_fail(buf != NULL && info != NULL && digest != NULL &&
                           dlen != NULL,
                       CKR_GENERAL_ERROR);
    memset(info, 0, sizeof(*info));
    *digest = NULL;
    *dlen = 0;
    if ((rv = img_open(buf, len, &img)) != CKR_OK) {
        goto out;
    }
    if ((rv = img_int(&img, "SELECT count(*) FROM snap.users", &v)) != CKR_OK) {
        goto out;
    }
    info->users = v > 0 ? (uint64_t)v : 0;
    if ((rv = img_int(&img, "SELECT count(*) FROM snap.objects", &v)) !=
        CKR_OK) {
        goto out;
    }
    info->objects = v > 0 ? (uint64_t)v : 0;
    /* The digest's statements name no schema: the image is the only one
     * with those tables. */
    if (store_digest_input(&img, digest, dlen, &info->applied) != CKR_OK) {
        rv = CKR_DATA_INVALID; /* tables or columns the image lacks */
    }
out:
    img_close(&img);
    return rv;
}
