/*
 * embedded.c - the embedded backend: the core (hsm.h) on a local store, in
 * this process. Each entry unwraps the seam's types and calls the core
 * with the same arguments; nothing else in the callers calls the core.
 */
#include "config.h"

#include <stdlib.h>

#include "backend/backend_impl.h"
#include "hsm/hsm.h"

struct embedded {
    struct backend base;
    hsm_t *hsm;
};

struct embedded_conn {
    struct backend_conn base;
    hsm_conn_t *conn;
};

static hsm_t *emb_hsm(backend_t *be)
{
    return ((struct embedded *)be)->hsm;
}

static hsm_conn_t *emb_conn(backend_conn_t *c)
{
    return c != NULL ? ((struct embedded_conn *)c)->conn : NULL;
}

CK_RV backend_embedded_open(const struct config *cfg, backend_t **out)
{
    struct embedded *e;
    CK_RV rv;

    *out = NULL;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return CKR_HOST_MEMORY;
    e->base.ops = &backend_embedded_ops;
    if ((rv = hsm_open(cfg, &e->hsm)) != CKR_OK) {
        free(e);
        return rv;
    }
    *out = &e->base;
    return CKR_OK;
}

/* ------------------------------------------------------------ backend */

static void emb_close(backend_t *be)
{
    hsm_close(emb_hsm(be));
    free(be);
}

static CK_RV emb_token_info(backend_t *be, backend_conn_t *conn,
                            hsm_token_info_t *info)
{
    return hsm_token_info(emb_hsm(be), emb_conn(conn), info);
}

static CK_RV emb_init_token(backend_t *be, const char *name, const uint8_t *pw,
                            size_t pwlen, const char *label)
{
    return hsm_init_token(emb_hsm(be), name, pw, pwlen, label);
}

static CK_RV emb_mech_list(backend_t *be, CK_MECHANISM_TYPE **list, size_t *n)
{
    return hsm_mech_list(emb_hsm(be), list, n);
}

static CK_RV emb_mech_info(backend_t *be, CK_MECHANISM_TYPE type,
                           hsm_mech_info_t *info)
{
    return hsm_mech_info(emb_hsm(be), type, info);
}

static void emb_attrs_free(backend_t *be, hsm_attr_t *attrs, size_t n)
{
    (void)be;
    hsm_attrs_free(attrs, n);
}

static CK_RV emb_template_parse(backend_t *be, const uint8_t *blob, size_t len,
                                hsm_attr_t **attrs, size_t *n)
{
    (void)be;
    return hsm_template_parse(blob, len, attrs, n);
}

/* ------------------------------------------------- connections, login */

static CK_RV emb_conn_open(backend_t *be, backend_conn_t **out)
{
    struct embedded_conn *c;
    CK_RV rv;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return CKR_HOST_MEMORY;
    c->base.be = be;
    if ((rv = hsm_conn_open(emb_hsm(be), &c->conn)) != CKR_OK) {
        free(c);
        return rv;
    }
    *out = &c->base;
    return CKR_OK;
}

static void emb_conn_close(backend_conn_t *conn)
{
    hsm_conn_close(emb_conn(conn));
    free(conn);
}

static bool emb_conn_lost(backend_conn_t *conn)
{
    (void)conn;
    return false; /* the core in this process never goes away */
}

static hsm_user_type_t emb_conn_user_type(backend_conn_t *conn, hsm_uid_t *uid)
{
    return hsm_conn_user_type(emb_conn(conn), uid);
}

static CK_RV emb_login(backend_conn_t *conn, hsm_login_kind_t kind,
                       const char *name, const uint8_t *pw, size_t pwlen)
{
    return hsm_login(emb_conn(conn), kind, name, pw, pwlen);
}

static CK_RV emb_logout(backend_conn_t *conn)
{
    return hsm_logout(emb_conn(conn));
}

static CK_RV emb_set_password(backend_conn_t *conn, const char *name,
                              const uint8_t *old_pw, size_t old_len,
                              const uint8_t *new_pw, size_t new_len)
{
    return hsm_set_password(emb_conn(conn), name, old_pw, old_len, new_pw,
                            new_len);
}

static CK_RV emb_init_pin(backend_conn_t *conn, const char *name,
                          const uint8_t *pw, size_t pwlen)
{
    return hsm_init_pin(emb_conn(conn), name, pw, pwlen);
}

/* ------------------------------------------------------------ users */

static CK_RV emb_user_list(backend_conn_t *conn, hsm_user_info_t **users,
                           size_t *count)
{
    return hsm_user_list(emb_conn(conn), users, count);
}

static CK_RV emb_user_create(backend_conn_t *conn, hsm_user_type_t type,
                             const char *name, const uint8_t *pw, size_t pwlen,
                             hsm_uid_t *uid)
{
    return hsm_user_create(emb_conn(conn), type, name, pw, pwlen, uid);
}

static CK_RV emb_user_delete(backend_conn_t *conn, const char *name)
{
    return hsm_user_delete(emb_conn(conn), name);
}

/* ------------------------------------------------------------ sessions */

static CK_RV emb_context_login(backend_conn_t *conn, hsm_sid_t sid,
                               const char *name, const uint8_t *pw,
                               size_t pwlen)
{
    return hsm_context_login(emb_conn(conn), sid, name, pw, pwlen);
}

static CK_RV emb_session_open(backend_conn_t *conn, bool rw, hsm_sid_t *sid)
{
    return hsm_session_open(emb_conn(conn), rw, sid);
}

static CK_RV emb_session_close(backend_conn_t *conn, hsm_sid_t sid)
{
    return hsm_session_close(emb_conn(conn), sid);
}

/* ------------------------------------------------------------ objects */

static CK_RV emb_object_create(backend_conn_t *conn, hsm_sid_t sid,
                               const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                               hsm_oid_t *oid)
{
    return hsm_object_create(emb_conn(conn), sid, tmpl, count, oid);
}

static CK_RV emb_object_copy(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                             const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                             hsm_oid_t *new_oid)
{
    return hsm_object_copy(emb_conn(conn), sid, oid, tmpl, count, new_oid);
}

static CK_RV emb_object_destroy(backend_conn_t *conn, hsm_sid_t sid,
                                hsm_oid_t oid)
{
    return hsm_object_destroy(emb_conn(conn), sid, oid);
}

static CK_RV emb_object_size(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                             CK_ULONG *size)
{
    return hsm_object_size(emb_conn(conn), sid, oid, size);
}

static CK_RV emb_object_get(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                            const CK_ATTRIBUTE_TYPE *types, size_t n,
                            hsm_attr_t *out)
{
    return hsm_object_get(emb_conn(conn), sid, oid, types, n, out);
}

static CK_RV emb_object_set(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    return hsm_object_set(emb_conn(conn), sid, oid, tmpl, count);
}

static CK_RV emb_object_find(backend_conn_t *conn, hsm_sid_t sid,
                             const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                             hsm_oid_t **oids, size_t *n)
{
    return hsm_object_find(emb_conn(conn), sid, tmpl, count, oids, n);
}

static CK_RV emb_object_is_private(backend_conn_t *conn, hsm_oid_t oid,
                                   bool *priv)
{
    return hsm_object_is_private(emb_conn(conn), oid, priv);
}

static CK_RV emb_object_share(backend_conn_t *conn, hsm_oid_t oid,
                              hsm_uid_t uid, bool share)
{
    return hsm_object_share(emb_conn(conn), oid, uid, share);
}

/* --------------------------------------------------- crypto operations */

static CK_RV emb_op_init(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                         const hsm_mech_t *mech, hsm_oid_t key)
{
    return hsm_op_init(emb_conn(conn), sid, kind, mech, key);
}

static CK_RV emb_op_init_iv(backend_conn_t *conn, hsm_sid_t sid,
                            hsm_opkind_t kind, const hsm_mech_t *mech,
                            hsm_oid_t key, uint8_t *iv, size_t ivroom,
                            size_t *ivlen)
{
    return hsm_op_init_iv(emb_conn(conn), sid, kind, mech, key, iv, ivroom,
                          ivlen);
}

static CK_RV emb_op_output_len(backend_conn_t *conn, hsm_sid_t sid,
                               hsm_opkind_t kind, bool final, size_t inlen,
                               size_t *outlen)
{
    return hsm_op_output_len(emb_conn(conn), sid, kind, final, inlen, outlen);
}

static CK_RV emb_op_oneshot(backend_conn_t *conn, hsm_sid_t sid,
                            hsm_opkind_t kind, const uint8_t *in, size_t inlen,
                            uint8_t *out, size_t *outlen)
{
    return hsm_op_oneshot(emb_conn(conn), sid, kind, in, inlen, out, outlen);
}

static CK_RV emb_op_update(backend_conn_t *conn, hsm_sid_t sid,
                           hsm_opkind_t kind, const uint8_t *in, size_t inlen,
                           uint8_t *out, size_t *outlen)
{
    return hsm_op_update(emb_conn(conn), sid, kind, in, inlen, out, outlen);
}

static CK_RV emb_op_final(backend_conn_t *conn, hsm_sid_t sid,
                          hsm_opkind_t kind, uint8_t *out, size_t *outlen)
{
    return hsm_op_final(emb_conn(conn), sid, kind, out, outlen);
}

static CK_RV emb_op_verify(backend_conn_t *conn, hsm_sid_t sid,
                           const uint8_t *data, size_t datalen, bool oneshot,
                           const uint8_t *sig, size_t siglen)
{
    return hsm_op_verify(emb_conn(conn), sid, data, datalen, oneshot, sig,
                         siglen);
}

static CK_RV emb_op_digest_key(backend_conn_t *conn, hsm_sid_t sid,
                               hsm_oid_t key)
{
    return hsm_op_digest_key(emb_conn(conn), sid, key);
}

static void emb_op_abort(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind)
{
    hsm_op_abort(emb_conn(conn), sid, kind);
}

/* ------------------------------------------------------------ keys */

static CK_RV emb_generate_key(backend_conn_t *conn, hsm_sid_t sid,
                              const hsm_mech_t *mech, const CK_ATTRIBUTE *tmpl,
                              CK_ULONG count, hsm_oid_t *oid)
{
    return hsm_generate_key(emb_conn(conn), sid, mech, tmpl, count, oid);
}

static CK_RV
emb_generate_key_pair(backend_conn_t *conn, hsm_sid_t sid,
                      const hsm_mech_t *mech, const CK_ATTRIBUTE *pub_tmpl,
                      CK_ULONG pub_count, const CK_ATTRIBUTE *priv_tmpl,
                      CK_ULONG priv_count, hsm_oid_t *pub, hsm_oid_t *priv)
{
    return hsm_generate_key_pair(emb_conn(conn), sid, mech, pub_tmpl, pub_count,
                                 priv_tmpl, priv_count, pub, priv);
}

static CK_RV emb_derive_key(backend_conn_t *conn, hsm_sid_t sid,
                            const hsm_mech_t *mech, hsm_oid_t base,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                            hsm_oid_t *oid)
{
    return hsm_derive_key(emb_conn(conn), sid, mech, base, tmpl, count, oid);
}

static CK_RV emb_wrap_key(backend_conn_t *conn, hsm_sid_t sid,
                          const hsm_mech_t *mech, hsm_oid_t wrapping,
                          hsm_oid_t key, uint8_t **out, size_t *outlen)
{
    return hsm_wrap_key(emb_conn(conn), sid, mech, wrapping, key, out, outlen);
}

static CK_RV emb_unwrap_key(backend_conn_t *conn, hsm_sid_t sid,
                            const hsm_mech_t *mech, hsm_oid_t unwrapping,
                            const uint8_t *in, size_t inlen,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                            hsm_oid_t *oid)
{
    return hsm_unwrap_key(emb_conn(conn), sid, mech, unwrapping, in, inlen,
                          tmpl, count, oid);
}

/* ------------------------------------------------ message-based AEAD */

static CK_RV emb_msg_init(backend_conn_t *conn, hsm_sid_t sid,
                          hsm_msgkind_t kind, const hsm_mech_t *mech,
                          hsm_oid_t key)
{
    return hsm_msg_init(emb_conn(conn), sid, kind, mech, key);
}

static CK_RV emb_msg_oneshot(backend_conn_t *conn, hsm_sid_t sid,
                             hsm_msgkind_t kind, const hsm_mech_t *param,
                             const uint8_t *aad, size_t aadlen,
                             const uint8_t *in, size_t inlen, uint8_t *out,
                             size_t *outlen, hsm_msg_result_t *res)
{
    return hsm_msg_oneshot(emb_conn(conn), sid, kind, param, aad, aadlen, in,
                           inlen, out, outlen, res);
}

static CK_RV emb_msg_begin(backend_conn_t *conn, hsm_sid_t sid,
                           hsm_msgkind_t kind, const hsm_mech_t *param,
                           const uint8_t *aad, size_t aadlen,
                           hsm_msg_result_t *res)
{
    return hsm_msg_begin(emb_conn(conn), sid, kind, param, aad, aadlen, res);
}

static CK_RV emb_msg_next(backend_conn_t *conn, hsm_sid_t sid,
                          hsm_msgkind_t kind, const hsm_mech_t *param,
                          const uint8_t *in, size_t inlen, bool last,
                          uint8_t *out, size_t *outlen, hsm_msg_result_t *res)
{
    return hsm_msg_next(emb_conn(conn), sid, kind, param, in, inlen, last, out,
                        outlen, res);
}

static CK_RV emb_msg_output_len(backend_conn_t *conn, hsm_sid_t sid,
                                hsm_msgkind_t kind, bool last, size_t inlen,
                                size_t *outlen)
{
    return hsm_msg_output_len(emb_conn(conn), sid, kind, last, inlen, outlen);
}

static CK_RV emb_msg_final(backend_conn_t *conn, hsm_sid_t sid,
                           hsm_msgkind_t kind)
{
    return hsm_msg_final(emb_conn(conn), sid, kind);
}

static void emb_msg_abort(backend_conn_t *conn, hsm_sid_t sid,
                          hsm_msgkind_t kind)
{
    hsm_msg_abort(emb_conn(conn), sid, kind);
}

/* ------------------------------------------------------- misc, mgmt */

static CK_RV emb_random(backend_conn_t *conn, hsm_sid_t sid, uint8_t *buf,
                        size_t len)
{
    return hsm_random(emb_conn(conn), sid, buf, len);
}

static CK_RV emb_user_set_password(backend_conn_t *conn, const char *name,
                                   const uint8_t *pw, size_t pwlen)
{
    return hsm_user_set_password(emb_conn(conn), name, pw, pwlen);
}

static CK_RV emb_login_challenge(backend_conn_t *conn, hsm_login_kind_t kind,
                                 const char *name,
                                 uint8_t digest[HSM_DIGEST_LEN])
{
    return hsm_login_challenge(emb_conn(conn), kind, name, digest);
}

static CK_RV emb_login_2fa(backend_conn_t *conn, hsm_login_kind_t kind,
                           const char *name, const uint8_t *pw, size_t pwlen,
                           const uint8_t *sig, size_t siglen)
{
    return hsm_login_2fa(emb_conn(conn), kind, name, pw, pwlen, sig, siglen);
}

static CK_RV emb_user_create_2fa(backend_conn_t *conn, const char *name,
                                 const uint8_t *pw, size_t pwlen,
                                 const uint8_t *pubkey, size_t pubkey_len,
                                 const uint8_t *sig, size_t siglen,
                                 hsm_uid_t *uid)
{
    return hsm_user_create_2fa(emb_conn(conn), name, pw, pwlen, pubkey,
                               pubkey_len, sig, siglen, uid);
}

static CK_RV emb_user_set_password_2fa(backend_conn_t *conn, const char *name,
                                       const uint8_t *pw, size_t pwlen,
                                       const uint8_t *pubkey, size_t pubkey_len,
                                       const uint8_t *sig, size_t siglen)
{
    return hsm_user_set_password_2fa(emb_conn(conn), name, pw, pwlen, pubkey,
                                     pubkey_len, sig, siglen);
}

static CK_RV emb_key_list(backend_conn_t *conn, hsm_uid_t uid,
                          hsm_key_ref_t **keys, size_t *n,
                          uint8_t digest[HSM_DIGEST_LEN])
{
    return hsm_key_list(emb_conn(conn), uid, keys, n, digest);
}

static CK_RV emb_key_info(backend_conn_t *conn, hsm_oid_t oid, hsm_uid_t *owner,
                          hsm_uid_t **shared, size_t *nshared)
{
    return hsm_key_info(emb_conn(conn), oid, owner, shared, nshared);
}

static CK_RV emb_audit_read(backend_conn_t *conn, uint64_t after, size_t max,
                            hsm_audit_record_t **recs, size_t *n)
{
    return hsm_audit_read(emb_conn(conn), after, max, recs, n);
}

static CK_RV emb_audit_verify(backend_conn_t *conn, hsm_audit_check_t *check)
{
    return hsm_audit_verify(emb_conn(conn), check);
}

static CK_RV emb_object_set_trusted(backend_conn_t *conn, hsm_oid_t oid,
                                    bool trusted)
{
    return hsm_object_set_trusted(emb_conn(conn), oid, trusted);
}

/* No server: nothing else connects to a store in this process. */
static CK_RV emb_client_list(backend_conn_t *conn, backend_client_t **list,
                             size_t *n)
{
    (void)conn;
    *list = NULL;
    *n = 0;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

/* One core in this process: no other server to carry a login to. */
static CK_RV emb_login_ticket(backend_conn_t *conn, uint8_t out[HSM_TICKET_LEN])
{
    (void)conn;
    (void)out;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV emb_login_redeem(backend_conn_t *conn, const uint8_t *ticket,
                              size_t len)
{
    (void)conn;
    (void)ticket;
    (void)len;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

/* The core answers CKR_FUNCTION_NOT_SUPPORTED without a cluster key. */
static CK_RV emb_masked_extract(backend_conn_t *conn, hsm_oid_t oid,
                                uint8_t **file, size_t *len)
{
    return hsm_masked_extract(emb_conn(conn), oid, file, len);
}

static CK_RV emb_masked_insert(backend_conn_t *conn, const uint8_t *file,
                               size_t len, hsm_oid_t *oid)
{
    return hsm_masked_insert(emb_conn(conn), file, len, oid);
}

static CK_RV emb_backup(backend_conn_t *conn, uint8_t **file, size_t *len,
                        hsm_backup_info_t *info)
{
    return hsm_backup(emb_conn(conn), file, len, info);
}

static CK_RV emb_restore(backend_conn_t *conn, const uint8_t *file, size_t len,
                         hsm_backup_info_t *info, size_t *nodes)
{
    *nodes = 1;
    return hsm_restore(emb_conn(conn), file, len, info);
}

/* No cluster: the store is this process's alone. */
static CK_RV emb_cluster_status(backend_conn_t *conn, backend_cluster_t *out)
{
    (void)conn;
    (void)out;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV emb_cluster_add(backend_conn_t *conn, uint64_t id,
                             const char *address)
{
    (void)conn;
    (void)id;
    (void)address;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV emb_cluster_remove(backend_conn_t *conn, uint64_t id)
{
    (void)conn;
    (void)id;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV emb_cluster_transfer(backend_conn_t *conn, uint64_t id)
{
    (void)conn;
    (void)id;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

/* ------------------------------------------------------- quorum */

static CK_RV emb_quorum_register_key(backend_conn_t *conn, const char *name,
                                     const uint8_t *reg_token,
                                     size_t token_len, const uint8_t *sig,
                                     size_t sig_len, const uint8_t *pubkey,
                                     size_t pubkey_len)
{
    return hsm_quorum_register_key(emb_conn(conn), name, reg_token, token_len,
                                   sig, sig_len, pubkey, pubkey_len);
}

static CK_RV emb_quorum_set_m(backend_conn_t *conn, unsigned service,
                              unsigned m)
{
    return hsm_quorum_set_m(emb_conn(conn), service, m);
}

static CK_RV emb_quorum_get_m(backend_conn_t *conn, unsigned service,
                              unsigned *m)
{
    return hsm_quorum_get_m(emb_conn(conn), service, m);
}

static CK_RV emb_quorum_get_token(backend_conn_t *conn, unsigned service,
                                  const char *name, uint8_t *token,
                                  size_t *len)
{
    return hsm_quorum_get_token(emb_conn(conn), service, name, token, len);
}

static CK_RV emb_quorum_approve(backend_conn_t *conn, const uint8_t *token,
                                size_t token_len,
                                const hsm_quorum_approval_t *a, size_t n,
                                CK_RV *results)
{
    return hsm_quorum_approve(emb_conn(conn), token, token_len, a, n, results);
}

static CK_RV emb_quorum_list_tokens(backend_conn_t *conn,
                                    hsm_quorum_token_info_t **out, size_t *n)
{
    return hsm_quorum_list_tokens(emb_conn(conn), out, n);
}

static CK_RV emb_quorum_del_token(backend_conn_t *conn, uint32_t id)
{
    return hsm_quorum_del_token(emb_conn(conn), id);
}

const struct backend_ops backend_embedded_ops = {
    .kind = "embedded",
    .close = emb_close,
    .token_info = emb_token_info,
    .init_token = emb_init_token,
    .mech_list = emb_mech_list,
    .mech_info = emb_mech_info,
    .attrs_free = emb_attrs_free,
    .template_parse = emb_template_parse,
    .conn_open = emb_conn_open,
    .conn_close = emb_conn_close,
    .conn_lost = emb_conn_lost,
    .conn_user_type = emb_conn_user_type,
    .login = emb_login,
    .logout = emb_logout,
    .set_password = emb_set_password,
    .init_pin = emb_init_pin,
    .user_list = emb_user_list,
    .user_create = emb_user_create,
    .user_delete = emb_user_delete,
    .context_login = emb_context_login,
    .session_open = emb_session_open,
    .session_close = emb_session_close,
    .object_create = emb_object_create,
    .object_copy = emb_object_copy,
    .object_destroy = emb_object_destroy,
    .object_size = emb_object_size,
    .object_get = emb_object_get,
    .object_set = emb_object_set,
    .object_find = emb_object_find,
    .object_is_private = emb_object_is_private,
    .object_share = emb_object_share,
    .op_init = emb_op_init,
    .op_init_iv = emb_op_init_iv,
    .op_output_len = emb_op_output_len,
    .op_oneshot = emb_op_oneshot,
    .op_update = emb_op_update,
    .op_final = emb_op_final,
    .op_verify = emb_op_verify,
    .op_digest_key = emb_op_digest_key,
    .op_abort = emb_op_abort,
    .generate_key = emb_generate_key,
    .generate_key_pair = emb_generate_key_pair,
    .derive_key = emb_derive_key,
    .wrap_key = emb_wrap_key,
    .unwrap_key = emb_unwrap_key,
    .msg_init = emb_msg_init,
    .msg_oneshot = emb_msg_oneshot,
    .msg_begin = emb_msg_begin,
    .msg_next = emb_msg_next,
    .msg_output_len = emb_msg_output_len,
    .msg_final = emb_msg_final,
    .msg_abort = emb_msg_abort,
    .random = emb_random,
    .user_set_password = emb_user_set_password,
    .key_list = emb_key_list,
    .key_info = emb_key_info,
    .audit_read = emb_audit_read,
    .audit_verify = emb_audit_verify,
    .object_set_trusted = emb_object_set_trusted,
    .client_list = emb_client_list,
    .cluster_status = emb_cluster_status,
    .masked_extract = emb_masked_extract,
    .masked_insert = emb_masked_insert,
    .backup = emb_backup,
    .restore = emb_restore,
    .cluster_add = emb_cluster_add,
    .cluster_remove = emb_cluster_remove,
    .cluster_transfer = emb_cluster_transfer,
    .quorum_register_key = emb_quorum_register_key,
    .quorum_set_m = emb_quorum_set_m,
    .quorum_get_m = emb_quorum_get_m,
    .quorum_get_token = emb_quorum_get_token,
    .quorum_approve = emb_quorum_approve,
    .quorum_list_tokens = emb_quorum_list_tokens,
    .quorum_del_token = emb_quorum_del_token,
    .login_challenge = emb_login_challenge,
    .login_2fa = emb_login_2fa,
    .user_create_2fa = emb_user_create_2fa,
    .user_set_password_2fa = emb_user_set_password_2fa,
    .login_ticket = emb_login_ticket,
    .login_redeem = emb_login_redeem,
};
