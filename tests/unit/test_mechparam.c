/*
 * test_mechparam.c - the mechanism codec (common/mechparam.h): every
 * layout decoded field by field, deep copies, the write-back, and hostile
 * parameters (NULL pointers with lengths, wrong ulParameterLen, huge
 * lengths and counts, nested NULLs). Byte strings that end at a page
 * followed by an inaccessible one prove that nothing is read past what the
 * caller declared; parameters in an inaccessible page prove that a
 * refused or ignored one is not read at all. The core's checks of a
 * decoded parameter it cannot trust (a remote caller builds hsm_mech_t
 * itself) are at the end.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/mechparam.h"
#include "hsm/mech.h"
#include "nimbus/pkcs11-vendor.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define HUGE_LEN ((CK_ULONG)HSM_MECH_BYTES_MAX + 1)

/* ------------------------------------------------------------ guard pages */

/* Two pages, the second inaccessible: fence(n) is n bytes that end where
 * the readable memory ends; any read past them faults. */
static uint8_t *guard;
static size_t pagesz;

static int setup(void **state)
{
    (void)state;
    pagesz = (size_t)sysconf(_SC_PAGESIZE);
    guard = mmap(NULL, 2 * pagesz, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard == MAP_FAILED) {
        return -1;
    }
    return mprotect(guard + pagesz, pagesz, PROT_NONE);
}

static int teardown(void **state)
{
    (void)state;
    return munmap(guard, 2 * pagesz);
}

static uint8_t *fence(size_t n)
{
    memset(guard + pagesz - n, 0xA5, n);
    return guard + pagesz - n;
}

/* Memory that may not be read at all. */
static void *no_access(void)
{
    return guard + pagesz;
}

/* Decodes; whatever decodes meets hsm_mech_check's invariants, and its
 * deep copy does too. */
static CK_RV dec(CK_MECHANISM_TYPE t, void *p, CK_ULONG len, hsm_mech_t *m)
{
    CK_MECHANISM mech = {t, p, len};
    CK_RV rv = hsm_mech_decode(&mech, m);

    if (rv == CKR_OK) {
        hsm_mech_t c;

        assert_int_equal(hsm_mech_check(m), CKR_OK);
        assert_int_equal(hsm_mech_copy(m, &c), CKR_OK);
        assert_int_equal(hsm_mech_check(&c), CKR_OK);
        hsm_mech_free(&c);
    }
    return rv;
}

/* A failed decode leaves nothing behind: zeroed, the type kept. */
static void assert_empty(const hsm_mech_t *m, CK_MECHANISM_TYPE t)
{
    hsm_mech_t z;

    memset(&z, 0, sizeof(z));
    z.type = t;
    assert_memory_equal(m, &z, sizeof(z));
}

/* ------------------------------------------------------------ layouts */

static void test_none_and_unknown(void **state)
{
    hsm_mech_t m;
    uint8_t junk[8] = {1, 2, 3};

    (void)state;
    /* ulParameterLen 0: pParameter is not looked at */
    assert_int_equal(dec(CKM_SHA256, no_access(), 0, &m), CKR_OK);
    assert_int_equal(m.type, CKM_SHA256);
    assert_int_equal(m.layout, HSM_MP_NONE);
    hsm_mech_free(&m);
    /* a parameter for a mechanism without one: kept as unknown, unread */
    assert_int_equal(dec(CKM_SHA256, junk, sizeof(junk), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_UNKNOWN);
    hsm_mech_free(&m);
    assert_int_equal(dec(0x7FFFFFF0UL, junk, sizeof(junk), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_UNKNOWN);
    assert_int_equal(m.type, 0x7FFFFFF0UL);
    hsm_mech_free(&m);
    assert_int_equal(m.layout, HSM_MP_NONE); /* free zeroes */
    assert_int_equal(hsm_mech_decode(NULL, &m), CKR_ARGUMENTS_BAD);
}

static void test_bytes_ulong_object(void **state)
{
    hsm_mech_t m;
    uint8_t iv[16];
    CK_ULONG len = 20;
    CK_OBJECT_HANDLE h = 0x1234;

    (void)state;
    memset(iv, 0x42, sizeof(iv));
    assert_int_equal(dec(CKM_AES_CBC, iv, sizeof(iv), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_BYTES);
    assert_int_equal(m.u.bytes.len, 16);
    assert_true(m.u.bytes.data != iv);
    /* a deep copy: the caller's buffer changing later changes nothing */
    iv[0] = 0;
    assert_int_equal(m.u.bytes.data[0], 0x42);
    hsm_mech_free(&m);
    /* the key wrap IV: no parameter, or the IV */
    assert_int_equal(dec(CKM_AES_KEY_WRAP, NULL, 0, &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_NONE);
    assert_int_equal(dec(CKM_AES_KEY_WRAP_KWP, fence(4), 4, &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_BYTES);
    assert_int_equal(m.u.bytes.len, 4);
    hsm_mech_free(&m);
    assert_int_equal(dec(CKM_SHA256_HMAC_GENERAL, &len, sizeof(len), &m),
                     CKR_OK);
    assert_int_equal(m.layout, HSM_MP_ULONG);
    assert_int_equal(m.u.ulong, 20);
    hsm_mech_free(&m);
    assert_int_equal(dec(CKM_CONCATENATE_BASE_AND_KEY, &h, sizeof(h), &m),
                     CKR_OK);
    assert_int_equal(m.layout, HSM_MP_OBJECT);
    assert_int_equal(m.u.object, 0x1234);
    assert_non_null(hsm_mech_key_ref(&m));
    *hsm_mech_key_ref(&m) = 77; /* the front end's translation */
    assert_int_equal(m.u.object, 77);
    hsm_mech_free(&m);
}

static void test_rsa_layouts(void **state)
{
    hsm_mech_t m;
    uint8_t label[5] = {'l', 'a', 'b', 'e', 'l'};
    CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA384, CKG_MGF1_SHA256, 48};
    CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256,
                                    CKZ_DATA_SPECIFIED, label, 5};
    CK_RSA_AES_KEY_WRAP_PARAMS ra = {256, &oaep};

    (void)state;
    assert_int_equal(dec(CKM_SHA384_RSA_PKCS_PSS, &pss, sizeof(pss), &m),
                     CKR_OK);
    assert_int_equal(m.layout, HSM_MP_RSA_PSS);
    assert_int_equal(m.u.pss.hash_alg, CKM_SHA384);
    assert_int_equal(m.u.pss.mgf, CKG_MGF1_SHA256);
    assert_int_equal(m.u.pss.salt_len, 48);
    hsm_mech_free(&m);
    oaep.pSourceData = fence(5);
    assert_int_equal(dec(CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_RSA_OAEP);
    assert_int_equal(m.u.oaep.hash_alg, CKM_SHA256);
    assert_int_equal(m.u.oaep.source, CKZ_DATA_SPECIFIED);
    assert_int_equal(m.u.oaep.source_data.len, 5);
    assert_memory_equal(m.u.oaep.source_data.data, fence(5), 5);
    hsm_mech_free(&m);
    oaep.pSourceData = label;
    assert_int_equal(dec(CKM_RSA_AES_KEY_WRAP, &ra, sizeof(ra), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_RSA_AES_KEY_WRAP);
    assert_int_equal(m.u.rsa_aes.aes_key_bits, 256);
    assert_true(m.u.rsa_aes.has_oaep);
    assert_memory_equal(m.u.rsa_aes.oaep.source_data.data, label, 5);
    hsm_mech_free(&m);
    /* no OAEP parameters: decoded (the core refuses it) */
    ra.pOAEPParams = NULL;
    assert_int_equal(dec(CKM_RSA_AES_KEY_WRAP, &ra, sizeof(ra), &m), CKR_OK);
    assert_false(m.u.rsa_aes.has_oaep);
    hsm_mech_free(&m);
}

static void test_ec_layouts(void **state)
{
    hsm_mech_t m;
    uint8_t ctx[3] = {7, 8, 9};
    CK_EDDSA_PARAMS ed = {CK_TRUE, 3, ctx};
    CK_ECDH1_DERIVE_PARAMS ecdh = {CKD_SHA256_KDF, 4, NULL, 65, NULL};

    (void)state;
    assert_int_equal(dec(CKM_EDDSA, NULL, 0, &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_NONE);
    assert_int_equal(dec(CKM_EDDSA, &ed, sizeof(ed), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_EDDSA);
    assert_int_equal(m.u.eddsa.ph_flag, CK_TRUE);
    assert_memory_equal(m.u.eddsa.context.data, ctx, 3);
    hsm_mech_free(&m);
    ecdh.pSharedData = fence(4);
    ecdh.pPublicData = (CK_BYTE_PTR)guard;
    assert_int_equal(dec(CKM_ECDH1_DERIVE, &ecdh, sizeof(ecdh), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_ECDH1);
    assert_int_equal(m.u.ecdh1.kdf, CKD_SHA256_KDF);
    assert_int_equal(m.u.ecdh1.shared_data.len, 4);
    assert_int_equal(m.u.ecdh1.public_data.len, 65);
    hsm_mech_free(&m);
}

static void test_aead_layouts(void **state)
{
    hsm_mech_t m;
    uint8_t iv[12], aad[7], nonce[13];
    CK_GCM_PARAMS gcm = {iv, 12, 96, aad, 7, 128};
    /* the 2.40 layout, without ulIvBits */
    struct {
        CK_BYTE_PTR pIv;
        CK_ULONG ulIvLen;
        CK_BYTE_PTR pAAD;
        CK_ULONG ulAADLen;
        CK_ULONG ulTagBits;
    } gcm_short = {iv, 12, aad, 7, 96};
    CK_CCM_PARAMS ccm = {100, nonce, 13, aad, 7, 16};
    CK_SALSA20_CHACHA20_POLY1305_PARAMS cc = {nonce, 12, NULL, 0};
    CK_AES_CTR_PARAMS ctr = {32, {0}};

    (void)state;
    memset(iv, 0x11, sizeof(iv));
    memset(aad, 0x22, sizeof(aad));
    memset(nonce, 0x33, sizeof(nonce));
    assert_int_equal(dec(CKM_AES_GCM, &gcm, sizeof(gcm), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_GCM);
    assert_false(m.u.gcm.short_layout);
    assert_true(m.u.gcm.iv.present);
    assert_int_equal(m.u.gcm.iv_len, 12);
    assert_int_equal(m.u.gcm.iv_bits, 96);
    assert_memory_equal(m.u.gcm.iv.data, iv, 12);
    assert_memory_equal(m.u.gcm.aad.data, aad, 7);
    assert_int_equal(m.u.gcm.tag_bits, 128);
    hsm_mech_free(&m);
    assert_int_equal(dec(CKM_AES_GCM, &gcm_short, sizeof(gcm_short), &m),
                     CKR_OK);
    assert_true(m.u.gcm.short_layout);
    assert_int_equal(m.u.gcm.tag_bits, 96);
    assert_memory_equal(m.u.gcm.aad.data, aad, 7);
    hsm_mech_free(&m);
    /* pIv NULL with a length: the token makes the IV; nothing is read */
    gcm.pIv = NULL;
    assert_int_equal(dec(CKM_AES_GCM, &gcm, sizeof(gcm), &m), CKR_OK);
    assert_false(m.u.gcm.iv.present);
    assert_int_equal(m.u.gcm.iv_len, 12);
    assert_null(m.u.gcm.iv.data);
    hsm_mech_free(&m);
    assert_int_equal(dec(CKM_CLOUDHSM_AES_GCM, &gcm, sizeof(gcm), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_GCM);
    hsm_mech_free(&m);
    assert_int_equal(dec(CKM_AES_CCM, &ccm, sizeof(ccm), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_CCM);
    assert_int_equal(m.u.ccm.data_len, 100);
    assert_int_equal(m.u.ccm.mac_len, 16);
    assert_memory_equal(m.u.ccm.nonce.data, nonce, 13);
    hsm_mech_free(&m);
    assert_int_equal(dec(CKM_CHACHA20_POLY1305, &cc, sizeof(cc), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_CHACHA20_POLY1305);
    assert_int_equal(m.u.chacha.nonce.len, 12);
    assert_int_equal(m.u.chacha.aad.len, 0);
    hsm_mech_free(&m);
    ctr.cb[15] = 9;
    assert_int_equal(dec(CKM_AES_CTR, &ctr, sizeof(ctr), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_AES_CTR);
    assert_int_equal(m.u.ctr.counter_bits, 32);
    assert_int_equal(m.u.ctr.cb[15], 9);
    hsm_mech_free(&m);
}

static void test_kdf_layouts(void **state)
{
    hsm_mech_t m, c;
    uint8_t salt[4] = {1, 2, 3, 4}, info[3] = {5, 6, 7}, label[6] = "label";
    CK_HKDF_PARAMS hk = {
        CK_TRUE, CK_TRUE, CKM_SHA256, CKF_HKDF_SALT_DATA, salt, 4, 0, info, 3};
    CK_SP800_108_COUNTER_FORMAT cf = {CK_FALSE, 32};
    CK_SP800_108_DKM_LENGTH_FORMAT df = {CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS,
                                         CK_TRUE, 16};
    CK_PRF_DATA_PARAM dp[3] = {
        {CK_SP800_108_ITERATION_VARIABLE, &cf, sizeof(cf)},
        {CK_SP800_108_BYTE_ARRAY, label, 6},
        {CK_SP800_108_DKM_LENGTH, &df, sizeof(df)},
    };
    CK_SP800_108_KDF_PARAMS kb = {CKM_SHA256_HMAC, 3, dp, 0, NULL};
    CK_PRF_DATA_PARAM fdp[1] = {{CK_SP800_108_ITERATION_VARIABLE, NULL, 0}};
    CK_SP800_108_FEEDBACK_KDF_PARAMS fb = {CKM_AES_CMAC, 1, fdp, 4,
                                           salt,         0, NULL};
    CK_PKCS5_PBKD2_PARAMS2 pb = {CKZ_SALT_SPECIFIED,
                                 salt,
                                 4,
                                 1000,
                                 CKP_PKCS5_PBKD2_HMAC_SHA256,
                                 NULL,
                                 0,
                                 label,
                                 5};
    CK_KEY_DERIVATION_STRING_DATA sd = {label, 6};
    CK_AES_CBC_ENCRYPT_DATA_PARAMS cd = {{0}, label, 6};

    (void)state;
    assert_int_equal(dec(CKM_HKDF_DERIVE, &hk, sizeof(hk), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_HKDF);
    assert_int_equal(m.u.hkdf.prf_hash, CKM_SHA256);
    assert_memory_equal(m.u.hkdf.salt.data, salt, 4);
    assert_memory_equal(m.u.hkdf.info.data, info, 3);
    assert_null(hsm_mech_key_ref(&m)); /* salt data names no key */
    hsm_mech_free(&m);
    /* a salt key: the handle is kept for translation, pSalt not read */
    hk.ulSaltType = CKF_HKDF_SALT_KEY;
    hk.hSaltKey = 99;
    hk.pSalt = no_access();
    hk.ulSaltLen = 1000;
    assert_int_equal(dec(CKM_HKDF_DATA, &hk, sizeof(hk), &m), CKR_OK);
    assert_int_equal(m.u.hkdf.salt.len, 0);
    assert_non_null(hsm_mech_key_ref(&m));
    assert_int_equal(*hsm_mech_key_ref(&m), 99);
    hsm_mech_free(&m);
    /* no extract: no salt of any kind is read */
    hk.bExtract = CK_FALSE;
    assert_int_equal(dec(CKM_HKDF_DERIVE, &hk, sizeof(hk), &m), CKR_OK);
    assert_null(hsm_mech_key_ref(&m));
    hsm_mech_free(&m);

    assert_int_equal(dec(CKM_SP800_108_COUNTER_KDF, &kb, sizeof(kb), &m),
                     CKR_OK);
    assert_int_equal(m.layout, HSM_MP_SP800_108);
    assert_int_equal(m.u.kbkdf.prf_type, CKM_SHA256_HMAC);
    assert_int_equal(m.u.kbkdf.n_params, 3);
    assert_true(m.u.kbkdf.params[0].has_format);
    assert_int_equal(m.u.kbkdf.params[0].width_bits, 32);
    assert_int_equal(m.u.kbkdf.params[0].little_endian, CK_FALSE);
    assert_memory_equal(m.u.kbkdf.params[1].bytes.data, label, 6);
    assert_int_equal(m.u.kbkdf.params[2].dkm_method,
                     CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS);
    assert_int_equal(m.u.kbkdf.params[2].width_bits, 16);
    /* a deep copy of the array and its strings */
    assert_int_equal(hsm_mech_copy(&m, &c), CKR_OK);
    assert_true(c.u.kbkdf.params != m.u.kbkdf.params);
    assert_true(c.u.kbkdf.params[1].bytes.data !=
                m.u.kbkdf.params[1].bytes.data);
    hsm_mech_free(&m);
    assert_memory_equal(c.u.kbkdf.params[1].bytes.data, label, 6);
    hsm_mech_free(&c);

    assert_int_equal(dec(CKM_SP800_108_FEEDBACK_KDF, &fb, sizeof(fb), &m),
                     CKR_OK);
    assert_int_equal(m.layout, HSM_MP_SP800_108_FEEDBACK);
    assert_int_equal(m.u.kbkdf.n_params, 1);
    assert_false(m.u.kbkdf.params[0].has_format);
    assert_memory_equal(m.u.kbkdf.iv.data, salt, 4);
    hsm_mech_free(&m);

    assert_int_equal(dec(CKM_PKCS5_PBKD2, &pb, sizeof(pb), &m), CKR_OK);
    assert_int_equal(m.layout, HSM_MP_PBKDF2);
    assert_int_equal(m.u.pbkdf2.iterations, 1000);
    assert_int_equal(m.u.pbkdf2.prf, CKP_PKCS5_PBKD2_HMAC_SHA256);
    assert_memory_equal(m.u.pbkdf2.password.data, "label", 5);
    assert_memory_equal(m.u.pbkdf2.salt.data, salt, 4);
    assert_false(m.u.pbkdf2.prf_data.present);
    hsm_mech_free(&m);
    /* the 2.40 layout has the same size here: its pointer reads as a
     * length, which is refused without being dereferenced */
    if (sizeof(CK_PKCS5_PBKD2_PARAMS) == sizeof(CK_PKCS5_PBKD2_PARAMS2)) {
        CK_ULONG pwlen = 5;
        CK_PKCS5_PBKD2_PARAMS old = {CKZ_SALT_SPECIFIED,
                                     salt,
                                     4,
                                     1000,
                                     CKP_PKCS5_PBKD2_HMAC_SHA256,
                                     NULL,
                                     0,
                                     label,
                                     &pwlen};

        assert_int_equal(dec(CKM_PKCS5_PBKD2, &old, sizeof(old), &m),
                         CKR_MECHANISM_PARAM_INVALID);
        assert_empty(&m, CKM_PKCS5_PBKD2);
    }

    assert_int_equal(dec(CKM_CONCATENATE_DATA_AND_BASE, &sd, sizeof(sd), &m),
                     CKR_OK);
    assert_int_equal(m.layout, HSM_MP_KEY_DERIVATION_STRING);
    assert_memory_equal(m.u.string.data, label, 6);
    hsm_mech_free(&m);
    cd.iv[0] = 0xEE;
    assert_int_equal(dec(CKM_AES_CBC_ENCRYPT_DATA, &cd, sizeof(cd), &m),
                     CKR_OK);
    assert_int_equal(m.layout, HSM_MP_AES_CBC_ENCRYPT_DATA);
    assert_int_equal(m.u.cbc_data.iv[0], 0xEE);
    assert_int_equal(m.u.cbc_data.data.len, 6);
    hsm_mech_free(&m);
}

static void test_message_layouts(void **state)
{
    hsm_mech_t m;
    uint8_t iv[12], tag[16], nonce[13];
    CK_GCM_MESSAGE_PARAMS g = {iv, 12, 32, CKG_GENERATE_COUNTER, tag, 128};
    CK_CCM_MESSAGE_PARAMS c = {50, nonce, 13, 8, CKG_NO_GENERATE, tag, 16};
    CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS cc = {nonce, 12, tag};

    (void)state;
    memset(iv, 1, sizeof(iv));
    memset(tag, 2, sizeof(tag));
    memset(nonce, 3, sizeof(nonce));
    /* encryption: pTag is an output; it is not read */
    g.pTag = no_access();
    assert_int_equal(hsm_mech_decode_msg(CKM_AES_GCM, &g, sizeof(g), false, &m),
                     CKR_OK);
    assert_int_equal(m.layout, HSM_MP_GCM_MESSAGE);
    assert_true(m.u.gcm_msg.tag.present);
    assert_int_equal(m.u.gcm_msg.tag.len, 0);
    assert_int_equal(m.u.gcm_msg.iv_fixed_bits, 32);
    assert_int_equal(m.u.gcm_msg.generator, CKG_GENERATE_COUNTER);
    assert_memory_equal(m.u.gcm_msg.iv.data, iv, 12);
    hsm_mech_free(&m);
    /* decryption: exactly the declared tag is read */
    g.pTag = fence(16);
    assert_int_equal(hsm_mech_decode_msg(CKM_AES_GCM, &g, sizeof(g), true, &m),
                     CKR_OK);
    assert_int_equal(m.u.gcm_msg.tag.len, 16);
    hsm_mech_free(&m);
    g.ulTagBits = 96;
    g.pTag = fence(12);
    assert_int_equal(hsm_mech_decode_msg(CKM_AES_GCM, &g, sizeof(g), true, &m),
                     CKR_OK);
    assert_int_equal(m.u.gcm_msg.tag.len, 12);
    hsm_mech_free(&m);
    assert_int_equal(hsm_mech_decode_msg(CKM_AES_CCM, &c, sizeof(c), true, &m),
                     CKR_OK);
    assert_int_equal(m.layout, HSM_MP_CCM_MESSAGE);
    assert_int_equal(m.u.ccm_msg.data_len, 50);
    assert_int_equal(m.u.ccm_msg.nonce.len, 13);
    assert_int_equal(m.u.ccm_msg.mac.len, 16);
    hsm_mech_free(&m);
    cc.pTag = fence(16);
    assert_int_equal(
        hsm_mech_decode_msg(CKM_CHACHA20_POLY1305, &cc, sizeof(cc), true, &m),
        CKR_OK);
    assert_int_equal(m.layout, HSM_MP_CHACHA20_POLY1305_MESSAGE);
    assert_int_equal(m.u.chacha_msg.tag.len, 16);
    hsm_mech_free(&m);
}

/* ------------------------------------------------------------ hostile */

/* Every layout with a struct: one byte short, one byte long, and a length
 * far past the caps, with its pointer NULL and not. */
static void test_wrong_lengths(void **state)
{
    static const struct {
        CK_MECHANISM_TYPE t;
        size_t size;
    } cases[] = {
        {CKM_RSA_PKCS_PSS, sizeof(CK_RSA_PKCS_PSS_PARAMS)},
        {CKM_RSA_PKCS_OAEP, sizeof(CK_RSA_PKCS_OAEP_PARAMS)},
        {CKM_EDDSA, sizeof(CK_EDDSA_PARAMS)},
        {CKM_ECDH1_DERIVE, sizeof(CK_ECDH1_DERIVE_PARAMS)},
        {CKM_AES_CTR, sizeof(CK_AES_CTR_PARAMS)},
        {CKM_AES_GCM, sizeof(CK_GCM_PARAMS)},
        {CKM_AES_CCM, sizeof(CK_CCM_PARAMS)},
        {CKM_CHACHA20_POLY1305, sizeof(CK_SALSA20_CHACHA20_POLY1305_PARAMS)},
        {CKM_RSA_AES_KEY_WRAP, sizeof(CK_RSA_AES_KEY_WRAP_PARAMS)},
        {CKM_HKDF_DERIVE, sizeof(CK_HKDF_PARAMS)},
        {CKM_SP800_108_COUNTER_KDF, sizeof(CK_SP800_108_KDF_PARAMS)},
        {CKM_SP800_108_FEEDBACK_KDF, sizeof(CK_SP800_108_FEEDBACK_KDF_PARAMS)},
        {CKM_PKCS5_PBKD2, sizeof(CK_PKCS5_PBKD2_PARAMS2)},
        {CKM_CONCATENATE_BASE_AND_DATA, sizeof(CK_KEY_DERIVATION_STRING_DATA)},
        {CKM_AES_CBC_ENCRYPT_DATA, sizeof(CK_AES_CBC_ENCRYPT_DATA_PARAMS)},
        {CKM_CONCATENATE_BASE_AND_KEY, sizeof(CK_OBJECT_HANDLE)},
        {CKM_SHA256_HMAC_GENERAL, sizeof(CK_MAC_GENERAL_PARAMS)},
    };
    uint8_t zero[128];
    hsm_mech_t m;

    (void)state;
    memset(zero, 0, sizeof(zero));
    for (size_t i = 0; i < N(cases); i++) {
        CK_MECHANISM_TYPE t = cases[i].t;
        size_t n = cases[i].size;

        /* The whole struct at the fence: a decoder that reads one byte
         * more than ulParameterLen faults. */
        assert_int_equal(dec(t, fence(n - 1), n - 1, &m),
                         CKR_MECHANISM_PARAM_INVALID);
        assert_empty(&m, t);
        if (t != CKM_AES_GCM && n > 8) { /* GCM: n - 8 is the 2.40 layout */
            assert_int_equal(dec(t, fence(n - 8), n - 8, &m),
                             CKR_MECHANISM_PARAM_INVALID);
        }
        assert_int_equal(dec(t, zero, n + 1, &m), CKR_MECHANISM_PARAM_INVALID);
        assert_empty(&m, t);
        assert_int_equal(dec(t, zero, (CK_ULONG)-1, &m),
                         CKR_MECHANISM_PARAM_INVALID);
        assert_int_equal(dec(t, NULL, n, &m), CKR_MECHANISM_PARAM_INVALID);
        assert_empty(&m, t);
        /* the right size: decoded or refused for a zero field, never
         * anything else (zeroed pointers with zero lengths are fine) */
        {
            CK_RV rv = dec(t, zero, n, &m);

            assert_true(rv == CKR_OK || rv == CKR_MECHANISM_PARAM_INVALID);
            hsm_mech_free(&m);
        }
    }
    /* a parameter of any mechanism: a pointer for its length, the cap */
    assert_int_equal(dec(0x7FFFFFF0UL, NULL, 4, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(dec(CKM_SHA256, NULL, 4, &m), CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(dec(0x7FFFFFF0UL, no_access(), HSM_MECH_PARAM_MAX + 1, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    /* an IV as the parameter itself, longer than any parameter */
    assert_int_equal(dec(CKM_AES_CBC, no_access(), HSM_MECH_PARAM_MAX + 1, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_empty(&m, CKM_AES_CBC);
}

/* NULL inside a parameter with a length beside it, and lengths past the
 * caps: refused before anything is allocated or read. */
static void test_nested_nulls_and_huge(void **state)
{
    hsm_mech_t m;
    uint8_t b[16];
    CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256,
                                    CKZ_DATA_SPECIFIED, NULL, 5};
    CK_RSA_AES_KEY_WRAP_PARAMS ra = {256, &oaep};
    CK_GCM_PARAMS gcm = {b, 12, 96, NULL, 16, 128};
    CK_ECDH1_DERIVE_PARAMS ecdh = {CKD_NULL, 0, NULL, 65, NULL};
    CK_CCM_PARAMS ccm = {10, NULL, 13, NULL, 0, 16};
    CK_EDDSA_PARAMS ed = {CK_FALSE, 3, NULL};
    CK_HKDF_PARAMS hk = {
        CK_TRUE, CK_TRUE, CKM_SHA256, CKF_HKDF_SALT_DATA, NULL, 4, 0, b, 3};
    CK_PKCS5_PBKD2_PARAMS2 pb = {CKZ_SALT_SPECIFIED,
                                 b,
                                 4,
                                 1000,
                                 CKP_PKCS5_PBKD2_HMAC_SHA256,
                                 NULL,
                                 0,
                                 NULL,
                                 8};
    CK_KEY_DERIVATION_STRING_DATA sd = {NULL, 6};
    CK_AES_CBC_ENCRYPT_DATA_PARAMS cd = {{0}, NULL, 16};

    (void)state;
    memset(b, 0, sizeof(b));
    assert_int_equal(dec(CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_empty(&m, CKM_RSA_PKCS_OAEP);
    /* nested two deep */
    assert_int_equal(dec(CKM_RSA_AES_KEY_WRAP, &ra, sizeof(ra), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_empty(&m, CKM_RSA_AES_KEY_WRAP);
    assert_int_equal(dec(CKM_AES_GCM, &gcm, sizeof(gcm), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    /* the IV was copied before the AAD failed: freed again (ASan) */
    assert_empty(&m, CKM_AES_GCM);
    assert_int_equal(dec(CKM_ECDH1_DERIVE, &ecdh, sizeof(ecdh), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(dec(CKM_AES_CCM, &ccm, sizeof(ccm), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(dec(CKM_EDDSA, &ed, sizeof(ed), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(dec(CKM_HKDF_DERIVE, &hk, sizeof(hk), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(dec(CKM_PKCS5_PBKD2, &pb, sizeof(pb), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_empty(&m, CKM_PKCS5_PBKD2);
    assert_int_equal(dec(CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(dec(CKM_AES_CBC_ENCRYPT_DATA, &cd, sizeof(cd), &m),
                     CKR_MECHANISM_PARAM_INVALID);

    /* huge lengths with a pointer that may not be read: refused on the
     * length alone */
    gcm.pAAD = no_access();
    gcm.ulAADLen = HUGE_LEN;
    assert_int_equal(dec(CKM_AES_GCM, &gcm, sizeof(gcm), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    gcm.ulAADLen = (CK_ULONG)-1;
    assert_int_equal(dec(CKM_AES_GCM, &gcm, sizeof(gcm), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    gcm.pAAD = NULL;
    gcm.ulAADLen = 0;
    gcm.pIv = no_access();
    gcm.ulIvLen = (CK_ULONG)-1;
    assert_int_equal(dec(CKM_AES_GCM, &gcm, sizeof(gcm), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    sd.pData = no_access();
    sd.ulLen = HUGE_LEN;
    assert_int_equal(dec(CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    /* the largest accepted string is taken whole */
    {
        uint8_t *big = calloc(1, HSM_MECH_BYTES_MAX);

        assert_non_null(big);
        sd.pData = big;
        sd.ulLen = HSM_MECH_BYTES_MAX;
        assert_int_equal(
            dec(CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd), &m), CKR_OK);
        assert_int_equal(m.u.string.len, HSM_MECH_BYTES_MAX);
        hsm_mech_free(&m);
        free(big);
    }
}

static void test_kbkdf_hostile(void **state)
{
    hsm_mech_t m;
    uint8_t label[4] = "abc";
    CK_SP800_108_COUNTER_FORMAT cf = {CK_FALSE, 32};
    CK_PRF_DATA_PARAM dp[2] = {
        {CK_SP800_108_ITERATION_VARIABLE, &cf, sizeof(cf)},
        {CK_SP800_108_BYTE_ARRAY, label, 4},
    };
    CK_SP800_108_KDF_PARAMS kb = {CKM_SHA256_HMAC, 2, dp, 0, NULL};

    (void)state;
    /* huge counts: refused before the array is read or allocated */
    kb.pDataParams = no_access();
    kb.ulNumberOfDataParams = HSM_MECH_DATA_PARAMS_MAX + 1;
    assert_int_equal(dec(CKM_SP800_108_COUNTER_KDF, &kb, sizeof(kb), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    kb.ulNumberOfDataParams = (CK_ULONG)-1;
    assert_int_equal(dec(CKM_SP800_108_COUNTER_KDF, &kb, sizeof(kb), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    /* a count with no array */
    kb.pDataParams = NULL;
    kb.ulNumberOfDataParams = 2;
    assert_int_equal(dec(CKM_SP800_108_COUNTER_KDF, &kb, sizeof(kb), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    /* exactly the declared entries are read: the array at the fence */
    {
        CK_PRF_DATA_PARAM *at = (CK_PRF_DATA_PARAM *)fence(sizeof(dp));

        memcpy(at, dp, sizeof(dp));
        kb.pDataParams = at;
        assert_int_equal(dec(CKM_SP800_108_COUNTER_KDF, &kb, sizeof(kb), &m),
                         CKR_OK);
        assert_int_equal(m.u.kbkdf.n_params, 2);
        hsm_mech_free(&m);
    }
    kb.pDataParams = dp;
    /* nested: a format pointer NULL with its size, a byte array NULL
     * with a length, a format of the wrong size, an unknown type; the
     * entries decoded before are freed (ASan) */
    dp[0].pValue = NULL;
    assert_int_equal(dec(CKM_SP800_108_COUNTER_KDF, &kb, sizeof(kb), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_empty(&m, CKM_SP800_108_COUNTER_KDF);
    dp[0].pValue = &cf;
    dp[0].ulValueLen = sizeof(cf) + 1;
    assert_int_equal(dec(CKM_SP800_108_COUNTER_KDF, &kb, sizeof(kb), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    dp[0].ulValueLen = sizeof(cf);
    dp[1].pValue = NULL;
    assert_int_equal(dec(CKM_SP800_108_COUNTER_KDF, &kb, sizeof(kb), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    dp[1].pValue = no_access();
    dp[1].ulValueLen = HUGE_LEN;
    assert_int_equal(dec(CKM_SP800_108_COUNTER_KDF, &kb, sizeof(kb), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    dp[1].pValue = label;
    dp[1].ulValueLen = 4;
    dp[1].type = 0x1234;
    assert_int_equal(dec(CKM_SP800_108_COUNTER_KDF, &kb, sizeof(kb), &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_empty(&m, CKM_SP800_108_COUNTER_KDF);
}

static void test_message_hostile(void **state)
{
    hsm_mech_t m;
    uint8_t iv[12] = {0}, tag[16] = {0};
    CK_GCM_MESSAGE_PARAMS g = {iv, 12, 0, CKG_NO_GENERATE, tag, 128};
    CK_CCM_MESSAGE_PARAMS c = {50, iv, 12, 0, CKG_NO_GENERATE, tag, 16};

    (void)state;
    assert_int_equal(
        hsm_mech_decode_msg(CKM_AES_GCM, NULL, sizeof(g), true, &m),
        CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(hsm_mech_decode_msg(CKM_AES_GCM, fence(sizeof(g) - 1),
                                         sizeof(g) - 1, true, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(
        hsm_mech_decode_msg(CKM_AES_GCM, &g, sizeof(g) + 1, true, &m),
        CKR_MECHANISM_PARAM_INVALID);
    /* a layout of another mechanism, or a mechanism without messages */
    assert_int_equal(hsm_mech_decode_msg(CKM_AES_CCM, &g, sizeof(g), true, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_int_equal(hsm_mech_decode_msg(CKM_AES_CBC, &g, sizeof(g), true, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_empty(&m, CKM_AES_CBC);
    /* a tag longer than any: refused on decryption before it is read */
    g.pTag = no_access();
    g.ulTagBits = 8 * (HSM_MECH_TAG_MAX + 1);
    assert_int_equal(hsm_mech_decode_msg(CKM_AES_GCM, &g, sizeof(g), true, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    assert_empty(&m, CKM_AES_GCM);
    g.ulTagBits = (CK_ULONG)-1;
    assert_int_equal(hsm_mech_decode_msg(CKM_AES_GCM, &g, sizeof(g), true, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    /* the IV: NULL with a length, huge */
    g.pTag = tag;
    g.ulTagBits = 128;
    g.pIv = NULL;
    assert_int_equal(hsm_mech_decode_msg(CKM_AES_GCM, &g, sizeof(g), false, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    g.pIv = no_access();
    g.ulIvLen = HUGE_LEN;
    assert_int_equal(hsm_mech_decode_msg(CKM_AES_GCM, &g, sizeof(g), false, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    c.pMAC = no_access();
    c.ulMACLen = 17;
    assert_int_equal(hsm_mech_decode_msg(CKM_AES_CCM, &c, sizeof(c), true, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    /* the nonce decoded before the tag failed is freed (ASan) */
    assert_empty(&m, CKM_AES_CCM);

    /* The message init's parameter is checked and never read: a
     * CK_GCM_MESSAGE_PARAMS is as long as a CK_GCM_PARAMS, and reading it
     * as one would take pTag for pAAD and ulTagBits for its length. */
    {
        CK_MECHANISM im = {CKM_AES_GCM, no_access(), sizeof(g)};

        assert_int_equal(hsm_mech_decode_type(&im, &m), CKR_OK);
        assert_int_equal(m.type, CKM_AES_GCM);
        assert_int_equal(m.layout, HSM_MP_NONE);
        im.pParameter = NULL;
        assert_int_equal(hsm_mech_decode_type(&im, &m),
                         CKR_MECHANISM_PARAM_INVALID);
        im.pParameter = no_access();
        im.ulParameterLen = HSM_MECH_PARAM_MAX + 1;
        assert_int_equal(hsm_mech_decode_type(&im, &m),
                         CKR_MECHANISM_PARAM_INVALID);
        assert_int_equal(hsm_mech_decode_type(NULL, &m), CKR_ARGUMENTS_BAD);
    }
}

/* ------------------------------------------------------------ write-back */

static void test_write_back(void **state)
{
    uint8_t iv[12], made[12], tag[16], madetag[16];
    CK_GCM_PARAMS gcm = {iv, 12, 96, NULL, 0, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &gcm, sizeof(gcm)};
    CK_GCM_MESSAGE_PARAMS g = {iv, 12, 0, CKG_GENERATE, tag, 128};
    CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS cc = {iv, 12, tag};

    (void)state;
    memset(made, 0x5A, sizeof(made));
    memset(madetag, 0x6B, sizeof(madetag));
    memset(iv, 0, sizeof(iv));
    hsm_mech_write_gcm_iv(&m, made, 12);
    assert_memory_equal(iv, made, 12);
    /* too little room, or no IV pointer: nothing written */
    memset(iv, 0, sizeof(iv));
    gcm.ulIvLen = 8;
    hsm_mech_write_gcm_iv(&m, made, 12);
    assert_int_equal(iv[0], 0);
    gcm.ulIvLen = 12;
    gcm.pIv = NULL;
    hsm_mech_write_gcm_iv(&m, made, 12); /* no crash */
    /* another mechanism or length: not a CK_GCM_PARAMS to write into */
    gcm.pIv = iv;
    m.mechanism = CKM_CLOUDHSM_AES_GCM;
    hsm_mech_write_gcm_iv(&m, made, 12);
    assert_int_equal(iv[0], 0);
    m.mechanism = CKM_AES_GCM;
    m.ulParameterLen = sizeof(gcm) - 1;
    hsm_mech_write_gcm_iv(&m, made, 12);
    assert_int_equal(iv[0], 0);

    /* messages: the generated IV and the tag */
    memset(tag, 0, sizeof(tag));
    hsm_mech_write_msg(CKM_AES_GCM, &g, sizeof(g), made, 12, madetag, 16);
    assert_memory_equal(iv, made, 12);
    assert_memory_equal(tag, madetag, 16);
    /* the caller's own IV (no generator) is not overwritten; a tag longer
     * than ulTagBits says is not written */
    memset(iv, 0, sizeof(iv));
    memset(tag, 0, sizeof(tag));
    g.ivGenerator = CKG_NO_GENERATE;
    g.ulTagBits = 96;
    hsm_mech_write_msg(CKM_AES_GCM, &g, sizeof(g), made, 12, madetag, 16);
    assert_int_equal(iv[0], 0);
    assert_int_equal(tag[0], 0);
    hsm_mech_write_msg(CKM_AES_GCM, &g, sizeof(g), made, 12, madetag, 12);
    assert_memory_equal(tag, madetag, 12);
    /* ChaCha20: the tag only */
    memset(tag, 0, sizeof(tag));
    hsm_mech_write_msg(CKM_CHACHA20_POLY1305, &cc, sizeof(cc), made, 12,
                       madetag, 16);
    assert_int_equal(iv[0], 0);
    assert_memory_equal(tag, madetag, 16);
    /* a wrong length or mechanism: nothing */
    memset(tag, 0, sizeof(tag));
    hsm_mech_write_msg(CKM_CHACHA20_POLY1305, &cc, sizeof(cc) + 1, made, 12,
                       madetag, 16);
    hsm_mech_write_msg(CKM_AES_CBC, &g, sizeof(g), made, 12, madetag, 16);
    hsm_mech_write_msg(CKM_AES_GCM, NULL, sizeof(g), made, 12, madetag, 16);
    assert_int_equal(tag[0], 0);
}

/* What the wire server builds is checked before the core reads it. */
static void test_check_built(void **state)
{
    hsm_mech_t m;
    uint8_t b[32] = {0};
    hsm_mp_prf_data_t pd[2];

    (void)state;
    assert_int_equal(hsm_mech_check(NULL), CKR_ARGUMENTS_BAD);
    memset(&m, 0, sizeof(m));
    m.type = CKM_SHA256;
    assert_int_equal(hsm_mech_check(&m), CKR_OK);
    m.layout = HSM_MP_COUNT;
    assert_int_equal(hsm_mech_check(&m), CKR_MECHANISM_PARAM_INVALID);
    m.layout = (hsm_mech_layout_t)-1;
    assert_int_equal(hsm_mech_check(&m), CKR_MECHANISM_PARAM_INVALID);
    /* a length without data, data not given, a length over the cap */
    memset(&m, 0, sizeof(m));
    m.type = CKM_AES_GCM;
    m.layout = HSM_MP_GCM;
    m.u.gcm.aad.len = 8;
    m.u.gcm.aad.present = true;
    assert_int_equal(hsm_mech_check(&m), CKR_MECHANISM_PARAM_INVALID);
    m.u.gcm.aad.data = b;
    assert_int_equal(hsm_mech_check(&m), CKR_OK);
    m.u.gcm.aad.present = false;
    assert_int_equal(hsm_mech_check(&m), CKR_MECHANISM_PARAM_INVALID);
    m.u.gcm.aad.present = true;
    m.u.gcm.aad.len = HSM_MECH_BYTES_MAX + 1;
    assert_int_equal(hsm_mech_check(&m), CKR_MECHANISM_PARAM_INVALID);
    /* a message tag over its cap */
    memset(&m, 0, sizeof(m));
    m.type = CKM_AES_GCM;
    m.layout = HSM_MP_GCM_MESSAGE;
    m.u.gcm_msg.tag.data = b;
    m.u.gcm_msg.tag.present = true;
    m.u.gcm_msg.tag.len = HSM_MECH_TAG_MAX;
    assert_int_equal(hsm_mech_check(&m), CKR_OK);
    m.u.gcm_msg.tag.len = HSM_MECH_TAG_MAX + 1;
    assert_int_equal(hsm_mech_check(&m), CKR_MECHANISM_PARAM_INVALID);
    m.layout = HSM_MP_CHACHA20_POLY1305_MESSAGE;
    m.u.chacha_msg.tag = m.u.gcm_msg.tag;
    assert_int_equal(hsm_mech_check(&m), CKR_MECHANISM_PARAM_INVALID);
    /* SP 800-108: counts, the array, its strings */
    memset(&m, 0, sizeof(m));
    memset(pd, 0, sizeof(pd));
    m.type = CKM_SP800_108_FEEDBACK_KDF;
    m.layout = HSM_MP_SP800_108_FEEDBACK;
    m.u.kbkdf.n_params = 2;
    assert_int_equal(hsm_mech_check(&m), CKR_MECHANISM_PARAM_INVALID);
    m.u.kbkdf.params = pd;
    assert_int_equal(hsm_mech_check(&m), CKR_OK);
    m.u.kbkdf.n_params = HSM_MECH_DATA_PARAMS_MAX + 1;
    assert_int_equal(hsm_mech_check(&m), CKR_MECHANISM_PARAM_INVALID);
    m.u.kbkdf.n_params = 2;
    pd[1].bytes.len = 4;
    assert_int_equal(hsm_mech_check(&m), CKR_MECHANISM_PARAM_INVALID);
    pd[1].bytes.data = b;
    pd[1].bytes.present = true;
    assert_int_equal(hsm_mech_check(&m), CKR_OK);
    m.u.kbkdf.iv.len = 3;
    assert_int_equal(hsm_mech_check(&m), CKR_MECHANISM_PARAM_INVALID);
}

/* ------------------------------------------------------------ the core */

static CK_RV check(CK_MECHANISM_TYPE row_type, const hsm_mech_t *m)
{
    const mech_row_t *row = mech_find(row_type);
    cops_params_t p;

    assert_non_null(row);
    return mech_check_params(row, m, &p);
}

/* A remote caller fills hsm_mech_t itself: the core checks the layout
 * against the mechanism and the lengths against the layout. */
static void test_core_distrusts(void **state)
{
    hsm_mech_t m;
    uint8_t iv[16] = {1};
    hsm_mp_prf_data_t pd[HSM_MECH_DATA_PARAMS_MAX + 1];

    (void)state;
    memset(&m, 0, sizeof(m));
    /* a type that is not the row's */
    m.type = CKM_AES_GCM;
    assert_int_equal(check(CKM_AES_CBC, &m), CKR_MECHANISM_INVALID);
    /* the layout of another mechanism */
    m.type = CKM_AES_CBC;
    m.layout = HSM_MP_GCM;
    m.u.gcm.iv_len = 16;
    m.u.gcm.tag_bits = 128;
    assert_int_equal(check(CKM_AES_CBC, &m), CKR_MECHANISM_PARAM_INVALID);
    /* an unknown layout, or any for a mechanism without a parameter */
    m.type = CKM_SHA256;
    m.layout = HSM_MP_UNKNOWN;
    assert_int_equal(check(CKM_SHA256, &m), CKR_MECHANISM_PARAM_INVALID);
    m.layout = HSM_MP_BYTES;
    assert_int_equal(check(CKM_SHA256, &m), CKR_MECHANISM_PARAM_INVALID);
    m.layout = HSM_MP_NONE;
    assert_int_equal(check(CKM_SHA256, &m), CKR_OK);
    /* a layout value out of the enum */
    m.layout = (hsm_mech_layout_t)1000;
    assert_int_equal(check(CKM_SHA256, &m), CKR_MECHANISM_PARAM_INVALID);
    /* bytes of the wrong length for the layout */
    memset(&m, 0, sizeof(m));
    m.type = CKM_AES_CBC;
    m.layout = HSM_MP_BYTES;
    m.u.bytes.data = iv;
    m.u.bytes.present = true;
    m.u.bytes.len = 15;
    assert_int_equal(check(CKM_AES_CBC, &m), CKR_MECHANISM_PARAM_INVALID);
    m.u.bytes.len = 16;
    assert_int_equal(check(CKM_AES_CBC, &m), CKR_OK);
    /* a GCM IV whose bytes do not have its declared length: the core
     * would read iv_len bytes from a shorter string */
    memset(&m, 0, sizeof(m));
    m.type = CKM_AES_GCM;
    m.layout = HSM_MP_GCM;
    m.u.gcm.iv.present = true;
    m.u.gcm.iv.data = iv;
    m.u.gcm.iv.len = 1;
    m.u.gcm.iv_len = 12;
    m.u.gcm.tag_bits = 128;
    assert_int_equal(check(CKM_AES_GCM, &m), CKR_MECHANISM_PARAM_INVALID);
    m.u.gcm.iv.len = 12;
    assert_int_equal(check(CKM_AES_GCM, &m), CKR_OK);
    /* a string that breaks hsm_mech_check's invariants: refused by the
     * core itself, whether or not its caller checked */
    m.u.gcm.iv.data = NULL;
    assert_int_equal(check(CKM_AES_GCM, &m), CKR_MECHANISM_PARAM_INVALID);
    m.u.gcm.iv.data = iv;
    m.u.gcm.aad.len = HSM_MECH_BYTES_MAX + 1;
    m.u.gcm.aad.data = iv; /* (never read: refused on the length) */
    m.u.gcm.aad.present = true;
    assert_int_equal(check(CKM_AES_GCM, &m), CKR_MECHANISM_PARAM_INVALID);
    /* SP 800-108: a count without an array, a count past the cap, a
     * counter mode's iteration variable without its format */
    memset(&m, 0, sizeof(m));
    memset(pd, 0, sizeof(pd));
    m.type = CKM_SP800_108_COUNTER_KDF;
    m.layout = HSM_MP_SP800_108;
    m.u.kbkdf.prf_type = CKM_SHA256_HMAC;
    m.u.kbkdf.n_params = 1;
    assert_int_equal(check(CKM_SP800_108_COUNTER_KDF, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    m.u.kbkdf.params = pd;
    pd[0].type = CK_SP800_108_ITERATION_VARIABLE;
    assert_int_equal(check(CKM_SP800_108_COUNTER_KDF, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    pd[0].has_format = true;
    pd[0].width_bits = 32;
    assert_int_equal(check(CKM_SP800_108_COUNTER_KDF, &m), CKR_OK);
    m.u.kbkdf.n_params = N(pd);
    assert_int_equal(check(CKM_SP800_108_COUNTER_KDF, &m),
                     CKR_MECHANISM_PARAM_INVALID);
    /* counter mode has no IV: a remote caller's IV is refused */
    m.u.kbkdf.n_params = 1;
    m.u.kbkdf.iv.data = iv;
    m.u.kbkdf.iv.present = true;
    m.u.kbkdf.iv.len = 4;
    assert_int_equal(check(CKM_SP800_108_COUNTER_KDF, &m),
                     CKR_MECHANISM_PARAM_INVALID);
}

/* Every mechanism of the table decodes a zero-length parameter and the
 * core answers for it; every layout the codec knows is one a row checks
 * (the two tables agree). */
static void test_tables_agree(void **state)
{
    size_t n;
    const mech_row_t *rows = mech_table(&n);

    (void)state;
    for (size_t i = 0; i < n; i++) {
        hsm_mech_t m;
        uint8_t junk[8] = {0};
        cops_params_t p;
        CK_RV rv;

        assert_int_equal(dec(rows[i].type, NULL, 0, &m), CKR_OK);
        rv = mech_check_params(&rows[i], &m, &p);
        assert_true(rv == CKR_OK || rv == CKR_MECHANISM_PARAM_INVALID);
        hsm_mech_free(&m);
        /* 8 bytes: a layout of the codec (refused for its size, or an
         * 8-byte IV / MAC length / handle) or unknown, which every row
         * refuses */
        rv = dec(rows[i].type, junk, sizeof(junk), &m);
        assert_true(rv == CKR_OK || rv == CKR_MECHANISM_PARAM_INVALID);
        if (rv == CKR_OK && m.layout == HSM_MP_UNKNOWN) {
            assert_int_equal(mech_check_params(&rows[i], &m, &p),
                             CKR_MECHANISM_PARAM_INVALID);
        }
        hsm_mech_free(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none_and_unknown),
        cmocka_unit_test(test_bytes_ulong_object),
        cmocka_unit_test(test_rsa_layouts),
        cmocka_unit_test(test_ec_layouts),
        cmocka_unit_test(test_aead_layouts),
        cmocka_unit_test(test_kdf_layouts),
        cmocka_unit_test(test_message_layouts),
        cmocka_unit_test(test_wrong_lengths),
        cmocka_unit_test(test_nested_nulls_and_huge),
        cmocka_unit_test(test_kbkdf_hostile),
        cmocka_unit_test(test_message_hostile),
        cmocka_unit_test(test_write_back),
        cmocka_unit_test(test_check_built),
        cmocka_unit_test(test_core_distrusts),
        cmocka_unit_test(test_tables_agree),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
