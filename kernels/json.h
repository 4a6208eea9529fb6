/* json.h — a small, strict JSON parser (RFC 8259) and serializer.
 *
 * Owns: parsing a whole buffer into a tree of JsonValue, the lookup helpers on that tree, and
 * turning a tree or a string back into JSON text. Used by the checkpoint reader (safetensors
 * headers, impl/) and the annotation readers (ActivityNet, Something-Something V2; datasets/),
 * so it lives in the bottom layer.
 *
 * Strict means: exactly the RFC grammar (no comments, no trailing commas, no single quotes, no
 * NaN/Infinity, no leading zeros or '+'), strings must be valid UTF-8 without raw control
 * characters, \uXXXX escapes are decoded to UTF-8 and must pair surrogates correctly, duplicate
 * keys in one object are an error, nesting is limited (JSON_DEFAULT_MAX_DEPTH), numbers must fit
 * a double. Two deliberate restrictions beyond the RFC, both to protect C consumers: "\u0000"
 * is rejected (it would silently truncate a NUL-terminated key), and a number whose magnitude
 * overflows a double is rejected instead of becoming infinity. A leading UTF-8 byte order mark
 * is skipped (RFC 8259 §8.1 allows ignoring it).
 *
 * Every error carries the byte offset, 1-based line and column (columns count UTF-8 characters)
 * and a sentence saying what was expected and what was found.
 *
 * Memory: one JsonDoc owns every node and string of a document in a private pool; json_free
 * releases it all at once. Values are read-only views into that pool and live until json_free.
 * The parser never reads beyond `len` bytes, so the text need not be NUL-terminated.
 */
#ifndef FOCUSBENCH_JSON_H
#define FOCUSBENCH_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { JSON_DEFAULT_MAX_DEPTH = 256, JSON_MAX_DEPTH_LIMIT = 4096 };

typedef enum {
    JSON_NULL = 0,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} JsonType;

typedef struct JsonValue JsonValue;
typedef struct JsonMember JsonMember;

struct JsonValue {
    JsonType type;
    size_t offset; /* byte offset of the value's first character in the parsed text */
    union {
        bool boolean;
        struct {
            double value;   /* nearest double (correctly rounded by strtod in the C locale) */
            int64_t exact;  /* the exact value when is_int */
            bool is_int;    /* the literal denotes an integer that fits int64 ("3", "-0", "1e3", "2.50e1") */
        } number;
        struct {
            const char *chars; /* decoded UTF-8, NUL-terminated, never contains NUL */
            size_t len;        /* bytes, without the terminator */
        } string;
        struct {
            const JsonValue *items; /* [count] */
            size_t count;
        } array;
        struct {
            const JsonMember *members; /* [count], in document order */
            size_t count;
        } object;
    } u;
};

struct JsonMember {
    const char *key; /* decoded UTF-8, NUL-terminated */
    size_t key_len;
    size_t key_offset; /* byte offset of the key's opening quote */
    JsonValue value;
};

typedef struct JsonDoc JsonDoc;

typedef struct {
    size_t offset;      /* byte offset of the problem in the text */
    int line, column;   /* 1-based; column counts UTF-8 characters */
    char message[512];  /* "line 3, column 7 (byte 41): expected ',' or '}' after an object member, found 'x'" */
} JsonError;

/* Parses text[0..len) as one JSON value with optional surrounding whitespace. Returns NULL and
 * fills *err (err may be NULL) on any error, including running out of memory. */
JsonDoc *json_parse(const char *text, size_t len, JsonError *err);
/* The same with a nesting limit (arrays + objects); max_depth <= 0 means the default, and
 * values above JSON_MAX_DEPTH_LIMIT are clamped to it (the parser recurses once per level). */
JsonDoc *json_parse_depth(const char *text, size_t len, int max_depth, JsonError *err);
/* Reads a whole file and parses it; errors are prefixed with the path ("PATH: line 3, ..."),
 * including open/read failures. */
JsonDoc *json_parse_file(const char *path, JsonError *err);
void json_free(JsonDoc *doc);

const JsonValue *json_root(const JsonDoc *doc);

/* Lookup helpers: all return NULL/false (never crash) on a NULL value or a value of another type. */
const char *json_type_name(JsonType type); /* "null", "boolean", "number", "string", "array", "object" */
/* First member named key in an object (keys are unique after a successful parse). */
const JsonValue *json_object_get(const JsonValue *obj, const char *key);
/* Element i of an array; NULL when out of range. */
const JsonValue *json_array_at(const JsonValue *arr, size_t i);
/* Number of elements of an array or members of an object; 0 for anything else. */
size_t json_length(const JsonValue *v);
/* A string's characters, or NULL. */
const char *json_as_string(const JsonValue *v);
bool json_as_bool(const JsonValue *v, bool *out);
bool json_as_double(const JsonValue *v, double *out);
/* An integral number within [lo, hi]; false for non-numbers, non-integers and out-of-range values. */
bool json_as_int64(const JsonValue *v, int64_t lo, int64_t hi, int64_t *out);

/* 1-based line and column (UTF-8 characters) of a byte offset in text, for messages about
 * values found semantically wrong after a successful parse (JsonValue.offset). */
void json_line_column(const char *text, size_t len, size_t offset, int *line, int *column);

/* Writes s[0..len) as a JSON string literal with quotes into out (always NUL-terminated when
 * cap > 0) and returns the length the full literal needs (like snprintf). Control characters
 * become \uXXXX or the short escapes; '"' and '\\' are escaped; other bytes are copied. */
size_t json_escape_string(const char *s, size_t len, char *out, size_t cap);

/* Compact JSON text of a value (malloc'd, NUL-terminated; *len_out gets its length when not
 * NULL). Integers print exactly, other numbers with 17 significant digits so they re-parse to
 * the same double. NULL when out of memory. */
char *json_serialize(const JsonValue *v, size_t *len_out);

#endif
