/* test_regress.c — the noise-aware regression check (bench/regress.h) on constructed noisy
 * latency series: no false alarm on pure noise, a true 20% slowdown flagged, improvements and
 * missing/new/invalid rows reported, the limits of very noisy rows, the threshold rule itself,
 * argument errors, and the `focusbench regress` command's exit codes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/csv_out.h"
#include "bench/regress.h"
#include "test_util.h"

enum { N_KERNELS = 40, N_SAMPLES = 31 };

static char g_dir[64];

static void make_dir(void)
{
    strcpy(g_dir, "/tmp/focusbench_regress_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Quantile of sorted v by linear interpolation (numpy's default). */
static double quantile(const double *v, int n, double q)
{
    double pos = q * (n - 1);
    int i = (int)pos;
    double f = pos - i;
    return i + 1 < n ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

/* One simulated timing run of a kernel: N_SAMPLES samples of true_ms·exp(sigma·z), one in ten
 * hit by interference (+50%), as a profiler sees; returns the median and the IQR. `run` picks
 * an independent noise stream. */
static void simulate(double true_ms, double sigma, uint64_t seed, uint64_t kernel, uint64_t run, double *median,
                     double *iqr)
{
    RngStream s = rng_stream(seed, RNG_PURPOSE_TEST, kernel, run);
    double v[N_SAMPLES];
    for (int j = 0; j < N_SAMPLES; j++) {
        double z = rng_normal(&s, (uint64_t)j);
        v[j] = true_ms * exp(sigma * z);
        if (rng_uniform(&s, 1000 + (uint64_t)j) < 0.1f)
            v[j] *= 1.5;
    }
    qsort(v, N_SAMPLES, sizeof v[0], cmp_double);
    *median = quantile(v, N_SAMPLES, 0.5);
    *iqr = quantile(v, N_SAMPLES, 0.75) - quantile(v, N_SAMPLES, 0.25);
}

typedef struct {
    double factor[N_KERNELS]; /* true slowdown of the current run per kernel (1 = none) */
    bool drop[N_KERNELS];     /* kernel absent from this file */
    bool extra;               /* one kernel only this file has */
    bool blank_metric;        /* kernel 0's metric left empty */
} Scenario;

/* Writes a latency CSV (schema of csv_out.h) of N_KERNELS kernels at batch 8. */
static void write_latency_csv(const char *path, double sigma, uint64_t seed, uint64_t run, const Scenario *sc)
{
    CsvEnv env;
    char *argv[] = {"profile", "--device", "cpu"};
    csv_env_init(&env, "cpu", 3, argv);
    const char *cols[] = {"kernel", "batch", "latency_ms_median", "latency_ms_iqr", "throughput_videos_per_s"};
    char err[CSV_ERR_LEN];
    CsvOut *w = csv_out_open(path, cols, 5, &env, err, sizeof err);
    if (!w)
        fail_msg("%s", err);
    for (int k = 0; k < N_KERNELS + 1; k++) {
        if (k == N_KERNELS && !(sc && sc->extra))
            break;
        if (k < N_KERNELS && sc && sc->drop[k])
            continue;
        double true_ms = 0.02 * pow(1.25, k) * (sc && k < N_KERNELS ? sc->factor[k] : 1.0), med, iqr;
        simulate(true_ms, sigma, seed, (uint64_t)k, run, &med, &iqr);
        char name[64];
        snprintf(name, sizeof name, "kernel_%02d<%s>", k, k % 3 ? "float" : "bf16, 128"); /* commas survive */
        csv_out_str(w, name);
        csv_out_int(w, 8);
        if (k == 0 && sc && sc->blank_metric)
            csv_out_empty(w);
        else
            csv_out_double(w, med);
        csv_out_double(w, iqr);
        csv_out_double(w, 8 / (med * 1e-3));
        assert_true(csv_out_end_row(w));
    }
    if (!csv_out_commit(w, err, sizeof err))
        fail_msg("%s", err);
}

static void compare_files(const char *a, const char *b, const RegressOptions *o, RegressResult *r)
{
    CsvTable ta, tb;
    char err[REGRESS_ERR_LEN];
    if (!csv_table_read(a, &ta, err, sizeof err) || !csv_table_read(b, &tb, err, sizeof err))
        fail_msg("%s", err);
    bool ok = regress_compare(&ta, &tb, o, r, err, sizeof err);
    csv_table_free(&ta);
    csv_table_free(&tb);
    if (!ok)
        fail_msg("%s", err);
}

static void paths(char *base, char *cur, size_t cap)
{
    snprintf(base, cap, "%s/base.csv", g_dir);
    snprintf(cur, cap, "%s/cur.csv", g_dir);
}

/* Pure noise, two noise levels, several seeds: never a regression or an improvement. */
static void test_no_false_alarm_on_noise(void **state)
{
    make_dir();
    char base[128], cur[128];
    paths(base, cur, sizeof base);
    RegressOptions o = regress_defaults();
    static const double sigmas[] = {0.02, 0.05, 0.12};
    for (int si = 0; si < 3; si++)
        for (uint64_t seed = 1; seed <= 4; seed++) {
            write_latency_csv(base, sigmas[si], seed, 0, NULL);
            write_latency_csv(cur, sigmas[si], seed, 1, NULL);
            RegressResult r;
            compare_files(base, cur, &o, &r);
            if (r.counts[REGRESS_SAME] != N_KERNELS) {
                regress_print(stderr, &r);
                fail_msg("sigma %g seed %llu: %d of %d kernels not 'same'", sigmas[si], (unsigned long long)seed,
                         N_KERNELS - r.counts[REGRESS_SAME], N_KERNELS);
            }
            assert_false(regress_failed(&r, false));
            assert_string_equal(r.noise_col, "latency_ms_iqr"); /* found by naming convention */
            assert_string_equal(r.keys, "kernel"); /* batch and device are 8 and cpu on every row */
            assert_int_equal(r.direction, +1);
            regress_result_free(&r);
        }
    remove_dir();
}

/* A true 20% slowdown of four kernels is flagged, exactly those; a 20% speed-up of two others is
 * reported as an improvement and does not fail the check. */
static void test_slowdown_flagged(void **state)
{
    make_dir();
    char base[128], cur[128];
    paths(base, cur, sizeof base);
    static const double sigmas[] = {0.02, 0.05};
    for (int si = 0; si < 2; si++)
        for (uint64_t seed = 1; seed <= 3; seed++) {
            Scenario sc = {0};
            for (int k = 0; k < N_KERNELS; k++)
                sc.factor[k] = 1.0;
            sc.factor[3] = sc.factor[17] = sc.factor[25] = sc.factor[39] = 1.2;
            sc.factor[8] = sc.factor[30] = 1 / 1.2;
            write_latency_csv(base, sigmas[si], seed, 0, NULL);
            write_latency_csv(cur, sigmas[si], seed, 1, &sc);
            RegressResult r;
            RegressOptions o = regress_defaults();
            compare_files(base, cur, &o, &r);
            for (int k = 0; k < N_KERNELS; k++) {
                RegressVerdict want = sc.factor[k] > 1 ? REGRESS_REGRESSION
                                      : sc.factor[k] < 1 ? REGRESS_IMPROVEMENT
                                                         : REGRESS_SAME;
                if (r.rows[k].verdict != want) {
                    regress_print(stderr, &r);
                    fail_msg("sigma %g seed %llu kernel %d: %s, expected %s", sigmas[si], (unsigned long long)seed, k,
                             regress_verdict_name(r.rows[k].verdict), regress_verdict_name(want));
                }
            }
            assert_int_equal(r.counts[REGRESS_REGRESSION], 4);
            assert_true(regress_failed(&r, false));

            /* The same files judged on throughput (higher is better, from the name): the slowed
             * kernels are regressions there too. No IQR column for it: the relative rule alone. */
            regress_result_free(&r);
            o.metric = "throughput_videos_per_s";
            compare_files(base, cur, &o, &r);
            assert_int_equal(r.direction, -1);
            assert_string_equal(r.noise_col, "");
            assert_non_null(strstr(r.warning, "no noise column"));
            assert_int_equal(r.rows[3].verdict, REGRESS_REGRESSION);
            assert_int_equal(r.rows[8].verdict, REGRESS_IMPROVEMENT);
            regress_result_free(&r);
        }
    remove_dir();
}

/* Only improvements: the check passes. */
static void test_improvement_passes(void **state)
{
    make_dir();
    char base[128], cur[128];
    paths(base, cur, sizeof base);
    Scenario sc = {0};
    for (int k = 0; k < N_KERNELS; k++)
        sc.factor[k] = 0.7;
    write_latency_csv(base, 0.03, 5, 0, NULL);
    write_latency_csv(cur, 0.03, 5, 1, &sc);
    RegressResult r;
    RegressOptions o = regress_defaults();
    compare_files(base, cur, &o, &r);
    assert_int_equal(r.counts[REGRESS_IMPROVEMENT], N_KERNELS);
    assert_false(regress_failed(&r, false));
    regress_result_free(&r);
    remove_dir();
}

/* Kernels gone from the current file are "missing" and fail (unless allowed); a kernel only the
 * current file has is "new" and never fails; an empty metric is "invalid" and fails. */
static void test_missing_new_invalid(void **state)
{
    make_dir();
    char base[128], cur[128];
    paths(base, cur, sizeof base);
    Scenario sc = {0};
    for (int k = 0; k < N_KERNELS; k++)
        sc.factor[k] = 1.0;
    sc.drop[5] = sc.drop[6] = true;
    sc.extra = true;
    write_latency_csv(base, 0.03, 9, 0, NULL);
    write_latency_csv(cur, 0.03, 9, 1, &sc);
    RegressResult r;
    RegressOptions o = regress_defaults();
    compare_files(base, cur, &o, &r);
    assert_int_equal(r.counts[REGRESS_MISSING], 2);
    assert_int_equal(r.counts[REGRESS_NEW], 1);
    assert_int_equal(r.counts[REGRESS_SAME], N_KERNELS - 2);
    assert_int_equal(r.rows[5].verdict, REGRESS_MISSING);
    assert_non_null(strstr(r.rows[5].key, "kernel=kernel_05<float>"));
    assert_int_equal(r.rows[N_KERNELS].verdict, REGRESS_NEW);
    assert_non_null(strstr(r.rows[N_KERNELS].key, "kernel_40"));
    assert_true(regress_failed(&r, false));
    assert_false(regress_failed(&r, true));
    /* The printed table names them. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    regress_print(f, &r);
    fclose(f);
    assert_non_null(strstr(text, "missing (not in the current file)"));
    assert_non_null(strstr(text, "2 missing, 1 new"));
    free(text);
    regress_result_free(&r);

    Scenario blank = {0};
    for (int k = 0; k < N_KERNELS; k++)
        blank.factor[k] = 1.0;
    blank.blank_metric = true;
    write_latency_csv(cur, 0.03, 9, 1, &blank);
    compare_files(base, cur, &o, &r);
    assert_int_equal(r.rows[0].verdict, REGRESS_INVALID);
    assert_true(regress_failed(&r, true));
    regress_result_free(&r);
    remove_dir();
}

/* The price of noise-scaling: a 20% slowdown hidden in 40% noise is not called, but the row
 * is marked noisy, so "same" is not mistaken for "unchanged". */
static void test_very_noisy_rows_marked(void **state)
{
    make_dir();
    char base[128], cur[128];
    paths(base, cur, sizeof base);
    Scenario sc = {0};
    for (int k = 0; k < N_KERNELS; k++)
        sc.factor[k] = 1.2;
    write_latency_csv(base, 0.4, 3, 0, NULL);
    write_latency_csv(cur, 0.4, 3, 1, &sc);
    RegressResult r;
    RegressOptions o = regress_defaults();
    compare_files(base, cur, &o, &r);
    int noisy = 0;
    for (int k = 0; k < N_KERNELS; k++)
        noisy += r.rows[k].noisy;
    assert_int_equal(noisy, N_KERNELS);
    assert_true(r.counts[REGRESS_REGRESSION] < N_KERNELS / 4); /* most are lost in the noise */
    regress_result_free(&r);
    remove_dir();
}

static void test_threshold_rule(void **state)
{
    /* max(rel·|b|, k·(n_b + n_c)/2, abs) */
    assert_true(fabs(regress_threshold(10, 1, 3, 0.05, 1, 0) - 2.0) < 1e-12);  /* noise term */
    assert_true(fabs(regress_threshold(10, 0.1, 0.1, 0.05, 1, 0) - 0.5) < 1e-12); /* relative term */
    assert_true(fabs(regress_threshold(10, 0.1, 0.1, 0.05, 1, 3) - 3.0) < 1e-12); /* absolute floor */
    assert_true(fabs(regress_threshold(10, NAN, 2, 0.05, 2, 0) - 2.0) < 1e-12);   /* a missing IQR counts 0 */
    assert_true(fabs(regress_threshold(-4, 0, 0, 0.25, 1, 0) - 1.0) < 1e-12);     /* |b| */
    assert_string_equal(regress_verdict_name(REGRESS_REGRESSION), "regression");
    assert_string_equal(regress_verdict_name(REGRESS_MISSING), "missing");
}

static bool parse_text(const char *text, const char *name, CsvTable *t)
{
    char err[CSV_ERR_LEN];
    return csv_table_parse(text, strlen(text), name, t, err, sizeof err);
}

static void expect_compare_error(const char *base, const char *cur, const RegressOptions *o, const char *needle)
{
    CsvTable a, b;
    assert_true(parse_text(base, "b.csv", &a));
    assert_true(parse_text(cur, "c.csv", &b));
    RegressResult r;
    char err[REGRESS_ERR_LEN];
    bool ok = regress_compare(&a, &b, o, &r, err, sizeof err);
    csv_table_free(&a);
    csv_table_free(&b);
    if (ok)
        fail_msg("compared without an error; expected \"%s\"", needle);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not contain \"%s\"", err, needle);
}

static void test_argument_errors(void **state)
{
    RegressOptions o = regress_defaults();
    const char *good = "kernel,latency_ms_median\nk1,1.0\nk2,2.0\n";
    expect_compare_error("kernel,time_ms\nk1,1\n", good, &o, "b.csv has no metric column 'latency_ms_median'");
    expect_compare_error(good, "kernel,latency_ms_median\nk1,1\nk1,2\n", &o,
                         "c.csv: rows 1 and 2 have the same key (kernel=k1)");
    expect_compare_error("x,latency_ms_median\n1,2\n", "x,latency_ms_median\n1,2\n", &o,
                         "share none of the usual key columns");
    RegressOptions o2 = o;
    o2.metric = "widgets";
    expect_compare_error("kernel,widgets\nk,1\n", "kernel,widgets\nk,1\n", &o2,
                         "cannot tell from its name whether a higher 'widgets' is better");
    RegressOptions o3 = o;
    o3.keys = "kernel,shape";
    expect_compare_error(good, good, &o3, "key column 'shape' is not in b.csv");
    RegressOptions o4 = o;
    o4.noise_col = "latency_ms_std";
    expect_compare_error(good, good, &o4, "has no noise column 'latency_ms_std'");

    /* --key and an explicit direction work on any file. */
    CsvTable a, b;
    assert_true(parse_text("x,widgets\n1,10\n2,10\n", "b.csv", &a));
    assert_true(parse_text("x,widgets\n1,13\n2,10.2\n", "c.csv", &b));
    RegressOptions o5 = o;
    o5.keys = "x";
    o5.metric = "widgets";
    o5.direction = -1; /* higher is better: 13 is an improvement */
    RegressResult r;
    char err[REGRESS_ERR_LEN];
    assert_true(regress_compare(&a, &b, &o5, &r, err, sizeof err));
    assert_int_equal(r.rows[0].verdict, REGRESS_IMPROVEMENT);
    assert_int_equal(r.rows[1].verdict, REGRESS_SAME);
    regress_result_free(&r);
    csv_table_free(&a);
    csv_table_free(&b);
}

/* The command as CI runs it: exit 1 and a REGRESSION line on a slowdown, 0 on noise, 2 on a
 * usage error; --csv writes the verdicts. */
static void test_cli(void **state)
{
    const char *bin = getenv("FOCUSBENCH_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        print_message("FOCUSBENCH_BIN is not set (run through `make test`); skipping\n");
        skip();
    }
    make_dir();
    char base[128], cur[128], out[128], cmd[1024];
    paths(base, cur, sizeof base);
    snprintf(out, sizeof out, "%s/verdicts.csv", g_dir);
    write_latency_csv(base, 0.03, 2, 0, NULL);
    write_latency_csv(cur, 0.03, 2, 1, NULL);
    snprintf(cmd, sizeof cmd, "'%s' regress --baseline '%s' --current '%s' --csv '%s' >/dev/null", bin, base, cur, out);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CsvTable t;
    char err[CSV_ERR_LEN];
    assert_true(csv_table_read(out, &t, err, sizeof err));
    assert_int_equal(t.n_rows, N_KERNELS);
    assert_string_equal(csv_table_cell(&t, 0, csv_table_col(&t, "verdict")), "same");
    csv_table_free(&t);

    Scenario sc = {0};
    for (int k = 0; k < N_KERNELS; k++)
        sc.factor[k] = 1.0;
    sc.factor[12] = 1.25;
    write_latency_csv(cur, 0.03, 2, 1, &sc);
    char log[160];
    snprintf(log, sizeof log, "%s/out.txt", g_dir);
    snprintf(cmd, sizeof cmd, "'%s' regress --baseline '%s' --current '%s' >'%s' 2>&1", bin, base, cur, log);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    static char text[1 << 16];
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "kernel=kernel_12<bf16, 128>"));
    assert_non_null(strstr(text, "REGRESSION"));
    assert_non_null(strstr(text, "regress: FAILED: 1 regression(s)"));

    snprintf(cmd, sizeof cmd, "'%s' regress --baseline '%s' >/dev/null 2>&1", bin, base);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    snprintf(cmd, sizeof cmd, "'%s' regress --baseline '%s' --current '%s' --threshold -1 >/dev/null 2>&1", bin, base,
             cur);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    remove_dir();
}

TEST_GROUP(regress, cmocka_unit_test(test_no_false_alarm_on_noise), cmocka_unit_test(test_slowdown_flagged),
           cmocka_unit_test(test_improvement_passes), cmocka_unit_test(test_missing_new_invalid),
           cmocka_unit_test(test_very_noisy_rows_marked), cmocka_unit_test(test_threshold_rule),
           cmocka_unit_test(test_argument_errors), cmocka_unit_test(test_cli))
