/*
 * clusterbench.c - figures for the cluster engine (cluster.h), not a test:
 * three engines in this process over TLS on 127.0.0.1, a state machine
 * that only counts and dedups. Prints acknowledged submits/s with one
 * client and with four threads, one client's latency, the time from
 * stopping the leader to the next acknowledged submit on a survivor, and
 * the catch-up of a follower restarted after missing 10,000 entries
 * (default snapshot settings: it installs a snapshot).
 *
 *   clusterbench PKI_DIR [SECONDS [PORT_BASE]]
 * PKI_DIR: tests/cluster/mkpki.sh PKI_DIR t1 1 2 3
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster.h"

#define N 3
#define TMO 10000
#define ORIGINS 64

struct counter {
    pthread_mutex_t mu;
    uint64_t applied, n;
    uint64_t origin[ORIGINS], seq[ORIGINS];
};

static int c_apply(void *ctx, uint64_t index, uint64_t origin, uint64_t seq,
                   const uint8_t *p, size_t len, uint8_t **res, size_t *rl)
{
    struct counter *c = ctx;
    (void)p;
    (void)len;
    *res = NULL;
    *rl = 0;
    pthread_mutex_lock(&c->mu);
    if (index > c->applied) {
        c->applied = index;
        size_t i = 0;
        while (i < ORIGINS && c->origin[i] != origin && c->origin[i] != 0)
            i++;
        if (i < ORIGINS) {
            c->origin[i] = origin;
            if (seq > c->seq[i]) {
                c->seq[i] = seq;
                c->n++;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static uint64_t c_applied(void *ctx)
{
    struct counter *c = ctx;
    pthread_mutex_lock(&c->mu);
    uint64_t a = c->applied;
    pthread_mutex_unlock(&c->mu);
    return a;
}

static int c_snapshot(void *ctx, uint8_t **buf, size_t *len)
{
    struct counter *c = ctx;
    size_t off = sizeof c->mu;
    *buf = malloc(sizeof *c - off);
    if (*buf == NULL)
        return -1;
    pthread_mutex_lock(&c->mu);
    memcpy(*buf, (uint8_t *)c + off, sizeof *c - off);
    pthread_mutex_unlock(&c->mu);
    *len = sizeof *c - off;
    return 0;
}

static int c_restore(void *ctx, const uint8_t *buf, size_t len)
{
    struct counter *c = ctx;
    size_t off = sizeof c->mu;
    if (len != sizeof *c - off)
        return -1;
    pthread_mutex_lock(&c->mu);
    memcpy((uint8_t *)c + off, buf, len);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

struct node {
    struct cluster_config cfg;
    struct counter fsm;
    cluster_t *cl;
};

static struct node nodes[N + 1];

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int start(struct node *nd, bool bootstrap)
{
    struct cluster_fsm f = {.ctx = &nd->fsm,
                            .apply = c_apply,
                            .applied = c_applied,
                            .snapshot = c_snapshot,
                            .restore = c_restore};
    nd->cfg.bootstrap = bootstrap;
    return cluster_start(&nd->cfg, &f, &nd->cl);
}

static uint64_t leader_of(uint64_t not )
{
    for (int k = 0; k < 2000; k++) {
        for (int i = 1; i <= N; i++) {
            struct cluster_status st;
            if (nodes[i].cl != NULL && cluster_status(nodes[i].cl, &st) == 0 &&
                st.role == CLUSTER_ROLE_LEADER && st.node_id != not )
                return st.node_id;
        }
        usleep(1000);
    }
    return 0;
}

struct client {
    cluster_t *cl;
    double seconds;
    uint64_t acks, errors;
    uint64_t *lat; /* us, one per ack */
    size_t nlat, maxlat;
    pthread_t t;
};

static void *client_main(void *arg)
{
    struct client *c = arg;
    uint8_t payload[64];
    memset(payload, 'x', sizeof payload);
    uint64_t end = now_us() + (uint64_t)(c->seconds * 1e6);
    while (now_us() < end) {
        uint64_t t0 = now_us();
        if (cluster_submit(c->cl, payload, sizeof payload, TMO, NULL, NULL) !=
            0) {
            c->errors++;
            continue;
        }
        c->acks++;
        if (c->nlat < c->maxlat)
            c->lat[c->nlat++] = now_us() - t0;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void run(const char *what, cluster_t **cls, int nthreads, double seconds)
{
    struct client c[8];
    memset(c, 0, sizeof c);
    for (int i = 0; i < nthreads; i++) {
        c[i].cl = cls[i];
        c[i].seconds = seconds;
        c[i].maxlat = 1u << 20;
        c[i].lat = malloc(c[i].maxlat * sizeof *c[i].lat);
        pthread_create(&c[i].t, NULL, client_main, &c[i]);
    }
    uint64_t acks = 0, errors = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(c[i].t, NULL);
        acks += c[i].acks;
        errors += c[i].errors;
    }
    printf("%-44s %8.0f acked submits/s (%" PRIu64 " errors)", what,
           (double)acks / seconds, errors);
    if (nthreads == 1 && c[0].nlat > 0) {
        qsort(c[0].lat, c[0].nlat, sizeof *c[0].lat, cmp_u64);
        printf(", latency p50 %.2f ms p99 %.2f ms",
               (double)c[0].lat[c[0].nlat / 2] / 1000.0,
               (double)c[0].lat[c[0].nlat * 99 / 100] / 1000.0);
    }
    printf("\n");
    for (int i = 0; i < nthreads; i++)
        free(c[i].lat);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PKI_DIR [SECONDS [PORT_BASE]]\n", argv[0]);
        return 2;
    }
    double seconds = argc > 2 ? atof(argv[2]) : 5.0;
    unsigned base = argc > 3 ? (unsigned)atoi(argv[3]) : 24100;
    signal(SIGPIPE, SIG_IGN);
    char tmp[] = "/tmp/nimbus-clusterbench-XXXXXX";
    if (mkdtemp(tmp) == NULL)
        return 1;
    for (int i = 1; i <= N; i++) {
        struct node *nd = &nodes[i];
        pthread_mutex_init(&nd->fsm.mu, NULL);
        snprintf(nd->cfg.cluster_id, sizeof nd->cfg.cluster_id, "t1");
        nd->cfg.node_id = (uint64_t)i;
        snprintf(nd->cfg.address, sizeof nd->cfg.address, "127.0.0.1:%u",
                 base + (unsigned)i);
        snprintf(nd->cfg.dir, sizeof nd->cfg.dir, "%s/n%d", tmp, i);
        mkdir(nd->cfg.dir, 0700);
        snprintf(nd->cfg.ca, sizeof nd->cfg.ca, "%s/ca.crt", argv[1]);
        snprintf(nd->cfg.cert, sizeof nd->cfg.cert, "%s/node%d.crt", argv[1],
                 i);
        snprintf(nd->cfg.key, sizeof nd->cfg.key, "%s/node%d.key", argv[1], i);
        int rc = start(nd, i == 1);
        if (rc != 0) {
            fprintf(stderr, "start %d: %s\n", i, cluster_strerror(rc));
            return 1;
        }
        if (i == 1)
            leader_of(0);
        else if ((rc = cluster_add(nodes[1].cl, (uint64_t)i, nd->cfg.address,
                                   TMO)) != 0) {
            fprintf(stderr, "add %d: %s\n", i, cluster_strerror(rc));
            return 1;
        }
    }
    uint64_t l = leader_of(0);
    uint64_t f = l % N + 1, g = f % N + 1;
    cluster_t *one[1] = {nodes[l].cl};
    run("1 client on the leader", one, 1, seconds);
    cluster_t *fone[1] = {nodes[f].cl};
    run("1 client on a follower (forwarded)", fone, 1, seconds);
    cluster_t *four[4] = {nodes[l].cl, nodes[f].cl, nodes[g].cl, nodes[l].cl};
    run("4 threads over the 3 nodes", four, 4, seconds);
    cluster_t *lfour[4] = {nodes[l].cl, nodes[l].cl, nodes[l].cl, nodes[l].cl};
    run("4 threads on the leader", lfour, 4, seconds);

    /* failover: the leader stops; time to the next acked submit */
    uint8_t p[64] = {0};
    for (int round = 0; round < 5; round++) {
        l = leader_of(0);
        uint64_t s = l % N + 1;
        uint64_t t0 = now_us();
        cluster_stop(nodes[l].cl);
        nodes[l].cl = NULL;
        int rc;
        while ((rc = cluster_submit(nodes[s].cl, p, sizeof p, 200, NULL,
                                    NULL)) != 0 &&
               now_us() - t0 < 20000000)
            ;
        uint64_t t1 = now_us();
        uint64_t nl = leader_of(l);
        printf("failover round %d: node %" PRIu64
               " stopped, new leader %" PRIu64
               ", next acked submit after %.0f ms%s\n",
               round + 1, l, nl, (double)(t1 - t0) / 1000.0,
               rc ? " (FAILED)" : "");
        start(&nodes[l], true);
        cluster_sync(nodes[l].cl, TMO);
    }
    /* catch-up: a follower misses 10,000 entries, restarts */
    l = leader_of(0);
    uint64_t s = l % N + 1;
    cluster_stop(nodes[s].cl);
    nodes[s].cl = NULL;
    uint64_t before = c_applied(&nodes[l].fsm);
    for (int i = 0; i < 10000; i++)
        cluster_submit(nodes[l].cl, p, sizeof p, TMO, NULL, NULL);
    uint64_t missed = c_applied(&nodes[l].fsm) - before;
    uint64_t t0 = now_us();
    start(&nodes[s], true);
    int rc = cluster_sync(nodes[s].cl, 30000);
    printf("catch-up: node %" PRIu64 " missed %" PRIu64
           " entries, restarted and synced in %.0f ms (%s)\n",
           s, missed, (double)(now_us() - t0) / 1000.0, cluster_strerror(rc));
    for (int i = 1; i <= N; i++)
        cluster_stop(nodes[i].cl);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    (void)system(cmd);
    return 0;
}
