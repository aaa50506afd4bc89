/*
 * wrap.c - C_WrapKey and C_UnwrapKey (hsm.h), and the reading of the
 * template attributes.
 *
 * A secret key travels as its CKA_VALUE, a private key as a DER PKCS#8
 * PrivateKeyInfo. Encryption-based mechanisms (AES-ECB, -CBC, -CBC-PAD,
 * -GCM, AES key wrap, RSA PKCS#1 and OAEP, the cloud HSM's variants) use
 * the row's cipher family; ECB, CBC and CKM_AES_KEY_WRAP pad the key with
 * zeros to a whole block (KW: 8 bytes, so a key of any length wraps), and
 * unwrap truncates to the template's CKA_VALUE_LEN (or, for a private key,
 * to the DER length). CKM_RSA_AES_KEY_WRAP makes an ephemeral
 * AES key of ulAESKeyBits, wraps it with RSA-OAEP and the key with it by
 * RFC 5649 (output: the OAEP block, then the KWP block).
 *
 * Choices where the specification is silent: a wrap whose CK_GCM_PARAMS
 * IV is NULL or all zero is refused (CKR_MECHANISM_PARAM_INVALID): the IV
 * could not be returned, and a fixed IV under one key breaks GCM; use
 * CKM_CLOUDHSM_AES_GCM, which puts the IV it makes in the output (with
 * gcm_zero_iv = use, an all-zero IV is taken as given, as for C_Encrypt).
 * Wrapping a key one does not own is CKR_KEY_FUNCTION_NOT_PERMITTED (as using
 * a key one may not is elsewhere); a key the mechanism cannot carry (length)
 * is CKR_KEY_SIZE_RANGE.
 *
 * Locking: the keys are loaded and checked under hsm->lock; the crypto runs
 * without it; the new object is stored under it again.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/crypto/cops.h"
#include "hsm/internal.h"
#include "hsm/mech.h"

/* ------------------------------------------------------------ helpers */

static CK_RV copy_out(const uint8_t *v, size_t len, uint8_t **out,
                      size_t *outlen)
{
    *out = malloc(len > 0 ? len : 1);
    if (*out == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (len > 0) {
        memcpy(*out, v, len);
    }
    *outlen = len;
    return CKR_OK;
}

/* Runs one cipher family in one step (*out malloc'd). */
static CK_RV run_cipher(const cops_impl_t *impl, hsm_opkind_t kind,
                        cops_key_t *key, const cops_params_t *p,
                        const uint8_t *in, size_t inlen, uint8_t **out,
                        size_t *outlen)
{
    cops_op_t *op = NULL;
    size_t cap = 0;
    uint8_t *buf = NULL;
    CK_RV rv;

    *out = NULL;
    *outlen = 0;
    if ((rv = cops_op_new(impl, kind, key, p, &op)) != CKR_OK ||
        (rv = cops_op_output_len(op, false, inlen, &cap)) != CKR_OK) {
        goto out;
    }
    buf = malloc(cap > 0 ? cap : 1);
    if (buf == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    *outlen = cap;
    rv = cops_op_oneshot(op, in, inlen, buf, outlen);
    if (rv == CKR_OK) {
        *out = buf;
        buf = NULL;
    } else {
        *outlen = 0;
    }
out:
    util_free_wipe(buf, cap);
    cops_op_free(op);
    return rv;
}

/* A cops key for raw AES bytes. */
static CK_RV aes_key(const uint8_t *v, size_t len, cops_key_t **k)
{
    attr_list_t l = {0};
    CK_RV rv;

    if ((rv = attr_list_set_ulong(&l, CKA_CLASS, CKO_SECRET_KEY)) == CKR_OK &&
        (rv = attr_list_set_ulong(&l, CKA_KEY_TYPE, CKK_AES)) == CKR_OK &&
        (rv = attr_list_set(&l, CKA_VALUE, v, len)) == CKR_OK) {
        rv = cops_key_from_attrs(&l, k);
    }
    attr_list_free(&l);
    return rv;
}

/* Whether every attribute of a serialized template is in l, same value. */
static bool matches_template(const attr_list_t *l, const uint8_t *blob,
                             size_t len)
{
    attr_list_t t = {0};
    bool ok = true;

    if (blob == NULL || len == 0) {
        return true;
    }
    if (attr_list_deserialize(blob, len, &t) != CKR_OK) {
        return false;
    }
    for (size_t i = 0; i < t.n && ok; i++) {
        const attr_t *a = attr_list_find(l, t.v[i].type);

        ok = a != NULL && a->len == t.v[i].len &&
             (a->len == 0 || memcmp(a->value, t.v[i].value, a->len) == 0);
    }
    attr_list_free(&t);
    return ok;
}

/* The length of the DER element at the start of in (0: none). */
static size_t der_total(const uint8_t *in, size_t len)
{
    size_t nb, v = 0;

    if (len < 2 || in[0] != 0x30) {
        return 0;
    }
    if (in[1] < 0x80) {
        return 2 + (size_t)in[1] <= len ? 2 + (size_t)in[1] : 0;
    }
    nb = in[1] & 0x7F;
    if (nb == 0 || nb > 3 || 2 + nb > len) {
        return 0;
    }
    for (size_t i = 0; i < nb; i++) {
        v = (v << 8) | in[2 + i];
    }
    return 2 + nb + v <= len ? 2 + nb + v : 0;
}

static CK_RV wrapping_rv(CK_RV rv, bool wrap)
{
    switch (rv) {
    case CKR_KEY_HANDLE_INVALID:
        return wrap ? CKR_WRAPPING_KEY_HANDLE_INVALID
                    : CKR_UNWRAPPING_KEY_HANDLE_INVALID;
    case CKR_KEY_TYPE_INCONSISTENT:
        return wrap ? CKR_WRAPPING_KEY_TYPE_INCONSISTENT
                    : CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT;
    case CKR_KEY_SIZE_RANGE:
        return wrap ? CKR_WRAPPING_KEY_SIZE_RANGE
                    : CKR_UNWRAPPING_KEY_SIZE_RANGE;
    default:
        return rv;
    }
}

/* The row and its checked parameter for C_WrapKey / C_UnwrapKey. */
static CK_RV wrap_row(const hsm_t *hsm, const hsm_mech_t *mech, CK_FLAGS f,
                      const mech_row_t **row, cops_params_t *p)
{
    CK_RV rv;

    *row = mech_find_enabled(hsm, mech->type);
    if (*row == NULL || ((*row)->flags & f) == 0 ||
        (*row)->wrap_kind == MECH_WRAP_NONE) {
        return CKR_MECHANISM_INVALID;
    }
    if ((rv = mech_check_params(*row, mech, p)) != CKR_OK) {
        return rv;
    }
    if (p->iv_generate) {
        if (p->iv == NULL || hsm->cfg.gcm_zero_iv_generate) {
            return CKR_MECHANISM_PARAM_INVALID; /* see the header comment */
        }
        p->iv_generate = false;
    }
    return CKR_OK;
}

/* ------------------------------------------------------------ wrap */

CK_RV hsm_wrap_key(hsm_conn_t *conn, hsm_sid_t sid, const hsm_mech_t *mech,
                   hsm_oid_t wrapping, hsm_oid_t key, uint8_t **out,
                   size_t *outlen)
{
    HSM_CALL_SESSION(conn, sid);
    hsm_t *hsm = conn->hsm;
    const mech_row_t *row = NULL;
    struct hsm_session *s;
    struct hsm_obj wo, ko;
    cops_key_t *wk = NULL, *kk = NULL, *ek = NULL;
    cops_params_t p;
    uint8_t *plain = NULL, *ct1 = NULL, *ct2 = NULL;
    size_t plen = 0, l1 = 0, l2 = 0;
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_RV rv;

    return_val_if_fail(mech != NULL && out != NULL && outlen != NULL,
                       CKR_GENERAL_ERROR);
    *out = NULL;
    *outlen = 0;
    memset(&wo, 0, sizeof(wo));
    memset(&ko, 0, sizeof(ko));
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_begin_locked(conn, sid, HSM_OP_KEY_MANAGEMENT, &s)) !=
            CKR_OK ||
        (rv = wrap_row(hsm, mech, CKF_WRAP, &row, &p)) != CKR_OK) {
        goto unlock;
    }
    rv = hsm_ops_key_locked(conn, row, wrapping, HSM_ACCESS_USE, CKA_WRAP, &wo,
                            &wk);
    if (rv != CKR_OK) {
        rv = wrapping_rv(rv, true);
        goto unlock;
    }
    rv = hsm_key_get_locked(conn, key, HSM_ACCESS_OWN, &ko);
    if (rv != CKR_OK) {
        goto unlock;
    }
    {
        const attr_list_t *kl = hsm_obj_attrs(&ko);
        const attr_list_t *wl = hsm_obj_attrs(&wo);
        const attr_t *wt = attr_list_find(wl, CKA_WRAP_TEMPLATE);

        cls = attr_list_ulong(kl, CKA_CLASS, CKO_DATA);
        if (cls != CKO_SECRET_KEY && cls != CKO_PRIVATE_KEY) {
            rv = CKR_KEY_NOT_WRAPPABLE;
        } else if (!attr_list_bool(kl, CKA_EXTRACTABLE, false)) {
            rv = CKR_KEY_UNEXTRACTABLE;
        } else if (attr_list_bool(kl, CKA_WRAP_WITH_TRUSTED, false) &&
                   !attr_list_bool(wl, CKA_TRUSTED, false)) {
            rv = CKR_KEY_NOT_WRAPPABLE;
        } else if (wt != NULL && !matches_template(kl, wt->value, wt->len)) {
            rv = CKR_KEY_NOT_WRAPPABLE;
        } else if (cls == CKO_SECRET_KEY) {
            const attr_t *v = attr_list_find(kl, CKA_VALUE);

            rv = v != NULL ? copy_out(v->value, v->len, &plain, &plen)
                           : CKR_KEY_NOT_WRAPPABLE;
        } else {
            rv = hsm_keycache_get_locked(conn, &ko, &kk);
        }
    }
unlock:
    pthread_mutex_unlock(&hsm->lock);
    hsm_obj_clear(&wo);
    hsm_obj_clear(&ko);
    if (rv != CKR_OK) {
        goto out;
    }
    if (cls == CKO_PRIVATE_KEY &&
        (rv = cops_key_to_pkcs8(kk, &plain, &plen)) != CKR_OK) {
        goto out;
    }
    if (row->wrap_pad > 0 && plen % row->wrap_pad != 0) {
        size_t padded = plen + row->wrap_pad - plen % row->wrap_pad;
        uint8_t *nb = calloc(1, padded);

        if (nb == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        memcpy(nb, plain, plen);
        util_free_wipe(plain, plen);
        plain = nb;
        plen = padded;
    }
    if (row->wrap_kind == MECH_WRAP_CIPHER) {
        rv = run_cipher(row->wrap, HSM_OPK_ENCRYPT, wk, &p, plain, plen, out,
                        outlen);
    } else {
        /* CKM_RSA_AES_KEY_WRAP */
        uint8_t ek_bytes[32];
        cops_params_t kp;

        memset(&kp, 0, sizeof(kp));
        if ((rv = crypto_random(ek_bytes, p.wrap_aes_len)) == CKR_OK &&
            (rv = aes_key(ek_bytes, p.wrap_aes_len, &ek)) == CKR_OK &&
            (rv = run_cipher(&cops_rsa_oaep, HSM_OPK_ENCRYPT, wk, &p, ek_bytes,
                             p.wrap_aes_len, &ct1, &l1)) == CKR_OK &&
            (rv = run_cipher(&cops_aes_kwp, HSM_OPK_ENCRYPT, ek, &kp, plain,
                             plen, &ct2, &l2)) == CKR_OK) {
            *out = malloc(l1 + l2);
            if (*out == NULL) {
                rv = CKR_HOST_MEMORY;
            } else {
                memcpy(*out, ct1, l1);
                memcpy(*out + l1, ct2, l2);
                *outlen = l1 + l2;
            }
        }
        crypto_wipe(ek_bytes, sizeof(ek_bytes));
    }
    if (rv == CKR_DATA_LEN_RANGE) {
        rv = CKR_KEY_SIZE_RANGE;
    }
    if (rv == CKR_OK) {
        pthread_mutex_lock(&hsm->lock);
        hsm_audit_last_locked(hsm, conn->uid, "wrap", key, rv);
        pthread_mutex_unlock(&hsm->lock);
    }
out:
    if (rv != CKR_OK) {
        free(*out);
        *out = NULL;
        *outlen = 0;
    }
    util_free_wipe(plain, plen);
    free(ct1);
    free(ct2);
    cops_key_unref(wk);
    cops_key_unref(kk);
    cops_key_unref(ek);
    return rv;
}

/* ------------------------------------------------------------ unwrap */

/* The key bytes inside a wrapped blob (*plain malloc'd). */
static CK_RV unwrap_bytes(const mech_row_t *row, cops_key_t *uk,
                          const cops_params_t *p, const uint8_t *in,
                          size_t inlen, uint8_t **plain, size_t *plen)
{
    cops_key_t *ek = NULL;
    uint8_t *ekb = NULL;
    size_t ekl = 0, k;
    cops_params_t kp;
    CK_RV rv;

    if (row->wrap_kind == MECH_WRAP_CIPHER) {
        return run_cipher(row->wrap, HSM_OPK_DECRYPT, uk, p, in, inlen, plain,
                          plen);
    }
    /* CKM_RSA_AES_KEY_WRAP: the OAEP block is the modulus length. */
    k = (cops_key_size(uk) + 7) / 8;
    if (inlen <= k) {
        return CKR_WRAPPED_KEY_LEN_RANGE;
    }
    memset(&kp, 0, sizeof(kp));
    rv = run_cipher(&cops_rsa_oaep, HSM_OPK_DECRYPT, uk, p, in, k, &ekb, &ekl);
    if (rv == CKR_OK && ekl != p->wrap_aes_len) {
        rv = CKR_WRAPPED_KEY_INVALID;
    }
    if (rv == CKR_OK && (rv = aes_key(ekb, ekl, &ek)) == CKR_OK) {
        rv = run_cipher(&cops_aes_kwp, HSM_OPK_DECRYPT, ek, &kp, in + k,
                        inlen - k, plain, plen);
    }
    util_free_wipe(ekb, ekl);
    cops_key_unref(ek);
    return rv;
}

static CK_RV unwrap_rv(CK_RV rv)
{
    switch (rv) {
    case CKR_ENCRYPTED_DATA_INVALID:
        return CKR_WRAPPED_KEY_INVALID;
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
    case CKR_DATA_LEN_RANGE:
        return CKR_WRAPPED_KEY_LEN_RANGE;
    default:
        return rv;
    }
}

/* The new secret key's attributes from its bytes. */
static CK_RV unwrap_secret(const attr_caller_t *caller, const mech_row_t *row,
                           const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                           uint8_t *plain, size_t plen, attr_list_t *l)
{
    const attr_t *vl;
    size_t len = plen;
    CK_RV rv;

    rv = attrs_new_object(ATTR_OP_UNWRAP, caller, CKO_SECRET_KEY,
                          CK_UNAVAILABLE_INFORMATION, tmpl, count, l);
    if (rv != CKR_OK) {
        return rv;
    }
    vl = attr_list_find(l, CKA_VALUE_LEN);
    if (vl != NULL) {
        CK_ULONG want = attr_list_ulong(l, CKA_VALUE_LEN, 0);

        /* Zero-padding rows truncate the padding; others are exact. */
        if (want > plen || (row->wrap_pad == 0 && want != plen)) {
            return CKR_TEMPLATE_INCONSISTENT;
        }
        len = want;
    } else if (attr_list_ulong(l, CKA_KEY_TYPE, 0) == CKK_DES3 && plen > 24 &&
               row->wrap_pad > 0) {
        len = 24;
    }
    if (attrs_check_value(l, CKA_VALUE, plain, len) != CKR_OK) {
        return CKR_WRAPPED_KEY_INVALID;
    }
    if ((rv = attr_list_set(l, CKA_VALUE, plain, len)) != CKR_OK ||
        (rv = attr_list_set_ulong(l, CKA_VALUE_LEN, len)) != CKR_OK) {
        return rv;
    }
    return CKR_OK;
}

/* The new private key's attributes from a PKCS#8 blob. */
static CK_RV unwrap_private(const attr_caller_t *caller, const mech_row_t *row,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                            const uint8_t *plain, size_t plen, attr_list_t *l)
{
    attr_list_t vals = {0};
    cops_key_t *check = NULL;
    CK_KEY_TYPE kt = CK_UNAVAILABLE_INFORMATION;
    size_t len = plen;
    CK_RV rv;

    if (row->wrap_pad > 0) {
        len = der_total(plain, plen); /* zero padding after the DER */
        if (len == 0) {
            return CKR_WRAPPED_KEY_INVALID;
        }
    }
    if ((rv = cops_pkcs8_to_attrs(plain, len, &kt, &vals)) != CKR_OK) {
        goto out;
    }
    rv = attrs_new_object(ATTR_OP_UNWRAP, caller, CKO_PRIVATE_KEY, kt, tmpl,
                          count, l);
    if (rv != CKR_OK) {
        goto out;
    }
    for (size_t i = 0; i < vals.n && rv == CKR_OK; i++) {
        rv = attr_list_set(l, vals.v[i].type, vals.v[i].value, vals.v[i].len);
    }
    /* The parts must make a key (and the template's key type agree). */
    if (rv == CKR_OK && cops_key_from_attrs(l, &check) != CKR_OK) {
        rv = CKR_WRAPPED_KEY_INVALID;
    }
out:
    cops_key_unref(check);
    attr_list_free(&vals);
    return rv;
}

/*
 * Unwrapping with a cipher (AES ECB/CBC/CBC-PAD/GCM, RSA PKCS#1 and OAEP:
 * not a key-wrap mechanism) decrypts whatever ciphertext the caller hands
 * in. With a key whose CKA_DECRYPT is FALSE the result must never reach
 * the caller in clear: not directly (CKA_SENSITIVE FALSE), and not through
 * a second hop (CKA_EXTRACTABLE TRUE: wrapped under the caller's own key,
 * then unwrapped as not sensitive). So such a key comes in sensitive and
 * not extractable: a template asking otherwise is refused with
 * CKR_TEMPLATE_INCONSISTENT (the template is what would make it
 * decryption), and one silent on CKA_EXTRACTABLE gets FALSE. Key-wrap
 * mechanisms check their blob's integrity, so a blob not made by a wrap
 * under the same key does not unwrap: they are not concerned.
 */
static bool unwrap_by_cipher_only(const mech_row_t *row, bool may_decrypt)
{
    return !may_decrypt && !mech_is_key_wrap(row);
}

static bool unwrap_is_decryption(const mech_row_t *row, bool may_decrypt,
                                 const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                                 const attr_list_t *l)
{
    if (!unwrap_by_cipher_only(row, may_decrypt)) {
        return false;
    }
    if (l != NULL) {
        return !attr_list_bool(l, CKA_SENSITIVE, true) ||
               attr_list_bool(l, CKA_EXTRACTABLE, true);
    }
    for (CK_ULONG i = 0; i < count; i++) {
        if ((tmpl[i].type == CKA_SENSITIVE ||
             tmpl[i].type == CKA_EXTRACTABLE) &&
            tmpl[i].ulValueLen == sizeof(CK_BBOOL) && tmpl[i].pValue != NULL &&
            *(const CK_BBOOL *)tmpl[i].pValue !=
                (tmpl[i].type == CKA_SENSITIVE ? CK_TRUE : CK_FALSE)) {
            return true;
        }
    }
    return false;
}

CK_RV hsm_unwrap_key(hsm_conn_t *conn, hsm_sid_t sid, const hsm_mech_t *mech,
                     hsm_oid_t unwrapping, const uint8_t *in, size_t inlen,
                     const CK_ATTRIBUTE *tmpl, CK_ULONG count, hsm_oid_t *oid)
{
    HSM_CALL_SESSION(conn, sid);
    hsm_t *hsm = conn->hsm;
    const mech_row_t *row = NULL;
    struct hsm_session *s;
    struct hsm_obj uo;
    cops_key_t *uk = NULL;
    cops_params_t p;
    uint8_t *plain = NULL, *blob = NULL;
    size_t plen = 0, bloblen = 0;
    attr_list_t l = {0}, kept = {0};
    CK_ATTRIBUTE *merged = NULL;
    CK_ULONG mcount = 0;
    CK_OBJECT_CLASS cls = CK_UNAVAILABLE_INFORMATION;
    bool may_decrypt = false;
    CK_RV rv;

    return_val_if_fail(mech != NULL && oid != NULL, CKR_GENERAL_ERROR);
    memset(&uo, 0, sizeof(uo));
    if (inlen == 0 || inlen > COPS_AEAD_HOLD_MAX) {
        return CKR_WRAPPED_KEY_LEN_RANGE;
    }
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_begin_locked(conn, sid, HSM_OP_KEY_MANAGEMENT, &s)) !=
            CKR_OK ||
        (rv = wrap_row(hsm, mech, CKF_UNWRAP, &row, &p)) != CKR_OK) {
        goto unlock;
    }
    rv = hsm_ops_key_locked(conn, row, unwrapping, HSM_ACCESS_USE, CKA_UNWRAP,
                            &uo, &uk);
    if (rv != CKR_OK) {
        rv = wrapping_rv(rv, false);
        goto unlock;
    }
    may_decrypt = attr_list_bool(hsm_obj_attrs(&uo), CKA_DECRYPT, false);
    {
        const attr_t *ut =
            attr_list_find(hsm_obj_attrs(&uo), CKA_UNWRAP_TEMPLATE);

        if (ut != NULL && ut->len > 0) {
            rv = copy_out(ut->value, ut->len, &blob, &bloblen);
        }
    }
unlock:
    pthread_mutex_unlock(&hsm->lock);
    hsm_obj_clear(&uo);
    if (rv != CKR_OK) {
        goto out;
    }
    if ((rv = hsm_template_merge(tmpl, count, blob, bloblen, &kept, &merged,
                                 &mcount)) != CKR_OK) {
        goto out;
    }
    {
        const CK_ATTRIBUTE *c = attr_tmpl_find(merged, mcount, CKA_CLASS);

        if (c != NULL && c->ulValueLen == sizeof(CK_OBJECT_CLASS) &&
            c->pValue != NULL) {
            memcpy(&cls, c->pValue, sizeof(cls));
        }
    }
    if (cls != CKO_SECRET_KEY && cls != CKO_PRIVATE_KEY) {
        rv = cls == CK_UNAVAILABLE_INFORMATION ? CKR_TEMPLATE_INCOMPLETE
                                               : CKR_TEMPLATE_INCONSISTENT;
        goto out;
    }
    /* Checked before anything is decrypted, so that not even the error
     * codes of a padding check answer for a key that may not decrypt. */
    if (unwrap_is_decryption(row, may_decrypt, merged, mcount, NULL)) {
        rv = CKR_TEMPLATE_INCONSISTENT;
        goto out;
    }
    rv = unwrap_rv(unwrap_bytes(row, uk, &p, in, inlen, &plain, &plen));
    if (rv != CKR_OK) {
        goto out;
    }
    if (cls == CKO_SECRET_KEY) {
        rv = unwrap_secret(hsm_cu_caller(hsm), row, merged, mcount, plain, plen,
                           &l);
    } else {
        rv = unwrap_private(hsm_cu_caller(hsm), row, merged, mcount, plain,
                            plen, &l);
    }
    if (rv != CKR_OK) {
        goto out;
    }
    if (unwrap_by_cipher_only(row, may_decrypt) &&
        attr_tmpl_find(merged, mcount, CKA_EXTRACTABLE) == NULL &&
        (rv = attr_list_set_bool(&l, CKA_EXTRACTABLE, false)) != CKR_OK) {
        goto out;
    }
    if (unwrap_is_decryption(row, may_decrypt, NULL, 0, &l)) {
        rv = CKR_TEMPLATE_INCONSISTENT;
        goto out;
    }
    /* What the unwrapping key's template fixed stays fixed. */
    if ((rv = attrs_fix(&l, &kept)) != CKR_OK) {
        goto out;
    }
    /* PKCS#11 3.0 section 4.10: an unwrapped key was outside the token. */
    if ((rv = attr_list_set_bool(&l, CKA_LOCAL, false)) != CKR_OK ||
        (rv = attr_list_set_bool(&l, CKA_ALWAYS_SENSITIVE, false)) != CKR_OK ||
        (rv = attr_list_set_bool(&l, CKA_NEVER_EXTRACTABLE, false)) != CKR_OK) {
        goto out;
    }
    pthread_mutex_lock(&hsm->lock);
    rv = hsm_begin_locked(conn, sid, HSM_OP_KEY_MANAGEMENT, &s);
    if (rv == CKR_OK) {
        rv = hsm_obj_add_locked(conn, s, &l, "unwrap", oid);
    }
    pthread_mutex_unlock(&hsm->lock);
out:
    util_free_wipe(plain, plen);
    free(blob);
    free(merged);
    attr_list_free(&kept);
    attr_list_free(&l);
    cops_key_unref(uk);
    return rv;
}

/* ------------------------------------------------------------ templates */

CK_RV hsm_template_parse(const uint8_t *blob, size_t len, hsm_attr_t **attrs,
                         size_t *n)
{
    attr_list_t l = {0};
    hsm_attr_t *out;
    CK_RV rv;

    *attrs = NULL;
    *n = 0;
    if (len == 0) {
        return CKR_OK;
    }
    if ((rv = attr_list_deserialize(blob, len, &l)) != CKR_OK) {
        return rv;
    }
    out = calloc(l.n > 0 ? l.n : 1, sizeof(*out));
    if (out == NULL) {
        attr_list_free(&l);
        return CKR_HOST_MEMORY;
    }
    for (size_t i = 0; i < l.n; i++) {
        out[i].type = l.v[i].type;
        out[i].status = HSM_ATTR_OK;
        out[i].value = l.v[i].value; /* moved */
        out[i].len = l.v[i].len;
        l.v[i].value = NULL;
        l.v[i].len = 0;
    }
    *attrs = out;
    *n = l.n;
    attr_list_free(&l);
    return CKR_OK;
}
