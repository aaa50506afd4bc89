/*
 * ops.c - crypto operations (hsm.h "crypto operations") and the key cache.
 *
 * Locking: hsm->lock is held only to check the session and the policy, to
 * load and check the key, and to find or detach the session's operation
 * context; the crypto itself (init of the context, update, final, one-shot,
 * verify) runs without it, on a context that only this session uses (the
 * front end guarantees one call per session at a time, and no close during
 * a call). After the lock is dropped no pointer into the connection's
 * session array is kept: it may move when another thread opens a session.
 *
 * Choices: an update on a single-part mechanism (raw RSA, CKM_ECDSA,
 * CKM_EDDSA, any encryption or decryption) is CKR_FUNCTION_NOT_SUPPORTED and
 * ends the operation, as SoftHSM does: PKCS#11 defines these mechanisms as
 * single-part without naming the return value, and this is the code for
 * "this function is not available here". C_DigestKey leaves the digest
 * active when the key is refused (a bad argument) and ends it only when the
 * digest itself fails.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/crypto/cops.h"
#include "hsm/internal.h"
#include "hsm/mech.h"

/* ------------------------------------------------------------ key cache */

CK_RV hsm_keycache_get_locked(hsm_conn_t *conn, struct hsm_obj *o,
                              struct cops_key **key)
{
    hsm_t *hsm = conn->hsm;
    hsm_conn_t *owner = o->token ? NULL : conn;
    struct hsm_keycache_entry *victim = NULL;
    cops_key_t *k = NULL;
    CK_RV rv;

    *key = NULL;
    for (size_t i = 0; i < HSM_KEYCACHE_SIZE; i++) {
        struct hsm_keycache_entry *e = &hsm->kcache[i];

        if (e->key != NULL && e->conn == owner && e->oid == o->id) {
            e->used = ++hsm->kcache_clock;
            *key = cops_key_ref(e->key);
            return CKR_OK;
        }
        if (victim == NULL || (victim->key != NULL &&
                               (e->key == NULL || e->used < victim->used))) {
            victim = e;
        }
    }
    rv = cops_key_from_attrs(hsm_obj_attrs(o), &k);
    if (rv != CKR_OK) {
        return rv;
    }
    cops_key_unref(victim->key);
    victim->conn = owner;
    victim->oid = o->id;
    victim->key = k;
    victim->used = ++hsm->kcache_clock;
    *key = cops_key_ref(k);
    return CKR_OK;
}

/* Frees the kept operations whose key is object oid (only: the
 * connection of a session object; NULL: every connection), or every kept
 * operation (all). */
static void spares_drop_locked(hsm_t *hsm, hsm_conn_t *only, hsm_oid_t oid,
                               bool all)
{
    for (hsm_conn_t *c = hsm->conns; c != NULL; c = c->next) {
        if (only != NULL && c != only) {
            continue;
        }
        for (size_t i = 0; i < c->nsessions; i++) {
            struct hsm_session *s = &c->sessions[i];

            for (size_t k = 0; k < HSM_OPK_COUNT; k++) {
                if (s->spare[k] != NULL && (all || s->spare_oid[k] == oid)) {
                    cops_op_free(s->spare[k]);
                    s->spare[k] = NULL;
                    s->spare_oid[k] = 0;
                }
            }
        }
    }
}

/* Is the key of object oid (as seen by conn) still in the cache? A
 * destroyed object's entry is gone. */
static bool keycache_has_locked(hsm_conn_t *conn, hsm_oid_t oid)
{
    hsm_conn_t *owner = (oid & HSM_SESSION_OID_BIT) ? conn : NULL;

    for (size_t i = 0; i < HSM_KEYCACHE_SIZE; i++) {
        const struct hsm_keycache_entry *e = &conn->hsm->kcache[i];

        if (e->key != NULL && e->conn == owner && e->oid == oid) {
            return true;
        }
    }
    return false;
}

static void keycache_release(struct hsm_keycache_entry *e)
{
    cops_key_unref(e->key);
    memset(e, 0, sizeof(*e));
}

void hsm_keycache_drop_locked(hsm_t *hsm, hsm_conn_t *conn, hsm_oid_t oid)
{
    hsm_conn_t *owner = (oid & HSM_SESSION_OID_BIT) ? conn : NULL;

    if (oid != 0) {
        spares_drop_locked(hsm, owner, oid, false);
    }
    for (size_t i = 0; i < HSM_KEYCACHE_SIZE; i++) {
        struct hsm_keycache_entry *e = &hsm->kcache[i];

        if (e->key != NULL && e->conn == owner && e->oid == oid) {
            keycache_release(e);
        }
    }
}

void hsm_keycache_drop_conn_locked(hsm_t *hsm, hsm_conn_t *conn)
{
    for (size_t i = 0; i < HSM_KEYCACHE_SIZE; i++) {
        if (hsm->kcache[i].key != NULL && hsm->kcache[i].conn == conn) {
            keycache_release(&hsm->kcache[i]);
        }
    }
}

void hsm_keycache_clear_locked(hsm_t *hsm)
{
    spares_drop_locked(hsm, NULL, 0, true);
    for (size_t i = 0; i < HSM_KEYCACHE_SIZE; i++) {
        if (hsm->kcache[i].key != NULL) {
            keycache_release(&hsm->kcache[i]);
        }
    }
}

/* ------------------------------------------------------------ helpers */

void hsm_session_ops_free_locked(struct hsm_session *s)
{
    for (size_t i = 0; i < HSM_OPK_COUNT; i++) {
        cops_op_free(s->ops[i]);
        s->ops[i] = NULL;
        s->op_oid[i] = 0;
        cops_op_free(s->spare[i]);
        s->spare[i] = NULL;
        s->spare_oid[i] = 0;
    }
    for (size_t i = 0; i < 2; i++) {
        hsm_msgop_free(s->msg[i]);
        s->msg[i] = NULL;
    }
}

/* The row of the permission table for an operation kind. MACs (HMAC and
 * CMAC: a sign or verify kind on a secret key) are checked against the
 * digest row too. */
static hsm_op_t kind_policy(hsm_opkind_t kind, const mech_row_t *row)
{
    if (kind == HSM_OPK_DIGEST ||
        (row != NULL && row->size_bytes &&
         (kind == HSM_OPK_SIGN || kind == HSM_OPK_VERIFY))) {
        return HSM_OP_DIGEST_HMAC;
    }
    if (kind == HSM_OPK_ENCRYPT || kind == HSM_OPK_DECRYPT) {
        return HSM_OP_ENCRYPT_DECRYPT;
    }
    return HSM_OP_SIGN_VERIFY;
}

/* The usage attribute that must be TRUE for each kind. */
static const CK_ATTRIBUTE_TYPE kind_usage[HSM_OPK_COUNT] = {
    [HSM_OPK_ENCRYPT] = CKA_ENCRYPT,
    [HSM_OPK_DECRYPT] = CKA_DECRYPT,
    [HSM_OPK_SIGN] = CKA_SIGN,
    [HSM_OPK_VERIFY] = CKA_VERIFY,
    [HSM_OPK_DIGEST] = 0,
};

static bool is_key_class(CK_OBJECT_CLASS cls)
{
    return cls == CKO_PUBLIC_KEY || cls == CKO_PRIVATE_KEY ||
           cls == CKO_SECRET_KEY;
}

/* CKA_ALLOWED_MECHANISMS: empty or absent allows everything. */
static bool mech_allowed_by_key(const attr_list_t *l, CK_MECHANISM_TYPE type)
{
    const attr_t *a = attr_list_find(l, CKA_ALLOWED_MECHANISMS);
    size_t n;

    if (a == NULL || a->len < sizeof(CK_MECHANISM_TYPE)) {
        return true;
    }
    n = a->len / sizeof(CK_MECHANISM_TYPE);
    for (size_t i = 0; i < n; i++) {
        CK_MECHANISM_TYPE t;

        memcpy(&t, a->value + i * sizeof(t), sizeof(t));
        if (t == type) {
            return true;
        }
    }
    return false;
}

/*
 * (mech.h) Loads key oid for use with row: visibility, class and type, the
 * usage flag (usage: 0 to skip), CKA_ALLOWED_MECHANISMS and the size. On
 * success *key holds a reference; with o non-NULL the loaded object is left
 * there for the caller (to be cleared).
 */
CK_RV hsm_ops_key_locked(hsm_conn_t *conn, const mech_row_t *row, hsm_oid_t oid,
                         hsm_access_t access, CK_ATTRIBUTE_TYPE usage,
                         struct hsm_obj *o, cops_key_t **key)
{
    attr_list_t *l;
    CK_ULONG size;
    CK_RV rv;

    *key = NULL;
    rv = hsm_obj_get_locked(conn, oid, access, o);
    if (rv == CKR_OBJECT_HANDLE_INVALID) {
        return CKR_KEY_HANDLE_INVALID;
    }
    if (rv == CKR_ACTION_PROHIBITED) {
        return CKR_KEY_FUNCTION_NOT_PERMITTED;
    }
    if (rv != CKR_OK) {
        return rv;
    }
    l = hsm_obj_attrs(o);
    if (!is_key_class(attr_list_ulong(l, CKA_CLASS, CKO_DATA))) {
        return CKR_KEY_HANDLE_INVALID;
    }
    if (!mech_allows_key_type(
            row,
            attr_list_ulong(l, CKA_KEY_TYPE, CK_UNAVAILABLE_INFORMATION))) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    if (usage != 0 && !attr_list_bool(l, usage, false)) {
        return CKR_KEY_FUNCTION_NOT_PERMITTED;
    }
    if (!mech_allowed_by_key(l, row->type)) {
        return CKR_KEY_FUNCTION_NOT_PERMITTED;
    }
    if ((rv = hsm_keycache_get_locked(conn, o, key)) != CKR_OK) {
        return rv;
    }
    size = cops_key_size(*key);
    if (size < row->min_key || size > row->max_key) {
        cops_key_unref(*key);
        *key = NULL;
        return CKR_KEY_SIZE_RANGE;
    }
    return CKR_OK;
}

/* Session sid and its active operation of kind (left attached). */
static CK_RV op_get_locked(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                           struct hsm_session **s, cops_op_t **op)
{
    CK_RV rv;

    *op = NULL;
    if ((unsigned)kind >= HSM_OPK_COUNT) {
        return CKR_GENERAL_ERROR;
    }
    rv = hsm_begin_locked(conn, sid, kind_policy(kind, NULL), s);
    if (rv != CKR_OK) {
        return rv;
    }
    if ((*s)->ops[kind] == NULL) {
        return CKR_OPERATION_NOT_INITIALIZED;
    }
    *op = (*s)->ops[kind];
    return CKR_OK;
}

/* Detaches the operation: the caller owns it from now on; *oid the
 * object of its key. */
static CK_RV op_take(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                     cops_op_t **op, hsm_oid_t *oid)
{
    struct hsm_session *s;
    CK_RV rv;

    *oid = 0;
    pthread_mutex_lock(&conn->hsm->lock);
    rv = op_get_locked(conn, sid, kind, &s, op);
    if (rv == CKR_OK) {
        s->ops[kind] = NULL;
        *oid = s->op_oid[kind];
        s->op_oid[kind] = 0;
    }
    pthread_mutex_unlock(&conn->hsm->lock);
    return rv;
}

/* Gives a detached operation back to its session (CKR_BUFFER_TOO_SMALL),
 * or frees it when the session has gone. */
static void op_put_back(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        cops_op_t *op, hsm_oid_t oid)
{
    struct hsm_session *s;

    pthread_mutex_lock(&conn->hsm->lock);
    s = hsm_session_find_locked(conn, sid);
    if (s != NULL && s->ops[kind] == NULL) {
        s->ops[kind] = op;
        s->op_oid[kind] = oid;
        op = NULL;
    }
    pthread_mutex_unlock(&conn->hsm->lock);
    cops_op_free(op);
}

/*
 * Ends a detached operation. One that finished well and whose family can
 * be reset is kept as its session's spare for the next init of this kind
 * (see hsm_op_init_iv); anything else is freed. The key object may have
 * been destroyed while the operation ran (another session): the spare is
 * then dropped here rather than kept.
 */
static void op_retire(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                      cops_op_t *op, hsm_oid_t oid, CK_RV result)
{
    struct hsm_session *s;
    cops_op_t *old = NULL;

    if (result != CKR_OK || !cops_op_reusable(op)) {
        cops_op_free(op);
        return;
    }
    pthread_mutex_lock(&conn->hsm->lock);
    s = hsm_session_find_locked(conn, sid);
    if (s != NULL && (oid == 0 || keycache_has_locked(conn, oid))) {
        old = s->spare[kind];
        s->spare[kind] = op;
        s->spare_oid[kind] = oid;
        op = NULL;
    }
    pthread_mutex_unlock(&conn->hsm->lock);
    cops_op_free(old);
    cops_op_free(op);
}

/* Ends an operation still attached to its session, if it is op. */
static void op_end(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                   cops_op_t *op)
{
    struct hsm_session *s;
    bool ours = false;

    pthread_mutex_lock(&conn->hsm->lock);
    s = hsm_session_find_locked(conn, sid);
    if (s != NULL && s->ops[kind] == op) {
        s->ops[kind] = NULL;
        ours = true;
    }
    pthread_mutex_unlock(&conn->hsm->lock);
    if (ours) {
        cops_op_free(op);
    }
}

/* ------------------------------------------------------------ hsm.h */

CK_RV hsm_op_init(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                  const CK_MECHANISM *mech, hsm_oid_t key)
{
    uint8_t iv[COPS_IV_MAX];
    size_t ivlen = 0;

    return hsm_op_init_iv(conn, sid, kind, mech, key, iv, sizeof(iv), &ivlen);
}

CK_RV hsm_op_init_iv(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                     const CK_MECHANISM *mech, hsm_oid_t key, uint8_t *iv,
                     size_t ivroom, size_t *ivlen)
{
    hsm_t *hsm = conn->hsm;
    const mech_row_t *row;
    struct hsm_session *s;
    struct hsm_obj o;
    cops_key_t *ck = NULL;
    cops_op_t *op = NULL, *spare = NULL;
    hsm_oid_t oid = kind != HSM_OPK_DIGEST ? key : 0;
    cops_params_t p;
    CK_RV rv;

    return_val_if_fail((unsigned)kind < HSM_OPK_COUNT, CKR_GENERAL_ERROR);
    return_val_if_fail(mech != NULL && ivlen != NULL, CKR_GENERAL_ERROR);
    *ivlen = 0;
    memset(&o, 0, sizeof(o));
    row = mech_find_enabled(hsm, mech->mechanism);
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_begin_locked(conn, sid, kind_policy(kind, row), &s)) !=
        CKR_OK) {
        goto out;
    }
    if (s->ops[kind] != NULL) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (row == NULL || row->impl == NULL ||
        (row->flags & mech_kind_flag(kind)) == 0) {
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    if (kind != HSM_OPK_DIGEST &&
        (rv = hsm_ops_key_locked(conn, row, key, HSM_ACCESS_USE,
                                 kind_usage[kind], &o, &ck)) != CKR_OK) {
        goto out;
    }
    if ((rv = mech_check_params(row, mech, &p)) != CKR_OK) {
        goto out;
    }
    spare = s->spare[kind];
    s->spare[kind] = NULL;
    s->spare_oid[kind] = 0;
    pthread_mutex_unlock(&hsm->lock);
    hsm_obj_clear(&o);

    /* The context is made outside the lock (it may fetch algorithms). */
    if (kind != HSM_OPK_ENCRYPT) {
        p.iv_generate = false; /* only encryption makes an IV */
    }
    /* The session's last operation of this kind, same family and the same
     * parsed key: reset rather than rebuilt. Any failure of the reset
     * falls back to a new op, which gives the authoritative answer. */
    if (spare != NULL && cops_op_impl(spare) == row->impl &&
        cops_op_key(spare) == ck && cops_op_reuse(spare, &p) == CKR_OK) {
        op = spare;
        spare = NULL;
    }
    cops_op_free(spare);
    if (op == NULL &&
        (rv = cops_op_new(row->impl, kind, ck, &p, &op)) != CKR_OK) {
        goto done;
    }
    *ivlen = cops_op_iv(op, iv, ivroom);
    if (*ivlen > ivroom) {
        rv = CKR_GENERAL_ERROR; /* the front end gives room for 12 bytes */
        goto done;
    }
    pthread_mutex_lock(&hsm->lock);
    s = hsm_session_find_locked(conn, sid);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
    } else if (s->ops[kind] != NULL) {
        rv = CKR_OPERATION_ACTIVE;
    } else {
        s->ops[kind] = op;
        s->op_oid[kind] = oid;
        op = NULL;
    }
out:
    pthread_mutex_unlock(&hsm->lock);
    hsm_obj_clear(&o);
done:
    cops_op_free(op);
    cops_key_unref(ck);
    return rv;
}

CK_RV hsm_op_output_len(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        bool final, size_t inlen, size_t *outlen)
{
    struct hsm_session *s;
    cops_op_t *op;
    CK_RV rv;

    *outlen = 0;
    pthread_mutex_lock(&conn->hsm->lock);
    rv = op_get_locked(conn, sid, kind, &s, &op);
    if (rv == CKR_OK) {
        rv = cops_op_output_len(op, final, inlen, outlen);
    }
    pthread_mutex_unlock(&conn->hsm->lock);
    return rv;
}

CK_RV hsm_op_oneshot(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                     const uint8_t *in, size_t inlen, uint8_t *out,
                     size_t *outlen)
{
    cops_op_t *op;
    hsm_oid_t oid;
    CK_RV rv;

    if (kind == HSM_OPK_VERIFY) {
        return CKR_GENERAL_ERROR; /* hsm_op_verify */
    }
    if ((rv = op_take(conn, sid, kind, &op, &oid)) != CKR_OK) {
        return rv;
    }
    rv = cops_op_oneshot(op, in, inlen, out, outlen);
    if (rv == CKR_BUFFER_TOO_SMALL) {
        op_put_back(conn, sid, kind, op, oid);
    } else {
        op_retire(conn, sid, kind, op, oid, rv);
    }
    return rv;
}

CK_RV hsm_op_update(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                    const uint8_t *in, size_t inlen, uint8_t *out,
                    size_t *outlen)
{
    struct hsm_session *s;
    cops_op_t *op;
    size_t none = 0;
    CK_RV rv;

    if (outlen == NULL) {
        outlen = &none;
    }
    pthread_mutex_lock(&conn->hsm->lock);
    rv = op_get_locked(conn, sid, kind, &s, &op);
    pthread_mutex_unlock(&conn->hsm->lock);
    if (rv != CKR_OK) {
        *outlen = 0;
        return rv;
    }
    if (kind == HSM_OPK_ENCRYPT || kind == HSM_OPK_DECRYPT) {
        rv = cops_op_update_out(op, in, inlen, out, outlen);
    } else {
        *outlen = 0;
        rv = cops_op_update(op, in, inlen);
    }
    if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL) {
        op_end(conn, sid, kind, op);
    }
    return rv;
}

CK_RV hsm_op_final(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                   uint8_t *out, size_t *outlen)
{
    cops_op_t *op;
    hsm_oid_t oid;
    CK_RV rv;

    if (kind == HSM_OPK_VERIFY) {
        return CKR_GENERAL_ERROR; /* hsm_op_verify */
    }
    if ((rv = op_take(conn, sid, kind, &op, &oid)) != CKR_OK) {
        return rv;
    }
    rv = cops_op_final(op, out, outlen);
    if (rv == CKR_BUFFER_TOO_SMALL) {
        op_put_back(conn, sid, kind, op, oid);
    } else {
        op_retire(conn, sid, kind, op, oid, rv);
    }
    return rv;
}

CK_RV hsm_op_verify(hsm_conn_t *conn, hsm_sid_t sid, const uint8_t *data,
                    size_t datalen, bool oneshot, const uint8_t *sig,
                    size_t siglen)
{
    cops_op_t *op;
    hsm_oid_t oid;
    CK_RV rv;

    if ((rv = op_take(conn, sid, HSM_OPK_VERIFY, &op, &oid)) != CKR_OK) {
        return rv;
    }
    rv = cops_op_verify(op, data, datalen, oneshot, sig, siglen);
    op_retire(conn, sid, HSM_OPK_VERIFY, op, oid, rv);
    return rv;
}

CK_RV hsm_op_digest_key(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t key)
{
    struct hsm_session *s;
    struct hsm_obj o;
    cops_op_t *op = NULL;
    uint8_t *val = NULL;
    size_t len = 0;
    const attr_t *a;
    CK_RV rv;

    memset(&o, 0, sizeof(o));
    pthread_mutex_lock(&conn->hsm->lock);
    if ((rv = op_get_locked(conn, sid, HSM_OPK_DIGEST, &s, &op)) != CKR_OK) {
        goto out;
    }
    rv = hsm_obj_get_locked(conn, key, HSM_ACCESS_USE, &o);
    if (rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_ACTION_PROHIBITED) {
        rv = CKR_KEY_HANDLE_INVALID;
    }
    if (rv != CKR_OK) {
        goto out;
    }
    a = attr_list_find(hsm_obj_attrs(&o), CKA_VALUE);
    if (attr_list_ulong(hsm_obj_attrs(&o), CKA_CLASS, CKO_DATA) !=
            CKO_SECRET_KEY ||
        a == NULL) {
        rv = CKR_KEY_INDIGESTIBLE;
        goto out;
    }
    if (a->len > 0) {
        val = malloc(a->len);
        if (val == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        memcpy(val, a->value, a->len);
        len = a->len;
    }
out:
    pthread_mutex_unlock(&conn->hsm->lock);
    hsm_obj_clear(&o);
    if (rv != CKR_OK) {
        return rv;
    }
    rv = cops_op_update(op, val, len);
    util_free_wipe(val, len);
    if (rv != CKR_OK) {
        op_end(conn, sid, HSM_OPK_DIGEST, op);
    }
    return rv;
}

void hsm_op_abort(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind)
{
    struct hsm_session *s;
    cops_op_t *op = NULL;

    if ((unsigned)kind >= HSM_OPK_COUNT) {
        return;
    }
    pthread_mutex_lock(&conn->hsm->lock);
    s = hsm_session_find_locked(conn, sid);
    if (s != NULL) {
        op = s->ops[kind];
        s->ops[kind] = NULL;
    }
    pthread_mutex_unlock(&conn->hsm->lock);
    cops_op_free(op);
}
