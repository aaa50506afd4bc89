/*
 * sym.c - symmetric ciphers behind the mechanism table: AES and DES3 in
 * ECB, CBC, CBC with PKCS#7 padding and CTR; the AEADs (AES-GCM, AES-CCM,
 * ChaCha20-Poly1305), also as one-message objects for the 3.0 message
 * API; AES key wrap (RFC 3394, RFC 5649, and the cloud HSM's PKCS#5-padded
 * variant); AES-CMAC.
 *
 * Each operation keeps one EVP_CIPHER_CTX (or EVP_MAC_CTX) from init to
 * the end: nothing is fetched again per update.
 *
 * Length rules (PKCS#11 3.0 section 2.14 and the mechanism tables): ECB and
 * CBC take whole blocks (else CKR_DATA_LEN_RANGE, or
 * CKR_ENCRYPTED_DATA_LEN_RANGE when decrypting); CBC_PAD ciphertext is
 * whole blocks and a bad padding is CKR_ENCRYPTED_DATA_INVALID; a GCM, CCM
 * or ChaCha20-Poly1305 tag that does not match is CKR_ENCRYPTED_DATA_INVALID
 * and releases no plaintext (decryption holds the data until the final
 * step); CTR refuses to wrap its ulCounterBits counter (CKR_DATA_LEN_RANGE).
 * One-shot results are computed once and kept, so that a
 * CKR_BUFFER_TOO_SMALL answer leaves the operation usable.
 */
#include "config.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/crypto/cops.h"
#include "hsm/crypto/crypto.h"

/* Largest piece handed to OpenSSL at once (its lengths are int). */
#define SYM_CHUNK (1u << 30)

enum {
    V_ECB = 1,
    V_CBC,
    V_CBC_PAD,
    V_CTR,
    V_GCM,
    V_CLOUD_GCM,
    V_CCM,
    V_CHACHA,
    V_KW,
    V_KWP,
    V_KW_PKCS5,
};

static bool is_enc(const cops_op_t *op)
{
    return op->kind == HSM_OPK_ENCRYPT;
}

static CK_RV len_error(const cops_op_t *op)
{
    return is_enc(op) ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE;
}

/* The ciphers sym.c uses, by index: AES (7 modes for each of the three
 * key lengths), then DES3 and ChaCha20-Poly1305. */
enum { SYM_AES_MODES = 7 };
static const char *const sym_cipher_names[] = {
    "AES-128-ECB",      "AES-128-CBC",      "AES-128-CTR",
    "AES-128-GCM",      "AES-128-CCM",      "AES-128-WRAP",
    "AES-128-WRAP-PAD", "AES-192-ECB",      "AES-192-CBC",
    "AES-192-CTR",      "AES-192-GCM",      "AES-192-CCM",
    "AES-192-WRAP",     "AES-192-WRAP-PAD", "AES-256-ECB",
    "AES-256-CBC",      "AES-256-CTR",      "AES-256-GCM",
    "AES-256-CCM",      "AES-256-WRAP",     "AES-256-WRAP-PAD",
    "DES-EDE3-ECB",     "DES-EDE3-CBC",     "ChaCha20-Poly1305",
};
#define SYM_CIPHERS UTIL_ARRAY_SIZE(sym_cipher_names)
#define SYM_DES3_ECB (3 * SYM_AES_MODES)
#define SYM_CHACHA (3 * SYM_AES_MODES + 2)

/* Fetched once while cops_cache_on() (see digest.c). */
static _Atomic(EVP_CIPHER *) sym_cache[SYM_CIPHERS];

void cops_sym_cache_clear(void)
{
    for (size_t i = 0; i < SYM_CIPHERS; i++) {
        EVP_CIPHER_free(atomic_exchange(&sym_cache[i], NULL));
    }
}

/* The index of a key and mode in sym_cipher_names; -1 for none. */
static int cipher_index(const cops_key_t *k, int v)
{
    int mode;

    if (k == NULL || k->secret == NULL) {
        return -1;
    }
    if (k->kt == CKK_DES3) {
        if (k->secret_len != 24) {
            return -1;
        }
        if (v == V_ECB) {
            return SYM_DES3_ECB;
        }
        return v == V_CBC || v == V_CBC_PAD ? SYM_DES3_ECB + 1 : -1;
    }
    if (k->kt == CKK_CHACHA20) {
        return k->secret_len == 32 && v == V_CHACHA ? SYM_CHACHA : -1;
    }
    if (k->kt != CKK_AES ||
        (k->secret_len != 16 && k->secret_len != 24 && k->secret_len != 32)) {
        return -1;
    }
    switch (v) {
    case V_ECB:
        mode = 0;
        break;
    case V_CBC:
    case V_CBC_PAD:
        mode = 1;
        break;
    case V_CTR:
        mode = 2;
        break;
    case V_GCM:
    case V_CLOUD_GCM:
        mode = 3;
        break;
    case V_CCM:
        mode = 4;
        break;
    case V_KW:
    case V_KW_PKCS5:
        mode = 5;
        break;
    case V_KWP:
        mode = 6;
        break;
    default:
        return -1;
    }
    return (int)(k->secret_len / 8 - 2) * SYM_AES_MODES + mode;
}

/* The OpenSSL cipher for a key and mode (a new reference); NULL when the
 * pair makes none. */
static EVP_CIPHER *cipher_for(const cops_key_t *k, int v)
{
    int i = cipher_index(k, v);
    EVP_CIPHER *c, *none = NULL;

    if (i < 0) {
        return NULL;
    }
    if (cops_cache_on() && (c = atomic_load(&sym_cache[i])) != NULL) {
        return EVP_CIPHER_up_ref(c) == 1 ? c : NULL;
    }
    c = EVP_CIPHER_fetch(crypto_libctx(), sym_cipher_names[i], NULL);
    if (c == NULL || !cops_cache_on() || EVP_CIPHER_up_ref(c) != 1) {
        return c;
    }
    if (!atomic_compare_exchange_strong(&sym_cache[i], &none, c)) {
        EVP_CIPHER_free(c); /* another thread cached it first */
    }
    return c;
}

/* One EVP_CipherUpdate over any length. */
static bool evp_update(EVP_CIPHER_CTX *ctx, uint8_t *out, size_t *outlen,
                       const uint8_t *in, size_t inlen)
{
    size_t done = 0;

    *outlen = 0;
    while (done < inlen) {
        size_t n = inlen - done > SYM_CHUNK ? SYM_CHUNK : inlen - done;
        int got = 0;

        if (EVP_CipherUpdate(ctx, out != NULL ? out + *outlen : NULL, &got,
                             in + done, (int)n) != 1) {
            return false;
        }
        *outlen += (size_t)got;
        done += n;
    }
    return true;
}

/* ------------------------------------------------------------ results */

/* What every symmetric operation keeps. */
typedef struct {
    EVP_CIPHER_CTX *ctx;
    size_t bs;       /* block size (1 for stream modes) */
    size_t buffered; /* bytes OpenSSL holds (block modes) */
    bool pad;
    /* CTR: counter values available (UINT64_MAX: no practical limit)
     * and bytes processed so far. */
    uint64_t ctr_left;
    uint64_t ctr_bytes;
    /* A computed result not yet delivered (buffer too small). */
    uint8_t *res;
    size_t res_len;
    bool res_ready;
    /* AEADs */
    cops_aead_t *aead;
    uint8_t *aad;
    size_t aad_len;
    uint8_t iv[COPS_IV_MAX];
    size_t iv_len;
    bool iv_made; /* the token made iv */
    size_t tag_len;
    uint8_t *hold; /* decryption / CCM input kept until the end */
    size_t hold_len, hold_cap;
    size_t hold_max; /* most bytes kept (config aead_max_buffer) */
} sym_state_t;

static sym_state_t *st_of(const cops_op_t *op)
{
    return op->state;
}

/* Delivers a kept result. */
static CK_RV deliver(sym_state_t *st, uint8_t *out, size_t *outlen)
{
    if (*outlen < st->res_len) {
        *outlen = st->res_len;
        return CKR_BUFFER_TOO_SMALL;
    }
    if (st->res_len > 0) {
        memcpy(out, st->res, st->res_len);
    }
    *outlen = st->res_len;
    util_free_wipe(st->res, st->res_len);
    st->res = NULL;
    st->res_len = 0;
    st->res_ready = false;
    return CKR_OK;
}

static CK_RV keep_result(sym_state_t *st, uint8_t *buf, size_t len)
{
    st->res = buf;
    st->res_len = len;
    st->res_ready = true;
    return CKR_OK;
}

static CK_RV hold_append(sym_state_t *st, const uint8_t *in, size_t inlen)
{
    if (inlen == 0) {
        return CKR_OK;
    }
    if (inlen > st->hold_max - st->hold_len) {
        return CKR_DATA_LEN_RANGE;
    }
    if (st->hold_len + inlen > st->hold_cap) {
        size_t cap = st->hold_cap == 0 ? 256 : st->hold_cap;
        uint8_t *nb;

        while (cap < st->hold_len + inlen) {
            cap *= 2;
        }
        nb = malloc(cap);
        if (nb == NULL) {
            return CKR_HOST_MEMORY;
        }
        if (st->hold_len > 0) {
            memcpy(nb, st->hold, st->hold_len);
        }
        util_free_wipe(st->hold, st->hold_cap);
        st->hold = nb;
        st->hold_cap = cap;
    }
    memcpy(st->hold + st->hold_len, in, inlen);
    st->hold_len += inlen;
    return CKR_OK;
}

static void sym_cleanup(cops_op_t *op)
{
    sym_state_t *st = st_of(op);

    if (st == NULL) {
        return;
    }
    EVP_CIPHER_CTX_free(st->ctx);
    util_free_wipe(st->res, st->res_len);
    cops_aead_free(st->aead);
    util_free_wipe(st->aad, st->aad_len);
    util_free_wipe(st->hold, st->hold_cap);
    crypto_wipe(st, sizeof(*st));
    free(st);
    op->state = NULL;
}

static CK_RV state_new(cops_op_t *op)
{
    op->state = calloc(1, sizeof(sym_state_t));
    return op->state != NULL ? CKR_OK : CKR_HOST_MEMORY;
}

/* ------------------------------------------------------------ blocks */

static CK_RV block_init(cops_op_t *op, const cops_params_t *p)
{
    int v = op->impl->variant;
    EVP_CIPHER *c;
    sym_state_t *st;
    const uint8_t *iv = NULL;
    CK_RV rv;

    if ((rv = state_new(op)) != CKR_OK) {
        return rv;
    }
    st = st_of(op);
    c = cipher_for(op->key, v);
    if (c == NULL) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    st->bs = v == V_CTR ? 1 : (size_t)EVP_CIPHER_get_block_size(c);
    if (v == V_CBC || v == V_CBC_PAD) {
        if (p->iv == NULL || p->iv_len != st->bs) {
            EVP_CIPHER_free(c);
            return CKR_MECHANISM_PARAM_INVALID;
        }
        iv = p->iv;
    } else if (v == V_CTR) {
        if (p->iv == NULL || p->iv_len != 16 || p->ctr_bits == 0 ||
            p->ctr_bits > 128) {
            EVP_CIPHER_free(c);
            return CKR_MECHANISM_PARAM_INVALID;
        }
        iv = p->iv;
        st->ctr_left = UINT64_MAX;
        if (p->ctr_bits < 64) {
            uint64_t ctr = 0;

            for (size_t i = 8; i < 16; i++) {
                ctr = (ctr << 8) | p->iv[i];
            }
            ctr &= (UINT64_C(1) << p->ctr_bits) - 1;
            st->ctr_left = (UINT64_C(1) << p->ctr_bits) - ctr;
        }
    }
    st->pad = v == V_CBC_PAD;
    st->ctx = EVP_CIPHER_CTX_new();
    if (st->ctx == NULL ||
        EVP_CipherInit_ex2(st->ctx, c, op->key->secret, iv, is_enc(op), NULL) !=
            1 ||
        EVP_CIPHER_CTX_set_padding(st->ctx, st->pad ? 1 : 0) != 1) {
        cops_log_ossl("EVP_CipherInit_ex2");
        EVP_CIPHER_free(c);
        return CKR_FUNCTION_FAILED;
    }
    EVP_CIPHER_free(c);
    return CKR_OK;
}

/* Another ECB, CBC or CBC-PAD operation on the same key: the context
 * keeps its key schedule and takes the new IV (CTR is not reset: its
 * counter budget is worked out at init). */
static CK_RV block_reset(cops_op_t *op, const cops_params_t *prev)
{
    const cops_params_t *p = &op->p;
    sym_state_t *st = st_of(op);
    int v = op->impl->variant;

    (void)prev;
    if (st == NULL || st->ctx == NULL ||
        (v != V_ECB && v != V_CBC && v != V_CBC_PAD)) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (v != V_ECB && (p->iv == NULL || p->iv_len != st->bs)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    util_free_wipe(st->res, st->res_len);
    st->res = NULL;
    st->res_len = 0;
    st->res_ready = false;
    st->buffered = 0;
    if (EVP_CipherInit_ex2(st->ctx, NULL, NULL, v == V_ECB ? NULL : p->iv,
                           is_enc(op), NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(st->ctx, st->pad ? 1 : 0) != 1) {
        cops_log_ossl("EVP_CipherInit_ex2");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static size_t block_update_len(const sym_state_t *st, size_t inlen)
{
    if (st->bs == 1) {
        return inlen;
    }
    return (st->buffered + inlen) / st->bs * st->bs;
}

static size_t block_final_len(const cops_op_t *op)
{
    const sym_state_t *st = st_of(op);

    if (!st->pad) {
        return 0;
    }
    return is_enc(op) ? st->bs - st->buffered % st->bs : st->bs;
}

/* CTR: whether inlen more bytes fit in the counter (each block of 16
 * bytes takes one counter value). */
static bool ctr_fits(sym_state_t *st, size_t inlen, bool commit)
{
    uint64_t total = st->ctr_bytes + inlen;

    if (st->ctr_left != UINT64_MAX &&
        total / 16 + (total % 16 != 0) > st->ctr_left) {
        return false;
    }
    if (commit) {
        st->ctr_bytes = total;
    }
    return true;
}

static CK_RV block_update(cops_op_t *op, const uint8_t *in, size_t inlen,
                          uint8_t *out, size_t *outlen)
{
    sym_state_t *st = st_of(op);
    size_t need = block_update_len(st, inlen), got;

    if (*outlen < need) {
        *outlen = need;
        return CKR_BUFFER_TOO_SMALL;
    }
    if (op->impl->variant == V_CTR && !ctr_fits(st, inlen, true)) {
        return len_error(op);
    }
    if (!evp_update(st->ctx, out, &got, in, inlen)) {
        cops_log_ossl("EVP_CipherUpdate");
        return CKR_FUNCTION_FAILED;
    }
    st->buffered = (st->buffered + inlen - got);
    if (st->bs > 1) {
        st->buffered %= st->bs;
        if (!is_enc(op) && st->pad && got < need) {
            st->buffered = st->bs; /* OpenSSL keeps the last block */
        }
    }
    *outlen = got;
    return CKR_OK;
}

/* The final step into st->res. */
static CK_RV block_finish(cops_op_t *op)
{
    sym_state_t *st = st_of(op);
    uint8_t buf[32];
    int n = 0;

    if (!st->pad && st->bs > 1 && st->buffered != 0) {
        return len_error(op);
    }
    if (st->pad && !is_enc(op) && st->buffered % st->bs != 0) {
        return CKR_ENCRYPTED_DATA_LEN_RANGE;
    }
    if (EVP_CipherFinal_ex(st->ctx, buf, &n) != 1) {
        ERR_clear_error();
        return is_enc(op) ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_INVALID;
    }
    st->res = malloc(n > 0 ? (size_t)n : 1);
    if (st->res == NULL) {
        crypto_wipe(buf, sizeof(buf));
        return CKR_HOST_MEMORY;
    }
    memcpy(st->res, buf, (size_t)n);
    crypto_wipe(buf, sizeof(buf));
    st->res_len = (size_t)n;
    st->res_ready = true;
    return CKR_OK;
}

static CK_RV block_final(cops_op_t *op, uint8_t *out, size_t *outlen)
{
    sym_state_t *st = st_of(op);
    CK_RV rv;

    if (!st->res_ready && (rv = block_finish(op)) != CKR_OK) {
        return rv;
    }
    return deliver(st, out, outlen);
}

static CK_RV block_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                           uint8_t *out, size_t *outlen)
{
    sym_state_t *st = st_of(op);
    size_t cap, got = 0, fin;
    uint8_t *buf;
    CK_RV rv;

    if (st->res_ready) {
        return deliver(st, out, outlen);
    }
    if (st->bs > 1 && (!st->pad || !is_enc(op)) && inlen % st->bs != 0) {
        return len_error(op);
    }
    if (st->pad && !is_enc(op) && inlen == 0) {
        return CKR_ENCRYPTED_DATA_LEN_RANGE;
    }
    cap = inlen + st->bs;
    buf = malloc(cap);
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    got = cap;
    rv = block_update(op, in, inlen, buf, &got);
    if (rv == CKR_OK) {
        rv = block_finish(op);
    }
    if (rv != CKR_OK) {
        util_free_wipe(buf, cap);
        return rv;
    }
    fin = st->res_len;
    memcpy(buf + got, st->res, fin);
    util_free_wipe(st->res, fin);
    keep_result(st, buf, got + fin);
    return deliver(st, out, outlen);
}

/* ------------------------------------------------------------ AEAD ops */

static cops_aead_alg_t aead_alg(int v)
{
    if (v == V_CCM) {
        return COPS_AEAD_CCM;
    }
    if (v == V_CHACHA) {
        return COPS_AEAD_CHACHA;
    }
    return COPS_AEAD_GCM;
}

static CK_RV aead_op_init(cops_op_t *op, const cops_params_t *p)
{
    int v = op->impl->variant;
    sym_state_t *st;
    EVP_CIPHER *c;
    CK_RV rv;

    if ((rv = state_new(op)) != CKR_OK) {
        return rv;
    }
    st = st_of(op);
    c = cipher_for(op->key, v);
    if (c == NULL) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    EVP_CIPHER_free(c);
    st->tag_len = p->tag_len;
    st->hold_max = p->hold_max > 0 && p->hold_max < COPS_AEAD_HOLD_MAX
                       ? p->hold_max
                       : COPS_AEAD_HOLD_MAX;
    if (p->aad_len > 0) {
        st->aad = malloc(p->aad_len);
        if (st->aad == NULL) {
            return CKR_HOST_MEMORY;
        }
        memcpy(st->aad, p->aad, p->aad_len);
        st->aad_len = p->aad_len;
    }
    if (v == V_CLOUD_GCM) {
        st->iv_len = 12; /* made (encrypt) or read (decrypt) later */
        return CKR_OK;
    }
    if (p->iv_generate && is_enc(op)) {
        st->iv_len = 12;
        st->iv_made = true;
        if ((rv = crypto_random(st->iv, 12)) != CKR_OK) {
            return rv;
        }
    } else {
        if (p->iv == NULL || p->iv_len == 0 || p->iv_len > COPS_IV_MAX) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        memcpy(st->iv, p->iv, p->iv_len);
        st->iv_len = p->iv_len;
    }
    /* Encryption streams; decryption keeps the data until the tag. */
    rv = cops_aead_new(op->key, aead_alg(v), is_enc(op), !is_enc(op), st->iv,
                       st->iv_len, st->tag_len, p->data_len, &st->aead);
    if (rv == CKR_OK) {
        cops_aead_set_hold_max(st->aead, st->hold_max);
    }
    if (rv == CKR_OK && is_enc(op)) {
        rv = cops_aead_aad(st->aead, st->aad, st->aad_len);
    }
    return rv;
}

/* AEAD core: the same key and direction, a new message with iv (of the
 * length the context was made for). */
static CK_RV aead_restart(cops_aead_t *a, const uint8_t *iv, size_t ivlen);

/*
 * Another AES-GCM message under the same key: the context keeps its key
 * schedule and GHASH table, only the IV, the AAD and the kept data change.
 * Other AEADs (CCM, ChaCha20-Poly1305, the cloud HSM's GCM) and a change of
 * tag or IV length take a new op.
 */
static CK_RV aead_op_reset(cops_op_t *op, const cops_params_t *prev)
{
    const cops_params_t *p = &op->p;
    sym_state_t *st = st_of(op);
    uint8_t iv[COPS_IV_MAX];
    size_t ivlen;
    bool made = false;
    CK_RV rv;

    (void)prev;
    if (op->impl->variant != V_GCM || st == NULL || st->aead == NULL ||
        p->tag_len != st->tag_len) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (p->iv_generate && is_enc(op)) {
        ivlen = 12;
        made = true;
        if ((rv = crypto_random(iv, ivlen)) != CKR_OK) {
            return rv;
        }
    } else {
        if (p->iv == NULL || p->iv_len == 0 || p->iv_len > COPS_IV_MAX) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        ivlen = p->iv_len;
        memcpy(iv, p->iv, ivlen);
    }
    if (ivlen != st->iv_len) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    util_free_wipe(st->res, st->res_len);
    st->res = NULL;
    st->res_len = 0;
    st->res_ready = false;
    util_free_wipe(st->hold, st->hold_cap);
    st->hold = NULL;
    st->hold_len = 0;
    st->hold_cap = 0;
    util_free_wipe(st->aad, st->aad_len);
    st->aad = NULL;
    st->aad_len = 0;
    if (p->aad_len > 0) {
        st->aad = malloc(p->aad_len);
        if (st->aad == NULL) {
            return CKR_HOST_MEMORY;
        }
        memcpy(st->aad, p->aad, p->aad_len);
        st->aad_len = p->aad_len;
    }
    memcpy(st->iv, iv, ivlen);
    st->iv_made = made;
    crypto_wipe(iv, sizeof(iv));
    if ((rv = aead_restart(st->aead, st->iv, st->iv_len)) != CKR_OK) {
        return rv;
    }
    return is_enc(op) ? cops_aead_aad(st->aead, st->aad, st->aad_len) : CKR_OK;
}

static CK_RV aead_op_update(cops_op_t *op, const uint8_t *in, size_t inlen,
                            uint8_t *out, size_t *outlen)
{
    sym_state_t *st = st_of(op);
    size_t need;

    if (!is_enc(op)) {
        CK_RV rv = hold_append(st, in, inlen);

        *outlen = 0;
        return rv == CKR_DATA_LEN_RANGE ? CKR_ENCRYPTED_DATA_LEN_RANGE : rv;
    }
    need = cops_aead_update_len(st->aead, inlen);
    if (*outlen < need) {
        *outlen = need;
        return CKR_BUFFER_TOO_SMALL;
    }
    return cops_aead_update(st->aead, in, inlen, out, outlen);
}

/* Decryption of everything held (ciphertext || tag) into st->res. */
static CK_RV aead_decrypt_held(cops_op_t *op, const uint8_t *in, size_t inlen)
{
    sym_state_t *st = st_of(op);
    size_t ctlen, got, fin;
    uint8_t *buf;
    CK_RV rv;

    /* One part or many, no more than the limit is kept before the tag. */
    if (inlen > st->hold_max) {
        return CKR_ENCRYPTED_DATA_LEN_RANGE;
    }
    if (op->impl->variant == V_CLOUD_GCM) {
        if (inlen < 12 + st->tag_len) {
            return CKR_ENCRYPTED_DATA_LEN_RANGE;
        }
        memcpy(st->iv, in, 12);
        in += 12;
        inlen -= 12;
        rv = cops_aead_new(op->key, COPS_AEAD_GCM, false, true, st->iv, 12,
                           st->tag_len, 0, &st->aead);
        if (rv != CKR_OK) {
            return rv;
        }
        cops_aead_set_hold_max(st->aead, st->hold_max);
    }
    if (inlen < st->tag_len) {
        return CKR_ENCRYPTED_DATA_LEN_RANGE;
    }
    ctlen = inlen - st->tag_len;
    if ((rv = cops_aead_aad(st->aead, st->aad, st->aad_len)) != CKR_OK) {
        return rv;
    }
    got = 0;
    rv = cops_aead_update(st->aead, in, ctlen, NULL, &got);
    if (rv != CKR_OK) {
        return rv == CKR_DATA_LEN_RANGE ? CKR_ENCRYPTED_DATA_LEN_RANGE : rv;
    }
    buf = malloc(ctlen > 0 ? ctlen : 1);
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    fin = ctlen;
    rv = cops_aead_final(st->aead, buf, &fin, (uint8_t *)in + ctlen);
    if (rv != CKR_OK) {
        util_free_wipe(buf, ctlen);
        return rv == CKR_DATA_LEN_RANGE ? CKR_ENCRYPTED_DATA_LEN_RANGE : rv;
    }
    return keep_result(st, buf, fin);
}

/* Encryption's end: the rest, then the tag, into st->res (prefix: bytes
 * of output to put first, the cloud HSM's IV). */
static CK_RV aead_encrypt_finish(cops_op_t *op, const uint8_t *prefix,
                                 size_t plen, const uint8_t *in, size_t inlen)
{
    sym_state_t *st = st_of(op);
    size_t cap, got, fin;
    uint8_t *buf;
    CK_RV rv;

    cap = plen + cops_aead_update_len(st->aead, inlen) +
          cops_aead_final_len(st->aead) + st->tag_len;
    if (cap < inlen) {
        return CKR_DATA_LEN_RANGE;
    }
    buf = malloc(cap > 0 ? cap : 1);
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (plen > 0) {
        memcpy(buf, prefix, plen);
    }
    got = cap - plen;
    rv = cops_aead_update(st->aead, in, inlen, buf + plen, &got);
    if (rv == CKR_OK) {
        fin = cap - plen - got - st->tag_len;
        rv = cops_aead_final(st->aead, buf + plen + got, &fin,
                             buf + plen + got + fin);
        got += fin;
    }
    if (rv != CKR_OK) {
        util_free_wipe(buf, cap);
        return rv;
    }
    return keep_result(st, buf, plen + got + st->tag_len);
}

static CK_RV aead_op_final(cops_op_t *op, uint8_t *out, size_t *outlen)
{
    sym_state_t *st = st_of(op);
    CK_RV rv;

    if (op->impl->variant == V_CLOUD_GCM) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (!st->res_ready) {
        if (is_enc(op)) {
            rv = aead_encrypt_finish(op, NULL, 0, NULL, 0);
        } else {
            rv = aead_decrypt_held(op, st->hold, st->hold_len);
        }
        if (rv != CKR_OK) {
            return rv;
        }
    }
    return deliver(st, out, outlen);
}

/* Streaming encryption of a whole message straight into the caller's
 * buffer, known to be big enough: no copy kept. */
static CK_RV aead_encrypt_direct(cops_op_t *op, const uint8_t *in, size_t inlen,
                                 uint8_t *out, size_t *outlen)
{
    sym_state_t *st = st_of(op);
    size_t room = *outlen, got = room, fin;
    uint8_t tag[COPS_TAG_MAX];
    CK_RV rv;

    rv = cops_aead_update(st->aead, in, inlen, out, &got);
    if (rv == CKR_OK) {
        fin = room - got - st->tag_len;
        rv = cops_aead_final(st->aead, out + got, &fin, tag);
        got += fin;
    }
    if (rv != CKR_OK || got + st->tag_len > room) {
        crypto_wipe(out, room);
        *outlen = 0;
        return rv != CKR_OK ? rv : CKR_GENERAL_ERROR;
    }
    memcpy(out + got, tag, st->tag_len);
    *outlen = got + st->tag_len;
    return CKR_OK;
}

static CK_RV aead_op_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                             uint8_t *out, size_t *outlen)
{
    sym_state_t *st = st_of(op);
    CK_RV rv = CKR_OK;

    if (!st->res_ready && is_enc(op) && op->impl->variant == V_GCM &&
        out != NULL) {
        size_t need = cops_aead_update_len(st->aead, inlen) +
                      cops_aead_final_len(st->aead) + st->tag_len;

        if (need >= inlen && *outlen >= need) {
            return aead_encrypt_direct(op, in, inlen, out, outlen);
        }
    }
    if (!st->res_ready) {
        if (!is_enc(op)) {
            rv = aead_decrypt_held(op, in, inlen);
        } else if (op->impl->variant == V_CLOUD_GCM) {
            rv = crypto_random(st->iv, 12);
            if (rv == CKR_OK) {
                rv = cops_aead_new(op->key, COPS_AEAD_GCM, true, false, st->iv,
                                   12, st->tag_len, 0, &st->aead);
            }
            if (rv == CKR_OK) {
                rv = cops_aead_aad(st->aead, st->aad, st->aad_len);
            }
            if (rv == CKR_OK) {
                rv = aead_encrypt_finish(op, st->iv, 12, in, inlen);
            }
        } else {
            rv = aead_encrypt_finish(op, NULL, 0, in, inlen);
        }
        if (rv != CKR_OK) {
            return rv;
        }
    }
    return deliver(st, out, outlen);
}

/* ------------------------------------------------------------ key wrap */

static CK_RV kw_init(cops_op_t *op, const cops_params_t *p)
{
    int v = op->impl->variant;
    size_t ivlen = v == V_KWP ? 4 : 8;
    EVP_CIPHER *c;
    sym_state_t *st;
    CK_RV rv;

    if ((rv = state_new(op)) != CKR_OK) {
        return rv;
    }
    st = st_of(op);
    if (p->iv != NULL && p->iv_len != ivlen) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    c = cipher_for(op->key, v);
    if (c == NULL) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    st->ctx = EVP_CIPHER_CTX_new();
    if (st->ctx == NULL) {
        EVP_CIPHER_free(c);
        return CKR_HOST_MEMORY;
    }
    EVP_CIPHER_CTX_set_flags(st->ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_CipherInit_ex2(st->ctx, c, op->key->secret, p->iv, is_enc(op),
                           NULL) != 1) {
        cops_log_ossl("EVP_CipherInit_ex2(wrap)");
        EVP_CIPHER_free(c);
        return CKR_FUNCTION_FAILED;
    }
    EVP_CIPHER_free(c);
    return CKR_OK;
}

static CK_RV kw_compute(cops_op_t *op, const uint8_t *in, size_t inlen)
{
    sym_state_t *st = st_of(op);
    int v = op->impl->variant;
    uint8_t *padded = NULL, *buf = NULL;
    size_t plen = inlen, cap = 0, got = 0;
    CK_RV rv = CKR_OK;

    if (inlen > SYM_CHUNK) {
        return len_error(op);
    }
    if (is_enc(op)) {
        if (v == V_KW_PKCS5) {
            size_t padn = 8 - inlen % 8;

            plen = inlen + padn;
            padded = malloc(plen);
            if (padded == NULL) {
                return CKR_HOST_MEMORY;
            }
            memcpy(padded, in, inlen);
            memset(padded + inlen, (int)padn, padn);
            in = padded;
        }
        if ((v != V_KWP && (plen % 8 != 0 || plen < 16)) || plen == 0) {
            rv = CKR_DATA_LEN_RANGE;
            goto out;
        }
        cap = plen + 16;
    } else {
        if (inlen % 8 != 0 || inlen < (v == V_KWP ? 16u : 24u)) {
            return CKR_ENCRYPTED_DATA_LEN_RANGE;
        }
        cap = inlen;
    }
    buf = malloc(cap);
    if (buf == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (!evp_update(st->ctx, buf, &got, in, plen)) {
        ERR_clear_error();
        rv = is_enc(op) ? CKR_FUNCTION_FAILED : CKR_ENCRYPTED_DATA_INVALID;
        goto out;
    }
    if (!is_enc(op) && v == V_KW_PKCS5) {
        uint8_t padn = got > 0 ? buf[got - 1] : 0;

        if (padn == 0 || padn > 8 || padn > got) {
            rv = CKR_ENCRYPTED_DATA_INVALID;
            goto out;
        }
        for (size_t i = got - padn; i < got; i++) {
            if (buf[i] != padn) {
                rv = CKR_ENCRYPTED_DATA_INVALID;
                goto out;
            }
        }
        got -= padn;
    }
    keep_result(st, buf, got);
    buf = NULL;
out:
    util_free_wipe(padded, plen);
    util_free_wipe(buf, cap);
    return rv;
}

static CK_RV kw_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                        uint8_t *out, size_t *outlen)
{
    sym_state_t *st = st_of(op);
    CK_RV rv;

    if (!st->res_ready && (rv = kw_compute(op, in, inlen)) != CKR_OK) {
        return rv;
    }
    return deliver(st, out, outlen);
}

/* ------------------------------------------------------------ lengths */

static size_t round_up(size_t n, size_t m)
{
    return (n + m - 1) / m * m;
}

static CK_RV sym_output_len(const cops_op_t *op, bool final, size_t inlen,
                            size_t *outlen)
{
    const sym_state_t *st = st_of(op);
    int v = op->impl->variant;
    bool enc = is_enc(op);
    size_t one = 0, upd = 0;

    if (st->res_ready) {
        *outlen = st->res_len;
        return CKR_OK;
    }
    switch (v) {
    case V_ECB:
    case V_CBC:
    case V_CBC_PAD:
    case V_CTR:
        if (final) {
            *outlen = block_final_len(op);
            return CKR_OK;
        }
        upd = block_update_len(st, inlen);
        one = v == V_CBC_PAD && enc ? (inlen / st->bs + 1) * st->bs : inlen;
        break;
    case V_GCM:
    case V_CLOUD_GCM:
    case V_CCM:
    case V_CHACHA:
        if (final) {
            if (st->aead == NULL) {
                *outlen = 0;
                return CKR_OK;
            }
            *outlen =
                enc ? cops_aead_final_len(st->aead) + st->tag_len
                    : (st->hold_len > st->tag_len ? st->hold_len - st->tag_len
                                                  : 0);
            return CKR_OK;
        }
        if (enc) {
            one = inlen + st->tag_len + (v == V_CLOUD_GCM ? 12 : 0);
            upd = st->aead != NULL ? cops_aead_update_len(st->aead, inlen)
                                   : inlen;
        } else {
            size_t over = st->tag_len + (v == V_CLOUD_GCM ? 12 : 0);

            one = inlen > over ? inlen - over : 0;
        }
        break;
    case V_KW:
        one = enc ? inlen + 8 : (inlen > 8 ? inlen - 8 : 0);
        break;
    case V_KWP:
        one = enc ? round_up(inlen, 8) + 8 : (inlen > 8 ? inlen - 8 : 0);
        break;
    case V_KW_PKCS5:
        one = enc ? (inlen / 8 + 1) * 8 + 8 : (inlen > 8 ? inlen - 8 : 0);
        break;
    default:
        return CKR_GENERAL_ERROR;
    }
    if (final) {
        *outlen = 0;
    } else if (op->updated) {
        *outlen = upd;
    } else {
        *outlen = one > upd ? one : upd;
    }
    return CKR_OK;
}

/* An AEAD update answers its input's length even when it holds the data
 * (decryption, CCM) and writes nothing: bindings that size the buffer from
 * the NULL call and are told 0 pass NULL again, so their data would never
 * be taken. */
CK_RV cops_op_update_len(const cops_op_t *op, size_t inlen, size_t *outlen)
{
    CK_RV rv = cops_op_output_len(op, false, inlen, outlen);

    if (rv == CKR_OK && op->impl->init == aead_op_init && *outlen < inlen) {
        *outlen = inlen;
    }
    return rv;
}

/* The IV the token made. */
size_t cops_op_iv(const cops_op_t *op, uint8_t *iv, size_t room)
{
    const sym_state_t *st;

    if (op == NULL || op->impl->init != aead_op_init) {
        return 0;
    }
    st = st_of(op);
    if (st == NULL || !st->iv_made) {
        return 0;
    }
    if (room >= st->iv_len) {
        memcpy(iv, st->iv, st->iv_len);
    }
    return st->iv_len;
}

/* ------------------------------------------------------------ families */

#define BLOCK_IMPL(n, v)                                                       \
    {                                                                          \
        .name = (n), .init = block_init, .output_len = sym_output_len,         \
        .update = block_update, .final = block_final,                          \
        .oneshot = block_oneshot, .reset = block_reset,                        \
        .cleanup = sym_cleanup, .variant = (v),                                \
    }

const cops_impl_t cops_aes_ecb = BLOCK_IMPL("AES-ECB", V_ECB);
const cops_impl_t cops_aes_cbc = BLOCK_IMPL("AES-CBC", V_CBC);
const cops_impl_t cops_aes_cbc_pad = BLOCK_IMPL("AES-CBC-PAD", V_CBC_PAD);
const cops_impl_t cops_aes_ctr = BLOCK_IMPL("AES-CTR", V_CTR);
const cops_impl_t cops_des3_ecb = BLOCK_IMPL("DES3-ECB", V_ECB);
const cops_impl_t cops_des3_cbc = BLOCK_IMPL("DES3-CBC", V_CBC);
const cops_impl_t cops_des3_cbc_pad = BLOCK_IMPL("DES3-CBC-PAD", V_CBC_PAD);

#define AEAD_IMPL(n, v, upd)                                                   \
    {                                                                          \
        .name = (n), .init = aead_op_init, .output_len = sym_output_len,       \
        .update = (upd), .final = aead_op_final, .oneshot = aead_op_oneshot,   \
        .reset = aead_op_reset, .cleanup = sym_cleanup, .variant = (v),        \
    }

const cops_impl_t cops_aes_gcm = AEAD_IMPL("AES-GCM", V_GCM, aead_op_update);
const cops_impl_t cops_cloudhsm_gcm =
    AEAD_IMPL("CloudHSM-GCM", V_CLOUD_GCM, NULL);
const cops_impl_t cops_aes_ccm = AEAD_IMPL("AES-CCM", V_CCM, aead_op_update);
const cops_impl_t cops_chacha20_poly =
    AEAD_IMPL("ChaCha20-Poly1305", V_CHACHA, aead_op_update);

#define KW_IMPL(n, v)                                                          \
    {                                                                          \
        .name = (n), .init = kw_init, .output_len = sym_output_len,            \
        .oneshot = kw_oneshot, .cleanup = sym_cleanup, .variant = (v),         \
    }

const cops_impl_t cops_aes_kw = KW_IMPL("AES-KW", V_KW);
const cops_impl_t cops_aes_kwp = KW_IMPL("AES-KWP", V_KWP);
const cops_impl_t cops_aes_kw_pkcs5 = KW_IMPL("AES-KW-PKCS5", V_KW_PKCS5);

/* ------------------------------------------------------------ AEAD core */

struct cops_aead {
    EVP_CIPHER_CTX *ctx;
    EVP_CIPHER *cipher;
    cops_aead_alg_t alg;
    bool enc, hold;
    size_t taglen, data_len;
    uint8_t key[32];
    size_t keylen;
    uint8_t iv[COPS_IV_MAX];
    size_t ivlen;
    uint8_t *aad; /* CCM: kept until the length is known */
    size_t aad_len;
    uint8_t *buf; /* held input */
    size_t len, cap;
    size_t hold_max; /* most of it */
    size_t streamed; /* bytes processed (streaming) */
};

static bool ctrl(EVP_CIPHER_CTX *ctx, int type, size_t arg, void *ptr)
{
    return EVP_CIPHER_CTX_ctrl(ctx, type, (int)arg, ptr) == 1;
}

CK_RV cops_aead_new(const cops_key_t *key, cops_aead_alg_t alg, bool enc,
                    bool hold, const uint8_t *iv, size_t ivlen, size_t taglen,
                    size_t data_len, cops_aead_t **out)
{
    int v = alg == COPS_AEAD_CCM ? V_CCM
                                 : (alg == COPS_AEAD_CHACHA ? V_CHACHA : V_GCM);
    cops_aead_t *a;
    CK_RV rv = CKR_FUNCTION_FAILED;

    *out = NULL;
    if (ivlen == 0 || ivlen > COPS_IV_MAX || taglen == 0 ||
        taglen > COPS_TAG_MAX || (alg == COPS_AEAD_CHACHA && ivlen != 12)) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return CKR_HOST_MEMORY;
    }
    a->alg = alg;
    a->enc = enc;
    a->hold = hold || alg == COPS_AEAD_CCM;
    a->taglen = taglen;
    a->data_len = data_len;
    a->hold_max = COPS_AEAD_HOLD_MAX;
    memcpy(a->iv, iv, ivlen);
    a->ivlen = ivlen;
    a->cipher = cipher_for(key, v);
    if (a->cipher == NULL) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    memcpy(a->key, key->secret, key->secret_len);
    a->keylen = key->secret_len;
    a->ctx = EVP_CIPHER_CTX_new();
    if (a->ctx == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (alg != COPS_AEAD_CCM) {
        if (EVP_CipherInit_ex2(a->ctx, a->cipher, NULL, NULL, enc, NULL) != 1 ||
            (ivlen != 12 &&
             !ctrl(a->ctx, EVP_CTRL_AEAD_SET_IVLEN, ivlen, NULL)) ||
            EVP_CipherInit_ex2(a->ctx, NULL, a->key, a->iv, enc, NULL) != 1) {
            cops_log_ossl("AEAD init");
            rv = CKR_MECHANISM_PARAM_INVALID;
            goto out;
        }
    }
    *out = a;
    a = NULL;
    rv = CKR_OK;
out:
    cops_aead_free(a);
    return rv;
}

static CK_RV aead_restart(cops_aead_t *a, const uint8_t *iv, size_t ivlen)
{
    if (a->alg != COPS_AEAD_GCM || ivlen != a->ivlen) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    memcpy(a->iv, iv, ivlen);
    util_free_wipe(a->aad, a->aad_len);
    a->aad = NULL;
    a->aad_len = 0;
    if (a->len > 0) {
        crypto_wipe(a->buf, a->len);
    }
    a->len = 0;
    a->streamed = 0;
    /* The key stays: only the IV is set, which starts a new message. */
    if (EVP_CipherInit_ex2(a->ctx, NULL, NULL, a->iv, a->enc, NULL) != 1) {
        cops_log_ossl("AEAD restart");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

void cops_aead_free(cops_aead_t *a)
{
    if (a == NULL) {
        return;
    }
    EVP_CIPHER_CTX_free(a->ctx);
    EVP_CIPHER_free(a->cipher);
    util_free_wipe(a->aad, a->aad_len);
    util_free_wipe(a->buf, a->cap);
    crypto_wipe(a, sizeof(*a));
    free(a);
}

void cops_aead_set_hold_max(cops_aead_t *a, size_t max)
{
    a->hold_max =
        max > 0 && max < COPS_AEAD_HOLD_MAX ? max : COPS_AEAD_HOLD_MAX;
}

static CK_RV aead_keep(uint8_t **buf, size_t *len, size_t *cap,
                       const uint8_t *in, size_t inlen, size_t max)
{
    uint8_t *nb;
    size_t nc;

    if (inlen == 0) {
        return CKR_OK;
    }
    if (*len > max || inlen > max - *len) {
        return CKR_DATA_LEN_RANGE;
    }
    if (*len + inlen <= *cap) {
        memcpy(*buf + *len, in, inlen);
        *len += inlen;
        return CKR_OK;
    }
    nc = *cap == 0 ? 256 : *cap;
    while (nc < *len + inlen) {
        nc *= 2;
    }
    nb = malloc(nc);
    if (nb == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (*len > 0) {
        memcpy(nb, *buf, *len);
    }
    util_free_wipe(*buf, *cap);
    *buf = nb;
    *cap = nc;
    memcpy(*buf + *len, in, inlen);
    *len += inlen;
    return CKR_OK;
}

CK_RV cops_aead_aad(cops_aead_t *a, const uint8_t *aad, size_t len)
{
    size_t got = 0;

    if (len == 0) {
        return CKR_OK;
    }
    if (a->alg == COPS_AEAD_CCM) {
        size_t cap = a->aad_len;
        CK_RV rv =
            aead_keep(&a->aad, &a->aad_len, &cap, aad, len, COPS_AEAD_HOLD_MAX);

        /* keep aad_len == cap for the wipe */
        if (rv == CKR_OK && cap != a->aad_len) {
            uint8_t *exact = malloc(a->aad_len);

            if (exact == NULL) {
                return CKR_HOST_MEMORY;
            }
            memcpy(exact, a->aad, a->aad_len);
            util_free_wipe(a->aad, cap);
            a->aad = exact;
        }
        return rv;
    }
    if (a->streamed > 0 || a->len > 0) {
        return CKR_GENERAL_ERROR; /* AAD comes first */
    }
    if (!evp_update(a->ctx, NULL, &got, aad, len)) {
        cops_log_ossl("AEAD aad");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

size_t cops_aead_update_len(const cops_aead_t *a, size_t inlen)
{
    return a->hold ? 0 : inlen;
}

size_t cops_aead_final_len(const cops_aead_t *a)
{
    if (a->alg == COPS_AEAD_CCM) {
        return a->enc ? a->data_len : a->len;
    }
    return a->hold ? a->len : 0;
}

CK_RV cops_aead_update(cops_aead_t *a, const uint8_t *in, size_t inlen,
                       uint8_t *out, size_t *outlen)
{
    size_t got = 0;

    if (a->hold) {
        *outlen = 0;
        if (a->alg == COPS_AEAD_CCM && a->len + inlen > a->data_len) {
            return a->enc ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE;
        }
        return aead_keep(&a->buf, &a->len, &a->cap, in, inlen, a->hold_max);
    }
    if (*outlen < inlen) {
        *outlen = inlen;
        return CKR_BUFFER_TOO_SMALL;
    }
    if (!evp_update(a->ctx, out, &got, in, inlen)) {
        cops_log_ossl("AEAD update");
        return CKR_FUNCTION_FAILED;
    }
    a->streamed += inlen;
    *outlen = got;
    return CKR_OK;
}

/* CCM in one pass over the held data (OpenSSL wants the length first). */
static CK_RV ccm_run(cops_aead_t *a, uint8_t *out, size_t *outlen, uint8_t *tag)
{
    static const uint8_t empty[1];
    size_t got = 0;
    int n = 0;

    if (a->len != a->data_len) {
        return a->enc ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE;
    }
    if (*outlen < a->len) {
        *outlen = a->len;
        return CKR_BUFFER_TOO_SMALL;
    }
    if (EVP_CipherInit_ex2(a->ctx, a->cipher, NULL, NULL, a->enc, NULL) != 1 ||
        !ctrl(a->ctx, EVP_CTRL_AEAD_SET_IVLEN, a->ivlen, NULL) ||
        !ctrl(a->ctx, EVP_CTRL_AEAD_SET_TAG, a->taglen, a->enc ? NULL : tag) ||
        EVP_CipherInit_ex2(a->ctx, NULL, a->key, a->iv, a->enc, NULL) != 1 ||
        EVP_CipherUpdate(a->ctx, NULL, &n, NULL, (int)a->len) != 1 ||
        (a->aad_len > 0 &&
         EVP_CipherUpdate(a->ctx, NULL, &n, a->aad, (int)a->aad_len) != 1)) {
        cops_log_ossl("CCM init");
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if (!evp_update(a->ctx, out, &got, a->len > 0 ? a->buf : empty, a->len) ||
        (a->len == 0 && EVP_CipherUpdate(a->ctx, out, &n, empty, 0) != 1)) {
        ERR_clear_error();
        if (!a->enc) {
            OPENSSL_cleanse(out, a->len);
            return CKR_ENCRYPTED_DATA_INVALID;
        }
        return CKR_FUNCTION_FAILED;
    }
    if (a->enc && (EVP_CipherFinal_ex(a->ctx, out + got, &n) != 1 ||
                   !ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, a->taglen, tag))) {
        cops_log_ossl("CCM final");
        return CKR_FUNCTION_FAILED;
    }
    *outlen = a->len;
    return CKR_OK;
}

CK_RV cops_aead_final(cops_aead_t *a, uint8_t *out, size_t *outlen,
                      uint8_t *tag)
{
    size_t got = 0;
    uint8_t *tmp = NULL;
    int n = 0;
    CK_RV rv = CKR_OK;

    if (a->alg == COPS_AEAD_CCM) {
        return ccm_run(a, out, outlen, tag);
    }
    if (a->enc) {
        if (EVP_CipherFinal_ex(a->ctx, out, &n) != 1 ||
            !ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, a->taglen, tag)) {
            cops_log_ossl("AEAD final");
            return CKR_FUNCTION_FAILED;
        }
        *outlen = (size_t)n;
        return CKR_OK;
    }
    if (a->hold && *outlen < a->len) {
        *outlen = a->len;
        return CKR_BUFFER_TOO_SMALL;
    }
    if (a->hold && a->len > 0) {
        tmp = malloc(a->len);
        if (tmp == NULL) {
            return CKR_HOST_MEMORY;
        }
        if (!evp_update(a->ctx, tmp, &got, a->buf, a->len)) {
            rv = CKR_FUNCTION_FAILED;
            goto out;
        }
    }
    if (!ctrl(a->ctx, EVP_CTRL_AEAD_SET_TAG, a->taglen, tag)) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    if (EVP_CipherFinal_ex(a->ctx, NULL, &n) != 1) {
        ERR_clear_error();
        rv = CKR_ENCRYPTED_DATA_INVALID;
        goto out;
    }
    if (got > 0) {
        memcpy(out, tmp, got);
    }
    *outlen = got;
out:
    util_free_wipe(tmp, a->len);
    return rv;
}

/* ------------------------------------------------------------ CMAC */

static CK_RV cmac_init(cops_op_t *op, const cops_params_t *p)
{
    char name[24];
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
    OSSL_PARAM params[2];
    const cops_key_t *k = op->key;

    (void)p;
    if (k == NULL || k->kt != CKK_AES || k->secret == NULL) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    snprintf(name, sizeof(name), "AES-%zu-CBC", k->secret_len * 8);
    mac = EVP_MAC_fetch(crypto_libctx(), "CMAC", NULL);
    if (mac == NULL) {
        cops_log_ossl("EVP_MAC_fetch(CMAC)");
        return CKR_FUNCTION_FAILED;
    }
    ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    if (ctx == NULL) {
        return CKR_HOST_MEMORY;
    }
    params[0] =
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, name, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(ctx, k->secret, k->secret_len, params) != 1) {
        cops_log_ossl("EVP_MAC_init(CMAC)");
        EVP_MAC_CTX_free(ctx);
        return CKR_FUNCTION_FAILED;
    }
    if (op->p.mac_len == 0 || op->p.mac_len > 16) {
        op->p.mac_len = 16;
    }
    op->macctx = ctx;
    return CKR_OK;
}

static CK_RV cmac_output_len(const cops_op_t *op, bool final, size_t inlen,
                             size_t *outlen)
{
    (void) final;
    (void)inlen;
    *outlen = op->p.mac_len;
    return CKR_OK;
}

static CK_RV cmac_update(cops_op_t *op, const uint8_t *in, size_t inlen,
                         uint8_t *out, size_t *outlen)
{
    (void)out;
    (void)outlen;
    if (inlen > 0 && EVP_MAC_update(op->macctx, in, inlen) != 1) {
        cops_log_ossl("EVP_MAC_update(CMAC)");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static CK_RV cmac_compute(cops_op_t *op, uint8_t mac[16])
{
    size_t n = 0;

    if (EVP_MAC_final(op->macctx, mac, &n, 16) != 1 || n != 16) {
        cops_log_ossl("EVP_MAC_final(CMAC)");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

static CK_RV cmac_final(cops_op_t *op, uint8_t *out, size_t *outlen)
{
    uint8_t mac[16];
    CK_RV rv;

    if (*outlen < op->p.mac_len) {
        *outlen = op->p.mac_len;
        return CKR_BUFFER_TOO_SMALL;
    }
    if ((rv = cmac_compute(op, mac)) == CKR_OK) {
        memcpy(out, mac, op->p.mac_len);
        *outlen = op->p.mac_len;
    }
    crypto_wipe(mac, sizeof(mac));
    return rv;
}

static CK_RV cmac_oneshot(cops_op_t *op, const uint8_t *in, size_t inlen,
                          uint8_t *out, size_t *outlen)
{
    CK_RV rv;

    if (*outlen < op->p.mac_len) {
        *outlen = op->p.mac_len;
        return CKR_BUFFER_TOO_SMALL;
    }
    if ((rv = cmac_update(op, in, inlen, NULL, NULL)) != CKR_OK) {
        return rv;
    }
    return cmac_final(op, out, outlen);
}

static CK_RV cmac_verify(cops_op_t *op, const uint8_t *data, size_t datalen,
                         bool oneshot, const uint8_t *sig, size_t siglen)
{
    uint8_t mac[16];
    CK_RV rv;

    if (siglen != op->p.mac_len) {
        return CKR_SIGNATURE_LEN_RANGE;
    }
    if (oneshot &&
        (rv = cmac_update(op, data, datalen, NULL, NULL)) != CKR_OK) {
        return rv;
    }
    if ((rv = cmac_compute(op, mac)) == CKR_OK &&
        CRYPTO_memcmp(mac, sig, siglen) != 0) {
        rv = CKR_SIGNATURE_INVALID;
    }
    crypto_wipe(mac, sizeof(mac));
    return rv;
}

static void cmac_cleanup(cops_op_t *op)
{
    EVP_MAC_CTX_free(op->macctx);
    op->macctx = NULL;
}

const cops_impl_t cops_aes_cmac = {
    .name = "AES-CMAC",
    .init = cmac_init,
    .output_len = cmac_output_len,
    .update = cmac_update,
    .final = cmac_final,
    .oneshot = cmac_oneshot,
    .verify = cmac_verify,
    .cleanup = cmac_cleanup,
};

/* ------------------------------------------------------------ raw AES */

CK_RV cops_aes_raw(const uint8_t *key, size_t keylen, const uint8_t *iv,
                   const uint8_t *in, size_t len, uint8_t *out)
{
    cops_key_t k;
    EVP_CIPHER *c;
    EVP_CIPHER_CTX *ctx = NULL;
    size_t got = 0;
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (len % 16 != 0 || len > SYM_CHUNK) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    memset(&k, 0, sizeof(k));
    k.kt = CKK_AES;
    k.secret = (uint8_t *)key;
    k.secret_len = keylen;
    c = cipher_for(&k, iv != NULL ? V_CBC : V_ECB);
    if (c == NULL) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    ctx = EVP_CIPHER_CTX_new();
    if (ctx != NULL && EVP_CipherInit_ex2(ctx, c, key, iv, 1, NULL) == 1 &&
        EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
        evp_update(ctx, out, &got, in, len) && got == len) {
        rv = CKR_OK;
    }
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
    return rv;
}
