/*
 * backend.h - the seam between the callers of the HSM (the PKCS#11 front
 * end, nimbus-mgmt) and whatever answers: the core in this process
 * (embedded.c) or nimbusd over the wire (the remote backend).
 *
 * One call here per call of hsm.h, with the same arguments and the same
 * meaning (read hsm.h for each): hsm_t becomes backend_t, hsm_conn_t
 * becomes backend_conn_t, hsm_x() becomes backend_x(). The types that
 * cross (ids, hsm_token_info_t, hsm_attr_t, hsm_mech_info_t ...) are
 * hsm.h's plain-data types. Callers include this header, never hsm.h's
 * functions; nothing but embedded.c calls the core (tests/backend/seam.sh
 * checks the objects). hsm_open/hsm_close are backend_open/backend_close;
 * hsm_conn_set_peer has no entry: nimbusd records the peer it
 * authenticated, a client does not get to name itself.
 *
 * What a remote implementation relies on:
 * - Plain data in and out. Every argument is a value, a byte string with
 *   its length, an attribute template, a mechanism already decoded into a
 *   hsm_mech_t (common/mechparam.h: the caller decodes the PKCS#11 layout
 *   once and writes back what flows to the application, e.g. a GCM IV the
 *   token made, from the call's outputs), or an output the callee fills.
 *   A buffer handed in is read during the call only; nothing is kept.
 *   Outputs documented as malloc'd in hsm.h are released with free(),
 *   whoever made them; attribute values (backend_object_get,
 *   backend_template_parse) with backend_attrs_free of the same backend,
 *   because the embedded core keeps secrets in its own secure heap.
 * - Calls may come from several threads at once (the front end runs the
 *   crypto of two sessions in parallel); hsm.h's thread-safety contract is
 *   the contract here. A remote implementation serialises or multiplexes
 *   on its link as it sees fit.
 * - The void calls (conn_close, op_abort, msg_abort, close) cannot fail
 *   from the caller's point of view: a remote one does its best and drops
 *   the local state whatever the server answers.
 *
 * Errors. Every CK_RV has its hsm.h meaning. Two more come from the seam:
 * - CKR_DEVICE_ERROR from backend_open: the configuration names no
 *   backend this build can open (a reason is logged), or the remote
 *   backend's local setup failed (TLS material unreadable ...).
 * - CKR_DEVICE_REMOVED from any call that reaches the HSM: the HSM cannot
 *   be reached (remote only; the embedded backend never answers it). The
 *   connection it came from is then dead for good: on the server its
 *   login, sessions, operations and session objects are gone (a restarted
 *   nimbusd knows nothing of them). Every later call on that connection
 *   answers CKR_DEVICE_REMOVED at once, the void ones do nothing,
 *   backend_conn_user_type answers HSM_USER_NONE (no login survives).
 *   A connection never reconnects by itself: a reconnected link would
 *   carry another login and other session ids under the same object.
 *   The caller recovers by dropping what it keeps for that connection
 *   (sessions, object handles, operation states), calling
 *   backend_conn_close, and calling backend_conn_open again when it next
 *   needs one: that answers CKR_DEVICE_REMOVED while the HSM is still
 *   down, and a fresh connection (nobody logged in) once it is back.
 *   The PKCS#11 front end maps this onto its handles: sessions of the
 *   dead connection answer CKR_DEVICE_REMOVED while no new connection can
 *   be made, then CKR_SESSION_HANDLE_INVALID; new sessions and logins work
 *   again without C_Finalize.
 *   backend_t itself is never dead: it holds what is needed to reach the
 *   HSM (endpoints, TLS context), and the calls made on it
 *   (backend_token_info, backend_init_token, backend_mech_list,
 *   backend_mech_info) reach the HSM afresh each time they need to.
 * Token object ids (hsm_oid_t) stay valid across a reconnection; session
 * object ids and session ids (hsm_sid_t) do not.
 */
#ifndef NIMBUS_BACKEND_H
#define NIMBUS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "common/conf.h"
#include "hsm/hsm.h"
#include "pkcs11/pkcs11.h"

typedef struct backend backend_t;           /* the HSM, as reached from here */
typedef struct backend_conn backend_conn_t; /* one login and its sessions */

/* A connection nimbusd holds (backend_client_list: nimbus-mgmt's info
 * server). */
typedef struct {
    char peer[320];       /* "uid=.. gid=.. pid=.." or a certificate subject */
    char addr[128];       /* where it came from */
    char client_name[96]; /* what the client called itself */
    uint32_t sessions;
    uint32_t channels; /* sockets attached to it */
    hsm_user_type_t user_type; /* HSM_USER_NONE: nobody logged in */
    hsm_uid_t user_id;
    bool self; /* the connection that asked */
} backend_client_t;

/* A server's view of the cluster it belongs to (backend_cluster_status:
 * nimbus-mgmt's listNodes and getClusterDigest). */
typedef struct {
    struct cluster_status status;   /* cluster.h's, as the node sees it */
    uint8_t digest[HSM_DIGEST_LEN]; /* over the node's replicated state */
    uint64_t digest_applied;        /* the applied index it is at */
    /* the server's cluster_id ("": not told): equal ids, one cluster */
    char cluster_id[CLUSTER_ID_MAX + 1];
} backend_cluster_t;

/*
 * The HSM cfg names: the embedded core on cfg->store when cfg names no
 * servers, else nimbusd at cfg->servers (the remote backend, remote.c:
 * nothing is connected until the first connection or call needs it;
 * CKR_DEVICE_ERROR when its TLS material cannot be loaded, the reason
 * logged). cfg is copied.
 */
CK_RV backend_open(const struct config *cfg, backend_t **out);
/* Every connection must be closed first. NULL is allowed. */
void backend_close(backend_t *be);
/* "embedded" or "remote": for messages. */
const char *backend_kind(const backend_t *be);

/* --------------------------------------------------------- the vtable */

/*
 * What an implementation provides. The entries taking a backend_conn_t
 * receive one the same implementation made (its conn_open); the public
 * calls below dispatch through conn's backend. Implementations lay out
 * their own backend_t / backend_conn_t starting with the base structs of
 * backend_impl.h.
 */
/* clang-format would take "CK_RV (*f)(...)" for a call and break it. */
/* clang-format off */
struct backend_ops {
    const char *kind;

    /* the backend */
    void (*close)(backend_t *be);
    CK_RV (*token_info)(backend_t *be, backend_conn_t *conn,
                        hsm_token_info_t *info);
    CK_RV (*init_token)(backend_t *be, const char *name, const uint8_t *pw,
                        size_t pwlen, const char *label);
    CK_RV (*mech_list)(backend_t *be, CK_MECHANISM_TYPE **list, size_t *n);
    CK_RV (*mech_info)(backend_t *be, CK_MECHANISM_TYPE type,
                       hsm_mech_info_t *info);
    void (*attrs_free)(backend_t *be, hsm_attr_t *attrs, size_t n);
    CK_RV (*template_parse)(backend_t *be, const uint8_t *blob, size_t len,
                            hsm_attr_t **attrs, size_t *n);

    /* connections, login */
    CK_RV (*conn_open)(backend_t *be, backend_conn_t **out);
    void (*conn_close)(backend_conn_t *conn);
    bool (*conn_lost)(backend_conn_t *conn);
    hsm_user_type_t (*conn_user_type)(backend_conn_t *conn, hsm_uid_t *uid);
    CK_RV (*login)(backend_conn_t *conn, hsm_login_kind_t kind,
                   const char *name, const uint8_t *pw, size_t pwlen);
    CK_RV (*logout)(backend_conn_t *conn);
    CK_RV (*set_password)(backend_conn_t *conn, const char *name,
                          const uint8_t *old_pw, size_t old_len,
                          const uint8_t *new_pw, size_t new_len);
    CK_RV (*init_pin)(backend_conn_t *conn, const char *name, const uint8_t *pw,
                      size_t pwlen);

    /* users */
    CK_RV (*user_list)(backend_conn_t *conn, hsm_user_info_t **users,
                       size_t *count);
    CK_RV (*user_create)(backend_conn_t *conn, hsm_user_type_t type,
                         const char *name, const uint8_t *pw, size_t pwlen,
                         hsm_uid_t *uid);
    CK_RV (*user_delete)(backend_conn_t *conn, const char *name);

    /* sessions */
    CK_RV (*context_login)(backend_conn_t *conn, hsm_sid_t sid,
                           const char *name, const uint8_t *pw, size_t pwlen);
    CK_RV (*session_open)(backend_conn_t *conn, bool rw, hsm_sid_t *sid);
    CK_RV (*session_close)(backend_conn_t *conn, hsm_sid_t sid);

    /* objects */
    CK_RV (*object_create)(backend_conn_t *conn, hsm_sid_t sid,
                           const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                           hsm_oid_t *oid);
    CK_RV (*object_copy)(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         hsm_oid_t *new_oid);
    CK_RV (*object_destroy)(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid);
    CK_RV (*object_size)(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                         CK_ULONG *size);
    CK_RV (*object_get)(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                        const CK_ATTRIBUTE_TYPE *types, size_t n,
                        hsm_attr_t *out);
    CK_RV (*object_set)(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                        const CK_ATTRIBUTE *tmpl, CK_ULONG count);
    CK_RV (*object_find)(backend_conn_t *conn, hsm_sid_t sid,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         hsm_oid_t **oids, size_t *n);
    CK_RV (*object_is_private)(backend_conn_t *conn, hsm_oid_t oid, bool *priv);
    CK_RV (*object_share)(backend_conn_t *conn, hsm_oid_t oid, hsm_uid_t uid,
                          bool share);

    /* crypto operations */
    CK_RV (*op_init)(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                     const hsm_mech_t *mech, hsm_oid_t key);
    CK_RV (*op_init_iv)(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        const hsm_mech_t *mech, hsm_oid_t key, uint8_t *iv,
                        size_t ivroom, size_t *ivlen);
    CK_RV (*op_output_len)(backend_conn_t *conn, hsm_sid_t sid,
                           hsm_opkind_t kind, bool final, size_t inlen,
                           size_t *outlen);
    CK_RV (*op_oneshot)(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        const uint8_t *in, size_t inlen, uint8_t *out,
                        size_t *outlen);
    CK_RV (*op_update)(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                       const uint8_t *in, size_t inlen, uint8_t *out,
                       size_t *outlen);
    CK_RV (*op_final)(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                      uint8_t *out, size_t *outlen);
    CK_RV (*op_verify)(backend_conn_t *conn, hsm_sid_t sid, const uint8_t *data,
                       size_t datalen, bool oneshot, const uint8_t *sig,
                       size_t siglen);
    CK_RV (*op_digest_key)(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t key);
    void (*op_abort)(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind);

    /* keys */
    CK_RV (*generate_key)(backend_conn_t *conn, hsm_sid_t sid,
                          const hsm_mech_t *mech, const CK_ATTRIBUTE *tmpl,
                          CK_ULONG count, hsm_oid_t *oid);
    CK_RV (*generate_key_pair)(backend_conn_t *conn, hsm_sid_t sid,
                               const hsm_mech_t *mech,
                               const CK_ATTRIBUTE *pub_tmpl, CK_ULONG pub_count,
                               const CK_ATTRIBUTE *priv_tmpl,
                               CK_ULONG priv_count, hsm_oid_t *pub,
                               hsm_oid_t *priv);
    CK_RV (*derive_key)(backend_conn_t *conn, hsm_sid_t sid,
                        const hsm_mech_t *mech, hsm_oid_t base,
                        const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                        hsm_oid_t *oid);
    CK_RV (*wrap_key)(backend_conn_t *conn, hsm_sid_t sid,
                      const hsm_mech_t *mech, hsm_oid_t wrapping, hsm_oid_t key,
                      uint8_t **out, size_t *outlen);
    CK_RV (*unwrap_key)(backend_conn_t *conn, hsm_sid_t sid,
                        const hsm_mech_t *mech, hsm_oid_t unwrapping,
                        const uint8_t *in, size_t inlen,
                        const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                        hsm_oid_t *oid);

    /* message-based AEAD */
    CK_RV (*msg_init)(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                      const hsm_mech_t *mech, hsm_oid_t key);
    CK_RV (*msg_oneshot)(backend_conn_t *conn, hsm_sid_t sid,
                         hsm_msgkind_t kind, const hsm_mech_t *param,
                         const uint8_t *aad, size_t aadlen, const uint8_t *in,
                         size_t inlen, uint8_t *out, size_t *outlen,
                         hsm_msg_result_t *res);
    CK_RV (*msg_begin)(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                       const hsm_mech_t *param, const uint8_t *aad,
                       size_t aadlen, hsm_msg_result_t *res);
    CK_RV (*msg_next)(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                      const hsm_mech_t *param, const uint8_t *in, size_t inlen,
                      bool last, uint8_t *out, size_t *outlen,
                      hsm_msg_result_t *res);
    CK_RV (*msg_output_len)(backend_conn_t *conn, hsm_sid_t sid,
                            hsm_msgkind_t kind, bool last, size_t inlen,
                            size_t *outlen);
    CK_RV (*msg_final)(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind);
    void (*msg_abort)(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind);

    /* misc */
    CK_RV (*random)(backend_conn_t *conn, hsm_sid_t sid, uint8_t *buf,
                    size_t len);

    /* management */
    CK_RV (*user_set_password)(backend_conn_t *conn, const char *name,
                               const uint8_t *pw, size_t pwlen);
    CK_RV (*key_list)(backend_conn_t *conn, hsm_uid_t uid, hsm_key_ref_t **keys,
                      size_t *n, uint8_t digest[HSM_DIGEST_LEN]);
    CK_RV (*key_info)(backend_conn_t *conn, hsm_oid_t oid, hsm_uid_t *owner,
                      hsm_uid_t **shared, size_t *nshared);
    CK_RV (*audit_read)(backend_conn_t *conn, uint64_t after, size_t max,
                        hsm_audit_record_t **recs, size_t *n);
    CK_RV (*audit_verify)(backend_conn_t *conn, hsm_audit_check_t *check);
    CK_RV (*object_set_trusted)(backend_conn_t *conn, hsm_oid_t oid,
                                bool trusted);
    CK_RV (*client_list)(backend_conn_t *conn, backend_client_t **list,
                         size_t *n);
    CK_RV (*cluster_status)(backend_conn_t *conn, backend_cluster_t *out);
    CK_RV (*cluster_add)(backend_conn_t *conn, uint64_t id,
                         const char *address);
    CK_RV (*cluster_remove)(backend_conn_t *conn, uint64_t id);
    CK_RV (*cluster_transfer)(backend_conn_t *conn, uint64_t id);
    CK_RV (*masked_extract)(backend_conn_t *conn, hsm_oid_t oid,
                            uint8_t **file, size_t *len);
    CK_RV (*masked_insert)(backend_conn_t *conn, const uint8_t *file,
                           size_t len, hsm_oid_t *oid);
    CK_RV (*backup)(backend_conn_t *conn, uint8_t **file, size_t *len,
                    hsm_backup_info_t *info);
    CK_RV (*restore)(backend_conn_t *conn, const uint8_t *file, size_t len,
                     hsm_backup_info_t *info, size_t *nodes);

    /* two-factor login */
    CK_RV (*login_challenge)(backend_conn_t *conn, hsm_login_kind_t kind,
                             const char *name,
                             uint8_t digest[HSM_DIGEST_LEN]);
    CK_RV (*login_2fa)(backend_conn_t *conn, hsm_login_kind_t kind,
                       const char *name, const uint8_t *pw, size_t pwlen,
                       const uint8_t *sig, size_t siglen);
    CK_RV (*user_create_2fa)(backend_conn_t *conn, const char *name,
                             const uint8_t *pw, size_t pwlen,
                             const uint8_t *pubkey, size_t pubkey_len,
                             const uint8_t *sig, size_t siglen,
                             hsm_uid_t *uid);
    CK_RV (*user_set_password_2fa)(backend_conn_t *conn, const char *name,
                                   const uint8_t *pw, size_t pwlen,
                                   const uint8_t *pubkey, size_t pubkey_len,
                                   const uint8_t *sig, size_t siglen);

    /* quorum (M of N) */
    CK_RV (*quorum_register_key)(backend_conn_t *conn, const char *name,
                                 const uint8_t *reg_token, size_t token_len,
                                 const uint8_t *sig, size_t sig_len,
                                 const uint8_t *pubkey, size_t pubkey_len);
    CK_RV (*quorum_set_m)(backend_conn_t *conn, unsigned service, unsigned m);
    CK_RV (*quorum_get_m)(backend_conn_t *conn, unsigned service, unsigned *m);
    CK_RV (*quorum_get_token)(backend_conn_t *conn, unsigned service,
                              const char *name, uint8_t *token, size_t *len);
    CK_RV (*quorum_approve)(backend_conn_t *conn, const uint8_t *token,
                            size_t token_len, const hsm_quorum_approval_t *a,
                            size_t n, CK_RV *results);
    CK_RV (*quorum_list_tokens)(backend_conn_t *conn,
                                hsm_quorum_token_info_t **out, size_t *n);
    CK_RV (*quorum_del_token)(backend_conn_t *conn, uint32_t id);

    /* login tickets */
    CK_RV (*login_ticket)(backend_conn_t *conn, uint8_t out[HSM_TICKET_LEN]);
    CK_RV (*login_redeem)(backend_conn_t *conn, const uint8_t *ticket,
                          size_t len);
};
/* clang-format on */

/* ------------------------------------------------ the calls (see hsm.h) */

CK_RV backend_token_info(backend_t *be, backend_conn_t *conn,
                         hsm_token_info_t *info);
CK_RV backend_init_token(backend_t *be, const char *name, const uint8_t *pw,
                         size_t pwlen, const char *label);
CK_RV backend_mech_list(backend_t *be, CK_MECHANISM_TYPE **list, size_t *n);
CK_RV backend_mech_info(backend_t *be, CK_MECHANISM_TYPE type,
                        hsm_mech_info_t *info);
void backend_attrs_free(backend_t *be, hsm_attr_t *attrs, size_t n);
CK_RV backend_template_parse(backend_t *be, const uint8_t *blob, size_t len,
                             hsm_attr_t **attrs, size_t *n);

CK_RV backend_conn_open(backend_t *be, backend_conn_t **out);
/* NULL is allowed. */
void backend_conn_close(backend_conn_t *conn);
/*
 * Whether conn is dead: it answered CKR_DEVICE_REMOVED, or (remote) an
 * idle socket of it shows that the server went away. Cheap enough for
 * every call (a flag, and one poll without waiting, skipped when that
 * socket's last call ended less than a millisecond ago); the caller then
 * drops what it keeps for conn and opens a new one. Never true for the
 * embedded backend.
 */
bool backend_conn_lost(backend_conn_t *conn);
hsm_user_type_t backend_conn_user_type(backend_conn_t *conn, hsm_uid_t *uid);
CK_RV backend_login(backend_conn_t *conn, hsm_login_kind_t kind,
                    const char *name, const uint8_t *pw, size_t pwlen);
CK_RV backend_logout(backend_conn_t *conn);
CK_RV backend_set_password(backend_conn_t *conn, const char *name,
                           const uint8_t *old_pw, size_t old_len,
                           const uint8_t *new_pw, size_t new_len);
CK_RV backend_init_pin(backend_conn_t *conn, const char *name,
                       const uint8_t *pw, size_t pwlen);

CK_RV backend_user_list(backend_conn_t *conn, hsm_user_info_t **users,
                        size_t *count);
CK_RV backend_user_create(backend_conn_t *conn, hsm_user_type_t type,
                          const char *name, const uint8_t *pw, size_t pwlen,
                          hsm_uid_t *uid);
CK_RV backend_user_delete(backend_conn_t *conn, const char *name);

CK_RV backend_context_login(backend_conn_t *conn, hsm_sid_t sid,
                            const char *name, const uint8_t *pw, size_t pwlen);
CK_RV backend_session_open(backend_conn_t *conn, bool rw, hsm_sid_t *sid);
CK_RV backend_session_close(backend_conn_t *conn, hsm_sid_t sid);

CK_RV backend_object_create(backend_conn_t *conn, hsm_sid_t sid,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                            hsm_oid_t *oid);
CK_RV backend_object_copy(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                          const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                          hsm_oid_t *new_oid);
CK_RV backend_object_destroy(backend_conn_t *conn, hsm_sid_t sid,
                             hsm_oid_t oid);
CK_RV backend_object_size(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                          CK_ULONG *size);
CK_RV backend_object_get(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                         const CK_ATTRIBUTE_TYPE *types, size_t n,
                         hsm_attr_t *out);
CK_RV backend_object_set(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count);
CK_RV backend_object_find(backend_conn_t *conn, hsm_sid_t sid,
                          const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                          hsm_oid_t **oids, size_t *n);
CK_RV backend_object_is_private(backend_conn_t *conn, hsm_oid_t oid,
                                bool *priv);
CK_RV backend_object_share(backend_conn_t *conn, hsm_oid_t oid, hsm_uid_t uid,
                           bool share);

CK_RV backend_op_init(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                      const hsm_mech_t *mech, hsm_oid_t key);
CK_RV backend_op_init_iv(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                         const hsm_mech_t *mech, hsm_oid_t key, uint8_t *iv,
                         size_t ivroom, size_t *ivlen);
CK_RV backend_op_output_len(backend_conn_t *conn, hsm_sid_t sid,
                            hsm_opkind_t kind, bool final, size_t inlen,
                            size_t *outlen);
CK_RV backend_op_oneshot(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                         const uint8_t *in, size_t inlen, uint8_t *out,
                         size_t *outlen);
CK_RV backend_op_update(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        const uint8_t *in, size_t inlen, uint8_t *out,
                        size_t *outlen);
CK_RV backend_op_final(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                       uint8_t *out, size_t *outlen);
CK_RV backend_op_verify(backend_conn_t *conn, hsm_sid_t sid,
                        const uint8_t *data, size_t datalen, bool oneshot,
                        const uint8_t *sig, size_t siglen);
CK_RV backend_op_digest_key(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t key);
void backend_op_abort(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind);

CK_RV backend_generate_key(backend_conn_t *conn, hsm_sid_t sid,
                           const hsm_mech_t *mech, const CK_ATTRIBUTE *tmpl,
                           CK_ULONG count, hsm_oid_t *oid);
CK_RV backend_generate_key_pair(backend_conn_t *conn, hsm_sid_t sid,
                                const hsm_mech_t *mech,
                                const CK_ATTRIBUTE *pub_tmpl,
                                CK_ULONG pub_count,
                                const CK_ATTRIBUTE *priv_tmpl,
                                CK_ULONG priv_count, hsm_oid_t *pub,
                                hsm_oid_t *priv);
CK_RV backend_derive_key(backend_conn_t *conn, hsm_sid_t sid,
                         const hsm_mech_t *mech, hsm_oid_t base,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         hsm_oid_t *oid);
CK_RV backend_wrap_key(backend_conn_t *conn, hsm_sid_t sid,
                       const hsm_mech_t *mech, hsm_oid_t wrapping,
                       hsm_oid_t key, uint8_t **out, size_t *outlen);
CK_RV backend_unwrap_key(backend_conn_t *conn, hsm_sid_t sid,
                         const hsm_mech_t *mech, hsm_oid_t unwrapping,
                         const uint8_t *in, size_t inlen,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         hsm_oid_t *oid);

CK_RV backend_msg_init(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                       const hsm_mech_t *mech, hsm_oid_t key);
CK_RV backend_msg_oneshot(backend_conn_t *conn, hsm_sid_t sid,
                          hsm_msgkind_t kind, const hsm_mech_t *param,
                          const uint8_t *aad, size_t aadlen, const uint8_t *in,
                          size_t inlen, uint8_t *out, size_t *outlen,
                          hsm_msg_result_t *res);
CK_RV backend_msg_begin(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                        const hsm_mech_t *param, const uint8_t *aad,
                        size_t aadlen, hsm_msg_result_t *res);
CK_RV backend_msg_next(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                       const hsm_mech_t *param, const uint8_t *in, size_t inlen,
                       bool last, uint8_t *out, size_t *outlen,
                       hsm_msg_result_t *res);
CK_RV backend_msg_output_len(backend_conn_t *conn, hsm_sid_t sid,
                             hsm_msgkind_t kind, bool last, size_t inlen,
                             size_t *outlen);
CK_RV backend_msg_final(backend_conn_t *conn, hsm_sid_t sid,
                        hsm_msgkind_t kind);
void backend_msg_abort(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind);

CK_RV backend_random(backend_conn_t *conn, hsm_sid_t sid, uint8_t *buf,
                     size_t len);

CK_RV backend_user_set_password(backend_conn_t *conn, const char *name,
                                const uint8_t *pw, size_t pwlen);
CK_RV backend_key_list(backend_conn_t *conn, hsm_uid_t uid,
                       hsm_key_ref_t **keys, size_t *n,
                       uint8_t digest[HSM_DIGEST_LEN]);
CK_RV backend_key_info(backend_conn_t *conn, hsm_oid_t oid, hsm_uid_t *owner,
                       hsm_uid_t **shared, size_t *nshared);
CK_RV backend_audit_read(backend_conn_t *conn, uint64_t after, size_t max,
                         hsm_audit_record_t **recs, size_t *n);
CK_RV backend_audit_verify(backend_conn_t *conn, hsm_audit_check_t *check);
CK_RV backend_object_set_trusted(backend_conn_t *conn, hsm_oid_t oid,
                                 bool trusted);
/*
 * The connections of the HSM's server (not an hsm.h call: nimbusd's own
 * state): a CO only (CKR_USER_NOT_LOGGED_IN otherwise). *list malloc'd,
 * free() it. The embedded backend has no server: CKR_FUNCTION_NOT_SUPPORTED.
 */
CK_RV backend_client_list(backend_conn_t *conn, backend_client_t **list,
                          size_t *n);

/*
 * The cluster of the HSM's server (nimbusd's, not an hsm.h call). status:
 * sync status (CO, CU, AU); add (address "host:port"), remove, transfer
 * leadership: a CO. A server outside a cluster, and the embedded
 * backend, answer CKR_FUNCTION_NOT_SUPPORTED; the engine's refusals are
 * the CK_RVs nimbus.proto lists at ClusterStatusReq.
 */
CK_RV backend_cluster_status(backend_conn_t *conn, backend_cluster_t *out);
CK_RV backend_cluster_add(backend_conn_t *conn, uint64_t id,
                          const char *address);
CK_RV backend_cluster_remove(backend_conn_t *conn, uint64_t id);
CK_RV backend_cluster_transfer(backend_conn_t *conn, uint64_t id);

/* Masked objects: hsm.h hsm_masked_extract, hsm_masked_insert (*file
 * malloc'd, free() it). */
CK_RV backend_masked_extract(backend_conn_t *conn, hsm_oid_t oid,
                             uint8_t **file, size_t *len);
CK_RV backend_masked_insert(backend_conn_t *conn, const uint8_t *file,
                            size_t len, hsm_oid_t *oid);

/* Cluster backups: hsm.h hsm_backup, hsm_restore (*file malloc'd, free()
 * it); *nodes: on how many nodes of the cluster the restore's entry is. */
CK_RV backend_backup(backend_conn_t *conn, uint8_t **file, size_t *len,
                     hsm_backup_info_t *info);
CK_RV backend_restore(backend_conn_t *conn, const uint8_t *file, size_t len,
                      hsm_backup_info_t *info, size_t *nodes);

/* Quorum (M of N) approval: hsm_quorum_* of hsm.h. */
CK_RV backend_quorum_register_key(backend_conn_t *conn, const char *name,
                                  const uint8_t *reg_token, size_t token_len,
                                  const uint8_t *sig, size_t sig_len,
                                  const uint8_t *pubkey, size_t pubkey_len);
CK_RV backend_quorum_set_m(backend_conn_t *conn, unsigned service, unsigned m);
CK_RV backend_quorum_get_m(backend_conn_t *conn, unsigned service,
                           unsigned *m);
CK_RV backend_quorum_get_token(backend_conn_t *conn, unsigned service,
                               const char *name, uint8_t *token, size_t *len);
CK_RV backend_quorum_approve(backend_conn_t *conn, const uint8_t *token,
                             size_t token_len, const hsm_quorum_approval_t *a,
                             size_t n, CK_RV *results);
/* *out malloc'd: free() it. */
CK_RV backend_quorum_list_tokens(backend_conn_t *conn,
                                 hsm_quorum_token_info_t **out, size_t *n);
CK_RV backend_quorum_del_token(backend_conn_t *conn, uint32_t id);

/* Two-factor login (hsm.h). */
CK_RV backend_login_challenge(backend_conn_t *conn, hsm_login_kind_t kind,
                              const char *name, uint8_t digest[HSM_DIGEST_LEN]);
CK_RV backend_login_2fa(backend_conn_t *conn, hsm_login_kind_t kind,
                        const char *name, const uint8_t *pw, size_t pwlen,
                        const uint8_t *sig, size_t siglen);
CK_RV backend_user_create_2fa(backend_conn_t *conn, const char *name,
                              const uint8_t *pw, size_t pwlen,
                              const uint8_t *pubkey, size_t pubkey_len,
                              const uint8_t *sig, size_t siglen,
                              hsm_uid_t *uid);
CK_RV backend_user_set_password_2fa(backend_conn_t *conn, const char *name,
                                    const uint8_t *pw, size_t pwlen,
                                    const uint8_t *pubkey, size_t pubkey_len,
                                    const uint8_t *sig, size_t siglen);

/*
 * Login tickets (hsm.h hsm_login_ticket, hsm_login_redeem): how a client
 * with several servers carries one login to each without keeping the
 * password. The embedded backend has one core in the process, nothing to
 * carry a login to: CKR_FUNCTION_NOT_SUPPORTED.
 */
CK_RV backend_login_ticket(backend_conn_t *conn, uint8_t out[HSM_TICKET_LEN]);
CK_RV backend_login_redeem(backend_conn_t *conn, const uint8_t *ticket,
                           size_t len);

#endif
