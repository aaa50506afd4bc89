/*
 * proto.h - what both halves of the wire share: the protocol version, the
 * bounded allocator every decoder uses, and packing a message into one
 * malloc'd payload. The schema is src/wire/nimbus.proto (docs/wire.md).
 */
#ifndef NIMBUS_WIRE_PROTO_H
#define NIMBUS_WIRE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "src/wire/nimbus.pb-c.h"

/* The protocol version of the handshake (docs/wire.md: what changes it). */
#define WIRE_PROTOCOL_VERSION 1
/* What this side knows of it: calls and fields added without changing the
 * version (docs/wire.md lists them). */
#define WIRE_PROTOCOL_MINOR 1
/* The attach token handed out by the first channel of a connection. */
#define WIRE_ATTACH_TOKEN_LEN 32
/* Room a reply needs besides the bytes of its output field. */
#define WIRE_REPLY_OVERHEAD 1024

/*
 * protobuf-c allocates while it decodes: repeated fields as arrays of
 * pointers plus one struct per element, so a frame of N bytes can ask for
 * many times N. Every decode goes through this allocator, which refuses
 * (before malloc) once the total would pass its budget: the decode then
 * fails as a malformed frame.
 */
typedef struct {
    ProtobufCAllocator a;
    size_t used;
    size_t budget;
} wire_alloc_t;

/* The budget for a payload of len bytes: the payload twice (byte fields
 * are copied) plus room for the structs of a full template. */
#define WIRE_DECODE_BUDGET(len) (2 * (size_t)(len) + 256 * 1024)

void wire_alloc_init(wire_alloc_t *wa, size_t budget);

/* Packs m into *out (malloc'd), *len its length. false: out of memory or
 * longer than max. */
bool wire_pack(const ProtobufCMessage *m, size_t max, uint8_t **out,
               size_t *len);

/* A buffer kept across frames by one link or channel, so that a bulk
 * frame does not map, fault in and zero fresh pages on every call. It
 * grows only to what a message actually needs; one above WIRE_KEEP_MAX is
 * not kept (wire_buf_done frees it). Holders wipe what they used. */
#define WIRE_KEEP_MAX (2u * 1024u * 1024u)
typedef struct {
    uint8_t *p;
    size_t cap;
} wire_buf_t;

/* Wipes the first used bytes of b; frees b when it is over WIRE_KEEP_MAX
 * or all is true. */
void wire_buf_done(wire_buf_t *b, size_t used, bool all);

/* Packs m into b (grown when needed), *len its length. false: out of
 * memory or longer than max (b unchanged then). */
bool wire_pack_into(const ProtobufCMessage *m, size_t max, wire_buf_t *b,
                    size_t *len);

#endif
