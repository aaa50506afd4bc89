/*
 * tls.h - node-to-node links over mutual TLS 1.3 on the engine's libuv
 * loop (internal to src/cluster/).
 *
 * One TCP port carries two kinds of connection, told apart by the version
 * word of the preamble the connector sends inside TLS:
 *  - raft streams: after the handshake and the preamble/ack, a socketpair
 *    end is handed to libraft (struct raft_uv_transport), and plaintext is
 *    pumped between it and TLS;
 *  - request channels: length-prefixed frames (u32 little-endian length,
 *    then a protobuf-c message of cluster.proto) for the engine itself.
 * Every call runs on the loop thread.
 */
#ifndef NIMBUS_CLUSTER_TLS_H
#define NIMBUS_CLUSTER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "cluster/cluster.h"

/* The largest request frame (a forwarded entry, an rpc payload). */
#define CTLS_FRAME_MAX (16u << 20)

struct ctls;
struct ctls_chan;

struct ctls_config {
    uv_loop_t *loop;
    const char *cluster_id;
    uint64_t node_id;
    const char *address;         /* "host:port" to listen on */
    const char *ca, *cert, *key; /* PEM files */
    /* Other clusters (clones) whose nodes, under the same CA, may open
     * request channels here: never raft streams, and admit() is not asked
     * (they are never members). */
    char clones[CLUSTER_CLONES_MAX][CLUSTER_ID_MAX + 1];
    size_t nclones;
    /* Whether an inbound peer of this cluster may connect at all (its id
     * is a member or is being added). */
    bool (*admit)(void *ctx, uint64_t id);
    /* An inbound request channel from peer is open; clone is NULL for a
     * node of this cluster, else the clone's cluster id (peer is then an
     * id of that cluster). The callee sets its callbacks with
     * ctls_chan_set. */
    void (*chan_accept)(void *ctx, struct ctls_chan *ch, uint64_t peer,
                        const char *clone);
    void *ctx;
};

/* A frame arrived (the buffer is only valid during the call), or the
 * channel closed (after which it is freed: forget it). */
typedef void (*ctls_frame_cb)(void *data, struct ctls_chan *ch,
                              const uint8_t *buf, size_t len);
typedef void (*ctls_close_cb)(void *data, struct ctls_chan *ch);

struct ctls_stats {
    uint64_t refused;   /* peers refused (certificate, id, membership) */
    uint64_t hs_failed; /* handshakes that failed or timed out */
    uint64_t over_cap;  /* connections dropped by the handshake caps */
    uint64_t tunnels;   /* raft streams currently open */
    uint64_t channels;  /* request channels currently open */
    uint64_t bytes_in, bytes_out; /* TLS records */
};

/* Loads the PKI and fills t (libraft's transport). Returns 0 or -1. */
int ctls_init(struct raft_uv_transport *t, const struct ctls_config *cfg);
/* Listens (before raft does: request channels work without raft; raft
 * streams are refused until libraft calls listen). 0 or a libuv error. */
int ctls_listen(struct ctls *tl);
/* Closes the transport when raft never started (else raft_close does). */
void ctls_shutdown(struct raft_uv_transport *t, raft_uv_transport_close_cb cb);
/* Frees what ctls_init made, once libraft's close of t has completed. */
void ctls_free(struct raft_uv_transport *t);
struct ctls *ctls_of(struct raft_uv_transport *t);
void ctls_get_stats(struct ctls *tl, struct ctls_stats *st);
/* Closes the inbound links of peers that admit() no longer lets in (after
 * a membership change: a removed node's open links go too). */
void ctls_recheck(struct ctls *tl);

/* A request channel to peer at address (frames sent before it is open
 * are queued); peer 0: whichever member of the cluster answers there. NULL if
 * it cannot even be started. The close callback runs once, asynchronously,
 * whatever happens. cluster: NULL for this cluster's nodes, else the id of
 * the other cluster the peer's certificate must name (a clone asking its
 * source; that link only). */
struct ctls_chan *ctls_chan_open(struct ctls *tl, uint64_t peer,
                                 const char *address, const char *cluster,
                                 ctls_frame_cb on_frame, ctls_close_cb on_close,
                                 void *data);
void ctls_chan_set(struct ctls_chan *ch, ctls_frame_cb on_frame,
                   ctls_close_cb on_close, void *data);
/* Queues one frame; -1 (and the channel closes) if it is too big or the
 * channel's queue is full. */
int ctls_chan_send(struct ctls_chan *ch, const uint8_t *buf, size_t len);
void ctls_chan_close(struct ctls_chan *ch);
uint64_t ctls_chan_peer(const struct ctls_chan *ch);
/* Outbound: whether the link closed because a side refused the other
 * after authenticating (a certificate the other did not accept, or a
 * close before the ack): trying again will not help. Valid in the close
 * callback. */
bool ctls_chan_refused(const struct ctls_chan *ch);
/* Counts a refusal on an open channel (a request the engine will not
 * serve) in the stats and logs it with the same rate limit; the channel
 * stays open (the peer gets its answer). */
void ctls_chan_note_refusal(struct ctls_chan *ch, const char *why);

#endif
