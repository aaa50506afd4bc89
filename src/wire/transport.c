/*
 * transport.c - unix sockets and mutual TLS 1.3 under length-framed
 * messages (transport.h).
 *
 * TLS runs in a private OSSL_LIB_CTX per context: an application whose
 * OpenSSL configuration loads a PKCS#11 provider over this very module
 * must not have the module's own link recurse into it. The socket BIO is
 * ours too, so that a peer that went away gives EPIPE, not SIGPIPE: the
 * module may not touch the application's signal dispositions.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"
#include "wire/transport.h"

/* A TLS handshake that has not finished by then is dropped: a peer that
 * connects and says nothing must not hold a daemon thread for ever. */
#define WIRE_HANDSHAKE_TIMEOUT_S 10

struct wire_tls {
    OSSL_LIB_CTX *libctx;
    SSL_CTX *ctx;
    bool server;
};

struct wire_link {
    int fd;
    SSL *ssl;      /* NULL on a unix link */
    uint8_t *rbuf; /* wire_frame_read_kept's buffer, wiped between frames */
    size_t rcap;
    uint8_t *ra;   /* read-ahead: NULL, or WIRE_READ_AHEAD bytes */
    size_t ra_off; /* unread bytes in ra: [ra_off, ra_off + ra_len) */
    size_t ra_len;
    bool broken;        /* a read-ahead link after a refused or bad frame */
    unsigned spin_us;   /* 0: reads block at once */
    unsigned spin_hist; /* bit i: the wait i frames ago was within spin_us */
    wire_spin_stats_t spin_st;
    unsigned io_ms;       /* wire_link_set_io_timeout; 0: none */
    uint64_t next_ns;     /* wire_link_expect_within: the next frame's end */
    uint64_t deadline_ns; /* the I/O under way must end by then; 0: none */
    uint64_t call_ns;     /* wire_link_set_deadline's; 0: none */
    bool timed_out;       /* sticky: the link reads and writes no more */
    bool tracked;         /* its fd is in fork_fds (a client link) */
};

static void set_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    if (err == NULL || errlen == 0)
        return;
    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(err, errlen, "%s: %s", what, buf);
    } else {
        snprintf(err, errlen, "%s", what);
    }
    ERR_clear_error();
}

static void set_errno(char *err, size_t errlen, const char *what, int e)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: %s", what, strerror(e));
}

/* ------------------------------------------------------------ fork */

/*
 * The sockets of client links, closed in a child right after fork(): a
 * child keeps none of its parent's connections, so that when the parent
 * exits (or closes them) nimbusd sees the end at once, whatever the
 * child does (nginx's master forks workers that may never call
 * C_Initialize). The child handler only reads this fixed array and calls
 * close(): the parent may be multi-threaded, so nothing that allocates
 * or locks, and no SSL_shutdown (a close_notify from the child would end
 * the parent's TLS stream). The link structures stay in the child's
 * memory, abandoned and never used. A slot is emptied before its fd is
 * closed, so a child never closes a number the parent reused; a link
 * made when every slot is taken is not closed in a child (close-on-exec
 * still is). A slot also holds its socket's identity (device, inode),
 * and the child closes the number only if it still names that socket
 * (fstat: no allocation, no lock): an application that closed the
 * socket behind the module's back and reused the number for its own
 * file keeps that file in its children.
 */
#define WIRE_FORK_FDS 1024
#define FORK_SLOT_BUSY (-2) /* being filled in */
static atomic_int fork_fds[WIRE_FORK_FDS];
static struct {
    dev_t dev;
    ino_t ino;
} fork_ids[WIRE_FORK_FDS]; /* written before its fork_fds slot is */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static bool fork_handler_set;

static void fork_child_close(void)
{
    for (size_t i = 0; i < WIRE_FORK_FDS; i++) {
        int fd = atomic_exchange(&fork_fds[i], -1);
        struct stat st;

        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
            st.st_dev == fork_ids[i].dev && st.st_ino == fork_ids[i].ino)
            (void)close(fd);
    }
}

static void fork_init(void)
{
    for (size_t i = 0; i < WIRE_FORK_FDS; i++)
        atomic_init(&fork_fds[i], -1);
    fork_handler_set = pthread_atfork(NULL, NULL, fork_child_close) == 0;
}

/* Records fd to be closed in a forked child; false: not recorded. */
static bool fork_track(int fd)
{
    struct stat st;

    pthread_once(&fork_once, fork_init);
    if (!fork_handler_set || fstat(fd, &st) != 0)
        return false;
    for (size_t i = 0; i < WIRE_FORK_FDS; i++) {
        int none = -1;

        if (atomic_load(&fork_fds[i]) == -1 &&
            atomic_compare_exchange_strong(&fork_fds[i], &none,
                                           FORK_SLOT_BUSY)) {
            fork_ids[i].dev = st.st_dev;
            fork_ids[i].ino = st.st_ino;
            atomic_store(&fork_fds[i], fd);
            return true;
        }
    }
    return false;
}

static void fork_untrack(int fd)
{
    for (size_t i = 0; i < WIRE_FORK_FDS; i++) {
        int want = fd;

        if (atomic_compare_exchange_strong(&fork_fds[i], &want, -1))
            return;
    }
}

/* ------------------------------------------------------------ deadlines */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The deadline ms from now; 0 (none) for 0. */
static uint64_t after_ms(unsigned long ms)
{
    return ms == 0 ? 0 : now_ns() + (uint64_t)ms * 1000000u;
}

/* The earlier of two deadlines (0: none). */
static uint64_t dl_min(uint64_t a, uint64_t b)
{
    return a == 0 ? b : b == 0 || a < b ? a : b;
}

/*
 * Waits until fd is ready for events or l's deadline passes. true: ready
 * (or an error poll reports: the next call says which); false: the
 * deadline passed (l->timed_out, errno ETIMEDOUT). A whole-frame deadline,
 * not a per-call timeout: a peer trickling a byte now and then cannot
 * stretch a frame beyond it.
 */
static bool wait_ready(wire_link_t *l, short events)
{
    for (;;) {
        struct pollfd p = {.fd = l->fd, .events = events};
        uint64_t t = now_ns();
        int ms, r;

        if (t >= l->deadline_ns)
            break;
        /* rounded up: poll's 0 would spin through the last millisecond */
        ms = (int)((l->deadline_ns - t + 999999u) / 1000000u);
        r = poll(&p, 1, ms);
        if (r > 0 || (r < 0 && errno != EINTR))
            return true;
    }
    l->timed_out = true;
    errno = ETIMEDOUT;
    return false;
}

/* recv that honours l's deadline when one runs (then on a non-blocking
 * attempt first: bytes already there cost no poll). */
static ssize_t recv_dl(wire_link_t *l, void *buf, size_t len, int flags)
{
    ssize_t n;

    for (;;) {
        if (l->deadline_ns == 0) {
            n = recv(l->fd, buf, len, flags);
        } else {
            n = recv(l->fd, buf, len, flags | MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (!wait_ready(l, POLLIN))
                    return -1;
                continue;
            }
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n;
    }
}

/* The same for recvmsg (out false) and sendmsg (out true). */
static ssize_t msg_dl(wire_link_t *l, struct msghdr *mh, int flags, bool out)
{
    ssize_t n;

    for (;;) {
        int f = flags | (l->deadline_ns ? MSG_DONTWAIT : 0);

        n = out ? sendmsg(l->fd, mh, f) : recvmsg(l->fd, mh, f);
        if (n < 0 && l->deadline_ns != 0 &&
            (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_ready(l, out ? POLLOUT : POLLIN))
                return -1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n;
    }
}

/* A frame's first byte is here: the rest has io_ms (or what is left of
 * an earlier, shorter bound). */
static void arm_rest(wire_link_t *l)
{
    l->deadline_ns = dl_min(l->deadline_ns, after_ms(l->io_ms));
}

/* A frame write has io_ms in all: a peer that does not read its replies
 * holds the writer no longer. */
static void write_begin(wire_link_t *l)
{
    l->deadline_ns = dl_min(after_ms(l->io_ms), l->call_ns);
}

/* ------------------------------------------------------- the socket BIO */

static BIO_METHOD *sock_method;
static pthread_once_t sock_method_once = PTHREAD_ONCE_INIT;

/* The BIO's app data is its link, whose deadline TLS reads and writes
 * honour as the unix ones do. */
static int sock_bio_write(BIO *b, const char *in, int inl)
{
    wire_link_t *l = BIO_get_app_data(b);
    struct iovec v = {.iov_base = (void *)in, .iov_len = (size_t)inl};
    struct msghdr mh = {.msg_iov = &v, .msg_iovlen = 1};
    ssize_t n;

    BIO_clear_retry_flags(b);
    n = msg_dl(l, &mh, MSG_NOSIGNAL, true);
    return n < 0 ? -1 : (int)n;
}

static int sock_bio_read(BIO *b, char *out, int outl)
{
    wire_link_t *l = BIO_get_app_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    n = recv_dl(l, out, (size_t)outl, 0);
    if (n == 0)
        BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    return n < 0 ? -1 : (int)n;
}

static int sock_bio_puts(BIO *b, const char *s)
{
    return sock_bio_write(b, s, (int)strlen(s));
}

/* The fd lives in the BIO's data; the link closes it, not the BIO. */
static long sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    switch (cmd) {
    case BIO_C_SET_FD:
        BIO_set_data(b, (void *)(intptr_t)(*(int *)ptr));
        BIO_set_init(b, 1);
        return 1;
    case BIO_C_GET_FD:
        if (ptr != NULL)
            *(int *)ptr = (int)(intptr_t)BIO_get_data(b);
        return (long)(intptr_t)BIO_get_data(b);
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default:
        return 0;
    }
}

static void sock_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
                                     BIO_TYPE_DESCRIPTOR,
                                 "nimbus socket");

    if (m == NULL)
        return;
    if (!BIO_meth_set_write(m, sock_bio_write) ||
        !BIO_meth_set_read(m, sock_bio_read) ||
        !BIO_meth_set_puts(m, sock_bio_puts) ||
        !BIO_meth_set_ctrl(m, sock_bio_ctrl)) {
        BIO_meth_free(m);
        return;
    }
    sock_method = m;
}

/* A BIO on l's socket, reading and writing under l's deadline. */
static BIO *sock_bio_new(wire_link_t *l)
{
    BIO *b;

    pthread_once(&sock_method_once, sock_method_make);
    if (sock_method == NULL)
        return NULL;
    b = BIO_new(sock_method);
    if (b != NULL) {
        BIO_set_fd(b, l->fd, BIO_NOCLOSE);
        BIO_set_app_data(b, l);
    }
    return b;
}

/* ------------------------------------------------------------ contexts */

static bool tls_new(const struct config *cfg, bool server, wire_tls_t **out,
                    char *err, size_t errlen)
{
    wire_tls_t *t;

    *out = NULL;
    if (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0' ||
        cfg->tls_ca[0] == '\0') {
        set_err(err, errlen, "TLS needs tls_cert, tls_key and tls_ca");
        return false;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        set_err(err, errlen, "out of memory");
        return false;
    }
    t->server = server;
    t->libctx = OSSL_LIB_CTX_new();
    if (t->libctx == NULL) {
        set_err(err, errlen, "OSSL_LIB_CTX_new");
        goto fail;
    }
    t->ctx = SSL_CTX_new_ex(t->libctx, NULL,
                            server ? TLS_server_method() : TLS_client_method());
    if (t->ctx == NULL) {
        set_err(err, errlen, "SSL_CTX_new");
        goto fail;
    }
    if (!SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(t->ctx, TLS1_3_VERSION)) {
        set_err(err, errlen, "TLS 1.3 only");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(t->ctx, cfg->tls_cert) != 1) {
        set_err(err, errlen, "tls_cert");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(t->ctx, cfg->tls_key, SSL_FILETYPE_PEM) !=
        1) {
        set_err(err, errlen, "tls_key");
        goto fail;
    }
    if (SSL_CTX_check_private_key(t->ctx) != 1) {
        set_err(err, errlen, "tls_key does not match tls_cert");
        goto fail;
    }
    if (SSL_CTX_load_verify_locations(t->ctx, cfg->tls_ca, NULL) != 1) {
        set_err(err, errlen, "tls_ca");
        goto fail;
    }
    /* Both ends prove themselves: no certificate, no link. */
    SSL_CTX_set_verify(t->ctx,
                       SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    /* One connection is one conversation: nothing to resume, and no
     * tickets to write after the handshake. */
    SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_TICKET);
    /* A peer that closes without close_notify between frames is read as
     * an end, not as an error; inside a frame it is still an error. */
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (server) {
        STACK_OF(X509_NAME) *names =
            SSL_load_client_CA_file_ex(cfg->tls_ca, t->libctx, NULL);
        if (names == NULL) {
            set_err(err, errlen, "tls_ca holds no certificate");
            goto fail;
        }
        SSL_CTX_set_client_CA_list(t->ctx, names);
        SSL_CTX_set_num_tickets(t->ctx, 0);
    }
    *out = t;
    return true;
fail:
    wire_tls_free(t);
    return false;
}

bool wire_tls_server_new(const struct config *cfg, wire_tls_t **out, char *err,
                         size_t errlen)
{
    return tls_new(cfg, true, out, err, errlen);
}

bool wire_tls_client_new(const struct config *cfg, wire_tls_t **out, char *err,
                         size_t errlen)
{
    return tls_new(cfg, false, out, err, errlen);
}

void wire_tls_free(wire_tls_t *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    OSSL_LIB_CTX_free(t->libctx);
    free(t);
}

/* --------------------------------------------------------------- links */

static bool set_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);

    return fl >= 0 && fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == 0;
}

/* A unix stream socket queues about wmem_default (208 KiB) by default, so
 * a 1 MiB frame would cross in five or more hand-offs, each a wake-up of
 * the other process. Asking for more lets a bulk frame cross in one; the
 * kernel caps the request at net.core.wmem_max / rmem_max, and a refusal
 * only costs speed. */
#define WIRE_UNIX_SOCKBUF (2 * 1024 * 1024)

static void set_unix_bufs(int fd)
{
    int v = WIRE_UNIX_SOCKBUF;

    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

static wire_link_t *link_new(int fd)
{
    wire_link_t *l = calloc(1, sizeof(*l));

    if (l != NULL)
        l->fd = fd;
    return l;
}

/* Runs the handshake on l->fd; false + err on failure. */
static bool tls_handshake(wire_link_t *l, wire_tls_t *tls, const char *host,
                          char *err, size_t errlen)
{
    BIO *bio;
    int r;

    l->ssl = SSL_new(tls->ctx);
    bio = sock_bio_new(l);
    if (l->ssl == NULL || bio == NULL) {
        BIO_free(bio);
        set_err(err, errlen, "SSL_new");
        return false;
    }
    SSL_set_bio(l->ssl, bio, bio);
    if (host != NULL) {
        unsigned char addr[16];
        bool ip = inet_pton(AF_INET, host, addr) == 1 ||
                  inet_pton(AF_INET6, host, addr) == 1;
        /* The server's certificate must name the host we dialled: a DNS
         * name (also sent as SNI) or an IP address SAN. */
        if (ip) {
            if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(l->ssl), host) !=
                1) {
                set_err(err, errlen, "TLS host");
                return false;
            }
        } else if (SSL_set1_host(l->ssl, host) != 1 ||
                   SSL_set_tlsext_host_name(l->ssl, host) != 1) {
            set_err(err, errlen, "TLS host");
            return false;
        }
    }
    /* One deadline for the whole handshake (the BIO honours it): a
     * per-call timeout would let a peer trickling a byte every few
     * seconds hold the handshake for ever. */
    l->deadline_ns =
        dl_min(after_ms(WIRE_HANDSHAKE_TIMEOUT_S * 1000ul), l->call_ns);
    r = host != NULL ? SSL_connect(l->ssl) : SSL_accept(l->ssl);
    l->deadline_ns = 0;
    if (r != 1) {
        long v = SSL_get_verify_result(l->ssl);
        if (v != X509_V_OK) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "TLS handshake: certificate: %s",
                         X509_verify_cert_error_string(v));
            ERR_clear_error();
        } else {
            set_err(err, errlen, "TLS handshake");
        }
        return false;
    }
    return true;
}

/* Bounds a blocking connect(): a unix listener whose backlog is full (a
 * stopped daemon) or a TCP peer that does not answer gives up after ms
 * (Linux honours SO_SNDTIMEO in connect: EAGAIN / EINPROGRESS). */
static void set_connect_timeout(int s, unsigned long ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                         .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    (void)setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/*
 * connect() by a deadline. With SO_SNDTIMEO set the kernel answers EINTR
 * to any signal, SA_RESTART or not, and a retry would wait the whole
 * bound again: a timer signal every few hundred milliseconds (a
 * profiler, SIGALRM) would stretch the bound without end. Each retry
 * gets only what is left. -1 with errno (ETIMEDOUT once it has passed).
 */
static int connect_dl(int s, const struct sockaddr *sa, socklen_t len,
                      uint64_t deadline)
{
    for (;;) {
        uint64_t t = now_ns();
        unsigned long left;

        if (t >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        /* rounded up: SO_SNDTIMEO 0 would mean no bound at all */
        left = (unsigned long)((deadline - t + 999999u) / 1000000u);
        set_connect_timeout(s, left);
        if (connect(s, sa, len) == 0)
            return 0;
        /* the bound passed: EAGAIN (unix), EINPROGRESS (TCP), EALREADY
         * (TCP, a retry of a connect still under way) */
        if (errno == EAGAIN || errno == EINPROGRESS || errno == EALREADY) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
}

static void sock_close(int s, bool tracked)
{
    if (tracked)
        fork_untrack(s);
    close(s);
}

static bool connect_failed(int s, bool tracked, const char *what, int e,
                           char *err, size_t errlen)
{
    sock_close(s, tracked);
    if (e == EAGAIN || e == EINPROGRESS)
        e = ETIMEDOUT; /* the bound passed */
    set_errno(err, errlen, what, e);
    return false;
}

static bool connect_unix(const char *path, uint64_t deadline, int *fd,
                         bool *tracked, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    int s;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        set_err(err, errlen, "unix socket path too long");
        return false;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        set_errno(err, errlen, "socket", errno);
        return false;
    }
    *tracked = fork_track(s);
    if (connect_dl(s, (struct sockaddr *)&sa, sizeof(sa), deadline) != 0)
        return connect_failed(s, *tracked, path, errno, err, errlen);
    set_connect_timeout(s, 0);
    set_unix_bufs(s);
    *fd = s;
    return true;
}

static bool connect_tcp(const char *host, unsigned port, uint64_t deadline,
                        int *fd, bool *tracked, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[8];
    int s = -1, e = ECONNREFUSED, r, one = 1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%u", port);
    r = getaddrinfo(host, portstr, &hints, &res);
    if (r != 0) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: %s", host, gai_strerror(r));
        return false;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                   ai->ai_protocol);
        if (s < 0) {
            e = errno;
            continue;
        }
        *tracked = fork_track(s);
        /* one deadline for all the host's addresses, not one each */
        r = connect_dl(s, ai->ai_addr, ai->ai_addrlen, deadline);
        if (r == 0) {
            set_connect_timeout(s, 0);
            break;
        }
        e = errno == EAGAIN || errno == EINPROGRESS ? ETIMEDOUT : errno;
        sock_close(s, *tracked);
        *tracked = false;
        s = -1;
    }
    freeaddrinfo(res);
    if (s < 0) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s:%u: %s", host, port, strerror(e));
        return false;
    }
    /* A request is one write and waits for its reply: no Nagle delay. */
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *fd = s;
    return true;
}

bool wire_link_connect(const struct config_endpoint *ep, wire_tls_t *tls,
                       wire_link_t **out, char *err, size_t errlen)
{
    if (!wire_link_connect_timed(ep, tls, WIRE_CONNECT_MAX_MS, out, err,
                                 errlen))
        return false;
    (*out)->call_ns = 0; /* as before: no bound once connected */
    return true;
}

bool wire_link_connect_timed(const struct config_endpoint *ep, wire_tls_t *tls,
                             unsigned long ms, wire_link_t **out, char *err,
                             size_t errlen)
{
    uint64_t deadline;
    wire_link_t *l;
    bool tracked = false;
    int fd;

    *out = NULL;
    if (ms == 0 || ms > WIRE_CONNECT_MAX_MS)
        ms = WIRE_CONNECT_MAX_MS;
    deadline = after_ms(ms);
    if (ep->kind == CONFIG_EP_UNIX) {
        if (!connect_unix(ep->path, deadline, &fd, &tracked, err, errlen))
            return false;
    } else if (ep->kind == CONFIG_EP_TLS) {
        if (tls == NULL || tls->server) {
            set_err(err, errlen, "a tls endpoint needs a client TLS context");
            return false;
        }
        if (!connect_tcp(ep->host, ep->port, deadline, &fd, &tracked, err,
                         errlen))
            return false;
    } else {
        set_err(err, errlen, "unknown endpoint kind");
        return false;
    }
    l = link_new(fd);
    if (l == NULL) {
        sock_close(fd, tracked);
        set_err(err, errlen, "out of memory");
        return false;
    }
    l->tracked = tracked;
    /* One bound from connect() to the end of the caller's version
     * handshake: it stays armed. */
    l->call_ns = deadline;
    if (ep->kind == CONFIG_EP_TLS &&
        !tls_handshake(l, tls, ep->host, err, errlen)) {
        if (l->timed_out)
            set_errno(err, errlen, "TLS handshake", ETIMEDOUT);
        wire_link_close(l);
        return false;
    }
    *out = l;
    return true;
}

/* "tls:1.2.3.4:5678" / "tls:[::1]:5678" / "unix:/path" of the peer. */
static void peer_addr(int fd, bool tls, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    memset(&ss, 0, sizeof(ss));
    if (!tls) {
        struct sockaddr_un *su = (struct sockaddr_un *)&ss;
        /* The peer of an accepted unix socket is unnamed: name ours. */
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
            ss.ss_family == AF_UNIX &&
            sl > offsetof(struct sockaddr_un, sun_path) &&
            su->sun_path[0] != '\0')
            snprintf(out, outlen, "unix:%.*s",
                     (int)(sl - offsetof(struct sockaddr_un, sun_path)),
                     su->sun_path);
        else
            snprintf(out, outlen, "unix:");
        return;
    }
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
            port = ntohs(s4->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
            port = ntohs(s6->sin6_port);
            snprintf(out, outlen, "tls:[%s]:%u", host, port);
            return;
        }
    }
    snprintf(out, outlen, "tls:%s:%u", host, port);
}

static bool peer_cert(SSL *ssl, OSSL_LIB_CTX *libctx, wire_peer_t *peer)
{
    X509 *x = SSL_get0_peer_certificate(ssl);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD *sha256;
    bool ok;

    if (x == NULL)
        return false;
    if (X509_NAME_oneline(X509_get_subject_name(x), peer->cert_subject,
                          (int)sizeof(peer->cert_subject)) == NULL)
        return false;
    sha256 = EVP_MD_fetch(libctx, "SHA256", NULL);
    ok = sha256 != NULL && X509_digest(x, sha256, md, &mdlen) == 1 &&
         mdlen == 32;
    EVP_MD_free(sha256);
    if (!ok)
        return false;
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(peer->cert_sha256 + 2 * i, 3, "%02x", md[i]);
    return true;
}

bool wire_link_accept(int fd, wire_tls_t *tls, wire_link_t **out,
                      wire_peer_t *peer, char *err, size_t errlen)
{
    wire_link_t *l;

    *out = NULL;
    memset(peer, 0, sizeof(*peer));
    peer->uid = peer->gid = peer->pid = -1;
    if (fd < 0) {
        set_err(err, errlen, "bad descriptor");
        return false;
    }
    if (!set_cloexec(fd)) {
        set_errno(err, errlen, "FD_CLOEXEC", errno);
        close(fd);
        return false;
    }
    if (tls != NULL && !tls->server) {
        set_err(err, errlen, "a server link needs a server TLS context");
        close(fd);
        return false;
    }
    l = link_new(fd);
    if (l == NULL) {
        set_err(err, errlen, "out of memory");
        close(fd);
        return false;
    }
    peer->tls = tls != NULL;
    peer_addr(fd, peer->tls, peer->addr, sizeof(peer->addr));
    if (tls == NULL) {
        struct ucred cred;
        socklen_t cl = sizeof(cred);

        set_unix_bufs(fd);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 ||
            cl != sizeof(cred)) {
            set_errno(err, errlen, "SO_PEERCRED", errno);
            goto fail;
        }
        peer->uid = (long)cred.uid;
        peer->gid = (long)cred.gid;
        peer->pid = (long)cred.pid;
    } else {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (!tls_handshake(l, tls, NULL, err, errlen))
            goto fail;
        if (!peer_cert(l->ssl, tls->libctx, peer)) {
            set_err(err, errlen, "TLS peer certificate unreadable");
            goto fail;
        }
    }
    *out = l;
    return true;
fail:
    wire_link_close(l);
    return false;
}

void wire_link_close(wire_link_t *l)
{
    if (l == NULL)
        return;
    if (l->ssl != NULL) {
        /* close_notify once, without waiting for the peer's; not after a
         * timeout (the stream is cut mid-record), and bounded like any
         * write: a peer that reads nothing must not hold the closer. */
        if (SSL_is_init_finished(l->ssl) && !l->timed_out) {
            write_begin(l);
            SSL_shutdown(l->ssl);
        }
        SSL_free(l->ssl);
    }
    if (l->fd >= 0)
        sock_close(l->fd, l->tracked);
    util_free_wipe(l->rbuf, l->rcap);
    util_free_wipe(l->ra, l->ra != NULL ? WIRE_READ_AHEAD : 0);
    ERR_clear_error();
    free(l);
}

int wire_link_fd(const wire_link_t *l)
{
    return l != NULL ? l->fd : -1;
}

/* -------------------------------------------------------------- frames */

/* Reads exactly len bytes. 1: done; 0: EOF before the first byte; -1:
 * error or EOF after some bytes. */
static int read_full(wire_link_t *l, uint8_t *buf, size_t len)
{
    size_t got = 0;

    if (l->ra_len > 0 && len > 0) {
        size_t take = l->ra_len < len ? l->ra_len : len;
        memcpy(buf, l->ra + l->ra_off, take);
        /* read-ahead bytes may be a PIN: gone once handed over */
        util_wipe(l->ra + l->ra_off, take);
        l->ra_off += take;
        l->ra_len -= take;
        got = take;
    }
    while (got < len) {
        size_t want = len - got;
        if (l->ssl != NULL) {
            size_t n = 0;
            int r = SSL_read_ex(l->ssl, buf + got, want, &n);
            if (r != 1) {
                int e = SSL_get_error(l->ssl, r);
                ERR_clear_error();
                if (l->timed_out)
                    return -1;
                if (e == SSL_ERROR_ZERO_RETURN && got == 0)
                    return 0;
                /* A peer that closed without close_notify between frames
                 * is an ordinary end too. */
                if (e == SSL_ERROR_SYSCALL && got == 0 && errno == 0)
                    return 0;
                return -1;
            }
            got += n;
        } else {
            ssize_t n = recv_dl(l, buf + got, want, 0);
            if (n < 0)
                return -1;
            if (n == 0)
                return got == 0 ? 0 : -1;
            got += (size_t)n;
        }
    }
    return 1;
}

/* ----------------------------------------------------------- spinning */

/* A spinner that was off its CPU this long between two polls (it yielded
 * to, or was preempted by, a thread that wants the CPU for a whole time
 * slice: not a peer answering in microseconds) competes for the CPU: it
 * stops, and nobody in the process spins for WIRE_SPIN_QUIET_NS. Without
 * this, spinners lose the scheduler's favour to sleepers and a busy
 * machine's CPU hogs delay their replies by whole time slices. */
#define WIRE_SPIN_STALL_NS (500u * 1000u)
#define WIRE_SPIN_QUIET_NS (100u * 1000u * 1000u)

static atomic_uint spinners, spin_peak;
static _Atomic uint64_t spin_quiet_until;
static unsigned spin_cap;
static pthread_once_t spin_cap_once = PTHREAD_ONCE_INIT;

/* A spinner holds a CPU: leave one to the peer and everything else. */
static void spin_cap_make(void)
{
    cpu_set_t set;
    int n = 0;

    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    spin_cap = n > 1 ? (unsigned)n - 1 : 0;
}

/*
 * Whether the machine has a CPU to spare: the kernel's count of running
 * and runnable threads (/proc/stat procs_running, the caller included) is
 * at most the CPUs this process may use. Sampled at most every
 * WIRE_SPIN_SAMPLE_NS by whichever spinner comes first. A spinner on an
 * oversubscribed machine takes CPU from work that would answer it, and
 * the scheduler then places it behind that work (measured: a stream of
 * 600,000-iteration logins in nimbusd beside signatures: p99 x2-3).
 */
#define WIRE_SPIN_SAMPLE_NS (10u * 1000u * 1000u)

/* sysinfo's loads are fixed point with this many fraction bits */
#define WIRE_SI_LOAD_SHIFT 16

static _Atomic uint64_t room_checked_ns;
static atomic_bool room_ok = true;
static char room_path[256] = "/proc/stat";
static atomic_bool stall_quiets = true;

/* No /proc/stat to read (nimbusd under systemd's ProcSubset=pid): the
 * one-minute load average, slower to follow but always there. */
static bool room_from_load(void)
{
    struct sysinfo si;

    if (sysinfo(&si) != 0)
        return true; /* no view: the other rules decide */
    return si.loads[0] < ((unsigned long)spin_cap + 1) << WIRE_SI_LOAD_SHIFT;
}

static bool room_read(void)
{
    char buf[4096], *p;
    ssize_t n;
    size_t got = 0;
    int fd = open(room_path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return room_from_load();
    while (got < sizeof(buf) - 1 &&
           (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    buf[got] = '\0';
    p = strstr(buf, "\nprocs_running ");
    if (p == NULL)
        return true;
    return strtoul(p + 15, NULL, 10) <= (unsigned long)spin_cap + 1;
}

static bool spin_room(uint64_t now)
{
    uint64_t last = atomic_load(&room_checked_ns);

    pthread_once(&spin_cap_once, spin_cap_make);
    if (now - last >= WIRE_SPIN_SAMPLE_NS &&
        atomic_compare_exchange_strong(&room_checked_ns, &last, now))
        atomic_store(&room_ok, room_read());
    return atomic_load(&room_ok);
}

void wire_spin_tune(const char *room, bool quiet_on_stall)
{
    snprintf(room_path, sizeof(room_path), "%s",
             room != NULL ? room : "/proc/stat");
    atomic_store(&room_checked_ns, 0);
    atomic_store(&room_ok, true);
    atomic_store(&stall_quiets, quiet_on_stall);
    atomic_store(&spin_quiet_until, 0);
}

static bool spin_enter(void)
{
    unsigned now = atomic_load(&spinners), peak;

    pthread_once(&spin_cap_once, spin_cap_make);
    do {
        if (now >= spin_cap)
            return false;
    } while (!atomic_compare_exchange_weak(&spinners, &now, now + 1));
    peak = atomic_load(&spin_peak);
    while (now + 1 > peak &&
           !atomic_compare_exchange_weak(&spin_peak, &peak, now + 1))
        ;
    return true;
}

static void spin_leave(void)
{
    atomic_fetch_sub(&spinners, 1);
}

void wire_link_set_spin(wire_link_t *l, unsigned usec)
{
    if (l == NULL)
        return;
    l->spin_us = usec < WIRE_SPIN_MAX_US ? usec : WIRE_SPIN_MAX_US;
    l->spin_hist = 1;
}

bool wire_link_set_readahead(wire_link_t *l)
{
    if (l == NULL || l->ssl != NULL)
        return false;
    if (l->ra == NULL) {
        l->ra = malloc(WIRE_READ_AHEAD);
        if (l->ra == NULL)
            return false;
        l->ra_off = l->ra_len = 0;
    }
    return true;
}

void wire_link_set_io_timeout(wire_link_t *l, unsigned ms)
{
    if (l != NULL)
        l->io_ms = ms;
}

void wire_link_expect_within(wire_link_t *l, unsigned ms)
{
    if (l != NULL)
        l->next_ns = after_ms(ms);
}

void wire_link_set_deadline(wire_link_t *l, unsigned long ms)
{
    if (l != NULL)
        l->call_ns = after_ms(ms);
}

bool wire_link_timed_out(const wire_link_t *l)
{
    return l != NULL && l->timed_out;
}

void wire_link_spin_stats(const wire_link_t *l, wire_spin_stats_t *st)
{
    if (st == NULL)
        return;
    memset(st, 0, sizeof(*st));
    if (l != NULL)
        *st = l->spin_st;
}

void wire_spin_peak(unsigned *peak, unsigned *cap)
{
    pthread_once(&spin_cap_once, spin_cap_make);
    if (peak != NULL)
        *peak = atomic_load(&spin_peak);
    if (cap != NULL)
        *cap = spin_cap;
}

/*
 * The first bytes of a frame on a spinning link: polls for up to spin_us
 * when the link's recent waits were that short, then blocks. Reads at
 * most len bytes (the header: never past it); with peek (a TLS link, whose
 * bytes are OpenSSL's to read) only waits for one to arrive and leaves it.
 * >0: bytes read (or ready); 0: EOF; -1: error.
 */
static ssize_t recv_first(wire_link_t *l, uint8_t *buf, size_t len, bool peek)
{
    int pk = peek ? MSG_PEEK : 0;
    uint64_t t0 = now_ns(), limit = (uint64_t)l->spin_us * 1000u, last = t0;
    bool fast = false, done = false;
    ssize_t n = -1;

    if ((l->spin_hist & 3u) != 0 && t0 >= atomic_load(&spin_quiet_until) &&
        spin_room(t0) && spin_enter()) {
        l->spin_st.spins++;
        for (;;) {
            uint64_t t;
            n = recv(l->fd, buf, len, MSG_DONTWAIT | pk);
            if (n >= 0 ||
                (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                done = true;
                break;
            }
            t = now_ns();
            if (t - last >= WIRE_SPIN_STALL_NS) {
                if (atomic_load(&stall_quiets))
                    atomic_store(&spin_quiet_until, t + WIRE_SPIN_QUIET_NS);
                l->spin_st.stalls++;
                break;
            }
            if (t - t0 >= limit || (l->deadline_ns != 0 && t >= l->deadline_ns))
                break;
            last = t;
            /* Whoever else wants this CPU goes first: on a busy machine
             * the peer often shares it, and a spinner that does not yield
             * delays the very reply it waits for (measured: p50 x5). */
            sched_yield();
        }
        spin_leave();
        if (n > 0) {
            l->spin_st.hits++;
            fast = true;
        }
    } else {
        l->spin_st.skipped++;
    }
    if (!done) {
        /* With a deadline, wait first: the polling saw nothing (or was
         * skipped, and a reply is rarely there this soon). */
        if (l->deadline_ns != 0 && !wait_ready(l, POLLIN))
            n = -1;
        else
            n = recv_dl(l, buf, len, pk);
        /* A wait that would have ended within the window is timed too:
         * a link that stopped spinning starts again when its peer
         * answers fast. */
        fast = n > 0 && now_ns() - t0 <= limit;
    }
    l->spin_hist = (l->spin_hist << 1) | (fast ? 1u : 0u);
    return n;
}

/* read_full of a unix link's header that also takes a descriptor passed
 * with it: *fd the first one (the others are closed), or -1. */
static int read_full_fd(wire_link_t *l, uint8_t *buf, size_t len, int *fd)
{
    size_t got = 0;

    *fd = -1;
    while (got < len) {
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(4 * sizeof(int))];
        } cm;
        struct iovec iov = {.iov_base = buf + got, .iov_len = len - got};
        struct msghdr mh;
        struct cmsghdr *c;
        ssize_t n;

        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cm.b;
        mh.msg_controllen = sizeof(cm.b);
        n = msg_dl(l, &mh, MSG_CMSG_CLOEXEC, false);
        if (n > 0 && got == 0)
            arm_rest(l);
        for (c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; c != NULL;
             c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                 i++) {
                int f;
                memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (*fd < 0)
                    *fd = f;
                else
                    close(f);
            }
        }
        if (n <= 0) {
            if (*fd >= 0)
                close(*fd);
            *fd = -1;
            return n == 0 && got == 0 ? 0 : -1;
        }
        got += (size_t)n;
    }
    return 1;
}

/* What a frame's buffer starts at before its bytes arrive. */
#define WIRE_FIRST_CHUNK (64u * 1024u)

/*
 * Reads one frame's payload into *pp (capacity *pcap, which may be 0 and
 * may be larger than the frame): grows it only as the bytes arrive.
 */
static wire_io_t frame_read_one(wire_link_t *l, size_t max, uint8_t **pp,
                                size_t *pcap, size_t *len, int *fd)
{
    uint8_t hdr[WIRE_FRAME_HEADER];
    uint32_t n;
    size_t cap = *pcap, got = 0;
    uint8_t *p = *pp;
    int r;

    *len = 0;
    errno = 0;
    if (l->broken || l->timed_out)
        return WIRE_IO_ERROR;
    if (fd != NULL && l->ssl == NULL && l->ra_len == 0) {
        /* A descriptor comes with the header's bytes: recvmsg for them
         * (never a read-ahead, whose recv would drop it). */
        r = read_full_fd(l, hdr, sizeof(hdr), fd);
    } else if (l->ra != NULL && l->ra_len == 0) {
        /* One recv for the header and what follows, up to
         * WIRE_READ_AHEAD: a small frame costs one system call. */
        ssize_t k;
        l->ra_off = 0;
        if (l->spin_us > 0)
            k = recv_first(l, l->ra, WIRE_READ_AHEAD, false);
        else
            k = recv_dl(l, l->ra, WIRE_READ_AHEAD, 0);
        if (k == 0)
            return WIRE_IO_EOF;
        if (k < 0)
            return WIRE_IO_ERROR;
        arm_rest(l);
        l->ra_len = (size_t)k;
        /* EOF after part of the header is a broken frame */
        r = read_full(l, hdr, sizeof(hdr)) == 1 ? 1 : -1;
    } else if (l->ra == NULL && l->ssl == NULL && l->spin_us > 0) {
        ssize_t first = recv_first(l, hdr, sizeof(hdr), false);
        if (first == 0)
            return WIRE_IO_EOF;
        if (first < 0)
            return WIRE_IO_ERROR;
        arm_rest(l);
        r = (size_t)first == sizeof(hdr)
                ? 1
                : read_full(l, hdr + first, sizeof(hdr) - (size_t)first);
        if (r == 0)
            r = -1;
    } else {
        /* The first byte (on TLS a record's, peeked: OpenSSL reads it) is
         * waited for apart from the rest when it is not here yet: by
         * polling on a spinning TLS link, and with io_timeout so that the
         * rest's bound starts at it (unbounded between frames, or the
         * next frame's bound). A peer that sends part of a TLS record and
         * stops is as bounded as one that stops in a frame. */
        bool here =
            l->ra_len > 0 || (l->ssl != NULL && SSL_has_pending(l->ssl));

        if (!here && (l->io_ms > 0 || (l->ssl != NULL && l->spin_us > 0))) {
            uint8_t c;
            ssize_t first = l->spin_us > 0 ? recv_first(l, &c, 1, true)
                                           : recv_dl(l, &c, 1, MSG_PEEK);
            if (first < 0)
                return WIRE_IO_ERROR;
            if (first > 0)
                arm_rest(l);
        } else {
            arm_rest(l); /* here already, or no io_timeout: a no-op */
        }
        r = read_full(l, hdr, sizeof(hdr));
    }
    if (r == 0)
        return WIRE_IO_EOF;
    if (r < 0)
        return WIRE_IO_ERROR;
    n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
        (uint32_t)hdr[2] << 8 | (uint32_t)hdr[3];
    /* The limit before the allocation: a header is only a claim. */
    if (n > max)
        return WIRE_IO_TOO_BIG;
    /* Memory follows the bytes that arrive, not the claim: a peer that
     * announces max_frame on every connection and sends little holds
     * little. The buffer grows fourfold (copies add up to a third of the
     * frame); the old one is wiped, as it may hold a PIN. A kept buffer
     * is memory that earlier frames' bytes already paid for. */
    if (p == NULL) {
        cap = n < WIRE_FIRST_CHUNK ? n : WIRE_FIRST_CHUNK;
        p = malloc(cap > 0 ? cap : 1);
        if (p == NULL)
            return WIRE_IO_ERROR;
        cap = cap > 0 ? cap : 1;
        *pp = p;
        *pcap = cap;
    }
    while (got < n) {
        size_t upto;
        if (got == cap) {
            size_t ncap =
                cap * 4 > WIRE_FIRST_CHUNK ? cap * 4 : WIRE_FIRST_CHUNK;
            uint8_t *q;
            ncap = ncap < n ? ncap : n;
            q = malloc(ncap);
            if (q == NULL)
                return WIRE_IO_ERROR;
            memcpy(q, p, got);
            util_free_wipe(p, got);
            p = q;
            cap = ncap;
            *pp = p;
            *pcap = cap;
        }
        upto = cap < n ? cap : n;
        if (read_full(l, p + got, upto - got) != 1)
            return WIRE_IO_ERROR;
        got = upto;
    }
    *len = n;
    return WIRE_IO_OK;
}

/*
 * frame_read_one, and on a read-ahead link a refused or broken frame
 * ends the link's reading: what was read ahead is wiped unread, and
 * every later read fails (the stream has lost its frame boundaries).
 */
static wire_io_t frame_read_buf(wire_link_t *l, size_t max, uint8_t **pp,
                                size_t *pcap, size_t *len, int *fd)
{
    wire_io_t r;

    /* wire_link_expect_within's bound covers this read only; the
     * caller's deadline (wire_link_set_deadline) holds until changed */
    l->deadline_ns = dl_min(l->next_ns, l->call_ns);
    l->next_ns = 0;
    r = frame_read_one(l, max, pp, pcap, len, fd);
    l->deadline_ns = 0;
    if (l->ra != NULL && (r == WIRE_IO_TOO_BIG || r == WIRE_IO_ERROR)) {
        util_wipe(l->ra, WIRE_READ_AHEAD);
        l->ra_off = l->ra_len = 0;
        l->broken = true;
    }
    return r;
}

wire_io_t wire_frame_read(wire_link_t *l, size_t max, uint8_t **buf,
                          size_t *len)
{
    uint8_t *p = NULL;
    size_t cap = 0;
    wire_io_t r;

    *buf = NULL;
    *len = 0;
    if (l == NULL)
        return WIRE_IO_ERROR;
    r = frame_read_buf(l, max, &p, &cap, len, NULL);
    if (r != WIRE_IO_OK) {
        util_free_wipe(p, cap);
        return r;
    }
    *buf = p;
    return WIRE_IO_OK;
}

static wire_io_t read_kept(wire_link_t *l, size_t max, uint8_t **buf,
                           size_t *len, int *fd)
{
    wire_io_t r;

    *buf = NULL;
    *len = 0;
    if (l == NULL)
        return WIRE_IO_ERROR;
    r = frame_read_buf(l, max, &l->rbuf, &l->rcap, len, fd);
    if (r != WIRE_IO_OK) {
        /* nothing of a broken frame stays */
        util_free_wipe(l->rbuf, l->rcap);
        l->rbuf = NULL;
        l->rcap = 0;
        return r;
    }
    *buf = l->rbuf;
    return WIRE_IO_OK;
}

wire_io_t wire_frame_read_kept(wire_link_t *l, size_t max, uint8_t **buf,
                               size_t *len)
{
    return read_kept(l, max, buf, len, NULL);
}

wire_io_t wire_frame_read_kept_fd(wire_link_t *l, size_t max, uint8_t **buf,
                                  size_t *len, int *fd)
{
    wire_io_t r;

    *fd = -1;
    r = read_kept(l, max, buf, len, fd);
    if (r != WIRE_IO_OK && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return r;
}

void wire_frame_done(wire_link_t *l, size_t len)
{
    if (l == NULL || l->rbuf == NULL)
        return;
    util_wipe(l->rbuf, len < l->rcap ? len : l->rcap);
    if (l->rcap > WIRE_KEEP_READ_MAX) {
        free(l->rbuf);
        l->rbuf = NULL;
        l->rcap = 0;
    }
}

/* pass >= 0: a descriptor sent with the first byte. */
static bool write_unix_fd(wire_link_t *l, struct iovec *iov, int iovcnt,
                          int pass)
{
    struct msghdr mh;
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } cm;

    while (iovcnt > 0) {
        ssize_t n;
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)iovcnt;
        if (pass >= 0) {
            struct cmsghdr *c;

            memset(&cm, 0, sizeof(cm));
            mh.msg_control = cm.b;
            mh.msg_controllen = sizeof(cm.b);
            c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &pass, sizeof(int));
        }
        n = msg_dl(l, &mh, MSG_NOSIGNAL, true);
        if (n > 0)
            pass = -1; /* it went with the first bytes */
        if (n <= 0)
            return false;
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return true;
}

static bool write_unix(wire_link_t *l, struct iovec *iov, int iovcnt)
{
    return write_unix_fd(l, iov, iovcnt, -1);
}

static bool write_tls(SSL *ssl, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        size_t n = 0;
        if (SSL_write_ex(ssl, buf, len, &n) != 1) {
            ERR_clear_error();
            return false;
        }
        buf += n;
        len -= n;
    }
    return true;
}

/* Frames up to this size go out as one TLS record with their header. */
#define WIRE_COALESCE_MAX (16u * 1024u)

wire_io_t wire_frame_write(wire_link_t *l, const uint8_t *buf, size_t len)
{
    uint8_t hdr[WIRE_FRAME_HEADER];
    bool ok;

    if (l == NULL || (buf == NULL && len > 0) || len > UINT32_MAX ||
        l->timed_out)
        return WIRE_IO_ERROR;
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
    write_begin(l);
    if (l->ssl == NULL) {
        struct iovec iov[2] = {
            {.iov_base = hdr, .iov_len = sizeof(hdr)},
            {.iov_base = (void *)buf, .iov_len = len},
        };
        ok = write_unix(l, iov, len > 0 ? 2 : 1);
    } else if (len <= WIRE_COALESCE_MAX) {
        uint8_t one[WIRE_FRAME_HEADER + WIRE_COALESCE_MAX];
        memcpy(one, hdr, sizeof(hdr));
        if (len > 0)
            memcpy(one + sizeof(hdr), buf, len);
        ok = write_tls(l->ssl, one, sizeof(hdr) + len);
        util_wipe(one, sizeof(hdr) + len);
    } else {
        ok = write_tls(l->ssl, hdr, sizeof(hdr)) && write_tls(l->ssl, buf, len);
    }
    l->deadline_ns = 0;
    return ok ? WIRE_IO_OK : WIRE_IO_ERROR;
}

wire_io_t wire_frame_writev(wire_link_t *l, const struct iovec *iov, size_t n)
{
    return wire_frame_writev_fd(l, iov, n, -1);
}

wire_io_t wire_frame_writev_fd(wire_link_t *l, const struct iovec *iov,
                               size_t n, int fd)
{
    uint8_t hdr[WIRE_FRAME_HEADER];
    struct iovec v[1 + WIRE_WRITEV_MAX];
    size_t len = 0, nv = 1;
    bool ok = true;

    if (l == NULL || (iov == NULL && n > 0) || n > WIRE_WRITEV_MAX ||
        (fd >= 0 && l->ssl != NULL) || l->timed_out)
        return WIRE_IO_ERROR;
    for (size_t i = 0; i < n; i++) {
        if (iov[i].iov_len > UINT32_MAX - len)
            return WIRE_IO_ERROR;
        len += iov[i].iov_len;
    }
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
    v[0].iov_base = hdr;
    v[0].iov_len = sizeof(hdr);
    write_begin(l);
    for (size_t i = 0; i < n; i++) {
        if (iov[i].iov_len > 0)
            v[nv++] = iov[i];
    }
    if (l->ssl == NULL) {
        ok = write_unix_fd(l, v, (int)nv, fd);
    } else {
        /* Small pieces gather into records of up to WIRE_COALESCE_MAX;
         * a large one goes out from where it lies. */
        uint8_t one[WIRE_FRAME_HEADER + WIRE_COALESCE_MAX];
        size_t used = 0;

        for (size_t i = 0; i < nv && ok; i++) {
            const uint8_t *p = v[i].iov_base;
            size_t k = v[i].iov_len;

            if (k <= sizeof(one) - used) {
                memcpy(one + used, p, k);
                used += k;
                continue;
            }
            if (used > 0)
                ok = write_tls(l->ssl, one, used);
            util_wipe(one, used);
            used = 0;
            if (!ok)
                break;
            if (k <= sizeof(one)) {
                memcpy(one, p, k);
                used = k;
            } else {
                ok = write_tls(l->ssl, p, k);
            }
        }
        if (ok && used > 0)
            ok = write_tls(l->ssl, one, used);
        util_wipe(one, used);
    }
    l->deadline_ns = 0;
    return ok ? WIRE_IO_OK : WIRE_IO_ERROR;
}
