/* log.c - diagnostics to stderr or a file; silent by default. */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

enum log_level util_log_level = LOG_LEVEL_NONE;

static FILE *log_fp;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
    [LOG_LEVEL_NONE] = "none",   [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARN] = "warn",   [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug", [LOG_LEVEL_TRACE] = "trace",
};

int util_log_level_parse(const char *s)
{
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0)
            return (int)i;
    }
    return -1;
}

void util_log_setup(enum log_level level, const char *file)
{
    pthread_mutex_lock(&log_lock);
    if (log_fp != NULL && log_fp != stderr)
        fclose(log_fp);
    log_fp = NULL;
    if (file != NULL && *file != '\0' && strcmp(file, "stderr") != 0) {
        log_fp = fopen(file, "ae");
        if (log_fp == NULL)
            fprintf(stderr,
                    "nimbus: cannot open log file %s: logging to "
                    "stderr\n",
                    file);
    }
    util_log_level = level;
    pthread_mutex_unlock(&log_lock);
}

void util_log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_fp != NULL && log_fp != stderr)
        fclose(log_fp);
    log_fp = NULL;
    util_log_level = LOG_LEVEL_NONE;
    pthread_mutex_unlock(&log_lock);
}

void util_log_write(enum log_level level, const char *file, int line,
                    const char *func, const char *fmt, ...)
{
    va_list ap;
    FILE *fp;
    const char *base = strrchr(file, '/');

    pthread_mutex_lock(&log_lock);
    fp = log_fp != NULL ? log_fp : stderr;
    fprintf(fp, "nimbus[%ld] %s %s:%d %s: ", (long)getpid(), level_names[level],
            base != NULL ? base + 1 : file, line, func);
    va_start(ap, fmt);
    vfprintf(fp, fmt, ap);
    va_end(ap);
    fputc('\n', fp);
    fflush(fp);
    pthread_mutex_unlock(&log_lock);
}

void util_precondition_failed(const char *expr, const char *file, int line,
                              const char *func)
{
    const char *strict = getenv("NIMBUS_STRICT_PRECONDITIONS");

    fprintf(stderr, "nimbus: precondition failed: %s (%s:%d %s)\n", expr, file,
            line, func);
    if (strict != NULL && *strict != '\0' && strcmp(strict, "0") != 0)
        abort();
}
