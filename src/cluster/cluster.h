/*
 * cluster.h - the consensus engine behind a small interface (section 11).
 *
 * nimbusd links this; the PKCS#11 module never does. Only src/cluster/
 * includes raft.h, raft/uv.h and uv.h, so that the engine can later move
 * to a maintained fork of the same API without touching its callers.
 *
 * One engine per nimbusd: a libuv loop on a thread of its own runs libraft
 * and its TLS 1.3 transport (node certificates under the cluster CA; the
 * raft id is bound to the certificate's SAN URI
 * urn:nimbus:cluster:<cluster-id>:node:<id>). Every raft call happens on
 * that thread; the functions below may be called from any thread and hand
 * their work to it.
 *
 * SIGPIPE: the engine writes to sockets whose peer may be gone (libuv
 * uses write(), and libraft learns of a dead peer from EPIPE): the
 * process must ignore SIGPIPE before cluster_start (nimbusd does, once,
 * at start-up).
 *
 * Entries: the engine frames a caller's payload as (origin, seq, payload)
 * and pads it to a multiple of 8 bytes (libraft 0.15 needs it). origin is
 * random per engine start and submission lane (8 lanes: up to 8 entries
 * of a node in flight at once, one per lane), seq counts the lane's
 * submissions from 1 and an origin's entries are applied in seq order;
 * the state machine keeps the last (origin, seq) it applied with its
 * result, so an entry resent after an ambiguous failure (the leader lost,
 * a forward cut) is applied once and its first result is returned again
 * (a seq below the last one is a stale resend: applied never). Each
 * start of a node brings 8 new origins.
 *
 * Return values: 0 on success, or a negative CLUSTER_E* code.
 */
#ifndef NIMBUS_CLUSTER_H
#define NIMBUS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cluster cluster_t;

#define CLUSTER_ENOMEM (-1)
#define CLUSTER_EINVAL (-2)     /* a bad argument or config */
#define CLUSTER_ETIMEDOUT (-3)  /* no answer in time: the outcome is unknown */
#define CLUSTER_ENOLEADER (-4)  /* no leader reachable */
#define CLUSTER_ENOTFOUND (-5)  /* no such node */
#define CLUSTER_EBUSY (-6)      /* a membership change is under way */
#define CLUSTER_ESTOPPED (-7)   /* the engine stops or has stopped */
#define CLUSTER_EIO (-8)        /* the state machine failed: the node stops */
#define CLUSTER_EREFUSED (-9)   /* the peer refused (e.g. not a member) */

#define CLUSTER_ADDRESS_MAX 255 /* "host:port" */
#define CLUSTER_ID_MAX 64       /* the cluster id: [0-9a-zA-Z-], 1..64 chars */
#define CLUSTER_NODES_MAX 16
#define CLUSTER_CLONES_MAX 8
/* The largest payload of cluster_submit and request of cluster_rpc
 * (16 MiB less room for the framing): larger is CLUSTER_EINVAL. */
#define CLUSTER_PAYLOAD_MAX ((size_t)16 * 1024 * 1024 - 4096)

/*
 * The state machine the engine drives. apply, snapshot and restore run on
 * the engine's thread, one at a time, in log order.
 */
struct cluster_fsm {
    void *ctx;
    /*
     * Applies the committed entry at index. An index at or below the
     * state machine's applied index is skipped (a replay after restart),
     * and an (origin, seq) already applied is not applied again: both set
     * *res to the result recorded the first time when there is one, else
     * NULL. *res (malloc'd, may be NULL) is the result handed to the
     * submitter on this node. Returns 0, also when the entry's own
     * operation failed (that is a result); -1 on an I/O failure, after
     * which the engine stops the node (its state is no longer known).
     */
    int (*apply)(void *ctx, uint64_t index, uint64_t origin, uint64_t seq,
                 const uint8_t *payload, size_t len, uint8_t **res,
                 size_t *reslen);
    /* The applied index the state machine holds (at start, to skip
     * replays; the engine asks once, before raft starts). */
    uint64_t (*applied)(void *ctx);
    /* The whole replicated state as of the last applied entry (*buf
     * malloc'd), and its inverse: replaces the state with buf, which was
     * made by snapshot on some node, and sets the applied index to the
     * one snapshot recorded. 0 or -1. */
    int (*snapshot)(void *ctx, uint8_t **buf, size_t *len);
    int (*restore)(void *ctx, const uint8_t *buf, size_t len);
    /*
     * A request from another node (authenticated by its certificate: peer
     * is its raft id), other than the forwarding of entries, which the
     * engine handles itself. clone is NULL for a node of this cluster,
     * else the id of the clone cluster (cluster_config.clones) the peer
     * belongs to: peer is then an id of that cluster, never a member
     * here. *resp malloc'd. 0, or -1 to refuse (the requester gets
     * CLUSTER_EREFUSED; a clone's refusal is counted in peers_refused).
     * May be NULL.
     */
    int (*rpc)(void *ctx, uint64_t peer, const char *clone, const uint8_t *req,
               size_t len, uint8_t **resp, size_t *resplen);
};

struct cluster_config {
    char cluster_id[CLUSTER_ID_MAX + 1];
    uint64_t node_id;                        /* 1.. */
    char address[CLUSTER_ADDRESS_MAX + 1];   /* "127.0.0.1:21001": listen */
    char dir[4096];                          /* the raft directory */
    char ca[4096], cert[4096], key[4096];    /* PEM files */
    /*
     * bootstrap: on first start (an empty raft dir), make a one-node
     * cluster of this node. Otherwise the node starts unjoined and waits
     * for a member's addNode. A non-empty dir restarts as it was.
     */
    bool bootstrap;
    /* Milliseconds; 0: the engine's defaults (election 300, heartbeat 50,
     * chosen for sub-second failover on loopback and a LAN). */
    unsigned election_timeout, heartbeat_timeout;
    /* Entries between snapshots; 0: the engine's default. */
    unsigned snapshot_threshold;
    /*
     * defer_raft: cluster_start brings up the thread, the transport and
     * cluster_rpc, but not raft (inbound raft streams are refused until
     * cluster_raft_start). A node that joins uses it to fetch the cluster
     * masking key (cluster_rpc) before it can apply any entry.
     */
    bool defer_raft;
    /*
     * Clones: ids of other clusters (not this one's) whose nodes, with
     * certificates of the same CA, may open request channels to this node
     * (fsm->rpc, told their cluster id), and nothing else: a raft stream
     * or any other request from them is refused and counted.
     */
    char clones[CLUSTER_CLONES_MAX][CLUSTER_ID_MAX + 1];
    size_t nclones;
};

/* Starts the engine (its thread, the listener, raft). */
int cluster_start(const struct cluster_config *cfg,
                  const struct cluster_fsm *fsm, cluster_t **out);
/* Starts raft after cluster_start with defer_raft (else CLUSTER_EINVAL). */
int cluster_raft_start(cluster_t *cl);
/* Stops raft and the thread; waits for them. Submitters still waiting get
 * CLUSTER_ESTOPPED. NULL is fine. */
void cluster_stop(cluster_t *cl);

/*
 * Any thread: appends payload to the log (on the leader, or forwarded to
 * it over the node-to-node TLS link), waits until this node has applied
 * it, and returns its result (*res malloc'd, may be NULL). After
 * CLUSTER_ETIMEDOUT the entry may still be applied later (never twice).
 */
int cluster_submit(cluster_t *cl, const uint8_t *payload, size_t len,
                   unsigned timeout_ms, uint8_t **res, size_t *reslen);

/* Any thread: waits until this node has applied every entry the leader
 * had committed when the call began (reads that must be current). */
int cluster_sync(cluster_t *cl, unsigned timeout_ms);

/* Any thread: a request to a member answered by its fsm->rpc: to peer
 * at address, or with peer 0 to the leader (address ignored). Used by a
 * node that joins to fetch what the log does not carry (the cluster
 * masking key): it works before cluster_raft_start, and the member
 * answers a node that is in the configuration (added) only: until then
 * the call ends with CLUSTER_EREFUSED as soon as the member has refused
 * the link or the request (the caller asks again later). */
int cluster_rpc(cluster_t *cl, uint64_t peer, const char *address,
                const uint8_t *req, size_t len, unsigned timeout_ms,
                uint8_t **resp, size_t *resplen);

/*
 * Any thread: a request to a node of ANOTHER cluster, source, at address,
 * answered by its fsm->rpc (a clone's first node fetching the cluster key
 * of the cluster it is made from). That link alone accepts a certificate
 * naming source (same CA); the source lets it in only if its clones list
 * names this cluster. Works before cluster_raft_start. CLUSTER_EREFUSED
 * when the source refused this node (its certificate or the request):
 * asking again will not help; other errors (no answer yet) may pass.
 */
int cluster_rpc_source(cluster_t *cl, const char *source, const char *address,
                       const uint8_t *req, size_t len, unsigned timeout_ms,
                       uint8_t **resp, size_t *resplen);

enum cluster_role {
    CLUSTER_ROLE_UNAVAILABLE = 0,
    CLUSTER_ROLE_FOLLOWER,
    CLUSTER_ROLE_CANDIDATE,
    CLUSTER_ROLE_LEADER,
};

enum cluster_member {
    CLUSTER_MEMBER_VOTER = 0,
    CLUSTER_MEMBER_STANDBY, /* replicated, does not vote */
    CLUSTER_MEMBER_SPARE,   /* catching up before it becomes a voter */
};

struct cluster_node {
    uint64_t id;
    char address[CLUSTER_ADDRESS_MAX + 1];
    enum cluster_member member;
    /* Leader only (else 0): the last index known replicated there. */
    uint64_t match_index;
};

struct cluster_status {
    uint64_t node_id;
    enum cluster_role role;
    uint64_t term;
    uint64_t leader_id; /* 0: none known */
    char leader_address[CLUSTER_ADDRESS_MAX + 1];
    uint64_t commit_index, applied_index, last_index;
    size_t nnodes;
    struct cluster_node nodes[CLUSTER_NODES_MAX]; /* the configuration */
    /* Connections this node's transport refused since it started: another
     * CA's or cluster's certificate, an id that is not the certificate's,
     * a node that is not a member, failed or timed-out handshakes, over
     * the handshake caps (each also logged, at most once a second per
     * source address). */
    uint64_t peers_refused;
};

/* Any thread: a consistent copy of the engine's view. */
int cluster_status(cluster_t *cl, struct cluster_status *st);

/*
 * Membership (any node: forwarded to the leader). add: the node joins as
 * a spare, catches up (a snapshot, then the log) and is promoted to voter
 * once its match index reaches the commit index seen when it was added;
 * returns when it is a voter or timeout_ms passed. remove and transfer
 * return once the leader has committed / handed over.
 */
int cluster_add(cluster_t *cl, uint64_t id, const char *address,
                unsigned timeout_ms);
int cluster_remove(cluster_t *cl, uint64_t id, unsigned timeout_ms);
int cluster_transfer(cluster_t *cl, uint64_t id, unsigned timeout_ms);

const char *cluster_strerror(int err);

#endif
