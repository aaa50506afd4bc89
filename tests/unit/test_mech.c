/*
 * test_mech.c - the mechanism table and the crypto operations through the
 * core API (hsm.h), checked against OpenSSL used directly.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "hsm/hsm.h"
#include "mechtest.h"
#include "hsm/mech.h"

#define PW(s) (const uint8_t *)(s), strlen(s)
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t OID_P256[] = {0x06, 0x08, 0x2A, 0x86, 0x48,
                                   0xCE, 0x3D, 0x03, 0x01, 0x07};
static const uint8_t OID_P384[] = {0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22};
static const uint8_t OID_P521[] = {0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23};
static const uint8_t OID_K256[] = {0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x0A};
static const uint8_t OID_ED25519[] = {0x06, 0x03, 0x2B, 0x65, 0x70};
static const uint8_t OID_X25519[] = {0x06, 0x03, 0x2B, 0x65, 0x6E};
static const uint8_t NAME_ED448[] = "\x13\x0a"
                                    "edwards448";
static const uint8_t NAME_P224[] = "\x13\x09"
                                   "secp224r1";
static const uint8_t NAME_X448[] = "\x13\x08"
                                   "curve448";

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

struct fx {
    char dir[64];
    struct config cfg;
    hsm_t *hsm;
    hsm_conn_t *a, *b; /* alice, bob */
    hsm_sid_t sa, sb;
    /* alice's keys, made once */
    hsm_oid_t rsa_pub, rsa_priv;       /* token pair */
    hsm_oid_t ec_pub, ec_priv;         /* P-256 session pair */
    hsm_oid_t ed_pub, ed_priv;         /* Ed25519 */
    hsm_oid_t ed4_pub, ed4_priv;       /* Ed448 */
    hsm_oid_t hmac;                    /* 32-byte generic secret, readable */
    hsm_oid_t tok_ec_pub, tok_ec_priv; /* token P-256 pair */
};

/* ------------------------------------------------------------ helpers */

static void gen_pair(struct fx *f, CK_MECHANISM_TYPE m, const CK_ATTRIBUTE *pt,
                     CK_ULONG pn, const CK_ATTRIBUTE *vt, CK_ULONG vn,
                     hsm_oid_t *pub, hsm_oid_t *priv)
{
    CK_MECHANISM mech = {m, NULL, 0};

    assert_int_equal(
        t_generate_key_pair(f->a, f->sa, &mech, pt, pn, vt, vn, pub, priv),
        CKR_OK);
}

static void gen_ec(struct fx *f, CK_MECHANISM_TYPE m, const uint8_t *params,
                   size_t plen, bool token, hsm_oid_t *pub, hsm_oid_t *priv)
{
    CK_BBOOL *tok = token ? &yes : &no;
    CK_ATTRIBUTE pt[] = {
        {CKA_EC_PARAMS, (void *)params, plen},
        {CKA_TOKEN, tok, 1},
    };
    /* Not sensitive: the ECDH tests read what they derive, and a key
     * derived from a sensitive key is sensitive. */
    CK_ATTRIBUTE vt[] = {
        {CKA_TOKEN, tok, 1},
        {CKA_DERIVE, &yes, 1},
        {CKA_SENSITIVE, &no, 1},
    };

    gen_pair(f, m, pt, N(pt), vt, N(vt), pub, priv);
}

/* One attribute of an object (malloc'd copy); asserts it is readable. */
static uint8_t *get_attr(struct fx *f, hsm_oid_t oid, CK_ATTRIBUTE_TYPE type,
                         size_t *len)
{
    hsm_attr_t a;
    uint8_t *v;

    assert_int_equal(hsm_object_get(f->a, f->sa, oid, &type, 1, &a), CKR_OK);
    assert_int_equal(a.status, HSM_ATTR_OK);
    v = a.value;
    *len = a.len;
    return v;
}

static CK_ULONG get_ulong(struct fx *f, hsm_oid_t oid, CK_ATTRIBUTE_TYPE type)
{
    size_t len;
    uint8_t *v = get_attr(f, oid, type, &len);
    CK_ULONG u;

    assert_int_equal(len, sizeof(u));
    memcpy(&u, v, sizeof(u));
    free(v);
    return u;
}

static bool get_bool(struct fx *f, hsm_oid_t oid, CK_ATTRIBUTE_TYPE type)
{
    size_t len;
    uint8_t *v = get_attr(f, oid, type, &len);
    bool b;

    assert_int_equal(len, 1);
    b = v[0] == CK_TRUE;
    free(v);
    return b;
}

/* The OpenSSL key of CKA_PUBLIC_KEY_INFO. */
static EVP_PKEY *ossl_pub(struct fx *f, hsm_oid_t oid)
{
    size_t len;
    uint8_t *der = get_attr(f, oid, CKA_PUBLIC_KEY_INFO, &len);
    const unsigned char *p = der;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)len);

    assert_non_null(k);
    free(der);
    return k;
}

/* Sign in one step through the core (asking the length first). */
static CK_RV do_sign(hsm_conn_t *c, hsm_sid_t sid, CK_MECHANISM *m,
                     hsm_oid_t key, const void *data, size_t dlen, uint8_t *out,
                     size_t *outlen)
{
    size_t need = 0;
    CK_RV rv = t_op_init(c, sid, HSM_OPK_SIGN, m, key);

    if (rv != CKR_OK) {
        return rv;
    }
    assert_int_equal(
        hsm_op_output_len(c, sid, HSM_OPK_SIGN, false, dlen, &need), CKR_OK);
    assert_true(need <= *outlen);
    *outlen = need;
    return hsm_op_oneshot(c, sid, HSM_OPK_SIGN, data, dlen, out, outlen);
}

static CK_RV do_verify(hsm_conn_t *c, hsm_sid_t sid, CK_MECHANISM *m,
                       hsm_oid_t key, const void *data, size_t dlen,
                       const uint8_t *sig, size_t slen)
{
    CK_RV rv = t_op_init(c, sid, HSM_OPK_VERIFY, m, key);

    if (rv != CKR_OK) {
        return rv;
    }
    return hsm_op_verify(c, sid, data, dlen, true, sig, slen);
}

static CK_RV do_crypt(hsm_conn_t *c, hsm_sid_t sid, hsm_opkind_t kind,
                      CK_MECHANISM *m, hsm_oid_t key, const void *in,
                      size_t inlen, uint8_t *out, size_t *outlen)
{
    CK_RV rv = t_op_init(c, sid, kind, m, key);

    if (rv != CKR_OK) {
        return rv;
    }
    return hsm_op_oneshot(c, sid, kind, in, inlen, out, outlen);
}

/* r || s -> DER for OpenSSL. */
static size_t raw_to_der(const uint8_t *raw, size_t rawlen, uint8_t *der)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    unsigned char *p = der;
    int n;

    assert_non_null(s);
    assert_int_equal(
        ECDSA_SIG_set0(s, BN_bin2bn(raw, (int)rawlen / 2, NULL),
                       BN_bin2bn(raw + rawlen / 2, (int)rawlen / 2, NULL)),
        1);
    n = i2d_ECDSA_SIG(s, &p);
    ECDSA_SIG_free(s);
    assert_true(n > 0);
    return (size_t)n;
}

/* OpenSSL's verdict on a signature (md NULL: raw ECDSA or EdDSA). */
static int ossl_verify(EVP_PKEY *k, const char *md, int pad, int salt,
                       const uint8_t *data, size_t dlen, const uint8_t *sig,
                       size_t slen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int r;

    assert_non_null(ctx);
    assert_int_equal(
        EVP_DigestVerifyInit_ex(ctx, &pctx, md, NULL, NULL, k, NULL), 1);
    if (pad != 0) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, pad), 1);
        if (pad == RSA_PKCS1_PSS_PADDING) {
            assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt), 1);
        }
    }
    r = EVP_DigestVerify(ctx, sig, slen, data, dlen);
    EVP_MD_CTX_free(ctx);
    return r;
}

static const uint8_t msg[] = "the quick brown fox jumps over the lazy dog";

/* ------------------------------------------------------------ fixture */

static int group_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    hsm_sid_t co;
    CK_ULONG bits = 2048;
    CK_ATTRIBUTE rpub[] = {
        {CKA_MODULUS_BITS, &bits, sizeof(bits)},
        {CKA_TOKEN, &yes, 1},
        {CKA_ID, "rsa1", 4},
    };
    CK_ATTRIBUTE rpriv[] = {{CKA_TOKEN, &yes, 1}};
    CK_ULONG len32 = 32;
    CK_ATTRIBUTE st[] = {
        {CKA_VALUE_LEN, &len32, sizeof(len32)},
        {CKA_SENSITIVE, &no, 1},
    };
    CK_MECHANISM gen = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};

    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-mech-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        return -1;
    }
    config_defaults(&f->cfg);
    snprintf(f->cfg.store, sizeof(f->cfg.store), "%s/store", f->dir);
    f->cfg.kdf_iterations = 1000;
    if (hsm_open(&f->cfg, &f->hsm) != CKR_OK ||
        hsm_conn_open(f->hsm, &f->a) != CKR_OK ||
        hsm_conn_open(f->hsm, &f->b) != CKR_OK ||
        hsm_init_token(f->hsm, NULL, PW("copass1"), "test") != CKR_OK ||
        hsm_session_open(f->a, true, &co) != CKR_OK ||
        hsm_login(f->a, HSM_LOGIN_SO, NULL, PW("copass1")) != CKR_OK ||
        hsm_init_pin(f->a, "alice", PW("alicepw1")) != CKR_OK ||
        hsm_init_pin(f->a, "bob", PW("bobpass1")) != CKR_OK ||
        hsm_logout(f->a) != CKR_OK || hsm_session_close(f->a, co) != CKR_OK ||
        hsm_login(f->a, HSM_LOGIN_USER, "alice", PW("alicepw1")) != CKR_OK ||
        hsm_login(f->b, HSM_LOGIN_USER, "bob", PW("bobpass1")) != CKR_OK ||
        hsm_session_open(f->a, true, &f->sa) != CKR_OK ||
        hsm_session_open(f->b, true, &f->sb) != CKR_OK) {
        return -1;
    }
    *state = f;
    gen_pair(f, CKM_RSA_PKCS_KEY_PAIR_GEN, rpub, N(rpub), rpriv, N(rpriv),
             &f->rsa_pub, &f->rsa_priv);
    gen_ec(f, CKM_EC_KEY_PAIR_GEN, OID_P256, sizeof(OID_P256), false,
           &f->ec_pub, &f->ec_priv);
    gen_ec(f, CKM_EC_KEY_PAIR_GEN, OID_P256, sizeof(OID_P256), true,
           &f->tok_ec_pub, &f->tok_ec_priv);
    gen_ec(f, CKM_EC_EDWARDS_KEY_PAIR_GEN, OID_ED25519, sizeof(OID_ED25519),
           false, &f->ed_pub, &f->ed_priv);
    gen_ec(f, CKM_EC_EDWARDS_KEY_PAIR_GEN, NAME_ED448, sizeof(NAME_ED448) - 1,
           false, &f->ed4_pub, &f->ed4_priv);
    if (t_generate_key(f->a, f->sa, &gen, st, N(st), &f->hmac) != CKR_OK) {
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];

    hsm_close(f->hsm);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) {
        return -1;
    }
    free(f);
    return 0;
}

/* ------------------------------------------------------------ the table */

static void test_table(void **state)
{
    size_t n = 0, ln = 0;
    const mech_row_t *t = mech_table(&n);
    CK_MECHANISM_TYPE *list = NULL;
    hsm_mech_info_t info;
    const CK_FLAGS ops =
        CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT | CKF_DIGEST;
    const CK_FLAGS gens = CKF_GENERATE | CKF_GENERATE_KEY_PAIR | CKF_DERIVE;

    (void)state;
    assert_true(n > 40);
    for (size_t i = 0; i < n; i++) {
        const mech_row_t *r = &t[i];

        if (i > 0) {
            assert_true(t[i - 1].type < r->type); /* sorted, no duplicate */
        }
        assert_non_null(r->check);
        assert_true(r->min_key <= r->max_key);
        assert_true((r->flags & (ops | gens | CKF_WRAP | CKF_UNWRAP)) != 0);
        /* Either an operation with an implementation, or key making; a
         * key-wrap row has its cipher but offers no operation (key
         * separation), and that only for AES key wrap. */
        assert_true(((r->flags & ops) != 0 || r->kw_cipher) ==
                    (r->impl != NULL));
        if (r->kw_cipher) {
            assert_true(r->type == CKM_AES_KEY_WRAP ||
                        r->type == CKM_AES_KEY_WRAP_KWP);
            assert_int_equal(r->flags, CKF_WRAP | CKF_UNWRAP);
            assert_int_equal(mech_flags(NULL, r), CKF_WRAP | CKF_UNWRAP);
        }
        assert_false((r->flags & ops) != 0 && (r->flags & gens) != 0);
        if (r->flags & CKF_DIGEST) {
            assert_int_equal(r->nkt, 0);
            assert_true(cops_hash_len(r->hash) > 0);
        } else {
            assert_true(r->nkt >= 1 && r->nkt <= MECH_KT_MAX);
            assert_true(r->max_key > 0);
        }
        /* multipart exactly where the family takes updates */
        assert_int_equal(r->multipart,
                         r->impl != NULL && r->impl->update != NULL);
        assert_ptr_equal(mech_find(r->type), r);
    }
    assert_null(mech_find(CKM_MD5));

    assert_int_equal(hsm_mech_list(NULL, &list, &ln), CKR_OK);
    assert_int_equal(ln, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(list[i], t[i].type);
    }
    free(list);

    assert_int_equal(hsm_mech_info(NULL, CKM_RSA_PKCS_KEY_PAIR_GEN, &info),
                     CKR_OK);
    assert_int_equal(info.min_key, 1024);
    assert_int_equal(info.max_key, 8192);
    assert_int_equal(info.flags, CKF_GENERATE_KEY_PAIR);
    assert_int_equal(hsm_mech_info(NULL, CKM_ECDSA, &info), CKR_OK);
    assert_int_equal(info.min_key, 224);
    assert_int_equal(info.max_key, 521);
    assert_true(
        (info.flags & (CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_OID |
                       CKF_EC_UNCOMPRESS)) ==
        (CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_OID | CKF_EC_UNCOMPRESS));
    assert_false(info.flags & CKF_HW);
    assert_int_equal(hsm_mech_info(NULL, CKM_ECDH1_DERIVE, &info), CKR_OK);
    assert_true(info.flags & CKF_DERIVE);
    assert_int_equal(hsm_mech_info(NULL, CKM_SHA256, &info), CKR_OK);
    assert_int_equal(info.flags, CKF_DIGEST);
    assert_int_equal(hsm_mech_info(NULL, CKM_RSA_PKCS, &info), CKR_OK);
    assert_int_equal(info.flags, CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT |
                                     CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP);
    assert_int_equal(hsm_mech_info(NULL, CKM_MD5, &info),
                     CKR_MECHANISM_INVALID);
}

/* ------------------------------------------------------------ RSA */

static void test_rsa_generated(void **state)
{
    struct fx *f = *state;
    size_t l1, l2, l3;
    uint8_t *a = get_attr(f, f->rsa_pub, CKA_PUBLIC_KEY_INFO, &l1);
    uint8_t *b = get_attr(f, f->rsa_priv, CKA_PUBLIC_KEY_INFO, &l2);
    uint8_t *m = get_attr(f, f->rsa_priv, CKA_MODULUS, &l3);
    CK_ATTRIBUTE_TYPE t = CKA_PRIVATE_EXPONENT;
    hsm_attr_t pe;

    assert_int_equal(l1, l2);
    assert_memory_equal(a, b, l1);
    assert_int_equal(l3, 256);
    free(a);
    free(b);
    free(m);
    a = get_attr(f, f->rsa_priv, CKA_ID, &l1);
    assert_int_equal(l1, 4);
    assert_memory_equal(a, "rsa1", 4);
    free(a);
    a = get_attr(f, f->rsa_pub, CKA_PUBLIC_EXPONENT, &l1);
    assert_int_equal(l1, 3);
    assert_memory_equal(a, "\x01\x00\x01", 3);
    free(a);
    assert_int_equal(get_ulong(f, f->rsa_pub, CKA_KEY_GEN_MECHANISM),
                     CKM_RSA_PKCS_KEY_PAIR_GEN);
    assert_int_equal(get_ulong(f, f->rsa_priv, CKA_KEY_GEN_MECHANISM),
                     CKM_RSA_PKCS_KEY_PAIR_GEN);
    assert_true(get_bool(f, f->rsa_pub, CKA_LOCAL));
    assert_true(get_bool(f, f->rsa_priv, CKA_LOCAL));
    assert_true(get_bool(f, f->rsa_priv, CKA_ALWAYS_SENSITIVE));
    assert_false(get_bool(f, f->rsa_priv, CKA_NEVER_EXTRACTABLE));
    assert_int_equal(get_ulong(f, f->rsa_pub, CKA_MODULUS_BITS), 2048);
    /* sensitive: the private exponent is not readable */
    assert_int_equal(hsm_object_get(f->a, f->sa, f->rsa_priv, &t, 1, &pe),
                     CKR_OK);
    assert_int_equal(pe.status, HSM_ATTR_SENSITIVE);
}

static void test_rsa_sign(void **state)
{
    struct fx *f = *state;
    static const struct {
        CK_MECHANISM_TYPE m;
        const char *md;
        bool pss;
        CK_MECHANISM_TYPE hash;
        CK_RSA_PKCS_MGF_TYPE mgf;
        size_t hlen;
    } cases[] = {
        {CKM_SHA1_RSA_PKCS, "SHA1", false, 0, 0, 20},
        {CKM_SHA224_RSA_PKCS, "SHA224", false, 0, 0, 28},
        {CKM_SHA256_RSA_PKCS, "SHA256", false, 0, 0, 32},
        {CKM_SHA384_RSA_PKCS, "SHA384", false, 0, 0, 48},
        {CKM_SHA512_RSA_PKCS, "SHA512", false, 0, 0, 64},
        {CKM_SHA3_256_RSA_PKCS, "SHA3-256", false, 0, 0, 32},
        {CKM_SHA1_RSA_PKCS_PSS, "SHA1", true, CKM_SHA_1, CKG_MGF1_SHA1, 20},
        {CKM_SHA224_RSA_PKCS_PSS, "SHA224", true, CKM_SHA224, CKG_MGF1_SHA224,
         28},
        {CKM_SHA256_RSA_PKCS_PSS, "SHA256", true, CKM_SHA256, CKG_MGF1_SHA256,
         32},
        {CKM_SHA384_RSA_PKCS_PSS, "SHA384", true, CKM_SHA384, CKG_MGF1_SHA384,
         48},
        {CKM_SHA512_RSA_PKCS_PSS, "SHA512", true, CKM_SHA512, CKG_MGF1_SHA512,
         64},
        {CKM_SHA3_512_RSA_PKCS_PSS, "SHA3-512", true, CKM_SHA3_512,
         CKG_MGF1_SHA3_512, 64},
    };
    EVP_PKEY *pk = ossl_pub(f, f->rsa_pub);
    uint8_t sig[512], h[64];
    size_t slen;
    unsigned int hl;

    for (size_t i = 0; i < N(cases); i++) {
        CK_RSA_PKCS_PSS_PARAMS pss = {cases[i].hash, cases[i].mgf,
                                      cases[i].hlen};
        CK_MECHANISM m = {cases[i].m, NULL, 0};

        if (cases[i].pss) {
            m.pParameter = &pss;
            m.ulParameterLen = sizeof(pss);
        }
        slen = sizeof(sig);
        assert_int_equal(
            do_sign(f->a, f->sa, &m, f->rsa_priv, msg, sizeof(msg), sig, &slen),
            CKR_OK);
        assert_int_equal(slen, 256);
        assert_int_equal(ossl_verify(pk, cases[i].md,
                                     cases[i].pss ? RSA_PKCS1_PSS_PADDING
                                                  : RSA_PKCS1_PADDING,
                                     (int)cases[i].hlen, msg, sizeof(msg), sig,
                                     slen),
                         1);
        assert_int_equal(
            do_verify(f->a, f->sa, &m, f->rsa_pub, msg, sizeof(msg), sig, slen),
            CKR_OK);
        sig[10] ^= 1;
        assert_int_equal(
            do_verify(f->a, f->sa, &m, f->rsa_pub, msg, sizeof(msg), sig, slen),
            CKR_SIGNATURE_INVALID);
        /* multi-part gives the same verdict */
        sig[10] ^= 1;
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_VERIFY, &m, f->rsa_pub),
                         CKR_OK);
        assert_int_equal(
            hsm_op_update(f->a, f->sa, HSM_OPK_VERIFY, msg, 10, NULL, NULL),
            CKR_OK);
        assert_int_equal(hsm_op_update(f->a, f->sa, HSM_OPK_VERIFY, msg + 10,
                                       sizeof(msg) - 10, NULL, NULL),
                         CKR_OK);
        assert_int_equal(hsm_op_verify(f->a, f->sa, NULL, 0, false, sig, slen),
                         CKR_OK);
    }

    /* Raw PSS over a SHA-256 hash, verified by OpenSSL. */
    {
        CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
        CK_MECHANISM m = {CKM_RSA_PKCS_PSS, &pss, sizeof(pss)};

        assert_int_equal(
            EVP_Digest(msg, sizeof(msg), h, &hl, EVP_sha256(), NULL), 1);
        slen = sizeof(sig);
        assert_int_equal(
            do_sign(f->a, f->sa, &m, f->rsa_priv, h, 32, sig, &slen), CKR_OK);
        assert_int_equal(ossl_verify(pk, "SHA256", RSA_PKCS1_PSS_PADDING, 32,
                                     msg, sizeof(msg), sig, slen),
                         1);
        assert_int_equal(
            do_verify(f->a, f->sa, &m, f->rsa_pub, h, 32, sig, slen), CKR_OK);
        /* data length must be the hash length */
        slen = sizeof(sig);
        assert_int_equal(
            do_sign(f->a, f->sa, &m, f->rsa_priv, h, 31, sig, &slen),
            CKR_DATA_LEN_RANGE);
    }

    /* CKM_RSA_PKCS over a DigestInfo equals CKM_SHA256_RSA_PKCS. */
    {
        static const uint8_t prefix[] = {
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
            0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
        uint8_t di[sizeof(prefix) + 32];
        CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};

        memcpy(di, prefix, sizeof(prefix));
        EVP_Digest(msg, sizeof(msg), di + sizeof(prefix), &hl, EVP_sha256(),
                   NULL);
        slen = sizeof(sig);
        assert_int_equal(
            do_sign(f->a, f->sa, &m, f->rsa_priv, di, sizeof(di), sig, &slen),
            CKR_OK);
        assert_int_equal(ossl_verify(pk, "SHA256", RSA_PKCS1_PADDING, 0, msg,
                                     sizeof(msg), sig, slen),
                         1);
        assert_int_equal(
            do_verify(f->a, f->sa, &m, f->rsa_pub, di, sizeof(di), sig, slen),
            CKR_OK);
        /* at most k - 11 bytes */
        slen = sizeof(sig);
        assert_int_equal(
            do_sign(f->a, f->sa, &m, f->rsa_priv, sig, 246, sig, &slen),
            CKR_DATA_LEN_RANGE);
        assert_int_equal(
            do_verify(f->a, f->sa, &m, f->rsa_pub, di, sizeof(di), sig, 255),
            CKR_SIGNATURE_LEN_RANGE);
    }

    /* Raw RSA: sign then verify; the signature is k bytes. */
    {
        CK_MECHANISM m = {CKM_RSA_X_509, NULL, 0};
        uint8_t in[256];

        memset(in, 0x11, sizeof(in));
        slen = sizeof(sig);
        assert_int_equal(
            do_sign(f->a, f->sa, &m, f->rsa_priv, in, 100, sig, &slen), CKR_OK);
        assert_int_equal(slen, 256);
        assert_int_equal(
            do_verify(f->a, f->sa, &m, f->rsa_pub, in, 100, sig, slen), CKR_OK);
        assert_int_equal(
            do_verify(f->a, f->sa, &m, f->rsa_pub, in, 99, sig, slen),
            CKR_SIGNATURE_INVALID);
        slen = sizeof(sig);
        assert_int_equal(
            do_sign(f->a, f->sa, &m, f->rsa_priv, in, 257, sig, &slen),
            CKR_DATA_LEN_RANGE);
        /* single-part only */
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &m, f->rsa_priv),
                         CKR_OK);
        assert_int_equal(
            hsm_op_update(f->a, f->sa, HSM_OPK_SIGN, in, 10, NULL, NULL),
            CKR_FUNCTION_NOT_SUPPORTED);
        assert_int_equal(hsm_op_final(f->a, f->sa, HSM_OPK_SIGN, sig, &slen),
                         CKR_OPERATION_NOT_INITIALIZED);
    }
    EVP_PKEY_free(pk);
}

static void test_rsa_crypt(void **state)
{
    struct fx *f = *state;
    uint8_t ct[256], pt[256];
    size_t clen, plen;
    CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA1,
                                    CKZ_DATA_SPECIFIED, "label", 5};
    CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
    CK_MECHANISM x509 = {CKM_RSA_X_509, NULL, 0};
    CK_MECHANISM om = {CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep)};
    EVP_PKEY *pk = ossl_pub(f, f->rsa_pub);
    EVP_PKEY_CTX *ctx;

    /* PKCS#1 v1.5 */
    clen = sizeof(ct);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_ENCRYPT, &pkcs, f->rsa_pub,
                              msg, sizeof(msg), ct, &clen),
                     CKR_OK);
    assert_int_equal(clen, 256);
    plen = sizeof(pt);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_DECRYPT, &pkcs, f->rsa_priv,
                              ct, clen, pt, &plen),
                     CKR_OK);
    assert_int_equal(plen, sizeof(msg));
    assert_memory_equal(pt, msg, plen);
    /* a ciphertext that is not k bytes, and one with a broken padding */
    plen = sizeof(pt);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_DECRYPT, &pkcs, f->rsa_priv,
                              ct, clen - 1, pt, &plen),
                     CKR_ENCRYPTED_DATA_LEN_RANGE);
    memset(pt, 0, sizeof(pt));
    pt[255] = 5; /* m = 5: no 00 02 header */
    clen = sizeof(ct);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_ENCRYPT, &x509, f->rsa_pub,
                              pt, 256, ct, &clen),
                     CKR_OK);
    plen = sizeof(pt);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_DECRYPT, &pkcs, f->rsa_priv,
                              ct, clen, pt, &plen),
                     CKR_ENCRYPTED_DATA_INVALID);
    /* raw decryption gives the value back */
    plen = sizeof(pt);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_DECRYPT, &x509, f->rsa_priv,
                              ct, clen, pt, &plen),
                     CKR_OK);
    assert_int_equal(plen, 256);
    assert_int_equal(pt[255], 5);
    /* too long for PKCS#1 v1.5 */
    clen = sizeof(ct);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_ENCRYPT, &pkcs, f->rsa_pub,
                              pt, 246, ct, &clen),
                     CKR_DATA_LEN_RANGE);

    /* OAEP with a label, encrypted by OpenSSL, decrypted by the token */
    ctx = EVP_PKEY_CTX_new(pk, NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_encrypt_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING),
                     1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha1()), 1);
    assert_int_equal(
        EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, OPENSSL_memdup("label", 5), 5),
        1);
    clen = sizeof(ct);
    assert_int_equal(EVP_PKEY_encrypt(ctx, ct, &clen, msg, sizeof(msg)), 1);
    EVP_PKEY_CTX_free(ctx);
    plen = sizeof(pt);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_DECRYPT, &om, f->rsa_priv,
                              ct, clen, pt, &plen),
                     CKR_OK);
    assert_int_equal(plen, sizeof(msg));
    assert_memory_equal(pt, msg, plen);
    /* round trip on the token; a wrong label fails */
    clen = sizeof(ct);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_ENCRYPT, &om, f->rsa_pub,
                              msg, sizeof(msg), ct, &clen),
                     CKR_OK);
    oaep.pSourceData = "lab3l";
    plen = sizeof(pt);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_DECRYPT, &om, f->rsa_priv,
                              ct, clen, pt, &plen),
                     CKR_ENCRYPTED_DATA_INVALID);
    /* without a label, SHA-512 */
    oaep.hashAlg = CKM_SHA512;
    oaep.mgf = CKG_MGF1_SHA512;
    oaep.pSourceData = NULL;
    oaep.ulSourceDataLen = 0;
    clen = sizeof(ct);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_ENCRYPT, &om, f->rsa_pub,
                              msg, sizeof(msg), ct, &clen),
                     CKR_OK);
    plen = sizeof(pt);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_DECRYPT, &om, f->rsa_priv,
                              ct, clen, pt, &plen),
                     CKR_OK);
    assert_memory_equal(pt, msg, sizeof(msg));
    /* too long: k - 2*64 - 2 = 126 */
    clen = sizeof(ct);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_ENCRYPT, &om, f->rsa_pub, pt,
                              127, ct, &clen),
                     CKR_DATA_LEN_RANGE);
    /* parameter errors */
    oaep.hashAlg = CKM_MD5;
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_ENCRYPT, &om, f->rsa_pub),
                     CKR_MECHANISM_PARAM_INVALID);
    oaep.hashAlg = CKM_SHA256;
    om.ulParameterLen = sizeof(oaep) - 1;
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_ENCRYPT, &om, f->rsa_pub),
                     CKR_MECHANISM_PARAM_INVALID);
    EVP_PKEY_free(pk);
}

/* A key made by OpenSSL, imported with hsm_object_create: the token signs,
 * OpenSSL verifies; OpenSSL signs, the token verifies. */
static void test_rsa_import(void **state)
{
    struct fx *f = *state;
    EVP_PKEY *k = EVP_RSA_gen(2048);
    static const char *names[] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    static const CK_ATTRIBUTE_TYPE types[] = {
        CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
        CKA_PRIME_2, CKA_EXPONENT_1,      CKA_EXPONENT_2,       CKA_COEFFICIENT,
    };
    uint8_t v[8][512];
    CK_OBJECT_CLASS pc = CKO_PRIVATE_KEY, uc = CKO_PUBLIC_KEY;
    CK_KEY_TYPE kt = CKK_RSA;
    CK_ATTRIBUTE priv[11], pub[4];
    CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
    hsm_oid_t po, uo;
    uint8_t sig[256];
    size_t slen = sizeof(sig);
    EVP_MD_CTX *ctx;

    assert_non_null(k);
    priv[0] = (CK_ATTRIBUTE){CKA_CLASS, &pc, sizeof(pc)};
    priv[1] = (CK_ATTRIBUTE){CKA_KEY_TYPE, &kt, sizeof(kt)};
    priv[2] = (CK_ATTRIBUTE){CKA_SIGN, &yes, 1};
    for (size_t i = 0; i < 8; i++) {
        BIGNUM *bn = NULL;

        assert_int_equal(EVP_PKEY_get_bn_param(k, names[i], &bn), 1);
        priv[3 + i] =
            (CK_ATTRIBUTE){types[i], v[i], (CK_ULONG)BN_bn2bin(bn, v[i])};
        BN_free(bn);
    }
    pub[0] = (CK_ATTRIBUTE){CKA_CLASS, &uc, sizeof(uc)};
    pub[1] = (CK_ATTRIBUTE){CKA_KEY_TYPE, &kt, sizeof(kt)};
    pub[2] = priv[3];
    pub[3] = priv[4];
    assert_int_equal(hsm_object_create(f->a, f->sa, priv, 11, &po), CKR_OK);
    assert_int_equal(hsm_object_create(f->a, f->sa, pub, 4, &uo), CKR_OK);

    assert_int_equal(do_sign(f->a, f->sa, &m, po, msg, sizeof(msg), sig, &slen),
                     CKR_OK);
    assert_int_equal(ossl_verify(k, "SHA256", RSA_PKCS1_PADDING, 0, msg,
                                 sizeof(msg), sig, slen),
                     1);
    ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
    slen = sizeof(sig);
    assert_int_equal(EVP_DigestSign(ctx, sig, &slen, msg, sizeof(msg)), 1);
    EVP_MD_CTX_free(ctx);
    assert_int_equal(
        do_verify(f->a, f->sa, &m, uo, msg, sizeof(msg), sig, slen), CKR_OK);
    EVP_PKEY_free(k);
}

/* ------------------------------------------------------------ EC */

static void test_ec_sign(void **state)
{
    struct fx *f = *state;
    static const struct {
        CK_MECHANISM_TYPE m;
        const char *md;
    } cases[] = {
        {CKM_ECDSA_SHA1, "SHA1"},     {CKM_ECDSA_SHA224, "SHA224"},
        {CKM_ECDSA_SHA256, "SHA256"}, {CKM_ECDSA_SHA384, "SHA384"},
        {CKM_ECDSA_SHA512, "SHA512"}, {CKM_ECDSA_SHA3_256, "SHA3-256"},
    };
    hsm_oid_t keys[][2] = {{f->ec_pub, f->ec_priv},
                           {f->tok_ec_pub, f->tok_ec_priv}};
    uint8_t sig[132], der[160], h[64];
    size_t slen, dlen, l;
    unsigned int hl;
    uint8_t *pt;

    pt = get_attr(f, f->ec_pub, CKA_EC_POINT, &l);
    assert_int_equal(l, 67); /* 04 41 04 x y */
    assert_int_equal(pt[0], 0x04);
    assert_int_equal(pt[1], 65);
    assert_int_equal(pt[2], 0x04);
    free(pt);
    pt = get_attr(f, f->ec_priv, CKA_EC_PARAMS, &l);
    assert_int_equal(l, sizeof(OID_P256));
    free(pt);
    assert_int_equal(get_ulong(f, f->ec_priv, CKA_KEY_GEN_MECHANISM),
                     CKM_EC_KEY_PAIR_GEN);

    for (size_t k = 0; k < N(keys); k++) {
        EVP_PKEY *pk = ossl_pub(f, keys[k][0]);

        for (size_t i = 0; i < N(cases); i++) {
            CK_MECHANISM m = {cases[i].m, NULL, 0};

            slen = sizeof(sig);
            assert_int_equal(do_sign(f->a, f->sa, &m, keys[k][1], msg,
                                     sizeof(msg), sig, &slen),
                             CKR_OK);
            assert_int_equal(slen, 64);
            dlen = raw_to_der(sig, slen, der);
            assert_int_equal(
                ossl_verify(pk, cases[i].md, 0, 0, msg, sizeof(msg), der, dlen),
                1);
            assert_int_equal(do_verify(f->a, f->sa, &m, keys[k][0], msg,
                                       sizeof(msg), sig, slen),
                             CKR_OK);
            sig[5] ^= 0x40;
            assert_int_equal(do_verify(f->a, f->sa, &m, keys[k][0], msg,
                                       sizeof(msg), sig, slen),
                             CKR_SIGNATURE_INVALID);
            assert_int_equal(do_verify(f->a, f->sa, &m, keys[k][0], msg,
                                       sizeof(msg), sig, 63),
                             CKR_SIGNATURE_LEN_RANGE);
        }
        /* raw ECDSA over a hash */
        {
            CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
            EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);

            EVP_Digest(msg, sizeof(msg), h, &hl, EVP_sha256(), NULL);
            slen = sizeof(sig);
            assert_int_equal(
                do_sign(f->a, f->sa, &m, keys[k][1], h, 32, sig, &slen),
                CKR_OK);
            dlen = raw_to_der(sig, slen, der);
            assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
            assert_int_equal(EVP_PKEY_verify(ctx, der, dlen, h, 32), 1);
            EVP_PKEY_CTX_free(ctx);
            assert_int_equal(
                do_verify(f->a, f->sa, &m, keys[k][0], h, 32, sig, slen),
                CKR_OK);
            /* a SHA-512 hash on P-256: truncated, still fine */
            EVP_Digest(msg, sizeof(msg), h, &hl, EVP_sha512(), NULL);
            slen = sizeof(sig);
            assert_int_equal(
                do_sign(f->a, f->sa, &m, keys[k][1], h, 64, sig, &slen),
                CKR_OK);
            assert_int_equal(
                do_verify(f->a, f->sa, &m, keys[k][0], h, 64, sig, slen),
                CKR_OK);
        }
        EVP_PKEY_free(pk);
    }
}

static void test_ec_curves(void **state)
{
    struct fx *f = *state;
    static const struct {
        const uint8_t *params;
        size_t len;
        size_t siglen;
    } cases[] = {
        {NAME_P224, sizeof(NAME_P224) - 1, 56},
        {OID_P384, sizeof(OID_P384), 96},
        {OID_P521, sizeof(OID_P521), 132},
        {OID_K256, sizeof(OID_K256), 64},
    };
    static const uint8_t bad[] = {0x06, 0x03, 0x2B, 0x65, 0x01};
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    uint8_t sig[132];
    size_t slen;
    hsm_oid_t pub, priv;
    CK_ATTRIBUTE pt[] = {{CKA_EC_PARAMS, (void *)bad, sizeof(bad)}};
    CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};

    for (size_t i = 0; i < N(cases); i++) {
        EVP_PKEY *pk;
        uint8_t der[160];
        size_t dlen;

        gen_ec(f, CKM_EC_KEY_PAIR_GEN, cases[i].params, cases[i].len, false,
               &pub, &priv);
        slen = sizeof(sig);
        assert_int_equal(
            do_sign(f->a, f->sa, &m, priv, msg, sizeof(msg), sig, &slen),
            CKR_OK);
        assert_int_equal(slen, cases[i].siglen);
        pk = ossl_pub(f, pub);
        dlen = raw_to_der(sig, slen, der);
        assert_int_equal(
            ossl_verify(pk, "SHA256", 0, 0, msg, sizeof(msg), der, dlen), 1);
        EVP_PKEY_free(pk);
    }
    /* unknown curve; an Edwards curve on the EC mechanism */
    assert_int_equal(
        t_generate_key_pair(f->a, f->sa, &gen, pt, 1, NULL, 0, &pub, &priv),
        CKR_CURVE_NOT_SUPPORTED);
    pt[0].pValue = (void *)OID_ED25519;
    pt[0].ulValueLen = sizeof(OID_ED25519);
    assert_int_equal(
        t_generate_key_pair(f->a, f->sa, &gen, pt, 1, NULL, 0, &pub, &priv),
        CKR_CURVE_NOT_SUPPORTED);
    /* no CKA_EC_PARAMS */
    assert_int_equal(
        t_generate_key_pair(f->a, f->sa, &gen, NULL, 0, NULL, 0, &pub, &priv),
        CKR_TEMPLATE_INCOMPLETE);
}

/* OpenSSL signs with its own P-256 key; the token verifies with the public
 * key imported as a raw point. */
static void test_ec_import(void **state)
{
    struct fx *f = *state;
    EVP_PKEY *k = EVP_EC_gen("P-256");
    uint8_t point[65], der[80], sig[64];
    size_t plen = 0, dlen = sizeof(der);
    CK_OBJECT_CLASS uc = CKO_PUBLIC_KEY;
    CK_KEY_TYPE kt = CKK_EC;
    CK_ATTRIBUTE pub[] = {
        {CKA_CLASS, &uc, sizeof(uc)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_EC_PARAMS, (void *)OID_P256, sizeof(OID_P256)},
        {CKA_EC_POINT, point, sizeof(point)},
    };
    CK_MECHANISM m = {CKM_ECDSA_SHA384, NULL, 0};
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const unsigned char *p = der;
    ECDSA_SIG *es;
    hsm_oid_t uo;

    assert_non_null(k);
    assert_int_equal(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY,
                                                     point, sizeof(point),
                                                     &plen),
                     1);
    assert_int_equal(plen, 65);
    assert_int_equal(hsm_object_create(f->a, f->sa, pub, N(pub), &uo), CKR_OK);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha384(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &dlen, msg, sizeof(msg)), 1);
    EVP_MD_CTX_free(ctx);
    es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
    assert_non_null(es);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
    ECDSA_SIG_free(es);
    assert_int_equal(
        do_verify(f->a, f->sa, &m, uo, msg, sizeof(msg), sig, sizeof(sig)),
        CKR_OK);
    EVP_PKEY_free(k);
}

/* ------------------------------------------------------------ EdDSA */

static void test_eddsa(void **state)
{
    struct fx *f = *state;
    hsm_oid_t keys[][2] = {{f->ed_pub, f->ed_priv}, {f->ed4_pub, f->ed4_priv}};
    size_t lens[] = {64, 114};
    CK_MECHANISM m = {CKM_EDDSA, NULL, 0};
    CK_EDDSA_PARAMS ep = {CK_FALSE, 0, NULL};
    uint8_t sig[114];
    size_t slen, l;
    uint8_t *v;

    v = get_attr(f, f->ed_pub, CKA_EC_POINT, &l);
    assert_int_equal(l, 34);
    assert_int_equal(v[0], 0x04);
    free(v);
    for (size_t k = 0; k < N(keys); k++) {
        EVP_PKEY *pk = ossl_pub(f, keys[k][0]);

        slen = sizeof(sig);
        assert_int_equal(
            do_sign(f->a, f->sa, &m, keys[k][1], msg, sizeof(msg), sig, &slen),
            CKR_OK);
        assert_int_equal(slen, lens[k]);
        assert_int_equal(
            ossl_verify(pk, NULL, 0, 0, msg, sizeof(msg), sig, slen), 1);
        assert_int_equal(
            do_verify(f->a, f->sa, &m, keys[k][0], msg, sizeof(msg), sig, slen),
            CKR_OK);
        sig[0] ^= 1;
        assert_int_equal(
            do_verify(f->a, f->sa, &m, keys[k][0], msg, sizeof(msg), sig, slen),
            CKR_SIGNATURE_INVALID);
        assert_int_equal(do_verify(f->a, f->sa, &m, keys[k][0], msg,
                                   sizeof(msg), sig, slen - 1),
                         CKR_SIGNATURE_LEN_RANGE);
        EVP_PKEY_free(pk);
    }
    /* CK_EDDSA_PARAMS without ph and context: pure EdDSA too */
    m.pParameter = &ep;
    m.ulParameterLen = sizeof(ep);
    slen = sizeof(sig);
    assert_int_equal(
        do_sign(f->a, f->sa, &m, f->ed_priv, msg, sizeof(msg), sig, &slen),
        CKR_OK);
    m.ulParameterLen = sizeof(ep) + 1;
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &m, f->ed_priv),
                     CKR_MECHANISM_PARAM_INVALID);
#ifndef OSSL_SIGNATURE_PARAM_INSTANCE
    /* Ed25519ph needs OpenSSL 3.2 */
    ep.phFlag = CK_TRUE;
    m.ulParameterLen = sizeof(ep);
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &m, f->ed_priv),
                     CKR_MECHANISM_PARAM_INVALID);
#endif
    /* no multi-part EdDSA */
    m.pParameter = NULL;
    m.ulParameterLen = 0;
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &m, f->ed_priv),
                     CKR_OK);
    assert_int_equal(
        hsm_op_update(f->a, f->sa, HSM_OPK_SIGN, msg, 3, NULL, NULL),
        CKR_FUNCTION_NOT_SUPPORTED);
    /* the operation ended */
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &m, f->ed_priv),
                     CKR_OK);
    hsm_op_abort(f->a, f->sa, HSM_OPK_SIGN);
}

/* ------------------------------------------------------------ ECDH */

static hsm_oid_t derive(struct fx *f, hsm_oid_t base, CK_EC_KDF_TYPE kdf,
                        const void *shared, size_t slen, const void *pub,
                        size_t plen, CK_ULONG len, CK_RV want)
{
    CK_ECDH1_DERIVE_PARAMS dp = {kdf, slen, (CK_BYTE_PTR)shared, plen,
                                 (CK_BYTE_PTR)pub};
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, &dp, sizeof(dp)};
    CK_ATTRIBUTE t[] = {
        {CKA_SENSITIVE, &no, 1},
        {CKA_EXTRACTABLE, &yes, 1},
        {CKA_VALUE_LEN, &len, sizeof(len)},
    };
    hsm_oid_t oid = 0;

    assert_int_equal(t_derive_key(f->a, f->sa, &m, base, t, len ? 3 : 2, &oid),
                     want);
    return oid;
}

static void test_ecdh(void **state)
{
    struct fx *f = *state;
    struct {
        CK_MECHANISM_TYPE gen;
        const uint8_t *params;
        size_t plen;
        size_t zlen;
    } cases[] = {
        {CKM_EC_KEY_PAIR_GEN, OID_P256, sizeof(OID_P256), 32},
        {CKM_EC_MONTGOMERY_KEY_PAIR_GEN, OID_X25519, sizeof(OID_X25519), 32},
        {CKM_EC_MONTGOMERY_KEY_PAIR_GEN, NAME_X448, sizeof(NAME_X448) - 1, 56},
    };

    for (size_t i = 0; i < N(cases); i++) {
        hsm_oid_t p1, k1, p2, k2, s1, s2;
        uint8_t *pt1, *pt2, *v1, *v2;
        size_t l1, l2, n1, n2;

        gen_ec(f, cases[i].gen, cases[i].params, cases[i].plen, false, &p1,
               &k1);
        gen_ec(f, cases[i].gen, cases[i].params, cases[i].plen, false, &p2,
               &k2);
        pt1 = get_attr(f, p1, CKA_EC_POINT, &l1);
        pt2 = get_attr(f, p2, CKA_EC_POINT, &l2);
        /* CKD_NULL: the raw secret; peer point DER-wrapped on one side,
         * raw on the other */
        s1 = derive(f, k1, CKD_NULL, NULL, 0, pt2, l2, 0, CKR_OK);
        s2 = derive(f, k2, CKD_NULL, NULL, 0, pt1 + 2, l1 - 2, 0, CKR_OK);
        v1 = get_attr(f, s1, CKA_VALUE, &n1);
        v2 = get_attr(f, s2, CKA_VALUE, &n2);
        assert_int_equal(n1, cases[i].zlen);
        assert_int_equal(n2, n1);
        assert_memory_equal(v1, v2, n1);
        assert_int_equal(get_ulong(f, s1, CKA_VALUE_LEN), cases[i].zlen);
        assert_false(get_bool(f, s1, CKA_LOCAL));
        assert_false(get_bool(f, s1, CKA_ALWAYS_SENSITIVE));
        {
            /* X9.63 with SHA-256 and shared info, checked with OpenSSL */
            EVP_KDF *kdf = EVP_KDF_fetch(NULL, "X963KDF", NULL);
            EVP_KDF_CTX *kc = EVP_KDF_CTX_new(kdf);
            OSSL_PARAM prm[4];
            uint8_t want[40];
            uint8_t *v3;
            size_t n3;
            hsm_oid_t s3;

            prm[0] = OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0);
            prm[1] = OSSL_PARAM_construct_octet_string("key", v1, n1);
            prm[2] = OSSL_PARAM_construct_octet_string("info", "info", 4);
            prm[3] = OSSL_PARAM_construct_end();
            assert_int_equal(EVP_KDF_derive(kc, want, sizeof(want), prm), 1);
            EVP_KDF_CTX_free(kc);
            EVP_KDF_free(kdf);
            s3 = derive(f, k1, CKD_SHA256_KDF, "info", 4, pt2, l2, 40, CKR_OK);
            v3 = get_attr(f, s3, CKA_VALUE, &n3);
            assert_int_equal(n3, 40);
            assert_memory_equal(v3, want, 40);
            free(v3);
        }
        /* CKD_NULL with shared data; longer than Z; a point off size */
        derive(f, k1, CKD_NULL, "x", 1, pt2, l2, 0,
               CKR_MECHANISM_PARAM_INVALID);
        derive(f, k1, CKD_NULL, NULL, 0, pt2, l2, 100,
               CKR_TEMPLATE_INCONSISTENT);
        derive(f, k1, CKD_SHA1_KDF, NULL, 0, pt2, l2 - 1, 16,
               CKR_MECHANISM_PARAM_INVALID);
        /* bob may not derive from alice's key (session object: not even
         * visible to his connection) */
        {
            CK_ECDH1_DERIVE_PARAMS dp = {CKD_NULL, 0, NULL, l2, pt2};
            CK_MECHANISM m = {CKM_ECDH1_DERIVE, &dp, sizeof(dp)};
            hsm_oid_t o;

            assert_int_equal(t_derive_key(f->b, f->sb, &m, k1, NULL, 0, &o),
                             CKR_KEY_HANDLE_INVALID);
            /* a public key is no base key */
            assert_int_equal(t_derive_key(f->a, f->sa, &m, p1, NULL, 0, &o),
                             CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        free(pt1);
        free(pt2);
        free(v1);
        free(v2);
    }
    /* an invalid P-256 point (not on the curve) */
    {
        uint8_t bad[65];
        hsm_oid_t o;
        CK_ECDH1_DERIVE_PARAMS dp = {CKD_NULL, 0, NULL, sizeof(bad), bad};
        CK_MECHANISM m = {CKM_ECDH1_DERIVE, &dp, sizeof(dp)};

        memset(bad, 0x01, sizeof(bad));
        bad[0] = 0x04;
        assert_int_equal(t_derive_key(f->a, f->sa, &m, f->ec_priv, NULL, 0, &o),
                         CKR_MECHANISM_PARAM_INVALID);
        dp.kdf = 0x999;
        assert_int_equal(t_derive_key(f->a, f->sa, &m, f->ec_priv, NULL, 0, &o),
                         CKR_MECHANISM_PARAM_INVALID);
    }
}

/* ------------------------------------------------------------ digests */

static void test_digest(void **state)
{
    struct fx *f = *state;
    static const struct {
        CK_MECHANISM_TYPE m;
        const char *name;
    } cases[] = {
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
    uint8_t want[64], got[64];
    unsigned int wl;
    size_t gl, need;

    for (size_t i = 0; i < N(cases); i++) {
        CK_MECHANISM m = {cases[i].m, NULL, 0};
        EVP_MD *md = EVP_MD_fetch(NULL, cases[i].name, NULL);

        assert_non_null(md);
        assert_int_equal(EVP_Digest(msg, sizeof(msg), want, &wl, md, NULL), 1);
        EVP_MD_free(md);
        /* one-shot */
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_DIGEST, &m, 0), CKR_OK);
        assert_int_equal(hsm_op_output_len(f->a, f->sa, HSM_OPK_DIGEST, false,
                                           sizeof(msg), &need),
                         CKR_OK);
        assert_int_equal(need, wl);
        /* a length query (no buffer) and too small a buffer both give
         * the length and keep the operation */
        gl = 0;
        assert_int_equal(hsm_op_oneshot(f->a, f->sa, HSM_OPK_DIGEST, msg,
                                        sizeof(msg), NULL, &gl),
                         CKR_OK);
        assert_int_equal(gl, wl);
        gl = wl - 1;
        assert_int_equal(hsm_op_oneshot(f->a, f->sa, HSM_OPK_DIGEST, msg,
                                        sizeof(msg), got, &gl),
                         CKR_BUFFER_TOO_SMALL);
        assert_int_equal(gl, wl);
        gl = sizeof(got);
        assert_int_equal(hsm_op_oneshot(f->a, f->sa, HSM_OPK_DIGEST, msg,
                                        sizeof(msg), got, &gl),
                         CKR_OK);
        assert_int_equal(gl, wl);
        assert_memory_equal(got, want, wl);
        /* multi-part */
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_DIGEST, &m, 0), CKR_OK);
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_DIGEST, &m, 0),
                         CKR_OPERATION_ACTIVE);
        assert_int_equal(
            hsm_op_update(f->a, f->sa, HSM_OPK_DIGEST, msg, 7, NULL, NULL),
            CKR_OK);
        assert_int_equal(hsm_op_update(f->a, f->sa, HSM_OPK_DIGEST, msg + 7,
                                       sizeof(msg) - 7, NULL, NULL),
                         CKR_OK);
        gl = sizeof(got);
        assert_int_equal(hsm_op_final(f->a, f->sa, HSM_OPK_DIGEST, got, &gl),
                         CKR_OK);
        assert_memory_equal(got, want, wl);
        assert_int_equal(hsm_op_final(f->a, f->sa, HSM_OPK_DIGEST, got, &gl),
                         CKR_OPERATION_NOT_INITIALIZED);
    }
    /* C_DigestKey = digest of the key value */
    {
        CK_MECHANISM m = {CKM_SHA256, NULL, 0};
        size_t kl;
        uint8_t *kv = get_attr(f, f->hmac, CKA_VALUE, &kl);

        EVP_Digest(kv, kl, want, &wl, EVP_sha256(), NULL);
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_DIGEST, &m, 0), CKR_OK);
        assert_int_equal(hsm_op_digest_key(f->a, f->sa, f->rsa_priv),
                         CKR_KEY_INDIGESTIBLE);
        assert_int_equal(hsm_op_digest_key(f->a, f->sa, 999999),
                         CKR_KEY_HANDLE_INVALID);
        assert_int_equal(hsm_op_digest_key(f->a, f->sa, f->hmac), CKR_OK);
        gl = sizeof(got);
        assert_int_equal(hsm_op_final(f->a, f->sa, HSM_OPK_DIGEST, got, &gl),
                         CKR_OK);
        assert_memory_equal(got, want, 32);
        free(kv);
        /* a parameter where none is allowed */
        m.pParameter = got;
        m.ulParameterLen = 1;
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_DIGEST, &m, 0),
                         CKR_MECHANISM_PARAM_INVALID);
    }
}

/* ------------------------------------------------------------ HMAC */

static void test_hmac(void **state)
{
    struct fx *f = *state;
    static const struct {
        CK_MECHANISM_TYPE m, gen;
        const char *md;
        size_t len;
    } cases[] = {
        {CKM_SHA_1_HMAC, CKM_SHA_1_HMAC_GENERAL, "SHA1", 20},
        {CKM_SHA224_HMAC, CKM_SHA224_HMAC_GENERAL, "SHA224", 28},
        {CKM_SHA256_HMAC, CKM_SHA256_HMAC_GENERAL, "SHA256", 32},
        {CKM_SHA384_HMAC, CKM_SHA384_HMAC_GENERAL, "SHA384", 48},
        {CKM_SHA512_HMAC, CKM_SHA512_HMAC_GENERAL, "SHA512", 64},
    };
    size_t kl, gl;
    uint8_t *kv = get_attr(f, f->hmac, CKA_VALUE, &kl);
    uint8_t want[64], got[64];
    unsigned int wl;

    assert_int_equal(kl, 32);
    assert_int_equal(get_ulong(f, f->hmac, CKA_KEY_GEN_MECHANISM),
                     CKM_GENERIC_SECRET_KEY_GEN);
    for (size_t i = 0; i < N(cases); i++) {
        CK_MECHANISM m = {cases[i].m, NULL, 0};
        CK_MAC_GENERAL_PARAMS glen = 10;
        CK_MECHANISM mg = {cases[i].gen, &glen, sizeof(glen)};

        assert_non_null(HMAC(EVP_get_digestbyname(cases[i].md), kv, (int)kl,
                             msg, sizeof(msg), want, &wl));
        assert_int_equal(wl, cases[i].len);
        gl = sizeof(got);
        assert_int_equal(
            do_sign(f->a, f->sa, &m, f->hmac, msg, sizeof(msg), got, &gl),
            CKR_OK);
        assert_int_equal(gl, wl);
        assert_memory_equal(got, want, wl);
        assert_int_equal(
            do_verify(f->a, f->sa, &m, f->hmac, msg, sizeof(msg), want, wl),
            CKR_OK);
        want[0] ^= 1;
        assert_int_equal(
            do_verify(f->a, f->sa, &m, f->hmac, msg, sizeof(msg), want, wl),
            CKR_SIGNATURE_INVALID);
        want[0] ^= 1;
        assert_int_equal(
            do_verify(f->a, f->sa, &m, f->hmac, msg, sizeof(msg), want, wl - 1),
            CKR_SIGNATURE_LEN_RANGE);
        /* _GENERAL: the first 10 bytes */
        gl = sizeof(got);
        assert_int_equal(
            do_sign(f->a, f->sa, &mg, f->hmac, msg, sizeof(msg), got, &gl),
            CKR_OK);
        assert_int_equal(gl, 10);
        assert_memory_equal(got, want, 10);
        assert_int_equal(
            do_verify(f->a, f->sa, &mg, f->hmac, msg, sizeof(msg), want, 10),
            CKR_OK);
        assert_int_equal(
            do_verify(f->a, f->sa, &mg, f->hmac, msg, sizeof(msg), want, 11),
            CKR_SIGNATURE_LEN_RANGE);
        glen = cases[i].len + 1;
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &mg, f->hmac),
                         CKR_MECHANISM_PARAM_INVALID);
        mg.ulParameterLen = 4;
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &mg, f->hmac),
                         CKR_MECHANISM_PARAM_INVALID);
        /* multi-part */
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &m, f->hmac),
                         CKR_OK);
        assert_int_equal(
            hsm_op_update(f->a, f->sa, HSM_OPK_SIGN, msg, 5, NULL, NULL),
            CKR_OK);
        assert_int_equal(hsm_op_update(f->a, f->sa, HSM_OPK_SIGN, msg + 5,
                                       sizeof(msg) - 5, NULL, NULL),
                         CKR_OK);
        gl = sizeof(got);
        assert_int_equal(hsm_op_final(f->a, f->sa, HSM_OPK_SIGN, got, &gl),
                         CKR_OK);
        assert_memory_equal(got, want, wl);
    }
    free(kv);
    /* a 3.0 HMAC key type: CKK_SHA256_HMAC works with SHA-256 HMAC only */
    {
        CK_OBJECT_CLASS sc = CKO_SECRET_KEY;
        CK_KEY_TYPE kt = CKK_SHA256_HMAC;
        CK_ATTRIBUTE t[] = {
            {CKA_CLASS, &sc, sizeof(sc)},
            {CKA_KEY_TYPE, &kt, sizeof(kt)},
            {CKA_VALUE, "0123456789", 10},
        };
        CK_MECHANISM m = {CKM_SHA256_HMAC, NULL, 0};
        hsm_oid_t o;

        assert_int_equal(hsm_object_create(f->a, f->sa, t, N(t), &o), CKR_OK);
        gl = sizeof(got);
        assert_int_equal(
            do_sign(f->a, f->sa, &m, o, msg, sizeof(msg), got, &gl), CKR_OK);
        HMAC(EVP_sha256(), "0123456789", 10, msg, sizeof(msg), want, &wl);
        assert_memory_equal(got, want, 32);
        m.mechanism = CKM_SHA384_HMAC;
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &m, o),
                         CKR_KEY_TYPE_INCONSISTENT);
    }
}

/* ------------------------------------------------------------ op reuse */

/* A session secret key with a known value (CKK_GENERIC_SECRET or AES). */
static hsm_oid_t make_secret(struct fx *f, CK_KEY_TYPE kt, const void *v,
                             size_t len)
{
    CK_OBJECT_CLASS sc = CKO_SECRET_KEY;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &sc, sizeof(sc)}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE, (void *)v, len},  {CKA_SIGN, &yes, 1},
        {CKA_ENCRYPT, &yes, 1},       {CKA_DECRYPT, &yes, 1},
    };
    hsm_oid_t o;
    size_t n = kt == CKK_AES ? N(t) : N(t) - 2;

    assert_int_equal(hsm_object_create(f->a, f->sa, t, n, &o), CKR_OK);
    return o;
}

static void check_hmac(struct fx *f, hsm_oid_t key, const void *kv, size_t kl,
                       const uint8_t *data, size_t dlen)
{
    CK_MECHANISM m = {CKM_SHA256_HMAC, NULL, 0};
    uint8_t got[32], want[32];
    size_t gl = sizeof(got);
    unsigned int wl = 0;

    assert_int_equal(do_sign(f->a, f->sa, &m, key, data, dlen, got, &gl),
                     CKR_OK);
    assert_non_null(HMAC(EVP_sha256(), kv, (int)kl, data, dlen, want, &wl));
    assert_int_equal(gl, wl);
    assert_memory_equal(got, want, wl);
}

static void check_gcm(struct fx *f, hsm_oid_t key, const uint8_t *kv,
                      const uint8_t *iv, size_t ivlen, const uint8_t *aad,
                      size_t aadlen)
{
    CK_GCM_PARAMS g = {(CK_BYTE_PTR)iv,  ivlen,  ivlen * 8,
                       (CK_BYTE_PTR)aad, aadlen, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &g, sizeof(g)};
    uint8_t got[sizeof(msg) + 16], want[sizeof(msg) + 16], back[sizeof(msg)];
    size_t gl = sizeof(got), bl = sizeof(back);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;

    assert_non_null(ctx);
    assert_int_equal(
        EVP_EncryptInit_ex2(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL), 1);
    assert_int_equal(
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, (int)ivlen, NULL), 1);
    assert_int_equal(EVP_EncryptInit_ex2(ctx, NULL, kv, iv, NULL), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, want, &n, msg, sizeof(msg)), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, want + n, &fin), 1);
    assert_int_equal(
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, want + n + fin), 1);
    EVP_CIPHER_CTX_free(ctx);
    assert_int_equal(do_crypt(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key, msg,
                              sizeof(msg), got, &gl),
                     CKR_OK);
    assert_int_equal(gl, sizeof(want));
    assert_memory_equal(got, want, sizeof(want));
    /* a damaged tag, then the right one, on the same session */
    got[gl - 1] ^= 1;
    assert_int_equal(
        do_crypt(f->a, f->sa, HSM_OPK_DECRYPT, &m, key, got, gl, back, &bl),
        CKR_ENCRYPTED_DATA_INVALID);
    got[gl - 1] ^= 1;
    bl = sizeof(back);
    assert_int_equal(
        do_crypt(f->a, f->sa, HSM_OPK_DECRYPT, &m, key, got, gl, back, &bl),
        CKR_OK);
    assert_int_equal(bl, sizeof(msg));
    assert_memory_equal(back, msg, sizeof(msg));
}

/*
 * A finished operation is kept by its session and reset for the next init
 * with the same family and key: every result must still be the one a new
 * operation gives, and the kept operation must never outlive its key's
 * permission or its key.
 */
/* An AES-256 block mode through the token (one-shot and multi-part
 * encryption, one-shot decryption), against OpenSSL. */
static void check_block(struct fx *f, hsm_oid_t key, const uint8_t *kv,
                        CK_MECHANISM_TYPE mt, const uint8_t *iv, size_t len)
{
    CK_MECHANISM m = {mt, (void *)iv, iv != NULL ? 16 : 0};
    const EVP_CIPHER *c =
        mt == CKM_AES_ECB ? EVP_aes_256_ecb() : EVP_aes_256_cbc();
    static const uint8_t data[64] = {
        0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
        16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
        32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
        48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    };
    uint8_t got[sizeof(data) + 16], want[sizeof(data) + 16], back[sizeof(data)];
    size_t gl = sizeof(got), bl = sizeof(back), part = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;

    assert_non_null(ctx);
    assert_true(len >= 16 && len <= sizeof(data));
    assert_int_equal(EVP_EncryptInit_ex2(ctx, c, kv, iv, NULL), 1);
    assert_int_equal(EVP_CIPHER_CTX_set_padding(ctx, mt == CKM_AES_CBC_PAD), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, want, &n, data, (int)len), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, want + n, &fin), 1);
    EVP_CIPHER_CTX_free(ctx);
    assert_int_equal(
        do_crypt(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key, data, len, got, &gl),
        CKR_OK);
    assert_int_equal(gl, (size_t)(n + fin));
    assert_memory_equal(got, want, gl);
    assert_int_equal(
        do_crypt(f->a, f->sa, HSM_OPK_DECRYPT, &m, key, got, gl, back, &bl),
        CKR_OK);
    assert_int_equal(bl, len);
    assert_memory_equal(back, data, len);
    /* the same as two parts and a final */
    memset(got, 0, sizeof(got));
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key), CKR_OK);
    gl = sizeof(got);
    assert_int_equal(
        hsm_op_update(f->a, f->sa, HSM_OPK_ENCRYPT, data, 16, got, &gl),
        CKR_OK);
    part = gl;
    gl = sizeof(got) - part;
    assert_int_equal(hsm_op_update(f->a, f->sa, HSM_OPK_ENCRYPT, data + 16,
                                   len - 16, got + part, &gl),
                     CKR_OK);
    part += gl;
    gl = sizeof(got) - part;
    assert_int_equal(
        hsm_op_final(f->a, f->sa, HSM_OPK_ENCRYPT, got + part, &gl), CKR_OK);
    assert_int_equal(part + gl, (size_t)(n + fin));
    assert_memory_equal(got, want, part + gl);
}

static void test_op_reuse(void **state)
{
    struct fx *f = *state;
    static const uint8_t k1[32] = {1, 2, 3}, k2[32] = {9, 9, 9};
    static const uint8_t k3[20] = {7, 7, 7};
    static const uint8_t akey[32] = {0x42, 0x43};
    static const uint8_t iv1[12] = {1}, iv2[12] = {2}, iv3[16] = {3};
    static const uint8_t ivs[20] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
                                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    static const uint8_t aad1[] = "header one", aad2[] = "h2";
    CK_MECHANISM m = {CKM_SHA256_HMAC, NULL, 0};
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0}, sha384 = {CKM_SHA384, NULL, 0};
    CK_ATTRIBUTE nosign = {CKA_SIGN, &no, 1};
    hsm_oid_t a, b, c, t, aes;
    uint8_t d[64], want[64];
    size_t dl;
    unsigned int wl;

    a = make_secret(f, CKK_GENERIC_SECRET, k1, sizeof(k1));
    b = make_secret(f, CKK_GENERIC_SECRET, k2, sizeof(k2));
    for (size_t i = 1; i < sizeof(msg); i += 13) {
        check_hmac(f, a, k1, sizeof(k1), msg, i); /* reset each time */
    }
    check_hmac(f, b, k2, sizeof(k2), msg, sizeof(msg)); /* another key */
    check_hmac(f, a, k1, sizeof(k1), msg, sizeof(msg));
    /* a changed usage flag is checked before any kept op is reused */
    assert_int_equal(hsm_object_set(f->a, f->sa, a, &nosign, 1), CKR_OK);
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &m, a),
                     CKR_KEY_FUNCTION_NOT_PERMITTED);
    /* the kept op of a destroyed key goes with it */
    check_hmac(f, b, k2, sizeof(k2), msg, 5);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, b), CKR_OK);
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &m, b),
                     CKR_KEY_HANDLE_INVALID);
    c = make_secret(f, CKK_GENERIC_SECRET, k3, sizeof(k3));
    check_hmac(f, c, k3, sizeof(k3), msg, sizeof(msg));
    assert_int_equal(hsm_object_destroy(f->a, f->sa, a), CKR_OK);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, c), CKR_OK);
    /* a token key destroyed from another session of the same user */
    {
        CK_OBJECT_CLASS sc = CKO_SECRET_KEY;
        CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
        CK_ATTRIBUTE tt[] = {
            {CKA_CLASS, &sc, sizeof(sc)},
            {CKA_KEY_TYPE, &kt, sizeof(kt)},
            {CKA_VALUE, (void *)k2, sizeof(k2)},
            {CKA_TOKEN, &yes, 1},
        };
        hsm_sid_t other;

        assert_int_equal(hsm_object_create(f->a, f->sa, tt, N(tt), &t), CKR_OK);
        check_hmac(f, t, k2, sizeof(k2), msg, sizeof(msg));
        assert_int_equal(hsm_session_open(f->a, true, &other), CKR_OK);
        assert_int_equal(hsm_object_destroy(f->a, other, t), CKR_OK);
        assert_int_equal(hsm_session_close(f->a, other), CKR_OK);
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &m, t),
                         CKR_KEY_HANDLE_INVALID);
    }
    /* digests: the same hash resets, another one makes a new op */
    for (int i = 0; i < 3; i++) {
        CK_MECHANISM *dm = i == 1 ? &sha384 : &sha;
        const EVP_MD *md = i == 1 ? EVP_sha384() : EVP_sha256();

        dl = sizeof(d);
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_DIGEST, dm, 0), CKR_OK);
        assert_int_equal(hsm_op_oneshot(f->a, f->sa, HSM_OPK_DIGEST, msg,
                                        sizeof(msg) - (size_t)i, d, &dl),
                         CKR_OK);
        assert_int_equal(
            EVP_Digest(msg, sizeof(msg) - (size_t)i, want, &wl, md, NULL), 1);
        assert_int_equal(dl, wl);
        assert_memory_equal(d, want, wl);
    }
    /* AES-GCM: new IVs and AADs on the kept context, then a new IV length */
    aes = make_secret(f, CKK_AES, akey, sizeof(akey));
    check_gcm(f, aes, akey, iv1, sizeof(iv1), aad1, sizeof(aad1));
    check_gcm(f, aes, akey, iv2, sizeof(iv2), aad2, sizeof(aad2));
    check_gcm(f, aes, akey, iv2, sizeof(iv2), NULL, 0);
    check_gcm(f, aes, akey, iv3, sizeof(iv3), aad1, sizeof(aad1));
    check_gcm(f, aes, akey, iv1, sizeof(iv1), aad2, sizeof(aad2));
    /* CBC-PAD, CBC and ECB: new IVs and lengths on the kept context */
    check_block(f, aes, akey, CKM_AES_CBC_PAD, ivs, 33);
    check_block(f, aes, akey, CKM_AES_CBC_PAD, ivs + 1, 48);
    check_block(f, aes, akey, CKM_AES_CBC_PAD, ivs, 17);
    check_block(f, aes, akey, CKM_AES_CBC, ivs + 2, 64);
    check_block(f, aes, akey, CKM_AES_CBC, ivs, 32);
    check_block(f, aes, akey, CKM_AES_ECB, NULL, 48);
    check_block(f, aes, akey, CKM_AES_ECB, NULL, 32);
    check_block(f, aes, akey, CKM_AES_CBC_PAD, ivs + 3, 20);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, aes), CKR_OK);
}

/* ------------------------------------------------------------ errors */

static void test_errors(void **state)
{
    struct fx *f = *state;
    CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM pkcs = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
    CK_MECHANISM md5 = {CKM_MD5, NULL, 0};
    CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA384, CKG_MGF1_SHA256, 32};
    CK_MECHANISM pssm = {CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof(pss)};
    CK_MECHANISM allowed[] = {{CKM_ECDSA_SHA256, NULL, 0}};
    CK_MECHANISM_TYPE only = CKM_ECDSA_SHA256;
    CK_ULONG bits = 512;
    CK_ATTRIBUTE small[] = {{CKA_MODULUS_BITS, &bits, sizeof(bits)}};
    CK_ATTRIBUTE nosign[] = {{CKA_SIGN, &no, 1}};
    CK_ATTRIBUTE pt[] = {
        {CKA_EC_PARAMS, (void *)OID_P256, sizeof(OID_P256)},
    };
    CK_ATTRIBUTE vt[] = {
        {CKA_ALLOWED_MECHANISMS, &only, sizeof(only)},
    };
    CK_MECHANISM rsagen = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    hsm_oid_t pub, priv, p2, k2;
    uint8_t sig[256];
    size_t slen;

    /* not a key / a key the user cannot see */
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &ecdsa, 424242),
                     CKR_KEY_HANDLE_INVALID);
    /* wrong key type, wrong key class (a public key does not sign) */
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &ecdsa, f->rsa_priv),
                     CKR_KEY_TYPE_INCONSISTENT);
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &pkcs, f->rsa_pub),
                     CKR_KEY_FUNCTION_NOT_PERMITTED);
    /* mechanism unknown or not for this operation */
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &md5, f->rsa_priv),
                     CKR_MECHANISM_INVALID);
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &sha, f->rsa_priv),
                     CKR_MECHANISM_INVALID);
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_ENCRYPT, &ecdsa, f->ec_pub),
                     CKR_MECHANISM_INVALID);
    /* PSS: hashAlg must be the mechanism's; wrong length */
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &pssm, f->rsa_priv),
                     CKR_MECHANISM_PARAM_INVALID);
    pss.hashAlg = CKM_SHA256;
    pssm.ulParameterLen = sizeof(pss) + 1;
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &pssm, f->rsa_priv),
                     CKR_MECHANISM_PARAM_INVALID);
    /* salt too long for the modulus */
    pssm.ulParameterLen = sizeof(pss);
    pss.sLen = 256;
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &pssm, f->rsa_priv),
                     CKR_MECHANISM_PARAM_INVALID);

    /* CKA_SIGN FALSE */
    gen_pair(f, CKM_EC_KEY_PAIR_GEN, pt, N(pt), nosign, N(nosign), &pub, &priv);
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &ecdsa, priv),
                     CKR_KEY_FUNCTION_NOT_PERMITTED);
    /* CKA_ALLOWED_MECHANISMS */
    gen_pair(f, CKM_EC_KEY_PAIR_GEN, pt, N(pt), vt, N(vt), &p2, &k2);
    slen = sizeof(sig);
    assert_int_equal(
        do_sign(f->a, f->sa, allowed, k2, msg, sizeof(msg), sig, &slen),
        CKR_OK);
    ecdsa.mechanism = CKM_ECDSA_SHA384;
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &ecdsa, k2),
                     CKR_KEY_FUNCTION_NOT_PERMITTED);
    ecdsa.mechanism = CKM_ECDSA_SHA256;

    /* key size out of the mechanism's range; template incomplete */
    assert_int_equal(t_generate_key_pair(f->a, f->sa, &rsagen, small, 1, NULL,
                                         0, &pub, &priv),
                     CKR_KEY_SIZE_RANGE);
    assert_int_equal(t_generate_key_pair(f->a, f->sa, &rsagen, NULL, 0, NULL, 0,
                                         &pub, &priv),
                     CKR_TEMPLATE_INCOMPLETE);
    rsagen.ulParameterLen = 1;
    assert_int_equal(t_generate_key_pair(f->a, f->sa, &rsagen, small, 1, NULL,
                                         0, &pub, &priv),
                     CKR_MECHANISM_PARAM_INVALID);
    rsagen.mechanism = CKM_SHA256;
    rsagen.ulParameterLen = 0;
    assert_int_equal(t_generate_key_pair(f->a, f->sa, &rsagen, small, 1, NULL,
                                         0, &pub, &priv),
                     CKR_MECHANISM_INVALID);
    /* an even public exponent */
    {
        CK_ULONG b = 1024;
        CK_ATTRIBUTE t[] = {
            {CKA_MODULUS_BITS, &b, sizeof(b)},
            {CKA_PUBLIC_EXPONENT, "\x01\x00\x00", 3},
        };

        rsagen.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
        assert_int_equal(t_generate_key_pair(f->a, f->sa, &rsagen, t, 2, NULL,
                                             0, &pub, &priv),
                         CKR_ATTRIBUTE_VALUE_INVALID);
    }
    /* operation state */
    assert_int_equal(
        hsm_op_update(f->a, f->sa, HSM_OPK_SIGN, msg, 1, NULL, NULL),
        CKR_OPERATION_NOT_INITIALIZED);
    assert_int_equal(hsm_op_verify(f->a, f->sa, msg, 1, true, sig, 64),
                     CKR_OPERATION_NOT_INITIALIZED);
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &ecdsa, f->ec_priv),
                     CKR_OK);
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &ecdsa, f->ec_priv),
                     CKR_OPERATION_ACTIVE);
    slen = 10;
    assert_int_equal(
        hsm_op_oneshot(f->a, f->sa, HSM_OPK_SIGN, msg, sizeof(msg), sig, &slen),
        CKR_BUFFER_TOO_SMALL);
    assert_int_equal(slen, 64);
    assert_int_equal(
        hsm_op_oneshot(f->a, f->sa, HSM_OPK_SIGN, msg, sizeof(msg), sig, &slen),
        CKR_OK);
    /* sign and verify at once in one session: separate operations */
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &ecdsa, f->ec_priv),
                     CKR_OK);
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_VERIFY, &ecdsa, f->ec_pub),
                     CKR_OK);
    assert_int_equal(
        hsm_op_verify(f->a, f->sa, msg, sizeof(msg), true, sig, slen), CKR_OK);
    hsm_op_abort(f->a, f->sa, HSM_OPK_SIGN);
    assert_int_equal(hsm_op_final(f->a, f->sa, HSM_OPK_SIGN, sig, &slen),
                     CKR_OPERATION_NOT_INITIALIZED);
    /* an open operation dies with its session */
    {
        hsm_sid_t s2;

        assert_int_equal(hsm_session_open(f->a, false, &s2), CKR_OK);
        assert_int_equal(t_op_init(f->a, s2, HSM_OPK_SIGN, &ecdsa, f->ec_priv),
                         CKR_OK);
        assert_int_equal(hsm_session_close(f->a, s2), CKR_OK);
        assert_int_equal(hsm_op_final(f->a, s2, HSM_OPK_SIGN, sig, &slen),
                         CKR_SESSION_HANDLE_INVALID);
    }
    /* a token key pair in a read-only session */
    {
        hsm_sid_t ro;
        CK_ATTRIBUTE tt[] = {
            {CKA_EC_PARAMS, (void *)OID_P256, sizeof(OID_P256)},
            {CKA_TOKEN, &yes, 1},
        };
        CK_MECHANISM ecgen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};

        assert_int_equal(hsm_session_open(f->a, false, &ro), CKR_OK);
        assert_int_equal(
            t_generate_key_pair(f->a, ro, &ecgen, tt, 2, NULL, 0, &pub, &priv),
            CKR_SESSION_READ_ONLY);
        assert_int_equal(hsm_session_close(f->a, ro), CKR_OK);
    }
}

/* ------------------------------------------------------------ ownership */

static void test_ownership(void **state)
{
    struct fx *f = *state;
    CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM pkcs = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_MECHANISM dig = {CKM_SHA256, NULL, 0};
    uint8_t sig[256];
    size_t slen = sizeof(sig);

    /* bob cannot use alice's private token keys ... */
    assert_int_equal(
        t_op_init(f->b, f->sb, HSM_OPK_SIGN, &ecdsa, f->tok_ec_priv),
        CKR_KEY_HANDLE_INVALID);
    assert_int_equal(t_op_init(f->b, f->sb, HSM_OPK_SIGN, &pkcs, f->rsa_priv),
                     CKR_KEY_HANDLE_INVALID);
    /* ... nor her session keys, nor digest her secret */
    assert_int_equal(t_op_init(f->b, f->sb, HSM_OPK_SIGN, &ecdsa, f->ec_priv),
                     CKR_KEY_HANDLE_INVALID);
    assert_int_equal(t_op_init(f->b, f->sb, HSM_OPK_DIGEST, &dig, 0), CKR_OK);
    assert_int_equal(hsm_op_digest_key(f->b, f->sb, f->rsa_priv),
                     CKR_KEY_HANDLE_INVALID);
    hsm_op_abort(f->b, f->sb, HSM_OPK_DIGEST);
    /* ... but verifies with her public token key */
    assert_int_equal(
        do_sign(f->a, f->sa, &pkcs, f->rsa_priv, msg, sizeof(msg), sig, &slen),
        CKR_OK);
    assert_int_equal(
        do_verify(f->b, f->sb, &pkcs, f->rsa_pub, msg, sizeof(msg), sig, slen),
        CKR_OK);
    /* a logged-out connection does nothing */
    {
        hsm_conn_t *c;
        hsm_sid_t s;

        assert_int_equal(hsm_conn_open(f->hsm, &c), CKR_OK);
        assert_int_equal(hsm_session_open(c, false, &s), CKR_OK);
        assert_int_equal(t_op_init(c, s, HSM_OPK_VERIFY, &pkcs, f->rsa_pub),
                         CKR_USER_NOT_LOGGED_IN);
        assert_int_equal(t_op_init(c, s, HSM_OPK_DIGEST, &dig, 0),
                         CKR_USER_NOT_LOGGED_IN);
        hsm_conn_close(c);
    }
}

/* ------------------------------------------------------------ threads */

struct worker {
    struct fx *f;
    hsm_conn_t *c;
    hsm_sid_t sid;
    hsm_oid_t priv, pub;
    CK_MECHANISM_TYPE mech;
    int failures;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    CK_MECHANISM m = {w->mech, NULL, 0};
    uint8_t sig[256];

    for (int i = 0; i < 40; i++) {
        size_t slen = sizeof(sig);

        if (t_op_init(w->c, w->sid, HSM_OPK_SIGN, &m, w->priv) != CKR_OK ||
            hsm_op_oneshot(w->c, w->sid, HSM_OPK_SIGN, msg, sizeof(msg), sig,
                           &slen) != CKR_OK ||
            t_op_init(w->c, w->sid, HSM_OPK_VERIFY, &m, w->pub) != CKR_OK ||
            hsm_op_verify(w->c, w->sid, msg, sizeof(msg), true, sig, slen) !=
                CKR_OK) {
            w->failures++;
        }
    }
    return NULL;
}

/* Sessions of one connection sign in parallel with shared cached keys,
 * while another thread opens and closes sessions (the session array moves
 * under them). */
static void test_parallel(void **state)
{
    struct fx *f = *state;
    struct worker w[4];
    pthread_t th[4];
    hsm_sid_t extra[20];

    for (int i = 0; i < 4; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].f = f;
        w[i].c = f->a;
        assert_int_equal(hsm_session_open(f->a, false, &w[i].sid), CKR_OK);
        w[i].priv = i % 2 == 0 ? f->tok_ec_priv : f->rsa_priv;
        w[i].pub = i % 2 == 0 ? f->tok_ec_pub : f->rsa_pub;
        w[i].mech = i % 2 == 0 ? CKM_ECDSA_SHA256 : CKM_SHA256_RSA_PKCS;
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 20; i++) {
        assert_int_equal(hsm_session_open(f->a, false, &extra[i]), CKR_OK);
    }
    for (int i = 0; i < 20; i++) {
        assert_int_equal(hsm_session_close(f->a, extra[i]), CKR_OK);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
        assert_int_equal(hsm_session_close(f->a, w[i].sid), CKR_OK);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),      cmocka_unit_test(test_rsa_generated),
        cmocka_unit_test(test_rsa_sign),   cmocka_unit_test(test_rsa_crypt),
        cmocka_unit_test(test_rsa_import), cmocka_unit_test(test_ec_sign),
        cmocka_unit_test(test_ec_curves),  cmocka_unit_test(test_ec_import),
        cmocka_unit_test(test_eddsa),      cmocka_unit_test(test_ecdh),
        cmocka_unit_test(test_digest),     cmocka_unit_test(test_hmac),
        cmocka_unit_test(test_op_reuse),   cmocka_unit_test(test_errors),
        cmocka_unit_test(test_ownership),  cmocka_unit_test(test_parallel),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
