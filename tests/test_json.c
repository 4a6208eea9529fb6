/* test_json.c — the strict JSON parser: valid documents, exact numbers, strings and escapes,
 * every error class with its message and position, lookups, serialization round trips, the
 * shape of a safetensors header, and a deterministic mutation fuzz (run under SAN=1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/json.h"
#include "test_util.h"

static JsonDoc *parse_ok(const char *text)
{
    JsonError e;
    JsonDoc *d = json_parse(text, strlen(text), &e);
    if (!d)
        fail_msg("expected %s to parse, got: %s", text, e.message);
    return d;
}

/* Parses text (exactly strlen bytes, copied into a tight buffer so ASan sees any over-read)
 * and requires an error whose message contains `what` at the given line and column. */
static void expect_error_n(const char *text, size_t len, const char *what, int line, int column)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    JsonError e;
    JsonDoc *d = json_parse(copy, len, &e);
    free(copy);
    if (d) {
        json_free(d);
        fail_msg("expected an error (%s) for %.*s", what, (int)len, text);
    }
    if (!strstr(e.message, what))
        fail_msg("error for %.*s: expected \"%s\" in \"%s\"", (int)len, text, what, e.message);
    if (e.line != line || e.column != column)
        fail_msg("error for %.*s at line %d column %d, expected line %d column %d (%s)", (int)len, text, e.line,
                 e.column, line, column, e.message);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "line %d, column %d (byte %zu): ", line, column, e.offset);
    if (strncmp(e.message, prefix, strlen(prefix)) != 0)
        fail_msg("message \"%s\" should start with \"%s\"", e.message, prefix);
}

static void expect_error(const char *text, const char *what, int line, int column)
{
    expect_error_n(text, strlen(text), what, line, column);
}

static void test_json_valid_documents(void **state)
{
    JsonDoc *d = parse_ok(" {\"b\": [1, 2.5, \"x\", true, false, null, {}, []], \"a\": {\"z\": 1, \"y\": 2}}\n");
    const JsonValue *root = json_root(d);
    assert_int_equal(root->type, JSON_OBJECT);
    assert_int_equal(json_length(root), 2);
    /* Key order is document order, not sorted. */
    assert_string_equal(root->u.object.members[0].key, "b");
    assert_string_equal(root->u.object.members[1].key, "a");
    const JsonValue *b = json_object_get(root, "b");
    assert_int_equal(json_length(b), 8);
    int64_t i64;
    double dv;
    bool bv;
    assert_true(json_as_int64(json_array_at(b, 0), INT64_MIN, INT64_MAX, &i64));
    assert_int_equal(i64, 1);
    assert_true(json_as_double(json_array_at(b, 1), &dv));
    assert_true(dv == 2.5);
    assert_string_equal(json_as_string(json_array_at(b, 2)), "x");
    assert_true(json_as_bool(json_array_at(b, 3), &bv) && bv);
    assert_true(json_as_bool(json_array_at(b, 4), &bv) && !bv);
    assert_int_equal(json_array_at(b, 5)->type, JSON_NULL);
    assert_int_equal(json_array_at(b, 6)->type, JSON_OBJECT);
    assert_int_equal(json_length(json_array_at(b, 6)), 0);
    assert_int_equal(json_array_at(b, 7)->type, JSON_ARRAY);
    assert_int_equal(json_length(json_array_at(b, 7)), 0);
    assert_null(json_array_at(b, 8));
    const JsonValue *a = json_object_get(root, "a");
    assert_string_equal(a->u.object.members[0].key, "z");
    assert_true(json_as_int64(json_object_get(a, "y"), 0, 10, &i64));
    assert_int_equal(i64, 2);
    /* Offsets point at the value's first byte. */
    assert_int_equal(root->offset, 1);
    assert_int_equal(b->offset, 7);
    json_free(d);

    /* Top-level scalars, surrounding whitespace, and a skipped byte order mark. */
    const char *scalars[] = {"0", "-1", "\"s\"", "true", "false", "null", " \t\r\n 7 \t\r\n", "\xEF\xBB\xBF{}"};
    for (size_t k = 0; k < sizeof scalars / sizeof scalars[0]; k++)
        json_free(parse_ok(scalars[k]));
    /* Not NUL-terminated: parsing stops at len. */
    JsonError e;
    d = json_parse("[1]garbage", 3, &e);
    assert_non_null(d);
    assert_int_equal(json_length(json_root(d)), 1);
    json_free(d);
}

static void test_json_numbers_exact(void **state)
{
    static const struct {
        const char *text;
        bool is_int;
        int64_t exact;
        double value;
    } cases[] = {
        {"0", true, 0, 0.0},
        {"-0", true, 0, -0.0},
        {"42", true, 42, 42.0},
        {"9223372036854775807", true, INT64_MAX, 9223372036854775807.0},
        {"-9223372036854775808", true, INT64_MIN, -9223372036854775808.0},
        {"9223372036854775808", false, 0, 9223372036854775808.0}, /* one past int64 */
        {"-9223372036854775809", false, 0, -9223372036854775809.0},
        {"1e3", true, 1000, 1000.0},
        {"2.50e1", true, 25, 25.0},
        {"1000e-3", true, 1, 1.0},
        {"1.0", true, 1, 1.0},
        {"0.0e5", true, 0, 0.0},
        {"1.5", false, 0, 1.5},
        {"-2.5E-3", false, 0, -2.5e-3},
        {"1e-400", false, 0, 0.0}, /* 10^-400 is a fraction although the double is 0 */
        {"12345678901234567890123e-4", false, 0, 1234567890123456789.0123},
        {"9007199254740993", true, 9007199254740993LL, 9007199254740992.0}, /* exact beyond double */
        {"1E+2", true, 100, 100.0},
        {"1e19", false, 0, 1e19},
        {"123456789012345678e1", true, 1234567890123456780LL, 1234567890123456780.0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        JsonDoc *d = parse_ok(cases[k].text);
        const JsonValue *v = json_root(d);
        assert_int_equal(v->type, JSON_NUMBER);
        bool expect_int = cases[k].is_int;
        if (v->u.number.is_int != expect_int)
            fail_msg("%s: is_int %d, expected %d", cases[k].text, v->u.number.is_int, expect_int);
        if (expect_int && v->u.number.exact != cases[k].exact)
            fail_msg("%s: exact %lld, expected %lld", cases[k].text, (long long)v->u.number.exact,
                     (long long)cases[k].exact);
        if (v->u.number.value != cases[k].value)
            fail_msg("%s: value %.17g, expected %.17g", cases[k].text, v->u.number.value, cases[k].value);
        json_free(d);
    }
    /* -0 keeps its sign in the double. */
    JsonDoc *d = parse_ok("-0.0");
    assert_true(signbit(json_root(d)->u.number.value));
    json_free(d);
    /* Correct rounding (strtod in the C locale). */
    d = parse_ok("0.1");
    assert_true(json_root(d)->u.number.value == 0.1);
    json_free(d);
    d = parse_ok("2.2250738585072011e-308");
    assert_true(json_root(d)->u.number.value == 2.2250738585072011e-308);
    json_free(d);
}

static void test_json_strings_and_escapes(void **state)
{
    JsonDoc *d = parse_ok("[\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\\u00e9\\u20AC\", \"\\ud83d\\ude00\", \"caf\xC3\xA9 \xE2\x82\xAC "
                          "\xF0\x9F\x98\x80\", \"\"]");
    const JsonValue *r = json_root(d);
    assert_string_equal(json_as_string(json_array_at(r, 0)), "a\"b\\c/d\b\f\n\r\t");
    assert_string_equal(json_as_string(json_array_at(r, 1)), "\xC3\xA9\xE2\x82\xAC");
    /* A surrogate pair becomes one 4-byte UTF-8 character (U+1F600). */
    assert_string_equal(json_as_string(json_array_at(r, 2)), "\xF0\x9F\x98\x80");
    assert_int_equal(json_array_at(r, 2)->u.string.len, 4);
    assert_string_equal(json_as_string(json_array_at(r, 3)), "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    assert_string_equal(json_as_string(json_array_at(r, 4)), "");
    assert_int_equal(json_array_at(r, 4)->u.string.len, 0);
    json_free(d);
    /* Boundary code points: U+007F, U+0080, U+07FF, U+0800, U+FFFF, U+10000, U+10FFFF. */
    d = parse_ok("\"\\u007f\\u0080\\u07ff\\u0800\\uffff\\ud800\\udc00\\udbff\\udfff\"");
    assert_string_equal(json_as_string(json_root(d)),
                        "\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF");
    json_free(d);
}

static void test_json_error_classes(void **state)
{
    /* Structure */
    expect_error("", "expected a value, found end of input", 1, 1);
    expect_error("   ", "expected a value, found end of input", 1, 4);
    expect_error("[1] 2", "unexpected '2' after the JSON value (trailing data)", 1, 5);
    expect_error("{} x", "trailing data", 1, 4);
    expect_error("[1,]", "trailing commas are not allowed", 1, 4);
    expect_error("{\"a\":1,}", "trailing commas are not allowed", 1, 8);
    expect_error("[1 2]", "expected ',' or ']' after an array element, found '2'", 1, 4);
    expect_error("{\"a\":1 \"b\":2}", "expected ',' or '}' after an object member, found '\"'", 1, 8);
    expect_error("{\"a\" 1}", "expected ':' after the object key \"a\", found '1'", 1, 6);
    expect_error("{1:2}", "expected a string key or '}' after '{', found '1'", 1, 2);
    expect_error("{\"a\":1,2:3}", "expected a string key after ',', found '2'", 1, 8);
    expect_error("{'a':1}", "expected a string key or '}' after '{', found '''", 1, 2);
    expect_error("[1", "expected ',' or ']' after an array element, found end of input", 1, 3);
    expect_error("{\"a\":", "expected a value, found end of input", 1, 6);
    expect_error("[,1]", "expected a value (object, array, string, number, true, false or null), found ','", 1, 2);
    expect_error("// c\n1", "found '/'", 1, 1);
    expect_error("{\"k\":1,\"k\":2}", "duplicate key \"k\" in object (first seen at line 1, column 2)", 1, 8);
    /* Literals */
    expect_error("tru", "invalid literal (expected true, false or null)", 1, 1);
    expect_error("[nul]", "invalid literal", 1, 2);
    expect_error("True", "found 'T'", 1, 1);
    expect_error("NaN", "found 'N'", 1, 1);
    expect_error("-Infinity", "expected a digit after '-', found 'I'", 1, 2);
    /* Numbers */
    expect_error("01", "leading zeros are not allowed in numbers", 1, 1);
    expect_error("[-012]", "leading zeros are not allowed in numbers", 1, 2);
    expect_error("-", "expected a digit after '-', found end of input", 1, 2);
    expect_error("1.", "expected a digit after the decimal point, found end of input", 1, 3);
    expect_error("1.e5", "expected a digit after the decimal point, found 'e'", 1, 3);
    expect_error("1e", "expected a digit in the exponent, found end of input", 1, 3);
    expect_error("1e+", "expected a digit in the exponent", 1, 4);
    expect_error(".5", "found '.'", 1, 1);
    expect_error("+1", "found '+'", 1, 1);
    expect_error("0x10", "unexpected 'x' after the JSON value", 1, 2);
    expect_error("[1e400]", "number 1e400 is out of range for a double", 1, 2);
    expect_error("-1e99999999999999999999", "out of range for a double", 1, 1);
    /* Strings */
    expect_error("\"abc", "unterminated string (it starts at line 1, column 1)", 1, 5);
    expect_error("[\"a\nb\"]", "newline inside a string", 1, 4);
    expect_error("\"a\tb\"", "control character 0x09 inside a string (escape it as \\u0009)", 1, 3);
    expect_error_n("\"a\0b\"", 5, "control character 0x00 inside a string", 1, 3);
    expect_error("\"\\x\"", "invalid escape sequence '\\' followed by 'x'", 1, 2);
    expect_error("\"\\", "unterminated escape sequence at end of input", 1, 3);
    expect_error("\"\\u12G4\"", "expected 4 hex digits after \\u, found 'G'", 1, 6);
    expect_error("\"\\u12", "expected 4 hex digits after \\u, found end of input", 1, 6);
    expect_error("\"\\u0000\"", "\\u0000 (NUL) is not supported in strings", 1, 2);
    expect_error("\"\\ud83d\"", "lone high surrogate \\uD83D", 1, 2);
    expect_error("\"\\ud83dx\"", "lone high surrogate", 1, 2);
    expect_error("\"\\ud83d\\u0041\"", "high surrogate \\uD83D is followed by \\u0041, not by a low surrogate", 1, 2);
    expect_error("\"\\ude00\"", "lone low surrogate \\uDE00", 1, 2);
    expect_error("\"\\ud83d\\ud83d\"", "not by a low surrogate", 1, 2);
    /* Invalid UTF-8: overlong, encoded surrogate, beyond U+10FFFF, stray continuation, truncated. */
    expect_error("\"\xC0\x80\"", "invalid UTF-8 byte 0xC0 in string", 1, 2);
    expect_error("\"\xE0\x80\x80\"", "invalid UTF-8 byte 0xE0", 1, 2);
    expect_error("\"\xED\xA0\x80\"", "invalid UTF-8 byte 0xED", 1, 2);
    expect_error("\"\xF4\x90\x80\x80\"", "invalid UTF-8 byte 0xF4", 1, 2);
    expect_error("\"\xF5\x80\x80\x80\"", "invalid UTF-8 byte 0xF5", 1, 2);
    expect_error("\"ab\x80\"", "invalid UTF-8 byte 0x80", 1, 4);
    expect_error("\"\xE2\x82\"", "invalid UTF-8 byte 0xE2", 1, 2);
    expect_error("\"\xE2\x82", "invalid UTF-8 byte 0xE2", 1, 2);
    expect_error("\xFF", "found byte 0xFF", 1, 1);
}

static void test_json_error_positions_multiline(void **state)
{
    /* Columns count characters: "é" is two bytes but one column. */
    const char *text = "{\n  \"caf\xC3\xA9\": [1,\n    2,,\n  ]\n}";
    expect_error(text, "expected a value (object, array, string, number, true, false or null), found ','", 3, 7);
    JsonError e;
    assert_null(json_parse(text, strlen(text), &e));
    assert_int_equal(e.offset, (size_t)(strstr(text, ",,") - text) + 1); /* the second ',' on line 3 */
    int line, column;
    json_line_column(text, strlen(text), strlen(text), &line, &column);
    assert_int_equal(line, 5);
    assert_int_equal(column, 2);
    json_line_column(text, strlen(text), 0, &line, &column);
    assert_int_equal(line, 1);
    assert_int_equal(column, 1);
    /* A missing comma between members reported on the following line. */
    expect_error("{\"a\": 1\n\"b\": 2}", "expected ',' or '}' after an object member, found '\"'", 2, 1);
}

static void test_json_depth_limit(void **state)
{
    char deep[600];
    for (int i = 0; i < 300; i++) {
        deep[i] = '[';
        deep[599 - i] = ']';
    }
    JsonError e;
    /* 256 levels are fine by default, 300 are not. */
    JsonDoc *d = json_parse(deep + 300 - 256, 512, &e);
    assert_non_null(d);
    json_free(d);
    expect_error_n(deep, 600, "nesting deeper than 256 levels of arrays/objects", 1, 257);
    d = json_parse_depth(deep, 600, 300, &e);
    assert_non_null(d);
    json_free(d);
    assert_null(json_parse_depth("{\"a\":{\"b\":[1]}}", 15, 2, &e));
    assert_non_null(strstr(e.message, "nesting deeper than 2 levels"));
    /* An absurd limit is clamped, so the recursion stays bounded. */
    size_t n = 2 * (JSON_MAX_DEPTH_LIMIT + 10);
    char *huge = malloc(n);
    assert_non_null(huge);
    memset(huge, '[', n / 2);
    memset(huge + n / 2, ']', n / 2);
    assert_null(json_parse_depth(huge, n, 1 << 30, &e));
    assert_non_null(strstr(e.message, "nesting deeper than 4096 levels"));
    free(huge);
}

static void test_json_duplicate_keys_large_object(void **state)
{
    /* 2000 members (the sorted path), a duplicate of member 700 placed at 1500. */
    size_t cap = 64 * 2000, n = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    n += (size_t)snprintf(text + n, cap - n, "{");
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(text + n, cap - n, "%s\"v_%d\":%d", i ? "," : "", i == 1500 ? 700 : i, i);
    n += (size_t)snprintf(text + n, cap - n, "}");
    JsonError e;
    assert_null(json_parse(text, n, &e));
    assert_non_null(strstr(e.message, "duplicate key \"v_700\""));
    assert_int_equal(e.offset, (size_t)(strstr(text, ",\"v_1499\":1499,") - text) + 15);
    /* Without the duplicate it parses, and lookups see every key. */
    n = 0;
    n += (size_t)snprintf(text + n, cap - n, "{");
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(text + n, cap - n, "%s\"v_%d\":%d", i ? "," : "", i, i);
    n += (size_t)snprintf(text + n, cap - n, "}");
    JsonDoc *d = json_parse(text, n, &e);
    assert_non_null(d);
    int64_t v;
    assert_true(json_as_int64(json_object_get(json_root(d), "v_1999"), 0, 5000, &v));
    assert_int_equal(v, 1999);
    json_free(d);
    free(text);
    /* Keys equal up to a prefix are different keys. */
    json_free(parse_ok("{\"a\":1,\"ab\":2,\"a b\":3}"));
}

static void test_json_lookup_helpers(void **state)
{
    JsonDoc *d = parse_ok("{\"n\": 5, \"big\": 5000000000, \"neg\": -3, \"f\": 1.5, \"s\": \"str\", \"arr\": [10, 20]}");
    const JsonValue *r = json_root(d);
    int64_t v = 99;
    assert_true(json_as_int64(json_object_get(r, "n"), 0, 10, &v));
    assert_int_equal(v, 5);
    /* Range checks */
    v = 99;
    assert_false(json_as_int64(json_object_get(r, "n"), 6, 10, &v));
    assert_false(json_as_int64(json_object_get(r, "big"), INT32_MIN, INT32_MAX, &v));
    assert_false(json_as_int64(json_object_get(r, "neg"), 0, INT64_MAX, &v));
    assert_int_equal(v, 99); /* untouched on failure */
    assert_true(json_as_int64(json_object_get(r, "big"), 0, INT64_MAX, &v));
    assert_int_equal(v, 5000000000LL);
    /* Type checks */
    assert_false(json_as_int64(json_object_get(r, "f"), INT64_MIN, INT64_MAX, &v));
    assert_false(json_as_int64(json_object_get(r, "s"), INT64_MIN, INT64_MAX, &v));
    assert_null(json_as_string(json_object_get(r, "n")));
    bool b;
    double dv;
    assert_false(json_as_bool(json_object_get(r, "n"), &b));
    assert_false(json_as_double(json_object_get(r, "s"), &dv));
    assert_null(json_object_get(r, "missing"));
    assert_null(json_object_get(json_object_get(r, "arr"), "n")); /* not an object */
    assert_null(json_array_at(r, 0));                             /* not an array */
    assert_int_equal(json_as_int64(json_array_at(json_object_get(r, "arr"), 1), 0, 100, &v), true);
    assert_int_equal(v, 20);
    assert_null(json_array_at(json_object_get(r, "arr"), 2));
    /* NULL in, NULL/false out. */
    assert_null(json_object_get(NULL, "n"));
    assert_null(json_array_at(NULL, 0));
    assert_int_equal(json_length(NULL), 0);
    assert_int_equal(json_length(json_object_get(r, "s")), 0);
    assert_false(json_as_int64(NULL, 0, 1, &v));
    assert_string_equal(json_type_name(JSON_OBJECT), "object");
    assert_string_equal(json_type_name(JSON_BOOL), "boolean");
    json_free(d);
    json_free(NULL);
}

/* The header of a safetensors file, as the C writer and the Python converter lay it out. */
static void test_json_safetensors_header_round_trip(void **state)
{
    char esc[128];
    size_t need = json_escape_string("conv.\"w\"\\\n\x01", 11, esc, sizeof esc);
    assert_string_equal(esc, "\"conv.\\\"w\\\"\\\\\\n\\u0001\"");
    assert_int_equal(need, strlen(esc));
    char small[8];
    assert_int_equal(json_escape_string("abcdefgh", 8, small, sizeof small), 10); /* snprintf-like */
    assert_string_equal(small, "\"abcdef");

    char header[512];
    snprintf(header, sizeof header,
             "{\"__metadata__\":{\"format\":\"pt\"},%s:{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[24,26]}}      ",
             esc);
    JsonDoc *d = parse_ok(header);
    const JsonValue *r = json_root(d);
    assert_int_equal(json_length(r), 3);
    assert_string_equal(r->u.object.members[1].key, "conv.\"w\"\\\n\x01");
    const JsonValue *w = &r->u.object.members[1].value;
    assert_string_equal(json_as_string(json_object_get(w, "dtype")), "F32");
    const JsonValue *shape = json_object_get(w, "shape");
    int64_t dim;
    assert_int_equal(json_length(shape), 2);
    assert_true(json_as_int64(json_array_at(shape, 1), 0, INT64_MAX, &dim));
    assert_int_equal(dim, 3);
    const JsonValue *offs = json_object_get(json_object_get(r, "b"), "data_offsets");
    assert_true(json_as_int64(json_array_at(offs, 0), 0, INT64_MAX, &dim));
    assert_int_equal(dim, 24);
    assert_int_equal(json_length(json_object_get(json_object_get(r, "b"), "shape")), 0);
    assert_string_equal(json_as_string(json_object_get(json_object_get(r, "__metadata__"), "format")), "pt");
    /* Serialize → parse → serialize is a fixed point, key order included. */
    size_t len1, len2;
    char *s1 = json_serialize(r, &len1);
    assert_non_null(s1);
    JsonDoc *d2 = parse_ok(s1);
    char *s2 = json_serialize(json_root(d2), &len2);
    assert_string_equal(s1, s2);
    assert_int_equal(len1, strlen(s1));
    assert_non_null(strstr(s1, "\"shape\":[2,3],\"data_offsets\":[0,24]"));
    assert_true(strstr(s1, "__metadata__") < strstr(s1, "conv."));
    free(s1);
    free(s2);
    json_free(d2);
    json_free(d);

    d = parse_ok("[1.5,-0.1,1e300,12345678901234567890,\"\\u00e9\",null,true,{}]");
    s1 = json_serialize(json_root(d), NULL);
    assert_string_equal(s1, "[1.5,-0.10000000000000001,1.0000000000000001e+300,1.2345678901234567e+19,\"\xC3\xA9\",null,true,{}]");
    free(s1);
    json_free(d);
}

static void test_json_parse_file(void **state)
{
    char path[] = "/tmp/focusbench_json_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "{\"database\": {\"v_1\": {\"annotations\": [{\"label\": \"x\"}]}}}";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    JsonError e;
    JsonDoc *d = json_parse_file(path, &e);
    assert_non_null(d);
    const JsonValue *ann = json_object_get(json_object_get(json_object_get(json_root(d), "database"), "v_1"), "annotations");
    assert_string_equal(json_as_string(json_object_get(json_array_at(ann, 0), "label")), "x");
    json_free(d);
    /* A broken file: the message names the file and the position. */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("{\n \"a\": [1, 2\n}", f);
    fclose(f);
    assert_null(json_parse_file(path, &e));
    char expect[256];
    snprintf(expect, sizeof expect, "%s: line 3, column 1 (byte 14): expected ',' or ']' after an array element, found '}'",
             path);
    assert_string_equal(e.message, expect);
    unlink(path);
    assert_null(json_parse_file(path, &e));
    assert_non_null(strstr(e.message, path));
    assert_non_null(strstr(e.message, "cannot open"));
    /* A directory cannot be read as a file. */
    assert_null(json_parse_file("/tmp", &e));
    assert_non_null(strstr(e.message, "/tmp: "));
}

/* ---- fuzz ------------------------------------------------------------------------------------ */

static const char *const fuzz_seeds[] = {
    "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}",
    "[1, -2.5e-3, 0, 1e300, \"a\\u00e9\\ud83d\\ude00\\n\", true, false, null, [], {}]",
    "{\"database\": {\"v_abc\": {\"subset\": \"training\", \"duration\": 12.5, \"annotations\": [{\"segment\": [0.5, 3.25], "
    "\"label\": \"Drinking coffee\"}]}}}",
    "[{\"id\": \"1\", \"label\": \"Holding [something]\", \"template\": \"Holding [something]\", \"placeholders\": [\"cup\"]}]",
    "\"caf\xC3\xA9 \xF0\x9F\x98\x80\"",
    "-9223372036854775808",
};

/* Characters that steer the parser into its branches. */
static const char fuzz_alphabet[] = "{}[]\",:\\u/0123456789eE.-+ tfnrsalbd\t\n\r\x01\x80\xC3\xA9\xED\xF0\xFF";

/* Same tree: types, strings, key order, and numbers by value (the text of a number may change
 * between serializations, e.g. "9.2233720368547758e+18" becomes the exact integer it denotes). */
static bool json_equal(const JsonValue *a, const JsonValue *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case JSON_NULL: return true;
    case JSON_BOOL: return a->u.boolean == b->u.boolean;
    case JSON_NUMBER: return a->u.number.value == b->u.number.value;
    case JSON_STRING:
        return a->u.string.len == b->u.string.len && memcmp(a->u.string.chars, b->u.string.chars, a->u.string.len) == 0;
    case JSON_ARRAY:
        if (a->u.array.count != b->u.array.count)
            return false;
        for (size_t i = 0; i < a->u.array.count; i++)
            if (!json_equal(&a->u.array.items[i], &b->u.array.items[i]))
                return false;
        return true;
    case JSON_OBJECT:
        if (a->u.object.count != b->u.object.count)
            return false;
        for (size_t i = 0; i < a->u.object.count; i++) {
            const JsonMember *x = &a->u.object.members[i], *y = &b->u.object.members[i];
            if (strcmp(x->key, y->key) != 0 || !json_equal(&x->value, &y->value))
                return false;
        }
        return true;
    }
    return false;
}

static bool check_parse(const unsigned char *bytes, size_t len)
{
    /* A tight heap copy: any read past len is an ASan error. */
    char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, bytes, len);
    JsonError e;
    JsonDoc *d = json_parse(buf, len, &e);
    bool parsed = d != NULL;
    if (d) {
        /* parse → serialize → parse gives the same tree, and serialization then is a fixed point */
        size_t n1, n2, n3;
        char *s1 = json_serialize(json_root(d), &n1);
        assert_non_null(s1);
        JsonDoc *d2 = json_parse(s1, n1, &e);
        if (!d2)
            fail_msg("serialized output does not re-parse: %s\n%s", e.message, s1);
        if (!json_equal(json_root(d), json_root(d2)))
            fail_msg("serialize changed the document: %.*s became %s", (int)len, buf, s1);
        char *s2 = json_serialize(json_root(d2), &n2);
        assert_non_null(s2);
        JsonDoc *d3 = json_parse(s2, n2, &e);
        assert_non_null(d3);
        char *s3 = json_serialize(json_root(d3), &n3);
        assert_non_null(s3);
        if (n2 != n3 || memcmp(s2, s3, n2) != 0)
            fail_msg("serialize is not a fixed point:\n%s\n%s", s2, s3);
        free(s1);
        free(s2);
        free(s3);
        json_free(d3);
        json_free(d2);
        json_free(d);
    } else {
        assert_true(e.offset <= len);
        assert_true(e.line >= 1 && e.column >= 1);
        assert_true(strncmp(e.message, "line ", 5) == 0);
        assert_true(strlen(e.message) > 30);
    }
    free(buf);
    return parsed;
}

static void test_json_fuzz_mutations(void **state)
{
    RngStream rs = rng_stream(20240611, RNG_PURPOSE_TEST, 77, 0);
    uint64_t draw = 0;
    unsigned char buf[1024];
    int parsed = 0;
    const int iterations = 10000;
    for (int it = 0; it < iterations; it++) {
        size_t len;
        if (it % 10 == 9) { /* pure random bytes now and then */
            len = rng_below(&rs, draw++, 64);
            for (size_t i = 0; i < len; i++)
                buf[i] = (unsigned char)rng_below(&rs, draw++, 256);
        } else {
            const char *seed = fuzz_seeds[rng_below(&rs, draw++, sizeof fuzz_seeds / sizeof fuzz_seeds[0])];
            len = strlen(seed);
            memcpy(buf, seed, len);
            int edits = 1 + (int)rng_below(&rs, draw++, 4);
            for (int m = 0; m < edits; m++) {
                uint32_t op = rng_below(&rs, draw++, 6);
                size_t at = len ? rng_below(&rs, draw++, (uint32_t)len) : 0;
                unsigned char ch = (unsigned char)fuzz_alphabet[rng_below(&rs, draw++, sizeof fuzz_alphabet - 1)];
                if (op == 0 && len) { /* flip a bit */
                    buf[at] ^= (unsigned char)(1u << rng_below(&rs, draw++, 8));
                } else if (op == 1 && len) { /* replace */
                    buf[at] = ch;
                } else if (op == 2 && len < sizeof buf - 1) { /* insert */
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = ch;
                    len++;
                } else if (op == 3 && len) { /* delete */
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                } else if (op == 4) { /* truncate */
                    len = at;
                } else if (len && len * 2 < sizeof buf) { /* duplicate a slice */
                    size_t n = rng_below(&rs, draw++, (uint32_t)(len - at)) + 1;
                    memmove(buf + at + n, buf + at, len - at);
                    len += n;
                }
            }
        }
        parsed += check_parse(buf, len);
    }
    print_message("json fuzz: %d of %d mutated documents parsed\n", parsed, iterations);
    /* The mutations must exercise both outcomes, or the test proves little. */
    assert_true(parsed > iterations / 50);
    assert_true(parsed < iterations - iterations / 4);
}

TEST_GROUP(json, cmocka_unit_test(test_json_valid_documents), cmocka_unit_test(test_json_numbers_exact),
           cmocka_unit_test(test_json_strings_and_escapes), cmocka_unit_test(test_json_error_classes),
           cmocka_unit_test(test_json_error_positions_multiline), cmocka_unit_test(test_json_depth_limit),
           cmocka_unit_test(test_json_duplicate_keys_large_object), cmocka_unit_test(test_json_lookup_helpers),
           cmocka_unit_test(test_json_safetensors_header_round_trip), cmocka_unit_test(test_json_parse_file),
           cmocka_unit_test(test_json_fuzz_mutations))
