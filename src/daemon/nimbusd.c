/*
 * nimbusd - the HSM as a service (ARCHITECTURE section 10).
 *
 * One thread per channel with blocking I/O. A channel carries one request
 * at a time and the core's calls block for long (PBKDF2 at 600,000
 * iterations, RSA-4096 generation, SQLite writes): an event loop would
 * still need a worker pool to run them, and a thread per channel gives the
 * same parallelism with no queue between socket and call and no state
 * machine for partial frames. The main thread only accepts and handles
 * signals (a signalfd, so no code runs in a signal handler). Threads get
 * small stacks: 256 idle clients cost 256 MiB of address space, not RAM.
 *
 * Lifetime: the listeners (and a unix socket's file) exist only once they
 * accept; SIGTERM closes them, lets every running call finish and send its
 * reply, ends each channel at its next read, and exits 0.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"
#include "daemon/dcluster.h"
#include "hsm/crypto/crypto.h" /* crypto_secret_lock: process-wide */
#include "hsm/hsm.h"
#include "wire/server.h"

#ifdef NIMBUS_TEST_FAKE_CLUSTER
const struct wire_cluster_ops *nimbus_test_fake_cluster(void);
#endif
#include "wire/transport.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

#define NIMBUSD_LISTENERS_MAX (CONFIG_ENDPOINTS_MAX + 8)
#define NIMBUSD_STACK (1024u * 1024u)
/* How long SIGTERM waits for calls and their replies before it cuts the
 * remaining channels off (a client that stopped reading its replies). */
#define NIMBUSD_DRAIN_S 30
#define NIMBUSD_PEER_GROUPS_MAX 256
/* How long a unix channel thread polls for its client's next request
 * before it sleeps (transport.h: bounded, adaptive, capped per process). */
#define NIMBUSD_SPIN_US 50

struct listener {
    int fd;
    bool tls;
    char path[CONFIG_UNIX_PATH_MAX + 1]; /* unix socket we made: unlink */
    dev_t dev;
    ino_t ino;
    char name[128]; /* for logs (and a unix peer's addr) */
};

struct chan {
    struct daemon *d;
    pthread_t th;
    const struct listener *ls;
    int fd;   /* the accepted socket, for shutdown() at SIGTERM */
    bool tls; /* accepted on a TLS listener */
    struct chan *prev, *next;
};

struct daemon {
    struct config cfg;
    hsm_t *hsm;
    dcluster_t *cluster; /* NULL: not in a cluster */
    wire_server_t *srv;
    wire_tls_t *tls;
    struct listener ls[NIMBUSD_LISTENERS_MAX];
    size_t nls;
    uid_t run_uid; /* the account the daemon ends up as */
    gid_t run_gid;
    bool drop; /* root dropping to cfg.run_as_user */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct chan *chans;   /* live: their sockets may be shut down */
    struct chan *zombies; /* threads that ended, to be joined */
    unsigned long nchans; /* live and ending: what max_connections counts */
    bool stopping;
};

/* SIGTERM or SIGINT waits in the signalfd (blocked, not yet read): a
 * node still waiting to join gives up. */
static bool term_pending(void)
{
    sigset_t p;

    return sigpending(&p) == 0 &&
           (sigismember(&p, SIGTERM) == 1 || sigismember(&p, SIGINT) == 1);
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: nimbusd -c FILE [--foreground]\n"
                "  -c, --config FILE  nimbus.conf to read\n"
                "  -f, --foreground   stay attached; log to stderr unless "
                "log_file is set\n"
                "  -h, --help         this text\n");
}

/* Messages before the log is set up, and fatal ones. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    char buf[512];

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fprintf(stderr, "nimbusd: %s\n", buf);
    log_error("%s", buf);
}

static void notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

/* ----------------------------------------------------------- peer check */

static bool id_in(unsigned long id, const unsigned long *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id)
            return true;
    }
    return false;
}

/*
 * A unix peer is allowed when its uid is in allowed_uids, or its primary
 * or any supplementary group (SO_PEERGROUPS: the groups the peer process
 * had when it connected) is in allowed_groups. Both lists empty: only our
 * own uid and root.
 */
static bool peer_allowed(const struct daemon *d, int fd,
                         const wire_peer_t *peer)
{
    const struct config *c = &d->cfg;
    gid_t groups[NIMBUSD_PEER_GROUPS_MAX];
    socklen_t gl = sizeof(groups);

    if (peer->uid < 0)
        return false;
    if (c->nallowed_uids == 0 && c->nallowed_groups == 0)
        return (uid_t)peer->uid == geteuid() || peer->uid == 0;
    if (id_in((unsigned long)peer->uid, c->allowed_uids, c->nallowed_uids))
        return true;
    if (c->nallowed_groups == 0)
        return false;
    if (id_in((unsigned long)peer->gid, c->allowed_groups, c->nallowed_groups))
        return true;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &gl) != 0)
        return false; /* too many groups, or an old kernel: not proven */
    for (size_t i = 0; i < gl / sizeof(gid_t); i++) {
        if (id_in(groups[i], c->allowed_groups, c->nallowed_groups))
            return true;
    }
    return false;
}

/* -------------------------------------------------------------- channels */

/* Out of the live list: from then on SIGTERM no longer touches the
 * descriptor, which the thread is about to close. */
static void chan_unlink(struct chan *ch)
{
    struct daemon *d = ch->d;

    pthread_mutex_lock(&d->mu);
    if (ch->prev != NULL)
        ch->prev->next = ch->next;
    else
        d->chans = ch->next;
    if (ch->next != NULL)
        ch->next->prev = ch->prev;
    ch->prev = ch->next = NULL;
    pthread_mutex_unlock(&d->mu);
}

/* The thread's last act: the main thread joins it (so nothing of it runs
 * when the daemon frees the server, the token and OpenSSL at exit). */
static void chan_done(struct chan *ch)
{
    struct daemon *d = ch->d;

    pthread_mutex_lock(&d->mu);
    ch->next = d->zombies;
    d->zombies = ch;
    d->nchans--;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void reap(struct daemon *d)
{
    struct chan *z;

    pthread_mutex_lock(&d->mu);
    z = d->zombies;
    d->zombies = NULL;
    pthread_mutex_unlock(&d->mu);
    while (z != NULL) {
        struct chan *next = z->next;
        pthread_join(z->th, NULL);
        free(z);
        z = next;
    }
}

static void serve(struct daemon *d, wire_link_t *l, const wire_peer_t *peer,
                  const char *who)
{
    wire_chan_t *wc = wire_chan_new(d->srv, peer);
    /* Both frames of a call live in buffers kept for the connection: a
     * bulk call maps and faults in no fresh pages (each locked under
     * mlockall) every time. Both are wiped after each call. The reply
     * goes out in pieces from where its bytes lie (the output of a bulk
     * step is not copied into a frame first). */
    wire_vec_t out;
    uint8_t *req;
    size_t len;
    unsigned io_ms = (unsigned)(d->cfg.io_timeout * 1000u);

    if (wc == NULL) {
        log_warn("refused %s: no room for another connection", who);
        return;
    }
    memset(&out, 0, sizeof(out));
    log_info("connected: %s", who);
    /* No slowloris: the handshake comes within io_timeout of the accept,
     * a frame that has begun ends within it, a reply is taken within it.
     * Between frames a channel may idle as long as it likes. */
    wire_link_set_io_timeout(l, io_ms);
    wire_link_expect_within(l, io_ms);
    for (bool first = true;; first = false) {
        wire_io_t r = wire_frame_read_kept(l, d->cfg.max_frame, &req, &len);
        bool ok, have = false;
        int pass;

        if (r == WIRE_IO_TOO_BIG) {
            log_warn("%s: frame over max_frame (%lu bytes): closing", who,
                     d->cfg.max_frame);
            break;
        }
        if (r == WIRE_IO_ERROR && wire_link_timed_out(l))
            log_warn("%s: %s within io_timeout (%lu s): closing", who,
                     first ? "no handshake" : "frame not complete",
                     d->cfg.io_timeout);
        else if (r == WIRE_IO_ERROR)
            log_info("%s: read error or truncated frame: closing", who);
        if (r != WIRE_IO_OK)
            break;
        ok = wire_chan_handle_vec(wc, req, len, &out, &have);
        pass = wire_chan_take_fd(wc); /* the shared bulk region's */
        if (have)
            r = wire_frame_writev_fd(l, out.iov, out.n, pass);
        if (pass >= 0)
            close(pass);
        /* The reply's pieces and the request's lifted input point into
         * these. Frames carry PINs and key bytes. */
        wire_chan_reply_done(wc, &out);
        wire_frame_done(l, len);
        if (have && r != WIRE_IO_OK) {
            if (wire_link_timed_out(l))
                log_warn("%s: reply not taken within io_timeout (%lu s): "
                         "closing",
                         who, d->cfg.io_timeout);
            break;
        }
        if (!ok) {
            log_info("%s: protocol error: closing", who);
            break;
        }
    }
    wire_chan_reply_done(wc, &out);
    wire_vec_done(&out, true);
    wire_chan_free(wc);
    log_info("disconnected: %s", who);
}

/* "1.2.3.4:5678" or "[::1]:5678" of an inet peer; "" if unknown. */
static void inet_peer(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN];

    out[0] = '\0';
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET &&
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host,
                  sizeof(host)) != NULL)
        snprintf(out, outlen, "%s:%u", host,
                 ntohs(((struct sockaddr_in *)&ss)->sin_port));
    else if (ss.ss_family == AF_INET6 &&
             inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host,
                       sizeof(host)) != NULL)
        snprintf(out, outlen, "[%s]:%u", host,
                 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
}

static void *chan_main(void *arg)
{
    struct chan *ch = arg;
    struct daemon *d = ch->d;
    wire_link_t *l = NULL;
    wire_peer_t peer;
    char err[256], who[sizeof(peer.addr) + sizeof(peer.cert_subject) + 100];

    char from[INET6_ADDRSTRLEN + 16] = "";

    /* Where a TLS peer comes from, for the log if its handshake fails
     * (wire_link_accept closes the socket then). */
    if (ch->tls)
        inet_peer(ch->fd, from, sizeof(from));
    if (!wire_link_accept(ch->fd, ch->tls ? d->tls : NULL, &l, &peer, err,
                          sizeof(err))) {
        log_warn("refused a %s peer%s%s: %s", ch->tls ? "TLS" : "unix",
                 from[0] != '\0' ? " from " : "", from, err);
        /* wire_link_accept closed the socket. */
        chan_unlink(ch);
        chan_done(ch);
        return NULL;
    }
    /* An accepted unix socket knows only the name it was bound to (our
     * temporary one): name the listener instead. */
    if (!peer.tls)
        snprintf(peer.addr, sizeof(peer.addr), "%s", ch->ls->name);
    if (peer.tls)
        snprintf(who, sizeof(who), "%s cert \"%s\" sha256=%s", peer.addr,
                 peer.cert_subject, peer.cert_sha256);
    else
        snprintf(who, sizeof(who), "%s uid=%ld gid=%ld pid=%ld", peer.addr,
                 peer.uid, peer.gid, peer.pid);
    /* A local client's next request often follows its reply within
     * microseconds (C_Sign after C_SignInit): poll a little for it
     * before sleeping, and read small requests in one recv. */
    wire_link_set_spin(l, NIMBUSD_SPIN_US);
    if (!peer.tls)
        (void)wire_link_set_readahead(l);
    if (!peer.tls && !peer_allowed(d, ch->fd, &peer))
        log_warn("refused %s: not in allowed_uids or allowed_groups", who);
    else
        serve(d, l, &peer, who);
    chan_unlink(ch);
    wire_link_close(l);
    chan_done(ch);
    return NULL;
}

static void accept_one(struct daemon *d, struct listener *ls)
{
    pthread_attr_t attr;
    struct chan *ch;
    int fd = accept4(ls->fd, NULL, NULL, SOCK_CLOEXEC), e = errno;

    /* Threads that ended since the last accept are joined here. */
    reap(d);
    if (fd < 0) {
        if (e != EAGAIN && e != EINTR && e != ECONNABORTED)
            log_error("accept on %s: %s", ls->name, strerror(e));
        if (e == EMFILE || e == ENFILE) {
            /* Do not spin on a listener we cannot serve. */
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        return;
    }
    pthread_mutex_lock(&d->mu);
    if (d->nchans >= d->cfg.max_connections) {
        pthread_mutex_unlock(&d->mu);
        log_warn("refused a peer on %s: max_connections (%lu) reached",
                 ls->name, d->cfg.max_connections);
        close(fd);
        return;
    }
    ch = calloc(1, sizeof(*ch));
    if (ch == NULL) {
        pthread_mutex_unlock(&d->mu);
        close(fd);
        return;
    }
    ch->d = d;
    ch->fd = fd;
    ch->tls = ls->tls;
    ch->ls = ls;
    ch->next = d->chans;
    if (d->chans != NULL)
        d->chans->prev = ch;
    d->chans = ch;
    d->nchans++;
    pthread_mutex_unlock(&d->mu);

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, NIMBUSD_STACK);
    /* ch->th is written before the thread can end and be joined: the
     * thread reaches the zombie list only through d->mu, which is held. */
    pthread_mutex_lock(&d->mu);
    if (pthread_create(&ch->th, &attr, chan_main, ch) != 0) {
        pthread_mutex_unlock(&d->mu);
        log_error("cannot start a thread for a peer on %s", ls->name);
        chan_unlink(ch);
        pthread_mutex_lock(&d->mu);
        d->nchans--;
        pthread_mutex_unlock(&d->mu);
        close(fd);
        free(ch);
    } else {
        pthread_mutex_unlock(&d->mu);
    }
    pthread_attr_destroy(&attr);
}

/* ------------------------------------------------------------- listeners */

/*
 * The socket's directory: made 0750 when missing; an existing one must be
 * a directory owned by the account nimbusd runs as (or root) that no one
 * else may write, since whoever writes it can replace the socket.
 */
static bool socket_dir(const struct daemon *d, const char *path)
{
    char buf[CONFIG_UNIX_PATH_MAX + 1], *dir;
    struct stat st;

    memcpy(buf, path, strlen(path) + 1);
    dir = dirname(buf);
    if (mkdir(dir, 0750) == 0) {
        if (chmod(dir, 0750) != 0 ||
            (d->drop && chown(dir, d->run_uid, d->run_gid) != 0)) {
            say("%s: %s", dir, strerror(errno));
            return false;
        }
        return true;
    }
    if (errno != EEXIST) {
        say("cannot make %s: %s", dir, strerror(errno));
        return false;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        say("%s is not a directory", dir);
        return false;
    }
    if (st.st_uid != d->run_uid && st.st_uid != 0) {
        say("%s belongs to uid %lu, not to nimbusd's account", dir,
            (unsigned long)st.st_uid);
        return false;
    }
    if ((st.st_mode & 0022) != 0) {
        say("%s is writable by group or others: the socket could be "
            "replaced (make it 0750)",
            dir);
        return false;
    }
    if ((st.st_mode & 0007) != 0)
        log_warn("%s is reachable by others (mode %o); 0750 is advised", dir,
                 (unsigned)(st.st_mode & 0777));
    return true;
}

/* Another process answering on path (a second nimbusd)? */
static bool someone_listens(const char *path)
{
    struct sockaddr_un sa;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool yes;

    if (s < 0)
        return false;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    yes = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(s);
    return yes;
}

/*
 * Binds a temporary name beside path, listens, then renames it into
 * place: the socket appears only once it accepts, atomically replacing a
 * stale one.
 */
static bool listen_unix(struct daemon *d, const struct config_endpoint *ep,
                        struct listener *ls)
{
    struct sockaddr_un sa;
    char tmp[sizeof(sa.sun_path)], dirbuf[sizeof(sa.sun_path)];
    struct stat st;
    mode_t old;
    int s, n;

    if (!socket_dir(d, ep->path))
        return false;
    if (someone_listens(ep->path)) {
        say("%s: another process listens there", ep->path);
        return false;
    }
    memcpy(dirbuf, ep->path, strlen(ep->path) + 1);
    n = snprintf(tmp, sizeof(tmp), "%s/.nimbusd-%ld.tmp", dirname(dirbuf),
                 (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        say("%s: no room for a temporary name beside it (107 bytes)", ep->path);
        return false;
    }
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        say("socket: %s", strerror(errno));
        return false;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
    unlink(tmp);
    old = umask(0117); /* 0660 from the first instant */
    n = bind(s, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (n != 0 || chmod(tmp, 0660) != 0 ||
        (d->drop && chown(tmp, d->run_uid, d->run_gid) != 0) ||
        listen(s, SOMAXCONN) != 0) {
        say("%s: %s", tmp, strerror(errno));
        unlink(tmp);
        close(s);
        return false;
    }
    if (rename(tmp, ep->path) != 0 || stat(ep->path, &st) != 0) {
        say("rename %s to %s: %s", tmp, ep->path, strerror(errno));
        unlink(tmp);
        close(s);
        return false;
    }
    ls->fd = s;
    ls->tls = false;
    memcpy(ls->path, ep->path, strlen(ep->path) + 1);
    ls->dev = st.st_dev;
    ls->ino = st.st_ino;
    snprintf(ls->name, sizeof(ls->name), "unix:%s", ep->path);
    return true;
}

static bool listen_tls(struct daemon *d, const struct config_endpoint *ep,
                       struct listener *ls)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    int s, one = 1, r;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", ep->port);
    r = getaddrinfo(ep->host, port, &hints, &res);
    if (r != 0) {
        say("tls:%s:%u: %s", ep->host, ep->port, gai_strerror(r));
        return false;
    }
    s = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC,
               res->ai_protocol);
    if (s < 0 ||
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (res->ai_family == AF_INET6 &&
         setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(s, res->ai_addr, res->ai_addrlen) != 0 ||
        listen(s, SOMAXCONN) != 0) {
        say("tls:%s:%u: %s", ep->host, ep->port, strerror(errno));
        if (s >= 0)
            close(s);
        freeaddrinfo(res);
        return false;
    }
    freeaddrinfo(res);
    ls->fd = s;
    ls->tls = true;
    config_format_endpoint(ep, ls->name, sizeof(ls->name));
    return true;
}

/* The port of an inet socket, 0 if it is none. */
static unsigned sock_port(int fd, int *family)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    *family = AF_UNSPEC;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return 0;
    *family = ss.ss_family;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

static bool unix_path_of(int fd, char *out, size_t outlen)
{
    struct sockaddr_un sa;
    socklen_t sl = sizeof(sa);
    size_t n;

    if (getsockname(fd, (struct sockaddr *)&sa, &sl) != 0 ||
        sa.sun_family != AF_UNIX ||
        sl <= offsetof(struct sockaddr_un, sun_path))
        return false;
    n = strnlen(sa.sun_path, sl - offsetof(struct sockaddr_un, sun_path));
    if (n == 0 || n >= outlen)
        return false;
    memcpy(out, sa.sun_path, n);
    out[n] = '\0';
    return true;
}

/*
 * Sockets from systemd (socket activation) first: an AF_UNIX one serves
 * plain unix peers, an inet one TLS peers. A listen line that one of them
 * already covers (same path, same port) is not bound again.
 */
static bool open_listeners(struct daemon *d)
{
    bool covered[CONFIG_ENDPOINTS_MAX] = {false};
    int n = 0;

#ifdef HAVE_LIBSYSTEMD
    n = sd_listen_fds(1);
    if (n < 0) {
        say("sd_listen_fds: %s", strerror(-n));
        return false;
    }
#endif
    for (int i = 0; i < n; i++) {
        int fd = 3 + i, fam; /* SD_LISTEN_FDS_START */
        struct listener *ls;
        unsigned port = sock_port(fd, &fam);
        char path[CONFIG_UNIX_PATH_MAX + 1];

        if (d->nls >= NIMBUSD_LISTENERS_MAX) {
            say("too many sockets from systemd");
            return false;
        }
        ls = &d->ls[d->nls];
        ls->fd = fd;
        fcntl(fd, F_SETFD, FD_CLOEXEC);
#ifdef HAVE_LIBSYSTEMD
        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
            say("socket %d from systemd is not a listening stream socket", fd);
            return false;
        }
#endif
        if (fam == AF_UNIX) {
            struct stat st;
            ls->tls = false;
            if (!unix_path_of(fd, path, sizeof(path)))
                snprintf(path, sizeof(path), "?");
            snprintf(ls->name, sizeof(ls->name), "unix:%s (systemd)", path);
            /* Its mode is the socket unit's (SocketMode=0660). */
            if (stat(path, &st) == 0 && (st.st_mode & 0007) != 0)
                log_warn("%s is open to others (mode %o): SocketMode=0660 "
                         "is advised",
                         path, (unsigned)(st.st_mode & 0777));
            for (size_t j = 0; j < d->cfg.nlisten; j++) {
                if (d->cfg.listen[j].kind == CONFIG_EP_UNIX &&
                    strcmp(d->cfg.listen[j].path, path) == 0)
                    covered[j] = true;
            }
        } else if (fam == AF_INET || fam == AF_INET6) {
            ls->tls = true;
            snprintf(ls->name, sizeof(ls->name), "tls port %u (systemd)", port);
            for (size_t j = 0; j < d->cfg.nlisten; j++) {
                if (d->cfg.listen[j].kind == CONFIG_EP_TLS &&
                    d->cfg.listen[j].port == port)
                    covered[j] = true;
            }
        } else {
            say("socket %d from systemd is neither unix nor inet", fd);
            return false;
        }
        d->nls++;
    }
    for (size_t j = 0; j < d->cfg.nlisten; j++) {
        const struct config_endpoint *ep = &d->cfg.listen[j];
        if (covered[j])
            continue;
        if (d->nls >= NIMBUSD_LISTENERS_MAX) {
            say("too many listeners");
            return false;
        }
        if (ep->kind == CONFIG_EP_UNIX ? !listen_unix(d, ep, &d->ls[d->nls])
                                       : !listen_tls(d, ep, &d->ls[d->nls]))
            return false;
        d->nls++;
    }
    if (d->nls == 0) {
        say("nothing to listen on: no listen line and no socket from "
            "systemd");
        return false;
    }
    return true;
}

static bool need_tls(const struct daemon *d)
{
    for (size_t i = 0; i < d->nls; i++) {
        if (d->ls[i].tls)
            return true;
    }
    return false;
}

/* Closes every listener; removes the unix sockets we made (if they are
 * still ours: another nimbusd may have replaced one). */
static void close_listeners(struct daemon *d)
{
    for (size_t i = 0; i < d->nls; i++) {
        struct listener *ls = &d->ls[i];
        struct stat st;

        if (ls->fd < 0)
            continue;
        if (ls->path[0] != '\0' && stat(ls->path, &st) == 0 &&
            st.st_dev == ls->dev && st.st_ino == ls->ino)
            unlink(ls->path);
        close(ls->fd);
        ls->fd = -1;
    }
}

/* -------------------------------------------------------------- hardening */

static bool harden_early(void)
{
    struct rlimit no = {0, 0};

    /* No core file, no ptrace by the same uid, no /proc/PID/mem: the
     * master key and the unsealed keys live in this address space. */
    if (setrlimit(RLIMIT_CORE, &no) != 0 ||
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        say("cannot turn core dumps off: %s", strerror(errno));
        return false;
    }
    return true;
}

/*
 * Keeps secrets out of swap. The secret mappings (master key, unsealed
 * keys) are locked in any case: they are small, within the default
 * RLIMIT_MEMLOCK. All memory is locked too where RLIMIT_MEMLOCK has no
 * bound (root raises it; under systemd, LimitMEMLOCK=infinity): with a
 * finite one, mlockall would make allocations fail once it is reached.
 * MCL_ONFAULT locks pages as they are touched, so idle thread stacks cost
 * nothing.
 */
static void lock_memory(void)
{
    struct rlimit rl;

    if (!crypto_secret_lock())
        log_warn("secret memory could not be locked");
    if (geteuid() == 0) {
        rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
        setrlimit(RLIMIT_MEMLOCK, &rl);
    }
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur != RLIM_INFINITY) {
        log_info("RLIMIT_MEMLOCK is limited: only the secret memory is "
                 "locked");
        return;
    }
    if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0)
        log_warn("mlockall: %s: only the secret memory is locked",
                 strerror(errno));
    else
        log_info("all memory locked");
}

static bool resolve_user(struct daemon *d)
{
    struct passwd *pw;

    d->run_uid = geteuid();
    d->run_gid = getegid();
    if (d->cfg.run_as_user[0] == '\0') {
        if (geteuid() == 0)
            log_warn("running as root: set `user` to drop privileges");
        return true;
    }
    pw = getpwnam(d->cfg.run_as_user);
    if (pw == NULL) {
        say("user %s: no such account", d->cfg.run_as_user);
        return false;
    }
    if (pw->pw_uid == geteuid())
        return true;
    if (geteuid() != 0) {
        say("user = %s: only root can switch to it", d->cfg.run_as_user);
        return false;
    }
    if (pw->pw_uid == 0)
        return true;
    d->run_uid = pw->pw_uid;
    d->run_gid = pw->pw_gid;
    d->drop = true;
    return true;
}

static bool drop_privileges(const struct daemon *d)
{
    if (!d->drop)
        return true;
    if (initgroups(d->cfg.run_as_user, d->run_gid) != 0 ||
        setgid(d->run_gid) != 0 || setuid(d->run_uid) != 0) {
        say("cannot become %s: %s", d->cfg.run_as_user, strerror(errno));
        return false;
    }
    if (setuid(0) == 0 || geteuid() == 0) {
        say("root could be regained after dropping to %s", d->cfg.run_as_user);
        return false;
    }
    /* setuid resets the dumpable flag to the system's default. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    log_info("running as %s (uid %lu)", d->cfg.run_as_user,
             (unsigned long)d->run_uid);
    return true;
}

/* Forks into the background; the parent exits 0 once the child says it is
 * ready (a byte on the pipe), 1 if the child dies first. */
static int daemonize(void)
{
    int p[2];
    pid_t pid;
    char c;

    if (pipe2(p, O_CLOEXEC) != 0) {
        say("pipe: %s", strerror(errno));
        exit(1);
    }
    pid = fork();
    if (pid < 0) {
        say("fork: %s", strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        ssize_t n;
        close(p[1]);
        do {
            n = read(p[0], &c, 1);
        } while (n < 0 && errno == EINTR);
        _exit(n == 1 && c == 'R' ? 0 : 1);
    }
    close(p[0]);
    setsid();
    pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    if (chdir("/") != 0)
        _exit(1);
    return p[1];
}

static void detach_stdio(void)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

    if (fd < 0)
        return;
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
        close(fd);
}

/* ------------------------------------------------------------- shutdown */

/*
 * Ends the channels: each socket's reading half is shut, so a channel
 * waiting for its next request reads EOF (after whatever requests are
 * already queued), while one inside a call finishes it and writes the
 * reply. After NIMBUSD_DRAIN_S the writing half goes too.
 */
static void drain(struct daemon *d)
{
    struct timespec until;
    struct chan *ch;
    bool cut = false;

    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    for (ch = d->chans; ch != NULL; ch = ch->next)
        shutdown(ch->fd, SHUT_RD);
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += NIMBUSD_DRAIN_S;
    while (d->nchans > 0) {
        if (!cut &&
            pthread_cond_timedwait(&d->cv, &d->mu, &until) == ETIMEDOUT) {
            log_warn("%lu channel(s) still busy after %d s: cutting them "
                     "off",
                     d->nchans, NIMBUSD_DRAIN_S);
            for (ch = d->chans; ch != NULL; ch = ch->next)
                shutdown(ch->fd, SHUT_RDWR);
            cut = true;
        } else if (cut) {
            pthread_cond_wait(&d->cv, &d->mu);
        }
    }
    pthread_mutex_unlock(&d->mu);
    reap(d);
}

/* -------------------------------------------------------------- main */

static int run(struct daemon *d, int sfd, int ready_fd)
{
    struct pollfd pfd[NIMBUSD_LISTENERS_MAX + 1];
    char names[512] = "";
    size_t off = 0;

    for (size_t i = 0; i < d->nls; i++) {
        pfd[i].fd = d->ls[i].fd;
        pfd[i].events = POLLIN;
        off += (size_t)snprintf(names + off,
                                off < sizeof(names) ? sizeof(names) - off : 0,
                                "%s%s", i > 0 ? ", " : "", d->ls[i].name);
        if (off >= sizeof(names))
            off = sizeof(names) - 1;
    }
    pfd[d->nls].fd = sfd;
    pfd[d->nls].events = POLLIN;
    log_info("ready: listening on %s", names);
    notify("READY=1\nSTATUS=serving");
    if (ready_fd >= 0) {
        while (write(ready_fd, "R", 1) < 0 && errno == EINTR)
            ;
        close(ready_fd);
        detach_stdio();
    }
    for (;;) {
        int r = poll(pfd, d->nls + 1, -1);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            log_error("poll: %s", strerror(errno));
            return 1;
        }
        if (pfd[d->nls].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                    util_log_setup((enum log_level)d->cfg.log_level,
                                   d->cfg.log_file);
                    log_info("SIGHUP: log reopened");
                    continue;
                }
                log_info("signal %u: stopping", si.ssi_signo);
                notify("STOPPING=1");
                close_listeners(d);
                drain(d);
                log_info("stopped");
                return 0;
            }
        }
        for (size_t i = 0; i < d->nls; i++) {
            if (pfd[i].revents & POLLIN)
                accept_one(d, &d->ls[i]);
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"foreground", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct daemon d;
    const char *conf = NULL;
    bool foreground = false;
    char err[512];
    sigset_t set;
    int c, sfd, ready_fd = -1, rc;
    CK_RV rv;

    while ((c = getopt_long(argc, argv, "c:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            conf = optarg;
            break;
        case 'f':
            foreground = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (conf == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!harden_early())
        return 1;
    config_defaults(&d.cfg);
    /* A daemon's refusals are worth seeing by default (the module stays
     * quiet in its applications); log_level in the file still rules. */
    d.cfg.log_level = LOG_LEVEL_WARN;
    if (!config_load_file(&d.cfg, conf, err, sizeof(err))) {
        say("%s", err);
        return 1;
    }
    /* Nothing we create (log, socket directory, store) is for others. */
    umask(0027);
    util_log_setup((enum log_level)d.cfg.log_level, d.cfg.log_file);
    pthread_mutex_init(&d.mu, NULL);
    {
        /* drain()'s wait runs on the monotonic clock: setting the wall
         * clock must not stretch or cut SIGTERM's grace period. */
        pthread_condattr_t ca;

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&d.cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    for (size_t i = 0; i < NIMBUSD_LISTENERS_MAX; i++)
        d.ls[i].fd = -1;
    /* A peer that went away must not kill us in the middle of a write. */
    signal(SIGPIPE, SIG_IGN);
    if (!resolve_user(&d))
        return 1;
    /* The log is opened as root; `user` reopens it at SIGHUP. */
    if (d.drop && d.cfg.log_file[0] == '/' &&
        chown(d.cfg.log_file, d.run_uid, d.run_gid) != 0)
        log_warn("%s: cannot give it to %s: SIGHUP will not reopen it",
                 d.cfg.log_file, d.cfg.run_as_user);
    if (!foreground)
        ready_fd = daemonize();

    /* Signals arrive through sfd only; every thread inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        say("signalfd: %s", strerror(errno));
        return 1;
    }

    /* As root still: the listeners and the TLS key may need it. */
    if (!open_listeners(&d))
        goto fail;
    if (need_tls(&d) &&
        !wire_tls_server_new(&d.cfg, &d.tls, err, sizeof(err))) {
        say("%s", err);
        goto fail;
    }
    lock_memory();
    if (!drop_privileges(&d))
        goto fail;

    rv = hsm_open(&d.cfg, &d.hsm);
    if (rv != CKR_OK) {
        say("cannot open the store %s (CK_RV 0x%lx)", d.cfg.store,
            (unsigned long)rv);
        goto fail;
    }
    if (d.cfg.cluster_node_id != 0 &&
        !dcluster_start(&d.cfg, d.hsm, term_pending, &d.cluster, err,
                        sizeof(err))) {
        say("cluster: %s", err);
        goto fail;
    }
    rv = wire_server_new(d.hsm, &d.cfg, &d.srv);
    if (rv != CKR_OK) {
        say("wire_server_new: CK_RV 0x%lx", (unsigned long)rv);
        goto fail;
    }
    if (d.cluster != NULL)
        wire_server_set_cluster(d.srv, dcluster_ops(d.cluster));
#ifdef NIMBUS_TEST_FAKE_CLUSTER
    /* tests/remote/nimbusd_fakecluster only: a cluster in memory */
    wire_server_set_cluster(d.srv, nimbus_test_fake_cluster());
#endif
    rc = run(&d, sfd, ready_fd);
    close_listeners(&d);
    wire_server_free(d.srv);
    dcluster_stop(d.cluster);
    hsm_close(d.hsm);
    wire_tls_free(d.tls);
    close(sfd);
    util_log_close();
    return rc;
fail:
    close_listeners(&d);
    if (d.srv != NULL)
        wire_server_free(d.srv);
    dcluster_stop(d.cluster);
    if (d.hsm != NULL)
        hsm_close(d.hsm);
    wire_tls_free(d.tls);
    return 1;
}
