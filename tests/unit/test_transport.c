/*
 * test_transport.c - src/wire/transport.c: frames over unix sockets, the
 * peer's credentials, close-on-exec, and mutual TLS 1.3 with certificates
 * made here (a CA, another CA, server and client certificates).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/conf.h"
#include "wire/transport.h"

static char tmpdir[64];

/* ------------------------------------------------------------ helpers */

static void path_in(char *out, size_t outlen, const char *name)
{
    snprintf(out, outlen, "%s/%s", tmpdir, name);
}

static EVP_PKEY *write_key(const char *name)
{
    char path[128];
    EVP_PKEY *k = EVP_EC_gen("P-256");
    FILE *fp;

    assert_non_null(k);
    path_in(path, sizeof(path), name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(fp);
    return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for key named cn, signed by (ca, cakey) or self-signed;
 * san: a subjectAltName value or NULL. */
static X509 *write_cert(const char *name, const char *cn, EVP_PKEY *key,
                        X509 *ca, EVP_PKEY *cakey, const char *san)
{
    static long serial = 1;
    char path[128];
    X509 *x = X509_new();
    X509_NAME *nm;
    FILE *fp;

    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, ca != NULL ? X509_get_subject_name(ca) : nm);
    if (ca == NULL) {
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, ca, NID_basic_constraints, "CA:FALSE");
    }
    if (san != NULL)
        add_ext(x, ca != NULL ? ca : x, NID_subject_alt_name, san);
    assert_true(X509_sign(x, cakey != NULL ? cakey : key, EVP_sha256()) > 0);
    path_in(path, sizeof(path), name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_X509(fp, x), 1);
    fclose(fp);
    return x;
}

/* ca.pem / other-ca.pem; server (IP 127.0.0.1) and client under ca;
 * rogue (client) and rogue-server (IP 127.0.0.1) under other-ca. */
static void make_pki(void)
{
    EVP_PKEY *cak = write_key("ca.key"), *ock = write_key("other-ca.key");
    X509 *ca = write_cert("ca.pem", "Nimbus Test CA", cak, NULL, NULL, NULL);
    X509 *oca = write_cert("other-ca.pem", "Other CA", ock, NULL, NULL, NULL);
    EVP_PKEY *k;

    k = write_key("server.key");
    X509_free(write_cert("server.pem", "nimbusd", k, ca, cak, "IP:127.0.0.1"));
    EVP_PKEY_free(k);
    k = write_key("client.key");
    X509_free(write_cert("client.pem", "app-1", k, ca, cak, NULL));
    EVP_PKEY_free(k);
    k = write_key("rogue.key");
    X509_free(write_cert("rogue.pem", "rogue", k, oca, ock, NULL));
    EVP_PKEY_free(k);
    k = write_key("rogue-server.key");
    X509_free(
        write_cert("rogue-server.pem", "nimbusd", k, oca, ock, "IP:127.0.0.1"));
    EVP_PKEY_free(k);
    X509_free(ca);
    X509_free(oca);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(ock);
}

static void tls_conf(struct config *cfg, const char *cert, const char *key,
                     const char *ca)
{
    config_defaults(cfg);
    path_in(cfg->tls_cert, sizeof(cfg->tls_cert), cert);
    path_in(cfg->tls_key, sizeof(cfg->tls_key), key);
    path_in(cfg->tls_ca, sizeof(cfg->tls_ca), ca);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/nimbus-transport-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    make_pki();
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A listening unix socket in tmpdir; ep names it. */
static int unix_listener(struct config_endpoint *ep)
{
    struct sockaddr_un sa;
    int s = socket(AF_UNIX, SOCK_STREAM, 0);

    assert_true(s >= 0);
    memset(ep, 0, sizeof(*ep));
    ep->kind = CONFIG_EP_UNIX;
    path_in(ep->path, sizeof(ep->path), "sock");
    unlink(ep->path);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, ep->path, strlen(ep->path) + 1);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s, 8), 0);
    return s;
}

/* A connected pair of unix links (client side, server side). */
static void unix_pair(wire_link_t **cl, wire_link_t **sv, wire_peer_t *peer)
{
    struct config_endpoint ep;
    char err[256];
    int ls = unix_listener(&ep), fd;

    assert_true(wire_link_connect(&ep, NULL, cl, err, sizeof(err)));
    fd = accept(ls, NULL, NULL);
    assert_true(fd >= 0);
    assert_true(wire_link_accept(fd, NULL, sv, peer, err, sizeof(err)));
    close(ls);
}

static bool cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);

    return fl >= 0 && (fl & FD_CLOEXEC) != 0;
}

/* ------------------------------------------------------- unix frames */

static void test_unix_frames(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    uint8_t *buf, big[100000];
    size_t len;

    (void)state;
    unix_pair(&cl, &sv, &peer);
    assert_false(peer.tls);
    assert_int_equal(peer.uid, (long)getuid());
    assert_int_equal(peer.gid, (long)getgid());
    assert_int_equal(peer.pid, (long)getpid());
    assert_string_equal(peer.cert_subject, "");
    assert_non_null(strstr(peer.addr, "unix:"));
    assert_true(cloexec(wire_link_fd(cl)));
    assert_true(cloexec(wire_link_fd(sv)));

    assert_int_equal(wire_frame_write(cl, (const uint8_t *)"hello", 5),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    free(buf);
    /* An empty frame is a frame. */
    assert_int_equal(wire_frame_write(cl, NULL, 0), WIRE_IO_OK);
    assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, 0);
    assert_non_null(buf);
    free(buf);
    /* Bigger than one socket buffer: written and read completely (the
     * reader runs after the writer, so the kernel must hold it all: send
     * from a thread would be needed past its buffer; 100 kB fits). */
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    assert_int_equal(wire_frame_write(sv, big, sizeof(big)), WIRE_IO_OK);
    assert_int_equal(wire_frame_read(cl, sizeof(big), &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, sizeof(big));
    assert_memory_equal(buf, big, sizeof(big));
    free(buf);
    /* A clean close between frames is EOF, not an error. */
    wire_link_close(cl);
    assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_EOF);
    assert_null(buf);
    wire_link_close(sv);
}

/* A frame in pieces arrives as the one payload they make, header first;
 * more pieces than allowed write nothing. */
static void test_unix_writev(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    uint8_t *buf, *big, small[3] = {1, 2, 3};
    size_t len, n = 70000;
    struct iovec iov[WIRE_WRITEV_MAX + 1];

    (void)state;
    unix_pair(&cl, &sv, &peer);
    big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 11);
    iov[0].iov_base = small;
    iov[0].iov_len = sizeof(small);
    iov[1].iov_base = big;
    iov[1].iov_len = n;
    iov[2].iov_base = NULL; /* an empty piece is skipped */
    iov[2].iov_len = 0;
    iov[3].iov_base = small;
    iov[3].iov_len = 1;
    assert_int_equal(wire_frame_writev(cl, iov, 4), WIRE_IO_OK);
    assert_int_equal(wire_frame_read(sv, n + 4, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, n + 4);
    assert_memory_equal(buf, small, 3);
    assert_memory_equal(buf + 3, big, n);
    assert_int_equal(buf[n + 3], 1);
    free(buf);
    /* no pieces: an empty frame */
    assert_int_equal(wire_frame_writev(cl, NULL, 0), WIRE_IO_OK);
    assert_int_equal(wire_frame_read(sv, 16, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, 0);
    free(buf);
    for (size_t i = 0; i <= WIRE_WRITEV_MAX; i++) {
        iov[i].iov_base = small;
        iov[i].iov_len = 1;
    }
    assert_int_equal(wire_frame_writev(cl, iov, WIRE_WRITEV_MAX + 1),
                     WIRE_IO_ERROR);
    assert_int_equal(wire_frame_writev(cl, NULL, 1), WIRE_IO_ERROR);
    /* nothing of the refused ones went out: the next frame is next */
    assert_int_equal(wire_frame_writev(cl, iov, WIRE_WRITEV_MAX), WIRE_IO_OK);
    assert_int_equal(wire_frame_read(sv, 64, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, WIRE_WRITEV_MAX);
    free(buf);
    free(big);
    wire_link_close(cl);
    wire_link_close(sv);
}

/* A descriptor passed with a frame arrives with it, close-on-exec, on a
 * read that takes one; a read that does not take one drops it (nothing
 * installed); TLS passes none. */
static void test_unix_pass_fd(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    uint8_t *buf, pay[5] = {1, 2, 3, 4, 5};
    size_t len;
    struct iovec iov = {.iov_base = pay, .iov_len = sizeof(pay)};
    int p[2], fd, probe;
    char c = 0;

    (void)state;
    unix_pair(&cl, &sv, &peer);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(wire_frame_writev_fd(sv, &iov, 1, p[1]), WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept_fd(cl, 64, &buf, &len, &fd),
                     WIRE_IO_OK);
    assert_int_equal(len, sizeof(pay));
    assert_memory_equal(buf, pay, sizeof(pay));
    wire_frame_done(cl, len);
    assert_true(fd >= 0 && fd != p[1]);
    assert_true(cloexec(fd));
    /* the same pipe */
    assert_int_equal(write(fd, "x", 1), 1);
    assert_int_equal(read(p[0], &c, 1), 1);
    assert_int_equal(c, 'x');
    close(fd);
    /* a frame without one: -1 */
    assert_int_equal(wire_frame_writev_fd(sv, &iov, 1, -1), WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept_fd(cl, 64, &buf, &len, &fd),
                     WIRE_IO_OK);
    assert_int_equal(fd, -1);
    wire_frame_done(cl, len);
    /* one sent to an ordinary read is not installed: the next descriptor
     * number is still free */
    probe = dup(0);
    assert_true(probe >= 0);
    close(probe);
    assert_int_equal(wire_frame_writev_fd(sv, &iov, 1, p[1]), WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept(cl, 64, &buf, &len), WIRE_IO_OK);
    wire_frame_done(cl, len);
    fd = dup(0);
    assert_int_equal(fd, probe);
    close(fd);
    /* a refused header takes nothing with it either */
    assert_int_equal(wire_frame_writev_fd(sv, &iov, 1, p[1]), WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept_fd(cl, 2, &buf, &len, &fd),
                     WIRE_IO_TOO_BIG);
    assert_int_equal(fd, -1);
    fd = dup(0);
    assert_int_equal(fd, probe);
    close(fd);
    close(p[0]);
    close(p[1]);
    wire_link_close(cl);
    wire_link_close(sv);
}

static void test_unix_too_big(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    uint8_t *buf = (uint8_t *)"x", raw[8];
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'a', 'b'};
    static const uint8_t over[] = {0x00, 0x01, 0x00, 0x01};
    size_t len = 99;

    (void)state;
    unix_pair(&cl, &sv, &peer);
    /* 4 GiB announced, 2 bytes sent: refused on the header alone. */
    assert_int_equal(send(wire_link_fd(cl), huge, sizeof(huge), 0),
                     (ssize_t)sizeof(huge));
    assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_TOO_BIG);
    assert_null(buf);
    assert_int_equal(len, 0);
    /* Nothing after the header was read. */
    assert_int_equal(recv(wire_link_fd(sv), raw, sizeof(raw), 0), 2);
    assert_memory_equal(raw, "ab", 2);
    /* One byte over the limit. */
    assert_int_equal(send(wire_link_fd(cl), over, sizeof(over), 0), 4);
    assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_TOO_BIG);
    wire_link_close(cl);
    wire_link_close(sv);
}

static void test_unix_truncated(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    uint8_t *buf;
    size_t len;
    static const uint8_t part[] = {0x00, 0x00, 0x00, 0x10, 'a', 'b', 'c'};

    (void)state;
    /* EOF inside the header. */
    unix_pair(&cl, &sv, &peer);
    assert_int_equal(send(wire_link_fd(cl), part, 2, 0), 2);
    wire_link_close(cl);
    assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_ERROR);
    assert_null(buf);
    wire_link_close(sv);
    /* EOF inside the payload. */
    unix_pair(&cl, &sv, &peer);
    assert_int_equal(send(wire_link_fd(cl), part, sizeof(part), 0),
                     (ssize_t)sizeof(part));
    wire_link_close(cl);
    assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_ERROR);
    assert_null(buf);
    wire_link_close(sv);
}

struct reader {
    wire_link_t *l;
    wire_io_t r;
    uint8_t *buf;
    size_t len;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;

    rd->r = wire_frame_read(rd->l, 8u << 20, &rd->buf, &rd->len);
    return NULL;
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();

    return mi.uordblks + mi.hblkhd;
}

/* A header announcing 4 MB (under the limit) costs what arrives, not what
 * is announced; the frame still arrives whole through the buffer's
 * growth. */
static void test_unix_claim_vs_memory(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    struct reader rd;
    pthread_t th;
    size_t n = 4000000, base, sent = 0;
    uint8_t *data = malloc(n);
    const struct timespec pause = {0, 200 * 1000 * 1000};

    (void)state;
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 31 + (i >> 16));
    unix_pair(&cl, &sv, &peer);
    memset(&rd, 0, sizeof(rd));
    rd.l = sv;
    assert_int_equal(pthread_create(&th, NULL, reader_main, &rd), 0);
    nanosleep(&pause, NULL);
    base = heap_in_use();
    {
        uint8_t hdr[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16),
                          (uint8_t)(n >> 8), (uint8_t)n};
        assert_int_equal(send(wire_link_fd(cl), hdr, 4, 0), 4);
        assert_int_equal(send(wire_link_fd(cl), data, 100, 0), 100);
        sent = 100;
    }
    nanosleep(&pause, NULL);
    /* 64 KiB so far, not 4 MB (glibc; under ASan this reads 0). */
    assert_true(heap_in_use() < base + 512 * 1024);
    while (sent < n) {
        ssize_t w = send(wire_link_fd(cl), data + sent, n - sent, 0);
        assert_true(w > 0);
        sent += (size_t)w;
    }
    pthread_join(th, NULL);
    assert_int_equal(rd.r, WIRE_IO_OK);
    assert_int_equal(rd.len, n);
    assert_memory_equal(rd.buf, data, n);
    free(rd.buf);
    free(data);
    wire_link_close(cl);
    wire_link_close(sv);
}

/* Unix links ask for socket buffers that hold a bulk frame whole, and
 * the kept read buffer is reused, wiped after each frame and still bound
 * by the limit and by the bytes that arrive. */
static void test_unix_kept(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    uint8_t *buf, *first, *second, *big;
    size_t len, want = 2u * 1024u * 1024u, n = 100000;
    unsigned long wmax = 0;
    int v;
    socklen_t vl = sizeof(v);
    FILE *fp = fopen("/proc/sys/net/core/wmem_max", "r");
    static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff};
    static const uint8_t part[] = {0x00, 0x00, 0x00, 0x10, 'a'};

    (void)state;
    if (fp != NULL) {
        if (fscanf(fp, "%lu", &wmax) != 1)
            wmax = 0;
        fclose(fp);
    }
    unix_pair(&cl, &sv, &peer);
    /* The kernel caps the request at wmem_max and reports it doubled;
     * the default (208 KiB) is less than what is asked for here. */
    if (wmax > 212992) {
        size_t expect = wmax < want ? wmax : want;
        assert_int_equal(
            getsockopt(wire_link_fd(cl), SOL_SOCKET, SO_SNDBUF, &v, &vl), 0);
        assert_true((size_t)v >= expect);
        assert_int_equal(
            getsockopt(wire_link_fd(sv), SOL_SOCKET, SO_SNDBUF, &v, &vl), 0);
        assert_true((size_t)v >= expect);
        assert_int_equal(
            getsockopt(wire_link_fd(sv), SOL_SOCKET, SO_RCVBUF, &v, &vl), 0);
        assert_true((size_t)v >= expect);
    }

    assert_int_equal(wire_frame_write(cl, (const uint8_t *)"pin-1234", 8),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &first, &len), WIRE_IO_OK);
    assert_int_equal(len, 8);
    assert_memory_equal(first, "pin-1234", 8);
    wire_frame_done(sv, len);
    /* wiped, and still the link's (no fresh allocation next time) */
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(first[i], 0);
    assert_int_equal(wire_frame_write(cl, (const uint8_t *)"abc", 3),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len), WIRE_IO_OK);
    assert_ptr_equal(buf, first);
    assert_memory_equal(buf, "abc", 3);
    wire_frame_done(sv, len);

    /* Grows past the first chunk (64 KiB), then is reused for a smaller
     * frame; 100 kB fits the default socket buffer, as the reader runs
     * after the writer. */
    big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 13 + (i >> 12));
    assert_int_equal(wire_frame_write(cl, big, n), WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept(sv, n, &second, &len), WIRE_IO_OK);
    assert_int_equal(len, n);
    assert_memory_equal(second, big, n);
    wire_frame_done(sv, len);
    assert_int_equal(wire_frame_write(cl, big + 1, n - 1), WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept(sv, n, &buf, &len), WIRE_IO_OK);
    assert_ptr_equal(buf, second);
    assert_int_equal(len, n - 1);
    assert_memory_equal(buf, big + 1, n - 1);
    wire_frame_done(sv, len);
    free(big);

    /* The limit holds with a buffer kept: refused on the header. */
    assert_int_equal(send(wire_link_fd(cl), huge, sizeof(huge), 0), 4);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len),
                     WIRE_IO_TOO_BIG);
    assert_null(buf);
    assert_int_equal(len, 0);
    /* A truncated frame is an error and leaves nothing. */
    assert_int_equal(send(wire_link_fd(cl), part, sizeof(part), 0),
                     (ssize_t)sizeof(part));
    wire_link_close(cl);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len),
                     WIRE_IO_ERROR);
    assert_null(buf);
    wire_link_close(sv);
}

static void test_unix_errors(void **state)
{
    struct config_endpoint ep;
    wire_link_t *l = (wire_link_t *)1;
    wire_peer_t peer;
    char err[256] = "";
    int sv[2];

    (void)state;
    memset(&ep, 0, sizeof(ep));
    ep.kind = CONFIG_EP_UNIX;
    path_in(ep.path, sizeof(ep.path), "nobody-listens");
    assert_false(wire_link_connect(&ep, NULL, &l, err, sizeof(err)));
    assert_null(l);
    assert_non_null(strstr(err, "nobody-listens"));
    /* A tls endpoint without a TLS context is refused, not dialled. */
    assert_null(config_parse_endpoint("tls:127.0.0.1:1", &ep));
    assert_false(wire_link_connect(&ep, NULL, &l, err, sizeof(err)));
    /* accept takes the fd, also when it fails; a socketpair's peer is
     * this process. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_false(cloexec(sv[0]));
    assert_true(wire_link_accept(sv[0], NULL, &l, &peer, err, sizeof(err)));
    assert_true(cloexec(sv[0]));
    assert_int_equal(peer.pid, (long)getpid());
    wire_link_close(l);
    assert_int_equal(fcntl(sv[0], F_GETFD), -1);
    close(sv[1]);
    assert_false(wire_link_accept(-1, NULL, &l, &peer, err, sizeof(err)));
    assert_null(l);
}

/* ------------------------------------------------- spinning, read-ahead */

struct late_writer {
    wire_link_t *l;
    unsigned delay_ms;
    const uint8_t *buf;
    size_t len;
    unsigned count; /* frames, each after delay_ms */
};

static void *late_writer_main(void *arg)
{
    struct late_writer *w = arg;

    for (unsigned i = 0; i < w->count; i++) {
        struct timespec d = {w->delay_ms / 1000,
                             (long)(w->delay_ms % 1000) * 1000000L};
        nanosleep(&d, NULL);
        if (wire_frame_write(w->l, w->buf, w->len) != WIRE_IO_OK)
            break;
    }
    return NULL;
}

static double thread_cpu_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Reads one frame on l that w sends late; returns the read's CPU ms. */
static double read_late(wire_link_t *l, wire_link_t *from, unsigned delay_ms)
{
    struct late_writer w = {from, delay_ms, (const uint8_t *)"late", 4, 1};
    pthread_t th;
    uint8_t *buf;
    size_t len;
    double t0;

    assert_int_equal(pthread_create(&th, NULL, late_writer_main, &w), 0);
    t0 = thread_cpu_ms();
    assert_int_equal(wire_frame_read_kept(l, 65536, &buf, &len), WIRE_IO_OK);
    t0 = thread_cpu_ms() - t0;
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "late", 4);
    wire_frame_done(l, len);
    pthread_join(th, NULL);
    return t0;
}

/* A fake /proc/stat: n threads running. */
static void room_file(unsigned n)
{
    char path[128];
    FILE *fp;

    path_in(path, sizeof(path), "stat");
    fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "cpu  1 2 3 4\nintr 5\nprocs_running %u\nprocs_blocked 0\n", n);
    fclose(fp);
    /* counts that the machine's load cannot change */
    wire_spin_tune(path, false);
}

/* A spinning link polls within its window only, stops when its waits
 * are long, starts again when they are short, and reads frames, ends and
 * broken frames as a blocking one does. */
static void test_unix_spin(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    wire_spin_stats_t st;
    uint8_t *buf;
    size_t len;
    unsigned peak, cap;
    double cpu;
    static const uint8_t part[] = {0x00, 0x00};

    (void)state;
    room_file(1); /* whatever else runs on this machine now */
    wire_spin_peak(NULL, &cap);
    unix_pair(&cl, &sv, &peer);
    wire_link_set_spin(sv, 1000000); /* cut to WIRE_SPIN_MAX_US */
    wire_link_spin_stats(sv, &st);
    assert_int_equal(st.spins + st.hits + st.skipped, 0);

    /* Already there: the first poll finds it. */
    assert_int_equal(wire_frame_write(cl, (const uint8_t *)"now", 3),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "now", 3);
    wire_frame_done(sv, len);
    wire_link_spin_stats(sv, &st);
    if (cap == 0) {
        /* one CPU: a spinner would only delay its peer */
        assert_int_equal(st.spins, 0);
        assert_int_equal(st.skipped, 1);
    } else {
        assert_int_equal(st.spins, 1);
        assert_int_equal(st.hits, 1);
    }

    /* 300 ms late, twice: each read polls for at most the window (500
     * us) and then sleeps; an unbounded spinner would burn the 300 ms. */
    cpu = read_late(sv, cl, 300);
    assert_true(cpu < 60.0);
    cpu = read_late(sv, cl, 300);
    assert_true(cpu < 60.0);
    wire_link_spin_stats(sv, &st);
    assert_int_equal(st.hits, cap == 0 ? 0 : 1);
    assert_int_equal(st.spins, cap == 0 ? 0 : 3);
    /* Two long waits in a row: the next read does not poll at all... */
    cpu = read_late(sv, cl, 50);
    wire_link_spin_stats(sv, &st);
    assert_int_equal(st.spins, cap == 0 ? 0 : 3);
    assert_int_equal(st.skipped, cap == 0 ? 4 : 1);
    /* ... nor after a short one it did not poll for (timed while it
     * slept), but the one after that does. (A read preempted for longer
     * than the window counts as long: a loaded machine may take a few.) */
    for (unsigned i = 0; i < 20; i++) {
        unsigned long before = st.spins;
        assert_int_equal(wire_frame_write(cl, (const uint8_t *)"now", 3),
                         WIRE_IO_OK);
        assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len),
                         WIRE_IO_OK);
        wire_frame_done(sv, len);
        wire_link_spin_stats(sv, &st);
        if (st.spins > before)
            break;
    }
    wire_link_spin_stats(sv, &st);
    assert_true(st.skipped >= (cap == 0 ? 6 : 2));
    assert_int_equal(st.spins, cap == 0 ? 0 : 4);
    assert_int_equal(st.hits, cap == 0 ? 0 : 2);

    /* The limit before anything else, nothing read past a refused header
     * (no read-ahead here). */
    {
        static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'a', 'b'};
        uint8_t raw[8];
        assert_int_equal(send(wire_link_fd(cl), huge, sizeof(huge), 0), 6);
        assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len),
                         WIRE_IO_TOO_BIG);
        assert_int_equal(recv(wire_link_fd(sv), raw, sizeof(raw), 0), 2);
        assert_memory_equal(raw, "ab", 2);
    }
    /* Half a header, then the end: a broken frame. */
    assert_int_equal(send(wire_link_fd(cl), part, sizeof(part), 0), 2);
    wire_link_close(cl);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len),
                     WIRE_IO_ERROR);
    wire_link_close(sv);
    /* An end between frames while polling. */
    unix_pair(&cl, &sv, &peer);
    wire_link_set_spin(sv, 200);
    wire_link_close(cl);
    assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_EOF);
    wire_link_close(sv);
    wire_spin_peak(&peak, NULL);
    assert_true(peak <= cap);
    wire_spin_tune(NULL, true);
}

/* More running threads than CPUs: nobody spins; room again: spinning
 * resumes. */
static void test_unix_spin_room(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    wire_spin_stats_t st;
    uint8_t *buf;
    size_t len;
    unsigned cap;

    (void)state;
    wire_spin_peak(NULL, &cap);
    unix_pair(&cl, &sv, &peer);
    wire_link_set_spin(sv, 200);
    room_file(cap + 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wire_frame_write(cl, (const uint8_t *)"now", 3),
                         WIRE_IO_OK);
        assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len),
                         WIRE_IO_OK);
        wire_frame_done(sv, len);
    }
    wire_link_spin_stats(sv, &st);
    assert_int_equal(st.spins, 0);
    assert_int_equal(st.skipped, 3);
    room_file(cap + 1);
    assert_int_equal(wire_frame_write(cl, (const uint8_t *)"now", 3),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len), WIRE_IO_OK);
    wire_frame_done(sv, len);
    wire_link_spin_stats(sv, &st);
    assert_int_equal(st.spins, cap == 0 ? 0 : 1);

    /* No /proc/stat (systemd's ProcSubset=pid): the load average decides
     * (read before and after: it moves slowly, but it moves). */
    {
        char gone[128];
        struct sysinfo si1, si2;
        unsigned long spins = st.spins, lim = (unsigned long)(cap + 1) << 16;
        path_in(gone, sizeof(gone), "no-such-stat");
        assert_int_equal(sysinfo(&si1), 0);
        wire_spin_tune(gone, false);
        assert_int_equal(wire_frame_write(cl, (const uint8_t *)"now", 3),
                         WIRE_IO_OK);
        assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len),
                         WIRE_IO_OK);
        wire_frame_done(sv, len);
        assert_int_equal(sysinfo(&si2), 0);
        wire_link_spin_stats(sv, &st);
        if ((si1.loads[0] < lim) == (si2.loads[0] < lim) && cap > 0)
            assert_int_equal(st.spins, spins + (si1.loads[0] < lim ? 1 : 0));
    }
    wire_link_close(cl);
    wire_link_close(sv);
    wire_spin_tune(NULL, true);
}

static atomic_bool hog_run;

static void *hog_main(void *arg)
{
    (void)arg;
    while (atomic_load(&hog_run))
        ;
    return NULL;
}

/* A thread that wants the spinner's CPU for whole time slices: the
 * spinner that yields to it sees the stall, stops, and the process does
 * not spin for a while, even on a link whose waits are short. */
static void test_unix_spin_stall(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    wire_spin_stats_t st;
    cpu_set_t one, all;
    pthread_t hog;
    char path[128];
    uint8_t *buf;
    size_t len;
    unsigned cap;
    unsigned long spins;

    (void)state;
    wire_spin_peak(NULL, &cap);
    if (cap == 0)
        skip(); /* one CPU: nobody spins */
    room_file(1);
    path_in(path, sizeof(path), "stat");
    wire_spin_tune(path, true);
    assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
    atomic_store(&hog_run, true);
    assert_int_equal(pthread_create(&hog, NULL, hog_main, NULL), 0);
    unix_pair(&cl, &sv, &peer);
    wire_link_set_spin(sv, 200);
    wire_link_spin_stats(sv, &st);
    for (int i = 0; i < 20 && st.stalls == 0; i++) {
        /* a short wait keeps the link spinning, a late frame makes it
         * poll and yield */
        assert_int_equal(wire_frame_write(cl, (const uint8_t *)"now", 3),
                         WIRE_IO_OK);
        assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len),
                         WIRE_IO_OK);
        wire_frame_done(sv, len);
        read_late(sv, cl, 5);
        wire_link_spin_stats(sv, &st);
    }
    assert_true(st.stalls > 0);
    spins = st.spins;
    assert_int_equal(wire_frame_write(cl, (const uint8_t *)"now", 3),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len), WIRE_IO_OK);
    wire_frame_done(sv, len);
    wire_link_spin_stats(sv, &st);
    assert_int_equal(st.spins, spins);
    atomic_store(&hog_run, false);
    pthread_join(hog, NULL);
    assert_int_equal(sched_setaffinity(0, sizeof(all), &all), 0);
    wire_link_close(cl);
    wire_link_close(sv);
    wire_spin_tune(NULL, true);
}

struct spin_pair {
    wire_link_t *cl, *sv;
    unsigned frames;
    bool ok;
};

static void *spin_reader_main(void *arg)
{
    struct spin_pair *p = arg;
    struct late_writer w = {p->cl, 1, (const uint8_t *)"x", 1, p->frames};
    pthread_t th;
    uint8_t *buf;
    size_t len;

    p->ok = pthread_create(&th, NULL, late_writer_main, &w) == 0;
    for (unsigned i = 0; p->ok && i < p->frames; i++) {
        p->ok = wire_frame_read_kept(p->sv, 16, &buf, &len) == WIRE_IO_OK &&
                len == 1;
        wire_frame_done(p->sv, len);
    }
    pthread_join(th, NULL);
    return NULL;
}

/* Eight links waiting at once: never more spinners than the CPUs less
 * one (on this machine's two CPUs: one). */
static void test_unix_spin_cap(void **state)
{
    struct spin_pair p[8];
    pthread_t th[8];
    wire_peer_t peer;
    wire_spin_stats_t st;
    unsigned peak, cap, spins = 0;

    (void)state;
    room_file(1);
    for (size_t i = 0; i < 8; i++) {
        unix_pair(&p[i].cl, &p[i].sv, &peer);
        wire_link_set_spin(p[i].sv, WIRE_SPIN_MAX_US);
        p[i].frames = 40;
        p[i].ok = false;
    }
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&th[i], NULL, spin_reader_main, &p[i]),
                         0);
    for (size_t i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_true(p[i].ok);
        wire_link_spin_stats(p[i].sv, &st);
        spins += (unsigned)st.spins;
        assert_int_equal(st.spins + st.skipped, 40);
        wire_link_close(p[i].cl);
        wire_link_close(p[i].sv);
    }
    wire_spin_peak(&peak, &cap);
    assert_true(peak <= cap);
    if (cap > 0)
        assert_true(spins > 0);
    wire_spin_tune(NULL, true);
}

/* Read-ahead: one recv takes a header and what follows (at most
 * WIRE_READ_AHEAD bytes); frames that arrive together stay apart; the
 * limit still comes first, and after a refused frame the link reads no
 * more. */
static void test_unix_readahead(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    uint8_t *buf, *big, raw[16384];
    size_t len, n = 100000, rest;
    ssize_t k;
    static const uint8_t two[] = {0, 0, 0, 3, 'o', 'n', 'e',
                                  0, 0, 0, 3, 't', 'w', 'o'};
    static const uint8_t split1[] = {0, 0};
    static const uint8_t split2[] = {0, 5, 'h', 'e', 'l', 'l', 'o'};

    (void)state;
    unix_pair(&cl, &sv, &peer);
    assert_true(wire_link_set_readahead(sv));
    wire_link_set_spin(sv, 50);
    /* Two frames in one send: read as two. */
    assert_int_equal(send(wire_link_fd(cl), two, sizeof(two), 0),
                     (ssize_t)sizeof(two));
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "one", 3);
    wire_frame_done(sv, len);
    assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "two", 3);
    free(buf);
    /* A header in two pieces. */
    assert_int_equal(send(wire_link_fd(cl), split1, sizeof(split1), 0), 2);
    {
        struct timespec d = {0, 20 * 1000 * 1000};
        nanosleep(&d, NULL);
    }
    assert_int_equal(send(wire_link_fd(cl), split2, sizeof(split2), 0), 7);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    wire_frame_done(sv, len);
    /* Larger than the read-ahead, into a kept buffer smaller than what
     * was read ahead (the "hello" one), then an empty frame. */
    big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 11 + (i >> 10));
    assert_int_equal(wire_frame_write(cl, big, n), WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept(sv, n, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, n);
    assert_memory_equal(buf, big, n);
    wire_frame_done(sv, len);
    assert_int_equal(wire_frame_write(cl, NULL, 0), WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept(sv, n, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, 0);
    wire_frame_done(sv, len);

    /* A refused header: refused before any allocation, and what was read
     * past it is the read-ahead at most (the rest is still in the
     * socket); then the link reads nothing more. */
    memset(raw, 'z', sizeof(raw));
    raw[0] = 0x7f;
    raw[1] = raw[2] = raw[3] = 0xff;
    assert_int_equal(send(wire_link_fd(cl), raw, 10004, 0), 10004);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len),
                     WIRE_IO_TOO_BIG);
    assert_null(buf);
    for (rest = 0;
         (k = recv(wire_link_fd(sv), raw, sizeof(raw), MSG_DONTWAIT)) > 0;)
        rest += (size_t)k;
    assert_true(rest >= 10004 - WIRE_READ_AHEAD);
    assert_true(rest < 10000);
    assert_int_equal(wire_frame_write(cl, (const uint8_t *)"ok", 2),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len),
                     WIRE_IO_ERROR);
    wire_link_close(cl);
    wire_link_close(sv);

    /* The end inside a payload that came with its header. */
    unix_pair(&cl, &sv, &peer);
    assert_true(wire_link_set_readahead(sv));
    {
        static const uint8_t cut[] = {0, 0, 0, 0x10, 'a', 'b', 'c'};
        assert_int_equal(send(wire_link_fd(cl), cut, sizeof(cut), 0), 7);
    }
    wire_link_close(cl);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len),
                     WIRE_IO_ERROR);
    assert_null(buf);
    assert_int_equal(wire_frame_read_kept(sv, 65536, &buf, &len),
                     WIRE_IO_ERROR);
    wire_link_close(sv);
    free(big);
}

/* ------------------------------------------------------- io timeout */

#define IO_MS 300u
/* what a loaded machine adds to a bound before the read returns */
#define IO_SLACK_MS 1500u

static uint64_t ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The read modes nimbusd and the module use: plain, kept, read-ahead,
 * read-ahead with polling, polling alone. */
static void io_mode(wire_link_t *sv, int mode)
{
    if (mode >= 2 && mode <= 3)
        assert_true(wire_link_set_readahead(sv));
    if (mode >= 3)
        wire_link_set_spin(sv, 50);
    wire_link_set_io_timeout(sv, IO_MS);
}

static wire_io_t io_read(wire_link_t *sv, int mode, size_t *len)
{
    uint8_t *buf;
    wire_io_t r;

    if (mode == 1) {
        r = wire_frame_read_kept(sv, 65536, &buf, len);
        if (r == WIRE_IO_OK)
            wire_frame_done(sv, *len);
        return r;
    }
    r = wire_frame_read(sv, 65536, &buf, len);
    free(buf);
    return r;
}

struct trickle {
    int fd;
    size_t n;         /* bytes to send, one at a time */
    unsigned gap_ms;  /* between two */
    unsigned wait_ms; /* before the first */
    const uint8_t *p;
};

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000u, (long)(ms % 1000u) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void *trickle_main(void *arg)
{
    struct trickle *t = arg;

    sleep_ms(t->wait_ms);
    for (size_t i = 0; i < t->n; i++) {
        if (send(t->fd, t->p + i, 1, MSG_NOSIGNAL) != 1)
            break;
        sleep_ms(t->gap_ms);
    }
    return NULL;
}

/*
 * io_timeout on a unix link, in every read mode: a frame begun and left
 * (in the header, in the payload) fails within the bound, and so does
 * one trickled a byte every 100 ms (a whole-frame bound, not one per
 * recv); an idle link waits for its next frame without limit (3 x the
 * bound here) and reads it; two frames read ahead in one recv are both
 * read at once.
 */
static void test_unix_io_timeout(void **state)
{
    static const uint8_t part[] = {0x00, 0x00, 0x00, 0x10, 'a', 'b', 'c'};
    static const uint8_t two[] = {0, 0, 0, 3, 'o', 'n', 'e',
                                  0, 0, 0, 3, 't', 'w', 'o'};
    static uint8_t slow[4 + 60];
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    size_t len;
    uint64_t t0, dt;

    (void)state;
    slow[3] = 60;
    for (int mode = 0; mode < 5; mode++) {
        /* in the payload */
        unix_pair(&cl, &sv, &peer);
        io_mode(sv, mode);
        assert_int_equal(send(wire_link_fd(cl), part, sizeof(part), 0),
                         (ssize_t)sizeof(part));
        t0 = ms_now();
        assert_int_equal(io_read(sv, mode, &len), WIRE_IO_ERROR);
        dt = ms_now() - t0;
        assert_true(wire_link_timed_out(sv));
        if (dt + 20 < IO_MS || dt > IO_MS + IO_SLACK_MS)
            fail_msg("mode %d: half frame ended after %lu ms", mode,
                     (unsigned long)dt);
        wire_link_close(sv);
        wire_link_close(cl);

        /* in the header */
        unix_pair(&cl, &sv, &peer);
        io_mode(sv, mode);
        assert_int_equal(send(wire_link_fd(cl), part, 2, 0), 2);
        t0 = ms_now();
        assert_int_equal(io_read(sv, mode, &len), WIRE_IO_ERROR);
        assert_true(wire_link_timed_out(sv));
        assert_true(ms_now() - t0 <= IO_MS + IO_SLACK_MS);
        wire_link_close(sv);
        wire_link_close(cl);

        /* a trickle: 64 bytes at one per 100 ms would take 6.4 s */
        {
            struct trickle t = {.n = sizeof(slow), .gap_ms = 100, .p = slow};
            pthread_t th;

            unix_pair(&cl, &sv, &peer);
            io_mode(sv, mode);
            t.fd = wire_link_fd(cl);
            assert_int_equal(pthread_create(&th, NULL, trickle_main, &t), 0);
            t0 = ms_now();
            assert_int_equal(io_read(sv, mode, &len), WIRE_IO_ERROR);
            dt = ms_now() - t0;
            assert_true(wire_link_timed_out(sv));
            if (dt > IO_MS + IO_SLACK_MS)
                fail_msg("mode %d: a trickle held the read %lu ms", mode,
                         (unsigned long)dt);
            shutdown(t.fd, SHUT_RDWR); /* ends the trickler */
            pthread_join(th, NULL);
            wire_link_close(sv);
            wire_link_close(cl);
        }

        /* idle for 3 x the bound, then a frame: read */
        {
            struct trickle t = {
                .n = sizeof(two), .gap_ms = 0, .wait_ms = 3 * IO_MS, .p = two};
            pthread_t th;

            unix_pair(&cl, &sv, &peer);
            io_mode(sv, mode);
            t.fd = wire_link_fd(cl);
            assert_int_equal(pthread_create(&th, NULL, trickle_main, &t), 0);
            t0 = ms_now();
            assert_int_equal(io_read(sv, mode, &len), WIRE_IO_OK);
            assert_int_equal(len, 3);
            assert_true(ms_now() - t0 >= 3 * IO_MS - 20);
            assert_int_equal(io_read(sv, mode, &len), WIRE_IO_OK);
            assert_false(wire_link_timed_out(sv));
            pthread_join(th, NULL);
            wire_link_close(sv);
            wire_link_close(cl);
        }

        /* two frames in one send: the second is there (read ahead) */
        unix_pair(&cl, &sv, &peer);
        io_mode(sv, mode);
        assert_int_equal(send(wire_link_fd(cl), two, sizeof(two), 0),
                         (ssize_t)sizeof(two));
        t0 = ms_now();
        assert_int_equal(io_read(sv, mode, &len), WIRE_IO_OK);
        assert_int_equal(io_read(sv, mode, &len), WIRE_IO_OK);
        assert_int_equal(len, 3);
        assert_true(ms_now() - t0 < IO_MS);
        assert_false(wire_link_timed_out(sv));
        wire_link_close(sv);
        wire_link_close(cl);
    }
}

/*
 * wire_link_expect_within: the next frame, first byte included, within
 * the bound (nimbusd's handshake): a silent peer fails it; a frame in
 * time is read, and the bound is gone for the frames after it.
 */
static void test_unix_expect_within(void **state)
{
    static const uint8_t one[] = {0, 0, 0, 1, 'x'};
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    uint8_t *buf;
    size_t len;
    uint64_t t0, dt;

    (void)state;
    for (int mode = 0; mode < 5; mode++) {
        unix_pair(&cl, &sv, &peer);
        io_mode(sv, mode);
        wire_link_expect_within(sv, IO_MS);
        t0 = ms_now();
        assert_int_equal(io_read(sv, mode, &len), WIRE_IO_ERROR);
        dt = ms_now() - t0;
        assert_true(wire_link_timed_out(sv));
        if (dt + 20 < IO_MS || dt > IO_MS + IO_SLACK_MS)
            fail_msg("mode %d: silence ended after %lu ms", mode,
                     (unsigned long)dt);
        wire_link_close(sv);
        wire_link_close(cl);
    }
    /* in time, then idle past the bound: still read */
    unix_pair(&cl, &sv, &peer);
    wire_link_expect_within(sv, IO_MS);
    assert_int_equal(send(wire_link_fd(cl), one, sizeof(one), 0),
                     (ssize_t)sizeof(one));
    assert_int_equal(wire_frame_read(sv, 64, &buf, &len), WIRE_IO_OK);
    free(buf);
    sleep_ms(2 * IO_MS);
    assert_int_equal(send(wire_link_fd(cl), one, sizeof(one), 0),
                     (ssize_t)sizeof(one));
    assert_int_equal(wire_frame_read(sv, 64, &buf, &len), WIRE_IO_OK);
    free(buf);
    assert_false(wire_link_timed_out(sv));
    wire_link_close(sv);
    wire_link_close(cl);
}

/*
 * A peer that never reads: a frame write fails within the bound once the
 * socket buffers are full (each write has the bound in all), instead of
 * blocking for ever; without a bound a write to a reading peer still
 * goes through whole.
 */
static void test_unix_write_timeout(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    size_t n = 1u << 20;
    uint8_t *big = calloc(1, n);
    uint64_t t0 = 0, dt = 0;
    wire_io_t r = WIRE_IO_OK;

    (void)state;
    assert_non_null(big);
    unix_pair(&cl, &sv, &peer);
    wire_link_set_io_timeout(sv, IO_MS);
    /* the buffers hold a few MiB at most */
    for (int i = 0; i < 64 && r == WIRE_IO_OK; i++) {
        t0 = ms_now();
        r = wire_frame_write(sv, big, n);
        dt = ms_now() - t0;
    }
    assert_int_equal(r, WIRE_IO_ERROR);
    assert_true(wire_link_timed_out(sv));
    if (dt + 20 < IO_MS || dt > IO_MS + IO_SLACK_MS)
        fail_msg("a write to a peer that reads nothing took %lu ms",
                 (unsigned long)dt);
    wire_link_close(sv);
    wire_link_close(cl);
    free(big);
}

/* ------------------------------------------------ client call deadline */

/* A reply that comes after the deadline is never read, not even as the
 * answer of the next request: the link that timed out is done for. The
 * client link is set up as the module's (read-ahead, polling). */
static void test_unix_deadline(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    uint8_t *buf;
    size_t len;
    uint64_t t0, dt;
    static const uint8_t half[] = {0, 0, 0, 10, 'a', 'b', 'c'};

    (void)state;
    unix_pair(&cl, &sv, &peer);
    assert_true(wire_link_set_readahead(cl));
    wire_link_set_spin(cl, WIRE_SPIN_MAX_US);
    /* a deadline that is met changes nothing */
    for (int i = 0; i < 3; i++) {
        wire_link_set_deadline(cl, 5000);
        assert_int_equal(wire_frame_write(cl, (const uint8_t *)"req", 3),
                         WIRE_IO_OK);
        assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_OK);
        assert_int_equal(wire_frame_write(sv, buf, len), WIRE_IO_OK);
        free(buf);
        assert_int_equal(wire_frame_read(cl, 65536, &buf, &len), WIRE_IO_OK);
        assert_int_equal(len, 3);
        free(buf);
    }
    assert_false(wire_link_timed_out(cl));
    /* the server takes the request and says nothing */
    wire_link_set_deadline(cl, 300);
    t0 = ms_now();
    assert_int_equal(wire_frame_write(cl, (const uint8_t *)"req1", 4),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_OK);
    free(buf);
    assert_int_equal(wire_frame_read(cl, 65536, &buf, &len), WIRE_IO_ERROR);
    assert_true(wire_link_timed_out(cl));
    dt = ms_now() - t0;
    assert_null(buf);
    assert_true(dt >= 290 && dt < 2000);
    assert_true(wire_link_timed_out(cl));
    /* the late reply arrives; the next request is not sent and nothing
     * is read, whatever the deadline */
    assert_int_equal(wire_frame_write(sv, (const uint8_t *)"late1", 5),
                     WIRE_IO_OK);
    wire_link_set_deadline(cl, 0);
    assert_int_equal(wire_frame_write(cl, (const uint8_t *)"req2", 4),
                     WIRE_IO_ERROR);
    assert_int_equal(wire_frame_read(cl, 65536, &buf, &len), WIRE_IO_ERROR);
    assert_null(buf);
    wire_link_set_deadline(cl, 1000);
    assert_int_equal(wire_frame_read_kept(cl, 65536, &buf, &len),
                     WIRE_IO_ERROR);
    assert_null(buf);
    /* req2 never reached the server: it only sees the end (a reset:
     * the late reply was left unread) */
    wire_link_close(cl);
    assert_int_not_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_OK);
    assert_null(buf);
    wire_link_close(sv);

    /* half a frame, then silence: the deadline holds inside a frame */
    unix_pair(&cl, &sv, &peer);
    assert_int_equal(send(wire_link_fd(sv), half, sizeof(half), 0),
                     (ssize_t)sizeof(half));
    wire_link_set_deadline(cl, 200);
    t0 = ms_now();
    assert_int_equal(wire_frame_read(cl, 65536, &buf, &len), WIRE_IO_ERROR);
    assert_true(wire_link_timed_out(cl));
    dt = ms_now() - t0;
    assert_true(dt >= 190 && dt < 2000);
    wire_link_close(cl);
    wire_link_close(sv);
}

/* A peer that reads nothing: a frame larger than the socket buffers
 * cannot be written; the write gives up at the deadline. */
static void test_unix_deadline_write(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    size_t n = 16u * 1024u * 1024u;
    uint8_t *big = calloc(1, n), *buf;
    size_t len;
    uint64_t t0, dt;

    (void)state;
    assert_non_null(big);
    unix_pair(&cl, &sv, &peer);
    wire_link_set_deadline(cl, 300);
    t0 = ms_now();
    assert_int_equal(wire_frame_write(cl, big, n), WIRE_IO_ERROR);
    assert_true(wire_link_timed_out(cl));
    dt = ms_now() - t0;
    assert_true(dt >= 290 && dt < 2000);
    assert_int_equal(wire_frame_write(cl, big, 1), WIRE_IO_ERROR);
    wire_link_close(cl);
    /* the server sees a broken frame, not a whole one */
    assert_int_equal(wire_frame_read(sv, n, &buf, &len), WIRE_IO_ERROR);
    wire_link_close(sv);
    free(big);
}

/* connect() to a listener whose backlog is full (a stopped daemon) and
 * the version handshake of a listener that never answers are bounded by
 * wire_link_connect_timed's one deadline. */
static void test_unix_connect_bounded(void **state)
{
    struct config_endpoint ep;
    struct sockaddr_un sa;
    wire_link_t *l = NULL;
    uint8_t *buf;
    size_t len;
    uint64_t t0, dt;
    char err[256] = "";
    int ls = unix_listener(&ep), filler[64], nf = 0;

    (void)state;
    /* nobody accepts: a connection is queued, and the handshake's
     * request is written, but no reply comes */
    t0 = ms_now();
    assert_true(wire_link_connect_timed(&ep, NULL, 300, &l, err, sizeof(err)));
    assert_int_equal(wire_frame_write(l, (const uint8_t *)"hello", 5),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read(l, 65536, &buf, &len), WIRE_IO_ERROR);
    assert_true(wire_link_timed_out(l));
    dt = ms_now() - t0;
    assert_true(dt >= 290 && dt < 2000);
    wire_link_close(l);
    /* plain wire_link_connect leaves no deadline behind */
    assert_true(wire_link_connect(&ep, NULL, &l, err, sizeof(err)));
    usleep(400 * 1000);
    assert_int_equal(wire_frame_write(l, (const uint8_t *)"x", 1), WIRE_IO_OK);
    assert_false(wire_link_timed_out(l));
    wire_link_close(l);
    /* the backlog filled up with connections nobody takes */
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, ep.path, strlen(ep.path) + 1);
    while (nf < 64) {
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

        assert_true(s >= 0);
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            close(s);
            break;
        }
        filler[nf++] = s;
    }
    assert_true(nf < 64); /* the backlog is 8 (unix_listener) */
    t0 = ms_now();
    assert_false(wire_link_connect_timed(&ep, NULL, 300, &l, err, sizeof(err)));
    dt = ms_now() - t0;
    assert_true(dt >= 250 && dt < 2000);
    assert_non_null(strstr(err, "timed out"));
    for (int i = 0; i < nf; i++)
        close(filler[i]);
    close(ls);
}

/* ------------------------------------------------------------ fork */

/* A forked child holds none of its parent's client sockets: when the
 * parent closes its link, the server sees the end while the child still
 * lives. The server's own accepted link is not touched, and the parent's
 * link works on after the fork. */
static void test_fork_closes_client_links(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    uint8_t *buf;
    size_t len;
    int status = 0, go[2];
    pid_t pid;
    char c = 0;

    (void)state;
    unix_pair(&cl, &sv, &peer);
    assert_int_equal(pipe(go), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int code = 0;

        if (fcntl(wire_link_fd(cl), F_GETFD) != -1 || errno != EBADF)
            code |= 1; /* the parent's client socket is still open */
        if (fcntl(wire_link_fd(sv), F_GETFD) == -1)
            code |= 2; /* not a client link: left alone */
        /* live until the parent has checked the server's view */
        (void)read(go[0], &c, 1);
        _exit(code);
    }
    /* the parent's link still carries frames */
    assert_int_equal(wire_frame_write(cl, (const uint8_t *)"after", 5),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, 5);
    free(buf);
    /* the parent is done with it: the end reaches the server while the
     * child lives (without the close in the child: the timeout) */
    wire_link_close(cl);
    wire_link_set_deadline(sv, 3000);
    assert_int_equal(wire_frame_read(sv, 65536, &buf, &len), WIRE_IO_EOF);
    assert_int_equal(waitpid(pid, &status, WNOHANG), 0); /* alive */
    assert_int_equal(write(go[1], "x", 1), 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(go[0]);
    close(go[1]);
    wire_link_close(sv);
}

/* A careless application closes the module's socket behind its back
 * (a "close every descriptor" loop) and the number is reused for its
 * own file: a forked child must not close that file, which the array
 * still names. The fork handler closes only the socket it recorded. */
static void test_fork_spares_reused_number(void **state)
{
    wire_link_t *cl, *sv;
    wire_peer_t peer;
    int status = 0, num, pfd[2];
    pid_t pid;

    (void)state;
    unix_pair(&cl, &sv, &peer);
    num = wire_link_fd(cl);
    assert_int_equal(pipe(pfd), 0);
    /* the number now names the application's pipe, not the socket */
    assert_int_equal(dup2(pfd[1], num), num);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(write(num, "k", 1) == 1 ? 0 : 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* its pipe was left open */
    {
        char c = 0;

        assert_int_equal(read(pfd[0], &c, 1), 1);
        assert_int_equal(c, 'k');
    }
    wire_link_close(cl); /* closes num, the pipe's copy */
    close(pfd[0]);
    close(pfd[1]);
    wire_link_close(sv);
}

/* ---------------------------------------------------------------- TLS */

struct tls_server {
    int ls;
    unsigned port;
    wire_tls_t *tls;
    pthread_t th;
    bool ok;
    wire_peer_t peer;
    char err[256];
    unsigned late_ms; /* the first reply comes that late (0: at once) */
};

/* A TCP listener on 127.0.0.1, on a port below 32768 (test servers stay
 * out of the kernel's ephemeral range). */
static void tcp_listener(struct tls_server *s)
{
    struct sockaddr_in sa;

    s->ls = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->ls >= 0);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int i = 0; i < 200; i++) {
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s->port = 20000 + (unsigned)rand() % 12768;
        sa.sin_port = htons((uint16_t)s->port);
        if (bind(s->ls, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            assert_int_equal(listen(s->ls, 8), 0);
            return;
        }
    }
    fail_msg("no free port below 32768");
}

/* Accepts one connection, then echoes frames until EOF. */
static void *tls_server_main(void *arg)
{
    struct tls_server *s = arg;
    wire_link_t *l;
    uint8_t *buf;
    size_t len;
    int fd = accept(s->ls, NULL, NULL);

    s->ok = wire_link_accept(fd, s->tls, &l, &s->peer, s->err, sizeof(s->err));
    if (!s->ok)
        return NULL;
    while (wire_frame_read(l, 65536, &buf, &len) == WIRE_IO_OK) {
        if (s->late_ms > 0) {
            usleep(s->late_ms * 1000u);
            s->late_ms = 0;
        }
        wire_frame_write(l, buf, len);
        free(buf);
    }
    wire_link_close(l);
    return NULL;
}

static void server_start(struct tls_server *s, const char *cert,
                         const char *key)
{
    struct config cfg;
    char err[256];

    memset(s, 0, sizeof(*s));
    tls_conf(&cfg, cert, key, "ca.pem");
    assert_true(wire_tls_server_new(&cfg, &s->tls, err, sizeof(err)));
    tcp_listener(s);
    assert_int_equal(pthread_create(&s->th, NULL, tls_server_main, s), 0);
}

static void server_stop(struct tls_server *s)
{
    pthread_join(s->th, NULL);
    close(s->ls);
    wire_tls_free(s->tls);
}

static void tls_ep(struct config_endpoint *ep, const char *host, unsigned port)
{
    memset(ep, 0, sizeof(*ep));
    ep->kind = CONFIG_EP_TLS;
    snprintf(ep->host, sizeof(ep->host), "%s", host);
    ep->port = port;
}

static void test_tls_mutual(void **state)
{
    struct tls_server s;
    struct config cfg;
    struct config_endpoint ep;
    wire_tls_t *ct;
    wire_link_t *l;
    uint8_t *buf;
    size_t len;
    char err[256];

    (void)state;
    server_start(&s, "server.pem", "server.key");
    tls_conf(&cfg, "client.pem", "client.key", "ca.pem");
    assert_true(wire_tls_client_new(&cfg, &ct, err, sizeof(err)));
    tls_ep(&ep, "127.0.0.1", s.port);
    assert_true(wire_link_connect(&ep, ct, &l, err, sizeof(err)));
    assert_true(cloexec(wire_link_fd(l)));
    assert_int_equal(wire_frame_write(l, (const uint8_t *)"ping", 4),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read(l, 65536, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "ping", 4);
    free(buf);
    wire_link_close(l);
    server_stop(&s);
    assert_true(s.ok);
    assert_true(s.peer.tls);
    assert_int_equal(s.peer.uid, -1);
    assert_non_null(strstr(s.peer.cert_subject, "CN=app-1"));
    assert_int_equal(strlen(s.peer.cert_sha256), 64);
    assert_non_null(strstr(s.peer.addr, "tls:127.0.0.1:"));
    wire_tls_free(ct);
}

/* The server refuses what the client presents; the client's first read
 * fails. */
static void refused_client(const char *cert, const char *key,
                           const char *expect)
{
    struct tls_server s;
    struct config cfg;
    struct config_endpoint ep;
    wire_tls_t *ct;
    wire_link_t *l = NULL;
    uint8_t *buf;
    size_t len;
    char err[256];

    server_start(&s, "server.pem", "server.key");
    tls_conf(&cfg, cert, key, "ca.pem");
    assert_true(wire_tls_client_new(&cfg, &ct, err, sizeof(err)));
    tls_ep(&ep, "127.0.0.1", s.port);
    /* TLS 1.3: the client's handshake ends before the server has judged
     * the client's certificate; the refusal arrives on the first read. */
    if (wire_link_connect(&ep, ct, &l, err, sizeof(err))) {
        wire_frame_write(l, (const uint8_t *)"ping", 4);
        assert_int_equal(wire_frame_read(l, 65536, &buf, &len), WIRE_IO_ERROR);
        wire_link_close(l);
    }
    server_stop(&s);
    assert_false(s.ok);
    assert_non_null(strstr(s.err, expect));
    wire_tls_free(ct);
}

static void test_tls_other_ca_client(void **state)
{
    (void)state;
    refused_client("rogue.pem", "rogue.key", "certificate");
}

/* A client of our own making: no certificate, or TLS 1.2 at most. */
static void raw_client(unsigned port, bool with_cert, int max_version)
{
    char path[128];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    struct sockaddr_in sa;
    SSL *ssl;
    char c;
    int fd;

    assert_non_null(ctx);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (with_cert) {
        path_in(path, sizeof(path), "client.pem");
        assert_int_equal(
            SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM), 1);
        path_in(path, sizeof(path), "client.key");
        assert_int_equal(
            SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM), 1);
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) {
        SSL_write(ssl, "\0\0\0\0", 4);
        assert_true(SSL_read(ssl, &c, 1) <= 0);
    }
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
}

static void test_tls_no_client_cert(void **state)
{
    struct tls_server s;

    (void)state;
    server_start(&s, "server.pem", "server.key");
    raw_client(s.port, false, TLS1_3_VERSION);
    server_stop(&s);
    assert_false(s.ok);
    assert_non_null(strstr(s.err, "TLS handshake"));
}

static void test_tls12_refused(void **state)
{
    struct tls_server s;

    (void)state;
    /* With a good certificate, still refused: the version alone. */
    server_start(&s, "server.pem", "server.key");
    raw_client(s.port, true, TLS1_2_VERSION);
    server_stop(&s);
    assert_false(s.ok);
    assert_non_null(strstr(s.err, "TLS handshake"));
}

static void test_tls_client_checks_server(void **state)
{
    struct tls_server s;
    struct config cfg;
    struct config_endpoint ep;
    wire_tls_t *ct;
    wire_link_t *l = NULL;
    char err[256];

    (void)state;
    tls_conf(&cfg, "client.pem", "client.key", "ca.pem");
    assert_true(wire_tls_client_new(&cfg, &ct, err, sizeof(err)));
    /* A server under another CA. */
    server_start(&s, "rogue-server.pem", "rogue-server.key");
    tls_ep(&ep, "127.0.0.1", s.port);
    assert_false(wire_link_connect(&ep, ct, &l, err, sizeof(err)));
    assert_null(l);
    assert_non_null(strstr(err, "certificate"));
    server_stop(&s);
    /* Our CA's server, dialled by a name its certificate does not hold. */
    server_start(&s, "server.pem", "server.key");
    tls_ep(&ep, "localhost", s.port);
    assert_false(wire_link_connect(&ep, ct, &l, err, sizeof(err)));
    assert_null(l);
    assert_non_null(strstr(err, "certificate"));
    server_stop(&s);
    wire_tls_free(ct);
}

static void test_tls_contexts(void **state)
{
    struct config cfg;
    wire_tls_t *t = (wire_tls_t *)1;
    char err[256];

    (void)state;
    config_defaults(&cfg);
    assert_false(wire_tls_server_new(&cfg, &t, err, sizeof(err)));
    assert_null(t);
    assert_non_null(strstr(err, "tls_cert"));
    /* A key that is not the certificate's. */
    tls_conf(&cfg, "server.pem", "client.key", "ca.pem");
    assert_false(wire_tls_server_new(&cfg, &t, err, sizeof(err)));
    assert_non_null(strstr(err, "tls_key"));
    tls_conf(&cfg, "server.pem", "server.key", "missing.pem");
    assert_false(wire_tls_client_new(&cfg, &t, err, sizeof(err)));
    assert_non_null(strstr(err, "tls_ca"));
}

static void test_tls_frames(void **state)
{
    struct tls_server s;
    struct config cfg;
    struct config_endpoint ep;
    wire_tls_t *ct;
    wire_link_t *l;
    uint8_t *buf, *big;
    size_t len, n = 60000;
    char err[256];

    (void)state;
    server_start(&s, "server.pem", "server.key");
    tls_conf(&cfg, "client.pem", "client.key", "ca.pem");
    assert_true(wire_tls_client_new(&cfg, &ct, err, sizeof(err)));
    tls_ep(&ep, "127.0.0.1", s.port);
    assert_true(wire_link_connect(&ep, ct, &l, err, sizeof(err)));
    /* Past one TLS record (the header goes separately). */
    big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 13);
    assert_int_equal(wire_frame_write(l, big, n), WIRE_IO_OK);
    assert_int_equal(wire_frame_read(l, 65536, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, n);
    assert_memory_equal(buf, big, n);
    free(buf);
    /* The echo of a frame over our own limit: refused on the header. */
    assert_int_equal(wire_frame_write(l, big, n), WIRE_IO_OK);
    assert_int_equal(wire_frame_read(l, n - 1, &buf, &len), WIRE_IO_TOO_BIG);
    assert_null(buf);
    free(big);
    wire_link_close(l);
    server_stop(&s);
    assert_true(s.ok);
    wire_tls_free(ct);
}

/* Polling on TLS: the first byte of a record is waited for by polling
 * without taking it (OpenSSL reads it), frames arrive whole, a frame of
 * several records and two frames sent at once (the second already in
 * OpenSSL's buffer) too. */
static void test_tls_spin(void **state)
{
    struct tls_server s;
    struct config cfg;
    struct config_endpoint ep;
    wire_spin_stats_t st;
    wire_tls_t *ct;
    wire_link_t *l;
    uint8_t *buf, *big;
    size_t len, n = 40000;
    unsigned cap;
    char err[256];

    (void)state;
    room_file(1);
    wire_spin_peak(NULL, &cap);
    server_start(&s, "server.pem", "server.key");
    tls_conf(&cfg, "client.pem", "client.key", "ca.pem");
    assert_true(wire_tls_client_new(&cfg, &ct, err, sizeof(err)));
    tls_ep(&ep, "127.0.0.1", s.port);
    assert_true(wire_link_connect(&ep, ct, &l, err, sizeof(err)));
    wire_link_set_spin(l, 200);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(wire_frame_write(l, (const uint8_t *)"ping", 4),
                         WIRE_IO_OK);
        assert_int_equal(wire_frame_read(l, 65536, &buf, &len), WIRE_IO_OK);
        assert_int_equal(len, 4);
        assert_memory_equal(buf, "ping", 4);
        free(buf);
    }
    big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 7);
    assert_int_equal(wire_frame_write(l, big, n), WIRE_IO_OK);
    assert_int_equal(wire_frame_write(l, (const uint8_t *)"two", 3),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read(l, 65536, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, n);
    assert_memory_equal(buf, big, n);
    free(buf);
    assert_int_equal(wire_frame_read(l, 65536, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "two", 3);
    free(buf);
    free(big);
    wire_link_spin_stats(l, &st);
    if (cap == 0) {
        assert_int_equal(st.spins, 0);
    } else {
        assert_true(st.spins >= 1);
        assert_true(st.spins + st.skipped <= 22);
    }
    wire_link_close(l);
    server_stop(&s);
    assert_true(s.ok);
    wire_tls_free(ct);
    wire_spin_tune(NULL, true);
}

/* Over TLS: the reply comes after the deadline; the record is never
 * read, and closing sends nothing more into the stream. */
static void test_tls_deadline(void **state)
{
    struct tls_server s;
    struct config cfg;
    struct config_endpoint ep;
    wire_tls_t *ct;
    wire_link_t *l;
    uint8_t *buf;
    size_t len;
    uint64_t t0, dt;
    char err[256];

    (void)state;
    server_start(&s, "server.pem", "server.key");
    s.late_ms = 800;
    tls_conf(&cfg, "client.pem", "client.key", "ca.pem");
    assert_true(wire_tls_client_new(&cfg, &ct, err, sizeof(err)));
    tls_ep(&ep, "127.0.0.1", s.port);
    assert_true(wire_link_connect(&ep, ct, &l, err, sizeof(err)));
    wire_link_set_spin(l, WIRE_SPIN_MAX_US);
    wire_link_set_deadline(l, 300);
    t0 = ms_now();
    assert_int_equal(wire_frame_write(l, (const uint8_t *)"ping", 4),
                     WIRE_IO_OK);
    assert_int_equal(wire_frame_read(l, 65536, &buf, &len), WIRE_IO_ERROR);
    assert_true(wire_link_timed_out(l));
    dt = ms_now() - t0;
    assert_true(dt >= 290 && dt < 2000);
    usleep(800 * 1000); /* the late reply is there now */
    wire_link_set_deadline(l, 0);
    assert_int_equal(wire_frame_read(l, 65536, &buf, &len), WIRE_IO_ERROR);
    assert_int_equal(wire_frame_write(l, (const uint8_t *)"next", 4),
                     WIRE_IO_ERROR);
    wire_link_close(l);
    server_stop(&s);
    assert_true(s.ok);
    wire_tls_free(ct);
}

/* Pieces over TLS: small ones gathered, a large one from where it lies,
 * the same payload at the other end. */
/* A TLS server thread whose link has io_timeout: it reads one frame
 * (then a second one when the first came) and says how long it took. */
struct tls_io {
    struct tls_server s;
    bool write; /* the server writes 1 MiB frames until one fails */
    wire_io_t r1, r2;
    bool timed_out;
    uint64_t ms;
};

/* 1 MiB frames to a peer that reads none: r1 the last write's result,
 * ms how long it took. */
static void tls_io_write(struct tls_io *t, wire_link_t *l)
{
    size_t n = 1u << 20;
    uint8_t *big = calloc(1, n);

    t->r1 = WIRE_IO_OK;
    if (big == NULL)
        return;
    for (int i = 0; i < 64 && t->r1 == WIRE_IO_OK; i++) {
        uint64_t t0 = ms_now();
        t->r1 = wire_frame_write(l, big, n);
        t->ms = ms_now() - t0;
    }
    free(big);
}

static void *tls_io_main(void *arg)
{
    struct tls_io *t = arg;
    wire_link_t *l;
    uint8_t *buf;
    size_t len;
    uint64_t t0;
    int fd = accept(t->s.ls, NULL, NULL);

    t->s.ok = wire_link_accept(fd, t->s.tls, &l, &t->s.peer, t->s.err,
                               sizeof(t->s.err));
    if (!t->s.ok)
        return NULL;
    wire_link_set_spin(l, 50);
    wire_link_set_io_timeout(l, IO_MS);
    if (t->write) {
        tls_io_write(t, l);
        t->timed_out = wire_link_timed_out(l);
        wire_link_close(l);
        return NULL;
    }
    t0 = ms_now();
    t->r1 = wire_frame_read(l, 65536, &buf, &len);
    if (t->r1 == WIRE_IO_OK) {
        free(buf);
        t->r2 = wire_frame_read(l, 65536, &buf, &len);
        if (t->r2 == WIRE_IO_OK)
            free(buf);
    }
    t->ms = ms_now() - t0;
    t->timed_out = wire_link_timed_out(l);
    wire_link_close(l);
    return NULL;
}

static void tls_io_run(struct tls_io *t, int how)
{
    struct config cfg;
    struct config_endpoint ep;
    wire_tls_t *ct;
    wire_link_t *l;
    char err[256];
    static const uint8_t rec[] = {0x17, 0x03, 0x03, 0x00, 0x40, 1, 2};

    memset(t, 0, sizeof(*t));
    t->write = how == 2;
    tls_conf(&cfg, "server.pem", "server.key", "ca.pem");
    assert_true(wire_tls_server_new(&cfg, &t->s.tls, err, sizeof(err)));
    tcp_listener(&t->s);
    assert_int_equal(pthread_create(&t->s.th, NULL, tls_io_main, t), 0);
    tls_conf(&cfg, "client.pem", "client.key", "ca.pem");
    assert_true(wire_tls_client_new(&cfg, &ct, err, sizeof(err)));
    tls_ep(&ep, "127.0.0.1", t->s.port);
    assert_true(wire_link_connect(&ep, ct, &l, err, sizeof(err)));
    if (how == 0) {
        /* part of a TLS record, then silence */
        assert_int_equal(send(wire_link_fd(l), rec, sizeof(rec), 0),
                         (ssize_t)sizeof(rec));
    } else if (how == 2) {
        /* read nothing: the server's writes must end by themselves */
    } else {
        /* a frame, idle for 3 x the bound, another */
        assert_int_equal(wire_frame_write(l, (const uint8_t *)"a", 1),
                         WIRE_IO_OK);
        sleep_ms(3 * IO_MS);
        assert_int_equal(wire_frame_write(l, (const uint8_t *)"b", 1),
                         WIRE_IO_OK);
    }
    pthread_join(t->s.th, NULL);
    wire_link_close(l);
    close(t->s.ls);
    wire_tls_free(t->s.tls);
    wire_tls_free(ct);
    assert_true(t->s.ok);
}

/* io_timeout on TLS: a record begun and left ends the read within the
 * bound; an idle link between frames is not bounded; a write to a peer
 * that reads nothing ends within the bound (and the close after it does
 * not block on a close_notify). */
static void test_tls_io_timeout(void **state)
{
    struct tls_io t;

    (void)state;
    tls_io_run(&t, 0);
    assert_int_equal(t.r1, WIRE_IO_ERROR);
    assert_true(t.timed_out);
    if (t.ms + 20 < IO_MS || t.ms > IO_MS + IO_SLACK_MS)
        fail_msg("half a record ended after %lu ms", (unsigned long)t.ms);
    tls_io_run(&t, 1);
    assert_int_equal(t.r1, WIRE_IO_OK);
    assert_int_equal(t.r2, WIRE_IO_OK);
    assert_false(t.timed_out);
    tls_io_run(&t, 2);
    assert_int_equal(t.r1, WIRE_IO_ERROR);
    assert_true(t.timed_out);
    if (t.ms + 20 < IO_MS || t.ms > IO_MS + IO_SLACK_MS)
        fail_msg("a TLS write to a peer that reads nothing took %lu ms",
                 (unsigned long)t.ms);
}

static void test_tls_writev(void **state)
{
    struct tls_server s;
    struct config cfg;
    struct config_endpoint ep;
    wire_tls_t *ct;
    wire_link_t *l;
    uint8_t *buf, *big, small[5] = {9, 8, 7, 6, 5};
    size_t len, n = 40000;
    struct iovec iov[5];
    char err[256];

    (void)state;
    server_start(&s, "server.pem", "server.key");
    tls_conf(&cfg, "client.pem", "client.key", "ca.pem");
    assert_true(wire_tls_client_new(&cfg, &ct, err, sizeof(err)));
    tls_ep(&ep, "127.0.0.1", s.port);
    assert_true(wire_link_connect(&ep, ct, &l, err, sizeof(err)));
    big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 5);
    iov[0].iov_base = small;
    iov[0].iov_len = sizeof(small);
    iov[1].iov_base = big;
    iov[1].iov_len = n;
    iov[2].iov_base = small;
    iov[2].iov_len = 2;
    iov[3].iov_base = big; /* just under a record with what precedes */
    iov[3].iov_len = 16380;
    iov[4].iov_base = small;
    iov[4].iov_len = 1;
    /* no descriptor over TLS: refused, nothing written */
    assert_int_equal(wire_frame_writev_fd(l, iov, 5, 0), WIRE_IO_ERROR);
    assert_int_equal(wire_frame_writev(l, iov, 5), WIRE_IO_OK);
    assert_int_equal(wire_frame_read(l, 65536, &buf, &len), WIRE_IO_OK);
    assert_int_equal(len, 5 + n + 2 + 16380 + 1);
    assert_memory_equal(buf, small, 5);
    assert_memory_equal(buf + 5, big, n);
    assert_memory_equal(buf + 5 + n, small, 2);
    assert_memory_equal(buf + 7 + n, big, 16380);
    assert_int_equal(buf[len - 1], 9);
    free(buf);
    free(big);
    wire_link_close(l);
    server_stop(&s);
    assert_true(s.ok);
    wire_tls_free(ct);
}

/* Signals while a connect() waits: SO_SNDTIMEO makes the kernel answer
 * EINTR even under SA_RESTART. An application with a periodic timer
 * (a profiler, SIGALRM) must not stretch the bound without end (each
 * retry started the whole bound again), and a TCP connect that goes
 * well must not fail for them. */
static atomic_bool sig_run;
static atomic_uint sig_count;

static void sig_noop(int sig)
{
    (void)sig;
    atomic_fetch_add(&sig_count, 1);
}

struct sig_pest {
    pthread_t target;
    unsigned gap_ms, max_ms;
};

static void *sig_pest_main(void *arg)
{
    struct sig_pest *p = arg;

    for (unsigned t = 0; atomic_load(&sig_run) && t < p->max_ms;
         t += p->gap_ms) {
        pthread_kill(p->target, SIGUSR1);
        sleep_ms(p->gap_ms);
    }
    return NULL;
}

/* Frees the full accept queue after a while, then serves TLS. */
static void *tcp_late_accept_main(void *arg)
{
    struct tls_server *s = arg;
    int filler;

    sleep_ms(300);
    filler = accept(s->ls, NULL, NULL);
    close(filler);
    return tls_server_main(s);
}

static void test_connect_signals(void **state)
{
    struct sigaction sa, old;
    struct sig_pest pest = {
        .target = pthread_self(), .gap_ms = 40, .max_ms = 8000};
    pthread_t th, srv;
    struct config_endpoint ep;
    struct sockaddr_un su;
    struct sockaddr_in si;
    struct tls_server s;
    struct config cfg;
    wire_tls_t *ct;
    wire_link_t *l = NULL;
    uint64_t t0, dt;
    char err[256] = "";
    int ls = unix_listener(&ep), filler[64], nf = 0, tf;

    (void)state;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sig_noop;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);

    /* unix: a full backlog, signals every 40 ms, a 400 ms bound (under 3
     * s allowed for a loaded machine; without the fix it lasted as long
     * as the signals did: 8 s) */
    memset(&su, 0, sizeof(su));
    su.sun_family = AF_UNIX;
    memcpy(su.sun_path, ep.path, strlen(ep.path) + 1);
    while (nf < 64) {
        int fs = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

        assert_true(fs >= 0);
        if (connect(fs, (struct sockaddr *)&su, sizeof(su)) != 0) {
            close(fs);
            break;
        }
        filler[nf++] = fs;
    }
    assert_true(nf < 64);
    atomic_store(&sig_count, 0);
    atomic_store(&sig_run, true);
    assert_int_equal(pthread_create(&th, NULL, sig_pest_main, &pest), 0);
    t0 = ms_now();
    assert_false(wire_link_connect_timed(&ep, NULL, 400, &l, err, sizeof(err)));
    dt = ms_now() - t0;
    atomic_store(&sig_run, false);
    pthread_join(th, NULL);
    assert_true(atomic_load(&sig_count) >= 3); /* they did interrupt it */
    assert_true(dt >= 350 && dt < 3000);
    assert_non_null(strstr(err, "timed out"));
    for (int i = 0; i < nf; i++)
        close(filler[i]);
    close(ls);

    /* TCP: the accept queue is full (backlog 0 and one connection in
     * it), so the SYN is dropped and sent again after about 1 s; the
     * queue frees after 300 ms. Signals land meanwhile: the connect
     * must still succeed (its bound is 10 s: on a loaded machine the
     * queue may free after the first retry, and the next is 2 s on). */
    memset(&s, 0, sizeof(s));
    tls_conf(&cfg, "server.pem", "server.key", "ca.pem");
    assert_true(wire_tls_server_new(&cfg, &s.tls, err, sizeof(err)));
    tcp_listener(&s);
    assert_int_equal(listen(s.ls, 0), 0);
    memset(&si, 0, sizeof(si));
    si.sin_family = AF_INET;
    si.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    si.sin_port = htons((uint16_t)s.port);
    tf = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(tf, (struct sockaddr *)&si, sizeof(si)), 0);
    tls_conf(&cfg, "client.pem", "client.key", "ca.pem");
    assert_true(wire_tls_client_new(&cfg, &ct, err, sizeof(err)));
    tls_ep(&ep, "127.0.0.1", s.port);
    /* first nobody frees it: the 400 ms bound holds under the signals */
    atomic_store(&sig_count, 0);
    atomic_store(&sig_run, true);
    assert_int_equal(pthread_create(&th, NULL, sig_pest_main, &pest), 0);
    t0 = ms_now();
    assert_false(wire_link_connect_timed(&ep, ct, 400, &l, err, sizeof(err)));
    dt = ms_now() - t0;
    atomic_store(&sig_run, false);
    pthread_join(th, NULL);
    assert_true(atomic_load(&sig_count) >= 3);
    assert_true(dt >= 350 && dt < 3000);
    assert_non_null(strstr(err, "timed out"));
    /* then it frees after 300 ms: the signals do not fail the connect */
    assert_int_equal(pthread_create(&srv, NULL, tcp_late_accept_main, &s), 0);
    atomic_store(&sig_count, 0);
    atomic_store(&sig_run, true);
    assert_int_equal(pthread_create(&th, NULL, sig_pest_main, &pest), 0);
    assert_true(wire_link_connect_timed(&ep, ct, 10000, &l, err, sizeof(err)));
    atomic_store(&sig_run, false);
    pthread_join(th, NULL);
    assert_true(atomic_load(&sig_count) >= 3);
    assert_int_equal(wire_frame_write(l, (const uint8_t *)"ping", 4),
                     WIRE_IO_OK);
    {
        uint8_t *buf;
        size_t len;

        assert_int_equal(wire_frame_read(l, 65536, &buf, &len), WIRE_IO_OK);
        assert_int_equal(len, 4);
        free(buf);
    }
    wire_link_close(l);
    close(tf);
    pthread_join(srv, NULL);
    close(s.ls);
    wire_tls_free(s.tls);
    assert_true(s.ok);
    wire_tls_free(ct);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unix_frames),
        cmocka_unit_test(test_unix_writev),
        cmocka_unit_test(test_unix_pass_fd),
        cmocka_unit_test(test_unix_too_big),
        cmocka_unit_test(test_unix_truncated),
        cmocka_unit_test(test_unix_claim_vs_memory),
        cmocka_unit_test(test_unix_kept),
        cmocka_unit_test(test_unix_errors),
        cmocka_unit_test(test_unix_spin),
        cmocka_unit_test(test_unix_spin_cap),
        cmocka_unit_test(test_unix_spin_room),
        cmocka_unit_test(test_unix_spin_stall),
        cmocka_unit_test(test_unix_readahead),
        cmocka_unit_test(test_unix_io_timeout),
        cmocka_unit_test(test_unix_expect_within),
        cmocka_unit_test(test_unix_write_timeout),
        cmocka_unit_test(test_unix_deadline),
        cmocka_unit_test(test_unix_deadline_write),
        cmocka_unit_test(test_unix_connect_bounded),
        cmocka_unit_test(test_fork_closes_client_links),
        cmocka_unit_test(test_fork_spares_reused_number),
        cmocka_unit_test(test_tls_contexts),
        cmocka_unit_test(test_tls_mutual),
        cmocka_unit_test(test_tls_frames),
        cmocka_unit_test(test_tls_writev),
        cmocka_unit_test(test_tls_spin),
        cmocka_unit_test(test_tls_io_timeout),
        cmocka_unit_test(test_tls_deadline),
        cmocka_unit_test(test_tls_other_ca_client),
        cmocka_unit_test(test_tls_no_client_cert),
        cmocka_unit_test(test_tls12_refused),
        cmocka_unit_test(test_tls_client_checks_server),
        cmocka_unit_test(test_connect_signals),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
