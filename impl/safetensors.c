/* safetensors.c — see safetensors.h. Validation first (every check before any tensor is handed
 * out), then lookups, conversions, and the atomic writer. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader hands out raw bytes and assumes a little-endian host"
#endif

/* Names in messages are cut here: a hostile header may hold megabyte-long names. */
#define NAME_FMT "\"%.80s\""

static void set_error(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_error(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* ---- dtypes ------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} dtype_info[SAFETENSORS_DTYPE_COUNT] = {
    [SAFETENSORS_BOOL] = {"BOOL", 1},       [SAFETENSORS_U8] = {"U8", 1},
    [SAFETENSORS_I8] = {"I8", 1},           [SAFETENSORS_F8_E5M2] = {"F8_E5M2", 1},
    [SAFETENSORS_F8_E4M3] = {"F8_E4M3", 1}, [SAFETENSORS_F8_E8M0] = {"F8_E8M0", 1},
    [SAFETENSORS_I16] = {"I16", 2},         [SAFETENSORS_U16] = {"U16", 2},
    [SAFETENSORS_F16] = {"F16", 2},         [SAFETENSORS_BF16] = {"BF16", 2},
    [SAFETENSORS_I32] = {"I32", 4},         [SAFETENSORS_U32] = {"U32", 4},
    [SAFETENSORS_F32] = {"F32", 4},         [SAFETENSORS_F64] = {"F64", 8},
    [SAFETENSORS_I64] = {"I64", 8},         [SAFETENSORS_U64] = {"U64", 8},
};

const char *safetensors_dtype_name(SafetensorsDtype dtype)
{
    return (unsigned)dtype < SAFETENSORS_DTYPE_COUNT ? dtype_info[dtype].name : "?";
}

size_t safetensors_dtype_size(SafetensorsDtype dtype)
{
    return (unsigned)dtype < SAFETENSORS_DTYPE_COUNT ? dtype_info[dtype].size : 0;
}

bool safetensors_dtype_parse(const char *name, SafetensorsDtype *out)
{
    for (int i = 0; i < SAFETENSORS_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (SafetensorsDtype)i;
            return true;
        }
    return false;
}

SafetensorsDtype safetensors_from_dtype(DType dtype)
{
    switch (dtype) {
    case DTYPE_F32: return SAFETENSORS_F32;
    case DTYPE_BF16: return SAFETENSORS_BF16;
    case DTYPE_F16: return SAFETENSORS_F16;
    case DTYPE_I32: return SAFETENSORS_I32;
    case DTYPE_I64: return SAFETENSORS_I64;
    case DTYPE_U8: return SAFETENSORS_U8;
    }
    return SAFETENSORS_DTYPE_COUNT;
}

bool safetensors_to_dtype(SafetensorsDtype dtype, DType *out)
{
    switch (dtype) {
    case SAFETENSORS_F32: *out = DTYPE_F32; return true;
    case SAFETENSORS_BF16: *out = DTYPE_BF16; return true;
    case SAFETENSORS_F16: *out = DTYPE_F16; return true;
    case SAFETENSORS_I32: *out = DTYPE_I32; return true;
    case SAFETENSORS_I64: *out = DTYPE_I64; return true;
    case SAFETENSORS_U8: *out = DTYPE_U8; return true;
    default: return false;
    }
}

char *safetensors_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    if (cap == 0)
        return buf;
    size_t used = 0;
    buf[0] = '\0';
    int n = snprintf(buf, cap, "(");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < ndim && used < cap; i++) {
        n = snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used < cap)
        snprintf(buf + used, cap - used, ")");
    return buf;
}

/* ---- half-precision conversions -------------------------------------------------------------- */

static float f32_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t f32_bits(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

float safetensors_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    if (exp == 0x1F) /* inf or NaN: payload and sign carried over */
        return f32_from_bits(sign | 0x7F800000u | (mant << 13));
    if (exp != 0)
        return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13)); /* rebias 15 → 127 */
    if (mant == 0)
        return f32_from_bits(sign); /* ±0 */
    /* Subnormal mant × 2^-24: normalise so the leading 1 becomes f32's implicit bit. */
    uint32_t e = 113; /* the biased f32 exponent of 2^-14, the f16 subnormal scale × 2^10 */
    while (!(mant & 0x400u)) {
        mant <<= 1;
        e--;
    }
    return f32_from_bits(sign | (e << 23) | ((mant & 0x3FFu) << 13));
}

float safetensors_bf16_to_f32(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }

uint16_t safetensors_f32_to_bf16(float value)
{
    uint32_t x = f32_bits(value);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) /* NaN: keep sign and top payload, force quiet */
        return (uint16_t)((x >> 16) | 0x0040u);
    /* Round to nearest, ties to even; a carry out of the mantissa correctly bumps the exponent
     * and turns the largest finite values into inf. */
    x += 0x7FFFu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

uint16_t safetensors_f32_to_f16(float value)
{
    uint32_t x = f32_bits(value);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) /* NaN: keep the top payload bits, force quiet */
        return (uint16_t)(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));
    if (ax == 0x7F800000u)
        return (uint16_t)(sign | 0x7C00u);
    int exp = (int)(ax >> 23) - 127 + 15; /* the f16 biased exponent */
    if (exp >= 31)
        return (uint16_t)(sign | 0x7C00u); /* >= 65536: beyond even rounding down to 65504 */
    if (exp <= 0) {
        if (exp < -10)
            return sign; /* below 2^-25, half the smallest subnormal: rounds to 0 */
        /* value / 2^-24 = mant × 2^(exp − 14), mant with its implicit bit */
        uint32_t mant = (ax & 0x7FFFFFu) | 0x800000u;
        int shift = 14 - exp;
        uint32_t r = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u)))
            r++; /* may carry into 0x400, the smallest normal: the right encoding */
        return (uint16_t)(sign | r);
    }
    uint32_t h = ((uint32_t)exp << 10) | ((ax >> 13) & 0x3FFu), rem = ax & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* a mantissa carry bumps the exponent; 30 → 31 gives exactly inf */
    return (uint16_t)(sign | h);
}

/* ---- the open file -------------------------------------------------------------------------- */

struct SafetensorsFile {
    char *path;
    const unsigned char *bytes; /* the whole file image: [len] */
    size_t len;
    void *map;                  /* our mapping of it (NULL for memory images and empty files) */
    size_t map_len;
    JsonDoc *doc;               /* tensor names and metadata strings live here */
    SafetensorsTensor *tensors; /* [n], header order */
    int n;
    int *by_name;               /* [n] indices sorted by name, for bsearch */
    const char **meta_keys, **meta_values; /* [n_meta] */
    int n_meta;
};

void safetensors_close(SafetensorsFile *f)
{
    if (!f)
        return;
    if (f->map)
        munmap(f->map, f->map_len);
    json_free(f->doc);
    free(f->tensors);
    free(f->by_name);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    free(f);
}

const char *safetensors_path(const SafetensorsFile *f) { return f->path; }
int safetensors_count(const SafetensorsFile *f) { return f->n; }
int safetensors_metadata_count(const SafetensorsFile *f) { return f->n_meta; }

const SafetensorsTensor *safetensors_tensor_at(const SafetensorsFile *f, int i)
{
    return i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

bool safetensors_metadata_at(const SafetensorsFile *f, int i, const char **key, const char **value)
{
    if (i < 0 || i >= f->n_meta)
        return false;
    *key = f->meta_keys[i];
    *value = f->meta_values[i];
    return true;
}

const char *safetensors_metadata_get(const SafetensorsFile *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}

const SafetensorsTensor *safetensors_find(const SafetensorsFile *f, const char *name)
{
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const SafetensorsTensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- validation --------------------------------------------------------------------------- */

/* qsort has no user pointer; the comparators get pointers to these pairs instead. */
typedef struct {
    const SafetensorsTensor *t;
    int index;
} TensorRef;

static int compare_by_offsets(const void *a, const void *b)
{
    const SafetensorsTensor *x = ((const TensorRef *)a)->t, *y = ((const TensorRef *)b)->t;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int compare_by_name(const void *a, const void *b)
{
    return strcmp(((const TensorRef *)a)->t->name, ((const TensorRef *)b)->t->name);
}

static void dtype_list(char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < SAFETENSORS_DTYPE_COUNT && used < cap; i++) {
        int n = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", dtype_info[i].name);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* "an array", "a string", "null": a JSON type for a sentence. */
static const char *type_phrase(JsonType type)
{
    switch (type) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return "a boolean";
    case JSON_NUMBER: return "a number";
    case JSON_STRING: return "a string";
    case JSON_ARRAY: return "an array";
    case JSON_OBJECT: return "an object";
    }
    return "?";
}

/* Parses and checks one "name": {...} header entry into t (data pointer not yet set). */
static bool parse_entry(const SafetensorsFile *f, const JsonMember *m, uint64_t data_len, SafetensorsTensor *t,
                        char *err, size_t cap)
{
    const char *path = f->path;
    const JsonValue *v = &m->value;
    t->name = m->key;
    if (m->key_len == 0) {
        set_error(err, cap, "%s: a tensor has an empty name", path);
        return false;
    }
    if (v->type != JSON_OBJECT) {
        set_error(err, cap, "%s: tensor " NAME_FMT ": expected an object {dtype, shape, data_offsets}, found %s",
                  path, m->key, type_phrase(v->type));
        return false;
    }
    for (size_t i = 0; i < v->u.object.count; i++) {
        const char *k = v->u.object.members[i].key;
        if (strcmp(k, "dtype") != 0 && strcmp(k, "shape") != 0 && strcmp(k, "data_offsets") != 0) {
            set_error(err, cap, "%s: tensor " NAME_FMT ": unknown field \"%.40s\" (expected dtype, shape, data_offsets)",
                      path, m->key, k);
            return false;
        }
    }
    static const char *const fields[] = {"dtype", "shape", "data_offsets"};
    for (int i = 0; i < 3; i++)
        if (!json_object_get(v, fields[i])) {
            set_error(err, cap, "%s: tensor " NAME_FMT ": missing field \"%s\"", path, m->key, fields[i]);
            return false;
        }

    const char *dtype = json_as_string(json_object_get(v, "dtype"));
    if (!dtype) {
        set_error(err, cap, "%s: tensor " NAME_FMT ": \"dtype\" must be a string, found %s", path, m->key,
                  type_phrase(json_object_get(v, "dtype")->type));
        return false;
    }
    if (!safetensors_dtype_parse(dtype, &t->dtype)) {
        char known[200];
        dtype_list(known, sizeof known);
        set_error(err, cap, "%s: tensor " NAME_FMT ": unknown dtype \"%.20s\" (supported: %s)", path, m->key, dtype,
                  known);
        return false;
    }

    const JsonValue *shape = json_object_get(v, "shape");
    if (shape->type != JSON_ARRAY) {
        set_error(err, cap, "%s: tensor " NAME_FMT ": \"shape\" must be an array of integers, found %s", path,
                  m->key, type_phrase(shape->type));
        return false;
    }
    if (shape->u.array.count > SAFETENSORS_MAX_DIMS) {
        set_error(err, cap, "%s: tensor " NAME_FMT ": shape has %zu dims (at most %d supported)", path, m->key,
                  shape->u.array.count, SAFETENSORS_MAX_DIMS);
        return false;
    }
    t->ndim = (int)shape->u.array.count;
    uint64_t numel = 1;
    bool overflow = false;
    for (int d = 0; d < t->ndim; d++) {
        if (!json_as_int64(json_array_at(shape, (size_t)d), 0, INT64_MAX, &t->shape[d])) {
            set_error(err, cap, "%s: tensor " NAME_FMT ": shape[%d] is not an integer >= 0", path, m->key, d);
            return false;
        }
        overflow |= __builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel);
    }
    uint64_t nbytes = 0;
    overflow |= __builtin_mul_overflow(numel, (uint64_t)safetensors_dtype_size(t->dtype), &nbytes);
    overflow |= numel > (uint64_t)INT64_MAX;
    char shape_buf[160];
    safetensors_shape_str(t->ndim, t->shape, shape_buf, sizeof shape_buf);
    if (overflow) {
        set_error(err, cap, "%s: tensor " NAME_FMT ": shape %s is too large (its byte size overflows 64 bits)", path,
                  m->key, shape_buf);
        return false;
    }
    t->numel = (int64_t)numel;

    const JsonValue *offs = json_object_get(v, "data_offsets");
    int64_t begin, end;
    if (offs->type != JSON_ARRAY || offs->u.array.count != 2 ||
        !json_as_int64(json_array_at(offs, 0), 0, INT64_MAX, &begin) ||
        !json_as_int64(json_array_at(offs, 1), 0, INT64_MAX, &end)) {
        set_error(err, cap, "%s: tensor " NAME_FMT ": \"data_offsets\" must be [begin, end], two integers >= 0", path,
                  m->key);
        return false;
    }
    t->begin = (uint64_t)begin;
    t->end = (uint64_t)end;
    if (t->begin > t->end) {
        set_error(err, cap, "%s: tensor " NAME_FMT ": data_offsets [%llu, %llu] end before they begin", path, m->key,
                  (unsigned long long)t->begin, (unsigned long long)t->end);
        return false;
    }
    if (t->end - t->begin != nbytes) {
        set_error(err, cap,
                  "%s: tensor " NAME_FMT ": data_offsets [%llu, %llu] hold %llu bytes, but dtype %s with shape %s "
                  "needs %llu bytes",
                  path, m->key, (unsigned long long)t->begin, (unsigned long long)t->end,
                  (unsigned long long)(t->end - t->begin), dtype_info[t->dtype].name, shape_buf,
                  (unsigned long long)nbytes);
        return false;
    }
    if (t->end > data_len) {
        set_error(err, cap,
                  "%s: tensor " NAME_FMT ": data_offsets [%llu, %llu] reach past the end of the data section "
                  "(%llu bytes): the file is truncated or the offsets are wrong",
                  path, m->key, (unsigned long long)t->begin, (unsigned long long)t->end,
                  (unsigned long long)data_len);
        return false;
    }
    return true;
}

static bool parse_metadata(SafetensorsFile *f, const JsonValue *v, char *err, size_t cap)
{
    if (v->type != JSON_OBJECT) {
        set_error(err, cap, "%s: \"__metadata__\" must be an object of strings, found %s", f->path,
                  type_phrase(v->type));
        return false;
    }
    size_t n = v->u.object.count;
    f->meta_keys = calloc(n ? n : 1, sizeof *f->meta_keys);
    f->meta_values = calloc(n ? n : 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values) {
        set_error(err, cap, "%s: out of memory", f->path);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const JsonMember *m = &v->u.object.members[i];
        if (m->value.type != JSON_STRING) {
            set_error(err, cap, "%s: __metadata__ entry \"%.80s\" must be a string, found %s", f->path, m->key,
                      type_phrase(m->value.type));
            return false;
        }
        f->meta_keys[i] = m->key;
        f->meta_values[i] = m->value.u.string.chars;
    }
    f->n_meta = (int)n;
    return true;
}

static bool validate(SafetensorsFile *f, char *err, size_t cap)
{
    const char *path = f->path;
    if (f->len == 0) {
        set_error(err, cap, "%s: the file is empty (0 bytes), not a safetensors file", path);
        return false;
    }
    if (f->len < 8) {
        set_error(err, cap, "%s: the file is only %zu bytes, too short for a safetensors file (it starts with an 8-byte header length)",
                  path, f->len);
        return false;
    }
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = (header_len << 8) | f->bytes[i];
    if (header_len > SAFETENSORS_MAX_HEADER_BYTES) {
        set_error(err, cap, "%s: header length %llu is above the %llu-byte limit: not a safetensors file, or corrupted",
                  path, (unsigned long long)header_len, SAFETENSORS_MAX_HEADER_BYTES);
        return false;
    }
    if (header_len > f->len - 8) {
        set_error(err, cap, "%s: header length %llu exceeds the %zu bytes after the length field (file size %zu): the file is truncated or not a safetensors file",
                  path, (unsigned long long)header_len, f->len - 8, f->len);
        return false;
    }
    const char *header = (const char *)f->bytes + 8;
    JsonError jerr;
    f->doc = json_parse(header, (size_t)header_len, &jerr);
    if (!f->doc) {
        /* Re-anchor the parser's position: byte offsets of the header alone would mislead. */
        const char *what = strstr(jerr.message, "): ");
        set_error(err, cap, "%s: the JSON header is invalid at line %d, column %d (file byte %llu): %s", path,
                  jerr.line, jerr.column, (unsigned long long)(8 + jerr.offset), what ? what + 3 : jerr.message);
        return false;
    }
    const JsonValue *root = json_root(f->doc);
    if (root->type != JSON_OBJECT) {
        set_error(err, cap, "%s: the JSON header is %s; expected an object of tensor entries", path,
                  type_phrase(root->type));
        return false;
    }
    uint64_t data_len = f->len - 8 - header_len;
    size_t members = root->u.object.count;
    if (members > (size_t)INT32_MAX) {
        set_error(err, cap, "%s: too many header entries", path);
        return false;
    }
    f->tensors = calloc(members ? members : 1, sizeof *f->tensors);
    f->by_name = calloc(members ? members : 1, sizeof *f->by_name);
    TensorRef *refs = calloc(members ? members : 1, sizeof *refs);
    if (!f->tensors || !f->by_name || !refs) {
        free(refs);
        set_error(err, cap, "%s: out of memory for %zu header entries", path, members);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < members && ok; i++) {
        const JsonMember *m = &root->u.object.members[i];
        if (strcmp(m->key, "__metadata__") == 0)
            ok = parse_metadata(f, &m->value, err, cap);
        else if ((ok = parse_entry(f, m, data_len, &f->tensors[f->n], err, cap)))
            f->n++;
    }
    if (ok) {
        /* The ranges must tile [0, data_len): sorted by (begin, end), each starts where the
         * previous ended. Zero-byte tensors sit anywhere on a boundary. */
        for (int i = 0; i < f->n; i++)
            refs[i] = (TensorRef){&f->tensors[i], i};
        qsort(refs, (size_t)f->n, sizeof *refs, compare_by_offsets);
        uint64_t at = 0;
        const SafetensorsTensor *prev = NULL;
        for (int i = 0; i < f->n && ok; i++) {
            const SafetensorsTensor *t = refs[i].t;
            if (t->begin < at) {
                set_error(err, cap, "%s: tensors " NAME_FMT " [%llu, %llu] and " NAME_FMT " [%llu, %llu] overlap in the data section",
                          path, prev->name, (unsigned long long)prev->begin, (unsigned long long)prev->end, t->name,
                          (unsigned long long)t->begin, (unsigned long long)t->end);
                ok = false;
            } else if (t->begin > at) {
                set_error(err, cap, "%s: hole in the data section: bytes [%llu, %llu) before tensor " NAME_FMT " belong to no tensor (the format requires tensors to cover the data section contiguously)",
                          path, (unsigned long long)at, (unsigned long long)t->begin, t->name);
                ok = false;
            }
            at = t->end;
            prev = t;
        }
        if (ok && at != data_len) {
            set_error(err, cap, "%s: the data section has %llu bytes after the last tensor (tensors cover %llu of %llu bytes): trailing garbage, or tensors missing from the header",
                      path, (unsigned long long)(data_len - at), (unsigned long long)at, (unsigned long long)data_len);
            ok = false;
        }
    }
    if (ok) {
        const unsigned char *data = f->bytes + 8 + header_len;
        for (int i = 0; i < f->n; i++)
            f->tensors[i].data = data + f->tensors[i].begin;
        for (int i = 0; i < f->n; i++)
            refs[i] = (TensorRef){&f->tensors[i], i};
        qsort(refs, (size_t)f->n, sizeof *refs, compare_by_name);
        for (int i = 0; i < f->n; i++)
            f->by_name[i] = refs[i].index;
        /* Names are unique: the JSON parser rejects duplicate keys. */
    }
    free(refs);
    return ok;
}

static SafetensorsFile *file_new(const char *label)
{
    SafetensorsFile *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->path = strdup(label ? label : "<memory>");
    if (!f->path) {
        free(f);
        return NULL;
    }
    return f;
}

SafetensorsFile *safetensors_open_memory(const void *bytes, size_t len, const char *label, char *err, size_t err_cap)
{
    SafetensorsFile *f = file_new(label);
    if (!f) {
        set_error(err, err_cap, "%s: out of memory", label ? label : "<memory>");
        return NULL;
    }
    f->bytes = bytes;
    f->len = bytes ? len : 0;
    if (!validate(f, err, err_cap)) {
        safetensors_close(f);
        return NULL;
    }
    return f;
}

SafetensorsFile *safetensors_open(const char *path, char *err, size_t err_cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_error(err, err_cap, "%s: cannot open (%s); check the path", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_error(err, err_cap, "%s: cannot stat (%s)", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        set_error(err, err_cap, "%s: is a directory, not a safetensors file", path);
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        set_error(err, err_cap, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    SafetensorsFile *f = file_new(path);
    if (!f) {
        set_error(err, err_cap, "%s: out of memory", path);
        close(fd);
        return NULL;
    }
    f->len = (size_t)st.st_size;
    if (f->len > 0) { /* mmap of 0 bytes is an error; validate reports the empty file */
        void *map = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            set_error(err, err_cap, "%s: cannot map the file (%s)", path, strerror(errno));
            close(fd);
            safetensors_close(f);
            return NULL;
        }
        f->map = map;
        f->map_len = f->len;
        f->bytes = map;
    }
    close(fd); /* the mapping keeps the file alive */
    if (!validate(f, err, err_cap)) {
        safetensors_close(f);
        return NULL;
    }
    return f;
}

/* ---- typed reads ------------------------------------------------------------------------- */

bool safetensors_read_f32(const SafetensorsTensor *t, float *out, int64_t n, char *err, size_t err_cap)
{
    if (n != t->numel) {
        set_error(err, err_cap, "tensor " NAME_FMT ": has %lld elements, the destination %lld", t->name,
                  (long long)t->numel, (long long)n);
        return false;
    }
    const unsigned char *src = t->data;
    switch (t->dtype) {
    case SAFETENSORS_F32:
        if (n)
            memcpy(out, src, (size_t)n * 4);
        return true;
    case SAFETENSORS_F16:
    case SAFETENSORS_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = t->dtype == SAFETENSORS_F16 ? safetensors_f16_to_f32(h) : safetensors_bf16_to_f32(h);
        }
        return true;
    case SAFETENSORS_F64:
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            out[i] = (float)d;
        }
        return true;
    default:
        set_error(err, err_cap, "tensor " NAME_FMT ": dtype %s is not a floating-point type (expected F32, F16, BF16 or F64)",
                  t->name, safetensors_dtype_name(t->dtype));
        return false;
    }
}

bool safetensors_read_i64(const SafetensorsTensor *t, int64_t *out, int64_t n, char *err, size_t err_cap)
{
    if (n != t->numel) {
        set_error(err, err_cap, "tensor " NAME_FMT ": has %lld elements, the destination %lld", t->name,
                  (long long)t->numel, (long long)n);
        return false;
    }
    const unsigned char *src = t->data;
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case SAFETENSORS_I64: memcpy(&out[i], src + 8 * i, 8); break;
        case SAFETENSORS_U64: {
            uint64_t u;
            memcpy(&u, src + 8 * i, 8);
            if (u > (uint64_t)INT64_MAX) {
                set_error(err, err_cap, "tensor " NAME_FMT ": element %lld (%llu) does not fit int64", t->name,
                          (long long)i, (unsigned long long)u);
                return false;
            }
            out[i] = (int64_t)u;
            break;
        }
        case SAFETENSORS_I32: { int32_t v; memcpy(&v, src + 4 * i, 4); out[i] = v; break; }
        case SAFETENSORS_U32: { uint32_t v; memcpy(&v, src + 4 * i, 4); out[i] = v; break; }
        case SAFETENSORS_I16: { int16_t v; memcpy(&v, src + 2 * i, 2); out[i] = v; break; }
        case SAFETENSORS_U16: { uint16_t v; memcpy(&v, src + 2 * i, 2); out[i] = v; break; }
        case SAFETENSORS_I8: out[i] = (int8_t)src[i]; break;
        case SAFETENSORS_U8:
        case SAFETENSORS_BOOL: out[i] = src[i]; break;
        default:
            set_error(err, err_cap, "tensor " NAME_FMT ": dtype %s is not an integer type", t->name,
                      safetensors_dtype_name(t->dtype));
            return false;
        }
    }
    return true;
}

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t n, cap;
    bool oom;
} Text;

static void text_put(Text *s, const char *p, size_t len)
{
    if (s->oom)
        return;
    if (s->cap - s->n < len + 1) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap - s->n < len + 1)
            cap *= 2;
        char *grown = realloc(s->buf, cap);
        if (!grown) {
            s->oom = true;
            return;
        }
        s->buf = grown;
        s->cap = cap;
    }
    memcpy(s->buf + s->n, p, len);
    s->n += len;
    s->buf[s->n] = '\0';
}

static void text_str(Text *s, const char *str) { text_put(s, str, strlen(str)); }

static void text_json_string(Text *s, const char *str)
{
    size_t len = strlen(str), need = json_escape_string(str, len, NULL, 0);
    char *tmp = malloc(need + 1);
    if (!tmp) {
        s->oom = true;
        return;
    }
    json_escape_string(str, len, tmp, need + 1);
    text_put(s, tmp, need);
    free(tmp);
}

/* Write order: larger elements first (keeps every tensor aligned to its element size), then
 * by name, so the same tensors always give the same bytes. */
typedef struct {
    size_t elem_size;
    const char *name;
    int index;
} WriteRef;

static int compare_write_order(const void *a, const void *b)
{
    const WriteRef *x = a, *y = b;
    if (x->elem_size != y->elem_size)
        return x->elem_size > y->elem_size ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A layout: the header text (padded) and the order and sizes of the tensors. */
typedef struct {
    Text header;   /* JSON, padded with spaces so 8 + header.n is a multiple of 8 */
    int *order;    /* [n] indices into tensors, in data order */
    uint64_t *nbytes; /* [n] bytes of tensors[i] */
    uint64_t data_len;
} Layout;

static void layout_free(Layout *L)
{
    free(L->header.buf);
    free(L->order);
    free(L->nbytes);
}

static bool check_unique(const char **names, int n, const char *what, const char *path, char *err, size_t cap)
{
    qsort(names, (size_t)n, sizeof *names, compare_strings);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            set_error(err, cap, "%s: duplicate %s " NAME_FMT, path, what, names[i]);
            return false;
        }
    return true;
}

static bool build_layout(const char *path, const SafetensorsWriteTensor *tensors, int n, const SafetensorsMeta *meta,
                         int n_meta, Layout *L, char *err, size_t cap)
{
    memset(L, 0, sizeof *L);
    if (n < 0 || n_meta < 0 || (n > 0 && !tensors) || (n_meta > 0 && !meta)) {
        set_error(err, cap, "%s: bad tensor or metadata list (n_tensors %d, n_meta %d)", path, n, n_meta);
        return false;
    }
    L->order = malloc(sizeof *L->order * (size_t)(n ? n : 1));
    L->nbytes = malloc(sizeof *L->nbytes * (size_t)(n ? n : 1));
    const char **names = malloc(sizeof *names * (size_t)(n + n_meta + 1));
    if (!L->order || !L->nbytes || !names) {
        free(names);
        set_error(err, cap, "%s: out of memory", path);
        return false;
    }
    for (int i = 0; i < n; i++) {
        const SafetensorsWriteTensor *t = &tensors[i];
        if (!t->name || !t->name[0] || strcmp(t->name, "__metadata__") == 0) {
            set_error(err, cap, "%s: tensor %d has an invalid name (%s)", path, i,
                      !t->name ? "NULL" : !t->name[0] ? "empty" : "\"__metadata__\" is reserved");
            goto fail;
        }
        if ((unsigned)t->dtype >= SAFETENSORS_DTYPE_COUNT) {
            set_error(err, cap, "%s: tensor " NAME_FMT ": invalid dtype %d", path, t->name, (int)t->dtype);
            goto fail;
        }
        if (t->ndim < 0 || t->ndim > SAFETENSORS_MAX_DIMS || (t->ndim > 0 && !t->shape)) {
            set_error(err, cap, "%s: tensor " NAME_FMT ": %d dims (0..%d supported)", path, t->name, t->ndim,
                      SAFETENSORS_MAX_DIMS);
            goto fail;
        }
        uint64_t bytes = safetensors_dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0 || __builtin_mul_overflow(bytes, (uint64_t)t->shape[d], &bytes)) {
                set_error(err, cap, "%s: tensor " NAME_FMT ": bad dim %d (%lld)", path, t->name, d,
                          (long long)t->shape[d]);
                goto fail;
            }
        }
        if (bytes > 0 && !t->data) {
            set_error(err, cap, "%s: tensor " NAME_FMT ": data is NULL (a meta-backend tensor has nothing to write)",
                      path, t->name);
            goto fail;
        }
        L->nbytes[i] = bytes;
        L->order[i] = i;
        names[i] = t->name;
    }
    if (!check_unique(names, n, "tensor name", path, err, cap))
        goto fail;
    for (int i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].key[0] || !meta[i].value) {
            set_error(err, cap, "%s: metadata entry %d needs a non-empty key and a value", path, i);
            goto fail;
        }
        names[i] = meta[i].key;
    }
    if (!check_unique(names, n_meta, "metadata key", path, err, cap))
        goto fail;
    free(names);
    names = NULL;

    WriteRef *refs = malloc(sizeof *refs * (size_t)(n ? n : 1));
    if (!refs) {
        set_error(err, cap, "%s: out of memory", path);
        goto fail;
    }
    for (int i = 0; i < n; i++)
        refs[i] = (WriteRef){safetensors_dtype_size(tensors[i].dtype), tensors[i].name, i};
    qsort(refs, (size_t)n, sizeof *refs, compare_write_order);
    for (int i = 0; i < n; i++)
        L->order[i] = refs[i].index;
    free(refs);

    Text *h = &L->header;
    char num[96];
    text_str(h, "{");
    bool first = true;
    if (n_meta > 0) {
        text_str(h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i)
                text_str(h, ",");
            text_json_string(h, meta[i].key);
            text_str(h, ":");
            text_json_string(h, meta[i].value);
        }
        text_str(h, "}");
        first = false;
    }
    uint64_t at = 0;
    for (int k = 0; k < n; k++) {
        const SafetensorsWriteTensor *t = &tensors[L->order[k]];
        if (!first)
            text_str(h, ",");
        first = false;
        text_json_string(h, t->name);
        text_str(h, ":{\"dtype\":\"");
        text_str(h, safetensors_dtype_name(t->dtype));
        text_str(h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            text_str(h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at,
                 (unsigned long long)(at + L->nbytes[L->order[k]]));
        text_str(h, num);
        at += L->nbytes[L->order[k]];
    }
    text_str(h, "}");
    while (!h->oom && (8 + h->n) % 8 != 0)
        text_str(h, " ");
    if (h->oom) {
        set_error(err, cap, "%s: out of memory building the header", path);
        goto fail;
    }
    if (h->n > SAFETENSORS_MAX_HEADER_BYTES) {
        set_error(err, cap, "%s: the header would be %zu bytes, above the format's %llu-byte limit", path, h->n,
                  SAFETENSORS_MAX_HEADER_BYTES);
        goto fail;
    }
    L->data_len = at;
    return true;
fail:
    free(names);
    layout_free(L);
    return false;
}

static void put_u64_le(unsigned char out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(v >> (8 * i));
}

void *safetensors_serialize(const SafetensorsWriteTensor *tensors, int n_tensors, const SafetensorsMeta *meta,
                            int n_meta, size_t *len_out, char *err, size_t err_cap)
{
    Layout L;
    if (!build_layout("<memory>", tensors, n_tensors, meta, n_meta, &L, err, err_cap))
        return NULL;
    uint64_t total = 8 + L.header.n + L.data_len;
    unsigned char *out = total <= SIZE_MAX ? malloc((size_t)total) : NULL;
    if (!out) {
        set_error(err, err_cap, "<memory>: out of memory (%llu bytes)", (unsigned long long)total);
        layout_free(&L);
        return NULL;
    }
    put_u64_le(out, L.header.n);
    memcpy(out + 8, L.header.buf, L.header.n);
    size_t at = 8 + L.header.n;
    for (int k = 0; k < n_tensors; k++) {
        size_t nb = (size_t)L.nbytes[L.order[k]];
        if (nb)
            memcpy(out + at, tensors[L.order[k]].data, nb);
        at += nb;
    }
    *len_out = (size_t)total;
    layout_free(&L);
    return out;
}

/* The directory part of path ("." when there is none), for fsync after the rename. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

bool safetensors_write(const char *path, const SafetensorsWriteTensor *tensors, int n_tensors,
                       const SafetensorsMeta *meta, int n_meta, char *err, size_t err_cap)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        set_error(err, err_cap, "%s: is a directory; give a file path to write the checkpoint to", path);
        return false;
    }
    Layout L;
    if (!build_layout(path, tensors, n_tensors, meta, n_meta, &L, err, err_cap))
        return false;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        set_error(err, err_cap, "%s: out of memory", path);
        layout_free(&L);
        return false;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);

    bool ok = false;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        set_error(err, err_cap, "%s: cannot create the temporary file %s (%s); check that the directory exists and is writable",
                  path, tmp, strerror(errno));
        goto done;
    }
    unsigned char len_bytes[8];
    put_u64_le(len_bytes, L.header.n);
    bool written = fwrite(len_bytes, 1, 8, fp) == 8 && fwrite(L.header.buf, 1, L.header.n, fp) == L.header.n;
    for (int k = 0; k < n_tensors && written; k++) {
        size_t nb = (size_t)L.nbytes[L.order[k]];
        written = nb == 0 || fwrite(tensors[L.order[k]].data, 1, nb, fp) == nb;
    }
    if (!written || fflush(fp) != 0) {
        set_error(err, err_cap, "%s: writing %s failed (%s); nothing was replaced", path, tmp, strerror(errno));
        fclose(fp);
        unlink(tmp);
        goto done;
    }
    if (fsync(fileno(fp)) != 0) {
        set_error(err, err_cap, "%s: fsync of %s failed (%s); nothing was replaced", path, tmp, strerror(errno));
        fclose(fp);
        unlink(tmp);
        goto done;
    }
    if (fclose(fp) != 0) {
        set_error(err, err_cap, "%s: closing %s failed (%s); nothing was replaced", path, tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        set_error(err, err_cap, "%s: cannot rename %s over it (%s); nothing was replaced", path, tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
    /* Make the rename itself durable. The new file is complete either way, so a directory that
     * cannot be opened or synced (some network file systems) is not an error. */
    char *dir = dir_of(path);
    if (dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    ok = true;
done:
    free(tmp);
    layout_free(&L);
    return ok;
}
