/*
 * cluster_test.h - hooks for tests/cluster only (not for nimbusd).
 */
#ifndef NIMBUS_CLUSTER_TEST_H
#define NIMBUS_CLUSTER_TEST_H

#include <stdint.h>

#include "cluster/cluster.h"

/* On the leader: the next n successful answers to forwarded entries are
 * lost, and the link they would have gone on is cut (the follower sends
 * the same entry again). */
void cluster_test_drop_replies(cluster_t *cl, unsigned n);
/* cluster_status's peers_refused (as of the last status refresh). */
uint64_t cluster_test_refusals(cluster_t *cl);

#endif
