/* log.h - diagnostics. Silent by default; never pass a secret to these. */
#ifndef NIMBUS_LOG_H
#define NIMBUS_LOG_H

enum log_level {
    LOG_LEVEL_NONE = 0,
    LOG_LEVEL_ERROR,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_TRACE,
};

/* The current level; one integer test when logging is off. */
extern enum log_level util_log_level;

/* Parse "error" .. "trace" (or "none"); returns -1 when unknown. */
int util_log_level_parse(const char *s);
/* Sets level and destination (NULL or "" or "stderr": stderr). */
void util_log_setup(enum log_level level, const char *file);
void util_log_close(void);
void util_log_write(enum log_level level, const char *file, int line,
                    const char *func, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define LOG_AT(lvl, ...)                                                       \
    do {                                                                       \
        if (util_log_level >= (lvl))                                           \
            util_log_write((lvl), __FILE__, __LINE__, __func__, __VA_ARGS__);  \
    } while (0)
#define log_error(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_trace(...) LOG_AT(LOG_LEVEL_TRACE, __VA_ARGS__)

/*
 * Precondition checks for our own bugs (not caller errors): log and return
 * in production; abort when NIMBUS_STRICT_PRECONDITIONS is set in the
 * environment (the test suites set it).
 */
void util_precondition_failed(const char *expr, const char *file, int line,
                              const char *func);
#define return_val_if_fail(expr, val)                                          \
    do {                                                                       \
        if (!(expr)) {                                                         \
            util_precondition_failed(#expr, __FILE__, __LINE__, __func__);     \
            return (val);                                                      \
        }                                                                      \
    } while (0)

#endif
