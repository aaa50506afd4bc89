/*
 * tfa.c - the authdata round of the -2fa commands (tfa.h). The shell never
 * holds the private key: it hands out each server's challenge, waits for
 * the officer to sign outside (one line on stdin, so that a script can
 * sign in between), and passes the signatures on.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "mgmt/tfa.h"

/* where, or where/authdata.json when where is a directory. */
static bool tfa_path(const char *where, char *path, size_t size)
{
    struct stat st;
    int n;

    if (stat(where, &st) == 0 && S_ISDIR(st.st_mode))
        n = snprintf(path, size, "%s/%s", where, MGMT_AUTHDATA_FILE);
    else
        n = snprintf(path, size, "%s", where);
    return n > 0 && (size_t)n < size;
}

/* A new file at path (0600): whatever was there goes first, and a link
 * planted there is not followed. */
static FILE *tfa_create(const char *path)
{
    FILE *fp;
    int fd;

    if (unlink(path) != 0 && errno != ENOENT) {
        fprintf(stderr, "authdata: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "authdata: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    fp = fdopen(fd, "w");
    if (fp == NULL) {
        fprintf(stderr, "authdata: %s: %s\n", path, strerror(errno));
        close(fd);
    }
    return fp;
}

/* The file back, parsed into ad. */
static bool tfa_read(const char *path, struct mgmt_authdata *ad)
{
    char err[160];
    char *buf = malloc(MGMT_AUTHDATA_MAX + 1);
    size_t n = 0;
    FILE *fp;
    bool ok = false;

    if (buf == NULL)
        return false;
    fp = fopen(path, "rb");
    if (fp == NULL) {
        fprintf(stderr, "authdata: %s: %s\n", path, strerror(errno));
        goto out;
    }
    n = fread(buf, 1, MGMT_AUTHDATA_MAX + 1, fp);
    fclose(fp);
    ok = mgmt_authdata_parse(buf, n, ad, err, sizeof(err));
    if (!ok)
        fprintf(stderr, "authdata: %s: %s\n", path, err);
out:
    util_free_wipe(buf, MGMT_AUTHDATA_MAX + 1);
    return ok;
}

struct mgmt_tfa *mgmt_tfa_round(struct mgmt *m, const char *cmd,
                                hsm_login_kind_t kind, const char *name,
                                const char *where, bool want_key)
{
    struct mgmt_tfa *t = calloc(1, sizeof(*t));
    char path[4096];
    FILE *fp;

    if (t == NULL)
        return NULL;
    if (!tfa_path(where, path, sizeof(path))) {
        fprintf(stderr, "authdata: %s: path too long\n", where);
        goto fail;
    }
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        struct mgmt_authdata_entry *e = &t->ad.data[t->ad.n];
        hsm_token_info_t ti;
        CK_RV rv;

        if (sv->id < 0 || sv->id >= MGMT_SERVERS_MAX ||
            t->ad.n == MGMT_AUTHDATA_ENTRIES_MAX) {
            fprintf(stderr, "authdata: too many servers\n");
            goto fail;
        }
        rv = backend_login_challenge(sv->conn, kind, name, e->digest);
        if (rv == CKR_OK)
            rv = backend_token_info(sv->be, sv->conn, &ti);
        if (rv != CKR_OK) {
            mgmt_fail(sv, cmd, rv);
            goto fail;
        }
        /* The HSM's serial; two endpoints of one HSM get apart. */
        snprintf(e->hsm_id, sizeof(e->hsm_id), "%s", ti.serial);
        if (mgmt_authdata_find(&t->ad, e->hsm_id) != NULL)
            snprintf(e->hsm_id, sizeof(e->hsm_id), "%s:%d", ti.serial, sv->id);
        memcpy(t->ids[sv->id], e->hsm_id, sizeof(e->hsm_id));
        t->ad.n++;
    }
    fp = tfa_create(path);
    if (fp == NULL)
        goto fail;
    if (mgmt_authdata_write(fp, &t->ad) != 0) {
        fclose(fp);
        fprintf(stderr, "authdata: %s: cannot write\n", path);
        goto fail;
    }
    if (fclose(fp) != 0) {
        fprintf(stderr, "authdata: %s: %s\n", path, strerror(errno));
        goto fail;
    }
    printf("Authentication data written to: \"%s\"\n"
           "Sign each Digest with the RSA-2048 private key of the second "
           "factor\n"
           "(SHA256-RSA-PKCS over the base64-decoded digest bytes: openssl "
           "dgst -sha256 -sign),\n"
           "put each base64 signature in its Signature%s, then press "
           "Enter.\n",
           path, want_key ? " and the PEM public key in PublicKey" : "");
    if (!mgmt_wait_line(m)) {
        fprintf(stderr, "no answer (end of input): not done\n");
        goto fail;
    }
    if (!tfa_read(path, &t->ad))
        goto fail;
    if (want_key && t->ad.pubkey_len == 0) {
        fprintf(stderr, "authdata: %s: PublicKey is empty\n", path);
        goto fail;
    }
    return t;
fail:
    mgmt_tfa_free(t);
    return NULL;
}

const struct mgmt_authdata_entry *mgmt_tfa_entry(const struct mgmt_tfa *t,
                                                 const struct mgmt_server *sv,
                                                 const char *cmd)
{
    const struct mgmt_authdata_entry *e = NULL;

    if (sv->id >= 0 && sv->id < MGMT_SERVERS_MAX)
        e = mgmt_authdata_find(&t->ad, t->ids[sv->id]);
    if (e == NULL || e->sig_len == 0) {
        printf("%s failed: no signature for server %d(%s) in the "
               "authentication data\n",
               cmd, sv->id, sv->name);
        return NULL;
    }
    return e;
}

void mgmt_tfa_free(struct mgmt_tfa *t)
{
    util_free_wipe(t, sizeof(*t));
}
