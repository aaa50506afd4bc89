/*
 * cops.h - the crypto operations behind the mechanism table: keys built from
 * attribute lists, key generation, sign/verify/encrypt/decrypt/digest
 * contexts and ECDH. Everything runs through OpenSSL 3 EVP in the private
 * library context of crypto.c; no OpenSSL type appears here.
 *
 * Thread safety: a cops_key_t is immutable once built and reference
 * counted, so several operations in several threads may share it. A
 * cops_op_t belongs to one caller at a time.
 */
#ifndef NIMBUS_COPS_H
#define NIMBUS_COPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsm/attrs.h"
#include "hsm/hsm.h"

/* ------------------------------------------------------------ hashes */

typedef enum {
    COPS_HASH_NONE = 0,
    COPS_HASH_SHA1,
    COPS_HASH_SHA224,
    COPS_HASH_SHA256,
    COPS_HASH_SHA384,
    COPS_HASH_SHA512,
    COPS_HASH_SHA512_224,
    COPS_HASH_SHA512_256,
    COPS_HASH_SHA3_224,
    COPS_HASH_SHA3_256,
    COPS_HASH_SHA3_384,
    COPS_HASH_SHA3_512,
    COPS_HASH_COUNT
} cops_hash_t;

/* Output length in bytes (0 for COPS_HASH_NONE or an unknown value). */
size_t cops_hash_len(cops_hash_t h);

/* Largest hash output (SHA-512). */
#define COPS_HASH_MAX 64

/* ------------------------------------------------------------ keys */

typedef struct cops_key cops_key_t;

/*
 * Builds the key of an object from its attributes (RSA, EC, Edwards,
 * Montgomery public or private keys; any secret key). CKR_CURVE_NOT_SUPPORTED
 * for an unknown curve, CKR_KEY_TYPE_INCONSISTENT for a class or key type
 * without crypto, CKR_FUNCTION_FAILED when OpenSSL refuses the values (a
 * key object made with inconsistent parts). The new key has one reference.
 */
CK_RV cops_key_from_attrs(const attr_list_t *l, cops_key_t **out);
cops_key_t *cops_key_ref(cops_key_t *k);
void cops_key_unref(cops_key_t *k);
/* Size in the units of the mechanism tables: bits of the modulus (RSA) or
 * of the group order (EC), 255 or 448 (Edwards, Montgomery), bytes of the
 * value (secret keys). */
CK_ULONG cops_key_size(const cops_key_t *k);
CK_KEY_TYPE cops_key_type(const cops_key_t *k);

/*
 * The curve of CKA_EC_PARAMS (DER OID or DER PrintableString name) for key
 * type kt: CKR_OK, or CKR_CURVE_NOT_SUPPORTED. *bits as cops_key_size.
 */
CK_RV cops_curve_check(CK_KEY_TYPE kt, const uint8_t *params, size_t len,
                       CK_ULONG *bits);

/* ------------------------------------------------------------ generation */

/*
 * A new RSA key pair of bits bits and public exponent e (big-endian; NULL:
 * 65537). Adds CKA_MODULUS, CKA_PUBLIC_EXPONENT and CKA_PUBLIC_KEY_INFO to
 * pub; the same and CKA_PRIVATE_EXPONENT, CKA_PRIME_1/2, CKA_EXPONENT_1/2,
 * CKA_COEFFICIENT to priv. An even e or e < 3: CKR_ATTRIBUTE_VALUE_INVALID.
 */
CK_RV cops_generate_rsa(CK_ULONG bits, const uint8_t *e, size_t elen,
                        attr_list_t *pub, attr_list_t *priv);
/*
 * A new EC (kt CKK_EC), Edwards or Montgomery key pair on the curve named
 * by params. Adds CKA_EC_POINT (DER OCTET STRING) and CKA_PUBLIC_KEY_INFO to
 * pub, CKA_VALUE and CKA_PUBLIC_KEY_INFO to priv.
 */
CK_RV cops_generate_ec(CK_KEY_TYPE kt, const uint8_t *params, size_t plen,
                       attr_list_t *pub, attr_list_t *priv);

/* ------------------------------------------------------------ ECDH */

/*
 * The raw shared secret Z of an EC or Montgomery private key and the peer's
 * public point (raw, or wrapped in a DER OCTET STRING). *z malloc'd, to be
 * wiped. A malformed point or one not on the curve:
 * CKR_MECHANISM_PARAM_INVALID.
 */
CK_RV cops_ecdh(const cops_key_t *priv, const uint8_t *peer, size_t peerlen,
                uint8_t **z, size_t *zlen);
/* ANSI X9.63 KDF (EVP_KDF "X963KDF") of Z with shared info. */
CK_RV cops_x963_kdf(cops_hash_t h, const uint8_t *z, size_t zlen,
                    const uint8_t *info, size_t infolen, uint8_t *out,
                    size_t outlen);

/* ------------------------------------------------------------ operations */

/* What a mechanism's parameter says, once checked (pointers valid during
 * cops_op_new only). */
typedef struct {
    cops_hash_t hash;     /* hash-and-sign, PSS/OAEP hashAlg, HMAC, digest */
    cops_hash_t mgf1;     /* PSS, OAEP */
    size_t salt_len;      /* PSS */
    const uint8_t *label; /* OAEP */
    size_t label_len;
    bool eddsa_ph;          /* EdDSA: Ed25519ph / Ed448ph */
    bool eddsa_params;      /* a CK_EDDSA_PARAMS was given */
    const uint8_t *context; /* EdDSA context string */
    size_t context_len;
    size_t mac_len; /* HMAC output (the _GENERAL length or the hash's) */
    /* ECDH1: kdf_null for CKD_NULL, else hash names the X9.63 KDF. */
    bool kdf_null;
    const uint8_t *shared_data;
    size_t shared_len;
    const uint8_t *public_data;
    size_t public_len;
    /* Symmetric ciphers and AEADs (sym.c). */
    const uint8_t *iv; /* CBC IV, CTR block, GCM IV, CCM/ChaCha nonce,
                          key wrap IV (NULL: the default) */
    size_t iv_len;
    const uint8_t *aad; /* GCM, CCM, ChaCha20-Poly1305 */
    size_t aad_len;
    size_t tag_len;   /* bytes */
    size_t ctr_bits;  /* CTR: counter bits of the block */
    size_t data_len;  /* CCM: the whole message length */
    bool iv_generate; /* GCM encryption: the token makes the IV */
    /* AEADs: most bytes kept before the tag is checked (config
     * aead_max_buffer; 0: COPS_AEAD_HOLD_MAX). */
    size_t hold_max;
    /* CKM_RSA_AES_KEY_WRAP: ephemeral AES key length (bytes). */
    size_t wrap_aes_len;
    /* PBKDF2 (the password is label): read by keygen.c. */
    const uint8_t *salt;
    size_t salt_bytes;
    unsigned long iterations;
    /* Derivation: the checked parameter, read by keygen.c. */
    const struct hsm_mech *mech;
} cops_params_t;

/* A family of mechanisms: what the table's rows point at. */
typedef struct cops_impl cops_impl_t;
typedef struct cops_op cops_op_t;

extern const cops_impl_t cops_rsa_pkcs;      /* CKM_RSA_PKCS */
extern const cops_impl_t cops_rsa_x509;      /* CKM_RSA_X_509 */
extern const cops_impl_t cops_rsa_pss;       /* CKM_RSA_PKCS_PSS */
extern const cops_impl_t cops_rsa_oaep;      /* CKM_RSA_PKCS_OAEP */
extern const cops_impl_t cops_rsa_pkcs_hash; /* CKM_SHAx_RSA_PKCS */
extern const cops_impl_t cops_rsa_pss_hash;  /* CKM_SHAx_RSA_PKCS_PSS */
extern const cops_impl_t cops_ecdsa;         /* CKM_ECDSA */
extern const cops_impl_t cops_ecdsa_hash;    /* CKM_ECDSA_SHAx */
extern const cops_impl_t cops_eddsa;         /* CKM_EDDSA */
extern const cops_impl_t cops_hmac;          /* CKM_SHAx_HMAC(_GENERAL) */
extern const cops_impl_t cops_digest;        /* CKM_SHAx */
/* sym.c */
extern const cops_impl_t cops_aes_ecb;       /* CKM_AES_ECB */
extern const cops_impl_t cops_aes_cbc;       /* CKM_AES_CBC */
extern const cops_impl_t cops_aes_cbc_pad;   /* CKM_AES_CBC_PAD */
extern const cops_impl_t cops_aes_ctr;       /* CKM_AES_CTR */
extern const cops_impl_t cops_des3_ecb;      /* CKM_DES3_ECB */
extern const cops_impl_t cops_des3_cbc;      /* CKM_DES3_CBC */
extern const cops_impl_t cops_des3_cbc_pad;  /* CKM_DES3_CBC_PAD */
extern const cops_impl_t cops_aes_gcm;       /* CKM_AES_GCM */
extern const cops_impl_t cops_cloudhsm_gcm;  /* IV made and prepended */
extern const cops_impl_t cops_aes_ccm;       /* CKM_AES_CCM */
extern const cops_impl_t cops_chacha20_poly; /* CKM_CHACHA20_POLY1305 */
extern const cops_impl_t cops_aes_kw;        /* RFC 3394 */
extern const cops_impl_t cops_aes_kwp;       /* RFC 5649 */
extern const cops_impl_t cops_aes_kw_pkcs5;  /* PKCS#5 padding + RFC 3394 */
extern const cops_impl_t cops_aes_cmac;      /* CKM_AES_CMAC(_GENERAL) */

/*
 * Starts an operation of kind on key (NULL for a digest), taking a
 * reference on it. CKR_MECHANISM_PARAM_INVALID when the parameters do not
 * fit the key (PSS salt too long, OAEP hash too long for the modulus, an
 * EdDSA variant this OpenSSL lacks).
 */
CK_RV cops_op_new(const cops_impl_t *impl, hsm_opkind_t kind, cops_key_t *key,
                  const cops_params_t *p, cops_op_t **out);
void cops_op_free(cops_op_t *op);
/*
 * Makes op (finished or abandoned, its family, kind and key unchanged) the
 * start of a new operation with parameters p, keeping the keyed context:
 * no fetch, no key schedule, no allocation for the families that can (HMAC,
 * digests, AES-GCM). CKR_FUNCTION_NOT_SUPPORTED: this family or this
 * change of parameters needs cops_op_new; any error leaves op to be freed.
 */
CK_RV cops_op_reuse(cops_op_t *op, const cops_params_t *p);
/* The family and the key of op (to match a kept op against a new init),
 * and whether its family can be reused at all. */
const cops_impl_t *cops_op_impl(const cops_op_t *op);
const cops_key_t *cops_op_key(const cops_op_t *op);
bool cops_op_reusable(const cops_op_t *op);

/*
 * The algorithm cache (digest.c): while a reference is held, hashes, MACs
 * and ciphers are fetched once from the library context and kept.
 * cops_init after crypto_init, cops_fini before crypto_fini; cops works
 * without (every call fetches).
 */
CK_RV cops_init(void);
void cops_fini(void);
/* Largest output of the next step (final, or one-shot over inlen bytes). */
CK_RV cops_op_output_len(const cops_op_t *op, bool final, size_t inlen,
                         size_t *outlen);
/* Largest output of an encryption or decryption update over inlen bytes. */
CK_RV cops_op_update_len(const cops_op_t *op, size_t inlen, size_t *outlen);
/* Multi-part input (sign, verify, digest); CKR_FUNCTION_NOT_SUPPORTED for
 * single-part families. */
CK_RV cops_op_update(cops_op_t *op, const uint8_t *in, size_t inlen);
/* Multi-part encryption or decryption: *outlen in: room, out: written.
 * CKR_BUFFER_TOO_SMALL (nothing consumed, *outlen the need) leaves op
 * usable. */
CK_RV cops_op_update_out(cops_op_t *op, const uint8_t *in, size_t inlen,
                         uint8_t *out, size_t *outlen);
/* The IV the token made at init (GCM with a NULL or zero IV): its length,
 * copied to iv when room allows; 0 when the caller's IV is used. */
size_t cops_op_iv(const cops_op_t *op, uint8_t *iv, size_t room);
/* Sign or digest after updates. CKR_BUFFER_TOO_SMALL leaves op usable. */
CK_RV cops_op_final(cops_op_t *op, uint8_t *out, size_t *outlen);
/* Sign, digest, encrypt or decrypt in one step. */
CK_RV cops_op_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                      uint8_t *out, size_t *outlen);
/* Verify (oneshot over data, or after updates with data NULL). */
CK_RV cops_op_verify(cops_op_t *op, const uint8_t *data, size_t datalen,
                     bool oneshot, const uint8_t *sig, size_t siglen);

/* ---------------------------------------- inside src/hsm/crypto/ only */

/* A key: an EVP_PKEY (void * here) or the bytes of a secret key. */
struct cops_key {
    _Atomic int refs;
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE kt;
    void *pkey; /* EVP_PKEY *, NULL for secret keys */
    uint8_t *secret;
    size_t secret_len;
    CK_ULONG size;     /* see cops_key_size */
    size_t out_len;    /* RSA: k; EC: order bytes; Ed: signature bytes */
    size_t field_len;  /* EC: coordinate bytes; Ed/X: raw key bytes */
    const char *group; /* EC: OpenSSL group name; Ed/X: key type name */
};

struct cops_impl {
    const char *name;
    CK_RV (*init)(cops_op_t *op, const cops_params_t *p);
    CK_RV(*output_len)
    (const cops_op_t *op, bool final, size_t inlen, size_t *outlen);
    /* out is NULL for sign, verify and digest (no output). */
    CK_RV(*update)
    (cops_op_t *op, const uint8_t *in, size_t inlen, uint8_t *out,
     size_t *outlen);
    CK_RV (*final)(cops_op_t *op, uint8_t *out, size_t *outlen);
    CK_RV(*oneshot)
    (cops_op_t *op, const uint8_t *in, size_t inlen, uint8_t *out,
     size_t *outlen);
    CK_RV(*verify)
    (cops_op_t *op, const uint8_t *data, size_t datalen, bool oneshot,
     const uint8_t *sig, size_t siglen);
    /* Optional: makes a finished op ready for another operation with the
     * new parameters now in op->p (prev: the old ones), keeping what is
     * keyed; CKR_FUNCTION_NOT_SUPPORTED when the change needs a new op. */
    CK_RV (*reset)(cops_op_t *op, const cops_params_t *prev);
    void (*cleanup)(cops_op_t *op);
    int variant; /* the family's own mode selector (sym.c) */
};

struct cops_op {
    const cops_impl_t *impl;
    hsm_opkind_t kind;
    cops_key_t *key;
    cops_params_t p; /* pointers cleared after init */
    void *pctx;      /* EVP_PKEY_CTX * (raw families) */
    void *mdctx;     /* EVP_MD_CTX * (hash families, EdDSA, digests) */
    void *macctx;    /* EVP_MAC_CTX * */
    bool updated;    /* an update was made (EdDSA refuses them) */
    void *state;     /* family state (sym.c) */
};

/* ------------------------------------------------------------ AEAD */

/* One AEAD message (sym.c), for the operations and the 3.0 message API. */
typedef enum {
    COPS_AEAD_GCM = 1,
    COPS_AEAD_CCM,
    COPS_AEAD_CHACHA,
} cops_aead_alg_t;

typedef struct cops_aead cops_aead_t;

/* Largest message an AEAD keeps in memory (decryption before the tag is
 * checked, CCM): more is CKR_DATA_LEN_RANGE / ENCRYPTED_DATA_LEN_RANGE. */
#define COPS_AEAD_HOLD_MAX (64u * 1024 * 1024)
#define COPS_IV_MAX 256
#define COPS_TAG_MAX 16

/*
 * Starts a message under key (AES or ChaCha20). hold: keep all input and
 * output nothing before the final step (decryption that must not release
 * plaintext before the tag is checked; CCM always holds). data_len: CCM's
 * total message length.
 */
CK_RV cops_aead_new(const cops_key_t *key, cops_aead_alg_t alg, bool enc,
                    bool hold, const uint8_t *iv, size_t ivlen, size_t taglen,
                    size_t data_len, cops_aead_t **out);
/* Lowers the most input a holds (0 or more than COPS_AEAD_HOLD_MAX: that);
 * beyond it updates fail as above. */
void cops_aead_set_hold_max(cops_aead_t *a, size_t max);
CK_RV cops_aead_aad(cops_aead_t *a, const uint8_t *aad, size_t len);
/* Output bound of an update of inlen bytes, and of the final step. */
size_t cops_aead_update_len(const cops_aead_t *a, size_t inlen);
size_t cops_aead_final_len(const cops_aead_t *a);
CK_RV cops_aead_update(cops_aead_t *a, const uint8_t *in, size_t inlen,
                       uint8_t *out, size_t *outlen);
/* Encryption: the rest of the output, and the tag into tag (taglen bytes).
 * Decryption: checks tag (CKR_ENCRYPTED_DATA_INVALID when it does not
 * match, nothing written), then the rest of the plaintext. */
CK_RV cops_aead_final(cops_aead_t *a, uint8_t *out, size_t *outlen,
                      uint8_t *tag);
void cops_aead_free(cops_aead_t *a);

/* ------------------------------------------------------------ wrap, KDFs */

/* The DER PKCS#8 PrivateKeyInfo of a private key (*der malloc'd, wipe). */
CK_RV cops_key_to_pkcs8(const cops_key_t *k, uint8_t **der, size_t *len);
/*
 * Parses a PKCS#8 PrivateKeyInfo: *kt its key type (RSA, EC, Edwards,
 * Montgomery), and the key's attributes added to l: RSA modulus, public
 * exponent and every private part; EC_PARAMS (DER OID) and VALUE; and
 * PUBLIC_KEY_INFO. Malformed or unsupported: CKR_WRAPPED_KEY_INVALID.
 */
CK_RV cops_pkcs8_to_attrs(const uint8_t *der, size_t len, CK_KEY_TYPE *kt,
                          attr_list_t *l);

/* kdf.c */
/* HKDF (RFC 5869): extract and/or expand; salt NULL: HashLen zeros. */
CK_RV cops_hkdf(cops_hash_t h, bool extract, bool expand, const uint8_t *salt,
                size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                const uint8_t *info, size_t infolen, uint8_t *out,
                size_t outlen);
/* PBKDF2 with HMAC-h (no SP 800-132 lower bounds: PKCS#5 as written). */
CK_RV cops_pbkdf2(cops_hash_t h, const uint8_t *pw, size_t pwlen,
                  const uint8_t *salt, size_t saltlen, unsigned long iter,
                  uint8_t *out, size_t outlen);
/* One PRF block of SP 800-108: HMAC-h (h set) or AES-CMAC (h NONE) of
 * data under key; *outlen the PRF output length. */
CK_RV cops_prf(cops_hash_t h, const uint8_t *key, size_t keylen,
               const uint8_t *data, size_t datalen, uint8_t *out,
               size_t *outlen);
/* AES-ECB / AES-CBC (no padding) of data under key, for the
 * *_ENCRYPT_DATA derivations; len a multiple of 16. iv NULL: ECB. */
CK_RV cops_aes_raw(const uint8_t *key, size_t keylen, const uint8_t *iv,
                   const uint8_t *in, size_t len, uint8_t *out);

/* digest.c: the OpenSSL name of a hash (NULL for none). */
const char *cops_hash_name(cops_hash_t h);
/* digest.c: a cops_init reference is held (the caches may be filled). */
bool cops_cache_on(void);
/* sym.c: frees the cached ciphers (cops_fini). */
void cops_sym_cache_clear(void);
/* pkey.c: frees the kept key generation contexts (cops_fini). */
void cops_pkey_cache_clear(void);
/* asym.c: OpenSSL error queue to log and clear. */
void cops_log_ossl(const char *what);

#endif
