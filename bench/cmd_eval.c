/* cmd_eval.c — `focusbench eval`: every exit of a trained Uni-AdaFocus on the validation set, and
 * conditional exit (sample-wise dynamic inference) across budgets, as the official
 * test_early_exit_uni_adafocus.py does it.
 *
 * Owns: the command's options; running the model in eval mode over the validation split and
 * over the training split (the calibration set: the official script runs the trained model in
 * eval mode on its TRAINING loader, augmentation included), or reading those exit logits from a
 * file written earlier (--logits-in); the accuracy/mAP of each fixed exit; for each exit score
 * and budget knob p: thresholds calibrated on the training logits (impl/conditional_exit.h), the
 * exits the validation videos take, the expected GFLOPs (impl/uniadafocus.h uaf_flops, the
 * official per-exit costs), the metric, and the random-exit control with the same histogram.
 *
 * With --real it also EXECUTES conditional exit (impl/exit_runtime.h) on the validation split for
 * every budget of the first score, and reports measured model time per video next to the full
 * model's, the computed saving, and how many videos took the computed exit.
 *
 * Metrics: top-1 on each video's first label; mAP (datasets/metrics.h) when the data is
 * multi-label (ActivityNet, FCVID), ranked on raw logits as the official early_exit does
 * (cal_map(outputs, …) on the chosen exits' logits). Printed in percent; the CSV has one row per
 * fixed exit, per (score, budget) and per random control.
 *
 * With --method ID_OR_PRESET any method of the registry (baselines/registry.h) is evaluated the
 * same way (its m->n_exits exits through m->ops->forward_exits, bench/train_data.h); its costs are
 * the method's exit_gflops, except AR-Net, whose expected GFLOPs are the mean of the per-video
 * costs forward_exits reports. The CSV's method column is the method's id.
 *
 * --exits-csv FILE: the exit histograms, one row per (fixed exit or (score, budget), exit) with the
 * number and share of validation videos leaving there (for `plot --kind exit-histogram`).
 * --boxes-csv FILE: on the synthetic benchmark, the spatial policy's boxes against the ground-truth
 * object, one row per validation video and focus frame, with the mean IoU (bench/boxes.h); a second
 * pass over the validation split, as the exit-logit pass keeps no boxes.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/boxes.h"
#include "bench/cli.h"
#include "bench/csv_out.h"
#include "bench/dist_eval.h"
#include "bench/parse_num.h"
#include "kernels/dist/dist_rendezvous.h"
#include "bench/train_data.h"
#include "baselines/registry.h"
#include "datasets/metrics.h"
#include "impl/checkpoint.h"
#include "impl/conditional_exit.h"
#include "impl/exit_runtime.h"
#include "impl/presets.h"
#include "impl/safetensors.h"
#include "impl/train_loop.h"
#include "impl/uniadafocus.h"

enum { MAX_BUDGETS = 256 };

static void usage(FILE *out)
{
    char names[512];
    fprintf(out,
            "usage: focusbench eval --preset NAME (--ckpt W.safetensors | --init-seed N | --logits-in F) (data)\n"
            "                       [--budgets LIST] [--score LIST] [--csv FILE] [options] [size overrides]\n\n"
            "Evaluates every exit of Uni-AdaFocus on the validation split, then conditional exit: for each budget\n"
            "knob p the exit fractions q_k ~ p^k, thresholds calibrated on the training split's exit logits (eval\n"
            "mode, training augmentation, as the official script), the exits the validation videos take, their\n"
            "expected GFLOPs and accuracy (or mAP for multi-label data), and the random-exit control.\n\n"
            "  --preset NAME         %s\n"
            "  --ckpt FILE           trained weights (official keys; \"module.\" is stripped), e.g. RUN/model.safetensors\n"
            "  --init-seed N         no checkpoint: the random initial model (smoke tests)\n"
            "  --logits-in FILE      exit logits saved by --logits-out: no model run, no data needed\n"
            "  --logits-out FILE     save the training and validation exit logits (safetensors)\n"
            "  --budgets LIST        comma-separated knobs p > 0, or `official` (1/20 ... 19/20, the default)\n"
            "  --score LIST          exit scores: max-logit (official), max-softmax, neg-entropy, or all (default)\n"
            "  --calib-transform T   train (official: random augmentation) or test (centre crop) for calibration\n"
            "  --batch-size B        clips per forward pass (default 8)\n"
            "  --seed N              data augmentation and the random-exit control (0)\n"
            "  --device D            cpu (default) or cuda: where the model runs (exit logits, boxes)\n"
            "  --precision P         with --device cuda: fp32 (default), tf32 or bf16\n"
            "  --csv FILE            one row per fixed exit, per (score, budget) and per random control\n"
            "  --real                also EXECUTE conditional exit on the validation split for every budget of the\n"
            "                        first score (focus frames in steps, exited videos leave the batch) and report\n"
            "                        measured time per video next to the full model's and the computed saving\n"
            "  --exits-csv FILE      exit histograms: per fixed exit and per (score, budget), the number and share of\n"
            "                        validation videos leaving at each exit (plot --kind exit-histogram)\n"
            "  --boxes-csv FILE      synthetic benchmark only (gen-data's --data DIR, or --synthetic N): the spatial\n"
            "                        policy's box on every focus frame of every validation video against the ground-\n"
            "                        truth object (IoU, evidence visible), and the mean IoU (plot --kind iou-bars);\n"
            "                        Uni-AdaFocus, its ablations and AdaFocusV2. Methods without boxes and data\n"
            "                        without ground truth say so and write nothing\n\n"
            "%s\n"
            "any method of the registry (TSN, TSM, ...; --method replaces --preset; no --real, no --logits-in):\n"
            "  --method ID_OR_PRESET  with --ckpt FILE or --init-seed N; size overrides --frames --frame-size\n"
            "                         --classes --glance --focus --patch-size\n\n"
            "size overrides of the preset:\n",
            uaf_preset_names(names, sizeof names), data_args_help());
    const char *name, *help;
    for (int i = 0; uaf_config_knob(i, &name, &help); i++)
        fprintf(out, "  --%-20s %s\n", name, help);
    fprintf(out, "\nmethods and presets for --method:\n");
    method_print_help(out);
    fprintf(out, "\nexamples:\n"
                 "  focusbench eval --method tsn-mbv2-synth --ckpt tsn1/model.safetensors --data synth --csv tsn.csv\n"
                 "  focusbench eval --preset synth-tiny --ckpt run1/model.safetensors --data synth --csv exits.csv\n"
                 "  focusbench eval --preset actnet-p128 --logits-in actnet_logits.safetensors --score max-logit\n");
}

typedef struct {
    const char *preset_name, *ckpt, *logits_in, *logits_out, *csv, *exits_csv, *boxes_csv;
    bool have_init_seed, calib_test_transform, real;
    uint64_t init_seed, seed;
    int batch_size;
    double budgets[MAX_BUDGETS];
    int n_budgets;
    bool score_on[EXIT_SCORE_COUNT];
    UafConfig cfg;
    DataArgs data;
    const char *method;   /* --method: a registry method instead of Uni-AdaFocus (NULL: none) */
    MethodOverrides ov;   /* its size overrides */
    const char *method_id;/* the CSV's method column */
    int frames, frame_size; /* the clips the model takes */
    DistComm *comm;       /* under `focusbench launch`: the ranks sharing the data (NULL: one process) */
    const char *device_name, *precision; /* --device, --precision */
    RunDevice device;     /* where the model runs (kernels/device.h) */
} EvalArgs;

static bool parse_budgets(const char *val, EvalArgs *a)
{
    if (strcmp(val, "official") == 0) {
        a->n_budgets = exit_default_budgets(a->budgets, MAX_BUDGETS);
        return true;
    }
    a->n_budgets = 0;
    const char *q = val;
    while (*q) {
        char *end;
        errno = 0;
        double p = strtod(q, &end);
        if (errno || end == q || !(p > 0.0) || !isfinite(p) || (*end && *end != ',') || a->n_budgets >= MAX_BUDGETS)
            return false;
        a->budgets[a->n_budgets++] = p;
        q = *end ? end + 1 : end;
    }
    return a->n_budgets > 0;
}

static bool parse_scores(const char *val, EvalArgs *a)
{
    memset(a->score_on, 0, sizeof a->score_on);
    if (strcmp(val, "all") == 0) {
        for (int k = 0; k < EXIT_SCORE_COUNT; k++)
            a->score_on[k] = true;
        return true;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", val);
    bool any = false;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        ExitScoreKind k;
        if (!exit_score_parse(tok, &k))
            return false;
        a->score_on[k] = any = true;
    }
    return any;
}

/* 0 parsed, 2 usage error (printed), −1 --help. */
static int parse_args(int argc, char **argv, EvalArgs *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return -1;
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--preset") == 0)
            a->preset_name = argv[i + 1];
        if (strcmp(argv[i], "--method") == 0)
            a->method = argv[i + 1];
    }
    a->method_id = "uniadafocus";
    if (a->method) {
        const MethodPresetInfo *mp = method_preset_find(a->method);
        if (!mp) {
            char ids[512];
            fprintf(stderr, "focusbench eval: unknown method or preset '%s' (ids: %s; presets: focusbench eval "
                    "--help)\n", a->method, method_id_list(ids, sizeof ids));
            return 2;
        }
        if (a->preset_name) {
            fprintf(stderr, "focusbench eval: give --method or --preset, not both\n");
            return 2;
        }
        a->preset_name = mp->name;
        a->method_id = mp->id;
    }
    if (!a->preset_name) {
        fprintf(stderr, "focusbench eval: --preset NAME is required (see focusbench eval --help)\n");
        return 2;
    }
    const UafPreset *p = a->method ? uaf_preset_find("synth-tiny") : uaf_preset_find(a->preset_name);
    if (!p) {
        char names[512];
        fprintf(stderr, "focusbench eval: unknown preset '%s' (known: %s)\n", a->preset_name,
                uaf_preset_names(names, sizeof names));
        return 2;
    }
    a->cfg = p->cfg;
    a->batch_size = 8;
    a->n_budgets = exit_default_budgets(a->budgets, MAX_BUDGETS);
    for (int k = 0; k < EXIT_SCORE_COUNT; k++)
        a->score_on[k] = true;
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        int d = data_args_option(&a->data, opt, i + 1 < argc ? argv[i + 1] : NULL, err, sizeof err);
        if (d == 2)
            continue;
        if (strcmp(opt, "--real") == 0) {
            a->real = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "focusbench eval: %s needs a value (see focusbench eval --help)\n", opt);
            return 2;
        }
        const char *val = argv[++i];
        if (d < 0) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            return 2;
        }
        if (d == 1 || strcmp(opt, "--preset") == 0 || strcmp(opt, "--method") == 0)
            continue;
        bool ok = true;
        int *size_knob = NULL;
        if (a->method) {
            const char *knobs[] = {"--frames", "--frame-size", "--classes", "--glance", "--focus", "--patch-size"};
            int *dst[] = {&a->ov.frames, &a->ov.frame_size, &a->ov.classes, &a->ov.glance, &a->ov.focus,
                          &a->ov.patch_size};
            for (int k = 0; k < 6; k++)
                if (strcmp(opt, knobs[k]) == 0)
                    size_knob = dst[k];
        }
        if (strcmp(opt, "--ckpt") == 0) {
            a->ckpt = val;
        } else if (strcmp(opt, "--device") == 0) {
            a->device_name = val;
        } else if (strcmp(opt, "--precision") == 0) {
            a->precision = val;
        } else if (strcmp(opt, "--logits-in") == 0) {
            a->logits_in = val;
        } else if (strcmp(opt, "--logits-out") == 0) {
            a->logits_out = val;
        } else if (strcmp(opt, "--csv") == 0) {
            a->csv = val;
        } else if (strcmp(opt, "--exits-csv") == 0) {
            a->exits_csv = val;
        } else if (strcmp(opt, "--boxes-csv") == 0) {
            a->boxes_csv = val;
        } else if (strcmp(opt, "--budgets") == 0) {
            ok = parse_budgets(val, a);
        } else if (strcmp(opt, "--score") == 0) {
            ok = parse_scores(val, a);
        } else if (strcmp(opt, "--calib-transform") == 0) {
            ok = strcmp(val, "train") == 0 || strcmp(val, "test") == 0;
            a->calib_test_transform = strcmp(val, "test") == 0;
        } else if (strcmp(opt, "--init-seed") == 0 || strcmp(opt, "--seed") == 0) {
            uint64_t v = 0;
            ok = parse_u64(val, &v);
            if (strcmp(opt, "--seed") == 0)
                a->seed = v;
            else
                a->init_seed = v, a->have_init_seed = true;
        } else if (strcmp(opt, "--batch-size") == 0) {
            ok = parse_int_in(val, 1, 100000, &a->batch_size);
        } else if (size_knob) {
            ok = parse_int_in(val, 1, 1000000, size_knob);
        } else if (a->method) {
            fprintf(stderr, "focusbench eval: unknown option '%s' with --method (see focusbench eval --help)\n", opt);
            return 2;
        } else {
            int r = uaf_config_override(&a->cfg, opt, val, err, sizeof err);
            if (r < 0) {
                fprintf(stderr, "focusbench eval: %s\n", err);
                return 2;
            }
            if (r == 0) {
                fprintf(stderr, "focusbench eval: unknown option '%s' (see focusbench eval --help)\n", opt);
                return 2;
            }
        }
        if (!ok) {
            fprintf(stderr, "focusbench eval: bad value '%s' for %s (see focusbench eval --help)\n", val, opt);
            return 2;
        }
    }
    if (a->method && (a->real || a->logits_in || a->logits_out)) {
        fprintf(stderr, "focusbench eval: --real, --logits-in and --logits-out are Uni-AdaFocus's (--preset); with "
                "--method give --ckpt or --init-seed and data\n");
        return 2;
    }
    if ((a->ckpt != NULL) + a->have_init_seed + (a->logits_in != NULL) != 1) {
        fprintf(stderr, "focusbench eval: give exactly one of --ckpt FILE, --init-seed N and --logits-in FILE\n");
        return 2;
    }
    if (a->boxes_csv && a->logits_in) {
        fprintf(stderr, "focusbench eval: --boxes-csv runs the model on the validation data; it needs --ckpt or "
                "--init-seed and data, not --logits-in\n");
        return 2;
    }
    if (a->real && a->logits_in) {
        fprintf(stderr, "focusbench eval: --real runs the model; it needs --ckpt or --init-seed and data, not "
                "--logits-in\n");
        return 2;
    }
    if (!a->logits_in && (!data_args_has(&a->data, DATA_SPLIT_TRAIN, err, sizeof err) ||
                          !data_args_has(&a->data, DATA_SPLIT_VAL, err, sizeof err))) {
        fprintf(stderr, "focusbench eval: %s (both splits are needed: validation to evaluate, training to calibrate "
                "the thresholds)\n", err);
        return 2;
    }
    if ((!a->method && !uaf_config_check(&a->cfg, err, sizeof err)) ||
        !run_device_parse(a->device_name, a->precision, &a->device, err, sizeof err)) {
        fprintf(stderr, "focusbench eval: %s\n", err);
        return 2;
    }
    if (a->real && a->device.backend != BACKEND_CPU) {
        fprintf(stderr, "focusbench eval: --real times conditional exit on the CPU; for GPU timings use `focusbench "
                "profile --device cuda` (drop --real or --device cuda)\n");
        return 2;
    }
    a->frames = a->cfg.frames;
    a->frame_size = a->cfg.frame_size;
    return 0;
}

/* ---- exit logits of both splits -------------------------------------------------------------------- */

typedef struct {
    ExitLogits split[2];  /* train (calibration), val */
    uint8_t *val_gt;      /* (n_val, C) multi-hot, or NULL when single-label */
} EvalData;

static void eval_data_free(EvalData *e)
{
    exit_logits_free(&e->split[0]);
    exit_logits_free(&e->split[1]);
    free(e->val_gt);
}

/* One split's exit logits: Uni-AdaFocus (m) or a registry method (mm). */
static bool run_split(const UafModel *m, Method *mm, const EvalArgs *a, int s, EvalData *e, char *err,
                      size_t err_cap)
{
    bool calib = s == DATA_SPLIT_TRAIN;
    DataLoadOptions lo = {.frames = a->frames, .frame_size = a->frame_size, .batch_size = a->batch_size,
                          .train = calib && !a->calib_test_transform, .shuffle = false, .drop_last = false,
                          .seed = a->seed, .shard_rank = dist_rank(a->comm), .shard_world = dist_world(a->comm)};
    TrainData *d = train_data_open(&a->data, s, &lo, err, err_cap);
    if (!d)
        return false;
    printf("eval: %s split: %s%s\n", calib ? "calibration (training)" : "validation", train_data_describe(d),
           calib ? (lo.train ? ", training augmentation" : ", test transform") : "");
    fflush(stdout);
    TrainDataSource src = train_data_source(d);
    bool ok = mm ? method_collect_exit_logits(mm, &a->device, &src, 0, stdout, 50, &e->split[s], err, err_cap)
                 : collect_exit_logits(m, &a->device, &src, 0, stdout, 50, &e->split[s], err, err_cap);
    if (ok && a->comm) { /* sharded: every rank's rows, in the order one rank would have them */
        const int64_t *sizes;
        int nb = train_data_global_batches(d, &sizes);
        ok = dist_gather_exit_logits(a->comm, sizes, nb, &e->split[s], err, err_cap);
    }
    if (ok && !calib && train_data_multi_label(d)) {
        int64_t n = e->split[s].n;
        int C = e->split[s].C;
        e->val_gt = calloc((size_t)(n * C), 1);
        ok = e->val_gt != NULL;
        for (int64_t i = 0; ok && i < n; i++) {
            const int32_t *labels;
            int nl = train_data_labels(d, e->split[s].videos[i], &labels);
            for (int k = 0; k < nl; k++)
                if (labels[k] >= 0 && labels[k] < C)
                    e->val_gt[i * C + labels[k]] = 1;
        }
        if (!ok)
            snprintf(err, err_cap, "out of memory");
    }
    if (ok)
        train_data_print_summary(d);
    train_data_close(d);
    return ok;
}

static bool read_logits(const SafetensorsFile *f, const char *prefix, int K, int C, ExitLogits *out, char *err,
                        size_t err_cap)
{
    char name[64];
    snprintf(name, sizeof name, "%s_logits", prefix);
    const SafetensorsTensor *l = safetensors_find(f, name);
    snprintf(name, sizeof name, "%s_labels", prefix);
    const SafetensorsTensor *y = safetensors_find(f, name);
    if (!l || !y || l->ndim != 3 || l->shape[1] != K || l->shape[2] != C || y->ndim != 1 || y->shape[0] != l->shape[0]) {
        snprintf(err, err_cap, "%s: needs %s_logits (n, K = %d, C = %d) and %s_labels (n), as --logits-out writes them "
                 "for this preset", safetensors_path(f), prefix, K, C, prefix);
        return false;
    }
    int64_t n = l->shape[0];
    out->n = n, out->K = K, out->C = C;
    out->exit_logits = malloc((size_t)(n * K * C) * sizeof(float));
    out->labels = malloc((size_t)n * sizeof(int32_t));
    out->videos = malloc((size_t)n * sizeof(int32_t));
    int64_t *tmp = malloc((size_t)n * sizeof *tmp);
    bool ok = out->exit_logits && out->labels && out->videos && tmp &&
              safetensors_read_f32(l, out->exit_logits, n * K * C, err, err_cap) &&
              safetensors_read_i64(y, tmp, n, err, err_cap);
    for (int64_t i = 0; ok && i < n; i++)
        out->labels[i] = (int32_t)tmp[i], out->videos[i] = (int32_t)i;
    free(tmp);
    return ok;
}

static bool load_logits(const char *path, int K, int C, EvalData *e, char *err, size_t err_cap)
{
    SafetensorsFile *f = safetensors_open(path, err, err_cap);
    if (!f)
        return false;
    bool ok = read_logits(f, "train", K, C, &e->split[0], err, err_cap) &&
              read_logits(f, "val", K, C, &e->split[1], err, err_cap);
    const SafetensorsTensor *gt = ok ? safetensors_find(f, "val_targets") : NULL;
    if (gt) {
        int64_t n = e->split[1].n;
        int64_t *tmp = malloc((size_t)(n * C) * sizeof *tmp);
        e->val_gt = malloc((size_t)(n * C));
        ok = tmp && e->val_gt && gt->ndim == 2 && gt->shape[0] == n && gt->shape[1] == C &&
             safetensors_read_i64(gt, tmp, n * C, err, err_cap);
        if (!ok && tmp && e->val_gt)
            snprintf(err, err_cap, "%s: val_targets must be (n_val, C) multi-hot", path);
        for (int64_t i = 0; ok && i < n * C; i++)
            e->val_gt[i] = tmp[i] != 0;
        free(tmp);
    }
    safetensors_close(f);
    return ok;
}

static bool save_logits(const char *path, const EvalArgs *a, const EvalData *e, char *err, size_t err_cap)
{
    SafetensorsWriteTensor t[5];
    int64_t shapes[5][3];
    int n = 0;
    for (int s = 0; s < 2; s++) {
        const ExitLogits *x = &e->split[s];
        const char *ln = s == 0 ? "train_logits" : "val_logits", *yn = s == 0 ? "train_labels" : "val_labels";
        shapes[n][0] = x->n, shapes[n][1] = x->K, shapes[n][2] = x->C;
        t[n] = (SafetensorsWriteTensor){ln, SAFETENSORS_F32, 3, shapes[n], x->exit_logits};
        n++;
        shapes[n][0] = x->n;
        t[n] = (SafetensorsWriteTensor){yn, SAFETENSORS_I32, 1, shapes[n], x->labels};
        n++;
    }
    if (e->val_gt) {
        shapes[n][0] = e->split[1].n, shapes[n][1] = e->split[1].C;
        t[n] = (SafetensorsWriteTensor){"val_targets", SAFETENSORS_U8, 2, shapes[n], e->val_gt};
        n++;
    }
    SafetensorsMeta meta[] = {{"preset", a->preset_name}, {"what", "Uni-AdaFocus exit logits (n, F+1, C)"}};
    return safetensors_write(path, t, n, meta, 2, err, err_cap);
}

/* ---- metrics ---------------------------------------------------------------------------------------- */

typedef struct {
    double top1, map; /* fractions; NaN when not computed */
} Metric;

static bool metric_of(const float *scores, int64_t n, int C, const int32_t *labels, const uint8_t *gt, Metric *m,
                      char *err, size_t err_cap)
{
    m->top1 = m->map = NAN;
    if (!metrics_topk(scores, n, C, labels, 1, &m->top1, err, err_cap))
        return false;
    if (gt && !metrics_mean_ap(scores, n, C, gt, &m->map, NULL, NULL, err, err_cap))
        return false;
    return true;
}

/* ---- real execution (--real) --------------------------------------------------------------------------- */

typedef struct {
    double ms_per_video;   /* model time only (data loading excluded) */
    double agreement;      /* fraction of videos whose executed exit equals the computed one */
    double patches_per_video;
    Metric metric;         /* of the executed exits' logits */
} RealResult;

typedef struct {
    double p, gflops;
    RealResult r;
} RealRow;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static Tensor *batch_video(Ctx *ctx, const UafConfig *c, const TrainBatch *b)
{
    Tensor *v = tensor_new(ctx, DTYPE_F32, 5, (int64_t[]){b->size, c->frames, 3, c->frame_size, c->frame_size});
    if (v && v->data)
        memcpy(v->data, b->video, tensor_bytes(v));
    return v;
}

/* Model time per video of the full eval-mode forward pass over the validation split. */
static bool time_full(const UafModel *m, TrainData *d, double *ms, char *err, size_t err_cap)
{
    Ctx *ctx = ctx_create(BACKEND_CPU, 0);
    TrainDataSource src = train_data_source(d);
    bool ok = ctx && src.start_epoch(src.user, 0, err, err_cap);
    double secs = 0.0;
    int64_t n = 0;
    while (ok) {
        TrainBatch b;
        int r = src.next_batch(src.user, &b, err, err_cap);
        if (r <= 0) {
            ok = r == 0;
            break;
        }
        UafOutput o;
        UafForwardOptions fo = {0};
        /* the first batch once untimed: arena growth and kernel set-up are not the model's time */
        for (int rep = n == 0 ? 0 : 1; ok && rep < 2; rep++) {
            ctx_begin_pass(ctx);
            Tensor *v = batch_video(ctx, &m->cfg, &b);
            double t0 = now_seconds();
            ok = v && uaf_forward(ctx, m, v, &fo, &o);
            if (rep == 1)
                secs += now_seconds() - t0;
        }
        n += b.size;
        if (!ok)
            snprintf(err, err_cap, "%s", ctx_error_message(ctx));
    }
    ctx_destroy(ctx);
    *ms = n > 0 ? 1e3 * secs / (double)n : NAN;
    return ok;
}

/* Executes conditional exit with thresholds T over the validation split (same order as `val`). */
static bool run_real(const UafModel *m, const EvalArgs *a, TrainData *d, const float *T, ExitScoreKind kind,
                     const int32_t *computed, const ExitLogits *val, const uint8_t *gt, RealResult *res, char *err,
                     size_t err_cap)
{
    const int C = a->cfg.num_classes;
    const int64_t nv = val->n;
    float *logits = malloc((size_t)(nv * C) * sizeof *logits);  /* (n_val, C) */
    int32_t *exits = malloc((size_t)nv * sizeof *exits);         /* (n_val) */
    Ctx *ctx = ctx_create(BACKEND_CPU, 0);
    TrainDataSource src = train_data_source(d);
    bool ok = logits && exits && ctx && src.start_epoch(src.user, 0, err, err_cap);
    if (!logits || !exits || !ctx)
        snprintf(err, err_cap, "out of memory");
    double secs = 0.0;
    int64_t n = 0, patches = 0, agree = 0;
    while (ok) {
        TrainBatch b;
        int r = src.next_batch(src.user, &b, err, err_cap);
        if (r <= 0) {
            ok = r == 0;
            break;
        }
        if (n + b.size > nv) {
            snprintf(err, err_cap, "the validation split gave more clips than the first pass (%lld)", (long long)nv);
            ok = false;
            break;
        }
        ExitRunStats st;
        for (int rep = n == 0 ? 0 : 1; ok && rep < 2; rep++) { /* the first batch once untimed, as above */
            ctx_begin_pass(ctx);
            Tensor *v = batch_video(ctx, &m->cfg, &b);
            ok = v && exit_run_batch(ctx, m, v, T, kind, exits + n, logits + n * C, &st);
        }
        if (!ok) {
            snprintf(err, err_cap, "%s", ctx_error_message(ctx));
            break;
        }
        secs += st.seconds;
        patches += st.patches;
        n += b.size;
    }
    if (ok && n != nv) {
        snprintf(err, err_cap, "the validation split gave %lld clips, the first pass %lld", (long long)n, (long long)nv);
        ok = false;
    }
    for (int64_t i = 0; ok && i < nv; i++)
        agree += exits[i] == computed[i];
    if (ok) {
        res->ms_per_video = 1e3 * secs / (double)nv;
        res->agreement = (double)agree / (double)nv;
        res->patches_per_video = (double)patches / (double)nv;
        ok = metric_of(logits, nv, C, val->labels, gt, &res->metric, err, err_cap);
    }
    ctx_destroy(ctx);
    free(logits);
    free(exits);
    return ok;
}

/* ---- boxes against the ground truth (--boxes-csv) ----------------------------------------------------- */

/* The policy's boxes on the validation split scored against the synthetic ground truth. A method
 * without boxes, or data without ground truth, is said so on stderr and nothing is written (not an
 * error: the rest of eval stands). False only when the pass or the file fails. */
static bool eval_boxes(const EvalArgs *a, Method *mm, const UafModel *m, int argc, char **argv, BoxSummary *sum,
                       char *err, size_t err_cap)
{
    sum->n = -1; /* nothing written */
    if (mm && !mm->ops->focus_boxes) {
        fprintf(stderr, "eval: --boxes-csv: %s has no spatial policy (no boxes to score); %s not written\n", mm->id,
                a->boxes_csv);
        return true;
    }
    BoxTruth truth;
    if (!box_truth_load(&a->data, a->frame_size, &truth, err, err_cap)) {
        fprintf(stderr, "eval: --boxes-csv: %s; %s not written\n", err, a->boxes_csv);
        return true;
    }
    /* the validation loader of run_split, unsharded: the same clips in the same order */
    DataLoadOptions lo = {.frames = a->frames, .frame_size = a->frame_size, .batch_size = a->batch_size,
                          .train = false, .shuffle = false, .drop_last = false, .seed = a->seed};
    TrainData *d = train_data_open(&a->data, DATA_SPLIT_VAL, &lo, err, err_cap);
    BoxRecords rec;
    memset(&rec, 0, sizeof rec);
    bool ok = d != NULL;
    if (ok) {
        printf("eval: boxes: a pass over the validation split for the focus boxes\n");
        fflush(stdout);
        TrainDataSource src = train_data_source(d);
        ok = boxes_collect(&src, mm, mm ? NULL : m, &a->device, a->frames, a->frame_size, &rec, err, err_cap);
    }
    if (ok) {
        CsvEnv env;
        csv_env_init(&env, a->device.backend == BACKEND_CUDA ? "cuda" : "cpu", argc, argv);
        csv_env_set_seed(&env, a->seed);
        ok = boxes_write_csv(a->boxes_csv, &rec, &truth, a->frames, a->frame_size, data_args_whole_frame(&a->data),
                             a->method_id, a->preset_name, &env, sum, err, err_cap);
    }
    if (!ok)
        sum->n = -1;
    train_data_close(d);
    box_records_free(&rec);
    box_truth_free(&truth);
    return ok;
}

/* ---- exit histograms (--exits-csv) ----------------------------------------------------------------------- */

static const char *const EXIT_COLUMNS[] = {"method", "preset", "mode", "score", "budget_p", "point", "exit", "videos",
                                           "share", "gflops_per_video", "n_val"};
enum { N_EXIT_COLUMNS = sizeof EXIT_COLUMNS / sizeof EXIT_COLUMNS[0] };

/* One histogram: K rows (every exit, zeros included, so each histogram's rows sum to n_val). */
static void exit_rows(CsvOut *w, const EvalArgs *a, const char *mode, const char *score, double p, const char *point,
                      const int64_t *hist, int K, double gflops, int64_t n_val)
{
    if (!w)
        return;
    for (int k = 0; k < K; k++) {
        csv_out_str(w, a->method_id);
        csv_out_str(w, a->preset_name);
        csv_out_str(w, mode);
        csv_out_str(w, score);
        csv_out_double(w, p);
        csv_out_str(w, point);
        csv_out_int(w, k);
        csv_out_int(w, hist[k]);
        csv_out_double(w, n_val > 0 ? (double)hist[k] / (double)n_val : NAN);
        csv_out_double(w, gflops);
        csv_out_int(w, n_val);
        csv_out_end_row(w);
    }
}

/* ---- the command ------------------------------------------------------------------------------------- */

static const char *const COLUMNS[] = {"method", "preset", "mode", "score", "budget_p", "exit", "gflops_per_video",
                                      "top1", "map", "exit_fractions", "n_val", "n_calib", "ms_per_video",
                                      "exit_agreement"};
enum { N_COLUMNS = sizeof COLUMNS / sizeof COLUMNS[0] };

static void csv_row(CsvOut *w, const EvalArgs *a, const char *mode, const char *score, double p, int exit_k,
                    double gflops, const Metric *m, const char *fractions, int64_t n_val, int64_t n_calib,
                    double ms_per_video, double agreement)
{
    if (!w)
        return;
    csv_out_str(w, a->method_id);
    csv_out_str(w, a->preset_name);
    csv_out_str(w, mode);
    csv_out_str(w, score);
    csv_out_double(w, p);
    if (exit_k >= 0)
        csv_out_int(w, exit_k);
    else
        csv_out_empty(w);
    csv_out_double(w, gflops);
    csv_out_double(w, 100.0 * m->top1);
    csv_out_double(w, 100.0 * m->map);
    csv_out_str(w, fractions);
    csv_out_int(w, n_val);
    csv_out_int(w, n_calib);
    csv_out_double(w, ms_per_video);
    csv_out_double(w, agreement);
    csv_out_end_row(w);
}

/* Mean GFLOPs per video when video i exits at exit_of[i], from the per-video costs forward_exits
 * reported (AR-Net's depend on each video's decisions). */
static double sample_cost_mean(const ExitLogits *v, const int32_t *exit_of)
{
    if (!v->sample_gflops || v->n == 0)
        return NAN;
    double sum = 0.0;
    for (int64_t i = 0; i < v->n; i++)
        sum += v->sample_gflops[i * v->K + exit_of[i]];
    return sum / (double)v->n;
}

static void print_metric(const Metric *m)
{
    printf("  %6.2f", 100.0 * m->top1);
    if (!isnan(m->map))
        printf("  %6.2f", 100.0 * m->map);
}

int cmd_eval(int argc, char **argv)
{
    EvalArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc)
        return rc;
    char err[4096];
    rc = 1;
    /* under `focusbench launch`: the data split over the ranks, rank 0 reports and writes */
    a.comm = NULL;
    if (getenv("FOCUSBENCH_WORLD_SIZE")) {
        if (!(a.comm = dist_init_from_env(err, sizeof err))) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            return 1;
        }
        if (dist_rank(a.comm) != 0 && !freopen("/dev/null", "w", stdout)) {
            dist_destroy(a.comm);
            return 1;
        }
        printf("eval: data split over %d ranks (%s backend), logits gathered on rank 0\n", dist_world(a.comm),
               dist_backend_name(a.comm));
    }
    int K = a.cfg.focus + 1, C = a.cfg.num_classes;
    EvalData e;
    memset(&e, 0, sizeof e);
    UafModel *m = NULL;
    CsvOut *w = NULL, *wx = NULL;
    float *scores[2] = {NULL, NULL}, *selected = NULL;
    int32_t *exit_of = NULL;
    TrainData *real_data = NULL;
    RealRow real_rows[MAX_BUDGETS];
    int n_real = 0, first_score = -1;
    double full_ms = NAN;
    Method *mm = NULL;
    double cost[EXIT_MAX_EXITS]; /* (K) GFLOPs per video at each exit */
    bool per_sample = false;     /* AR-Net: expected cost = the mean of the per-video costs */
    if (a.method) {
        if (!(mm = method_create(a.method, &a.ov, BACKEND_CPU, false, a.init_seed, err, sizeof err))) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            return 1;
        }
        K = mm->n_exits;
        C = mm->classes;
        a.frames = method_frames(mm);
        a.frame_size = method_frame_size(mm);
        a.preset_name = mm->preset;
        a.method_id = mm->id;
        per_sample = strcmp(mm->id, "arnet") == 0;
        if (K > EXIT_MAX_EXITS || !mm->ops->exit_gflops(mm, cost, err, sizeof err)) {
            if (K > EXIT_MAX_EXITS)
                snprintf(err, sizeof err, "%s has %d exits, more than the %d conditional exit handles", mm->id, K,
                         (int)EXIT_MAX_EXITS);
            fprintf(stderr, "focusbench eval: %s\n", err);
            method_destroy(mm);
            return 1;
        }
    } else {
        UafFlops fl;
        if (!uaf_flops(&a.cfg, &fl, err, sizeof err)) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            return 1;
        }
        for (int k = 0; k < K; k++)
            cost[k] = fl.exit[k] / 1e9;
    }
    if (a.logits_in) {
        if (!load_logits(a.logits_in, K, C, &e, err, sizeof err)) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            goto done;
        }
    } else if (mm) {
        CheckpointLoadOptions o = {.strip_prefix = "module."};
        if ((a.ckpt && !checkpoint_load(mm->ps, a.ckpt, &o, err, sizeof err)) ||
            !run_split(NULL, mm, &a, DATA_SPLIT_VAL, &e, err, sizeof err) ||
            !run_split(NULL, mm, &a, DATA_SPLIT_TRAIN, &e, err, sizeof err)) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            goto done;
        }
    } else {
        if (!(m = uaf_create(&a.cfg, BACKEND_CPU, false, err, sizeof err))) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            goto done;
        }
        if (a.ckpt) {
            CheckpointLoadOptions o = {.strip_prefix = "module."};
            if (!checkpoint_load(m->ps, a.ckpt, &o, err, sizeof err)) {
                fprintf(stderr, "focusbench eval: %s\n", err);
                goto done;
            }
        } else {
            uaf_init(m, a.init_seed);
        }
        if (!run_split(m, NULL, &a, DATA_SPLIT_VAL, &e, err, sizeof err) ||
            !run_split(m, NULL, &a, DATA_SPLIT_TRAIN, &e, err, sizeof err)) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            goto done;
        }
    }
    if (dist_rank(a.comm) != 0) { /* the other ranks' part is done: rank 0 has every row */
        rc = 0;
        goto done;
    }
    if (a.logits_out && !save_logits(a.logits_out, &a, &e, err, sizeof err)) {
        fprintf(stderr, "focusbench eval: %s\n", err);
        goto done;
    }
    BoxSummary box_sum = {.n = -1};
    if (a.boxes_csv && !eval_boxes(&a, mm, m, argc, argv, &box_sum, err, sizeof err)) {
        fprintf(stderr, "focusbench eval: --boxes-csv: %s\n", err);
        goto done;
    }
    const ExitLogits *cal = &e.split[0], *val = &e.split[1];
    int64_t nv = val->n, nc = cal->n;
    if (a.csv) {
        CsvEnv env;
        csv_env_init(&env, a.device.backend == BACKEND_CUDA ? "cuda" : "cpu", argc, argv);
        csv_env_set_seed(&env, a.seed);
        if (!(w = csv_out_open(a.csv, COLUMNS, N_COLUMNS, &env, err, sizeof err))) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            goto done;
        }
    }
    if (a.exits_csv) {
        CsvEnv env;
        csv_env_init(&env, a.device.backend == BACKEND_CUDA ? "cuda" : "cpu", argc, argv);
        csv_env_set_seed(&env, a.seed);
        if (!(wx = csv_out_open(a.exits_csv, EXIT_COLUMNS, N_EXIT_COLUMNS, &env, err, sizeof err))) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            goto done;
        }
    }
    scores[0] = malloc((size_t)(nc * K) * sizeof(float));
    scores[1] = malloc((size_t)(nv * K) * sizeof(float));
    selected = malloc((size_t)(nv * C) * sizeof(float));
    exit_of = malloc((size_t)nv * sizeof *exit_of);
    if (!scores[0] || !scores[1] || !selected || !exit_of) {
        fprintf(stderr, "focusbench eval: out of memory\n");
        goto done;
    }

    printf("\neval: %s, %lld validation and %lld calibration clips, %d exits, %s\n", a.preset_name, (long long)nv,
           (long long)nc, K, e.val_gt ? "top-1 and mAP (%)" : "top-1 (%)");
    printf("\nfixed exits (validation):\n  exit   GFLOPs     top1%s\n", e.val_gt ? "     mAP" : "");
    for (int k = 0; k < K; k++) {
        for (int64_t i = 0; i < nv; i++)
            exit_of[i] = k;
        exit_select_logits(val->exit_logits, nv, K, C, exit_of, selected);
        Metric mt;
        if (!metric_of(selected, nv, C, val->labels, e.val_gt, &mt, err, sizeof err)) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            goto done;
        }
        double gk = per_sample ? sample_cost_mean(val, exit_of) : cost[k];
        printf("  %4d  %7.3f", k, gk);
        print_metric(&mt);
        printf("\n");
        csv_row(w, &a, "fixed", NULL, NAN, k, gk, &mt, NULL, nv, nc, NAN, NAN);
        if (wx) { /* trivially: every video at exit k */
            int64_t hist[EXIT_MAX_EXITS] = {0};
            char point[32];
            hist[k] = nv;
            snprintf(point, sizeof point, "exit%d", k);
            exit_rows(wx, &a, "fixed", NULL, NAN, point, hist, K, gk, nv);
        }
    }
    for (int sk = EXIT_SCORE_COUNT - 1; sk >= 0; sk--)
        if (a.score_on[sk])
            first_score = sk;
    if (a.real) {
        DataLoadOptions lo = {.frames = a.cfg.frames, .frame_size = a.cfg.frame_size, .batch_size = a.batch_size,
                              .train = false, .shuffle = false, .drop_last = false, .seed = a.seed};
        if (!(real_data = train_data_open(&a.data, DATA_SPLIT_VAL, &lo, err, sizeof err)) ||
            !time_full(m, real_data, &full_ms, err, sizeof err)) {
            fprintf(stderr, "focusbench eval: --real: %s\n", err);
            goto done;
        }
        Metric none = {NAN, NAN};
        csv_row(w, &a, "full", NULL, NAN, K - 1, cost[K - 1], &none, NULL, nv, nc, full_ms, NAN);
    }
    for (int sk = 0; sk < EXIT_SCORE_COUNT; sk++) {
        if (!a.score_on[sk])
            continue;
        if (!exit_scores(cal->exit_logits, nc, K, C, (ExitScoreKind)sk, scores[0], err, sizeof err) ||
            !exit_scores(val->exit_logits, nv, K, C, (ExitScoreKind)sk, scores[1], err, sizeof err)) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            goto done;
        }
        printf("\nconditional exit, score %s (thresholds from the calibration split):\n", exit_score_name(sk));
        printf("       p   GFLOPs     top1%s   random-exit top1%s   exits (%% of videos at exit 0..%d)\n",
               e.val_gt ? "     mAP" : "", e.val_gt ? "     mAP" : "", K - 1);
        for (int bi = 0; bi < a.n_budgets; bi++) {
            float q[EXIT_MAX_EXITS], T[EXIT_MAX_EXITS];
            int64_t hist[EXIT_MAX_EXITS];
            if (!exit_budget_fractions(a.budgets[bi], K, q, err, sizeof err) ||
                !exit_calibrate(scores[0], nc, K, q, T, NULL, err, sizeof err)) {
                fprintf(stderr, "focusbench eval: %s\n", err);
                goto done;
            }
            exit_assign(scores[1], nv, K, T, exit_of, hist);
            double gflops = per_sample ? sample_cost_mean(val, exit_of) : exit_expected_cost(hist, K, cost);
            exit_select_logits(val->exit_logits, nv, K, C, exit_of, selected);
            Metric md, mr;
            bool ok = metric_of(selected, nv, C, val->labels, e.val_gt, &md, err, sizeof err) &&
                      exit_random_assign(hist, K, nv, a.seed + (uint64_t)bi, exit_of, err, sizeof err);
            if (ok) {
                exit_select_logits(val->exit_logits, nv, K, C, exit_of, selected);
                ok = metric_of(selected, nv, C, val->labels, e.val_gt, &mr, err, sizeof err);
            }
            if (!ok) {
                fprintf(stderr, "focusbench eval: %s\n", err);
                goto done;
            }
            char fr[EXIT_MAX_EXITS * 12] = "";
            size_t len = 0;
            for (int k = 0; k < K; k++)
                len += (size_t)snprintf(fr + len, sizeof fr - len, "%s%.4g", k ? " " : "", (double)hist[k] / nv);
            printf("  %6.3g  %7.3f", a.budgets[bi], gflops);
            print_metric(&md);
            printf("       ");
            print_metric(&mr);
            printf("        ");
            for (int k = 0; k < K; k++)
                printf("%s%.0f", k ? " " : "", 100.0 * hist[k] / nv);
            printf("\n");
            csv_row(w, &a, "dynamic", exit_score_name(sk), a.budgets[bi], -1, gflops, &md, fr, nv, nc, NAN, NAN);
            char point[48];
            snprintf(point, sizeof point, "p=%g", a.budgets[bi]);
            exit_rows(wx, &a, "dynamic", exit_score_name(sk), a.budgets[bi], point, hist, K, gflops, nv);
            csv_row(w, &a, "random", exit_score_name(sk), a.budgets[bi], -1, gflops, &mr, fr, nv, nc, NAN, NAN);
            if (real_data && sk == first_score) {
                /* the computed exits again (exit_of now holds the random control's) */
                exit_assign(scores[1], nv, K, T, exit_of, NULL);
                RealResult rr;
                if (!run_real(m, &a, real_data, T, (ExitScoreKind)sk, exit_of, val, e.val_gt, &rr, err, sizeof err)) {
                    fprintf(stderr, "focusbench eval: --real: %s\n", err);
                    goto done;
                }
                real_rows[n_real++] = (RealRow){a.budgets[bi], gflops, rr};
                csv_row(w, &a, "real", exit_score_name(sk), a.budgets[bi], -1, gflops, &rr.metric, fr, nv, nc,
                        rr.ms_per_video, rr.agreement);
            }
        }
    }
    if (n_real > 0) {
        printf("\nexecuted conditional exit, score %s (validation; model time only, CPU, batch %d):\n",
               exit_score_name(first_score), a.batch_size);
        printf("  full model: %.2f ms/video, %.3f GFLOPs\n", full_ms, cost[K - 1]);
        printf("       p   GFLOPs  computed-saving   ms/video  measured-saving  patches/video  same-exit   top1%s\n",
               e.val_gt ? "     mAP" : "");
        for (int r = 0; r < n_real; r++) {
            const RealRow *x = &real_rows[r];
            printf("  %6.3g  %7.3f  %14.2fx  %9.2f  %14.2fx  %13.2f  %8.1f%%", x->p, x->gflops, cost[K - 1] / x->gflops,
                   x->r.ms_per_video, full_ms / x->r.ms_per_video, x->r.patches_per_video, 100.0 * x->r.agreement);
            print_metric(&x->r.metric);
            printf("\n");
        }
    }
    if (w) {
        bool ok = csv_out_commit(w, err, sizeof err);
        w = NULL;
        if (!ok) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            goto done;
        }
        printf("\neval: wrote %s\n", a.csv);
    }
    if (wx) {
        bool ok = csv_out_commit(wx, err, sizeof err);
        wx = NULL;
        if (!ok) {
            fprintf(stderr, "focusbench eval: %s\n", err);
            goto done;
        }
        printf("eval: wrote %s (exit histograms)\n", a.exits_csv);
    }
    if (box_sum.n >= 0) /* printed last, where a reader of the tables looks */
        printf("eval: boxes vs the ground-truth object: mean IoU %.4f over %lld boxes (%.4f over the %lld on frames "
               "showing the evidence); wrote %s\n", box_sum.mean_iou, (long long)box_sum.n, box_sum.mean_iou_evidence,
               (long long)box_sum.n_evidence, a.boxes_csv);
    rc = 0;
done:
    train_data_close(real_data);
    csv_out_abort(w);
    csv_out_abort(wx);
    free(scores[0]);
    free(scores[1]);
    free(selected);
    free(exit_of);
    eval_data_free(&e);
    uaf_destroy(m);
    method_destroy(mm);
    dist_destroy(a.comm);
    return rc;
}
