/* cmd_bench_ops.c — `focusbench bench-ops`: times the CPU conv/linear paths on ResNet-50 and
 * MobileNetV2 layer shapes (and the Uni-AdaFocus head's linear layers) and prints GFLOP/s next
 * to this CPU's measured fp32 FMA peak.
 *
 * Owns: the benchmark layer table (the one source: `--list-layers` prints it for
 * scripts/bench_ops_torch.py, which times the same shapes in PyTorch), the timing protocol and
 * the table / CSV output.
 *
 * Timing protocol, per layer: inputs and weights are allocated and filled once; one planning
 * pass sizes the context's arenas (ctx_begin_pass then consolidates them into one block each);
 * the arenas are then FROZEN, so any allocation inside the warm-up or timed passes would fail the
 * op with an error, and the arenas' system-allocation counters are checked unchanged at the end.
 * After --warmup passes, each timed run is one op call (the forward fast path, or with
 * --backward also tape_backward after an untimed forward), repeated until both --repeats runs and
 * --min-time seconds are reached. Reported: median, p25/p75 (IQR) and min of the runs.
 * GFLOP/s = 2 · MACs / median (the paper's MAC count: conv/linear, bias not counted).
 *
 * The FMA peak is measured before the first layer and again after the last one, on the same
 * thread count; % of peak uses the higher of the two, and a gap > 10% between them is printed as
 * a warning (the machine was busy). Progress goes to stderr per layer; the table, the group
 * summary, the kernel that ran each conv's forward pass (oneDNN with its implementation name,
 * the direct depthwise kernel, or im2col + GEMM) and the CSV are written at the end. The CSV is a result file of bench/csv_out.h
 * (schema_version 1: latency_ms_median/_iqr/..., gflops_per_s, the environment columns), so
 * `focusbench regress --baseline A.csv --current B.csv` compares two runs with no flags.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/blas_select.h"
#include "bench/cli.h"
#include "bench/csv_out.h"
#include "bench/parse_num.h"
#include "bench/version_info.h"
#include "kernels/context.h"
#include "kernels/cpu/cpu_conv_dnnl.h"
#include "kernels/cpu/cpu_peak.h"
#include "kernels/ops.h"
#include "kernels/tape.h"
#include "kernels/tensor.h"

#if HAVE_BLAS
#include <cblas.h>
#endif
#if HAVE_OPENMP
#include <omp.h>
#endif

enum { FRAMES_PER_SAMPLE = 16 };

/* ---- the layer table ---------------------------------------------------------------------- */

typedef enum { LAYER_CONV, LAYER_LINEAR } LayerKind;

typedef struct {
    const char *name;  /* unique; --filter matches substrings of it */
    const char *net;   /* where the shape comes from */
    const char *group; /* summary line this layer adds to */
    LayerKind kind;
    int cin, cout;     /* conv: channels in/out; linear: features in/out */
    int h, w;          /* conv: input spatial size (224² network input) */
    int ksize, stride, pad, groups;
    int rows_per_sample; /* linear: rows of x per batch element (16 frames of a clip) */
} LayerSpec;

#define CONV(nm, net, grp, ci, co, hw, k, s, p, g) {nm, net, grp, LAYER_CONV, ci, co, hw, hw, k, s, p, g, 0}
#define LINEAR(nm, net, grp, fi, fo) {nm, net, grp, LAYER_LINEAR, fi, fo, 1, 1, 1, 1, 0, 1, FRAMES_PER_SAMPLE}

static const LayerSpec LAYERS[] = {
    /* ResNet-50 at 224²: the stem, the 3×3 conv of a non-first bottleneck of each stage, and
     * 1×1 convs that expand, reduce and expand at the widest point. */
    CONV("r50.stem7x7_s2", "resnet50", "resnet50 stem", 3, 64, 224, 7, 2, 3, 1),
    CONV("r50.l1.3x3", "resnet50", "resnet50 3x3", 64, 64, 56, 3, 1, 1, 1),
    CONV("r50.l2.3x3", "resnet50", "resnet50 3x3", 128, 128, 28, 3, 1, 1, 1),
    CONV("r50.l3.3x3", "resnet50", "resnet50 3x3", 256, 256, 14, 3, 1, 1, 1),
    CONV("r50.l4.3x3", "resnet50", "resnet50 3x3", 512, 512, 7, 3, 1, 1, 1),
    CONV("r50.l1.1x1_64to256", "resnet50", "resnet50 1x1", 64, 256, 56, 1, 1, 0, 1),
    CONV("r50.l3.1x1_1024to256", "resnet50", "resnet50 1x1", 1024, 256, 14, 1, 1, 0, 1),
    CONV("r50.l4.1x1_512to2048", "resnet50", "resnet50 1x1", 512, 2048, 7, 1, 1, 0, 1),
    /* MobileNetV2 at 224²: the depthwise 3×3 of every distinct (channels, size, stride), then
     * pointwise expand/project convs. */
    CONV("mbv2.dw32_112", "mobilenetv2", "mobilenetv2 depthwise", 32, 32, 112, 3, 1, 1, 32),
    CONV("mbv2.dw96_112_s2", "mobilenetv2", "mobilenetv2 depthwise", 96, 96, 112, 3, 2, 1, 96),
    CONV("mbv2.dw144_56", "mobilenetv2", "mobilenetv2 depthwise", 144, 144, 56, 3, 1, 1, 144),
    CONV("mbv2.dw144_56_s2", "mobilenetv2", "mobilenetv2 depthwise", 144, 144, 56, 3, 2, 1, 144),
    CONV("mbv2.dw192_28", "mobilenetv2", "mobilenetv2 depthwise", 192, 192, 28, 3, 1, 1, 192),
    CONV("mbv2.dw384_14", "mobilenetv2", "mobilenetv2 depthwise", 384, 384, 14, 3, 1, 1, 384),
    CONV("mbv2.dw576_14", "mobilenetv2", "mobilenetv2 depthwise", 576, 576, 14, 3, 1, 1, 576),
    CONV("mbv2.dw576_14_s2", "mobilenetv2", "mobilenetv2 depthwise", 576, 576, 14, 3, 2, 1, 576),
    CONV("mbv2.dw960_7", "mobilenetv2", "mobilenetv2 depthwise", 960, 960, 7, 3, 1, 1, 960),
    CONV("mbv2.pw16to96_112", "mobilenetv2", "mobilenetv2 pointwise", 16, 96, 112, 1, 1, 0, 1),
    CONV("mbv2.pw144to24_56", "mobilenetv2", "mobilenetv2 pointwise", 144, 24, 56, 1, 1, 0, 1),
    CONV("mbv2.pw576to96_14", "mobilenetv2", "mobilenetv2 pointwise", 576, 96, 14, 1, 1, 0, 1),
    CONV("mbv2.pw320to1280_7", "mobilenetv2", "mobilenetv2 pointwise", 320, 1280, 7, 1, 1, 0, 1),
    /* Linear layers on per-frame features (rows = batch · 16 frames): ResNet-50 and MobileNetV2
     * feature widths into a 4096-wide hidden layer, and a 200-class (ActivityNet) classifier. */
    LINEAR("fc.2048to4096", "adafocus-head", "linear", 2048, 4096),
    LINEAR("fc.1280to4096", "adafocus-head", "linear", 1280, 4096),
    LINEAR("fc.4096to200", "adafocus-head", "linear", 4096, 200),
};
enum { N_LAYERS = (int)(sizeof LAYERS / sizeof LAYERS[0]) };

static int conv_out_size(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

/* Multiply-accumulates of one forward pass at batch n (bias not counted). */
static double layer_macs(const LayerSpec *L, int n)
{
    if (L->kind == LAYER_LINEAR)
        return (double)n * L->rows_per_sample * L->cin * (double)L->cout;
    int ho = conv_out_size(L->h, L->ksize, L->stride, L->pad), wo = conv_out_size(L->w, L->ksize, L->stride, L->pad);
    return (double)n * L->cout * ho * wo * (double)(L->cin / L->groups) * L->ksize * L->ksize;
}

/* "N16 C64→64 56x56 k3 s1 p1 g1" or "M256 2048→4096". */
static void layer_shape_str(const LayerSpec *L, int n, char *buf, size_t cap)
{
    if (L->kind == LAYER_LINEAR)
        snprintf(buf, cap, "M%d %d->%d", n * L->rows_per_sample, L->cin, L->cout);
    else
        snprintf(buf, cap, "N%d %d->%d %dx%d k%d s%d g%d", n, L->cin, L->cout, L->h, L->w, L->ksize, L->stride,
                 L->groups);
}

/* ---- options ------------------------------------------------------------------------------ */

typedef struct {
    int batch, threads, repeats, warmup;
    double min_time, peak_time;
    const char *csv_path;
    const char *filter; /* comma-separated substrings; NULL = all */
    int argc;           /* the subcommand's argv, for the CSV's command column */
    char **argv;
    bool reference, backward, list_layers, peak_only;
} Options;

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: focusbench bench-ops [--batch N] [--threads N] [--repeats N] [--min-time S] [--warmup N]\n"
            "                            [--filter SUBSTR[,SUBSTR...]] [--backward] [--reference]\n"
            "                            [--peak-time S] [--csv FILE] [--list-layers] [--peak-only] [--help]\n"
            "\n"
            "Times the CPU backend's conv2d and linear ops on the layer shapes of ResNet-50 (stem 7x7/2, the\n"
            "3x3 convs of the four stages, 1x1 convs), MobileNetV2 (depthwise 3x3 and pointwise convs) at a\n"
            "224x224 input, and linear layers on per-frame features (M = batch x 16 frames). Each layer is\n"
            "reported with its median time, IQR, GFLOP/s and the percentage of this CPU's fp32 FMA peak,\n"
            "which is measured first with the same thread count (a synthetic kernel of independent vector\n"
            "FMA chains of the widest ISA the build targets; best of 10 repeats).\n"
            "\n"
            "GFLOP/s = 2 x MACs / median time: MACs of the conv/linear layer with the bias not counted\n"
            "(the paper's convention; 1 MAC = 2 FLOP). Bias is present in every layer (an inference conv\n"
            "with batch norm folded in).\n"
            "\n"
            "Timing: per layer, inputs and weights are allocated before timing; one planning pass sizes the\n"
            "context's arenas, which are then frozen (an allocation inside a timed pass would fail the run),\n"
            "then --warmup passes, then timed runs until both --repeats runs and --min-time seconds are\n"
            "reached. A progress line per layer goes to stderr.\n"
            "\n"
            "options:\n"
            "  --batch N        batch size (images; linear rows = N x 16)            [16]\n"
            "  --threads N      OpenMP and OpenBLAS threads                           [OMP_NUM_THREADS or all cores]\n"
            "  --repeats N      at least N timed runs per layer                      [10]\n"
            "  --min-time S     and at least S seconds of timed runs per layer       [0.5]\n"
            "  --warmup N       untimed runs after the planning pass                 [2]\n"
            "  --filter LIST    only layers whose name contains one of the comma-separated substrings\n"
            "                   (names: see --list-layers), e.g. --filter r50.l,mbv2.dw\n"
            "  --backward       also time the backward pass (tape_backward: dx, dw, db after an untimed\n"
            "                   forward); its GFLOP/s counts 2 x forward MACs (dx and dw)\n"
            "  --reference      time the plain reference kernels instead of the fast paths (slow: use a\n"
            "                   small --batch and --filter)\n"
            "  --peak-time S    seconds spent measuring the FMA peak                  [1.0]\n"
            "  --csv FILE       also write the rows to FILE: focusbench's result CSV (latency_ms_median,\n"
            "                   latency_ms_iqr, gflops_per_s, pct_of_peak, ... and the environment;\n"
            "                   C-locale numbers; written to FILE.tmp and renamed when complete).\n"
            "                   `focusbench regress --baseline A.csv --current B.csv` compares two runs.\n"
            "  --list-layers    print the layer table as CSV and exit (read by scripts/bench_ops_torch.py)\n"
            "  --peak-only      measure and print only the FMA peak (\"peak_gflops=...\") and exit\n"
            "  --help           this text\n"
            "\n"
            "Exit status: 0 success, 1 a layer failed (message on stderr), 2 bad usage.\n"
            "Example: focusbench bench-ops --batch 16 --threads 2 --csv results/bench_ops.csv\n");
}

static bool parse_int(const char *flag, const char *s, int lo, int hi, int *out)
{
    if (parse_int_in(s, lo, hi, out))
        return true;
    fprintf(stderr, "bench-ops: %s must be an integer in [%d, %d], got '%s'\n", flag, lo, hi, s ? s : "");
    return false;
}

static bool parse_seconds(const char *flag, const char *s, double lo, double hi, double *out)
{
    if (parse_double_in(s, lo, hi, out))
        return true;
    fprintf(stderr, "bench-ops: %s must be a number of seconds in [%g, %g], got '%s'\n", flag, lo, hi, s ? s : "");
    return false;
}

static int default_threads(void)
{
#if HAVE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Returns 0 on success, 2 on a usage error (message printed), -1 after --help. */
static int parse_options(int argc, char **argv, Options *o)
{
    *o = (Options){.batch = 16, .threads = default_threads(), .repeats = 10, .warmup = 2, .min_time = 0.5,
                   .peak_time = 1.0, .argc = argc, .argv = argv};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes_value = true;
        bool ok = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage(stdout);
            return -1;
        } else if (strcmp(a, "--batch") == 0) {
            ok = parse_int(a, v, 1, 4096, &o->batch);
        } else if (strcmp(a, "--threads") == 0) {
            ok = parse_int(a, v, 1, 1024, &o->threads);
        } else if (strcmp(a, "--repeats") == 0) {
            ok = parse_int(a, v, 1, 1000000, &o->repeats);
        } else if (strcmp(a, "--warmup") == 0) {
            ok = parse_int(a, v, 0, 1000000, &o->warmup);
        } else if (strcmp(a, "--min-time") == 0) {
            ok = parse_seconds(a, v, 0, 3600, &o->min_time);
        } else if (strcmp(a, "--peak-time") == 0) {
            ok = parse_seconds(a, v, 0.005, 600, &o->peak_time);
        } else if (strcmp(a, "--csv") == 0 || strcmp(a, "--filter") == 0) {
            if (!v || !*v) {
                fprintf(stderr, "bench-ops: %s needs a value\n", a);
                return 2;
            }
            if (strcmp(a, "--csv") == 0)
                o->csv_path = v;
            else
                o->filter = v;
        } else {
            takes_value = false;
            if (strcmp(a, "--reference") == 0)
                o->reference = true;
            else if (strcmp(a, "--backward") == 0)
                o->backward = true;
            else if (strcmp(a, "--list-layers") == 0)
                o->list_layers = true;
            else if (strcmp(a, "--peak-only") == 0)
                o->peak_only = true;
            else {
                fprintf(stderr, "bench-ops: unknown option '%s' (see focusbench bench-ops --help)\n", a);
                return 2;
            }
        }
        if (!ok)
            return 2;
        if (takes_value)
            i++;
    }
    return 0;
}

/* Whether `name` contains one of the comma-separated substrings of `filter` (NULL: all). */
static bool filter_matches(const char *filter, const char *name)
{
    if (!filter)
        return true;
    const char *p = filter;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len > 0) {
            char part[128];
            snprintf(part, sizeof part, "%.*s", (int)(len < sizeof part ? len : sizeof part - 1), p);
            if (strstr(name, part))
                return true;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

/* ---- environment -------------------------------------------------------------------------- */

static void set_threads(int threads)
{
#if HAVE_OPENMP
    omp_set_num_threads(threads);
#endif
#if HAVE_BLAS
    openblas_set_num_threads(threads);
#endif
}


/* The "model name" line of /proc/cpuinfo, or "unknown". */
static void cpu_model(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *colon = strchr(line, ':');
            if (colon) {
                colon++;
                while (*colon == ' ' || *colon == '\t')
                    colon++;
                colon[strcspn(colon, "\n")] = '\0';
                snprintf(buf, cap, "%s", colon);
            }
            break;
        }
    }
    fclose(f);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- one layer ---------------------------------------------------------------------------- */

/* A host f32 tensor outside every arena (inputs and weights live across passes), filled with
 * a cheap deterministic pattern in [-1, 1); values do not matter for speed as long as they are
 * normal numbers. */
static Tensor *host_tensor(int ndim, const int64_t *dims, bool with_grad, uint32_t salt)
{
    Tensor *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    tensor_set_shape(t, ndim, dims);
    t->dtype = DTYPE_F32;
    t->backend = BACKEND_CPU;
    size_t bytes = (tensor_bytes(t) + 63) / 64 * 64;
    t->data = aligned_alloc(64, bytes ? bytes : 64);
    if (!t->data) {
        free(t);
        return NULL;
    }
    float *p = tensor_f32(t);
    uint32_t s = 2463534242u ^ salt;
    for (int64_t i = 0; i < tensor_numel(t); i++) {
        s ^= s << 13, s ^= s >> 17, s ^= s << 5; /* xorshift32 */
        p[i] = (float)(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
    }
    if (with_grad) {
        t->requires_grad = true;
        t->grad = host_tensor(ndim, dims, false, salt + 1);
        if (!t->grad) {
            free(t->data);
            free(t);
            return NULL;
        }
        memset(t->grad->data, 0, tensor_bytes(t->grad));
    }
    return t;
}

static void host_tensor_free(Tensor *t)
{
    if (!t)
        return;
    host_tensor_free(t->grad);
    free(t->data);
    free(t);
}

typedef struct {
    Tensor *x, *w, *b;
} LayerData;

static bool layer_data_create(const LayerSpec *L, int n, bool with_grad, LayerData *d)
{
    memset(d, 0, sizeof *d);
    if (L->kind == LAYER_CONV) {
        /* x: (N, C, H, W)   w: (K, C/groups, k, k) */
        d->x = host_tensor(4, (int64_t[]){n, L->cin, L->h, L->w}, with_grad, 1);
        d->w = host_tensor(4, (int64_t[]){L->cout, L->cin / L->groups, L->ksize, L->ksize}, with_grad, 3);
    } else {
        /* x: (M, K) with M = batch · frames   w: (N, K) */
        d->x = host_tensor(2, (int64_t[]){(int64_t)n * L->rows_per_sample, L->cin}, with_grad, 1);
        d->w = host_tensor(2, (int64_t[]){L->cout, L->cin}, with_grad, 3);
    }
    d->b = host_tensor(1, (int64_t[]){L->cout}, with_grad, 5); /* b: (K) conv, (N) linear */
    if (d->w) { /* weights ~ U(-1/sqrt(fan_in), ..) keep outputs O(1) */
        float scale = 1.0f / sqrtf((float)(tensor_numel(d->w) / L->cout));
        float *p = tensor_f32(d->w);
        for (int64_t i = 0; i < tensor_numel(d->w); i++)
            p[i] *= scale;
    }
    return d->x && d->w && d->b;
}

static void layer_data_free(LayerData *d)
{
    host_tensor_free(d->x);
    host_tensor_free(d->w);
    host_tensor_free(d->b);
    memset(d, 0, sizeof *d);
}

static Tensor *layer_forward(Ctx *ctx, const LayerSpec *L, const LayerData *d)
{
    if (L->kind == LAYER_CONV)
        return op_conv2d(ctx, d->x, d->w, d->b, L->stride, L->pad, L->groups);
    return op_linear(ctx, d->x, d->w, d->b);
}

typedef struct {
    double median_ms, p25_ms, p75_ms, min_ms;
    int runs;
} Stats;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile q in [0, 1] of sorted v[n] with linear interpolation (numpy's default). */
static double percentile(const double *v, int n, double q)
{
    double pos = q * (n - 1);
    int lo = (int)floor(pos);
    int hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

static size_t arenas_system_allocs(const Ctx *ctx)
{
    return ctx->arena.system_allocs + ctx->host.system_allocs + ctx->scratch.system_allocs;
}

static void arenas_freeze(Ctx *ctx, bool frozen)
{
    arena_freeze(&ctx->arena, frozen);
    arena_freeze(&ctx->host, frozen);
    arena_freeze(&ctx->scratch, frozen);
}

/* One pass: forward (timed unless `backward`), then in backward mode the tape walk (timed).
 * Returns the timed seconds, or a negative value with ctx's error set. */
static double run_pass(Ctx *ctx, const LayerSpec *L, const LayerData *d, bool backward)
{
    ctx_begin_pass(ctx);
    double t0 = now_seconds();
    Tensor *y = layer_forward(ctx, L, d);
    double t1 = now_seconds();
    if (!y)
        return -1;
    if (!backward)
        return t1 - t0;
    double t2 = now_seconds();
    bool ok = tape_backward(ctx, y); /* seeds dy = 1 and accumulates dx, dw, db */
    double t3 = now_seconds();
    return ok ? t3 - t2 : -1;
}

/* Times one layer in one direction; fills `st`. On failure returns false with a message in err. */
static bool time_layer(const Options *o, const LayerSpec *L, bool backward, double *samples, int cap, Stats *st,
                       char *err, size_t err_cap)
{
    LayerData d;
    Ctx *ctx = NULL;
    bool ok = false;
    if (!layer_data_create(L, o->batch, backward, &d)) {
        snprintf(err, err_cap, "out of memory allocating the inputs of %s at batch %d", L->name, o->batch);
        goto done;
    }
    ctx = ctx_create(BACKEND_CPU, 1);
    if (!ctx) {
        snprintf(err, err_cap, "ctx_create failed (out of memory)");
        goto done;
    }
    ctx->cpu_reference = o->reference;
    ctx_set_training(ctx, backward); /* records the tape only when the backward pass is timed */

    /* Planning pass: sizes the arenas; also checks the op layer's forward MAC count against the
     * table's (the figure GFLOP/s is computed from). */
    ctx_reset_counters(ctx);
    if (run_pass(ctx, L, &d, backward) < 0)
        goto fail_ctx;
    double counted = ctx_total_macs(ctx), expected = layer_macs(L, o->batch);
    if (!backward && fabs(counted - expected) > 1e-9 * expected) {
        snprintf(err, err_cap, "the op layer counted %.0f MACs for %s, the benchmark table says %.0f", counted,
                 L->name, expected);
        goto done;
    }
    ctx_begin_pass(ctx); /* consolidates every arena into one block of its high-water size */
    arenas_freeze(ctx, true);
    size_t allocs_before = arenas_system_allocs(ctx);

    for (int i = 0; i < o->warmup; i++)
        if (run_pass(ctx, L, &d, backward) < 0)
            goto fail_ctx;

    int n = 0;
    double spent = 0;
    while ((n < o->repeats || spent < o->min_time) && n < cap) {
        double dt = run_pass(ctx, L, &d, backward);
        if (dt < 0)
            goto fail_ctx;
        samples[n++] = dt;
        spent += dt;
    }
    if (arenas_system_allocs(ctx) != allocs_before) {
        snprintf(err, err_cap, "%s: the arenas allocated from the system during timing (planning failed)",
                 L->name);
        goto done;
    }
    qsort(samples, (size_t)n, sizeof *samples, cmp_double);
    st->runs = n;
    st->min_ms = samples[0] * 1e3;
    st->p25_ms = percentile(samples, n, 0.25) * 1e3;
    st->median_ms = percentile(samples, n, 0.5) * 1e3;
    st->p75_ms = percentile(samples, n, 0.75) * 1e3;
    ok = true;
    goto done;

fail_ctx:
    snprintf(err, err_cap, "%s", ctx_error_message(ctx));
done:
    if (ctx)
        arenas_freeze(ctx, false);
    ctx_destroy(ctx);
    layer_data_free(&d);
    return ok;
}

/* ---- output ------------------------------------------------------------------------------- */

static void print_layer_list(FILE *out, const Options *o)
{
    fprintf(out, "name,net,group,kind,cin,cout,h,w,ksize,stride,pad,groups,rows_per_sample\n");
    for (int i = 0; i < N_LAYERS; i++) {
        const LayerSpec *L = &LAYERS[i];
        if (!filter_matches(o->filter, L->name))
            continue;
        fprintf(out, "%s,%s,%s,%s,%d,%d,%d,%d,%d,%d,%d,%d,%d\n", L->name, L->net, L->group,
                L->kind == LAYER_CONV ? "conv2d" : "linear", L->cin, L->cout, L->h, L->w, L->ksize, L->stride,
                L->pad, L->groups, L->rows_per_sample);
    }
}

static const char ROW_FMT_HEAD[] = "%-22s %-28s %-4s %10s %10s %9s %5s %9s %7s\n";
static const char ROW_FMT[] = "%-22s %-28s %-4s %10.3f %10.3f %9.3f %5d %9.1f %6.1f%%\n";

/* One measured row: a layer in one direction. */
typedef struct {
    const LayerSpec *layer;
    const char *pass; /* "fwd" or "bwd" */
    double macs;      /* of this pass: forward MACs, or 2 × them for backward (dx and dw) */
    Stats st;
} Result;

static double result_gflops(const Result *r) { return 2.0 * r->macs / (r->st.median_ms * 1e-3) * 1e-9; }

/* The peak figure of a run: the FMA kernel is measured before and after the layers, and the
 * higher of the two is the machine's capability (a lower one means something else was running). */
typedef struct {
    double start, end, best;
} Peak;

/* Which kernel ran each conv layer's forward pass: oneDNN (its implementation name) where
 * cpu_conv_dnnl takes the geometry, else cpu_conv.c's direct depthwise or im2col + GEMM paths
 * (the dispatch order of cpu_conv_forward). The backward pass always runs cpu_conv.c. */
static void print_conv_paths(const Options *o, const Result *res, int n)
{
    const char *dnnl = cpu_conv_dnnl_version();
    printf("\nconv forward paths (%s; FOCUSBENCH_CONV_DNNL=0 turns oneDNN off):\n",
           dnnl ? dnnl : "built without oneDNN");
    for (int i = 0; i < n; i++) {
        const LayerSpec *L = res[i].layer;
        if (L->kind != LAYER_CONV || strcmp(res[i].pass, "fwd") != 0)
            continue;
        ConvGeom g = {.N = o->batch, .C = L->cin, .K = L->cout, .T = 1, .H = L->h, .W = L->w, .kt = 1,
                      .kh = L->ksize, .kw = L->ksize, .To = 1, .Ho = conv_out_size(L->h, L->ksize, L->stride, L->pad),
                      .Wo = conv_out_size(L->w, L->ksize, L->stride, L->pad), .st = 1, .sh = L->stride,
                      .sw = L->stride, .ph = L->pad, .pw = L->pad, .dt = 1, .dh = 1, .dw = 1, .groups = L->groups};
        char impl[64];
        if (o->reference)
            printf("  %-22s reference loops\n", L->name);
        else if (cpu_conv_dnnl_impl(&g, true, impl, sizeof impl))
            printf("  %-22s oneDNN %s (NCHW <-> blocked reorders included in the time)\n", L->name, impl);
        else if (L->groups == L->cin && L->cout == L->cin)
            printf("  %-22s direct depthwise kernel\n", L->name);
        else
            printf("  %-22s im2col + GEMM (%s)\n", L->name, blas_core_name());
    }
}

static void print_table(const Options *o, const Result *res, int n, const Peak *peak)
{
    printf(ROW_FMT_HEAD, "layer", "shape", "pass", "median_ms", "iqr_ms", "min_ms", "runs", "GFLOP/s", "%peak");
    for (int i = 0; i < n; i++) {
        char shape[96];
        layer_shape_str(res[i].layer, o->batch, shape, sizeof shape);
        double gf = result_gflops(&res[i]);
        printf(ROW_FMT, res[i].layer->name, shape, res[i].pass, res[i].st.median_ms,
               res[i].st.p75_ms - res[i].st.p25_ms, res[i].st.min_ms, res[i].st.runs, gf, 100.0 * gf / peak->best);
    }

    /* Per summary group: Σ 2·MACs / Σ median, the rate of running the group's layers once each. */
    printf("\nsummary (each group's layers run once: sum of 2 x MACs / sum of medians):\n");
    bool done[2 * N_LAYERS] = {false};
    for (int i = 0; i < n; i++) {
        if (done[i])
            continue;
        double flops = 0, seconds = 0;
        int layers = 0;
        for (int j = i; j < n; j++)
            if (!done[j] && strcmp(res[j].layer->group, res[i].layer->group) == 0 &&
                strcmp(res[j].pass, res[i].pass) == 0) {
                flops += 2.0 * res[j].macs, seconds += res[j].st.median_ms * 1e-3, layers++;
                done[j] = true;
            }
        double gf = flops / seconds * 1e-9;
        printf("  %-24s %s %2d layer(s) %9.1f GFLOP/s %6.1f%% of peak\n", res[i].layer->group, res[i].pass, layers,
               gf, 100.0 * gf / peak->best);
    }
}

/* The CSV's own columns (bench/csv_out.h adds schema_version before them and the environment,
 * flop_convention and blas_core included, after them). scripts/bench_ops_torch.py writes the
 * same list, so `--compare` and `focusbench regress` can read either file. */
static const char *const CSV_COLUMNS[] = {
    "layer", "net", "group", "kind",
    "shape",                   /* layer_shape_str: "N16 64->64 56x56 k3 s1 g1" / "M256 2048->4096" */
    "batch", "cin", "cout", "h", "w", "ksize", "stride", "pad", "groups",
    "rows",                    /* linear: rows of x (batch x 16 frames); 0 for conv */
    "macs",                    /* of this pass (backward: 2 x forward), bias not counted */
    "pass", "path", "threads", "runs",
    "latency_ms_median", "latency_ms_p25", "latency_ms_p75", "latency_ms_iqr", "latency_ms_min",
    "gflops_per_s",            /* 2 x macs / latency_ms_median: 1 MAC = 2 FLOP */
    "peak_gflops_per_s",       /* the higher of the two FMA peak measurements */
    "pct_of_peak",             /* 100 x gflops_per_s / peak_gflops_per_s */
    "peak_start_gflops_per_s", "peak_end_gflops_per_s",
    "peak_isa",                /* cpu_fma_isa(): the FMA kernel's instruction set */
};
enum { N_CSV_COLUMNS = (int)(sizeof CSV_COLUMNS / sizeof CSV_COLUMNS[0]) };

/* Writes the rows through bench/csv_out.h (atomically: FILE.tmp, renamed when complete). Called
 * after set_threads, so the environment's cpu_threads is the thread count the layers ran on. The
 * seed column stays empty: the inputs are a fixed pattern (host_tensor), not a seeded draw; the
 * clock columns too: they are the GPU's SM/memory clocks, which a CPU run does not see. */
static bool write_csv(const char *path, const Options *o, const Result *res, int n, const Peak *peak)
{
    CsvEnv env;
    csv_env_init(&env, "cpu", o->argc, o->argv);
    char err[CSV_ERR_LEN];
    CsvOut *w = csv_out_open(path, CSV_COLUMNS, N_CSV_COLUMNS, &env, err, sizeof err);
    if (!w) {
        fprintf(stderr, "bench-ops: %s\n", err);
        return false;
    }
    for (int i = 0; i < n; i++) {
        const LayerSpec *L = res[i].layer;
        const Stats *st = &res[i].st;
        double gf = result_gflops(&res[i]);
        char shape[96];
        layer_shape_str(L, o->batch, shape, sizeof shape);
        csv_out_str(w, L->name);
        csv_out_str(w, L->net);
        csv_out_str(w, L->group);
        csv_out_str(w, L->kind == LAYER_CONV ? "conv2d" : "linear");
        csv_out_str(w, shape);
        csv_out_int(w, o->batch);
        csv_out_int(w, L->cin);
        csv_out_int(w, L->cout);
        csv_out_int(w, L->h);
        csv_out_int(w, L->w);
        csv_out_int(w, L->ksize);
        csv_out_int(w, L->stride);
        csv_out_int(w, L->pad);
        csv_out_int(w, L->groups);
        csv_out_int(w, L->kind == LAYER_LINEAR ? (long long)o->batch * L->rows_per_sample : 0);
        csv_out_int(w, llround(res[i].macs)); /* an integer count, exact in a double */
        csv_out_str(w, res[i].pass);
        csv_out_str(w, o->reference ? "reference" : "fast");
        csv_out_int(w, o->threads);
        csv_out_int(w, st->runs);
        csv_out_double(w, st->median_ms);
        csv_out_double(w, st->p25_ms);
        csv_out_double(w, st->p75_ms);
        csv_out_double(w, st->p75_ms - st->p25_ms);
        csv_out_double(w, st->min_ms);
        csv_out_double(w, gf);
        csv_out_double(w, peak->best);
        csv_out_double(w, 100.0 * gf / peak->best);
        csv_out_double(w, peak->start);
        csv_out_double(w, peak->end);
        csv_out_str(w, cpu_fma_isa());
        csv_out_end_row(w); /* a wrong value count is sticky: commit reports it */
    }
    if (!csv_out_commit(w, err, sizeof err)) {
        fprintf(stderr, "bench-ops: %s\n", err);
        return false;
    }
    return true;
}

int cmd_bench_ops(int argc, char **argv)
{
    Options o;
    int rc = parse_options(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;

    int selected = 0;
    for (int i = 0; i < N_LAYERS; i++)
        selected += filter_matches(o.filter, LAYERS[i].name);
    if (selected == 0) {
        fprintf(stderr, "bench-ops: no layer name contains '%s' (see focusbench bench-ops --list-layers)\n",
                o.filter);
        return 2;
    }
    if (o.list_layers) {
        print_layer_list(stdout, &o);
        return 0;
    }

    set_threads(o.threads);
#if !HAVE_OPENMP
    if (o.threads > 1)
        fprintf(stderr, "bench-ops: built without OpenMP: the FMA peak and direct kernels use 1 thread\n");
#endif
    fprintf(stderr, "bench-ops: measuring the fp32 FMA peak on %d thread(s) for %.2f s...\n", o.threads,
            o.peak_time);
    Peak peak = {.start = cpu_fma_peak_gflops(o.threads, o.peak_time)};
    if (o.peak_only) {
        printf("peak_gflops=%.3f isa=%s lanes=%d chains=%d threads=%d\n", peak.start, cpu_fma_isa(),
               cpu_fma_lanes(), cpu_fma_chains(), o.threads);
        return 0;
    }

    /* Every buffer the timing loop touches is allocated here, before any timed region. */
    int cap = o.repeats > 100000 ? o.repeats : 100000;
    double *samples = malloc((size_t)cap * sizeof *samples); /* (cap) seconds per timed run */
    Result results[2 * N_LAYERS];
    int n_results = 0;
    if (!samples) {
        fprintf(stderr, "bench-ops: out of memory\n");
        return 1;
    }

    int done = 0;
    for (int i = 0; i < N_LAYERS && rc == 0; i++) {
        const LayerSpec *L = &LAYERS[i];
        if (!filter_matches(o.filter, L->name))
            continue;
        done++;
        char shape[96];
        layer_shape_str(L, o.batch, shape, sizeof shape);
        for (int pass = 0; pass < (o.backward ? 2 : 1); pass++) {
            bool backward = pass == 1;
            Result *r = &results[n_results];
            *r = (Result){.layer = L, .pass = backward ? "bwd" : "fwd",
                          .macs = layer_macs(L, o.batch) * (backward ? 2.0 : 1.0)};
            fprintf(stderr, "bench-ops: [%d/%d] %s %s %s...", done, selected, L->name, shape, r->pass);
            fflush(stderr);
            char err[CTX_ERROR_LEN + 128];
            if (!time_layer(&o, L, backward, samples, cap, &r->st, err, sizeof err)) {
                fprintf(stderr, " failed\nbench-ops: %s (%s): %s\n", L->name, r->pass, err);
                rc = 1;
                break;
            }
            fprintf(stderr, " %.3f ms, %.1f GFLOP/s\n", r->st.median_ms, result_gflops(r));
            n_results++;
        }
    }
    free(samples);
    if (rc != 0)
        return rc;

    fprintf(stderr, "bench-ops: measuring the fp32 FMA peak again...\n");
    peak.end = cpu_fma_peak_gflops(o.threads, o.peak_time);
    peak.best = peak.start > peak.end ? peak.start : peak.end;

    char model[256];
    cpu_model(model, sizeof model);
    printf("focusbench bench-ops %s (git %s): batch %d, %d thread(s), %s path\n", FOCUSBENCH_VERSION,
           version_git_commit(), o.batch, o.threads,
           o.reference ? "REFERENCE (plain loops)" : "fast (the CPU backend's default kernels)");
    printf("cpu: %s; OpenBLAS kernels: %s", model, blas_core_name());
    if (blas_overridden_core())
        printf(" (OPENBLAS_CORETYPE=%s overridden: this CPU has AVX-512)", blas_overridden_core());
    printf("\n");
    printf("fp32 FMA peak: %.1f GFLOP/s (%s, %d lanes x %d chains, %d thread(s); best of 10 repeats, measured "
           "before (%.1f) and after (%.1f) the layers)\n",
           peak.best, cpu_fma_isa(), cpu_fma_lanes(), cpu_fma_chains(), o.threads, peak.start, peak.end);
    if (fabs(peak.start - peak.end) > 0.1 * peak.best)
        printf("warning: the two peak measurements differ by %.0f%%: other work was running on this machine, "
               "so the timings below are noisy\n",
               100.0 * fabs(peak.start - peak.end) / peak.best);
    printf("GFLOP/s = 2 x MACs / median time; MACs of conv/linear, bias not counted (%s)\n", FLOP_CONVENTION);
    printf("timing: %d warm-up run(s), then >= %d runs and >= %.2f s per layer; arenas frozen while timing\n\n",
           o.warmup, o.repeats, o.min_time);
    print_table(&o, results, n_results, &peak);
    print_conv_paths(&o, results, n_results);
    fflush(stdout);

    if (o.csv_path && !write_csv(o.csv_path, &o, results, n_results, &peak))
        return 1;
    return 0;
}
