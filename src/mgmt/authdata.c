/*
 * authdata.c - writes and reads the 2FA authdata file (authdata.h). The
 * reader is a parser of that one format, not of JSON at large: the schema
 * is fixed, so there is no recursion, no number syntax, no value of a type
 * the format does not have, and every length is bounded before a byte is
 * kept.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "mgmt/authdata.h"

/* The longest string the reader keeps (PublicKey) and base64 of the
 * longest signature fit in this. */
#define STR_MAX                                                                \
    (HSM_QUORUM_PUBKEY_MAX > UTIL_B64_LEN(HSM_TFA_SIG_MAX)                     \
         ? HSM_QUORUM_PUBKEY_MAX                                               \
         : UTIL_B64_LEN(HSM_TFA_SIG_MAX))

/* ------------------------------------------------------------ writer */

/* A JSON string of s (ASCII the shell made: nothing to escape but the
 * line breaks of a PEM, kept for symmetry with the reader). */
static void put_string(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(fp, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", fp);
        else if ((unsigned char)*s < 0x20)
            fprintf(fp, "\\u%04x", (unsigned char)*s);
        else
            fputc(*s, fp);
    }
    fputc('"', fp);
}

int mgmt_authdata_write(FILE *fp, const struct mgmt_authdata *ad)
{
    char b64[UTIL_B64_LEN(HSM_DIGEST_LEN) + 1];

    fprintf(fp, "{\n    \"Version\": \"%s\",\n    \"PublicKey\": ",
            MGMT_AUTHDATA_VERSION);
    put_string(fp, ad->pubkey);
    fputs(",\n    \"Data\": [\n", fp);
    for (size_t i = 0; i < ad->n; i++) {
        util_b64_encode(ad->data[i].digest, HSM_DIGEST_LEN, b64);
        fputs("        {\n            \"HsmId\": ", fp);
        put_string(fp, ad->data[i].hsm_id);
        fprintf(fp,
                ",\n            \"Digest\": \"%s\",\n"
                "            \"Signature\": \"\"\n        }%s\n",
                b64, i + 1 < ad->n ? "," : "");
    }
    fputs("    ]\n}\n", fp);
    return ferror(fp) ? -1 : 0;
}

/* ------------------------------------------------------------ reader */

struct rd {
    const char *start, *p, *end;
    char *err;
    size_t errlen;
    bool failed;
};

static bool fail(struct rd *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records the first error with the line it was found on. false. */
static bool fail(struct rd *r, const char *fmt, ...)
{
    unsigned line = 1;
    size_t off;
    va_list ap;

    if (r->failed)
        return false;
    r->failed = true;
    for (const char *q = r->start; q < r->p; q++)
        line += *q == '\n';
    off = (size_t)snprintf(r->err, r->errlen, "line %u: ", line);
    if (off < r->errlen) {
        va_start(ap, fmt);
        vsnprintf(r->err + off, r->errlen - off, fmt, ap);
        va_end(ap);
    }
    return false;
}

static void skip_ws(struct rd *r)
{
    while (r->p < r->end &&
           (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* The next token must be c. */
static bool expect(struct rd *r, char c)
{
    skip_ws(r);
    if (r->p >= r->end)
        return fail(r, "'%c' expected, the file ends", c);
    if (*r->p != c)
        return fail(r, "'%c' expected", c);
    r->p++;
    return true;
}

/* After a member or element: true and *more for ',', true and !*more for
 * close. */
static bool next_or_close(struct rd *r, char close, bool *more)
{
    skip_ws(r);
    if (r->p < r->end && *r->p == ',') {
        r->p++;
        *more = true;
        return true;
    }
    if (r->p < r->end && *r->p == close) {
        r->p++;
        *more = false;
        return true;
    }
    return fail(r, "',' or '%c' expected", close);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A string token into out (NUL-terminated, at most max characters). */
static bool read_string(struct rd *r, char *out, size_t max, size_t *len,
                        const char *what)
{
    size_t n = 0;

    if (!expect(r, '"'))
        return false;
    for (;;) {
        char c;

        if (r->p >= r->end)
            return fail(r, "%s: the string does not end", what);
        c = *r->p++;
        if (c == '"')
            break;
        if ((unsigned char)c < 0x20)
            return fail(r,
                        "%s: a control character inside a string (a "
                        "line break is written \\n)",
                        what);
        if ((unsigned char)c > 0x7e)
            return fail(r, "%s: a character outside ASCII", what);
        if (c == '\\') {
            if (r->p >= r->end)
                return fail(r, "%s: the string does not end", what);
            c = *r->p++;
            switch (c) {
            case '"':
            case '\\':
            case '/':
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'u': {
                int v = 0;

                if (r->end - r->p < 4)
                    return fail(r, "%s: a short \\u escape", what);
                for (int k = 0; k < 4; k++) {
                    int h = hex_value(r->p[k]);

                    if (h < 0)
                        return fail(r, "%s: a bad \\u escape", what);
                    v = v * 16 + h;
                }
                r->p += 4;
                if (v == 0 || v > 0x7f)
                    return fail(r, "%s: \\u%04x is not allowed here", what,
                                (unsigned)v);
                c = (char)v;
                break;
            }
            default:
                return fail(r, "%s: an unknown escape \\%c", what,
                            (unsigned char)c > 0x20 && (unsigned char)c < 0x7f
                                ? c
                                : '?');
            }
        }
        if (n >= max)
            return fail(r, "%s: longer than %zu characters", what, max);
        out[n++] = c;
    }
    out[n] = '\0';
    *len = n;
    return true;
}

/* A member name, then ':'. */
static bool read_key(struct rd *r, char *key, size_t max)
{
    size_t len;

    return read_string(r, key, max, &len, "a member name") && expect(r, ':');
}

static bool read_b64(struct rd *r, uint8_t *out, size_t max, size_t *outlen,
                     const char *what)
{
    char s[STR_MAX + 1];
    size_t len;

    if (!read_string(r, s, UTIL_B64_LEN(max), &len, what))
        return false;
    if (!util_b64_decode(s, len, out, max, outlen))
        return fail(r, "%s: not base64 of at most %zu bytes", what, max);
    return true;
}

static bool read_entry(struct rd *r, struct mgmt_authdata_entry *e)
{
    bool id = false, digest = false, sig = false, more = true;
    char key[16];

    if (!expect(r, '{'))
        return false;
    while (more) {
        if (!read_key(r, key, sizeof(key) - 1))
            return false;
        if (strcmp(key, "HsmId") == 0 && !id) {
            size_t len;

            if (!read_string(r, e->hsm_id, MGMT_AUTHDATA_ID_MAX, &len, "HsmId"))
                return false;
            if (len == 0)
                return fail(r, "HsmId: empty");
            for (size_t i = 0; i < len; i++)
                if ((unsigned char)e->hsm_id[i] < 0x20)
                    return fail(r, "HsmId: a control character");
            id = true;
        } else if (strcmp(key, "Digest") == 0 && !digest) {
            size_t len;

            if (!read_b64(r, e->digest, HSM_DIGEST_LEN, &len, "Digest"))
                return false;
            if (len != HSM_DIGEST_LEN)
                return fail(r, "Digest: not %d bytes", HSM_DIGEST_LEN);
            digest = true;
        } else if (strcmp(key, "Signature") == 0 && !sig) {
            if (!read_b64(r, e->sig, HSM_TFA_SIG_MAX, &e->sig_len, "Signature"))
                return false;
            sig = true;
        } else {
            return fail(r, "a Data entry: member \"%s\" unknown or repeated",
                        key);
        }
        if (!next_or_close(r, '}', &more))
            return false;
    }
    if (!id || !digest || !sig)
        return fail(r, "a Data entry lacks %s",
                    !id       ? "HsmId"
                    : !digest ? "Digest"
                              : "Signature");
    return true;
}

static bool read_data(struct rd *r, struct mgmt_authdata *ad)
{
    bool more = true;

    if (!expect(r, '['))
        return false;
    while (more) {
        if (ad->n == MGMT_AUTHDATA_ENTRIES_MAX)
            return fail(r, "Data: more than %d entries",
                        MGMT_AUTHDATA_ENTRIES_MAX);
        if (!read_entry(r, &ad->data[ad->n]))
            return false;
        for (size_t i = 0; i < ad->n; i++)
            if (strcmp(ad->data[i].hsm_id, ad->data[ad->n].hsm_id) == 0)
                return fail(r, "Data: HsmId \"%s\" twice",
                            ad->data[ad->n].hsm_id);
        ad->n++;
        if (!next_or_close(r, ']', &more))
            return false;
    }
    return true;
}

bool mgmt_authdata_parse(const char *buf, size_t len, struct mgmt_authdata *ad,
                         char *err, size_t errlen)
{
    struct rd r = {
        .start = buf, .p = buf, .end = buf + len, .err = err, .errlen = errlen};
    bool version = false, pubkey = false, data = false, more = true;
    char key[16];

    memset(ad, 0, sizeof(*ad));
    if (errlen > 0)
        err[0] = '\0';
    if (len > MGMT_AUTHDATA_MAX)
        return fail(&r, "the file is over %d bytes", MGMT_AUTHDATA_MAX);
    if (!expect(&r, '{'))
        goto bad;
    while (more) {
        if (!read_key(&r, key, sizeof(key) - 1))
            goto bad;
        if (strcmp(key, "Version") == 0 && !version) {
            char v[8];
            size_t vlen;

            if (!read_string(&r, v, sizeof(v) - 1, &vlen, "Version"))
                goto bad;
            if (strcmp(v, MGMT_AUTHDATA_VERSION) != 0) {
                fail(&r, "Version: \"%s\" expected", MGMT_AUTHDATA_VERSION);
                goto bad;
            }
            version = true;
        } else if (strcmp(key, "PublicKey") == 0 && !pubkey) {
            if (!read_string(&r, ad->pubkey, HSM_QUORUM_PUBKEY_MAX,
                             &ad->pubkey_len, "PublicKey"))
                goto bad;
            pubkey = true;
        } else if (strcmp(key, "Data") == 0 && !data) {
            if (!read_data(&r, ad))
                goto bad;
            data = true;
        } else {
            fail(&r, "member \"%s\" unknown or repeated", key);
            goto bad;
        }
        if (!next_or_close(&r, '}', &more))
            goto bad;
    }
    if (!version || !pubkey || !data) {
        fail(&r, "the file lacks %s",
             !version  ? "Version"
             : !pubkey ? "PublicKey"
                       : "Data");
        goto bad;
    }
    skip_ws(&r);
    if (r.p != r.end) {
        fail(&r, "something after the closing brace");
        goto bad;
    }
    return true;
bad:
    util_wipe(ad, sizeof(*ad));
    return false;
}

const struct mgmt_authdata_entry *
mgmt_authdata_find(const struct mgmt_authdata *ad, const char *hsm_id)
{
    for (size_t i = 0; i < ad->n; i++)
        if (strcmp(ad->data[i].hsm_id, hsm_id) == 0)
            return &ad->data[i];
    return NULL;
}
