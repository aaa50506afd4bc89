/*
 * test_engine.c - three cluster engines (cluster.h) in one process, each
 * on its own loop thread, over the TLS transport on 127.0.0.1, driving an
 * in-memory state machine that dedups (origin, seq) as the store does.
 *
 *   test_engine PKI_DIR
 * PKI_DIR is made by tests/cluster/mkpki.sh (cluster id "t1", nodes
 * 1 2 3), with PKI_DIR/clone made by it under the same CA for the clone
 * cluster "t1-clone" (node 1): engine.sh does both. Exit 0 when every
 * check held.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cluster/cluster.h"
#include "cluster/cluster_test.h"
#include "common/log.h"
#include "src/cluster/cluster.pb-c.h"

#define CLUSTER_ID "t1"
#define CLONE_ID "t1-clone" /* in the members' clones list */
#define N 3
#define TMO 10000

static int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------ the fake state machine */

#define LOG_MAX 4096
#define PAYLOAD_MAX 64
#define ORIGINS_MAX 64

struct origin_rec {
    uint64_t origin, seq;
    char result[32];
};

/* What a store keeps (it survives the engine's stop and start). */
struct fake {
    pthread_mutex_t mu;
    uint64_t applied;
    size_t n; /* entries applied */
    char log[LOG_MAX][PAYLOAD_MAX];
    size_t norigins;
    struct origin_rec origins[ORIGINS_MAX];
    unsigned dups, restores, snapshots;
    bool fail_apply; /* the next apply is an I/O failure */
    uint64_t rpc_peer;
    char rpc_clone[CLUSTER_ID_MAX + 1]; /* "" for a node of this cluster */
};

static struct origin_rec *origin_find(struct fake *f, uint64_t origin)
{
    for (size_t i = 0; i < f->norigins; i++)
        if (f->origins[i].origin == origin)
            return &f->origins[i];
    if (f->norigins == ORIGINS_MAX)
        return NULL;
    struct origin_rec *r = &f->origins[f->norigins++];
    memset(r, 0, sizeof *r);
    r->origin = origin;
    return r;
}

static int fake_apply(void *ctx, uint64_t index, uint64_t origin, uint64_t seq,
                      const uint8_t *payload, size_t len, uint8_t **res,
                      size_t *reslen)
{
    struct fake *f = ctx;
    int rv = 0;
    *res = NULL;
    *reslen = 0;
    pthread_mutex_lock(&f->mu);
    if (index <= f->applied)
        goto out;
    if (f->fail_apply) {
        rv = -1;
        goto out;
    }
    struct origin_rec *o = origin_find(f, origin);
    if (o == NULL || f->n == LOG_MAX) {
        rv = -1;
        goto out;
    }
    f->applied = index;
    if (seq <= o->seq) {
        f->dups++;
        if (seq == o->seq) {
            *res = (uint8_t *)strdup(o->result);
            *reslen = strlen(o->result);
        }
        goto out;
    }
    if (len < PAYLOAD_MAX) {
        memcpy(f->log[f->n], payload, len);
        f->log[f->n][len] = 0;
    } else { /* kept as its length and a sum of its bytes */
        unsigned sum = 0;
        for (size_t i = 0; i < len; i++)
            sum = sum * 31 + payload[i];
        snprintf(f->log[f->n], PAYLOAD_MAX, "big:%zu:%08x", len, sum);
    }
    f->n++;
    o->seq = seq;
    snprintf(o->result, sizeof o->result, "ok:%zu", f->n);
    *res = (uint8_t *)strdup(o->result);
    *reslen = strlen(o->result);
out:
    pthread_mutex_unlock(&f->mu);
    return rv;
}

static uint64_t fake_applied(void *ctx)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    uint64_t a = f->applied;
    pthread_mutex_unlock(&f->mu);
    return a;
}

/* The snapshot is the struct without its mutex. */
static int fake_snapshot(void *ctx, uint8_t **buf, size_t *len)
{
    struct fake *f = ctx;
    size_t off = sizeof f->mu;
    *buf = malloc(sizeof *f - off);
    if (*buf == NULL)
        return -1;
    pthread_mutex_lock(&f->mu);
    memcpy(*buf, (uint8_t *)f + off, sizeof *f - off);
    f->snapshots++;
    pthread_mutex_unlock(&f->mu);
    *len = sizeof *f - off;
    return 0;
}

static int fake_restore(void *ctx, const uint8_t *buf, size_t len)
{
    struct fake *f = ctx;
    size_t off = sizeof f->mu;
    if (len != sizeof *f - off)
        return -1;
    pthread_mutex_lock(&f->mu);
    unsigned restores = f->restores, snapshots = f->snapshots;
    memcpy((uint8_t *)f + off, buf, len);
    f->restores = restores + 1;
    f->snapshots = snapshots;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int fake_rpc(void *ctx, uint64_t peer, const char *clone,
                    const uint8_t *req, size_t len, uint8_t **resp,
                    size_t *resplen)
{
    struct fake *f = ctx;
    if (len == 6 && memcmp(req, "refuse", 6) == 0)
        return -1;
    pthread_mutex_lock(&f->mu);
    f->rpc_peer = peer;
    snprintf(f->rpc_clone, sizeof f->rpc_clone, "%s", clone ? clone : "");
    pthread_mutex_unlock(&f->mu);
    *resp = malloc(len + 5);
    memcpy(*resp, "pong:", 5);
    memcpy(*resp + 5, req, len);
    *resplen = len + 5;
    return 0;
}

/* ------------------------------------------------------------- nodes */

struct node {
    uint64_t id;
    struct cluster_config cfg;
    struct fake fsm;
    cluster_t *cl;
};

static struct node nodes[N + 1];
static char pki[1024], tmpdir[1024];
static unsigned port_base;

static int node_start(struct node *nd, bool bootstrap)
{
    struct cluster_fsm f = {
        .ctx = &nd->fsm,
        .apply = fake_apply,
        .applied = fake_applied,
        .snapshot = fake_snapshot,
        .restore = fake_restore,
        .rpc = fake_rpc,
    };
    nd->cfg.bootstrap = bootstrap;
    return cluster_start(&nd->cfg, &f, &nd->cl);
}

static void node_init(struct node *nd, uint64_t id)
{
    memset(nd, 0, sizeof *nd);
    pthread_mutex_init(&nd->fsm.mu, NULL);
    nd->id = id;
    snprintf(nd->cfg.cluster_id, sizeof nd->cfg.cluster_id, "%s", CLUSTER_ID);
    nd->cfg.node_id = id;
    snprintf(nd->cfg.address, sizeof nd->cfg.address, "127.0.0.1:%u",
             port_base + (unsigned)id);
    snprintf(nd->cfg.dir, sizeof nd->cfg.dir, "%s/n%" PRIu64, tmpdir, id);
    mkdir(nd->cfg.dir, 0700);
    snprintf(nd->cfg.ca, sizeof nd->cfg.ca, "%s/ca.crt", pki);
    snprintf(nd->cfg.cert, sizeof nd->cfg.cert, "%s/node%" PRIu64 ".crt", pki,
             id);
    snprintf(nd->cfg.key, sizeof nd->cfg.key, "%s/node%" PRIu64 ".key", pki,
             id);
    /* low: snapshots are taken and installed during the test */
    nd->cfg.snapshot_threshold = 64;
    /* above the defaults: on a loaded machine (sanitizers, valgrind, the
     * other suites) a 300 ms election timeout can end a term by itself,
     * and the hostile checks compare terms */
    nd->cfg.election_timeout = 1000;
    nd->cfg.heartbeat_timeout = 100;
    /* the clone cluster's nodes may ask the members (rpc only) */
    snprintf(nd->cfg.clones[0], sizeof nd->cfg.clones[0], "%s", CLONE_ID);
    nd->cfg.nclones = 1;
}

static void node_stop(struct node *nd)
{
    cluster_stop(nd->cl);
    nd->cl = NULL;
}

/* The leader as the running nodes agree on it, within ms; 0 if none. */
static uint64_t wait_leader(unsigned ms, uint64_t not )
{
    uint64_t end = now_ms() + ms;
    do {
        for (int i = 1; i <= N; i++) {
            struct cluster_status st;
            if (nodes[i].cl == NULL || cluster_status(nodes[i].cl, &st) != 0)
                continue;
            if (st.role == CLUSTER_ROLE_LEADER && st.node_id != not )
                return st.node_id;
        }
        sleep_ms(5);
    } while (now_ms() < end);
    return 0;
}

static int submit(struct node *nd, const char *text, char *res, size_t rlen)
{
    uint8_t *r = NULL;
    size_t n = 0;
    int rc = cluster_submit(nd->cl, (const uint8_t *)text, strlen(text), TMO,
                            &r, &n);
    if (res != NULL) {
        snprintf(res, rlen, "%.*s", (int)n, r ? (char *)r : "");
    }
    free(r);
    return rc;
}

/* Every running node has the same log as the first one after a sync. */
static void check_same_logs(const char *when)
{
    struct node *ref = NULL;
    for (int i = 1; i <= N; i++) {
        if (nodes[i].cl == NULL)
            continue;
        int rc = cluster_sync(nodes[i].cl, TMO);
        CHECK(rc == 0, "%s: sync on node %d: %s", when, i,
              cluster_strerror(rc));
        if (ref == NULL) {
            ref = &nodes[i];
            continue;
        }
        pthread_mutex_lock(&ref->fsm.mu);
        pthread_mutex_lock(&nodes[i].fsm.mu);
        CHECK(ref->fsm.n == nodes[i].fsm.n,
              "%s: node %" PRIu64 " applied %zu entries, node %d %zu", when,
              ref->id, ref->fsm.n, i, nodes[i].fsm.n);
        size_t n = ref->fsm.n < nodes[i].fsm.n ? ref->fsm.n : nodes[i].fsm.n;
        size_t diff = 0;
        for (size_t k = 0; k < n; k++)
            if (strcmp(ref->fsm.log[k], nodes[i].fsm.log[k]) != 0)
                diff++;
        CHECK(diff == 0, "%s: node %d differs in %zu entries", when, i, diff);
        pthread_mutex_unlock(&nodes[i].fsm.mu);
        pthread_mutex_unlock(&ref->fsm.mu);
    }
}

/* How many times text is in node's log. */
static size_t count_in_log(struct node *nd, const char *text)
{
    size_t c = 0;
    pthread_mutex_lock(&nd->fsm.mu);
    for (size_t k = 0; k < nd->fsm.n; k++)
        if (strcmp(nd->fsm.log[k], text) == 0)
            c++;
    pthread_mutex_unlock(&nd->fsm.mu);
    return c;
}

struct worker {
    struct node *nd;
    int tag, count, errors;
    pthread_t t;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->count; i++) {
        char text[48];
        snprintf(text, sizeof text, "w%d-%d", w->tag, i);
        if (submit(w->nd, text, NULL, 0) != 0)
            w->errors++;
    }
    return NULL;
}

struct adder {
    cluster_t *cl;
    uint64_t id;
    char address[CLUSTER_ADDRESS_MAX + 1];
    int rc;
    pthread_t t;
};

static void *adder_main(void *arg)
{
    struct adder *a = arg;
    a->rc = cluster_add(a->cl, a->id, a->address, TMO);
    return NULL;
}

/* ------------------------------------------------------ hostile peers */

/*
 * Dials addr's port with TLS 1.3 and the given certificate (NULL: none),
 * sends a raft preamble claiming claim_id, then (forge) a forged
 * RequestVote with a huge term and the disrupt-leader flag (libraft
 * 0.15's encoding).
 * Returns 1 if the acceptor answered the preamble's ack, 0 if not.
 */
static int hostile_dial(unsigned port, const char *cert, const char *key,
                        uint64_t claim_id, bool forge)
{
    int acked = 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    int fd = -1;
    if (ctx == NULL)
        return -1;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (cert != NULL &&
        (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)) {
        acked = -1;
        goto out;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        acked = -1;
        goto out;
    }
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1)
        goto out; /* refused in the handshake */
    uint8_t msg[24 + 16 + 16 + 40];
    uint64_t v[] = {1, claim_id, 16};
    memset(msg, 0, sizeof msg);
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 8; b++)
            msg[i * 8 + b] = (uint8_t)(v[i] >> (8 * b));
    memcpy(msg + 24, "127.0.0.1:1", 11);
    uint64_t body[] = {3, 40, 1000, claim_id, 1ULL << 40, 999, 1};
    for (int i = 0; i < 7; i++)
        for (int b = 0; b < 8; b++)
            msg[40 + i * 8 + b] = (uint8_t)(body[i] >> (8 * b));
    int mlen = forge ? (int)sizeof msg : 40;
    if (SSL_write(ssl, msg, mlen) != mlen)
        goto out;
    uint8_t ack[8];
    int r = SSL_read(ssl, ack, sizeof ack);
    acked = r == 8 && memcmp(ack, "NIMBOK", 6) == 0;
out:
    if (ssl != NULL)
        SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return acked;
}

static void hostile(uint64_t leader, const char *what, const char *certname,
                    uint64_t claim, bool with_cert)
{
    char cert[1200], key[1200];
    struct cluster_status before, after;
    snprintf(cert, sizeof cert, "%s/%s.crt", pki, certname);
    snprintf(key, sizeof key, "%s/%s.key", pki, certname);
    cluster_status(nodes[leader].cl, &before);
    int acked = hostile_dial(port_base + (unsigned)leader,
                             with_cert ? cert : NULL, key, claim, true);
    CHECK(acked == 0, "%s: the leader let it in (%d)", what, acked);
    sleep_ms(300);
    cluster_status(nodes[leader].cl, &after);
    CHECK(after.role == CLUSTER_ROLE_LEADER && after.term == before.term,
          "%s: the leader was disturbed (term %" PRIu64 " -> %" PRIu64 ")",
          what, before.term, after.term);
    CHECK(after.peers_refused > before.peers_refused,
          "%s: no refusal counted in the status", what);
}

/*
 * A request channel to port with the given certificate: the preamble
 * (version 2, claim_id), then one Request frame (call: 'r' read index,
 * 'f' forward, 'p' rpc with payload), and its Reply's status.
 * Returns 1 if acked and answered (*status, and the payload into resp),
 * 0 if not acked, -1 on a local failure.
 */
static int chan_dial(unsigned port, const char *cert, const char *key,
                     uint64_t claim_id, char call, const char *payload,
                     int *status, char *resp, size_t resplen)
{
    int rc = -1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    int fd = -1;
    uint8_t *buf = NULL;
    if (ctx == NULL)
        return -1;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        goto out;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto out;
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    rc = 0;
    if (SSL_connect(ssl) != 1)
        goto out;
    uint8_t pre[24 + 16];
    uint64_t v[] = {2, claim_id, 16};
    memset(pre, 0, sizeof pre);
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 8; b++)
            pre[i * 8 + b] = (uint8_t)(v[i] >> (8 * b));
    memcpy(pre + 24, "127.0.0.1:1", 11);
    uint8_t ack[8];
    if (SSL_write(ssl, pre, sizeof pre) != (int)sizeof pre ||
        SSL_read(ssl, ack, sizeof ack) != 8 || memcmp(ack, "NIMBOK", 6) != 0)
        goto out;
    rc = -1;
    Nimbus__Cluster__Request rq = NIMBUS__CLUSTER__REQUEST__INIT;
    Nimbus__Cluster__ReadIndex ri = NIMBUS__CLUSTER__READ_INDEX__INIT;
    Nimbus__Cluster__Forward fw = NIMBUS__CLUSTER__FORWARD__INIT;
    Nimbus__Cluster__Rpc rp = NIMBUS__CLUSTER__RPC__INIT;
    uint8_t entry[64];
    rq.id = 7;
    if (call == 'r') {
        rq.call_case = NIMBUS__CLUSTER__REQUEST__CALL_READ_INDEX;
        rq.read_index = &ri;
    } else if (call == 'f') {
        /* origin 1, seq 1, length 4, "evil" and padding */
        memset(entry, 0, sizeof entry);
        entry[0] = 1;
        entry[8] = 1;
        entry[16] = 4;
        memcpy(entry + 24, "evil", 4);
        fw.entry.data = entry;
        fw.entry.len = 32;
        rq.call_case = NIMBUS__CLUSTER__REQUEST__CALL_FORWARD;
        rq.forward = &fw;
    } else {
        rp.payload.data = (uint8_t *)payload;
        rp.payload.len = strlen(payload);
        rq.call_case = NIMBUS__CLUSTER__REQUEST__CALL_RPC;
        rq.rpc = &rp;
    }
    size_t n = protobuf_c_message_get_packed_size(&rq.base);
    buf = malloc(4 + n);
    for (int i = 0; i < 4; i++)
        buf[i] = (uint8_t)(n >> (8 * i));
    protobuf_c_message_pack(&rq.base, buf + 4);
    if (SSL_write(ssl, buf, (int)(4 + n)) != (int)(4 + n))
        goto out;
    uint8_t in[4096];
    size_t got = 0;
    while (got < 4 || got < 4 + ((size_t)in[0] | (size_t)in[1] << 8)) {
        int r = SSL_read(ssl, in + got, (int)(sizeof in - got));
        if (r <= 0)
            goto out;
        got += (size_t)r;
    }
    Nimbus__Cluster__Reply *re = nimbus__cluster__reply__unpack(
        NULL, (size_t)in[0] | (size_t)in[1] << 8, in + 4);
    if (re == NULL)
        goto out;
    *status = re->status;
    if (resp != NULL)
        snprintf(resp, resplen, "%.*s",
                 re->has_payload ? (int)re->payload.len : 0,
                 re->has_payload ? (const char *)re->payload.data : "");
    nimbus__cluster__reply__free_unpacked(re, NULL);
    rc = 1;
out:
    free(buf);
    if (ssl != NULL)
        SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

/* An engine of another cluster (a clone, or one not allowed) whose raft
 * waits: it only asks (cluster_rpc_source). */
static int outsider_start(struct node *nd, const char *cluster,
                          const char *certname, unsigned port)
{
    node_init(nd, 1);
    snprintf(nd->cfg.cluster_id, sizeof nd->cfg.cluster_id, "%s", cluster);
    nd->cfg.nclones = 0;
    snprintf(nd->cfg.address, sizeof nd->cfg.address, "127.0.0.1:%u", port);
    snprintf(nd->cfg.dir, sizeof nd->cfg.dir, "%s/%s", tmpdir, cluster);
    mkdir(nd->cfg.dir, 0700);
    snprintf(nd->cfg.cert, sizeof nd->cfg.cert, "%s/%s.crt", pki, certname);
    snprintf(nd->cfg.key, sizeof nd->cfg.key, "%s/%s.key", pki, certname);
    nd->cfg.defer_raft = true;
    return node_start(nd, true);
}

/*
 * Clones (the members list CLONE_ID): a clone's node gets an rpc answer
 * from a member, with its cluster id told to the state machine; it
 * cannot open a raft stream (the leader's term stays, the refusal is
 * counted) nor send any other request; a cluster not in the list, a
 * source id the member's certificate does not name, and an engine with
 * no clones list refuse, and the asker learns it at once
 * (CLUSTER_EREFUSED, not a timeout).
 */
static void test_clones(uint64_t leader)
{
    struct node clone, other;
    struct cluster_status b, a;
    uint8_t *resp = NULL;
    size_t resplen = 0;
    char cert[1200], key[1200], res[64];
    int rc, status = 0;
    unsigned lport = port_base + (unsigned)leader;

    rc = outsider_start(&clone, CLONE_ID, "clone/node1", port_base + 7);
    CHECK(rc == 0, "start the clone's engine: %s", cluster_strerror(rc));
    if (rc != 0)
        return;
    rc = cluster_rpc_source(clone.cl, CLUSTER_ID, nodes[leader].cfg.address,
                            (const uint8_t *)"key", 3, TMO, &resp, &resplen);
    CHECK(rc == 0 && resplen == 8 && memcmp(resp, "pong:key", 8) == 0,
          "a clone asks the source: %s", cluster_strerror(rc));
    free(resp);
    resp = NULL;
    pthread_mutex_lock(&nodes[leader].fsm.mu);
    CHECK(strcmp(nodes[leader].fsm.rpc_clone, CLONE_ID) == 0 &&
              nodes[leader].fsm.rpc_peer == 1,
          "the source's state machine was told the clone: '%s' node %" PRIu64,
          nodes[leader].fsm.rpc_clone, nodes[leader].fsm.rpc_peer);
    pthread_mutex_unlock(&nodes[leader].fsm.mu);
    /* the same member asked under a source id its certificate does not
     * name: the clone refuses the link itself */
    uint64_t t0 = now_ms();
    rc = cluster_rpc_source(clone.cl, "t1-elsewhere", nodes[leader].cfg.address,
                            (const uint8_t *)"key", 3, TMO, &resp, &resplen);
    CHECK(rc == CLUSTER_EREFUSED && now_ms() - t0 < 3000,
          "a member of another cluster than the one asked: %s after %" PRIu64
          " ms",
          cluster_strerror(rc), now_ms() - t0);
    free(resp);
    resp = NULL;
    CHECK(cluster_rpc_source(clone.cl, CLONE_ID, nodes[leader].cfg.address,
                             (const uint8_t *)"key", 3, 100, NULL,
                             NULL) == CLUSTER_EINVAL,
          "the source is not this cluster");
    CHECK(cluster_rpc_source(clone.cl, CLUSTER_ID, "no-port",
                             (const uint8_t *)"key", 3, 100, NULL,
                             NULL) == CLUSTER_EINVAL,
          "the source's address has a port");

    /* a clone's certificate on a raft stream: refused, leader undisturbed */
    hostile(leader, "a clone's certificate (raft stream)", "clone/node1", 1,
            true);
    /* and on a request channel: an rpc is answered, nothing else */
    snprintf(cert, sizeof cert, "%s/clone/node1.crt", pki);
    snprintf(key, sizeof key, "%s/clone/node1.key", pki);
    cluster_status(nodes[leader].cl, &b);
    rc = chan_dial(lport, cert, key, 1, 'p', "ping", &status, res, sizeof res);
    CHECK(rc == 1 && status == 0 && strcmp(res, "pong:ping") == 0,
          "a clone's rpc on a channel: %d %d '%s'", rc, status, res);
    rc = chan_dial(lport, cert, key, 1, 'r', NULL, &status, NULL, 0);
    CHECK(rc == 1 && status == CLUSTER_EREFUSED,
          "a clone's read index: refused (%d %d)", rc, status);
    rc = chan_dial(lport, cert, key, 1, 'f', NULL, &status, NULL, 0);
    CHECK(rc == 1 && status == CLUSTER_EREFUSED,
          "a clone's forwarded entry: refused (%d %d)", rc, status);
    rc = chan_dial(lport, cert, key, 1, 'p', "refuse", &status, NULL, 0);
    CHECK(rc == 1 && status == CLUSTER_EREFUSED,
          "an rpc the state machine refuses: %d %d", rc, status);
    sleep_ms(300);
    cluster_status(nodes[leader].cl, &a);
    CHECK(a.peers_refused >= b.peers_refused + 3,
          "the clone's three refused requests counted: %" PRIu64 " -> %" PRIu64,
          b.peers_refused, a.peers_refused);
    CHECK(a.role == CLUSTER_ROLE_LEADER && a.term == b.term,
          "the clone's requests did not disturb the leader");
    for (int i = 1; i <= N; i++)
        if (nodes[i].cl != NULL)
            CHECK(count_in_log(&nodes[i], "evil") == 0,
                  "node %d applied the clone's entry", i);
    node_stop(&clone);

    /* a cluster not in the list (same CA): refused at once */
    rc = outsider_start(&other, CLUSTER_ID "-other", "rogue-cluster",
                        port_base + 8);
    CHECK(rc == 0, "start the other cluster's engine: %s",
          cluster_strerror(rc));
    if (rc == 0) {
        t0 = now_ms();
        rc =
            cluster_rpc_source(other.cl, CLUSTER_ID, nodes[leader].cfg.address,
                               (const uint8_t *)"key", 3, TMO, &resp, &resplen);
        CHECK(rc == CLUSTER_EREFUSED && resp == NULL && now_ms() - t0 < 3000,
              "a cluster not in the list: %s after %" PRIu64 " ms",
              cluster_strerror(rc), now_ms() - t0);
        free(resp);
        resp = NULL;
        node_stop(&other);
    }
    (void)rc;
}

/* A plain TCP connection to port that sends nothing. */
static int idle_dial(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* ms until the peer closes fd (reads give 0 or an error), at most max */
static uint64_t closed_after(int fd, unsigned max)
{
    uint64_t t0 = now_ms();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (now_ms() - t0 < max) {
        if (poll(&p, 1, 50) > 0) {
            char b[64];
            if (read(fd, b, sizeof b) <= 0)
                return now_ms() - t0;
        }
    }
    return UINT64_MAX;
}

/*
 * Handshake limits on an engine of its own: 8 silent connections from
 * one address are held until the 2 s handshake timeout, a 9th is dropped
 * at once; the engine still answers afterwards.
 */
static void test_handshake_limits(void)
{
    struct node *nd = &nodes[0];
    node_init(nd, 1);
    nd->cfg.nclones = 0;
    snprintf(nd->cfg.address, sizeof nd->cfg.address, "127.0.0.1:%u",
             port_base + 9);
    snprintf(nd->cfg.dir, sizeof nd->cfg.dir, "%s/limits", tmpdir);
    mkdir(nd->cfg.dir, 0700);
    int rc = node_start(nd, true);
    CHECK(rc == 0, "start the lone engine: %s", cluster_strerror(rc));
    if (rc != 0)
        return;
    int fds[8];
    uint64_t t0 = now_ms();
    for (int i = 0; i < 8; i++)
        fds[i] = idle_dial(port_base + 9);
    sleep_ms(200); /* let the loop accept them all */
    int extra = idle_dial(port_base + 9);
    uint64_t dropped = closed_after(extra, 1000);
    CHECK(dropped < 1000, "the 9th handshake from one address is dropped");
    uint64_t first = closed_after(fds[0], 5000);
    uint64_t held = first == UINT64_MAX ? first : now_ms() - t0;
    CHECK(held >= 1800 && held <= 4500,
          "a silent peer is cut at the handshake timeout: %" PRIu64 " ms",
          held);
    for (int i = 0; i < 8; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (extra >= 0)
        close(extra);
    for (int k = 0; k < 50 && cluster_test_refusals(nd->cl) < 9; k++)
        sleep_ms(20);
    CHECK(cluster_test_refusals(nd->cl) >= 9, "9 refusals counted: %" PRIu64,
          cluster_test_refusals(nd->cl));
    rc = submit(nd, "after-limits", NULL, 0);
    CHECK(rc == 0, "the engine still works: %s", cluster_strerror(rc));
    /* this engine lists no clones: a clone's node is refused */
    struct node clone;
    rc = outsider_start(&clone, CLONE_ID, "clone/node1", port_base + 7);
    CHECK(rc == 0, "start the clone's engine: %s", cluster_strerror(rc));
    if (rc == 0) {
        uint8_t *resp = NULL;
        size_t resplen = 0;
        rc =
            cluster_rpc_source(clone.cl, CLUSTER_ID, nd->cfg.address,
                               (const uint8_t *)"key", 3, TMO, &resp, &resplen);
        CHECK(rc == CLUSTER_EREFUSED && resp == NULL,
              "an engine without clones gives a clone nothing: %s",
              cluster_strerror(rc));
        free(resp);
        node_stop(&clone);
    }
    node_stop(nd);
}

/*
 * A submit through a follower waits for the follower to apply it, and a
 * follower learns of a commit from the leader's next message: with a
 * 900 ms heartbeat and nothing else written, ten submits would take
 * seconds unless the leader sends the commit on at once.
 */
static void test_commit_push(void)
{
    static struct node pn[3];
    for (int i = 1; i <= 2; i++) {
        node_init(&pn[i], (uint64_t)i);
        snprintf(pn[i].cfg.address, sizeof pn[i].cfg.address, "127.0.0.1:%u",
                 port_base + 6 + (unsigned)i);
        snprintf(pn[i].cfg.dir, sizeof pn[i].cfg.dir, "%s/push%d", tmpdir, i);
        mkdir(pn[i].cfg.dir, 0700);
        pn[i].cfg.election_timeout = 1000;
        pn[i].cfg.heartbeat_timeout = 900;
        int rc = node_start(&pn[i], i == 1);
        CHECK(rc == 0, "push: start %d: %s", i, cluster_strerror(rc));
        if (rc != 0)
            return;
    }
    struct cluster_status st;
    for (int k = 0; k < 500; k++) {
        cluster_status(pn[1].cl, &st);
        if (st.role == CLUSTER_ROLE_LEADER)
            break;
        sleep_ms(10);
    }
    int rc = cluster_add(pn[1].cl, 2, pn[2].cfg.address, TMO);
    CHECK(rc == 0, "push: add 2: %s", cluster_strerror(rc));
    cluster_sync(pn[2].cl, TMO);
    uint64_t t0 = now_ms();
    for (int k = 0; k < 10 && rc == 0; k++) {
        char text[32];
        snprintf(text, sizeof text, "push-%d", k);
        rc = submit(&pn[2], text, NULL, 0);
        CHECK(rc == 0, "push: submit %d: %s", k, cluster_strerror(rc));
    }
    uint64_t took = now_ms() - t0;
    CHECK(took < 2500, "10 submits through a follower took %" PRIu64 " ms",
          took);

    /* the follower's state machine fails: that node stops, and says so */
    pthread_mutex_lock(&pn[2].fsm.mu);
    pn[2].fsm.fail_apply = true;
    pthread_mutex_unlock(&pn[2].fsm.mu);
    rc = submit(&pn[1], "fails-on-2", NULL, 0);
    CHECK(rc == 0, "push: the leader applies it: %s", cluster_strerror(rc));
    for (int k = 0; k < 200 && cluster_status(pn[2].cl, &st) == 0; k++)
        sleep_ms(10);
    rc = cluster_status(pn[2].cl, &st);
    CHECK(rc == CLUSTER_EIO, "the failed node reports it: %s",
          cluster_strerror(rc));
    rc = submit(&pn[2], "after-failure", NULL, 0);
    CHECK(rc == CLUSTER_EIO, "a submit on the failed node: %s",
          cluster_strerror(rc));
    node_stop(&pn[2]);
    node_stop(&pn[1]);
}

/*
 * Starts that fail leave nothing behind (the loop closes with no handle
 * open: NIMBUS_STRICT_PRECONDITIONS aborts otherwise), and an engine whose
 * raft never started stops cleanly.
 */
static void test_start_failures(void)
{
    struct node *nd = &nodes[0];
    node_init(nd, 1);
    nd->cfg.nclones = 0;
    snprintf(nd->cfg.address, sizeof nd->cfg.address, "127.0.0.1:%u",
             port_base + 9);
    snprintf(nd->cfg.dir, sizeof nd->cfg.dir, "%s/fail", tmpdir);
    mkdir(nd->cfg.dir, 0700);
    nd->cfg.defer_raft = true;
    int rc = node_start(nd, false);
    CHECK(rc == 0, "deferred start: %s", cluster_strerror(rc));
    struct node other = *nd;
    rc = node_start(&other, false);
    CHECK(rc == CLUSTER_EIO, "a busy address: %s", cluster_strerror(rc));
    CHECK(other.cl == NULL, "no engine on failure");
    rc = cluster_submit(nd->cl, (const uint8_t *)"x", 1, 300, NULL, NULL);
    CHECK(rc == CLUSTER_ENOLEADER, "a submit without raft: %s",
          cluster_strerror(rc));
    node_stop(nd); /* raft never started: the transport alone closes */
    snprintf(other.cfg.key, sizeof other.cfg.key, "%s/none.key", pki);
    rc = node_start(&other, false);
    CHECK(rc == CLUSTER_EINVAL, "a missing key: %s", cluster_strerror(rc));
    other = *nd;
    snprintf(other.cfg.cluster_id, sizeof other.cfg.cluster_id, "bad id");
    rc = node_start(&other, false);
    CHECK(rc == CLUSTER_EINVAL, "a bad cluster id: %s", cluster_strerror(rc));
    /* clones: valid ids other than this cluster's, at most 8 */
    other = *nd;
    other.cfg.nclones = 1;
    snprintf(other.cfg.clones[0], sizeof other.cfg.clones[0], CLUSTER_ID);
    rc = node_start(&other, false);
    CHECK(rc == CLUSTER_EINVAL, "this cluster as its own clone: %s",
          cluster_strerror(rc));
    snprintf(other.cfg.clones[0], sizeof other.cfg.clones[0], "a/b");
    rc = node_start(&other, false);
    CHECK(rc == CLUSTER_EINVAL, "a bad clone id: %s", cluster_strerror(rc));
    other.cfg.nclones = CLUSTER_CLONES_MAX + 1;
    rc = node_start(&other, false);
    CHECK(rc == CLUSTER_EINVAL, "too many clones: %s", cluster_strerror(rc));
    other = *nd;
    other.cfg.defer_raft = false;
    snprintf(other.cfg.dir, sizeof other.cfg.dir, "%s/no/such/dir", tmpdir);
    rc = node_start(&other, true);
    CHECK(rc != 0, "a raft dir that cannot be made: %s", cluster_strerror(rc));
}

/* ------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    char res[64];
    int rc;
    if (argc != 2) {
        fprintf(stderr, "usage: %s PKI_DIR\n", argv[0]);
        return 2;
    }
    snprintf(pki, sizeof pki, "%s", argv[1]);
    signal(SIGPIPE, SIG_IGN);              /* as nimbusd does (cluster.h) */
    if (getenv("NIMBUS_TEST_LOG") != NULL) /* e.g. "debug" */
        util_log_setup(util_log_level_parse(getenv("NIMBUS_TEST_LOG")), NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/nimbus-engine-XXXXXX", t ? t : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    /* 1. bootstrap node 1 (ports below 32768; another base if busy) */
    for (int attempt = 0;; attempt++) {
        port_base =
            20000 + (unsigned)((getpid() * 7 + attempt * 131) % 1200) * 10;
        node_init(&nodes[1], 1);
        rc = node_start(&nodes[1], true);
        if (rc == 0 || attempt == 8)
            break;
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s/n1'", tmpdir);
        (void)system(cmd);
    }
    CHECK(rc == 0, "start node 1: %s", cluster_strerror(rc));
    if (rc != 0)
        return 1;
    printf("ports %u-%u, dirs in %s\n", port_base + 1, port_base + N, tmpdir);
    CHECK(wait_leader(5000, 0) == 1, "node 1 leads its one-node cluster");
    rc = submit(&nodes[1], "first", res, sizeof res);
    CHECK(rc == 0 && strcmp(res, "ok:1") == 0, "first submit: %s %s",
          cluster_strerror(rc), res);

    /* 2. nodes 2 and 3 start unjoined; 2 added through the leader, 3
     * through node 2 (membership forwarded). Node 3 joins as nimbusd
     * does: raft deferred until it has fetched what the log does not
     * carry from a member (cluster_rpc), which answers members only. */
    node_init(&nodes[2], 2);
    rc = node_start(&nodes[2], false);
    CHECK(rc == 0, "start node 2: %s", cluster_strerror(rc));
    node_init(&nodes[3], 3);
    nodes[3].cfg.defer_raft = true;
    rc = node_start(&nodes[3], false);
    nodes[3].cfg.defer_raft = false; /* for its restarts */
    CHECK(rc == 0, "start node 3 (raft deferred): %s", cluster_strerror(rc));
    rc = cluster_add(nodes[1].cl, 2, nodes[2].cfg.address, TMO);
    CHECK(rc == 0, "add 2: %s", cluster_strerror(rc));
    uint8_t *resp = NULL;
    size_t resplen = 0;
    rc = cluster_rpc(nodes[3].cl, 0, nodes[1].cfg.address,
                     (const uint8_t *)"key", 3, 500, &resp, &resplen);
    CHECK(rc != 0, "a node not yet added is not answered");
    free(resp);
    resp = NULL;
    struct adder ad = {.cl = nodes[2].cl, .id = 3};
    snprintf(ad.address, sizeof ad.address, "%s", nodes[3].cfg.address);
    pthread_create(&ad.t, NULL, adder_main, &ad);
    for (int k = 0; k < 100; k++) {
        rc = cluster_rpc(nodes[3].cl, 0, nodes[1].cfg.address,
                         (const uint8_t *)"key", 3, 1000, &resp, &resplen);
        if (rc == 0)
            break;
        sleep_ms(50);
    }
    CHECK(rc == 0 && resplen == 8 && memcmp(resp, "pong:key", 8) == 0,
          "node 3, added, fetches before raft starts: %s",
          cluster_strerror(rc));
    free(resp);
    resp = NULL;
    rc = cluster_raft_start(nodes[3].cl);
    CHECK(rc == 0, "raft on node 3: %s", cluster_strerror(rc));
    rc = cluster_raft_start(nodes[3].cl);
    CHECK(rc == CLUSTER_EINVAL, "raft starts once: %s", cluster_strerror(rc));
    pthread_join(ad.t, NULL);
    CHECK(ad.rc == 0, "add 3 through node 2: %s", cluster_strerror(ad.rc));
    struct cluster_status st;
    /* the status is a copy refreshed by the loop: give it a moment */
    for (int k = 0; k < 100; k++) {
        cluster_status(nodes[1].cl, &st);
        if (st.nnodes == 3 && st.nodes[2].member == CLUSTER_MEMBER_VOTER)
            break;
        sleep_ms(10);
    }
    CHECK(st.nnodes == 3, "3 nodes in the configuration: %zu", st.nnodes);
    for (size_t i = 0; i < st.nnodes; i++)
        CHECK(st.nodes[i].member == CLUSTER_MEMBER_VOTER,
              "node %" PRIu64 " is a voter", st.nodes[i].id);

    /* 3. submits through the leader and both followers */
    for (int k = 0; k < 30; k++) {
        for (int i = 1; i <= N; i++) {
            char text[32];
            snprintf(text, sizeof text, "n%d-%d", i, k);
            rc = submit(&nodes[i], text, res, sizeof res);
            CHECK(rc == 0 && strncmp(res, "ok:", 3) == 0, "submit %s: %s [%s]",
                  text, cluster_strerror(rc), res);
        }
    }
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.nd = &nodes[i % N + 1], .tag = i, .count = 25};
        pthread_create(&w[i].t, NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(w[i].t, NULL);
        CHECK(w[i].errors == 0, "worker %d: %d errors", i, w[i].errors);
    }
    check_same_logs("after the first submits");
    CHECK(nodes[2].fsm.n == 1 + 90 + 100, "191 entries: %zu", nodes[2].fsm.n);

    /* a payload of 1 MiB through a follower (many TLS records, one
     * frame), and one byte more than the engine carries */
    {
        size_t big = 1u << 20;
        uint8_t *p = malloc(big);
        for (size_t i = 0; i < big; i++)
            p[i] = (uint8_t)(i * 7);
        rc = cluster_submit(nodes[2].cl, p, big, TMO, NULL, NULL);
        CHECK(rc == 0, "1 MiB through node 2: %s", cluster_strerror(rc));
        free(p);
        rc = cluster_submit(nodes[2].cl, (const uint8_t *)"", 0, TMO, NULL,
                            NULL);
        CHECK(rc == 0, "an empty payload: %s", cluster_strerror(rc));
        rc = cluster_submit(nodes[2].cl, (const uint8_t *)"x",
                            CLUSTER_PAYLOAD_MAX + 1, TMO, NULL, NULL);
        CHECK(rc == CLUSTER_EINVAL, "over CLUSTER_PAYLOAD_MAX: %s",
              cluster_strerror(rc));
        check_same_logs("after the big payload");
    }

    /* 4. rpc: to the leader (peer 0) and to a named peer */
    rc = cluster_rpc(nodes[3].cl, 0, NULL, (const uint8_t *)"ping", 4, TMO,
                     &resp, &resplen);
    CHECK(rc == 0 && resplen == 9 && memcmp(resp, "pong:ping", 9) == 0,
          "rpc to the leader: %s", cluster_strerror(rc));
    CHECK(nodes[1].fsm.rpc_peer == 3, "the leader saw node 3 ask: %" PRIu64,
          nodes[1].fsm.rpc_peer);
    free(resp);
    rc = cluster_rpc(nodes[1].cl, 2, NULL, (const uint8_t *)"refuse", 6, TMO,
                     &resp, &resplen);
    CHECK(rc == CLUSTER_EREFUSED, "a refused rpc: %s", cluster_strerror(rc));

    /* 5. a forwarded entry whose answer is lost is sent again and applied
     * once; the state machine saw the duplicate on every node */
    uint64_t leader = wait_leader(5000, 0);
    struct node *fol = &nodes[leader % N + 1];
    unsigned dups_before = fol->fsm.dups;
    cluster_test_drop_replies(nodes[leader].cl, 1);
    rc = submit(fol, "lost-reply", res, sizeof res);
    CHECK(rc == 0, "submit with a lost reply: %s", cluster_strerror(rc));
    check_same_logs("after the lost reply");
    for (int i = 1; i <= N; i++)
        CHECK(count_in_log(&nodes[i], "lost-reply") == 1,
              "node %d applied it %zu times", i,
              count_in_log(&nodes[i], "lost-reply"));
    /* the resend may still be in flight when the first copy applies */
    for (int k = 0; k < 200 && fol->fsm.dups == dups_before; k++) {
        sleep_ms(10);
        cluster_sync(fol->cl, TMO);
    }
    CHECK(fol->fsm.dups > dups_before, "the resent copy reached the log");

    /* 6. transfer the lead to another node */
    uint64_t target = leader % N + 1;
    rc = cluster_transfer(nodes[leader].cl, target, TMO);
    CHECK(rc == 0, "transfer %" PRIu64 " -> %" PRIu64 ": %s", leader, target,
          cluster_strerror(rc));
    leader = wait_leader(5000, leader);
    CHECK(leader == target, "the new leader is %" PRIu64 ": %" PRIu64, target,
          leader);

    /* 7. the leader stops: another is elected, submits go on */
    uint64_t t0 = now_ms();
    node_stop(&nodes[leader]);
    uint64_t stopped = leader;
    leader = wait_leader(10000, stopped);
    CHECK(leader != 0, "a new leader after the old one stopped");
    printf("new leader %" PRIu64 " %" PRIu64 " ms after node %" PRIu64
           " stopped\n",
           leader, now_ms() - t0, stopped);
    uint64_t third = (uint64_t)(1 + 2 + 3) - leader - stopped;
    for (int k = 0; k < 150; k++) {
        char text[32];
        snprintf(text, sizeof text, "after-%d", k);
        rc = submit(&nodes[k % 2 ? leader : third], text, NULL, 0);
        CHECK(rc == 0, "submit %s with a node down: %s", text,
              cluster_strerror(rc));
    }

    /* 8. the stopped node restarts from its dir and catches up: the
     * others have snapshotted past it, so from their snapshot */
    unsigned restores = nodes[stopped].fsm.restores;
    rc = node_start(&nodes[stopped], true);
    CHECK(rc == 0, "restart %" PRIu64 ": %s", stopped, cluster_strerror(rc));
    check_same_logs("after the restart");
    CHECK(nodes[stopped].fsm.restores > restores,
          "the restarted node installed a snapshot");
    CHECK(nodes[leader].fsm.snapshots > 0, "the leader took snapshots");

    /* 9. hostile peers at the leader: refused, the term unchanged */
    hostile(leader, "another CA's certificate", "rogue-otherca", 1, true);
    hostile(leader, "another cluster's certificate", "rogue-cluster", 1, true);
    uint64_t other = leader % N + 1;
    char name[32];
    snprintf(name, sizeof name, "node%" PRIu64, other);
    hostile(leader, "a node's certificate claiming another id", name,
            other % N + 1, true);
    hostile(leader, "no certificate", name, other, false);
    {
        /* a forged plaintext packet (libraft's own handshake, then a
         * RequestVote with term 1000 and disrupt-leader): TLS fails */
        struct cluster_status b, a;
        cluster_status(nodes[leader].cl, &b);
        uint64_t refused = cluster_test_refusals(nodes[leader].cl);
        int fd = idle_dial(port_base + (unsigned)leader);
        uint8_t pkt[24 + 16 + 16 + 40];
        uint64_t v[] = {1,  other, 16,    0,          0,   3,
                        40, 1000,  other, 1ULL << 40, 999, 1};
        memset(pkt, 0, sizeof pkt);
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 8; k++)
                pkt[i * 8 + k] = (uint8_t)(v[i] >> (8 * k));
        memcpy(pkt + 24, "127.0.0.1:1", 11);
        for (int i = 5; i < 12; i++)
            for (int k = 0; k < 8; k++)
                pkt[40 + (i - 5) * 8 + k] = (uint8_t)(v[i] >> (8 * k));
        CHECK(fd >= 0 && write(fd, pkt, sizeof pkt) == (ssize_t)sizeof pkt,
              "forged packet sent");
        CHECK(closed_after(fd, 3000) < 3000, "the forged packet's link is cut");
        if (fd >= 0)
            close(fd);
        sleep_ms(300);
        cluster_status(nodes[leader].cl, &a);
        CHECK(a.role == CLUSTER_ROLE_LEADER && a.term == b.term,
              "a forged packet: the leader was disturbed (term %" PRIu64
              " -> %" PRIu64 ")",
              b.term, a.term);
        CHECK(cluster_test_refusals(nodes[leader].cl) > refused,
              "a forged packet: no refusal counted");
    }
    {
        /* the member's certificate under its own id is let in (without
         * the forged vote): the checks above can fail */
        char cert[1200], key[1200];
        snprintf(cert, sizeof cert, "%s/%s.crt", pki, name);
        snprintf(key, sizeof key, "%s/%s.key", pki, name);
        int ok =
            hostile_dial(port_base + (unsigned)leader, cert, key, other, false);
        CHECK(ok == 1, "a member's own certificate gets the ack: %d", ok);
    }
    struct cluster_status lst;
    cluster_status(nodes[leader].cl, &lst);
    CHECK(lst.role == CLUSTER_ROLE_LEADER, "still the leader");

    /* 9b. clones: rpc only, never raft */
    test_clones(leader);
    cluster_status(nodes[leader].cl, &lst);
    CHECK(lst.role == CLUSTER_ROLE_LEADER, "still the leader after the clones");

    /* 10. remove a follower (through the other follower): its
     * certificate no longer gets in */
    uint64_t victim = leader % N + 1;
    uint64_t asker = (uint64_t)(1 + 2 + 3) - leader - victim;
    rc = cluster_remove(nodes[asker].cl, victim, TMO);
    CHECK(rc == 0, "remove %" PRIu64 " through %" PRIu64 ": %s", victim, asker,
          cluster_strerror(rc));
    cluster_status(nodes[leader].cl, &st);
    CHECK(st.nnodes == 2, "2 nodes left: %zu", st.nnodes);
    node_stop(&nodes[victim]);
    snprintf(name, sizeof name, "node%" PRIu64, victim);
    hostile(leader, "a removed node's certificate", name, victim, true);
    rc = submit(&nodes[leader], "two-left", res, sizeof res);
    CHECK(rc == 0, "submit with two nodes: %s", cluster_strerror(rc));
    check_same_logs("after the removal");

    /* bad arguments */
    CHECK(cluster_submit(NULL, NULL, 0, 10, NULL, NULL) == CLUSTER_EINVAL,
          "NULL engine");
    CHECK(cluster_add(nodes[leader].cl, 0, "127.0.0.1:1", 10) == CLUSTER_EINVAL,
          "node id 0");
    CHECK(cluster_add(nodes[leader].cl, 9, "no-port", 10) == CLUSTER_EINVAL,
          "an address without a port");

    for (int i = 1; i <= N; i++)
        if (nodes[i].cl != NULL)
            node_stop(&nodes[i]);
    CHECK(submit(&nodes[0], "x", NULL, 0) == CLUSTER_EINVAL, "stopped");

    test_handshake_limits();
    test_commit_push();
    test_start_failures();

    if (failures == 0) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        (void)system(cmd);
    }
    printf("%s (%d failures)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
