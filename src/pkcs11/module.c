/*
 * module.c - library state, C_Initialize/C_Finalize/C_GetInfo, the
 * function lists and interfaces, the library lock, fork detection, tracing
 * and the per-function return-code filter.
 */
#include "config.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "pkcs11/mod.h"
/* after pkcs11.h, which mod.h includes */
#include "nimbus/pkcs11-vendor.h"

struct mod_state mod_state = {
    .next_session = 1,
    .next_object = 1,
};

/*
 * Serialises C_Initialize and C_Finalize against each other. A flag rather
 * than a mutex: after fork() a child whose parent was inside C_Initialize
 * on another thread clears it instead of waiting forever.
 */
static atomic_flag init_busy = ATOMIC_FLAG_INIT;
static _Atomic pid_t init_owner;

static void init_guard_take(void)
{
    pid_t me = getpid();

    while (atomic_flag_test_and_set(&init_busy)) {
        pid_t owner = atomic_load(&init_owner);

        /* Held by a thread of the parent process: it never ends here. */
        if (owner != 0 && owner != me &&
            atomic_compare_exchange_strong(&init_owner, &owner, 0)) {
            atomic_flag_clear(&init_busy);
            continue;
        }
        sched_yield();
    }
    atomic_store(&init_owner, me);
}

static void init_guard_release(void)
{
    atomic_store(&init_owner, 0);
    atomic_flag_clear(&init_busy);
}

/* ------------------------------------------------------------ lock */

static CK_RV mutex_create(struct mod_mutex *m, const CK_C_INITIALIZE_ARGS *a,
                          bool use_app)
{
    memset(m, 0, sizeof(*m));
    if (use_app) {
        CK_RV rv;

        m->app = true;
        m->create_fn = a->CreateMutex;
        m->destroy_fn = a->DestroyMutex;
        m->lock_fn = a->LockMutex;
        m->unlock_fn = a->UnlockMutex;
        rv = m->create_fn(&m->app_mutex);
        if (rv != CKR_OK) {
            return rv == CKR_HOST_MEMORY ? CKR_HOST_MEMORY : CKR_CANT_LOCK;
        }
        return CKR_OK;
    }
    if (util_mutex_init(&m->pm) != 0) {
        return CKR_CANT_LOCK;
    }
    m->pthread_ready = true;
    return CKR_OK;
}

static void mutex_destroy(struct mod_mutex *m)
{
    if (m->app) {
        (void)m->destroy_fn(m->app_mutex);
    } else if (m->pthread_ready) {
        pthread_mutex_destroy(&m->pm);
    }
    memset(m, 0, sizeof(*m));
}

static CK_RV mutex_lock(struct mod_mutex *m)
{
    if (m->app) {
        return m->lock_fn(m->app_mutex) == CKR_OK ? CKR_OK : CKR_GENERAL_ERROR;
    }
    return pthread_mutex_lock(&m->pm) == 0 ? CKR_OK : CKR_GENERAL_ERROR;
}

static void mutex_unlock(struct mod_mutex *m)
{
    if (m->app) {
        (void)m->unlock_fn(m->app_mutex);
    } else {
        pthread_mutex_unlock(&m->pm);
    }
}

CK_RV mod_mutex_new(struct mod_mutex *m)
{
    const struct mod_mutex *lib = &mod_state.mutex;
    CK_C_INITIALIZE_ARGS a;
    CK_RV rv;

    memset(&a, 0, sizeof(a));
    a.CreateMutex = lib->create_fn;
    a.DestroyMutex = lib->destroy_fn;
    a.LockMutex = lib->lock_fn;
    a.UnlockMutex = lib->unlock_fn;
    rv = mutex_create(m, &a, lib->app);
    if (rv == CKR_OK || rv == CKR_HOST_MEMORY) {
        return rv;
    }
    return CKR_GENERAL_ERROR;
}

void mod_mutex_free(struct mod_mutex *m)
{
    mutex_destroy(m);
}

CK_RV mod_mutex_lock(struct mod_mutex *m)
{
    return mutex_lock(m);
}

void mod_mutex_unlock(struct mod_mutex *m)
{
    mutex_unlock(m);
}

/*
 * Fork detection without a system call per entry point: one page mapped
 * with MADV_WIPEONFORK holds a mark set by C_Initialize; a child after
 * fork() sees the page zeroed. Where the kernel lacks that advice, the
 * process id is compared instead (a getpid() per call).
 */
static volatile unsigned char *fork_mark;
static bool fork_mark_tried;

static void fork_mark_set(void)
{
    if (!fork_mark_tried) {
        void *p = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE),
                       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);

        fork_mark_tried = true;
        if (p != MAP_FAILED) {
#ifdef MADV_WIPEONFORK
            if (madvise(p, (size_t)sysconf(_SC_PAGESIZE), MADV_WIPEONFORK) ==
                0) {
                fork_mark = p;
            } else
#endif
            {
                munmap(p, (size_t)sysconf(_SC_PAGESIZE));
            }
        }
    }
    if (fork_mark != NULL) {
        fork_mark[0] = 1;
    }
}

bool mod_ready(void)
{
    if (!mod_state.initialized) {
        return false;
    }
    if (fork_mark != NULL) {
        return fork_mark[0] == 1;
    }
    return mod_state.pid == getpid();
}

/*
 * Remote mode: the connection died under the application (backend.h).
 * Opens a new one; only when that works are the old sessions and object
 * handles dropped, so that while nimbusd is down they answer
 * CKR_DEVICE_REMOVED, and after it is back CKR_SESSION_HANDLE_INVALID: an
 * old session never reaches the new connection, whose session ids start
 * again. The sessions' mutexes are taken (session_shut), so no call still
 * runs on the old connection when it is closed.
 */
static void conn_revive_locked(void)
{
    backend_conn_t *fresh = NULL;

    if (!backend_conn_lost(mod_state.conn)) {
        atomic_store(&mod_state.hsm_down, false);
        return;
    }
    if (backend_conn_open(mod_state.be, &fresh) != CKR_OK) {
        atomic_store(&mod_state.hsm_down, true);
        return;
    }
    mod_sessions_close_all_locked();
    mod_handles_drop_locked();
    backend_conn_close(mod_state.conn);
    mod_state.conn = fresh;
    atomic_store(&mod_state.hsm_down, false);
    log_info("reconnected to the HSM: earlier sessions are closed");
}

CK_RV mod_enter(void)
{
    CK_RV rv;

    if (!mod_ready()) {
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    rv = mutex_lock(&mod_state.mutex);
    if (rv != CKR_OK) {
        return rv;
    }
    /* C_Finalize may have run between the check and the lock. */
    if (!mod_state.initialized) {
        mutex_unlock(&mod_state.mutex);
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    conn_revive_locked();
    return CKR_OK;
}

void mod_leave(void)
{
    mutex_unlock(&mod_state.mutex);
}

/* ------------------------------------------------------------ trace */

/* clang-format off */
#define R(x) {x, #x}
/* clang-format on */
static const struct {
    CK_RV rv;
    const char *name;
} rv_names[] = {
    R(CKR_OK),
    R(CKR_CANCEL),
    R(CKR_HOST_MEMORY),
    R(CKR_SLOT_ID_INVALID),
    R(CKR_GENERAL_ERROR),
    R(CKR_FUNCTION_FAILED),
    R(CKR_ARGUMENTS_BAD),
    R(CKR_NO_EVENT),
    R(CKR_NEED_TO_CREATE_THREADS),
    R(CKR_CANT_LOCK),
    R(CKR_ATTRIBUTE_READ_ONLY),
    R(CKR_ATTRIBUTE_SENSITIVE),
    R(CKR_ATTRIBUTE_TYPE_INVALID),
    R(CKR_ATTRIBUTE_VALUE_INVALID),
    R(CKR_ACTION_PROHIBITED),
    R(CKR_DATA_INVALID),
    R(CKR_DATA_LEN_RANGE),
    R(CKR_DEVICE_ERROR),
    R(CKR_DEVICE_MEMORY),
    R(CKR_DEVICE_REMOVED),
    R(CKR_ENCRYPTED_DATA_INVALID),
    R(CKR_ENCRYPTED_DATA_LEN_RANGE),
    R(CKR_AEAD_DECRYPT_FAILED),
    R(CKR_FUNCTION_CANCELED),
    R(CKR_FUNCTION_NOT_PARALLEL),
    R(CKR_FUNCTION_NOT_SUPPORTED),
    R(CKR_KEY_HANDLE_INVALID),
    R(CKR_KEY_SIZE_RANGE),
    R(CKR_KEY_TYPE_INCONSISTENT),
    R(CKR_KEY_NOT_NEEDED),
    R(CKR_KEY_CHANGED),
    R(CKR_KEY_NEEDED),
    R(CKR_KEY_INDIGESTIBLE),
    R(CKR_KEY_FUNCTION_NOT_PERMITTED),
    R(CKR_KEY_NOT_WRAPPABLE),
    R(CKR_KEY_UNEXTRACTABLE),
    R(CKR_MECHANISM_INVALID),
    R(CKR_MECHANISM_PARAM_INVALID),
    R(CKR_OBJECT_HANDLE_INVALID),
    R(CKR_OPERATION_ACTIVE),
    R(CKR_OPERATION_NOT_INITIALIZED),
    R(CKR_PIN_INCORRECT),
    R(CKR_PIN_INVALID),
    R(CKR_PIN_LEN_RANGE),
    R(CKR_PIN_EXPIRED),
    R(CKR_PIN_LOCKED),
    R(CKR_SESSION_CLOSED),
    R(CKR_SESSION_COUNT),
    R(CKR_SESSION_HANDLE_INVALID),
    R(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    R(CKR_SESSION_READ_ONLY),
    R(CKR_SESSION_EXISTS),
    R(CKR_SESSION_READ_ONLY_EXISTS),
    R(CKR_SESSION_READ_WRITE_SO_EXISTS),
    R(CKR_SIGNATURE_INVALID),
    R(CKR_SIGNATURE_LEN_RANGE),
    R(CKR_TEMPLATE_INCOMPLETE),
    R(CKR_TEMPLATE_INCONSISTENT),
    R(CKR_TOKEN_NOT_PRESENT),
    R(CKR_TOKEN_NOT_RECOGNIZED),
    R(CKR_TOKEN_WRITE_PROTECTED),
    R(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
    R(CKR_UNWRAPPING_KEY_SIZE_RANGE),
    R(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    R(CKR_USER_ALREADY_LOGGED_IN),
    R(CKR_USER_NOT_LOGGED_IN),
    R(CKR_USER_PIN_NOT_INITIALIZED),
    R(CKR_USER_TYPE_INVALID),
    R(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    R(CKR_USER_TOO_MANY_TYPES),
    R(CKR_WRAPPED_KEY_INVALID),
    R(CKR_WRAPPED_KEY_LEN_RANGE),
    R(CKR_WRAPPING_KEY_HANDLE_INVALID),
    R(CKR_WRAPPING_KEY_SIZE_RANGE),
    R(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
    R(CKR_RANDOM_SEED_NOT_SUPPORTED),
    R(CKR_RANDOM_NO_RNG),
    R(CKR_DOMAIN_PARAMS_INVALID),
    R(CKR_CURVE_NOT_SUPPORTED),
    R(CKR_BUFFER_TOO_SMALL),
    R(CKR_SAVED_STATE_INVALID),
    R(CKR_INFORMATION_SENSITIVE),
    R(CKR_STATE_UNSAVEABLE),
    R(CKR_CRYPTOKI_NOT_INITIALIZED),
    R(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    R(CKR_MUTEX_BAD),
    R(CKR_MUTEX_NOT_LOCKED),
    R(CKR_NEW_PIN_MODE),
    R(CKR_NEXT_OTP),
    R(CKR_EXCEEDED_MAX_ITERATIONS),
    R(CKR_FIPS_SELF_TEST_FAILED),
    R(CKR_LIBRARY_LOAD_FAILED),
    R(CKR_PIN_TOO_WEAK),
    R(CKR_PUBLIC_KEY_INVALID),
    R(CKR_FUNCTION_REJECTED),
    R(CKR_TOKEN_RESOURCE_EXCEEDED),
    R(CKR_OPERATION_CANCEL_FAILED),
    R(CKR_KEY_EXHAUSTED),
};
#undef R

const char *mod_rv_name(CK_RV rv)
{
    size_t i;

    for (i = 0; i < UTIL_ARRAY_SIZE(rv_names); i++) {
        if (rv_names[i].rv == rv) {
            return rv_names[i].name;
        }
    }
    return "CKR_(unknown)";
}

#define CK_PKCS11_FUNCTION_INFO(name) #name,
static const char *const fn_names[MOD_FN_COUNT] = {
#include "pkcs11/pkcs11f.h"
};
#undef CK_PKCS11_FUNCTION_INFO

/*
 * The return values each function may give (PKCS#11 3.0 section 5):
 * categories of section 5.1 plus the function's own list.
 */
#define CAT_INIT 0x1u    /* CKR_CRYPTOKI_NOT_INITIALIZED */
#define CAT_SESSION 0x2u /* 5.1.2: functions taking a session handle */
#define CAT_TOKEN 0x4u   /* 5.1.3: functions using a token */
#define CAT_SLOT (CAT_INIT | CAT_TOKEN)
#define CAT_SESS (CAT_INIT | CAT_SESSION | CAT_TOKEN)

struct fn_rvs {
    bool set;
    unsigned cats;
    const CK_RV *rvs;
    size_t n;
};

#define RVS(c, ...)                                                            \
    {                                                                          \
        .set = true, .cats = (c), .rvs = (const CK_RV[]){__VA_ARGS__},         \
        .n = sizeof((const CK_RV[]){__VA_ARGS__}) / sizeof(CK_RV)              \
    }
#define F(name) [MOD_FN_##name]

#define LOGIN_RVS                                                              \
    RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_FUNCTION_CANCELED,                    \
        CKR_OPERATION_NOT_INITIALIZED, CKR_PIN_INCORRECT, CKR_PIN_LOCKED,      \
        CKR_SESSION_READ_ONLY_EXISTS, CKR_USER_ALREADY_LOGGED_IN,              \
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN, CKR_USER_PIN_NOT_INITIALIZED,      \
        CKR_USER_TOO_MANY_TYPES, CKR_USER_TYPE_INVALID)

/* C_EncryptInit, C_DecryptInit, C_SignInit, C_VerifyInit. */
#define INIT_RVS                                                               \
    RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_FUNCTION_CANCELED,                    \
        CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_HANDLE_INVALID,                \
        CKR_KEY_SIZE_RANGE, CKR_KEY_TYPE_INCONSISTENT, CKR_MECHANISM_INVALID,  \
        CKR_MECHANISM_PARAM_INVALID, CKR_OPERATION_ACTIVE, CKR_PIN_EXPIRED,    \
        CKR_USER_NOT_LOGGED_IN)

/* C_GenerateKey, C_GenerateKeyPair. */
#define KEYGEN_RVS                                                             \
    RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_READ_ONLY,                  \
        CKR_ATTRIBUTE_TYPE_INVALID, CKR_ATTRIBUTE_VALUE_INVALID,               \
        CKR_CURVE_NOT_SUPPORTED, CKR_DOMAIN_PARAMS_INVALID,                    \
        CKR_FUNCTION_CANCELED, CKR_KEY_SIZE_RANGE, CKR_MECHANISM_INVALID,      \
        CKR_MECHANISM_PARAM_INVALID, CKR_OPERATION_ACTIVE, CKR_PIN_EXPIRED,    \
        CKR_SESSION_READ_ONLY, CKR_TEMPLATE_INCOMPLETE,                        \
        CKR_TEMPLATE_INCONSISTENT, CKR_TOKEN_WRITE_PROTECTED,                  \
        CKR_USER_NOT_LOGGED_IN)

/* C_EncryptMessage, C_EncryptMessageBegin, C_EncryptMessageNext. */
#define MSG_ENC_RVS                                                            \
    RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL, CKR_DATA_INVALID,   \
        CKR_DATA_LEN_RANGE, CKR_FUNCTION_CANCELED, CKR_OPERATION_ACTIVE,       \
        CKR_OPERATION_NOT_INITIALIZED, CKR_TOKEN_RESOURCE_EXCEEDED,            \
        CKR_USER_NOT_LOGGED_IN)

/* C_DecryptMessage, C_DecryptMessageBegin, C_DecryptMessageNext. */
#define MSG_DEC_RVS                                                            \
    RVS(CAT_SESS, CKR_AEAD_DECRYPT_FAILED, CKR_ARGUMENTS_BAD,                  \
        CKR_BUFFER_TOO_SMALL, CKR_ENCRYPTED_DATA_INVALID,                      \
        CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_FUNCTION_CANCELED,                   \
        CKR_OPERATION_ACTIVE, CKR_OPERATION_NOT_INITIALIZED,                   \
        CKR_USER_NOT_LOGGED_IN)

/* C_MessageEncryptFinal, C_MessageDecryptFinal. */
#define MSG_FINAL_RVS                                                          \
    RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_FUNCTION_CANCELED,                    \
        CKR_OPERATION_NOT_INITIALIZED, CKR_USER_NOT_LOGGED_IN)

static const struct fn_rvs fn_rvs[MOD_FN_COUNT] = {
    F(C_Initialize) =
        RVS(0, CKR_ARGUMENTS_BAD, CKR_CANT_LOCK,
            CKR_CRYPTOKI_ALREADY_INITIALIZED, CKR_NEED_TO_CREATE_THREADS),
    F(C_Finalize) = RVS(CAT_INIT, CKR_ARGUMENTS_BAD),
    F(C_GetInfo) = RVS(CAT_INIT, CKR_ARGUMENTS_BAD),
    F(C_GetFunctionList) = RVS(0, CKR_ARGUMENTS_BAD),
    F(C_GetInterfaceList) = RVS(0, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL),
    F(C_GetInterface) = RVS(0, CKR_ARGUMENTS_BAD),
    F(C_GetSlotList) = RVS(CAT_INIT, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL),
    F(C_GetSlotInfo) =
        RVS(CAT_INIT, CKR_ARGUMENTS_BAD, CKR_SLOT_ID_INVALID, CKR_DEVICE_ERROR),
    F(C_GetTokenInfo) = RVS(CAT_SLOT, CKR_ARGUMENTS_BAD, CKR_SLOT_ID_INVALID,
                            CKR_TOKEN_NOT_RECOGNIZED),
    F(C_WaitForSlotEvent) = RVS(CAT_INIT, CKR_NO_EVENT),
    F(C_GetMechanismList) =
        RVS(CAT_SLOT, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL,
            CKR_SLOT_ID_INVALID, CKR_TOKEN_NOT_RECOGNIZED),
    F(C_GetMechanismInfo) =
        RVS(CAT_SLOT, CKR_ARGUMENTS_BAD, CKR_MECHANISM_INVALID,
            CKR_SLOT_ID_INVALID, CKR_TOKEN_NOT_RECOGNIZED),
    /* CKR_PIN_LEN_RANGE is not in the spec's list: the contract asks for
     * it when the new SO password has a bad length; nor is
     * CKR_FUNCTION_REJECTED: a re-initialization (it deletes every CU)
     * while user management needs a quorum, as C_InitPIN. */
    F(C_InitToken) = RVS(CAT_SLOT, CKR_ARGUMENTS_BAD, CKR_FUNCTION_CANCELED,
                         CKR_PIN_INCORRECT, CKR_PIN_LOCKED, CKR_SESSION_EXISTS,
                         CKR_SLOT_ID_INVALID, CKR_TOKEN_NOT_RECOGNIZED,
                         CKR_TOKEN_WRITE_PROTECTED, CKR_PIN_LEN_RANGE,
                         CKR_FUNCTION_REJECTED),
    /* CKR_FUNCTION_REJECTED is not in the spec's list: another user's PIN
     * while user management needs a quorum (issue 15, hsm.h) is refused
     * with it, as the cloud HSM refuses the same change. Nor is
     * CKR_ACTION_PROHIBITED, here and in C_SetPIN: a password change that
     * would drop a 2FA officer's key that a quorum's M needs (hsm.h). */
    F(C_InitPIN) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_FUNCTION_CANCELED, CKR_PIN_INVALID,
            CKR_PIN_LEN_RANGE, CKR_SESSION_READ_ONLY, CKR_TOKEN_WRITE_PROTECTED,
            CKR_USER_NOT_LOGGED_IN, CKR_FUNCTION_REJECTED,
            CKR_ACTION_PROHIBITED),
    F(C_SetPIN) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_FUNCTION_CANCELED,
            CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE,
            CKR_PIN_LOCKED, CKR_SESSION_READ_ONLY, CKR_TOKEN_WRITE_PROTECTED,
            CKR_ACTION_PROHIBITED),
    F(C_OpenSession) =
        RVS(CAT_SLOT, CKR_ARGUMENTS_BAD, CKR_SESSION_COUNT,
            CKR_SESSION_PARALLEL_NOT_SUPPORTED,
            CKR_SESSION_READ_WRITE_SO_EXISTS, CKR_SLOT_ID_INVALID,
            CKR_TOKEN_NOT_RECOGNIZED, CKR_TOKEN_WRITE_PROTECTED),
    F(C_CloseSession) = RVS(CAT_SESS, CKR_OK),
    F(C_CloseAllSessions) = RVS(CAT_SLOT, CKR_SLOT_ID_INVALID),
    F(C_GetSessionInfo) = RVS(CAT_SESS, CKR_ARGUMENTS_BAD),
    F(C_SessionCancel) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_OPERATION_CANCEL_FAILED),
    F(C_Login) = LOGIN_RVS,
    F(C_LoginUser) = LOGIN_RVS,
    F(C_Logout) = RVS(CAT_SESS, CKR_USER_NOT_LOGGED_IN),
    F(C_CreateObject) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_READ_ONLY,
            CKR_ATTRIBUTE_TYPE_INVALID, CKR_ATTRIBUTE_VALUE_INVALID,
            CKR_CURVE_NOT_SUPPORTED, CKR_DOMAIN_PARAMS_INVALID, CKR_PIN_EXPIRED,
            CKR_SESSION_READ_ONLY, CKR_TEMPLATE_INCOMPLETE,
            CKR_TEMPLATE_INCONSISTENT, CKR_TOKEN_WRITE_PROTECTED,
            CKR_USER_NOT_LOGGED_IN),
    F(C_CopyObject) =
        RVS(CAT_SESS, CKR_ACTION_PROHIBITED, CKR_ARGUMENTS_BAD,
            CKR_ATTRIBUTE_READ_ONLY, CKR_ATTRIBUTE_TYPE_INVALID,
            CKR_ATTRIBUTE_VALUE_INVALID, CKR_OBJECT_HANDLE_INVALID,
            CKR_PIN_EXPIRED, CKR_SESSION_READ_ONLY, CKR_TEMPLATE_INCONSISTENT,
            CKR_TOKEN_WRITE_PROTECTED, CKR_USER_NOT_LOGGED_IN),
    F(C_DestroyObject) =
        RVS(CAT_SESS, CKR_ACTION_PROHIBITED, CKR_OBJECT_HANDLE_INVALID,
            CKR_PIN_EXPIRED, CKR_SESSION_READ_ONLY, CKR_TOKEN_WRITE_PROTECTED),
    F(C_GetObjectSize) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_INFORMATION_SENSITIVE,
            CKR_OBJECT_HANDLE_INVALID),
    F(C_GetAttributeValue) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_SENSITIVE,
            CKR_ATTRIBUTE_TYPE_INVALID, CKR_BUFFER_TOO_SMALL,
            CKR_OBJECT_HANDLE_INVALID),
    F(C_SetAttributeValue) =
        RVS(CAT_SESS, CKR_ACTION_PROHIBITED, CKR_ARGUMENTS_BAD,
            CKR_ATTRIBUTE_READ_ONLY, CKR_ATTRIBUTE_TYPE_INVALID,
            CKR_ATTRIBUTE_VALUE_INVALID, CKR_OBJECT_HANDLE_INVALID,
            CKR_SESSION_READ_ONLY, CKR_TEMPLATE_INCONSISTENT,
            CKR_TOKEN_WRITE_PROTECTED, CKR_USER_NOT_LOGGED_IN),
    F(C_FindObjectsInit) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_TYPE_INVALID,
            CKR_ATTRIBUTE_VALUE_INVALID, CKR_OPERATION_ACTIVE, CKR_PIN_EXPIRED),
    F(C_FindObjects) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_OPERATION_NOT_INITIALIZED),
    F(C_FindObjectsFinal) = RVS(CAT_SESS, CKR_OPERATION_NOT_INITIALIZED),
    F(C_GenerateRandom) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_FUNCTION_CANCELED,
            CKR_OPERATION_ACTIVE, CKR_RANDOM_NO_RNG, CKR_USER_NOT_LOGGED_IN),
    F(C_SeedRandom) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_FUNCTION_CANCELED,
            CKR_OPERATION_ACTIVE, CKR_RANDOM_NO_RNG,
            CKR_RANDOM_SEED_NOT_SUPPORTED, CKR_USER_NOT_LOGGED_IN),
    F(C_GetFunctionStatus) = RVS(CAT_SESS, CKR_FUNCTION_NOT_PARALLEL),
    F(C_CancelFunction) = RVS(CAT_SESS, CKR_FUNCTION_NOT_PARALLEL),
    /*
     * Crypto (sections 5.8-5.14). Beyond the spec's lists: CKR_ARGUMENTS_BAD
     * for a NULL mechanism in the *Init calls, and CKR_OPERATION_ACTIVE for
     * a one-shot call made after an Update (the operation stays).
     */
    F(C_EncryptInit) = INIT_RVS,
    F(C_Encrypt) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL, CKR_DATA_INVALID,
            CKR_DATA_LEN_RANGE, CKR_FUNCTION_CANCELED, CKR_OPERATION_ACTIVE,
            CKR_OPERATION_NOT_INITIALIZED),
    F(C_EncryptUpdate) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL, CKR_DATA_INVALID,
            CKR_DATA_LEN_RANGE, CKR_FUNCTION_CANCELED, CKR_OPERATION_ACTIVE,
            CKR_OPERATION_NOT_INITIALIZED),
    F(C_EncryptFinal) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL,
            CKR_DATA_LEN_RANGE, CKR_FUNCTION_CANCELED, CKR_OPERATION_ACTIVE,
            CKR_OPERATION_NOT_INITIALIZED),
    F(C_DecryptInit) = INIT_RVS,
    F(C_Decrypt) = RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL,
                       CKR_ENCRYPTED_DATA_INVALID, CKR_ENCRYPTED_DATA_LEN_RANGE,
                       CKR_AEAD_DECRYPT_FAILED, CKR_FUNCTION_CANCELED,
                       CKR_OPERATION_ACTIVE, CKR_OPERATION_NOT_INITIALIZED,
                       CKR_USER_NOT_LOGGED_IN),
    F(C_DecryptUpdate) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL,
            CKR_ENCRYPTED_DATA_INVALID, CKR_ENCRYPTED_DATA_LEN_RANGE,
            CKR_FUNCTION_CANCELED, CKR_OPERATION_ACTIVE,
            CKR_OPERATION_NOT_INITIALIZED, CKR_USER_NOT_LOGGED_IN),
    F(C_DecryptFinal) = RVS(
        CAT_SESS, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL,
        CKR_ENCRYPTED_DATA_INVALID, CKR_ENCRYPTED_DATA_LEN_RANGE,
        CKR_AEAD_DECRYPT_FAILED, CKR_FUNCTION_CANCELED, CKR_OPERATION_ACTIVE,
        CKR_OPERATION_NOT_INITIALIZED, CKR_USER_NOT_LOGGED_IN),
    F(C_DigestInit) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_FUNCTION_CANCELED,
            CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID,
            CKR_OPERATION_ACTIVE, CKR_PIN_EXPIRED, CKR_USER_NOT_LOGGED_IN),
    F(C_Digest) = RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL,
                      CKR_FUNCTION_CANCELED, CKR_OPERATION_ACTIVE,
                      CKR_OPERATION_NOT_INITIALIZED),
    F(C_DigestUpdate) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_FUNCTION_CANCELED,
            CKR_OPERATION_ACTIVE, CKR_OPERATION_NOT_INITIALIZED),
    F(C_DigestKey) =
        RVS(CAT_SESS, CKR_FUNCTION_CANCELED, CKR_KEY_HANDLE_INVALID,
            CKR_KEY_INDIGESTIBLE, CKR_KEY_SIZE_RANGE, CKR_OPERATION_ACTIVE,
            CKR_OPERATION_NOT_INITIALIZED),
    F(C_DigestFinal) = RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL,
                           CKR_FUNCTION_CANCELED, CKR_OPERATION_ACTIVE,
                           CKR_OPERATION_NOT_INITIALIZED),
    F(C_SignInit) = INIT_RVS,
    F(C_Sign) = RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL,
                    CKR_DATA_INVALID, CKR_DATA_LEN_RANGE, CKR_FUNCTION_CANCELED,
                    CKR_FUNCTION_REJECTED, CKR_OPERATION_ACTIVE,
                    CKR_OPERATION_NOT_INITIALIZED, CKR_USER_NOT_LOGGED_IN),
    F(C_SignUpdate) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_DATA_LEN_RANGE,
            CKR_FUNCTION_CANCELED, CKR_OPERATION_ACTIVE,
            CKR_OPERATION_NOT_INITIALIZED, CKR_USER_NOT_LOGGED_IN),
    F(C_SignFinal) = RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL,
                         CKR_DATA_LEN_RANGE, CKR_FUNCTION_CANCELED,
                         CKR_FUNCTION_REJECTED, CKR_OPERATION_ACTIVE,
                         CKR_OPERATION_NOT_INITIALIZED, CKR_USER_NOT_LOGGED_IN),
    F(C_VerifyInit) = INIT_RVS,
    F(C_Verify) = RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_DATA_INVALID,
                      CKR_DATA_LEN_RANGE, CKR_FUNCTION_CANCELED,
                      CKR_OPERATION_ACTIVE, CKR_OPERATION_NOT_INITIALIZED,
                      CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE),
    F(C_VerifyUpdate) = RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_DATA_LEN_RANGE,
                            CKR_FUNCTION_CANCELED, CKR_OPERATION_ACTIVE,
                            CKR_OPERATION_NOT_INITIALIZED),
    F(C_VerifyFinal) = RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_DATA_LEN_RANGE,
                           CKR_FUNCTION_CANCELED, CKR_OPERATION_ACTIVE,
                           CKR_OPERATION_NOT_INITIALIZED, CKR_SIGNATURE_INVALID,
                           CKR_SIGNATURE_LEN_RANGE),
    /* CKR_KEY_SIZE_RANGE (a modulus or value length the token does not
     * offer) is not in the spec's lists for key generation. */
    F(C_GenerateKey) = KEYGEN_RVS,
    F(C_GenerateKeyPair) = KEYGEN_RVS,
    /* CKR_KEY_FUNCTION_NOT_PERMITTED (CKA_DERIVE FALSE) likewise. */
    F(C_DeriveKey) = RVS(
        CAT_SESS, CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_READ_ONLY,
        CKR_ATTRIBUTE_TYPE_INVALID, CKR_ATTRIBUTE_VALUE_INVALID,
        CKR_CURVE_NOT_SUPPORTED, CKR_DOMAIN_PARAMS_INVALID,
        CKR_FUNCTION_CANCELED, CKR_KEY_FUNCTION_NOT_PERMITTED,
        CKR_KEY_HANDLE_INVALID, CKR_KEY_SIZE_RANGE, CKR_KEY_TYPE_INCONSISTENT,
        CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID,
        CKR_OPERATION_ACTIVE, CKR_PIN_EXPIRED, CKR_SESSION_READ_ONLY,
        CKR_TEMPLATE_INCOMPLETE, CKR_TEMPLATE_INCONSISTENT,
        CKR_TOKEN_WRITE_PROTECTED, CKR_USER_NOT_LOGGED_IN),
    /*
     * Beyond the spec's lists: CKR_KEY_FUNCTION_NOT_PERMITTED (no CKA_WRAP /
     * CKA_UNWRAP, or a key the caller does not own), and for C_UnwrapKey
     * CKR_KEY_SIZE_RANGE (a value the key type does not allow).
     */
    F(C_WrapKey) =
        RVS(CAT_SESS, CKR_ARGUMENTS_BAD, CKR_BUFFER_TOO_SMALL,
            CKR_FUNCTION_CANCELED, CKR_KEY_HANDLE_INVALID,
            CKR_KEY_NOT_WRAPPABLE, CKR_KEY_SIZE_RANGE, CKR_KEY_UNEXTRACTABLE,
            CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID,
            CKR_OPERATION_ACTIVE, CKR_PIN_EXPIRED, CKR_USER_NOT_LOGGED_IN,
            CKR_WRAPPING_KEY_HANDLE_INVALID, CKR_WRAPPING_KEY_SIZE_RANGE,
            CKR_WRAPPING_KEY_TYPE_INCONSISTENT, CKR_KEY_FUNCTION_NOT_PERMITTED),
    F(C_UnwrapKey) = RVS(
        CAT_SESS, CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_READ_ONLY,
        CKR_ATTRIBUTE_TYPE_INVALID, CKR_ATTRIBUTE_VALUE_INVALID,
        CKR_BUFFER_TOO_SMALL, CKR_CURVE_NOT_SUPPORTED,
        CKR_DOMAIN_PARAMS_INVALID, CKR_FUNCTION_CANCELED, CKR_MECHANISM_INVALID,
        CKR_MECHANISM_PARAM_INVALID, CKR_OPERATION_ACTIVE, CKR_PIN_EXPIRED,
        CKR_SESSION_READ_ONLY, CKR_TEMPLATE_INCOMPLETE,
        CKR_TEMPLATE_INCONSISTENT, CKR_TOKEN_WRITE_PROTECTED,
        CKR_UNWRAPPING_KEY_HANDLE_INVALID, CKR_UNWRAPPING_KEY_SIZE_RANGE,
        CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, CKR_USER_NOT_LOGGED_IN,
        CKR_WRAPPED_KEY_INVALID, CKR_WRAPPED_KEY_LEN_RANGE,
        CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_SIZE_RANGE),
    /*
     * Message-based encryption (3.0 sections 5.13, 5.14). A message
     * parameter the core refuses is CKR_ARGUMENTS_BAD (crypto.c: the lists
     * have no CKR_MECHANISM_PARAM_INVALID); CKR_OPERATION_ACTIVE for a
     * message call while another message is under way.
     */
    F(C_MessageEncryptInit) = INIT_RVS,
    F(C_EncryptMessage) = MSG_ENC_RVS,
    F(C_EncryptMessageBegin) = MSG_ENC_RVS,
    F(C_EncryptMessageNext) = MSG_ENC_RVS,
    F(C_MessageEncryptFinal) = MSG_FINAL_RVS,
    F(C_MessageDecryptInit) = INIT_RVS,
    F(C_DecryptMessage) = MSG_DEC_RVS,
    F(C_DecryptMessageBegin) = MSG_DEC_RVS,
    F(C_DecryptMessageNext) = MSG_DEC_RVS,
    F(C_MessageDecryptFinal) = MSG_FINAL_RVS,
};

#undef F
#undef RVS
#undef INIT_RVS
#undef KEYGEN_RVS
#undef MSG_ENC_RVS
#undef MSG_DEC_RVS
#undef MSG_FINAL_RVS

static bool rv_allowed(enum mod_fn fn, CK_RV rv)
{
    const struct fn_rvs *f = &fn_rvs[fn];
    unsigned cats = f->set ? f->cats : CAT_SESS;
    size_t i;

    /* 5.1.1, universal; a stub may always say "not supported". */
    if (rv == CKR_OK || rv == CKR_GENERAL_ERROR || rv == CKR_HOST_MEMORY ||
        rv == CKR_FUNCTION_FAILED || rv == CKR_FUNCTION_NOT_SUPPORTED) {
        return true;
    }
    if ((cats & CAT_INIT) && rv == CKR_CRYPTOKI_NOT_INITIALIZED) {
        return true;
    }
    if ((cats & CAT_SESSION) &&
        (rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
         rv == CKR_DEVICE_REMOVED)) {
        return true;
    }
    if ((cats & CAT_TOKEN) &&
        (rv == CKR_DEVICE_ERROR || rv == CKR_DEVICE_MEMORY ||
         rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT)) {
        return true;
    }
    for (i = 0; i < f->n; i++) {
        if (f->rvs[i] == rv) {
            return true;
        }
    }
    return false;
}

const char *mod_fn_name(enum mod_fn fn)
{
    return fn < MOD_FN_COUNT ? fn_names[fn] : "?";
}

CK_RV mod_ret(enum mod_fn fn, CK_RV rv)
{
    if (fn >= MOD_FN_COUNT) {
        return CKR_GENERAL_ERROR;
    }
    /* While nimbusd is down a session is not invalid: the device is away
     * (the sessions are dropped once a new connection is made). */
    if (rv == CKR_SESSION_HANDLE_INVALID && atomic_load(&mod_state.hsm_down)) {
        rv = CKR_DEVICE_REMOVED;
    }
    /* CKR_OK is a return value of every function. */
    if (rv != CKR_OK && !rv_allowed(fn, rv)) {
        CK_RV repl = CKR_GENERAL_ERROR;

        /* Contract: PIN_EXPIRED where listed, else USER_NOT_LOGGED_IN. */
        if (rv == CKR_PIN_EXPIRED && rv_allowed(fn, CKR_USER_NOT_LOGGED_IN)) {
            repl = CKR_USER_NOT_LOGGED_IN;
        } else {
            log_error("%s: %s (0x%lx) is not a return value of this "
                      "function; returning %s",
                      fn_names[fn], mod_rv_name(rv), (unsigned long)rv,
                      mod_rv_name(repl));
        }
        rv = repl;
    }
    log_trace("%s -> %s", fn_names[fn], mod_rv_name(rv));
    return rv;
}

/* ------------------------------------------------------------ lists */

/* The 68 functions of 2.40, in both lists. */
#define MOD_LIST_2_40_MEMBERS                                                  \
    .C_Initialize = mod_C_Initialize, .C_Finalize = mod_C_Finalize,            \
    .C_GetInfo = mod_C_GetInfo, .C_GetFunctionList = mod_C_GetFunctionList,    \
    .C_GetSlotList = mod_C_GetSlotList, .C_GetSlotInfo = mod_C_GetSlotInfo,    \
    .C_GetTokenInfo = mod_C_GetTokenInfo,                                      \
    .C_GetMechanismList = mod_C_GetMechanismList,                              \
    .C_GetMechanismInfo = mod_C_GetMechanismInfo,                              \
    .C_InitToken = mod_C_InitToken, .C_InitPIN = mod_C_InitPIN,                \
    .C_SetPIN = mod_C_SetPIN, .C_OpenSession = mod_C_OpenSession,              \
    .C_CloseSession = mod_C_CloseSession,                                      \
    .C_CloseAllSessions = mod_C_CloseAllSessions,                              \
    .C_GetSessionInfo = mod_C_GetSessionInfo,                                  \
    .C_GetOperationState = mod_C_GetOperationState,                            \
    .C_SetOperationState = mod_C_SetOperationState, .C_Login = mod_C_Login,    \
    .C_Logout = mod_C_Logout, .C_CreateObject = mod_C_CreateObject,            \
    .C_CopyObject = mod_C_CopyObject, .C_DestroyObject = mod_C_DestroyObject,  \
    .C_GetObjectSize = mod_C_GetObjectSize,                                    \
    .C_GetAttributeValue = mod_C_GetAttributeValue,                            \
    .C_SetAttributeValue = mod_C_SetAttributeValue,                            \
    .C_FindObjectsInit = mod_C_FindObjectsInit,                                \
    .C_FindObjects = mod_C_FindObjects,                                        \
    .C_FindObjectsFinal = mod_C_FindObjectsFinal,                              \
    .C_EncryptInit = mod_C_EncryptInit, .C_Encrypt = mod_C_Encrypt,            \
    .C_EncryptUpdate = mod_C_EncryptUpdate,                                    \
    .C_EncryptFinal = mod_C_EncryptFinal, .C_DecryptInit = mod_C_DecryptInit,  \
    .C_Decrypt = mod_C_Decrypt, .C_DecryptUpdate = mod_C_DecryptUpdate,        \
    .C_DecryptFinal = mod_C_DecryptFinal, .C_DigestInit = mod_C_DigestInit,    \
    .C_Digest = mod_C_Digest, .C_DigestUpdate = mod_C_DigestUpdate,            \
    .C_DigestKey = mod_C_DigestKey, .C_DigestFinal = mod_C_DigestFinal,        \
    .C_SignInit = mod_C_SignInit, .C_Sign = mod_C_Sign,                        \
    .C_SignUpdate = mod_C_SignUpdate, .C_SignFinal = mod_C_SignFinal,          \
    .C_SignRecoverInit = mod_C_SignRecoverInit,                                \
    .C_SignRecover = mod_C_SignRecover, .C_VerifyInit = mod_C_VerifyInit,      \
    .C_Verify = mod_C_Verify, .C_VerifyUpdate = mod_C_VerifyUpdate,            \
    .C_VerifyFinal = mod_C_VerifyFinal,                                        \
    .C_VerifyRecoverInit = mod_C_VerifyRecoverInit,                            \
    .C_VerifyRecover = mod_C_VerifyRecover,                                    \
    .C_DigestEncryptUpdate = mod_C_DigestEncryptUpdate,                        \
    .C_DecryptDigestUpdate = mod_C_DecryptDigestUpdate,                        \
    .C_SignEncryptUpdate = mod_C_SignEncryptUpdate,                            \
    .C_DecryptVerifyUpdate = mod_C_DecryptVerifyUpdate,                        \
    .C_GenerateKey = mod_C_GenerateKey,                                        \
    .C_GenerateKeyPair = mod_C_GenerateKeyPair, .C_WrapKey = mod_C_WrapKey,    \
    .C_UnwrapKey = mod_C_UnwrapKey, .C_DeriveKey = mod_C_DeriveKey,            \
    .C_SeedRandom = mod_C_SeedRandom,                                          \
    .C_GenerateRandom = mod_C_GenerateRandom,                                  \
    .C_GetFunctionStatus = mod_C_GetFunctionStatus,                            \
    .C_CancelFunction = mod_C_CancelFunction,                                  \
    .C_WaitForSlotEvent = mod_C_WaitForSlotEvent,

static const CK_FUNCTION_LIST mod_list_2_40 = {.version = {2, 40},
                                               MOD_LIST_2_40_MEMBERS};

static const CK_FUNCTION_LIST_3_0 mod_list_3_0 = {
    .version = {3, 0},
    MOD_LIST_2_40_MEMBERS.C_GetInterfaceList = mod_C_GetInterfaceList,
    .C_GetInterface = mod_C_GetInterface,
    .C_LoginUser = mod_C_LoginUser,
    .C_SessionCancel = mod_C_SessionCancel,
    .C_MessageEncryptInit = mod_C_MessageEncryptInit,
    .C_EncryptMessage = mod_C_EncryptMessage,
    .C_EncryptMessageBegin = mod_C_EncryptMessageBegin,
    .C_EncryptMessageNext = mod_C_EncryptMessageNext,
    .C_MessageEncryptFinal = mod_C_MessageEncryptFinal,
    .C_MessageDecryptInit = mod_C_MessageDecryptInit,
    .C_DecryptMessage = mod_C_DecryptMessage,
    .C_DecryptMessageBegin = mod_C_DecryptMessageBegin,
    .C_DecryptMessageNext = mod_C_DecryptMessageNext,
    .C_MessageDecryptFinal = mod_C_MessageDecryptFinal,
    .C_MessageSignInit = mod_C_MessageSignInit,
    .C_SignMessage = mod_C_SignMessage,
    .C_SignMessageBegin = mod_C_SignMessageBegin,
    .C_SignMessageNext = mod_C_SignMessageNext,
    .C_MessageSignFinal = mod_C_MessageSignFinal,
    .C_MessageVerifyInit = mod_C_MessageVerifyInit,
    .C_VerifyMessage = mod_C_VerifyMessage,
    .C_VerifyMessageBegin = mod_C_VerifyMessageBegin,
    .C_VerifyMessageNext = mod_C_VerifyMessageNext,
    .C_MessageVerifyFinal = mod_C_MessageVerifyFinal,
};

#define MOD_INTERFACE_NAME "PKCS 11"

/* The vendor interface of two-factor login (nimbus/pkcs11-vendor.h). */
static const CK_NIMBUS_2FA_FUNCTION_LIST mod_list_2fa = {
    .version = {1, 0},
    .C_NimbusLoginChallenge = mod_nimbus_login_challenge,
};

static CK_INTERFACE mod_interfaces[] = {
    {
        .pInterfaceName = (CK_CHAR_PTR)MOD_INTERFACE_NAME,
        .pFunctionList = (CK_VOID_PTR)&mod_list_3_0,
        .flags = 0,
    },
    {
        .pInterfaceName = (CK_CHAR_PTR)MOD_INTERFACE_NAME,
        .pFunctionList = (CK_VOID_PTR)&mod_list_2_40,
        .flags = 0,
    },
    {
        .pInterfaceName = (CK_CHAR_PTR)NIMBUS_2FA_INTERFACE_NAME,
        .pFunctionList = (CK_VOID_PTR)&mod_list_2fa,
        .flags = 0,
    },
};

CK_RV mod_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    CK_RV rv = CKR_OK;

    if (ppFunctionList == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    *ppFunctionList = (CK_FUNCTION_LIST_PTR)&mod_list_2_40;
out:
    return mod_ret(MOD_FN_C_GetFunctionList, rv);
}

CK_RV mod_C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList,
                             CK_ULONG_PTR pulCount)
{
    CK_ULONG n = UTIL_ARRAY_SIZE(mod_interfaces);
    CK_RV rv = CKR_OK;

    if (pulCount == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (pInterfacesList == NULL) {
        *pulCount = n;
        goto out;
    }
    if (*pulCount < n) {
        *pulCount = n;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    memcpy(pInterfacesList, mod_interfaces, sizeof(mod_interfaces));
    *pulCount = n;
out:
    return mod_ret(MOD_FN_C_GetInterfaceList, rv);
}

CK_RV mod_C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName,
                         CK_VERSION_PTR pVersion,
                         CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags)
{
    CK_INTERFACE *found = NULL;
    CK_RV rv = CKR_OK;

    if (ppInterface == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (pInterfaceName != NULL &&
        strcmp((const char *)pInterfaceName, NIMBUS_2FA_INTERFACE_NAME) == 0) {
        if (pVersion == NULL ||
            (pVersion->major == 1 && pVersion->minor == 0)) {
            found = &mod_interfaces[2];
        }
    } else if (pInterfaceName != NULL &&
               strcmp((const char *)pInterfaceName, MOD_INTERFACE_NAME) != 0) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    } else if (pVersion == NULL ||
               (pVersion->major == 3 && pVersion->minor == 0)) {
        found = &mod_interfaces[0];
    } else if (pVersion->major == 2 && pVersion->minor == 40) {
        found = &mod_interfaces[1];
    }
    /* Flags the caller requires that the interface lacks: no match. */
    if (found == NULL || (flags & ~found->flags) != 0) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    *ppInterface = found;
out:
    return mod_ret(MOD_FN_C_GetInterface, rv);
}

/* ------------------------------------------------------------ init */

/* NIMBUS_DEBUG: "1" (or any number other than 0) is trace, else a level. */
static void log_setup(const struct config *cfg)
{
    const char *env = getenv("NIMBUS_DEBUG");
    int level = cfg->log_level;
    const char *file = cfg->log_file;

    if (env != NULL && *env != '\0') {
        int env_level = util_log_level_parse(env);
        unsigned long num;

        if (env_level < 0 && util_parse_ulong(env, &num)) {
            env_level = num == 0 ? LOG_LEVEL_NONE : LOG_LEVEL_TRACE;
        }
        if (env_level > LOG_LEVEL_NONE) {
            /* The debug switch always goes to stderr. */
            if (env_level > level) {
                level = env_level;
            }
            file = NULL;
        }
    }
    util_log_setup((enum log_level)level, file);
}

/*
 * Forget the state of a parent process after fork(): its core handles,
 * SQLite connections and mutexes belong to the parent and must not be
 * touched (or freed) here. They are leaked in the child, on purpose.
 */
struct abandoned_state {
    struct mod_state st;
    struct abandoned_state *prev;
};
/* The abandoned states stay reachable from here, so that memory checkers
 * see them as kept on purpose rather than lost. */
static struct abandoned_state *abandoned_states;

static void state_abandon(void)
{
    CK_ULONG next_session = mod_state.next_session;
    CK_ULONG next_object = mod_state.next_object;
    struct abandoned_state *a = malloc(sizeof(*a));

    if (a != NULL) {
        a->st = mod_state;
        a->prev = abandoned_states;
        abandoned_states = a;
    }
    memset(&mod_state, 0, sizeof(mod_state));
    mod_state.next_session = next_session;
    mod_state.next_object = next_object;
}

static CK_RV init_args_check(const CK_C_INITIALIZE_ARGS *a, bool *use_app)
{
    int n = 0;

    *use_app = false;
    if (a == NULL) {
        return CKR_OK;
    }
    if (a->pReserved != NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    n += a->CreateMutex != NULL;
    n += a->DestroyMutex != NULL;
    n += a->LockMutex != NULL;
    n += a->UnlockMutex != NULL;
    if (n != 0 && n != 4) {
        return CKR_ARGUMENTS_BAD;
    }
    /*
     * With CKF_OS_LOCKING_OK we may use either: we use the OS. Without it
     * and with callbacks, we must use the callbacks. Neither: the
     * application does not share the library between threads; a pthread
     * mutex is harmless then. CKF_LIBRARY_CANT_CREATE_OS_THREADS: we never
     * create threads.
     */
    *use_app = n == 4 && (a->flags & CKF_OS_LOCKING_OK) == 0;
    return CKR_OK;
}

CK_RV mod_C_Initialize(CK_VOID_PTR pInitArgs)
{
    const CK_C_INITIALIZE_ARGS *a = pInitArgs;
    struct config *cfg = NULL;
    backend_t *be = NULL;
    backend_conn_t *conn = NULL;
    bool use_app = false;
    bool have_mutex = false;
    char err[512];
    CK_RV rv;

    rv = init_args_check(a, &use_app);
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_Initialize, rv);
    }
    init_guard_take();
    if (mod_state.initialized) {
        if (mod_state.pid == getpid()) {
            rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
            goto out;
        }
        state_abandon();
    }
    cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (!config_load(cfg, err, sizeof(err))) {
        fprintf(stderr, "nimbus: %s\n", err);
        rv = CKR_GENERAL_ERROR;
        goto out;
    }
    log_setup(cfg);
    rv = mutex_create(&mod_state.mutex, a, use_app);
    if (rv != CKR_OK) {
        goto out;
    }
    have_mutex = true;
    rv = backend_open(cfg, &be);
    if (rv != CKR_OK) {
        if (cfg->nservers > 0)
            fprintf(stderr, "nimbus: cannot reach the servers of %s: %s\n",
                    cfg->path, mod_rv_name(rv));
        else
            fprintf(stderr, "nimbus: cannot open the store %s: %s\n",
                    cfg->store, mod_rv_name(rv));
        rv = rv == CKR_HOST_MEMORY ? CKR_HOST_MEMORY : CKR_GENERAL_ERROR;
        goto out;
    }
    rv = backend_conn_open(be, &conn);
    if (rv != CKR_OK) {
        if (cfg->nservers > 0)
            fprintf(stderr, "nimbus: cannot reach the servers of %s: %s\n",
                    cfg->path, mod_rv_name(rv));
        rv = rv == CKR_HOST_MEMORY ? CKR_HOST_MEMORY : CKR_GENERAL_ERROR;
        goto out;
    }
    memcpy(&mod_state.cfg, cfg, sizeof(*cfg));
    mod_state.be = be;
    mod_state.conn = conn;
    be = NULL;
    conn = NULL;
    mod_hmap_init(&mod_state.sessions);
    mod_hmap_init(&mod_state.h2o);
    mod_hmap_init(&mod_state.o2h);
    mod_state.rw_sessions = 0;
    mod_state.pid = getpid();
    fork_mark_set();
    mod_state.initialized = true;
    log_debug("initialized: store %s, config %s", mod_state.cfg.store,
              mod_state.cfg.path[0] != '\0' ? mod_state.cfg.path : "(none)");
out:
    backend_conn_close(conn);
    backend_close(be);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED && have_mutex) {
        mutex_destroy(&mod_state.mutex);
    }
    free(cfg);
    init_guard_release();
    return mod_ret(MOD_FN_C_Initialize, rv);
}

CK_RV mod_C_Finalize(CK_VOID_PTR pReserved)
{
    CK_RV rv;

    init_guard_take();
    rv = mod_enter();
    if (rv != CKR_OK) {
        goto out;
    }
    if (pReserved != NULL) {
        mod_leave();
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    mod_sessions_close_all_locked();
    mod_handles_drop_locked();
    backend_conn_close(mod_state.conn);
    backend_close(mod_state.be);
    mod_state.conn = NULL;
    mod_state.be = NULL;
    mod_hmap_free(&mod_state.sessions);
    mod_hmap_free(&mod_state.h2o);
    mod_hmap_free(&mod_state.o2h);
    mod_state.initialized = false;
    mod_state.pid = 0;
    atomic_store(&mod_state.hsm_down, false);
    mod_leave();
    mutex_destroy(&mod_state.mutex);
    log_debug("finalized");
    /* Trace the return before the log goes away. */
    rv = mod_ret(MOD_FN_C_Finalize, CKR_OK);
    util_log_close();
    init_guard_release();
    return rv;
out:
    init_guard_release();
    return mod_ret(MOD_FN_C_Finalize, rv);
}

CK_RV mod_C_GetInfo(CK_INFO_PTR pInfo)
{
    CK_RV rv = CKR_OK;

    if (!mod_ready()) {
        rv = CKR_CRYPTOKI_NOT_INITIALIZED;
        goto out;
    }
    if (pInfo == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    memset(pInfo, 0, sizeof(*pInfo));
    pInfo->cryptokiVersion.major = 3;
    pInfo->cryptokiVersion.minor = 0;
    util_pad_copy(pInfo->manufacturerID, sizeof(pInfo->manufacturerID),
                  "Nimbus");
    pInfo->flags = 0;
    util_pad_copy(pInfo->libraryDescription, sizeof(pInfo->libraryDescription),
                  "Nimbus HSM PKCS#11 module");
    pInfo->libraryVersion.major = NIMBUS_VERSION_MAJOR;
    pInfo->libraryVersion.minor = NIMBUS_VERSION_MINOR;
out:
    return mod_ret(MOD_FN_C_GetInfo, rv);
}
