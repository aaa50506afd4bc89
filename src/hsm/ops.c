/*
 * ops.c - crypto operations (hsm.h "crypto operations") and the key cache.
 *
 * Locking: a session's operations live in its struct hsm_sops, on the heap
 * and under its own mutex (mu), which only that session's calls take, bar
 * the rare events of other threads (a key destroyed, logout): two sessions'
 * calls share no lock. The session's calls find it without hsm->lock
 * through the connection's fast slots (the call gate below lets one call
 * per session in at a time and makes a close wait for it, so the sops of
 * the calling session cannot go away under it). The policy and key checks
 * are made under hsm->lock; their verdicts are kept in the sops with the
 * generation (hsm->gen) they were made at, and reused while it has not moved:
 * an init on the same session-object key and mechanism as the session's last
 * one, and the calls of an operation, then take no shared lock. Token-object
 * keys are checked under hsm->lock at every init (another process may change
 * them). Order: hsm->lock -> mu; a thread holding mu never waits for hsm->lock.
 * The crypto itself runs with no lock, on a context detached from the sops;
 * only the reset of the session's kept context at an init (new IV or key
 * state, no fetch) runs under its mu.
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
            e->uid = conn->uid;
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
    if (o->sobj != NULL) {
        o->sobj->keyed = true;
    }
    cops_key_unref(victim->key);
    victim->conn = owner;
    victim->uid = conn->uid;
    victim->oid = o->id;
    victim->key = k;
    victim->used = ++hsm->kcache_clock;
    *key = cops_key_ref(k);
    return CKR_OK;
}

/* ------------------------------------------------------------ sops */

/* The last verdict of an init of one kind (mu). */
struct sops_verdict {
    uint64_t gen; /* 0: none */
    hsm_oid_t oid;
    CK_MECHANISM_TYPE mech;
    const mech_row_t *row; /* of mech (the table does not change) */
    cops_key_t *key;       /* a reference; NULL for digests */
    bool always_auth;      /* the key's CKA_ALWAYS_AUTHENTICATE */
};

struct hsm_sops {
    pthread_mutex_t mu;
    hsm_sid_t sid;
    /* The crypto context of each active operation (NULL: none). */
    cops_op_t *ops[HSM_OPK_COUNT];
    hsm_oid_t op_oid[HSM_OPK_COUNT]; /* the object of its key (0: none) */
    /* The last finished operation of each kind, kept so that the next init
     * with the same family and key resets it instead of building a new one
     * (NULL: none), and the object of its key. Freed with the session's
     * operations and when that object is destroyed. */
    cops_op_t *spare[HSM_OPK_COUNT];
    hsm_oid_t spare_oid[HSM_OPK_COUNT];
    /* The generation at which the policy allowed each hsm_op_t (0: not
     * known), and the verdict of the last init of each kind. */
    uint64_t pol_gen[HSM_OP_COUNT];
    struct sops_verdict v[HSM_OPK_COUNT];
    /* CKA_ALWAYS_AUTHENTICATE: the active operation of each kind needs a
     * context-specific login (auth_need) and has had it (auth_ok); both
     * set by its init, so each operation needs its own. */
    bool auth_need[HSM_OPK_COUNT];
    bool auth_ok[HSM_OPK_COUNT];
    /* The connection's login sequence when each operation began. */
    uint64_t op_seq[HSM_OPK_COUNT];
    /* The call gate (conn->gmu): a call holds the session; a close has
     * begun. */
    bool busy;
    bool closing;
};

static uint64_t gen_now(hsm_t *hsm)
{
    return __atomic_load_n(&hsm->gen, __ATOMIC_ACQUIRE);
}

void hsm_gen_bump_locked(hsm_t *hsm)
{
    __atomic_add_fetch(&hsm->gen, 1, __ATOMIC_ACQ_REL);
}

static void verdict_clear(struct sops_verdict *v)
{
    cops_key_unref(v->key);
    memset(v, 0, sizeof(*v));
}

CK_RV hsm_session_ops_new_locked(hsm_conn_t *conn, struct hsm_session *s)
{
    struct hsm_sops *x = calloc(1, sizeof(*x));
    size_t slot = (size_t)(s->id % HSM_FAST_SLOTS);

    if (x == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (util_mutex_init(&x->mu) != 0) {
        free(x);
        return CKR_HOST_MEMORY;
    }
    x->sid = s->id;
    s->x = x;
    pthread_mutex_lock(&conn->gmu);
    if (__atomic_load_n(&conn->fast_sid[slot], __ATOMIC_RELAXED) == 0) {
        __atomic_store_n(&conn->fast[slot], x, __ATOMIC_RELEASE);
        __atomic_store_n(&conn->fast_sid[slot], s->id, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&conn->gmu);
    return CKR_OK;
}

void hsm_session_ops_release_locked(hsm_conn_t *conn, struct hsm_session *s)
{
    size_t slot;

    hsm_session_ops_free_locked(s);
    if (s->x == NULL) {
        return;
    }
    slot = (size_t)(s->x->sid % HSM_FAST_SLOTS);
    /* The gate finds sessions through the slots under gmu: after this no
     * call can reach x, and none holds it (close and hsm_conn_close have
     * waited). */
    pthread_mutex_lock(&conn->gmu);
    if (__atomic_load_n(&conn->fast_sid[slot], __ATOMIC_RELAXED) ==
        s->x->sid) {
        __atomic_store_n(&conn->fast_sid[slot], 0, __ATOMIC_RELEASE);
        __atomic_store_n(&conn->fast[slot], NULL, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&conn->gmu);
    pthread_mutex_destroy(&s->x->mu);
    free(s->x);
    s->x = NULL;
}

/*
 * The operations of session sid, found without hsm->lock, or NULL (not in
 * a fast slot). Only the session's own calls may use this: a slot naming
 * sid can change only when that session closes, which its call excludes.
 */
static struct hsm_sops *sops_fast(hsm_conn_t *conn, hsm_sid_t sid)
{
    size_t slot = (size_t)(sid % HSM_FAST_SLOTS);

    if (sid == 0 ||
        __atomic_load_n(&conn->fast_sid[slot], __ATOMIC_ACQUIRE) != sid) {
        return NULL;
    }
    return __atomic_load_n(&conn->fast[slot], __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------ call gate */

void (*hsm_call_hook)(hsm_conn_t *conn, hsm_sid_t sid);

/* The connection of the call this thread is in (NULL: none), so that the
 * audit records a call makes, wherever they are written, name its peer. */
static _Thread_local hsm_conn_t *call_current;

const char *hsm_call_peer_locked(void)
{
    return call_current != NULL ? call_current->peer : "";
}

hsm_conn_t *hsm_call_peer_swap(hsm_conn_t *conn)
{
    hsm_conn_t *prev = call_current;

    call_current = conn;
    return prev;
}

/* Session sid's operations for the gate (gmu held on return), or NULL.
 * A session found under hsm->lock cannot be freed before gmu is let go:
 * freeing it takes hsm->lock, then gmu. */
static struct hsm_sops *gate_find(hsm_conn_t *conn, hsm_sid_t sid)
{
    struct hsm_session *s;
    struct hsm_sops *x;

    pthread_mutex_lock(&conn->gmu);
    x = sops_fast(conn, sid);
    if (x != NULL || sid == 0) {
        return x;
    }
    pthread_mutex_unlock(&conn->gmu);
    pthread_mutex_lock(&conn->hsm->lock);
    s = hsm_session_find_locked(conn, sid);
    pthread_mutex_lock(&conn->gmu);
    x = s != NULL ? s->x : NULL;
    pthread_mutex_unlock(&conn->hsm->lock);
    return x;
}

CK_RV hsm_call_enter(struct hsm_call *c, hsm_conn_t *conn, bool session,
                     hsm_sid_t sid)
{
    struct hsm_sops *x = NULL;
    CK_RV rv = CKR_OK;

    c->conn = NULL;
    c->x = NULL;
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    if (session) {
        x = gate_find(conn, sid);
    } else {
        pthread_mutex_lock(&conn->gmu);
    }
    if (conn->closing) {
        rv = session ? CKR_SESSION_HANDLE_INVALID : CKR_DEVICE_REMOVED;
    } else if (session && (x == NULL || x->closing)) {
        rv = CKR_SESSION_HANDLE_INVALID;
    } else if (session && x->busy) {
        rv = CKR_OPERATION_ACTIVE;
    } else {
        if (x != NULL) {
            x->busy = true;
        }
        conn->calls++;
        c->conn = conn;
        c->x = x;
        c->prev = hsm_call_peer_swap(conn);
    }
    pthread_mutex_unlock(&conn->gmu);
    if (rv == CKR_OK && session && hsm_call_hook != NULL) {
        hsm_call_hook(conn, sid);
    }
    return rv;
}

void hsm_call_leave(struct hsm_call *c)
{
    hsm_conn_t *conn = c->conn;
    bool wake;

    if (conn == NULL) {
        return;
    }
    pthread_mutex_lock(&conn->gmu);
    wake = conn->closing;
    if (c->x != NULL) {
        c->x->busy = false;
        wake = wake || c->x->closing;
    }
    conn->calls--;
    if (wake) {
        pthread_cond_broadcast(&conn->gcv);
    }
    pthread_mutex_unlock(&conn->gmu);
    (void)hsm_call_peer_swap(c->prev);
    c->conn = NULL;
    c->x = NULL;
}

CK_RV hsm_call_enter_close(struct hsm_call *c, hsm_conn_t *conn, hsm_sid_t sid)
{
    struct hsm_sops *x;
    CK_RV rv = CKR_OK;

    c->conn = NULL;
    c->x = NULL;
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    x = gate_find(conn, sid);
    if (conn->closing || x == NULL || x->closing) {
        rv = CKR_SESSION_HANDLE_INVALID;
    } else {
        x->closing = true;
        conn->calls++;
        c->conn = conn;
        c->prev = hsm_call_peer_swap(conn);
        while (x->busy) {
            pthread_cond_wait(&conn->gcv, &conn->gmu);
        }
    }
    pthread_mutex_unlock(&conn->gmu);
    return rv;
}

bool hsm_sessions_busy_gated(hsm_conn_t *conn)
{
    for (size_t i = 0; i < conn->nsessions; i++) {
        if (conn->sessions[i].used && conn->sessions[i].x != NULL &&
            conn->sessions[i].x->busy) {
            return true;
        }
    }
    return false;
}

/* Frees the kept operations and verdicts whose key is object oid (only:
 * the connection of a session object; NULL: every connection), or all of
 * them (all). */
static void spares_drop_locked(hsm_t *hsm, hsm_conn_t *only, hsm_oid_t oid,
                               bool all)
{
    for (hsm_conn_t *c = hsm->conns; c != NULL; c = c->next) {
        if (only != NULL && c != only) {
            continue;
        }
        for (size_t i = 0; i < c->nsessions; i++) {
            struct hsm_sops *x = c->sessions[i].x;

            if (!c->sessions[i].used || x == NULL) {
                continue;
            }
            pthread_mutex_lock(&x->mu);
            for (size_t k = 0; k < HSM_OPK_COUNT; k++) {
                if (x->spare[k] != NULL && (all || x->spare_oid[k] == oid)) {
                    cops_op_free(x->spare[k]);
                    x->spare[k] = NULL;
                    x->spare_oid[k] = 0;
                }
                if (x->v[k].gen != 0 && (all || x->v[k].oid == oid)) {
                    verdict_clear(&x->v[k]);
                }
            }
            pthread_mutex_unlock(&x->mu);
        }
    }
}

static void keycache_release(struct hsm_keycache_entry *e)
{
    cops_key_unref(e->key);
    memset(e, 0, sizeof(*e));
}

void hsm_keycache_drop_locked(hsm_t *hsm, hsm_conn_t *conn, hsm_oid_t oid)
{
    hsm_conn_t *owner = (oid & HSM_SESSION_OID_BIT) ? conn : NULL;

    hsm_gen_bump_locked(hsm);
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
    hsm_gen_bump_locked(hsm);
    for (size_t i = 0; i < HSM_KEYCACHE_SIZE; i++) {
        if (hsm->kcache[i].key != NULL && hsm->kcache[i].conn == conn) {
            keycache_release(&hsm->kcache[i]);
        }
    }
}

void hsm_keycache_drop_user_locked(hsm_t *hsm, hsm_uid_t uid)
{
    hsm_gen_bump_locked(hsm);
    for (size_t i = 0; i < HSM_KEYCACHE_SIZE; i++) {
        struct hsm_keycache_entry *e = &hsm->kcache[i];

        if (e->key != NULL && e->conn == NULL && e->uid == uid) {
            keycache_release(e);
        }
    }
}

void hsm_keycache_clear_locked(hsm_t *hsm)
{
    hsm_gen_bump_locked(hsm);
    spares_drop_locked(hsm, NULL, 0, true);
    for (size_t i = 0; i < HSM_KEYCACHE_SIZE; i++) {
        if (hsm->kcache[i].key != NULL) {
            keycache_release(&hsm->kcache[i]);
        }
    }
}

/* ------------------------------------------------------------ helpers */

uint64_t hsm_conn_login_seq(hsm_conn_t *conn)
{
    return __atomic_load_n(&conn->login_seq, __ATOMIC_ACQUIRE);
}

/* The kept contexts and verdicts of x (x->mu held): what a session keeps
 * between operations. */
static void sops_forget(struct hsm_sops *x)
{
    for (size_t i = 0; i < HSM_OPK_COUNT; i++) {
        cops_op_free(x->spare[i]);
        x->spare[i] = NULL;
        x->spare_oid[i] = 0;
        verdict_clear(&x->v[i]);
    }
    memset(x->pol_gen, 0, sizeof(x->pol_gen));
}

void hsm_session_ops_forget_locked(struct hsm_session *s)
{
    struct hsm_sops *x = s->x;

    if (x == NULL) {
        return;
    }
    pthread_mutex_lock(&x->mu);
    sops_forget(x);
    pthread_mutex_unlock(&x->mu);
}

void hsm_session_ops_free_locked(struct hsm_session *s)
{
    struct hsm_sops *x = s->x;

    if (x != NULL) {
        pthread_mutex_lock(&x->mu);
        for (size_t i = 0; i < HSM_OPK_COUNT; i++) {
            cops_op_free(x->ops[i]);
            x->ops[i] = NULL;
            x->op_oid[i] = 0;
        }
        sops_forget(x);
        pthread_mutex_unlock(&x->mu);
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
    rv = hsm_key_get_locked(conn, oid, access, o);
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
    /* A key that wraps and decrypts (or unwraps and encrypts) from before
     * key separation, or from while it was off, does not wrap (unwrap). */
    if (usage != 0 && conn->hsm->cfg.key_separation &&
        attrs_separation_blocks(l, usage)) {
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

/*
 * The operations of session sid once its user may do op: on CKR_OK, *xp
 * with its mu held and *gen the generation of the verdict. Without
 * hsm->lock when the verdict is known at the current generation.
 */
static CK_RV sops_enter(hsm_conn_t *conn, hsm_sid_t sid, hsm_op_t op,
                        struct hsm_sops **xp, uint64_t *gen)
{
    hsm_t *hsm = conn->hsm;
    struct hsm_sops *x = sops_fast(conn, sid);
    struct hsm_session *s;
    uint64_t g;
    CK_RV rv;

    *xp = NULL;
    if (x != NULL) {
        pthread_mutex_lock(&x->mu);
        g = gen_now(hsm);
        if (x->pol_gen[op] == g) {
            *xp = x;
            *gen = g;
            return CKR_OK;
        }
        pthread_mutex_unlock(&x->mu);
    }
    pthread_mutex_lock(&hsm->lock);
    g = gen_now(hsm); /* bumped only under the lock: stable here */
    rv = hsm_begin_locked(conn, sid, op, &s);
    if (rv == CKR_OK) {
        x = s->x;
        pthread_mutex_lock(&x->mu);
        x->pol_gen[op] = g;
        *xp = x;
        *gen = g;
    }
    pthread_mutex_unlock(&hsm->lock);
    return rv;
}

CK_RV hsm_session_allowed(hsm_conn_t *conn, hsm_sid_t sid, hsm_op_t op)
{
    struct hsm_sops *x;
    uint64_t g;
    CK_RV rv;

    rv = sops_enter(conn, sid, op, &x, &g);
    if (rv == CKR_OK)
        pthread_mutex_unlock(&x->mu);
    return rv;
}

/* Random bytes: the policy's verdict is kept like an operation's, so two
 * sessions draw without a shared lock (the DRBGs are per thread). */
CK_RV hsm_random(hsm_conn_t *conn, hsm_sid_t sid, uint8_t *buf, size_t len)
{
    HSM_CALL_SESSION(conn, sid);
    CK_RV rv = hsm_session_allowed(conn, sid, HSM_OP_RANDOM);

    if (rv != CKR_OK)
        return rv;
    return crypto_random(buf, len);
}

/* The operations of session sid for an abort (mu held), or NULL. */
static struct hsm_sops *sops_find(hsm_conn_t *conn, hsm_sid_t sid)
{
    struct hsm_sops *x = sops_fast(conn, sid);
    struct hsm_session *s;

    if (x == NULL) {
        pthread_mutex_lock(&conn->hsm->lock);
        s = hsm_session_find_locked(conn, sid);
        if (s != NULL) {
            x = s->x;
            pthread_mutex_lock(&x->mu);
        }
        pthread_mutex_unlock(&conn->hsm->lock);
        return x;
    }
    pthread_mutex_lock(&x->mu);
    return x;
}

/* Session sid and its active operation of kind (left attached, mu held on
 * CKR_OK). */
static CK_RV op_get(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                    struct hsm_sops **xp, cops_op_t **op, uint64_t *gen)
{
    CK_RV rv;

    *op = NULL;
    if ((unsigned)kind >= HSM_OPK_COUNT) {
        return CKR_GENERAL_ERROR;
    }
    rv = sops_enter(conn, sid, kind_policy(kind, NULL), xp, gen);
    if (rv != CKR_OK) {
        return rv;
    }
    if ((*xp)->ops[kind] == NULL) {
        pthread_mutex_unlock(&(*xp)->mu);
        *xp = NULL;
        return CKR_OPERATION_NOT_INITIALIZED;
    }
    /* A key that must be authenticated for each use: no call of the
     * operation (not even a length query) before C_Login(
     * CKU_CONTEXT_SPECIFIC); the caller's error path ends it. */
    if (((*xp)->auth_need[kind] && !(*xp)->auth_ok[kind]) ||
        (*xp)->op_seq[kind] != hsm_conn_login_seq(conn)) {
        pthread_mutex_unlock(&(*xp)->mu);
        *xp = NULL;
        return CKR_USER_NOT_LOGGED_IN;
    }
    *op = (*xp)->ops[kind];
    return CKR_OK;
}

/* Detaches the operation: the caller owns it from now on; *oid the
 * object of its key, *xp the session's operations (no lock held). */
static CK_RV op_take(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                     struct hsm_sops **xp, cops_op_t **op, hsm_oid_t *oid,
                     uint64_t *gen)
{
    CK_RV rv;

    *oid = 0;
    rv = op_get(conn, sid, kind, xp, op, gen);
    if (rv == CKR_OK) {
        (*xp)->ops[kind] = NULL;
        *oid = (*xp)->op_oid[kind];
        (*xp)->op_oid[kind] = 0;
        pthread_mutex_unlock(&(*xp)->mu);
    }
    return rv;
}

/* Gives a detached operation back to its session (CKR_BUFFER_TOO_SMALL).
 * x stays valid: the session cannot close during its own call. */
static void op_put_back(struct hsm_sops *x, hsm_opkind_t kind, cops_op_t *op,
                        hsm_oid_t oid)
{
    pthread_mutex_lock(&x->mu);
    if (x->ops[kind] == NULL) {
        x->ops[kind] = op;
        x->op_oid[kind] = oid;
        op = NULL;
    }
    pthread_mutex_unlock(&x->mu);
    cops_op_free(op);
}

/*
 * Ends a detached operation. One that finished well and whose family can
 * be reset is kept as its session's spare for the next init of this kind
 * (see hsm_op_init_iv); anything else is freed. When the generation moved
 * since the operation was taken (its key may have been destroyed
 * meanwhile, by another session) it is freed rather than kept: a destroy
 * bumps the generation before it drops the spares (under mu), so either
 * this sees the new generation or the destroy sees the spare.
 */
static void op_retire(hsm_conn_t *conn, struct hsm_sops *x,
                      hsm_opkind_t kind, cops_op_t *op, hsm_oid_t oid,
                      CK_RV result, uint64_t gen)
{
    cops_op_t *old = NULL;

    if (result != CKR_OK || !cops_op_reusable(op)) {
        cops_op_free(op);
        return;
    }
    pthread_mutex_lock(&x->mu);
    if (gen_now(conn->hsm) == gen) {
        old = x->spare[kind];
        x->spare[kind] = op;
        x->spare_oid[kind] = oid;
        op = NULL;
    }
    pthread_mutex_unlock(&x->mu);
    cops_op_free(old);
    cops_op_free(op);
}

/* Ends an operation still attached to its session, if it is op. */
static void op_end(struct hsm_sops *x, hsm_opkind_t kind, cops_op_t *op)
{
    bool ours = false;

    pthread_mutex_lock(&x->mu);
    if (x->ops[kind] == op) {
        x->ops[kind] = NULL;
        x->op_oid[kind] = 0;
        ours = true;
    }
    pthread_mutex_unlock(&x->mu);
    if (ours) {
        cops_op_free(op);
    }
}

/* ------------------------------------------------------------ hsm.h */

CK_RV hsm_ops_auth_pending_locked(struct hsm_session *s, bool *pending)
{
    struct hsm_sops *x = s->x;
    bool active = false;

    *pending = false;
    if (x == NULL)
        return CKR_OPERATION_NOT_INITIALIZED;
    pthread_mutex_lock(&x->mu);
    for (size_t k = 0; k < HSM_OPK_COUNT; k++) {
        if (x->ops[k] == NULL)
            continue;
        active = true;
        if (x->auth_need[k] && !x->auth_ok[k])
            *pending = true;
    }
    pthread_mutex_unlock(&x->mu);
    /* PKCS#11 3.0 (CKA_ALWAYS_AUTHENTICATE): a context-specific login on
     * an operation whose key does not need one is
     * CKR_OPERATION_NOT_INITIALIZED and leaves the operation as it was. */
    return active && *pending ? CKR_OK : CKR_OPERATION_NOT_INITIALIZED;
}

void hsm_ops_auth_grant_locked(struct hsm_session *s)
{
    struct hsm_sops *x = s->x;

    if (x == NULL)
        return;
    pthread_mutex_lock(&x->mu);
    for (size_t k = 0; k < HSM_OPK_COUNT; k++) {
        if (x->ops[k] != NULL && x->auth_need[k])
            x->auth_ok[k] = true;
    }
    pthread_mutex_unlock(&x->mu);
}

static CK_RV op_init_iv(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        const hsm_mech_t *mech, hsm_oid_t key, uint8_t *iv,
                        size_t ivroom, size_t *ivlen);

CK_RV hsm_op_init(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                  const hsm_mech_t *mech, hsm_oid_t key)
{
    uint8_t iv[COPS_IV_MAX];
    size_t ivlen = 0;

    HSM_CALL_SESSION(conn, sid);
    return op_init_iv(conn, sid, kind, mech, key, iv, sizeof(iv), &ivlen);
}

CK_RV hsm_op_init_iv(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                     const hsm_mech_t *mech, hsm_oid_t key, uint8_t *iv,
                     size_t ivroom, size_t *ivlen)
{
    HSM_CALL_SESSION(conn, sid);
    return op_init_iv(conn, sid, kind, mech, key, iv, ivroom, ivlen);
}

static CK_RV op_init_iv(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        const hsm_mech_t *mech, hsm_oid_t key, uint8_t *iv,
                        size_t ivroom, size_t *ivlen)
{
    hsm_t *hsm = conn->hsm;
    const mech_row_t *row;
    struct hsm_session *s;
    struct hsm_sops *x;
    struct sops_verdict *v;
    struct hsm_obj o;
    cops_key_t *ck = NULL;
    cops_op_t *op = NULL, *spare = NULL;
    hsm_oid_t oid = kind != HSM_OPK_DIGEST ? key : 0;
    hsm_op_t pol;
    cops_params_t p;
    bool locked = false, always_auth = false;
    uint64_t g, seq;
    CK_RV rv;

    return_val_if_fail((unsigned)kind < HSM_OPK_COUNT, CKR_GENERAL_ERROR);
    return_val_if_fail(mech != NULL && ivlen != NULL, CKR_GENERAL_ERROR);
    *ivlen = 0;
    memset(&o, 0, sizeof(o));
    /* Fast: the verdict of the session's last init of this kind, on the
     * same key and mechanism, still holds. */
    /* The login this operation belongs to: read before the generation
     * (hsm_login_end_locked bumps it first). */
    seq = hsm_conn_login_seq(conn);
    x = sops_fast(conn, sid);
    if (x != NULL) {
        pthread_mutex_lock(&x->mu);
        g = gen_now(hsm);
        v = &x->v[kind];
        row = v->row;
        pol = kind_policy(kind, row);
        if (row != NULL && v->gen == g && x->pol_gen[pol] == g &&
            v->oid == oid && v->mech == mech->type) {
            ck = v->key != NULL ? cops_key_ref(v->key) : NULL;
            always_auth = v->always_auth;
        } else {
            pthread_mutex_unlock(&x->mu);
            x = NULL;
        }
    }
    if (x == NULL) {
        row = mech_find_enabled(hsm, mech->type);
        pol = kind_policy(kind, row);
        pthread_mutex_lock(&hsm->lock);
        locked = true;
        g = gen_now(hsm); /* bumped only under the lock: stable here */
        if ((rv = hsm_begin_locked(conn, sid, pol, &s)) != CKR_OK) {
            goto out;
        }
        x = s->x;
        pthread_mutex_lock(&x->mu);
        x->pol_gen[pol] = g;
    }
    if (x->ops[kind] != NULL) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (row == NULL || row->impl == NULL ||
        (mech_flags(hsm, row) & mech_kind_flag(kind)) == 0) {
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    if (locked) {
        if (kind != HSM_OPK_DIGEST &&
            (rv = hsm_ops_key_locked(conn, row, key, HSM_ACCESS_USE,
                                     kind_usage[kind], &o, &ck)) != CKR_OK) {
            goto out;
        }
        always_auth = kind != HSM_OPK_DIGEST &&
                      attr_list_bool(hsm_obj_attrs(&o),
                                     CKA_ALWAYS_AUTHENTICATE, false);
        /* Kept for the next init: only a session object's verdict, which
         * nothing outside this process can change. */
        if (kind == HSM_OPK_DIGEST || (oid & HSM_SESSION_OID_BIT) != 0) {
            v = &x->v[kind];
            verdict_clear(v);
            v->gen = g;
            v->oid = oid;
            v->mech = mech->type;
            v->row = row;
            v->key = ck != NULL ? cops_key_ref(ck) : NULL;
            v->always_auth = always_auth;
        }
    }
    if ((rv = mech_check_params(row, mech, &p)) != CKR_OK) {
        goto out;
    }
    p.hold_max = hsm->cfg.aead_max_buffer;
    spare = x->spare[kind];
    x->spare[kind] = NULL;
    x->spare_oid[kind] = 0;
    if (locked) {
        pthread_mutex_unlock(&hsm->lock);
        locked = false;
    }
    hsm_obj_clear(&o);

    if (kind != HSM_OPK_ENCRYPT) {
        p.iv_generate = false; /* only encryption makes an IV */
    } else if (p.iv != NULL && !hsm->cfg.gcm_zero_iv_generate) {
        p.iv_generate = false; /* gcm_zero_iv = use: the zeros as given */
    }
    /* The session's last operation of this kind, same family and the same
     * parsed key: reset rather than rebuilt, still under mu (a reset is
     * short and mu is the session's own). Any failure of the reset falls
     * back to a new op, which gives the authoritative answer; that one is
     * made with no lock (it may fetch algorithms). */
    if (spare != NULL && cops_op_impl(spare) == row->impl &&
        cops_op_key(spare) == ck && cops_op_reuse(spare, &p) == CKR_OK) {
        op = spare;
        spare = NULL;
    } else {
        pthread_mutex_unlock(&x->mu);
        cops_op_free(spare);
        if ((rv = cops_op_new(row->impl, kind, ck, &p, &op)) != CKR_OK) {
            goto done;
        }
        /* x stays valid: the session cannot close during its own call. */
        pthread_mutex_lock(&x->mu);
    }
    *ivlen = cops_op_iv(op, iv, ivroom);
    if (*ivlen > ivroom) {
        rv = CKR_GENERAL_ERROR; /* the front end gives room for 12 bytes */
        pthread_mutex_unlock(&x->mu);
        goto done;
    }
    if (x->ops[kind] != NULL) {
        rv = CKR_OPERATION_ACTIVE;
    } else {
        x->ops[kind] = op;
        x->op_oid[kind] = oid;
        x->op_seq[kind] = seq;
        x->auth_need[kind] = always_auth;
        x->auth_ok[kind] = false;
        op = NULL;
    }
    pthread_mutex_unlock(&x->mu);
    goto done;
out:
    if (x != NULL) {
        pthread_mutex_unlock(&x->mu);
    }
    if (locked) {
        pthread_mutex_unlock(&hsm->lock);
    }
    hsm_obj_clear(&o);
done:
    cops_op_free(op);
    cops_key_unref(ck);
    return rv;
}

CK_RV hsm_op_output_len(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        bool final, size_t inlen, size_t *outlen)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_sops *x;
    cops_op_t *op;
    uint64_t g;
    CK_RV rv;

    *outlen = 0;
    rv = op_get(conn, sid, kind, &x, &op, &g);
    if (rv == CKR_OK) {
        rv = final ? cops_op_output_len(op, true, inlen, outlen)
                   : cops_op_update_len(op, inlen, outlen);
        pthread_mutex_unlock(&x->mu);
    }
    return rv;
}

CK_RV hsm_op_oneshot(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                     const uint8_t *in, size_t inlen, uint8_t *out,
                     size_t *outlen)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_sops *x;
    cops_op_t *op;
    hsm_oid_t oid;
    size_t need = 0;
    uint64_t g;
    CK_RV rv;

    if (kind == HSM_OPK_VERIFY) {
        return CKR_GENERAL_ERROR; /* hsm_op_verify */
    }
    if ((rv = op_take(conn, sid, kind, &x, &op, &oid, &g)) != CKR_OK) {
        return rv;
    }
    /* The two-call convention here, with the operation taken once. */
    if ((rv = cops_op_output_len(op, false, inlen, &need)) != CKR_OK) {
        op_retire(conn, x, kind, op, oid, rv, g); /* frees it */
        return rv;
    }
    if (out == NULL || *outlen < need) {
        *outlen = need;
        op_put_back(x, kind, op, oid);
        return out == NULL ? CKR_OK : CKR_BUFFER_TOO_SMALL;
    }
    rv = cops_op_oneshot(op, in, inlen, out, outlen);
    if (rv == CKR_BUFFER_TOO_SMALL) {
        op_put_back(x, kind, op, oid);
    } else {
        op_retire(conn, x, kind, op, oid, rv, g);
    }
    return rv;
}

CK_RV hsm_op_update(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                    const uint8_t *in, size_t inlen, uint8_t *out,
                    size_t *outlen)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_sops *x;
    cops_op_t *op;
    size_t none = 0;
    uint64_t g;
    CK_RV rv;

    if (outlen == NULL) {
        outlen = &none;
    }
    rv = op_get(conn, sid, kind, &x, &op, &g);
    if (rv != CKR_OK) {
        *outlen = 0;
        return rv;
    }
    pthread_mutex_unlock(&x->mu);
    if (kind == HSM_OPK_ENCRYPT || kind == HSM_OPK_DECRYPT) {
        rv = cops_op_update_out(op, in, inlen, out, outlen);
    } else {
        *outlen = 0;
        rv = cops_op_update(op, in, inlen);
    }
    if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL) {
        op_end(x, kind, op);
    }
    return rv;
}

CK_RV hsm_op_final(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                   uint8_t *out, size_t *outlen)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_sops *x;
    cops_op_t *op;
    hsm_oid_t oid;
    uint64_t g;
    CK_RV rv;

    if (kind == HSM_OPK_VERIFY) {
        return CKR_GENERAL_ERROR; /* hsm_op_verify */
    }
    if ((rv = op_take(conn, sid, kind, &x, &op, &oid, &g)) != CKR_OK) {
        return rv;
    }
    rv = cops_op_final(op, out, outlen);
    if (rv == CKR_BUFFER_TOO_SMALL) {
        op_put_back(x, kind, op, oid);
    } else {
        op_retire(conn, x, kind, op, oid, rv, g);
    }
    return rv;
}

CK_RV hsm_op_verify(hsm_conn_t *conn, hsm_sid_t sid, const uint8_t *data,
                    size_t datalen, bool oneshot, const uint8_t *sig,
                    size_t siglen)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_sops *x;
    cops_op_t *op;
    hsm_oid_t oid;
    uint64_t g;
    CK_RV rv;

    rv = op_take(conn, sid, HSM_OPK_VERIFY, &x, &op, &oid, &g);
    if (rv != CKR_OK) {
        return rv;
    }
    rv = cops_op_verify(op, data, datalen, oneshot, sig, siglen);
    op_retire(conn, x, HSM_OPK_VERIFY, op, oid, rv, g);
    return rv;
}

CK_RV hsm_op_digest_key(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t key)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_sops *x;
    struct hsm_obj o;
    cops_op_t *op = NULL;
    uint8_t *val = NULL;
    size_t len = 0;
    const attr_t *a;
    uint64_t g;
    CK_RV rv;

    memset(&o, 0, sizeof(o));
    if ((rv = op_get(conn, sid, HSM_OPK_DIGEST, &x, &op, &g)) != CKR_OK) {
        return rv;
    }
    /* The operation stays attached: only this session's calls use it. */
    pthread_mutex_unlock(&x->mu);
    pthread_mutex_lock(&conn->hsm->lock);
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
        op_end(x, HSM_OPK_DIGEST, op);
    }
    return rv;
}

void hsm_op_abort(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind)
{
    HSM_CALL_SESSION_VOID(conn, sid);
    struct hsm_sops *x;
    cops_op_t *op = NULL;

    if ((unsigned)kind >= HSM_OPK_COUNT) {
        return;
    }
    x = sops_find(conn, sid);
    if (x != NULL) {
        op = x->ops[kind];
        x->ops[kind] = NULL;
        x->op_oid[kind] = 0;
        pthread_mutex_unlock(&x->mu);
    }
    cops_op_free(op);
}
