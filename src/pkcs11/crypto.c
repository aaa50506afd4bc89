/*
 * crypto.c - the crypto calls: C_Encrypt*, C_Decrypt*, C_Digest*, C_Sign*,
 * C_Verify*, C_GenerateKey, C_GenerateKeyPair, C_DeriveKey.
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
 *   after a one-shot length query, is CKR_OPERATION_ACTIVE and the
 *   operation stays.
 * - Any other error ends the operation, and so does the success of a
 *   one-shot or Final call.
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
 * A crypto call's entry: the session (CKR_SESSION_HANDLE_INVALID) and,
 * when key is given, the object id behind it (*key_ok false when the
 * handle names nothing: the caller decides when to say so). On CKR_OK the
 * session is referenced and locked; call_leave undoes both.
 */
static CK_RV call_enter(CK_SESSION_HANDLE hSession, const CK_OBJECT_HANDLE *key,
                        hsm_oid_t *oid, bool *key_ok, struct mod_session **sp)
{
    struct mod_session *s;
    uint64_t v = 0;
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
    if (key != NULL) {
        *key_ok = mod_hmap_get(&mod_state.h2o, (uint64_t)*key, &v);
        *oid = (hsm_oid_t)v;
    }
    mod_session_ref_locked(s);
    mod_leave();
    rv = mod_session_lock(s);
    if (rv != CKR_OK) {
        mod_session_unref(s);
        return rv;
    }
    *sp = s;
    return CKR_OK;
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
        hsm_op_abort(mod_state.conn, s->sid, kind);
        s->ops[kind] = MOD_OPS_NONE;
    }
}

/*
 * The mechanism as handed in: present, and a parameter that is there when
 * its length says so and not longer than we accept. The core checks the
 * exact layout.
 */
static CK_RV mech_check(const CK_MECHANISM *m)
{
    if (m == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    if (m->pParameter == NULL && m->ulParameterLen > 0) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if (m->ulParameterLen > MOD_MECH_PARAM_MAX) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    return CKR_OK;
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
    hsm_oid_t oid = 0;
    bool key_ok = true;
    CK_RV rv;

    rv = call_enter(hSession, key, &oid, &key_ok, &s);
    if (rv != CKR_OK) {
        return mod_ret(fn, rv);
    }
    if (s->ops[kind] != MOD_OPS_NONE) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    rv = mech_check(pMechanism);
    if (rv != CKR_OK) {
        goto out;
    }
    /* An unknown handle goes in as oid 0 (no object): see NO_OBJECT. */
    rv = key_rv(hsm_op_init(mod_state.conn, s->sid, kind, pMechanism,
                            key_ok ? oid : NO_OBJECT));
    if (rv == CKR_OK && !key_ok) {
        hsm_op_abort(mod_state.conn, s->sid, kind);
        rv = CKR_KEY_HANDLE_INVALID;
    }
    if (rv == CKR_OK) {
        s->ops[kind] = MOD_OPS_INIT;
    }
out:
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
    if (s->ops[kind] == MOD_OPS_MULTI) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (outlen == NULL || (in == NULL && inlen > 0)) {
        rv = CKR_ARGUMENTS_BAD;
        op_end(s, kind);
        goto out;
    }
    rv = hsm_op_output_len(mod_state.conn, s->sid, kind, false, inlen, &need);
    if (rv != CKR_OK) {
        op_end(s, kind);
        goto out;
    }
    rv = length_check(out, outlen, need, &go);
    if (!go) {
        s->ops[kind] = MOD_OPS_ONESHOT;
        goto out;
    }
    got = (size_t)*outlen;
    rv = hsm_op_oneshot(mod_state.conn, s->sid, kind,
                        in != NULL ? in : empty_input, inlen, out, &got);
    if (rv == CKR_BUFFER_TOO_SMALL) {
        /* The core kept the operation (it should not happen: see above). */
        *outlen = (CK_ULONG)(got > need ? got : need);
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
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if ((in == NULL && inlen > 0) || (has_out && outlen == NULL)) {
        rv = CKR_ARGUMENTS_BAD;
        op_end(s, kind);
        goto out;
    }
    if (has_out) {
        rv = hsm_op_output_len(mod_state.conn, s->sid, kind, false, inlen,
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
    rv = hsm_op_update(mod_state.conn, s->sid, kind,
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
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (outlen == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        op_end(s, kind);
        goto out;
    }
    rv = hsm_op_output_len(mod_state.conn, s->sid, kind, true, 0, &need);
    if (rv != CKR_OK) {
        op_end(s, kind);
        goto out;
    }
    rv = length_check(out, outlen, need, &go);
    if (!go) {
        goto out;
    }
    got = (size_t)*outlen;
    rv = hsm_op_final(mod_state.conn, s->sid, kind, out, &got);
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
        rv = hsm_op_verify(mod_state.conn, s->sid,
                           data != NULL ? data : empty_input, datalen, true,
                           sig != NULL ? sig : empty_input, siglen);
    } else {
        rv = hsm_op_verify(mod_state.conn, s->sid, NULL, 0, false,
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
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (!key_ok) {
        rv = CKR_KEY_HANDLE_INVALID;
    } else {
        rv = key_rv(hsm_op_digest_key(mod_state.conn, s->sid, oid));
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
 * Handles for new objects, as C_CreateObject gives them (object.c keeps
 * its helpers static; these do the same on the same maps).
 */
static CK_RV new_handle_locked(hsm_oid_t oid, CK_OBJECT_HANDLE *h)
{
    CK_OBJECT_HANDLE nh = mod_state.next_object;
    uint64_t v;
    CK_RV rv;

    if (mod_hmap_get(&mod_state.o2h, oid, &v)) {
        *h = (CK_OBJECT_HANDLE)v;
        return CKR_OK;
    }
    rv = mod_hmap_put(&mod_state.h2o, (uint64_t)nh, oid);
    if (rv != CKR_OK) {
        return rv;
    }
    rv = mod_hmap_put(&mod_state.o2h, oid, (uint64_t)nh);
    if (rv != CKR_OK) {
        mod_hmap_del(&mod_state.h2o, (uint64_t)nh);
        return rv;
    }
    mod_state.next_object++;
    *h = nh;
    return CKR_OK;
}

static void handle_forget_locked(hsm_oid_t oid)
{
    uint64_t h;

    if (mod_hmap_get(&mod_state.o2h, oid, &h)) {
        mod_hmap_del(&mod_state.h2o, h);
        mod_hmap_del(&mod_state.o2h, oid);
    }
}

/* Session objects of s die with it: remember them. */
static CK_RV note_session_object_locked(struct mod_session *s, hsm_oid_t oid)
{
    static const CK_ATTRIBUTE_TYPE type = CKA_TOKEN;
    hsm_attr_t a;
    bool token;
    CK_RV rv;

    memset(&a, 0, sizeof(a));
    rv = hsm_object_get(mod_state.conn, s->sid, oid, &type, 1, &a);
    if (rv != CKR_OK) {
        return rv;
    }
    token = a.status == HSM_ATTR_OK && a.len == sizeof(CK_BBOOL) &&
            *(const CK_BBOOL *)a.value == CK_TRUE;
    hsm_attrs_free(&a, 1);
    if (token) {
        return CKR_OK;
    }
    if (s->sobj_n == s->sobj_cap) {
        size_t cap = s->sobj_cap == 0 ? 8 : s->sobj_cap * 2;
        hsm_oid_t *v;

        if (cap > MOD_HMAP_MAX_ENTRIES) {
            return CKR_HOST_MEMORY;
        }
        v = realloc(s->sobj, cap * sizeof(*v));
        if (v == NULL) {
            return CKR_HOST_MEMORY;
        }
        s->sobj = v;
        s->sobj_cap = cap;
    }
    s->sobj[s->sobj_n++] = oid;
    return CKR_OK;
}

/*
 * Gives handles to the n new objects of a generate or derive call; on
 * failure destroys them all (no handle to give: they must not stay).
 */
static CK_RV register_new_locked(struct mod_session *s, const hsm_oid_t *oids,
                                 CK_OBJECT_HANDLE *hs, size_t n)
{
    CK_RV rv = CKR_OK;
    size_t i;

    if (s->closed) {
        /* Closed during the call: its session objects are gone. */
        return CKR_SESSION_CLOSED;
    }
    for (i = 0; i < n && rv == CKR_OK; i++) {
        rv = note_session_object_locked(s, oids[i]);
        if (rv == CKR_OK) {
            rv = new_handle_locked(oids[i], &hs[i]);
        }
    }
    if (rv != CKR_OK) {
        for (i = 0; i < n; i++) {
            handle_forget_locked(oids[i]);
            (void)hsm_object_destroy(mod_state.conn, s->sid, oids[i]);
        }
    }
    return rv;
}

/*
 * A template handed in: NULL only when empty, bounded count and values, no
 * value pointer missing (as object.c checks C_CreateObject's).
 */
static CK_RV template_check(const CK_ATTRIBUTE *t, CK_ULONG n)
{
    CK_ULONG i;

    if (t == NULL && n > 0) {
        return CKR_ARGUMENTS_BAD;
    }
    if (n > MOD_TEMPLATE_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    for (i = 0; i < n; i++) {
        if (t[i].pValue == NULL && t[i].ulValueLen != 0) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        if (t[i].ulValueLen > MOD_ATTR_VALUE_MAX) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
    }
    return CKR_OK;
}

static const CK_ATTRIBUTE *template_ptr(const CK_ATTRIBUTE *t)
{
    static const CK_ATTRIBUTE empty = {0, NULL, 0};

    return t != NULL ? t : &empty;
}

/*
 * Ends a key-making call: the session lock is dropped first (order), then
 * the new objects get their handles under the library lock.
 */
static CK_RV keys_finish(struct mod_session *s, CK_RV rv, const hsm_oid_t *oids,
                         CK_OBJECT_HANDLE *hs, size_t n)
{
    CK_RV lrv;

    mod_session_unlock(s);
    lrv = mod_enter();
    if (lrv != CKR_OK) {
        /* C_Finalize ran meanwhile: the session is gone with the rest. */
        return lrv;
    }
    if (rv == CKR_OK) {
        rv = register_new_locked(s, oids, hs, n);
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
    CK_RV rv;

    rv = call_enter(hSession, NULL, NULL, NULL, &s);
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_GenerateKey, rv);
    }
    if (pMechanism == NULL || phKey == NULL) {
        rv = CKR_ARGUMENTS_BAD;
    }
    if (rv == CKR_OK) {
        rv = template_check(pTemplate, ulCount);
    }
    if (rv == CKR_OK) {
        rv = mech_check(pMechanism);
    }
    if (rv == CKR_OK) {
        rv = hsm_generate_key(mod_state.conn, s->sid, pMechanism,
                              template_ptr(pTemplate), ulCount, &oid);
    }
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
    CK_RV rv;

    rv = call_enter(hSession, NULL, NULL, NULL, &s);
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_GenerateKeyPair, rv);
    }
    if (pMechanism == NULL || phPublicKey == NULL || phPrivateKey == NULL) {
        rv = CKR_ARGUMENTS_BAD;
    }
    if (rv == CKR_OK) {
        rv = template_check(pPublicKeyTemplate, ulPublicKeyAttributeCount);
    }
    if (rv == CKR_OK) {
        rv = template_check(pPrivateKeyTemplate, ulPrivateKeyAttributeCount);
    }
    if (rv == CKR_OK) {
        rv = mech_check(pMechanism);
    }
    if (rv == CKR_OK) {
        rv = hsm_generate_key_pair(
            mod_state.conn, s->sid, pMechanism,
            template_ptr(pPublicKeyTemplate), ulPublicKeyAttributeCount,
            template_ptr(pPrivateKeyTemplate), ulPrivateKeyAttributeCount,
            &oids[0], &oids[1]);
    }
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
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    hsm_oid_t base = 0;
    hsm_oid_t oid = 0;
    bool key_ok = false;
    CK_RV rv;

    rv = call_enter(hSession, &hBaseKey, &base, &key_ok, &s);
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_DeriveKey, rv);
    }
    if (pMechanism == NULL || phKey == NULL) {
        rv = CKR_ARGUMENTS_BAD;
    }
    if (rv == CKR_OK) {
        rv = template_check(pTemplate, ulAttributeCount);
    }
    if (rv == CKR_OK) {
        rv = mech_check(pMechanism);
    }
    if (rv == CKR_OK) {
        rv = key_rv(hsm_derive_key(
            mod_state.conn, s->sid, pMechanism, key_ok ? base : NO_OBJECT,
            template_ptr(pTemplate), ulAttributeCount, &oid));
        if (rv == CKR_OK && !key_ok) {
            /* Cannot happen (no object has id 0); never keep it. */
            (void)hsm_object_destroy(mod_state.conn, s->sid, oid);
            rv = CKR_KEY_HANDLE_INVALID;
        }
    }
    rv = keys_finish(s, rv, &oid, &h, 1);
    if (rv == CKR_OK) {
        *phKey = h;
    }
    return mod_ret(MOD_FN_C_DeriveKey, rv);
}
