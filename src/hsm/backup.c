/*
 * backup.c - cluster backups (hsm.h hsm_backup and hsm_restore; the
 * permission table's backup and restore rows).
 *
 * A backup is this node's store snapshot (store_snapshot: the replicated
 * tables, objects masked under the cluster key, no node-local row) sealed
 * again whole under the cluster key, behind a small plain header
 * (backup.proto). The header travels as bytes and is bound whole into the
 * seal's associated data, so nothing of it can change either. Only a
 * cluster holding the same key (the same domain) opens it: the cluster
 * itself rebuilt, or a clone made from its key.
 *
 * A restore is one log entry (store_restore_backup) that every node
 * applies alike, only over a cluster that holds nothing of value yet; the
 * store re-checks that at apply, where two writers racing cannot both
 * pass.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/hsm_cluster.h"
#include "hsm/internal.h"
#include "src/hsm/backup.pb-c.h"

#define FILE_FORMAT "nimbus-backup-v1"
#define HEADER_MAX 1024u

/* The associated data: the format, a zero byte, the header's bytes. */
static CK_RV file_ad(const uint8_t *hdr, size_t hdrlen, uint8_t **ad,
                     size_t *adlen)
{
    size_t n = sizeof(FILE_FORMAT) + hdrlen; /* the format's NUL included */

    if ((*ad = malloc(n)) == NULL)
        return CKR_HOST_MEMORY;
    memcpy(*ad, FILE_FORMAT, sizeof(FILE_FORMAT));
    memcpy(*ad + sizeof(FILE_FORMAT), hdr, hdrlen);
    *adlen = n;
    return CKR_OK;
}

/* What image snap holds, as the header says it: counts, index, digest. */
static CK_RV image_info(const uint8_t *snap, size_t snaplen,
                        hsm_backup_info_t *info)
{
    store_snap_info_t si;
    uint8_t *dig = NULL;
    size_t diglen = 0;
    CK_RV rv;

    if ((rv = store_snapshot_info(snap, snaplen, &si, &dig, &diglen)) != CKR_OK)
        return rv;
    rv = crypto_sha256(dig != NULL ? dig : (const uint8_t *)"", diglen,
                       info->digest);
    free(dig);
    info->applied = si.applied;
    info->users = si.users;
    info->objects = si.objects;
    return rv;
}

CK_RV hsm_backup_make(const uint8_t *ckey, const char *domain,
                      const char *source, uint64_t time, const uint8_t *snap,
                      size_t snaplen, uint8_t **out, size_t *outlen,
                      hsm_backup_info_t *info)
{
    Nimbus__Backup__Header h = NIMBUS__BACKUP__HEADER__INIT;
    Nimbus__Backup__File f = NIMBUS__BACKUP__FILE__INIT;
    uint8_t *hdr = NULL, *ad = NULL, *sealed = NULL, *buf = NULL;
    size_t hdrlen, adlen = 0, sealedlen = 0, n;
    CK_RV rv;

    *out = NULL;
    *outlen = 0;
    memset(info, 0, sizeof(*info));
    if (snaplen > HSM_BACKUP_SNAPSHOT_MAX)
        return CKR_DATA_LEN_RANGE; /* no log entry would carry it back */
    if (strlen(domain) > CONFIG_CLUSTER_ID_MAX ||
        strlen(source) > CONFIG_CLUSTER_ID_MAX)
        return CKR_GENERAL_ERROR;
    if ((rv = image_info(snap, snaplen, info)) != CKR_OK)
        return rv == CKR_DATA_INVALID ? CKR_DEVICE_ERROR : rv; /* our own */
    snprintf(info->domain, sizeof(info->domain), "%s", domain);
    snprintf(info->source, sizeof(info->source), "%s", source);
    info->time = time;
    h.domain = info->domain;
    h.source = info->source;
    h.applied = info->applied;
    h.time = info->time;
    h.users = info->users;
    h.objects = info->objects;
    h.digest.data = info->digest;
    h.digest.len = sizeof(info->digest);
    hdrlen = nimbus__backup__header__get_packed_size(&h);
    if ((hdr = malloc(hdrlen)) == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    nimbus__backup__header__pack(&h, hdr);
    if ((rv = file_ad(hdr, hdrlen, &ad, &adlen)) != CKR_OK ||
        (rv = crypto_seal(ckey, ad, adlen, snap, snaplen, &sealed,
                          &sealedlen)) != CKR_OK)
        goto out;
    f.format = (char *)FILE_FORMAT;
    f.header.data = hdr;
    f.header.len = hdrlen;
    f.sealed.data = sealed;
    f.sealed.len = sealedlen;
    n = nimbus__backup__file__get_packed_size(&f);
    if ((buf = malloc(n)) == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    nimbus__backup__file__pack(&f, buf);
    *out = buf;
    *outlen = n;
out:
    free(hdr);
    free(ad);
    free(sealed);
    return rv;
}

/* A header's text field: a cluster id. */
static bool id_ok(const char *s)
{
    return s != NULL && hsm_cluster_domain_valid(s, strlen(s));
}

CK_RV hsm_backup_open(const uint8_t *ckey, const char *domain,
                      const uint8_t *buf, size_t len, hsm_backup_info_t *info,
                      uint8_t **snap, size_t *snaplen)
{
    Nimbus__Backup__File *f = NULL;
    Nimbus__Backup__Header *h = NULL;
    hsm_backup_info_t img;
    uint8_t *ad = NULL, *plain = NULL;
    size_t adlen = 0, plainlen = 0;
    CK_RV rv = CKR_DATA_INVALID;

    *snap = NULL;
    *snaplen = 0;
    memset(info, 0, sizeof(*info));
    if (buf == NULL || len == 0)
        return CKR_DATA_INVALID;
    if (len > HSM_BACKUP_FILE_MAX)
        return CKR_DATA_LEN_RANGE;
    /* the file is hostile input until it opens */
    if ((f = nimbus__backup__file__unpack(NULL, len, buf)) == NULL ||
        strcmp(f->format, FILE_FORMAT) != 0 || f->header.len == 0 ||
        f->header.len > HEADER_MAX ||
        (h = nimbus__backup__header__unpack(NULL, f->header.len,
                                            f->header.data)) == NULL ||
        !id_ok(h->domain) || !id_ok(h->source) ||
        h->digest.len != HSM_DIGEST_LEN || h->applied > INT64_MAX ||
        h->time > INT64_MAX)
        goto out;
    snprintf(info->domain, sizeof(info->domain), "%s", h->domain);
    snprintf(info->source, sizeof(info->source), "%s", h->source);
    info->applied = h->applied;
    info->time = h->time;
    info->users = h->users;
    info->objects = h->objects;
    memcpy(info->digest, h->digest.data, HSM_DIGEST_LEN);
    if (strcmp(h->domain, domain) != 0) {
        log_warn("backup: a file of key domain \"%s\" refused (this "
                 "cluster's is \"%s\")",
                 h->domain, domain);
        goto out; /* another cluster key's */
    }
    if ((rv = file_ad(f->header.data, f->header.len, &ad, &adlen)) != CKR_OK)
        goto out;
    if (crypto_unseal(ckey, ad, adlen, f->sealed.data, f->sealed.len, &plain,
                      &plainlen) != CKR_OK) {
        rv = CKR_ENCRYPTED_DATA_INVALID; /* changed, or not our key */
        goto out;
    }
    if (plainlen == 0 || plainlen > HSM_BACKUP_SNAPSHOT_MAX) {
        rv = CKR_DATA_LEN_RANGE;
        goto out;
    }
    /* Sealed by a holder of the key; still, the image must be what its
     * header says before it goes to the log. */
    if ((rv = image_info(plain, plainlen, &img)) != CKR_OK)
        goto out;
    if (img.applied != info->applied || img.users != info->users ||
        img.objects != info->objects ||
        util_ct_memcmp(img.digest, info->digest, HSM_DIGEST_LEN) != 0) {
        rv = CKR_DATA_INVALID;
        goto out;
    }
    if ((*snap = malloc(plainlen)) == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    memcpy(*snap, plain, plainlen);
    *snaplen = plainlen;
    rv = CKR_OK;
out:
    if (h != NULL)
        nimbus__backup__header__free_unpacked(h, NULL);
    if (f != NULL)
        nimbus__backup__file__free_unpacked(f, NULL);
    free(ad);
    crypto_secret_free(plain); /* crypto_unseal's: secret memory */
    return rv;
}

CK_RV hsm_backup(hsm_conn_t *conn, uint8_t **out, size_t *outlen,
                 hsm_backup_info_t *info)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    const uint8_t *ckey = hsm_cluster_key(hsm);
    char domain[CONFIG_CLUSTER_ID_MAX + 1];
    uint8_t *snap = NULL;
    size_t snaplen = 0;
    CK_RV rv;

    *out = NULL;
    *outlen = 0;
    memset(info, 0, sizeof(*info));
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_role_locked(conn, HSM_OP_BACKUP)) != CKR_OK)
        goto out;
    if (ckey == NULL || !hsm->attached) {
        rv = CKR_FUNCTION_NOT_SUPPORTED; /* not a cluster node */
        goto out;
    }
    /* One read of the store as this node applied it: the writes this
     * client made through it are in (each was acknowledged once applied
     * here). */
    /* hsm->journal: set once at attach (the engine's thread reads it) */
    if ((rv = store_snapshot(hsm->st, &hsm->journal, &snap, &snaplen)) !=
        CKR_OK)
        goto out;
    snprintf(domain, sizeof(domain), "%s", hsm_cluster_domain(hsm));
    pthread_mutex_unlock(&hsm->lock);
    /* The sealing needs nothing shared: others' calls go on meanwhile. */
    rv =
        hsm_backup_make(ckey, domain, hsm->cfg.cluster_id, (uint64_t)time(NULL),
                        snap, snaplen, out, outlen, info);
    pthread_mutex_lock(&hsm->lock);
    /* who took the whole state out, even sealed (the call ends after it) */
    hsm_audit_last_locked(hsm, conn->uid, "backup", info->applied, rv);
out:
    pthread_mutex_unlock(&hsm->lock);
    util_free_wipe(snap, snaplen);
    if (rv != CKR_OK) {
        free(*out);
        *out = NULL;
        *outlen = 0;
    }
    return rv;
}

/* Whether this cluster holds nothing a restore could destroy: no crypto
 * user, no token object, no quorum token. The ids of its users in *ids
 * (malloc'd), which the apply checks again. */
static CK_RV restore_allowed_locked(hsm_t *hsm, uint32_t **ids, size_t *n)
{
    store_user_t *users = NULL;
    store_query_t q;
    store_hit_t *hits = NULL;
    size_t nusers = 0, nhits = 0, ntokens = 0;
    CK_RV rv;

    *ids = NULL;
    *n = 0;
    memset(&q, 0, sizeof(q));
    if ((rv = store_user_list(hsm->st, &users, &nusers)) != CKR_OK ||
        (rv = store_object_find(hsm->st, &q, &hits, &nhits)) != CKR_OK ||
        (rv = store_qtoken_count(hsm->st, &ntokens)) != CKR_OK)
        goto out;
    if (nhits != 0 || ntokens != 0 || nusers > STORE_RESTORE_USERS_MAX) {
        rv = CKR_ACTION_PROHIBITED;
        goto out;
    }
    if ((*ids = calloc(nusers > 0 ? nusers : 1, sizeof(**ids))) == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    for (size_t i = 0; i < nusers; i++) {
        if (users[i].type == HSM_USER_CU) {
            rv = CKR_ACTION_PROHIBITED;
            goto out;
        }
        (*ids)[i] = users[i].id;
    }
    *n = nusers;
out:
    for (size_t i = 0; i < nusers; i++)
        store_user_clear(&users[i]);
    free(users);
    free(hits);
    if (rv != CKR_OK) {
        free(*ids);
        *ids = NULL;
    }
    return rv;
}

CK_RV hsm_restore(hsm_conn_t *conn, const uint8_t *buf, size_t len,
                  hsm_backup_info_t *info)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    const uint8_t *ckey = hsm_cluster_key(hsm);
    char domain[CONFIG_CLUSTER_ID_MAX + 1];
    char note[2 * CONFIG_CLUSTER_ID_MAX + 32];
    uint8_t *snap = NULL;
    size_t snaplen = 0, nids = 0;
    uint32_t *ids = NULL;
    hsm_uid_t uid;
    bool began = false;
    CK_RV rv;

    memset(info, 0, sizeof(*info));
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_reserve_unlocked(hsm)) != CKR_OK ||
        (rv = hsm_role_locked(conn, HSM_OP_RESTORE)) != CKR_OK)
        goto out;
    if (ckey == NULL || !hsm->attached) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
        goto out;
    }
    snprintf(domain, sizeof(domain), "%s", hsm_cluster_domain(hsm));
    uid = conn->uid;
    pthread_mutex_unlock(&hsm->lock);
    /* The opening (unseal, image checks) needs nothing shared. */
    rv = hsm_backup_open(ckey, domain, buf, len, info, &snap, &snaplen);
    pthread_mutex_lock(&hsm->lock);
    if (rv != CKR_OK) {
        log_warn("backup: a file refused by user %u: 0x%lx", (unsigned)uid,
                 (unsigned long)rv);
        goto out; /* nothing written, not even a record: nothing changes */
    }
    /* The login may have ended while the lock was free. */
    if ((rv = hsm_role_locked(conn, HSM_OP_RESTORE)) != CKR_OK)
        goto out;
    if ((rv = restore_allowed_locked(hsm, &ids, &nids)) != CKR_OK) {
        log_warn("backup: no restore over a cluster in use (user %u)",
                 (unsigned)uid);
        goto out;
    }
    snprintf(note, sizeof(note), "backup of %s at %llu", info->source,
             (unsigned long long)info->applied);
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    began = true;
    if ((rv = store_restore_backup(hsm->st, snap, snaplen, ids, nids)) !=
            CKR_OK ||
        (rv = hsm_audit_note_tx_locked(hsm, uid, "restore", info->applied,
                                       CKR_OK, note)) != CKR_OK)
        goto out;
    began = false;
    /* The lock goes while the entry (up to 16 MiB) waits for the
     * majority: nothing read under it is used after but conn, which the
     * call holds; the apply re-checks the users. */
    rv = hsm_cluster_commit_unlocked(hsm);
    if (rv != CKR_OK) {
        /* refused at apply (a user made meanwhile: the entry's record
         * went with it), or the cluster out of reach */
        log_warn("backup: the restore failed: 0x%lx", (unsigned long)rv);
        goto out;
    }
    log_info("backup of %s at index %llu restored by user %u (%llu users, "
             "%llu objects)",
             info->source, (unsigned long long)info->applied, (unsigned)uid,
             (unsigned long long)info->users,
             (unsigned long long)info->objects);
    /* Nothing kept from before: verdicts, cached keys, this login (its
     * uid names a user of the backup now). The other connections' logins
     * end at their next call (their user's version has moved). */
    hsm_gen_bump_locked(hsm);
    hsm_keycache_clear_locked(hsm);
    (void)hsm_login_check_locked(conn);
out:
    if (began)
        store_rollback(hsm->st);
    pthread_mutex_unlock(&hsm->lock);
    util_free_wipe(snap, snaplen);
    free(ids);
    return rv;
}
