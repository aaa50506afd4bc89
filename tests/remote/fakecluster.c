/*
 * fakecluster.c - the cluster of nimbusd_fakecluster, a test build of
 * nimbusd (-DNIMBUS_TEST_FAKE_CLUSTER): the ops table nimbusd hands the
 * wire server (wire_server_set_cluster), answered from memory instead of
 * by the raft engine, so that nimbus-mgmt's cluster commands run end to
 * end (shell, remote backend, wire, server, policy) in
 * tests/remote/cluster-mgmt.sh without a cluster. Never in nimbusd.
 *
 * This node is 1 and starts as the leader of nodes 1, 2 and 3 in term 3.
 * Each change is one committed entry. Ids the test uses for the engine's
 * refusals: adding 13 times out (CLUSTER_ETIMEDOUT) and adding 14 finds
 * no leader (CLUSTER_ENOLEADER); an id already there, or removing or
 * handing the leadership to this node, is CLUSTER_EINVAL; an id not
 * there CLUSTER_ENOTFOUND; a 17th node CLUSTER_EBUSY.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "wire/server.h"

const struct wire_cluster_ops *nimbus_test_fake_cluster(void);

static pthread_mutex_t fc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cluster_status fc;
static bool fc_ready;

static void fc_init_locked(void)
{
    if (fc_ready) {
        return;
    }
    fc_ready = true;
    fc.node_id = 1;
    fc.role = CLUSTER_ROLE_LEADER;
    fc.term = 3;
    fc.leader_id = 1;
    snprintf(fc.leader_address, sizeof(fc.leader_address), "127.0.0.1:21001");
    fc.commit_index = fc.applied_index = fc.last_index = 40;
    fc.nnodes = 3;
    for (size_t i = 0; i < fc.nnodes; i++) {
        fc.nodes[i].id = i + 1;
        fc.nodes[i].member = CLUSTER_MEMBER_VOTER;
        snprintf(fc.nodes[i].address, sizeof(fc.nodes[i].address),
                 "127.0.0.1:%zu", 21001 + i);
    }
    fc.nodes[0].match_index = 40;
    fc.nodes[1].match_index = 40;
    fc.nodes[2].match_index = 35; /* node 3 is 5 entries behind */
    fc.peers_refused = 7;
}

static struct cluster_node *fc_find_locked(uint64_t id)
{
    for (size_t i = 0; i < fc.nnodes; i++) {
        if (fc.nodes[i].id == id) {
            return &fc.nodes[i];
        }
    }
    return NULL;
}

/* One entry committed and applied here; the leader's own match moves. */
static void fc_commit_locked(void)
{
    fc.commit_index++;
    fc.applied_index = fc.last_index = fc.commit_index;
    if (fc.role == CLUSTER_ROLE_LEADER) {
        fc.nodes[0].match_index = fc.commit_index;
    }
}

static int fc_status(void *ctx, struct cluster_status *st)
{
    (void)ctx;
    pthread_mutex_lock(&fc_lock);
    fc_init_locked();
    *st = fc;
    pthread_mutex_unlock(&fc_lock);
    return 0;
}

static int fc_add(void *ctx, uint64_t id, const char *address)
{
    int err = 0;

    (void)ctx;
    pthread_mutex_lock(&fc_lock);
    fc_init_locked();
    if (id == 13) {
        err = CLUSTER_ETIMEDOUT;
    } else if (id == 14) {
        err = CLUSTER_ENOLEADER;
    } else if (fc_find_locked(id) != NULL) {
        err = CLUSTER_EINVAL;
    } else if (fc.nnodes == CLUSTER_NODES_MAX) {
        err = CLUSTER_EBUSY;
    } else {
        struct cluster_node *n = &fc.nodes[fc.nnodes++];

        memset(n, 0, sizeof(*n));
        n->id = id;
        snprintf(n->address, sizeof(n->address), "%s", address);
        n->member = CLUSTER_MEMBER_VOTER; /* caught up and promoted */
        fc_commit_locked();
        n->match_index = fc.commit_index;
    }
    pthread_mutex_unlock(&fc_lock);
    return err;
}

static int fc_remove(void *ctx, uint64_t id)
{
    struct cluster_node *n;
    int err = 0;

    (void)ctx;
    pthread_mutex_lock(&fc_lock);
    fc_init_locked();
    if ((n = fc_find_locked(id)) == NULL) {
        err = CLUSTER_ENOTFOUND;
    } else if (id == fc.node_id) {
        err = CLUSTER_EINVAL;
    } else {
        *n = fc.nodes[--fc.nnodes];
        fc_commit_locked();
    }
    pthread_mutex_unlock(&fc_lock);
    return err;
}

static int fc_transfer(void *ctx, uint64_t id)
{
    struct cluster_node *n;
    int err = 0;

    (void)ctx;
    pthread_mutex_lock(&fc_lock);
    fc_init_locked();
    if ((n = fc_find_locked(id)) == NULL) {
        err = CLUSTER_ENOTFOUND;
    } else if (id == fc.leader_id) {
        err = CLUSTER_EINVAL;
    } else {
        /* this node follows the new leader: it knows no match index */
        fc.term++;
        fc.leader_id = id;
        snprintf(fc.leader_address, sizeof(fc.leader_address), "%s",
                 n->address);
        fc.role = CLUSTER_ROLE_FOLLOWER;
        for (size_t i = 0; i < fc.nnodes; i++) {
            fc.nodes[i].match_index = 0;
        }
    }
    pthread_mutex_unlock(&fc_lock);
    return err;
}

/* A digest that moves with the applied index. */
static CK_RV fc_digest(void *ctx, uint8_t out[32], uint64_t *applied)
{
    (void)ctx;
    pthread_mutex_lock(&fc_lock);
    fc_init_locked();
    for (size_t i = 0; i < 32; i++) {
        out[i] = (uint8_t)(i * 7 + fc.applied_index);
    }
    *applied = fc.applied_index;
    pthread_mutex_unlock(&fc_lock);
    return CKR_OK;
}

static const struct wire_cluster_ops fc_ops = {
    .status = fc_status,
    .add = fc_add,
    .remove = fc_remove,
    .transfer = fc_transfer,
    .digest = fc_digest,
};

const struct wire_cluster_ops *nimbus_test_fake_cluster(void)
{
    return &fc_ops;
}
