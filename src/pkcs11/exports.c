/*
 * exports.c - the only symbols the module exports: the three C_Get* entry
 * points of PKCS#11 3.0. Everything else is reached through the function
 * lists they hand out. The rest of the code is built with
 * -fvisibility=hidden and the link keeps only these three.
 */
#include "config.h"

#include "pkcs11/mod.h"

#define MOD_EXPORT __attribute__((visibility("default")))

MOD_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    return mod_C_GetFunctionList(ppFunctionList);
}

MOD_EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList,
                                    CK_ULONG_PTR pulCount)
{
    return mod_C_GetInterfaceList(pInterfacesList, pulCount);
}

MOD_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName,
                                CK_VERSION_PTR pVersion,
                                CK_INTERFACE_PTR_PTR ppInterface,
                                CK_FLAGS flags)
{
    return mod_C_GetInterface(pInterfaceName, pVersion, ppInterface, flags);
}
