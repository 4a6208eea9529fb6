/* test_cli.c — the focusbench command line as a user runs it (the built binary, found through
 * FOCUSBENCH_BIN, which `make test` sets): help and exit codes, `version`, `bench-ops` argument
 * errors, a tiny real bench-ops run (table row and CSV), and the FMA peak probe it relies on. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/cpu/cpu_peak.h"
#include "test_util.h"

enum { OUT_CAP = 1 << 16 };

typedef struct {
    int status;         /* exit code, or -1 if the process did not exit normally */
    char out[OUT_CAP];  /* stdout */
    char err[OUT_CAP];  /* stderr */
} CmdResult;

/* The binary under test, or skips the test when the runner was not started by `make test`. */
static const char *bin_or_skip(void)
{
    const char *bin = getenv("FOCUSBENCH_BIN");
    if (!bin || !*bin || access(bin, X_OK) != 0) {
        print_message("FOCUSBENCH_BIN is not set to an executable (run through `make test`); skipping\n");
        skip();
    }
    return bin;
}

static void read_all(FILE *f, char *buf, size_t cap)
{
    size_t n = 0, got;
    while (n + 1 < cap && (got = fread(buf + n, 1, cap - 1 - n, f)) > 0)
        n += got;
    buf[n] = '\0';
}

/* Runs `'$FOCUSBENCH_BIN' args` with stdout and stderr captured separately. The result lives in
 * static storage, valid until the next call (a failing assertion longjmps out of the test, so
 * nothing the test would have to free is left behind). */
static CmdResult *run_bin(const char *args)
{
    const char *bin = bin_or_skip();
    static CmdResult result;
    CmdResult *r = &result;
    memset(r, 0, sizeof *r);
    char err_path[] = "/tmp/focusbench_test_cli_XXXXXX";
    int fd = mkstemp(err_path);
    assert_true(fd >= 0);
    close(fd);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s'", bin, args, err_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    read_all(p, r->out, sizeof r->out);
    int st = pclose(p);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    FILE *e = fopen(err_path, "r");
    assert_non_null(e);
    read_all(e, r->err, sizeof r->err);
    fclose(e);
    remove(err_path);
    return r;
}

static void assert_contains(const char *haystack, const char *needle, const char *what)
{
    if (!strstr(haystack, needle))
        fail_msg("%s: expected to find \"%s\" in:\n%s", what, needle, haystack);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_help_lists_commands(void **state)
{
    CmdResult *r = run_bin("--help");
    assert_int_equal(r->status, 0);
    assert_contains(r->out, "usage: focusbench", "focusbench --help");
    assert_contains(r->out, "version", "focusbench --help");
    assert_contains(r->out, "bench-ops", "focusbench --help");
    r = run_bin(""); /* no command: usage on stderr, exit 2 */
    assert_int_equal(r->status, 2);
    assert_contains(r->err, "bench-ops", "focusbench (no command)");
}

static void test_unknown_command_exits_2(void **state)
{
    CmdResult *r = run_bin("frobnicate");
    assert_int_equal(r->status, 2);
    assert_contains(r->err, "unknown command 'frobnicate'", "focusbench frobnicate");
    assert_int_equal(count_lines(r->err), 1); /* a one-line reason */
}

static void test_version_prints_features(void **state)
{
    CmdResult *r = run_bin("version");
    assert_int_equal(r->status, 0);
    assert_contains(r->out, "focusbench", "focusbench version");
    assert_contains(r->out, "features:", "focusbench version");
}

static void test_bench_ops_help(void **state)
{
    CmdResult *r = run_bin("bench-ops --help");
    assert_int_equal(r->status, 0);
    static const char *const flags[] = {"--batch", "--threads", "--repeats", "--min-time", "--csv", "--reference",
                                        "--filter", "--backward", "--list-layers", "GFLOP/s", "peak"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        assert_contains(r->out, flags[i], "bench-ops --help");
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
        CmdResult *r = run_bin(cases[i].args);
        if (r->status != 2)
            fail_msg("'%s' exited %d, expected 2; stderr: %s", cases[i].args, r->status, r->err);
        assert_contains(r->err, cases[i].message, cases[i].args);
        assert_int_equal(count_lines(r->err), 1);
        assert_string_equal(r->out, ""); /* nothing measured, nothing printed */
    }
}

static void test_bench_ops_list_layers(void **state)
{
    CmdResult *r = run_bin("bench-ops --list-layers");
    assert_int_equal(r->status, 0);
    assert_true(strncmp(r->out, "name,net,group,kind,cin,cout,h,w,ksize,stride,pad,groups,rows_per_sample\n",
                        72) == 0);
    assert_contains(r->out, "\nr50.l1.3x3,resnet50,resnet50 3x3,conv2d,64,64,56,56,3,1,1,1,0\n", "--list-layers");
    assert_contains(r->out, "\nmbv2.dw144_56_s2,mobilenetv2,mobilenetv2 depthwise,conv2d,144,144,56,56,3,2,1,144,0\n",
                    "--list-layers");
    assert_contains(r->out, "\nfc.2048to4096,adafocus-head,linear,linear,2048,4096,1,1,1,1,0,1,16\n", "--list-layers");
    assert_true(count_lines(r->out) >= 21);
    r = run_bin("bench-ops --list-layers --filter r50.l1.,fc.4096");
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->out), 1 + 3); /* header + r50.l1.3x3, r50.l1.1x1_64to256, fc.4096to200 */
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

static void test_bench_ops_tiny_run(void **state)
{
    char csv_path[] = "/tmp/focusbench_test_cli_csv_XXXXXX";
    int fd = mkstemp(csv_path);
    assert_true(fd >= 0);
    close(fd);
    char args[512];
    snprintf(args, sizeof args,
             "bench-ops --batch 1 --threads 1 --repeats 1 --min-time 0 --warmup 0 --peak-time 0.02 "
             "--filter mbv2.dw960_7,fc.4096to200 --csv '%s'",
             csv_path);
    CmdResult *r = run_bin(args);
    if (r->status != 0) {
        remove(csv_path);
        fail_msg("bench-ops tiny run exited %d; stderr:\n%s", r->status, r->err);
    }
    assert_contains(r->out, "GFLOP/s", "bench-ops output");
    assert_contains(r->out, "fp32 FMA peak:", "bench-ops output");
    assert_true(row_gflops(r->out, "mbv2.dw960_7", "fwd") > 0);
    assert_true(row_gflops(r->out, "fc.4096to200", "fwd") > 0);
    assert_contains(r->err, "[1/2] mbv2.dw960_7", "bench-ops progress on stderr");

    /* The CSV: header + one row per layer, renamed into place (no .tmp left behind). */
    FILE *f = fopen(csv_path, "r");
    assert_non_null(f);
    static char csv[OUT_CAP];
    read_all(f, csv, sizeof csv);
    fclose(f);
    assert_int_equal(count_lines(csv), 3);
    assert_true(strncmp(csv, "schema_version,layer,net,", 25) == 0);
    assert_contains(csv, "\n1,mbv2.dw960_7,mobilenetv2,", "bench-ops CSV");
    assert_contains(csv, ",fwd,fast,1,1,", "bench-ops CSV"); /* pass, path, threads, runs */
    char tmp_path[sizeof csv_path + 4];
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp", csv_path);
    assert_int_not_equal(access(tmp_path, F_OK), 0);
    remove(csv_path);
}

static void test_bench_ops_backward_row(void **state)
{
    CmdResult *r = run_bin("bench-ops --batch 1 --threads 1 --repeats 2 --min-time 0 --warmup 0 --peak-time 0.02 "
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

TEST_GROUP(cli, cmocka_unit_test(test_help_lists_commands), cmocka_unit_test(test_unknown_command_exits_2),
           cmocka_unit_test(test_version_prints_features), cmocka_unit_test(test_bench_ops_help),
           cmocka_unit_test(test_bench_ops_bad_arguments_exit_2), cmocka_unit_test(test_bench_ops_list_layers),
           cmocka_unit_test(test_bench_ops_tiny_run), cmocka_unit_test(test_bench_ops_backward_row),
           cmocka_unit_test(test_cpu_fma_peak_is_positive))
