/*
 * test_backup.c - the cluster backup file (src/hsm/backup.c
 * hsm_backup_make, hsm_backup_open) without a cluster: made from a store
 * snapshot under a key, it opens under that key and domain to the same
 * header and image; it shows no name or key byte; another domain, another
 * key, any changed byte, a cut, a header that does not describe its image
 * and sizes over the limits are refused with hsm_restore's codes.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hsm/crypto/crypto.h"
#include "hsm/internal.h"
#include "src/hsm/backup.pb-c.h"

#define NAME "backup_officer"
#define LABEL "the-label-of-a-key"

static const uint8_t key1[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const uint8_t key2[32] = {2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static uint8_t blob[48]; /* the object's (fake) sealed attributes */

struct fx {
    char dir[64];
    uint8_t *snap, *snap2; /* two images: one object, two objects */
    size_t snaplen, snap2len;
};

/* The snapshot's mask: the blob as it is (the test looks for it). */
static CK_RV same(void *ctx, uint64_t oid, uint64_t version, const uint8_t *in,
                  size_t len, uint8_t **out, size_t *outlen)
{
    (void)ctx;
    (void)oid;
    (void)version;
    *out = malloc(len);
    if (*out == NULL)
        return CKR_HOST_MEMORY;
    memcpy(*out, in, len);
    *outlen = len;
    return CKR_OK;
}

static void add_object(store_t *st, uint32_t owner)
{
    store_object_t o;
    uint64_t oid = 0;

    memset(&o, 0, sizeof(o));
    o.owner = owner;
    o.cls = CKO_SECRET_KEY;
    o.label = (uint8_t *)LABEL;
    o.label_len = strlen(LABEL);
    o.attrs = blob;
    o.attrs_len = sizeof(blob);
    assert_int_equal(store_begin(st, true), CKR_OK);
    assert_int_equal(store_object_insert(st, &o, &oid), CKR_OK);
    assert_int_equal(store_commit(st), CKR_OK);
}

static int setup(void **state)
{
    struct store_journal j = {.mask = same};
    struct fx *f = calloc(1, sizeof(*f));
    store_t *st = NULL;
    char db[128];
    uint32_t uid = 0;
    bool created = false;

    if (f == NULL || crypto_init() != CKR_OK)
        return -1;
    for (size_t i = 0; i < sizeof(blob); i++)
        blob[i] = (uint8_t)(0xa0 + i);
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-bak-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(db, sizeof(db), "%s/store.db", f->dir);
    assert_int_equal(store_open(db, &st, &created), CKR_OK);
    assert_int_equal(store_begin(st, true), CKR_OK);
    assert_int_equal(
        store_user_insert(st, 0, NAME, 3, (const uint8_t *)"ver", 3, &uid),
        CKR_OK);
    assert_int_equal(store_commit(st), CKR_OK);
    add_object(st, uid);
    assert_int_equal(store_snapshot(st, &j, &f->snap, &f->snaplen), CKR_OK);
    add_object(st, uid);
    assert_int_equal(store_snapshot(st, &j, &f->snap2, &f->snap2len), CKR_OK);
    store_close(st);
    unlink(db);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    free(f->snap);
    free(f->snap2);
    rmdir(f->dir);
    free(f);
    return 0;
}

static bool has(const uint8_t *b, size_t n, const void *w, size_t wn)
{
    for (size_t i = 0; i + wn <= n; i++)
        if (memcmp(b + i, w, wn) == 0)
            return true;
    return false;
}

static CK_RV open_(const uint8_t *k, const char *domain, const uint8_t *file,
                   size_t len, hsm_backup_info_t *info)
{
    uint8_t *snap = NULL;
    size_t snaplen = 0;
    CK_RV rv = hsm_backup_open(k, domain, file, len, info, &snap, &snaplen);

    assert_true(rv == CKR_OK ? snap != NULL : snap == NULL);
    free(snap);
    return rv;
}

static void test_round_trip(void **state)
{
    struct fx *f = *state;
    hsm_backup_info_t made, got;
    uint8_t *file = NULL, *snap = NULL;
    size_t len = 0, snaplen = 0;

    assert_int_equal(hsm_backup_make(key1, "dom-1", "src-1", 1234, f->snap,
                                     f->snaplen, &file, &len, &made),
                     CKR_OK);
    assert_string_equal(made.domain, "dom-1");
    assert_string_equal(made.source, "src-1");
    assert_int_equal(made.time, 1234);
    assert_int_equal(made.users, 1);
    assert_int_equal(made.objects, 1);
    /* sealed whole: no name, label or key byte (the image holds them) */
    assert_true(has(f->snap, f->snaplen, NAME, strlen(NAME)));
    assert_true(has(f->snap, f->snaplen, blob, sizeof(blob)));
    assert_false(has(file, len, NAME, strlen(NAME)));
    assert_false(has(file, len, LABEL, strlen(LABEL)));
    assert_false(has(file, len, blob, 16));
    assert_int_equal(
        hsm_backup_open(key1, "dom-1", file, len, &got, &snap, &snaplen),
        CKR_OK);
    assert_memory_equal(&got, &made, sizeof(got));
    assert_int_equal(snaplen, f->snaplen);
    assert_memory_equal(snap, f->snap, snaplen);
    free(snap);
    /* another key domain; the same domain under another key */
    assert_int_equal(open_(key1, "dom-2", file, len, &got), CKR_DATA_INVALID);
    assert_int_equal(open_(key2, "dom-1", file, len, &got),
                     CKR_ENCRYPTED_DATA_INVALID);
    free(file);
}

/* Every byte of the header region and a sample of the rest, flipped; cuts
 * at many lengths: never opened. */
static void test_changed_bytes(void **state)
{
    struct fx *f = *state;
    hsm_backup_info_t info;
    uint8_t *file = NULL, *bad;
    size_t len = 0;

    assert_int_equal(hsm_backup_make(key1, "dom-1", "src-1", 1, f->snap,
                                     f->snaplen, &file, &len, &info),
                     CKR_OK);
    bad = malloc(len);
    assert_non_null(bad);
    for (size_t i = 0; i < len; i += i < 256 ? 1 : 397) {
        CK_RV rv;

        memcpy(bad, file, len);
        bad[i] ^= 0x20;
        rv = open_(key1, "dom-1", bad, len, &info);
        if (rv != CKR_DATA_INVALID && rv != CKR_ENCRYPTED_DATA_INVALID)
            fail_msg("byte %zu flipped: 0x%lx", i, (unsigned long)rv);
    }
    for (size_t n = 0; n < len; n += n < 256 ? 1 : 4099)
        assert_int_not_equal(open_(key1, "dom-1", file, n, &info), CKR_OK);
    free(bad);
    free(file);
}

/* A header sealed with an image it does not describe (only a holder of
 * the key makes one): refused before anything reaches the log. */
static void test_header_lies(void **state)
{
    struct fx *f = *state;
    Nimbus__Backup__File *a;
    Nimbus__Backup__File out = NIMBUS__BACKUP__FILE__INIT;
    hsm_backup_info_t info;
    uint8_t *file = NULL, *sealed = NULL, *ad, *buf;
    size_t len = 0, sealedlen = 0, adlen, n;

    assert_int_equal(hsm_backup_make(key1, "dom-1", "src-1", 1, f->snap,
                                     f->snaplen, &file, &len, &info),
                     CKR_OK);
    a = nimbus__backup__file__unpack(NULL, len, file);
    assert_non_null(a);
    /* the associated data as backup.c binds it */
    adlen = sizeof("nimbus-backup-v1") + a->header.len;
    ad = malloc(adlen);
    assert_non_null(ad);
    memcpy(ad, "nimbus-backup-v1", sizeof("nimbus-backup-v1"));
    memcpy(ad + sizeof("nimbus-backup-v1"), a->header.data, a->header.len);
    assert_int_equal(crypto_seal(key1, ad, adlen, f->snap2, f->snap2len,
                                 &sealed, &sealedlen),
                     CKR_OK);
    out.format = a->format;
    out.header = a->header;
    out.sealed.data = sealed;
    out.sealed.len = sealedlen;
    n = nimbus__backup__file__get_packed_size(&out);
    buf = malloc(n);
    assert_non_null(buf);
    nimbus__backup__file__pack(&out, buf);
    /* the seal holds: only the image's own counts give it away */
    assert_int_equal(open_(key1, "dom-1", buf, n, &info), CKR_DATA_INVALID);
    free(buf);
    free(ad);
    free(sealed);
    nimbus__backup__file__free_unpacked(a, NULL);
    free(file);
}

static void test_sizes(void **state)
{
    struct fx *f = *state;
    hsm_backup_info_t info;
    uint8_t *big = calloc(1, HSM_BACKUP_FILE_MAX + 1), *file = NULL;
    size_t len = 0;

    (void)f;
    assert_non_null(big);
    /* a state no log entry carries back is not backed up */
    assert_int_equal(hsm_backup_make(key1, "dom-1", "src-1", 1, big,
                                     HSM_BACKUP_SNAPSHOT_MAX + 1, &file, &len,
                                     &info),
                     CKR_DATA_LEN_RANGE);
    assert_null(file);
    assert_int_equal(open_(key1, "dom-1", big, HSM_BACKUP_FILE_MAX + 1, &info),
                     CKR_DATA_LEN_RANGE);
    assert_int_equal(open_(key1, "dom-1", big, 0, &info), CKR_DATA_INVALID);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_lies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
