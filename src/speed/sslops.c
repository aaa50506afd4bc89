/*
 * sslops.c - the reference: each operation done directly with OpenSSL 3
 * EVP in this process, the way an OpenSSL user would write it (a cached
 * EVP_PKEY, a reused EVP_MD_CTX / EVP_CIPHER_CTX / EVP_MAC_CTX, algorithms
 * fetched once). Also the checks of a module's results.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "speed.h"

struct ssl_thr {
    EVP_PKEY *key[SP_KEY_COUNT];
    EVP_PKEY *peer; /* the other side of ECDH */
};

struct ssl_priv {
    EVP_CIPHER *gcm;
    EVP_CIPHER *cbc;
    EVP_MD *sha256;
    EVP_MAC *hmac;
    int threads;
    struct ssl_thr thr[SP_MAX_THREADS];
};

struct ssl_state {
    const struct sp_op *op;
    struct ssl_priv *p;
    EVP_PKEY *pkey;
    EVP_PKEY *peer;
    EVP_MD_CTX *mdctx;
    EVP_CIPHER_CTX *cctx;
    EVP_MAC_CTX *mctx;
    EVP_PKEY_CTX *kgctx;
    uint8_t *in;
    uint8_t *out;
    uint8_t sig[SP_MAX_SIG];
    size_t sig_len;
    uint8_t iv[SP_AES_BLOCK];
    uint64_t ctr;
};

static EVP_PKEY *ssl_make_key(enum sp_key k)
{
    switch (k) {
    case SP_KEY_RSA2048:
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    case SP_KEY_RSA3072:
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
    case SP_KEY_P256:
    case SP_KEY_P256_DH:
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    case SP_KEY_P384:
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    case SP_KEY_ED25519:
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    default:
        return NULL;
    }
}

static int ssl_sign_init(struct ssl_state *st, int verify)
{
    EVP_PKEY_CTX *pctx = NULL;
    int ok;

    if (EVP_MD_CTX_reset(st->mdctx) != 1)
        return -1;
    if (verify)
        ok = EVP_DigestVerifyInit_ex(st->mdctx, &pctx, st->op->md, NULL, NULL,
                                     st->pkey, NULL);
    else
        ok = EVP_DigestSignInit_ex(st->mdctx, &pctx, st->op->md, NULL, NULL,
                                   st->pkey, NULL);
    if (ok != 1)
        return -1;
    if (st->op->pss &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1))
        return -1;
    return 0;
}

static int ssl_run(void *state, char *why, size_t why_len)
{
    struct ssl_state *st = state;
    const struct sp_op *op = st->op;
    size_t len = 0;
    unsigned int mdlen = 0;
    int outl = 0, finl = 0;
    EVP_PKEY_CTX *dctx;
    EVP_PKEY *pk = NULL;
    const char *what = op->name;

    switch (op->kind) {
    case SP_SIGN:
        st->sig_len = sizeof(st->sig);
        if (ssl_sign_init(st, 0) != 0 ||
            EVP_DigestSign(st->mdctx, st->sig, &st->sig_len, st->in, op->len) !=
                1)
            goto fail;
        return 0;
    case SP_VERIFY:
        if (ssl_sign_init(st, 1) != 0 ||
            EVP_DigestVerify(st->mdctx, st->sig, st->sig_len, st->in,
                             op->len) != 1)
            goto fail;
        return 0;
    case SP_ENCRYPT:
        memcpy(st->iv + 4, &st->ctr, sizeof(st->ctr));
        st->ctr++;
        if (op->mech == CKM_AES_GCM) {
            if (EVP_EncryptInit_ex2(st->cctx, st->p->gcm, sp_aes_key, st->iv,
                                    NULL) != 1 ||
                EVP_EncryptUpdate(st->cctx, st->out, &outl, st->in,
                                  (int)op->len) != 1 ||
                EVP_EncryptFinal_ex(st->cctx, st->out + outl, &finl) != 1 ||
                EVP_CIPHER_CTX_ctrl(st->cctx, EVP_CTRL_AEAD_GET_TAG,
                                    SP_GCM_TAG_LEN, st->out + outl + finl) != 1)
                goto fail;
        } else {
            if (EVP_EncryptInit_ex2(st->cctx, st->p->cbc, sp_aes_key, st->iv,
                                    NULL) != 1 ||
                EVP_EncryptUpdate(st->cctx, st->out, &outl, st->in,
                                  (int)op->len) != 1 ||
                EVP_EncryptFinal_ex(st->cctx, st->out + outl, &finl) != 1)
                goto fail;
        }
        return 0;
    case SP_MAC:
        if (EVP_MAC_init(st->mctx, sp_hmac_key, SP_KEY_LEN, NULL) != 1 ||
            EVP_MAC_update(st->mctx, st->in, op->len) != 1 ||
            EVP_MAC_final(st->mctx, st->out, &len, 64) != 1)
            goto fail;
        return 0;
    case SP_DIGEST:
        if (EVP_Digest(st->in, op->len, st->out, &mdlen, st->p->sha256, NULL) !=
            1)
            goto fail;
        return 0;
    case SP_RANDOM:
        if (RAND_bytes(st->out, 32) != 1)
            goto fail;
        return 0;
    case SP_KEYGEN_AES:
    case SP_KEYGEN_AES_TOKEN:
        if (RAND_bytes(st->out, SP_KEY_LEN) != 1)
            goto fail;
        return 0;
    case SP_KEYGEN_EC:
        if (EVP_PKEY_keygen(st->kgctx, &pk) != 1)
            goto fail;
        EVP_PKEY_free(pk);
        return 0;
    case SP_DERIVE:
        dctx = EVP_PKEY_CTX_new_from_pkey(NULL, st->pkey, NULL);
        len = 64;
        if (dctx == NULL || EVP_PKEY_derive_init(dctx) != 1 ||
            EVP_PKEY_derive_set_peer(dctx, st->peer) != 1 ||
            EVP_PKEY_derive(dctx, st->out, &len) != 1) {
            EVP_PKEY_CTX_free(dctx);
            goto fail;
        }
        EVP_PKEY_CTX_free(dctx);
        return 0;
    default:
        break;
    }
fail:
    snprintf(why, why_len, "OpenSSL %s failed", what);
    return -1;
}

static void ssl_release(void *state)
{
    struct ssl_state *st = state;

    if (st == NULL)
        return;
    EVP_MD_CTX_free(st->mdctx);
    EVP_CIPHER_CTX_free(st->cctx);
    EVP_MAC_CTX_free(st->mctx);
    EVP_PKEY_CTX_free(st->kgctx);
    free(st->in);
    free(st->out);
    free(st);
}

static enum sp_status ssl_prepare(struct sp_backend *be, const struct sp_op *op,
                                  int idx, void **state, char *why,
                                  size_t why_len)
{
    struct ssl_priv *p = be->priv;
    struct ssl_thr *t = &p->thr[idx];
    struct ssl_state *st;
    OSSL_PARAM params[2];
    char sha[] = "SHA256";

    *state = NULL;
    switch (op->kind) {
    case SP_SESSION:
    case SP_FIND:
    case SP_OBJECT:
    case SP_LOGIN:
        return SP_NOREF;
    default:
        break;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        goto fail;
    st->op = op;
    st->p = p;
    st->in = malloc(op->len > 0 ? op->len : 1);
    st->out = malloc(op->len + 2 * SP_AES_BLOCK + 64);
    st->mdctx = EVP_MD_CTX_new();
    st->cctx = EVP_CIPHER_CTX_new();
    if (st->in == NULL || st->out == NULL || st->mdctx == NULL ||
        st->cctx == NULL)
        goto fail;
    sp_fill(st->in, op->len, (unsigned)idx + 1);
    if (RAND_bytes(st->iv, sizeof(st->iv)) != 1)
        goto fail;
    if (op->key != SP_KEY_NONE && op->key != SP_KEY_AES &&
        op->key != SP_KEY_HMAC) {
        if (t->key[op->key] == NULL)
            t->key[op->key] = ssl_make_key(op->key);
        st->pkey = t->key[op->key];
        if (st->pkey == NULL)
            goto fail;
    }
    if (op->kind == SP_DERIVE) {
        if (t->peer == NULL)
            t->peer = ssl_make_key(SP_KEY_P256);
        st->peer = t->peer;
        if (st->peer == NULL)
            goto fail;
    }
    if (op->kind == SP_MAC) {
        st->mctx = EVP_MAC_CTX_new(p->hmac);
        params[0] =
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, sha, 0);
        params[1] = OSSL_PARAM_construct_end();
        if (st->mctx == NULL || EVP_MAC_CTX_set_params(st->mctx, params) != 1)
            goto fail;
    }
    if (op->kind == SP_KEYGEN_EC) {
        st->kgctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (st->kgctx == NULL || EVP_PKEY_keygen_init(st->kgctx) != 1 ||
            EVP_PKEY_CTX_set_group_name(st->kgctx, "P-256") != 1)
            goto fail;
    }
    if (op->kind == SP_VERIFY) {
        /* The signature to verify: made once, by ourselves. */
        st->sig_len = sizeof(st->sig);
        if (ssl_sign_init(st, 0) != 0 ||
            EVP_DigestSign(st->mdctx, st->sig, &st->sig_len, st->in, op->len) !=
                1)
            goto fail;
    }
    *state = st;
    return SP_OK;
fail:
    ssl_release(st);
    snprintf(why, why_len, "OpenSSL setup for %s failed", op->name);
    return SP_FAIL;
}

static const struct sp_backend_ops ssl_backend_ops = {
    .prepare = ssl_prepare,
    .run = ssl_run,
    .release = ssl_release,
    .finish = NULL,
};

int ssl_open(struct sp_backend *be, int threads)
{
    struct ssl_priv *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return -1;
    p->threads = threads;
    p->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    p->cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    p->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    p->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    be->name = "openssl";
    be->path = NULL;
    be->ops = &ssl_backend_ops;
    be->priv = p;
    if (p->gcm == NULL || p->cbc == NULL || p->sha256 == NULL ||
        p->hmac == NULL) {
        ssl_close(be);
        return -1;
    }
    return 0;
}

void ssl_close(struct sp_backend *be)
{
    struct ssl_priv *p = be->priv;

    if (p == NULL)
        return;
    for (int i = 0; i < SP_MAX_THREADS; i++) {
        for (int k = 0; k < SP_KEY_COUNT; k++)
            EVP_PKEY_free(p->thr[i].key[k]);
        EVP_PKEY_free(p->thr[i].peer);
    }
    EVP_CIPHER_free(p->gcm);
    EVP_CIPHER_free(p->cbc);
    EVP_MD_free(p->sha256);
    EVP_MAC_free(p->hmac);
    free(p);
    be->priv = NULL;
}

/* ------------------------------------------------------------ checks */

static EVP_PKEY *ssl_from_params(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;

    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

static int ssl_verify(EVP_PKEY *pk, const char *md, int pss, const uint8_t *msg,
                      size_t msg_len, const uint8_t *sig, size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int rc = -1;

    if (ctx == NULL || pk == NULL)
        goto out;
    if (EVP_DigestVerifyInit_ex(ctx, &pctx, md, NULL, NULL, pk, NULL) != 1)
        goto out;
    if (pss &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1))
        goto out;
    if (EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1)
        rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

int ssl_check_rsa_sig(const uint8_t *n, size_t n_len, const uint8_t *e,
                      size_t e_len, int pss, const uint8_t *msg, size_t msg_len,
                      const uint8_t *sig, size_t sig_len)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    BIGNUM *bn = BN_bin2bn(n, (int)n_len, NULL);
    BIGNUM *be = BN_bin2bn(e, (int)e_len, NULL);
    EVP_PKEY *pk = NULL;
    int rc = -1;

    if (bld == NULL || bn == NULL || be == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1)
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL)
        goto out;
    pk = ssl_from_params("RSA", params);
    rc = ssl_verify(pk, "SHA256", pss, msg, msg_len, sig, sig_len);
out:
    EVP_PKEY_free(pk);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return rc;
}

static EVP_PKEY *ssl_ec_pub(const char *group, const uint8_t *point,
                            size_t pt_len)
{
    OSSL_PARAM params[3];

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                 (char *)group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                                  (void *)point, pt_len);
    params[2] = OSSL_PARAM_construct_end();
    return ssl_from_params("EC", params);
}

int ssl_check_ec_sig(const char *group, const uint8_t *point, size_t pt_len,
                     const char *md, const uint8_t *msg, size_t msg_len,
                     const uint8_t *sig, size_t sig_len)
{
    EVP_PKEY *pk = ssl_ec_pub(group, point, pt_len);
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = NULL, *s = NULL;
    uint8_t *der = NULL;
    int der_len, rc = -1;

    if (pk == NULL || es == NULL || sig_len == 0 || sig_len % 2 != 0)
        goto out;
    r = BN_bin2bn(sig, (int)(sig_len / 2), NULL);
    s = BN_bin2bn(sig + sig_len / 2, (int)(sig_len / 2), NULL);
    if (r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1)
        goto out;
    r = s = NULL; /* owned by es now */
    der_len = i2d_ECDSA_SIG(es, &der);
    if (der_len <= 0)
        goto out;
    rc = ssl_verify(pk, md, 0, msg, msg_len, der, (size_t)der_len);
out:
    OPENSSL_free(der);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    EVP_PKEY_free(pk);
    return rc;
}

int ssl_check_ed25519_sig(const uint8_t *pub, size_t pub_len,
                          const uint8_t *msg, size_t msg_len,
                          const uint8_t *sig, size_t sig_len)
{
    EVP_PKEY *pk =
        EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, pub, pub_len);
    int rc = ssl_verify(pk, NULL, 0, msg, msg_len, sig, sig_len);

    EVP_PKEY_free(pk);
    return rc;
}

static int ssl_decrypt(const char *cipher, const uint8_t *key,
                       const uint8_t *iv, const uint8_t *ct, size_t ct_len,
                       const uint8_t *tag, const uint8_t *pt, size_t pt_len)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, cipher, NULL);
    uint8_t *out = malloc(ct_len + SP_AES_BLOCK);
    int outl = 0, finl = 0, rc = -1;

    if (ctx == NULL || c == NULL || out == NULL ||
        EVP_DecryptInit_ex2(ctx, c, key, iv, NULL) != 1)
        goto out;
    if (EVP_DecryptUpdate(ctx, out, &outl, ct, (int)ct_len) != 1)
        goto out;
    if (tag != NULL && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG,
                                           SP_GCM_TAG_LEN, (void *)tag) != 1)
        goto out;
    if (EVP_DecryptFinal_ex(ctx, out + outl, &finl) != 1)
        goto out;
    if ((size_t)(outl + finl) == pt_len && memcmp(out, pt, pt_len) == 0)
        rc = 0;
out:
    free(out);
    EVP_CIPHER_free(c);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int ssl_check_gcm(const uint8_t *key, const uint8_t *iv, const uint8_t *pt,
                  size_t pt_len, const uint8_t *ct, size_t ct_len)
{
    if (ct_len != pt_len + SP_GCM_TAG_LEN)
        return -1;
    return ssl_decrypt("AES-256-GCM", key, iv, ct, pt_len, ct + pt_len, pt,
                       pt_len);
}

int ssl_check_cbc_pad(const uint8_t *key, const uint8_t *iv, const uint8_t *pt,
                      size_t pt_len, const uint8_t *ct, size_t ct_len)
{
    if (ct_len != (pt_len / SP_AES_BLOCK + 1) * SP_AES_BLOCK)
        return -1;
    return ssl_decrypt("AES-256-CBC", key, iv, ct, ct_len, NULL, pt, pt_len);
}

int ssl_check_hmac(const uint8_t *key, const uint8_t *data, size_t len,
                   const uint8_t *mac, size_t mac_len)
{
    uint8_t want[EVP_MAX_MD_SIZE];
    size_t want_len = 0;

    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, SP_KEY_LEN, data,
                  len, want, sizeof(want), &want_len) == NULL)
        return -1;
    if (want_len != mac_len || memcmp(want, mac, mac_len) != 0)
        return -1;
    return 0;
}

int ssl_check_sha256(const uint8_t *data, size_t len, const uint8_t *md,
                     size_t md_len)
{
    uint8_t want[EVP_MAX_MD_SIZE];
    size_t want_len = 0;

    if (EVP_Q_digest(NULL, "SHA256", NULL, data, len, want, &want_len) != 1)
        return -1;
    if (want_len != md_len || memcmp(want, md, md_len) != 0)
        return -1;
    return 0;
}

int ssl_check_ec_point(const char *group, const uint8_t *point, size_t pt_len)
{
    EVP_PKEY *pk = ssl_ec_pub(group, point, pt_len);
    EVP_PKEY_CTX *ctx = NULL;
    int rc = -1;

    if (pk == NULL)
        return -1;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (ctx != NULL && EVP_PKEY_public_check(ctx) == 1)
        rc = 0;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return rc;
}

int ssl_ecdh_peer(uint8_t *peer_pub, size_t *peer_len, const uint8_t *point,
                  size_t pt_len, uint8_t *secret, size_t *secret_len)
{
    EVP_PKEY *me = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *them = ssl_ec_pub("P-256", point, pt_len);
    EVP_PKEY_CTX *ctx = NULL;
    int rc = -1;

    if (me == NULL || them == NULL)
        goto out;
    if (EVP_PKEY_get_octet_string_param(me, OSSL_PKEY_PARAM_PUB_KEY, peer_pub,
                                        *peer_len, peer_len) != 1)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, me, NULL);
    if (ctx == NULL || EVP_PKEY_derive_init(ctx) != 1 ||
        EVP_PKEY_derive_set_peer(ctx, them) != 1 ||
        EVP_PKEY_derive(ctx, secret, secret_len) != 1)
        goto out;
    rc = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(me);
    EVP_PKEY_free(them);
    return rc;
}
