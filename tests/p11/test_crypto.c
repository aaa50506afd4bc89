/*
 * test_crypto.c - the crypto calls through the module (issue 3): the
 * mechanism list, digests, RSA, EC, EdDSA, ECDH/X25519 and HMAC round trips
 * for each key size class, signatures checked by OpenSSL outside the token
 * and OpenSSL's signatures checked by the token, generated keys'
 * attributes, template errors, the operation state machine and every error
 * code of the issue, ownership between two CUs, the permission table for
 * the other roles, and two threads signing on two sessions.
 */
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "p11util.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))
#define BOGUS_HANDLE ((CK_OBJECT_HANDLE)0x7777777UL)
#define SIG_MAX 1024
/* Longer than the module accepts for a mechanism parameter (4 KiB). */
#define MOD_PARAM_TEST_MAX 4100

static CK_BBOOL yes = CK_TRUE;
static CK_BBOOL no = CK_FALSE;

/* The fixture's session: alice logged in, RW. */
static CK_SESSION_HANDLE S;

/* DER OIDs of the curves. */
static const CK_BYTE oid_p224[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x21};
static const CK_BYTE oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                   0xce, 0x3d, 0x03, 0x01, 0x07};
static const CK_BYTE oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const CK_BYTE oid_p521[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};
static const CK_BYTE oid_k256[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a};
static const CK_BYTE oid_ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const CK_BYTE oid_ed448[] = {0x06, 0x03, 0x2b, 0x65, 0x71};
static const CK_BYTE oid_x25519[] = {0x06, 0x03, 0x2b, 0x65, 0x6e};
static const CK_BYTE oid_x448[] = {0x06, 0x03, 0x2b, 0x65, 0x6f};

struct curve {
    const char *name; /* OpenSSL's */
    const CK_BYTE *oid;
    size_t oid_len;
    size_t len; /* bytes of the order (ECDSA r, s) or of the raw key */
};

static const struct curve c_p224 = {"P-224", oid_p224, sizeof(oid_p224), 28};
static const struct curve c_p256 = {"P-256", oid_p256, sizeof(oid_p256), 32};
static const struct curve c_p384 = {"P-384", oid_p384, sizeof(oid_p384), 48};
static const struct curve c_p521 = {"P-521", oid_p521, sizeof(oid_p521), 66};
static const struct curve c_k256 = {"secp256k1", oid_k256, sizeof(oid_k256),
                                    32};
static const struct curve c_ed25519 = {"ED25519", oid_ed25519,
                                       sizeof(oid_ed25519), 32};
static const struct curve c_ed448 = {"ED448", oid_ed448, sizeof(oid_ed448), 57};
static const struct curve c_x25519 = {"X25519", oid_x25519, sizeof(oid_x25519),
                                      32};
static const struct curve c_x448 = {"X448", oid_x448, sizeof(oid_x448), 56};

/* Hashes: the digest mechanism and the mechanisms built on it. */
struct hash {
    const char *name; /* OpenSSL's */
    size_t len;
    CK_MECHANISM_TYPE digest;
    CK_MECHANISM_TYPE rsa_pkcs;
    CK_MECHANISM_TYPE rsa_pss;
    CK_MECHANISM_TYPE ecdsa;
    CK_MECHANISM_TYPE hmac;
    CK_MECHANISM_TYPE hmac_general;
    CK_RSA_PKCS_MGF_TYPE mgf;
    const CK_BYTE *digest_info; /* DER prefix of a DigestInfo */
    size_t digest_info_len;
};

static const CK_BYTE di_sha1[] = {0x30, 0x21, 0x30, 0x09, 0x06,
                                  0x05, 0x2b, 0x0e, 0x03, 0x02,
                                  0x1a, 0x05, 0x00, 0x04, 0x14};
static const CK_BYTE di_sha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                    0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                    0x01, 0x05, 0x00, 0x04, 0x20};

static const struct hash hashes[] = {
    {"SHA1", 20, CKM_SHA_1, CKM_SHA1_RSA_PKCS, CKM_SHA1_RSA_PKCS_PSS,
     CKM_ECDSA_SHA1, CKM_SHA_1_HMAC, CKM_SHA_1_HMAC_GENERAL, CKG_MGF1_SHA1,
     di_sha1, sizeof(di_sha1)},
    {"SHA224", 28, CKM_SHA224, CKM_SHA224_RSA_PKCS, CKM_SHA224_RSA_PKCS_PSS,
     CKM_ECDSA_SHA224, CKM_SHA224_HMAC, CKM_SHA224_HMAC_GENERAL,
     CKG_MGF1_SHA224, NULL, 0},
    {"SHA256", 32, CKM_SHA256, CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS,
     CKM_ECDSA_SHA256, CKM_SHA256_HMAC, CKM_SHA256_HMAC_GENERAL,
     CKG_MGF1_SHA256, di_sha256, sizeof(di_sha256)},
    {"SHA384", 48, CKM_SHA384, CKM_SHA384_RSA_PKCS, CKM_SHA384_RSA_PKCS_PSS,
     CKM_ECDSA_SHA384, CKM_SHA384_HMAC, CKM_SHA384_HMAC_GENERAL,
     CKG_MGF1_SHA384, NULL, 0},
    {"SHA512", 64, CKM_SHA512, CKM_SHA512_RSA_PKCS, CKM_SHA512_RSA_PKCS_PSS,
     CKM_ECDSA_SHA512, CKM_SHA512_HMAC, CKM_SHA512_HMAC_GENERAL,
     CKG_MGF1_SHA512, NULL, 0},
    {"SHA3-224", 28, CKM_SHA3_224, CKM_SHA3_224_RSA_PKCS,
     CKM_SHA3_224_RSA_PKCS_PSS, CKM_ECDSA_SHA3_224, 0, 0, CKG_MGF1_SHA3_224,
     NULL, 0},
    {"SHA3-256", 32, CKM_SHA3_256, CKM_SHA3_256_RSA_PKCS,
     CKM_SHA3_256_RSA_PKCS_PSS, CKM_ECDSA_SHA3_256, 0, 0, CKG_MGF1_SHA3_256,
     NULL, 0},
    {"SHA3-384", 48, CKM_SHA3_384, CKM_SHA3_384_RSA_PKCS,
     CKM_SHA3_384_RSA_PKCS_PSS, CKM_ECDSA_SHA3_384, 0, 0, CKG_MGF1_SHA3_384,
     NULL, 0},
    {"SHA3-512", 64, CKM_SHA3_512, CKM_SHA3_512_RSA_PKCS,
     CKM_SHA3_512_RSA_PKCS_PSS, CKM_ECDSA_SHA3_512, 0, 0, CKG_MGF1_SHA3_512,
     NULL, 0},
};

#define H_SHA1 (&hashes[0])
#define H_SHA256 (&hashes[2])
#define H_SHA384 (&hashes[3])

static const CK_BYTE msg[] = "The quick brown fox jumps over the lazy dog";
#define MSG_LEN (sizeof(msg) - 1)

/* ------------------------------------------------------------ fixture */

static int setup_crypto(void **state)
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

/* ------------------------------------------------------------ helpers */

static void *xmalloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);

    assert_non_null(p);
    return p;
}

/* A byte attribute, malloc'd (asserts CKR_OK). */
static CK_BYTE *get_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                         CK_ATTRIBUTE_TYPE type, CK_ULONG *len)
{
    CK_ATTRIBUTE a = {type, NULL, 0};

    assert_rv(p11->C_GetAttributeValue(s, h, &a, 1), CKR_OK);
    assert_true(a.ulValueLen != CK_UNAVAILABLE_INFORMATION);
    a.pValue = xmalloc(a.ulValueLen);
    assert_rv(p11->C_GetAttributeValue(s, h, &a, 1), CKR_OK);
    *len = a.ulValueLen;
    return a.pValue;
}

static CK_RV gen_pair(CK_MECHANISM_TYPE mt, CK_ATTRIBUTE *pub, CK_ULONG npub,
                      CK_ATTRIBUTE *priv, CK_ULONG npriv,
                      CK_OBJECT_HANDLE *hpub, CK_OBJECT_HANDLE *hpriv)
{
    CK_MECHANISM m = {mt, NULL, 0};

    *hpub = CK_INVALID_HANDLE;
    *hpriv = CK_INVALID_HANDLE;
    return p11->C_GenerateKeyPair(S, &m, pub, npub, priv, npriv, hpub, hpriv);
}

static void gen_rsa_exp(CK_ULONG bits, const CK_BYTE *e, size_t elen,
                        CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    CK_ATTRIBUTE tpub[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_VERIFY, &yes, sizeof(yes)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_MODULUS_BITS, &bits, sizeof(bits)},
        {CKA_PUBLIC_EXPONENT, (void *)e, elen},
    };
    CK_ATTRIBUTE tpriv[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
    };

    assert_rv(gen_pair(CKM_RSA_PKCS_KEY_PAIR_GEN, tpub, N(tpub), tpriv,
                       N(tpriv), pub, priv),
              CKR_OK);
    assert_true(*pub != CK_INVALID_HANDLE && *priv != CK_INVALID_HANDLE);
    assert_true(*pub != *priv);
}

static const CK_BYTE e65537[] = {0x01, 0x00, 0x01};

static void gen_rsa(CK_ULONG bits, CK_OBJECT_HANDLE *pub,
                    CK_OBJECT_HANDLE *priv)
{
    gen_rsa_exp(bits, e65537, sizeof(e65537), pub, priv);
}

/* EC, Edwards or Montgomery pair (mt says which) on curve c; the private
 * key sensitive or not (a derivation from a sensitive key is sensitive). */
static void gen_ec_sens(CK_MECHANISM_TYPE mt, const struct curve *c,
                        CK_BBOOL sensitive, CK_OBJECT_HANDLE *pub,
                        CK_OBJECT_HANDLE *priv)
{
    bool derive = mt == CKM_EC_MONTGOMERY_KEY_PAIR_GEN;
    CK_ATTRIBUTE tpub[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_EC_PARAMS, (void *)c->oid, c->oid_len},
        {derive ? CKA_DERIVE : CKA_VERIFY, &yes, sizeof(yes)},
    };
    CK_ATTRIBUTE tpriv[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_SENSITIVE, &sensitive, sizeof(sensitive)},
        {derive ? CKA_DERIVE : CKA_SIGN, &yes, sizeof(yes)},
        {CKA_DERIVE, &yes, sizeof(yes)},
    };
    CK_RV rv = gen_pair(mt, tpub, N(tpub), tpriv,
                        mt == CKM_EC_KEY_PAIR_GEN ? 4 : 3, pub, priv);

    if (rv != CKR_OK) {
        print_error("key pair generation on %s: %s\n", c->name,
                    p11_rv_name(rv));
    }
    assert_rv(rv, CKR_OK);
}

static void gen_ec_mech(CK_MECHANISM_TYPE mt, const struct curve *c,
                        CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    gen_ec_sens(mt, c, CK_TRUE, pub, priv);
}

static void gen_ec(const struct curve *c, CK_OBJECT_HANDLE *pub,
                   CK_OBJECT_HANDLE *priv)
{
    gen_ec_mech(CKM_EC_KEY_PAIR_GEN, c, pub, priv);
}

static CK_RV sign_rv(CK_MECHANISM *m, CK_OBJECT_HANDLE key, const CK_BYTE *d,
                     size_t dlen, CK_BYTE *sig, CK_ULONG *siglen)
{
    CK_RV rv = p11->C_SignInit(S, m, key);

    if (rv != CKR_OK) {
        return rv;
    }
    return p11->C_Sign(S, (CK_BYTE_PTR)d, dlen, sig, siglen);
}

/* Signs (asserting success); returns the signature length. */
static CK_ULONG sign(CK_MECHANISM *m, CK_OBJECT_HANDLE key, const CK_BYTE *d,
                     size_t dlen, CK_BYTE *sig)
{
    CK_ULONG len = SIG_MAX;
    CK_RV rv = sign_rv(m, key, d, dlen, sig, &len);

    if (rv != CKR_OK) {
        print_error("sign with mechanism 0x%lx: %s\n",
                    (unsigned long)m->mechanism, p11_rv_name(rv));
    }
    assert_rv(rv, CKR_OK);
    assert_true(len > 0 && len <= SIG_MAX);
    return len;
}

/* Multi-part sign in three pieces. */
static CK_ULONG sign_parts(CK_MECHANISM *m, CK_OBJECT_HANDLE key,
                           const CK_BYTE *d, size_t dlen, CK_BYTE *sig)
{
    CK_ULONG len = SIG_MAX;

    assert_rv(p11->C_SignInit(S, m, key), CKR_OK);
    assert_rv(p11->C_SignUpdate(S, (CK_BYTE_PTR)d, 5), CKR_OK);
    assert_rv(p11->C_SignUpdate(S, NULL, 0), CKR_OK);
    assert_rv(p11->C_SignUpdate(S, (CK_BYTE_PTR)d + 5, dlen - 5), CKR_OK);
    assert_rv(p11->C_SignFinal(S, sig, &len), CKR_OK);
    return len;
}

static CK_RV verify_rv(CK_MECHANISM *m, CK_OBJECT_HANDLE key, const CK_BYTE *d,
                       size_t dlen, const CK_BYTE *sig, CK_ULONG siglen)
{
    CK_RV rv = p11->C_VerifyInit(S, m, key);

    if (rv != CKR_OK) {
        return rv;
    }
    return p11->C_Verify(S, (CK_BYTE_PTR)d, dlen, (CK_BYTE_PTR)sig, siglen);
}

static CK_RV verify_parts_rv(CK_MECHANISM *m, CK_OBJECT_HANDLE key,
                             const CK_BYTE *d, size_t dlen, const CK_BYTE *sig,
                             CK_ULONG siglen)
{
    CK_RV rv = p11->C_VerifyInit(S, m, key);

    if (rv != CKR_OK) {
        return rv;
    }
    rv = p11->C_VerifyUpdate(S, (CK_BYTE_PTR)d, 7);
    if (rv != CKR_OK) {
        return rv;
    }
    rv = p11->C_VerifyUpdate(S, (CK_BYTE_PTR)d + 7, dlen - 7);
    if (rv != CKR_OK) {
        return rv;
    }
    return p11->C_VerifyFinal(S, (CK_BYTE_PTR)sig, siglen);
}

/* ------------------------------------------------------------ OpenSSL */

/* The token's public key as OpenSSL sees it, from CKA_PUBLIC_KEY_INFO. */
static EVP_PKEY *pkey_of(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h)
{
    CK_ULONG len;
    CK_BYTE *der = get_attr(s, h, CKA_PUBLIC_KEY_INFO, &len);
    const unsigned char *p = der;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)len);

    assert_non_null(k);
    assert_true(p == der + len);
    free(der);
    return k;
}

/* The same RSA public key built from CKA_MODULUS / CKA_PUBLIC_EXPONENT. */
static EVP_PKEY *rsa_pkey_from_parts(CK_OBJECT_HANDLE h)
{
    CK_ULONG nlen, elen;
    CK_BYTE *n = get_attr(S, h, CKA_MODULUS, &nlen);
    CK_BYTE *e = get_attr(S, h, CKA_PUBLIC_EXPONENT, &elen);
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL);
    BIGNUM *be = BN_bin2bn(e, (int)elen, NULL);
    OSSL_PARAM params[3];
    unsigned char nb[1024], eb[16];
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *k = NULL;

    assert_non_null(bn);
    assert_non_null(be);
    assert_non_null(ctx);
    assert_true(BN_bn2nativepad(bn, nb, (int)nlen) == (int)nlen);
    assert_true(elen <= sizeof(eb));
    assert_true(BN_bn2nativepad(be, eb, (int)elen) == (int)elen);
    params[0] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_N, nb, nlen);
    params[1] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_RSA_E, eb, elen);
    params[2] = OSSL_PARAM_construct_end();
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params),
                     1);
    EVP_PKEY_CTX_free(ctx);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return k;
}

enum ossl_pad { PAD_NONE, PAD_PKCS1, PAD_PSS };

/*
 * OpenSSL verifies sig over data: md NULL with PAD_PKCS1 means the data is
 * a DigestInfo to compare with the recovered block; md NULL with PAD_PSS
 * means data is the hash (pss_md names it).
 */
static bool ossl_verify(EVP_PKEY *k, const char *md, enum ossl_pad pad,
                        const char *pss_md, int salt, const CK_BYTE *data,
                        size_t dlen, const CK_BYTE *sig, size_t siglen)
{
    EVP_MD_CTX *mctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = false;

    if (md != NULL) {
        mctx = EVP_MD_CTX_new();
        assert_non_null(mctx);
        if (EVP_DigestVerifyInit_ex(mctx, &pctx, md, NULL, NULL, k, NULL) !=
            1) {
            goto out;
        }
        if (pad == PAD_PSS &&
            (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) != 1 ||
             EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, md, NULL) != 1)) {
            goto out;
        }
        ok = EVP_DigestVerify(mctx, sig, siglen, data, dlen) == 1;
        goto out;
    }
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    assert_non_null(pctx);
    if (pad == PAD_PKCS1) {
        unsigned char rec[1024];
        size_t rlen = sizeof(rec);

        if (EVP_PKEY_verify_recover_init(pctx) != 1 ||
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1 ||
            EVP_PKEY_verify_recover(pctx, rec, &rlen, sig, siglen) != 1) {
            goto out;
        }
        ok = rlen == dlen && memcmp(rec, data, dlen) == 0;
        goto out;
    }
    if (EVP_PKEY_verify_init(pctx) != 1) {
        goto out;
    }
    if (pad == PAD_PSS &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_signature_md(pctx, EVP_get_digestbyname(pss_md)) !=
             1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) != 1 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, pss_md, NULL) != 1)) {
        goto out;
    }
    ok = EVP_PKEY_verify(pctx, sig, siglen, data, dlen) == 1;
out:
    if (mctx != NULL) {
        EVP_MD_CTX_free(mctx); /* frees pctx too */
    } else {
        EVP_PKEY_CTX_free(pctx);
    }
    return ok;
}

/* r||s (2*n bytes) as a DER ECDSA-Sig-Value; returns its length. */
static size_t ecdsa_raw_to_der(const CK_BYTE *raw, size_t rawlen,
                               unsigned char **der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)(rawlen / 2), NULL);
    BIGNUM *s = BN_bin2bn(raw + rawlen / 2, (int)(rawlen / 2), NULL);
    int len;

    assert_non_null(es);
    assert_true(r != NULL && s != NULL);
    assert_int_equal(ECDSA_SIG_set0(es, r, s), 1);
    *der = NULL;
    len = i2d_ECDSA_SIG(es, der);
    assert_true(len > 0);
    ECDSA_SIG_free(es);
    return (size_t)len;
}

/* DER ECDSA-Sig-Value -> r||s of n bytes each. */
static void ecdsa_der_to_raw(const unsigned char *der, size_t len, size_t n,
                             CK_BYTE *raw)
{
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r, *s;

    assert_non_null(es);
    ECDSA_SIG_get0(es, &r, &s);
    assert_int_equal(BN_bn2binpad(r, raw, (int)n), (int)n);
    assert_int_equal(BN_bn2binpad(s, raw + n, (int)n), (int)n);
    ECDSA_SIG_free(es);
}

static bool ossl_verify_ecdsa(EVP_PKEY *k, const char *md, const CK_BYTE *data,
                              size_t dlen, const CK_BYTE *raw, size_t rawlen)
{
    unsigned char *der;
    size_t len = ecdsa_raw_to_der(raw, rawlen, &der);
    bool ok;

    if (md == NULL) {
        EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);

        assert_non_null(pctx);
        ok = EVP_PKEY_verify_init(pctx) == 1 &&
             EVP_PKEY_verify(pctx, der, len, data, dlen) == 1;
        EVP_PKEY_CTX_free(pctx);
    } else {
        ok = ossl_verify(k, md, PAD_NONE, NULL, 0, data, dlen, der, len);
    }
    OPENSSL_free(der);
    return ok;
}

static bool ossl_verify_eddsa(EVP_PKEY *k, const CK_BYTE *data, size_t dlen,
                              const CK_BYTE *sig, size_t siglen)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    bool ok;

    assert_non_null(mctx);
    ok = EVP_DigestVerifyInit_ex(mctx, NULL, NULL, NULL, NULL, k, NULL) == 1 &&
         EVP_DigestVerify(mctx, sig, siglen, data, dlen) == 1;
    EVP_MD_CTX_free(mctx);
    return ok;
}

static void ossl_digest(const char *name, const CK_BYTE *d, size_t dlen,
                        CK_BYTE *out, unsigned int *outlen)
{
    EVP_MD *md = EVP_MD_fetch(NULL, name, NULL);

    assert_non_null(md);
    assert_int_equal(EVP_Digest(d, dlen, out, outlen, md, NULL), 1);
    EVP_MD_free(md);
}

/* A key pair made by OpenSSL (type "RSA", "EC" with a curve, "ED25519"). */
static EVP_PKEY *ossl_keygen(const char *type, const char *curve)
{
    EVP_PKEY *k;

    if (strcmp(type, "RSA") == 0) {
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    } else if (curve != NULL) {
        k = EVP_PKEY_Q_keygen(NULL, NULL, type, curve);
    } else {
        k = EVP_PKEY_Q_keygen(NULL, NULL, type);
    }
    assert_non_null(k);
    return k;
}

/* The public half of an OpenSSL key created on the token. */
static CK_OBJECT_HANDLE import_ossl_public(EVP_PKEY *k, const struct curve *c)
{
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_KEY_TYPE kt;
    unsigned char a[1024], b[16];
    size_t alen = 0, blen = 0;
    CK_ATTRIBUTE t[6] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},
    };
    CK_ULONG n = 3;
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

    if (EVP_PKEY_is_a(k, "RSA")) {
        BIGNUM *bn = NULL, *be = NULL;

        kt = CKK_RSA;
        assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &bn),
                         1);
        assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &be),
                         1);
        alen = (size_t)BN_bn2bin(bn, a);
        blen = (size_t)BN_bn2bin(be, b);
        BN_free(bn);
        BN_free(be);
        t[n++] = (CK_ATTRIBUTE){CKA_MODULUS, a, alen};
        t[n++] = (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, b, blen};
    } else if (EVP_PKEY_is_a(k, "EC")) {
        kt = CKK_EC;
        assert_int_equal(EVP_PKEY_get_octet_string_param(
                             k, OSSL_PKEY_PARAM_PUB_KEY, a, sizeof(a), &alen),
                         1);
        t[n++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)c->oid, c->oid_len};
        t[n++] = (CK_ATTRIBUTE){CKA_EC_POINT, a, alen};
    } else {
        kt = EVP_PKEY_is_a(k, "X25519") || EVP_PKEY_is_a(k, "X448")
                 ? CKK_EC_MONTGOMERY
                 : CKK_EC_EDWARDS;
        alen = sizeof(a);
        assert_int_equal(EVP_PKEY_get_raw_public_key(k, a, &alen), 1);
        t[n++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)c->oid, c->oid_len};
        t[n++] = (CK_ATTRIBUTE){CKA_EC_POINT, a, alen};
    }
    assert_rv(p11->C_CreateObject(S, t, n, &h), CKR_OK);
    return h;
}

static size_t ossl_sign(EVP_PKEY *k, const char *md, enum ossl_pad pad,
                        const CK_BYTE *d, size_t dlen, CK_BYTE *sig)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    size_t len = SIG_MAX;

    assert_non_null(mctx);
    assert_int_equal(
        EVP_DigestSignInit_ex(mctx, &pctx, md, NULL, NULL, k, NULL), 1);
    if (pad == PAD_PSS) {
        assert_int_equal(
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32), 1);
    }
    assert_int_equal(EVP_DigestSign(mctx, sig, &len, d, dlen), 1);
    EVP_MD_CTX_free(mctx);
    return len;
}

/* ------------------------------------------------------------ mechanisms */

static bool has_mech(const CK_MECHANISM_TYPE *l, CK_ULONG n,
                     CK_MECHANISM_TYPE m)
{
    for (CK_ULONG i = 0; i < n; i++) {
        if (l[i] == m) {
            return true;
        }
    }
    return false;
}

static void test_mechanism_list(void **state)
{
    static const CK_MECHANISM_TYPE want[] = {
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        CKM_RSA_PKCS,
        CKM_RSA_X_509,
        CKM_RSA_PKCS_PSS,
        CKM_RSA_PKCS_OAEP,
        CKM_SHA256_RSA_PKCS,
        CKM_SHA512_RSA_PKCS_PSS,
        CKM_EC_KEY_PAIR_GEN,
        CKM_ECDSA,
        CKM_ECDSA_SHA256,
        CKM_ECDH1_DERIVE,
        CKM_EC_EDWARDS_KEY_PAIR_GEN,
        CKM_EC_MONTGOMERY_KEY_PAIR_GEN,
        CKM_EDDSA,
        CKM_SHA_1,
        CKM_SHA256,
        CKM_SHA512_256,
        CKM_SHA3_256,
        CKM_GENERIC_SECRET_KEY_GEN,
        CKM_SHA256_HMAC,
        CKM_SHA256_HMAC_GENERAL,
    };
    CK_MECHANISM_TYPE *l;
    CK_MECHANISM_INFO mi;
    CK_ULONG n = 0, small;

    (void)state;
    assert_rv(p11->C_GetMechanismList(0, NULL, &n), CKR_OK);
    assert_true(n >= N(want));
    l = xmalloc((n + 1) * sizeof(*l));
    small = n - 1;
    assert_rv(p11->C_GetMechanismList(0, l, &small), CKR_BUFFER_TOO_SMALL);
    assert_int_equal(small, n);
    small = n + 1;
    assert_rv(p11->C_GetMechanismList(0, l, &small), CKR_OK);
    assert_int_equal(small, n);
    for (size_t i = 0; i < N(want); i++) {
        if (!has_mech(l, n, want[i])) {
            print_error("mechanism 0x%lx missing\n", (unsigned long)want[i]);
        }
        assert_true(has_mech(l, n, want[i]));
    }
    /* every listed mechanism has info, and nothing else has */
    for (CK_ULONG i = 0; i < n; i++) {
        assert_rv(p11->C_GetMechanismInfo(0, l[i], &mi), CKR_OK);
        assert_true(mi.flags != 0);
    }
    free(l);

    assert_rv(p11->C_GetMechanismInfo(0, CKM_RSA_PKCS_KEY_PAIR_GEN, &mi),
              CKR_OK);
    assert_true((mi.flags & CKF_GENERATE_KEY_PAIR) != 0);
    assert_true(mi.ulMinKeySize <= 1024 && mi.ulMaxKeySize >= 8192);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_RSA_PKCS, &mi), CKR_OK);
    assert_true(
        (mi.flags & (CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT)) ==
        (CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT));
    assert_rv(p11->C_GetMechanismInfo(0, CKM_RSA_PKCS_OAEP, &mi), CKR_OK);
    assert_true((mi.flags & (CKF_ENCRYPT | CKF_DECRYPT)) ==
                (CKF_ENCRYPT | CKF_DECRYPT));
    assert_true((mi.flags & CKF_SIGN) == 0);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_EC_KEY_PAIR_GEN, &mi), CKR_OK);
    assert_true((mi.flags & CKF_GENERATE_KEY_PAIR) != 0);
    assert_true((mi.flags & CKF_EC_F_P) != 0);
    assert_true((mi.flags & CKF_EC_UNCOMPRESS) != 0);
    assert_true((mi.flags & (CKF_EC_OID | CKF_EC_NAMEDCURVE)) != 0);
    assert_true(mi.ulMinKeySize <= 256 && mi.ulMaxKeySize >= 521);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_ECDSA, &mi), CKR_OK);
    assert_true((mi.flags & (CKF_SIGN | CKF_VERIFY)) ==
                (CKF_SIGN | CKF_VERIFY));
    assert_true((mi.flags & CKF_EC_F_P) != 0);
    assert_true(mi.ulMaxKeySize == 521);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_ECDH1_DERIVE, &mi), CKR_OK);
    assert_true((mi.flags & CKF_DERIVE) != 0);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_SHA256, &mi), CKR_OK);
    assert_true((mi.flags & CKF_DIGEST) != 0);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_SHA256_HMAC, &mi), CKR_OK);
    assert_true((mi.flags & (CKF_SIGN | CKF_VERIFY)) ==
                (CKF_SIGN | CKF_VERIFY));
    assert_rv(p11->C_GetMechanismInfo(0, CKM_EDDSA, &mi), CKR_OK);
    assert_true((mi.flags & (CKF_SIGN | CKF_VERIFY)) ==
                (CKF_SIGN | CKF_VERIFY));
    assert_rv(p11->C_GetMechanismInfo(0, CKM_GENERIC_SECRET_KEY_GEN, &mi),
              CKR_OK);
    assert_true((mi.flags & CKF_GENERATE) != 0);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_VENDOR_DEFINED | 0x77, &mi),
              CKR_MECHANISM_INVALID);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_MD5, &mi), CKR_MECHANISM_INVALID);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_SHA256, NULL), CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_GetMechanismInfo(3, CKM_SHA256, &mi), CKR_SLOT_ID_INVALID);
}

/* ------------------------------------------------------------ digests */

static void test_digest(void **state)
{
    static const struct {
        CK_MECHANISM_TYPE m;
        const char *name;
    } ds[] = {
        {CKM_SHA_1, "SHA1"},
        {CKM_SHA224, "SHA224"},
        {CKM_SHA256, "SHA256"},
        {CKM_SHA384, "SHA384"},
        {CKM_SHA512, "SHA512"},
        {CKM_SHA512_224, "SHA512-224"},
        {CKM_SHA512_256, "SHA512-256"},
        {CKM_SHA3_224, "SHA3-224"},
        {CKM_SHA3_256, "SHA3-256"},
        {CKM_SHA3_384, "SHA3-384"},
        {CKM_SHA3_512, "SHA3-512"},
    };

    (void)state;
    for (size_t i = 0; i < N(ds); i++) {
        CK_MECHANISM m = {ds[i].m, NULL, 0};
        CK_BYTE want[64], got[64];
        unsigned int wlen = 0;
        CK_ULONG glen;

        ossl_digest(ds[i].name, msg, MSG_LEN, want, &wlen);
        /* one-shot with a length query first */
        assert_rv(p11->C_DigestInit(S, &m), CKR_OK);
        glen = 0;
        assert_rv(p11->C_Digest(S, (CK_BYTE_PTR)msg, MSG_LEN, NULL, &glen),
                  CKR_OK);
        assert_int_equal(glen, wlen);
        glen = sizeof(got);
        assert_rv(p11->C_Digest(S, (CK_BYTE_PTR)msg, MSG_LEN, got, &glen),
                  CKR_OK);
        assert_int_equal(glen, wlen);
        assert_memory_equal(got, want, wlen);
        /* multi-part */
        assert_rv(p11->C_DigestInit(S, &m), CKR_OK);
        assert_rv(p11->C_DigestUpdate(S, (CK_BYTE_PTR)msg, 10), CKR_OK);
        assert_rv(p11->C_DigestUpdate(S, (CK_BYTE_PTR)msg + 10, MSG_LEN - 10),
                  CKR_OK);
        glen = sizeof(got);
        assert_rv(p11->C_DigestFinal(S, got, &glen), CKR_OK);
        assert_int_equal(glen, wlen);
        assert_memory_equal(got, want, wlen);
        /* the empty message */
        ossl_digest(ds[i].name, msg, 0, want, &wlen);
        assert_rv(p11->C_DigestInit(S, &m), CKR_OK);
        glen = sizeof(got);
        assert_rv(p11->C_Digest(S, NULL, 0, got, &glen), CKR_OK);
        assert_int_equal(glen, wlen);
        assert_memory_equal(got, want, wlen);
    }
}

static CK_OBJECT_HANDLE make_secret(CK_SESSION_HANDLE s, CK_KEY_TYPE kt,
                                    const CK_BYTE *v, size_t len)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},   {CKA_VALUE, (void *)v, len},
        {CKA_SIGN, &yes, sizeof(yes)},  {CKA_VERIFY, &yes, sizeof(yes)},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

    assert_rv(p11->C_CreateObject(s, t, N(t), &h), CKR_OK);
    return h;
}

static void test_digest_key(void **state)
{
    static const CK_BYTE kv[20] = "0123456789abcdefghij";
    CK_MECHANISM m = {CKM_SHA256, NULL, 0};
    CK_BYTE both[sizeof(kv) + MSG_LEN];
    CK_BYTE want[32], got[32];
    unsigned int wlen;
    CK_ULONG glen = sizeof(got);
    CK_OBJECT_HANDLE key = make_secret(S, CKK_GENERIC_SECRET, kv, sizeof(kv));
    CK_OBJECT_HANDLE pub, priv;

    (void)state;
    memcpy(both, msg, MSG_LEN);
    memcpy(both + MSG_LEN, kv, sizeof(kv));
    ossl_digest("SHA256", both, sizeof(both), want, &wlen);
    assert_rv(p11->C_DigestInit(S, &m), CKR_OK);
    assert_rv(p11->C_DigestUpdate(S, (CK_BYTE_PTR)msg, MSG_LEN), CKR_OK);
    assert_rv(p11->C_DigestKey(S, key), CKR_OK);
    assert_rv(p11->C_DigestFinal(S, got, &glen), CKR_OK);
    assert_int_equal(glen, 32);
    assert_memory_equal(got, want, 32);

    /* without DigestInit; with a handle that is no key; with a public key
     * (not a secret key): each ends the digest it was in */
    assert_rv(p11->C_DigestKey(S, key), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_DigestInit(S, &m), CKR_OK);
    assert_rv(p11->C_DigestKey(S, BOGUS_HANDLE), CKR_KEY_HANDLE_INVALID);
    glen = sizeof(got);
    assert_rv(p11->C_DigestFinal(S, got, &glen), CKR_OPERATION_NOT_INITIALIZED);
    gen_ec(&c_p256, &pub, &priv);
    assert_rv(p11->C_DigestInit(S, &m), CKR_OK);
    assert_rv(p11->C_DigestKey(S, pub), CKR_KEY_INDIGESTIBLE);
}

/* ------------------------------------------------------------ RSA */

/* Every RSA signature mechanism on one key pair, checked by OpenSSL. */
static void rsa_sign_all(CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv,
                         CK_ULONG bits)
{
    EVP_PKEY *k = pkey_of(S, pub);
    EVP_PKEY *k2 = rsa_pkey_from_parts(pub);
    CK_BYTE sig[SIG_MAX], sig2[SIG_MAX];
    CK_ULONG len;

    assert_int_equal(EVP_PKEY_eq(k, k2), 1);
    assert_int_equal(EVP_PKEY_get_bits(k), (int)bits);
    for (size_t i = 0; i < N(hashes); i++) {
        const struct hash *h = &hashes[i];
        CK_RSA_PKCS_PSS_PARAMS pp = {h->digest, h->mgf, h->len};
        CK_MECHANISM m = {h->rsa_pkcs, NULL, 0};
        CK_MECHANISM mp = {h->rsa_pss, &pp, sizeof(pp)};

        /* PSS with a hash as long as the modulus allows (1024 / SHA-512) */
        if (2 * h->len + 2 > bits / 8) {
            pp.sLen = 20;
        }
        len = sign(&m, priv, msg, MSG_LEN, sig);
        assert_int_equal(len, bits / 8);
        assert_true(ossl_verify(k, h->name, PAD_PKCS1, NULL, 0, msg, MSG_LEN,
                                sig, len));
        assert_rv(verify_rv(&m, pub, msg, MSG_LEN, sig, len), CKR_OK);
        /* PKCS#1 v1.5 is deterministic: multi-part gives the same bytes */
        assert_int_equal(sign_parts(&m, priv, msg, MSG_LEN, sig2), len);
        assert_memory_equal(sig, sig2, len);
        assert_rv(verify_parts_rv(&m, pub, msg, MSG_LEN, sig, len), CKR_OK);

        len = sign(&mp, priv, msg, MSG_LEN, sig);
        assert_int_equal(len, bits / 8);
        assert_true(ossl_verify(k, h->name, PAD_PSS, NULL, (int)pp.sLen, msg,
                                MSG_LEN, sig, len));
        assert_rv(verify_rv(&mp, pub, msg, MSG_LEN, sig, len), CKR_OK);
        len = sign_parts(&mp, priv, msg, MSG_LEN, sig);
        assert_rv(verify_parts_rv(&mp, pub, msg, MSG_LEN, sig, len), CKR_OK);
    }

    /* CKM_RSA_PKCS over a DigestInfo, CKM_RSA_PKCS_PSS over a hash */
    {
        CK_BYTE di[sizeof(di_sha256) + 32];
        unsigned int hl;
        CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};
        CK_RSA_PKCS_PSS_PARAMS pp = {CKM_SHA256, CKG_MGF1_SHA256, 32};
        CK_MECHANISM mp = {CKM_RSA_PKCS_PSS, &pp, sizeof(pp)};

        memcpy(di, di_sha256, sizeof(di_sha256));
        ossl_digest("SHA256", msg, MSG_LEN, di + sizeof(di_sha256), &hl);
        len = sign(&m, priv, di, sizeof(di), sig);
        assert_true(
            ossl_verify(k, NULL, PAD_PKCS1, NULL, 0, di, sizeof(di), sig, len));
        assert_true(ossl_verify(k, "SHA256", PAD_PKCS1, NULL, 0, msg, MSG_LEN,
                                sig, len));
        assert_rv(verify_rv(&m, pub, di, sizeof(di), sig, len), CKR_OK);

        len = sign(&mp, priv, di + sizeof(di_sha256), 32, sig);
        assert_true(ossl_verify(k, NULL, PAD_PSS, "SHA256", 32,
                                di + sizeof(di_sha256), 32, sig, len));
        assert_rv(verify_rv(&mp, pub, di + sizeof(di_sha256), 32, sig, len),
                  CKR_OK);
        /* a hash of the wrong length for hashAlg */
        assert_rv(sign_rv(&mp, priv, di, 20, sig, &len), CKR_DATA_LEN_RANGE);
    }
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
}

/* Encryption both ways: the token and OpenSSL. */
static void rsa_crypt_all(CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv,
                          CK_ULONG bits)
{
    EVP_PKEY *k = pkey_of(S, pub);
    CK_BYTE ct[SIG_MAX], pt[SIG_MAX];
    CK_ULONG ctlen, ptlen;
    static const CK_BYTE label[] = "a label";

    for (size_t i = 0; i < 5; i++) {
        const struct hash *h = &hashes[i];

        for (int with_label = 0; with_label < 2; with_label++) {
            CK_RSA_PKCS_OAEP_PARAMS op = {h->digest, hashes[(i + 1) % 5].mgf,
                                          CKZ_DATA_SPECIFIED,
                                          with_label ? (void *)label : NULL,
                                          with_label ? sizeof(label) - 1 : 0};
            CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &op, sizeof(op)};
            EVP_PKEY_CTX *pctx;
            size_t olen = sizeof(ct);

            if (2 * h->len + 2 + MSG_LEN > bits / 8) {
                continue; /* too long for OAEP with this hash */
            }
            /* token encrypts, token decrypts */
            assert_rv(p11->C_EncryptInit(S, &m, pub), CKR_OK);
            ctlen = sizeof(ct);
            assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, MSG_LEN, ct, &ctlen),
                      CKR_OK);
            assert_int_equal(ctlen, bits / 8);
            assert_rv(p11->C_DecryptInit(S, &m, priv), CKR_OK);
            ptlen = sizeof(pt);
            assert_rv(p11->C_Decrypt(S, ct, ctlen, pt, &ptlen), CKR_OK);
            assert_int_equal(ptlen, MSG_LEN);
            assert_memory_equal(pt, msg, MSG_LEN);

            /* OpenSSL encrypts to the token's public key */
            pctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
            assert_non_null(pctx);
            assert_int_equal(EVP_PKEY_encrypt_init(pctx), 1);
            assert_int_equal(
                EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING), 1);
            assert_int_equal(
                EVP_PKEY_CTX_set_rsa_oaep_md_name(pctx, h->name, NULL), 1);
            assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md_name(
                                 pctx, hashes[(i + 1) % 5].name, NULL),
                             1);
            if (with_label) {
                void *l = OPENSSL_memdup(label, sizeof(label) - 1);

                assert_int_equal(EVP_PKEY_CTX_set0_rsa_oaep_label(
                                     pctx, l, (int)sizeof(label) - 1),
                                 1);
            }
            assert_int_equal(EVP_PKEY_encrypt(pctx, ct, &olen, msg, MSG_LEN),
                             1);
            EVP_PKEY_CTX_free(pctx);
            assert_rv(p11->C_DecryptInit(S, &m, priv), CKR_OK);
            ptlen = sizeof(pt);
            assert_rv(p11->C_Decrypt(S, ct, olen, pt, &ptlen), CKR_OK);
            assert_int_equal(ptlen, MSG_LEN);
            assert_memory_equal(pt, msg, MSG_LEN);
        }
    }

    /* PKCS#1 v1.5 and raw */
    {
        CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};
        CK_MECHANISM mx = {CKM_RSA_X_509, NULL, 0};
        CK_BYTE block[SIG_MAX];

        assert_rv(p11->C_EncryptInit(S, &m, pub), CKR_OK);
        ctlen = sizeof(ct);
        assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, MSG_LEN, ct, &ctlen),
                  CKR_OK);
        assert_int_equal(ctlen, bits / 8);
        assert_rv(p11->C_DecryptInit(S, &m, priv), CKR_OK);
        ptlen = sizeof(pt);
        assert_rv(p11->C_Decrypt(S, ct, ctlen, pt, &ptlen), CKR_OK);
        assert_int_equal(ptlen, MSG_LEN);
        assert_memory_equal(pt, msg, MSG_LEN);

        memset(block, 0, bits / 8);
        memcpy(block + bits / 8 - MSG_LEN, msg, MSG_LEN);
        assert_rv(p11->C_EncryptInit(S, &mx, pub), CKR_OK);
        ctlen = sizeof(ct);
        assert_rv(p11->C_Encrypt(S, block, bits / 8, ct, &ctlen), CKR_OK);
        assert_int_equal(ctlen, bits / 8);
        assert_rv(p11->C_DecryptInit(S, &mx, priv), CKR_OK);
        ptlen = sizeof(pt);
        assert_rv(p11->C_Decrypt(S, ct, ctlen, pt, &ptlen), CKR_OK);
        assert_int_equal(ptlen, bits / 8);
        assert_memory_equal(pt, block, bits / 8);
    }
    EVP_PKEY_free(k);
}

static void test_rsa_2048(void **state)
{
    CK_OBJECT_HANDLE pub, priv;

    (void)state;
    gen_rsa(2048, &pub, &priv);
    rsa_sign_all(pub, priv, 2048);
    rsa_crypt_all(pub, priv, 2048);
}

/* The other size classes: 1024 (with e = 3), 3072, 4096 (the one slow
 * key generation of the suite). */
static void test_rsa_sizes(void **state)
{
    static const CK_BYTE e3[] = {0x03};
    static const CK_ULONG sizes[] = {1024, 3072, 4096};
    CK_OBJECT_HANDLE pub, priv;
    CK_BYTE e[8];

    (void)state;
    for (size_t i = 0; i < N(sizes); i++) {
        CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
        CK_BYTE sig[SIG_MAX];
        CK_ULONG len;
        EVP_PKEY *k;

        if (sizes[i] == 1024) {
            gen_rsa_exp(sizes[i], e3, sizeof(e3), &pub, &priv);
            assert_int_equal(
                p11_get_bytes(S, pub, CKA_PUBLIC_EXPONENT, e, sizeof(e)), 1);
            assert_int_equal(e[0], 3);
        } else {
            gen_rsa(sizes[i], &pub, &priv);
        }
        assert_int_equal(p11_get_ulong(S, pub, CKA_MODULUS_BITS), sizes[i]);
        k = pkey_of(S, pub);
        assert_int_equal(EVP_PKEY_get_bits(k), (int)sizes[i]);
        len = sign(&m, priv, msg, MSG_LEN, sig);
        assert_int_equal(len, sizes[i] / 8);
        assert_true(ossl_verify(k, "SHA256", PAD_PKCS1, NULL, 0, msg, MSG_LEN,
                                sig, len));
        EVP_PKEY_free(k);
        if (sizes[i] == 1024) {
            rsa_sign_all(pub, priv, sizes[i]);
            rsa_crypt_all(pub, priv, sizes[i]);
        }
    }
}

/* OpenSSL signs and encrypts; the token verifies and OpenSSL decrypts. */
static void test_rsa_openssl_signs(void **state)
{
    EVP_PKEY *k = ossl_keygen("RSA", NULL);
    CK_OBJECT_HANDLE pub = import_ossl_public(k, NULL);
    CK_BYTE sig[SIG_MAX], ct[SIG_MAX], pt[SIG_MAX];
    CK_RSA_PKCS_PSS_PARAMS pp = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_RSA_PKCS_OAEP_PARAMS op = {CKM_SHA256, CKG_MGF1_SHA256, 0, NULL, 0};
    CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_MECHANISM mp = {CKM_SHA256_RSA_PKCS_PSS, &pp, sizeof(pp)};
    CK_MECHANISM mo = {CKM_RSA_PKCS_OAEP, &op, sizeof(op)};
    CK_ULONG ctlen = sizeof(ct);
    EVP_PKEY_CTX *pctx;
    size_t len, ptlen = sizeof(pt);

    (void)state;
    len = ossl_sign(k, "SHA256", PAD_PKCS1, msg, MSG_LEN, sig);
    assert_rv(verify_rv(&m, pub, msg, MSG_LEN, sig, len), CKR_OK);
    assert_rv(verify_parts_rv(&m, pub, msg, MSG_LEN, sig, len), CKR_OK);
    sig[10] ^= 1;
    assert_rv(verify_rv(&m, pub, msg, MSG_LEN, sig, len),
              CKR_SIGNATURE_INVALID);
    len = ossl_sign(k, "SHA256", PAD_PSS, msg, MSG_LEN, sig);
    assert_rv(verify_rv(&mp, pub, msg, MSG_LEN, sig, len), CKR_OK);

    assert_rv(p11->C_EncryptInit(S, &mo, pub), CKR_OK);
    assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, MSG_LEN, ct, &ctlen), CKR_OK);
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    assert_non_null(pctx);
    assert_int_equal(EVP_PKEY_decrypt_init(pctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING),
                     1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md_name(pctx, "SHA256", NULL),
                     1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", NULL),
                     1);
    assert_int_equal(EVP_PKEY_decrypt(pctx, pt, &ptlen, ct, ctlen), 1);
    assert_int_equal(ptlen, MSG_LEN);
    assert_memory_equal(pt, msg, MSG_LEN);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(k);
}

/* ------------------------------------------------------------ EC */

static void ec_sign_all(const struct curve *c)
{
    CK_OBJECT_HANDLE pub, priv;
    CK_BYTE sig[SIG_MAX], h[64];
    unsigned int hl;
    CK_ULONG len;
    EVP_PKEY *k;

    gen_ec(c, &pub, &priv);
    k = pkey_of(S, pub);
    for (size_t i = 0; i < N(hashes); i++) {
        CK_MECHANISM m = {hashes[i].ecdsa, NULL, 0};

        len = sign(&m, priv, msg, MSG_LEN, sig);
        assert_int_equal(len, 2 * c->len);
        assert_true(
            ossl_verify_ecdsa(k, hashes[i].name, msg, MSG_LEN, sig, len));
        assert_rv(verify_rv(&m, pub, msg, MSG_LEN, sig, len), CKR_OK);
        len = sign_parts(&m, priv, msg, MSG_LEN, sig);
        assert_int_equal(len, 2 * c->len);
        assert_rv(verify_parts_rv(&m, pub, msg, MSG_LEN, sig, len), CKR_OK);
        assert_true(
            ossl_verify_ecdsa(k, hashes[i].name, msg, MSG_LEN, sig, len));
    }
    /* CKM_ECDSA over a hash computed outside */
    {
        CK_MECHANISM m = {CKM_ECDSA, NULL, 0};

        ossl_digest("SHA256", msg, MSG_LEN, h, &hl);
        len = sign(&m, priv, h, hl, sig);
        assert_int_equal(len, 2 * c->len);
        assert_true(ossl_verify_ecdsa(k, NULL, h, hl, sig, len));
        assert_rv(verify_rv(&m, pub, h, hl, sig, len), CKR_OK);
    }
    EVP_PKEY_free(k);
}

static void test_ec_curves(void **state)
{
    (void)state;
    ec_sign_all(&c_p224);
    ec_sign_all(&c_p256);
    ec_sign_all(&c_p384);
    ec_sign_all(&c_p521);
    ec_sign_all(&c_k256);
}

/* A curve named in its printable form is accepted too. */
static void test_ec_params_by_name(void **state)
{
    /* PrintableString "prime256v1" */
    static const CK_BYTE named[] = {0x13, 0x0a, 'p', 'r', 'i', 'm',
                                    'e',  '2',  '5', '6', 'v', '1'};
    const struct curve byname = {"P-256", named, sizeof(named), 32};
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_OBJECT_HANDLE pub, priv;
    CK_BYTE sig[SIG_MAX];
    CK_ULONG len;
    EVP_PKEY *k;

    (void)state;
    gen_ec(&byname, &pub, &priv);
    k = pkey_of(S, pub);
    len = sign(&m, priv, msg, MSG_LEN, sig);
    assert_true(ossl_verify_ecdsa(k, "SHA256", msg, MSG_LEN, sig, len));
    EVP_PKEY_free(k);
}

static void test_ec_openssl_signs(void **state)
{
    const struct curve *cs[] = {&c_p256, &c_p384, &c_p521};

    (void)state;
    for (size_t i = 0; i < N(cs); i++) {
        EVP_PKEY *k = ossl_keygen("EC", cs[i]->name);
        CK_OBJECT_HANDLE pub = import_ossl_public(k, cs[i]);
        CK_MECHANISM m = {CKM_ECDSA_SHA384, NULL, 0};
        CK_BYTE der[SIG_MAX], raw[2 * 66];
        size_t len = ossl_sign(k, "SHA384", PAD_NONE, msg, MSG_LEN, der);

        ecdsa_der_to_raw(der, len, cs[i]->len, raw);
        assert_rv(verify_rv(&m, pub, msg, MSG_LEN, raw, 2 * cs[i]->len),
                  CKR_OK);
        raw[3] ^= 0x40;
        assert_rv(verify_rv(&m, pub, msg, MSG_LEN, raw, 2 * cs[i]->len),
                  CKR_SIGNATURE_INVALID);
        EVP_PKEY_free(k);
    }
}

/* ------------------------------------------------------------ EdDSA */

static void test_eddsa(void **state)
{
    const struct curve *cs[] = {&c_ed25519, &c_ed448};
    static const CK_BYTE ctx[] = "context";

    (void)state;
    for (size_t i = 0; i < N(cs); i++) {
        CK_OBJECT_HANDLE pub, priv, opub;
        CK_MECHANISM m = {CKM_EDDSA, NULL, 0};
        CK_BYTE sig[SIG_MAX];
        CK_ULONG len;
        size_t olen = sizeof(sig);
        EVP_PKEY *k, *ok;
        EVP_MD_CTX *mctx;

        gen_ec_mech(CKM_EC_EDWARDS_KEY_PAIR_GEN, cs[i], &pub, &priv);
        k = pkey_of(S, pub);
        assert_true(EVP_PKEY_is_a(k, cs[i]->name));
        len = sign(&m, priv, msg, MSG_LEN, sig);
        assert_int_equal(len, 2 * cs[i]->len);
        assert_true(ossl_verify_eddsa(k, msg, MSG_LEN, sig, len));
        assert_rv(verify_rv(&m, pub, msg, MSG_LEN, sig, len), CKR_OK);
        sig[0] ^= 1;
        assert_rv(verify_rv(&m, pub, msg, MSG_LEN, sig, len),
                  CKR_SIGNATURE_INVALID);
        assert_rv(verify_rv(&m, pub, msg, MSG_LEN, sig, len - 1),
                  CKR_SIGNATURE_LEN_RANGE);

        /* CK_EDDSA_PARAMS without prehash or context: pure EdDSA */
        {
            CK_EDDSA_PARAMS ep = {CK_FALSE, 0, NULL};
            CK_MECHANISM mp = {CKM_EDDSA, &ep, sizeof(ep)};

            len = sign(&mp, priv, msg, MSG_LEN, sig);
            assert_true(ossl_verify_eddsa(k, msg, MSG_LEN, sig, len));
            assert_rv(verify_rv(&m, pub, msg, MSG_LEN, sig, len), CKR_OK);
        }
        /*
         * The ph and ctx variants round trip on the token. The module
         * offers them only with OpenSSL 3.2 or later (EdDSA instances);
         * before that they are CKR_MECHANISM_PARAM_INVALID.
         */
        for (int ph = 0; ph < 2; ph++) {
            CK_EDDSA_PARAMS ep = {ph ? CK_TRUE : CK_FALSE, sizeof(ctx) - 1,
                                  (CK_BYTE_PTR)ctx};
            CK_EDDSA_PARAMS other = {ph ? CK_TRUE : CK_FALSE, 3,
                                     (CK_BYTE_PTR)ctx};
            CK_MECHANISM mp = {CKM_EDDSA, &ep, sizeof(ep)};
            CK_MECHANISM mo = {CKM_EDDSA, &other, sizeof(other)};

            if (OpenSSL_version_num() < 0x30200000L) {
                assert_rv(p11->C_SignInit(S, &mp, priv),
                          CKR_MECHANISM_PARAM_INVALID);
                continue;
            }
            len = sign(&mp, priv, msg, MSG_LEN, sig);
            assert_rv(verify_rv(&mp, pub, msg, MSG_LEN, sig, len), CKR_OK);
            assert_rv(verify_rv(&mo, pub, msg, MSG_LEN, sig, len),
                      CKR_SIGNATURE_INVALID);
            assert_rv(verify_rv(&m, pub, msg, MSG_LEN, sig, len),
                      CKR_SIGNATURE_INVALID);
        }

        /* OpenSSL signs, the token verifies */
        ok = ossl_keygen(cs[i]->name, NULL);
        opub = import_ossl_public(ok, cs[i]);
        mctx = EVP_MD_CTX_new();
        assert_non_null(mctx);
        assert_int_equal(
            EVP_DigestSignInit_ex(mctx, NULL, NULL, NULL, NULL, ok, NULL), 1);
        assert_int_equal(EVP_DigestSign(mctx, sig, &olen, msg, MSG_LEN), 1);
        EVP_MD_CTX_free(mctx);
        assert_rv(verify_rv(&m, opub, msg, MSG_LEN, sig, olen), CKR_OK);
        EVP_PKEY_free(ok);
        EVP_PKEY_free(k);
    }
}

/* ------------------------------------------------------------ ECDH */

/* Derives a readable generic secret of len bytes from base with peer. */
static CK_RV derive(CK_OBJECT_HANDLE base, CK_EC_KDF_TYPE kdf,
                    const CK_BYTE *peer, size_t peerlen, CK_ULONG len,
                    CK_BYTE *out)
{
    static const CK_BYTE shared[] = "shared info";
    CK_ECDH1_DERIVE_PARAMS p = {kdf, kdf == CKD_NULL ? 0 : sizeof(shared) - 1,
                                kdf == CKD_NULL ? NULL : (CK_BYTE_PTR)shared,
                                (CK_ULONG)peerlen, (CK_BYTE_PTR)peer};
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
    CK_RV rv = p11->C_DeriveKey(S, &m, base, t, N(t), &h);

    if (rv != CKR_OK) {
        return rv;
    }
    assert_true(h != CK_INVALID_HANDLE);
    assert_int_equal(p11_get_bytes(S, h, CKA_VALUE, out, len), len);
    assert_int_equal(p11_get_bool(S, h, CKA_LOCAL), CK_FALSE);
    assert_rv(p11->C_DestroyObject(S, h), CKR_OK);
    return CKR_OK;
}

/* The raw public point/value of a token key (CKA_EC_POINT unwrapped). */
static size_t raw_point(CK_OBJECT_HANDLE pub, CK_BYTE *out)
{
    CK_BYTE der[256];
    CK_ULONG len = p11_get_bytes(S, pub, CKA_EC_POINT, der, sizeof(der));
    size_t hdr = der[1] < 0x80 ? 2 : 2 + (der[1] & 0x7f);

    assert_int_equal(der[0], 0x04);
    assert_true(len > hdr);
    memcpy(out, der + hdr, len - hdr);
    return len - hdr;
}

static void ecdh_with_openssl(const struct curve *c, CK_MECHANISM_TYPE gen,
                              const char *ossl_type)
{
    CK_OBJECT_HANDLE pa, ka, pb, kb;
    CK_BYTE a[256], b[256], s1[128], s2[128], der[300];
    size_t alen, blen, olen = sizeof(s2);
    EVP_PKEY *ok, *peer;
    EVP_PKEY_CTX *pctx;
    CK_ULONG dlen;

    /* Readable results come only from keys that are not sensitive. */
    gen_ec_sens(gen, c, CK_FALSE, &pa, &ka);
    gen_ec_sens(gen, c, CK_FALSE, &pb, &kb);
    alen = raw_point(pa, a);
    blen = raw_point(pb, b);
    /* both sides agree, raw point and DER-wrapped point */
    assert_rv(derive(ka, CKD_NULL, b, blen, c->len, s1), CKR_OK);
    assert_rv(derive(kb, CKD_NULL, a, alen, c->len, s2), CKR_OK);
    assert_memory_equal(s1, s2, c->len);
    dlen = p11_get_bytes(S, pb, CKA_EC_POINT, der, sizeof(der));
    if (gen == CKM_EC_KEY_PAIR_GEN) {
        assert_rv(derive(ka, CKD_NULL, der, dlen, c->len, s2), CKR_OK);
        assert_memory_equal(s1, s2, c->len);
        /* X9.63 KDF: a shorter and a longer key than the field */
        assert_rv(derive(ka, CKD_SHA256_KDF, b, blen, 16, s1), CKR_OK);
        assert_rv(derive(kb, CKD_SHA256_KDF, a, alen, 16, s2), CKR_OK);
        assert_memory_equal(s1, s2, 16);
        assert_rv(derive(ka, CKD_SHA512_KDF, b, blen, 100, s1), CKR_OK);
        assert_rv(derive(kb, CKD_SHA512_KDF, a, alen, 100, s2), CKR_OK);
        assert_memory_equal(s1, s2, 100);
    }

    /* OpenSSL on the other side */
    ok = ossl_keygen(ossl_type, gen == CKM_EC_KEY_PAIR_GEN ? c->name : NULL);
    if (gen == CKM_EC_KEY_PAIR_GEN) {
        assert_int_equal(EVP_PKEY_get_octet_string_param(
                             ok, OSSL_PKEY_PARAM_PUB_KEY, b, sizeof(b), &blen),
                         1);
    } else {
        blen = sizeof(b);
        assert_int_equal(EVP_PKEY_get_raw_public_key(ok, b, &blen), 1);
    }
    assert_rv(derive(ka, CKD_NULL, b, blen, c->len, s1), CKR_OK);
    peer = pkey_of(S, pa);
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
}

static void test_ecdh(void **state)
{
    (void)state;
    ecdh_with_openssl(&c_p256, CKM_EC_KEY_PAIR_GEN, "EC");
    ecdh_with_openssl(&c_p384, CKM_EC_KEY_PAIR_GEN, "EC");
    ecdh_with_openssl(&c_p521, CKM_EC_KEY_PAIR_GEN, "EC");
    ecdh_with_openssl(&c_x25519, CKM_EC_MONTGOMERY_KEY_PAIR_GEN, "X25519");
    ecdh_with_openssl(&c_x448, CKM_EC_MONTGOMERY_KEY_PAIR_GEN, "X448");
}

static void test_ecdh_errors(void **state)
{
    CK_OBJECT_HANDLE pa, ka, pb, kb, pr, kr;
    CK_BYTE b[256], out[64];
    size_t blen;

    (void)state;
    gen_ec_sens(CKM_EC_KEY_PAIR_GEN, &c_p256, CK_FALSE, &pa, &ka);
    gen_ec_sens(CKM_EC_KEY_PAIR_GEN, &c_p384, CK_FALSE, &pb, &kb);
    blen = raw_point(pb, b);
    /* a P-384 point for a P-256 key; a point off the curve */
    assert_true(derive(ka, CKD_NULL, b, blen, 32, out) != CKR_OK);
    blen = raw_point(pa, b);
    b[blen - 1] ^= 1;
    assert_true(derive(ka, CKD_NULL, b, blen, 32, out) != CKR_OK);
    b[blen - 1] ^= 1;
    /* a sensitive private key gives no readable secret */
    {
        CK_OBJECT_HANDLE ps, ks;

        gen_ec(&c_p256, &ps, &ks);
        assert_rv(derive(ks, CKD_NULL, b, blen, 32, out),
                  CKR_TEMPLATE_INCONSISTENT);
    }
    /* an unknown KDF, shared data with CKD_NULL: parameter errors */
    assert_rv(derive(ka, 0x7777, b, blen, 32, out),
              CKR_MECHANISM_PARAM_INVALID);
    {
        CK_ECDH1_DERIVE_PARAMS p = {CKD_NULL, 3, (CK_BYTE_PTR) "abc",
                                    (CK_ULONG)blen, b};
        CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof(p)};
        CK_MECHANISM mshort = {CKM_ECDH1_DERIVE, &p, sizeof(p) - 1};
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
        CK_ULONG len = 32;
        CK_ATTRIBUTE t[] = {
            {CKA_CLASS, &cls, sizeof(cls)},
            {CKA_KEY_TYPE, &kt, sizeof(kt)},
            {CKA_VALUE_LEN, &len, sizeof(len)},
        };
        CK_OBJECT_HANDLE h;

        assert_rv(p11->C_DeriveKey(S, &m, ka, t, N(t), &h),
                  CKR_MECHANISM_PARAM_INVALID);
        p.ulSharedDataLen = 0;
        p.pSharedData = NULL;
        assert_rv(p11->C_DeriveKey(S, &mshort, ka, t, N(t), &h),
                  CKR_MECHANISM_PARAM_INVALID);
        assert_rv(p11->C_DeriveKey(S, &m, BOGUS_HANDLE, t, N(t), &h),
                  CKR_KEY_HANDLE_INVALID);
        assert_rv(p11->C_DeriveKey(S, &m, ka, t, N(t), NULL),
                  CKR_ARGUMENTS_BAD);
        assert_rv(p11->C_DeriveKey(S, NULL, ka, t, N(t), &h),
                  CKR_ARGUMENTS_BAD);
        /* a signing-only RSA key cannot derive */
        gen_rsa(1024, &pr, &kr);
        assert_rv(p11->C_DeriveKey(S, &m, kr, t, N(t), &h),
                  CKR_KEY_TYPE_INCONSISTENT);
        /* the derived key's template is checked like any other */
        len = 0;
        assert_true(p11->C_DeriveKey(S, &m, ka, t, N(t), &h) != CKR_OK);
    }
}

/* ------------------------------------------------------------ HMAC */

static void test_hmac(void **state)
{
    static const CK_BYTE kv[32] = "an HMAC key of thirty-two bytes";
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ULONG vlen = 32;
    CK_MECHANISM gen = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    CK_ATTRIBUTE tg[] = {
        {CKA_CLASS, &cls, sizeof(cls)},   {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},     {CKA_VALUE_LEN, &vlen, sizeof(vlen)},
        {CKA_SENSITIVE, &no, sizeof(no)}, {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_VERIFY, &yes, sizeof(yes)},
    };
    CK_OBJECT_HANDLE keys[3];
    CK_BYTE gv[32];

    (void)state;
    keys[0] = make_secret(S, CKK_GENERIC_SECRET, kv, sizeof(kv));
    keys[1] = make_secret(S, CKK_SHA256_HMAC, kv, sizeof(kv));
    assert_rv(p11->C_GenerateKey(S, &gen, tg, N(tg), &keys[2]), CKR_OK);
    assert_int_equal(p11_get_ulong(S, keys[2], CKA_VALUE_LEN), 32);
    assert_int_equal(p11_get_bytes(S, keys[2], CKA_VALUE, gv, sizeof(gv)), 32);
    assert_int_equal(p11_get_ulong(S, keys[2], CKA_KEY_GEN_MECHANISM),
                     CKM_GENERIC_SECRET_KEY_GEN);
    assert_int_equal(p11_get_bool(S, keys[2], CKA_LOCAL), CK_TRUE);

    for (size_t i = 0; i < 5; i++) {
        const struct hash *h = &hashes[i];

        for (size_t k = 0; k < N(keys); k++) {
            const CK_BYTE *value = k == 2 ? gv : kv;
            CK_MAC_GENERAL_PARAMS gl = h->len / 2;
            CK_MECHANISM m = {h->hmac, NULL, 0};
            CK_MECHANISM mg = {h->hmac_general, &gl, sizeof(gl)};
            CK_BYTE want[64], tag[SIG_MAX];
            size_t wlen = 0;
            CK_ULONG len;

            /* a CKK_SHA256_HMAC key goes with SHA-256 only */
            if (k == 1 && h != H_SHA256) {
                assert_rv(p11->C_SignInit(S, &m, keys[k]),
                          CKR_KEY_TYPE_INCONSISTENT);
                continue;
            }
            assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, h->name, NULL, value,
                                      32, msg, MSG_LEN, want, sizeof(want),
                                      &wlen));
            len = sign(&m, keys[k], msg, MSG_LEN, tag);
            assert_int_equal(len, wlen);
            assert_memory_equal(tag, want, wlen);
            assert_rv(verify_rv(&m, keys[k], msg, MSG_LEN, tag, len), CKR_OK);
            len = sign_parts(&m, keys[k], msg, MSG_LEN, tag);
            assert_int_equal(len, wlen);
            assert_memory_equal(tag, want, wlen);
            assert_rv(verify_parts_rv(&m, keys[k], msg, MSG_LEN, tag, len),
                      CKR_OK);
            /* truncated */
            len = sign(&mg, keys[k], msg, MSG_LEN, tag);
            assert_int_equal(len, gl);
            assert_memory_equal(tag, want, gl);
            assert_rv(verify_rv(&mg, keys[k], msg, MSG_LEN, tag, gl), CKR_OK);
            /* wrong tag, wrong length */
            tag[0] ^= 1;
            assert_rv(verify_rv(&mg, keys[k], msg, MSG_LEN, tag, gl),
                      CKR_SIGNATURE_INVALID);
            assert_rv(verify_rv(&m, keys[k], msg, MSG_LEN, want, wlen - 1),
                      CKR_SIGNATURE_LEN_RANGE);
        }
    }
}

/* ------------------------------------------------------------ attributes */

static void assert_bool(CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t, CK_BBOOL v)
{
    CK_BBOOL got = p11_get_bool(S, h, t);

    if (got != v) {
        print_error("attribute 0x%lx is %d, expected %d\n", (unsigned long)t,
                    got, v);
    }
    assert_int_equal(got, v);
}

static void test_generated_attributes(void **state)
{
    static const CK_BYTE id[] = {0xa1, 0xb2, 0xc3};
    CK_ULONG bits = 2048;
    CK_ATTRIBUTE rpub[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_ID, (void *)id, sizeof(id)},
        {CKA_MODULUS_BITS, &bits, sizeof(bits)},
    };
    CK_ATTRIBUTE rpriv[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_ID, (void *)id, sizeof(id)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
    };
    CK_ATTRIBUTE epub[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_EC_PARAMS, (void *)oid_p521, sizeof(oid_p521)},
    };
    CK_ATTRIBUTE epriv[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_SENSITIVE, &no, sizeof(no)},
    };
    CK_OBJECT_HANDLE pub, priv;
    CK_BYTE *a, *b, buf[512];
    CK_ULONG alen, blen, n;
    EVP_PKEY *k;

    (void)state;
    /* RSA, token, with an ID and an unextractable private key */
    assert_rv(gen_pair(CKM_RSA_PKCS_KEY_PAIR_GEN, rpub, N(rpub), rpriv,
                       N(rpriv), &pub, &priv),
              CKR_OK);
    assert_int_equal(p11_get_ulong(S, pub, CKA_CLASS), CKO_PUBLIC_KEY);
    assert_int_equal(p11_get_ulong(S, priv, CKA_CLASS), CKO_PRIVATE_KEY);
    assert_int_equal(p11_get_ulong(S, priv, CKA_KEY_TYPE), CKK_RSA);
    for (int i = 0; i < 2; i++) {
        CK_OBJECT_HANDLE h = i == 0 ? pub : priv;

        assert_bool(h, CKA_LOCAL, CK_TRUE);
        assert_bool(h, CKA_TOKEN, CK_TRUE);
        assert_int_equal(p11_get_ulong(S, h, CKA_KEY_GEN_MECHANISM),
                         CKM_RSA_PKCS_KEY_PAIR_GEN);
        assert_int_equal(p11_get_bytes(S, h, CKA_ID, buf, sizeof(buf)),
                         sizeof(id));
        assert_memory_equal(buf, id, sizeof(id));
    }
    assert_bool(priv, CKA_SENSITIVE, CK_TRUE);
    assert_bool(priv, CKA_ALWAYS_SENSITIVE, CK_TRUE);
    assert_bool(priv, CKA_EXTRACTABLE, CK_FALSE);
    assert_bool(priv, CKA_NEVER_EXTRACTABLE, CK_TRUE);
    assert_bool(priv, CKA_PRIVATE, CK_TRUE);
    assert_bool(pub, CKA_PRIVATE, CK_FALSE);
    /* the private key shows its public parts, the same as the public key */
    a = get_attr(S, pub, CKA_MODULUS, &alen);
    b = get_attr(S, priv, CKA_MODULUS, &blen);
    assert_int_equal(alen, 256);
    assert_int_equal(blen, alen);
    assert_memory_equal(a, b, alen);
    free(a);
    free(b);
    a = get_attr(S, pub, CKA_PUBLIC_EXPONENT, &alen);
    b = get_attr(S, priv, CKA_PUBLIC_EXPONENT, &blen);
    assert_int_equal(blen, alen);
    assert_memory_equal(a, b, alen);
    assert_true(alen == 3 && a[0] == 1 && a[1] == 0 && a[2] == 1);
    free(a);
    free(b);
    a = get_attr(S, pub, CKA_PUBLIC_KEY_INFO, &alen);
    b = get_attr(S, priv, CKA_PUBLIC_KEY_INFO, &blen);
    assert_int_equal(blen, alen);
    assert_memory_equal(a, b, alen);
    free(a);
    free(b);
    {
        CK_ATTRIBUTE t = {CKA_PRIVATE_EXPONENT, buf, sizeof(buf)};

        assert_rv(p11->C_GetAttributeValue(S, priv, &t, 1),
                  CKR_ATTRIBUTE_SENSITIVE);
    }
    /* both found by their shared ID */
    {
        CK_ATTRIBUTE t = {CKA_ID, (void *)id, sizeof(id)};

        assert_int_equal(p11_find_all(S, &t, 1, NULL, 0), 2);
    }

    /* EC P-521, session keys, a non-sensitive private key */
    assert_rv(gen_pair(CKM_EC_KEY_PAIR_GEN, epub, N(epub), epriv, N(epriv),
                       &pub, &priv),
              CKR_OK);
    assert_bool(pub, CKA_TOKEN, CK_FALSE);
    assert_bool(priv, CKA_TOKEN, CK_FALSE);
    assert_bool(priv, CKA_LOCAL, CK_TRUE);
    assert_int_equal(p11_get_ulong(S, priv, CKA_KEY_GEN_MECHANISM),
                     CKM_EC_KEY_PAIR_GEN);
    assert_bool(priv, CKA_SENSITIVE, CK_FALSE);
    assert_bool(priv, CKA_ALWAYS_SENSITIVE, CK_FALSE);
    assert_bool(priv, CKA_EXTRACTABLE, CK_TRUE);
    assert_bool(priv, CKA_NEVER_EXTRACTABLE, CK_FALSE);
    assert_int_equal(p11_get_bytes(S, priv, CKA_EC_PARAMS, buf, sizeof(buf)),
                     sizeof(oid_p521));
    assert_memory_equal(buf, oid_p521, sizeof(oid_p521));
    n = p11_get_bytes(S, priv, CKA_VALUE, buf, sizeof(buf));
    assert_true(n >= 60 && n <= 66);
    /* CKA_EC_POINT: DER OCTET STRING (long form length for P-521) */
    n = p11_get_bytes(S, pub, CKA_EC_POINT, buf, sizeof(buf));
    assert_int_equal(n, 3 + 133);
    assert_int_equal(buf[0], 0x04);
    assert_int_equal(buf[1], 0x81);
    assert_int_equal(buf[2], 133);
    assert_int_equal(buf[3], 0x04);
    /* PUBLIC_KEY_INFO holds the same point */
    k = pkey_of(S, priv);
    {
        unsigned char pt[256];
        size_t ptlen = 0;

        assert_int_equal(
            EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt,
                                            sizeof(pt), &ptlen),
            1);
        assert_int_equal(ptlen, 133);
        assert_memory_equal(pt, buf + 3, 133);
    }
    EVP_PKEY_free(k);

    /* imported keys are not local */
    {
        static const CK_BYTE kv[16] = "sixteen byte key";
        CK_OBJECT_HANDLE h = make_secret(S, CKK_GENERIC_SECRET, kv, 16);

        assert_bool(h, CKA_LOCAL, CK_FALSE);
        assert_int_equal(p11_get_ulong(S, h, CKA_KEY_GEN_MECHANISM),
                         CK_UNAVAILABLE_INFORMATION);
    }
}

/* Session keys die with their session. */
static void test_session_keys(void **state)
{
    CK_SESSION_HANDLE s2 = p11_open_rw();
    CK_OBJECT_HANDLE pub, priv, tpub, tpriv;
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_ATTRIBUTE lab = {CKA_LABEL, NULL, 0};
    CK_ATTRIBUTE tp[] = {
        {CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)},
        {CKA_TOKEN, &yes, sizeof(yes)},
    };
    CK_ATTRIBUTE tk[] = {{CKA_TOKEN, &yes, sizeof(yes)}};
    CK_MECHANISM gm = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ULONG before;

    (void)state;
    before = p11_count_all(S);
    /* made in s2 without CKA_TOKEN: session objects (the default) */
    {
        CK_ATTRIBUTE t[] = {
            {CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)}};

        assert_rv(p11->C_GenerateKeyPair(s2, &gm, t, 1, NULL, 0, &pub, &priv),
                  CKR_OK);
    }
    assert_rv(p11->C_GenerateKeyPair(s2, &gm, tp, N(tp), tk, 1, &tpub, &tpriv),
              CKR_OK);
    assert_int_equal(p11_count_all(S), before + 4);
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_OK);
    assert_rv(p11->C_SessionCancel(S, CKF_SIGN), CKR_OK);
    assert_rv(p11->C_CloseSession(s2), CKR_OK);
    assert_int_equal(p11_count_all(S), before + 2);
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_KEY_HANDLE_INVALID);
    assert_rv(p11->C_GetAttributeValue(S, pub, &lab, 1),
              CKR_OBJECT_HANDLE_INVALID);
    assert_rv(p11->C_SignInit(S, &m, tpriv), CKR_OK);
}

static void test_keygen_template_errors(void **state)
{
    CK_ULONG bits = 1024, small = 256, vlen = 32;
    CK_OBJECT_CLASS sec = CKO_SECRET_KEY;
    CK_KEY_TYPE ec = CKK_EC;
    CK_BYTE junk[] = {0x06, 0x03, 0x01, 0x02, 0x03};
    CK_BYTE value[32] = {0};
    CK_OBJECT_HANDLE pub, priv, h;
    CK_MECHANISM gen = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    CK_ULONG before;
    CK_RV rv;

    (void)state;
    before = p11_count_all(S);
    /* RSA without CKA_MODULUS_BITS */
    {
        CK_ATTRIBUTE t[] = {{CKA_TOKEN, &no, sizeof(no)}};

        assert_rv(
            gen_pair(CKM_RSA_PKCS_KEY_PAIR_GEN, t, 1, NULL, 0, &pub, &priv),
            CKR_TEMPLATE_INCOMPLETE);
    }
    /* EC without CKA_EC_PARAMS */
    assert_rv(gen_pair(CKM_EC_KEY_PAIR_GEN, NULL, 0, NULL, 0, &pub, &priv),
              CKR_TEMPLATE_INCOMPLETE);
    /* a class or key type the mechanism does not make */
    {
        CK_ATTRIBUTE t[] = {
            {CKA_MODULUS_BITS, &bits, sizeof(bits)},
            {CKA_CLASS, &sec, sizeof(sec)},
        };

        assert_rv(
            gen_pair(CKM_RSA_PKCS_KEY_PAIR_GEN, t, N(t), NULL, 0, &pub, &priv),
            CKR_TEMPLATE_INCONSISTENT);
        t[1].type = CKA_KEY_TYPE;
        t[1].pValue = &ec;
        t[1].ulValueLen = sizeof(ec);
        assert_rv(
            gen_pair(CKM_RSA_PKCS_KEY_PAIR_GEN, t, N(t), NULL, 0, &pub, &priv),
            CKR_TEMPLATE_INCONSISTENT);
    }
    /* a curve that is no curve */
    {
        CK_ATTRIBUTE t[] = {{CKA_EC_PARAMS, junk, sizeof(junk)}};

        rv = gen_pair(CKM_EC_KEY_PAIR_GEN, t, 1, NULL, 0, &pub, &priv);
        if (rv != CKR_ATTRIBUTE_VALUE_INVALID &&
            rv != CKR_CURVE_NOT_SUPPORTED) {
            print_error("unknown curve: %s\n", p11_rv_name(rv));
            fail();
        }
    }
    /* a modulus size out of range, a bad CKA_MODULUS_BITS length */
    {
        CK_ATTRIBUTE t[] = {{CKA_MODULUS_BITS, &small, sizeof(small)}};

        rv = gen_pair(CKM_RSA_PKCS_KEY_PAIR_GEN, t, 1, NULL, 0, &pub, &priv);
        if (rv != CKR_KEY_SIZE_RANGE && rv != CKR_ATTRIBUTE_VALUE_INVALID) {
            print_error("512-bit RSA: %s\n", p11_rv_name(rv));
            fail();
        }
        t[0].ulValueLen = 2;
        assert_rv(
            gen_pair(CKM_RSA_PKCS_KEY_PAIR_GEN, t, 1, NULL, 0, &pub, &priv),
            CKR_ATTRIBUTE_VALUE_INVALID);
    }
    /* CKA_VALUE may not be given to a generator */
    {
        CK_ATTRIBUTE t[] = {
            {CKA_VALUE_LEN, &vlen, sizeof(vlen)},
            {CKA_VALUE, value, sizeof(value)},
        };

        assert_rv(p11->C_GenerateKey(S, &gen, t, N(t), &h),
                  CKR_ATTRIBUTE_READ_ONLY);
        assert_rv(p11->C_GenerateKey(S, &gen, t, 0, &h),
                  CKR_TEMPLATE_INCOMPLETE);
    }
    /* argument checks */
    {
        CK_ATTRIBUTE t[] = {{CKA_MODULUS_BITS, &bits, sizeof(bits)}};
        CK_ATTRIBUTE tnull[] = {{CKA_MODULUS_BITS, NULL, sizeof(bits)}};
        CK_MECHANISM m = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};

        assert_rv(p11->C_GenerateKeyPair(S, NULL, t, 1, NULL, 0, &pub, &priv),
                  CKR_ARGUMENTS_BAD);
        assert_rv(p11->C_GenerateKeyPair(S, &m, t, 1, NULL, 0, NULL, &priv),
                  CKR_ARGUMENTS_BAD);
        assert_rv(p11->C_GenerateKeyPair(S, &m, NULL, 1, NULL, 0, &pub, &priv),
                  CKR_ARGUMENTS_BAD);
        assert_rv(p11->C_GenerateKeyPair(S, &m, tnull, 1, NULL, 0, &pub, &priv),
                  CKR_ATTRIBUTE_VALUE_INVALID);
        assert_rv(p11->C_GenerateKey(S, &gen, NULL, 0, NULL),
                  CKR_ARGUMENTS_BAD);
        /* a pair mechanism for a key, a key mechanism for a pair */
        assert_rv(p11->C_GenerateKey(S, &m, t, 1, &h), CKR_MECHANISM_INVALID);
        assert_rv(p11->C_GenerateKeyPair(S, &gen, t, 1, NULL, 0, &pub, &priv),
                  CKR_MECHANISM_INVALID);
        m.mechanism = CKM_SHA256;
        assert_rv(p11->C_GenerateKeyPair(S, &m, t, 1, NULL, 0, &pub, &priv),
                  CKR_MECHANISM_INVALID);
    }
    /* nothing was made */
    assert_int_equal(p11_count_all(S), before);
}

/* ------------------------------------------------------------ op states */

static void test_operation_state(void **state)
{
    CK_OBJECT_HANDLE pub, priv;
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM dm = {CKM_SHA256, NULL, 0};
    CK_BYTE sig[SIG_MAX], d[64];
    CK_ULONG len;

    (void)state;
    gen_ec(&c_p256, &pub, &priv);

    /* nothing initialized */
    len = sizeof(sig);
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_SignUpdate(S, (CK_BYTE_PTR)msg, MSG_LEN),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_SignFinal(S, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_Verify(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, 64),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_VerifyUpdate(S, (CK_BYTE_PTR)msg, MSG_LEN),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_VerifyFinal(S, sig, 64), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_Digest(S, (CK_BYTE_PTR)msg, MSG_LEN, d, &len),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_DigestUpdate(S, (CK_BYTE_PTR)msg, MSG_LEN),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_DigestFinal(S, d, &len), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_EncryptUpdate(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_EncryptFinal(S, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_Decrypt(S, sig, 64, d, &len),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_DecryptUpdate(S, sig, 64, d, &len),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_DecryptFinal(S, d, &len), CKR_OPERATION_NOT_INITIALIZED);

    /* Init while active; the first operation is untouched */
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_OK);
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_OPERATION_ACTIVE);
    /* other kinds may run beside it */
    assert_rv(p11->C_DigestInit(S, &dm), CKR_OK);
    assert_rv(p11->C_DigestInit(S, &dm), CKR_OPERATION_ACTIVE);
    assert_rv(p11->C_VerifyInit(S, &m, pub), CKR_OK);
    /* NULL buffer: the length, the operation goes on */
    len = 0;
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, NULL, &len), CKR_OK);
    assert_int_equal(len, 64);
    /* too small: CKR_BUFFER_TOO_SMALL with the length, it goes on */
    len = 10;
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len),
              CKR_BUFFER_TOO_SMALL);
    assert_int_equal(len, 64);
    /* an update after a one-shot query is refused, and that error ends
     * the operation like any other (spec 5.2; pkcs11-tool relies on it) */
    assert_rv(p11->C_SignUpdate(S, (CK_BYTE_PTR)msg, MSG_LEN),
              CKR_OPERATION_ACTIVE);
    len = sizeof(sig);
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_OK);
    len = sizeof(sig);
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len), CKR_OK);
    assert_int_equal(len, 64);
    /* success ended it */
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_Verify(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, len), CKR_OK);
    assert_rv(p11->C_Verify(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, len),
              CKR_OPERATION_NOT_INITIALIZED);

    /* digest: one-shot after an update is refused and ends the digest */
    assert_rv(p11->C_DigestUpdate(S, (CK_BYTE_PTR)msg, MSG_LEN), CKR_OK);
    len = sizeof(d);
    assert_rv(p11->C_Digest(S, (CK_BYTE_PTR)msg, MSG_LEN, d, &len),
              CKR_OPERATION_ACTIVE);
    assert_rv(p11->C_DigestFinal(S, d, &len), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_DigestInit(S, &dm), CKR_OK);
    assert_rv(p11->C_DigestUpdate(S, (CK_BYTE_PTR)msg, MSG_LEN), CKR_OK);
    len = 0;
    assert_rv(p11->C_DigestFinal(S, NULL, &len), CKR_OK);
    assert_int_equal(len, 32);
    len = 31;
    assert_rv(p11->C_DigestFinal(S, d, &len), CKR_BUFFER_TOO_SMALL);
    assert_int_equal(len, 32);
    len = sizeof(d);
    assert_rv(p11->C_DigestFinal(S, d, &len), CKR_OK);
    {
        CK_BYTE want[32];
        unsigned int wl;

        ossl_digest("SHA256", msg, MSG_LEN, want, &wl);
        assert_memory_equal(d, want, 32);
    }
    assert_rv(p11->C_DigestFinal(S, d, &len), CKR_OPERATION_NOT_INITIALIZED);

    /* multi-part sign: one-shot refused, and the operation ends */
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_OK);
    assert_rv(p11->C_SignUpdate(S, (CK_BYTE_PTR)msg, MSG_LEN), CKR_OK);
    len = sizeof(sig);
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len),
              CKR_OPERATION_ACTIVE);
    assert_rv(p11->C_SignFinal(S, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_OK);
    assert_rv(p11->C_SignUpdate(S, (CK_BYTE_PTR)msg, MSG_LEN), CKR_OK);
    len = 0;
    assert_rv(p11->C_SignFinal(S, NULL, &len), CKR_OK);
    assert_int_equal(len, 64);
    len = sizeof(sig);
    assert_rv(p11->C_SignFinal(S, sig, &len), CKR_OK);
    assert_rv(verify_rv(&m, pub, msg, MSG_LEN, sig, len), CKR_OK);
    /* multi-part verify: one-shot refused, and the operation ends */
    assert_rv(p11->C_VerifyInit(S, &m, pub), CKR_OK);
    assert_rv(p11->C_VerifyUpdate(S, (CK_BYTE_PTR)msg, MSG_LEN), CKR_OK);
    assert_rv(p11->C_Verify(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, len),
              CKR_OPERATION_ACTIVE);
    assert_rv(p11->C_VerifyFinal(S, sig, len), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_VerifyInit(S, &m, pub), CKR_OK);
    assert_rv(p11->C_VerifyUpdate(S, (CK_BYTE_PTR)msg, MSG_LEN), CKR_OK);
    assert_rv(p11->C_VerifyFinal(S, sig, len), CKR_OK);

    /* an error ends the operation */
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_OK);
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, NULL),
              CKR_ARGUMENTS_BAD);
    len = sizeof(sig);
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_OK);
    assert_rv(p11->C_SignUpdate(S, NULL, 5), CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_SignFinal(S, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_VerifyInit(S, &m, pub), CKR_OK);
    sig[5] ^= 1;
    assert_rv(p11->C_Verify(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, 64),
              CKR_SIGNATURE_INVALID);
    assert_rv(p11->C_Verify(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, 64),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_VerifyInit(S, &m, pub), CKR_OK);
    assert_rv(p11->C_Verify(S, (CK_BYTE_PTR)msg, MSG_LEN, NULL, 64),
              CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_VerifyFinal(S, sig, 64), CKR_OPERATION_NOT_INITIALIZED);

    /* C_SessionCancel ends operations; a failed Init leaves none */
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_OK);
    assert_rv(p11->C_DigestInit(S, &dm), CKR_OK);
    assert_rv(p11->C_SessionCancel(S, CKF_SIGN | CKF_DIGEST), CKR_OK);
    assert_rv(p11->C_SignFinal(S, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_DigestFinal(S, d, &len), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_SignInit(S, &m, pub), CKR_KEY_FUNCTION_NOT_PERMITTED);
    assert_rv(p11->C_SignFinal(S, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_OK);

    /* operations belong to their session */
    {
        CK_SESSION_HANDLE s2 = p11_open_rw();

        assert_rv(p11->C_SignFinal(s2, sig, &len),
                  CKR_OPERATION_NOT_INITIALIZED);
        assert_rv(p11->C_SignInit(s2, &m, priv), CKR_OK);
        /* closing a session with an operation under way is fine */
        assert_rv(p11->C_CloseSession(s2), CKR_OK);
        assert_rv(p11->C_SignFinal(s2, sig, &len), CKR_SESSION_HANDLE_INVALID);
    }
    len = sizeof(sig);
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len), CKR_OK);
}

/* Buffer rules of decryption and encryption (RSA). */
static void test_buffers_rsa(void **state)
{
    CK_OBJECT_HANDLE pub, priv;
    CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};
    CK_BYTE ct[256], pt[256];
    CK_ULONG len;

    (void)state;
    gen_rsa(1024, &pub, &priv);
    assert_rv(p11->C_EncryptInit(S, &m, pub), CKR_OK);
    len = 0;
    assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, MSG_LEN, NULL, &len), CKR_OK);
    assert_int_equal(len, 128);
    len = 127;
    assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, MSG_LEN, ct, &len),
              CKR_BUFFER_TOO_SMALL);
    assert_int_equal(len, 128);
    len = sizeof(ct);
    assert_rv(p11->C_Encrypt(S, (CK_BYTE_PTR)msg, MSG_LEN, ct, &len), CKR_OK);
    assert_int_equal(len, 128);
    assert_rv(p11->C_DecryptInit(S, &m, priv), CKR_OK);
    len = 0;
    assert_rv(p11->C_Decrypt(S, ct, 128, NULL, &len), CKR_OK);
    assert_true(len >= MSG_LEN && len <= 128);
    len = 3;
    assert_rv(p11->C_Decrypt(S, ct, 128, pt, &len), CKR_BUFFER_TOO_SMALL);
    assert_true(len >= MSG_LEN);
    len = sizeof(pt);
    assert_rv(p11->C_Decrypt(S, ct, 128, pt, &len), CKR_OK);
    assert_int_equal(len, MSG_LEN);
    assert_memory_equal(pt, msg, MSG_LEN);
}

/* ------------------------------------------------------------ errors */

static void test_key_errors(void **state)
{
    CK_OBJECT_HANDLE pub, priv, rpub, rpriv, nosign_pub, nosign, ampub, am,
        data, hkey;
    CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM ecdsa_raw = {CKM_ECDSA, NULL, 0};
    CK_MECHANISM rsa = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_MECHANISM hmac = {CKM_SHA256_HMAC, NULL, 0};
    CK_MECHANISM oaep_m = {CKM_RSA_PKCS, NULL, 0};
    CK_BYTE sig[SIG_MAX];
    CK_ULONG len;

    (void)state;
    gen_ec(&c_p256, &pub, &priv);
    gen_rsa(1024, &rpub, &rpriv);
    /* CKA_SIGN FALSE */
    {
        CK_ATTRIBUTE tpub[] = {
            {CKA_TOKEN, &no, sizeof(no)},
            {CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)},
            {CKA_VERIFY, &no, sizeof(no)},
        };
        CK_ATTRIBUTE tpriv[] = {
            {CKA_TOKEN, &no, sizeof(no)},
            {CKA_SIGN, &no, sizeof(no)},
        };

        assert_rv(gen_pair(CKM_EC_KEY_PAIR_GEN, tpub, N(tpub), tpriv, N(tpriv),
                           &nosign_pub, &nosign),
                  CKR_OK);
        assert_rv(p11->C_SignInit(S, &ecdsa, nosign),
                  CKR_KEY_FUNCTION_NOT_PERMITTED);
        assert_rv(p11->C_VerifyInit(S, &ecdsa, nosign_pub),
                  CKR_KEY_FUNCTION_NOT_PERMITTED);
    }
    /* CKA_ALLOWED_MECHANISMS */
    {
        CK_MECHANISM_TYPE allowed[] = {CKM_ECDSA_SHA384, CKM_ECDSA_SHA256};
        CK_ATTRIBUTE tpub[] = {
            {CKA_TOKEN, &no, sizeof(no)},
            {CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)},
            {CKA_ALLOWED_MECHANISMS, allowed, sizeof(allowed)},
        };
        CK_ATTRIBUTE tpriv[] = {
            {CKA_TOKEN, &no, sizeof(no)},
            {CKA_ALLOWED_MECHANISMS, allowed, sizeof(allowed)},
        };

        assert_rv(gen_pair(CKM_EC_KEY_PAIR_GEN, tpub, N(tpub), tpriv, N(tpriv),
                           &ampub, &am),
                  CKR_OK);
        assert_rv(p11->C_SignInit(S, &ecdsa_raw, am),
                  CKR_KEY_FUNCTION_NOT_PERMITTED);
        assert_rv(p11->C_VerifyInit(S, &ecdsa_raw, ampub),
                  CKR_KEY_FUNCTION_NOT_PERMITTED);
        len = sign(&ecdsa, am, msg, MSG_LEN, sig);
        assert_rv(verify_rv(&ecdsa, ampub, msg, MSG_LEN, sig, len), CKR_OK);
    }
    /* the wrong kind of key for the mechanism */
    assert_rv(p11->C_SignInit(S, &rsa, priv), CKR_KEY_TYPE_INCONSISTENT);
    assert_rv(p11->C_SignInit(S, &ecdsa, rpriv), CKR_KEY_TYPE_INCONSISTENT);
    assert_rv(p11->C_SignInit(S, &hmac, priv), CKR_KEY_TYPE_INCONSISTENT);
    /* a public key has no CKA_SIGN: not permitted to sign */
    assert_rv(p11->C_SignInit(S, &ecdsa, pub), CKR_KEY_FUNCTION_NOT_PERMITTED);
    hkey =
        make_secret(S, CKK_GENERIC_SECRET, (const CK_BYTE *)"0123456789", 10);
    assert_rv(p11->C_SignInit(S, &ecdsa, hkey), CKR_KEY_TYPE_INCONSISTENT);
    /* no such key; a handle that names no key */
    assert_rv(p11->C_SignInit(S, &ecdsa, BOGUS_HANDLE), CKR_KEY_HANDLE_INVALID);
    assert_rv(p11->C_VerifyInit(S, &ecdsa, CK_INVALID_HANDLE),
              CKR_KEY_HANDLE_INVALID);
    assert_rv(p11->C_EncryptInit(S, &oaep_m, BOGUS_HANDLE),
              CKR_KEY_HANDLE_INVALID);
    assert_rv(p11->C_DecryptInit(S, &oaep_m, BOGUS_HANDLE),
              CKR_KEY_HANDLE_INVALID);
    data = p11_make_data(S, "not a key", CK_FALSE);
    assert_rv(p11->C_SignInit(S, &ecdsa, data), CKR_KEY_HANDLE_INVALID);
    /* the session handle comes first */
    assert_rv(p11->C_SignInit(0x7777777, &ecdsa, priv),
              CKR_SESSION_HANDLE_INVALID);
    assert_rv(p11->C_Sign(0x7777777, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len),
              CKR_SESSION_HANDLE_INVALID);
}

static void test_mechanism_errors(void **state)
{
    CK_OBJECT_HANDLE pub, priv, rpub, rpriv, hkey;
    CK_MECHANISM m;
    CK_BYTE big[MOD_PARAM_TEST_MAX];
    CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256,
                                    CKZ_DATA_SPECIFIED, NULL, 0};
    CK_MAC_GENERAL_PARAMS gl;

    (void)state;
    memset(big, 0, sizeof(big));
    gen_ec(&c_p256, &pub, &priv);
    gen_rsa(1024, &rpub, &rpriv);
    hkey =
        make_secret(S, CKK_GENERIC_SECRET, (const CK_BYTE *)"0123456789", 10);

    /* not a mechanism, or not one for this kind of operation */
    m = (CK_MECHANISM){CKM_VENDOR_DEFINED | 0x1234, NULL, 0};
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_MECHANISM_INVALID);
    assert_rv(p11->C_DigestInit(S, &m), CKR_MECHANISM_INVALID);
    m.mechanism = CKM_SHA256;
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_MECHANISM_INVALID);
    m.mechanism = CKM_ECDSA;
    assert_rv(p11->C_DigestInit(S, &m), CKR_MECHANISM_INVALID);
    assert_rv(p11->C_EncryptInit(S, &m, pub), CKR_MECHANISM_INVALID);
    m.mechanism = CKM_SHA256_RSA_PKCS;
    assert_rv(p11->C_EncryptInit(S, &m, rpub), CKR_MECHANISM_INVALID);
    m.mechanism = CKM_MD5;
    assert_rv(p11->C_EncryptInit(S, &m, hkey), CKR_MECHANISM_INVALID);
    m.mechanism = CKM_AES_ECB; /* a real mechanism, not for this key */
    assert_rv(p11->C_EncryptInit(S, &m, hkey), CKR_KEY_TYPE_INCONSISTENT);
    assert_rv(p11->C_SignInit(S, NULL, priv), CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_DigestInit(S, NULL), CKR_ARGUMENTS_BAD);

    /* parameters: missing, too long, the wrong length, the wrong values */
    m = (CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, NULL, sizeof(pss)};
    assert_rv(p11->C_SignInit(S, &m, rpriv), CKR_MECHANISM_PARAM_INVALID);
    m = (CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, big, sizeof(big)};
    assert_rv(p11->C_SignInit(S, &m, rpriv), CKR_MECHANISM_PARAM_INVALID);
    m = (CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof(pss) - 1};
    assert_rv(p11->C_SignInit(S, &m, rpriv), CKR_MECHANISM_PARAM_INVALID);
    m = (CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, NULL, 0};
    assert_rv(p11->C_SignInit(S, &m, rpriv), CKR_MECHANISM_PARAM_INVALID);
    m = (CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof(pss)};
    pss.hashAlg = CKM_SHA384; /* not the mechanism's hash */
    assert_rv(p11->C_SignInit(S, &m, rpriv), CKR_MECHANISM_PARAM_INVALID);
    pss.hashAlg = CKM_SHA256;
    pss.mgf = 0x777;
    assert_rv(p11->C_SignInit(S, &m, rpriv), CKR_MECHANISM_PARAM_INVALID);
    pss.mgf = CKG_MGF1_SHA256;
    assert_rv(p11->C_SignInit(S, &m, rpriv), CKR_OK);
    assert_rv(p11->C_SessionCancel(S, CKF_SIGN), CKR_OK);
    m = (CK_MECHANISM){CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep) + 1};
    assert_rv(p11->C_EncryptInit(S, &m, rpub), CKR_MECHANISM_PARAM_INVALID);
    m.ulParameterLen = sizeof(oaep);
    oaep.source = 0x55;
    assert_rv(p11->C_EncryptInit(S, &m, rpub), CKR_MECHANISM_PARAM_INVALID);
    oaep.source = CKZ_DATA_SPECIFIED;
    oaep.ulSourceDataLen = 4; /* and no pointer */
    assert_rv(p11->C_EncryptInit(S, &m, rpub), CKR_MECHANISM_PARAM_INVALID);
    /* a mechanism that takes no parameter given one */
    m = (CK_MECHANISM){CKM_ECDSA_SHA256, &pss, sizeof(pss)};
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_MECHANISM_PARAM_INVALID);
    m = (CK_MECHANISM){CKM_SHA256, &pss, sizeof(pss)};
    assert_rv(p11->C_DigestInit(S, &m), CKR_MECHANISM_PARAM_INVALID);
    /* MAC lengths out of range */
    m = (CK_MECHANISM){CKM_SHA256_HMAC_GENERAL, &gl, sizeof(gl)};
    gl = 33;
    assert_rv(p11->C_SignInit(S, &m, hkey), CKR_MECHANISM_PARAM_INVALID);
    gl = 0;
    assert_rv(p11->C_SignInit(S, &m, hkey), CKR_MECHANISM_PARAM_INVALID);
    m.ulParameterLen = 4;
    gl = 16;
    assert_rv(p11->C_SignInit(S, &m, hkey), CKR_MECHANISM_PARAM_INVALID);
    /* an EdDSA parameter of the wrong length */
    {
        CK_EDDSA_PARAMS ep = {CK_FALSE, 0, NULL};
        CK_OBJECT_HANDLE epub, epriv;

        gen_ec_mech(CKM_EC_EDWARDS_KEY_PAIR_GEN, &c_ed25519, &epub, &epriv);
        m = (CK_MECHANISM){CKM_EDDSA, &ep, sizeof(ep) - 1};
        assert_rv(p11->C_SignInit(S, &m, epriv), CKR_MECHANISM_PARAM_INVALID);
    }
}

static void test_data_errors(void **state)
{
    CK_OBJECT_HANDLE pub, priv, epub, epriv;
    CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
    CK_MECHANISM x509 = {CKM_RSA_X_509, NULL, 0};
    CK_MECHANISM rsa = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
    CK_BYTE big[256], ct[256], sig[SIG_MAX];
    CK_ULONG len;

    (void)state;
    memset(big, 0x5a, sizeof(big));
    gen_rsa(1024, &pub, &priv);
    gen_ec(&c_p256, &epub, &epriv);

    /* CKR_DATA_LEN_RANGE: more than k-11 bytes for PKCS#1, more than k
     * for raw RSA; the operation is over */
    assert_rv(p11->C_EncryptInit(S, &pkcs, pub), CKR_OK);
    len = sizeof(ct);
    assert_rv(p11->C_Encrypt(S, big, 128 - 10, ct, &len), CKR_DATA_LEN_RANGE);
    len = sizeof(ct);
    assert_rv(p11->C_Encrypt(S, big, 10, ct, &len),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_SignInit(S, &pkcs, priv), CKR_OK);
    len = sizeof(sig);
    assert_rv(p11->C_Sign(S, big, 128 - 10, sig, &len), CKR_DATA_LEN_RANGE);
    assert_rv(p11->C_EncryptInit(S, &x509, pub), CKR_OK);
    len = sizeof(ct);
    assert_rv(p11->C_Encrypt(S, big, 129, ct, &len), CKR_DATA_LEN_RANGE);

    /* CKR_ENCRYPTED_DATA_INVALID: a block that is no PKCS#1 padding;
     * CKR_ENCRYPTED_DATA_LEN_RANGE: not the modulus length */
    memset(big, 0, sizeof(big));
    big[127] = 0x42;
    assert_rv(p11->C_DecryptInit(S, &pkcs, priv), CKR_OK);
    len = sizeof(ct);
    assert_rv(p11->C_Decrypt(S, big, 128, ct, &len),
              CKR_ENCRYPTED_DATA_INVALID);
    assert_rv(p11->C_Decrypt(S, big, 128, ct, &len),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_DecryptInit(S, &pkcs, priv), CKR_OK);
    len = sizeof(ct);
    assert_rv(p11->C_Decrypt(S, big, 127, ct, &len),
              CKR_ENCRYPTED_DATA_LEN_RANGE);

    /* CKR_SIGNATURE_INVALID vs CKR_SIGNATURE_LEN_RANGE */
    len = sign(&rsa, priv, msg, MSG_LEN, sig);
    assert_int_equal(len, 128);
    assert_rv(verify_rv(&rsa, pub, msg, MSG_LEN - 1, sig, len),
              CKR_SIGNATURE_INVALID);
    sig[100] ^= 0x10;
    assert_rv(verify_rv(&rsa, pub, msg, MSG_LEN, sig, len),
              CKR_SIGNATURE_INVALID);
    assert_rv(verify_rv(&rsa, pub, msg, MSG_LEN, sig, len - 1),
              CKR_SIGNATURE_LEN_RANGE);
    assert_rv(verify_rv(&rsa, pub, msg, MSG_LEN, sig, len + 1),
              CKR_SIGNATURE_LEN_RANGE);
    assert_rv(verify_parts_rv(&rsa, pub, msg, MSG_LEN, sig, 0),
              CKR_SIGNATURE_LEN_RANGE);
    len = sign(&ecdsa, epriv, msg, MSG_LEN, sig);
    assert_int_equal(len, 64);
    sig[40] ^= 0x01;
    assert_rv(verify_rv(&ecdsa, epub, msg, MSG_LEN, sig, 64),
              CKR_SIGNATURE_INVALID);
    assert_rv(verify_parts_rv(&ecdsa, epub, msg, MSG_LEN, sig, 64),
              CKR_SIGNATURE_INVALID);
    assert_rv(verify_rv(&ecdsa, epub, msg, MSG_LEN, sig, 63),
              CKR_SIGNATURE_LEN_RANGE);
    assert_rv(verify_rv(&ecdsa, epub, msg, MSG_LEN, sig, 65),
              CKR_SIGNATURE_LEN_RANGE);
    /* r = 0 and s = 0: invalid, the right length */
    memset(sig, 0, 64);
    assert_rv(verify_rv(&ecdsa, epub, msg, MSG_LEN, sig, 64),
              CKR_SIGNATURE_INVALID);
}

/* ------------------------------------------------------------ ownership */

static void test_ownership(void **state)
{
    CK_ATTRIBUTE tpub[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)},
        {CKA_LABEL, "alice-ec", 8},
    };
    CK_ATTRIBUTE tpriv[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_LABEL, "alice-ec", 8},
    };
    CK_OBJECT_HANDLE pub, priv, found[4];
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_BYTE sig[SIG_MAX];
    CK_ULONG len, n;
    CK_ATTRIBUTE lab = {CKA_LABEL, "alice-ec", 8};

    (void)state;
    assert_rv(gen_pair(CKM_EC_KEY_PAIR_GEN, tpub, N(tpub), tpriv, N(tpriv),
                       &pub, &priv),
              CKR_OK);
    len = sign(&m, priv, msg, MSG_LEN, sig);
    assert_rv(p11->C_Logout(S), CKR_OK);
    p11_login_cu(S, "bob", P11_BOB_PW);

    /* bob cannot use (nor see) her private key */
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_KEY_HANDLE_INVALID);
    n = p11_find_all(S, &lab, 1, found, N(found));
    assert_int_equal(n, 1);
    assert_int_equal(p11_get_ulong(S, found[0], CKA_CLASS), CKO_PUBLIC_KEY);
    assert_rv(p11->C_SignInit(S, &m, found[0]), CKR_KEY_FUNCTION_NOT_PERMITTED);
    /* but verifies with her public key */
    assert_rv(verify_rv(&m, found[0], msg, MSG_LEN, sig, len), CKR_OK);
    sig[0] ^= 1;
    assert_rv(verify_rv(&m, found[0], msg, MSG_LEN, sig, len),
              CKR_SIGNATURE_INVALID);
    assert_rv(p11->C_Logout(S), CKR_OK);
    p11_login_cu(S, "alice", P11_ALICE_PW);
    assert_int_equal(p11_count_label(S, "alice-ec"), 2);
}

/* An operation does not outlive the login that started it. */
static void test_logout_ends_operations(void **state)
{
    CK_ATTRIBUTE tp[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)},
    };
    CK_ATTRIBUTE tk[] = {{CKA_TOKEN, &yes, sizeof(yes)}};
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM dm = {CKM_SHA256, NULL, 0};
    CK_SESSION_HANDLE s2 = p11_open_rw();
    CK_OBJECT_HANDLE pub, priv;
    CK_BYTE sig[SIG_MAX];
    CK_ULONG len = sizeof(sig);

    (void)state;
    assert_rv(gen_pair(CKM_EC_KEY_PAIR_GEN, tp, N(tp), tk, 1, &pub, &priv),
              CKR_OK);
    assert_rv(p11->C_SignInit(S, &m, priv), CKR_OK);
    assert_rv(p11->C_SignInit(s2, &m, priv), CKR_OK);
    assert_rv(p11->C_SignUpdate(s2, (CK_BYTE_PTR)msg, MSG_LEN), CKR_OK);
    assert_rv(p11->C_DigestInit(S, &dm), CKR_OK);
    assert_rv(p11->C_Logout(S), CKR_OK);
    p11_login_cu(S, "bob", P11_BOB_PW);
    /* bob must not finish alice's signatures */
    assert_rv(p11->C_Sign(S, (CK_BYTE_PTR)msg, MSG_LEN, sig, &len),
              CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_SignFinal(s2, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_DigestFinal(S, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
    /* and new operations start normally */
    assert_rv(p11->C_DigestInit(S, &dm), CKR_OK);
    assert_rv(p11->C_CloseSession(s2), CKR_OK);
}

/* The permission table for the other roles. */
static void test_roles(void **state)
{
    CK_MECHANISM dm = {CKM_SHA256, NULL, 0};
    CK_MECHANISM sm = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM gm = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE t[] = {{CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)}};
    CK_OBJECT_HANDLE pub, priv, stale;
    CK_SESSION_HANDLE s;
    struct {
        const char *who;
        CK_RV want;
    } roles[] = {
        {"public", CKR_USER_NOT_LOGGED_IN},
        {"CO", CKR_USER_NOT_LOGGED_IN},
        {"AU", CKR_USER_NOT_LOGGED_IN},
    };
    int fails = 0;

    (void)state;
    gen_ec(&c_p256, &pub, &stale);
    assert_rv(p11->C_CloseSession(S), CKR_OK);
    p11_co_init_pin("app_user:" P11_AU_PW);
    for (size_t i = 0; i < N(roles); i++) {
        s = p11_open_rw();
        if (strcmp(roles[i].who, "CO") == 0) {
            p11_login_so(s, P11_SO_PW);
        } else if (strcmp(roles[i].who, "AU") == 0) {
            assert_rv(p11_login(s, CKU_NIMBUS_AU, P11_AU_PW), CKR_OK);
        }
        print_message("    role %s\n", roles[i].who);
        expect_rv(fails, p11->C_DigestInit(s, &dm), roles[i].want);
        expect_rv(fails, p11->C_SignInit(s, &sm, stale), roles[i].want);
        expect_rv(fails, p11->C_VerifyInit(s, &sm, stale), roles[i].want);
        expect_rv(fails,
                  p11->C_GenerateKeyPair(s, &gm, t, 1, NULL, 0, &pub, &priv),
                  roles[i].want);
        assert_rv(p11->C_CloseSession(s), CKR_OK);
    }
    assert_int_equal(fails, 0);
    S = p11_open_rw();
}

static void test_roles_preco(void **state)
{
    CK_MECHANISM dm = {CKM_SHA256, NULL, 0};
    CK_MECHANISM sm = {CKM_ECDSA_SHA256, NULL, 0};
    CK_SESSION_HANDLE s;

    (void)state;
    p11_fresh(NULL);
    s = p11_open_rw();
    p11_login_so(s, "password");
    assert_rv(p11->C_DigestInit(s, &dm), CKR_PIN_EXPIRED);
    assert_rv(p11->C_SignInit(s, &sm, BOGUS_HANDLE), CKR_PIN_EXPIRED);
    S = s;
}

/* ------------------------------------------------------------ threads */

#define THREAD_SIGNS 25

struct signer {
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE priv;
    CK_RV rv;
    CK_BYTE sig[THREAD_SIGNS][64];
    CK_ULONG len[THREAD_SIGNS];
};

static void *signer_run(void *arg)
{
    struct signer *w = arg;
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};

    for (int i = 0; i < THREAD_SIGNS && w->rv == CKR_OK; i++) {
        w->len[i] = sizeof(w->sig[i]);
        w->rv = p11->C_SignInit(w->s, &m, w->priv);
        if (w->rv == CKR_OK) {
            w->rv = p11->C_Sign(w->s, (CK_BYTE_PTR)msg, MSG_LEN, w->sig[i],
                                &w->len[i]);
        }
    }
    return NULL;
}

static void test_two_threads(void **state)
{
    CK_OBJECT_HANDLE pub, priv, pub2, priv2;
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    struct signer *w = calloc(2, sizeof(*w));
    pthread_t th[2];
    EVP_PKEY *k[2];

    (void)state;
    assert_non_null(w);
    gen_ec(&c_p256, &pub, &priv);
    gen_ec(&c_p256, &pub2, &priv2);
    k[0] = pkey_of(S, pub);
    k[1] = pkey_of(S, pub2);
    w[0].s = p11_open_rw();
    w[1].s = p11_open_rw();
    w[0].priv = priv;
    w[1].priv = priv2;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, signer_run, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_rv(w[i].rv, CKR_OK);
        for (int j = 0; j < THREAD_SIGNS; j++) {
            assert_int_equal(w[i].len[j], 64);
            assert_true(ossl_verify_ecdsa(k[i], "SHA256", msg, MSG_LEN,
                                          w[i].sig[j], 64));
        }
        assert_rv(verify_rv(&m, i == 0 ? pub : pub2, msg, MSG_LEN,
                            w[i].sig[THREAD_SIGNS - 1], 64),
                  CKR_OK);
        assert_rv(p11->C_CloseSession(w[i].s), CKR_OK);
        EVP_PKEY_free(k[i]);
    }
    free(w);
}

/* One thread signs in a loop while another closes the session under it:
 * the close waits for the call under way, and the signer then sees the
 * session gone. */
static void test_close_while_signing(void **state)
{
    CK_OBJECT_HANDLE pub, priv;
    struct signer *w = calloc(1, sizeof(*w));
    struct timespec ts = {0, 5 * 1000 * 1000};
    pthread_t th;
    CK_RV rv;

    (void)state;
    assert_non_null(w);
    gen_ec(&c_p256, &pub, &priv);
    w->s = p11_open_rw();
    w->priv = priv;
    assert_int_equal(pthread_create(&th, NULL, signer_run, w), 0);
    nanosleep(&ts, NULL); /* let it sign a few times: not required */
    rv = p11->C_CloseSession(w->s);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_rv(rv, CKR_OK);
    rv = w->rv;
    free(w);
    if (rv != CKR_OK && rv != CKR_SESSION_HANDLE_INVALID &&
        rv != CKR_SESSION_CLOSED) {
        print_error("signer after close: %s\n", p11_rv_name(rv));
        fail();
    }
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_crypto, p11_teardown)

int p11_group_crypto(void)
{
    const struct CMUnitTest tests[] = {
        T(test_mechanism_list),
        T(test_digest),
        T(test_digest_key),
        T(test_rsa_2048),
        T(test_rsa_sizes),
        T(test_rsa_openssl_signs),
        T(test_ec_curves),
        T(test_ec_params_by_name),
        T(test_ec_openssl_signs),
        T(test_eddsa),
        T(test_ecdh),
        T(test_ecdh_errors),
        T(test_hmac),
        T(test_generated_attributes),
        T(test_session_keys),
        T(test_keygen_template_errors),
        T(test_operation_state),
        T(test_buffers_rsa),
        T(test_key_errors),
        T(test_mechanism_errors),
        T(test_data_errors),
        T(test_ownership),
        T(test_logout_ends_operations),
        T(test_roles),
        T(test_roles_preco),
        T(test_two_threads),
        T(test_close_while_signing),
    };

    return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
