/* proto.c - the shared part of both wire halves (proto.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#include "wire/proto.h"

static void *budget_alloc(void *data, size_t size)
{
    wire_alloc_t *wa = data;

    if (size > wa->budget - wa->used) {
        return NULL;
    }
    wa->used += size;
    return malloc(size == 0 ? 1 : size);
}

static void budget_free(void *data, void *p)
{
    (void)data;
    free(p);
}

void wire_alloc_init(wire_alloc_t *wa, size_t budget)
{
    wa->a.alloc = budget_alloc;
    wa->a.free = budget_free;
    wa->a.allocator_data = wa;
    wa->used = 0;
    wa->budget = budget;
}

bool wire_pack(const ProtobufCMessage *m, size_t max, uint8_t **out,
               size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf;

    *out = NULL;
    *len = 0;
    if (n > max) {
        return false;
    }
    buf = malloc(n == 0 ? 1 : n);
    if (buf == NULL) {
        return false;
    }
    if (protobuf_c_message_pack(m, buf) != n) {
        free(buf);
        return false;
    }
    *out = buf;
    *len = n;
    return true;
}

bool wire_pack_into(const ProtobufCMessage *m, size_t max, wire_buf_t *b,
                    size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);

    *len = 0;
    if (n > max) {
        return false;
    }
    if (b->p == NULL || b->cap < n) {
        /* The old contents were wiped by wire_buf_done. */
        uint8_t *q = malloc(n == 0 ? 1 : n);
        if (q == NULL) {
            return false;
        }
        free(b->p);
        b->p = q;
        b->cap = n == 0 ? 1 : n;
    }
    if (protobuf_c_message_pack(m, b->p) != n) {
        util_wipe(b->p, b->cap);
        return false;
    }
    *len = n;
    return true;
}

void wire_buf_done(wire_buf_t *b, size_t used, bool all)
{
    if (b->p == NULL) {
        return;
    }
    util_wipe(b->p, used < b->cap ? used : b->cap);
    if (all || b->cap > WIRE_KEEP_MAX) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

/* ------------------------------------------------- packing by reference */

struct vec_sink {
    ProtobufCBuffer base;
    wire_vec_t *v;
    bool failed;
};

/* Room for more bytes in v's scratch; what it held moves along. */
static bool scratch_room(wire_vec_t *v, size_t more)
{
    wire_buf_t *b = &v->scratch;
    size_t need = v->used + more, ncap;
    uint8_t *q;

    if (b->p != NULL && b->cap >= need) {
        return true;
    }
    ncap = b->cap * 2 > need ? b->cap * 2 : need;
    ncap = ncap < 256 ? 256 : ncap;
    q = malloc(ncap);
    if (q == NULL) {
        return false;
    }
    if (v->used > 0) {
        memcpy(q, b->p, v->used);
    }
    /* the rest of the old buffer was wiped after its last frame */
    util_free_wipe(b->p, v->used);
    b->p = q;
    b->cap = ncap;
    return true;
}

static void vec_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data)
{
    struct vec_sink *s = (struct vec_sink *)buffer;
    wire_vec_t *v = s->v;
    size_t last = v->n - 1; /* valid when v->n > 0 */

    if (s->failed || len == 0) {
        return;
    }
    /* A reference keeps one piece free for what follows it. */
    if (len >= WIRE_REF_MIN && v->n + 2 <= WIRE_VEC_MAX) {
        v->at[v->n].ref = data;
        v->at[v->n].off = 0;
        v->iov[v->n].iov_len = len;
        v->n++;
        v->total += len;
        return;
    }
    if (!scratch_room(v, len)) {
        s->failed = true;
        return;
    }
    memcpy(v->scratch.p + v->used, data, len);
    if (v->n > 0 && v->at[last].ref == NULL) {
        /* the last piece ends where scratch does */
        v->iov[last].iov_len += len;
    } else if (v->n < WIRE_VEC_MAX) {
        v->at[v->n].ref = NULL;
        v->at[v->n].off = v->used;
        v->iov[v->n].iov_len = len;
        v->n++;
    } else {
        s->failed = true; /* not reached: a reference leaves a piece free */
        return;
    }
    v->used += len;
    v->total += len;
}

bool wire_pack_vec(const ProtobufCMessage *m, size_t max, wire_vec_t *v)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    struct vec_sink s;

    v->n = 0;
    v->total = 0;
    v->used = 0;
    if (n > max) {
        return false;
    }
    memset(&s, 0, sizeof(s));
    s.base.append = vec_append;
    s.v = v;
    if (protobuf_c_message_pack_to_buffer(m, &s.base) != n || s.failed ||
        v->total != n) {
        wire_vec_done(v, false);
        return false;
    }
    for (size_t i = 0; i < v->n; i++) {
        v->iov[i].iov_base = v->at[i].ref != NULL
                                 ? (void *)(uintptr_t)v->at[i].ref
                                 : v->scratch.p + v->at[i].off;
    }
    return true;
}

bool wire_vec_flatten(const wire_vec_t *v, wire_buf_t *b)
{
    size_t off = 0;

    if (b->p == NULL || b->cap < v->total) {
        uint8_t *q = malloc(v->total == 0 ? 1 : v->total);
        if (q == NULL) {
            return false;
        }
        free(b->p); /* wiped by wire_buf_done after its last frame */
        b->p = q;
        b->cap = v->total == 0 ? 1 : v->total;
    }
    for (size_t i = 0; i < v->n; i++) {
        memcpy(b->p + off, v->iov[i].iov_base, v->iov[i].iov_len);
        off += v->iov[i].iov_len;
    }
    return true;
}

void wire_vec_done(wire_vec_t *v, bool all)
{
    wire_buf_done(&v->scratch, v->used, all);
    v->used = 0;
    v->n = 0;
    v->total = 0;
}

/* ------------------------------------------------ decoding by reference */

static bool get_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < 10; i++) {
        uint8_t b;

        if (*pos >= len) {
            return false;
        }
        b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *out = v;
            return true;
        }
    }
    return false;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    do {
        p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    return n;
}

/* One field of an encoded message: its tag at [tag, hdr), a length
 * field's value at [val, val + vlen). */
struct field_at {
    size_t tag, hdr, val, vlen;
    uint64_t num;
    unsigned wt;
};

/* The field at *pos of p[0, len); false: not a well-formed field of the
 * kinds our schema uses (groups are not). */
static bool next_field(const uint8_t *p, size_t len, size_t *pos,
                       struct field_at *f)
{
    uint64_t key, n;

    f->tag = *pos;
    f->val = f->vlen = 0;
    if (!get_varint(p, len, pos, &key)) {
        return false;
    }
    f->hdr = *pos;
    f->num = key >> 3;
    f->wt = (unsigned)(key & 7);
    switch (f->wt) {
    case 0:
        return get_varint(p, len, pos, &n);
    case 1:
    case 5:
        n = f->wt == 1 ? 8 : 4;
        if (len - *pos < n) {
            return false;
        }
        *pos += (size_t)n;
        return true;
    case 2:
        if (!get_varint(p, len, pos, &n) || n > len - *pos) {
            return false;
        }
        f->val = *pos;
        f->vlen = (size_t)n;
        *pos += (size_t)n;
        return true;
    default:
        return false;
    }
}

/* The one field numbered num among p[0, len): false when it is absent,
 * there twice, or p is not well formed. */
static bool only_field(const uint8_t *p, size_t len, uint64_t num,
                       struct field_at *out)
{
    struct field_at f;
    size_t pos = 0;
    bool seen = false;

    while (pos < len) {
        if (!next_field(p, len, &pos, &f)) {
            return false;
        }
        if (f.num == num) {
            if (seen) {
                return false;
            }
            seen = true;
            *out = f;
        }
    }
    return seen;
}

/* Where the lift goes in buf: the outer field o and the inner field i
 * (offsets in buf), or false. */
static bool find_lift(const uint8_t *buf, size_t len, const wire_lift_t *lifts,
                      size_t nlifts, struct field_at *o, struct field_at *i,
                      const wire_lift_t **which)
{
    const wire_lift_t *hit = NULL;

    for (size_t k = 0; k < nlifts; k++) {
        struct field_at f;
        if (only_field(buf, len, lifts[k].outer, &f)) {
            if (hit != NULL) {
                return false; /* two calls in one request: not ours */
            }
            hit = &lifts[k];
            *o = f;
        }
    }
    if (hit == NULL || o->wt != 2 ||
        !only_field(buf + o->val, o->vlen, hit->inner, i) || i->wt != 2 ||
        i->vlen < WIRE_REF_MIN) {
        return false;
    }
    i->tag += o->val;
    i->hdr += o->val;
    i->val += o->val;
    *which = hit;
    return true;
}

/* Decodes buf less the inner field i and points that field at it. */
static ProtobufCMessage *unpack_without(const ProtobufCMessageDescriptor *d,
                                        wire_alloc_t *wa, const uint8_t *buf,
                                        size_t len, const struct field_at *o,
                                        const struct field_at *i,
                                        const wire_lift_t *which,
                                        wire_lifted_t *lifted)
{
    size_t cut = i->val + i->vlen - i->tag;
    size_t olen = o->vlen - cut;
    size_t clen = o->hdr + 10 + (len - o->val) - cut, n = 0;
    const ProtobufCFieldDescriptor *ofd, *ifd;
    ProtobufCMessage *m, *sub;
    ProtobufCBinaryData *bd;
    protobuf_c_boolean *has;
    uint8_t *c = malloc(clen);

    if (c == NULL) {
        return NULL;
    }
    memcpy(c, buf, o->hdr);
    n = o->hdr;
    n += put_varint(c + n, olen);
    memcpy(c + n, buf + o->val, i->tag - o->val);
    n += i->tag - o->val;
    memcpy(c + n, buf + i->val + i->vlen, len - (i->val + i->vlen));
    n += len - (i->val + i->vlen);
    m = protobuf_c_message_unpack(d, &wa->a, n, c);
    util_free_wipe(c, clen);
    if (m == NULL) {
        return NULL;
    }
    ofd = protobuf_c_message_descriptor_get_field(d, which->outer);
    if (ofd == NULL || ofd->type != PROTOBUF_C_TYPE_MESSAGE ||
        ofd->label == PROTOBUF_C_LABEL_REPEATED) {
        goto fail;
    }
    if ((ofd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
        *(const uint32_t *)((const char *)m + ofd->quantifier_offset) !=
            which->outer) {
        goto fail;
    }
    sub = *(ProtobufCMessage **)((char *)m + ofd->offset);
    if (sub == NULL) {
        goto fail;
    }
    ifd =
        protobuf_c_message_descriptor_get_field(sub->descriptor, which->inner);
    if (ifd == NULL || ifd->type != PROTOBUF_C_TYPE_BYTES ||
        ifd->label != PROTOBUF_C_LABEL_OPTIONAL ||
        (ifd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
        goto fail;
    }
    has = (protobuf_c_boolean *)((char *)sub + ifd->quantifier_offset);
    bd = (ProtobufCBinaryData *)((char *)sub + ifd->offset);
    if (*has || bd->data != NULL) {
        goto fail;
    }
    *has = 1;
    bd->data = (uint8_t *)(uintptr_t)(buf + i->val);
    bd->len = i->vlen;
    lifted->field = bd;
    return m;
fail:
    protobuf_c_message_free_unpacked(m, &wa->a);
    return NULL;
}

ProtobufCMessage *wire_unpack_lifted(const ProtobufCMessageDescriptor *d,
                                     wire_alloc_t *wa, const uint8_t *buf,
                                     size_t len, const wire_lift_t *lifts,
                                     size_t nlifts, wire_lifted_t *lifted)
{
    struct field_at o, i;
    const wire_lift_t *which = NULL;

    memset(&o, 0, sizeof(o));
    memset(&i, 0, sizeof(i));
    lifted->field = NULL;
    if (buf != NULL && len >= WIRE_REF_MIN &&
        find_lift(buf, len, lifts, nlifts, &o, &i, &which)) {
        size_t used = wa->used;
        ProtobufCMessage *m =
            unpack_without(d, wa, buf, len, &o, &i, which, lifted);
        if (m != NULL) {
            return m;
        }
        /* the ordinary way, on the same budget */
        wa->used = used;
    }
    return protobuf_c_message_unpack(d, &wa->a, len, buf);
}

void wire_unlift(wire_lifted_t *lifted)
{
    if (lifted->field != NULL) {
        lifted->field->data = NULL;
        lifted->field->len = 0;
        lifted->field = NULL;
    }
}
