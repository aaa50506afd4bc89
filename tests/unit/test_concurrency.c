/*
 * test_concurrency.c - the thread-safety contract of hsm.h ("Threads"), as
 * a hostile caller would test it: two calls on one session, a close during
 * a call, a connection closed under its calls, a logout under another
 * session's call, and threads that do all of it at once.
 *
 * A call is held inside the core deterministically through hsm_call_hook
 * (internal.h), which the gate runs once a call holds its session.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hsm/hsm.h"
#include "hsm/internal.h"

#define PW(s) (const uint8_t *)(s), strlen(s)
#define WAIT_S 10

struct fixture {
    char dir[64];
    struct config cfg;
    hsm_t *hsm;
    hsm_conn_t *conn;
    hsm_sid_t s1, s2;
};

/* ------------------------------------------------------------ the hook */

/* The next session call on (hold_conn, hold_sid) posts entered and waits
 * for release inside the core. */
static hsm_conn_t *hold_conn;
static hsm_sid_t hold_sid;
static int hold_armed;
static sem_t entered, released;

static void hold_hook(hsm_conn_t *conn, hsm_sid_t sid)
{
    if (conn != hold_conn || sid != hold_sid ||
        !__atomic_exchange_n(&hold_armed, 0, __ATOMIC_ACQ_REL))
        return;
    sem_post(&entered);
    while (sem_wait(&released) != 0 && errno == EINTR)
        ;
}

static void hold_arm(hsm_conn_t *conn, hsm_sid_t sid)
{
    hold_conn = conn;
    hold_sid = sid;
    __atomic_store_n(&hold_armed, 1, __ATOMIC_RELEASE);
}

/* 0 once the held call is inside the core; -1 after WAIT_S seconds (the
 * gate never ran the hook). */
static int hold_wait_entered(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_S;
    while (sem_timedwait(&entered, &ts) != 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ fixture */

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-conc-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    config_defaults(&f->cfg);
    snprintf(f->cfg.store, sizeof(f->cfg.store), "%s/store", f->dir);
    f->cfg.kdf_iterations = 1000;
    if (hsm_open(&f->cfg, &f->hsm) != CKR_OK ||
        hsm_conn_open(f->hsm, &f->conn) != CKR_OK ||
        hsm_init_token(f->hsm, NULL, PW("copass1"), "test") != CKR_OK ||
        hsm_login(f->conn, HSM_LOGIN_SO, NULL, PW("copass1")) != CKR_OK ||
        hsm_init_pin(f->conn, "alice", PW("alicepw1")) != CKR_OK ||
        hsm_logout(f->conn) != CKR_OK ||
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")) != CKR_OK ||
        hsm_session_open(f->conn, true, &f->s1) != CKR_OK ||
        hsm_session_open(f->conn, true, &f->s2) != CKR_OK)
        return -1;
    sem_init(&entered, 0, 0);
    sem_init(&released, 0, 0);
    hsm_call_hook = hold_hook;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    hsm_call_hook = NULL;
    __atomic_store_n(&hold_armed, 0, __ATOMIC_RELEASE);
    hsm_close(f->hsm);
    sem_destroy(&entered);
    sem_destroy(&released);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* A digest: no parameter (layout 0, HSM_MP_NONE). */
static const hsm_mech_t sha256 = {.type = CKM_SHA256};

/* ------------------------------------------------------------ threads */

struct call {
    hsm_conn_t *conn;
    hsm_sid_t sid;
    int what; /* CALL_* */
    CK_RV rv;
    int done;
};

enum { CALL_RANDOM, CALL_UPDATE, CALL_CLOSE, CALL_CONN_CLOSE };

static void *run_call(void *arg)
{
    struct call *c = arg;
    uint8_t buf[64] = {0};
    CK_RV rv = CKR_GENERAL_ERROR;

    switch (c->what) {
    case CALL_RANDOM:
        rv = hsm_random(c->conn, c->sid, buf, sizeof(buf));
        break;
    case CALL_UPDATE:
        rv = hsm_op_update(c->conn, c->sid, HSM_OPK_DIGEST, buf, sizeof(buf),
                           NULL, NULL);
        break;
    case CALL_CLOSE:
        rv = hsm_session_close(c->conn, c->sid);
        break;
    case CALL_CONN_CLOSE:
        hsm_conn_close(c->conn);
        rv = CKR_OK;
        break;
    }
    c->rv = rv;
    __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static bool call_done(struct call *c)
{
    return __atomic_load_n(&c->done, __ATOMIC_ACQUIRE) != 0;
}

/* ------------------------------------------------------------ tests */

/* A second call on a session that a call is using is refused at once and
 * changes nothing; the other sessions and connections go on. */
static void test_busy_session_refused(void **state)
{
    struct fixture *f = *state;
    struct call a = {f->conn, f->s1, CALL_RANDOM, 0, 0};
    hsm_conn_t *other = NULL;
    hsm_sid_t osid;
    uint8_t buf[16], out[32];
    size_t outlen = sizeof(out);
    pthread_t th;

    assert_int_equal(hsm_op_init(f->conn, f->s1, HSM_OPK_DIGEST, &sha256, 0),
                     CKR_OK);
    hold_arm(f->conn, f->s1);
    assert_int_equal(pthread_create(&th, NULL, run_call, &a), 0);
    assert_int_equal(hold_wait_entered(), 0);

    assert_int_equal(hsm_random(f->conn, f->s1, buf, sizeof(buf)),
                     CKR_OPERATION_ACTIVE);
    assert_int_equal(hsm_op_update(f->conn, f->s1, HSM_OPK_DIGEST, buf,
                                   sizeof(buf), NULL, NULL),
                     CKR_OPERATION_ACTIVE);
    assert_int_equal(hsm_op_init(f->conn, f->s1, HSM_OPK_SIGN, &sha256, 0),
                     CKR_OPERATION_ACTIVE);
    /* Refused, an abort does nothing: the digest is still there below. */
    hsm_op_abort(f->conn, f->s1, HSM_OPK_DIGEST);
    assert_int_equal(hsm_object_find(f->conn, f->s1, NULL, 0, NULL, NULL),
                     CKR_OPERATION_ACTIVE);

    /* Not the connection: its other session, and another connection. */
    assert_int_equal(hsm_random(f->conn, f->s2, buf, sizeof(buf)), CKR_OK);
    assert_int_equal(hsm_conn_open(f->hsm, &other), CKR_OK);
    assert_int_equal(hsm_session_open(other, false, &osid), CKR_OK);
    assert_int_equal(hsm_random(other, osid, buf, sizeof(buf)), CKR_OK);
    assert_false(call_done(&a));

    sem_post(&released);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(a.rv, CKR_OK);
    /* Free again, and the digest survived the refused abort. */
    assert_int_equal(hsm_random(f->conn, f->s1, buf, sizeof(buf)), CKR_OK);
    assert_int_equal(hsm_op_final(f->conn, f->s1, HSM_OPK_DIGEST, out, &outlen),
                     CKR_OK);
    assert_int_equal(outlen, 32);
    hsm_conn_close(other);
}

/* hsm_session_close waits for the call under way; calls and closes that
 * come meanwhile are refused. */
static void test_close_waits_for_call(void **state)
{
    struct fixture *f = *state;
    struct call a = {f->conn, f->s1, CALL_RANDOM, 0, 0};
    struct call c = {f->conn, f->s1, CALL_CLOSE, 0, 0};
    uint8_t buf[16];
    pthread_t ta, tc;

    hold_arm(f->conn, f->s1);
    assert_int_equal(pthread_create(&ta, NULL, run_call, &a), 0);
    assert_int_equal(hold_wait_entered(), 0);
    assert_int_equal(pthread_create(&tc, NULL, run_call, &c), 0);
    usleep(200 * 1000);
    assert_false(call_done(&c)); /* waits for a */

    assert_int_equal(hsm_random(f->conn, f->s1, buf, sizeof(buf)),
                     CKR_SESSION_HANDLE_INVALID);
    assert_int_equal(hsm_session_close(f->conn, f->s1),
                     CKR_SESSION_HANDLE_INVALID);
    assert_int_equal(hsm_random(f->conn, f->s2, buf, sizeof(buf)), CKR_OK);

    sem_post(&released);
    assert_int_equal(pthread_join(ta, NULL), 0);
    assert_int_equal(pthread_join(tc, NULL), 0);
    assert_int_equal(a.rv, CKR_OK);
    assert_int_equal(c.rv, CKR_OK);
    assert_int_equal(hsm_random(f->conn, f->s1, buf, sizeof(buf)),
                     CKR_SESSION_HANDLE_INVALID);
    assert_int_equal(hsm_session_close(f->conn, f->s1),
                     CKR_SESSION_HANDLE_INVALID);
}

/* hsm_conn_close waits for every call of the connection; what begins
 * meanwhile is refused. */
static void test_conn_close_waits_for_calls(void **state)
{
    struct fixture *f = *state;
    hsm_conn_t *b = NULL;
    hsm_sid_t bs, bs2;
    struct call a = {0}, c = {0};
    uint8_t buf[16];
    pthread_t ta, tc;

    assert_int_equal(hsm_conn_open(f->hsm, &b), CKR_OK);
    assert_int_equal(hsm_session_open(b, false, &bs), CKR_OK);
    assert_int_equal(hsm_session_open(b, false, &bs2), CKR_OK);
    a = (struct call){b, bs, CALL_RANDOM, 0, 0};
    c = (struct call){b, 0, CALL_CONN_CLOSE, 0, 0};
    hold_arm(b, bs);
    assert_int_equal(pthread_create(&ta, NULL, run_call, &a), 0);
    assert_int_equal(hold_wait_entered(), 0);
    assert_int_equal(pthread_create(&tc, NULL, run_call, &c), 0);
    usleep(200 * 1000);
    assert_false(call_done(&c));

    /* b is alive until its close returns: calls on it are refused. */
    assert_int_equal(hsm_random(b, bs2, buf, sizeof(buf)),
                     CKR_SESSION_HANDLE_INVALID);
    assert_int_equal(hsm_session_open(b, false, &bs2), CKR_DEVICE_REMOVED);
    assert_int_equal(hsm_login(b, HSM_LOGIN_USER, "alice", PW("alicepw1")),
                     CKR_DEVICE_REMOVED);
    /* The token's other connection is not held up. */
    assert_int_equal(hsm_random(f->conn, f->s1, buf, sizeof(buf)), CKR_OK);

    sem_post(&released);
    assert_int_equal(pthread_join(ta, NULL), 0);
    assert_int_equal(pthread_join(tc, NULL), 0);
    assert_int_equal(a.rv, CKR_OK);
}

/* A logout while another session's call is inside the core: that call's
 * operation is refused, not freed under it; the session's next calls find
 * no operation and a new one works after a new login. */
static void test_logout_under_call(void **state)
{
    struct fixture *f = *state;
    struct call a = {f->conn, f->s1, CALL_UPDATE, 0, 0};
    uint8_t out[32];
    size_t outlen = sizeof(out);
    pthread_t th;

    assert_int_equal(hsm_op_init(f->conn, f->s1, HSM_OPK_DIGEST, &sha256, 0),
                     CKR_OK);
    hold_arm(f->conn, f->s1);
    assert_int_equal(pthread_create(&th, NULL, run_call, &a), 0);
    assert_int_equal(hold_wait_entered(), 0);
    assert_int_equal(hsm_logout(f->conn), CKR_OK);
    sem_post(&released);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(a.rv, CKR_USER_NOT_LOGGED_IN);

    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")), CKR_OK);
    /* The old digest belongs to the old login: refused, never continued. */
    assert_int_not_equal(
        hsm_op_final(f->conn, f->s1, HSM_OPK_DIGEST, out, &outlen), CKR_OK);
    hsm_op_abort(f->conn, f->s1, HSM_OPK_DIGEST);
    assert_int_equal(hsm_op_init(f->conn, f->s1, HSM_OPK_DIGEST, &sha256, 0),
                     CKR_OK);
    outlen = sizeof(out);
    assert_int_equal(hsm_op_oneshot(f->conn, f->s1, HSM_OPK_DIGEST,
                                    (const uint8_t *)"abc", 3, out, &outlen),
                     CKR_OK);
    assert_int_equal(outlen, 32);
}

/* ------------------------------------------------------------ hammer */

#define HAMMER_MS 1500

struct hammer {
    struct fixture *f;
    hsm_sid_t sid; /* the session every thread aims at (atomic) */
    int stop;
    unsigned long active; /* CKR_OPERATION_ACTIVE seen */
    unsigned long calls;
    CK_RV bad; /* an answer outside the expected set, or 0 */
};

static bool expected(CK_RV rv)
{
    switch (rv) {
    case CKR_OK:
    case CKR_OPERATION_ACTIVE:
    case CKR_OPERATION_NOT_INITIALIZED:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_USER_ALREADY_LOGGED_IN:
    case CKR_BUFFER_TOO_SMALL:
        return true;
    default:
        return false;
    }
}

static void note(struct hammer *h, CK_RV rv)
{
    __atomic_add_fetch(&h->calls, 1, __ATOMIC_RELAXED);
    if (rv == CKR_OPERATION_ACTIVE)
        __atomic_add_fetch(&h->active, 1, __ATOMIC_RELAXED);
    if (!expected(rv))
        __atomic_store_n(&h->bad, rv, __ATOMIC_RELAXED);
}

static bool running(struct hammer *h)
{
    return !__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE);
}

/* Digests on the shared session, through every step. */
static void *hammer_digest(void *arg)
{
    struct hammer *h = arg;
    hsm_conn_t *conn = h->f->conn;
    uint8_t data[4096] = {1}, out[64];

    while (running(h)) {
        hsm_sid_t sid = __atomic_load_n(&h->sid, __ATOMIC_ACQUIRE);
        size_t outlen = sizeof(out);

        note(h, hsm_op_init(conn, sid, HSM_OPK_DIGEST, &sha256, 0));
        for (int i = 0; i < 4; i++)
            note(h, hsm_op_update(conn, sid, HSM_OPK_DIGEST, data, sizeof(data),
                                  NULL, NULL));
        note(h, hsm_op_final(conn, sid, HSM_OPK_DIGEST, out, &outlen));
    }
    return NULL;
}

/* Aborts, random draws and searches on the same session. */
static void *hammer_abort(void *arg)
{
    struct hammer *h = arg;
    hsm_conn_t *conn = h->f->conn;
    uint8_t buf[32];

    while (running(h)) {
        hsm_sid_t sid = __atomic_load_n(&h->sid, __ATOMIC_ACQUIRE);
        hsm_oid_t *oids = NULL;
        size_t n = 0;

        hsm_op_abort(conn, sid, HSM_OPK_DIGEST);
        note(h, hsm_random(conn, sid, buf, sizeof(buf)));
        note(h, hsm_object_find(conn, sid, NULL, 0, &oids, &n));
        free(oids);
    }
    return NULL;
}

/* Replaces the shared session: open a new one, then close the old one
 * while the others may be inside a call on it. */
static void *hammer_close(void *arg)
{
    struct hammer *h = arg;
    hsm_conn_t *conn = h->f->conn;

    while (running(h)) {
        hsm_sid_t sid, old;

        note(h, hsm_session_open(conn, true, &sid));
        old = __atomic_exchange_n(&h->sid, sid, __ATOMIC_ACQ_REL);
        usleep(2000);
        note(h, hsm_session_close(conn, old));
    }
    return NULL;
}

/* Logs the connection out and in again under everyone's calls. */
static void *hammer_login(void *arg)
{
    struct hammer *h = arg;
    hsm_conn_t *conn = h->f->conn;

    while (running(h)) {
        note(h, hsm_logout(conn));
        note(h, hsm_login(conn, HSM_LOGIN_USER, "alice", PW("alicepw1")));
        usleep(3000);
    }
    return NULL;
}

static void test_hostile_threads(void **state)
{
    struct fixture *f = *state;
    struct hammer h = {.f = f, .sid = f->s1};
    void *(*fn[])(void *) = {hammer_digest, hammer_digest, hammer_abort,
                             hammer_close, hammer_login};
    pthread_t th[sizeof(fn) / sizeof(fn[0])];

    hsm_call_hook = NULL;
    for (size_t i = 0; i < sizeof(fn) / sizeof(fn[0]); i++)
        assert_int_equal(pthread_create(&th[i], NULL, fn[i], &h), 0);
    usleep(HAMMER_MS * 1000);
    __atomic_store_n(&h.stop, 1, __ATOMIC_RELEASE);
    for (size_t i = 0; i < sizeof(fn) / sizeof(fn[0]); i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    print_message("hammer: %lu calls, %lu refused as busy\n", h.calls,
                  h.active);
    assert_int_equal(h.bad, 0);
    assert_true(h.active > 0); /* the threads did collide */
    /* The connection still works (teardown closes it with the rest). */
    (void)hsm_logout(f->conn);
    assert_int_equal(
        hsm_login(f->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(hsm_op_init(f->conn, f->s2, HSM_OPK_DIGEST, &sha256, 0),
                     CKR_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_busy_session_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_waits_for_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_close_waits_for_calls, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_logout_under_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hostile_threads, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
