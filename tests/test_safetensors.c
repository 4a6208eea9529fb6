/* test_safetensors.c — the safetensors reader/writer and checkpoint loading: round trips,
 * f16/bf16 conversions, every validation failure with its message, all-or-nothing checkpoint
 * loads, atomic writes, and a deterministic fuzz of random bytes and header edits (SAN=1). */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "impl/checkpoint.h"
#include "impl/safetensors.h"
#include "kernels/params.h"
#include "test_util.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static char *make_tmpdir(void)
{
    char *dir = strdup("/tmp/focusbench_st_XXXXXX");
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    return dir;
}

/* Names of the entries in dir (excluding . and ..), joined by spaces, sorted. */
static void dir_listing(const char *dir, char *out, size_t cap)
{
    char names[32][256];
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 32) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: a handful of names */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[256];
            memcpy(t, names[j], sizeof t);
            memcpy(names[j], names[j - 1], sizeof t);
            memcpy(names[j - 1], t, sizeof t);
        }
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        strncat(out, i ? " " : "", cap - strlen(out) - 1);
        strncat(out, names[i], cap - strlen(out) - 1);
    }
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void write_bytes(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* A raw file image: 8-byte little-endian length (header_len_field, usually strlen(header)),
 * the header text, then data_len bytes counting 0, 1, 2, ... */
static unsigned char *raw_file(uint64_t header_len_field, const char *header, size_t data_len, size_t *len)
{
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    unsigned char *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(header_len_field >> (8 * i));
    memcpy(buf + 8, header, h);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + h + i] = (unsigned char)i;
    return buf;
}

/* Opening the image must fail with a message that starts with the label and contains `what`. */
static void expect_reject(const unsigned char *bytes, size_t len, const char *what)
{
    char err[1024];
    SafetensorsFile *f = safetensors_open_memory(bytes, len, "t.safetensors", err, sizeof err);
    if (f) {
        safetensors_close(f);
        fail_msg("expected the file to be rejected (%s)", what);
    }
    if (strncmp(err, "t.safetensors: ", 15) != 0 || !strstr(err, what))
        fail_msg("expected \"%s\" in: %s", what, err);
}

static void expect_header_reject(const char *header, size_t data_len, const char *what)
{
    size_t len;
    unsigned char *buf = raw_file(strlen(header), header, data_len, &len);
    expect_reject(buf, len, what);
    free(buf);
}

static SafetensorsFile *expect_header_ok(const char *header, size_t data_len, unsigned char **buf_out)
{
    size_t len;
    unsigned char *buf = raw_file(strlen(header), header, data_len, &len);
    char err[1024];
    SafetensorsFile *f = safetensors_open_memory(buf, len, "t.safetensors", err, sizeof err);
    if (!f)
        fail_msg("expected %s to be accepted: %s", header, err);
    *buf_out = buf;
    return f;
}

/* ---- round trip ---------------------------------------------------------------------------- */

static void test_safetensors_write_read_round_trip(void **state)
{
    char *dir = make_tmpdir();
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);

    float w[6] = {1.0f, -2.5f, 3.25f, 1e-30f, -0.0f, 65504.0f};
    uint16_t h[5] = {0x3C00, 0xC100, 0x7BFF, 0x0001, 0x7C00};
    uint16_t b[3] = {0x3F80, 0xC020, 0x0001};
    int64_t idx[4] = {0, -1, INT64_MAX, INT64_MIN};
    uint8_t mask[3] = {1, 0, 255};
    float scalar = 42.0f;
    int64_t s23[2] = {2, 3}, s5[1] = {5}, s3[1] = {3}, s4[1] = {4}, s03[2] = {0, 3};
    SafetensorsWriteTensor list[] = {
        {"w", SAFETENSORS_F32, 2, s23, w},    {"h", SAFETENSORS_F16, 1, s5, h},
        {"b", SAFETENSORS_BF16, 1, s3, b},    {"idx", SAFETENSORS_I64, 1, s4, idx},
        {"mask", SAFETENSORS_U8, 1, s3, mask}, {"scalar", SAFETENSORS_F32, 0, NULL, &scalar},
        {"empty", SAFETENSORS_F32, 2, s03, NULL},
    };
    int n = (int)(sizeof list / sizeof list[0]);
    SafetensorsMeta meta[] = {{"format", "pt"}, {"note", "quote \" backslash \\ newline \n caf\xC3\xA9"}};
    char err[1024];
    assert_true(safetensors_write(path, list, n, meta, 2, err, sizeof err));

    char listing[512];
    dir_listing(dir, listing, sizeof listing);
    assert_string_equal(listing, "model.safetensors"); /* no temporary left behind */

    SafetensorsFile *f = safetensors_open(path, err, sizeof err);
    if (!f)
        fail_msg("%s", err);
    assert_string_equal(safetensors_path(f), path);
    assert_int_equal(safetensors_count(f), n);
    assert_int_equal(safetensors_metadata_count(f), 2);
    assert_string_equal(safetensors_metadata_get(f, "format"), "pt");
    assert_string_equal(safetensors_metadata_get(f, "note"), meta[1].value);
    assert_null(safetensors_metadata_get(f, "absent"));
    const char *k, *v;
    assert_true(safetensors_metadata_at(f, 1, &k, &v));
    assert_string_equal(k, "note");
    assert_false(safetensors_metadata_at(f, 2, &k, &v));

    /* Stable order: 8-byte elements, then 4-byte (by name), then 2-byte, then 1-byte. */
    static const char *const order[] = {"idx", "empty", "scalar", "w", "b", "h", "mask"};
    for (int i = 0; i < n; i++) {
        const SafetensorsTensor *t = safetensors_tensor_at(f, i);
        assert_string_equal(t->name, order[i]);
        assert_int_equal(t->begin % safetensors_dtype_size(t->dtype), 0); /* naturally aligned */
    }
    assert_null(safetensors_tensor_at(f, n));
    assert_null(safetensors_tensor_at(f, -1));
    for (int i = 0; i < n; i++) {
        const SafetensorsTensor *t = safetensors_find(f, list[i].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, list[i].dtype);
        assert_int_equal(t->ndim, list[i].ndim);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            assert_int_equal(t->shape[d], list[i].shape[d]);
            numel *= list[i].shape[d];
        }
        assert_int_equal(t->numel, numel);
        size_t nbytes = (size_t)numel * safetensors_dtype_size(t->dtype);
        assert_int_equal(t->end - t->begin, nbytes);
        if (nbytes)
            assert_memory_equal(t->data, list[i].data, nbytes);
    }
    assert_null(safetensors_find(f, "nope"));
    assert_null(safetensors_find(f, ""));
    /* The data section starts at a multiple of 8: header padded with spaces. */
    size_t len;
    unsigned char *bytes = read_all(path, &len);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | bytes[i];
    assert_int_equal((8 + header_len) % 8, 0);
    assert_int_equal(bytes[8], '{');
    assert_int_equal(len, 8 + header_len + 4 * 8 + 4 * 7 + 2 * 8 + 3);
    safetensors_close(f);

    /* The in-memory image is byte-identical, and writing is deterministic. */
    size_t mem_len;
    void *mem = safetensors_serialize(list, n, meta, 2, &mem_len, err, sizeof err);
    assert_non_null(mem);
    assert_int_equal(mem_len, len);
    assert_memory_equal(mem, bytes, len);
    free(mem);
    assert_true(safetensors_write(path, list, n, meta, 2, err, sizeof err));
    size_t len2;
    unsigned char *bytes2 = read_all(path, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(bytes2, bytes, len);
    free(bytes2);
    free(bytes);

    /* No tensors, no metadata: the smallest file, "{}" padded to 8. */
    assert_true(safetensors_write(path, NULL, 0, NULL, 0, err, sizeof err));
    bytes = read_all(path, &len);
    assert_int_equal(len, 16);
    assert_memory_equal(bytes + 8, "{}      ", 8);
    free(bytes);
    f = safetensors_open(path, err, sizeof err);
    assert_non_null(f);
    assert_int_equal(safetensors_count(f), 0);
    safetensors_close(f);

    remove_tree(dir);
    free(dir);
}

/* ---- conversions --------------------------------------------------------------------------- */

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_safetensors_half_conversions_exact(void **state)
{
    /* f16 → f32 on hand-picked patterns */
    assert_true(safetensors_f16_to_f32(0x3C00) == 1.0f);
    assert_true(safetensors_f16_to_f32(0xC100) == -2.5f);
    assert_true(safetensors_f16_to_f32(0x7BFF) == 65504.0f);           /* largest finite */
    assert_true(safetensors_f16_to_f32(0x0001) == ldexpf(1.0f, -24));  /* smallest subnormal */
    assert_true(safetensors_f16_to_f32(0x03FF) == ldexpf(1023.0f, -24)); /* largest subnormal */
    assert_true(safetensors_f16_to_f32(0x0400) == ldexpf(1.0f, -14));  /* smallest normal */
    assert_true(safetensors_f16_to_f32(0x8001) == -ldexpf(1.0f, -24));
    assert_int_equal(bits_of(safetensors_f16_to_f32(0x0000)), 0x00000000u);
    assert_int_equal(bits_of(safetensors_f16_to_f32(0x8000)), 0x80000000u); /* -0 keeps its sign */
    assert_int_equal(bits_of(safetensors_f16_to_f32(0x7C00)), 0x7F800000u); /* +inf */
    assert_int_equal(bits_of(safetensors_f16_to_f32(0xFC00)), 0xFF800000u); /* -inf */
    assert_true(isnan(safetensors_f16_to_f32(0x7E00)));
    assert_int_equal(bits_of(safetensors_f16_to_f32(0x7E00)), 0x7FC00000u);
    assert_int_equal(bits_of(safetensors_f16_to_f32(0xFE01)), 0xFFC02000u); /* sign and payload */
    assert_true(safetensors_f16_to_f32(0x3555) == 0x155p-12f + 0.25f); /* 0.333251953125 */

    /* bf16 → f32 */
    assert_true(safetensors_bf16_to_f32(0x3F80) == 1.0f);
    assert_true(safetensors_bf16_to_f32(0xC020) == -2.5f);
    assert_true(safetensors_bf16_to_f32(0x7F7F) == float_of(0x7F7F0000u)); /* largest finite */
    assert_true(safetensors_bf16_to_f32(0x0001) == ldexpf(1.0f, -133));     /* smallest subnormal */
    assert_true(safetensors_bf16_to_f32(0x0001) > 0.0f);
    assert_int_equal(bits_of(safetensors_bf16_to_f32(0x7F80)), 0x7F800000u);
    assert_int_equal(bits_of(safetensors_bf16_to_f32(0xFF80)), 0xFF800000u);
    assert_true(isnan(safetensors_bf16_to_f32(0x7FC0)));
    assert_int_equal(bits_of(safetensors_bf16_to_f32(0x8000)), 0x80000000u);

    /* Every f16 value survives f16 → f32 → f16 (signalling NaNs come back quiet). */
    for (uint32_t v = 0; v < 65536; v++) {
        uint16_t h = (uint16_t)v;
        uint16_t back = safetensors_f32_to_f16(safetensors_f16_to_f32(h));
        bool snan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) && !(h & 0x200);
        uint16_t expect = snan ? (uint16_t)(h | 0x200) : h;
        if (back != expect)
            fail_msg("f16 0x%04X came back as 0x%04X", h, back);
        /* Same for bf16 (quiet NaNs round-trip exactly too). */
        uint16_t bb = safetensors_f32_to_bf16(safetensors_bf16_to_f32(h));
        bool bsnan = (h & 0x7F80) == 0x7F80 && (h & 0x7F) && !(h & 0x40);
        if (bb != (bsnan ? (uint16_t)(h | 0x40) : h))
            fail_msg("bf16 0x%04X came back as 0x%04X", h, bb);
    }

    /* f32 → f16 rounding: ties to even, overflow, underflow into subnormals. */
    assert_int_equal(safetensors_f32_to_f16(65504.0f), 0x7BFF);
    assert_int_equal(safetensors_f32_to_f16(65519.0f), 0x7BFF);  /* below the midpoint to 65536 */
    assert_int_equal(safetensors_f32_to_f16(65520.0f), 0x7C00);  /* the midpoint: ties to even = inf */
    assert_int_equal(safetensors_f32_to_f16(1e10f), 0x7C00);
    assert_int_equal(safetensors_f32_to_f16(-1e10f), 0xFC00);
    assert_int_equal(safetensors_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3C00); /* tie → even */
    assert_int_equal(safetensors_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3C02); /* tie → even (up) */
    assert_int_equal(safetensors_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);        /* tie with 0 → 0 */
    assert_int_equal(safetensors_f32_to_f16(ldexpf(1.5f, -25)), 0x0001);
    assert_int_equal(safetensors_f32_to_f16(ldexpf(1.0f, -26)), 0x0000);
    assert_int_equal(safetensors_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400); /* carries into the smallest normal */
    assert_int_equal(safetensors_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(safetensors_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3F80);     /* tie → even */
    assert_int_equal(safetensors_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3F82); /* tie → even (up) */
    assert_int_equal(safetensors_f32_to_bf16(float_of(0x7F7FFFFFu)), 0x7F80);        /* rounds to inf */
    assert_int_equal(safetensors_f32_to_bf16(float_of(0x7FA00000u)) & 0x7FC0, 0x7FC0); /* sNaN → qNaN */
#ifdef __FLT16_MAX__
    /* Against the compiler's own conversion (round to nearest even) on many random floats. */
    RngStream rs = rng_stream(5, RNG_PURPOSE_TEST, 3, 0);
    for (uint64_t i = 0; i < 200000; i++) {
        uint32_t r[4];
        rng_philox(&rs, i, r);
        /* Bias the exponent towards f16's range so rounding paths are hit, not just overflow. */
        uint32_t u = (r[0] & 0x807FFFFFu) | ((100u + r[1] % 60u) << 23);
        if (i % 7 == 0)
            u = r[2]; /* any bit pattern, NaNs included */
        float x = float_of(u);
        if (isnan(x))
            continue;
        _Float16 ref = (_Float16)x;
        uint16_t rb;
        memcpy(&rb, &ref, 2);
        if (safetensors_f32_to_f16(x) != rb)
            fail_msg("f32 0x%08X → f16 0x%04X, the compiler says 0x%04X", u, safetensors_f32_to_f16(x), rb);
    }
#endif
}

static void test_safetensors_typed_reads(void **state)
{
    uint16_t h[3] = {0x3C00, 0xC100, 0x0001};
    uint16_t b[3] = {0x3F80, 0xC020, 0x7F80};
    double d[2] = {0.1, -3.0};
    int32_t i32[3] = {-7, 0, INT32_MAX};
    uint8_t u8[2] = {0, 255};
    uint64_t u64[2] = {5, UINT64_MAX};
    int64_t s3[1] = {3}, s2[1] = {2};
    SafetensorsWriteTensor list[] = {
        {"h", SAFETENSORS_F16, 1, s3, h},   {"b", SAFETENSORS_BF16, 1, s3, b}, {"d", SAFETENSORS_F64, 1, s2, d},
        {"i", SAFETENSORS_I32, 1, s3, i32}, {"u", SAFETENSORS_U8, 1, s2, u8},  {"big", SAFETENSORS_U64, 1, s2, u64},
    };
    char err[512];
    size_t len;
    void *img = safetensors_serialize(list, 6, NULL, 0, &len, err, sizeof err);
    assert_non_null(img);
    SafetensorsFile *f = safetensors_open_memory(img, len, "typed", err, sizeof err);
    assert_non_null(f);
    float out[3];
    assert_true(safetensors_read_f32(safetensors_find(f, "h"), out, 3, err, sizeof err));
    assert_true(out[0] == 1.0f && out[1] == -2.5f && out[2] == ldexpf(1.0f, -24));
    assert_true(safetensors_read_f32(safetensors_find(f, "b"), out, 3, err, sizeof err));
    assert_true(out[0] == 1.0f && out[1] == -2.5f && isinf(out[2]));
    assert_true(safetensors_read_f32(safetensors_find(f, "d"), out, 2, err, sizeof err));
    assert_true(out[0] == 0.1f && out[1] == -3.0f);
    assert_false(safetensors_read_f32(safetensors_find(f, "h"), out, 2, err, sizeof err));
    assert_string_equal(err, "tensor \"h\": has 3 elements, the destination 2");
    assert_false(safetensors_read_f32(safetensors_find(f, "i"), out, 3, err, sizeof err));
    assert_string_equal(err, "tensor \"i\": dtype I32 is not a floating-point type (expected F32, F16, BF16 or F64)");
    int64_t iv[3];
    assert_true(safetensors_read_i64(safetensors_find(f, "i"), iv, 3, err, sizeof err));
    assert_true(iv[0] == -7 && iv[1] == 0 && iv[2] == INT32_MAX);
    assert_true(safetensors_read_i64(safetensors_find(f, "u"), iv, 2, err, sizeof err));
    assert_true(iv[0] == 0 && iv[1] == 255);
    assert_false(safetensors_read_i64(safetensors_find(f, "big"), iv, 2, err, sizeof err));
    assert_non_null(strstr(err, "element 1 (18446744073709551615) does not fit int64"));
    assert_false(safetensors_read_i64(safetensors_find(f, "h"), iv, 3, err, sizeof err));
    assert_string_equal(err, "tensor \"h\": dtype F16 is not an integer type");
    safetensors_close(f);
    free(img);

    /* dtype names and the project dtype mapping */
    SafetensorsDtype dt;
    assert_true(safetensors_dtype_parse("BF16", &dt) && dt == SAFETENSORS_BF16);
    assert_false(safetensors_dtype_parse("bf16", &dt)); /* case matters, as in the format */
    assert_false(safetensors_dtype_parse("F4", &dt));
    for (int i = 0; i < SAFETENSORS_DTYPE_COUNT; i++) {
        assert_true(safetensors_dtype_parse(safetensors_dtype_name((SafetensorsDtype)i), &dt));
        assert_int_equal(dt, i);
    }
    DType pd;
    static const DType all[] = {DTYPE_F32, DTYPE_BF16, DTYPE_F16, DTYPE_I32, DTYPE_I64, DTYPE_U8};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        assert_true(safetensors_to_dtype(safetensors_from_dtype(all[i]), &pd));
        assert_int_equal(pd, all[i]);
        assert_int_equal(safetensors_dtype_size(safetensors_from_dtype(all[i])), dtype_size(all[i]));
    }
    assert_false(safetensors_to_dtype(SAFETENSORS_F64, &pd));
}

/* ---- validation ---------------------------------------------------------------------------- */

#define ENTRY(name, dtype, shape, b, e) "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_safetensors_rejects_bad_files(void **state)
{
    unsigned char tiny[7] = {0};
    expect_reject(tiny, 0, "the file is empty (0 bytes), not a safetensors file");
    expect_reject(tiny, 7, "the file is only 7 bytes, too short for a safetensors file");

    size_t len;
    unsigned char *buf = raw_file(1000, "{}", 8, &len);
    expect_reject(buf, len, "header length 1000 exceeds the 10 bytes after the length field (file size 18): the file is truncated");
    free(buf);
    buf = raw_file(1ull << 40, "{}", 0, &len);
    expect_reject(buf, len, "header length 1099511627776 is above the 100000000-byte limit");
    free(buf);
    buf = raw_file(UINT64_MAX, "{}", 0, &len);
    expect_reject(buf, len, "header length 18446744073709551615 is above");
    free(buf);

    /* The JSON itself */
    expect_header_reject("", 0, "the JSON header is invalid at line 1, column 1 (file byte 8): expected a value, found end of input");
    expect_header_reject("{\"w\": nope}", 0, "the JSON header is invalid at line 1, column 7 (file byte 14): invalid literal");
    expect_header_reject("{\"w\":{}} x", 0, "trailing data");
    buf = raw_file(8, "{}", 6, &len); /* padding must be spaces: NUL bytes are trailing garbage */
    expect_reject(buf, len, "the JSON header is invalid at line 1, column 3 (file byte 10): unexpected byte 0x00 after the JSON value");
    free(buf);
    expect_header_reject("[1, 2]", 0, "the JSON header is an array; expected an object of tensor entries");
    expect_header_reject("{" ENTRY("a", "F32", "[1]", 0, 4) "," ENTRY("a", "F32", "[1]", 4, 8) "}", 8,
                         "duplicate key \"a\"");
    expect_header_reject("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"x\": \"\xFF\"}", 4,
                         "invalid UTF-8 byte 0xFF");

    /* Entries */
    expect_header_reject("{\"w\": [1]}", 0, "tensor \"w\": expected an object {dtype, shape, data_offsets}, found an array");
    expect_header_reject("{\"\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, "a tensor has an empty name");
    expect_header_reject("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor \"w\": missing field \"shape\"");
    expect_header_reject("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor \"w\": missing field \"dtype\"");
    expect_header_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor \"w\": missing field \"data_offsets\"");
    expect_header_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"stride\":[1]}}", 4,
                         "tensor \"w\": unknown field \"stride\" (expected dtype, shape, data_offsets)");
    expect_header_reject("{" ENTRY("w", "F128", "[1]", 0, 16) "}", 16,
                         "tensor \"w\": unknown dtype \"F128\" (supported: BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64)");
    expect_header_reject("{" ENTRY("w", "F4", "[2]", 0, 1) "}", 1, "unknown dtype \"F4\"");
    expect_header_reject("{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                         "tensor \"w\": \"dtype\" must be a string, found a number");
    expect_header_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":7,\"data_offsets\":[0,4]}}", 4,
                         "tensor \"w\": \"shape\" must be an array of integers, found a number");
    expect_header_reject("{" ENTRY("w", "F32", "[2,-3]", 0, 24) "}", 24, "tensor \"w\": shape[1] is not an integer >= 0");
    expect_header_reject("{" ENTRY("w", "F32", "[2.5]", 0, 10) "}", 10, "tensor \"w\": shape[0] is not an integer >= 0");
    expect_header_reject("{" ENTRY("w", "F32", "[\"2\"]", 0, 8) "}", 8, "tensor \"w\": shape[0] is not an integer >= 0");
    expect_header_reject("{" ENTRY("w", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1,
                         "tensor \"w\": shape has 9 dims (at most 8 supported)");
    expect_header_reject("{" ENTRY("w", "F32", "[4294967296,4294967296,16]", 0, 0) "}", 0,
                         "tensor \"w\": shape (4294967296, 4294967296, 16) is too large (its byte size overflows 64 bits)");
    expect_header_reject("{" ENTRY("w", "F32", "[9223372036854775807]", 0, 0) "}", 0, "is too large");
    expect_header_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
                         "tensor \"w\": \"data_offsets\" must be [begin, end], two integers >= 0");
    expect_header_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "two integers >= 0");
    expect_header_reject("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"a\":1}}}", 4, "two integers >= 0");
    expect_header_reject("{" ENTRY("w", "F32", "[1]", 8, 4) "}", 8, "tensor \"w\": data_offsets [8, 4] end before they begin");
    expect_header_reject("{" ENTRY("w", "F32", "[2,3]", 0, 20) "}", 20,
                         "tensor \"w\": data_offsets [0, 20] hold 20 bytes, but dtype F32 with shape (2, 3) needs 24 bytes");
    expect_header_reject("{" ENTRY("w", "BF16", "[]", 0, 4) "}", 4, "hold 4 bytes, but dtype BF16 with shape () needs 2 bytes");
    expect_header_reject("{" ENTRY("w", "F32", "[2,3]", 0, 24) "}", 16,
                         "tensor \"w\": data_offsets [0, 24] reach past the end of the data section (16 bytes): the file is truncated");
    expect_header_reject("{" ENTRY("w", "F32", "[1]", 18446744073709551612, 18446744073709551616) "}", 0,
                         "\"data_offsets\" must be [begin, end]"); /* beyond int64 */

    /* The data section must be tiled exactly. */
    expect_header_reject("{" ENTRY("a", "F32", "[2]", 0, 8) "," ENTRY("b", "F32", "[2]", 4, 12) "}", 12,
                         "tensors \"a\" [0, 8] and \"b\" [4, 12] overlap in the data section");
    expect_header_reject("{" ENTRY("a", "F32", "[2]", 0, 8) "," ENTRY("b", "F32", "[2]", 0, 8) "}", 8, "overlap");
    expect_header_reject("{" ENTRY("a", "F32", "[2]", 0, 8) "," ENTRY("z", "U8", "[0]", 4, 4) "}", 8,
                         "tensors \"a\" [0, 8] and \"z\" [4, 4] overlap"); /* even an empty tensor inside another */
    expect_header_reject("{" ENTRY("a", "F32", "[2]", 0, 8) "," ENTRY("b", "F32", "[2]", 12, 20) "}", 20,
                         "hole in the data section: bytes [8, 12) before tensor \"b\" belong to no tensor");
    expect_header_reject("{" ENTRY("b", "F32", "[2]", 4, 12) "}", 12, "hole in the data section: bytes [0, 4) before tensor \"b\"");
    expect_header_reject("{" ENTRY("a", "F32", "[2]", 0, 8) "}", 12,
                         "the data section has 4 bytes after the last tensor (tensors cover 8 of 12 bytes)");
    expect_header_reject("{}", 3, "the data section has 3 bytes after the last tensor");

    /* Metadata */
    expect_header_reject("{\"__metadata__\":{\"epoch\":3}}", 0, "__metadata__ entry \"epoch\" must be a string, found a number");
    expect_header_reject("{\"__metadata__\":[\"a\"]}", 0, "\"__metadata__\" must be an object of strings, found an array");

    /* A valid file truncated anywhere in its data section names the problem. */
    int64_t s8[1] = {8};
    float w[8] = {0};
    SafetensorsWriteTensor t = {"w", SAFETENSORS_F32, 1, s8, w};
    char err[512];
    void *img = safetensors_serialize(&t, 1, NULL, 0, &len, err, sizeof err);
    assert_non_null(img);
    expect_reject(img, len - 1, "reach past the end of the data section (31 bytes): the file is truncated");
    expect_reject(img, 20, "header length"); /* cut inside the header */
    free(img);
}

static void test_safetensors_accepts_edge_cases(void **state)
{
    unsigned char *buf;
    /* No tensors at all; metadata only; whitespace padding; zero-size tensors on boundaries. */
    SafetensorsFile *f = expect_header_ok("{}", 0, &buf);
    assert_int_equal(safetensors_count(f), 0);
    safetensors_close(f);
    free(buf);
    f = expect_header_ok("{\"__metadata__\":{}}        ", 0, &buf);
    assert_int_equal(safetensors_metadata_count(f), 0);
    safetensors_close(f);
    free(buf);
    f = expect_header_ok(" {" ENTRY("e", "F32", "[0,5]", 0, 0) "," ENTRY("a", "I64", "[1]", 0, 8) "," ENTRY(
                             "z", "U8", "[0]", 8, 8) ",\"__metadata__\":{\"k\":\"v\"}}\n\t ",
                         8, &buf);
    assert_int_equal(safetensors_count(f), 3);
    assert_string_equal(safetensors_tensor_at(f, 0)->name, "e"); /* header order */
    assert_int_equal(safetensors_find(f, "e")->numel, 0);
    assert_int_equal(safetensors_find(f, "a")->numel, 1);
    int64_t v;
    char err[256];
    assert_true(safetensors_read_i64(safetensors_find(f, "a"), &v, 1, err, sizeof err));
    assert_int_equal(v, 0x0706050403020100LL); /* raw_file fills the data with 0, 1, 2, ... */
    assert_string_equal(safetensors_metadata_get(f, "k"), "v");
    safetensors_close(f);
    free(buf);
    /* Tensors in the header in any order, unaligned offsets (other writers). */
    f = expect_header_ok("{" ENTRY("b", "F32", "[1]", 1, 5) "," ENTRY("a", "U8", "[1]", 0, 1) "}", 5, &buf);
    float x;
    assert_true(safetensors_read_f32(safetensors_find(f, "b"), &x, 1, err, sizeof err));
    uint32_t expect_bits = 0x04030201u;
    assert_int_equal(bits_of(x), expect_bits);
    safetensors_close(f);
    free(buf);
}

static void test_safetensors_open_file_errors(void **state)
{
    char *dir = make_tmpdir();
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    assert_null(safetensors_open(path, err, sizeof err));
    char expect[512];
    snprintf(expect, sizeof expect, "%s: cannot open (No such file or directory); check the path", path);
    assert_string_equal(err, expect);
    assert_null(safetensors_open(dir, err, sizeof err));
    snprintf(expect, sizeof expect, "%s: is a directory, not a safetensors file", dir);
    assert_string_equal(err, expect);
    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    write_bytes(path, "", 0);
    assert_null(safetensors_open(path, err, sizeof err));
    snprintf(expect, sizeof expect, "%s: the file is empty (0 bytes), not a safetensors file", path);
    assert_string_equal(err, expect);
    write_bytes(path, "\x10\0\0\0\0\0\0", 7);
    assert_null(safetensors_open(path, err, sizeof err));
    assert_non_null(strstr(err, "the file is only 7 bytes"));
    /* err may be NULL */
    assert_null(safetensors_open(path, NULL, 0));
    remove_tree(dir);
    free(dir);
}

static void test_safetensors_writer_rejects_bad_input(void **state)
{
    char *dir = make_tmpdir();
    char path[256], err[512], listing[256];
    snprintf(path, sizeof path, "%s/out.safetensors", dir);
    float x[2] = {1, 2};
    int64_t s2[1] = {2}, sneg[1] = {-2};
    struct {
        SafetensorsWriteTensor t[2];
        int n;
        SafetensorsMeta m[2];
        int n_meta;
        const char *what;
    } cases[] = {
        {{{"a", SAFETENSORS_F32, 1, s2, x}, {"a", SAFETENSORS_F32, 1, s2, x}}, 2, {{0}}, 0, "duplicate tensor name \"a\""},
        {{{"", SAFETENSORS_F32, 1, s2, x}}, 1, {{0}}, 0, "tensor 0 has an invalid name (empty)"},
        {{{"__metadata__", SAFETENSORS_F32, 1, s2, x}}, 1, {{0}}, 0, "\"__metadata__\" is reserved"},
        {{{"a", SAFETENSORS_F32, 1, sneg, x}}, 1, {{0}}, 0, "tensor \"a\": bad dim 0 (-2)"},
        {{{"a", SAFETENSORS_F32, 9, s2, x}}, 1, {{0}}, 0, "tensor \"a\": 9 dims (0..8 supported)"},
        {{{"a", SAFETENSORS_F32, 1, s2, NULL}}, 1, {{0}}, 0, "tensor \"a\": data is NULL"},
        {{{"a", (SafetensorsDtype)99, 1, s2, x}}, 1, {{0}}, 0, "tensor \"a\": invalid dtype 99"},
        {{{"a", SAFETENSORS_F32, 1, s2, x}}, 1, {{"k", "1"}, {"k", "2"}}, 2, "duplicate metadata key \"k\""},
        {{{"a", SAFETENSORS_F32, 1, s2, x}}, 1, {{"k", NULL}}, 1, "metadata entry 0 needs a non-empty key and a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_false(safetensors_write(path, cases[i].t, cases[i].n, cases[i].m, cases[i].n_meta, err, sizeof err));
        if (strncmp(err, path, strlen(path)) != 0 || !strstr(err, cases[i].what))
            fail_msg("case %zu: expected \"%s\" in: %s", i, cases[i].what, err);
        dir_listing(dir, listing, sizeof listing);
        assert_string_equal(listing, ""); /* nothing written */
    }
    remove_tree(dir);
    free(dir);
}

static void test_safetensors_atomic_write(void **state)
{
    char *dir = make_tmpdir();
    char path[256], err[1024], listing[256], expect[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    float old_w[4] = {1, 2, 3, 4};
    int64_t s4[1] = {4};
    SafetensorsWriteTensor old_t = {"w", SAFETENSORS_F32, 1, s4, old_w};
    assert_true(safetensors_write(path, &old_t, 1, NULL, 0, err, sizeof err));
    size_t old_len;
    unsigned char *old_bytes = read_all(path, &old_len);

    /* 1. A write that fails midway (the file size limit) leaves the old file and no temporary. */
    enum { BIG = 1 << 20 };
    float *big = calloc(BIG, sizeof *big);
    assert_non_null(big);
    int64_t sbig[1] = {BIG};
    SafetensorsWriteTensor new_t = {"w", SAFETENSORS_F32, 1, sbig, big};
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    void (*saved_handler)(int) = signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of being killed */
    struct rlimit small = saved;
    small.rlim_cur = 64 * 1024;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    bool ok = safetensors_write(path, &new_t, 1, NULL, 0, err, sizeof err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, saved_handler);
    assert_false(ok);
    snprintf(expect, sizeof expect, "%s: writing %s.tmp failed (File too large); nothing was replaced", path, path);
    assert_string_equal(err, expect);
    dir_listing(dir, listing, sizeof listing);
    assert_string_equal(listing, "model.safetensors");
    size_t len;
    unsigned char *bytes = read_all(path, &len);
    assert_int_equal(len, old_len);
    assert_memory_equal(bytes, old_bytes, len);
    free(bytes);

    /* 2. The target is a directory: refused up front, nothing created, the directory intact. */
    char sub[300];
    snprintf(sub, sizeof sub, "%s/adir", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_false(safetensors_write(sub, &old_t, 1, NULL, 0, err, sizeof err));
    snprintf(expect, sizeof expect, "%s: is a directory; give a file path to write the checkpoint to", sub);
    assert_string_equal(err, expect);
    dir_listing(dir, listing, sizeof listing);
    assert_string_equal(listing, "adir model.safetensors");

    /* 3. The directory does not exist. */
    char nodir[300];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/m.safetensors", dir);
    assert_false(safetensors_write(nodir, &old_t, 1, NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "cannot create the temporary file"));
    assert_non_null(strstr(err, "(No such file or directory); check that the directory exists and is writable"));

    /* 4. A directory without write permission (root ignores permissions: skipped then). */
    char ro[300];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    assert_int_equal(mkdir(ro, 0555), 0);
    char in_ro[400];
    snprintf(in_ro, sizeof in_ro, "%s/m.safetensors", ro);
    if (geteuid() != 0) { /* root ignores directory permissions */
        assert_false(safetensors_write(in_ro, &old_t, 1, NULL, 0, err, sizeof err));
        assert_non_null(strstr(err, "(Permission denied); check that the directory exists and is writable"));
    } else {
        print_message("atomic write: running as root, the read-only directory case is skipped\n");
    }
    chmod(ro, 0755);

    /* 5. A successful overwrite replaces the file and leaves no temporary. */
    for (int i = 0; i < BIG; i++)
        big[i] = (float)i;
    assert_true(safetensors_write(path, &new_t, 1, NULL, 0, err, sizeof err));
    dir_listing(dir, listing, sizeof listing);
    assert_string_equal(listing, "adir model.safetensors ro");
    SafetensorsFile *f = safetensors_open(path, err, sizeof err);
    assert_non_null(f);
    assert_int_equal(safetensors_find(f, "w")->numel, BIG);
    assert_memory_equal(safetensors_find(f, "w")->data, big, sizeof(float) * BIG);
    safetensors_close(f);
    /* A stale PATH.tmp from a crashed run is simply overwritten. */
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    write_bytes(tmp, "junk", 4);
    assert_true(safetensors_write(path, &old_t, 1, NULL, 0, err, sizeof err));
    dir_listing(dir, listing, sizeof listing);
    assert_string_equal(listing, "adir model.safetensors ro");
    bytes = read_all(path, &len);
    assert_int_equal(len, old_len);
    assert_memory_equal(bytes, old_bytes, len);
    free(bytes);

    free(big);
    free(old_bytes);
    remove_tree(dir);
    free(dir);
}

/* ---- checkpoints ---------------------------------------------------------------------------- */

/* A small model: conv (2,3,1,1) weight, bn buffers, fc (4,2) + bias; values i * 0.5 + tag. */
static ParamSet *small_model(float tag)
{
    ParamSet *ps = params_create();
    assert_non_null(ps);
    assert_non_null(params_declare(ps, "conv.weight", DTYPE_F32, 4, (int64_t[]){2, 3, 1, 1}, true));
    assert_non_null(params_declare(ps, "bn.weight", DTYPE_F32, 1, (int64_t[]){2}, true));
    assert_non_null(params_declare(ps, "bn.running_mean", DTYPE_F32, 1, (int64_t[]){2}, false));
    assert_non_null(params_declare(ps, "fc.weight", DTYPE_F32, 2, (int64_t[]){4, 2}, true));
    assert_non_null(params_declare(ps, "fc.bias", DTYPE_F32, 1, (int64_t[]){4}, true));
    char err[256];
    assert_true(params_allocate(ps, BACKEND_CPU, false, err, sizeof err));
    for (int i = 0; i < ps->n; i++) {
        float *p = tensor_f32(ps->items[i]);
        for (int64_t j = 0; j < tensor_numel(ps->items[i]); j++)
            p[j] = (float)(i * 10 + j) * 0.5f + tag;
    }
    return ps;
}

static void assert_models_equal(const ParamSet *a, const ParamSet *b)
{
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        assert_string_equal(a->items[i]->name, b->items[i]->name);
        assert_memory_equal(a->items[i]->data, b->items[i]->data, tensor_bytes(a->items[i]));
    }
}

/* Writes `src`'s parameters under (prefix + name) in `dtype`, plus `extra` tensors. */
static void write_model_file(const char *path, const ParamSet *src, const char *prefix, SafetensorsDtype dtype,
                             const SafetensorsWriteTensor *extra, int n_extra)
{
    int n = src->n + n_extra;
    SafetensorsWriteTensor *list = calloc((size_t)n, sizeof *list);
    char (*names)[128] = calloc((size_t)src->n, sizeof *names);
    void **bufs = calloc((size_t)src->n, sizeof *bufs);
    assert_true(list && names && bufs);
    for (int i = 0; i < src->n; i++) {
        const Tensor *t = src->items[i];
        snprintf(names[i], sizeof names[i], "%s%s", prefix, t->name);
        int64_t numel = tensor_numel(t);
        bufs[i] = malloc((size_t)numel * safetensors_dtype_size(dtype));
        assert_non_null(bufs[i]);
        for (int64_t j = 0; j < numel; j++) {
            float v = tensor_f32(t)[j];
            if (dtype == SAFETENSORS_F32)
                ((float *)bufs[i])[j] = v;
            else if (dtype == SAFETENSORS_F16)
                ((uint16_t *)bufs[i])[j] = safetensors_f32_to_f16(v);
            else
                ((uint16_t *)bufs[i])[j] = safetensors_f32_to_bf16(v);
        }
        list[i] = (SafetensorsWriteTensor){names[i], dtype, t->ndim, t->shape, bufs[i]};
    }
    for (int i = 0; i < n_extra; i++)
        list[src->n + i] = extra[i];
    char err[512];
    if (!safetensors_write(path, list, n, NULL, 0, err, sizeof err))
        fail_msg("%s", err);
    for (int i = 0; i < src->n; i++)
        free(bufs[i]);
    free(bufs);
    free(names);
    free(list);
}

static void test_checkpoint_load_converts_and_ignores_bookkeeping(void **state)
{
    char *dir = make_tmpdir();
    char path[256], err[2048];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    /* Values k/2 + 0.25 are exact in f16 and bf16, so every conversion must be bit-exact. */
    ParamSet *src = small_model(0.25f);
    int64_t nbt = 12345;
    SafetensorsWriteTensor bookkeeping = {"bn.num_batches_tracked", SAFETENSORS_I64, 0, NULL, &nbt};
    static const SafetensorsDtype dtypes[] = {SAFETENSORS_F32, SAFETENSORS_F16, SAFETENSORS_BF16};
    for (size_t d = 0; d < 3; d++) {
        write_model_file(path, src, "", dtypes[d], &bookkeeping, 1);
        ParamSet *dst = small_model(100.0f);
        if (!checkpoint_load(dst, path, NULL, err, sizeof err))
            fail_msg("%s: %s", safetensors_dtype_name(dtypes[d]), err);
        assert_models_equal(dst, src);
        params_destroy(dst);
    }
    /* A meta-backend model: every check runs, nothing is copied. */
    ParamSet *meta = params_create();
    assert_non_null(params_declare(meta, "conv.weight", DTYPE_F32, 4, (int64_t[]){2, 3, 1, 1}, true));
    assert_non_null(params_declare(meta, "bn.weight", DTYPE_F32, 1, (int64_t[]){2}, true));
    assert_non_null(params_declare(meta, "bn.running_mean", DTYPE_F32, 1, (int64_t[]){2}, false));
    assert_non_null(params_declare(meta, "fc.weight", DTYPE_F32, 2, (int64_t[]){4, 2}, true));
    assert_non_null(params_declare(meta, "fc.bias", DTYPE_F32, 1, (int64_t[]){5}, true));
    assert_true(params_allocate(meta, BACKEND_META, false, err, sizeof err));
    assert_false(checkpoint_load(meta, path, NULL, err, sizeof err));
    assert_non_null(strstr(err, "mis-shaped key fc.bias: file (4) vs model (5)"));
    params_destroy(meta);
    /* An unallocated model is refused. */
    ParamSet *empty = params_create();
    assert_false(checkpoint_load(empty, path, NULL, err, sizeof err));
    assert_non_null(strstr(err, "allocate the parameters (params_allocate) before loading"));
    params_destroy(empty);
    /* A file that is not valid: the reader's message comes through. */
    write_bytes(path, "\x02\0\0\0\0\0\0\0{", 9);
    ParamSet *dst = small_model(1.0f);
    assert_false(checkpoint_load(dst, path, NULL, err, sizeof err));
    assert_non_null(strstr(err, "header length 2 exceeds the 1 bytes after the length field"));
    params_destroy(dst);
    params_destroy(src);
    remove_tree(dir);
    free(dir);
}

static void test_checkpoint_reports_every_problem_and_leaves_model_untouched(void **state)
{
    char *dir = make_tmpdir();
    char path[256], err[4096];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    /* The file: conv.weight transposed, fc.bias as int64, bn.running_mean absent, two extras. */
    float conv[6] = {0}, extra[3] = {0};
    int64_t ibias[4] = {0};
    int64_t nbt = 1;
    float bnw[2] = {0}, fcw[8] = {0};
    SafetensorsWriteTensor list[] = {
        {"conv.weight", SAFETENSORS_F32, 4, (int64_t[]){3, 2, 1, 1}, conv},
        {"bn.weight", SAFETENSORS_F32, 1, (int64_t[]){2}, bnw},
        {"bn.num_batches_tracked", SAFETENSORS_I64, 0, NULL, &nbt},
        {"fc.weight", SAFETENSORS_F32, 2, (int64_t[]){4, 2}, fcw},
        {"fc.bias", SAFETENSORS_I64, 1, (int64_t[]){4}, ibias},
        {"head.weight", SAFETENSORS_F32, 1, (int64_t[]){3}, extra},
        {"aux_fc.bias", SAFETENSORS_F32, 1, (int64_t[]){3}, extra},
    };
    assert_true(safetensors_write(path, list, 7, NULL, 0, err, sizeof err));
    ParamSet *model = small_model(7.0f);
    ParamSet *before = small_model(7.0f);
    assert_false(checkpoint_load(model, path, NULL, err, sizeof err));
    char expect[2048];
    snprintf(expect, sizeof expect,
             "%s does not match the model: 1 missing, 2 unexpected, 1 mis-shaped, 1 wrong-dtype keys\n"
             "  missing key: bn.running_mean\n"
             "  unexpected key: aux_fc.bias\n"
             "  unexpected key: head.weight\n"
             "  mis-shaped key conv.weight: file (3, 2, 1, 1) vs model (2, 3, 1, 1)\n"
             "  key fc.bias: file dtype I64 cannot be loaded into the model's f32 parameter",
             path);
    assert_string_equal(err, expect);
    assert_models_equal(model, before); /* not a single value changed */
    /* A short error buffer truncates, never overflows. */
    char small_err[40];
    assert_false(checkpoint_load(model, path, NULL, small_err, sizeof small_err));
    assert_int_equal(strlen(small_err), sizeof small_err - 1);
    assert_false(checkpoint_load(model, path, NULL, NULL, 0));
    assert_models_equal(model, before);
    params_destroy(model);
    params_destroy(before);
    remove_tree(dir);
    free(dir);
}

static void test_checkpoint_problem_list_is_capped(void **state)
{
    char *dir = make_tmpdir();
    char path[256], err[8192];
    snprintf(path, sizeof path, "%s/few.safetensors", dir);
    float one = 1.0f;
    SafetensorsWriteTensor only = {"unrelated", SAFETENSORS_F32, 0, NULL, &one};
    assert_true(safetensors_write(path, &only, 1, NULL, 0, err, sizeof err));
    ParamSet *ps = params_create();
    for (int i = 0; i < 30; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer%02d.weight", i);
        assert_non_null(params_declare(ps, name, DTYPE_F32, 1, (int64_t[]){2}, true));
    }
    assert_true(params_allocate(ps, BACKEND_CPU, false, err, sizeof err));
    assert_false(checkpoint_load(ps, path, NULL, err, sizeof err));
    assert_non_null(strstr(err, "does not match the model: 30 missing, 1 unexpected keys\n"));
    assert_non_null(strstr(err, "  missing key: layer19.weight\n"));
    assert_null(strstr(err, "layer20.weight"));
    assert_non_null(strstr(err, "\n  ... and 11 more"));
    int lines = 0;
    for (const char *p = err; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, CHECKPOINT_MAX_LISTED_PROBLEMS + 1);
    params_destroy(ps);
    remove_tree(dir);
    free(dir);
}

static void test_checkpoint_prefix_options(void **state)
{
    char *dir = make_tmpdir();
    char path[256], err[4096];
    snprintf(path, sizeof path, "%s/dp.safetensors", dir);
    ParamSet *src = small_model(3.0f);

    /* DataParallel keys: refused with a hint, loaded with strip_prefix. */
    write_model_file(path, src, "module.", SAFETENSORS_F32, NULL, 0);
    ParamSet *dst = small_model(0.0f);
    assert_false(checkpoint_load(dst, path, NULL, err, sizeof err));
    assert_non_null(strstr(err, "unexpected key: module.conv.weight"));
    assert_non_null(strstr(err, "hint: keys start with \"module.\""));
    CheckpointLoadOptions strip = {.strip_prefix = "module."};
    assert_true(checkpoint_load(dst, path, &strip, err, sizeof err));
    assert_models_equal(dst, src);
    params_destroy(dst);

    /* Both "module.x" and "x": after stripping, two keys for one parameter. */
    float fcb[4] = {0};
    SafetensorsWriteTensor dup = {"fc.bias", SAFETENSORS_F32, 1, (int64_t[]){4}, fcb};
    write_model_file(path, src, "module.", SAFETENSORS_F32, &dup, 1);
    dst = small_model(0.0f);
    assert_false(checkpoint_load(dst, path, &strip, err, sizeof err));
    assert_non_null(strstr(err, "1 duplicate key\n"));
    assert_non_null(strstr(err, "duplicate key: fc.bias and module.fc.bias both map to parameter fc.bias"));
    params_destroy(dst);

    /* A fixture bundling weights ("weights.*") with other tensors. */
    float out[3] = {1, 2, 3};
    SafetensorsWriteTensor expected = {"expected.logits", SAFETENSORS_F32, 1, (int64_t[]){3}, out};
    write_model_file(path, src, "weights.", SAFETENSORS_F32, &expected, 1);
    dst = small_model(0.0f);
    CheckpointLoadOptions fixture = {.file_prefix = "weights."};
    assert_true(checkpoint_load(dst, path, &fixture, err, sizeof err));
    assert_models_equal(dst, src);
    params_destroy(dst);

    /* A backbone file loaded into one part of a bigger model: the rest is neither missing nor touched. */
    ParamSet *big = params_create();
    for (int i = 0; i < src->n; i++) {
        char name[128];
        snprintf(name, sizeof name, "global_CNN.%s", src->items[i]->name);
        assert_non_null(params_declare(big, name, DTYPE_F32, src->items[i]->ndim, src->items[i]->shape, true));
    }
    assert_non_null(params_declare(big, "classifier.weight", DTYPE_F32, 1, (int64_t[]){3}, true));
    assert_true(params_allocate(big, BACKEND_CPU, false, err, sizeof err));
    float *cls = tensor_f32(params_find(big, "classifier.weight"));
    cls[0] = 9, cls[1] = 8, cls[2] = 7;
    write_model_file(path, src, "", SAFETENSORS_F32, NULL, 0);
    CheckpointLoadOptions part = {.model_prefix = "global_CNN."};
    if (!checkpoint_load(big, path, &part, err, sizeof err))
        fail_msg("%s", err);
    for (int i = 0; i < src->n; i++)
        assert_memory_equal(big->items[i]->data, src->items[i]->data, tensor_bytes(src->items[i]));
    assert_true(cls[0] == 9 && cls[1] == 8 && cls[2] == 7);
    /* Missing keys inside the part are still reported (without the prefix, as file keys). */
    ParamSet *small = small_model(0.0f);
    ParamSet *bigger = params_create();
    for (int i = 0; i < small->n; i++) {
        char name[128];
        snprintf(name, sizeof name, "global_CNN.%s", small->items[i]->name);
        assert_non_null(params_declare(bigger, name, DTYPE_F32, small->items[i]->ndim, small->items[i]->shape, true));
    }
    assert_non_null(params_declare(bigger, "global_CNN.extra", DTYPE_F32, 1, (int64_t[]){3}, true));
    assert_true(params_allocate(bigger, BACKEND_CPU, false, err, sizeof err));
    assert_false(checkpoint_load(bigger, path, &part, err, sizeof err));
    assert_non_null(strstr(err, "1 missing key\n  missing key: extra"));
    params_destroy(small);
    params_destroy(bigger);
    params_destroy(big);
    params_destroy(src);
    remove_tree(dir);
    free(dir);
}

static void test_checkpoint_save_round_trip(void **state)
{
    char *dir = make_tmpdir();
    char path[256], err[1024], listing[256];
    snprintf(path, sizeof path, "%s/saved.safetensors", dir);
    ParamSet *src = small_model(-1.5f);
    tensor_f32(src->items[0])[0] = -0.0f;
    tensor_f32(src->items[0])[1] = 1e-40f; /* a subnormal survives bit-exactly */
    SafetensorsMeta meta[] = {{"epoch", "12"}, {"method", "uni-adafocus"}};
    assert_true(checkpoint_save(src, path, meta, 2, err, sizeof err));
    dir_listing(dir, listing, sizeof listing);
    assert_string_equal(listing, "saved.safetensors");
    ParamSet *dst = small_model(0.0f);
    assert_true(checkpoint_load(dst, path, NULL, err, sizeof err));
    assert_models_equal(dst, src);
    SafetensorsFile *f = safetensors_open(path, err, sizeof err);
    assert_non_null(f);
    assert_string_equal(safetensors_metadata_get(f, "method"), "uni-adafocus");
    assert_int_equal(safetensors_count(f), src->n);
    assert_int_equal(safetensors_find(f, "fc.weight")->dtype, SAFETENSORS_F32);
    /* checkpoint_load_file on an open file works the same */
    params_destroy(dst);
    dst = small_model(0.0f);
    assert_true(checkpoint_load_file(dst, f, NULL, err, sizeof err));
    assert_models_equal(dst, src);
    safetensors_close(f);
    /* A model without host data cannot be saved. */
    ParamSet *meta_ps = params_create();
    assert_non_null(params_declare(meta_ps, "w", DTYPE_F32, 1, (int64_t[]){2}, true));
    assert_true(params_allocate(meta_ps, BACKEND_META, false, err, sizeof err));
    assert_false(checkpoint_save(meta_ps, path, NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "the parameters have no host data (meta)"));
    params_destroy(meta_ps);
    /* Saving over a directory fails cleanly and names it. */
    assert_false(checkpoint_save(src, dir, NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "is a directory"));
    params_destroy(dst);
    params_destroy(src);
    remove_tree(dir);
    free(dir);
}

/* ---- fuzz ------------------------------------------------------------------------------------ */

/* Opens a tight heap copy; on success every tensor's bytes must lie inside the image and be
 * readable (ASan checks the reads); on failure the message must name the image. */
static bool fuzz_open(const unsigned char *img, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, img, len);
    char err[1024];
    SafetensorsFile *f = safetensors_open_memory(copy, len, "fuzz", err, sizeof err);
    bool ok = f != NULL;
    if (f) {
        for (int i = 0; i < safetensors_count(f); i++) {
            const SafetensorsTensor *t = safetensors_tensor_at(f, i);
            const unsigned char *p = t->data;
            assert_true(p >= copy && p + (t->end - t->begin) <= copy + len);
            assert_int_equal(t->end - t->begin, (uint64_t)t->numel * safetensors_dtype_size(t->dtype));
            assert_ptr_equal(safetensors_find(f, t->name), t);
            unsigned sum = 0;
            for (uint64_t k = 0; k < t->end - t->begin; k++)
                sum += p[k];
            (void)sum;
            if (t->numel <= 4096) {
                float fl[4096];
                int64_t il[4096];
                if (!safetensors_read_f32(t, fl, t->numel, err, sizeof err))
                    (void)safetensors_read_i64(t, il, t->numel, err, sizeof err);
            }
        }
        safetensors_close(f);
    } else {
        assert_true(strncmp(err, "fuzz: ", 6) == 0);
        assert_true(strlen(err) > 20);
    }
    free(copy);
    return ok;
}

static void test_safetensors_fuzz(void **state)
{
    /* A valid base image with several dtypes, a scalar, an empty tensor and metadata. */
    float w[12];
    uint16_t h[6];
    int64_t idx[3] = {1, 2, 3};
    for (int i = 0; i < 12; i++)
        w[i] = (float)i - 5.5f;
    for (int i = 0; i < 6; i++)
        h[i] = safetensors_f32_to_f16((float)i);
    float scalar = 2.0f;
    SafetensorsWriteTensor list[] = {
        {"layer.weight", SAFETENSORS_F32, 2, (int64_t[]){3, 4}, w}, {"layer.bias", SAFETENSORS_F16, 1, (int64_t[]){6}, h},
        {"idx", SAFETENSORS_I64, 1, (int64_t[]){3}, idx},            {"s", SAFETENSORS_F32, 0, NULL, &scalar},
        {"e", SAFETENSORS_BF16, 2, (int64_t[]){0, 2}, NULL},
    };
    SafetensorsMeta meta[] = {{"format", "pt"}};
    char err[512];
    size_t base_len;
    unsigned char *base = safetensors_serialize(list, 5, meta, 1, &base_len, err, sizeof err);
    assert_non_null(base);
    assert_true(fuzz_open(base, base_len));
    uint64_t base_header = 0;
    for (int i = 7; i >= 0; i--)
        base_header = base_header << 8 | base[i];

    static const char alphabet[] = "{}[]\",:0123456789- eE.FIUB\\\x80\xFF";
    static const char *const swaps[] = {"F32", "F16", "BF16", "I64", "U8", "BOOL", "F64", "I8", "X"};
    RngStream rs = rng_stream(99, RNG_PURPOSE_TEST, 501, 0);
    uint64_t draw = 0;
    unsigned char img[4096];
    int accepted = 0;
    const int iterations = 10000;
    for (int it = 0; it < iterations; it++) {
        size_t len = base_len;
        memcpy(img, base, base_len);
        size_t header_len = (size_t)base_header;
        uint32_t kind = rng_below(&rs, draw++, 10);
        if (kind >= 8) {
            /* A generated header with consistent sizes whose offsets are tiled and then shifted
             * at random: reaches the overlap / hole / coverage checks that byte edits rarely do. */
            static const char *const dts[] = {"F32", "F16", "I64", "U8", "BF16"};
            static const size_t dsz[] = {4, 2, 8, 1, 2};
            char hdr[1024];
            int hn = snprintf(hdr, sizeof hdr, "{");
            uint64_t at = 0, max_end = 0;
            int count = 1 + (int)rng_below(&rs, draw++, 4);
            for (int t = 0; t < count; t++) {
                uint32_t d = rng_below(&rs, draw++, 5);
                int ndim = (int)rng_below(&rs, draw++, 3);
                int64_t dims[2] = {rng_below(&rs, draw++, 4), rng_below(&rs, draw++, 4)};
                uint64_t nbytes = dsz[d] * (uint64_t)(ndim > 0 ? dims[0] : 1) * (uint64_t)(ndim > 1 ? dims[1] : 1);
                uint64_t b = at, e = at + nbytes;
                at = e;
                uint32_t shift = rng_below(&rs, draw++, 8) + 1, how = rng_below(&rs, draw++, 5);
                if (how == 0) { /* earlier: overlaps the previous tensor */
                    uint64_t back = shift < b ? shift : b;
                    b -= back, e -= back;
                } else if (how == 1) { /* later: leaves a hole */
                    b += shift, e += shift;
                }
                max_end = e > max_end ? e : max_end;
                char shape[32];
                if (ndim == 0)
                    snprintf(shape, sizeof shape, "[]");
                else if (ndim == 1)
                    snprintf(shape, sizeof shape, "[%lld]", (long long)dims[0]);
                else
                    snprintf(shape, sizeof shape, "[%lld,%lld]", (long long)dims[0], (long long)dims[1]);
                hn += snprintf(hdr + hn, sizeof hdr - (size_t)hn,
                               "%s\"t%d\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%llu,%llu]}", t ? "," : "",
                               t, dts[d], shape, (unsigned long long)b, (unsigned long long)e);
            }
            hn += snprintf(hdr + hn, sizeof hdr - (size_t)hn, "}");
            uint32_t tail = rng_below(&rs, draw++, 4);
            uint64_t data_len = tail == 0 ? max_end + rng_below(&rs, draw++, 5) : tail == 1 && max_end ? max_end - 1 : max_end;
            for (int i = 0; i < 8; i++)
                img[i] = (unsigned char)((uint64_t)hn >> (8 * i));
            memcpy(img + 8, hdr, (size_t)hn);
            for (uint64_t i = 0; i < data_len; i++)
                img[8 + hn + i] = (unsigned char)i;
            len = 8 + (size_t)hn + data_len;
        } else if (kind == 0) { /* random bytes, with a plausible length field half of the time */
            len = rng_below(&rs, draw++, 200);
            for (size_t i = 0; i < len; i++)
                img[i] = (unsigned char)rng_below(&rs, draw++, 256);
            if (len >= 8 && rng_below(&rs, draw++, 2)) {
                uint64_t n = rng_below(&rs, draw++, (uint32_t)(len - 7));
                for (int i = 0; i < 8; i++)
                    img[i] = (unsigned char)(n >> (8 * i));
            }
        } else if (kind == 1) { /* truncate or extend */
            if (rng_below(&rs, draw++, 2))
                len = rng_below(&rs, draw++, (uint32_t)base_len);
            else
                for (uint32_t k = rng_below(&rs, draw++, 16) + 1; k > 0; k--)
                    img[len++] = (unsigned char)rng_below(&rs, draw++, 256);
        } else if (kind == 2) { /* edit the length field */
            uint64_t n = base_header;
            uint32_t how = rng_below(&rs, draw++, 3);
            if (how == 0)
                n += (uint64_t)rng_below(&rs, draw++, 17) - 8;
            else if (how == 1)
                n ^= 1ull << rng_below(&rs, draw++, 64);
            else {
                uint64_t hi = rng_below(&rs, draw++, UINT32_MAX);
                n = hi << rng_below(&rs, draw++, 33);
            }
            for (int i = 0; i < 8; i++)
                img[i] = (unsigned char)(n >> (8 * i));
        } else {
            /* Edit the JSON, then (mostly) re-frame: fix the length field and keep the data, so
             * the edit reaches the deeper checks instead of failing the length check. */
            unsigned char hdr[2048];
            size_t hn = header_len;
            memcpy(hdr, base + 8, hn);
            int edits = 1 + (int)rng_below(&rs, draw++, 3);
            for (int m = 0; m < edits && hn > 0; m++) {
                size_t at = rng_below(&rs, draw++, (uint32_t)hn);
                uint32_t op = rng_below(&rs, draw++, 6);
                unsigned char ch = (unsigned char)alphabet[rng_below(&rs, draw++, sizeof alphabet - 1)];
                if (op == 0) {
                    hdr[at] ^= (unsigned char)(1u << rng_below(&rs, draw++, 8));
                } else if (op == 1) {
                    hdr[at] = ch;
                } else if (op == 2 && hn < sizeof hdr - 1) {
                    memmove(hdr + at + 1, hdr + at, hn - at);
                    hdr[at] = ch;
                    hn++;
                } else if (op == 3) {
                    memmove(hdr + at, hdr + at + 1, hn - at - 1);
                    hn--;
                } else if (op == 4) { /* change a digit: offsets and shapes */
                    for (size_t k = at; k < hn; k++)
                        if (hdr[k] >= '0' && hdr[k] <= '9') {
                            hdr[k] = (unsigned char)('0' + rng_below(&rs, draw++, 10));
                            break;
                        }
                } else { /* swap a dtype */
                    const char *dt = swaps[rng_below(&rs, draw++, sizeof swaps / sizeof swaps[0])];
                    unsigned char *q = memmem(hdr, hn, "\"dtype\":\"", 9);
                    for (uint32_t skip = rng_below(&rs, draw++, 5); q && skip > 0; skip--) {
                        unsigned char *next = memmem(q + 1, hn - (size_t)(q + 1 - hdr), "\"dtype\":\"", 9);
                        q = next ? next : q;
                    }
                    if (q) {
                        unsigned char *v = q + 9, *end = memchr(v, '"', hn - (size_t)(v - hdr));
                        size_t old = end ? (size_t)(end - v) : 0, nw = strlen(dt);
                        if (end && hn - old + nw < sizeof hdr) {
                            memmove(v + nw, end, hn - (size_t)(end - hdr));
                            memcpy(v, dt, nw);
                            hn = hn - old + nw;
                        }
                    }
                }
            }
            size_t data_len = base_len - 8 - header_len;
            bool reframe = rng_below(&rs, draw++, 8) != 0;
            uint64_t field = reframe ? hn : header_len;
            for (int i = 0; i < 8; i++)
                img[i] = (unsigned char)(field >> (8 * i));
            memcpy(img + 8, hdr, hn);
            memcpy(img + 8 + hn, base + 8 + header_len, data_len);
            len = 8 + hn + data_len;
        }
        accepted += fuzz_open(img, len);
    }
    print_message("safetensors fuzz: %d of %d mutated files accepted\n", accepted, iterations);
    /* Both outcomes must occur, or the mutations do not exercise the validator. */
    assert_true(accepted > iterations / 100);
    assert_true(accepted < iterations / 2);
    free(base);
}

TEST_GROUP(safetensors, cmocka_unit_test(test_safetensors_write_read_round_trip),
           cmocka_unit_test(test_safetensors_half_conversions_exact), cmocka_unit_test(test_safetensors_typed_reads),
           cmocka_unit_test(test_safetensors_rejects_bad_files), cmocka_unit_test(test_safetensors_accepts_edge_cases),
           cmocka_unit_test(test_safetensors_open_file_errors),
           cmocka_unit_test(test_safetensors_writer_rejects_bad_input), cmocka_unit_test(test_safetensors_atomic_write),
           cmocka_unit_test(test_checkpoint_load_converts_and_ignores_bookkeeping),
           cmocka_unit_test(test_checkpoint_reports_every_problem_and_leaves_model_untouched),
           cmocka_unit_test(test_checkpoint_problem_list_is_capped), cmocka_unit_test(test_checkpoint_prefix_options),
           cmocka_unit_test(test_checkpoint_save_round_trip), cmocka_unit_test(test_safetensors_fuzz))
