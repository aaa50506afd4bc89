/*
 * nimbus/pkcs11-vendor.h - Nimbus HSM vendor-defined PKCS#11 constants.
 *
 * Written for Nimbus from the OASIS PKCS#11 3.0 specification; the values
 * below are Nimbus's own allocations in the vendor-defined ranges.
 *
 * This header uses only standard Cryptoki types and constants and does not
 * include a pkcs11.h itself, so it works with any spec-conformant header
 * (Nimbus's <pkcs11/pkcs11.h>, p11-kit's, OpenSC's, ...).  Include your
 * pkcs11.h first.
 *
 * Nimbus user model:
 *   PRECO  pre-crypto-officer: the temporary account of an uninitialised
 *          HSM, used only to set the first CO password.
 *   CO     crypto officer, logs in as CKU_SO: manages users, no key use.
 *   CU     crypto user, logs in as CKU_USER: creates, owns and uses keys.
 *   AU     appliance user, logs in as CKU_NIMBUS_AU: a restricted service
 *          account (for example for cloning and synchronising the store).
 * Every key is owned by exactly one CU (its owner) and can be shared with
 * other CUs (its shared users), who may use it but not manage it.
 * All vendor attributes below are read-only: the HSM maintains them and
 * C_SetAttributeValue/C_CreateObject templates must not contain them.
 */
#ifndef NIMBUS_PKCS11_VENDOR_H
#define NIMBUS_PKCS11_VENDOR_H

/* A pkcs11.h must be included first: CKA_VENDOR_DEFINED is spec-defined. */
#ifndef CKA_VENDOR_DEFINED
#error "include a PKCS#11 pkcs11.h before <nimbus/pkcs11-vendor.h>"
#endif

/* Some third-party headers lack CKU_VENDOR_DEFINED; same value as the spec range. */
#ifndef CKU_VENDOR_DEFINED
#define CKU_VENDOR_DEFINED 0x80000000UL
#endif

/* Nimbus allocations use the low word prefix 0x4E42xxxx ("NB"). */

/* ---- User types (C_Login / C_LoginUser userType) ---- */

/* Appliance user (AU): restricted service login, distinct from CO and CU. */
#define CKU_NIMBUS_AU (CKU_VENDOR_DEFINED | 0x4E420001UL)

/* ---- Object attributes (all read-only) ---- */

/* CK_ULONG: user id of the CU that owns the object (creator/generator). */
#define CKA_NIMBUS_OWNER (CKA_VENDOR_DEFINED | 0x4E420001UL)

/* CK_ULONG[]: user ids of the CUs the owner has shared the key with;
 * an empty array means not shared.  ulValueLen = n * sizeof(CK_ULONG). */
#define CKA_NIMBUS_SHARED_USERS (CKA_VENDOR_DEFINED | 0x4E420002UL)

/* Byte array of length 8: the object's 64-bit stable store id, big-endian.
 * Unlike the session-scoped CK_OBJECT_HANDLE it never changes for the life
 * of the object and is the same across sessions, clients and HSM clones. */
#define CKA_NIMBUS_OBJECT_ID (CKA_VENDOR_DEFINED | 0x4E420003UL)

/* ---- Mechanisms ---- */

/*
 * AWS CloudHSM-compatible mechanisms, with the numeric values of that
 * vendor's PKCS#11 header (cloudhsm_pkcs11_vendor_defs.h, shipped with
 * the CloudHSM PKCS#11 library and its C examples: CKM_VENDOR_DEFINED |
 * CKM_AES_GCM, | CKM_AES_KEY_WRAP, | CKM_AES_KEY_WRAP_PAD (0x210A), and
 * | 0x216F; the ZERO_PAD value 0x8000216F is also in xipki's
 * XiHsmVendor), so that applications
 * written for the cloud HSM run unchanged. Semantics as the AWS CloudHSM
 * user guide ("AES key wrapping", "Supported mechanisms") describes them:
 *
 * CKM_CLOUDHSM_AES_GCM: AES-GCM whose 12-byte IV the HSM generates and
 *   prepends to the ciphertext (output IV || ciphertext || tag); the
 *   parameter is a CK_GCM_PARAMS with pIv NULL. Decryption (and unwrap)
 *   expects the IV in front. Encrypt, decrypt, wrap, unwrap; single-part.
 * CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD: RFC 3394 (input a multiple of 8).
 * CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD: PKCS #5 padding to a multiple of 8
 *   (1 to 8 bytes), then RFC 3394.
 * CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD: RFC 5649 (zero padding with the
 *   length in the integrity check value), the same as CKM_AES_KEY_WRAP_KWP.
 * The three key wraps take no parameter, or the algorithm's default IV
 * (8 bytes, or 4 bytes for ZERO_PAD).
 */
#ifndef CKM_VENDOR_DEFINED
#define CKM_VENDOR_DEFINED 0x80000000UL
#endif
#define CKM_CLOUDHSM_AES_GCM (CKM_VENDOR_DEFINED | 0x00001087UL)
#define CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD (CKM_VENDOR_DEFINED | 0x00002109UL)
#define CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD (CKM_VENDOR_DEFINED | 0x0000210AUL)
#define CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD (CKM_VENDOR_DEFINED | 0x0000216FUL)

/* ---- Two-factor login of a crypto officer (interface "Nimbus 2FA") ----
 *
 * A CO with two-factor login on cannot log in with a password alone
 * (C_Login / C_LoginUser answer CKR_PIN_INCORRECT, and the failure counts
 * toward lockout). Its PIN carries a signature over a challenge that the
 * HSM made for this application's connection:
 *
 *   1. C_GetInterface((CK_UTF8CHAR_PTR)NIMBUS_2FA_INTERFACE_NAME, NULL,
 *      &iface, 0); iface->pFunctionList is a CK_NIMBUS_2FA_FUNCTION_LIST.
 *   2. C_NimbusLoginChallenge(hSession, CKU_SO, name, namelen, digest,
 *      &len): NIMBUS_2FA_DIGEST_LEN bytes (pDigest NULL: the length only,
 *      no challenge made). Each call makes a fresh challenge and forgets
 *      the previous one; it is good once, for 300 seconds, for this
 *      application (its connection to the HSM) and that user only.
 *   3. Sign the digest bytes as a message with the CO's registered
 *      RSA-2048 key, RSASSA-PKCS1-v1_5 with SHA-256 (CKM_SHA256_RSA_PKCS;
 *      openssl dgst -sha256 -sign key.pem digest.bin): 256 bytes.
 *   4. C_Login(hSession, CKU_SO, pin) with pin "2fa=" base64(signature)
 *      ":" followed by the usual PIN ("name:password"); for C_LoginUser,
 *      "2fa=" base64(signature) ":" password. The base64 is exactly
 *      NIMBUS_2FA_SIG_B64_LEN characters, so no password (7 to 32
 *      characters) is ever taken for this form.
 * Any failure (no challenge, an expired or used one, another user's, a
 * wrong signature, a wrong password) is CKR_PIN_INCORRECT and counts.
 */
#define NIMBUS_2FA_INTERFACE_NAME "Nimbus 2FA"
#define NIMBUS_2FA_DIGEST_LEN 32
#define NIMBUS_2FA_PIN_PREFIX "2fa="
#define NIMBUS_2FA_SIG_LEN 256
#define NIMBUS_2FA_SIG_B64_LEN 344

/* clang-format would take "CK_RV (*f)(...)" for a call and break it. */
/* clang-format off */
typedef struct CK_NIMBUS_2FA_FUNCTION_LIST {
    CK_VERSION version; /* 1.0 */
    CK_RV (*C_NimbusLoginChallenge)(CK_SESSION_HANDLE hSession,
                                    CK_USER_TYPE userType,
                                    CK_UTF8CHAR_PTR pUsername,
                                    CK_ULONG ulUsernameLen,
                                    CK_BYTE_PTR pDigest,
                                    CK_ULONG_PTR pulDigestLen);
} CK_NIMBUS_2FA_FUNCTION_LIST;
/* clang-format on */

#endif /* NIMBUS_PKCS11_VENDOR_H */
