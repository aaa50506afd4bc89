/*
 * token.c - slot and token calls, PINs and logins: C_GetSlotList,
 * C_GetSlotInfo, C_GetTokenInfo, C_GetMechanismList, C_GetMechanismInfo,
 * C_InitToken, C_InitPIN, C_SetPIN, C_Login, C_LoginUser, C_Logout,
 * C_WaitForSlotEvent.
 *
 * PIN strings are "name:password" split at the first colon, or a bare
 * password (name NULL: the core picks admin / the default CU / app_user).
 * The name is copied into a NUL-terminated stack buffer, wiped before
 * every return; the password is not copied (it points into the caller's
 * buffer).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"
#include "pkcs11/mod.h"
/* after pkcs11.h, which mod.h includes */
#include "nimbus/pkcs11-vendor.h"

/* ------------------------------------------------------------ PINs */

struct pin {
    char name[MOD_NAME_BUF]; /* "" when the PIN is a bare password */
    bool has_name;
    const uint8_t *pw;
    size_t pwlen;
};

/*
 * Split "name:password". false when the name part is empty, longer than
 * HSM_USER_NAME_MAX or holds a NUL byte; the caller chooses the code.
 */
static bool pin_parse(const CK_UTF8CHAR *s, CK_ULONG len, struct pin *p)
{
    const CK_UTF8CHAR *colon;
    size_t nlen;

    memset(p, 0, sizeof(*p));
    colon = len > 0 ? memchr(s, ':', (size_t)len) : NULL;
    if (colon == NULL) {
        p->pw = s;
        p->pwlen = (size_t)len;
        return true;
    }
    nlen = (size_t)(colon - s);
    if (nlen == 0 || nlen > HSM_USER_NAME_MAX || memchr(s, '\0', nlen)) {
        return false;
    }
    memcpy(p->name, s, nlen);
    p->name[nlen] = '\0';
    p->has_name = true;
    p->pw = colon + 1;
    p->pwlen = (size_t)len - nlen - 1;
    return true;
}

static const char *pin_name(const struct pin *p)
{
    return p->has_name ? p->name : NULL;
}

/*
 * The PIN of C_Login, C_LoginUser and the context-specific login: with a
 * user name apart (C_LoginUser) the PIN is the bare password, else it may
 * be "name:password". false (the caller answers CKR_PIN_INCORRECT) for a
 * PIN over MOD_PIN_LEN_MAX or a name that pin_parse would refuse.
 */
static bool login_pin(const CK_UTF8CHAR *pPin, CK_ULONG ulPinLen,
                      const CK_UTF8CHAR *pUsername, CK_ULONG ulUsernameLen,
                      struct pin *pin)
{
    memset(pin, 0, sizeof(*pin));
    if (ulPinLen > MOD_PIN_LEN_MAX) {
        return false;
    }
    if (pUsername == NULL || ulUsernameLen == 0) {
        return pin_parse(pPin, ulPinLen, pin);
    }
    if (ulUsernameLen > HSM_USER_NAME_MAX ||
        memchr(pUsername, '\0', (size_t)ulUsernameLen) != NULL) {
        return false;
    }
    memcpy(pin->name, pUsername, (size_t)ulUsernameLen);
    pin->name[ulUsernameLen] = '\0';
    pin->has_name = true;
    pin->pw = pPin;
    pin->pwlen = (size_t)ulPinLen;
    return true;
}

/*
 * The 2FA form of a login PIN (nimbus/pkcs11-vendor.h): "2fa=" base64 of
 * a 256-byte signature, ':', then the usual PIN. Recognized only with
 * exactly that many base64 characters and the colon after them, so that
 * no password (at most 32 characters) is ever read as it. true with the
 * signature in sig and the rest in *rest; false (a PIN without the form)
 * with *rest the whole PIN. *bad: the form is there but its base64 is not.
 */
#define PIN_2FA_HEAD (sizeof(NIMBUS_2FA_PIN_PREFIX) - 1)
static bool pin_2fa_split(const CK_UTF8CHAR *pin, CK_ULONG len,
                          uint8_t sig[NIMBUS_2FA_SIG_LEN],
                          const CK_UTF8CHAR **rest, CK_ULONG *restlen,
                          bool *bad)
{
    size_t head = PIN_2FA_HEAD + NIMBUS_2FA_SIG_B64_LEN, n = 0;

    *rest = pin;
    *restlen = len;
    *bad = false;
    if (pin == NULL || len <= head ||
        memcmp(pin, NIMBUS_2FA_PIN_PREFIX, PIN_2FA_HEAD) != 0 ||
        pin[head] != ':') {
        return false;
    }
    if (!util_b64_decode((const char *)pin + PIN_2FA_HEAD,
                         NIMBUS_2FA_SIG_B64_LEN, sig, NIMBUS_2FA_SIG_LEN, &n) ||
        n != NIMBUS_2FA_SIG_LEN) {
        *bad = true;
        return false;
    }
    *rest = pin + head + 1;
    *restlen = len - head - 1;
    return true;
}

/* ------------------------------------------------------------ slots */

CK_RV mod_C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList,
                        CK_ULONG_PTR pulCount)
{
    CK_RV rv = CKR_OK;

    (void)tokenPresent;
    if (!mod_ready()) {
        rv = CKR_CRYPTOKI_NOT_INITIALIZED;
        goto out;
    }
    if (pulCount == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    /* One slot, its token always present: tokenPresent changes nothing. */
    if (pSlotList == NULL) {
        *pulCount = 1;
        goto out;
    }
    if (*pulCount < 1) {
        *pulCount = 1;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    pSlotList[0] = MOD_SLOT_ID;
    *pulCount = 1;
out:
    return mod_ret(MOD_FN_C_GetSlotList, rv);
}

CK_RV mod_C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
    CK_RV rv = CKR_OK;

    if (!mod_ready()) {
        rv = CKR_CRYPTOKI_NOT_INITIALIZED;
        goto out;
    }
    if (slotID != MOD_SLOT_ID) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    if (pInfo == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    memset(pInfo, 0, sizeof(*pInfo));
    util_pad_copy(pInfo->slotDescription, sizeof(pInfo->slotDescription),
                  "Nimbus HSM slot 0");
    util_pad_copy(pInfo->manufacturerID, sizeof(pInfo->manufacturerID),
                  "Nimbus");
    pInfo->flags = CKF_TOKEN_PRESENT;
    pInfo->hardwareVersion.major = 0;
    pInfo->hardwareVersion.minor = 1;
    pInfo->firmwareVersion.major = 0;
    pInfo->firmwareVersion.minor = 1;
out:
    return mod_ret(MOD_FN_C_GetSlotInfo, rv);
}

/* CKF_*_PIN_COUNT_LOW / _FINAL_TRY / _LOCKED from a failure count. */
static CK_FLAGS pin_flags(unsigned long failures, unsigned long limit,
                          CK_FLAGS count_low, CK_FLAGS final_try,
                          CK_FLAGS locked)
{
    CK_FLAGS f = 0;

    if (failures > 0) {
        f |= count_low;
    }
    if (limit > 0 && failures == limit - 1) {
        f |= final_try;
    }
    if (failures >= limit) {
        f |= locked;
    }
    return f;
}

CK_RV mod_C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
    hsm_token_info_t ti;
    CK_FLAGS flags;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_GetTokenInfo, rv);
    }
    if (slotID != MOD_SLOT_ID) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    if (pInfo == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    memset(&ti, 0, sizeof(ti));
    rv = backend_token_info(mod_state.be, mod_state.conn, &ti);
    if (rv != CKR_OK) {
        goto out;
    }
    flags = CKF_RNG | CKF_LOGIN_REQUIRED;
    if (ti.activated) {
        flags |= CKF_TOKEN_INITIALIZED;
    }
    if (ti.preco) {
        flags |= CKF_SO_PIN_TO_BE_CHANGED;
    }
    if (ti.cu_exists) {
        flags |= CKF_USER_PIN_INITIALIZED;
    }
    flags |=
        pin_flags(ti.user_failures, ti.failure_limit, CKF_USER_PIN_COUNT_LOW,
                  CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED);
    flags |= pin_flags(ti.so_failures, ti.failure_limit, CKF_SO_PIN_COUNT_LOW,
                       CKF_SO_PIN_FINAL_TRY, CKF_SO_PIN_LOCKED);

    memset(pInfo, 0, sizeof(*pInfo));
    util_pad_copy(pInfo->label, sizeof(pInfo->label), ti.label);
    util_pad_copy(pInfo->manufacturerID, sizeof(pInfo->manufacturerID),
                  "Nimbus");
    util_pad_copy(pInfo->model, sizeof(pInfo->model), "Nimbus HSM");
    util_pad_copy(pInfo->serialNumber, sizeof(pInfo->serialNumber), ti.serial);
    pInfo->flags = flags;
    pInfo->ulMaxSessionCount = mod_state.cfg.max_sessions;
    pInfo->ulSessionCount = mod_session_count_locked();
    pInfo->ulMaxRwSessionCount = mod_state.cfg.max_sessions;
    pInfo->ulRwSessionCount = mod_state.rw_sessions;
    pInfo->ulMaxPinLen = MOD_PIN_REPORT_MAX;
    pInfo->ulMinPinLen = MOD_PIN_REPORT_MIN;
    pInfo->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->hardwareVersion.major = 0;
    pInfo->hardwareVersion.minor = 1;
    pInfo->firmwareVersion.major = 0;
    pInfo->firmwareVersion.minor = 1;
    /* No clock on the token (no CKF_CLOCK_ON_TOKEN): blank. */
    util_pad_copy(pInfo->utcTime, sizeof(pInfo->utcTime), "");
out:
    mod_leave();
    return mod_ret(MOD_FN_C_GetTokenInfo, rv);
}

CK_RV mod_C_GetMechanismList(CK_SLOT_ID slotID,
                             CK_MECHANISM_TYPE_PTR pMechanismList,
                             CK_ULONG_PTR pulCount)
{
    CK_MECHANISM_TYPE *list = NULL;
    size_t n = 0;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_GetMechanismList, rv);
    }
    if (slotID != MOD_SLOT_ID) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    if (pulCount == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    rv = backend_mech_list(mod_state.be, &list, &n);
    if (rv != CKR_OK) {
        goto out;
    }
    if (pMechanismList == NULL) {
        *pulCount = (CK_ULONG)n;
        goto out;
    }
    if (*pulCount < n) {
        *pulCount = (CK_ULONG)n;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    if (n > 0) {
        memcpy(pMechanismList, list, n * sizeof(*list));
    }
    *pulCount = (CK_ULONG)n;
out:
    mod_leave();
    free(list);
    return mod_ret(MOD_FN_C_GetMechanismList, rv);
}

CK_RV mod_C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
                             CK_MECHANISM_INFO_PTR pInfo)
{
    hsm_mech_info_t mi;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_GetMechanismInfo, rv);
    }
    if (slotID != MOD_SLOT_ID) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    if (pInfo == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    memset(&mi, 0, sizeof(mi));
    rv = backend_mech_info(mod_state.be, type, &mi);
    if (rv != CKR_OK) {
        goto out;
    }
    pInfo->ulMinKeySize = mi.min_key;
    pInfo->ulMaxKeySize = mi.max_key;
    pInfo->flags = mi.flags;
out:
    mod_leave();
    return mod_ret(MOD_FN_C_GetMechanismInfo, rv);
}

CK_RV mod_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot,
                             CK_VOID_PTR pReserved)
{
    CK_RV rv = CKR_FUNCTION_NOT_SUPPORTED;

    (void)flags;
    (void)pSlot;
    (void)pReserved;
    if (!mod_ready()) {
        rv = CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    return mod_ret(MOD_FN_C_WaitForSlotEvent, rv);
}

/* ------------------------------------------------------------ PIN calls */

CK_RV mod_C_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin,
                      CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel)
{
    struct pin pin;
    char label[CONFIG_LABEL_MAX + 1];
    size_t n;
    CK_RV rv;

    memset(&pin, 0, sizeof(pin));
    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_InitToken, rv);
    }
    if (slotID != MOD_SLOT_ID) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    if (pPin == NULL || pLabel == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (mod_session_count_locked() > 0) {
        rv = CKR_SESSION_EXISTS;
        goto out;
    }
    /* The label: 32 bytes, blank padded; stored without the padding. */
    memcpy(label, pLabel, CONFIG_LABEL_MAX);
    label[CONFIG_LABEL_MAX] = '\0';
    n = strlen(label);
    while (n > 0 && label[n - 1] == ' ') {
        label[--n] = '\0';
    }
    /* The PIN names a CO (bare: admin); a name too long is nobody's. */
    if (ulPinLen > MOD_PIN_LEN_MAX || !pin_parse(pPin, ulPinLen, &pin)) {
        rv = CKR_PIN_INCORRECT;
        goto out;
    }
    rv = backend_init_token(mod_state.be, pin_name(&pin), pin.pw, pin.pwlen,
                            label);
    if (rv == CKR_PIN_INVALID) {
        rv = CKR_PIN_INCORRECT;
    }
    if (rv == CKR_OK) {
        mod_handles_drop_locked();
    }
out:
    util_wipe(&pin, sizeof(pin));
    mod_leave();
    return mod_ret(MOD_FN_C_InitToken, rv);
}

CK_RV mod_C_InitPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin,
                    CK_ULONG ulPinLen)
{
    struct mod_session *s;
    struct pin pin;
    CK_RV rv;

    memset(&pin, 0, sizeof(pin));
    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_InitPIN, rv);
    }
    s = mod_session_get_locked(hSession);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    /* No protected authentication path: the PIN is required. */
    if (pPin == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!s->rw) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    if (ulPinLen > MOD_PIN_LEN_MAX) {
        rv = CKR_PIN_LEN_RANGE;
        goto out;
    }
    if (!pin_parse(pPin, ulPinLen, &pin)) {
        rv = CKR_PIN_INVALID;
        goto out;
    }
    rv = backend_init_pin(mod_state.conn, pin_name(&pin), pin.pw, pin.pwlen);
out:
    util_wipe(&pin, sizeof(pin));
    mod_leave();
    return mod_ret(MOD_FN_C_InitPIN, rv);
}

/* Name of the user logged in on the connection, "" when none. */
static void logged_in_name_locked(char *out, size_t outlen)
{
    hsm_user_info_t *users = NULL;
    size_t n = 0;
    size_t i;
    hsm_uid_t uid = 0;

    out[0] = '\0';
    if (backend_conn_user_type(mod_state.conn, &uid) == HSM_USER_NONE) {
        return;
    }
    if (backend_user_list(mod_state.conn, &users, &n) != CKR_OK) {
        return;
    }
    for (i = 0; i < n; i++) {
        if (users[i].id == uid) {
            snprintf(out, outlen, "%s", users[i].name);
            break;
        }
    }
    free(users);
}

/*
 * The new PIN of C_SetPIN may repeat the user's name ("name:newpw"): the
 * name of the old PIN, the logged-in user's, or (public session, bare old
 * PIN) the default CU's. Any other name is CKR_PIN_INVALID.
 */
static CK_RV new_pin_name_check_locked(const struct pin *oldp,
                                       const struct pin *newp)
{
    char who[MOD_NAME_BUF];

    if (!newp->has_name) {
        return CKR_OK;
    }
    if (oldp->has_name && strcasecmp(oldp->name, newp->name) == 0) {
        return CKR_OK;
    }
    logged_in_name_locked(who, sizeof(who));
    if (who[0] != '\0') {
        return strcasecmp(who, newp->name) == 0 ? CKR_OK : CKR_PIN_INVALID;
    }
    if (!oldp->has_name &&
        strcasecmp(mod_state.cfg.default_user, newp->name) == 0) {
        return CKR_OK;
    }
    return CKR_PIN_INVALID;
}

CK_RV mod_C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin,
                   CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin,
                   CK_ULONG ulNewLen)
{
    struct mod_session *s;
    struct pin oldp;
    struct pin newp;
    CK_RV rv;

    memset(&oldp, 0, sizeof(oldp));
    memset(&newp, 0, sizeof(newp));
    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_SetPIN, rv);
    }
    s = mod_session_get_locked(hSession);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    if (pOldPin == NULL || pNewPin == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!s->rw) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    if (ulOldLen > MOD_PIN_LEN_MAX || !pin_parse(pOldPin, ulOldLen, &oldp)) {
        rv = CKR_PIN_INCORRECT;
        goto out;
    }
    if (ulNewLen > MOD_PIN_LEN_MAX) {
        rv = CKR_PIN_LEN_RANGE;
        goto out;
    }
    if (!pin_parse(pNewPin, ulNewLen, &newp)) {
        rv = CKR_PIN_INVALID;
        goto out;
    }
    rv = new_pin_name_check_locked(&oldp, &newp);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = backend_set_password(mod_state.conn, pin_name(&oldp), oldp.pw,
                              oldp.pwlen, newp.pw, newp.pwlen);
    /* No such user (no CU yet): the old PIN is simply wrong. */
    if (rv == CKR_USER_PIN_NOT_INITIALIZED) {
        rv = CKR_PIN_INCORRECT;
    }
out:
    util_wipe(&oldp, sizeof(oldp));
    util_wipe(&newp, sizeof(newp));
    mod_leave();
    return mod_ret(MOD_FN_C_SetPIN, rv);
}

/* ------------------------------------------------------------ login */

/* Anything open read-only in this application? */
static bool ro_session_exists_locked(void)
{
    return mod_state.rw_sessions < mod_session_count_locked();
}

/*
 * C_Login(CKU_CONTEXT_SPECIFIC): the PIN ("name:password", or the bare
 * password of the logged-in user) for the operation of session s whose
 * key has CKA_ALWAYS_AUTHENTICATE. The session's own calls are serialized
 * by its mutex; the core checks the operation state under its locks.
 */
static CK_RV context_login_locked(struct mod_session *s, CK_UTF8CHAR_PTR pPin,
                                  CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pUsername,
                                  CK_ULONG ulUsernameLen)
{
    struct pin pin;
    CK_RV rv;

    if (!login_pin(pPin, ulPinLen, pUsername, ulUsernameLen, &pin)) {
        util_wipe(&pin, sizeof(pin));
        return CKR_PIN_INCORRECT;
    }
    rv = backend_context_login(mod_state.conn, s->sid, pin_name(&pin), pin.pw,
                               pin.pwlen);
    if (rv == CKR_PIN_LOCKED) {
        /* The core logged the user out: as C_Logout does here. */
        mod_handles_drop_locked();
        mod_sessions_cancel_finds_locked();
        mod_sessions_ops_abort_locked();
    }
    util_wipe(&pin, sizeof(pin));
    return rv;
}

/*
 * The body of C_Login and C_LoginUser. name/namelen NULL/0: the name, if
 * any, is inside the PIN; else the PIN is the bare password.
 */
static CK_RV login(enum mod_fn fn, CK_SESSION_HANDLE hSession,
                   CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
                   CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pUsername,
                   CK_ULONG ulUsernameLen)
{
    hsm_login_kind_t kind;
    struct pin pin;
    uint8_t sig[NIMBUS_2FA_SIG_LEN];
    const CK_UTF8CHAR *rest;
    CK_ULONG restlen;
    bool twofa, bad;
    CK_RV rv;

    memset(&pin, 0, sizeof(pin));
    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (mod_session_get_locked(hSession) == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    /* No protected authentication path: a PIN is always required. */
    if (pPin == NULL || (pUsername == NULL && ulUsernameLen > 0)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    switch (userType) {
    case CKU_SO:
        kind = HSM_LOGIN_SO;
        break;
    case CKU_USER:
        kind = HSM_LOGIN_USER;
        break;
    case CKU_NIMBUS_AU:
        kind = HSM_LOGIN_AU;
        break;
    case CKU_CONTEXT_SPECIFIC:
        rv = context_login_locked(mod_session_get_locked(hSession), pPin,
                                  ulPinLen, pUsername, ulUsernameLen);
        goto out;
    default:
        rv = CKR_USER_TYPE_INVALID;
        goto out;
    }
    if (kind == HSM_LOGIN_SO && ro_session_exists_locked()) {
        rv = CKR_SESSION_READ_ONLY_EXISTS;
        goto out;
    }
    /* A PIN carrying a signed 2FA challenge (nimbus/pkcs11-vendor.h). */
    twofa = pin_2fa_split(pPin, ulPinLen, sig, &rest, &restlen, &bad);
    if (bad || !login_pin(rest, restlen, pUsername, ulUsernameLen, &pin)) {
        rv = CKR_PIN_INCORRECT;
        goto out;
    }
    if (twofa) {
        rv = backend_login_2fa(mod_state.conn, kind, pin_name(&pin), pin.pw,
                               pin.pwlen, sig, sizeof(sig));
    } else {
        rv = backend_login(mod_state.conn, kind, pin_name(&pin), pin.pw,
                           pin.pwlen);
    }
out:
    util_wipe(&pin, sizeof(pin));
    util_wipe(sig, sizeof(sig));
    mod_leave();
    return mod_ret(fn, rv);
}

CK_RV mod_C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
                  CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
    return login(MOD_FN_C_Login, hSession, userType, pPin, ulPinLen, NULL, 0);
}

CK_RV mod_C_LoginUser(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType,
                      CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
                      CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen)
{
    return login(MOD_FN_C_LoginUser, hSession, userType, pPin, ulPinLen,
                 pUsername, ulUsernameLen);
}

CK_RV mod_nimbus_login_challenge(CK_SESSION_HANDLE hSession,
                                 CK_USER_TYPE userType,
                                 CK_UTF8CHAR_PTR pUsername,
                                 CK_ULONG ulUsernameLen, CK_BYTE_PTR pDigest,
                                 CK_ULONG_PTR pulDigestLen)
{
    char name[HSM_USER_NAME_MAX + 1];
    uint8_t digest[HSM_DIGEST_LEN];
    hsm_login_kind_t kind;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return rv;
    }
    if (mod_session_get_locked(hSession) == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    if (pulDigestLen == NULL || (pUsername == NULL && ulUsernameLen > 0) ||
        ulUsernameLen > HSM_USER_NAME_MAX ||
        (pUsername != NULL &&
         memchr(pUsername, '\0', (size_t)ulUsernameLen) != NULL)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    switch (userType) {
    case CKU_SO:
        kind = HSM_LOGIN_SO;
        break;
    case CKU_USER:
        kind = HSM_LOGIN_USER;
        break;
    case CKU_NIMBUS_AU:
        kind = HSM_LOGIN_AU;
        break;
    default:
        rv = CKR_USER_TYPE_INVALID;
        goto out;
    }
    /* The two-call convention: a length query makes no challenge (it
     * would replace the one the application is signing). */
    if (pDigest == NULL) {
        *pulDigestLen = HSM_DIGEST_LEN;
        goto out;
    }
    if (*pulDigestLen < HSM_DIGEST_LEN) {
        *pulDigestLen = HSM_DIGEST_LEN;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    if (ulUsernameLen > 0) {
        memcpy(name, pUsername, (size_t)ulUsernameLen);
    }
    name[ulUsernameLen] = '\0';
    rv = backend_login_challenge(mod_state.conn, kind,
                                 ulUsernameLen > 0 ? name : NULL, digest);
    if (rv == CKR_OK) {
        memcpy(pDigest, digest, HSM_DIGEST_LEN);
        *pulDigestLen = HSM_DIGEST_LEN;
    }
out:
    mod_leave();
    log_trace("C_NimbusLoginChallenge -> %s", mod_rv_name(rv));
    return rv;
}

CK_RV mod_C_Logout(CK_SESSION_HANDLE hSession)
{
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_Logout, rv);
    }
    if (mod_session_get_locked(hSession) == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    rv = backend_logout(mod_state.conn);
    if (rv != CKR_OK) {
        goto out;
    }
    mod_handles_drop_locked();
    mod_sessions_cancel_finds_locked();
    /* An operation keeps its key: none may outlive the login. */
    mod_sessions_ops_abort_locked();
out:
    mod_leave();
    return mod_ret(MOD_FN_C_Logout, rv);
}
