/*
 * dcluster.c - nimbusd in a cluster: the engine's state machine is the
 * core's store (hsm_cluster.h), and the core's writes are the engine's
 * submissions.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "daemon/dcluster.h"
#include "hsm/hsm_cluster.h"

/* The one request a member answers with fsm->rpc: the cluster key. A
 * clone's first node sends the same request to a member of its source. */
#define KEY_REQUEST "nimbus-cluster-key-v1"
/* A write waits this long for the cluster (an election takes about a
 * second at the defaults; a partitioned node answers CKR_DEVICE_ERROR). */
#define SUBMIT_TIMEOUT_MS 15000u

/* How long a membership change may take: addNode waits for the new
 * node to catch up (a snapshot, then the log) before it becomes a voter. */
#define MEMBERSHIP_TIMEOUT_MS 60000u

struct dcluster {
    hsm_t *hsm;
    cluster_t *cl;
    struct hsm_cluster_link link;
    struct wire_cluster_ops ops;
    char cluster_id[CLUSTER_ID_MAX + 1]; /* ops.cluster_id */
    /* cluster_clones: the clusters that may fetch the key from here */
    char clones[CLUSTER_CLONES_MAX][CLUSTER_ID_MAX + 1];
    size_t nclones;
};

static int fsm_apply(void *ctx, uint64_t index, uint64_t origin, uint64_t seq,
                     const uint8_t *payload, size_t len, uint8_t **res,
                     size_t *reslen)
{
    struct dcluster *dc = ctx;
    CK_RV rv = hsm_cluster_apply(dc->hsm, index, origin, seq, payload, len, res,
                                 reslen);

    if (rv != CKR_OK) {
        log_error("cluster: entry %llu could not be applied (CK_RV 0x%lx): "
                  "this node stops",
                  (unsigned long long)index, (unsigned long)rv);
        return -1;
    }
    return 0;
}

static uint64_t fsm_applied(void *ctx)
{
    struct dcluster *dc = ctx;
    uint64_t index = 0;

    if (hsm_cluster_applied(dc->hsm, &index) != CKR_OK)
        return 0;
    return index;
}

static int fsm_snapshot(void *ctx, uint8_t **buf, size_t *len)
{
    struct dcluster *dc = ctx;

    return hsm_cluster_snapshot(dc->hsm, buf, len) == CKR_OK ? 0 : -1;
}

static int fsm_restore(void *ctx, const uint8_t *buf, size_t len)
{
    struct dcluster *dc = ctx;
    CK_RV rv = hsm_cluster_restore(dc->hsm, buf, len);

    if (rv != CKR_OK)
        log_error("cluster: a snapshot could not be restored (CK_RV 0x%lx)",
                  (unsigned long)rv);
    return rv == CKR_OK ? 0 : -1;
}

/* Whether the node operator let cluster id clone fetch the key. */
static bool clone_allowed(const struct dcluster *dc, const char *clone)
{
    for (size_t i = 0; i < dc->nclones; i++)
        if (strcmp(dc->clones[i], clone) == 0)
            return true;
    return false;
}

/* The cluster key, to a member (the engine has checked the peer's
 * certificate; the configuration says whether it was added) or to a node
 * of a clone named in cluster_clones (the engine let in only those, and
 * for this request alone: checked again here). */
static int fsm_rpc(void *ctx, uint64_t peer, const char *clone,
                   const uint8_t *req, size_t len, uint8_t **resp,
                   size_t *resplen)
{
    struct dcluster *dc = ctx;
    struct cluster_status st;
    bool member = false;
    uint8_t *key;

    if (len != strlen(KEY_REQUEST) || memcmp(req, KEY_REQUEST, len) != 0)
        return -1;
    if (clone != NULL) {
        if (!clone_allowed(dc, clone)) {
            log_warn("cluster: node %llu of cluster %s asked for the "
                     "cluster key but cluster_clones does not name it: "
                     "refused",
                     (unsigned long long)peer, clone);
            return -1;
        }
    } else {
        if (cluster_status(dc->cl, &st) != 0)
            return -1;
        for (size_t i = 0; i < st.nnodes; i++)
            member = member || st.nodes[i].id == peer;
        if (!member) {
            log_warn("cluster: node %llu asked for the cluster key but is "
                     "not a member: refused",
                     (unsigned long long)peer);
            return -1;
        }
    }
    /* the answer: the key, then its domain (1 to 64 bytes) */
    if ((key = malloc(HSM_CLUSTER_KEY_LEN + CONFIG_CLUSTER_ID_MAX + 1)) ==
        NULL)
        return -1;
    if (hsm_cluster_key_export(dc->hsm, key,
                               (char *)key + HSM_CLUSTER_KEY_LEN) != CKR_OK) {
        util_free_wipe(key, HSM_CLUSTER_KEY_LEN + CONFIG_CLUSTER_ID_MAX + 1);
        return -1;
    }
    if (clone != NULL)
        log_warn("cluster: the cluster key went to node %llu of cluster %s "
                 "(a clone, allowed by cluster_clones)",
                 (unsigned long long)peer, clone);
    else
        log_info("cluster: the cluster key went to node %llu",
                 (unsigned long long)peer);
    *resp = key;
    *resplen = HSM_CLUSTER_KEY_LEN + strlen((char *)key + HSM_CLUSTER_KEY_LEN);
    return 0;
}

static CK_RV link_submit(void *ctx, const uint8_t *entry, size_t len,
                         uint8_t **res, size_t *reslen)
{
    struct dcluster *dc = ctx;
    int e = cluster_submit(dc->cl, entry, len, SUBMIT_TIMEOUT_MS, res, reslen);

    if (e == 0)
        return CKR_OK;
    log_warn("cluster: a write was not acknowledged: %s", cluster_strerror(e));
    return e == CLUSTER_ENOMEM ? CKR_HOST_MEMORY : CKR_DEVICE_ERROR;
}

/* Whether dir has no raft files yet (missing or empty). */
static bool dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool empty = true;

    if (d == NULL)
        return true;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            empty = false;
            break;
        }
    }
    closedir(d);
    return empty;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Whether resp is key(32) || domain (a cluster id); then installs it. */
static CK_RV install_key(struct dcluster *dc, const uint8_t *resp,
                         size_t resplen)
{
    char domain[CONFIG_CLUSTER_ID_MAX + 1];

    if (resplen <= HSM_CLUSTER_KEY_LEN ||
        resplen > HSM_CLUSTER_KEY_LEN + CONFIG_CLUSTER_ID_MAX)
        return CKR_DATA_LEN_RANGE;
    memcpy(domain, resp + HSM_CLUSTER_KEY_LEN, resplen - HSM_CLUSTER_KEY_LEN);
    domain[resplen - HSM_CLUSTER_KEY_LEN] = '\0';
    return hsm_cluster_key_import(dc->hsm, resp, domain);
}

static bool fetch_key(struct dcluster *dc, const struct config *cfg,
                      bool (*stop)(void), char *err, size_t errlen)
{
    unsigned tries = 0;

    if (cfg->cluster_join[0] == '\0') {
        snprintf(err, errlen,
                 "this node has no cluster key: set cluster_join to a "
                 "member's cluster address (or cluster_bootstrap = yes "
                 "on the first node)");
        return false;
    }
    log_info("cluster: fetching the cluster key from %s (waiting to be "
             "added)",
             cfg->cluster_join);
    while (!stop()) {
        uint8_t *resp = NULL;
        size_t resplen = 0;
        int e = cluster_rpc(dc->cl, 0, cfg->cluster_join,
                            (const uint8_t *)KEY_REQUEST, strlen(KEY_REQUEST),
                            2000, &resp, &resplen);

        if (e == 0 && resplen > HSM_CLUSTER_KEY_LEN &&
            resplen <= HSM_CLUSTER_KEY_LEN + CONFIG_CLUSTER_ID_MAX) {
            CK_RV rv = install_key(dc, resp, resplen);

            util_free_wipe(resp, resplen);
            if (rv != CKR_OK) {
                snprintf(err, errlen,
                         "the cluster key from %s does not match the one "
                         "this node holds (CK_RV 0x%lx)",
                         cfg->cluster_join, (unsigned long)rv);
                return false;
            }
            log_info("cluster: cluster key installed");
            return true;
        }
        util_free_wipe(resp, resplen);
        if (++tries % 25 == 1)
            log_info("cluster: %s did not give the key yet (%s); retrying",
                     cfg->cluster_join,
                     e == 0 ? "bad length" : cluster_strerror(e));
        sleep_ms(200);
    }
    snprintf(err, errlen, "stopped while waiting for the cluster key");
    return false;
}

/*
 * The first node of a clone: the cluster key of cfg->cluster_clone_of
 * from its member at cluster_clone_of_addr. Retried while the source does
 * not answer (it may be starting); a refusal (the source does not list
 * this cluster in cluster_clones, or its certificate is not of our CA)
 * ends the start with a clear error: retrying will not change it.
 */
static bool fetch_source_key(struct dcluster *dc, const struct config *cfg,
                             bool (*stop)(void), char *err, size_t errlen)
{
    unsigned tries = 0;

    log_info("cluster: a clone of cluster %s: fetching its cluster key "
             "from %s",
             cfg->cluster_clone_of, cfg->cluster_clone_of_addr);
    while (!stop()) {
        uint8_t *resp = NULL;
        size_t resplen = 0;
        int e = cluster_rpc_source(dc->cl, cfg->cluster_clone_of,
                                   cfg->cluster_clone_of_addr,
                                   (const uint8_t *)KEY_REQUEST,
                                   strlen(KEY_REQUEST), 2000, &resp, &resplen);
        CK_RV rv;

        if (e == CLUSTER_EREFUSED) {
            snprintf(err, errlen,
                     "cluster %s at %s refused to give its cluster key to "
                     "this node (cluster %s): its nodes' cluster_clones "
                     "must name %s, and both certificates must be of the "
                     "same CA",
                     cfg->cluster_clone_of, cfg->cluster_clone_of_addr,
                     cfg->cluster_id, cfg->cluster_id);
            return false;
        }
        if (e == 0) {
            rv = install_key(dc, resp, resplen);
            util_free_wipe(resp, resplen);
            if (rv != CKR_OK) {
                snprintf(err, errlen,
                         "the cluster key from cluster %s at %s could not "
                         "be installed (CK_RV 0x%lx)",
                         cfg->cluster_clone_of, cfg->cluster_clone_of_addr,
                         (unsigned long)rv);
                return false;
            }
            log_info("cluster: cluster key of %s installed (domain %s)",
                     cfg->cluster_clone_of, hsm_cluster_domain(dc->hsm));
            return true;
        }
        if (++tries % 25 == 1)
            log_info("cluster: %s did not give the key yet (%s); retrying",
                     cfg->cluster_clone_of_addr, cluster_strerror(e));
        sleep_ms(200);
    }
    snprintf(err, errlen, "stopped while waiting for the cluster key");
    return false;
}

/* Waits for leadership (a bootstrap node leads its one-node cluster at
 * once) and seeds the replicated state through the log. */
static bool seed(struct dcluster *dc, bool (*stop)(void), char *err,
                 size_t errlen)
{
    CK_RV rv = CKR_DEVICE_ERROR;

    for (int i = 0; i < 300 && !stop(); i++) {
        struct cluster_status st;

        if (cluster_status(dc->cl, &st) == 0 && st.leader_id != 0) {
            if ((rv = hsm_cluster_init(dc->hsm)) == CKR_OK)
                return true;
        }
        sleep_ms(100);
    }
    snprintf(err, errlen,
             "the new cluster did not take its first state "
             "(CK_RV 0x%lx)",
             (unsigned long)rv);
    return false;
}

static int op_status(void *ctx, struct cluster_status *st)
{
    struct dcluster *dc = ctx;

    return cluster_status(dc->cl, st);
}

static int op_add(void *ctx, uint64_t id, const char *address)
{
    struct dcluster *dc = ctx;

    return cluster_add(dc->cl, id, address, MEMBERSHIP_TIMEOUT_MS);
}

static int op_remove(void *ctx, uint64_t id)
{
    struct dcluster *dc = ctx;

    return cluster_remove(dc->cl, id, MEMBERSHIP_TIMEOUT_MS);
}

static int op_transfer(void *ctx, uint64_t id)
{
    struct dcluster *dc = ctx;

    return cluster_transfer(dc->cl, id, MEMBERSHIP_TIMEOUT_MS);
}

static CK_RV op_digest(void *ctx, uint8_t out[32], uint64_t *applied)
{
    struct dcluster *dc = ctx;

    return hsm_cluster_digest(dc->hsm, out, applied);
}

const struct wire_cluster_ops *dcluster_ops(dcluster_t *dc)
{
    return &dc->ops;
}

bool dcluster_start(const struct config *cfg, hsm_t *hsm, bool (*stop)(void),
                    dcluster_t **out, char *err, size_t errlen)
{
    struct cluster_config cc;
    struct cluster_fsm fsm;
    struct dcluster *dc;
    bool have = false, first;
    CK_RV rv;
    int e;

    *out = NULL;
    if (cfg->cluster_id[0] == '\0' || cfg->cluster_listen[0] == '\0' ||
        cfg->cluster_ca[0] == '\0' || cfg->cluster_cert[0] == '\0' ||
        cfg->cluster_key[0] == '\0') {
        snprintf(err, errlen,
                 "a cluster node needs cluster_id, "
                 "cluster_listen, cluster_ca, cluster_cert and "
                 "cluster_key");
        return false;
    }
    if (cfg->cluster_clone_of[0] != '\0' && !cfg->cluster_bootstrap) {
        snprintf(err, errlen,
                 "cluster_clone_of is for the first node of a clone: it "
                 "needs cluster_bootstrap = yes (the clone's other nodes "
                 "join it with cluster_join)");
        return false;
    }
    if (strcmp(cfg->cluster_clone_of, cfg->cluster_id) == 0) {
        snprintf(err, errlen,
                 "cluster_clone_of names this cluster (%s): a clone has a "
                 "cluster_id of its own",
                 cfg->cluster_id);
        return false;
    }
    for (size_t i = 0; i < cfg->ncluster_clones; i++) {
        if (strcmp(cfg->cluster_clones[i], cfg->cluster_id) == 0) {
            snprintf(err, errlen,
                     "cluster_clones names this cluster (%s): a clone has "
                     "a cluster_id of its own",
                     cfg->cluster_id);
            return false;
        }
    }
    memset(&cc, 0, sizeof(cc));
    snprintf(cc.cluster_id, sizeof(cc.cluster_id), "%s", cfg->cluster_id);
    cc.node_id = cfg->cluster_node_id;
    snprintf(cc.address, sizeof(cc.address), "%s", cfg->cluster_listen);
    if (cfg->cluster_dir[0] != '\0')
        snprintf(cc.dir, sizeof(cc.dir), "%s", cfg->cluster_dir);
    else if (snprintf(cc.dir, sizeof(cc.dir), "%s/raft", cfg->store) >=
             (int)sizeof(cc.dir)) {
        snprintf(err, errlen, "store path too long");
        return false;
    }
    snprintf(cc.ca, sizeof(cc.ca), "%s", cfg->cluster_ca);
    snprintf(cc.cert, sizeof(cc.cert), "%s", cfg->cluster_cert);
    snprintf(cc.key, sizeof(cc.key), "%s", cfg->cluster_key);
    cc.election_timeout = (unsigned)cfg->cluster_election_timeout;
    _Static_assert(CONFIG_CLUSTER_CLONES_MAX == CLUSTER_CLONES_MAX &&
                       CONFIG_CLUSTER_ID_MAX == CLUSTER_ID_MAX,
                   "cluster_clones fits the engine's list");
    for (size_t i = 0; i < cfg->ncluster_clones; i++)
        snprintf(cc.clones[i], sizeof(cc.clones[i]), "%s",
                 cfg->cluster_clones[i]);
    cc.nclones = cfg->ncluster_clones;
    cc.heartbeat_timeout = (unsigned)cfg->cluster_heartbeat;
    first = dir_empty(cc.dir);
    /* The raft log is the node's own, like its store: nobody else's. */
    if (mkdir(cc.dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot make %s: %s", cc.dir, strerror(errno));
        return false;
    }
    cc.bootstrap = cfg->cluster_bootstrap && first;

    if ((dc = calloc(1, sizeof(*dc))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    dc->hsm = hsm;
    dc->ops.ctx = dc;
    dc->ops.status = op_status;
    dc->ops.add = op_add;
    dc->ops.remove = op_remove;
    dc->ops.transfer = op_transfer;
    dc->ops.digest = op_digest;
    snprintf(dc->cluster_id, sizeof(dc->cluster_id), "%s", cfg->cluster_id);
    memcpy(dc->clones, cc.clones, sizeof(dc->clones));
    dc->nclones = cc.nclones;
    dc->ops.cluster_id = dc->cluster_id;
    if ((rv = hsm_cluster_key_load(hsm, &have)) != CKR_OK) {
        snprintf(err, errlen, "cannot read the cluster key (CK_RV 0x%lx)",
                 (unsigned long)rv);
        goto fail;
    }
    if (have && cc.bootstrap && cfg->cluster_clone_of[0] != '\0')
        log_info("cluster: this node holds a cluster key already (domain "
                 "%s): cluster_clone_of is not asked again",
                 hsm_cluster_domain(hsm));
    if (!have && cc.bootstrap && cfg->cluster_clone_of[0] == '\0') {
        if ((rv = hsm_cluster_key_create(hsm)) != CKR_OK) {
            snprintf(err, errlen, "cannot make the cluster key (CK_RV 0x%lx)",
                     (unsigned long)rv);
            goto fail;
        }
        have = true;
    }
    cc.defer_raft = !have;
    memset(&fsm, 0, sizeof(fsm));
    fsm.ctx = dc;
    fsm.apply = fsm_apply;
    fsm.applied = fsm_applied;
    fsm.snapshot = fsm_snapshot;
    fsm.restore = fsm_restore;
    fsm.rpc = fsm_rpc;
    if ((e = cluster_start(&cc, &fsm, &dc->cl)) != 0) {
        snprintf(err, errlen, "cannot start the cluster engine: %s",
                 cluster_strerror(e));
        goto fail;
    }
    if (!have) {
        if (cc.bootstrap ? !fetch_source_key(dc, cfg, stop, err, errlen)
                         : !fetch_key(dc, cfg, stop, err, errlen))
            goto fail;
        if ((e = cluster_raft_start(dc->cl)) != 0) {
            snprintf(err, errlen, "cannot start raft: %s", cluster_strerror(e));
            goto fail;
        }
    }
    dc->link.ctx = dc;
    dc->link.submit = link_submit;
    if ((rv = hsm_cluster_attach(hsm, &dc->link)) != CKR_OK) {
        snprintf(err, errlen, "cannot attach the store (CK_RV 0x%lx)",
                 (unsigned long)rv);
        goto fail;
    }
    if (cc.bootstrap && !seed(dc, stop, err, errlen))
        goto fail;
    log_info("cluster %s: node %lu on %s%s%s%s", cfg->cluster_id,
             cfg->cluster_node_id, cfg->cluster_listen,
             cc.bootstrap ? " (new cluster)" : "",
             cc.bootstrap && cfg->cluster_clone_of[0] != '\0' ? ", a clone of "
                                                              : "",
             cc.bootstrap ? cfg->cluster_clone_of : "");
    *out = dc;
    return true;
fail:
    dcluster_stop(dc);
    return false;
}

void dcluster_stop(dcluster_t *dc)
{
    if (dc == NULL)
        return;
    hsm_cluster_detach(dc->hsm);
    cluster_stop(dc->cl);
    free(dc);
}

cluster_t *dcluster_engine(dcluster_t *dc)
{
    return dc != NULL ? dc->cl : NULL;
}
