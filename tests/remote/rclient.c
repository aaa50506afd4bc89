/*
 * rclient.c - a PKCS#11 application driven line by line, for the remote
 * mode's process tests (tests/remote/): the shell starts it as a
 * coprocess, kills and restarts nimbusd between its commands, and reads
 * one answer line per command: "<command> <CKR_NAME> [details]".
 *
 * It loads the module with dlopen and takes the 3.0 function list, as an
 * application would. Module: $NIMBUS_MODULE; config: $NIMBUS_CONF.
 *
 * Commands (one per line; "cur" is the current session):
 *   init | finalize
 *   inittoken SOPIN      C_InitToken (activation: PRECO becomes CO)
 *   initpin SOPIN PIN    as CO: C_InitPIN (PIN "name:password" makes CU
 *                        name; a bare one the default CU)
 *   open                 C_OpenSession (RW) -> cur; prints the handle
 *   close                C_CloseSession(cur)
 *   save | restore       remember cur / make the remembered one cur again
 *   login PIN            C_Login(CKU_USER)
 *   loginuser NAME PW    C_LoginUser(CKU_USER)
 *   logout
 *   state                C_GetSessionInfo(cur): the state
 *   genec LABEL          EC P-256 token key pair
 *   aes LABEL HEX        a token AES-256 key of that value (64 hex)
 *   sobj LABEL           a session data object
 *   count LABEL          objects with this label cur can find
 *   destroy LABEL        C_DestroyObject of the secret key LABEL
 *   ecb0 LABEL           AES-ECB of 16 zero bytes under key LABEL: "ecb0
 *                        RV HEX"
 *   sign LABEL           ECDSA sign with LABEL's private key, verify with
 *                        its public key
 *   signfor SECS LABEL   C_SignInit + C_Sign with LABEL's private key on
 *                        cur again and again until a call fails or SECS
 *                        pass: "signfor RV N MS", N the signatures made,
 *                        MS how long the last call took
 *   signwatch SECS LABEL signs on cur for SECS through failures:
 *                        "signwatch RV N FAILS GAP", GAP the longest ms
 *                        between two good signatures
 *   msg                  AES-GCM through the message API (session key)
 *   bulk N               C_Encrypt/C_Decrypt of N bytes, AES-256-GCM
 *                        (session key); a changed tag releases nothing
 *   mechs                C_GetMechanismList: count and the hex list
 *   threads N LABEL      N threads, each its own session, 20 signs each
 *   fork LABEL PIN       fork: the child checks it gets
 *                        CKR_CRYPTOKI_NOT_INITIALIZED, calls C_Initialize,
 *                        opens, logs in and signs; prints its exit status
 *   forkidle FILE LABEL PIN  fork a child that never calls C_Initialize
 *                        and waits (stdin and stdout /dev/null) for
 *                        SIGUSR1; then it checks as fork does and writes
 *                        its status to FILE. Prints "forkidle CKR_OK PID"
 *   opens N              N more sessions (the "set"), beside cur
 *   signall LABEL        sign (as sign) on each session of the set:
 *                        "signall RV n ok=K [CKR_x=M ...]", RV the first
 *                        failure (CKR_OK when none)
 *   updall LABEL         C_SignInit(CKM_ECDSA_SHA256) and one
 *                        C_SignUpdate on each session of the set (a
 *                        multi-part operation left open); answers as
 *                        signall
 *   updall2              one more C_SignUpdate and C_SignFinal on each
 *                        session of the set; answers as signall
 *   stateall             C_GetSessionInfo on each session of the set:
 *                        "stateall CKR_OK n st=K ..." per state
 *   setpin OLD NEW       C_SetPIN on cur
 *   xsobj                a session object on each of the set's first two
 *                        sessions; "xsobj RV": what reading the first's
 *                        CKA_VALUE through the second session answers
 *                        (its owner reads it, or the answer is
 *                        CKR_FUNCTION_FAILED)
 *   quit
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11/pkcs11.h"
#include "modload.h"

#define SLOT 0

static CK_FUNCTION_LIST_3_0_PTR fl;
static CK_SESSION_HANDLE cur, saved;
#define SET_MAX 64
static CK_SESSION_HANDLE sset[SET_MAX];
static size_t nset;

static CK_RV do_sign(CK_SESSION_HANDLE s, const char *label)
{
    CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
    CK_BYTE digest[32], sig[128];
    CK_ULONG siglen = sizeof(sig);
    CK_OBJECT_HANDLE priv, pub;
    CK_RV rv;

    memset(digest, 0x5a, sizeof(digest));
    if ((rv = app_find_one(fl, s, CKO_PRIVATE_KEY, label, &priv)) != CKR_OK ||
        (rv = app_find_one(fl, s, CKO_PUBLIC_KEY, label, &pub)) != CKR_OK ||
        (rv = fl->C_SignInit(s, &m, priv)) != CKR_OK ||
        (rv = fl->C_Sign(s, digest, sizeof(digest), sig, &siglen)) != CKR_OK ||
        (rv = fl->C_VerifyInit(s, &m, pub)) != CKR_OK)
        return rv;
    return fl->C_Verify(s, digest, sizeof(digest), sig, siglen);
}

static CK_RV do_genec(const char *label)
{
    return app_gen_ec(fl, cur, label);
}

static CK_RV do_sobj(const char *label)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VALUE, "v", 1},
    };
    CK_OBJECT_HANDLE h;

    return fl->C_CreateObject(cur, t, 4, &h);
}

/* A token AES key with the value given in hex (32 bytes), encrypt-only:
 * a known value the cluster tests look for in files. */
static CK_RV do_aes(const char *label, const char *hex)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL yes = CK_TRUE;
    unsigned char v[32];
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VALUE, v, sizeof(v)},
    };
    CK_OBJECT_HANDLE h;

    if (strlen(hex) != 2 * sizeof(v))
        return CKR_ARGUMENTS_BAD;
    for (size_t i = 0; i < sizeof(v); i++) {
        unsigned x;

        if (sscanf(hex + 2 * i, "%2x", &x) != 1)
            return CKR_ARGUMENTS_BAD;
        v[i] = (unsigned char)x;
    }
    return fl->C_CreateObject(cur, t, 6, &h);
}

/* C_DestroyObject of the secret key labelled label. */
static CK_RV do_destroy(const char *label)
{
    CK_OBJECT_HANDLE h;
    CK_RV rv = app_find_one(fl, cur, CKO_SECRET_KEY, label, &h);

    return rv == CKR_OK ? fl->C_DestroyObject(cur, h) : rv;
}

/* AES-ECB of 16 zero bytes under the secret key labelled label: what
 * tells a key value without showing it. */
static CK_RV do_ecb0(const char *label, char hex[33])
{
    CK_MECHANISM m = {CKM_AES_ECB, NULL, 0};
    CK_BYTE in[16] = {0}, out[16];
    CK_ULONG outlen = sizeof(out);
    CK_OBJECT_HANDLE h;
    CK_RV rv = app_find_one(fl, cur, CKO_SECRET_KEY, label, &h);

    hex[0] = '\0';
    if (rv == CKR_OK)
        rv = fl->C_EncryptInit(cur, &m, h);
    if (rv == CKR_OK)
        rv = fl->C_Encrypt(cur, in, sizeof(in), out, &outlen);
    for (size_t i = 0; rv == CKR_OK && i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", out[i]);
    return rv;
}

static CK_RV do_count(const char *label, CK_ULONG *n)
{
    CK_ATTRIBUTE t[] = {{CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE h[16];
    CK_RV rv;

    *n = 0;
    if ((rv = fl->C_FindObjectsInit(cur, t, 1)) != CKR_OK)
        return rv;
    rv = fl->C_FindObjects(cur, h, 16, n);
    fl->C_FindObjectsFinal(cur);
    return rv;
}

static CK_RV do_msg(void)
{
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_MECHANISM gcm = {CKM_AES_GCM, NULL, 0};
    CK_ULONG klen = 32;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_VALUE_LEN, &klen, sizeof(klen)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
    };
    CK_BYTE iv[12] = {1, 2, 3}, tag[16], ct[64], pt[64];
    CK_BYTE msg[] = "remote message API";
    CK_GCM_MESSAGE_PARAMS p;
    CK_ULONG ctlen = sizeof(ct), ptlen = sizeof(pt);
    CK_OBJECT_HANDLE k;
    CK_RV rv;

    memset(&p, 0, sizeof(p));
    p.pIv = iv;
    p.ulIvLen = sizeof(iv);
    p.ulIvFixedBits = 0;
    p.ivGenerator = CKG_NO_GENERATE;
    p.pTag = tag;
    p.ulTagBits = 128;
    if ((rv = fl->C_GenerateKey(cur, &gen, t, 3, &k)) != CKR_OK ||
        (rv = fl->C_MessageEncryptInit(cur, &gcm, k)) != CKR_OK ||
        (rv = fl->C_EncryptMessage(cur, &p, sizeof(p), NULL, 0, msg,
                                   sizeof(msg), ct, &ctlen)) != CKR_OK ||
        (rv = fl->C_MessageEncryptFinal(cur)) != CKR_OK ||
        (rv = fl->C_MessageDecryptInit(cur, &gcm, k)) != CKR_OK ||
        (rv = fl->C_DecryptMessage(cur, &p, sizeof(p), NULL, 0, ct, ctlen, pt,
                                   &ptlen)) != CKR_OK ||
        (rv = fl->C_MessageDecryptFinal(cur)) != CKR_OK)
        return rv;
    if (ptlen != sizeof(msg) || memcmp(pt, msg, ptlen) != 0)
        return CKR_FUNCTION_FAILED;
    /* a changed tag is refused: the server's core checked it */
    tag[0] ^= 1;
    ptlen = sizeof(pt);
    if ((rv = fl->C_MessageDecryptInit(cur, &gcm, k)) != CKR_OK)
        return rv;
    rv = fl->C_DecryptMessage(cur, &p, sizeof(p), NULL, 0, ct, ctlen, pt,
                              &ptlen);
    fl->C_MessageDecryptFinal(cur);
    return rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_AEAD_DECRYPT_FAILED
               ? CKR_OK
               : CKR_FUNCTION_FAILED;
}

/* C_Encrypt and C_Decrypt of n bytes with AES-256-GCM (a session key):
 * the plaintext comes back; a changed tag gives CKR_ENCRYPTED_DATA_INVALID
 * and not one byte of the output buffer changes. */
static CK_RV do_bulk(size_t n)
{
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_BYTE iv[12] = {9, 8, 7};
    CK_GCM_PARAMS gp = {iv, sizeof(iv), 96, NULL, 0, 128};
    CK_MECHANISM gcm = {CKM_AES_GCM, &gp, sizeof(gp)};
    CK_ULONG klen = 32;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_VALUE_LEN, &klen, sizeof(klen)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
    };
    CK_BYTE *msg = malloc(n), *ct = malloc(n + 16), *pt = malloc(n);
    CK_ULONG ctlen = n + 16, ptlen = n;
    CK_OBJECT_HANDLE k;
    CK_RV rv = CKR_HOST_MEMORY;

    if (msg == NULL || ct == NULL || pt == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        msg[i] = (CK_BYTE)(i * 7 + (i >> 9));
    if ((rv = fl->C_GenerateKey(cur, &gen, t, 3, &k)) != CKR_OK ||
        (rv = fl->C_EncryptInit(cur, &gcm, k)) != CKR_OK ||
        (rv = fl->C_Encrypt(cur, msg, n, ct, &ctlen)) != CKR_OK ||
        (rv = fl->C_DecryptInit(cur, &gcm, k)) != CKR_OK ||
        (rv = fl->C_Decrypt(cur, ct, ctlen, pt, &ptlen)) != CKR_OK)
        goto out;
    rv = CKR_FUNCTION_FAILED;
    if (ctlen != n + 16 || ptlen != n || memcmp(pt, msg, n) != 0)
        goto out;
    ct[ctlen - 1] ^= 1;
    memset(pt, 0xa5, n);
    ptlen = n;
    if ((rv = fl->C_DecryptInit(cur, &gcm, k)) != CKR_OK)
        goto out;
    rv = fl->C_Decrypt(cur, ct, ctlen, pt, &ptlen);
    if (rv != CKR_ENCRYPTED_DATA_INVALID) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    rv = CKR_OK;
    for (size_t i = 0; i < n; i++)
        if (pt[i] != 0xa5)
            rv = CKR_FUNCTION_FAILED; /* plaintext released */
out:
    free(msg);
    free(ct);
    free(pt);
    return rv;
}

static CK_RV do_mechs(void)
{
    CK_MECHANISM_TYPE list[512];
    CK_ULONG n = 512;
    CK_RV rv = fl->C_GetMechanismList(SLOT, list, &n);

    if (rv != CKR_OK)
        return rv;
    printf("mechs CKR_OK %lu", n);
    for (CK_ULONG i = 0; i < n; i++)
        printf(" %lx", list[i]);
    printf("\n");
    return CKR_OK;
}

struct thr {
    const char *label;
    CK_RV rv;
};

static void *thr_main(void *arg)
{
    struct thr *t = arg;
    CK_SESSION_HANDLE s;

    t->rv = fl->C_OpenSession(SLOT, CKF_SERIAL_SESSION, NULL, NULL, &s);
    for (int i = 0; i < 20 && t->rv == CKR_OK; i++)
        t->rv = do_sign(s, t->label);
    if (t->rv == CKR_OK)
        t->rv = fl->C_CloseSession(s);
    return NULL;
}

static CK_RV do_threads(int n, const char *label)
{
    pthread_t th[64];
    struct thr t[64];
    CK_RV rv = CKR_OK;

    if (n < 1 || n > 64)
        return CKR_ARGUMENTS_BAD;
    for (int i = 0; i < n; i++) {
        t[i].label = label;
        t[i].rv = CKR_GENERAL_ERROR;
        if (pthread_create(&th[i], NULL, thr_main, &t[i]) != 0)
            return CKR_GENERAL_ERROR;
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (t[i].rv != CKR_OK)
            rv = t[i].rv;
    }
    return rv;
}

/* The child's checks; its exit status says which step failed. */
static int fork_child(const char *label, const char *pin)
{
    CK_SESSION_HANDLE s;
    CK_SESSION_INFO si;

    /* the parent's state is not the child's */
    if (fl->C_OpenSession(SLOT, CKF_SERIAL_SESSION, NULL, NULL, &s) !=
        CKR_CRYPTOKI_NOT_INITIALIZED)
        return 10;
    if (fl->C_GetSessionInfo(cur, &si) != CKR_CRYPTOKI_NOT_INITIALIZED)
        return 11;
    if (fl->C_Initialize(NULL) != CKR_OK)
        return 12;
    if (fl->C_OpenSession(SLOT, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK)
        return 13;
    /* a connection of its own: the parent's login is not there */
    if (fl->C_GetSessionInfo(s, &si) != CKR_OK ||
        si.state != CKS_RO_PUBLIC_SESSION)
        return 14;
    if (fl->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)) != CKR_OK)
        return 15;
    if (do_sign(s, label) != CKR_OK)
        return 16;
    if (fl->C_Finalize(NULL) != CKR_OK)
        return 17;
    return 0;
}

static void do_fork(const char *label, const char *pin)
{
    pid_t pid;
    int st = 0;

    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        printf("fork CKR_GENERAL_ERROR\n");
        return;
    }
    if (pid == 0)
        _exit(fork_child(label, pin));
    waitpid(pid, &st, 0);
    printf("fork %s %d\n",
           WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "CKR_OK" : "FAILED",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static uint64_t ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void do_signfor(unsigned secs, const char *label)
{
    CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
    CK_BYTE digest[32], sig[128];
    CK_ULONG siglen;
    CK_OBJECT_HANDLE priv;
    uint64_t end = ms_now() + secs * 1000ull, t0, last = 0;
    unsigned long n = 0;
    CK_RV rv;

    memset(digest, 0x5a, sizeof(digest));
    rv = app_find_one(fl, cur, CKO_PRIVATE_KEY, label, &priv);
    /* each call timed alone: the one that fails is the one reported */
    while (rv == CKR_OK && ms_now() < end) {
        t0 = ms_now();
        rv = fl->C_SignInit(cur, &m, priv);
        last = ms_now() - t0;
        if (rv != CKR_OK)
            break;
        siglen = sizeof(sig);
        t0 = ms_now();
        rv = fl->C_Sign(cur, digest, sizeof(digest), sig, &siglen);
        last = ms_now() - t0;
        if (rv == CKR_OK)
            n++;
    }
    printf("signfor %s %lu %llu\n", rv_name(rv), n, (unsigned long long)last);
}

/* Signs on cur for secs seconds through failures: "signwatch RV N FAILS
 * GAP", GAP the longest time in ms between two good signatures (what an
 * application sees of a failover), RV the last failure (CKR_OK: none). */
static void do_signwatch(unsigned secs, const char *label)
{
    CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
    CK_BYTE digest[32], sig[128];
    CK_ULONG siglen;
    CK_OBJECT_HANDLE priv;
    uint64_t end = ms_now() + secs * 1000ull, good = ms_now(), gap = 0;
    unsigned long n = 0, fails = 0;
    CK_RV rv, last = CKR_OK;

    memset(digest, 0x5a, sizeof(digest));
    if ((rv = app_find_one(fl, cur, CKO_PRIVATE_KEY, label, &priv)) != CKR_OK) {
        printf("signwatch %s 0 0 0\n", rv_name(rv));
        return;
    }
    while (ms_now() < end) {
        rv = fl->C_SignInit(cur, &m, priv);
        if (rv == CKR_OK) {
            siglen = sizeof(sig);
            rv = fl->C_Sign(cur, digest, sizeof(digest), sig, &siglen);
        }
        if (rv != CKR_OK) {
            fails++;
            last = rv;
            continue;
        }
        n++;
        if (ms_now() - good > gap)
            gap = ms_now() - good;
        good = ms_now();
    }
    if (ms_now() - good > gap) /* failing to the end counts too */
        gap = ms_now() - good;
    printf("signwatch %s %lu %lu %llu\n", rv_name(last), n, fails,
           (unsigned long long)gap);
}

static void do_forkidle(const char *file, const char *label, const char *pin)
{
    sigset_t set;
    pid_t pid;
    int sig = 0;

    fflush(stdout);
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    /* blocked before the fork: a signal sent at once is not lost */
    sigprocmask(SIG_BLOCK, &set, NULL);
    pid = fork();
    if (pid < 0) {
        printf("forkidle CKR_GENERAL_ERROR\n");
        return;
    }
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR), code;
        FILE *f;

        dup2(fd, 0);
        dup2(fd, 1);
        close(fd);
        sigwait(&set, &sig);
        code = fork_child(label, pin);
        f = fopen(file, "w");
        if (f != NULL) {
            fprintf(f, "%d\n", code);
            fclose(f);
        }
        _exit(code);
    }
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("forkidle CKR_OK %ld\n", (long)pid);
}

static CK_RV do_initpin(const char *so, const char *pin)
{
    CK_SESSION_HANDLE s;
    CK_RV rv;

    rv = fl->C_OpenSession(SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                           NULL, &s);
    if (rv != CKR_OK)
        return rv;
    rv = fl->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so, strlen(so));
    if (rv == CKR_OK) {
        rv = fl->C_InitPIN(s, (CK_UTF8CHAR_PTR)pin, strlen(pin));
        fl->C_Logout(s);
    }
    fl->C_CloseSession(s);
    return rv;
}

/* The tally of one result per session of the set, printed as
 * "CMD FIRST n ok=K CKR_x=M ...". */
struct tally {
    CK_RV rv[SET_MAX];
};

static void tally_print(const char *cmd, const struct tally *t)
{
    CK_RV first = CKR_OK;
    unsigned long ok = 0;

    for (size_t i = 0; i < nset; i++) {
        if (t->rv[i] == CKR_OK)
            ok++;
        else if (first == CKR_OK)
            first = t->rv[i];
    }
    printf("%s %s %zu ok=%lu", cmd, rv_name(first), nset, ok);
    for (size_t i = 0; i < nset; i++) {
        bool seen = false;
        unsigned long k = 0;

        if (t->rv[i] == CKR_OK)
            continue;
        for (size_t j = 0; j < i; j++)
            seen = seen || t->rv[j] == t->rv[i];
        if (seen)
            continue;
        for (size_t j = i; j < nset; j++)
            k += t->rv[j] == t->rv[i];
        printf(" %s=%lu", rv_name(t->rv[i]), k);
    }
    printf("\n");
}

static CK_RV do_opens(unsigned long n)
{
    CK_RV rv = CKR_OK;

    for (unsigned long i = 0; i < n && rv == CKR_OK; i++) {
        if (nset == SET_MAX)
            return CKR_ARGUMENTS_BAD;
        rv = fl->C_OpenSession(SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                               NULL, &sset[nset]);
        if (rv == CKR_OK)
            nset++;
    }
    return rv;
}

static void do_signall(const char *label)
{
    struct tally t;

    for (size_t i = 0; i < nset; i++)
        t.rv[i] = do_sign(sset[i], label);
    tally_print("signall", &t);
}

static void do_updall(const char *label)
{
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_OBJECT_HANDLE priv;
    struct tally t;

    for (size_t i = 0; i < nset; i++) {
        t.rv[i] = app_find_one(fl, sset[i], CKO_PRIVATE_KEY, label, &priv);
        if (t.rv[i] == CKR_OK)
            t.rv[i] = fl->C_SignInit(sset[i], &m, priv);
        if (t.rv[i] == CKR_OK)
            t.rv[i] = fl->C_SignUpdate(sset[i], (CK_BYTE_PTR) "part one", 8);
    }
    tally_print("updall", &t);
}

static void do_updall2(void)
{
    CK_BYTE sig[128];
    CK_ULONG siglen;
    struct tally t;

    for (size_t i = 0; i < nset; i++) {
        siglen = sizeof(sig);
        t.rv[i] = fl->C_SignUpdate(sset[i], (CK_BYTE_PTR) "part two", 8);
        if (t.rv[i] == CKR_OK)
            t.rv[i] = fl->C_SignFinal(sset[i], sig, &siglen);
    }
    tally_print("updall2", &t);
}

static void do_stateall(void)
{
    unsigned long count[8] = {0};
    CK_SESSION_INFO si;
    CK_RV rv = CKR_OK;

    for (size_t i = 0; i < nset; i++) {
        CK_RV r = fl->C_GetSessionInfo(sset[i], &si);

        if (r != CKR_OK) {
            rv = r;
            continue;
        }
        if (si.state < 8)
            count[si.state]++;
    }
    printf("stateall %s %zu", rv_name(rv), nset);
    for (int s = 0; s < 8; s++)
        if (count[s] > 0)
            printf(" st%d=%lu", s, count[s]);
    printf("\n");
}

static CK_RV sobj_in(CK_SESSION_HANDLE s, const char *val, CK_OBJECT_HANDLE *h)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_VALUE, (void *)val, strlen(val)},
    };

    return fl->C_CreateObject(s, t, 3, h);
}

static CK_RV value_of(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, char *out,
                      size_t room)
{
    CK_ATTRIBUTE a = {CKA_VALUE, out, room - 1};
    CK_RV rv = fl->C_GetAttributeValue(s, h, &a, 1);

    out[rv == CKR_OK && a.ulValueLen < room ? a.ulValueLen : 0] = '\0';
    return rv;
}

static CK_RV do_xsobj(void)
{
    CK_OBJECT_HANDLE h0, h1;
    char v[32];
    CK_RV rv;

    if (nset < 2)
        return CKR_ARGUMENTS_BAD;
    if ((rv = sobj_in(sset[0], "zero", &h0)) != CKR_OK ||
        (rv = sobj_in(sset[1], "one", &h1)) != CKR_OK)
        return rv;
    if (h0 == h1 || value_of(sset[0], h0, v, sizeof(v)) != CKR_OK ||
        strcmp(v, "zero") != 0 ||
        value_of(sset[1], h1, v, sizeof(v)) != CKR_OK || strcmp(v, "one") != 0)
        return CKR_FUNCTION_FAILED;
    return value_of(sset[1], h0, v, sizeof(v));
}

static CK_RV do_state(CK_STATE *state)
{
    CK_SESSION_INFO si;
    CK_RV rv = fl->C_GetSessionInfo(cur, &si);

    *state = rv == CKR_OK ? si.state : (CK_STATE)-1;
    return rv;
}

int main(void)
{
    char line[512];

    fl = modload("rclient");
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        char *argv[4] = {NULL, NULL, NULL, NULL};
        int argc = 0;
        CK_RV rv = CKR_OK;

        for (char *w = strtok(line, " \t\r\n"); w != NULL && argc < 4;
             w = strtok(NULL, " \t\r\n"))
            argv[argc++] = w;
        if (argc == 0)
            continue;
#define IS(s, n) (strcmp(argv[0], s) == 0 && argc == (n) + 1)
        if (IS("quit", 0)) {
            break;
        } else if (IS("init", 0)) {
            rv = fl->C_Initialize(NULL);
        } else if (IS("finalize", 0)) {
            rv = fl->C_Finalize(NULL);
        } else if (IS("inittoken", 1)) {
            CK_UTF8CHAR label[32];

            memset(label, ' ', sizeof(label));
            memcpy(label, "remote", 6);
            rv = fl->C_InitToken(SLOT, (CK_UTF8CHAR_PTR)argv[1],
                                 strlen(argv[1]), label);
        } else if (IS("initpin", 2)) {
            rv = do_initpin(argv[1], argv[2]);
        } else if (IS("open", 0)) {
            rv = fl->C_OpenSession(SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                   NULL, NULL, &cur);
            printf("open %s %lu\n", rv_name(rv), (unsigned long)cur);
            continue;
        } else if (IS("close", 0)) {
            rv = fl->C_CloseSession(cur);
        } else if (IS("save", 0)) {
            saved = cur;
        } else if (IS("restore", 0)) {
            cur = saved;
        } else if (IS("login", 1)) {
            rv = fl->C_Login(cur, CKU_USER, (CK_UTF8CHAR_PTR)argv[1],
                             strlen(argv[1]));
        } else if (IS("loginuser", 2)) {
            rv = fl->C_LoginUser(cur, CKU_USER, (CK_UTF8CHAR_PTR)argv[2],
                                 strlen(argv[2]), (CK_UTF8CHAR_PTR)argv[1],
                                 strlen(argv[1]));
        } else if (IS("logout", 0)) {
            rv = fl->C_Logout(cur);
        } else if (IS("state", 0)) {
            CK_STATE st;

            rv = do_state(&st);
            printf("state %s %ld\n", rv_name(rv), (long)st);
            continue;
        } else if (IS("genec", 1)) {
            rv = do_genec(argv[1]);
        } else if (IS("aes", 2)) {
            rv = do_aes(argv[1], argv[2]);
        } else if (IS("sobj", 1)) {
            rv = do_sobj(argv[1]);
        } else if (IS("count", 1)) {
            CK_ULONG n;

            rv = do_count(argv[1], &n);
            printf("count %s %lu\n", rv_name(rv), n);
            continue;
        } else if (IS("destroy", 1)) {
            rv = do_destroy(argv[1]);
        } else if (IS("ecb0", 1)) {
            char hex[33];

            rv = do_ecb0(argv[1], hex);
            printf("ecb0 %s %s\n", rv_name(rv), hex);
            continue;
        } else if (IS("sign", 1)) {
            rv = do_sign(cur, argv[1]);
        } else if (IS("msg", 0)) {
            rv = do_msg();
        } else if (IS("bulk", 1)) {
            rv = do_bulk((size_t)strtoul(argv[1], NULL, 10));
        } else if (IS("mechs", 0)) {
            rv = do_mechs();
            if (rv == CKR_OK)
                continue;
        } else if (IS("threads", 2)) {
            rv = do_threads(atoi(argv[1]), argv[2]);
        } else if (IS("signwatch", 2)) {
            do_signwatch((unsigned)strtoul(argv[1], NULL, 10), argv[2]);
            continue;
        } else if (IS("signfor", 2)) {
            do_signfor((unsigned)strtoul(argv[1], NULL, 10), argv[2]);
            continue;
        } else if (IS("opens", 1)) {
            rv = do_opens(strtoul(argv[1], NULL, 10));
        } else if (IS("signall", 1)) {
            do_signall(argv[1]);
            continue;
        } else if (IS("updall", 1)) {
            do_updall(argv[1]);
            continue;
        } else if (IS("updall2", 0)) {
            do_updall2();
            continue;
        } else if (IS("stateall", 0)) {
            do_stateall();
            continue;
        } else if (IS("xsobj", 0)) {
            rv = do_xsobj();
        } else if (IS("setpin", 2)) {
            rv = fl->C_SetPIN(cur, (CK_UTF8CHAR_PTR)argv[1], strlen(argv[1]),
                              (CK_UTF8CHAR_PTR)argv[2], strlen(argv[2]));
        } else if (IS("forkidle", 3)) {
            do_forkidle(argv[1], argv[2], argv[3]);
            continue;
        } else if (IS("fork", 2)) {
            do_fork(argv[1], argv[2]);
            continue;
        } else {
            printf("%s usage\n", argv[0]);
            continue;
        }
        printf("%s %s\n", argv[0], rv_name(rv));
    }
    return 0;
}
