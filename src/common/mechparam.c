/*
 * mechparam.c - CK_MECHANISM <-> hsm_mech_t (mechparam.h).
 *
 * One table says which layout each mechanism's parameter has; one decoder
 * per layout copies it. Every decoder reads the caller's structure only
 * after its exact size has been checked against ulParameterLen, and every
 * pointer inside only for the length the caller gave with it, after that
 * length has been checked against the caps.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/mechparam.h"
#include "common/util.h"
#include "nimbus/pkcs11-vendor.h"

/* The 2.40 CK_GCM_PARAMS, without ulIvBits (Java's SunPKCS11 sends it
 * first): told apart from the 3.0 layout by ulParameterLen. */
typedef struct {
    CK_BYTE_PTR pIv;
    CK_ULONG ulIvLen;
    CK_BYTE_PTR pAAD;
    CK_ULONG ulAADLen;
    CK_ULONG ulTagBits;
} mp_gcm_short_t;

#define BAD CKR_MECHANISM_PARAM_INVALID

/* ------------------------------------------------------------ bytes */

static CK_RV bytes_in(const void *ptr, CK_ULONG len, hsm_bytes_t *b)
{
    b->present = ptr != NULL;
    if (len == 0) {
        return CKR_OK;
    }
    if (ptr == NULL || len > HSM_MECH_BYTES_MAX) {
        return BAD;
    }
    b->data = malloc(len);
    if (b->data == NULL) {
        return CKR_HOST_MEMORY;
    }
    memcpy(b->data, ptr, len);
    b->len = len;
    return CKR_OK;
}

static CK_RV bytes_dup(const hsm_bytes_t *src, hsm_bytes_t *dst)
{
    *dst = *src;
    dst->data = NULL;
    dst->len = 0;
    if (src->len == 0) {
        return CKR_OK;
    }
    dst->data = malloc(src->len);
    if (dst->data == NULL) {
        return CKR_HOST_MEMORY;
    }
    memcpy(dst->data, src->data, src->len);
    dst->len = src->len;
    return CKR_OK;
}

static void bytes_free(hsm_bytes_t *b)
{
    util_free_wipe(b->data, b->len);
    b->data = NULL;
    b->len = 0;
}

/* The parameter as a struct of exactly len bytes, else NULL. */
static const void *param_of(const CK_MECHANISM *m, size_t len)
{
    if (m->pParameter == NULL || m->ulParameterLen != len) {
        return NULL;
    }
    return m->pParameter;
}

/* ------------------------------------------------------------ decoders */

typedef CK_RV (*mp_decode_fn)(const CK_MECHANISM *m, hsm_mech_t *out);

static CK_RV d_bytes(const CK_MECHANISM *m, hsm_mech_t *out)
{
    out->layout = HSM_MP_BYTES;
    return bytes_in(m->pParameter, m->ulParameterLen, &out->u.bytes);
}

static CK_RV d_ulong(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_ULONG *v = param_of(m, sizeof(*v));

    if (v == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_ULONG;
    out->u.ulong = *v;
    return CKR_OK;
}

static CK_RV d_object(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_OBJECT_HANDLE *h = param_of(m, sizeof(*h));

    if (h == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_OBJECT;
    out->u.object = *h;
    return CKR_OK;
}

static CK_RV d_pss(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_RSA_PKCS_PSS_PARAMS *p = param_of(m, sizeof(*p));

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_RSA_PSS;
    out->u.pss.hash_alg = p->hashAlg;
    out->u.pss.mgf = p->mgf;
    out->u.pss.salt_len = p->sLen;
    return CKR_OK;
}

static CK_RV oaep_in(const CK_RSA_PKCS_OAEP_PARAMS *p, hsm_mp_oaep_t *o)
{
    o->hash_alg = p->hashAlg;
    o->mgf = p->mgf;
    o->source = p->source;
    return bytes_in(p->pSourceData, p->ulSourceDataLen, &o->source_data);
}

static CK_RV d_oaep(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_RSA_PKCS_OAEP_PARAMS *p = param_of(m, sizeof(*p));

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_RSA_OAEP;
    return oaep_in(p, &out->u.oaep);
}

static CK_RV d_eddsa(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_EDDSA_PARAMS *p = param_of(m, sizeof(*p));

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_EDDSA;
    out->u.eddsa.ph_flag = p->phFlag;
    return bytes_in(p->pContextData, p->ulContextDataLen,
                    &out->u.eddsa.context);
}

static CK_RV d_ecdh1(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_ECDH1_DERIVE_PARAMS *p = param_of(m, sizeof(*p));
    CK_RV rv;

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_ECDH1;
    out->u.ecdh1.kdf = p->kdf;
    if ((rv = bytes_in(p->pSharedData, p->ulSharedDataLen,
                       &out->u.ecdh1.shared_data)) != CKR_OK) {
        return rv;
    }
    return bytes_in(p->pPublicData, p->ulPublicDataLen,
                    &out->u.ecdh1.public_data);
}

static CK_RV d_ctr(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_AES_CTR_PARAMS *p = param_of(m, sizeof(*p));

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_AES_CTR;
    out->u.ctr.counter_bits = p->ulCounterBits;
    memcpy(out->u.ctr.cb, p->cb, sizeof(out->u.ctr.cb));
    return CKR_OK;
}

static CK_RV d_gcm(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_GCM_PARAMS *g = param_of(m, sizeof(*g));
    const mp_gcm_short_t *s = param_of(m, sizeof(*s));
    const void *iv, *aad;
    CK_ULONG aadlen;
    CK_RV rv;

    out->layout = HSM_MP_GCM;
    if (g != NULL) {
        iv = g->pIv;
        out->u.gcm.iv_len = g->ulIvLen;
        out->u.gcm.iv_bits = g->ulIvBits;
        aad = g->pAAD;
        aadlen = g->ulAADLen;
        out->u.gcm.tag_bits = g->ulTagBits;
    } else if (s != NULL) {
        iv = s->pIv;
        out->u.gcm.iv_len = s->ulIvLen;
        aad = s->pAAD;
        aadlen = s->ulAADLen;
        out->u.gcm.tag_bits = s->ulTagBits;
        out->u.gcm.short_layout = true;
    } else {
        return BAD;
    }
    /* A NULL pIv with a length asks the token to make the IV: not an
     * error here (the core decides), and nothing to copy. */
    if (iv != NULL &&
        (rv = bytes_in(iv, out->u.gcm.iv_len, &out->u.gcm.iv)) != CKR_OK) {
        return rv;
    }
    return bytes_in(aad, aadlen, &out->u.gcm.aad);
}

static CK_RV d_ccm(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_CCM_PARAMS *p = param_of(m, sizeof(*p));
    CK_RV rv;

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_CCM;
    out->u.ccm.data_len = p->ulDataLen;
    out->u.ccm.mac_len = p->ulMACLen;
    if ((rv = bytes_in(p->pNonce, p->ulNonceLen, &out->u.ccm.nonce)) !=
        CKR_OK) {
        return rv;
    }
    return bytes_in(p->pAAD, p->ulAADLen, &out->u.ccm.aad);
}

static CK_RV d_chacha(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_SALSA20_CHACHA20_POLY1305_PARAMS *p = param_of(m, sizeof(*p));
    CK_RV rv;

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_CHACHA20_POLY1305;
    if ((rv = bytes_in(p->pNonce, p->ulNonceLen, &out->u.chacha.nonce)) !=
        CKR_OK) {
        return rv;
    }
    return bytes_in(p->pAAD, p->ulAADLen, &out->u.chacha.aad);
}

static CK_RV d_rsa_aes(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_RSA_AES_KEY_WRAP_PARAMS *p = param_of(m, sizeof(*p));

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_RSA_AES_KEY_WRAP;
    out->u.rsa_aes.aes_key_bits = p->ulAESKeyBits;
    if (p->pOAEPParams == NULL) {
        return CKR_OK;
    }
    out->u.rsa_aes.has_oaep = true;
    return oaep_in(p->pOAEPParams, &out->u.rsa_aes.oaep);
}

static CK_RV d_hkdf(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_HKDF_PARAMS *p = param_of(m, sizeof(*p));
    CK_RV rv;

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_HKDF;
    out->u.hkdf.extract = p->bExtract;
    out->u.hkdf.expand = p->bExpand;
    out->u.hkdf.prf_hash = p->prfHashMechanism;
    out->u.hkdf.salt_type = p->ulSaltType;
    /* The salt and the salt key are read only where the salt type uses
     * them: the other fields may be anything. */
    if (p->bExtract && p->ulSaltType == CKF_HKDF_SALT_DATA &&
        (rv = bytes_in(p->pSalt, p->ulSaltLen, &out->u.hkdf.salt)) != CKR_OK) {
        return rv;
    }
    if (p->bExtract && p->ulSaltType == CKF_HKDF_SALT_KEY) {
        out->u.hkdf.salt_key = p->hSaltKey;
    }
    return bytes_in(p->pInfo, p->ulInfoLen, &out->u.hkdf.info);
}

/* One CK_PRF_DATA_PARAM: the value read as its type lays it out. */
static CK_RV prf_data_in(const CK_PRF_DATA_PARAM *d, hsm_mp_prf_data_t *o)
{
    o->type = d->type;
    switch (d->type) {
    case CK_SP800_108_ITERATION_VARIABLE:
    case CK_SP800_108_OPTIONAL_COUNTER: {
        const CK_SP800_108_COUNTER_FORMAT *f = d->pValue;

        if (f == NULL && d->ulValueLen == 0) {
            return CKR_OK; /* feedback mode's iteration variable */
        }
        if (f == NULL || d->ulValueLen != sizeof(*f)) {
            return BAD;
        }
        o->has_format = true;
        o->little_endian = f->bLittleEndian;
        o->width_bits = f->ulWidthInBits;
        return CKR_OK;
    }
    case CK_SP800_108_DKM_LENGTH: {
        const CK_SP800_108_DKM_LENGTH_FORMAT *f = d->pValue;

        if (f == NULL || d->ulValueLen != sizeof(*f)) {
            return BAD;
        }
        o->has_format = true;
        o->dkm_method = f->dkmLengthMethod;
        o->little_endian = f->bLittleEndian;
        o->width_bits = f->ulWidthInBits;
        return CKR_OK;
    }
    case CK_SP800_108_BYTE_ARRAY:
        return bytes_in(d->pValue, d->ulValueLen, &o->bytes);
    default:
        return BAD; /* a type with no known layout: nothing to copy */
    }
}

static CK_RV kbkdf_in(CK_SP800_108_PRF_TYPE prf, const CK_PRF_DATA_PARAM *d,
                      CK_ULONG n, CK_ULONG additional, hsm_mech_t *out)
{
    CK_RV rv;

    out->u.kbkdf.prf_type = prf;
    out->u.kbkdf.additional_keys = additional;
    if (n > HSM_MECH_DATA_PARAMS_MAX || (n > 0 && d == NULL)) {
        return BAD;
    }
    if (n == 0) {
        return CKR_OK;
    }
    out->u.kbkdf.params = calloc(n, sizeof(*out->u.kbkdf.params));
    if (out->u.kbkdf.params == NULL) {
        return CKR_HOST_MEMORY;
    }
    out->u.kbkdf.n_params = n;
    for (CK_ULONG i = 0; i < n; i++) {
        if ((rv = prf_data_in(&d[i], &out->u.kbkdf.params[i])) != CKR_OK) {
            return rv;
        }
    }
    return CKR_OK;
}

static CK_RV d_kbkdf(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_SP800_108_KDF_PARAMS *p = param_of(m, sizeof(*p));

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_SP800_108;
    return kbkdf_in(p->prfType, p->pDataParams, p->ulNumberOfDataParams,
                    p->ulAdditionalDerivedKeys, out);
}

static CK_RV d_kbkdf_feedback(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_SP800_108_FEEDBACK_KDF_PARAMS *p = param_of(m, sizeof(*p));
    CK_RV rv;

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_SP800_108_FEEDBACK;
    if ((rv = kbkdf_in(p->prfType, p->pDataParams, p->ulNumberOfDataParams,
                       p->ulAdditionalDerivedKeys, out)) != CKR_OK) {
        return rv;
    }
    return bytes_in(p->pIV, p->ulIVLen, &out->u.kbkdf.iv);
}

/*
 * CK_PKCS5_PBKD2_PARAMS2 (ulPasswordLen a value) or the 2.40
 * CK_PKCS5_PBKD2_PARAMS (ulPasswordLen a pointer), told apart by
 * ulParameterLen alone: a field's value never decides how another field is
 * read. Where the two have the same size (every ABI whose CK_ULONG is as
 * wide as a pointer, LP64 and ILP32 alike) the length means the corrected
 * PARAMS2 layout, so a 2.40 caller's pointer reads as an over-long
 * password length: CKR_MECHANISM_PARAM_INVALID, nothing dereferenced.
 */
static CK_RV d_pbkdf2(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_PKCS5_PBKD2_PARAMS2 *q = param_of(m, sizeof(*q));
    CK_PKCS5_PBKD2_PARAMS2 v;
    CK_RV rv;

    if (q == NULL &&
        sizeof(CK_PKCS5_PBKD2_PARAMS) != sizeof(CK_PKCS5_PBKD2_PARAMS2)) {
        const CK_PKCS5_PBKD2_PARAMS *o =
            param_of(m, sizeof(CK_PKCS5_PBKD2_PARAMS));

        if (o == NULL || o->ulPasswordLen == NULL) {
            return BAD;
        }
        v = (CK_PKCS5_PBKD2_PARAMS2){o->saltSource,
                                     o->pSaltSourceData,
                                     o->ulSaltSourceDataLen,
                                     o->iterations,
                                     o->prf,
                                     o->pPrfData,
                                     o->ulPrfDataLen,
                                     o->pPassword,
                                     *o->ulPasswordLen};
        q = &v;
    }
    if (q == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_PBKDF2;
    out->u.pbkdf2.salt_source = q->saltSource;
    out->u.pbkdf2.iterations = q->iterations;
    out->u.pbkdf2.prf = q->prf;
    if ((rv = bytes_in(q->pSaltSourceData, q->ulSaltSourceDataLen,
                       &out->u.pbkdf2.salt)) != CKR_OK ||
        (rv = bytes_in(q->pPrfData, q->ulPrfDataLen,
                       &out->u.pbkdf2.prf_data)) != CKR_OK) {
        return rv;
    }
    rv = bytes_in(q->pPassword, q->ulPasswordLen, &out->u.pbkdf2.password);
    util_wipe(&v, sizeof(v));
    return rv;
}

static CK_RV d_string(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_KEY_DERIVATION_STRING_DATA *p = param_of(m, sizeof(*p));

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_KEY_DERIVATION_STRING;
    return bytes_in(p->pData, p->ulLen, &out->u.string);
}

static CK_RV d_cbc_data(const CK_MECHANISM *m, hsm_mech_t *out)
{
    const CK_AES_CBC_ENCRYPT_DATA_PARAMS *p = param_of(m, sizeof(*p));

    if (p == NULL) {
        return BAD;
    }
    out->layout = HSM_MP_AES_CBC_ENCRYPT_DATA;
    memcpy(out->u.cbc_data.iv, p->iv, sizeof(out->u.cbc_data.iv));
    return bytes_in(p->pData, p->length, &out->u.cbc_data.data);
}

/* ------------------------------------------------------------ the table */

/* Every mechanism of the token whose parameter is not empty; the others
 * take no parameter (ulParameterLen 0, HSM_MP_NONE). */
static const struct {
    CK_MECHANISM_TYPE type;
    mp_decode_fn decode;
} mp_table[] = {
    {CKM_RSA_PKCS_OAEP, d_oaep},
    {CKM_RSA_PKCS_PSS, d_pss},
    {CKM_SHA1_RSA_PKCS_PSS, d_pss},
    {CKM_SHA224_RSA_PKCS_PSS, d_pss},
    {CKM_SHA256_RSA_PKCS_PSS, d_pss},
    {CKM_SHA384_RSA_PKCS_PSS, d_pss},
    {CKM_SHA512_RSA_PKCS_PSS, d_pss},
    {CKM_SHA3_224_RSA_PKCS_PSS, d_pss},
    {CKM_SHA3_256_RSA_PKCS_PSS, d_pss},
    {CKM_SHA3_384_RSA_PKCS_PSS, d_pss},
    {CKM_SHA3_512_RSA_PKCS_PSS, d_pss},
    {CKM_DES3_CBC, d_bytes},
    {CKM_DES3_CBC_PAD, d_bytes},
    {CKM_SHA_1_HMAC_GENERAL, d_ulong},
    {CKM_SHA224_HMAC_GENERAL, d_ulong},
    {CKM_SHA256_HMAC_GENERAL, d_ulong},
    {CKM_SHA384_HMAC_GENERAL, d_ulong},
    {CKM_SHA512_HMAC_GENERAL, d_ulong},
    {CKM_AES_CMAC_GENERAL, d_ulong},
    {CKM_CONCATENATE_BASE_AND_KEY, d_object},
    {CKM_CONCATENATE_BASE_AND_DATA, d_string},
    {CKM_CONCATENATE_DATA_AND_BASE, d_string},
    {CKM_AES_ECB_ENCRYPT_DATA, d_string},
    {CKM_AES_CBC_ENCRYPT_DATA, d_cbc_data},
    {CKM_SP800_108_COUNTER_KDF, d_kbkdf},
    {CKM_SP800_108_FEEDBACK_KDF, d_kbkdf_feedback},
    {CKM_PKCS5_PBKD2, d_pbkdf2},
    {CKM_ECDH1_DERIVE, d_ecdh1},
    {CKM_RSA_AES_KEY_WRAP, d_rsa_aes},
    {CKM_EDDSA, d_eddsa},
    {CKM_AES_CBC, d_bytes},
    {CKM_AES_CBC_PAD, d_bytes},
    {CKM_AES_CTR, d_ctr},
    {CKM_AES_GCM, d_gcm},
    {CKM_AES_CCM, d_ccm},
    {CKM_AES_KEY_WRAP, d_bytes},
    {CKM_AES_KEY_WRAP_KWP, d_bytes},
    {CKM_CHACHA20_POLY1305, d_chacha},
    {CKM_HKDF_DERIVE, d_hkdf},
    {CKM_HKDF_DATA, d_hkdf},
    {CKM_CLOUDHSM_AES_GCM, d_gcm},
    {CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD, d_bytes},
    {CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD, d_bytes},
    {CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD, d_bytes},
};

CK_RV hsm_mech_decode(const CK_MECHANISM *m, hsm_mech_t *out)
{
    CK_RV rv = CKR_OK;

    memset(out, 0, sizeof(*out));
    if (m == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    out->type = m->mechanism;
    if (m->ulParameterLen == 0) {
        return CKR_OK; /* HSM_MP_NONE; pParameter is not looked at */
    }
    if (m->pParameter == NULL || m->ulParameterLen > HSM_MECH_PARAM_MAX) {
        return BAD;
    }
    out->layout = HSM_MP_UNKNOWN;
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(mp_table); i++) {
        if (mp_table[i].type == m->mechanism) {
            rv = mp_table[i].decode(m, out);
            break;
        }
    }
    if (rv != CKR_OK) {
        hsm_mech_free(out);
        out->type = m->mechanism;
    }
    return rv;
}

CK_RV hsm_mech_decode_type(const CK_MECHANISM *m, hsm_mech_t *out)
{
    memset(out, 0, sizeof(*out));
    if (m == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    out->type = m->mechanism;
    if (m->ulParameterLen > 0 &&
        (m->pParameter == NULL || m->ulParameterLen > HSM_MECH_PARAM_MAX)) {
        return BAD;
    }
    return CKR_OK;
}

/* ------------------------------------------------------------ messages */

/* The tag of a decryption: tag_len bytes, at most HSM_MECH_TAG_MAX. */
static CK_RV tag_in(const void *ptr, CK_ULONG tag_len, bool decrypt,
                    hsm_bytes_t *b)
{
    if (!decrypt || ptr == NULL) {
        b->present = ptr != NULL;
        return CKR_OK;
    }
    if (tag_len > HSM_MECH_TAG_MAX) {
        return BAD;
    }
    return bytes_in(ptr, tag_len, b);
}

CK_RV hsm_mech_decode_msg(CK_MECHANISM_TYPE type, const void *param,
                          CK_ULONG len, bool decrypt, hsm_mech_t *out)
{
    CK_RV rv = BAD;

    memset(out, 0, sizeof(*out));
    out->type = type;
    if (param == NULL) {
        return BAD;
    }
    if (type == CKM_AES_GCM && len == sizeof(CK_GCM_MESSAGE_PARAMS)) {
        const CK_GCM_MESSAGE_PARAMS *g = param;

        out->layout = HSM_MP_GCM_MESSAGE;
        out->u.gcm_msg.iv_fixed_bits = g->ulIvFixedBits;
        out->u.gcm_msg.generator = g->ivGenerator;
        out->u.gcm_msg.tag_bits = g->ulTagBits;
        if ((rv = bytes_in(g->pIv, g->ulIvLen, &out->u.gcm_msg.iv)) == CKR_OK) {
            rv =
                tag_in(g->pTag, g->ulTagBits / 8, decrypt, &out->u.gcm_msg.tag);
        }
    } else if (type == CKM_AES_CCM && len == sizeof(CK_CCM_MESSAGE_PARAMS)) {
        const CK_CCM_MESSAGE_PARAMS *c = param;

        out->layout = HSM_MP_CCM_MESSAGE;
        out->u.ccm_msg.data_len = c->ulDataLen;
        out->u.ccm_msg.nonce_fixed_bits = c->ulNonceFixedBits;
        out->u.ccm_msg.generator = c->nonceGenerator;
        out->u.ccm_msg.mac_len = c->ulMACLen;
        if ((rv = bytes_in(c->pNonce, c->ulNonceLen, &out->u.ccm_msg.nonce)) ==
            CKR_OK) {
            rv = tag_in(c->pMAC, c->ulMACLen, decrypt, &out->u.ccm_msg.mac);
        }
    } else if (type == CKM_CHACHA20_POLY1305 &&
               len == sizeof(CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS)) {
        const CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS *c = param;

        out->layout = HSM_MP_CHACHA20_POLY1305_MESSAGE;
        if ((rv = bytes_in(c->pNonce, c->ulNonceLen,
                           &out->u.chacha_msg.nonce)) == CKR_OK) {
            rv = tag_in(c->pTag, 16, decrypt, &out->u.chacha_msg.tag);
        }
    }
    if (rv != CKR_OK) {
        hsm_mech_free(out);
        out->type = type;
    }
    return rv;
}

/* ------------------------------------------------------------ free, copy */

/* The byte strings a layout owns (besides the SP 800-108 data params),
 * for free, copy and check to walk alike. */
#define MP_STRINGS_MAX 3

static size_t mech_strings(hsm_mech_t *m, hsm_bytes_t *s[MP_STRINGS_MAX])
{
    size_t n = 0;

#define S(field) (s[n++] = &m->u.field)
    switch (m->layout) {
    case HSM_MP_BYTES:
        S(bytes);
        break;
    case HSM_MP_RSA_OAEP:
        S(oaep.source_data);
        break;
    case HSM_MP_EDDSA:
        S(eddsa.context);
        break;
    case HSM_MP_ECDH1:
        S(ecdh1.shared_data);
        S(ecdh1.public_data);
        break;
    case HSM_MP_GCM:
        S(gcm.iv);
        S(gcm.aad);
        break;
    case HSM_MP_CCM:
        S(ccm.nonce);
        S(ccm.aad);
        break;
    case HSM_MP_CHACHA20_POLY1305:
        S(chacha.nonce);
        S(chacha.aad);
        break;
    case HSM_MP_RSA_AES_KEY_WRAP:
        S(rsa_aes.oaep.source_data);
        break;
    case HSM_MP_HKDF:
        S(hkdf.salt);
        S(hkdf.info);
        break;
    case HSM_MP_SP800_108:
    case HSM_MP_SP800_108_FEEDBACK:
        S(kbkdf.iv);
        break;
    case HSM_MP_PBKDF2:
        S(pbkdf2.salt);
        S(pbkdf2.prf_data);
        S(pbkdf2.password);
        break;
    case HSM_MP_KEY_DERIVATION_STRING:
        S(string);
        break;
    case HSM_MP_AES_CBC_ENCRYPT_DATA:
        S(cbc_data.data);
        break;
    case HSM_MP_GCM_MESSAGE:
        S(gcm_msg.iv);
        S(gcm_msg.tag);
        break;
    case HSM_MP_CCM_MESSAGE:
        S(ccm_msg.nonce);
        S(ccm_msg.mac);
        break;
    case HSM_MP_CHACHA20_POLY1305_MESSAGE:
        S(chacha_msg.nonce);
        S(chacha_msg.tag);
        break;
    default:
        break;
    }
#undef S
    return n;
}

static bool mech_has_params(const hsm_mech_t *m)
{
    return m->layout == HSM_MP_SP800_108 ||
           m->layout == HSM_MP_SP800_108_FEEDBACK;
}

void hsm_mech_free(hsm_mech_t *m)
{
    hsm_bytes_t *s[MP_STRINGS_MAX];
    size_t n;

    if (m == NULL) {
        return;
    }
    n = mech_strings(m, s);
    for (size_t i = 0; i < n; i++) {
        bytes_free(s[i]);
    }
    if (mech_has_params(m) && m->u.kbkdf.params != NULL) {
        for (size_t i = 0; i < m->u.kbkdf.n_params; i++) {
            bytes_free(&m->u.kbkdf.params[i].bytes);
        }
        free(m->u.kbkdf.params);
    }
    util_wipe(m, sizeof(*m));
}

CK_RV hsm_mech_copy(const hsm_mech_t *src, hsm_mech_t *dst)
{
    hsm_bytes_t *ds[MP_STRINGS_MAX], *ss[MP_STRINGS_MAX];
    size_t n;
    CK_RV rv = CKR_OK;

    *dst = *src;
    /* the same fields in the same order: src only read through ss */
    (void)mech_strings((hsm_mech_t *)src, ss);
    /* Nothing of src is shared: first every owned part of dst emptied
     * (so that a failure frees only copies), then each copied. */
    n = mech_strings(dst, ds);
    for (size_t i = 0; i < n; i++) {
        ds[i]->data = NULL;
        ds[i]->len = 0;
    }
    if (mech_has_params(dst)) {
        dst->u.kbkdf.params = NULL;
        dst->u.kbkdf.n_params = 0;
    }
    for (size_t i = 0; i < n && rv == CKR_OK; i++) {
        rv = bytes_dup(ss[i], ds[i]);
    }
    if (rv == CKR_OK && mech_has_params(src) && src->u.kbkdf.n_params > 0) {
        size_t np = src->u.kbkdf.n_params;

        dst->u.kbkdf.params = calloc(np, sizeof(*dst->u.kbkdf.params));
        if (dst->u.kbkdf.params == NULL) {
            rv = CKR_HOST_MEMORY;
        } else {
            dst->u.kbkdf.n_params = np;
            for (size_t i = 0; i < np && rv == CKR_OK; i++) {
                dst->u.kbkdf.params[i] = src->u.kbkdf.params[i];
                dst->u.kbkdf.params[i].bytes.data = NULL;
                dst->u.kbkdf.params[i].bytes.len = 0;
                rv = bytes_dup(&src->u.kbkdf.params[i].bytes,
                               &dst->u.kbkdf.params[i].bytes);
            }
        }
    }
    if (rv != CKR_OK) {
        hsm_mech_free(dst);
    }
    return rv;
}

/* ------------------------------------------------------------ check */

static bool bytes_ok(const hsm_bytes_t *b, size_t max)
{
    return b->len <= max && (b->len == 0 || (b->data != NULL && b->present));
}

CK_RV hsm_mech_check(const hsm_mech_t *m)
{
    hsm_mech_t *mm = (hsm_mech_t *)m; /* mech_strings only points */
    hsm_bytes_t *s[MP_STRINGS_MAX];
    size_t n;

    if (m == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    if ((unsigned)m->layout >= HSM_MP_COUNT) {
        return BAD;
    }
    n = mech_strings(mm, s);
    for (size_t i = 0; i < n; i++) {
        if (!bytes_ok(s[i], HSM_MECH_BYTES_MAX)) {
            return BAD;
        }
    }
    switch (m->layout) {
    case HSM_MP_GCM_MESSAGE:
        return bytes_ok(&m->u.gcm_msg.tag, HSM_MECH_TAG_MAX) ? CKR_OK : BAD;
    case HSM_MP_CCM_MESSAGE:
        return bytes_ok(&m->u.ccm_msg.mac, HSM_MECH_TAG_MAX) ? CKR_OK : BAD;
    case HSM_MP_CHACHA20_POLY1305_MESSAGE:
        return bytes_ok(&m->u.chacha_msg.tag, HSM_MECH_TAG_MAX) ? CKR_OK : BAD;
    case HSM_MP_SP800_108:
    case HSM_MP_SP800_108_FEEDBACK:
        if (m->u.kbkdf.n_params > HSM_MECH_DATA_PARAMS_MAX ||
            (m->u.kbkdf.n_params > 0 && m->u.kbkdf.params == NULL)) {
            return BAD;
        }
        for (size_t i = 0; i < m->u.kbkdf.n_params; i++) {
            if (!bytes_ok(&m->u.kbkdf.params[i].bytes, HSM_MECH_BYTES_MAX)) {
                return BAD;
            }
        }
        return CKR_OK;
    default:
        return CKR_OK;
    }
}

/* ------------------------------------------------------------ references */

uint64_t *hsm_mech_key_ref(hsm_mech_t *m)
{
    if (m->type == CKM_CONCATENATE_BASE_AND_KEY && m->layout == HSM_MP_OBJECT) {
        return &m->u.object;
    }
    if ((m->type == CKM_HKDF_DERIVE || m->type == CKM_HKDF_DATA) &&
        m->layout == HSM_MP_HKDF && m->u.hkdf.extract &&
        m->u.hkdf.salt_type == CKF_HKDF_SALT_KEY) {
        return &m->u.hkdf.salt_key;
    }
    return NULL;
}

/* ------------------------------------------------------------ write-back */

void hsm_mech_write_gcm_iv(const CK_MECHANISM *m, const uint8_t *iv,
                           size_t ivlen)
{
    CK_BYTE_PTR dst = NULL;
    CK_ULONG room = 0;

    if (m == NULL || ivlen == 0 || m->mechanism != CKM_AES_GCM ||
        m->pParameter == NULL) {
        return;
    }
    if (m->ulParameterLen == sizeof(CK_GCM_PARAMS)) {
        const CK_GCM_PARAMS *g = m->pParameter;

        dst = g->pIv;
        room = g->ulIvLen;
    } else if (m->ulParameterLen == sizeof(mp_gcm_short_t)) {
        const mp_gcm_short_t *g = m->pParameter;

        dst = g->pIv;
        room = g->ulIvLen;
    }
    if (dst != NULL && room >= ivlen) {
        memcpy(dst, iv, ivlen);
    }
}

void hsm_mech_write_msg(CK_MECHANISM_TYPE type, void *param, CK_ULONG len,
                        const uint8_t *iv, size_t iv_len, const uint8_t *tag,
                        size_t tag_len)
{
    CK_BYTE_PTR ivp = NULL, tagp = NULL;
    CK_ULONG iv_room = 0, tag_room = 0;
    CK_GENERATOR_FUNCTION gen = CKG_NO_GENERATE;

    if (param == NULL) {
        return;
    }
    if (type == CKM_AES_GCM && len == sizeof(CK_GCM_MESSAGE_PARAMS)) {
        const CK_GCM_MESSAGE_PARAMS *g = param;

        ivp = g->pIv;
        iv_room = g->ulIvLen;
        gen = g->ivGenerator;
        tagp = g->pTag;
        tag_room = g->ulTagBits / 8;
    } else if (type == CKM_AES_CCM && len == sizeof(CK_CCM_MESSAGE_PARAMS)) {
        const CK_CCM_MESSAGE_PARAMS *c = param;

        ivp = c->pNonce;
        iv_room = c->ulNonceLen;
        gen = c->nonceGenerator;
        tagp = c->pMAC;
        tag_room = c->ulMACLen;
    } else if (type == CKM_CHACHA20_POLY1305 &&
               len == sizeof(CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS)) {
        const CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS *c = param;

        /* No generator: the caller's nonce was used as it is. */
        tagp = c->pTag;
        tag_room = 16;
    } else {
        return;
    }
    if (gen != CKG_NO_GENERATE && iv_len > 0 && ivp != NULL &&
        iv_len <= iv_room) {
        memcpy(ivp, iv, iv_len);
    }
    if (tag_len > 0 && tagp != NULL && tag_len <= tag_room) {
        memcpy(tagp, tag, tag_len);
    }
}
