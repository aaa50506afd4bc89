/*
 * keygen.c - C_GenerateKey, C_GenerateKeyPair, C_DeriveKey.
 *
 * The attribute engine builds each new object from its template
 * (ATTR_OP_GENERATE / ATTR_OP_DERIVE: CKA_LOCAL, CKA_ALWAYS_SENSITIVE,
 * CKA_NEVER_EXTRACTABLE as the specification says); this file adds what
 * the mechanism makes: the key material, CKA_KEY_GEN_MECHANISM and, for a
 * pair, CKA_EC_PARAMS on the private key and a shared CKA_ID. Key material
 * is made without the token lock (an RSA-8192 key takes seconds); the lock
 * is taken again to store the result, so that nothing half-made remains.
 *
 * Choices: CKD_NULL with a CKA_VALUE_LEN shorter than Z keeps the leading
 * bytes of Z (longer: CKR_TEMPLATE_INCONSISTENT); a derived key without
 * CKA_VALUE_LEN is as long as Z (an AES key only when Z has an AES length,
 * else CKR_TEMPLATE_INCOMPLETE); CKM_ECDH1_DERIVE makes generic secret, AES
 * and HMAC keys (others: CKR_TEMPLATE_INCONSISTENT), CKK_GENERIC_SECRET when
 * the template names no key type.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/crypto/cops.h"
#include "hsm/internal.h"
#include "hsm/mech.h"

static const attr_caller_t keygen_caller = {.is_so = false};

/* The row of a mechanism that has flag, with its parameter checked. */
static CK_RV keygen_row(const hsm_t *hsm, const hsm_mech_t *mech, CK_FLAGS flag,
                        const mech_row_t **row, cops_params_t *p)
{
    *row = mech_find_enabled(hsm, mech->type);
    if (*row == NULL || ((*row)->flags & flag) == 0) {
        return CKR_MECHANISM_INVALID;
    }
    return mech_check_params(*row, mech, p);
}

/* Takes away an object this call has just stored (the second half of a
 * pair failed). */
static void keygen_remove_locked(hsm_conn_t *conn, hsm_oid_t oid)
{
    hsm_t *hsm = conn->hsm;

    if (oid & HSM_SESSION_OID_BIT) {
        for (struct hsm_sobj **pp = &conn->sobjs; *pp != NULL;
             pp = &(*pp)->next) {
            struct hsm_sobj *so = *pp;

            if (so->id == oid) {
                *pp = so->next;
                attr_list_free(&so->attrs);
                free(so);
                return;
            }
        }
        return;
    }
    if (store_begin(hsm->st, true) != CKR_OK) {
        log_error("cannot remove half of a key pair (object %llu)",
                  (unsigned long long)oid);
        return;
    }
    if (store_object_delete(hsm->st, oid) != CKR_OK ||
        store_bump_generation(hsm->st) != CKR_OK ||
        store_commit(hsm->st) != CKR_OK) {
        store_rollback(hsm->st);
        log_error("cannot remove half of a key pair (object %llu)",
                  (unsigned long long)oid);
    }
}

/* Stores l (and l2 when not NULL) in session sid; both or neither. */
static CK_RV keygen_store(hsm_conn_t *conn, hsm_sid_t sid, const char *event,
                          attr_list_t *l, hsm_oid_t *oid, attr_list_t *l2,
                          hsm_oid_t *oid2)
{
    struct hsm_session *s;
    hsm_oid_t first = 0;
    CK_RV rv;

    pthread_mutex_lock(&conn->hsm->lock);
    if ((rv = hsm_begin_locked(conn, sid, HSM_OP_KEY_MANAGEMENT, &s)) !=
        CKR_OK) {
        goto out;
    }
    if (!s->rw && (attr_list_bool(l, CKA_TOKEN, false) ||
                   (l2 != NULL && attr_list_bool(l2, CKA_TOKEN, false)))) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    if ((rv = hsm_obj_add_locked(conn, s, l, event, &first)) != CKR_OK) {
        goto out;
    }
    /* The first add may have let the lock go while the cluster took the
     * key (hsm_cluster_commit_unlocked): the session array may have moved
     * meanwhile, and the login ended. */
    if (l2 != NULL &&
        ((rv = hsm_begin_locked(conn, sid, HSM_OP_KEY_MANAGEMENT, &s)) !=
             CKR_OK ||
         (rv = hsm_obj_add_locked(conn, s, l2, event, oid2)) != CKR_OK)) {
        keygen_remove_locked(conn, first);
        goto out;
    }
    *oid = first;
out:
    pthread_mutex_unlock(&conn->hsm->lock);
    return rv;
}

/* ------------------------------------------------------------ secret keys */

/* DES keys carry odd parity in the low bit of each byte (SP 800-67). */
static void des_parity(uint8_t *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t b = v[i] & 0xFE;
        unsigned bits = 0;

        for (uint8_t x = b; x != 0; x >>= 1) {
            bits += x & 1;
        }
        v[i] = (uint8_t)(b | (bits % 2 == 0 ? 1 : 0));
    }
}

CK_RV hsm_generate_key(hsm_conn_t *conn, hsm_sid_t sid, const hsm_mech_t *mech,
                       const CK_ATTRIBUTE *tmpl, CK_ULONG count, hsm_oid_t *oid)
{
    HSM_CALL_SESSION(conn, sid);
    const mech_row_t *row;
    cops_params_t p;
    attr_list_t l = {0};
    uint8_t *val = NULL;
    CK_ULONG len = 0, size;
    CK_KEY_TYPE kt;
    CK_RV rv;

    if ((rv = hsm_session_allowed(conn, sid, HSM_OP_KEY_MANAGEMENT)) !=
            CKR_OK ||
        (rv = keygen_row(conn->hsm, mech, CKF_GENERATE, &row, &p)) != CKR_OK) {
        return rv;
    }
    kt = row->kt[0];
    if (row->derive == MECH_DERIVE_PBKDF2) {
        /* The template says what to make (generic secret by default). */
        kt = attr_tmpl_find(tmpl, count, CKA_KEY_TYPE) != NULL
                 ? CK_UNAVAILABLE_INFORMATION
                 : CKK_GENERIC_SECRET;
    }
    rv = attrs_new_object(ATTR_OP_GENERATE, hsm_cu_caller(conn->hsm),
                          CKO_SECRET_KEY, kt, tmpl, count, &l);
    if (rv != CKR_OK) {
        goto out;
    }
    kt = attr_list_ulong(&l, CKA_KEY_TYPE, CK_UNAVAILABLE_INFORMATION);
    len = attr_list_ulong(&l, CKA_VALUE_LEN, 0);
    size = row->size_bytes ? len : len * 8;
    if (len == 0 || len > HSM_ATTR_VALUE_MAX || size < row->min_key ||
        size > row->max_key) {
        rv = CKR_KEY_SIZE_RANGE;
        goto out;
    }
    /* PBKDF2's work is iterations per output block: bounded as a whole. */
    if (row->derive == MECH_DERIVE_PBKDF2 &&
        p.iterations >
            MECH_PBKDF2_ITER_MAX /
                ((len + cops_hash_len(p.hash) - 1) / cops_hash_len(p.hash))) {
        rv = CKR_KEY_SIZE_RANGE;
        goto out;
    }
    val = malloc(len);
    if (val == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (row->derive == MECH_DERIVE_PBKDF2) {
        rv = cops_pbkdf2(p.hash, p.label, p.label_len, p.salt, p.salt_bytes,
                         p.iterations, val, len);
    } else {
        rv = crypto_random(val, len);
    }
    if (rv == CKR_OK && kt == CKK_DES3) {
        des_parity(val, len);
    }
    if (rv != CKR_OK ||
        (rv = attrs_check_value(&l, CKA_VALUE, val, len)) != CKR_OK ||
        (rv = attr_list_set(&l, CKA_VALUE, val, len)) != CKR_OK ||
        (rv = attr_list_set_ulong(&l, CKA_KEY_GEN_MECHANISM, row->type)) !=
            CKR_OK) {
        goto out;
    }
    rv = keygen_store(conn, sid, "generate", &l, oid, NULL, NULL);
out:
    util_free_wipe(val, len);
    attr_list_free(&l);
    return rv;
}

/* ------------------------------------------------------------ key pairs */

/* A CKA_ID given in one template only goes to both keys. */
static CK_RV share_id(const CK_ATTRIBUTE *pt, CK_ULONG pn,
                      const CK_ATTRIBUTE *vt, CK_ULONG vn, attr_list_t *pl,
                      attr_list_t *vl)
{
    bool in_pub = attr_tmpl_find(pt, pn, CKA_ID) != NULL;
    bool in_priv = attr_tmpl_find(vt, vn, CKA_ID) != NULL;
    const attr_t *a;

    if (in_pub == in_priv) {
        return CKR_OK;
    }
    a = attr_list_find(in_pub ? pl : vl, CKA_ID);
    if (a == NULL) {
        return CKR_OK;
    }
    return attr_list_set(in_pub ? vl : pl, CKA_ID, a->value, a->len);
}

CK_RV hsm_generate_key_pair(hsm_conn_t *conn, hsm_sid_t sid,
                            const hsm_mech_t *mech,
                            const CK_ATTRIBUTE *pub_tmpl, CK_ULONG pub_count,
                            const CK_ATTRIBUTE *priv_tmpl, CK_ULONG priv_count,
                            hsm_oid_t *pub, hsm_oid_t *priv)
{
    HSM_CALL_SESSION(conn, sid);
    const mech_row_t *row;
    cops_params_t p;
    attr_list_t pl = {0}, vl = {0};
    const attr_t *a;
    CK_KEY_TYPE kt;
    CK_ULONG bits = 0;
    CK_RV rv;

    if ((rv = hsm_session_allowed(conn, sid, HSM_OP_KEY_MANAGEMENT)) !=
            CKR_OK ||
        (rv = keygen_row(conn->hsm, mech, CKF_GENERATE_KEY_PAIR, &row, &p)) !=
            CKR_OK) {
        return rv;
    }
    kt = row->kt[0];
    if ((rv = attrs_new_object(ATTR_OP_GENERATE, hsm_cu_caller(conn->hsm),
                               CKO_PUBLIC_KEY, kt, pub_tmpl, pub_count, &pl)) !=
            CKR_OK ||
        (rv = attrs_new_object(ATTR_OP_GENERATE, hsm_cu_caller(conn->hsm),
                               CKO_PRIVATE_KEY, kt, priv_tmpl, priv_count,
                               &vl)) != CKR_OK ||
        (rv = share_id(pub_tmpl, pub_count, priv_tmpl, priv_count, &pl, &vl)) !=
            CKR_OK) {
        goto out;
    }
    if (kt == CKK_RSA) {
        bits = attr_list_ulong(&pl, CKA_MODULUS_BITS, 0);
        if (bits < row->min_key || bits > row->max_key) {
            rv = CKR_KEY_SIZE_RANGE;
            goto out;
        }
        a = attr_list_find(&pl, CKA_PUBLIC_EXPONENT);
        rv = cops_generate_rsa(bits, a != NULL ? a->value : NULL,
                               a != NULL ? a->len : 0, &pl, &vl);
    } else {
        a = attr_list_find(&pl, CKA_EC_PARAMS);
        if (a == NULL) {
            rv = CKR_TEMPLATE_INCOMPLETE;
            goto out;
        }
        if ((rv = cops_curve_check(kt, a->value, a->len, &bits)) != CKR_OK) {
            goto out;
        }
        if (bits < row->min_key || bits > row->max_key) {
            rv = CKR_KEY_SIZE_RANGE;
            goto out;
        }
        if ((rv = attr_list_set(&vl, CKA_EC_PARAMS, a->value, a->len)) !=
            CKR_OK) {
            goto out;
        }
        rv = cops_generate_ec(kt, a->value, a->len, &pl, &vl);
    }
    if (rv != CKR_OK ||
        (rv = attr_list_set_ulong(&pl, CKA_KEY_GEN_MECHANISM, row->type)) !=
            CKR_OK ||
        (rv = attr_list_set_ulong(&vl, CKA_KEY_GEN_MECHANISM, row->type)) !=
            CKR_OK) {
        goto out;
    }
    rv = keygen_store(conn, sid, "generate", &pl, pub, &vl, priv);
out:
    attr_list_free(&pl);
    attr_list_free(&vl);
    return rv;
}

/* ------------------------------------------------------------ derive */

/*
 * The protection the keys a derivation reads pass on to the key it makes
 * (PKCS#11 3.0, the derivation mechanisms' text): one sensitive key makes
 * the result sensitive, one unextractable key makes it unextractable, one
 * CKA_WRAP_WITH_TRUSTED key makes it trusted-only; CKA_ALWAYS_SENSITIVE and
 * CKA_NEVER_EXTRACTABLE hold only if they held for every key read and
 * still hold for the result. Every derivation goes through derive_inherit
 * and derive_protect, so no mechanism is a way around them.
 */
struct derive_prot {
    bool sensitive, unextractable, trusted_only;
    bool always_sensitive, never_extractable; /* over every key read */
};

static void derive_prot_init(struct derive_prot *p)
{
    memset(p, 0, sizeof(*p));
    p->always_sensitive = true;
    p->never_extractable = true;
}

/* One key the derivation reads (the base, a second key, a salt key, or
 * the data object CKM_HKDF_DATA may start from). */
static void derive_inherit(struct derive_prot *p, const attr_list_t *src)
{
    p->sensitive = p->sensitive || attr_list_bool(src, CKA_SENSITIVE, false);
    p->unextractable =
        p->unextractable || !attr_list_bool(src, CKA_EXTRACTABLE, true);
    p->trusted_only =
        p->trusted_only || attr_list_bool(src, CKA_WRAP_WITH_TRUSTED, false);
    p->always_sensitive =
        p->always_sensitive && attr_list_bool(src, CKA_ALWAYS_SENSITIVE, false);
    p->never_extractable = p->never_extractable &&
                           attr_list_bool(src, CKA_NEVER_EXTRACTABLE, false);
}

/* The template's own value of a CK_BBOOL attribute: 1 true, 0 false, -1
 * not given (attrs_new_object has checked sizes and repeats). */
static int tmpl_bool(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
    const CK_ATTRIBUTE *a = attr_tmpl_find(t, n, type);

    if (a == NULL || a->pValue == NULL || a->ulValueLen != sizeof(CK_BBOOL)) {
        return -1;
    }
    return *(const CK_BBOOL *)a->pValue == CK_TRUE;
}

/*
 * Applies p to l, the new key built from tmpl: a template that asks for
 * less protection than the keys read carry is CKR_TEMPLATE_INCONSISTENT
 * (nothing is made); one that is silent gets the inherited values.
 */
static CK_RV derive_protect(const struct derive_prot *p,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                            attr_list_t *l)
{
    bool sensitive, extractable;
    CK_RV rv;

    if ((p->sensitive && tmpl_bool(tmpl, count, CKA_SENSITIVE) == 0) ||
        (p->unextractable && tmpl_bool(tmpl, count, CKA_EXTRACTABLE) == 1) ||
        (p->trusted_only &&
         tmpl_bool(tmpl, count, CKA_WRAP_WITH_TRUSTED) == 0)) {
        return CKR_TEMPLATE_INCONSISTENT;
    }
    sensitive = p->sensitive || attr_list_bool(l, CKA_SENSITIVE, true);
    extractable = !p->unextractable && attr_list_bool(l, CKA_EXTRACTABLE, true);
    if ((rv = attr_list_set_bool(l, CKA_SENSITIVE, sensitive)) != CKR_OK ||
        (rv = attr_list_set_bool(l, CKA_EXTRACTABLE, extractable)) != CKR_OK ||
        (rv = attr_list_set_bool(l, CKA_ALWAYS_SENSITIVE,
                                 p->always_sensitive && sensitive)) != CKR_OK ||
        (rv = attr_list_set_bool(l, CKA_NEVER_EXTRACTABLE,
                                 p->never_extractable && !extractable)) !=
            CKR_OK) {
        return rv;
    }
    if (p->trusted_only) {
        rv = attr_list_set_bool(l, CKA_WRAP_WITH_TRUSTED, true);
    }
    return rv;
}

/* What CKM_ECDH1_DERIVE may make. */
static bool derivable(CK_KEY_TYPE kt)
{
    static const CK_KEY_TYPE ok[] = {
        CKK_GENERIC_SECRET, CKK_AES,         CKK_SHA_1_HMAC,  CKK_SHA224_HMAC,
        CKK_SHA256_HMAC,    CKK_SHA384_HMAC, CKK_SHA512_HMAC,
    };

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(ok); i++) {
        if (ok[i] == kt) {
            return true;
        }
    }
    return false;
}

/* The value of the new key from Z (*out malloc'd, *len its length). */
static CK_RV derive_value(const cops_params_t *p, CK_KEY_TYPE kt,
                          const attr_list_t *l, const uint8_t *z, size_t zlen,
                          uint8_t **out, size_t *len)
{
    const attr_t *vl = attr_list_find(l, CKA_VALUE_LEN);
    size_t n;
    CK_RV rv;

    *out = NULL;
    if (vl != NULL) {
        n = attr_list_ulong(l, CKA_VALUE_LEN, 0);
    } else {
        n = zlen;
        if (kt == CKK_AES && n != 16 && n != 24 && n != 32) {
            return CKR_TEMPLATE_INCOMPLETE;
        }
    }
    if (n == 0 || n > HSM_ATTR_VALUE_MAX) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    if (p->kdf_null && n > zlen) {
        return CKR_TEMPLATE_INCONSISTENT;
    }
    *out = malloc(n);
    if (*out == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (p->kdf_null) {
        memcpy(*out, z, n);
        rv = CKR_OK;
    } else {
        rv = cops_x963_kdf(p->hash, z, zlen, p->shared_data, p->shared_len,
                           *out, n);
    }
    if (rv != CKR_OK) {
        util_free_wipe(*out, n);
        *out = NULL;
        return rv;
    }
    *len = n;
    return CKR_OK;
}

static CK_RV blob_of(struct hsm_obj *o, CK_ATTRIBUTE_TYPE t, uint8_t **blob,
                     size_t *len);

static CK_RV derive_ecdh(hsm_conn_t *conn, hsm_sid_t sid,
                         const hsm_mech_t *mech, hsm_oid_t base,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         hsm_oid_t *oid)
{
    hsm_t *hsm = conn->hsm;
    const mech_row_t *row;
    struct hsm_session *s;
    struct hsm_obj o;
    cops_params_t p;
    cops_key_t *ck = NULL;
    attr_list_t l = {0}, kept = {0};
    CK_ATTRIBUTE *merged = NULL;
    CK_ULONG mcount = 0;
    uint8_t *z = NULL, *val = NULL, *dtmpl = NULL;
    size_t zlen = 0, len = 0, dtmpl_len = 0;
    struct derive_prot prot;
    CK_KEY_TYPE kt;
    CK_RV rv;

    memset(&o, 0, sizeof(o));
    derive_prot_init(&prot);
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_begin_locked(conn, sid, HSM_OP_KEY_MANAGEMENT, &s)) !=
            CKR_OK ||
        (rv = keygen_row(hsm, mech, CKF_DERIVE, &row, &p)) != CKR_OK ||
        (rv = hsm_ops_key_locked(conn, row, base, HSM_ACCESS_OWN, CKA_DERIVE,
                                 &o, &ck)) != CKR_OK) {
        pthread_mutex_unlock(&hsm->lock);
        goto out;
    }
    if (attr_list_ulong(hsm_obj_attrs(&o), CKA_CLASS, CKO_DATA) !=
        CKO_PRIVATE_KEY) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
    } else {
        rv = blob_of(&o, CKA_DERIVE_TEMPLATE, &dtmpl, &dtmpl_len);
    }
    derive_inherit(&prot, hsm_obj_attrs(&o));
    pthread_mutex_unlock(&hsm->lock);
    if (rv != CKR_OK ||
        (rv = hsm_template_merge(tmpl, count, dtmpl, dtmpl_len, &kept, &merged,
                                 &mcount)) != CKR_OK) {
        goto out;
    }

    kt = attr_tmpl_find(merged, mcount, CKA_KEY_TYPE) != NULL
             ? CK_UNAVAILABLE_INFORMATION
             : CKK_GENERIC_SECRET;
    rv = attrs_new_object(ATTR_OP_DERIVE, hsm_cu_caller(conn->hsm),
                          CKO_SECRET_KEY, kt, merged, mcount, &l);
    if (rv != CKR_OK) {
        goto out;
    }
    kt = attr_list_ulong(&l, CKA_KEY_TYPE, CK_UNAVAILABLE_INFORMATION);
    if (!derivable(kt)) {
        rv = CKR_TEMPLATE_INCONSISTENT;
        goto out;
    }
    if ((rv = derive_protect(&prot, merged, mcount, &l)) != CKR_OK ||
        (rv = attrs_fix(&l, &kept)) != CKR_OK) {
        goto out;
    }
    if ((rv = cops_ecdh(ck, p.public_data, p.public_len, &z, &zlen)) !=
            CKR_OK ||
        (rv = derive_value(&p, kt, &l, z, zlen, &val, &len)) != CKR_OK) {
        goto out;
    }
    if ((rv = attr_list_set(&l, CKA_VALUE, val, len)) != CKR_OK ||
        (rv = attr_list_set_ulong(&l, CKA_VALUE_LEN, len)) != CKR_OK) {
        goto out;
    }
    rv = keygen_store(conn, sid, "derive", &l, oid, NULL, NULL);
out:
    hsm_obj_clear(&o);
    cops_key_unref(ck);
    util_free_wipe(z, zlen);
    util_free_wipe(val, len);
    free(dtmpl);
    free(merged);
    attr_list_free(&kept);
    attr_list_free(&l);
    return rv;
}

/* ------------------------------------------------------------ KDFs */

/* A template with the base key's CKA_DERIVE_TEMPLATE (or the unwrapping
 * key's CKA_UNWRAP_TEMPLATE) merged in: the caller's attributes, then the
 * key's (the engine finds a contradiction: CKR_TEMPLATE_INCONSISTENT).
 * *merged malloc'd, pointing into tmpl and into kept. */
CK_RV hsm_template_merge(const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         const uint8_t *blob, size_t bloblen, attr_list_t *kept,
                         CK_ATTRIBUTE **merged, CK_ULONG *mcount)
{
    CK_ATTRIBUTE *m;
    CK_RV rv;

    *merged = NULL;
    *mcount = 0;
    memset(kept, 0, sizeof(*kept));
    if (blob != NULL && bloblen > 0 &&
        (rv = attr_list_deserialize(blob, bloblen, kept)) != CKR_OK) {
        return rv;
    }
    if (count + kept->n > HSM_TEMPLATE_MAX) {
        attr_list_free(kept);
        return CKR_TEMPLATE_INCONSISTENT;
    }
    m = calloc(count + kept->n + 1, sizeof(*m));
    if (m == NULL) {
        attr_list_free(kept);
        return CKR_HOST_MEMORY;
    }
    if (count > 0) {
        memcpy(m, tmpl, count * sizeof(*m));
    }
    for (size_t i = 0; i < kept->n; i++) {
        m[count + i].type = kept->v[i].type;
        m[count + i].pValue = kept->v[i].value;
        m[count + i].ulValueLen = kept->v[i].len;
    }
    *merged = m;
    *mcount = count + (CK_ULONG)kept->n;
    return CKR_OK;
}

/* Copies the CKA_VALUE of a loaded object (*v malloc'd). */
static CK_RV value_of(struct hsm_obj *o, uint8_t **v, size_t *len)
{
    const attr_t *a = attr_list_find(hsm_obj_attrs(o), CKA_VALUE);

    *v = NULL;
    *len = 0;
    if (a == NULL || a->len == 0) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    *v = malloc(a->len);
    if (*v == NULL) {
        return CKR_HOST_MEMORY;
    }
    memcpy(*v, a->value, a->len);
    *len = a->len;
    return CKR_OK;
}

/* A CKA_DERIVE_TEMPLATE / CKA_UNWRAP_TEMPLATE copy (*blob malloc'd). */
static CK_RV blob_of(struct hsm_obj *o, CK_ATTRIBUTE_TYPE t, uint8_t **blob,
                     size_t *len)
{
    const attr_t *a = attr_list_find(hsm_obj_attrs(o), t);

    *blob = NULL;
    *len = 0;
    if (a == NULL || a->len == 0) {
        return CKR_OK;
    }
    *blob = malloc(a->len);
    if (*blob == NULL) {
        return CKR_HOST_MEMORY;
    }
    memcpy(*blob, a->value, a->len);
    *len = a->len;
    return CKR_OK;
}

/* One field of SP 800-108 input: v in w bytes, big or little endian. */
static size_t put_int(uint8_t *out, uint64_t v, size_t w, bool little)
{
    for (size_t i = 0; i < w; i++) {
        size_t shift = 8 * (little ? i : w - 1 - i);

        out[i] = (uint8_t)(shift < 64 ? v >> shift : 0);
    }
    return w;
}

static bool fits(uint64_t v, size_t w)
{
    return w >= 8 || v >> (8 * w) == 0;
}

/*
 * SP 800-108 in counter or feedback mode, the input of each PRF call laid
 * out as the CK_PRF_DATA_PARAM list says (checked by mech.c).
 */
static CK_RV kbkdf(const mech_row_t *row, const cops_params_t *p,
                   const uint8_t *key, size_t keylen, uint8_t *out,
                   size_t outlen)
{
    bool feedback = row->derive == MECH_DERIVE_KBKDF_FEEDBACK;
    const hsm_mp_prf_data_t *d = p->mech->u.kbkdf.params;
    size_t nd = p->mech->u.kbkdf.n_params;
    const uint8_t *iv = p->mech->u.kbkdf.iv.data;
    size_t ivlen = feedback ? p->mech->u.kbkdf.iv.len : 0, hlen, n;
    size_t inmax = 0, done = 0;
    uint8_t prev[COPS_HASH_MAX], block[COPS_HASH_MAX];
    size_t prevlen = 0;
    uint8_t *in = NULL;
    uint64_t bits;
    CK_RV rv = CKR_OK;

    hlen = p->hash != COPS_HASH_NONE ? cops_hash_len(p->hash) : 16;
    if (ivlen > sizeof(prev)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    n = outlen / hlen + (outlen % hlen != 0);
    for (size_t i = 0; i < nd; i++) {
        inmax += d[i].type == CK_SP800_108_BYTE_ARRAY ? d[i].bytes.len : 8;
        if (d[i].type == CK_SP800_108_ITERATION_VARIABLE && feedback) {
            inmax += COPS_HASH_MAX;
        }
    }
    in = malloc(inmax);
    if (in == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (iv != NULL && ivlen > 0) {
        memcpy(prev, iv, ivlen);
        prevlen = ivlen;
    }
    for (size_t i = 1; i <= n && rv == CKR_OK; i++) {
        size_t len = 0, got = 0;

        for (size_t j = 0; j < nd; j++) {
            size_t w = d[j].width_bits / 8;
            bool little = d[j].little_endian == CK_TRUE;

            switch (d[j].type) {
            case CK_SP800_108_ITERATION_VARIABLE:
                if (feedback) {
                    if (prevlen > 0) {
                        memcpy(in + len, prev, prevlen);
                    }
                    len += prevlen;
                    break;
                }
                if (!fits(i, w)) {
                    rv = CKR_TEMPLATE_INCONSISTENT; /* too long a key */
                    break;
                }
                len += put_int(in + len, i, w, little);
                break;
            case CK_SP800_108_OPTIONAL_COUNTER:
                if (!fits(i, w)) {
                    rv = CKR_TEMPLATE_INCONSISTENT;
                    break;
                }
                len += put_int(in + len, i, w, little);
                break;
            case CK_SP800_108_DKM_LENGTH:
                bits =
                    d[j].dkm_method == CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS
                        ? (uint64_t)n * hlen * 8
                        : (uint64_t)outlen * 8;
                if (!fits(bits, w)) {
                    rv = CKR_MECHANISM_PARAM_INVALID;
                    break;
                }
                len += put_int(in + len, bits, w, little);
                break;
            default: /* CK_SP800_108_BYTE_ARRAY */
                memcpy(in + len, d[j].bytes.data, d[j].bytes.len);
                len += d[j].bytes.len;
                break;
            }
        }
        if (rv != CKR_OK) {
            break;
        }
        rv = cops_prf(p->hash, key, keylen, in, len, block, &got);
        if (rv == CKR_KEY_TYPE_INCONSISTENT) {
            rv = CKR_KEY_TYPE_INCONSISTENT;
        }
        if (rv == CKR_OK) {
            size_t take = outlen - done < got ? outlen - done : got;

            memcpy(out + done, block, take);
            done += take;
            memcpy(prev, block, got);
            prevlen = got;
        }
    }
    util_free_wipe(in, inmax);
    crypto_wipe(prev, sizeof(prev));
    crypto_wipe(block, sizeof(block));
    return rv;
}

/* What a KDF derivation gathered under the lock. */
struct derive_in {
    uint8_t *base; /* the base key's value */
    size_t base_len;
    CK_KEY_TYPE base_kt;
    uint8_t *other; /* CONCAT_KEY's second key, HKDF's salt key */
    size_t other_len;
    uint8_t *dtmpl; /* CKA_DERIVE_TEMPLATE */
    size_t dtmpl_len;
    struct derive_prot prot; /* of every key read */
};

static void derive_in_free(struct derive_in *in)
{
    util_free_wipe(in->base, in->base_len);
    util_free_wipe(in->other, in->other_len);
    free(in->dtmpl);
    memset(in, 0, sizeof(*in));
}

/* Loads a second secret key (concatenation, HKDF salt key). It is read
 * by a derivation, so it must allow one: CKA_DERIVE (else a key shared
 * for encryption only would still yield HMAC(key, chosen data)). */
static CK_RV load_other_locked(hsm_conn_t *conn, hsm_oid_t oid,
                               hsm_access_t access, struct derive_in *in)
{
    struct hsm_obj o;
    CK_RV rv;

    rv = hsm_key_get_locked(conn, oid, access, &o);
    if (rv != CKR_OK) {
        return rv;
    }
    if (attr_list_ulong(hsm_obj_attrs(&o), CKA_CLASS, CKO_DATA) !=
        CKO_SECRET_KEY) {
        rv = CKR_KEY_HANDLE_INVALID;
    } else if (!attr_list_bool(hsm_obj_attrs(&o), CKA_DERIVE, false)) {
        rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
    } else {
        rv = value_of(&o, &in->other, &in->other_len);
        derive_inherit(&in->prot, hsm_obj_attrs(&o));
    }
    hsm_obj_clear(&o);
    return rv;
}

/* The value of the new key (*val malloc'd, *len its length). want: the
 * length the template asks (0: none). */
static CK_RV kdf_value(const mech_row_t *row, const cops_params_t *p,
                       const struct derive_in *in, size_t want, uint8_t **val,
                       size_t *len)
{
    const hsm_mech_t *m = p->mech;
    size_t natural = 0, n;
    uint8_t *buf = NULL;
    CK_RV rv;

    switch (row->derive) {
    case MECH_DERIVE_CONCAT_KEY:
        natural = in->base_len + in->other_len;
        break;
    case MECH_DERIVE_CONCAT_DATA:
    case MECH_DERIVE_CONCAT_DATA_BASE:
        natural = in->base_len + m->u.string.len;
        break;
    case MECH_DERIVE_AES_ECB_DATA:
        natural = m->u.string.len;
        break;
    case MECH_DERIVE_AES_CBC_DATA:
        natural = m->u.cbc_data.data.len;
        break;
    case MECH_DERIVE_HKDF:
    case MECH_DERIVE_HKDF_DATA:
        if (m->u.hkdf.extract && !m->u.hkdf.expand) {
            natural = cops_hash_len(p->hash);
        }
        break;
    default:
        break;
    }
    n = want != 0 ? want : natural;
    if (n == 0) {
        return CKR_TEMPLATE_INCOMPLETE;
    }
    if (n > HSM_ATTR_VALUE_MAX || (natural != 0 && n > natural)) {
        return CKR_TEMPLATE_INCONSISTENT;
    }
    /* Whole results first (ECB/CBC over all data), then truncated. */
    buf = malloc(natural > n ? natural : n);
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    switch (row->derive) {
    case MECH_DERIVE_CONCAT_KEY:
        memcpy(buf, in->base, in->base_len);
        memcpy(buf + in->base_len, in->other, in->other_len);
        rv = CKR_OK;
        break;
    case MECH_DERIVE_CONCAT_DATA:
        memcpy(buf, in->base, in->base_len);
        memcpy(buf + in->base_len, m->u.string.data, m->u.string.len);
        rv = CKR_OK;
        break;
    case MECH_DERIVE_CONCAT_DATA_BASE:
        memcpy(buf, m->u.string.data, m->u.string.len);
        memcpy(buf + m->u.string.len, in->base, in->base_len);
        rv = CKR_OK;
        break;
    case MECH_DERIVE_AES_ECB_DATA:
        rv = cops_aes_raw(in->base, in->base_len, NULL, m->u.string.data,
                          m->u.string.len, buf);
        break;
    case MECH_DERIVE_AES_CBC_DATA:
        rv = cops_aes_raw(in->base, in->base_len, m->u.cbc_data.iv,
                          m->u.cbc_data.data.data, m->u.cbc_data.data.len, buf);
        break;
    case MECH_DERIVE_HKDF:
    case MECH_DERIVE_HKDF_DATA: {
        const uint8_t *salt = NULL;
        size_t saltlen = 0;

        if (m->u.hkdf.extract && m->u.hkdf.salt_type == CKF_HKDF_SALT_DATA) {
            salt = m->u.hkdf.salt.data;
            saltlen = m->u.hkdf.salt.len;
        } else if (m->u.hkdf.extract &&
                   m->u.hkdf.salt_type == CKF_HKDF_SALT_KEY) {
            salt = in->other;
            saltlen = in->other_len;
        }
        rv = cops_hkdf(p->hash, m->u.hkdf.extract, m->u.hkdf.expand, salt,
                       saltlen, in->base, in->base_len, m->u.hkdf.info.data,
                       m->u.hkdf.info.len, buf, n);
        break;
    }
    case MECH_DERIVE_KBKDF_COUNTER:
    case MECH_DERIVE_KBKDF_FEEDBACK:
        rv = kbkdf(row, p, in->base, in->base_len, buf, n);
        break;
    default:
        rv = CKR_MECHANISM_INVALID;
        break;
    }
    if (rv != CKR_OK) {
        util_free_wipe(buf, natural > n ? natural : n);
        return rv;
    }
    if (natural > n) {
        crypto_wipe(buf + n, natural - n);
    }
    *val = buf;
    *len = n;
    return CKR_OK;
}

/* CKM_HKDF_DATA makes a data object: the template without CKA_VALUE_LEN,
 * with CKA_CLASS CKO_DATA. */
static CK_RV data_object(const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         const uint8_t *val, size_t len, attr_list_t *l)
{
    static CK_OBJECT_CLASS data = CKO_DATA;
    CK_ATTRIBUTE *t = calloc(count + 1, sizeof(*t));
    CK_ULONG n = 0;
    CK_RV rv;

    if (t == NULL) {
        return CKR_HOST_MEMORY;
    }
    for (CK_ULONG i = 0; i < count; i++) {
        if (tmpl[i].type == CKA_VALUE_LEN || tmpl[i].type == CKA_VALUE) {
            continue;
        }
        t[n++] = tmpl[i];
    }
    if (attr_tmpl_find(t, n, CKA_CLASS) == NULL) {
        t[n].type = CKA_CLASS;
        t[n].pValue = &data;
        t[n].ulValueLen = sizeof(data);
        n++;
    }
    rv = attrs_new_object(ATTR_OP_CREATE, &keygen_caller,
                          CK_UNAVAILABLE_INFORMATION,
                          CK_UNAVAILABLE_INFORMATION, t, n, l);
    free(t);
    if (rv == CKR_OK &&
        attr_list_ulong(l, CKA_CLASS, CKO_SECRET_KEY) != CKO_DATA) {
        rv = CKR_TEMPLATE_INCONSISTENT;
    }
    if (rv == CKR_OK) {
        rv = attr_list_set(l, CKA_VALUE, val, len);
    }
    return rv;
}

static CK_RV derive_kdf(hsm_conn_t *conn, hsm_sid_t sid, const mech_row_t *row,
                        const cops_params_t *p, hsm_oid_t base,
                        const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                        hsm_oid_t *oid)
{
    hsm_t *hsm = conn->hsm;
    struct hsm_session *s;
    struct hsm_obj o;
    struct derive_in in;
    attr_list_t l = {0}, kept = {0};
    CK_ATTRIBUTE *merged = NULL;
    CK_ULONG mcount = 0;
    uint8_t *val = NULL;
    size_t len = 0, want = 0;
    CK_KEY_TYPE kt;
    CK_OBJECT_CLASS cls;
    CK_RV rv;

    memset(&o, 0, sizeof(o));
    memset(&in, 0, sizeof(in));
    derive_prot_init(&in.prot);
    pthread_mutex_lock(&hsm->lock);
    rv = hsm_begin_locked(conn, sid, HSM_OP_KEY_MANAGEMENT, &s);
    if (rv == CKR_OK) {
        rv = hsm_key_get_locked(conn, base, HSM_ACCESS_OWN, &o);
    }
    if (rv == CKR_OK) {
        const attr_list_t *bl = hsm_obj_attrs(&o);

        cls = attr_list_ulong(bl, CKA_CLASS, CKO_PUBLIC_KEY);
        in.base_kt = attr_list_ulong(bl, CKA_KEY_TYPE, CKK_GENERIC_SECRET);
        if (cls == CKO_DATA && row->derive == MECH_DERIVE_HKDF_DATA) {
            /* CKM_HKDF_DATA may start from a data object's value. */
            rv = value_of(&o, &in.base, &in.base_len);
            derive_inherit(&in.prot, bl);
        } else if (cls != CKO_SECRET_KEY) {
            rv = CKR_KEY_TYPE_INCONSISTENT;
        } else if (!mech_allows_key_type(row, in.base_kt)) {
            rv = CKR_KEY_TYPE_INCONSISTENT;
        } else if (!attr_list_bool(bl, CKA_DERIVE, false)) {
            rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
        } else {
            derive_inherit(&in.prot, bl);
            rv = value_of(&o, &in.base, &in.base_len);
        }
        if (rv == CKR_OK) {
            rv = blob_of(&o, CKA_DERIVE_TEMPLATE, &in.dtmpl, &in.dtmpl_len);
        }
    }
    if (rv == CKR_OK &&
        (in.base_len < row->min_key || in.base_len > row->max_key)) {
        rv = CKR_KEY_SIZE_RANGE;
    }
    if (rv == CKR_OK && row->derive == MECH_DERIVE_CONCAT_KEY) {
        rv = load_other_locked(conn, (hsm_oid_t)p->mech->u.object,
                               HSM_ACCESS_OWN, &in);
    }
    if (rv == CKR_OK && (row->derive == MECH_DERIVE_HKDF ||
                         row->derive == MECH_DERIVE_HKDF_DATA)) {
        const hsm_mech_t *m = p->mech;

        if (m->u.hkdf.extract && m->u.hkdf.salt_type == CKF_HKDF_SALT_KEY) {
            rv = load_other_locked(conn, (hsm_oid_t)m->u.hkdf.salt_key,
                                   HSM_ACCESS_USE, &in);
        }
    }
    pthread_mutex_unlock(&hsm->lock);
    hsm_obj_clear(&o);
    if (rv != CKR_OK) {
        goto out;
    }
    if (row->derive == MECH_DERIVE_KBKDF_COUNTER ||
        row->derive == MECH_DERIVE_KBKDF_FEEDBACK) {
        /* The PRF decides the base key: AES for CMAC, else HMAC keys. */
        if ((p->hash == COPS_HASH_NONE) != (in.base_kt == CKK_AES)) {
            rv = CKR_KEY_TYPE_INCONSISTENT;
            goto out;
        }
    }
    if ((rv = hsm_template_merge(tmpl, count, in.dtmpl, in.dtmpl_len, &kept,
                                 &merged, &mcount)) != CKR_OK) {
        goto out;
    }
    {
        const CK_ATTRIBUTE *vl = attr_tmpl_find(merged, mcount, CKA_VALUE_LEN);

        if (vl != NULL) {
            if (vl->ulValueLen != sizeof(CK_ULONG) || vl->pValue == NULL) {
                rv = CKR_ATTRIBUTE_VALUE_INVALID;
                goto out;
            }
            memcpy(&want, vl->pValue, sizeof(CK_ULONG));
            if (want == 0) {
                rv = CKR_ATTRIBUTE_VALUE_INVALID;
                goto out;
            }
        }
    }
    if (row->derive == MECH_DERIVE_HKDF_DATA) {
        /* A data object is readable by whoever sees it: it cannot carry
         * the protection of a sensitive or unextractable key, so its
         * template asks for less than the rule allows. */
        if (in.prot.sensitive || in.prot.unextractable) {
            rv = CKR_TEMPLATE_INCONSISTENT;
            goto out;
        }
        if ((rv = kdf_value(row, p, &in, want, &val, &len)) != CKR_OK ||
            (rv = data_object(merged, mcount, val, len, &l)) != CKR_OK) {
            goto out;
        }
        rv = keygen_store(conn, sid, "derive", &l, oid, NULL, NULL);
        goto out;
    }
    kt = attr_tmpl_find(merged, mcount, CKA_KEY_TYPE) != NULL
             ? CK_UNAVAILABLE_INFORMATION
             : CKK_GENERIC_SECRET;
    rv = attrs_new_object(ATTR_OP_DERIVE, hsm_cu_caller(conn->hsm),
                          CKO_SECRET_KEY, kt, merged, mcount, &l);
    if (rv != CKR_OK ||
        (rv = derive_protect(&in.prot, merged, mcount, &l)) != CKR_OK ||
        (rv = attrs_fix(&l, &kept)) != CKR_OK) {
        goto out;
    }
    kt = attr_list_ulong(&l, CKA_KEY_TYPE, CK_UNAVAILABLE_INFORMATION);
    if (want == 0 && kt == CKK_DES3) {
        want = 24;
    } else if (want == 0 && kt == CKK_CHACHA20) {
        want = 32;
    }
    if ((rv = kdf_value(row, p, &in, want, &val, &len)) != CKR_OK) {
        goto out;
    }
    if (attrs_check_value(&l, CKA_VALUE, val, len) != CKR_OK) {
        rv = CKR_TEMPLATE_INCONSISTENT;
        goto out;
    }
    if ((rv = attr_list_set(&l, CKA_VALUE, val, len)) != CKR_OK ||
        (rv = attr_list_set_ulong(&l, CKA_VALUE_LEN, len)) != CKR_OK) {
        goto out;
    }
    rv = keygen_store(conn, sid, "derive", &l, oid, NULL, NULL);
out:
    derive_in_free(&in);
    util_free_wipe(val, len);
    free(merged);
    attr_list_free(&kept);
    attr_list_free(&l);
    return rv;
}

CK_RV hsm_derive_key(hsm_conn_t *conn, hsm_sid_t sid, const hsm_mech_t *mech,
                     hsm_oid_t base, const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                     hsm_oid_t *oid)
{
    HSM_CALL_SESSION(conn, sid);
    const mech_row_t *row;
    cops_params_t p;
    CK_RV rv;

    if ((rv = hsm_session_allowed(conn, sid, HSM_OP_KEY_MANAGEMENT)) !=
            CKR_OK ||
        (rv = keygen_row(conn->hsm, mech, CKF_DERIVE, &row, &p)) != CKR_OK) {
        return rv;
    }
    if (row->derive == MECH_DERIVE_ECDH) {
        return derive_ecdh(conn, sid, mech, base, tmpl, count, oid);
    }
    return derive_kdf(conn, sid, row, &p, base, tmpl, count, oid);
}
