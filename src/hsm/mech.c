/*
 * mech.c - the mechanism table, its parameter checks, and
 * C_GetMechanismList / C_GetMechanismInfo.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "hsm/internal.h"
#include "hsm/mech.h"
#include "nimbus/pkcs11-vendor.h"

/* ------------------------------------------------------------ parameters */

/* Digest mechanisms and MGF1 functions as hashAlg / mgf name them. */
static const struct {
    CK_MECHANISM_TYPE mech;
    CK_RSA_PKCS_MGF_TYPE mgf;
    cops_hash_t h;
} mech_hashes[] = {
    {CKM_SHA_1, CKG_MGF1_SHA1, COPS_HASH_SHA1},
    {CKM_SHA224, CKG_MGF1_SHA224, COPS_HASH_SHA224},
    {CKM_SHA256, CKG_MGF1_SHA256, COPS_HASH_SHA256},
    {CKM_SHA384, CKG_MGF1_SHA384, COPS_HASH_SHA384},
    {CKM_SHA512, CKG_MGF1_SHA512, COPS_HASH_SHA512},
    {CKM_SHA3_224, CKG_MGF1_SHA3_224, COPS_HASH_SHA3_224},
    {CKM_SHA3_256, CKG_MGF1_SHA3_256, COPS_HASH_SHA3_256},
    {CKM_SHA3_384, CKG_MGF1_SHA3_384, COPS_HASH_SHA3_384},
    {CKM_SHA3_512, CKG_MGF1_SHA3_512, COPS_HASH_SHA3_512},
};

/* The X9.63 KDFs of CKM_ECDH1_DERIVE. */
static const struct {
    CK_EC_KDF_TYPE kdf;
    cops_hash_t h;
} mech_kdfs[] = {
    {CKD_SHA1_KDF, COPS_HASH_SHA1},
    {CKD_SHA224_KDF, COPS_HASH_SHA224},
    {CKD_SHA256_KDF, COPS_HASH_SHA256},
    {CKD_SHA384_KDF, COPS_HASH_SHA384},
    {CKD_SHA512_KDF, COPS_HASH_SHA512},
    {CKD_SHA3_224_KDF, COPS_HASH_SHA3_224},
    {CKD_SHA3_256_KDF, COPS_HASH_SHA3_256},
    {CKD_SHA3_384_KDF, COPS_HASH_SHA3_384},
    {CKD_SHA3_512_KDF, COPS_HASH_SHA3_512},
};

static cops_hash_t hash_of_mech(CK_MECHANISM_TYPE m)
{
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(mech_hashes); i++) {
        if (mech_hashes[i].mech == m) {
            return mech_hashes[i].h;
        }
    }
    return COPS_HASH_NONE;
}

static cops_hash_t hash_of_mgf(CK_RSA_PKCS_MGF_TYPE mgf)
{
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(mech_hashes); i++) {
        if (mech_hashes[i].mgf == mgf) {
            return mech_hashes[i].h;
        }
    }
    return COPS_HASH_NONE;
}

/*
 * The parameter checks read only the decoded hsm_mech_t (mechparam.h).
 * They never trust its layout tag to fit the mechanism, nor a byte
 * string's length to be what the layout needs: a remote caller fills
 * hsm_mech_t itself. A byte string's data has its len bytes.
 */

/* A byte string, or NULL when empty. */
static const uint8_t *bytes_ptr(const hsm_bytes_t *b)
{
    return b->len > 0 ? b->data : NULL;
}

/* No parameter (HSM_MP_NONE). */
static CK_RV p_none(const mech_row_t *row, const hsm_mech_t *m,
                    cops_params_t *p)
{
    if (m->layout != HSM_MP_NONE) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->mac_len = cops_hash_len(row->hash);
    return CKR_OK;
}

/* CK_RSA_PKCS_PSS_PARAMS; a hash-and-sign row wants hashAlg to be its own
 * hash. */
static CK_RV p_pss(const mech_row_t *row, const hsm_mech_t *m, cops_params_t *p)
{
    if (m->layout != HSM_MP_RSA_PSS) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->hash = hash_of_mech(m->u.pss.hash_alg);
    p->mgf1 = hash_of_mgf(m->u.pss.mgf);
    p->salt_len = m->u.pss.salt_len;
    if (p->hash == COPS_HASH_NONE || p->mgf1 == COPS_HASH_NONE ||
        (row->hash != COPS_HASH_NONE && row->hash != p->hash)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    return CKR_OK;
}

/* OAEP: source 0 (no label) or CKZ_DATA_SPECIFIED. */
static CK_RV oaep_check(const hsm_mp_oaep_t *o, cops_params_t *p)
{
    p->hash = hash_of_mech(o->hash_alg);
    p->mgf1 = hash_of_mgf(o->mgf);
    if (p->hash == COPS_HASH_NONE || p->mgf1 == COPS_HASH_NONE) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if (o->source != CKZ_DATA_SPECIFIED && o->source != 0) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if (o->source_data.len > MECH_OAEP_LABEL_MAX ||
        (o->source_data.len > 0 && o->source != CKZ_DATA_SPECIFIED)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->label = bytes_ptr(&o->source_data);
    p->label_len = o->source_data.len;
    return CKR_OK;
}

static CK_RV p_oaep(const mech_row_t *row, const hsm_mech_t *m,
                    cops_params_t *p)
{
    (void)row;
    if (m->layout != HSM_MP_RSA_OAEP) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    return oaep_check(&m->u.oaep, p);
}

/* None (pure EdDSA) or CK_EDDSA_PARAMS. */
static CK_RV p_eddsa(const mech_row_t *row, const hsm_mech_t *m,
                     cops_params_t *p)
{
    (void)row;
    if (m->layout == HSM_MP_NONE) {
        return CKR_OK;
    }
    if (m->layout != HSM_MP_EDDSA ||
        (m->u.eddsa.ph_flag != CK_FALSE && m->u.eddsa.ph_flag != CK_TRUE) ||
        m->u.eddsa.context.len > MECH_EDDSA_CONTEXT_MAX) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->eddsa_params = true;
    p->eddsa_ph = m->u.eddsa.ph_flag == CK_TRUE;
    p->context = bytes_ptr(&m->u.eddsa.context);
    p->context_len = m->u.eddsa.context.len;
    return CKR_OK;
}

/* CK_MAC_GENERAL_PARAMS: 1 .. hash length. */
static CK_RV p_mac_general(const mech_row_t *row, const hsm_mech_t *m,
                           cops_params_t *p)
{
    if (m->layout != HSM_MP_ULONG || m->u.ulong == 0 ||
        m->u.ulong > cops_hash_len(row->hash)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->mac_len = m->u.ulong;
    return CKR_OK;
}

/* CK_ECDH1_DERIVE_PARAMS: CKD_NULL (no shared data) or an X9.63 KDF. */
static CK_RV p_ecdh(const mech_row_t *row, const hsm_mech_t *m,
                    cops_params_t *p)
{
    (void)row;
    if (m->layout != HSM_MP_ECDH1 || m->u.ecdh1.public_data.len == 0 ||
        m->u.ecdh1.public_data.len > MECH_ECDH_DATA_MAX ||
        m->u.ecdh1.shared_data.len > MECH_ECDH_DATA_MAX) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if (m->u.ecdh1.kdf == CKD_NULL) {
        if (m->u.ecdh1.shared_data.len != 0) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        p->kdf_null = true;
    } else {
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(mech_kdfs); i++) {
            if (mech_kdfs[i].kdf == m->u.ecdh1.kdf) {
                p->hash = mech_kdfs[i].h;
            }
        }
        if (p->hash == COPS_HASH_NONE) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
    }
    p->shared_data = bytes_ptr(&m->u.ecdh1.shared_data);
    p->shared_len = m->u.ecdh1.shared_data.len;
    p->public_data = m->u.ecdh1.public_data.data;
    p->public_len = m->u.ecdh1.public_data.len;
    return CKR_OK;
}

/* ------------------------------------------------------------ symmetric */

/* An IV of exactly the cipher's block: AES 16, DES3 8 bytes. */
static CK_RV p_iv(const mech_row_t *row, const hsm_mech_t *m, cops_params_t *p)
{
    size_t bs = row->kt[0] == CKK_DES3 ? 8 : 16;

    if (m->layout != HSM_MP_BYTES || m->u.bytes.len != bs) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->iv = m->u.bytes.data;
    p->iv_len = bs;
    return CKR_OK;
}

static CK_RV p_ctr(const mech_row_t *row, const hsm_mech_t *m, cops_params_t *p)
{
    (void)row;
    if (m->layout != HSM_MP_AES_CTR || m->u.ctr.counter_bits == 0 ||
        m->u.ctr.counter_bits > 128) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->iv = m->u.ctr.cb;
    p->iv_len = sizeof(m->u.ctr.cb);
    p->ctr_bits = m->u.ctr.counter_bits;
    return CKR_OK;
}

/* Either CK_GCM_PARAMS layout: the IV (NULL when not given), its declared
 * length, and into p the AAD and tag. ulIvBits is not read: PKCS#11 3.0
 * says ulIvLen is the length, and callers fill ulIvBits inconsistently. */
static CK_RV gcm_read(const hsm_mech_t *m, const uint8_t **iv, size_t *ivlen,
                      cops_params_t *p)
{
    CK_ULONG tag;

    if (m->layout != HSM_MP_GCM ||
        (m->u.gcm.iv.present && m->u.gcm.iv.len != m->u.gcm.iv_len)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    *iv = m->u.gcm.iv.present ? m->u.gcm.iv.data : NULL;
    *ivlen = m->u.gcm.iv_len;
    p->aad = bytes_ptr(&m->u.gcm.aad);
    p->aad_len = m->u.gcm.aad.len;
    tag = m->u.gcm.tag_bits;
    /* Tags of 32 to 128 bits in whole bytes (SP 800-38D allows 32, 64 and
     * 96..128; the byte steps between are what PKCS#11 tokens accept). */
    if (tag < 32 || tag > 128 || tag % 8 != 0 || p->aad_len > MECH_AAD_MAX) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->tag_len = tag / 8;
    return CKR_OK;
}

/* CKM_AES_GCM: IV of 1..MECH_GCM_IV_MAX bytes. A NULL IV, or 12 zero
 * bytes, on encryption lets the token make the IV (written back). */
static CK_RV p_gcm(const mech_row_t *row, const hsm_mech_t *m, cops_params_t *p)
{
    const uint8_t *iv;
    size_t ivlen;
    CK_RV rv;
    bool zero = true;

    (void)row;
    if ((rv = gcm_read(m, &iv, &ivlen, p)) != CKR_OK) {
        return rv;
    }
    if (ivlen == 0 || ivlen > MECH_GCM_IV_MAX) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if (iv != NULL) {
        for (size_t i = 0; i < ivlen; i++) {
            zero = zero && iv[i] == 0;
        }
    }
    p->iv_generate = ivlen == 12 && zero;
    if (iv == NULL && !p->iv_generate) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->iv = iv;
    p->iv_len = ivlen;
    return CKR_OK;
}

/* CKM_CLOUDHSM_AES_GCM: pIv NULL (the HSM makes a 12-byte IV). */
static CK_RV p_cloud_gcm(const mech_row_t *row, const hsm_mech_t *m,
                         cops_params_t *p)
{
    const uint8_t *iv;
    size_t ivlen;
    CK_RV rv;

    (void)row;
    if ((rv = gcm_read(m, &iv, &ivlen, p)) != CKR_OK) {
        return rv;
    }
    if (iv != NULL || (ivlen != 0 && ivlen != 12)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->iv_len = 12;
    return CKR_OK;
}

static CK_RV p_ccm(const mech_row_t *row, const hsm_mech_t *m, cops_params_t *p)
{
    size_t nlen;

    (void)row;
    if (m->layout != HSM_MP_CCM) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    nlen = m->u.ccm.nonce.len;
    if (nlen < 7 || nlen > 13 || m->u.ccm.mac_len < 4 ||
        m->u.ccm.mac_len > 16 || m->u.ccm.mac_len % 2 != 0 ||
        m->u.ccm.aad.len > MECH_AAD_MAX) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    /* The length field has 15 - nonce bytes. */
    if (nlen > 8 && (uint64_t)m->u.ccm.data_len >> (8 * (15 - nlen)) != 0) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if (m->u.ccm.data_len > COPS_AEAD_HOLD_MAX) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->iv = m->u.ccm.nonce.data;
    p->iv_len = nlen;
    p->aad = bytes_ptr(&m->u.ccm.aad);
    p->aad_len = m->u.ccm.aad.len;
    p->tag_len = m->u.ccm.mac_len;
    p->data_len = m->u.ccm.data_len;
    return CKR_OK;
}

/* CK_SALSA20_CHACHA20_POLY1305_PARAMS: the 96-bit nonce of RFC 8439 (the
 * 64-bit nonce variant is not offered). */
static CK_RV p_chacha_poly(const mech_row_t *row, const hsm_mech_t *m,
                           cops_params_t *p)
{
    (void)row;
    if (m->layout != HSM_MP_CHACHA20_POLY1305 || m->u.chacha.nonce.len != 12 ||
        m->u.chacha.aad.len > MECH_AAD_MAX) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->iv = m->u.chacha.nonce.data;
    p->iv_len = 12;
    p->aad = bytes_ptr(&m->u.chacha.aad);
    p->aad_len = m->u.chacha.aad.len;
    p->tag_len = 16;
    return CKR_OK;
}

/* Key wraps: no parameter (the default IV) or an IV of 8 bytes (RFC 3394)
 * or 4 bytes (RFC 5649). */
static CK_RV p_kw(const mech_row_t *row, const hsm_mech_t *m, cops_params_t *p)
{
    const cops_impl_t *impl = row->wrap != NULL ? row->wrap : row->impl;
    size_t want = impl == &cops_aes_kwp ? 4 : 8;

    if (m->layout == HSM_MP_NONE) {
        return CKR_OK;
    }
    if (m->layout != HSM_MP_BYTES || m->u.bytes.len != want) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->iv = m->u.bytes.data;
    p->iv_len = want;
    return CKR_OK;
}

/* CKM_AES_CMAC_GENERAL: 1..16 bytes. */
static CK_RV p_cmac_general(const mech_row_t *row, const hsm_mech_t *m,
                            cops_params_t *p)
{
    (void)row;
    if (m->layout != HSM_MP_ULONG || m->u.ulong == 0 || m->u.ulong > 16) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->mac_len = m->u.ulong;
    return CKR_OK;
}

static CK_RV p_rsa_aes(const mech_row_t *row, const hsm_mech_t *m,
                       cops_params_t *p)
{
    (void)row;
    if (m->layout != HSM_MP_RSA_AES_KEY_WRAP || !m->u.rsa_aes.has_oaep ||
        (m->u.rsa_aes.aes_key_bits != 128 && m->u.rsa_aes.aes_key_bits != 192 &&
         m->u.rsa_aes.aes_key_bits != 256)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->wrap_aes_len = m->u.rsa_aes.aes_key_bits / 8;
    return oaep_check(&m->u.rsa_aes.oaep, p);
}

/* ------------------------------------------------------------ KDFs */

static bool data_ok(const hsm_bytes_t *b)
{
    return b->len <= MECH_KDF_DATA_MAX;
}

static CK_RV p_hkdf(const mech_row_t *row, const hsm_mech_t *m,
                    cops_params_t *p)
{
    (void)row;
    if (m->layout != HSM_MP_HKDF) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if ((m->u.hkdf.extract != CK_TRUE && m->u.hkdf.extract != CK_FALSE) ||
        (m->u.hkdf.expand != CK_TRUE && m->u.hkdf.expand != CK_FALSE) ||
        (!m->u.hkdf.extract && !m->u.hkdf.expand) ||
        !data_ok(&m->u.hkdf.info)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->hash = hash_of_mech(m->u.hkdf.prf_hash);
    if (p->hash == COPS_HASH_NONE) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if (m->u.hkdf.extract) {
        switch (m->u.hkdf.salt_type) {
        case CKF_HKDF_SALT_NULL:
            break;
        case CKF_HKDF_SALT_DATA:
            if (m->u.hkdf.salt.len == 0 || !data_ok(&m->u.hkdf.salt)) {
                return CKR_MECHANISM_PARAM_INVALID;
            }
            break;
        case CKF_HKDF_SALT_KEY:
            break;
        default:
            return CKR_MECHANISM_PARAM_INVALID;
        }
    } else if (m->u.hkdf.info.len == 0 && m->u.hkdf.info.present) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->mech = m;
    return CKR_OK;
}

/* The PRF of an SP 800-108 KDF: an HMAC mechanism (its hash) or AES-CMAC
 * (COPS_HASH_NONE). */
static bool prf_of(CK_MECHANISM_TYPE prf, cops_hash_t *h)
{
    static const struct {
        CK_MECHANISM_TYPE m;
        cops_hash_t h;
    } prfs[] = {
        {CKM_SHA_1_HMAC, COPS_HASH_SHA1},
        {CKM_SHA224_HMAC, COPS_HASH_SHA224},
        {CKM_SHA256_HMAC, COPS_HASH_SHA256},
        {CKM_SHA384_HMAC, COPS_HASH_SHA384},
        {CKM_SHA512_HMAC, COPS_HASH_SHA512},
        {CKM_SHA3_224_HMAC, COPS_HASH_SHA3_224},
        {CKM_SHA3_256_HMAC, COPS_HASH_SHA3_256},
        {CKM_SHA3_384_HMAC, COPS_HASH_SHA3_384},
        {CKM_SHA3_512_HMAC, COPS_HASH_SHA3_512},
        {CKM_AES_CMAC, COPS_HASH_NONE},
    };

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(prfs); i++) {
        if (prfs[i].m == prf) {
            *h = prfs[i].h;
            return true;
        }
    }
    return false;
}

static bool counter_format_ok(const hsm_mp_prf_data_t *d)
{
    return d->has_format && d->bytes.len == 0 &&
           (d->little_endian == CK_TRUE || d->little_endian == CK_FALSE) &&
           d->width_bits > 0 && d->width_bits <= 32 && d->width_bits % 8 == 0;
}

/* The data parameter list of SP 800-108 (PKCS#11 3.0 section 2.42). */
static CK_RV kbkdf_list(bool feedback, const hsm_mp_prf_data_t *d, size_t n)
{
    size_t iter = 0, dkm = 0, ctr = 0;

    if (n == 0 || n > MECH_KDF_PARAMS_MAX || d == NULL) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        switch (d[i].type) {
        case CK_SP800_108_ITERATION_VARIABLE:
            iter++;
            if (feedback) {
                if (d[i].has_format || d[i].bytes.len != 0) {
                    return CKR_MECHANISM_PARAM_INVALID;
                }
            } else if (!counter_format_ok(&d[i])) {
                return CKR_MECHANISM_PARAM_INVALID;
            }
            break;
        case CK_SP800_108_OPTIONAL_COUNTER:
            ctr++;
            if (!feedback || !counter_format_ok(&d[i])) {
                return CKR_MECHANISM_PARAM_INVALID;
            }
            break;
        case CK_SP800_108_DKM_LENGTH:
            dkm++;
            if (!d[i].has_format || d[i].bytes.len != 0 ||
                (d[i].dkm_method != CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS &&
                 d[i].dkm_method != CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS) ||
                (d[i].little_endian != CK_TRUE &&
                 d[i].little_endian != CK_FALSE) ||
                d[i].width_bits == 0 || d[i].width_bits > 64 ||
                d[i].width_bits % 8 != 0) {
                return CKR_MECHANISM_PARAM_INVALID;
            }
            break;
        case CK_SP800_108_BYTE_ARRAY:
            if (d[i].has_format || d[i].bytes.len == 0 ||
                !data_ok(&d[i].bytes)) {
                return CKR_MECHANISM_PARAM_INVALID;
            }
            break;
        default:
            return CKR_MECHANISM_PARAM_INVALID;
        }
    }
    if (iter != 1 || dkm > 1 || ctr > 1) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    return CKR_OK;
}

/*
 * SP 800-108 counter and feedback modes. Additional derived keys
 * (ulAdditionalDerivedKeys) are refused: CKR_MECHANISM_PARAM_INVALID.
 */
static CK_RV p_kbkdf(const mech_row_t *row, const hsm_mech_t *m,
                     cops_params_t *p)
{
    bool feedback = row->derive == MECH_DERIVE_KBKDF_FEEDBACK;
    cops_hash_t h = COPS_HASH_NONE;

    if (m->layout !=
            (feedback ? HSM_MP_SP800_108_FEEDBACK : HSM_MP_SP800_108) ||
        !prf_of(m->u.kbkdf.prf_type, &h) || m->u.kbkdf.additional_keys != 0 ||
        (feedback ? !data_ok(&m->u.kbkdf.iv) : m->u.kbkdf.iv.len != 0) ||
        kbkdf_list(feedback, m->u.kbkdf.params, m->u.kbkdf.n_params) !=
            CKR_OK) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->hash = h;
    p->mech = m;
    return CKR_OK;
}

/* PBKDF2 PRFs. */
static cops_hash_t pbkdf2_prf(CK_ULONG prf)
{
    switch (prf) {
    case CKP_PKCS5_PBKD2_HMAC_SHA1:
        return COPS_HASH_SHA1;
    case CKP_PKCS5_PBKD2_HMAC_SHA224:
        return COPS_HASH_SHA224;
    case CKP_PKCS5_PBKD2_HMAC_SHA256:
        return COPS_HASH_SHA256;
    case CKP_PKCS5_PBKD2_HMAC_SHA384:
        return COPS_HASH_SHA384;
    case CKP_PKCS5_PBKD2_HMAC_SHA512:
        return COPS_HASH_SHA512;
    case CKP_PKCS5_PBKD2_HMAC_SHA512_224:
        return COPS_HASH_SHA512_224;
    case CKP_PKCS5_PBKD2_HMAC_SHA512_256:
        return COPS_HASH_SHA512_256;
    default:
        return COPS_HASH_NONE;
    }
}

/* CK_PKCS5_PBKD2_PARAMS2 (either layout, mechparam.c): the password, salt
 * and iteration count go to p for keygen.c. */
static CK_RV p_pbkdf2(const mech_row_t *row, const hsm_mech_t *m,
                      cops_params_t *p)
{
    (void)row;
    if (m->layout != HSM_MP_PBKDF2 ||
        m->u.pbkdf2.salt_source != CKZ_SALT_SPECIFIED ||
        !data_ok(&m->u.pbkdf2.salt) || m->u.pbkdf2.iterations == 0 ||
        m->u.pbkdf2.iterations > MECH_PBKDF2_ITER_MAX ||
        m->u.pbkdf2.prf_data.present || m->u.pbkdf2.prf_data.len != 0 ||
        m->u.pbkdf2.password.len == 0 || !data_ok(&m->u.pbkdf2.password)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->hash = pbkdf2_prf(m->u.pbkdf2.prf);
    if (p->hash == COPS_HASH_NONE) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->label = m->u.pbkdf2.password.data; /* the password, for keygen.c */
    p->label_len = m->u.pbkdf2.password.len;
    p->salt = bytes_ptr(&m->u.pbkdf2.salt);
    p->salt_bytes = m->u.pbkdf2.salt.len;
    p->iterations = m->u.pbkdf2.iterations;
    return CKR_OK;
}

/* CKM_CONCATENATE_BASE_AND_KEY: the other key's object id (the front end
 * puts the hsm_oid_t in place of the CK_OBJECT_HANDLE). */
static CK_RV p_concat_key(const mech_row_t *row, const hsm_mech_t *m,
                          cops_params_t *p)
{
    (void)row;
    if (m->layout != HSM_MP_OBJECT) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->mech = m;
    return CKR_OK;
}

/* CK_KEY_DERIVATION_STRING_DATA: concatenation, and AES-ECB of whole
 * blocks. */
static CK_RV p_string(const mech_row_t *row, const hsm_mech_t *m,
                      cops_params_t *p)
{
    if (m->layout != HSM_MP_KEY_DERIVATION_STRING || m->u.string.len == 0 ||
        !data_ok(&m->u.string) ||
        (row->derive == MECH_DERIVE_AES_ECB_DATA &&
         m->u.string.len % 16 != 0)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->mech = m;
    return CKR_OK;
}

static CK_RV p_aes_cbc_data(const mech_row_t *row, const hsm_mech_t *m,
                            cops_params_t *p)
{
    (void)row;
    if (m->layout != HSM_MP_AES_CBC_ENCRYPT_DATA ||
        m->u.cbc_data.data.len == 0 || m->u.cbc_data.data.len % 16 != 0 ||
        !data_ok(&m->u.cbc_data.data)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    p->mech = m;
    return CKR_OK;
}

/* ------------------------------------------------------------ the table */

#define SV (CKF_SIGN | CKF_VERIFY)
#define ED (CKF_ENCRYPT | CKF_DECRYPT)
/* Weierstrass curves over prime fields, named by OID or by name, points
 * returned uncompressed. */
#define ECF (CKF_EC_F_P | CKF_EC_OID | CKF_EC_CURVENAME | CKF_EC_UNCOMPRESS)
#define ECX (CKF_EC_OID | CKF_EC_CURVENAME)

#define K1(a) {(a)}, 1
#define K2(a, b) {(a), (b)}, 2
#define K3(a, b, c) {(a), (b), (c)}, 3
#define WU (CKF_WRAP | CKF_UNWRAP)
/* The fields of this issue, unset in the older positional rows. */
#define NOEXT false, MECH_WRAP_NONE, NULL, 0, MECH_DERIVE_NONE, false
/* Secret keys a KDF takes as its base. */
#define KDF_KEYS                                                               \
    {CKK_GENERIC_SECRET, CKK_HKDF,        CKK_AES,         CKK_SHA_1_HMAC,     \
     CKK_SHA224_HMAC,    CKK_SHA256_HMAC, CKK_SHA384_HMAC, CKK_SHA512_HMAC},   \
        8

/* A symmetric cipher row (key sizes in bytes). */
#define SYM_ROW(t, k, lo, hi, fl, mp, chk, im, wk, wr, pad, leg)               \
    {                                                                          \
        .type = (t), .kt = {(k)}, .nkt = 1, .min_key = (lo), .max_key = (hi),  \
        .flags = (fl), .multipart = (mp), .size_bytes = true,                  \
        .hash = COPS_HASH_NONE, .check = (chk), .impl = (im), .legacy = (leg), \
        .wrap_kind = (wk), .wrap = (wr), .wrap_pad = (pad)                     \
    }
#define AES_ROW(t, fl, mp, chk, im, wr, pad)                                   \
    SYM_ROW(t, CKK_AES, MECH_AES_MIN, MECH_AES_MAX, fl, mp, chk, im,           \
            ((fl)&CKF_WRAP) ? MECH_WRAP_CIPHER : MECH_WRAP_NONE, wr, pad,      \
            false)
/* Key wrap (RFC 3394, 5649): C_WrapKey and C_UnwrapKey only, so that a
 * wrapped key never comes out of C_Decrypt; key_separation = off lets the
 * cipher run through C_Encrypt / C_Decrypt again (mech_flags). */
#define KW_ROW(t, im, pad)                                                     \
    {                                                                          \
        .type = (t), .kt = {CKK_AES}, .nkt = 1, .min_key = MECH_AES_MIN,       \
        .max_key = MECH_AES_MAX, .flags = WU, .size_bytes = true,              \
        .hash = COPS_HASH_NONE, .check = p_kw, .impl = &(im),                  \
        .wrap_kind = MECH_WRAP_CIPHER, .wrap = &(im), .wrap_pad = (pad),       \
        .kw_cipher = true                                                      \
    }
#define DES3_ROW(t, chk, im, pad)                                              \
    SYM_ROW(t, CKK_DES3, MECH_DES3_LEN, MECH_DES3_LEN, ED | WU, true, chk,     \
            &(im), MECH_WRAP_CIPHER, &(im), pad, true)
#define GEN_ROW(t, k, lo, hi, leg)                                             \
    {                                                                          \
        .type = (t), .kt = {(k)}, .nkt = 1, .min_key = (lo), .max_key = (hi),  \
        .flags = CKF_GENERATE, .size_bytes = true, .hash = COPS_HASH_NONE,     \
        .check = p_none, .legacy = (leg)                                       \
    }
#define KDF_ROW(t, chk, d)                                                     \
    {                                                                          \
        .type = (t), .kt = KDF_KEYS, .min_key = 1,                             \
        .max_key = HSM_ATTR_VALUE_MAX, .flags = CKF_DERIVE,                    \
        .size_bytes = true, .hash = COPS_HASH_NONE, .check = (chk),            \
        .derive = (d)                                                          \
    }
#define AES_KDF_ROW(t, chk, d)                                                 \
    {                                                                          \
        .type = (t), .kt = {CKK_AES}, .nkt = 1, .min_key = MECH_AES_MIN,       \
        .max_key = MECH_AES_MAX, .flags = CKF_DERIVE, .size_bytes = true,      \
        .hash = COPS_HASH_NONE, .check = (chk), .derive = (d)                  \
    }

#define RSA_ROW(t, fl, mp, h, chk, impl)                                       \
    {                                                                          \
        (t), K1(CKK_RSA), MECH_RSA_MIN, MECH_RSA_MAX, (fl), (mp), false, (h),  \
            (chk), &(impl), NOEXT                                              \
    }
#define EC_ROW(t, mp, h, impl)                                                 \
    {                                                                          \
        (t), K1(CKK_EC), MECH_EC_MIN, MECH_EC_MAX, SV | ECF, (mp), false, (h), \
            p_none, &(impl), NOEXT                                             \
    }
#define DIGEST_ROW(t, h)                                                       \
    {                                                                          \
        (t), {0}, 0, 0, 0, CKF_DIGEST, true, false, (h), p_none, &cops_digest, \
            NOEXT                                                              \
    }
#define HMAC_ROW(t, kt, h, chk)                                                \
    {                                                                          \
        (t), K2(CKK_GENERIC_SECRET, (kt)), MECH_HMAC_MIN, MECH_HMAC_MAX, SV,   \
            true, true, (h), (chk), &cops_hmac, NOEXT                          \
    }

/* Sorted by type: a unit test checks it. */
static const mech_row_t mech_rows[] = {
    {CKM_RSA_PKCS_KEY_PAIR_GEN, K1(CKK_RSA), MECH_RSA_GEN_MIN, MECH_RSA_GEN_MAX,
     CKF_GENERATE_KEY_PAIR, false, false, COPS_HASH_NONE, p_none, NULL, NOEXT},
    {CKM_RSA_PKCS, K1(CKK_RSA), MECH_RSA_MIN, MECH_RSA_MAX, SV | ED | WU, false,
     false, COPS_HASH_NONE, p_none, &cops_rsa_pkcs, false, MECH_WRAP_CIPHER,
     &cops_rsa_pkcs, 0, MECH_DERIVE_NONE, false},
    RSA_ROW(CKM_RSA_X_509, SV | ED, false, COPS_HASH_NONE, p_none,
            cops_rsa_x509),
    RSA_ROW(CKM_SHA1_RSA_PKCS, SV, true, COPS_HASH_SHA1, p_none,
            cops_rsa_pkcs_hash),
    {CKM_RSA_PKCS_OAEP, K1(CKK_RSA), MECH_RSA_MIN, MECH_RSA_MAX, ED | WU, false,
     false, COPS_HASH_NONE, p_oaep, &cops_rsa_oaep, false, MECH_WRAP_CIPHER,
     &cops_rsa_oaep, 0, MECH_DERIVE_NONE, false},
    RSA_ROW(CKM_RSA_PKCS_PSS, SV, false, COPS_HASH_NONE, p_pss, cops_rsa_pss),
    RSA_ROW(CKM_SHA1_RSA_PKCS_PSS, SV, true, COPS_HASH_SHA1, p_pss,
            cops_rsa_pss_hash),
    RSA_ROW(CKM_SHA256_RSA_PKCS, SV, true, COPS_HASH_SHA256, p_none,
            cops_rsa_pkcs_hash),
    RSA_ROW(CKM_SHA384_RSA_PKCS, SV, true, COPS_HASH_SHA384, p_none,
            cops_rsa_pkcs_hash),
    RSA_ROW(CKM_SHA512_RSA_PKCS, SV, true, COPS_HASH_SHA512, p_none,
            cops_rsa_pkcs_hash),
    RSA_ROW(CKM_SHA256_RSA_PKCS_PSS, SV, true, COPS_HASH_SHA256, p_pss,
            cops_rsa_pss_hash),
    RSA_ROW(CKM_SHA384_RSA_PKCS_PSS, SV, true, COPS_HASH_SHA384, p_pss,
            cops_rsa_pss_hash),
    RSA_ROW(CKM_SHA512_RSA_PKCS_PSS, SV, true, COPS_HASH_SHA512, p_pss,
            cops_rsa_pss_hash),
    RSA_ROW(CKM_SHA224_RSA_PKCS, SV, true, COPS_HASH_SHA224, p_none,
            cops_rsa_pkcs_hash),
    RSA_ROW(CKM_SHA224_RSA_PKCS_PSS, SV, true, COPS_HASH_SHA224, p_pss,
            cops_rsa_pss_hash),
    DIGEST_ROW(CKM_SHA512_224, COPS_HASH_SHA512_224),
    DIGEST_ROW(CKM_SHA512_256, COPS_HASH_SHA512_256),
    RSA_ROW(CKM_SHA3_256_RSA_PKCS, SV, true, COPS_HASH_SHA3_256, p_none,
            cops_rsa_pkcs_hash),
    RSA_ROW(CKM_SHA3_384_RSA_PKCS, SV, true, COPS_HASH_SHA3_384, p_none,
            cops_rsa_pkcs_hash),
    RSA_ROW(CKM_SHA3_512_RSA_PKCS, SV, true, COPS_HASH_SHA3_512, p_none,
            cops_rsa_pkcs_hash),
    RSA_ROW(CKM_SHA3_256_RSA_PKCS_PSS, SV, true, COPS_HASH_SHA3_256, p_pss,
            cops_rsa_pss_hash),
    RSA_ROW(CKM_SHA3_384_RSA_PKCS_PSS, SV, true, COPS_HASH_SHA3_384, p_pss,
            cops_rsa_pss_hash),
    RSA_ROW(CKM_SHA3_512_RSA_PKCS_PSS, SV, true, COPS_HASH_SHA3_512, p_pss,
            cops_rsa_pss_hash),
    RSA_ROW(CKM_SHA3_224_RSA_PKCS, SV, true, COPS_HASH_SHA3_224, p_none,
            cops_rsa_pkcs_hash),
    RSA_ROW(CKM_SHA3_224_RSA_PKCS_PSS, SV, true, COPS_HASH_SHA3_224, p_pss,
            cops_rsa_pss_hash),
    GEN_ROW(CKM_DES3_KEY_GEN, CKK_DES3, MECH_DES3_LEN, MECH_DES3_LEN, true),
    DES3_ROW(CKM_DES3_ECB, p_none, cops_des3_ecb, 8),
    DES3_ROW(CKM_DES3_CBC, p_iv, cops_des3_cbc, 8),
    DES3_ROW(CKM_DES3_CBC_PAD, p_iv, cops_des3_cbc_pad, 0),
    DIGEST_ROW(CKM_SHA_1, COPS_HASH_SHA1),
    HMAC_ROW(CKM_SHA_1_HMAC, CKK_SHA_1_HMAC, COPS_HASH_SHA1, p_none),
    HMAC_ROW(CKM_SHA_1_HMAC_GENERAL, CKK_SHA_1_HMAC, COPS_HASH_SHA1,
             p_mac_general),
    DIGEST_ROW(CKM_SHA256, COPS_HASH_SHA256),
    HMAC_ROW(CKM_SHA256_HMAC, CKK_SHA256_HMAC, COPS_HASH_SHA256, p_none),
    HMAC_ROW(CKM_SHA256_HMAC_GENERAL, CKK_SHA256_HMAC, COPS_HASH_SHA256,
             p_mac_general),
    DIGEST_ROW(CKM_SHA224, COPS_HASH_SHA224),
    HMAC_ROW(CKM_SHA224_HMAC, CKK_SHA224_HMAC, COPS_HASH_SHA224, p_none),
    HMAC_ROW(CKM_SHA224_HMAC_GENERAL, CKK_SHA224_HMAC, COPS_HASH_SHA224,
             p_mac_general),
    DIGEST_ROW(CKM_SHA384, COPS_HASH_SHA384),
    HMAC_ROW(CKM_SHA384_HMAC, CKK_SHA384_HMAC, COPS_HASH_SHA384, p_none),
    HMAC_ROW(CKM_SHA384_HMAC_GENERAL, CKK_SHA384_HMAC, COPS_HASH_SHA384,
             p_mac_general),
    DIGEST_ROW(CKM_SHA512, COPS_HASH_SHA512),
    HMAC_ROW(CKM_SHA512_HMAC, CKK_SHA512_HMAC, COPS_HASH_SHA512, p_none),
    HMAC_ROW(CKM_SHA512_HMAC_GENERAL, CKK_SHA512_HMAC, COPS_HASH_SHA512,
             p_mac_general),
    DIGEST_ROW(CKM_SHA3_256, COPS_HASH_SHA3_256),
    DIGEST_ROW(CKM_SHA3_224, COPS_HASH_SHA3_224),
    DIGEST_ROW(CKM_SHA3_384, COPS_HASH_SHA3_384),
    DIGEST_ROW(CKM_SHA3_512, COPS_HASH_SHA3_512),
    {CKM_GENERIC_SECRET_KEY_GEN, K1(CKK_GENERIC_SECRET), MECH_SECRET_GEN_MIN,
     MECH_SECRET_GEN_MAX, CKF_GENERATE, false, false, COPS_HASH_NONE, p_none,
     NULL, NOEXT},
    KDF_ROW(CKM_CONCATENATE_BASE_AND_KEY, p_concat_key, MECH_DERIVE_CONCAT_KEY),
    KDF_ROW(CKM_CONCATENATE_BASE_AND_DATA, p_string, MECH_DERIVE_CONCAT_DATA),
    KDF_ROW(CKM_CONCATENATE_DATA_AND_BASE, p_string,
            MECH_DERIVE_CONCAT_DATA_BASE),
    KDF_ROW(CKM_SP800_108_COUNTER_KDF, p_kbkdf, MECH_DERIVE_KBKDF_COUNTER),
    KDF_ROW(CKM_SP800_108_FEEDBACK_KDF, p_kbkdf, MECH_DERIVE_KBKDF_FEEDBACK),
    {.type = CKM_PKCS5_PBKD2,
     .kt = {CKK_GENERIC_SECRET},
     .nkt = 1,
     .min_key = 1,
     .max_key = HSM_ATTR_VALUE_MAX,
     .flags = CKF_GENERATE,
     .size_bytes = true,
     .hash = COPS_HASH_NONE,
     .check = p_pbkdf2,
     .derive = MECH_DERIVE_PBKDF2},
    {CKM_EC_KEY_PAIR_GEN, K1(CKK_EC), MECH_EC_MIN, MECH_EC_MAX,
     CKF_GENERATE_KEY_PAIR | ECF, false, false, COPS_HASH_NONE, p_none, NULL,
     NOEXT},
    EC_ROW(CKM_ECDSA, false, COPS_HASH_NONE, cops_ecdsa),
    EC_ROW(CKM_ECDSA_SHA1, true, COPS_HASH_SHA1, cops_ecdsa_hash),
    EC_ROW(CKM_ECDSA_SHA224, true, COPS_HASH_SHA224, cops_ecdsa_hash),
    EC_ROW(CKM_ECDSA_SHA256, true, COPS_HASH_SHA256, cops_ecdsa_hash),
    EC_ROW(CKM_ECDSA_SHA384, true, COPS_HASH_SHA384, cops_ecdsa_hash),
    EC_ROW(CKM_ECDSA_SHA512, true, COPS_HASH_SHA512, cops_ecdsa_hash),
    EC_ROW(CKM_ECDSA_SHA3_224, true, COPS_HASH_SHA3_224, cops_ecdsa_hash),
    EC_ROW(CKM_ECDSA_SHA3_256, true, COPS_HASH_SHA3_256, cops_ecdsa_hash),
    EC_ROW(CKM_ECDSA_SHA3_384, true, COPS_HASH_SHA3_384, cops_ecdsa_hash),
    EC_ROW(CKM_ECDSA_SHA3_512, true, COPS_HASH_SHA3_512, cops_ecdsa_hash),
    {CKM_ECDH1_DERIVE, K2(CKK_EC, CKK_EC_MONTGOMERY), MECH_EC_MIN, MECH_EC_MAX,
     CKF_DERIVE | ECF, false, false, COPS_HASH_NONE, p_ecdh, NULL, false,
     MECH_WRAP_NONE, NULL, 0, MECH_DERIVE_ECDH, false},
    {CKM_RSA_AES_KEY_WRAP, K1(CKK_RSA), MECH_RSA_MIN, MECH_RSA_MAX, WU, false,
     false, COPS_HASH_NONE, p_rsa_aes, NULL, false, MECH_WRAP_RSA_AES, NULL, 0,
     MECH_DERIVE_NONE, false},
    {CKM_EC_EDWARDS_KEY_PAIR_GEN, K1(CKK_EC_EDWARDS), MECH_ED_MIN, MECH_ED_MAX,
     CKF_GENERATE_KEY_PAIR | ECX, false, false, COPS_HASH_NONE, p_none, NULL,
     NOEXT},
    {CKM_EC_MONTGOMERY_KEY_PAIR_GEN, K1(CKK_EC_MONTGOMERY), MECH_ED_MIN,
     MECH_ED_MAX, CKF_GENERATE_KEY_PAIR | ECX, false, false, COPS_HASH_NONE,
     p_none, NULL, NOEXT},
    {CKM_EDDSA, K1(CKK_EC_EDWARDS), MECH_ED_MIN, MECH_ED_MAX, SV | ECX, false,
     false, COPS_HASH_NONE, p_eddsa, &cops_eddsa, NOEXT},
    GEN_ROW(CKM_AES_KEY_GEN, CKK_AES, MECH_AES_MIN, MECH_AES_MAX, false),
    AES_ROW(CKM_AES_ECB, ED | WU, true, p_none, &cops_aes_ecb, &cops_aes_ecb,
            16),
    AES_ROW(CKM_AES_CBC, ED | WU, true, p_iv, &cops_aes_cbc, &cops_aes_cbc, 16),
    AES_ROW(CKM_AES_CBC_PAD, ED | WU, true, p_iv, &cops_aes_cbc_pad,
            &cops_aes_cbc_pad, 0),
    AES_ROW(CKM_AES_CTR, ED, true, p_ctr, &cops_aes_ctr, NULL, 0),
    AES_ROW(CKM_AES_GCM, ED | WU, true, p_gcm, &cops_aes_gcm, &cops_aes_gcm, 0),
    AES_ROW(CKM_AES_CCM, ED, true, p_ccm, &cops_aes_ccm, NULL, 0),
    AES_ROW(CKM_AES_CMAC, SV, true, p_none, &cops_aes_cmac, NULL, 0),
    AES_ROW(CKM_AES_CMAC_GENERAL, SV, true, p_cmac_general, &cops_aes_cmac,
            NULL, 0),
    AES_KDF_ROW(CKM_AES_ECB_ENCRYPT_DATA, p_string, MECH_DERIVE_AES_ECB_DATA),
    AES_KDF_ROW(CKM_AES_CBC_ENCRYPT_DATA, p_aes_cbc_data,
                MECH_DERIVE_AES_CBC_DATA),
    GEN_ROW(CKM_CHACHA20_KEY_GEN, CKK_CHACHA20, MECH_CHACHA_LEN,
            MECH_CHACHA_LEN, false),
    KW_ROW(CKM_AES_KEY_WRAP, cops_aes_kw, 8), /* zero-pads: any length */
    KW_ROW(CKM_AES_KEY_WRAP_KWP, cops_aes_kwp, 0),
    SYM_ROW(CKM_CHACHA20_POLY1305, CKK_CHACHA20, MECH_CHACHA_LEN,
            MECH_CHACHA_LEN, ED, true, p_chacha_poly, &cops_chacha20_poly,
            MECH_WRAP_NONE, NULL, 0, false),
    KDF_ROW(CKM_HKDF_DERIVE, p_hkdf, MECH_DERIVE_HKDF),
    KDF_ROW(CKM_HKDF_DATA, p_hkdf, MECH_DERIVE_HKDF_DATA),
    AES_ROW(CKM_CLOUDHSM_AES_GCM, ED | WU, false, p_cloud_gcm,
            &cops_cloudhsm_gcm, &cops_cloudhsm_gcm, 0),
    AES_ROW(CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD, WU, false, p_kw, NULL,
            &cops_aes_kw, 0),
    AES_ROW(CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD, WU, false, p_kw, NULL,
            &cops_aes_kw_pkcs5, 0),
    AES_ROW(CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD, WU, false, p_kw, NULL,
            &cops_aes_kwp, 0),
};

static int mech_cmp(const void *key, const void *elem)
{
    CK_MECHANISM_TYPE t = *(const CK_MECHANISM_TYPE *)key;
    const mech_row_t *r = elem;

    return t < r->type ? -1 : t > r->type;
}

const mech_row_t *mech_find(CK_MECHANISM_TYPE type)
{
    return bsearch(&type, mech_rows, UTIL_ARRAY_SIZE(mech_rows),
                   sizeof(mech_rows[0]), mech_cmp);
}

bool mech_is_key_wrap(const mech_row_t *row)
{
    return row->wrap_kind == MECH_WRAP_RSA_AES ||
           (row->wrap_kind == MECH_WRAP_CIPHER &&
            (row->wrap == &cops_aes_kw || row->wrap == &cops_aes_kwp ||
             row->wrap == &cops_aes_kw_pkcs5));
}

const mech_row_t *mech_table(size_t *n)
{
    *n = UTIL_ARRAY_SIZE(mech_rows);
    return mech_rows;
}

const mech_row_t *mech_find_enabled(const hsm_t *hsm, CK_MECHANISM_TYPE type)
{
    const mech_row_t *row = mech_find(type);

    if (row != NULL && row->legacy && hsm != NULL && !hsm->cfg.des3_enabled) {
        return NULL;
    }
    return row;
}

CK_FLAGS mech_kind_flag(hsm_opkind_t kind)
{
    static const CK_FLAGS flags[HSM_OPK_COUNT] = {
        [HSM_OPK_ENCRYPT] = CKF_ENCRYPT, [HSM_OPK_DECRYPT] = CKF_DECRYPT,
        [HSM_OPK_SIGN] = CKF_SIGN,       [HSM_OPK_VERIFY] = CKF_VERIFY,
        [HSM_OPK_DIGEST] = CKF_DIGEST,
    };

    return (unsigned)kind < HSM_OPK_COUNT ? flags[kind] : 0;
}

CK_FLAGS mech_flags(const hsm_t *hsm, const mech_row_t *row)
{
    CK_FLAGS f = row->flags;

    if (row->kw_cipher && hsm != NULL && !hsm->cfg.key_separation) {
        f |= CKF_ENCRYPT | CKF_DECRYPT;
    }
    return f;
}

bool mech_allows_key_type(const mech_row_t *row, CK_KEY_TYPE kt)
{
    for (size_t i = 0; i < row->nkt; i++) {
        if (row->kt[i] == kt) {
            return true;
        }
    }
    return false;
}

CK_RV mech_check_params(const mech_row_t *row, const hsm_mech_t *m,
                        cops_params_t *p)
{
    memset(p, 0, sizeof(*p));
    p->hash = row->hash;
    if (m->type != row->type) {
        return CKR_MECHANISM_INVALID; /* a caller's mistake: never reached */
    }
    if (hsm_mech_check(m) != CKR_OK) {
        return CKR_MECHANISM_PARAM_INVALID; /* not as a decoder makes it */
    }
    return row->check(row, m, p);
}

/* ------------------------------------------------------------ hsm.h */

CK_RV hsm_mech_list(hsm_t *hsm, CK_MECHANISM_TYPE **list, size_t *n)
{
    CK_MECHANISM_TYPE *out;
    size_t k = 0;

    *list = NULL;
    *n = 0;
    out = calloc(UTIL_ARRAY_SIZE(mech_rows), sizeof(*out));
    if (out == NULL) {
        return CKR_HOST_MEMORY;
    }
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(mech_rows); i++) {
        if (mech_find_enabled(hsm, mech_rows[i].type) != NULL) {
            out[k++] = mech_rows[i].type;
        }
    }
    *list = out;
    *n = k;
    return CKR_OK;
}

CK_RV hsm_mech_info(hsm_t *hsm, CK_MECHANISM_TYPE type, hsm_mech_info_t *info)
{
    const mech_row_t *row = mech_find_enabled(hsm, type);

    if (row == NULL) {
        return CKR_MECHANISM_INVALID;
    }
    info->min_key = row->min_key;
    info->max_key = row->max_key;
    info->flags = mech_flags(hsm, row);
    return CKR_OK;
}
