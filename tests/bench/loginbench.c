/*
 * loginbench.c - how much slow work on one connection (wrong-password
 * logins, RSA-4096 key generation) slows another connection's calls on the
 * same token. A benchmark, not a test: it prints figures.
 *
 *   loginbench [CALLS]
 *     CALLS  calls timed per phase (default 1000)
 *
 * On one hsm_t (a temporary store, the default KDF cost unless
 * NIMBUS_BENCH_KDF_ITERATIONS is set) with three connections, it times on
 * connection B, alone and while another connection works:
 * - hsm_token_info, while A runs wrong-password logins;
 * - an ECDSA P-256 signature with a token key (hsm_op_init + one-shot over
 *   32 bytes: C_SignInit + C_Sign), alone, while A runs wrong-password
 *   logins, and while C generates RSA-4096 token key pairs (and destroys
 *   them: store writes too);
 * and prints p50/p99/max and the ratio of each loaded phase to the
 * unloaded one. A phase stops after 30 s whatever the count; the keygen
 * phase runs until at least 3 key pairs are made. Calls are spaced 1 ms
 * apart so that they sample the whole run of the other work.
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
static unsigned long logins, keygens;

static bool running(void)
{
    return !__atomic_load_n(&stop, __ATOMIC_ACQUIRE);
}

static void *guess(void *arg)
{
    hsm_conn_t *conn = arg;

    while (running()) {
        if (hsm_login(conn, HSM_LOGIN_USER, NULL, PW("wrong-password")) !=
            CKR_PIN_INCORRECT) {
            fprintf(stderr, "loginbench: a wrong login did not fail\n");
            exit(1);
        }
        __atomic_add_fetch(&logins, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* The CU's session on a connection of its own, for the keygen thread. */
struct kg {
    hsm_conn_t *conn;
    hsm_sid_t sid;
};

static CK_RV gen_pair(hsm_conn_t *conn, hsm_sid_t sid, bool rsa, hsm_oid_t *pub,
                      hsm_oid_t *priv)
{
    static const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                   0xce, 0x3d, 0x03, 0x01, 0x07};
    static const uint8_t e[] = {0x01, 0x00, 0x01};
    CK_ULONG bits = 4096;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE pt_rsa[] = {{CKA_TOKEN, &yes, sizeof(yes)},
                             {CKA_MODULUS_BITS, &bits, sizeof(bits)},
                             {CKA_PUBLIC_EXPONENT, (void *)e, sizeof(e)}};
    CK_ATTRIBUTE pt_ec[] = {{CKA_TOKEN, &yes, sizeof(yes)},
                            {CKA_EC_PARAMS, (void *)p256, sizeof(p256)}};
    CK_ATTRIBUTE vt[] = {{CKA_TOKEN, &yes, sizeof(yes)},
                         {CKA_SIGN, &yes, sizeof(yes)}};
    hsm_mech_t m = {.type =
                        rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN};

    return hsm_generate_key_pair(conn, sid, &m, rsa ? pt_rsa : pt_ec,
                                 rsa ? 3 : 2, vt, 2, pub, priv);
}

static void *keygen(void *arg)
{
    struct kg *k = arg;

    while (running()) {
        hsm_oid_t pub = 0, priv = 0;

        if (gen_pair(k->conn, k->sid, true, &pub, &priv) != CKR_OK ||
            hsm_object_destroy(k->conn, k->sid, pub) != CKR_OK ||
            hsm_object_destroy(k->conn, k->sid, priv) != CKR_OK) {
            fprintf(stderr, "loginbench: an RSA-4096 key pair failed\n");
            exit(1);
        }
        __atomic_add_fetch(&keygens, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

/* What a phase times on connection B. */
struct target {
    hsm_t *hsm;
    hsm_conn_t *conn;
    hsm_sid_t sid;
    hsm_oid_t key; /* 0: hsm_token_info; else ECDSA with this key */
};

static void timed_call(const struct target *t)
{
    hsm_token_info_t ti;
    hsm_mech_t ecdsa = {.type = CKM_ECDSA};
    uint8_t digest[32] = {1}, sig[80];
    size_t siglen = sizeof(sig);

    if (t->key == 0) {
        if (hsm_token_info(t->hsm, t->conn, &ti) == CKR_OK)
            return;
    } else if (hsm_op_init(t->conn, t->sid, HSM_OPK_SIGN, &ecdsa, t->key) ==
                   CKR_OK &&
               hsm_op_oneshot(t->conn, t->sid, HSM_OPK_SIGN, digest,
                              sizeof(digest), sig, &siglen) == CKR_OK &&
               siglen == 64) {
        return;
    }
    fprintf(stderr, "loginbench: a timed call failed\n");
    exit(1);
}

/* Times up to n calls into t (ms), sorted, for at most 30 s (and, when
 * until is not NULL, until *until reaches min); returns how many. */
static int sample(const struct target *tg, double *t, int n,
                  const unsigned long *until, unsigned long min)
{
    double end = now_ms() + 30000;
    int i = 0;

    while (now_ms() < end &&
           (i < n || (until != NULL &&
                      __atomic_load_n(until, __ATOMIC_RELAXED) < min))) {
        double t0 = now_ms();

        timed_call(tg);
        t[i % n] = now_ms() - t0; /* past n: the newest n are kept */
        i++;
        usleep(1000);
    }
    if (i > n)
        i = n;
    qsort(t, (size_t)i, sizeof(*t), cmp_double);
    return i;
}

struct phase {
    const char *name;
    double *t;
    int n;
};

static void report(const struct phase *p, const struct phase *base)
{
    printf("  %-30s (%4d calls): p50 %8.3f ms  p99 %8.3f ms  max %8.3f ms",
           p->name, p->n, p->t[p->n / 2], p->t[p->n * 99 / 100],
           p->t[p->n - 1]);
    if (base != NULL)
        printf("  ratio p50 %.2f p99 %.2f",
               p->t[p->n / 2] / base->t[base->n / 2],
               p->t[p->n * 99 / 100] / base->t[base->n * 99 / 100]);
    printf("\n");
}

/* Runs fn on arg while phase p samples tg; the thread is stopped after. */
static int loaded(void *(*fn)(void *), void *arg, const struct target *tg,
                  struct phase *p, int n, const unsigned long *until,
                  unsigned long min)
{
    pthread_t th;

    __atomic_store_n(&stop, 0, __ATOMIC_RELEASE);
    if (pthread_create(&th, NULL, fn, arg) != 0)
        return -1;
    p->n = sample(tg, p->t, n, until, min);
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    char dir[] = "/tmp/nimbus-loginbench-XXXXXX", cmd[96];
    const char *iter = getenv("NIMBUS_BENCH_KDF_ITERATIONS");
    struct config cfg;
    hsm_t *hsm = NULL;
    hsm_conn_t *a = NULL, *b = NULL, *c = NULL;
    struct phase ti_alone = {.name = "token_info alone"},
                 ti_login = {.name = "token_info during logins"},
                 sg_alone = {.name = "ECDSA P-256 sign alone"},
                 sg_login = {.name = "ECDSA sign during logins"},
                 sg_keygen = {.name = "ECDSA sign during RSA keygens"};
    struct phase *all[] = {&ti_alone, &ti_login, &sg_alone, &sg_login,
                           &sg_keygen};
    struct target tg_ti, tg_sign;
    struct kg kg;
    hsm_oid_t pub = 0, priv = 0;
    hsm_sid_t sid_b = 0;
    double t0, kdf;
    int rc = 1;

    if (n <= 0 || mkdtemp(dir) == NULL) {
        fprintf(stderr, "usage: loginbench [CALLS]\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        all[i]->t = calloc((size_t)n, sizeof(double));
        if (all[i]->t == NULL)
            return 2;
    }
    config_defaults(&cfg);
    snprintf(cfg.store, sizeof(cfg.store), "%s/store", dir);
    if (iter != NULL)
        cfg.kdf_iterations = strtoul(iter, NULL, 10);
    cfg.login_failure_limit = 1000000; /* the guesses never lock */
    if (hsm_open(&cfg, &hsm) != CKR_OK || hsm_conn_open(hsm, &a) != CKR_OK ||
        hsm_conn_open(hsm, &b) != CKR_OK || hsm_conn_open(hsm, &c) != CKR_OK ||
        hsm_init_token(hsm, NULL, PW("bench-co-pw"), "bench") != CKR_OK ||
        hsm_login(a, HSM_LOGIN_SO, NULL, PW("bench-co-pw")) != CKR_OK ||
        hsm_init_pin(a, "user", PW("bench-user-pw")) != CKR_OK ||
        hsm_logout(a) != CKR_OK ||
        hsm_login(b, HSM_LOGIN_USER, NULL, PW("bench-user-pw")) != CKR_OK ||
        hsm_session_open(b, true, &sid_b) != CKR_OK ||
        gen_pair(b, sid_b, false, &pub, &priv) != CKR_OK ||
        hsm_login(c, HSM_LOGIN_USER, NULL, PW("bench-user-pw")) != CKR_OK ||
        hsm_session_open(c, true, &kg.sid) != CKR_OK) {
        fprintf(stderr, "loginbench: cannot set up the token\n");
        goto out;
    }
    kg.conn = c;
    tg_ti = (struct target){hsm, b, sid_b, 0};
    tg_sign = (struct target){hsm, b, sid_b, priv};
    t0 = now_ms();
    if (hsm_login(a, HSM_LOGIN_USER, NULL, PW("wrong-password")) !=
        CKR_PIN_INCORRECT)
        goto out;
    kdf = now_ms() - t0;

    ti_alone.n = sample(&tg_ti, ti_alone.t, n, NULL, 0);
    if (loaded(guess, a, &tg_ti, &ti_login, n, NULL, 0) != 0)
        goto out;
    sg_alone.n = sample(&tg_sign, sg_alone.t, n, NULL, 0);
    logins = 0;
    if (loaded(guess, a, &tg_sign, &sg_login, n, NULL, 0) != 0)
        goto out;
    if (loaded(keygen, &kg, &tg_sign, &sg_keygen, n, &keygens, 3) != 0)
        goto out;

    printf("kdf_iterations %lu: one wrong login %.1f ms; %lu wrong logins "
           "during the ECDSA phase, %lu RSA-4096 key pairs during theirs\n",
           (unsigned long)cfg.kdf_iterations, kdf, logins, keygens);
    report(&ti_alone, NULL);
    report(&ti_login, &ti_alone);
    report(&sg_alone, NULL);
    report(&sg_login, &sg_alone);
    report(&sg_keygen, &sg_alone);
    rc = 0;
out:
    if (hsm != NULL)
        hsm_close(hsm);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        free(all[i]->t);
    return rc;
}
