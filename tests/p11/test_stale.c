/*
 * test_stale.c - logins that outlive their user, CKA_ALWAYS_AUTHENTICATE
 * and context-specific login, secrets in memory after logout, and the
 * key generation / logout race.
 */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "p11util.h"

#define ALICE_PIN "alice:" P11_ALICE_PW

static int setup_alice(void **state)
{
    (void)state;
    p11_fresh(NULL);
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    return 0;
}

/* The configuration switch this group's rules answer to is accepted. */
static void test_stale_config(void **state)
{
    (void)state;
    assert_rv(p11_fresh_rv("login_failure_limit = 5\n"), CKR_OK);
}

/* ------------------------------------------------ keygen vs logout race */

/* Until this many keys are made, or this many calls are tried. */
#define RACE_KEYS 150
#define RACE_CALLS 100000
#define RACE_LABEL "race"

struct race {
    CK_SESSION_HANDLE gen_s, login_s;
    volatile int done;
    unsigned long ok, other;
    CK_RV odd; /* the first code that is neither OK nor not-logged-in */
};

static void *race_generate(void *arg)
{
    struct race *r = arg;
    CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
    CK_BBOOL yes = CK_TRUE;
    CK_ULONG len = 16;
    CK_ATTRIBUTE t[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {CKA_LABEL, RACE_LABEL, sizeof(RACE_LABEL) - 1},
    };

    for (int i = 0; i < RACE_CALLS && r->ok < RACE_KEYS; i++) {
        CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
        CK_RV rv = p11->C_GenerateKey(r->gen_s, &m, t, 4, &h);

        if (rv == CKR_OK) {
            r->ok++;
        } else if (rv != CKR_USER_NOT_LOGGED_IN) {
            if (r->other++ == 0)
                r->odd = rv;
        }
    }
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *race_relogin(void *arg)
{
    struct race *r = arg;

    while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE)) {
        (void)p11->C_Logout(r->login_s);
        (void)p11_login(r->login_s, CKU_USER, ALICE_PIN);
        usleep(2000); /* let some generations finish while logged in */
    }
    return NULL;
}

/*
 * One thread generates token keys while another logs the application out
 * and in: every key stored was reported CKR_OK, every failure is
 * CKR_USER_NOT_LOGGED_IN and stored nothing.
 */
static void test_keygen_logout_race(void **state)
{
    struct race r;
    pthread_t a, b;
    CK_ULONG stored;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.gen_s = p11_open_rw();
    r.login_s = p11_open_rw();
    p11_login_cu(r.login_s, "alice", P11_ALICE_PW);
    assert_int_equal(pthread_create(&a, NULL, race_generate, &r), 0);
    assert_int_equal(pthread_create(&b, NULL, race_relogin, &r), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    (void)p11->C_Logout(r.login_s);
    p11_login_cu(r.login_s, "alice", P11_ALICE_PW);
    stored = p11_count_label(r.login_s, RACE_LABEL);
    print_message("race: %lu ok, %lu other (first %s), %lu stored\n", r.ok,
                  r.other, p11_rv_name(r.odd), (unsigned long)stored);
    assert_int_equal(r.other, 0);
    assert_int_equal(stored, r.ok);
}

/* ------------------------------------------------ always authenticate */

static const CK_BYTE oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                   0xce, 0x3d, 0x03, 0x01, 0x07};
static const CK_BYTE msg[] = "always authenticate";

/* A session EC P-256 pair; the private key's CKA_ALWAYS_AUTHENTICATE as
 * given. */
static void gen_ec_auth(CK_SESSION_HANDLE s, CK_BBOOL always,
                        CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE tpub[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)},
        {CKA_VERIFY, &yes, sizeof(yes)},
    };
    CK_ATTRIBUTE tpriv[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_ALWAYS_AUTHENTICATE, &always, sizeof(always)},
    };

    assert_rv(p11->C_GenerateKeyPair(s, &m, tpub, 3, tpriv, 4, pub, priv),
              CKR_OK);
}

static CK_RV ctx_login(CK_SESSION_HANDLE s, const char *pin)
{
    return p11_login(s, CKU_CONTEXT_SPECIFIC, pin);
}

static CK_RV sign_once(CK_SESSION_HANDLE s, CK_BYTE *sig, CK_ULONG *siglen)
{
    return p11->C_Sign(s, (CK_BYTE_PTR)msg, sizeof(msg), sig, siglen);
}

static void verify_ok(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
                      const CK_BYTE *sig, CK_ULONG siglen)
{
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};

    assert_rv(p11->C_VerifyInit(s, &m, pub), CKR_OK);
    assert_rv(p11->C_Verify(s, (CK_BYTE_PTR)msg, sizeof(msg), (CK_BYTE_PTR)sig,
                            siglen),
              CKR_OK);
}

/*
 * A signature with a CKA_ALWAYS_AUTHENTICATE key needs C_Login(
 * CKU_CONTEXT_SPECIFIC) after each C_SignInit; without it the calls using
 * the key answer CKR_USER_NOT_LOGGED_IN. The PIN is "name:password" or
 * the bare password; one login serves one operation (one-shot or
 * multi-part) only.
 */
static void test_always_auth_sign(void **state)
{
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_OBJECT_HANDLE pub, priv;
    CK_BYTE sig[128];
    CK_ULONG siglen = sizeof(sig);
    CK_SESSION_HANDLE s;

    (void)state;
    s = p11_open_rw();
    p11_login_cu(s, "alice", P11_ALICE_PW);
    gen_ec_auth(s, CK_TRUE, &pub, &priv);
    assert_int_equal(p11_get_bool(s, priv, CKA_ALWAYS_AUTHENTICATE), CK_TRUE);

    /* No context login: refused, and the operation is over. */
    assert_rv(p11->C_SignInit(s, &m, priv), CKR_OK);
    assert_rv(sign_once(s, sig, &siglen), CKR_USER_NOT_LOGGED_IN);
    assert_rv(sign_once(s, sig, &siglen), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11->C_SignInit(s, &m, priv), CKR_OK);
    assert_rv(p11->C_SignUpdate(s, (CK_BYTE_PTR)msg, sizeof(msg)),
              CKR_USER_NOT_LOGGED_IN);

    /* name:password, then a one-shot signature that verifies. */
    assert_rv(p11->C_SignInit(s, &m, priv), CKR_OK);
    assert_rv(ctx_login(s, ALICE_PIN), CKR_OK);
    siglen = sizeof(sig);
    assert_rv(sign_once(s, sig, &siglen), CKR_OK);
    verify_ok(s, pub, sig, siglen);

    /* Once per operation: the next one needs it again. */
    assert_rv(p11->C_SignInit(s, &m, priv), CKR_OK);
    siglen = sizeof(sig);
    assert_rv(sign_once(s, sig, &siglen), CKR_USER_NOT_LOGGED_IN);

    /* The bare password, a length query and a multi-part operation. */
    assert_rv(p11->C_SignInit(s, &m, priv), CKR_OK);
    assert_rv(ctx_login(s, P11_ALICE_PW), CKR_OK);
    assert_rv(p11->C_SignUpdate(s, (CK_BYTE_PTR)msg, sizeof(msg)), CKR_OK);
    siglen = 0;
    assert_rv(p11->C_SignFinal(s, NULL, &siglen), CKR_OK);
    assert_true(siglen > 0 && siglen <= sizeof(sig));
    assert_rv(p11->C_SignFinal(s, sig, &siglen), CKR_OK);
    verify_ok(s, pub, sig, siglen);
    assert_rv(p11->C_SignInit(s, &m, priv), CKR_OK);
    assert_rv(p11->C_SignUpdate(s, (CK_BYTE_PTR)msg, sizeof(msg)),
              CKR_USER_NOT_LOGGED_IN);
}

/* The same rule for decryption with an RSA key. */
static void test_always_auth_decrypt(void **state)
{
    CK_MECHANISM gm = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = 2048;
    CK_BYTE e[] = {0x01, 0x00, 0x01};
    CK_ATTRIBUTE tpub[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_MODULUS_BITS, &bits, sizeof(bits)},
        {CKA_PUBLIC_EXPONENT, e, sizeof(e)},
    };
    CK_ATTRIBUTE tpriv[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
        {CKA_ALWAYS_AUTHENTICATE, &yes, sizeof(yes)},
    };
    CK_OBJECT_HANDLE pub, priv;
    CK_BYTE ct[256], pt[256];
    CK_ULONG ctlen = sizeof(ct), ptlen = sizeof(pt);
    CK_SESSION_HANDLE s;

    (void)state;
    s = p11_open_rw();
    p11_login_cu(s, "alice", P11_ALICE_PW);
    assert_rv(p11->C_GenerateKeyPair(s, &gm, tpub, 4, tpriv, 3, &pub, &priv),
              CKR_OK);
    assert_rv(p11->C_EncryptInit(s, &m, pub), CKR_OK);
    assert_rv(p11->C_Encrypt(s, (CK_BYTE_PTR)msg, sizeof(msg), ct, &ctlen),
              CKR_OK);

    assert_rv(p11->C_DecryptInit(s, &m, priv), CKR_OK);
    assert_rv(p11->C_Decrypt(s, ct, ctlen, pt, &ptlen), CKR_USER_NOT_LOGGED_IN);
    assert_rv(p11->C_DecryptInit(s, &m, priv), CKR_OK);
    assert_rv(ctx_login(s, ALICE_PIN), CKR_OK);
    ptlen = sizeof(pt);
    assert_rv(p11->C_Decrypt(s, ct, ctlen, pt, &ptlen), CKR_OK);
    assert_int_equal(ptlen, sizeof(msg));
    assert_memory_equal(pt, msg, sizeof(msg));
    assert_rv(p11->C_DecryptInit(s, &m, priv), CKR_OK);
    ptlen = sizeof(pt);
    assert_rv(p11->C_Decrypt(s, ct, ctlen, pt, &ptlen), CKR_USER_NOT_LOGGED_IN);
}

/*
 * A wrong password is CKR_PIN_INCORRECT, leaves the operation waiting and
 * counts toward lockout; another user's PIN never serves; the failure
 * that locks the user answers CKR_PIN_LOCKED and logs it out.
 */
static void test_context_login_wrong_pin(void **state)
{
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_OBJECT_HANDLE pub, priv;
    CK_BYTE sig[128];
    CK_ULONG siglen = sizeof(sig);
    CK_SESSION_HANDLE s;
    CK_TOKEN_INFO ti;

    (void)state;
    p11_create_cu("bob", P11_BOB_PW);
    s = p11_open_rw();
    p11_login_cu(s, "alice", P11_ALICE_PW);
    gen_ec_auth(s, CK_TRUE, &pub, &priv);
    assert_rv(p11->C_SignInit(s, &m, priv), CKR_OK);
    assert_rv(ctx_login(s, "alice:wrongpass"), CKR_PIN_INCORRECT);
    p11_token_info(&ti);
    assert_true(ti.flags & CKF_USER_PIN_COUNT_LOW);
    assert_rv(ctx_login(s, "bob:" P11_BOB_PW), CKR_PIN_INCORRECT);
    /* Still waiting: the right PIN now serves. */
    assert_rv(ctx_login(s, ALICE_PIN), CKR_OK);
    assert_rv(sign_once(s, sig, &siglen), CKR_OK);
    verify_ok(s, pub, sig, siglen);
    p11_token_info(&ti);
    assert_false(ti.flags & CKF_USER_PIN_COUNT_LOW);

    /* Five wrong ones (the limit): the fifth locks and logs out. */
    assert_rv(p11->C_SignInit(s, &m, priv), CKR_OK);
    for (int i = 0; i < 4; i++)
        assert_rv(ctx_login(s, "wrongpass"), CKR_PIN_INCORRECT);
    assert_rv(ctx_login(s, "wrongpass"), CKR_PIN_LOCKED);
    assert_int_equal(p11_session_state(s), CKS_RW_PUBLIC_SESSION);
    siglen = sizeof(sig);
    assert_rv(sign_once(s, sig, &siglen), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(p11_login(s, CKU_USER, ALICE_PIN), CKR_PIN_LOCKED);
}

/*
 * With no operation, in a public session, or with an operation whose key
 * does not have the flag: CKR_OPERATION_NOT_INITIALIZED, and that
 * operation goes on unaffected.
 */
static void test_context_login_not_needed(void **state)
{
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_OBJECT_HANDLE pub, priv;
    CK_BYTE sig[128];
    CK_ULONG siglen = sizeof(sig);
    CK_SESSION_HANDLE s;
    CK_TOKEN_INFO ti;

    (void)state;
    s = p11_open_rw();
    assert_rv(ctx_login(s, ALICE_PIN), CKR_OPERATION_NOT_INITIALIZED);
    assert_int_equal(p11_session_state(s), CKS_RW_PUBLIC_SESSION);
    p11_login_cu(s, "alice", P11_ALICE_PW);
    assert_rv(ctx_login(s, ALICE_PIN), CKR_OPERATION_NOT_INITIALIZED);
    gen_ec_auth(s, CK_FALSE, &pub, &priv);
    assert_rv(p11->C_SignInit(s, &m, priv), CKR_OK);
    assert_rv(ctx_login(s, ALICE_PIN), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(ctx_login(s, "alice:wrongpass"), CKR_OPERATION_NOT_INITIALIZED);
    assert_rv(sign_once(s, sig, &siglen), CKR_OK);
    verify_ok(s, pub, sig, siglen);
    /* No password was tried: no failure counted. */
    p11_token_info(&ti);
    assert_false(ti.flags & CKF_USER_PIN_COUNT_LOW);
}

/* In a forked child (another application on the same store): the CO
 * resets alice's password. */
static void co_resets_alice_elsewhere(const char *newpin)
{
    int status;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        CK_SESSION_HANDLE s;
        int bad = p11->C_Initialize(NULL) != CKR_OK ||
                  p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                     NULL, NULL, &s) != CKR_OK ||
                  p11_login(s, CKU_SO, P11_SO_PW) != CKR_OK ||
                  p11_init_pin(s, newpin) != CKR_OK;

        p11->C_Finalize(NULL);
        _exit(bad);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * A login that another process's password reset has ended: the next call
 * that needs the role answers CKR_USER_NOT_LOGGED_IN and the session is
 * public; an operation begun under it is never continued under the next
 * login, even of the same user.
 */
static void test_stale_login_same_process_view(void **state)
{
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_OBJECT_HANDLE pub, priv;
    CK_BYTE sig[128];
    CK_ULONG siglen = sizeof(sig);
    CK_SESSION_HANDLE s, s2;
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE data[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
    };
    CK_OBJECT_HANDLE obj;

    (void)state;
    s = p11_open_rw();
    s2 = p11_open_rw();
    p11_login_cu(s, "alice", P11_ALICE_PW);
    gen_ec_auth(s, CK_FALSE, &pub, &priv);
    assert_rv(p11->C_SignInit(s2, &m, priv), CKR_OK);
    co_resets_alice_elsewhere("alice:newpass1");
    assert_int_equal(p11_session_state(s), CKS_RW_USER_FUNCTIONS);
    /* Found at the next call that reads the store. */
    assert_rv(p11->C_CreateObject(s, data, 2, &obj), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(p11_session_state(s), CKS_RW_PUBLIC_SESSION);
    assert_rv(p11_login(s, CKU_USER, ALICE_PIN), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_USER, "alice:newpass1"), CKR_OK);
    assert_rv(sign_once(s2, sig, &siglen), CKR_USER_NOT_LOGGED_IN);
    assert_rv(sign_once(s2, sig, &siglen), CKR_OPERATION_NOT_INITIALIZED);
}

/* ------------------------------------------------ secrets in memory */

/*
 * The needles: the store's master key and an AES key value, each in one
 * buffer of the test only (filled at run time, so that no other copy sits
 * in the program's data). A hit at these addresses is the test's own.
 */
static CK_BYTE needle_mk[32];
static CK_BYTE needle_key[16];

#define SCAN_CHUNK (1u << 20)
#define SCAN_MAP_MAX (1ul << 30)
static unsigned char *scan_buf; /* the reader's buffer: not scanned */

struct hit {
    uintptr_t addr;
    int which; /* 0: master key, 1: key value */
};

struct scan {
    struct hit hits[64];
    size_t n;
};

static bool own_copy(uintptr_t a)
{
    return (a >= (uintptr_t)needle_mk &&
            a < (uintptr_t)needle_mk + sizeof(needle_mk)) ||
           (a >= (uintptr_t)needle_key &&
            a < (uintptr_t)needle_key + sizeof(needle_key)) ||
           (a >= (uintptr_t)scan_buf && a < (uintptr_t)scan_buf + SCAN_CHUNK);
}

static void scan_region(int memfd, uintptr_t lo, uintptr_t hi, struct scan *sc)
{
    const CK_BYTE *needles[2] = {needle_mk, needle_key};
    const size_t lens[2] = {sizeof(needle_mk), sizeof(needle_key)};
    const size_t overlap = 32;

    for (uintptr_t a = lo; a < hi;) {
        size_t want = hi - a > SCAN_CHUNK ? SCAN_CHUNK : (size_t)(hi - a);
        ssize_t got = pread(memfd, scan_buf, want, (off_t)a);

        if (got <= 0)
            return; /* not readable after all ([vvar] and the like) */
        for (int w = 0; w < 2; w++) {
            for (size_t i = 0; i + lens[w] <= (size_t)got; i++) {
                if (scan_buf[i] == needles[w][0] &&
                    memcmp(scan_buf + i, needles[w], lens[w]) == 0 &&
                    !own_copy(a + i) && sc->n < 64) {
                    sc->hits[sc->n].addr = a + i;
                    sc->hits[sc->n].which = w;
                    sc->n++;
                }
            }
        }
        if ((size_t)got < want || (uintptr_t)got <= overlap)
            a += (uintptr_t)got;
        else
            a += (uintptr_t)got - overlap; /* a needle across chunks */
    }
}

/* Scans every readable mapping of process pid (0: this one). */
static void scan_process(pid_t pid, struct scan *sc)
{
    char path[64], line[512];
    FILE *maps;
    int memfd;

    memset(sc, 0, sizeof(*sc));
    if (pid == 0)
        snprintf(path, sizeof(path), "/proc/self/maps");
    else
        snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    maps = fopen(path, "r");
    assert_non_null(maps);
    snprintf(path, sizeof(path), pid == 0 ? "/proc/self/mem" : "/proc/%d/mem",
             (int)pid);
    memfd = open(path, O_RDONLY);
    assert_true(memfd >= 0);
    while (fgets(line, sizeof(line), maps) != NULL) {
        unsigned long lo, hi;
        char perms[8];

        /* Mappings of a gigabyte or more are the sanitizers' shadow
         * memory (reserved, never touched by the module). */
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 ||
            perms[0] != 'r' || strstr(line, "[vvar]") != NULL ||
            strstr(line, "[vsyscall]") != NULL || hi - lo >= SCAN_MAP_MAX)
            continue;
        scan_region(memfd, lo, hi, sc);
    }
    close(memfd);
    fclose(maps);
}

/* The VmFlags line of the mapping of this process holding addr. */
static bool vmflags_of(uintptr_t addr, char *flags, size_t len)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    bool in = false, found = false;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi;

        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') &&
            line[0] != 'V') {
            in = addr >= lo && addr < hi;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(flags, len, "%s", line + 8);
            found = true;
            break;
        }
    }
    fclose(f);
    return found;
}

static bool has_flag(const char *flags, const char *f)
{
    for (const char *p = flags; (p = strstr(p, f)) != NULL; p++) {
        if ((p == flags || p[-1] == ' ') &&
            (p[2] == ' ' || p[2] == '\n' || p[2] == '\0'))
            return true;
    }
    return false;
}

static void read_exact(const char *path, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, len), (ssize_t)len);
    close(fd);
}

static void print_hits(const char *what, const struct scan *sc)
{
    char flags[512];

    for (size_t i = 0; i < sc->n; i++) {
        flags[0] = '\0';
        vmflags_of(sc->hits[i].addr, flags, sizeof(flags));
        print_message("%s: %s at %#lx, VmFlags:%s", what,
                      sc->hits[i].which == 0 ? "master key" : "key value",
                      (unsigned long)sc->hits[i].addr, flags);
    }
}

/*
 * The master key and the values of keys in use live in memory marked
 * MADV_DONTDUMP and MADV_WIPEONFORK: a forked child holds neither (read
 * through /proc/PID/mem over all its readable mappings), and every copy
 * the logged-in process holds is in a mapping with the "dd" VmFlag. After
 * C_Logout no copy of the key value is left in the process.
 *
 * Not covered (OpenSSL's own heap): the key schedule of an operation in
 * progress or kept for the next init (EVP_CIPHER_CTX), and the bignums of
 * parsed RSA/EC private keys (EVP_PKEY). The session that used the key is
 * closed before the fork so that its kept context is gone.
 */
static void test_secrets_in_memory(void **state)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_VALUE, needle_key, sizeof(needle_key)},
    };
    CK_MECHANISM m = {CKM_AES_ECB, NULL, 0};
    CK_BYTE pt[16] = {0}, ct[16];
    CK_ULONG ctlen = sizeof(ct);
    CK_OBJECT_HANDLE key;
    CK_SESSION_HANDLE s1, s2;
    struct scan sc;
    char path[512], flags[512];
    bool mk_seen = false;
    int status;
    pid_t pid;

    (void)state;
    scan_buf = malloc(SCAN_CHUNK);
    assert_non_null(scan_buf);
    read_exact("/dev/urandom", needle_key, sizeof(needle_key));
    snprintf(path, sizeof(path), "%s/store/token0.key", p11_dir());
    read_exact(path, needle_mk, sizeof(needle_mk));

    s1 = p11_open_rw();
    s2 = p11_open_rw();
    p11_login_cu(s2, "alice", P11_ALICE_PW);
    assert_rv(p11->C_CreateObject(s1, t, 8, &key), CKR_OK);
    assert_rv(p11->C_EncryptInit(s1, &m, key), CKR_OK);
    assert_rv(p11->C_Encrypt(s1, pt, sizeof(pt), ct, &ctlen), CKR_OK);
    assert_rv(p11->C_CloseSession(s1), CKR_OK);

    if (p11_remote() != NULL) {
        /* nimbusd holds the keys: the master key never enters this
         * process, and no copy of the value it sent stays behind. */
        scan_process(0, &sc);
        print_hits("remote, after the session closed", &sc);
        assert_int_equal(sc.n, 0);
        free(scan_buf);
        scan_buf = NULL;
        return;
    }

    /* This process: every copy in a DONTDUMP mapping. */
    scan_process(0, &sc);
    print_hits("logged in", &sc);
    for (size_t i = 0; i < sc.n; i++) {
        assert_true(vmflags_of(sc.hits[i].addr, flags, sizeof(flags)));
        assert_true(has_flag(flags, "dd"));
        assert_true(has_flag(flags, "wf"));
        mk_seen |= sc.hits[i].which == 0;
    }
    assert_true(mk_seen); /* the scan does find what is there */

    /* A forked child: nothing. */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        raise(SIGSTOP);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
    assert_true(WIFSTOPPED(status));
    scan_process(pid, &sc);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    print_hits("child", &sc);
    assert_int_equal(sc.n, 0);

    /* After logout: no copy of the key value in this process. */
    assert_rv(p11->C_Logout(s2), CKR_OK);
    scan_process(0, &sc);
    print_hits("logged out", &sc);
    for (size_t i = 0; i < sc.n; i++)
        assert_int_equal(sc.hits[i].which, 0);

    free(scan_buf);
    scan_buf = NULL;
}

int p11_group_stale(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, p11_setup, p11_teardown)
#define A(f) cmocka_unit_test_setup_teardown(f, setup_alice, p11_teardown)
    const struct CMUnitTest tests[] = {
        T(test_stale_config),
        A(test_keygen_logout_race),
        A(test_always_auth_sign),
        A(test_always_auth_decrypt),
        A(test_context_login_wrong_pin),
        A(test_context_login_not_needed),
        A(test_secrets_in_memory),
        A(test_stale_login_same_process_view),
    };
#undef A
#undef T

    return cmocka_run_group_tests_name("stale logins and always-authenticate",
                                       tests, NULL, NULL);
}
