/*
 * loginbench.c - how much a run of wrong-password logins on one connection
 * slows another connection's calls on the same token. A benchmark, not a
 * test: it prints figures.
 *
 *   loginbench [CALLS]
 *     CALLS  hsm_token_info calls timed per phase (default 1000)
 *
 * On one hsm_t (a temporary store, the default KDF cost unless
 * NIMBUS_BENCH_KDF_ITERATIONS is set) with two connections, it times
 * hsm_token_info on connection B alone, then while a thread runs
 * wrong-password logins on connection A, and prints p50/p99/max of both and
 * their ratio. A phase stops after 30 s whatever the count. Calls are spaced 1
 * ms apart so that they sample the whole run of logins.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hsm/hsm.h"

#define PW(s) (const uint8_t *)(s), strlen(s)

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static int stop;
static unsigned long logins;

static void *guess(void *arg)
{
    hsm_conn_t *conn = arg;

    while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
        if (hsm_login(conn, HSM_LOGIN_USER, NULL, PW("wrong-password")) !=
            CKR_PIN_INCORRECT) {
            fprintf(stderr, "loginbench: a wrong login did not fail\n");
            exit(1);
        }
        logins++;
    }
    return NULL;
}

/* Times up to n hsm_token_info calls on conn into t (ms), sorted, for at
 * most 30 s (a call may wait for many logins); returns how many. */
static int sample(hsm_t *hsm, hsm_conn_t *conn, double *t, int n)
{
    hsm_token_info_t ti;
    double end = now_ms() + 30000;
    int i;

    for (i = 0; i < n && now_ms() < end; i++) {
        double t0 = now_ms();

        if (hsm_token_info(hsm, conn, &ti) != CKR_OK) {
            fprintf(stderr, "loginbench: hsm_token_info failed\n");
            exit(1);
        }
        t[i] = now_ms() - t0;
        usleep(1000);
    }
    qsort(t, (size_t)i, sizeof(*t), cmp_double);
    return i;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    char dir[] = "/tmp/nimbus-loginbench-XXXXXX", cmd[96];
    const char *iter = getenv("NIMBUS_BENCH_KDF_ITERATIONS");
    struct config cfg;
    hsm_t *hsm = NULL;
    hsm_conn_t *a = NULL, *b = NULL;
    double *alone, *busy, t0, kdf;
    pthread_t th;
    int rc = 1, na = 0, nb = 0;

    alone = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    busy = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    if (n <= 0 || alone == NULL || busy == NULL || mkdtemp(dir) == NULL) {
        fprintf(stderr, "usage: loginbench [CALLS]\n");
        return 2;
    }
    config_defaults(&cfg);
    snprintf(cfg.store, sizeof(cfg.store), "%s/store", dir);
    if (iter != NULL)
        cfg.kdf_iterations = strtoul(iter, NULL, 10);
    cfg.login_failure_limit = 1000000; /* the guesses never lock */
    if (hsm_open(&cfg, &hsm) != CKR_OK || hsm_conn_open(hsm, &a) != CKR_OK ||
        hsm_conn_open(hsm, &b) != CKR_OK ||
        hsm_init_token(hsm, NULL, PW("bench-co-pw"), "bench") != CKR_OK ||
        hsm_login(a, HSM_LOGIN_SO, NULL, PW("bench-co-pw")) != CKR_OK ||
        hsm_init_pin(a, "user", PW("bench-user-pw")) != CKR_OK ||
        hsm_logout(a) != CKR_OK) {
        fprintf(stderr, "loginbench: cannot set up the token\n");
        goto out;
    }
    t0 = now_ms();
    if (hsm_login(a, HSM_LOGIN_USER, NULL, PW("wrong-password")) !=
        CKR_PIN_INCORRECT)
        goto out;
    kdf = now_ms() - t0;

    na = sample(hsm, b, alone, n);
    if (pthread_create(&th, NULL, guess, a) != 0)
        goto out;
    nb = sample(hsm, b, busy, n);
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);

    printf("kdf_iterations %lu: one wrong login %.1f ms; %lu logins during "
           "the second phase\n",
           (unsigned long)cfg.kdf_iterations, kdf, logins);
    printf("hsm_token_info alone          (%4d calls): p50 %8.3f ms  p99 "
           "%8.3f ms  max %8.3f ms\n",
           na, alone[na / 2], alone[na * 99 / 100], alone[na - 1]);
    printf("hsm_token_info during logins  (%4d calls): p50 %8.3f ms  p99 "
           "%8.3f ms  max %8.3f ms\n",
           nb, busy[nb / 2], busy[nb * 99 / 100], busy[nb - 1]);
    printf("ratio during/alone: p50 %.1f  p99 %.1f\n",
           busy[nb / 2] / alone[na / 2],
           busy[nb * 99 / 100] / alone[na * 99 / 100]);
    rc = 0;
out:
    if (hsm != NULL)
        hsm_close(hsm);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    free(alone);
    free(busy);
    return rc;
}
