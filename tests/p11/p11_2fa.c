/*
 * p11_2fa.c - a PKCS#11 client for tests/mgmt/twofa.sh: the two-factor
 * login of a crypto officer through the real module (dlopen), as an
 * application does it (nimbus/pkcs11-vendor.h).
 *
 *   p11_2fa bare NAME PASSWORD
 *       C_Login(CKU_SO, "NAME:PASSWORD"): prints "C_Login: <rv>".
 *   p11_2fa args NAME PASSWORD
 *       C_NimbusLoginChallenge with bad arguments, one a line ("<case>:
 *       <rv>"): no length pointer, a name without its pointer, a name of
 *       32 bytes or with a NUL, a user type out of range, a session that
 *       does not exist; and the 2FA PIN form malformed (bad base64, one
 *       character short) through C_Login.
 *   p11_2fa login NAME PASSWORD DIGEST_OUT SIG_IN [MODE]
 *       C_NimbusLoginChallenge of the "Nimbus 2FA" interface (its length
 *       query first), the digest written to DIGEST_OUT, then "ready" is
 *       printed and one line read from stdin (the shell signs meanwhile,
 *       into SIG_IN); then C_Login(CKU_SO, "2fa=<b64>:NAME:PASSWORD")
 *       prints "C_Login: <rv>". MODE "loginuser": C_LoginUser with
 *       "2fa=<b64>:PASSWORD" instead. MODE "replay": after the login,
 *       C_Logout and the same PIN again ("replay: <rv>"). MODE "other":
 *       the challenge is asked for user "admin", the login made as NAME.
 *       MODE "setpin": after the login, C_SetPIN(PASSWORD, "newpass9")
 *       ("C_SetPIN: <rv>").
 *
 * Module: $NIMBUS_MODULE. Store or server: what NIMBUS_CONF names. Exit
 * 0 when it ran (the results are in the output), 1 when a step before
 * the login failed, 2 usage.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11/pkcs11.h"

#include "nimbus/pkcs11-vendor.h"

static CK_FUNCTION_LIST_3_0_PTR fl;

static const char *rv_name(CK_RV rv)
{
    static char buf[32];

    switch (rv) {
    case CKR_OK:
        return "CKR_OK";
    case CKR_PIN_INCORRECT:
        return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED:
        return "CKR_PIN_LOCKED";
    case CKR_USER_ALREADY_LOGGED_IN:
        return "CKR_USER_ALREADY_LOGGED_IN";
    case CKR_USER_TYPE_INVALID:
        return "CKR_USER_TYPE_INVALID";
    case CKR_ARGUMENTS_BAD:
        return "CKR_ARGUMENTS_BAD";
    case CKR_BUFFER_TOO_SMALL:
        return "CKR_BUFFER_TOO_SMALL";
    case CKR_SESSION_HANDLE_INVALID:
        return "CKR_SESSION_HANDLE_INVALID";
    case CKR_ACTION_PROHIBITED:
        return "CKR_ACTION_PROHIBITED";
    case CKR_GENERAL_ERROR:
        return "CKR_GENERAL_ERROR";
    default:
        snprintf(buf, sizeof(buf), "0x%lx", (unsigned long)rv);
        return buf;
    }
}

static void b64(const uint8_t *in, size_t len, char *out)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;

        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = i + 1 < len ? a[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? a[v & 63] : '=';
    }
    out[o] = '\0';
}

static int die(const char *what, CK_RV rv)
{
    fprintf(stderr, "p11_2fa: %s: %s\n", what, rv_name(rv));
    return 1;
}

int main(int argc, char **argv)
{
    const char *mod = getenv("NIMBUS_MODULE");
    CK_C_GetInterface get_interface;
    CK_INTERFACE_PTR ip = NULL;
    CK_VERSION v30 = {3, 0};
    CK_NIMBUS_2FA_FUNCTION_LIST *tl;
    CK_SESSION_HANDLE s;
    uint8_t digest[64], sig[1024];
    char pin[4096], enc[1400], line[64];
    CK_ULONG dlen;
    const char *mode = argc > 6 ? argv[6] : "";
    const char *chal_name;
    size_t siglen;
    void *h;
    FILE *fp;
    CK_RV rv;

    if (argc < 4 ||
        (strcmp(argv[1], "bare") != 0 && strcmp(argv[1], "args") != 0 &&
         (strcmp(argv[1], "login") != 0 || argc < 6))) {
        fprintf(stderr, "usage: p11_2fa bare|login NAME PASSWORD [DIGEST "
                        "SIG [MODE]]\n");
        return 2;
    }
    h = dlopen(mod != NULL ? mod : "./.libs/libnimbus-pkcs11.so", RTLD_NOW);
    if (h == NULL) {
        fprintf(stderr, "p11_2fa: %s\n", dlerror());
        return 1;
    }
    *(void **)&get_interface = dlsym(h, "C_GetInterface");
    if (get_interface == NULL ||
        get_interface((CK_UTF8CHAR_PTR) "PKCS 11", &v30, &ip, 0) != CKR_OK)
        return die("C_GetInterface(PKCS 11)", CKR_GENERAL_ERROR);
    fl = ip->pFunctionList;
    if ((rv = fl->C_Initialize(NULL)) != CKR_OK)
        return die("C_Initialize", rv);
    if ((rv = fl->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                                NULL, &s)) != CKR_OK)
        return die("C_OpenSession", rv);
    if (strcmp(argv[1], "bare") == 0) {
        snprintf(pin, sizeof(pin), "%s:%s", argv[2], argv[3]);
        rv = fl->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)pin, strlen(pin));
        printf("C_Login: %s\n", rv_name(rv));
        fl->C_Finalize(NULL);
        return 0;
    }

    if ((rv = get_interface((CK_UTF8CHAR_PTR)NIMBUS_2FA_INTERFACE_NAME, NULL,
                            &ip, 0)) != CKR_OK)
        return die("C_GetInterface(Nimbus 2FA)", rv);
    tl = ip->pFunctionList;
    if (tl->version.major != 1)
        return die("the 2FA interface's version", CKR_GENERAL_ERROR);
    if (strcmp(argv[1], "args") == 0) {
        static const char nul_name[] = {'a', 'd', 'm', 0, 'n'};
        char long_name[40];

        memset(long_name, 'a', sizeof(long_name));
        dlen = sizeof(digest);
        rv = tl->C_NimbusLoginChallenge(s, CKU_SO, (CK_UTF8CHAR_PTR) "admin", 5,
                                        digest, NULL);
        printf("no length pointer: %s\n", rv_name(rv));
        rv = tl->C_NimbusLoginChallenge(s, CKU_SO, NULL, 5, digest, &dlen);
        printf("a name length without a name: %s\n", rv_name(rv));
        rv = tl->C_NimbusLoginChallenge(s, CKU_SO, (CK_UTF8CHAR_PTR)long_name,
                                        32, digest, &dlen);
        printf("a name of 32 bytes: %s\n", rv_name(rv));
        rv = tl->C_NimbusLoginChallenge(s, CKU_SO, (CK_UTF8CHAR_PTR)nul_name,
                                        sizeof(nul_name), digest, &dlen);
        printf("a name with a NUL: %s\n", rv_name(rv));
        rv = tl->C_NimbusLoginChallenge(s, 77, (CK_UTF8CHAR_PTR) "admin", 5,
                                        digest, &dlen);
        printf("user type 77: %s\n", rv_name(rv));
        rv = tl->C_NimbusLoginChallenge(
            s + 1000, CKU_SO, (CK_UTF8CHAR_PTR) "admin", 5, digest, &dlen);
        printf("no such session: %s\n", rv_name(rv));
        /* the form recognized but its base64 broken: refused unsent */
        memset(enc, 'A', NIMBUS_2FA_SIG_B64_LEN);
        enc[10] = '*';
        snprintf(pin, sizeof(pin), "%s%.*s:%s:%s", NIMBUS_2FA_PIN_PREFIX,
                 NIMBUS_2FA_SIG_B64_LEN, enc, argv[2], argv[3]);
        rv = fl->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)pin, strlen(pin));
        printf("a 2FA PIN with bad base64: %s\n", rv_name(rv));
        /* one character short: not the form, a name "2fa=..." no user has */
        snprintf(pin, sizeof(pin), "%s%.*s:%s:%s", NIMBUS_2FA_PIN_PREFIX,
                 NIMBUS_2FA_SIG_B64_LEN - 1, enc + 11, argv[2], argv[3]);
        rv = fl->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)pin, strlen(pin));
        printf("a 2FA PIN one character short: %s\n", rv_name(rv));
        fl->C_Finalize(NULL);
        return 0;
    }
    chal_name = strcmp(mode, "other") == 0 ? "admin" : argv[2];
    dlen = 0;
    rv = tl->C_NimbusLoginChallenge(s, CKU_SO, (CK_UTF8CHAR_PTR)chal_name,
                                    strlen(chal_name), NULL, &dlen);
    if (rv != CKR_OK || dlen != NIMBUS_2FA_DIGEST_LEN)
        return die("C_NimbusLoginChallenge (length)", rv);
    dlen = 8;
    rv = tl->C_NimbusLoginChallenge(s, CKU_SO, (CK_UTF8CHAR_PTR)chal_name,
                                    strlen(chal_name), digest, &dlen);
    if (rv != CKR_BUFFER_TOO_SMALL || dlen != NIMBUS_2FA_DIGEST_LEN)
        return die("C_NimbusLoginChallenge (short buffer)", rv);
    dlen = sizeof(digest);
    rv = tl->C_NimbusLoginChallenge(s, CKU_SO, (CK_UTF8CHAR_PTR)chal_name,
                                    strlen(chal_name), digest, &dlen);
    if (rv != CKR_OK || dlen != NIMBUS_2FA_DIGEST_LEN)
        return die("C_NimbusLoginChallenge", rv);
    fp = fopen(argv[4], "wb");
    if (fp == NULL || fwrite(digest, 1, dlen, fp) != dlen || fclose(fp) != 0)
        return die("writing the digest", CKR_GENERAL_ERROR);
    printf("ready\n");
    fflush(stdout);
    if (fgets(line, sizeof(line), stdin) == NULL)
        return die("no line on stdin", CKR_GENERAL_ERROR);
    fp = fopen(argv[5], "rb");
    if (fp == NULL)
        return die("reading the signature", CKR_GENERAL_ERROR);
    siglen = fread(sig, 1, sizeof(sig), fp);
    fclose(fp);
    b64(sig, siglen, enc);
    if (strcmp(mode, "loginuser") == 0) {
        snprintf(pin, sizeof(pin), "%s%s:%s", NIMBUS_2FA_PIN_PREFIX, enc,
                 argv[3]);
        rv = fl->C_LoginUser(s, CKU_SO, (CK_UTF8CHAR_PTR)pin, strlen(pin),
                             (CK_UTF8CHAR_PTR)argv[2], strlen(argv[2]));
    } else {
        snprintf(pin, sizeof(pin), "%s%s:%s:%s", NIMBUS_2FA_PIN_PREFIX, enc,
                 argv[2], argv[3]);
        rv = fl->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    }
    printf("C_Login: %s\n", rv_name(rv));
    if (strcmp(mode, "replay") == 0 && rv == CKR_OK) {
        fl->C_Logout(s);
        rv = fl->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)pin, strlen(pin));
        printf("replay: %s\n", rv_name(rv));
    }
    if (strcmp(mode, "setpin") == 0 && rv == CKR_OK) {
        static const char npw[] = "newpass9";

        rv = fl->C_SetPIN(s, (CK_UTF8CHAR_PTR)argv[3], strlen(argv[3]),
                          (CK_UTF8CHAR_PTR)npw, sizeof(npw) - 1);
        printf("C_SetPIN: %s\n", rv_name(rv));
    }
    fl->C_Finalize(NULL);
    return 0;
}
