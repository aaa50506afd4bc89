/*
 * backend.c - backend_open (which backend answers) and the calls of the
 * seam, each dispatched through the connection's (or the backend's)
 * vtable.
 */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend_impl.h"
#include "common/log.h"

bool backend_ops_complete(const struct backend_ops *ops)
{
    const unsigned char *p = (const unsigned char *)ops;
    size_t first = offsetof(struct backend_ops, close);

    if (ops == NULL || ops->kind == NULL)
        return false;
    /* Every member after kind is a function pointer: none may be NULL. */
    for (size_t off = first; off + sizeof(void (*)(void)) <= sizeof(*ops);
         off += sizeof(void (*)(void))) {
        void (*fn)(void);

        memcpy(&fn, p + off, sizeof(fn));
        if (fn == NULL)
            return false;
    }
    return true;
}

CK_RV backend_open(const struct config *cfg, backend_t **out)
{
    return_val_if_fail(cfg != NULL && out != NULL, CKR_GENERAL_ERROR);
    *out = NULL;
    if (cfg->nservers == 0) {
        /* a missing entry would be a jump to NULL */
        return_val_if_fail(backend_ops_complete(&backend_embedded_ops),
                           CKR_GENERAL_ERROR);
        return backend_embedded_open(cfg, out);
    }
    return_val_if_fail(backend_ops_complete(&backend_remote_ops),
                       CKR_GENERAL_ERROR);
    if (cfg->nservers > 1) {
        return_val_if_fail(backend_ops_complete(&backend_failover_ops),
                           CKR_GENERAL_ERROR);
        return backend_failover_open(cfg, out);
    }
    return backend_remote_open(cfg, out);
}

void backend_close(backend_t *be)
{
    if (be == NULL)
        return;
    be->ops->close(be);
}

const char *backend_kind(const backend_t *be)
{
    return be != NULL ? be->ops->kind : "none";
}

/* ------------------------------------------------------------ the calls */

CK_RV backend_token_info(backend_t *be, backend_conn_t *conn,
                         hsm_token_info_t *info)
{
    return_val_if_fail(be != NULL, CKR_GENERAL_ERROR);
    return_val_if_fail(conn == NULL || conn->be == be, CKR_GENERAL_ERROR);
    return be->ops->token_info(be, conn, info);
}

CK_RV backend_init_token(backend_t *be, const char *name, const uint8_t *pw,
                         size_t pwlen, const char *label)
{
    return_val_if_fail(be != NULL, CKR_GENERAL_ERROR);
    return be->ops->init_token(be, name, pw, pwlen, label);
}

CK_RV backend_mech_list(backend_t *be, CK_MECHANISM_TYPE **list, size_t *n)
{
    return_val_if_fail(be != NULL, CKR_GENERAL_ERROR);
    return be->ops->mech_list(be, list, n);
}

CK_RV backend_mech_info(backend_t *be, CK_MECHANISM_TYPE type,
                        hsm_mech_info_t *info)
{
    return_val_if_fail(be != NULL, CKR_GENERAL_ERROR);
    return be->ops->mech_info(be, type, info);
}

void backend_attrs_free(backend_t *be, hsm_attr_t *attrs, size_t n)
{
    if (be == NULL)
        return;
    be->ops->attrs_free(be, attrs, n);
}

CK_RV backend_template_parse(backend_t *be, const uint8_t *blob, size_t len,
                             hsm_attr_t **attrs, size_t *n)
{
    return_val_if_fail(be != NULL, CKR_GENERAL_ERROR);
    return be->ops->template_parse(be, blob, len, attrs, n);
}

CK_RV backend_conn_open(backend_t *be, backend_conn_t **out)
{
    return_val_if_fail(be != NULL, CKR_GENERAL_ERROR);
    return be->ops->conn_open(be, out);
}

void backend_conn_close(backend_conn_t *conn)
{
    if (conn == NULL)
        return;
    conn->be->ops->conn_close(conn);
}

bool backend_conn_lost(backend_conn_t *conn)
{
    if (conn == NULL)
        return false;
    return conn->be->ops->conn_lost(conn);
}

hsm_user_type_t backend_conn_user_type(backend_conn_t *conn, hsm_uid_t *uid)
{
    return_val_if_fail(conn != NULL, HSM_USER_NONE);
    return conn->be->ops->conn_user_type(conn, uid);
}

CK_RV backend_login(backend_conn_t *conn, hsm_login_kind_t kind,
                    const char *name, const uint8_t *pw, size_t pwlen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->login(conn, kind, name, pw, pwlen);
}

CK_RV backend_logout(backend_conn_t *conn)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->logout(conn);
}

CK_RV backend_set_password(backend_conn_t *conn, const char *name,
                           const uint8_t *old_pw, size_t old_len,
                           const uint8_t *new_pw, size_t new_len)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->set_password(conn, name, old_pw, old_len, new_pw,
                                       new_len);
}

CK_RV backend_init_pin(backend_conn_t *conn, const char *name,
                       const uint8_t *pw, size_t pwlen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->init_pin(conn, name, pw, pwlen);
}

CK_RV backend_user_list(backend_conn_t *conn, hsm_user_info_t **users,
                        size_t *count)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->user_list(conn, users, count);
}

CK_RV backend_user_create(backend_conn_t *conn, hsm_user_type_t type,
                          const char *name, const uint8_t *pw, size_t pwlen,
                          hsm_uid_t *uid)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->user_create(conn, type, name, pw, pwlen, uid);
}

CK_RV backend_user_delete(backend_conn_t *conn, const char *name)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->user_delete(conn, name);
}

CK_RV backend_context_login(backend_conn_t *conn, hsm_sid_t sid,
                            const char *name, const uint8_t *pw, size_t pwlen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->context_login(conn, sid, name, pw, pwlen);
}

CK_RV backend_session_open(backend_conn_t *conn, bool rw, hsm_sid_t *sid)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->session_open(conn, rw, sid);
}

CK_RV backend_session_close(backend_conn_t *conn, hsm_sid_t sid)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->session_close(conn, sid);
}

CK_RV backend_object_create(backend_conn_t *conn, hsm_sid_t sid,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                            hsm_oid_t *oid)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->object_create(conn, sid, tmpl, count, oid);
}

CK_RV backend_object_copy(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                          const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                          hsm_oid_t *new_oid)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->object_copy(conn, sid, oid, tmpl, count, new_oid);
}

CK_RV backend_object_destroy(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->object_destroy(conn, sid, oid);
}

CK_RV backend_object_size(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                          CK_ULONG *size)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->object_size(conn, sid, oid, size);
}

CK_RV backend_object_get(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                         const CK_ATTRIBUTE_TYPE *types, size_t n,
                         hsm_attr_t *out)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->object_get(conn, sid, oid, types, n, out);
}

CK_RV backend_object_set(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->object_set(conn, sid, oid, tmpl, count);
}

CK_RV backend_object_find(backend_conn_t *conn, hsm_sid_t sid,
                          const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                          hsm_oid_t **oids, size_t *n)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->object_find(conn, sid, tmpl, count, oids, n);
}

CK_RV backend_object_is_private(backend_conn_t *conn, hsm_oid_t oid, bool *priv)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->object_is_private(conn, oid, priv);
}

CK_RV backend_object_share(backend_conn_t *conn, hsm_oid_t oid, hsm_uid_t uid,
                           bool share)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->object_share(conn, oid, uid, share);
}

CK_RV backend_op_init(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                      const hsm_mech_t *mech, hsm_oid_t key)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->op_init(conn, sid, kind, mech, key);
}

CK_RV backend_op_init_iv(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                         const hsm_mech_t *mech, hsm_oid_t key, uint8_t *iv,
                         size_t ivroom, size_t *ivlen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->op_init_iv(conn, sid, kind, mech, key, iv, ivroom,
                                     ivlen);
}

CK_RV backend_op_output_len(backend_conn_t *conn, hsm_sid_t sid,
                            hsm_opkind_t kind, bool final, size_t inlen,
                            size_t *outlen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->op_output_len(conn, sid, kind, final, inlen, outlen);
}

CK_RV backend_op_oneshot(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                         const uint8_t *in, size_t inlen, uint8_t *out,
                         size_t *outlen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->op_oneshot(conn, sid, kind, in, inlen, out, outlen);
}

CK_RV backend_op_update(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        const uint8_t *in, size_t inlen, uint8_t *out,
                        size_t *outlen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->op_update(conn, sid, kind, in, inlen, out, outlen);
}

CK_RV backend_op_final(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                       uint8_t *out, size_t *outlen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->op_final(conn, sid, kind, out, outlen);
}

CK_RV backend_op_verify(backend_conn_t *conn, hsm_sid_t sid,
                        const uint8_t *data, size_t datalen, bool oneshot,
                        const uint8_t *sig, size_t siglen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->op_verify(conn, sid, data, datalen, oneshot, sig,
                                    siglen);
}

CK_RV backend_op_digest_key(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t key)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->op_digest_key(conn, sid, key);
}

void backend_op_abort(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind)
{
    if (conn == NULL)
        return;
    conn->be->ops->op_abort(conn, sid, kind);
}

CK_RV backend_generate_key(backend_conn_t *conn, hsm_sid_t sid,
                           const hsm_mech_t *mech, const CK_ATTRIBUTE *tmpl,
                           CK_ULONG count, hsm_oid_t *oid)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->generate_key(conn, sid, mech, tmpl, count, oid);
}

CK_RV backend_generate_key_pair(backend_conn_t *conn, hsm_sid_t sid,
                                const hsm_mech_t *mech,
                                const CK_ATTRIBUTE *pub_tmpl,
                                CK_ULONG pub_count,
                                const CK_ATTRIBUTE *priv_tmpl,
                                CK_ULONG priv_count, hsm_oid_t *pub,
                                hsm_oid_t *priv)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->generate_key_pair(
        conn, sid, mech, pub_tmpl, pub_count, priv_tmpl, priv_count, pub, priv);
}

CK_RV backend_derive_key(backend_conn_t *conn, hsm_sid_t sid,
                         const hsm_mech_t *mech, hsm_oid_t base,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         hsm_oid_t *oid)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->derive_key(conn, sid, mech, base, tmpl, count, oid);
}

CK_RV backend_wrap_key(backend_conn_t *conn, hsm_sid_t sid,
                       const hsm_mech_t *mech, hsm_oid_t wrapping,
                       hsm_oid_t key, uint8_t **out, size_t *outlen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->wrap_key(conn, sid, mech, wrapping, key, out, outlen);
}

CK_RV backend_unwrap_key(backend_conn_t *conn, hsm_sid_t sid,
                         const hsm_mech_t *mech, hsm_oid_t unwrapping,
                         const uint8_t *in, size_t inlen,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         hsm_oid_t *oid)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->unwrap_key(conn, sid, mech, unwrapping, in, inlen,
                                     tmpl, count, oid);
}

CK_RV backend_msg_init(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                       const hsm_mech_t *mech, hsm_oid_t key)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->msg_init(conn, sid, kind, mech, key);
}

CK_RV backend_msg_oneshot(backend_conn_t *conn, hsm_sid_t sid,
                          hsm_msgkind_t kind, const hsm_mech_t *param,
                          const uint8_t *aad, size_t aadlen, const uint8_t *in,
                          size_t inlen, uint8_t *out, size_t *outlen,
                          hsm_msg_result_t *res)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->msg_oneshot(conn, sid, kind, param, aad, aadlen, in,
                                      inlen, out, outlen, res);
}

CK_RV backend_msg_begin(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                        const hsm_mech_t *param, const uint8_t *aad,
                        size_t aadlen, hsm_msg_result_t *res)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->msg_begin(conn, sid, kind, param, aad, aadlen, res);
}

CK_RV backend_msg_next(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                       const hsm_mech_t *param, const uint8_t *in, size_t inlen,
                       bool last, uint8_t *out, size_t *outlen,
                       hsm_msg_result_t *res)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->msg_next(conn, sid, kind, param, in, inlen, last, out,
                                   outlen, res);
}

CK_RV backend_msg_output_len(backend_conn_t *conn, hsm_sid_t sid,
                             hsm_msgkind_t kind, bool last, size_t inlen,
                             size_t *outlen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->msg_output_len(conn, sid, kind, last, inlen, outlen);
}

CK_RV backend_msg_final(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->msg_final(conn, sid, kind);
}

void backend_msg_abort(backend_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind)
{
    if (conn == NULL)
        return;
    conn->be->ops->msg_abort(conn, sid, kind);
}

CK_RV backend_random(backend_conn_t *conn, hsm_sid_t sid, uint8_t *buf,
                     size_t len)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->random(conn, sid, buf, len);
}

CK_RV backend_user_set_password(backend_conn_t *conn, const char *name,
                                const uint8_t *pw, size_t pwlen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->user_set_password(conn, name, pw, pwlen);
}

CK_RV backend_key_list(backend_conn_t *conn, hsm_uid_t uid,
                       hsm_key_ref_t **keys, size_t *n,
                       uint8_t digest[HSM_DIGEST_LEN])
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->key_list(conn, uid, keys, n, digest);
}

CK_RV backend_key_info(backend_conn_t *conn, hsm_oid_t oid, hsm_uid_t *owner,
                       hsm_uid_t **shared, size_t *nshared)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->key_info(conn, oid, owner, shared, nshared);
}

CK_RV backend_audit_read(backend_conn_t *conn, uint64_t after, size_t max,
                         hsm_audit_record_t **recs, size_t *n)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->audit_read(conn, after, max, recs, n);
}

CK_RV backend_audit_verify(backend_conn_t *conn, hsm_audit_check_t *check)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->audit_verify(conn, check);
}

CK_RV backend_object_set_trusted(backend_conn_t *conn, hsm_oid_t oid,
                                 bool trusted)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->object_set_trusted(conn, oid, trusted);
}

CK_RV backend_client_list(backend_conn_t *conn, backend_client_t **list,
                          size_t *n)
{
    return_val_if_fail(conn != NULL && list != NULL && n != NULL,
                       CKR_GENERAL_ERROR);
    *list = NULL;
    *n = 0;
    return conn->be->ops->client_list(conn, list, n);
}

CK_RV backend_cluster_status(backend_conn_t *conn, backend_cluster_t *out)
{
    return_val_if_fail(conn != NULL && out != NULL, CKR_GENERAL_ERROR);
    memset(out, 0, sizeof(*out));
    return conn->be->ops->cluster_status(conn, out);
}

CK_RV backend_cluster_add(backend_conn_t *conn, uint64_t id,
                          const char *address)
{
    return_val_if_fail(conn != NULL && address != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->cluster_add(conn, id, address);
}

CK_RV backend_cluster_remove(backend_conn_t *conn, uint64_t id)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->cluster_remove(conn, id);
}

CK_RV backend_cluster_transfer(backend_conn_t *conn, uint64_t id)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->cluster_transfer(conn, id);
}

CK_RV backend_quorum_register_key(backend_conn_t *conn, const char *name,
                                  const uint8_t *reg_token, size_t token_len,
                                  const uint8_t *sig, size_t sig_len,
                                  const uint8_t *pubkey, size_t pubkey_len)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->quorum_register_key(conn, name, reg_token, token_len,
                                              sig, sig_len, pubkey, pubkey_len);
}

CK_RV backend_quorum_set_m(backend_conn_t *conn, unsigned service, unsigned m)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->quorum_set_m(conn, service, m);
}

CK_RV backend_quorum_get_m(backend_conn_t *conn, unsigned service,
                           unsigned *m)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->quorum_get_m(conn, service, m);
}

CK_RV backend_quorum_get_token(backend_conn_t *conn, unsigned service,
                               const char *name, uint8_t *token, size_t *len)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->quorum_get_token(conn, service, name, token, len);
}

CK_RV backend_quorum_approve(backend_conn_t *conn, const uint8_t *token,
                             size_t token_len, const hsm_quorum_approval_t *a,
                             size_t n, CK_RV *results)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->quorum_approve(conn, token, token_len, a, n, results);
}

CK_RV backend_quorum_list_tokens(backend_conn_t *conn,
                                 hsm_quorum_token_info_t **out, size_t *n)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->quorum_list_tokens(conn, out, n);
}

CK_RV backend_quorum_del_token(backend_conn_t *conn, uint32_t id)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->quorum_del_token(conn, id);
}

CK_RV backend_login_challenge(backend_conn_t *conn, hsm_login_kind_t kind,
                              const char *name, uint8_t digest[HSM_DIGEST_LEN])
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->login_challenge(conn, kind, name, digest);
}

CK_RV backend_login_2fa(backend_conn_t *conn, hsm_login_kind_t kind,
                        const char *name, const uint8_t *pw, size_t pwlen,
                        const uint8_t *sig, size_t siglen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->login_2fa(conn, kind, name, pw, pwlen, sig, siglen);
}

CK_RV backend_user_create_2fa(backend_conn_t *conn, const char *name,
                              const uint8_t *pw, size_t pwlen,
                              const uint8_t *pubkey, size_t pubkey_len,
                              const uint8_t *sig, size_t siglen, hsm_uid_t *uid)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->user_create_2fa(conn, name, pw, pwlen, pubkey,
                                          pubkey_len, sig, siglen, uid);
}

CK_RV backend_user_set_password_2fa(backend_conn_t *conn, const char *name,
                                    const uint8_t *pw, size_t pwlen,
                                    const uint8_t *pubkey, size_t pubkey_len,
                                    const uint8_t *sig, size_t siglen)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->user_set_password_2fa(conn, name, pw, pwlen, pubkey,
                                                pubkey_len, sig, siglen);
}

CK_RV backend_masked_extract(backend_conn_t *conn, hsm_oid_t oid,
                             uint8_t **file, size_t *len)
{
    return_val_if_fail(conn != NULL && file != NULL && len != NULL,
                       CKR_GENERAL_ERROR);
    return conn->be->ops->masked_extract(conn, oid, file, len);
}

CK_RV backend_masked_insert(backend_conn_t *conn, const uint8_t *file,
                            size_t len, hsm_oid_t *oid)
{
    return_val_if_fail(conn != NULL && oid != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->masked_insert(conn, file, len, oid);
}

CK_RV backend_backup(backend_conn_t *conn, uint8_t **file, size_t *len,
                     hsm_backup_info_t *info)
{
    return_val_if_fail(conn != NULL && file != NULL && len != NULL &&
                           info != NULL,
                       CKR_GENERAL_ERROR);
    return conn->be->ops->backup(conn, file, len, info);
}

CK_RV backend_restore(backend_conn_t *conn, const uint8_t *file, size_t len,
                      hsm_backup_info_t *info, size_t *nodes)
{
    return_val_if_fail(conn != NULL && info != NULL && nodes != NULL,
                       CKR_GENERAL_ERROR);
    return conn->be->ops->restore(conn, file, len, info, nodes);
}

CK_RV backend_login_ticket(backend_conn_t *conn, uint8_t out[HSM_TICKET_LEN])
{
    return_val_if_fail(conn != NULL && out != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->login_ticket(conn, out);
}

CK_RV backend_login_redeem(backend_conn_t *conn, const uint8_t *ticket,
                           size_t len)
{
    return_val_if_fail(conn != NULL, CKR_GENERAL_ERROR);
    return conn->be->ops->login_redeem(conn, ticket, len);
}
