/*
 * test_sym.c - symmetric crypto, wrapping, derivation and the 3.0 message
 * API through the module (issue 4): every AES mode one-shot and multi-part
 * against OpenSSL outside the token, CMAC, GCM with an IV the token makes
 * (both CK_GCM_PARAMS layouts), bad tags, DES3 (and switched off),
 * ChaCha20-Poly1305, keys of every kind wrapped out and back in under each
 * mechanism that can carry them, the attribute rules of wrapping
 * (extractable, sensitive, trusted, the wrap/unwrap/derive templates and
 * reading them back as array attributes), a shared user who may encrypt but
 * neither wrap nor derive, HKDF, SP 800-108, PBKDF2 (RFC 6070), the
 * concatenation KDFs, the message API with each IV generator, and
 * C_SessionCancel.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "p11util.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))
#define BOGUS_HANDLE ((CK_OBJECT_HANDLE)0x7777777UL)
#define BUF_MAX 8192

static CK_BBOOL yes = CK_TRUE;
static CK_BBOOL no = CK_FALSE;

/* The fixture's session: alice logged in, RW. */
static CK_SESSION_HANDLE S;

/* 61 bytes: not a whole number of blocks. */
static const CK_BYTE msg[] =
    "Symmetric keys travel wrapped; sixty-one bytes of plaintext.";
#define MSG_LEN (sizeof(msg) - 1)
static const CK_BYTE aad[] = "header: not secret, authenticated";
#define AAD_LEN (sizeof(aad) - 1)

static const CK_BYTE k256[32] = {
    0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae,
    0xf0, 0x85, 0x7d, 0x77, 0x81, 0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61,
    0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4};
static const CK_BYTE iv16[16] = {0, 1, 2,  3,  4,  5,  6,  7,
                                 8, 9, 10, 11, 12, 13, 14, 15};

/* ------------------------------------------------------------ fixture */

static int setup_sym(void **state)
{
    (void)state;
    p11_fresh(NULL);
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    p11_create_cu("bob", P11_BOB_PW);
    S = p11_open_rw();
    p11_login_cu(S, "alice", P11_ALICE_PW);
    return 0;
}

/* ------------------------------------------------------------ templates */

/* Short names for the shared builder (p11util.h). */
#define t_set p11_tmpl_set
#define t_bool p11_tmpl_bool
#define t_ulong p11_tmpl_ulong

/*
 * A session secret key that may do everything but wrap and unwrap (key
 * separation: those keys neither encrypt nor decrypt, t_kek) and be read
 * back.
 */
static void t_secret(struct p11_tmpl *t, CK_KEY_TYPE kt, const void *v,
                     size_t len)
{
    memset(t, 0, sizeof(*t));
    t_ulong(t, CKA_CLASS, CKO_SECRET_KEY);
    t_ulong(t, CKA_KEY_TYPE, kt);
    t_bool(t, CKA_TOKEN, false);
    if (v != NULL) {
        t_set(t, CKA_VALUE, v, (CK_ULONG)len);
    }
    t_bool(t, CKA_ENCRYPT, true);
    t_bool(t, CKA_DECRYPT, true);
    t_bool(t, CKA_SIGN, true);
    t_bool(t, CKA_VERIFY, true);
    t_bool(t, CKA_DERIVE, true);
    t_bool(t, CKA_EXTRACTABLE, true);
    t_bool(t, CKA_SENSITIVE, false);
}

/* A session AES key that wraps and unwraps (and does not encrypt or
 * decrypt). */
static void t_kek(struct p11_tmpl *t, const void *v, size_t len)
{
    t_secret(t, CKK_AES, v, len);
    t_bool(t, CKA_ENCRYPT, false);
    t_bool(t, CKA_DECRYPT, false);
    t_bool(t, CKA_WRAP, true);
    t_bool(t, CKA_UNWRAP, true);
}

static CK_OBJECT_HANDLE t_create(struct p11_tmpl *t)
{
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

    assert_rv(p11->C_CreateObject(S, t->a, t->n, &h), CKR_OK);
    return h;
}

static CK_OBJECT_HANDLE make_secret(CK_KEY_TYPE kt, const void *v, size_t len)
{
    struct p11_tmpl t;

    t_secret(&t, kt, v, len);
    return t_create(&t);
}

static CK_OBJECT_HANDLE make_kek(const void *v, size_t len)
{
    struct p11_tmpl t;

    t_kek(&t, v, len);
    return t_create(&t);
}

static CK_ULONG get_bytes(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                          CK_BYTE *buf, CK_ULONG max)
{
    return p11_get_bytes(S, h, type, buf, max);
}

static void assert_bool_attr(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                             CK_BBOOL want)
{
    assert_int_equal(p11_get_bool(S, h, type), want);
}

/* ------------------------------------------------------------ module */

/* Init + one-shot, with a length query first. */
static CK_RV mod_crypt(bool enc, CK_MECHANISM *m, CK_OBJECT_HANDLE k,
                       const CK_BYTE *in, CK_ULONG inlen, CK_BYTE *out,
                       CK_ULONG *outlen)
{
    CK_ULONG need = 0;
    CK_RV rv;

    rv = enc ? p11->C_EncryptInit(S, m, k) : p11->C_DecryptInit(S, m, k);
    if (rv != CKR_OK) {
        return rv;
    }
    rv = enc ? p11->C_Encrypt(S, (CK_BYTE_PTR)in, inlen, NULL, &need)
             : p11->C_Decrypt(S, (CK_BYTE_PTR)in, inlen, NULL, &need);
    if (rv != CKR_OK) {
        return rv;
    }
    assert_true(need <= *outlen);
    rv = enc ? p11->C_Encrypt(S, (CK_BYTE_PTR)in, inlen, out, outlen)
             : p11->C_Decrypt(S, (CK_BYTE_PTR)in, inlen, out, outlen);
    if (rv == CKR_OK) {
        assert_true(*outlen <= need);
    }
    return rv;
}

/* Init + Update in chunks of step bytes + Final. */
static CK_RV mod_crypt_parts(bool enc, CK_MECHANISM *m, CK_OBJECT_HANDLE k,
                             const CK_BYTE *in, CK_ULONG inlen, CK_ULONG step,
                             CK_BYTE *out, CK_ULONG *outlen)
{
    CK_ULONG done = 0, pos = 0, l;
    CK_RV rv;

    rv = enc ? p11->C_EncryptInit(S, m, k) : p11->C_DecryptInit(S, m, k);
    if (rv != CKR_OK) {
        return rv;
    }
    while (pos < inlen) {
        CK_ULONG n = inlen - pos < step ? inlen - pos : step;

        l = *outlen - done;
        rv = enc ? p11->C_EncryptUpdate(S, (CK_BYTE_PTR)in + pos, n, out + done,
                                        &l)
                 : p11->C_DecryptUpdate(S, (CK_BYTE_PTR)in + pos, n, out + done,
                                        &l);
        if (rv != CKR_OK) {
            return rv;
        }
        done += l;
        pos += n;
    }
    l = *outlen - done;
    rv = enc ? p11->C_EncryptFinal(S, out + done, &l)
             : p11->C_DecryptFinal(S, out + done, &l);
    if (rv != CKR_OK) {
        return rv;
    }
    *outlen = done + l;
    return CKR_OK;
}

/* Encrypts one-shot and in parts (equal results), decrypts both ways back
 * to the plaintext; returns the ciphertext length (in ct). */
static CK_ULONG round_trip(CK_MECHANISM *m, CK_OBJECT_HANDLE k,
                           const CK_BYTE *in, CK_ULONG inlen, CK_ULONG step,
                           CK_BYTE *ct)
{
    CK_BYTE ct2[BUF_MAX], pt[BUF_MAX];
    CK_ULONG clen = BUF_MAX, clen2 = BUF_MAX, plen = BUF_MAX;

    assert_rv(mod_crypt(true, m, k, in, inlen, ct, &clen), CKR_OK);
    assert_rv(mod_crypt_parts(true, m, k, in, inlen, step, ct2, &clen2),
              CKR_OK);
    assert_int_equal(clen, clen2);
    assert_memory_equal(ct, ct2, clen);
    assert_rv(mod_crypt(false, m, k, ct, clen, pt, &plen), CKR_OK);
    assert_int_equal(plen, inlen);
    assert_memory_equal(pt, in, inlen);
    plen = BUF_MAX;
    assert_rv(mod_crypt_parts(false, m, k, ct, clen, step, pt, &plen), CKR_OK);
    assert_int_equal(plen, inlen);
    assert_memory_equal(pt, in, inlen);
    return clen;
}

/* ------------------------------------------------------------ OpenSSL */

static EVP_CIPHER *cipher(const char *name)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, name, NULL);

    if (c == NULL) {
        fail_msg("OpenSSL has no %s", name);
    }
    return c;
}

static const char *aes_name(size_t klen, const char *mode)
{
    static char name[32];

    snprintf(name, sizeof(name), "AES-%zu-%s", klen * 8, mode);
    return name;
}

/* A plain cipher (ECB, CBC, CTR, the key wraps) in one step. */
static size_t ossl_crypt(const char *name, bool enc, bool pad,
                         const CK_BYTE *key, const CK_BYTE *iv,
                         const CK_BYTE *in, size_t inlen, CK_BYTE *out)
{
    EVP_CIPHER *c = cipher(name);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;

    assert_non_null(ctx);
    EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    assert_int_equal(EVP_CipherInit_ex2(ctx, c, key, iv, enc ? 1 : 0, NULL), 1);
    EVP_CIPHER_CTX_set_padding(ctx, pad ? 1 : 0);
    assert_int_equal(EVP_CipherUpdate(ctx, out, &l1, in, (int)inlen), 1);
    assert_int_equal(EVP_CipherFinal_ex(ctx, out + l1, &l2), 1);
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
    return (size_t)(l1 + l2);
}

/* GCM, CCM or ChaCha20-Poly1305 encryption: ciphertext and tag. */
static void ossl_aead(const char *name, bool ccm, const CK_BYTE *key,
                      const CK_BYTE *iv, size_t ivlen, const CK_BYTE *a,
                      size_t alen, const CK_BYTE *in, size_t inlen,
                      CK_BYTE *out, CK_BYTE *tag, size_t taglen)
{
    EVP_CIPHER *c = cipher(name);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int l = 0, l2 = 0;

    assert_non_null(ctx);
    assert_int_equal(EVP_EncryptInit_ex2(ctx, c, NULL, NULL, NULL), 1);
    assert_int_equal(
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, (int)ivlen, NULL), 1);
    if (ccm) {
        assert_int_equal(
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, (int)taglen, NULL),
            1);
    }
    assert_int_equal(EVP_EncryptInit_ex2(ctx, NULL, key, iv, NULL), 1);
    if (ccm) {
        assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &l, NULL, (int)inlen), 1);
    }
    if (alen > 0) {
        assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &l, a, (int)alen), 1);
    }
    assert_int_equal(EVP_EncryptUpdate(ctx, out, &l, in, (int)inlen), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, out + l, &l2), 1);
    assert_int_equal(
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, (int)taglen, tag), 1);
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
}

static size_t ossl_cmac(const CK_BYTE *key, size_t klen, const CK_BYTE *in,
                        size_t inlen, CK_BYTE *out)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
    EVP_MAC_CTX *ctx;
    OSSL_PARAM params[2];
    size_t outl = 0;

    assert_non_null(mac);
    ctx = EVP_MAC_CTX_new(mac);
    assert_non_null(ctx);
    params[0] = OSSL_PARAM_construct_utf8_string(
        OSSL_MAC_PARAM_CIPHER, (char *)aes_name(klen, "CBC"), 0);
    params[1] = OSSL_PARAM_construct_end();
    assert_int_equal(EVP_MAC_init(ctx, key, klen, params), 1);
    assert_int_equal(EVP_MAC_update(ctx, in, inlen), 1);
    assert_int_equal(EVP_MAC_final(ctx, out, &outl, 16), 1);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return outl;
}

/* ------------------------------------------------------------ AES modes */

static void aes_modes_one(size_t klen)
{
    CK_OBJECT_HANDLE k = make_secret(CKK_AES, k256, klen);
    CK_BYTE ct[BUF_MAX], want[BUF_MAX], tag[16];
    CK_ULONG clen;
    size_t wlen;
    CK_MECHANISM m;

    /* ECB and CBC: whole blocks (the first 48 bytes). */
    m = (CK_MECHANISM){CKM_AES_ECB, NULL, 0};
    clen = round_trip(&m, k, msg, 48, 7, ct);
    wlen = ossl_crypt(aes_name(klen, "ECB"), true, false, k256, NULL, msg, 48,
                      want);
    assert_int_equal(clen, wlen);
    assert_memory_equal(ct, want, wlen);

    m = (CK_MECHANISM){CKM_AES_CBC, (void *)iv16, sizeof(iv16)};
    clen = round_trip(&m, k, msg, 48, 5, ct);
    wlen = ossl_crypt(aes_name(klen, "CBC"), true, false, k256, iv16, msg, 48,
                      want);
    assert_int_equal(clen, wlen);
    assert_memory_equal(ct, want, wlen);

    m = (CK_MECHANISM){CKM_AES_CBC_PAD, (void *)iv16, sizeof(iv16)};
    clen = round_trip(&m, k, msg, MSG_LEN, 9, ct);
    wlen = ossl_crypt(aes_name(klen, "CBC"), true, true, k256, iv16, msg,
                      MSG_LEN, want);
    assert_int_equal(clen, wlen);
    assert_memory_equal(ct, want, wlen);

    {
        CK_AES_CTR_PARAMS ctr;

        memset(&ctr, 0, sizeof(ctr));
        ctr.ulCounterBits = 128;
        memcpy(ctr.cb, iv16, 16);
        m = (CK_MECHANISM){CKM_AES_CTR, &ctr, sizeof(ctr)};
        clen = round_trip(&m, k, msg, MSG_LEN, 3, ct);
        wlen = ossl_crypt(aes_name(klen, "CTR"), true, false, k256, iv16, msg,
                          MSG_LEN, want);
        assert_int_equal(clen, wlen);
        assert_memory_equal(ct, want, wlen);
    }
    /* GCM: 12-byte and 16-byte IVs, 128- and 96-bit tags. */
    for (int v = 0; v < 2; v++) {
        CK_GCM_PARAMS g;
        size_t ivlen = v == 0 ? 12 : 16;
        size_t taglen = v == 0 ? 16 : 12;

        memset(&g, 0, sizeof(g));
        g.pIv = (CK_BYTE_PTR)iv16;
        g.ulIvLen = ivlen;
        g.ulIvBits = ivlen * 8;
        g.pAAD = (CK_BYTE_PTR)aad;
        g.ulAADLen = AAD_LEN;
        g.ulTagBits = taglen * 8;
        m = (CK_MECHANISM){CKM_AES_GCM, &g, sizeof(g)};
        clen = round_trip(&m, k, msg, MSG_LEN, 11, ct);
        assert_int_equal(clen, MSG_LEN + taglen);
        ossl_aead(aes_name(klen, "GCM"), false, k256, iv16, ivlen, aad, AAD_LEN,
                  msg, MSG_LEN, want, tag, taglen);
        assert_memory_equal(ct, want, MSG_LEN);
        assert_memory_equal(ct + MSG_LEN, tag, taglen);
    }
    {
        CK_CCM_PARAMS c;

        memset(&c, 0, sizeof(c));
        c.ulDataLen = MSG_LEN;
        c.pNonce = (CK_BYTE_PTR)iv16;
        c.ulNonceLen = 13;
        c.pAAD = (CK_BYTE_PTR)aad;
        c.ulAADLen = AAD_LEN;
        c.ulMACLen = 8;
        m = (CK_MECHANISM){CKM_AES_CCM, &c, sizeof(c)};
        clen = round_trip(&m, k, msg, MSG_LEN, 13, ct);
        assert_int_equal(clen, MSG_LEN + 8);
        ossl_aead(aes_name(klen, "CCM"), true, k256, iv16, 13, aad, AAD_LEN,
                  msg, MSG_LEN, want, tag, 8);
        assert_memory_equal(ct, want, MSG_LEN);
        assert_memory_equal(ct + MSG_LEN, tag, 8);
    }
    assert_rv(p11->C_DestroyObject(S, k), CKR_OK);
}

static void test_aes_modes(void **state)
{
    (void)state;
    aes_modes_one(16);
    aes_modes_one(24);
    aes_modes_one(32);
}

/* NIST SP 800-38C example 1 (C.1): a known answer for CCM. */
static void test_ccm_known_answer(void **state)
{
    static const CK_BYTE key[16] = {0x40, 0x41, 0x42, 0x43, 0x44, 0x45,
                                    0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b,
                                    0x4c, 0x4d, 0x4e, 0x4f};
    static const CK_BYTE nonce[7] = {0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16};
    static const CK_BYTE a[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    static const CK_BYTE p[4] = {0x20, 0x21, 0x22, 0x23};
    static const CK_BYTE want[8] = {0x71, 0x62, 0x01, 0x5b,
                                    0x4d, 0xac, 0x25, 0x5d};
    CK_OBJECT_HANDLE k = make_secret(CKK_AES, key, sizeof(key));
    CK_CCM_PARAMS c = {sizeof(p),      (CK_BYTE_PTR)nonce, sizeof(nonce),
                       (CK_BYTE_PTR)a, sizeof(a),          4};
    CK_MECHANISM m = {CKM_AES_CCM, &c, sizeof(c)};
    CK_BYTE ct[64];

    (void)state;
    assert_int_equal(round_trip(&m, k, p, sizeof(p), 1, ct), sizeof(want));
    assert_memory_equal(ct, want, sizeof(want));
}

static void test_cmac(void **state)
{
    (void)state;
    for (size_t klen = 16; klen <= 32; klen += 8) {
        CK_OBJECT_HANDLE k = make_secret(CKK_AES, k256, klen);
        CK_MECHANISM m = {CKM_AES_CMAC, NULL, 0};
        CK_MAC_GENERAL_PARAMS gl = 8;
        CK_MECHANISM mg = {CKM_AES_CMAC_GENERAL, &gl, sizeof(gl)};
        CK_BYTE mac[16], want[16];
        CK_ULONG len = sizeof(mac);

        assert_int_equal(ossl_cmac(k256, klen, msg, MSG_LEN, want), 16);
        assert_rv(p11->C_SignInit(S, &m, k), CKR_OK);
        assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, mac, &len), CKR_OK);
        assert_int_equal(len, 16);
        assert_memory_equal(mac, want, 16);
        /* In parts. */
        assert_rv(p11->C_SignInit(S, &m, k), CKR_OK);
        assert_rv(p11->C_SignUpdate(S, (CK_BYTE_PTR)msg, 10), CKR_OK);
        assert_rv(p11->C_SignUpdate(S, (CK_BYTE_PTR)msg + 10, MSG_LEN - 10),
                  CKR_OK);
        len = sizeof(mac);
        assert_rv(p11->C_SignFinal(S, mac, &len), CKR_OK);
        assert_memory_equal(mac, want, 16);
        assert_rv(p11->C_VerifyInit(S, &m, k), CKR_OK);
        assert_rv(p11->C_Verify(S, (CK_BYTE_PTR)msg, MSG_LEN, want, 16),
                  CKR_OK);
        want[0] ^= 1;
        assert_rv(p11->C_VerifyInit(S, &m, k), CKR_OK);
        assert_rv(p11->C_Verify(S, (CK_BYTE_PTR)msg, MSG_LEN, want, 16),
                  CKR_SIGNATURE_INVALID);
        want[0] ^= 1;
        /* _GENERAL: the first 8 bytes. */
        len = sizeof(mac);
        assert_rv(p11->C_SignInit(S, &mg, k), CKR_OK);
        assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, mac, &len), CKR_OK);
        assert_int_equal(len, 8);
        assert_memory_equal(mac, want, 8);
        assert_rv(p11->C_DestroyObject(S, k), CKR_OK);
    }
}

/* ------------------------------------------------------------ GCM IV */

/* CK_GCM_PARAMS without ulIvBits (2.40 header, Java). */
struct gcm_short {
    CK_BYTE_PTR pIv;
    CK_ULONG ulIvLen;
    CK_BYTE_PTR pAAD;
    CK_ULONG ulAADLen;
    CK_ULONG ulTagBits;
};

static void test_gcm_token_iv(void **state)
{
    CK_OBJECT_HANDLE k = make_secret(CKK_AES, k256, 16);
    CK_BYTE ct[BUF_MAX], pt[BUF_MAX], want[BUF_MAX], tag[16];
    static const CK_BYTE zero[12];
    CK_ULONG clen, plen;

    (void)state;
    for (int layout = 0; layout < 2; layout++) {
        for (int nul = 0; nul < 2; nul++) {
            CK_BYTE iv[12];
            CK_GCM_PARAMS g;
            struct gcm_short gs;
            CK_MECHANISM m;

            memset(iv, 0, sizeof(iv));
            memset(&g, 0, sizeof(g));
            memset(&gs, 0, sizeof(gs));
            g.pIv = iv;
            g.ulIvLen = 12;
            g.ulIvBits = 96;
            g.pAAD = (CK_BYTE_PTR)aad;
            g.ulAADLen = AAD_LEN;
            g.ulTagBits = 128;
            gs.pIv = iv;
            gs.ulIvLen = 12;
            gs.pAAD = (CK_BYTE_PTR)aad;
            gs.ulAADLen = AAD_LEN;
            gs.ulTagBits = 128;
            if (layout == 0) {
                m = (CK_MECHANISM){CKM_AES_GCM, &g, sizeof(g)};
            } else {
                m = (CK_MECHANISM){CKM_AES_GCM, &gs, sizeof(gs)};
            }
            if (nul == 1) {
                /* A NULL IV: the token makes one that the caller cannot
                 * learn: it encrypts, and nothing is written. */
                g.pIv = NULL;
                gs.pIv = NULL;
                clen = sizeof(ct);
                assert_rv(mod_crypt(true, &m, k, msg, MSG_LEN, ct, &clen),
                          CKR_OK);
                assert_int_equal(clen, MSG_LEN + 16);
                continue;
            }
            clen = sizeof(ct);
            assert_rv(mod_crypt(true, &m, k, msg, MSG_LEN, ct, &clen), CKR_OK);
            assert_int_equal(clen, MSG_LEN + 16);
            /* The IV came back (12 zero bytes from a good RNG: never). */
            assert_memory_not_equal(iv, zero, 12);
            ossl_aead("AES-128-GCM", false, k256, iv, 12, aad, AAD_LEN, msg,
                      MSG_LEN, want, tag, 16);
            assert_memory_equal(ct, want, MSG_LEN);
            assert_memory_equal(ct + MSG_LEN, tag, 16);
            /* Decryption with the IV written back. */
            plen = sizeof(pt);
            assert_rv(mod_crypt(false, &m, k, ct, clen, pt, &plen), CKR_OK);
            assert_int_equal(plen, MSG_LEN);
            assert_memory_equal(pt, msg, MSG_LEN);
            /* A bad tag. */
            ct[clen - 1] ^= 0x80;
            plen = sizeof(pt);
            assert_rv(mod_crypt(false, &m, k, ct, clen, pt, &plen),
                      CKR_ENCRYPTED_DATA_INVALID);
            plen = sizeof(pt);
            assert_rv(mod_crypt_parts(false, &m, k, ct, clen, 16, pt, &plen),
                      CKR_ENCRYPTED_DATA_INVALID);
            /* A given IV is honoured. */
            memcpy(iv, iv16, 12);
            clen = sizeof(ct);
            assert_rv(mod_crypt(true, &m, k, msg, MSG_LEN, ct, &clen), CKR_OK);
            assert_memory_equal(iv, iv16, 12);
            ossl_aead("AES-128-GCM", false, k256, iv16, 12, aad, AAD_LEN, msg,
                      MSG_LEN, want, tag, 16);
            assert_memory_equal(ct, want, MSG_LEN);
        }
    }
    /* The vendor GCM: the token's IV comes first in the output. */
    {
        CK_GCM_PARAMS g = {NULL, 12, 96, (CK_BYTE_PTR)aad, AAD_LEN, 128};
        CK_MECHANISM m = {CKM_CLOUDHSM_AES_GCM, &g, sizeof(g)};

        clen = sizeof(ct);
        assert_rv(mod_crypt(true, &m, k, msg, MSG_LEN, ct, &clen), CKR_OK);
        assert_int_equal(clen, 12 + MSG_LEN + 16);
        ossl_aead("AES-128-GCM", false, k256, ct, 12, aad, AAD_LEN, msg,
                  MSG_LEN, want, tag, 16);
        assert_memory_equal(ct + 12, want, MSG_LEN);
        plen = sizeof(pt);
        assert_rv(mod_crypt(false, &m, k, ct, clen, pt, &plen), CKR_OK);
        assert_int_equal(plen, MSG_LEN);
        assert_memory_equal(pt, msg, MSG_LEN);
    }
}

/* ------------------------------------------------------------ DES3, ChaCha */

static void test_des3(void **state)
{
    static const CK_BYTE key[24] = {
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x23, 0x45, 0x67, 0x89,
        0xab, 0xcd, 0xef, 0x01, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23};
    CK_OBJECT_HANDLE k = make_secret(CKK_DES3, key, sizeof(key));
    CK_BYTE ct[BUF_MAX], want[BUF_MAX];
    CK_ULONG clen;
    size_t wlen;
    CK_MECHANISM m;
    CK_OBJECT_HANDLE g;
    CK_MECHANISM gm = {CKM_DES3_KEY_GEN, NULL, 0};
    struct p11_tmpl t;

    (void)state;
    m = (CK_MECHANISM){CKM_DES3_ECB, NULL, 0};
    clen = round_trip(&m, k, msg, 48, 5, ct);
    wlen = ossl_crypt("DES-EDE3-ECB", true, false, key, NULL, msg, 48, want);
    assert_int_equal(clen, wlen);
    assert_memory_equal(ct, want, wlen);
    m = (CK_MECHANISM){CKM_DES3_CBC, (void *)iv16, 8};
    clen = round_trip(&m, k, msg, 48, 5, ct);
    wlen = ossl_crypt("DES-EDE3-CBC", true, false, key, iv16, msg, 48, want);
    assert_int_equal(clen, wlen);
    assert_memory_equal(ct, want, wlen);
    m = (CK_MECHANISM){CKM_DES3_CBC_PAD, (void *)iv16, 8};
    clen = round_trip(&m, k, msg, MSG_LEN, 5, ct);
    wlen =
        ossl_crypt("DES-EDE3-CBC", true, true, key, iv16, msg, MSG_LEN, want);
    assert_int_equal(clen, wlen);
    assert_memory_equal(ct, want, wlen);
    /* Generation: 24 bytes. */
    t_secret(&t, CKK_DES3, NULL, 0);
    assert_rv(p11->C_GenerateKey(S, &gm, t.a, t.n, &g), CKR_OK);
    assert_int_equal(get_bytes(g, CKA_VALUE, ct, sizeof(ct)), 24);
}

static void test_des3_off(void **state)
{
    CK_MECHANISM_INFO info;
    CK_MECHANISM m = {CKM_DES3_ECB, NULL, 0};
    CK_MECHANISM gm = {CKM_DES3_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE k, g;
    struct p11_tmpl t;

    (void)state;
    p11_fresh("des3 = no\n");
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    S = p11_open_rw();
    p11_login_cu(S, "alice", P11_ALICE_PW);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_DES3_ECB, &info),
              CKR_MECHANISM_INVALID);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_AES_ECB, &info), CKR_OK);
    t_secret(&t, CKK_DES3, NULL, 0);
    assert_rv(p11->C_GenerateKey(S, &gm, t.a, t.n, &g), CKR_MECHANISM_INVALID);
    /* An imported DES3 key cannot be used. */
    {
        static const CK_BYTE key[24] = {1,  2,  3,  4,  5,  6,  7,  8,
                                        9,  10, 11, 12, 13, 14, 15, 16,
                                        17, 18, 19, 20, 21, 22, 23, 24};

        t_secret(&t, CKK_DES3, key, sizeof(key));
        if (p11->C_CreateObject(S, t.a, t.n, &k) == CKR_OK) {
            assert_rv(p11->C_EncryptInit(S, &m, k), CKR_MECHANISM_INVALID);
        }
    }
}

static void test_chacha20(void **state)
{
    CK_OBJECT_HANDLE k = make_secret(CKK_CHACHA20, k256, 32);
    CK_BYTE nonce[12];
    CK_SALSA20_CHACHA20_POLY1305_PARAMS p = {nonce, 12, (CK_BYTE_PTR)aad,
                                             AAD_LEN};
    CK_MECHANISM m = {CKM_CHACHA20_POLY1305, &p, sizeof(p)};
    CK_BYTE ct[BUF_MAX], want[BUF_MAX], tag[16];
    CK_ULONG clen;

    (void)state;
    memcpy(nonce, iv16, 12);
    clen = round_trip(&m, k, msg, MSG_LEN, 17, ct);
    assert_int_equal(clen, MSG_LEN + 16);
    ossl_aead("ChaCha20-Poly1305", false, k256, nonce, 12, aad, AAD_LEN, msg,
              MSG_LEN, want, tag, 16);
    assert_memory_equal(ct, want, MSG_LEN);
    assert_memory_equal(ct + MSG_LEN, tag, 16);
    ct[3] ^= 1;
    clen = MSG_LEN + 16;
    {
        CK_BYTE pt[BUF_MAX];
        CK_ULONG plen = sizeof(pt);

        assert_rv(mod_crypt(false, &m, k, ct, clen, pt, &plen),
                  CKR_ENCRYPTED_DATA_INVALID);
    }
}

/* ------------------------------------------------------------ wrapping */

static CK_RV wrap(CK_MECHANISM *m, CK_OBJECT_HANDLE wk, CK_OBJECT_HANDLE k,
                  CK_BYTE *out, CK_ULONG *outlen)
{
    CK_ULONG need = 0;
    CK_RV rv;

    rv = p11->C_WrapKey(S, m, wk, k, NULL, &need);
    if (rv != CKR_OK) {
        return rv;
    }
    assert_true(need > 0 && need <= *outlen);
    rv = p11->C_WrapKey(S, m, wk, k, out, outlen);
    if (rv == CKR_OK) {
        assert_true(*outlen <= need);
    }
    return rv;
}

static void gen_pair(CK_MECHANISM_TYPE mt, const CK_BYTE *ec_params,
                     size_t ec_len, bool for_wrapping, CK_OBJECT_HANDLE *pub,
                     CK_OBJECT_HANDLE *priv)
{
    static const CK_BYTE e[] = {1, 0, 1};
    CK_ULONG bits = 2048;
    CK_MECHANISM m = {mt, NULL, 0};
    struct p11_tmpl pt, vt;

    memset(&pt, 0, sizeof(pt));
    memset(&vt, 0, sizeof(vt));
    t_bool(&pt, CKA_TOKEN, false);
    t_bool(&vt, CKA_TOKEN, false);
    if (mt == CKM_RSA_PKCS_KEY_PAIR_GEN) {
        t_ulong(&pt, CKA_MODULUS_BITS, bits);
        t_set(&pt, CKA_PUBLIC_EXPONENT, e, sizeof(e));
    } else {
        t_set(&pt, CKA_EC_PARAMS, ec_params, ec_len);
    }
    if (for_wrapping) {
        t_bool(&pt, CKA_WRAP, true);
        t_bool(&pt, CKA_ENCRYPT, true);
        t_bool(&vt, CKA_UNWRAP, true);
        t_bool(&vt, CKA_DECRYPT, true);
    } else {
        t_bool(&pt, CKA_VERIFY, true);
        t_bool(&vt, CKA_SIGN, true);
    }
    t_bool(&vt, CKA_EXTRACTABLE, true);
    t_bool(&vt, CKA_SENSITIVE, true);
    assert_rv(p11->C_GenerateKeyPair(S, &m, pt.a, pt.n, vt.a, vt.n, pub, priv),
              CKR_OK);
}

static const CK_BYTE oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                   0xce, 0x3d, 0x03, 0x01, 0x07};
static const CK_BYTE oid_ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};

/* The unwrapped private key signs what the original public key verifies. */
static void check_private(CK_MECHANISM_TYPE sm, CK_OBJECT_HANDLE pub,
                          CK_OBJECT_HANDLE priv)
{
    CK_MECHANISM m = {sm, NULL, 0};
    CK_BYTE sig[512];
    CK_ULONG len = sizeof(sig);

    assert_rv(p11->C_SignInit(S, &m, priv), CKR_OK);
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len), CKR_OK);
    assert_rv(p11->C_VerifyInit(S, &m, pub), CKR_OK);
    assert_rv(p11->C_Verify(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, len), CKR_OK);
}

/* The attributes of a key that came in wrapped (PKCS#11 3.0 4.4, 4.9). */
static void check_unwrapped_attrs(CK_OBJECT_HANDLE h)
{
    assert_bool_attr(h, CKA_LOCAL, CK_FALSE);
    assert_bool_attr(h, CKA_ALWAYS_SENSITIVE, CK_FALSE);
    assert_bool_attr(h, CKA_NEVER_EXTRACTABLE, CK_FALSE);
}

/*
 * A wrap mechanism: whether it carries a secret of any length (the unpadded
 * vendor wrap needs whole 8-byte blocks; CKM_AES_KEY_WRAP zero-pads) and
 * any PKCS#8 private key (RSA-OAEP and RSA-PKCS carry only what fits one
 * block, the unpadded vendor wrap only encodings of whole blocks:
 * CKR_KEY_SIZE_RANGE otherwise).
 */
struct wrapper {
    const char *name;
    CK_MECHANISM m;
    bool rsa; /* wrapping key: the RSA pair */
    bool secret_any;
    bool private_all;
};

static void test_wrap_every_kind(void **state)
{
    static CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256,
                                           CKZ_DATA_SPECIFIED, NULL, 0};
    static CK_RSA_AES_KEY_WRAP_PARAMS rsa_aes = {256, &oaep};
    static CK_BYTE giv[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
    static CK_GCM_PARAMS gcm = {giv, 12, 96, NULL, 0, 128};
    static CK_GCM_PARAMS vgcm = {NULL, 12, 96, NULL, 0, 128};
    const struct wrapper ws[] = {
        {"AES-KW", {CKM_AES_KEY_WRAP, NULL, 0}, false, true, true},
        {"AES-KWP", {CKM_AES_KEY_WRAP_KWP, NULL, 0}, false, true, true},
        {"AES-GCM", {CKM_AES_GCM, &gcm, sizeof(gcm)}, false, true, true},
        {"AES-CBC-PAD",
         {CKM_AES_CBC_PAD, (void *)iv16, sizeof(iv16)},
         false,
         true,
         true},
        {"CLOUDHSM-GCM",
         {CKM_CLOUDHSM_AES_GCM, &vgcm, sizeof(vgcm)},
         false,
         true,
         true},
        {"CLOUDHSM-KW-NOPAD",
         {CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD, NULL, 0},
         false,
         false,
         false},
        {"CLOUDHSM-KW-PKCS5",
         {CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD, NULL, 0},
         false,
         true,
         true},
        {"CLOUDHSM-KW-ZERO",
         {CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD, NULL, 0},
         false,
         true,
         true},
        {"RSA-OAEP",
         {CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep)},
         true,
         true,
         false},
        {"RSA-PKCS", {CKM_RSA_PKCS, NULL, 0}, true, true, false},
        {"RSA-AES",
         {CKM_RSA_AES_KEY_WRAP, &rsa_aes, sizeof(rsa_aes)},
         true,
         true,
         true},
    };
    static const CK_BYTE gval[20] = {0xde, 0xad, 0xbe, 0xef, 1,  2, 3,
                                     4,    5,    6,    7,    8,  9, 10,
                                     11,   12,   13,   14,   15, 16};
    CK_OBJECT_HANDLE wk = make_kek(k256, 32);
    CK_OBJECT_HANDLE rsa_pub, rsa_priv;
    CK_OBJECT_HANDLE pubs[3], privs[3];
    const CK_MECHANISM_TYPE sms[3] = {CKM_SHA256_RSA_PKCS, CKM_ECDSA_SHA256,
                                      CKM_EDDSA};
    const CK_KEY_TYPE pkt[3] = {CKK_RSA, CKK_EC, CKK_EC_EDWARDS};
    CK_OBJECT_HANDLE aes, gen;
    CK_BYTE blob[BUF_MAX], val[64], want[BUF_MAX];
    int fails = 0;

    (void)state;
    gen_pair(CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0, true, &rsa_pub, &rsa_priv);
    gen_pair(CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0, false, &pubs[0], &privs[0]);
    gen_pair(CKM_EC_KEY_PAIR_GEN, oid_p256, sizeof(oid_p256), false, &pubs[1],
             &privs[1]);
    gen_pair(CKM_EC_EDWARDS_KEY_PAIR_GEN, oid_ed25519, sizeof(oid_ed25519),
             false, &pubs[2], &privs[2]);
    aes = make_secret(CKK_AES, iv16, 16);
    gen = make_secret(CKK_GENERIC_SECRET, gval, sizeof(gval));

    /* AES-KW of an AES key is RFC 3394 with the default IV. */
    {
        CK_MECHANISM m = {CKM_AES_KEY_WRAP, NULL, 0};
        CK_ULONG len = sizeof(blob);
        size_t wlen;

        assert_rv(wrap(&m, wk, aes, blob, &len), CKR_OK);
        wlen =
            ossl_crypt("AES-256-WRAP", true, false, k256, NULL, iv16, 16, want);
        assert_int_equal(len, wlen);
        assert_memory_equal(blob, want, wlen);
        m.mechanism = CKM_AES_KEY_WRAP_KWP;
        len = sizeof(blob);
        assert_rv(wrap(&m, wk, gen, blob, &len), CKR_OK);
        wlen = ossl_crypt("AES-256-WRAP-PAD", true, false, k256, NULL, gval,
                          sizeof(gval), want);
        assert_int_equal(len, wlen);
        assert_memory_equal(blob, want, wlen);
    }

    for (size_t wi = 0; wi < N(ws); wi++) {
        const struct wrapper *w = &ws[wi];
        CK_MECHANISM m = w->m;
        CK_OBJECT_HANDLE wrapping = w->rsa ? rsa_pub : wk;
        CK_OBJECT_HANDLE unwrapping = w->rsa ? rsa_priv : wk;
        /* AES-GCM, CBC-PAD and the cloud HSM's GCM are ciphers, not key
         * wrap mechanisms. */
        bool cipher = m.mechanism == CKM_AES_GCM ||
                      m.mechanism == CKM_AES_CBC_PAD ||
                      m.mechanism == CKM_CLOUDHSM_AES_GCM;

        /* Secret keys: AES (16 bytes) and generic (20 bytes). */
        for (int si = 0; si < 2; si++) {
            CK_OBJECT_HANDLE k = si == 0 ? aes : gen;
            const CK_BYTE *kv = si == 0 ? iv16 : gval;
            CK_ULONG kl = si == 0 ? 16 : sizeof(gval);
            CK_ULONG len = sizeof(blob);
            CK_OBJECT_HANDLE u;
            struct p11_tmpl t;
            CK_RV rv;

            rv = wrap(&m, wrapping, k, blob, &len);
            if (si == 1 && !w->secret_any) {
                if (rv != CKR_KEY_SIZE_RANGE) {
                    print_error("%s: 20-byte secret: %s, wanted "
                                "CKR_KEY_SIZE_RANGE\n",
                                w->name, p11_rv_name(rv));
                    fails++;
                }
                continue;
            }
            if (rv != CKR_OK) {
                print_error("%s: wrap secret %d: %s\n", w->name, si,
                            p11_rv_name(rv));
                fails++;
                continue;
            }
            t_secret(&t, si == 0 ? CKK_AES : CKK_GENERIC_SECRET, NULL, 0);
            t_ulong(&t, CKA_VALUE_LEN, kl);
            if (cipher && !w->rsa) {
                /* A cipher unwrap by a key that may not decrypt is
                 * decryption unless the key comes in sensitive. */
                assert_rv(p11->C_UnwrapKey(S, &m, unwrapping, blob, len, t.a,
                                           t.n, &u),
                          CKR_TEMPLATE_INCONSISTENT);
                t_bool(&t, CKA_SENSITIVE, true);
                /* ... and not extractable: a second hop (wrap, unwrap as
                 * not sensitive) would read it as well. */
                assert_rv(p11->C_UnwrapKey(S, &m, unwrapping, blob, len, t.a,
                                           t.n, &u),
                          CKR_TEMPLATE_INCONSISTENT);
                t_bool(&t, CKA_EXTRACTABLE, false);
            }
            rv = p11->C_UnwrapKey(S, &m, unwrapping, blob, len, t.a, t.n, &u);
            if (rv != CKR_OK) {
                print_error("%s: unwrap secret %d: %s\n", w->name, si,
                            p11_rv_name(rv));
                fails++;
                continue;
            }
            if (cipher && !w->rsa) {
                /* The same value: the same MAC (CMAC for AES, HMAC for a
                 * generic secret) under the original and the copy. */
                CK_MECHANISM mac = {si == 0 ? CKM_AES_CMAC : CKM_SHA256_HMAC,
                                    NULL, 0};
                CK_BYTE b1[64], b2[64], d[] = "same value";
                CK_ULONG l1 = sizeof(b1), l2 = sizeof(b2);

                assert_int_equal(p11_get_bool(S, u, CKA_EXTRACTABLE), CK_FALSE);
                assert_rv(p11->C_SignInit(S, &mac, k), CKR_OK);
                assert_rv(p11->C_Sign(S, d, sizeof(d), b1, &l1), CKR_OK);
                assert_rv(p11->C_SignInit(S, &mac, u), CKR_OK);
                assert_rv(p11->C_Sign(S, d, sizeof(d), b2, &l2), CKR_OK);
                assert_int_equal(l1, l2);
                assert_memory_equal(b1, b2, l1);
            } else {
                assert_int_equal(get_bytes(u, CKA_VALUE, val, sizeof(val)), kl);
                assert_memory_equal(val, kv, kl);
            }
            check_unwrapped_attrs(u);
            assert_rv(p11->C_DestroyObject(S, u), CKR_OK);
        }
        /* Private keys (PKCS#8). */
        for (int pi = 0; pi < 3; pi++) {
            CK_ULONG len = sizeof(blob);
            CK_OBJECT_HANDLE u;
            struct p11_tmpl t;
            CK_RV rv;

            rv = wrap(&m, wrapping, privs[pi], blob, &len);
            if (!w->private_all && rv == CKR_KEY_SIZE_RANGE) {
                continue;
            }
            if (w->rsa && pi == 0 && rv != CKR_KEY_SIZE_RANGE &&
                m.mechanism != CKM_RSA_AES_KEY_WRAP) {
                print_error("%s: an RSA-2048 private key in one RSA block: "
                            "%s\n",
                            w->name, p11_rv_name(rv));
                fails++;
                continue;
            }
            if (rv != CKR_OK) {
                print_error("%s: wrap private %d: %s\n", w->name, pi,
                            p11_rv_name(rv));
                fails++;
                continue;
            }
            memset(&t, 0, sizeof(t));
            t_ulong(&t, CKA_CLASS, CKO_PRIVATE_KEY);
            t_ulong(&t, CKA_KEY_TYPE, pkt[pi]);
            t_bool(&t, CKA_TOKEN, false);
            t_bool(&t, CKA_SIGN, true);
            t_bool(&t, CKA_SENSITIVE, true);
            rv = p11->C_UnwrapKey(S, &m, unwrapping, blob, len, t.a, t.n, &u);
            if (rv != CKR_OK) {
                print_error("%s: unwrap private %d: %s\n", w->name, pi,
                            p11_rv_name(rv));
                fails++;
                continue;
            }
            check_private(sms[pi], pubs[pi], u);
            check_unwrapped_attrs(u);
            {
                CK_ATTRIBUTE a = {CKA_VALUE, NULL, 0};
                CK_ATTRIBUTE_TYPE secret_attr =
                    pi == 0 ? CKA_PRIVATE_EXPONENT : CKA_VALUE;

                a.type = secret_attr;
                assert_rv(p11->C_GetAttributeValue(S, u, &a, 1),
                          CKR_ATTRIBUTE_SENSITIVE);
            }
            assert_rv(p11->C_DestroyObject(S, u), CKR_OK);
        }
    }
    assert_int_equal(fails, 0);
}

static void test_wrap_rules(void **state)
{
    CK_OBJECT_HANDLE wk = make_kek(k256, 16);
    CK_MECHANISM kw = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
    CK_BYTE blob[BUF_MAX], val[64];
    CK_ULONG len;
    CK_OBJECT_HANDLE k, u;
    struct p11_tmpl t;

    (void)state;
    /* Not extractable: it cannot leave. */
    t_secret(&t, CKK_AES, iv16, 16);
    t_bool(&t, CKA_EXTRACTABLE, false);
    k = t_create(&t);
    len = sizeof(blob);
    assert_rv(p11->C_WrapKey(S, &kw, wk, k, blob, &len), CKR_KEY_UNEXTRACTABLE);
    len = 0;
    assert_rv(p11->C_WrapKey(S, &kw, wk, k, NULL, &len), CKR_KEY_UNEXTRACTABLE);

    /* Sensitive: wrapped out, and its value stays unreadable after. */
    t_secret(&t, CKK_AES, iv16, 16);
    t_bool(&t, CKA_SENSITIVE, true);
    k = t_create(&t);
    len = sizeof(blob);
    assert_rv(wrap(&kw, wk, k, blob, &len), CKR_OK);
    t_secret(&t, CKK_AES, NULL, 0);
    t_bool(&t, CKA_SENSITIVE, true);
    assert_rv(p11->C_UnwrapKey(S, &kw, wk, blob, len, t.a, t.n, &u), CKR_OK);
    {
        CK_ATTRIBUTE a = {CKA_VALUE, val, sizeof(val)};

        assert_rv(p11->C_GetAttributeValue(S, u, &a, 1),
                  CKR_ATTRIBUTE_SENSITIVE);
        assert_int_equal(a.ulValueLen, CK_UNAVAILABLE_INFORMATION);
    }
    check_unwrapped_attrs(u);
    /* Same key: the same ECB block as the original. */
    {
        CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
        CK_BYTE c1[16], c2[16];
        CK_ULONG l1 = 16, l2 = 16;

        assert_rv(mod_crypt(true, &ecb, k, msg, 16, c1, &l1), CKR_OK);
        assert_rv(mod_crypt(true, &ecb, u, msg, 16, c2, &l2), CKR_OK);
        assert_memory_equal(c1, c2, 16);
    }

    /* Two-call convention and errors. */
    len = 3;
    assert_rv(p11->C_WrapKey(S, &kw, wk, k, blob, &len), CKR_BUFFER_TOO_SMALL);
    assert_int_equal(len, 24);
    assert_rv(p11->C_WrapKey(S, &kw, wk, k, blob, NULL), CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_WrapKey(S, NULL, wk, k, blob, &len), CKR_ARGUMENTS_BAD);
    len = sizeof(blob);
    assert_rv(p11->C_WrapKey(S, &kw, BOGUS_HANDLE, k, blob, &len),
              CKR_WRAPPING_KEY_HANDLE_INVALID);
    assert_rv(p11->C_WrapKey(S, &kw, wk, BOGUS_HANDLE, blob, &len),
              CKR_KEY_HANDLE_INVALID);
    {
        CK_MECHANISM sha = {CKM_SHA256, NULL, 0};

        assert_rv(p11->C_WrapKey(S, &sha, wk, k, blob, &len),
                  CKR_MECHANISM_INVALID);
    }
    /* A wrapping key without CKA_WRAP / CKA_UNWRAP. */
    t_secret(&t, CKK_AES, k256, 16);
    t_bool(&t, CKA_WRAP, false);
    t_bool(&t, CKA_UNWRAP, false);
    {
        CK_OBJECT_HANDLE nw = t_create(&t);

        len = sizeof(blob);
        assert_rv(p11->C_WrapKey(S, &kw, nw, k, blob, &len),
                  CKR_KEY_FUNCTION_NOT_PERMITTED);
        len = sizeof(blob);
        assert_rv(wrap(&kw, wk, k, blob, &len), CKR_OK);
        t_secret(&t, CKK_AES, NULL, 0);
        assert_rv(p11->C_UnwrapKey(S, &kw, nw, blob, len, t.a, t.n, &u),
                  CKR_KEY_FUNCTION_NOT_PERMITTED);
    }
    /* A public key cannot be wrapped. */
    {
        CK_OBJECT_HANDLE pub, priv;

        gen_pair(CKM_EC_KEY_PAIR_GEN, oid_p256, sizeof(oid_p256), false, &pub,
                 &priv);
        len = sizeof(blob);
        assert_rv(p11->C_WrapKey(S, &kw, wk, pub, blob, &len),
                  CKR_KEY_NOT_WRAPPABLE);
    }
    /* Unwrap errors. */
    t_secret(&t, CKK_AES, NULL, 0);
    blob[0] ^= 1;
    assert_rv(p11->C_UnwrapKey(S, &kw, wk, blob, 24, t.a, t.n, &u),
              CKR_WRAPPED_KEY_INVALID);
    assert_rv(p11->C_UnwrapKey(S, &kw, BOGUS_HANDLE, blob, 24, t.a, t.n, &u),
              CKR_UNWRAPPING_KEY_HANDLE_INVALID);
    assert_rv(p11->C_UnwrapKey(S, &kw, wk, NULL, 24, t.a, t.n, &u),
              CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_UnwrapKey(S, &kw, wk, blob, 24, t.a, t.n, NULL),
              CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_UnwrapKey(S, &kw, wk, blob, 1u << 30, t.a, t.n, &u),
              CKR_WRAPPED_KEY_LEN_RANGE);
}

static void test_wrap_trusted(void **state)
{
    CK_OBJECT_HANDLE wk = make_kek(k256, 16);
    CK_MECHANISM kw = {CKM_AES_KEY_WRAP, NULL, 0};
    CK_BYTE blob[BUF_MAX];
    CK_ULONG len = sizeof(blob);
    CK_OBJECT_HANDLE k, h;
    struct p11_tmpl t;

    (void)state;
    t_secret(&t, CKK_AES, iv16, 16);
    t_bool(&t, CKA_WRAP_WITH_TRUSTED, true);
    k = t_create(&t);
    assert_rv(p11->C_WrapKey(S, &kw, wk, k, blob, &len), CKR_KEY_NOT_WRAPPABLE);
    /* Only the SO may set CKA_TRUSTED, and a CU makes every key: no
     * trusted wrapping key can exist, by creation or by change. */
    t_secret(&t, CKK_AES, k256, 16);
    t_bool(&t, CKA_TRUSTED, true);
    assert_true(p11->C_CreateObject(S, t.a, t.n, &h) != CKR_OK);
    {
        CK_ATTRIBUTE a = {CKA_TRUSTED, &yes, sizeof(yes)};

        assert_true(p11->C_SetAttributeValue(S, wk, &a, 1) != CKR_OK);
    }
    assert_bool_attr(wk, CKA_TRUSTED, CK_FALSE);
    /* CKA_WRAP_WITH_TRUSTED may not go back to FALSE. */
    {
        CK_ATTRIBUTE a = {CKA_WRAP_WITH_TRUSTED, &no, sizeof(no)};

        assert_true(p11->C_SetAttributeValue(S, k, &a, 1) != CKR_OK);
    }
}

/* C_GetAttributeValue of an array attribute, both calls. */
static void check_array_attr(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                             CK_ATTRIBUTE_TYPE inner, const void *v,
                             CK_ULONG vlen)
{
    CK_ATTRIBUTE out = {type, NULL, 0};
    CK_ATTRIBUTE arr[2];
    CK_BYTE buf[64], small[1];

    assert_rv(p11->C_GetAttributeValue(S, h, &out, 1), CKR_OK);
    assert_int_equal(out.ulValueLen, sizeof(CK_ATTRIBUTE));
    /* Inner lengths first. */
    memset(arr, 0, sizeof(arr));
    out.pValue = arr;
    assert_rv(p11->C_GetAttributeValue(S, h, &out, 1), CKR_OK);
    assert_int_equal(arr[0].type, inner);
    assert_int_equal(arr[0].ulValueLen, vlen);
    /* Then the values. */
    arr[0].pValue = buf;
    arr[0].ulValueLen = sizeof(buf);
    arr[0].type = 0; /* ignored on input */
    assert_rv(p11->C_GetAttributeValue(S, h, &out, 1), CKR_OK);
    assert_int_equal(arr[0].type, inner);
    assert_int_equal(arr[0].ulValueLen, vlen);
    assert_memory_equal(buf, v, vlen);
    /* An inner buffer too small. */
    arr[0].pValue = small;
    arr[0].ulValueLen = 0;
    assert_rv(p11->C_GetAttributeValue(S, h, &out, 1), CKR_BUFFER_TOO_SMALL);
    assert_int_equal(arr[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);
    /* The outer array too small. */
    out.ulValueLen = sizeof(CK_ATTRIBUTE) - 1;
    assert_rv(p11->C_GetAttributeValue(S, h, &out, 1), CKR_BUFFER_TOO_SMALL);
    assert_int_equal(out.ulValueLen, CK_UNAVAILABLE_INFORMATION);
}

static void test_templates(void **state)
{
    CK_KEY_TYPE aes_kt = CKK_AES;
    CK_ATTRIBUTE wt[] = {{CKA_KEY_TYPE, &aes_kt, sizeof(aes_kt)}};
    CK_ATTRIBUTE ut[] = {{CKA_EXTRACTABLE, &no, sizeof(no)}};
    CK_ATTRIBUTE dt[] = {{CKA_SENSITIVE, &yes, sizeof(yes)}};
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
    CK_OBJECT_HANDLE wk, aes, gen, u, base, d;
    CK_BYTE blob[BUF_MAX];
    CK_ULONG len;
    struct p11_tmpl t;

    (void)state;
    t_kek(&t, k256, 32);
    t_set(&t, CKA_WRAP_TEMPLATE, wt, sizeof(wt));
    t_set(&t, CKA_UNWRAP_TEMPLATE, ut, sizeof(ut));
    wk = t_create(&t);
    check_array_attr(wk, CKA_WRAP_TEMPLATE, CKA_KEY_TYPE, &aes_kt,
                     sizeof(aes_kt));
    check_array_attr(wk, CKA_UNWRAP_TEMPLATE, CKA_EXTRACTABLE, &no, sizeof(no));
    /* An object without the attribute: type invalid. */
    {
        CK_ATTRIBUTE a = {CKA_DERIVE_TEMPLATE, NULL, 0};
        CK_RV rv = p11->C_GetAttributeValue(S, wk, &a, 1);

        assert_true(rv == CKR_ATTRIBUTE_TYPE_INVALID ||
                    (rv == CKR_OK && a.ulValueLen == 0));
    }

    aes = make_secret(CKK_AES, iv16, 16);
    gen = make_secret(CKK_GENERIC_SECRET, iv16, 16);
    len = sizeof(blob);
    assert_rv(wrap(&kwp, wk, aes, blob, &len), CKR_OK);
    /* The unwrap template is merged in... */
    t_secret(&t, CKK_AES, NULL, 0);
    t_bool(&t, CKA_EXTRACTABLE, false);
    assert_rv(p11->C_UnwrapKey(S, &kwp, wk, blob, len, t.a, t.n, &u), CKR_OK);
    assert_bool_attr(u, CKA_EXTRACTABLE, CK_FALSE);
    {
        /* No CKA_EXTRACTABLE at all: the unwrap template gives it. */
        struct p11_tmpl t2;

        memset(&t2, 0, sizeof(t2));
        t_ulong(&t2, CKA_CLASS, CKO_SECRET_KEY);
        t_ulong(&t2, CKA_KEY_TYPE, CKK_AES);
        t_bool(&t2, CKA_TOKEN, false);
        t_bool(&t2, CKA_ENCRYPT, true);
        assert_rv(p11->C_UnwrapKey(S, &kwp, wk, blob, len, t2.a, t2.n, &u),
                  CKR_OK);
        assert_bool_attr(u, CKA_EXTRACTABLE, CK_FALSE);
        /* ...and contradicting it is refused. */
        t_bool(&t2, CKA_EXTRACTABLE, true);
        assert_rv(p11->C_UnwrapKey(S, &kwp, wk, blob, len, t2.a, t2.n, &u),
                  CKR_TEMPLATE_INCONSISTENT);
    }
    /* The wrap template: only AES keys leave under wk. */
    len = sizeof(blob);
    assert_rv(p11->C_WrapKey(S, &kwp, wk, gen, blob, &len),
              CKR_KEY_NOT_WRAPPABLE);

    /* The derive template. */
    t_secret(&t, CKK_GENERIC_SECRET, k256, 32);
    t_set(&t, CKA_DERIVE_TEMPLATE, dt, sizeof(dt));
    base = t_create(&t);
    check_array_attr(base, CKA_DERIVE_TEMPLATE, CKA_SENSITIVE, &yes,
                     sizeof(yes));
    {
        CK_BYTE data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        CK_KEY_DERIVATION_STRING_DATA sd = {data, sizeof(data)};
        CK_MECHANISM m = {CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd)};
        struct p11_tmpl t2;

        memset(&t2, 0, sizeof(t2));
        t_ulong(&t2, CKA_CLASS, CKO_SECRET_KEY);
        t_bool(&t2, CKA_TOKEN, false);
        assert_rv(p11->C_DeriveKey(S, &m, base, t2.a, t2.n, &d), CKR_OK);
        assert_bool_attr(d, CKA_SENSITIVE, CK_TRUE);
        t_bool(&t2, CKA_SENSITIVE, false);
        assert_rv(p11->C_DeriveKey(S, &m, base, t2.a, t2.n, &d),
                  CKR_TEMPLATE_INCONSISTENT);
    }
}

/*
 * The module turns a caller's array attribute into the core's serialized
 * list (hsm.h takes plain data): the array's shape is checked where the
 * caller's memory is, the attributes in it go in type order, the same one
 * twice once; then the core judges what is inside.
 */
static void test_template_arrays(void **state)
{
    static CK_ATTRIBUTE many[257]; /* the token takes 256 in a template */
    CK_ATTRIBUTE_TYPE owner = CKA_NIMBUS_OWNER;
    CK_ATTRIBUTE two[] = {{CKA_EXTRACTABLE, &no, sizeof(no)},
                          {CKA_LABEL, "ok", 2}};
    CK_ATTRIBUTE same[] = {{CKA_LABEL, "ok", 2}, {CKA_LABEL, "ok", 2}};
    CK_ATTRIBUTE differ[] = {{CKA_LABEL, "ok", 2}, {CKA_LABEL, "no", 2}};
    CK_ATTRIBUTE inner_null[] = {{CKA_LABEL, NULL, 2}};
    CK_ATTRIBUTE nested[] = {{CKA_UNWRAP_TEMPLATE, two, sizeof(two)}};
    CK_ATTRIBUTE vendor[] = {{owner, "ok", 2}};
    CK_ATTRIBUTE dt[] = {{CKA_SENSITIVE, &yes, sizeof(yes)}};
    CK_ATTRIBUTE find[] = {{CKA_WRAP_TEMPLATE, NULL, 0}};
    CK_ATTRIBUTE arr[2];
    CK_ATTRIBUTE out = {CKA_WRAP_TEMPLATE, arr, sizeof(arr)};
    CK_BYTE lab[8], ext[1];
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE h, k, found[2];
    CK_ULONG n = 0;
    struct p11_tmpl t;

    (void)state;
    t_kek(&t, k256, 32);
    /* shape: not a whole number of CK_ATTRIBUTEs, no array, an inner
     * value missing, more attributes than a template may have */
    t_set(&t, CKA_WRAP_TEMPLATE, two, sizeof(two) - 1);
    assert_rv(p11->C_CreateObject(S, t.a, t.n, &h),
              CKR_ATTRIBUTE_VALUE_INVALID);
    t_set(&t, CKA_WRAP_TEMPLATE, NULL, sizeof(two));
    assert_rv(p11->C_CreateObject(S, t.a, t.n, &h),
              CKR_ATTRIBUTE_VALUE_INVALID);
    t_set(&t, CKA_WRAP_TEMPLATE, inner_null, sizeof(inner_null));
    assert_rv(p11->C_CreateObject(S, t.a, t.n, &h),
              CKR_ATTRIBUTE_VALUE_INVALID);
    for (size_t i = 0; i < 257; i++) {
        many[i].type = CKA_LABEL;
        many[i].pValue = "ok";
        many[i].ulValueLen = 2;
    }
    t_set(&t, CKA_WRAP_TEMPLATE, many, sizeof(many));
    assert_rv(p11->C_CreateObject(S, t.a, t.n, &h),
              CKR_ATTRIBUTE_VALUE_INVALID);
    /* what is inside: a template, one of our vendor attributes */
    t_set(&t, CKA_WRAP_TEMPLATE, nested, sizeof(nested));
    assert_rv(p11->C_CreateObject(S, t.a, t.n, &h),
              CKR_ATTRIBUTE_VALUE_INVALID);
    t_set(&t, CKA_WRAP_TEMPLATE, vendor, sizeof(vendor));
    assert_rv(p11->C_CreateObject(S, t.a, t.n, &h),
              CKR_ATTRIBUTE_VALUE_INVALID);
    /* one type twice: the same value is one attribute, another refused */
    t_set(&t, CKA_WRAP_TEMPLATE, differ, sizeof(differ));
    assert_rv(p11->C_CreateObject(S, t.a, t.n, &h), CKR_TEMPLATE_INCONSISTENT);
    t_set(&t, CKA_WRAP_TEMPLATE, same, sizeof(same));
    h = t_create(&t);
    check_array_attr(h, CKA_WRAP_TEMPLATE, CKA_LABEL, "ok", 2);

    /* given out of order, read back in type order */
    t_set(&t, CKA_WRAP_TEMPLATE, two, sizeof(two));
    k = t_create(&t);
    memset(arr, 0, sizeof(arr));
    arr[0].pValue = lab;
    arr[0].ulValueLen = sizeof(lab);
    arr[1].pValue = ext;
    arr[1].ulValueLen = sizeof(ext);
    assert_rv(p11->C_GetAttributeValue(S, k, &out, 1), CKR_OK);
    assert_int_equal(out.ulValueLen, sizeof(arr));
    assert_int_equal(arr[0].type, CKA_LABEL);
    assert_int_equal(arr[0].ulValueLen, 2);
    assert_memory_equal(lab, "ok", 2);
    assert_int_equal(arr[1].type, CKA_EXTRACTABLE);
    assert_int_equal(ext[0], CK_FALSE);
    /* found by its template, in either order */
    two[0].type = CKA_LABEL;
    two[0].pValue = "ok";
    two[0].ulValueLen = 2;
    two[1].type = CKA_EXTRACTABLE;
    two[1].pValue = &no;
    two[1].ulValueLen = sizeof(no);
    find[0].pValue = two;
    find[0].ulValueLen = sizeof(two);
    assert_rv(p11->C_FindObjectsInit(S, find, 1), CKR_OK);
    assert_rv(p11->C_FindObjects(S, found, 2, &n), CKR_OK);
    assert_rv(p11->C_FindObjectsFinal(S), CKR_OK);
    assert_int_equal(n, 1);
    assert_true(found[0] == k);

    /* generated with a derive template */
    memset(&t, 0, sizeof(t));
    t_ulong(&t, CKA_CLASS, CKO_SECRET_KEY);
    t_ulong(&t, CKA_KEY_TYPE, CKK_AES);
    t_ulong(&t, CKA_VALUE_LEN, 16);
    t_bool(&t, CKA_TOKEN, false);
    t_bool(&t, CKA_DERIVE, true);
    t_set(&t, CKA_DERIVE_TEMPLATE, dt, sizeof(dt));
    assert_rv(p11->C_GenerateKey(S, &gen, t.a, t.n, &h), CKR_OK);
    check_array_attr(h, CKA_DERIVE_TEMPLATE, CKA_SENSITIVE, &yes, sizeof(yes));
    t_set(&t, CKA_DERIVE_TEMPLATE, nested, sizeof(nested));
    assert_rv(p11->C_GenerateKey(S, &gen, t.a, t.n, &h),
              CKR_ATTRIBUTE_VALUE_INVALID);
}

/* ------------------------------------------------------------ sharing */

/* The object id as nimbus-mgmt shows it. */
static unsigned long long object_id(CK_OBJECT_HANDLE h)
{
    CK_BYTE id[8];
    unsigned long long v = 0;

    assert_int_equal(get_bytes(h, CKA_NIMBUS_OBJECT_ID, id, sizeof(id)), 8);
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | id[i];
    }
    return v;
}

static void test_shared_user(void **state)
{
    const char *top = getenv("NIMBUS_TOP_BUILDDIR");
    CK_OBJECT_HANDLE key, bk, tmp, d;
    CK_ULONG bob_uid;
    unsigned long long oid;
    char cmd[1024];
    struct p11_tmpl t;
    CK_BYTE blob[BUF_MAX];
    CK_ULONG len;
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
    CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
    CK_BYTE data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CK_KEY_DERIVATION_STRING_DATA sd = {data, sizeof(data)};
    CK_MECHANISM cat = {CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd)};
    CK_BYTE ct[64];
    CK_ULONG clen = sizeof(ct);

    (void)state;
    if (top == NULL || *top == '\0') {
        print_message("test_shared_user: NIMBUS_TOP_BUILDDIR unset: skipped\n");
        skip();
    }
    /* bob's user id: the owner of a key bob makes. */
    assert_rv(p11->C_Logout(S), CKR_OK);
    p11_login_cu(S, "bob", P11_BOB_PW);
    tmp = make_secret(CKK_AES, k256, 16);
    bob_uid = p11_get_ulong(S, tmp, CKA_NIMBUS_OWNER);
    assert_rv(p11->C_Logout(S), CKR_OK);

    /* alice's token key, shared with bob through nimbus-mgmt. */
    p11_login_cu(S, "alice", P11_ALICE_PW);
    t_secret(&t, CKK_AES, k256, 16);
    t_bool(&t, CKA_TOKEN, true);
    t_set(&t, CKA_LABEL, "shared", 6);
    key = t_create(&t);
    oid = object_id(key);
    snprintf(cmd, sizeof(cmd),
             "'%s/nimbus-mgmt' -y -c 'loginHSM CU alice %s; shareKey %llu "
             "%lu 1' >'%s/mgmt.out' 2>&1",
             top, P11_ALICE_PW, oid, (unsigned long)bob_uid, p11_dir());
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof(cmd), "cat '%s/mgmt.out' >&2", p11_dir());
        (void)system(cmd);
        fail_msg("nimbus-mgmt shareKey failed");
    }
    assert_rv(p11->C_Logout(S), CKR_OK);

    p11_login_cu(S, "bob", P11_BOB_PW);
    {
        CK_ATTRIBUTE f = {CKA_LABEL, (void *)"shared", 6};

        if (p11_find_all(S, &f, 1, &key, 1) != 1) {
            snprintf(cmd, sizeof(cmd), "cat '%s/mgmt.out' >&2", p11_dir());
            (void)system(cmd);
            fail_msg("bob does not see the key alice shared");
        }
        assert_int_equal(object_id(key), oid);
    }
    /* bob may use it... */
    assert_rv(mod_crypt(true, &ecb, key, msg, 16, ct, &clen), CKR_OK);
    /* ...but neither export it nor derive from it. */
    bk = make_kek(k256, 32);
    len = sizeof(blob);
    assert_rv(p11->C_WrapKey(S, &kwp, bk, key, blob, &len),
              CKR_KEY_FUNCTION_NOT_PERMITTED);
    t_secret(&t, CKK_GENERIC_SECRET, NULL, 0);
    assert_rv(p11->C_DeriveKey(S, &cat, key, t.a, t.n, &d),
              CKR_KEY_FUNCTION_NOT_PERMITTED);
    /* Nor use it as the other key of a concatenation. */
    {
        CK_OBJECT_HANDLE other = key;
        CK_MECHANISM ck = {CKM_CONCATENATE_BASE_AND_KEY, &other, sizeof(other)};

        assert_rv(p11->C_DeriveKey(S, &ck, bk, t.a, t.n, &d),
                  CKR_KEY_FUNCTION_NOT_PERMITTED);
    }
    assert_rv(p11->C_Logout(S), CKR_OK);
    p11_login_cu(S, "alice", P11_ALICE_PW);
}

/* ------------------------------------------------------------ derive */

static CK_OBJECT_HANDLE derive_value(CK_MECHANISM *m, CK_OBJECT_HANDLE base,
                                     CK_ULONG vlen, CK_BYTE *out)
{
    CK_OBJECT_HANDLE d = CK_INVALID_HANDLE;
    struct p11_tmpl t;

    t_secret(&t, CKK_GENERIC_SECRET, NULL, 0);
    if (vlen > 0) {
        t_ulong(&t, CKA_VALUE_LEN, vlen);
    }
    assert_rv(p11->C_DeriveKey(S, m, base, t.a, t.n, &d), CKR_OK);
    if (out != NULL) {
        CK_ULONG got = get_bytes(d, CKA_VALUE, out, BUF_MAX);

        if (vlen > 0) {
            assert_int_equal(got, vlen);
        }
    }
    assert_bool_attr(d, CKA_LOCAL, CK_FALSE);
    return d;
}

/* RFC 5869 test case 1. */
static const CK_BYTE hk_ikm[22] = {
    0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
    0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b};
static const CK_BYTE hk_salt[13] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const CK_BYTE hk_info[10] = {0xf0, 0xf1, 0xf2, 0xf3, 0xf4,
                                    0xf5, 0xf6, 0xf7, 0xf8, 0xf9};
static const CK_BYTE hk_okm[42] = {
    0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a, 0x90, 0x43, 0x4f,
    0x64, 0xd0, 0x36, 0x2f, 0x2a, 0x2d, 0x2d, 0x0a, 0x90, 0xcf, 0x1a,
    0x5a, 0x4c, 0x5d, 0xb0, 0x2d, 0x56, 0xec, 0xc4, 0xc5, 0xbf, 0x34,
    0x00, 0x72, 0x08, 0xd5, 0xb8, 0x87, 0x18, 0x58, 0x65};

static void test_hkdf(void **state)
{
    CK_OBJECT_HANDLE base = make_secret(CKK_GENERIC_SECRET, hk_ikm, 22);
    CK_OBJECT_HANDLE salt_key, d;
    CK_HKDF_PARAMS p;
    CK_MECHANISM m = {CKM_HKDF_DERIVE, &p, sizeof(p)};
    CK_BYTE out[BUF_MAX];
    struct p11_tmpl t;

    (void)state;
    memset(&p, 0, sizeof(p));
    p.bExtract = CK_TRUE;
    p.bExpand = CK_TRUE;
    p.prfHashMechanism = CKM_SHA256;
    p.ulSaltType = CKF_HKDF_SALT_DATA;
    p.pSalt = (CK_BYTE_PTR)hk_salt;
    p.ulSaltLen = sizeof(hk_salt);
    p.pInfo = (CK_BYTE_PTR)hk_info;
    p.ulInfoLen = sizeof(hk_info);
    derive_value(&m, base, 42, out);
    assert_memory_equal(out, hk_okm, 42);

    /* The salt as a key: a handle in the parameter. */
    salt_key = make_secret(CKK_GENERIC_SECRET, hk_salt, sizeof(hk_salt));
    p.ulSaltType = CKF_HKDF_SALT_KEY;
    p.pSalt = NULL;
    p.ulSaltLen = 0;
    p.hSaltKey = salt_key;
    derive_value(&m, base, 42, out);
    assert_memory_equal(out, hk_okm, 42);
    assert_int_equal(p.hSaltKey, salt_key); /* the caller's is untouched */
    p.hSaltKey = BOGUS_HANDLE;
    t_secret(&t, CKK_GENERIC_SECRET, NULL, 0);
    t_ulong(&t, CKA_VALUE_LEN, 42);
    assert_rv(p11->C_DeriveKey(S, &m, base, t.a, t.n, &d),
              CKR_KEY_HANDLE_INVALID);

    /* HKDF_DATA: a data object. */
    p.hSaltKey = salt_key;
    m.mechanism = CKM_HKDF_DATA;
    memset(&t, 0, sizeof(t));
    t_ulong(&t, CKA_CLASS, CKO_DATA);
    t_bool(&t, CKA_TOKEN, false);
    t_ulong(&t, CKA_VALUE_LEN, 42);
    assert_rv(p11->C_DeriveKey(S, &m, base, t.a, t.n, &d), CKR_OK);
    assert_int_equal(p11_get_ulong(S, d, CKA_CLASS), CKO_DATA);
    assert_int_equal(get_bytes(d, CKA_VALUE, out, sizeof(out)), 42);
    assert_memory_equal(out, hk_okm, 42);

    /* Expand only, from the PRK (RFC 5869 A.1). */
    {
        static const CK_BYTE prk[32] = {
            0x07, 0x77, 0x09, 0x36, 0x2c, 0x2e, 0x32, 0xdf, 0x0d, 0xdc, 0x3f,
            0x0d, 0xc4, 0x7b, 0xba, 0x63, 0x90, 0xb6, 0xc7, 0x3b, 0xb5, 0x0f,
            0x9c, 0x31, 0x22, 0xec, 0x84, 0x4a, 0xd7, 0xc2, 0xb3, 0xe5};
        CK_OBJECT_HANDLE pk = make_secret(CKK_GENERIC_SECRET, prk, 32);

        m.mechanism = CKM_HKDF_DERIVE;
        p.bExtract = CK_FALSE;
        p.ulSaltType = 0;
        p.hSaltKey = 0;
        derive_value(&m, pk, 42, out);
        assert_memory_equal(out, hk_okm, 42);
    }
    /* CKA_DERIVE FALSE. */
    t_secret(&t, CKK_GENERIC_SECRET, hk_ikm, 22);
    t_bool(&t, CKA_DERIVE, false);
    {
        CK_OBJECT_HANDLE nd = t_create(&t);

        t_secret(&t, CKK_GENERIC_SECRET, NULL, 0);
        t_ulong(&t, CKA_VALUE_LEN, 42);
        assert_rv(p11->C_DeriveKey(S, &m, nd, t.a, t.n, &d),
                  CKR_KEY_FUNCTION_NOT_PERMITTED);
    }
}

/* OpenSSL's KBKDF: [i]_32 || label || 0x00 || context || [L]_32. */
static void ossl_kbkdf(const char *mode, const char *mac, const char *alg,
                       const CK_BYTE *key, size_t klen, const CK_BYTE *label,
                       size_t llen, const CK_BYTE *ctx, size_t clen,
                       const CK_BYTE *seed, size_t slen, CK_BYTE *out,
                       size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "KBKDF", NULL);
    EVP_KDF_CTX *kctx;
    OSSL_PARAM params[8];
    int i = 0;

    assert_non_null(kdf);
    kctx = EVP_KDF_CTX_new(kdf);
    assert_non_null(kctx);
    params[i++] = OSSL_PARAM_construct_utf8_string("mode", (char *)mode, 0);
    params[i++] = OSSL_PARAM_construct_utf8_string("mac", (char *)mac, 0);
    params[i++] = OSSL_PARAM_construct_utf8_string(
        strcmp(mac, "HMAC") == 0 ? "digest" : "cipher", (char *)alg, 0);
    params[i++] = OSSL_PARAM_construct_octet_string("key", (void *)key, klen);
    params[i++] =
        OSSL_PARAM_construct_octet_string("salt", (void *)label, llen);
    params[i++] = OSSL_PARAM_construct_octet_string("info", (void *)ctx, clen);
    if (seed != NULL) {
        params[i++] =
            OSSL_PARAM_construct_octet_string("seed", (void *)seed, slen);
    }
    params[i] = OSSL_PARAM_construct_end();
    assert_int_equal(EVP_KDF_derive(kctx, out, outlen, params), 1);
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
}

static void test_sp800_108(void **state)
{
    static const CK_BYTE label[] = "nimbus label";
    static const CK_BYTE context[] = "some context";
    static const CK_BYTE zero = 0;
    CK_SP800_108_COUNTER_FORMAT cf = {CK_FALSE, 32};
    CK_SP800_108_DKM_LENGTH_FORMAT lf = {CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS,
                                         CK_FALSE, 32};
    CK_PRF_DATA_PARAM cdp[] = {
        {CK_SP800_108_ITERATION_VARIABLE, &cf, sizeof(cf)},
        {CK_SP800_108_BYTE_ARRAY, (void *)label, sizeof(label) - 1},
        {CK_SP800_108_BYTE_ARRAY, (void *)&zero, 1},
        {CK_SP800_108_BYTE_ARRAY, (void *)context, sizeof(context) - 1},
        {CK_SP800_108_DKM_LENGTH, &lf, sizeof(lf)},
    };
    CK_PRF_DATA_PARAM fdp[] = {
        {CK_SP800_108_ITERATION_VARIABLE, NULL, 0},
        {CK_SP800_108_OPTIONAL_COUNTER, &cf, sizeof(cf)},
        {CK_SP800_108_BYTE_ARRAY, (void *)label, sizeof(label) - 1},
        {CK_SP800_108_BYTE_ARRAY, (void *)&zero, 1},
        {CK_SP800_108_BYTE_ARRAY, (void *)context, sizeof(context) - 1},
        {CK_SP800_108_DKM_LENGTH, &lf, sizeof(lf)},
    };
    CK_SP800_108_KDF_PARAMS cp = {CKM_SHA256_HMAC, N(cdp), cdp, 0, NULL};
    CK_SP800_108_FEEDBACK_KDF_PARAMS fp = {CKM_SHA256_HMAC,   N(fdp), fdp, 32,
                                           (CK_BYTE_PTR)k256, 0,      NULL};
    CK_MECHANISM m;
    CK_OBJECT_HANDLE hk = make_secret(CKK_GENERIC_SECRET, k256, 32);
    CK_OBJECT_HANDLE ak = make_secret(CKK_AES, k256, 16);
    CK_BYTE out[BUF_MAX], want[64];

    (void)state;
    m = (CK_MECHANISM){CKM_SP800_108_COUNTER_KDF, &cp, sizeof(cp)};
    derive_value(&m, hk, 48, out);
    ossl_kbkdf("COUNTER", "HMAC", "SHA256", k256, 32, label, sizeof(label) - 1,
               context, sizeof(context) - 1, NULL, 0, want, 48);
    assert_memory_equal(out, want, 48);

    cp.prfType = CKM_AES_CMAC;
    derive_value(&m, ak, 40, out);
    ossl_kbkdf("COUNTER", "CMAC", "AES-128-CBC", k256, 16, label,
               sizeof(label) - 1, context, sizeof(context) - 1, NULL, 0, want,
               40);
    assert_memory_equal(out, want, 40);

    m = (CK_MECHANISM){CKM_SP800_108_FEEDBACK_KDF, &fp, sizeof(fp)};
    derive_value(&m, hk, 48, out);
    ossl_kbkdf("FEEDBACK", "HMAC", "SHA256", k256, 32, label, sizeof(label) - 1,
               context, sizeof(context) - 1, k256, 32, want, 48);
    assert_memory_equal(out, want, 48);
}

/* RFC 6070, through C_GenerateKey with CKM_PKCS5_PBKD2. */
static void test_pbkdf2(void **state)
{
    static const struct {
        CK_ULONG iter;
        CK_BYTE dk[20];
    } v[] = {
        {1, {0x0c, 0x60, 0xc8, 0x0f, 0x96, 0x1f, 0x0e, 0x71, 0xf3, 0xa9,
             0xb5, 0x24, 0xaf, 0x60, 0x12, 0x06, 0x2f, 0xe0, 0x37, 0xa6}},
        {2, {0xea, 0x6c, 0x01, 0x4d, 0xc7, 0x2d, 0x6f, 0x8c, 0xcd, 0x1e,
             0xd9, 0x2a, 0xce, 0x1d, 0x41, 0xf0, 0xd8, 0xde, 0x89, 0x57}},
        {4096, {0x4b, 0x00, 0x79, 0x01, 0xb7, 0x65, 0x48, 0x9a, 0xbe, 0xad,
                0x49, 0xd9, 0x26, 0xf7, 0x21, 0xd0, 0x65, 0xa4, 0x29, 0xc1}},
    };
    static const CK_BYTE salt[] = "salt";
    static CK_UTF8CHAR pw[] = "password";
    CK_BYTE out[64];

    (void)state;
    for (size_t i = 0; i < N(v); i++) {
        CK_PKCS5_PBKD2_PARAMS2 p = {CKZ_SALT_SPECIFIED,
                                    (void *)salt,
                                    4,
                                    v[i].iter,
                                    CKP_PKCS5_PBKD2_HMAC_SHA1,
                                    NULL,
                                    0,
                                    pw,
                                    8};
        CK_MECHANISM m = {CKM_PKCS5_PBKD2, &p, sizeof(p)};
        CK_OBJECT_HANDLE k;
        struct p11_tmpl t;

        t_secret(&t, CKK_GENERIC_SECRET, NULL, 0);
        t_ulong(&t, CKA_VALUE_LEN, 20);
        assert_rv(p11->C_GenerateKey(S, &m, t.a, t.n, &k), CKR_OK);
        assert_int_equal(get_bytes(k, CKA_VALUE, out, sizeof(out)), 20);
        assert_memory_equal(out, v[i].dk, 20);
        /* Made by C_GenerateKey: local (PKCS#11 3.0 4.4 CKA_LOCAL). */
        assert_bool_attr(k, CKA_LOCAL, CK_TRUE);
    }
    /* The 2.40 layout (the password length through a pointer) is told
     * from PARAMS2 by its length only: where both have the same size the
     * length means PARAMS2, and the pointer is a too long password. */
    {
        CK_ULONG pwlen = 8;
        CK_PKCS5_PBKD2_PARAMS p = {CKZ_SALT_SPECIFIED,
                                   (void *)salt,
                                   4,
                                   2,
                                   CKP_PKCS5_PBKD2_HMAC_SHA1,
                                   NULL,
                                   0,
                                   pw,
                                   &pwlen};
        CK_MECHANISM m = {CKM_PKCS5_PBKD2, &p, sizeof(p)};
        CK_OBJECT_HANDLE k;
        struct p11_tmpl t;

        t_secret(&t, CKK_GENERIC_SECRET, NULL, 0);
        t_ulong(&t, CKA_VALUE_LEN, 20);
        if (sizeof(CK_PKCS5_PBKD2_PARAMS) == sizeof(CK_PKCS5_PBKD2_PARAMS2)) {
            assert_rv(p11->C_GenerateKey(S, &m, t.a, t.n, &k),
                      CKR_MECHANISM_PARAM_INVALID);
            return;
        }
        assert_rv(p11->C_GenerateKey(S, &m, t.a, t.n, &k), CKR_OK);
        assert_int_equal(get_bytes(k, CKA_VALUE, out, sizeof(out)), 20);
        assert_memory_equal(out, v[1].dk, 20);
    }
}

static void test_concatenate(void **state)
{
    static const CK_BYTE a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const CK_BYTE b[8] = {9, 10, 11, 12, 13, 14, 15, 16};
    CK_OBJECT_HANDLE ka = make_secret(CKK_GENERIC_SECRET, a, 8);
    CK_OBJECT_HANDLE kb = make_secret(CKK_GENERIC_SECRET, b, 8);
    CK_OBJECT_HANDLE other = kb, d;
    CK_MECHANISM m = {CKM_CONCATENATE_BASE_AND_KEY, &other, sizeof(other)};
    CK_KEY_DERIVATION_STRING_DATA sd = {(CK_BYTE_PTR)b, 8};
    CK_BYTE out[BUF_MAX];
    struct p11_tmpl t;

    (void)state;
    derive_value(&m, ka, 0, out);
    assert_memory_equal(out, a, 8);
    assert_memory_equal(out + 8, b, 8);
    assert_int_equal(other, kb);
    derive_value(&m, ka, 12, out);
    assert_memory_equal(out, a, 8);
    assert_memory_equal(out + 8, b, 4);
    other = BOGUS_HANDLE;
    t_secret(&t, CKK_GENERIC_SECRET, NULL, 0);
    assert_rv(p11->C_DeriveKey(S, &m, ka, t.a, t.n, &d),
              CKR_KEY_HANDLE_INVALID);
    m = (CK_MECHANISM){CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd)};
    derive_value(&m, ka, 0, out);
    assert_memory_equal(out, a, 8);
    assert_memory_equal(out + 8, b, 8);
    /* An AES key from the concatenation: AES-ECB encrypt-data. */
    {
        CK_OBJECT_HANDLE aes = make_secret(CKK_AES, k256, 16);
        CK_KEY_DERIVATION_STRING_DATA ed = {(CK_BYTE_PTR)msg, 32};
        CK_MECHANISM em = {CKM_AES_ECB_ENCRYPT_DATA, &ed, sizeof(ed)};
        CK_BYTE want[64];

        derive_value(&em, aes, 0, out);
        ossl_crypt("AES-128-ECB", true, false, k256, NULL, msg, 32, want);
        assert_memory_equal(out, want, 32);
    }
}

/* ------------------------------------------------------------ messages */

static void gcm_message(CK_OBJECT_HANDLE k, CK_GENERATOR_FUNCTION gen)
{
    CK_BYTE iv[12], tag[16], ct[BUF_MAX], pt[BUF_MAX], want[BUF_MAX], wtag[16];
    CK_BYTE iv_before[12];
    CK_GCM_MESSAGE_PARAMS p;
    CK_MECHANISM m = {CKM_AES_GCM, NULL, 0};
    CK_ULONG clen, plen, l;

    memset(&p, 0, sizeof(p));
    memcpy(iv, iv16, 12);
    memcpy(iv_before, iv, 12);
    p.pIv = iv;
    p.ulIvLen = 12;
    p.ulIvFixedBits = gen == CKG_NO_GENERATE ? 0 : 32;
    p.ivGenerator = gen;
    p.pTag = tag;
    p.ulTagBits = 128;
    assert_rv(p11->C_MessageEncryptInit(S, &m, k), CKR_OK);
    for (int round = 0; round < 3; round++) {
        /* One-shot, with a length query. */
        clen = 0;
        assert_rv(p11->C_EncryptMessage(S, &p, sizeof(p), (CK_BYTE_PTR)aad,
                                        AAD_LEN, (CK_BYTE_PTR)msg, MSG_LEN,
                                        NULL, &clen),
                  CKR_OK);
        assert_int_equal(clen, MSG_LEN);
        assert_rv(p11->C_EncryptMessage(S, &p, sizeof(p), (CK_BYTE_PTR)aad,
                                        AAD_LEN, (CK_BYTE_PTR)msg, MSG_LEN, ct,
                                        &clen),
                  CKR_OK);
        if (gen == CKG_NO_GENERATE) {
            assert_memory_equal(iv, iv_before, 12);
        } else {
            /* The fixed part stays. */
            assert_memory_equal(iv, iv_before, 4);
        }
        if (gen == CKG_GENERATE_COUNTER) {
            CK_BYTE c[8] = {0, 0, 0, 0, 0, 0, 0, (CK_BYTE)round};

            assert_memory_equal(iv + 4, c, 8);
        }
        ossl_aead("AES-128-GCM", false, k256, iv, 12, aad, AAD_LEN, msg,
                  MSG_LEN, want, wtag, 16);
        assert_memory_equal(ct, want, MSG_LEN);
        assert_memory_equal(tag, wtag, 16);
        memcpy(iv_before, iv, 12);
        if (gen == CKG_GENERATE_COUNTER_XOR) {
            memcpy(iv, iv16, 12); /* XOR is over the caller's base IV */
            memcpy(iv_before, iv, 12);
        }
    }
    /* Begin / Next in parts. */
    assert_rv(
        p11->C_EncryptMessageBegin(S, &p, sizeof(p), (CK_BYTE_PTR)aad, AAD_LEN),
        CKR_OK);
    assert_rv(p11->C_EncryptMessage(S, &p, sizeof(p), NULL, 0, (CK_BYTE_PTR)msg,
                                    MSG_LEN, ct, &clen),
              CKR_OPERATION_ACTIVE);
    assert_rv(p11->C_EncryptMessageBegin(S, &p, sizeof(p), NULL, 0),
              CKR_OPERATION_ACTIVE);
    l = sizeof(ct);
    assert_rv(p11->C_EncryptMessageNext(S, &p, sizeof(p), (CK_BYTE_PTR)msg, 20,
                                        ct, &l, 0),
              CKR_OK);
    clen = l;
    l = sizeof(ct) - clen;
    assert_rv(p11->C_EncryptMessageNext(S, &p, sizeof(p), (CK_BYTE_PTR)msg + 20,
                                        MSG_LEN - 20, ct + clen, &l,
                                        CKF_END_OF_MESSAGE),
              CKR_OK);
    clen += l;
    assert_int_equal(clen, MSG_LEN);
    ossl_aead("AES-128-GCM", false, k256, iv, 12, aad, AAD_LEN, msg, MSG_LEN,
              want, wtag, 16);
    assert_memory_equal(ct, want, MSG_LEN);
    assert_memory_equal(tag, wtag, 16);
    assert_rv(p11->C_EncryptMessageNext(S, &p, sizeof(p), (CK_BYTE_PTR)msg, 1,
                                        ct, &l, CKF_END_OF_MESSAGE),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_MessageEncryptFinal(S), CKR_OK);
    assert_rv(p11->C_MessageEncryptFinal(S), CKR_OPERATION_NOT_INITIALIZED);

    /* Decryption: the IV and tag of the last message. */
    p.ivGenerator = CKG_NO_GENERATE;
    assert_rv(p11->C_MessageDecryptInit(S, &m, k), CKR_OK);
    assert_rv(p11->C_MessageDecryptInit(S, &m, k), CKR_OPERATION_ACTIVE);
    plen = sizeof(pt);
    assert_rv(p11->C_DecryptMessage(S, &p, sizeof(p), (CK_BYTE_PTR)aad, AAD_LEN,
                                    ct, clen, pt, &plen),
              CKR_OK);
    assert_int_equal(plen, MSG_LEN);
    assert_memory_equal(pt, msg, MSG_LEN);
    assert_rv(
        p11->C_DecryptMessageBegin(S, &p, sizeof(p), (CK_BYTE_PTR)aad, AAD_LEN),
        CKR_OK);
    l = sizeof(pt);
    assert_rv(p11->C_DecryptMessageNext(S, &p, sizeof(p), ct, 30, pt, &l, 0),
              CKR_OK);
    plen = l;
    l = sizeof(pt) - plen;
    assert_rv(p11->C_DecryptMessageNext(S, &p, sizeof(p), ct + 30, clen - 30,
                                        pt + plen, &l, CKF_END_OF_MESSAGE),
              CKR_OK);
    plen += l;
    assert_int_equal(plen, MSG_LEN);
    assert_memory_equal(pt, msg, MSG_LEN);
    /* A bad tag: nothing released, the operation goes on. */
    tag[5] ^= 1;
    plen = sizeof(pt);
    assert_rv(p11->C_DecryptMessage(S, &p, sizeof(p), (CK_BYTE_PTR)aad, AAD_LEN,
                                    ct, clen, pt, &plen),
              CKR_AEAD_DECRYPT_FAILED);
    tag[5] ^= 1;
    plen = sizeof(pt);
    assert_rv(p11->C_DecryptMessage(S, &p, sizeof(p), (CK_BYTE_PTR)aad, AAD_LEN,
                                    ct, clen, pt, &plen),
              CKR_OK);
    assert_rv(p11->C_MessageDecryptFinal(S), CKR_OK);
}

static void test_message_gcm(void **state)
{
    CK_OBJECT_HANDLE k = make_secret(CKK_AES, k256, 16);
    const CK_GENERATOR_FUNCTION gens[] = {
        CKG_NO_GENERATE, CKG_GENERATE, CKG_GENERATE_COUNTER,
        CKG_GENERATE_RANDOM, CKG_GENERATE_COUNTER_XOR};

    (void)state;
    for (size_t i = 0; i < N(gens); i++) {
        gcm_message(k, gens[i]);
    }
}

static void test_message_ccm_chacha(void **state)
{
    CK_OBJECT_HANDLE ak = make_secret(CKK_AES, k256, 16);
    CK_OBJECT_HANDLE ck = make_secret(CKK_CHACHA20, k256, 32);
    CK_BYTE nonce[13], tag[16], ct[BUF_MAX], pt[BUF_MAX], want[BUF_MAX],
        wtag[16];
    CK_ULONG clen, plen, l;

    (void)state;
    {
        CK_CCM_MESSAGE_PARAMS p = {MSG_LEN, nonce, 13, 40, CKG_GENERATE_RANDOM,
                                   tag,     12};
        CK_MECHANISM m = {CKM_AES_CCM, NULL, 0};

        memcpy(nonce, iv16, 13);
        assert_rv(p11->C_MessageEncryptInit(S, &m, ak), CKR_OK);
        clen = sizeof(ct);
        assert_rv(p11->C_EncryptMessage(S, &p, sizeof(p), (CK_BYTE_PTR)aad,
                                        AAD_LEN, (CK_BYTE_PTR)msg, MSG_LEN, ct,
                                        &clen),
                  CKR_OK);
        assert_memory_equal(nonce, iv16, 5);
        ossl_aead("AES-128-CCM", true, k256, nonce, 13, aad, AAD_LEN, msg,
                  MSG_LEN, want, wtag, 12);
        assert_memory_equal(ct, want, MSG_LEN);
        assert_memory_equal(tag, wtag, 12);
        /* In parts: CCM output comes at the end. */
        assert_rv(p11->C_EncryptMessageBegin(S, &p, sizeof(p), (CK_BYTE_PTR)aad,
                                             AAD_LEN),
                  CKR_OK);
        l = sizeof(ct);
        assert_rv(p11->C_EncryptMessageNext(S, &p, sizeof(p), (CK_BYTE_PTR)msg,
                                            25, ct, &l, 0),
                  CKR_OK);
        clen = l;
        l = sizeof(ct) - clen;
        assert_rv(p11->C_EncryptMessageNext(S, &p, sizeof(p),
                                            (CK_BYTE_PTR)msg + 25, MSG_LEN - 25,
                                            ct + clen, &l, CKF_END_OF_MESSAGE),
                  CKR_OK);
        clen += l;
        assert_int_equal(clen, MSG_LEN);
        ossl_aead("AES-128-CCM", true, k256, nonce, 13, aad, AAD_LEN, msg,
                  MSG_LEN, want, wtag, 12);
        assert_memory_equal(ct, want, MSG_LEN);
        assert_memory_equal(tag, wtag, 12);
        assert_rv(p11->C_MessageEncryptFinal(S), CKR_OK);

        p.nonceGenerator = CKG_NO_GENERATE;
        assert_rv(p11->C_MessageDecryptInit(S, &m, ak), CKR_OK);
        plen = sizeof(pt);
        assert_rv(p11->C_DecryptMessage(S, &p, sizeof(p), (CK_BYTE_PTR)aad,
                                        AAD_LEN, ct, clen, pt, &plen),
                  CKR_OK);
        assert_int_equal(plen, MSG_LEN);
        assert_memory_equal(pt, msg, MSG_LEN);
        assert_rv(p11->C_MessageDecryptFinal(S), CKR_OK);
    }
    {
        CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS p = {nonce, 12, tag};
        CK_MECHANISM m = {CKM_CHACHA20_POLY1305, NULL, 0};

        memcpy(nonce, iv16, 12);
        assert_rv(p11->C_MessageEncryptInit(S, &m, ck), CKR_OK);
        clen = sizeof(ct);
        assert_rv(p11->C_EncryptMessage(S, &p, sizeof(p), (CK_BYTE_PTR)aad,
                                        AAD_LEN, (CK_BYTE_PTR)msg, MSG_LEN, ct,
                                        &clen),
                  CKR_OK);
        ossl_aead("ChaCha20-Poly1305", false, k256, nonce, 12, aad, AAD_LEN,
                  msg, MSG_LEN, want, wtag, 16);
        assert_memory_equal(ct, want, MSG_LEN);
        assert_memory_equal(tag, wtag, 16);
        assert_rv(p11->C_MessageEncryptFinal(S), CKR_OK);
        assert_rv(p11->C_MessageDecryptInit(S, &m, ck), CKR_OK);
        plen = sizeof(pt);
        assert_rv(p11->C_DecryptMessage(S, &p, sizeof(p), (CK_BYTE_PTR)aad,
                                        AAD_LEN, ct, clen, pt, &plen),
                  CKR_OK);
        assert_memory_equal(pt, msg, MSG_LEN);
        ct[0] ^= 1;
        plen = sizeof(pt);
        assert_rv(p11->C_DecryptMessage(S, &p, sizeof(p), (CK_BYTE_PTR)aad,
                                        AAD_LEN, ct, clen, pt, &plen),
                  CKR_AEAD_DECRYPT_FAILED);
        assert_rv(p11->C_MessageDecryptFinal(S), CKR_OK);
    }
}

static void test_message_errors(void **state)
{
    CK_OBJECT_HANDLE k = make_secret(CKK_AES, k256, 16);
    CK_MECHANISM gcm = {CKM_AES_GCM, NULL, 0};
    CK_MECHANISM cbc = {CKM_AES_CBC, (void *)iv16, 16};
    CK_BYTE iv[12], tag[16], ct[BUF_MAX];
    CK_GCM_MESSAGE_PARAMS p = {iv, 12, 0, CKG_NO_GENERATE, tag, 128};
    CK_ULONG l = sizeof(ct);

    (void)state;
    memcpy(iv, iv16, 12);
    assert_rv(p11->C_EncryptMessage(S, &p, sizeof(p), NULL, 0, (CK_BYTE_PTR)msg,
                                    16, ct, &l),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_EncryptMessageBegin(S, &p, sizeof(p), NULL, 0),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_MessageEncryptFinal(S), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_MessageEncryptInit(S, &cbc, k), CKR_MECHANISM_INVALID);
    assert_rv(p11->C_MessageEncryptInit(S, &gcm, BOGUS_HANDLE),
              CKR_KEY_HANDLE_INVALID);
    assert_rv(p11->C_MessageEncryptInit(S, NULL, k), CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_MessageEncryptInit(S, &gcm, k), CKR_OK);
    assert_rv(p11->C_MessageEncryptInit(S, &gcm, k), CKR_OPERATION_ACTIVE);
    /* Classic and message operations are apart. */
    {
        CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};

        assert_rv(p11->C_EncryptInit(S, &ecb, k), CKR_OK);
        l = sizeof(ct);
        assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, 16, ct, &l), CKR_OK);
    }
    /* Bad parameters: the message fails, the operation stays. */
    l = sizeof(ct);
    assert_rv(p11->C_EncryptMessage(S, &p, sizeof(p) - 1, NULL, 0,
                                    (CK_BYTE_PTR)msg, 16, ct, &l),
              CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_EncryptMessage(S, NULL, 0, NULL, 0, (CK_BYTE_PTR)msg, 16,
                                    ct, &l),
              CKR_ARGUMENTS_BAD);
    p.ulTagBits = 20;
    assert_rv(p11->C_EncryptMessage(S, &p, sizeof(p), NULL, 0, (CK_BYTE_PTR)msg,
                                    16, ct, &l),
              CKR_ARGUMENTS_BAD);
    p.ulTagBits = 128;
    assert_rv(p11->C_EncryptMessage(S, &p, sizeof(p), NULL, 0, (CK_BYTE_PTR)msg,
                                    16, ct, NULL),
              CKR_ARGUMENTS_BAD);
    /* Buffer too small: the length, nothing done. */
    l = 3;
    assert_rv(p11->C_EncryptMessage(S, &p, sizeof(p), NULL, 0, (CK_BYTE_PTR)msg,
                                    16, ct, &l),
              CKR_BUFFER_TOO_SMALL);
    assert_int_equal(l, 16);
    l = sizeof(ct);
    assert_rv(p11->C_EncryptMessage(S, &p, sizeof(p), NULL, 0, (CK_BYTE_PTR)msg,
                                    16, ct, &l),
              CKR_OK);
    /* Next with a flag we do not know. */
    assert_rv(p11->C_EncryptMessageBegin(S, &p, sizeof(p), NULL, 0), CKR_OK);
    l = sizeof(ct);
    assert_rv(p11->C_EncryptMessageNext(S, &p, sizeof(p), (CK_BYTE_PTR)msg, 16,
                                        ct, &l, 0x80),
              CKR_ARGUMENTS_BAD);
    /* Final with a message under way drops it. */
    assert_rv(p11->C_MessageEncryptFinal(S), CKR_OK);
    /* Sign/verify messages: not offered. */
    assert_rv(p11->C_MessageSignInit(S, &gcm, k), CKR_FUNCTION_NOT_SUPPORTED);
    assert_rv(p11->C_MessageVerifyInit(S, &gcm, k), CKR_FUNCTION_NOT_SUPPORTED);
}

/* ------------------------------------------------------------ fences */

/*
 * Mechanism parameters whose byte strings end where readable memory ends
 * (an inaccessible page follows): the module reads exactly what the
 * caller declared, refuses a length past its caps without reading, and
 * never reads a message operation's init parameter (a
 * CK_GCM_MESSAGE_PARAMS is as long as a CK_GCM_PARAMS: read as one, its
 * pTag would be taken for pAAD and ulTagBits bytes read from it).
 */
static void test_param_fences(void **state)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *g = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *end, *tag16, *aad5;
    CK_OBJECT_HANDLE k = make_secret(CKK_AES, k256, 16);
    CK_OBJECT_HANDLE hk = make_secret(CKK_GENERIC_SECRET, k256, 32);
    CK_BYTE iv[12], ct[64], pt[64], tag[16];
    CK_GCM_PARAMS gp;
    CK_GCM_MESSAGE_PARAMS mp;
    CK_MECHANISM m;
    CK_ULONG l;

    (void)state;
    assert_true(g != MAP_FAILED);
    assert_int_equal(mprotect(g + pg, pg, PROT_NONE), 0);
    end = g + pg;
    tag16 = end - 16;
    aad5 = end - 5;
    memset(g, 0x5C, pg);
    memcpy(iv, iv16, 12);

    /* Classic GCM: the AAD at the fence is read whole, and only it. */
    gp = (CK_GCM_PARAMS){iv, 12, 96, aad5, 5, 128};
    m = (CK_MECHANISM){CKM_AES_GCM, &gp, sizeof(gp)};
    assert_rv(p11->C_EncryptInit(S, &m, k), CKR_OK);
    l = sizeof(ct);
    assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, 16, ct, &l), CKR_OK);
    assert_int_equal(l, 32);
    /* a NULL AAD with a length; a length past the caps, not read */
    gp.pAAD = NULL;
    assert_rv(p11->C_EncryptInit(S, &m, k), CKR_MECHANISM_PARAM_INVALID);
    gp.pAAD = end;
    gp.ulAADLen = (CK_ULONG)-1;
    assert_rv(p11->C_EncryptInit(S, &m, k), CKR_MECHANISM_PARAM_INVALID);
    gp.ulAADLen = 2 * 1024 * 1024;
    assert_rv(p11->C_EncryptInit(S, &m, k), CKR_MECHANISM_PARAM_INVALID);
    /* the parameter struct itself at the fence, one byte short */
    memcpy(end - (sizeof(gp) - 1), &gp, sizeof(gp) - 1);
    m.pParameter = end - (sizeof(gp) - 1);
    m.ulParameterLen = sizeof(gp) - 1;
    assert_rv(p11->C_EncryptInit(S, &m, k), CKR_MECHANISM_PARAM_INVALID);
    /* and a parameter length no layout has */
    m.pParameter = end;
    m.ulParameterLen = (CK_ULONG)-1;
    assert_rv(p11->C_EncryptInit(S, &m, k), CKR_MECHANISM_PARAM_INVALID);

    /* Message init: the parameter is not read. */
    mp = (CK_GCM_MESSAGE_PARAMS){iv, 12, 0, CKG_NO_GENERATE, tag16, 128};
    memcpy(end - sizeof(mp), &mp, sizeof(mp));
    m = (CK_MECHANISM){CKM_AES_GCM, end - sizeof(mp), sizeof(mp)};
    assert_rv(p11->C_MessageEncryptInit(S, &m, k), CKR_OK);
    assert_rv(p11->C_MessageDecryptInit(S, &m, k), CKR_OK);
    m.pParameter = end; /* nothing of it may be read */
    assert_rv(p11->C_MessageEncryptFinal(S), CKR_OK);
    assert_rv(p11->C_MessageEncryptInit(S, &m, k), CKR_OK);
    /* Messages: the tag written at the fence, then read from it (the AAD
     * elsewhere: the tag overwrites the fence's last bytes). */
    mp.pTag = tag16;
    l = sizeof(ct);
    assert_rv(p11->C_EncryptMessage(S, &mp, sizeof(mp), (CK_BYTE_PTR)iv16, 5,
                                    (CK_BYTE_PTR)msg, 16, ct, &l),
              CKR_OK);
    memcpy(tag, tag16, 16);
    l = sizeof(pt);
    assert_rv(p11->C_DecryptMessage(S, &mp, sizeof(mp), (CK_BYTE_PTR)iv16, 5,
                                    ct, 16, pt, &l),
              CKR_OK);
    assert_memory_equal(pt, msg, 16);
    /* a 96-bit tag: 12 bytes at the fence, exactly */
    mp.ulTagBits = 96;
    mp.pTag = end - 12;
    l = sizeof(ct);
    assert_rv(p11->C_EncryptMessage(S, &mp, sizeof(mp), NULL, 0,
                                    (CK_BYTE_PTR)msg, 16, ct, &l),
              CKR_OK);
    l = sizeof(pt);
    assert_rv(
        p11->C_DecryptMessage(S, &mp, sizeof(mp), NULL, 0, ct, 16, pt, &l),
        CKR_OK);
    /* a tag longer than any, its pointer unreadable: refused unread */
    mp.ulTagBits = (CK_ULONG)-1 & ~(CK_ULONG)7;
    mp.pTag = end;
    l = sizeof(pt);
    assert_rv(
        p11->C_DecryptMessage(S, &mp, sizeof(mp), NULL, 0, ct, 16, pt, &l),
        CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_MessageEncryptFinal(S), CKR_OK);
    assert_rv(p11->C_MessageDecryptFinal(S), CKR_OK);

    /* SP 800-108: a count past the cap with an unreadable array, the
     * array ending at the fence, a NULL array with a count. */
    {
        CK_SP800_108_COUNTER_FORMAT cf = {CK_FALSE, 32};
        CK_PRF_DATA_PARAM dp[2] = {
            {CK_SP800_108_ITERATION_VARIABLE, &cf, sizeof(cf)},
            {CK_SP800_108_BYTE_ARRAY, aad5, 5},
        };
        CK_PRF_DATA_PARAM *at = (CK_PRF_DATA_PARAM *)(end - sizeof(dp));
        CK_SP800_108_KDF_PARAMS kp = {CKM_SHA256_HMAC, 1000000,
                                      (CK_PRF_DATA_PARAM *)end, 0, NULL};
        CK_OBJECT_HANDLE d = CK_INVALID_HANDLE;
        struct p11_tmpl t;

        m = (CK_MECHANISM){CKM_SP800_108_COUNTER_KDF, &kp, sizeof(kp)};
        t_secret(&t, CKK_GENERIC_SECRET, NULL, 0);
        t_ulong(&t, CKA_VALUE_LEN, 32);
        assert_rv(p11->C_DeriveKey(S, &m, hk, t.a, t.n, &d),
                  CKR_MECHANISM_PARAM_INVALID);
        kp.pDataParams = NULL;
        kp.ulNumberOfDataParams = 2;
        assert_rv(p11->C_DeriveKey(S, &m, hk, t.a, t.n, &d),
                  CKR_MECHANISM_PARAM_INVALID);
        memcpy(at, dp, sizeof(dp));
        kp.pDataParams = at;
        assert_rv(p11->C_DeriveKey(S, &m, hk, t.a, t.n, &d), CKR_OK);
        /* a nested NULL with a length */
        at[1].pValue = NULL;
        assert_rv(p11->C_DeriveKey(S, &m, hk, t.a, t.n, &d),
                  CKR_MECHANISM_PARAM_INVALID);
    }
    assert_int_equal(munmap(g, 2 * pg), 0);
}

/* ------------------------------------------------------------ cancel */

static void test_session_cancel(void **state)
{
    CK_OBJECT_HANDLE k = make_secret(CKK_AES, k256, 16);
    CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
    CK_MECHANISM cmac = {CKM_AES_CMAC, NULL, 0};
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
    CK_MECHANISM gcm = {CKM_AES_GCM, NULL, 0};
    CK_BYTE iv[12], tag[16], out[64];
    CK_GCM_MESSAGE_PARAMS p = {iv, 12, 0, CKG_NO_GENERATE, tag, 128};
    CK_ULONG l, n;
    CK_OBJECT_HANDLE h;

    (void)state;
    memcpy(iv, iv16, 12);
    assert_rv(p11->C_EncryptInit(S, &ecb, k), CKR_OK);
    assert_rv(p11->C_DecryptInit(S, &ecb, k), CKR_OK);
    assert_rv(p11->C_SignInit(S, &cmac, k), CKR_OK);
    assert_rv(p11->C_VerifyInit(S, &cmac, k), CKR_OK);
    assert_rv(p11->C_DigestInit(S, &sha), CKR_OK);
    assert_rv(p11->C_MessageEncryptInit(S, &gcm, k), CKR_OK);
    assert_rv(p11->C_MessageDecryptInit(S, &gcm, k), CKR_OK);
    assert_rv(p11->C_FindObjectsInit(S, NULL, 0), CKR_OK);

    /* Encrypt only: the others stay. */
    assert_rv(p11->C_SessionCancel(S, CKF_ENCRYPT), CKR_OK);
    l = sizeof(out);
    assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, 16, out, &l),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_EncryptInit(S, &ecb, k), CKR_OK);
    l = sizeof(out);
    assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, 16, out, &l), CKR_OK);
    l = sizeof(out);
    assert_rv(p11->C_Decrypt(S, out, 16, out, &l), CKR_OK);

    assert_rv(p11->C_SessionCancel(S, CKF_SIGN | CKF_DIGEST), CKR_OK);
    l = sizeof(out);
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, 16, out, &l),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_DigestUpdate(S, (CK_BYTE_PTR)msg, 16),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_VerifyUpdate(S, (CK_BYTE_PTR)msg, 16), CKR_OK);

    assert_rv(p11->C_SessionCancel(S, CKF_MESSAGE_ENCRYPT), CKR_OK);
    l = sizeof(out);
    assert_rv(p11->C_EncryptMessage(S, &p, sizeof(p), NULL, 0, (CK_BYTE_PTR)msg,
                                    16, out, &l),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_MessageEncryptInit(S, &gcm, k), CKR_OK);

    assert_rv(p11->C_SessionCancel(S, CKF_FIND_OBJECTS), CKR_OK);
    assert_rv(p11->C_FindObjects(S, &h, 1, &n), CKR_OPERATION_NOT_INITIALIZED);

    /* Everything at once; nothing active is no error. */
    assert_rv(p11->C_SessionCancel(
                  S, CKF_ENCRYPT | CKF_DECRYPT | CKF_SIGN | CKF_VERIFY |
                         CKF_DIGEST | CKF_MESSAGE_ENCRYPT |
                         CKF_MESSAGE_DECRYPT | CKF_FIND_OBJECTS),
              CKR_OK);
    assert_rv(p11->C_VerifyFinal(S, out, 16), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_MessageDecryptFinal(S), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_MessageEncryptFinal(S), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_SessionCancel(S, CKF_ENCRYPT), CKR_OK);
    assert_rv(p11->C_SessionCancel(BOGUS_HANDLE, CKF_ENCRYPT),
              CKR_SESSION_HANDLE_INVALID);
    /* A message operation ends with logout too. */
    assert_rv(p11->C_MessageEncryptInit(S, &gcm, k), CKR_OK);
    assert_rv(p11->C_Logout(S), CKR_OK);
    p11_login_cu(S, "alice", P11_ALICE_PW);
    assert_rv(p11->C_MessageEncryptFinal(S), CKR_OPERATION_NOT_INITIALIZED);
}

/* ------------------------------------------------------------ keygen */

static void test_keygen(void **state)
{
    CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
    CK_MECHANISM cm = {CKM_CHACHA20_KEY_GEN, NULL, 0};
    CK_BYTE v[64];
    CK_OBJECT_HANDLE k;
    struct p11_tmpl t;

    (void)state;
    for (CK_ULONG len = 16; len <= 32; len += 8) {
        t_secret(&t, CKK_AES, NULL, 0);
        t_ulong(&t, CKA_VALUE_LEN, len);
        assert_rv(p11->C_GenerateKey(S, &m, t.a, t.n, &k), CKR_OK);
        assert_int_equal(get_bytes(k, CKA_VALUE, v, sizeof(v)), len);
        assert_bool_attr(k, CKA_LOCAL, CK_TRUE);
    }
    t_secret(&t, CKK_AES, NULL, 0);
    t_ulong(&t, CKA_VALUE_LEN, 20);
    assert_rv(p11->C_GenerateKey(S, &m, t.a, t.n, &k),
              CKR_ATTRIBUTE_VALUE_INVALID);
    t_secret(&t, CKK_CHACHA20, NULL, 0);
    assert_rv(p11->C_GenerateKey(S, &cm, t.a, t.n, &k), CKR_OK);
    assert_int_equal(get_bytes(k, CKA_VALUE, v, sizeof(v)), 32);
}

int p11_group_sym(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_sym, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_aes_modes),
        T(test_ccm_known_answer),
        T(test_cmac),
        T(test_gcm_token_iv),
        T(test_des3),
        T(test_des3_off),
        T(test_chacha20),
        T(test_keygen),
        T(test_wrap_every_kind),
        T(test_wrap_rules),
        T(test_wrap_trusted),
        T(test_templates),
        T(test_template_arrays),
        T(test_shared_user),
        T(test_hkdf),
        T(test_sp800_108),
        T(test_pbkdf2),
        T(test_concatenate),
        T(test_message_gcm),
        T(test_message_ccm_chacha),
        T(test_message_errors),
        T(test_param_fences),
        T(test_session_cancel),
    };
#undef T

    return cmocka_run_group_tests_name("symmetric", tests, NULL, NULL);
}
