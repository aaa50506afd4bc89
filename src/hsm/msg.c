/*
 * msg.c - the PKCS#11 3.0 message-based encryption API (hsm.h
 * "message-based AEAD"): AES-GCM, AES-CCM and ChaCha20-Poly1305, one
 * message at a time, with the IV generators of CK_GCM_MESSAGE_PARAMS.
 *
 * An operation holds the key; each message makes its own cops_aead_t (one
 * EVP_CIPHER_CTX for the message). Decryption holds the message until its
 * last part and checks the tag before any plaintext leaves
 * (CKR_AEAD_DECRYPT_FAILED otherwise); CCM holds both ways (OpenSSL needs
 * the whole message).
 *
 * IV generation (encryption only): CKG_GENERATE and CKG_GENERATE_RANDOM
 * fill the bits after the first ulIvFixedBits with random bytes;
 * CKG_GENERATE_COUNTER puts a per-operation message counter (big-endian,
 * from 0) there; CKG_GENERATE_COUNTER_XOR XORs that counter into the
 * caller's IV. ulIvFixedBits must be a multiple of 8 (our choice;
 * CKR_MECHANISM_PARAM_INVALID otherwise); a counter that no longer fits
 * the free bits is CKR_MECHANISM_PARAM_INVALID. ChaCha20-Poly1305's message
 * parameter has no generator: the caller's nonce is used.
 *
 * Locking: the session and operation are found under hsm->lock; the crypto
 * runs without it on the session's own operation (the call gate admits one
 * call per session at a time, as for the other operations).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/crypto/cops.h"
#include "hsm/internal.h"
#include "hsm/mech.h"

struct hsm_msgop {
    cops_key_t *key;
    cops_aead_alg_t alg;
    bool enc;
    uint64_t counter; /* messages so far (CKG_GENERATE_COUNTER*) */
    cops_aead_t *cur; /* a message begun and not ended */
    uint64_t seq;     /* the connection's login sequence at the init */
};

void hsm_msgop_free(struct hsm_msgop *m)
{
    if (m == NULL) {
        return;
    }
    cops_aead_free(m->cur);
    cops_key_unref(m->key);
    free(m);
}

/* One message's parameter, read. */
typedef struct {
    const uint8_t *iv;
    size_t iv_len;
    size_t fixed_bytes;
    CK_GENERATOR_FUNCTION gen;
    const uint8_t *tag; /* decryption: the expected tag */
    size_t tag_len;
    size_t data_len; /* CCM */
} msg_param_t;

/*
 * The decoded message parameter (hsm_mech_decode_msg) of operation m:
 * its layout must be the one of the operation's algorithm. On decryption
 * the tag comes in it, exactly as long as the parameter says.
 */
static CK_RV msg_param(const struct hsm_msgop *m, const hsm_mech_t *param,
                       msg_param_t *mp)
{
    memset(mp, 0, sizeof(*mp));
    if (param == NULL || hsm_mech_check(param) != CKR_OK) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if (m->alg == COPS_AEAD_GCM) {
        const hsm_mp_gcm_msg_t *g = &param->u.gcm_msg;

        if (param->layout != HSM_MP_GCM_MESSAGE || g->iv.len == 0 ||
            g->iv.len > HSM_MSG_IV_MAX || g->iv_fixed_bits % 8 != 0 ||
            g->iv_fixed_bits > g->iv.len * 8 || !g->tag.present ||
            g->tag_bits < 32 || g->tag_bits > 128 || g->tag_bits % 8 != 0 ||
            g->generator > CKG_GENERATE_COUNTER_XOR ||
            (!m->enc && g->tag.len != g->tag_bits / 8)) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        mp->iv = g->iv.data;
        mp->iv_len = g->iv.len;
        mp->fixed_bytes = g->iv_fixed_bits / 8;
        mp->gen = g->generator;
        mp->tag = g->tag.data;
        mp->tag_len = g->tag_bits / 8;
        return CKR_OK;
    }
    if (m->alg == COPS_AEAD_CCM) {
        const hsm_mp_ccm_msg_t *c = &param->u.ccm_msg;

        if (param->layout != HSM_MP_CCM_MESSAGE || c->nonce.len < 7 ||
            c->nonce.len > 13 || c->nonce_fixed_bits % 8 != 0 ||
            c->nonce_fixed_bits > c->nonce.len * 8 || !c->mac.present ||
            c->mac_len < 4 || c->mac_len > 16 || c->mac_len % 2 != 0 ||
            c->generator > CKG_GENERATE_COUNTER_XOR ||
            c->data_len > COPS_AEAD_HOLD_MAX ||
            (!m->enc && c->mac.len != c->mac_len)) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        mp->iv = c->nonce.data;
        mp->iv_len = c->nonce.len;
        mp->fixed_bytes = c->nonce_fixed_bits / 8;
        mp->gen = c->generator;
        mp->tag = c->mac.data;
        mp->tag_len = c->mac_len;
        mp->data_len = c->data_len;
        return CKR_OK;
    }
    {
        const hsm_mp_chacha_msg_t *c = &param->u.chacha_msg;

        if (param->layout != HSM_MP_CHACHA20_POLY1305_MESSAGE ||
            c->nonce.len != 12 || !c->tag.present ||
            (!m->enc && c->tag.len != 16)) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        mp->iv = c->nonce.data;
        mp->iv_len = 12;
        mp->gen = CKG_NO_GENERATE;
        mp->tag = c->tag.data;
        mp->tag_len = 16;
        return CKR_OK;
    }
}

/* The IV of this message into res (made on encryption when asked). */
static CK_RV msg_iv(struct hsm_msgop *m, const msg_param_t *mp,
                    hsm_msg_result_t *res)
{
    size_t free_bytes = mp->iv_len - mp->fixed_bytes;
    uint64_t ctr = m->counter;
    CK_RV rv;

    memcpy(res->iv, mp->iv, mp->iv_len);
    res->iv_len = mp->iv_len;
    if (!m->enc || mp->gen == CKG_NO_GENERATE) {
        return CKR_OK;
    }
    if (free_bytes == 0) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    switch (mp->gen) {
    case CKG_GENERATE:
    case CKG_GENERATE_RANDOM:
        rv = crypto_random(res->iv + mp->fixed_bytes, free_bytes);
        if (rv != CKR_OK) {
            return rv;
        }
        break;
    case CKG_GENERATE_COUNTER:
    case CKG_GENERATE_COUNTER_XOR:
        if (free_bytes < 8 && ctr >> (8 * free_bytes) != 0) {
            return CKR_MECHANISM_PARAM_INVALID; /* the counter is spent */
        }
        for (size_t i = 0; i < free_bytes; i++) {
            size_t shift = 8 * i;
            uint8_t b = (uint8_t)(shift < 64 ? ctr >> shift : 0);
            uint8_t *dst = &res->iv[mp->iv_len - 1 - i];

            *dst = mp->gen == CKG_GENERATE_COUNTER ? b : (uint8_t)(*dst ^ b);
        }
        break;
    default:
        return CKR_MECHANISM_PARAM_INVALID;
    }
    m->counter++;
    return CKR_OK;
}

/* ------------------------------------------------------------ state */

static CK_RV msg_get(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                     struct hsm_msgop **m)
{
    struct hsm_session *s;
    CK_RV rv;

    *m = NULL;
    if ((unsigned)kind > HSM_MSG_DECRYPT) {
        return CKR_GENERAL_ERROR;
    }
    pthread_mutex_lock(&conn->hsm->lock);
    rv = hsm_begin_locked(conn, sid, HSM_OP_ENCRYPT_DECRYPT, &s);
    if (rv == CKR_OK) {
        *m = s->msg[kind];
        if (*m == NULL) {
            rv = CKR_OPERATION_NOT_INITIALIZED;
        } else if ((*m)->seq != hsm_conn_login_seq(conn)) {
            *m = NULL; /* begun under a login that has ended */
            rv = CKR_USER_NOT_LOGGED_IN;
        }
    }
    pthread_mutex_unlock(&conn->hsm->lock);
    return rv;
}

/* The AEAD family of a row. */
static bool msg_alg(const mech_row_t *row, cops_aead_alg_t *alg)
{
    if (row->impl == &cops_aes_gcm) {
        *alg = COPS_AEAD_GCM;
    } else if (row->impl == &cops_aes_ccm) {
        *alg = COPS_AEAD_CCM;
    } else if (row->impl == &cops_chacha20_poly) {
        *alg = COPS_AEAD_CHACHA;
    } else {
        return false;
    }
    return true;
}

CK_RV hsm_msg_init(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                   const hsm_mech_t *mech, hsm_oid_t key)
{
    HSM_CALL_SESSION(conn, sid);
    hsm_t *hsm = conn->hsm;
    const mech_row_t *row;
    struct hsm_session *s;
    struct hsm_obj o;
    struct hsm_msgop *m = NULL;
    cops_key_t *ck = NULL;
    cops_aead_alg_t alg;
    CK_RV rv;

    return_val_if_fail(mech != NULL, CKR_GENERAL_ERROR);
    if ((unsigned)kind > HSM_MSG_DECRYPT) {
        return CKR_GENERAL_ERROR;
    }
    memset(&o, 0, sizeof(o));
    row = mech_find_enabled(hsm, mech->type);
    pthread_mutex_lock(&hsm->lock);
    if ((rv = hsm_begin_locked(conn, sid, HSM_OP_ENCRYPT_DECRYPT, &s)) !=
        CKR_OK) {
        goto out;
    }
    if (s->msg[kind] != NULL) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (row == NULL || !msg_alg(row, &alg)) {
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    if ((rv = hsm_ops_key_locked(
             conn, row, key, HSM_ACCESS_USE,
             kind == HSM_MSG_ENCRYPT ? CKA_ENCRYPT : CKA_DECRYPT, &o, &ck)) !=
        CKR_OK) {
        goto out;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    m->key = ck;
    ck = NULL;
    m->seq = hsm_conn_login_seq(conn);
    m->alg = alg;
    m->enc = kind == HSM_MSG_ENCRYPT;
    s->msg[kind] = m;
    m = NULL;
out:
    pthread_mutex_unlock(&hsm->lock);
    hsm_obj_clear(&o);
    cops_key_unref(ck);
    hsm_msgop_free(m);
    return rv;
}

static CK_RV aead_fail(CK_RV rv)
{
    return rv == CKR_ENCRYPTED_DATA_INVALID ? CKR_AEAD_DECRYPT_FAILED : rv;
}

CK_RV hsm_msg_oneshot(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                      const hsm_mech_t *param, const uint8_t *aad,
                      size_t aadlen, const uint8_t *in, size_t inlen,
                      uint8_t *out, size_t *outlen, hsm_msg_result_t *res)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_msgop *m;
    cops_aead_t *a = NULL;
    msg_param_t mp;
    size_t got = 0, fin;
    CK_RV rv;

    memset(res, 0, sizeof(*res));
    if ((rv = msg_get(conn, sid, kind, &m)) != CKR_OK) {
        return rv;
    }
    if (m->cur != NULL) {
        return CKR_OPERATION_ACTIVE;
    }
    if ((rv = msg_param(m, param, &mp)) != CKR_OK) {
        return rv;
    }
    if (m->alg == COPS_AEAD_CCM && mp.data_len != inlen) {
        return m->enc ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE;
    }
    if (*outlen < inlen) {
        *outlen = inlen;
        return CKR_BUFFER_TOO_SMALL;
    }
    if ((rv = msg_iv(m, &mp, res)) != CKR_OK ||
        (rv = cops_aead_new(m->key, m->alg, m->enc, !m->enc, res->iv,
                            res->iv_len, mp.tag_len, mp.data_len, &a)) !=
            CKR_OK ||
        (rv = cops_aead_aad(a, aad, aadlen)) != CKR_OK) {
        goto out;
    }
    got = *outlen;
    if ((rv = cops_aead_update(a, in, inlen, out, &got)) != CKR_OK) {
        goto out;
    }
    fin = *outlen - got;
    if (m->enc) {
        rv = cops_aead_final(a, out + got, &fin, res->tag);
        res->tag_len = mp.tag_len;
    } else {
        rv = cops_aead_final(a, out + got, &fin, (uint8_t *)mp.tag);
    }
    if (rv == CKR_OK) {
        *outlen = got + fin;
    }
out:
    cops_aead_free(a);
    if (rv != CKR_OK) {
        res->tag_len = 0;
    }
    return aead_fail(rv);
}

CK_RV hsm_msg_begin(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                    const hsm_mech_t *param, const uint8_t *aad, size_t aadlen,
                    hsm_msg_result_t *res)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_msgop *m;
    cops_aead_t *a = NULL;
    msg_param_t mp;
    CK_RV rv;

    memset(res, 0, sizeof(*res));
    if ((rv = msg_get(conn, sid, kind, &m)) != CKR_OK) {
        return rv;
    }
    if (m->cur != NULL) {
        return CKR_OPERATION_ACTIVE;
    }
    if ((rv = msg_param(m, param, &mp)) != CKR_OK ||
        (rv = msg_iv(m, &mp, res)) != CKR_OK ||
        (rv = cops_aead_new(m->key, m->alg, m->enc, !m->enc, res->iv,
                            res->iv_len, mp.tag_len, mp.data_len, &a)) !=
            CKR_OK ||
        (rv = cops_aead_aad(a, aad, aadlen)) != CKR_OK) {
        cops_aead_free(a);
        return rv;
    }
    /* A message in parts is kept whole until its tag: bounded. */
    cops_aead_set_hold_max(a, conn->hsm->cfg.aead_max_buffer);
    m->cur = a;
    return CKR_OK;
}

CK_RV hsm_msg_next(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                   const hsm_mech_t *param, const uint8_t *in, size_t inlen,
                   bool last, uint8_t *out, size_t *outlen,
                   hsm_msg_result_t *res)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_msgop *m;
    msg_param_t mp;
    size_t need, got, fin;
    CK_RV rv;

    memset(res, 0, sizeof(*res));
    if ((rv = msg_get(conn, sid, kind, &m)) != CKR_OK) {
        return rv;
    }
    if (m->cur == NULL) {
        return CKR_OPERATION_NOT_INITIALIZED;
    }
    if ((rv = msg_param(m, param, &mp)) != CKR_OK) {
        goto end;
    }
    need = cops_aead_update_len(m->cur, inlen);
    if (last) {
        need = cops_aead_final_len(m->cur) + inlen;
    }
    if (*outlen < need) {
        *outlen = need;
        return CKR_BUFFER_TOO_SMALL;
    }
    got = *outlen;
    if ((rv = cops_aead_update(m->cur, in, inlen, out, &got)) != CKR_OK ||
        !last) {
        if (rv == CKR_OK) {
            *outlen = got;
            return CKR_OK;
        }
        goto end;
    }
    fin = *outlen - got;
    if (m->enc) {
        rv = cops_aead_final(m->cur, out + got, &fin, res->tag);
        res->tag_len = rv == CKR_OK ? mp.tag_len : 0;
    } else {
        rv = cops_aead_final(m->cur, out + got, &fin, (uint8_t *)mp.tag);
    }
    if (rv == CKR_OK) {
        *outlen = got + fin;
    }
end:
    /* Too much ciphertext held: the decryption side's code for it. */
    if (!m->enc && rv == CKR_DATA_LEN_RANGE) {
        rv = CKR_ENCRYPTED_DATA_LEN_RANGE;
    }
    /* The message ends: with its last part, or with an error. */
    cops_aead_free(m->cur);
    m->cur = NULL;
    return aead_fail(rv);
}

CK_RV hsm_msg_output_len(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind,
                         bool last, size_t inlen, size_t *outlen)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_msgop *m;
    CK_RV rv;

    *outlen = 0;
    if ((rv = msg_get(conn, sid, kind, &m)) != CKR_OK) {
        return rv;
    }
    if (m->cur == NULL) {
        *outlen = inlen;
    } else if (last) {
        *outlen = cops_aead_final_len(m->cur) + inlen;
    } else {
        *outlen = cops_aead_update_len(m->cur, inlen);
    }
    return CKR_OK;
}

CK_RV hsm_msg_final(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind)
{
    HSM_CALL_SESSION(conn, sid);
    struct hsm_session *s;
    struct hsm_msgop *m = NULL;
    CK_RV rv;

    if ((unsigned)kind > HSM_MSG_DECRYPT) {
        return CKR_GENERAL_ERROR;
    }
    pthread_mutex_lock(&conn->hsm->lock);
    rv = hsm_begin_locked(conn, sid, HSM_OP_ENCRYPT_DECRYPT, &s);
    if (rv == CKR_OK) {
        m = s->msg[kind];
        s->msg[kind] = NULL;
        if (m == NULL) {
            rv = CKR_OPERATION_NOT_INITIALIZED;
        }
    }
    pthread_mutex_unlock(&conn->hsm->lock);
    hsm_msgop_free(m);
    return rv;
}

void hsm_msg_abort(hsm_conn_t *conn, hsm_sid_t sid, hsm_msgkind_t kind)
{
    HSM_CALL_SESSION_VOID(conn, sid);
    struct hsm_session *s;
    struct hsm_msgop *m = NULL;

    if ((unsigned)kind > HSM_MSG_DECRYPT) {
        return;
    }
    pthread_mutex_lock(&conn->hsm->lock);
    s = hsm_session_find_locked(conn, sid);
    if (s != NULL) {
        m = s->msg[kind];
        s->msg[kind] = NULL;
    }
    pthread_mutex_unlock(&conn->hsm->lock);
    hsm_msgop_free(m);
}
