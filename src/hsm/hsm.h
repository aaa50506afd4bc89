/*
 * hsm.h - the one internal HSM API.
 *
 * Both the PKCS#11 front end (src/pkcs11/) and the management shell go
 * through these calls and nothing else. Requests and replies are plain data
 * (ids, byte strings, attribute lists): nothing here hands out a pointer into
 * a core structure, so every call can later be carried over the wire to
 * nimbusd unchanged. The core does not know the PKCS#11 calling conventions
 * (NULL checks, two-call length queries): the front end has done them before
 * it calls in, so every pointer given here is valid and every length true.
 *
 * Return values are CK_RV with their PKCS#11 meaning.
 */
#ifndef NIMBUS_HSM_H
#define NIMBUS_HSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"
#include "pkcs11/pkcs11.h"

typedef struct hsm hsm_t;           /* one token (store) open in a process */
typedef struct hsm_conn hsm_conn_t; /* one application: login + sessions */
typedef uint64_t hsm_oid_t;         /* stable object id (mgmt "key handle") */
typedef uint32_t hsm_uid_t;         /* user id as listUsers shows it */

/* User types, as the management shell shows them. */
typedef enum {
    HSM_USER_NONE = 0, /* no one logged in: an unauthenticated session */
    HSM_USER_PRECO,    /* admin on a never-activated HSM */
    HSM_USER_CO,       /* crypto officer (PCO when it is user 1) */
    HSM_USER_CU,       /* crypto user */
    HSM_USER_AU,       /* appliance user */
} hsm_user_type_t;

/* What C_Login / C_LoginUser asks for. */
typedef enum {
    HSM_LOGIN_SO,   /* CKU_SO: a CO, or PRECO before activation */
    HSM_LOGIN_USER, /* CKU_USER: a CU */
    HSM_LOGIN_AU,   /* CKU_NIMBUS_AU */
} hsm_login_kind_t;

#define HSM_PASSWORD_MIN 7
#define HSM_PASSWORD_MAX 32
#define HSM_USER_NAME_MAX 31
#define HSM_PRECO_NAME "admin"
#define HSM_PRECO_PASSWORD "password"
#define HSM_AU_NAME "app_user"
#define HSM_MAX_SESSIONS 1024
/* Largest attribute value, and attributes in one template. */
#define HSM_ATTR_VALUE_MAX (64 * 1024)
#define HSM_TEMPLATE_MAX 256

/* ------------------------------------------------------------ the token */

/* Opens (creating when new) the store named by cfg. */
CK_RV hsm_open(const struct config *cfg, hsm_t **out);
void hsm_close(hsm_t *hsm);

typedef struct {
    char label[33];  /* NUL-terminated, not padded */
    char serial[17]; /* NUL-terminated hex */
    bool activated;  /* PRECO gone: CKF_TOKEN_INITIALIZED */
    bool preco;      /* PRECO still there: CKF_SO_PIN_TO_BE_CHANGED */
    bool cu_exists;  /* CKF_USER_PIN_INITIALIZED */
    /*
     * Failure counts of the SO and user PINs as this application sees them:
     * the logged-in user of that type, else the primary CO / default CU.
     */
    unsigned long so_failures;
    unsigned long user_failures;
    unsigned long failure_limit;
    unsigned long objects_private_mem; /* bytes, informational */
} hsm_token_info_t;

CK_RV hsm_token_info(hsm_t *hsm, hsm_conn_t *conn, hsm_token_info_t *info);

/*
 * C_InitToken. Not activated: activation, the password becomes the CO's and
 * the label is set. Activated: name/password must be a CO's (wrong: counts
 * towards lockout, CKR_PIN_INCORRECT); then every object and every CU is
 * destroyed and the label set. The caller has checked that no session is
 * open. name NULL means the primary CO ("admin").
 */
CK_RV hsm_init_token(hsm_t *hsm, const char *name, const uint8_t *pw,
                     size_t pwlen, const char *label);

/* ---------------------------------------------------- connections, login */

CK_RV hsm_conn_open(hsm_t *hsm, hsm_conn_t **out);
/* Ends every session of the connection and its login. */
void hsm_conn_close(hsm_conn_t *conn);

/* Who is logged in on the connection (HSM_USER_NONE: nobody). */
hsm_user_type_t hsm_conn_user_type(hsm_conn_t *conn, hsm_uid_t *uid);

/*
 * Log the connection in. name NULL: "admin" for SO, the configured default
 * CU for USER, "app_user" for AU. An unknown name, a name of another type and
 * a wrong password all give CKR_PIN_INCORRECT; a locked user gets
 * CKR_PIN_LOCKED even with the right password; CKU_USER before any CU
 * exists gives CKR_USER_PIN_NOT_INITIALIZED. Already logged in:
 * CKR_USER_ALREADY_LOGGED_IN (same kind) or
 * CKR_USER_ANOTHER_ALREADY_LOGGED_IN.
 */
CK_RV hsm_login(hsm_conn_t *conn, hsm_login_kind_t kind, const char *name,
                const uint8_t *pw, size_t pwlen);
/* CKR_USER_NOT_LOGGED_IN when nobody is. Destroys private session objects. */
CK_RV hsm_logout(hsm_conn_t *conn);

/*
 * C_SetPIN. Logged in: changes the logged-in user's own password after
 * checking old (a wrong old counts as a failed login); for PRECO this is
 * activation. Not logged in: name names the user (NULL: the default CU).
 */
CK_RV hsm_set_password(hsm_conn_t *conn, const char *name,
                       const uint8_t *old_pw, size_t old_len,
                       const uint8_t *new_pw, size_t new_len);

/*
 * C_InitPIN in a CO session: creates CU name with password pw, or when the
 * user exists, resets its password and unlocks it. name NULL: default CU.
 */
CK_RV hsm_init_pin(hsm_conn_t *conn, const char *name, const uint8_t *pw,
                   size_t pwlen);

/* ---------------------------------------------------- user management */

typedef struct {
    hsm_uid_t id;
    hsm_user_type_t type;
    bool primary; /* the CO that activated the HSM: shown as PCO */
    char name[HSM_USER_NAME_MAX + 1];
    unsigned long login_failures;
    bool locked;
} hsm_user_info_t;

/* Basic information: allowed to everyone. *users is malloc'd. */
CK_RV hsm_user_list(hsm_conn_t *conn, hsm_user_info_t **users, size_t *count);
/* CO only. type HSM_USER_CO or HSM_USER_CU. */
CK_RV hsm_user_create(hsm_conn_t *conn, hsm_user_type_t type, const char *name,
                      const uint8_t *pw, size_t pwlen, hsm_uid_t *uid);
/* CO only; refused for a logged-in user (of this connection) and a CU that
 * owns objects (CKR_ACTION_PROHIBITED), and for the last CO. */
CK_RV hsm_user_delete(hsm_conn_t *conn, const char *name);

/* ---------------------------------------------------- sessions */

typedef uint32_t hsm_sid_t;

CK_RV hsm_session_open(hsm_conn_t *conn, bool rw, hsm_sid_t *sid);
/* Destroys the session's session objects. */
CK_RV hsm_session_close(hsm_conn_t *conn, hsm_sid_t sid);

/* ---------------------------------------------------- objects */

/* One attribute read back from an object. */
typedef enum {
    HSM_ATTR_OK = 0,    /* value/len valid */
    HSM_ATTR_SENSITIVE, /* exists, may not be revealed */
    HSM_ATTR_INVALID,   /* not an attribute of this object */
} hsm_attr_status_t;

typedef struct {
    CK_ATTRIBUTE_TYPE type;
    hsm_attr_status_t status;
    uint8_t *value; /* malloc'd, NULL when len is 0 */
    size_t len;
} hsm_attr_t;

/* Frees the values of n attributes (wiping them) and not the array. */
void hsm_attrs_free(hsm_attr_t *attrs, size_t n);

/*
 * Object calls take the session they are made in (token objects in an RO
 * session: CKR_SESSION_READ_ONLY). An object the caller may not see is
 * CKR_OBJECT_HANDLE_INVALID; one it sees but may not change is
 * CKR_ACTION_PROHIBITED.
 */
CK_RV hsm_object_create(hsm_conn_t *conn, hsm_sid_t sid,
                        const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                        hsm_oid_t *oid);
CK_RV hsm_object_copy(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                      const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                      hsm_oid_t *new_oid);
CK_RV hsm_object_destroy(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid);
CK_RV hsm_object_size(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                      CK_ULONG *size);
/* Reads types[0..n-1] into out[0..n-1] (out[i].type = types[i]). */
CK_RV hsm_object_get(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                     const CK_ATTRIBUTE_TYPE *types, size_t n, hsm_attr_t *out);
CK_RV hsm_object_set(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                     const CK_ATTRIBUTE *tmpl, CK_ULONG count);
/*
 * Every object the connection may see that matches tmpl (attribute values
 * compared byte for byte). *oids is malloc'd, sorted ascending.
 */
CK_RV hsm_object_find(hsm_conn_t *conn, hsm_sid_t sid, const CK_ATTRIBUTE *tmpl,
                      CK_ULONG count, hsm_oid_t **oids, size_t *n);
/* Whether the object is private (CKA_PRIVATE): for handle bookkeeping. */
CK_RV hsm_object_is_private(hsm_conn_t *conn, hsm_oid_t oid, bool *priv);

/* Sharing (CU owner only). */
CK_RV hsm_object_share(hsm_conn_t *conn, hsm_oid_t oid, hsm_uid_t uid,
                       bool share);

/* ---------------------------------------------------- mechanisms */

typedef struct {
    CK_ULONG min_key; /* in the units the spec uses (bits for RSA/EC) */
    CK_ULONG max_key;
    CK_FLAGS flags;   /* CKF_SIGN, CKF_GENERATE_KEY_PAIR, CKF_EC_* ... */
} hsm_mech_info_t;

/* Every mechanism of the table, ascending. *list malloc'd. */
CK_RV hsm_mech_list(hsm_t *hsm, CK_MECHANISM_TYPE **list, size_t *n);
/* CKR_MECHANISM_INVALID for one not in the table. */
CK_RV hsm_mech_info(hsm_t *hsm, CK_MECHANISM_TYPE type, hsm_mech_info_t *info);

/* ---------------------------------------------------- crypto operations */

/*
 * One operation of each kind may be active per session; the front end keeps
 * that state machine (CKR_OPERATION_ACTIVE, _NOT_INITIALIZED, one-shot vs
 * multi-part, the two-call length convention) and the core keeps the crypto
 * context. The mechanism parameter is given as PKCS#11 lays it out; the
 * core checks its exact length and contents (CKR_MECHANISM_PARAM_INVALID).
 */
typedef enum {
    HSM_OPK_ENCRYPT = 0,
    HSM_OPK_DECRYPT,
    HSM_OPK_SIGN,
    HSM_OPK_VERIFY,
    HSM_OPK_DIGEST,
    HSM_OPK_COUNT
} hsm_opkind_t;

/*
 * Starts an operation. key is 0 for a digest. Key errors:
 * CKR_KEY_HANDLE_INVALID (not visible), CKR_KEY_TYPE_INCONSISTENT,
 * CKR_KEY_FUNCTION_NOT_PERMITTED (CKA_SIGN FALSE, CKA_ALLOWED_MECHANISMS,
 * not the owner or a sharer for a private or secret key), CKR_KEY_SIZE_RANGE;
 * CKR_MECHANISM_INVALID (not in the table, or not for this kind);
 * CKR_MECHANISM_PARAM_INVALID. The permission table is consulted for the
 * kind (sign, encrypt, digest rows).
 */
CK_RV hsm_op_init(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                  const CK_MECHANISM *mech, hsm_oid_t key);

/*
 * The largest output the next step can produce for inlen bytes of input
 * (final: inlen 0; one-shot: the whole input), without doing it: what a
 * two-call length query returns. A one-shot query on a kind whose size
 * depends on the data (e.g. RSA decryption) may return the upper bound.
 */
CK_RV hsm_op_output_len(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        bool final, size_t inlen, size_t *outlen);

/*
 * One-shot (C_Encrypt, C_Decrypt, C_Sign, C_Digest): in -> out; *outlen in:
 * room, out: length written. Ends the operation whatever the result, except
 * CKR_BUFFER_TOO_SMALL (the front end asks output_len first, so the core
 * does not see that case normally).
 */
CK_RV hsm_op_oneshot(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                     const uint8_t *in, size_t inlen, uint8_t *out,
                     size_t *outlen);
/* Multi-part: update may produce output (encrypt/decrypt); CKR_OK or an
 * error that ends the operation. */
CK_RV hsm_op_update(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                    const uint8_t *in, size_t inlen, uint8_t *out,
                    size_t *outlen);
/* Multi-part end (C_EncryptFinal, C_DecryptFinal, C_SignFinal,
 * C_DigestFinal); ends the operation. */
CK_RV hsm_op_final(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                   uint8_t *out, size_t *outlen);
/* Verify: one-shot over data, or the final step after updates (data NULL).
 * CKR_SIGNATURE_INVALID or CKR_SIGNATURE_LEN_RANGE; ends the operation. */
CK_RV hsm_op_verify(hsm_conn_t *conn, hsm_sid_t sid, const uint8_t *data,
                    size_t datalen, bool oneshot, const uint8_t *sig,
                    size_t siglen);
/* C_DigestKey: feeds a secret key's value into the active digest. */
CK_RV hsm_op_digest_key(hsm_conn_t *conn, hsm_sid_t sid, hsm_oid_t key);
/* Ends an operation without a result (error paths, C_SessionCancel). */
void hsm_op_abort(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind);

/* ---------------------------------------------------- key generation */

CK_RV hsm_generate_key(hsm_conn_t *conn, hsm_sid_t sid, const CK_MECHANISM *mech,
                       const CK_ATTRIBUTE *tmpl, CK_ULONG count, hsm_oid_t *oid);
CK_RV hsm_generate_key_pair(hsm_conn_t *conn, hsm_sid_t sid,
                            const CK_MECHANISM *mech,
                            const CK_ATTRIBUTE *pub_tmpl, CK_ULONG pub_count,
                            const CK_ATTRIBUTE *priv_tmpl, CK_ULONG priv_count,
                            hsm_oid_t *pub, hsm_oid_t *priv);
CK_RV hsm_derive_key(hsm_conn_t *conn, hsm_sid_t sid, const CK_MECHANISM *mech,
                     hsm_oid_t base, const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                     hsm_oid_t *oid);

/* ---------------------------------------------------- misc */

/* C_GenerateRandom: any logged-in or public session. */
CK_RV hsm_random(hsm_conn_t *conn, uint8_t *buf, size_t len);

#endif
