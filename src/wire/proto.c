/* proto.c - the shared part of both wire halves (proto.h). */
#include "config.h"

#include <stdlib.h>

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
