/*
 * p11ops.c - the operations on a PKCS#11 module loaded with dlopen: one
 * logged-in session for the run, one session per thread with that thread's
 * own session keys (CKA_TOKEN false), and a check of each operation's
 * result against OpenSSL before it is timed.
 */
#include "config.h"

#include <ctype.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "speed.h"

#define P11_TOKEN_LABEL "nimbus-speed"
#define P11_MAX_POINT 200 /* a CKA_EC_POINT value, P-521 DER included */
#define P11_MAX_SLOTS 64
#define P11_FIND_BATCH 1024

struct p11_thr {
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE priv[SP_KEY_COUNT];
    CK_OBJECT_HANDLE pub[SP_KEY_COUNT];
};

struct p11_priv {
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    CK_SLOT_ID slot;
    char *pin;
    CK_SESSION_HANDLE main; /* holds the login for the whole run */
    int threads;
    char name[33];
    struct p11_thr thr[SP_MAX_THREADS];
};

struct p11_state {
    const struct sp_op *op;
    struct p11_priv *p;
    CK_FUNCTION_LIST_PTR f;
    CK_SESSION_HANDLE s;
    CK_MECHANISM mech;
    CK_RSA_PKCS_PSS_PARAMS pss;
    CK_GCM_PARAMS gcm;
    CK_ECDH1_DERIVE_PARAMS ecdh;
    CK_OBJECT_HANDLE key;
    uint8_t *in;
    uint8_t *out;
    CK_ULONG out_cap;
    uint8_t sig[SP_MAX_SIG];
    CK_ULONG sig_len;
    uint8_t iv[SP_AES_BLOCK];
    uint64_t ctr;
    uint8_t peer[P11_MAX_POINT];
    size_t peer_len;
    uint64_t rng;
    CK_RV rv;        /* of the last call that failed */
    EVP_MD *prehash; /* set: CKM_ECDSA over a digest made here */
    uint8_t hash[EVP_MAX_MD_SIZE];
};

static CK_BBOOL p11_true = CK_TRUE;
static CK_BBOOL p11_false = CK_FALSE;
static CK_OBJECT_CLASS p11_secret = CKO_SECRET_KEY;
static CK_OBJECT_CLASS p11_data = CKO_DATA;
static CK_KEY_TYPE p11_aes = CKK_AES;
static CK_KEY_TYPE p11_generic = CKK_GENERIC_SECRET;
static CK_ULONG p11_key_len = SP_KEY_LEN;

static const uint8_t p11_oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                       0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t p11_oid_p384[] = {0x06, 0x05, 0x2b, 0x81,
                                       0x04, 0x00, 0x22};
static const uint8_t p11_oid_ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const uint8_t p11_name_ed25519[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
                                           'd',  's',  '2', '5', '5', '1', '9'};

#define ATTR(t, v)                                                             \
    {                                                                          \
        (t), (void *)(v), sizeof(*(v))                                         \
    }
#define ATTRN(t, v, n)                                                         \
    {                                                                          \
        (t), (void *)(v), (n)                                                  \
    }

static void p11_why(char *why, size_t why_len, const char *call, CK_RV rv)
{
    char buf[32];

    snprintf(why, why_len, "%s: %s", call, sp_rv_name(rv, buf, sizeof(buf)));
}

static int p11_fail(struct p11_state *st, char *why, size_t why_len,
                    const char *call, CK_RV rv)
{
    st->rv = rv;
    p11_why(why, why_len, call, rv);
    return -1;
}

static int p11_unsupported(CK_RV rv)
{
    return rv == CKR_MECHANISM_INVALID || rv == CKR_FUNCTION_NOT_SUPPORTED ||
           rv == CKR_CURVE_NOT_SUPPORTED || rv == CKR_RANDOM_NO_RNG;
}

static CK_RV p11_login(struct p11_priv *p, CK_SESSION_HANDLE s)
{
    CK_RV rv = p->f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)p->pin,
                             (CK_ULONG)strlen(p->pin));

    return rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv;
}

/* ------------------------------------------------------------ keys */

static CK_RV p11_gen_rsa(struct p11_priv *p, CK_SESSION_HANDLE s, CK_ULONG bits,
                         CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    static const uint8_t e[] = {0x01, 0x00, 0x01};
    CK_MECHANISM m = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pt[] = {
        ATTR(CKA_TOKEN, &p11_false),
        ATTR(CKA_VERIFY, &p11_true),
        ATTR(CKA_MODULUS_BITS, &bits),
        ATTRN(CKA_PUBLIC_EXPONENT, e, sizeof(e)),
    };
    CK_ATTRIBUTE kt[] = {
        ATTR(CKA_TOKEN, &p11_false),
        ATTR(CKA_PRIVATE, &p11_true),
        ATTR(CKA_SENSITIVE, &p11_true),
        ATTR(CKA_SIGN, &p11_true),
    };

    return p->f->C_GenerateKeyPair(s, &m, pt, 4, kt, 4, pub, priv);
}

static CK_RV p11_gen_ec(struct p11_priv *p, CK_SESSION_HANDLE s,
                        CK_MECHANISM_TYPE mech, const uint8_t *params,
                        size_t params_len, int derive, CK_OBJECT_HANDLE *pub,
                        CK_OBJECT_HANDLE *priv)
{
    CK_MECHANISM m = {mech, NULL, 0};
    CK_ATTRIBUTE pt[] = {
        ATTR(CKA_TOKEN, &p11_false),
        ATTRN(CKA_EC_PARAMS, params, params_len),
        ATTR(CKA_VERIFY, &p11_true),
    };
    CK_ATTRIBUTE kt[] = {
        ATTR(CKA_TOKEN, &p11_false),
        ATTR(CKA_PRIVATE, &p11_true),
        ATTR(CKA_SENSITIVE, &p11_true),
        ATTR(CKA_SIGN, &p11_true),
    };

    /* The derive check reads the secret it makes, and what a sensitive
     * key derives is sensitive (PKCS#11 3.0): the ECDH key is not. */
    if (derive) {
        kt[2].pValue = &p11_false;
        kt[3].type = CKA_DERIVE;
    }
    return p->f->C_GenerateKeyPair(s, &m, pt, derive ? 2 : 3, kt, 4, pub, priv);
}

static CK_RV p11_import_secret(struct p11_priv *p, CK_SESSION_HANDLE s, int aes,
                               CK_OBJECT_HANDLE *h)
{
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &p11_secret),
        ATTR(CKA_KEY_TYPE, aes ? &p11_aes : &p11_generic),
        ATTR(CKA_TOKEN, &p11_false),
        ATTR(CKA_PRIVATE, &p11_true),
        ATTRN(CKA_VALUE, aes ? sp_aes_key : sp_hmac_key, SP_KEY_LEN),
        ATTR(aes ? CKA_ENCRYPT : CKA_SIGN, &p11_true),
        ATTR(aes ? CKA_DECRYPT : CKA_VERIFY, &p11_true),
    };

    return p->f->C_CreateObject(s, t, 7, h);
}

/* Makes thread t's key k if it does not exist yet. */
static CK_RV p11_key(struct p11_priv *p, struct p11_thr *t, enum sp_key k)
{
    CK_RV rv = CKR_OK;

    if (t->priv[k] != CK_INVALID_HANDLE)
        return CKR_OK;
    switch (k) {
    case SP_KEY_RSA2048:
        rv = p11_gen_rsa(p, t->s, 2048, &t->pub[k], &t->priv[k]);
        break;
    case SP_KEY_RSA3072:
        rv = p11_gen_rsa(p, t->s, 3072, &t->pub[k], &t->priv[k]);
        break;
    case SP_KEY_P256:
    case SP_KEY_P256_DH:
        rv = p11_gen_ec(p, t->s, CKM_EC_KEY_PAIR_GEN, p11_oid_p256,
                        sizeof(p11_oid_p256), k == SP_KEY_P256_DH, &t->pub[k],
                        &t->priv[k]);
        break;
    case SP_KEY_P384:
        rv = p11_gen_ec(p, t->s, CKM_EC_KEY_PAIR_GEN, p11_oid_p384,
                        sizeof(p11_oid_p384), 0, &t->pub[k], &t->priv[k]);
        break;
    case SP_KEY_ED25519:
        /* PKCS #11 3.0 allows the OID or the curve name. */
        rv = p11_gen_ec(p, t->s, CKM_EC_EDWARDS_KEY_PAIR_GEN, p11_oid_ed25519,
                        sizeof(p11_oid_ed25519), 0, &t->pub[k], &t->priv[k]);
        if (rv != CKR_OK && rv != CKR_MECHANISM_INVALID)
            rv = p11_gen_ec(p, t->s, CKM_EC_EDWARDS_KEY_PAIR_GEN,
                            p11_name_ed25519, sizeof(p11_name_ed25519), 0,
                            &t->pub[k], &t->priv[k]);
        break;
    case SP_KEY_AES:
    case SP_KEY_HMAC:
        rv = p11_import_secret(p, t->s, k == SP_KEY_AES, &t->priv[k]);
        break;
    default:
        break;
    }
    if (rv != CKR_OK)
        t->priv[k] = t->pub[k] = CK_INVALID_HANDLE;
    return rv;
}

static CK_RV p11_attr(struct p11_state *st, CK_OBJECT_HANDLE h,
                      CK_ATTRIBUTE_TYPE type, uint8_t *buf, size_t *len)
{
    CK_ATTRIBUTE a = {type, buf, (CK_ULONG)*len};
    CK_RV rv = st->f->C_GetAttributeValue(st->s, h, &a, 1);

    if (rv == CKR_OK)
        *len = a.ulValueLen;
    return rv;
}

/* The public point of thread key k, raw, want bytes. */
static int p11_point(struct p11_state *st, CK_OBJECT_HANDLE pub, uint8_t *out,
                     size_t want)
{
    uint8_t v[P11_MAX_POINT];
    size_t len = sizeof(v);
    const uint8_t *pt;

    if (p11_attr(st, pub, CKA_EC_POINT, v, &len) != CKR_OK) {
        len = sizeof(v);
        if (p11_attr(st, pub, CKA_VALUE, v, &len) != CKR_OK)
            return -1;
    }
    pt = sp_ec_point(v, len, want);
    if (pt == NULL)
        return -1;
    memcpy(out, pt, want);
    return 0;
}

/* ------------------------------------------------------------ run */

static const char *p11_find_label(char *buf, size_t len, unsigned long i)
{
    snprintf(buf, len, "nimbus-speed-find-%07lu", i);
    return buf;
}

static CK_RV p11_find(struct p11_state *st, unsigned long i, CK_ULONG *n)
{
    char label[40];
    CK_ATTRIBUTE t = {CKA_LABEL, label, 0};
    CK_OBJECT_HANDLE h[2];
    CK_RV rv;

    p11_find_label(label, sizeof(label), i);
    t.ulValueLen = (CK_ULONG)strlen(label);
    rv = st->f->C_FindObjectsInit(st->s, &t, 1);
    if (rv != CKR_OK)
        return rv;
    rv = st->f->C_FindObjects(st->s, h, 2, n);
    if (rv != CKR_OK) {
        st->f->C_FindObjectsFinal(st->s);
        return rv;
    }
    return st->f->C_FindObjectsFinal(st->s);
}

static uint64_t p11_rand(struct p11_state *st)
{
    st->rng ^= st->rng << 13;
    st->rng ^= st->rng >> 7;
    st->rng ^= st->rng << 17;
    return st->rng;
}

/* C_Sign of the message; with prehash, CKM_ECDSA over its digest. */
static CK_RV p11_sign(struct p11_state *st, CK_OBJECT_HANDLE key,
                      const char **call)
{
    const uint8_t *in = st->in;
    CK_ULONG len = (CK_ULONG)st->op->len;
    unsigned int hl = 0;
    CK_RV rv;

    if (st->prehash != NULL) {
        *call = "EVP_Digest";
        if (EVP_Digest(st->in, st->op->len, st->hash, &hl, st->prehash, NULL) !=
            1)
            return CKR_FUNCTION_FAILED;
        in = st->hash;
        len = hl;
    }
    *call = "C_SignInit";
    rv = st->f->C_SignInit(st->s, &st->mech, key);
    if (rv != CKR_OK)
        return rv;
    *call = "C_Sign";
    st->sig_len = sizeof(st->sig);
    return st->f->C_Sign(st->s, (CK_BYTE_PTR)in, len, st->sig, &st->sig_len);
}

static CK_RV p11_verify(struct p11_state *st, const char **call)
{
    const uint8_t *in = st->in;
    CK_ULONG len = (CK_ULONG)st->op->len;
    unsigned int hl = 0;
    CK_RV rv;

    if (st->prehash != NULL) {
        *call = "EVP_Digest";
        if (EVP_Digest(st->in, st->op->len, st->hash, &hl, st->prehash, NULL) !=
            1)
            return CKR_FUNCTION_FAILED;
        in = st->hash;
        len = hl;
    }
    *call = "C_VerifyInit";
    rv = st->f->C_VerifyInit(st->s, &st->mech, st->key);
    if (rv != CKR_OK)
        return rv;
    *call = "C_Verify";
    return st->f->C_Verify(st->s, (CK_BYTE_PTR)in, len, st->sig, st->sig_len);
}

/* The key-making operations: one template each, for the timed loop and
 * for the check before it. */
static CK_RV p11_make_aes(struct p11_state *st, bool token,
                          CK_OBJECT_HANDLE *h)
{
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &p11_secret),
        ATTR(CKA_KEY_TYPE, &p11_aes),
        ATTR(CKA_TOKEN, token ? &p11_true : &p11_false),
        ATTR(CKA_VALUE_LEN, &p11_key_len),
        ATTR(CKA_ENCRYPT, &p11_true),
    };

    return st->f->C_GenerateKey(st->s, &st->mech, t, 5, h);
}

static CK_RV p11_make_ec(struct p11_state *st, CK_OBJECT_HANDLE *pub,
                         CK_OBJECT_HANDLE *priv)
{
    CK_ATTRIBUTE pt[] = {
        ATTR(CKA_TOKEN, &p11_false),
        ATTRN(CKA_EC_PARAMS, p11_oid_p256, sizeof(p11_oid_p256)),
    };
    CK_ATTRIBUTE kt[] = {
        ATTR(CKA_TOKEN, &p11_false),
        ATTR(CKA_PRIVATE, &p11_true),
        ATTR(CKA_SENSITIVE, &p11_true),
        ATTR(CKA_SIGN, &p11_true),
    };

    return st->f->C_GenerateKeyPair(st->s, &st->mech, pt, 2, kt, 4, pub, priv);
}

static CK_RV p11_make_derived(struct p11_state *st, CK_OBJECT_HANDLE *h)
{
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &p11_secret),     ATTR(CKA_KEY_TYPE, &p11_generic),
        ATTR(CKA_TOKEN, &p11_false),      ATTR(CKA_SENSITIVE, &p11_false),
        ATTR(CKA_EXTRACTABLE, &p11_true), ATTR(CKA_VALUE_LEN, &p11_key_len),
    };

    return st->f->C_DeriveKey(st->s, &st->mech, st->key, t, 6, h);
}

static int p11_run(void *state, char *why, size_t why_len)
{
    struct p11_state *st = state;
    const struct sp_op *op = st->op;
    CK_FUNCTION_LIST_PTR f = st->f;
    CK_SESSION_HANDLE s = st->s, s2;
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE, h2 = CK_INVALID_HANDLE;
    CK_ULONG len, n;
    CK_RV rv;
    const char *call = "?";

    switch (op->kind) {
    case SP_SIGN:
    case SP_MAC:
        rv = p11_sign(st, st->key, &call);
        break;
    case SP_VERIFY:
        rv = p11_verify(st, &call);
        break;
    case SP_ENCRYPT:
        memcpy(st->iv + 4, &st->ctr, sizeof(st->ctr));
        st->ctr++;
        call = "C_EncryptInit";
        rv = f->C_EncryptInit(s, &st->mech, st->key);
        if (rv != CKR_OK)
            break;
        call = "C_Encrypt";
        len = st->out_cap;
        rv = f->C_Encrypt(s, st->in, (CK_ULONG)op->len, st->out, &len);
        break;
    case SP_DIGEST:
        call = "C_DigestInit";
        rv = f->C_DigestInit(s, &st->mech);
        if (rv != CKR_OK)
            break;
        call = "C_Digest";
        len = st->out_cap;
        rv = f->C_Digest(s, st->in, (CK_ULONG)op->len, st->out, &len);
        break;
    case SP_RANDOM:
        call = "C_GenerateRandom";
        rv = f->C_GenerateRandom(s, st->out, 32);
        break;
    case SP_KEYGEN_AES:
        call = "C_GenerateKey";
        rv = p11_make_aes(st, false, &h);
        if (rv != CKR_OK)
            break;
        call = "C_DestroyObject";
        rv = f->C_DestroyObject(s, h);
        break;
    case SP_KEYGEN_AES_TOKEN:
        /* Kept: the figure is one store write (in a cluster, one entry
         * acknowledged by a majority) per key. */
        call = "C_GenerateKey";
        rv = p11_make_aes(st, true, &h);
        break;
    case SP_KEYGEN_EC:
        call = "C_GenerateKeyPair";
        rv = p11_make_ec(st, &h, &h2);
        if (rv != CKR_OK)
            break;
        call = "C_DestroyObject";
        rv = f->C_DestroyObject(s, h2);
        if (rv == CKR_OK)
            rv = f->C_DestroyObject(s, h);
        break;
    case SP_DERIVE:
        call = "C_DeriveKey";
        rv = p11_make_derived(st, &h);
        if (rv != CKR_OK)
            break;
        call = "C_DestroyObject";
        rv = f->C_DestroyObject(s, h);
        break;
    case SP_SESSION:
        call = "C_OpenSession";
        rv = f->C_OpenSession(st->p->slot, CKF_SERIAL_SESSION, NULL, NULL, &s2);
        if (rv != CKR_OK)
            break;
        call = "C_CloseSession";
        rv = f->C_CloseSession(s2);
        break;
    case SP_FIND:
        call = "C_FindObjects";
        rv = p11_find(st, (unsigned long)(p11_rand(st) % op->objects), &n);
        if (rv == CKR_OK && n != 1) {
            snprintf(why, why_len, "find by label: %lu objects, not 1",
                     (unsigned long)n);
            return -1;
        }
        break;
    case SP_OBJECT: {
        CK_ATTRIBUTE t[] = {
            ATTR(CKA_CLASS, &p11_data),
            ATTR(CKA_TOKEN, &p11_false),
            ATTRN(CKA_LABEL, "nimbus-speed-object", 19),
            ATTRN(CKA_VALUE, st->in, 32),
        };
        call = "C_CreateObject";
        rv = f->C_CreateObject(s, t, 4, &h);
        if (rv != CKR_OK)
            break;
        call = "C_DestroyObject";
        rv = f->C_DestroyObject(s, h);
        break;
    }
    case SP_LOGIN:
        call = "C_Login";
        rv = p11_login(st->p, s);
        if (rv != CKR_OK)
            break;
        call = "C_Logout";
        rv = f->C_Logout(s);
        break;
    default:
        rv = CKR_GENERAL_ERROR;
        break;
    }
    st->rv = rv;
    if (rv != CKR_OK) {
        p11_why(why, why_len, call, rv);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ check */

/* The operation once, its result checked with OpenSSL. */
static int p11_check(struct p11_state *st, struct p11_thr *t, char *why,
                     size_t why_len)
{
    const struct sp_op *op = st->op;
    uint8_t n[SP_MAX_SIG], e[16], pt[P11_MAX_POINT], v[64];
    size_t n_len = sizeof(n), e_len = sizeof(e), v_len = sizeof(v);
    uint8_t iv[SP_AES_BLOCK];
    CK_ULONG len, cnt;
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv;
    int bad = 0;

    memcpy(iv, st->iv, sizeof(iv));
    memcpy(iv + 4, &st->ctr, sizeof(st->ctr));
    switch (op->kind) {
    case SP_SIGN:
    case SP_VERIFY:
        if (op->kind == SP_VERIFY) {
            /* The signature to verify: the module's own, checked too. */
            const char *call = "";

            rv = p11_sign(st, t->priv[op->key], &call);
            if (rv != CKR_OK)
                return p11_fail(st, why, why_len, call, rv);
        } else if (p11_run(st, why, why_len) != 0) {
            return -1;
        }
        if (op->key == SP_KEY_RSA2048 || op->key == SP_KEY_RSA3072) {
            if (p11_attr(st, t->pub[op->key], CKA_MODULUS, n, &n_len) != 0 ||
                p11_attr(st, t->pub[op->key], CKA_PUBLIC_EXPONENT, e, &e_len) !=
                    0)
                bad = 1;
            else
                bad = ssl_check_rsa_sig(n, n_len, e, e_len, op->pss, st->in,
                                        op->len, st->sig, st->sig_len);
        } else if (op->key == SP_KEY_ED25519) {
            bad = p11_point(st, t->pub[op->key], pt, 32) != 0 ||
                  ssl_check_ed25519_sig(pt, 32, st->in, op->len, st->sig,
                                        st->sig_len) != 0;
        } else {
            int p384 = op->key == SP_KEY_P384;
            size_t want = p384 ? 97 : 65;

            bad = p11_point(st, t->pub[op->key], pt, want) != 0 ||
                  ssl_check_ec_sig(p384 ? "P-384" : "P-256", pt, want, op->md,
                                   st->in, op->len, st->sig, st->sig_len) != 0;
        }
        if (bad)
            snprintf(why, why_len,
                     "the signature does not verify with "
                     "OpenSSL");
        if (!bad && op->kind == SP_VERIFY) {
            if (p11_run(st, why, why_len) != 0)
                return -1;
            const char *call = "";

            st->sig[st->sig_len / 2] ^= 1;
            rv = p11_verify(st, &call);
            st->sig[st->sig_len / 2] ^= 1;
            if (rv != CKR_SIGNATURE_INVALID) {
                snprintf(why, why_len, "C_Verify accepts a bad signature");
                bad = 1;
            }
        }
        break;
    case SP_ENCRYPT:
        len = st->out_cap;
        memcpy(st->iv, iv, sizeof(iv)); /* read by C_EncryptInit */
        rv = st->f->C_EncryptInit(st->s, &st->mech, st->key);
        if (rv != CKR_OK)
            return p11_fail(st, why, why_len, "C_EncryptInit", rv);
        rv = st->f->C_Encrypt(st->s, st->in, (CK_ULONG)op->len, st->out, &len);
        if (rv != CKR_OK)
            return p11_fail(st, why, why_len, "C_Encrypt", rv);
        st->ctr++;
        if (op->mech == CKM_AES_GCM)
            bad = ssl_check_gcm(sp_aes_key, iv, st->in, op->len, st->out, len);
        else
            bad = ssl_check_cbc_pad(sp_aes_key, iv, st->in, op->len, st->out,
                                    len);
        if (bad)
            snprintf(why, why_len,
                     "the ciphertext does not decrypt with "
                     "OpenSSL");
        break;
    case SP_MAC:
        if (p11_run(st, why, why_len) != 0)
            return -1;
        bad =
            ssl_check_hmac(sp_hmac_key, st->in, op->len, st->sig, st->sig_len);
        if (bad)
            snprintf(why, why_len, "the HMAC differs from OpenSSL's");
        break;
    case SP_DIGEST:
        len = st->out_cap;
        rv = st->f->C_DigestInit(st->s, &st->mech);
        if (rv == CKR_OK)
            rv = st->f->C_Digest(st->s, st->in, (CK_ULONG)op->len, st->out,
                                 &len);
        if (rv != CKR_OK)
            return p11_fail(st, why, why_len, "C_Digest", rv);
        bad = ssl_check_sha256(st->in, op->len, st->out, len);
        if (bad)
            snprintf(why, why_len, "the digest differs from OpenSSL's");
        break;
    case SP_RANDOM:
        memset(v, 0, sizeof(v));
        rv = st->f->C_GenerateRandom(st->s, v, 32);
        if (rv == CKR_OK)
            rv = st->f->C_GenerateRandom(st->s, v + 32, 32);
        if (rv != CKR_OK)
            return p11_fail(st, why, why_len, "C_GenerateRandom", rv);
        bad = memcmp(v, v + 32, 32) == 0;
        if (bad)
            snprintf(why, why_len, "C_GenerateRandom repeats itself");
        break;
    case SP_KEYGEN_AES:
    case SP_KEYGEN_AES_TOKEN: {
        CK_ULONG vl = 0;
        CK_ATTRIBUTE a = ATTR(CKA_VALUE_LEN, &vl);

        rv = p11_make_aes(st, op->kind == SP_KEYGEN_AES_TOKEN, &h);
        if (rv != CKR_OK)
            return p11_fail(st, why, why_len, "C_GenerateKey", rv);
        rv = st->f->C_GetAttributeValue(st->s, h, &a, 1);
        st->f->C_DestroyObject(st->s, h);
        bad = rv != CKR_OK || vl != SP_KEY_LEN;
        if (bad)
            snprintf(why, why_len, "the generated AES key is not 32 bytes");
        break;
    }
    case SP_KEYGEN_EC: {
        CK_OBJECT_HANDLE k2 = CK_INVALID_HANDLE;

        rv = p11_make_ec(st, &h, &k2);
        if (rv != CKR_OK)
            return p11_fail(st, why, why_len, "C_GenerateKeyPair", rv);
        bad = p11_point(st, h, pt, 65) != 0 ||
              ssl_check_ec_point("P-256", pt, 65) != 0;
        st->f->C_DestroyObject(st->s, k2);
        st->f->C_DestroyObject(st->s, h);
        if (bad)
            snprintf(why, why_len, "the generated EC point is not on P-256");
        break;
    }
    case SP_DERIVE: {
        uint8_t want[64];
        size_t want_len = sizeof(want);

        st->peer_len = sizeof(st->peer);
        if (p11_point(st, t->pub[op->key], pt, 65) != 0 ||
            ssl_ecdh_peer(st->peer, &st->peer_len, pt, 65, want, &want_len) !=
                0) {
            snprintf(why, why_len, "cannot make the ECDH peer key");
            return -1;
        }
        st->ecdh.ulPublicDataLen = (CK_ULONG)st->peer_len;
        rv = p11_make_derived(st, &h);
        if (rv != CKR_OK)
            return p11_fail(st, why, why_len, "C_DeriveKey", rv);
        rv = p11_attr(st, h, CKA_VALUE, v, &v_len);
        st->f->C_DestroyObject(st->s, h);
        bad = rv != CKR_OK || v_len != want_len || memcmp(v, want, v_len) != 0;
        if (bad)
            snprintf(why, why_len, "the ECDH secret differs from OpenSSL's");
        break;
    }
    case SP_FIND:
        rv = p11_find(st, 0, &cnt);
        if (rv == CKR_OK && cnt == 1)
            rv = p11_find(st, op->objects - 1, &cnt);
        if (rv != CKR_OK)
            return p11_fail(st, why, why_len, "C_FindObjects", rv);
        bad = cnt != 1;
        if (bad)
            snprintf(why, why_len, "find by label: %lu objects, not 1",
                     (unsigned long)cnt);
        break;
    case SP_OBJECT: {
        CK_ATTRIBUTE t2[] = {
            ATTR(CKA_CLASS, &p11_data),
            ATTR(CKA_TOKEN, &p11_false),
            ATTRN(CKA_VALUE, st->in, 32),
        };

        rv = st->f->C_CreateObject(st->s, t2, 3, &h);
        if (rv != CKR_OK)
            return p11_fail(st, why, why_len, "C_CreateObject", rv);
        rv = p11_attr(st, h, CKA_VALUE, v, &v_len);
        st->f->C_DestroyObject(st->s, h);
        bad = rv != CKR_OK || v_len != 32 || memcmp(v, st->in, 32) != 0;
        if (bad)
            snprintf(why, why_len, "a data object reads back wrong");
        break;
    }
    default:
        return p11_run(st, why, why_len);
    }
    return bad ? -1 : 0;
}

/* ------------------------------------------------------------ prepare */

static CK_FLAGS p11_need(enum sp_kind kind)
{
    switch (kind) {
    case SP_SIGN:
    case SP_MAC:
        return CKF_SIGN;
    case SP_VERIFY:
        return CKF_VERIFY;
    case SP_ENCRYPT:
        return CKF_ENCRYPT;
    case SP_DIGEST:
        return CKF_DIGEST;
    case SP_DERIVE:
        return CKF_DERIVE;
    case SP_KEYGEN_AES:
    case SP_KEYGEN_AES_TOKEN:
        return CKF_GENERATE;
    case SP_KEYGEN_EC:
        return CKF_GENERATE_KEY_PAIR;
    default:
        return 0;
    }
}

static CK_MECHANISM_TYPE p11_keygen_mech(enum sp_key k)
{
    switch (k) {
    case SP_KEY_RSA2048:
    case SP_KEY_RSA3072:
        return CKM_RSA_PKCS_KEY_PAIR_GEN;
    case SP_KEY_P256:
    case SP_KEY_P384:
    case SP_KEY_P256_DH:
        return CKM_EC_KEY_PAIR_GEN;
    case SP_KEY_ED25519:
        return CKM_EC_EDWARDS_KEY_PAIR_GEN;
    default:
        return CK_UNAVAILABLE_INFORMATION;
    }
}

static int p11_has_mech(struct p11_priv *p, CK_MECHANISM_TYPE m, CK_FLAGS need)
{
    CK_MECHANISM_INFO info;

    if (p->f->C_GetMechanismInfo(p->slot, m, &info) != CKR_OK)
        return 0;
    return (info.flags & need) == need;
}

static void p11_release(void *state)
{
    struct p11_state *st = state;

    if (st == NULL)
        return;
    EVP_MD_free(st->prehash);
    free(st->in);
    free(st->out);
    free(st);
}

static enum sp_status p11_prepare(struct sp_backend *be, const struct sp_op *op,
                                  int idx, void **state, char *why,
                                  size_t why_len)
{
    struct p11_priv *p = be->priv;
    struct p11_thr *t = &p->thr[idx];
    struct p11_state *st = NULL;
    CK_MECHANISM_TYPE kg = p11_keygen_mech(op->key);
    CK_RV rv;
    int rc;

    CK_MECHANISM_TYPE mech = op->mech;
    int prehash = 0;

    *state = NULL;
    /* SoftHSMv2 2.6 offers ECDSA only without hashing: hash here. */
    if ((mech == CKM_ECDSA_SHA256 || mech == CKM_ECDSA_SHA384) &&
        !p11_has_mech(p, mech, p11_need(op->kind)) &&
        p11_has_mech(p, CKM_ECDSA, p11_need(op->kind))) {
        mech = CKM_ECDSA;
        prehash = 1;
    }
    if (mech != CK_UNAVAILABLE_INFORMATION &&
        !p11_has_mech(p, mech, p11_need(op->kind))) {
        snprintf(why, why_len, "mechanism 0x%lx not offered",
                 (unsigned long)mech);
        return SP_UNSUPPORTED;
    }
    if (kg != CK_UNAVAILABLE_INFORMATION &&
        !p11_has_mech(p, kg, CKF_GENERATE_KEY_PAIR)) {
        snprintf(why, why_len, "key generation 0x%lx not offered",
                 (unsigned long)kg);
        return SP_UNSUPPORTED;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        goto nomem;
    st->op = op;
    st->p = p;
    st->f = p->f;
    st->s = t->s;
    st->out_cap = (CK_ULONG)(op->len + 2 * SP_AES_BLOCK + 64);
    st->in = malloc(op->len > 32 ? op->len : 32);
    st->out = malloc(st->out_cap);
    if (st->in == NULL || st->out == NULL)
        goto nomem;
    sp_fill(st->in, op->len > 32 ? op->len : 32, (unsigned)idx + 1);
    st->rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(idx + 1);
    if (RAND_bytes(st->iv, sizeof(st->iv)) != 1)
        goto nomem;
    if (op->key != SP_KEY_NONE) {
        rv = p11_key(p, t, op->key);
        if (rv != CKR_OK) {
            p11_why(why, why_len, "making the key", rv);
            p11_release(st);
            return p11_unsupported(rv) ? SP_UNSUPPORTED : SP_FAIL;
        }
        st->key = op->kind == SP_VERIFY ? t->pub[op->key] : t->priv[op->key];
    }
    st->mech.mechanism = mech;
    if (prehash) {
        st->prehash = EVP_MD_fetch(NULL, op->md, NULL);
        if (st->prehash == NULL)
            goto nomem;
    }
    if (op->pss) {
        st->pss.hashAlg = CKM_SHA256;
        st->pss.mgf = CKG_MGF1_SHA256;
        st->pss.sLen = 32;
        st->mech.pParameter = &st->pss;
        st->mech.ulParameterLen = sizeof(st->pss);
    } else if (op->mech == CKM_AES_GCM) {
        st->gcm.pIv = st->iv;
        st->gcm.ulIvLen = SP_GCM_IV_LEN;
        st->gcm.ulIvBits = SP_GCM_IV_LEN * 8;
        st->gcm.ulTagBits = SP_GCM_TAG_LEN * 8;
        st->mech.pParameter = &st->gcm;
        st->mech.ulParameterLen = sizeof(st->gcm);
    } else if (op->mech == CKM_AES_CBC_PAD) {
        st->mech.pParameter = st->iv;
        st->mech.ulParameterLen = SP_AES_BLOCK;
    } else if (op->kind == SP_DERIVE) {
        st->ecdh.kdf = CKD_NULL;
        st->ecdh.pPublicData = st->peer;
        st->mech.pParameter = &st->ecdh;
        st->mech.ulParameterLen = sizeof(st->ecdh);
    }
    if (op->kind == SP_LOGIN) {
        rv = p->f->C_Logout(p->main);
        if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN) {
            p11_why(why, why_len, "C_Logout", rv);
            p11_release(st);
            return SP_FAIL;
        }
    }
    st->rv = CKR_OK;
    rc = p11_check(st, t, why, why_len);
    if (rc != 0) {
        rv = st->rv;
        p11_release(st);
        return p11_unsupported(rv) ? SP_UNSUPPORTED : SP_FAIL;
    }
    if (prehash)
        snprintf(why, why_len, "CKM_ECDSA, %s by nimbus-speed", op->md);
    *state = st;
    return SP_OK;
nomem:
    p11_release(st);
    snprintf(why, why_len, "out of memory");
    return SP_FAIL;
}

/* After login: log back in; private session objects died with the logout. */
static void p11_finish(struct sp_backend *be, const struct sp_op *op)
{
    struct p11_priv *p = be->priv;

    if (op->kind != SP_LOGIN)
        return;
    if (p11_login(p, p->main) != CKR_OK)
        fprintf(stderr, "nimbus-speed: %s: cannot log in again\n", be->name);
    for (int i = 0; i < p->threads; i++) {
        memset(p->thr[i].priv, 0, sizeof(p->thr[i].priv));
        memset(p->thr[i].pub, 0, sizeof(p->thr[i].pub));
    }
}

static const struct sp_backend_ops p11_backend_ops = {
    .prepare = p11_prepare,
    .run = p11_run,
    .release = p11_release,
    .finish = p11_finish,
};

/* ------------------------------------------------------------ objects */

enum sp_status p11_make_objects(struct sp_backend *be, unsigned long want,
                                unsigned long *total)
{
    struct p11_priv *p = be->priv;
    CK_FUNCTION_LIST_PTR f = p->f;
    CK_ATTRIBUTE q[] = {
        ATTR(CKA_CLASS, &p11_data),
        ATTRN(CKA_APPLICATION, SP_FIND_APP, strlen(SP_FIND_APP)),
    };
    CK_OBJECT_HANDLE h[P11_FIND_BATCH];
    CK_ULONG n;
    unsigned long have = 0;
    char label[40], buf[32];
    CK_RV rv;

    rv = f->C_FindObjectsInit(p->main, q, 2);
    while (rv == CKR_OK) {
        rv = f->C_FindObjects(p->main, h, P11_FIND_BATCH, &n);
        if (rv != CKR_OK || n == 0)
            break;
        have += n;
    }
    f->C_FindObjectsFinal(p->main);
    if (rv != CKR_OK)
        goto fail;
    if (have < want)
        fprintf(stderr, "nimbus-speed: %s: creating %lu token objects\n",
                be->name, want - have);
    for (unsigned long i = have; i < want; i++) {
        CK_ATTRIBUTE t[] = {
            ATTR(CKA_CLASS, &p11_data),
            ATTR(CKA_TOKEN, &p11_true),
            ATTR(CKA_PRIVATE, &p11_true),
            ATTRN(CKA_APPLICATION, SP_FIND_APP, strlen(SP_FIND_APP)),
            ATTRN(CKA_LABEL, label, 0),
            ATTRN(CKA_VALUE, "x", 1),
        };
        CK_OBJECT_HANDLE o;

        p11_find_label(label, sizeof(label), i);
        t[4].ulValueLen = (CK_ULONG)strlen(label);
        rv = f->C_CreateObject(p->main, t, 6, &o);
        if (rv != CKR_OK)
            goto fail;
    }
    *total = have > want ? have : want;
    return SP_OK;
fail:
    fprintf(stderr, "nimbus-speed: %s: making the find objects: %s\n", be->name,
            sp_rv_name(rv, buf, sizeof(buf)));
    return SP_FAIL;
}

/* ------------------------------------------------------------ open */

static void p11_pad(CK_UTF8CHAR *dst, size_t len, const char *src)
{
    size_t n = strlen(src);

    memset(dst, ' ', len);
    memcpy(dst, src, n < len ? n : len);
}

/* The first slot with an initialized token (or any token if none is). */
static CK_RV p11_pick_slot(struct p11_priv *p, long want, const char *label)
{
    CK_SLOT_ID slots[P11_MAX_SLOTS];
    CK_ULONG n = P11_MAX_SLOTS;
    CK_TOKEN_INFO ti;
    CK_UTF8CHAR padded[32];
    int found = 0;
    CK_RV rv;

    rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
    if (rv != CKR_OK)
        return rv;
    if (label != NULL)
        p11_pad(padded, sizeof(padded), label);
    for (CK_ULONG i = 0; i < n && !found; i++) {
        if (p->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        if (want >= 0 && slots[i] == (CK_SLOT_ID)want)
            found = 1;
        else if (want < 0 && label != NULL &&
                 memcmp(ti.label, padded, sizeof(padded)) == 0 &&
                 (ti.flags & CKF_TOKEN_INITIALIZED))
            found = 1;
        else if (want < 0 && label == NULL &&
                 (ti.flags & CKF_TOKEN_INITIALIZED))
            found = 1;
        if (found)
            p->slot = slots[i];
    }
    if (!found && want < 0 && label == NULL && n > 0) {
        p->slot = slots[0];
        found = 1;
    }
    return found ? CKR_OK : CKR_SLOT_ID_INVALID;
}

static CK_RV p11_initialize(struct p11_priv *p)
{
    CK_C_INITIALIZE_ARGS args;

    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    return p->f->C_Initialize(&args);
}

/* The Nimbus module reads $NIMBUS_CONF in C_Initialize: each instance
 * (embedded, or a client of one nimbusd endpoint) gets its own. */
static CK_RV p11_initialize_with(struct p11_priv *p, const char *conf)
{
    char *saved = NULL;
    const char *old = getenv("NIMBUS_CONF");
    CK_RV rv;

    if (conf == NULL)
        return p11_initialize(p);
    if (old != NULL && (saved = strdup(old)) == NULL)
        return CKR_HOST_MEMORY;
    setenv("NIMBUS_CONF", conf, 1);
    rv = p11_initialize(p);
    if (saved != NULL)
        setenv("NIMBUS_CONF", saved, 1);
    else
        unsetenv("NIMBUS_CONF");
    free(saved);
    return rv;
}

static CK_RV p11_init_token(struct p11_priv *p, const struct p11_config *cfg,
                            const char **call)
{
    CK_UTF8CHAR label[32];
    CK_TOKEN_INFO ti;
    CK_SESSION_HANDLE s;
    CK_RV rv;

    *call = "C_GetTokenInfo";
    rv = p->f->C_GetTokenInfo(p->slot, &ti);
    if (rv != CKR_OK)
        return rv;
    if (!(ti.flags & CKF_TOKEN_INITIALIZED)) {
        if (cfg->so_pin == NULL) {
            *call = "the token is not initialized (--init SO_PIN)";
            return CKR_USER_PIN_NOT_INITIALIZED;
        }
        p11_pad(label, sizeof(label), P11_TOKEN_LABEL);
        *call = "C_InitToken";
        rv = p->f->C_InitToken(p->slot, (CK_UTF8CHAR_PTR)cfg->so_pin,
                               (CK_ULONG)strlen(cfg->so_pin), label);
        if (rv != CKR_OK)
            return rv;
        /* Some modules (SoftHSMv2) move an initialized token to a new slot
         * at the next C_Initialize. */
        if (p->f->C_GetTokenInfo(p->slot, &ti) != CKR_OK ||
            !(ti.flags & CKF_TOKEN_INITIALIZED)) {
            *call = "reloading after C_InitToken";
            p->f->C_Finalize(NULL);
            rv = p11_initialize(p);
            if (rv == CKR_OK)
                rv = p11_pick_slot(p, -1, P11_TOKEN_LABEL);
            if (rv != CKR_OK)
                return rv;
        }
        *call = "C_GetTokenInfo";
        rv = p->f->C_GetTokenInfo(p->slot, &ti);
        if (rv != CKR_OK)
            return rv;
    }
    if (ti.flags & CKF_USER_PIN_INITIALIZED)
        return CKR_OK;
    if (cfg->so_pin == NULL) {
        *call = "the user PIN is not initialized (--init SO_PIN)";
        return CKR_USER_PIN_NOT_INITIALIZED;
    }
    *call = "C_OpenSession";
    rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                             NULL, &s);
    if (rv != CKR_OK)
        return rv;
    *call = "C_Login(SO)";
    rv = p->f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)cfg->so_pin,
                       (CK_ULONG)strlen(cfg->so_pin));
    if (rv == CKR_OK) {
        *call = "C_InitPIN";
        rv = p->f->C_InitPIN(s, (CK_UTF8CHAR_PTR)cfg->pin,
                             (CK_ULONG)strlen(cfg->pin));
        p->f->C_Logout(s);
    }
    p->f->C_CloseSession(s);
    return rv;
}

static void p11_set_name(struct p11_priv *p)
{
    CK_INFO info;
    size_t n = 0;

    strcpy(p->name, "module");
    if (p->f->C_GetInfo(&info) != CKR_OK)
        return;
    while (n < sizeof(info.manufacturerID) && n < sizeof(p->name) - 1 &&
           isalnum(info.manufacturerID[n])) {
        p->name[n] = (char)tolower(info.manufacturerID[n]);
        n++;
    }
    if (n > 0)
        p->name[n] = '\0';
}

int p11_open(const struct p11_config *cfg, struct sp_backend *be)
{
    CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);
    struct p11_priv *p = calloc(1, sizeof(*p));
    const char *call = "C_GetFunctionList";
    char buf[32];
    CK_RV rv = CKR_GENERAL_ERROR;

    be->priv = p;
    be->path = cfg->path;
    be->ops = &p11_backend_ops;
    if (p == NULL)
        return -1;
    p->main = CK_INVALID_HANDLE;
    p->pin = strdup(cfg->pin != NULL ? cfg->pin : "");
    p->threads = cfg->threads;
    p->dl = dlopen(cfg->path, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        fprintf(stderr, "nimbus-speed: %s\n", dlerror());
        return -1;
    }
    *(void **)&get = dlsym(p->dl, "C_GetFunctionList");
    if (get == NULL || p->pin == NULL)
        goto fail;
    rv = get(&p->f);
    if (rv != CKR_OK)
        goto fail;
    call = "C_Initialize";
    rv = p11_initialize_with(p, cfg->conf);
    if (rv != CKR_OK) {
        p->f = NULL;
        goto fail;
    }
    p11_set_name(p);
    if (cfg->name != NULL)
        snprintf(p->name, sizeof(p->name), "%s", cfg->name);
    be->name = p->name;
    be->conf = cfg->conf;
    call = "choosing the slot";
    rv = p11_pick_slot(p, cfg->slot, NULL);
    if (rv != CKR_OK)
        goto fail;
    rv = p11_init_token(p, cfg, &call);
    if (rv != CKR_OK)
        goto fail;
    call = "C_OpenSession";
    rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                             NULL, &p->main);
    if (rv != CKR_OK)
        goto fail;
    call = "C_Login";
    rv = p11_login(p, p->main);
    if (rv != CKR_OK)
        goto fail;
    call = "C_OpenSession";
    for (int i = 0; i < cfg->threads; i++) {
        rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                 NULL, NULL, &p->thr[i].s);
        if (rv != CKR_OK)
            goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "nimbus-speed: %s: %s: %s\n", cfg->path, call,
            sp_rv_name(rv, buf, sizeof(buf)));
    return -1;
}

void p11_close(struct sp_backend *be)
{
    struct p11_priv *p = be->priv;

    if (p == NULL)
        return;
    if (p->f != NULL) {
        p->f->C_CloseAllSessions(p->slot);
        p->f->C_Finalize(NULL);
    }
    if (p->dl != NULL)
        dlclose(p->dl);
    if (p->pin != NULL) {
        memset(p->pin, 0, strlen(p->pin));
        free(p->pin);
    }
    free(p);
    be->priv = NULL;
}

/*
 * The other client of a login-load row: its own process (its own module
 * instance, connection and login state), guessing a password for a user
 * that does not exist, which costs the server a full KDF and locks nobody
 * out. It stops itself once ready; the parent lets it run only during its
 * backend's rounds and kills it after the row.
 */
int p11_login_loop(const char *path)
{
    static const char pin[] = "nimbus-speed-nobody:wrong-Password-1";
    CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);
    struct p11_priv p;
    CK_SESSION_HANDLE s;
    char buf[32];
    CK_RV rv;

    memset(&p, 0, sizeof(p));
    p.dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (p.dl == NULL) {
        fprintf(stderr, "nimbus-speed: %s\n", dlerror());
        return 1;
    }
    *(void **)&get = dlsym(p.dl, "C_GetFunctionList");
    if (get == NULL || get(&p.f) != CKR_OK)
        return 1;
    rv = p11_initialize(&p);
    if (rv == CKR_OK)
        rv = p11_pick_slot(&p, -1, NULL);
    if (rv == CKR_OK)
        rv = p.f->C_OpenSession(p.slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK) {
        fprintf(stderr, "nimbus-speed: login load on %s: %s\n", path,
                sp_rv_name(rv, buf, sizeof(buf)));
        return 1;
    }
    raise(SIGSTOP);
    for (;;) {
        rv = p.f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin,
                          (CK_ULONG)strlen(pin));
        if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
            fprintf(stderr, "nimbus-speed: a wrong login succeeded\n");
            return 1;
        }
    }
}
