/*
 * test_backend.c - the backend seam: backend_open's choice, the vtable's
 * completeness, the embedded backend answering through the seam, and what
 * a connection re-made after another one closed sees (the contract a
 * remote backend keeps across a daemon restart).
 */
#include "config.h"

#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/backend_impl.h"
#include "wire/server.h"
#include "wire/transport.h"

#define PW(s) (const uint8_t *)(s), strlen(s)

struct fixture {
    char dir[64];
    struct config cfg;
    backend_t *be;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-backend-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    config_defaults(&f->cfg);
    snprintf(f->cfg.store, sizeof(f->cfg.store), "%s/store", f->dir);
    f->cfg.kdf_iterations = 1000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    backend_close(f->be);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* servers names nimbusd: the remote backend, which connects only when a
 * connection is opened (nothing listens here: CKR_DEVICE_REMOVED, the HSM
 * is away), and no local store is opened (or made) in its place. */
static void test_open_servers_remote(void **state)
{
    struct fixture *f = *state;
    backend_conn_t *conn = (backend_conn_t *)f;
    hsm_token_info_t ti;
    CK_MECHANISM_TYPE *list = NULL;
    size_t n = 1;
    struct stat st;

    assert_null(config_parse_endpoint("unix:/nonexistent/nimbusd.sock",
                                      &f->cfg.servers[0]));
    f->cfg.nservers = 1;
    assert_int_equal(backend_open(&f->cfg, &f->be), CKR_OK);
    assert_string_equal(backend_kind(f->be), "remote");
    assert_int_equal(backend_conn_open(f->be, &conn), CKR_DEVICE_REMOVED);
    assert_null(conn);
    assert_int_equal(backend_token_info(f->be, NULL, &ti), CKR_DEVICE_REMOVED);
    assert_int_equal(backend_mech_list(f->be, &list, &n), CKR_DEVICE_REMOVED);
    assert_null(list);
    assert_int_equal(n, 0);
    assert_int_equal(stat(f->cfg.store, &st), -1);
}

/* TLS material that cannot be read: CKR_DEVICE_ERROR at open, nothing
 * made. */
static void test_open_servers_bad_tls(void **state)
{
    struct fixture *f = *state;

    assert_null(config_parse_endpoint("tls:127.0.0.1:1", &f->cfg.servers[0]));
    f->cfg.nservers = 1;
    snprintf(f->cfg.tls_cert, sizeof(f->cfg.tls_cert), "%s/none.pem", f->dir);
    snprintf(f->cfg.tls_key, sizeof(f->cfg.tls_key), "%s/none.key", f->dir);
    snprintf(f->cfg.tls_ca, sizeof(f->cfg.tls_ca), "%s/none-ca.pem", f->dir);
    f->be = (backend_t *)&f->cfg; /* must be overwritten */
    assert_int_equal(backend_open(&f->cfg, &f->be), CKR_DEVICE_ERROR);
    assert_null(f->be);
}

/* put_be into a blob under construction */
static size_t put(uint8_t *b, size_t off, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[off + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return off + n;
}

/*
 * The remote backend decodes an array attribute's blob from the server
 * itself (it links no core), and the server is not trusted: a well-formed
 * blob comes back whole; a count past the bytes, a length past the end,
 * a truncated entry or trailing bytes are CKR_GENERAL_ERROR with nothing
 * handed out.
 */
static void test_remote_template_parse(void **state)
{
    struct fixture *f = *state;
    uint8_t b[64];
    hsm_attr_t *a = NULL;
    size_t n = 0, len;

    assert_null(config_parse_endpoint("unix:/nonexistent/nimbusd.sock",
                                      &f->cfg.servers[0]));
    f->cfg.nservers = 1;
    assert_int_equal(backend_open(&f->cfg, &f->be), CKR_OK);

    /* two attributes: CKA_ENCRYPT = 1, CKA_LABEL = "ab" */
    len = put(b, 0, 2, 4);
    len = put(b, len, CKA_ENCRYPT, 8);
    len = put(b, len, 1, 4);
    b[len++] = 1;
    len = put(b, len, CKA_LABEL, 8);
    len = put(b, len, 2, 4);
    b[len++] = 'a';
    b[len++] = 'b';
    assert_int_equal(backend_template_parse(f->be, b, len, &a, &n), CKR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(a[0].type, CKA_ENCRYPT);
    assert_int_equal(a[0].len, 1);
    assert_int_equal(a[0].value[0], 1);
    assert_int_equal(a[1].type, CKA_LABEL);
    assert_memory_equal(a[1].value, "ab", 2);
    backend_attrs_free(f->be, a, n);
    free(a);

    /* hostile: trailing byte, truncated value, truncated entry, a count
     * the bytes cannot hold, a length of 4 GiB, a blob shorter than the
     * count */
    {
        size_t bad_len[] = {len + 1, len - 1, len - 3, 4, 3};

        b[len] = 0;
        for (size_t i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++) {
            a = (hsm_attr_t *)b;
            n = 7;
            assert_int_equal(
                backend_template_parse(f->be, b, bad_len[i], &a, &n),
                CKR_GENERAL_ERROR);
            assert_null(a);
            assert_int_equal(n, 0);
        }
    }
    put(b, 0, 0xffffffffu, 4);
    assert_int_equal(backend_template_parse(f->be, b, len, &a, &n),
                     CKR_GENERAL_ERROR);
    put(b, 0, 2, 4);
    put(b, 4 + 8, 0xffffffffu, 4);
    assert_int_equal(backend_template_parse(f->be, b, len, &a, &n),
                     CKR_GENERAL_ERROR);
    assert_null(a);
    /* empty: nothing */
    assert_int_equal(backend_template_parse(f->be, b, 0, &a, &n), CKR_OK);
    assert_null(a);
    assert_int_equal(n, 0);
}

/* The completeness check finds a missing entry wherever it is. */
static void test_ops_complete(void **state)
{
    struct backend_ops ops;

    (void)state;
    assert_true(backend_ops_complete(&backend_embedded_ops));
    assert_true(backend_ops_complete(&backend_remote_ops));
    ops = backend_embedded_ops;
    ops.kind = NULL;
    assert_false(backend_ops_complete(&ops));
    ops = backend_embedded_ops;
    ops.close = NULL; /* the first entry */
    assert_false(backend_ops_complete(&ops));
    ops = backend_embedded_ops;
    ops.msg_abort = NULL;
    assert_false(backend_ops_complete(&ops));
    ops = backend_embedded_ops;
    ops.object_set_trusted = NULL; /* the last one */
    assert_false(backend_ops_complete(&ops));
    assert_false(backend_ops_complete(NULL));
}

/* Activates with CO password "copass1" (on conn) and creates CU alice. */
static void activate(backend_t *be, backend_conn_t *conn)
{
    assert_int_equal(backend_init_token(be, NULL, PW("copass1"), "seam"),
                     CKR_OK);
    assert_int_equal(backend_login(conn, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(backend_init_pin(conn, "alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(backend_logout(conn), CKR_OK);
}

static CK_RV make_data(backend_conn_t *c, hsm_sid_t sid, bool token,
                       hsm_oid_t *oid)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL tok = token ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &tok, sizeof(tok)},
        {CKA_LABEL, "seam", 4},
    };

    return backend_object_create(c, sid, t, 3, oid);
}

/* The embedded backend answers through the seam; two connections have
 * their own logins. */
static void test_embedded_calls(void **state)
{
    struct fixture *f = *state;
    backend_conn_t *a = NULL, *b = NULL;
    hsm_token_info_t ti;
    hsm_user_info_t *users = NULL;
    CK_MECHANISM_TYPE *mechs = NULL;
    hsm_mech_info_t mi;
    hsm_attr_t got[1];
    CK_ATTRIBUTE_TYPE label = CKA_LABEL;
    hsm_oid_t oid, *found = NULL;
    hsm_sid_t sid;
    hsm_uid_t uid = 0;
    uint8_t rnd[32] = {0}, zero[32] = {0};
    size_t n = 0;
    bool found_alice;

    assert_int_equal(backend_open(&f->cfg, &f->be), CKR_OK);
    assert_string_equal(backend_kind(f->be), "embedded");
    assert_int_equal(backend_conn_open(f->be, &a), CKR_OK);
    assert_int_equal(backend_conn_open(f->be, &b), CKR_OK);
    assert_int_equal(backend_token_info(f->be, a, &ti), CKR_OK);
    assert_false(ti.activated);
    activate(f->be, a);
    assert_int_equal(backend_token_info(f->be, NULL, &ti), CKR_OK);
    assert_true(ti.activated);
    assert_string_equal(ti.label, "seam");

    assert_int_equal(backend_login(b, HSM_LOGIN_USER, "alice", PW("alicepw1")),
                     CKR_OK);
    assert_int_equal(backend_conn_user_type(b, &uid), HSM_USER_CU);
    assert_true(uid != 0);
    assert_int_equal(backend_conn_user_type(a, NULL), HSM_USER_NONE);
    assert_int_equal(backend_user_list(b, &users, &n), CKR_OK);
    found_alice = false;
    for (size_t i = 0; i < n; i++)
        found_alice |=
            strcmp(users[i].name, "alice") == 0 && users[i].id == uid;
    assert_true(found_alice);
    free(users);

    assert_int_equal(backend_mech_list(f->be, &mechs, &n), CKR_OK);
    assert_true(n > 10);
    free(mechs);
    assert_int_equal(backend_mech_info(f->be, CKM_ECDSA, &mi), CKR_OK);
    assert_true((mi.flags & CKF_SIGN) != 0);
    assert_int_equal(backend_mech_info(f->be, 0x7ffffff0UL, &mi),
                     CKR_MECHANISM_INVALID);

    assert_int_equal(backend_session_open(b, true, &sid), CKR_OK);
    assert_int_equal(make_data(b, sid, true, &oid), CKR_OK);
    assert_int_equal(backend_object_get(b, sid, oid, &label, 1, got), CKR_OK);
    assert_int_equal(got[0].status, HSM_ATTR_OK);
    assert_int_equal(got[0].len, 4);
    assert_memory_equal(got[0].value, "seam", 4);
    backend_attrs_free(f->be, got, 1);
    assert_null(got[0].value);
    assert_int_equal(backend_object_find(b, sid, NULL, 0, &found, &n), CKR_OK);
    assert_int_equal(n, 1);
    assert_true(found[0] == oid);
    free(found);
    assert_int_equal(backend_random(b, sid, rnd, sizeof(rnd)), CKR_OK);
    assert_memory_not_equal(rnd, zero, sizeof(rnd));

    /* no cluster in this process, whoever asks */
    {
        backend_cluster_t cs;

        memset(&cs, 0x5a, sizeof(cs));
        assert_int_equal(backend_cluster_status(b, &cs),
                         CKR_FUNCTION_NOT_SUPPORTED);
        assert_int_equal(cs.status.nnodes, 0); /* cleared */
        assert_int_equal(backend_cluster_add(b, 2, "127.0.0.1:21002"),
                         CKR_FUNCTION_NOT_SUPPORTED);
        assert_int_equal(backend_cluster_remove(a, 2),
                         CKR_FUNCTION_NOT_SUPPORTED);
        assert_int_equal(backend_cluster_transfer(a, 2),
                         CKR_FUNCTION_NOT_SUPPORTED);
    }

    /* a's session ids are its own: b's session is not one of them */
    assert_int_equal(backend_session_close(a, sid), CKR_SESSION_HANDLE_INVALID);
    assert_int_equal(backend_session_close(b, sid), CKR_OK);
    backend_conn_close(a);
    backend_conn_close(b);
    backend_conn_close(NULL);
}

/* What a re-made connection sees after the old one ended: nobody logged
 * in, the old session ids and session objects gone, token objects still
 * there under the same ids. */
static void test_conn_remade(void **state)
{
    struct fixture *f = *state;
    backend_conn_t *a = NULL, *c = NULL;
    hsm_attr_t got[1];
    CK_ATTRIBUTE_TYPE label = CKA_LABEL;
    hsm_oid_t tok, sess;
    hsm_sid_t sid, sid2;

    assert_int_equal(backend_open(&f->cfg, &f->be), CKR_OK);
    assert_int_equal(backend_conn_open(f->be, &a), CKR_OK);
    activate(f->be, a);
    assert_int_equal(backend_login(a, HSM_LOGIN_USER, "alice", PW("alicepw1")),
                     CKR_OK);
    assert_int_equal(backend_session_open(a, true, &sid), CKR_OK);
    assert_int_equal(make_data(a, sid, true, &tok), CKR_OK);
    assert_int_equal(make_data(a, sid, false, &sess), CKR_OK);
    backend_conn_close(a);

    assert_int_equal(backend_conn_open(f->be, &c), CKR_OK);
    assert_int_equal(backend_conn_user_type(c, NULL), HSM_USER_NONE);
    assert_int_equal(backend_session_close(c, sid), CKR_SESSION_HANDLE_INVALID);
    assert_int_equal(backend_login(c, HSM_LOGIN_USER, "alice", PW("alicepw1")),
                     CKR_OK);
    assert_int_equal(backend_session_open(c, false, &sid2), CKR_OK);
    assert_int_equal(backend_object_get(c, sid2, tok, &label, 1, got), CKR_OK);
    backend_attrs_free(f->be, got, 1);
    assert_int_equal(backend_object_get(c, sid2, sess, &label, 1, got),
                     CKR_OBJECT_HANDLE_INVALID);
    backend_conn_close(c);
}

/* Serialized templates are parsed by the backend that made them. */
static void test_template_parse(void **state)
{
    struct fixture *f = *state;
    /* u32 count 1, u64 CKA_LABEL (3), u32 length 2, "ab" */
    static const uint8_t blob[] = {0, 0, 0, 1, 0, 0, 0, 0,   0,
                                   0, 0, 3, 0, 0, 0, 2, 'a', 'b'};
    hsm_attr_t *attrs = NULL;
    size_t n = 9;

    assert_int_equal(backend_open(&f->cfg, &f->be), CKR_OK);
    assert_int_equal(backend_template_parse(f->be, blob, 0, &attrs, &n),
                     CKR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(
        backend_template_parse(f->be, blob, sizeof(blob), &attrs, &n), CKR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(attrs[0].type, CKA_LABEL);
    assert_int_equal(attrs[0].len, 2);
    assert_memory_equal(attrs[0].value, "ab", 2);
    backend_attrs_free(f->be, attrs, n);
    free(attrs);
    /* one byte short: the length says 2, one is there */
    assert_int_not_equal(
        backend_template_parse(f->be, blob, sizeof(blob) - 1, &attrs, &n),
        CKR_OK);
}

/* ------------------------------------- a nimbusd in a thread, polls counted */

/* The test links with --wrap=poll: every poll() of the remote backend is
 * counted here. */
int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);
static atomic_uint polls;

int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    atomic_fetch_add(&polls, 1);
    return __real_poll(fds, n, timeout);
}

#define MINI_LINKS 8

struct mini {
    hsm_t *hsm;
    wire_server_t *srv;
    int ls;
    pthread_t th;
    pthread_mutex_t lock;
    int fds[MINI_LINKS]; /* accepted sockets, to cut them off */
    pthread_t chans[MINI_LINKS];
    size_t n;
};

struct mini_chan {
    struct mini *m;
    int fd;
};

static void *mini_chan_main(void *arg)
{
    struct mini_chan *c = arg;
    wire_link_t *l;
    wire_peer_t peer;
    wire_chan_t *wc;
    char err[128];
    uint8_t *req, *resp;
    size_t len, resp_len;

    if (!wire_link_accept(c->fd, NULL, &l, &peer, err, sizeof(err))) {
        free(c);
        return NULL;
    }
    wc = wire_chan_new(c->m->srv, &peer);
    while (wc != NULL &&
           wire_frame_read(l, 1u << 20, &req, &len) == WIRE_IO_OK) {
        bool ok = wire_chan_handle(wc, req, len, &resp, &resp_len);
        free(req);
        if (resp != NULL && wire_frame_write(l, resp, resp_len) != WIRE_IO_OK)
            ok = false;
        free(resp);
        if (!ok)
            break;
    }
    wire_chan_free(wc);
    wire_link_close(l);
    free(c);
    return NULL;
}

static void *mini_main(void *arg)
{
    struct mini *m = arg;

    for (;;) {
        int fd = accept(m->ls, NULL, NULL);
        struct mini_chan *c;

        if (fd < 0)
            return NULL;
        c = malloc(sizeof(*c));
        pthread_mutex_lock(&m->lock);
        if (c == NULL || m->n == MINI_LINKS) {
            pthread_mutex_unlock(&m->lock);
            free(c);
            close(fd);
            continue;
        }
        c->m = m;
        c->fd = fd;
        m->fds[m->n] = fd;
        if (pthread_create(&m->chans[m->n], NULL, mini_chan_main, c) != 0) {
            free(c);
            close(fd);
        } else {
            m->n++;
        }
        pthread_mutex_unlock(&m->lock);
    }
}

/* The daemon's server over f's store, listening on path. */
static void mini_start(struct mini *m, struct fixture *f, const char *path)
{
    struct sockaddr_un sa;

    memset(m, 0, sizeof(*m));
    assert_int_equal(pthread_mutex_init(&m->lock, NULL), 0);
    assert_int_equal(hsm_open(&f->cfg, &m->hsm), CKR_OK);
    assert_int_equal(wire_server_new(m->hsm, &f->cfg, &m->srv), CKR_OK);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    m->ls = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(m->ls >= 0);
    assert_int_equal(bind(m->ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(m->ls, 8), 0);
    assert_int_equal(pthread_create(&m->th, NULL, mini_main, m), 0);
}

/* The server goes away: every channel's socket is cut. */
static void mini_cut(struct mini *m)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++)
        shutdown(m->fds[i], SHUT_RDWR);
    pthread_mutex_unlock(&m->lock);
}

static void mini_stop(struct mini *m)
{
    shutdown(m->ls, SHUT_RDWR);
    pthread_join(m->th, NULL);
    close(m->ls);
    mini_cut(m);
    for (size_t i = 0; i < m->n; i++)
        pthread_join(m->chans[i], NULL);
    wire_server_free(m->srv);
    hsm_close(m->hsm);
    pthread_mutex_destroy(&m->lock);
}

static void sleep_ms(long ms)
{
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&d, NULL);
}

/*
 * backend_conn_lost polls an idle channel for a server that went away,
 * but not one whose last call ended less than a millisecond ago (a call
 * in a busy loop saves the system call; no server restarts that fast).
 * A server gone in that millisecond: the next call answers
 * CKR_DEVICE_REMOVED and the connection is then lost, as after the poll.
 */
static void test_remote_fresh_not_polled(void **state)
{
    struct fixture *f = *state;
    struct config cc;
    struct mini m;
    backend_conn_t *conn = NULL;
    char path[96];
    hsm_sid_t sid;
    unsigned before;
    bool skipped = false;

    snprintf(path, sizeof(path), "%s/d.sock", f->dir);
    mini_start(&m, f, path);
    config_defaults(&cc);
    assert_null(config_parse_endpoint("unix:/x", &cc.servers[0]));
    snprintf(cc.servers[0].path, sizeof(cc.servers[0].path), "%s", path);
    cc.nservers = 1;
    assert_int_equal(backend_open(&cc, &f->be), CKR_OK);
    assert_int_equal(backend_conn_open(f->be, &conn), CKR_OK);

    /* Right after a call: no poll (a loaded machine may take longer than
     * the millisecond now and then: some tries). */
    for (int i = 0; i < 20 && !skipped; i++) {
        assert_int_not_equal(backend_session_open(conn, false, &sid),
                             CKR_DEVICE_REMOVED);
        before = atomic_load(&polls);
        assert_false(backend_conn_lost(conn));
        skipped = atomic_load(&polls) == before;
    }
    assert_true(skipped);
    /* Idle for longer: polled, and alive. */
    sleep_ms(5);
    before = atomic_load(&polls);
    assert_false(backend_conn_lost(conn));
    assert_int_equal(atomic_load(&polls), before + 1);

    /* The server cut off while idle: the poll sees it. */
    assert_int_not_equal(backend_session_open(conn, false, &sid),
                         CKR_DEVICE_REMOVED);
    mini_cut(&m);
    sleep_ms(5);
    assert_true(backend_conn_lost(conn));
    backend_conn_close(conn);
    conn = NULL;

    /* Cut off right after a call, looked at at once: maybe not seen yet;
     * then the call says so and the connection is lost. */
    assert_int_equal(backend_conn_open(f->be, &conn), CKR_OK);
    assert_int_not_equal(backend_session_open(conn, false, &sid),
                         CKR_DEVICE_REMOVED);
    mini_cut(&m);
    if (!backend_conn_lost(conn)) {
        assert_int_equal(backend_session_open(conn, false, &sid),
                         CKR_DEVICE_REMOVED);
        assert_true(backend_conn_lost(conn));
    }
    backend_conn_close(conn);
    backend_close(f->be);
    f->be = NULL;
    mini_stop(&m);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_servers_remote),   T(test_open_servers_bad_tls),
        T(test_remote_template_parse), cmocka_unit_test(test_ops_complete),
        T(test_embedded_calls),        T(test_conn_remade),
        T(test_template_parse),        T(test_remote_fresh_not_polled),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
