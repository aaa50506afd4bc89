/*
 * hsm.h - the one internal HSM API.
 *
 * Both the PKCS#11 front end (src/pkcs11/) and the management shell go
 * through these calls and nothing else. Requests and replies are plain data
 * (ids, byte strings, attribute lists): nothing here hands out a pointer into
 * a core structure, so every call can later be carried over the wire to
 * nimbusd unchanged. Mechanisms come as hsm_mech_t (common/mechparam.h):
 * the parameter decoded into plain fields and owned byte strings, never a
 * pointer into the caller's memory. The core does not know the PKCS#11
 * calling conventions
 * (NULL checks, two-call length queries): the front end has done them before
 * it calls in, so every pointer given here is valid and every length true.
 *
 * Return values are CK_RV with their PKCS#11 meaning.
 *
 * Threads. Any number of threads may call in at once, in any order, and the
 * caller need not be trusted (nimbusd carries remote clients' calls here):
 * the core itself enforces these rules, and no interleaving frees memory a
 * call is using.
 * - Calls on different connections, and on different sessions of one
 *   connection, run in parallel.
 * - One call per session at a time. A call naming a session (sid) that
 *   another call is using is refused at once with CKR_OPERATION_ACTIVE and
 *   changes nothing; it does not wait, so that a client cannot pile threads
 *   up behind its own slow call. hsm_op_abort and hsm_msg_abort refused so
 *   do nothing.
 * - hsm_session_close waits for the call under way on that session, then
 *   closes it; a call on it that begins meanwhile, or later, gets
 *   CKR_SESSION_HANDLE_INVALID. Two closes of one session: one closes, the
 *   other gets CKR_SESSION_HANDLE_INVALID.
 * - hsm_conn_close waits for every call under way on the connection; one
 *   that begins meanwhile is refused (CKR_SESSION_HANDLE_INVALID for a call
 *   naming a session, else CKR_DEVICE_REMOVED). It frees the handle when it
 *   returns: its owner (the front end, nimbusd's channel) calls it once and
 *   makes no call with the handle after it.
 * - hsm_logout while calls run on other sessions of the connection ends the
 *   login at once; those calls finish with what they hold, and what their
 *   operations keep is refused from then on (CKR_USER_NOT_LOGGED_IN) and
 *   freed by their session's next call or close.
 * - hsm_close only once every connection's calls have returned.
 * Buffers and templates given to a call must stay valid until it returns.
 * A template (CK_ATTRIBUTE tmpl[count]) is plain data: every value is
 * bytes. The array attributes CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE and
 * CKA_DERIVE_TEMPLATE carry the serialized list hsm_object_get returns
 * (see hsm_template_parse), never a CK_ATTRIBUTE array: the core does not
 * follow pointers inside a value. Converting a PKCS#11 caller's array is
 * the front end's work (src/pkcs11 mod_template_in). The core parses the
 * list with every limit checked, since a remote client sends it as it
 * likes: malformed, trailing bytes, types not strictly ascending, more
 * than HSM_TEMPLATE_MAX attributes, a value (or the whole list) longer
 * than HSM_ATTR_VALUE_MAX, a nested array attribute or one of our vendor
 * attributes are CKR_ATTRIBUTE_VALUE_INVALID. An empty value is the empty
 * template.
 * Slow work (password checks and verifiers, PBKDF2, RSA and EC key
 * generation, the crypto of an operation) runs without any lock that the
 * calls of other connections need; the exceptions are the verifier of an
 * activation by hsm_init_token (once per token) and the store writes,
 * which are short transactions under the token's lock.
 */
#ifndef NIMBUS_HSM_H
#define NIMBUS_HSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"
#include "common/mechparam.h"
#include "pkcs11/pkcs11.h"

typedef struct hsm hsm_t;           /* one token (store) open in a process */
typedef struct hsm_conn hsm_conn_t; /* one application: login + sessions */
typedef uint64_t hsm_oid_t;         /* stable object id (mgmt "key handle") */
typedef uint32_t hsm_uid_t;         /* user id as listUsers shows it */

/* Session object ids have the top bit set: never a store id. So the id
 * alone says whether an object is a session or a token object. */
#define HSM_SESSION_OID_BIT (UINT64_C(1) << 63)

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
 * open. name NULL means the primary CO ("admin"). Deleting the CUs is user
 * management: while quorum service 3 is above 1 the re-initialization is
 * CKR_FUNCTION_REJECTED (after the password check) and changes nothing; no
 * login, so no token, comes with it.
 */
CK_RV hsm_init_token(hsm_t *hsm, const char *name, const uint8_t *pw,
                     size_t pwlen, const char *label);

/* ---------------------------------------------------- connections, login */

CK_RV hsm_conn_open(hsm_t *hsm, hsm_conn_t **out);
/* Ends every session of the connection and its login. */
void hsm_conn_close(hsm_conn_t *conn);

/*
 * Names the peer of the connection (e.g. "uid=1000 pid=42" from
 * SO_PEERCRED, or a client certificate's subject) for the audit log: every
 * record the connection's calls make from now on carries it. NULL or ""
 * clears it. CKR_ARGUMENTS_BAD: longer than HSM_PEER_MAX bytes, or a
 * control character (the log stays one line per record).
 */
#define HSM_PEER_MAX 255
CK_RV hsm_conn_set_peer(hsm_conn_t *conn, const char *peer);

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
    bool mofn_pubkey; /* a quorum key is registered (listUsers MofnPubKey) */
    bool twofa;       /* logins need a signed challenge (listUsers 2FA) */
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
/*
 * C_Login(CKU_CONTEXT_SPECIFIC) in session sid: the password (name, when
 * not NULL, must be the logged-in user's) authenticates the operations of
 * the session whose key has CKA_ALWAYS_AUTHENTICATE, until they end.
 * CKR_OPERATION_NOT_INITIALIZED: no such operation waits (none active,
 * or its key does not need it; nothing changes). A wrong password is
 * CKR_PIN_INCORRECT and counts toward lockout; when the user is (or
 * becomes) locked the answer is CKR_PIN_LOCKED and the login ends.
 */
CK_RV hsm_context_login(hsm_conn_t *conn, hsm_sid_t sid, const char *name,
                        const uint8_t *pw, size_t pwlen);

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
 * CKR_ACTION_PROHIBITED. Key separation (attrs.h; config key_separation):
 * a new or copied key with CKA_WRAP and CKA_DECRYPT, or CKA_UNWRAP and
 * CKA_ENCRYPT, is CKR_TEMPLATE_INCONSISTENT (here and in generate, unwrap
 * and derive); a set that gives a key such a pair,
 * CKR_ATTRIBUTE_VALUE_INVALID.
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
 * context. The mechanism comes decoded (hsm_mech_decode); the core checks
 * hsm_mech_check's invariants, that its layout is the mechanism's, and its
 * contents (CKR_MECHANISM_PARAM_INVALID), trusting nothing in it beyond
 * each byte string's data having its len bytes.
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
                  const hsm_mech_t *mech, hsm_oid_t key);

/*
 * The largest output the next step can produce for inlen bytes of input
 * (final: inlen 0; else an update, or a one-shot, over inlen bytes),
 * without doing it: what a two-call length query returns. A query on a
 * kind whose size depends on the data (e.g. RSA decryption) may return the
 * upper bound; an AEAD update answers at least inlen even when it holds
 * the data (hsm_op_oneshot answers the exact one-shot length itself).
 */
CK_RV hsm_op_output_len(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        bool final, size_t inlen, size_t *outlen);

/*
 * One-shot (C_Encrypt, C_Decrypt, C_Sign, C_Digest): in -> out; *outlen in:
 * room, out: length written. The two-call convention is kept here: out NULL
 * gives the length hsm_op_output_len would (CKR_OK), less room than that
 * gives CKR_BUFFER_TOO_SMALL with it, and both keep the operation; any
 * other result ends it.
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

CK_RV hsm_generate_key(hsm_conn_t *conn, hsm_sid_t sid, const hsm_mech_t *mech,
                       const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                       hsm_oid_t *oid);
CK_RV hsm_generate_key_pair(hsm_conn_t *conn, hsm_sid_t sid,
                            const hsm_mech_t *mech,
                            const CK_ATTRIBUTE *pub_tmpl, CK_ULONG pub_count,
                            const CK_ATTRIBUTE *priv_tmpl, CK_ULONG priv_count,
                            hsm_oid_t *pub, hsm_oid_t *priv);
CK_RV hsm_derive_key(hsm_conn_t *conn, hsm_sid_t sid, const hsm_mech_t *mech,
                     hsm_oid_t base, const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                     hsm_oid_t *oid);

/* ------------------------------------------- symmetric crypto (issue 4) */

/*
 * hsm_op_init, and the IV the token made written back: for CKM_AES_GCM
 * encryption whose CK_GCM_PARAMS has pIv NULL or 12 zero bytes (ulIvLen
 * 12), the token makes a random 12-byte IV, copies it to iv (ivroom must
 * be at least 12) and sets *ivlen to 12; the front end copies it into the
 * caller's CK_GCM_PARAMS.pIv (hsm_mech_write_gcm_iv). Otherwise *ivlen is 0
 * and the caller's IV is used. hsm_op_init does the same and drops the IV,
 * so the front end calls this one for HSM_OPK_ENCRYPT.
 *
 * Multi-part encryption and decryption: hsm_op_update writes output (the
 * room in *outlen). hsm_op_update, hsm_op_final and hsm_op_oneshot check
 * the room themselves: CKR_BUFFER_TOO_SMALL sets *outlen to what is needed
 * and leaves the operation active and unchanged (hsm_op_output_len is only
 * an upper bound, for a NULL-buffer query). GCM, CCM and
 * ChaCha20-Poly1305 decryption output nothing before the final step (the
 * tag is checked first; a bad tag is CKR_ENCRYPTED_DATA_INVALID); CCM
 * encryption too (it needs the whole message, CK_CCM_PARAMS.ulDataLen).
 */
CK_RV hsm_op_init_iv(hsm_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                     const hsm_mech_t *mech, hsm_oid_t key, uint8_t *iv,
                     size_t ivroom, size_t *ivlen);

/*
 * C_WrapKey: key (a secret or private key; private keys as a DER PKCS#8
 * PrivateKeyInfo) wrapped with wrapping under mech. *out malloc'd (the
 * front end does the two-call convention: call, keep or copy, free).
 * Errors: CKR_WRAPPING_KEY_HANDLE_INVALID, _TYPE_INCONSISTENT, _SIZE_RANGE;
 * CKR_KEY_FUNCTION_NOT_PERMITTED (wrapping key without CKA_WRAP, or with
 * CKA_DECRYPT too under key separation, or a key the caller does not own:
 * only the owner may export a key);
 * CKR_KEY_HANDLE_INVALID; CKR_KEY_UNEXTRACTABLE (CKA_EXTRACTABLE FALSE);
 * CKR_KEY_NOT_WRAPPABLE (a public key or data object, CKA_WRAP_WITH_TRUSTED
 * without a trusted wrapping key, a key that does not match the wrapping
 * key's CKA_WRAP_TEMPLATE); CKR_KEY_SIZE_RANGE (a key the mechanism cannot
 * carry: RFC 3394 needs whole 8-byte blocks, RSA a key shorter than the
 * modulus allows); CKR_MECHANISM_INVALID (not a wrap mechanism, or off) /
 * _PARAM_INVALID (CKM_AES_GCM with a NULL or zero IV: the token would
 * have to make the IV and could not return it; use CKM_CLOUDHSM_AES_GCM).
 */
CK_RV hsm_wrap_key(hsm_conn_t *conn, hsm_sid_t sid, const hsm_mech_t *mech,
                   hsm_oid_t wrapping, hsm_oid_t key, uint8_t **out,
                   size_t *outlen);

/*
 * C_UnwrapKey: a new key from in, unwrapped with unwrapping under mech,
 * with the attributes of tmpl (CKA_CLASS and CKA_KEY_TYPE required; the
 * unwrapping key's CKA_UNWRAP_TEMPLATE is merged in, a contradiction is
 * CKR_TEMPLATE_INCONSISTENT). A private key comes from a PKCS#8
 * PrivateKeyInfo (its key type must match the template's); its public parts
 * are set. The new key belongs to the caller, has CKA_LOCAL,
 * CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE FALSE. Errors:
 * CKR_UNWRAPPING_KEY_HANDLE_INVALID, _TYPE_INCONSISTENT, _SIZE_RANGE,
 * CKR_KEY_FUNCTION_NOT_PERMITTED (no CKA_UNWRAP, or CKA_ENCRYPT too under
 * key separation), CKR_WRAPPED_KEY_INVALID,
 * CKR_WRAPPED_KEY_LEN_RANGE, the template errors of object creation;
 * CKR_TEMPLATE_INCONSISTENT for a cipher (not a key-wrap mechanism) into a
 * key that is not sensitive with a key whose CKA_DECRYPT is FALSE. The
 * attributes CKA_UNWRAP_TEMPLATE set stay fixed (hsm_object_set and
 * hsm_object_copy: CKR_ATTRIBUTE_READ_ONLY).
 */
CK_RV hsm_unwrap_key(hsm_conn_t *conn, hsm_sid_t sid, const hsm_mech_t *mech,
                     hsm_oid_t unwrapping, const uint8_t *in, size_t inlen,
                     const CK_ATTRIBUTE *tmpl, CK_ULONG count, hsm_oid_t *oid);

/*
 * Derivation parameters that name an object (CKM_CONCATENATE_BASE_AND_KEY's
 * CK_OBJECT_HANDLE, CK_HKDF_PARAMS.hSaltKey with CKF_HKDF_SALT_KEY) must
 * carry the object's hsm_oid_t in place of the handle (hsm_mech_key_ref:
 * the front end translates it after decoding). CKM_HKDF_DATA
 * makes a CKO_DATA object (template: CKA_VALUE_LEN gives the length, the
 * other attributes those of a data object). CKM_PKCS5_PBKD2 is a key
 * generation mechanism (hsm_generate_key); the template's CKA_KEY_TYPE
 * (default CKK_GENERIC_SECRET) and CKA_VALUE_LEN (required unless the type
 * fixes it, as DES3 and ChaCha20 do) say what to make. Other derivations:
 * CKA_KEY_TYPE default CKK_GENERIC_SECRET, CKA_VALUE_LEN required for the
 * KDFs (HKDF, SP 800-108) unless the type fixes it, else the natural length
 * (concatenation, the encrypted data). Every derivation: the new key is
 * sensitive, unextractable, CKA_WRAP_WITH_TRUSTED if any key read is (a
 * template asking otherwise, or CKM_HKDF_DATA from such a key:
 * CKR_TEMPLATE_INCONSISTENT); a second or salt key without CKA_DERIVE is
 * CKR_KEY_FUNCTION_NOT_PERMITTED; the attributes the base key's
 * CKA_DERIVE_TEMPLATE set stay fixed (as for hsm_unwrap_key).
 */

/*
 * CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE and CKA_DERIVE_TEMPLATE are read
 * (hsm_object_get) as a serialized attribute list: u32 count, then per
 * attribute u64 type, u32 length, value (big-endian integers; types
 * strictly ascending); templates given to the calls above carry them in
 * the same form. This turns
 * such a value into attributes (*attrs malloc'd, free with hsm_attrs_free
 * and free): for the front end's C_GetAttributeValue of an array
 * attribute. CKR_GENERAL_ERROR for a malformed blob.
 */
CK_RV hsm_template_parse(const uint8_t *blob, size_t len, hsm_attr_t **attrs,
                         size_t *n);

/* ---------------------------------------- message-based AEAD (3.0) */

/*
 * C_MessageEncryptInit / C_MessageDecryptInit and the messages after them,
 * for CKM_AES_GCM, CKM_AES_CCM and CKM_CHACHA20_POLY1305. One
 * message-based operation of each direction per session, apart from the
 * classic operations. The init parameter may be empty (or any message
 * parameter, ignored). Each message takes its parameter decoded
 * (hsm_mech_decode_msg with the operation's mechanism type): layout
 * HSM_MP_GCM_MESSAGE, HSM_MP_CCM_MESSAGE or
 * HSM_MP_CHACHA20_POLY1305_MESSAGE, else CKR_MECHANISM_PARAM_INVALID.
 * Encryption with ivGenerator / nonceGenerator CKG_GENERATE, _COUNTER, _RANDOM
 * or _COUNTER_XOR makes the IV (keeping the first ulIvFixedBits /
 * ulNonceFixedBits bits of the given pIv / pNonce; COUNTER_XOR XORs a
 * counter into the given IV); CKG_NO_GENERATE uses the caller's IV. What
 * the token produces comes back in res: the IV used (res->iv, res->iv_len:
 * the front end copies it into pIv / pNonce) and, on encryption, the tag
 * (res->tag, res->tag_len: copied into pTag / pMAC; for ChaCha20 pTag is
 * 16 bytes; hsm_mech_write_msg). On decryption the tag is read from the
 * parameter (its decoded tag bytes); a tag
 * that does not match is CKR_AEAD_DECRYPT_FAILED (the 3.0 code of the
 * message functions) and no plaintext is released.
 */
typedef enum {
    HSM_MSG_ENCRYPT = 0,
    HSM_MSG_DECRYPT = 1,
} hsm_msgkind_t;

#define HSM_MSG_IV_MAX 256
#define HSM_MSG_TAG_MAX 16

typedef struct {
    uint8_t iv[HSM_MSG_IV_MAX];
    size_t iv_len;
    uint8_t tag[HSM_MSG_TAG_MAX];
    size_t tag_len; /* 0: nothing to write back */
} hsm_msg_result_t;

CK_RV hsm_msg_init(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                   const hsm_mech_t *mech, hsm_oid_t key);
/*
 * C_EncryptMessage / C_DecryptMessage: one whole message. *outlen in: room,
 * out: written (CKR_BUFFER_TOO_SMALL: *outlen the need, nothing done).
 * Encryption output is as long as the input, decryption output too.
 */
CK_RV hsm_msg_oneshot(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                      const hsm_mech_t *param, const uint8_t *aad,
                      size_t aadlen, const uint8_t *in, size_t inlen,
                      uint8_t *out, size_t *outlen, hsm_msg_result_t *res);
/* C_EncryptMessageBegin / C_DecryptMessageBegin: the IV (made on
 * encryption, in res) and the AAD. */
CK_RV hsm_msg_begin(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                    const hsm_mech_t *param, const uint8_t *aad, size_t aadlen,
                    hsm_msg_result_t *res);
/*
 * C_EncryptMessageNext / C_DecryptMessageNext: a part; last
 * (CKF_END_OF_MESSAGE) ends the message (the tag in res on encryption,
 * checked from param on decryption). Decryption (and CCM) output nothing
 * until the last part, which outputs everything held: *outlen bound from
 * hsm_msg_output_len.
 */
CK_RV hsm_msg_next(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                   const hsm_mech_t *param, const uint8_t *in, size_t inlen,
                   bool last, uint8_t *out, size_t *outlen,
                   hsm_msg_result_t *res);
/* Output bound of the next hsm_msg_next (or of a one-shot when no message
 * is begun). */
CK_RV hsm_msg_output_len(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                         bool last, size_t inlen, size_t *outlen);
/* C_MessageEncryptFinal / C_MessageDecryptFinal: ends the operation
 * (CKR_OPERATION_NOT_INITIALIZED when none). */
CK_RV hsm_msg_final(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind);
/* Ends it without a result (C_SessionCancel, errors). */
void hsm_msg_abort(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind);

/* ---------------------------------------------------- misc */

/* C_GenerateRandom in session sid: any logged-in user's session
 * (CKR_SESSION_HANDLE_INVALID, the policy's verdict). */
CK_RV hsm_random(hsm_conn_t *conn, hsm_sid_t sid, uint8_t *buf, size_t len);

/* ---------------------------------------------------- management */

/*
 * What the management shell (nimbus-mgmt) needs beyond the calls above.
 * Key handles there are the stable object ids; these calls see token
 * objects only.
 */

/*
 * changePswd: sets user name's password to pw without asking for the old
 * one (the connection's login proved who is asking). A CO may set anyone's
 * (HSM_OP_CHANGE_ANY_PW), which also unlocks a locked user; any other
 * logged-in user only its own (HSM_OP_CHANGE_OWN_PW); a PRECO setting its
 * own is activation (it becomes the primary CO). CKR_ARGUMENTS_BAD: no such
 * user; CKR_PIN_LEN_RANGE: pw not 7..32 bytes.
 */
CK_RV hsm_user_set_password(hsm_conn_t *conn, const char *name,
                            const uint8_t *pw, size_t pwlen);

/* One key of a findAllKeys answer. */
typedef struct {
    hsm_oid_t oid;
    bool owned; /* owned by the user asked about, else shared with it */
} hsm_key_ref_t;

#define HSM_DIGEST_LEN 32

/*
 * findAllKeys (the "get sync status" row: CO, CU, AU): the token objects
 * user uid owns or that are shared with it, ascending, and the SHA-256
 * digest of that key set (ids, owner, shared users; never a value) that
 * compares two HSMs. A CU may only ask about itself (else
 * CKR_ACTION_PROHIBITED). *keys malloc'd (NULL when none).
 */
CK_RV hsm_key_list(hsm_conn_t *conn, hsm_uid_t uid, hsm_key_ref_t **keys,
                   size_t *n, uint8_t digest[HSM_DIGEST_LEN]);

/*
 * getKeyInfo (same row): the owner of token object oid and the users it is
 * shared with (*shared malloc'd, NULL when none). A CU must be able to see
 * the object (else CKR_OBJECT_HANDLE_INVALID, as for a missing one).
 */
CK_RV hsm_key_info(hsm_conn_t *conn, hsm_oid_t oid, hsm_uid_t *owner,
                   hsm_uid_t **shared, size_t *nshared);

/*
 * Masked objects (the permission table's row: CO, CU, AU): token object
 * oid as a file (*out malloc'd) that only a node of a cluster with the
 * same cluster key opens: its attribute list masked under the cluster
 * key, its owner, shares, id and version, all bound (masked.c). A CU
 * extracts the keys it owns (CKR_ACTION_PROHIBITED for one it only sees,
 * CKR_OBJECT_HANDLE_INVALID for one it does not). Insert puts the object
 * back with its id and version, through the log: an object with that id
 * and version there already: CKR_OK, nothing changed; another version
 * there (an old file replayed), an owner or share that is not a CU here,
 * another cluster's file, a malformed one, or an id this cluster never
 * handed out: CKR_DATA_INVALID; a file that does not open (a changed
 * byte, another object's id or version, another cluster key):
 * CKR_ENCRYPTED_DATA_INVALID; a CU inserting another user's key:
 * CKR_ACTION_PROHIBITED. Outside a cluster: CKR_FUNCTION_NOT_SUPPORTED.
 */
CK_RV hsm_masked_extract(hsm_conn_t *conn, hsm_oid_t oid, uint8_t **out,
                         size_t *outlen);
CK_RV hsm_masked_insert(hsm_conn_t *conn, const uint8_t *buf, size_t len,
                        hsm_oid_t *oid);

/*
 * Cluster backups (the permission table's backup and restore rows: a CO).
 * hsm_backup: this node's replicated state as it has applied it (every
 * write this connection made through this node is in), as a file (*out
 * malloc'd): a small plain header (info) and the store's snapshot, whose
 * objects are masked, sealed again whole under the cluster key, so that
 * no user name, verifier, label or key is readable without it. A state
 * too large for one log entry (HSM_BACKUP_SNAPSHOT_MAX): CKR_DATA_LEN_RANGE.
 * hsm_restore: the file's users, token objects, shares and quorum M
 * values replace this cluster's, through one log entry, only while this
 * cluster holds no crypto user, no token object and no quorum token
 * (else CKR_ACTION_PROHIBITED, nothing changed); info says what the file
 * held. Afterwards no login of before stands on any node (this one's
 * ends at once): the users are the file's. A file of another key domain,
 * or malformed: CKR_DATA_INVALID; one over HSM_BACKUP_FILE_MAX:
 * CKR_DATA_LEN_RANGE; one that does not open (a changed byte, another
 * key): CKR_ENCRYPTED_DATA_INVALID. Outside a cluster (no cluster key):
 * CKR_FUNCTION_NOT_SUPPORTED.
 */
#define HSM_BACKUP_SNAPSHOT_MAX (16u * 1024u * 1024u - 64u * 1024u)
#define HSM_BACKUP_FILE_MAX (16u * 1024u * 1024u + 64u * 1024u)
typedef struct {
    char domain[CONFIG_CLUSTER_ID_MAX + 1]; /* the key's domain */
    char source[CONFIG_CLUSTER_ID_MAX + 1]; /* the cluster backed up */
    uint64_t applied;                       /* its log index */
    uint64_t time;                          /* seconds since the epoch */
    uint64_t users;
    uint64_t objects;               /* token objects */
    uint8_t digest[HSM_DIGEST_LEN]; /* the sync digest at that index */
} hsm_backup_info_t;

CK_RV hsm_backup(hsm_conn_t *conn, uint8_t **out, size_t *outlen,
                 hsm_backup_info_t *info);
CK_RV hsm_restore(hsm_conn_t *conn, const uint8_t *buf, size_t len,
                  hsm_backup_info_t *info);

/*
 * The audit log: one record per security event, hash-chained: record n
 * holds SHA-256(hash of record n-1 || the canonical bytes of record n),
 * record 1 chains from 32 zero bytes. Reading and verifying it is for a CO
 * only (the "add, remove users" row: officers' work).
 */
#define HSM_AUDIT_TEXT_MAX 32
#define HSM_AUDIT_READ_MAX 4096

typedef struct {
    uint64_t seq;                        /* 1, 2, ... */
    uint64_t time;                       /* seconds since the epoch, UTC */
    char hsm_id[HSM_AUDIT_TEXT_MAX + 1]; /* the token serial */
    hsm_uid_t user; /* who acted; 0: nobody known (a failed login) */
    char op[HSM_AUDIT_TEXT_MAX + 1];
    /* the object for key events, the target user for user events */
    uint64_t oid;
    CK_RV result;
    /* the peer of the connection that acted (hsm_conn_set_peer); "" when
     * none was named, and in records written before peers were kept */
    char peer[HSM_PEER_MAX + 1];
    uint8_t hash[HSM_DIGEST_LEN];
} hsm_audit_record_t;

/* Up to max (<= HSM_AUDIT_READ_MAX) records after sequence number after,
 * ascending; *recs malloc'd (NULL when none). */
CK_RV hsm_audit_read(hsm_conn_t *conn, uint64_t after, size_t max,
                     hsm_audit_record_t **recs, size_t *n);

typedef enum {
    HSM_AUDIT_INTACT = 0,
    HSM_AUDIT_HASH_MISMATCH, /* edited, reordered or forged */
    HSM_AUDIT_MISSING,       /* a sequence number is absent (deleted) */
    HSM_AUDIT_MALFORMED,     /* a column out of its type or limits */
    HSM_AUDIT_TRUNCATED,     /* records after the last one are gone */
    HSM_AUDIT_UNEXPECTED,    /* records past the recorded end (inserted) */
} hsm_audit_status_t;

typedef struct {
    hsm_audit_status_t status;
    uint64_t records;   /* records read */
    uint64_t first_bad; /* sequence number of the first broken record */
} hsm_audit_check_t;

/* Recomputes the whole chain in one read transaction. CKR_OK whenever the
 * check ran; the verdict is in check. */
CK_RV hsm_audit_verify(hsm_conn_t *conn, hsm_audit_check_t *check);

/* Records an event that happened outside the core on conn's behalf (a
 * cluster membership change nimbusd made for its CO): its user and peer,
 * event (1..HSM_AUDIT_TEXT_MAX chars), oid (here: the node id), result. */
CK_RV hsm_audit_event(hsm_conn_t *conn, const char *event, uint64_t oid,
                      CK_RV result);

/*
 * CKA_TRUSTED of token object oid (a public or secret key, a certificate),
 * CO only (the table's "mark keys trusted"): PKCS#11 lets only the SO set
 * it, and the CO sees no key value doing so. CKR_ATTRIBUTE_TYPE_INVALID for
 * an object without the attribute.
 */
CK_RV hsm_object_set_trusted(hsm_conn_t *conn, hsm_oid_t oid, bool trusted);

/* ------------------------------------------- quorum (M of N) approval */

/*
 * As the cloud HSM's management utility documents it (ARCHITECTURE §12).
 * Approvers are COs with a registered RSA-2048 key; a guarded operation
 * (service 3: hsm_user_create, hsm_user_delete, hsm_user_set_password and
 * hsm_init_pin on another user, and hsm_init_token's re-initialization,
 * which no token can serve; service 4: hsm_quorum_set_m) needs, when
 * that service's M is above 1, an approved token of the requester's current
 * login for that service, which the operation consumes; without one it
 * fails with CKR_FUNCTION_REJECTED and changes nothing (the shell prints
 * RET_MXN_AUTH_FAILED). Tokens and approvals live in the store (every
 * process on the token sees them), expire (config quorum_token_lifetime,
 * default 600 s), die with the requester's login, at most
 * HSM_QUORUM_TOKENS_MAX per HSM.
 */
#define HSM_QUORUM_SVC_USER_MGMT 3
#define HSM_QUORUM_SVC_MISC_CO 4
#define HSM_QUORUM_M_MAX 8
#define HSM_QUORUM_TOKENS_MAX 1024
#define HSM_QUORUM_REG_TOKEN_MAX 245 /* registration token bytes */
#define HSM_QUORUM_PUBKEY_MAX 4096   /* PEM or DER SubjectPublicKeyInfo */
#define HSM_QUORUM_SIG_MAX 512       /* an RSA-2048 signature is 256 */
#define HSM_QUORUM_TOKEN_BYTES_MAX 1024 /* a token as getToken writes it */

/*
 * registerQuorumPubKey: the logged-in CO name registers its RSA-2048 public
 * key (PEM or DER SubjectPublicKeyInfo), proving possession with sig, a
 * SHA256-RSA-PKCS signature over reg_token (1..245 bytes). Replaces an
 * earlier registration. CKR_SIGNATURE_INVALID: sig does not verify;
 * CKR_KEY_SIZE_RANGE / CKR_KEY_TYPE_INCONSISTENT: not RSA-2048;
 * CKR_ARGUMENTS_BAD: not a public key, a public exponent below 65537 or
 * even (e = 1 signs for anyone), or a length out of its range;
 * CKR_ACTION_PROHIBITED: name is not the logged-in CO, or another user
 * registered that key (one key, one approver).
 */
CK_RV hsm_quorum_register_key(hsm_conn_t *conn, const char *name,
                              const uint8_t *reg_token, size_t token_len,
                              const uint8_t *sig, size_t sig_len,
                              const uint8_t *pubkey, size_t pubkey_len);

/* setMValue / getMValue. m 1 (off) .. HSM_QUORUM_M_MAX, at most the number
 * of COs with a registered key (else CKR_ARGUMENTS_BAD). CO only.
 * hsm_quorum_set_m is guarded by service 4. M of service 3 above 1 needs M
 * of service 4 above 1 (one CO could lower it alone otherwise): raising
 * service 3 while service 4 is 1, or setting service 4 to 1 while service 3
 * is above 1, is CKR_FUNCTION_REJECTED. So: setMValue 4 2 first, then with
 * an approved service-4 token, setMValue 3 2. A CO with a registered key
 * whose deletion would leave fewer keys than an M stays
 * (CKR_ACTION_PROHIBITED). */
CK_RV hsm_quorum_set_m(hsm_conn_t *conn, unsigned service, unsigned m);
CK_RV hsm_quorum_get_m(hsm_conn_t *conn, unsigned service, unsigned *m);

/*
 * getToken: issues a token for service to the logged-in CO (name must be
 * its name) and returns its bytes (what the shell writes to the file and
 * approvers hash with SHA-256 and sign). Two-call convention on *len: with
 * token NULL (or *len too small: CKR_BUFFER_TOO_SMALL) *len is the room
 * needed and nothing is issued. CKR_FUNCTION_REJECTED when the HSM already
 * holds HSM_QUORUM_TOKENS_MAX live tokens.
 */
CK_RV hsm_quorum_get_token(hsm_conn_t *conn, unsigned service,
                           const char *name, uint8_t *token, size_t *len);

typedef struct {
    hsm_user_type_t type;             /* approver type (CO) */
    char name[HSM_USER_NAME_MAX + 1]; /* approver name */
    const uint8_t *sig;               /* SHA256-RSA-PKCS over the token */
    size_t sig_len;
} hsm_quorum_approval_t;

/*
 * approveToken: records the approvals of token (bytes as getToken gave)
 * that verify under their approver's registered key; results[i] tells each
 * (CKR_OK accepted, CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE no or an
 * oversized signature, CKR_USER_TYPE_INVALID approver type not CO,
 * CKR_ARGUMENTS_BAD no such CO or no registered key, CKR_FUNCTION_REJECTED
 * already approved by that user). CKR_OK when the call ran, even if none
 * was accepted; an unknown, expired or dead token: CKR_DATA_INVALID; n 0 or
 * above HSM_QUORUM_M_MAX: CKR_ARGUMENTS_BAD. An approval counts while its
 * approver is a CO with a registered key; the requester may approve.
 */
CK_RV hsm_quorum_approve(hsm_conn_t *conn, const uint8_t *token,
                         size_t token_len, const hsm_quorum_approval_t *a,
                         size_t n, CK_RV *results);

typedef struct {
    uint32_t id;
    unsigned service;
    char user[HSM_USER_NAME_MAX + 1]; /* the requester */
    uint64_t seconds_left;
    unsigned needed; /* the service's M when issued */
    unsigned given;
    size_t napprovers;
    char approvers[HSM_QUORUM_M_MAX][HSM_USER_NAME_MAX + 1];
} hsm_quorum_token_info_t;

/* listTokens (CO): live tokens, *out malloc'd (NULL when none). delToken:
 * the requester or any CO removes one; CKR_ARGUMENTS_BAD: no such token. */
CK_RV hsm_quorum_list_tokens(hsm_conn_t *conn, hsm_quorum_token_info_t **out,
                             size_t *n);
CK_RV hsm_quorum_del_token(hsm_conn_t *conn, uint32_t id);

/* ------------------------------------------- two-factor login (COs) */

/*
 * As the cloud HSM documents it (ARCHITECTURE section 12): a CO with 2FA
 * on (hsm_user_info_t.twofa) logs in with its password and a
 * SHA256-RSA-PKCS signature, by its registered RSA-2048 key (the quorum
 * key: one key serves both), over a fresh challenge digest of
 * HSM_DIGEST_LEN bytes that the HSM made for this connection. The signer
 * signs the digest bytes as its message (`openssl dgst -sha256 -sign
 * key.pem digest.bin`). The signature is checked before the password
 * counts: a missing or wrong one is a failed login (counted toward
 * lockout) and the password is not tried.
 *
 * hsm_login_challenge: a fresh random challenge for user name of kind
 * (name NULL: hsm_login's default) on this connection, replacing any
 * earlier one. It is good once (the next hsm_login_2fa,
 * hsm_user_create_2fa or hsm_user_set_password_2fa of the connection
 * consumes it, whatever the outcome), for HSM_TFA_CHALLENGE_LIFETIME
 * seconds, on this connection only and for that kind and name only
 * (names compare case-insensitively). Anyone may ask, logged in or not,
 * for any name: a name that exists nowhere gets a challenge too, so the
 * call tells nothing about users. CKR_ARGUMENTS_BAD: kind out of range.
 */
#define HSM_TFA_CHALLENGE_LIFETIME 300 /* seconds */
#define HSM_TFA_SIG_MAX 512            /* an RSA-2048 signature is 256 */
CK_RV hsm_login_challenge(hsm_conn_t *conn, hsm_login_kind_t kind,
                          const char *name, uint8_t digest[HSM_DIGEST_LEN]);

/*
 * hsm_login with the second factor. A user with 2FA: a failure is charged
 * first, as for every login; then the connection's challenge must be
 * there, unexpired and for this kind and name, and sig must verify over
 * it under the user's key; else CKR_PIN_INCORRECT (counted; the password
 * is not tried). Only then is the password checked. A user without 2FA:
 * exactly hsm_login (sig is not looked at). The challenge is consumed in
 * every case. hsm_login (no signature) of a user with 2FA is
 * CKR_PIN_INCORRECT, counted, the password not tried; so is every other
 * path that would authenticate such a user by password alone
 * (hsm_set_password when not logged in, hsm_init_token's
 * re-initialization).
 */
CK_RV hsm_login_2fa(hsm_conn_t *conn, hsm_login_kind_t kind, const char *name,
                    const uint8_t *pw, size_t pwlen, const uint8_t *sig,
                    size_t siglen);

/*
 * createUser CO name pw -2fa: hsm_user_create of a CO (same rules and
 * codes) that also, in the same transaction, turns 2FA on with pubkey
 * (PEM or DER SubjectPublicKeyInfo, RSA-2048) as the user's registered
 * key (listUsers: MofnPubKey and 2FA YES). sig proves possession: a
 * SHA256-RSA-PKCS signature under pubkey over the connection's challenge
 * for (HSM_LOGIN_SO, name), which the call consumes. Nothing is created
 * when: the challenge is missing, expired or for another name, or sig
 * does not verify (CKR_SIGNATURE_INVALID); pubkey is not a public key
 * (CKR_ARGUMENTS_BAD), not RSA (CKR_KEY_TYPE_INCONSISTENT) or not 2048
 * bits (CKR_KEY_SIZE_RANGE); it is another user's registered key
 * (CKR_ACTION_PROHIBITED: one key, one officer).
 */
CK_RV hsm_user_create_2fa(hsm_conn_t *conn, const char *name,
                          const uint8_t *pw, size_t pwlen,
                          const uint8_t *pubkey, size_t pubkey_len,
                          const uint8_t *sig, size_t siglen, hsm_uid_t *uid);

/*
 * changePswd CO name pw -2fa <dir>: hsm_user_set_password (same rules and
 * codes) that also, in the same transaction, turns 2FA on with pubkey:
 * enabling it, or rotating the key (the new key replaces the registered
 * one, the quorum key too). Possession is proven as for
 * hsm_user_create_2fa, with its codes; CKR_USER_TYPE_INVALID when name is
 * not a CO (2FA is for COs only). Every password change without a key
 * (hsm_user_set_password, hsm_set_password, hsm_init_pin) turns 2FA off
 * for a user that had it and removes its registered key, as the cloud
 * HSM documents; a user without 2FA keeps its quorum key. Such a change
 * is refused (CKR_ACTION_PROHIBITED, nothing changes) while the key is
 * one that an M needs (fewer registered keys would remain than a
 * service's M): rotate the key with a password change that brings one.
 */
CK_RV hsm_user_set_password_2fa(hsm_conn_t *conn, const char *name,
                                const uint8_t *pw, size_t pwlen,
                                const uint8_t *pubkey, size_t pubkey_len,
                                const uint8_t *sig, size_t siglen);

/* ------------------------------------------------------ login tickets */

/*
 * A login ticket lets a client with several servers (one cluster) log a
 * connection in on another server without keeping the password
 * (tickets.c). Opaque to the client: AES-256-GCM under a key derived
 * (HKDF-SHA256) from the cluster masking key when the node holds one
 * (each node has a store master key of its own), else from the store
 * master key (every nimbusd on one store shares it). It
 * binds the user (id, type, record version, password verifier), an expiry
 * (login_ticket_lifetime seconds from issue, at most
 * HSM_TICKET_LIFETIME_MAX) and the peer class it was issued to
 * (hsm_conn_set_peer_class). It carries the login as it was made: a CO
 * with 2FA proved the second factor then, and is not asked again; quorum
 * tokens of the login do not travel.
 *
 * hsm_login_ticket: a ticket for the connection's login into out.
 * CKR_USER_NOT_LOGGED_IN: no login (or one that no longer stands);
 * CKR_FUNCTION_NOT_SUPPORTED: tickets are off (lifetime 0).
 */
#define HSM_TICKET_LEN 114
#define HSM_TICKET_LIFETIME_MAX 3600
CK_RV hsm_login_ticket(hsm_conn_t *conn, uint8_t out[HSM_TICKET_LEN]);

/*
 * Logs conn in as the ticket's user, as hsm_login with the password
 * would (no KDF, no failure charged: a ticket cannot be guessed), audited
 * "login_ticket" with the result. Refused, nothing changed:
 * - CKR_PIN_INCORRECT: not a ticket of this HSM (wrong length, forged or
 *   modified, sealed under another key), issued to another peer class,
 *   or its user is gone or changed since (deleted, password set or reset,
 *   token re-initialized);
 * - CKR_PIN_EXPIRED: past its expiry (or one too far ahead: a clock
 *   moved back);
 * - CKR_PIN_LOCKED: the user is locked out;
 * - CKR_USER_ALREADY_LOGGED_IN / CKR_USER_ANOTHER_ALREADY_LOGGED_IN: as
 *   hsm_login;
 * - CKR_FUNCTION_NOT_SUPPORTED: tickets are off on this node.
 */
CK_RV hsm_login_redeem(hsm_conn_t *conn, const uint8_t *ticket, size_t len);

/*
 * The class of peer a ticket issued on conn is bound to: what the server's
 * transport proved (a unix peer's "uid=N", a TLS client certificate's
 * subject), so that a ticket taken to another account or certificate is
 * refused. NULL or "" clears it (the embedded core: one process). At most
 * HSM_PEER_MAX bytes (CKR_ARGUMENTS_BAD).
 */
CK_RV hsm_conn_set_peer_class(hsm_conn_t *conn, const char *cls);

#endif
