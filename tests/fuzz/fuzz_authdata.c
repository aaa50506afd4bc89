/*
 * fuzz_authdata.c - libFuzzer target over nimbus-mgmt's authdata reader
 * (src/mgmt/authdata.c). Whatever the input, the reader must not read
 * outside it or crash; an input it accepts must come back the same
 * through the writer and the reader again (signatures aside: the writer
 * leaves them empty), and hold only what authdata.h allows. The corpus in
 * tests/fuzz/authdata-corpus is replayed by make check (replay.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt/authdata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_authdata: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mgmt_authdata a, b;
    char err[256], *text = NULL;
    size_t tlen = 0;
    FILE *fp;

    if (!mgmt_authdata_parse((const char *)data, size, &a, err, sizeof(err))) {
        check(err[0] != '\0', "refused without a reason");
        return 0;
    }
    check(a.n >= 1 && a.n <= MGMT_AUTHDATA_ENTRIES_MAX, "entry count");
    check(a.pubkey_len <= HSM_QUORUM_PUBKEY_MAX &&
              a.pubkey[a.pubkey_len] == '\0',
          "public key length");
    for (size_t i = 0; i < a.n; i++) {
        size_t idlen = strlen(a.data[i].hsm_id);

        check(idlen >= 1 && idlen <= MGMT_AUTHDATA_ID_MAX, "HsmId length");
        check(a.data[i].sig_len <= HSM_TFA_SIG_MAX, "signature length");
    }
    /* The round trip: what the shell writes, it reads back the same. */
    fp = open_memstream(&text, &tlen);
    check(fp != NULL, "open_memstream");
    check(mgmt_authdata_write(fp, &a) == 0, "write");
    fclose(fp);
    check(mgmt_authdata_parse(text, tlen, &b, err, sizeof(err)),
          "the writer's output refused");
    check(b.n == a.n && b.pubkey_len == a.pubkey_len &&
              memcmp(b.pubkey, a.pubkey, a.pubkey_len) == 0,
          "round trip: header");
    for (size_t i = 0; i < a.n; i++) {
        check(strcmp(a.data[i].hsm_id, b.data[i].hsm_id) == 0 &&
                  memcmp(a.data[i].digest, b.data[i].digest, HSM_DIGEST_LEN) ==
                      0 &&
                  b.data[i].sig_len == 0,
              "round trip: entry");
    }
    free(text);
    return 0;
}
