/*
 * test_protect.c - key protection (issue 11): derived keys inherit protection, template-fixed attributes stay fixed, usage flags bound what a key computes, unwrap is not decryption.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11util.h"

/* The configuration switch this group's rules answer to is accepted. */
static void test_protect_config(void **state)
{
    (void)state;
    assert_rv(p11_fresh_rv("key_separation = on\n"), CKR_OK);
}

int p11_group_protect(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, p11_setup, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_protect_config),
    };
#undef T

    return cmocka_run_group_tests_name("key protection", tests, NULL, NULL);
}
