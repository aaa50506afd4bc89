/*
 * fuzz_journal.c - libFuzzer target over the store's journal apply
 * (src/store/journal.c): each input is a log entry, applied at the next
 * index to one store. Whatever the entry, the apply must not crash, read
 * outside it or trip a precondition; it must answer CKR_OK with a result
 * that decodes (a bad entry is the entry's failure, never the node's);
 * an entry that failed leaves the users and objects as they were; the
 * same index again changes nothing and answers the same. The corpus in
 * tests/fuzz/journal-corpus is replayed by make check (replay.c).
 *
 * Built with FUZZ_JOURNAL_SEEDS_MAIN, it writes that corpus instead: the
 * entries that real store calls record (`make tests/fuzz/fuzz_journal_seeds`
 * then `./tests/fuzz/fuzz_journal_seeds DIR`).
 */
#include "config.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/store/journal.pb-c.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_journal: %s\n", what);
        abort();
    }
}

/* The node's seal and the cluster's mask, as XOR: what matters here is
 * that unmask refuses a blob of another object or version. */
static CK_RV xmask(void *ctx, uint64_t oid, uint64_t version, const uint8_t *in,
                   size_t len, uint8_t **out, size_t *outlen)
{
    (void)ctx;
    *out = malloc(len + 16);
    if (*out == NULL) {
        return CKR_HOST_MEMORY;
    }
    memcpy(*out, &oid, 8);
    memcpy(*out + 8, &version, 8);
    for (size_t i = 0; i < len; i++) {
        (*out)[16 + i] = in[i] ^ 0x5a;
    }
    *outlen = len + 16;
    return CKR_OK;
}

static CK_RV xunmask(void *ctx, uint64_t oid, uint64_t version,
                     const uint8_t *in, size_t len, uint8_t **out,
                     size_t *outlen)
{
    (void)ctx;
    if (len < 16 || memcmp(in, &oid, 8) != 0 ||
        memcmp(in + 8, &version, 8) != 0) {
        return CKR_ENCRYPTED_DATA_INVALID;
    }
    *out = malloc(len - 16 + 1);
    if (*out == NULL) {
        return CKR_HOST_MEMORY;
    }
    for (size_t i = 16; i < len; i++) {
        (*out)[i - 16] = in[i] ^ 0x5a;
    }
    *outlen = len - 16;
    return CKR_OK;
}

/* Seq from a counter kept in the meta table, a hash of zeros. */
static CK_RV chain(void *ctx, store_t *st, store_audit_t *rec)
{
    static uint64_t seq;

    (void)ctx;
    rec->seq = ++seq;
    memset(rec->hash, 0, sizeof(rec->hash));
    return store_audit_insert(st, rec);
}

static struct {
    char dir[64];
    char path[PATH_MAX];
    store_t *st;
    struct store_journal j;
    uint64_t index;
    /* the seed writer */
    const char *out;
    int n;
} g;

static size_t count(store_t *st, bool users)
{
    store_user_t *u = NULL;
    store_hit_t *h = NULL;
    store_query_t q;
    size_t n = 0;

    if (users) {
        check(store_user_list(st, &u, &n) == CKR_OK, "user list");
        for (size_t i = 0; i < n; i++) {
            store_user_clear(&u[i]);
        }
        free(u);
        return n;
    }
    memset(&q, 0, sizeof(q));
    check(store_object_find(st, &q, &h, &n) == CKR_OK, "object find");
    free(h);
    return n;
}

static void cleanup(void)
{
    char p[PATH_MAX + 8];

    store_close(g.st);
    unlink(g.path);
    snprintf(p, sizeof(p), "%s-wal", g.path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", g.path);
    unlink(p);
    rmdir(g.dir);
}

static void setup(void)
{
    bool created = false;

    snprintf(g.dir, sizeof(g.dir), "%s",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm/nimbus-fj-XXXXXX"
                                           : "/tmp/nimbus-fj-XXXXXX");
    check(mkdtemp(g.dir) != NULL, "mkdtemp");
    snprintf(g.path, sizeof(g.path), "%s/store.db", g.dir);
    check(store_open(g.path, &g.st, &created) == CKR_OK, "store_open");
    g.j.mask = xmask;
    g.j.unmask = xunmask;
    g.j.audit_append = chain;
    atexit(cleanup);
}

static void apply(const uint8_t *data, size_t size, uint8_t **res,
                  size_t *reslen)
{
    /* origin from the input, so that some collide with earlier ones */
    uint64_t origin = size > 0 ? data[0] % 4 : 0;

    g.index++;
    check(store_journal_apply(g.st, &g.j, g.index, origin, g.index, data, size,
                              res, reslen) == CKR_OK,
          "apply failed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Nimbus__Journal__Result *r;
    uint8_t *res = NULL, *again = NULL;
    size_t reslen = 0, againlen = 0, users, objects;
    uint64_t applied = 0, origin;

    if (g.st == NULL) {
        setup();
    }
    users = count(g.st, true);
    objects = count(g.st, false);
    apply(data, size, &res, &reslen);
    r = nimbus__journal__result__unpack(NULL, reslen, res);
    check(r != NULL, "result does not decode");
    if (r->rv != CKR_OK) {
        check(r->n_blocks == 0 && !r->has_failures, "a failure with output");
        check(count(g.st, true) == users && count(g.st, false) == objects,
              "a failed entry changed rows");
    }
    nimbus__journal__result__free_unpacked(r, NULL);
    check(store_journal_applied(g.st, &applied) == CKR_OK && applied == g.index,
          "applied index");
    /* The same index again: nothing changes, the same answer. */
    origin = size > 0 ? data[0] % 4 : 0;
    check(store_journal_apply(g.st, &g.j, g.index, origin, g.index, data, size,
                              &again, &againlen) == CKR_OK,
          "replay failed");
    check(againlen == reslen && memcmp(again, res, reslen) == 0,
          "replay answered otherwise");
    free(res);
    free(again);
    return 0;
}

#ifdef FUZZ_JOURNAL_SEEDS_MAIN
/* ------------------------------------------------------------ seeds */

/* Records each entry as a corpus file and applies it. */
static CK_RV seed_submit(void *ctx, const uint8_t *entry, size_t len,
                         uint8_t **res, size_t *reslen)
{
    char p[PATH_MAX];
    FILE *fp;

    (void)ctx;
    snprintf(p, sizeof(p), "%s/seed-%02d", g.out, ++g.n);
    fp = fopen(p, "wb");
    check(fp != NULL && fwrite(entry, 1, len, fp) == len, "write seed");
    fclose(fp);
    apply(entry, len, res, reslen);
    return CKR_OK;
}

int main(int argc, char **argv)
{
    store_object_t o;
    store_qtoken_t t;
    store_audit_t rec;
    uint32_t uid = 0, fails = 0, tid = 0;
    uint64_t oid = 0;
    bool charged = false, added = false;
    uint8_t blob[40], *snap = NULL;
    size_t snaplen = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    g.out = argv[1];
    setup();
    g.j.submit = seed_submit;
    store_journal_attach(g.st, &g.j);
    memset(blob, 0x42, sizeof(blob));

    check(store_begin(g.st, true) == CKR_OK, "begin");
    check(store_user_insert(g.st, 0, "officer", 1, (const uint8_t *)"ver", 3,
                            &uid) == CKR_OK,
          "user");
    check(store_meta_set(g.st, "label", (const uint8_t *)"token", 5) == CKR_OK,
          "label");
    check(store_commit(g.st) == CKR_OK, "commit");

    memset(&o, 0, sizeof(o));
    o.owner = uid;
    o.cls = 4;
    o.label = (uint8_t *)"key";
    o.label_len = 3;
    o.ckid = (uint8_t *)"id";
    o.ckid_len = 2;
    o.attrs = blob;
    o.attrs_len = sizeof(blob);
    check(store_begin(g.st, true) == CKR_OK, "begin");
    check(store_object_insert(g.st, &o, &oid) == CKR_OK, "object");
    o.id = oid;
    check(store_object_update(g.st, &o) == CKR_OK, "update");
    check(store_share_set(g.st, oid, uid, true) == CKR_OK, "share");
    check(store_commit(g.st) == CKR_OK, "commit");

    check(store_user_charge_failure(g.st, uid, 5, &fails, &charged) == CKR_OK,
          "charge");
    /* an image of this state, restored once the state is empty again */
    check(store_snapshot(g.st, &g.j, &snap, &snaplen) == CKR_OK, "snapshot");

    memset(&t, 0, sizeof(t));
    t.service = 1;
    t.requester = uid;
    t.expires = 10;
    t.needed = 1;
    memset(t.digest, 3, sizeof(t.digest));
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.hsm_id, sizeof(rec.hsm_id), "serial");
    snprintf(rec.op, sizeof(rec.op), "login");
    rec.fmt = STORE_AUDIT_FMT_PEER;
    check(store_begin(g.st, true) == CKR_OK, "begin");
    check(store_quorum_m_set(g.st, 1, 2) == CKR_OK, "m");
    check(store_user_mofn_set(g.st, uid, (const uint8_t *)"spki", 4, true) ==
              CKR_OK,
          "mofn");
    check(store_qtoken_insert(g.st, &t, &tid) == CKR_OK, "token");
    check(store_qtoken_approve(g.st, tid, uid, &added) == CKR_OK, "approve");
    check(store_audit_insert(g.st, &rec) == CKR_OK, "audit");
    check(store_commit(g.st) == CKR_OK, "commit");

    check(store_begin(g.st, true) == CKR_OK, "begin");
    check(store_qtoken_delete(g.st, tid, &added) == CKR_OK, "token delete");
    check(store_qtoken_purge(g.st, 100, NULL) == CKR_OK, "purge");
    check(store_user_set_verifier(g.st, uid, (const uint8_t *)"v2", 2) ==
              CKR_OK,
          "verifier");
    check(store_user_reset_failures(g.st, uid) == CKR_OK, "reset");
    check(store_object_delete(g.st, oid) == CKR_OK, "object delete");
    check(store_user_bump_versions(g.st) == CKR_OK, "bump");
    check(store_commit(g.st) == CKR_OK, "commit");

    check(store_begin(g.st, true) == CKR_OK, "begin");
    check(store_object_delete_all(g.st) == CKR_OK, "delete all");
    check(store_user_delete(g.st, uid) == CKR_OK, "user delete");
    check(store_commit(g.st) == CKR_OK, "commit");

    check(store_begin(g.st, true) == CKR_OK, "begin");
    check(store_restore_backup(g.st, snap, snaplen, NULL, 0) == CKR_OK,
          "restore");
    check(store_commit(g.st) == CKR_OK, "commit restore");
    check(count(g.st, true) == 1 && count(g.st, false) == 1, "restored");
    free(snap);

    /* preconditions (corpus: seed-require; the entry before it reserves) */
    check(store_begin(g.st, true) == CKR_OK, "begin");
    check(store_user_insert(g.st, 0, "second", 2, (const uint8_t *)"ver", 3,
                            &uid) == CKR_OK,
          "user");
    check(store_require(g.st, STORE_REQUIRE_USER_TYPE, uid, 2,
                        CKR_ARGUMENTS_BAD) == CKR_OK,
          "require type");
    check(store_require(g.st, STORE_REQUIRE_USER_DELETABLE, uid, 1,
                        CKR_ACTION_PROHIBITED) == CKR_OK,
          "require deletable");
    check(store_require(g.st, STORE_REQUIRE_QTOKENS_BELOW, 1024, 0,
                        CKR_FUNCTION_REJECTED) == CKR_OK,
          "require tokens");
    check(store_commit(g.st) == CKR_OK, "commit");
    printf("fuzz_journal_seeds: %d entries written to %s\n", g.n, g.out);
    return 0;
}
#endif
