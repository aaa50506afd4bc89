/*
 * test_tickets.c - login tickets in the core (hsm.h "login tickets",
 * src/hsm/tickets.c): issued after a login, redeemed on another
 * connection and on another process's view of the same store (another
 * node), refused when forged, changed, expired, taken to another peer, or
 * when the user changed, went or is locked; off with a lifetime of 0.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hsm/crypto/crypto.h"
#include "common/util.h"
#include "hsm/hsm.h"
#include "hsm/hsm_cluster.h"
#include "hsm/internal.h"

#define PW(s) (const uint8_t *)(s), strlen(s)
#define CO_PW "copass1"
#define A_PW "alicepw1"
#define B_PW "bobpass1"

static uint64_t now = 1700000000;

static uint64_t test_clock(void)
{
    return now;
}

struct fixture {
    char dir[64];
    struct config cfg;
    hsm_t *hsm;
    hsm_t *node2;    /* a second core on the same store: another nimbusd */
    hsm_conn_t *co;  /* admin logged in */
    hsm_conn_t *a;   /* alice logged in with her password */
    hsm_conn_t *app; /* nobody logged in */
    hsm_conn_t *far; /* on node2, nobody logged in */
    uint8_t t[HSM_TICKET_LEN];
};

static int setup_with(void **state, unsigned long lifetime)
{
    struct fixture *f = calloc(1, sizeof(*f));
    hsm_uid_t uid;

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-tkt-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    config_defaults(&f->cfg);
    snprintf(f->cfg.store, sizeof(f->cfg.store), "%s/store", f->dir);
    f->cfg.kdf_iterations = 1000;
    f->cfg.login_ticket_lifetime = lifetime;
    hsm_ticket_clock_hook = test_clock;
    now = 1700000000;
    if (hsm_open(&f->cfg, &f->hsm) != CKR_OK ||
        hsm_init_token(f->hsm, NULL, PW(CO_PW), "tkt") != CKR_OK ||
        hsm_open(&f->cfg, &f->node2) != CKR_OK ||
        hsm_conn_open(f->hsm, &f->co) != CKR_OK ||
        hsm_conn_open(f->hsm, &f->a) != CKR_OK ||
        hsm_conn_open(f->hsm, &f->app) != CKR_OK ||
        hsm_conn_open(f->node2, &f->far) != CKR_OK ||
        hsm_login(f->co, HSM_LOGIN_SO, NULL, PW(CO_PW)) != CKR_OK ||
        hsm_user_create(f->co, HSM_USER_CU, "alice", PW(A_PW), &uid) !=
            CKR_OK ||
        hsm_user_create(f->co, HSM_USER_CU, "bob", PW(B_PW), &uid) != CKR_OK ||
        hsm_login(f->a, HSM_LOGIN_USER, "alice", PW(A_PW)) != CKR_OK)
        return -1;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 3600);
}

static int setup_off(void **state)
{
    return setup_with(state, 0);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    hsm_ticket_clock_hook = NULL;
    hsm_conn_close(f->co);
    hsm_conn_close(f->a);
    hsm_conn_close(f->app);
    hsm_conn_close(f->far);
    hsm_close(f->node2);
    hsm_close(f->hsm);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static hsm_uid_t who(hsm_conn_t *c, hsm_user_type_t *type)
{
    hsm_uid_t uid = 0;

    *type = hsm_conn_user_type(c, &uid);
    return uid;
}

/* A ticket of alice's login logs in another connection and another node
 * as alice, the CU she is; the ticket's bytes are not the same twice. */
static void test_issue_redeem(void **state)
{
    struct fixture *f = *state;
    uint8_t t2[HSM_TICKET_LEN];
    hsm_user_type_t ta, tb, tc;
    hsm_audit_record_t *recs = NULL;
    size_t n = 0;
    bool seen = false;

    assert_int_equal(hsm_login_ticket(f->a, f->t), CKR_OK);
    assert_int_equal(hsm_login_ticket(f->a, t2), CKR_OK);
    assert_memory_not_equal(f->t, t2, HSM_TICKET_LEN);
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN), CKR_OK);
    assert_int_equal(hsm_login_redeem(f->far, t2, HSM_TICKET_LEN), CKR_OK);
    assert_int_equal(who(f->app, &tb), who(f->a, &ta));
    assert_int_equal(who(f->far, &tc), who(f->a, &ta));
    assert_int_equal(ta, HSM_USER_CU);
    assert_int_equal(tb, HSM_USER_CU);
    assert_int_equal(tc, HSM_USER_CU);
    /* the same ticket again on a logged-in connection */
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN),
                     CKR_USER_ALREADY_LOGGED_IN);
    assert_int_equal(hsm_login_redeem(f->co, f->t, HSM_TICKET_LEN),
                     CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
    /* a ticket of the redeemed login is a ticket too */
    assert_int_equal(hsm_login_ticket(f->far, t2), CKR_OK);
    /* audited as a login of its own kind */
    assert_int_equal(hsm_audit_read(f->co, 0, 1000, &recs, &n), CKR_OK);
    for (size_t i = 0; i < n; i++)
        seen = seen ||
               (strcmp(recs[i].op, "login_ticket") == 0 &&
                recs[i].result == CKR_OK && recs[i].user == who(f->a, &ta));
    free(recs);
    assert_true(seen);
}

static void test_not_logged_in(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(hsm_login_ticket(f->app, f->t), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(hsm_logout(f->a), CKR_OK);
    assert_int_equal(hsm_login_ticket(f->a, f->t), CKR_USER_NOT_LOGGED_IN);
}

/* Every changed byte, a short or long ticket, zeros: refused, nobody
 * logged in. */
static void test_forged(void **state)
{
    struct fixture *f = *state;
    uint8_t bad[HSM_TICKET_LEN + 1];
    hsm_user_type_t t;

    assert_int_equal(hsm_login_ticket(f->a, f->t), CKR_OK);
    for (size_t i = 0; i < HSM_TICKET_LEN; i++) {
        memcpy(bad, f->t, HSM_TICKET_LEN);
        bad[i] ^= 0x01;
        assert_int_equal(hsm_login_redeem(f->app, bad, HSM_TICKET_LEN),
                         CKR_PIN_INCORRECT);
    }
    memcpy(bad, f->t, HSM_TICKET_LEN);
    bad[HSM_TICKET_LEN] = 0;
    assert_int_equal(hsm_login_redeem(f->app, bad, HSM_TICKET_LEN + 1),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login_redeem(f->app, bad, HSM_TICKET_LEN - 1),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login_redeem(f->app, NULL, 0), CKR_PIN_INCORRECT);
    memset(bad, 0, sizeof(bad));
    assert_int_equal(hsm_login_redeem(f->app, bad, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    (void)who(f->app, &t);
    assert_int_equal(t, HSM_USER_NONE);
    /* the real one still works after all that (nothing was charged) */
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN), CKR_OK);
}

/* Another HSM (another store, another master key) does not take it. */
static void test_other_hsm(void **state)
{
    struct fixture *f = *state;
    struct config cfg = f->cfg;
    hsm_t *h = NULL;
    hsm_conn_t *c = NULL, *c2 = NULL;
    uint8_t t2[HSM_TICKET_LEN];
    hsm_uid_t uid;

    snprintf(cfg.store, sizeof(cfg.store), "%s/other", f->dir);
    assert_int_equal(hsm_open(&cfg, &h), CKR_OK);
    assert_int_equal(hsm_init_token(h, NULL, PW(CO_PW), "other"), CKR_OK);
    assert_int_equal(hsm_conn_open(h, &c), CKR_OK);
    assert_int_equal(hsm_conn_open(h, &c2), CKR_OK);
    assert_int_equal(hsm_login(c, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    assert_int_equal(hsm_user_create(c, HSM_USER_CU, "alice", PW(A_PW), &uid),
                     CKR_OK);
    assert_int_equal(hsm_login_ticket(f->a, f->t), CKR_OK);
    assert_int_equal(hsm_login_redeem(c2, f->t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    /* and the other way round */
    assert_int_equal(hsm_login_ticket(c, t2), CKR_OK);
    assert_int_equal(hsm_login_redeem(f->app, t2, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    hsm_conn_close(c);
    hsm_conn_close(c2);
    hsm_close(h);
}

static void test_expiry(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(hsm_login_ticket(f->a, f->t), CKR_OK);
    now += 3599;
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN), CKR_OK);
    assert_int_equal(hsm_logout(f->app), CKR_OK);
    now += 1;
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN),
                     CKR_PIN_EXPIRED);
    /* issued "in the future": the clock went back further than a
     * lifetime */
    assert_int_equal(hsm_login_ticket(f->a, f->t), CKR_OK);
    now -= 3601;
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN),
                     CKR_PIN_EXPIRED);
}

/* A password change (by the CO, through the other node) ends every
 * ticket; so does the user's own change. */
static void test_password_change(void **state)
{
    struct fixture *f = *state;
    hsm_conn_t *co2 = NULL;

    assert_int_equal(hsm_login_ticket(f->a, f->t), CKR_OK);
    assert_int_equal(hsm_conn_open(f->node2, &co2), CKR_OK);
    assert_int_equal(hsm_login(co2, HSM_LOGIN_SO, NULL, PW(CO_PW)), CKR_OK);
    assert_int_equal(hsm_user_set_password(co2, "alice", PW("alicepw2")),
                     CKR_OK);
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login_redeem(f->far, f->t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    /* even set back to the same password: a new verifier */
    assert_int_equal(hsm_user_set_password(co2, "alice", PW(A_PW)), CKR_OK);
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    hsm_conn_close(co2);
}

/* A deleted user's ticket, and one of a user made again under the same
 * name: refused. */
static void test_deleted(void **state)
{
    struct fixture *f = *state;
    hsm_conn_t *b = NULL;
    hsm_uid_t uid;

    assert_int_equal(hsm_conn_open(f->hsm, &b), CKR_OK);
    assert_int_equal(hsm_login(b, HSM_LOGIN_USER, "bob", PW(B_PW)), CKR_OK);
    assert_int_equal(hsm_login_ticket(b, f->t), CKR_OK);
    assert_int_equal(hsm_logout(b), CKR_OK);
    assert_int_equal(hsm_user_delete(f->co, "bob"), CKR_OK);
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_user_create(f->co, HSM_USER_CU, "bob", PW(B_PW), &uid),
                     CKR_OK);
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    hsm_conn_close(b);
}

/* A user locked by wrong passwords (on any node) has no ticket login. */
static void test_locked(void **state)
{
    struct fixture *f = *state;
    hsm_conn_t *x = NULL;

    assert_int_equal(hsm_login_ticket(f->a, f->t), CKR_OK);
    assert_int_equal(hsm_conn_open(f->node2, &x), CKR_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(hsm_login(x, HSM_LOGIN_USER, "alice", PW("wrongpw1")),
                         CKR_PIN_INCORRECT);
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN),
                     CKR_PIN_LOCKED);
    hsm_conn_close(x);
}

/* Bound to the peer class it was issued to. */
static void test_peer_class(void **state)
{
    struct fixture *f = *state;
    hsm_conn_t *a2 = NULL;
    char longer[HSM_PEER_MAX + 2];

    assert_int_equal(hsm_conn_open(f->hsm, &a2), CKR_OK);
    assert_int_equal(hsm_conn_set_peer_class(a2, "uid=1000"), CKR_OK);
    assert_int_equal(hsm_login(a2, HSM_LOGIN_USER, "alice", PW(A_PW)), CKR_OK);
    assert_int_equal(hsm_login_ticket(a2, f->t), CKR_OK);
    /* no class, another uid: refused */
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_conn_set_peer_class(f->far, "uid=1001"), CKR_OK);
    assert_int_equal(hsm_login_redeem(f->far, f->t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    assert_int_equal(hsm_conn_set_peer_class(f->far, "uid=1000"), CKR_OK);
    assert_int_equal(hsm_login_redeem(f->far, f->t, HSM_TICKET_LEN), CKR_OK);
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    assert_int_equal(hsm_conn_set_peer_class(f->app, longer),
                     CKR_ARGUMENTS_BAD);
    hsm_conn_close(a2);
}

/* On a cluster's node the key comes from the cluster masking key: a
 * node without it (or with another) does not take the ticket, one with
 * the same does. */
static void test_cluster_key(void **state)
{
    struct fixture *f = *state;
    uint8_t *k1 = crypto_secret_alloc(32), *k2 = crypto_secret_alloc(32);

    assert_non_null(k1);
    assert_non_null(k2);
    memset(k1, 0x11, 32);
    memset(k2, 0x11, 32);
    f->hsm->ckey = k1;
    assert_int_equal(hsm_login_ticket(f->a, f->t), CKR_OK);
    /* node2: the same store master key, no cluster key */
    assert_int_equal(hsm_login_redeem(f->far, f->t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    k2[31] ^= 1;
    f->node2->ckey = k2;
    assert_int_equal(hsm_login_redeem(f->far, f->t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    k2[31] ^= 1;
    assert_int_equal(hsm_login_redeem(f->far, f->t, HSM_TICKET_LEN), CKR_OK);
}

/* A clone made from the same cluster key (another cluster id) does not
 * take this cluster's tickets. */
static void test_cluster_other_id(void **state)
{
    struct fixture *f = *state;
    uint8_t *k1 = crypto_secret_alloc(32), *k2 = crypto_secret_alloc(32);

    assert_non_null(k1);
    assert_non_null(k2);
    memset(k1, 0x22, 32);
    memset(k2, 0x22, 32);
    snprintf(f->hsm->cfg.cluster_id, sizeof(f->hsm->cfg.cluster_id), "src");
    snprintf(f->node2->cfg.cluster_id, sizeof(f->node2->cfg.cluster_id),
             "clone");
    f->hsm->ckey = k1;
    f->node2->ckey = k2;
    assert_int_equal(hsm_login_ticket(f->a, f->t), CKR_OK);
    assert_int_equal(hsm_login_redeem(f->far, f->t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    snprintf(f->node2->cfg.cluster_id, sizeof(f->node2->cfg.cluster_id),
             "src");
    assert_int_equal(hsm_login_redeem(f->far, f->t, HSM_TICKET_LEN), CKR_OK);
}

/* The cluster key's domain: the id of the cluster that made it, kept
 * sealed with the key, handed on with it, and refused when malformed or
 * when it contradicts the one a node holds. */
static void test_cluster_key_domain(void **state)
{
    struct fixture *f = *state;
    uint8_t key[HSM_CLUSTER_KEY_LEN];
    char domain[CONFIG_CLUSTER_ID_MAX + 1];
    struct config cfg = f->cfg;
    hsm_t *clone = NULL;
    bool have = false;
    char path[128];

    snprintf(f->hsm->cfg.cluster_id, sizeof(f->hsm->cfg.cluster_id), "src-1");
    assert_int_equal(hsm_cluster_key_export(f->hsm, key, domain),
                     CKR_KEY_NEEDED);
    assert_string_equal(hsm_cluster_domain(f->hsm), "src-1");
    assert_int_equal(hsm_cluster_key_create(f->hsm), CKR_OK);
    assert_int_equal(hsm_cluster_key_create(f->hsm), CKR_FUNCTION_FAILED);
    assert_int_equal(hsm_cluster_key_export(f->hsm, key, domain), CKR_OK);
    assert_string_equal(domain, "src-1");
    /* another core on the same store reads key and domain back */
    snprintf(f->node2->cfg.cluster_id, sizeof(f->node2->cfg.cluster_id),
             "src-1");
    assert_int_equal(hsm_cluster_key_load(f->node2, &have), CKR_OK);
    assert_true(have);
    assert_string_equal(hsm_cluster_domain(f->node2), "src-1");
    assert_memory_equal(hsm_cluster_key(f->node2), key, HSM_CLUSTER_KEY_LEN);

    /* a clone: its own store and cluster id, the source's key and domain */
    snprintf(path, sizeof(path), "%s/clone", f->dir);
    snprintf(cfg.store, sizeof(cfg.store), "%s", path);
    snprintf(cfg.cluster_id, sizeof(cfg.cluster_id), "clone-1");
    assert_int_equal(hsm_open(&cfg, &clone), CKR_OK);
    assert_int_equal(hsm_init_token(clone, NULL, PW(CO_PW), "cln"), CKR_OK);
    assert_int_equal(hsm_cluster_key_import(clone, key, "bad domain"),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(hsm_cluster_key_import(clone, key, ""),
                     CKR_ARGUMENTS_BAD);
    assert_null(hsm_cluster_key(clone));
    assert_int_equal(hsm_cluster_key_import(clone, key, "src-1"), CKR_OK);
    assert_string_equal(hsm_cluster_domain(clone), "src-1");
    /* the same again is fine; another domain or key is not */
    assert_int_equal(hsm_cluster_key_import(clone, key, "src-1"), CKR_OK);
    assert_int_equal(hsm_cluster_key_import(clone, key, "src-2"),
                     CKR_FUNCTION_FAILED);
    key[0] ^= 1;
    assert_int_equal(hsm_cluster_key_import(clone, key, "src-1"),
                     CKR_FUNCTION_FAILED);
    key[0] ^= 1;
    hsm_close(clone);
    /* reopened: the domain came back from the store */
    clone = NULL;
    assert_int_equal(hsm_open(&cfg, &clone), CKR_OK);
    assert_int_equal(hsm_cluster_key_load(clone, &have), CKR_OK);
    assert_true(have);
    assert_string_equal(hsm_cluster_domain(clone), "src-1");
    hsm_close(clone);
    /* the sealed row binds the cluster id: under another id it does not
     * open (a store copied into another cluster) */
    snprintf(cfg.cluster_id, sizeof(cfg.cluster_id), "clone-2");
    clone = NULL;
    assert_int_equal(hsm_open(&cfg, &clone), CKR_OK);
    assert_int_equal(hsm_cluster_key_load(clone, &have), CKR_DEVICE_ERROR);
    hsm_close(clone);
    util_wipe(key, sizeof(key));
}

static void test_off(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(hsm_login_ticket(f->a, f->t), CKR_FUNCTION_NOT_SUPPORTED);
    memset(f->t, 0, sizeof(f->t));
    assert_int_equal(hsm_login_redeem(f->app, f->t, HSM_TICKET_LEN),
                     CKR_FUNCTION_NOT_SUPPORTED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_issue_redeem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_logged_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_hsm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_class, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_other_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_key_domain, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_off, setup_off, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
