/*
 * mechtest.h - the unit suites' way into the core's mechanism calls:
 * the tests build their mechanisms as applications do (CK_MECHANISM and
 * the PKCS#11 parameter structs), and these wrappers decode them with the
 * codec (common/mechparam.h) as the front end does, call hsm.h with the
 * decoded hsm_mech_t and free it. A parameter the codec refuses is
 * returned as the codec's CK_RV, where the front end would return it.
 */
#ifndef NIMBUS_TEST_MECHTEST_H
#define NIMBUS_TEST_MECHTEST_H

#include "common/mechparam.h"
#include "hsm/hsm.h"

static inline CK_RV t_op_init_iv(hsm_conn_t *c, hsm_sid_t sid,
                                 hsm_opkind_t kind, const CK_MECHANISM *m,
                                 hsm_oid_t key, uint8_t *iv, size_t ivroom,
                                 size_t *ivlen)
{
    hsm_mech_t d;
    CK_RV rv = hsm_mech_decode(m, &d);

    if (rv == CKR_OK) {
        rv = hsm_op_init_iv(c, sid, kind, &d, key, iv, ivroom, ivlen);
    }
    hsm_mech_free(&d);
    return rv;
}

static inline CK_RV t_op_init(hsm_conn_t *c, hsm_sid_t sid, hsm_opkind_t kind,
                              const CK_MECHANISM *m, hsm_oid_t key)
{
    hsm_mech_t d;
    CK_RV rv = hsm_mech_decode(m, &d);

    if (rv == CKR_OK) {
        rv = hsm_op_init(c, sid, kind, &d, key);
    }
    hsm_mech_free(&d);
    return rv;
}

static inline CK_RV t_generate_key(hsm_conn_t *c, hsm_sid_t sid,
                                   const CK_MECHANISM *m,
                                   const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                                   hsm_oid_t *oid)
{
    hsm_mech_t d;
    CK_RV rv = hsm_mech_decode(m, &d);

    if (rv == CKR_OK) {
        rv = hsm_generate_key(c, sid, &d, tmpl, count, oid);
    }
    hsm_mech_free(&d);
    return rv;
}

static inline CK_RV t_generate_key_pair(hsm_conn_t *c, hsm_sid_t sid,
                                        const CK_MECHANISM *m,
                                        const CK_ATTRIBUTE *pt, CK_ULONG pn,
                                        const CK_ATTRIBUTE *vt, CK_ULONG vn,
                                        hsm_oid_t *pub, hsm_oid_t *priv)
{
    hsm_mech_t d;
    CK_RV rv = hsm_mech_decode(m, &d);

    if (rv == CKR_OK) {
        rv = hsm_generate_key_pair(c, sid, &d, pt, pn, vt, vn, pub, priv);
    }
    hsm_mech_free(&d);
    return rv;
}

/* Handles inside the parameter are taken as object ids (the tests pass
 * object ids there, as the front end does after translating). */
static inline CK_RV t_derive_key(hsm_conn_t *c, hsm_sid_t sid,
                                 const CK_MECHANISM *m, hsm_oid_t base,
                                 const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                                 hsm_oid_t *oid)
{
    hsm_mech_t d;
    CK_RV rv = hsm_mech_decode(m, &d);

    if (rv == CKR_OK) {
        rv = hsm_derive_key(c, sid, &d, base, tmpl, count, oid);
    }
    hsm_mech_free(&d);
    return rv;
}

static inline CK_RV t_wrap_key(hsm_conn_t *c, hsm_sid_t sid,
                               const CK_MECHANISM *m, hsm_oid_t wrapping,
                               hsm_oid_t key, uint8_t **out, size_t *outlen)
{
    hsm_mech_t d;
    CK_RV rv = hsm_mech_decode(m, &d);

    if (rv == CKR_OK) {
        rv = hsm_wrap_key(c, sid, &d, wrapping, key, out, outlen);
    }
    hsm_mech_free(&d);
    return rv;
}

static inline CK_RV t_unwrap_key(hsm_conn_t *c, hsm_sid_t sid,
                                 const CK_MECHANISM *m, hsm_oid_t unwrapping,
                                 const uint8_t *in, size_t inlen,
                                 const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                                 hsm_oid_t *oid)
{
    hsm_mech_t d;
    CK_RV rv = hsm_mech_decode(m, &d);

    if (rv == CKR_OK) {
        rv =
            hsm_unwrap_key(c, sid, &d, unwrapping, in, inlen, tmpl, count, oid);
    }
    hsm_mech_free(&d);
    return rv;
}

static inline CK_RV t_msg_init(hsm_conn_t *c, hsm_sid_t sid, hsm_msgkind_t kind,
                               const CK_MECHANISM *m, hsm_oid_t key)
{
    hsm_mech_t d;
    CK_RV rv = hsm_mech_decode_type(m, &d);

    if (rv == CKR_OK) {
        rv = hsm_msg_init(c, sid, kind, &d, key);
    }
    hsm_mech_free(&d);
    return rv;
}

/* The message layouts differ in size, which names the mechanism here. */
static inline CK_RV t_msg_decode(hsm_msgkind_t kind, const void *param,
                                 size_t len, hsm_mech_t *d)
{
    CK_MECHANISM_TYPE type = len == sizeof(CK_GCM_MESSAGE_PARAMS) ? CKM_AES_GCM
                             : len == sizeof(CK_CCM_MESSAGE_PARAMS)
                                 ? CKM_AES_CCM
                                 : CKM_CHACHA20_POLY1305;

    return hsm_mech_decode_msg(type, param, (CK_ULONG)len,
                               kind == HSM_MSG_DECRYPT, d);
}

static inline CK_RV t_msg_oneshot(hsm_conn_t *c, hsm_sid_t sid,
                                  hsm_msgkind_t kind, const void *param,
                                  size_t paramlen, const uint8_t *aad,
                                  size_t aadlen, const uint8_t *in,
                                  size_t inlen, uint8_t *out, size_t *outlen,
                                  hsm_msg_result_t *res)
{
    hsm_mech_t d;
    CK_RV rv = t_msg_decode(kind, param, paramlen, &d);

    if (rv == CKR_OK) {
        rv = hsm_msg_oneshot(c, sid, kind, &d, aad, aadlen, in, inlen, out,
                             outlen, res);
    }
    hsm_mech_free(&d);
    return rv;
}

static inline CK_RV t_msg_begin(hsm_conn_t *c, hsm_sid_t sid,
                                hsm_msgkind_t kind, const void *param,
                                size_t paramlen, const uint8_t *aad,
                                size_t aadlen, hsm_msg_result_t *res)
{
    hsm_mech_t d;
    CK_RV rv = t_msg_decode(kind, param, paramlen, &d);

    if (rv == CKR_OK) {
        rv = hsm_msg_begin(c, sid, kind, &d, aad, aadlen, res);
    }
    hsm_mech_free(&d);
    return rv;
}

static inline CK_RV t_msg_next(hsm_conn_t *c, hsm_sid_t sid, hsm_msgkind_t kind,
                               const void *param, size_t paramlen,
                               const uint8_t *in, size_t inlen, bool last,
                               uint8_t *out, size_t *outlen,
                               hsm_msg_result_t *res)
{
    hsm_mech_t d;
    CK_RV rv = t_msg_decode(kind, param, paramlen, &d);

    if (rv == CKR_OK) {
        rv = hsm_msg_next(c, sid, kind, &d, in, inlen, last, out, outlen, res);
    }
    hsm_mech_free(&d);
    return rv;
}

#endif
