/* test_profile.c — `focusbench profile` and its timing statistics (group profile):
 *   - bench/latency.h: median, p90, p99, quartiles and IQR exact on known arrays (odd and even
 *     counts, one sample, unsorted input, NaN refused); the repeat rule (warm-up not recorded,
 *     until a minimum count AND a minimum time, the maximum count, the buffer, the maximum time,
 *     a failing run) driven by a fake clock; ComponentClock's charging on a fake clock;
 *   - kernels/context.h's on_scope_change hook (called after every push and pop, NULL by default);
 *   - (CUDA builds) the kernel names the CUPTI module shows: demangled, without return type and
 *     parameter list (needs no GPU);
 *   - the command as a user runs it (FOCUSBENCH_BIN): a tiny CPU profile whose CSV reads back
 *     through csv_table_read with the schema's columns and consistent numbers, a registry method,
 *     usage errors (exit 2, one line), and --device cuda without a GPU (one line, exit 1).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/csv_out.h"
#include "bench/latency.h"
#include "kernels/context.h"
#include "test_util.h"
#if HAVE_CUDA
#include "kernels/cuda/cupti_activity.h"
#endif

/* ---- statistics -------------------------------------------------------------------------------- */

static void test_stats_even_count(void **state)
{
    (void)state;
    double v[10] = {7, 3, 10, 1, 5, 9, 2, 8, 4, 6}; /* 1 … 10, shuffled */
    LatencyStats s;
    assert_true(latency_stats(v, 10, &s));
    assert_int_equal(s.n, 10);
    for (int i = 0; i < 10; i++) /* sorted in place */
        assert_true(v[i] == i + 1);
    /* positions q·(n − 1): 0.5 → 4.5, 0.9 → 8.1, 0.99 → 8.91, 0.25 → 2.25, 0.75 → 6.75 */
    assert_float_equal(s.median, 5.5, 1e-12);
    assert_float_equal(s.p90, 9.1, 1e-12);
    assert_float_equal(s.p99, 9.91, 1e-12);
    assert_float_equal(s.q1, 3.25, 1e-12);
    assert_float_equal(s.q3, 7.75, 1e-12);
    assert_float_equal(s.iqr, 4.5, 1e-12);
    assert_float_equal(s.mean, 5.5, 1e-12);
    assert_float_equal(s.min, 1, 0);
    assert_float_equal(s.max, 10, 0);
}

static void test_stats_odd_and_single(void **state)
{
    (void)state;
    double v[5] = {40, 10, 30, 20, 100};
    LatencyStats s;
    assert_true(latency_stats(v, 5, &s));
    assert_float_equal(s.median, 30, 0);      /* the middle sample exactly */
    assert_float_equal(s.q1, 20, 0);          /* position 1 */
    assert_float_equal(s.q3, 40, 0);          /* position 3 */
    assert_float_equal(s.iqr, 20, 0);
    assert_float_equal(s.p90, 76, 1e-12);     /* position 3.6: 40 + 0.6·60 */
    assert_float_equal(s.p99, 97.6, 1e-12);   /* position 3.96 */
    assert_float_equal(s.mean, 40, 1e-12);

    double one[1] = {7.25};
    assert_true(latency_stats(one, 1, &s));
    assert_float_equal(s.median, 7.25, 0);
    assert_float_equal(s.p99, 7.25, 0);
    assert_float_equal(s.iqr, 0, 0);

    double ties[4] = {2, 2, 2, 2};
    assert_true(latency_stats(ties, 4, &s));
    assert_float_equal(s.iqr, 0, 0);
    assert_float_equal(s.p90, 2, 0);
}

static void test_stats_refuses_empty_and_nan(void **state)
{
    (void)state;
    LatencyStats s;
    assert_false(latency_stats(NULL, 0, &s));
    assert_int_equal(s.n, 0);
    assert_true(isnan(s.median) && isnan(s.iqr));
    double v[3] = {1, NAN, 3};
    assert_false(latency_stats(v, 3, &s));
    assert_true(isnan(s.median));
    double sorted[4] = {1, 2, 4, 8};
    assert_float_equal(latency_quantile_sorted(sorted, 4, 0), 1, 0);
    assert_float_equal(latency_quantile_sorted(sorted, 4, 1), 8, 0);
    assert_float_equal(latency_quantile_sorted(sorted, 4, 2.0 / 3.0), 4, 1e-12); /* position 2 */
    assert_true(isnan(latency_quantile_sorted(sorted, 0, 0.5)));
}

/* ---- the repeat rule on a fake clock ---------------------------------------------------------- */

typedef struct {
    double now;      /* seconds */
    double step;     /* each run advances the clock by this much */
    int calls;       /* runs, warm-up included */
    int fail_at;     /* the run (1-based, warm-up included) that fails; 0: none */
} FakeWork;

static double fake_clock(void *user) { return ((FakeWork *)user)->now; }

static bool fake_run(void *user, double *ms, char *err, size_t cap)
{
    FakeWork *w = user;
    w->calls++;
    if (w->calls == w->fail_at) {
        snprintf(err, cap, "run %d failed on purpose", w->calls);
        return false;
    }
    w->now += w->step;
    *ms = w->calls; /* the sample says which run it came from */
    return true;
}

static LatencyRunInfo run_plan(LatencyPlan p, FakeWork *w, double *samples, int cap, bool expect_ok)
{
    LatencyRunInfo info;
    char err[256] = "";
    bool ok = latency_run(&p, fake_run, w, fake_clock, w, samples, cap, &info, err, sizeof err);
    if (ok != expect_ok)
        fail_msg("latency_run returned %d (expected %d): %s", ok, expect_ok, err);
    return info;
}

static void test_repeat_until_count_and_time(void **state)
{
    (void)state;
    double samples[100];
    /* 0.125 s per run (exact in binary): 1 s needs 8 runs; the count 5 is reached first */
    FakeWork w = {.step = 0.125};
    LatencyPlan p = {.warmup = 3, .min_repeats = 5, .min_time_s = 1.0, .max_repeats = 100, .max_time_s = 0};
    LatencyRunInfo info = run_plan(p, &w, samples, 100, true);
    assert_int_equal(info.n, 8);
    assert_int_equal(info.warmup_done, 3);
    assert_int_equal(w.calls, 11);
    assert_float_equal(info.elapsed_s, 1.0, 0);
    assert_false(info.hit_max_time || info.hit_max_repeats);
    for (int i = 0; i < 8; i++) /* warm-up runs 1–3 are not recorded */
        assert_float_equal(samples[i], 4 + i, 0);

    /* the count decides when it is the later condition */
    w = (FakeWork){.step = 0.125};
    p.min_repeats = 20;
    info = run_plan(p, &w, samples, 100, true);
    assert_int_equal(info.n, 20);
    assert_float_equal(info.elapsed_s, 2.5, 0);

    /* no minimum time: exactly the count */
    w = (FakeWork){.step = 0.125};
    p = (LatencyPlan){.warmup = 0, .min_repeats = 3, .min_time_s = 0, .max_repeats = 100, .max_time_s = 0};
    info = run_plan(p, &w, samples, 100, true);
    assert_int_equal(info.n, 3);
    assert_int_equal(w.calls, 3);
}

static void test_repeat_caps(void **state)
{
    (void)state;
    double samples[100];
    /* max_repeats stops a run that has not reached its minimum time */
    FakeWork w = {.step = 0.125};
    LatencyPlan p = {.warmup = 1, .min_repeats = 5, .min_time_s = 100, .max_repeats = 6, .max_time_s = 0};
    LatencyRunInfo info = run_plan(p, &w, samples, 100, true);
    assert_int_equal(info.n, 6);
    assert_true(info.hit_max_repeats);
    assert_false(info.hit_max_time);

    /* the buffer is a cap too */
    w = (FakeWork){.step = 0.125};
    p.max_repeats = 1000;
    info = run_plan(p, &w, samples, 3, true);
    assert_int_equal(info.n, 3);
    assert_true(info.hit_max_repeats);

    /* max_time ends a slow measurement below its minimum count */
    w = (FakeWork){.step = 0.125};
    p = (LatencyPlan){.warmup = 0, .min_repeats = 1000, .min_time_s = 0, .max_repeats = 1000, .max_time_s = 0.5};
    info = run_plan(p, &w, samples, 100, true);
    assert_int_equal(info.n, 4);
    assert_true(info.hit_max_time);

    /* ... but always takes one sample, however slow the run */
    w = (FakeWork){.step = 10};
    info = run_plan(p, &w, samples, 100, true);
    assert_int_equal(info.n, 1);
    assert_true(info.hit_max_time);
}

static void test_repeat_failures_and_bad_plans(void **state)
{
    (void)state;
    double samples[16];
    FakeWork w = {.step = 0.125, .fail_at = 5}; /* 2 warm-up runs, then the 3rd timed run fails */
    LatencyPlan p = {.warmup = 2, .min_repeats = 10, .min_time_s = 0, .max_repeats = 16, .max_time_s = 0};
    LatencyRunInfo info;
    char err[256] = "";
    assert_false(latency_run(&p, fake_run, &w, fake_clock, &w, samples, 16, &info, err, sizeof err));
    assert_int_equal(info.n, 2);
    assert_non_null(strstr(err, "run 5 failed on purpose"));

    static const struct {
        LatencyPlan p;
        const char *msg;
    } bad[] = {
        {{.warmup = -1, .min_repeats = 1, .max_repeats = 1}, "warm-up runs must be >= 0"},
        {{.warmup = 0, .min_repeats = 0, .max_repeats = 1}, "minimum number of repeats must be >= 1"},
        {{.warmup = 0, .min_repeats = 1, .min_time_s = -1, .max_repeats = 1}, "minimum time"},
        {{.warmup = 0, .min_repeats = 5, .max_repeats = 4}, "maximum number of repeats (4) is below the minimum (5)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        w = (FakeWork){.step = 1};
        err[0] = '\0';
        assert_false(latency_run(&bad[i].p, fake_run, &w, fake_clock, &w, samples, 16, &info, err, sizeof err));
        if (!strstr(err, bad[i].msg))
            fail_msg("plan %zu: expected \"%s\" in \"%s\"", i, bad[i].msg, err);
        assert_int_equal(w.calls, 0); /* nothing ran */
    }
    LatencyPlan def = latency_plan_default();
    assert_true(latency_plan_check(&def, err, sizeof err));
}

/* ---- components -------------------------------------------------------------------------------- */

static void test_component_clock(void **state)
{
    (void)state;
    FakeWork clk = {0};
    ComponentClock cc;
    component_clock_init(&cc, fake_clock, &clk);
    component_clock_begin(&cc, "glance");
    clk.now += 1.0;
    component_clock_switch(&cc, "focus");
    clk.now += 2.0;
    component_clock_switch(&cc, "glance");
    clk.now += 0.5;
    component_clock_switch(&cc, "glance"); /* no change: keeps charging glance */
    clk.now += 0.25;
    component_clock_end(&cc);
    clk.now += 100; /* after the end: charged to nobody */
    assert_int_equal(cc.n, 2);
    assert_string_equal(cc.names[0], "glance");
    assert_float_equal(cc.ms[0], 1750, 1e-9);
    assert_float_equal(cc.ms[1], 2000, 1e-9);
    /* a new pass starts from zero and keeps the names */
    component_clock_begin(&cc, "focus");
    clk.now += 0.125;
    component_clock_end(&cc);
    assert_float_equal(cc.ms[0], 0, 0);
    assert_float_equal(cc.ms[1], 125, 1e-9);
    /* more names than slots: the rest share the last slot, and it says so */
    for (int i = 0; i < COMPONENT_MAX + 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        component_clock_index(&cc, name);
    }
    assert_int_equal(cc.n, COMPONENT_MAX);
    assert_true(cc.overflow);
}

/* ---- the scope hook ---------------------------------------------------------------------------- */

typedef struct {
    int calls;
    char seen[8][CTX_SCOPE_NAME];
} HookLog;

static void hook(Ctx *ctx, void *user)
{
    HookLog *h = user;
    const char *s = ctx->scope_depth > 0 ? ctx->counters[ctx->scope_stack[ctx->scope_depth - 1]].name : "";
    if (h->calls < 8)
        snprintf(h->seen[h->calls], CTX_SCOPE_NAME, "%s", s);
    h->calls++;
}

static void test_scope_hook(void **state)
{
    (void)state;
    Ctx *ctx = tctx(1);
    assert_null(ctx->on_scope_change); /* off by default: the CPU path is unchanged */
    ctx_scope_push(ctx, "a");
    ctx_scope_pop(ctx);
    HookLog h = {0};
    ctx->on_scope_change = hook;
    ctx->on_scope_change_user = &h;
    ctx_scope_push(ctx, "focus");
    ctx_scope_push(ctx, "layer3");
    ctx_scope_pop(ctx);
    ctx_scope_pop(ctx);
    ctx_scope_pop(ctx); /* unbalanced: an error, and no call */
    assert_int_equal(h.calls, 4);
    assert_string_equal(h.seen[0], "focus");
    assert_string_equal(h.seen[1], "focus/layer3");
    assert_string_equal(h.seen[2], "focus");
    assert_string_equal(h.seen[3], "");
    assert_false(ctx_ok(ctx));
    ctx_destroy(ctx);
}

#if HAVE_CUDA
static void test_kernel_display_names(void **state)
{
    (void)state;
    static const struct {
        const char *raw, *shown;
    } cases[] = {
        {"_Z11ffma_kernelPfiff", "ffma_kernel"},
        {"_Z12scale_kernelIfLi4EEvPT_i", "scale_kernel<float, 4>"},
        {"_ZN6detail7reduce2EPKfPfi", "detail::reduce2"},
        {"_ZN12_GLOBAL__N_14gemmEPf", "(anonymous namespace)::gemm"},
        {"sm90_xmma_fprop_implicit_gemm_bf16f32_tilesize128x128", "sm90_xmma_fprop_implicit_gemm_bf16f32_tilesize128x128"},
        {"_Znot_really_mangled", "_Znot_really_mangled"},
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cupti_kernel_display_name(cases[i].raw, out, sizeof out);
        assert_string_equal(out, cases[i].shown);
    }
    cupti_kernel_display_name(NULL, out, sizeof out);
    assert_string_equal(out, "?");
    char small[8];
    cupti_kernel_display_name("_Z11ffma_kernelPfiff", small, sizeof small);
    assert_string_equal(small, "ffma_ke");
}
#endif

/* ---- the command ------------------------------------------------------------------------------- */


static double num(const CsvTable *t, int row, const char *col)
{
    double v = NAN;
    int c = csv_table_col(t, col);
    if (c < 0)
        fail_msg("%s: no column %s", t->source, col);
    if (!csv_table_number(t, row, c, &v))
        fail_msg("%s: row %d: %s is not a number ('%s')", t->source, row, col, csv_table_cell(t, row, c));
    return v;
}

static const char *cell(const CsvTable *t, int row, const char *col)
{
    int c = csv_table_col(t, col);
    if (c < 0)
        fail_msg("%s: no column %s", t->source, col);
    return csv_table_cell(t, row, c);
}

static void test_cli_cpu_profile_csv(void **state)
{
    (void)state;
    tbin_or_skip();
    char path[] = "/tmp/focusbench_profile_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char args[512];
    snprintf(args, sizeof args,
             "profile --device cpu --preset synth-tiny --batch 1,2 --repeats 3 --min-time 0 --warmup 1 "
             "--split-repeats 3 --csv '%s'", path);
    TCmdResult *r = trun_bin(args);
    if (r->status != 0)
        fail_msg("profile exited %d; stderr:\n%s", r->status, r->err);
    tassert_contains(r->out, "latency and throughput", "profile stdout");
    tassert_contains(r->out, "per component, batch 2", "profile stdout");
    tassert_contains(r->out, "paper-macs", "profile stdout (the FLOP convention is named)");

    CsvTable t;
    char err[512];
    bool ok = csv_table_read(path, &t, err, sizeof err);
    remove(path);
    if (!ok)
        fail_msg("csv_table_read: %s", err);
    static const char *const cols[] = {
        "schema_version", "method", "preset", "precision", "batch", "mode", "level", "component", "kernel",
        "latency_ms_median", "latency_ms_p90", "latency_ms_p99", "latency_ms_iqr", "throughput_videos_per_s",
        "time_ms_median", "time_ms_iqr", "gflops_per_video", "achieved_gflops_per_s", "timing", "flop_convention",
        "device", "cupti_version", "clock_sm_mhz", "seed"};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        if (csv_table_col(&t, cols[i]) < 0) {
            char list[2048];
            csv_table_list_columns(&t, list, sizeof list);
            csv_table_free(&t);
            fail_msg("the profile CSV lacks column %s (has: %s)", cols[i], list);
        }
    int pass_rows = 0, comp_rows[3] = {0};
    double gflops_total = NAN, comp_gflops[3] = {0, 0, 0}, share[3] = {0, 0, 0};
    for (int i = 0; i < t.n_rows; i++) {
        assert_int_equal((int)num(&t, i, "schema_version"), CSV_SCHEMA_VERSION);
        assert_string_equal(cell(&t, i, "method"), "uniadafocus");
        assert_string_equal(cell(&t, i, "preset"), "synth-tiny");
        assert_string_equal(cell(&t, i, "precision"), "fp32");
        assert_string_equal(cell(&t, i, "device"), "cpu");
        assert_string_equal(cell(&t, i, "mode"), "eager");
        int b = (int)num(&t, i, "batch");
        assert_true(b == 1 || b == 2);
        const char *level = cell(&t, i, "level");
        if (strcmp(level, "pass") == 0) {
            pass_rows++;
            assert_string_equal(cell(&t, i, "component"), "total");
            assert_true(num(&t, i, "samples") >= 3);
            double med = num(&t, i, "latency_ms_median"), p90 = num(&t, i, "latency_ms_p90");
            double p99 = num(&t, i, "latency_ms_p99"), iqr = num(&t, i, "latency_ms_iqr");
            assert_true(med > 0 && p90 >= med && p99 >= p90 && iqr >= 0);
            assert_true(num(&t, i, "latency_ms_min") <= med && num(&t, i, "latency_ms_max") >= p99);
            assert_float_equal(num(&t, i, "throughput_videos_per_s"), b / (med * 1e-3), 1e-9 * b / (med * 1e-3));
            assert_float_equal(num(&t, i, "time_ms_median"), med, 0);
            gflops_total = num(&t, i, "gflops_per_video");
            assert_string_equal(cell(&t, i, "timing"), "host-clock");
        } else if (strcmp(level, "component") == 0) {
            comp_rows[b]++;
            assert_string_equal(cell(&t, i, "timing"), "host-clock");
            assert_true(num(&t, i, "time_ms_median") >= 0);
            assert_true(num(&t, i, "samples") == 3);
            comp_gflops[b] += num(&t, i, "gflops_per_video");
            share[b] += num(&t, i, "time_share_pct");
        } else {
            csv_table_free(&t);
            fail_msg("unexpected level '%s' on the CPU (kernel rows come from CUPTI)", level);
        }
    }
    assert_int_equal(pass_rows, 2);
    /* the five components of Uni-AdaFocus, each once per batch size, their GFLOPs adding up */
    for (int b = 1; b <= 2; b++) {
        assert_int_equal(comp_rows[b], 5);
        assert_float_equal(comp_gflops[b], gflops_total, 1e-9 * gflops_total);
        assert_float_equal(share[b], 100, 1e-6);
    }
    static const char *const comps[] = {"glance", "policies", "crop", "focus", "classifier"};
    for (size_t k = 0; k < 5; k++) {
        bool found = false;
        for (int i = 0; i < t.n_rows && !found; i++)
            found = strcmp(cell(&t, i, "component"), comps[k]) == 0;
        if (!found) {
            csv_table_free(&t);
            fail_msg("no component row for %s", comps[k]);
        }
    }
    csv_table_free(&t);
}

static void test_cli_registry_method(void **state)
{
    (void)state;
    TCmdResult *r = trun_bin("profile --method tsn --preset tsn-tiny --batch 2 --repeats 2 --min-time 0 --warmup 0 "
                           "--split-repeats 1");
    if (r->status != 0)
        fail_msg("profile --method tsn exited %d; stderr:\n%s", r->status, r->err);
    tassert_contains(r->out, "tsn, preset tsn-tiny", "profile --method tsn");
    tassert_contains(r->out, "backbone", "profile --method tsn (its top-level scope is a component)");
}

static void test_cli_usage_errors(void **state)
{
    (void)state;
    static const struct {
        const char *args, *message;
    } cases[] = {
        {"profile --batch 1", "--preset P is required for uniadafocus"},
        {"profile --preset nosuch", "unknown uniadafocus preset 'nosuch'"},
        {"profile --preset synth-tiny --precision bf16", "--precision bf16 needs --device cuda"},
        {"profile --preset synth-tiny --precision fp16", "--precision must be fp32, tf32 or bf16"},
        {"profile --preset synth-tiny --mode graph", "--mode graph needs --device cuda"},
        {"profile --preset synth-tiny --device tpu", "--device must be cpu or cuda"},
        {"profile --preset synth-tiny --batch 0", "--batch wants"},
        {"profile --preset synth-tiny --batch 1,,2", "--batch wants"},
        {"profile --preset synth-tiny --batch 1,", "--batch wants"},
        {"profile --preset synth-tiny --repeats 0", "--repeats wants"},
        {"profile --preset synth-tiny --min-time -1", "--min-time wants"},
        {"profile --preset synth-tiny --csv", "--csv needs a value"},
        {"profile --preset synth-tiny --frobnicate 1", "unknown option '--frobnicate'"},
        {"profile --preset synth-tiny --glance 3", "multiple of G = 3"}, /* T = 8: the config check */
        {"profile --method nosuch", "unknown method or preset 'nosuch'"},
        {"profile --method tsn --preset frameexit-tiny", "belongs to method 'frameexit', not 'tsn'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCmdResult *r = trun_bin(cases[i].args);
        if (r->status != 2)
            fail_msg("'%s' exited %d, expected 2; stderr: %s", cases[i].args, r->status, r->err);
        tassert_contains(r->err, cases[i].message, cases[i].args);
        assert_int_equal(tcount_lines(r->err), 1);
        assert_string_equal(r->out, "");
    }
    TCmdResult *r = trun_bin("profile --help");
    assert_int_equal(r->status, 0);
    static const char *const flags[] = {"--method", "--preset", "--device", "--precision", "--batch", "--mode",
                                        "--no-cupti", "--repeats", "--min-time", "--csv", "--patch-size"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        tassert_contains(r->out, flags[i], "profile --help");
}

static void test_cli_cuda_without_gpu(void **state)
{
    (void)state;
    TCmdResult *r = trun_bin("profile --device cuda --preset synth-tiny --batch 1 --repeats 1 --min-time 0 --warmup 0 "
                           "--split-repeats 1 --mode eager --no-cupti");
    if (r->status == 0) { /* a machine with a GPU: then it must have measured */
        tassert_contains(r->out, "latency and throughput (CUDA events", "profile --device cuda on a GPU");
        return;
    }
    if (r->status != 1)
        fail_msg("profile --device cuda exited %d (expected 1 without a GPU); stderr:\n%s", r->status, r->err);
    assert_int_equal(tcount_lines(r->err), 1);
    tassert_contains(r->err, "focusbench profile: ", "profile --device cuda");
    if (!strstr(r->err, "GPU") && !strstr(r->err, "CUDA"))
        fail_msg("the one line should say that no GPU / CUDA is usable: %s", r->err);
    assert_string_equal(r->out, "");
}

TEST_GROUP(profile, cmocka_unit_test(test_stats_even_count), cmocka_unit_test(test_stats_odd_and_single),
           cmocka_unit_test(test_stats_refuses_empty_and_nan), cmocka_unit_test(test_repeat_until_count_and_time),
           cmocka_unit_test(test_repeat_caps), cmocka_unit_test(test_repeat_failures_and_bad_plans),
           cmocka_unit_test(test_component_clock), cmocka_unit_test(test_scope_hook),
#if HAVE_CUDA
           cmocka_unit_test(test_kernel_display_names),
#endif
           cmocka_unit_test(test_cli_cpu_profile_csv), cmocka_unit_test(test_cli_registry_method),
           cmocka_unit_test(test_cli_usage_errors), cmocka_unit_test(test_cli_cuda_without_gpu))
