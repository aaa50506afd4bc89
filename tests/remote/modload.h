/*
 * modload.h - what the scriptable test applications (tests/remote/rclient,
 * tests/cluster/chaosclient) share: the module, loaded as an application
 * loads it, the names of the return values they print for the scripts
 * that read them, and the token key pair both make.
 */
#ifndef NIMBUS_TESTS_MODLOAD_H
#define NIMBUS_TESTS_MODLOAD_H

#include "pkcs11/pkcs11.h"

/* $NIMBUS_MODULE (default ./.libs/libnimbus-pkcs11.so) through
 * C_GetInterface("PKCS 11", 3.0); exits 2 with prog's name in the message
 * when it cannot. */
CK_FUNCTION_LIST_3_0_PTR modload(const char *prog);

/* A token EC P-256 key pair labelled label (private: sign, private;
 * public: verify), as the scripts' "genec" makes it. */
CK_RV app_gen_ec(CK_FUNCTION_LIST_3_0_PTR fl, CK_SESSION_HANDLE s,
                 const char *label);

/* The one object of class cls labelled label; CKR_OBJECT_HANDLE_INVALID
 * when there is none or more than one. */
CK_RV app_find_one(CK_FUNCTION_LIST_3_0_PTR fl, CK_SESSION_HANDLE s,
                   CK_OBJECT_CLASS cls, const char *label,
                   CK_OBJECT_HANDLE *out);

/* "CKR_..." for the values the scripts look for, else "0x%08lx". */
const char *rv_name(CK_RV rv);

#endif
