/* json.c — see json.h. A recursive-descent parser over a byte buffer with a bounds check before
 * every read, a pool allocator per document, and a compact serializer. */
#include "json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the per-document pool ----------------------------------------------------------------
 * Nodes and strings of one document come from a chain of blocks; json_free releases the chain.
 * Blocks grow geometrically, so a document of n bytes costs O(log n) mallocs. */

typedef struct PoolBlock {
    struct PoolBlock *next;
    size_t cap, used;
    _Alignas(8) unsigned char data[];
} PoolBlock;

struct JsonDoc {
    PoolBlock *blocks; /* newest first */
    size_t next_block; /* size of the next block to allocate */
    JsonValue root;
};

static void *pool_alloc(JsonDoc *doc, size_t bytes, size_t align)
{
    PoolBlock *b = doc->blocks;
    if (b) {
        size_t at = (b->used + align - 1) & ~(align - 1);
        if (at <= b->cap && bytes <= b->cap - at) {
            b->used = at + bytes;
            return b->data + at;
        }
    }
    size_t cap = doc->next_block;
    if (cap < bytes)
        cap = bytes;
    b = malloc(sizeof *b + cap);
    if (!b)
        return NULL;
    b->cap = cap;
    b->used = bytes;
    b->next = doc->blocks;
    doc->blocks = b;
    if (doc->next_block < ((size_t)1 << 26))
        doc->next_block *= 2;
    return b->data;
}

void json_free(JsonDoc *doc)
{
    if (!doc)
        return;
    for (PoolBlock *b = doc->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(doc);
}

const JsonValue *json_root(const JsonDoc *doc) { return doc ? &doc->root : NULL; }

/* ---- positions and error messages ---------------------------------------------------------- */

void json_line_column(const char *text, size_t len, size_t offset, int *line, int *column)
{
    int l = 1, c = 1;
    if (offset > len)
        offset = len;
    for (size_t i = 0; i < offset; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) { /* a UTF-8 continuation byte is not a new character */
            c++;
        }
    }
    *line = l;
    *column = c;
}

typedef struct {
    const unsigned char *text;
    size_t len, pos;
    int depth, max_depth;
    JsonDoc *doc;
    /* Pending elements of the containers being parsed, innermost last. A finished container
     * copies its elements into one pool array and pops them, so arrays stay contiguous. */
    JsonMember *stack;
    size_t stack_n, stack_cap;
    char *scratch; /* decoded string / number literal being built: [scratch_cap] */
    size_t scratch_n, scratch_cap;
    locale_t c_locale; /* strtod must not depend on the process locale's decimal point */
    JsonError *err;
    bool failed;
} Parser;

static void fail(Parser *P, size_t offset, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(Parser *P, size_t offset, const char *fmt, ...)
{
    if (P->failed)
        return; /* keep the first, most precise error */
    P->failed = true;
    if (!P->err)
        return;
    int line, column;
    json_line_column((const char *)P->text, P->len, offset, &line, &column);
    P->err->offset = offset;
    P->err->line = line;
    P->err->column = column;
    int n = snprintf(P->err->message, sizeof P->err->message, "line %d, column %d (byte %zu): ", line, column, offset);
    if (n < 0 || (size_t)n >= sizeof P->err->message)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(P->err->message + n, sizeof P->err->message - (size_t)n, fmt, ap);
    va_end(ap);
}

/* "'x'", "end of input" or "byte 0xNN": what the parser found at pos, for messages. */
static const char *found_at(const Parser *P, size_t pos, char buf[16])
{
    if (pos >= P->len)
        return "end of input";
    unsigned char c = P->text[pos];
    if (c >= 0x20 && c < 0x7F)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02X", c);
    return buf;
}

/* ---- small helpers ----------------------------------------------------------------------- */

static void skip_ws(Parser *P)
{
    while (P->pos < P->len) {
        unsigned char c = P->text[P->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        P->pos++;
    }
}

static bool scratch_reserve(Parser *P, size_t extra)
{
    if (P->scratch_cap - P->scratch_n >= extra)
        return true;
    size_t cap = P->scratch_cap ? P->scratch_cap : 256;
    while (cap - P->scratch_n < extra) {
        if (cap > ((size_t)-1) / 2)
            return false;
        cap *= 2;
    }
    char *grown = realloc(P->scratch, cap);
    if (!grown)
        return false;
    P->scratch = grown;
    P->scratch_cap = cap;
    return true;
}

static bool stack_push(Parser *P, const JsonMember *m)
{
    if (P->stack_n == P->stack_cap) {
        size_t cap = P->stack_cap ? P->stack_cap * 2 : 64;
        JsonMember *grown = realloc(P->stack, cap * sizeof *grown);
        if (!grown)
            return false;
        P->stack = grown;
        P->stack_cap = cap;
    }
    P->stack[P->stack_n++] = *m;
    return true;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits of a \u escape whose backslash is at esc; -1 after reporting an error. */
static long read_hex4(Parser *P, size_t esc)
{
    size_t at = esc + 2;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = at + (size_t)i < P->len ? hex_value(P->text[at + (size_t)i]) : -1;
        if (h < 0) {
            char buf[16];
            fail(P, at + (size_t)i, "expected 4 hex digits after \\u, found %s", found_at(P, at + (size_t)i, buf));
            return -1;
        }
        v = v * 16 + h;
    }
    return v;
}

static void put_utf8(char *out, size_t *n, unsigned long cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xC0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xE0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*n)++] = (char)(0xF0 | (cp >> 18));
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* Length of the valid UTF-8 sequence starting at text[at] (a byte >= 0x80), or 0 when it is not
 * one: overlong forms, UTF-8-encoded surrogates and code points above U+10FFFF are invalid
 * (RFC 3629 table). */
static size_t utf8_sequence(const Parser *P, size_t at)
{
    const unsigned char *s = P->text + at;
    size_t left = P->len - at;
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c == 0xE0)
        need = 3, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        need = 3;
    else if (c == 0xED)
        need = 3, hi = 0x9F;
    else if (c == 0xF0)
        need = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 4;
    else if (c == 0xF4)
        need = 4, hi = 0x8F;
    else
        return 0;
    if (left < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

/* Parses the string literal at P->pos (a '"') into the pool. */
static bool parse_string(Parser *P, const char **chars_out, size_t *len_out)
{
    size_t start = P->pos;
    P->pos++; /* opening quote */
    P->scratch_n = 0;
    for (;;) {
        /* Copy a run of plain bytes at once. */
        size_t run = P->pos;
        while (run < P->len) {
            unsigned char c = P->text[run];
            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
                break;
            run++;
        }
        if (run > P->pos) {
            if (!scratch_reserve(P, run - P->pos)) {
                fail(P, P->pos, "out of memory");
                return false;
            }
            memcpy(P->scratch + P->scratch_n, P->text + P->pos, run - P->pos);
            P->scratch_n += run - P->pos;
            P->pos = run;
        }
        if (P->pos >= P->len) {
            int line, column;
            json_line_column((const char *)P->text, P->len, start, &line, &column);
            fail(P, P->pos, "unterminated string (it starts at line %d, column %d)", line, column);
            return false;
        }
        if (!scratch_reserve(P, 4)) {
            fail(P, P->pos, "out of memory");
            return false;
        }
        unsigned char c = P->text[P->pos];
        if (c == '"') {
            P->pos++;
            break;
        }
        if (c < 0x20) {
            if (c == '\n')
                fail(P, P->pos, "newline inside a string (unterminated string, or escape it as \\n)");
            else
                fail(P, P->pos, "control character 0x%02X inside a string (escape it as \\u%04X)", c, c);
            return false;
        }
        if (c >= 0x80) {
            size_t n = utf8_sequence(P, P->pos);
            if (!n) {
                fail(P, P->pos, "invalid UTF-8 byte 0x%02X in string", c);
                return false;
            }
            memcpy(P->scratch + P->scratch_n, P->text + P->pos, n);
            P->scratch_n += n;
            P->pos += n;
            continue;
        }
        /* c == '\\' */
        size_t esc = P->pos;
        if (esc + 1 >= P->len) {
            fail(P, esc + 1, "unterminated escape sequence at end of input");
            return false;
        }
        unsigned char e = P->text[esc + 1];
        char simple = 0;
        switch (e) {
        case '"': simple = '"'; break;
        case '\\': simple = '\\'; break;
        case '/': simple = '/'; break;
        case 'b': simple = '\b'; break;
        case 'f': simple = '\f'; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'u': break;
        default: {
            char buf[16];
            fail(P, esc, "invalid escape sequence '\\' followed by %s (valid: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
                 found_at(P, esc + 1, buf));
            return false;
        }
        }
        if (simple) {
            P->scratch[P->scratch_n++] = simple;
            P->pos = esc + 2;
            continue;
        }
        long cp = read_hex4(P, esc);
        if (cp < 0)
            return false;
        P->pos = esc + 6;
        if (cp == 0) {
            fail(P, esc, "\\u0000 (NUL) is not supported in strings");
            return false;
        }
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail(P, esc, "lone low surrogate \\u%04lX (it must follow a high surrogate \\uD800-\\uDBFF)", cp);
            return false;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            size_t esc2 = P->pos;
            if (esc2 + 1 >= P->len || P->text[esc2] != '\\' || P->text[esc2 + 1] != 'u') {
                fail(P, esc, "lone high surrogate \\u%04lX (expected a low surrogate \\uDC00-\\uDFFF right after it)",
                     cp);
                return false;
            }
            long lo = read_hex4(P, esc2);
            if (lo < 0)
                return false;
            if (lo < 0xDC00 || lo > 0xDFFF) {
                fail(P, esc, "high surrogate \\u%04lX is followed by \\u%04lX, not by a low surrogate \\uDC00-\\uDFFF",
                     cp, lo);
                return false;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            P->pos = esc2 + 6;
        }
        put_utf8(P->scratch, &P->scratch_n, (unsigned long)cp);
    }
    char *copy = pool_alloc(P->doc, P->scratch_n + 1, 1);
    if (!copy) {
        fail(P, start, "out of memory");
        return false;
    }
    memcpy(copy, P->scratch, P->scratch_n);
    copy[P->scratch_n] = '\0';
    *chars_out = copy;
    *len_out = P->scratch_n;
    return true;
}

/* The literal's digits are int_digits[0..n_int) then frac_digits[0..n_frac), times 10^exp10.
 * Decides from the text (not the rounded double) whether that is an integer in int64. */
static bool exact_integer(const unsigned char *int_digits, size_t n_int, const unsigned char *frac_digits,
                          size_t n_frac, long exp10, bool negative, int64_t *out)
{
    size_t total = n_int + n_frac;
#define DIGIT_AT(k) ((k) < n_int ? int_digits[(k)] : frac_digits[(k) - n_int])
    size_t first = 0;
    while (first < total && DIGIT_AT(first) == '0')
        first++;
    if (first == total) { /* all zeros: the value is 0 */
        *out = 0;
        return true;
    }
    size_t last = total - 1;
    while (DIGIT_AT(last) == '0')
        last--;
    /* value = digits[first..last] × 10^(exp10 − n_frac + (total − 1 − last)) */
    long shift = exp10 - (long)n_frac + (long)(total - 1 - last);
    if (shift < 0 || shift > 19 || last - first + 1 > 19)
        return false; /* a fraction, or more than int64's 19 digits */
    uint64_t acc = 0;
    for (size_t k = first; k <= last; k++) {
        unsigned d = (unsigned)(DIGIT_AT(k) - '0');
        if (acc > (UINT64_MAX - d) / 10)
            return false;
        acc = acc * 10 + d;
    }
#undef DIGIT_AT
    for (long s = 0; s < shift; s++) {
        if (acc > UINT64_MAX / 10)
            return false;
        acc *= 10;
    }
    if (negative) {
        if (acc > (uint64_t)INT64_MAX + 1)
            return false;
        *out = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
    } else {
        if (acc > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)acc;
    }
    return true;
}

static bool is_digit(const Parser *P, size_t at) { return at < P->len && P->text[at] >= '0' && P->text[at] <= '9'; }

static bool parse_number(Parser *P, JsonValue *out)
{
    size_t start = P->pos, at = P->pos;
    char buf[16];
    bool negative = false;
    if (P->text[at] == '-') {
        negative = true;
        at++;
        if (!is_digit(P, at)) {
            fail(P, at, "expected a digit after '-', found %s", found_at(P, at, buf));
            return false;
        }
    }
    size_t int_start = at;
    if (P->text[at] == '0') {
        at++;
        if (is_digit(P, at)) {
            fail(P, start, "leading zeros are not allowed in numbers");
            return false;
        }
    } else {
        while (is_digit(P, at))
            at++;
    }
    size_t n_int = at - int_start;
    size_t frac_start = at, n_frac = 0;
    if (at < P->len && P->text[at] == '.') {
        at++;
        if (!is_digit(P, at)) {
            fail(P, at, "expected a digit after the decimal point, found %s", found_at(P, at, buf));
            return false;
        }
        frac_start = at;
        while (is_digit(P, at))
            at++;
        n_frac = at - frac_start;
    }
    long exp10 = 0;
    if (at < P->len && (P->text[at] == 'e' || P->text[at] == 'E')) {
        at++;
        bool exp_negative = false;
        if (at < P->len && (P->text[at] == '+' || P->text[at] == '-')) {
            exp_negative = P->text[at] == '-';
            at++;
        }
        if (!is_digit(P, at)) {
            fail(P, at, "expected a digit in the exponent, found %s", found_at(P, at, buf));
            return false;
        }
        while (is_digit(P, at)) {
            if (exp10 < 1000000000L) /* saturate: beyond this any double is 0 or out of range */
                exp10 = exp10 * 10 + (P->text[at] - '0');
            at++;
        }
        if (exp_negative)
            exp10 = -exp10;
    }
    /* strtod needs a NUL-terminated copy; the text is not necessarily terminated. */
    size_t n = at - start;
    P->scratch_n = 0;
    if (!scratch_reserve(P, n + 1)) {
        fail(P, start, "out of memory");
        return false;
    }
    memcpy(P->scratch, P->text + start, n);
    P->scratch[n] = '\0';
    errno = 0;
    double d = strtod_l(P->scratch, NULL, P->c_locale);
    if (isinf(d)) {
        fail(P, start, "number %.*s is out of range for a double", n > 40 ? 40 : (int)n, P->scratch);
        return false;
    }
    out->type = JSON_NUMBER;
    out->offset = start;
    out->u.number.value = d;
    out->u.number.exact = 0;
    out->u.number.is_int = exact_integer(P->text + int_start, n_int, P->text + frac_start, n_frac, exp10, negative,
                                         &out->u.number.exact);
    P->pos = at;
    return true;
}

static bool parse_value(Parser *P, JsonValue *out);

static bool enter(Parser *P)
{
    if (P->depth >= P->max_depth) {
        fail(P, P->pos, "nesting deeper than %d levels of arrays/objects", P->max_depth);
        return false;
    }
    P->depth++;
    return true;
}

static bool parse_array(Parser *P, JsonValue *out)
{
    out->type = JSON_ARRAY;
    out->offset = P->pos;
    if (!enter(P))
        return false;
    P->pos++;
    size_t base = P->stack_n;
    skip_ws(P);
    if (P->pos < P->len && P->text[P->pos] == ']') {
        P->pos++;
    } else {
        for (;;) {
            JsonMember m = {0};
            if (!parse_value(P, &m.value))
                return false;
            if (!stack_push(P, &m)) {
                fail(P, m.value.offset, "out of memory");
                return false;
            }
            skip_ws(P);
            char buf[16];
            if (P->pos < P->len && P->text[P->pos] == ',') {
                P->pos++;
                skip_ws(P);
                if (P->pos < P->len && P->text[P->pos] == ']') {
                    fail(P, P->pos, "expected a value after ',', found ']' (trailing commas are not allowed)");
                    return false;
                }
                continue;
            }
            if (P->pos < P->len && P->text[P->pos] == ']') {
                P->pos++;
                break;
            }
            fail(P, P->pos, "expected ',' or ']' after an array element, found %s", found_at(P, P->pos, buf));
            return false;
        }
    }
    size_t count = P->stack_n - base;
    JsonValue *items = NULL;
    if (count) {
        items = pool_alloc(P->doc, count * sizeof *items, _Alignof(JsonValue));
        if (!items) {
            fail(P, out->offset, "out of memory");
            return false;
        }
        for (size_t i = 0; i < count; i++)
            items[i] = P->stack[base + i].value;
    }
    P->stack_n = base;
    out->u.array.items = items;
    out->u.array.count = count;
    P->depth--;
    return true;
}

static int compare_member_keys(const void *a, const void *b)
{
    const JsonMember *x = *(const JsonMember *const *)a, *y = *(const JsonMember *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c)
        return c;
    if (x->key_len != y->key_len)
        return x->key_len < y->key_len ? -1 : 1;
    return x->key_offset < y->key_offset ? -1 : x->key_offset > y->key_offset;
}

static bool same_key(const JsonMember *a, const JsonMember *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* Reports the duplicate key that appears earliest in the text (deterministic). Small objects
 * compare pairwise; large ones (annotation files have tens of thousands of keys) sort. */
static bool check_duplicate_keys(Parser *P, const JsonMember *members, size_t count)
{
    const JsonMember *dup = NULL, *first = NULL;
    if (count <= 16) {
        for (size_t j = 1; j < count && !dup; j++)
            for (size_t i = 0; i < j; i++)
                if (same_key(&members[i], &members[j])) {
                    dup = &members[j];
                    first = &members[i];
                    break;
                }
    } else {
        const JsonMember **order = malloc(count * sizeof *order);
        if (!order) {
            fail(P, members[0].key_offset, "out of memory");
            return false;
        }
        for (size_t i = 0; i < count; i++)
            order[i] = &members[i];
        qsort(order, count, sizeof *order, compare_member_keys);
        for (size_t i = 1; i < count; i++)
            if (same_key(order[i - 1], order[i]) && (!dup || order[i]->key_offset < dup->key_offset)) {
                dup = order[i];
                /* equal keys sort by offset, so the run's first element is the first occurrence */
                size_t k = i - 1;
                while (k > 0 && same_key(order[k - 1], order[i]))
                    k--;
                first = order[k];
            }
        free(order);
    }
    if (!dup)
        return true;
    int line, column;
    json_line_column((const char *)P->text, P->len, first->key_offset, &line, &column);
    fail(P, dup->key_offset, "duplicate key \"%.64s\" in object (first seen at line %d, column %d)", dup->key, line,
         column);
    return false;
}

static bool parse_object(Parser *P, JsonValue *out)
{
    out->type = JSON_OBJECT;
    out->offset = P->pos;
    if (!enter(P))
        return false;
    P->pos++;
    size_t base = P->stack_n;
    skip_ws(P);
    char buf[16];
    if (P->pos < P->len && P->text[P->pos] == '}') {
        P->pos++;
    } else {
        for (;;) {
            if (P->pos >= P->len || P->text[P->pos] != '"') {
                if (P->stack_n == base)
                    fail(P, P->pos, "expected a string key or '}' after '{', found %s", found_at(P, P->pos, buf));
                else if (P->pos < P->len && P->text[P->pos] == '}')
                    fail(P, P->pos, "expected a string key after ',', found '}' (trailing commas are not allowed)");
                else
                    fail(P, P->pos, "expected a string key after ',', found %s", found_at(P, P->pos, buf));
                return false;
            }
            JsonMember m = {0};
            m.key_offset = P->pos;
            if (!parse_string(P, &m.key, &m.key_len))
                return false;
            skip_ws(P);
            if (P->pos >= P->len || P->text[P->pos] != ':') {
                fail(P, P->pos, "expected ':' after the object key \"%.64s\", found %s", m.key,
                     found_at(P, P->pos, buf));
                return false;
            }
            P->pos++;
            if (!parse_value(P, &m.value))
                return false;
            if (!stack_push(P, &m)) {
                fail(P, m.key_offset, "out of memory");
                return false;
            }
            skip_ws(P);
            if (P->pos < P->len && P->text[P->pos] == ',') {
                P->pos++;
                skip_ws(P);
                continue;
            }
            if (P->pos < P->len && P->text[P->pos] == '}') {
                P->pos++;
                break;
            }
            fail(P, P->pos, "expected ',' or '}' after an object member, found %s", found_at(P, P->pos, buf));
            return false;
        }
    }
    size_t count = P->stack_n - base;
    JsonMember *members = NULL;
    if (count) {
        members = pool_alloc(P->doc, count * sizeof *members, _Alignof(JsonMember));
        if (!members) {
            fail(P, out->offset, "out of memory");
            return false;
        }
        memcpy(members, P->stack + base, count * sizeof *members);
        if (!check_duplicate_keys(P, members, count))
            return false;
    }
    P->stack_n = base;
    out->u.object.members = members;
    out->u.object.count = count;
    P->depth--;
    return true;
}

static bool parse_literal(Parser *P, JsonValue *out, const char *word, JsonType type, bool value)
{
    size_t n = strlen(word);
    if (P->len - P->pos < n || memcmp(P->text + P->pos, word, n) != 0) {
        fail(P, P->pos, "invalid literal (expected true, false or null)");
        return false;
    }
    out->type = type;
    out->offset = P->pos;
    out->u.boolean = value;
    P->pos += n;
    return true;
}

static bool parse_value(Parser *P, JsonValue *out)
{
    skip_ws(P);
    char buf[16];
    if (P->pos >= P->len) {
        fail(P, P->pos, "expected a value, found end of input");
        return false;
    }
    memset(out, 0, sizeof *out);
    unsigned char c = P->text[P->pos];
    switch (c) {
    case '{': return parse_object(P, out);
    case '[': return parse_array(P, out);
    case '"':
        out->type = JSON_STRING;
        out->offset = P->pos;
        return parse_string(P, &out->u.string.chars, &out->u.string.len);
    case 't': return parse_literal(P, out, "true", JSON_BOOL, true);
    case 'f': return parse_literal(P, out, "false", JSON_BOOL, false);
    case 'n': return parse_literal(P, out, "null", JSON_NULL, false);
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return parse_number(P, out);
        fail(P, P->pos, "expected a value (object, array, string, number, true, false or null), found %s",
             found_at(P, P->pos, buf));
        return false;
    }
}

JsonDoc *json_parse_depth(const char *text, size_t len, int max_depth, JsonError *err)
{
    if (err)
        memset(err, 0, sizeof *err);
    if (max_depth <= 0)
        max_depth = JSON_DEFAULT_MAX_DEPTH;
    if (max_depth > JSON_MAX_DEPTH_LIMIT)
        max_depth = JSON_MAX_DEPTH_LIMIT;
    Parser P = {.text = (const unsigned char *)text, .len = text ? len : 0, .max_depth = max_depth, .err = err};
    P.doc = calloc(1, sizeof *P.doc);
    P.c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!P.doc || P.c_locale == (locale_t)0) {
        fail(&P, 0, "out of memory");
        goto done;
    }
    /* Start with a pool about the size of the text; typical documents need less than that. */
    P.doc->next_block = P.len / 2 + 256;
    if (P.len >= 3 && memcmp(P.text, "\xEF\xBB\xBF", 3) == 0)
        P.pos = 3;
    if (!parse_value(&P, &P.doc->root))
        goto done;
    skip_ws(&P);
    if (P.pos < P.len) {
        char buf[16];
        fail(&P, P.pos, "unexpected %s after the JSON value (trailing data)", found_at(&P, P.pos, buf));
    }
done:
    free(P.stack);
    free(P.scratch);
    if (P.c_locale != (locale_t)0)
        freelocale(P.c_locale);
    if (P.failed) {
        json_free(P.doc);
        return NULL;
    }
    return P.doc;
}

JsonDoc *json_parse(const char *text, size_t len, JsonError *err) { return json_parse_depth(text, len, 0, err); }

static void file_error(JsonError *err, const char *path, const char *what)
{
    if (!err)
        return;
    memset(err, 0, sizeof *err);
    snprintf(err->message, sizeof err->message, "%s: %s", path, what);
}

JsonDoc *json_parse_file(const char *path, JsonError *err)
{
    char what[160];
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(what, sizeof what, "cannot open (%s); check the path", strerror(errno));
        file_error(err, path, what);
        return NULL;
    }
    /* Read in chunks rather than trusting ftell: works for pipes and special files too. */
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len == cap) {
            char *grown = cap <= ((size_t)-1) / 2 ? realloc(buf, cap * 2) : NULL;
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (!buf) {
        fclose(f);
        file_error(err, path, "out of memory while reading the file");
        return NULL;
    }
    if (ferror(f)) {
        snprintf(what, sizeof what, "read error (%s)", strerror(errno));
        fclose(f);
        free(buf);
        file_error(err, path, what);
        return NULL;
    }
    fclose(f);
    JsonDoc *doc = json_parse(buf, len, err);
    free(buf);
    if (!doc && err) {
        /* Prefix the path; a long path truncates the message, never overflows it. */
        char msg[sizeof err->message + 600];
        snprintf(msg, sizeof msg, "%.512s: %s", path, err->message);
        memcpy(err->message, msg, sizeof err->message - 1);
        err->message[sizeof err->message - 1] = '\0';
    }
    return doc;
}

/* ---- lookups ------------------------------------------------------------------------------- */

const char *json_type_name(JsonType type)
{
    switch (type) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return "boolean";
    case JSON_NUMBER: return "number";
    case JSON_STRING: return "string";
    case JSON_ARRAY: return "array";
    case JSON_OBJECT: return "object";
    }
    return "?";
}

const JsonValue *json_object_get(const JsonValue *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT || !key)
        return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < obj->u.object.count; i++) {
        const JsonMember *m = &obj->u.object.members[i];
        if (m->key_len == n && memcmp(m->key, key, n) == 0)
            return &m->value;
    }
    return NULL;
}

const JsonValue *json_array_at(const JsonValue *arr, size_t i)
{
    if (!arr || arr->type != JSON_ARRAY || i >= arr->u.array.count)
        return NULL;
    return &arr->u.array.items[i];
}

size_t json_length(const JsonValue *v)
{
    if (!v)
        return 0;
    if (v->type == JSON_ARRAY)
        return v->u.array.count;
    if (v->type == JSON_OBJECT)
        return v->u.object.count;
    return 0;
}

const char *json_as_string(const JsonValue *v) { return v && v->type == JSON_STRING ? v->u.string.chars : NULL; }

bool json_as_bool(const JsonValue *v, bool *out)
{
    if (!v || v->type != JSON_BOOL)
        return false;
    *out = v->u.boolean;
    return true;
}

bool json_as_double(const JsonValue *v, double *out)
{
    if (!v || v->type != JSON_NUMBER)
        return false;
    *out = v->u.number.value;
    return true;
}

bool json_as_int64(const JsonValue *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (!v || v->type != JSON_NUMBER || !v->u.number.is_int)
        return false;
    if (v->u.number.exact < lo || v->u.number.exact > hi)
        return false;
    *out = v->u.number.exact;
    return true;
}

/* ---- writing ------------------------------------------------------------------------------- */

size_t json_escape_string(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
#define EMIT(ch)                                                                                                    \
    do {                                                                                                            \
        if (n + 1 < cap)                                                                                            \
            out[n] = (ch);                                                                                          \
        n++;                                                                                                        \
    } while (0)
    EMIT('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char short_escape = 0;
        switch (c) {
        case '"': short_escape = '"'; break;
        case '\\': short_escape = '\\'; break;
        case '\b': short_escape = 'b'; break;
        case '\f': short_escape = 'f'; break;
        case '\n': short_escape = 'n'; break;
        case '\r': short_escape = 'r'; break;
        case '\t': short_escape = 't'; break;
        default: break;
        }
        if (short_escape) {
            EMIT('\\');
            EMIT(short_escape);
        } else if (c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            EMIT('\\');
            EMIT('u');
            EMIT('0');
            EMIT('0');
            EMIT(hex[c >> 4]);
            EMIT(hex[c & 15]);
        } else {
            EMIT((char)c);
        }
    }
    EMIT('"');
#undef EMIT
    if (cap > 0)
        out[n < cap ? n : cap - 1] = '\0';
    return n;
}

typedef struct {
    char *buf;
    size_t n, cap;
    bool oom;
} OutBuf;

static char *out_reserve(OutBuf *o, size_t extra)
{
    if (o->oom)
        return NULL;
    if (o->cap - o->n < extra + 1) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap - o->n < extra + 1)
            cap *= 2;
        char *grown = realloc(o->buf, cap);
        if (!grown) {
            o->oom = true;
            return NULL;
        }
        o->buf = grown;
        o->cap = cap;
    }
    return o->buf + o->n;
}

static void out_put(OutBuf *o, const char *s, size_t len)
{
    char *at = out_reserve(o, len);
    if (!at)
        return;
    memcpy(at, s, len);
    o->n += len;
    o->buf[o->n] = '\0';
}

static void out_string(OutBuf *o, const char *s, size_t len)
{
    size_t need = json_escape_string(s, len, NULL, 0);
    char *at = out_reserve(o, need);
    if (!at)
        return;
    json_escape_string(s, len, at, need + 1);
    o->n += need;
}

static void serialize(OutBuf *o, const JsonValue *v)
{
    char num[40];
    switch (v->type) {
    case JSON_NULL: out_put(o, "null", 4); break;
    case JSON_BOOL: v->u.boolean ? out_put(o, "true", 4) : out_put(o, "false", 5); break;
    case JSON_NUMBER: {
        int n = v->u.number.is_int ? snprintf(num, sizeof num, "%lld", (long long)v->u.number.exact)
                                   : snprintf(num, sizeof num, "%.17g", v->u.number.value);
        out_put(o, num, (size_t)n);
        break;
    }
    case JSON_STRING: out_string(o, v->u.string.chars, v->u.string.len); break;
    case JSON_ARRAY:
        out_put(o, "[", 1);
        for (size_t i = 0; i < v->u.array.count; i++) {
            if (i)
                out_put(o, ",", 1);
            serialize(o, &v->u.array.items[i]);
        }
        out_put(o, "]", 1);
        break;
    case JSON_OBJECT:
        out_put(o, "{", 1);
        for (size_t i = 0; i < v->u.object.count; i++) {
            const JsonMember *m = &v->u.object.members[i];
            if (i)
                out_put(o, ",", 1);
            out_string(o, m->key, m->key_len);
            out_put(o, ":", 1);
            serialize(o, &m->value);
        }
        out_put(o, "}", 1);
        break;
    }
}

char *json_serialize(const JsonValue *v, size_t *len_out)
{
    if (!v)
        return NULL;
    /* "%.17g" uses the thread's locale for the decimal point; JSON needs '.'. */
    locale_t c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0)
        return NULL;
    locale_t previous = uselocale(c_locale);
    OutBuf o = {0};
    out_reserve(&o, 0);
    if (!o.oom)
        o.buf[0] = '\0';
    serialize(&o, v);
    uselocale(previous);
    freelocale(c_locale);
    if (o.oom) {
        free(o.buf);
        return NULL;
    }
    if (len_out)
        *len_out = o.n;
    return o.buf;
}
