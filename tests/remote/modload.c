/*
 * modload.c - the module and return-value names for the test
 * applications (modload.h).
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modload.h"

#define RV(x)                                                                  \
    {                                                                          \
        x, #x                                                                  \
    }
static const struct {
    CK_RV rv;
    const char *name;
} rv_names[] = {
    RV(CKR_OK),
    RV(CKR_GENERAL_ERROR),
    RV(CKR_FUNCTION_FAILED),
    RV(CKR_ARGUMENTS_BAD),
    RV(CKR_DEVICE_ERROR),
    RV(CKR_DEVICE_MEMORY),
    RV(CKR_DEVICE_REMOVED),
    RV(CKR_KEY_HANDLE_INVALID),
    RV(CKR_MECHANISM_INVALID),
    RV(CKR_OBJECT_HANDLE_INVALID),
    RV(CKR_OPERATION_ACTIVE),
    RV(CKR_OPERATION_NOT_INITIALIZED),
    RV(CKR_PIN_INCORRECT),
    RV(CKR_PIN_LOCKED),
    RV(CKR_SESSION_CLOSED),
    RV(CKR_SESSION_HANDLE_INVALID),
    RV(CKR_SIGNATURE_INVALID),
    RV(CKR_TOKEN_NOT_PRESENT),
    RV(CKR_USER_ALREADY_LOGGED_IN),
    RV(CKR_USER_NOT_LOGGED_IN),
    RV(CKR_CRYPTOKI_NOT_INITIALIZED),
    RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
};

const char *rv_name(CK_RV rv)
{
    static __thread char buf[32];

    for (size_t i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++) {
        if (rv_names[i].rv == rv)
            return rv_names[i].name;
    }
    snprintf(buf, sizeof(buf), "0x%08lx", (unsigned long)rv);
    return buf;
}

CK_RV app_gen_ec(CK_FUNCTION_LIST_3_0_PTR fl, CK_SESSION_HANDLE s,
                 const char *label)
{
    static const CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                   0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE pubt[] = {
        {CKA_EC_PARAMS, (void *)p256, sizeof(p256)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_VERIFY, &yes, sizeof(yes)},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_ATTRIBUTE privt[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_OBJECT_HANDLE a, b;

    return fl->C_GenerateKeyPair(s, &m, pubt, 4, privt, 4, &a, &b);
}

CK_RV app_find_one(CK_FUNCTION_LIST_3_0_PTR fl, CK_SESSION_HANDLE s,
                   CK_OBJECT_CLASS cls, const char *label,
                   CK_OBJECT_HANDLE *out)
{
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_ULONG n = 0;
    CK_RV rv;

    if ((rv = fl->C_FindObjectsInit(s, t, 2)) != CKR_OK)
        return rv;
    rv = fl->C_FindObjects(s, out, 1, &n);
    fl->C_FindObjectsFinal(s);
    if (rv == CKR_OK && n != 1)
        rv = CKR_OBJECT_HANDLE_INVALID;
    return rv;
}

CK_FUNCTION_LIST_3_0_PTR modload(const char *prog)
{
    const char *path = getenv("NIMBUS_MODULE");
    CK_VERSION v = {3, 0};
    CK_C_GetInterface gi;
    CK_INTERFACE_PTR itf;
    void *h;

    if (path == NULL)
        path = "./.libs/libnimbus-pkcs11.so";
    h = dlopen(path, RTLD_NOW);
    if (h == NULL) {
        fprintf(stderr, "%s: %s\n", prog, dlerror());
        exit(2);
    }
    gi = (CK_C_GetInterface)dlsym(h, "C_GetInterface");
    if (gi == NULL || gi((CK_UTF8CHAR_PTR) "PKCS 11", &v, &itf, 0) != CKR_OK) {
        fprintf(stderr, "%s: no PKCS 11 3.0 interface\n", prog);
        exit(2);
    }
    return itf->pFunctionList;
}
