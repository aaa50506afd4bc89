/* internal.h - core structures shared by core.c, users.c and object.c.
 * Nothing outside src/hsm/ includes this. */
#ifndef NIMBUS_HSM_INTERNAL_H
#define NIMBUS_HSM_INTERNAL_H

#include <limits.h>
#include <pthread.h>

#include "hsm/attrs.h"
#include "hsm/crypto/crypto.h"
#include "hsm/hsm.h"
#include "hsm/policy.h"
#include "store/store.h"
#include "hsm/hsm_cluster.h"

/* ops.c: parsed keys (EVP_PKEY or secret bytes) cached per object. Key
 * material never changes and object ids are never reused, so an entry only
 * goes when its object is destroyed, its connection closes (session
 * objects) or it is evicted (least recently used). */
#define HSM_KEYCACHE_SIZE 256

struct cops_key;
struct cops_op;
struct hsm_sops;

/* ops.c: sessions whose operation state their calls find without
 * hsm->lock (a slot per sid modulo this; a busy slot: the slow path). */
#define HSM_FAST_SLOTS 64

struct hsm_keycache_entry {
    hsm_conn_t *conn; /* session objects: their connection; token: NULL */
    hsm_uid_t uid;    /* the user whose call loaded or last used it */
    hsm_oid_t oid;
    struct cops_key *key; /* NULL: free slot */
    uint64_t used;        /* clock of the last use */
};

/* core.c: extra store connections for searches, which read the store
 * without hsm->lock (WAL readers see the last commit and never block the
 * writer); each is used by one thread at a time under its own mutex. */
#define HSM_READERS 4

struct hsm_reader {
    pthread_mutex_t mu;
    store_t *st; /* opened on first use */
};

struct hsm {
    struct config cfg;
    store_t *st;
    char dbpath[PATH_MAX];
    struct hsm_reader readers[HSM_READERS];
    uint8_t *mkey; /* CRYPTO_MASTER_KEY_LEN bytes of secret memory */
    /* Serializes every use of st and of the connections' state. */
    pthread_mutex_t lock;
    hsm_conn_t *conns; /* list, for reinit checks */
    struct hsm_keycache_entry kcache[HSM_KEYCACHE_SIZE];
    uint64_t kcache_clock;
    /* Bumped (atomically, under lock) by every event that may change a
     * verdict on a session's use of a key: login, logout, user changes,
     * an object's change or destruction, sessions closing. ops.c keeps
     * the verdicts of the session's last checks with the generation they
     * were made at, and trusts them while it has not moved. */
    uint64_t gen;
    /* users.c: password checks under way in this process, per user. Each
     * has charged a failure before its KDF (outside lock); a login whose
     * charge the limit refused while such checks are under way waits for
     * them (auth_cv, with lock) instead of answering CKR_PIN_LOCKED for
     * failures that may never be. */
    pthread_cond_t auth_cv;
    struct hsm_auth_flight {
        hsm_uid_t uid;
        unsigned n;
    } * flight;
    size_t nflight, capflight;
    /* cluster.c (section 11), nimbusd in a cluster only: the cluster
     * masking key (secret memory, NULL until installed), the journal that
     * routes hsm->st's writes through the log once attached, and the
     * engine's side of it. */
    uint8_t *ckey;
    /* The key's domain: the id of the cluster the key was made in, bound
     * into every masking (a clone made from the same key has an id of its
     * own but the same domain). Written once, before ckey is published. */
    char cdomain[CONFIG_CLUSTER_ID_MAX + 1];
    store_t *apply_st; /* the engine's thread's handle */
    struct store_journal journal;
    struct hsm_cluster_link link;
    bool attached;
};

/* The attribute engine's caller for a CU under this token's config (key
 * separation on unless key_separation = off). */
static inline const attr_caller_t *hsm_cu_caller(const hsm_t *hsm)
{
    static const attr_caller_t strict = {.is_so = false};
    static const attr_caller_t permissive = {.is_so = false,
                                             .separation_off = true};

    return hsm->cfg.key_separation ? &strict : &permissive;
}

/* An object that lives in one session (CKA_TOKEN FALSE). */
struct hsm_sobj {
    hsm_oid_t id;
    hsm_sid_t sid;
    hsm_uid_t owner;
    attr_list_t attrs;
    /* Parsed into the key cache at least once (hsm->lock): only then can
     * a kept operation or verdict refer to it. */
    bool keyed;
    struct hsm_sobj *next;
};

struct hsm_session {
    hsm_sid_t id;
    bool rw;
    bool used;
    /* ops.c: the crypto operations (active and kept), on the heap so that
     * the session's calls reach them without hsm->lock (the array of
     * sessions moves). NULL only while the session is not used. */
    struct hsm_sops *x;
    /* msg.c: the active message-based encryption [0] and decryption [1]. */
    struct hsm_msgop *msg[2];
};

struct hsm_conn {
    hsm_t *hsm;
    hsm_user_type_t type;
    hsm_uid_t uid;
    /* The user record's version when the login was made (users.c): a
     * call that finds another one in the store drops the login. */
    uint64_t uver;
    int login_fd; /* the login's presence mark (store_login_mark), or -1 */
    /* Random, fresh per login (zero without one): the quorum tokens this
     * login asked for carry it, and die with it (quorum.c). */
    uint8_t login_id[STORE_LOGIN_ID_LEN];
    /* Whether this login asked for a quorum token (hsm->lock): only then
     * has its end tokens to delete. */
    bool login_tokens;
    /* users.c: the connection's 2FA challenge (hsm_login_challenge), good
     * once, for one kind and name, until expires (hsm->lock). */
    struct hsm_tfa_challenge {
        bool set;
        hsm_login_kind_t kind;
        char name[HSM_USER_NAME_MAX + 1]; /* "": a name no user can have */
        uint8_t digest[HSM_DIGEST_LEN];
        uint64_t expires;
    } tfa;
    /* Bumped (atomic, under hsm->lock) when a login ends: an operation
     * started under an earlier login is refused, never continued by the
     * next user (ops.c, msg.c). */
    uint64_t login_seq;
    struct hsm_session *sessions;
    size_t nsessions;
    hsm_sid_t next_sid;
    struct hsm_sobj *sobjs;
    uint64_t next_soid;
    hsm_conn_t *next;
    /* ops.c: fast_sid[i] (atomic; 0: free) names the session whose
     * operations are fast[i]; written under hsm->lock. */
    hsm_sid_t fast_sid[HSM_FAST_SLOTS];
    struct hsm_sops *fast[HSM_FAST_SLOTS];
    /* The call gate (hsm.h "Threads"; ops.c): gmu guards calls, closing,
     * the sessions' busy and closing marks and the writes of the fast
     * slots; gcv is broadcast when a call leaves while a close waits.
     * Order: hsm->lock -> gmu -> a session's mu. */
    pthread_mutex_t gmu;
    pthread_cond_t gcv;
    unsigned long calls; /* calls under way */
    bool closing;        /* hsm_conn_close has begun */
    /* hsm_conn_set_peer_class (hsm->lock): what a ticket is bound to. */
    char peer_class[HSM_PEER_MAX + 1];
    /* hsm_conn_set_peer (hsm->lock): written into its audit records. */
    char peer[HSM_PEER_MAX + 1];
};

/*
 * ops.c: the call gate that enforces hsm.h's thread-safety contract. Every
 * call that takes a connection holds it from entry to return
 * (HSM_CALL_CONN), and a call that names a session holds that session too
 * (HSM_CALL_SESSION): a second call on a held session is refused with
 * CKR_OPERATION_ACTIVE, a call on a session being closed with
 * CKR_SESSION_HANDLE_INVALID, any call on a connection being closed with
 * CKR_SESSION_HANDLE_INVALID (session calls) or CKR_DEVICE_REMOVED. The
 * macros leave the gate when the function returns (cleanup attribute), so
 * no return path can forget it.
 */
struct hsm_call {
    hsm_conn_t *conn;   /* NULL: not entered */
    struct hsm_sops *x; /* the session held, or NULL */
    hsm_conn_t *prev;   /* the thread's call before this one (nested) */
};

CK_RV hsm_call_enter(struct hsm_call *c, hsm_conn_t *conn, bool session,
                     hsm_sid_t sid);
void hsm_call_leave(struct hsm_call *c);
/* hsm_session_close: enters the connection, marks session sid closing
 * (later calls on it: CKR_SESSION_HANDLE_INVALID) and waits until its
 * call under way, if any, has left. The caller then frees the session and
 * leaves with hsm_call_leave. */
CK_RV hsm_call_enter_close(struct hsm_call *c, hsm_conn_t *conn, hsm_sid_t sid);
/* The peer of the connection whose call this thread is making ("" when
 * none, or outside a call), for its audit records (hsm->lock). */
const char *hsm_call_peer_locked(void);
/* Makes conn the one hsm_call_peer_locked names on this thread (NULL:
 * none) and returns the one before: hsm_conn_close records the end of
 * a login outside any call. */
hsm_conn_t *hsm_call_peer_swap(hsm_conn_t *conn);
/* Whether a call holds one of conn's sessions (gmu held). */
bool hsm_sessions_busy_gated(hsm_conn_t *conn);
/* Tests only: run by a session call once it holds its session. */
extern void (*hsm_call_hook)(hsm_conn_t *conn, hsm_sid_t sid);

#define HSM_CALL_CONN(conn)                                                    \
    struct hsm_call hsm_call_ __attribute__((cleanup(hsm_call_leave))) = {0};  \
    do {                                                                       \
        CK_RV call_rv_ = hsm_call_enter(&hsm_call_, (conn), false, 0);         \
        if (call_rv_ != CKR_OK)                                                \
            return call_rv_;                                                   \
    } while (0)
#define HSM_CALL_SESSION(conn, sid)                                            \
    struct hsm_call hsm_call_ __attribute__((cleanup(hsm_call_leave))) = {0};  \
    do {                                                                       \
        CK_RV call_rv_ = hsm_call_enter(&hsm_call_, (conn), true, (sid));      \
        if (call_rv_ != CKR_OK)                                                \
            return call_rv_;                                                   \
    } while (0)
/* For the calls that return nothing (aborts): a refused one does nothing. */
#define HSM_CALL_SESSION_VOID(conn, sid)                                       \
    struct hsm_call hsm_call_ __attribute__((cleanup(hsm_call_leave))) = {0};  \
    do {                                                                       \
        if (hsm_call_enter(&hsm_call_, (conn), true, (sid)) != CKR_OK)         \
            return;                                                            \
    } while (0)

/* A token or session object loaded for a call. */
struct hsm_obj {
    hsm_oid_t id;
    hsm_uid_t owner;
    bool token;
    attr_list_t own;       /* token objects: the clear attributes */
    struct hsm_sobj *sobj; /* session objects: the live entry */
};

/* core.c */
struct hsm_session *hsm_session_find_locked(hsm_conn_t *conn, hsm_sid_t sid);
CK_RV hsm_meta_get_str_locked(hsm_t *hsm, const char *key, char *buf,
                              size_t buflen);
/* A reader connection, its mutex held (hsm_reader_put gives it back), or
 * NULL when none could be opened: the caller then reads through hsm->st
 * under hsm->lock. */
struct hsm_reader *hsm_reader_get(hsm_t *hsm);
void hsm_reader_put(struct hsm_reader *r);
/* object.c */
void hsm_sobjs_destroy_locked(hsm_conn_t *conn, hsm_sid_t sid,
                              bool private_only);
/* The session sid of conn, and the policy's verdict on op for its user. */
CK_RV hsm_begin_locked(hsm_conn_t *conn, hsm_sid_t sid, hsm_op_t op,
                       struct hsm_session **s);
/* Loads object oid if the connection's user may have this access to it
 * (CKR_OBJECT_HANDLE_INVALID: may not see it; CKR_ACTION_PROHIBITED). */
CK_RV hsm_obj_get_locked(hsm_conn_t *conn, hsm_oid_t oid, hsm_access_t access,
                         struct hsm_obj *o);
/* The same for an object named as a key (a mechanism's key, a wrapped or
 * derived-from key): CKR_KEY_HANDLE_INVALID and
 * CKR_KEY_FUNCTION_NOT_PERMITTED instead of the object codes. */
CK_RV hsm_key_get_locked(hsm_conn_t *conn, hsm_oid_t oid, hsm_access_t access,
                         struct hsm_obj *o);
attr_list_t *hsm_obj_attrs(struct hsm_obj *o);
void hsm_obj_clear(struct hsm_obj *o);
/* Stores a new object made from l, owned by the logged-in user: a token
 * object when CKA_TOKEN is TRUE (CKR_SESSION_READ_ONLY in an RO session),
 * else a session object of s. l is emptied on success. event names the
 * audit record ("create", "copy", "generate", "derive", "unwrap"). */
CK_RV hsm_obj_add_locked(hsm_conn_t *conn, struct hsm_session *s,
                         attr_list_t *l, const char *event, hsm_oid_t *oid);

/* audit.c: one record per security event (never a secret). */
void hsm_audit_locked(hsm_t *hsm, hsm_uid_t uid, const char *event,
                      hsm_oid_t oid, CK_RV result);
/* hsm_audit_locked for the last thing a call does under hsm->lock: in a
 * cluster the lock goes while the record waits for its majority, so the
 * caller reads nothing the lock protects after it
 * (hsm_waits_unlocked_begin). */
void hsm_audit_last_locked(hsm_t *hsm, hsm_uid_t uid, const char *event,
                           hsm_oid_t oid, CK_RV result);
/* The same inside the caller's open write transaction, so that the change
 * and its record commit or vanish together: an error fails the change. */
CK_RV hsm_audit_tx_locked(hsm_t *hsm, hsm_uid_t uid, const char *event,
                          hsm_oid_t oid, CK_RV result);
/* The same with note after the peer in the record's peer column (what
 * the event names beyond its object id; truncated to the column). */
CK_RV hsm_audit_note_tx_locked(hsm_t *hsm, hsm_uid_t uid, const char *event,
                               hsm_oid_t oid, CK_RV result, const char *note);
/* users.c */
CK_RV hsm_store_init_locked(hsm_t *hsm);
CK_RV hsm_cluster_seed_locked(hsm_t *hsm);
/*
 * Whether the connection's login still stands: its user record exists
 * with the version the login read (not deleted, password not reset, token
 * not re-initialized, by any process). If not, the login is dropped (the
 * sessions go back to public) and the answer is CKR_USER_NOT_LOGGED_IN.
 * CKR_OK with no login. One indexed store read.
 */
CK_RV hsm_login_check_locked(hsm_conn_t *conn);
/* hsm_login_check_locked, then the policy's verdict on op. */
CK_RV hsm_role_locked(hsm_conn_t *conn, hsm_op_t op);
/* The permission table's settings from the configuration (fixed once the
 * core is open). */
hsm_policy_conf_t hsm_policy_conf(const hsm_t *hsm);
/*
 * Ends the login of conn. full (logout, whose caller has waited for the
 * calls under way): every operation is freed. Otherwise (a login found
 * stale in the middle of some call, while other threads may be using
 * their sessions' operations): only what no call can be using goes now
 * (kept contexts, verdicts, cached keys); the operations stay attached,
 * refused from now on, and are freed by their session's next call, abort
 * or close.
 */
void hsm_login_end_locked(hsm_conn_t *conn, bool full);

/*
 * quorum.c. The registered quorum key of user uid (DER SubjectPublicKeyInfo
 * of an RSA-2048 key, as crypto_quorum_key_parse made it; *der malloc'd,
 * NULL when none; der and len may both be NULL) and its 2FA flag; *found
 * false when no such user. The 2FA key is the quorum key (ARCHITECTURE
 * section 12): a 2FA login verifies with crypto_quorum_verify under it.
 */
CK_RV hsm_user_qkey_get_locked(hsm_t *hsm, hsm_uid_t uid, uint8_t **der,
                               size_t *len, bool *twofa, bool *found);
/*
 * Sets both (der NULL, len 0: no key; give only what crypto_quorum_key_parse
 * returned). Joins the caller's write transaction when one is open (the
 * caller then writes its audit record and bumps the generation), else
 * commits alone with a generation bump. No such user: CKR_ARGUMENTS_BAD;
 * a key another user has registered: CKR_ACTION_PROHIBITED (one key, one
 * approver; not CKR_FUNCTION_REJECTED, which means a missing quorum); so
 * is removing a CO's key when that would leave fewer COs with a key than
 * an M above 1 needs (hsm_quorum_keeps_locked). Logins stand (the
 * user's version does not move).
 */
CK_RV hsm_user_qkey_set_locked(hsm_t *hsm, hsm_uid_t uid, const uint8_t *der,
                               size_t len, bool twofa);
/*
 * The guard of an operation that a quorum may protect (service 3: creating,
 * deleting a user, setting another user's password; service 4: setMValue),
 * in two steps around the operation's own checks:
 * hsm_quorum_guard_locked, before the operation's write transaction:
 * CKR_OK when the service's M is 1 (*tok 0) or conn's login holds a live
 * token for the service with enough approvals (*tok its id); else
 * CKR_FUNCTION_REJECTED, audited (quorum_refused), and the operation must
 * change nothing. hsm_quorum_consume_tx_locked(conn, service, *tok), inside
 * that transaction before its commit: checks again under the write lock
 * and deletes the token (audited: quorum_used), so that the operation and
 * the token's use commit or vanish together; CKR_FUNCTION_REJECTED when it
 * no longer holds (roll back).
 */
CK_RV hsm_quorum_guard_locked(hsm_conn_t *conn, unsigned service,
                              uint32_t *tok);
CK_RV hsm_quorum_consume_tx_locked(hsm_conn_t *conn, unsigned service,
                                   uint32_t tok);
/* CKR_OK when one CO fewer with a registered key still leaves as many as
 * every M above 1 needs; else CKR_ACTION_PROHIBITED. */
CK_RV hsm_quorum_keeps_locked(hsm_t *hsm);
/* C_InitToken's re-initialization deletes every CU with one CO's password,
 * and no login (so no token) can come with it: while service 3 is above 1
 * it is CKR_FUNCTION_REJECTED, audited (quorum_refused) as uid's. */
CK_RV hsm_quorum_reinit_locked(hsm_t *hsm, hsm_uid_t uid);
/* A login begins: a fresh conn->login_id. */
CK_RV hsm_quorum_login_begin_locked(hsm_conn_t *conn);
/* A login ends (logout, a stale login, the connection's close): its
 * tokens go from the store, and conn->login_id is cleared. */
void hsm_quorum_login_end_locked(hsm_conn_t *conn);
/* Tests only: the clock of token lifetimes (seconds since the epoch);
 * NULL: time(). */
extern uint64_t (*hsm_quorum_clock_hook)(void);

/* users.c: the login of conn as u, whose password (or ticket) was just
 * checked (the presence mark, the version read again). */
CK_RV hsm_login_start_locked(hsm_conn_t *conn, const store_user_t *u);
/* users.c: the record of a failed event (and "lockout" when locks), in a
 * small transaction of its own. */
void hsm_audit_failure_locked(hsm_t *hsm, hsm_uid_t uid, const char *event,
                              hsm_oid_t oid, CK_RV result, bool locks);
/* tickets.c, tests only: the clock of ticket expiry (seconds since the
 * epoch); NULL: time(). */
extern uint64_t (*hsm_ticket_clock_hook)(void);

/* users.c, tests only: the clock of 2FA challenge lifetimes (seconds
 * since the epoch); NULL: time(). */
extern uint64_t (*hsm_tfa_clock_hook)(void);
/* Tests only: called outside hsm->lock just before a password KDF (a
 * login's check, a verifier made before the lock), in the calling thread. */
extern void (*hsm_kdf_hook)(void);

/* ops.c: ends every operation of a session (close, logout), the
 * message-based ones included. */
void hsm_session_ops_free_locked(struct hsm_session *s);
/* ops.c: frees the kept contexts and verdicts of a session, which no call
 * is using, and leaves its operations. */
void hsm_session_ops_forget_locked(struct hsm_session *s);
/* The login sequence of conn, for operations to record. */
uint64_t hsm_conn_login_seq(hsm_conn_t *conn);
/* ops.c: a new session's operation state (CKR_HOST_MEMORY), and its end
 * (operations freed too; the session must have no call under way). */
CK_RV hsm_session_ops_new_locked(hsm_conn_t *conn, struct hsm_session *s);
void hsm_session_ops_release_locked(hsm_conn_t *conn, struct hsm_session *s);
/* ops.c: whether session sid's user may do op (CKR_SESSION_HANDLE_INVALID,
 * the policy's verdict), from the verdict the session keeps when it still
 * holds: then without hsm->lock. Not with hsm->lock held. */
CK_RV hsm_session_allowed(hsm_conn_t *conn, hsm_sid_t sid, hsm_op_t op);
/* ops.c: CKA_ALWAYS_AUTHENTICATE. pending: CKR_OK when an operation of
 * session s waits for a context-specific login, else
 * CKR_OPERATION_NOT_INITIALIZED; grant: the waiting operations have had
 * it (until they end). */
CK_RV hsm_ops_auth_pending_locked(struct hsm_session *s, bool *pending);
void hsm_ops_auth_grant_locked(struct hsm_session *s);
/* ops.c: the event invalidates the verdicts the sessions keep. */
void hsm_gen_bump_locked(hsm_t *hsm);
/* keygen.c: tmpl with a key's serialized CKA_DERIVE_TEMPLATE or
 * CKA_UNWRAP_TEMPLATE (blob, may be NULL) appended; *merged malloc'd,
 * pointing into tmpl and kept (free both after use). */
CK_RV hsm_template_merge(const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         const uint8_t *blob, size_t bloblen, attr_list_t *kept,
                         CK_ATTRIBUTE **merged, CK_ULONG *mcount);
/* msg.c: frees a message-based operation. */
void hsm_msgop_free(struct hsm_msgop *m);
/* ops.c: the key cache. drop: the object oid is destroyed (conn: the
 * connection of a session object, ignored for token objects);
 * drop_conn: every session-object entry of conn; clear: everything. */
void hsm_keycache_drop_locked(hsm_t *hsm, hsm_conn_t *conn, hsm_oid_t oid);
void hsm_keycache_drop_conn_locked(hsm_t *hsm, hsm_conn_t *conn);
void hsm_keycache_clear_locked(hsm_t *hsm);
/* ops.c: drops the token-object entries user uid's calls loaded or used
 * last (logout: no key value of the user stays in the cache). */
void hsm_keycache_drop_user_locked(hsm_t *hsm, hsm_uid_t uid);
/* ops.c: a new reference on the parsed key of a loaded object. */
CK_RV hsm_keycache_get_locked(hsm_conn_t *conn, struct hsm_obj *o,
                              struct cops_key **key);

/* cluster.c: the associated data that binds something sealed under the
 * cluster key to its cluster, object and version: prefix (at most
 * HSM_CLUSTER_AD_PREFIX_MAX bytes), u8 length + cluster id, u64 id, u64
 * version (big-endian). */
#define HSM_CLUSTER_AD_PREFIX_MAX 32
#define HSM_CLUSTER_AD_MAX                                                     \
    (HSM_CLUSTER_AD_PREFIX_MAX + 1 + CONFIG_CLUSTER_ID_MAX + 16)
CK_RV hsm_cluster_ad(const char *prefix, const char *cluster_id, uint64_t id,
                     uint64_t version, uint8_t ad[HSM_CLUSTER_AD_MAX],
                     size_t *n);
/* cluster.c: the cluster masking key, or NULL before it is installed.
 * Read without hsm->lock: it never changes once published (the engine's
 * thread reads it while a core thread holding the lock waits for it). */
const uint8_t *hsm_cluster_key(hsm_t *hsm);
/* A token object of the replicated state by its global id, for the calls
 * that read it as the store holds it (sync status, masked extract): a
 * session object or none is CKR_OBJECT_HANDLE_INVALID, and a CU must be
 * able to see it (else what hsm_obj_get_locked answers). hsm->lock held;
 * *so filled (store_object_clear it). */
CK_RV hsm_token_object_locked(hsm_conn_t *conn, hsm_oid_t oid,
                              store_object_t *so);
/* The id bound into every masking: the key's domain (hsm_cluster.h). */
const char *hsm_cluster_domain(hsm_t *hsm);
/* object.c: an object's local blob to and from its masked form (section
 * 11) under the cluster key ckey. unmask: a blob that is not a masked
 * form of (cluster, oid, version) is CKR_ENCRYPTED_DATA_INVALID. */
/*
 * backup.c: opens a backup file (hostile input) with cluster key ckey of
 * domain: parses it, checks its header, unseals the image and checks that
 * the image is what the header says (*snap malloc'd). The return codes of
 * hsm_restore's file (CKR_DATA_INVALID, CKR_DATA_LEN_RANGE,
 * CKR_ENCRYPTED_DATA_INVALID); no lock, no store: the fuzz target's.
 */
CK_RV hsm_backup_open(const uint8_t *ckey, const char *domain,
                      const uint8_t *buf, size_t len, hsm_backup_info_t *info,
                      uint8_t **snap, size_t *snaplen);
/* Makes the file of image snap (the fuzz seeds' maker too). */
CK_RV hsm_backup_make(const uint8_t *ckey, const char *domain,
                      const char *source, uint64_t time, const uint8_t *snap,
                      size_t snaplen, uint8_t **out, size_t *outlen,
                      hsm_backup_info_t *info);

CK_RV hsm_obj_mask(hsm_t *hsm, const uint8_t *ckey, hsm_oid_t oid,
                   uint64_t version, const uint8_t *blob, size_t len,
                   uint8_t **out, size_t *outlen);
CK_RV hsm_obj_unmask(hsm_t *hsm, const uint8_t *ckey, hsm_oid_t oid,
                     uint64_t version, const uint8_t *masked, size_t len,
                     uint8_t **out, size_t *outlen);
/*
 * cluster.c: in a cluster, between begin and end (nested: a count, per
 * thread) an entry the calling thread submits (store_commit, a charge,
 * a reserve) waits for its majority with hsm->lock let go, so that the
 * node's other calls, and other writes, go on meanwhile (up to the
 * engine's submit timeout while the cluster has no leader). The caller
 * holds hsm->lock and nothing else (never gmu or a session's mu: the lock
 * is taken again after), and after each write re-checks whatever it read
 * under the lock before (the session array may have moved, the login may
 * have ended, objects may be gone); the write's result stays the one the
 * cluster applied.
 */
void hsm_waits_unlocked_begin(void);
void hsm_waits_unlocked_end(void);
/* store_reserve(hsm->st) with hsm->lock let go while it waits: at the top
 * of a write call, before its checks, so that its store_begin has nothing
 * to submit under the lock. CKR_OK at once outside a cluster. */
CK_RV hsm_reserve_unlocked(hsm_t *hsm);
/* What a call read of its connection's login before it let hsm->lock go
 * (users.c): the same login (or none) must stand after. */
struct hsm_login_snap {
    hsm_user_type_t type;
    hsm_uid_t uid;
    uint64_t seq; /* login_seq */
};
void hsm_login_snap(const hsm_conn_t *conn, struct hsm_login_snap *a);
bool hsm_login_same(const hsm_conn_t *conn, const struct hsm_login_snap *a);
/*
 * cluster.c: store_commit(hsm->st) that, in a cluster, lets hsm->lock go
 * while the entry waits for its majority (a millisecond or more), so that
 * other calls, and other writes, go on meanwhile: the core's writes then
 * overlap in the log instead of queueing on the lock. The caller must
 * hold nothing that the lock protects across the call (a session pointer
 * from hsm_begin_locked may move: look it up again after).
 */
CK_RV hsm_cluster_commit_unlocked(hsm_t *hsm);
/* cluster.c: fills hsm->journal's hooks (hsm_open, before any thread). */
void hsm_cluster_journal_init(hsm_t *hsm);
/* audit.c: chains rec onto st's log in its open transaction. */
CK_RV hsm_audit_append(store_t *st, store_audit_t *rec);

#endif
