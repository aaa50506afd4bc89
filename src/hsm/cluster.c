/*
 * cluster.c - the core in a cluster (hsm_cluster.h, section 11).
 *
 * The cluster masking key lives in the node-local meta row
 * "local.cluster_key", sealed under the node's store key with the cluster
 * id bound: a store copied into another cluster does not open it. Sealed
 * with it is the key's domain, the id of the cluster that made the key
 * (rows written before domains existed hold the key alone: their domain is
 * the cluster id).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/internal.h"

#define META_CLUSTER_KEY "local.cluster_key"
#define CKEY_AD_PREFIX "nimbus-cluster-key-v1:"

static CK_RV ckey_ad(const hsm_t *hsm, char *ad, size_t adlen, size_t *n)
{
    int k = snprintf(ad, adlen, "%s%s", CKEY_AD_PREFIX, hsm->cfg.cluster_id);

    if (k < 0 || (size_t)k >= adlen)
        return CKR_GENERAL_ERROR;
    *n = (size_t)k;
    return CKR_OK;
}

/* Reads and opens the sealed key into hsm->ckey (allocated here when
 * missing); *have false when the row is absent. hsm->lock held. */
static CK_RV key_read_locked(hsm_t *hsm, bool *have)
{
    char ad[sizeof(CKEY_AD_PREFIX) + CONFIG_CLUSTER_ID_MAX];
    uint8_t *sealed = NULL, *clear = NULL;
    size_t sealedlen = 0, clearlen = 0, adlen = 0;
    CK_RV rv;

    *have = false;
    if ((rv = ckey_ad(hsm, ad, sizeof(ad), &adlen)) != CKR_OK ||
        (rv = store_meta_get(hsm->st, META_CLUSTER_KEY, &sealed, &sealedlen)) !=
            CKR_OK)
        return rv;
    if (sealed == NULL)
        return CKR_OK;
    rv = crypto_unseal(hsm->mkey, (const uint8_t *)ad, adlen, sealed, sealedlen,
                       &clear, &clearlen);
    free(sealed);
    if (rv != CKR_OK || clearlen < HSM_CLUSTER_KEY_LEN ||
        clearlen > HSM_CLUSTER_KEY_LEN + CONFIG_CLUSTER_ID_MAX ||
        !hsm_cluster_domain_valid((const char *)clear + HSM_CLUSTER_KEY_LEN,
                                  clearlen - HSM_CLUSTER_KEY_LEN)) {
        log_error("cluster: the cluster key does not open (another "
                  "cluster's store, or a damaged one)");
        crypto_secret_free(clear);
        return CKR_DEVICE_ERROR;
    }
    if (hsm->ckey == NULL) {
        /* Published whole: the engine's thread reads it without the lock
         * (hsm_cluster_key_export, the journal's hooks). */
        uint8_t *k = crypto_secret_alloc(HSM_CLUSTER_KEY_LEN);

        if (k == NULL) {
            crypto_secret_free(clear);
            return CKR_HOST_MEMORY;
        }
        memcpy(k, clear, HSM_CLUSTER_KEY_LEN);
        if (clearlen > HSM_CLUSTER_KEY_LEN) {
            memcpy(hsm->cdomain, clear + HSM_CLUSTER_KEY_LEN,
                   clearlen - HSM_CLUSTER_KEY_LEN);
            hsm->cdomain[clearlen - HSM_CLUSTER_KEY_LEN] = '\0';
        } else {
            snprintf(hsm->cdomain, sizeof(hsm->cdomain), "%s",
                     hsm->cfg.cluster_id);
        }
        __atomic_store_n(&hsm->ckey, k, __ATOMIC_RELEASE);
    }
    crypto_secret_free(clear);
    *have = true;
    return CKR_OK;
}

CK_RV hsm_cluster_key_load(hsm_t *hsm, bool *have)
{
    CK_RV rv;

    pthread_mutex_lock(&hsm->lock);
    rv = key_read_locked(hsm, have);
    pthread_mutex_unlock(&hsm->lock);
    return rv;
}

bool hsm_cluster_domain_valid(const char *d, size_t n)
{
    if (n == 0 || n > CONFIG_CLUSTER_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'z') ||
              (d[i] >= 'A' && d[i] <= 'Z') || d[i] == '-'))
            return false;
    return true;
}

/* Stores key and its domain sealed, unless a key is there: *same then
 * tells whether it is the same key of the same domain. hsm->lock held. */
static CK_RV key_store_locked(hsm_t *hsm, const uint8_t *key,
                              const char *domain, bool *same)
{
    char ad[sizeof(CKEY_AD_PREFIX) + CONFIG_CLUSTER_ID_MAX];
    uint8_t clear[HSM_CLUSTER_KEY_LEN + CONFIG_CLUSTER_ID_MAX];
    uint8_t *sealed = NULL;
    size_t sealedlen = 0, adlen = 0, dlen = strlen(domain);
    bool have = false;
    CK_RV rv;

    *same = false;
    if (!hsm_cluster_domain_valid(domain, dlen))
        return CKR_ARGUMENTS_BAD;
    if ((rv = ckey_ad(hsm, ad, sizeof(ad), &adlen)) != CKR_OK ||
        (rv = store_begin_local(hsm->st)) != CKR_OK)
        return rv;
    if ((rv = key_read_locked(hsm, &have)) != CKR_OK)
        goto fail;
    if (have) {
        *same = util_ct_memcmp(hsm->ckey, key, HSM_CLUSTER_KEY_LEN) == 0 &&
                strcmp(hsm->cdomain, domain) == 0;
        store_rollback(hsm->st);
        return CKR_FUNCTION_FAILED;
    }
    memcpy(clear, key, HSM_CLUSTER_KEY_LEN);
    memcpy(clear + HSM_CLUSTER_KEY_LEN, domain, dlen);
    rv = crypto_seal(hsm->mkey, (const uint8_t *)ad, adlen, clear,
                     HSM_CLUSTER_KEY_LEN + dlen, &sealed, &sealedlen);
    util_wipe(clear, sizeof(clear));
    if (rv != CKR_OK ||
        (rv = store_meta_set(hsm->st, META_CLUSTER_KEY, sealed, sealedlen)) !=
            CKR_OK ||
        (rv = store_commit(hsm->st)) != CKR_OK)
        goto fail;
    free(sealed);
    return key_read_locked(hsm, &have);
fail:
    free(sealed);
    store_rollback(hsm->st);
    return rv;
}

CK_RV hsm_cluster_key_create(hsm_t *hsm)
{
    uint8_t *key = crypto_secret_alloc(HSM_CLUSTER_KEY_LEN);
    bool same = false;
    CK_RV rv;

    if (key == NULL)
        return CKR_HOST_MEMORY;
    if ((rv = crypto_random(key, HSM_CLUSTER_KEY_LEN)) == CKR_OK) {
        pthread_mutex_lock(&hsm->lock);
        rv = key_store_locked(hsm, key, hsm->cfg.cluster_id, &same);
        pthread_mutex_unlock(&hsm->lock);
    }
    crypto_secret_free(key);
    return rv;
}

CK_RV hsm_cluster_key_import(hsm_t *hsm, const uint8_t key[HSM_CLUSTER_KEY_LEN],
                             const char *domain)
{
    bool same = false;
    CK_RV rv;

    pthread_mutex_lock(&hsm->lock);
    rv = key_store_locked(hsm, key, domain, &same);
    pthread_mutex_unlock(&hsm->lock);
    return rv == CKR_FUNCTION_FAILED && same ? CKR_OK : rv;
}

CK_RV hsm_cluster_ad(const char *prefix, const char *cluster_id, uint64_t id,
                     uint64_t version, uint8_t ad[HSM_CLUSTER_AD_MAX],
                     size_t *n)
{
    size_t pre = strlen(prefix), idlen = strlen(cluster_id);

    if (pre > HSM_CLUSTER_AD_PREFIX_MAX || idlen > CONFIG_CLUSTER_ID_MAX)
        return CKR_GENERAL_ERROR;
    memcpy(ad, prefix, pre);
    ad[pre] = (uint8_t)idlen;
    memcpy(ad + pre + 1, cluster_id, idlen);
    for (int i = 0; i < 8; i++) {
        ad[pre + 1 + idlen + i] = (uint8_t)(id >> (56 - 8 * i));
        ad[pre + 9 + idlen + i] = (uint8_t)(version >> (56 - 8 * i));
    }
    *n = pre + 1 + idlen + 16;
    return CKR_OK;
}

const uint8_t *hsm_cluster_key(hsm_t *hsm)
{
    return __atomic_load_n(&hsm->ckey, __ATOMIC_ACQUIRE);
}

CK_RV hsm_cluster_key_export(hsm_t *hsm, uint8_t key[HSM_CLUSTER_KEY_LEN],
                             char domain[CONFIG_CLUSTER_ID_MAX + 1])
{
    const uint8_t *k = hsm_cluster_key(hsm);

    if (k == NULL)
        return CKR_KEY_NEEDED;
    memcpy(key, k, HSM_CLUSTER_KEY_LEN);
    memcpy(domain, hsm->cdomain, CONFIG_CLUSTER_ID_MAX + 1);
    return CKR_OK;
}

const char *hsm_cluster_domain(hsm_t *hsm)
{
    return hsm_cluster_key(hsm) != NULL ? hsm->cdomain : hsm->cfg.cluster_id;
}

/* ------------------------------------------------------------ journal */

/* The key never changes once loaded (import refuses another): the hooks,
 * on the engine's thread, read it without the lock. */
static CK_RV j_mask(void *ctx, uint64_t oid, uint64_t version,
                    const uint8_t *blob, size_t len, uint8_t **out,
                    size_t *outlen)
{
    hsm_t *hsm = ctx;
    const uint8_t *k = hsm_cluster_key(hsm);

    if (k == NULL)
        return CKR_KEY_NEEDED;
    return hsm_obj_mask(hsm, k, oid, version, blob, len, out, outlen);
}

static CK_RV j_unmask(void *ctx, uint64_t oid, uint64_t version,
                      const uint8_t *masked, size_t len, uint8_t **out,
                      size_t *outlen)
{
    hsm_t *hsm = ctx;
    const uint8_t *k = hsm_cluster_key(hsm);

    if (k == NULL)
        return CKR_KEY_NEEDED;
    return hsm_obj_unmask(hsm, k, oid, version, masked, len, out, outlen);
}

static CK_RV j_audit(void *ctx, store_t *st, store_audit_t *rec)
{
    (void)ctx;
    return hsm_audit_append(st, rec);
}

/* hsm_waits_unlocked_begin's depth on this thread: while above zero, an
 * entry this thread submits waits with hsm->lock let go. */
static _Thread_local unsigned waits_unlocked;

static CK_RV j_submit(void *ctx, const uint8_t *entry, size_t len,
                      uint8_t **res, size_t *reslen)
{
    hsm_t *hsm = ctx;
    struct hsm_cluster_link link = hsm->link; /* read under hsm->lock */
    CK_RV rv;

    if (link.submit == NULL)
        return CKR_DEVICE_ERROR;
    if (waits_unlocked == 0)
        return link.submit(link.ctx, entry, len, res, reslen);
    /* The store handle is out of its transaction (store_jr_commit,
     * store_reserve, a charge): the other threads may use the core, and
     * submit entries of their own, while this one waits. */
    pthread_mutex_unlock(&hsm->lock);
    rv = link.submit(link.ctx, entry, len, res, reslen);
    pthread_mutex_lock(&hsm->lock);
    return rv;
}

void hsm_waits_unlocked_begin(void)
{
    waits_unlocked++;
}

void hsm_waits_unlocked_end(void)
{
    if (waits_unlocked > 0)
        waits_unlocked--;
}

CK_RV hsm_cluster_commit_unlocked(hsm_t *hsm)
{
    CK_RV rv;

    if (!hsm->attached)
        return store_commit(hsm->st);
    hsm_waits_unlocked_begin();
    rv = store_commit(hsm->st);
    hsm_waits_unlocked_end();
    return rv;
}

CK_RV hsm_reserve_unlocked(hsm_t *hsm)
{
    CK_RV rv;

    if (!hsm->attached)
        return CKR_OK;
    hsm_waits_unlocked_begin();
    rv = store_reserve(hsm->st);
    hsm_waits_unlocked_end();
    return rv;
}

void hsm_cluster_journal_init(hsm_t *hsm)
{
    hsm->journal.ctx = hsm;
    hsm->journal.mask = j_mask;
    hsm->journal.unmask = j_unmask;
    hsm->journal.audit_append = j_audit;
    hsm->journal.submit = j_submit;
}

/* Filled once by hsm_open: the engine's thread and the core's read it
 * at once (filling it on each call was a data race, ThreadSanitizer). */
const struct store_journal *hsm_cluster_journal(hsm_t *hsm)
{
    return &hsm->journal;
}

CK_RV hsm_cluster_attach(hsm_t *hsm, const struct hsm_cluster_link *link)
{
    CK_RV rv = CKR_OK;

    pthread_mutex_lock(&hsm->lock);
    if (hsm->ckey == NULL || link == NULL || link->submit == NULL) {
        rv = CKR_ARGUMENTS_BAD;
    } else {
        hsm->link = *link;
        store_journal_attach(hsm->st, hsm_cluster_journal(hsm));
        hsm->attached = true;
    }
    pthread_mutex_unlock(&hsm->lock);
    return rv;
}

void hsm_cluster_detach(hsm_t *hsm)
{
    pthread_mutex_lock(&hsm->lock);
    hsm->link.submit = NULL;
    pthread_mutex_unlock(&hsm->lock);
}

CK_RV hsm_cluster_init(hsm_t *hsm)
{
    CK_RV rv;

    pthread_mutex_lock(&hsm->lock);
    rv = hsm->attached ? hsm_cluster_seed_locked(hsm) : CKR_GENERAL_ERROR;
    pthread_mutex_unlock(&hsm->lock);
    return rv;
}

bool hsm_cluster_ready(hsm_t *hsm)
{
    store_user_t u;
    bool found = false;

    /* The AU (id 2) is made with the PRECO and is there for good. */
    memset(&u, 0, sizeof(u));
    pthread_mutex_lock(&hsm->lock);
    if (store_user_by_id(hsm->st, 2, &u, &found) != CKR_OK)
        found = false;
    pthread_mutex_unlock(&hsm->lock);
    store_user_clear(&u);
    return found;
}

/* ------------------------------------------------------------ state machine */

/* The engine's thread applies the log with a store handle of its own:
 * hsm->lock is never taken there (a core thread holding it may be waiting
 * for this very apply). */
static CK_RV apply_store(hsm_t *hsm, store_t **st)
{
    bool created = false;
    CK_RV rv = CKR_OK;

    if (hsm->apply_st == NULL &&
        (rv = store_open(hsm->dbpath, &hsm->apply_st, &created)) == CKR_OK &&
        (rv = store_durable_by_log(hsm->apply_st)) != CKR_OK) {
        store_close(hsm->apply_st);
        hsm->apply_st = NULL;
    }
    *st = hsm->apply_st;
    return rv;
}

CK_RV hsm_cluster_apply(hsm_t *hsm, uint64_t index, uint64_t origin,
                        uint64_t seq, const uint8_t *entry, size_t len,
                        uint8_t **res, size_t *reslen)
{
    store_t *st;
    CK_RV rv;

    if ((rv = apply_store(hsm, &st)) != CKR_OK)
        return rv;
    rv = store_journal_apply(st, hsm_cluster_journal(hsm), index, origin, seq,
                             entry, len, res, reslen);
    /* Verdicts kept by sessions were made on the state before: they are
     * made again (hsm->gen; a verdict read before this is only redone). */
    if (rv == CKR_OK)
        hsm_gen_bump_locked(hsm);
    return rv;
}

CK_RV hsm_cluster_applied(hsm_t *hsm, uint64_t *index)
{
    store_t *st;
    CK_RV rv;

    if ((rv = apply_store(hsm, &st)) != CKR_OK)
        return rv;
    return store_journal_applied(st, index);
}

CK_RV hsm_cluster_snapshot(hsm_t *hsm, uint8_t **buf, size_t *len)
{
    store_t *st;
    CK_RV rv;

    if ((rv = apply_store(hsm, &st)) != CKR_OK)
        return rv;
    return store_snapshot(st, hsm_cluster_journal(hsm), buf, len);
}

CK_RV hsm_cluster_restore(hsm_t *hsm, const uint8_t *buf, size_t len)
{
    store_t *st;
    CK_RV rv;

    if ((rv = apply_store(hsm, &st)) != CKR_OK)
        return rv;
    rv = store_restore(st, hsm_cluster_journal(hsm), buf, len);
    if (rv == CKR_OK)
        hsm_gen_bump_locked(hsm);
    return rv;
}

CK_RV hsm_cluster_digest(hsm_t *hsm, uint8_t out[HSM_DIGEST_LEN],
                         uint64_t *applied)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    CK_RV rv;

    pthread_mutex_lock(&hsm->lock);
    rv = store_digest_input(hsm->st, &buf, &len, applied);
    pthread_mutex_unlock(&hsm->lock);
    if (rv == CKR_OK)
        rv = crypto_sha256(buf != NULL ? buf : (const uint8_t *)"", len, out);
    free(buf);
    return rv;
}
