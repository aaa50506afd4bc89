/*
 * hsm_cluster.h - the core in a cluster (section 11), for nimbusd.
 *
 * In a cluster every change of the replicated state goes through the log:
 * the core's store handle gets a journal (store.h "cluster") whose submit
 * is the engine's, and each node applies the log to its store with a
 * second handle and the hooks below. The cluster masking key, made when
 * the cluster is bootstrapped and fetched by a node that joins, is kept
 * node-local, sealed under the node's store key.
 */
#ifndef NIMBUS_HSM_CLUSTER_H
#define NIMBUS_HSM_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsm/hsm.h"
#include "store/store.h"

#define HSM_CLUSTER_KEY_LEN 32

/* The engine's side: appends entry to the log and waits until this node
 * applied it; *res is what store_journal_apply answered there. A failure
 * to reach the cluster is CKR_DEVICE_ERROR. */
struct hsm_cluster_link {
    void *ctx;
    CK_RV (*submit)
    (void *ctx, const uint8_t *entry, size_t len, uint8_t **res,
     size_t *reslen);
};

/* Whether this node holds the cluster masking key (loads it if so). */
CK_RV hsm_cluster_key_load(hsm_t *hsm, bool *have);
/* A fresh key, stored sealed; CKR_FUNCTION_FAILED when one is there. */
CK_RV hsm_cluster_key_create(hsm_t *hsm);
/* The key and its domain (the id of the cluster that made it, bound into
 * every masking), for a member that joins (secret: the caller wipes it). */
CK_RV hsm_cluster_key_export(hsm_t *hsm, uint8_t key[HSM_CLUSTER_KEY_LEN],
                             char domain[CONFIG_CLUSTER_ID_MAX + 1]);
/* Installs a key and its domain fetched from a member; CKR_FUNCTION_FAILED
 * when a different one is already there, CKR_ARGUMENTS_BAD for a domain
 * that is not a cluster id. */
CK_RV hsm_cluster_key_import(hsm_t *hsm, const uint8_t key[HSM_CLUSTER_KEY_LEN],
                             const char *domain);
/* The key's domain once the key is loaded, else this node's cluster id. */
const char *hsm_cluster_domain(hsm_t *hsm);
/* Whether d[0..n) is a cluster id ([0-9A-Za-z-], 1 to 64 bytes). */
bool hsm_cluster_domain_valid(const char *d, size_t n);

/* The hooks an applying store handle needs (mask, unmask, audit). */
const struct store_journal *hsm_cluster_journal(hsm_t *hsm);

/* From now on, hsm's writes of the replicated state go through link (kept
 * by reference). The key must be loaded. */
CK_RV hsm_cluster_attach(hsm_t *hsm, const struct hsm_cluster_link *link);

/* Writes fail (CKR_DEVICE_ERROR) from now on: the engine goes. */
void hsm_cluster_detach(hsm_t *hsm);

/* Bootstrap: when the replicated state has no users yet, makes the PRECO,
 * the AU, the serial and the label, through the log. */
CK_RV hsm_cluster_init(hsm_t *hsm);

/* Whether the replicated state has been initialized (its users exist):
 * false on a node that waits to be added. */
bool hsm_cluster_ready(hsm_t *hsm);

/*
 * The state machine, for the engine's thread (its own store handle; never
 * hsm->lock): store.h's store_journal_apply, store_journal_applied,
 * store_snapshot, store_restore with this node's hooks. A CK_RV other
 * than CKR_OK from apply or restore means the store could not be written:
 * the node must stop.
 */
CK_RV hsm_cluster_apply(hsm_t *hsm, uint64_t index, uint64_t origin,
                        uint64_t seq, const uint8_t *entry, size_t len,
                        uint8_t **res, size_t *reslen);
CK_RV hsm_cluster_applied(hsm_t *hsm, uint64_t *index);
CK_RV hsm_cluster_snapshot(hsm_t *hsm, uint8_t **buf, size_t *len);
CK_RV hsm_cluster_restore(hsm_t *hsm, const uint8_t *buf, size_t len);
/* Sync status: SHA-256 of store_digest_input of this node's store, and
 * the index it was taken at. */
CK_RV hsm_cluster_digest(hsm_t *hsm, uint8_t out[HSM_DIGEST_LEN],
                         uint64_t *applied);

#endif
