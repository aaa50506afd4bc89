/*
 * test_journal.c - the store in cluster mode (store.h, "cluster";
 * src/store/journal.c), without raft: a fake journal whose submit appends
 * the entry to an in-memory log and applies it to every member store in
 * log order. A member inside a transaction of its own lags, and catches
 * up before its next submit, as a follower would. Each store seals blobs
 * with a key of its own (XOR here), the cluster masks them with another,
 * so a missing or wrong transform shows in the bytes read back.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <limits.h>
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

#include "common/log.h"
#include "src/store/journal.pb-c.h"
#include "store/store.h"

#define T_CO 1
#define T_CU 2

#define NODES 4 /* 1..3 members from the start; 4 joins by snapshot */
#define SECRET "the key value of object one"

struct cl;

struct node {
    struct cl *c;
    int id;
    char path[PATH_MAX];
    store_t *st;
    struct store_journal j;
    uint8_t key;      /* this node's store key */
    uint64_t seq;     /* the last seq this origin used */
    uint64_t applied; /* log entries applied here */
    bool member;
    bool no_key; /* unmask answers CKR_KEY_NEEDED (no cluster key yet) */
    /* The entry this node submitted and waits for, and its result. */
    uint64_t want;
    uint8_t *res;
    size_t reslen;
};

struct lentry {
    uint64_t origin, seq;
    uint8_t *data;
    size_t len;
};

struct cl {
    char dir[PATH_MAX - 64];
    struct node n[NODES + 1];
    uint8_t ckey; /* the cluster masking key */
    struct lentry *log;
    size_t nlog, cap;
    CK_RV fail_submit; /* the next submit fails so, appending nothing */
};

/* ------------------------------------------------------- fake journal */

static CK_RV xor_copy(const uint8_t *in, size_t len, uint8_t k, size_t off,
                      uint8_t **out, size_t *outlen)
{
    *out = malloc(len + off > 0 ? len + off : 1);
    if (*out == NULL) {
        return CKR_HOST_MEMORY;
    }
    for (size_t i = 0; i < len; i++) {
        (*out)[off + i] = in[i] ^ k;
    }
    *outlen = len + off;
    return CKR_OK;
}

/* masked = oid (8) | version (8) | blob ^ node key ^ cluster key */
static CK_RV fake_mask(void *ctx, uint64_t oid, uint64_t version,
                       const uint8_t *blob, size_t len, uint8_t **out,
                       size_t *outlen)
{
    struct node *n = ctx;
    CK_RV rv = xor_copy(blob, len, n->key ^ n->c->ckey, 16, out, outlen);

    if (rv == CKR_OK) {
        memcpy(*out, &oid, 8);
        memcpy(*out + 8, &version, 8);
    }
    return rv;
}

static CK_RV fake_unmask(void *ctx, uint64_t oid, uint64_t version,
                         const uint8_t *masked, size_t len, uint8_t **out,
                         size_t *outlen)
{
    struct node *n = ctx;

    if (n->no_key) {
        return CKR_KEY_NEEDED;
    }
    if (len < 16 || memcmp(masked, &oid, 8) != 0 ||
        memcmp(masked + 8, &version, 8) != 0) {
        return CKR_ENCRYPTED_DATA_INVALID; /* another object's, or version */
    }
    return xor_copy(masked + 16, len - 16, n->key ^ n->c->ckey, 0, out, outlen);
}

/* The core's chain, in short: head = seq (8, big endian) | hash (32). */
static CK_RV fake_audit_append(void *ctx, store_t *st, store_audit_t *rec)
{
    uint8_t *head = NULL, newhead[40] = {0}, prev[32] = {0};
    uint64_t seq = 0, h;
    size_t len = 0;
    CK_RV rv;

    (void)ctx;
    if ((rv = store_meta_get(st, "audit_head", &head, &len)) != CKR_OK) {
        return rv;
    }
    if (head != NULL && len == 40) {
        for (int i = 0; i < 8; i++) {
            seq = seq << 8 | head[i];
        }
        memcpy(prev, head + 8, 32);
    }
    free(head);
    rec->seq = seq + 1;
    /* Not the core's hash: a mix that makes each link depend on the
     * previous one and on the record, which is all this test needs. */
    h = 1469598103934665603ULL ^ rec->seq ^ rec->time * 31 ^ rec->oid * 131;
    for (size_t i = 0; rec->op[i] != '\0'; i++) {
        h = (h ^ (uint8_t)rec->op[i]) * 1099511628211ULL;
    }
    for (int i = 0; i < 32; i++) {
        h = (h ^ prev[i]) * 1099511628211ULL;
        rec->hash[i] = (uint8_t)(h >> 56);
    }
    for (int i = 0; i < 8; i++) {
        newhead[i] = (uint8_t)(rec->seq >> (56 - 8 * i));
    }
    memcpy(newhead + 8, rec->hash, 32);
    if ((rv = store_audit_insert(st, rec)) != CKR_OK) {
        return rv;
    }
    return store_meta_set(st, "audit_head", newhead, sizeof(newhead));
}

/* Applies the log to n as far as it can (not inside n's transaction). */
static void catch_up(struct node *n)
{
    struct cl *c = n->c;
    uint8_t *r = NULL;
    size_t rl = 0;

    while (n->member && n->applied < c->nlog && !store_in_tx(n->st)) {
        struct lentry *e = &c->log[n->applied];

        assert_int_equal(store_journal_apply(n->st, &n->j, n->applied + 1,
                                             e->origin, e->seq, e->data, e->len,
                                             &r, &rl),
                         CKR_OK);
        assert_non_null(r);
        n->applied++;
        if (n->applied == n->want) {
            n->res = r;
            n->reslen = rl;
        } else {
            free(r);
        }
        r = NULL;
    }
}

static void catch_up_all(struct cl *c)
{
    for (int i = 1; i <= NODES; i++) {
        catch_up(&c->n[i]);
    }
}

static uint64_t log_append(struct cl *c, uint64_t origin, uint64_t seq,
                           const uint8_t *data, size_t len)
{
    struct lentry *e;

    if (c->nlog == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->log = realloc(c->log, c->cap * sizeof(*c->log));
        assert_non_null(c->log);
    }
    e = &c->log[c->nlog++];
    e->origin = origin;
    e->seq = seq;
    e->data = malloc(len > 0 ? len : 1);
    assert_non_null(e->data);
    if (len > 0) {
        memcpy(e->data, data, len);
    }
    e->len = len;
    return c->nlog;
}

static CK_RV fake_submit(void *ctx, const uint8_t *entry, size_t len,
                         uint8_t **res, size_t *reslen)
{
    struct node *n = ctx;
    struct cl *c = n->c;
    CK_RV rv;

    if (c->fail_submit != CKR_OK) {
        rv = c->fail_submit;
        c->fail_submit = CKR_OK;
        return rv;
    }
    n->seq++;
    n->want = log_append(c, (uint64_t)n->id, n->seq, entry, len);
    catch_up_all(c);
    assert_int_equal(n->applied, n->want); /* the submitter waits */
    *res = n->res;
    *reslen = n->reslen;
    n->res = NULL;
    n->want = 0;
    return CKR_OK;
}

/* -------------------------------------------------------------- fixture */

static void node_open(struct node *n)
{
    bool created = false;

    assert_int_equal(store_open(n->path, &n->st, &created), CKR_OK);
    store_journal_attach(n->st, &n->j);
}

static int cl_setup(void **state)
{
    struct cl *c = calloc(1, sizeof(*c));
    const char *tmp = getenv("TMPDIR");

    if (c == NULL) {
        return -1;
    }
    snprintf(c->dir, sizeof(c->dir), "%s/nimbus-journal-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(c->dir) == NULL) {
        free(c);
        return -1;
    }
    c->ckey = 0x5a;
    for (int i = 1; i <= NODES; i++) {
        struct node *n = &c->n[i];

        n->c = c;
        n->id = i;
        n->key = (uint8_t)(0x11 * i);
        n->member = i <= 3;
        snprintf(n->path, sizeof(n->path), "%s/node%d.db", c->dir, i);
        n->j.ctx = n;
        n->j.mask = fake_mask;
        n->j.unmask = fake_unmask;
        n->j.audit_append = fake_audit_append;
        n->j.submit = fake_submit;
        node_open(n);
    }
    *state = c;
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
}

static int cl_teardown(void **state)
{
    struct cl *c = *state;

    for (int i = 1; i <= NODES; i++) {
        store_close(c->n[i].st);
        remove_db(c->n[i].path);
        free(c->n[i].res);
    }
    for (size_t i = 0; i < c->nlog; i++) {
        free(c->log[i].data);
    }
    free(c->log);
    rmdir(c->dir);
    free(c);
    return 0;
}

/* -------------------------------------------------------------- helpers */

static uint32_t add_user(struct node *n, const char *name, int type)
{
    uint32_t id = 0;

    assert_int_equal(store_begin(n->st, true), CKR_OK);
    assert_int_equal(store_user_insert(n->st, 0, name, type,
                                       (const uint8_t *)"verifier", 8, &id),
                     CKR_OK);
    assert_int_equal(store_commit(n->st), CKR_OK);
    assert_int_not_equal(id, 0);
    return id;
}

/* An object whose blob is plain sealed (XOR) under n's key. */
static uint64_t add_object(struct node *n, uint32_t owner, const char *label,
                           const char *plain)
{
    store_object_t o;
    uint8_t blob[128];
    size_t len = strlen(plain);
    uint64_t id = 0;

    for (size_t i = 0; i < len; i++) {
        blob[i] = (uint8_t)plain[i] ^ n->key;
    }
    memset(&o, 0, sizeof(o));
    o.owner = owner;
    o.cls = CKO_SECRET_KEY;
    o.key_type = CKK_AES;
    o.is_private = true;
    o.label = (uint8_t *)label;
    o.label_len = strlen(label);
    o.attrs = blob;
    o.attrs_len = len;
    assert_int_equal(store_begin(n->st, true), CKR_OK);
    assert_int_equal(store_object_insert(n->st, &o, &id), CKR_OK);
    assert_int_equal(store_commit(n->st), CKR_OK);
    assert_int_not_equal(id, 0);
    return id;
}

/* The object's blob on n, unsealed with n's key, equals plain. */
static void assert_object(struct node *n, uint64_t id, const char *label,
                          const char *plain)
{
    store_object_t o;
    bool found = false;

    assert_int_equal(store_object_get(n->st, id, &o, &found), CKR_OK);
    assert_true(found);
    assert_int_equal(o.label_len, strlen(label));
    assert_memory_equal(o.label, label, o.label_len);
    assert_int_equal(o.attrs_len, strlen(plain));
    for (size_t i = 0; i < o.attrs_len; i++) {
        assert_int_equal(o.attrs[i] ^ n->key, (uint8_t)plain[i]);
    }
    store_object_clear(&o);
}

/* The digest's input of n's replicated state. */
struct dig {
    uint8_t *p;
    size_t len;
};

static void digest_of(struct node *n, struct dig *d, uint64_t *applied)
{
    free(d->p);
    d->p = NULL;
    assert_int_equal(store_digest_input(n->st, &d->p, &d->len, applied),
                     CKR_OK);
    assert_non_null(d->p);
}

static bool dig_equal(const struct dig *a, const struct dig *b)
{
    return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* Every member has applied the whole log and has the same digest. */
static void assert_in_sync(struct cl *c)
{
    struct dig d1 = {NULL, 0}, d = {NULL, 0};
    uint64_t a1 = 0, a = 0;

    catch_up_all(c);
    digest_of(&c->n[1], &d1, &a1);
    assert_int_equal(a1, c->nlog);
    for (int i = 2; i <= NODES; i++) {
        if (!c->n[i].member) {
            continue;
        }
        digest_of(&c->n[i], &d, &a);
        assert_int_equal(a, a1);
        assert_true(dig_equal(&d, &d1));
    }
    free(d1.p);
    free(d.p);
}

static size_t count_users(struct node *n)
{
    store_user_t *u = NULL;
    size_t k = 0;

    assert_int_equal(store_user_list(n->st, &u, &k), CKR_OK);
    for (size_t i = 0; i < k; i++) {
        store_user_clear(&u[i]);
    }
    free(u);
    return k;
}

static size_t count_objects(struct node *n)
{
    store_query_t q;
    store_hit_t *h = NULL;
    size_t k = 0;

    memset(&q, 0, sizeof(q));
    assert_int_equal(store_object_find(n->st, &q, &h, &k), CKR_OK);
    free(h);
    return k;
}

/* Applies a hand-made entry on every member as the next log entry; the
 * result of the first member comes back decoded. */
static Nimbus__Journal__Result *apply_raw(struct cl *c, const uint8_t *entry,
                                          size_t len)
{
    struct node *n = &c->n[1];

    n->seq++;
    n->want = log_append(c, 1, n->seq, entry, len);
    catch_up_all(c);
    assert_int_equal(n->applied, n->want);
    n->want = 0;
    assert_non_null(n->res);
    Nimbus__Journal__Result *r =
        nimbus__journal__result__unpack(NULL, n->reslen, n->res);
    free(n->res);
    n->res = NULL;
    assert_non_null(r);
    return r;
}

/* An entry of the given operations. */
static uint8_t *entry_of(Nimbus__Journal__Op *const *ops, size_t n, size_t *len)
{
    Nimbus__Journal__Entry e = NIMBUS__JOURNAL__ENTRY__INIT;
    ProtobufCBinaryData b[8];
    uint8_t *out;

    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        b[i].len = nimbus__journal__op__get_packed_size(ops[i]);
        b[i].data = malloc(b[i].len + 1);
        assert_non_null(b[i].data);
        nimbus__journal__op__pack(ops[i], b[i].data);
    }
    e.n_ops = n;
    e.ops = b;
    *len = nimbus__journal__entry__get_packed_size(&e);
    out = malloc(*len + 1);
    assert_non_null(out);
    nimbus__journal__entry__pack(&e, out);
    for (size_t i = 0; i < n; i++) {
        free(b[i].data);
    }
    return out;
}

/* Applies one hand-made operation as an entry; returns the result's rv. */
static CK_RV apply_op(struct cl *c, Nimbus__Journal__Op *op)
{
    Nimbus__Journal__Result *r;
    uint8_t *e;
    size_t len = 0;
    CK_RV rv;

    e = entry_of(&op, 1, &len);
    r = apply_raw(c, e, len);
    rv = (CK_RV)r->rv;
    nimbus__journal__result__free_unpacked(r, NULL);
    free(e);
    return rv;
}

/* ---------------------------------------------------------------- tests */

/* Users, objects, shares, quorum state and audit records made through
 * one node are on every node, with the same ids and equal digests; each
 * node holds the blob under its own key. */
static void test_replicate(void **state)
{
    struct cl *c = *state;
    struct node *n1 = &c->n[1], *n2 = &c->n[2], *n3 = &c->n[3];
    store_user_t u;
    store_object_t o;
    store_qtoken_t t, tt;
    store_audit_t rec, *recs = NULL;
    uint8_t hash1[32];
    uint64_t gen0 = 0, gen = 0;
    uint32_t uid, cu, tid = 0;
    uint64_t oid;
    uint8_t blob[64];
    size_t n = 0;
    unsigned m = 0;
    bool found = false, shared = false, added = false;

    assert_int_equal(store_generation(n3->st, &gen0), CKR_OK);
    uid = add_user(n1, "officer", T_CO);
    assert_true(uid >= 3); /* above the core's fixed PRECO and AU ids */
    cu = add_user(n2, "crypto_user", T_CU);
    assert_int_not_equal(cu, uid);
    oid = add_object(n1, cu, "k1", SECRET);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(store_user_by_name(c->n[i].st, "officer", &u, &found),
                         CKR_OK);
        assert_true(found);
        assert_int_equal(u.id, uid);
        store_user_clear(&u);
        assert_object(&c->n[i], oid, "k1", SECRET);
    }
    assert_int_equal(store_generation(n3->st, &gen), CKR_OK);
    assert_true(gen > gen0); /* each apply bumps it */

    /* An update through another node: the new blob and label, the
     * version bumped everywhere. */
    memset(&o, 0, sizeof(o));
    assert_int_equal(store_object_get(n2->st, oid, &o, &found), CKR_OK);
    for (size_t i = 0; i < strlen("updated value"); i++) {
        blob[i] = (uint8_t) "updated value"[i] ^ n2->key;
    }
    free(o.label);
    o.label = (uint8_t *)strdup("k1-renamed");
    o.label_len = strlen("k1-renamed");
    free(o.attrs);
    o.attrs = malloc(strlen("updated value"));
    memcpy(o.attrs, blob, strlen("updated value"));
    o.attrs_len = strlen("updated value");
    assert_int_equal(store_begin(n2->st, true), CKR_OK);
    assert_int_equal(store_object_update(n2->st, &o), CKR_OK);
    assert_int_equal(store_commit(n2->st), CKR_OK);
    store_object_clear(&o);
    for (int i = 1; i <= 3; i++) {
        assert_object(&c->n[i], oid, "k1-renamed", "updated value");
    }

    /* Shares, password, quorum state, through the third node. */
    assert_int_equal(store_begin(n3->st, true), CKR_OK);
    assert_int_equal(store_share_set(n3->st, oid, uid, true), CKR_OK);
    assert_int_equal(
        store_user_set_verifier(n3->st, cu, (const uint8_t *)"new", 3), CKR_OK);
    assert_int_equal(store_quorum_m_set(n3->st, 1, 2), CKR_OK);
    assert_int_equal(
        store_user_mofn_set(n3->st, uid, (const uint8_t *)"spki", 4, true),
        CKR_OK);
    memset(&t, 0, sizeof(t));
    t.service = 1;
    t.requester = cu;
    t.requester_version = 2;
    memset(t.login_id, 7, sizeof(t.login_id));
    t.issued = 100;
    t.expires = 200;
    t.needed = 2;
    memset(t.digest, 9, sizeof(t.digest));
    assert_int_equal(store_qtoken_insert(n3->st, &t, &tid), CKR_OK);
    assert_int_not_equal(tid, 0);
    assert_int_equal(store_qtoken_approve(n3->st, tid, uid, &added), CKR_OK);
    assert_true(added);
    /* An audit record without seq: the apply chains it. */
    memset(&rec, 0, sizeof(rec));
    rec.time = 1234;
    snprintf(rec.hsm_id, sizeof(rec.hsm_id), "serial");
    rec.user = uid;
    snprintf(rec.op, sizeof(rec.op), "share");
    rec.oid = oid;
    rec.fmt = STORE_AUDIT_FMT_PEER;
    snprintf(rec.peer, sizeof(rec.peer), "uid=0");
    assert_int_equal(store_audit_insert(n3->st, &rec), CKR_OK);
    assert_int_equal(store_meta_set(n3->st, "label", (const uint8_t *)"tok", 3),
                     CKR_OK);
    assert_int_equal(store_commit(n3->st), CKR_OK);

    for (int i = 1; i <= 3; i++) {
        store_t *st = c->n[i].st;

        assert_int_equal(store_share_has(st, oid, uid, &shared), CKR_OK);
        assert_true(shared);
        assert_int_equal(store_user_by_id(st, cu, &u, &found), CKR_OK);
        assert_true(found);
        assert_int_equal(u.verifier_len, 3);
        assert_int_equal(u.version, 2);
        store_user_clear(&u);
        assert_int_equal(store_quorum_m_get(st, 1, &m), CKR_OK);
        assert_int_equal(m, 2);
        assert_int_equal(store_qtoken_get(st, tid, &tt, &found), CKR_OK);
        assert_true(found);
        assert_memory_equal(tt.digest, t.digest, sizeof(t.digest));
        assert_int_equal(store_audit_read(st, 0, 10, &recs, &n), CKR_OK);
        assert_int_equal(n, 1);
        assert_int_equal(recs[0].seq, 1);
        assert_string_equal(recs[0].op, "share");
        if (i == 1) {
            memcpy(hash1, recs[0].hash, 32);
        } else {
            assert_memory_equal(recs[0].hash, hash1, 32);
        }
        free(recs);
        recs = NULL;
    }
    assert_in_sync(c);
}

/* Failed logins charged on three nodes count on one counter: the limit
 * holds cluster-wide, and a reset on one node unlocks everywhere. */
static void test_lockout(void **state)
{
    struct cl *c = *state;
    uint32_t uid = add_user(&c->n[1], "guesser", T_CU);
    uint32_t failures = 0;
    bool charged = false;
    store_user_t u;
    bool found = false;

    for (int i = 0; i < 5; i++) {
        struct node *n = &c->n[1 + i % 3];

        assert_int_equal(
            store_user_charge_failure(n->st, uid, 5, &failures, &charged),
            CKR_OK);
        assert_true(charged);
        assert_int_equal(failures, (uint32_t)i + 1);
    }
    /* The sixth try, on any node, is refused. */
    assert_int_equal(
        store_user_charge_failure(c->n[2].st, uid, 5, &failures, &charged),
        CKR_OK);
    assert_false(charged);
    assert_int_equal(failures, 5);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(store_user_by_id(c->n[i].st, uid, &u, &found), CKR_OK);
        assert_int_equal(u.failures, 5);
        store_user_clear(&u);
    }
    /* No such user: the apply's failure comes back. */
    assert_int_equal(
        store_user_charge_failure(c->n[3].st, 9999, 5, &failures, &charged),
        CKR_FUNCTION_FAILED);
    assert_int_equal(store_begin(c->n[3].st, true), CKR_OK);
    assert_int_equal(store_user_reset_failures(c->n[3].st, uid), CKR_OK);
    assert_int_equal(store_commit(c->n[3].st), CKR_OK);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(store_user_by_id(c->n[i].st, uid, &u, &found), CKR_OK);
        assert_int_equal(u.failures, 0);
        store_user_clear(&u);
    }
    assert_in_sync(c);
}

/* An operation that fails at apply undoes the entry's earlier ones on
 * every node, and the applied index still moves. */
static void test_failure_is_noop(void **state)
{
    struct cl *c = *state;
    Nimbus__Journal__Op op1 = NIMBUS__JOURNAL__OP__INIT,
                        op2 = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__UserInsert ui = NIMBUS__JOURNAL__USER_INSERT__INIT;
    Nimbus__Journal__UserType ut = NIMBUS__JOURNAL__USER_TYPE__INIT;
    Nimbus__Journal__Op *ops[2] = {&op1, &op2};
    Nimbus__Journal__Result *r;
    uint64_t before = 0, after = 0;
    uint8_t *e;
    size_t len = 0;
    store_user_t u;
    bool found = true;

    add_user(&c->n[1], "someone", T_CU);
    assert_int_equal(store_journal_applied(c->n[2].st, &before), CKR_OK);
    ui.id = 1000;
    ui.name = "ghost";
    ui.type = T_CU;
    op1.op_case = NIMBUS__JOURNAL__OP__OP_USER_INSERT;
    op1.user_insert = &ui;
    ut.id = 999999; /* no such user */
    ut.type = T_CO;
    op2.op_case = NIMBUS__JOURNAL__OP__OP_USER_SET_TYPE;
    op2.user_set_type = &ut;
    e = entry_of(ops, 2, &len);
    r = apply_raw(c, e, len);
    free(e);
    assert_int_equal(r->rv, CKR_FUNCTION_FAILED);
    assert_true(r->has_failed_op);
    assert_int_equal(r->failed_op, 1);
    nimbus__journal__result__free_unpacked(r, NULL);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(store_user_by_name(c->n[i].st, "ghost", &u, &found),
                         CKR_OK);
        assert_false(found);
    }
    assert_int_equal(store_journal_applied(c->n[2].st, &after), CKR_OK);
    assert_int_equal(after, before + 1);
    assert_in_sync(c);
}

/* Two nodes update one object at once: the update made against the
 * version that another node's update replaced fails, on every node. */
static void test_update_conflict(void **state)
{
    struct cl *c = *state;
    struct node *n1 = &c->n[1], *n2 = &c->n[2];
    uint64_t oid = add_object(n1, 0, "k", SECRET);
    store_object_t o1, o2;
    bool found = false;

    assert_int_equal(store_object_get(n1->st, oid, &o1, &found), CKR_OK);
    assert_int_equal(store_object_get(n2->st, oid, &o2, &found), CKR_OK);
    /* n2 rehearses its update inside its transaction (it lags)... */
    free(o2.label);
    o2.label = (uint8_t *)strdup("by-n2");
    o2.label_len = 5;
    assert_int_equal(store_begin(n2->st, true), CKR_OK);
    assert_int_equal(store_object_update(n2->st, &o2), CKR_OK);
    /* ...while n1's update commits first. */
    free(o1.label);
    o1.label = (uint8_t *)strdup("by-n1");
    o1.label_len = 5;
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_object_update(n1->st, &o1), CKR_OK);
    assert_int_equal(store_commit(n1->st), CKR_OK);
    assert_int_equal(store_commit(n2->st), CKR_FUNCTION_FAILED);
    for (int i = 1; i <= 3; i++) {
        assert_object(&c->n[i], oid, "by-n1", SECRET);
    }
    store_object_clear(&o1);
    store_object_clear(&o2);
    assert_in_sync(c);
}

/* store_object_put (insertMaskedObject): an object put back with its id
 * and version reaches every node (its blob re-sealed under each node's
 * key); the same version again records nothing; another version, and an
 * id the cluster never handed out, are refused and change nothing. */
static void test_object_put(void **state)
{
    struct cl *c = *state;
    struct node *n1 = &c->n[1];
    uint64_t oid = add_object(n1, 0, "k", SECRET), v = 0;
    store_object_t o;
    bool found = false, changed = true;

    assert_int_equal(store_object_get(n1->st, oid, &o, &found), CKR_OK);
    free(o.label);
    o.label = (uint8_t *)strdup("k2");
    o.label_len = 2;
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_object_update(n1->st, &o), CKR_OK);
    assert_int_equal(store_commit(n1->st), CKR_OK);
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_object_delete(n1->st, oid), CKR_OK);
    assert_int_equal(store_commit(n1->st), CKR_OK);

    /* back, as version 2, on every node */
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_object_put(n1->st, &o, oid, 2, &changed), CKR_OK);
    assert_true(changed);
    assert_int_equal(store_commit(n1->st), CKR_OK);
    for (int i = 1; i <= 3; i++) {
        assert_object(&c->n[i], oid, "k2", SECRET);
        assert_int_equal(store_object_version(c->n[i].st, oid, &v, &found),
                         CKR_OK);
        assert_true(found);
        assert_int_equal(v, 2);
    }
    assert_in_sync(c);

    /* the same version: nothing; another: refused */
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_object_put(n1->st, &o, oid, 2, &changed), CKR_OK);
    assert_false(changed);
    assert_int_equal(store_object_put(n1->st, &o, oid, 1, &changed),
                     CKR_DATA_INVALID);
    assert_int_equal(store_object_put(n1->st, &o, 0, 1, &changed),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(store_commit(n1->st), CKR_OK);

    /* an id above every block reserved: the apply refuses it */
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_object_put(n1->st, &o, oid + 1000000, 1, &changed),
                     CKR_OK);
    assert_int_equal(store_commit(n1->st), CKR_DATA_INVALID);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(
            store_object_version(c->n[i].st, oid + 1000000, &v, &found),
            CKR_OK);
        assert_false(found);
    }
    store_object_clear(&o);
    assert_in_sync(c);
}

/* An index applied again, and an (origin, seq) seen before under a new
 * index, change nothing and answer the first result. */
static void test_replay_and_duplicate(void **state)
{
    struct cl *c = *state;
    struct node *n1 = &c->n[1];
    Nimbus__Journal__Op op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__UserInsert ui = NIMBUS__JOURNAL__USER_INSERT__INIT;
    struct dig d0 = {NULL, 0}, d1 = {NULL, 0};
    uint8_t *r = NULL, *e;
    struct lentry *last;
    uint64_t gen0 = 0, gen1 = 0, a = 0, dup_origin, dup_seq;
    size_t rl = 0, len = 0;
    store_user_t u;
    bool found = true;
    uint32_t uid;

    uid = add_user(n1, "first", T_CU);
    last = &c->log[c->nlog - 1];
    dup_origin = last->origin;
    dup_seq = last->seq;
    digest_of(n1, &d0, &a);
    assert_int_equal(store_generation(n1->st, &gen0), CKR_OK);

    /* The same index again (a restart's replay). */
    assert_int_equal(store_journal_apply(n1->st, &n1->j, c->nlog, last->origin,
                                         last->seq, last->data, last->len, &r,
                                         &rl),
                     CKR_OK);
    assert_non_null(r);
    {
        Nimbus__Journal__Result *res =
            nimbus__journal__result__unpack(NULL, rl, r);

        assert_non_null(res);
        assert_int_equal(res->rv, CKR_OK);
        nimbus__journal__result__free_unpacked(res, NULL);
    }
    free(r);
    r = NULL;
    digest_of(n1, &d1, &a);
    assert_true(dig_equal(&d0, &d1));
    free(d0.p);
    free(d1.p);
    assert_int_equal(store_generation(n1->st, &gen1), CKR_OK);
    assert_int_equal(gen1, gen0);

    /* The same (origin, seq) under a new index, another payload (a
     * forward retried after its reply was lost): not applied again. */
    ui.id = 5000;
    ui.name = "second";
    ui.type = T_CU;
    op.op_case = NIMBUS__JOURNAL__OP__OP_USER_INSERT;
    op.user_insert = &ui;
    e = entry_of((Nimbus__Journal__Op *const[]){&op}, 1, &len);
    log_append(c, dup_origin, dup_seq, e, len);
    free(e);
    catch_up_all(c);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(store_user_by_name(c->n[i].st, "second", &u, &found),
                         CKR_OK);
        assert_false(found);
        assert_int_equal(store_user_by_id(c->n[i].st, uid, &u, &found), CKR_OK);
        assert_true(found);
        store_user_clear(&u);
        assert_int_equal(store_journal_applied(c->n[i].st, &a), CKR_OK);
        assert_int_equal(a, c->nlog);
    }
    /* Its result, asked again, is the first one's (CKR_OK). */
    assert_int_equal(store_journal_apply(n1->st, &n1->j, c->nlog, dup_origin,
                                         dup_seq, c->log[c->nlog - 1].data,
                                         c->log[c->nlog - 1].len, &r, &rl),
                     CKR_OK);
    {
        Nimbus__Journal__Result *res =
            nimbus__journal__result__unpack(NULL, rl, r);

        assert_non_null(res);
        assert_int_equal(res->rv, CKR_OK);
        nimbus__journal__result__free_unpacked(res, NULL);
    }
    free(r);
    assert_in_sync(c);
}

/* Two nodes inserting at the same time take ids from disjoint blocks; a
 * reopened store skips the rest of its block. */
static void test_id_blocks(void **state)
{
    struct cl *c = *state;
    struct node *n1 = &c->n[1], *n2 = &c->n[2];
    uint64_t ids1[3], ids2[3], after;
    store_object_t o;

    memset(&o, 0, sizeof(o));
    o.cls = CKO_DATA;
    o.key_type = CK_UNAVAILABLE_INFORMATION;
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_begin(n2->st, true), CKR_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_object_insert(n1->st, &o, &ids1[i]), CKR_OK);
        assert_int_equal(store_object_insert(n2->st, &o, &ids2[i]), CKR_OK);
    }
    assert_int_equal(store_commit(n2->st), CKR_OK);
    assert_int_equal(store_commit(n1->st), CKR_OK);
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 3; k++) {
            assert_int_not_equal(ids1[i], ids2[k]);
        }
    }
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(count_objects(&c->n[i]), 6);
    }
    assert_in_sync(c);

    store_close(n1->st);
    node_open(n1);
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_object_insert(n1->st, &o, &after), CKR_OK);
    assert_int_equal(store_commit(n1->st), CKR_OK);
    for (int i = 0; i < 3; i++) {
        assert_true(after > ids1[i] && after > ids2[i]);
    }
    assert_in_sync(c);
}

static bool has_bytes(const uint8_t *buf, size_t len, const void *what,
                      size_t wlen)
{
    for (size_t i = 0; i + wlen <= len; i++) {
        if (memcmp(buf + i, what, wlen) == 0) {
            return true;
        }
    }
    return false;
}

/* A snapshot of node 1 restored into a fresh node 4: the same digest,
 * 4's own rows kept, blobs under 4's key; no key value in the snapshot;
 * then 4 follows the log from there. */
static void test_snapshot_restore(void **state)
{
    struct cl *c = *state;
    struct node *n1 = &c->n[1], *n4 = &c->n[4];
    struct dig d1 = {NULL, 0}, d4 = {NULL, 0};
    uint8_t sealed1[64];
    uint8_t *snap = NULL, *v = NULL;
    uint64_t a1 = 0, a4 = 0, oid, oid2;
    size_t len = 0, vlen = 0;
    uint32_t uid;
    size_t nlog;

    uid = add_user(n1, "owner", T_CU);
    oid = add_object(n1, uid, "snapkey", SECRET);
    for (size_t i = 0; i < strlen(SECRET); i++) {
        sealed1[i] = (uint8_t)SECRET[i] ^ n1->key;
    }
    nlog = c->nlog;
    assert_int_equal(store_begin_local(n4->st), CKR_OK);
    assert_int_equal(
        store_meta_set(n4->st, "key_check", (const uint8_t *)"node4", 5),
        CKR_OK);
    assert_int_equal(store_meta_set(n4->st, "local.cluster_key",
                                    (const uint8_t *)"sealed4", 7),
                     CKR_OK);
    assert_int_equal(store_commit(n4->st), CKR_OK);
    assert_int_equal(c->nlog, nlog); /* nothing of that went to the log */

    digest_of(n1, &d1, &a1);
    digest_of(n4, &d4, &a4);
    assert_false(dig_equal(&d1, &d4));
    assert_int_equal(store_snapshot(n1->st, &n1->j, &snap, &len), CKR_OK);
    assert_non_null(snap);
    assert_false(has_bytes(snap, len, SECRET, strlen(SECRET)));
    assert_false(has_bytes(snap, len, sealed1, strlen(SECRET)));

    /* A damaged snapshot changes nothing. */
    assert_int_equal(store_restore(n4->st, &n4->j, snap, len / 2),
                     CKR_DATA_INVALID);
    assert_int_equal(store_restore(n4->st, &n4->j, (const uint8_t *)"junk", 4),
                     CKR_DATA_INVALID);
    assert_int_equal(count_users(n4), 0);

    assert_int_equal(store_restore(n4->st, &n4->j, snap, len), CKR_OK);
    free(snap);
    digest_of(n4, &d4, &a4);
    assert_int_equal(a4, a1);
    assert_true(dig_equal(&d1, &d4));
    free(d1.p);
    free(d4.p);
    assert_object(n4, oid, "snapkey", SECRET);
    assert_int_equal(store_meta_get(n4->st, "key_check", &v, &vlen), CKR_OK);
    assert_int_equal(vlen, 5);
    assert_memory_equal(v, "node4", 5);
    free(v);
    assert_int_equal(store_meta_get(n4->st, "local.cluster_key", &v, &vlen),
                     CKR_OK);
    assert_int_equal(vlen, 7);
    free(v);

    /* 4 joins and follows from the snapshot's index. */
    n4->applied = a4;
    n4->member = true;
    oid2 = add_object(&c->n[2], uid, "after", "later value");
    assert_object(n4, oid2, "after", "later value");
    assert_in_sync(c);
}

/* ------------------------------------------------------------ restore */

/* The ids of n's users, ascending (*ids malloc'd). */
static size_t user_ids(struct node *n, uint32_t **ids)
{
    store_user_t *u = NULL;
    size_t k = 0;

    assert_int_equal(store_user_list(n->st, &u, &k), CKR_OK);
    *ids = calloc(k + 1, sizeof(**ids));
    assert_non_null(*ids);
    for (size_t i = 0; i < k; i++) {
        (*ids)[i] = u[i].id;
        store_user_clear(&u[i]);
    }
    free(u);
    return k;
}

/* Submits a restore of snap through n as the caller found n's users. */
static CK_RV restore_through(struct node *n, const uint8_t *snap, size_t len,
                             const uint32_t *users, size_t nusers)
{
    CK_RV rv;

    assert_int_equal(store_begin(n->st, true), CKR_OK);
    rv = store_restore_backup(n->st, snap, len, users, nusers);
    if (rv != CKR_OK) {
        store_rollback(n->st);
        return rv;
    }
    return store_commit(n->st);
}

/* The source's state: a CO, two CUs, a key of the first shared with the
 * second, quorum M 2 on service 3. */
static void make_source(struct node *n, uint32_t *cu, uint64_t *oid)
{
    uint32_t bob;

    add_user(n, "co", T_CO);
    *cu = add_user(n, "alice", T_CU);
    bob = add_user(n, "bob", T_CU);
    *oid = add_object(n, *cu, "alicekey", SECRET);
    assert_int_equal(store_begin(n->st, true), CKR_OK);
    assert_int_equal(store_share_set(n->st, *oid, bob, true), CKR_OK);
    assert_int_equal(store_quorum_m_set(n->st, 3, 2), CKR_OK);
    assert_int_equal(store_commit(n->st), CKR_OK);
}

/* A restore over a state with a key, a crypto user the writer did not
 * see, or from a damaged image: refused on every node, nothing changes;
 * the same cluster emptied takes its own backup back. */
static void test_restore_refused(void **state)
{
    struct cl *c = *state;
    struct node *n1 = &c->n[1], *n2 = &c->n[2];
    struct dig before = {NULL, 0}, after = {NULL, 0}, img = {NULL, 0};
    store_snap_info_t info;
    uint8_t *snap = NULL, *bad = NULL;
    uint32_t *ids = NULL, cu;
    uint64_t oid, a = 0;
    size_t len = 0, nids;
    store_user_t u;
    bool found = false;

    make_source(n1, &cu, &oid);
    assert_in_sync(c);
    assert_int_equal(store_snapshot(n1->st, &n1->j, &snap, &len), CKR_OK);
    /* What the image says of itself is what the store said. */
    assert_int_equal(store_snapshot_info(snap, len, &info, &img.p, &img.len),
                     CKR_OK);
    digest_of(n1, &before, &a);
    assert_int_equal(info.applied, a);
    assert_int_equal(info.users, 3);
    assert_int_equal(info.objects, 1);
    assert_true(dig_equal(&img, &before));
    assert_int_equal(store_snapshot_info(snap, len / 2, &info, &bad, &nids),
                     CKR_DATA_INVALID);
    assert_null(bad);

    /* Over the live key: refused, the same on every node. */
    nids = user_ids(n2, &ids);
    assert_int_equal(restore_through(n2, snap, len, ids, nids),
                     CKR_ACTION_PROHIBITED);
    free(ids);
    assert_in_sync(c);
    digest_of(n1, &after, &a);
    assert_int_equal(after.len, before.len); /* one more entry, no row */
    assert_object(n2, oid, "alicekey", SECRET);

    /* Emptied: the key and the crypto users go. */
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_object_delete(n1->st, oid), CKR_OK);
    assert_int_equal(store_user_delete_type(n1->st, T_CU), CKR_OK);
    assert_int_equal(store_commit(n1->st), CKR_OK);
    assert_int_equal(count_objects(n2), 0);
    nids = user_ids(n2, &ids);
    assert_int_equal(nids, 1);

    /* The users are not what the writer saw (one more, one fewer). */
    ids[1] = 77;
    assert_int_equal(restore_through(n2, snap, len, ids, 2),
                     CKR_ACTION_PROHIBITED);
    assert_int_equal(restore_through(n2, snap, len, ids, 0),
                     CKR_ACTION_PROHIBITED);
    /* Damaged images: cut, a flipped byte in its pages, not an image. */
    bad = malloc(len);
    assert_non_null(bad);
    memcpy(bad, snap, len);
    assert_int_equal(restore_through(n2, bad, len / 2, ids, 1),
                     CKR_DATA_INVALID);
    memset(bad + 100, 0xff, 16); /* the header's page size and more */
    assert_int_equal(restore_through(n2, bad, len, ids, 1), CKR_DATA_INVALID);
    assert_int_equal(restore_through(n2, (const uint8_t *)"junk", 4, ids, 1),
                     CKR_DATA_INVALID);
    assert_int_equal(restore_through(n2, snap, 0, ids, 1), CKR_DATA_LEN_RANGE);
    free(bad);
    /* over what one log entry carries: refused before it is recorded */
    bad = calloc(1, STORE_RESTORE_MAX + 1);
    assert_non_null(bad);
    assert_int_equal(restore_through(n2, bad, STORE_RESTORE_MAX + 1, ids, 1),
                     CKR_DATA_LEN_RANGE);
    free(bad);
    assert_in_sync(c);
    assert_int_equal(count_users(n1), 1);
    assert_int_equal(count_objects(n1), 0);

    /* The same cluster rebuilt: its own backup goes back. */
    assert_int_equal(restore_through(n2, snap, len, ids, 1), CKR_OK);
    assert_in_sync(c);
    for (int i = 1; i <= 3; i++) {
        assert_object(&c->n[i], oid, "alicekey", SECRET);
        assert_int_equal(count_users(&c->n[i]), 3);
    }
    memset(&u, 0, sizeof(u));
    assert_int_equal(store_user_by_id(n1->st, cu, &u, &found), CKR_OK);
    assert_true(found);
    assert_string_equal(u.name, "alice");
    store_user_clear(&u);
    free(ids);
    free(snap);
    free(before.p);
    free(after.p);
    free(img.p);
}

/* A backup restored into another cluster of the same key: users, the key
 * (under each node's own store key), shares and quorum M come over with
 * their ids; every user's version moves above any either side had; the
 * id counters rise; the nodes' reserved id blocks are dropped, so the
 * next user made there gets a fresh id; the audit log stays. */
static void test_restore_clone(void **state)
{
    struct cl *c = *state, *d = NULL;
    struct node *s1 = &c->n[1], *d1, *d2;
    store_user_t u;
    uint8_t *snap = NULL;
    uint32_t *ids = NULL, cu, dco, fresh;
    uint64_t oid, ver_before, oid2;
    size_t len = 0, nids;
    unsigned m = 0;
    bool found = false, shared = false;
    store_audit_t *recs = NULL;
    size_t nrecs = 0, nrecs_after = 0;

    make_source(s1, &cu, &oid);
    /* bump alice's version on the source */
    assert_int_equal(store_begin(s1->st, true), CKR_OK);
    assert_int_equal(
        store_user_set_verifier(s1->st, cu, (const uint8_t *)"v2", 2), CKR_OK);
    assert_int_equal(store_commit(s1->st), CKR_OK);
    assert_int_equal(store_snapshot(s1->st, &s1->j, &snap, &len), CKR_OK);

    assert_int_equal(cl_setup((void **)&d), 0);
    d1 = &d->n[1];
    d2 = &d->n[2];
    /* the clone: a CO of its own (its id block reserved on d1), an audit
     * record, and a user version far above the source's */
    dco = add_user(d1, "clone_co", T_CO);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(store_begin(d1->st, true), CKR_OK);
        assert_int_equal(
            store_user_set_verifier(d1->st, dco, (const uint8_t *)"pw", 2),
            CKR_OK);
        assert_int_equal(store_commit(d1->st), CKR_OK);
    }
    memset(&u, 0, sizeof(u));
    assert_int_equal(store_user_by_id(d1->st, dco, &u, &found), CKR_OK);
    ver_before = u.version;
    store_user_clear(&u);
    assert_int_equal(store_begin(d1->st, true), CKR_OK);
    {
        store_audit_t rec;

        memset(&rec, 0, sizeof(rec));
        rec.time = 1;
        snprintf(rec.hsm_id, sizeof(rec.hsm_id), "clone");
        snprintf(rec.op, sizeof(rec.op), "activate");
        rec.fmt = 1;
        assert_int_equal(store_audit_insert(d1->st, &rec), CKR_OK);
    }
    assert_int_equal(store_commit(d1->st), CKR_OK);
    assert_int_equal(store_audit_read(d2->st, 0, 100, &recs, &nrecs), CKR_OK);
    free(recs);
    recs = NULL;

    nids = user_ids(d2, &ids);
    assert_int_equal(restore_through(d2, snap, len, ids, nids), CKR_OK);
    free(ids);
    assert_in_sync(d);
    for (int i = 1; i <= 3; i++) {
        struct node *n = &d->n[i];

        assert_object(n, oid, "alicekey", SECRET);
        assert_int_equal(count_users(n), 3);
        memset(&u, 0, sizeof(u));
        assert_int_equal(store_user_by_id(n->st, cu, &u, &found), CKR_OK);
        assert_true(found);
        assert_string_equal(u.name, "alice");
        assert_int_equal(u.verifier_len, 2);
        assert_true(u.version > ver_before); /* no login of before stands */
        store_user_clear(&u);
        assert_int_equal(store_share_has(n->st, oid, cu + 1, &shared), CKR_OK);
        assert_true(shared);
        assert_int_equal(store_quorum_m_get(n->st, 3, &m), CKR_OK);
        assert_int_equal(m, 2);
    }
    /* The clone's CO is gone: its id is the source's CO now, or none. */
    memset(&u, 0, sizeof(u));
    assert_int_equal(store_user_by_name(d1->st, "clone_co", &u, &found),
                     CKR_OK);
    assert_false(found);
    /* The audit log of the clone stays (the records of the source's do
     * not come). */
    assert_int_equal(store_audit_read(d2->st, 0, 100, &recs, &nrecs_after),
                     CKR_OK);
    assert_int_equal(nrecs_after, nrecs);
    free(recs);

    /* d1's block (reserved before, below the source's ids) is dropped: a
     * new user and a new key get ids no restored row has. */
    fresh = add_user(d1, "after", T_CU);
    assert_true(fresh > cu + 1);
    oid2 = add_object(d1, fresh, "afterkey", "another value");
    assert_true(oid2 > oid);
    assert_in_sync(d);
    assert_object(d2, oid2, "afterkey", "another value");

    free(snap);
    cl_teardown((void **)&d);
}

/* Entries no writer of ours makes: each answers a precise failure, and
 * no replicated row changes. */
static void test_hostile_entries(void **state)
{
    struct cl *c = *state;
    Nimbus__Journal__Op op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__UserInsert ui = NIMBUS__JOURNAL__USER_INSERT__INIT;
    Nimbus__Journal__MetaSet ms = NIMBUS__JOURNAL__META_SET__INIT;
    Nimbus__Journal__Object ob = NIMBUS__JOURNAL__OBJECT__INIT;
    Nimbus__Journal__Result *r;
    uint8_t masked[32], *e, *big;
    size_t len = 0;
    uint64_t oid, v;
    uint32_t uid = add_user(&c->n[1], "victim", T_CU);
    size_t users, objects;
    static const uint8_t unknown_op[] = {0x0a, 0x03, 0xf8, 0x06, 0x01};
    static const uint8_t garbage[] = {0x0a, 0x7f, 0x01};

    oid = add_object(&c->n[1], uid, "target", SECRET);
    users = count_users(&c->n[2]);
    objects = count_objects(&c->n[2]);

    /* Truncated: an entry cut in its middle. */
    ui.id = 7000;
    ui.name = "intruder";
    ui.verifier.len = 0;
    op.op_case = NIMBUS__JOURNAL__OP__OP_USER_INSERT;
    op.user_insert = &ui;
    e = entry_of((Nimbus__Journal__Op *const[]){&op}, 1, &len);
    r = apply_raw(c, e, len - 3);
    assert_int_equal(r->rv, CKR_DATA_INVALID);
    nimbus__journal__result__free_unpacked(r, NULL);
    free(e);
    r = apply_raw(c, garbage, sizeof(garbage));
    assert_int_equal(r->rv, CKR_DATA_INVALID);
    nimbus__journal__result__free_unpacked(r, NULL);
    /* An operation of a later build (field 111). */
    r = apply_raw(c, unknown_op, sizeof(unknown_op));
    assert_int_equal(r->rv, CKR_DATA_INVALID);
    nimbus__journal__result__free_unpacked(r, NULL);
    /* Oversize fields. */
    ui.name = "a_name_longer_than_thirty_one_chars";
    assert_int_equal(apply_op(c, &op), CKR_DATA_LEN_RANGE);
    ui.name = "bad name!";
    assert_int_equal(apply_op(c, &op), CKR_DATA_INVALID);
    big = calloc(1, 1024 * 1024 + 1);
    assert_non_null(big);
    ms.key = "label";
    ms.value.data = big;
    ms.value.len = 1024 * 1024 + 1;
    op.op_case = NIMBUS__JOURNAL__OP__OP_META_SET;
    op.meta_set = &ms;
    assert_int_equal(apply_op(c, &op), CKR_DATA_LEN_RANGE);
    free(big);
    /* A node-local key is never in an entry. */
    ms.key = "key_check";
    ms.value.data = (uint8_t *)"x";
    ms.value.len = 1;
    assert_int_equal(apply_op(c, &op), CKR_DATA_INVALID);
    /* A blob for an object that does not exist. */
    memset(masked, 0, sizeof(masked));
    v = 2;
    ob.id = 424242;
    memcpy(masked, &ob.id, 8);
    memcpy(masked + 8, &v, 8);
    ob.version = 2;
    ob.owner = uid;
    ob.attrs.data = masked;
    ob.attrs.len = sizeof(masked);
    op.op_case = NIMBUS__JOURNAL__OP__OP_OBJECT_UPDATE;
    op.object_update = &ob;
    assert_int_equal(apply_op(c, &op), CKR_FUNCTION_FAILED);
    /* Another object's masked blob (the mask binds id and version). */
    ob.id = oid;
    assert_int_equal(apply_op(c, &op), CKR_ENCRYPTED_DATA_INVALID);
    /* An insert that claims a later version, or reuses an id. */
    op.op_case = NIMBUS__JOURNAL__OP__OP_OBJECT_INSERT;
    op.object_insert = &ob;
    assert_int_equal(apply_op(c, &op), CKR_DATA_INVALID);
    ob.version = 1;
    v = 1;
    memcpy(masked, &oid, 8);
    memcpy(masked + 8, &v, 8);
    assert_int_equal(apply_op(c, &op), CKR_FUNCTION_FAILED);

    for (int i = 1; i <= 3; i++) {
        assert_int_equal(count_users(&c->n[i]), users);
        assert_int_equal(count_objects(&c->n[i]), objects);
        assert_object(&c->n[i], oid, "target", SECRET);
    }
    assert_in_sync(c);
}

/* Preconditions checked at apply (store_require): two writers that each
 * saw them hold on a node that lags cannot both pass. The last CO, a user
 * who came to own a key, a share with a user deleted meanwhile, the quorum
 * token limit; and entries with a precondition that cannot be one. */
static void test_require_races(void **state)
{
    struct cl *c = *state;
    struct node *n1 = &c->n[1], *n2 = &c->n[2];
    Nimbus__Journal__Op op = NIMBUS__JOURNAL__OP__INIT;
    Nimbus__Journal__Require rq = NIMBUS__JOURNAL__REQUIRE__INIT;
    uint32_t co1 = add_user(n1, "co_one", T_CO);
    uint32_t co2 = add_user(n1, "co_two", T_CO);
    uint32_t cu = add_user(n1, "carol", T_CU);
    uint32_t dan = add_user(n1, "dan", T_CU);
    uint64_t oid = add_object(n1, cu, "k", SECRET);
    store_qtoken_t t;
    size_t n = 0;
    uint32_t tid = 0;

    catch_up_all(c);
    /* Two COs deleted "at once": n2 rehearses on a state with both... */
    assert_int_equal(store_begin(n2->st, true), CKR_OK);
    assert_int_equal(store_require(n2->st, STORE_REQUIRE_USER_DELETABLE, co1,
                                   T_CO, CKR_ACTION_PROHIBITED),
                     CKR_OK);
    assert_int_equal(store_user_delete(n2->st, co1), CKR_OK);
    /* ...while n1 deletes the other first: n2's entry is refused. */
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_require(n1->st, STORE_REQUIRE_USER_DELETABLE, co2,
                                   T_CO, CKR_ACTION_PROHIBITED),
                     CKR_OK);
    assert_int_equal(store_user_delete(n1->st, co2), CKR_OK);
    assert_int_equal(store_commit(n1->st), CKR_OK);
    assert_int_equal(store_commit(n2->st), CKR_ACTION_PROHIBITED);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(store_user_count_type(c->n[i].st, T_CO, &n), CKR_OK);
        assert_int_equal(n, 1);
    }
    /* Checked now too: the last CO is refused before any entry. */
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_require(n1->st, STORE_REQUIRE_USER_DELETABLE, co1,
                                   T_CO, CKR_ACTION_PROHIBITED),
                     CKR_ACTION_PROHIBITED);
    store_rollback(n1->st);

    /* dan's deletion rehearsed while dan has no key; a key of dan's
     * commits first (the object moved to dan): refused. */
    assert_int_equal(store_begin(n2->st, true), CKR_OK);
    assert_int_equal(store_require(n2->st, STORE_REQUIRE_USER_DELETABLE, dan,
                                   T_CO, CKR_ACTION_PROHIBITED),
                     CKR_OK);
    assert_int_equal(store_user_delete(n2->st, dan), CKR_OK);
    add_object(n1, dan, "dans", SECRET);
    assert_int_equal(store_commit(n2->st), CKR_ACTION_PROHIBITED);
    assert_int_equal(count_users(n1), count_users(n2));

    /* A share of carol's key with dan rehearsed while dan is a CU; dan
     * stops being one first: refused. */
    assert_int_equal(store_begin(n2->st, true), CKR_OK);
    assert_int_equal(store_require(n2->st, STORE_REQUIRE_USER_TYPE, dan, T_CU,
                                   CKR_ARGUMENTS_BAD),
                     CKR_OK);
    assert_int_equal(store_share_set(n2->st, oid, dan, true), CKR_OK);
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_user_set_type(n1->st, dan, T_CO), CKR_OK);
    assert_int_equal(store_commit(n1->st), CKR_OK);
    assert_int_equal(store_commit(n2->st), CKR_ARGUMENTS_BAD);

    /* The token limit (1 here): both rehearsed below it, one lands. */
    memset(&t, 0, sizeof(t));
    t.service = 3;
    t.requester = co1;
    t.requester_version = 1;
    t.issued = 1;
    t.expires = 2000000000;
    t.needed = 2;
    assert_int_equal(store_begin(n2->st, true), CKR_OK);
    assert_int_equal(store_require(n2->st, STORE_REQUIRE_QTOKENS_BELOW, 1, 0,
                                   CKR_FUNCTION_REJECTED),
                     CKR_OK);
    t.digest[0] = 2;
    assert_int_equal(store_qtoken_insert(n2->st, &t, &tid), CKR_OK);
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_require(n1->st, STORE_REQUIRE_QTOKENS_BELOW, 1, 0,
                                   CKR_FUNCTION_REJECTED),
                     CKR_OK);
    t.digest[0] = 1;
    assert_int_equal(store_qtoken_insert(n1->st, &t, &tid), CKR_OK);
    assert_int_equal(store_commit(n1->st), CKR_OK);
    assert_int_equal(store_commit(n2->st), CKR_FUNCTION_REJECTED);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(store_qtoken_count(c->n[i].st, &n), CKR_OK);
        assert_int_equal(n, 1);
    }

    /* Hostile: a precondition that "fails" with success or with an
     * answer that would stop the nodes, or of a kind not known, or naming
     * user 0, is refused as malformed; nothing stops. */
    rq.what = STORE_REQUIRE_USER_TYPE;
    rq.id = 999;
    rq.type = T_CU;
    op.op_case = NIMBUS__JOURNAL__OP__OP_REQUIRE;
    op.require = &rq;
    rq.rv = CKR_OK;
    assert_int_equal(apply_op(c, &op), CKR_DATA_INVALID);
    rq.rv = CKR_DEVICE_ERROR;
    assert_int_equal(apply_op(c, &op), CKR_DATA_INVALID);
    rq.rv = CKR_ACTION_PROHIBITED;
    assert_int_equal(apply_op(c, &op), CKR_ACTION_PROHIBITED); /* no 999 */
    rq.what = 77;
    assert_int_equal(apply_op(c, &op), CKR_DATA_INVALID);
    rq.what = STORE_REQUIRE_USER_DELETABLE;
    rq.id = 0;
    assert_int_equal(apply_op(c, &op), CKR_DATA_INVALID);
    rq.id = (uint64_t)UINT32_MAX + 1;
    assert_int_equal(apply_op(c, &op), CKR_DATA_INVALID);
    assert_in_sync(c);
}

/* A node that cannot unmask (no cluster key) must not skip the entry the
 * others apply: the apply fails as an I/O failure would, changing
 * nothing, and the same entry applies once the key is there. */
static void test_node_failure_stops(void **state)
{
    struct cl *c = *state;
    struct node *n3 = &c->n[3];
    uint64_t a = 0, before, oid;
    uint8_t *r = NULL;
    size_t rl = 0;
    struct lentry *e;

    add_user(&c->n[1], "holder", T_CU);
    n3->member = false;
    n3->no_key = true;
    oid = add_object(&c->n[1], 0, "k", SECRET);
    assert_int_equal(store_journal_applied(n3->st, &before), CKR_OK);
    e = &c->log[n3->applied];
    assert_int_equal(store_journal_apply(n3->st, &n3->j, n3->applied + 1,
                                         e->origin, e->seq, e->data, e->len, &r,
                                         &rl),
                     CKR_DEVICE_ERROR);
    assert_null(r);
    assert_int_equal(store_journal_applied(n3->st, &a), CKR_OK);
    assert_int_equal(a, before);
    assert_int_equal(count_objects(n3), 0);
    n3->no_key = false;
    n3->member = true;
    catch_up(n3);
    assert_object(n3, oid, "k", SECRET);
    assert_in_sync(c);
}

/* What stays on the node is not recorded; replicated writes outside a
 * journal transaction are refused; a failed submit leaves nothing. */
static void test_local_and_refused(void **state)
{
    struct cl *c = *state;
    struct node *n1 = &c->n[1];
    size_t nlog = c->nlog;
    uint32_t id = 0;
    uint8_t *v = NULL;
    size_t vlen = 0;
    bool found = true;
    store_user_t u;

    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_bump_generation(n1->st), CKR_OK);
    assert_int_equal(store_meta_set(n1->st, "local.x", (const uint8_t *)"1", 1),
                     CKR_OK);
    assert_int_equal(store_commit(n1->st), CKR_OK);
    /* The first begin reserved ids: that is the log's only entry. */
    assert_int_equal(c->nlog, nlog + 1);
    assert_int_equal(store_meta_get(n1->st, "local.x", &v, &vlen), CKR_OK);
    assert_int_equal(vlen, 1);
    free(v);

    setenv("NIMBUS_STRICT_PRECONDITIONS", "0", 1);
    assert_int_equal(store_begin_local(n1->st), CKR_OK);
    assert_int_equal(store_user_insert(n1->st, 0, "sneaky", T_CU, NULL, 0, &id),
                     CKR_GENERAL_ERROR);
    assert_int_equal(store_meta_set(n1->st, "label", (const uint8_t *)"x", 1),
                     CKR_GENERAL_ERROR);
    store_rollback(n1->st);
    assert_int_equal(store_user_delete(n1->st, 1), CKR_GENERAL_ERROR);
    assert_int_equal(store_begin(n1->st, false), CKR_OK);
    assert_int_equal(store_object_delete_all(n1->st), CKR_GENERAL_ERROR);
    store_rollback(n1->st);
    setenv("NIMBUS_STRICT_PRECONDITIONS", "1", 1);

    /* A transaction larger than one entry can carry (16 MiB): refused
     * at its commit, nothing submitted, nothing left. */
    {
        store_object_t o;
        uint64_t oid = 0;
        size_t before = c->nlog;

        memset(&o, 0, sizeof(o));
        o.cls = CKO_DATA;
        o.attrs_len = 16u * 1024u * 1024u;
        o.attrs = calloc(1, o.attrs_len);
        assert_non_null(o.attrs);
        assert_int_equal(store_begin(n1->st, true), CKR_OK);
        assert_int_equal(store_object_insert(n1->st, &o, &oid), CKR_OK);
        assert_int_equal(store_commit(n1->st), CKR_DEVICE_MEMORY);
        free(o.attrs);
        assert_int_equal(c->nlog, before);
        assert_int_equal(count_objects(n1), 0);
    }

    /* The log refuses the entry: the commit fails, nothing is left. */
    c->fail_submit = CKR_DEVICE_ERROR;
    assert_int_equal(store_begin(n1->st, true), CKR_OK);
    assert_int_equal(store_user_insert(n1->st, 0, "lost", T_CU, NULL, 0, &id),
                     CKR_OK);
    assert_int_equal(store_commit(n1->st), CKR_DEVICE_ERROR);
    assert_int_equal(store_user_by_name(n1->st, "lost", &u, &found), CKR_OK);
    assert_false(found);
    assert_in_sync(c);
}

/* A version 5 store (before cluster mode) migrates: objects at version
 * 1, the id counters above every id the file ever gave. */
static void test_schema_5_to_6(void **state)
{
    struct cl *c = *state;
    struct node *n4 = &c->n[4];
    sqlite3 *db = NULL;
    store_object_t o;
    uint64_t id = 0, first = 0;

    store_journal_attach(n4->st, NULL);
    memset(&o, 0, sizeof(o));
    o.cls = CKO_DATA;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(store_object_insert(n4->st, &o, &id), CKR_OK);
    }
    assert_int_equal(store_object_delete(n4->st, id), CKR_OK); /* id 5 */
    store_close(n4->st);
    assert_int_equal(sqlite3_open(n4->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE cluster_ids;"
                                  "DROP TABLE cluster_origins;"
                                  "DROP TABLE cluster_applied;"
                                  "ALTER TABLE objects DROP COLUMN version;"
                                  "UPDATE meta SET value = 5 WHERE key = "
                                  "'schema_version'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    node_open(n4);
    /* n4 alone is a cluster: its own reserve comes from its counters. */
    n4->member = true;
    for (int i = 1; i <= 3; i++) {
        c->n[i].member = false;
    }
    n4->applied = 0;
    assert_int_equal(store_begin(n4->st, true), CKR_OK);
    assert_int_equal(store_object_insert(n4->st, &o, &first), CKR_OK);
    assert_int_equal(store_commit(n4->st), CKR_OK);
    assert_int_equal(first, 6); /* not 5: that id was given once */
    assert_int_equal(store_begin(n4->st, true), CKR_OK);
    memset(&o, 0, sizeof(o));
    o.id = 1;
    o.cls = CKO_DATA;
    o.label = (uint8_t *)"v2";
    o.label_len = 2;
    assert_int_equal(store_object_update(n4->st, &o), CKR_OK);
    assert_int_equal(store_commit(n4->st), CKR_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, cl_setup, cl_teardown)
        // clang-format off
        T(test_replicate),
        T(test_lockout),
        T(test_failure_is_noop),
        T(test_update_conflict),
        T(test_object_put),
        T(test_replay_and_duplicate),
        T(test_id_blocks),
        T(test_snapshot_restore),
        T(test_restore_refused),
        T(test_restore_clone),
        T(test_hostile_entries),
        T(test_require_races),
        T(test_node_failure_stops),
        T(test_local_and_refused),
        T(test_schema_5_to_6),
// clang-format on
#undef T
    };

    /* TEST_JOURNAL_LOG=1: the store's log on stderr, to read a failure. */
    if (getenv("TEST_JOURNAL_LOG") != NULL) {
        util_log_setup(LOG_LEVEL_DEBUG, NULL);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
