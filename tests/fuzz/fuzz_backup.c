/*
 * fuzz_backup.c - libFuzzer target over the reader of a cluster backup
 * file (src/hsm/backup.c hsm_backup_open), with a fixed cluster key and
 * domain. Whatever the input, the reader must not crash or read outside
 * it, and must answer one of the codes hsm_restore documents for a file;
 * a file it opens must hold an image that is what its header says, and
 * made again from that image it must open again to the same header. The
 * corpus in tests/fuzz/backup-corpus is replayed by make check (replay.c).
 *
 * Built with FUZZ_BACKUP_SEEDS_MAIN, it writes that corpus's seeds
 * instead (`make tests/fuzz/fuzz_backup_seeds`, then
 * `./tests/fuzz/fuzz_backup_seeds DIR`): a backup of a small store under
 * the fixed key, and the same cut, with a changed byte in its header,
 * and of another key domain.
 */
#include "config.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hsm/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DOMAIN "fuzz-domain"

static const uint8_t ckey[32] = {
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
};

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_backup: %s\n", what);
        abort();
    }
}

static bool same_info(const hsm_backup_info_t *a, const hsm_backup_info_t *b)
{
    return strcmp(a->domain, b->domain) == 0 &&
           strcmp(a->source, b->source) == 0 && a->applied == b->applied &&
           a->time == b->time && a->users == b->users &&
           a->objects == b->objects &&
           memcmp(a->digest, b->digest, sizeof(a->digest)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hsm_backup_info_t info, again, made;
    uint8_t *snap = NULL, *snap2 = NULL, *file = NULL;
    size_t snaplen = 0, snaplen2 = 0, filelen = 0;
    static bool ready;
    CK_RV rv;

    if (!ready) {
        check(crypto_init() == CKR_OK, "crypto_init");
        ready = true;
    }
    rv = hsm_backup_open(ckey, DOMAIN, data, size, &info, &snap, &snaplen);
    if (rv != CKR_OK) {
        check(rv == CKR_DATA_INVALID || rv == CKR_DATA_LEN_RANGE ||
                  rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_HOST_MEMORY,
              "a code hsm_restore does not document");
        check(snap == NULL && snaplen == 0, "an image out of a refused file");
        return 0;
    }
    check(snap != NULL && snaplen > 0 &&
              snaplen <= HSM_BACKUP_SNAPSHOT_MAX,
          "the image's length");
    check(strcmp(info.domain, DOMAIN) == 0, "another domain opened");
    /* The round trip: the image sealed again opens to the same header. */
    check(hsm_backup_make(ckey, info.domain, info.source, info.time, snap,
                          snaplen, &file, &filelen, &made) == CKR_OK,
          "the opened image does not make a file");
    check(same_info(&made, &info), "the image is not what the header said");
    check(hsm_backup_open(ckey, DOMAIN, file, filelen, &again, &snap2,
                          &snaplen2) == CKR_OK,
          "a file made again does not open");
    check(same_info(&again, &info) && snaplen2 == snaplen &&
              memcmp(snap2, snap, snaplen) == 0,
          "round trip");
    free(snap);
    free(snap2);
    free(file);
    return 0;
}

#ifdef FUZZ_BACKUP_SEEDS_MAIN
/* ------------------------------------------------------------ seeds */

static CK_RV xmask(void *ctx, uint64_t oid, uint64_t version, const uint8_t *in,
                   size_t len, uint8_t **out, size_t *outlen)
{
    (void)ctx;
    (void)oid;
    (void)version;
    *out = malloc(len);
    if (*out == NULL)
        return CKR_HOST_MEMORY;
    for (size_t i = 0; i < len; i++)
        (*out)[i] = in[i] ^ 0x5a;
    *outlen = len;
    return CKR_OK;
}

static void write_seed(const char *dir, const char *name, const uint8_t *b,
                       size_t n)
{
    char p[PATH_MAX];
    FILE *fp;

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    fp = fopen(p, "wb");
    check(fp != NULL && fwrite(b, 1, n, fp) == n && fclose(fp) == 0,
          "write seed");
}

int main(int argc, char **argv)
{
    struct store_journal j = {.mask = xmask};
    hsm_backup_info_t info;
    store_object_t o;
    store_t *st = NULL;
    char path[] = "/tmp/nimbus-fuzz-backup-XXXXXX";
    char db[PATH_MAX];
    uint8_t blob[40], *snap = NULL, *file = NULL, *bad;
    size_t snaplen = 0, filelen = 0;
    uint32_t uid = 0;
    uint64_t oid = 0;
    bool created = false;

    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    check(crypto_init() == CKR_OK, "crypto_init");
    check(mkdtemp(path) != NULL, "mkdtemp");
    snprintf(db, sizeof(db), "%s/store.db", path);
    check(store_open(db, &st, &created) == CKR_OK, "store");
    memset(blob, 0x42, sizeof(blob));
    memset(&o, 0, sizeof(o));
    check(store_begin(st, true) == CKR_OK, "begin");
    check(store_user_insert(st, 0, "officer", 2, (const uint8_t *)"ver", 3,
                            &uid) == CKR_OK,
          "user");
    o.owner = uid;
    o.cls = 4;
    o.label = (uint8_t *)"key";
    o.label_len = 3;
    o.attrs = blob;
    o.attrs_len = sizeof(blob);
    check(store_object_insert(st, &o, &oid) == CKR_OK, "object");
    check(store_commit(st) == CKR_OK, "commit");
    check(store_snapshot(st, &j, &snap, &snaplen) == CKR_OK, "snapshot");
    store_close(st);
    unlink(db);
    rmdir(path);

    check(hsm_backup_make(ckey, DOMAIN, "fuzz-source", 1700000000, snap,
                          snaplen, &file, &filelen, &info) == CKR_OK,
          "make");
    write_seed(argv[1], "seed-backup", file, filelen);
    write_seed(argv[1], "bad-cut", file, 300);
    check((bad = malloc(filelen)) != NULL, "malloc");
    memcpy(bad, file, filelen);
    bad[40] ^= 1; /* in the header (the source's id): the seal fails */
    write_seed(argv[1], "bad-header-byte", bad, filelen);
    free(file);
    check(hsm_backup_make(ckey, "other-domain", "fuzz-source", 1700000000,
                          snap, snaplen, &file, &filelen, &info) == CKR_OK,
          "make");
    write_seed(argv[1], "bad-other-domain", file, filelen);
    free(file);
    free(bad);
    free(snap);
    printf("fuzz_backup_seeds: 4 files written to %s\n", argv[1]);
    return 0;
}
#endif
