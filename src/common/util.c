/* util.c - small helpers shared by every layer. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

void util_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        explicit_bzero(p, len);
}

void util_free_wipe(void *p, size_t len)
{
    if (p == NULL)
        return;
    util_wipe(p, len);
    free(p);
}

int util_ct_memcmp(const void *a, const void *b, size_t len)
{
    const volatile unsigned char *x = a;
    const volatile unsigned char *y = b;
    unsigned char d = 0;

    for (size_t i = 0; i < len; i++)
        d |= x[i] ^ y[i];
    return d != 0;
}

void util_pad_copy(unsigned char *dst, size_t dstlen, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;

    if (n > dstlen)
        n = dstlen;
    memset(dst, ' ', dstlen);
    if (n > 0)
        memcpy(dst, src, n);
}

bool util_parse_ulong(const char *s, unsigned long *out)
{
    char *end = NULL;
    unsigned long v;

    if (s == NULL || *s == '\0' || !isdigit((unsigned char)*s))
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

bool util_user_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > UTIL_USER_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isascii(c) && (isalnum(c) || c == '_')))
            return false;
    }
    return true;
}

int util_mutex_init(pthread_mutex_t *m)
{
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    pthread_mutexattr_t a;
    int rc;

    if ((rc = pthread_mutexattr_init(&a)) != 0)
        return rc;
    rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
    if (rc == 0)
        rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return rc;
#else
    return pthread_mutex_init(m, NULL);
#endif
}
