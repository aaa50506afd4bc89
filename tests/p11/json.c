/* json.c - a small recursive-descent JSON reader (see json.h). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct parser {
    const char *p;
    const char *end;
    const char *start;
    char *err;
    size_t errlen;
    bool failed;
};

static void fail(struct parser *ps, const char *fmt, ...)
{
    const char *q;
    unsigned long line = 1;
    size_t off;
    va_list ap;

    if (ps->failed) {
        return;
    }
    ps->failed = true;
    if (ps->err == NULL || ps->errlen == 0) {
        return;
    }
    for (q = ps->start; q < ps->p && q < ps->end; q++) {
        line += *q == '\n';
    }
    off = (size_t)snprintf(ps->err, ps->errlen, "line %lu: ", line);
    if (off >= ps->errlen) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(ps->err + off, ps->errlen - off, fmt, ap);
    va_end(ap);
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
                               *ps->p == '\n' || *ps->p == '\r')) {
        ps->p++;
    }
}

static json_t *node_new(json_type_t type)
{
    json_t *j = calloc(1, sizeof(*j));

    if (j != NULL) {
        j->type = type;
    }
    return j;
}

void json_free(json_t *j)
{
    size_t i;

    if (j == NULL) {
        return;
    }
    for (i = 0; i < j->n; i++) {
        json_free(j->items[i]);
        if (j->keys != NULL) {
            free(j->keys[i]);
        }
    }
    free(j->items);
    free(j->keys);
    free(j->str);
    free(j);
}

/* A growing byte buffer for strings. */
struct sbuf {
    char *b;
    size_t len;
    size_t cap;
};

static bool sbuf_put(struct sbuf *s, const char *data, size_t n)
{
    if (n > SIZE_MAX - s->len - 1) {
        return false;
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap == 0 ? 32 : s->cap;
        char *nb;

        while (cap < s->len + n + 1) {
            cap *= 2;
        }
        nb = realloc(s->b, cap);
        if (nb == NULL) {
            return false;
        }
        s->b = nb;
        s->cap = cap;
    }
    memcpy(s->b + s->len, data, n);
    s->len += n;
    s->b[s->len] = '\0';
    return true;
}

static int hexval(char c)
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

static bool read_hex4(struct parser *ps, unsigned *out)
{
    unsigned v = 0;
    int i;

    if (ps->end - ps->p < 4) {
        return false;
    }
    for (i = 0; i < 4; i++) {
        int h = hexval(ps->p[i]);

        if (h < 0) {
            return false;
        }
        v = (v << 4) | (unsigned)h;
    }
    ps->p += 4;
    *out = v;
    return true;
}

static bool put_utf8(struct sbuf *s, unsigned long cp)
{
    char b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return sbuf_put(s, b, n);
}

/* At the opening quote: the decoded string into s. */
static bool parse_string_raw(struct parser *ps, struct sbuf *s)
{
    ps->p++; /* the quote */
    while (ps->p < ps->end) {
        char c = *ps->p;

        if (c == '"') {
            ps->p++;
            if (s->b == NULL && !sbuf_put(s, "", 0)) {
                fail(ps, "out of memory");
                return false;
            }
            return true;
        }
        if ((unsigned char)c < 0x20) {
            fail(ps, "control character in a string");
            return false;
        }
        if (c != '\\') {
            const char *q = ps->p;

            while (q < ps->end && *q != '"' && *q != '\\' &&
                   (unsigned char)*q >= 0x20) {
                q++;
            }
            if (!sbuf_put(s, ps->p, (size_t)(q - ps->p))) {
                fail(ps, "out of memory");
                return false;
            }
            ps->p = q;
            continue;
        }
        ps->p++;
        if (ps->p >= ps->end) {
            break;
        }
        c = *ps->p++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            if (!sbuf_put(s, &c, 1)) {
                fail(ps, "out of memory");
                return false;
            }
            break;
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't': {
            char e = c == 'b'   ? '\b'
                     : c == 'f' ? '\f'
                     : c == 'n' ? '\n'
                     : c == 'r' ? '\r'
                                : '\t';

            if (!sbuf_put(s, &e, 1)) {
                fail(ps, "out of memory");
                return false;
            }
            break;
        }
        case 'u': {
            unsigned hi;
            unsigned long cp;

            if (!read_hex4(ps, &hi)) {
                fail(ps, "bad \\u escape");
                return false;
            }
            cp = hi;
            if (hi >= 0xd800 && hi <= 0xdbff) {
                unsigned lo;

                if (ps->end - ps->p < 6 || ps->p[0] != '\\' ||
                    ps->p[1] != 'u') {
                    fail(ps, "lone high surrogate");
                    return false;
                }
                ps->p += 2;
                if (!read_hex4(ps, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                    fail(ps, "bad low surrogate");
                    return false;
                }
                cp = 0x10000 + (((unsigned long)hi - 0xd800) << 10) +
                     (lo - 0xdc00);
            } else if (hi >= 0xdc00 && hi <= 0xdfff) {
                fail(ps, "lone low surrogate");
                return false;
            }
            if (!put_utf8(s, cp)) {
                fail(ps, "out of memory");
                return false;
            }
            break;
        }
        default:
            fail(ps, "bad escape \\%c", c);
            return false;
        }
    }
    fail(ps, "unterminated string");
    return false;
}

static json_t *parse_value(struct parser *ps, int depth);

static json_t *parse_number(struct parser *ps)
{
    const char *q = ps->p;
    char buf[64];
    size_t n;
    json_t *j;
    char *endp;
    bool frac = false;

    if (q < ps->end && *q == '-') {
        q++;
    }
    if (q >= ps->end || *q < '0' || *q > '9') {
        fail(ps, "bad number");
        return NULL;
    }
    if (*q == '0') {
        q++;
    } else {
        while (q < ps->end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    if (q < ps->end && *q == '.') {
        frac = true;
        q++;
        if (q >= ps->end || *q < '0' || *q > '9') {
            fail(ps, "bad fraction");
            return NULL;
        }
        while (q < ps->end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        frac = true;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) {
            q++;
        }
        if (q >= ps->end || *q < '0' || *q > '9') {
            fail(ps, "bad exponent");
            return NULL;
        }
        while (q < ps->end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    n = (size_t)(q - ps->p);
    if (n >= sizeof(buf)) {
        fail(ps, "number too long");
        return NULL;
    }
    memcpy(buf, ps->p, n);
    buf[n] = '\0';
    j = node_new(JSON_NUMBER);
    if (j == NULL) {
        fail(ps, "out of memory");
        return NULL;
    }
    j->number = strtod(buf, NULL);
    if (!frac) {
        errno = 0;
        j->integer = strtoll(buf, &endp, 10);
        j->is_int = errno == 0 && *endp == '\0';
    }
    ps->p = q;
    return j;
}

static bool push_item(json_t *j, json_t *item, char *key)
{
    json_t **items;

    if (j->n == SIZE_MAX / sizeof(*items) - 1) {
        return false;
    }
    items = realloc(j->items, (j->n + 1) * sizeof(*items));
    if (items == NULL) {
        return false;
    }
    j->items = items;
    if (j->type == JSON_OBJECT) {
        char **keys = realloc(j->keys, (j->n + 1) * sizeof(*keys));

        if (keys == NULL) {
            return false;
        }
        j->keys = keys;
        j->keys[j->n] = key;
    }
    j->items[j->n++] = item;
    return true;
}

static json_t *parse_array(struct parser *ps, int depth)
{
    json_t *j = node_new(JSON_ARRAY);

    if (j == NULL) {
        fail(ps, "out of memory");
        return NULL;
    }
    ps->p++; /* [ */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return j;
    }
    for (;;) {
        json_t *item = parse_value(ps, depth + 1);

        if (item == NULL) {
            goto bad;
        }
        if (!push_item(j, item, NULL)) {
            json_free(item);
            fail(ps, "out of memory");
            goto bad;
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return j;
        }
        fail(ps, "expected , or ] in an array");
        goto bad;
    }
bad:
    json_free(j);
    return NULL;
}

static json_t *parse_object(struct parser *ps, int depth)
{
    json_t *j = node_new(JSON_OBJECT);

    if (j == NULL) {
        fail(ps, "out of memory");
        return NULL;
    }
    ps->p++; /* { */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return j;
    }
    for (;;) {
        struct sbuf key = {NULL, 0, 0};
        json_t *item;

        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != '"') {
            fail(ps, "expected a member name");
            goto bad;
        }
        if (!parse_string_raw(ps, &key)) {
            free(key.b);
            goto bad;
        }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            free(key.b);
            fail(ps, "expected : after a member name");
            goto bad;
        }
        ps->p++;
        item = parse_value(ps, depth + 1);
        if (item == NULL) {
            free(key.b);
            goto bad;
        }
        if (!push_item(j, item, key.b)) {
            free(key.b);
            json_free(item);
            fail(ps, "out of memory");
            goto bad;
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            return j;
        }
        fail(ps, "expected , or } in an object");
        goto bad;
    }
bad:
    json_free(j);
    return NULL;
}

static bool match_word(struct parser *ps, const char *w)
{
    size_t n = strlen(w);

    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0) {
        return false;
    }
    ps->p += n;
    return true;
}

static json_t *parse_value(struct parser *ps, int depth)
{
    json_t *j;

    if (depth > JSON_DEPTH_MAX) {
        fail(ps, "nested too deeply");
        return NULL;
    }
    skip_ws(ps);
    if (ps->p >= ps->end) {
        fail(ps, "unexpected end of input");
        return NULL;
    }
    switch (*ps->p) {
    case '{':
        return parse_object(ps, depth);
    case '[':
        return parse_array(ps, depth);
    case '"': {
        struct sbuf s = {NULL, 0, 0};

        if (!parse_string_raw(ps, &s)) {
            free(s.b);
            return NULL;
        }
        j = node_new(JSON_STRING);
        if (j == NULL) {
            free(s.b);
            fail(ps, "out of memory");
            return NULL;
        }
        j->str = s.b;
        j->len = s.len;
        return j;
    }
    case 't':
    case 'f': {
        bool b = *ps->p == 't';

        if (match_word(ps, b ? "true" : "false")) {
            j = node_new(JSON_BOOL);
            if (j == NULL) {
                fail(ps, "out of memory");
                return NULL;
            }
            j->boolean = b;
            return j;
        }
        break;
    }
    case 'n':
        if (match_word(ps, "null")) {
            j = node_new(JSON_NULL);
            if (j == NULL) {
                fail(ps, "out of memory");
            }
            return j;
        }
        break;
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) {
            return parse_number(ps);
        }
        break;
    }
    fail(ps, "unexpected character '%c'", *ps->p);
    return NULL;
}

json_t *json_parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct parser ps;
    json_t *j;

    memset(&ps, 0, sizeof(ps));
    ps.p = text;
    ps.start = text;
    ps.end = text + len;
    ps.err = err;
    ps.errlen = errlen;
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (len > JSON_INPUT_MAX) {
        fail(&ps, "input larger than %u bytes", JSON_INPUT_MAX);
        return NULL;
    }
    j = parse_value(&ps, 0);
    if (j == NULL) {
        return NULL;
    }
    skip_ws(&ps);
    if (ps.p != ps.end) {
        fail(&ps, "trailing data after the document");
        json_free(j);
        return NULL;
    }
    return j;
}

json_t *json_load_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;
    size_t cap = 0;
    json_t *j = NULL;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        size_t got;

        if (cap - len < 65536) {
            char *nb;

            if (cap >= JSON_INPUT_MAX) {
                snprintf(err, errlen, "%s: larger than %u bytes", path,
                         JSON_INPUT_MAX);
                goto out;
            }
            cap = cap == 0 ? 1u << 20 : cap * 2;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto out;
            }
            buf = nb;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto out;
    }
    j = json_parse(buf, len, err, errlen);
out:
    free(buf);
    fclose(f);
    return j;
}

const json_t *json_get(const json_t *obj, const char *key)
{
    size_t i;

    if (obj == NULL || obj->type != JSON_OBJECT) {
        return NULL;
    }
    for (i = 0; i < obj->n; i++) {
        if (strcmp(obj->keys[i], key) == 0) {
            return obj->items[i];
        }
    }
    return NULL;
}

const json_t *json_at(const json_t *arr, size_t i)
{
    if (arr == NULL || arr->type != JSON_ARRAY || i >= arr->n) {
        return NULL;
    }
    return arr->items[i];
}

size_t json_count(const json_t *j)
{
    if (j == NULL || (j->type != JSON_ARRAY && j->type != JSON_OBJECT)) {
        return 0;
    }
    return j->n;
}

const char *json_get_str(const json_t *obj, const char *key)
{
    const json_t *v = json_get(obj, key);

    return v != NULL && v->type == JSON_STRING ? v->str : NULL;
}

long long json_get_int(const json_t *obj, const char *key, long long def)
{
    const json_t *v = json_get(obj, key);

    return v != NULL && v->type == JSON_NUMBER && v->is_int ? v->integer : def;
}
