/*
 * pkcs11.h - Cryptoki (PKCS#11 3.0) top-level header.
 *
 * Written for Nimbus from the OASIS PKCS#11 3.0 specification.
 *
 * Platform macros.  The includer may define these before including this
 * file; otherwise the usual Unix/ELF defaults below are used:
 *   CK_PTR                               pointer indirection        (*)
 *   CK_DECLARE_FUNCTION(rv, name)        function declaration       (rv name)
 *   CK_DECLARE_FUNCTION_POINTER(rv, name) function pointer          (rv (* name))
 *   CK_CALLBACK_FUNCTION(rv, name)       application callback ptr  (rv (* name))
 *   NULL_PTR                             null pointer               (0)
 * No structure packing pragma is used: on Unix the specification uses the
 * platform's natural C ABI alignment.
 */
#ifndef NIMBUS_PKCS11_H
#define NIMBUS_PKCS11_H

#ifdef __cplusplus
extern "C" {
#endif

#ifndef CK_PTR
#define CK_PTR *
#endif

#ifndef CK_DECLARE_FUNCTION
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#endif

#ifndef CK_DECLARE_FUNCTION_POINTER
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType (* name)
#endif

#ifndef CK_CALLBACK_FUNCTION
#define CK_CALLBACK_FUNCTION(returnType, name) returnType (* name)
#endif

#ifndef NULL_PTR
#define NULL_PTR 0
#endif

/* All types and constants. */
#include "pkcs11t.h"

/* Token pasting helper for the CK_C_<function> typedef names. */
#define CK_NIMBUS_PASTE_(x, y) x##y
#define CK_NIMBUS_PASTE(x, y) CK_NIMBUS_PASTE_(x, y)

/* Pass 1: prototypes, "extern CK_RV C_xxx(args);". */
#define CK_NEED_ARG_LIST 1
#define CK_PKCS11_FUNCTION_INFO(name) extern CK_DECLARE_FUNCTION(CK_RV, name)
#include "pkcs11f.h"
#undef CK_NEED_ARG_LIST
#undef CK_PKCS11_FUNCTION_INFO

/* Pass 2: function pointer types, "typedef CK_RV (*CK_C_xxx)(args);". */
#define CK_NEED_ARG_LIST 1
#define CK_PKCS11_FUNCTION_INFO(name) \
  typedef CK_DECLARE_FUNCTION_POINTER(CK_RV, CK_NIMBUS_PASTE(CK_, name))
#include "pkcs11f.h"
#undef CK_NEED_ARG_LIST
#undef CK_PKCS11_FUNCTION_INFO

/* Pass 3/4: function list structures, one "CK_C_xxx C_xxx;" per entry. */
#define CK_PKCS11_FUNCTION_INFO(name) CK_NIMBUS_PASTE(CK_, name) name;

/* Version 2.x function list: version + the 68 functions of 2.40. */
struct CK_FUNCTION_LIST {
  CK_VERSION version;
#define CK_PKCS11_2_40_ONLY 1
#include "pkcs11f.h"
#undef CK_PKCS11_2_40_ONLY
};

/* Version 3.0 function list: the 2.40 list followed by 24 new functions. */
struct CK_FUNCTION_LIST_3_0 {
  CK_VERSION version;
#include "pkcs11f.h"
};

#undef CK_PKCS11_FUNCTION_INFO

#ifdef __cplusplus
}
#endif

#endif /* NIMBUS_PKCS11_H */
