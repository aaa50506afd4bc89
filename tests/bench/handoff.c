/*
 * handoff.c - what a call between two processes costs on this machine,
 * without any of Nimbus: the floor under nimbusd's round trip.
 *
 * A client process with T threads and a server process with T threads,
 * a channel per pair. One "operation" is two calls, as a PKCS#11
 * signature through nimbusd is (C_SignInit, then C_Sign): an empty call,
 * then a call whose server side makes an ECDSA P-256 signature of a
 * 32-byte digest with OpenSSL (or nothing, with work "none"). Two
 * channels are measured:
 *
 *   unix   a unix stream socket pair; a few bytes each way (nimbusd's
 *          transport, without framing, protobuf or the core);
 *   futex  a shared page per pair: the request and the reply are
 *          written in place, a sequence number says one is there, and a
 *          futex wakes a waiter that sleeps (what a shared-memory ring
 *          transport would cost at best).
 *
 * each without polling (the waiter blocks at once) and with bounded
 * polling (the client polls up to 400 us for its reply, the server
 * 50 us for the next request, yielding the CPU between polls: nimbusd's
 * and the module's windows). "inproc" is the signature alone in T threads
 * of one process, the embedded module's floor.
 *
 *   tests/bench/handoff [--seconds S] [--threads 1,8]
 *
 * docs/performance.md uses it to show what issue 13's bounds on 8 threads
 * and on one thread ask of any transport on a 2-CPU machine. Figures are
 * operations per second over S seconds (default 2); compare them only
 * within one run.
 */
#include <errno.h>
#include <linux/futex.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define SIG_MAX 80

enum chan_kind { CHAN_UNIX, CHAN_FUTEX };

/* One shared page per pair (futex channel). */
struct slot {
    _Atomic uint32_t req;       /* requests posted (futex word) */
    _Atomic uint32_t rep;       /* replies posted (futex word) */
    _Atomic uint32_t srv_sleep; /* the server waits in the kernel */
    _Atomic uint32_t cli_sleep; /* the client waits in the kernel */
    uint8_t op;                 /* 0 empty, 1 work, 2 quit */
    uint8_t sig[SIG_MAX];
    char pad[4096 - 4 * sizeof(uint32_t) - 1 - SIG_MAX];
};

struct run {
    enum chan_kind kind;
    unsigned threads;
    unsigned spin_cli, spin_srv; /* microseconds; 0: block at once */
    bool work;
    double seconds;
};

static EVP_PKEY *key;
static struct run R;
static struct slot *slots;
static int socks[MAX_THREADS][2];
static long counts[MAX_THREADS];

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sign_once(uint8_t *out)
{
    static const uint8_t digest[32] = {1, 2, 3};
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(key, NULL);
    size_t len = SIG_MAX;

    if (c == NULL || EVP_PKEY_sign_init(c) != 1 ||
        EVP_PKEY_sign(c, out, &len, digest, sizeof(digest)) != 1) {
        fprintf(stderr, "handoff: ECDSA sign failed\n");
        _exit(1);
    }
    EVP_PKEY_CTX_free(c);
}

/* futex channel: wait until *w equals want; poll first for spin µs. */
static void slot_wait(_Atomic uint32_t *w, uint32_t want,
                      _Atomic uint32_t *sleeping, unsigned spin)
{
    double end = spin > 0 ? now() + spin * 1e-6 : 0;

    while (atomic_load(w) != want) {
        if (spin > 0 && now() < end) {
            sched_yield();
            continue;
        }
        atomic_store(sleeping, 1);
        uint32_t v = atomic_load(w);
        if (v != want) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};
            (void)syscall(SYS_futex, w, FUTEX_WAIT, v, &ts, NULL, 0);
        }
        atomic_store(sleeping, 0);
    }
}

static void slot_post(_Atomic uint32_t *w, _Atomic uint32_t *sleeping)
{
    atomic_fetch_add(w, 1);
    if (atomic_load(sleeping))
        (void)syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* unix channel: one message each way; poll first for spin µs. */
static ssize_t sock_recv(int fd, uint8_t *buf, size_t len, unsigned spin)
{
    double end = spin > 0 ? now() + spin * 1e-6 : 0;
    ssize_t n;

    while (spin > 0 && now() < end) {
        n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return n;
        sched_yield();
    }
    return recv(fd, buf, len, 0);
}

static void *server(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    uint8_t b[1 + SIG_MAX];
    uint32_t seq = 0;

    for (;;) {
        if (R.kind == CHAN_UNIX) {
            ssize_t n = sock_recv(socks[i][1], b, sizeof(b), R.spin_srv);
            if (n <= 0)
                return NULL;
            if (b[0] == 1 && R.work)
                sign_once(b + 1);
            if (send(socks[i][1], b, b[0] == 1 ? sizeof(b) : 8, 0) < 0)
                return NULL;
            continue;
        }
        struct slot *s = &slots[i];
        slot_wait(&s->req, ++seq, &s->srv_sleep, R.spin_srv);
        if (s->op == 2)
            return NULL;
        if (s->op == 1 && R.work)
            sign_once(s->sig);
        slot_post(&s->rep, &s->cli_sleep);
    }
}

static void *client(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    uint8_t b[1 + SIG_MAX] = {0};
    double end = now() + R.seconds;
    uint32_t seq = 0;
    long n = 0;

    while (now() < end) {
        for (uint8_t op = 0; op < 2; op++) {
            if (R.kind == CHAN_UNIX) {
                b[0] = op;
                if (send(socks[i][0], b, op == 1 ? 40 : 24, 0) < 0 ||
                    sock_recv(socks[i][0], b, sizeof(b), R.spin_cli) <= 0) {
                    fprintf(stderr, "handoff: socket failed\n");
                    exit(1);
                }
                continue;
            }
            struct slot *s = &slots[i];
            s->op = op;
            slot_post(&s->req, &s->srv_sleep);
            slot_wait(&s->rep, ++seq, &s->cli_sleep, R.spin_cli);
        }
        n++;
    }
    counts[i] = n;
    return NULL;
}

static void *inproc(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    uint8_t sig[SIG_MAX];
    double end = now() + R.seconds;
    long n = 0;

    while (now() < end) {
        sign_once(sig);
        n++;
    }
    counts[i] = n;
    return NULL;
}

static double run_threads(void *(*fn)(void *))
{
    pthread_t t[MAX_THREADS];
    long total = 0;

    for (unsigned i = 0; i < R.threads; i++) {
        if (pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)i) != 0) {
            fprintf(stderr, "handoff: pthread_create\n");
            exit(1);
        }
    }
    for (unsigned i = 0; i < R.threads; i++) {
        pthread_join(t[i], NULL);
        total += counts[i];
    }
    return (double)total / R.seconds;
}

/* Two processes; the client's rate. */
static double run_pair(void)
{
    pid_t pid;
    int st;
    double rate;

    memset(slots, 0, sizeof(struct slot) * MAX_THREADS);
    for (unsigned i = 0; i < R.threads; i++) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks[i]) != 0) {
            perror("handoff: socketpair");
            exit(1);
        }
    }
    pid = fork();
    if (pid < 0) {
        perror("handoff: fork");
        exit(1);
    }
    if (pid == 0) {
        pthread_t t[MAX_THREADS];
        for (unsigned i = 0; i < R.threads; i++)
            close(socks[i][0]);
        for (unsigned i = 0; i < R.threads; i++)
            pthread_create(&t[i], NULL, server, (void *)(uintptr_t)i);
        for (unsigned i = 0; i < R.threads; i++)
            pthread_join(t[i], NULL);
        _exit(0);
    }
    for (unsigned i = 0; i < R.threads; i++)
        close(socks[i][1]);
    rate = run_threads(client);
    for (unsigned i = 0; i < R.threads; i++) {
        close(socks[i][0]);
        slots[i].op = 2;
        slot_post(&slots[i].req, &slots[i].srv_sleep);
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return rate;
}

static void usage(void)
{
    fprintf(stderr, "usage: handoff [--seconds S] [--threads T,...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned tlist[8] = {1, 8};
    size_t nt = 2;
    double seconds = 2;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
            if (!(seconds > 0 && seconds <= 600))
                usage();
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *p = argv[++i], *e;
            nt = 0;
            while (*p != '\0' && nt < 8) {
                unsigned long v = strtoul(p, &e, 10);
                if (e == p || v == 0 || v > MAX_THREADS)
                    usage();
                tlist[nt++] = (unsigned)v;
                p = *e == ',' ? e + 1 : e;
                if (*e != ',' && *e != '\0')
                    usage();
            }
        } else {
            usage();
        }
    }
    signal(SIGPIPE, SIG_IGN);
    key = EVP_EC_gen("P-256");
    slots = mmap(NULL, sizeof(struct slot) * MAX_THREADS,
                 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (key == NULL || slots == MAP_FAILED) {
        fprintf(stderr, "handoff: setup failed\n");
        return 1;
    }
    printf("%-8s %-6s %-10s %3s %12s\n", "channel", "work", "polling", "T",
           "ops/s");
    for (size_t k = 0; k < nt; k++) {
        R = (struct run){.threads = tlist[k], .work = true, .seconds = seconds};
        printf("%-8s %-6s %-10s %3u %12.0f\n", "inproc", "ecdsa", "-",
               R.threads, run_threads(inproc));
        for (int kind = CHAN_UNIX; kind <= CHAN_FUTEX; kind++) {
            for (int work = 1; work >= 0; work--) {
                for (int poll = 0; poll <= 1; poll++) {
                    R = (struct run){.kind = (enum chan_kind)kind,
                                     .threads = tlist[k],
                                     .spin_cli = poll ? 400 : 0,
                                     .spin_srv = poll ? 50 : 0,
                                     .work = work != 0,
                                     .seconds = seconds};
                    printf("%-8s %-6s %-10s %3u %12.0f\n",
                           kind == CHAN_UNIX ? "unix" : "futex",
                           work ? "ecdsa" : "none", poll ? "400/50us" : "none",
                           R.threads, run_pair());
                    fflush(stdout);
                }
            }
        }
    }
    EVP_PKEY_free(key);
    return 0;
}
