/* test_csv.c — the result-CSV writer and reader (bench/csv_out.h): round trips of awkward strings
 * and numbers through libcsv, C-locale numbers under a comma-decimal LC_NUMERIC, the schema and
 * environment columns, atomic writing, malformed input, and the built-in parser held to libcsv's
 * behaviour on random input. */
#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/csv_out.h"
#if HAVE_CSV
#include <csv.h>
#endif
#include "bench/version_info.h"
#include "test_util.h"

static char g_dir[64];

static void make_dir(void)
{
    strcpy(g_dir, "/tmp/focusbench_csv_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static CsvEnv test_env(void)
{
    char *argv[] = {"sweep", "--out", "my results.csv"};
    CsvEnv env;
    csv_env_init(&env, "cpu", 3, argv);
    csv_env_set_seed(&env, 18446744073709551615ull);
    env.clock_sm_mhz = 1980.5;
    return env;
}

static const char *const TRICKY[] = {
    "plain",
    "a,b,c",
    "say \"hi\"",
    "line1\nline2",
    "crlf\r\ninside",
    "Ünïcødé 视频 ✓ método",
    "  padded  ",
    "\"\"",
    "tab\there",
    "trailing,",
    "uniadafocus-no_exit",
};
enum { N_TRICKY = (int)(sizeof TRICKY / sizeof TRICKY[0]) };

static const double NUMBERS[] = {
    0.1, 1.0 / 3.0, 1e-300, -0.0, 1e308, 123456789.125, 0.30000000000000004, DBL_MIN, DBL_MAX, -2.5e-7, 27.2,
};
enum { N_NUMBERS = (int)(sizeof NUMBERS / sizeof NUMBERS[0]) };

/* Strings with commas, quotes, newlines and UTF-8 come back byte for byte; numbers come back as
 * the same doubles; NaN is an empty field; the schema and environment columns are there. */
static void test_roundtrip(void **state)
{
    make_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/round.csv", g_dir);
    CsvEnv env = test_env();
    const char *cols[] = {"name", "value", "value_f32", "count", "missing"};
    char err[CSV_ERR_LEN];
    CsvOut *w = csv_out_open(path, cols, 5, &env, err, sizeof err);
    assert_non_null(w);
    for (int i = 0; i < N_TRICKY; i++) {
        csv_out_str(w, TRICKY[i]);
        csv_out_double(w, NUMBERS[i % N_NUMBERS]);
        csv_out_float(w, (float)NUMBERS[i % N_NUMBERS] * 0.1f);
        csv_out_int(w, i == 0 ? LLONG_MIN : i);
        csv_out_double(w, NAN);
        assert_true(csv_out_end_row(w));
    }
    assert_true(csv_out_commit(w, err, sizeof err));

    CsvTable t;
    if (!csv_table_read(path, &t, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(t.n_rows, N_TRICKY);
    assert_int_equal(t.n_cols, 1 + 5 + CSV_ENV_N);
    assert_string_equal(t.names[0], "schema_version");
    for (int j = 0; j < CSV_ENV_N; j++)
        assert_string_equal(t.names[1 + 5 + j], CSV_ENV_COLUMNS[j]);
    int c_name = csv_table_col(&t, "name"), c_val = csv_table_col(&t, "value"),
        c_f32 = csv_table_col(&t, "value_f32"), c_count = csv_table_col(&t, "count"),
        c_miss = csv_table_col(&t, "missing");
    for (int i = 0; i < N_TRICKY; i++) {
        assert_string_equal(csv_table_cell(&t, i, 0), "1");
        assert_string_equal(csv_table_cell(&t, i, c_name), TRICKY[i]);
        double v;
        assert_true(csv_table_number(&t, i, c_val, &v));
        double want = NUMBERS[i % N_NUMBERS];
        assert_memory_equal(&v, &want, sizeof v); /* bit-exact, -0.0 included */
        assert_true(csv_table_number(&t, i, c_f32, &v));
        assert_true((float)v == (float)want * 0.1f);
        assert_true(csv_table_number(&t, i, c_count, &v));
        assert_true(v == (i == 0 ? (double)LLONG_MIN : i));
        assert_string_equal(csv_table_cell(&t, i, c_miss), "");
        assert_false(csv_table_number(&t, i, c_miss, &v));
        assert_string_equal(csv_table_cell(&t, i, csv_table_col(&t, "flop_convention")), FLOP_CONVENTION);
        assert_string_equal(csv_table_cell(&t, i, csv_table_col(&t, "git_commit")), version_git_commit());
        assert_string_equal(csv_table_cell(&t, i, csv_table_col(&t, "build_flags")), version_build_flags());
        assert_string_equal(csv_table_cell(&t, i, csv_table_col(&t, "device")), "cpu");
        assert_string_equal(csv_table_cell(&t, i, csv_table_col(&t, "command")),
                            "focusbench sweep --out 'my results.csv'");
        assert_string_equal(csv_table_cell(&t, i, csv_table_col(&t, "seed")), "18446744073709551615");
        assert_string_equal(csv_table_cell(&t, i, csv_table_col(&t, "clock_sm_mhz")), "1980.5");
        assert_string_equal(csv_table_cell(&t, i, csv_table_col(&t, "clock_mem_mhz")), "");
        assert_string_equal(csv_table_cell(&t, i, csv_table_col(&t, "cudnn_version")), ""); /* empty on CPU */
    }
    /* The text itself: strings quoted, numbers bare and short. */
    const char *text = slurp(path);
    assert_non_null(strstr(text, "\"say \"\"hi\"\"\""));
    assert_non_null(strstr(text, ",0.1,"));
    assert_non_null(strstr(text, ",0.30000000000000004,"));
    assert_int_equal(csv_table_col(&t, "nope"), -1);
    /* The quoting helper is libcsv's rule exactly, and says how much room it needs. */
    for (int i = 0; i < N_TRICKY; i++) {
        char mine[128];
        size_t need = csv_quote_field(mine, sizeof mine, TRICKY[i]);
        assert_int_equal(need, strlen(mine));
#if HAVE_CSV
        char lib[128];
        size_t lib_need = csv_write(lib, sizeof lib, TRICKY[i], strlen(TRICKY[i]));
        assert_int_equal(lib_need, need);
        assert_memory_equal(lib, mine, need);
#endif
    }
    char small[6];
    assert_int_equal(csv_quote_field(small, sizeof small, "a\"bcd"), 8);
    assert_string_equal(small, "\"a\"\"b");
    assert_string_equal(csv_table_cell(&t, 0, -1), "");
    csv_table_free(&t);
    remove_dir();
}

/* A comma-decimal locale if one can be switched to: common names first, then `locale -a`. */
static bool set_comma_locale(char *name, size_t cap)
{
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "de_DE", "fr_FR.UTF-8", "fr_FR.utf8",
                                        "nl_NL.UTF-8", "es_ES.UTF-8", "it_IT.UTF-8", "ru_RU.UTF-8", "pt_BR.UTF-8"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (setlocale(LC_NUMERIC, names[i]) && strcmp(localeconv()->decimal_point, ",") == 0) {
            snprintf(name, cap, "%s", names[i]);
            return true;
        }
    FILE *p = popen("locale -a 2>/dev/null", "r");
    if (p) {
        char line[256];
        bool found = false;
        while (!found && fgets(line, sizeof line, p)) {
            line[strcspn(line, "\r\n")] = '\0';
            if (setlocale(LC_NUMERIC, line) && strcmp(localeconv()->decimal_point, ",") == 0) {
                snprintf(name, cap, "%s", line);
                found = true;
            }
        }
        pclose(p);
        if (found)
            return true;
    }
    setlocale(LC_NUMERIC, "C");
    return false;
}

/* Puts the C numeric locale back even when the test failed half-way (a failed assertion
 * leaves the test at once), so later tests do not run under a comma locale. */
static int restore_c_locale(void **state)
{
    setlocale(LC_NUMERIC, "C");
    return 0;
}

/* Under a comma-decimal LC_NUMERIC (as a German user's process would have after
 * setlocale(LC_ALL, "")), numbers are still written and read with a '.'. */
static void test_numbers_in_comma_locale(void **state)
{
    char name[256];
    if (!set_comma_locale(name, sizeof name)) {
        print_message("no comma-decimal locale installed (tried de_DE/fr_FR/... and `locale -a`); skipping. "
                      "To run this test: localedef -i de_DE -f UTF-8 de_DE.UTF-8\n");
        skip();
    }
    char probe[32];
    snprintf(probe, sizeof probe, "%.2f", 0.5);
    assert_string_equal(probe, "0,50"); /* the locale really is active for plain printf */
    make_dir();
    char path[128], err[CSV_ERR_LEN];
    snprintf(path, sizeof path, "%s/locale.csv", g_dir);
    CsvEnv env = test_env();
    const char *cols[] = {"latency_ms_median", "top1"};
    CsvOut *w = csv_out_open(path, cols, 2, &env, err, sizeof err);
    assert_non_null(w);
    csv_out_double(w, 0.5);
    csv_out_float(w, 72.25f);
    assert_true(csv_out_end_row(w));
    assert_true(csv_out_commit(w, err, sizeof err));
    const char *text = slurp(path);
    assert_non_null(strstr(text, "\n1,0.5,72.25,"));
    assert_non_null(strstr(text, ",1980.5,")); /* the clock in the environment too */
    CsvTable t;
    assert_true(csv_table_read(path, &t, err, sizeof err));
    double v;
    assert_true(csv_table_number(&t, 0, 1, &v));
    assert_true(v == 0.5);
    assert_true(csv_table_number(&t, 0, 2, &v));
    assert_true(v == 72.25);
    assert_true(csv_parse_double("1234.5", &v) && v == 1234.5);
    csv_table_free(&t);
    setlocale(LC_NUMERIC, "C");
    remove_dir();
}

/* Shortest round-trip formatting on random bit patterns: parse(format(x)) == x exactly. */
static void test_number_format_fuzz(void **state)
{
    RngStream s = rng_stream(7, RNG_PURPOSE_TEST, 1, 0);
    char buf[40];
    for (uint64_t i = 0; i < 3000; i++) {
        uint32_t w[4];
        rng_philox(&s, i, w);
        uint64_t bits = (uint64_t)w[0] << 32 | w[1];
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d))
            continue;
        csv_format_double(d, buf, sizeof buf);
        double back;
        assert_true(csv_parse_double(buf, &back));
        assert_memory_equal(&back, &d, sizeof d);
        assert_true(strlen(buf) <= 24);
        float f;
        memcpy(&f, &w[2], sizeof f);
        if (!isfinite(f))
            continue;
        csv_format_float(f, buf, sizeof buf);
        assert_true(csv_parse_double(buf, &back));
        assert_true((float)back == f);
    }
    csv_format_double(NAN, buf, sizeof buf);
    assert_string_equal(buf, "");
    csv_format_double(-INFINITY, buf, sizeof buf);
    assert_string_equal(buf, "-inf");
    csv_format_double(0.1, buf, sizeof buf);
    assert_string_equal(buf, "0.1");
    csv_format_float(0.1f, buf, sizeof buf);
    assert_string_equal(buf, "0.1");
    double v;
    assert_false(csv_parse_double("", &v));
    assert_false(csv_parse_double("  ", &v));
    assert_false(csv_parse_double("1.5ms", &v));
    assert_true(csv_parse_double(" 2.5 ", &v) && v == 2.5);
}

#if HAVE_CSV
static void assert_tables_equal(const CsvTable *a, const CsvTable *b, const char *input)
{
    if (a->n_cols != b->n_cols || a->n_rows != b->n_rows)
        fail_msg("shape %dx%d vs %dx%d on input [%s]", a->n_rows, a->n_cols, b->n_rows, b->n_cols, input);
    for (int i = 0; i < a->n_cols; i++)
        if (strcmp(a->names[i], b->names[i]) != 0)
            fail_msg("header %d: [%s] vs [%s] on input [%s]", i, a->names[i], b->names[i], input);
    for (size_t i = 0; i < (size_t)a->n_rows * (size_t)a->n_cols; i++)
        if (strcmp(a->cells[i], b->cells[i]) != 0)
            fail_msg("cell %zu: [%s] vs [%s] on input [%s]", i, a->cells[i], b->cells[i], input);
}

#endif

/* The built-in parser (used without libcsv) accepts and rejects exactly what libcsv does and
 * yields the same fields, on random text over an alphabet of the characters that matter. */
static void test_builtin_parser_matches_libcsv(void **state)
{
#if !HAVE_CSV
    print_message("built without libcsv: nothing to compare the built-in parser with; skipping\n");
    skip();
#else
    static const char alphabet[] = {'a', 'b', ',', ',', '"', '"', ' ', '\t', '\n', '\r', (char)0xc3, (char)0xa9};
    RngStream s = rng_stream(11, RNG_PURPOSE_TEST, 2, 0);
    char input[64];
    char err1[CSV_ERR_LEN], err2[CSV_ERR_LEN];
    int both_ok = 0, both_bad = 0;
    for (uint64_t it = 0; it < 4000; it++) {
        int n = (int)rng_below(&s, it * 64, 48);
        for (int i = 0; i < n; i++)
            input[i] = alphabet[rng_below(&s, it * 64 + 1 + (uint64_t)i, sizeof alphabet)];
        input[n] = '\0';
        CsvTable a, b;
        bool ok_lib = csv_table_parse(input, (size_t)n, "fuzz", &a, err1, sizeof err1);
        bool ok_own = csv_table_parse_builtin(input, (size_t)n, "fuzz", &b, err2, sizeof err2);
        if (ok_lib != ok_own)
            fail_msg("libcsv %s, built-in %s on input [%s] (%s | %s)", ok_lib ? "accepts" : "rejects",
                     ok_own ? "accepts" : "rejects", input, ok_lib ? "" : err1, ok_own ? "" : err2);
        if (ok_lib) {
            assert_tables_equal(&a, &b, input);
            csv_table_free(&a);
            csv_table_free(&b);
            both_ok++;
        } else {
            both_bad++;
        }
    }
    /* Both outcomes were exercised, so the comparison meant something. */
    assert_true(both_ok > 300 && both_bad > 300);
#endif
}

static void expect_parse_error(const char *text, const char *needle)
{
    CsvTable t;
    char err[CSV_ERR_LEN];
    if (csv_table_parse(text, strlen(text), "x.csv", &t, err, sizeof err))
        fail_msg("parsed [%s] without an error", text);
    if (!strstr(err, needle))
        fail_msg("error for [%s] is \"%s\", expected it to contain \"%s\"", text, err, needle);
    assert_null(t.cells);
    if (!csv_table_parse_builtin(text, strlen(text), "x.csv", &t, err, sizeof err))
        return;
    fail_msg("built-in parser accepted [%s]", text);
}

static void test_malformed_input(void **state)
{
    expect_parse_error("a,b\n1,x\"y\n", "x.csv: line 2: malformed CSV");
    expect_parse_error("a,b\n1,\"open\n\n", "x.csv: line 2: malformed CSV: a quoted field opened here is never closed");
    expect_parse_error("a,b,c\n1,2,3\n4,5\n", "record 3 (data row 2) has 2 fields, the header has 3");
    expect_parse_error("a,b,a\n1,2,3\n", "column 'a' appears twice");
    expect_parse_error("", "x.csv: empty file");
    expect_parse_error("\n\n", "x.csv: empty file");
    CsvTable t;
    char err[CSV_ERR_LEN];
    assert_false(csv_table_parse("a\n\0\n", 4, "nul.csv", &t, err, sizeof err));
    assert_non_null(strstr(err, "nul.csv: contains a NUL byte at line 2"));
    assert_false(csv_table_read("/nonexistent/dir/r.csv", &t, err, sizeof err));
    assert_non_null(strstr(err, "cannot read /nonexistent/dir/r.csv: No such file"));

    /* Tolerated: a byte order mark, CRLF line ends, blank lines, spaces around fields, no final
     * line end. */
    const char *ok = "\xEF\xBB\xBFmethod, top1\r\n\r\n\"tsn\" , 61.5\r\n  tsm,62\n\nx,\"a\"\"b\"";
    assert_true(csv_table_parse(ok, strlen(ok), "ok.csv", &t, err, sizeof err));
    assert_int_equal(t.n_cols, 2);
    assert_int_equal(t.n_rows, 3);
    assert_string_equal(t.names[0], "method");
    assert_string_equal(t.names[1], "top1");
    assert_string_equal(csv_table_cell(&t, 0, 0), "tsn");
    assert_string_equal(csv_table_cell(&t, 0, 1), "61.5");
    assert_string_equal(csv_table_cell(&t, 1, 0), "tsm");
    assert_string_equal(csv_table_cell(&t, 2, 1), "a\"b");
    assert_string_equal(csv_table_cell(&t, 5, 1), ""); /* out of range reads as empty */
    csv_table_free(&t);
}

/* FILE.tmp while writing, FILE after commit and no .tmp; nothing at all after an abort or a
 * producer bug; clear messages for bad column names and unwritable places. */
static void test_atomic_writer(void **state)
{
    make_dir();
    char path[128], tmp[160], err[CSV_ERR_LEN];
    snprintf(path, sizeof path, "%s/a.csv", g_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CsvEnv env = test_env();
    const char *cols[] = {"method", "top1"};

    CsvOut *w = csv_out_open(path, cols, 2, &env, err, sizeof err);
    assert_non_null(w);
    csv_out_str(w, "tsn");
    csv_out_double(w, 61.5);
    assert_true(csv_out_end_row(w));
    assert_int_equal(access(tmp, F_OK), 0);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_true(csv_out_commit(w, err, sizeof err));
    assert_int_equal(access(path, F_OK), 0);
    assert_int_not_equal(access(tmp, F_OK), 0);

    /* A second write that is aborted leaves the first file as it was. */
    static char before[1 << 16];
    strcpy(before, slurp(path));
    w = csv_out_open(path, cols, 2, &env, err, sizeof err);
    assert_non_null(w);
    csv_out_str(w, "tsm");
    csv_out_abort(w);
    assert_string_equal(slurp(path), before);
    assert_int_not_equal(access(tmp, F_OK), 0);

    /* A row with too few values: commit fails, names the row, removes the .tmp. */
    w = csv_out_open(path, cols, 2, &env, err, sizeof err);
    csv_out_str(w, "tsm");
    assert_false(csv_out_end_row(w));
    assert_false(csv_out_commit(w, err, sizeof err));
    assert_non_null(strstr(err, "row 1 has 1 values, the header declares 2 columns"));
    assert_int_not_equal(access(tmp, F_OK), 0);
    assert_string_equal(slurp(path), before);

    /* An unended row is a producer bug too. */
    w = csv_out_open(path, cols, 2, &env, err, sizeof err);
    csv_out_str(w, "tsm");
    assert_false(csv_out_commit(w, err, sizeof err));
    assert_non_null(strstr(err, "the last row was not ended"));

    const char *bad_upper[] = {"Top1"}, *bad_dup[] = {"a", "a"}, *bad_env[] = {"seed"};
    assert_null(csv_out_open(path, bad_upper, 1, &env, err, sizeof err));
    assert_non_null(strstr(err, "'Top1' is not a lower-case identifier"));
    assert_null(csv_out_open(path, bad_dup, 2, &env, err, sizeof err));
    assert_non_null(strstr(err, "column 'a' appears twice"));
    assert_null(csv_out_open(path, bad_env, 1, &env, err, sizeof err));
    assert_non_null(strstr(err, "column 'seed' appears twice"));
    assert_null(csv_out_open("/nonexistent/dir/x.csv", cols, 2, &env, err, sizeof err));
    assert_non_null(strstr(err, "cannot write /nonexistent/dir/x.csv.tmp"));
    remove_dir();
}

/* The command column can be pasted back into a shell. */
static void test_env_command(void **state)
{
    char *argv[] = {"plot", "--csv", "a b.csv", "--title", "it's", "--kind", "acc-gflops", ""};
    CsvEnv env;
    csv_env_init(&env, "cpu", 8, argv);
    assert_string_equal(env.command, "focusbench plot --csv 'a b.csv' --title 'it'\\''s' --kind acc-gflops ''");
    assert_string_equal(env.device, "cpu");
    assert_true(env.cpu_threads >= 1);
    assert_true(isnan(env.clock_sm_mhz));
    assert_false(env.has_seed);
    /* An absurdly long command is cut at an argument boundary and marked. */
    static char big[600];
    memset(big, 'x', sizeof big - 1);
    char *argv2[] = {"sweep", big, big, big, big};
    csv_env_init(&env, "cpu", 5, argv2);
    assert_true(strlen(env.command) < sizeof env.command);
    assert_non_null(strstr(env.command, " ..."));
}

TEST_GROUP(csv, cmocka_unit_test(test_roundtrip), cmocka_unit_test_teardown(test_numbers_in_comma_locale, restore_c_locale),
           cmocka_unit_test(test_number_format_fuzz), cmocka_unit_test(test_builtin_parser_matches_libcsv),
           cmocka_unit_test(test_malformed_input), cmocka_unit_test(test_atomic_writer),
           cmocka_unit_test(test_env_command))
