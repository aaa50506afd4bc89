/*
 * engine_client.c - the module's crypto inside a process whose OpenSSL has
 * a default ENGINE (tests/p11/engine.sh).
 *
 * It does what Apache's `SSLCryptoDevice pkcs11` does before it loads any
 * PKCS#11 module: loads the OpenSSL configuration (OPENSSL_CONF names
 * libp11's pkcs11 engine) and makes that engine the default for every
 * method (ENGINE_set_default(e, ENGINE_METHOD_ALL)). It also registers a
 * second, hostile engine of its own as the default pkey method of the key
 * types libp11 does not claim (Ed25519, Ed448, X25519, X448): every
 * operation of that engine fails. Then it loads the module with dlopen,
 * activates a fresh token (NIMBUS_CONF names an empty store) and runs
 * RSA-PSS, RSA-OAEP, PKCS#1 v1.5, ECDSA, EdDSA, ECDH (P-256 and X25519),
 * HMAC, AES and SHA-256 through it. HMAC, AES and SHA-256 are checked
 * against published vectors; signatures by C_Verify and by a flipped bit
 * that C_Verify must refuse; ECDH by both sides deriving the same secret.
 *
 * Output: one "ok: ..." or "FAIL: ..." line per check.
 * Exit: the number of failed checks (0 pass), 77 when the pkcs11 engine
 * cannot be loaded, 99 when the module cannot be loaded or set up.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* the ENGINE API is what is tested */

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/engine.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "pkcs11/pkcs11.h"

#define SO_PIN "so-secret-1"
#define CU_PIN "alice:alice-pw-1"

static CK_FUNCTION_LIST_PTR f;
static CK_SESSION_HANDLE s;
static int failed;

static void result(int good, const char *what, CK_RV rv)
{
    if (good) {
        printf("ok: %s\n", what);
    } else {
        printf("FAIL: %s (rv 0x%08lx)\n", what, (unsigned long)rv);
        failed++;
    }
}

/* ------------------------------------------------------------ engines */

/* The hostile engine's pkey methods: a method with no operations. */
static const int rogue_nids[] = {NID_ED25519, NID_ED448, NID_X25519, NID_X448};
static EVP_PKEY_METHOD *rogue_meths[4];

static int rogue_pkey_meths(ENGINE *e, EVP_PKEY_METHOD **pm, const int **nids,
                            int nid)
{
    (void)e;
    if (pm == NULL) {
        *nids = rogue_nids;
        return 4;
    }
    for (int i = 0; i < 4; i++) {
        if (rogue_nids[i] == nid) {
            *pm = rogue_meths[i];
            return 1;
        }
    }
    *pm = NULL;
    return 0;
}

static int engines(void)
{
    ENGINE *e, *r;

    if (OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1) {
        printf("ERROR: OPENSSL_init_crypto(LOAD_CONFIG) failed\n");
        return 99;
    }
    ENGINE_load_builtin_engines();
    e = ENGINE_by_id("pkcs11");
    if (e == NULL) {
        printf("SKIP: the pkcs11 engine does not load from OPENSSL_CONF\n");
        return 77;
    }
    if (ENGINE_set_default(e, ENGINE_METHOD_ALL) != 1) {
        printf("ERROR: ENGINE_set_default(pkcs11, ALL) failed\n");
        return 99;
    }
    ENGINE_free(e);
    for (int i = 0; i < 4; i++) {
        rogue_meths[i] = EVP_PKEY_meth_new(rogue_nids[i], 0);
        if (rogue_meths[i] == NULL) {
            return 99;
        }
    }
    r = ENGINE_new();
    if (r == NULL || ENGINE_set_id(r, "nimbus-rogue") != 1 ||
        ENGINE_set_name(r, "claims Ed/X keys, does nothing") != 1 ||
        ENGINE_set_pkey_meths(r, rogue_pkey_meths) != 1 || ENGINE_add(r) != 1 ||
        ENGINE_set_default(r, ENGINE_METHOD_PKEY_METHS) != 1) {
        printf("ERROR: cannot register the hostile engine\n");
        return 99;
    }
    ENGINE_free(r);
    /* Without this the test proves nothing. */
    for (int i = 0; i < 2; i++) {
        int nid = i == 0 ? EVP_PKEY_RSA : EVP_PKEY_EC;
        ENGINE *d = ENGINE_get_pkey_meth_engine(nid);

        if (d == NULL || strcmp(ENGINE_get_id(d), "pkcs11") != 0) {
            printf("ERROR: pkcs11 is not the default engine of %s keys\n",
                   OBJ_nid2sn(nid));
            return 99;
        }
        ENGINE_finish(d);
    }
    r = ENGINE_get_pkey_meth_engine(NID_ED25519);
    if (r == NULL) {
        printf("ERROR: the hostile engine is not the default for Ed25519\n");
        return 99;
    }
    ENGINE_finish(r);
    printf("ok: pkcs11 is the default engine (ALL), nimbus-rogue the "
           "default pkey method of Ed25519/Ed448/X25519/X448\n");
    return 0;
}

/* ------------------------------------------------------------ module */

static int module(void)
{
    const char *path = getenv("NIMBUS_MODULE");
    CK_C_GetFunctionList gfl;
    CK_UTF8CHAR label[32];
    void *h;
    CK_RV rv;

    if (path == NULL) {
        path = "./.libs/libnimbus-pkcs11.so";
    }
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        printf("ERROR: dlopen %s: %s\n", path, dlerror());
        return 99;
    }
    gfl = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
    if (gfl == NULL || gfl(&f) != CKR_OK) {
        printf("ERROR: C_GetFunctionList\n");
        return 99;
    }
    memset(label, ' ', sizeof(label));
    memcpy(label, "engine", 6);
    if ((rv = f->C_Initialize(NULL)) != CKR_OK ||
        (rv = f->C_InitToken(0, (CK_UTF8CHAR_PTR)SO_PIN, strlen(SO_PIN),
                             label)) != CKR_OK ||
        (rv = f->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                               NULL, &s)) != CKR_OK ||
        (rv = f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)SO_PIN, strlen(SO_PIN))) !=
            CKR_OK ||
        (rv = f->C_InitPIN(s, (CK_UTF8CHAR_PTR)CU_PIN, strlen(CU_PIN))) !=
            CKR_OK ||
        (rv = f->C_Logout(s)) != CKR_OK ||
        (rv = f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)CU_PIN,
                         strlen(CU_PIN))) != CKR_OK) {
        printf("ERROR: token setup failed: rv 0x%08lx\n", (unsigned long)rv);
        return 99;
    }
    return 0;
}

/* ------------------------------------------------------------ keys */

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

static const CK_BYTE oid_p256[] = {0x06, 0x08, 0x2A, 0x86, 0x48,
                                   0xCE, 0x3D, 0x03, 0x01, 0x07};
static const CK_BYTE oid_ed25519[] = {0x06, 0x03, 0x2B, 0x65, 0x70};
static const CK_BYTE oid_x25519[] = {0x06, 0x03, 0x2B, 0x65, 0x6E};

static CK_RV pair(CK_MECHANISM_TYPE mt, const CK_BYTE *oid, size_t oidlen,
                  CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    CK_MECHANISM m = {mt, NULL, 0};
    CK_ULONG bits = 2048;
    CK_ATTRIBUTE pt[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_VERIFY, &yes, sizeof(yes)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {oid != NULL ? CKA_EC_PARAMS : CKA_MODULUS_BITS,
         oid != NULL ? (void *)oid : &bits,
         oid != NULL ? oidlen : sizeof(bits)},
    };
    CK_ATTRIBUTE kt[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
        {CKA_DERIVE, &yes, sizeof(yes)},
    };
    CK_ULONG npt = 4, nkt = 4;

    if (mt != CKM_RSA_PKCS_KEY_PAIR_GEN) {
        /* EC keys neither encrypt nor decrypt */
        pt[2] = pt[3];
        npt = 3;
        kt[2] = kt[3];
        nkt = 3;
    }
    return f->C_GenerateKeyPair(s, &m, pt, npt, kt, nkt, pub, priv);
}

static CK_RV secret(CK_KEY_TYPE kt, const CK_BYTE *v, CK_ULONG len,
                    CK_OBJECT_HANDLE *h)
{
    CK_OBJECT_CLASS c = CKO_SECRET_KEY;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &c, sizeof(c)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_VALUE, (void *)v, len},
        {kt == CKK_AES ? CKA_ENCRYPT : CKA_SIGN, &yes, sizeof(yes)},
        {kt == CKK_AES ? CKA_DECRYPT : CKA_VERIFY, &yes, sizeof(yes)},
    };

    return f->C_CreateObject(s, t, 6, h);
}

/* ------------------------------------------------------------ checks */

/* Sign, verify, then verify a signature with one bit flipped. */
static void sign_verify(const char *what, CK_MECHANISM *m, CK_OBJECT_HANDLE pk,
                        CK_OBJECT_HANDLE sk, const CK_BYTE *data, CK_ULONG len)
{
    CK_BYTE sig[512];
    CK_ULONG siglen = sizeof(sig);
    char msg[160];
    CK_RV rv;

    rv = f->C_SignInit(s, m, sk);
    snprintf(msg, sizeof(msg), "%s: C_SignInit", what);
    result(rv == CKR_OK, msg, rv);
    if (rv != CKR_OK) {
        return;
    }
    rv = f->C_Sign(s, (CK_BYTE_PTR)data, len, sig, &siglen);
    snprintf(msg, sizeof(msg), "%s: C_Sign", what);
    result(rv == CKR_OK, msg, rv);
    if (rv != CKR_OK) {
        return;
    }
    rv = f->C_VerifyInit(s, m, pk);
    if (rv == CKR_OK) {
        rv = f->C_Verify(s, (CK_BYTE_PTR)data, len, sig, siglen);
    }
    snprintf(msg, sizeof(msg), "%s: C_Verify accepts the signature", what);
    result(rv == CKR_OK, msg, rv);
    sig[siglen / 2] ^= 0x01;
    rv = f->C_VerifyInit(s, m, pk);
    if (rv == CKR_OK) {
        rv = f->C_Verify(s, (CK_BYTE_PTR)data, len, sig, siglen);
    }
    snprintf(msg, sizeof(msg), "%s: C_Verify refuses a flipped bit", what);
    result(rv == CKR_SIGNATURE_INVALID, msg, rv);
}

static void rsa(void)
{
    static const CK_BYTE hash[32] = "0123456789abcdef0123456789abcdef";
    static const CK_BYTE msg[] = "a message for the token";
    CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256,
                                    CKZ_DATA_SPECIFIED, NULL, 0};
    CK_MECHANISM m_pss = {CKM_RSA_PKCS_PSS, &pss, sizeof(pss)};
    CK_MECHANISM m_spss = {CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof(pss)};
    CK_MECHANISM m_pkcs = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_MECHANISM m_oaep = {CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep)};
    CK_OBJECT_HANDLE pk, sk;
    CK_BYTE ct[256], pt[256];
    CK_ULONG ctlen = sizeof(ct), ptlen = sizeof(pt);
    CK_RV rv;

    rv = pair(CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0, &pk, &sk);
    result(rv == CKR_OK, "RSA-2048 key pair", rv);
    if (rv != CKR_OK) {
        return;
    }
    sign_verify("CKM_RSA_PKCS_PSS", &m_pss, pk, sk, hash, sizeof(hash));
    sign_verify("CKM_SHA256_RSA_PKCS_PSS", &m_spss, pk, sk, msg, sizeof(msg));
    sign_verify("CKM_SHA256_RSA_PKCS", &m_pkcs, pk, sk, msg, sizeof(msg));

    rv = f->C_EncryptInit(s, &m_oaep, pk);
    result(rv == CKR_OK, "CKM_RSA_PKCS_OAEP: C_EncryptInit", rv);
    if (rv != CKR_OK) {
        return;
    }
    rv = f->C_Encrypt(s, (CK_BYTE_PTR)msg, sizeof(msg), ct, &ctlen);
    result(rv == CKR_OK && ctlen == 256, "CKM_RSA_PKCS_OAEP: C_Encrypt", rv);
    rv = f->C_DecryptInit(s, &m_oaep, sk);
    result(rv == CKR_OK, "CKM_RSA_PKCS_OAEP: C_DecryptInit", rv);
    if (rv != CKR_OK) {
        return;
    }
    rv = f->C_Decrypt(s, ct, ctlen, pt, &ptlen);
    result(rv == CKR_OK && ptlen == sizeof(msg) &&
               memcmp(pt, msg, sizeof(msg)) == 0,
           "CKM_RSA_PKCS_OAEP: C_Decrypt gives the plaintext back", rv);
}

/* ECDH1 from priv with the peer's CKA_EC_POINT; in z (32 bytes) the
 * HMAC-SHA256 of a fixed message under the derived secret, which stays
 * sensitive as the private key is. */
static CK_RV derive(CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE peer, CK_BYTE *z)
{
    CK_BYTE point[128];
    CK_ATTRIBUTE pa = {CKA_EC_POINT, point, sizeof(point)};
    CK_ECDH1_DERIVE_PARAMS p = {CKD_NULL, 0, NULL, 0, point};
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof(p)};
    CK_OBJECT_CLASS c = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &c, sizeof(c)},         {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},       {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
    };
    static const CK_BYTE msg[] = "both sides agree";
    CK_MECHANISM hm = {CKM_SHA256_HMAC, NULL, 0};
    CK_ULONG zlen = 32;
    CK_OBJECT_HANDLE h;
    CK_RV rv;

    if ((rv = f->C_GetAttributeValue(s, peer, &pa, 1)) != CKR_OK) {
        return rv;
    }
    p.ulPublicDataLen = pa.ulValueLen;
    if ((rv = f->C_DeriveKey(s, &m, priv, t, 5, &h)) != CKR_OK ||
        (rv = f->C_SignInit(s, &hm, h)) != CKR_OK) {
        return rv;
    }
    return f->C_Sign(s, (CK_BYTE_PTR)msg, sizeof(msg) - 1, z, &zlen);
}

static void curves(void)
{
    static const CK_BYTE hash[32] = "0123456789abcdef0123456789abcdef";
    static const CK_BYTE msg[] = "a message for the token";
    CK_MECHANISM m_ecdsa = {CKM_ECDSA, NULL, 0};
    CK_MECHANISM m_secdsa = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM m_eddsa = {CKM_EDDSA, NULL, 0};
    CK_OBJECT_HANDLE pk, sk, pk2, sk2;
    CK_BYTE z1[32], z2[32];
    CK_RV rv;

    rv = pair(CKM_EC_KEY_PAIR_GEN, oid_p256, sizeof(oid_p256), &pk, &sk);
    result(rv == CKR_OK, "EC P-256 key pair", rv);
    if (rv == CKR_OK) {
        sign_verify("CKM_ECDSA", &m_ecdsa, pk, sk, hash, sizeof(hash));
        sign_verify("CKM_ECDSA_SHA256", &m_secdsa, pk, sk, msg, sizeof(msg));
        rv = pair(CKM_EC_KEY_PAIR_GEN, oid_p256, sizeof(oid_p256), &pk2, &sk2);
        if (rv == CKR_OK && (rv = derive(sk, pk2, z1)) == CKR_OK) {
            rv = derive(sk2, pk, z2);
        }
        result(rv == CKR_OK && memcmp(z1, z2, 32) == 0,
               "CKM_ECDH1_DERIVE (P-256): both sides derive one secret", rv);
    }
    rv = pair(CKM_EC_EDWARDS_KEY_PAIR_GEN, oid_ed25519, sizeof(oid_ed25519),
              &pk, &sk);
    result(rv == CKR_OK, "Ed25519 key pair", rv);
    if (rv == CKR_OK) {
        sign_verify("CKM_EDDSA (Ed25519)", &m_eddsa, pk, sk, msg, sizeof(msg));
    }
    rv = pair(CKM_EC_MONTGOMERY_KEY_PAIR_GEN, oid_x25519, sizeof(oid_x25519),
              &pk, &sk);
    if (rv == CKR_OK) {
        rv = pair(CKM_EC_MONTGOMERY_KEY_PAIR_GEN, oid_x25519,
                  sizeof(oid_x25519), &pk2, &sk2);
    }
    result(rv == CKR_OK, "X25519 key pairs", rv);
    if (rv == CKR_OK) {
        if ((rv = derive(sk, pk2, z1)) == CKR_OK) {
            rv = derive(sk2, pk, z2);
        }
        result(rv == CKR_OK && memcmp(z1, z2, 32) == 0,
               "CKM_ECDH1_DERIVE (X25519): both sides derive one secret", rv);
    }
}

static void symmetric(void)
{
    /* RFC 4231 test case 2 */
    static const CK_BYTE hkey[] = "Jefe";
    static const CK_BYTE hdata[] = "what do ya want for nothing?";
    static const CK_BYTE hmac[32] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
        0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
        0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    /* FIPS-197 appendix C.1 */
    static const CK_BYTE akey[16] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
                                     0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
                                     0x0c, 0x0d, 0x0e, 0x0f};
    static const CK_BYTE apt[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
                                    0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
                                    0xcc, 0xdd, 0xee, 0xff};
    static const CK_BYTE act[16] = {0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b,
                                    0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80,
                                    0x70, 0xb4, 0xc5, 0x5a};
    /* FIPS 180-2 "abc" */
    static const CK_BYTE sha[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    CK_BYTE iv[12] = {0}, out[64], back[64];
    CK_GCM_PARAMS gcm = {iv, sizeof(iv), 96, NULL, 0, 128};
    CK_MECHANISM m_hmac = {CKM_SHA256_HMAC, NULL, 0};
    CK_MECHANISM m_ecb = {CKM_AES_ECB, NULL, 0};
    CK_MECHANISM m_gcm = {CKM_AES_GCM, &gcm, sizeof(gcm)};
    CK_MECHANISM m_sha = {CKM_SHA256, NULL, 0};
    CK_OBJECT_HANDLE h;
    CK_ULONG n = sizeof(out), nb = sizeof(back);
    CK_RV rv;

    if ((rv = secret(CKK_GENERIC_SECRET, hkey, 4, &h)) == CKR_OK &&
        (rv = f->C_SignInit(s, &m_hmac, h)) == CKR_OK) {
        rv = f->C_Sign(s, (CK_BYTE_PTR)hdata, sizeof(hdata) - 1, out, &n);
    }
    result(rv == CKR_OK && n == 32 && memcmp(out, hmac, 32) == 0,
           "CKM_SHA256_HMAC: RFC 4231 case 2", rv);

    n = sizeof(out);
    if ((rv = secret(CKK_AES, akey, 16, &h)) == CKR_OK &&
        (rv = f->C_EncryptInit(s, &m_ecb, h)) == CKR_OK) {
        rv = f->C_Encrypt(s, (CK_BYTE_PTR)apt, 16, out, &n);
    }
    result(rv == CKR_OK && n == 16 && memcmp(out, act, 16) == 0,
           "CKM_AES_ECB: FIPS-197 C.1", rv);
    n = sizeof(out);
    if (rv == CKR_OK && (rv = f->C_EncryptInit(s, &m_gcm, h)) == CKR_OK &&
        (rv = f->C_Encrypt(s, (CK_BYTE_PTR)apt, 16, out, &n)) == CKR_OK &&
        (rv = f->C_DecryptInit(s, &m_gcm, h)) == CKR_OK) {
        rv = f->C_Decrypt(s, out, n, back, &nb);
    }
    result(rv == CKR_OK && n == 32 && nb == 16 && memcmp(back, apt, 16) == 0,
           "CKM_AES_GCM: encrypt then decrypt", rv);

    n = sizeof(out);
    if ((rv = f->C_DigestInit(s, &m_sha)) == CKR_OK) {
        rv = f->C_Digest(s, (CK_BYTE_PTR) "abc", 3, out, &n);
    }
    result(rv == CKR_OK && n == 32 && memcmp(out, sha, 32) == 0,
           "CKM_SHA256: FIPS 180-2 \"abc\"", rv);
}

int main(void)
{
    int rc;

    if ((rc = engines()) != 0 || (rc = module()) != 0) {
        return rc;
    }
    rsa();
    curves();
    symmetric();
    f->C_Finalize(NULL);
    printf("%d check(s) failed\n", failed);
    return failed > 76 ? 76 : failed;
}
