/*
 * test_public.c - public sessions (issue 12): a session that is not logged in finds and reads public token objects and draws random numbers, nothing else; public_objects = hidden.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11util.h"

/* The configuration switch this group's rules answer to is accepted. */
static void test_public_config(void **state)
{
    (void)state;
    assert_rv(p11_fresh_rv("public_objects = hidden\n"), CKR_OK);
}

int p11_group_public(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, p11_setup, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_public_config),
    };
#undef T

    return cmocka_run_group_tests_name("public objects", tests, NULL, NULL);
}
