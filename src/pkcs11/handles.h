/*
 * handles.h - a small open-addressing hash map uint64 -> uint64.
 *
 * The front end keeps its session table (handle -> session pointer) and its
 * object handle maps (handle -> object id, object id -> handle) in these.
 * Linear probing over a power-of-two table, deletion by backward shift (no
 * tombstones), load kept at most 1/2: lookup, insert and delete are O(1) on
 * average. Any key is allowed, 0 included. Not thread-safe: the caller
 * holds the library lock.
 */
#ifndef NIMBUS_HANDLES_H
#define NIMBUS_HANDLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pkcs11/pkcs11.h"

/* More entries than this are refused (CKR_HOST_MEMORY). */
#define MOD_HMAP_MAX_ENTRIES (1UL << 24)

struct mod_hmap {
    uint64_t *keys;
    uint64_t *vals;
    uint8_t *used;
    size_t cap;   /* 0 or a power of two */
    size_t count; /* entries in use */
};

/* An empty map needs no allocation: a zeroed struct is valid. */
void mod_hmap_init(struct mod_hmap *m);
void mod_hmap_free(struct mod_hmap *m);
/* Removes every entry, keeps the table. */
void mod_hmap_clear(struct mod_hmap *m);
/* Adds or replaces. CKR_OK or CKR_HOST_MEMORY (map unchanged). */
CK_RV mod_hmap_put(struct mod_hmap *m, uint64_t key, uint64_t val);
bool mod_hmap_get(const struct mod_hmap *m, uint64_t key, uint64_t *val);
/* true when the key was there. */
bool mod_hmap_del(struct mod_hmap *m, uint64_t key);
size_t mod_hmap_count(const struct mod_hmap *m);
/*
 * Iteration: start with *pos = 0; returns false at the end. The map must
 * not be changed while iterating (collect keys first, then delete).
 */
bool mod_hmap_next(const struct mod_hmap *m, size_t *pos, uint64_t *key,
                   uint64_t *val);

#endif
