/*
 * test_authdata.c - nimbus-mgmt's authdata file (src/mgmt/authdata.c) and
 * the strict base64 under it (common/util.c): every file of
 * tests/fuzz/authdata-corpus named valid-* is read, every bad-* refused
 * with a reason; what is read is what the file says.
 */
#include "config.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "mgmt/authdata.h"

static struct mgmt_authdata ad;

static void test_b64(void **state)
{
    static const struct {
        const char *text;
        const char *bytes;
        size_t n;
    } good[] = {{"", "", 0},
                {"Zg==", "f", 1},
                {"Zm8=", "fo", 2},
                {"Zm9v", "foo", 3},
                {"Zm9vYg==", "foob", 4},
                {"Zm9vYmE=", "fooba", 5},
                {"Zm9vYmFy", "foobar", 6}};
    static const char *bad[] = {"Zg=",    "Zg",   "Zh==",     "Zm9=",
                                "Z===",   "=Zg=", "Zg==Zg==", "Zm 9",
                                "Zm9v\n", "Zm-_", "Zg=a"};
    uint8_t out[16];
    char enc[16];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(util_b64_decode(good[i].text, strlen(good[i].text), out,
                                    sizeof(out), &n));
        assert_int_equal(n, good[i].n);
        assert_memory_equal(out, good[i].bytes, n);
        util_b64_encode((const uint8_t *)good[i].bytes, good[i].n, enc);
        assert_string_equal(enc, good[i].text);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(
            util_b64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n));
    /* one byte too many for the room given */
    assert_false(util_b64_decode("Zm9v", 4, out, 2, &n));
}

static size_t read_file(const char *path, char *buf, size_t max)
{
    FILE *fp = fopen(path, "rb");
    size_t n;

    assert_non_null(fp);
    n = fread(buf, 1, max, fp);
    fclose(fp);
    return n;
}

static void test_corpus(void **state)
{
    const char *top = getenv("NIMBUS_TOP_SRCDIR");
    char dir[512], path[1024], err[256];
    static char buf[MGMT_AUTHDATA_MAX + 2];
    struct dirent *e;
    int valid = 0, bad = 0;
    DIR *d;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/tests/fuzz/authdata-corpus",
             top != NULL ? top : ".");
    d = opendir(dir);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t n;
        bool ok;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        n = read_file(path, buf, sizeof(buf));
        ok = mgmt_authdata_parse(buf, n, &ad, err, sizeof(err));
        if (strncmp(e->d_name, "valid-", 6) == 0) {
            if (!ok)
                fail_msg("%s refused: %s", e->d_name, err);
            valid++;
        } else {
            if (ok)
                fail_msg("%s accepted", e->d_name);
            assert_true(strncmp(err, "line ", 5) == 0);
            bad++;
        }
    }
    closedir(d);
    assert_true(valid >= 5);
    assert_true(bad >= 20);
}

/* What is read is what the file says; the writer's output reads back. */
static void test_values(void **state)
{
    static const char text[] =
        "{\"Version\":\"1.0\",\"PublicKey\":\"a\\nb\\u0041\",\"Data\":["
        "{\"HsmId\":\"s1\",\"Digest\":"
        "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
        "\"Signature\":\"AQID\"}]}";
    char err[256], *out = NULL;
    size_t outlen = 0;
    FILE *fp;

    (void)state;
    assert_true(mgmt_authdata_parse(text, strlen(text), &ad, err, sizeof(err)));
    assert_string_equal(ad.pubkey, "a\nbA");
    assert_int_equal(ad.pubkey_len, 4);
    assert_int_equal(ad.n, 1);
    assert_string_equal(ad.data[0].hsm_id, "s1");
    for (int i = 0; i < HSM_DIGEST_LEN; i++)
        assert_int_equal(ad.data[0].digest[i], i);
    assert_int_equal(ad.data[0].sig_len, 3);
    assert_memory_equal(ad.data[0].sig, "\1\2\3", 3);
    assert_non_null(mgmt_authdata_find(&ad, "s1"));
    assert_null(mgmt_authdata_find(&ad, "s2"));

    fp = open_memstream(&out, &outlen);
    assert_non_null(fp);
    assert_int_equal(mgmt_authdata_write(fp, &ad), 0);
    fclose(fp);
    assert_true(mgmt_authdata_parse(out, outlen, &ad, err, sizeof(err)));
    assert_string_equal(ad.pubkey, "a\nbA");
    assert_int_equal(ad.data[0].sig_len, 0); /* written unsigned */
    free(out);

    /* over the size limit, however well formed */
    {
        char *big = malloc(MGMT_AUTHDATA_MAX + 1);

        assert_non_null(big);
        memset(big, ' ', MGMT_AUTHDATA_MAX + 1);
        memcpy(big, text, strlen(text));
        assert_false(mgmt_authdata_parse(big, MGMT_AUTHDATA_MAX + 1, &ad, err,
                                         sizeof(err)));
        assert_true(
            mgmt_authdata_parse(big, MGMT_AUTHDATA_MAX, &ad, err, sizeof(err)));
        free(big);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64),
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_values),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
