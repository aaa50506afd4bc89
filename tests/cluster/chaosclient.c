/*
 * chaosclient.c - a PKCS#11 application for the cluster's failure tests
 * (tests/cluster/chaos.sh, catchup.sh, scripts/cluster-soak.sh). It loads
 * the module as an application would and writes one line per attempt on
 * stdout, so that the shell can tell acknowledged changes (CKR_OK) from
 * those whose fate is unknown (any other answer: the change may or may
 * not have been applied, it was in flight).
 *
 *   chaosclient work USER PW PREFIX [pw]
 *       logs in, makes a token EC key PREFIX-sig, then until SIGTERM:
 *       a token AES-256 key PREFIX-N ("key LABEL RV"), a signature with
 *       PREFIX-sig ("sign RV"), and with "pw" every 4th round a C_SetPIN
 *       to USER-pN ("pw NEW RV"). After a failure it logs in again
 *       ("login RV"; a change of password in flight is resolved by trying
 *       both passwords). At exit: "final PW", the password it last logged
 *       in with or set.
 *   chaosclient users SOPW PREFIX
 *       as the CO ("admin:SOPW"), C_InitPIN of CU PREFIX-N until SIGTERM:
 *       "user NAME RV".
 *   chaosclient list USER PW
 *       one line "label L" per object USER finds; "list RV N" at the end.
 *   chaosclient write USER PW PREFIX N
 *       N token data objects PREFIX-i, one after the other (a writer of
 *       log entries): "write RV n MS", the first failure stops it.
 *
 * Module: $NIMBUS_MODULE; config: $NIMBUS_CONF. Exit 0 unless the module
 * cannot be loaded or the arguments are wrong.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11/pkcs11.h"
#include "../remote/modload.h"

#define SLOT 0

static CK_FUNCTION_LIST_3_0_PTR fl;
static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* C_Initialize until a server answers (a node may be down at start). */
static bool init_module(void)
{
    CK_RV rv;

    while (!stopping) {
        rv = fl->C_Initialize(NULL);
        if (rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED)
            return true;
        nap(200);
    }
    return false;
}

/* "name:password", the module's PIN for a named user */
static CK_RV login_as(CK_SESSION_HANDLE s, CK_USER_TYPE ut, const char *name,
                      const char *pw)
{
    char pin[300];
    CK_RV rv;

    snprintf(pin, sizeof(pin), "%s:%s", name, pw);
    rv = fl->C_Login(s, ut, (CK_UTF8CHAR_PTR)pin, strlen(pin));

    return rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv;
}

/* A fresh session logged in as USER. pw is the password believed
 * current; pend (128 bytes), when set, one whose change was in flight:
 * if pw is refused, pend is tried and they swap. Retries until SIGTERM. */
static bool relogin(CK_SESSION_HANDLE *s, CK_USER_TYPE ut, const char *name,
                    char *pw, size_t pwsz, char *pend)
{
    CK_RV rv;

    while (!stopping) {
        if (*s != CK_INVALID_HANDLE) {
            fl->C_Logout(*s);
            fl->C_CloseSession(*s);
            *s = CK_INVALID_HANDLE;
        }
        rv = fl->C_OpenSession(SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                               NULL, s);
        if (rv != CKR_OK) {
            *s = CK_INVALID_HANDLE;
            nap(100);
            continue;
        }
        rv = login_as(*s, ut, name, pw);
        if (rv == CKR_PIN_INCORRECT && pend[0] != '\0') {
            char old[128];

            /* the change in flight was applied: the two swap, as an
             * entry still in the log could yet be applied later */
            rv = login_as(*s, ut, name, pend);
            if (rv == CKR_OK) {
                snprintf(old, sizeof(old), "%s", pw);
                snprintf(pw, pwsz, "%s", pend);
                snprintf(pend, 128, "%s", old);
                printf("pwresolved %s\n", pw);
            }
        }
        printf("login %s\n", rv_name(rv));
        if (rv == CKR_OK)
            return true;
        if (rv == CKR_PIN_LOCKED)
            stopping = 1; /* nothing more to learn; the shell fails it */
        nap(100);
    }
    return false;
}

static CK_RV gen_aes(CK_SESSION_HANDLE s, const char *label)
{
    CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
    CK_ULONG len = 32;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_OBJECT_HANDLE h;

    return fl->C_GenerateKey(s, &m, t, 4, &h);
}

static CK_RV sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k)
{
    CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
    CK_BYTE digest[32], sig[128];
    CK_ULONG siglen = sizeof(sig);
    CK_RV rv;

    memset(digest, 0xc4, sizeof(digest));
    if ((rv = fl->C_SignInit(s, &m, k)) != CKR_OK)
        return rv;
    return fl->C_Sign(s, digest, sizeof(digest), sig, &siglen);
}

static int run_work(const char *user, const char *pw0, const char *prefix,
                    bool chpw)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    char pw[128], pend[128] = "", label[128], sig[128];
    unsigned long n = 0, npw = 0;
    CK_RV rv;

    snprintf(pw, sizeof(pw), "%s", pw0);
    snprintf(sig, sizeof(sig), "%s-sig", prefix);
    if (!init_module() || !relogin(&s, CKU_USER, user, pw, sizeof(pw), pend))
        goto out;
    /* the signing key: made once, found again after an ambiguous
     * failure (it may exist though the answer was lost) */
    while (!stopping) {
        rv = app_find_one(fl, s, CKO_PRIVATE_KEY, sig, &k);
        if (rv == CKR_OBJECT_HANDLE_INVALID)
            rv = app_gen_ec(fl, s, sig);
        printf("sigkey %s\n", rv_name(rv));
        if (rv == CKR_OK &&
            app_find_one(fl, s, CKO_PRIVATE_KEY, sig, &k) == CKR_OK)
            break;
        relogin(&s, CKU_USER, user, pw, sizeof(pw), pend);
    }
    while (!stopping) {
        bool bad = false;

        snprintf(label, sizeof(label), "%s-%lu", prefix, ++n);
        rv = gen_aes(s, label);
        printf("key %s %s\n", label, rv_name(rv));
        bad |= rv != CKR_OK;
        rv = sign(s, k);
        printf("sign %s\n", rv_name(rv));
        bad |= rv != CKR_OK;
        if (chpw && n % 4 == 0) {
            char next[128];

            snprintf(next, sizeof(next), "%s-pass%04lu", user, ++npw);
            rv = fl->C_SetPIN(s, (CK_UTF8CHAR_PTR)pw, strlen(pw),
                              (CK_UTF8CHAR_PTR)next, strlen(next));
            printf("pw %s %s\n", next, rv_name(rv));
            if (rv == CKR_OK) {
                snprintf(pw, sizeof(pw), "%s", next);
                pend[0] = '\0';
            } else if (rv == CKR_PIN_INCORRECT) {
                /* a refusal, not a change in flight: pw is stale, an
                 * earlier change in flight (pend) was applied after all */
            } else
                snprintf(pend, sizeof(pend), "%s", next);
            bad |= rv != CKR_OK;
        }
        if (bad && !stopping &&
            relogin(&s, CKU_USER, user, pw, sizeof(pw), pend)) {
            CK_OBJECT_HANDLE k2 = CK_INVALID_HANDLE;

            /* relogin's C_Logout ended every handle (the module's rule,
             * README): the key is found again */
            rv = app_find_one(fl, s, CKO_PRIVATE_KEY, sig, &k2);
            if (rv == CKR_OK && k2 != k) {
                printf("sigkey moved %lu %lu\n", (unsigned long)k,
                       (unsigned long)k2);
                k = k2;
            }
        }
        nap(20);
    }
out:
    /* with a change still unresolved, the shell accepts either */
    printf("final %s %s\n", pw, pend[0] ? pend : "-");
    fl->C_Finalize(NULL);
    return 0;
}

static int run_users(const char *sopw, const char *prefix)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    char pin[160], so[160], none[2] = "";
    unsigned long n = 0;
    CK_RV rv;

    snprintf(so, sizeof(so), "%s", sopw);
    if (!init_module() || !relogin(&s, CKU_SO, "admin", so, sizeof(so), none))
        goto out;
    while (!stopping) {
        n++;
        snprintf(pin, sizeof(pin), "%s%lu:pw-%s%lu", prefix, n, prefix, n);
        rv = fl->C_InitPIN(s, (CK_UTF8CHAR_PTR)pin, strlen(pin));
        *strchr(pin, ':') = '\0';
        printf("user %s %s\n", pin, rv_name(rv));
        if (rv != CKR_OK && !stopping)
            relogin(&s, CKU_SO, "admin", so, sizeof(so), none);
        nap(150); /* ~3000 CUs make listUsers fail: see the soak */
    }
out:
    fl->C_Finalize(NULL);
    return 0;
}

static int run_list(const char *user, const char *pw0)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE h[64];
    char pw[128], none[2] = "";
    unsigned long total = 0;
    CK_ULONG n;
    CK_RV rv;

    snprintf(pw, sizeof(pw), "%s", pw0);
    if ((rv = fl->C_Initialize(NULL)) != CKR_OK)
        goto out;
    /* one attempt: a refused login is an answer here */
    rv = fl->C_OpenSession(SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                           NULL, &s);
    if (rv == CKR_OK)
        rv = login_as(s, CKU_USER, user, pw);
    (void)none;
    if (rv != CKR_OK || (rv = fl->C_FindObjectsInit(s, NULL, 0)) != CKR_OK)
        goto out;
    while ((rv = fl->C_FindObjects(s, h, 64, &n)) == CKR_OK && n > 0) {
        for (CK_ULONG i = 0; i < n; i++) {
            char label[256];
            CK_ATTRIBUTE a = {CKA_LABEL, label, sizeof(label) - 1};

            if (fl->C_GetAttributeValue(s, h[i], &a, 1) != CKR_OK ||
                a.ulValueLen >= sizeof(label))
                continue;
            label[a.ulValueLen] = '\0';
            printf("label %s\n", label);
            total++;
        }
    }
    fl->C_FindObjectsFinal(s);
out:
    printf("list %s %lu\n", rv_name(rv), total);
    fl->C_Finalize(NULL);
    return 0;
}

static int run_write(const char *user, const char *pw, const char *prefix,
                     unsigned long count)
{
    CK_SESSION_HANDLE s;
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    unsigned long i = 0;
    double t0 = now_ms();
    CK_RV rv;

    if ((rv = fl->C_Initialize(NULL)) != CKR_OK ||
        (rv = fl->C_OpenSession(SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                                NULL, &s)) != CKR_OK ||
        (rv = login_as(s, CKU_USER, user, pw)) != CKR_OK)
        goto out;
    for (; i < count; i++) {
        char label[128];
        CK_OBJECT_HANDLE h;
        CK_ATTRIBUTE t[] = {
            {CKA_CLASS, &cls, sizeof(cls)},
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_LABEL, label, 0},
            {CKA_VALUE, "v", 1},
        };

        snprintf(label, sizeof(label), "%s-%lu", prefix, i);
        t[2].ulValueLen = strlen(label);
        if ((rv = fl->C_CreateObject(s, t, 4, &h)) != CKR_OK)
            break;
    }
out:
    printf("write %s %lu %.0f\n", rv_name(rv), i, now_ms() - t0);
    fl->C_Finalize(NULL);
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 5 && strcmp(argv[1], "work") == 0) {
        fl = modload("chaosclient");
        return run_work(argv[2], argv[3], argv[4],
                        argc > 5 && strcmp(argv[5], "pw") == 0);
    }
    if (argc == 4 && strcmp(argv[1], "users") == 0) {
        fl = modload("chaosclient");
        return run_users(argv[2], argv[3]);
    }
    if (argc == 4 && strcmp(argv[1], "list") == 0) {
        fl = modload("chaosclient");
        return run_list(argv[2], argv[3]);
    }
    if (argc == 6 && strcmp(argv[1], "write") == 0) {
        fl = modload("chaosclient");
        return run_write(argv[2], argv[3], argv[4], strtoul(argv[5], NULL, 10));
    }
    fprintf(stderr, "usage: chaosclient work USER PW PREFIX [pw] | users "
                    "SOPW PREFIX | list USER PW | write USER PW PREFIX N\n");
    return 2;
}
