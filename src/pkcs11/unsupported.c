/*
 * unsupported.c - every PKCS#11 2.40/3.0 function Nimbus does not implement
 * (sign/verify recover, the dual-function calls, operation state and the
 * message-based sign/verify calls of 3.0). Each returns
 * CKR_FUNCTION_NOT_SUPPORTED, and CKR_CRYPTOKI_NOT_INITIALIZED when the library
 * is not initialized (or was initialized by the parent of a forked process).
 */
#include "config.h"

#include "pkcs11/mod.h"

/* The parameters are the spec's; none is looked at. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

static CK_RV unsupported(enum mod_fn fn)
{
    CK_RV rv = CKR_FUNCTION_NOT_SUPPORTED;

    if (!mod_ready()) {
        rv = CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    return mod_ret(fn, rv);
}

CK_RV mod_C_GetOperationState(CK_SESSION_HANDLE hSession,
                              CK_BYTE_PTR pOperationState,
                              CK_ULONG_PTR pulOperationStateLen)
{
    return unsupported(MOD_FN_C_GetOperationState);
}

CK_RV mod_C_SetOperationState(CK_SESSION_HANDLE hSession,
                              CK_BYTE_PTR pOperationState,
                              CK_ULONG ulOperationStateLen,
                              CK_OBJECT_HANDLE hEncryptionKey,
                              CK_OBJECT_HANDLE hAuthenticationKey)
{
    return unsupported(MOD_FN_C_SetOperationState);
}

CK_RV mod_C_SignRecoverInit(CK_SESSION_HANDLE hSession,
                            CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
    return unsupported(MOD_FN_C_SignRecoverInit);
}

CK_RV mod_C_SignRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData,
                        CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
                        CK_ULONG_PTR pulSignatureLen)
{
    return unsupported(MOD_FN_C_SignRecover);
}

CK_RV mod_C_VerifyRecoverInit(CK_SESSION_HANDLE hSession,
                              CK_MECHANISM_PTR pMechanism,
                              CK_OBJECT_HANDLE hKey)
{
    return unsupported(MOD_FN_C_VerifyRecoverInit);
}

CK_RV mod_C_VerifyRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
                          CK_ULONG ulSignatureLen, CK_BYTE_PTR pData,
                          CK_ULONG_PTR pulDataLen)
{
    return unsupported(MOD_FN_C_VerifyRecover);
}

CK_RV mod_C_DigestEncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                                CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart,
                                CK_ULONG_PTR pulEncryptedPartLen)
{
    return unsupported(MOD_FN_C_DigestEncryptUpdate);
}

CK_RV mod_C_DecryptDigestUpdate(CK_SESSION_HANDLE hSession,
                                CK_BYTE_PTR pEncryptedPart,
                                CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
                                CK_ULONG_PTR pulPartLen)
{
    return unsupported(MOD_FN_C_DecryptDigestUpdate);
}

CK_RV mod_C_SignEncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart,
                              CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart,
                              CK_ULONG_PTR pulEncryptedPartLen)
{
    return unsupported(MOD_FN_C_SignEncryptUpdate);
}

CK_RV mod_C_DecryptVerifyUpdate(CK_SESSION_HANDLE hSession,
                                CK_BYTE_PTR pEncryptedPart,
                                CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart,
                                CK_ULONG_PTR pulPartLen)
{
    return unsupported(MOD_FN_C_DecryptVerifyUpdate);
}

CK_RV mod_C_MessageSignInit(CK_SESSION_HANDLE hSession,
                            CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
    return unsupported(MOD_FN_C_MessageSignInit);
}

CK_RV mod_C_SignMessage(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                        CK_ULONG ulParameterLen, CK_BYTE_PTR pData,
                        CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
                        CK_ULONG_PTR pulSignatureLen)
{
    return unsupported(MOD_FN_C_SignMessage);
}

CK_RV mod_C_SignMessageBegin(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                             CK_ULONG ulParameterLen)
{
    return unsupported(MOD_FN_C_SignMessageBegin);
}

CK_RV mod_C_SignMessageNext(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                            CK_ULONG ulParameterLen, CK_BYTE_PTR pData,
                            CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
                            CK_ULONG_PTR pulSignatureLen)
{
    return unsupported(MOD_FN_C_SignMessageNext);
}

CK_RV mod_C_MessageSignFinal(CK_SESSION_HANDLE hSession)
{
    return unsupported(MOD_FN_C_MessageSignFinal);
}

CK_RV mod_C_MessageVerifyInit(CK_SESSION_HANDLE hSession,
                              CK_MECHANISM_PTR pMechanism,
                              CK_OBJECT_HANDLE hKey)
{
    return unsupported(MOD_FN_C_MessageVerifyInit);
}

CK_RV mod_C_VerifyMessage(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter,
                          CK_ULONG ulParameterLen, CK_BYTE_PTR pData,
                          CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
                          CK_ULONG ulSignatureLen)
{
    return unsupported(MOD_FN_C_VerifyMessage);
}

CK_RV mod_C_VerifyMessageBegin(CK_SESSION_HANDLE hSession,
                               CK_VOID_PTR pParameter, CK_ULONG ulParameterLen)
{
    return unsupported(MOD_FN_C_VerifyMessageBegin);
}

CK_RV mod_C_VerifyMessageNext(CK_SESSION_HANDLE hSession,
                              CK_VOID_PTR pParameter, CK_ULONG ulParameterLen,
                              CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                              CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen)
{
    return unsupported(MOD_FN_C_VerifyMessageNext);
}

CK_RV mod_C_MessageVerifyFinal(CK_SESSION_HANDLE hSession)
{
    return unsupported(MOD_FN_C_MessageVerifyFinal);
}
