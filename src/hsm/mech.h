/*
 * mech.h - the one mechanism table (ARCHITECTURE section 5).
 *
 * Each row says what a mechanism is for (its CKF_ flags, which are also
 * the operation kinds it allows), which key types it takes and in what
 * sizes, whether it may run in several parts, how its parameter is checked
 * and which crypto family implements it. C_GetMechanismList/Info, the
 * operations and key generation all read this table; nothing else switches
 * on a mechanism type.
 */
#ifndef NIMBUS_MECH_H
#define NIMBUS_MECH_H

#include <stdbool.h>
#include <stddef.h>

#include "hsm/crypto/cops.h"
#include "hsm/hsm.h"
#include "hsm/policy.h"

#define MECH_KT_MAX 8

/* Key size ranges, in the units of CK_MECHANISM_INFO. */
#define MECH_RSA_GEN_MIN 1024
#define MECH_RSA_GEN_MAX 8192
#define MECH_RSA_MIN 1024 /* bits, any operation on an existing key */
#define MECH_RSA_MAX 16384
#define MECH_EC_MIN 224 /* P-224 */
#define MECH_EC_MAX 521 /* P-521 */
#define MECH_ED_MIN 255 /* Ed25519 / X25519 */
#define MECH_ED_MAX 448 /* Ed448 / X448 */
#define MECH_HMAC_MIN 1 /* bytes */
#define MECH_HMAC_MAX HSM_ATTR_VALUE_MAX
#define MECH_SECRET_GEN_MIN 8 /* bits (CKA_VALUE_LEN is in bytes) */
#define MECH_SECRET_GEN_MAX (HSM_ATTR_VALUE_MAX * 8)
/* Largest OAEP label and EdDSA context accepted. */
#define MECH_OAEP_LABEL_MAX HSM_ATTR_VALUE_MAX
#define MECH_EDDSA_CONTEXT_MAX 255
#define MECH_ECDH_DATA_MAX HSM_ATTR_VALUE_MAX
/* AES and DES3 key sizes in bytes, as CK_MECHANISM_INFO gives them. */
#define MECH_AES_MIN 16
#define MECH_AES_MAX 32
#define MECH_DES3_LEN 24
#define MECH_CHACHA_LEN 32
/* Largest AAD, IV, and KDF input accepted in a mechanism parameter. */
#define MECH_AAD_MAX (1024u * 1024)
/* GCM IVs: the spec allows any length from 1 byte; OpenSSL 3.0's GCM takes
 * at most 128 bytes (1024 bits), so that is ours too. */
#define MECH_GCM_IV_MAX 128
#define MECH_KDF_DATA_MAX HSM_ATTR_VALUE_MAX
#define MECH_KDF_PARAMS_MAX 32 /* CK_PRF_DATA_PARAM entries */
/* PBKDF2: iterations, and iterations times output blocks. */
#define MECH_PBKDF2_ITER_MAX 10000000UL

typedef struct mech_row mech_row_t;

/* How a row wraps (C_WrapKey / C_UnwrapKey). */
typedef enum {
    MECH_WRAP_NONE = 0,
    MECH_WRAP_CIPHER,  /* encrypt/decrypt the key bytes with row->wrap */
    MECH_WRAP_RSA_AES, /* CKM_RSA_AES_KEY_WRAP: OAEP(AES key) || KWP */
} mech_wrap_t;

/* What a derive (or PBKDF2 generate) row computes (keygen.c). */
typedef enum {
    MECH_DERIVE_NONE = 0,
    MECH_DERIVE_ECDH,
    MECH_DERIVE_HKDF,
    MECH_DERIVE_HKDF_DATA,
    MECH_DERIVE_KBKDF_COUNTER,
    MECH_DERIVE_KBKDF_FEEDBACK,
    MECH_DERIVE_CONCAT_KEY,
    MECH_DERIVE_CONCAT_DATA,      /* base || data */
    MECH_DERIVE_CONCAT_DATA_BASE, /* data || base */
    MECH_DERIVE_AES_ECB_DATA,
    MECH_DERIVE_AES_CBC_DATA,
    MECH_DERIVE_PBKDF2, /* a CKF_GENERATE row */
} mech_derive_t;

/* Checks m's decoded parameter for row (layout, lengths, values) and fills p.
 * CKR_MECHANISM_PARAM_INVALID on any defect. */
typedef CK_RV (*mech_param_fn)(const mech_row_t *row, const hsm_mech_t *m,
                               cops_params_t *p);

struct mech_row {
    CK_MECHANISM_TYPE type;
    CK_KEY_TYPE kt[MECH_KT_MAX]; /* key types it takes (generates: kt[0]) */
    size_t nkt;
    CK_ULONG min_key, max_key;
    CK_FLAGS flags;   /* CK_MECHANISM_INFO flags = allowed operations */
    bool multipart;   /* C_*Update allowed */
    bool size_bytes;  /* key sizes counted in bytes (HMAC) */
    cops_hash_t hash; /* the mechanism's own hash (hash-and-sign ...) */
    mech_param_fn check;
    const cops_impl_t *impl; /* sign/verify/encrypt/decrypt/digest */
    /* Set by the rows of this issue (zero in the older rows). */
    bool legacy;             /* DES3: absent when config des3 = no */
    mech_wrap_t wrap_kind;   /* CKF_WRAP / CKF_UNWRAP rows */
    const cops_impl_t *wrap; /* MECH_WRAP_CIPHER: the cipher family */
    size_t wrap_pad;         /* zero padding to this block (ECB, CBC, KW) */
    mech_derive_t derive;    /* CKF_DERIVE rows, PBKDF2 */
    /* A key-wrap mechanism (flags: wrap/unwrap only) that may still run as
     * a cipher with key_separation = off (see mech_flags). */
    bool kw_cipher;
};

/* The row of type, NULL when not in the table. */
const mech_row_t *mech_find(CK_MECHANISM_TYPE type);
/* The row of type if this token offers it (legacy rows only with
 * cfg.des3_enabled; hsm NULL: every row), else NULL. */
const mech_row_t *mech_find_enabled(const hsm_t *hsm, CK_MECHANISM_TYPE type);
/* The whole table (ascending by type), for the tests. */
const mech_row_t *mech_table(size_t *n);
/* The CKF_ flag of an operation kind. */
CK_FLAGS mech_kind_flag(hsm_opkind_t kind);
/* The operations row allows on this token: row->flags, plus CKF_ENCRYPT |
 * CKF_DECRYPT for a kw_cipher row when key_separation = off (hsm NULL:
 * the strict rules). C_GetMechanismInfo and the operation inits read
 * this, never row->flags alone. */
CK_FLAGS mech_flags(const hsm_t *hsm, const mech_row_t *row);
bool mech_allows_key_type(const mech_row_t *row, CK_KEY_TYPE kt);
/* Whether a wrap row is a key-wrap mechanism (AES key wrap and its
 * variants, CKM_RSA_AES_KEY_WRAP) rather than a cipher that also wraps:
 * unwrapping with a cipher is decryption by another name. */
bool mech_is_key_wrap(const mech_row_t *row);
/* Checks m's parameter (m->type must be row's): p zeroed then filled; its
 * pointers point into m. */
CK_RV mech_check_params(const mech_row_t *row, const hsm_mech_t *m,
                        cops_params_t *p);

/*
 * ops.c: loads key oid (caller holds hsm->lock) for use with row, checking
 * visibility and access (CKR_KEY_HANDLE_INVALID for what the user may not
 * see; CKR_KEY_FUNCTION_NOT_PERMITTED when it sees but may not use it),
 * class and key type (CKR_KEY_TYPE_INCONSISTENT), the usage attribute
 * (0: none), CKA_ALLOWED_MECHANISMS and the size (CKR_KEY_SIZE_RANGE).
 * *key gets a reference; the object stays loaded in o (hsm_obj_clear it).
 */
struct hsm_obj;
CK_RV hsm_ops_key_locked(hsm_conn_t *conn, const mech_row_t *row, hsm_oid_t oid,
                         hsm_access_t access, CK_ATTRIBUTE_TYPE usage,
                         struct hsm_obj *o, cops_key_t **key);

#endif
