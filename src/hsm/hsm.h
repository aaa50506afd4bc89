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

/* ---------------------------------------------------- misc */

/* C_GenerateRandom: any logged-in or public session. */
CK_RV hsm_random(hsm_conn_t *conn, uint8_t *buf, size_t len);

#endif
