/*
 * client.h - the client side of the wire: one function per hsm.h call,
 * each encoding the request, handing it to a transfer function and
 * decoding the reply. The remote backend (src/backend/) uses it over a
 * wire_link_t; the unit tests call the server in process.
 *
 * The functions take the hsm.h call's arguments less the hsm_t /
 * hsm_conn_t (the channel stands for them) and keep its contract: the
 * same outputs, malloc'd where hsm.h mallocs, freed the same way. The
 * server is not trusted either: a reply of the wrong id or kind, or an
 * output longer than the room given, is CKR_DEVICE_ERROR and nothing is
 * written past what the caller declared.
 *
 * A wire_client_t is one channel: calls on it are serialized (a mutex);
 * an application that wants calls in parallel opens several channels and
 * attaches them to one connection (wire_cl_hello with the token).
 */
#ifndef NIMBUS_WIRE_CLIENT_H
#define NIMBUS_WIRE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "hsm/hsm.h"

#define WIRE_TOKEN_LEN 32

/*
 * Sends one request payload and returns the reply payload (*resp
 * malloc'd). false: the link broke; the call answers CKR_DEVICE_REMOVED.
 */
typedef bool (*wire_xfer_fn)(void *ctx, const uint8_t *req, size_t len,
                             uint8_t **resp, size_t *resp_len);

/* The same with the request in n pieces (struct iovec) written where they
 * lie: the caller's bulk input is not copied into a frame first. */
struct iovec;
typedef bool (*wire_xferv_fn)(void *ctx, const struct iovec *iov, size_t n,
                              uint8_t **resp, size_t *resp_len);

typedef struct wire_client wire_client_t;

/* max_frame: the largest payload sent (the server's limit, once the
 * handshake told it; 0: the default). */
CK_RV wire_client_new(wire_xfer_fn xfer, void *ctx, size_t max_frame,
                      wire_client_t **out);
void wire_client_free(wire_client_t *cl);

/* Hands a reply payload back once it is decoded. Without one (the
 * default) the client wipes and frees it; a transport that reads into a
 * buffer it keeps (wire_frame_read_kept) sets this to wipe it instead.
 * Set before the first call. */
typedef void (*wire_resp_done_fn)(void *ctx, uint8_t *resp, size_t len);
void wire_client_set_resp_done(wire_client_t *cl, wire_resp_done_fn done);
/* Sends requests through xferv instead (set before the first call). */
void wire_client_set_xferv(wire_client_t *cl, wire_xferv_fn xferv);
/* xfer that also returns a descriptor passed with the reply (*fd, or -1).
 * Set (before the first call) on a unix link only: the client may then
 * ask a minor-3 server for a shared bulk region (src/wire/proto.h) and
 * move inputs and outputs of WIRE_SHM_MIN bytes or more through it. */
typedef bool (*wire_xfer_fd_fn)(void *ctx, const uint8_t *req, size_t len,
                                uint8_t **resp, size_t *resp_len, int *fd);
void wire_client_set_xfer_fd(wire_client_t *cl, wire_xfer_fd_fn xfer_fd);

/*
 * The handshake. token NULL: a new connection; else attach to the
 * connection that token names. token_out (may be NULL) gets the
 * connection's token. CKR_DEVICE_REMOVED: the connection is gone (or was
 * never this peer's); CKR_DEVICE_ERROR: another protocol version.
 */
CK_RV wire_cl_hello(wire_client_t *cl, const char *client_name,
                    const uint8_t *token, uint8_t token_out[WIRE_TOKEN_LEN]);

CK_RV wire_cl_token_info(wire_client_t *cl, hsm_token_info_t *info);
CK_RV wire_cl_init_token(wire_client_t *cl, const char *name, const uint8_t *pw,
                         size_t pwlen, const char *label);
CK_RV wire_cl_conn_user_type(wire_client_t *cl, hsm_user_type_t *type,
                             hsm_uid_t *uid);
CK_RV wire_cl_login(wire_client_t *cl, hsm_login_kind_t kind, const char *name,
                    const uint8_t *pw, size_t pwlen);
CK_RV wire_cl_logout(wire_client_t *cl);
CK_RV wire_cl_set_password(wire_client_t *cl, const char *name,
                           const uint8_t *old_pw, size_t old_len,
                           const uint8_t *new_pw, size_t new_len);
CK_RV wire_cl_init_pin(wire_client_t *cl, const char *name, const uint8_t *pw,
                       size_t pwlen);
CK_RV wire_cl_user_list(wire_client_t *cl, hsm_user_info_t **users,
                        size_t *count);
CK_RV wire_cl_user_create(wire_client_t *cl, hsm_user_type_t type,
                          const char *name, const uint8_t *pw, size_t pwlen,
                          hsm_uid_t *uid);
CK_RV wire_cl_user_delete(wire_client_t *cl, const char *name);
CK_RV wire_cl_context_login(wire_client_t *cl, hsm_sid_t sid, const char *name,
                            const uint8_t *pw, size_t pwlen);
CK_RV wire_cl_session_open(wire_client_t *cl, bool rw, hsm_sid_t *sid);
CK_RV wire_cl_session_close(wire_client_t *cl, hsm_sid_t sid);

CK_RV wire_cl_object_create(wire_client_t *cl, hsm_sid_t sid,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                            hsm_oid_t *oid);
CK_RV wire_cl_object_copy(wire_client_t *cl, hsm_sid_t sid, hsm_oid_t oid,
                          const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                          hsm_oid_t *new_oid);
CK_RV wire_cl_object_destroy(wire_client_t *cl, hsm_sid_t sid, hsm_oid_t oid);
CK_RV wire_cl_object_size(wire_client_t *cl, hsm_sid_t sid, hsm_oid_t oid,
                          CK_ULONG *size);
/* out[i].value malloc'd: free with hsm_attrs_free. */
CK_RV wire_cl_object_get(wire_client_t *cl, hsm_sid_t sid, hsm_oid_t oid,
                         const CK_ATTRIBUTE_TYPE *types, size_t n,
                         hsm_attr_t *out);
CK_RV wire_cl_object_set(wire_client_t *cl, hsm_sid_t sid, hsm_oid_t oid,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count);
CK_RV wire_cl_object_find(wire_client_t *cl, hsm_sid_t sid,
                          const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                          hsm_oid_t **oids, size_t *n);
CK_RV wire_cl_object_is_private(wire_client_t *cl, hsm_oid_t oid, bool *priv);
CK_RV wire_cl_object_share(wire_client_t *cl, hsm_oid_t oid, hsm_uid_t uid,
                           bool share);

CK_RV wire_cl_mech_list(wire_client_t *cl, CK_MECHANISM_TYPE **list, size_t *n);
CK_RV wire_cl_mech_info(wire_client_t *cl, CK_MECHANISM_TYPE type,
                        hsm_mech_info_t *info);

CK_RV wire_cl_op_output_len(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                            bool final, size_t inlen, size_t *outlen);
CK_RV wire_cl_op_oneshot(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                         const uint8_t *in, size_t inlen, uint8_t *out,
                         size_t *outlen);
CK_RV wire_cl_op_update(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                        const uint8_t *in, size_t inlen, uint8_t *out,
                        size_t *outlen);
CK_RV wire_cl_op_final(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                       uint8_t *out, size_t *outlen);
CK_RV wire_cl_op_verify(wire_client_t *cl, hsm_sid_t sid, const uint8_t *data,
                        size_t datalen, bool oneshot, const uint8_t *sig,
                        size_t siglen);
CK_RV wire_cl_op_digest_key(wire_client_t *cl, hsm_sid_t sid, hsm_oid_t key);
/* hsm_op_abort has no result; the wire's is CKR_OK or why it failed. */
CK_RV wire_cl_op_abort(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind);

CK_RV wire_cl_op_init(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                      const hsm_mech_t *mech, hsm_oid_t key);
CK_RV wire_cl_op_init_iv(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                         const hsm_mech_t *mech, hsm_oid_t key, uint8_t *iv,
                         size_t ivroom, size_t *ivlen);
CK_RV wire_cl_generate_key(wire_client_t *cl, hsm_sid_t sid,
                           const hsm_mech_t *mech, const CK_ATTRIBUTE *tmpl,
                           CK_ULONG count, hsm_oid_t *oid);
CK_RV wire_cl_generate_key_pair(wire_client_t *cl, hsm_sid_t sid,
                                const hsm_mech_t *mech,
                                const CK_ATTRIBUTE *pub_tmpl,
                                CK_ULONG pub_count,
                                const CK_ATTRIBUTE *priv_tmpl,
                                CK_ULONG priv_count, hsm_oid_t *pub,
                                hsm_oid_t *priv);
CK_RV wire_cl_derive_key(wire_client_t *cl, hsm_sid_t sid,
                         const hsm_mech_t *mech, hsm_oid_t base,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         hsm_oid_t *oid);
/* *out malloc'd, as hsm_wrap_key's. */
CK_RV wire_cl_wrap_key(wire_client_t *cl, hsm_sid_t sid, const hsm_mech_t *mech,
                       hsm_oid_t wrapping, hsm_oid_t key, uint8_t **out,
                       size_t *outlen);
CK_RV wire_cl_unwrap_key(wire_client_t *cl, hsm_sid_t sid,
                         const hsm_mech_t *mech, hsm_oid_t unwrapping,
                         const uint8_t *in, size_t inlen,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         hsm_oid_t *oid);

CK_RV wire_cl_msg_init(wire_client_t *cl, hsm_sid_t sid, hsm_msgkind_t kind,
                       const hsm_mech_t *mech, hsm_oid_t key);
CK_RV wire_cl_msg_oneshot(wire_client_t *cl, hsm_sid_t sid, hsm_msgkind_t kind,
                          const hsm_mech_t *param, const uint8_t *aad,
                          size_t aadlen, const uint8_t *in, size_t inlen,
                          uint8_t *out, size_t *outlen, hsm_msg_result_t *res);
CK_RV wire_cl_msg_begin(wire_client_t *cl, hsm_sid_t sid, hsm_msgkind_t kind,
                        const hsm_mech_t *param, const uint8_t *aad,
                        size_t aadlen, hsm_msg_result_t *res);
CK_RV wire_cl_msg_next(wire_client_t *cl, hsm_sid_t sid, hsm_msgkind_t kind,
                       const hsm_mech_t *param, const uint8_t *in, size_t inlen,
                       bool last, uint8_t *out, size_t *outlen,
                       hsm_msg_result_t *res);
CK_RV wire_cl_msg_output_len(wire_client_t *cl, hsm_sid_t sid,
                             hsm_msgkind_t kind, bool last, size_t inlen,
                             size_t *outlen);
CK_RV wire_cl_msg_final(wire_client_t *cl, hsm_sid_t sid, hsm_msgkind_t kind);
/* hsm_msg_abort has no result; the wire's is CKR_OK or why it failed. */
CK_RV wire_cl_msg_abort(wire_client_t *cl, hsm_sid_t sid, hsm_msgkind_t kind);

/* In parts of at most what one reply carries. */
CK_RV wire_cl_random(wire_client_t *cl, hsm_sid_t sid, uint8_t *buf,
                     size_t len);

CK_RV wire_cl_user_set_password(wire_client_t *cl, const char *name,
                                const uint8_t *pw, size_t pwlen);
CK_RV wire_cl_key_list(wire_client_t *cl, hsm_uid_t uid, hsm_key_ref_t **keys,
                       size_t *n, uint8_t digest[HSM_DIGEST_LEN]);
CK_RV wire_cl_key_info(wire_client_t *cl, hsm_oid_t oid, hsm_uid_t *owner,
                       hsm_uid_t **shared, size_t *nshared);
CK_RV wire_cl_audit_read(wire_client_t *cl, uint64_t after, size_t max,
                         hsm_audit_record_t **recs, size_t *n);
CK_RV wire_cl_audit_verify(wire_client_t *cl, hsm_audit_check_t *check);
CK_RV wire_cl_object_set_trusted(wire_client_t *cl, hsm_oid_t oid,
                                 bool trusted);

/* One connection of the server (ClientInfo of nimbus.proto). */
typedef struct {
    char peer[320];       /* "uid=.. gid=.. pid=.." or a certificate subject */
    char addr[128];       /* the transport's address */
    char client_name[96]; /* what the client said in its handshake */
    uint32_t sessions;
    uint32_t channels;
    hsm_user_type_t user_type; /* HSM_USER_NONE: nobody logged in */
    hsm_uid_t user_id;
    bool self; /* the asking connection */
} wire_client_info_t;

/* The server's connections (CO only). *list malloc'd (free()). */
CK_RV wire_cl_client_list(wire_client_t *cl, wire_client_info_t **list,
                          size_t *n);

/* The node's view of its cluster and its sync digest (ClusterStatusReply,
 * minor 5). */
typedef struct {
    struct cluster_status status;
    uint8_t digest[HSM_DIGEST_LEN]; /* over the replicated state */
    uint64_t digest_applied;        /* the applied index it is at */
    char cluster_id[CLUSTER_ID_MAX + 1]; /* "": the server did not say */
} wire_cluster_info_t;

/* Sync status (CO, CU, AU). A reply out of bounds (an id above 2^32-1,
 * more than CLUSTER_NODES_MAX nodes, an unknown role or member kind, a
 * digest of another length, a cluster id over CLUSTER_ID_MAX bytes) is
 * CKR_DEVICE_ERROR; in addresses and the cluster id, every
 * byte that is not printable ASCII becomes '?'. */
CK_RV wire_cl_cluster_status(wire_client_t *cl, wire_cluster_info_t *out);
/* Membership (a CO). */
CK_RV wire_cl_cluster_add(wire_client_t *cl, uint64_t id, const char *address);
CK_RV wire_cl_cluster_remove(wire_client_t *cl, uint64_t id);
CK_RV wire_cl_cluster_transfer(wire_client_t *cl, uint64_t id);
/* Masked objects (CO, CU, AU on a cluster node): *file malloc'd (free());
 * a reply over WIRE_MASKED_FILE_MAX bytes is CKR_DEVICE_ERROR. */
#define WIRE_MASKED_FILE_MAX (16u * 1024u * 1024u + 64u * 1024u)
CK_RV wire_cl_masked_extract(wire_client_t *cl, hsm_oid_t oid, uint8_t **file,
                             size_t *len);
CK_RV wire_cl_masked_insert(wire_client_t *cl, const uint8_t *file, size_t len,
                            hsm_oid_t *oid);
/* Cluster backups (hsm.h hsm_backup, hsm_restore): a reply's file over
 * HSM_BACKUP_FILE_MAX bytes, or a field out of its bounds, is
 * CKR_DEVICE_ERROR. *nodes: on how many nodes the restore's entry is. */
CK_RV wire_cl_backup(wire_client_t *cl, uint8_t **file, size_t *len,
                     hsm_backup_info_t *info);
CK_RV wire_cl_restore(wire_client_t *cl, const uint8_t *file, size_t len,
                      hsm_backup_info_t *info, size_t *nodes);

/* Quorum (M of N), protocol minor 1: hsm_quorum_* of hsm.h. */
CK_RV wire_cl_quorum_register_key(wire_client_t *cl, const char *name,
                                  const uint8_t *reg_token, size_t token_len,
                                  const uint8_t *sig, size_t sig_len,
                                  const uint8_t *pubkey, size_t pubkey_len);
CK_RV wire_cl_quorum_set_m(wire_client_t *cl, unsigned service, unsigned m);
CK_RV wire_cl_quorum_get_m(wire_client_t *cl, unsigned service, unsigned *m);
CK_RV wire_cl_quorum_get_token(wire_client_t *cl, unsigned service,
                               const char *name, uint8_t *token, size_t *len);
/* At most HSM_QUORUM_M_MAX approvals per call (CKR_ARGUMENTS_BAD). */
CK_RV wire_cl_quorum_approve(wire_client_t *cl, const uint8_t *token,
                             size_t token_len, const hsm_quorum_approval_t *a,
                             size_t n, CK_RV *results);
/* *out malloc'd (free()). */
CK_RV wire_cl_quorum_list_tokens(wire_client_t *cl,
                                 hsm_quorum_token_info_t **out, size_t *n);
CK_RV wire_cl_quorum_del_token(wire_client_t *cl, uint32_t id);

/* Two-factor login (hsm.h). */
CK_RV wire_cl_login_challenge(wire_client_t *cl, hsm_login_kind_t kind,
                              const char *name, uint8_t digest[HSM_DIGEST_LEN]);
CK_RV wire_cl_login_2fa(wire_client_t *cl, hsm_login_kind_t kind,
                        const char *name, const uint8_t *pw, size_t pwlen,
                        const uint8_t *sig, size_t siglen);
CK_RV wire_cl_user_create_2fa(wire_client_t *cl, const char *name,
                              const uint8_t *pw, size_t pwlen,
                              const uint8_t *pubkey, size_t pubkey_len,
                              const uint8_t *sig, size_t siglen,
                              hsm_uid_t *uid);
CK_RV wire_cl_user_set_password_2fa(wire_client_t *cl, const char *name,
                                    const uint8_t *pw, size_t pwlen,
                                    const uint8_t *pubkey, size_t pubkey_len,
                                    const uint8_t *sig, size_t siglen);

/* Login tickets (hsm.h). A reply of another length than HSM_TICKET_LEN is
 * CKR_DEVICE_ERROR. */
CK_RV wire_cl_login_ticket(wire_client_t *cl, uint8_t out[HSM_TICKET_LEN]);
CK_RV wire_cl_login_redeem(wire_client_t *cl, const uint8_t *ticket,
                           size_t len);

#endif
