/*
 * dclient - a small nimbusd client over transport.h for the process tests
 * (tests/daemon/). It writes the few protobuf messages it needs by
 * hand (nimbus.proto: Request{id=1, hello=2}, Request{login=13}) so that
 * it can also send what no real client would.
 *
 *   dclient [--cert F --key F --ca F] ENDPOINT COMMAND [ARG]
 *     hello        handshake; 0 when answered with CKR_OK
 *     conns N      N channels at once, each with its handshake as it
 *                  connects, all held open until every one is
 *                  answered; 0 when all were
 *     login PW     handshake, then a CO login with PW; prints the CK_RV
 *     bigheader    (unix) handshake, then a header announcing 4 GiB and
 *                  nothing else; 0 when the daemon closes within 5 s
 *     garbage      handshake, then a frame of junk; 0 when the daemon
 *                  closes the link (after an error reply or not)
 *     nohello      a login without a handshake; 0 when refused
 *     storm N SEED N requests of random shape (random call kinds with
 *                  random varint fields: bogus session ids, handles,
 *                  counts; random bytes; bad wire types), reconnecting
 *                  after each close; 0 when every request was answered
 *                  or ended the link, and the daemon still says hello
 *     rtt N        handshake, then N token-info calls one after the
 *                  other; prints the round trip's p50 and p99 in us
 *     hold SECS    handshake, then wait; 0 when the daemon ends the
 *                  link within SECS seconds (SIGTERM)
 *     silent SECS  connect and send nothing (no handshake); 0 when the
 *                  daemon ends the link within SECS seconds; prints
 *                  after how many ms since the connect began (over TLS
 *                  its handshake included) (io_timeout)
 *     halfhello SECS  a handshake frame's header and part of its
 *                  payload, then nothing; as silent (timed from the
 *                  connect too)
 *     half SECS    handshake, then half a frame and nothing; as silent
 *     loginhalf PW SECS  handshake, a CO login with PW (must succeed),
 *                  then half a frame and nothing; as silent
 *     trickle SECS handshake, then a frame one byte every 200 ms; as
 *                  silent
 *     noread SECS  handshake, then requests sent without reading one
 *                  reply until the socket takes no more (the daemon's
 *                  writes block), then SECS seconds of holding the
 *                  socket open unread; 0 when the daemon ended the link
 *                  by then (prints after how many ms)
 * Exit: 0 as above, 3 refused (closed without a reply), 1 anything else.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/conf.h"
#include "wire/transport.h"

#define REFUSED 3

struct buf {
    uint8_t b[512];
    size_t n;
};

static void put_varint(struct buf *b, uint64_t v)
{
    while (v >= 0x80 && b->n < sizeof(b->b)) {
        b->b[b->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    if (b->n < sizeof(b->b))
        b->b[b->n++] = (uint8_t)v;
}

static void put_bytes(struct buf *b, unsigned field, const void *p, size_t n)
{
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, n);
    if (n <= sizeof(b->b) - b->n) {
        memcpy(b->b + b->n, p, n);
        b->n += n;
    }
}

/* Request{id, <field>: sub} */
static void request(struct buf *out, uint64_t id, unsigned field,
                    const struct buf *sub)
{
    out->n = 0;
    put_varint(out, 1 << 3 | 0);
    put_varint(out, id);
    put_bytes(out, field, sub->b, sub->n);
}

static bool get_varint(const uint8_t *p, size_t n, size_t *off, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; *off < n && shift < 64; shift += 7) {
        uint8_t c = p[(*off)++];
        *v |= (uint64_t)(c & 0x7f) << shift;
        if ((c & 0x80) == 0)
            return true;
    }
    return false;
}

/* Reply{id = 1, rv = 2, ...}: the two leading varints. */
static bool parse_reply(const uint8_t *p, size_t n, uint64_t *id, uint64_t *rv)
{
    size_t off = 0;
    uint64_t key, v;
    bool have_id = false, have_rv = false;

    while (off < n && !(have_id && have_rv)) {
        if (!get_varint(p, n, &off, &key))
            return false;
        if ((key & 7) == 0) {
            if (!get_varint(p, n, &off, &v))
                return false;
            if (key >> 3 == 1) {
                *id = v;
                have_id = true;
            } else if (key >> 3 == 2) {
                *rv = v;
                have_rv = true;
            }
        } else if ((key & 7) == 2) {
            if (!get_varint(p, n, &off, &v) || v > n - off)
                return false;
            off += v;
        } else {
            return false;
        }
    }
    return have_id && have_rv;
}

/* Sends one request and reads its reply. 0: *rv set; REFUSED: the link
 * ended without a reply; 1: anything else. */
static int call(wire_link_t *l, const struct buf *req, uint64_t want_id,
                uint64_t *rv)
{
    uint8_t *resp;
    size_t len;
    uint64_t id = 0;
    wire_io_t r;

    if (wire_frame_write(l, req->b, req->n) != WIRE_IO_OK)
        return REFUSED;
    r = wire_frame_read(l, 1u << 20, &resp, &len);
    if (r == WIRE_IO_EOF || r == WIRE_IO_ERROR)
        return REFUSED;
    if (r != WIRE_IO_OK)
        return 1;
    if (!parse_reply(resp, len, &id, rv) || id != want_id) {
        free(resp);
        fprintf(stderr, "dclient: unreadable reply\n");
        return 1;
    }
    free(resp);
    return 0;
}

static int hello(wire_link_t *l)
{
    struct buf h = {.n = 0}, req;
    uint64_t rv;
    int r;

    put_varint(&h, 1 << 3 | 0); /* Hello.version */
    put_varint(&h, 1);
    put_bytes(&h, 2, "dclient", 7);
    request(&req, 1, 2, &h);
    r = call(l, &req, 1, &rv);
    if (r != 0)
        return r;
    if (rv != 0) {
        fprintf(stderr, "dclient: hello: CK_RV 0x%llx\n",
                (unsigned long long)rv);
        return 1;
    }
    return 0;
}

static int login(wire_link_t *l, uint64_t id, const char *pw, uint64_t *rv)
{
    struct buf lr = {.n = 0}, req;

    put_varint(&lr, 1 << 3 | 0); /* LoginReq.kind: HSM_LOGIN_SO */
    put_varint(&lr, 0);
    put_bytes(&lr, 2, "admin", 5);
    put_bytes(&lr, 3, pw, strlen(pw));
    request(&req, id, 13, &lr);
    return call(l, &req, id, rv);
}

static uint64_t rnd_state;

static uint64_t rnd(void)
{
    /* xorshift64*: reproducible from the seed, nothing more needed */
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return rnd_state * 2685821657736338717ULL;
}

/* A random value, biased to edges: 0, 1, small, 2^31, 2^32-1, 2^64-1. */
static uint64_t rnd_value(void)
{
    static const uint64_t edge[] = {0,          1,
                                    2,          0x7fffffff,
                                    0xffffffff, 0x100000000ULL,
                                    UINT64_MAX, 0x8000000000000000ULL};
    switch (rnd() % 4) {
    case 0:
        return edge[rnd() % (sizeof(edge) / sizeof(edge[0]))];
    case 1:
        return rnd() % 16;
    case 2:
        return rnd() % 100000;
    default:
        return rnd();
    }
}

/* One request of random shape into out. */
static void storm_request(struct buf *out, uint64_t id)
{
    struct buf sub = {.n = 0};
    unsigned nf = (unsigned)(rnd() % 6);

    if (rnd() % 8 == 0) {
        /* plain junk */
        out->n = (size_t)(rnd() % 64);
        for (size_t i = 0; i < out->n; i++)
            out->b[i] = (uint8_t)rnd();
        return;
    }
    for (unsigned i = 0; i < nf; i++) {
        unsigned field = 1 + (unsigned)(rnd() % 8);
        if (rnd() % 4 == 0) {
            uint8_t junk[48];
            size_t n = (size_t)(rnd() % sizeof(junk));
            for (size_t k = 0; k < n; k++)
                junk[k] = (uint8_t)rnd();
            put_bytes(&sub, field, junk, n);
        } else {
            put_varint(&sub, (uint64_t)field << 3 | 0);
            put_varint(&sub, rnd_value());
        }
    }
    /* a call kind: the handshake's, the known range, or beyond */
    request(out, id, rnd() % 16 == 0 ? 2 : 3 + (unsigned)(rnd() % 90), &sub);
    if (rnd() % 16 == 0 && out->n > 1)
        out->n = (size_t)(rnd() % out->n); /* truncated */
}

static int storm(const struct config_endpoint *ep, wire_tls_t *tls, long n,
                 uint64_t seed)
{
    wire_link_t *l = NULL;
    long answered = 0, closed = 0;
    char err[256];

    rnd_state = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (long i = 0; i < n; i++) {
        struct buf req;
        uint8_t *resp;
        size_t len;
        wire_io_t r;

        if (l == NULL) {
            if (!wire_link_connect(ep, tls, &l, err, sizeof(err))) {
                fprintf(stderr, "dclient: storm: %s\n", err);
                return 1;
            }
            /* mostly with a handshake, sometimes without */
            if (rnd() % 8 != 0 && hello(l) != 0) {
                fprintf(stderr, "dclient: storm: hello refused\n");
                wire_link_close(l);
                return 1;
            }
        }
        storm_request(&req, (uint64_t)i + 2);
        if (wire_frame_write(l, req.b, req.n) != WIRE_IO_OK) {
            wire_link_close(l);
            l = NULL;
            closed++;
            continue;
        }
        r = wire_frame_read(l, 1u << 24, &resp, &len);
        if (r == WIRE_IO_OK) {
            answered++;
            free(resp);
        } else {
            wire_link_close(l);
            l = NULL;
            closed++;
        }
    }
    wire_link_close(l);
    printf("storm: %ld answered, %ld ended the link\n", answered, closed);
    /* The daemon is still there for a well-behaved client. */
    if (!wire_link_connect(ep, tls, &l, err, sizeof(err)))
        return 1;
    n = hello(l);
    wire_link_close(l);
    return n == 0 ? 0 : 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int rtt(wire_link_t *l, long n)
{
    struct buf empty = {.n = 0}, req;
    uint64_t *t, rv;

    if (n <= 0 || (t = calloc((size_t)n, sizeof(*t))) == NULL)
        return 1;
    for (long i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        request(&req, (uint64_t)i + 2, 10, &empty); /* TokenInfoReq */
        if (call(l, &req, (uint64_t)i + 2, &rv) != 0 || rv != 0) {
            free(t);
            return 1;
        }
        t[i] = now_ns() - t0;
    }
    qsort(t, (size_t)n, sizeof(*t), cmp_u64);
    printf("token_info round trip: p50 %.1f us, p99 %.1f us (%ld calls)\n",
           (double)t[n / 2] / 1000.0, (double)t[n * 99 / 100] / 1000.0, n);
    free(t);
    return 0;
}

/* 0 when the daemon closes l within secs. */
static int wait_closed(wire_link_t *l, int secs)
{
    struct pollfd p = {.fd = wire_link_fd(l), .events = POLLIN};
    uint8_t *b;
    size_t n;

    if (poll(&p, 1, secs * 1000) <= 0) {
        fprintf(stderr, "dclient: still open after %d s\n", secs);
        return 1;
    }
    /* Readable: EOF, or an error reply first and then EOF. */
    for (int i = 0; i < 2; i++) {
        wire_io_t r = wire_frame_read(l, 1u << 20, &b, &n);
        if (r != WIRE_IO_OK)
            return 0;
        free(b);
    }
    return 1;
}

/* Raw bytes on a unix link: the frame writer would not stop halfway. */
static bool send_raw(wire_link_t *l, const uint8_t *p, size_t n)
{
    return write(wire_link_fd(l), p, n) == (ssize_t)n;
}

/* 0 when the daemon ends l within secs; prints after how many ms since
 * t0. */
static int closed_within(wire_link_t *l, int secs, uint64_t t0)
{
    int rc = wait_closed(l, secs);

    if (rc == 0)
        printf("closed after %llu ms\n",
               (unsigned long long)((now_ns() - t0) / 1000000u));
    return rc;
}

/* Requests (token info, one after the other) written and no reply read,
 * until the socket takes no more: the daemon then blocks writing
 * replies. Holds the socket open, unread, for secs; 0 when the daemon
 * ended the link meanwhile (its replies then end in EOF). */
static int noread(wire_link_t *l, int secs)
{
    struct buf empty = {.n = 0}, req;
    uint8_t batch[64 * 1024];
    size_t n = 0;
    int fd = wire_link_fd(l);
    uint64_t t0 = now_ns(), sent = 0, until;

    request(&req, 9, 10, &empty); /* TokenInfoReq */
    while (n + 4 + req.n <= sizeof(batch)) {
        batch[n] = batch[n + 1] = batch[n + 2] = 0;
        batch[n + 3] = (uint8_t)req.n;
        memcpy(batch + n + 4, req.b, req.n);
        n += 4 + req.n;
    }
    /* Whole batches only, so the stream stays framed: a partial send
     * ends the sending (what is left of that batch never goes). */
    until = t0 + (uint64_t)secs * 1000000000u;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        ssize_t k;
        if (poll(&p, 1, 500) <= 0)
            break; /* the daemon no longer takes requests */
        k = send(fd, batch, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (k <= 0)
            break;
        sent += (uint64_t)k;
        if ((size_t)k < n)
            break;
        if (now_ns() > until)
            break;
    }
    fprintf(stderr, "dclient: noread: %llu bytes of requests sent\n",
            (unsigned long long)sent);
    /* Unread, for the rest of secs. */
    while (now_ns() < until) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Now read: the replies that were written, then the end. */
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint8_t junk[65536];
        ssize_t k;
        if (poll(&p, 1, 2000) <= 0) {
            fprintf(stderr, "dclient: noread: link still open\n");
            return 1;
        }
        k = recv(fd, junk, sizeof(junk), 0);
        if (k <= 0)
            break;
    }
    return 0;
}

static bool connect_ep(const struct config_endpoint *ep, wire_tls_t *tls,
                       wire_link_t **l)
{
    char err[256];

    if (!wire_link_connect(ep, tls, l, err, sizeof(err))) {
        fprintf(stderr, "dclient: %s\n", err);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct config_endpoint ep;
    wire_tls_t *tls = NULL;
    wire_link_t *l = NULL;
    const char *why, *cmd;
    char err[256];
    uint64_t rv, t_connect;
    int i = 1, rc = 1;

    config_defaults(&cfg);
    while (i + 1 < argc && strncmp(argv[i], "--", 2) == 0) {
        char *dst = strcmp(argv[i], "--cert") == 0  ? cfg.tls_cert
                    : strcmp(argv[i], "--key") == 0 ? cfg.tls_key
                    : strcmp(argv[i], "--ca") == 0  ? cfg.tls_ca
                                                    : NULL;
        if (dst == NULL)
            break;
        snprintf(dst, PATH_MAX, "%s", argv[i + 1]);
        i += 2;
    }
    if (argc - i < 2) {
        fprintf(stderr, "usage: dclient [--cert F --key F --ca F] ENDPOINT "
                        "COMMAND [ARG]\n");
        return 2;
    }
    why = config_parse_endpoint(argv[i], &ep);
    if (why != NULL) {
        fprintf(stderr, "dclient: %s: %s\n", argv[i], why);
        return 2;
    }
    cmd = argv[i + 1];
    if (ep.kind == CONFIG_EP_TLS &&
        !wire_tls_client_new(&cfg, &tls, err, sizeof(err))) {
        fprintf(stderr, "dclient: %s\n", err);
        return 2;
    }
    if (strcmp(cmd, "conns") == 0) {
        int n = argc - i > 2 ? atoi(argv[i + 2]) : 0;
        wire_link_t **ls = calloc((size_t)(n > 0 ? n : 1), sizeof(*ls));
        int ok = 0;
        /* Each greets as it connects (nimbusd drops a channel without a
         * handshake after io_timeout), and all stay open to the end, so
         * that all are open at once. */
        for (int k = 0; k < n; k++) {
            if (!connect_ep(&ep, tls, &ls[k]))
                break;
            if (hello(ls[k]) == 0)
                ok++;
        }
        for (int k = 0; k < n; k++)
            wire_link_close(ls[k]);
        free(ls);
        printf("%d of %d answered\n", ok, n);
        rc = ok == n && n > 0 ? 0 : 1;
        goto out;
    }
    if (strcmp(cmd, "storm") == 0 && argc - i > 3) {
        rc =
            storm(&ep, tls, atol(argv[i + 2]), strtoull(argv[i + 3], NULL, 10));
        goto out;
    }
    /* Before connect(): the daemon's clock for a silent peer starts at
     * its accept, which may come before connect() returns here (a
     * loaded machine may preempt us between the two). */
    t_connect = now_ns();
    if (!connect_ep(&ep, tls, &l)) {
        rc = REFUSED;
        goto out;
    }
    if (strcmp(cmd, "silent") == 0 && argc - i > 2) {
        rc = closed_within(l, atoi(argv[i + 2]), t_connect);
        goto out;
    }
    if (strcmp(cmd, "halfhello") == 0 && argc - i > 2 && tls == NULL) {
        static const uint8_t part[] = {0, 0, 0, 100, 0x08, 0x01, 0x12};
        /* the handshake's bound runs from the accept, as for silent */
        if (!send_raw(l, part, sizeof(part)))
            goto out;
        rc = closed_within(l, atoi(argv[i + 2]), t_connect);
        goto out;
    }
    if (strcmp(cmd, "nohello") == 0) {
        rc = login(l, 7, "password", &rv);
        if (rc == 0)
            printf("rv=0x%llx\n", (unsigned long long)rv);
        rc = rc == REFUSED || (rc == 0 && rv != 0) ? 0 : 1;
        goto out;
    }
    rc = hello(l);
    if (rc != 0) {
        if (rc == REFUSED)
            fprintf(stderr, "dclient: refused\n");
        goto out;
    }
    if (strcmp(cmd, "hello") == 0) {
        rc = 0;
    } else if (strcmp(cmd, "login") == 0 && argc - i > 2) {
        rc = login(l, 2, argv[i + 2], &rv);
        if (rc == 0)
            printf("rv=0x%llx\n", (unsigned long long)rv);
    } else if (strcmp(cmd, "bigheader") == 0 && tls == NULL) {
        /* Raw on the socket: the frame writer would not lie. */
        static const uint8_t hdr[4] = {0xff, 0xff, 0xff, 0xf0};
        if (write(wire_link_fd(l), hdr, sizeof(hdr)) != sizeof(hdr))
            goto out;
        rc = wait_closed(l, 5);
    } else if (strcmp(cmd, "garbage") == 0) {
        static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x07, 0x00, 0x13,
                                       0x88, 0x99, 0x01, 0x02, 0x03};
        if (wire_frame_write(l, junk, sizeof(junk)) != WIRE_IO_OK)
            goto out;
        rc = wait_closed(l, 5);
    } else if (strcmp(cmd, "half") == 0 && argc - i > 2 && tls == NULL) {
        static const uint8_t part[] = {0, 0, 0, 50, 0x08, 0x02, 0x52};
        uint64_t t0 = now_ns();
        if (!send_raw(l, part, sizeof(part)))
            goto out;
        rc = closed_within(l, atoi(argv[i + 2]), t0);
    } else if (strcmp(cmd, "loginhalf") == 0 && argc - i > 3 && tls == NULL) {
        static const uint8_t part[] = {0, 0, 0, 50, 0x08, 0x03, 0x52};
        uint64_t t0;
        rc = login(l, 2, argv[i + 2], &rv);
        if (rc != 0 || rv != 0) {
            fprintf(stderr, "dclient: loginhalf: login rv=0x%llx\n",
                    (unsigned long long)rv);
            rc = 1;
            goto out;
        }
        t0 = now_ns();
        if (!send_raw(l, part, sizeof(part)))
            goto out;
        rc = closed_within(l, atoi(argv[i + 3]), t0);
    } else if (strcmp(cmd, "trickle") == 0 && argc - i > 2 && tls == NULL) {
        /* 200 bytes at one per 200 ms: 40 s if nobody stops it */
        uint8_t frame[4 + 200];
        uint64_t t0 = now_ns();
        int secs = atoi(argv[i + 2]);
        memset(frame, 0, sizeof(frame));
        frame[3] = 200;
        rc = 1;
        for (size_t k = 0; k < sizeof(frame); k++) {
            struct pollfd p = {.fd = wire_link_fd(l), .events = POLLIN};
            if (send(wire_link_fd(l), frame + k, 1, MSG_NOSIGNAL) != 1 ||
                poll(&p, 1, 200) != 0) {
                /* refused, or the daemon spoke (an EOF): it ended it */
                rc = closed_within(l, 1, t0);
                break;
            }
            if (now_ns() - t0 > (uint64_t)secs * 1000000000u) {
                fprintf(stderr, "dclient: trickle: still open after %d s\n",
                        secs);
                break;
            }
        }
    } else if (strcmp(cmd, "noread") == 0 && argc - i > 2 && tls == NULL) {
        uint64_t t0 = now_ns();
        rc = noread(l, atoi(argv[i + 2]));
        if (rc == 0)
            printf("ended; read out after %llu ms\n",
                   (unsigned long long)((now_ns() - t0) / 1000000u));
    } else if (strcmp(cmd, "rtt") == 0 && argc - i > 2) {
        rc = rtt(l, atol(argv[i + 2]));
    } else if (strcmp(cmd, "hold") == 0 && argc - i > 2) {
        /* 0 when the daemon ends the link before SECS are up. */
        rc = wait_closed(l, atoi(argv[i + 2]));
    } else {
        fprintf(stderr, "dclient: unknown command %s\n", cmd);
        rc = 2;
    }
out:
    wire_link_close(l);
    wire_tls_free(tls);
    return rc;
}
