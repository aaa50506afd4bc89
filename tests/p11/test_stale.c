/*
 * test_stale.c - logins that outlive their user, CKA_ALWAYS_AUTHENTICATE and context-specific login, and secrets in memory after logout (issue 11).
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11util.h"

/* The configuration switch this group's rules answer to is accepted. */
static void test_stale_config(void **state)
{
    (void)state;
    assert_rv(p11_fresh_rv("login_failure_limit = 5\n"), CKR_OK);
}

int p11_group_stale(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, p11_setup, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_stale_config),
    };
#undef T

    return cmocka_run_group_tests_name("stale logins and always-authenticate", tests, NULL, NULL);
}
