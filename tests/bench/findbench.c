/*
 * findbench.c - C_FindObjects by label among N token objects, and login
 * cost, for any PKCS#11 module. A benchmark, not a test: it prints figures.
 *
 *   findbench MODULE PIN COUNTS [SEARCHES]
 *     MODULE    path of the PKCS#11 module (token already initialized, user
 *               PIN set)
 *     PIN       user PIN (name:password for Nimbus)
 *     COUNTS    comma-separated object counts, ascending (e.g. 1000,10000)
 *     SEARCHES  finds timed per count (default 2000)
 *
 * For each count it tops the token up to that many data objects labelled
 * "fb-<i>", then times SEARCHES finds of a random existing label and prints
 * searches per second. It also times C_Login + C_Logout, and, as the
 * reference for it, one PBKDF2-HMAC-SHA256 derivation of
 * NIMBUS_BENCH_KDF_ITERATIONS (default 600000) done by OpenSSL directly.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "pkcs11/pkcs11.h"

static CK_FUNCTION_LIST_PTR p11;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define CHECK(call)                                                            \
    do {                                                                       \
        CK_RV rv_ = (call);                                                    \
        if (rv_ != CKR_OK) {                                                   \
            fprintf(stderr, "findbench: %s: 0x%lx\n", #call, rv_);             \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static CK_ULONG find_label(CK_SESSION_HANDLE s, const char *label)
{
    CK_ATTRIBUTE t = {CKA_LABEL, (void *)label, strlen(label)};
    CK_OBJECT_HANDLE h[4];
    CK_ULONG n = 0;

    CHECK(p11->C_FindObjectsInit(s, &t, 1));
    CHECK(p11->C_FindObjects(s, h, 4, &n));
    CHECK(p11->C_FindObjectsFinal(s));
    return n;
}

int main(int argc, char **argv)
{
    CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);
    CK_SLOT_ID slots[8];
    CK_ULONG nslots = 8, have = 0;
    CK_SESSION_HANDLE s;
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL tru = CK_TRUE;
    unsigned long searches = argc > 4 ? strtoul(argv[4], NULL, 10) : 2000;
    char label[32], *counts, *tok;
    void *dl;
    double t0, t1;

    if (argc < 4) {
        fprintf(stderr, "usage: findbench MODULE PIN COUNTS [SEARCHES]\n");
        return 2;
    }
    dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "findbench: %s\n", dlerror());
        return 1;
    }
    get = (CK_RV(*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(dl, "C_GetFunctionList");
    if (get == NULL)
        return 1;
    CHECK(get(&p11));
    CHECK(p11->C_Initialize(NULL));
    CHECK(p11->C_GetSlotList(CK_TRUE, slots, &nslots));
    CHECK(p11->C_OpenSession(slots[0], CKF_SERIAL_SESSION | CKF_RW_SESSION,
                             NULL, NULL, &s));

    t0 = now();
    for (int i = 0; i < 3; i++) {
        CHECK(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)argv[2],
                           strlen(argv[2])));
        CHECK(p11->C_Logout(s));
    }
    t1 = now();
    printf("login+logout: %.1f ms each\n", (t1 - t0) / 3 * 1e3);
    {
        const char *it = getenv("NIMBUS_BENCH_KDF_ITERATIONS");
        int iters = it != NULL ? atoi(it) : 600000;
        unsigned char out[32];
        double login = (t1 - t0) / 3;

        t0 = now();
        for (int i = 0; i < 3; i++)
            PKCS5_PBKDF2_HMAC("password", 8, (const unsigned char *)"salt", 4,
                              iters, EVP_sha256(), sizeof(out), out);
        t1 = now();
        printf("PBKDF2-SHA256 x%d in OpenSSL: %.1f ms; login = %.2f of it\n",
               iters, (t1 - t0) / 3 * 1e3, login / ((t1 - t0) / 3));
    }
    CHECK(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)argv[2], strlen(argv[2])));

    counts = strdup(argv[3]);
    srand(1);
    for (tok = strtok(counts, ","); tok != NULL; tok = strtok(NULL, ",")) {
        unsigned long want = strtoul(tok, NULL, 10);

        t0 = now();
        for (; have < want; have++) {
            CK_OBJECT_HANDLE h;
            CK_ATTRIBUTE t[] = {
                {CKA_CLASS, &cls, sizeof(cls)},
                {CKA_TOKEN, &tru, sizeof(tru)},
                {CKA_LABEL, label, 0},
                {CKA_VALUE, "value", 5},
            };
            t[2].ulValueLen =
                (CK_ULONG)snprintf(label, sizeof(label), "fb-%lu", have);
            CHECK(p11->C_CreateObject(s, t, 4, &h));
        }
        t1 = now();
        fprintf(stderr, "created up to %lu objects in %.1f s\n", want, t1 - t0);
        /* An untimed warm-up round, then the timed one. */
        for (unsigned long i = 0; i < searches / 4; i++) {
            snprintf(label, sizeof(label), "fb-%lu",
                     (unsigned long)rand() % want);
            find_label(s, label);
        }
        t0 = now();
        for (unsigned long i = 0; i < searches; i++) {
            snprintf(label, sizeof(label), "fb-%lu",
                     (unsigned long)rand() % want);
            if (find_label(s, label) != 1) {
                fprintf(stderr, "findbench: %s: not exactly one hit\n", label);
                return 1;
            }
        }
        t1 = now();
        printf("objects %lu: %.0f searches/s\n", want,
               (double)searches / (t1 - t0));
    }
    free(counts);
    p11->C_Logout(s);
    p11->C_CloseSession(s);
    p11->C_Finalize(NULL);
    return 0;
}
