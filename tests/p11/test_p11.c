/*
 * test_p11.c - the module suite: loads libnimbus-pkcs11.so like an
 * application and checks the behaviour contract function by function.
 * Runs every group; the exit status is the number of failed tests (capped).
 */
#include <stdio.h>
#include <stdlib.h>

#include "p11util.h"

int main(void)
{
    int failed = 0;

    if (p11_load() != 0) {
        return 99; /* automake: hard error, the module did not load */
    }
    failed += p11_group_sessions();
    failed += p11_group_login();
    failed += p11_group_objects();
    failed += p11_group_roles();
    failed += p11_group_crypto();
    failed += p11_group_sym();
    failed += p11_group_protect();
    failed += p11_group_separation();
    failed += p11_group_stale();
    failed += p11_group_robust();
    failed += p11_group_public();
    failed += p11_group_corners();
    p11_cleanup();
    unsetenv("NIMBUS_CONF");
    if (failed > 0) {
        fprintf(stderr, "test_p11: %d test(s) failed\n", failed);
    }
    return failed > 90 ? 90 : failed;
}
