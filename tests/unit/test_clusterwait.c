/*
 * test_clusterwait.c - a core in a cluster whose writes wait for the
 * majority (hsm_cluster.h): while one call's entry waits, the node's other
 * calls go on, other writes reach the engine too, and the waiting call
 * finds its premises again when it comes back.
 *
 * No raft here: a fake link applies each entry at once on the submitting
 * thread (hsm_cluster_apply, as a one-node cluster would), or holds it,
 * as a node cut off from its majority does, until the test lets it go.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
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
#include "hsm/hsm_cluster.h"
#include "hsm/internal.h"

#define PW(s) (const uint8_t *)(s), strlen(s)
#define N(a) (sizeof(a) / sizeof((a)[0]))
/* How long a call that must not wait for the held entry may take. */
#define QUICK_MS 1000
/* How long the test waits for something that must happen. */
#define WAIT_MS 10000

/* ------------------------------------------------------------ the link */

struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hsm_t *hsm;
    bool hold;     /* submits wait while set (no majority) */
    unsigned skip; /* ... after letting this many more through */
    unsigned held; /* submits waiting now */
    unsigned long submits;
    /* Held submits are numbered as they come; those numbered up to
     * allowed go on (allow), in that order, while the others wait. */
    unsigned long ticket, allowed, base; /* base: ticket at hold() */
    uint64_t index, seq;
};

static struct fake fk = {.mu = PTHREAD_MUTEX_INITIALIZER,
                         .cv = PTHREAD_COND_INITIALIZER};

static CK_RV fake_submit(void *ctx, const uint8_t *entry, size_t len,
                         uint8_t **res, size_t *reslen)
{
    struct fake *f = ctx;
    CK_RV rv;

    pthread_mutex_lock(&f->mu);
    f->submits++;
    if (f->hold && f->skip > 0) {
        f->skip--;
    } else {
        unsigned long mine = ++f->ticket;

        f->held++;
        pthread_cond_broadcast(&f->cv);
        while (f->hold && mine > f->allowed)
            pthread_cond_wait(&f->cv, &f->mu);
        f->held--;
        pthread_cond_broadcast(&f->cv);
    }
    /* One apply at a time, in log order (the engine's thread). */
    f->index++;
    f->seq++;
    rv =
        hsm_cluster_apply(f->hsm, f->index, 1, f->seq, entry, len, res, reslen);
    pthread_mutex_unlock(&f->mu);
    return rv;
}

static void hold(unsigned skip)
{
    pthread_mutex_lock(&fk.mu);
    fk.hold = true;
    fk.skip = skip;
    fk.allowed = fk.base = fk.ticket;
    pthread_mutex_unlock(&fk.mu);
}

/* Lets the next held submit (in the order they came) go on. */
static void allow_one(void)
{
    pthread_mutex_lock(&fk.mu);
    fk.allowed++;
    pthread_cond_broadcast(&fk.cv);
    pthread_mutex_unlock(&fk.mu);
}

static void release(void)
{
    pthread_mutex_lock(&fk.mu);
    fk.hold = false;
    pthread_cond_broadcast(&fk.cv);
    pthread_mutex_unlock(&fk.mu);
}

static void deadline(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Whether n submits are held within WAIT_MS. */
static bool held_reach(unsigned n)
{
    struct timespec ts;
    bool ok;

    deadline(&ts, WAIT_MS);
    pthread_mutex_lock(&fk.mu);
    while (fk.held < n &&
           pthread_cond_timedwait(&fk.cv, &fk.mu, &ts) != ETIMEDOUT)
        ;
    ok = fk.held >= n;
    pthread_mutex_unlock(&fk.mu);
    return ok;
}

/* Whether n submits have come to be held since hold(), within WAIT_MS
 * (held_reach counts those held now: one let go may still count). */
static bool tickets_reach(unsigned long n)
{
    struct timespec ts;
    bool ok;

    deadline(&ts, WAIT_MS);
    pthread_mutex_lock(&fk.mu);
    while (fk.ticket - fk.base < n &&
           pthread_cond_timedwait(&fk.cv, &fk.mu, &ts) != ETIMEDOUT)
        ;
    ok = fk.ticket - fk.base >= n;
    pthread_mutex_unlock(&fk.mu);
    return ok;
}

/* ------------------------------------------------------------ calls */

/* A call run on a thread of its own, waited for with a bound. */
struct job {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    CK_RV (*fn)(struct job *j);
    hsm_conn_t *conn;
    hsm_sid_t sid;
    hsm_oid_t oid;
    const char *text;
    const uint8_t *buf;
    size_t len;
    CK_RV rv;
    bool done;
};

static void *job_main(void *arg)
{
    struct job *j = arg;
    CK_RV rv = j->fn(j);

    pthread_mutex_lock(&j->mu);
    j->rv = rv;
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static void job_start(struct job *j, CK_RV (*fn)(struct job *),
                      hsm_conn_t *conn, hsm_sid_t sid)
{
    j->fn = fn;
    j->conn = conn;
    j->sid = sid;
    j->done = false;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    assert_int_equal(pthread_create(&j->th, NULL, job_main, j), 0);
}

/* Whether the job ended within ms. */
static bool job_wait(struct job *j, long ms)
{
    struct timespec ts;
    bool done;

    deadline(&ts, ms);
    pthread_mutex_lock(&j->mu);
    while (!j->done && pthread_cond_timedwait(&j->cv, &j->mu, &ts) != ETIMEDOUT)
        ;
    done = j->done;
    pthread_mutex_unlock(&j->mu);
    return done;
}

static bool job_done(struct job *j)
{
    bool done;

    pthread_mutex_lock(&j->mu);
    done = j->done;
    pthread_mutex_unlock(&j->mu);
    return done;
}

static CK_RV job_join(struct job *j)
{
    pthread_join(j->th, NULL);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    return j->rv;
}

/* ------------------------------------------------------------ fixture */

struct fixture {
    char dir[64];
    struct config cfg;
    struct hsm_cluster_link link;
    hsm_t *hsm;
    hsm_conn_t *co, *alice, *bob;
    hsm_sid_t sco, sa, sb;
    hsm_oid_t akey, bkey; /* alice's and bob's token HMAC keys */
};

static const hsm_mech_t hmac = {.type = CKM_SHA256_HMAC};
static const hsm_mech_t keygen = {.type = CKM_GENERIC_SECRET_KEY_GEN};

static hsm_oid_t make_key(hsm_conn_t *c, hsm_sid_t s, const char *label)
{
    CK_BBOOL yes = CK_TRUE;
    CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = {{CKA_TOKEN, &yes, 1},
                        {CKA_SIGN, &yes, 1},
                        {CKA_VALUE_LEN, &len, sizeof(len)},
                        {CKA_LABEL, (void *)label, strlen(label)}};
    hsm_oid_t oid = 0;

    assert_int_equal(hsm_generate_key(c, s, &keygen, t, N(t), &oid), CKR_OK);
    return oid;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-cwait-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    config_defaults(&f->cfg);
    snprintf(f->cfg.store, sizeof(f->cfg.store), "%s/store", f->dir);
    snprintf(f->cfg.cluster_id, sizeof(f->cfg.cluster_id), "cwait");
    f->cfg.cluster_node_id = 1;
    f->cfg.kdf_iterations = 1000;
    fk.hold = false;
    fk.held = 0;
    fk.index = fk.seq = 0;
    f->link.ctx = &fk;
    f->link.submit = fake_submit;
    if (hsm_open(&f->cfg, &f->hsm) != CKR_OK)
        return -1;
    fk.hsm = f->hsm;
    if (hsm_cluster_key_create(f->hsm) != CKR_OK ||
        hsm_cluster_attach(f->hsm, &f->link) != CKR_OK ||
        hsm_cluster_init(f->hsm) != CKR_OK ||
        hsm_conn_open(f->hsm, &f->co) != CKR_OK ||
        hsm_conn_open(f->hsm, &f->alice) != CKR_OK ||
        hsm_conn_open(f->hsm, &f->bob) != CKR_OK ||
        hsm_init_token(f->hsm, NULL, PW("copass1"), "test") != CKR_OK ||
        hsm_login(f->co, HSM_LOGIN_SO, NULL, PW("copass1")) != CKR_OK ||
        hsm_init_pin(f->co, "alice", PW("alicepw1")) != CKR_OK ||
        hsm_init_pin(f->co, "bob", PW("bobpass1")) != CKR_OK ||
        hsm_session_open(f->co, true, &f->sco) != CKR_OK ||
        hsm_login(f->alice, HSM_LOGIN_USER, "alice", PW("alicepw1")) !=
            CKR_OK ||
        hsm_login(f->bob, HSM_LOGIN_USER, "bob", PW("bobpass1")) != CKR_OK ||
        hsm_session_open(f->alice, true, &f->sa) != CKR_OK ||
        hsm_session_open(f->bob, true, &f->sb) != CKR_OK)
        return -1;
    f->akey = make_key(f->alice, f->sa, "alice-key");
    f->bkey = make_key(f->bob, f->sb, "bob-key");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    release();
    hsm_conn_close(f->co);
    hsm_conn_close(f->alice);
    hsm_conn_close(f->bob);
    hsm_close(f->hsm);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* ------------------------------------------------------------ jobs */

static CK_RV set_label(struct job *j)
{
    CK_ATTRIBUTE t[] = {{CKA_LABEL, (void *)j->text, strlen(j->text)}};

    return hsm_object_set(j->conn, j->sid, j->oid, t, 1);
}

static CK_RV destroy(struct job *j)
{
    return hsm_object_destroy(j->conn, j->sid, j->oid);
}

static CK_RV create_user(struct job *j)
{
    return hsm_user_create(j->conn, HSM_USER_CU, j->text, PW("newpass1"), NULL);
}

static CK_RV wrong_login(struct job *j)
{
    return hsm_login(j->conn, HSM_LOGIN_USER, j->text, PW("wrongpw1"));
}

static CK_RV set_own_pw(struct job *j)
{
    return hsm_set_password(j->conn, NULL, PW("alicepw1"), PW("alicepw2"));
}

static CK_RV logout(struct job *j)
{
    return hsm_logout(j->conn);
}

static CK_RV keypair(struct job *j)
{
    static const hsm_mech_t ec = {.type = CKM_EC_KEY_PAIR_GEN};
    /* P-256 */
    static const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                   0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE pub[] = {{CKA_TOKEN, &yes, 1},
                          {CKA_EC_PARAMS, (void *)p256, sizeof(p256)}};
    CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &yes, 1}, {CKA_SIGN, &yes, 1}};
    hsm_oid_t pk = 0, sk = 0;
    CK_RV rv = hsm_generate_key_pair(j->conn, j->sid, &ec, pub, N(pub), priv,
                                     N(priv), &pk, &sk);

    j->oid = sk;
    return rv;
}

/* What another client of the node does while a write waits: a session,
 * a search, an attribute read and a signature with a token key. */
static CK_RV other_client(struct job *j)
{
    static const uint8_t msg[] = "a message";
    CK_ATTRIBUTE_TYPE lt = CKA_LABEL;
    hsm_attr_t a;
    hsm_oid_t *oids = NULL;
    hsm_sid_t s = 0;
    uint8_t sig[64];
    size_t n = 0, siglen = sizeof(sig);
    CK_RV rv;

    if ((rv = hsm_session_open(j->conn, false, &s)) != CKR_OK ||
        (rv = hsm_object_find(j->conn, s, NULL, 0, &oids, &n)) != CKR_OK)
        return rv;
    free(oids);
    if (n == 0)
        return CKR_GENERAL_ERROR;
    if ((rv = hsm_object_get(j->conn, s, j->oid, &lt, 1, &a)) != CKR_OK)
        return rv;
    hsm_attrs_free(&a, 1);
    if ((rv = hsm_op_init(j->conn, s, HSM_OPK_SIGN, &hmac, j->oid)) != CKR_OK ||
        (rv = hsm_op_oneshot(j->conn, s, HSM_OPK_SIGN, msg, sizeof(msg), sig,
                             &siglen)) != CKR_OK)
        return rv;
    return hsm_session_close(j->conn, s);
}

static char *label_of(hsm_conn_t *c, hsm_sid_t s, hsm_oid_t oid)
{
    CK_ATTRIBUTE_TYPE lt = CKA_LABEL;
    hsm_attr_t a;
    char *out;

    assert_int_equal(hsm_object_get(c, s, oid, &lt, 1, &a), CKR_OK);
    out = calloc(1, a.len + 1);
    assert_non_null(out);
    memcpy(out, a.value, a.len);
    hsm_attrs_free(&a, 1);
    return out;
}

/* ------------------------------------------------------------ tests */

/* While alice's attribute change waits for the majority, bob's client on
 * the same node opens a session, searches, reads and signs at once; bob's
 * own write goes to the engine beside alice's instead of behind the lock;
 * both land once the majority is back. */
static void test_others_go_on(void **state)
{
    struct fixture *f = *state;
    struct job w1 = {.oid = f->akey, .text = "alice-new"};
    struct job w2 = {.oid = f->bkey, .text = "bob-new"};
    struct job o = {.oid = f->bkey};
    char *l;

    hold(0);
    job_start(&w1, set_label, f->alice, f->sa);
    assert_true(held_reach(1));
    job_start(&o, other_client, f->bob, 0);
    if (!job_wait(&o, QUICK_MS)) {
        release(); /* the old behaviour: stuck behind the waiting write */
        job_join(&o);
        job_join(&w1);
        fail_msg("another client waited for a write's majority");
    }
    assert_int_equal(job_join(&o), CKR_OK);
    job_start(&w2, set_label, f->bob, f->sb);
    assert_true(held_reach(2)); /* both at the engine */
    assert_false(job_done(&w1));
    assert_false(job_done(&w2));
    release();
    assert_int_equal(job_join(&w1), CKR_OK);
    assert_int_equal(job_join(&w2), CKR_OK);
    l = label_of(f->alice, f->sa, f->akey);
    assert_string_equal(l, "alice-new");
    free(l);
    l = label_of(f->bob, f->sb, f->bkey);
    assert_string_equal(l, "bob-new");
    free(l);
}

/* A failed login's charge waits without the lock: the others go on, and
 * the failure counts once the cluster has it. */
static void test_charge_waits_unlocked(void **state)
{
    struct fixture *f = *state;
    hsm_conn_t *c;
    struct job w = {.text = "bob"};
    struct job o = {.oid = f->bkey};
    hsm_user_info_t *users = NULL;
    size_t n = 0;
    unsigned long failures = 99;

    assert_int_equal(hsm_conn_open(f->hsm, &c), CKR_OK);
    hold(0);
    job_start(&w, wrong_login, c, 0);
    assert_true(held_reach(1));
    job_start(&o, other_client, f->bob, 0);
    if (!job_wait(&o, QUICK_MS)) {
        release();
        job_join(&o);
        job_join(&w);
        fail_msg("another client waited for a login's charge");
    }
    assert_int_equal(job_join(&o), CKR_OK);
    assert_false(job_done(&w));
    release();
    assert_int_equal(job_join(&w), CKR_PIN_INCORRECT);
    assert_int_equal(hsm_user_list(f->co, &users, &n), CKR_OK);
    for (size_t i = 0; i < n; i++)
        if (strcmp(users[i].name, "bob") == 0)
            failures = users[i].login_failures;
    free(users);
    assert_int_equal(failures, 1);
    hsm_conn_close(c);
}

/* The waiting call's own connection changes under it: its login ends (a
 * logout on another thread) while a destroy and a user creation wait.
 * Both results stay what the cluster applied; the logout stands. */
static void test_login_ends_meanwhile(void **state)
{
    struct fixture *f = *state;
    struct job d = {.oid = f->akey};
    struct job u = {.text = "carol"};
    struct job lo, lo2;
    hsm_oid_t *oids = NULL;
    size_t n = 0;
    bool gone = true;

    hold(0);
    job_start(&d, destroy, f->alice, f->sa);
    job_start(&u, create_user, f->co, 0);
    assert_true(held_reach(2));
    /* the logouts' own records wait too: they do not end while held, but
     * the logins they end are over before the writers come back */
    job_start(&lo, logout, f->alice, 0);
    job_start(&lo2, logout, f->co, 0);
    assert_true(held_reach(4));
    release();
    assert_int_equal(job_join(&d), CKR_OK);
    assert_int_equal(job_join(&u), CKR_OK);
    assert_int_equal(job_join(&lo), CKR_OK);
    assert_int_equal(job_join(&lo2), CKR_OK);
    assert_int_equal(hsm_logout(f->alice), CKR_USER_NOT_LOGGED_IN);
    /* the key is gone for bob's search too; carol exists */
    assert_int_equal(hsm_object_find(f->bob, f->sb, NULL, 0, &oids, &n),
                     CKR_OK);
    for (size_t i = 0; i < n; i++)
        gone = gone && oids[i] != f->akey;
    free(oids);
    assert_true(gone);
    assert_int_equal(hsm_login(f->co, HSM_LOGIN_USER, "carol", PW("newpass1")),
                     CKR_OK);
}

/* Alice changes her own password; while the change waits, her connection
 * logs out. The change stands, and does not bring the ended login back
 * (nor does the logout leave it standing). */
static void test_password_login_replaced(void **state)
{
    struct fixture *f = *state;
    struct job p, lo;

    /* the charge and the failure reset go through; the change waits */
    hold(2);
    job_start(&p, set_own_pw, f->alice, 0);
    assert_true(held_reach(1));
    job_start(&lo, logout, f->alice, 0);
    assert_true(held_reach(2));
    pthread_mutex_lock(&fk.mu);
    fk.skip = 100; /* what comes next goes through at once */
    pthread_mutex_unlock(&fk.mu);
    release();
    assert_int_equal(job_join(&p), CKR_OK);
    assert_int_equal(job_join(&lo), CKR_OK);
    /* logged out: the change did not log it in again */
    assert_int_equal(hsm_logout(f->alice), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(
        hsm_login(f->alice, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_PIN_INCORRECT);
    assert_int_equal(
        hsm_login(f->alice, HSM_LOGIN_USER, "alice", PW("alicepw2")), CKR_OK);
}

/* A token key pair's first half waits while alice's connection opens many
 * sessions (the session array moves): the second half is stored through
 * the session found again, both halves exist. */
static void test_sessions_move_meanwhile(void **state)
{
    struct fixture *f = *state;
    struct job k;
    hsm_sid_t s[64];
    CK_ATTRIBUTE_TYPE ct = CKA_CLASS;
    hsm_attr_t a;

    /* the pair's first insert reserves nothing (setup did): it waits */
    hold(0);
    job_start(&k, keypair, f->alice, f->sa);
    assert_true(held_reach(1));
    for (size_t i = 0; i < N(s); i++)
        assert_int_equal(hsm_session_open(f->alice, true, &s[i]), CKR_OK);
    for (size_t i = 0; i < N(s); i += 2)
        assert_int_equal(hsm_session_close(f->alice, s[i]), CKR_OK);
    assert_false(job_done(&k));
    release();
    assert_int_equal(job_join(&k), CKR_OK);
    assert_int_equal(hsm_object_get(f->alice, f->sa, k.oid, &ct, 1, &a),
                     CKR_OK);
    hsm_attrs_free(&a, 1);
}

static CK_RV masked_insert(struct job *j)
{
    hsm_oid_t oid = 0;

    return hsm_masked_insert(j->conn, j->buf, j->len, &oid);
}

static CK_RV delete_user(struct job *j)
{
    return hsm_user_delete(j->conn, j->text);
}

/* Whether user name exists. */
static bool user_exists(struct fixture *f, const char *name)
{
    hsm_user_info_t *users = NULL;
    size_t n = 0;
    bool found = false;

    assert_int_equal(hsm_user_list(f->co, &users, &n), CKR_OK);
    for (size_t i = 0; i < n; i++)
        found = found || strcmp(users[i].name, name) == 0;
    free(users);
    return found;
}

/* Alice's key, extracted as a masked object and destroyed, is put back by
 * the CO while the CO also deletes alice (logged out, owning nothing
 * yet): both pass their checks on the node's state and wait for the
 * cluster. The one applied first stands; the other is refused when it
 * applies, so no key is left owned by nobody. */
static void race(void **state, bool insert_first)
{
    struct fixture *f = *state;
    struct job ins = {0}, del = {.text = "alice"};
    struct job *first = insert_first ? &ins : &del;
    struct job *second = insert_first ? &del : &ins;
    uint8_t *file = NULL;
    size_t flen = 0;
    CK_RV irv, drv;

    assert_int_equal(hsm_masked_extract(f->alice, f->akey, &file, &flen),
                     CKR_OK);
    assert_int_equal(hsm_object_destroy(f->alice, f->sa, f->akey), CKR_OK);
    assert_int_equal(hsm_logout(f->alice), CKR_OK);
    ins.buf = file;
    ins.len = flen;
    hold(0);
    job_start(first, first == &ins ? masked_insert : delete_user, f->co, 0);
    assert_true(held_reach(1));
    job_start(second, second == &ins ? masked_insert : delete_user, f->co, 0);
    assert_true(held_reach(2));
    allow_one(); /* the first to come is applied first */
    assert_true(job_wait(first, WAIT_MS));
    release();
    irv = job_join(&ins);
    drv = job_join(&del);
    free(file);
    if (insert_first) {
        assert_int_equal(irv, CKR_OK);
        assert_int_equal(drv, CKR_ACTION_PROHIBITED); /* she owns a key */
        assert_true(user_exists(f, "alice"));
        assert_int_equal(
            hsm_login(f->alice, HSM_LOGIN_USER, "alice", PW("alicepw1")),
            CKR_OK);
        free(label_of(f->alice, f->sa, f->akey));
    } else {
        assert_int_equal(drv, CKR_OK);
        assert_int_equal(irv, CKR_DATA_INVALID); /* no owner any more */
        assert_false(user_exists(f, "alice"));
    }
}

static void test_insert_then_delete(void **state)
{
    race(state, true);
}

static void test_delete_then_insert(void **state)
{
    race(state, false);
}

/* Two createUser of one name, both checked while neither had applied:
 * the second is refused where it applies (the name's UNIQUE constraint)
 * with the answer the name check gives, CKR_PIN_INVALID (it was
 * CKR_FUNCTION_FAILED), and there is one user of that name. */
static void test_same_name_twice(void **state)
{
    struct fixture *f = *state;
    struct job a = {.text = "dave"}, b = {.text = "dave"};

    hold(0);
    job_start(&a, create_user, f->co, 0);
    assert_true(held_reach(1));
    job_start(&b, create_user, f->co, 0);
    assert_true(held_reach(2));
    allow_one();
    assert_true(job_wait(&a, WAIT_MS));
    release();
    assert_int_equal(job_join(&a), CKR_OK);
    assert_int_equal(job_join(&b), CKR_PIN_INVALID);
    assert_true(user_exists(f, "dave"));
    /* and when the name is seen at once: the same answer */
    assert_int_equal(
        hsm_user_create(f->co, HSM_USER_CU, "dave", PW("newpass1"), NULL),
        CKR_PIN_INVALID);
}

/* A CO that asked for a quorum token logs out: its record and the
 * deletion of its tokens both wait for the majority without the lock (the
 * deletion used to wait holding it, the call gate's lock too). */
static void test_logout_tokens_unlocked(void **state)
{
    struct fixture *f = *state;
    struct job lo, o = {.oid = f->bkey};
    uint8_t tok[HSM_QUORUM_TOKEN_BYTES_MAX];
    size_t len = sizeof(tok);
    hsm_quorum_token_info_t *list = NULL;
    size_t n = 1;
    hsm_conn_t *c;

    assert_int_equal(hsm_quorum_get_token(f->co, 3, "admin", tok, &len),
                     CKR_OK);
    hold(0);
    job_start(&lo, logout, f->co, 0);
    assert_true(tickets_reach(1)); /* the logout record */
    allow_one();
    assert_true(tickets_reach(2)); /* the tokens' deletion */
    job_start(&o, other_client, f->bob, 0);
    if (!job_wait(&o, QUICK_MS)) {
        release();
        job_join(&o);
        job_join(&lo);
        fail_msg("another client waited for a logout's token deletion");
    }
    assert_int_equal(job_join(&o), CKR_OK);
    assert_false(job_done(&lo));
    release();
    assert_int_equal(job_join(&lo), CKR_OK);
    assert_int_equal(hsm_logout(f->co), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_conn_open(f->hsm, &c), CKR_OK);
    assert_int_equal(hsm_login(c, HSM_LOGIN_SO, NULL, PW("copass1")), CKR_OK);
    assert_int_equal(hsm_quorum_list_tokens(c, &list, &n), CKR_OK);
    assert_int_equal(n, 0);
    free(list);
    hsm_conn_close(c);
}

static CK_RV conn_close(struct job *j)
{
    hsm_conn_close(j->conn);
    return CKR_OK;
}

/* A client that gives up (its connection closes while logged in): the
 * logout record waits for the majority without the lock. */
static void test_close_waits_unlocked(void **state)
{
    struct fixture *f = *state;
    struct job cl, o = {.oid = f->bkey};
    hsm_conn_t *gone = f->alice;

    f->alice = NULL; /* closed here, not by the teardown */
    hold(0);
    job_start(&cl, conn_close, gone, 0);
    assert_true(held_reach(1));
    job_start(&o, other_client, f->bob, 0);
    if (!job_wait(&o, QUICK_MS)) {
        release();
        job_join(&o);
        job_join(&cl);
        fail_msg("another client waited for a closing connection's record");
    }
    assert_int_equal(job_join(&o), CKR_OK);
    release();
    assert_int_equal(job_join(&cl), CKR_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_others_go_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_charge_waits_unlocked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_login_ends_meanwhile, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_password_login_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sessions_move_meanwhile, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_waits_unlocked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_insert_then_delete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_delete_then_insert, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_same_name_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout_tokens_unlocked, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
