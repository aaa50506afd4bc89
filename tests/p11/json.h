/*
 * json.h - a small JSON reader for the test-vector runner (RFC 8259).
 *
 * json_parse builds a tree of json_t nodes from a whole document. Strings
 * are decoded to UTF-8 (\uXXXX escapes and surrogate pairs included) and
 * NUL-terminated; numbers are kept as doubles and, when they are integers
 * that fit, as long long too. Objects keep their members in document order;
 * a lookup returns the first member of that name. Nesting is capped
 * (JSON_DEPTH_MAX), and so is the input size (JSON_INPUT_MAX).
 */
#ifndef NIMBUS_TEST_JSON_H
#define NIMBUS_TEST_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define JSON_DEPTH_MAX 64
#define JSON_INPUT_MAX (64u * 1024u * 1024u)

typedef enum {
    JSON_NULL = 0,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_type_t;

typedef struct json json_t;

struct json {
    json_type_t type;
    bool boolean;
    double number;
    bool is_int; /* number is an integer that fits in integer */
    long long integer;
    char *str; /* strings: NUL-terminated, len bytes without the NUL */
    size_t len;
    /* arrays and objects: n items; objects also have keys[i] */
    json_t **items;
    char **keys;
    size_t n;
};

/*
 * Parses text[0..len). NULL on error with a message ("line N: ...") in
 * err. The tree is freed with json_free.
 */
json_t *json_parse(const char *text, size_t len, char *err, size_t errlen);
/* Reads and parses a file. */
json_t *json_load_file(const char *path, char *err, size_t errlen);
void json_free(json_t *j);

/* The member named key of an object (NULL: not an object, or absent). */
const json_t *json_get(const json_t *obj, const char *key);
/* Item i of an array (NULL when out of range or not an array). */
const json_t *json_at(const json_t *arr, size_t i);
/* Number of items of an array or members of an object (0 otherwise). */
size_t json_count(const json_t *j);
/* The string member key of obj, or NULL when absent or not a string. */
const char *json_get_str(const json_t *obj, const char *key);
/* The integer member key of obj, or def when absent or not an integer. */
long long json_get_int(const json_t *obj, const char *key, long long def);

#endif
