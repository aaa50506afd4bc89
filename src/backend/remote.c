/*
 * remote.c - the remote backend: every call of the seam carried to nimbusd
 * by the wire client (src/wire/client.h) over a transport link
 * (src/wire/transport.h).
 *
 * A backend_conn_t is one connection on the server (one login and its
 * sessions) reached over a pool of channels (sockets): the first channel's
 * handshake creates it and hands back an attach token, further channels
 * attach with that token so that application threads run calls in
 * parallel. A call takes an idle channel, or opens one up to
 * REMOTE_MAX_CHANNELS, or waits for one; no thread is started. Sockets are
 * close-on-exec (the transport makes them so).
 *
 * When a channel breaks (the daemon died or restarted) the connection is
 * dead for good, as backend.h says: on the server its login and sessions
 * are gone, so every later call answers CKR_DEVICE_REMOVED at once and the
 * caller opens a new connection. A connection never reconnects by itself:
 * session ids of a new server connection start again from 1, and an old
 * id must never reach the new connection.
 *
 * The calls made on the backend itself (token info without a connection,
 * init_token, the mechanism list and info) go over an auxiliary connection
 * opened when first needed and opened afresh once it is dead.
 *
 * A call that has no reply within call_timeout (nimbus.conf) answers
 * CKR_DEVICE_ERROR and its connection dies as above: the channel is
 * closed and never read again (a late reply must not answer a later
 * call), the server drops the login once the other channels close, and
 * the front end's next call reconnects. A new channel's connect, TLS
 * and version handshakes share one shorter bound (chan_open).
 *
 * Fork: a child never touches any of this. The front end abandons the
 * parent's state in the child and its C_Initialize opens a new backend
 * (new sockets, a new TLS context); nothing of the parent's TLS state is
 * reused.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "backend/backend_impl.h"
#include "common/log.h"
#include "common/util.h"
#include "wire/client.h"
#include "wire/transport.h"

/* Channels (sockets) per connection: calls in parallel per application. */
#define REMOTE_MAX_CHANNELS 16
#define REMOTE_CLIENT_NAME "nimbus " PACKAGE_VERSION

extern char *program_invocation_short_name;

struct remote;
struct remote_conn;

/* One socket of a connection. */
struct rchan {
    wire_link_t *link;
    wire_client_t *cl;
    size_t max_read;          /* largest reply frame accepted */
    uint64_t used_ns;         /* CLOCK_MONOTONIC at the end of its last call */
    unsigned long timeout_ms; /* each call's bound (0: none) */
    bool handshaking;   /* the connect's deadline still runs (chan_open) */
    struct rchan *next; /* in the idle list */
};

struct remote_conn {
    struct backend_conn base;
    struct remote *r;
    size_t ep; /* the server (cfg.servers[ep]) every channel goes to */
    uint8_t token[WIRE_TOKEN_LEN];
    pthread_mutex_t lock;
    pthread_cond_t cv; /* a channel came back, or the connection died */
    struct rchan *idle;
    size_t nchan; /* open channels, idle or in use (and being opened) */
    size_t busy;  /* in use (and being opened) */
    size_t cap;   /* channels the server granted at most */
    atomic_bool dead;
};

struct remote {
    struct backend base;
    struct config cfg;
    wire_tls_t *tls; /* NULL: no tls: endpoint */
    char client_name[96];
    char aux_name[96];        /* the auxiliary connection's, told apart */
    unsigned long call_ms;    /* call_timeout in ms (0: none) */
    unsigned long connect_ms; /* a new channel's handshakes, all in all */
    pthread_mutex_t aux_lock; /* held for every call on aux */
    struct remote_conn *aux;
};

static struct remote *R(backend_t *be)
{
    return (struct remote *)be;
}

static struct remote_conn *RC(backend_conn_t *c)
{
    return (struct remote_conn *)c;
}

/* ------------------------------------------------------------ channels */

/* How long a channel polls for a reply before it sleeps: a small call's
 * reply (a signature's init, an ECDSA signature) and an RSA-2048
 * signature (about 240 µs) come within it; on an idle machine the sleep
 * and wake-up it saves cost tens of µs. Slower replies (keygen, a KDF)
 * turn the polling off after two of them (transport.h). */
#define REMOTE_SPIN_US 400

/* See rm_conn_lost. */
#define REMOTE_FRESH_NS (1000u * 1000u)

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The call's bound, from now, over the write and the reply's read; the
 * version handshake stays under the connect's deadline. */
static void chan_arm(struct rchan *ch)
{
    if (!ch->handshaking)
        wire_link_set_deadline(ch->link, ch->timeout_ms);
}

/* A call passed its bound: the channel is done (transport.h). */
static bool chan_timed_out(const struct rchan *ch)
{
    return wire_link_timed_out(ch->link);
}

/* The wire client's transfer: one frame out, one frame back. */
static bool chan_xfer(void *ctx, const uint8_t *req, size_t len, uint8_t **resp,
                      size_t *resp_len)
{
    struct rchan *ch = ctx;

    *resp = NULL;
    *resp_len = 0;
    chan_arm(ch);
    if (wire_frame_write(ch->link, req, len) != WIRE_IO_OK)
        return false;
    /* Into the link's kept buffer: a bulk reply faults in no fresh pages
     * per call. chan_resp_done wipes it once decoded. */
    return wire_frame_read_kept(ch->link, ch->max_read, resp, resp_len) ==
           WIRE_IO_OK;
}

/* chan_xfer with the request in pieces: a bulk input goes from the
 * application's buffer to the socket without a copy. */
static bool chan_xferv(void *ctx, const struct iovec *iov, size_t n,
                       uint8_t **resp, size_t *resp_len)
{
    struct rchan *ch = ctx;

    *resp = NULL;
    *resp_len = 0;
    chan_arm(ch);
    if (wire_frame_writev(ch->link, iov, n) != WIRE_IO_OK)
        return false;
    return wire_frame_read_kept(ch->link, ch->max_read, resp, resp_len) ==
           WIRE_IO_OK;
}

/* chan_xfer that also takes a descriptor passed with the reply (the
 * shared bulk region; unix links only). */
static bool chan_xfer_fd(void *ctx, const uint8_t *req, size_t len,
                         uint8_t **resp, size_t *resp_len, int *fd)
{
    struct rchan *ch = ctx;

    *resp = NULL;
    *resp_len = 0;
    *fd = -1;
    chan_arm(ch);
    if (wire_frame_write(ch->link, req, len) != WIRE_IO_OK)
        return false;
    return wire_frame_read_kept_fd(ch->link, ch->max_read, resp, resp_len,
                                   fd) == WIRE_IO_OK;
}

static void chan_resp_done(void *ctx, uint8_t *resp, size_t len)
{
    struct rchan *ch = ctx;

    (void)resp;
    wire_frame_done(ch->link, len);
}

static void chan_close(struct rchan *ch)
{
    if (ch == NULL)
        return;
    wire_client_free(ch->cl);
    wire_link_close(ch->link);
    free(ch);
}

/*
 * A channel to server ep: a new connection (token NULL; its token into
 * token_out) or attached to the connection token names.
 * CKR_DEVICE_REMOVED: the server cannot be reached, or no longer knows
 * the connection.
 */
static CK_RV chan_open(struct remote *r, size_t ep, const char *name,
                       const uint8_t *token, uint8_t token_out[WIRE_TOKEN_LEN],
                       struct rchan **out)
{
    char err[256] = "", epname[CONFIG_UNIX_PATH_MAX + CONFIG_HOST_MAX + 16];
    struct rchan *ch;
    CK_RV rv;

    *out = NULL;
    ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        return CKR_HOST_MEMORY;
    ch->max_read = r->cfg.max_frame;
    /* connect, TLS handshake and version handshake: one bound */
    ch->timeout_ms = r->connect_ms;
    ch->handshaking = true;
    if (!wire_link_connect_timed(&r->cfg.servers[ep], r->tls, r->connect_ms,
                                 &ch->link, err, sizeof(err))) {
        /* info, not warn: while the daemon is down every call says so */
        config_format_endpoint(&r->cfg.servers[ep], epname, sizeof(epname));
        log_info("remote: %s: %s", epname, err);
        free(ch);
        return CKR_DEVICE_REMOVED;
    }
    /* Wait for replies by polling a little first (bounded and adaptive:
     * a reply from a distant or busy server turns it off by itself), and
     * on a unix socket read small replies in one recv (transport.h). */
    wire_link_set_spin(ch->link, REMOTE_SPIN_US);
    if (r->cfg.servers[ep].kind == CONFIG_EP_UNIX)
        (void)wire_link_set_readahead(ch->link);
    rv = wire_client_new(chan_xfer, ch, r->cfg.max_frame, &ch->cl);
    if (rv == CKR_OK) {
        wire_client_set_resp_done(ch->cl, chan_resp_done);
        wire_client_set_xferv(ch->cl, chan_xferv);
        if (r->cfg.servers[ep].kind == CONFIG_EP_UNIX)
            wire_client_set_xfer_fd(ch->cl, chan_xfer_fd);
        rv = wire_cl_hello(ch->cl, name, token, token_out);
    }
    if (rv != CKR_OK) {
        config_format_endpoint(&r->cfg.servers[ep], epname, sizeof(epname));
        if (chan_timed_out(ch))
            log_info("remote: %s: no handshake reply within %lu ms", epname,
                     r->connect_ms);
        else
            log_info("remote: %s: handshake: 0x%lx", epname, (unsigned long)rv);
        chan_close(ch);
        /* another protocol version stays a device error */
        return rv == CKR_HOST_MEMORY || rv == CKR_DEVICE_ERROR
                   ? rv
                   : CKR_DEVICE_REMOVED;
    }
    ch->timeout_ms = r->call_ms;
    ch->handshaking = false;
    *out = ch;
    return CKR_OK;
}

/* The connection is dead: its idle channels close now, the ones in use as
 * they come back. Caller holds rc->lock. */
static void conn_kill_locked(struct remote_conn *rc)
{
    if (!atomic_load(&rc->dead))
        log_info("remote: connection to the server lost");
    atomic_store(&rc->dead, true);
    while (rc->idle != NULL) {
        struct rchan *ch = rc->idle;

        rc->idle = ch->next;
        rc->nchan--;
        chan_close(ch);
    }
    pthread_cond_broadcast(&rc->cv);
}

/*
 * A channel of rc for one call: an idle one, else a new one (attached with
 * the token) up to the bound, else the first that comes back.
 */
static CK_RV chan_get(struct remote_conn *rc, struct rchan **out)
{
    struct rchan *ch = NULL;
    CK_RV rv;

    *out = NULL;
    pthread_mutex_lock(&rc->lock);
    for (;;) {
        if (atomic_load(&rc->dead)) {
            pthread_mutex_unlock(&rc->lock);
            return CKR_DEVICE_REMOVED;
        }
        if (rc->idle != NULL) {
            ch = rc->idle;
            rc->idle = ch->next;
            ch->next = NULL;
            rc->busy++;
            pthread_mutex_unlock(&rc->lock);
            *out = ch;
            return CKR_OK;
        }
        if (rc->nchan < rc->cap)
            break;
        pthread_cond_wait(&rc->cv, &rc->lock);
    }
    rc->nchan++;
    rc->busy++;
    pthread_mutex_unlock(&rc->lock);

    rv = chan_open(rc->r, rc->ep, NULL, rc->token, NULL, &ch);

    pthread_mutex_lock(&rc->lock);
    if (rv != CKR_OK) {
        rc->nchan--;
        rc->busy--;
        if (rc->nchan == 0) {
            /* nothing left to carry the connection: gone */
            conn_kill_locked(rc);
            rv = CKR_DEVICE_REMOVED;
        } else {
            /* The server refused one more channel (max_connections) or
             * went away: use the ones there are; if it went away they
             * say so when next used. */
            rc->cap = rc->nchan;
            pthread_cond_broadcast(&rc->cv);
            pthread_mutex_unlock(&rc->lock);
            return chan_get(rc, out);
        }
        pthread_mutex_unlock(&rc->lock);
        return rv;
    }
    if (atomic_load(&rc->dead)) {
        rc->nchan--;
        rc->busy--;
        pthread_cond_broadcast(&rc->cv);
        pthread_mutex_unlock(&rc->lock);
        chan_close(ch);
        return CKR_DEVICE_REMOVED;
    }
    pthread_mutex_unlock(&rc->lock);
    *out = ch;
    return CKR_OK;
}

/*
 * Gives ch back after a call that answered rv; returns what the call
 * answers. A call without a reply in time is CKR_DEVICE_ERROR (the
 * server may be stopped or wedged rather than gone) and kills the
 * connection as a broken link does: its channel may still receive the
 * late reply, so it is closed unread.
 */
static CK_RV chan_put(struct remote_conn *rc, struct rchan *ch, CK_RV rv)
{
    bool late = chan_timed_out(ch);

    if (late) {
        log_warn("remote: no reply from the server within call_timeout "
                 "(%lu s): the connection is dropped",
                 ch->timeout_ms / 1000);
        rv = CKR_DEVICE_ERROR;
    }
    pthread_mutex_lock(&rc->lock);
    rc->busy--;
    if (rv == CKR_DEVICE_REMOVED || late || atomic_load(&rc->dead)) {
        /* the link broke: the server has dropped the connection (or will,
         * once its other channels close) */
        rc->nchan--;
        chan_close(ch);
        conn_kill_locked(rc);
    } else {
        ch->used_ns = mono_ns();
        ch->next = rc->idle;
        rc->idle = ch;
        pthread_cond_signal(&rc->cv);
    }
    pthread_mutex_unlock(&rc->lock);
    return rv;
}

/* One wire call on a channel of conn: the caller's `return CALL(...)`. */
#define CALL(conn, expr)                                                       \
    do {                                                                       \
        struct remote_conn *rc_ = RC(conn);                                    \
        struct rchan *ch_;                                                     \
        CK_RV rv_ = chan_get(rc_, &ch_);                                       \
        if (rv_ != CKR_OK)                                                     \
            return rv_;                                                        \
        wire_client_t *cl = ch_->cl;                                           \
        rv_ = (expr);                                                          \
        return chan_put(rc_, ch_, rv_);                                        \
    } while (0)

/* ------------------------------------------------------------ connections */

static void conn_free(struct remote_conn *rc)
{
    pthread_mutex_lock(&rc->lock);
    /* Nothing new starts; calls under way finish (a connection is closed
     * only once its caller made no more calls, but be safe). */
    atomic_store(&rc->dead, true);
    while (rc->busy > 0)
        pthread_cond_wait(&rc->cv, &rc->lock);
    while (rc->idle != NULL) {
        struct rchan *ch = rc->idle;

        rc->idle = ch->next;
        chan_close(ch);
    }
    pthread_mutex_unlock(&rc->lock);
    pthread_cond_destroy(&rc->cv);
    pthread_mutex_destroy(&rc->lock);
    util_wipe(rc->token, sizeof(rc->token));
    free(rc);
}

/* A new connection on the first server of the list that answers. */
static CK_RV conn_new(struct remote *r, const char *name,
                      struct remote_conn **out)
{
    struct remote_conn *rc;
    struct rchan *ch = NULL;
    CK_RV rv = CKR_DEVICE_REMOVED;

    *out = NULL;
    rc = calloc(1, sizeof(*rc));
    if (rc == NULL)
        return CKR_HOST_MEMORY;
    if (util_mutex_init(&rc->lock) != 0) {
        free(rc);
        return CKR_GENERAL_ERROR;
    }
    if (pthread_cond_init(&rc->cv, NULL) != 0) {
        pthread_mutex_destroy(&rc->lock);
        free(rc);
        return CKR_GENERAL_ERROR;
    }
    rc->base.be = &r->base;
    rc->r = r;
    rc->cap = REMOTE_MAX_CHANNELS;
    atomic_init(&rc->dead, false);
    /* The first server of the list that answers serves this connection,
     * all its channels (a client of several servers opens one remote
     * backend per server: failover.c). */
    for (size_t ep = 0; ep < r->cfg.nservers; ep++) {
        rv = chan_open(r, ep, name, NULL, rc->token, &ch);
        if (rv == CKR_OK) {
            rc->ep = ep;
            break;
        }
        if (rv == CKR_HOST_MEMORY)
            break;
    }
    if (rv != CKR_OK) {
        pthread_cond_destroy(&rc->cv);
        pthread_mutex_destroy(&rc->lock);
        free(rc);
        return rv;
    }
    rc->idle = ch;
    rc->nchan = 1;
    *out = rc;
    return CKR_OK;
}

static CK_RV rm_conn_open(backend_t *be, backend_conn_t **out)
{
    struct remote_conn *rc;
    CK_RV rv;

    *out = NULL;
    rv = conn_new(R(be), R(be)->client_name, &rc);
    if (rv == CKR_OK)
        *out = &rc->base;
    return rv;
}

static void rm_conn_close(backend_conn_t *conn)
{
    conn_free(RC(conn));
}

/*
 * Whether the server closed an idle channel (nimbusd stopped, killed or
 * restarted). The server never speaks unasked, so an end of stream, a
 * hang-up or an error on an idle socket means it is gone; readable bytes
 * (a TLS 1.3 session ticket not read yet) do not.
 */
static bool chan_hung_up(const struct rchan *ch)
{
    struct pollfd p = {.fd = wire_link_fd(ch->link),
                       .events = POLLIN | POLLRDHUP};
    char b;

    if (poll(&p, 1, 0) <= 0)
        return false;
    if ((p.revents & (POLLHUP | POLLERR | POLLNVAL | POLLRDHUP)) != 0)
        return true;
    return (p.revents & POLLIN) != 0 &&
           recv(p.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Dead already, or found dead now on an idle socket (one poll, no wait):
 * so that an application idle through a daemon restart gets its new
 * connection before its next call rather than a CKR_DEVICE_REMOVED. A
 * channel whose last call ended less than REMOTE_FRESH_NS ago is not
 * polled: no daemon restarts that fast, and a call in a busy loop saves a
 * system call (if the daemon just died, the call answers
 * CKR_DEVICE_REMOVED, as it would after the poll, and the next one
 * reconnects). */
static bool rm_conn_lost(backend_conn_t *conn)
{
    struct remote_conn *rc = RC(conn);

    if (atomic_load(&rc->dead))
        return true;
    pthread_mutex_lock(&rc->lock);
    if (rc->idle != NULL && mono_ns() - rc->idle->used_ns >= REMOTE_FRESH_NS &&
        chan_hung_up(rc->idle))
        conn_kill_locked(rc);
    pthread_mutex_unlock(&rc->lock);
    return atomic_load(&rc->dead);
}

/*
 * The auxiliary connection for the calls on the backend itself, opened
 * when first needed and again once dead. Returns with r->aux_lock held
 * on CKR_OK (aux_done releases it).
 */
static CK_RV aux_get(struct remote *r, struct remote_conn **out)
{
    CK_RV rv;

    pthread_mutex_lock(&r->aux_lock);
    if (r->aux != NULL && atomic_load(&r->aux->dead)) {
        conn_free(r->aux);
        r->aux = NULL;
    }
    if (r->aux == NULL && (rv = conn_new(r, r->aux_name, &r->aux)) != CKR_OK) {
        pthread_mutex_unlock(&r->aux_lock);
        return rv;
    }
    *out = r->aux;
    return CKR_OK;
}

static void aux_done(struct remote *r)
{
    pthread_mutex_unlock(&r->aux_lock);
}

/* ------------------------------------------------------------ backend */

static void rm_close(backend_t *be)
{
    struct remote *r = R(be);

    if (r->aux != NULL)
        conn_free(r->aux);
    pthread_mutex_destroy(&r->aux_lock);
    wire_tls_free(r->tls);
    free(r);
}

static CK_RV conn_token_info(backend_conn_t *conn, hsm_token_info_t *info)
{
    CALL(conn, wire_cl_token_info(cl, info));
}

static CK_RV rm_token_info(backend_t *be, backend_conn_t *conn,
                           hsm_token_info_t *info)
{
    struct remote_conn *aux;
    CK_RV rv;

    if (conn != NULL)
        return conn_token_info(conn, info);
    if ((rv = aux_get(R(be), &aux)) != CKR_OK)
        return rv;
    rv = conn_token_info(&aux->base, info);
    aux_done(R(be));
    return rv;
}

static CK_RV conn_init_token(backend_conn_t *conn, const char *name,
                             const uint8_t *pw, size_t pwlen, const char *label)
{
    CALL(conn, wire_cl_init_token(cl, name, pw, pwlen, label));
}

static CK_RV rm_init_token(backend_t *be, const char *name, const uint8_t *pw,
                           size_t pwlen, const char *label)
{
    struct remote_conn *aux;
    CK_RV rv;

    if ((rv = aux_get(R(be), &aux)) != CKR_OK)
        return rv;
    rv = conn_init_token(&aux->base, name, pw, pwlen, label);
    aux_done(R(be));
    return rv;
}

static CK_RV conn_mech_list(backend_conn_t *conn, CK_MECHANISM_TYPE **list,
                            size_t *n)
{
    CALL(conn, wire_cl_mech_list(cl, list, n));
}

/* The server's list: every mechanism its core offers, none dropped. */
static CK_RV rm_mech_list(backend_t *be, CK_MECHANISM_TYPE **list, size_t *n)
{
    struct remote_conn *aux;
    CK_RV rv;

    *list = NULL;
    *n = 0;
    if ((rv = aux_get(R(be), &aux)) != CKR_OK)
        return rv;
    rv = conn_mech_list(&aux->base, list, n);
    aux_done(R(be));
    return rv;
}

static CK_RV conn_mech_info(backend_conn_t *conn, CK_MECHANISM_TYPE type,
                            hsm_mech_info_t *info)
{
    CALL(conn, wire_cl_mech_info(cl, type, info));
}

static CK_RV rm_mech_info(backend_t *be, CK_MECHANISM_TYPE type,
                          hsm_mech_info_t *info)
{
    struct remote_conn *aux;
    CK_RV rv;

    if ((rv = aux_get(R(be), &aux)) != CKR_OK)
        return rv;
    rv = conn_mech_info(&aux->base, type, info);
    aux_done(R(be));
    return rv;
}

/* Every value this backend hands out is plain malloc'd memory. */
static void rm_attrs_free(backend_t *be, hsm_attr_t *attrs, size_t n)
{
    (void)be;
    for (size_t i = 0; i < n; i++) {
        util_free_wipe(attrs[i].value, attrs[i].len);
        attrs[i].value = NULL;
        attrs[i].len = 0;
    }
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * An array attribute's value (CKA_WRAP_TEMPLATE ...) as the server sent
 * it: the core's nested template, a 4-byte big-endian count, then per
 * attribute an 8-byte type, a 4-byte length and the value. Decoded here
 * (the remote backend links no core) and checked as the server is not
 * trusted: every count and length against what is left, before anything
 * is allocated; a defect is CKR_GENERAL_ERROR, as the core says.
 */
static CK_RV rm_template_parse(backend_t *be, const uint8_t *blob, size_t len,
                               hsm_attr_t **attrs, size_t *n)
{
    hsm_attr_t *out;
    uint64_t count;
    size_t off = 4, i;

    (void)be;
    *attrs = NULL;
    *n = 0;
    if (len == 0)
        return CKR_OK;
    if (blob == NULL || len < 4)
        return CKR_GENERAL_ERROR;
    count = get_be(blob, 4);
    if (count > (len - 4) / 12)
        return CKR_GENERAL_ERROR;
    out = calloc(count > 0 ? (size_t)count : 1, sizeof(*out));
    if (out == NULL)
        return CKR_HOST_MEMORY;
    for (i = 0; i < count; i++) {
        uint64_t type, vlen;

        if (len - off < 12)
            goto bad;
        type = get_be(blob + off, 8);
        vlen = get_be(blob + off + 8, 4);
        off += 12;
        if (type > (CK_ULONG)-1 || vlen > len - off)
            goto bad;
        out[i].type = (CK_ATTRIBUTE_TYPE)type;
        out[i].status = HSM_ATTR_OK;
        if (vlen > 0) {
            out[i].value = malloc((size_t)vlen);
            if (out[i].value == NULL) {
                rm_attrs_free(be, out, i);
                free(out);
                return CKR_HOST_MEMORY;
            }
            memcpy(out[i].value, blob + off, (size_t)vlen);
            out[i].len = (size_t)vlen;
        }
        off += (size_t)vlen;
    }
    if (off != len)
        goto bad;
    *attrs = out;
    *n = (size_t)count;
    return CKR_OK;
bad:
    rm_attrs_free(be, out, i);
    free(out);
    return CKR_GENERAL_ERROR;
}

/* ------------------------------------------------- connections, login */

static hsm_user_type_t rm_conn_user_type(backend_conn_t *conn, hsm_uid_t *uid)
{
    struct remote_conn *rc = RC(conn);
    hsm_user_type_t type = HSM_USER_NONE;
    hsm_uid_t u = 0;
    struct rchan *ch;
    CK_RV rv;

    if (uid != NULL)
        *uid = 0;
    if (chan_get(rc, &ch) != CKR_OK)
        return HSM_USER_NONE; /* no login survives */
    rv = wire_cl_conn_user_type(ch->cl, &type, &u);
    rv = chan_put(rc, ch, rv);
    if (rv != CKR_OK)
        return HSM_USER_NONE;
    if (uid != NULL)
        *uid = u;
    return type;
}

static CK_RV rm_login(backend_conn_t *conn, hsm_login_kind_t kind,
                      const char *name, const uint8_t *pw, size_t pwlen)
{
    CALL(conn, wire_cl_login(cl, kind, name, pw, pwlen));
}

static CK_RV rm_logout(backend_conn_t *conn)
{
    CALL(conn, wire_cl_logout(cl));
}

static CK_RV rm_set_password(backend_conn_t *conn, const char *name,
                             const uint8_t *old_pw, size_t old_len,
                             const uint8_t *new_pw, size_t new_len)
{
    CALL(conn,
         wire_cl_set_password(cl, name, old_pw, old_len, new_pw, new_len));
}

static CK_RV rm_init_pin(backend_conn_t *conn, const char *name,
                         const uint8_t *pw, size_t pwlen)
{
    CALL(conn, wire_cl_init_pin(cl, name, pw, pwlen));
}

/* ------------------------------------------------------------ users */

static CK_RV rm_user_list(backend_conn_t *conn, hsm_user_info_t **users,
                          size_t *count)
{
    CALL(conn, wire_cl_user_list(cl, users, count));
}

static CK_RV rm_user_create(backend_conn_t *conn, hsm_user_type_t type,
                            const char *name, const uint8_t *pw, size_t pwlen,
                            hsm_uid_t *uid)
{
    CALL(conn, wire_cl_user_create(cl, type, name, pw, pwlen, uid));
}

static CK_RV rm_user_delete(backend_conn_t *conn, const char *name)
{
    CALL(conn, wire_cl_user_delete(cl, name));
}

/* ------------------------------------------------------------ sessions */

static CK_RV rm_context_login(backend_conn_t *conn, hsm_sid_t sid,
                              const char *name, const uint8_t *pw, size_t pwlen)
{
    CALL(conn, wire_cl_context_login(cl, sid, name, pw, pwlen));
}

static CK_RV rm_session_open(backend_conn_t *conn, bool rw, hsm_sid_t *sid)
{
    CALL(conn, wire_cl_session_open(cl, rw, sid));
}

static CK_RV rm_session_close(backend_conn_t *conn, hsm_sid_t sid)
{
    CALL(conn, wire_cl_session_close(cl, sid));
}

/* ------------------------------------------------------------ objects */

static CK_RV rm_object_create(backend_conn_t *conn, hsm_sid_t sid,
                              const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                              hsm_oid_t *oid)
{
    CALL(conn, wire_cl_object_create(cl, sid, tmpl, count, oid));
}

static CK_RV rm_object_copy(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                            hsm_oid_t *new_oid)
{
    CALL(conn, wire_cl_object_copy(cl, sid, oid, tmpl, count, new_oid));
}

static CK_RV rm_object_destroy(backend_conn_t *conn, hsm_sid_t sid,
                               hsm_oid_t oid)
{
    CALL(conn, wire_cl_object_destroy(cl, sid, oid));
}

static CK_RV rm_object_size(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                            CK_ULONG *size)
{
    CALL(conn, wire_cl_object_size(cl, sid, oid, size));
}

static CK_RV rm_object_get(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                           const CK_ATTRIBUTE_TYPE *types, size_t n,
                           hsm_attr_t *out)
{
    CALL(conn, wire_cl_object_get(cl, sid, oid, types, n, out));
}

static CK_RV rm_object_set(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                           const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    CALL(conn, wire_cl_object_set(cl, sid, oid, tmpl, count));
}

static CK_RV rm_object_find(backend_conn_t *conn, hsm_sid_t sid,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                            hsm_oid_t **oids, size_t *n)
{
    CALL(conn, wire_cl_object_find(cl, sid, tmpl, count, oids, n));
}

static CK_RV rm_object_is_private(backend_conn_t *conn, hsm_oid_t oid,
                                  bool *priv)
{
    CALL(conn, wire_cl_object_is_private(cl, oid, priv));
}

static CK_RV rm_object_share(backend_conn_t *conn, hsm_oid_t oid, hsm_uid_t uid,
                             bool share)
{
    CALL(conn, wire_cl_object_share(cl, oid, uid, share));
}

/* ------------------------------------------------------------ crypto */

static CK_RV rm_op_init(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        const hsm_mech_t *mech, hsm_oid_t key)
{
    CALL(conn, wire_cl_op_init(cl, sid, kind, mech, key));
}

static CK_RV rm_op_init_iv(backend_conn_t *conn, hsm_sid_t sid,
                           hsm_opkind_t kind, const hsm_mech_t *mech,
                           hsm_oid_t key, uint8_t *iv, size_t ivroom,
                           size_t *ivlen)
{
    CALL(conn, wire_cl_op_init_iv(cl, sid, kind, mech, key, iv, ivroom, ivlen));
}

static CK_RV rm_op_output_len(backend_conn_t *conn, hsm_sid_t sid,
                              hsm_opkind_t kind, bool final, size_t inlen,
                              size_t *outlen)
{
    CALL(conn, wire_cl_op_output_len(cl, sid, kind, final, inlen, outlen));
}

static CK_RV rm_op_oneshot(backend_conn_t *conn, hsm_sid_t sid,
                           hsm_opkind_t kind, const uint8_t *in, size_t inlen,
                           uint8_t *out, size_t *outlen)
{
    CALL(conn, wire_cl_op_oneshot(cl, sid, kind, in, inlen, out, outlen));
}

static CK_RV rm_op_update(backend_conn_t *conn, hsm_sid_t sid,
                          hsm_opkind_t kind, const uint8_t *in, size_t inlen,
                          uint8_t *out, size_t *outlen)
{
    CALL(conn, wire_cl_op_update(cl, sid, kind, in, inlen, out, outlen));
}

static CK_RV rm_op_final(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                         uint8_t *out, size_t *outlen)
{
    CALL(conn, wire_cl_op_final(cl, sid, kind, out, outlen));
}

static CK_RV rm_op_verify(backend_conn_t *conn, hsm_sid_t sid,
                          const uint8_t *data, size_t datalen, bool oneshot,
                          const uint8_t *sig, size_t siglen)
{
    CALL(conn, wire_cl_op_verify(cl, sid, data, datalen, oneshot, sig, siglen));
}

static CK_RV rm_op_digest_key(backend_conn_t *conn, hsm_sid_t sid,
                              hsm_oid_t key)
{
    CALL(conn, wire_cl_op_digest_key(cl, sid, key));
}

static CK_RV op_abort_call(backend_conn_t *conn, hsm_sid_t sid,
                           hsm_opkind_t kind)
{
    CALL(conn, wire_cl_op_abort(cl, sid, kind));
}

static void rm_op_abort(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind)
{
    (void)op_abort_call(conn, sid, kind);
}

static CK_RV rm_generate_key(backend_conn_t *conn, hsm_sid_t sid,
                             const hsm_mech_t *mech, const CK_ATTRIBUTE *tmpl,
                             CK_ULONG count, hsm_oid_t *oid)
{
    CALL(conn, wire_cl_generate_key(cl, sid, mech, tmpl, count, oid));
}

static CK_RV
rm_generate_key_pair(backend_conn_t *conn, hsm_sid_t sid,
                     const hsm_mech_t *mech, const CK_ATTRIBUTE *pub_tmpl,
                     CK_ULONG pub_count, const CK_ATTRIBUTE *priv_tmpl,
                     CK_ULONG priv_count, hsm_oid_t *pub, hsm_oid_t *priv)
{
    CALL(conn, wire_cl_generate_key_pair(cl, sid, mech, pub_tmpl, pub_count,
                                         priv_tmpl, priv_count, pub, priv));
}

static CK_RV rm_derive_key(backend_conn_t *conn, hsm_sid_t sid,
                           const hsm_mech_t *mech, hsm_oid_t base,
                           const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                           hsm_oid_t *oid)
{
    CALL(conn, wire_cl_derive_key(cl, sid, mech, base, tmpl, count, oid));
}

static CK_RV rm_wrap_key(backend_conn_t *conn, hsm_sid_t sid,
                         const hsm_mech_t *mech, hsm_oid_t wrapping,
                         hsm_oid_t key, uint8_t **out, size_t *outlen)
{
    CALL(conn, wire_cl_wrap_key(cl, sid, mech, wrapping, key, out, outlen));
}

static CK_RV rm_unwrap_key(backend_conn_t *conn, hsm_sid_t sid,
                           const hsm_mech_t *mech, hsm_oid_t unwrapping,
                           const uint8_t *in, size_t inlen,
                           const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                           hsm_oid_t *oid)
{
    CALL(conn, wire_cl_unwrap_key(cl, sid, mech, unwrapping, in, inlen, tmpl,
                                  count, oid));
}

/* ------------------------------------------------- message-based AEAD */

static CK_RV rm_msg_init(backend_conn_t *conn, hsm_sid_t sid,
                         hsm_msgkind_t kind, const hsm_mech_t *mech,
                         hsm_oid_t key)
{
    CALL(conn, wire_cl_msg_init(cl, sid, kind, mech, key));
}

static CK_RV rm_msg_oneshot(backend_conn_t *conn, hsm_sid_t sid,
                            hsm_msgkind_t kind, const hsm_mech_t *param,
                            const uint8_t *aad, size_t aadlen,
                            const uint8_t *in, size_t inlen, uint8_t *out,
                            size_t *outlen, hsm_msg_result_t *res)
{
    CALL(conn, wire_cl_msg_oneshot(cl, sid, kind, param, aad, aadlen, in, inlen,
                                   out, outlen, res));
}

static CK_RV rm_msg_begin(backend_conn_t *conn, hsm_sid_t sid,
                          hsm_msgkind_t kind, const hsm_mech_t *param,
                          const uint8_t *aad, size_t aadlen,
                          hsm_msg_result_t *res)
{
    CALL(conn, wire_cl_msg_begin(cl, sid, kind, param, aad, aadlen, res));
}

static CK_RV rm_msg_next(backend_conn_t *conn, hsm_sid_t sid,
                         hsm_msgkind_t kind, const hsm_mech_t *param,
                         const uint8_t *in, size_t inlen, bool last,
                         uint8_t *out, size_t *outlen, hsm_msg_result_t *res)
{
    CALL(conn, wire_cl_msg_next(cl, sid, kind, param, in, inlen, last, out,
                                outlen, res));
}

static CK_RV rm_msg_output_len(backend_conn_t *conn, hsm_sid_t sid,
                               hsm_msgkind_t kind, bool last, size_t inlen,
                               size_t *outlen)
{
    CALL(conn, wire_cl_msg_output_len(cl, sid, kind, last, inlen, outlen));
}

static CK_RV rm_msg_final(backend_conn_t *conn, hsm_sid_t sid,
                          hsm_msgkind_t kind)
{
    CALL(conn, wire_cl_msg_final(cl, sid, kind));
}

static CK_RV msg_abort_call(backend_conn_t *conn, hsm_sid_t sid,
                            hsm_msgkind_t kind)
{
    CALL(conn, wire_cl_msg_abort(cl, sid, kind));
}

static void rm_msg_abort(backend_conn_t *conn, hsm_sid_t sid,
                         hsm_msgkind_t kind)
{
    (void)msg_abort_call(conn, sid, kind);
}

/* ------------------------------------------------------------ misc */

static CK_RV rm_random(backend_conn_t *conn, hsm_sid_t sid, uint8_t *buf,
                       size_t len)
{
    CALL(conn, wire_cl_random(cl, sid, buf, len));
}

/* ------------------------------------------------------------ management */

static CK_RV rm_user_set_password(backend_conn_t *conn, const char *name,
                                  const uint8_t *pw, size_t pwlen)
{
    CALL(conn, wire_cl_user_set_password(cl, name, pw, pwlen));
}

static CK_RV rm_login_challenge(backend_conn_t *conn, hsm_login_kind_t kind,
                                const char *name,
                                uint8_t digest[HSM_DIGEST_LEN])
{
    CALL(conn, wire_cl_login_challenge(cl, kind, name, digest));
}

static CK_RV rm_login_2fa(backend_conn_t *conn, hsm_login_kind_t kind,
                          const char *name, const uint8_t *pw, size_t pwlen,
                          const uint8_t *sig, size_t siglen)
{
    CALL(conn, wire_cl_login_2fa(cl, kind, name, pw, pwlen, sig, siglen));
}

static CK_RV rm_user_create_2fa(backend_conn_t *conn, const char *name,
                                const uint8_t *pw, size_t pwlen,
                                const uint8_t *pubkey, size_t pubkey_len,
                                const uint8_t *sig, size_t siglen,
                                hsm_uid_t *uid)
{
    CALL(conn, wire_cl_user_create_2fa(cl, name, pw, pwlen, pubkey, pubkey_len,
                                       sig, siglen, uid));
}

static CK_RV rm_user_set_password_2fa(backend_conn_t *conn, const char *name,
                                      const uint8_t *pw, size_t pwlen,
                                      const uint8_t *pubkey, size_t pubkey_len,
                                      const uint8_t *sig, size_t siglen)
{
    CALL(conn, wire_cl_user_set_password_2fa(cl, name, pw, pwlen, pubkey,
                                             pubkey_len, sig, siglen));
}

static CK_RV rm_key_list(backend_conn_t *conn, hsm_uid_t uid,
                         hsm_key_ref_t **keys, size_t *n,
                         uint8_t digest[HSM_DIGEST_LEN])
{
    CALL(conn, wire_cl_key_list(cl, uid, keys, n, digest));
}

static CK_RV rm_key_info(backend_conn_t *conn, hsm_oid_t oid, hsm_uid_t *owner,
                         hsm_uid_t **shared, size_t *nshared)
{
    CALL(conn, wire_cl_key_info(cl, oid, owner, shared, nshared));
}

static CK_RV rm_audit_read(backend_conn_t *conn, uint64_t after, size_t max,
                           hsm_audit_record_t **recs, size_t *n)
{
    CALL(conn, wire_cl_audit_read(cl, after, max, recs, n));
}

static CK_RV rm_audit_verify(backend_conn_t *conn, hsm_audit_check_t *check)
{
    CALL(conn, wire_cl_audit_verify(cl, check));
}

static CK_RV rm_object_set_trusted(backend_conn_t *conn, hsm_oid_t oid,
                                   bool trusted)
{
    CALL(conn, wire_cl_object_set_trusted(cl, oid, trusted));
}

static CK_RV client_list_call(backend_conn_t *conn, wire_client_info_t **w,
                              size_t *n)
{
    CALL(conn, wire_cl_client_list(cl, w, n));
}

static CK_RV rm_client_list(backend_conn_t *conn, backend_client_t **list,
                            size_t *n)
{
    wire_client_info_t *w = NULL;
    backend_client_t *out;
    size_t cnt = 0;
    CK_RV rv;

    *list = NULL;
    *n = 0;
    if ((rv = client_list_call(conn, &w, &cnt)) != CKR_OK)
        return rv;
    out = calloc(cnt > 0 ? cnt : 1, sizeof(*out));
    if (out == NULL) {
        free(w);
        return CKR_HOST_MEMORY;
    }
    for (size_t i = 0; i < cnt; i++) {
        snprintf(out[i].peer, sizeof(out[i].peer), "%s", w[i].peer);
        snprintf(out[i].addr, sizeof(out[i].addr), "%s", w[i].addr);
        snprintf(out[i].client_name, sizeof(out[i].client_name), "%s",
                 w[i].client_name);
        out[i].sessions = w[i].sessions;
        out[i].channels = w[i].channels;
        out[i].user_type = w[i].user_type;
        out[i].user_id = w[i].user_id;
        out[i].self = w[i].self;
    }
    free(w);
    *list = out;
    *n = cnt;
    return CKR_OK;
}

static CK_RV rm_login_ticket(backend_conn_t *conn, uint8_t out[HSM_TICKET_LEN])
{
    CALL(conn, wire_cl_login_ticket(cl, out));
}

static CK_RV rm_login_redeem(backend_conn_t *conn, const uint8_t *ticket,
                             size_t len)
{
    CALL(conn, wire_cl_login_redeem(cl, ticket, len));
}

/* ------------------------------------------------------------ cluster */

static CK_RV cluster_status_call(backend_conn_t *conn, wire_cluster_info_t *w)
{
    CALL(conn, wire_cl_cluster_status(cl, w));
}

static CK_RV rm_cluster_status(backend_conn_t *conn, backend_cluster_t *out)
{
    wire_cluster_info_t w;
    CK_RV rv = cluster_status_call(conn, &w);

    if (rv == CKR_OK) {
        out->status = w.status;
        memcpy(out->digest, w.digest, sizeof(out->digest));
        out->digest_applied = w.digest_applied;
        memcpy(out->cluster_id, w.cluster_id, sizeof(out->cluster_id));
    }
    return rv;
}

static CK_RV rm_masked_extract(backend_conn_t *conn, hsm_oid_t oid,
                               uint8_t **file, size_t *len)
{
    CALL(conn, wire_cl_masked_extract(cl, oid, file, len));
}

static CK_RV rm_masked_insert(backend_conn_t *conn, const uint8_t *file,
                              size_t len, hsm_oid_t *oid)
{
    CALL(conn, wire_cl_masked_insert(cl, file, len, oid));
}

static CK_RV rm_backup(backend_conn_t *conn, uint8_t **file, size_t *len,
                       hsm_backup_info_t *info)
{
    CALL(conn, wire_cl_backup(cl, file, len, info));
}

static CK_RV rm_restore(backend_conn_t *conn, const uint8_t *file, size_t len,
                        hsm_backup_info_t *info, size_t *nodes)
{
    CALL(conn, wire_cl_restore(cl, file, len, info, nodes));
}

static CK_RV rm_cluster_add(backend_conn_t *conn, uint64_t id,
                            const char *address)
{
    CALL(conn, wire_cl_cluster_add(cl, id, address));
}

static CK_RV rm_cluster_remove(backend_conn_t *conn, uint64_t id)
{
    CALL(conn, wire_cl_cluster_remove(cl, id));
}

static CK_RV rm_cluster_transfer(backend_conn_t *conn, uint64_t id)
{
    CALL(conn, wire_cl_cluster_transfer(cl, id));
}

/* ------------------------------------------------------------ quorum */

static CK_RV rm_quorum_register_key(backend_conn_t *conn, const char *name,
                                    const uint8_t *reg_token, size_t token_len,
                                    const uint8_t *sig, size_t sig_len,
                                    const uint8_t *pubkey, size_t pubkey_len)
{
    CALL(conn, wire_cl_quorum_register_key(cl, name, reg_token, token_len, sig,
                                           sig_len, pubkey, pubkey_len));
}

static CK_RV rm_quorum_set_m(backend_conn_t *conn, unsigned service,
                             unsigned m)
{
    CALL(conn, wire_cl_quorum_set_m(cl, service, m));
}

static CK_RV rm_quorum_get_m(backend_conn_t *conn, unsigned service,
                             unsigned *m)
{
    CALL(conn, wire_cl_quorum_get_m(cl, service, m));
}

static CK_RV rm_quorum_get_token(backend_conn_t *conn, unsigned service,
                                 const char *name, uint8_t *token, size_t *len)
{
    CALL(conn, wire_cl_quorum_get_token(cl, service, name, token, len));
}

static CK_RV rm_quorum_approve(backend_conn_t *conn, const uint8_t *token,
                               size_t token_len, const hsm_quorum_approval_t *a,
                               size_t n, CK_RV *results)
{
    CALL(conn, wire_cl_quorum_approve(cl, token, token_len, a, n, results));
}

static CK_RV rm_quorum_list_tokens(backend_conn_t *conn,
                                   hsm_quorum_token_info_t **out, size_t *n)
{
    CALL(conn, wire_cl_quorum_list_tokens(cl, out, n));
}

static CK_RV rm_quorum_del_token(backend_conn_t *conn, uint32_t id)
{
    CALL(conn, wire_cl_quorum_del_token(cl, id));
}

const struct backend_ops backend_remote_ops = {
    .kind = "remote",
    .close = rm_close,
    .token_info = rm_token_info,
    .init_token = rm_init_token,
    .mech_list = rm_mech_list,
    .mech_info = rm_mech_info,
    .attrs_free = rm_attrs_free,
    .template_parse = rm_template_parse,
    .conn_open = rm_conn_open,
    .conn_close = rm_conn_close,
    .conn_lost = rm_conn_lost,
    .conn_user_type = rm_conn_user_type,
    .login = rm_login,
    .logout = rm_logout,
    .set_password = rm_set_password,
    .init_pin = rm_init_pin,
    .user_list = rm_user_list,
    .user_create = rm_user_create,
    .user_delete = rm_user_delete,
    .context_login = rm_context_login,
    .session_open = rm_session_open,
    .session_close = rm_session_close,
    .object_create = rm_object_create,
    .object_copy = rm_object_copy,
    .object_destroy = rm_object_destroy,
    .object_size = rm_object_size,
    .object_get = rm_object_get,
    .object_set = rm_object_set,
    .object_find = rm_object_find,
    .object_is_private = rm_object_is_private,
    .object_share = rm_object_share,
    .op_init = rm_op_init,
    .op_init_iv = rm_op_init_iv,
    .op_output_len = rm_op_output_len,
    .op_oneshot = rm_op_oneshot,
    .op_update = rm_op_update,
    .op_final = rm_op_final,
    .op_verify = rm_op_verify,
    .op_digest_key = rm_op_digest_key,
    .op_abort = rm_op_abort,
    .generate_key = rm_generate_key,
    .generate_key_pair = rm_generate_key_pair,
    .derive_key = rm_derive_key,
    .wrap_key = rm_wrap_key,
    .unwrap_key = rm_unwrap_key,
    .msg_init = rm_msg_init,
    .msg_oneshot = rm_msg_oneshot,
    .msg_begin = rm_msg_begin,
    .msg_next = rm_msg_next,
    .msg_output_len = rm_msg_output_len,
    .msg_final = rm_msg_final,
    .msg_abort = rm_msg_abort,
    .random = rm_random,
    .user_set_password = rm_user_set_password,
    .key_list = rm_key_list,
    .key_info = rm_key_info,
    .audit_read = rm_audit_read,
    .audit_verify = rm_audit_verify,
    .object_set_trusted = rm_object_set_trusted,
    .client_list = rm_client_list,
    .cluster_status = rm_cluster_status,
    .masked_extract = rm_masked_extract,
    .masked_insert = rm_masked_insert,
    .backup = rm_backup,
    .restore = rm_restore,
    .cluster_add = rm_cluster_add,
    .cluster_remove = rm_cluster_remove,
    .cluster_transfer = rm_cluster_transfer,
    .quorum_register_key = rm_quorum_register_key,
    .quorum_set_m = rm_quorum_set_m,
    .quorum_get_m = rm_quorum_get_m,
    .quorum_get_token = rm_quorum_get_token,
    .quorum_approve = rm_quorum_approve,
    .quorum_list_tokens = rm_quorum_list_tokens,
    .quorum_del_token = rm_quorum_del_token,
    .login_challenge = rm_login_challenge,
    .login_2fa = rm_login_2fa,
    .user_create_2fa = rm_user_create_2fa,
    .user_set_password_2fa = rm_user_set_password_2fa,
    .login_ticket = rm_login_ticket,
    .login_redeem = rm_login_redeem,
};

/* ------------------------------------------------------------ open */

CK_RV backend_remote_open(const struct config *cfg, backend_t **out)
{
    struct remote *r;
    char err[256] = "";
    bool need_tls = false;

    *out = NULL;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return CKR_HOST_MEMORY;
    r->base.ops = &backend_remote_ops;
    memcpy(&r->cfg, cfg, sizeof(r->cfg));
    if (r->cfg.max_frame < CONFIG_MIN_MAX_FRAME)
        r->cfg.max_frame = CONFIG_DEFAULT_MAX_FRAME;
    r->call_ms = r->cfg.call_timeout * 1000ul;
    /* A new channel (and a reconnection while the daemon is stopped) waits
     * at most WIRE_CONNECT_MAX_MS (10 s, as a TLS handshake), less when
     * call_timeout is shorter: no legitimate handshake is slow. */
    r->connect_ms = r->call_ms != 0 && r->call_ms < WIRE_CONNECT_MAX_MS
                        ? r->call_ms
                        : WIRE_CONNECT_MAX_MS;
    snprintf(r->client_name, sizeof(r->client_name), "%s (%s)",
             REMOTE_CLIENT_NAME, program_invocation_short_name);
    snprintf(r->aux_name, sizeof(r->aux_name), "%s (%s, token calls)",
             REMOTE_CLIENT_NAME, program_invocation_short_name);
    if (util_mutex_init(&r->aux_lock) != 0) {
        free(r);
        return CKR_GENERAL_ERROR;
    }
    for (size_t i = 0; i < r->cfg.nservers; i++)
        need_tls = need_tls || r->cfg.servers[i].kind == CONFIG_EP_TLS;
    if (need_tls && !wire_tls_client_new(&r->cfg, &r->tls, err, sizeof(err))) {
        log_error("remote: TLS client set-up (tls_cert, tls_key, tls_ca "
                  "of %s): %s",
                  r->cfg.path[0] != '\0' ? r->cfg.path : "the config", err);
        pthread_mutex_destroy(&r->aux_lock);
        free(r);
        return CKR_DEVICE_ERROR;
    }
    *out = &r->base;
    return CKR_OK;
}
