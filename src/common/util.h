/* util.h - small helpers shared by every layer (no OpenSSL, no SQLite). */
#ifndef NIMBUS_UTIL_H
#define NIMBUS_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTIL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Wipe memory so that the compiler cannot drop the store. */
/*
 * A mutex for short critical sections: where the C library offers it, one
 * that spins a little before it sleeps (two threads taking it a million
 * times a second would otherwise pay a futex wake-up each time). Returns
 * what pthread_mutex_init returns.
 */
int util_mutex_init(pthread_mutex_t *m);

void util_wipe(void *p, size_t len);
/* Wipe then free; NULL is fine. */
void util_free_wipe(void *p, size_t len);
/* Constant-time comparison: 0 when equal. */
int util_ct_memcmp(const void *a, const void *b, size_t len);

/* Copy a C string into a fixed PKCS#11 text field: blank padded, no NUL. */
void util_pad_copy(unsigned char *dst, size_t dstlen, const char *src);

/* Strict decimal parse of an unsigned long; false on any junk or overflow. */
bool util_parse_ulong(const char *s, unsigned long *out);

/* User names: 1..31 characters of [A-Za-z0-9_]. */
#define UTIL_USER_NAME_MAX 31
bool util_user_name_valid(const char *name, size_t len);

/*
 * Base64 (RFC 4648, standard alphabet, '=' padding). util_b64_encode
 * writes UTIL_B64_LEN(len) characters and a NUL into out. util_b64_decode
 * is strict: only whole groups of 4 alphabet characters, padding only at
 * the end and only where due, the unused bits of the last group zero,
 * nothing else (no whitespace): false on anything else or when more than
 * outmax bytes would come out.
 */
#define UTIL_B64_LEN(n) ((((n) + 2) / 3) * 4)
void util_b64_encode(const uint8_t *in, size_t len, char *out);
bool util_b64_decode(const char *in, size_t len, uint8_t *out, size_t outmax,
                     size_t *outlen);

#endif
