/*
 * audit.c - the audit log: one record per security event, hash-chained.
 *
 * A record is (seq, time, HSM id, user, operation, object id, result) and
 * never a password or a key value. Its hash is
 *
 *     hash(n) = SHA-256(hash(n - 1) || canonical bytes of record n)
 *
 * with hash(0) = 32 zero bytes. The canonical bytes are, big-endian:
 * u64 seq, u64 time, u8 length + HSM id, u32 user, u8 length + operation,
 * u64 object id, u64 result; a format 2 record (every record written since
 * the store kept peers) goes on with u8 2, u8 length + the connection's
 * peer (hsm_conn_set_peer, may be empty). Format 1 records, written
 * before, verify as they were hashed; one after a format 2 record is
 * malformed (a downgrade would drop the peer). The sequence number and hash
 * of the last
 * record are also kept in the meta row "audit_head", written with it, so
 * that a deleted tail shows too.
 *
 * A change and its record are written in the same store transaction
 * (hsm_audit_tx_locked): both commit or neither does. Events that change
 * nothing else (a failed login) get their own small transaction
 * (hsm_audit_locked).
 *
 * The chain is a plain hash, as the design asks: it shows any edit,
 * deletion, insertion or reordering made without recomputing every later
 * hash; someone who can write the file and recompute the chain is not
 * stopped by it (a keyed chain under the master key would be).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/internal.h"

#define AUDIT_HEAD_KEY "audit_head"
#define AUDIT_HEAD_LEN (8 + HSM_DIGEST_LEN)
#define META_SERIAL "serial"
/* prev hash + u64 + u64 + (1 + text) + u32 + (1 + text) + u64 + u64 */
#define AUDIT_CANON_MAX                                                        \
    (HSM_DIGEST_LEN + 8 + 8 + 1 + STORE_AUDIT_TEXT_MAX + 4 + 1 +               \
     STORE_AUDIT_TEXT_MAX + 8 + 8 + 2 + STORE_AUDIT_PEER_MAX)

_Static_assert(HSM_PEER_MAX == STORE_AUDIT_PEER_MAX && HSM_PEER_MAX <= 255,
               "a peer's length is one byte of the canonical form");

static size_t put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
    return 8;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static size_t put_text(uint8_t *p, const char *t)
{
    size_t len = strnlen(t, STORE_AUDIT_TEXT_MAX);

    p[0] = (uint8_t)len;
    memcpy(p + 1, t, len);
    return 1 + len;
}

/* hash(n) from hash(n - 1) and record r. */
static CK_RV chain_hash(const uint8_t prev[HSM_DIGEST_LEN],
                        const store_audit_t *r, uint8_t out[HSM_DIGEST_LEN])
{
    uint8_t buf[AUDIT_CANON_MAX];
    size_t p = 0;

    memcpy(buf, prev, HSM_DIGEST_LEN);
    p += HSM_DIGEST_LEN;
    p += put_u64(buf + p, r->seq);
    p += put_u64(buf + p, r->time);
    p += put_text(buf + p, r->hsm_id);
    buf[p++] = (uint8_t)(r->user >> 24);
    buf[p++] = (uint8_t)(r->user >> 16);
    buf[p++] = (uint8_t)(r->user >> 8);
    buf[p++] = (uint8_t)r->user;
    p += put_text(buf + p, r->op);
    p += put_u64(buf + p, r->oid);
    p += put_u64(buf + p, r->result);
    if (r->fmt == STORE_AUDIT_FMT_PEER) {
        size_t len = strnlen(r->peer, STORE_AUDIT_PEER_MAX);

        buf[p++] = STORE_AUDIT_FMT_PEER;
        buf[p++] = (uint8_t)len;
        memcpy(buf + p, r->peer, len);
        p += len;
    }
    return crypto_sha256(buf, p, out);
}

/* The last record's seq and hash; 0 and zeros for an empty log. */
static CK_RV head_get(store_t *st, uint64_t *seq,
                             uint8_t hash[HSM_DIGEST_LEN])
{
    uint8_t *v = NULL;
    size_t len = 0;
    CK_RV rv;

    *seq = 0;
    memset(hash, 0, HSM_DIGEST_LEN);
    if ((rv = store_meta_get(st, AUDIT_HEAD_KEY, &v, &len)) != CKR_OK)
        return rv;
    if (v == NULL)
        return CKR_OK;
    if (len != AUDIT_HEAD_LEN) {
        log_error("audit: the head of the log is damaged");
        rv = CKR_DEVICE_ERROR;
    } else {
        *seq = get_u64(v);
        memcpy(hash, v + 8, HSM_DIGEST_LEN);
    }
    free(v);
    return rv;
}

static CK_RV head_set(store_t *st, uint64_t seq,
                             const uint8_t hash[HSM_DIGEST_LEN])
{
    uint8_t v[AUDIT_HEAD_LEN];

    put_u64(v, seq);
    memcpy(v + 8, hash, HSM_DIGEST_LEN);
    return store_meta_set(st, AUDIT_HEAD_KEY, v, sizeof(v));
}

/*
 * Chains rec onto the log of st inside its open transaction: its seq and
 * hash follow the head, and the head moves. The core's own records and,
 * in a cluster, each node's apply of a replicated record (whose seq and
 * hash the applying node computes, so that equal logs chain equally) go
 * through here.
 */
CK_RV hsm_audit_append(store_t *st, store_audit_t *rec)
{
    uint8_t prev[HSM_DIGEST_LEN];
    uint64_t seq = 0;
    CK_RV rv;

    if ((rv = head_get(st, &seq, prev)) != CKR_OK)
        return rv;
    if (seq >= INT64_MAX)
        return CKR_DEVICE_MEMORY;
    rec->seq = seq + 1;
    if ((rv = chain_hash(prev, rec, rec->hash)) != CKR_OK ||
        (rv = store_audit_insert(st, rec)) != CKR_OK ||
        (rv = head_set(st, rec->seq, rec->hash)) != CKR_OK)
        return rv;
    return CKR_OK;
}

CK_RV hsm_audit_tx_locked(hsm_t *hsm, hsm_uid_t uid, const char *event,
                          hsm_oid_t oid, CK_RV result)
{
    return hsm_audit_note_tx_locked(hsm, uid, event, oid, result, NULL);
}

CK_RV hsm_audit_note_tx_locked(hsm_t *hsm, hsm_uid_t uid, const char *event,
                               hsm_oid_t oid, CK_RV result, const char *note)
{
    store_audit_t rec;
    CK_RV rv;

    return_val_if_fail(hsm != NULL && event != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(store_in_tx(hsm->st), CKR_GENERAL_ERROR);
    return_val_if_fail(*event != '\0' && strlen(event) <= STORE_AUDIT_TEXT_MAX,
                       CKR_GENERAL_ERROR);
    memset(&rec, 0, sizeof(rec));
    rec.time = (uint64_t)time(NULL);
    if ((rv = hsm_meta_get_str_locked(hsm, META_SERIAL, rec.hsm_id,
                                      sizeof(rec.hsm_id))) != CKR_OK)
        return rv;
    if (rec.hsm_id[0] == '\0')
        snprintf(rec.hsm_id, sizeof(rec.hsm_id), "unknown");
    rec.user = uid;
    snprintf(rec.op, sizeof(rec.op), "%s", event);
    rec.oid = oid;
    rec.result = result;
    rec.fmt = STORE_AUDIT_FMT_PEER;
    if (note != NULL)
        snprintf(rec.peer, sizeof(rec.peer), "%s%s%s", hsm_call_peer_locked(),
                 *hsm_call_peer_locked() != '\0' ? " " : "", note);
    else
        snprintf(rec.peer, sizeof(rec.peer), "%s", hsm_call_peer_locked());
    if ((rv = hsm_audit_append(hsm->st, &rec)) != CKR_OK)
        return rv;
    log_debug("audit: record %llu: user %u %s object %llu: 0x%lx",
              (unsigned long long)rec.seq, uid, event, (unsigned long long)oid,
              (unsigned long)result);
    return CKR_OK;
}

/*
 * A record for an event that changes nothing else: its own transaction,
 * or the caller's when one is open. Failing to write it is logged; the
 * event it records has already happened.
 */
void hsm_audit_locked(hsm_t *hsm, hsm_uid_t uid, const char *event,
                      hsm_oid_t oid, CK_RV result)
{
    CK_RV rv;

    if (hsm == NULL || event == NULL)
        return;
    if (store_in_tx(hsm->st)) {
        rv = hsm_audit_tx_locked(hsm, uid, event, oid, result);
    } else if ((rv = store_begin(hsm->st, true)) == CKR_OK) {
        rv = hsm_audit_tx_locked(hsm, uid, event, oid, result);
        if (rv == CKR_OK)
            rv = store_commit(hsm->st);
        else
            store_rollback(hsm->st);
    }
    if (rv != CKR_OK)
        log_error("audit: cannot record %s of user %u: 0x%lx", event, uid,
                  (unsigned long)rv);
}

void hsm_audit_last_locked(hsm_t *hsm, hsm_uid_t uid, const char *event,
                           hsm_oid_t oid, CK_RV result)
{
    hsm_waits_unlocked_begin();
    hsm_audit_locked(hsm, uid, event, oid, result);
    hsm_waits_unlocked_end();
}

CK_RV hsm_audit_event(hsm_conn_t *conn, const char *event, uint64_t oid,
                      CK_RV result)
{
    hsm_conn_t *prev;
    CK_RV rv = CKR_OK;

    if (conn == NULL || event == NULL || *event == '\0' ||
        strlen(event) > STORE_AUDIT_TEXT_MAX)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&conn->hsm->lock);
    /* the record names this connection's peer */
    prev = hsm_call_peer_swap(conn);
    if (store_begin(conn->hsm->st, true) == CKR_OK) {
        rv = hsm_audit_tx_locked(conn->hsm, conn->uid, event, oid, result);
        if (rv == CKR_OK)
            rv = hsm_cluster_commit_unlocked(conn->hsm);
        else
            store_rollback(conn->hsm->st);
    } else {
        rv = CKR_DEVICE_ERROR;
    }
    hsm_call_peer_swap(prev);
    pthread_mutex_unlock(&conn->hsm->lock);
    return rv;
}

/* ------------------------------------------------------------ reading */

static void to_record(const store_audit_t *s, hsm_audit_record_t *r)
{
    memset(r, 0, sizeof(*r));
    r->seq = s->seq;
    r->time = s->time;
    snprintf(r->hsm_id, sizeof(r->hsm_id), "%s", s->hsm_id);
    r->user = s->user;
    snprintf(r->op, sizeof(r->op), "%s", s->op);
    r->oid = s->oid;
    r->result = (CK_RV)s->result;
    snprintf(r->peer, sizeof(r->peer), "%s", s->peer);
    memcpy(r->hash, s->hash, sizeof(r->hash));
}

CK_RV hsm_audit_read(hsm_conn_t *conn, uint64_t after, size_t max,
                     hsm_audit_record_t **recs, size_t *n)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    store_audit_t *sr = NULL;
    hsm_audit_record_t *out = NULL;
    size_t count = 0;
    CK_RV rv;

    *recs = NULL;
    *n = 0;
    if (max == 0 || max > HSM_AUDIT_READ_MAX)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_role_locked(conn, HSM_OP_MANAGE_USERS)) != CKR_OK ||
        (rv = store_audit_read(hsm->st, after, max, &sr, &count)) != CKR_OK ||
        count == 0)
        goto out;
    out = calloc(count, sizeof(*out));
    if (out == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    for (size_t i = 0; i < count; i++)
        to_record(&sr[i], &out[i]);
    *recs = out;
    *n = count;
out:
    pthread_mutex_unlock(&hsm->lock);
    free(sr);
    return rv;
}

/* Walks the records in order; stops at the first broken one. */
static CK_RV verify_chain_locked(hsm_t *hsm, hsm_audit_check_t *c,
                                 uint8_t last[HSM_DIGEST_LEN],
                                 uint64_t *last_seq)
{
    uint8_t h[HSM_DIGEST_LEN];
    store_audit_t *r = NULL;
    unsigned fmt = 1; /* the last record's format: never goes back */
    size_t n = 0;
    CK_RV rv;

    for (;;) {
        rv = store_audit_read(hsm->st, *last_seq, STORE_AUDIT_READ_MAX, &r, &n);
        if (rv != CKR_OK || n == 0)
            return rv;
        for (size_t i = 0; i < n; i++) {
            c->records++;
            if (r[i].seq != *last_seq + 1) {
                c->status = HSM_AUDIT_MISSING;
                c->first_bad = *last_seq + 1;
                goto done;
            }
            if (r[i].malformed || r[i].fmt < fmt) {
                c->status = HSM_AUDIT_MALFORMED;
                c->first_bad = r[i].seq;
                goto done;
            }
            fmt = r[i].fmt;
            if ((rv = chain_hash(last, &r[i], h)) != CKR_OK)
                goto done;
            if (util_ct_memcmp(h, r[i].hash, sizeof(h)) != 0) {
                c->status = HSM_AUDIT_HASH_MISMATCH;
                c->first_bad = r[i].seq;
                goto done;
            }
            memcpy(last, r[i].hash, HSM_DIGEST_LEN);
            *last_seq = r[i].seq;
        }
        free(r);
        r = NULL;
        if (n < STORE_AUDIT_READ_MAX)
            return CKR_OK;
    }
done:
    free(r);
    return rv;
}

CK_RV hsm_audit_verify(hsm_conn_t *conn, hsm_audit_check_t *check)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    uint8_t last[HSM_DIGEST_LEN], head[HSM_DIGEST_LEN];
    uint64_t last_seq = 0, head_seq = 0;
    CK_RV rv;

    memset(check, 0, sizeof(*check));
    memset(last, 0, sizeof(last));
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_role_locked(conn, HSM_OP_MANAGE_USERS)) != CKR_OK)
        goto out;
    /* One read transaction: a snapshot, whatever other processes append. */
    if ((rv = store_begin(hsm->st, false)) != CKR_OK)
        goto out;
    rv = verify_chain_locked(hsm, check, last, &last_seq);
    if (rv != CKR_OK || check->status != HSM_AUDIT_INTACT)
        goto end;
    rv = head_get(hsm->st, &head_seq, head);
    if (rv == CKR_DEVICE_ERROR) {
        /* a damaged head: the end of the log cannot be vouched for */
        check->status = HSM_AUDIT_TRUNCATED;
        check->first_bad = last_seq + 1;
        rv = CKR_OK;
    }
    if (rv != CKR_OK || check->status != HSM_AUDIT_INTACT)
        goto end;
    if (head_seq > last_seq) {
        check->status = HSM_AUDIT_TRUNCATED;
        check->first_bad = last_seq + 1;
    } else if (head_seq < last_seq) {
        check->status = HSM_AUDIT_UNEXPECTED;
        check->first_bad = head_seq + 1;
    } else if (util_ct_memcmp(head, last, sizeof(head)) != 0) {
        check->status = HSM_AUDIT_HASH_MISMATCH;
        check->first_bad = last_seq;
    }
end:
    store_rollback(hsm->st);
out:
    pthread_mutex_unlock(&hsm->lock);
    return rv;
}
