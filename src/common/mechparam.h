/*
 * mechparam.h - the one codec of mechanism parameters.
 *
 * A PKCS#11 mechanism parameter is a pointer to a layout that holds more
 * pointers and lengths the caller vouches for. hsm_mech_t is the same
 * parameter as plain data: a layout tag, numbers, and byte strings this
 * module owns. The front end decodes each CK_MECHANISM (and each message
 * parameter of the 3.0 message API) once, at entry, with hsm_mech_decode;
 * the core and the wire read only hsm_mech_t. Nothing else reads
 * pParameter.
 *
 * The decoder checks the structure: the exact ulParameterLen of the layout
 * (told apart by length where a mechanism has two), a pointer for every
 * non-zero length, counts and lengths under the caps below before anything
 * is allocated. It reads nothing past what the caller declared. Whether the
 * values make sense for the mechanism (hash names, tag sizes, IV lengths)
 * is the core's check (src/hsm/mech.c), which also never trusts the layout
 * tag to match the mechanism: a remote caller builds hsm_mech_t directly.
 *
 * Object handles inside a parameter (CKM_CONCATENATE_BASE_AND_KEY, the HKDF
 * salt key) are decoded as the caller's handle; the front end replaces them
 * with the object id (hsm_mech_key_ref) before the core sees them.
 */
#ifndef NIMBUS_MECHPARAM_H
#define NIMBUS_MECHPARAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pkcs11/pkcs11.h"

/* Largest byte string and data-parameter count the decoder copies. Every
 * limit of the core (AAD 1 MiB, KDF data 64 KiB, 32 data params) is
 * within these. */
#define HSM_MECH_BYTES_MAX (1024u * 1024)
#define HSM_MECH_DATA_PARAMS_MAX 32
/* Largest ulParameterLen of any mechanism (the layouts are all smaller;
 * an IV given as the parameter itself too). */
#define HSM_MECH_PARAM_MAX 4096
/* Largest tag a message parameter carries (AES-GCM, CCM, Poly1305). */
#define HSM_MECH_TAG_MAX 16

/* An owned byte string. present: the caller's pointer was not NULL (some
 * layouts give NULL a meaning of its own, e.g. a GCM IV the token makes);
 * always true when len is not 0 (hsm_mech_check). On the wire: an
 * optional bytes field, present or not. */
typedef struct {
    uint8_t *data; /* malloc'd, NULL when len is 0 */
    size_t len;
    bool present;
} hsm_bytes_t;

typedef enum {
    HSM_MP_NONE = 0, /* ulParameterLen 0 */
    HSM_MP_UNKNOWN,  /* a mechanism the codec does not know: dropped */
    HSM_MP_BYTES,    /* the parameter is a byte string (CBC/KW IV) */
    HSM_MP_ULONG,    /* CK_MAC_GENERAL_PARAMS */
    HSM_MP_OBJECT,   /* CK_OBJECT_HANDLE (concatenate base and key) */
    HSM_MP_RSA_PSS,  /* CK_RSA_PKCS_PSS_PARAMS */
    HSM_MP_RSA_OAEP, /* CK_RSA_PKCS_OAEP_PARAMS */
    HSM_MP_EDDSA,    /* CK_EDDSA_PARAMS */
    HSM_MP_ECDH1,    /* CK_ECDH1_DERIVE_PARAMS */
    HSM_MP_AES_CTR,  /* CK_AES_CTR_PARAMS */
    HSM_MP_GCM,      /* CK_GCM_PARAMS (3.0, or 2.40 without ulIvBits) */
    HSM_MP_CCM,      /* CK_CCM_PARAMS */
    HSM_MP_CHACHA20_POLY1305,         /* CK_SALSA20_CHACHA20_POLY1305_PARAMS */
    HSM_MP_RSA_AES_KEY_WRAP,          /* CK_RSA_AES_KEY_WRAP_PARAMS */
    HSM_MP_HKDF,                      /* CK_HKDF_PARAMS */
    HSM_MP_SP800_108,                 /* CK_SP800_108_KDF_PARAMS */
    HSM_MP_SP800_108_FEEDBACK,        /* CK_SP800_108_FEEDBACK_KDF_PARAMS */
    HSM_MP_PBKDF2,                    /* CK_PKCS5_PBKD2_PARAMS2 or _PARAMS */
    HSM_MP_KEY_DERIVATION_STRING,     /* CK_KEY_DERIVATION_STRING_DATA */
    HSM_MP_AES_CBC_ENCRYPT_DATA,      /* CK_AES_CBC_ENCRYPT_DATA_PARAMS */
    HSM_MP_GCM_MESSAGE,               /* CK_GCM_MESSAGE_PARAMS */
    HSM_MP_CCM_MESSAGE,               /* CK_CCM_MESSAGE_PARAMS */
    HSM_MP_CHACHA20_POLY1305_MESSAGE, /* ..._POLY1305_MSG_PARAMS */
    HSM_MP_COUNT
} hsm_mech_layout_t;

typedef struct {
    CK_MECHANISM_TYPE hash_alg;
    CK_RSA_PKCS_MGF_TYPE mgf;
    CK_RSA_PKCS_OAEP_SOURCE_TYPE source;
    hsm_bytes_t source_data;
} hsm_mp_oaep_t;

/* One CK_PRF_DATA_PARAM. Its value as the type lays it out: a counter
 * format (ITERATION_VARIABLE in counter mode, OPTIONAL_COUNTER), a DKM
 * length format, a byte array, or nothing (has_format false, bytes empty:
 * ITERATION_VARIABLE in feedback mode). */
typedef struct {
    CK_PRF_DATA_TYPE type;
    bool has_format;
    CK_BBOOL little_endian;
    CK_ULONG width_bits;
    CK_SP800_108_DKM_LENGTH_METHOD dkm_method; /* DKM_LENGTH only */
    hsm_bytes_t bytes;                         /* BYTE_ARRAY only */
} hsm_mp_prf_data_t;

/* The message parameters. The tag is copied only for decryption (on
 * encryption pTag is the caller's output buffer): tag.present and the
 * declared length say what the caller gave. */
typedef struct {
    hsm_bytes_t iv;
    CK_ULONG iv_fixed_bits;
    CK_GENERATOR_FUNCTION generator;
    hsm_bytes_t tag;
    CK_ULONG tag_bits;
} hsm_mp_gcm_msg_t;

typedef struct {
    CK_ULONG data_len;
    hsm_bytes_t nonce;
    CK_ULONG nonce_fixed_bits;
    CK_GENERATOR_FUNCTION generator;
    hsm_bytes_t mac;
    CK_ULONG mac_len;
} hsm_mp_ccm_msg_t;

typedef struct {
    hsm_bytes_t nonce;
    hsm_bytes_t tag; /* 16 bytes when given */
} hsm_mp_chacha_msg_t;

typedef struct hsm_mech {
    CK_MECHANISM_TYPE type;
    hsm_mech_layout_t layout;
    union {
        hsm_bytes_t bytes; /* HSM_MP_BYTES */
        CK_ULONG ulong;    /* HSM_MP_ULONG */
        uint64_t object;   /* HSM_MP_OBJECT: handle, then object id */
        struct {
            CK_MECHANISM_TYPE hash_alg;
            CK_RSA_PKCS_MGF_TYPE mgf;
            CK_ULONG salt_len;
        } pss;
        hsm_mp_oaep_t oaep;
        struct {
            CK_BBOOL ph_flag;
            hsm_bytes_t context;
        } eddsa;
        struct {
            CK_EC_KDF_TYPE kdf;
            hsm_bytes_t shared_data;
            hsm_bytes_t public_data;
        } ecdh1;
        struct {
            CK_ULONG counter_bits;
            uint8_t cb[16];
        } ctr;
        struct {
            hsm_bytes_t iv; /* len == iv_len when present */
            CK_ULONG iv_len;
            CK_ULONG iv_bits; /* 0 in the 2.40 layout; never checked */
            hsm_bytes_t aad;
            CK_ULONG tag_bits;
            bool short_layout; /* the 2.40 layout without ulIvBits */
        } gcm;
        struct {
            CK_ULONG data_len;
            hsm_bytes_t nonce;
            hsm_bytes_t aad;
            CK_ULONG mac_len;
        } ccm;
        struct {
            hsm_bytes_t nonce;
            hsm_bytes_t aad;
        } chacha;
        struct {
            CK_ULONG aes_key_bits;
            bool has_oaep; /* pOAEPParams not NULL */
            hsm_mp_oaep_t oaep;
        } rsa_aes;
        struct {
            CK_BBOOL extract;
            CK_BBOOL expand;
            CK_MECHANISM_TYPE prf_hash;
            CK_ULONG salt_type;
            hsm_bytes_t salt;
            uint64_t salt_key; /* handle, then object id */
            hsm_bytes_t info;
        } hkdf;
        struct {
            CK_SP800_108_PRF_TYPE prf_type;
            hsm_mp_prf_data_t *params; /* malloc'd, n_params entries */
            size_t n_params;
            CK_ULONG additional_keys; /* ulAdditionalDerivedKeys */
            hsm_bytes_t iv;           /* feedback mode only */
        } kbkdf;
        struct {
            CK_PKCS5_PBKDF2_SALT_SOURCE_TYPE salt_source;
            hsm_bytes_t salt;
            CK_ULONG iterations;
            CK_PKCS5_PBKDF2_PSEUDO_RANDOM_FUNCTION_TYPE prf;
            hsm_bytes_t prf_data;
            hsm_bytes_t password;
        } pbkdf2;
        hsm_bytes_t string; /* HSM_MP_KEY_DERIVATION_STRING */
        struct {
            uint8_t iv[16];
            hsm_bytes_t data;
        } cbc_data;
        hsm_mp_gcm_msg_t gcm_msg;
        hsm_mp_ccm_msg_t ccm_msg;
        hsm_mp_chacha_msg_t chacha_msg;
    } u;
} hsm_mech_t;

/*
 * CK_MECHANISM -> hsm_mech_t, a deep copy. m NULL: CKR_ARGUMENTS_BAD. A
 * parameter the layout of m->mechanism cannot be (wrong ulParameterLen, a
 * NULL pointer with a length, a length or count over the caps):
 * CKR_MECHANISM_PARAM_INVALID, *out zeroed. CKR_HOST_MEMORY. A mechanism
 * the codec does not know decodes to HSM_MP_UNKNOWN (its parameter is not
 * read; the core answers CKR_MECHANISM_INVALID). *out is freed with
 * hsm_mech_free on every result.
 */
CK_RV hsm_mech_decode(const CK_MECHANISM *m, hsm_mech_t *out);

/*
 * A message parameter (C_EncryptMessage..., C_DecryptMessage...) of the
 * message operation's mechanism type (CKM_AES_GCM, CKM_AES_CCM,
 * CKM_CHACHA20_POLY1305). decrypt: copy the tag (it is input). Errors as
 * hsm_mech_decode; another mechanism type: CKR_MECHANISM_PARAM_INVALID.
 */
CK_RV hsm_mech_decode_msg(CK_MECHANISM_TYPE type, const void *param,
                          CK_ULONG len, bool decrypt, hsm_mech_t *out);

/*
 * The mechanism of C_MessageEncryptInit / C_MessageDecryptInit: checked as
 * hsm_mech_decode checks any parameter (a pointer for a length, the cap)
 * and then dropped, unread: the message operations take their parameters
 * per message, and the init parameter has no layout of its own (a
 * CK_GCM_MESSAGE_PARAMS is as long as a CK_GCM_PARAMS, so reading it as
 * one would read past the caller's tag). *out: the type, HSM_MP_NONE.
 */
CK_RV hsm_mech_decode_type(const CK_MECHANISM *m, hsm_mech_t *out);

/* Wipes and frees what m owns; m is zeroed (layout HSM_MP_NONE). */
void hsm_mech_free(hsm_mech_t *m);

/* A deep copy (for a caller that keeps a parameter beyond a call). */
CK_RV hsm_mech_copy(const hsm_mech_t *src, hsm_mech_t *dst);

/*
 * For an hsm_mech_t built other than by the decoders (the wire server
 * from a request): the invariants the decoders establish and the core
 * relies on. A layout the codec has; every byte string within
 * HSM_MECH_BYTES_MAX (a message tag within HSM_MECH_TAG_MAX), with data
 * (and present) when its len is not 0; at most HSM_MECH_DATA_PARAMS_MAX
 * SP 800-108 data params, with an array when there are any. Else
 * CKR_MECHANISM_PARAM_INVALID. Whether the values suit the mechanism is
 * still the core's check.
 */
CK_RV hsm_mech_check(const hsm_mech_t *m);

/*
 * The object reference a parameter holds (the CONCATENATE_BASE_AND_KEY
 * handle, the HKDF salt key when salt_type is CKF_HKDF_SALT_KEY and
 * extract is set), or NULL: the front end reads the handle there and puts
 * the object id in its place.
 */
uint64_t *hsm_mech_key_ref(hsm_mech_t *m);

/*
 * Write-back into the caller's memory, the only writes the codec does.
 * The IV the token made for CKM_AES_GCM encryption goes into the caller's
 * CK_GCM_PARAMS.pIv when there is one with room for it.
 */
void hsm_mech_write_gcm_iv(const CK_MECHANISM *m, const uint8_t *iv,
                           size_t ivlen);

/*
 * Into a message parameter (type: the operation's mechanism): the IV a
 * generator made (when the generator is not CKG_NO_GENERATE, and it fits
 * the caller's pIv / pNonce) and the tag of an encrypted message (when it
 * fits pTag / pMAC). iv_len 0 / tag_len 0: nothing of that.
 */
void hsm_mech_write_msg(CK_MECHANISM_TYPE type, void *param, CK_ULONG len,
                        const uint8_t *iv, size_t iv_len, const uint8_t *tag,
                        size_t tag_len);

#endif
