/*
 * test_stale.c - logins that outlive their user, CKA_ALWAYS_AUTHENTICATE
 * and context-specific login, secrets in memory after logout, and the
 * key generation / logout race.
 */
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "p11util.h"

#define ALICE_PIN "alice:" P11_ALICE_PW

static int setup_alice(void **state)
{
    (void)state;
    p11_fresh(NULL);
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    return 0;
}

/* The configuration switch this group's rules answer to is accepted. */
static void test_stale_config(void **state)
{
    (void)state;
    assert_rv(p11_fresh_rv("login_failure_limit = 5\n"), CKR_OK);
}

/* ------------------------------------------------ keygen vs logout race */

/* Until this many keys are made, or this many calls are tried. */
#define RACE_KEYS 150
#define RACE_CALLS 100000
#define RACE_LABEL "race"

struct race {
    CK_SESSION_HANDLE gen_s, login_s;
    volatile int done;
    unsigned long ok, other;
    CK_RV odd; /* the first code that is neither OK nor not-logged-in */
};

static void *race_generate(void *arg)
{
    struct race *r = arg;
    CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
    CK_BBOOL yes = CK_TRUE;
    CK_ULONG len = 16;
    CK_ATTRIBUTE t[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {CKA_LABEL, RACE_LABEL, sizeof(RACE_LABEL) - 1},
    };

    for (int i = 0; i < RACE_CALLS && r->ok < RACE_KEYS; i++) {
        CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
        CK_RV rv = p11->C_GenerateKey(r->gen_s, &m, t, 4, &h);

        if (rv == CKR_OK) {
            r->ok++;
        } else if (rv != CKR_USER_NOT_LOGGED_IN) {
            if (r->other++ == 0)
                r->odd = rv;
        }
    }
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *race_relogin(void *arg)
{
    struct race *r = arg;

    while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE)) {
        (void)p11->C_Logout(r->login_s);
        (void)p11_login(r->login_s, CKU_USER, ALICE_PIN);
        usleep(2000); /* let some generations finish while logged in */
    }
    return NULL;
}

/*
 * One thread generates token keys while another logs the application out
 * and in: every key stored was reported CKR_OK, every failure is
 * CKR_USER_NOT_LOGGED_IN and stored nothing.
 */
static void test_keygen_logout_race(void **state)
{
    struct race r;
    pthread_t a, b;
    CK_ULONG stored;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.gen_s = p11_open_rw();
    r.login_s = p11_open_rw();
    p11_login_cu(r.login_s, "alice", P11_ALICE_PW);
    assert_int_equal(pthread_create(&a, NULL, race_generate, &r), 0);
    assert_int_equal(pthread_create(&b, NULL, race_relogin, &r), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    (void)p11->C_Logout(r.login_s);
    p11_login_cu(r.login_s, "alice", P11_ALICE_PW);
    stored = p11_count_label(r.login_s, RACE_LABEL);
    print_message("race: %lu ok, %lu other (first %s), %lu stored\n", r.ok,
                  r.other, p11_rv_name(r.odd), (unsigned long)stored);
    assert_int_equal(r.other, 0);
    assert_int_equal(stored, r.ok);
}

int p11_group_stale(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, p11_setup, p11_teardown)
#define A(f) cmocka_unit_test_setup_teardown(f, setup_alice, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_stale_config),
        A(test_keygen_logout_race),
    };
#undef A
#undef T

    return cmocka_run_group_tests_name("stale logins and always-authenticate",
                                       tests, NULL, NULL);
}
