/*
 * modload.c - the module and return-value names for the test
 * applications (modload.h).
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

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
