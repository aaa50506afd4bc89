/*
 * test_sym.c - symmetric crypto, key wrapping, derivation and the 3.0
 * message API through the core API (hsm.h): round trips against OpenSSL
 * used directly, the standards' known answers, and the Wycheproof vectors
 * (AES-GCM, AES-CBC-PKCS5, AES-KW, AES-KWP, AES-CMAC, HKDF).
 */
#include "config.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/x509.h>

#include "hsm/hsm.h"
#include "mechtest.h"
#include "hsm/mech.h"
#include "nimbus/pkcs11-vendor.h"

#define PW(s) (const uint8_t *)(s), strlen(s)
#define N(a) (sizeof(a) / sizeof((a)[0]))
#define TEST_JSON_MAX (8u * 1024 * 1024)

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static CK_OBJECT_CLASS c_secret = CKO_SECRET_KEY;
static CK_KEY_TYPE k_aes = CKK_AES, k_gen = CKK_GENERIC_SECRET,
                   k_des3 = CKK_DES3, k_chacha = CKK_CHACHA20;

static const uint8_t OID_P256[] = {0x06, 0x08, 0x2A, 0x86, 0x48,
                                   0xCE, 0x3D, 0x03, 0x01, 0x07};
static const uint8_t OID_ED25519[] = {0x06, 0x03, 0x2B, 0x65, 0x70};

struct fx {
    char dir[64];
    struct config cfg;
    hsm_t *hsm;
    hsm_conn_t *a, *b; /* alice, bob */
    hsm_sid_t sa, sb;
    hsm_uid_t bob;
    hsm_oid_t rsa_pub, rsa_priv, ec_pub, ec_priv, ed_pub, ed_priv;
};

static const uint8_t msg[] = "the quick brown fox jumps over the lazy dog!!";

/* ------------------------------------------------------------ helpers */

static size_t unhex(const char *h, uint8_t *out, size_t max)
{
    size_t n = strlen(h) / 2;

    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        unsigned v;

        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* A secret key object with this value, readable and usable for all. */
/* A secret key for ciphers, MACs and derivation (CKA_DERIVE is FALSE
 * unless asked); kek: one for wrap and unwrap only (key separation). */
static hsm_oid_t secret_key(struct fx *f, CK_KEY_TYPE kt, const uint8_t *v,
                            size_t len, bool token, bool kek)
{
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &c_secret, sizeof(c_secret)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE, (void *)v, len},
        {CKA_SENSITIVE, &no, 1},
        {CKA_EXTRACTABLE, &yes, 1},
        {CKA_TOKEN, token ? &yes : &no, 1},
        {kek ? CKA_WRAP : CKA_DERIVE, &yes, 1},
        {kek ? CKA_UNWRAP : CKA_DERIVE, &yes, 1},
    };
    hsm_oid_t oid = 0;

    assert_int_equal(hsm_object_create(f->a, f->sa, t, N(t), &oid), CKR_OK);
    return oid;
}

static hsm_oid_t secret_tok(struct fx *f, CK_KEY_TYPE kt, const uint8_t *v,
                            size_t len, bool token)
{
    return secret_key(f, kt, v, len, token, false);
}

static hsm_oid_t kek_tok(struct fx *f, const uint8_t *v, size_t len, bool token)
{
    return secret_key(f, CKK_AES, v, len, token, true);
}

static hsm_oid_t secret(struct fx *f, CK_KEY_TYPE kt, const uint8_t *v,
                        size_t len)
{
    return secret_tok(f, kt, v, len, false);
}

static hsm_oid_t gen_secret(struct fx *f, CK_MECHANISM_TYPE m, CK_ULONG len,
                            bool sensitive)
{
    CK_MECHANISM mech = {m, NULL, 0};
    CK_ATTRIBUTE t[] = {
        {CKA_SENSITIVE, sensitive ? &yes : &no, 1},
        {CKA_VALUE_LEN, &len, sizeof(len)},
    };
    hsm_oid_t oid = 0;

    assert_int_equal(
        t_generate_key(f->a, f->sa, &mech, t, len != 0 ? N(t) : 1, &oid),
        CKR_OK);
    return oid;
}

static uint8_t *get_attr(hsm_conn_t *c, hsm_sid_t s, hsm_oid_t oid,
                         CK_ATTRIBUTE_TYPE type, size_t *len)
{
    hsm_attr_t a;

    assert_int_equal(hsm_object_get(c, s, oid, &type, 1, &a), CKR_OK);
    assert_int_equal(a.status, HSM_ATTR_OK);
    *len = a.len;
    return a.value;
}

static bool get_bool(struct fx *f, hsm_oid_t oid, CK_ATTRIBUTE_TYPE type)
{
    size_t len;
    uint8_t *v = get_attr(f->a, f->sa, oid, type, &len);
    bool b = len == 1 && v[0] == CK_TRUE;

    free(v);
    return b;
}

/* One-shot through the core (length asked first). */
static CK_RV crypt1(hsm_conn_t *c, hsm_sid_t s, hsm_opkind_t kind,
                    CK_MECHANISM *m, hsm_oid_t key, const uint8_t *in,
                    size_t inlen, uint8_t *out, size_t *outlen)
{
    size_t need = 0;
    CK_RV rv = t_op_init(c, s, kind, m, key);

    if (rv != CKR_OK) {
        return rv;
    }
    assert_int_equal(hsm_op_output_len(c, s, kind, false, inlen, &need),
                     CKR_OK);
    assert_true(need <= *outlen);
    return hsm_op_oneshot(c, s, kind, in, inlen, out, outlen);
}

/* Multi-part in pieces of step bytes. */
static CK_RV cryptn(hsm_conn_t *c, hsm_sid_t s, hsm_opkind_t kind,
                    CK_MECHANISM *m, hsm_oid_t key, const uint8_t *in,
                    size_t inlen, size_t step, uint8_t *out, size_t *outlen)
{
    size_t done = 0, room = *outlen, got;
    CK_RV rv = t_op_init(c, s, kind, m, key);

    if (rv != CKR_OK) {
        return rv;
    }
    for (size_t i = 0; i < inlen; i += step) {
        size_t n = inlen - i < step ? inlen - i : step;

        got = room - done;
        rv = hsm_op_update(c, s, kind, in + i, n, out + done, &got);
        if (rv != CKR_OK) {
            return rv;
        }
        done += got;
    }
    got = room - done;
    rv = hsm_op_final(c, s, kind, out + done, &got);
    if (rv == CKR_OK) {
        *outlen = done + got;
    }
    return rv;
}

/* The reference: OpenSSL directly. */
static size_t ossl_crypt(const char *name, const uint8_t *key,
                         const uint8_t *iv, bool pad, bool enc,
                         const uint8_t *in, size_t inlen, uint8_t *out)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, name, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, m = 0;

    assert_non_null(c);
    assert_int_equal(EVP_CipherInit_ex2(ctx, c, key, iv, enc, NULL), 1);
    EVP_CIPHER_CTX_set_padding(ctx, pad);
    assert_int_equal(EVP_CipherUpdate(ctx, out, &n, in, (int)inlen), 1);
    assert_int_equal(EVP_CipherFinal_ex(ctx, out + n, &m), 1);
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
    return (size_t)(n + m);
}

/* ------------------------------------------------------------ fixture */

static int group_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    hsm_sid_t co;
    CK_ULONG bits = 2048;
    CK_MECHANISM rsagen = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_MECHANISM ecgen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_MECHANISM edgen = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE rpub[] = {{CKA_MODULUS_BITS, &bits, sizeof(bits)}};
    CK_ATTRIBUTE ecpub[] = {
        {CKA_EC_PARAMS, (void *)OID_P256, sizeof(OID_P256)}};
    CK_ATTRIBUTE edpub[] = {
        {CKA_EC_PARAMS, (void *)OID_ED25519, sizeof(OID_ED25519)}};
    CK_ATTRIBUTE priv[] = {{CKA_EXTRACTABLE, &yes, 1}};

    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-sym-XXXXXX");
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
    hsm_conn_user_type(f->b, &f->bob);
    if (t_generate_key_pair(f->a, f->sa, &rsagen, rpub, N(rpub), priv, N(priv),
                            &f->rsa_pub, &f->rsa_priv) != CKR_OK ||
        t_generate_key_pair(f->a, f->sa, &ecgen, ecpub, N(ecpub), priv, N(priv),
                            &f->ec_pub, &f->ec_priv) != CKR_OK ||
        t_generate_key_pair(f->a, f->sa, &edgen, edpub, N(edpub), priv, N(priv),
                            &f->ed_pub, &f->ed_priv) != CKR_OK) {
        return -1;
    }
    *state = f;
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

/* ------------------------------------------------------------ table */

static void test_table(void **state)
{
    struct fx *f = *state;
    static const CK_MECHANISM_TYPE want[] = {
        CKM_AES_KEY_GEN,
        CKM_AES_ECB,
        CKM_AES_CBC,
        CKM_AES_CBC_PAD,
        CKM_AES_CTR,
        CKM_AES_GCM,
        CKM_AES_CCM,
        CKM_AES_CMAC,
        CKM_AES_CMAC_GENERAL,
        CKM_AES_KEY_WRAP,
        CKM_AES_KEY_WRAP_KWP,
        CKM_AES_ECB_ENCRYPT_DATA,
        CKM_AES_CBC_ENCRYPT_DATA,
        CKM_DES3_KEY_GEN,
        CKM_DES3_ECB,
        CKM_DES3_CBC,
        CKM_DES3_CBC_PAD,
        CKM_CHACHA20_KEY_GEN,
        CKM_CHACHA20_POLY1305,
        CKM_RSA_AES_KEY_WRAP,
        CKM_HKDF_DERIVE,
        CKM_HKDF_DATA,
        CKM_SP800_108_COUNTER_KDF,
        CKM_SP800_108_FEEDBACK_KDF,
        CKM_PKCS5_PBKD2,
        CKM_CONCATENATE_BASE_AND_KEY,
        CKM_CONCATENATE_BASE_AND_DATA,
        CKM_CONCATENATE_DATA_AND_BASE,
        CKM_CLOUDHSM_AES_GCM,
        CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD,
        CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD,
        CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD,
    };
    hsm_mech_info_t info;
    CK_MECHANISM_TYPE *list = NULL;
    size_t n = 0, des3 = 0;
    struct config cfg;
    hsm_t *h2 = NULL;
    char dir[96];

    for (size_t i = 0; i < N(want); i++) {
        assert_int_equal(hsm_mech_info(f->hsm, want[i], &info), CKR_OK);
    }
    /* the vendor values of the cloud HSM's header */
    assert_int_equal(CKM_CLOUDHSM_AES_GCM, 0x80001087UL);
    assert_int_equal(CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD, 0x80002109UL);
    assert_int_equal(CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD, 0x8000210AUL);
    assert_int_equal(CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD, 0x8000216FUL);
    assert_int_equal(hsm_mech_info(f->hsm, CKM_AES_GCM, &info), CKR_OK);
    assert_int_equal(info.min_key, 16);
    assert_int_equal(info.max_key, 32);
    assert_true(info.flags & CKF_WRAP);
    assert_true(info.flags & CKF_ENCRYPT);
    assert_int_equal(hsm_mech_info(f->hsm, CKM_RSA_AES_KEY_WRAP, &info),
                     CKR_OK);
    assert_int_equal(info.flags, CKF_WRAP | CKF_UNWRAP);
    /* key separation: AES key wrap is no cipher */
    assert_int_equal(hsm_mech_info(f->hsm, CKM_AES_KEY_WRAP, &info), CKR_OK);
    assert_int_equal(info.flags, CKF_WRAP | CKF_UNWRAP);
    assert_int_equal(hsm_mech_info(f->hsm, CKM_AES_KEY_WRAP_KWP, &info),
                     CKR_OK);
    assert_int_equal(info.flags, CKF_WRAP | CKF_UNWRAP);
    assert_int_equal(hsm_mech_info(f->hsm, CKM_HKDF_DERIVE, &info), CKR_OK);
    assert_int_equal(info.flags, CKF_DERIVE);

    /* des3 = no: the DES3 rows are gone */
    config_defaults(&cfg);
    snprintf(dir, sizeof(dir), "%s/nodes", f->dir);
    snprintf(cfg.store, sizeof(cfg.store), "%s", dir);
    cfg.des3_enabled = false;
    cfg.kdf_iterations = 1000;
    assert_int_equal(hsm_open(&cfg, &h2), CKR_OK);
    assert_int_equal(hsm_mech_info(h2, CKM_DES3_CBC, &info),
                     CKR_MECHANISM_INVALID);
    assert_int_equal(hsm_mech_info(h2, CKM_AES_CBC, &info), CKR_OK);
    assert_int_equal(hsm_mech_list(h2, &list, &n), CKR_OK);
    for (size_t i = 0; i < n; i++) {
        des3 += list[i] == CKM_DES3_ECB || list[i] == CKM_DES3_KEY_GEN;
    }
    assert_int_equal(des3, 0);
    free(list);
    hsm_close(h2);
}

/* ------------------------------------------------------------ ciphers */

struct mode {
    CK_MECHANISM_TYPE mech;
    const char *ossl; /* the OpenSSL mode after "AES-<bits>-", or a name */
    bool pad, iv, whole;
};

static void test_block_modes(void **state)
{
    struct fx *f = *state;
    static const struct mode modes[] = {
        {CKM_AES_ECB, "ECB", false, false, true},
        {CKM_AES_CBC, "CBC", false, true, true},
        {CKM_AES_CBC_PAD, "CBC", true, true, false},
    };
    static const size_t steps[] = {1, 7, 16, 33, 1000};
    uint8_t iv[16], in[160], ref[200], out[200], back[200];
    const CK_ULONG lens[] = {16, 24, 32};

    for (size_t i = 0; i < sizeof(in); i++) {
        in[i] = (uint8_t)(i * 7 + 1);
    }
    memset(iv, 0x5A, sizeof(iv));
    for (size_t k = 0; k < N(lens); k++) {
        uint8_t kv[32];
        hsm_oid_t key;

        memset(kv, (int)(0x10 + k), sizeof(kv));
        key = secret(f, k_aes, kv, lens[k]);
        for (size_t m = 0; m < N(modes); m++) {
            CK_MECHANISM mech = {modes[m].mech, modes[m].iv ? iv : NULL,
                                 modes[m].iv ? 16 : 0};
            char name[32];
            size_t inlen = modes[m].whole ? 160 : 157;

            snprintf(name, sizeof(name), "AES-%d-%s", (int)lens[k] * 8,
                     modes[m].ossl);
            size_t rl = ossl_crypt(name, kv, modes[m].iv ? iv : NULL,
                                   modes[m].pad, true, in, inlen, ref);
            size_t ol = sizeof(out);

            assert_int_equal(crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &mech, key,
                                    in, inlen, out, &ol),
                             CKR_OK);
            assert_int_equal(ol, rl);
            assert_memory_equal(out, ref, rl);
            for (size_t s = 0; s < N(steps); s++) {
                size_t bl = sizeof(back);

                ol = sizeof(out);
                assert_int_equal(cryptn(f->a, f->sa, HSM_OPK_ENCRYPT, &mech,
                                        key, in, inlen, steps[s], out, &ol),
                                 CKR_OK);
                assert_int_equal(ol, rl);
                assert_memory_equal(out, ref, rl);
                assert_int_equal(cryptn(f->a, f->sa, HSM_OPK_DECRYPT, &mech,
                                        key, out, ol, steps[s], back, &bl),
                                 CKR_OK);
                assert_int_equal(bl, inlen);
                assert_memory_equal(back, in, inlen);
            }
            /* a partial block: DATA_LEN_RANGE without padding */
            if (modes[m].whole) {
                size_t bl = sizeof(back);

                assert_int_equal(crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &mech,
                                        key, in, 15, back, &bl),
                                 CKR_DATA_LEN_RANGE);
            } else {
                size_t bl = sizeof(back);

                ol = sizeof(out);
                assert_int_equal(crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &mech,
                                        key, in, inlen, out, &ol),
                                 CKR_OK);
                out[ol - 1] ^= 0x55; /* padding broken */
                assert_int_equal(crypt1(f->a, f->sa, HSM_OPK_DECRYPT, &mech,
                                        key, out, ol, back, &bl),
                                 CKR_ENCRYPTED_DATA_INVALID);
                bl = sizeof(back);
                assert_int_equal(crypt1(f->a, f->sa, HSM_OPK_DECRYPT, &mech,
                                        key, out, 17, back, &bl),
                                 CKR_ENCRYPTED_DATA_LEN_RANGE);
            }
        }
        /* a buffer too small keeps the operation */
        {
            CK_MECHANISM mech = {CKM_AES_CBC_PAD, iv, 16};
            size_t ol = 10;

            assert_int_equal(
                t_op_init(f->a, f->sa, HSM_OPK_ENCRYPT, &mech, key), CKR_OK);
            assert_int_equal(
                hsm_op_oneshot(f->a, f->sa, HSM_OPK_ENCRYPT, in, 20, out, &ol),
                CKR_BUFFER_TOO_SMALL);
            assert_int_equal(ol, 32);
            assert_int_equal(
                hsm_op_oneshot(f->a, f->sa, HSM_OPK_ENCRYPT, in, 20, out, &ol),
                CKR_OK);
            assert_int_equal(ol, 32);
        }
        /* a bad IV length */
        {
            CK_MECHANISM mech = {CKM_AES_CBC, iv, 8};

            assert_int_equal(
                t_op_init(f->a, f->sa, HSM_OPK_ENCRYPT, &mech, key),
                CKR_MECHANISM_PARAM_INVALID);
        }
        assert_int_equal(hsm_object_destroy(f->a, f->sa, key), CKR_OK);
    }
}

static void test_ctr(void **state)
{
    struct fx *f = *state;
    uint8_t kv[16], in[100], ref[128], out[128], back[128];
    CK_AES_CTR_PARAMS p;
    CK_MECHANISM mech = {CKM_AES_CTR, &p, sizeof(p)};
    hsm_oid_t key;
    size_t ol, rl;

    memset(kv, 3, sizeof(kv));
    memset(in, 9, sizeof(in));
    key = secret(f, k_aes, kv, sizeof(kv));
    memset(p.cb, 0, sizeof(p.cb));
    p.cb[0] = 0xF0;
    p.cb[15] = 0xFE;
    p.ulCounterBits = 128;
    rl = ossl_crypt("AES-128-CTR", kv, p.cb, false, true, in, sizeof(in), ref);
    ol = sizeof(out);
    assert_int_equal(cryptn(f->a, f->sa, HSM_OPK_ENCRYPT, &mech, key, in,
                            sizeof(in), 13, out, &ol),
                     CKR_OK);
    assert_int_equal(ol, rl);
    assert_memory_equal(out, ref, rl);
    ol = sizeof(back);
    assert_int_equal(
        crypt1(f->a, f->sa, HSM_OPK_DECRYPT, &mech, key, out, rl, back, &ol),
        CKR_OK);
    assert_memory_equal(back, in, sizeof(in));
    /* an 8-bit counter at 0xFE has 2 blocks left: 32 bytes, not 33 */
    p.ulCounterBits = 8;
    ol = sizeof(out);
    assert_int_equal(
        crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &mech, key, in, 32, out, &ol),
        CKR_OK);
    ol = sizeof(out);
    assert_int_equal(
        crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &mech, key, in, 33, out, &ol),
        CKR_DATA_LEN_RANGE);
    p.ulCounterBits = 0;
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_ENCRYPT, &mech, key),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, key), CKR_OK);
}

/* DES3: OpenSSL as the independent reference, and parity on generate. */
static void test_des3(void **state)
{
    struct fx *f = *state;
    static const struct mode modes[] = {
        {CKM_DES3_ECB, "DES-EDE3-ECB", false, false, true},
        {CKM_DES3_CBC, "DES-EDE3-CBC", false, true, true},
        {CKM_DES3_CBC_PAD, "DES-EDE3-CBC", true, true, false},
    };
    uint8_t kv[24], iv[8], in[64], ref[80], out[80], back[80];
    hsm_oid_t key, gen;
    size_t len;
    uint8_t *v;

    unhex("0123456789abcdef23456789abcdef01456789abcdef0123", kv, sizeof(kv));
    memset(iv, 0x12, sizeof(iv));
    /* SP 800-67 rev. 1 appendix B spells it "qufck" */
    memcpy(in, "The qufck brown fox jump", 24);
    memset(in + 24, 0x33, 40);
    key = secret(f, k_des3, kv, sizeof(kv));
    for (size_t m = 0; m < N(modes); m++) {
        CK_MECHANISM mech = {modes[m].mech, modes[m].iv ? iv : NULL,
                             modes[m].iv ? 8 : 0};
        size_t inlen = modes[m].whole ? 64 : 61, ol = sizeof(out),
               bl = sizeof(back);
        size_t rl = ossl_crypt(modes[m].ossl, kv, modes[m].iv ? iv : NULL,
                               modes[m].pad, true, in, inlen, ref);

        assert_int_equal(cryptn(f->a, f->sa, HSM_OPK_ENCRYPT, &mech, key, in,
                                inlen, 5, out, &ol),
                         CKR_OK);
        assert_int_equal(ol, rl);
        assert_memory_equal(out, ref, rl);
        assert_int_equal(crypt1(f->a, f->sa, HSM_OPK_DECRYPT, &mech, key, out,
                                ol, back, &bl),
                         CKR_OK);
        assert_int_equal(bl, inlen);
        assert_memory_equal(back, in, inlen);
    }
    /* The known answer of SP 800-67 rev. 1 appendix B: TDEA-ECB of
     * "The qufck brown fox jump" under the keys 0123456789ABCDEF,
     * 23456789ABCDEF01, 456789ABCDEF0123. */
    {
        CK_MECHANISM ecb = {CKM_DES3_ECB, NULL, 0};
        uint8_t want[24];
        size_t ol = sizeof(out);

        unhex("a826fd8ce53b855fcce21c8112256fe668d5c05dd9b6b900", want,
              sizeof(want));
        assert_int_equal(
            crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &ecb, key, in, 24, out, &ol),
            CKR_OK);
        assert_memory_equal(out, want, 24);
    }
    gen = gen_secret(f, CKM_DES3_KEY_GEN, 0, false);
    v = get_attr(f->a, f->sa, gen, CKA_VALUE, &len);
    assert_int_equal(len, 24);
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(__builtin_popcount(v[i]) % 2, 1);
    }
    free(v);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, key), CKR_OK);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, gen), CKR_OK);
}

/* ------------------------------------------------------------ AEAD */

typedef struct {
    CK_BYTE_PTR pIv;
    CK_ULONG ulIvLen;
    CK_BYTE_PTR pAAD;
    CK_ULONG ulAADLen;
    CK_ULONG ulTagBits;
} gcm_short_t;

static void test_gcm(void **state)
{
    struct fx *f = *state;
    uint8_t kv[32], iv[12], aad[20], in[70], out[128], back[128], ref[128];
    uint8_t zero[12] = {0}, made[12];
    size_t ol, bl, ivlen;
    hsm_oid_t key;
    CK_GCM_PARAMS g;
    gcm_short_t gs;
    CK_MECHANISM m = {CKM_AES_GCM, &g, sizeof(g)};
    CK_MECHANISM ms = {CKM_AES_GCM, &gs, sizeof(gs)};
    EVP_CIPHER_CTX *ctx;
    int n;

    memset(kv, 7, sizeof(kv));
    memset(iv, 0xA1, sizeof(iv));
    memset(aad, 0x42, sizeof(aad));
    memset(in, 0x61, sizeof(in));
    key = secret(f, k_aes, kv, sizeof(kv));
    g.pIv = iv;
    g.ulIvLen = 12;
    g.ulIvBits = 96;
    g.pAAD = aad;
    g.ulAADLen = sizeof(aad);
    g.ulTagBits = 128;
    /* reference */
    ctx = EVP_CIPHER_CTX_new();
    assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, kv, iv),
                     1);
    assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &n, aad, sizeof(aad)), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, ref, &n, in, sizeof(in)), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, ref + n, &n), 1);
    assert_int_equal(
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, ref + sizeof(in)),
        1);
    EVP_CIPHER_CTX_free(ctx);

    /* 3.0 layout, one-shot and multi-part; the caller's IV is honoured */
    ol = sizeof(out);
    assert_int_equal(t_op_init_iv(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key, made,
                                  sizeof(made), &ivlen),
                     CKR_OK);
    assert_int_equal(ivlen, 0);
    assert_int_equal(
        hsm_op_oneshot(f->a, f->sa, HSM_OPK_ENCRYPT, in, sizeof(in), out, &ol),
        CKR_OK);
    assert_int_equal(ol, sizeof(in) + 16);
    assert_memory_equal(out, ref, ol);
    ol = sizeof(out);
    assert_int_equal(cryptn(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key, in,
                            sizeof(in), 9, out, &ol),
                     CKR_OK);
    assert_memory_equal(out, ref, sizeof(in) + 16);
    bl = sizeof(back);
    assert_int_equal(
        cryptn(f->a, f->sa, HSM_OPK_DECRYPT, &m, key, out, ol, 11, back, &bl),
        CKR_OK);
    assert_int_equal(bl, sizeof(in));
    assert_memory_equal(back, in, sizeof(in));
    /* the short layout (no ulIvBits), as Java sends first */
    gs.pIv = iv;
    gs.ulIvLen = 12;
    gs.pAAD = aad;
    gs.ulAADLen = sizeof(aad);
    gs.ulTagBits = 128;
    bl = sizeof(back);
    assert_int_equal(crypt1(f->a, f->sa, HSM_OPK_DECRYPT, &ms, key, ref,
                            sizeof(in) + 16, back, &bl),
                     CKR_OK);
    assert_memory_equal(back, in, sizeof(in));
    /* a bad tag */
    out[ol - 1] ^= 1;
    bl = sizeof(back);
    assert_int_equal(
        crypt1(f->a, f->sa, HSM_OPK_DECRYPT, &m, key, out, ol, back, &bl),
        CKR_ENCRYPTED_DATA_INVALID);
    bl = sizeof(back);
    assert_int_equal(
        cryptn(f->a, f->sa, HSM_OPK_DECRYPT, &m, key, out, ol, 5, back, &bl),
        CKR_ENCRYPTED_DATA_INVALID);
    /* truncated tag of 96 bits; 20 bits is refused */
    g.ulTagBits = 96;
    ol = sizeof(out);
    assert_int_equal(
        crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key, in, sizeof(in), out, &ol),
        CKR_OK);
    assert_int_equal(ol, sizeof(in) + 12);
    assert_memory_equal(out, ref, ol);
    g.ulTagBits = 20;
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key),
                     CKR_MECHANISM_PARAM_INVALID);
    g.ulTagBits = 128;
    g.ulIvBits = 64; /* not read (PKCS#11 3.0): ulIvLen is the length */
    ol = sizeof(out);
    assert_int_equal(
        crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key, in, sizeof(in), out, &ol),
        CKR_OK);
    assert_int_equal(ol, sizeof(in) + 16);
    assert_memory_equal(out, ref, ol);
    g.ulIvBits = 0;

    /* a zero IV: the token makes one and gives it back; NULL too */
    for (int pass = 0; pass < 2; pass++) {
        g.pIv = pass == 0 ? zero : NULL;
        ol = sizeof(out);
        assert_int_equal(t_op_init_iv(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key,
                                      made, sizeof(made), &ivlen),
                         CKR_OK);
        assert_int_equal(ivlen, 12);
        assert_memory_not_equal(made, zero, 12);
        assert_int_equal(hsm_op_oneshot(f->a, f->sa, HSM_OPK_ENCRYPT, in,
                                        sizeof(in), out, &ol),
                         CKR_OK);
        g.pIv = made;
        bl = sizeof(back);
        assert_int_equal(
            crypt1(f->a, f->sa, HSM_OPK_DECRYPT, &m, key, out, ol, back, &bl),
            CKR_OK);
        assert_memory_equal(back, in, sizeof(in));
    }
    /* the cloud HSM's GCM: IV made and put in front */
    {
        CK_GCM_PARAMS cg = {NULL, 12, 96, aad, sizeof(aad), 128};
        CK_MECHANISM cm = {CKM_CLOUDHSM_AES_GCM, &cg, sizeof(cg)};

        ol = sizeof(out);
        assert_int_equal(crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &cm, key, in,
                                sizeof(in), out, &ol),
                         CKR_OK);
        assert_int_equal(ol, 12 + sizeof(in) + 16);
        bl = sizeof(back);
        assert_int_equal(
            crypt1(f->a, f->sa, HSM_OPK_DECRYPT, &cm, key, out, ol, back, &bl),
            CKR_OK);
        assert_int_equal(bl, sizeof(in));
        assert_memory_equal(back, in, sizeof(in));
        g.pIv = out;
        bl = sizeof(back);
        assert_int_equal(crypt1(f->a, f->sa, HSM_OPK_DECRYPT, &m, key, out + 12,
                                ol - 12, back, &bl),
                         CKR_OK);
        cg.pIv = iv; /* the HSM makes the IV: a given one is refused */
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_ENCRYPT, &cm, key),
                         CKR_MECHANISM_PARAM_INVALID);
    }
    assert_int_equal(hsm_object_destroy(f->a, f->sa, key), CKR_OK);
}

/* NIST SP 800-38C appendix C, examples 1 to 3. */
static void test_ccm(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *nonce, *aad, *pt, *ct;
        size_t tag;
    } ex[] = {
        {"10111213141516", "0001020304050607", "20212223", "7162015b4dac255d",
         4},
        {"1011121314151617", "000102030405060708090a0b0c0d0e0f",
         "202122232425262728292a2b2c2d2e2f",
         "d2a1f0e051ea5f62081a7792073d593d1fc64fbfaccd", 6},
        {"101112131415161718191a1b", "000102030405060708090a0b0c0d0e0f10111213",
         "202122232425262728292a2b2c2d2e2f3031323334353637",
         "e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951", 8},
    };
    uint8_t kv[16], nonce[16], aad[32], pt[32], ct[48], out[64], back[64];
    hsm_oid_t key;

    unhex("404142434445464748494a4b4c4d4e4f", kv, sizeof(kv));
    key = secret(f, k_aes, kv, sizeof(kv));
    for (size_t i = 0; i < N(ex); i++) {
        size_t nl = unhex(ex[i].nonce, nonce, sizeof(nonce));
        size_t al = unhex(ex[i].aad, aad, sizeof(aad));
        size_t pl = unhex(ex[i].pt, pt, sizeof(pt));
        size_t cl = unhex(ex[i].ct, ct, sizeof(ct));
        CK_CCM_PARAMS p = {pl, nonce, nl, aad, al, ex[i].tag};
        CK_MECHANISM m = {CKM_AES_CCM, &p, sizeof(p)};
        size_t ol = sizeof(out), bl = sizeof(back);

        assert_int_equal(
            crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key, pt, pl, out, &ol),
            CKR_OK);
        assert_int_equal(ol, cl);
        assert_memory_equal(out, ct, cl);
        ol = sizeof(out);
        assert_int_equal(
            cryptn(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key, pt, pl, 3, out, &ol),
            CKR_OK);
        assert_memory_equal(out, ct, cl);
        assert_int_equal(
            cryptn(f->a, f->sa, HSM_OPK_DECRYPT, &m, key, ct, cl, 5, back, &bl),
            CKR_OK);
        assert_int_equal(bl, pl);
        assert_memory_equal(back, pt, pl);
        ct[0] ^= 1;
        bl = sizeof(back);
        assert_int_equal(
            crypt1(f->a, f->sa, HSM_OPK_DECRYPT, &m, key, ct, cl, back, &bl),
            CKR_ENCRYPTED_DATA_INVALID);
        /* the length must be ulDataLen */
        ol = sizeof(out);
        assert_int_equal(
            crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key, pt, pl - 1, out, &ol),
            CKR_DATA_LEN_RANGE);
    }
    assert_int_equal(hsm_object_destroy(f->a, f->sa, key), CKR_OK);
}

/* RFC 8439 section 2.8.2. */
static void test_chacha20_poly1305(void **state)
{
    struct fx *f = *state;
    static const char pt[] =
        "Ladies and Gentlemen of the class of '99: If I could offer you only "
        "one tip for the future, sunscreen would be it.";
    uint8_t kv[32], nonce[12], aad[12], want[160], out[160], back[160];
    size_t wl, ol = sizeof(out), bl = sizeof(back);
    CK_SALSA20_CHACHA20_POLY1305_PARAMS p;
    CK_MECHANISM m = {CKM_CHACHA20_POLY1305, &p, sizeof(p)};
    hsm_oid_t key, gen;

    unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
          kv, sizeof(kv));
    unhex("070000004041424344454647", nonce, sizeof(nonce));
    unhex("50515253c0c1c2c3c4c5c6c7", aad, sizeof(aad));
    wl =
        unhex("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
              "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
              "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
              "3ff4def08e4b7a9de576d26586cec64b6116"
              "1ae10b594f09e26a7e902ecbd0600691",
              want, sizeof(want));
    p.pNonce = nonce;
    p.ulNonceLen = 12;
    p.pAAD = aad;
    p.ulAADLen = sizeof(aad);
    key = secret(f, k_chacha, kv, sizeof(kv));
    assert_int_equal(crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &m, key,
                            (const uint8_t *)pt, strlen(pt), out, &ol),
                     CKR_OK);
    assert_int_equal(ol, wl);
    assert_memory_equal(out, want, wl);
    assert_int_equal(
        cryptn(f->a, f->sa, HSM_OPK_DECRYPT, &m, key, out, ol, 17, back, &bl),
        CKR_OK);
    assert_int_equal(bl, strlen(pt));
    assert_memory_equal(back, pt, bl);
    out[3] ^= 0x80;
    bl = sizeof(back);
    assert_int_equal(
        crypt1(f->a, f->sa, HSM_OPK_DECRYPT, &m, key, out, ol, back, &bl),
        CKR_ENCRYPTED_DATA_INVALID);
    gen = gen_secret(f, CKM_CHACHA20_KEY_GEN, 0, true);
    ol = sizeof(out);
    assert_int_equal(crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, &m, gen,
                            (const uint8_t *)pt, 10, out, &ol),
                     CKR_OK);
    assert_int_equal(ol, 26);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, key), CKR_OK);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, gen), CKR_OK);
}

static void test_cmac_keygen(void **state)
{
    struct fx *f = *state;
    /* RFC 4493 example 2 (AES-128, 16 bytes) */
    uint8_t kv[16], m16[16], want[16], mac[16];
    CK_MAC_GENERAL_PARAMS len8 = 8, len17 = 17;
    CK_MECHANISM cm = {CKM_AES_CMAC, NULL, 0};
    CK_MECHANISM cg = {CKM_AES_CMAC_GENERAL, &len8, sizeof(len8)};
    hsm_oid_t key, g;
    size_t ml = sizeof(mac);

    unhex("2b7e151628aed2a6abf7158809cf4f3c", kv, sizeof(kv));
    unhex("6bc1bee22e409f96e93d7e117393172a", m16, sizeof(m16));
    unhex("070a16b46b4d4144f79bdd9dd04a287c", want, sizeof(want));
    key = secret(f, k_aes, kv, sizeof(kv));
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &cm, key), CKR_OK);
    assert_int_equal(
        hsm_op_update(f->a, f->sa, HSM_OPK_SIGN, m16, 5, NULL, NULL), CKR_OK);
    assert_int_equal(
        hsm_op_update(f->a, f->sa, HSM_OPK_SIGN, m16 + 5, 11, NULL, NULL),
        CKR_OK);
    assert_int_equal(hsm_op_final(f->a, f->sa, HSM_OPK_SIGN, mac, &ml), CKR_OK);
    assert_int_equal(ml, 16);
    assert_memory_equal(mac, want, 16);
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_VERIFY, &cm, key), CKR_OK);
    assert_int_equal(hsm_op_verify(f->a, f->sa, m16, 16, true, want, 16),
                     CKR_OK);
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_VERIFY, &cg, key), CKR_OK);
    assert_int_equal(hsm_op_verify(f->a, f->sa, m16, 16, true, want, 8),
                     CKR_OK);
    want[0] ^= 1;
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_VERIFY, &cg, key), CKR_OK);
    assert_int_equal(hsm_op_verify(f->a, f->sa, m16, 16, true, want, 8),
                     CKR_SIGNATURE_INVALID);
    cg.pParameter = &len17;
    assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &cg, key),
                     CKR_MECHANISM_PARAM_INVALID);
    /* AES key generation: 16, 24, 32; 20 is refused */
    for (CK_ULONG l = 16; l <= 32; l += 8) {
        size_t vl;
        uint8_t *v;

        g = gen_secret(f, CKM_AES_KEY_GEN, l, false);
        v = get_attr(f->a, f->sa, g, CKA_VALUE, &vl);
        assert_int_equal(vl, l);
        free(v);
        assert_true(get_bool(f, g, CKA_LOCAL));
        assert_int_equal(hsm_object_destroy(f->a, f->sa, g), CKR_OK);
    }
    {
        CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
        CK_ULONG l = 20;
        CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &l, sizeof(l)}};

        assert_int_equal(t_generate_key(f->a, f->sa, &mech, t, 1, &g),
                         CKR_ATTRIBUTE_VALUE_INVALID);
    }
    assert_int_equal(hsm_object_destroy(f->a, f->sa, key), CKR_OK);
}

/* ------------------------------------------------------------ wrapping */

/* Every kind of key, with its class and type for the unwrap template. */
struct wkey {
    const char *name;
    hsm_oid_t oid;
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE kt;
    size_t len;            /* secret: value length */
    hsm_oid_t pub;         /* private: the public key */
    CK_MECHANISM_TYPE sig; /* private: a signature mechanism */
};

static void check_unwrapped(struct fx *f, const struct wkey *k, hsm_oid_t got)
{
    size_t l1, l2;
    uint8_t *a, *b;

    assert_false(get_bool(f, got, CKA_LOCAL));
    assert_false(get_bool(f, got, CKA_ALWAYS_SENSITIVE));
    assert_false(get_bool(f, got, CKA_NEVER_EXTRACTABLE));
    if (k->cls == CKO_SECRET_KEY) {
        a = get_attr(f->a, f->sa, k->oid, CKA_VALUE, &l1);
        b = get_attr(f->a, f->sa, got, CKA_VALUE, &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(a, b, l1);
        free(a);
        free(b);
        return;
    }
    a = get_attr(f->a, f->sa, k->pub, CKA_PUBLIC_KEY_INFO, &l1);
    b = get_attr(f->a, f->sa, got, CKA_PUBLIC_KEY_INFO, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(a, b, l1);
    free(a);
    free(b);
    {
        CK_MECHANISM sm = {k->sig, NULL, 0};
        uint8_t sig[512];
        size_t sl = sizeof(sig);

        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_SIGN, &sm, got),
                         CKR_OK);
        assert_int_equal(hsm_op_oneshot(f->a, f->sa, HSM_OPK_SIGN, msg,
                                        sizeof(msg), sig, &sl),
                         CKR_OK);
        assert_int_equal(t_op_init(f->a, f->sa, HSM_OPK_VERIFY, &sm, k->pub),
                         CKR_OK);
        assert_int_equal(
            hsm_op_verify(f->a, f->sa, msg, sizeof(msg), true, sig, sl),
            CKR_OK);
    }
}

static void test_wrap_all(void **state)
{
    struct fx *f = *state;
    uint8_t iv[16], gv[32], av[32], gcm_iv[12];
    uint8_t aes24[24];
    CK_GCM_PARAMS gp = {gcm_iv, 12, 96, NULL, 0, 128};
    CK_GCM_PARAMS cgp = {NULL, 12, 96, NULL, 0, 128};
    CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256, 0, NULL, 0};
    CK_RSA_AES_KEY_WRAP_PARAMS ra = {256, &oaep};
    struct {
        CK_MECHANISM m;
        bool rsa; /* wrapping key: the RSA pair */
        bool any; /* carries private keys */
        bool odd; /* carries secrets of any length */
    } mechs[] = {
        {{CKM_AES_KEY_WRAP, NULL, 0}, false, true, true}, /* zero-pads */
        {{CKM_AES_KEY_WRAP_KWP, NULL, 0}, false, true, true},
        {{CKM_AES_GCM, &gp, sizeof(gp)}, false, true, true},
        {{CKM_AES_CBC_PAD, iv, 16}, false, true, true},
        {{CKM_AES_ECB, NULL, 0}, false, true, true},
        {{CKM_AES_CBC, iv, 16}, false, true, true},
        /* RSA-2048 carries the EC and Ed25519 PKCS#8, not an RSA one */
        {{CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep)}, true, true, true},
        {{CKM_RSA_PKCS, NULL, 0}, true, true, true},
        {{CKM_RSA_AES_KEY_WRAP, &ra, sizeof(ra)}, true, true, true},
        {{CKM_CLOUDHSM_AES_GCM, &cgp, sizeof(cgp)}, false, true, true},
        {{CKM_CLOUDHSM_AES_KEY_WRAP_NO_PAD, NULL, 0}, false, false, false},
        {{CKM_CLOUDHSM_AES_KEY_WRAP_PKCS5_PAD, NULL, 0}, false, true, true},
        {{CKM_CLOUDHSM_AES_KEY_WRAP_ZERO_PAD, NULL, 0}, false, true, true},
    };
    struct wkey keys[6];
    hsm_oid_t kek, dkek;
    size_t nk = 0, done = 0;

    memset(iv, 0x11, sizeof(iv));
    memset(gcm_iv, 0x22, sizeof(gcm_iv));
    memset(gv, 0x33, sizeof(gv));
    memset(av, 0x44, sizeof(av));
    memset(aes24, 0x55, sizeof(aes24));
    kek = kek_tok(f, av, 32, false);
    /* The same value in a key that unwraps and may decrypt: a cipher
     * unwrap into a readable key is decryption (kek may not). */
    {
        CK_ATTRIBUTE t[] = {
            {CKA_CLASS, &c_secret, sizeof(c_secret)},
            {CKA_KEY_TYPE, &k_aes, sizeof(k_aes)},
            {CKA_VALUE, av, 32},
            {CKA_UNWRAP, &yes, 1},
            {CKA_DECRYPT, &yes, 1},
        };

        assert_int_equal(hsm_object_create(f->a, f->sa, t, N(t), &dkek),
                         CKR_OK);
    }
    keys[nk++] = (struct wkey){
        "aes", secret(f, k_aes, av, 16), CKO_SECRET_KEY, CKK_AES, 16, 0, 0};
    keys[nk++] = (struct wkey){
        "aes192", secret(f, k_aes, aes24, 24), CKO_SECRET_KEY, CKK_AES, 24, 0,
        0};
    keys[nk++] = (struct wkey){"generic",
                               secret(f, k_gen, gv, 21),
                               CKO_SECRET_KEY,
                               CKK_GENERIC_SECRET,
                               21,
                               0,
                               0};
    keys[nk++] = (struct wkey){"rsa", f->rsa_priv, CKO_PRIVATE_KEY,    CKK_RSA,
                               0,     f->rsa_pub,  CKM_SHA256_RSA_PKCS};
    keys[nk++] = (struct wkey){"ec", f->ec_priv, CKO_PRIVATE_KEY, CKK_EC,
                               0,    f->ec_pub,  CKM_ECDSA_SHA256};
    keys[nk++] =
        (struct wkey){"ed25519", f->ed_priv, CKO_PRIVATE_KEY, CKK_EC_EDWARDS,
                      0,         f->ed_pub,  CKM_EDDSA};
    for (size_t m = 0; m < N(mechs); m++) {
        for (size_t i = 0; i < nk; i++) {
            struct wkey *k = &keys[i];
            hsm_oid_t wk = mechs[m].rsa ? f->rsa_pub : kek;
            hsm_oid_t uk = mechs[m].rsa ? f->rsa_priv : kek;
            CK_MECHANISM_TYPE mt = mechs[m].m.mechanism;
            bool cipher = mt == CKM_AES_GCM || mt == CKM_AES_CBC_PAD ||
                          mt == CKM_AES_ECB || mt == CKM_AES_CBC ||
                          mt == CKM_CLOUDHSM_AES_GCM;
            CK_ULONG vlen = k->len;
            CK_ATTRIBUTE t[] = {
                {CKA_CLASS, &k->cls, sizeof(k->cls)},
                {CKA_KEY_TYPE, &k->kt, sizeof(k->kt)},
                {CKA_SENSITIVE, &no, 1},
                {CKA_EXTRACTABLE, &yes, 1},
                {CKA_VALUE_LEN, &vlen, sizeof(vlen)},
            };
            CK_ULONG tn = k->cls == CKO_SECRET_KEY ? 5 : 2;
            uint8_t *w = NULL;
            size_t wl = 0;
            hsm_oid_t got = 0;
            CK_RV rv;
            bool carried = k->cls == CKO_PRIVATE_KEY
                               ? mechs[m].any
                               : (mechs[m].odd || k->len % 8 == 0);
            bool too_big = mechs[m].rsa && k->kt == CKK_RSA &&
                           mechs[m].m.mechanism != CKM_RSA_AES_KEY_WRAP;

            rv = t_wrap_key(f->a, f->sa, &mechs[m].m, wk, k->oid, &w, &wl);
            if (too_big) {
                assert_int_equal(rv, CKR_KEY_SIZE_RANGE);
                continue;
            }
            if (!carried && rv != CKR_OK) {
                /* RFC 3394: whole 8-byte blocks only (a PKCS#8 may be) */
                assert_int_equal(rv, CKR_KEY_SIZE_RANGE);
                continue;
            }
            assert_true(carried || k->cls == CKO_PRIVATE_KEY);
            if (rv != CKR_OK) {
                fail_msg("wrap %s with 0x%lx: 0x%lx", k->name,
                         mechs[m].m.mechanism, rv);
            }
            if (cipher && k->cls == CKO_SECRET_KEY) {
                rv = t_unwrap_key(f->a, f->sa, &mechs[m].m, uk, w, wl, t, tn,
                                  &got);
                if (rv != CKR_TEMPLATE_INCONSISTENT) {
                    fail_msg("readable %s by 0x%lx without CKA_DECRYPT: 0x%lx",
                             k->name, mt, rv);
                }
                uk = dkek;
            }
            rv = t_unwrap_key(f->a, f->sa, &mechs[m].m, uk, w, wl, t, tn, &got);
            if (rv != CKR_OK) {
                fail_msg("unwrap %s with 0x%lx: 0x%lx", k->name,
                         mechs[m].m.mechanism, rv);
            }
            check_unwrapped(f, k, got);
            /* a damaged blob (ECB and CBC do not authenticate) */
            w[wl / 2] ^= 0x40;
            rv = t_unwrap_key(f->a, f->sa, &mechs[m].m, uk, w, wl, t, tn, &got);
            if (mechs[m].m.mechanism != CKM_AES_ECB &&
                mechs[m].m.mechanism != CKM_AES_CBC &&
                mechs[m].m.mechanism != CKM_AES_CBC_PAD) {
                if (rv == CKR_OK) {
                    fail_msg("damaged %s with 0x%lx unwrapped", k->name,
                             mechs[m].m.mechanism);
                }
            }
            free(w);
            done++;
        }
    }
    print_message("wrap: %zu key/mechanism pairs out and back in\n", done);
    assert_true(done >= 50);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hsm_object_destroy(f->a, f->sa, keys[i].oid), CKR_OK);
    }
    assert_int_equal(hsm_object_destroy(f->a, f->sa, kek), CKR_OK);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, dkek), CKR_OK);
}

static void test_wrap_rules(void **state)
{
    struct fx *f = *state;
    uint8_t kv[16];
    CK_MECHANISM kw = {CKM_AES_KEY_WRAP, NULL, 0};
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
    CK_RSA_PKCS_OAEP_PARAMS op = {CKM_SHA256, CKG_MGF1_SHA256, 0, NULL, 0};
    CK_MECHANISM oaep_m = {CKM_RSA_PKCS_OAEP, &op, sizeof(op)};
    CK_ATTRIBUTE unextr[] = {
        {CKA_CLASS, &c_secret, sizeof(c_secret)},
        {CKA_KEY_TYPE, &k_aes, sizeof(k_aes)},
        {CKA_VALUE, kv, 16},
        {CKA_EXTRACTABLE, &no, 1},
    };
    CK_ATTRIBUTE nowrap[] = {
        {CKA_CLASS, &c_secret, sizeof(c_secret)},
        {CKA_KEY_TYPE, &k_aes, sizeof(k_aes)},
        {CKA_VALUE, kv, 16},
        {CKA_WRAP, &no, 1},
        {CKA_UNWRAP, &no, 1},
    };
    CK_ATTRIBUTE trusted_only[] = {
        {CKA_CLASS, &c_secret, sizeof(c_secret)},
        {CKA_KEY_TYPE, &k_aes, sizeof(k_aes)},
        {CKA_VALUE, kv, 16},
        {CKA_WRAP_WITH_TRUSTED, &yes, 1},
    };
    /* a wrapping key that wraps only keys labelled "ok", and unwraps to
     * non-extractable ones */
    /* hsm.h takes them serialized: {CKA_LABEL "ok"}, {CKA_EXTRACTABLE no} */
    uint8_t wt[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 2, 'o', 'k'};
    uint8_t ut[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x01, 0x62, 0, 0, 0, 1, 0};
    CK_ATTRIBUTE tmplkek[] = {
        {CKA_CLASS, &c_secret, sizeof(c_secret)},
        {CKA_KEY_TYPE, &k_aes, sizeof(k_aes)},
        {CKA_VALUE, kv, 16},
        {CKA_WRAP_TEMPLATE, wt, sizeof(wt)},
        {CKA_UNWRAP_TEMPLATE, ut, sizeof(ut)},
        {CKA_WRAP, &yes, 1},
        {CKA_UNWRAP, &yes, 1},
    };
    CK_ATTRIBUTE labelled[] = {
        {CKA_CLASS, &c_secret, sizeof(c_secret)},
        {CKA_KEY_TYPE, &k_aes, sizeof(k_aes)},
        {CKA_VALUE, kv, 16},
        {CKA_LABEL, "ok", 2},
    };
    CK_ATTRIBUTE ut_aes[] = {
        {CKA_CLASS, &c_secret, sizeof(c_secret)},
        {CKA_KEY_TYPE, &k_aes, sizeof(k_aes)},
    };
    CK_ATTRIBUTE ut_conflict[] = {
        {CKA_CLASS, &c_secret, sizeof(c_secret)},
        {CKA_KEY_TYPE, &k_aes, sizeof(k_aes)},
        {CKA_EXTRACTABLE, &yes, 1},
    };
    hsm_oid_t kek, ue, nw, tr, tk, lab, plain, got;
    uint8_t *w = NULL;
    size_t wl = 0;
    CK_ATTRIBUTE_TYPE tt = CKA_WRAP_TEMPLATE;
    hsm_attr_t a;
    hsm_attr_t *parsed = NULL;
    size_t np = 0;

    memset(kv, 0x77, sizeof(kv));
    kek = kek_tok(f, kv, 16, true); /* token keys can be shared */
    plain = secret_tok(f, k_aes, kv, 16, true);
    assert_int_equal(hsm_object_create(f->a, f->sa, unextr, N(unextr), &ue),
                     CKR_OK);
    assert_int_equal(hsm_object_create(f->a, f->sa, nowrap, N(nowrap), &nw),
                     CKR_OK);
    assert_int_equal(
        hsm_object_create(f->a, f->sa, trusted_only, N(trusted_only), &tr),
        CKR_OK);
    assert_int_equal(hsm_object_create(f->a, f->sa, tmplkek, N(tmplkek), &tk),
                     CKR_OK);
    assert_int_equal(
        hsm_object_create(f->a, f->sa, labelled, N(labelled), &lab), CKR_OK);

    /* not extractable */
    assert_int_equal(t_wrap_key(f->a, f->sa, &kw, kek, ue, &w, &wl),
                     CKR_KEY_UNEXTRACTABLE);
    /* CKA_WRAP FALSE on the wrapping key, CKA_UNWRAP FALSE */
    assert_int_equal(t_wrap_key(f->a, f->sa, &kw, nw, plain, &w, &wl),
                     CKR_KEY_FUNCTION_NOT_PERMITTED);
    /* wrap with trusted: our wrapping keys are never trusted (only the SO
     * sets CKA_TRUSTED, and the SO makes no keys) */
    assert_int_equal(t_wrap_key(f->a, f->sa, &kw, kek, tr, &w, &wl),
                     CKR_KEY_NOT_WRAPPABLE);
    /* a public key is not wrapped */
    assert_int_equal(t_wrap_key(f->a, f->sa, &kw, kek, f->rsa_pub, &w, &wl),
                     CKR_KEY_NOT_WRAPPABLE);
    /* the wrong kind of wrapping key, and a bad handle */
    assert_int_equal(t_wrap_key(f->a, f->sa, &oaep_m, kek, plain, &w, &wl),
                     CKR_WRAPPING_KEY_TYPE_INCONSISTENT);
    assert_int_equal(t_wrap_key(f->a, f->sa, &kw, 0x7777, plain, &w, &wl),
                     CKR_WRAPPING_KEY_HANDLE_INVALID);
    assert_int_equal(t_wrap_key(f->a, f->sa, &kw, kek, 0x7777, &w, &wl),
                     CKR_KEY_HANDLE_INVALID);
    /* CKA_WRAP_TEMPLATE: only the labelled key leaves */
    assert_int_equal(t_wrap_key(f->a, f->sa, &kw, tk, plain, &w, &wl),
                     CKR_KEY_NOT_WRAPPABLE);
    assert_int_equal(t_wrap_key(f->a, f->sa, &kw, tk, lab, &w, &wl), CKR_OK);
    /* CKA_UNWRAP_TEMPLATE merged in; a contradiction is refused */
    assert_int_equal(
        t_unwrap_key(f->a, f->sa, &kw, tk, w, wl, ut_aes, N(ut_aes), &got),
        CKR_OK);
    assert_false(get_bool(f, got, CKA_EXTRACTABLE));
    assert_int_equal(t_unwrap_key(f->a, f->sa, &kw, tk, w, wl, ut_conflict,
                                  N(ut_conflict), &got),
                     CKR_TEMPLATE_INCONSISTENT);
    /* the unwrapping key lacks CKA_UNWRAP */
    assert_int_equal(
        t_unwrap_key(f->a, f->sa, &kw, nw, w, wl, ut_aes, N(ut_aes), &got),
        CKR_KEY_FUNCTION_NOT_PERMITTED);
    /* damaged and short blobs */
    assert_int_equal(
        t_unwrap_key(f->a, f->sa, &kw, tk, w, 16, ut_aes, N(ut_aes), &got),
        CKR_WRAPPED_KEY_LEN_RANGE);
    w[3] ^= 1;
    assert_int_equal(
        t_unwrap_key(f->a, f->sa, &kw, tk, w, wl, ut_aes, N(ut_aes), &got),
        CKR_WRAPPED_KEY_INVALID);
    free(w);
    w = NULL;
    /* the template reads back (serialized) and parses */
    assert_int_equal(hsm_object_get(f->a, f->sa, tk, &tt, 1, &a), CKR_OK);
    assert_int_equal(a.status, HSM_ATTR_OK);
    assert_int_equal(hsm_template_parse(a.value, a.len, &parsed, &np), CKR_OK);
    assert_int_equal(np, 1);
    assert_int_equal(parsed[0].type, CKA_LABEL);
    assert_int_equal(parsed[0].len, 2);
    assert_memory_equal(parsed[0].value, "ok", 2);
    hsm_attrs_free(parsed, np);
    free(parsed);
    free(a.value);

    /* bob, a shared user, may use alice's shared key but not export it */
    assert_int_equal(hsm_object_share(f->a, plain, f->bob, true), CKR_OK);
    assert_int_equal(hsm_object_share(f->a, kek, f->bob, true), CKR_OK);
    {
        CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
        uint8_t out[32];
        size_t ol = sizeof(out);
        CK_HKDF_PARAMS hp = {CK_TRUE, CK_TRUE, CKM_SHA256, CKF_HKDF_SALT_NULL,
                             NULL,    0,       0,          NULL,
                             0};
        CK_MECHANISM hk = {CKM_HKDF_DERIVE, &hp, sizeof(hp)};
        CK_ULONG l = 16;
        CK_ATTRIBUTE dt[] = {{CKA_VALUE_LEN, &l, sizeof(l)}};
        hsm_oid_t d;

        assert_int_equal(
            crypt1(f->b, f->sb, HSM_OPK_ENCRYPT, &ecb, plain, kv, 16, out, &ol),
            CKR_OK);
        assert_int_equal(t_wrap_key(f->b, f->sb, &kwp, kek, plain, &w, &wl),
                         CKR_KEY_FUNCTION_NOT_PERMITTED);
        assert_int_equal(t_derive_key(f->b, f->sb, &hk, plain, dt, 1, &d),
                         CKR_KEY_FUNCTION_NOT_PERMITTED);
        /* alice's key unshared: bob does not see it */
        assert_int_equal(t_wrap_key(f->b, f->sb, &kwp, kek, lab, &w, &wl),
                         CKR_KEY_HANDLE_INVALID);
    }
    assert_int_equal(hsm_object_destroy(f->a, f->sa, kek), CKR_OK);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, plain), CKR_OK);
}

/* ------------------------------------------------------------ KDFs */

static uint8_t *derived_value(struct fx *f, CK_MECHANISM *m, hsm_oid_t base,
                              CK_ULONG len, CK_RV *rv, size_t *vl)
{
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &c_secret, sizeof(c_secret)},
        {CKA_KEY_TYPE, &k_gen, sizeof(k_gen)},
        {CKA_SENSITIVE, &no, 1},
        {CKA_VALUE_LEN, &len, sizeof(len)},
    };
    hsm_oid_t d = 0;
    uint8_t *v;

    *rv = t_derive_key(f->a, f->sa, m, base, t, len != 0 ? 4 : 3, &d);
    if (*rv != CKR_OK) {
        return NULL;
    }
    assert_false(get_bool(f, d, CKA_LOCAL));
    v = get_attr(f->a, f->sa, d, CKA_VALUE, vl);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, d), CKR_OK);
    return v;
}

/* OpenSSL's KBKDF as the independent implementation. */
static void ossl_kbkdf(const char *mode, const char *mac, const char *prf,
                       const uint8_t *key, size_t kl, const uint8_t *label,
                       size_t ll, const uint8_t *ctx, size_t cl,
                       const uint8_t *seed, size_t sl, uint8_t *out,
                       size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "KBKDF", NULL);
    EVP_KDF_CTX *c = EVP_KDF_CTX_new(kdf);
    OSSL_PARAM p[8];
    size_t n = 0;

    p[n++] =
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, (char *)mode, 0);
    p[n++] =
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, (char *)mac, 0);
    p[n++] = OSSL_PARAM_construct_utf8_string(strcmp(mac, "HMAC") == 0
                                                  ? OSSL_KDF_PARAM_DIGEST
                                                  : OSSL_KDF_PARAM_CIPHER,
                                              (char *)prf, 0);
    p[n++] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, kl);
    p[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                               (void *)label, ll);
    p[n++] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)ctx, cl);
    if (seed != NULL) {
        p[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED,
                                                   (void *)seed, sl);
    }
    p[n] = OSSL_PARAM_construct_end();
    assert_int_equal(EVP_KDF_derive(c, out, outlen, p), 1);
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(kdf);
}

static void test_kbkdf(void **state)
{
    struct fx *f = *state;
    uint8_t kv[32], label[] = "the label", ctxt[] = "some context", zero = 0;
    uint8_t want[80], seed[32];
    CK_SP800_108_COUNTER_FORMAT cf = {CK_FALSE, 32};
    CK_SP800_108_DKM_LENGTH_FORMAT df = {CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS,
                                         CK_FALSE, 32};
    CK_PRF_DATA_PARAM counter_list[] = {
        {CK_SP800_108_ITERATION_VARIABLE, &cf, sizeof(cf)},
        {CK_SP800_108_BYTE_ARRAY, label, sizeof(label) - 1},
        {CK_SP800_108_BYTE_ARRAY, &zero, 1},
        {CK_SP800_108_BYTE_ARRAY, ctxt, sizeof(ctxt) - 1},
        {CK_SP800_108_DKM_LENGTH, &df, sizeof(df)},
    };
    CK_PRF_DATA_PARAM fb_list[] = {
        {CK_SP800_108_ITERATION_VARIABLE, NULL, 0},
        {CK_SP800_108_OPTIONAL_COUNTER, &cf, sizeof(cf)},
        {CK_SP800_108_BYTE_ARRAY, label, sizeof(label) - 1},
        {CK_SP800_108_BYTE_ARRAY, &zero, 1},
        {CK_SP800_108_BYTE_ARRAY, ctxt, sizeof(ctxt) - 1},
        {CK_SP800_108_DKM_LENGTH, &df, sizeof(df)},
    };
    CK_SP800_108_KDF_PARAMS cp = {CKM_SHA256_HMAC, N(counter_list),
                                  counter_list, 0, NULL};
    CK_SP800_108_FEEDBACK_KDF_PARAMS fp = {
        CKM_SHA256_HMAC, N(fb_list), fb_list, sizeof(seed), seed, 0, NULL};
    CK_MECHANISM cm = {CKM_SP800_108_COUNTER_KDF, &cp, sizeof(cp)};
    CK_MECHANISM fm = {CKM_SP800_108_FEEDBACK_KDF, &fp, sizeof(fp)};
    hsm_oid_t gen, aes;
    uint8_t *v;
    size_t vl;
    CK_RV rv;

    memset(kv, 0x5C, sizeof(kv));
    memset(seed, 0xC5, sizeof(seed));
    gen = secret(f, k_gen, kv, 32);
    aes = secret(f, k_aes, kv, 16);
    /* counter mode, HMAC-SHA256, 70 bytes (3 blocks) */
    ossl_kbkdf("COUNTER", "HMAC", "SHA256", kv, 32, label, sizeof(label) - 1,
               ctxt, sizeof(ctxt) - 1, NULL, 0, want, 70);
    v = derived_value(f, &cm, gen, 70, &rv, &vl);
    assert_int_equal(rv, CKR_OK);
    assert_int_equal(vl, 70);
    assert_memory_equal(v, want, 70);
    free(v);
    /* counter mode, AES-CMAC */
    cp.prfType = CKM_AES_CMAC;
    ossl_kbkdf("COUNTER", "CMAC", "AES-128-CBC", kv, 16, label,
               sizeof(label) - 1, ctxt, sizeof(ctxt) - 1, NULL, 0, want, 40);
    v = derived_value(f, &cm, aes, 40, &rv, &vl);
    assert_int_equal(rv, CKR_OK);
    assert_memory_equal(v, want, 40);
    free(v);
    /* CMAC with an HMAC key is inconsistent */
    v = derived_value(f, &cm, gen, 40, &rv, &vl);
    assert_int_equal(rv, CKR_KEY_TYPE_INCONSISTENT);
    /* feedback mode, HMAC-SHA256 with an IV */
    ossl_kbkdf("FEEDBACK", "HMAC", "SHA256", kv, 32, label, sizeof(label) - 1,
               ctxt, sizeof(ctxt) - 1, seed, sizeof(seed), want, 80);
    v = derived_value(f, &fm, gen, 80, &rv, &vl);
    assert_int_equal(rv, CKR_OK);
    assert_memory_equal(v, want, 80);
    free(v);
    /* additional derived keys are refused; so is a missing counter */
    {
        CK_DERIVED_KEY extra = {NULL, 0, NULL};

        cp.prfType = CKM_SHA256_HMAC;
        cp.ulAdditionalDerivedKeys = 1;
        cp.pAdditionalDerivedKeys = &extra;
        v = derived_value(f, &cm, gen, 16, &rv, &vl);
        assert_int_equal(rv, CKR_MECHANISM_PARAM_INVALID);
        cp.ulAdditionalDerivedKeys = 0;
        cp.pAdditionalDerivedKeys = NULL;
        cp.pDataParams = counter_list + 1;
        cp.ulNumberOfDataParams = N(counter_list) - 1;
        v = derived_value(f, &cm, gen, 16, &rv, &vl);
        assert_int_equal(rv, CKR_MECHANISM_PARAM_INVALID);
    }
    assert_int_equal(hsm_object_destroy(f->a, f->sa, gen), CKR_OK);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, aes), CKR_OK);
}

/* RFC 6070 (PBKDF2-HMAC-SHA1) and RFC 7914 section 11 (HMAC-SHA256). */
static void test_pbkdf2(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *pw, *salt;
        CK_ULONG iter, prf;
        const char *dk;
    } v[] = {
        {"password", "salt", 1, CKP_PKCS5_PBKD2_HMAC_SHA1,
         "0c60c80f961f0e71f3a9b524af6012062fe037a6"},
        {"password", "salt", 2, CKP_PKCS5_PBKD2_HMAC_SHA1,
         "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"},
        {"password", "salt", 4096, CKP_PKCS5_PBKD2_HMAC_SHA1,
         "4b007901b765489abead49d926f721d065a429c1"},
        {"passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt",
         4096, CKP_PKCS5_PBKD2_HMAC_SHA1,
         "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"},
        {"passwd", "salt", 1, CKP_PKCS5_PBKD2_HMAC_SHA256,
         "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
         "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"},
    };

    for (size_t i = 0; i < N(v); i++) {
        uint8_t want[64];
        size_t wl = unhex(v[i].dk, want, sizeof(want));
        CK_ULONG len = wl, pwlen = strlen(v[i].pw);
        CK_PKCS5_PBKD2_PARAMS2 p2 = {CKZ_SALT_SPECIFIED,
                                     (void *)v[i].salt,
                                     strlen(v[i].salt),
                                     v[i].iter,
                                     v[i].prf,
                                     NULL,
                                     0,
                                     (CK_UTF8CHAR_PTR)v[i].pw,
                                     pwlen};
        CK_PKCS5_PBKD2_PARAMS p1 = {CKZ_SALT_SPECIFIED,
                                    (void *)v[i].salt,
                                    strlen(v[i].salt),
                                    v[i].iter,
                                    v[i].prf,
                                    NULL,
                                    0,
                                    (CK_UTF8CHAR_PTR)v[i].pw,
                                    &pwlen};
        CK_MECHANISM m2 = {CKM_PKCS5_PBKD2, &p2, sizeof(p2)};
        CK_MECHANISM m1 = {CKM_PKCS5_PBKD2, &p1, sizeof(p1)};
        CK_ATTRIBUTE t[] = {
            {CKA_SENSITIVE, &no, 1},
            {CKA_VALUE_LEN, &len, sizeof(len)},
        };

        /* The 2.40 layout is told from PARAMS2 by its length only: where
         * the sizes are equal the length means PARAMS2 and the 2.40 length
         * pointer is a too long password. */
        if (sizeof(p1) == sizeof(p2)) {
            hsm_oid_t k = 0;

            assert_int_equal(t_generate_key(f->a, f->sa, &m1, t, N(t), &k),
                             CKR_MECHANISM_PARAM_INVALID);
            assert_int_equal(k, 0);
        }
        for (int pass = 0; pass < (sizeof(p1) == sizeof(p2) ? 1 : 2); pass++) {
            hsm_oid_t k = 0;
            size_t vl;
            uint8_t *val;

            assert_int_equal(
                t_generate_key(f->a, f->sa, pass == 0 ? &m2 : &m1, t, N(t), &k),
                CKR_OK);
            val = get_attr(f->a, f->sa, k, CKA_VALUE, &vl);
            assert_int_equal(vl, wl);
            assert_memory_equal(val, want, wl);
            free(val);
            assert_int_equal(hsm_object_destroy(f->a, f->sa, k), CKR_OK);
        }
    }
}

static void test_simple_derive(void **state)
{
    struct fx *f = *state;
    uint8_t b[16], o[16], data[32], want[48], iv[16];
    hsm_oid_t base, other;
    uint8_t *v;
    size_t vl;
    CK_RV rv;

    memset(b, 1, sizeof(b));
    memset(o, 2, sizeof(o));
    memset(data, 3, sizeof(data));
    memset(iv, 4, sizeof(iv));
    base = secret(f, k_aes, b, 16);
    other = secret(f, k_gen, o, 16);
    {
        CK_OBJECT_HANDLE h = other; /* the object id in place of a handle */
        CK_MECHANISM m = {CKM_CONCATENATE_BASE_AND_KEY, &h, sizeof(h)};

        v = derived_value(f, &m, base, 0, &rv, &vl);
        assert_int_equal(rv, CKR_OK);
        assert_int_equal(vl, 32);
        assert_memory_equal(v, b, 16);
        assert_memory_equal(v + 16, o, 16);
        free(v);
    }
    {
        CK_KEY_DERIVATION_STRING_DATA d = {data, 5};
        CK_MECHANISM m = {CKM_CONCATENATE_BASE_AND_DATA, &d, sizeof(d)};

        v = derived_value(f, &m, base, 0, &rv, &vl);
        assert_int_equal(rv, CKR_OK);
        assert_int_equal(vl, 21);
        assert_memory_equal(v + 16, data, 5);
        free(v);
    }
    {
        CK_KEY_DERIVATION_STRING_DATA d = {data, 32};
        CK_MECHANISM m = {CKM_AES_ECB_ENCRYPT_DATA, &d, sizeof(d)};

        ossl_crypt("AES-128-ECB", b, NULL, false, true, data, 32, want);
        v = derived_value(f, &m, base, 24, &rv, &vl);
        assert_int_equal(rv, CKR_OK);
        assert_int_equal(vl, 24);
        assert_memory_equal(v, want, 24);
        free(v);
        d.ulLen = 20;
        v = derived_value(f, &m, base, 0, &rv, &vl);
        assert_int_equal(rv, CKR_MECHANISM_PARAM_INVALID);
    }
    {
        CK_AES_CBC_ENCRYPT_DATA_PARAMS d;
        CK_MECHANISM m = {CKM_AES_CBC_ENCRYPT_DATA, &d, sizeof(d)};

        memcpy(d.iv, iv, 16);
        d.pData = data;
        d.length = 32;
        ossl_crypt("AES-128-CBC", b, iv, false, true, data, 32, want);
        v = derived_value(f, &m, base, 0, &rv, &vl);
        assert_int_equal(rv, CKR_OK);
        assert_int_equal(vl, 32);
        assert_memory_equal(v, want, 32);
        free(v);
    }
    /* HKDF_DATA makes a data object */
    {
        CK_HKDF_PARAMS hp = {CK_TRUE, CK_TRUE, CKM_SHA256, CKF_HKDF_SALT_DATA,
                             data,    8,       0,          NULL,
                             0};
        CK_MECHANISM m = {CKM_HKDF_DATA, &hp, sizeof(hp)};
        CK_ULONG len = 42;
        CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &len, sizeof(len)},
                            {CKA_LABEL, "okm", 3}};
        CK_ATTRIBUTE_TYPE ct = CKA_CLASS;
        hsm_oid_t d;
        hsm_attr_t a;

        assert_int_equal(t_derive_key(f->a, f->sa, &m, other, t, N(t), &d),
                         CKR_OK);
        assert_int_equal(hsm_object_get(f->a, f->sa, d, &ct, 1, &a), CKR_OK);
        assert_int_equal(*(CK_OBJECT_CLASS *)a.value, CKO_DATA);
        free(a.value);
        v = get_attr(f->a, f->sa, d, CKA_VALUE, &vl);
        assert_int_equal(vl, 42);
        free(v);
        assert_int_equal(hsm_object_destroy(f->a, f->sa, d), CKR_OK);
    }
    assert_int_equal(hsm_object_destroy(f->a, f->sa, base), CKR_OK);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, other), CKR_OK);
}

/* ------------------------------------------------------------ messages */

/* A remote caller builds the message parameter itself: a layout of
 * another algorithm, a decryption tag shorter than the parameter says, an
 * IV over the limit, or none at all are refused, nothing read past a
 * byte string's length. */
static void test_message_distrusts(void **state)
{
    struct fx *f = *state;
    uint8_t kv[32], iv[HSM_MSG_IV_MAX + 1], tag[16], in[16], out[32];
    CK_MECHANISM gm = {CKM_AES_GCM, NULL, 0};
    hsm_msg_result_t r;
    hsm_mech_t p;
    hsm_oid_t key;
    size_t ol;

    memset(kv, 0x31, sizeof(kv));
    memset(iv, 0x41, sizeof(iv));
    memset(tag, 0, sizeof(tag));
    memset(in, 0x33, sizeof(in));
    key = secret(f, k_aes, kv, 32);
    /* (the test before leaves its ChaCha20 operations to the session) */
    hsm_msg_abort(f->a, f->sa, HSM_MSG_ENCRYPT);
    hsm_msg_abort(f->a, f->sa, HSM_MSG_DECRYPT);
    assert_int_equal(t_msg_init(f->a, f->sa, HSM_MSG_ENCRYPT, &gm, key),
                     CKR_OK);
    assert_int_equal(t_msg_init(f->a, f->sa, HSM_MSG_DECRYPT, &gm, key),
                     CKR_OK);
    memset(&p, 0, sizeof(p));
    p.type = CKM_AES_GCM;
    p.layout = HSM_MP_GCM_MESSAGE;
    p.u.gcm_msg.iv.data = iv;
    p.u.gcm_msg.iv.len = 12;
    p.u.gcm_msg.iv.present = true;
    p.u.gcm_msg.tag.present = true;
    p.u.gcm_msg.tag_bits = 128;
    p.u.gcm_msg.generator = CKG_NO_GENERATE;
    ol = sizeof(out);
    assert_int_equal(hsm_msg_oneshot(f->a, f->sa, HSM_MSG_ENCRYPT, &p, in, 0,
                                     in, sizeof(in), out, &ol, &r),
                     CKR_OK);
    memcpy(tag, r.tag, 16);
    /* decryption needs the whole tag in the parameter */
    p.u.gcm_msg.tag.data = tag;
    p.u.gcm_msg.tag.len = 4;
    ol = sizeof(out);
    assert_int_equal(hsm_msg_oneshot(f->a, f->sa, HSM_MSG_DECRYPT, &p, in, 0,
                                     out, sizeof(in), in, &ol, &r),
                     CKR_MECHANISM_PARAM_INVALID);
    p.u.gcm_msg.tag.len = 16;
    ol = sizeof(out);
    assert_int_equal(hsm_msg_oneshot(f->a, f->sa, HSM_MSG_DECRYPT, &p, in, 0,
                                     out, sizeof(in), in, &ol, &r),
                     CKR_OK);
    /* another algorithm's layout */
    p.layout = HSM_MP_CCM_MESSAGE;
    ol = sizeof(out);
    assert_int_equal(hsm_msg_oneshot(f->a, f->sa, HSM_MSG_ENCRYPT, &p, in, 0,
                                     in, sizeof(in), out, &ol, &r),
                     CKR_MECHANISM_PARAM_INVALID);
    p.layout = HSM_MP_GCM;
    assert_int_equal(hsm_msg_begin(f->a, f->sa, HSM_MSG_ENCRYPT, &p, in, 0, &r),
                     CKR_MECHANISM_PARAM_INVALID);
    /* an IV over the limit, no tag pointer, no parameter */
    p.layout = HSM_MP_GCM_MESSAGE;
    p.u.gcm_msg.iv.len = HSM_MSG_IV_MAX + 1;
    assert_int_equal(hsm_msg_begin(f->a, f->sa, HSM_MSG_ENCRYPT, &p, in, 0, &r),
                     CKR_MECHANISM_PARAM_INVALID);
    p.u.gcm_msg.iv.len = 12;
    p.u.gcm_msg.tag.present = false;
    assert_int_equal(hsm_msg_begin(f->a, f->sa, HSM_MSG_ENCRYPT, &p, in, 0, &r),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(
        hsm_msg_begin(f->a, f->sa, HSM_MSG_ENCRYPT, NULL, in, 0, &r),
        CKR_MECHANISM_PARAM_INVALID);
    hsm_msg_abort(f->a, f->sa, HSM_MSG_ENCRYPT);
    hsm_msg_abort(f->a, f->sa, HSM_MSG_DECRYPT);
    assert_int_equal(hsm_object_destroy(f->a, f->sa, key), CKR_OK);
}

static void test_message_api(void **state)
{
    struct fx *f = *state;
    uint8_t kv[32], iv[12], tag[16], aad[9], in[50], out[64], back[64];
    CK_MECHANISM gm = {CKM_AES_GCM, NULL, 0};
    static const CK_GENERATOR_FUNCTION gens[] = {
        CKG_NO_GENERATE, CKG_GENERATE, CKG_GENERATE_COUNTER,
        CKG_GENERATE_RANDOM, CKG_GENERATE_COUNTER_XOR};
    hsm_oid_t key;
    hsm_msg_result_t r;
    size_t ol, bl;
    int last_ctr = -1;

    memset(kv, 0x31, sizeof(kv));
    memset(aad, 0x32, sizeof(aad));
    memset(in, 0x33, sizeof(in));
    key = secret(f, k_aes, kv, 32);
    assert_int_equal(t_msg_init(f->a, f->sa, HSM_MSG_ENCRYPT, &gm, key),
                     CKR_OK);
    assert_int_equal(t_msg_init(f->a, f->sa, HSM_MSG_ENCRYPT, &gm, key),
                     CKR_OPERATION_ACTIVE);
    assert_int_equal(t_msg_init(f->a, f->sa, HSM_MSG_DECRYPT, &gm, key),
                     CKR_OK);
    for (size_t g = 0; g < N(gens); g++) {
        for (int round = 0; round < 2; round++) {
            CK_GCM_MESSAGE_PARAMS p = {iv, 12, 32, gens[g], tag, 128};

            memset(iv, 0xA0, sizeof(iv));
            ol = sizeof(out);
            assert_int_equal(t_msg_oneshot(f->a, f->sa, HSM_MSG_ENCRYPT, &p,
                                           sizeof(p), aad, sizeof(aad), in,
                                           sizeof(in), out, &ol, &r),
                             CKR_OK);
            assert_int_equal(ol, sizeof(in));
            assert_int_equal(r.iv_len, 12);
            assert_int_equal(r.tag_len, 16);
            /* the fixed 32 bits are kept */
            assert_memory_equal(r.iv, iv, 4);
            if (gens[g] == CKG_NO_GENERATE) {
                assert_memory_equal(r.iv, iv, 12);
            } else if (gens[g] == CKG_GENERATE_COUNTER) {
                /* a big-endian message counter after the fixed part */
                for (size_t i = 4; i < 11; i++) {
                    assert_int_equal(r.iv[i], 0);
                }
                if (last_ctr >= 0) {
                    assert_int_equal(r.iv[11], last_ctr + 1);
                }
                last_ctr = r.iv[11];
            } else {
                assert_memory_not_equal(r.iv + 4, iv + 4, 8);
            }
            /* the front end writes back: */
            memcpy(iv, r.iv, 12);
            memcpy(tag, r.tag, 16);
            /* decrypt in parts */
            p.ivGenerator = CKG_NO_GENERATE;
            assert_int_equal(t_msg_begin(f->a, f->sa, HSM_MSG_DECRYPT, &p,
                                         sizeof(p), aad, sizeof(aad), &r),
                             CKR_OK);
            bl = sizeof(back);
            assert_int_equal(t_msg_next(f->a, f->sa, HSM_MSG_DECRYPT, &p,
                                        sizeof(p), out, 20, false, back, &bl,
                                        &r),
                             CKR_OK);
            assert_int_equal(bl, 0); /* held until the tag is checked */
            bl = sizeof(back);
            assert_int_equal(t_msg_next(f->a, f->sa, HSM_MSG_DECRYPT, &p,
                                        sizeof(p), out + 20, ol - 20, true,
                                        back, &bl, &r),
                             CKR_OK);
            assert_int_equal(bl, sizeof(in));
            assert_memory_equal(back, in, sizeof(in));
            /* and a wrong tag */
            tag[0] ^= 1;
            bl = sizeof(back);
            assert_int_equal(t_msg_oneshot(f->a, f->sa, HSM_MSG_DECRYPT, &p,
                                           sizeof(p), aad, sizeof(aad), out, ol,
                                           back, &bl, &r),
                             CKR_AEAD_DECRYPT_FAILED);
        }
    }
    /* encryption in parts, the tag at the end */
    {
        CK_GCM_MESSAGE_PARAMS p = {iv, 12, 0, CKG_GENERATE_RANDOM, tag, 96};
        size_t total = 0;

        assert_int_equal(t_msg_begin(f->a, f->sa, HSM_MSG_ENCRYPT, &p,
                                     sizeof(p), aad, sizeof(aad), &r),
                         CKR_OK);
        memcpy(iv, r.iv, 12);
        ol = sizeof(out);
        assert_int_equal(t_msg_next(f->a, f->sa, HSM_MSG_ENCRYPT, &p, sizeof(p),
                                    in, 30, false, out, &ol, &r),
                         CKR_OK);
        total = ol;
        ol = sizeof(out) - total;
        assert_int_equal(t_msg_next(f->a, f->sa, HSM_MSG_ENCRYPT, &p, sizeof(p),
                                    in + 30, 20, true, out + total, &ol, &r),
                         CKR_OK);
        total += ol;
        assert_int_equal(total, sizeof(in));
        assert_int_equal(r.tag_len, 12);
        memcpy(tag, r.tag, 12);
        p.ivGenerator = CKG_NO_GENERATE;
        bl = sizeof(back);
        assert_int_equal(t_msg_oneshot(f->a, f->sa, HSM_MSG_DECRYPT, &p,
                                       sizeof(p), aad, sizeof(aad), out, total,
                                       back, &bl, &r),
                         CKR_OK);
        assert_memory_equal(back, in, sizeof(in));
    }
    assert_int_equal(hsm_msg_final(f->a, f->sa, HSM_MSG_ENCRYPT), CKR_OK);
    assert_int_equal(hsm_msg_final(f->a, f->sa, HSM_MSG_ENCRYPT),
                     CKR_OPERATION_NOT_INITIALIZED);
    hsm_msg_abort(f->a, f->sa, HSM_MSG_DECRYPT);
    /* CCM and ChaCha20-Poly1305 messages */
    {
        uint8_t nonce[13], mac[16];
        CK_MECHANISM cm = {CKM_AES_CCM, NULL, 0};
        CK_CCM_MESSAGE_PARAMS p = {sizeof(in),           nonce, 13, 8,
                                   CKG_GENERATE_COUNTER, mac,   16};

        memset(nonce, 0x66, sizeof(nonce));
        assert_int_equal(t_msg_init(f->a, f->sa, HSM_MSG_ENCRYPT, &cm, key),
                         CKR_OK);
        assert_int_equal(t_msg_init(f->a, f->sa, HSM_MSG_DECRYPT, &cm, key),
                         CKR_OK);
        ol = sizeof(out);
        assert_int_equal(t_msg_oneshot(f->a, f->sa, HSM_MSG_ENCRYPT, &p,
                                       sizeof(p), aad, sizeof(aad), in,
                                       sizeof(in), out, &ol, &r),
                         CKR_OK);
        memcpy(nonce, r.iv, 13);
        memcpy(mac, r.tag, 16);
        p.nonceGenerator = CKG_NO_GENERATE;
        bl = sizeof(back);
        assert_int_equal(t_msg_oneshot(f->a, f->sa, HSM_MSG_DECRYPT, &p,
                                       sizeof(p), aad, sizeof(aad), out, ol,
                                       back, &bl, &r),
                         CKR_OK);
        assert_memory_equal(back, in, sizeof(in));
        assert_int_equal(hsm_msg_final(f->a, f->sa, HSM_MSG_ENCRYPT), CKR_OK);
        assert_int_equal(hsm_msg_final(f->a, f->sa, HSM_MSG_DECRYPT), CKR_OK);
    }
    {
        uint8_t ck[32], nonce[12], ptag[16];
        hsm_oid_t chk;
        CK_MECHANISM cm = {CKM_CHACHA20_POLY1305, NULL, 0};
        CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS p = {nonce, 12, ptag};

        memset(ck, 0x12, sizeof(ck));
        memset(nonce, 0x34, sizeof(nonce));
        chk = secret(f, k_chacha, ck, 32);
        assert_int_equal(t_msg_init(f->a, f->sa, HSM_MSG_ENCRYPT, &cm, chk),
                         CKR_OK);
        assert_int_equal(t_msg_init(f->a, f->sa, HSM_MSG_DECRYPT, &cm, chk),
                         CKR_OK);
        ol = sizeof(out);
        assert_int_equal(t_msg_oneshot(f->a, f->sa, HSM_MSG_ENCRYPT, &p,
                                       sizeof(p), NULL, 0, in, sizeof(in), out,
                                       &ol, &r),
                         CKR_OK);
        memcpy(ptag, r.tag, 16);
        bl = sizeof(back);
        assert_int_equal(t_msg_oneshot(f->a, f->sa, HSM_MSG_DECRYPT, &p,
                                       sizeof(p), NULL, 0, out, ol, back, &bl,
                                       &r),
                         CKR_OK);
        assert_memory_equal(back, in, sizeof(in));
        assert_int_equal(hsm_object_destroy(f->a, f->sa, chk), CKR_OK);
        /* closing the session ends the operations (no leak) */
    }
    assert_int_equal(hsm_object_destroy(f->a, f->sa, key), CKR_OK);
}

/* ------------------------------------------------------------ JSON */

typedef struct jv {
    int t; /* 0 null, 1 bool, 2 number, 3 string, 4 array, 5 object */
    char *s;
    double num;
    bool b;
    struct jv *items;
    char **keys;
    size_t n;
} jv_t;

struct jp {
    const char *s;
    size_t i, n;
};

static void jws(struct jp *p)
{
    while (p->i < p->n && strchr(" \t\r\n", p->s[p->i]) != NULL) {
        p->i++;
    }
}

static bool jparse(struct jp *p, jv_t *v, int depth);

static bool jstring(struct jp *p, char **out)
{
    size_t cap = 16, len = 0;
    char *b = malloc(cap);

    if (b == NULL || p->s[p->i] != '"') {
        free(b);
        return false;
    }
    p->i++;
    while (p->i < p->n && p->s[p->i] != '"') {
        char c = p->s[p->i++];

        if (c == '\\' && p->i < p->n) {
            c = p->s[p->i++];
            if (c == 'n') {
                c = '\n';
            } else if (c == 't') {
                c = '\t';
            } else if (c == 'u') {
                p->i += 4;
                c = '?';
            }
        }
        if (len + 2 > cap) {
            char *nb = realloc(b, cap *= 2);

            if (nb == NULL) {
                free(b);
                return false;
            }
            b = nb;
        }
        b[len++] = c;
    }
    b[len] = '\0';
    if (p->i >= p->n) {
        free(b);
        return false;
    }
    p->i++;
    *out = b;
    return true;
}

static bool jparse(struct jp *p, jv_t *v, int depth)
{
    memset(v, 0, sizeof(*v));
    jws(p);
    if (p->i >= p->n || depth > 32) {
        return false;
    }
    switch (p->s[p->i]) {
    case '"':
        v->t = 3;
        return jstring(p, &v->s);
    case '{':
    case '[': {
        bool obj = p->s[p->i] == '{';
        size_t cap = 0;

        v->t = obj ? 5 : 4;
        p->i++;
        jws(p);
        if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
            p->i++;
            return true;
        }
        for (;;) {
            if (v->n == cap) {
                cap = cap == 0 ? 8 : cap * 2;
                v->items = realloc(v->items, cap * sizeof(*v->items));
                v->keys = realloc(v->keys, cap * sizeof(*v->keys));
                if (v->items == NULL || v->keys == NULL) {
                    return false;
                }
            }
            v->keys[v->n] = NULL;
            if (obj) {
                jws(p);
                if (!jstring(p, &v->keys[v->n])) {
                    return false;
                }
                jws(p);
                if (p->i >= p->n || p->s[p->i] != ':') {
                    return false;
                }
                p->i++;
            }
            if (!jparse(p, &v->items[v->n], depth + 1)) {
                return false;
            }
            v->n++;
            jws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
                p->i++;
                return true;
            }
            return false;
        }
    }
    case 't':
    case 'f':
        v->t = 1;
        v->b = p->s[p->i] == 't';
        p->i += v->b ? 4 : 5;
        return true;
    case 'n':
        p->i += 4;
        return true;
    default: {
        char *end;

        v->t = 2;
        v->num = strtod(p->s + p->i, &end);
        if (end == p->s + p->i) {
            return false;
        }
        p->i = (size_t)(end - p->s);
        return true;
    }
    }
}

static void jfree(jv_t *v)
{
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->s);
}

static const jv_t *jget(const jv_t *o, const char *k)
{
    for (size_t i = 0; o->t == 5 && i < o->n; i++) {
        if (strcmp(o->keys[i], k) == 0) {
            return &o->items[i];
        }
    }
    return NULL;
}

static const char *jstr(const jv_t *o, const char *k)
{
    const jv_t *v = jget(o, k);

    return v != NULL && v->t == 3 ? v->s : "";
}

static long jnum(const jv_t *o, const char *k)
{
    const jv_t *v = jget(o, k);

    return v != NULL && v->t == 2 ? (long)v->num : -1;
}

/* Hex of any length (malloc'd, at least one byte allocated). */
static uint8_t *jhex(const jv_t *o, const char *k, size_t *len)
{
    const char *h = jstr(o, k);
    size_t n = strlen(h) / 2;
    uint8_t *b = malloc(n + 1);

    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        unsigned v;

        assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
        b[i] = (uint8_t)v;
    }
    *len = n;
    return b;
}

/* Loads a Wycheproof file; false (with a message) when absent. */
static bool wp_load(const char *file, jv_t *root)
{
    const char *dir = getenv("NIMBUS_TESTVECTORS");
    char path[PATH_MAX];
    FILE *fp;
    char *buf;
    size_t got;
    struct jp p;
    bool ok;

    if (dir == NULL || dir[0] == '\0') {
        dir = "../shared/testvectors";
    }
    snprintf(path, sizeof(path), "%s/wycheproof/%s", dir, file);
    fp = fopen(path, "rb");
    if (fp == NULL) {
        print_message("wycheproof %s not found at %s: skipped\n", file, path);
        return false;
    }
    buf = malloc(TEST_JSON_MAX + 1);
    assert_non_null(buf);
    got = fread(buf, 1, TEST_JSON_MAX, fp);
    fclose(fp);
    p.s = buf;
    p.i = 0;
    p.n = got;
    ok = jparse(&p, root, 0);
    free(buf);
    if (!ok) {
        fail_msg("%s: not JSON", path);
    }
    return true;
}

struct wp_count {
    unsigned long run, passed, skipped, refused;
    const char *why[4];
    unsigned long why_n[4];
};

static void wp_skip(struct wp_count *c, const char *why)
{
    for (size_t i = 0; i < 4; i++) {
        if (c->why[i] == NULL || strcmp(c->why[i], why) == 0) {
            c->why[i] = why;
            c->why_n[i]++;
            break;
        }
    }
    c->skipped++;
}

static void wp_report(const char *file, const struct wp_count *c)
{
    print_message("wycheproof %s: %lu run, %lu passed (%lu of them "
                  "'acceptable' vectors refused), %lu skipped\n",
                  file, c->run, c->passed, c->refused, c->skipped);
    for (size_t i = 0; i < 4 && c->why[i] != NULL; i++) {
        print_message("  skipped %lu: %s\n", c->why_n[i], c->why[i]);
    }
    assert_true(c->run > 0);
    assert_int_equal(c->run, c->passed);
}

/* One vector: encrypt msg -> want, decrypt want -> msg (valid), or the
 * decryption fails (invalid). */
static bool wp_cipher(struct fx *f, CK_MECHANISM *m, hsm_oid_t key,
                      const uint8_t *pt, size_t pl, const uint8_t *ct,
                      size_t cl, bool valid, bool check_enc)
{
    uint8_t *out = malloc(pl + cl + 64);
    size_t ol = pl + cl + 64;
    bool ok = true;
    CK_RV rv;

    assert_non_null(out);
    if (valid && check_enc) {
        rv = crypt1(f->a, f->sa, HSM_OPK_ENCRYPT, m, key, pt, pl, out, &ol);
        ok = rv == CKR_OK && ol == cl && (cl == 0 || memcmp(out, ct, cl) == 0);
    }
    ol = pl + cl + 64;
    rv = t_op_init(f->a, f->sa, HSM_OPK_DECRYPT, m, key);
    if (rv == CKR_OK) {
        size_t need = 0;

        assert_int_equal(
            hsm_op_output_len(f->a, f->sa, HSM_OPK_DECRYPT, false, cl, &need),
            CKR_OK);
        assert_true(need <= ol);
        rv = hsm_op_oneshot(f->a, f->sa, HSM_OPK_DECRYPT, ct, cl, out, &ol);
    }
    if (valid) {
        ok = ok && rv == CKR_OK && ol == pl &&
             (pl == 0 || memcmp(out, pt, pl) == 0);
    } else {
        ok = ok && rv != CKR_OK;
    }
    free(out);
    return ok;
}

static void test_wycheproof_gcm(void **state)
{
    struct fx *f = *state;
    struct wp_count c;
    jv_t root;

    memset(&c, 0, sizeof(c));
    if (!wp_load("aes_gcm_test.json", &root)) {
        skip();
    }
    const jv_t *groups = jget(&root, "testGroups");

    for (size_t g = 0; g < groups->n; g++) {
        const jv_t *grp = &groups->items[g];
        const jv_t *tests = jget(grp, "tests");
        long ivs = jnum(grp, "ivSize"), tags = jnum(grp, "tagSize");

        for (size_t t = 0; t < tests->n; t++) {
            const jv_t *v = &tests->items[t];
            size_t kl, il, al, ml, cl, tl;
            uint8_t *k = jhex(v, "key", &kl), *iv = jhex(v, "iv", &il),
                    *aad = jhex(v, "aad", &al), *pt = jhex(v, "msg", &ml),
                    *ct = jhex(v, "ct", &cl), *tag = jhex(v, "tag", &tl);
            bool valid = strcmp(jstr(v, "result"), "invalid") != 0;
            bool zero = il == 12;

            for (size_t i = 0; i < il; i++) {
                zero = zero && iv[i] == 0;
            }
            if (ivs == 0 || il == 0) {
                wp_skip(&c, "IV of 0 bytes: CK_GCM_PARAMS needs ulIvLen >= 1");
            } else if (il > MECH_GCM_IV_MAX) {
                wp_skip(&c, "IV over 128 bytes: OpenSSL 3.0's GCM takes no more");
            } else if (tags < 32 || tags > 128 || tags % 8 != 0 ||
                       tl * 8 != (size_t)tags) {
                wp_skip(&c, "tag size outside 32..128 bits");
            } else {
                uint8_t *ctt = malloc(cl + tl + 1);
                CK_GCM_PARAMS p = {iv, il, il * 8, aad, al, (CK_ULONG)tags};
                CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof(p)};
                hsm_oid_t key = secret(f, k_aes, k, kl);

                memcpy(ctt, ct, cl);
                memcpy(ctt + cl, tag, tl);
                c.run++;
                /* a zero 12-byte IV on encryption means "token makes it" */
                if (wp_cipher(f, &m, key, pt, ml, ctt, cl + tl, valid, !zero)) {
                    c.passed++;
                } else {
                    print_message("gcm tcId %ld failed\n", jnum(v, "tcId"));
                }
                assert_int_equal(hsm_object_destroy(f->a, f->sa, key), CKR_OK);
                free(ctt);
            }
            free(k);
            free(iv);
            free(aad);
            free(pt);
            free(ct);
            free(tag);
        }
    }
    wp_report("aes_gcm_test.json", &c);
    jfree(&root);
}

/*
 * A second instance on the same store with key_separation = off, alice
 * logged in: the only way to run AES key wrap as a cipher (the vectors
 * check the cipher; the module suite runs them through C_WrapKey).
 */
static void permissive_open(const struct fx *f, struct fx *g)
{
    *g = *f;
    g->cfg.key_separation = false;
    assert_int_equal(hsm_open(&g->cfg, &g->hsm), CKR_OK);
    assert_int_equal(hsm_conn_open(g->hsm, &g->a), CKR_OK);
    assert_int_equal(hsm_login(g->a, HSM_LOGIN_USER, "alice", PW("alicepw1")),
                     CKR_OK);
    assert_int_equal(hsm_session_open(g->a, true, &g->sa), CKR_OK);
    g->b = NULL;
}

/* CBC-PKCS5 (CKM_AES_CBC_PAD), KW (CKM_AES_KEY_WRAP) and KWP
 * (CKM_AES_KEY_WRAP_KWP), as encryption and decryption. */
static void wp_simple(struct fx *f0, const char *file, CK_MECHANISM_TYPE mt)
{
    bool kw = mt == CKM_AES_KEY_WRAP || mt == CKM_AES_KEY_WRAP_KWP;
    struct wp_count c;
    struct fx perm, *f = f0;
    jv_t root;

    memset(&c, 0, sizeof(c));
    if (!wp_load(file, &root)) {
        skip();
    }
    if (kw) {
        permissive_open(f0, &perm);
        f = &perm;
    }
    const jv_t *groups = jget(&root, "testGroups");

    for (size_t g = 0; g < groups->n; g++) {
        const jv_t *tests = jget(&groups->items[g], "tests");

        for (size_t t = 0; t < tests->n; t++) {
            const jv_t *v = &tests->items[t];
            size_t kl, il = 0, ml, cl;
            uint8_t *k = jhex(v, "key", &kl), *pt = jhex(v, "msg", &ml),
                    *ct = jhex(v, "ct", &cl);
            uint8_t *iv = jget(v, "iv") != NULL ? jhex(v, "iv", &il) : NULL;
            bool valid = strcmp(jstr(v, "result"), "invalid") != 0;
            bool acceptable = strcmp(jstr(v, "result"), "acceptable") == 0;
            CK_MECHANISM m = {mt, iv, il};

            if (kl != 16 && kl != 24 && kl != 32) {
                wp_skip(&c, "not an AES key size");
            } else {
                hsm_oid_t key = secret(f, k_aes, k, kl);

                c.run++;
                if (wp_cipher(f, &m, key, pt, ml, ct, cl, valid, true)) {
                    c.passed++;
                } else if (acceptable && wp_cipher(f, &m, key, pt, ml, ct, cl,
                                                   false, false)) {
                    /* "acceptable" (an 8-byte KW input): refused here */
                    c.passed++;
                    c.refused++;
                } else {
                    print_message("%s tcId %ld failed\n", file,
                                  jnum(v, "tcId"));
                }
                assert_int_equal(hsm_object_destroy(f->a, f->sa, key), CKR_OK);
            }
            free(k);
            free(pt);
            free(ct);
            free(iv);
        }
    }
    if (kw) {
        hsm_close(perm.hsm);
    }
    wp_report(file, &c);
    jfree(&root);
}

static void test_wycheproof_cbc(void **state)
{
    wp_simple(*state, "aes_cbc_pkcs5_test.json", CKM_AES_CBC_PAD);
}

static void test_wycheproof_kw(void **state)
{
    wp_simple(*state, "aes_wrap_test.json", CKM_AES_KEY_WRAP);
}

static void test_wycheproof_kwp(void **state)
{
    wp_simple(*state, "aes_kwp_test.json", CKM_AES_KEY_WRAP_KWP);
}

static void test_wycheproof_cmac(void **state)
{
    struct fx *f = *state;
    struct wp_count c;
    jv_t root;

    memset(&c, 0, sizeof(c));
    if (!wp_load("aes_cmac_test.json", &root)) {
        skip();
    }
    const jv_t *groups = jget(&root, "testGroups");

    for (size_t g = 0; g < groups->n; g++) {
        const jv_t *tests = jget(&groups->items[g], "tests");

        for (size_t t = 0; t < tests->n; t++) {
            const jv_t *v = &tests->items[t];
            size_t kl, ml, tl;
            uint8_t *k = jhex(v, "key", &kl), *m = jhex(v, "msg", &ml),
                    *tag = jhex(v, "tag", &tl);
            bool valid = strcmp(jstr(v, "result"), "invalid") != 0;

            if (kl != 16 && kl != 24 && kl != 32) {
                wp_skip(&c, "not an AES key size");
            } else if (tl == 0 || tl > 16) {
                wp_skip(&c, "tag size outside 1..16 bytes");
            } else {
                CK_MAC_GENERAL_PARAMS ml2 = tl;
                CK_MECHANISM mech = {CKM_AES_CMAC_GENERAL, &ml2, sizeof(ml2)};
                hsm_oid_t key = secret(f, k_aes, k, kl);
                uint8_t mac[16];
                size_t macl = sizeof(mac);
                bool ok;
                CK_RV rv;

                c.run++;
                rv = t_op_init(f->a, f->sa, HSM_OPK_VERIFY, &mech, key);
                assert_int_equal(rv, CKR_OK);
                rv = hsm_op_verify(f->a, f->sa, m, ml, true, tag, tl);
                ok = valid ? rv == CKR_OK : rv != CKR_OK;
                if (valid) {
                    assert_int_equal(
                        t_op_init(f->a, f->sa, HSM_OPK_SIGN, &mech, key),
                        CKR_OK);
                    rv = hsm_op_oneshot(f->a, f->sa, HSM_OPK_SIGN, m, ml, mac,
                                        &macl);
                    ok = ok && rv == CKR_OK && macl == tl &&
                         memcmp(mac, tag, tl) == 0;
                }
                if (ok) {
                    c.passed++;
                } else {
                    print_message("cmac tcId %ld failed\n", jnum(v, "tcId"));
                }
                assert_int_equal(hsm_object_destroy(f->a, f->sa, key), CKR_OK);
            }
            free(k);
            free(m);
            free(tag);
        }
    }
    wp_report("aes_cmac_test.json", &c);
    jfree(&root);
}

static void wp_hkdf(struct fx *f, const char *file, CK_MECHANISM_TYPE hash)
{
    struct wp_count c;
    jv_t root;

    memset(&c, 0, sizeof(c));
    if (!wp_load(file, &root)) {
        skip();
    }
    const jv_t *groups = jget(&root, "testGroups");

    for (size_t g = 0; g < groups->n; g++) {
        const jv_t *tests = jget(&groups->items[g], "tests");

        for (size_t t = 0; t < tests->n; t++) {
            const jv_t *v = &tests->items[t];
            size_t il, sl, fl, ol;
            uint8_t *ikm = jhex(v, "ikm", &il), *salt = jhex(v, "salt", &sl),
                    *info = jhex(v, "info", &fl), *okm = jhex(v, "okm", &ol);
            long size = jnum(v, "size");
            bool valid = strcmp(jstr(v, "result"), "invalid") != 0;

            if (il == 0) {
                wp_skip(&c, "empty IKM: a key object has 1 byte or more");
            } else if (size <= 0) {
                wp_skip(&c, "an output of 0 bytes: CKA_VALUE_LEN >= 1");
            } else {
                CK_HKDF_PARAMS hp = {CK_TRUE,
                                     CK_TRUE,
                                     hash,
                                     sl > 0 ? CKF_HKDF_SALT_DATA
                                            : CKF_HKDF_SALT_NULL,
                                     sl > 0 ? salt : NULL,
                                     sl,
                                     0,
                                     fl > 0 ? info : NULL,
                                     fl};
                CK_MECHANISM m = {CKM_HKDF_DERIVE, &hp, sizeof(hp)};
                hsm_oid_t base = secret(f, k_gen, ikm, il);
                uint8_t *val;
                size_t vl = 0;
                CK_RV rv;
                bool ok;

                c.run++;
                val = derived_value(f, &m, base, (CK_ULONG)size, &rv, &vl);
                if (valid) {
                    ok = rv == CKR_OK && vl == ol && memcmp(val, okm, ol) == 0;
                } else {
                    ok = rv != CKR_OK;
                }
                if (ok) {
                    c.passed++;
                } else {
                    print_message("%s tcId %ld failed: 0x%lx\n", file,
                                  jnum(v, "tcId"), rv);
                }
                free(val);
                assert_int_equal(hsm_object_destroy(f->a, f->sa, base), CKR_OK);
            }
            free(ikm);
            free(salt);
            free(info);
            free(okm);
        }
    }
    wp_report(file, &c);
    jfree(&root);
}

static void test_wycheproof_hkdf(void **state)
{
    wp_hkdf(*state, "hkdf_sha256_test.json", CKM_SHA256);
    wp_hkdf(*state, "hkdf_sha384_test.json", CKM_SHA384);
    wp_hkdf(*state, "hkdf_sha512_test.json", CKM_SHA512);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_block_modes),
        cmocka_unit_test(test_ctr),
        cmocka_unit_test(test_des3),
        cmocka_unit_test(test_gcm),
        cmocka_unit_test(test_ccm),
        cmocka_unit_test(test_chacha20_poly1305),
        cmocka_unit_test(test_cmac_keygen),
        cmocka_unit_test(test_wrap_all),
        cmocka_unit_test(test_wrap_rules),
        cmocka_unit_test(test_kbkdf),
        cmocka_unit_test(test_pbkdf2),
        cmocka_unit_test(test_simple_derive),
        cmocka_unit_test(test_message_api),
        cmocka_unit_test(test_message_distrusts),
        cmocka_unit_test(test_wycheproof_gcm),
        cmocka_unit_test(test_wycheproof_cbc),
        cmocka_unit_test(test_wycheproof_kw),
        cmocka_unit_test(test_wycheproof_kwp),
        cmocka_unit_test(test_wycheproof_cmac),
        cmocka_unit_test(test_wycheproof_hkdf),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
