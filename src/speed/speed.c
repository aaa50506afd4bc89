/*
 * speed.c - nimbus-speed: measures a PKCS#11 module (and optionally a
 * second one and OpenSSL 3 itself) operation by operation, with T threads
 * each on its own session started together, alternating the backends in
 * short rounds so that every figure can be read as a ratio from one run.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "speed.h"

#define SP_RESERVOIR 4096 /* latencies kept per thread and backend */
#define SP_ROUND 0.333    /* seconds a backend runs before the next */
#define SP_WARMUP 0.1     /* untimed seconds per backend first */
#define SP_MAX_OPS 64     /* operations in one run */
#define SP_MAX_OBJECTS 10000000UL
#define SP_MAX_SECONDS 3600.0
#define SP_WHY 200
#define SP_DEFAULT_MODULE "libnimbus-pkcs11.so"

uint8_t sp_aes_key[SP_KEY_LEN];
uint8_t sp_hmac_key[SP_KEY_LEN];

/* ------------------------------------------------------------ operations */

#define SIGN(n, k, m, p, d)                                                    \
    {                                                                          \
        .name = (n), .kind = SP_SIGN, .key = (k), .mech = (m),                 \
        .len = SP_MSG_LEN, .pss = (p), .md = (d)                               \
    }
#define VERIFY(n, k, m, d)                                                     \
    {                                                                          \
        .name = (n), .kind = SP_VERIFY, .key = (k), .mech = (m),               \
        .len = SP_MSG_LEN, .md = (d)                                           \
    }
#define DATA(n, kd, k, m, l)                                                   \
    {                                                                          \
        .name = (n), .kind = (kd), .key = (k), .mech = (m), .len = (l),        \
        .data = 1                                                              \
    }
#define PLAIN(n, kd, m, l)                                                     \
    {                                                                          \
        .name = (n), .kind = (kd), .key = SP_KEY_NONE, .mech = (m), .len = (l) \
    }

/* The issue 7 list, in the order it runs; login last (C_Logout destroys
 * the private session keys). find-label-N is made once per --objects N. */
static const struct sp_op sp_ops[] = {
    SIGN("rsa2048-sign-pkcs1", SP_KEY_RSA2048, CKM_SHA256_RSA_PKCS, 0,
         "SHA256"),
    SIGN("rsa2048-sign-pss", SP_KEY_RSA2048, CKM_SHA256_RSA_PKCS_PSS, 1,
         "SHA256"),
    SIGN("rsa3072-sign-pkcs1", SP_KEY_RSA3072, CKM_SHA256_RSA_PKCS, 0,
         "SHA256"),
    SIGN("rsa3072-sign-pss", SP_KEY_RSA3072, CKM_SHA256_RSA_PKCS_PSS, 1,
         "SHA256"),
    VERIFY("rsa2048-verify", SP_KEY_RSA2048, CKM_SHA256_RSA_PKCS, "SHA256"),
    VERIFY("rsa3072-verify", SP_KEY_RSA3072, CKM_SHA256_RSA_PKCS, "SHA256"),
    SIGN("ecdsa-p256-sign", SP_KEY_P256, CKM_ECDSA_SHA256, 0, "SHA256"),
    {.name = "ecdsa-p256-sign-login-load",
     .kind = SP_SIGN,
     .key = SP_KEY_P256,
     .mech = CKM_ECDSA_SHA256,
     .len = SP_MSG_LEN,
     .md = "SHA256",
     .login_load = 1},
    VERIFY("ecdsa-p256-verify", SP_KEY_P256, CKM_ECDSA_SHA256, "SHA256"),
    SIGN("ecdsa-p384-sign", SP_KEY_P384, CKM_ECDSA_SHA384, 0, "SHA384"),
    VERIFY("ecdsa-p384-verify", SP_KEY_P384, CKM_ECDSA_SHA384, "SHA384"),
    SIGN("ed25519-sign", SP_KEY_ED25519, CKM_EDDSA, 0, NULL),
    {.name = "ecdh-p256-derive",
     .kind = SP_DERIVE,
     .key = SP_KEY_P256_DH,
     .mech = CKM_ECDH1_DERIVE},
    DATA("aes256-gcm-enc-16", SP_ENCRYPT, SP_KEY_AES, CKM_AES_GCM, 16),
    DATA("aes256-gcm-enc-4k", SP_ENCRYPT, SP_KEY_AES, CKM_AES_GCM, 4096),
    DATA("aes256-gcm-enc-1m", SP_ENCRYPT, SP_KEY_AES, CKM_AES_GCM, 1024 * 1024),
    DATA("aes256-cbc-pad-4k", SP_ENCRYPT, SP_KEY_AES, CKM_AES_CBC_PAD, 4096),
    DATA("hmac-sha256-4k", SP_MAC, SP_KEY_HMAC, CKM_SHA256_HMAC, 4096),
    DATA("sha256-4k", SP_DIGEST, SP_KEY_NONE, CKM_SHA256, 4096),
    DATA("sha256-1m", SP_DIGEST, SP_KEY_NONE, CKM_SHA256, 1024 * 1024),
    PLAIN("random-32", SP_RANDOM, CK_UNAVAILABLE_INFORMATION, 32),
    PLAIN("aes-keygen", SP_KEYGEN_AES, CKM_AES_KEY_GEN, 0),
    PLAIN("aes-keygen-token", SP_KEYGEN_AES_TOKEN, CKM_AES_KEY_GEN, 0),
    PLAIN("ec-p256-keygen", SP_KEYGEN_EC, CKM_EC_KEY_PAIR_GEN, 0),
    PLAIN("session-open-close", SP_SESSION, CK_UNAVAILABLE_INFORMATION, 0),
    PLAIN("find-label-N", SP_FIND, CK_UNAVAILABLE_INFORMATION, 0),
    PLAIN("object-create-destroy", SP_OBJECT, CK_UNAVAILABLE_INFORMATION, 32),
    {.name = "login",
     .kind = SP_LOGIN,
     .mech = CK_UNAVAILABLE_INFORMATION,
     .single_thread = 1},
};
#define SP_NOPS (sizeof(sp_ops) / sizeof(sp_ops[0]))

/* ------------------------------------------------------------ helpers */

void sp_fill(uint8_t *buf, size_t len, unsigned seed)
{
    uint64_t x = 0x2545f4914f6cdd1dULL ^ seed;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
}

const uint8_t *sp_ec_point(const uint8_t *v, size_t len, size_t want)
{
    if (len == want)
        return v;
    if (want < 0x80 && len == want + 2 && v[0] == 0x04 && v[1] == want)
        return v + 2;
    if (want < 0x100 && len == want + 3 && v[0] == 0x04 && v[1] == 0x81 &&
        v[2] == want)
        return v + 3;
    return NULL;
}

const char *sp_rv_name(CK_RV rv, char *buf, size_t len)
{
    static const struct {
        CK_RV rv;
        const char *name;
    } names[] = {
        {CKR_OK, "CKR_OK"},
        {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
        {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
        {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
        {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"},
        {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"},
        {CKR_CURVE_NOT_SUPPORTED, "CKR_CURVE_NOT_SUPPORTED"},
        {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
        {CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED"},
        {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
        {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
        {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
        {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
        {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
        {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
        {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
        {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
        {CKR_SIGNATURE_INVALID, "CKR_SIGNATURE_INVALID"},
        {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"},
        {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"},
        {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
        {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
        {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
        {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
        {CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID"},
        {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
        {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
        {CKR_RANDOM_NO_RNG, "CKR_RANDOM_NO_RNG"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].rv == rv)
            return names[i].name;
    }
    snprintf(buf, len, "CKR_0x%08lx", (unsigned long)rv);
    return buf;
}

static double sp_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long sp_rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;

    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ------------------------------------------------------------ threads */

struct sp_worker {
    pthread_t tid;
    int idx;
    struct sp_bench *b;
    void *st[SP_MAX_BACKENDS];
    float *lat[SP_MAX_BACKENDS]; /* reservoir, microseconds */
    uint64_t seen[SP_MAX_BACKENDS];
    uint64_t rng;
    double t0, t1;
    unsigned long n;
    int err;
    char why[SP_WHY];
};

struct sp_bench {
    pthread_barrier_t go, done;
    int threads;
    int backend; /* which one runs this round */
    double dur;
    int record; /* 0 in the warm-up */
    int quit;
    struct sp_backend *be[SP_MAX_BACKENDS];
    int nbe;
    struct sp_worker w[SP_MAX_THREADS];
};

static void sp_keep(struct sp_worker *w, int b, float us)
{
    uint64_t k = w->seen[b]++;

    if (k < SP_RESERVOIR) {
        w->lat[b][k] = us;
        return;
    }
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    k = w->rng % (k + 1);
    if (k < SP_RESERVOIR)
        w->lat[b][k] = us;
}

static void *sp_worker_main(void *arg)
{
    struct sp_worker *w = arg;
    struct sp_bench *b = w->b;

    for (;;) {
        int bi, record;
        const struct sp_backend *be;
        void *st;
        double t, prev, end;

        pthread_barrier_wait(&b->go);
        if (b->quit)
            break;
        bi = b->backend;
        record = b->record;
        be = b->be[bi];
        st = w->st[bi];
        w->n = 0;
        w->t0 = prev = sp_now();
        end = w->t0 + b->dur;
        do {
            if (be->ops->run(st, w->why, sizeof(w->why)) != 0) {
                w->err = 1;
                break;
            }
            t = sp_now();
            if (record)
                sp_keep(w, bi, (float)((t - prev) * 1e6));
            prev = t;
            w->n++;
        } while (t < end);
        w->t1 = prev;
        pthread_barrier_wait(&b->done);
    }
    return NULL;
}

/* ------------------------------------------------------------ results */

#define SP_MAX_ROUNDS 256 /* rates kept for the paired ratio */

struct sp_res {
    enum sp_status status;
    char why[SP_WHY];
    unsigned long count;
    double seconds;
    double ops; /* per second, all threads */
    double p50, p99;
    /* The rate of each recorded round (sp_best). */
    double rate[SP_MAX_ROUNDS];
    int nrates;
};

struct sp_row {
    const struct sp_op *op;
    int threads;
    unsigned long objects; /* find: objects present */
    long rss_before, rss_after;
    struct sp_res r[SP_MAX_BACKENDS];
};

struct sp_opts {
    const char *module;
    const char *pin;
    const char *so_pin;
    const char *json;
    long slot;
    double seconds;
    int threads[SP_MAX_THREADS];
    int nthreads;
    unsigned long objects[16];
    int nobjects;
    int openssl;
    const char *vs;
    const char *servers; /* endpoints, comma separated */
    const char *tls_cert, *tls_key, *tls_ca;
};

static int sp_cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;

    return (x > y) - (x < y);
}

static void sp_percentiles(struct sp_bench *b, int bi, struct sp_res *r)
{
    size_t n = 0, k = 0;
    float *all;

    for (int i = 0; i < b->threads; i++)
        n += b->w[i].seen[bi] < SP_RESERVOIR ? b->w[i].seen[bi] : SP_RESERVOIR;
    if (n == 0)
        return;
    all = malloc(n * sizeof(*all));
    if (all == NULL)
        return;
    for (int i = 0; i < b->threads; i++) {
        size_t m =
            b->w[i].seen[bi] < SP_RESERVOIR ? b->w[i].seen[bi] : SP_RESERVOIR;

        memcpy(all + k, b->w[i].lat[bi], m * sizeof(*all));
        k += m;
    }
    qsort(all, n, sizeof(*all), sp_cmp_float);
    r->p50 = all[(size_t)((double)(n - 1) * 0.50)];
    r->p99 = all[(size_t)((double)(n - 1) * 0.99)];
    free(all);
}

static void sp_die(const char *be, const char *op, const char *why)
{
    fflush(stdout);
    fprintf(stderr, "nimbus-speed: %s, %s: %s\n", be, op, why);
    exit(1);
}

/* One round of backend bi on every thread; adds to r when recording. */
static void sp_round(struct sp_bench *b, int bi, double dur, int record,
                     struct sp_res *r, const struct sp_op *op)
{
    double t0 = 0, t1 = 0;
    unsigned long n = 0;

    b->backend = bi;
    b->dur = dur;
    b->record = record;
    if (b->be[bi]->loader > 0)
        kill(b->be[bi]->loader, SIGCONT);
    pthread_barrier_wait(&b->go);
    pthread_barrier_wait(&b->done);
    if (b->be[bi]->loader > 0)
        kill(b->be[bi]->loader, SIGSTOP);
    for (int i = 0; i < b->threads; i++) {
        struct sp_worker *w = &b->w[i];

        if (w->err)
            sp_die(b->be[bi]->name, op->name, w->why);
        if (i == 0 || w->t0 < t0)
            t0 = w->t0;
        if (i == 0 || w->t1 > t1)
            t1 = w->t1;
        n += w->n;
    }
    if (record) {
        r->count += n;
        r->seconds += t1 - t0;
        if (r->nrates < SP_MAX_ROUNDS && t1 > t0)
            r->rate[r->nrates++] = (double)n / (t1 - t0);
    }
}

/* Starts backend be's wrong-password client (this program again, with
 * --login-load) and waits until it has stopped itself, ready. */
static void sp_loader_start(struct sp_backend *be, const struct sp_op *op)
{
    pid_t pid;
    int st;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0)
        sp_die(be->name, op->name, "fork failed");
    if (pid == 0) {
        /* It must not outlive this run if the run dies. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (be->conf != NULL)
            setenv("NIMBUS_CONF", be->conf, 1);
        execl("/proc/self/exe", "nimbus-speed", "--login-load", be->path,
              (char *)NULL);
        _exit(127);
    }
    if (waitpid(pid, &st, WUNTRACED) != pid || !WIFSTOPPED(st))
        sp_die(be->name, op->name, "the login-load client did not start");
    be->loader = pid;
}

static void sp_loader_stop(struct sp_backend *be)
{
    if (be->loader <= 0)
        return;
    kill(be->loader, SIGKILL);
    waitpid(be->loader, NULL, 0);
    be->loader = 0;
}

static void sp_measure(struct sp_bench *b, const struct sp_opts *o,
                       struct sp_row *row)
{
    const struct sp_op *op = row->op;
    int act[SP_MAX_BACKENDS], nact = 0, rounds;
    double dur;

    b->threads = row->threads;
    for (int bi = 0; bi < b->nbe; bi++) {
        struct sp_backend *be = b->be[bi];
        struct sp_res *r = &row->r[bi];
        enum sp_status s = SP_OK;
        int i;

        memset(r, 0, sizeof(*r));
        for (i = 0; i < row->threads && s == SP_OK; i++) {
            b->w[i].st[bi] = NULL;
            s = be->ops->prepare(be, op, i, &b->w[i].st[bi], r->why,
                                 sizeof(r->why));
        }
        r->status = s;
        if (s == SP_FAIL)
            sp_die(be->name, op->name, r->why);
        if (s != SP_OK) {
            while (i-- > 0) {
                be->ops->release(b->w[i].st[bi]);
                b->w[i].st[bi] = NULL;
            }
            continue;
        }
        act[nact++] = bi;
    }
    if (nact == 0)
        goto finish;

    for (int i = 0; i < row->threads; i++) {
        struct sp_worker *w = &b->w[i];

        w->idx = i;
        w->b = b;
        w->err = 0;
        w->rng = 0x853c49e6748fea9bULL + (uint64_t)i;
        memset(w->seen, 0, sizeof(w->seen));
    }
    b->quit = 0;
    if (pthread_barrier_init(&b->go, NULL, (unsigned)row->threads + 1) != 0 ||
        pthread_barrier_init(&b->done, NULL, (unsigned)row->threads + 1) != 0)
        sp_die("nimbus-speed", op->name, "pthread_barrier_init failed");
    for (int i = 0; i < row->threads; i++) {
        if (pthread_create(&b->w[i].tid, NULL, sp_worker_main, &b->w[i]) != 0)
            sp_die("nimbus-speed", op->name, "pthread_create failed");
    }
    for (int j = 0; j < nact && op->login_load; j++) {
        if (b->be[act[j]]->path != NULL)
            sp_loader_start(b->be[act[j]], op);
    }
    row->rss_before = sp_rss_kb();
    rounds = (int)ceil(o->seconds / SP_ROUND);
    if (rounds < 1)
        rounds = 1;
    dur = o->seconds / rounds;
    for (int j = 0; j < nact; j++)
        sp_round(b, act[j], dur < SP_WARMUP ? dur : SP_WARMUP, 0, NULL, op);
    /* Alternate, and start each round with the next backend so none is
     * always first after the other's cache damage. */
    for (int k = 0; k < rounds; k++) {
        for (int j = 0; j < nact; j++) {
            int bi = act[(j + k) % nact];

            sp_round(b, bi, dur, 1, &row->r[bi], op);
        }
    }
    row->rss_after = sp_rss_kb();
    for (int j = 0; j < nact; j++)
        sp_loader_stop(b->be[act[j]]);
    b->quit = 1;
    pthread_barrier_wait(&b->go);
    for (int i = 0; i < row->threads; i++)
        pthread_join(b->w[i].tid, NULL);
    pthread_barrier_destroy(&b->go);
    pthread_barrier_destroy(&b->done);
    for (int j = 0; j < nact; j++) {
        int bi = act[j];
        struct sp_res *r = &row->r[bi];

        r->ops = r->seconds > 0 ? (double)r->count / r->seconds : 0;
        sp_percentiles(b, bi, r);
        for (int i = 0; i < row->threads; i++) {
            b->be[bi]->ops->release(b->w[i].st[bi]);
            b->w[i].st[bi] = NULL;
        }
    }
finish:
    for (int bi = 0; bi < b->nbe; bi++) {
        if (b->be[bi]->ops->finish != NULL)
            b->be[bi]->ops->finish(b->be[bi], op);
    }
}

/* ------------------------------------------------------------ output */

/* The reference of the ratio column: OpenSSL, or with --servers the
 * embedded module. */
static const char *sp_ref_name = "openssl";

static const struct sp_res *sp_ref(const struct sp_bench *b,
                                   const struct sp_row *row)
{
    for (int bi = 0; bi < b->nbe; bi++) {
        if (strcmp(sp_ref_name, "openssl") != 0) {
            if (strcmp(b->be[bi]->name, sp_ref_name) == 0 &&
                row->r[bi].status == SP_OK)
                return &row->r[bi];
            continue;
        }
        if (b->be[bi]->path == NULL && row->r[bi].status == SP_OK)
            return &row->r[bi];
    }
    return NULL;
}

static const struct sp_row *sp_one_thread(const struct sp_row *rows, int nrows,
                                          const struct sp_row *row)
{
    for (int i = 0; i < nrows; i++) {
        if (rows[i].op == row->op && rows[i].threads == 1)
            return &rows[i];
    }
    return NULL;
}

/*
 * The rate of the backend's fastest round (ops/s over all threads), or its
 * overall rate when no round was kept. Other load on a shared machine only
 * ever slows a round down, so each backend's fastest round is its least
 * disturbed one: ratios and scaling compare those.
 */
static double sp_best(const struct sp_res *r)
{
    double best = 0;

    for (int k = 0; k < r->nrates; k++) {
        if (r->rate[k] > best)
            best = r->rate[k];
    }
    return best > 0 ? best : r->ops;
}

static double sp_ratio(const struct sp_res *r, const struct sp_res *ref)
{
    double b = sp_best(ref);

    return b > 0 ? sp_best(r) / b : 0;
}

static void sp_header(void)
{
    char ref[16];

    snprintf(ref, sizeof(ref), "/%s", sp_ref_name);
    printf("%-26s %3s %-9s %11s %9s %9s %9s %9s %6s\n", "operation", "T",
           "backend", "ops/s", "MB/s", "p50 us", "p99 us", ref, "/1thr");
    fflush(stdout);
}

static void sp_print(const struct sp_bench *b, const struct sp_row *rows,
                     int nrows, const struct sp_row *row)
{
    const struct sp_res *ref = sp_ref(b, row);
    const struct sp_row *one = sp_one_thread(rows, nrows, row);

    for (int bi = 0; bi < b->nbe; bi++) {
        const struct sp_res *r = &row->r[bi];
        char mb[16] = "-", ratio[16] = "-", scale[16] = "-";

        if (r->status == SP_NOREF && b->be[bi]->path == NULL)
            continue;
        printf("%-26s %3d %-9s ", row->op->name, row->threads, b->be[bi]->name);
        if (r->status == SP_UNSUPPORTED) {
            printf("unsupported (%s)\n", r->why);
            continue;
        }
        if (r->status == SP_NOREF) {
            printf("n/a (%s)\n", r->why);
            continue;
        }
        if (row->op->data)
            snprintf(mb, sizeof(mb), "%.1f",
                     r->ops * (double)row->op->len / 1e6);
        if (ref != NULL && ref != r && ref->ops > 0)
            snprintf(ratio, sizeof(ratio), "%.2f", sp_ratio(r, ref));
        if (one != NULL && one != row && one->r[bi].status == SP_OK &&
            one->r[bi].ops > 0)
            snprintf(scale, sizeof(scale), "%.2f", sp_ratio(r, &one->r[bi]));
        printf("%11.1f %9s %9.1f %9.1f %9s %6s%s%s\n", r->ops, mb, r->p50,
               r->p99, ratio, scale, r->why[0] != '\0' ? "  " : "", r->why);
    }
    fflush(stdout);
}

/* ------------------------------------------------------------ bounds */

static int sp_be_index(const struct sp_bench *b, const char *name)
{
    for (int bi = 0; bi < b->nbe; bi++) {
        if (strcmp(b->be[bi]->name, name) == 0)
            return bi;
    }
    return -1;
}

static const struct sp_res *sp_cell(const struct sp_bench *b,
                                    const struct sp_row *rows, int nrows,
                                    const char *op, int threads, const char *be)
{
    int bi = sp_be_index(b, be);

    if (bi < 0)
        return NULL;
    for (int i = 0; i < nrows; i++) {
        if (strcmp(rows[i].op->name, op) == 0 && rows[i].threads == threads)
            return rows[i].r[bi].status == SP_OK ? &rows[i].r[bi] : NULL;
    }
    return NULL;
}

enum sp_measure_kind { SP_RATE, SP_P50, SP_P99 };

struct sp_bound {
    const char *what;
    const char *op, *be;
    int threads;
    const char *op2, *be2; /* the denominator; NULL: the value itself */
    int threads2;
    enum sp_measure_kind m;
    double limit; /* 0: no bound, the figure is given */
    int at_most;  /* the value must stay <= limit */
};

/* Issue 13's performance bounds, each read from this run's rows. */
static const struct sp_bound sp_bounds[] = {
    {"unix/embedded RSA-2048 sign T1", "rsa2048-sign-pkcs1", "unix", 1,
     "rsa2048-sign-pkcs1", "embedded", 1, SP_RATE, 0.90, 0},
    {"unix/embedded ECDSA P-256 sign T1", "ecdsa-p256-sign", "unix", 1,
     "ecdsa-p256-sign", "embedded", 1, SP_RATE, 0.60, 0},
    {"unix/embedded AES-256-GCM 1 MiB T1", "aes256-gcm-enc-1m", "unix", 1,
     "aes256-gcm-enc-1m", "embedded", 1, SP_RATE, 0.50, 0},
    {"unix/embedded AES-256-GCM 16 B T1", "aes256-gcm-enc-16", "unix", 1,
     "aes256-gcm-enc-16", "embedded", 1, SP_RATE, 0, 0},
    {"unix/embedded AES-256-GCM 4 KiB T1", "aes256-gcm-enc-4k", "unix", 1,
     "aes256-gcm-enc-4k", "embedded", 1, SP_RATE, 0, 0},
    {"unix C_GenerateRandom(32) p50 us", "random-32", "unix", 1, NULL, NULL, 0,
     SP_P50, 15.0, 1},
    {"unix ECDSA P-256 sign T8/T1", "ecdsa-p256-sign", "unix", 8,
     "ecdsa-p256-sign", "unix", 1, SP_RATE, 1.7, 0},
    {"unix/p11-kit ECDSA P-256 sign T8", "ecdsa-p256-sign", "unix", 8,
     "ecdsa-p256-sign", "p11-kit", 8, SP_RATE, 1.5, 0},
    {"tls/unix RSA-2048 sign T1", "rsa2048-sign-pkcs1", "tls", 1,
     "rsa2048-sign-pkcs1", "unix", 1, SP_RATE, 0.85, 0},
    {"unix ECDSA sign p99 login-load/none", "ecdsa-p256-sign-login-load",
     "unix", 1, "ecdsa-p256-sign", "unix", 1, SP_P99, 2.0, 1},
    {"embedded ECDSA sign p99 login-load/none", "ecdsa-p256-sign-login-load",
     "embedded", 1, "ecdsa-p256-sign", "embedded", 1, SP_P99, 0, 1},
    {"p11-kit/embedded RSA-2048 sign T1", "rsa2048-sign-pkcs1", "p11-kit", 1,
     "rsa2048-sign-pkcs1", "embedded", 1, SP_RATE, 0, 0},
    {"p11-kit/embedded ECDSA P-256 sign T1", "ecdsa-p256-sign", "p11-kit", 1,
     "ecdsa-p256-sign", "embedded", 1, SP_RATE, 0, 0},
    {"p11-kit C_GenerateRandom(32) p50 us", "random-32", "p11-kit", 1, NULL,
     NULL, 0, SP_P50, 0, 1},
};

static double sp_value(const struct sp_res *r, enum sp_measure_kind m)
{
    return m == SP_RATE ? sp_best(r) : m == SP_P50 ? r->p50 : r->p99;
}

/* One line per bound whose rows this run measured. */
static void sp_print_bounds(const struct sp_bench *b, const struct sp_row *rows,
                            int nrows)
{
    int header = 0;

    for (size_t i = 0; i < sizeof(sp_bounds) / sizeof(sp_bounds[0]); i++) {
        const struct sp_bound *k = &sp_bounds[i];
        const struct sp_res *x =
            sp_cell(b, rows, nrows, k->op, k->threads, k->be);
        const struct sp_res *y =
            k->op2 == NULL
                ? NULL
                : sp_cell(b, rows, nrows, k->op2, k->threads2, k->be2);
        double v;
        char want[24] = "", p50[24];

        if (x == NULL ||
            (k->op2 != NULL && (y == NULL || sp_value(y, k->m) <= 0)))
            continue;
        v = sp_value(x, k->m) / (y != NULL ? sp_value(y, k->m) : 1.0);
        if (!header) {
            printf("\n%-42s %9s %9s %-8s %9s\n", "issue 13 bound", "value",
                   "want", "verdict", "by p50");
            header = 1;
        }
        if (k->limit > 0)
            snprintf(want, sizeof(want), "%s %.2f",
                     k->at_most ? "<=" : ">=", k->limit);
        /* One thread's rate ratio again from the medians: a round's rate
         * falls with the CPU time other processes take, a median of
         * one call's time much less. */
        p50[0] = '\0';
        if (k->m == SP_RATE && k->threads == 1 && k->threads2 == 1 &&
            x->p50 > 0)
            snprintf(p50, sizeof(p50), "%.2f", y->p50 / x->p50);
        printf("%-42s %9.2f %9s %-8s %9s\n", k->what, v,
               k->limit > 0 ? want : "-",
               k->limit <= 0                                  ? "(figure)"
               : (k->at_most ? v <= k->limit : v >= k->limit) ? "ok"
                                                              : "MISSED",
               p50[0] != '\0' ? p50 : "-");
    }
    fflush(stdout);
}

static void sp_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", (unsigned)(unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static const char *sp_status_name(enum sp_status s)
{
    switch (s) {
    case SP_OK:
        return "ok";
    case SP_UNSUPPORTED:
        return "unsupported";
    case SP_NOREF:
        return "n/a";
    default:
        return "failed";
    }
}

static int sp_json(const char *path, const struct sp_bench *b,
                   const struct sp_opts *o, const struct sp_row *rows,
                   int nrows)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        fprintf(stderr, "nimbus-speed: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "{\n  \"tool\": \"nimbus-speed\",\n  \"version\": ");
    sp_json_str(f, PACKAGE_VERSION);
    fprintf(f, ",\n  \"seconds\": %g,\n  \"threads\": [", o->seconds);
    for (int i = 0; i < o->nthreads; i++)
        fprintf(f, "%s%d", i ? ", " : "", o->threads[i]);
    fprintf(f, "],\n  \"backends\": [");
    for (int bi = 0; bi < b->nbe; bi++) {
        fprintf(f, "%s\n    {\"name\": ", bi ? "," : "");
        sp_json_str(f, b->be[bi]->name);
        fprintf(f, ", \"module\": ");
        if (b->be[bi]->path != NULL)
            sp_json_str(f, b->be[bi]->path);
        else
            fprintf(f, "null");
        fprintf(f, "}");
    }
    fprintf(f, "\n  ],\n  \"results\": [");
    for (int i = 0; i < nrows; i++) {
        const struct sp_row *row = &rows[i];
        const struct sp_res *ref = sp_ref(b, row);
        const struct sp_row *one = sp_one_thread(rows, nrows, row);

        fprintf(f, "%s\n    {\"op\": ", i ? "," : "");
        sp_json_str(f, row->op->name);
        fprintf(f, ", \"threads\": %d, \"bytes\": %zu", row->threads,
                row->op->len);
        if (row->op->kind == SP_FIND)
            fprintf(f, ", \"objects\": %lu, \"objects_present\": %lu",
                    row->op->objects, row->objects);
        fprintf(f, ", \"rss_kb_before\": %ld, \"rss_kb_after\": %ld",
                row->rss_before, row->rss_after);
        fprintf(f, ", \"backends\": {");
        for (int bi = 0; bi < b->nbe; bi++) {
            const struct sp_res *r = &row->r[bi];

            fprintf(f, "%s\n      ", bi ? "," : "");
            sp_json_str(f, b->be[bi]->name);
            fprintf(f, ": {\"status\": \"%s\"", sp_status_name(r->status));
            if (r->why[0] != '\0') {
                fprintf(f,
                        ", \"%s\": ", r->status == SP_OK ? "note" : "reason");
                sp_json_str(f, r->why);
            }
            if (r->status != SP_OK) {
                fprintf(f, "}");
                continue;
            }
            fprintf(f,
                    ", \"ops\": %lu, \"seconds\": %.6f, \"ops_per_s\": %.3f"
                    ", \"best_round_ops_per_s\": %.3f"
                    ", \"p50_us\": %.3f, \"p99_us\": %.3f",
                    r->count, r->seconds, r->ops, sp_best(r), r->p50, r->p99);
            if (row->op->data)
                fprintf(f, ", \"mb_per_s\": %.3f",
                        r->ops * (double)row->op->len / 1e6);
            if (ref != NULL && ref != r && ref->ops > 0)
                fprintf(f, ", \"ratio_%s\": %.4f", sp_ref_name,
                        sp_ratio(r, ref));
            if (one != NULL && one != row && one->r[bi].status == SP_OK &&
                one->r[bi].ops > 0)
                fprintf(f, ", \"scaling\": %.4f", sp_ratio(r, &one->r[bi]));
            fprintf(f, "}");
        }
        fprintf(f, "}}");
    }
    fprintf(f, "\n  ]\n}\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "nimbus-speed: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ options */

static void sp_usage(FILE *f)
{
    fprintf(
        f,
        "usage: nimbus-speed [options]\n"
        "  --module PATH     PKCS#11 module (default " SP_DEFAULT_MODULE ",\n"
        "                    found on the dynamic loader's search path)\n"
        "  --pin PIN         user PIN, as is (name:password for Nimbus)\n"
        "  --slot N          slot ID (default: first initialized token)\n"
        "  --init SO_PIN     initialize the token and set the user PIN\n"
        "                    if the token has none yet\n"
        "  --seconds S       seconds per measurement (default 3)\n"
        "  --threads T,...   thread counts, each thread on its own session\n"
        "                    (default 1)\n"
        "  --ops LIST        operations, comma separated, or all (default)\n"
        "  --objects N,...   token objects for find-label-N (default 1000)\n"
        "  --openssl         also measure OpenSSL 3 in this process\n"
        "  --vs MODULE[:PIN] also measure a second module (named p11-kit\n"
        "                    when it is p11-kit-client.so)\n"
        "  --servers EP,...  also measure --module as a client of nimbusd at\n"
        "                    each endpoint (unix:PATH or tls:HOST:PORT); the\n"
        "                    --module run is then named embedded\n"
        "  --tls-cert FILE, --tls-key FILE, --tls-ca FILE\n"
        "                    the client certificate for tls: endpoints\n"
        "  --json FILE       write every figure to FILE\n"
        "  --list            list the operations\n"
        "  --help            this text\n");
}

static int sp_parse_list(const char *arg, unsigned long *out, int max,
                         unsigned long lo, unsigned long hi)
{
    char *copy = strdup(arg), *save = NULL, *tok, *end;
    int n = 0;

    if (copy == NULL)
        return -1;
    for (tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        unsigned long v;

        errno = 0;
        v = strtoul(tok, &end, 10);
        if (errno != 0 || *end != '\0' || end == tok || v < lo || v > hi ||
            n == max) {
            n = -1;
            break;
        }
        out[n++] = v;
    }
    free(copy);
    return n > 0 ? n : -1;
}

static void sp_sort(unsigned long *v, int n)
{
    for (int i = 1; i < n; i++) {
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            unsigned long t = v[j];

            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }
}

/* Adds op (a copy, with its find count) to the run unless present. */
static int sp_add(struct sp_op *run, int *n, const struct sp_op *op,
                  unsigned long objects)
{
    char name[48];

    if (op->kind == SP_FIND)
        snprintf(name, sizeof(name), "find-label-%lu", objects);
    for (int i = 0; i < *n; i++) {
        if (op->kind == SP_FIND ? strcmp(run[i].name, name) == 0
                                : strcmp(run[i].name, op->name) == 0)
            return 0;
    }
    if (*n == SP_MAX_OPS)
        return -1;
    run[*n] = *op;
    if (op->kind == SP_FIND) {
        run[*n].name = strdup(name);
        run[*n].objects = objects;
        if (run[*n].name == NULL)
            return -1;
    }
    (*n)++;
    return 0;
}

/* The operations named in list, in the table's order. */
static int sp_select(const char *list, const struct sp_opts *o,
                     struct sp_op *run, int *n)
{
    int want[SP_NOPS];
    unsigned long extra[16];
    int nextra = 0, rc = 0;
    char *copy = strdup(list), *save = NULL, *tok;

    if (copy == NULL)
        return -1;
    memset(want, 0, sizeof(want));
    for (tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        size_t i;

        if (strcmp(tok, "all") == 0) {
            for (i = 0; i < SP_NOPS; i++)
                want[i] = 1;
            continue;
        }
        for (i = 0; i < SP_NOPS; i++) {
            if (strcmp(tok, sp_ops[i].name) == 0 ||
                (sp_ops[i].kind == SP_FIND && strcmp(tok, "find-label") == 0))
                break;
        }
        if (i < SP_NOPS) {
            want[i] = 1;
            continue;
        }
        if (strncmp(tok, "find-label-", 11) == 0 && nextra < 16 &&
            sp_parse_list(tok + 11, &extra[nextra], 1, 1, SP_MAX_OBJECTS) ==
                1) {
            nextra++;
            continue;
        }
        fprintf(stderr, "nimbus-speed: unknown operation %s (see --list)\n",
                tok);
        rc = -1;
    }
    free(copy);
    *n = 0;
    for (size_t i = 0; i < SP_NOPS && rc == 0; i++) {
        if (sp_ops[i].kind == SP_FIND) {
            unsigned long all[32];
            int na = 0;

            if (want[i]) {
                for (int j = 0; j < o->nobjects; j++)
                    all[na++] = o->objects[j];
            }
            for (int j = 0; j < nextra; j++)
                all[na++] = extra[j];
            sp_sort(all, na);
            for (int j = 0; j < na && rc == 0; j++)
                rc = sp_add(run, n, &sp_ops[i], all[j]);
        } else if (want[i]) {
            rc = sp_add(run, n, &sp_ops[i], 0);
        }
    }
    return rc;
}

enum {
    OPT_MODULE = 256,
    OPT_PIN,
    OPT_SLOT,
    OPT_INIT,
    OPT_SECONDS,
    OPT_THREADS,
    OPT_OPS,
    OPT_OBJECTS,
    OPT_OPENSSL,
    OPT_VS,
    OPT_JSON,
    OPT_LIST,
    OPT_HELP,
    OPT_SERVERS,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CA,
    OPT_LOGIN_LOAD
};

static const struct option sp_long[] = {
    {"module", required_argument, NULL, OPT_MODULE},
    {"pin", required_argument, NULL, OPT_PIN},
    {"slot", required_argument, NULL, OPT_SLOT},
    {"init", required_argument, NULL, OPT_INIT},
    {"seconds", required_argument, NULL, OPT_SECONDS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"ops", required_argument, NULL, OPT_OPS},
    {"objects", required_argument, NULL, OPT_OBJECTS},
    {"openssl", no_argument, NULL, OPT_OPENSSL},
    {"vs", required_argument, NULL, OPT_VS},
    {"json", required_argument, NULL, OPT_JSON},
    {"list", no_argument, NULL, OPT_LIST},
    {"help", no_argument, NULL, OPT_HELP},
    {"servers", required_argument, NULL, OPT_SERVERS},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"login-load", required_argument, NULL, OPT_LOGIN_LOAD},
    {NULL, 0, NULL, 0},
};

static int sp_options(int argc, char **argv, struct sp_opts *o,
                      const char **ops)
{
    unsigned long v[SP_MAX_THREADS];
    char *end;
    int c, n;

    while ((c = getopt_long(argc, argv, "", sp_long, NULL)) != -1) {
        switch (c) {
        case OPT_MODULE:
            o->module = optarg;
            break;
        case OPT_PIN:
            o->pin = optarg;
            break;
        case OPT_SLOT:
            errno = 0;
            o->slot = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || end == optarg || o->slot < 0) {
                fprintf(stderr, "nimbus-speed: bad --slot %s\n", optarg);
                return 2;
            }
            break;
        case OPT_INIT:
            o->so_pin = optarg;
            break;
        case OPT_SECONDS:
            errno = 0;
            o->seconds = strtod(optarg, &end);
            if (errno != 0 || *end != '\0' || end == optarg ||
                !(o->seconds > 0) || o->seconds > SP_MAX_SECONDS) {
                fprintf(stderr, "nimbus-speed: bad --seconds %s\n", optarg);
                return 2;
            }
            break;
        case OPT_THREADS:
            n = sp_parse_list(optarg, v, SP_MAX_THREADS, 1, SP_MAX_THREADS);
            if (n < 0) {
                fprintf(stderr, "nimbus-speed: bad --threads %s (1..%d)\n",
                        optarg, SP_MAX_THREADS);
                return 2;
            }
            sp_sort(v, n);
            o->nthreads = 0;
            for (int i = 0; i < n; i++) {
                if (i == 0 || v[i] != v[i - 1])
                    o->threads[o->nthreads++] = (int)v[i];
            }
            break;
        case OPT_OPS:
            *ops = optarg;
            break;
        case OPT_OBJECTS:
            n = sp_parse_list(optarg, o->objects, 16, 1, SP_MAX_OBJECTS);
            if (n < 0) {
                fprintf(stderr, "nimbus-speed: bad --objects %s\n", optarg);
                return 2;
            }
            o->nobjects = n;
            sp_sort(o->objects, n);
            break;
        case OPT_OPENSSL:
            o->openssl = 1;
            break;
        case OPT_VS:
            o->vs = optarg;
            break;
        case OPT_JSON:
            o->json = optarg;
            break;
        case OPT_SERVERS:
            o->servers = optarg;
            break;
        case OPT_TLS_CERT:
            o->tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            o->tls_key = optarg;
            break;
        case OPT_TLS_CA:
            o->tls_ca = optarg;
            break;
        case OPT_LOGIN_LOAD:
            /* Internal: the other client of a login-load row. */
            return p11_login_loop(optarg);
        case OPT_LIST:
            for (size_t i = 0; i < SP_NOPS; i++)
                printf("%s\n", sp_ops[i].name);
            return 0;
        case OPT_HELP:
            sp_usage(stdout);
            return 0;
        default:
            sp_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "nimbus-speed: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    if (o->pin == NULL) {
        fprintf(stderr, "nimbus-speed: --pin is required\n");
        return 2;
    }
    return -1; /* go on */
}

/* ------------------------------------------------------------ servers */

#define SP_MAX_FILES (2 * SP_MAX_BACKENDS)

/* What --servers made: a temporary directory with, per endpoint, a copy
 * of the module (dlopen maps a file once per path: the copy is a second,
 * independent instance in this process) and the client conf it reads. */
static char sp_tmp[256];
static char sp_files[SP_MAX_FILES][300];
static int sp_nfiles;
static struct sp_bench *sp_live;

static void sp_cleanup(void)
{
    for (int bi = 0; sp_live != NULL && bi < sp_live->nbe; bi++)
        sp_loader_stop(sp_live->be[bi]);
    for (int i = 0; i < sp_nfiles; i++)
        unlink(sp_files[i]);
    if (sp_tmp[0] != '\0')
        rmdir(sp_tmp);
}

static const char *sp_tmp_file(const char *stem, int n, const char *ext)
{
    char *path;

    if (sp_nfiles == SP_MAX_FILES)
        return NULL;
    path = sp_files[sp_nfiles++];
    snprintf(path, sizeof(sp_files[0]), "%s/%s-%d.%s", sp_tmp, stem, n, ext);
    return path;
}

static int sp_copy(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = NULL;
    char buf[65536];
    size_t n;
    int rc = -1;

    if (in == NULL)
        goto out;
    out = fopen(to, "wb");
    if (out == NULL)
        goto out;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
        if (fwrite(buf, 1, n, out) != n)
            goto out;
    }
    rc = ferror(in) ? -1 : 0;
out:
    if (in != NULL)
        fclose(in);
    if (out != NULL && fclose(out) != 0)
        rc = -1;
    if (rc != 0)
        fprintf(stderr, "nimbus-speed: copying %s to %s: %s\n", from, to,
                strerror(errno));
    return rc;
}

/* The module as a client of endpoint ep: its copy, its conf. */
static int sp_server_config(const struct sp_opts *o, const char *ep, int n,
                            struct p11_config *cfg)
{
    int tls = strncmp(ep, "tls:", 4) == 0;
    const char *mod, *conf;
    FILE *f;

    if (!tls && strncmp(ep, "unix:", 5) != 0) {
        fprintf(stderr,
                "nimbus-speed: --servers %s: unix:PATH or "
                "tls:HOST:PORT expected\n",
                ep);
        return -1;
    }
    if (strpbrk(ep, "\n#") != NULL) {
        fprintf(stderr, "nimbus-speed: --servers: bad endpoint\n");
        return -1;
    }
    if (tls &&
        (o->tls_cert == NULL || o->tls_key == NULL || o->tls_ca == NULL)) {
        fprintf(stderr,
                "nimbus-speed: %s needs --tls-cert, --tls-key and "
                "--tls-ca\n",
                ep);
        return -1;
    }
    if (sp_tmp[0] == '\0') {
        const char *dir = getenv("TMPDIR");

        snprintf(sp_tmp, sizeof(sp_tmp), "%.200s/nimbus-speed.XXXXXX",
                 dir != NULL && *dir != '\0' ? dir : "/tmp");
        if (mkdtemp(sp_tmp) == NULL) {
            fprintf(stderr, "nimbus-speed: mkdtemp: %s\n", strerror(errno));
            sp_tmp[0] = '\0';
            return -1;
        }
    }
    mod = sp_tmp_file("module", n, "so");
    conf = sp_tmp_file("client", n, "conf");
    if (mod == NULL || conf == NULL || sp_copy(cfg->path, mod) != 0)
        return -1;
    f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "servers = %s\n", ep);
    if (tls)
        fprintf(f, "tls_cert = %s\ntls_key = %s\ntls_ca = %s\n", o->tls_cert,
                o->tls_key, o->tls_ca);
    if (fclose(f) != 0)
        return -1;
    cfg->path = mod;
    cfg->conf = conf;
    cfg->name = tls ? "tls" : "unix";
    return 0;
}

/* ------------------------------------------------------------ main */

static const char *sp_base(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash != NULL ? slash + 1 : path;
}

static void sp_unique_name(struct sp_bench *b, int bi)
{
    static char names[SP_MAX_BACKENDS][48];

    for (int j = 0; j < bi; j++) {
        if (strcmp(b->be[j]->name, b->be[bi]->name) == 0) {
            snprintf(names[bi], sizeof(names[bi]), "%.30s-%d", b->be[bi]->name,
                     bi + 1);
            b->be[bi]->name = names[bi];
            return;
        }
    }
}

int main(int argc, char **argv)
{
    static struct sp_bench bench;
    static struct sp_backend backends[SP_MAX_BACKENDS];
    static struct sp_op run[SP_MAX_OPS];
    struct sp_opts o = {.module = SP_DEFAULT_MODULE,
                        .slot = -1,
                        .seconds = 3.0,
                        .threads = {1},
                        .nthreads = 1,
                        .objects = {1000},
                        .nobjects = 1};
    struct sp_bench *b = &bench;
    const char *ops = "all";
    struct sp_row *rows = NULL;
    struct p11_config cfg;
    char *vs_path = NULL;
    int nrun = 0, nrows = 0, rc, maxt;

    rc = sp_options(argc, argv, &o, &ops);
    if (rc >= 0)
        return rc;
    if (sp_select(ops, &o, run, &nrun) != 0)
        return 2;
    maxt = o.threads[o.nthreads - 1];
    if (RAND_bytes(sp_aes_key, sizeof(sp_aes_key)) != 1 ||
        RAND_bytes(sp_hmac_key, sizeof(sp_hmac_key)) != 1) {
        fprintf(stderr, "nimbus-speed: RAND_bytes failed\n");
        return 1;
    }
    for (int i = 0; i < maxt; i++) {
        for (int bi = 0; bi < SP_MAX_BACKENDS; bi++) {
            b->w[i].lat[bi] = calloc(SP_RESERVOIR, sizeof(float));
            if (b->w[i].lat[bi] == NULL) {
                fprintf(stderr, "nimbus-speed: out of memory\n");
                return 1;
            }
        }
    }

    memset(&cfg, 0, sizeof(cfg));
    cfg.path = o.module;
    cfg.pin = o.pin;
    cfg.so_pin = o.so_pin;
    cfg.slot = o.slot;
    cfg.threads = maxt;
    sp_live = b;
    atexit(sp_cleanup);
    if (o.servers != NULL) {
        cfg.name = "embedded";
        sp_ref_name = "embedded";
    }
    b->be[b->nbe] = &backends[b->nbe];
    if (p11_open(&cfg, b->be[b->nbe]) != 0)
        return 1;
    b->nbe++;
    if (o.servers != NULL) {
        char *list = strdup(o.servers), *save = NULL, *ep;

        if (list == NULL)
            return 1;
        for (ep = strtok_r(list, ",", &save); ep != NULL;
             ep = strtok_r(NULL, ",", &save)) {
            struct p11_config sc = cfg;

            /* One for --vs, one for OpenSSL. */
            if (b->nbe > SP_MAX_BACKENDS - 3) {
                fprintf(stderr, "nimbus-speed: too many --servers\n");
                return 2;
            }
            sc.path = o.module;
            if (sp_server_config(&o, ep, b->nbe, &sc) != 0)
                return 1;
            b->be[b->nbe] = &backends[b->nbe];
            if (p11_open(&sc, b->be[b->nbe]) != 0)
                return 1;
            sp_unique_name(b, b->nbe);
            b->nbe++;
        }
        free(list);
    }
    if (o.vs != NULL) {
        char *colon;

        vs_path = strdup(o.vs);
        if (vs_path == NULL)
            return 1;
        colon = strchr(vs_path, ':');
        cfg.pin = o.pin;
        if (colon != NULL) {
            *colon = '\0';
            cfg.pin = colon + 1;
        }
        cfg.path = vs_path;
        cfg.slot = -1;
        cfg.conf = NULL;
        cfg.name = strncmp(sp_base(vs_path), "p11-kit-client", 14) == 0
                       ? "p11-kit"
                       : NULL;
        b->be[b->nbe] = &backends[b->nbe];
        if (p11_open(&cfg, b->be[b->nbe]) != 0)
            return 1;
        sp_unique_name(b, b->nbe);
        b->nbe++;
    }
    if (o.openssl) {
        b->be[b->nbe] = &backends[b->nbe];
        if (ssl_open(b->be[b->nbe], maxt) != 0) {
            fprintf(stderr, "nimbus-speed: OpenSSL setup failed\n");
            return 1;
        }
        b->nbe++;
    }

    rows = calloc((size_t)nrun * (size_t)o.nthreads, sizeof(*rows));
    if (rows == NULL)
        return 1;
    sp_header();
    for (int i = 0; i < nrun; i++) {
        unsigned long present = 0;

        if (run[i].kind == SP_FIND) {
            for (int bi = 0; bi < b->nbe; bi++) {
                unsigned long have = 0;

                if (b->be[bi]->path == NULL)
                    continue;
                if (p11_make_objects(b->be[bi], run[i].objects, &have) != SP_OK)
                    return 1;
                if (have > present)
                    present = have;
            }
        }
        for (int t = 0; t < o.nthreads; t++) {
            struct sp_row *row = &rows[nrows++];

            row->op = &run[i];
            row->threads = o.threads[t];
            row->objects = present;
            if (run[i].single_thread && row->threads > 1) {
                for (int bi = 0; bi < b->nbe; bi++) {
                    row->r[bi].status = SP_NOREF;
                    snprintf(row->r[bi].why, sizeof(row->r[bi].why),
                             "one login per application");
                }
                sp_print(b, rows, nrows, row);
                continue;
            }
            sp_measure(b, &o, row);
            sp_print(b, rows, nrows, row);
        }
    }
    if (o.servers != NULL)
        sp_print_bounds(b, rows, nrows);
    rc = 0;
    if (o.json != NULL && sp_json(o.json, b, &o, rows, nrows) != 0)
        rc = 1;
    for (int bi = 0; bi < b->nbe; bi++) {
        if (b->be[bi]->path != NULL)
            p11_close(b->be[bi]);
        else
            ssl_close(b->be[bi]);
    }
    for (int i = 0; i < nrun; i++) {
        if (run[i].kind == SP_FIND)
            free((char *)run[i].name);
    }
    for (int i = 0; i < maxt; i++) {
        for (int bi = 0; bi < SP_MAX_BACKENDS; bi++)
            free(b->w[i].lat[bi]);
    }
    free(rows);
    free(vs_path);
    return rc;
}
