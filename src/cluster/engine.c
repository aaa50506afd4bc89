/*
 * engine.c - the consensus engine of cluster.h: libraft 0.15 on a libuv
 * loop of its own thread, its transport in tls.c.
 *
 * Callers' threads hand operations (struct op) to the loop through a
 * locked queue and an async handle, then wait on a condition variable.
 * On the loop an operation is driven until it is done: on the leader it
 * calls raft directly; on a follower it is sent to the leader over a
 * request channel (tls.h, cluster.proto), and resent, with the same
 * (origin, seq) for entries, when the leader changes, the link breaks or
 * the leader answers "not leader". The state machine applies an entry at
 * most once per (origin, seq), so a resend is safe.
 *
 * libraft 0.15 facts this relies on (checked in its source): the apply
 * callback is called for index last_applied + 1 and its error stops the
 * apply loop without being reported; entries must be padded to 8 bytes;
 * there is no state-change callback (a check handle looks after each loop
 * iteration); restore owns the buffer it is given. raft is never called
 * from inside one of its own callbacks (a raft_apply from the callback
 * of a request failed by a lost leadership crashed it, under valgrind's
 * timing): such an operation is marked unsent and the check handle, run
 * after the loop iteration, drives it again.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "cluster/cluster.h"
#include "src/cluster/cluster.pb-c.h"
#include "cluster/cluster_test.h"
#include "cluster/tls.h"
#include "common/log.h"
#include "common/util.h"

#define DEFAULT_ELECTION_MS 300
#define DEFAULT_HEARTBEAT_MS 50
#define CONNECT_RETRY_MS 100
#define INSTALL_SNAPSHOT_TIMEOUT_MS 2000
/* Writing a snapshot stalls log writes 20-40 ms: not too often. */
#define DEFAULT_SNAPSHOT_THRESHOLD 8192
#define TICK_MS 20
/* A forward with no answer after this long is sent again. */
#define RESEND_MS 1000
/* How long a caller waits beyond its timeout for the loop to answer. */
#define CALLER_GRACE_MS 2000
#define ENTRY_HDR 24
#define ENTRY_PAYLOAD_MAX CLUSTER_PAYLOAD_MAX
/* a payload, framed as an entry, in a Request, fits one frame */
_Static_assert(CLUSTER_PAYLOAD_MAX + ENTRY_HDR + 8 + 64 <= CTLS_FRAME_MAX,
               "CLUSTER_PAYLOAD_MAX does not fit a request frame");
#define SNAP_HDR 8
/* Submission lanes: one (origin, seq) sequence each (the state machine
 * dedups per origin), one entry in flight per lane; submitters take a free
 * lane, so up to LANES entries of this node are in flight at once. */
#define LANES 8

enum op_kind {
    OP_SUBMIT,
    OP_FORWARD, /* a peer's entry, on the leader */
    OP_SYNC,
    OP_RPC,
    OP_ADD,
    OP_REMOVE,
    OP_TRANSFER,
    OP_RAFT_START,
};

struct link;

struct op {
    enum op_kind kind;
    struct op *next, *prev; /* queue, then the loop's active list */
    /* the caller's side (local operations), under cl->mu */
    int refs;
    bool done;
    int rc;
    uint8_t *res;
    size_t reslen;
    /* the operation */
    uint64_t deadline; /* loop clock (uv_now), ms; set on the loop */
    unsigned timeout_ms;
    uint8_t *entry; /* OP_SUBMIT/OP_FORWARD: the framed entry */
    size_t entry_len;
    uint64_t origin, seq;
    uint64_t peer, node; /* OP_RPC: peer; membership: node */
    char address[CLUSTER_ADDRESS_MAX + 1];
    char source[CLUSTER_ID_MAX + 1]; /* OP_RPC to another cluster: its id */
    uint8_t *req;
    size_t reqlen;
    /* loop state */
    bool started;
    bool in_active;
    bool sent;        /* handed to raft or to a leader */
    uint64_t sent_to; /* the node it was sent to (0: ourselves) */
    uint64_t sent_ms;
    uint64_t req_id;     /* the request id on the link */
    struct link *link;   /* the link it was sent on */
    uint64_t wait_index; /* OP_SYNC: done once applied reaches it */
    int phase;           /* OP_ADD: 0 add, 1 assign */
    bool ever_sent;
    uint64_t retry_at;    /* not sent again before (loop clock) */
    unsigned link_losses; /* links lost under it */
    /* a peer's request answered on the leader */
    struct link *reply_to;
    uint64_t reply_id;
};

/* A request channel: outbound (ours, to a peer) or inbound (a peer's). */
struct link {
    struct cluster *cl;
    struct ctls_chan *ch;
    uint64_t peer;
    bool outbound;
    /* inbound from a clone's node: its cluster id (peer is in that
     * cluster's numbering); NULL for this cluster's nodes */
    const char *clone;
    struct link *next;
};

/* raft's requests live apart from operations: an operation may finish
 * (timed out, applied through another copy) before raft calls back. */
struct raft_req {
    union {
        struct raft_apply apply;
        struct raft_barrier barrier;
        struct raft_change change;
        struct raft_transfer transfer;
    } u;
    struct cluster *cl;
    struct op *op; /* NULL once the operation has gone */
    struct raft_req *next, *prev;
};

struct lane {
    pthread_mutex_t mu;
    uint64_t origin, seq;
};

struct cluster {
    struct cluster_config cfg;
    struct cluster_fsm fsm;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t tick;
    uv_check_t check;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm rfsm;
    bool transport_ready, io_ready, raft_ready, raft_started;
    bool down;           /* raft and the transport are closed */
    bool handles_closed; /* the loop's own handles */
    struct lane lanes[LANES];
    atomic_uint lane_next;

    pthread_mutex_t mu; /* what follows up to "loop only" */
    pthread_cond_t cv;
    struct op *queue; /* submitted, not yet taken by the loop */
    bool stop_requested;
    int dead; /* 0, or why every operation now fails */
    bool started, start_failed;
    unsigned callers; /* threads inside a cluster_* call */
    struct cluster_status status;
    unsigned test_drop_replies;

    /* loop only */
    struct op *active;
    struct link *links;
    struct raft_req *rreqs;
    uint64_t next_req_id;
    uint64_t skip_upto; /* the state machine's applied index at start */
    uint64_t seen_leader;
    uint64_t seen_config_index;
    bool push_commit; /* a forwarded entry was applied here (leader) */
    int seen_state;
    uint64_t seen_term;
    uint64_t adding[CLUSTER_NODES_MAX];
    bool closing;
    int close_rc;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

const char *cluster_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case CLUSTER_ENOMEM:
        return "out of memory";
    case CLUSTER_EINVAL:
        return "invalid argument";
    case CLUSTER_ETIMEDOUT:
        return "timed out (outcome unknown)";
    case CLUSTER_ENOLEADER:
        return "no leader reachable";
    case CLUSTER_ENOTFOUND:
        return "no such node";
    case CLUSTER_EBUSY:
        return "a membership change is under way";
    case CLUSTER_ESTOPPED:
        return "the engine is stopped";
    case CLUSTER_EIO:
        return "the state machine failed";
    case CLUSTER_EREFUSED:
        return "refused by the peer";
    default:
        return "unknown error";
    }
}

/* A raft error as the caller sees it. */
static int from_raft(int rv)
{
    switch (rv) {
    case 0:
        return 0;
    case RAFT_NOMEM:
        return CLUSTER_ENOMEM;
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return CLUSTER_ENOLEADER;
    case RAFT_NOTFOUND:
    case RAFT_BADID:
        return CLUSTER_ENOTFOUND;
    case RAFT_CANTCHANGE:
        return CLUSTER_EBUSY;
    case RAFT_NOCONNECTION: /* e.g. a node added that never answered */
        return CLUSTER_ETIMEDOUT;
    case RAFT_CANCELED:
    case RAFT_SHUTDOWN:
        return CLUSTER_ESTOPPED;
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
    case RAFT_INVALID:
        return CLUSTER_EINVAL;
    default:
        return CLUSTER_EIO;
    }
}

/* ------------------------------------------------------------ framing */

static uint8_t *entry_frame(uint64_t origin, uint64_t seq, const uint8_t *p,
                            size_t len, size_t *outlen)
{
    size_t n = (ENTRY_HDR + len + 7) & ~(size_t)7; /* libraft: 8-aligned */
    uint8_t *e = calloc(1, n);
    if (e == NULL)
        return NULL;
    put64(e, origin);
    put64(e + 8, seq);
    put64(e + 16, len);
    if (len > 0)
        memcpy(e + ENTRY_HDR, p, len);
    *outlen = n;
    return e;
}

/* 0 and the parts, or -1 if buf is no entry of ours. */
static int entry_parse(const uint8_t *buf, size_t n, uint64_t *origin,
                       uint64_t *seq, const uint8_t **p, size_t *len)
{
    if (n < ENTRY_HDR || n % 8 != 0)
        return -1;
    uint64_t l = get64(buf + 16);
    if (l > n - ENTRY_HDR || ((ENTRY_HDR + l + 7) & ~(uint64_t)7) != n)
        return -1;
    *origin = get64(buf);
    *seq = get64(buf + 8);
    *p = buf + ENTRY_HDR;
    *len = (size_t)l;
    return 0;
}

/* --------------------------------------------------------- operations */

static void op_free(struct op *op)
{
    if (op->entry != NULL)
        util_free_wipe(op->entry, op->entry_len);
    if (op->req != NULL)
        util_free_wipe(op->req, op->reqlen);
    if (op->res != NULL) /* an rpc's answer: the cluster key, for one */
        util_free_wipe(op->res, op->reslen);
    free(op);
}

static void op_unref_locked(struct op *op)
{
    if (--op->refs == 0)
        op_free(op);
}

static void active_add(struct cluster *cl, struct op *op)
{
    op->prev = NULL;
    op->next = cl->active;
    if (cl->active != NULL)
        cl->active->prev = op;
    cl->active = op;
    op->in_active = true;
    op->started = true;
    op->deadline = uv_now(&cl->loop) + op->timeout_ms;
    if (op->kind == OP_ADD) {
        /* its links are let in before the configuration names it */
        for (size_t i = 0; i < CLUSTER_NODES_MAX; i++)
            if (cl->adding[i] == 0) {
                cl->adding[i] = op->node;
                break;
            }
    }
}

static void active_remove(struct cluster *cl, struct op *op)
{
    if (!op->in_active)
        return;
    op->in_active = false;
    if (op->kind == OP_ADD) {
        for (size_t i = 0; i < CLUSTER_NODES_MAX; i++)
            if (cl->adding[i] == op->node) {
                cl->adding[i] = 0;
                break;
            }
    }
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        cl->active = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    op->next = op->prev = NULL;
}

static void rreqs_forget(struct cluster *cl, struct op *op)
{
    for (struct raft_req *r = cl->rreqs; r != NULL; r = r->next)
        if (r->op == op)
            r->op = NULL;
}

static void send_reply(struct cluster *cl, struct link *l, uint64_t id, int rc,
                       uint64_t index, const uint8_t *payload, size_t len);

/* The end of an operation: the caller wakes, or the peer gets its reply.
 * res (malloc'd) is taken. */
static void op_finish(struct cluster *cl, struct op *op, int rc, uint8_t *res,
                      size_t reslen, uint64_t index)
{
    active_remove(cl, op);
    rreqs_forget(cl, op);
    if (op->link != NULL && op->link->outbound && op->link->peer == 0) {
        /* a link to "any member at this address" serves one request */
        ctls_chan_close(op->link->ch);
        op->link = NULL;
    }
    if (op->reply_to != NULL || op->kind == OP_FORWARD) {
        bool drop = false;
        if (op->kind == OP_FORWARD && rc == 0) {
            pthread_mutex_lock(&cl->mu);
            drop = cl->test_drop_replies > 0;
            if (drop)
                cl->test_drop_replies--;
            pthread_mutex_unlock(&cl->mu);
        }
        if (drop && op->reply_to != NULL)
            ctls_chan_close(op->reply_to->ch); /* test: the answer lost */
        else if (op->reply_to != NULL)
            send_reply(cl, op->reply_to, op->reply_id, rc, index, res, reslen);
        if (res != NULL)
            util_free_wipe(res, reslen);
        op_free(op);
        return;
    }
    pthread_mutex_lock(&cl->mu);
    op->done = true;
    op->rc = rc;
    op->res = res;
    op->reslen = reslen;
    pthread_cond_broadcast(&cl->cv);
    op_unref_locked(op);
    pthread_mutex_unlock(&cl->mu);
}

static struct raft_req *rreq_new(struct cluster *cl, struct op *op)
{
    struct raft_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->cl = cl;
    r->op = op;
    r->next = cl->rreqs;
    if (cl->rreqs != NULL)
        cl->rreqs->prev = r;
    cl->rreqs = r;
    return r;
}

static void rreq_free(struct raft_req *r)
{
    struct cluster *cl = r->cl;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        cl->rreqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    free(r);
}

/* ------------------------------------------------------------- links */

static void link_frame(void *data, struct ctls_chan *ch, const uint8_t *buf,
                       size_t len);
static void link_closed(void *data, struct ctls_chan *ch);
static void op_drive(struct cluster *cl, struct op *op);

static struct link *link_new(struct cluster *cl, struct ctls_chan *ch,
                             uint64_t peer, bool outbound)
{
    struct link *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->cl = cl;
    l->ch = ch;
    l->peer = peer;
    l->outbound = outbound;
    l->next = cl->links;
    cl->links = l;
    return l;
}

/* Our link to a peer, dialled if there is none. id 0: any member at
 * address (a node that joins does not know the ids yet). source: the
 * other cluster whose node is dialled (always a link of its own). */
static struct link *link_to(struct cluster *cl, uint64_t id,
                            const char *address, const char *source)
{
    for (struct link *l = cl->links; source == NULL && l != NULL; l = l->next)
        if (l->outbound && l->ch != NULL && l->peer == id && id != 0)
            return l;
    if (cl->closing || address == NULL || address[0] == 0)
        return NULL;
    struct link *l = link_new(cl, NULL, id, true);
    if (l == NULL)
        return NULL;
    l->ch = ctls_chan_open(ctls_of(&cl->transport), id, address, source,
                           link_frame, link_closed, l);
    if (l->ch == NULL) {
        l->ch = NULL; /* unlinked below */
        cl->links = l->next;
        free(l);
        return NULL;
    }
    return l;
}

static void link_closed(void *data, struct ctls_chan *ch)
{
    struct link *l = data;
    struct cluster *cl = l->cl;
    bool refused = ctls_chan_refused(ch);
    for (struct link **pp = &cl->links; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    /* what was sent on it is sent again (the same (origin, seq)); the
     * leader's answers to it are dropped */
    struct op *next;
    for (struct op *op = cl->active; op != NULL; op = next) {
        next = op->next;
        if (op->reply_to == l)
            op->reply_to = NULL;
        if (op->link == l && op->kind == OP_RPC && refused) {
            /* the peer will not take this node: say so, not "no answer" */
            op->link = NULL;
            if (!cl->closing)
                op_finish(cl, op, CLUSTER_EREFUSED, NULL, 0, 0);
            continue;
        }
        if (op->link == l) {
            /* at once the first time (an answer lost with its link),
             * then no faster than libraft redials */
            op->link = NULL;
            op->sent = false;
            op->retry_at =
                uv_now(&cl->loop) + (op->link_losses++ ? CONNECT_RETRY_MS : 0);
            if (!cl->closing)
                op_drive(cl, op);
        }
    }
    free(l);
}

static int link_send(struct link *l, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return -1;
    protobuf_c_message_pack(m, buf);
    int rv = ctls_chan_send(l->ch, buf, n);
    util_free_wipe(buf, n);
    return rv;
}

static void send_reply(struct cluster *cl, struct link *l, uint64_t id, int rc,
                       uint64_t index, const uint8_t *payload, size_t len)
{
    Nimbus__Cluster__Reply r = NIMBUS__CLUSTER__REPLY__INIT;
    r.id = id;
    r.status = rc;
    if (index != 0) {
        r.has_index = true;
        r.index = index;
    }
    if (payload != NULL) {
        r.has_payload = true;
        r.payload.data = (uint8_t *)payload;
        r.payload.len = len;
    }
    raft_id lid = 0;
    const char *laddr = NULL;
    if (rc == CLUSTER_ENOLEADER && cl->raft_ready) {
        raft_leader(&cl->raft, &lid, &laddr);
        if (lid != 0 && laddr != NULL) {
            r.has_leader_id = true;
            r.leader_id = lid;
            r.leader_address = (char *)laddr;
        }
    }
    (void)link_send(l, &r.base);
}

/* --------------------------------------------------- leader-side work */

static bool is_leader(struct cluster *cl)
{
    return cl->raft_ready && !cl->closing &&
           raft_state(&cl->raft) == RAFT_LEADER;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct raft_req *r = (struct raft_req *)req;
    struct cluster *cl = r->cl;
    struct op *op = r->op;
    uint64_t index = req->index;
    rreq_free(r);
    /* the result went to the submitter in fsm_apply (matched by origin
     * and seq); raft hands it to us as well */
    (void)result;
    if (op == NULL)
        return;
    if (op->kind == OP_FORWARD) {
        op_finish(cl, op, status == 0 ? 0 : from_raft(status), NULL, 0,
                  status == 0 ? index : 0);
        /* its origin waits to apply it, and learns the commit only from
         * the next AppendEntries: a heartbeat away when nothing else is
         * written (50 ms a submit). check_cb appends a barrier. */
        if (status == 0)
            cl->push_commit = true;
        return;
    }
    /* OP_SUBMIT: applied here already if status is 0; otherwise (the
     * leadership lost) it may still commit: send it again, the state
     * machine keeps the first. Not from here: raft is in the middle of
     * stepping down (raft_apply now crashed it); check_cb resends after
     * this loop iteration. */
    if (status != 0)
        op->sent = false;
}

static int leader_apply(struct cluster *cl, struct op *op)
{
    struct raft_req *r = rreq_new(cl, op);
    if (r == NULL)
        return CLUSTER_ENOMEM;
    struct raft_buffer buf;
    buf.len = op->entry_len;
    buf.base = raft_malloc(buf.len);
    if (buf.base == NULL) {
        rreq_free(r);
        return CLUSTER_ENOMEM;
    }
    memcpy(buf.base, op->entry, buf.len);
    int rv = raft_apply(&cl->raft, &r->u.apply, &buf, 1, apply_cb);
    if (rv != 0) {
        raft_free(buf.base);
        rreq_free(r);
        return from_raft(rv);
    }
    return 0;
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct raft_req *r = (struct raft_req *)req;
    struct cluster *cl = r->cl;
    struct op *op = r->op;
    uint64_t index = req->index;
    rreq_free(r);
    if (op == NULL)
        return;
    if (status != 0) {
        if (op->reply_to != NULL)
            op_finish(cl, op, from_raft(status), NULL, 0, 0);
        else
            op->sent = false; /* check_cb again, as in apply_cb */
        return;
    }
    /* applied on the leader up to the barrier */
    op_finish(cl, op, 0, NULL, 0, index);
}

static void change_cb(struct raft_change *req, int status);

static int leader_change(struct cluster *cl, struct op *op)
{
    struct raft_req *r = rreq_new(cl, op);
    if (r == NULL)
        return CLUSTER_ENOMEM;
    int rv;
    if (op->kind == OP_ADD && op->phase == 0) {
        rv =
            raft_add(&cl->raft, &r->u.change, op->node, op->address, change_cb);
        if (rv == RAFT_DUPLICATEID) {
            /* a resent add: go on with the promotion */
            const struct raft_server *s = NULL;
            for (unsigned i = 0; i < cl->raft.configuration.n; i++)
                if (cl->raft.configuration.servers[i].id == op->node)
                    s = &cl->raft.configuration.servers[i];
            op->phase = 1;
            if (s != NULL && s->role == RAFT_VOTER) {
                rreq_free(r);
                op_finish(cl, op, 0, NULL, 0, 0);
                return 0;
            }
            rv = raft_assign(&cl->raft, &r->u.change, op->node, RAFT_VOTER,
                             change_cb);
        }
    } else if (op->kind == OP_ADD) {
        /* raft_assign to voter runs catch-up rounds first (the snapshot,
         * then the log) and promotes once the node has caught up */
        rv = raft_assign(&cl->raft, &r->u.change, op->node, RAFT_VOTER,
                         change_cb);
        if (rv == RAFT_BADROLE) { /* already a voter */
            rreq_free(r);
            op_finish(cl, op, 0, NULL, 0, 0);
            return 0;
        }
    } else {
        rv = raft_remove(&cl->raft, &r->u.change, op->node, change_cb);
    }
    if (rv != 0) {
        rreq_free(r);
        return from_raft(rv);
    }
    return 0;
}

static void change_cb(struct raft_change *req, int status)
{
    struct raft_req *r = (struct raft_req *)req;
    struct cluster *cl = r->cl;
    struct op *op = r->op;
    rreq_free(r);
    if (op == NULL)
        return;
    if (status != 0) {
        op_finish(cl, op, from_raft(status), NULL, 0, 0);
        return;
    }
    if (op->kind == OP_ADD && op->phase == 0) {
        /* the promotion is the next change: check_cb starts it after
         * this iteration, not from inside raft's callback */
        op->phase = 1;
        op->sent = false;
        return;
    }
    op_finish(cl, op, 0, NULL, 0, 0);
}

static void transfer_cb(struct raft_transfer *req)
{
    struct raft_req *r = (struct raft_req *)req;
    struct cluster *cl = r->cl;
    struct op *op = r->op;
    rreq_free(r);
    if (op == NULL)
        return;
    raft_id lid = 0;
    const char *addr = NULL;
    raft_leader(&cl->raft, &lid, &addr);
    op_finish(cl, op, lid == op->node ? 0 : CLUSTER_ETIMEDOUT, NULL, 0, 0);
}

static int leader_transfer(struct cluster *cl, struct op *op)
{
    if (op->node == cl->cfg.node_id) {
        op_finish(cl, op, 0, NULL, 0, 0);
        return 0;
    }
    struct raft_req *r = rreq_new(cl, op);
    if (r == NULL)
        return CLUSTER_ENOMEM;
    int rv = raft_transfer(&cl->raft, &r->u.transfer, op->node, transfer_cb);
    if (rv != 0) {
        rreq_free(r);
        return from_raft(rv);
    }
    return 0;
}

/* An rpc answered here by the state machine; 0 or CLUSTER_EREFUSED. */
static int local_rpc(struct cluster *cl, struct op *op, uint64_t peer,
                     const char *clone)
{
    uint8_t *resp = NULL;
    size_t resplen = 0;
    if (cl->fsm.rpc == NULL || cl->fsm.rpc(cl->fsm.ctx, peer, clone, op->req,
                                           op->reqlen, &resp, &resplen) != 0) {
        free(resp);
        op_finish(cl, op, CLUSTER_EREFUSED, NULL, 0, 0);
        return CLUSTER_EREFUSED;
    }
    op_finish(cl, op, 0, resp, resplen, 0);
    return 0;
}

/* ----------------------------------------------------- driving an op */

/* Sends op to node id at address as a request. */
static int op_send(struct cluster *cl, struct op *op, uint64_t id,
                   const char *address)
{
    struct link *l =
        link_to(cl, id, address, op->source[0] != 0 ? op->source : NULL);
    if (l == NULL)
        return -1;
    Nimbus__Cluster__Request rq = NIMBUS__CLUSTER__REQUEST__INIT;
    Nimbus__Cluster__Forward fw = NIMBUS__CLUSTER__FORWARD__INIT;
    Nimbus__Cluster__ReadIndex ri = NIMBUS__CLUSTER__READ_INDEX__INIT;
    Nimbus__Cluster__Rpc rp = NIMBUS__CLUSTER__RPC__INIT;
    Nimbus__Cluster__Membership mb = NIMBUS__CLUSTER__MEMBERSHIP__INIT;
    op->req_id = ++cl->next_req_id;
    rq.id = op->req_id;
    switch (op->kind) {
    case OP_SUBMIT:
        fw.entry.data = op->entry;
        fw.entry.len = op->entry_len;
        rq.call_case = NIMBUS__CLUSTER__REQUEST__CALL_FORWARD;
        rq.forward = &fw;
        break;
    case OP_SYNC:
        rq.call_case = NIMBUS__CLUSTER__REQUEST__CALL_READ_INDEX;
        rq.read_index = &ri;
        break;
    case OP_RPC:
        rp.payload.data = op->req;
        rp.payload.len = op->reqlen;
        rq.call_case = NIMBUS__CLUSTER__REQUEST__CALL_RPC;
        rq.rpc = &rp;
        break;
    case OP_ADD:
    case OP_REMOVE:
    case OP_TRANSFER:
        mb.kind = op->kind == OP_ADD ? NIMBUS__CLUSTER__MEMBERSHIP__KIND__ADD
                  : op->kind == OP_REMOVE
                      ? NIMBUS__CLUSTER__MEMBERSHIP__KIND__REMOVE
                      : NIMBUS__CLUSTER__MEMBERSHIP__KIND__TRANSFER;
        mb.node = op->node;
        mb.address = op->address;
        mb.timeout_ms = op->timeout_ms;
        rq.call_case = NIMBUS__CLUSTER__REQUEST__CALL_MEMBERSHIP;
        rq.membership = &mb;
        break;
    default:
        return -1;
    }
    if (link_send(l, &rq.base) != 0)
        return -1;
    op->sent = true;
    op->ever_sent = true;
    op->link = l;
    op->sent_to = id;
    op->sent_ms = uv_now(&cl->loop);
    return 0;
}

/*
 * Moves op on: does it here if this node leads, else sends it to the
 * leader. Called when it arrives, and again whenever something it waits
 * for may have changed (a new leader, a lost link, the tick).
 */
static void op_drive(struct cluster *cl, struct op *op)
{
    if (op->sent || cl->closing || op->kind == OP_RAFT_START ||
        uv_now(&cl->loop) < op->retry_at)
        return;
    if (op->kind == OP_SYNC && op->wait_index != 0)
        return; /* waiting to apply up to it (check_cb) */
    raft_id lid = 0;
    const char *laddr = NULL;
    if (cl->raft_ready)
        raft_leader(&cl->raft, &lid, &laddr);
    if (op->kind == OP_RPC && op->source[0] != 0) {
        /* another cluster's node: whoever leads here does not matter */
        (void)op_send(cl, op, 0, op->address);
        return;
    }
    if (op->kind == OP_RPC && op->peer != 0 && op->peer != cl->cfg.node_id) {
        const char *addr = op->address[0] ? op->address : NULL;
        for (unsigned i = 0; addr == NULL && i < cl->raft.configuration.n; i++)
            if (cl->raft.configuration.servers[i].id == op->peer)
                addr = cl->raft.configuration.servers[i].address;
        if (addr == NULL) {
            op_finish(cl, op, CLUSTER_ENOTFOUND, NULL, 0, 0);
            return;
        }
        (void)op_send(cl, op, op->peer, addr);
        return;
    }
    if (op->kind == OP_RPC && (op->peer == cl->cfg.node_id ||
                               (lid == cl->cfg.node_id && op->peer == 0))) {
        (void)local_rpc(cl, op, cl->cfg.node_id, NULL);
        return;
    }
    if (op->kind == OP_RPC && lid == 0 && op->address[0] != 0) {
        /* no leader known (a node that joins): the member named */
        (void)op_send(cl, op, 0, op->address);
        return;
    }
    if (lid == 0)
        return; /* the tick tries again */
    if (lid != cl->cfg.node_id) {
        if (op->reply_to != NULL) {
            /* a peer's request, and we do not lead: say who does */
            op_finish(cl, op, CLUSTER_ENOLEADER, NULL, 0, 0);
            return;
        }
        (void)op_send(cl, op, lid, laddr);
        return;
    }
    if (!is_leader(cl))
        return;
    int rc = 0;
    op->sent = true;
    op->sent_to = 0;
    op->sent_ms = uv_now(&cl->loop);
    op->ever_sent = true;
    switch (op->kind) {
    case OP_SUBMIT:
    case OP_FORWARD:
        rc = leader_apply(cl, op);
        break;
    case OP_SYNC: {
        struct raft_req *r = rreq_new(cl, op);
        if (r == NULL) {
            rc = CLUSTER_ENOMEM;
            break;
        }
        int rv = raft_barrier(&cl->raft, &r->u.barrier, barrier_cb);
        if (rv != 0) {
            rreq_free(r);
            rc = from_raft(rv);
        }
        break;
    }
    case OP_RPC:
        (void)local_rpc(cl, op, cl->cfg.node_id, NULL);
        return;
    case OP_ADD:
    case OP_REMOVE:
        rc = leader_change(cl, op);
        break;
    case OP_TRANSFER:
        rc = leader_transfer(cl, op);
        break;
    case OP_RAFT_START:
        return;
    }
    if (rc == CLUSTER_ENOLEADER && op->reply_to == NULL) {
        op->sent = false; /* lost the lead just now: the tick retries */
        return;
    }
    if (rc != 0)
        op_finish(cl, op, rc, NULL, 0, 0);
}

/* ------------------------------------------------- requests from peers */

static bool valid_address(const char *a)
{
    size_t n = strnlen(a, CLUSTER_ADDRESS_MAX + 1);
    return n > 0 && n <= CLUSTER_ADDRESS_MAX && strchr(a, ':') != NULL;
}

static bool in_config(struct cluster *cl, uint64_t id)
{
    for (unsigned i = 0; i < cl->raft.configuration.n; i++)
        if (cl->raft.configuration.servers[i].id == id)
            return true;
    return false;
}

static void peer_request(struct cluster *cl, struct link *l,
                         const Nimbus__Cluster__Request *rq)
{
    struct op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        send_reply(cl, l, rq->id, CLUSTER_ENOMEM, 0, NULL, 0);
        return;
    }
    op->reply_to = l;
    op->reply_id = rq->id;
    op->timeout_ms = 10000;
    uint64_t o, s;
    const uint8_t *p;
    size_t plen;
    if (l->clone != NULL &&
        rq->call_case != NIMBUS__CLUSTER__REQUEST__CALL_RPC) {
        /* a clone's node asks for nothing but what fsm->rpc gives it */
        char why[160];
        snprintf(why, sizeof why,
                 "a request other than an rpc from node %" PRIu64
                 " of cluster %s (a clone)",
                 l->peer, l->clone);
        ctls_chan_note_refusal(l->ch, why);
        op_free(op);
        send_reply(cl, l, rq->id, CLUSTER_EREFUSED, 0, NULL, 0);
        return;
    }
    switch (rq->call_case) {
    case NIMBUS__CLUSTER__REQUEST__CALL_FORWARD:
        op->kind = OP_FORWARD;
        if (entry_parse(rq->forward->entry.data, rq->forward->entry.len, &o, &s,
                        &p, &plen) != 0)
            goto bad;
        op->entry = malloc(rq->forward->entry.len);
        if (op->entry == NULL)
            goto nomem;
        memcpy(op->entry, rq->forward->entry.data, rq->forward->entry.len);
        op->entry_len = rq->forward->entry.len;
        break;
    case NIMBUS__CLUSTER__REQUEST__CALL_READ_INDEX:
        op->kind = OP_SYNC;
        break;
    case NIMBUS__CLUSTER__REQUEST__CALL_RPC:
        op->kind = OP_RPC;
        op->req = malloc(rq->rpc->payload.len ? rq->rpc->payload.len : 1);
        if (op->req == NULL)
            goto nomem;
        if (rq->rpc->payload.len > 0)
            memcpy(op->req, rq->rpc->payload.data, rq->rpc->payload.len);
        op->reqlen = rq->rpc->payload.len;
        /* answered here, whoever leads: the peer named this node; a
         * member answers members only (a node is one once added), and
         * the nodes of the clones it was configured with */
        if (l->clone == NULL && cl->raft_ready &&
            cl->raft.configuration.n > 0 && !in_config(cl, l->peer)) {
            op_free(op);
            send_reply(cl, l, rq->id, CLUSTER_EREFUSED, 0, NULL, 0);
            return;
        }
        if (local_rpc(cl, op, l->peer, l->clone) != 0 && l->clone != NULL) {
            char why[160];
            snprintf(why, sizeof why,
                     "an rpc from node %" PRIu64 " of cluster %s (a clone)",
                     l->peer, l->clone);
            ctls_chan_note_refusal(l->ch, why);
        }
        return;
    case NIMBUS__CLUSTER__REQUEST__CALL_MEMBERSHIP: {
        const Nimbus__Cluster__Membership *m = rq->membership;
        if (m->node == 0 || m->timeout_ms == 0 || m->timeout_ms > 3600000)
            goto bad;
        op->node = m->node;
        op->timeout_ms = m->timeout_ms;
        if (m->kind == NIMBUS__CLUSTER__MEMBERSHIP__KIND__ADD) {
            if (m->address == NULL || !valid_address(m->address))
                goto bad;
            op->kind = OP_ADD;
            snprintf(op->address, sizeof op->address, "%s", m->address);
        } else if (m->kind == NIMBUS__CLUSTER__MEMBERSHIP__KIND__REMOVE) {
            op->kind = OP_REMOVE;
        } else {
            op->kind = OP_TRANSFER;
        }
        break;
    }
    default:
        goto bad;
    }
    active_add(cl, op);
    op_drive(cl, op);
    return;
bad:
    op_free(op);
    send_reply(cl, l, rq->id, CLUSTER_EINVAL, 0, NULL, 0);
    return;
nomem:
    op_free(op);
    send_reply(cl, l, rq->id, CLUSTER_ENOMEM, 0, NULL, 0);
}

/* A reply to one of our requests. */
static void peer_reply(struct cluster *cl, struct link *l,
                       const Nimbus__Cluster__Reply *rp)
{
    struct op *op;
    for (op = cl->active; op != NULL; op = op->next)
        if (op->link == l && op->req_id == rp->id)
            break;
    if (op == NULL)
        return; /* finished meanwhile (applied, timed out) */
    if (l->peer == 0)
        ctls_chan_close(l->ch); /* one request per such link */
    op->link = NULL;
    int rc = rp->status;
    if (rc > 0 || rc < CLUSTER_EREFUSED)
        rc = CLUSTER_EIO;
    switch (op->kind) {
    case OP_SUBMIT:
        /* success: it is committed; we finish when we apply it */
        if (rc != 0)
            op->sent = false; /* the tick sends it again */
        return;
    case OP_SYNC:
        if (rc != 0) {
            op->sent = false;
            return;
        }
        op->wait_index = rp->has_index ? rp->index : 0;
        op->sent = false;
        if (op->wait_index == 0)
            op_finish(cl, op, 0, NULL, 0, 0);
        return;
    case OP_RPC: {
        uint8_t *res = NULL;
        if (rc == 0 && rp->has_payload && rp->payload.len > 0) {
            res = malloc(rp->payload.len);
            if (res == NULL) {
                op_finish(cl, op, CLUSTER_ENOMEM, NULL, 0, 0);
                return;
            }
            memcpy(res, rp->payload.data, rp->payload.len);
        }
        op_finish(cl, op, rc, res, res ? rp->payload.len : 0, 0);
        return;
    }
    default:
        if (rc == CLUSTER_ENOLEADER) {
            op->sent = false; /* retried with the next leader */
            return;
        }
        op_finish(cl, op, rc, NULL, 0, 0);
        return;
    }
}

static void link_frame(void *data, struct ctls_chan *ch, const uint8_t *buf,
                       size_t len)
{
    struct link *l = data;
    struct cluster *cl = l->cl;
    if (cl->closing)
        return;
    if (l->outbound) {
        Nimbus__Cluster__Reply *rp =
            nimbus__cluster__reply__unpack(NULL, len, buf);
        if (rp == NULL) {
            log_warn("cluster: a malformed reply from node %" PRIu64, l->peer);
            ctls_chan_close(ch);
            return;
        }
        peer_reply(cl, l, rp);
        if (rp->has_payload && rp->payload.data != NULL)
            util_wipe(rp->payload.data, rp->payload.len); /* maybe a key */
        nimbus__cluster__reply__free_unpacked(rp, NULL);
        return;
    }
    Nimbus__Cluster__Request *rq =
        nimbus__cluster__request__unpack(NULL, len, buf);
    if (rq == NULL) {
        log_warn("cluster: a malformed request from node %" PRIu64, l->peer);
        ctls_chan_close(ch);
        return;
    }
    peer_request(cl, l, rq);
    nimbus__cluster__request__free_unpacked(rq, NULL);
}

static void chan_accept(void *ctx, struct ctls_chan *ch, uint64_t peer,
                        const char *clone)
{
    struct cluster *cl = ctx;
    if (cl->closing)
        return;
    /* the id as cl->cfg.clones holds it (as long as the engine) */
    const char *cid = NULL;
    for (size_t i = 0; clone != NULL && i < cl->cfg.nclones; i++)
        if (strcmp(cl->cfg.clones[i], clone) == 0)
            cid = cl->cfg.clones[i];
    if (clone != NULL && cid == NULL)
        return; /* never (the same list): tls.c closes a channel untaken */
    struct link *l = link_new(cl, ch, peer, false);
    if (l == NULL)
        return;
    l->clone = cid;
    ctls_chan_set(ch, link_frame, link_closed, l);
}

/* Inbound peers: members, nodes being added here, and anyone of the
 * cluster while this node has no configuration yet (it waits to be
 * added, and the leader's links are how that happens). */
static bool admit(void *ctx, uint64_t id)
{
    struct cluster *cl = ctx;
    if (!cl->raft_ready || cl->raft.configuration.n == 0)
        return true;
    if (in_config(cl, id))
        return true;
    for (size_t i = 0; i < CLUSTER_NODES_MAX; i++)
        if (cl->adding[i] == id)
            return true;
    return false;
}

/* ------------------------------------------------------ state machine */

static int fsm_apply(struct raft_fsm *f, const struct raft_buffer *buf,
                     void **result)
{
    struct cluster *cl = f->data;
    uint64_t index = cl->raft.last_applied + 1; /* libraft 0.15 */
    uint64_t origin, seq;
    const uint8_t *p;
    size_t len;
    *result = NULL;
    if (entry_parse(buf->base, buf->len, &origin, &seq, &p, &len) != 0) {
        /* not ours: the same on every node, so skipped everywhere */
        log_error("cluster: entry %" PRIu64 " is malformed, skipped", index);
        return 0;
    }
    if (index <= cl->skip_upto)
        return 0; /* replayed after a restart */
    uint8_t *res = NULL;
    size_t reslen = 0;
    if (cl->fsm.apply(cl->fsm.ctx, index, origin, seq, p, len, &res, &reslen) !=
        0) {
        free(res);
        log_error("cluster: the state machine failed at entry %" PRIu64
                  ": the node stops",
                  index);
        pthread_mutex_lock(&cl->mu);
        cl->dead = CLUSTER_EIO;
        pthread_mutex_unlock(&cl->mu);
        uv_async_send(&cl->async);
        return RAFT_IOERR;
    }
    for (struct op *op = cl->active; op != NULL; op = op->next) {
        if (op->kind == OP_SUBMIT && op->origin == origin && op->seq == seq) {
            op_finish(cl, op, 0, res, reslen, index);
            return 0;
        }
    }
    free(res);
    return 0;
}

static int fsm_snapshot(struct raft_fsm *f, struct raft_buffer *bufs[],
                        unsigned *n)
{
    struct cluster *cl = f->data;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (cl->fsm.snapshot(cl->fsm.ctx, &buf, &len) != 0)
        return RAFT_IOERR;
    struct raft_buffer *b = raft_malloc(sizeof *b);
    uint8_t *data = raft_malloc(SNAP_HDR + len);
    if (b == NULL || data == NULL) {
        raft_free(b);
        raft_free(data);
        util_free_wipe(buf, len);
        return RAFT_NOMEM;
    }
    /* the index it was made at: restore skips a snapshot the state
     * machine is already past (libraft restores at every start) */
    put64(data, cl->raft.last_applied);
    if (len > 0)
        memcpy(data + SNAP_HDR, buf, len);
    util_free_wipe(buf, len);
    b->base = data;
    b->len = SNAP_HDR + len;
    *bufs = b;
    *n = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *f, struct raft_buffer *buf)
{
    struct cluster *cl = f->data;
    int rv = 0;
    if (buf->len < SNAP_HDR) {
        rv = RAFT_MALFORMED;
    } else {
        uint64_t index = get64(buf->base);
        if (index > cl->fsm.applied(cl->fsm.ctx) &&
            cl->fsm.restore(cl->fsm.ctx, (uint8_t *)buf->base + SNAP_HDR,
                            buf->len - SNAP_HDR) != 0) {
            log_error("cluster: restoring the snapshot at %" PRIu64
                      " failed: the node stops",
                      index);
            pthread_mutex_lock(&cl->mu);
            cl->dead = CLUSTER_EIO;
            pthread_mutex_unlock(&cl->mu);
            uv_async_send(&cl->async);
            rv = RAFT_IOERR;
        } else {
            /* entries of our submitters may be inside the snapshot: they
             * will not be applied here one by one. Sent again, each is
             * applied as a duplicate, which answers its first result. */
            for (struct op *op = cl->active; op != NULL; op = op->next)
                if (op->kind == OP_SUBMIT && op->reply_to == NULL) {
                    op->sent = false;
                    op->link = NULL;
                    op->retry_at = 0;
                }
        }
    }
    util_wipe(buf->base, buf->len);
    raft_free(buf->base);
    return rv;
}

/* --------------------------------------------------------- the loop */

static void refresh_status(struct cluster *cl)
{
    struct cluster_status st;
    memset(&st, 0, sizeof st);
    st.node_id = cl->cfg.node_id;
    if (cl->raft_ready && !cl->closing) {
        struct raft *r = &cl->raft;
        int s = raft_state(r);
        st.role = s == RAFT_LEADER      ? CLUSTER_ROLE_LEADER
                  : s == RAFT_CANDIDATE ? CLUSTER_ROLE_CANDIDATE
                  : s == RAFT_FOLLOWER  ? CLUSTER_ROLE_FOLLOWER
                                        : CLUSTER_ROLE_UNAVAILABLE;
        st.term = r->current_term;
        raft_id lid = 0;
        const char *laddr = NULL;
        raft_leader(r, &lid, &laddr);
        st.leader_id = lid;
        if (laddr != NULL)
            snprintf(st.leader_address, sizeof st.leader_address, "%s", laddr);
        st.commit_index = r->commit_index;
        st.applied_index = r->last_applied;
        st.last_index = raft_last_index(r);
        for (unsigned i = 0;
             i < r->configuration.n && st.nnodes < CLUSTER_NODES_MAX; i++) {
            const struct raft_server *sv = &r->configuration.servers[i];
            struct cluster_node *nd = &st.nodes[st.nnodes++];
            nd->id = sv->id;
            snprintf(nd->address, sizeof nd->address, "%s", sv->address);
            nd->member = sv->role == RAFT_VOTER     ? CLUSTER_MEMBER_VOTER
                         : sv->role == RAFT_STANDBY ? CLUSTER_MEMBER_STANDBY
                                                    : CLUSTER_MEMBER_SPARE;
            if (s == RAFT_LEADER && r->leader_state.progress != NULL)
                nd->match_index = sv->id == r->id
                                      ? raft_last_index(r)
                                      : r->leader_state.progress[i].match_index;
        }
    }
    struct ctls_stats ts;
    memset(&ts, 0, sizeof ts);
    if (cl->transport_ready && cl->transport.impl != NULL)
        ctls_get_stats(ctls_of(&cl->transport), &ts);
    st.peers_refused = ts.refused + ts.hs_failed + ts.over_cap;
    pthread_mutex_lock(&cl->mu);
    cl->status = st;
    pthread_mutex_unlock(&cl->mu);
}

static void begin_close(struct cluster *cl, int why);
static void finish_loop(struct cluster *cl);
static int raft_setup(struct cluster *cl);

/* After each loop iteration: what raft did may finish or move ops. */
static void check_cb(uv_check_t *h)
{
    struct cluster *cl = h->data;
    if (cl->closing || !cl->raft_ready)
        return;
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(&cl->raft, &lid, &laddr);
    bool leader_changed = lid != cl->seen_leader;
    cl->seen_leader = lid;
    uint64_t ci = cl->raft.configuration_uncommitted_index
                      ? cl->raft.configuration_uncommitted_index
                      : cl->raft.configuration_index;
    if (ci != cl->seen_config_index) {
        cl->seen_config_index = ci;
        ctls_recheck(ctls_of(&cl->transport));
        cl->seen_state = -1; /* refresh the status below */
    }
    struct op *next;
    for (struct op *op = cl->active; op != NULL; op = next) {
        next = op->next;
        if (op->kind == OP_SYNC && op->wait_index != 0 &&
            cl->raft.last_applied >= op->wait_index) {
            op_finish(cl, op, 0, NULL, 0, 0);
            continue;
        }
        if (leader_changed && op->sent && op->reply_to == NULL &&
            op->sent_to != 0 && op->sent_to != lid && lid != 0 &&
            op->kind != OP_RPC) {
            op->sent = false; /* the leader it went to is gone */
            op->link = NULL;
        }
        if (!op->sent)
            op_drive(cl, op);
    }
    if (cl->push_commit && is_leader(cl)) {
        /* an entry carries the new commit index to the followers now;
         * one per loop iteration whatever the number of forwards */
        cl->push_commit = false;
        struct raft_req *r = rreq_new(cl, NULL);
        if (r != NULL &&
            raft_barrier(&cl->raft, &r->u.barrier, barrier_cb) != 0)
            rreq_free(r);
    }
    int state = raft_state(&cl->raft);
    if (leader_changed || state != cl->seen_state ||
        cl->raft.current_term != cl->seen_term) {
        cl->seen_state = state;
        cl->seen_term = cl->raft.current_term;
        refresh_status(cl);
    }
}

static void tick_cb(uv_timer_t *t)
{
    struct cluster *cl = t->data;
    pthread_mutex_lock(&cl->mu);
    int dead = cl->dead;
    pthread_mutex_unlock(&cl->mu);
    if (dead != 0 && !cl->closing) {
        begin_close(cl, dead);
        return;
    }
    if (cl->closing)
        return;
    refresh_status(cl);
    uint64_t now = uv_now(&cl->loop);
    struct op *next;
    for (struct op *op = cl->active; op != NULL; op = next) {
        next = op->next;
        if (now >= op->deadline) {
            int rc = op->ever_sent ? CLUSTER_ETIMEDOUT : CLUSTER_ENOLEADER;
            op_finish(cl, op, rc, NULL, 0, 0);
            continue;
        }
        if (op->sent && op->sent_to != 0 && op->reply_to == NULL &&
            op->kind == OP_SUBMIT && now - op->sent_ms >= RESEND_MS) {
            op->sent = false; /* no answer: the same entry again */
            op->link = NULL;
        }
        if (!op->sent)
            op_drive(cl, op);
    }
}

/* cluster_raft_start on the loop: a failure stops the node. */
static void raft_start_op(struct cluster *cl, struct op *op)
{
    if (!cl->cfg.defer_raft || cl->raft_started || cl->raft_ready) {
        op_finish(cl, op, CLUSTER_EINVAL, NULL, 0, 0);
        return;
    }
    int rc = raft_setup(cl);
    op_finish(cl, op, rc, NULL, 0, 0);
    if (rc != 0) {
        pthread_mutex_lock(&cl->mu);
        cl->dead = rc;
        pthread_mutex_unlock(&cl->mu);
        begin_close(cl, rc);
        return;
    }
    refresh_status(cl);
}

/* Takes the callers' operations. */
static void async_cb(uv_async_t *h)
{
    struct cluster *cl = h->data;
    pthread_mutex_lock(&cl->mu);
    struct op *q = cl->queue;
    cl->queue = NULL;
    bool stop = cl->stop_requested;
    int dead = cl->dead;
    pthread_mutex_unlock(&cl->mu);
    /* oldest first */
    struct op *rev = NULL;
    while (q != NULL) {
        struct op *n = q->next;
        q->next = rev;
        rev = q;
        q = n;
    }
    while (rev != NULL) {
        struct op *op = rev;
        rev = rev->next;
        active_add(cl, op);
        if (cl->closing || dead != 0) {
            op_finish(cl, op, dead ? dead : CLUSTER_ESTOPPED, NULL, 0, 0);
            continue;
        }
        if (op->kind == OP_RAFT_START) {
            raft_start_op(cl, op);
            continue;
        }
        op_drive(cl, op);
    }
    if (stop && !cl->closing)
        begin_close(cl, CLUSTER_ESTOPPED);
    finish_loop(cl);
}

/* Once raft and the transport are down and a stop was asked for, the
 * loop's own handles go and uv_run returns. */
static void finish_loop(struct cluster *cl)
{
    pthread_mutex_lock(&cl->mu);
    bool stop = cl->stop_requested;
    pthread_mutex_unlock(&cl->mu);
    if (!stop || !cl->down || cl->handles_closed)
        return;
    cl->handles_closed = true;
    uv_close((uv_handle_t *)&cl->async, NULL);
    uv_close((uv_handle_t *)&cl->tick, NULL);
    uv_close((uv_handle_t *)&cl->check, NULL);
}

static void raft_closed(struct raft *r)
{
    struct cluster *cl = r->data;
    /* raft's close closed the transport through the io */
    raft_uv_close(&cl->io);
    ctls_free(&cl->transport);
    cl->raft_ready = cl->io_ready = cl->transport_ready = false;
    cl->down = true;
    finish_loop(cl);
}

static void transport_closed(struct raft_uv_transport *t)
{
    struct cluster *cl = t->data;
    ctls_free(&cl->transport);
    cl->transport_ready = false;
    cl->down = true;
    finish_loop(cl);
}

/* Closes whatever of raft, its io and the transport is up. */
static void teardown(struct cluster *cl)
{
    if (cl->raft_ready) {
        raft_close(&cl->raft, raft_closed);
        return;
    }
    if (cl->io_ready) {
        /* raft_init failed: the io was never started, only allocated */
        raft_uv_close(&cl->io);
        cl->io_ready = false;
    }
    if (cl->transport_ready) {
        cl->transport.data = cl;
        ctls_shutdown(&cl->transport, transport_closed);
        return;
    }
    cl->down = true;
    finish_loop(cl);
}

/* Every operation fails with why; raft and the transport close. */
static void begin_close(struct cluster *cl, int why)
{
    cl->closing = true;
    cl->close_rc = why;
    while (cl->active != NULL)
        op_finish(cl, cl->active, why, NULL, 0, 0);
    for (struct link *l = cl->links; l != NULL; l = l->next)
        ctls_chan_close(l->ch);
    refresh_status(cl);
    teardown(cl);
}

/* ------------------------------------------------------------- start */

/* The transport, listening (request channels work from here on). */
static int transport_setup(struct cluster *cl)
{
    const struct cluster_config *c = &cl->cfg;
    struct ctls_config tc = {
        .loop = &cl->loop,
        .cluster_id = c->cluster_id,
        .node_id = c->node_id,
        .address = c->address,
        .ca = c->ca,
        .cert = c->cert,
        .key = c->key,
        .admit = admit,
        .chan_accept = chan_accept,
        .ctx = cl,
    };
    memcpy(tc.clones, c->clones, sizeof tc.clones);
    tc.nclones = c->nclones;
    if (ctls_init(&cl->transport, &tc) != 0)
        return CLUSTER_EINVAL;
    cl->transport_ready = true;
    int rv = ctls_listen(ctls_of(&cl->transport));
    if (rv != 0) {
        log_error("cluster: listen on %s: %s", c->address, uv_strerror(rv));
        return CLUSTER_EIO;
    }
    return 0;
}

static int raft_setup(struct cluster *cl)
{
    const struct cluster_config *c = &cl->cfg;
    int rv = raft_uv_init(&cl->io, &cl->loop, c->dir, &cl->transport);
    if (rv != 0) {
        log_error("cluster: raft_uv_init(%s): %s", c->dir, raft_strerror(rv));
        return CLUSTER_EIO;
    }
    cl->io_ready = true;
    raft_uv_set_connect_retry_delay(&cl->io, CONNECT_RETRY_MS);
    cl->rfsm.version = 1;
    cl->rfsm.data = cl;
    cl->rfsm.apply = fsm_apply;
    cl->rfsm.snapshot = fsm_snapshot;
    cl->rfsm.restore = fsm_restore;
    rv = raft_init(&cl->raft, &cl->io, &cl->rfsm, c->node_id, c->address);
    if (rv != 0) {
        log_error("cluster: raft_init: %s", raft_errmsg(&cl->raft));
        return CLUSTER_EIO;
    }
    cl->raft.data = cl;
    cl->raft_ready = true;
    if (c->bootstrap) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        rv = raft_configuration_add(&conf, c->node_id, c->address, RAFT_VOTER);
        if (rv == 0)
            rv = raft_bootstrap(&cl->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) { /* not empty: restart */
            log_error("cluster: bootstrap: %s", raft_errmsg(&cl->raft));
            return CLUSTER_EIO;
        }
    }
    raft_set_election_timeout(&cl->raft, c->election_timeout
                                             ? c->election_timeout
                                             : DEFAULT_ELECTION_MS);
    raft_set_heartbeat_timeout(&cl->raft, c->heartbeat_timeout
                                              ? c->heartbeat_timeout
                                              : DEFAULT_HEARTBEAT_MS);
    /* a follower busy with its own snapshot drops the leader's: without
     * this the leader waits 30 s before it sends it again */
    raft_set_install_snapshot_timeout(&cl->raft, INSTALL_SNAPSHOT_TIMEOUT_MS);
    unsigned th = c->snapshot_threshold ? c->snapshot_threshold
                                        : DEFAULT_SNAPSHOT_THRESHOLD;
    raft_set_snapshot_threshold(&cl->raft, th);
    raft_set_snapshot_trailing(&cl->raft, th / 4 ? th / 4 : 1);
    /* both survivors of a dead leader otherwise stand in the same term
     * and split the vote: pre-vote halved failover (notes, section 11) */
    raft_set_pre_vote(&cl->raft, true);
    cl->skip_upto = cl->fsm.applied(cl->fsm.ctx);
    rv = raft_start(&cl->raft);
    if (rv != 0) {
        log_error("cluster: raft_start: %s", raft_errmsg(&cl->raft));
        return CLUSTER_EIO;
    }
    cl->raft_started = true;
    return 0;
}

static void *loop_main(void *arg)
{
    struct cluster *cl = arg;
    int rc = transport_setup(cl);
    if (rc == 0 && !cl->cfg.defer_raft)
        rc = raft_setup(cl);
    if (rc != 0) {
        pthread_mutex_lock(&cl->mu);
        cl->stop_requested = true;
        pthread_mutex_unlock(&cl->mu);
        teardown(cl);
        uv_run(&cl->loop, UV_RUN_DEFAULT);
        pthread_mutex_lock(&cl->mu);
        cl->start_failed = true;
        cl->dead = rc;
        pthread_cond_broadcast(&cl->cv);
        pthread_mutex_unlock(&cl->mu);
        return NULL;
    }
    uv_timer_start(&cl->tick, tick_cb, TICK_MS, TICK_MS);
    uv_check_start(&cl->check, check_cb);
    refresh_status(cl);
    pthread_mutex_lock(&cl->mu);
    cl->started = true;
    pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    uv_run(&cl->loop, UV_RUN_DEFAULT);
    return NULL;
}

static bool valid_cluster_id(const char *id)
{
    size_t n = strnlen(id, CLUSTER_ID_MAX + 1);
    if (n == 0 || n > CLUSTER_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || c == '-'))
            return false;
    }
    return true;
}

static int cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    int rv = pthread_condattr_init(&a);
    if (rv == 0)
        rv = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    if (rv == 0)
        rv = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return rv;
}

static uint64_t random_origin(void)
{
    uint64_t v = 0;
    while (v == 0) {
        if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
            v = mono_ms() ^ ((uint64_t)getpid() << 32); /* never here */
    }
    return v;
}

int cluster_start(const struct cluster_config *cfg,
                  const struct cluster_fsm *fsm, cluster_t **out)
{
    if (cfg == NULL || fsm == NULL || out == NULL || fsm->apply == NULL ||
        fsm->applied == NULL || fsm->snapshot == NULL || fsm->restore == NULL ||
        cfg->node_id == 0 || !valid_cluster_id(cfg->cluster_id) ||
        strnlen(cfg->address, sizeof cfg->address) >= sizeof cfg->address ||
        cfg->address[0] == 0 ||
        strnlen(cfg->dir, sizeof cfg->dir) >= sizeof cfg->dir ||
        cfg->dir[0] == 0 || cfg->nclones > CLUSTER_CLONES_MAX)
        return CLUSTER_EINVAL;
    for (size_t i = 0; i < cfg->nclones; i++)
        if (!valid_cluster_id(cfg->clones[i]) ||
            strcmp(cfg->clones[i], cfg->cluster_id) == 0)
            return CLUSTER_EINVAL;
    *out = NULL;
    struct cluster *cl = calloc(1, sizeof *cl);
    if (cl == NULL)
        return CLUSTER_ENOMEM;
    cl->cfg = *cfg;
    cl->fsm = *fsm;
    for (size_t i = 0; i < LANES; i++) {
        util_mutex_init(&cl->lanes[i].mu);
        cl->lanes[i].origin = random_origin();
    }
    if (util_mutex_init(&cl->mu) != 0 || cond_init_mono(&cl->cv) != 0 ||
        uv_loop_init(&cl->loop) != 0) {
        free(cl);
        return CLUSTER_ENOMEM;
    }
    uv_async_init(&cl->loop, &cl->async, async_cb);
    uv_timer_init(&cl->loop, &cl->tick);
    uv_check_init(&cl->loop, &cl->check);
    cl->async.data = cl->tick.data = cl->check.data = cl;
    if (pthread_create(&cl->thread, NULL, loop_main, cl) != 0) {
        uv_close((uv_handle_t *)&cl->async, NULL);
        uv_close((uv_handle_t *)&cl->tick, NULL);
        uv_close((uv_handle_t *)&cl->check, NULL);
        uv_run(&cl->loop, UV_RUN_DEFAULT);
        uv_loop_close(&cl->loop);
        free(cl);
        return CLUSTER_ENOMEM;
    }
    pthread_mutex_lock(&cl->mu);
    while (!cl->started && !cl->start_failed)
        pthread_cond_wait(&cl->cv, &cl->mu);
    bool failed = cl->start_failed;
    int rc = cl->dead;
    pthread_mutex_unlock(&cl->mu);
    if (failed) {
        pthread_join(cl->thread, NULL);
        if (uv_loop_close(&cl->loop) != 0)
            util_precondition_failed("uv_loop_close(&cl->loop) == 0", __FILE__,
                                     __LINE__, __func__);
        pthread_cond_destroy(&cl->cv);
        pthread_mutex_destroy(&cl->mu);
        for (size_t i = 0; i < LANES; i++)
            pthread_mutex_destroy(&cl->lanes[i].mu);
        free(cl);
        return rc;
    }
    *out = cl;
    return 0;
}

void cluster_stop(cluster_t *cl)
{
    if (cl == NULL)
        return;
    pthread_mutex_lock(&cl->mu);
    cl->stop_requested = true;
    pthread_mutex_unlock(&cl->mu);
    uv_async_send(&cl->async);
    pthread_join(cl->thread, NULL);
    /* every handle of ours, raft's and the transport's is closed: a bug
     * otherwise (the tests abort on it) */
    if (uv_loop_close(&cl->loop) != 0)
        util_precondition_failed("uv_loop_close(&cl->loop) == 0", __FILE__,
                                 __LINE__, __func__);
    /* operations queued after the loop's last look: their callers get
     * CLUSTER_ESTOPPED; then wait for every caller to be out */
    pthread_mutex_lock(&cl->mu);
    while (cl->queue != NULL) {
        struct op *op = cl->queue;
        cl->queue = op->next;
        op->done = true;
        op->rc = CLUSTER_ESTOPPED;
        op_unref_locked(op);
    }
    pthread_cond_broadcast(&cl->cv);
    while (cl->callers > 0)
        pthread_cond_wait(&cl->cv, &cl->mu);
    pthread_mutex_unlock(&cl->mu);
    pthread_cond_destroy(&cl->cv);
    pthread_mutex_destroy(&cl->mu);
    for (size_t i = 0; i < LANES; i++)
        pthread_mutex_destroy(&cl->lanes[i].mu);
    free(cl);
}

/* ------------------------------------------------------- the callers */

static struct op *op_new(enum op_kind kind, unsigned timeout_ms)
{
    struct op *op = calloc(1, sizeof *op);
    if (op == NULL)
        return NULL;
    op->kind = kind;
    op->refs = 2; /* the caller, the loop */
    op->timeout_ms = timeout_ms ? timeout_ms : 1;
    return op;
}

/* Every public call that waits is inside enter()/leave(): cluster_stop
 * frees the engine only once none is left. */
static int enter(struct cluster *cl)
{
    pthread_mutex_lock(&cl->mu);
    bool stopped = cl->stop_requested;
    if (!stopped)
        cl->callers++;
    pthread_mutex_unlock(&cl->mu);
    return stopped ? CLUSTER_ESTOPPED : 0;
}

static void leave(struct cluster *cl)
{
    pthread_mutex_lock(&cl->mu);
    cl->callers--;
    if (cl->stop_requested)
        pthread_cond_broadcast(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
}

/* Queues op and waits for it; returns its code. The caller then drops
 * its reference with op_release. */
static int op_run(struct cluster *cl, struct op *op)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ms = (uint64_t)op->timeout_ms + CALLER_GRACE_MS;
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&cl->mu);
    op->next = cl->queue;
    cl->queue = op;
    pthread_mutex_unlock(&cl->mu);
    uv_async_send(&cl->async);
    pthread_mutex_lock(&cl->mu);
    int rv = 0;
    while (!op->done && rv != ETIMEDOUT)
        rv = pthread_cond_timedwait(&cl->cv, &cl->mu, &ts);
    int rc = op->done ? op->rc : CLUSTER_ETIMEDOUT;
    pthread_mutex_unlock(&cl->mu);
    return rc;
}

static void op_release(struct cluster *cl, struct op *op)
{
    pthread_mutex_lock(&cl->mu);
    op_unref_locked(op);
    pthread_mutex_unlock(&cl->mu);
}

/* A free lane, else the next one in turn (waiting for it). */
static struct lane *lane_take(struct cluster *cl)
{
    for (size_t i = 0; i < LANES; i++)
        if (pthread_mutex_trylock(&cl->lanes[i].mu) == 0)
            return &cl->lanes[i];
    struct lane *ln = &cl->lanes[atomic_fetch_add(&cl->lane_next, 1) % LANES];
    pthread_mutex_lock(&ln->mu);
    return ln;
}

int cluster_submit(cluster_t *cl, const uint8_t *payload, size_t len,
                   unsigned timeout_ms, uint8_t **res, size_t *reslen)
{
    if (res != NULL)
        *res = NULL;
    if (reslen != NULL)
        *reslen = 0;
    if (cl == NULL || (payload == NULL && len > 0) || len > ENTRY_PAYLOAD_MAX)
        return CLUSTER_EINVAL;
    int rc = enter(cl);
    if (rc != 0)
        return rc;
    struct lane *ln = lane_take(cl);
    struct op *op = op_new(OP_SUBMIT, timeout_ms);
    if (op == NULL) {
        pthread_mutex_unlock(&ln->mu);
        leave(cl);
        return CLUSTER_ENOMEM;
    }
    op->origin = ln->origin;
    op->seq = ++ln->seq;
    op->entry = entry_frame(op->origin, op->seq, payload, len, &op->entry_len);
    if (op->entry == NULL) {
        free(op);
        pthread_mutex_unlock(&ln->mu);
        leave(cl);
        return CLUSTER_ENOMEM;
    }
    rc = op_run(cl, op);
    if (rc == 0 && res != NULL) {
        pthread_mutex_lock(&cl->mu);
        *res = op->res;
        if (reslen != NULL)
            *reslen = op->reslen;
        op->res = NULL;
        pthread_mutex_unlock(&cl->mu);
    }
    op_release(cl, op);
    pthread_mutex_unlock(&ln->mu);
    leave(cl);
    return rc;
}

int cluster_raft_start(cluster_t *cl)
{
    if (cl == NULL)
        return CLUSTER_EINVAL;
    int rc = enter(cl);
    if (rc != 0)
        return rc;
    struct op *op = op_new(OP_RAFT_START, 30000);
    if (op == NULL) {
        leave(cl);
        return CLUSTER_ENOMEM;
    }
    rc = op_run(cl, op);
    op_release(cl, op);
    leave(cl);
    return rc;
}

int cluster_sync(cluster_t *cl, unsigned timeout_ms)
{
    if (cl == NULL)
        return CLUSTER_EINVAL;
    int rc = enter(cl);
    if (rc != 0)
        return rc;
    struct op *op = op_new(OP_SYNC, timeout_ms);
    if (op == NULL) {
        leave(cl);
        return CLUSTER_ENOMEM;
    }
    rc = op_run(cl, op);
    op_release(cl, op);
    leave(cl);
    return rc;
}

static int rpc_run(cluster_t *cl, uint64_t peer, const char *address,
                   const char *source, const uint8_t *req, size_t len,
                   unsigned timeout_ms, uint8_t **resp, size_t *resplen)
{
    if (resp != NULL)
        *resp = NULL;
    if (resplen != NULL)
        *resplen = 0;
    if (cl == NULL || (req == NULL && len > 0) || len > ENTRY_PAYLOAD_MAX ||
        (address != NULL &&
         strnlen(address, CLUSTER_ADDRESS_MAX + 1) > CLUSTER_ADDRESS_MAX))
        return CLUSTER_EINVAL;
    if (source != NULL &&
        (address == NULL || !valid_address(address) ||
         !valid_cluster_id(source) || strcmp(source, cl->cfg.cluster_id) == 0))
        return CLUSTER_EINVAL;
    int rc = enter(cl);
    if (rc != 0)
        return rc;
    struct op *op = op_new(OP_RPC, timeout_ms);
    if (op == NULL) {
        leave(cl);
        return CLUSTER_ENOMEM;
    }
    op->peer = peer;
    if (address != NULL)
        snprintf(op->address, sizeof op->address, "%s", address);
    if (source != NULL)
        snprintf(op->source, sizeof op->source, "%s", source);
    op->req = malloc(len ? len : 1);
    if (op->req == NULL) {
        free(op);
        leave(cl);
        return CLUSTER_ENOMEM;
    }
    if (len > 0)
        memcpy(op->req, req, len);
    op->reqlen = len;
    rc = op_run(cl, op);
    if (rc == 0) {
        pthread_mutex_lock(&cl->mu);
        if (resp != NULL) {
            *resp = op->res;
            op->res = NULL;
        }
        if (resplen != NULL)
            *resplen = op->reslen;
        pthread_mutex_unlock(&cl->mu);
    }
    op_release(cl, op);
    leave(cl);
    return rc;
}

int cluster_status(cluster_t *cl, struct cluster_status *st)
{
    if (cl == NULL || st == NULL)
        return CLUSTER_EINVAL;
    pthread_mutex_lock(&cl->mu);
    *st = cl->status;
    int dead = cl->dead;
    pthread_mutex_unlock(&cl->mu);
    return dead;
}

int cluster_rpc(cluster_t *cl, uint64_t peer, const char *address,
                const uint8_t *req, size_t len, unsigned timeout_ms,
                uint8_t **resp, size_t *resplen)
{
    return rpc_run(cl, peer, address, NULL, req, len, timeout_ms, resp,
                   resplen);
}

int cluster_rpc_source(cluster_t *cl, const char *source, const char *address,
                       const uint8_t *req, size_t len, unsigned timeout_ms,
                       uint8_t **resp, size_t *resplen)
{
    if (source == NULL) {
        if (resp != NULL)
            *resp = NULL;
        if (resplen != NULL)
            *resplen = 0;
        return CLUSTER_EINVAL;
    }
    return rpc_run(cl, 0, address, source, req, len, timeout_ms, resp, resplen);
}

static int membership(cluster_t *cl, enum op_kind kind, uint64_t id,
                      const char *address, unsigned timeout_ms)
{
    if (cl == NULL || id == 0)
        return CLUSTER_EINVAL;
    if (kind == OP_ADD && (address == NULL || !valid_address(address)))
        return CLUSTER_EINVAL;
    int rc = enter(cl);
    if (rc != 0)
        return rc;
    struct op *op = op_new(kind, timeout_ms);
    if (op == NULL) {
        leave(cl);
        return CLUSTER_ENOMEM;
    }
    op->node = id;
    if (address != NULL)
        snprintf(op->address, sizeof op->address, "%s", address);
    rc = op_run(cl, op);
    op_release(cl, op);
    leave(cl);
    return rc;
}

int cluster_add(cluster_t *cl, uint64_t id, const char *address,
                unsigned timeout_ms)
{
    return membership(cl, OP_ADD, id, address, timeout_ms);
}

int cluster_remove(cluster_t *cl, uint64_t id, unsigned timeout_ms)
{
    return membership(cl, OP_REMOVE, id, NULL, timeout_ms);
}

int cluster_transfer(cluster_t *cl, uint64_t id, unsigned timeout_ms)
{
    return membership(cl, OP_TRANSFER, id, NULL, timeout_ms);
}

/* ---------------------------------------------------------- test hooks */

void cluster_test_drop_replies(cluster_t *cl, unsigned n)
{
    pthread_mutex_lock(&cl->mu);
    cl->test_drop_replies = n;
    pthread_mutex_unlock(&cl->mu);
}

uint64_t cluster_test_refusals(cluster_t *cl)
{
    pthread_mutex_lock(&cl->mu);
    uint64_t v = cl->status.peers_refused;
    pthread_mutex_unlock(&cl->mu);
    return v;
}
