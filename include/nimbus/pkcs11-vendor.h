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

#endif /* NIMBUS_PKCS11_VENDOR_H */
