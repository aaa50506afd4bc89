/*
 * server.h - the server side of the wire: one request frame's payload in,
 * one reply payload out, the hsm.h call in between. nimbusd
 * (src/daemon/) owns sockets and threads; this file owns meaning.
 *
 * Trust: nothing from the client is trusted. Every length, count, handle
 * and session id is checked against the limits and against what this
 * connection owns before it is used; an id belonging to another client is
 * answered exactly as one that never existed.
 *
 * A "connection" (one application: its login and sessions, an hsm_conn_t)
 * may be reached over several channels (sockets) so that one
 * multi-threaded application runs calls in parallel: the first channel's
 * handshake creates the connection and returns a random attach token;
 * further channels from the same peer (same uid, or same client
 * certificate) attach to it with that token. The connection ends when its
 * last channel closes.
 */
#ifndef NIMBUS_WIRE_SERVER_H
#define NIMBUS_WIRE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "common/conf.h"
#include "hsm/hsm.h"
#include "wire/proto.h" /* wire_buf_t */
#include "wire/transport.h"

typedef struct wire_server wire_server_t;
typedef struct wire_chan wire_chan_t;

/* The daemon's server state over an open token. */
CK_RV wire_server_new(hsm_t *hsm, const struct config *cfg,
                      wire_server_t **out);
void wire_server_free(wire_server_t *srv);

/*
 * The cluster this server's node belongs to, as nimbusd hands it over
 * (the wire never links the engine). status and the membership calls
 * return 0 or a CLUSTER_E* code of cluster.h, which the server maps to a
 * CK_RV (nimbus.proto, ClusterStatusReq, lists them); digest returns the
 * store's CK_RV. Each may block (a membership change waits for the
 * leader); they are called from channel threads, several at once.
 */
struct wire_cluster_ops {
    void *ctx;
    int (*status)(void *ctx, struct cluster_status *st);
    int (*add)(void *ctx, uint64_t id, const char *address);
    int (*remove)(void *ctx, uint64_t id);
    int (*transfer)(void *ctx, uint64_t id);
    CK_RV (*digest)(void *ctx, uint8_t out[32], uint64_t *applied);
    /* The cluster's id (config cluster_id); NULL: not told. */
    const char *cluster_id;
};

/*
 * Makes srv answer the cluster calls through ops, which is kept by
 * reference and must outlive srv (NULL: not in a cluster, the calls
 * answer CKR_FUNCTION_NOT_SUPPORTED). May be set while channels run
 * (a node that joins later): a call sees the old or the new table.
 */
void wire_server_set_cluster(wire_server_t *srv,
                             const struct wire_cluster_ops *ops);

/* A new channel from peer (the transport proved who it is). NULL: out of
 * memory or over max_connections (the daemon closes the socket). */
wire_chan_t *wire_chan_new(wire_server_t *srv, const wire_peer_t *peer);
/*
 * One request payload -> one reply payload (*resp malloc'd). false: the
 * channel broke the protocol (no handshake first, undecodable frame): the
 * daemon sends *resp if not NULL and closes the socket.
 */
bool wire_chan_handle(wire_chan_t *ch, const uint8_t *req, size_t len,
                      uint8_t **resp, size_t *resp_len);
/* The same, the reply packed into out (kept across calls by the daemon;
 * grown when needed): *have says whether out holds a reply of *resp_len
 * bytes to send. */
bool wire_chan_handle_into(wire_chan_t *ch, const uint8_t *req, size_t len,
                           wire_buf_t *out, size_t *resp_len, bool *have);
/*
 * The same without copying the bulk: the reply as pieces in out (kept by
 * the daemon across calls) that point into req and into the call's own
 * buffers, so req must stay as it is until wire_chan_reply_done, which
 * the daemon calls once the reply is written (or not) to wipe and free
 * what the call held and out's scratch.
 */
bool wire_chan_handle_vec(wire_chan_t *ch, const uint8_t *req, size_t len,
                          wire_vec_t *out, bool *have);
void wire_chan_reply_done(wire_chan_t *ch, wire_vec_t *out);
/* The descriptor the reply just made must pass (the shared bulk region,
 * protocol minor 3), or -1; the caller closes it once sent. One not taken
 * before wire_chan_reply_done is closed there. */
int wire_chan_take_fd(wire_chan_t *ch);
/* Ends the channel (and the connection when it was the last). Waits for
 * nothing: the daemon calls it from the channel's own thread. */
void wire_chan_free(wire_chan_t *ch);

#endif
