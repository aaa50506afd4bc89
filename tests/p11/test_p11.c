/*
 * test_p11.c - the module suite: loads libnimbus-pkcs11.so like an
 * application and checks the behaviour contract function by function.
 * Runs every group (or those NIMBUS_P11_GROUPS names); the exit status is
 * the number of failed tests (capped). NIMBUS_TEST_REMOTE=unix|tls runs it
 * against a nimbusd per store (p11util.h); a daemon that crashed or did
 * not stop cleanly counts as a failure.
 */
#include <stdio.h>
#include <stdlib.h>

#include "p11util.h"

#define GROUP(name)                                                            \
    do {                                                                       \
        if (p11_group_wanted(#name)) {                                         \
            failed += p11_group_##name();                                      \
        }                                                                      \
    } while (0)

int main(void)
{
    int failed = 0;

    if (p11_load() != 0) {
        return 99; /* automake: hard error, the module did not load */
    }
    GROUP(sessions);
    GROUP(login);
    GROUP(objects);
    GROUP(roles);
    GROUP(crypto);
    GROUP(sym);
    GROUP(protect);
    GROUP(separation);
    GROUP(stale);
    GROUP(robust);
    GROUP(public);
    GROUP(corners);
    p11_cleanup();
    unsetenv("NIMBUS_CONF");
    if (p11_remote_failures() > 0) {
        fprintf(stderr, "test_p11: %d nimbusd run(s) did not end cleanly\n",
                p11_remote_failures());
        failed += p11_remote_failures();
    }
    if (failed > 0) {
        fprintf(stderr, "test_p11: %d test(s) failed\n", failed);
    }
    return failed > 90 ? 90 : failed;
}
