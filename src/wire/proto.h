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

#include <sys/uio.h>

#include <protobuf-c/protobuf-c.h>

#include "src/wire/nimbus.pb-c.h"

/* The protocol version of the handshake (docs/wire.md: what changes it). */
#define WIRE_PROTOCOL_VERSION 1
/* What this side knows of it: calls and fields added without changing the
 * version (docs/wire.md lists them). */
#define WIRE_PROTOCOL_MINOR 5
/* ClusterChangeReq.kind (minor 5). */
enum wire_cluster_change {
    WIRE_CLUSTER_ADD = 1,
    WIRE_CLUSTER_REMOVE = 2,
    WIRE_CLUSTER_TRANSFER = 3,
};
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
/* A reply's budget (the client's decodes): a list of many small entries
 * (listUsers, the audit log, key lists) decodes to several times its
 * bytes (a 22-byte UserInfo is a 95-byte struct, its pointer and its
 * name), which twice the frame refused from about 2,900 users on. Still
 * bounded by the frame: at most 16 times max_frame. */
#define WIRE_REPLY_DECODE_BUDGET(len) (16 * (size_t)(len) + 256 * 1024)

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

/*
 * The shared bulk region of a unix channel (protocol minor 3): nimbusd
 * makes it on the client's ShmAttachReq (a sealed memfd, passed with the
 * reply), the input half first, then the output half. The client puts
 * an input of at least WIRE_SHM_MIN bytes there and takes the output
 * from there instead of sending both through the socket. At most
 * WIRE_SHM_CHANNELS_MAX channels of a server have one.
 */
#define WIRE_SHM_HALF (2u * 1024u * 1024u)
#define WIRE_SHM_SIZE (2u * WIRE_SHM_HALF)
#define WIRE_SHM_MIN (128u * 1024u)
#define WIRE_SHM_CHANNELS_MAX 64

/*
 * Packing without copying the bulk: a message becomes up to WIRE_VEC_MAX
 * pieces, its small parts copied into a scratch buffer kept across frames
 * and each byte field of at least WIRE_REF_MIN bytes referenced where it
 * lies (the caller's plaintext, the server's output). The pieces stay
 * valid while what they reference does; the sender writes them with one
 * sendmsg. Past WIRE_VEC_MAX pieces the rest is copied.
 */
#define WIRE_REF_MIN 4096u
#define WIRE_VEC_MAX 8
typedef struct {
    struct iovec iov[WIRE_VEC_MAX]; /* the pieces, in order */
    size_t n;
    size_t total;
    /* while packing: where each piece lies (scratch may move) */
    struct {
        const uint8_t *ref; /* NULL: at off in scratch */
        size_t off;
    } at[WIRE_VEC_MAX];
    wire_buf_t scratch;
    size_t used; /* bytes of scratch to wipe */
} wire_vec_t;

/* Packs m into v (total: its length). false: out of memory or longer
 * than max (v holds nothing then). */
bool wire_pack_vec(const ProtobufCMessage *m, size_t max, wire_vec_t *v);
/* Copies v's pieces into b (for a transfer that takes one buffer). */
bool wire_vec_flatten(const wire_vec_t *v, wire_buf_t *b);
/* Wipes the scratch used; frees it when it is over WIRE_KEEP_MAX or all. */
void wire_vec_done(wire_vec_t *v, bool all);

/*
 * Decoding without copying the bulk: a byte field named in lifts (field
 * `inner` of the message in field `outer` of the top-level message) of
 * at least WIRE_REF_MIN bytes is left where it lies in buf: the decoder
 * sees the frame without it, and the field then points into buf. Any
 * frame of another shape (the field twice, a group, a required field)
 * is decoded the ordinary way, with the same result. buf must outlive
 * the message, and wire_unlift must run before the message is freed.
 */
typedef struct {
    uint32_t outer, inner;
} wire_lift_t;
typedef struct {
    ProtobufCBinaryData *field; /* NULL: nothing lifted */
} wire_lifted_t;

ProtobufCMessage *wire_unpack_lifted(const ProtobufCMessageDescriptor *d,
                                     wire_alloc_t *wa, const uint8_t *buf,
                                     size_t len, const wire_lift_t *lifts,
                                     size_t nlifts, wire_lifted_t *lifted);
/* Detaches the lifted field from buf (the decoder must not free it). */
void wire_unlift(wire_lifted_t *lifted);

#endif
