/*
 * object.c - objects: create, copy, destroy, read, change, find, share.
 *
 * Token objects live in the store, their secret attribute values sealed
 * with AES-256-GCM under the master key, the associated data binding the
 * object id and the attribute type. Session objects live in the connection
 * and die with their session (private ones also at logout).
 *
 * Every change to a token object writes its audit record inside the
 * change's own transaction; session objects are not audited.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/crypto/cops.h"
#include "hsm/internal.h"
#include "nimbus/pkcs11-vendor.h"

#define SEAL_AD_PREFIX "nimbus-attr"
#define SEAL_AD_LEN (sizeof(SEAL_AD_PREFIX) - 1 + 16)

/* A sealed value of the largest size still fits a serialized list. */
_Static_assert(CRYPTO_SEAL_OVERHEAD <= ATTR_STORED_SLACK,
               "sealed attribute values exceed ATTR_STORED_MAX");

static void seal_ad(uint8_t ad[SEAL_AD_LEN], hsm_oid_t oid,
                    CK_ATTRIBUTE_TYPE type)
{
    size_t p = sizeof(SEAL_AD_PREFIX) - 1;
    uint64_t t = (uint64_t)type;

    memcpy(ad, SEAL_AD_PREFIX, p);
    for (int i = 0; i < 8; i++) {
        ad[p + i] = (uint8_t)(oid >> (56 - 8 * i));
        ad[p + 8 + i] = (uint8_t)(t >> (56 - 8 * i));
    }
}

static bool is_vendor_attr(CK_ATTRIBUTE_TYPE type)
{
    return type == CKA_NIMBUS_OWNER || type == CKA_NIMBUS_SHARED_USERS ||
           type == CKA_NIMBUS_OBJECT_ID;
}

/* ------------------------------------------------------------ loading */

attr_list_t *hsm_obj_attrs(struct hsm_obj *o)
{
    return o->sobj != NULL ? &o->sobj->attrs : &o->own;
}

void hsm_obj_clear(struct hsm_obj *o)
{
    attr_list_free(&o->own);
    memset(o, 0, sizeof(*o));
}

/* Serializes l with every secret value sealed for object oid. */
static CK_RV seal_serialize(hsm_t *hsm, hsm_oid_t oid, const attr_list_t *l,
                            uint8_t **out, size_t *outlen)
{
    attr_list_t tmp = {0};
    uint8_t ad[SEAL_AD_LEN];
    CK_RV rv;

    if ((rv = attr_list_dup(l, &tmp)) != CKR_OK)
        return rv;
    for (size_t i = 0; i < tmp.n; i++) {
        uint8_t *sealed = NULL;
        size_t sealedlen = 0;

        if (!attrs_is_secret(l, tmp.v[i].type))
            continue;
        seal_ad(ad, oid, tmp.v[i].type);
        rv = crypto_seal(hsm->mkey, ad, sizeof(ad), tmp.v[i].value,
                         tmp.v[i].len, &sealed, &sealedlen);
        if (rv != CKR_OK)
            goto out;
        crypto_secret_free_any(tmp.v[i].value, tmp.v[i].len);
        tmp.v[i].value = sealed;
        tmp.v[i].len = sealedlen;
    }
    rv = attr_list_serialize(&tmp, out, outlen);
out:
    attr_list_free(&tmp);
    return rv;
}

static CK_RV unseal_deserialize(hsm_t *hsm, hsm_oid_t oid, const uint8_t *in,
                                size_t inlen, attr_list_t *l)
{
    uint8_t ad[SEAL_AD_LEN];
    CK_RV rv = attr_list_deserialize(in, inlen, l);

    if (rv != CKR_OK)
        return rv;
    for (size_t i = 0; i < l->n; i++) {
        uint8_t *clear = NULL;
        size_t clearlen = 0;

        if (!attrs_is_secret(l, l->v[i].type))
            continue;
        seal_ad(ad, oid, l->v[i].type);
        rv = crypto_unseal(hsm->mkey, ad, sizeof(ad), l->v[i].value,
                           l->v[i].len, &clear, &clearlen);
        if (rv != CKR_OK) {
            log_error("object %llu: a sealed attribute does not open",
                      (unsigned long long)oid);
            attr_list_free(l);
            return CKR_DEVICE_ERROR;
        }
        free(l->v[i].value);
        l->v[i].value = clear; /* secret memory */
        l->v[i].len = clearlen;
    }
    return CKR_OK;
}

/*
 * Masked objects (section 11): an object's attribute list in the form it
 * travels in between the nodes of a cluster, in the log, in snapshots and
 * in extractMaskedObject files: the whole serialized list (secrets in
 * clear) sealed under the cluster masking key, with the cluster id, the
 * object id and the object's version bound as associated data, so that a
 * masked object opens only as the object and version it was made for.
 */
#define MASK_AD_PREFIX "nimbus-masked-object-v1"

CK_RV hsm_obj_mask(hsm_t *hsm, const uint8_t *ckey, hsm_oid_t oid,
                   uint64_t version, const uint8_t *blob, size_t len,
                   uint8_t **out, size_t *outlen)
{
    attr_list_t l = {0};
    uint8_t *plain = NULL, ad[HSM_CLUSTER_AD_MAX];
    size_t plainlen = 0, adlen = 0;
    CK_RV rv;

    if ((rv = unseal_deserialize(hsm, oid, blob, len, &l)) != CKR_OK)
        return rv;
    if ((rv = attr_list_serialize(&l, &plain, &plainlen)) == CKR_OK &&
        (rv = hsm_cluster_ad(MASK_AD_PREFIX, hsm_cluster_domain(hsm), oid, version,
                             ad, &adlen)) == CKR_OK)
        rv = crypto_seal(ckey, ad, adlen, plain, plainlen, out, outlen);
    attr_list_free(&l);
    util_free_wipe(plain, plainlen);
    return rv;
}

CK_RV hsm_obj_unmask(hsm_t *hsm, const uint8_t *ckey, hsm_oid_t oid,
                     uint64_t version, const uint8_t *masked, size_t len,
                     uint8_t **out, size_t *outlen)
{
    attr_list_t l = {0};
    uint8_t *plain = NULL, ad[HSM_CLUSTER_AD_MAX];
    size_t plainlen = 0, adlen = 0;
    CK_RV rv;

    if ((rv = hsm_cluster_ad(MASK_AD_PREFIX, hsm_cluster_domain(hsm), oid, version,
                             ad, &adlen)) != CKR_OK)
        return rv;
    rv = crypto_unseal(ckey, ad, adlen, masked, len, &plain, &plainlen);
    if (rv != CKR_OK)
        return CKR_ENCRYPTED_DATA_INVALID; /* not ours, or changed */
    if ((rv = attr_list_deserialize(plain, plainlen, &l)) == CKR_OK) {
        rv = seal_serialize(hsm, oid, &l, out, outlen);
        attr_list_free(&l);
    } else {
        rv = CKR_ENCRYPTED_DATA_INVALID;
    }
    crypto_secret_free(plain);
    return rv;
}

static struct hsm_sobj *sobj_find(hsm_conn_t *conn, hsm_oid_t oid)
{
    for (struct hsm_sobj *s = conn->sobjs; s != NULL; s = s->next) {
        if (s->id == oid)
            return s;
    }
    return NULL;
}

/* The policy's view of an object. */
static CK_RV obj_meta_locked(hsm_conn_t *conn, struct hsm_obj *o,
                             hsm_object_meta_t *m)
{
    attr_list_t *l = hsm_obj_attrs(o);
    CK_ULONG cls = attr_list_ulong(l, CKA_CLASS, CK_UNAVAILABLE_INFORMATION);
    bool shared = false;
    CK_RV rv;

    if (o->token && conn->type == HSM_USER_CU && o->owner != conn->uid) {
        rv = store_share_has(conn->hsm->st, o->id, conn->uid, &shared);
        if (rv != CKR_OK)
            return rv;
    }
    m->owner = o->owner;
    m->is_private = attr_list_bool(l, CKA_PRIVATE, true);
    m->is_public_item = cls == CKO_PUBLIC_KEY || cls == CKO_CERTIFICATE;
    m->is_data = cls == CKO_DATA;
    m->is_token = o->token;
    m->shared_with_user = shared;
    return CKR_OK;
}

/*
 * Finds object oid for this connection and checks that its user may have
 * this access. An object it may not see is CKR_OBJECT_HANDLE_INVALID.
 */
/* Loads token object oid from the store, no policy applied. */
static CK_RV token_load_locked(hsm_t *hsm, hsm_oid_t oid, struct hsm_obj *o)
{
    store_object_t so;
    bool found = false;
    CK_RV rv;

    memset(&so, 0, sizeof(so));
    rv = store_object_get(hsm->st, oid, &so, &found);
    if (rv != CKR_OK)
        return rv;
    if (!found)
        return CKR_OBJECT_HANDLE_INVALID;
    o->id = oid;
    o->token = true;
    o->owner = so.owner;
    rv = unseal_deserialize(hsm, oid, so.attrs, so.attrs_len, &o->own);
    store_object_clear(&so);
    return rv;
}

CK_RV hsm_obj_get_locked(hsm_conn_t *conn, hsm_oid_t oid, hsm_access_t access,
                         struct hsm_obj *o)
{
    hsm_policy_conf_t pc = hsm_policy_conf(conn->hsm);
    hsm_object_meta_t meta;
    CK_RV rv;

    memset(o, 0, sizeof(*o));
    o->id = oid;
    if (oid & HSM_SESSION_OID_BIT) {
        o->sobj = sobj_find(conn, oid);
        if (o->sobj == NULL)
            return CKR_OBJECT_HANDLE_INVALID;
        o->owner = o->sobj->owner;
    } else {
        rv = token_load_locked(conn->hsm, oid, o);
        if (rv != CKR_OK)
            return rv;
    }
    if ((rv = obj_meta_locked(conn, o, &meta)) != CKR_OK ||
        (rv = hsm_policy_object(&pc, conn->type, conn->uid, &meta, access)) !=
            CKR_OK) {
        hsm_obj_clear(o);
        return rv;
    }
    return CKR_OK;
}

CK_RV hsm_key_get_locked(hsm_conn_t *conn, hsm_oid_t oid, hsm_access_t access,
                         struct hsm_obj *o)
{
    CK_RV rv = hsm_obj_get_locked(conn, oid, access, o);

    if (rv == CKR_OBJECT_HANDLE_INVALID)
        return CKR_KEY_HANDLE_INVALID;
    if (rv == CKR_ACTION_PROHIBITED)
        return CKR_KEY_FUNCTION_NOT_PERMITTED;
    return rv;
}

/* The indexed columns of a token object. */
static void fill_columns(const attr_list_t *l, store_object_t *so)
{
    const attr_t *a;
    CK_ULONG cls = attr_list_ulong(l, CKA_CLASS, CK_UNAVAILABLE_INFORMATION);

    so->cls = cls;
    so->key_type = CK_UNAVAILABLE_INFORMATION;
    if (cls == CKO_PUBLIC_KEY || cls == CKO_PRIVATE_KEY ||
        cls == CKO_SECRET_KEY)
        so->key_type =
            attr_list_ulong(l, CKA_KEY_TYPE, CK_UNAVAILABLE_INFORMATION);
    so->is_private = attr_list_bool(l, CKA_PRIVATE, true);
    a = attr_list_find(l, CKA_LABEL);
    so->label = a != NULL ? a->value : NULL;
    so->label_len = a != NULL ? a->len : 0;
    a = attr_list_find(l, CKA_ID);
    so->ckid = a != NULL ? a->value : NULL;
    so->ckid_len = a != NULL ? a->len : 0;
}

static CK_RV set_unique_id(attr_list_t *l, hsm_oid_t oid)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)oid);

    return attr_list_set(l, CKA_UNIQUE_ID, buf, (size_t)n);
}

/* The audit name of a new object: a key made by C_CreateObject is an
 * import; everything else keeps the caller's event. */
static const char *add_event(const attr_list_t *l, const char *event)
{
    CK_ULONG cls = attr_list_ulong(l, CKA_CLASS, CK_UNAVAILABLE_INFORMATION);

    if (strcmp(event, "create") == 0 &&
        (cls == CKO_SECRET_KEY || cls == CKO_PRIVATE_KEY ||
         cls == CKO_PUBLIC_KEY))
        return "import";
    return event;
}

/* Writes a new token object; takes ownership of nothing. */
static CK_RV token_insert_locked(hsm_conn_t *conn, attr_list_t *l,
                                 const char *event, hsm_oid_t *oid)
{
    hsm_t *hsm = conn->hsm;
    store_object_t so;
    uint8_t *blob = NULL;
    size_t bloblen = 0;
    uint64_t id = 0, ver = 0;
    bool found = false;
    CK_RV rv;

    struct hsm_login_snap before;

    memset(&so, 0, sizeof(so));
    /* Its id first: in a cluster this may wait for the log with the lock
     * let go, and the caller's login must be the one it checked. */
    hsm_login_snap(conn, &before);
    if ((rv = hsm_reserve_unlocked(hsm)) != CKR_OK)
        return rv;
    if (!hsm_login_same(conn, &before))
        return CKR_USER_NOT_LOGGED_IN;
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        return rv;
    /* The owner's record, again inside the write transaction: a user
     * deleted or a token re-initialized by another process since the
     * call's policy check gets nothing stored. */
    if ((rv = store_user_version(hsm->st, conn->uid, &ver, &found)) != CKR_OK)
        goto fail;
    if (!found || ver != conn->uver) {
        store_rollback(hsm->st);
        rv = hsm_login_check_locked(conn); /* drops the login */
        return rv != CKR_OK ? rv : CKR_USER_NOT_LOGGED_IN;
    }
    so.owner = conn->uid;
    fill_columns(l, &so);
    /* Its owner a crypto user still when the entry applies (a deletion
     * through another node may come first): no key owned by nobody. */
    if ((rv = store_require(hsm->st, STORE_REQUIRE_USER_TYPE, conn->uid,
                            HSM_USER_CU, CKR_USER_NOT_LOGGED_IN)) != CKR_OK ||
        (rv = store_object_insert(hsm->st, &so, &id)) != CKR_OK ||
        (rv = set_unique_id(l, id)) != CKR_OK ||
        (rv = seal_serialize(hsm, id, l, &blob, &bloblen)) != CKR_OK)
        goto fail;
    fill_columns(l, &so);
    so.id = id;
    so.attrs = blob;
    so.attrs_len = bloblen;
    if ((rv = store_object_update(hsm->st, &so)) != CKR_OK ||
        (rv = hsm_audit_tx_locked(hsm, conn->uid, add_event(l, event), id,
                                  CKR_OK)) != CKR_OK ||
        (rv = store_bump_generation(hsm->st)) != CKR_OK)
        goto fail;
    /* Nothing of the lock's is held across the commit (its callers hold
     * no session pointer past it either; keygen_store looks it up again). */
    if ((rv = hsm_cluster_commit_unlocked(hsm)) != CKR_OK)
        goto out;
    *oid = id;
    goto out;
fail:
    store_rollback(hsm->st);
out:
    free(blob);
    return rv;
}

static CK_RV token_update_locked(hsm_conn_t *conn, struct hsm_obj *o,
                                 const attr_list_t *l)
{
    hsm_t *hsm = conn->hsm;
    store_object_t so;
    uint8_t *blob = NULL;
    size_t bloblen = 0;
    CK_RV rv;

    memset(&so, 0, sizeof(so));
    if ((rv = seal_serialize(hsm, o->id, l, &blob, &bloblen)) != CKR_OK)
        return rv;
    so.id = o->id;
    so.owner = o->owner;
    fill_columns(l, &so);
    so.attrs = blob;
    so.attrs_len = bloblen;
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    if ((rv = store_object_update(hsm->st, &so)) != CKR_OK ||
        (rv = hsm_audit_tx_locked(hsm, conn->uid, "set_attribute", o->id,
                                  CKR_OK)) != CKR_OK ||
        (rv = store_bump_generation(hsm->st)) != CKR_OK) {
        store_rollback(hsm->st);
        goto out;
    }
    /* The callers use only their own copies after (o, l). The apply
     * refuses an update made against another version of the object. */
    rv = hsm_cluster_commit_unlocked(hsm);
out:
    free(blob);
    return rv;
}

/* A session object keeps its secret values in clear for its whole life:
 * they move to secret memory (crypto.h). */
static CK_RV protect_secrets(attr_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        uint8_t *p;

        if (l->v[i].len == 0 || !attrs_is_secret(l, l->v[i].type) ||
            crypto_secret_owns(l->v[i].value))
            continue;
        p = crypto_secret_dup(l->v[i].value, l->v[i].len);
        if (p == NULL)
            return CKR_HOST_MEMORY;
        util_free_wipe(l->v[i].value, l->v[i].len);
        l->v[i].value = p;
    }
    return CKR_OK;
}

/* Adds a new object made from l (moved into it on success). */
CK_RV hsm_obj_add_locked(hsm_conn_t *conn, struct hsm_session *s,
                         attr_list_t *l, const char *event, hsm_oid_t *oid)
{
    struct hsm_sobj *so;
    CK_RV rv;

    if (attr_list_bool(l, CKA_TOKEN, false)) {
        if (!s->rw)
            return CKR_SESSION_READ_ONLY;
        rv = token_insert_locked(conn, l, event, oid);
        if (rv == CKR_OK)
            attr_list_free(l);
        return rv;
    }
    so = calloc(1, sizeof(*so));
    if (so == NULL)
        return CKR_HOST_MEMORY;
    so->id = HSM_SESSION_OID_BIT | conn->next_soid++;
    if ((rv = set_unique_id(l, so->id)) != CKR_OK) {
        free(so);
        return rv;
    }
    if ((rv = protect_secrets(l)) != CKR_OK) {
        free(so);
        return rv;
    }
    so->sid = s->id;
    so->owner = conn->uid;
    so->attrs = *l;
    memset(l, 0, sizeof(*l));
    so->next = conn->sobjs;
    conn->sobjs = so;
    *oid = so->id;
    return CKR_OK;
}

void hsm_sobjs_destroy_locked(hsm_conn_t *conn, hsm_sid_t sid,
                              bool private_only)
{
    struct hsm_sobj **pp = &conn->sobjs;

    hsm_gen_bump_locked(conn->hsm);
    while (*pp != NULL) {
        struct hsm_sobj *s = *pp;
        bool match = sid == 0 || s->sid == sid;

        if (private_only && !attr_list_bool(&s->attrs, CKA_PRIVATE, true))
            match = false;
        if (!match) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        if (s->keyed)
            hsm_keycache_drop_locked(conn->hsm, conn, s->id);
        attr_list_free(&s->attrs);
        free(s);
    }
}

/* Common start of every object call: the lock, the session, the policy. */
CK_RV hsm_begin_locked(hsm_conn_t *conn, hsm_sid_t sid, hsm_op_t op,
                       struct hsm_session **s)
{
    *s = hsm_session_find_locked(conn, sid);
    if (*s == NULL)
        return CKR_SESSION_HANDLE_INVALID;
    return hsm_role_locked(conn, op);
}

/* ------------------------------------------------------------ calls */

/* A curve key on a curve the crypto does not offer is refused when it is
 * made, not at its first use. */
static CK_RV curve_supported(const attr_list_t *l)
{
    CK_OBJECT_CLASS cls = attr_list_ulong(l, CKA_CLASS, CKO_DATA);
    CK_KEY_TYPE kt = attr_list_ulong(l, CKA_KEY_TYPE, CKK_RSA);
    const attr_t *a = attr_list_find(l, CKA_EC_PARAMS);
    CK_ULONG bits;

    if ((cls != CKO_PUBLIC_KEY && cls != CKO_PRIVATE_KEY) ||
        (kt != CKK_EC && kt != CKK_EC_EDWARDS && kt != CKK_EC_MONTGOMERY) ||
        a == NULL) {
        return CKR_OK;
    }
    return cops_curve_check(kt, a->value, a->len, &bits);
}

CK_RV hsm_object_create(hsm_conn_t *conn, hsm_sid_t sid,
                        const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                        hsm_oid_t *oid)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_session *s;
    attr_list_t l = {0};
    CK_RV rv;

    /* The session and the policy first (their codes come before the
     * template's), the template without the lock, then the store. */
    pthread_mutex_lock(&conn->hsm->lock);
    rv = hsm_begin_locked(conn, sid, HSM_OP_KEY_MANAGEMENT, &s);
    pthread_mutex_unlock(&conn->hsm->lock);
    if (rv != CKR_OK)
        return rv;
    if ((rv = attrs_new_object(ATTR_OP_CREATE, hsm_cu_caller(conn->hsm),
                               CK_UNAVAILABLE_INFORMATION,
                               CK_UNAVAILABLE_INFORMATION, tmpl, count, &l)) !=
            CKR_OK ||
        (rv = curve_supported(&l)) != CKR_OK)
        goto out;
    pthread_mutex_lock(&conn->hsm->lock);
    if ((rv = hsm_begin_locked(conn, sid, HSM_OP_KEY_MANAGEMENT, &s)) == CKR_OK)
        rv = hsm_obj_add_locked(conn, s, &l, "create", oid);
    pthread_mutex_unlock(&conn->hsm->lock);
out:
    attr_list_free(&l);
    return rv;
}

CK_RV hsm_object_copy(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                      const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                      hsm_oid_t *new_oid)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_session *s;
    struct hsm_obj o;
    attr_list_t l = {0};
    CK_RV rv;

    memset(&o, 0, sizeof(o));
    pthread_mutex_lock(&conn->hsm->lock);
    if ((rv = hsm_begin_locked(conn, sid, HSM_OP_KEY_MANAGEMENT, &s)) !=
            CKR_OK ||
        (rv = hsm_obj_get_locked(conn, oid, HSM_ACCESS_OWN, &o)) != CKR_OK ||
        (rv = attrs_copy(hsm_cu_caller(conn->hsm), hsm_obj_attrs(&o), tmpl,
                         count, &l)) != CKR_OK)
        goto out;
    rv = hsm_obj_add_locked(conn, s, &l, "copy", new_oid);
out:
    pthread_mutex_unlock(&conn->hsm->lock);
    hsm_obj_clear(&o);
    attr_list_free(&l);
    return rv;
}

CK_RV hsm_object_destroy(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_session *s;
    struct hsm_obj o;
    CK_RV rv;

    memset(&o, 0, sizeof(o));
    pthread_mutex_lock(&conn->hsm->lock);
    if ((rv = hsm_reserve_unlocked(conn->hsm)) != CKR_OK ||
        (rv = hsm_begin_locked(conn, sid, HSM_OP_KEY_MANAGEMENT, &s)) !=
            CKR_OK ||
        (rv = hsm_obj_get_locked(conn, oid, HSM_ACCESS_OWN, &o)) != CKR_OK)
        goto out;
    if (!attr_list_bool(hsm_obj_attrs(&o), CKA_DESTROYABLE, true)) {
        rv = CKR_ACTION_PROHIBITED;
        goto out;
    }
    if (o.token) {
        hsm_t *hsm = conn->hsm;

        if (!s->rw) {
            rv = CKR_SESSION_READ_ONLY;
            goto out;
        }
        if ((rv = store_begin(hsm->st, true)) != CKR_OK)
            goto out;
        if ((rv = store_object_delete(hsm->st, oid)) != CKR_OK ||
            (rv = hsm_audit_tx_locked(hsm, conn->uid, "destroy", oid,
                                      CKR_OK)) != CKR_OK ||
            (rv = store_bump_generation(hsm->st)) != CKR_OK) {
            store_rollback(hsm->st);
            goto out;
        }
        /* After it only the key cache, by object id (s is not used). */
        rv = hsm_cluster_commit_unlocked(hsm);
        if (rv == CKR_OK)
            hsm_keycache_drop_locked(hsm, conn, oid);
    } else {
        /* A session object never used as a key is in no cache, operation
         * or verdict: nothing to drop, no verdict of any session to void. */
        if (o.sobj->keyed)
            hsm_keycache_drop_locked(conn->hsm, conn, oid);
        for (struct hsm_sobj **pp = &conn->sobjs; *pp != NULL;
             pp = &(*pp)->next) {
            if (*pp == o.sobj) {
                *pp = o.sobj->next;
                attr_list_free(&o.sobj->attrs);
                free(o.sobj);
                o.sobj = NULL;
                break;
            }
        }
    }
out:
    pthread_mutex_unlock(&conn->hsm->lock);
    hsm_obj_clear(&o);
    return rv;
}

/* Reads one of our vendor attributes. */
static CK_RV vendor_attr_locked(hsm_conn_t *conn, struct hsm_obj *o,
                                hsm_attr_t *out)
{
    CK_ULONG v;
    uint32_t *uids = NULL;
    size_t n = 0;
    CK_RV rv;

    out->status = HSM_ATTR_OK;
    switch (out->type) {
    case CKA_NIMBUS_OWNER:
        v = o->owner;
        break;
    case CKA_NIMBUS_OBJECT_ID:
        /* 8 bytes, big-endian: the same on every platform */
        out->value = malloc(8);
        if (out->value == NULL)
            return CKR_HOST_MEMORY;
        for (int i = 0; i < 8; i++)
            out->value[i] = (uint8_t)(o->id >> (56 - 8 * i));
        out->len = 8;
        return CKR_OK;
    case CKA_NIMBUS_SHARED_USERS:
        if (o->token &&
            (rv = store_share_list(conn->hsm->st, o->id, &uids, &n)) != CKR_OK)
            return rv;
        if (n > 0) {
            CK_ULONG *arr = calloc(n, sizeof(CK_ULONG));

            if (arr == NULL) {
                free(uids);
                return CKR_HOST_MEMORY;
            }
            for (size_t i = 0; i < n; i++)
                arr[i] = uids[i];
            out->value = (uint8_t *)arr;
            out->len = n * sizeof(CK_ULONG);
        }
        free(uids);
        return CKR_OK;
    default:
        out->status = HSM_ATTR_INVALID;
        return CKR_OK;
    }
    out->value = malloc(sizeof(v));
    if (out->value == NULL)
        return CKR_HOST_MEMORY;
    memcpy(out->value, &v, sizeof(v));
    out->len = sizeof(v);
    return CKR_OK;
}

CK_RV hsm_object_get(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                     const CK_ATTRIBUTE_TYPE *types, size_t n, hsm_attr_t *out)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_session *s;
    struct hsm_obj o;
    CK_RV rv;

    memset(&o, 0, sizeof(o));
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        out[i].type = types[i];
        out[i].status = HSM_ATTR_INVALID;
    }
    pthread_mutex_lock(&conn->hsm->lock);
    rv = hsm_begin_locked(conn, sid, HSM_OP_OBJECT_READ, &s);
    if (rv != CKR_OK && rv != CKR_SESSION_HANDLE_INVALID)
        rv = CKR_OBJECT_HANDLE_INVALID;
    if (rv != CKR_OK ||
        (rv = hsm_obj_get_locked(conn, oid, HSM_ACCESS_SEE, &o)) != CKR_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *v = NULL;
        size_t len = 0;

        if (is_vendor_attr(types[i])) {
            if ((rv = vendor_attr_locked(conn, &o, &out[i])) != CKR_OK)
                goto out;
            continue;
        }
        out[i].status = attrs_read(hsm_obj_attrs(&o), types[i], &v, &len);
        if (out[i].status != HSM_ATTR_OK || len == 0)
            continue;
        out[i].value = malloc(len);
        if (out[i].value == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        memcpy(out[i].value, v, len);
        out[i].len = len;
    }
out:
    pthread_mutex_unlock(&conn->hsm->lock);
    hsm_obj_clear(&o);
    if (rv != CKR_OK)
        hsm_attrs_free(out, n);
    return rv;
}

void hsm_attrs_free(hsm_attr_t *attrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        crypto_secret_free_any(attrs[i].value, attrs[i].len);
        attrs[i].value = NULL;
        attrs[i].len = 0;
    }
}

CK_RV hsm_object_set(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                     const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_session *s;
    struct hsm_obj o;
    attr_list_t l = {0};
    CK_RV rv;

    memset(&o, 0, sizeof(o));
    pthread_mutex_lock(&conn->hsm->lock);
    if ((rv = hsm_reserve_unlocked(conn->hsm)) != CKR_OK ||
        (rv = hsm_begin_locked(conn, sid, HSM_OP_KEY_MANAGEMENT, &s)) !=
            CKR_OK ||
        (rv = hsm_obj_get_locked(conn, oid, HSM_ACCESS_OWN, &o)) != CKR_OK)
        goto out;
    if (o.token && !s->rw) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    if ((rv = attrs_set(hsm_cu_caller(conn->hsm), hsm_obj_attrs(&o), tmpl,
                        count, &l)) != CKR_OK)
        goto out;
    if (o.token) {
        rv = token_update_locked(conn, &o, &l);
    } else {
        attr_list_free(&o.sobj->attrs);
        o.sobj->attrs = l;
        memset(&l, 0, sizeof(l));
    }
    /* A usage flag may have changed: no kept verdict may outlive it. */
    if (rv == CKR_OK)
        hsm_gen_bump_locked(conn->hsm);
out:
    pthread_mutex_unlock(&conn->hsm->lock);
    hsm_obj_clear(&o);
    attr_list_free(&l);
    return rv;
}

CK_RV hsm_object_size(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                      CK_ULONG *size)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_session *s;
    struct hsm_obj o;
    uint8_t *blob = NULL;
    size_t len = 0;
    CK_RV rv;

    memset(&o, 0, sizeof(o));
    pthread_mutex_lock(&conn->hsm->lock);
    rv = hsm_begin_locked(conn, sid, HSM_OP_OBJECT_READ, &s);
    if (rv != CKR_OK && rv != CKR_SESSION_HANDLE_INVALID)
        rv = CKR_OBJECT_HANDLE_INVALID;
    if (rv != CKR_OK ||
        (rv = hsm_obj_get_locked(conn, oid, HSM_ACCESS_SEE, &o)) != CKR_OK ||
        (rv = attr_list_serialize(hsm_obj_attrs(&o), &blob, &len)) != CKR_OK)
        goto out;
    *size = (CK_ULONG)len;
out:
    pthread_mutex_unlock(&conn->hsm->lock);
    util_free_wipe(blob, len);
    hsm_obj_clear(&o);
    return rv;
}

CK_RV hsm_object_is_private(hsm_conn_t *conn, hsm_oid_t oid, bool *priv)
{
    HSM_CALL_CONN(conn);
    struct hsm_obj o;
    CK_RV rv;

    pthread_mutex_lock(&conn->hsm->lock);
    rv = hsm_obj_get_locked(conn, oid, HSM_ACCESS_SEE, &o);
    if (rv == CKR_OK)
        *priv = attr_list_bool(hsm_obj_attrs(&o), CKA_PRIVATE, true);
    pthread_mutex_unlock(&conn->hsm->lock);
    hsm_obj_clear(&o);
    return rv;
}

/* ------------------------------------------------------------ find */

/* What a find template asks of the indexed columns. */
struct find_plan {
    store_query_t q;
    int token; /* -1 any, 0 session only, 1 token only */
    bool impossible;
    bool has_owner;
    CK_ULONG owner;
    bool has_oid; /* CKA_NIMBUS_OBJECT_ID */
    hsm_oid_t oid;
    bool needs_load; /* attributes beyond the indexed ones */
    CK_ATTRIBUTE *rest;
    CK_ULONG nrest;
};

static bool tmpl_ulong(const CK_ATTRIBUTE *a, CK_ULONG *v)
{
    if (a->ulValueLen != sizeof(CK_ULONG) || a->pValue == NULL)
        return false;
    memcpy(v, a->pValue, sizeof(*v));
    return true;
}

static bool tmpl_bool(const CK_ATTRIBUTE *a, bool *v)
{
    if (a->ulValueLen != sizeof(CK_BBOOL) || a->pValue == NULL)
        return false;
    *v = *(const CK_BBOOL *)a->pValue != CK_FALSE;
    return true;
}

static CK_RV plan_find(hsm_conn_t *conn, const CK_ATTRIBUTE *tmpl,
                       CK_ULONG count, struct find_plan *p)
{
    memset(p, 0, sizeof(*p));
    p->token = -1;
    p->q.for_user = conn->uid;
    p->rest = calloc(count > 0 ? count : 1, sizeof(CK_ATTRIBUTE));
    if (p->rest == NULL)
        return CKR_HOST_MEMORY;
    for (CK_ULONG i = 0; i < count; i++) {
        const CK_ATTRIBUTE *a = &tmpl[i];
        bool b;

        switch (a->type) {
        case CKA_CLASS:
            if (!tmpl_ulong(a, &p->q.cls))
                p->impossible = true;
            p->q.has_cls = true;
            break;
        case CKA_KEY_TYPE:
            if (!tmpl_ulong(a, &p->q.key_type))
                p->impossible = true;
            p->q.has_key_type = true;
            break;
        case CKA_LABEL:
            p->q.has_label = true;
            p->q.label = a->pValue;
            p->q.label_len = a->ulValueLen;
            break;
        case CKA_ID:
            p->q.has_ckid = true;
            p->q.ckid = a->pValue;
            p->q.ckid_len = a->ulValueLen;
            break;
        case CKA_PRIVATE:
            if (!tmpl_bool(a, &p->q.is_private))
                p->impossible = true;
            p->q.has_private = true;
            break;
        case CKA_TOKEN:
            if (!tmpl_bool(a, &b))
                p->impossible = true;
            else if (p->token >= 0 && p->token != (int)b)
                p->impossible = true;
            else
                p->token = b;
            break;
        case CKA_NIMBUS_OWNER:
            if (!tmpl_ulong(a, &p->owner))
                p->impossible = true;
            p->has_owner = true;
            break;
        case CKA_NIMBUS_OBJECT_ID: /* 8 bytes, big-endian */
            if (a->ulValueLen != 8 || a->pValue == NULL) {
                p->impossible = true;
                break;
            }
            p->has_oid = true;
            p->oid = 0;
            for (int k = 0; k < 8; k++)
                p->oid = (p->oid << 8) | ((const uint8_t *)a->pValue)[k];
            break;
        default:
            if (is_vendor_attr(a->type)) {
                p->impossible = true;
                break;
            }
            p->rest[p->nrest++] = *a;
            p->needs_load = true;
            break;
        }
    }
    return CKR_OK;
}

static int cmp_oid(const void *a, const void *b)
{
    hsm_oid_t x = *(const hsm_oid_t *)a, y = *(const hsm_oid_t *)b;

    return x < y ? -1 : x > y;
}

/* Does a loaded object match the whole template? */
static bool sobj_matches(const struct find_plan *p, struct hsm_sobj *s,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    if (p->has_owner && p->owner != s->owner)
        return false;
    if (p->has_oid && p->oid != s->id)
        return false;
    /* attrs_match sees the template less our vendor attributes */
    for (CK_ULONG i = 0; i < count; i++) {
        if (is_vendor_attr(tmpl[i].type))
            continue;
        if (!attrs_match(&s->attrs, &tmpl[i], 1))
            return false;
    }
    return true;
}

/* Appends to out (room for every hit) the token objects among hits that
 * user (type, uid) may see and that match the plan; with p->needs_load each
 * hit is loaded to match the attributes the store does not index (the
 * caller then holds hsm->lock). */
static void token_hits_filter(hsm_conn_t *conn, hsm_user_type_t type,
                              hsm_uid_t uid, const struct find_plan *p,
                              const store_hit_t *hits, size_t nhits,
                              hsm_oid_t *out, size_t *nout)
{
    hsm_policy_conf_t pc = hsm_policy_conf(conn->hsm);

    for (size_t i = 0; i < nhits; i++) {
        hsm_object_meta_t meta = {
            .owner = hits[i].owner,
            .is_private = hits[i].is_private,
            .is_public_item =
                hits[i].cls == CKO_PUBLIC_KEY || hits[i].cls == CKO_CERTIFICATE,
            .is_data = hits[i].cls == CKO_DATA,
            .is_token = true,
            .shared_with_user = hits[i].shared_with_user,
        };

        if (hsm_policy_object(&pc, type, uid, &meta, HSM_ACCESS_SEE) != CKR_OK)
            continue;
        if (p->has_owner && p->owner != hits[i].owner)
            continue;
        if (p->has_oid && p->oid != hits[i].id)
            continue;
        if (p->needs_load) {
            struct hsm_obj o;
            bool match;

            if (hsm_obj_get_locked(conn, hits[i].id, HSM_ACCESS_SEE, &o) !=
                CKR_OK)
                continue;
            match = attrs_match(&o.own, p->rest, p->nrest);
            hsm_obj_clear(&o);
            if (!match)
                continue;
        }
        out[(*nout)++] = hits[i].id;
    }
}

/*
 * Locking: the session, the policy, the plan and the session objects are
 * taken under hsm->lock. A search on the indexed columns alone then reads
 * the store through a reader connection with hsm->lock released, so that
 * searches of several sessions run in parallel; its hits are filtered with
 * the user as it was at the start. A search that must load objects (other
 * attributes) stays under hsm->lock.
 */
CK_RV hsm_object_find(hsm_conn_t *conn, hsm_sid_t sid, const CK_ATTRIBUTE *tmpl,
                      CK_ULONG count, hsm_oid_t **oids, size_t *n)
{
    HSM_CALL_SESSION(conn, sid);
    hsm_t *hsm = conn->hsm;
    struct hsm_session *s;
    struct hsm_reader *r = NULL;
    struct find_plan p;
    store_hit_t *hits = NULL;
    size_t nhits = 0, nout = 0, cap = 0;
    hsm_policy_conf_t pc = hsm_policy_conf(hsm);
    hsm_oid_t *out = NULL, *grown;
    hsm_user_type_t type;
    hsm_uid_t uid;
    bool locked = true;
    CK_RV rv;

    memset(&p, 0, sizeof(p));
    *oids = NULL;
    *n = 0;
    pthread_mutex_lock(&hsm->lock);
    rv = hsm_begin_locked(conn, sid, HSM_OP_OBJECT_READ, &s);
    if (rv == CKR_USER_NOT_LOGGED_IN) {
        rv = CKR_OK; /* sees nothing: an empty result */
        goto out;
    }
    if (rv != CKR_OK || (rv = plan_find(conn, tmpl, count, &p)) != CKR_OK)
        goto out;
    if (p.impossible)
        goto out;
    type = conn->type;
    uid = conn->uid;

    for (struct hsm_sobj *so = conn->sobjs; p.token != 1 && so != NULL;
         so = so->next)
        cap++;
    out = calloc(cap > 0 ? cap : 1, sizeof(*out));
    if (out == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    for (struct hsm_sobj *so = conn->sobjs; p.token != 1 && so != NULL;
         so = so->next) {
        hsm_object_meta_t meta = {
            .owner = so->owner,
            .is_private = attr_list_bool(&so->attrs, CKA_PRIVATE, true),
        };
        CK_ULONG cls =
            attr_list_ulong(&so->attrs, CKA_CLASS, CK_UNAVAILABLE_INFORMATION);

        meta.is_public_item = cls == CKO_PUBLIC_KEY || cls == CKO_CERTIFICATE;
        meta.is_data = cls == CKO_DATA;
        if (hsm_policy_object(&pc, type, uid, &meta, HSM_ACCESS_SEE) != CKR_OK)
            continue;
        if (sobj_matches(&p, so, tmpl, count))
            out[nout++] = so->id;
    }
    if (p.token == 0)
        goto done;

    if (!p.needs_load && (r = hsm_reader_get(hsm)) != NULL) {
        pthread_mutex_unlock(&hsm->lock);
        locked = false;
        rv = store_object_find(r->st, &p.q, &hits, &nhits);
        hsm_reader_put(r);
    } else {
        rv = store_object_find(hsm->st, &p.q, &hits, &nhits);
    }
    if (rv != CKR_OK)
        goto out;
    if (nhits > 0) {
        grown = realloc(out, (cap + nhits) * sizeof(*out));
        if (grown == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        out = grown;
    }
    token_hits_filter(conn, type, uid, &p, hits, nhits, out, &nout);
done:
    qsort(out, nout, sizeof(*out), cmp_oid);
    *oids = out;
    *n = nout;
    out = NULL;
out:
    if (locked)
        pthread_mutex_unlock(&hsm->lock);
    free(out);
    free(hits);
    free(p.rest);
    return rv;
}

CK_RV hsm_object_share(hsm_conn_t *conn, hsm_oid_t oid, hsm_uid_t uid,
                       bool share)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    struct hsm_obj o;
    store_user_t u;
    bool found = false;
    CK_ULONG cls;
    CK_RV rv;

    memset(&o, 0, sizeof(o));
    memset(&u, 0, sizeof(u));
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_reserve_unlocked(hsm)) != CKR_OK)
        goto out;
    hsm_gen_bump_locked(hsm);
    if ((rv = hsm_role_locked(conn, HSM_OP_KEY_MANAGEMENT)) != CKR_OK ||
        (rv = hsm_obj_get_locked(conn, oid, HSM_ACCESS_OWN, &o)) != CKR_OK)
        goto out;
    cls = attr_list_ulong(hsm_obj_attrs(&o), CKA_CLASS,
                          CK_UNAVAILABLE_INFORMATION);
    if (!o.token || cls == CKO_PUBLIC_KEY || cls == CKO_CERTIFICATE) {
        rv = CKR_ACTION_PROHIBITED; /* only token secrets are shared */
        goto out;
    }
    if ((rv = store_user_by_id(hsm->st, uid, &u, &found)) != CKR_OK)
        goto out;
    if (!found || u.type != HSM_USER_CU || uid == o.owner) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if ((rv = store_begin(hsm->st, true)) != CKR_OK)
        goto out;
    /* A share is with a crypto user still when the entry applies. */
    if ((share &&
         (rv = store_require(hsm->st, STORE_REQUIRE_USER_TYPE, uid, HSM_USER_CU,
                             CKR_ARGUMENTS_BAD)) != CKR_OK) ||
        (rv = store_share_set(hsm->st, oid, uid, share)) != CKR_OK ||
        (rv = hsm_audit_tx_locked(hsm, conn->uid, share ? "share" : "unshare",
                                  oid, CKR_OK)) != CKR_OK ||
        (rv = store_bump_generation(hsm->st)) != CKR_OK) {
        store_rollback(hsm->st);
        goto out;
    }
    rv = hsm_cluster_commit_unlocked(hsm);
out:
    pthread_mutex_unlock(&hsm->lock);
    hsm_obj_clear(&o);
    store_user_clear(&u);
    return rv;
}

/* ------------------------------------------------------------ management */

static int cmp_key_ref(const void *a, const void *b)
{
    const hsm_key_ref_t *x = a, *y = b;

    return x->oid < y->oid ? -1 : x->oid > y->oid;
}

static void digest_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/*
 * The sync-status digest of a key set: SHA-256 over, for each key by
 * ascending id, u64 id, u8 'o' or 's', u64 owner, u64 number of shared
 * users and u64 each (big-endian). It covers what the key set is (which
 * keys, whose, shared with whom) and no attribute value: a digest of a
 * low-entropy value could be searched for.
 */
static CK_RV key_set_digest_locked(hsm_t *hsm, const hsm_key_ref_t *keys,
                                   size_t n, uint8_t digest[HSM_DIGEST_LEN])
{
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    CK_RV rv = CKR_OK;

    for (size_t i = 0; i < n; i++) {
        store_object_t so;
        uint32_t *uids = NULL;
        size_t nu = 0, need;
        bool found = false;

        memset(&so, 0, sizeof(so));
        if ((rv = store_object_get(hsm->st, keys[i].oid, &so, &found)) !=
                CKR_OK ||
            (rv = store_share_list(hsm->st, keys[i].oid, &uids, &nu)) !=
                CKR_OK) {
            store_object_clear(&so);
            goto out;
        }
        need = 8 + 1 + 8 + 8 + 8 * nu;
        if (len + need > cap) {
            size_t ncap = (len + need) * 2;
            uint8_t *nb = realloc(buf, ncap);

            if (nb == NULL) {
                free(uids);
                store_object_clear(&so);
                rv = CKR_HOST_MEMORY;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        digest_u64(buf + len, keys[i].oid);
        buf[len + 8] = keys[i].owned ? 'o' : 's';
        digest_u64(buf + len + 9, so.owner);
        digest_u64(buf + len + 17, nu);
        for (size_t k = 0; k < nu; k++)
            digest_u64(buf + len + 25 + 8 * k, uids[k]);
        len += need;
        free(uids);
        store_object_clear(&so);
    }
    rv = crypto_sha256(buf != NULL ? buf : (const uint8_t *)"", len, digest);
out:
    free(buf);
    return rv;
}

CK_RV hsm_key_list(hsm_conn_t *conn, hsm_uid_t uid, hsm_key_ref_t **keys,
                   size_t *n, uint8_t digest[HSM_DIGEST_LEN])
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    uint64_t *own = NULL, *shared = NULL;
    size_t nown = 0, nshared = 0, count = 0;
    hsm_key_ref_t *out = NULL;
    CK_RV rv;

    *keys = NULL;
    *n = 0;
    memset(digest, 0, HSM_DIGEST_LEN);
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_login_check_locked(conn)) != CKR_OK ||
        (rv = hsm_policy_key_listing(conn->type, conn->uid, uid)) != CKR_OK)
        goto out;
    /* One read transaction: both lists and the digest from one snapshot. */
    if ((rv = store_begin(hsm->st, false)) != CKR_OK)
        goto out;
    if ((rv = store_object_list_owner(hsm->st, uid, &own, &nown)) != CKR_OK ||
        (rv = store_share_list_user(hsm->st, uid, &shared, &nshared)) != CKR_OK)
        goto end;
    if (nown > SIZE_MAX / sizeof(*out) - nshared - 1) {
        rv = CKR_HOST_MEMORY;
        goto end;
    }
    out = calloc(nown + nshared + 1, sizeof(*out));
    if (out == NULL) {
        rv = CKR_HOST_MEMORY;
        goto end;
    }
    for (size_t i = 0; i < nown; i++) {
        out[count].oid = own[i];
        out[count++].owned = true;
    }
    for (size_t i = 0; i < nshared; i++) {
        out[count].oid = shared[i];
        out[count++].owned = false;
    }
    qsort(out, count, sizeof(*out), cmp_key_ref);
    rv = key_set_digest_locked(hsm, out, count, digest);
end:
    store_rollback(hsm->st);
    if (rv == CKR_OK && count > 0) {
        *keys = out;
        *n = count;
        out = NULL;
    }
out:
    pthread_mutex_unlock(&hsm->lock);
    free(out);
    free(own);
    free(shared);
    return rv;
}

CK_RV hsm_token_object_locked(hsm_conn_t *conn, hsm_oid_t oid,
                              store_object_t *so)
{
    bool found = false;
    CK_RV rv;

    if (oid & HSM_SESSION_OID_BIT)
        return CKR_OBJECT_HANDLE_INVALID; /* session objects stay here */
    if ((rv = store_object_get(conn->hsm->st, oid, so, &found)) != CKR_OK)
        return rv;
    if (!found)
        return CKR_OBJECT_HANDLE_INVALID;
    if (conn->type == HSM_USER_CU) {
        struct hsm_obj o;

        /* a CU learns about what it may see, nothing else */
        if ((rv = hsm_obj_get_locked(conn, oid, HSM_ACCESS_SEE, &o)) != CKR_OK)
            return rv;
        hsm_obj_clear(&o);
    }
    return CKR_OK;
}

CK_RV hsm_key_info(hsm_conn_t *conn, hsm_oid_t oid, hsm_uid_t *owner,
                   hsm_uid_t **shared, size_t *nshared)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    store_object_t so;
    uint32_t *uids = NULL;
    size_t nu = 0;
    hsm_uid_t *out = NULL;
    CK_RV rv;

    memset(&so, 0, sizeof(so));
    *owner = 0;
    *shared = NULL;
    *nshared = 0;
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_role_locked(conn, HSM_OP_SYNC_STATUS)) != CKR_OK ||
        (rv = hsm_token_object_locked(conn, oid, &so)) != CKR_OK)
        goto out;
    if ((rv = store_share_list(hsm->st, oid, &uids, &nu)) != CKR_OK)
        goto out;
    if (nu > 0) {
        out = calloc(nu, sizeof(*out));
        if (out == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        for (size_t i = 0; i < nu; i++)
            out[i] = uids[i];
    }
    *owner = so.owner;
    *shared = out;
    *nshared = nu;
out:
    pthread_mutex_unlock(&hsm->lock);
    store_object_clear(&so);
    free(uids);
    return rv;
}

/* ------------------------------------------------------------ trust */

CK_RV hsm_object_set_trusted(hsm_conn_t *conn, hsm_oid_t oid, bool trusted)
{
    HSM_CALL_CONN(conn);
    struct hsm_obj o;
    attr_list_t l = {0};
    CK_RV rv;

    memset(&o, 0, sizeof(o));
    pthread_mutex_lock(&conn->hsm->lock);
    hsm_gen_bump_locked(conn->hsm);
    if ((rv = hsm_role_locked(conn, HSM_OP_TRUST_KEYS)) != CKR_OK)
        goto out;
    if (oid & HSM_SESSION_OID_BIT) {
        rv = CKR_OBJECT_HANDLE_INVALID; /* another application's */
        goto out;
    }
    if ((rv = token_load_locked(conn->hsm, oid, &o)) != CKR_OK)
        goto out;
    /* Only objects whose schema has CKA_TRUSTED (public and secret keys,
     * certificates) carry it, with its default FALSE. */
    if (attr_list_find(&o.own, CKA_TRUSTED) == NULL) {
        rv = CKR_ATTRIBUTE_TYPE_INVALID;
        goto out;
    }
    if ((rv = attr_list_dup(&o.own, &l)) != CKR_OK ||
        (rv = attr_list_set_bool(&l, CKA_TRUSTED, trusted)) != CKR_OK)
        goto out;
    rv = token_update_locked(conn, &o, &l);
out:
    pthread_mutex_unlock(&conn->hsm->lock);
    hsm_obj_clear(&o);
    attr_list_free(&l);
    return rv;
}
