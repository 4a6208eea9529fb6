/* cmd_train.c — `focusbench train`: end-to-end training of Uni-AdaFocus (CPU or GPU), resumable.
 *
 * Owns: the command's options (the preset's official training settings, each overridable), the
 * model's initial weights (random, a whole checkpoint, or ImageNet backbones), the training data
 * (bench/train_data.h), the run directory and its per-epoch log, and handing everything to
 * impl/train_loop.h, which writes OUT/train_state.safetensors and OUT/model.safetensors after
 * every epoch. After a kill, the same command with --resume continues from the last epoch and
 * ends with the weights an uninterrupted run would have had.
 *
 * OUT/train_log.csv gets one row per epoch (rewritten atomically after each one; a resumed run
 * keeps the earlier epochs' rows).
 *
 * With --method ID_OR_PRESET any method of the registry (baselines/registry.h: TSN, TSM, the
 * ablations, ...) is trained instead, through the generic loop of bench/train_data.h, with the
 * preset's training settings; the Uni-AdaFocus command lines (--preset) are unchanged.
 */
#include <float.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/cli.h"
#include "bench/csv_out.h"
#include "bench/parse_num.h"
#include "bench/pretrained.h"
#include "bench/train_data.h"
#include "baselines/registry.h"
#include "impl/checkpoint.h"
#include "impl/presets.h"
#include "impl/train_loop.h"
#include "impl/uniadafocus.h"
#include "kernels/dist/dist_rendezvous.h"

/* Data parallelism: under `focusbench launch` (FOCUSBENCH_WORLD_SIZE set) the communicator of the
 * ranks, else NULL (a plain run). Ranks other than 0 print nothing on stdout: rank 0 speaks for the
 * run and writes its files. FOCUSBENCH_SYNC_BN=1 (launch --sync-bn): synchronised batch norm, every
 * training-mode batch norm normalises with the statistics of the whole global batch (kernels/ops_norm.c). */
static bool dist_begin(DistComm **comm, bool *sync_bn)
{
    *comm = NULL;
    *sync_bn = false;
    if (!getenv("FOCUSBENCH_WORLD_SIZE"))
        return true;
    char err[1024];
    if (!(*comm = dist_init_from_env(err, sizeof err))) {
        fprintf(stderr, "focusbench train: %s\n", err);
        return false;
    }
    const char *sb = getenv("FOCUSBENCH_SYNC_BN");
    *sync_bn = sb && strcmp(sb, "1") == 0;
    if (dist_rank(*comm) != 0 && !freopen("/dev/null", "w", stdout)) {
        fprintf(stderr, "focusbench train: rank %d cannot silence its output\n", dist_rank(*comm));
        return false;
    }
    printf("train: data-parallel rank 0 of %d (%s backend%s%s), global batch split over the ranks\n",
           dist_world(*comm), dist_backend_name(*comm), *sync_bn ? ", synchronised batch norm" : "",
           dist_world(*comm) > 1 ? ", gradients averaged over the ranks" : "");
    return true;
}

/* Every rank needs a slice of every global batch. */
static bool dist_batch_ok(const DistComm *comm, int batch)
{
    if (batch >= dist_world(comm))
        return true;
    fprintf(stderr, "focusbench train: a global batch of %d clips cannot feed %d ranks: raise --batch-size to at "
            "least %d\n", batch, dist_world(comm), dist_world(comm));
    return false;
}

/* Data-parallel runs: every rank must end with the same trainable weights (the averaged gradients
 * make every update identical); a rank that drifted means a broken all-reduce. ps on the host. */
static bool replicas_check(DistComm *comm, const ParamSet *ps)
{
    if (dist_world(comm) < 2)
        return true;
    int64_t n = params_count_trainable(ps), k = 0;
    float *w = malloc((size_t)n * sizeof *w); /* (n) the trainable tensors, declaration order */
    if (!w) {
        fprintf(stderr, "focusbench train: out of memory checking the replicas\n");
        return false;
    }
    for (int i = 0; i < ps->n; i++)
        if (ps->items[i]->requires_grad) {
            memcpy(w + k, ps->items[i]->data, (size_t)tensor_numel(ps->items[i]) * sizeof *w);
            k += tensor_numel(ps->items[i]);
        }
    char err[512];
    int bad = -1;
    bool ok = dist_replicas_agree(comm, w, (size_t)n * sizeof *w, &bad, err, sizeof err);
    free(w);
    if (!ok)
        fprintf(stderr, "focusbench train: checking the replicas: %s\n", err);
    else if (bad >= 0)
        fprintf(stderr, "focusbench train: rank %d ended with other weights than rank 0: the gradient all-reduce is "
                "broken (report it with the launch command)\n", bad);
    else
        printf("train: all %d ranks hold identical weights (%lld trainable values)\n", dist_world(comm), (long long)n);
    return ok && bad < 0;
}

static void usage(FILE *out)
{
    char names[512];
    fprintf(out,
            "usage: focusbench train --preset NAME --out DIR (data) [--resume] [options] [size overrides]\n\n"
            "Trains Uni-AdaFocus end to end as the official main.py does (two patch sets, every loss with the\n"
            "official weights, SGD with momentum, per-module learning-rate multipliers, cosine schedule), on the\n"
            "CPU or a GPU (--device). After every epoch DIR/train_state.safetensors (everything a resume needs) and\n"
            "DIR/model.safetensors (the model under the official keys, for `infer` and `eval`) are written\n"
            "atomically, and DIR/train_log.csv gets the epoch's losses. After a kill, rerun with --resume.\n\n"
            "  --preset NAME           %s\n"
            "  --out DIR               run directory (created if missing)\n"
            "  --resume                continue from DIR/train_state.safetensors (same options required)\n"
            "  --epochs N              (preset: 50 for the paper's sets)\n"
            "  --batch-size B          clips per step (preset: the official total batch)\n"
            "  --lr X                  base learning rate (preset)\n"
            "  --weight-decay X        (preset)\n"
            "  --momentum X            (0.9)\n"
            "  --lr-schedule S         cos (official), step, constant\n"
            "  --lr-steps E1,E2,...    epochs where the step schedule divides the rate by 10\n"
            "  --global-lr-ratio X     global CNN and its heads (0.5)\n"
            "  --stn-lr-ratio X        spatial policy (0.2)\n"
            "  --temporal-lr-ratio X   temporal policy (0.2)\n"
            "  --classifier-lr-ratio X the classifier (20)\n"
            "  --norm-ratio X          box-size regulariser weight (preset)\n"
            "  --mc-samples N          Monte-Carlo samples of the temporal loss (128)\n"
            "  --single-spatial-pass   run the spatial policy once per step (the official code runs it twice,\n"
            "                          so its batch norms update their running statistics twice)\n"
            "  --seed N                master seed of data order, augmentation and every draw (0)\n"
            "  --init-seed N           seed of the random initial weights (default: --seed)\n"
            "  --init FILE             initial weights: a whole model (official keys; \"module.\" is stripped)\n"
            "  --pretrained-global F   ImageNet MobileNetV2 weights for global_CNN (keys without the prefix),\n"
            "                          or a focusbench TSN checkpoint (its base_model.* backbone)\n"
            "  --pretrained-local F    ImageNet ResNet weights for local_CNN (the same two forms)\n"
            "  --stop-after N          stop after N epochs of this invocation (resume later)\n"
            "  --log-every N           a progress line every N steps (default 10; 0: epoch lines only)\n"
            "  --device D              cpu (default) or cuda: the steps on the GPU, parameters, gradients and\n"
            "                          momentum resident there (checkpoints identical in format)\n"
            "  --precision P           with --device cuda: fp32 (default, strict), tf32 or bf16 (fp32 accumulate,\n"
            "                          fp32 master weights)\n\n"
            "%s\n"
            "any method of the registry (TSN, TSM, ...; --method replaces --preset):\n"
            "  focusbench train --method ID_OR_PRESET --out DIR (data) [--resume] [--epochs N] [--batch-size B]\n"
            "                   [--lr X] [--weight-decay X] [--momentum X] [--grad-clip X] [--seed N] [--init-seed N]\n"
            "                   [--init FILE] [--stop-after N] [--log-every N] [--device D] [--precision P]\n"
            "                   [--frames T] [--frame-size S]\n"
            "                   [--classes C] [--glance G] [--focus F] [--patch-size P] [--pretrained PREFIX=FILE]...\n"
            "  (defaults: the preset's training settings; cosine schedule)\n"
            "  --pretrained PREFIX=FILE  initial weights of the parameters under PREFIX (e.g. local_CNN., backbone.)\n"
            "                          from a backbone file or a focusbench TSN checkpoint (its base_model.*);\n"
            "                          repeatable, applied after --init\n\n"
            "size overrides of the preset:\n",
            uaf_preset_names(names, sizeof names), data_args_help());
    const char *name, *help;
    for (int i = 0; uaf_config_knob(i, &name, &help); i++)
        fprintf(out, "  --%-20s %s\n", name, help);
    fprintf(out, "\nmethods and presets for --method:\n");
    method_print_help(out);
    fprintf(out, "\nexamples:\n"
                 "  focusbench gen-data --out synth && focusbench train --preset synth-tiny --data synth --out run1\n"
                 "  focusbench train --preset synth-tiny --synthetic 64 --epochs 5 --out run2\n"
                 "  focusbench train --preset actnet-p128 --list train.txt --root frames --out run3 --resume\n"
                 "  focusbench train --method tsn-mbv2-synth --data synth --out tsn1\n");
}

typedef struct {
    const char *preset_name, *out, *init, *pretrained_global, *pretrained_local;
    const char *device, *precision; /* --device, --precision (NULL: the CPU) */
    bool resume, have_init_seed;
    uint64_t init_seed;
    int batch_size, log_every;
    UafConfig cfg;
    TrainConfig tc;
    DataArgs data;
} TrainArgs;

/* A float preset value as the decimal the official command line writes (0.002f → 0.002), so the
 * schedule is computed from the same double as Python's. */
static double decimal_of(float f)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)f);
    return strtod(buf, NULL);
}

/* 0 parsed, 2 usage error (printed), −1 --help. */
static int parse_args(int argc, char **argv, TrainArgs *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return -1;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--preset") == 0)
            a->preset_name = argv[i + 1];
    if (!a->preset_name) {
        fprintf(stderr, "focusbench train: --preset NAME is required (see focusbench train --help)\n");
        return 2;
    }
    const UafPreset *p = uaf_preset_find(a->preset_name);
    if (!p) {
        char names[512];
        fprintf(stderr, "focusbench train: unknown preset '%s' (known: %s)\n", a->preset_name,
                uaf_preset_names(names, sizeof names));
        return 2;
    }
    a->cfg = p->cfg;
    TrainConfig *t = &a->tc;
    *t = train_config_default();
    t->lr = decimal_of(p->train.lr);
    t->weight_decay = decimal_of(p->train.weight_decay);
    t->momentum = decimal_of(p->train.momentum);
    t->epochs = p->train.epochs;
    t->norm_ratio = p->train.norm_ratio;
    t->global_lr_ratio = decimal_of(p->train.global_lr_ratio);
    t->stn_lr_ratio = decimal_of(p->train.stn_lr_ratio);
    t->temporal_lr_ratio = decimal_of(p->train.temporal_lr_ratio);
    t->classifier_lr_ratio = decimal_of(p->train.classifier_lr_ratio);
    t->mc_samples = p->train.mc_samples;
    a->batch_size = p->train.batch_size;
    a->log_every = 10;
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--resume") == 0) {
            a->resume = true;
            continue;
        }
        if (strcmp(opt, "--single-spatial-pass") == 0) {
            t->single_spatial_pass = true;
            continue;
        }
        int d = data_args_option(&a->data, opt, i + 1 < argc ? argv[i + 1] : NULL, err, sizeof err);
        if (d == 2)
            continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "focusbench train: %s needs a value (see focusbench train --help)\n", opt);
            return 2;
        }
        const char *val = argv[++i];
        if (d < 0) {
            fprintf(stderr, "focusbench train: %s\n", err);
            return 2;
        }
        if (d == 1 || strcmp(opt, "--preset") == 0)
            continue;
        bool ok = true;
        long n;
        double x;
        if (strcmp(opt, "--out") == 0) {
            a->out = val;
        } else if (strcmp(opt, "--device") == 0) {
            a->device = val;
        } else if (strcmp(opt, "--precision") == 0) {
            a->precision = val;
        } else if (strcmp(opt, "--init") == 0) {
            a->init = val;
        } else if (strcmp(opt, "--pretrained-global") == 0) {
            a->pretrained_global = val;
        } else if (strcmp(opt, "--pretrained-local") == 0) {
            a->pretrained_local = val;
        } else if (strcmp(opt, "--epochs") == 0) {
            ok = parse_long_in(val, 1, 1000000, &n) && (t->epochs = (int)n, true);
        } else if (strcmp(opt, "--batch-size") == 0) {
            ok = parse_long_in(val, 1, 1000000, &n) && (a->batch_size = (int)n, true);
        } else if (strcmp(opt, "--lr") == 0) {
            ok = parse_double_in(val, 0.0, DBL_MAX, &t->lr);
        } else if (strcmp(opt, "--weight-decay") == 0) {
            ok = parse_double_in(val, 0.0, DBL_MAX, &t->weight_decay);
        } else if (strcmp(opt, "--momentum") == 0) {
            ok = parse_double_in(val, 0.0, DBL_MAX, &t->momentum) && t->momentum < 1.0;
        } else if (strcmp(opt, "--global-lr-ratio") == 0) {
            ok = parse_double_in(val, 0.0, DBL_MAX, &t->global_lr_ratio);
        } else if (strcmp(opt, "--stn-lr-ratio") == 0) {
            ok = parse_double_in(val, 0.0, DBL_MAX, &t->stn_lr_ratio);
        } else if (strcmp(opt, "--temporal-lr-ratio") == 0) {
            ok = parse_double_in(val, 0.0, DBL_MAX, &t->temporal_lr_ratio);
        } else if (strcmp(opt, "--classifier-lr-ratio") == 0) {
            ok = parse_double_in(val, 0.0, DBL_MAX, &t->classifier_lr_ratio);
        } else if (strcmp(opt, "--norm-ratio") == 0) {
            ok = parse_double_in(val, 0.0, DBL_MAX, &x) && (t->norm_ratio = (float)x, true);
        } else if (strcmp(opt, "--mc-samples") == 0) {
            ok = parse_long_in(val, 1, 1000000, &n) && (t->mc_samples = (int)n, true);
        } else if (strcmp(opt, "--seed") == 0) {
            ok = parse_u64(val, &t->seed);
        } else if (strcmp(opt, "--init-seed") == 0) {
            ok = parse_u64(val, &a->init_seed) && (a->have_init_seed = true);
        } else if (strcmp(opt, "--stop-after") == 0) {
            ok = parse_long_in(val, 1, 1000000, &n) && (t->stop_after_epochs = (int)n, true);
        } else if (strcmp(opt, "--log-every") == 0) {
            ok = parse_long_in(val, 0, 1000000000, &n) && (a->log_every = (int)n, true);
        } else if (strcmp(opt, "--lr-schedule") == 0) {
            if (strcmp(val, "cos") == 0 || strcmp(val, "cosine") == 0)
                t->schedule = SGD_SCHEDULE_COSINE;
            else if (strcmp(val, "step") == 0)
                t->schedule = SGD_SCHEDULE_STEP;
            else if (strcmp(val, "constant") == 0)
                t->schedule = SGD_SCHEDULE_CONSTANT;
            else
                ok = false;
        } else if (strcmp(opt, "--lr-steps") == 0) {
            t->n_lr_steps = 0;
            const char *q = val;
            while (ok && *q) {
                char *end;
                errno = 0;
                double e = strtod(q, &end);
                ok = !errno && end != q && e >= 0 && t->n_lr_steps < SGD_MAX_LR_STEPS && (*end == ',' || !*end);
                if (ok) {
                    t->lr_steps[t->n_lr_steps++] = e;
                    q = *end ? end + 1 : end;
                }
            }
        } else {
            int r = uaf_config_override(&a->cfg, opt, val, err, sizeof err);
            if (r < 0) {
                fprintf(stderr, "focusbench train: %s\n", err);
                return 2;
            }
            if (r == 0) {
                fprintf(stderr, "focusbench train: unknown option '%s' (see focusbench train --help)\n", opt);
                return 2;
            }
        }
        if (!ok) {
            fprintf(stderr, "focusbench train: bad value '%s' for %s (see focusbench train --help)\n", val, opt);
            return 2;
        }
    }
    if (!a->out) {
        fprintf(stderr, "focusbench train: --out DIR is required (checkpoints and the log go there)\n");
        return 2;
    }
    if (!data_args_has(&a->data, DATA_SPLIT_TRAIN, err, sizeof err)) {
        fprintf(stderr, "focusbench train: %s\n", err);
        return 2;
    }
    if (!uaf_config_check(&a->cfg, err, sizeof err) || !run_device_parse(a->device, a->precision, &t->device, err,
                                                                         sizeof err)) {
        fprintf(stderr, "focusbench train: %s\n", err);
        return 2;
    }
    if (!a->have_init_seed)
        a->init_seed = t->seed;
    return 0;
}

/* Everything that decides the trained weights, as one line; a resume must match it. */
static void config_text(const TrainArgs *a, const TrainData *d, char *buf, size_t cap)
{
    const UafConfig *c = &a->cfg;
    const TrainConfig *t = &a->tc;
    static const char *const schedules[] = {"cos", "step", "constant"};
    snprintf(buf, cap,
             "preset %s; T %d G %d F %d S %d P %d box %.9g..%.9g spatial %d temporal %d mlp %d classes %d "
             "glance-width %.17g local-depth %d local-width %d fc %d dropout %.9g fc-dropout %.9g tau %.9g; "
             "lr %.17g momentum %.17g wd %.17g schedule %s (%d steps) epochs %d ratios %.17g/%.17g/%.17g/%.17g norm %.9g mc %d "
             "batch %d seed %" PRIu64 " spatial-passes %d; data %s flip %d",
             a->preset_name, c->frames, c->glance, c->focus, c->frame_size, c->patch_size, (double)c->box_min,
             (double)c->box_max, c->spatial_hidden, c->temporal_hidden, c->mlp_width, c->num_classes,
             c->glance_width_mult, c->local_depth, c->local_base_width, c->backbone_fc_classes, (double)c->dropout,
             (double)c->fc_dropout, (double)c->temperature, t->lr, t->momentum, t->weight_decay,
             schedules[t->schedule], t->n_lr_steps, t->epochs, t->global_lr_ratio, t->stn_lr_ratio, t->temporal_lr_ratio,
             t->classifier_lr_ratio, (double)t->norm_ratio, t->mc_samples, a->batch_size, t->seed,
             t->single_spatial_pass ? 1 : 2, train_data_describe(d), !a->data.no_flip);
}

/* ---- the per-epoch log ------------------------------------------------------------------------ */

static const char *const LOG_COLUMNS[] = {"epoch", "lr", "loss", "loss_cat", "loss_global", "loss_local",
                                          "loss_temporal", "loss_spatial", "loss_norm", "train_top1", "steps",
                                          "clips", "seconds"};
enum { N_LOG_COLUMNS = sizeof LOG_COLUMNS / sizeof LOG_COLUMNS[0] };

typedef struct {
    double v[N_LOG_COLUMNS];
} LogRow;

typedef struct {
    char path[4200];
    LogRow *rows;
    int n, cap;
    CsvEnv env;
    bool failed;
} EpochLog;

static bool log_add(EpochLog *l, const LogRow *r)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        LogRow *g = realloc(l->rows, (size_t)cap * sizeof *g);
        if (!g)
            return false;
        l->rows = g;
        l->cap = cap;
    }
    l->rows[l->n++] = *r;
    return true;
}

/* Keeps the rows of epochs before `first_epoch` from an earlier run's log (a resume). */
static void log_load_previous(EpochLog *l, int first_epoch)
{
    CsvTable t;
    char err[512];
    if (!csv_table_read(l->path, &t, err, sizeof err))
        return; /* none yet */
    int cols[N_LOG_COLUMNS];
    for (int c = 0; c < N_LOG_COLUMNS; c++)
        cols[c] = csv_table_col(&t, LOG_COLUMNS[c]);
    for (int r = 0; r < t.n_rows; r++) {
        LogRow row;
        bool ok = true;
        for (int c = 0; c < N_LOG_COLUMNS && ok; c++) {
            if (csv_table_number(&t, r, cols[c], &row.v[c]))
                continue;
            /* an empty cell is a term the method does not have (--method runs) */
            const char *cell = c > 0 && cols[c] >= 0 ? csv_table_cell(&t, r, cols[c]) : NULL;
            ok = cell && !*cell;
            row.v[c] = NAN;
        }
        if (ok && row.v[0] < first_epoch)
            log_add(l, &row);
    }
    csv_table_free(&t);
}

static void log_write(EpochLog *l)
{
    char err[CSV_ERR_LEN];
    CsvOut *w = csv_out_open(l->path, LOG_COLUMNS, N_LOG_COLUMNS, &l->env, err, sizeof err);
    if (!w) {
        fprintf(stderr, "focusbench train: warning: cannot write the epoch log: %s\n", err);
        return;
    }
    for (int r = 0; r < l->n; r++) {
        for (int c = 0; c < N_LOG_COLUMNS; c++) {
            bool integer = c == 0 || c == 10 || c == 11; /* epoch, steps, clips */
            if (integer)
                csv_out_int(w, (long long)l->rows[r].v[c]);
            else
                csv_out_double(w, l->rows[r].v[c]);
        }
        csv_out_end_row(w);
    }
    if (!csv_out_commit(w, err, sizeof err))
        fprintf(stderr, "focusbench train: warning: cannot write the epoch log: %s\n", err);
}

static void on_epoch(void *user, const TrainEpochStats *s)
{
    EpochLog *l = user;
    LogRow r = {{s->epoch, s->lr, s->loss, s->cat, s->global, s->local, s->temporal, s->spatial, s->norm,
                 100.0 * s->accuracy, (double)s->steps, (double)s->samples, s->seconds}};
    if (!log_add(l, &r)) {
        l->failed = true;
        return;
    }
    log_write(l);
}

/* ---- the command ----------------------------------------------------------------------------- */

static bool load_init(UafModel *m, const TrainArgs *a, char *err, size_t err_cap)
{
    uaf_init(m, a->init_seed);
    if (a->init) {
        CheckpointLoadOptions o = {.strip_prefix = "module."};
        if (!checkpoint_load(m->ps, a->init, &o, err, err_cap))
            return false;
    }
    if (a->pretrained_global && !pretrained_load(m->ps, "global_CNN.", a->pretrained_global, err, err_cap))
        return false;
    if (a->pretrained_local && !pretrained_load(m->ps, "local_CNN.", a->pretrained_local, err, err_cap))
        return false;
    return true;
}

/* ---- --method: any registry method ------------------------------------------------------------- */

enum { MAX_PRETRAINED = 8 };

typedef struct {
    const char *method, *out, *init;
    const char *device, *precision;         /* --device, --precision (NULL: the CPU) */
    const char *pretrained[MAX_PRETRAINED]; /* PREFIX=FILE, in command-line order */
    int n_pretrained;
    bool resume, have_init_seed;
    uint64_t init_seed;
    int batch_size, log_every;
    MethodOverrides ov;
    MethodTrainConfig tc;
    DataArgs data;
} MethodArgs;

/* 0 parsed, 2 usage error (printed). The preset's training settings are filled in later (they
 * need the method's preset). lr etc. < 0 mean "the preset's". */
static int parse_method_args(int argc, char **argv, MethodArgs *a)
{
    memset(a, 0, sizeof *a);
    a->tc = (MethodTrainConfig){.lr = -1, .momentum = -1, .weight_decay = -1, .grad_clip = -1, .epochs = 0};
    a->batch_size = 0;
    a->log_every = 10;
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--resume") == 0) {
            a->resume = true;
            continue;
        }
        int d = data_args_option(&a->data, opt, i + 1 < argc ? argv[i + 1] : NULL, err, sizeof err);
        if (d == 2)
            continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "focusbench train: %s needs a value (see focusbench train --help)\n", opt);
            return 2;
        }
        const char *val = argv[++i];
        if (d < 0) {
            fprintf(stderr, "focusbench train: %s\n", err);
            return 2;
        }
        if (d == 1)
            continue;
        bool ok = true;
        long n;
        MethodTrainConfig *t = &a->tc;
        if (strcmp(opt, "--method") == 0)
            a->method = val;
        else if (strcmp(opt, "--device") == 0)
            a->device = val;
        else if (strcmp(opt, "--precision") == 0)
            a->precision = val;
        else if (strcmp(opt, "--out") == 0)
            a->out = val;
        else if (strcmp(opt, "--init") == 0)
            a->init = val;
        else if (strcmp(opt, "--pretrained") == 0)
            ok = a->n_pretrained < MAX_PRETRAINED && (a->pretrained[a->n_pretrained++] = val, true);
        else if (strcmp(opt, "--epochs") == 0)
            ok = parse_long_in(val, 1, 1000000, &n) && (t->epochs = (int)n, true);
        else if (strcmp(opt, "--batch-size") == 0)
            ok = parse_long_in(val, 1, 1000000, &n) && (a->batch_size = (int)n, true);
        else if (strcmp(opt, "--lr") == 0)
            ok = parse_double_in(val, 0.0, DBL_MAX, &t->lr);
        else if (strcmp(opt, "--weight-decay") == 0)
            ok = parse_double_in(val, 0.0, DBL_MAX, &t->weight_decay);
        else if (strcmp(opt, "--momentum") == 0)
            ok = parse_double_in(val, 0.0, DBL_MAX, &t->momentum) && t->momentum < 1.0;
        else if (strcmp(opt, "--grad-clip") == 0)
            ok = parse_double_in(val, 0.0, DBL_MAX, &t->grad_clip);
        else if (strcmp(opt, "--seed") == 0)
            ok = parse_u64(val, &t->seed);
        else if (strcmp(opt, "--init-seed") == 0)
            ok = parse_u64(val, &a->init_seed) && (a->have_init_seed = true);
        else if (strcmp(opt, "--stop-after") == 0)
            ok = parse_long_in(val, 1, 1000000, &n) && (t->stop_after_epochs = (int)n, true);
        else if (strcmp(opt, "--log-every") == 0)
            ok = parse_long_in(val, 0, 1000000000, &n) && (a->log_every = (int)n, true);
        else if (strcmp(opt, "--frames") == 0)
            ok = parse_long_in(val, 1, 100000, &n) && (a->ov.frames = (int)n, true);
        else if (strcmp(opt, "--frame-size") == 0)
            ok = parse_long_in(val, 1, 100000, &n) && (a->ov.frame_size = (int)n, true);
        else if (strcmp(opt, "--classes") == 0)
            ok = parse_long_in(val, 1, 1000000, &n) && (a->ov.classes = (int)n, true);
        else if (strcmp(opt, "--glance") == 0)
            ok = parse_long_in(val, 1, 100000, &n) && (a->ov.glance = (int)n, true);
        else if (strcmp(opt, "--focus") == 0)
            ok = parse_long_in(val, 1, 100000, &n) && (a->ov.focus = (int)n, true);
        else if (strcmp(opt, "--patch-size") == 0)
            ok = parse_long_in(val, 1, 100000, &n) && (a->ov.patch_size = (int)n, true);
        else {
            fprintf(stderr, "focusbench train: unknown option '%s' with --method (see focusbench train --help)\n", opt);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "focusbench train: bad value '%s' for %s (see focusbench train --help)\n", val, opt);
            return 2;
        }
    }
    if (!a->method) {
        fprintf(stderr, "focusbench train: --method needs an id or a preset (see focusbench train --help)\n");
        return 2;
    }
    if (!method_preset_find(a->method)) {
        char ids[512];
        fprintf(stderr, "focusbench train: unknown method or preset '%s' (ids: %s; presets: focusbench train --help)\n",
                a->method, method_id_list(ids, sizeof ids));
        return 2;
    }
    if (!a->out) {
        fprintf(stderr, "focusbench train: --out DIR is required (checkpoints and the log go there)\n");
        return 2;
    }
    if (!data_args_has(&a->data, DATA_SPLIT_TRAIN, err, sizeof err) ||
        !run_device_parse(a->device, a->precision, &a->tc.device, err, sizeof err)) {
        fprintf(stderr, "focusbench train: %s\n", err);
        return 2;
    }
    if (!a->have_init_seed)
        a->init_seed = a->tc.seed;
    return 0;
}

static int cmd_train_method(int argc, char **argv)
{
    MethodArgs a;
    int rc = parse_method_args(argc, argv, &a);
    if (rc)
        return rc;
    rc = 1;
    char err[4096], cfg_text[2048];
    Method *m = NULL;
    TrainData *data = NULL;
    MethodTrainer *tr = NULL;
    EpochLog log = {.n = 0};
    DistComm *comm = NULL;
    bool sync_bn = false;
    if (!dist_begin(&comm, &sync_bn))
        goto done;
    if (!(m = method_create(a.method, &a.ov, BACKEND_CPU, true, a.init_seed, err, sizeof err))) {
        fprintf(stderr, "focusbench train: %s\n", err);
        goto done;
    }
    if (a.init) {
        CheckpointLoadOptions o = {.strip_prefix = "module."};
        if (!checkpoint_load(m->ps, a.init, &o, err, sizeof err)) {
            fprintf(stderr, "focusbench train: %s\n", err);
            goto done;
        }
    }
    for (int i = 0; i < a.n_pretrained; i++) {
        if (!pretrained_load_spec(m->ps, a.pretrained[i], err, sizeof err)) {
            fprintf(stderr, "focusbench train: %s\n", err);
            goto done;
        }
        printf("train: %s loaded\n", a.pretrained[i]);
    }
    /* the preset's settings where the command line gave none */
    MethodTrainConfig tc = method_train_config(m);
    const MethodPresetInfo *pi = method_preset_find(m->preset);
    int batch = a.batch_size > 0 ? a.batch_size : pi ? pi->train.batch_size : 8;
    if (a.tc.lr >= 0)
        tc.lr = a.tc.lr;
    if (a.tc.momentum >= 0)
        tc.momentum = a.tc.momentum;
    if (a.tc.weight_decay >= 0)
        tc.weight_decay = a.tc.weight_decay;
    if (a.tc.grad_clip >= 0)
        tc.grad_clip = a.tc.grad_clip;
    if (a.tc.epochs > 0)
        tc.epochs = a.tc.epochs;
    tc.seed = a.tc.seed;
    tc.stop_after_epochs = a.tc.stop_after_epochs;
    if (!dist_batch_ok(comm, batch))
        goto done;
    DataLoadOptions lo = {.frames = method_frames(m), .frame_size = method_frame_size(m), .batch_size = batch,
                          .train = true, .shuffle = true, .drop_last = true, .seed = tc.seed,
                          .shard_rank = dist_rank(comm), .shard_world = dist_world(comm)};
    if (!(data = train_data_open(&a.data, DATA_SPLIT_TRAIN, &lo, err, sizeof err))) {
        fprintf(stderr, "focusbench train: %s\n", err);
        goto done;
    }
    if (train_data_classes(data) > m->classes) {
        fprintf(stderr, "focusbench train: the data has %d classes but the method %d (set --classes %d)\n",
                train_data_classes(data), m->classes, train_data_classes(data));
        goto done;
    }
    if (train_data_count(data) < batch) {
        fprintf(stderr, "focusbench train: %d training videos, fewer than one batch of %d: lower --batch-size\n",
                train_data_count(data), batch);
        goto done;
    }
    if (mkdir(a.out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "focusbench train: cannot create the run directory %s: %s\n", a.out, strerror(errno));
        goto done;
    }
    snprintf(cfg_text, sizeof cfg_text,
             "method %s preset %s; T %d S %d classes %d exits %d overrides %d/%d/%d/%d/%d/%d; lr %.17g momentum %.17g "
             "wd %.17g clip %.17g schedule cos epochs %d batch %d seed %" PRIu64 "; data %s flip %d",
             m->id, m->preset, m->frames, m->frame_size, m->classes, m->n_exits, a.ov.frames, a.ov.frame_size,
             a.ov.classes, a.ov.glance, a.ov.focus, a.ov.patch_size, tc.lr, tc.momentum, tc.weight_decay, tc.grad_clip,
             tc.epochs, batch, tc.seed, train_data_describe(data), !a.data.no_flip);
    tc.out_dir = a.out;
    tc.resume = a.resume;
    tc.config_text = cfg_text;
    tc.log = dist_rank(comm) == 0 ? stdout : NULL;
    tc.log_every = a.log_every;
    tc.comm = comm;
    tc.sync_bn = sync_bn;
    tc.device = a.tc.device;
    if (!a.resume) {
        char probe[4200];
        snprintf(probe, sizeof probe, "%s/train_state.safetensors", a.out);
        FILE *f = fopen(probe, "rb");
        if (f) {
            fclose(f);
            fprintf(stderr, "focusbench train: %s already holds a training run; continue it with --resume, or choose "
                    "another --out\n", a.out);
            goto done;
        }
    }
    if (!(tr = method_trainer_create(m, &tc, err, sizeof err))) {
        fprintf(stderr, "focusbench train: %s\n", err);
        goto done;
    }
    snprintf(log.path, sizeof log.path, "%s/train_log.csv", a.out);
    csv_env_init(&log.env, "cpu", argc, argv);
    csv_env_set_seed(&log.env, tc.seed);
    if (method_trainer_epoch(tr) > 0)
        log_load_previous(&log, method_trainer_epoch(tr));
    double g[METHOD_MAX_EXITS];
    bool have_g = m->ops->exit_gflops(m, g, err, sizeof err);
    printf("train: method %s, preset %s (T %d, S %d, %d classes, %d exits), %.3f M trainable parameters%s%.3f "
           "GFLOPs per video (full)\n", m->id, m->preset, m->frames, m->frame_size, m->classes, m->n_exits,
           params_count_trainable(m->ps) / 1e6, have_g ? ", " : "", have_g ? g[m->n_exits - 1] : 0.0);
    char dev[64];
    printf("train: data %s; batch %d, %d steps per epoch; on %s\n", train_data_describe(data), batch,
           train_data_count(data) / batch, run_device_name(&tc.device, dev, sizeof dev));
    printf("train: lr %g (cosine), momentum %g, weight decay %g, grad clip %g, seed %" PRIu64 "\n", tc.lr,
           tc.momentum, tc.weight_decay, tc.grad_clip, tc.seed);
    if (method_trainer_epoch(tr) > 0)
        printf("train: resumed %s at epoch %d of %d (step %" PRId64 ")\n", a.out, method_trainer_epoch(tr),
               tc.epochs, method_trainer_steps(tr));
    if (method_trainer_epoch(tr) >= tc.epochs) {
        printf("train: all %d epochs are done; the model is %s/model.safetensors\n", tc.epochs, a.out);
        rc = 0;
        goto done;
    }
    fflush(stdout);
    TrainDataSource src = train_data_source(data);
    if (!method_trainer_run(tr, &src, dist_rank(comm) == 0 ? on_epoch : NULL, &log, err, sizeof err)) {
        fprintf(stderr, "focusbench train: %s (the last completed epoch's checkpoint is in %s; rerun with --resume)\n",
                err, a.out);
        goto done;
    }
    train_data_print_summary(data);
    int epochs_done = method_trainer_epoch(tr);
    method_trainer_destroy(tr); /* the weights back on the host */
    tr = NULL;
    if (!replicas_check(comm, m->ps))
        goto done;
    if (epochs_done < tc.epochs)
        printf("train: stopped after epoch %d of %d as asked; continue with --resume\n", epochs_done, tc.epochs);
    else
        printf("train: done, %d epochs; model %s/model.safetensors, log %s\n", tc.epochs, a.out, log.path);
    rc = 0;
done:
    method_trainer_destroy(tr);
    train_data_close(data);
    method_destroy(m);
    dist_destroy(comm);
    free(log.rows);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    bool help = false, method = false;
    for (int i = 1; i < argc; i++) {
        help |= strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
        method |= strcmp(argv[i], "--method") == 0;
    }
    if (method && !help)
        return cmd_train_method(argc, argv);
    TrainArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc == -1) {
        usage(stdout);
        return 0;
    }
    if (rc)
        return rc;
    char err[4096];
    rc = 1;
    UafModel *m = NULL;
    TrainData *data = NULL;
    Trainer *tr = NULL;
    EpochLog log = {.n = 0};
    char *cfg_text = malloc(16384);
    if (!cfg_text) {
        fprintf(stderr, "focusbench train: out of memory\n");
        return 1;
    }
    DistComm *comm = NULL;
    bool sync_bn = false;
    if (!dist_begin(&comm, &sync_bn) || !dist_batch_ok(comm, a.batch_size))
        goto done;
    if (!(m = uaf_create(&a.cfg, BACKEND_CPU, true, err, sizeof err)) || !load_init(m, &a, err, sizeof err)) {
        fprintf(stderr, "focusbench train: %s\n", err);
        goto done;
    }
    DataLoadOptions lo = {.frames = a.cfg.frames, .frame_size = a.cfg.frame_size, .batch_size = a.batch_size,
                          .train = true, .shuffle = true, .drop_last = true, .seed = a.tc.seed,
                          .shard_rank = dist_rank(comm), .shard_world = dist_world(comm)};
    if (!(data = train_data_open(&a.data, DATA_SPLIT_TRAIN, &lo, err, sizeof err))) {
        fprintf(stderr, "focusbench train: %s\n", err);
        goto done;
    }
    int data_classes = train_data_classes(data);
    if (data_classes > a.cfg.num_classes) {
        fprintf(stderr, "focusbench train: the data has %d classes but the model %d (set --classes %d)\n",
                data_classes, a.cfg.num_classes, data_classes);
        goto done;
    }
    if (train_data_count(data) < a.batch_size) {
        fprintf(stderr, "focusbench train: %d training videos, fewer than one batch of %d (the official loader drops "
                "the last incomplete batch): lower --batch-size\n", train_data_count(data), a.batch_size);
        goto done;
    }
    if (mkdir(a.out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "focusbench train: cannot create the run directory %s: %s\n", a.out, strerror(errno));
        goto done;
    }
    config_text(&a, data, cfg_text, 16384);
    a.tc.out_dir = a.out;
    a.tc.resume = a.resume;
    a.tc.config_text = cfg_text;
    a.tc.log = dist_rank(comm) == 0 ? stdout : NULL;
    a.tc.log_every = a.log_every;
    a.tc.comm = comm;
    a.tc.sync_bn = sync_bn;
    if (!a.resume) {
        char probe[4200];
        snprintf(probe, sizeof probe, "%s/train_state.safetensors", a.out);
        FILE *f = fopen(probe, "rb");
        if (f) {
            fclose(f);
            fprintf(stderr, "focusbench train: %s already holds a training run; continue it with --resume, or choose "
                    "another --out\n", a.out);
            goto done;
        }
    }
    if (!(tr = trainer_create(m, &a.tc, err, sizeof err))) {
        fprintf(stderr, "focusbench train: %s\n", err);
        goto done;
    }
    snprintf(log.path, sizeof log.path, "%s/train_log.csv", a.out);
    csv_env_init(&log.env, "cpu", argc, argv);
    csv_env_set_seed(&log.env, a.tc.seed);
    if (trainer_epoch(tr) > 0)
        log_load_previous(&log, trainer_epoch(tr));

    UafFlops fl;
    bool have_flops = uaf_flops(&a.cfg, &fl, err, sizeof err);
    printf("train: preset %s (T %d, G %d, F %d, S %d, P %d, %d classes), %.3f M trainable parameters%s%.3f GFLOPs "
           "per video at test\n", a.preset_name, a.cfg.frames, a.cfg.glance, a.cfg.focus, a.cfg.frame_size,
           a.cfg.patch_size, a.cfg.num_classes, params_count_trainable(m->ps) / 1e6, have_flops ? ", " : "",
           have_flops ? fl.total / 1e9 : 0.0);
    char dev[64];
    printf("train: data %s; batch %d, %d steps per epoch; on %s\n", train_data_describe(data), a.batch_size,
           train_data_count(data) / a.batch_size, run_device_name(&a.tc.device, dev, sizeof dev));
    printf("train: lr %g (%s), momentum %g, weight decay %g, ratios global %g spatial %g temporal %g classifier %g, "
           "norm ratio %g, %d MC samples, seed %" PRIu64 "\n", a.tc.lr,
           a.tc.schedule == SGD_SCHEDULE_COSINE ? "cosine" : a.tc.schedule == SGD_SCHEDULE_STEP ? "step" : "constant",
           a.tc.momentum, a.tc.weight_decay, a.tc.global_lr_ratio, a.tc.stn_lr_ratio, a.tc.temporal_lr_ratio,
           a.tc.classifier_lr_ratio, (double)a.tc.norm_ratio, a.tc.mc_samples, a.tc.seed);
    if (trainer_epoch(tr) > 0)
        printf("train: resumed %s at epoch %d of %d (step %" PRId64 ")\n", a.out, trainer_epoch(tr), a.tc.epochs,
               trainer_steps(tr));
    if (trainer_epoch(tr) >= a.tc.epochs) {
        printf("train: all %d epochs are done; the model is %s/model.safetensors\n", a.tc.epochs, a.out);
        rc = 0;
        goto done;
    }
    fflush(stdout);
    TrainDataSource src = train_data_source(data);
    if (!trainer_run(tr, &src, dist_rank(comm) == 0 ? on_epoch : NULL, &log, err, sizeof err)) {
        fprintf(stderr, "focusbench train: %s (the last completed epoch's checkpoint is in %s; rerun with --resume)\n",
                err, a.out);
        goto done;
    }
    train_data_print_summary(data);
    int epochs_done = trainer_epoch(tr);
    trainer_destroy(tr); /* the weights back on the host */
    tr = NULL;
    if (!replicas_check(comm, m->ps))
        goto done;
    if (epochs_done < a.tc.epochs)
        printf("train: stopped after epoch %d of %d as asked; continue with --resume\n", epochs_done, a.tc.epochs);
    else
        printf("train: done, %d epochs; model %s/model.safetensors, log %s\n", a.tc.epochs, a.out, log.path);
    rc = 0;
done:
    trainer_destroy(tr);
    train_data_close(data);
    uaf_destroy(m);
    dist_destroy(comm);
    free(log.rows);
    free(cfg_text);
    return rc;
}
