/*
 * secmem.c - memory for secrets in clear (crypto.h "secret memory").
 *
 * Blocks come from 64 KiB anonymous private mappings marked MADV_DONTDUMP
 * (left out of core dumps) and MADV_WIPEONFORK (a forked child sees
 * zeros), each mapping cut into blocks of one size class; a value larger
 * than the largest class gets a mapping of its own. Everything the
 * allocator knows about its blocks (which mapping, which class, which
 * blocks are free) lives in ordinary memory, so that a forked child, whose
 * blocks read as zeros, can still free what it inherited. A block is
 * wiped (OPENSSL_cleanse) when it is released. Mappings are kept for reuse
 * until the process ends.
 *
 * Nothing here changes a process-wide setting: no OpenSSL secure heap
 * (CRYPTO_secure_malloc_init is process-wide), no mlock limits, no
 * PR_SET_DUMPABLE. Only our own mappings are marked; nimbusd alone also
 * has them locked in RAM (crypto_secret_lock).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "hsm/crypto/crypto.h"

#define SECMEM_MAP (64u * 1024u)
#define SECMEM_MIN 32u   /* smallest class */
#define SECMEM_MAX 4096u /* largest class; bigger: a mapping of its own */
#define SECMEM_MAPS 1024 /* mappings at most (64 MiB in small blocks) */
#define SECMEM_BITS (SECMEM_MAP / SECMEM_MIN)

struct secmem_map {
    uint8_t *base;
    size_t len;   /* of the mapping */
    size_t block; /* class size; len for a mapping of its own */
    size_t used;  /* blocks in use */
    uint64_t busy[SECMEM_BITS / 64];
};

static pthread_mutex_t secmem_mu = PTHREAD_MUTEX_INITIALIZER;
static struct secmem_map secmem_maps[SECMEM_MAPS];
static size_t secmem_nmaps;
static bool secmem_warned;
static bool secmem_lock;       /* crypto_secret_lock was called */
static bool secmem_lock_warned;

static size_t class_of(size_t len)
{
    size_t c = SECMEM_MIN;

    while (c < len)
        c *= 2;
    return c;
}

/* Locks a mapping when asked to (secmem_mu held); false on failure. */
static bool map_lock(void *p, size_t len)
{
    if (!secmem_lock || mlock(p, len) == 0)
        return true;
    if (!secmem_lock_warned) {
        log_warn("secret memory: mlock: %s: secrets may be swapped out "
                 "(raise RLIMIT_MEMLOCK)",
                 strerror(errno));
        secmem_lock_warned = true;
    }
    return false;
}

bool crypto_secret_lock(void)
{
    bool all = true;

    pthread_mutex_lock(&secmem_mu);
    secmem_lock = true;
    for (size_t i = 0; i < secmem_nmaps; i++) {
        if (secmem_maps[i].base != NULL &&
            !map_lock(secmem_maps[i].base, secmem_maps[i].len))
            all = false;
    }
    pthread_mutex_unlock(&secmem_mu);
    return all;
}

/* A new marked mapping of len bytes (a multiple of the page size). */
static uint8_t *map_new(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return NULL;
    if (madvise(p, len, MADV_DONTDUMP) != 0 ||
        madvise(p, len, MADV_WIPEONFORK) != 0) {
        /* An old kernel (before 4.14) has no MADV_WIPEONFORK: the memory
         * is still usable, only less protected. Said once. */
        if (!secmem_warned) {
            log_warn("secret memory: madvise failed: secrets may appear in "
                     "core dumps or forked children");
            secmem_warned = true;
        }
    }
    map_lock(p, len);
    return p;
}

static struct secmem_map *map_add(size_t len, size_t block)
{
    struct secmem_map *m = NULL;

    for (size_t i = 0; i < secmem_nmaps; i++) {
        if (secmem_maps[i].base == NULL) {
            m = &secmem_maps[i];
            break;
        }
    }
    if (m == NULL) {
        if (secmem_nmaps >= SECMEM_MAPS)
            return NULL;
        m = &secmem_maps[secmem_nmaps++];
    }
    memset(m, 0, sizeof(*m));
    m->base = map_new(len);
    if (m->base == NULL)
        return NULL;
    m->len = len;
    m->block = block;
    return m;
}

void *crypto_secret_alloc(size_t len)
{
    struct secmem_map *m = NULL;
    void *p = NULL;
    size_t block;

    if (len == 0)
        len = 1;
    pthread_mutex_lock(&secmem_mu);
    if (len > SECMEM_MAX) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        size_t maplen = (len + page - 1) / page * page;

        m = map_add(maplen, maplen);
        if (m != NULL) {
            m->busy[0] = 1;
            m->used = 1;
            p = m->base;
        }
        goto out;
    }
    block = class_of(len);
    for (size_t i = 0; i < secmem_nmaps && p == NULL; i++) {
        m = &secmem_maps[i];
        if (m->base == NULL || m->block != block ||
            m->used == m->len / block)
            continue;
        for (size_t b = 0; b < m->len / block; b++) {
            if ((m->busy[b / 64] & (UINT64_C(1) << (b % 64))) == 0) {
                m->busy[b / 64] |= UINT64_C(1) << (b % 64);
                m->used++;
                p = m->base + b * block;
                break;
            }
        }
    }
    if (p == NULL) {
        m = map_add(SECMEM_MAP, block);
        if (m != NULL) {
            m->busy[0] = 1;
            m->used = 1;
            p = m->base;
        }
    }
out:
    pthread_mutex_unlock(&secmem_mu);
    return p;
}

/* The mapping holding p (secmem_mu held), or NULL. */
static struct secmem_map *map_of(const void *p)
{
    const uint8_t *q = p;

    for (size_t i = 0; i < secmem_nmaps; i++) {
        struct secmem_map *m = &secmem_maps[i];

        if (m->base != NULL && q >= m->base && q < m->base + m->len)
            return m;
    }
    return NULL;
}

bool crypto_secret_owns(const void *p)
{
    bool owns;

    if (p == NULL)
        return false;
    pthread_mutex_lock(&secmem_mu);
    owns = map_of(p) != NULL;
    pthread_mutex_unlock(&secmem_mu);
    return owns;
}

void crypto_secret_free(void *p)
{
    struct secmem_map *m;
    size_t b;

    if (p == NULL)
        return;
    pthread_mutex_lock(&secmem_mu);
    m = map_of(p);
    if (m == NULL) {
        pthread_mutex_unlock(&secmem_mu);
        log_error("secret memory: freeing a pointer it does not own");
        return;
    }
    b = (size_t)((uint8_t *)p - m->base) / m->block;
    OPENSSL_cleanse(m->base + b * m->block, m->block);
    m->busy[b / 64] &= ~(UINT64_C(1) << (b % 64));
    m->used--;
    if (m->block == m->len) {
        /* A mapping of its own goes back to the kernel. */
        munmap(m->base, m->len);
        memset(m, 0, sizeof(*m));
    }
    pthread_mutex_unlock(&secmem_mu);
}

void crypto_secret_free_any(void *p, size_t len)
{
    if (p == NULL)
        return;
    if (crypto_secret_owns(p)) {
        crypto_secret_free(p);
    } else {
        OPENSSL_cleanse(p, len);
        free(p);
    }
}

void *crypto_secret_dup(const void *p, size_t len)
{
    void *q = crypto_secret_alloc(len);

    if (q != NULL && len > 0)
        memcpy(q, p, len);
    return q;
}
