/*
 * test_crypto.c - unit tests of src/hsm/crypto: init/fini, random, SHA-256,
 * password verifiers, sealing (including the Wycheproof AES-GCM vectors that
 * fit the sealed layout) and the master key file.
 *
 * The test may use OpenSSL directly (only to compute reference values).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <dirent.h>

#include <openssl/evp.h>

#include "common/log.h"
#include "hsm/crypto/crypto.h"

#define TEST_ITER 1000UL
#define TEST_SEAL_MAX (16UL * 1024 * 1024)
#define TEST_JSON_MAX (8UL * 1024 * 1024)
#define TEST_JSON_DEPTH 32

static int setup(void **state)
{
    (void)state;
    return crypto_init() == CKR_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    crypto_fini();
    return 0;
}

static void fill_pattern(uint8_t *p, size_t len, uint8_t seed)
{
    size_t i;

    for (i = 0; i < len; i++) {
        p[i] = (uint8_t)(seed + i * 7);
    }
}

static void hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char d[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes len hex characters into a new buffer (never NULL on success). */
static bool hex_decode(const char *s, size_t len, uint8_t **out, size_t *outlen)
{
    uint8_t *buf;
    size_t i;

    if (len % 2 != 0) {
        return false;
    }
    buf = malloc(len / 2 + 1);
    if (buf == NULL) {
        return false;
    }
    for (i = 0; i < len / 2; i++) {
        int hi = hex_nibble(s[2 * i]);
        int lo = hex_nibble(s[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            free(buf);
            return false;
        }
        buf[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = buf;
    *outlen = len / 2;
    return true;
}

/* ------------------------------------------------------------ lifecycle */

static void test_init_fini(void **state)
{
    uint8_t buf[16], md[32];

    (void)state;
    /* Nested references: the context survives the inner fini. */
    assert_int_equal(crypto_init(), CKR_OK);
    assert_int_equal(crypto_init(), CKR_OK);
    crypto_fini();
    assert_int_equal(crypto_random(buf, sizeof(buf)), CKR_OK);
    crypto_fini();
    /* Everything freed; a new context comes up and works. */
    assert_int_equal(crypto_init(), CKR_OK);
    assert_int_equal(crypto_random(buf, sizeof(buf)), CKR_OK);
    crypto_fini();
    assert_int_equal(crypto_init(), CKR_OK);
    assert_int_equal(crypto_sha256(buf, sizeof(buf), md), CKR_OK);
    crypto_fini();
}

/*
 * Threads that each take and drop their own reference while sealing.
 *
 * OpenSSL 3.0 keeps a context's DRBGs per thread and frees another live
 * thread's ones only when that thread exits; a context freed while such a
 * thread lives leaks its DRBG (the thread's exit handler for the context is
 * deregistered with it). So the sealing workers run while the test holds a
 * reference, as every caller of the core does (the module and nimbusd free
 * the context at C_Finalize / exit); the second phase takes the count
 * through 0 and 1 from every thread at once with work that has no per-thread
 * state.
 */
static void *thread_worker(void *arg)
{
    uint8_t key[CRYPTO_MASTER_KEY_LEN];
    uint8_t msg[100];
    uint8_t *sealed = NULL, *opened = NULL;
    size_t slen = 0, olen = 0;
    uintptr_t bad = 0;
    int i;

    fill_pattern(key, sizeof(key), (uint8_t)(uintptr_t)arg);
    fill_pattern(msg, sizeof(msg), 3);
    for (i = 0; i < 50 && bad == 0; i++) {
        if (crypto_init() != CKR_OK) {
            bad = 1;
            break;
        }
        if (crypto_seal(key, msg, 4, msg, sizeof(msg), &sealed, &slen) !=
                CKR_OK ||
            crypto_unseal(key, msg, 4, sealed, slen, &opened, &olen) !=
                CKR_OK ||
            olen != sizeof(msg) || memcmp(opened, msg, olen) != 0) {
            bad = 1;
        }
        free(sealed);
        crypto_secret_free(opened);
        sealed = NULL;
        opened = NULL;
        crypto_fini();
    }
    return (void *)bad;
}

static void *thread_refs(void *arg)
{
    static const uint8_t abc[3] = {'a', 'b', 'c'};
    static const uint8_t want[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    uint8_t md[32];
    uintptr_t bad = 0;
    int i;

    (void)arg;
    for (i = 0; i < 200 && bad == 0; i++) {
        if (crypto_init() != CKR_OK) {
            bad = 1;
            break;
        }
        if (crypto_sha256(abc, sizeof(abc), md) != CKR_OK ||
            memcmp(md, want, sizeof(md)) != 0) {
            bad = 1;
        }
        crypto_fini();
    }
    return (void *)bad;
}

static void run_threads(void *(*fn)(void *))
{
    pthread_t th[4];
    void *res;
    size_t i;

    for (i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, fn, (void *)(i + 1)),
                         0);
    }
    for (i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], &res), 0);
        assert_null(res);
    }
}

static void test_threads(void **state)
{
    (void)state;
    assert_int_equal(crypto_init(), CKR_OK);
    run_threads(thread_worker);
    crypto_fini();
    run_threads(thread_refs);
}

/*
 * After fork the child's random stream must not repeat the parent's, and a
 * child that drops the inherited reference can initialize again.
 */
static void test_fork(void **state)
{
    uint8_t mine[32], theirs[64], zero[32] = {0};
    int fds[2], status = 0;
    size_t got = 0;
    ssize_t r;
    pid_t pid;

    (void)state;
    assert_int_equal(crypto_init(), CKR_OK);
    assert_int_equal(crypto_random(mine, sizeof(mine)), CKR_OK);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t out[64];
        int bad = 0;

        close(fds[0]);
        bad |= crypto_random(out, 32) != CKR_OK;
        crypto_fini();
        bad |= crypto_init() != CKR_OK;
        bad |= crypto_random(out + 32, 32) != CKR_OK;
        crypto_fini();
        if (bad == 0 && write(fds[1], out, sizeof(out)) == sizeof(out)) {
            _exit(0);
        }
        _exit(1);
    }
    close(fds[1]);
    while (got < sizeof(theirs)) {
        r = read(fds[0], theirs + got, sizeof(theirs) - got);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(got, sizeof(theirs));
    assert_int_equal(crypto_random(mine, sizeof(mine)), CKR_OK);
    assert_memory_not_equal(mine, theirs, 32);
    assert_memory_not_equal(mine, theirs + 32, 32);
    assert_memory_not_equal(theirs, theirs + 32, 32);
    assert_memory_not_equal(theirs, zero, 32);
    crypto_fini();
}

/* ------------------------------------------------------- random, digest */

static void test_random(void **state)
{
    uint8_t a[32], b[32], zero[32] = {0};

    (void)state;
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    assert_int_equal(crypto_random(a, sizeof(a)), CKR_OK);
    assert_int_equal(crypto_random(b, sizeof(b)), CKR_OK);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_int_equal(crypto_random(NULL, 0), CKR_OK);
    {
        /* More than one DRBG request (65,536 bytes): every part filled. */
        size_t n = 3 * 65536 + 100;
        uint8_t *big = calloc(1, n);

        assert_non_null(big);
        assert_int_equal(crypto_random(big, n), CKR_OK);
        for (size_t off = 0; off + sizeof(zero) <= n; off += 65536) {
            assert_memory_not_equal(big + off, zero, sizeof(zero));
        }
        assert_memory_not_equal(big + n - sizeof(zero), zero, sizeof(zero));
        free(big);
    }
}

static void test_sha256(void **state)
{
    /* FIPS 180-2 appendix B.1 ("abc") and the empty message. */
    static const uint8_t abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
    };
    static const uint8_t empty[32] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
        0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
        0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
    };
    uint8_t out[32];

    (void)state;
    assert_int_equal(crypto_sha256((const uint8_t *)"abc", 3, out), CKR_OK);
    assert_memory_equal(out, abc, sizeof(out));
    assert_int_equal(crypto_sha256(NULL, 0, out), CKR_OK);
    assert_memory_equal(out, empty, sizeof(out));
}

/* ------------------------------------------------------------ passwords */

/* Builds "pbkdf2-sha256$<iter>$<salt>$<hash>" with OpenSSL's own
 * PKCS5_PBKDF2_HMAC as the reference. */
static void reference_verifier(const char *pw, const uint8_t salt[16],
                               unsigned long iter, char *out, size_t outlen)
{
    uint8_t hash[32];
    char salthex[33], hashhex[65];

    assert_int_equal(PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, 16, (int)iter,
                                       EVP_sha256(), sizeof(hash), hash),
                     1);
    hex_encode(salt, 16, salthex);
    hex_encode(hash, 32, hashhex);
    assert_true(snprintf(out, outlen, "pbkdf2-sha256$%lu$%s$%s", iter, salthex,
                         hashhex) < (int)outlen);
}

static void test_pbkdf2_reference(void **state)
{
    /* RFC 7914 section 11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1,
     * dkLen=64. Checks that the reference used below is itself right. */
    static const uint8_t rfc7914[64] = {
        0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f, 0xec, 0x16, 0x91,
        0xc2, 0x25, 0x44, 0xb6, 0x05, 0xf9, 0x41, 0x85, 0x21, 0x6d, 0xde,
        0x04, 0x65, 0xe6, 0x8b, 0x9d, 0x57, 0xc2, 0x0d, 0xac, 0xbc, 0x49,
        0xca, 0x9c, 0xcc, 0xf1, 0x79, 0xb6, 0x45, 0x99, 0x16, 0x64, 0xb3,
        0x9d, 0x77, 0xef, 0x31, 0x7c, 0x71, 0xb8, 0x45, 0xb1, 0xe3, 0x0b,
        0xd5, 0x09, 0x11, 0x20, 0x41, 0xd3, 0xa1, 0x97, 0x83,
    };
    static const uint8_t salt[16] = {
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
        0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    };
    uint8_t dk[64];
    char ver[200];
    bool ok = false;

    (void)state;
    assert_int_equal(PKCS5_PBKDF2_HMAC("passwd", 6,
                                       (const unsigned char *)"salt", 4, 1,
                                       EVP_sha256(), sizeof(dk), dk),
                     1);
    assert_memory_equal(dk, rfc7914, sizeof(dk));

    reference_verifier("correct horse", salt, TEST_ITER, ver, sizeof(ver));
    assert_int_equal(crypto_pw_check((const uint8_t *)ver, strlen(ver),
                                     (const uint8_t *)"correct horse", 13, &ok),
                     CKR_OK);
    assert_true(ok);
    ok = true;
    assert_int_equal(crypto_pw_check((const uint8_t *)ver, strlen(ver),
                                     (const uint8_t *)"correct horsf", 13, &ok),
                     CKR_OK);
    assert_false(ok);
    ok = true;
    assert_int_equal(crypto_pw_check((const uint8_t *)ver, strlen(ver),
                                     (const uint8_t *)"correct hors", 12, &ok),
                     CKR_OK);
    assert_false(ok);
}

static void test_pw_roundtrip(void **state)
{
    const char *pw = "s3cret-Passw0rd";
    uint8_t *v1 = NULL, *v2 = NULL;
    size_t l1 = 0, l2 = 0;
    char expect[200], salthex[33];
    uint8_t salt[16];
    static uint8_t sentinel;
    bool ok = false;
    size_t i;

    (void)state;
    assert_int_equal(
        crypto_pw_make((const uint8_t *)pw, strlen(pw), TEST_ITER, &v1, &l1),
        CKR_OK);
    assert_non_null(v1);
    /* "pbkdf2-sha256$1000$" + 32 + "$" + 64 */
    assert_int_equal(l1, 14 + 5 + 32 + 1 + 64);
    assert_memory_equal(v1, "pbkdf2-sha256$1000$", 19);
    assert_null(memchr(v1, '\0', l1));

    /* Independent check of the hash with the salt make chose. */
    memcpy(salthex, v1 + 19, 32);
    salthex[32] = '\0';
    for (i = 0; i < 16; i++) {
        salt[i] = (uint8_t)(hex_nibble(salthex[2 * i]) << 4 |
                            hex_nibble(salthex[2 * i + 1]));
    }
    reference_verifier(pw, salt, TEST_ITER, expect, sizeof(expect));
    assert_int_equal(strlen(expect), l1);
    assert_memory_equal(v1, expect, l1);

    assert_int_equal(
        crypto_pw_check(v1, l1, (const uint8_t *)pw, strlen(pw), &ok), CKR_OK);
    assert_true(ok);
    assert_int_equal(crypto_pw_check(v1, l1, (const uint8_t *)"s3cret-Passw0rD",
                                     strlen(pw), &ok),
                     CKR_OK);
    assert_false(ok);
    assert_int_equal(crypto_pw_check(v1, l1, NULL, 0, &ok), CKR_OK);
    assert_false(ok);

    /* A fresh salt every time. */
    assert_int_equal(
        crypto_pw_make((const uint8_t *)pw, strlen(pw), TEST_ITER, &v2, &l2),
        CKR_OK);
    assert_int_equal(l1, l2);
    assert_memory_not_equal(v1, v2, l1);
    free(v1);
    free(v2);

    /* Empty password works too; iteration limits are enforced. */
    assert_int_equal(crypto_pw_make(NULL, 0, 1234, &v1, &l1), CKR_OK);
    assert_int_equal(crypto_pw_check(v1, l1, NULL, 0, &ok), CKR_OK);
    assert_true(ok);
    free(v1);
    v1 = &sentinel;
    assert_int_equal(
        crypto_pw_make((const uint8_t *)pw, strlen(pw), 999, &v1, &l1),
        CKR_ARGUMENTS_BAD);
    assert_null(v1);

    /* The dummy derivation runs and returns (nothing to observe but it
     * must not crash on odd input). */
    crypto_pw_dummy((const uint8_t *)pw, strlen(pw), TEST_ITER);
    crypto_pw_dummy(NULL, 0, 0);
}

static void test_pw_malformed(void **state)
{
    static const char good_tail[] =
        "$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const char *pw = "password1";
    char good[200];
    char buf[300];
    bool ok;
    size_t i;
    /* Each is a small edit of a well-formed verifier. */
    static const char *const bad[] = {
        "",
        "pbkdf2-sha256$",
        "pbkdf2-sha1$1000$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "PBKDF2-SHA256$1000$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        /* short salt */
        "pbkdf2-sha256$1000$00112233445566778899aabbccddee$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        /* long salt */
        "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff00$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        /* non-hex in salt, in hash, upper case */
        "pbkdf2-sha256$1000$0011223344556677889gaabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdex",
        "pbkdf2-sha256$1000$00112233445566778899AABBCCDDEEFF$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        /* iterations: 0, below minimum, above maximum, leading zero, sign,
         * missing, not a number */
        "pbkdf2-sha256$0$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "pbkdf2-sha256$999$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "pbkdf2-sha256$100000001$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "pbkdf2-sha256$18446744073709552616$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "pbkdf2-sha256$01000$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "pbkdf2-sha256$+1000$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "pbkdf2-sha256$$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "pbkdf2-sha256$1e4$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        /* trailing junk, truncated hash, missing separator, extra field */
        "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
        "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
        "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
        "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff$$"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
        "pbkdf2-sha256$1000$00112233445566778899aabbccddeeff",
    };

    (void)state;
    /* The well-formed base parses (and simply does not match). */
    snprintf(good, sizeof(good), "pbkdf2-sha256$1000%s", good_tail);
    ok = true;
    assert_int_equal(crypto_pw_check((const uint8_t *)good, strlen(good),
                                     (const uint8_t *)pw, strlen(pw), &ok),
                     CKR_OK);
    assert_false(ok);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok = true;
        if (crypto_pw_check((const uint8_t *)bad[i], strlen(bad[i]),
                            (const uint8_t *)pw, strlen(pw),
                            &ok) != CKR_GENERAL_ERROR) {
            fail_msg("malformed verifier %zu accepted: \"%s\"", i, bad[i]);
        }
        assert_false(ok);
    }

    /* Every strict prefix of a well-formed verifier is malformed. */
    for (i = 0; i < strlen(good); i++) {
        assert_int_equal(crypto_pw_check((const uint8_t *)good, i,
                                         (const uint8_t *)pw, strlen(pw), &ok),
                         CKR_GENERAL_ERROR);
    }
    /* An embedded NUL is not skipped over. */
    memcpy(buf, good, strlen(good) + 1);
    buf[30] = '\0';
    assert_int_equal(crypto_pw_check((const uint8_t *)buf, strlen(good),
                                     (const uint8_t *)pw, strlen(pw), &ok),
                     CKR_GENERAL_ERROR);
    /* A verifier far too long is refused before anything else. */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, good, strlen(good));
    assert_int_equal(crypto_pw_check((const uint8_t *)buf, sizeof(buf),
                                     (const uint8_t *)pw, strlen(pw), &ok),
                     CKR_GENERAL_ERROR);
}

/* ---------------------------------------------------------------- seal */

static void test_seal_roundtrip(void **state)
{
    static const size_t sizes[] = {0, 1, 1000};
    uint8_t key[CRYPTO_MASTER_KEY_LEN];
    uint8_t msg[1000];
    const uint8_t ad[] = "object 42 / CKA_VALUE";
    uint8_t *s1 = NULL, *s2 = NULL, *o = NULL;
    size_t l1, l2, ol, i;

    (void)state;
    assert_int_equal(crypto_random(key, sizeof(key)), CKR_OK);
    fill_pattern(msg, sizeof(msg), 11);
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_int_equal(
            crypto_seal(key, ad, sizeof(ad), msg, sizes[i], &s1, &l1), CKR_OK);
        assert_int_equal(l1, sizes[i] + CRYPTO_SEAL_OVERHEAD);
        assert_int_equal(crypto_unseal(key, ad, sizeof(ad), s1, l1, &o, &ol),
                         CKR_OK);
        assert_non_null(o);
        assert_int_equal(ol, sizes[i]);
        if (ol > 0) {
            assert_memory_equal(o, msg, ol);
        }
        /* Same input sealed twice differs: fresh nonce. */
        assert_int_equal(
            crypto_seal(key, ad, sizeof(ad), msg, sizes[i], &s2, &l2), CKR_OK);
        assert_int_equal(l1, l2);
        assert_memory_not_equal(s1, s2, 12);
        assert_memory_not_equal(s1, s2, l1);
        free(s1);
        free(s2);
        crypto_wipe(o, ol);
        crypto_secret_free(o);
    }

    /* No associated data at all. */
    assert_int_equal(crypto_seal(key, NULL, 0, msg, 10, &s1, &l1), CKR_OK);
    assert_int_equal(crypto_unseal(key, NULL, 0, s1, l1, &o, &ol), CKR_OK);
    assert_int_equal(ol, 10);
    assert_memory_equal(o, msg, 10);
    crypto_secret_free(o);
    assert_int_equal(crypto_unseal(key, ad, 1, s1, l1, &o, &ol),
                     CKR_GENERAL_ERROR);
    assert_null(o);
    free(s1);
}

static void expect_unseal_fails(const uint8_t *key, const uint8_t *ad,
                                size_t adlen, const uint8_t *in, size_t inlen)
{
    static uint8_t sentinel;
    uint8_t *o = &sentinel;
    size_t ol = 99;

    assert_int_equal(crypto_unseal(key, ad, adlen, in, inlen, &o, &ol),
                     CKR_GENERAL_ERROR);
    assert_null(o);
    assert_int_equal(ol, 0);
}

static void test_seal_tamper(void **state)
{
    uint8_t key[CRYPTO_MASTER_KEY_LEN], key2[CRYPTO_MASTER_KEY_LEN];
    uint8_t msg[64];
    const uint8_t ad[] = {0, 0, 0, 7, 0, 0, 1, 0x11};
    const uint8_t ad2[] = {0, 0, 0, 8, 0, 0, 1, 0x11};
    uint8_t *s = NULL, *o = NULL;
    size_t sl, ol, i;
    /* nonce first and last byte, ciphertext, tag first and last byte */
    const size_t flip[] = {0, 11, 12, 12 + 33, 12 + 63, 12 + 64, 12 + 79};

    (void)state;
    assert_int_equal(crypto_random(key, sizeof(key)), CKR_OK);
    memcpy(key2, key, sizeof(key));
    key2[31] ^= 0x01;
    fill_pattern(msg, sizeof(msg), 5);
    assert_int_equal(
        crypto_seal(key, ad, sizeof(ad), msg, sizeof(msg), &s, &sl), CKR_OK);
    assert_int_equal(sl, sizeof(msg) + 28);

    expect_unseal_fails(key, ad2, sizeof(ad2), s, sl);
    expect_unseal_fails(key, ad, sizeof(ad) - 1, s, sl);
    expect_unseal_fails(key, NULL, 0, s, sl);
    expect_unseal_fails(key2, ad, sizeof(ad), s, sl);
    for (i = 0; i < sizeof(flip) / sizeof(flip[0]); i++) {
        s[flip[i]] ^= 0x80;
        expect_unseal_fails(key, ad, sizeof(ad), s, sl);
        s[flip[i]] ^= 0x80;
    }
    /* Truncated: one byte short, and below the minimum size. */
    expect_unseal_fails(key, ad, sizeof(ad), s, sl - 1);
    expect_unseal_fails(key, ad, sizeof(ad), s, 27);
    expect_unseal_fails(key, ad, sizeof(ad), s, 0);
    /* Restored input still opens. */
    assert_int_equal(crypto_unseal(key, ad, sizeof(ad), s, sl, &o, &ol),
                     CKR_OK);
    assert_int_equal(ol, sizeof(msg));
    assert_memory_equal(o, msg, ol);
    crypto_secret_free(o);
    free(s);
}

static void test_seal_limits(void **state)
{
    uint8_t key[CRYPTO_MASTER_KEY_LEN] = {1};
    uint8_t *big, *s = NULL, *o = NULL;
    size_t sl = 0, ol = 0;

    (void)state;
    big = calloc(1, TEST_SEAL_MAX + CRYPTO_SEAL_OVERHEAD + 1);
    assert_non_null(big);
    assert_int_equal(crypto_seal(key, NULL, 0, big, TEST_SEAL_MAX + 1, &s, &sl),
                     CKR_ARGUMENTS_BAD);
    assert_null(s);
    assert_int_equal(crypto_unseal(key, NULL, 0, big,
                                   TEST_SEAL_MAX + CRYPTO_SEAL_OVERHEAD + 1, &o,
                                   &ol),
                     CKR_ARGUMENTS_BAD);
    assert_null(o);
    /* Exactly the limit is fine. */
    assert_int_equal(crypto_seal(key, NULL, 0, big, TEST_SEAL_MAX, &s, &sl),
                     CKR_OK);
    assert_int_equal(sl, TEST_SEAL_MAX + CRYPTO_SEAL_OVERHEAD);
    assert_int_equal(crypto_unseal(key, NULL, 0, s, sl, &o, &ol), CKR_OK);
    assert_int_equal(ol, TEST_SEAL_MAX);
    assert_memory_equal(o, big, ol);
    crypto_secret_free(o);
    free(s);
    free(big);
}

/* ------------------------------------------------- Wycheproof AES-GCM */

/*
 * A minimal JSON scanner for the Wycheproof file layout: it walks the
 * whole document (so malformed JSON is noticed) and hands back raw string
 * contents; values we do not need are skipped.
 */
struct json {
    const char *s;
    size_t n;
    size_t i;
};

static void json_ws(struct json *j)
{
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\n' ||
                           j->s[j->i] == '\r' || j->s[j->i] == '\t')) {
        j->i++;
    }
}

/* Skips white space; true when the next character is c (not consumed). */
static bool json_peek(struct json *j, char c)
{
    json_ws(j);
    return j->i < j->n && j->s[j->i] == c;
}

static bool json_expect(struct json *j, char c)
{
    if (!json_peek(j, c)) {
        return false;
    }
    j->i++;
    return true;
}

/* A string; *str and *len get the raw contents (escapes left as they are),
 * *escaped tells whether any backslash occurred. */
static bool json_string(struct json *j, const char **str, size_t *len,
                        bool *escaped)
{
    size_t start;

    if (!json_expect(j, '"')) {
        return false;
    }
    start = j->i;
    *escaped = false;
    while (j->i < j->n && j->s[j->i] != '"') {
        if ((unsigned char)j->s[j->i] < 0x20) {
            return false;
        }
        if (j->s[j->i] == '\\') {
            *escaped = true;
            j->i++;
        }
        j->i++;
    }
    if (j->i >= j->n) {
        return false;
    }
    *str = j->s + start;
    *len = j->i - start;
    j->i++;
    return true;
}

static bool json_number(struct json *j, long *v)
{
    bool neg = false;
    long x = 0;
    size_t digits = 0;

    json_ws(j);
    if (j->i < j->n && j->s[j->i] == '-') {
        neg = true;
        j->i++;
    }
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
        if (x > (LONG_MAX - 9) / 10) {
            return false;
        }
        x = x * 10 + (j->s[j->i] - '0');
        digits++;
        j->i++;
    }
    /* Fractions and exponents do not occur in the fields we read. */
    if (digits == 0 ||
        (j->i < j->n &&
         (j->s[j->i] == '.' || j->s[j->i] == 'e' || j->s[j->i] == 'E'))) {
        return false;
    }
    *v = neg ? -x : x;
    return true;
}

static bool json_skip(struct json *j, int depth);

/* Calls back per member of an object; the callback must consume the
 * value. */
typedef bool (*json_member_fn)(struct json *j, const char *name, size_t namelen,
                               void *ctx, int depth);

static bool json_object(struct json *j, json_member_fn fn, void *ctx, int depth)
{
    const char *name;
    size_t namelen;
    bool esc;

    if (depth > TEST_JSON_DEPTH || !json_expect(j, '{')) {
        return false;
    }
    if (json_expect(j, '}')) {
        return true;
    }
    for (;;) {
        if (!json_string(j, &name, &namelen, &esc) || !json_expect(j, ':') ||
            !fn(j, name, namelen, ctx, depth + 1)) {
            return false;
        }
        if (json_expect(j, '}')) {
            return true;
        }
        if (!json_expect(j, ',')) {
            return false;
        }
    }
}

typedef bool (*json_elem_fn)(struct json *j, void *ctx, int depth);

static bool json_array(struct json *j, json_elem_fn fn, void *ctx, int depth)
{
    if (depth > TEST_JSON_DEPTH || !json_expect(j, '[')) {
        return false;
    }
    if (json_expect(j, ']')) {
        return true;
    }
    for (;;) {
        if (!fn(j, ctx, depth + 1)) {
            return false;
        }
        if (json_expect(j, ']')) {
            return true;
        }
        if (!json_expect(j, ',')) {
            return false;
        }
    }
}

static bool skip_member(struct json *j, const char *name, size_t namelen,
                        void *ctx, int depth)
{
    (void)name;
    (void)namelen;
    (void)ctx;
    return json_skip(j, depth);
}

static bool skip_elem(struct json *j, void *ctx, int depth)
{
    (void)ctx;
    return json_skip(j, depth);
}

static bool json_literal(struct json *j, const char *lit)
{
    size_t len = strlen(lit);

    if (j->n - j->i < len || memcmp(j->s + j->i, lit, len) != 0) {
        return false;
    }
    j->i += len;
    return true;
}

static bool json_skip(struct json *j, int depth)
{
    const char *s;
    size_t len;
    bool esc;
    long v;

    if (depth > TEST_JSON_DEPTH) {
        return false;
    }
    json_ws(j);
    if (j->i >= j->n) {
        return false;
    }
    switch (j->s[j->i]) {
    case '{':
        return json_object(j, skip_member, NULL, depth);
    case '[':
        return json_array(j, skip_elem, NULL, depth);
    case '"':
        return json_string(j, &s, &len, &esc);
    case 't':
        return json_literal(j, "true");
    case 'f':
        return json_literal(j, "false");
    case 'n':
        return json_literal(j, "null");
    default:
        return json_number(j, &v);
    }
}

static bool name_is(const char *name, size_t namelen, const char *want)
{
    return namelen == strlen(want) && memcmp(name, want, namelen) == 0;
}

struct slice {
    const char *s;
    size_t len;
    bool set;
};

struct gcm_case {
    long tcid;
    struct slice key, iv, aad, msg, ct, tag, result;
};

struct gcm_stats {
    unsigned long run, valid, invalid, acceptable, failed, groups;
};

static bool gcm_case_member(struct json *j, const char *name, size_t namelen,
                            void *ctx, int depth)
{
    struct gcm_case *c = ctx;
    struct slice *dst = NULL;
    bool esc;

    if (name_is(name, namelen, "tcId")) {
        return json_number(j, &c->tcid);
    }
    if (name_is(name, namelen, "key")) {
        dst = &c->key;
    } else if (name_is(name, namelen, "iv")) {
        dst = &c->iv;
    } else if (name_is(name, namelen, "aad")) {
        dst = &c->aad;
    } else if (name_is(name, namelen, "msg")) {
        dst = &c->msg;
    } else if (name_is(name, namelen, "ct")) {
        dst = &c->ct;
    } else if (name_is(name, namelen, "tag")) {
        dst = &c->tag;
    } else if (name_is(name, namelen, "result")) {
        dst = &c->result;
    } else {
        return json_skip(j, depth);
    }
    if (!json_string(j, &dst->s, &dst->len, &esc) || esc) {
        return false;
    }
    dst->set = true;
    return true;
}

/* Runs one test case through crypto_unseal; false only on a file that
 * does not look like the documented schema. */
static bool gcm_case_run(const struct gcm_case *c, struct gcm_stats *st)
{
    uint8_t *key = NULL, *iv = NULL, *aad = NULL, *msg = NULL, *ct = NULL;
    uint8_t *tag = NULL, *in = NULL, *out = NULL;
    size_t keyl, ivl, aadl, msgl, ctl, tagl, outl = 0;
    bool ok = false, pass;
    enum { VALID, INVALID, ACCEPTABLE } want;
    CK_RV rv;

    if (!c->key.set || !c->iv.set || !c->aad.set || !c->msg.set || !c->ct.set ||
        !c->tag.set || !c->result.set || c->tcid < 0) {
        print_error("wycheproof: incomplete test case (tcId %ld)\n", c->tcid);
        return false;
    }
    if (name_is(c->result.s, c->result.len, "valid")) {
        want = VALID;
    } else if (name_is(c->result.s, c->result.len, "invalid")) {
        want = INVALID;
    } else if (name_is(c->result.s, c->result.len, "acceptable")) {
        want = ACCEPTABLE;
    } else {
        print_error("wycheproof: tcId %ld: unknown result\n", c->tcid);
        return false;
    }
    if (!hex_decode(c->key.s, c->key.len, &key, &keyl) ||
        !hex_decode(c->iv.s, c->iv.len, &iv, &ivl) ||
        !hex_decode(c->aad.s, c->aad.len, &aad, &aadl) ||
        !hex_decode(c->msg.s, c->msg.len, &msg, &msgl) ||
        !hex_decode(c->ct.s, c->ct.len, &ct, &ctl) ||
        !hex_decode(c->tag.s, c->tag.len, &tag, &tagl) ||
        keyl != CRYPTO_MASTER_KEY_LEN || ivl != 12 || tagl != 16) {
        print_error("wycheproof: tcId %ld: bad field\n", c->tcid);
        goto out;
    }
    in = malloc(ivl + ctl + tagl);
    if (in == NULL) {
        goto out;
    }
    memcpy(in, iv, ivl);
    memcpy(in + ivl, ct, ctl);
    memcpy(in + ivl + ctl, tag, tagl);
    rv = crypto_unseal(key, aad, aadl, in, ivl + ctl + tagl, &out, &outl);
    st->run++;
    switch (want) {
    case VALID:
        st->valid++;
        pass = rv == CKR_OK && outl == msgl &&
               (msgl == 0 || memcmp(out, msg, msgl) == 0);
        break;
    case INVALID:
        st->invalid++;
        pass = rv == CKR_GENERAL_ERROR && out == NULL;
        break;
    default:
        st->acceptable++;
        pass = true;
        break;
    }
    if (!pass) {
        st->failed++;
        print_error("wycheproof aes_gcm tcId %ld: expected %s, got rv 0x%lx\n",
                    c->tcid, want == VALID ? "valid" : "invalid",
                    (unsigned long)rv);
    }
    ok = true;
out:
    free(key);
    free(iv);
    free(aad);
    free(msg);
    free(ct);
    free(tag);
    free(in);
    crypto_secret_free(out);
    return ok;
}

static bool gcm_case_elem(struct json *j, void *ctx, int depth)
{
    struct gcm_case c;

    memset(&c, 0, sizeof(c));
    c.tcid = -1;
    return json_object(j, gcm_case_member, &c, depth) && gcm_case_run(&c, ctx);
}

struct gcm_group {
    long key_size, iv_size, tag_size;
    size_t tests_at;
    bool has_tests;
};

static bool gcm_group_member(struct json *j, const char *name, size_t namelen,
                             void *ctx, int depth)
{
    struct gcm_group *g = ctx;

    if (name_is(name, namelen, "keySize")) {
        return json_number(j, &g->key_size);
    }
    if (name_is(name, namelen, "ivSize")) {
        return json_number(j, &g->iv_size);
    }
    if (name_is(name, namelen, "tagSize")) {
        return json_number(j, &g->tag_size);
    }
    if (name_is(name, namelen, "tests")) {
        /* Run later, once all group parameters are known whatever the
         * member order. */
        json_ws(j);
        g->tests_at = j->i;
        g->has_tests = true;
    }
    return json_skip(j, depth);
}

static bool gcm_group_elem(struct json *j, void *ctx, int depth)
{
    struct gcm_stats *st = ctx;
    struct gcm_group g = {-1, -1, -1, 0, false};
    struct json t;

    if (!json_object(j, gcm_group_member, &g, depth) || !g.has_tests) {
        return false;
    }
    /* Only what the sealed layout can carry: AES-256, 96-bit nonce,
     * 128-bit tag. */
    if (g.key_size != 256 || g.iv_size != 96 || g.tag_size != 128) {
        return true;
    }
    st->groups++;
    t = *j;
    t.i = g.tests_at;
    return json_array(&t, gcm_case_elem, st, depth + 1);
}

static bool gcm_top_member(struct json *j, const char *name, size_t namelen,
                           void *ctx, int depth)
{
    const char *s;
    size_t len;
    bool esc;

    if (name_is(name, namelen, "algorithm")) {
        return json_string(j, &s, &len, &esc) && name_is(s, len, "AES-GCM");
    }
    if (name_is(name, namelen, "testGroups")) {
        return json_array(j, gcm_group_elem, ctx, depth);
    }
    return json_skip(j, depth);
}

static char *read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t got;

    if (f == NULL) {
        return NULL;
    }
    buf = malloc(max + 1);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    got = fread(buf, 1, max + 1, f);
    fclose(f);
    if (got > max) {
        free(buf);
        return NULL;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

static void test_wycheproof_aes_gcm(void **state)
{
    const char *dir = getenv("NIMBUS_TESTVECTORS");
    char path[PATH_MAX];
    struct gcm_stats st;
    struct json j;
    char *doc;
    size_t len = 0;
    bool parsed;

    (void)state;
    if (dir == NULL || dir[0] == '\0') {
        dir = "../shared/testvectors";
    }
    assert_true(snprintf(path, sizeof(path), "%s/wycheproof/aes_gcm_test.json",
                         dir) < (int)sizeof(path));
    if (access(path, R_OK) != 0) {
        print_message("wycheproof vectors not found at %s: skipping\n", path);
        skip();
    }
    /* Initialized here, not in a setup: a skipped test gets no teardown
     * in cmocka 1.1, which would leak the library context. */
    assert_int_equal(crypto_init(), CKR_OK);
    doc = read_file(path, TEST_JSON_MAX, &len);
    assert_non_null(doc);

    memset(&st, 0, sizeof(st));
    j.s = doc;
    j.n = len;
    j.i = 0;
    parsed = json_object(&j, gcm_top_member, &st, 0);
    json_ws(&j);
    parsed = parsed && j.i == j.n;
    free(doc);
    if (!parsed) {
        fail_msg("%s: not the expected Wycheproof AEAD layout (offset %zu)",
                 path, j.i);
    }
    print_message("wycheproof aes_gcm: %lu vectors run (%lu valid, %lu "
                  "invalid, %lu acceptable) from %lu groups, %lu failed\n",
                  st.run, st.valid, st.invalid, st.acceptable, st.groups,
                  st.failed);
    crypto_fini();
    assert_true(st.run > 0);
    assert_true(st.valid > 0);
    assert_true(st.invalid > 0);
    assert_int_equal(st.failed, 0);
}

/* ---------------------------------------------------------- master key */

struct mk_dir {
    char dir[64];
    char path[128];
};

static void mk_dir_make(struct mk_dir *d)
{
    strcpy(d->dir, "/tmp/nimbus-test-crypto-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->path, sizeof(d->path), "%s/master.key", d->dir);
}

static void mk_dir_remove(struct mk_dir *d, const char *const *extra)
{
    char p[192];

    unlink(d->path);
    for (; extra != NULL && *extra != NULL; extra++) {
        snprintf(p, sizeof(p), "%s/%s", d->dir, *extra);
        if (unlink(p) != 0) {
            rmdir(p);
        }
    }
    assert_int_equal(rmdir(d->dir), 0);
}

static void write_bytes(const char *path, size_t len, mode_t mode)
{
    uint8_t buf[64];
    FILE *f;

    memset(buf, 0x5a, sizeof(buf));
    assert_true(len <= sizeof(buf));
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_master_key(void **state)
{
    static const char *const extra[] = {"link.key", "short.key", "dir.key",
                                        "fifo.key", "long.key",  NULL};
    uint8_t k1[CRYPTO_MASTER_KEY_LEN], k2[CRYPTO_MASTER_KEY_LEN];
    uint8_t zero[CRYPTO_MASTER_KEY_LEN] = {0};
    struct mk_dir d;
    struct stat st;
    char p[192];

    (void)state;
    mk_dir_make(&d);

    /* Missing and create=false. */
    assert_int_equal(crypto_master_key_load(d.path, false, k1),
                     CKR_DEVICE_ERROR);
    assert_int_equal(lstat(d.path, &st), -1);
    assert_int_equal(errno, ENOENT);

    /* Create: 0600, 32 bytes, ours; no temporary left behind. */
    memset(k1, 0, sizeof(k1));
    assert_int_equal(crypto_master_key_load(d.path, true, k1), CKR_OK);
    assert_memory_not_equal(k1, zero, sizeof(k1));
    assert_int_equal(lstat(d.path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, CRYPTO_MASTER_KEY_LEN);
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(st.st_nlink, 1);

    /* Load again, with and without create: the same key. */
    assert_int_equal(crypto_master_key_load(d.path, false, k2), CKR_OK);
    assert_memory_equal(k1, k2, sizeof(k1));
    memset(k2, 0, sizeof(k2));
    assert_int_equal(crypto_master_key_load(d.path, true, k2), CKR_OK);
    assert_memory_equal(k1, k2, sizeof(k1));

    /* Group/other bits: refused, and not "repaired" by create=true. */
    assert_int_equal(chmod(d.path, 0644), 0);
    assert_int_equal(crypto_master_key_load(d.path, false, k2),
                     CKR_DEVICE_ERROR);
    assert_int_equal(crypto_master_key_load(d.path, true, k2),
                     CKR_DEVICE_ERROR);
    assert_int_equal(chmod(d.path, 0640), 0);
    assert_int_equal(crypto_master_key_load(d.path, false, k2),
                     CKR_DEVICE_ERROR);
    assert_int_equal(chmod(d.path, 0400), 0);
    assert_int_equal(crypto_master_key_load(d.path, false, k2), CKR_OK);
    assert_memory_equal(k1, k2, sizeof(k1));
    assert_int_equal(chmod(d.path, 0600), 0);

    /* A symbolic link to a good key file is refused. */
    snprintf(p, sizeof(p), "%s/link.key", d.dir);
    assert_int_equal(symlink(d.path, p), 0);
    assert_int_equal(crypto_master_key_load(p, false, k2), CKR_DEVICE_ERROR);
    assert_int_equal(crypto_master_key_load(p, true, k2), CKR_DEVICE_ERROR);

    /* Wrong sizes. */
    snprintf(p, sizeof(p), "%s/short.key", d.dir);
    write_bytes(p, 31, 0600);
    assert_int_equal(crypto_master_key_load(p, false, k2), CKR_DEVICE_ERROR);
    assert_int_equal(crypto_master_key_load(p, true, k2), CKR_DEVICE_ERROR);
    snprintf(p, sizeof(p), "%s/long.key", d.dir);
    write_bytes(p, 33, 0600);
    assert_int_equal(crypto_master_key_load(p, false, k2), CKR_DEVICE_ERROR);
    /* An exact 32-byte file of ours is read as it is. */
    write_bytes(p, 32, 0600);
    assert_int_equal(crypto_master_key_load(p, false, k2), CKR_OK);
    assert_int_equal(k2[0], 0x5a);
    assert_int_equal(k2[31], 0x5a);

    /* Someone else's file (checkable only when we may chown). */
    if (geteuid() == 0) {
        assert_int_equal(chown(p, 1, (gid_t)-1), 0);
        assert_int_equal(crypto_master_key_load(p, false, k2),
                         CKR_DEVICE_ERROR);
    }

    /* Not a regular file: a directory, a FIFO (must not block). */
    snprintf(p, sizeof(p), "%s/dir.key", d.dir);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(crypto_master_key_load(p, true, k2), CKR_DEVICE_ERROR);
    snprintf(p, sizeof(p), "%s/fifo.key", d.dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    assert_int_equal(crypto_master_key_load(p, true, k2), CKR_DEVICE_ERROR);

    /* A missing directory cannot be created into. */
    snprintf(p, sizeof(p), "%s/nodir/master.key", d.dir);
    assert_int_equal(crypto_master_key_load(p, true, k2), CKR_DEVICE_ERROR);

    crypto_wipe(k1, sizeof(k1));
    crypto_wipe(k2, sizeof(k2));
    mk_dir_remove(&d, extra);
}

/* Several processes create the same key file at once: all end up with the
 * one key that is on disk, and no temporary file is left behind. */
static void test_master_key_race(void **state)
{
    enum { N = 8 };
    uint8_t keys[N][CRYPTO_MASTER_KEY_LEN], disk[CRYPTO_MASTER_KEY_LEN];
    int fds[N][2], status, entries = 0;
    pid_t pids[N];
    struct mk_dir d;
    struct dirent *de;
    DIR *dir;
    size_t i;

    (void)state;
    mk_dir_make(&d);
    for (i = 0; i < N; i++) {
        assert_int_equal(pipe(fds[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            uint8_t k[CRYPTO_MASTER_KEY_LEN];

            close(fds[i][0]);
            if (crypto_master_key_load(d.path, true, k) == CKR_OK &&
                write(fds[i][1], k, sizeof(k)) == sizeof(k)) {
                _exit(0);
            }
            _exit(1);
        }
        close(fds[i][1]);
    }
    for (i = 0; i < N; i++) {
        assert_int_equal(read(fds[i][0], keys[i], CRYPTO_MASTER_KEY_LEN),
                         CRYPTO_MASTER_KEY_LEN);
        close(fds[i][0]);
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(crypto_master_key_load(d.path, false, disk), CKR_OK);
    for (i = 0; i < N; i++) {
        assert_memory_equal(keys[i], disk, sizeof(disk));
    }
    dir = opendir(d.dir);
    assert_non_null(dir);
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            entries++;
        }
    }
    closedir(dir);
    assert_int_equal(entries, 1);
    mk_dir_remove(&d, NULL);
}

int main(void)
{
    const char *lvl = getenv("NIMBUS_TEST_LOG_LEVEL");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_fini),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_fork),
        cmocka_unit_test_setup_teardown(test_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sha256, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pbkdf2_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pw_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pw_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_limits, setup, teardown),
        cmocka_unit_test(test_wycheproof_aes_gcm),
        cmocka_unit_test_setup_teardown(test_master_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_master_key_race, setup, teardown),
    };

    /* Diagnostics on request, e.g. NIMBUS_TEST_LOG_LEVEL=debug. */
    if (lvl != NULL && util_log_level_parse(lvl) >= 0) {
        util_log_setup((enum log_level)util_log_level_parse(lvl), NULL);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
