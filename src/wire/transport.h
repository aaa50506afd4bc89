/*
 * transport.h - moving length-framed messages over a unix socket or a
 * mutual TLS 1.3 link (ARCHITECTURE section 10). Used by nimbusd (server
 * side) and by the remote backend (client side). Knows nothing of what a
 * frame carries: src/wire/proto.c does that.
 *
 * A frame is a 4-byte big-endian payload length, then the payload (one
 * protobuf-c message of nimbus.proto). The length is checked against the
 * limit before anything is allocated. Every socket is close-on-exec.
 * OpenSSL's TLS lives in transport.c only (the one place outside
 * src/hsm/crypto/ that includes OpenSSL headers: the link, not the keys).
 */
#ifndef NIMBUS_WIRE_TRANSPORT_H
#define NIMBUS_WIRE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/conf.h"

#define WIRE_FRAME_HEADER 4
/* The largest read buffer a link keeps between frames. */
#define WIRE_KEEP_READ_MAX (2u * 1024u * 1024u)

/* Who is on the other end, as the transport proved it. */
typedef struct wire_peer {
    bool tls;
    /* unix: SO_PEERCRED; tls: -1 */
    long uid, gid, pid;
    /* tls: the client certificate's subject (one line) and its SHA-256
     * fingerprint in hex; "" for unix */
    char cert_subject[256];
    char cert_sha256[65];
    /* "unix:/path" or "tls:1.2.3.4:5678" of the peer, for logs */
    char addr[128];
} wire_peer_t;

typedef struct wire_link wire_link_t; /* one connected socket (maybe TLS) */
typedef struct wire_tls wire_tls_t;   /* a TLS context: server or client */

/* TLS contexts from cfg->tls_cert / tls_key / tls_ca (TLS 1.3 only, peer
 * certificate required and verified both ways). false + err on failure. */
bool wire_tls_server_new(const struct config *cfg, wire_tls_t **out, char *err,
                         size_t errlen);
bool wire_tls_client_new(const struct config *cfg, wire_tls_t **out, char *err,
                         size_t errlen);
void wire_tls_free(wire_tls_t *t);

/* Client: connects to ep (a tls endpoint needs tls; the server's
 * certificate must name ep->host) within WIRE_CONNECT_MAX_MS. */
bool wire_link_connect(const struct config_endpoint *ep, wire_tls_t *tls,
                       wire_link_t **out, char *err, size_t errlen);
/* The same within ms (0 or more than WIRE_CONNECT_MAX_MS: that): the
 * connect(), the TLS handshake, and what the caller does next until it
 * sets another deadline (its version handshake) share one deadline
 * (wire_link_set_deadline), which stays armed on the link. */
#define WIRE_CONNECT_MAX_MS 10000ul
bool wire_link_connect_timed(const struct config_endpoint *ep, wire_tls_t *tls,
                             unsigned long ms, wire_link_t **out, char *err,
                             size_t errlen);
/* Server: wraps an accepted fd (does the TLS handshake when tls is not
 * NULL; fills the peer). Takes the fd, also on failure. */
bool wire_link_accept(int fd, wire_tls_t *tls, wire_link_t **out,
                      wire_peer_t *peer, char *err, size_t errlen);
void wire_link_close(wire_link_t *l);
int wire_link_fd(const wire_link_t *l);

typedef enum {
    WIRE_IO_OK = 0,
    WIRE_IO_EOF,     /* clean end between frames */
    WIRE_IO_TOO_BIG, /* header announced more than max (nothing read) */
    WIRE_IO_ERROR,   /* I/O or TLS error, or EOF inside a frame */
} wire_io_t;

/* Reads one frame: *buf malloc'd (payload only), *len its length. */
wire_io_t wire_frame_read(wire_link_t *l, size_t max, uint8_t **buf,
                          size_t *len);
/* The same into a buffer the link keeps across frames (no allocation
 * once it is large enough): *buf is valid until the next read on l or
 * wire_frame_done. The same limits hold; on failure the buffer is wiped
 * and freed. */
wire_io_t wire_frame_read_kept(wire_link_t *l, size_t max, uint8_t **buf,
                               size_t *len);
/* Wipes the first len bytes of the kept buffer; frees it when it is over
 * WIRE_KEEP_READ_MAX, so that a rare big frame does not stay held. */
void wire_frame_done(wire_link_t *l, size_t len);
/*
 * Bounded busy-polling on a link (on TLS, for the first byte of a record
 * OpenSSL has not buffered yet). With usec > 0, a
 * frame read first polls the socket without blocking, for at most usec
 * microseconds, before it blocks: a reply (or the next request) that
 * comes that soon costs no sleep and wake-up, which is most of a small
 * call's round trip. Adaptive: a link spins only while one of its last
 * two waits was that short (a blocking wait is timed too, so a link that
 * stopped spinning starts again when the peer answers quickly); a process
 * has at most one spinner fewer than the CPUs it may run on (none on one
 * CPU), and a spinner yields the CPU between polls. Nobody spins while
 * the machine has more running threads than CPUs (/proc/stat's
 * procs_running, sampled every 10 ms; without /proc/stat, the one-minute
 * load average against the CPUs), and a spinner kept off its CPU
 * for half a millisecond stops, and the process does not spin for the
 * next 100 ms: on a busy machine a spinner only takes CPU from the work
 * it waits for. 0: never (the default).
 */
void wire_link_set_spin(wire_link_t *l, unsigned usec);
/* The largest usec taken; more is cut to it. */
#define WIRE_SPIN_MAX_US 500u

/*
 * Read-ahead on a unix link (false: a TLS link, or out of memory): a
 * frame read takes the header and what follows it, up to
 * WIRE_READ_AHEAD bytes, in one recv, so that a small frame costs one
 * system call instead of two. The header is still checked before
 * anything is allocated for it, and never more than WIRE_READ_AHEAD
 * bytes are read past a header (a fixed buffer of the link, wiped as its
 * bytes are handed over and at close); bytes of a next frame wait there
 * for the next read. After a refused (WIRE_IO_TOO_BIG) or broken frame
 * the link reads nothing more: every later read is WIRE_IO_ERROR. Off by
 * default: a plain link reads nothing past a refused header.
 */
#define WIRE_READ_AHEAD 4096u
bool wire_link_set_readahead(wire_link_t *l);

/*
 * Deadlines (nimbusd's io_timeout). With ms > 0, once the first byte of a
 * frame has arrived the whole frame must have arrived within ms, and a
 * frame write (a TLS close_notify too) must be done within ms; the wait
 * for a frame's first byte stays unbounded (an idle link between frames
 * is legitimate). On TLS the first byte of a record counts as the
 * frame's. A whole-frame bound, not one per system call: a byte now and
 * then does not stretch it. A link that misses one fails the read or
 * write with WIRE_IO_ERROR, and wire_link_timed_out says why; it must
 * then be closed (its stream is cut mid-frame). 0: none (the default).
 * Bytes already there cost nothing more; a wait costs a poll.
 */
void wire_link_set_io_timeout(wire_link_t *l, unsigned ms);
/* The next frame read must be complete, its first byte included, within
 * ms from now (a handshake that must come at once); 0: no such bound. */
void wire_link_expect_within(wire_link_t *l, unsigned ms);
/*
 * The client's call bound: a deadline ms from now for everything that
 * follows on l, frame writes and reads, the wait for a reply's first
 * byte included, until set again (0: none, the default). It holds
 * wherever a read or write waits: the bounded polling, the socket, TLS
 * records; with io_timeout too, the earlier bound wins.
 */
void wire_link_set_deadline(wire_link_t *l, unsigned long ms);
/* Whether a bound was missed. Such a link is done for: the stream may
 * hold half a frame, and a late reply must never be read as the answer
 * of a later request, so every later read and write answers
 * WIRE_IO_ERROR at once, and wire_link_close sends no TLS close_notify. */
bool wire_link_timed_out(const wire_link_t *l);

/* Counters of one link's frame reads, for tests and tuning. */
typedef struct wire_spin_stats {
    unsigned long spins;   /* reads that polled before blocking */
    unsigned long hits;    /* ... and got their first bytes that way */
    unsigned long skipped; /* reads that did not poll (history, cap, quiet) */
    unsigned long stalls;  /* polls cut short: the CPU was taken away */
} wire_spin_stats_t;
void wire_link_spin_stats(const wire_link_t *l, wire_spin_stats_t *st);
/* The most links of this process that polled at the same time, and the
 * bound (CPUs less one). */
void wire_spin_peak(unsigned *peak, unsigned *cap);
/* Tests: where the count of running threads is read (a file holding a
 * "procs_running N" line; NULL: /proc/stat, read again at the next
 * frame; a file that cannot be opened: the load average), and whether a stall
 * silences the process (the default: true); ends a silence under way. */
void wire_spin_tune(const char *room, bool quiet_on_stall);

/* Writes one frame (header + payload) completely. */
wire_io_t wire_frame_write(wire_link_t *l, const uint8_t *buf, size_t len);
/* The same, the payload in n pieces (at most WIRE_WRITEV_MAX), written
 * where they lie: one sendmsg on a unix link. */
#define WIRE_WRITEV_MAX 16
wire_io_t wire_frame_writev(wire_link_t *l, const struct iovec *iov, size_t n);
/* The same with a descriptor passed along (SCM_RIGHTS, unix links only;
 * fd < 0: none). The caller keeps its fd. */
wire_io_t wire_frame_writev_fd(wire_link_t *l, const struct iovec *iov,
                               size_t n, int fd);
/* wire_frame_read_kept that also takes a descriptor sent with the frame's
 * header: *fd (close-on-exec) or -1. Unix links only; the other reads
 * discard any descriptor sent to them. */
wire_io_t wire_frame_read_kept_fd(wire_link_t *l, size_t max, uint8_t **buf,
                                  size_t *len, int *fd);

#endif
