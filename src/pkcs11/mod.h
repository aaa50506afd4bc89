/*
 * mod.h - the PKCS#11 front end, internal header.
 *
 * The front end does every PKCS#11 calling convention (NULL checks, the
 * two-call length convention, template checks, session state, handle
 * bookkeeping, PIN string parsing) and reaches the HSM through the
 * backend seam (backend/backend.h) only: embedded core or nimbusd alike.
 * Every entry point is mod_C_Xxx; exports.c exports the three C_Get*
 * entry points, the rest are reached through the function lists.
 *
 * Locking: one library mutex (mod_enter/mod_leave) protects the state
 * below. Functions named *_locked expect it held. Each session also has its
 * own mutex, which serialises the calls made on that session: the crypto
 * calls (crypto.c) look up the session and the key handles under the
 * library lock, take a reference on the session, drop the library lock and
 * run the core under the session mutex only, so that two sessions sign in
 * parallel. Order: library -> session -> core; a thread that holds a
 * session mutex never waits for the library lock. Closing a session waits
 * for a call under way on it (it takes the session mutex under the library
 * lock) and frees it only when no reference remains (atomic count).
 */
#ifndef NIMBUS_MOD_H
#define NIMBUS_MOD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/backend.h"
#include "common/conf.h"
#include "pkcs11/handles.h"
#include "pkcs11/pkcs11.h"

/* Limits on what callers hand in: the core's. */
#define MOD_TEMPLATE_MAX HSM_TEMPLATE_MAX
#define MOD_ATTR_VALUE_MAX HSM_ATTR_VALUE_MAX
/* Longest PIN string looked at; longer: CKR_PIN_INCORRECT / _LEN_RANGE. */
#define MOD_PIN_LEN_MAX 256
/* What C_GetTokenInfo reports: name:password. */
#define MOD_PIN_REPORT_MIN 7
#define MOD_PIN_REPORT_MAX 64
/* A user name copied out of a PIN string, NUL-terminated. */
#define MOD_NAME_BUF (HSM_USER_NAME_MAX + 1)
#define MOD_SLOT_ID 0

/* Prototypes of every entry point: mod_C_Initialize(...) and so on. */
#define CK_NEED_ARG_LIST 1
#define CK_PKCS11_FUNCTION_INFO(name) CK_RV mod_##name
#include "pkcs11/pkcs11f.h"
#undef CK_PKCS11_FUNCTION_INFO
#undef CK_NEED_ARG_LIST

/* One id per entry point, for tracing and the return-code filter. */
#define CK_PKCS11_FUNCTION_INFO(name) MOD_FN_##name,
enum mod_fn {
#include "pkcs11/pkcs11f.h"
    MOD_FN_COUNT
};
#undef CK_PKCS11_FUNCTION_INFO

/* Largest mechanism parameter accepted (CKR_MECHANISM_PARAM_INVALID). */
#define MOD_MECH_PARAM_MAX 4096
/* Longest wrapped key accepted by C_UnwrapKey (CKR_WRAPPED_KEY_LEN_RANGE):
 * any attribute value wrapped, with room for padding, IV and tag. */
#define MOD_WRAPPED_KEY_MAX (MOD_ATTR_VALUE_MAX + 1024)

/*
 * The state of one kind of crypto operation in a session (PKCS#11 3.0
 * section 5.2): none; initialized; a one-shot call (C_Sign ...) answered a
 * length query or CKR_BUFFER_TOO_SMALL and waits for the real call; or a
 * multi-part operation under way (an Update was made).
 */
enum mod_opstate {
    MOD_OPS_NONE = 0,
    MOD_OPS_INIT,
    MOD_OPS_ONESHOT,
    MOD_OPS_MULTI,
};

struct mod_find {
    bool active;
    hsm_oid_t *oids; /* snapshot, ascending */
    size_t n;
    size_t pos;
};

/* The library mutex: pthread, or the application's callbacks. */
struct mod_mutex {
    bool app;
    CK_VOID_PTR app_mutex;
    CK_CREATEMUTEX create_fn;
    CK_DESTROYMUTEX destroy_fn;
    CK_LOCKMUTEX lock_fn;
    CK_UNLOCKMUTEX unlock_fn;
    bool pthread_ready;
    pthread_mutex_t pm;
};

struct mod_session {
    CK_SESSION_HANDLE handle;
    hsm_sid_t sid;
    bool rw;
    CK_VOID_PTR application; /* stored, never used */
    CK_NOTIFY notify;        /* stored, never called */
    struct mod_find find;
    /* Session objects made in this session and not destroyed yet (a set
     * of object ids): their handles die with it. */
    struct mod_hmap sobjs;
    /* Calls on this session run one at a time under this mutex. */
    struct mod_mutex mutex;
    /* References (atomic): one held by the session table while the session
     * is open, one by each call using it outside the library lock. The
     * last one frees the session. */
    unsigned long refs;
    /* Closed (session mutex): a call that waited for the mutex gives up. */
    bool closed;
    /* Crypto operation states (session mutex). */
    enum mod_opstate ops[HSM_OPK_COUNT];
    /*
     * Message-based operations (session mutex), by hsm_msgkind_t: NONE, INIT
     * (between messages) or MULTI (a message begun and not ended); and the
     * mechanism, which says how each message's parameter is laid out.
     */
    enum mod_opstate msg[2];
    CK_MECHANISM_TYPE msg_mech[2];
};

struct mod_state {
    bool initialized;
    pid_t pid; /* process that initialized; another one sees nothing */
    struct config cfg;
    backend_t *be;
    backend_conn_t *conn; /* this application's login, shared by sessions */
    /*
     * Remote mode: conn was lost (nimbusd went away) and no new one could
     * be opened yet. Sessions then answer CKR_DEVICE_REMOVED; once a new
     * connection is made (mod_enter tries at every call) the old sessions
     * and object handles are gone (CKR_SESSION_HANDLE_INVALID) and new
     * ones work without C_Finalize. Set under the library lock, read by
     * mod_ret without it.
     */
    _Atomic bool hsm_down;
    struct mod_mutex mutex;
    struct mod_hmap sessions; /* handle -> (uintptr_t)struct mod_session * */
    unsigned long rw_sessions;
    struct mod_hmap h2o; /* object handle -> oid */
    struct mod_hmap o2h; /* oid -> object handle */
    /* Never reused while the module is loaded: kept across C_Finalize. */
    CK_ULONG next_session;
    CK_ULONG next_object;
    /* Bumped whenever every object handle is dropped (the login state
     * changed): a search run without the library lock that sees it move
     * is done again. */
    uint64_t handles_epoch;
};

extern struct mod_state mod_state;

/* ------------------------------------------------------------ module.c */

/* Initialized, and in the process that initialized. No lock needed. */
bool mod_ready(void);
/*
 * The entry sequence of a stateful call: CKR_CRYPTOKI_NOT_INITIALIZED, or
 * CKR_OK with the library lock held.
 */
CK_RV mod_enter(void);
void mod_leave(void);
/*
 * A mutex of the same kind as the library's (the application's callbacks
 * when it gave them): for the per-session mutexes.
 */
CK_RV mod_mutex_new(struct mod_mutex *m);
void mod_mutex_free(struct mod_mutex *m);
CK_RV mod_mutex_lock(struct mod_mutex *m);
void mod_mutex_unlock(struct mod_mutex *m);
/*
 * Every entry point returns through this: traces "C_Xxx -> CKR_..." and
 * replaces a code the spec does not list for that function (our bug or a
 * core code the function cannot return) by CKR_GENERAL_ERROR, or
 * CKR_PIN_EXPIRED by CKR_USER_NOT_LOGGED_IN where only that one is listed.
 */
CK_RV mod_ret(enum mod_fn fn, CK_RV rv);
const char *mod_rv_name(CK_RV rv);
/* "C_SignInit" ... for the trace. */
const char *mod_fn_name(enum mod_fn fn);

/* ------------------------------------------------------------ token.c */

/* C_NimbusLoginChallenge of the "Nimbus 2FA" vendor interface
 * (nimbus/pkcs11-vendor.h). */
CK_RV mod_nimbus_login_challenge(CK_SESSION_HANDLE hSession,
                                 CK_USER_TYPE userType,
                                 CK_UTF8CHAR_PTR pUsername,
                                 CK_ULONG ulUsernameLen, CK_BYTE_PTR pDigest,
                                 CK_ULONG_PTR pulDigestLen);

/* ------------------------------------------------------------ session.c */

/* NULL when the handle names no open session. */
struct mod_session *mod_session_get_locked(CK_SESSION_HANDLE h);
/* Closes one session; the last one closing logs the application out. */
CK_RV mod_session_close_locked(struct mod_session *s);
/* Closes every session of the application (C_CloseAllSessions). */
void mod_sessions_close_all_locked(void);
/* Ends the find operations of every session (C_Logout). */
void mod_sessions_cancel_finds_locked(void);
void mod_find_end(struct mod_find *f);
size_t mod_session_count_locked(void);
/*
 * References keep a session allocated while a call uses it without the
 * library lock. The count is atomic: taking one needs the library lock
 * (the session is looked up under it), dropping one needs no lock (the
 * caller must not hold the session mutex); the last reference, the table's
 * own one dropped at close included, frees the session.
 */
void mod_session_ref_locked(struct mod_session *s);
void mod_session_unref_locked(struct mod_session *s);
void mod_session_unref(struct mod_session *s);
/*
 * Takes the session mutex (caller holds a reference and not the library
 * lock): CKR_SESSION_CLOSED, not locked, when the session was closed while
 * waiting.
 */
CK_RV mod_session_lock(struct mod_session *s);
void mod_session_unlock(struct mod_session *s);
/*
 * A call whose core part runs without the library lock, so that sessions
 * make it in parallel: call_unlock (library lock held) leaves the library
 * lock with s referenced and its mutex held, else returns an error with
 * nothing held; call_relock takes the library lock back, else returns
 * CKR_CRYPTOKI_NOT_INITIALIZED (C_Finalize ran meanwhile) with s released.
 * After call_relock the caller checks s->closed where it matters and ends
 * with mod_session_unref_locked(s) and mod_leave().
 */
CK_RV mod_session_call_unlock(struct mod_session *s);
CK_RV mod_session_call_relock(struct mod_session *s);
/* Ends the crypto operations of s named by CKF_ENCRYPT/DECRYPT/DIGEST/SIGN/
 * VERIFY and CKF_MESSAGE_ENCRYPT/_DECRYPT bits in which (session mutex
 * held). */
void mod_session_ops_abort(struct mod_session *s, CK_FLAGS which);
/* Ends every crypto operation of every session (C_Logout); waits for calls
 * under way. */
void mod_sessions_ops_abort_locked(void);

/* ------------------------------------------------------------ object.c */

/* Invalidates every object handle (logout, last session closed). */
void mod_handles_drop_locked(void);
/* Invalidates the handles of the session objects made in session s. */
void mod_handles_drop_session_locked(struct mod_session *s);
/* The handle of oid, made on first sight. */
CK_RV mod_handle_for_oid_locked(hsm_oid_t oid, CK_OBJECT_HANDLE *h);
/* The object behind handle h; false when the handle names nothing. */
bool mod_oid_for_handle_locked(CK_OBJECT_HANDLE h, hsm_oid_t *oid);
/* Forgets the handle of oid (destroyed object), if it has one. */
void mod_handle_forget_locked(hsm_oid_t oid);
/* Remembers a new object made in session s if it is a session object (its
 * handle dies with the session). */
CK_RV mod_session_object_note_locked(struct mod_session *s, hsm_oid_t oid);
/*
 * Gives handles hs[0..n-1] to the n objects just made in session s (create,
 * copy, generate, derive, unwrap); on failure destroys them all (no handle
 * to give: they must not stay). CKR_SESSION_CLOSED when s was closed
 * meanwhile.
 */
CK_RV mod_objects_register_locked(struct mod_session *s, const hsm_oid_t *oids,
                                  CK_OBJECT_HANDLE *hs, size_t n);
/*
 * A template handed in, as the backend takes it (hsm.h: plain data). v is
 * the caller's array, or a copy in which each array attribute
 * (CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE, CKA_DERIVE_TEMPLATE) has the
 * serialized list hsm_object_get gives as its value; never NULL.
 */
typedef struct mod_tmpl {
    const CK_ATTRIBUTE *v;
    CK_ATTRIBUTE *own; /* the copy, when one was needed */
    CK_ULONG n;
} mod_tmpl_t;

/*
 * Checks and converts a template: NULL only when empty, at most
 * MOD_TEMPLATE_MAX attributes (else CKR_ARGUMENTS_BAD), no value pointer
 * missing and no value longer than MOD_ATTR_VALUE_MAX; an array
 * attribute's value a whole number of CK_ATTRIBUTEs, at most
 * MOD_TEMPLATE_MAX of them, each with its value (all
 * CKR_ATTRIBUTE_VALUE_INVALID); one type given twice in it with different
 * values is CKR_TEMPLATE_INCONSISTENT. *out is always set: free it with
 * mod_template_free.
 */
CK_RV mod_template_in(const CK_ATTRIBUTE *t, CK_ULONG n, mod_tmpl_t *out);
void mod_template_free(mod_tmpl_t *t);

#endif
