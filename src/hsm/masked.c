/*
 * masked.c - masked objects in a file (hsm.h hsm_masked_extract and
 * hsm_masked_insert; the permission table's masked objects row).
 *
 * The file (masked.proto) carries a token object as the cluster moves it:
 * its attribute list masked under the cluster key (hsm_obj_mask, with the
 * cluster id, object id and version bound), and around it its owner,
 * shares and indexed columns, sealed again under the cluster key with the
 * same three bound, so that no field of the file can be changed or moved
 * to another object. Only a node of a cluster holding the same cluster
 * key opens it; outside a cluster there is no key that another HSM could
 * share, so both calls answer CKR_FUNCTION_NOT_SUPPORTED.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/internal.h"
#include "src/hsm/masked.pb-c.h"

#define FILE_FORMAT "nimbus-masked-object-v1"
#define FILE_AD_PREFIX "nimbus-masked-file-v1"
#define SHARES_MAX 1024u
/* A whole file: an object's blob (16 MiB at most) and some room. */
#define FILE_MAX (16u * 1024u * 1024u + 64u * 1024u)

/* Builds the file of object so (id, version) with its shares. */
static CK_RV file_make(hsm_t *hsm, const uint8_t *ckey,
                       const store_object_t *so, uint64_t version,
                       const uint32_t *shares, size_t nshares, uint8_t **out,
                       size_t *outlen)
{
    Nimbus__Masked__Body body = NIMBUS__MASKED__BODY__INIT;
    Nimbus__Masked__File file = NIMBUS__MASKED__FILE__INIT;
    uint8_t ad[HSM_CLUSTER_AD_MAX];
    uint8_t *masked = NULL, *plain = NULL, *sealed = NULL, *buf = NULL;
    size_t mlen = 0, plainlen = 0, sealedlen = 0, adlen = 0, n;
    CK_RV rv;

    if ((rv = hsm_obj_mask(hsm, ckey, so->id, version, so->attrs, so->attrs_len,
                           &masked, &mlen)) != CKR_OK)
        return rv;
    body.owner = so->owner;
    body.cls = so->cls;
    body.key_type = so->key_type;
    body.is_private = so->is_private;
    body.label.data = so->label;
    body.label.len = so->label_len;
    body.ckid.data = so->ckid;
    body.ckid.len = so->ckid_len;
    body.n_shares = nshares;
    body.shares = (uint32_t *)shares;
    body.masked.data = masked;
    body.masked.len = mlen;
    plainlen = nimbus__masked__body__get_packed_size(&body);
    if ((plain = malloc(plainlen > 0 ? plainlen : 1)) == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    nimbus__masked__body__pack(&body, plain);
    if ((rv = hsm_cluster_ad(FILE_AD_PREFIX, hsm_cluster_domain(hsm), so->id,
                             version, ad, &adlen)) != CKR_OK ||
        (rv = crypto_seal(ckey, ad, adlen, plain, plainlen, &sealed,
                          &sealedlen)) != CKR_OK)
        goto out;
    file.format = (char *)FILE_FORMAT;
    file.cluster_id = (char *)hsm_cluster_domain(hsm);
    file.id = so->id;
    file.version = version;
    file.sealed.data = sealed;
    file.sealed.len = sealedlen;
    n = nimbus__masked__file__get_packed_size(&file);
    if ((buf = malloc(n)) == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    nimbus__masked__file__pack(&file, buf);
    *out = buf;
    *outlen = n;
out:
    free(masked);
    free(sealed);
    util_free_wipe(plain, plainlen);
    return rv;
}

CK_RV hsm_masked_extract(hsm_conn_t *conn, hsm_oid_t oid, uint8_t **out,
                         size_t *outlen)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    const uint8_t *ckey = hsm_cluster_key(hsm);
    store_object_t so;
    uint32_t *shares = NULL;
    size_t nshares = 0;
    uint64_t version = 0;
    bool found = false;
    CK_RV rv;

    memset(&so, 0, sizeof(so));
    *out = NULL;
    *outlen = 0;
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_role_locked(conn, HSM_OP_MASKED_OBJECTS)) != CKR_OK)
        goto out;
    if (ckey == NULL) {
        rv = CKR_FUNCTION_NOT_SUPPORTED; /* not a cluster node */
        goto out;
    }
    if ((rv = hsm_token_object_locked(conn, oid, &so)) != CKR_OK)
        goto out;
    if (conn->type == HSM_USER_CU && so.owner != conn->uid) {
        rv = CKR_ACTION_PROHIBITED; /* a CU extracts what it owns */
        goto out;
    }
    if ((rv = store_object_version(hsm->st, oid, &version, &found)) != CKR_OK ||
        (rv = store_share_list(hsm->st, oid, &shares, &nshares)) != CKR_OK)
        goto out;
    rv = file_make(hsm, ckey, &so, version, shares, nshares, out, outlen);
    /* who took a key out, even masked (a record of its own; the call
     * ends after it) */
    hsm_audit_last_locked(hsm, conn->uid, "masked-extract", oid, rv);
out:
    pthread_mutex_unlock(&hsm->lock);
    store_object_clear(&so);
    free(shares);
    return rv;
}

/* Whether uid is a crypto user here. */
CK_RV hsm_masked_insert(hsm_conn_t *conn, const uint8_t *buf, size_t len,
                        hsm_oid_t *oid)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    const uint8_t *ckey = hsm_cluster_key(hsm);
    Nimbus__Masked__File *file = NULL;
    Nimbus__Masked__Body *body = NULL;
    uint8_t ad[HSM_CLUSTER_AD_MAX];
    uint8_t *plain = NULL, *blob = NULL;
    size_t plainlen = 0, bloblen = 0, adlen = 0;
    store_object_t so;
    uint64_t cur = 0;
    bool found = false, changed = false, began = false;
    CK_RV rv;

    memset(&so, 0, sizeof(so));
    *oid = 0;
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_reserve_unlocked(hsm)) != CKR_OK ||
        (rv = hsm_role_locked(conn, HSM_OP_MASKED_OBJECTS)) != CKR_OK)
        goto out;
    if (ckey == NULL) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
        goto out;
    }
    /* the file is hostile input until it opens */
    if (buf == NULL || len == 0 || len > FILE_MAX ||
        (file = nimbus__masked__file__unpack(NULL, len, buf)) == NULL ||
        strcmp(file->format, FILE_FORMAT) != 0 || file->id == 0 ||
        file->id > INT64_MAX || (file->id & HSM_SESSION_OID_BIT) ||
        file->version == 0 || file->version > INT64_MAX) {
        rv = CKR_DATA_INVALID;
        goto out;
    }
    if (strcmp(file->cluster_id, hsm_cluster_domain(hsm)) != 0) {
        log_warn("masked object: a file of cluster \"%.64s\" refused",
                 file->cluster_id);
        rv = CKR_DATA_INVALID; /* another cluster's */
        goto out;
    }
    if ((rv = hsm_cluster_ad(FILE_AD_PREFIX, hsm_cluster_domain(hsm), file->id,
                             file->version, ad, &adlen)) != CKR_OK)
        goto out;
    if (crypto_unseal(ckey, ad, adlen, file->sealed.data, file->sealed.len,
                      &plain, &plainlen) != CKR_OK ||
        (body = nimbus__masked__body__unpack(NULL, plainlen, plain)) == NULL ||
        body->n_shares > SHARES_MAX) {
        rv = CKR_ENCRYPTED_DATA_INVALID; /* changed, moved, or not ours */
        goto out;
    }
    if (conn->type == HSM_USER_CU && body->owner != conn->uid) {
        rv = CKR_ACTION_PROHIBITED; /* a CU puts back its own keys */
        goto out;
    }
    if ((rv = hsm_obj_unmask(hsm, ckey, file->id, file->version,
                             body->masked.data, body->masked.len, &blob,
                             &bloblen)) != CKR_OK)
        goto out;
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    began = true;
    /* the owner and the users it was shared with must be crypto users
     * here (a deleted user's key does not come back to nobody), still
     * when the entry applies (a deletion elsewhere may come first) */
    if ((rv = store_require(hsm->st, STORE_REQUIRE_USER_TYPE, body->owner,
                            HSM_USER_CU, CKR_DATA_INVALID)) != CKR_OK)
        goto out;
    for (size_t i = 0; i < body->n_shares; i++)
        if ((rv = store_require(hsm->st, STORE_REQUIRE_USER_TYPE,
                                body->shares[i], HSM_USER_CU,
                                CKR_DATA_INVALID)) != CKR_OK)
            goto out;
    if ((rv = store_object_version(hsm->st, file->id, &cur, &found)) != CKR_OK)
        goto out;
    if (found) {
        /* the same version: already here; another (an old one replayed,
         * or one this cluster has not reached): refused */
        rv = cur == file->version ? CKR_OK : CKR_DATA_INVALID;
        *oid = rv == CKR_OK ? file->id : 0;
        goto out;
    }
    so.owner = body->owner;
    so.cls = (CK_ULONG)body->cls;
    so.key_type = (CK_ULONG)body->key_type;
    so.is_private = body->is_private;
    so.label = body->label.len > 0 ? body->label.data : NULL;
    so.label_len = body->label.len;
    so.ckid = body->ckid.len > 0 ? body->ckid.data : NULL;
    so.ckid_len = body->ckid.len;
    so.attrs = blob;
    so.attrs_len = bloblen;
    if ((rv = store_object_put(hsm->st, &so, file->id, file->version,
                               &changed)) != CKR_OK)
        goto out;
    for (size_t i = 0; changed && i < body->n_shares; i++)
        if ((rv = store_share_set(hsm->st, file->id, body->shares[i], true)) !=
            CKR_OK)
            goto out;
    if ((rv = hsm_audit_tx_locked(hsm, conn->uid, "masked-insert", file->id,
                                  CKR_OK)) != CKR_OK)
        goto out;
    began = false;
    /* Nothing read under the lock is used after (the file is ours). */
    if ((rv = hsm_cluster_commit_unlocked(hsm)) != CKR_OK)
        goto out;
    hsm_gen_bump_locked(hsm);
    log_info("masked object %llu version %llu inserted by user %u",
             (unsigned long long)file->id, (unsigned long long)file->version,
             (unsigned)conn->uid);
    *oid = file->id;
out:
    if (began)
        store_rollback(hsm->st);
    pthread_mutex_unlock(&hsm->lock);
    if (body != NULL)
        nimbus__masked__body__free_unpacked(body, NULL);
    if (file != NULL)
        nimbus__masked__file__free_unpacked(file, NULL);
    crypto_secret_free(plain); /* crypto_unseal's: secret memory */
    util_free_wipe(blob, bloblen);
    return rv;
}
