/*
 * tls.c - libraft's transport and the engine's request channels over
 * mutual TLS 1.3 (tls.h).
 *
 * Per TCP connection: a uv_tcp_t, an SSL on two memory BIOs driven on the
 * loop (no thread), and a timer (handshake, then close timeout). Inside
 * TLS the connector sends a preamble
 *     u64 version | u64 raft id | u64 addr_len (multiple of 8) | address
 * (all little-endian); the acceptor checks that the id equals the one in
 * the client certificate and that the id may join, then answers an 8-byte
 * ack. Only after the ack does either side use the connection: a TLS 1.3
 * client finishes its handshake before the server has judged the client
 * certificate, so without the ack libraft would be told "connected" on a
 * link the peer is about to refuse.
 *
 * Raft streams: a socketpair; libraft owns one end (allocated with
 * raft_malloc: libraft frees it), we pump the other through TLS. libraft
 * never reads an outbound stream, so closing our end is how it learns of
 * a dead peer (its next write fails with EPIPE: the caller ignores
 * SIGPIPE).
 *
 * Node identity: the SAN URI urn:nimbus:cluster:<cluster id>:node:<id> of a
 * certificate chained to the cluster CA (the only trust anchor). Outbound,
 * the id must be the one dialled; inbound, the one in the preamble.
 *
 * Clones: one CA may name several clusters. A node of a cluster listed in
 * ctls_config.clones is let in for request channels only (a raft preamble
 * is refused, and membership is not asked: it is never a member); the
 * engine is told its cluster id. Outbound, a link opened for another
 * cluster (a clone's first node asking its source) accepts a certificate
 * naming that cluster, on that link only.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cluster/tls.h"
#include "common/log.h"
#include "common/util.h"

#define HANDSHAKE_TIMEOUT_MS 2000
#define CLOSE_TIMEOUT_MS 1000
/* Back-pressure on raft streams: stop reading one side while the other
 * side's write queue is above HIGH_WATER, resume below LOW_WATER. */
#define HIGH_WATER (4u << 20)
#define LOW_WATER (1u << 20)
/* A request channel whose peer lets this much pile up is dropped. */
#define CHAN_QUEUE_MAX (64u << 20)
#define ADDR_MAX 256
#define PREAMBLE_HDR 24
#define PREAMBLE_MAX (PREAMBLE_HDR + ADDR_MAX)
/* Handshakes in progress at once: in all, and from one source address. */
#define HS_MAX_TOTAL 32
#define HS_MAX_PER_IP 8
/* Refusal logs: at most one a second per source address. */
#define REFUSE_LOG_SLOTS 16
#define REFUSE_LOG_MS 1000

#define VERSION_RAFT 1
#define VERSION_CHAN 2
static const char ACK[8] = {'N', 'I', 'M', 'B', 'O', 'K', 0, 0};

enum conn_state {
    ST_TCP_CONNECT,
    ST_HANDSHAKE,
    ST_PREAMBLE,
    ST_OPEN,
    ST_CLOSING
};
enum conn_kind { K_UNKNOWN, K_RAFT, K_CHAN };

struct refuse_slot {
    char ip[64];
    uint64_t last_ms;
    unsigned suppressed;
};

struct ctls {
    struct raft_uv_transport *t;
    struct ctls_config cfg;
    char cluster_id[80];
    SSL_CTX *ctx;
    uint64_t id;
    char address[ADDR_MAX];
    uv_tcp_t listener;
    bool listening, listener_closed;
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    bool closing;
    struct ctls_chan *conns;
    struct ctls_stats stats;
    struct refuse_slot refuse_log[REFUSE_LOG_SLOTS];
    char iobuf[64 * 1024]; /* loop thread only, consumed at once */
};

/* One TCP connection: a raft stream or a request channel. */
struct ctls_chan {
    struct ctls *tl;
    struct ctls_chan *next, *prev;
    bool outbound;
    enum conn_state state;
    enum conn_kind kind;
    int pending_closes;
    bool reading_inner, tcp_paused, inner_init;
    uv_tcp_t tcp;
    uv_pipe_t inner; /* raft streams: our end of the socketpair */
    uv_timer_t timer;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    SSL *ssl;
    BIO *rbio, *wbio;
    uint64_t peer_id; /* outbound: the one dialled; inbound: certificate's */
    /* outbound: the other cluster the peer must belong to ("": ours) */
    char cluster[CLUSTER_ID_MAX + 1];
    int clone;     /* inbound: 1 + index in cfg.clones of the peer's cluster */
    bool refused;  /* outbound: closed by a refusal after authentication */
    char peer[72]; /* printable source address, for logs */
    char ip[64];
    /* raft outbound: libraft's request until the stream is handed over */
    struct raft_uv_connect *req;
    raft_uv_connect_cb cb;
    unsigned char pre[PREAMBLE_MAX];
    size_t pre_len;
    /* request channels */
    ctls_frame_cb on_frame;
    ctls_close_cb on_close;
    void *data;
    uint8_t *fbuf; /* incoming frame being assembled */
    size_t flen, fcap;
    uint8_t *pend; /* outgoing frames queued before the channel opened */
    size_t plen, pcap;
};

static const char *ssl_err(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(buf, len, "no OpenSSL error");
    } else {
        ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
    return buf;
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Strict decimal 1..UINT64_MAX, digits only. */
static uint64_t parse_id(const char *s, size_t n)
{
    uint64_t v = 0;
    if (n == 0 || n > 20 || s[0] == '0')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

/*
 * The node id a certificate names for cluster: its SAN URI
 * urn:nimbus:cluster:<cluster>:node:<n>. 0 if it names none, or another
 * cluster; *other is set when a nimbus URI for another cluster is there.
 */
static uint64_t cert_node_id(const char *cluster, X509 *cert, bool *other)
{
    static const char pfx[] = "urn:nimbus:cluster:";
    static const char mid[] = ":node:";
    uint64_t id = 0;
    *other = false;
    if (cert == NULL)
        return 0;
    GENERAL_NAMES *names =
        X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names == NULL)
        return 0;
    size_t cl = strlen(cluster);
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI)
            continue;
        const ASN1_IA5STRING *u = gn->d.uniformResourceIdentifier;
        const char *s = (const char *)ASN1_STRING_get0_data(u);
        size_t len = (size_t)ASN1_STRING_length(u);
        if (len < sizeof pfx - 1 || memcmp(s, pfx, sizeof pfx - 1) != 0)
            continue;
        s += sizeof pfx - 1;
        len -= sizeof pfx - 1;
        if (len < cl + sizeof mid - 1 || memcmp(s, cluster, cl) != 0 ||
            memcmp(s + cl, mid, sizeof mid - 1) != 0) {
            *other = true;
            continue;
        }
        uint64_t v =
            parse_id(s + cl + sizeof mid - 1, len - cl - (sizeof mid - 1));
        if (v != 0) {
            id = v;
            break;
        }
    }
    GENERAL_NAMES_free(names);
    return id;
}

/* -------------------------------------------------------------- closing */

static void maybe_fire_close(struct ctls *tl)
{
    if (!tl->closing || tl->conns != NULL)
        return;
    if (tl->listening && !tl->listener_closed)
        return;
    if (tl->close_cb != NULL) {
        raft_uv_transport_close_cb cb = tl->close_cb;
        tl->close_cb = NULL;
        cb(tl->t);
    }
}

static void conn_free(struct ctls_chan *c)
{
    struct ctls *tl = c->tl;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        tl->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->ssl != NULL)
        SSL_free(c->ssl); /* and both BIOs */
    struct raft_uv_connect *req = c->req;
    raft_uv_connect_cb cb = c->cb;
    if (c->on_close != NULL)
        c->on_close(c->data, c);
    if (c->fbuf != NULL)
        util_free_wipe(c->fbuf, c->fcap);
    if (c->pend != NULL)
        util_free_wipe(c->pend, c->pcap);
    free(c);
    /* An outbound raft connect that never reached libraft fails only now,
     * with our handles closed, as the stock transport does. */
    if (req != NULL)
        cb(req, NULL, tl->closing ? RAFT_CANCELED : RAFT_NOCONNECTION);
    maybe_fire_close(tl);
}

static void handle_closed(uv_handle_t *h)
{
    struct ctls_chan *c = h->data;
    if (--c->pending_closes == 0)
        conn_free(c);
}

static void tcp_closed(uv_handle_t *h)
{
    struct ctls_chan *c = h->data;
    /* the timer may be armed as the close timeout: close it after */
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    handle_closed(h);
}

static void close_tcp_now(struct ctls_chan *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, tcp_closed);
}

static void close_timer_cb(uv_timer_t *t)
{
    close_tcp_now(t->data);
}

static void shutdown_cb(uv_shutdown_t *r, int status)
{
    (void)status;
    close_tcp_now(r->data);
}

static void flush_wbio(struct ctls_chan *c);

/* graceful: close_notify, half-close, then a bounded wait for the queue */
static void conn_close(struct ctls_chan *c, bool graceful, const char *why)
{
    if (c->state == ST_CLOSING)
        return;
    enum conn_state was = c->state;
    c->state = ST_CLOSING;
    if (was == ST_OPEN) {
        if (c->kind == K_RAFT && c->tl->stats.tunnels > 0)
            c->tl->stats.tunnels--;
        if (c->kind == K_CHAN && c->tl->stats.channels > 0)
            c->tl->stats.channels--;
    }
    /* a dial that never connected is retried every 100 ms while a node is
     * down: not worth a line each time */
    if (why != NULL && was == ST_TCP_CONNECT)
        log_debug("cluster tls: no connection to node %" PRIu64 " (%s): %s",
                  c->peer_id, c->peer, why);
    else if (why != NULL)
        log_info(
            "cluster tls: closing %s %s link with node %" PRIu64 " (%s): %s",
            c->outbound ? "outbound" : "inbound",
            c->kind == K_CHAN ? "request" : "raft", c->peer_id, c->peer, why);
    if (c->inner_init)
        uv_close((uv_handle_t *)&c->inner, handle_closed);
    uv_timer_stop(&c->timer);
    if (graceful && was >= ST_PREAMBLE && c->ssl != NULL) {
        ERR_clear_error();
        SSL_shutdown(c->ssl); /* close_notify into wbio */
        flush_wbio(c);
        c->sreq.data = c;
        if (!uv_is_closing((uv_handle_t *)&c->tcp) &&
            uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, shutdown_cb) == 0) {
            uv_timer_start(&c->timer, close_timer_cb, CLOSE_TIMEOUT_MS, 0);
            return;
        }
    }
    close_tcp_now(c);
}

static struct refuse_slot *refuse_slot(struct ctls *tl, const char *ip)
{
    struct refuse_slot *oldest = &tl->refuse_log[0];
    for (size_t i = 0; i < REFUSE_LOG_SLOTS; i++) {
        struct refuse_slot *s = &tl->refuse_log[i];
        if (strcmp(s->ip, ip) == 0)
            return s;
        if (s->last_ms < oldest->last_ms)
            oldest = s;
    }
    snprintf(oldest->ip, sizeof oldest->ip, "%s", ip);
    oldest->last_ms = 0;
    oldest->suppressed = 0;
    return oldest;
}

/* A refused peer redials every connect retry: one line a second per
 * source address, with the count of those left out. */
static void refuse_log(struct ctls_chan *c, uint64_t *counter, const char *why)
{
    struct ctls *tl = c->tl;
    (*counter)++;
    struct refuse_slot *s = refuse_slot(tl, c->ip);
    uint64_t now = uv_now(tl->cfg.loop);
    if (s->last_ms == 0 || now - s->last_ms >= REFUSE_LOG_MS) {
        log_warn("cluster tls: refused %s %s: %s (%u more refusals not "
                 "logged)",
                 c->outbound ? "outbound link to" : "inbound link from",
                 c->peer, why, s->suppressed);
        s->last_ms = now;
        s->suppressed = 0;
    } else {
        s->suppressed++;
    }
}

static void refuse(struct ctls_chan *c, uint64_t *counter, const char *why)
{
    refuse_log(c, counter, why);
    conn_close(c, false, NULL);
}

/* An outbound link whose peer authenticated us and closed before its ack,
 * or whose certificate we do not take: it will be refused again. */
static void refused_by_peer(struct ctls_chan *c, uint64_t *counter,
                            const char *why)
{
    c->refused = c->outbound;
    refuse(c, counter, why);
}

/* ---------------------------------------------------------------- bytes */

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    struct ctls_chan *c = h->data;
    (void)sz;
    buf->base = c->tl->iobuf;
    buf->len = sizeof c->tl->iobuf;
}

struct wreq {
    uv_write_t w;
    struct ctls_chan *c;
    char data[];
};

static void inner_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void tcp_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void drive(struct ctls_chan *c);

static void tcp_write_cb(uv_write_t *w, int status)
{
    struct wreq *r = (struct wreq *)w;
    struct ctls_chan *c = r->c;
    free(r);
    if (status < 0) {
        if (status != UV_ECANCELED)
            conn_close(c, false, uv_strerror(status));
        return;
    }
    if (c->state == ST_OPEN && c->kind == K_RAFT && !c->reading_inner &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < LOW_WATER) {
        uv_read_start((uv_stream_t *)&c->inner, alloc_cb, inner_read_cb);
        c->reading_inner = true;
    }
}

/* TLS records OpenSSL produced -> the socket. */
static void flush_wbio(struct ctls_chan *c)
{
    size_t n;
    while ((n = BIO_ctrl_pending(c->wbio)) > 0) {
        if (uv_is_closing((uv_handle_t *)&c->tcp)) {
            (void)BIO_reset(c->wbio);
            return;
        }
        struct wreq *r = malloc(sizeof *r + n);
        if (r == NULL) {
            conn_close(c, false, "out of memory");
            return;
        }
        int got = BIO_read(c->wbio, r->data, (int)n);
        if (got <= 0) {
            free(r);
            return;
        }
        c->tl->stats.bytes_out += (uint64_t)got;
        r->c = c;
        uv_buf_t b = uv_buf_init(r->data, (unsigned)got);
        int rv = uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, tcp_write_cb);
        if (rv != 0) {
            free(r);
            conn_close(c, false, uv_strerror(rv));
            return;
        }
    }
}

static void inner_write_cb(uv_write_t *w, int status)
{
    struct wreq *r = (struct wreq *)w;
    struct ctls_chan *c = r->c;
    free(r);
    if (status < 0) {
        if (status != UV_ECANCELED)
            conn_close(c, false, "write to the raft end failed");
        return;
    }
    if (c->state == ST_OPEN && c->tcp_paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->inner) < LOW_WATER) {
        c->tcp_paused = false; /* libraft caught up: read the peer again */
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, tcp_read_cb);
        drive(c); /* records may be waiting in the read BIO */
    }
}

/* Plaintext from the peer -> libraft's end: a synchronous write first, a
 * queued copy of what is left otherwise. */
static void to_inner(struct ctls_chan *c, const char *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int w = 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->inner) == 0) {
        w = uv_try_write((uv_stream_t *)&c->inner, &b, 1);
        if (w == UV_EAGAIN)
            w = 0;
        if (w < 0) {
            conn_close(c, false, uv_strerror(w));
            return;
        }
        if ((size_t)w == n)
            return;
    }
    struct wreq *r = malloc(sizeof *r + (n - (size_t)w));
    if (r == NULL) {
        conn_close(c, false, "out of memory");
        return;
    }
    memcpy(r->data, p + w, n - (size_t)w);
    r->c = c;
    b = uv_buf_init(r->data, (unsigned)(n - (size_t)w));
    if (uv_write(&r->w, (uv_stream_t *)&c->inner, &b, 1, inner_write_cb) != 0) {
        free(r);
        conn_close(c, false, "write to the raft end failed");
        return;
    }
    if (!c->tcp_paused &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->inner) > HIGH_WATER) {
        c->tcp_paused = true; /* back-pressure towards the peer */
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

/* libraft wrote to (or closed) its end: encrypt and send. */
static void inner_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct ctls_chan *c = s->data;
    char eb[200];
    if (n == 0)
        return;
    if (n < 0) {
        conn_close(c, true,
                   n == UV_EOF ? "raft closed its stream"
                               : uv_strerror((int)n));
        return;
    }
    if (c->state != ST_OPEN)
        return;
    ERR_clear_error();
    if (SSL_write(c->ssl, buf->base, (int)n) != (int)n) {
        conn_close(c, false, ssl_err(eb, sizeof eb));
        return;
    }
    flush_wbio(c);
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > HIGH_WATER) {
        uv_read_stop(s); /* back-pressure towards libraft */
        c->reading_inner = false;
    }
}

static void raft_end_closed(uv_handle_t *h)
{
    raft_free(h);
}

/* The socketpair: our end kept, libraft's end returned. */
static uv_stream_t *open_pair(struct ctls_chan *c)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return NULL;
    uv_pipe_t *raft_end = raft_malloc(sizeof *raft_end);
    if (raft_end == NULL || uv_pipe_init(c->tl->cfg.loop, &c->inner, 0) != 0) {
        raft_free(raft_end);
        close(sv[0]);
        close(sv[1]);
        return NULL;
    }
    c->inner.data = c;
    c->inner_init = true;
    c->pending_closes++;
    if (uv_pipe_open(&c->inner, sv[0]) != 0 ||
        uv_pipe_init(c->tl->cfg.loop, raft_end, 0) != 0) {
        close(sv[0]);
        close(sv[1]);
        raft_free(raft_end);
        return NULL;
    }
    if (uv_pipe_open(raft_end, sv[1]) != 0) {
        close(sv[1]);
        uv_close((uv_handle_t *)raft_end, raft_end_closed);
        return NULL;
    }
    uv_read_start((uv_stream_t *)&c->inner, alloc_cb, inner_read_cb);
    c->reading_inner = true;
    return (uv_stream_t *)raft_end;
}

/* ------------------------------------------------------ request channels */

static int chan_write(struct ctls_chan *c, const uint8_t *hdr,
                      const uint8_t *buf, size_t len)
{
    char eb[200];
    ERR_clear_error();
    if (SSL_write(c->ssl, hdr, 4) != 4 ||
        (len > 0 && SSL_write(c->ssl, buf, (int)len) != (int)len)) {
        conn_close(c, false, ssl_err(eb, sizeof eb));
        return -1;
    }
    flush_wbio(c);
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >
        CHAN_QUEUE_MAX) {
        conn_close(c, false, "peer does not read its requests");
        return -1;
    }
    return 0;
}

int ctls_chan_send(struct ctls_chan *c, const uint8_t *buf, size_t len)
{
    uint8_t hdr[4];
    if (c->state == ST_CLOSING)
        return -1;
    if (len > CTLS_FRAME_MAX) {
        conn_close(c, true, "frame too large");
        return -1;
    }
    for (int i = 0; i < 4; i++)
        hdr[i] = (uint8_t)(len >> (8 * i));
    if (c->state == ST_OPEN)
        return chan_write(c, hdr, buf, len);
    if (c->plen + 4 + len > CHAN_QUEUE_MAX) {
        conn_close(c, false, "request queue full before the link opened");
        return -1;
    }
    if (c->plen + 4 + len > c->pcap) {
        size_t cap = c->pcap ? c->pcap : 4096;
        while (cap < c->plen + 4 + len)
            cap *= 2;
        uint8_t *p = malloc(cap);
        if (p == NULL) {
            conn_close(c, false, "out of memory");
            return -1;
        }
        if (c->plen > 0)
            memcpy(p, c->pend, c->plen);
        if (c->pend != NULL)
            util_free_wipe(c->pend, c->pcap);
        c->pend = p;
        c->pcap = cap;
    }
    memcpy(c->pend + c->plen, hdr, 4);
    if (len > 0)
        memcpy(c->pend + c->plen + 4, buf, len);
    c->plen += 4 + len;
    return 0;
}

/* Plaintext of a request channel: cut into frames. */
static void chan_bytes(struct ctls_chan *c, const uint8_t *p, size_t n)
{
    while (c->state == ST_OPEN) {
        size_t need = 4;
        if (c->flen >= 4) {
            uint32_t fl = (uint32_t)c->fbuf[0] | (uint32_t)c->fbuf[1] << 8 |
                          (uint32_t)c->fbuf[2] << 16 |
                          (uint32_t)c->fbuf[3] << 24;
            if (fl > CTLS_FRAME_MAX) {
                refuse(c, &c->tl->stats.refused, "request frame too large");
                return;
            }
            need = 4 + (size_t)fl;
            if (c->flen == need) {
                c->flen = 0;
                if (c->on_frame != NULL)
                    c->on_frame(c->data, c, c->fbuf + 4, need - 4);
                continue;
            }
        }
        if (n == 0)
            return;
        if (c->fcap < need) {
            size_t cap = c->fcap ? c->fcap : 4096;
            while (cap < need)
                cap *= 2;
            uint8_t *nb = malloc(cap);
            if (nb == NULL) {
                conn_close(c, false, "out of memory");
                return;
            }
            if (c->flen > 0)
                memcpy(nb, c->fbuf, c->flen);
            if (c->fbuf != NULL)
                util_free_wipe(c->fbuf, c->fcap);
            c->fbuf = nb;
            c->fcap = cap;
        }
        size_t take = need - c->flen < n ? need - c->flen : n;
        memcpy(c->fbuf + c->flen, p, take);
        c->flen += take;
        p += take;
        n -= take;
    }
}

static void chan_opened(struct ctls_chan *c)
{
    c->tl->stats.channels++;
    if (c->plen > 0) {
        ERR_clear_error();
        char eb[200];
        if (SSL_write(c->ssl, c->pend, (int)c->plen) != (int)c->plen) {
            conn_close(c, false, ssl_err(eb, sizeof eb));
            return;
        }
        util_wipe(c->pend, c->plen);
        c->plen = 0;
        flush_wbio(c);
    }
}

/* -------------------------------------------------------------- preamble */

static void preamble_outbound(struct ctls_chan *c, const char *p, size_t n)
{
    size_t take = sizeof ACK - c->pre_len < n ? sizeof ACK - c->pre_len : n;
    memcpy(c->pre + c->pre_len, p, take);
    c->pre_len += take;
    if (c->pre_len < sizeof ACK)
        return;
    if (memcmp(c->pre, ACK, sizeof ACK) != 0) {
        refused_by_peer(c, &c->tl->stats.refused, "bad ack");
        return;
    }
    uv_timer_stop(&c->timer);
    c->state = ST_OPEN;
    if (c->kind == K_CHAN) {
        log_debug("cluster tls: request link to node %" PRIu64 " open",
                  c->peer_id);
        chan_opened(c);
        if (take < n)
            chan_bytes(c, (const uint8_t *)p + take, n - take);
        return;
    }
    if (take < n) {
        conn_close(c, false, "data on an outbound raft stream");
        return;
    }
    uv_stream_t *s = open_pair(c);
    if (s == NULL) {
        conn_close(c, false, "socketpair failed");
        return;
    }
    c->tl->stats.tunnels++;
    struct raft_uv_connect *req = c->req;
    c->req = NULL; /* libraft owns the stream from now on */
    log_debug("cluster tls: raft link to node %" PRIu64 " open", c->peer_id);
    c->cb(req, s, 0);
}

static void preamble_inbound(struct ctls_chan *c, const char *p, size_t n)
{
    struct ctls *tl = c->tl;
    size_t take = 0;
    size_t need = PREAMBLE_HDR;
    char eb[200];
    for (;;) {
        if (c->pre_len >= PREAMBLE_HDR) {
            uint64_t alen = get64(c->pre + 16);
            if (alen == 0 || alen % 8 != 0 || alen > ADDR_MAX) {
                refuse(c, &c->tl->stats.refused, "bad preamble");
                return;
            }
            need = PREAMBLE_HDR + (size_t)alen;
        }
        if (c->pre_len >= need || take == n)
            break;
        size_t k = need - c->pre_len < n - take ? need - c->pre_len : n - take;
        memcpy(c->pre + c->pre_len, p + take, k);
        c->pre_len += k;
        take += k;
    }
    if (c->pre_len < need)
        return;
    uint64_t ver = get64(c->pre), id = get64(c->pre + 8);
    char address[ADDR_MAX + 1];
    size_t alen = need - PREAMBLE_HDR;
    memcpy(address, c->pre + PREAMBLE_HDR, alen);
    address[alen] = 0; /* a hint for raft_leader(), not verified */
    if (ver != VERSION_RAFT && ver != VERSION_CHAN) {
        refuse(c, &c->tl->stats.refused, "unknown preamble version");
        return;
    }
    if (id != c->peer_id) {
        char why[160];
        snprintf(why, sizeof why,
                 "preamble claims node %" PRIu64
                 " but the certificate is node %" PRIu64,
                 id, c->peer_id);
        refuse(c, &c->tl->stats.refused, why);
        return;
    }
    const char *clone = c->clone ? tl->cfg.clones[c->clone - 1] : NULL;
    if (clone != NULL && ver != VERSION_CHAN) {
        char why[200];
        snprintf(why, sizeof why,
                 "node %" PRIu64 " of cluster %s (a clone) may open request "
                 "links only, not raft",
                 id, clone);
        refuse(c, &c->tl->stats.refused, why);
        return;
    }
    if (clone == NULL && tl->cfg.admit != NULL &&
        !tl->cfg.admit(tl->cfg.ctx, id)) {
        char why[160];
        snprintf(why, sizeof why,
                 "node %" PRIu64 " is not a member of the cluster", id);
        refuse(c, &c->tl->stats.refused, why);
        return;
    }
    ERR_clear_error();
    if (SSL_write(c->ssl, ACK, sizeof ACK) != sizeof ACK) {
        conn_close(c, false, ssl_err(eb, sizeof eb));
        return;
    }
    flush_wbio(c);
    uv_timer_stop(&c->timer);
    c->state = ST_OPEN;
    if (ver == VERSION_CHAN) {
        c->kind = K_CHAN;
        tl->stats.channels++;
        if (tl->cfg.chan_accept != NULL)
            tl->cfg.chan_accept(tl->cfg.ctx, c, id, clone);
        if (c->on_frame == NULL) {
            conn_close(c, false, "no taker for the request link");
            return;
        }
        if (take < n)
            chan_bytes(c, (const uint8_t *)p + take, n - take);
        return;
    }
    c->kind = K_RAFT;
    if (tl->accept_cb == NULL) {
        conn_close(c, false, "not listening for raft");
        return;
    }
    uv_stream_t *s = open_pair(c);
    if (s == NULL) {
        conn_close(c, false, "socketpair failed");
        return;
    }
    tl->stats.tunnels++;
    log_debug("cluster tls: accepted raft link from node %" PRIu64 " (%s)", id,
              c->peer);
    tl->accept_cb(tl->t, id, address, s);
    if (take < n)
        to_inner(c, p + take, n - take);
}

static void send_preamble(struct ctls_chan *c)
{
    unsigned char pre[PREAMBLE_MAX];
    size_t al = strlen(c->tl->address);
    size_t alen = (al + 1 + 7) & ~(size_t)7;
    char eb[200];
    memset(pre, 0, sizeof pre);
    put64(pre, c->kind == K_CHAN ? VERSION_CHAN : VERSION_RAFT);
    put64(pre + 8, c->tl->id);
    put64(pre + 16, alen);
    memcpy(pre + PREAMBLE_HDR, c->tl->address, al);
    ERR_clear_error();
    if (SSL_write(c->ssl, pre, (int)(PREAMBLE_HDR + alen)) !=
        (int)(PREAMBLE_HDR + alen)) {
        conn_close(c, false, ssl_err(eb, sizeof eb));
        return;
    }
    flush_wbio(c);
}

static void handshake_done(struct ctls_chan *c)
{
    struct ctls *tl = c->tl;
    X509 *cert = SSL_get0_peer_certificate(c->ssl);
    bool other = false;
    uint64_t cid =
        cert_node_id(c->outbound && c->cluster[0] ? c->cluster : tl->cluster_id,
                     cert, &other);
    /* inbound: a node of a clone this node serves */
    for (size_t i = 0; cid == 0 && other && !c->outbound && i < tl->cfg.nclones;
         i++) {
        bool o2;
        if ((cid = cert_node_id(tl->cfg.clones[i], cert, &o2)) != 0)
            c->clone = (int)i + 1;
    }
    if (cid == 0) {
        refused_by_peer(c, &tl->stats.refused,
                        other ? "the certificate is for another cluster"
                              : "the certificate names no urn:nimbus:cluster:"
                                "<id>:node:<n>");
        return;
    }
    if (c->outbound) {
        if (c->peer_id == 0) {
            c->peer_id = cid; /* dialled "any member at this address" */
        } else if (cid != c->peer_id) {
            char why[128];
            snprintf(why, sizeof why,
                     "dialled node %" PRIu64
                     ", the certificate is node %" PRIu64,
                     c->peer_id, cid);
            refused_by_peer(c, &c->tl->stats.refused, why);
            return;
        }
        c->state = ST_PREAMBLE;
        send_preamble(c);
    } else {
        c->peer_id = cid;
        c->state = ST_PREAMBLE;
    }
}

static void drive(struct ctls_chan *c)
{
    char eb[200];
    if (c->state == ST_HANDSHAKE) {
        ERR_clear_error(); /* the error queue is the thread's, not ours */
        int r = SSL_do_handshake(c->ssl);
        flush_wbio(c); /* handshake records, alerts */
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                return;
            char why[400];
            long vr = SSL_get_verify_result(c->ssl);
            snprintf(why, sizeof why, "TLS handshake failed: %s%s%s",
                     ssl_err(eb, sizeof eb),
                     vr != X509_V_OK ? "; verify: " : "",
                     vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
            if (vr != X509_V_OK)
                refused_by_peer(c, &c->tl->stats.hs_failed, why);
            else
                refuse(c, &c->tl->stats.hs_failed, why);
            return;
        }
        handshake_done(c);
        if (c->state != ST_PREAMBLE)
            return;
    }
    while (!c->tcp_paused && c->state != ST_CLOSING) {
        ERR_clear_error();
        int r = SSL_read(c->ssl, c->tl->iobuf, sizeof c->tl->iobuf);
        if (r <= 0) {
            int e = SSL_get_error(c->ssl, r);
            flush_wbio(c); /* a KeyUpdate answer, an alert */
            if (e == SSL_ERROR_WANT_READ)
                break;
            if (e == SSL_ERROR_ZERO_RETURN) {
                conn_close(c, true, "peer sent close_notify");
            } else {
                char why[300];
                snprintf(why, sizeof why, "TLS error: %s",
                         ssl_err(eb, sizeof eb));
                if (c->state == ST_PREAMBLE)
                    refused_by_peer(c, &c->tl->stats.hs_failed, why);
                else
                    conn_close(c, false, why);
            }
            return;
        }
        if (c->state == ST_PREAMBLE) {
            if (c->outbound)
                preamble_outbound(c, c->tl->iobuf, (size_t)r);
            else
                preamble_inbound(c, c->tl->iobuf, (size_t)r);
        } else if (c->state == ST_OPEN) {
            if (c->kind == K_CHAN) {
                chan_bytes(c, (const uint8_t *)c->tl->iobuf, (size_t)r);
            } else if (c->outbound) {
                conn_close(c, false, "data on an outbound raft stream");
                return;
            } else {
                to_inner(c, c->tl->iobuf, (size_t)r);
            }
        }
    }
    if (c->state != ST_CLOSING)
        flush_wbio(c);
}

static void tcp_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct ctls_chan *c = s->data;
    if (n == 0 || c->state == ST_CLOSING)
        return;
    if (n < 0) {
        if (c->state == ST_PREAMBLE)
            refused_by_peer(c, &c->tl->stats.hs_failed,
                            "connection closed before the ack");
        else if (c->state < ST_OPEN && c->state != ST_TCP_CONNECT)
            refuse(c, &c->tl->stats.hs_failed,
                   "connection closed during the handshake");
        else
            conn_close(c, false,
                       n == UV_EOF ? "EOF without close_notify"
                                   : uv_strerror((int)n));
        return;
    }
    c->tl->stats.bytes_in += (uint64_t)n;
    if (BIO_write(c->rbio, buf->base, (int)n) != (int)n) {
        conn_close(c, false, "out of memory");
        return;
    }
    drive(c);
}

static void handshake_timeout_cb(uv_timer_t *t)
{
    refuse(t->data, &((struct ctls_chan *)t->data)->tl->stats.hs_failed,
           "handshake timeout");
}

static struct ctls_chan *conn_new(struct ctls *tl, bool outbound)
{
    struct ctls_chan *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->tl = tl;
    c->outbound = outbound;
    c->next = tl->conns;
    if (tl->conns != NULL)
        tl->conns->prev = c;
    tl->conns = c;
    uv_tcp_init(tl->cfg.loop, &c->tcp);
    uv_timer_init(tl->cfg.loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->pending_closes = 2; /* tcp, timer */
    snprintf(c->ip, sizeof c->ip, "?");
    uv_timer_start(&c->timer, handshake_timeout_cb, HANDSHAKE_TIMEOUT_MS, 0);
    return c;
}

static void start_tls(struct ctls_chan *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    c->ssl = SSL_new(c->tl->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        conn_close(c, false, "out of memory");
        return;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    if (c->outbound)
        SSL_set_connect_state(c->ssl);
    else
        SSL_set_accept_state(c->ssl);
    c->state = ST_HANDSHAKE;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, tcp_read_cb);
    drive(c); /* the client's ClientHello */
}

/* ------------------------------------------------------------ listening */

static void peer_name(struct ctls_chan *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, c->ip, sizeof c->ip);
        snprintf(c->peer, sizeof c->peer, "%s:%d", c->ip, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, c->ip, sizeof c->ip);
        snprintf(c->peer, sizeof c->peer, "[%s]:%d", c->ip,
                 ntohs(a->sin6_port));
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct ctls *tl = server->data;
    if (status < 0 || tl->closing)
        return;
    struct ctls_chan *c = conn_new(tl, false);
    if (c == NULL)
        return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, false, "accept failed");
        return;
    }
    peer_name(c);
    size_t total = 0, same = 0;
    for (struct ctls_chan *o = tl->conns; o != NULL; o = o->next) {
        if (o == c || o->outbound || o->state >= ST_OPEN)
            continue;
        total++;
        if (strcmp(o->ip, c->ip) == 0)
            same++;
    }
    if (total >= HS_MAX_TOTAL || same >= HS_MAX_PER_IP) {
        refuse(c, &tl->stats.over_cap, "too many handshakes in progress");
        return;
    }
    start_tls(c);
}

static int parse_addr(const char *address, struct sockaddr_storage *ss)
{
    char host[ADDR_MAX];
    const char *colon = strrchr(address, ':');
    if (colon == NULL || colon == address ||
        (size_t)(colon - address) >= sizeof host)
        return -1;
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != 0 || end == colon + 1 || port == 0 ||
        port > 65535)
        return -1;
    size_t hl = (size_t)(colon - address);
    const char *h = address;
    if (h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = 0;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -1;
}

/* ---------------------------------------------- struct raft_uv_transport */

static int tp_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct ctls *tl = t->impl;
    /* the address and id the transport was made for */
    if (id != tl->id || strcmp(address, tl->address) != 0)
        return RAFT_INVALID;
    return 0;
}

int ctls_listen(struct ctls *tl)
{
    struct sockaddr_storage ss;
    if (tl->listening)
        return 0;
    if (parse_addr(tl->address, &ss) != 0)
        return UV_EINVAL;
    int rv = uv_tcp_init(tl->cfg.loop, &tl->listener);
    if (rv != 0)
        return rv;
    tl->listener.data = tl;
    tl->listening = true;
    rv = uv_tcp_bind(&tl->listener, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&tl->listener, 64, on_connection);
    return rv;
}

static int tp_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct ctls *tl = t->impl;
    tl->accept_cb = cb; /* raft streams are let in from now on */
    int rv = ctls_listen(tl);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "listen on %.200s: %s",
                 tl->address, uv_strerror(rv));
        return RAFT_IOERR;
    }
    return 0;
}

static void connect_cb(uv_connect_t *r, int status)
{
    struct ctls_chan *c = r->data;
    if (c->state == ST_CLOSING)
        return;
    if (status < 0) {
        conn_close(c, false, uv_strerror(status));
        return;
    }
    peer_name(c);
    start_tls(c);
}

static struct ctls_chan *dial(struct ctls *tl, uint64_t id, const char *address,
                              enum conn_kind kind, int *err)
{
    struct sockaddr_storage ss;
    *err = 0;
    if (tl->closing || parse_addr(address, &ss) != 0) {
        *err = -1;
        return NULL;
    }
    struct ctls_chan *c = conn_new(tl, true);
    if (c == NULL) {
        *err = -1;
        return NULL;
    }
    c->peer_id = id;
    c->kind = kind;
    snprintf(c->peer, sizeof c->peer, "%s", address);
    c->state = ST_TCP_CONNECT;
    c->creq.data = c;
    int rv =
        uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss, connect_cb);
    if (rv != 0) {
        *err = rv;
        conn_close(c, false, uv_strerror(rv));
        return NULL;
    }
    return c;
}

static int tp_connect(struct raft_uv_transport *t, struct raft_uv_connect *req,
                      raft_id id, const char *address, raft_uv_connect_cb cb)
{
    struct ctls *tl = t->impl;
    int err;
    struct ctls_chan *c = dial(tl, id, address, K_RAFT, &err);
    /* A synchronous failure: libraft retries on a non-zero return, the
     * callback must not run as well. */
    if (c == NULL)
        return RAFT_NOCONNECTION;
    c->req = req;
    c->cb = cb;
    req->cb = cb;
    return 0;
}

static void listener_closed(uv_handle_t *h)
{
    struct ctls *tl = h->data;
    tl->listener_closed = true;
    maybe_fire_close(tl);
}

static void tp_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct ctls *tl = t->impl;
    tl->closing = true;
    tl->close_cb = cb;
    if (tl->listening)
        uv_close((uv_handle_t *)&tl->listener, listener_closed);
    /* Everything goes, also the streams libraft holds (they see EOF):
     * nothing may outlive the transport. */
    for (struct ctls_chan *c = tl->conns; c != NULL; c = c->next)
        conn_close(c, c->state == ST_OPEN, NULL);
    maybe_fire_close(tl);
}

/* -------------------------------------------------------------- public */

void ctls_shutdown(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    tp_close(t, cb);
}

struct ctls_chan *ctls_chan_open(struct ctls *tl, uint64_t peer,
                                 const char *address, const char *cluster,
                                 ctls_frame_cb on_frame, ctls_close_cb on_close,
                                 void *data)
{
    int err;
    if (cluster != NULL && strlen(cluster) > CLUSTER_ID_MAX)
        return NULL;
    struct ctls_chan *c = dial(tl, peer, address, K_CHAN, &err);
    if (c == NULL)
        return NULL;
    if (cluster != NULL)
        snprintf(c->cluster, sizeof c->cluster, "%s", cluster);
    ctls_chan_set(c, on_frame, on_close, data);
    return c;
}

void ctls_chan_set(struct ctls_chan *c, ctls_frame_cb on_frame,
                   ctls_close_cb on_close, void *data)
{
    c->on_frame = on_frame;
    c->on_close = on_close;
    c->data = data;
}

void ctls_chan_close(struct ctls_chan *c)
{
    conn_close(c, c->state == ST_OPEN, NULL);
}

uint64_t ctls_chan_peer(const struct ctls_chan *c)
{
    return c->peer_id;
}

bool ctls_chan_refused(const struct ctls_chan *c)
{
    return c->refused;
}

void ctls_chan_note_refusal(struct ctls_chan *c, const char *why)
{
    refuse_log(c, &c->tl->stats.refused, why);
}

struct ctls *ctls_of(struct raft_uv_transport *t)
{
    return t->impl;
}

void ctls_get_stats(struct ctls *tl, struct ctls_stats *st)
{
    *st = tl->stats;
}

int ctls_init(struct raft_uv_transport *t, const struct ctls_config *cfg)
{
    char eb[200];
    struct ctls *tl = calloc(1, sizeof *tl);
    if (tl == NULL)
        return -1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL)
        goto fail;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, cfg->key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1 ||
        SSL_CTX_load_verify_locations(ctx, cfg->ca, NULL) != 1) {
        log_error("cluster tls: cannot load the node's PKI (%s, %s, %s): %s",
                  cfg->ca, cfg->cert, cfg->key, ssl_err(eb, sizeof eb));
        goto fail;
    }
    /* Both sides authenticate; the cluster CA is the only anchor. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
    /* No tickets, no resumption, no 0-RTT: every link is a full handshake
     * checked against the current membership. */
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_max_early_data(ctx, 0);
    tl->t = t;
    tl->cfg = *cfg;
    snprintf(tl->cluster_id, sizeof tl->cluster_id, "%s", cfg->cluster_id);
    tl->cfg.cluster_id = tl->cluster_id;
    if (strlen(cfg->address) >= sizeof tl->address)
        goto fail;
    snprintf(tl->address, sizeof tl->address, "%s", cfg->address);
    tl->cfg.address = tl->address;
    tl->cfg.ca = tl->cfg.cert = tl->cfg.key = NULL;
    tl->ctx = ctx;
    tl->id = cfg->node_id;
    memset(t, 0, sizeof *t);
    /* by name: libraft >= 0.17 puts a version member first */
    t->impl = tl;
    t->init = tp_init;
    t->listen = tp_listen;
    t->connect = tp_connect;
    t->close = tp_close;
    return 0;
fail:
    SSL_CTX_free(ctx);
    free(tl);
    return -1;
}

void ctls_free(struct raft_uv_transport *t)
{
    struct ctls *tl = t->impl;
    if (tl == NULL)
        return;
    SSL_CTX_free(tl->ctx);
    free(tl);
    t->impl = NULL;
}

void ctls_recheck(struct ctls *tl)
{
    if (tl->cfg.admit == NULL)
        return;
    for (struct ctls_chan *c = tl->conns; c != NULL; c = c->next) {
        if (!c->outbound && c->state == ST_OPEN && c->clone == 0 &&
            !tl->cfg.admit(tl->cfg.ctx, c->peer_id))
            conn_close(c, false, "no longer a member of the cluster");
    }
}
