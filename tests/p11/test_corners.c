/*
 * test_corners.c - the spec corners real tools hit (issue 12): AES key wrap
 * of keys of any length, GCM IV rules (ulIvBits ignored, long IVs,
 * gcm_zero_iv), multi-part AEAD output bounds, brainpool curves and
 * unsupported curves, the library version.
 *
 * Results are checked against OpenSSL outside the token wherever that is
 * cheap: key wrap blobs, GCM ciphertexts, ECDSA signatures, ECDH secrets.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include "p11util.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))
#define BUF_MAX 4096

static CK_BBOOL yes = CK_TRUE;
static CK_BBOOL no = CK_FALSE;

/* The session of a test: alice logged in, RW. */
static CK_SESSION_HANDLE S;

static const CK_BYTE k256[32] = {
    0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae,
    0xf0, 0x85, 0x7d, 0x77, 0x81, 0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61,
    0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4};
/* 61 bytes: not a whole number of blocks. */
static const CK_BYTE msg[] =
    "Corners are where tokens differ; sixty-one bytes of plaintext";
#define MSG_LEN (sizeof(msg) - 1)
static const CK_BYTE aad[] = "associated data";
#define AAD_LEN (sizeof(aad) - 1)

/* DER OIDs of the curves. */
static const CK_BYTE oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                   0xce, 0x3d, 0x03, 0x01, 0x07};
static const CK_BYTE oid_bp256[] = {0x06, 0x09, 0x2b, 0x24, 0x03, 0x03,
                                    0x02, 0x08, 0x01, 0x01, 0x07};
static const CK_BYTE oid_bp384[] = {0x06, 0x09, 0x2b, 0x24, 0x03, 0x03,
                                    0x02, 0x08, 0x01, 0x01, 0x0b};
static const CK_BYTE oid_bp512[] = {0x06, 0x09, 0x2b, 0x24, 0x03, 0x03,
                                    0x02, 0x08, 0x01, 0x01, 0x0d};
/* secp192k1 (1.3.132.0.31): a named curve Nimbus does not offer. */
static const CK_BYTE oid_k192[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x1f};

struct curve {
    const char *name; /* OpenSSL's */
    const CK_BYTE *oid;
    size_t oid_len;
    size_t len; /* bytes of the order and of a coordinate */
};

static const struct curve brainpool[] = {
    {"brainpoolP256r1", oid_bp256, sizeof(oid_bp256), 32},
    {"brainpoolP384r1", oid_bp384, sizeof(oid_bp384), 48},
    {"brainpoolP512r1", oid_bp512, sizeof(oid_bp512), 64},
};

/* ------------------------------------------------------------ helpers */

/* A fresh store (extra_conf as p11_fresh), alice logged in on S. */
static void corners_start(const char *extra_conf)
{
    p11_fresh(extra_conf);
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    S = p11_open_rw();
    p11_login_cu(S, "alice", P11_ALICE_PW);
}

static int setup_corners(void **state)
{
    (void)state;
    corners_start(NULL);
    return 0;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);

    assert_non_null(p);
    return p;
}

/* An AES session key of value k256[0..len) allowed to do what flags say. */
static CK_OBJECT_HANDLE aes_key(size_t len, CK_ATTRIBUTE_TYPE use1,
                                CK_ATTRIBUTE_TYPE use2)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},   {CKA_VALUE, (void *)k256, len},
        {use1, &yes, sizeof(yes)},      {use2, &yes, sizeof(yes)},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

    assert_rv(p11->C_CreateObject(S, t, N(t), &h), CKR_OK);
    return h;
}

static EVP_CIPHER *cipher(const char *name)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, name, NULL);

    assert_non_null(c);
    return c;
}

/* AES-256 key wrap (RFC 3394) of in under k256, by OpenSSL. */
static size_t ossl_kw(bool enc, const CK_BYTE *in, size_t inlen, CK_BYTE *out)
{
    EVP_CIPHER *c = cipher("AES-256-WRAP");
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int l = 0, l2 = 0;

    assert_non_null(ctx);
    assert_int_equal(EVP_CipherInit_ex2(ctx, c, k256, NULL, enc, NULL), 1);
    assert_int_equal(EVP_CipherUpdate(ctx, out, &l, in, (int)inlen), 1);
    assert_int_equal(EVP_CipherFinal_ex(ctx, out + l, &l2), 1);
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
    return (size_t)(l + l2);
}

/* AES-256-GCM with any IV length, by OpenSSL: out gets ct || tag (16). On
 * decryption in is ct || tag and the result says whether the tag held. */
static bool ossl_gcm(bool enc, const CK_BYTE *iv, size_t ivlen,
                     const CK_BYTE *in, size_t inlen, CK_BYTE *out)
{
    EVP_CIPHER *c = cipher("AES-256-GCM");
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    size_t n = enc ? inlen : inlen - 16;
    int l = 0, l2 = 0;
    bool ok;

    assert_non_null(ctx);
    assert_int_equal(EVP_CipherInit_ex2(ctx, c, NULL, NULL, enc, NULL), 1);
    assert_int_equal(
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, (int)ivlen, NULL), 1);
    assert_int_equal(EVP_CipherInit_ex2(ctx, NULL, k256, iv, enc, NULL), 1);
    assert_int_equal(EVP_CipherUpdate(ctx, NULL, &l, aad, (int)AAD_LEN), 1);
    assert_int_equal(EVP_CipherUpdate(ctx, out, &l, in, (int)n), 1);
    if (!enc) {
        assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16,
                                             (void *)(in + n)),
                         1);
    }
    ok = EVP_CipherFinal_ex(ctx, out + l, &l2) == 1;
    if (enc) {
        assert_true(ok);
        assert_int_equal(
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + l + l2),
            1);
    }
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
    return ok;
}

/* A byte attribute, malloc'd (asserts CKR_OK). */
static CK_BYTE *get_attr(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                         CK_ULONG *len)
{
    CK_ATTRIBUTE a = {type, NULL, 0};

    assert_rv(p11->C_GetAttributeValue(S, h, &a, 1), CKR_OK);
    assert_true(a.ulValueLen != CK_UNAVAILABLE_INFORMATION);
    a.pValue = xmalloc(a.ulValueLen);
    assert_rv(p11->C_GetAttributeValue(S, h, &a, 1), CKR_OK);
    *len = a.ulValueLen;
    return a.pValue;
}

/* The token's public key as OpenSSL sees it (CKA_PUBLIC_KEY_INFO). */
static EVP_PKEY *pkey_of(CK_OBJECT_HANDLE h)
{
    CK_ULONG len;
    CK_BYTE *der = get_attr(h, CKA_PUBLIC_KEY_INFO, &len);
    const unsigned char *p = der;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)len);

    assert_non_null(k);
    free(der);
    return k;
}

static CK_RV sign_rv(CK_MECHANISM_TYPE mt, CK_OBJECT_HANDLE key,
                     const CK_BYTE *d, size_t dlen, CK_BYTE *sig,
                     CK_ULONG *siglen)
{
    CK_MECHANISM m = {mt, NULL, 0};
    CK_RV rv = p11->C_SignInit(S, &m, key);

    return rv != CKR_OK ? rv
                        : p11->C_Sign(S, (CK_BYTE_PTR)d, dlen, sig, siglen);
}

static CK_RV verify_rv(CK_MECHANISM_TYPE mt, CK_OBJECT_HANDLE key,
                       const CK_BYTE *d, size_t dlen, const CK_BYTE *sig,
                       CK_ULONG siglen)
{
    CK_MECHANISM m = {mt, NULL, 0};
    CK_RV rv = p11->C_VerifyInit(S, &m, key);

    return rv != CKR_OK ? rv
                        : p11->C_Verify(S, (CK_BYTE_PTR)d, dlen,
                                        (CK_BYTE_PTR)sig, siglen);
}

/* r||s (2n bytes) checked by OpenSSL with md (NULL: data is the hash). */
static bool ossl_verify_ecdsa(EVP_PKEY *k, const char *md, const CK_BYTE *d,
                              size_t dlen, const CK_BYTE *raw, size_t rawlen)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)(rawlen / 2), NULL);
    BIGNUM *s = BN_bin2bn(raw + rawlen / 2, (int)(rawlen / 2), NULL);
    unsigned char *der = NULL;
    EVP_PKEY_CTX *pctx;
    EVP_MD_CTX *mctx;
    int len;
    bool ok;

    assert_non_null(es);
    assert_true(r != NULL && s != NULL);
    assert_int_equal(ECDSA_SIG_set0(es, r, s), 1);
    len = i2d_ECDSA_SIG(es, &der);
    assert_true(len > 0);
    ECDSA_SIG_free(es);
    if (md == NULL) {
        pctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
        assert_non_null(pctx);
        ok = EVP_PKEY_verify_init(pctx) == 1 &&
             EVP_PKEY_verify(pctx, der, (size_t)len, d, dlen) == 1;
        EVP_PKEY_CTX_free(pctx);
    } else {
        mctx = EVP_MD_CTX_new();
        assert_non_null(mctx);
        ok =
            EVP_DigestVerifyInit_ex(mctx, NULL, md, NULL, NULL, k, NULL) == 1 &&
            EVP_DigestVerify(mctx, der, (size_t)len, d, dlen) == 1;
        EVP_MD_CTX_free(mctx);
    }
    OPENSSL_free(der);
    return ok;
}

/* ------------------------------------------------------------ version */

/* C_GetInfo names release 1.0 of the library and Cryptoki 3.0. */
static void test_corners_version(void **state)
{
    CK_INFO info;

    (void)state;
    memset(&info, 0xA5, sizeof(info));
    assert_rv(p11->C_GetInfo(&info), CKR_OK);
    assert_int_equal(info.libraryVersion.major, 1);
    assert_int_equal(info.libraryVersion.minor, 0);
    assert_int_equal(info.cryptokiVersion.major, 3);
    assert_int_equal(info.cryptokiVersion.minor, 0);
    assert_true(p11_padded_eq(info.manufacturerID, sizeof(info.manufacturerID),
                              "Nimbus"));
}

/* The configuration switch this group's rules answer to is accepted. */
static void test_corners_config(void **state)
{
    (void)state;
    assert_rv(p11_fresh_rv("gcm_zero_iv = use\n"), CKR_OK);
    assert_rv(p11_fresh_rv("gcm_zero_iv = generate\n"), CKR_OK);
    assert_rv(p11_fresh_rv("gcm_zero_iv = maybe\n"), CKR_GENERAL_ERROR);
}

/*
 * servers names nimbusd. Until the module has a remote backend,
 * C_Initialize fails (the backend's CKR_DEVICE_ERROR is not a code
 * C_Initialize may return: CKR_GENERAL_ERROR) and no local store is made
 * behind the operator's back; the module stays uninitialized and starts
 * again with a configuration without servers.
 */
static void test_corners_servers_unavailable(void **state)
{
    CK_ULONG n = 0;
    char store[4200];
    struct stat st;

    (void)state;
    assert_rv(p11_fresh_rv("servers = unix:/nonexistent/nimbusd.sock\n"),
              CKR_GENERAL_ERROR);
    snprintf(store, sizeof(store), "%s/store", p11_dir());
    assert_int_equal(stat(store, &st), -1);
    assert_rv(p11->C_GetSlotList(CK_FALSE, NULL, &n),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_rv(p11_fresh_rv(NULL), CKR_OK);
    assert_rv(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
    assert_int_equal(n, 1);
}

/* ------------------------------------------------------------ key wrap */

/* A private key the owner may wrap: RSA-1024 or an EC pair on c. */
static void gen_wrappable(const struct curve *c, CK_OBJECT_HANDLE *pub,
                          CK_OBJECT_HANDLE *priv)
{
    CK_ULONG bits = 1024;
    CK_BYTE e[] = {0x01, 0x00, 0x01};
    CK_MECHANISM m = {
        c != NULL ? CKM_EC_KEY_PAIR_GEN : CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE tpub[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_VERIFY, &yes, sizeof(yes)},
        c != NULL ? (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)c->oid, c->oid_len}
                  : (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)},
        {CKA_PUBLIC_EXPONENT, e, sizeof(e)},
    };
    CK_ATTRIBUTE tpriv[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &yes, sizeof(yes)},
    };

    assert_rv(p11->C_GenerateKeyPair(S, &m, tpub, c != NULL ? 3 : 4, tpriv,
                                     N(tpriv), pub, priv),
              CKR_OK);
}

/* The length of the DER element at the start of p (0: none). */
static size_t der_len(const CK_BYTE *p, size_t len)
{
    size_t nb, v = 0;

    if (len < 2 || p[0] != 0x30) {
        return 0;
    }
    if (p[1] < 0x80) {
        return 2 + (size_t)p[1];
    }
    nb = p[1] & 0x7f;
    for (size_t i = 0; i < nb && 2 + i < len; i++) {
        v = (v << 8) | p[2 + i];
    }
    return 2 + nb + v;
}

/*
 * Wraps priv with CKM_AES_KEY_WRAP under wk and checks the blob outside:
 * OpenSSL's AES-256-WRAP opens it to the key's PKCS#8 (same public key as
 * pub), zero-padded to a multiple of 8 bytes, and wraps that back to the
 * same blob. Then unwraps it as a new private key, which signs what pub
 * verifies.
 */
static void kw_private_round_trip(CK_OBJECT_HANDLE wk, CK_KEY_TYPE kt,
                                  CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv,
                                  CK_MECHANISM_TYPE sign_mech)
{
    CK_MECHANISM m = {CKM_AES_KEY_WRAP, NULL, 0};
    CK_BYTE blob[BUF_MAX], plain[BUF_MAX], again[BUF_MAX], sig[512];
    CK_ULONG bloblen = 0, siglen = sizeof(sig);
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_SIGN, &yes, sizeof(yes)},
    };
    CK_OBJECT_HANDLE nk = CK_INVALID_HANDLE;
    const unsigned char *p = plain;
    size_t plen, dlen;
    PKCS8_PRIV_KEY_INFO *p8;
    EVP_PKEY *inside, *outside;

    /* the two-call convention, then the blob */
    assert_rv(p11->C_WrapKey(S, &m, wk, priv, NULL, &bloblen), CKR_OK);
    assert_true(bloblen > 8 && bloblen <= sizeof(blob));
    assert_rv(p11->C_WrapKey(S, &m, wk, priv, blob, &bloblen), CKR_OK);
    assert_int_equal(bloblen % 8, 0);

    plen = ossl_kw(false, blob, bloblen, plain);
    assert_int_equal(plen, bloblen - 8);
    dlen = der_len(plain, plen);
    assert_true(dlen > 0 && dlen <= plen);
    assert_int_equal(plen, (dlen + 7) / 8 * 8); /* the least padding */
    for (size_t i = dlen; i < plen; i++) {
        assert_int_equal(plain[i], 0);
    }
    p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)dlen);
    assert_non_null(p8);
    inside = EVP_PKCS82PKEY(p8);
    assert_non_null(inside);
    outside = pkey_of(pub);
    assert_int_equal(EVP_PKEY_eq(inside, outside), 1);
    EVP_PKEY_free(inside);
    EVP_PKEY_free(outside);
    PKCS8_PRIV_KEY_INFO_free(p8);
    assert_int_equal(ossl_kw(true, plain, plen, again), bloblen);
    assert_memory_equal(again, blob, bloblen);

    /* back in: the key's own encoding gives its length */
    assert_rv(p11->C_UnwrapKey(S, &m, wk, blob, bloblen, t, N(t), &nk), CKR_OK);
    assert_rv(sign_rv(sign_mech, nk, msg, MSG_LEN, sig, &siglen), CKR_OK);
    assert_rv(verify_rv(sign_mech, pub, msg, MSG_LEN, sig, siglen), CKR_OK);

    /* a blob cut short or altered is refused, and nothing is made */
    nk = CK_INVALID_HANDLE;
    assert_rv(p11->C_UnwrapKey(S, &m, wk, blob, bloblen - 8, t, N(t), &nk),
              CKR_WRAPPED_KEY_INVALID);
    blob[bloblen / 2] ^= 1;
    assert_rv(p11->C_UnwrapKey(S, &m, wk, blob, bloblen, t, N(t), &nk),
              CKR_WRAPPED_KEY_INVALID);
    assert_int_equal(nk, CK_INVALID_HANDLE);
    OPENSSL_cleanse(plain, sizeof(plain));
    OPENSSL_cleanse(again, sizeof(again));
}

/* RSA-1024 and P-256 private keys (PKCS#8 not a multiple of 8 bytes) wrap
 * with CKM_AES_KEY_WRAP, zero-padded, and come back. */
static void test_corners_kw_private(void **state)
{
    const struct curve p256 = {"P-256", oid_p256, sizeof(oid_p256), 32};
    CK_OBJECT_HANDLE wk = aes_key(32, CKA_WRAP, CKA_UNWRAP);
    CK_OBJECT_HANDLE pub, priv;

    (void)state;
    gen_wrappable(NULL, &pub, &priv);
    kw_private_round_trip(wk, CKK_RSA, pub, priv, CKM_SHA256_RSA_PKCS);
    gen_wrappable(&p256, &pub, &priv);
    kw_private_round_trip(wk, CKK_EC, pub, priv, CKM_ECDSA_SHA256);
}

/* A 20-byte generic secret wraps as its value and four zero bytes; the
 * template's CKA_VALUE_LEN takes it back to 20 bytes. */
static void test_corners_kw_secret(void **state)
{
    static const CK_BYTE v20[20] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                    11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    CK_OBJECT_HANDLE wk = aes_key(32, CKA_WRAP, CKA_UNWRAP);
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ULONG len = 20, big = 25;
    CK_ATTRIBUTE st[] = {
        {CKA_CLASS, &cls, sizeof(cls)}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},   {CKA_VALUE, (void *)v20, sizeof(v20)},
        {CKA_SIGN, &yes, sizeof(yes)},  {CKA_EXTRACTABLE, &yes, sizeof(yes)},
    };
    CK_ATTRIBUTE ut[] = {
        {CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},       {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
    };
    CK_MECHANISM m = {CKM_AES_KEY_WRAP, NULL, 0};
    CK_MECHANISM hm = {CKM_SHA256_HMAC, NULL, 0};
    CK_BYTE blob[64], want[64], padded[24] = {0}, mac1[32], mac2[32];
    CK_ULONG bloblen = sizeof(blob), l1 = sizeof(mac1), l2 = sizeof(mac2);
    CK_OBJECT_HANDLE sk = CK_INVALID_HANDLE, nk = CK_INVALID_HANDLE;

    (void)state;
    assert_rv(p11->C_CreateObject(S, st, N(st), &sk), CKR_OK);
    assert_rv(p11->C_WrapKey(S, &m, wk, sk, blob, &bloblen), CKR_OK);
    memcpy(padded, v20, sizeof(v20));
    assert_int_equal(ossl_kw(true, padded, sizeof(padded), want), 32);
    assert_int_equal(bloblen, 32);
    assert_memory_equal(blob, want, 32);

    assert_rv(p11->C_UnwrapKey(S, &m, wk, blob, bloblen, ut, N(ut), &nk),
              CKR_OK);
    assert_int_equal(p11_get_ulong(S, nk, CKA_VALUE_LEN), 20);
    /* the same key: the same HMAC as the original */
    assert_rv(p11->C_SignInit(S, &hm, sk), CKR_OK);
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, mac1, &l1), CKR_OK);
    assert_rv(p11->C_SignInit(S, &hm, nk), CKR_OK);
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, mac2, &l2), CKR_OK);
    assert_memory_equal(mac1, mac2, 32);

    /* more than the blob holds: refused, nothing made */
    nk = CK_INVALID_HANDLE;
    ut[4].pValue = &big;
    assert_rv(p11->C_UnwrapKey(S, &m, wk, blob, bloblen, ut, N(ut), &nk),
              CKR_TEMPLATE_INCONSISTENT);
    assert_int_equal(nk, CK_INVALID_HANDLE);
    /* the cloud HSM's no-pad variant still takes whole blocks only */
    m.mechanism = CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD;
    bloblen = sizeof(blob);
    assert_rv(p11->C_WrapKey(S, &m, wk, sk, blob, &bloblen),
              CKR_KEY_SIZE_RANGE);
}

/* ------------------------------------------------------------ GCM */

/* C_Encrypt with CKM_AES_GCM (the PKCS#11 3.0 layout when bits is not
 * (CK_ULONG)-1, else the layout without ulIvBits). */
static CK_RV gcm_encrypt(CK_OBJECT_HANDLE k, CK_BYTE *iv, CK_ULONG ivlen,
                         CK_ULONG bits, CK_BYTE *out, CK_ULONG *outlen)
{
    struct {
        CK_BYTE_PTR pIv;
        CK_ULONG ulIvLen;
        CK_BYTE_PTR pAAD;
        CK_ULONG ulAADLen;
        CK_ULONG ulTagBits;
    } gs = {iv, ivlen, (CK_BYTE_PTR)aad, AAD_LEN, 128};
    CK_GCM_PARAMS g = {iv, ivlen, bits, (CK_BYTE_PTR)aad, AAD_LEN, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &g, sizeof(g)};
    CK_RV rv;

    if (bits == (CK_ULONG)-1) {
        m = (CK_MECHANISM){CKM_AES_GCM, &gs, sizeof(gs)};
    }
    rv = p11->C_EncryptInit(S, &m, k);
    if (rv != CKR_OK) {
        return rv;
    }
    return p11->C_Encrypt(S, (CK_BYTE_PTR)msg, MSG_LEN, out, outlen);
}

static CK_RV gcm_decrypt(CK_OBJECT_HANDLE k, CK_BYTE *iv, CK_ULONG ivlen,
                         CK_ULONG bits, const CK_BYTE *in, CK_ULONG inlen,
                         CK_BYTE *out, CK_ULONG *outlen)
{
    CK_GCM_PARAMS g = {iv, ivlen, bits, (CK_BYTE_PTR)aad, AAD_LEN, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &g, sizeof(g)};
    CK_RV rv = p11->C_DecryptInit(S, &m, k);

    if (rv != CKR_OK) {
        return rv;
    }
    return p11->C_Decrypt(S, (CK_BYTE_PTR)in, inlen, out, outlen);
}

/* ulIvBits says nothing: 0, the right count, a wrong count and a byte
 * count all give the ciphertext of the ulIvLen-byte IV, both ways. */
static void test_corners_gcm_ivbits(void **state)
{
    static const CK_ULONG bits[] = {0, 96, 7, 12, 1024, (CK_ULONG)-1};
    CK_OBJECT_HANDLE k = aes_key(32, CKA_ENCRYPT, CKA_DECRYPT);
    CK_BYTE iv[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
    CK_BYTE want[BUF_MAX], out[BUF_MAX], back[BUF_MAX];

    (void)state;
    assert_true(ossl_gcm(true, iv, sizeof(iv), msg, MSG_LEN, want));
    for (size_t i = 0; i < N(bits); i++) {
        CK_ULONG outlen = sizeof(out), backlen = sizeof(back);

        assert_rv(gcm_encrypt(k, iv, sizeof(iv), bits[i], out, &outlen),
                  CKR_OK);
        assert_int_equal(outlen, MSG_LEN + 16);
        assert_memory_equal(out, want, outlen);
        if (bits[i] != (CK_ULONG)-1) {
            assert_rv(gcm_decrypt(k, iv, sizeof(iv), bits[i], out, outlen, back,
                                  &backlen),
                      CKR_OK);
            assert_int_equal(backlen, MSG_LEN);
            assert_memory_equal(back, msg, MSG_LEN);
        }
    }
}

/* IVs up to OpenSSL 3.0's GCM limit (128 bytes) work and agree with
 * OpenSSL; one byte more is a parameter error, at init. */
static void test_corners_gcm_iv_lengths(void **state)
{
    static const CK_ULONG lens[] = {1, 16, 64, 127, 128};
    CK_OBJECT_HANDLE k = aes_key(32, CKA_ENCRYPT, CKA_DECRYPT);
    CK_BYTE iv[300], want[BUF_MAX], out[BUF_MAX], back[BUF_MAX];
    CK_GCM_PARAMS g = {iv, 129, 0, (CK_BYTE_PTR)aad, AAD_LEN, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &g, sizeof(g)};

    (void)state;
    for (size_t i = 0; i < sizeof(iv); i++) {
        iv[i] = (CK_BYTE)(i * 7 + 1);
    }
    for (size_t i = 0; i < N(lens); i++) {
        CK_ULONG outlen = sizeof(out), backlen = sizeof(back);

        assert_true(ossl_gcm(true, iv, lens[i], msg, MSG_LEN, want));
        assert_rv(gcm_encrypt(k, iv, lens[i], lens[i] * 8, out, &outlen),
                  CKR_OK);
        assert_int_equal(outlen, MSG_LEN + 16);
        assert_memory_equal(out, want, outlen);
        assert_rv(gcm_decrypt(k, iv, lens[i], 0, out, outlen, back, &backlen),
                  CKR_OK);
        assert_memory_equal(back, msg, MSG_LEN);
    }
    assert_rv(p11->C_EncryptInit(S, &m, k), CKR_MECHANISM_PARAM_INVALID);
    assert_rv(p11->C_DecryptInit(S, &m, k), CKR_MECHANISM_PARAM_INVALID);
    g.ulIvLen = 257;
    assert_rv(p11->C_EncryptInit(S, &m, k), CKR_MECHANISM_PARAM_INVALID);
    g.ulIvLen = 0;
    assert_rv(p11->C_EncryptInit(S, &m, k), CKR_MECHANISM_PARAM_INVALID);
}

/* By default an all-zero IV is replaced by one the token makes (written
 * back, in both layouts), and the ciphertext is under that IV. */
static void test_corners_gcm_zero_iv_generate(void **state)
{
    CK_OBJECT_HANDLE k = aes_key(32, CKA_ENCRYPT, CKA_DECRYPT);
    CK_OBJECT_HANDLE wk = aes_key(32, CKA_WRAP, CKA_UNWRAP);
    static const CK_BYTE zero[12] = {0};
    CK_BYTE out[BUF_MAX], back[BUF_MAX];
    CK_ULONG bits[] = {96, (CK_ULONG)-1};

    (void)state;
    for (size_t i = 0; i < N(bits); i++) {
        CK_BYTE iv[12] = {0};
        CK_ULONG outlen = sizeof(out);

        assert_rv(gcm_encrypt(k, iv, 12, bits[i], out, &outlen), CKR_OK);
        assert_memory_not_equal(iv, zero, 12);
        assert_true(ossl_gcm(false, iv, 12, out, outlen, back));
        assert_memory_equal(back, msg, MSG_LEN);
    }
    /* wrapping cannot hand a made IV back: refused */
    {
        CK_BYTE iv[12] = {0};
        CK_GCM_PARAMS g = {iv, 12, 96, (CK_BYTE_PTR)aad, AAD_LEN, 128};
        CK_MECHANISM m = {CKM_AES_GCM, &g, sizeof(g)};
        CK_ULONG outlen = sizeof(out);

        assert_rv(p11->C_WrapKey(S, &m, wk, k, out, &outlen),
                  CKR_MECHANISM_PARAM_INVALID);
    }
}

/* gcm_zero_iv = use: the all-zero IV is the IV (OpenSSL decrypts with it),
 * in both layouts and for wrapping too; a NULL IV is still made. */
static void test_corners_gcm_zero_iv_use(void **state)
{
    static const CK_BYTE zero[12] = {0};
    CK_BYTE out[BUF_MAX], back[BUF_MAX];
    CK_ULONG bits[] = {96, 0, (CK_ULONG)-1};
    CK_OBJECT_HANDLE k, wk, sk;

    (void)state;
    corners_start("gcm_zero_iv = use\n");
    k = aes_key(32, CKA_ENCRYPT, CKA_DECRYPT);
    wk = aes_key(32, CKA_WRAP, CKA_UNWRAP);
    for (size_t i = 0; i < N(bits); i++) {
        CK_BYTE iv[12] = {0};
        CK_ULONG outlen = sizeof(out), backlen = sizeof(back);

        assert_rv(gcm_encrypt(k, iv, 12, bits[i], out, &outlen), CKR_OK);
        assert_memory_equal(iv, zero, 12);
        assert_true(ossl_gcm(false, zero, 12, out, outlen, back));
        assert_memory_equal(back, msg, MSG_LEN);
        assert_rv(gcm_decrypt(k, iv, 12, 96, out, outlen, back, &backlen),
                  CKR_OK);
        assert_memory_equal(back, msg, MSG_LEN);
    }
    /* a NULL IV: nothing to use, the token makes one */
    {
        CK_ULONG outlen = sizeof(out);

        assert_rv(gcm_encrypt(k, NULL, 12, 96, out, &outlen), CKR_OK);
        assert_int_equal(outlen, MSG_LEN + 16);
        assert_false(ossl_gcm(false, zero, 12, out, outlen, back));
    }
    /* wrapping with the zero IV, opened by OpenSSL */
    {
        CK_BYTE iv[12] = {0};
        CK_GCM_PARAMS g = {iv, 12, 96, (CK_BYTE_PTR)aad, AAD_LEN, 128};
        CK_MECHANISM m = {CKM_AES_GCM, &g, sizeof(g)};
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        CK_KEY_TYPE kt = CKK_AES;
        CK_ATTRIBUTE st[] = {
            {CKA_CLASS, &cls, sizeof(cls)},
            {CKA_KEY_TYPE, &kt, sizeof(kt)},
            {CKA_TOKEN, &no, sizeof(no)},
            {CKA_VALUE, (void *)msg, 32},
            {CKA_EXTRACTABLE, &yes, sizeof(yes)},
        };
        CK_ULONG outlen = sizeof(out);

        assert_rv(p11->C_CreateObject(S, st, N(st), &sk), CKR_OK);
        assert_rv(p11->C_WrapKey(S, &m, wk, sk, out, &outlen), CKR_OK);
        assert_int_equal(outlen, 32 + 16);
        assert_true(ossl_gcm(false, zero, 12, out, outlen, back));
        assert_memory_equal(back, msg, 32);
    }
}

/* ------------------------------------------------------------ AEAD parts */

/*
 * Decrypts (or encrypts) in the way PyKCS11's decryptUpdate/decryptFinal
 * drive a token: each call first with a NULL buffer to learn the size, then
 * with a buffer of exactly that size; a size of 0 means an empty list,
 * which the binding passes as NULL again. Chunks of step bytes.
 */
static size_t bindings_way(bool enc, const CK_BYTE *in, size_t inlen,
                           size_t step, CK_BYTE *out)
{
    CK_C_DecryptUpdate update =
        enc ? p11->C_EncryptUpdate : p11->C_DecryptUpdate;
    CK_C_DecryptFinal final = enc ? p11->C_EncryptFinal : p11->C_DecryptFinal;
    size_t done = 0, got = 0;
    CK_ULONG len;
    CK_BYTE *buf;

    while (done < inlen) {
        CK_ULONG n = inlen - done < step ? inlen - done : step;

        len = 0;
        assert_rv(update(S, (CK_BYTE_PTR)in + done, n, NULL, &len), CKR_OK);
        buf = len > 0 ? xmalloc(len) : NULL;
        assert_rv(update(S, (CK_BYTE_PTR)in + done, n, buf, &len), CKR_OK);
        if (buf != NULL) {
            memcpy(out + got, buf, len);
            got += len;
            free(buf);
            done += n; /* a real buffer: the chunk was taken */
        }
        if (buf == NULL && len == 0) {
            break; /* the binding can never hand this chunk over */
        }
    }
    len = 0;
    assert_rv(final(S, NULL, &len), CKR_OK);
    buf = len > 0 ? xmalloc(len) : NULL;
    if (buf != NULL) {
        assert_rv(final(S, buf, &len), CKR_OK);
        memcpy(out + got, buf, len);
        got += len;
        free(buf);
    } else {
        /* an empty result: the binding passes NULL; end the operation */
        CK_BYTE one[1];

        len = sizeof(one);
        (void) final(S, one, &len);
    }
    return got;
}

static CK_OBJECT_HANDLE chacha_key(void)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_CHACHA20;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},   {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},     {CKA_VALUE, (void *)k256, 32},
        {CKA_ENCRYPT, &yes, sizeof(yes)}, {CKA_DECRYPT, &yes, sizeof(yes)},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

    assert_rv(p11->C_CreateObject(S, t, N(t), &h), CKR_OK);
    return h;
}

struct aead_case {
    const char *name;
    CK_MECHANISM m;
    CK_OBJECT_HANDLE key;
};

/* GCM, CCM and ChaCha20-Poly1305 multi-part decryption driven as the
 * bindings drive it gives the plaintext, in chunks shorter and longer
 * than the tag; CCM encryption likewise. */
static void test_corners_aead_bindings(void **state)
{
    static const CK_BYTE nonce[13] = {1, 2, 3,  4,  5,  6, 7,
                                      8, 9, 10, 11, 12, 13};
    CK_GCM_PARAMS g = {(CK_BYTE_PTR)nonce, 12,      96,
                       (CK_BYTE_PTR)aad,   AAD_LEN, 128};
    CK_CCM_PARAMS c = {
        MSG_LEN, (CK_BYTE_PTR)nonce, 13, (CK_BYTE_PTR)aad, AAD_LEN, 16};
    CK_SALSA20_CHACHA20_POLY1305_PARAMS cp = {(CK_BYTE_PTR)nonce, 12,
                                              (CK_BYTE_PTR)aad, AAD_LEN};
    CK_OBJECT_HANDLE aes = aes_key(32, CKA_ENCRYPT, CKA_DECRYPT);
    CK_OBJECT_HANDLE cha = chacha_key();
    static const size_t steps[] = {1, 7, 16, 40, 1000};
    CK_BYTE enc[BUF_MAX], out[BUF_MAX];
    struct aead_case cases[] = {
        {"GCM", {CKM_AES_GCM, &g, sizeof(g)}, aes},
        {"CCM", {CKM_AES_CCM, &c, sizeof(c)}, aes},
        {"ChaCha20-Poly1305", {CKM_CHACHA20_POLY1305, &cp, sizeof(cp)}, cha},
    };

    (void)state;
    for (size_t i = 0; i < N(cases); i++) {
        CK_ULONG enclen = sizeof(enc);

        assert_rv(p11->C_EncryptInit(S, &cases[i].m, cases[i].key), CKR_OK);
        assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, MSG_LEN, enc, &enclen),
                  CKR_OK);
        assert_int_equal(enclen, MSG_LEN + 16);
        for (size_t j = 0; j < N(steps); j++) {
            size_t got;

            assert_rv(p11->C_DecryptInit(S, &cases[i].m, cases[i].key), CKR_OK);
            got = bindings_way(false, enc, enclen, steps[j], out);
            if (got != MSG_LEN || memcmp(out, msg, MSG_LEN) != 0) {
                fail_msg("%s in chunks of %zu: %zu bytes back", cases[i].name,
                         steps[j], got);
            }
            assert_rv(p11->C_EncryptInit(S, &cases[i].m, cases[i].key), CKR_OK);
            got = bindings_way(true, msg, MSG_LEN, steps[j], out);
            if (got != enclen || memcmp(out, enc, enclen) != 0) {
                fail_msg("%s encrypted in chunks of %zu: %zu bytes",
                         cases[i].name, steps[j], got);
            }
        }
    }
}

/* The two-call convention around the bound: the NULL call answers the
 * input length, a shorter buffer is CKR_BUFFER_TOO_SMALL with that length
 * and takes nothing (the operation goes on), the one-shot answer stays
 * exact; a bad tag still releases nothing. */
static void test_corners_aead_two_call(void **state)
{
    static const CK_BYTE iv[12] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8};
    CK_GCM_PARAMS g = {(CK_BYTE_PTR)iv, 12, 96, (CK_BYTE_PTR)aad, AAD_LEN, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &g, sizeof(g)};
    CK_OBJECT_HANDLE k = aes_key(32, CKA_ENCRYPT, CKA_DECRYPT);
    CK_BYTE enc[BUF_MAX], out[BUF_MAX];
    CK_ULONG enclen = sizeof(enc), len, got = 0;

    (void)state;
    assert_rv(p11->C_EncryptInit(S, &m, k), CKR_OK);
    assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, MSG_LEN, enc, &enclen),
              CKR_OK);

    /* one-shot: the exact length */
    assert_rv(p11->C_DecryptInit(S, &m, k), CKR_OK);
    len = 0;
    assert_rv(p11->C_Decrypt(S, enc, enclen, NULL, &len), CKR_OK);
    assert_int_equal(len, MSG_LEN);
    assert_rv(p11->C_Decrypt(S, enc, enclen, out, &len), CKR_OK);
    assert_memory_equal(out, msg, MSG_LEN);

    /* parts: 10 bytes, then the rest */
    assert_rv(p11->C_DecryptInit(S, &m, k), CKR_OK);
    len = 0;
    assert_rv(p11->C_DecryptUpdate(S, enc, 10, NULL, &len), CKR_OK);
    assert_int_equal(len, 10);
    len = 9;
    assert_rv(p11->C_DecryptUpdate(S, enc, 10, out, &len),
              CKR_BUFFER_TOO_SMALL);
    assert_int_equal(len, 10);
    len = 10;
    assert_rv(p11->C_DecryptUpdate(S, enc, 10, out, &len), CKR_OK);
    got += len;
    len = sizeof(out) - got;
    assert_rv(p11->C_DecryptUpdate(S, enc + 10, enclen - 10, out + got, &len),
              CKR_OK);
    got += len;
    len = 0;
    assert_rv(p11->C_DecryptFinal(S, NULL, &len), CKR_OK);
    assert_int_equal(got + len, MSG_LEN);
    len = 3;
    assert_rv(p11->C_DecryptFinal(S, out + got, &len), CKR_BUFFER_TOO_SMALL);
    len = sizeof(out) - got;
    assert_rv(p11->C_DecryptFinal(S, out + got, &len), CKR_OK);
    got += len;
    assert_int_equal(got, MSG_LEN);
    assert_memory_equal(out, msg, MSG_LEN);

    /* a bad tag: the bound is no licence to release anything */
    enc[enclen - 1] ^= 1;
    memset(out, 0, sizeof(out));
    assert_rv(p11->C_DecryptInit(S, &m, k), CKR_OK);
    len = enclen;
    assert_rv(p11->C_DecryptUpdate(S, enc, enclen, out, &len), CKR_OK);
    assert_int_equal(len, 0);
    len = sizeof(out);
    assert_rv(p11->C_DecryptFinal(S, out, &len), CKR_ENCRYPTED_DATA_INVALID);
    for (size_t i = 0; i < sizeof(out); i++) {
        assert_int_equal(out[i], 0);
    }
}

/* ------------------------------------------------------------ curves */

static void gen_ec(const struct curve *c, CK_OBJECT_HANDLE *pub,
                   CK_OBJECT_HANDLE *priv)
{
    CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE tpub[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_EC_PARAMS, (void *)c->oid, c->oid_len},
        {CKA_VERIFY, &yes, sizeof(yes)},
    };
    /* Not sensitive: the ECDH checks read the secret, and what a
     * sensitive key derives is sensitive. */
    CK_ATTRIBUTE tpriv[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_DERIVE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &no, sizeof(no)},
    };
    CK_RV rv = p11->C_GenerateKeyPair(S, &m, tpub, N(tpub), tpriv, N(tpriv),
                                      pub, priv);

    if (rv != CKR_OK) {
        fail_msg("key pair on %s: %s", c->name, p11_rv_name(rv));
    }
}

/* ECDH1 (CKD_NULL) of base with a raw peer point: the secret's bytes. */
static void ecdh(CK_OBJECT_HANDLE base, const CK_BYTE *peer, size_t peerlen,
                 CK_ULONG len, CK_BYTE *out)
{
    CK_ECDH1_DERIVE_PARAMS p = {CKD_NULL, 0, NULL, (CK_ULONG)peerlen,
                                (CK_BYTE_PTR)peer};
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof(p)};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_SENSITIVE, &no, sizeof(no)},
        {CKA_EXTRACTABLE, &yes, sizeof(yes)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

    assert_rv(p11->C_DeriveKey(S, &m, base, t, N(t), &h), CKR_OK);
    assert_int_equal(p11_get_bytes(S, h, CKA_VALUE, out, len), len);
}

/* The raw public point of a token key (CKA_EC_POINT's OCTET STRING). */
static size_t raw_point(CK_OBJECT_HANDLE pub, CK_BYTE *out)
{
    CK_BYTE der[256];
    CK_ULONG len = p11_get_bytes(S, pub, CKA_EC_POINT, der, sizeof(der));
    size_t hdr = der[1] < 0x80 ? 2 : 2 + (der[1] & 0x7f);

    assert_int_equal(der[0], 0x04);
    memcpy(out, der + hdr, len - hdr);
    return len - hdr;
}

static const struct {
    CK_MECHANISM_TYPE mech;
    const char *md; /* NULL: CKM_ECDSA over a SHA-256 hash */
} ecdsa_mechs[] = {
    {CKM_ECDSA, NULL},
    {CKM_ECDSA_SHA1, "SHA1"},
    {CKM_ECDSA_SHA224, "SHA224"},
    {CKM_ECDSA_SHA256, "SHA256"},
    {CKM_ECDSA_SHA384, "SHA384"},
    {CKM_ECDSA_SHA512, "SHA512"},
    {CKM_ECDSA_SHA3_224, "SHA3-224"},
    {CKM_ECDSA_SHA3_256, "SHA3-256"},
    {CKM_ECDSA_SHA3_384, "SHA3-384"},
    {CKM_ECDSA_SHA3_512, "SHA3-512"},
};

/* Each brainpool curve: generation, CKA_EC_PARAMS as the OID, every ECDSA
 * variant signed by the token and checked by the token and by OpenSSL, a
 * flipped bit refused; ECDH between two token keys and with OpenSSL. */
static void test_corners_brainpool(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(brainpool); i++) {
        const struct curve *c = &brainpool[i];
        CK_OBJECT_HANDLE pa, ka, pb, kb;
        CK_BYTE sig[256], h[32], params[32], a[256], b[256], s1[64], s2[64];
        CK_ULONG siglen;
        size_t alen, blen, olen = sizeof(s2);
        unsigned int hl = 0;
        EVP_PKEY *k, *ok, *peer;
        EVP_PKEY_CTX *pctx;

        gen_ec(c, &pa, &ka);
        assert_int_equal(
            p11_get_bytes(S, pa, CKA_EC_PARAMS, params, sizeof(params)),
            c->oid_len);
        assert_memory_equal(params, c->oid, c->oid_len);
        k = pkey_of(pa);
        assert_int_equal(EVP_PKEY_get_bits(k), (int)c->len * 8);
        for (size_t j = 0; j < N(ecdsa_mechs); j++) {
            const CK_BYTE *d = msg;
            size_t dlen = MSG_LEN;

            if (ecdsa_mechs[j].md == NULL) {
                assert_int_equal(
                    EVP_Digest(msg, MSG_LEN, h, &hl, EVP_sha256(), NULL), 1);
                d = h;
                dlen = hl;
            }
            siglen = sizeof(sig);
            assert_rv(sign_rv(ecdsa_mechs[j].mech, ka, d, dlen, sig, &siglen),
                      CKR_OK);
            assert_int_equal(siglen, 2 * c->len);
            assert_rv(verify_rv(ecdsa_mechs[j].mech, pa, d, dlen, sig, siglen),
                      CKR_OK);
            if (!ossl_verify_ecdsa(k, ecdsa_mechs[j].md, d, dlen, sig,
                                   siglen)) {
                fail_msg("%s, mechanism 0x%lx: OpenSSL refuses the signature",
                         c->name, (unsigned long)ecdsa_mechs[j].mech);
            }
            sig[siglen - 1] ^= 1;
            assert_rv(verify_rv(ecdsa_mechs[j].mech, pa, d, dlen, sig, siglen),
                      CKR_SIGNATURE_INVALID);
        }

        /* ECDH: two token keys agree, and so does OpenSSL */
        gen_ec(c, &pb, &kb);
        alen = raw_point(pa, a);
        blen = raw_point(pb, b);
        assert_int_equal(alen, 1 + 2 * c->len);
        ecdh(ka, b, blen, c->len, s1);
        ecdh(kb, a, alen, c->len, s2);
        assert_memory_equal(s1, s2, c->len);
        ok = EVP_PKEY_Q_keygen(NULL, NULL, "EC", c->name);
        assert_non_null(ok);
        assert_int_equal(EVP_PKEY_get_octet_string_param(
                             ok, OSSL_PKEY_PARAM_PUB_KEY, b, sizeof(b), &blen),
                         1);
        ecdh(ka, b, blen, c->len, s1);
        peer = pkey_of(pa);
        pctx = EVP_PKEY_CTX_new_from_pkey(NULL, ok, NULL);
        assert_non_null(pctx);
        assert_int_equal(EVP_PKEY_derive_init(pctx), 1);
        assert_int_equal(EVP_PKEY_derive_set_peer(pctx, peer), 1);
        assert_int_equal(EVP_PKEY_derive(pctx, s2, &olen), 1);
        assert_int_equal(olen, c->len);
        assert_memory_equal(s1, s2, c->len);
        EVP_PKEY_CTX_free(pctx);
        EVP_PKEY_free(peer);
        EVP_PKEY_free(ok);
        EVP_PKEY_free(k);
    }
}

/* A brainpool key made by OpenSSL comes in through C_CreateObject (both
 * halves): the token signs with the private half what OpenSSL verifies,
 * and verifies with the public half what OpenSSL signs. */
static void test_corners_brainpool_import(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(brainpool); i++) {
        const struct curve *c = &brainpool[i];
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", c->name);
        CK_OBJECT_CLASS pubc = CKO_PUBLIC_KEY, privc = CKO_PRIVATE_KEY;
        CK_KEY_TYPE kt = CKK_EC;
        CK_BYTE pt[256], d[128], ptder[260], sig[256], der[256];
        size_t ptlen = 0, derlen = sizeof(der), hdr;
        BIGNUM *bn = NULL;
        CK_ULONG siglen = sizeof(sig);
        CK_OBJECT_HANDLE hpub, hpriv;
        EVP_MD_CTX *mctx = EVP_MD_CTX_new();
        const unsigned char *p = der;
        ECDSA_SIG *es;
        const BIGNUM *r, *s;

        assert_non_null(k);
        assert_non_null(mctx);
        assert_int_equal(
            EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt,
                                            sizeof(pt), &ptlen),
            1);
        assert_int_equal(
            EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &bn), 1);
        assert_int_equal(BN_bn2binpad(bn, d, (int)c->len), (int)c->len);
        BN_clear_free(bn);
        /* CKA_EC_POINT as a DER OCTET STRING */
        ptder[0] = 0x04;
        hdr = 2;
        if (ptlen < 0x80) {
            ptder[1] = (CK_BYTE)ptlen;
        } else {
            ptder[1] = 0x81;
            ptder[2] = (CK_BYTE)ptlen;
            hdr = 3;
        }
        memcpy(ptder + hdr, pt, ptlen);
        {
            CK_ATTRIBUTE tpub[] = {
                {CKA_CLASS, &pubc, sizeof(pubc)},
                {CKA_KEY_TYPE, &kt, sizeof(kt)},
                {CKA_TOKEN, &no, sizeof(no)},
                {CKA_VERIFY, &yes, sizeof(yes)},
                {CKA_EC_PARAMS, (void *)c->oid, c->oid_len},
                {CKA_EC_POINT, ptder, ptlen + hdr},
            };
            CK_ATTRIBUTE tpriv[] = {
                {CKA_CLASS, &privc, sizeof(privc)},
                {CKA_KEY_TYPE, &kt, sizeof(kt)},
                {CKA_TOKEN, &no, sizeof(no)},
                {CKA_SIGN, &yes, sizeof(yes)},
                {CKA_EC_PARAMS, (void *)c->oid, c->oid_len},
                {CKA_VALUE, d, c->len},
            };

            assert_rv(p11->C_CreateObject(S, tpub, N(tpub), &hpub), CKR_OK);
            assert_rv(p11->C_CreateObject(S, tpriv, N(tpriv), &hpriv), CKR_OK);
        }
        OPENSSL_cleanse(d, sizeof(d));
        assert_rv(sign_rv(CKM_ECDSA_SHA384, hpriv, msg, MSG_LEN, sig, &siglen),
                  CKR_OK);
        assert_true(ossl_verify_ecdsa(k, "SHA384", msg, MSG_LEN, sig, siglen));
        /* and the other way round */
        assert_int_equal(
            EVP_DigestSignInit_ex(mctx, NULL, "SHA384", NULL, NULL, k, NULL),
            1);
        assert_int_equal(EVP_DigestSign(mctx, der, &derlen, msg, MSG_LEN), 1);
        es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
        assert_non_null(es);
        ECDSA_SIG_get0(es, &r, &s);
        assert_int_equal(BN_bn2binpad(r, sig, (int)c->len), (int)c->len);
        assert_int_equal(BN_bn2binpad(s, sig + c->len, (int)c->len),
                         (int)c->len);
        assert_rv(
            verify_rv(CKM_ECDSA_SHA384, hpub, msg, MSG_LEN, sig, 2 * c->len),
            CKR_OK);
        ECDSA_SIG_free(es);
        EVP_MD_CTX_free(mctx);
        EVP_PKEY_free(k);
    }
}

/* P-256 with explicit parameters, DER (ECParameters), made by OpenSSL. */
static size_t explicit_p256(CK_BYTE *out, size_t room)
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    unsigned char *der = NULL;
    int len;

    assert_non_null(g);
    EC_GROUP_set_asn1_flag(g, OPENSSL_EC_EXPLICIT_CURVE);
    len = i2d_ECPKParameters(g, &der);
    assert_true(len > 0 && (size_t)len <= room);
    memcpy(out, der, (size_t)len);
    OPENSSL_free(der);
    EC_GROUP_free(g);
    return (size_t)len;
}

/* A curve Nimbus does not offer (secp192k1, explicit parameters, the
 * implicitlyCA NULL) is refused with CKR_CURVE_NOT_SUPPORTED where the key
 * would be made, and nothing is stored; garbage stays a value error. */
static void test_corners_curve_refused(void **state)
{
    static const CK_BYTE null_params[] = {0x05, 0x00};
    static const CK_BYTE garbage[] = {0x04, 0x02, 0x01, 0x02};
    CK_BYTE expl[512], pt[1 + 2 * 32], ptder[2 + sizeof(pt)], d[32];
    size_t explen = explicit_p256(expl, sizeof(expl));
    struct {
        const CK_BYTE *params;
        size_t len;
        CK_RV want;
    } cases[] = {
        {oid_k192, sizeof(oid_k192), CKR_CURVE_NOT_SUPPORTED},
        {expl, explen, CKR_CURVE_NOT_SUPPORTED},
        {null_params, sizeof(null_params), CKR_CURVE_NOT_SUPPORTED},
        {garbage, sizeof(garbage), CKR_ATTRIBUTE_VALUE_INVALID},
    };
    CK_OBJECT_CLASS pubc = CKO_PUBLIC_KEY, privc = CKO_PRIVATE_KEY;
    CK_KEY_TYPE kt = CKK_EC;
    CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ULONG before;

    (void)state;
    /* a point and a scalar of the right sizes, so only the curve is wrong */
    memset(pt, 0x11, sizeof(pt));
    pt[0] = 0x04;
    ptder[0] = 0x04;
    ptder[1] = sizeof(pt);
    memcpy(ptder + 2, pt, sizeof(pt));
    memset(d, 0x22, sizeof(d));
    before = p11_count_all(S);
    for (size_t i = 0; i < N(cases); i++) {
        CK_ATTRIBUTE tpub[] = {
            {CKA_CLASS, &pubc, sizeof(pubc)},
            {CKA_KEY_TYPE, &kt, sizeof(kt)},
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_EC_PARAMS, (void *)cases[i].params, cases[i].len},
            {CKA_EC_POINT, ptder, sizeof(ptder)},
        };
        CK_ATTRIBUTE tpriv[] = {
            {CKA_CLASS, &privc, sizeof(privc)},
            {CKA_KEY_TYPE, &kt, sizeof(kt)},
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_EC_PARAMS, (void *)cases[i].params, cases[i].len},
            {CKA_VALUE, d, sizeof(d)},
        };
        CK_ATTRIBUTE gpub[] = {
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_EC_PARAMS, (void *)cases[i].params, cases[i].len},
        };
        CK_ATTRIBUTE gpriv[] = {{CKA_TOKEN, &yes, sizeof(yes)}};
        CK_OBJECT_HANDLE h = CK_INVALID_HANDLE, h2 = CK_INVALID_HANDLE;
        int fails = 0;

        expect_rv(fails, p11->C_CreateObject(S, tpub, N(tpub), &h),
                  cases[i].want);
        expect_rv(fails, p11->C_CreateObject(S, tpriv, N(tpriv), &h),
                  cases[i].want);
        expect_rv(fails,
                  p11->C_GenerateKeyPair(S, &m, gpub, N(gpub), gpriv, N(gpriv),
                                         &h, &h2),
                  cases[i].want);
        if (fails > 0) {
            fail_msg("EC_PARAMS case %zu", i);
        }
    }
    assert_int_equal(p11_count_all(S), before);
    /* still there after a restart: nothing half-made in the store */
    p11_restart();
    S = p11_open_rw();
    p11_login_cu(S, "alice", P11_ALICE_PW);
    assert_int_equal(p11_count_all(S), before);
}

int p11_group_corners(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, p11_setup, p11_teardown)
#define C(f) cmocka_unit_test_setup_teardown(f, setup_corners, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_corners_config),
        T(test_corners_servers_unavailable),
        T(test_corners_version),
        C(test_corners_kw_private),
        C(test_corners_kw_secret),
        C(test_corners_gcm_ivbits),
        C(test_corners_gcm_iv_lengths),
        C(test_corners_gcm_zero_iv_generate),
        T(test_corners_gcm_zero_iv_use),
        C(test_corners_aead_bindings),
        C(test_corners_aead_two_call),
        C(test_corners_brainpool),
        C(test_corners_brainpool_import),
        C(test_corners_curve_refused),
    };
#undef C
#undef T

    return cmocka_run_group_tests_name("spec corners", tests, NULL, NULL);
}
