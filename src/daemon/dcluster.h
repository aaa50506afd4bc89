/*
 * dcluster.h - nimbusd's side of the cluster (section 11): the engine
 * (src/cluster/) driven with the core's state machine (hsm_cluster.h).
 */
#ifndef NIMBUS_DCLUSTER_H
#define NIMBUS_DCLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "cluster/cluster.h"
#include "common/conf.h"
#include "hsm/hsm.h"
#include "wire/server.h"

typedef struct dcluster dcluster_t;

/*
 * Starts the engine for hsm (opened with cfg, cluster_node_id set) and
 * routes the core's writes through it. A bootstrap node on its first
 * start makes the cluster key and the PRECO; a node without the key
 * fetches it from cfg->cluster_join, retrying until a member answers
 * (it has been added) or stop() says so. false: err says why.
 */
bool dcluster_start(const struct config *cfg, hsm_t *hsm, bool (*stop)(void),
                    dcluster_t **out, char *err, size_t errlen);
void dcluster_stop(dcluster_t *dc);
cluster_t *dcluster_engine(dcluster_t *dc);
/* The wire server's cluster calls (listNodes, addNode, ...), answered by
 * this node's engine; lives as long as dc. */
const struct wire_cluster_ops *dcluster_ops(dcluster_t *dc);

#endif
