/*
 * tickets.c - login tickets (hsm.h): a client with several servers logs
 * in once with the password and carries the login to the other servers
 * with a ticket, never with the password.
 *
 * A ticket is crypto_seal (nonce || ciphertext || tag) of a fixed
 * plaintext under a key derived from the HSM's long-term key; the
 * associated data names the format, so that no other sealed value of the
 * HSM (an attribute, the key check) can pass for one. Plaintext,
 * big-endian:
 *   0  version (1)            1  user type (1)        2  user id (4)
 *   6  record version (8)    14  expiry, seconds since the epoch (8)
 *  22  random id (16)        38  SHA-256 of the password verifier, cut (16)
 *  54  SHA-256 of the peer class (32)
 * The verifier's hash tells a user re-created under the same id and
 * version from the one the ticket was issued for (a new salt, a new
 * verifier); the record version ends it at every password change. Nothing
 * is kept on the server: a ticket lives until its expiry or until the
 * user's record changes.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/crypto/crypto.h"
#include "hsm/hsm_cluster.h"
#include "hsm/internal.h"

#define TICKET_VERSION 1
#define TICKET_PT_LEN 86
#define TICKET_AD "nimbus login ticket v1"
#define TICKET_KEY_INFO "nimbus login ticket key v1"
#define TICKET_CKEY_INFO "nimbus login ticket key v1 (cluster)"
#define TICKET_HASH_CUT 16
#define EV_LOGIN_TICKET "login_ticket"

_Static_assert(HSM_TICKET_LEN == TICKET_PT_LEN + CRYPTO_SEAL_OVERHEAD,
               "HSM_TICKET_LEN is the sealed plaintext");
_Static_assert(HSM_TICKET_LIFETIME_MAX == CONFIG_TICKET_LIFETIME_MAX,
               "one bound for the core and the config");

uint64_t (*hsm_ticket_clock_hook)(void);

static uint64_t ticket_now(void)
{
    return hsm_ticket_clock_hook != NULL ? hsm_ticket_clock_hook()
                                         : (uint64_t)time(NULL);
}

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = n; i > 0; i--) {
        p[i - 1] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The ticket key. Every node of one HSM derives the same: from the
 * cluster masking key on a cluster's node (each node has a store master
 * key of its own), else from the store master key, which every nimbusd
 * on one store shares. Each with its own label: a key is never derived
 * twice for one purpose from two roots. */
static CK_RV ticket_key(hsm_t *hsm, uint8_t key[CRYPTO_MASTER_KEY_LEN])
{
    const uint8_t *ck = hsm_cluster_key(hsm);
    char info[sizeof(TICKET_CKEY_INFO) + 1 + CONFIG_CLUSTER_ID_MAX];

    _Static_assert(HSM_CLUSTER_KEY_LEN == CRYPTO_MASTER_KEY_LEN,
                   "both roots are 32 bytes");
    /* in a cluster, its id too: a clone made from the same key (another
     * id) does not take this cluster's tickets */
    if (ck != NULL)
        snprintf(info, sizeof(info), "%s %s", TICKET_CKEY_INFO,
                 hsm->cfg.cluster_id);
    else
        snprintf(info, sizeof(info), "%s", TICKET_KEY_INFO);
    return crypto_hkdf_sha256(ck != NULL ? ck : hsm->mkey,
                              CRYPTO_MASTER_KEY_LEN, (const uint8_t *)info,
                              strlen(info), key, CRYPTO_MASTER_KEY_LEN);
}

static CK_RV verifier_hash(const store_user_t *u, uint8_t out[TICKET_HASH_CUT])
{
    uint8_t h[32];
    CK_RV rv;

    rv = crypto_sha256(u->verifier != NULL ? u->verifier : (const uint8_t *)"",
                       u->verifier_len, h);
    memcpy(out, h, TICKET_HASH_CUT);
    return rv;
}

static CK_RV class_hash(const hsm_conn_t *conn, uint8_t out[32])
{
    return crypto_sha256((const uint8_t *)conn->peer_class,
                         strlen(conn->peer_class), out);
}

CK_RV hsm_conn_set_peer_class(hsm_conn_t *conn, const char *cls)
{
    size_t n = cls != NULL ? strlen(cls) : 0;

    HSM_CALL_CONN(conn);
    if (n > HSM_PEER_MAX)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&conn->hsm->lock);
    memcpy(conn->peer_class, n > 0 ? cls : "", n);
    conn->peer_class[n] = '\0';
    pthread_mutex_unlock(&conn->hsm->lock);
    return CKR_OK;
}

CK_RV hsm_login_ticket(hsm_conn_t *conn, uint8_t out[HSM_TICKET_LEN])
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    uint8_t pt[TICKET_PT_LEN], key[CRYPTO_MASTER_KEY_LEN];
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    store_user_t u;
    bool found = false;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    memset(pt, 0, sizeof(pt));
    pthread_mutex_lock(&hsm->lock);
    if (hsm->cfg.login_ticket_lifetime == 0) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
        goto out;
    }
    if ((rv = hsm_login_check_locked(conn)) != CKR_OK)
        goto out;
    if (conn->type == HSM_USER_NONE) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    if ((rv = store_user_by_id(hsm->st, conn->uid, &u, &found)) != CKR_OK)
        goto out;
    if (!found || u.version != conn->uver) {
        rv = CKR_USER_NOT_LOGGED_IN; /* changed since the check above */
        goto out;
    }
    pt[0] = TICKET_VERSION;
    pt[1] = (uint8_t)u.type;
    put_be(pt + 2, u.id, 4);
    put_be(pt + 6, u.version, 8);
    put_be(pt + 14, ticket_now() + hsm->cfg.login_ticket_lifetime, 8);
    if ((rv = crypto_random(pt + 22, 16)) != CKR_OK ||
        (rv = verifier_hash(&u, pt + 38)) != CKR_OK ||
        (rv = class_hash(conn, pt + 54)) != CKR_OK ||
        (rv = ticket_key(hsm, key)) != CKR_OK ||
        (rv = crypto_seal(key, (const uint8_t *)TICKET_AD, strlen(TICKET_AD),
                          pt, sizeof(pt), &sealed, &sealed_len)) != CKR_OK)
        goto out;
    if (sealed_len != HSM_TICKET_LEN) {
        rv = CKR_GENERAL_ERROR;
        goto out;
    }
    memcpy(out, sealed, HSM_TICKET_LEN);
    log_debug("user %u: login ticket issued", u.id);
out:
    pthread_mutex_unlock(&hsm->lock);
    store_user_clear(&u);
    util_free_wipe(sealed, sealed_len);
    util_wipe(pt, sizeof(pt));
    util_wipe(key, sizeof(key));
    return rv;
}

/*
 * The ticket's user, checked against the store and conn (hsm->lock held):
 * CKR_OK with u filled, or the refusal of hsm_login_redeem (*uid names
 * the user when the ticket was good enough to name one).
 */
static CK_RV redeem_check_locked(hsm_conn_t *conn, const uint8_t *ticket,
                                 size_t len, store_user_t *u, hsm_uid_t *uid)
{
    hsm_t *hsm = conn->hsm;
    uint8_t key[CRYPTO_MASTER_KEY_LEN], h[32], vh[TICKET_HASH_CUT];
    uint8_t *pt = NULL;
    size_t ptlen = 0;
    uint64_t now = ticket_now(), expires;
    bool found = false;
    CK_RV rv;

    *uid = 0;
    if (ticket == NULL || len != HSM_TICKET_LEN)
        return CKR_PIN_INCORRECT;
    if ((rv = ticket_key(hsm, key)) != CKR_OK)
        goto out;
    /* A forged, changed or foreign ticket fails here. */
    if (crypto_unseal(key, (const uint8_t *)TICKET_AD, strlen(TICKET_AD),
                      ticket, len, &pt, &ptlen) != CKR_OK ||
        ptlen != TICKET_PT_LEN || pt[0] != TICKET_VERSION) {
        rv = CKR_PIN_INCORRECT;
        goto out;
    }
    *uid = (hsm_uid_t)get_be(pt + 2, 4);
    if ((rv = class_hash(conn, h)) != CKR_OK)
        goto out;
    if (util_ct_memcmp(h, pt + 54, sizeof(h)) != 0) {
        rv = CKR_PIN_INCORRECT;
        goto out;
    }
    expires = get_be(pt + 14, 8);
    if (now >= expires || expires - now > HSM_TICKET_LIFETIME_MAX) {
        rv = CKR_PIN_EXPIRED;
        goto out;
    }
    if ((rv = store_user_by_id(hsm->st, *uid, u, &found)) != CKR_OK)
        goto out;
    if (!found || u->type != pt[1] || u->version != get_be(pt + 6, 8)) {
        rv = CKR_PIN_INCORRECT;
        goto out;
    }
    if ((rv = verifier_hash(u, vh)) != CKR_OK)
        goto out;
    if (util_ct_memcmp(vh, pt + 38, sizeof(vh)) != 0) {
        rv = CKR_PIN_INCORRECT;
        goto out;
    }
    if (u->failures >= hsm->cfg.login_failure_limit) {
        rv = CKR_PIN_LOCKED;
        goto out;
    }
    rv = CKR_OK;
out:
    if (pt != NULL)
        crypto_secret_free_any(pt, ptlen);
    util_wipe(key, sizeof(key));
    return rv;
}

static bool kind_of_type(int type, hsm_user_type_t have)
{
    /* the PRECO becomes the CO: both answer a CKU_SO login */
    if (type == HSM_USER_PRECO || type == HSM_USER_CO)
        return have == HSM_USER_PRECO || have == HSM_USER_CO;
    return (int)have == type;
}

CK_RV hsm_login_redeem(hsm_conn_t *conn, const uint8_t *ticket, size_t len)
{
    HSM_CALL_CONN(conn);
    hsm_t *hsm = conn->hsm;
    store_user_t u;
    hsm_uid_t uid = 0;
    CK_RV rv;

    memset(&u, 0, sizeof(u));
    pthread_mutex_lock(&hsm->lock);
    hsm_gen_bump_locked(hsm);
    if (hsm->cfg.login_ticket_lifetime == 0) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
        goto out;
    }
    if (conn->type != HSM_USER_NONE) {
        /* The ticket's user decides between the two answers, as the kind
         * of a password login does; a bad ticket is just "another". */
        rv = redeem_check_locked(conn, ticket, len, &u, &uid);
        rv = rv == CKR_OK && kind_of_type(u.type, conn->type)
                 ? CKR_USER_ALREADY_LOGGED_IN
                 : CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
        goto out;
    }
    rv = redeem_check_locked(conn, ticket, len, &u, &uid);
    if (rv == CKR_OK)
        rv = hsm_login_start_locked(conn, &u);
    if (rv == CKR_OK) {
        /* The login stands; the call ends after its record. */
        hsm_audit_last_locked(hsm, u.id, EV_LOGIN_TICKET, 0, CKR_OK);
        log_info("user %u logged in with a ticket", u.id);
    }
out:
    if (rv != CKR_OK && rv != CKR_HOST_MEMORY &&
        rv != CKR_USER_ALREADY_LOGGED_IN &&
        rv != CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
        hsm_audit_failure_locked(hsm, uid, EV_LOGIN_TICKET, 0, rv, false);
    pthread_mutex_unlock(&hsm->lock);
    store_user_clear(&u);
    return rv;
}
