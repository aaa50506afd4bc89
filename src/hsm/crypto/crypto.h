/*
 * crypto.h - the only door to OpenSSL. Everything here runs in a private
 * OSSL_LIB_CTX (never the application's default context or configuration),
 * so that a pkcs11 provider loading this very module cannot recurse into it.
 * No OpenSSL type appears in this header.
 */
#ifndef NIMBUS_CRYPTO_H
#define NIMBUS_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pkcs11/pkcs11.h"

#define CRYPTO_MASTER_KEY_LEN 32
#define CRYPTO_SEAL_OVERHEAD (12 + 16) /* GCM nonce + tag */

/* Reference-counted: the first call creates the library context, the last
 * crypto_fini frees it. Thread-safe. */
CK_RV crypto_init(void);
void crypto_fini(void);

/* Cryptographically secure random bytes (CKR_FUNCTION_FAILED on error). */
CK_RV crypto_random(uint8_t *buf, size_t len);

/* SHA-256 of data. */
CK_RV crypto_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

/*
 * Password verifiers: PBKDF2-HMAC-SHA256 through EVP_KDF with a 16-byte
 * random salt. The verifier is a self-describing byte string
 * ("pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>") that holds no
 * password. *ver is malloc'd.
 */
CK_RV crypto_pw_make(const uint8_t *pw, size_t pwlen, unsigned long iterations,
                     uint8_t **ver, size_t *verlen);
/* *ok tells whether pw matches (constant-time compare). A malformed verifier
 * is CKR_GENERAL_ERROR. */
CK_RV crypto_pw_check(const uint8_t *ver, size_t verlen, const uint8_t *pw,
                      size_t pwlen, bool *ok);
/* Spends the same time as a check at this cost, for unknown users. */
void crypto_pw_dummy(const uint8_t *pw, size_t pwlen, unsigned long iterations);

/*
 * AES-256-GCM sealing of values at rest: out = nonce(12) || ct || tag(16),
 * ad is bound (object id and attribute type). *out malloc'd.
 * crypto_unseal: a wrong key, ad or a changed byte is CKR_GENERAL_ERROR
 * (the store is damaged); *out is secret memory (crypto_secret_free).
 */
CK_RV crypto_seal(const uint8_t key[CRYPTO_MASTER_KEY_LEN], const uint8_t *ad,
                  size_t adlen, const uint8_t *in, size_t inlen, uint8_t **out,
                  size_t *outlen);
CK_RV crypto_unseal(const uint8_t key[CRYPTO_MASTER_KEY_LEN], const uint8_t *ad,
                    size_t adlen, const uint8_t *in, size_t inlen,
                    uint8_t **out, size_t *outlen);

/*
 * HKDF-SHA256 (RFC 5869, extract and expand, no salt) of ikm with info:
 * a purpose key derived from a long-term key (the login ticket key from
 * the store master key or the cluster masking key). outlen at most
 * 255 * 32.
 */
CK_RV crypto_hkdf_sha256(const uint8_t *ikm, size_t ikmlen, const uint8_t *info,
                         size_t infolen, uint8_t *out, size_t outlen);

/*
 * The store master key: read from path (must be a regular file of exactly
 * 32 bytes, mode 0600 or stricter, owned by us), or when create is true and
 * the file does not exist, made from fresh random bytes and written with
 * mode 0600 (O_EXCL, fsync). CKR_DEVICE_ERROR with a logged reason on
 * any problem.
 */
CK_RV crypto_master_key_load(const char *path, bool create,
                             uint8_t key[CRYPTO_MASTER_KEY_LEN]);

/* The private library context (an OSSL_LIB_CTX *), for the other files of
 * src/hsm/crypto/ only; NULL before crypto_init. */
void *crypto_libctx(void);

/*
 * Secret memory (secmem.c), for secrets in clear that live longer than one
 * call: the store master key, unsealed attribute values, parsed secret
 * keys. Page-aligned mappings of our own marked MADV_DONTDUMP (no core
 * dump holds them) and MADV_WIPEONFORK (a forked child reads zeros);
 * a block is wiped when freed. alloc: NULL when out of memory.
 * free_any: frees p whether it is secret memory or malloc'd (wiping len
 * bytes then). owns: whether p is a block of secret memory.
 */
void *crypto_secret_alloc(size_t len);
void *crypto_secret_dup(const void *p, size_t len);
void crypto_secret_free(void *p);
void crypto_secret_free_any(void *p, size_t len);
bool crypto_secret_owns(const void *p);
/*
 * From now on every secret mapping is also locked in RAM (mlock; the ones
 * that exist are locked now): no swap holds a secret. Process-wide, so
 * nimbusd calls it and the module never does. A lock the RLIMIT_MEMLOCK
 * refuses is warned about once; the memory still serves. true when every
 * mapping so far is locked.
 */
bool crypto_secret_lock(void);

/*
 * Keys are made only by the key managers of our own provider in that
 * context (see crypto.c: a default ENGINE of the application cannot take
 * them over): fetch them with this property query and the name
 * crypto_keytype gives for OpenSSL's key type name ("RSA", "EC",
 * "ED25519", "ED448", "X25519", "X448"); NULL for any other name.
 */
#define CRYPTO_KEYS_PROPQ "provider=nimbus-keys"
const char *crypto_keytype(const char *name);

/*
 * Quorum approvers' and two-factor logins' keys (qkey.c; ARCHITECTURE
 * section 12): RSA-2048, signatures SHA256-RSA-PKCS.
 * crypto_quorum_key_parse: in is a PEM ("PUBLIC KEY") or DER
 * SubjectPublicKeyInfo of at most CRYPTO_QUORUM_KEY_IN_MAX bytes; *der
 * (malloc'd) is its canonical DER. CKR_ARGUMENTS_BAD: not such a thing;
 * CKR_KEY_TYPE_INCONSISTENT: not rsaEncryption; CKR_KEY_SIZE_RANGE: not
 * 2048 bits.
 * crypto_quorum_verify: CKR_OK when sig is a signature of msg under the
 * DER key; CKR_SIGNATURE_INVALID, or CKR_SIGNATURE_LEN_RANGE when sig is
 * not 256 bytes.
 */
#define CRYPTO_QUORUM_RSA_BITS 2048
#define CRYPTO_QUORUM_KEY_IN_MAX 4096
CK_RV crypto_quorum_key_parse(const uint8_t *in, size_t len, uint8_t **der,
                              size_t *derlen);
CK_RV crypto_quorum_verify(const uint8_t *der, size_t derlen,
                           const uint8_t *msg, size_t msglen,
                           const uint8_t *sig, size_t siglen);

/* Wipes a buffer (OPENSSL_cleanse). */
void crypto_wipe(void *p, size_t len);

#endif
