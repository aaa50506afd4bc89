/* handles.c - open-addressing hash map uint64 -> uint64 (see handles.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "pkcs11/handles.h"

#define HMAP_MIN_CAP 16

/* splitmix64 finaliser: handles are sequential, so spread them. */
static size_t hmap_home(const struct mod_hmap *m, uint64_t key)
{
    key ^= key >> 30;
    key *= 0xbf58476d1ce4e5b9ULL;
    key ^= key >> 27;
    key *= 0x94d049bb133111ebULL;
    key ^= key >> 31;
    return (size_t)key & (m->cap - 1);
}

void mod_hmap_init(struct mod_hmap *m)
{
    memset(m, 0, sizeof(*m));
}

void mod_hmap_free(struct mod_hmap *m)
{
    free(m->keys);
    free(m->vals);
    free(m->used);
    mod_hmap_init(m);
}

void mod_hmap_clear(struct mod_hmap *m)
{
    if (m->used != NULL) {
        memset(m->used, 0, m->cap);
    }
    m->count = 0;
}

/* Slot holding key, or the empty slot where it would go. */
static size_t hmap_find_slot(const struct mod_hmap *m, uint64_t key)
{
    size_t i = hmap_home(m, key);

    while (m->used[i] && m->keys[i] != key) {
        i = (i + 1) & (m->cap - 1);
    }
    return i;
}

static CK_RV hmap_grow(struct mod_hmap *m)
{
    struct mod_hmap n;
    size_t i;
    size_t cap = m->cap == 0 ? HMAP_MIN_CAP : m->cap * 2;

    if (cap / 2 > MOD_HMAP_MAX_ENTRIES) {
        return CKR_HOST_MEMORY;
    }
    n.cap = cap;
    n.count = 0;
    n.keys = calloc(cap, sizeof(*n.keys));
    n.vals = calloc(cap, sizeof(*n.vals));
    n.used = calloc(cap, 1);
    if (n.keys == NULL || n.vals == NULL || n.used == NULL) {
        mod_hmap_free(&n);
        return CKR_HOST_MEMORY;
    }
    for (i = 0; i < m->cap; i++) {
        if (m->used[i]) {
            size_t j = hmap_find_slot(&n, m->keys[i]);

            n.used[j] = 1;
            n.keys[j] = m->keys[i];
            n.vals[j] = m->vals[i];
            n.count++;
        }
    }
    mod_hmap_free(m);
    *m = n;
    return CKR_OK;
}

CK_RV mod_hmap_put(struct mod_hmap *m, uint64_t key, uint64_t val)
{
    size_t i;
    CK_RV rv;

    if (m->cap != 0) {
        i = hmap_find_slot(m, key);
        if (m->used[i]) {
            m->vals[i] = val;
            return CKR_OK;
        }
    }
    if (m->count >= MOD_HMAP_MAX_ENTRIES) {
        return CKR_HOST_MEMORY;
    }
    /* Keep the load at most 1/2. */
    if (m->cap == 0 || (m->count + 1) * 2 > m->cap) {
        rv = hmap_grow(m);
        if (rv != CKR_OK) {
            return rv;
        }
    }
    i = hmap_find_slot(m, key);
    m->used[i] = 1;
    m->keys[i] = key;
    m->vals[i] = val;
    m->count++;
    return CKR_OK;
}

bool mod_hmap_get(const struct mod_hmap *m, uint64_t key, uint64_t *val)
{
    size_t i;

    if (m->cap == 0) {
        return false;
    }
    i = hmap_find_slot(m, key);
    if (!m->used[i]) {
        return false;
    }
    if (val != NULL) {
        *val = m->vals[i];
    }
    return true;
}

bool mod_hmap_del(struct mod_hmap *m, uint64_t key)
{
    size_t mask;
    size_t i;
    size_t j;

    if (m->cap == 0) {
        return false;
    }
    mask = m->cap - 1;
    i = hmap_find_slot(m, key);
    if (!m->used[i]) {
        return false;
    }
    m->used[i] = 0;
    m->count--;
    /*
     * Backward shift: move later entries of the probe run into the hole
     * unless their home slot lies cyclically in (i, j].
     */
    j = i;
    for (;;) {
        size_t k;
        bool stays;

        j = (j + 1) & mask;
        if (!m->used[j]) {
            break;
        }
        k = hmap_home(m, m->keys[j]);
        if (i <= j) {
            stays = i < k && k <= j;
        } else {
            stays = i < k || k <= j;
        }
        if (!stays) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            m->used[i] = 1;
            m->used[j] = 0;
            i = j;
        }
    }
    return true;
}

size_t mod_hmap_count(const struct mod_hmap *m)
{
    return m->count;
}

bool mod_hmap_next(const struct mod_hmap *m, size_t *pos, uint64_t *key,
                   uint64_t *val)
{
    while (*pos < m->cap) {
        size_t i = (*pos)++;

        if (m->used[i]) {
            if (key != NULL) {
                *key = m->keys[i];
            }
            if (val != NULL) {
                *val = m->vals[i];
            }
            return true;
        }
    }
    return false;
}
