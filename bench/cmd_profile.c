/* cmd_profile.c — `focusbench profile`: latency, throughput and where the time goes, for a
 * method on the CPU or a GPU.
 *
 * Owns: the command's options, building the model with random weights in eval mode, a random
 * normalised clip batch already on the device, planning and freezing the arenas (nothing is
 * allocated while timing), and for each batch size:
 *   - eager latency: the whole forward pass timed with the host clock on the CPU, with CUDA
 *     events on the backend's stream on a GPU (bench/latency.h's repeat rule: warm-up, then until
 *     a minimum count AND a minimum time); throughput = batch / median latency;
 *   - CUDA-graph latency (GPU): the same pass captured once and replayed (kernels/cuda/
 *     cuda_graph.h); the replay's output is checked bit for bit against the eager pass's;
 *   - the per-component split (glance, policies, crop, focus, classifier): on the CPU the host
 *     clock charged to the component running whenever the model's cost scope changes
 *     (ctx->on_scope_change); on a GPU the CUPTI Activity API's kernel, copy and memset times,
 *     each attributed to the component whose scope launched it (kernels/cuda/cupti_activity.h),
 *     plus the top kernels. CUPTI runs after all timing, never during it (it perturbs timing);
 *   - hardware FLOPs per component (GPU): the CUPTI range profiler, one range per component,
 *     after the Activity trace (kernels/cuda/cupti_range.h; the HwFlopsResult block below);
 *   - the analytic GFLOPs per video (impl/uniadafocus.h uaf_flops, FLOP_CONVENTION) next to the
 *     achieved rate, the GPU clocks seen before and after each timed run (NVML), and the driver,
 *     CUDA, cuDNN, cuBLAS and CUPTI versions;
 * printed as tables and written as a schema-v1 CSV (bench/csv_out.h).
 *
 * CSV rows (one per measured thing; `level` tells them apart):
 *   level=pass       component "total": latency_ms_*, throughput, achieved rate (eager, graph)
 *   level=component  one component: time_ms_median / time_ms_iqr per pass (whole batch),
 *                    time_share_pct, gflops_per_video of that component
 *   level=kernel     one kernel within a component (GPU): time_ms_median per pass, launches
 *   level=hw_flops   one component or "total" (GPU, CUPTI range profiler, timing "cupti-range"):
 *                    gflops_per_video (analytic) next to the hw_* columns (README, "profile CSV")
 * For `focusbench regress`, latency rows compare on latency_ms_median (the default); every row
 * has time_ms_median (for pass rows, the latency median), so `--metric time_ms_median` compares
 * components and kernels too.
 *
 * Components of Uni-AdaFocus (scopes of impl/uniadafocus.c, by stage of the forward pass):
 *   glance      frame gather + global CNN (MobileNetV2)            uaf_glance
 *   policies    spatial and temporal policy, the action interpolation and the focus-frame
 *               sampler                                            uaf_policies, uaf_select_focus
 *   crop        frame gather, patch boxes and the deformable crop  uaf_focus, before the local CNN
 *   focus       local CNN (ResNet) on the patches                  scope "focus"
 *   classifier  MLPs, running max and the exit heads              scope "classifier"
 * Other methods (baselines/registry.h) are split by their top-level scopes.
 */
#include <float.h>
#include <inttypes.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/registry.h"
#include "bench/cli.h"
#include "bench/csv_out.h"
#include "bench/latency.h"
#include "bench/parse_num.h"
#include "impl/method.h"
#include "impl/presets.h"
#include "impl/uniadafocus.h"
#include "kernels/backend.h"
#include "kernels/context.h"
#include "kernels/params.h"
#include "kernels/rng.h"
#include "kernels/tape.h"
#if HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_graph.h"
#include "kernels/cuda/cuda_timing.h"
#include "kernels/cuda/cupti_activity.h"
#include "kernels/cuda/cupti_range.h"
#endif

enum { MAX_BATCHES = 16, MODE_EAGER = 1, MODE_GRAPH = 2, MODE_TRAIN = 4, MAX_KERNEL_KEYS = 4096, NOTE_LEN = CTX_ERROR_LEN + 256 };

static const char *const KNOWN_COMPONENTS[] = {"glance", "policies", "crop", "focus", "classifier"};
enum { N_KNOWN = 5 };

/* ---- options ----------------------------------------------------------------------------------- */

typedef struct {
    const char *method, *preset, *device, *precision, *csv;
    int batches[MAX_BATCHES];
    int n_batches;
    int modes;
    bool no_cupti, no_fold;
    bool no_autotune; /* --no-autotune: the heuristics' first cuDNN plan, untimed */
    bool no_conv_custom; /* --no-custom-convs: cuDNN for the fp32 1x1 and stem convs too */
    bool nondeterministic; /* --nondeterministic: cuDNN engines that use atomics are acceptable */
    bool train; /* --train: time training steps (forward + backward of the training loss) */
    uint64_t seed;
    LatencyPlan plan;
    int split_repeats, top_kernels;
    bool is_uaf;
    UafConfig cfg; /* Uni-AdaFocus: the preset with overrides */
} ProfileArgs;

static void usage(FILE *out)
{
    char names[512];
    fprintf(out,
            "usage: focusbench profile --preset P [--method M] [--device cpu|cuda] [--precision fp32|tf32|bf16]\n"
            "                          [--batch 1,8,32] [--mode eager|graph|both] [--no-cupti] [--repeats N]\n"
            "                          [--min-time S] [--max-time S] [--warmup N] [--split-repeats N]\n"
            "                          [--top-kernels N] [--no-fold] [--no-autotune] [--no-custom-convs] [--nondeterministic]\n"
            "                          [--train] [--seed N]\n"
            "                          [--csv FILE] [size overrides]\n\n"
            "Latency and throughput of a method in eval mode with random weights, on a random normalised clip\n"
            "batch already on the device, with the arenas planned and frozen (nothing is allocated while\n"
            "timing). For each batch size: the forward pass's latency (median, p90, p99, IQR) and throughput\n"
            "(videos/s = batch / median), eager and, on a GPU, replayed as a CUDA graph; where the time goes\n"
            "per component (glance, policies, crop, focus, classifier) and, on a GPU, per kernel (CUPTI\n"
            "Activity API); the analytic GFLOPs per video next to the achieved rate; GPU clocks and library\n"
            "versions. Tables on stdout, every number in the CSV.\n\n"
            "  --method M        uniadafocus (default) or a method of baselines/registry.h (tsn, frameexit, ...)\n"
            "  --preset P        Uni-AdaFocus: %s;\n"
            "                    other methods: one of their presets (default: the method's default preset)\n"
            "  --device D        cpu (default; host clock) or cuda (CUDA events on the backend's stream)\n"
            "  --precision P     fp32 (default), tf32 or bf16 (cuda only): the math of convs and GEMMs\n"
            "  --batch LIST      comma-separated batch sizes (default 1)\n"
            "  --mode M          eager, graph (cuda only) or both (default: both on cuda, eager on cpu)\n"
            "  --no-cupti        no CUPTI: timing only, no per-kernel or per-component GPU split\n"
            "  --repeats N       at least N timed passes per measurement (default 20) ...\n"
            "  --min-time S      ... and at least S seconds of them (default 1)\n"
            "  --max-time S      stop a measurement after S seconds even if below --repeats (default 120)\n"
            "  --warmup N        untimed passes before each measurement (default 3)\n"
            "  --split-repeats N passes for the per-component split (median over them; default 5)\n"
            "  --top-kernels N   kernels listed per batch size (default 10; all are in the CSV)\n"
            "  --no-fold         keep the backbones' batch norms (default: folded into the convs for inference)\n"
            "  --no-autotune     cuda: run the cuDNN heuristics' first plan of each conv shape (default: time up\n"
            "                    to 24 candidates (fp32; 8 at tf32/bf16) on the planning pass and keep the\n"
            "                    fastest, as cudnn.benchmark)\n"
            "  --no-custom-convs cuda, fp32: every conv on cuDNN (default: the 1x1 and the stem convs on\n"
            "                    focusbench's kernels with the bias, residual and activation inside, per shape\n"
            "                    where they timed faster than cuDNN plus its epilogue pass)\n"
            "  --nondeterministic cuda: cuDNN engines noted nondeterministic (atomics: the last bits vary run to\n"
            "                    run) may run, as under PyTorch's default cudnn.deterministic = False (default:\n"
            "                    deterministic engines only; the CSV's pass rows say which)\n"
            "  --train           time training steps instead: the method's training loss (train mode: batch-norm\n"
            "                    batch statistics, dropout, every training branch) and its backward pass, gradients\n"
            "                    zeroed before each step (not timed), no optimizer update; eager only, unfolded\n"
            "                    model, the preset's sizes (size overrides are not applied); the CUPTI split charges\n"
            "                    the forward to its components and the whole backward pass to 'backward' (no\n"
            "                    hardware FLOP counts)\n"
            "  --seed N          weights and clip seed (default 0)\n"
            "  --csv FILE        write every measurement as CSV (schema v1, written atomically)\n\n"
            "Uni-AdaFocus size overrides of the preset:\n",
            uaf_preset_names(names, sizeof names));
    const char *name, *help;
    for (int i = 0; uaf_config_knob(i, &name, &help); i++)
        fprintf(out, "  --%-20s %s\n", name, help);
    fprintf(out, "\nexamples:\n"
                 "  focusbench profile --preset synth-tiny --batch 1,4\n"
                 "  focusbench profile --preset actnet-p128 --device cuda --precision bf16 --batch 1,8,32 --csv p.csv\n"
                 "Compare two runs with: focusbench regress --baseline A.csv --current B.csv "
                 "[--metric time_ms_median]\n");
}

static bool parse_seconds(const char *s, double *out) { return parse_double_in(s, 0.0, DBL_MAX, out); }

static bool parse_batches(const char *s, ProfileArgs *a)
{
    a->n_batches = 0;
    const char *p = s;
    while (*p) {
        char item[32];
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof item || a->n_batches == MAX_BATCHES)
            return false;
        memcpy(item, p, n);
        item[n] = '\0';
        if (!parse_int_in(item, 1, 65536, &a->batches[a->n_batches]))
            return false;
        a->n_batches++;
        p += n;
        if (*p == ',' && *++p == '\0')
            return false;
    }
    return a->n_batches > 0;
}

#define USAGE_ERR(...)                                                                                       \
    do {                                                                                                     \
        fprintf(stderr, "focusbench profile: " __VA_ARGS__);                                                 \
        fprintf(stderr, " (see focusbench profile --help)\n");                                                \
        return 2;                                                                                            \
    } while (0)

/* 0 parsed, 2 usage error (printed), -1 --help. */
static int parse_args(int argc, char **argv, ProfileArgs *a)
{
    memset(a, 0, sizeof *a);
    a->method = "uniadafocus";
    a->device = "cpu";
    a->precision = "fp32";
    a->batches[0] = 1;
    a->n_batches = 1;
    a->plan = latency_plan_default();
    a->split_repeats = 5;
    a->top_kernels = 10;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return -1;
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--method") == 0)
            a->method = argv[i + 1];
        else if (strcmp(argv[i], "--preset") == 0)
            a->preset = argv[i + 1];
    }
    a->is_uaf = strcmp(a->method, "uniadafocus") == 0;
    if (a->is_uaf) {
        if (!a->preset)
            USAGE_ERR("--preset P is required for uniadafocus");
        /* the registry's name of a Uni-AdaFocus preset works too */
        if (strncmp(a->preset, "uniadafocus-", 12) == 0 && uaf_preset_find(a->preset + 12))
            a->preset += 12;
        const UafPreset *p = uaf_preset_find(a->preset);
        if (!p) {
            char names[512];
            USAGE_ERR("unknown uniadafocus preset '%s' (known: %s)", a->preset, uaf_preset_names(names, sizeof names));
        }
        a->cfg = p->cfg;
    } else {
        const char *name = a->preset ? a->preset : a->method;
        const MethodPresetInfo *info = method_preset_find(name);
        char ids[512];
        if (!info)
            USAGE_ERR("unknown method or preset '%s' (methods: %s; `focusbench train --help` lists every preset)", name,
                      method_id_list(ids, sizeof ids));
        if (strcmp(info->id, a->method) != 0)
            USAGE_ERR("preset '%s' belongs to method '%s', not '%s'", name, info->id, a->method);
    }
    const char *mode = NULL;
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--no-cupti") == 0) {
            a->no_cupti = true;
            continue;
        }
        if (strcmp(opt, "--no-fold") == 0) {
            a->no_fold = true;
            continue;
        }
        if (strcmp(opt, "--nondeterministic") == 0) {
            a->nondeterministic = true;
            continue;
        }
        if (strcmp(opt, "--no-autotune") == 0) {
            a->no_autotune = true;
            continue;
        }
        if (strcmp(opt, "--no-custom-convs") == 0) {
            a->no_conv_custom = true;
            continue;
        }
        if (strcmp(opt, "--train") == 0) {
            a->train = true;
            continue;
        }
        if (strncmp(opt, "--", 2) != 0)
            USAGE_ERR("unexpected argument '%s'", opt);
        if (i + 1 >= argc)
            USAGE_ERR("%s needs a value", opt);
        const char *val = argv[++i];
        if (strcmp(opt, "--method") == 0 || strcmp(opt, "--preset") == 0) {
            continue;
        } else if (strcmp(opt, "--device") == 0) {
            if (strcmp(val, "cpu") != 0 && strcmp(val, "cuda") != 0)
                USAGE_ERR("--device must be cpu or cuda, not '%s'", val);
            a->device = val;
        } else if (strcmp(opt, "--precision") == 0) {
            if (strcmp(val, "fp32") != 0 && strcmp(val, "tf32") != 0 && strcmp(val, "bf16") != 0)
                USAGE_ERR("--precision must be fp32, tf32 or bf16, not '%s'", val);
            a->precision = val;
        } else if (strcmp(opt, "--batch") == 0) {
            if (!parse_batches(val, a))
                USAGE_ERR("--batch wants up to %d comma-separated sizes in [1, 65536], e.g. 1,8,32 (got '%s')",
                          MAX_BATCHES, val);
        } else if (strcmp(opt, "--mode") == 0) {
            if (strcmp(val, "eager") != 0 && strcmp(val, "graph") != 0 && strcmp(val, "both") != 0)
                USAGE_ERR("--mode must be eager, graph or both, not '%s'", val);
            mode = val;
        } else if (strcmp(opt, "--repeats") == 0) {
            if (!parse_int_in(val, 1, 1000000, &a->plan.min_repeats))
                USAGE_ERR("--repeats wants an integer in [1, 1000000], not '%s'", val);
        } else if (strcmp(opt, "--min-time") == 0) {
            if (!parse_seconds(val, &a->plan.min_time_s))
                USAGE_ERR("--min-time wants seconds >= 0, not '%s'", val);
        } else if (strcmp(opt, "--max-time") == 0) {
            if (!parse_seconds(val, &a->plan.max_time_s))
                USAGE_ERR("--max-time wants seconds >= 0 (0: no limit), not '%s'", val);
        } else if (strcmp(opt, "--warmup") == 0) {
            if (!parse_int_in(val, 0, 100000, &a->plan.warmup))
                USAGE_ERR("--warmup wants an integer >= 0, not '%s'", val);
        } else if (strcmp(opt, "--split-repeats") == 0) {
            if (!parse_int_in(val, 1, 1000, &a->split_repeats))
                USAGE_ERR("--split-repeats wants an integer in [1, 1000], not '%s'", val);
        } else if (strcmp(opt, "--top-kernels") == 0) {
            if (!parse_int_in(val, 0, 100000, &a->top_kernels))
                USAGE_ERR("--top-kernels wants an integer >= 0, not '%s'", val);
        } else if (strcmp(opt, "--seed") == 0) {
            if (!parse_u64(val, &a->seed))
                USAGE_ERR("--seed wants a non-negative integer, not '%s'", val);
        } else if (strcmp(opt, "--csv") == 0) {
            a->csv = val;
        } else if (a->is_uaf) {
            int r = uaf_config_override(&a->cfg, opt, val, err, sizeof err);
            if (r < 0)
                USAGE_ERR("%s", err);
            if (r == 0)
                USAGE_ERR("unknown option '%s'", opt);
        } else {
            USAGE_ERR("unknown option '%s' (size overrides apply to uniadafocus only)", opt);
        }
    }
    bool cuda = strcmp(a->device, "cuda") == 0;
    if (!cuda && strcmp(a->precision, "fp32") != 0)
        USAGE_ERR("--precision %s needs --device cuda (the CPU computes in fp32)", a->precision);
    if (!mode)
        a->modes = cuda ? MODE_EAGER | MODE_GRAPH : MODE_EAGER;
    else
        a->modes = strcmp(mode, "eager") == 0   ? MODE_EAGER
                   : strcmp(mode, "graph") == 0 ? MODE_GRAPH
                                                : MODE_EAGER | MODE_GRAPH;
    if (!cuda && (a->modes & MODE_GRAPH))
        USAGE_ERR("--mode %s needs --device cuda (CUDA graphs)", mode);
    if (!cuda && a->nondeterministic)
        USAGE_ERR("--nondeterministic needs --device cuda (it chooses among cuDNN's engines)");
    if (!cuda && a->no_conv_custom)
        USAGE_ERR("--no-custom-convs needs --device cuda (it chooses between CUDA kernels and cuDNN)");
    if (a->train) {
        if (mode && strcmp(mode, "eager") != 0)
            USAGE_ERR("--train times eager training steps; --mode %s is not available with it", mode);
        a->modes = MODE_EAGER;
        a->no_fold = true; /* training needs the batch norms */
    }
    if (a->plan.max_repeats < a->plan.min_repeats)
        a->plan.max_repeats = a->plan.min_repeats;
    if (a->is_uaf && !uaf_config_check(&a->cfg, err, sizeof err))
        USAGE_ERR("%s", err);
    return 0;
}

typedef enum {
    STAGE_NONE = 0,
    STAGE_GLANCE,
    STAGE_POLICIES,
    STAGE_SELECT,
    STAGE_FOCUS,
    STAGE_BACKWARD, /* --train: the backward pass (the tape keeps no scopes: one component) */
} Stage;
typedef struct Model Model;

/* The component of work running in `stage` under cost scope `scope` ("focus/layer3", "" …):
 * the scope's first segment, with both policies under "policies"; work outside any scope goes to
 * its Uni-AdaFocus stage (the crop is the unscoped work of uaf_focus), else to "other"; a training
 * step's backward pass is "backward" whatever the scope. */
static void component_of(Stage stage, const char *scope, char *out, size_t cap)
{
    if (stage == STAGE_BACKWARD) {
        snprintf(out, cap, "backward");
        return;
    }
    size_t n = strcspn(scope, "/");
    char top[CTX_SCOPE_NAME];
    snprintf(top, sizeof top, "%.*s", (int)n, scope);
    const char *c = top;
    if (strcmp(top, "spatial_policy") == 0 || strcmp(top, "temporal_policy") == 0)
        c = "policies";
    else if (top[0] == '\0')
        c = stage == STAGE_GLANCE ? "glance"
            : stage == STAGE_POLICIES || stage == STAGE_SELECT ? "policies"
            : stage == STAGE_FOCUS ? "crop" : "other";
    snprintf(out, cap, "%.*s", (int)(cap - 1), c); /* a long scope name is cut to the component width */
}

/* ---- the model --------------------------------------------------------------------------------- */

struct Model {
    bool is_uaf;
    UafModel *uaf;
    Method *method;
    ParamSet *ps; /* the model's parameters (owned by uaf / method) */
    int frames, frame_size, classes;
    char id[64], preset[64], describe[256];
    double gflops_total;               /* per video, paper convention */
    int n_cg;                          /* analytic GFLOPs per video of each component */
    char cg_names[COMPONENT_MAX][COMPONENT_NAME];
    double cg[COMPONENT_MAX];
    bool folded;
    UafOutput uaf_out;                 /* the last pass's outputs (Uni-AdaFocus) */
};

static void model_destroy(Model *m)
{
    if (m->uaf)
        uaf_destroy(m->uaf);
    if (m->method)
        method_destroy(m->method);
    memset(m, 0, sizeof *m);
}

/* Analytic GFLOPs per video of each component of a registry method: its forward pass on the meta
 * backend (one video), the cost counters summed by component. */
static bool meta_components(const char *name, uint64_t seed, Model *m, char *err, size_t cap)
{
    Method *mm = method_create(name, NULL, BACKEND_META, false, seed, err, cap);
    Ctx *ctx = mm ? ctx_create(BACKEND_META, seed) : NULL;
    bool ok = false;
    if (mm && !ctx)
        snprintf(err, cap, "out of memory");
    if (ctx) {
        Tensor *clip = tensor_new(ctx, DTYPE_F32, 5, (int64_t[]){1, mm->frames, 3, mm->frame_size, mm->frame_size});
        ok = clip && mm->ops->forward_exits(ctx, mm, clip, NULL) && ctx_ok(ctx);
        if (!ok)
            snprintf(err, cap, "counting %s's cost on the meta backend: %s", name, ctx_error_message(ctx));
        for (int i = 0; ok && i < ctx->n_counters; i++) {
            char comp[COMPONENT_NAME];
            component_of(STAGE_NONE, ctx->counters[i].name, comp, sizeof comp);
            int k = 0;
            while (k < m->n_cg && strcmp(m->cg_names[k], comp) != 0)
                k++;
            if (k == m->n_cg) {
                if (k == COMPONENT_MAX)
                    continue;
                snprintf(m->cg_names[k], COMPONENT_NAME, "%s", comp);
                m->cg[k] = 0;
                m->n_cg++;
            }
            m->cg[k] += ctx->counters[i].macs / 1e9;
        }
    }
    ctx_destroy(ctx);
    if (mm)
        method_destroy(mm);
    return ok;
}

static bool model_build(const ProfileArgs *a, Model *m, char *err, size_t cap)
{
    memset(m, 0, sizeof *m);
    if (a->is_uaf && !a->train) {
        const UafConfig *c = &a->cfg;
        m->is_uaf = true;
        UafFlops fl;
        if (!uaf_flops(c, &fl, err, cap))
            return false;
        m->gflops_total = fl.total / 1e9;
        const double g[N_KNOWN] = {fl.global_cnn / 1e9, (fl.spatial_policy + fl.temporal_policy) / 1e9, 0,
                                   (double)c->focus * fl.local_patch / 1e9, fl.classifier / 1e9};
        for (int i = 0; i < N_KNOWN; i++) {
            snprintf(m->cg_names[i], COMPONENT_NAME, "%s", KNOWN_COMPONENTS[i]);
            m->cg[i] = g[i];
        }
        m->n_cg = N_KNOWN;
        m->uaf = uaf_create(c, BACKEND_CPU, false, err, cap);
        if (!m->uaf)
            return false;
        uaf_init(m->uaf, a->seed);
        if (!a->no_fold) {
            Ctx *cpu = ctx_create(BACKEND_CPU, a->seed);
            bool ok = cpu && uaf_fold_batch_norm(cpu, m->uaf);
            if (!ok)
                snprintf(err, cap, "folding the batch norms: %s", cpu ? ctx_error_message(cpu) : "out of memory");
            ctx_destroy(cpu);
            if (!ok)
                return false;
            m->folded = true;
        }
        m->ps = m->uaf->ps;
        m->frames = c->frames;
        m->frame_size = c->frame_size;
        m->classes = c->num_classes;
        snprintf(m->id, sizeof m->id, "uniadafocus");
        snprintf(m->preset, sizeof m->preset, "%s", a->preset);
        snprintf(m->describe, sizeof m->describe, "T %d, G %d, F %d, S %d, P %d, %d classes", c->frames, c->glance,
                 c->focus, c->frame_size, c->patch_size, c->num_classes);
        return true;
    }
    const char *name = a->preset ? a->preset : a->method;
    char uaf_name[96];
    if (a->is_uaf && a->preset) { /* --train: Uni-AdaFocus through the Method registry ("uniadafocus-<preset>") */
        snprintf(uaf_name, sizeof uaf_name, "uniadafocus-%s", a->preset);
        name = uaf_name;
    }
    m->method = method_create(name, NULL, BACKEND_CPU, a->train, a->seed, err, cap);
    if (!m->method)
        return false;
    if (a->train && !m->method->ops->train_loss) {
        snprintf(err, cap, "method '%s' has no training loss to time (--train)", m->method->id);
        return false;
    }
    if (strcmp(m->method->id, a->method) != 0) {
        snprintf(err, cap, "preset '%s' builds method '%s', not '%s'", name, m->method->id, a->method);
        return false;
    }
    double g[METHOD_MAX_EXITS];
    if (!m->method->ops->exit_gflops(m->method, g, err, cap))
        return false;
    m->gflops_total = g[m->method->n_exits - 1]; /* the full model: forward_exits runs every exit */
    if (!meta_components(name, a->seed, m, err, cap))
        return false;
    m->ps = m->method->ps;
    m->frames = m->method->frames;
    m->frame_size = m->method->frame_size;
    m->classes = m->method->classes;
    snprintf(m->id, sizeof m->id, "%s", m->method->id);
    snprintf(m->preset, sizeof m->preset, "%s", m->method->preset);
    snprintf(m->describe, sizeof m->describe, "T %d, S %d, %d classes, exits: %d", m->frames, m->frame_size,
             m->classes, m->method->n_exits);
    return true;
}

/* ---- attributing time to components ------------------------------------------------------------ */


typedef struct {
    Stage stage;
    bool cpu_clock; /* charge host time to components */
    bool cupti;     /* label launches for CUPTI */
    struct CuptiRange *ranges; /* GPU hardware FLOPs: one CUPTI range per component (HwFlopsResult) */
    ComponentClock cc;
    char component[COMPONENT_NAME];
} Attribution;

static const char *current_scope(const Ctx *ctx)
{
    return ctx->scope_depth > 0 ? ctx->counters[ctx->scope_stack[ctx->scope_depth - 1]].name : "";
}

static void attribution_update(Attribution *at, const Ctx *ctx)
{
    char comp[COMPONENT_NAME];
    const char *scope = current_scope(ctx);
    component_of(at->stage, scope, comp, sizeof comp);
    if (at->cpu_clock && strcmp(comp, at->component) != 0)
        component_clock_switch(&at->cc, comp);
    snprintf(at->component, sizeof at->component, "%s", comp);
#if HAVE_CUDA
    if (at->cupti)
        cupti_activity_set_label(comp, scope[0] ? scope : comp);
    if (at->ranges) /* a no-op while the component's range is open */
        cupti_range_enter(at->ranges, comp);
#endif
}

static void on_scope_change(Ctx *ctx, void *user) { attribution_update(user, ctx); }

static void set_stage(Attribution *at, Ctx *ctx, Stage s)
{
    if (!at)
        return;
    at->stage = s;
    attribution_update(at, ctx);
}

/* One forward pass; returns its output tensor (the prediction / the exit logits) or NULL. With
 * `at`, the stages of Uni-AdaFocus are run one by one (exactly as uaf_forward chains them) so
 * work outside any cost scope is charged to its stage. */
static Tensor *model_forward(Ctx *ctx, Model *m, Tensor *video, Attribution *at)
{
    if (!m->is_uaf) {
        set_stage(at, ctx, STAGE_NONE);
        Tensor *y = m->method->ops->forward_exits(ctx, m->method, video, NULL);
        return ctx_ok(ctx) ? y : NULL;
    }
    UafOutput *out = &m->uaf_out;
    if (!at)
        return uaf_forward(ctx, m->uaf, video, NULL, out) ? out->focus.cls.prediction : NULL;
    set_stage(at, ctx, STAGE_GLANCE);
    bool ok = uaf_glance(ctx, m->uaf, video, NULL, out);
    set_stage(at, ctx, STAGE_POLICIES);
    ok = ok && uaf_policies(ctx, m->uaf, out);
    set_stage(at, ctx, STAGE_SELECT);
    ok = ok && uaf_select_focus(ctx, m->uaf, NULL, out);
    set_stage(at, ctx, STAGE_FOCUS);
    Tensor *acts[1] = {out->actions};
    ok = ok && uaf_focus(ctx, m->uaf, video, out->focus_idx, acts, 1, out->glance_pooled, NULL, &out->focus);
    return ok ? out->focus.cls.prediction : NULL;
}

/* ---- results ----------------------------------------------------------------------------------- */

typedef struct {
    int batch, mode;
    bool measured;
    char note[NOTE_LEN];
    LatencyStats st;
    LatencyRunInfo info;
    double clk_min, clk_max, mem_clk; /* MHz seen before/after (NaN unknown) */
    char reasons[160];
    size_t graph_nodes;
    int graph_matches; /* graph: 1 replay output == eager output bit for bit, 0 no, -1 not checked */
} TimingResult;

typedef struct {
    int name;  /* cupti name id */
    int comp;  /* index into SplitResult names */
    double *per_pass; /* [split_repeats] ms */
    long launches;
    LatencyStats st;
} KernelStat;

typedef struct {
    int batch;
    bool measured;
    char timing[32]; /* "host-clock" or "cupti-kernels" */
    char note[NOTE_LEN];
    int n_comp;
    char names[COMPONENT_MAX][COMPONENT_NAME];
    LatencyStats st[COMPONENT_MAX];   /* per pass, ms */
    LatencyStats busy;                /* GPU: all attributed device time per pass */
    KernelStat *kernels;
    int n_kernels;
    char (*kernel_names)[160];        /* [n_kernels] display names */
} SplitResult;

static int comp_find_or_add(SplitResult *s, const char *name)
{
    for (int i = 0; i < s->n_comp; i++)
        if (strcmp(s->names[i], name) == 0)
            return i;
    if (s->n_comp == COMPONENT_MAX)
        return COMPONENT_MAX - 1;
    snprintf(s->names[s->n_comp], COMPONENT_NAME, "%s", name);
    return s->n_comp++;
}

static void split_free(SplitResult *s)
{
    for (int i = 0; i < s->n_kernels; i++)
        free(s->kernels[i].per_pass);
    free(s->kernels);
    free(s->kernel_names);
    s->kernels = NULL;
    s->kernel_names = NULL;
    s->n_kernels = 0;
}

/* Order of printing: the known components first, in pipeline order, then the rest. */
static int comp_rank(const char *name)
{
    for (int i = 0; i < N_KNOWN; i++)
        if (strcmp(KNOWN_COMPONENTS[i], name) == 0)
            return i;
    return N_KNOWN;
}

static double comp_gflops(const Model *m, const char *name)
{
    for (int i = 0; i < m->n_cg; i++)
        if (strcmp(m->cg_names[i], name) == 0)
            return m->cg[i];
    return NAN;
}

/* ---- the runner -------------------------------------------------------------------------------- */

typedef struct {
    const ProfileArgs *a;
    Ctx *ctx;
    bool cuda;
    Model *model;
    Tensor video; /* a view of the first `batch` clips of the uploaded clip set */
    Tensor *last_out;
    uint64_t step; /* --train: the training step number (part of the RNG keys) */
#if HAVE_CUDA
    CudaTimer *timer;
    CudaGraph *graph;
    CudaClocks clocks;
#endif
} Runner;

static void arenas_freeze(Ctx *ctx, bool frozen)
{
    arena_freeze(&ctx->arena, frozen);
    arena_freeze(&ctx->host, frozen);
    arena_freeze(&ctx->scratch, frozen);
}

static bool run_eager(void *user, double *ms, char *err, size_t cap)
{
    Runner *r = user;
    ctx_begin_pass(r->ctx);
    bool ok;
    if (!r->cuda) {
        double t0 = latency_host_now();
        r->last_out = model_forward(r->ctx, r->model, &r->video, NULL);
        *ms = (latency_host_now() - t0) * 1e3;
        ok = r->last_out != NULL;
    } else {
#if HAVE_CUDA
        ok = cuda_timer_start(r->ctx, r->timer);
        r->last_out = ok ? model_forward(r->ctx, r->model, &r->video, NULL) : NULL;
        ok = r->last_out && cuda_timer_stop(r->ctx, r->timer, ms);
#else
        ok = false;
#endif
    }
    if (!ok)
        snprintf(err, cap, "%s", ctx_error_message(r->ctx));
    return ok;
}

/* --train: labels (B) i32 (0, 1, 2, ... mod classes) in this pass's arena. */
static Tensor *train_labels(Ctx *ctx, int64_t B, int classes)
{
    Tensor *t = tensor_new(ctx, DTYPE_I32, 1, (int64_t[]){B});
    if (!t || !t->data)
        return t;
    int32_t host[4096];
    if (B > 4096) {
        ctx_set_error(ctx, "profile --train: batch %lld is beyond 4096", (long long)B);
        return NULL;
    }
    for (int64_t i = 0; i < B; i++)
        host[i] = (int32_t)(i % classes);
    if (t->backend == BACKEND_CPU)
        memcpy(t->data, host, (size_t)B * sizeof *host);
    else if (ctx->ops && ctx->ops->copy_from_host)
        ctx->ops->copy_from_host(ctx, t, host);
    return ctx_ok(ctx) ? t : NULL;
}

/* The untimed start of a training step: a new pass, gradients zeroed, labels uploaded; the labels. */
static Tensor *train_prepare(Runner *r)
{
    Ctx *ctx = r->ctx;
    Method *mm = r->model->method;
    ctx_begin_pass(ctx);
#if HAVE_CUDA
    if (r->cuda)
        cuda_params_zero_grad(ctx, mm->ps);
    else
#endif
        params_zero_grad(mm->ps);
    return train_labels(ctx, r->video.shape[0], mm->classes);
}

/* The timed part of a training step: the training loss in train mode and its backward pass; the
 * loss is last_out. With `at` (the CUPTI split), the forward's work is charged to its scopes'
 * components and the backward's to "backward". */
static bool train_run(Runner *r, Tensor *labels, double *ms, Attribution *at)
{
    Ctx *ctx = r->ctx;
    Method *mm = r->model->method;
    double t0 = 0;
    bool ok = true;
#if HAVE_CUDA
    if (r->cuda)
        ok = cuda_timer_start(ctx, r->timer);
    else
#endif
        t0 = latency_host_now();
    ctx_set_training(ctx, true);
    set_stage(at, ctx, STAGE_NONE);
    Tensor *loss = ok ? mm->ops->train_loss(ctx, mm, &r->video, labels, ++r->step) : NULL;
    set_stage(at, ctx, STAGE_BACKWARD);
    ok = loss && tape_backward(ctx, loss);
    set_stage(at, ctx, STAGE_NONE);
    ctx_set_training(ctx, false);
#if HAVE_CUDA
    if (r->cuda)
        ok = ok && cuda_timer_stop(ctx, r->timer, ms);
    else
#endif
        *ms = (latency_host_now() - t0) * 1e3;
    r->last_out = ok ? loss : NULL;
    return ok && ctx_ok(ctx);
}

/* One training step: train_prepare (untimed), then train_run (timed). */
static bool train_step(Runner *r, double *ms)
{
    Tensor *labels = train_prepare(r);
    return labels && train_run(r, labels, ms, NULL);
}

static bool run_train(void *user, double *ms, char *err, size_t cap)
{
    Runner *r = user;
    bool ok = train_step(r, ms);
    if (!ok)
        snprintf(err, cap, "%s", ctx_error_message(r->ctx));
    return ok;
}

#if HAVE_CUDA
static bool run_graph(void *user, double *ms, char *err, size_t cap)
{
    Runner *r = user;
    bool ok = cuda_timer_start(r->ctx, r->timer) && cuda_graph_replay(r->graph) && cuda_timer_stop(r->ctx, r->timer, ms);
    if (!ok)
        snprintf(err, cap, "%s", ctx_error_message(r->ctx));
    return ok;
}

/* The captured pass: the clips are uploaded parameters (they outlive the graph), the prediction is
 * the graph's output 0. */
static bool graph_pass(Ctx *ctx, CudaGraph *g, void *user)
{
    Runner *r = user;
    r->last_out = model_forward(ctx, r->model, &r->video, NULL);
    cuda_graph_set_output(g, 0, r->last_out);
    return r->last_out != NULL;
}

static void clocks_note(Runner *r, TimingResult *t, const CudaClockSample *s)
{
    if (isfinite(s->sm_mhz)) {
        t->clk_min = isnan(t->clk_min) ? s->sm_mhz : fmin(t->clk_min, s->sm_mhz);
        t->clk_max = isnan(t->clk_max) ? s->sm_mhz : fmax(t->clk_max, s->sm_mhz);
    }
    if (isfinite(s->mem_mhz))
        t->mem_clk = s->mem_mhz;
    /* "gpu-idle" is expected in the instant between passes; anything else lowered the clocks */
    if (s->reasons_known && (s->reasons & ~(uint64_t)1)) {
        char buf[160];
        cuda_clock_reasons_str(s->reasons & ~(uint64_t)1, buf, sizeof buf);
        snprintf(t->reasons, sizeof t->reasons, "%s", buf);
    }
    (void)r;
}
#endif

/* One latency measurement of `mode` at the runner's batch. */
static void measure(Runner *r, int mode, TimingResult *t, double *samples, int cap)
{
    memset(t, 0, sizeof *t);
    t->batch = (int)r->video.shape[0];
    t->mode = r->a->train ? MODE_TRAIN : mode; /* a training step is an eager pass, reported as "train" */
    t->clk_min = t->clk_max = t->mem_clk = NAN;
    t->graph_matches = -1;
    snprintf(t->reasons, sizeof t->reasons, "%s", r->cuda ? "none" : "");
    char err[CTX_ERROR_LEN];
    LatencyRunFn fn = r->a->train ? run_train : run_eager;
#if HAVE_CUDA
    if (mode == MODE_GRAPH)
        fn = run_graph;
    if (r->cuda) {
        CudaClockSample s = cuda_clocks_read(&r->clocks);
        clocks_note(r, t, &s);
        if (!s.reasons_known)
            t->reasons[0] = '\0';
    }
#endif
    bool ok = latency_run(&r->a->plan, fn, r, NULL, NULL, samples, cap, &t->info, err, sizeof err);
#if HAVE_CUDA
    if (r->cuda) {
        CudaClockSample s = cuda_clocks_read(&r->clocks);
        clocks_note(r, t, &s);
    }
#endif
    if (!ok) {
        snprintf(t->note, sizeof t->note, "failed: %s", err);
        return;
    }
    t->measured = latency_stats(samples, t->info.n, &t->st);
    if (t->info.hit_max_time)
        snprintf(t->note, sizeof t->note, "stopped by --max-time after %d passes (wanted %d)", t->info.n,
                 r->a->plan.min_repeats);
}

/* Plans the arenas with one unfrozen pass at the runner's batch, then freezes them. */
static bool plan_pass(Runner *r, char *err, size_t cap)
{
    arenas_freeze(r->ctx, false);
    bool ok;
    if (r->a->train) {
        double ms;
        ok = train_step(r, &ms);
    } else {
        ctx_begin_pass(r->ctx);
        r->last_out = model_forward(r->ctx, r->model, &r->video, NULL);
        ok = r->last_out != NULL;
    }
#if HAVE_CUDA
    if (ok && r->cuda)
        ok = cuda_synchronize(r->ctx);
#endif
    if (!ok) {
        snprintf(err, cap, "%s", ctx_error_message(r->ctx));
        return false;
    }
    ctx_begin_pass(r->ctx); /* replaces grown arenas by one block of the high-water size */
    arenas_freeze(r->ctx, true);
    return true;
}

/* CPU per-component split: host clock at each scope change, split_repeats passes. */
static void split_cpu(Runner *r, SplitResult *s)
{
    int n = r->a->split_repeats;
    memset(s, 0, sizeof *s);
    s->batch = (int)r->video.shape[0];
    snprintf(s->timing, sizeof s->timing, "host-clock");
    double(*ms)[COMPONENT_MAX] = calloc((size_t)n, sizeof *ms); /* [pass][component] */
    double *col = malloc((size_t)n * sizeof *col);
    Attribution *at = calloc(1, sizeof *at);
    if (!ms || !col || !at) {
        snprintf(s->note, sizeof s->note, "out of memory");
        goto done;
    }
    at->cpu_clock = true;
    component_clock_init(&at->cc, NULL, NULL);
    r->ctx->on_scope_change = on_scope_change;
    r->ctx->on_scope_change_user = at;
    for (int p = 0; p < n; p++) {
        ctx_begin_pass(r->ctx);
        at->stage = r->model->is_uaf ? STAGE_GLANCE : STAGE_NONE;
        component_of(at->stage, "", at->component, sizeof at->component);
        component_clock_begin(&at->cc, at->component);
        Tensor *y = model_forward(r->ctx, r->model, &r->video, at);
        component_clock_end(&at->cc);
        if (!y) {
            snprintf(s->note, sizeof s->note, "failed: %s", ctx_error_message(r->ctx));
            goto done;
        }
        for (int c = 0; c < at->cc.n; c++)
            ms[p][c] = at->cc.ms[c];
    }
    for (int c = 0; c < at->cc.n; c++) {
        int k = comp_find_or_add(s, at->cc.names[c]);
        for (int p = 0; p < n; p++)
            col[p] = ms[p][c];
        latency_stats(col, n, &s->st[k]);
    }
    s->measured = true;
done:
    r->ctx->on_scope_change = NULL;
    r->ctx->on_scope_change_user = NULL;
    free(ms);
    free(col);
    free(at);
}

#if HAVE_CUDA
static int cmp_kernel_desc(const void *x, const void *y)
{
    double a = ((const KernelStat *)x)->st.median, b = ((const KernelStat *)y)->st.median;
    return (a < b) - (a > b);
}

/* GPU per-component and per-kernel split from CUPTI records of split_repeats eager passes. */
static void split_cupti(Runner *r, SplitResult *s)
{
    int n = r->a->split_repeats;
    memset(s, 0, sizeof *s);
    s->batch = (int)r->video.shape[0];
    snprintf(s->timing, sizeof s->timing, "cupti-kernels");
    char err[CTX_ERROR_LEN];
    double(*ms)[COMPONENT_MAX] = calloc((size_t)n, sizeof *ms); /* [pass][component] */
    double *busy = calloc((size_t)n, sizeof *busy);              /* [pass] */
    double *col = malloc((size_t)n * sizeof *col);
    Attribution *at = calloc(1, sizeof *at);
    s->kernels = calloc(MAX_KERNEL_KEYS, sizeof *s->kernels);
    if (!ms || !busy || !col || !at || !s->kernels) {
        snprintf(s->note, sizeof s->note, "out of memory");
        goto done;
    }
    if (!plan_pass(r, err, sizeof err)) {
        snprintf(s->note, sizeof s->note, "failed: %s", err);
        goto done;
    }
    cupti_activity_clear();
    at->cupti = true;
    r->ctx->on_scope_change = on_scope_change;
    r->ctx->on_scope_change_user = at;
    for (int p = 0; p < n; p++) {
        Tensor *labels = NULL;
        if (r->a->train) /* zeroing the gradients is not part of the timed step: not recorded */
            labels = train_prepare(r);
        else
            ctx_begin_pass(r->ctx);
        double step_ms;
        cupti_activity_set_pass(p);
        bool ok = r->a->train ? labels && train_run(r, labels, &step_ms, at)
                              : model_forward(r->ctx, r->model, &r->video, at) != NULL;
        ok = ok && cuda_synchronize(r->ctx);
        cupti_activity_set_pass(-1);
        if (!ok) {
            snprintf(s->note, sizeof s->note, "failed: %s", ctx_error_message(r->ctx));
            goto done;
        }
    }
    if (!cupti_activity_flush(err, sizeof err)) {
        snprintf(s->note, sizeof s->note, "CUPTI: %s", err);
        goto done;
    }
    const CuptiRecord *rec = cupti_activity_records();
    int n_rec = cupti_activity_count();
    for (int i = 0; i < n_rec; i++) {
        const CuptiRecord *q = &rec[i];
        if (q->pass < 0 || q->pass >= n)
            continue; /* the planning pass, or work whose launch the callback did not see */
        double d = (double)(q->end_ns - q->start_ns) * 1e-6;
        const char *label = q->label >= 0 ? cupti_activity_label(q->label) : "other";
        int c = comp_find_or_add(s, label);
        ms[q->pass][c] += d;
        busy[q->pass] += d;
        int k = 0;
        while (k < s->n_kernels && !(s->kernels[k].name == q->name && s->kernels[k].comp == c))
            k++;
        if (k == s->n_kernels) {
            if (k == MAX_KERNEL_KEYS)
                continue; /* absurdly many distinct kernels: the rest counts in its component only */
            s->kernels[k].name = q->name;
            s->kernels[k].comp = c;
            s->kernels[k].per_pass = calloc((size_t)n, sizeof(double));
            if (!s->kernels[k].per_pass)
                continue;
            s->n_kernels++;
        }
        s->kernels[k].per_pass[q->pass] += d;
        s->kernels[k].launches++;
    }
    for (int c = 0; c < s->n_comp; c++) {
        for (int p = 0; p < n; p++)
            col[p] = ms[p][c];
        latency_stats(col, n, &s->st[c]);
    }
    latency_stats(busy, n, &s->busy);
    s->kernel_names = calloc((size_t)(s->n_kernels + 1), sizeof *s->kernel_names);
    for (int k = 0; k < s->n_kernels; k++) {
        latency_stats(s->kernels[k].per_pass, n, &s->kernels[k].st);
        s->kernels[k].launches /= n;
    }
    qsort(s->kernels, (size_t)s->n_kernels, sizeof *s->kernels, cmp_kernel_desc);
    for (int k = 0; s->kernel_names && k < s->n_kernels; k++)
        snprintf(s->kernel_names[k], sizeof s->kernel_names[k], "%s", cupti_activity_name(s->kernels[k].name));
    s->measured = n_rec > 0;
    if (n_rec == 0)
        snprintf(s->note, sizeof s->note, "CUPTI delivered no records");
    else if (cupti_activity_dropped() > 0)
        snprintf(s->note, sizeof s->note, "CUPTI dropped %llu records: the split undercounts",
                 (unsigned long long)cupti_activity_dropped());
done:
    r->ctx->on_scope_change = NULL;
    r->ctx->on_scope_change_user = NULL;
    cupti_activity_clear();
    free(ms);
    free(busy);
    free(col);
    free(at);
}
#endif

/* ---- output ------------------------------------------------------------------------------------ */

static const char *const COLS[] = {
    "method", "preset", "precision", "batch", "mode", "level", "component", "kernel", "samples", "warmup",
    "latency_ms_median", "latency_ms_p90", "latency_ms_p99", "latency_ms_iqr", "latency_ms_mean", "latency_ms_min",
    "latency_ms_max", "throughput_videos_per_s", "time_ms_median", "time_ms_iqr", "time_share_pct",
    "launches_per_pass", "gflops_per_video", "achieved_gflops_per_s", "timing", "bn_folded", "clock_sm_mhz_min",
    "clock_sm_mhz_max", "clock_event_reasons", "note",
    /* hardware FLOPs (CUPTI range profiler, level=hw_flops rows; empty elsewhere): N_HW_COLS */
    "hw_tensor_gflops_per_video", "hw_cuda_core_gflops_per_video", "hw_gflops_per_video", "hw_over_2x_analytic",
    "hw_gpu_time_ms", "hw_sm_clock_mhz", "hw_dram_gbytes_per_video",
};
enum { N_COLS = (int)(sizeof COLS / sizeof COLS[0]) };
enum { N_HW_COLS = 7 };

typedef struct {
    int batch;
    const char *mode, *level, *component, *kernel, *timing, *reasons, *note;
    int samples, warmup;
    const LatencyStats *lat; /* NULL: no latency columns */
    double throughput, time_median, time_iqr, share_pct, launches, gflops, achieved, clk_min, clk_max;
    const double *hw; /* N_HW_COLS values of the hw_* columns; NULL: empty */
} CsvRow;

static void csv_row(CsvOut *w, const ProfileArgs *a, const Model *m, const CsvRow *r)
{
    csv_out_str(w, m->id);
    csv_out_str(w, m->preset);
    csv_out_str(w, a->precision);
    csv_out_int(w, r->batch);
    csv_out_str(w, r->mode);
    csv_out_str(w, r->level);
    csv_out_str(w, r->component);
    csv_out_str(w, r->kernel ? r->kernel : "");
    if (r->samples > 0)
        csv_out_int(w, r->samples);
    else
        csv_out_empty(w);
    if (r->warmup >= 0)
        csv_out_int(w, r->warmup);
    else
        csv_out_empty(w);
    const LatencyStats *l = r->lat;
    csv_out_double(w, l ? l->median : NAN);
    csv_out_double(w, l ? l->p90 : NAN);
    csv_out_double(w, l ? l->p99 : NAN);
    csv_out_double(w, l ? l->iqr : NAN);
    csv_out_double(w, l ? l->mean : NAN);
    csv_out_double(w, l ? l->min : NAN);
    csv_out_double(w, l ? l->max : NAN);
    csv_out_double(w, r->throughput);
    csv_out_double(w, r->time_median);
    csv_out_double(w, r->time_iqr);
    csv_out_double(w, r->share_pct);
    csv_out_double(w, r->launches);
    csv_out_double(w, r->gflops);
    csv_out_double(w, r->achieved);
    csv_out_str(w, r->timing);
    csv_out_str(w, m->folded ? "yes" : "no");
    csv_out_double(w, r->clk_min);
    csv_out_double(w, r->clk_max);
    csv_out_str(w, r->reasons ? r->reasons : "");
    csv_out_str(w, r->note ? r->note : "");
    for (int i = 0; i < N_HW_COLS; i++)
        csv_out_double(w, r->hw ? r->hw[i] : NAN);
    csv_out_end_row(w);
}

static const char *mode_name(int mode) { return mode == MODE_GRAPH ? "graph" : mode == MODE_TRAIN ? "train" : "eager"; }

/* ---- hardware FLOPs per component: the CUPTI range profiler (kernels/cuda/cupti_range.h) ------- *
 * After every timing and after the Activity trace, for each batch size: the eager pass with one
 * CUPTI range per component (opened by attribution_update whenever the component changes: the
 * same attribution as the Activity split), replayed until CUPTI has read every counter. Per
 * component: FLOPs on tensor cores (sm__ops_path_tensor_*, 2 per MAC) and on CUDA cores
 * (2·FMA + ADD + MUL in fp32, fp16 and fp64), the GPU time and SM clock under the profiler, DRAM
 * bytes. Shown and written NEXT TO the analytic count (paper MACs), never instead of it; the ratio
 * hw / (2 × analytic) is 1 where the hardware did exactly the model's MACs. Where the driver
 * refuses counters or another profiler is attached, one line says so and the timings stand. */

typedef struct {
    char name[COMPONENT_NAME];
    double tensor_gflop, cuda_core_gflop; /* one pass, whole batch */
    double gpu_ms, sm_mhz, dram_gb;       /* under the profiler, one pass, whole batch */
} HwComponent;

typedef struct {
    int batch;
    bool measured;
    char note[NOTE_LEN];
    int passes; /* replays of the pass CUPTI asked for */
    int n;
    HwComponent c[COMPONENT_MAX];
} HwFlopsResult;

enum { HW_MAX_RANGES = 256 };

#if HAVE_CUDA
typedef struct {
    Runner *r;
    Attribution *at;
} HwPass;

static bool hw_pass(CuptiRange *cr, void *user, char *err, size_t cap)
{
    (void)cr; /* the ranges are opened by the attribution hook */
    HwPass *p = user;
    ctx_begin_pass(p->r->ctx);
    Tensor *y = model_forward(p->r->ctx, p->r->model, &p->r->video, p->at);
    bool ok = y && cuda_synchronize(p->r->ctx);
    if (!ok)
        snprintf(err, cap, "%s", ctx_error_message(p->r->ctx));
    return ok;
}

/* Hardware FLOPs at the runner's batch. False when CUPTI refused (h->note says why): the caller
 * tries no further batch size. */
static bool hw_flops_batch(Runner *r, HwFlopsResult *h)
{
    memset(h, 0, sizeof *h);
    h->batch = (int)r->video.shape[0];
    char err[CTX_ERROR_LEN];
    if (!plan_pass(r, err, sizeof err)) {
        snprintf(h->note, sizeof h->note, "failed: %s", err);
        return true;
    }
    CuptiRange *cr = cupti_range_create(HW_MAX_RANGES, err, sizeof err);
    if (!cr) {
        snprintf(h->note, sizeof h->note, "CUPTI range profiler: %s", err);
        return !cupti_range_refusal(err);
    }
    Attribution *at = calloc(1, sizeof *at);
    CuptiRangeTotals *t = calloc(COMPONENT_MAX, sizeof *t);
    size_t dropped = 0;
    bool ok = at && t;
    if (!ok)
        snprintf(err, sizeof err, "out of memory");
    if (ok) {
        at->ranges = cr;
        HwPass p = {r, at};
        r->ctx->on_scope_change = on_scope_change;
        r->ctx->on_scope_change_user = at;
        ok = cupti_range_collect(cr, hw_pass, &p, &h->passes, err, sizeof err) &&
             cupti_range_results(cr, t, COMPONENT_MAX, &h->n, &dropped, err, sizeof err);
        r->ctx->on_scope_change = NULL;
        r->ctx->on_scope_change_user = NULL;
    }
    cupti_range_destroy(cr);
    bool refused = !ok && cupti_range_refusal(err);
    if (!ok) {
        snprintf(h->note, sizeof h->note, "CUPTI range profiler: %s", err);
        h->n = 0;
    }
    for (int i = 0; ok && i < h->n; i++) {
        HwComponent *c = &h->c[i];
        snprintf(c->name, sizeof c->name, "%.*s", (int)sizeof c->name - 1, t[i].name);
        c->tensor_gflop = cupti_range_tensor_flops(&t[i]) / 1e9;
        c->cuda_core_gflop = cupti_range_cuda_core_flops(&t[i]) / 1e9;
        c->gpu_ms = t[i].v[CR_GPU_TIME_NS] * 1e-6;
        c->sm_mhz = t[i].v[CR_SM_HZ] > 0 ? t[i].v[CR_SM_HZ] * 1e-6 : NAN;
        c->dram_gb = (t[i].v[CR_DRAM_READ] + t[i].v[CR_DRAM_WRITE]) / 1e9;
    }
    h->measured = ok && h->n > 0;
    if (ok && h->n == 0)
        snprintf(h->note, sizeof h->note, "CUPTI recorded no ranges");
    else if (ok && dropped > 0)
        snprintf(h->note, sizeof h->note, "CUPTI dropped %zu ranges: the counts undercount", dropped);
    free(at);
    free(t);
    return !refused;
}
#endif

/* Totals over the components (the "total" row); sm_mhz weighted by GPU time. */
static HwComponent hw_total(const HwFlopsResult *h)
{
    HwComponent s = {.name = "total"};
    double w = 0, clk = 0;
    for (int i = 0; i < h->n; i++) {
        const HwComponent *c = &h->c[i];
        s.tensor_gflop += c->tensor_gflop;
        s.cuda_core_gflop += c->cuda_core_gflop;
        s.gpu_ms += c->gpu_ms;
        s.dram_gb += c->dram_gb;
        if (isfinite(c->sm_mhz) && c->gpu_ms > 0) {
            clk += c->sm_mhz * c->gpu_ms;
            w += c->gpu_ms;
        }
    }
    s.sm_mhz = w > 0 ? clk / w : NAN;
    return s;
}

/* The hw_* CSV columns of one component (per video), next to analytic GFLOPs per video `g`. */
static void hw_values(const HwComponent *c, int batch, double g, double out[N_HW_COLS])
{
    double hw = (c->tensor_gflop + c->cuda_core_gflop) / batch;
    out[0] = c->tensor_gflop / batch;
    out[1] = c->cuda_core_gflop / batch;
    out[2] = hw;
    out[3] = g > 0 ? hw / (2 * g) : NAN;
    out[4] = c->gpu_ms;
    out[5] = c->sm_mhz;
    out[6] = c->dram_gb / batch;
}

static void print_hw(const HwFlopsResult *h, const Model *m)
{
    if (!h->measured) {
        printf("\nhardware FLOPs, batch %d: not measured: %s — the latency and throughput above are unaffected\n",
               h->batch, h->note);
        return;
    }
    printf("\nhardware FLOPs per component, batch %d (CUPTI range profiler, one range per component, the eager pass\n"
           "replayed %d times; per video; tensor cores count 2 per MAC, CUDA cores 2 FMA + ADD + MUL; analytic =\n"
           "paper MACs, so hw / (2 x analytic) = 1 where the hardware did exactly the model's MACs; time and clock\n"
           "under the profiler, per pass)\n", h->batch, h->passes);
    printf("  %-12s  %12s  %12s  %12s  %12s  %10s  %9s  %7s  %8s\n", "component", "analytic GF", "tensor GFLOP",
           "CUDA-core GF", "hw GFLOP", "hw/2xanal", "GPU ms", "SM MHz", "DRAM MB");
    int order[COMPONENT_MAX];
    for (int i = 0; i < h->n; i++)
        order[i] = i;
    for (int i = 1; i < h->n; i++) /* insertion sort by pipeline rank, stable */
        for (int j = i; j > 0 && comp_rank(h->c[order[j]].name) < comp_rank(h->c[order[j - 1]].name); j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    HwComponent total = hw_total(h);
    for (int i = 0; i <= h->n; i++) {
        const HwComponent *c = i < h->n ? &h->c[order[i]] : &total;
        double g = i < h->n ? comp_gflops(m, c->name) : m->gflops_total, v[N_HW_COLS];
        hw_values(c, h->batch, g, v);
        char gs[24] = "-", ratio[24] = "-", clk[24] = "-";
        if (isfinite(g))
            snprintf(gs, sizeof gs, "%.4f", g);
        if (isfinite(v[3]))
            snprintf(ratio, sizeof ratio, "%.3f", v[3]);
        if (isfinite(v[5]))
            snprintf(clk, sizeof clk, "%.0f", v[5]);
        printf("  %-12s  %12s  %12.4f  %12.4f  %12.4f  %10s  %9.3f  %7s  %8.1f\n", c->name, gs, v[0], v[1], v[2], ratio,
               v[4], clk, v[6] * 1e3);
    }
    if (h->note[0])
        printf("  note: %s\n", h->note);
}

/* level=hw_flops rows: one per component and a total, or one row saying why nothing was measured. */
static void csv_hw_rows(CsvOut *w, const ProfileArgs *a, const Model *m, const HwFlopsResult *h)
{
    CsvRow row = {.batch = h->batch, .mode = "eager", .level = "hw_flops", .component = "", .timing = "cupti-range",
                  .note = h->note, .warmup = -1, .throughput = NAN, .time_median = NAN, .time_iqr = NAN,
                  .share_pct = NAN, .launches = NAN, .gflops = NAN, .achieved = NAN, .clk_min = NAN, .clk_max = NAN};
    if (!h->measured) {
        csv_row(w, a, m, &row);
        return;
    }
    HwComponent total = hw_total(h);
    for (int i = 0; i <= h->n; i++) {
        const HwComponent *c = i < h->n ? &h->c[i] : &total;
        double v[N_HW_COLS];
        row.component = c->name;
        row.gflops = i < h->n ? comp_gflops(m, c->name) : m->gflops_total;
        hw_values(c, h->batch, row.gflops, v);
        row.hw = v;
        csv_row(w, a, m, &row);
    }
}

static bool write_csv(const ProfileArgs *a, const Model *m, const CsvEnv *env, const TimingResult *tr, int n_tr,
                      const SplitResult *sr, int n_sr, const HwFlopsResult *hw, int n_hw, bool cuda, char *err,
                      size_t cap)
{
    CsvOut *w = csv_out_open(a->csv, COLS, N_COLS, env, err, cap);
    if (!w)
        return false;
    const char *lat_timing = cuda ? "cuda-events" : "host-clock";
    const char *split_mode = a->train ? "train" : "eager"; /* the kind of pass the split measured */
    for (int i = 0; i < n_tr; i++) {
        const TimingResult *t = &tr[i];
        double med_s = t->measured ? t->st.median * 1e-3 : NAN;
        char note[sizeof t->note + 128];
        snprintf(note, sizeof note, "%s%s%s%s%s", t->note,
                 a->nondeterministic && t->note[0] ? "; " : "",
                 a->nondeterministic ? "cuDNN nondeterministic engines allowed (--nondeterministic)" : "",
                 a->no_conv_custom && (t->note[0] || a->nondeterministic) ? "; " : "",
                 a->no_conv_custom ? "fp32 1x1 and stem convs on cuDNN (--no-custom-convs)" : "");
        CsvRow row = {
            .batch = t->batch, .mode = mode_name(t->mode), .level = "pass", .component = "total",
            .timing = lat_timing, .reasons = t->reasons, .note = note, .samples = t->measured ? t->st.n : 0,
            .warmup = t->info.warmup_done, .lat = t->measured ? &t->st : NULL,
            .throughput = t->batch / med_s, .time_median = t->measured ? t->st.median : NAN,
            .time_iqr = t->measured ? t->st.iqr : NAN, .share_pct = t->measured ? 100.0 : NAN, .launches = NAN,
            .gflops = m->gflops_total, .achieved = m->gflops_total * t->batch / med_s, .clk_min = t->clk_min,
            .clk_max = t->clk_max,
        };
        csv_row(w, a, m, &row);
    }
    for (int i = 0; i < n_sr; i++) {
        const SplitResult *s = &sr[i];
        if (!s->measured) {
            CsvRow row = {.batch = s->batch, .mode = split_mode, .level = "component", .component = "",
                          .timing = s->timing, .note = s->note, .warmup = -1, .throughput = NAN, .time_median = NAN,
                          .time_iqr = NAN, .share_pct = NAN, .launches = NAN, .gflops = NAN, .achieved = NAN,
                          .clk_min = NAN, .clk_max = NAN};
            csv_row(w, a, m, &row);
            continue;
        }
        double total = 0;
        for (int c = 0; c < s->n_comp; c++)
            total += s->st[c].median;
        for (int c = 0; c < s->n_comp; c++) {
            double g = comp_gflops(m, s->names[c]);
            CsvRow row = {.batch = s->batch, .mode = split_mode, .level = "component", .component = s->names[c],
                          .timing = s->timing, .note = s->note, .samples = s->st[c].n, .warmup = -1,
                          .throughput = NAN, .time_median = s->st[c].median, .time_iqr = s->st[c].iqr,
                          .share_pct = total > 0 ? 100 * s->st[c].median / total : NAN, .launches = NAN, .gflops = g,
                          .achieved = g > 0 ? g * s->batch / (s->st[c].median * 1e-3) : NAN, .clk_min = NAN,
                          .clk_max = NAN};
            csv_row(w, a, m, &row);
        }
        for (int k = 0; k < s->n_kernels; k++) {
            const KernelStat *ks = &s->kernels[k];
            CsvRow row = {.batch = s->batch, .mode = split_mode, .level = "kernel", .component = s->names[ks->comp],
                          .kernel = s->kernel_names ? s->kernel_names[k] : "?", .timing = s->timing,
                          .samples = ks->st.n, .warmup = -1, .throughput = NAN, .time_median = ks->st.median,
                          .time_iqr = ks->st.iqr, .share_pct = total > 0 ? 100 * ks->st.median / total : NAN,
                          .launches = (double)ks->launches, .gflops = NAN, .achieved = NAN, .clk_min = NAN,
                          .clk_max = NAN};
            csv_row(w, a, m, &row);
        }
    }
    for (int i = 0; i < n_hw; i++)
        csv_hw_rows(w, a, m, &hw[i]);
    return csv_out_commit(w, err, cap);
}

static void fmt_num(char *buf, size_t cap, double v, const char *fmt)
{
    if (isfinite(v))
        snprintf(buf, cap, fmt, v);
    else
        snprintf(buf, cap, "-");
}

static void print_timing(const TimingResult *tr, int n, const Model *m, bool cuda)
{
    printf("\nlatency and throughput (%s; GFLOP/s = analytic GFLOPs per video x videos/s, paper convention)\n",
           cuda ? "CUDA events around each pass" : "host clock around each pass");
    printf("  %5s  %-5s  %7s  %9s  %9s  %9s  %8s  %10s  %10s%s\n", "batch", "mode", "samples", "median ms", "p90 ms",
           "p99 ms", "IQR ms", "videos/s", "GFLOP/s", cuda ? "  SM MHz (before..after)" : "");
    for (int i = 0; i < n; i++) {
        const TimingResult *t = &tr[i];
        if (!t->measured) {
            printf("  %5d  %-5s  not measured: %s\n", t->batch, mode_name(t->mode), t->note);
            continue;
        }
        double s = t->st.median * 1e-3;
        char clk[256] = ""; /* the clock range and the throttle reasons (up to 160 bytes) */
        if (cuda) {
            if (isfinite(t->clk_min))
                snprintf(clk, sizeof clk, "  %.0f..%.0f%s%s", t->clk_min, t->clk_max, t->reasons[0] ? " " : "",
                         strcmp(t->reasons, "none") == 0 ? "" : t->reasons);
            else
                snprintf(clk, sizeof clk, "  unknown");
        }
        printf("  %5d  %-5s  %7d  %9.3f  %9.3f  %9.3f  %8.3f  %10.1f  %10.1f%s\n", t->batch, mode_name(t->mode), t->st.n,
               t->st.median, t->st.p90, t->st.p99, t->st.iqr, t->batch / s, m->gflops_total * t->batch / s, clk);
        if (t->note[0])
            printf("         note: %s\n", t->note);
    }
}

static void print_split(const SplitResult *s, const Model *m, const TimingResult *eager, int top, int passes)
{
    bool gpu = strcmp(s->timing, "cupti-kernels") == 0;
    printf("\nper component, batch %d (%s; median of %d passes)\n", s->batch,
           gpu ? "GPU time of the kernels, copies and memsets each component launched, from CUPTI"
               : "host clock charged to the component running at each scope change",
           passes);
    if (!s->measured) {
        printf("  not measured: %s\n", s->note);
        return;
    }
    int order[COMPONENT_MAX];
    for (int i = 0; i < s->n_comp; i++)
        order[i] = i;
    for (int i = 1; i < s->n_comp; i++) /* insertion sort by pipeline rank, stable */
        for (int j = i; j > 0 && comp_rank(s->names[order[j]]) < comp_rank(s->names[order[j - 1]]); j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    double total = 0;
    for (int c = 0; c < s->n_comp; c++)
        total += s->st[c].median;
    printf("  %-12s  %12s  %10s  %8s  %6s  %12s\n", "component", "GFLOPs/video", "time ms", "IQR ms", "share",
           "GFLOP/s");
    for (int i = 0; i < s->n_comp; i++) {
        int c = order[i];
        double g = comp_gflops(m, s->names[c]);
        char gs[32], rate[32];
        fmt_num(gs, sizeof gs, g, "%.4f");
        fmt_num(rate, sizeof rate, g > 0 ? g * s->batch / (s->st[c].median * 1e-3) : NAN, "%.1f");
        printf("  %-12s  %12s  %10.3f  %8.3f  %5.1f%%  %12s\n", s->names[c], gs, s->st[c].median, s->st[c].iqr,
               total > 0 ? 100 * s->st[c].median / total : 0.0, rate);
    }
    printf("  %-12s  %12.4f  %10.3f\n", "sum", m->gflops_total, total);
    if (!gpu && eager && eager->measured)
        printf("  the components add up to %.3f ms against the eager median of %.3f ms (timed separately: a large gap\n"
               "  means the machine was busy with something else)\n", total, eager->st.median);
    if (gpu && eager && eager->measured)
        printf("  the GPU was busy %.3f ms of the eager pass's %.3f ms median latency (%.0f%%); the rest is launch\n"
               "  gaps, host work and synchronisation (CUPTI's own overhead inflates short kernels)\n",
               s->busy.median, eager->st.median, 100 * s->busy.median / eager->st.median);
    if (s->note[0])
        printf("  note: %s\n", s->note);
    if (gpu && top > 0 && s->n_kernels > 0) {
        int shown = s->n_kernels < top ? s->n_kernels : top;
        printf("\ntop %d of %d kernels, batch %d (per pass; all in the CSV)\n", shown, s->n_kernels, s->batch);
        printf("  %9s  %6s  %8s  %-11s  %s\n", "time ms", "share", "launches", "component", "kernel");
        for (int k = 0; k < shown; k++) {
            const KernelStat *ks = &s->kernels[k];
            printf("  %9.3f  %5.1f%%  %8ld  %-11s  %.110s\n", ks->st.median, total > 0 ? 100 * ks->st.median / total : 0.0,
                   ks->launches, s->names[ks->comp], s->kernel_names ? s->kernel_names[k] : "?");
        }
    }
}

/* ---- the command ------------------------------------------------------------------------------- */

/* A (B, T, 3, S, S) clip set of standard-normal values (normalised frames), in its own parameter
 * set so it outlives every pass's arena reset and can be uploaded once. */
static ParamSet *make_clips(const Model *m, int B, uint64_t seed, char *err, size_t cap)
{
    ParamSet *ps = params_create();
    if (!ps) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    int64_t dims[5] = {B, m->frames, 3, m->frame_size, m->frame_size};
    Tensor *v = params_declare(ps, "video", DTYPE_F32, 5, dims, false);
    if (!v || !params_allocate(ps, BACKEND_CPU, false, err, cap)) {
        if (!v)
            snprintf(err, cap, "cannot declare the clip tensor");
        params_destroy(ps);
        return NULL;
    }
    float *x = tensor_f32(v); /* (B, T, 3, S, S) */
    int64_t n = tensor_numel(v);
    RngStream s = rng_stream(seed, RNG_PURPOSE_TEST, 0x70726f66 /* "prof" */, 0);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_normal(&s, (uint64_t)i);
    return ps;
}

int cmd_profile(int argc, char **argv)
{
    ProfileArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc)
        return rc;
    bool cuda = strcmp(a.device, "cuda") == 0;
#if !HAVE_CUDA
    if (cuda) {
        fprintf(stderr, "focusbench profile: built without CUDA: no CUPTI, no GPU timing (nvcc and cuDNN were "
                        "not found at build time); rebuild with `make CUDA=1` on a machine with the CUDA toolkit\n");
        return 1;
    }
#endif
    char err[CTX_ERROR_LEN + 256];
    Model model;
    Ctx *ctx = NULL;
    ParamSet *clips = NULL;
    TimingResult *tr = NULL;
    SplitResult *sr = NULL;
    HwFlopsResult *hw = NULL; /* [n_hw] hardware FLOPs per batch size (CUPTI range profiler) */
    int n_hw = 0;
    double *samples = NULL;
    int n_tr = 0, n_sr = 0;
    rc = 1;
    memset(&model, 0, sizeof model);
    Runner r;
    memset(&r, 0, sizeof r);

    /* the device first: on a machine without one, one clear line and nothing else */
    if (cuda) {
#if HAVE_CUDA
        CudaPrecision prec = CUDA_PRECISION_FP32;
        cuda_precision_parse(a.precision, &prec);
        ctx = cuda_ctx_create(a.seed, prec);
        if (ctx && !ctx_ok(ctx)) {
            fprintf(stderr, "focusbench profile: no usable GPU: %s\n", ctx_error_message(ctx));
            goto done;
        }
        if (ctx) {
            cuda_set_conv_autotune(ctx, !a.no_autotune);
            cuda_set_conv_nondeterministic(ctx, a.nondeterministic);
            if (a.no_conv_custom)
                cuda_set_conv_custom(ctx, false);
        }
#endif
    } else {
        ctx = ctx_create(BACKEND_CPU, a.seed);
    }
    if (!ctx) {
        fprintf(stderr, "focusbench profile: out of memory creating the %s context\n", a.device);
        goto done;
    }
    if (!model_build(&a, &model, err, sizeof err)) {
        fprintf(stderr, "focusbench profile: %s\n", err);
        goto done;
    }
    int bmax = 0;
    for (int i = 0; i < a.n_batches; i++)
        bmax = a.batches[i] > bmax ? a.batches[i] : bmax;
    fprintf(stderr, "profile: %d random clips of %d x 3 x %d x %d (%.0f MB) ...\n", bmax, model.frames, model.frame_size,
            model.frame_size, (double)bmax * model.frames * 3 * model.frame_size * model.frame_size * 4 / 1e6);
    clips = make_clips(&model, bmax, a.seed, err, sizeof err);
    if (!clips) {
        fprintf(stderr, "focusbench profile: the clip batch (%d x %d x 3 x %d x %d floats): %s\n", bmax, model.frames,
                model.frame_size, model.frame_size, err);
        goto done;
    }
#if HAVE_CUDA
    if (cuda && (!cuda_params_upload(ctx, model.ps) || !cuda_params_upload(ctx, clips))) {
        fprintf(stderr, "focusbench profile: uploading the weights and clips: %s\n", ctx_error_message(ctx));
        goto done;
    }
    /* Folding put the backbones' new conv biases in sets of their own: they travel too. */
    if (cuda && model.uaf) {
        ParamSet *folds[2] = {model.uaf->global_cnn->fold_ps, model.uaf->local_cnn->fold_ps};
        for (int i = 0; i < 2; i++) {
            if (folds[i] && !cuda_params_upload(ctx, folds[i])) {
                fprintf(stderr, "focusbench profile: uploading the folded biases: %s\n", ctx_error_message(ctx));
                goto done;
            }
        }
    }
#endif
    CsvEnv env;
    csv_env_init(&env, a.device, argc, argv);
    csv_env_set_seed(&env, a.seed);
    ctx_set_training(ctx, false);

    r.a = &a;
    r.ctx = ctx;
    r.cuda = cuda;
    r.model = &model;
    int cap = a.plan.max_repeats;
    samples = malloc((size_t)cap * sizeof *samples);
    tr = calloc((size_t)a.n_batches * 2, sizeof *tr);
    sr = calloc((size_t)a.n_batches, sizeof *sr);
    if (!samples || !tr || !sr) {
        fprintf(stderr, "focusbench profile: out of memory\n");
        goto done;
    }

    /* ---- header ---- */
    printf("focusbench profile — %s, preset %s (%s), random weights (seed %" PRIu64 "), %s%s\n", model.id,
           model.preset, model.describe, a.seed,
           a.train ? "TRAINING steps (training loss forward + backward, train mode, no optimizer update)"
                   : "eval mode",
           model.folded ? ", backbone batch norms folded into the convs" : "");
    printf("analytic cost: %.4f GFLOPs per video (%s)\n", model.gflops_total, FLOP_CONVENTION);
    double clk_sum = 0, mem_sum = 0;
    int clk_n = 0, mem_n = 0;
#if HAVE_CUDA
    if (cuda) {
        r.timer = cuda_timer_create(ctx);
        if (!r.timer) {
            fprintf(stderr, "focusbench profile: %s\n", ctx_error_message(ctx));
            goto done;
        }
        cuda_clocks_open(&r.clocks, ctx);
        CudaDeviceInfo dev;
        cuda_device_query(&dev);
        uint32_t crt = 0, cct = 0;
        char cerr[256];
        if (cupti_version(&crt, &cct, cerr, sizeof cerr))
            snprintf(env.cupti_version, sizeof env.cupti_version, "%u", crt);
        snprintf(env.driver_version, sizeof env.driver_version, "%s", r.clocks.driver_version);
        printf("device: %s (sm_%d%d, %d SMs, %.0f GiB); binary built for sm_%d\n", dev.name, dev.cc_major, dev.cc_minor,
               dev.sm_count, dev.mem_gib, dev.compiled_arch);
        printf("versions: driver %s, CUDA driver %s / runtime %s, cuDNN %s, cuBLAS %s, CUPTI API %s (built with %u)\n",
               env.driver_version[0] ? env.driver_version : "unknown (no NVML)", env.cuda_driver_version,
               env.cuda_runtime_version, env.cudnn_version, env.cublas_version,
               env.cupti_version[0] ? env.cupti_version : "unknown", cct);
        if (!r.clocks.available)
            printf("clocks: %s\n", r.clocks.reason);
        else {
            CudaClockSample s = cuda_clocks_read(&r.clocks);
            char reasons[160];
            cuda_clock_reasons_str(s.reasons, reasons, sizeof reasons);
            printf("clocks now: SM %.0f MHz, memory %.0f MHz, %.0f C, clock-event reasons: %s (read through NVML, "
                   "never set)\n", s.sm_mhz, s.mem_mhz, s.temperature_c, s.reasons_known ? reasons : "unknown");
        }
        printf("precision: %s (%s); every other op in fp32\n", a.precision,
               strcmp(a.precision, "fp32") == 0   ? "strict fp32 convolutions and GEMMs, no TF32"
               : strcmp(a.precision, "tf32") == 0 ? "convolutions and GEMMs on TF32 tensor cores, fp32 accumulate"
                                                  : "convolutions and GEMMs with bf16 inputs, fp32 accumulate");
        printf("cuDNN plans: %s\n", cuda_get_conv_autotune(ctx)
                                       ? "autotuned (the fastest of up to 24 heuristic candidates per conv shape at fp32, "
                                         "8 at tf32/bf16, timed once on the planning pass)"
                                       : "the heuristics' first acceptable config per conv shape (--no-autotune)");
        printf("cuDNN engines: %s\n", cuda_get_conv_nondeterministic(ctx)
                                          ? "nondeterministic ones allowed (--nondeterministic; as PyTorch's default)"
                                          : "deterministic only (reruns are bit-identical)");
        if (strcmp(a.precision, "fp32") == 0)
            printf("1x1 and stem convs: %s\n",
                   cuda_get_conv_custom(ctx)
                       ? "focusbench's FFMA kernels with bias, residual and activation inside, per shape where "
                         "they timed faster than cuDNN + its epilogue pass (--no-custom-convs: cuDNN)"
                       : "cuDNN, like the others (--no-custom-convs or FOCUSBENCH_CUSTOM_CONVS=0)");
    } else
#endif
    {
        printf("device: cpu — %s, %d threads\n", env.cpu_model, env.cpu_threads);
    }
    printf("timing: %d warm-up passes, then passes until >= %d samples and >= %g s (at most %d, %g s); arenas planned "
           "by a first pass, then frozen\n",
           a.plan.warmup, a.plan.min_repeats, a.plan.min_time_s, a.plan.max_repeats, a.plan.max_time_s);
    fflush(stdout);

    /* ---- phase A: latency for every batch and mode (no profiler attached) ---- */
    for (int bi = 0; bi < a.n_batches; bi++) {
        int B = a.batches[bi];
        r.video = *(Tensor *)params_find(clips, "video");
        r.video.shape[0] = B; /* the first B clips: a prefix of the contiguous clip set */
        fprintf(stderr, "profile: batch %d: planning the arenas ...\n", B);
        if (!plan_pass(&r, err, sizeof err)) {
            fprintf(stderr, "focusbench profile: batch %d: %s\n", B, err);
            if (!a.train)
                goto done;
            /* --train: a batch that does not fit is reported as not measured; the smaller ones stand */
            TimingResult *t = &tr[n_tr++];
            memset(t, 0, sizeof *t);
            t->batch = B;
            t->mode = MODE_TRAIN;
            t->clk_min = t->clk_max = t->mem_clk = NAN;
            snprintf(t->note, sizeof t->note, "%s", err);
            ctx_clear_error(ctx);
            continue;
        }
        float *eager_out = NULL; /* (B, C) prediction of the last eager pass, for the graph check */
        if (a.modes & MODE_EAGER) {
            fprintf(stderr, "profile: batch %d: timing eager passes ...\n", B);
            TimingResult *t = &tr[n_tr++];
            measure(&r, MODE_EAGER, t, samples, cap);
            if (!t->measured) {
                fprintf(stderr, "focusbench profile: batch %d eager: %s\n", B, t->note);
                goto done;
            }
        }
#if HAVE_CUDA
        if (cuda && (a.modes & MODE_GRAPH)) {
            TimingResult *t = &tr[n_tr++];
            memset(t, 0, sizeof *t);
            t->batch = B;
            t->mode = MODE_GRAPH;
            t->clk_min = t->clk_max = t->mem_clk = NAN;
            t->graph_matches = -1;
            /* the eager reference output first (the capture reuses the same addresses) */
            int64_t out_n = 0;
            ctx_begin_pass(ctx);
            Tensor *y = model_forward(ctx, &model, &r.video, NULL);
            if (y) {
                out_n = tensor_numel(y);
                eager_out = malloc((size_t)out_n * 2 * sizeof *eager_out);
                if (!eager_out || !uaf_read_host(ctx, y, eager_out))
                    out_n = 0;
            }
            if (!ctx_ok(ctx)) {
                fprintf(stderr, "focusbench profile: batch %d: %s\n", B, ctx_error_message(ctx));
                free(eager_out);
                goto done;
            }
            fprintf(stderr, "profile: batch %d: capturing the pass as a CUDA graph ...\n", B);
            r.graph = cuda_graph_create(ctx);
            if (!r.graph || !cuda_graph_capture(r.graph, graph_pass, &r)) {
                /* not capturable: say why in the graph row, and go on with the context healthy */
                snprintf(t->note, sizeof t->note, "not captured: %s", ctx_error_message(ctx));
                ctx_clear_error(ctx);
            } else {
                fprintf(stderr, "profile: batch %d: timing graph replays ...\n", B);
                measure(&r, MODE_GRAPH, t, samples, cap);
                CudaGraphInfo gi;
                cuda_graph_get_info(r.graph, &gi);
                t->graph_nodes = gi.nodes;
                const Tensor *gy = cuda_graph_output(r.graph, 0);
                if (t->measured && out_n > 0 && gy && tensor_numel(gy) == out_n && cuda_synchronize(ctx) &&
                    uaf_read_host(ctx, gy, eager_out + out_n))
                    t->graph_matches = memcmp(eager_out, eager_out + out_n, (size_t)out_n * sizeof *eager_out) == 0;
                if (t->measured && !t->note[0])
                    snprintf(t->note, sizeof t->note, "graph of %zu nodes; replay output %s", t->graph_nodes,
                             t->graph_matches == 1   ? "bit-identical to the eager pass's"
                             : t->graph_matches == 0 ? "DIFFERS from the eager pass's"
                                                     : "not compared");
            }
            cuda_graph_destroy(r.graph); /* gives its arena blocks back before the next batch */
            r.graph = NULL;
            if (!ctx_ok(ctx)) {
                fprintf(stderr, "focusbench profile: batch %d graph: %s\n", B, ctx_error_message(ctx));
                free(eager_out);
                goto done;
            }
        }
#endif
        free(eager_out);
        if (!cuda && !a.train) {
            fprintf(stderr, "profile: batch %d: per-component split ...\n", B);
            split_cpu(&r, &sr[n_sr++]);
        }
    }
    for (int i = 0; i < n_tr; i++) {
        if (isfinite(tr[i].clk_min)) {
            clk_sum += 0.5 * (tr[i].clk_min + tr[i].clk_max);
            clk_n++;
        }
        if (isfinite(tr[i].mem_clk)) {
            mem_sum += tr[i].mem_clk;
            mem_n++;
        }
    }
    env.clock_sm_mhz = clk_n ? clk_sum / clk_n : NAN;
    env.clock_mem_mhz = mem_n ? mem_sum / mem_n : NAN;

    /* ---- phase B (GPU): CUPTI, after every timing ---- */
#if HAVE_CUDA
    if (cuda) {
        char cerr[512];
        if (a.no_cupti) {
            printf("\nCUPTI: off (--no-cupti): no per-component or per-kernel GPU split, no hardware FLOP counts\n");
        } else if (!cupti_activity_start(cerr, sizeof cerr)) {
            printf("\nCUPTI refused: %s — no per-component or per-kernel GPU split; the latency and throughput "
                   "above are unaffected\n", cerr);
        } else {
            for (int bi = 0; bi < a.n_batches; bi++) {
                r.video = *(Tensor *)params_find(clips, "video");
                r.video.shape[0] = a.batches[bi];
                fprintf(stderr, "profile: batch %d: CUPTI kernel trace ...\n", a.batches[bi]);
                split_cupti(&r, &sr[n_sr++]);
                if (!ctx_ok(ctx)) {
                    fprintf(stderr, "focusbench profile: batch %d (CUPTI): %s\n", a.batches[bi], ctx_error_message(ctx));
                    cupti_activity_stop();
                    goto done;
                }
            }
            cupti_activity_stop();
        }
    }
    /* ---- phase C (GPU): hardware FLOPs per component from the CUPTI range profiler, last ---- */
    if (cuda && !a.no_cupti && !a.train) {
        hw = calloc((size_t)a.n_batches, sizeof *hw);
        for (int bi = 0; hw && bi < a.n_batches; bi++) {
            r.video = *(Tensor *)params_find(clips, "video");
            r.video.shape[0] = a.batches[bi];
            fprintf(stderr, "profile: batch %d: CUPTI range profiler (hardware FLOPs per component) ...\n",
                    a.batches[bi]);
            bool go_on = hw_flops_batch(&r, &hw[n_hw++]);
            if (!ctx_ok(ctx)) {
                fprintf(stderr, "focusbench profile: batch %d (CUPTI ranges): %s\n", a.batches[bi],
                        ctx_error_message(ctx));
                goto done;
            }
            if (!go_on)
                break; /* refused: the one line in the report says why */
        }
        cupti_range_shutdown();
    }
#endif

    /* ---- report ---- */
    print_timing(tr, n_tr, &model, cuda);
    for (int i = 0; i < n_sr; i++) {
        const TimingResult *eager = NULL;
        for (int j = 0; j < n_tr; j++)
            if (tr[j].batch == sr[i].batch && (tr[j].mode == MODE_EAGER || tr[j].mode == MODE_TRAIN))
                eager = &tr[j];
        print_split(&sr[i], &model, eager, a.top_kernels, a.split_repeats);
    }
    for (int i = 0; i < n_hw; i++)
        print_hw(&hw[i], &model);
    if (a.csv) {
        if (!write_csv(&a, &model, &env, tr, n_tr, sr, n_sr, hw, n_hw, cuda, err, sizeof err)) {
            fprintf(stderr, "focusbench profile: %s\n", err);
            goto done;
        }
        printf("\nwrote %s\n", a.csv);
    }
    rc = 0;
done:
#if HAVE_CUDA
    cuda_graph_destroy(r.graph);
    cuda_timer_destroy(r.timer);
    if (r.clocks.lib)
        cuda_clocks_close(&r.clocks);
#endif
    for (int i = 0; sr && i < n_sr; i++)
        split_free(&sr[i]);
    free(sr);
    free(hw);
    free(tr);
    free(samples);
    ctx_destroy(ctx);
    params_destroy(clips);
    model_destroy(&model);
    return rc;
}
