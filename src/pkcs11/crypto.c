/*
 * crypto.c - the crypto calls: C_Encrypt*, C_Decrypt*, C_Digest*, C_Sign*,
 * C_Verify*, C_GenerateKey, C_GenerateKeyPair, C_DeriveKey, C_WrapKey,
 * C_UnwrapKey and the 3.0 message-based encryption calls
 * (C_MessageEncryptInit ... C_MessageDecryptFinal).
 *
 * The front end keeps the per-session operation state machine (PKCS#11 3.0
 * sections 5.2 and 5.8-5.13), one state per kind of operation:
 * - Init while an operation of that kind is active: CKR_OPERATION_ACTIVE;
 *   any other call without Init: CKR_OPERATION_NOT_INITIALIZED.
 * - The two-call length convention: a NULL output buffer returns the length
 *   and CKR_OK, a buffer too small returns the length and
 *   CKR_BUFFER_TOO_SMALL; both leave the operation as it was. The core is
 *   asked for the length first, so it never sees a short buffer.
 * - A one-shot call (C_Sign ...) after an Update, or an Update or Final
 *   after a one-shot length query, is CKR_OPERATION_ACTIVE; like any other
 *   error it ends the operation (the spec: C_SignFinal "always terminates
 *   the active signing operation unless it returns CKR_BUFFER_TOO_SMALL or
 *   is a successful call to determine the length"; pkcs11-tool relies on
 *   it).
 * - The success of a one-shot or Final call ends it too.
 *
 * Message-based encryption (3.0 section 5.13/5.14) has its own state per
 * direction: none; initialized (between messages); a message begun with
 * C_EncryptMessageBegin and not yet ended by C_EncryptMessageNext with
 * CKF_END_OF_MESSAGE. C_EncryptMessage and ..Begin while a message is
 * under way are CKR_OPERATION_ACTIVE, ..Next without one is
 * CKR_OPERATION_NOT_INITIALIZED. An error in a message ends that message
 * (the core drops it), never the operation: only C_MessageEncryptFinal,
 * C_SessionCancel, logout and closing the session do.
 *
 * Locking (mod.h): the session and the handles are looked up under the
 * library lock; the core runs under the session's own mutex only.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "pkcs11/mod.h"

/*
 * A key handle this application does not have is passed to the core as
 * object id 0, which names no object: the core then answers with the
 * permission table first (a CO, AU or public session has no handles at
 * all, and must get CKR_USER_NOT_LOGGED_IN / CKR_PIN_EXPIRED as the table
 * says) and with CKR_OBJECT_HANDLE_INVALID after it, which the Init calls
 * report as CKR_KEY_HANDLE_INVALID.
 */
#define NO_OBJECT ((hsm_oid_t)0)

/* The core gets a valid pointer for an empty input. */
static const uint8_t empty_input[1];

/* ------------------------------------------------------------ entry */

/*
 * A crypto call's entry: the session (CKR_SESSION_HANDLE_INVALID) and the
 * object ids behind the n handles of keys (oks[i] false when handle i names
 * nothing: the caller decides when to say so). On CKR_OK the session is
 * referenced and locked; call_leave undoes both.
 */
static CK_RV call_enter_n(CK_SESSION_HANDLE hSession,
                          const CK_OBJECT_HANDLE *keys, size_t n,
                          hsm_oid_t *oids, bool *oks, struct mod_session **sp)
{
    struct mod_session *s;
    size_t i;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return rv;
    }
    s = mod_session_get_locked(hSession);
    if (s == NULL) {
        mod_leave();
        return CKR_SESSION_HANDLE_INVALID;
    }
    for (i = 0; i < n; i++) {
        oids[i] = NO_OBJECT;
        oks[i] = mod_oid_for_handle_locked(keys[i], &oids[i]);
    }
    rv = mod_session_call_unlock(s);
    if (rv != CKR_OK) {
        return rv;
    }
    *sp = s;
    return CKR_OK;
}

/* The same for one key handle (key NULL: none). */
static CK_RV call_enter(CK_SESSION_HANDLE hSession, const CK_OBJECT_HANDLE *key,
                        hsm_oid_t *oid, bool *key_ok, struct mod_session **sp)
{
    return call_enter_n(hSession, key, key != NULL ? 1 : 0, oid, key_ok, sp);
}

static void call_leave(struct mod_session *s)
{
    mod_session_unlock(s);
    mod_session_unref(s);
}

/*
 * Ends the operation of this kind after an error. The core ends its
 * operation on most errors itself; aborting again is harmless, and makes
 * sure none is left behind when it did not (a permission refused before
 * the operation was looked at, for one).
 */
static void op_end(struct mod_session *s, hsm_opkind_t kind)
{
    if (s->ops[kind] != MOD_OPS_NONE) {
        backend_op_abort(mod_state.conn, s->sid, kind);
        s->ops[kind] = MOD_OPS_NONE;
    }
}

/* A key the caller may not see has no handle for it. */
static CK_RV key_rv(CK_RV rv)
{
    return rv == CKR_OBJECT_HANDLE_INVALID ? CKR_KEY_HANDLE_INVALID : rv;
}

/* ------------------------------------------------------------ generic */

static CK_RV op_init(enum mod_fn fn, hsm_opkind_t kind,
                     CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                     const CK_OBJECT_HANDLE *key)
{
    struct mod_session *s;
    uint8_t iv[HSM_MSG_IV_MAX];
    size_t ivlen = 0;
    hsm_oid_t oid = 0;
    bool key_ok = true;
    hsm_mech_t mech;
    CK_RV rv;

    memset(&mech, 0, sizeof(mech));
    rv = call_enter(hSession, key, &oid, &key_ok, &s);
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (s->ops[kind] != MOD_OPS_NONE) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    rv = hsm_mech_decode(pMechanism, &mech);
    if (rv != CKR_OK) {
        goto out;
    }
    /* which mechanism an application really asked for (no parameter) */
    log_trace("%s: mechanism 0x%08lx", mod_fn_name(fn),
              (unsigned long)pMechanism->mechanism);
    /* An unknown handle goes in as oid 0 (no object): see NO_OBJECT. */
    rv = key_rv(backend_op_init_iv(mod_state.conn, s->sid, kind, &mech,
                                   key_ok ? oid : NO_OBJECT, iv, sizeof(iv),
                                   &ivlen));
    if (rv == CKR_OK && !key_ok) {
        backend_op_abort(mod_state.conn, s->sid, kind);
        rv = CKR_KEY_HANDLE_INVALID;
    }
    if (rv == CKR_OK) {
        s->ops[kind] = MOD_OPS_INIT;
        hsm_mech_write_gcm_iv(pMechanism, iv, ivlen);
    }
    util_wipe(iv, sizeof(iv));
out:
    hsm_mech_free(&mech);
    call_leave(s);
    return mod_ret(fn, rv);
}

/*
 * The two-call convention for a step that will produce up to need bytes:
 * CKR_OK with *go true when out has room; else the length is reported and
 * *go is false (CKR_OK for a query, CKR_BUFFER_TOO_SMALL).
 */
static CK_RV length_check(CK_BYTE_PTR out, CK_ULONG_PTR outlen, size_t need,
                          bool *go)
{
    *go = false;
    if (out == NULL) {
        *outlen = (CK_ULONG)need;
        return CKR_OK;
    }
    if (*outlen < need) {
        *outlen = (CK_ULONG)need;
        return CKR_BUFFER_TOO_SMALL;
    }
    *go = true;
    return CKR_OK;
}

/* C_Encrypt, C_Decrypt, C_Sign, C_Digest. */
static CK_RV op_oneshot(enum mod_fn fn, hsm_opkind_t kind,
                        CK_SESSION_HANDLE hSession, CK_BYTE_PTR in,
                        CK_ULONG inlen, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
    struct mod_session *s;
    size_t got;
    CK_RV rv;

    rv = call_enter(hSession, NULL, NULL, NULL, &s);
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (s->ops[kind] == MOD_OPS_NONE) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (s->ops[kind] == MOD_OPS_MULTI) {
        op_end(s, kind); /* mixing ends the operation (spec 5.2) */
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (outlen == NULL || (in == NULL && inlen > 0)) {
        rv = CKR_ARGUMENTS_BAD;
        op_end(s, kind);
        goto out;
    }
    /* The core answers the length query and a short buffer itself,
     * keeping the operation. */
    got = (size_t)*outlen;
    rv = backend_op_oneshot(mod_state.conn, s->sid, kind,
                            in != NULL ? in : empty_input, inlen, out, &got);
    if (rv == CKR_BUFFER_TOO_SMALL || (rv == CKR_OK && out == NULL)) {
        *outlen = (CK_ULONG)got;
        s->ops[kind] = MOD_OPS_ONESHOT;
        goto out;
    }
    if (rv == CKR_OK) {
        s->ops[kind] = MOD_OPS_NONE; /* the core ended it */
        *outlen = (CK_ULONG)got;
    } else {
        op_end(s, kind);
    }
out:
    call_leave(s);
    return mod_ret(fn, rv);
}

/*
 * C_EncryptUpdate, C_DecryptUpdate (with output); C_SignUpdate,
 * C_VerifyUpdate, C_DigestUpdate (outlen NULL: no output).
 */
static CK_RV op_update(enum mod_fn fn, hsm_opkind_t kind,
                       CK_SESSION_HANDLE hSession, CK_BYTE_PTR in,
                       CK_ULONG inlen, bool has_out, CK_BYTE_PTR out,
                       CK_ULONG_PTR outlen)
{
    struct mod_session *s;
    uint8_t scratch[1];
    uint8_t *dst = scratch;
    size_t need = 0;
    size_t got = 0;
    bool go;
    CK_RV rv;

    rv = call_enter(hSession, NULL, NULL, NULL, &s);
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (s->ops[kind] == MOD_OPS_NONE) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (s->ops[kind] == MOD_OPS_ONESHOT) {
        op_end(s, kind); /* mixing ends the operation (spec 5.2) */
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if ((in == NULL && inlen > 0) || (has_out && outlen == NULL)) {
        rv = CKR_ARGUMENTS_BAD;
        op_end(s, kind);
        goto out;
    }
    if (has_out) {
        rv = backend_op_output_len(mod_state.conn, s->sid, kind, false, inlen,
                                   &need);
        if (rv != CKR_OK) {
            op_end(s, kind);
            goto out;
        }
        rv = length_check(out, outlen, need, &go);
        if (!go) {
            goto out;
        }
        dst = out;
        got = (size_t)*outlen;
    }
    rv = backend_op_update(mod_state.conn, s->sid, kind,
                           in != NULL ? in : empty_input, inlen, dst, &got);
    if (rv == CKR_BUFFER_TOO_SMALL && has_out) {
        *outlen = (CK_ULONG)(got > need ? got : need);
        goto out;
    }
    if (rv != CKR_OK) {
        op_end(s, kind);
        goto out;
    }
    s->ops[kind] = MOD_OPS_MULTI;
    if (has_out) {
        *outlen = (CK_ULONG)got;
    }
out:
    call_leave(s);
    return mod_ret(fn, rv);
}

/* C_EncryptFinal, C_DecryptFinal, C_SignFinal, C_DigestFinal. */
static CK_RV op_final(enum mod_fn fn, hsm_opkind_t kind,
                      CK_SESSION_HANDLE hSession, CK_BYTE_PTR out,
                      CK_ULONG_PTR outlen)
{
    struct mod_session *s;
    size_t need = 0;
    size_t got;
    bool go;
    CK_RV rv;

    rv = call_enter(hSession, NULL, NULL, NULL, &s);
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (s->ops[kind] == MOD_OPS_NONE) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (s->ops[kind] == MOD_OPS_ONESHOT) {
        op_end(s, kind); /* mixing ends the operation (spec 5.2) */
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (outlen == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        op_end(s, kind);
        goto out;
    }
    rv = backend_op_output_len(mod_state.conn, s->sid, kind, true, 0, &need);
    if (rv != CKR_OK) {
        op_end(s, kind);
        goto out;
    }
    rv = length_check(out, outlen, need, &go);
    if (!go) {
        goto out;
    }
    got = (size_t)*outlen;
    rv = backend_op_final(mod_state.conn, s->sid, kind, out, &got);
    if (rv == CKR_BUFFER_TOO_SMALL) {
        *outlen = (CK_ULONG)(got > need ? got : need);
        goto out;
    }
    if (rv == CKR_OK) {
        s->ops[kind] = MOD_OPS_NONE; /* the core ended it */
        *outlen = (CK_ULONG)got;
    } else {
        op_end(s, kind);
    }
out:
    call_leave(s);
    return mod_ret(fn, rv);
}

/* C_Verify (oneshot) and C_VerifyFinal. */
static CK_RV op_verify(enum mod_fn fn, CK_SESSION_HANDLE hSession,
                       CK_BYTE_PTR data, CK_ULONG datalen, bool oneshot,
                       CK_BYTE_PTR sig, CK_ULONG siglen)
{
    struct mod_session *s;
    CK_RV rv;

    rv = call_enter(hSession, NULL, NULL, NULL, &s);
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (s->ops[HSM_OPK_VERIFY] == MOD_OPS_NONE) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (oneshot && s->ops[HSM_OPK_VERIFY] == MOD_OPS_MULTI) {
        op_end(s, HSM_OPK_VERIFY); /* mixing ends the operation */
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if ((oneshot && data == NULL && datalen > 0) ||
        (sig == NULL && siglen > 0)) {
        rv = CKR_ARGUMENTS_BAD;
        op_end(s, HSM_OPK_VERIFY);
        goto out;
    }
    if (oneshot) {
        rv = backend_op_verify(mod_state.conn, s->sid,
                               data != NULL ? data : empty_input, datalen, true,
                               sig != NULL ? sig : empty_input, siglen);
    } else {
        rv = backend_op_verify(mod_state.conn, s->sid, NULL, 0, false,
                               sig != NULL ? sig : empty_input, siglen);
    }
    if (rv == CKR_OK) {
        s->ops[HSM_OPK_VERIFY] = MOD_OPS_NONE; /* the core ended it */
    } else {
        op_end(s, HSM_OPK_VERIFY);
    }
out:
    call_leave(s);
    return mod_ret(fn, rv);
}

/* ------------------------------------------------------------ encrypt */

CK_RV mod_C_EncryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                        CK_OBJECT_HANDLE hKey)
{
    return op_init(MOD_FN_C_EncryptInit, HSM_OPK_ENCRYPT, hSession, pMechanism,
                   &hKey);
}

CK_RV mod_C_Encrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData,
                    CK_ULONG ulDataLen, CK_BYTE_PTR pEncryptedData,
                    CK_ULONG_PTR pulEncryptedDataLen)
{
    return op_oneshot(MOD_FN_C_Encrypt, HSM_OPK_ENCRYPT, hSession, pData,
                      ulDataLen, pEncryptedData, pulEncryptedDataLen);
}

CK_RV mod_C_EncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                          CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart,
                          CK_ULONG_PTR pulEncryptedPartLen)
{
    return op_update(MOD_FN_C_EncryptUpdate, HSM_OPK_ENCRYPT, hSession, pPart,
                     ulPartLen, true, pEncryptedPart, pulEncryptedPartLen);
}

CK_RV mod_C_EncryptFinal(CK_SESSION_HANDLE hSession,
                         CK_BYTE_PTR pLastEncryptedPart,
                         CK_ULONG_PTR pulLastEncryptedPartLen)
{
    return op_final(MOD_FN_C_EncryptFinal, HSM_OPK_ENCRYPT, hSession,
                    pLastEncryptedPart, pulLastEncryptedPartLen);
}

/* ------------------------------------------------------------ decrypt */

CK_RV mod_C_DecryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                        CK_OBJECT_HANDLE hKey)
{
    return op_init(MOD_FN_C_DecryptInit, HSM_OPK_DECRYPT, hSession, pMechanism,
                   &hKey);
}

CK_RV mod_C_Decrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData,
                    CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData,
                    CK_ULONG_PTR pulDataLen)
{
    return op_oneshot(MOD_FN_C_Decrypt, HSM_OPK_DECRYPT, hSession,
                      pEncryptedData, ulEncryptedDataLen, pData, pulDataLen);
}

CK_RV mod_C_DecryptUpdate(CK_SESSION_HANDLE hSession,
                          CK_BYTE_PTR pEncryptedPart,
                          CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
                          CK_ULONG_PTR pulPartLen)
{
    return op_update(MOD_FN_C_DecryptUpdate, HSM_OPK_DECRYPT, hSession,
                     pEncryptedPart, ulEncryptedPartLen, true, pPart,
                     pulPartLen);
}

CK_RV mod_C_DecryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart,
                         CK_ULONG_PTR pulLastPartLen)
{
    return op_final(MOD_FN_C_DecryptFinal, HSM_OPK_DECRYPT, hSession, pLastPart,
                    pulLastPartLen);
}

/* ------------------------------------------------------------ digest */

CK_RV mod_C_DigestInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism)
{
    return op_init(MOD_FN_C_DigestInit, HSM_OPK_DIGEST, hSession, pMechanism,
                   NULL);
}

CK_RV mod_C_Digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData,
                   CK_ULONG ulDataLen, CK_BYTE_PTR pDigest,
                   CK_ULONG_PTR pulDigestLen)
{
    return op_oneshot(MOD_FN_C_Digest, HSM_OPK_DIGEST, hSession, pData,
                      ulDataLen, pDigest, pulDigestLen);
}

CK_RV mod_C_DigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                         CK_ULONG ulPartLen)
{
    return op_update(MOD_FN_C_DigestUpdate, HSM_OPK_DIGEST, hSession, pPart,
                     ulPartLen, false, NULL, NULL);
}

CK_RV mod_C_DigestKey(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey)
{
    struct mod_session *s;
    hsm_oid_t oid = 0;
    bool key_ok = false;
    CK_RV rv;

    rv = call_enter(hSession, &hKey, &oid, &key_ok, &s);
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_DigestKey, rv);
    }
    if (s->ops[HSM_OPK_DIGEST] == MOD_OPS_NONE) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (s->ops[HSM_OPK_DIGEST] == MOD_OPS_ONESHOT) {
        op_end(s, HSM_OPK_DIGEST); /* mixing ends the operation */
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (!key_ok) {
        rv = CKR_KEY_HANDLE_INVALID;
    } else {
        rv = key_rv(backend_op_digest_key(mod_state.conn, s->sid, oid));
    }
    if (rv == CKR_OK) {
        s->ops[HSM_OPK_DIGEST] = MOD_OPS_MULTI;
    } else {
        op_end(s, HSM_OPK_DIGEST);
    }
out:
    call_leave(s);
    return mod_ret(MOD_FN_C_DigestKey, rv);
}

CK_RV mod_C_DigestFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest,
                        CK_ULONG_PTR pulDigestLen)
{
    return op_final(MOD_FN_C_DigestFinal, HSM_OPK_DIGEST, hSession, pDigest,
                    pulDigestLen);
}

/* ------------------------------------------------------------ sign */

CK_RV mod_C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                     CK_OBJECT_HANDLE hKey)
{
    return op_init(MOD_FN_C_SignInit, HSM_OPK_SIGN, hSession, pMechanism,
                   &hKey);
}

CK_RV mod_C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData,
                 CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
                 CK_ULONG_PTR pulSignatureLen)
{
    return op_oneshot(MOD_FN_C_Sign, HSM_OPK_SIGN, hSession, pData, ulDataLen,
                      pSignature, pulSignatureLen);
}

CK_RV mod_C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                       CK_ULONG ulPartLen)
{
    return op_update(MOD_FN_C_SignUpdate, HSM_OPK_SIGN, hSession, pPart,
                     ulPartLen, false, NULL, NULL);
}

CK_RV mod_C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                      CK_ULONG_PTR pulSignatureLen)
{
    return op_final(MOD_FN_C_SignFinal, HSM_OPK_SIGN, hSession, pSignature,
                    pulSignatureLen);
}

/* ------------------------------------------------------------ verify */

CK_RV mod_C_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                       CK_OBJECT_HANDLE hKey)
{
    return op_init(MOD_FN_C_VerifyInit, HSM_OPK_VERIFY, hSession, pMechanism,
                   &hKey);
}

CK_RV mod_C_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData,
                   CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
                   CK_ULONG ulSignatureLen)
{
    return op_verify(MOD_FN_C_Verify, hSession, pData, ulDataLen, true,
                     pSignature, ulSignatureLen);
}

CK_RV mod_C_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                         CK_ULONG ulPartLen)
{
    return op_update(MOD_FN_C_VerifyUpdate, HSM_OPK_VERIFY, hSession, pPart,
                     ulPartLen, false, NULL, NULL);
}

CK_RV mod_C_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                        CK_ULONG ulSignatureLen)
{
    return op_verify(MOD_FN_C_VerifyFinal, hSession, NULL, 0, false, pSignature,
                     ulSignatureLen);
}

/* ------------------------------------------------------------ new keys */

/*
 * Ends a key-making call: the session lock is dropped first (order), then
 * the new objects get their handles under the library lock.
 */
static CK_RV keys_finish(struct mod_session *s, CK_RV rv, const hsm_oid_t *oids,
                         CK_OBJECT_HANDLE *hs, size_t n)
{
    CK_RV lrv;

    lrv = mod_session_call_relock(s);
    if (lrv != CKR_OK) {
        return lrv; /* C_Finalize ran meanwhile */
    }
    if (rv == CKR_OK) {
        rv = mod_objects_register_locked(s, oids, hs, n);
    }
    mod_session_unref_locked(s);
    mod_leave();
    return rv;
}

CK_RV mod_C_GenerateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                        CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                        CK_OBJECT_HANDLE_PTR phKey)
{
    struct mod_session *s;
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    hsm_oid_t oid = 0;
    mod_tmpl_t tm = {NULL, NULL, 0};
    hsm_mech_t mech;
    CK_RV rv;

    memset(&mech, 0, sizeof(mech));
    rv = call_enter(hSession, NULL, NULL, NULL, &s);
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_GenerateKey, rv);
    }
    if (pMechanism == NULL || phKey == NULL) {
        rv = CKR_ARGUMENTS_BAD;
    }
    if (rv == CKR_OK) {
        rv = mod_template_in(pTemplate, ulCount, &tm);
    }
    if (rv == CKR_OK) {
        rv = hsm_mech_decode(pMechanism, &mech);
    }
    if (rv == CKR_OK) {
        rv = backend_generate_key(mod_state.conn, s->sid, &mech, tm.v, tm.n,
                                  &oid);
    }
    mod_template_free(&tm);
    hsm_mech_free(&mech);
    rv = keys_finish(s, rv, &oid, &h, 1);
    if (rv == CKR_OK) {
        *phKey = h;
    }
    return mod_ret(MOD_FN_C_GenerateKey, rv);
}

CK_RV mod_C_GenerateKeyPair(
    CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
    CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount,
    CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount,
    CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey)
{
    struct mod_session *s;
    CK_OBJECT_HANDLE hs[2] = {CK_INVALID_HANDLE, CK_INVALID_HANDLE};
    hsm_oid_t oids[2] = {0, 0};
    mod_tmpl_t pub = {NULL, NULL, 0};
    mod_tmpl_t priv = {NULL, NULL, 0};
    hsm_mech_t mech;
    CK_RV rv;

    memset(&mech, 0, sizeof(mech));
    rv = call_enter(hSession, NULL, NULL, NULL, &s);
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_GenerateKeyPair, rv);
    }
    if (pMechanism == NULL || phPublicKey == NULL || phPrivateKey == NULL) {
        rv = CKR_ARGUMENTS_BAD;
    }
    if (rv == CKR_OK) {
        rv = mod_template_in(pPublicKeyTemplate, ulPublicKeyAttributeCount,
                             &pub);
    }
    if (rv == CKR_OK) {
        rv = mod_template_in(pPrivateKeyTemplate, ulPrivateKeyAttributeCount,
                             &priv);
    }
    if (rv == CKR_OK) {
        rv = hsm_mech_decode(pMechanism, &mech);
    }
    if (rv == CKR_OK) {
        rv = backend_generate_key_pair(mod_state.conn, s->sid, &mech, pub.v,
                                       pub.n, priv.v, priv.n, &oids[0],
                                       &oids[1]);
    }
    mod_template_free(&pub);
    mod_template_free(&priv);
    hsm_mech_free(&mech);
    rv = keys_finish(s, rv, oids, hs, 2);
    if (rv == CKR_OK) {
        *phPublicKey = hs[0];
        *phPrivateKey = hs[1];
    }
    return mod_ret(MOD_FN_C_GenerateKeyPair, rv);
}

CK_RV mod_C_DeriveKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                      CK_OBJECT_HANDLE hBaseKey, CK_ATTRIBUTE_PTR pTemplate,
                      CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey)
{
    struct mod_session *s;
    CK_OBJECT_HANDLE keys[2] = {hBaseKey, CK_INVALID_HANDLE};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    hsm_oid_t oids[2] = {0, 0};
    bool oks[2] = {false, false};
    hsm_mech_t mech;
    uint64_t *ref = NULL;
    hsm_oid_t oid = 0;
    mod_tmpl_t tm = {NULL, NULL, 0};
    CK_RV rv, mrv;

    /* The caller's parameter is decoded before the lock (it is its
     * memory); a key it names is looked up with the base key. */
    mrv = hsm_mech_decode(pMechanism, &mech);
    if (mrv == CKR_OK && (ref = hsm_mech_key_ref(&mech)) != NULL) {
        keys[1] = (CK_OBJECT_HANDLE)*ref;
    }
    rv = call_enter_n(hSession, keys, ref != NULL ? 2 : 1, oids, oks, &s);
    if (rv != CKR_OK) {
        hsm_mech_free(&mech);
        return mod_ret(MOD_FN_C_DeriveKey, rv);
    }
    if (pMechanism == NULL || phKey == NULL) {
        rv = CKR_ARGUMENTS_BAD;
    }
    if (rv == CKR_OK) {
        rv = mod_template_in(pTemplate, ulAttributeCount, &tm);
    }
    if (rv == CKR_OK) {
        rv = mrv;
    }
    if (rv == CKR_OK) {
        /*
         * The object id in place of the handle. A handle this application
         * does not have becomes oid 0 (no object), which the core answers
         * with CKR_KEY_HANDLE_INVALID: the parameter names a key, and the
         * spec has no closer code for a key handle given inside a
         * mechanism parameter (CKR_MECHANISM_PARAM_INVALID would hide
         * which argument is wrong).
         */
        if (ref != NULL) {
            *ref = oks[1] ? oids[1] : NO_OBJECT;
        }
        rv = key_rv(backend_derive_key(mod_state.conn, s->sid, &mech,
                                       oks[0] ? oids[0] : NO_OBJECT, tm.v, tm.n,
                                       &oid));
        if (rv == CKR_OK && (!oks[0] || (ref != NULL && !oks[1]))) {
            /* Cannot happen (no object has id 0); never keep it. */
            (void)backend_object_destroy(mod_state.conn, s->sid, oid);
            rv = CKR_KEY_HANDLE_INVALID;
        }
    }
    mod_template_free(&tm);
    hsm_mech_free(&mech);
    rv = keys_finish(s, rv, &oid, &h, 1);
    if (rv == CKR_OK) {
        *phKey = h;
    }
    return mod_ret(MOD_FN_C_DeriveKey, rv);
}

/* ------------------------------------------------------------ wrapping */

/*
 * C_WrapKey: the core wraps into a buffer of its own every time; the
 * two-call convention is done on that (a NULL buffer gets the length, a
 * short one the length and CKR_BUFFER_TOO_SMALL) and the blob is wiped.
 */
CK_RV mod_C_WrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                    CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey,
                    CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen)
{
    struct mod_session *s;
    const CK_OBJECT_HANDLE keys[2] = {hWrappingKey, hKey};
    hsm_oid_t oids[2] = {0, 0};
    bool oks[2] = {false, false};
    uint8_t *blob = NULL;
    size_t len = 0;
    hsm_mech_t mech;
    bool go;
    CK_RV rv;

    memset(&mech, 0, sizeof(mech));
    rv = call_enter_n(hSession, keys, 2, oids, oks, &s);
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_WrapKey, rv);
    }
    if (pMechanism == NULL || pulWrappedKeyLen == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    rv = hsm_mech_decode(pMechanism, &mech);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = backend_wrap_key(mod_state.conn, s->sid, &mech,
                          oks[0] ? oids[0] : NO_OBJECT,
                          oks[1] ? oids[1] : NO_OBJECT, &blob, &len);
    if (rv == CKR_OK && (!oks[0] || !oks[1])) {
        /* Cannot happen (no object has id 0). */
        rv = !oks[0] ? CKR_WRAPPING_KEY_HANDLE_INVALID : CKR_KEY_HANDLE_INVALID;
    }
    if (rv != CKR_OK) {
        goto out;
    }
    if (len > (size_t)(CK_ULONG)-1) {
        rv = CKR_GENERAL_ERROR;
        goto out;
    }
    rv = length_check(pWrappedKey, pulWrappedKeyLen, len, &go);
    if (go) {
        memcpy(pWrappedKey, blob, len);
        *pulWrappedKeyLen = (CK_ULONG)len;
    }
out:
    if (blob != NULL) {
        util_free_wipe(blob, len);
    }
    hsm_mech_free(&mech);
    call_leave(s);
    return mod_ret(MOD_FN_C_WrapKey, rv);
}

CK_RV mod_C_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                      CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey,
                      CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate,
                      CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey)
{
    struct mod_session *s;
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    hsm_oid_t uoid = 0;
    hsm_oid_t oid = 0;
    bool key_ok = false;
    mod_tmpl_t tm = {NULL, NULL, 0};
    hsm_mech_t mech;
    CK_RV rv;

    memset(&mech, 0, sizeof(mech));
    rv = call_enter(hSession, &hUnwrappingKey, &uoid, &key_ok, &s);
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_UnwrapKey, rv);
    }
    if (pMechanism == NULL || phKey == NULL ||
        (pWrappedKey == NULL && ulWrappedKeyLen > 0)) {
        rv = CKR_ARGUMENTS_BAD;
    }
    if (rv == CKR_OK && ulWrappedKeyLen > MOD_WRAPPED_KEY_MAX) {
        rv = CKR_WRAPPED_KEY_LEN_RANGE;
    }
    if (rv == CKR_OK) {
        rv = mod_template_in(pTemplate, ulAttributeCount, &tm);
    }
    if (rv == CKR_OK) {
        rv = hsm_mech_decode(pMechanism, &mech);
    }
    if (rv == CKR_OK) {
        rv = backend_unwrap_key(mod_state.conn, s->sid, &mech,
                                key_ok ? uoid : NO_OBJECT,
                                pWrappedKey != NULL ? pWrappedKey : empty_input,
                                (size_t)ulWrappedKeyLen, tm.v, tm.n, &oid);
        if (rv == CKR_OK && !key_ok) {
            /* Cannot happen (no object has id 0); never keep it. */
            (void)backend_object_destroy(mod_state.conn, s->sid, oid);
            rv = CKR_UNWRAPPING_KEY_HANDLE_INVALID;
        }
    }
    mod_template_free(&tm);
    hsm_mech_free(&mech);
    rv = keys_finish(s, rv, &oid, &h, 1);
    if (rv == CKR_OK) {
        *phKey = h;
    }
    return mod_ret(MOD_FN_C_UnwrapKey, rv);
}

/* ------------------------------------------------------------ messages */

/* What an encryption produced goes back into the caller's parameter: the
 * IV the generator made, the tag of a finished message. */
static void msg_write_back(struct mod_session *s, hsm_msgkind_t kind,
                           CK_VOID_PTR param, CK_ULONG paramlen,
                           const hsm_msg_result_t *res)
{
    hsm_mech_write_msg(s->msg_mech[kind], param, paramlen, res->iv, res->iv_len,
                       res->tag, res->tag_len);
}

/* The message parameter decoded for the operation's mechanism: any defect
 * is a bad argument of the message call (see msg_rv). */
static CK_RV msg_param(struct mod_session *s, hsm_msgkind_t kind,
                       CK_VOID_PTR param, CK_ULONG paramlen, hsm_mech_t *mp)
{
    CK_RV rv = hsm_mech_decode_msg(s->msg_mech[kind], param, paramlen,
                                   kind == HSM_MSG_DECRYPT, mp);

    return rv == CKR_MECHANISM_PARAM_INVALID ? CKR_ARGUMENTS_BAD : rv;
}

/*
 * The message functions' lists (3.0 section 5.13/5.14) have no
 * CKR_MECHANISM_PARAM_INVALID: a message parameter the core refuses is a
 * bad argument of that call.
 */
static CK_RV msg_rv(CK_RV rv)
{
    return rv == CKR_MECHANISM_PARAM_INVALID ? CKR_ARGUMENTS_BAD : rv;
}

static CK_RV msg_init(enum mod_fn fn, hsm_msgkind_t kind,
                      CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                      CK_OBJECT_HANDLE hKey)
{
    struct mod_session *s;
    hsm_oid_t oid = 0;
    bool key_ok = false;
    hsm_mech_t mech;
    CK_RV rv;

    memset(&mech, 0, sizeof(mech));
    rv = call_enter(hSession, &hKey, &oid, &key_ok, &s);
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (s->msg[kind] != MOD_OPS_NONE) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    rv = hsm_mech_decode_type(pMechanism, &mech);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = key_rv(backend_msg_init(mod_state.conn, s->sid, kind, &mech,
                                 key_ok ? oid : NO_OBJECT));
    if (rv == CKR_OK && !key_ok) {
        backend_msg_abort(mod_state.conn, s->sid, kind);
        rv = CKR_KEY_HANDLE_INVALID;
    }
    if (rv == CKR_OK) {
        s->msg[kind] = MOD_OPS_INIT;
        s->msg_mech[kind] = pMechanism->mechanism;
    }
out:
    call_leave(s);
    return mod_ret(fn, rv);
}

/* C_EncryptMessage, C_DecryptMessage. */
static CK_RV msg_oneshot(enum mod_fn fn, hsm_msgkind_t kind,
                         CK_SESSION_HANDLE hSession, CK_VOID_PTR param,
                         CK_ULONG paramlen, CK_BYTE_PTR aad, CK_ULONG aadlen,
                         CK_BYTE_PTR in, CK_ULONG inlen, CK_BYTE_PTR out,
                         CK_ULONG_PTR outlen)
{
    struct mod_session *s;
    hsm_mech_t mp;
    hsm_msg_result_t res;
    size_t need = 0;
    size_t got;
    bool go;
    CK_RV rv;

    memset(&res, 0, sizeof(res));
    memset(&mp, 0, sizeof(mp));
    rv = call_enter(hSession, NULL, NULL, NULL, &s);
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (s->msg[kind] == MOD_OPS_NONE) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (s->msg[kind] == MOD_OPS_MULTI) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (outlen == NULL || (aad == NULL && aadlen > 0) ||
        (in == NULL && inlen > 0)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if ((rv = msg_param(s, kind, param, paramlen, &mp)) != CKR_OK) {
        goto out;
    }
    rv = backend_msg_output_len(mod_state.conn, s->sid, kind, false, inlen,
                                &need);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = length_check(out, outlen, need, &go);
    if (!go) {
        goto out;
    }
    got = (size_t)*outlen;
    rv = backend_msg_oneshot(
        mod_state.conn, s->sid, kind, &mp, aad != NULL ? aad : empty_input,
        aadlen, in != NULL ? in : empty_input, inlen, out, &got, &res);
    if (rv == CKR_BUFFER_TOO_SMALL) {
        *outlen = (CK_ULONG)(got > need ? got : need);
        goto out;
    }
    if (rv == CKR_OK) {
        *outlen = (CK_ULONG)got;
        if (kind == HSM_MSG_ENCRYPT) {
            msg_write_back(s, kind, param, paramlen, &res);
        }
    }
out:
    hsm_mech_free(&mp);
    util_wipe(&res, sizeof(res));
    call_leave(s);
    return mod_ret(fn, msg_rv(rv));
}

/* C_EncryptMessageBegin, C_DecryptMessageBegin. */
static CK_RV msg_begin(enum mod_fn fn, hsm_msgkind_t kind,
                       CK_SESSION_HANDLE hSession, CK_VOID_PTR param,
                       CK_ULONG paramlen, CK_BYTE_PTR aad, CK_ULONG aadlen)
{
    struct mod_session *s;
    hsm_mech_t mp;
    hsm_msg_result_t res;
    CK_RV rv;

    memset(&res, 0, sizeof(res));
    memset(&mp, 0, sizeof(mp));
    rv = call_enter(hSession, NULL, NULL, NULL, &s);
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (s->msg[kind] == MOD_OPS_NONE) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (s->msg[kind] == MOD_OPS_MULTI) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (aad == NULL && aadlen > 0) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if ((rv = msg_param(s, kind, param, paramlen, &mp)) != CKR_OK) {
        goto out;
    }
    rv = backend_msg_begin(mod_state.conn, s->sid, kind, &mp,
                           aad != NULL ? aad : empty_input, aadlen, &res);
    if (rv == CKR_OK) {
        s->msg[kind] = MOD_OPS_MULTI;
        if (kind == HSM_MSG_ENCRYPT) {
            msg_write_back(s, kind, param, paramlen, &res);
        }
    }
out:
    hsm_mech_free(&mp);
    util_wipe(&res, sizeof(res));
    call_leave(s);
    return mod_ret(fn, msg_rv(rv));
}

/* C_EncryptMessageNext, C_DecryptMessageNext. */
static CK_RV msg_next(enum mod_fn fn, hsm_msgkind_t kind,
                      CK_SESSION_HANDLE hSession, CK_VOID_PTR param,
                      CK_ULONG paramlen, CK_BYTE_PTR in, CK_ULONG inlen,
                      CK_BYTE_PTR out, CK_ULONG_PTR outlen, CK_FLAGS flags)
{
    struct mod_session *s;
    hsm_mech_t mp;
    hsm_msg_result_t res;
    bool last = (flags & CKF_END_OF_MESSAGE) != 0;
    size_t need = 0;
    size_t got;
    bool go;
    CK_RV rv;

    memset(&res, 0, sizeof(res));
    memset(&mp, 0, sizeof(mp));
    rv = call_enter(hSession, NULL, NULL, NULL, &s);
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (s->msg[kind] != MOD_OPS_MULTI) {
        /* No operation, or no message begun. */
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (outlen == NULL || (in == NULL && inlen > 0) ||
        (flags & ~(CK_FLAGS)CKF_END_OF_MESSAGE) != 0) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if ((rv = msg_param(s, kind, param, paramlen, &mp)) != CKR_OK) {
        goto out;
    }
    rv = backend_msg_output_len(mod_state.conn, s->sid, kind, last, inlen,
                                &need);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = length_check(out, outlen, need, &go);
    if (!go) {
        goto out;
    }
    got = (size_t)*outlen;
    rv = backend_msg_next(mod_state.conn, s->sid, kind, &mp,
                          in != NULL ? in : empty_input, inlen, last, out, &got,
                          &res);
    if (rv == CKR_BUFFER_TOO_SMALL) {
        *outlen = (CK_ULONG)(got > need ? got : need);
        goto out;
    }
    if (rv == CKR_OK) {
        *outlen = (CK_ULONG)got;
        if (last && kind == HSM_MSG_ENCRYPT) {
            msg_write_back(s, kind, param, paramlen, &res);
        }
    }
    if (rv != CKR_OK || last) {
        /* The message ended: with its last part, or with the error. */
        s->msg[kind] = MOD_OPS_INIT;
    }
out:
    hsm_mech_free(&mp);
    util_wipe(&res, sizeof(res));
    call_leave(s);
    return mod_ret(fn, msg_rv(rv));
}

/* C_MessageEncryptFinal, C_MessageDecryptFinal (a message under way is
 * dropped with the operation). */
static CK_RV msg_final(enum mod_fn fn, hsm_msgkind_t kind,
                       CK_SESSION_HANDLE hSession)
{
    struct mod_session *s;
    CK_RV rv;

    rv = call_enter(hSession, NULL, NULL, NULL, &s);
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (s->msg[kind] == MOD_OPS_NONE) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    rv = backend_msg_final(mod_state.conn, s->sid, kind);
    if (rv != CKR_OK) {
        backend_msg_abort(mod_state.conn, s->sid, kind);
    }
    s->msg[kind] = MOD_OPS_NONE;
out:
    call_leave(s);
    return mod_ret(fn, rv);
}

CK_RV mod_C_MessageEncryptInit(CK_SESSION_HANDLE hSession,
                               CK_MECHANISM_PTR pMechanism,
                               CK_OBJECT_HANDLE hKey)
{
    return msg_init(MOD_FN_C_MessageEncryptInit, HSM_MSG_ENCRYPT, hSession,
                    pMechanism, hKey);
}

CK_RV mod_C_EncryptMessage(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                           CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,
                           CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pPlaintext,
                           CK_ULONG ulPlaintextLen, CK_BYTE_PTR pCiphertext,
                           CK_ULONG_PTR pulCiphertextLen)
{
    return msg_oneshot(MOD_FN_C_EncryptMessage, HSM_MSG_ENCRYPT, hSession,
                       pParameter, ulParameterLen, pAssociatedData,
                       ulAssociatedDataLen, pPlaintext, ulPlaintextLen,
                       pCiphertext, pulCiphertextLen);
}

CK_RV mod_C_EncryptMessageBegin(CK_SESSION_HANDLE hSession,
                                CK_VOID_PTR pParameter, CK_ULONG ulParameterLen,
                                CK_BYTE_PTR pAssociatedData,
                                CK_ULONG ulAssociatedDataLen)
{
    return msg_begin(MOD_FN_C_EncryptMessageBegin, HSM_MSG_ENCRYPT, hSession,
                     pParameter, ulParameterLen, pAssociatedData,
                     ulAssociatedDataLen);
}

CK_RV mod_C_EncryptMessageNext(CK_SESSION_HANDLE hSession,
                               CK_VOID_PTR pParameter, CK_ULONG ulParameterLen,
                               CK_BYTE_PTR pPlaintextPart,
                               CK_ULONG ulPlaintextPartLen,
                               CK_BYTE_PTR pCiphertextPart,
                               CK_ULONG_PTR pulCiphertextPartLen,
                               CK_FLAGS flags)
{
    return msg_next(MOD_FN_C_EncryptMessageNext, HSM_MSG_ENCRYPT, hSession,
                    pParameter, ulParameterLen, pPlaintextPart,
                    ulPlaintextPartLen, pCiphertextPart, pulCiphertextPartLen,
                    flags);
}

CK_RV mod_C_MessageEncryptFinal(CK_SESSION_HANDLE hSession)
{
    return msg_final(MOD_FN_C_MessageEncryptFinal, HSM_MSG_ENCRYPT, hSession);
}

CK_RV mod_C_MessageDecryptInit(CK_SESSION_HANDLE hSession,
                               CK_MECHANISM_PTR pMechanism,
                               CK_OBJECT_HANDLE hKey)
{
    return msg_init(MOD_FN_C_MessageDecryptInit, HSM_MSG_DECRYPT, hSession,
                    pMechanism, hKey);
}

CK_RV mod_C_DecryptMessage(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                           CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData,
                           CK_ULONG ulAssociatedDataLen,
                           CK_BYTE_PTR pCiphertext, CK_ULONG ulCiphertextLen,
                           CK_BYTE_PTR pPlaintext, CK_ULONG_PTR pulPlaintextLen)
{
    return msg_oneshot(MOD_FN_C_DecryptMessage, HSM_MSG_DECRYPT, hSession,
                       pParameter, ulParameterLen, pAssociatedData,
                       ulAssociatedDataLen, pCiphertext, ulCiphertextLen,
                       pPlaintext, pulPlaintextLen);
}

CK_RV mod_C_DecryptMessageBegin(CK_SESSION_HANDLE hSession,
                                CK_VOID_PTR pParameter, CK_ULONG ulParameterLen,
                                CK_BYTE_PTR pAssociatedData,
                                CK_ULONG ulAssociatedDataLen)
{
    return msg_begin(MOD_FN_C_DecryptMessageBegin, HSM_MSG_DECRYPT, hSession,
                     pParameter, ulParameterLen, pAssociatedData,
                     ulAssociatedDataLen);
}

CK_RV mod_C_DecryptMessageNext(CK_SESSION_HANDLE hSession,
                               CK_VOID_PTR pParameter, CK_ULONG ulParameterLen,
                               CK_BYTE_PTR pCiphertextPart,
                               CK_ULONG ulCiphertextPartLen,
                               CK_BYTE_PTR pPlaintextPart,
                               CK_ULONG_PTR pulPlaintextPartLen, CK_FLAGS flags)
{
    return msg_next(MOD_FN_C_DecryptMessageNext, HSM_MSG_DECRYPT, hSession,
                    pParameter, ulParameterLen, pCiphertextPart,
                    ulCiphertextPartLen, pPlaintextPart, pulPlaintextPartLen,
                    flags);
}

CK_RV mod_C_MessageDecryptFinal(CK_SESSION_HANDLE hSession)
{
    return msg_final(MOD_FN_C_MessageDecryptFinal, HSM_MSG_DECRYPT, hSession);
}
