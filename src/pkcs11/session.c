/*
 * session.c - sessions: C_OpenSession, C_CloseSession, C_CloseAllSessions,
 * C_GetSessionInfo, C_SessionCancel, random numbers and the legacy
 * parallel-function calls.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "pkcs11/mod.h"

/* ------------------------------------------------------------ helpers */

struct mod_session *mod_session_get_locked(CK_SESSION_HANDLE h)
{
    uint64_t v;

    /* nimbusd is down: no session is usable (mod_ret says why) */
    if (atomic_load(&mod_state.hsm_down)) {
        return NULL;
    }
    if (!mod_hmap_get(&mod_state.sessions, (uint64_t)h, &v)) {
        return NULL;
    }
    return (struct mod_session *)(uintptr_t)v;
}

size_t mod_session_count_locked(void)
{
    return mod_hmap_count(&mod_state.sessions);
}

void mod_find_end(struct mod_find *f)
{
    free(f->oids);
    memset(f, 0, sizeof(*f));
}

void mod_sessions_cancel_finds_locked(void)
{
    size_t pos = 0;
    uint64_t v;

    while (mod_hmap_next(&mod_state.sessions, &pos, NULL, &v)) {
        struct mod_session *s = (struct mod_session *)(uintptr_t)v;

        mod_find_end(&s->find);
    }
}

/* The last session of the application is gone: it is logged out. */
static void last_session_closed_locked(void)
{
    CK_RV rv = backend_logout(mod_state.conn);

    if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN) {
        log_warn("logout after the last session: %s", mod_rv_name(rv));
    }
    mod_handles_drop_locked();
}

static void session_free(struct mod_session *s)
{
    mod_find_end(&s->find);
    mod_hmap_free(&s->sobjs);
    mod_mutex_free(&s->mutex);
    free(s);
}

/* ------------------------------------------------------------ references */

void mod_session_ref_locked(struct mod_session *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void mod_session_unref_locked(struct mod_session *s)
{
    mod_session_unref(s);
}

void mod_session_unref(struct mod_session *s)
{
    /* The last reference frees: the table's own one is dropped when the
     * session is closed, so nothing can find it any more. */
    if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        session_free(s);
    }
}

CK_RV mod_session_lock(struct mod_session *s)
{
    CK_RV rv = mod_mutex_lock(&s->mutex);

    if (rv != CKR_OK) {
        return rv;
    }
    if (s->closed) {
        mod_mutex_unlock(&s->mutex);
        return CKR_SESSION_CLOSED;
    }
    return CKR_OK;
}

void mod_session_unlock(struct mod_session *s)
{
    mod_mutex_unlock(&s->mutex);
}

void mod_session_ops_abort(struct mod_session *s, CK_FLAGS which)
{
    static const struct {
        CK_FLAGS flag;
        hsm_opkind_t kind;
    } kinds[] = {
        {CKF_ENCRYPT, HSM_OPK_ENCRYPT}, {CKF_DECRYPT, HSM_OPK_DECRYPT},
        {CKF_SIGN, HSM_OPK_SIGN},       {CKF_VERIFY, HSM_OPK_VERIFY},
        {CKF_DIGEST, HSM_OPK_DIGEST},
    };

    static const struct {
        CK_FLAGS flag;
        hsm_msgkind_t kind;
    } msgs[] = {
        {CKF_MESSAGE_ENCRYPT, HSM_MSG_ENCRYPT},
        {CKF_MESSAGE_DECRYPT, HSM_MSG_DECRYPT},
    };
    size_t i;

    for (i = 0; i < UTIL_ARRAY_SIZE(kinds); i++) {
        if ((which & kinds[i].flag) != 0 &&
            s->ops[kinds[i].kind] != MOD_OPS_NONE) {
            backend_op_abort(mod_state.conn, s->sid, kinds[i].kind);
            s->ops[kinds[i].kind] = MOD_OPS_NONE;
        }
    }
    for (i = 0; i < UTIL_ARRAY_SIZE(msgs); i++) {
        if ((which & msgs[i].flag) != 0 &&
            s->msg[msgs[i].kind] != MOD_OPS_NONE) {
            backend_msg_abort(mod_state.conn, s->sid, msgs[i].kind);
            s->msg[msgs[i].kind] = MOD_OPS_NONE;
        }
    }
}

/* Every operation kind that runs under the session mutex. */
#define MOD_OPS_ALL                                                            \
    (CKF_ENCRYPT | CKF_DECRYPT | CKF_SIGN | CKF_VERIFY | CKF_DIGEST |          \
     CKF_MESSAGE_ENCRYPT | CKF_MESSAGE_DECRYPT)

void mod_sessions_ops_abort_locked(void)
{
    size_t pos = 0;
    uint64_t v;

    while (mod_hmap_next(&mod_state.sessions, &pos, NULL, &v)) {
        struct mod_session *s = (struct mod_session *)(uintptr_t)v;

        if (mod_mutex_lock(&s->mutex) != CKR_OK) {
            continue;
        }
        mod_session_ops_abort(s, MOD_OPS_ALL);
        mod_mutex_unlock(&s->mutex);
    }
}

/*
 * Closes s in the core once a call under way on it has finished (the
 * session mutex is taken under the library lock: order library ->
 * session). Marks it closed; the caller frees it or leaves it to the last
 * reference.
 */
static CK_RV session_shut_locked(struct mod_session *s, bool force)
{
    CK_RV rv = mod_mutex_lock(&s->mutex);

    if (rv != CKR_OK) {
        return rv;
    }
    mod_session_ops_abort(s, MOD_OPS_ALL);
    rv = backend_session_close(mod_state.conn, s->sid);
    if (rv == CKR_OK || force) {
        s->closed = true;
    }
    mod_mutex_unlock(&s->mutex);
    return rv;
}

CK_RV mod_session_close_locked(struct mod_session *s)
{
    CK_RV rv;

    rv = session_shut_locked(s, false);
    if (rv != CKR_OK) {
        return rv;
    }
    mod_hmap_del(&mod_state.sessions, (uint64_t)s->handle);
    mod_handles_drop_session_locked(s);
    if (s->rw) {
        mod_state.rw_sessions--;
    }
    mod_session_unref(s); /* the table's reference */
    if (mod_session_count_locked() == 0) {
        last_session_closed_locked();
    }
    return CKR_OK;
}

void mod_sessions_close_all_locked(void)
{
    size_t pos = 0;
    uint64_t v;

    if (mod_session_count_locked() == 0) {
        return;
    }
    /* Free every session, then empty the table (no change while walking). */
    while (mod_hmap_next(&mod_state.sessions, &pos, NULL, &v)) {
        struct mod_session *s = (struct mod_session *)(uintptr_t)v;
        /* Gone from the table either way. */
        CK_RV rv = session_shut_locked(s, true);

        if (rv != CKR_OK) {
            log_warn("closing session %lu: %s", s->handle, mod_rv_name(rv));
        }
        mod_session_unref(s); /* the table's reference */
    }
    mod_hmap_clear(&mod_state.sessions);
    mod_state.rw_sessions = 0;
    last_session_closed_locked();
}

/* ------------------------------------------------------------ sessions */

CK_RV mod_C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags,
                        CK_VOID_PTR pApplication, CK_NOTIFY Notify,
                        CK_SESSION_HANDLE_PTR phSession)
{
    struct mod_session *s = NULL;
    hsm_user_type_t who;
    bool rw = (flags & CKF_RW_SESSION) != 0;
    bool have_sid = false;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_OpenSession, rv);
    }
    if (slotID != MOD_SLOT_ID) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    if (phSession == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if ((flags & CKF_SERIAL_SESSION) == 0) {
        rv = CKR_SESSION_PARALLEL_NOT_SUPPORTED;
        goto out;
    }
    who = backend_conn_user_type(mod_state.conn, NULL);
    if (!rw && (who == HSM_USER_CO || who == HSM_USER_PRECO)) {
        rv = CKR_SESSION_READ_WRITE_SO_EXISTS;
        goto out;
    }
    if (mod_session_count_locked() >= mod_state.cfg.max_sessions) {
        rv = CKR_SESSION_COUNT;
        goto out;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    rv = mod_mutex_new(&s->mutex);
    if (rv != CKR_OK) {
        free(s);
        s = NULL;
        goto out;
    }
    rv = backend_session_open(mod_state.conn, rw, &s->sid);
    if (rv != CKR_OK) {
        goto out;
    }
    have_sid = true;
    s->refs = 1; /* the table's */
    s->handle = mod_state.next_session;
    s->rw = rw;
    s->application = pApplication;
    s->notify = Notify;
    rv = mod_hmap_put(&mod_state.sessions, (uint64_t)s->handle,
                      (uint64_t)(uintptr_t)s);
    if (rv != CKR_OK) {
        goto out;
    }
    mod_state.next_session++;
    if (rw) {
        mod_state.rw_sessions++;
    }
    *phSession = s->handle;
    s = NULL;
out:
    if (s != NULL) {
        if (have_sid) {
            (void)backend_session_close(mod_state.conn, s->sid);
        }
        mod_mutex_free(&s->mutex);
        free(s);
    }
    mod_leave();
    return mod_ret(MOD_FN_C_OpenSession, rv);
}

CK_RV mod_C_CloseSession(CK_SESSION_HANDLE hSession)
{
    struct mod_session *s;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_CloseSession, rv);
    }
    s = mod_session_get_locked(hSession);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    rv = mod_session_close_locked(s);
out:
    mod_leave();
    return mod_ret(MOD_FN_C_CloseSession, rv);
}

CK_RV mod_C_CloseAllSessions(CK_SLOT_ID slotID)
{
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_CloseAllSessions, rv);
    }
    if (slotID != MOD_SLOT_ID) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    mod_sessions_close_all_locked();
out:
    mod_leave();
    return mod_ret(MOD_FN_C_CloseAllSessions, rv);
}

CK_RV mod_C_GetSessionInfo(CK_SESSION_HANDLE hSession,
                           CK_SESSION_INFO_PTR pInfo)
{
    struct mod_session *s;
    CK_STATE state;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_GetSessionInfo, rv);
    }
    s = mod_session_get_locked(hSession);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    if (pInfo == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    switch (backend_conn_user_type(mod_state.conn, NULL)) {
    case HSM_USER_CU:
    case HSM_USER_AU:
        state = s->rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS;
        break;
    case HSM_USER_CO:
    case HSM_USER_PRECO:
        state = CKS_RW_SO_FUNCTIONS;
        break;
    case HSM_USER_NONE:
    default:
        state = s->rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION;
        break;
    }
    memset(pInfo, 0, sizeof(*pInfo));
    pInfo->slotID = MOD_SLOT_ID;
    pInfo->state = state;
    pInfo->flags = CKF_SERIAL_SESSION | (s->rw ? CKF_RW_SESSION : 0);
    pInfo->ulDeviceError = 0;
out:
    mod_leave();
    return mod_ret(MOD_FN_C_GetSessionInfo, rv);
}

/*
 * C_SessionCancel (3.0 section 5.6): ends the operations named in flags.
 * CKF_FIND_OBJECTS ends the search; CKF_ENCRYPT, CKF_DECRYPT, CKF_DIGEST,
 * CKF_SIGN, CKF_VERIFY and CKF_MESSAGE_ENCRYPT / _DECRYPT end the crypto
 * operation of that kind (one under way finishes first: the session
 * mutex). The other flags name operations this module never leaves active
 * (recover, message sign/verify, key management): nothing to do. An
 * operation that is not active is no error.
 */
CK_RV mod_C_SessionCancel(CK_SESSION_HANDLE hSession, CK_FLAGS flags)
{
    struct mod_session *s;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_SessionCancel, rv);
    }
    s = mod_session_get_locked(hSession);
    if (s == NULL) {
        mod_leave();
        return mod_ret(MOD_FN_C_SessionCancel, CKR_SESSION_HANDLE_INVALID);
    }
    if ((flags & CKF_FIND_OBJECTS) != 0) {
        mod_find_end(&s->find);
    }
    if ((flags & MOD_OPS_ALL) == 0) {
        mod_leave();
        return mod_ret(MOD_FN_C_SessionCancel, CKR_OK);
    }
    /* Wait for a call under way on the session without the library lock. */
    mod_session_ref_locked(s);
    mod_leave();
    rv = mod_session_lock(s);
    if (rv == CKR_OK) {
        mod_session_ops_abort(s, flags);
        mod_session_unlock(s);
    }
    mod_session_unref(s);
    return mod_ret(MOD_FN_C_SessionCancel, rv);
}

/* ------------------------------------------------------------ calls */

CK_RV mod_session_call_unlock(struct mod_session *s)
{
    CK_RV rv;

    mod_session_ref_locked(s);
    mod_leave();
    rv = mod_session_lock(s);
    if (rv != CKR_OK) {
        mod_session_unref(s);
    }
    return rv;
}

CK_RV mod_session_call_relock(struct mod_session *s)
{
    CK_RV rv;

    mod_session_unlock(s);
    rv = mod_enter();
    if (rv != CKR_OK) {
        mod_session_unref(s);
    }
    return rv;
}

/* ------------------------------------------------------------ random */

/* Like a crypto call: the library lock only to find the session. */
CK_RV mod_C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pRandomData,
                           CK_ULONG ulRandomLen)
{
    struct mod_session *s;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_GenerateRandom, rv);
    }
    s = mod_session_get_locked(hSession);
    if (s == NULL) {
        mod_leave();
        return mod_ret(MOD_FN_C_GenerateRandom, CKR_SESSION_HANDLE_INVALID);
    }
    if (pRandomData == NULL && ulRandomLen > 0) {
        mod_leave();
        return mod_ret(MOD_FN_C_GenerateRandom, CKR_ARGUMENTS_BAD);
    }
    rv = mod_session_call_unlock(s);
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_GenerateRandom, rv);
    }
    if (ulRandomLen > 0) {
        rv = backend_random(mod_state.conn, s->sid, pRandomData,
                            (size_t)ulRandomLen);
    }
    mod_session_unlock(s);
    mod_session_unref(s);
    return mod_ret(MOD_FN_C_GenerateRandom, rv);
}

CK_RV mod_C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed,
                       CK_ULONG ulSeedLen)
{
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_SeedRandom, rv);
    }
    if (mod_session_get_locked(hSession) == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    if (pSeed == NULL && ulSeedLen > 0) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    rv = CKR_RANDOM_SEED_NOT_SUPPORTED;
out:
    mod_leave();
    return mod_ret(MOD_FN_C_SeedRandom, rv);
}

/* ------------------------------------------------------------ legacy */

static CK_RV not_parallel(enum mod_fn fn, CK_SESSION_HANDLE hSession)
{
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (mod_session_get_locked(hSession) == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
    } else {
        rv = CKR_FUNCTION_NOT_PARALLEL;
    }
    mod_leave();
    return mod_ret(fn, rv);
}

CK_RV mod_C_GetFunctionStatus(CK_SESSION_HANDLE hSession)
{
    return not_parallel(MOD_FN_C_GetFunctionStatus, hSession);
}

CK_RV mod_C_CancelFunction(CK_SESSION_HANDLE hSession)
{
    return not_parallel(MOD_FN_C_CancelFunction, hSession);
}
