/* test_profile_gpu.c — the GPU side of `focusbench profile` (group profile_gpu):
 *   - CudaTimer: a misuse is an error, an empty region times ~0, and event time never exceeds
 *     the host's synchronised wall time around the same work;
 *   - CUPTI Activity: kernels (ours and cuBLASLt's), copies and their attribution to the label
 *     set when they were launched; no record dropped;
 *   - NVML clocks: read when NVML is there (otherwise the reason is printed);
 *   - CUPTI range profiler (kernels/cuda/cupti_range.h): the hardware FLOPs of a 1024x1024x2048
 *     GEMM on bf16 tensor cores and on fp32 CUDA cores and of a bf16 3x3 conv, each in its own
 *     range, within 3% of 2 x MACs; every pass the host API asked for replayed;
 *   - the command end to end on synth-tiny: eager and graph rows (kernels/cuda/cuda_graph.h; the
 *     replay bit-identical to the eager pass), the CUPTI component split with every kernel
 *     attributed, kernel rows, environment columns, hardware-FLOP rows (level=hw_flops) for every
 *     component adding up to the total; with --no-cupti none of the CUPTI rows.
 * Every check prints one line, so the log read on the lent machine says what was measured.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/cli.h"
#include "bench/csv_out.h"
#include "bench/latency.h"
#include "kernels/cuda/cuda_timing.h"
#include "kernels/cuda/cupti_activity.h"
#include "kernels/cuda/cupti_range.h"
#include "tests/gpu/gpu_test_util.h"

static void check(GpuEnv *e, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(GpuEnv *e, bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  %s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    e->checks++;
    e->failures += !ok;
}

/* relu(x·wᵀ + b) for x (N, K), w (M, K): a cuBLASLt GEMM and one of our kernels. */
static Tensor *small_pass(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b) { return op_relu(ctx, op_linear(ctx, x, w, b)); }

static void test_timer(void **state)
{
    GpuEnv *e = gpu_begin(state, "CudaTimer: events on the backend's stream");
    Ctx *g = e->gpu;
    cuda_set_debug(g, false, false);
    CudaTimer *t = cuda_timer_create(g);
    if (!t)
        fail_msg("cuda_timer_create: %s", ctx_error_message(g));
    double ms = 0;
    bool refused = !cuda_timer_stop(g, t, &ms);
    check(e, refused && strstr(ctx_error_message(g), "not started") && isnan(ms),
          "stop without start is an error: \"%s\"", ctx_error_message(g));
    ctx_clear_error(g);

    check(e, cuda_timer_start(g, t) && cuda_timer_stop(g, t, &ms) && ms >= 0 && ms < 1.0,
          "an empty region takes %.4f ms (>= 0, < 1)", ms);

    Tensor *x = gd(e, gh_rand(e, 1, -1, 1, DIMS(2048, 2048)));
    Tensor *w = gd(e, gh_rand(e, 2, -0.05f, 0.05f, DIMS(2048, 2048)));
    Tensor *b = gd(e, gh_rand(e, 3, -0.1f, 0.1f, DIMS(2048)));
    small_pass(g, x, w, b); /* plans the GEMM, warms up */
    cuda_synchronize(g);
    double h0 = latency_host_now();
    bool ok = cuda_timer_start(g, t);
    for (int i = 0; i < 10 && ok; i++)
        ok = small_pass(g, x, w, b) != NULL;
    ok = ok && cuda_timer_stop(g, t, &ms);
    double host_ms = (latency_host_now() - h0) * 1e3;
    check(e, ok && ms > 0.05 && ms <= host_ms * 1.02 + 0.05,
          "10 x (2048^3 GEMM + relu): events %.3f ms, host wall (synchronised) %.3f ms; events <= wall", ms, host_ms);
    cuda_timer_destroy(t);
    cuda_set_debug(g, true, true);
    gpu_end(e);
}

static void test_cupti_attribution(void **state)
{
    GpuEnv *e = gpu_begin(state, "CUPTI Activity: kernels and copies attributed to the label of their launch");
    Ctx *g = e->gpu;
    cuda_set_debug(g, false, false);
    uint32_t rt = 0, ct = 0;
    char err[1024] = "";
    check(e, cupti_version(&rt, &ct, err, sizeof err), "CUPTI API version %u (built with %u) %s", rt, ct, err);
    Tensor *hx = gh_rand(e, 7, -1, 1, DIMS(512, 256));
    Tensor *x = gd(e, hx);
    Tensor *w = gd(e, gh_rand(e, 8, -0.1f, 0.1f, DIMS(384, 256)));
    small_pass(g, x, w, NULL); /* plans outside the trace */
    cuda_synchronize(g);
    if (!cupti_activity_start(err, sizeof err)) {
        printf("  CUPTI refused here: %s\n", err);
        cuda_set_debug(g, true, true);
        if (strstr(err, "administrators") || strstr(err, "another profiler"))
            skip(); /* a machine policy, not a bug */
        fail_msg("cupti_activity_start: %s", err);
    }
    cupti_activity_set_pass(0);
    cupti_activity_set_label("relu", "relu");
    Tensor *r = op_relu(g, x);
    cupti_activity_set_label("gemm", "gemm/linear");
    Tensor *y = op_linear(g, r, w, NULL);
    cupti_activity_set_label("copy", "copy");
    g->ops->copy_from_host(g, x, hx->data);
    cupti_activity_set_pass(-1);
    bool ok = y && cuda_synchronize(g) && cupti_activity_flush(err, sizeof err);
    check(e, ok, "ran and flushed: %s", ok ? "ok" : (err[0] ? err : ctx_error_message(g)));
    int n_relu = 0, n_gemm = 0, n_copy = 0, n_bad = 0, n_unlabelled = 0;
    const CuptiRecord *rec = cupti_activity_records();
    for (int i = 0; i < cupti_activity_count(); i++) {
        const CuptiRecord *q = &rec[i];
        const char *label = q->label >= 0 ? cupti_activity_label(q->label) : "(none)";
        const char *kind = q->kind == CUPTI_REC_KERNEL ? "kernel" : q->kind == CUPTI_REC_MEMCPY ? "memcpy" : "memset";
        printf("       %-6s %-6s %8.3f us  %s\n", kind, label, (double)(q->end_ns - q->start_ns) * 1e-3,
               cupti_activity_name(q->name));
        n_bad += q->end_ns < q->start_ns || q->start_ns == 0;
        if (q->pass != 0) {
            n_unlabelled++;
            continue;
        }
        n_relu += q->kind == CUPTI_REC_KERNEL && strcmp(label, "relu") == 0;
        n_gemm += q->kind == CUPTI_REC_KERNEL && strcmp(label, "gemm") == 0;
        n_copy += q->kind == CUPTI_REC_MEMCPY && strcmp(label, "copy") == 0 && q->bytes == tensor_bytes(hx);
    }
    check(e, n_relu >= 1, "%d kernel(s) under 'relu'", n_relu);
    check(e, n_gemm >= 1, "%d kernel(s) under 'gemm' (cuBLASLt launches its own)", n_gemm);
    check(e, n_copy == 1, "%d host-to-device copy of %zu bytes under 'copy'", n_copy, tensor_bytes(hx));
    check(e, n_unlabelled == 0, "%d record(s) outside the labelled pass", n_unlabelled);
    check(e, n_bad == 0, "%d record(s) with bad timestamps", n_bad);
    check(e, cupti_activity_dropped() == 0, "%llu record(s) dropped", (unsigned long long)cupti_activity_dropped());
    cupti_activity_stop();
    check(e, !cupti_activity_active() && cupti_activity_count() == 0, "stopped and cleared");
    cuda_set_debug(g, true, true);
    gpu_end(e);
}

static void test_clocks(void **state)
{
    GpuEnv *e = gpu_begin(state, "NVML clocks (read only)");
    CudaClocks c;
    cuda_clocks_open(&c, e->gpu);
    if (!c.available) {
        printf("  NVML unavailable: %s (profile then reports the clocks as unknown)\n", c.reason);
    } else {
        CudaClockSample s = cuda_clocks_read(&c);
        char reasons[160];
        cuda_clock_reasons_str(s.reasons, reasons, sizeof reasons);
        check(e, s.sm_mhz > 100 && s.mem_mhz > 100, "%s, driver %s: SM %.0f MHz, memory %.0f MHz, %.0f C, reasons: %s",
              c.device_name, c.driver_version, s.sm_mhz, s.mem_mhz, s.temperature_c, reasons);
        cuda_clocks_close(&c);
    }
    gpu_end(e);
}

/* ---- CUPTI range profiler: hardware FLOPs of known work ---------------------------------------- */

typedef struct {
    GpuEnv *e;
    Tensor *x, *w, *cx, *cw; /* GEMM (M, K) x (N, K); conv input (N, C, H, W), weight (K, C, 3, 3) */
} RangeWork;

/* One pass: three ranges, each one op at one precision. */
static bool range_work(CuptiRange *cr, void *user, char *err, size_t cap)
{
    RangeWork *p = user;
    Ctx *g = p->e->gpu;
    cupti_range_enter(cr, "gemm_bf16");
    cuda_set_precision(g, CUDA_PRECISION_BF16);
    bool ok = op_linear(g, p->x, p->w, NULL) != NULL;
    cupti_range_enter(cr, "gemm_fp32");
    cuda_set_precision(g, CUDA_PRECISION_FP32);
    ok = ok && op_linear(g, p->x, p->w, NULL) != NULL;
    cupti_range_enter(cr, "conv_bf16");
    cuda_set_precision(g, CUDA_PRECISION_BF16);
    ok = ok && op_conv2d(g, p->cx, p->cw, NULL, 1, 1, 1) != NULL;
    cuda_set_precision(g, CUDA_PRECISION_FP32);
    cupti_range_leave(cr);
    ok = ok && cuda_synchronize(g);
    if (!ok)
        snprintf(err, cap, "%s", ctx_error_message(g));
    return ok;
}

static const CuptiRangeTotals *range_find(const CuptiRangeTotals *t, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

static void test_range_flops(void **state)
{
    GpuEnv *e = gpu_begin(state, "CUPTI range profiler: hardware FLOPs of a GEMM (bf16, fp32) and a conv vs 2 x MACs");
    Ctx *g = e->gpu;
    cuda_set_debug(g, false, false);
    enum { M = 1024, N = 1024, K = 2048, CB = 8, CC = 64, CK = 128, CH = 56 };
    RangeWork p = {.e = e};
    p.x = gd(e, gh_rand(e, 11, -1, 1, DIMS(M, K)));
    p.w = gd(e, gh_rand(e, 12, -0.05f, 0.05f, DIMS(N, K)));
    p.cx = gd(e, gh_rand(e, 13, -1, 1, DIMS(CB, CC, CH, CH)));
    p.cw = gd(e, gh_rand(e, 14, -0.1f, 0.1f, DIMS(CK, CC, 3, 3)));
    char err[1024] = "";
    /* plans (cuBLASLt heuristics, cuDNN engines) outside the session */
    if (!range_work(NULL, &p, err, sizeof err))
        fail_msg("warm-up: %s", err);
    printf("  conv engine: %s\n", cuda_last_conv_info(g));
    CuptiRange *cr = cupti_range_create(16, err, sizeof err);
    if (!cr) {
        printf("  CUPTI range profiler refused here: %s\n", err);
        cuda_set_debug(g, true, true);
        if (cupti_range_refusal(err))
            skip(); /* a machine policy, not a bug */
        fail_msg("cupti_range_create: %s", err);
    }
    int passes = 0, n = 0;
    size_t dropped = 0;
    CuptiRangeTotals t[8];
    bool ok = cupti_range_collect(cr, range_work, &p, &passes, err, sizeof err) &&
              cupti_range_results(cr, t, 8, &n, &dropped, err, sizeof err);
    size_t host_passes = cupti_range_passes(cr);
    check(e, ok, "chip %s: %d passes replayed (host API said %zu), %d range names, %zu dropped %s",
          cupti_range_chip(cr), passes, host_passes, n, dropped, ok ? "" : err);
    cupti_range_destroy(cr); /* the profiler stays initialised for the command test below */
    cuda_set_debug(g, true, true);
    if (!ok) {
        gpu_end(e);
        return;
    }
    check(e, passes == (int)host_passes && dropped == 0 && n == 3,
          "every pass replayed, nothing dropped, three ranges");
    const double gemm = 2.0 * M * N * K, conv = 2.0 * CB * CK * CH * CH * CC * 9;
    static const char *const names[3] = {"gemm_bf16", "gemm_fp32", "conv_bf16"};
    const double want[3] = {gemm, gemm, conv};
    for (int i = 0; i < 3; i++) {
        const CuptiRangeTotals *r = range_find(t, n, names[i]);
        if (!r) {
            check(e, false, "no range '%s'", names[i]);
            continue;
        }
        double tensor = cupti_range_tensor_flops(r), cores = cupti_range_cuda_core_flops(r);
        bool on_tensor = i != 1; /* fp32 is strict: CUDA cores only */
        double hw = on_tensor ? tensor : cupti_range_fp32_flops(r);
        printf("       %-10s tensor %.5g (fp16 %.4g, bf16 %.4g, tf32 %.4g)  CUDA-core %.5g (ffma %.4g fadd %.4g fmul "
               "%.4g)  GPU %.3f ms  SM %.0f MHz  DRAM %.1f MB\n",
               names[i], tensor, r->v[CR_TENSOR_FP16], r->v[CR_TENSOR_BF16], r->v[CR_TENSOR_TF32], cores, r->v[CR_FFMA],
               r->v[CR_FADD], r->v[CR_FMUL], r->v[CR_GPU_TIME_NS] * 1e-6, r->v[CR_SM_HZ] * 1e-6,
               (r->v[CR_DRAM_READ] + r->v[CR_DRAM_WRITE]) / 1e6);
        check(e, fabs(hw / want[i] - 1) <= 0.03, "%s: %s FLOPs %.6g vs 2 x MACs %.6g (ratio %.4f, within 3%%)",
              names[i], on_tensor ? "tensor-core" : "fp32 CUDA-core", hw, want[i], hw / want[i]);
        if (!on_tensor)
            check(e, tensor == 0, "%s: no tensor-core ops in strict fp32 (%.4g)", names[i], tensor);
        check(e, r->v[CR_GPU_TIME_NS] > 0 && r->v[CR_SM_HZ] > 2e8 && r->v[CR_SM_HZ] < 4e9,
              "%s: GPU time %.3f ms, SM clock %.0f MHz", names[i], r->v[CR_GPU_TIME_NS] * 1e-6, r->v[CR_SM_HZ] * 1e-6);
    }
    gpu_end(e);
}

static double cell_num(const CsvTable *t, int r, const char *col)
{
    double v = NAN;
    csv_table_number(t, r, csv_table_col(t, col), &v);
    return v;
}

static const char *cell_str(const CsvTable *t, int r, const char *col)
{
    return csv_table_cell(t, r, csv_table_col(t, col));
}

/* `focusbench profile ARGS --csv TMP` in this process (args: NULL-terminated, without --csv), its
 * CSV read into t; one check, under `what`, that it exited 0 and wrote a readable CSV. True when t
 * holds the table (the caller frees it). */
static bool profile_table(GpuEnv *e, const char *what, const char *const *args, CsvTable *t)
{
    char path[] = "/tmp/focusbench_profile_gpu_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char *argv[48] = {"profile"};
    int argc = 1;
    for (int i = 0; args[i] && argc < 44; i++)
        argv[argc++] = (char *)args[i];
    argv[argc++] = "--csv";
    argv[argc++] = path;
    int rc = cmd_profile(argc, argv);
    fflush(stdout);
    char err[512] = "";
    bool ok = rc == 0 && csv_table_read(path, t, err, sizeof err);
    check(e, ok, "%s: the command exited %d%s%s", what, rc, err[0] ? ", CSV: " : "", err);
    remove(path);
    return ok;
}

static void test_profile_command(void **state)
{
    GpuEnv *e = gpu_begin(state, "focusbench profile --device cuda on synth-tiny (eager, graph, CUPTI split)");
    static const char *const args[] = {"--device", "cuda",   "--preset", "synth-tiny", "--batch", "1,4", "--repeats",
                                       "10",       "--min-time", "0",   "--split-repeats", "3", "--precision", "tf32",
                                       NULL};
    CsvTable t;
    if (!profile_table(e, "eager, graph, CUPTI", args, &t)) {
        gpu_end(e);
        return;
    }
    int eager = 0, graph = 0, graph_measured = 0, kernels = 0, hw_rows = 0;
    double hw_comp[5] = {0}, hw_sum = 0, hw_total = NAN, hw_ratio_total = NAN;
    double comp_ms[5] = {0}, other_ms = 0, all_ms = 0;
    static const char *const comps[5] = {"glance", "policies", "crop", "focus", "classifier"};
    for (int r = 0; r < t.n_rows; r++) {
        const char *level = cell_str(&t, r, "level"), *mode = cell_str(&t, r, "mode");
        if (strcmp(level, "pass") == 0) {
            bool is_graph = strcmp(mode, "graph") == 0;
            double med = cell_num(&t, r, "latency_ms_median");
            eager += !is_graph && med > 0;
            graph += is_graph;
            graph_measured += is_graph && med > 0;
            if (is_graph)
                check(e, med > 0 && strstr(cell_str(&t, r, "note"), "bit-identical"), "graph row, batch %s: %s",
                      cell_str(&t, r, "batch"), cell_str(&t, r, "note"));
        } else if (strcmp(level, "component") == 0 && strcmp(cell_str(&t, r, "batch"), "4") == 0) {
            double ms = cell_num(&t, r, "time_ms_median");
            all_ms += ms;
            int k = 0;
            while (k < 5 && strcmp(comps[k], cell_str(&t, r, "component")) != 0)
                k++;
            if (k < 5)
                comp_ms[k] = ms;
            else
                other_ms += ms;
        } else if (strcmp(level, "kernel") == 0) {
            kernels++;
        } else if (strcmp(level, "hw_flops") == 0 && strcmp(cell_str(&t, r, "batch"), "4") == 0) {
            hw_rows++;
            const char *comp = cell_str(&t, r, "component");
            double hw = cell_num(&t, r, "hw_gflops_per_video");
            printf("       hw_flops %-10s analytic %.4f GF  tensor %.4f  CUDA-core %.4f  hw %.4f GFLOP/video  "
                   "hw/2x %.3f  %s %s\n", comp, cell_num(&t, r, "gflops_per_video"),
                   cell_num(&t, r, "hw_tensor_gflops_per_video"), cell_num(&t, r, "hw_cuda_core_gflops_per_video"), hw,
                   cell_num(&t, r, "hw_over_2x_analytic"), cell_str(&t, r, "timing"), cell_str(&t, r, "note"));
            if (strcmp(comp, "total") == 0) {
                hw_total = hw;
                hw_ratio_total = cell_num(&t, r, "hw_over_2x_analytic");
                continue;
            }
            hw_sum += hw;
            for (int k = 0; k < 5; k++)
                if (strcmp(comps[k], comp) == 0)
                    hw_comp[k] = hw;
        }
    }
    check(e, eager == 2, "%d eager rows with a latency (want 2)", eager);
    check(e, graph == 2 && graph_measured == 2, "%d graph rows, %d measured (want 2; the notes above say why not)",
          graph, graph_measured);
    check(e, comp_ms[0] > 0 && comp_ms[1] > 0 && comp_ms[2] > 0 && comp_ms[3] > 0 && comp_ms[4] > 0,
          "batch 4 per component (CUPTI): glance %.3f, policies %.3f, crop %.3f, focus %.3f, classifier %.3f ms",
          comp_ms[0], comp_ms[1], comp_ms[2], comp_ms[3], comp_ms[4]);
    check(e, other_ms <= 0.01 * all_ms, "unattributed device time %.4f ms of %.3f ms (<= 1%%)", other_ms, all_ms);
    check(e, kernels >= 10, "%d kernel rows", kernels);
    check(e, hw_rows >= 6, "%d hardware-FLOP rows at batch 4 (5 components + total; the lines above say why not)",
          hw_rows);
    check(e, hw_comp[0] > 0 && hw_comp[1] > 0 && hw_comp[2] > 0 && hw_comp[3] > 0 && hw_comp[4] > 0,
          "batch 4 hardware GFLOP per video: glance %.4f, policies %.4f, crop %.4f, focus %.4f, classifier %.4f",
          hw_comp[0], hw_comp[1], hw_comp[2], hw_comp[3], hw_comp[4]);
    check(e, fabs(hw_sum - hw_total) <= 1e-9 * hw_total + 1e-12, "components add up to the total (%.6g vs %.6g)",
          hw_sum, hw_total);
    /* the hardware does at least the model's MACs (tile padding and epilogues only add) */
    check(e, hw_ratio_total >= 0.9, "total hardware FLOPs / (2 x analytic MACs) = %.3f (>= 0.9)", hw_ratio_total);
    check(e, csv_table_col(&t, "cupti_version") >= 0 && cell_str(&t, 0, "cupti_version")[0] != '\0',
          "environment: cupti_version %s, cudnn %s, driver %s, SM clock %s MHz", cell_str(&t, 0, "cupti_version"),
          cell_str(&t, 0, "cudnn_version"), cell_str(&t, 0, "driver_version"), cell_str(&t, 0, "clock_sm_mhz"));
    csv_table_free(&t);

    /* --no-cupti: timing only, not one CUPTI row */
    static const char *const args2[] = {"--device", "cuda", "--preset", "synth-tiny", "--batch", "2", "--repeats", "3",
                                        "--min-time", "0", "--mode", "eager", "--no-cupti", NULL};
    if (profile_table(e, "--no-cupti", args2, &t)) {
        int cupti_rows = 0, pass_rows = 0;
        for (int r = 0; r < t.n_rows; r++) {
            const char *level = cell_str(&t, r, "level");
            cupti_rows += strcmp(level, "kernel") == 0 || strcmp(level, "hw_flops") == 0 ||
                          strcmp(level, "component") == 0;
            pass_rows += strcmp(level, "pass") == 0;
        }
        check(e, cupti_rows == 0 && pass_rows == 1, "--no-cupti: %d pass row, %d CUPTI rows (want 1, 0)", pass_rows,
              cupti_rows);
        csv_table_free(&t);
    }
    gpu_end(e);
}

/* profile --train with CUPTI: the training step's GPU time split into the forward's components and
 * "backward", kernel rows, no hardware-FLOP rows (the range profiler is not run for training). */
static void test_profile_train_split(void **state)
{
    GpuEnv *e = gpu_begin(state, "focusbench profile --train --device cuda: CUPTI split of a training step");
    static const char *const args[] = {"--device", "cuda", "--preset", "synth-tiny", "--train", "--batch", "2",
                                       "--repeats", "3", "--min-time", "0", "--warmup", "1", "--split-repeats", "3",
                                       NULL};
    CsvTable t;
    if (!profile_table(e, "--train", args, &t)) {
        gpu_end(e);
        return;
    }
    double step_ms = NAN, backward_ms = 0, forward_ms = 0;
    int kernels = 0, hw_rows = 0, not_train = 0;
    for (int r = 0; r < t.n_rows; r++) {
        const char *level = cell_str(&t, r, "level"), *mode = cell_str(&t, r, "mode");
        not_train += strcmp(mode, "train") != 0;
        if (strcmp(level, "pass") == 0) {
            step_ms = cell_num(&t, r, "latency_ms_median");
        } else if (strcmp(level, "component") == 0) {
            const char *comp = cell_str(&t, r, "component");
            double ms = cell_num(&t, r, "time_ms_median");
            printf("       train split: %-12s %.3f ms\n", comp, ms);
            if (strcmp(comp, "backward") == 0)
                backward_ms = ms;
            else
                forward_ms += ms;
        } else if (strcmp(level, "kernel") == 0) {
            kernels++;
        } else if (strcmp(level, "hw_flops") == 0) {
            hw_rows++;
        }
    }
    check(e, step_ms > 0, "the training step's latency %.3f ms", step_ms);
    check(e, not_train == 0, "%d rows whose mode is not 'train'", not_train);
    check(e, backward_ms > 0 && forward_ms > 0, "GPU time: forward components %.3f ms, backward %.3f ms (both > 0)",
          forward_ms, backward_ms);
    check(e, kernels >= 10 && hw_rows == 0, "%d kernel rows (>= 10), %d hardware-FLOP rows (0)", kernels, hw_rows);
    csv_table_free(&t);
    gpu_end(e);
}

int test_group_profile_gpu(int *total)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer),
        cmocka_unit_test(test_cupti_attribution),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_range_flops),
        cmocka_unit_test(test_profile_command),
        cmocka_unit_test(test_profile_train_split),
    };
    return gpu_run_group("profile_gpu", tests, sizeof tests / sizeof tests[0], total);
}
