/* test_cli.c — the focusbench command line as a user runs it (the built binary, found through
 * FOCUSBENCH_BIN, which `make test` sets): help and exit codes, `version`, `bench-ops` argument
 * errors, a tiny real bench-ops run (table row and its result CSV, read back with
 * bench/csv_out.h's reader), `regress` on two bench-ops CSVs and on a copy with one layer made 2x
 * slower, and the FMA peak probe bench-ops relies on. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/csv_out.h"
#include "bench/parse_num.h"
#include "kernels/context.h"
#include "kernels/cpu/cpu_peak.h"
#include "test_util.h"

static void test_help_lists_commands(void **state)
{
    TCmdResult *r = trun_bin("--help");
    assert_int_equal(r->status, 0);
    tassert_contains(r->out, "usage: focusbench", "focusbench --help");
    tassert_contains(r->out, "version", "focusbench --help");
    tassert_contains(r->out, "bench-ops", "focusbench --help");
    r = trun_bin(""); /* no command: usage on stderr, exit 2 */
    assert_int_equal(r->status, 2);
    tassert_contains(r->err, "bench-ops", "focusbench (no command)");
}

static void test_unknown_command_exits_2(void **state)
{
    TCmdResult *r = trun_bin("frobnicate");
    assert_int_equal(r->status, 2);
    tassert_contains(r->err, "unknown command 'frobnicate'", "focusbench frobnicate");
    assert_int_equal(tcount_lines(r->err), 1); /* a one-line reason */
}

static void test_version_prints_features(void **state)
{
    TCmdResult *r = trun_bin("version");
    assert_int_equal(r->status, 0);
    tassert_contains(r->out, "focusbench", "focusbench version");
    tassert_contains(r->out, "features:", "focusbench version");
}

static void test_bench_ops_help(void **state)
{
    TCmdResult *r = trun_bin("bench-ops --help");
    assert_int_equal(r->status, 0);
    static const char *const flags[] = {"--batch", "--threads", "--repeats", "--min-time", "--csv", "--reference",
                                        "--filter", "--backward", "--list-layers", "GFLOP/s", "peak"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        tassert_contains(r->out, flags[i], "bench-ops --help");
}

static void test_bench_ops_bad_arguments_exit_2(void **state)
{
    static const struct {
        const char *args, *message;
    } cases[] = {
        {"bench-ops --batch 0", "--batch must be an integer in [1, 4096], got '0'"},
        {"bench-ops --batch 2x", "--batch must be an integer"},
        {"bench-ops --batch", "--batch must be an integer"},
        {"bench-ops --threads -1", "--threads must be an integer"},
        {"bench-ops --min-time nan", "--min-time must be a number of seconds"},
        {"bench-ops --frobnicate", "unknown option '--frobnicate'"},
        {"bench-ops --filter no-such-layer", "no layer name contains 'no-such-layer'"},
        {"bench-ops --csv", "--csv needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCmdResult *r = trun_bin(cases[i].args);
        if (r->status != 2)
            fail_msg("'%s' exited %d, expected 2; stderr: %s", cases[i].args, r->status, r->err);
        tassert_contains(r->err, cases[i].message, cases[i].args);
        assert_int_equal(tcount_lines(r->err), 1);
        assert_string_equal(r->out, ""); /* nothing measured, nothing printed */
    }
}

static void test_bench_ops_list_layers(void **state)
{
    TCmdResult *r = trun_bin("bench-ops --list-layers");
    assert_int_equal(r->status, 0);
    assert_true(strncmp(r->out, "name,net,group,kind,cin,cout,h,w,ksize,stride,pad,groups,rows_per_sample\n",
                        72) == 0);
    tassert_contains(r->out, "\nr50.l1.3x3,resnet50,resnet50 3x3,conv2d,64,64,56,56,3,1,1,1,0\n", "--list-layers");
    tassert_contains(r->out, "\nmbv2.dw144_56_s2,mobilenetv2,mobilenetv2 depthwise,conv2d,144,144,56,56,3,2,1,144,0\n",
                    "--list-layers");
    tassert_contains(r->out, "\nfc.2048to4096,adafocus-head,linear,linear,2048,4096,1,1,1,1,0,1,16\n", "--list-layers");
    assert_true(tcount_lines(r->out) >= 21);
    r = trun_bin("bench-ops --list-layers --filter r50.l1.,fc.4096");
    assert_int_equal(r->status, 0);
    assert_int_equal(tcount_lines(r->out), 1 + 3); /* header + r50.l1.3x3, r50.l1.1x1_64to256, fc.4096to200 */
}

/* Finds the table row of `layer` and `pass` in bench-ops' stdout; returns its GFLOP/s. */
static double row_gflops(const char *out, const char *layer, const char *pass)
{
    const char *line = out;
    while (line && *line) {
        char name[64], shape_a[32], pass_s[8];
        double median, iqr, min_ms, gflops, pct;
        int runs;
        /* layer  N1 960->960 7x7 k3 s1 g960  fwd  median iqr min runs GFLOP/s %peak */
        if (strncmp(line, layer, strlen(layer)) == 0 && line[strlen(layer)] == ' ') {
            const char *p = strstr(line, pass);
            if (p && p[3] == ' ' &&
                sscanf(p, "%7s %lf %lf %lf %d %lf %lf%%", pass_s, &median, &iqr, &min_ms, &runs, &gflops, &pct) == 7 &&
                sscanf(line, "%63s %31s", name, shape_a) == 2) {
                assert_true(median > 0 && iqr >= 0 && min_ms > 0 && min_ms <= median);
                assert_true(runs >= 1);
                assert_true(pct > 0 && isfinite(pct));
                return gflops;
            }
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    fail_msg("no '%s' %s row in bench-ops output:\n%s", layer, pass, out);
    return 0;
}

/* A temporary file name (the file exists, empty) in static storage of the caller's. */
static void temp_csv(char *path, size_t cap, const char *tag)
{
    snprintf(path, cap, "/tmp/focusbench_test_cli_%s_XXXXXX", tag);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
}

/* A small real bench-ops run of two layers (a depthwise conv and a linear layer) writing csv_path.
 * Returns the captured output (see run_bin). */
static TCmdResult *run_tiny_bench_ops(const char *csv_path, int repeats, int warmup)
{
    char args[512];
    snprintf(args, sizeof args,
             "bench-ops --batch 1 --threads 1 --repeats %d --min-time 0 --warmup %d --peak-time 0.02 "
             "--filter mbv2.dw960_7,fc.4096to200 --csv '%s'",
             repeats, warmup, csv_path);
    TCmdResult *r = trun_bin(args);
    if (r->status != 0) {
        remove(csv_path);
        fail_msg("bench-ops tiny run exited %d; stderr:\n%s", r->status, r->err);
    }
    return r;
}

static void read_csv_or_fail(const char *path, CsvTable *t)
{
    char err[CSV_ERR_LEN];
    if (!csv_table_read(path, t, err, sizeof err))
        fail_msg("reading the bench-ops CSV: %s", err);
}

/* The cell as a number; fails the test when it is not one. */
static double cell_number(const CsvTable *t, int row, const char *col)
{
    double v;
    if (!csv_table_number(t, row, csv_table_col(t, col), &v))
        fail_msg("%s row %d: column '%s' is '%s', expected a number", t->source, row + 1, col,
                 csv_table_cell(t, row, csv_table_col(t, col)));
    return v;
}

static const char *cell(const CsvTable *t, int row, const char *col)
{
    if (csv_table_col(t, col) < 0)
        fail_msg("%s has no column '%s'", t->source, col);
    return csv_table_cell(t, row, csv_table_col(t, col));
}

/* a and b agree to a few ulps (both computed in double; the file holds every digit). */
static void assert_rel_close(double a, double b, const char *what)
{
    if (!(fabs(a - b) <= 1e-13 * fabs(b)))
        fail_msg("%s: %.17g, expected %.17g", what, a, b);
}

static void test_bench_ops_tiny_run(void **state)
{
    char csv_path[64];
    temp_csv(csv_path, sizeof csv_path, "csv");
    TCmdResult *r = run_tiny_bench_ops(csv_path, 1, 0);
    tassert_contains(r->out, "GFLOP/s", "bench-ops output");
    tassert_contains(r->out, "fp32 FMA peak:", "bench-ops output");
    assert_true(row_gflops(r->out, "mbv2.dw960_7", "fwd") > 0);
    assert_true(row_gflops(r->out, "fc.4096to200", "fwd") > 0);
    tassert_contains(r->err, "[1/2] mbv2.dw960_7", "bench-ops progress on stderr");

    /* The file as text: the schema's header order and the writer's quoting (strings quoted,
     * numbers not); renamed into place, no .tmp left behind. */
    FILE *f = fopen(csv_path, "r");
    assert_non_null(f);
    static char csv[TCMD_CAP];
    tread_all(f, csv, sizeof csv);
    fclose(f);
    char tmp_path[sizeof csv_path + 4];
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp", csv_path);
    assert_int_not_equal(access(tmp_path, F_OK), 0);
    assert_int_equal(tcount_lines(csv), 3); /* header + one row per layer */
    assert_true(strncmp(csv, "schema_version,layer,net,group,kind,shape,batch,", 48) == 0);
    tassert_contains(csv, "\n1,\"mbv2.dw960_7\",\"mobilenetv2\",\"mobilenetv2 depthwise\",\"conv2d\","
                         "\"N1 960->960 7x7 k3 s1 g960\",1,960,960,7,7,3,1,1,960,0,423360,\"fwd\",\"fast\",1,1,",
                    "bench-ops CSV");
    tassert_contains(csv, "\n1,\"fc.4096to200\",\"adafocus-head\",\"linear\",\"linear\",\"M16 4096->200\","
                         "1,4096,200,1,1,1,1,0,1,16,13107200,\"fwd\",\"fast\",1,1,",
                    "bench-ops CSV");

    /* The file through the reader: the renamed columns, the values' relations, the environment. */
    CsvTable t;
    read_csv_or_fail(csv_path, &t);
    remove(csv_path);
    assert_int_equal(t.n_rows, 2);
    static const char *const gone[] = {"median_ms", "p25_ms", "iqr_ms", "min_ms", "gflops", "peak_gflops"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        if (csv_table_col(&t, gone[i]) >= 0)
            fail_msg("the bench-ops CSV still has the old column '%s'", gone[i]);
    static const double macs[] = {960.0 * 7 * 7 * 9, 16.0 * 4096 * 200}; /* mbv2.dw960_7, fc.4096to200 */
    for (int row = 0; row < 2; row++) {
        assert_string_equal(cell(&t, row, "layer"), row == 0 ? "mbv2.dw960_7" : "fc.4096to200");
        assert_string_equal(cell(&t, row, "schema_version"), "1");
        assert_string_equal(cell(&t, row, "pass"), "fwd");
        assert_string_equal(cell(&t, row, "path"), "fast");
        assert_true(cell_number(&t, row, "threads") == 1 && cell_number(&t, row, "runs") == 1);
        assert_true(cell_number(&t, row, "macs") == macs[row]);
        double med = cell_number(&t, row, "latency_ms_median"), p25 = cell_number(&t, row, "latency_ms_p25"),
               p75 = cell_number(&t, row, "latency_ms_p75"), iqr = cell_number(&t, row, "latency_ms_iqr"),
               mn = cell_number(&t, row, "latency_ms_min");
        assert_true(med > 0 && mn > 0 && mn <= p25 && p25 <= med && med <= p75);
        assert_true(fabs(iqr - (p75 - p25)) <= 1e-12 * p75);
        /* gflops_per_s = 2 x MACs / median, written with every digit. */
        double gf = cell_number(&t, row, "gflops_per_s"), peak = cell_number(&t, row, "peak_gflops_per_s");
        assert_rel_close(gf, 2.0 * macs[row] / (med * 1e-3) * 1e-9, "gflops_per_s");
        assert_rel_close(cell_number(&t, row, "pct_of_peak"), 100.0 * gf / peak, "pct_of_peak");
        assert_true(peak == fmax(cell_number(&t, row, "peak_start_gflops_per_s"),
                                 cell_number(&t, row, "peak_end_gflops_per_s")));
        assert_string_equal(cell(&t, row, "peak_isa"), cpu_fma_isa());
        /* The environment the writer adds. */
        assert_string_equal(cell(&t, row, "flop_convention"), FLOP_CONVENTION);
        assert_string_equal(cell(&t, row, "device"), "cpu");
        assert_true(cell_number(&t, row, "cpu_threads") == 1); /* bench-ops' --threads, not the default */
        assert_true(strlen(cell(&t, row, "blas_core")) > 0);
        assert_true(strncmp(cell(&t, row, "command"), "focusbench bench-ops --batch 1 ", 31) == 0);
        assert_string_equal(cell(&t, row, "seed"), ""); /* the inputs are a fixed pattern, not a draw */
    }
    csv_table_free(&t);
}

/* Writes t to path with the latency columns of `row` multiplied by `factor` (and its GFLOP/s
 * divided by it): a copy in which that layer ran `factor` times slower. Every field is quoted. */
static void write_slowed_copy(const CsvTable *t, int row, double factor, const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int r = -1; r < t->n_rows; r++) {
        for (int c = 0; c < t->n_cols; c++) {
            const char *name = t->names[c], *v = r < 0 ? name : csv_table_cell(t, r, c);
            char num[64], quoted[4096];
            double x;
            bool latency = strncmp(name, "latency_ms_", 11) == 0, rate = strcmp(name, "gflops_per_s") == 0 ||
                                                                          strcmp(name, "pct_of_peak") == 0;
            if (r == row && (latency || rate) && csv_table_number(t, r, c, &x)) {
                csv_format_double(latency ? x * factor : x / factor, num, sizeof num);
                v = num;
            }
            assert_true(csv_quote_field(quoted, sizeof quoted, v) < sizeof quoted);
            fprintf(f, "%s%s", c ? "," : "", quoted);
        }
        fputc('\n', f);
    }
    assert_int_equal(fclose(f), 0);
}

/* The line of regress' table for `layer`. */
static const char *regress_line(const char *out, const char *layer, char *line, size_t cap)
{
    char key[96];
    snprintf(key, sizeof key, "\nlayer=%s ", layer);
    const char *p = strstr(out, key);
    if (!p)
        fail_msg("no row for %s in regress' output:\n%s", layer, out);
    p++;
    snprintf(line, cap, "%.*s", (int)strcspn(p, "\n"), p);
    return line;
}

/* Two bench-ops CSVs compare with `focusbench regress` and no flags: the default metric
 * (latency_ms_median), its noise column (latency_ms_iqr) and the key columns are all there. */
static void test_bench_ops_csv_regress(void **state)
{
    char a[64], b[64], slow[64];
    temp_csv(a, sizeof a, "base");
    temp_csv(b, sizeof b, "cur");
    temp_csv(slow, sizeof slow, "slow");
    /* 5 runs: p25 and p75 are the 2nd and 4th, so one preempted run does not move the IQR. */
    run_tiny_bench_ops(a, 5, 1);
    run_tiny_bench_ops(b, 5, 1);

    char args[256];
    snprintf(args, sizeof args, "regress --baseline '%s' --current '%s'", a, b);
    TCmdResult *r = trun_bin(args);
    /* Two runs of the same build: any verdict is possible on a busy machine, but both layers
     * match and are numbers, so the exit status is 0, or 1 for a regression only. */
    if (r->status != 0 && r->status != 1)
        fail_msg("regress on two bench-ops CSVs exited %d; stderr:\n%s", r->status, r->err);
    tassert_contains(r->out, "regress: latency_ms_median (lower is better), key layer,", "regress");
    tassert_contains(r->out, "x mean latency_ms_iqr", "regress");
    tassert_contains(r->out, ", 0 missing, 0 new, 0 invalid (2 rows)", "regress");
    char line[512];
    regress_line(r->out, "mbv2.dw960_7", line, sizeof line);
    regress_line(r->out, "fc.4096to200", line, sizeof line);
    if (r->status == 1)
        tassert_contains(r->err, "regression(s), 0 invalid, 0 missing", "regress stderr");

    /* A copy of the baseline with one layer 2x slower: that row (the one whose IQR is the smallest
     * part of its median, so the noise threshold is furthest below 2x) is a regression, exit 1. */
    CsvTable t;
    read_csv_or_fail(a, &t);
    int row = 0;
    double best = INFINITY;
    for (int i = 0; i < t.n_rows; i++) {
        double ratio = cell_number(&t, i, "latency_ms_iqr") / cell_number(&t, i, "latency_ms_median");
        if (ratio < best)
            best = ratio, row = i;
    }
    char layer[64];
    snprintf(layer, sizeof layer, "%s", cell(&t, row, "layer"));
    const char *other = strcmp(layer, "mbv2.dw960_7") == 0 ? "fc.4096to200" : "mbv2.dw960_7";
    write_slowed_copy(&t, row, 2.0, slow);
    csv_table_free(&t);
    snprintf(args, sizeof args, "regress --baseline '%s' --current '%s'", a, slow);
    r = trun_bin(args);
    remove(a);
    remove(b);
    remove(slow);
    if (r->status != 1)
        fail_msg("regress with %s 2x slower exited %d, expected 1; stdout:\n%s\nstderr:\n%s", layer, r->status, r->out,
                 r->err);
    tassert_contains(regress_line(r->out, layer, line, sizeof line), "+100.0%", "the slowed row");
    tassert_contains(line, "REGRESSION", "the slowed row");
    tassert_contains(regress_line(r->out, other, line, sizeof line), "same", "the unchanged row");
    tassert_contains(r->out, "summary: 1 regression(s), 0 improvement(s), 1 same, 0 missing", "regress");
    tassert_contains(r->err, "FAILED: 1 regression(s)", "regress stderr");
}

static void test_bench_ops_backward_row(void **state)
{
    TCmdResult *r = trun_bin("bench-ops --batch 1 --threads 1 --repeats 2 --min-time 0 --warmup 0 --peak-time 0.02 "
                           "--filter fc.4096to200 --backward");
    if (r->status != 0)
        fail_msg("bench-ops --backward exited %d; stderr:\n%s", r->status, r->err);
    assert_true(row_gflops(r->out, "fc.4096to200", "fwd") > 0);
    assert_true(row_gflops(r->out, "fc.4096to200", "bwd") > 0);
}

static void test_cpu_fma_peak_is_positive(void **state)
{
    double peak = cpu_fma_peak_gflops(1, 0.05);
    assert_true(isfinite(peak) && peak > 0);
    /* At least one FMA lane per cycle at 100 MHz: far below any real CPU, far above a broken timer. */
    assert_true(peak > 0.2);
    int lanes = cpu_fma_lanes();
    assert_true(lanes == 1 || lanes == 8 || lanes == 16);
    assert_true(cpu_fma_chains() >= 8);
    assert_non_null(cpu_fma_isa());
    /* Bad arguments are clamped, not trusted. */
    double p0 = cpu_fma_peak_gflops(0, 0.0);
    assert_true(isfinite(p0) && p0 > 0);
}

static void test_sweep_bad_arguments_exit_2(void **state)
{
    (void)state;
    static const struct {
        const char *args, *message;
    } cases[] = {
        {"sweep --csv /tmp/x.csv", "at least one --run or --eval"},
        {"sweep --eval a=b.csv", "give --csv CURVES.csv"},
        {"sweep --csv /tmp/x.csv --eval =b.csv", "bad --eval '=b.csv': give LABEL=FILE"},
        {"sweep --csv /tmp/x.csv --run tsn", "bad --run 'tsn': give LABEL=OPTIONS"},
        {"sweep --csv /tmp/x.csv --eval TSN=b.csv", "label 'TSN': use lower-case letters"},
        {"sweep --csv /tmp/x.csv --frob 1", "unknown option '--frob'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCmdResult *r = trun_bin(cases[i].args);
        if (r->status != 2)
            fail_msg("'%s' exited %d, expected 2; stderr: %s", cases[i].args, r->status, r->err);
        tassert_contains(r->err, cases[i].message, cases[i].args);
        assert_int_equal(tcount_lines(r->err), 1);
    }
}

/* Two constructed eval CSVs (a one-exit method and one with two exits, a budget and its random
 * control) merge into the curves table with the documented names; a file that is not an eval
 * CSV is refused and nothing is written. */
static void test_sweep_merges_eval_csvs(void **state)
{
    (void)state;
    char dir[] = "/tmp/focusbench_sweep_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char a[256], b[256], bad[256], out[256], args[1200];
    snprintf(a, sizeof a, "%s/eval_a.csv", dir);
    snprintf(b, sizeof b, "%s/eval_b.csv", dir);
    snprintf(bad, sizeof bad, "%s/bad.csv", dir);
    snprintf(out, sizeof out, "%s/curves.csv", dir);
    FILE *f = fopen(a, "w");
    assert_non_null(f);
    fputs("schema_version,method,mode,budget_p,exit,gflops_per_video,top1\n1,tsn,fixed,,0,0.5,40\n", f);
    assert_int_equal(fclose(f), 0);
    f = fopen(b, "w");
    assert_non_null(f);
    fputs("schema_version,method,mode,budget_p,exit,gflops_per_video,top1\n"
          "1,m,fixed,,0,1,50\n1,m,fixed,,1,2,60\n1,m,dynamic,0.5,,1.5,58\n1,m,random,0.5,,1.5,55\n", f);
    assert_int_equal(fclose(f), 0);
    f = fopen(bad, "w");
    assert_non_null(f);
    fputs("x,y\n1,2\n", f);
    assert_int_equal(fclose(f), 0);

    snprintf(args, sizeof args, "sweep --csv %s --eval tsn-4x64=%s --eval uaf=%s --eval zz=%s", out, a, b, bad);
    TCmdResult *r = trun_bin(args);
    assert_int_equal(r->status, 1);
    tassert_contains(r->err, "has no column mode", "sweep with a non-eval CSV");
    assert_int_equal(access(out, F_OK), -1);

    snprintf(args, sizeof args, "sweep --csv %s --eval tsn-4x64=%s --eval uaf=%s", out, a, b);
    r = trun_bin(args);
    if (r->status != 0)
        fail_msg("sweep exited %d: %s", r->status, r->err);
    f = fopen(out, "r");
    assert_non_null(f);
    static char text[16384];
    tread_all(f, text, sizeof text);
    fclose(f);
    assert_int_equal(tcount_lines(text), 1 + 1 + 4);
    tassert_contains(text, "schema_version,method,point,budget_p,exit,gflops_per_video,top1,", "curves header");
    tassert_contains(text, "1,\"tsn\",\"4x64\",,0,0.5,40,", "one-exit point");
    tassert_contains(text, "1,\"uaf-fixed-exit\",\"exit1\",,1,2,60,", "fixed exit");
    tassert_contains(text, "1,\"uaf\",\"p=0.5\",0.5,,1.5,58,", "conditional exit");
    tassert_contains(text, "1,\"uaf-random-exit\",\"p=0.5\",0.5,,1.5,55,", "random control");
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* bench/parse_num.c: the whole string one number inside the range, or false with *out untouched. */
static void test_parse_num(void **state)
{
    (void)state;
    long l = -7;
    int i = -7;
    double d = -7;
    uint64_t u = 7;
    assert_true(parse_long_in("42", 1, 100, &l) && l == 42);
    assert_true(parse_int_in("-3", -5, 5, &i) && i == -3);
    assert_true(parse_int_in("5", -5, 5, &i) && i == 5); /* closed range */
    static const char *const bad_ints[] = {NULL, "", " ", "4x", "x4", "1.5", "6", "-6", "99999999999999999999"};
    for (size_t k = 0; k < sizeof bad_ints / sizeof bad_ints[0]; k++) {
        i = -7;
        assert_false(parse_int_in(bad_ints[k], -5, 5, &i));
        assert_int_equal(i, -7);
    }
    assert_true(parse_double_in("2.5e-1", 0.0, 1.0, &d) && d == 0.25);
    static const char *const bad_doubles[] = {NULL, "", "nan", "inf", "-inf", "1e999", "0.5x", "1.5", "-0.1"};
    for (size_t k = 0; k < sizeof bad_doubles / sizeof bad_doubles[0]; k++) {
        d = -7;
        assert_false(parse_double_in(bad_doubles[k], 0.0, 1.0, &d));
        assert_true(d == -7);
    }
    assert_true(parse_u64("18446744073709551615", &u) && u == UINT64_MAX);
    static const char *const bad_u64[] = {NULL, "", "-1", "18446744073709551616", "12a"};
    for (size_t k = 0; k < sizeof bad_u64 / sizeof bad_u64[0]; k++) {
        u = 7;
        assert_false(parse_u64(bad_u64[k], &u));
        assert_true(u == 7);
    }
}

TEST_GROUP(cli, cmocka_unit_test(test_help_lists_commands), cmocka_unit_test(test_unknown_command_exits_2),
           cmocka_unit_test(test_version_prints_features), cmocka_unit_test(test_bench_ops_help),
           cmocka_unit_test(test_bench_ops_bad_arguments_exit_2), cmocka_unit_test(test_bench_ops_list_layers),
           cmocka_unit_test(test_bench_ops_tiny_run), cmocka_unit_test(test_bench_ops_csv_regress),
           cmocka_unit_test(test_bench_ops_backward_row),
           cmocka_unit_test(test_cpu_fma_peak_is_positive), cmocka_unit_test(test_sweep_bad_arguments_exit_2),
           cmocka_unit_test(test_sweep_merges_eval_csvs), cmocka_unit_test(test_parse_num))
