/* train_data.c — see train_data.h. */
#include "bench/train_data.h"
#include "bench/parse_num.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if HAVE_OPENMP
#include <omp.h>
#endif

#include "datasets/clip_cache.h"
#include "datasets/formats.h"
#include "datasets/loader.h"
#include "datasets/synth.h"
#include "kernels/dist/dist_grads.h"
#include "kernels/dist/dist_shard.h"
#include "datasets/transform.h"
#include "datasets/video.h"
#include "datasets/video_list.h"
#include "baselines/registry.h"
#include "impl/checkpoint.h"
#include "impl/safetensors.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#include "kernels/rng.h"
#include "kernels/tape.h"

/* ---- options -------------------------------------------------------------------------------- */

const char *data_args_help(void)
{
    return "data (one source per split):\n"
           "  --data DIR            DIR/train_list.txt and DIR/val_list.txt (official list format, paths under DIR;\n"
           "                        what `focusbench gen-data` writes)\n"
           "  --list FILE           the training list (= --train-list); --val-list FILE for evaluation\n"
           "  --format NAME         format of the lists (list, fcvid, activitynet, k400, minik, sthv1, sthv2,\n"
           "                        jester; default list)\n"
           "  --root DIR            directory the lists' relative paths are under\n"
           "  --class-file FILE     the format's class file (default: its conventional file beside the list)\n"
           "  --train-split S       ActivityNet subset / Kinetics split of the training list (--val-split too)\n"
           "  --cache DIR           a clip cache for training (= --train-cache); --val-cache DIR\n"
           "  --synthetic N         N videos per split of the synthetic benchmark, rendered in memory at the\n"
           "                        model's frame size (no files, no FFmpeg)\n"
           "  --workers N           decoding threads (0: one per core)\n"
           "  --no-flip             no horizontal flip in training (Something-Something, Jester)\n"
           "  --augment A           official: multi-scale crop + flip in training, resize + centre crop in\n"
           "                        evaluation; none: the whole frame at its size, no flip (default on the\n"
           "                        synthetic benchmark, whose classes a rescale or a mirror would change)\n";
}

static bool parse_count(const char *val, int lo, int *out, const char *opt, char *err, size_t err_cap)
{
    if (parse_int_in(val, lo, 100000000, out))
        return true;
    snprintf(err, err_cap, "bad value '%s' for %s (an integer >= %d)", val ? val : "", opt, lo);
    return false;
}

int data_args_option(DataArgs *a, const char *opt, const char *val, char *err, size_t err_cap)
{
    if (strcmp(opt, "--no-flip") == 0) {
        a->no_flip = true;
        return 2;
    }
    if (strcmp(opt, "--augment") == 0) {
        if (!val || (strcmp(val, "official") != 0 && strcmp(val, "none") != 0)) {
            snprintf(err, err_cap, "bad value '%s' for --augment (official or none)", val ? val : "");
            return -1;
        }
        a->augment = val;
        return 1;
    }
    const char **slot = NULL;
    if (strcmp(opt, "--data") == 0)
        slot = &a->data_dir;
    else if (strcmp(opt, "--list") == 0 || strcmp(opt, "--train-list") == 0)
        slot = &a->list[DATA_SPLIT_TRAIN];
    else if (strcmp(opt, "--val-list") == 0)
        slot = &a->list[DATA_SPLIT_VAL];
    else if (strcmp(opt, "--cache") == 0 || strcmp(opt, "--train-cache") == 0)
        slot = &a->cache[DATA_SPLIT_TRAIN];
    else if (strcmp(opt, "--val-cache") == 0)
        slot = &a->cache[DATA_SPLIT_VAL];
    else if (strcmp(opt, "--train-split") == 0)
        slot = &a->split[DATA_SPLIT_TRAIN];
    else if (strcmp(opt, "--val-split") == 0)
        slot = &a->split[DATA_SPLIT_VAL];
    else if (strcmp(opt, "--format") == 0)
        slot = &a->format;
    else if (strcmp(opt, "--root") == 0)
        slot = &a->root;
    else if (strcmp(opt, "--class-file") == 0)
        slot = &a->class_file;
    if (slot) {
        *slot = val;
        return 1;
    }
    if (strcmp(opt, "--synthetic") == 0)
        return parse_count(val, 1, &a->synthetic, opt, err, err_cap) ? 1 : -1;
    if (strcmp(opt, "--workers") == 0)
        return parse_count(val, 0, &a->workers, opt, err, err_cap) ? 1 : -1;
    return 0;
}

bool data_args_has(const DataArgs *a, int s, char *err, size_t err_cap)
{
    int sources = (a->data_dir != NULL) + (a->list[s] != NULL) + (a->cache[s] != NULL) + (a->synthetic > 0);
    const char *name = s == DATA_SPLIT_TRAIN ? "training" : "validation";
    if (sources == 0) {
        snprintf(err, err_cap, "no %s data: give --data DIR, --%s FILE, --%s DIR or --synthetic N", name,
                 s == DATA_SPLIT_TRAIN ? "list" : "val-list", s == DATA_SPLIT_TRAIN ? "cache" : "val-cache");
        return false;
    }
    if (sources > 1) {
        snprintf(err, err_cap, "the %s data is given more than once (--data, --%s, --%s and --synthetic are "
                 "alternatives)", name, s == DATA_SPLIT_TRAIN ? "list" : "val-list",
                 s == DATA_SPLIT_TRAIN ? "cache" : "val-cache");
        return false;
    }
    return true;
}

bool data_args_whole_frame(const DataArgs *a)
{
    if (a->augment)
        return strcmp(a->augment, "none") == 0;
    if (a->synthetic > 0)
        return true;
    if (!a->data_dir)
        return false;
    char card[4096];
    if (snprintf(card, sizeof card, "%s/synth.txt", a->data_dir) >= (int)sizeof card)
        return false;
    FILE *f = fopen(card, "r");
    if (!f)
        return false;
    fclose(f);
    return true;
}

/* ---- the source ------------------------------------------------------------------------------- */

typedef struct TrainData TrainData;
static void append_augment(TrainData *d);

typedef enum { SOURCE_LOADER, SOURCE_SYNTH } SourceKind;

struct TrainData {
    SourceKind kind;
    DataLoadOptions o;
    char describe[5120];
    bool flip;
    bool whole_frame; /* data_args_whole_frame */
    /* loader */
    VideoList list;
    bool have_list;
    ClipCache *cache;
    Loader *loader;
    /* synthetic */
    SynthConfig synth;
    int split;
    int n;
    int32_t *labels;   /* (n) */
    int *order;        /* (n) */
    int pos, epoch;
    float *batch;      /* (B, T, 3, S, S) */
    int32_t *batch_labels, *batch_videos; /* (B) */
    uint8_t *frames;   /* (workers, T, S, S, 3) one rendering scratch per worker thread */
    uint8_t *background; /* (workers, S, S, 3) */
    int workers;       /* threads rendering the clips of a batch */
    /* data-parallel shards (kernels/dist/dist_shard.h): the global batch sizes of this epoch */
    int64_t *global_sizes; /* (n_global) */
    int n_global, cap_global;
};

/* Remembers a global batch's size (eval merges the ranks' results by them). */
static bool note_global(TrainData *d, int64_t size)
{
    if (d->n_global == d->cap_global) {
        int cap = d->cap_global ? 2 * d->cap_global : 64;
        int64_t *g = realloc(d->global_sizes, (size_t)cap * sizeof *g);
        if (!g)
            return false;
        d->global_sizes = g;
        d->cap_global = cap;
    }
    d->global_sizes[d->n_global++] = size;
    return true;
}

static int shard_world(const TrainData *d) { return d->o.shard_world > 1 ? d->o.shard_world : 1; }

int train_data_global_batches(const TrainData *d, const int64_t **sizes)
{
    *sizes = d->global_sizes;
    return d->n_global;
}

void train_data_close(TrainData *d)
{
    if (!d)
        return;
    loader_destroy(d->loader);
    clip_cache_close(d->cache);
    if (d->have_list)
        video_list_free(&d->list);
    free(d->labels);
    free(d->order);
    free(d->global_sizes);
    free(d->batch);
    free(d->batch_labels);
    free(d->batch_videos);
    free(d->frames);
    free(d->background);
    free(d);
}

static bool loader_start(void *user, int epoch, char *err, size_t err_cap)
{
    TrainData *d = user;
    d->n_global = 0;
    return loader_start_epoch(d->loader, epoch, err, err_cap);
}

static int loader_batch(void *user, TrainBatch *b, char *err, size_t err_cap)
{
    (void)err, (void)err_cap;
    TrainData *d = user;
    for (;;) {
        LoaderBatch lb;
        if (!loader_next(d->loader, &lb))
            return 0;
        /* this rank's slice of the global batch (the loader decodes the whole batch on every rank:
         * sharding inside datasets/loader.c would save that work) */
        int64_t lo = 0, hi = lb.size;
        dist_shard_range(lb.size, shard_world(d), d->o.shard_rank, &lo, &hi);
        if (!note_global(d, lb.size)) {
            snprintf(err, err_cap, "out of memory");
            return -1;
        }
        if (hi == lo)
            continue; /* fewer clips than ranks in this batch (eval only: training needs B >= ranks) */
        int64_t clip = (int64_t)d->o.frames * 3 * d->o.frame_size * d->o.frame_size;
        *b = (TrainBatch){.video = lb.data + lo * clip, .labels = lb.labels + lo, .videos = lb.videos ? lb.videos + lo : NULL,
                          .size = (int)(hi - lo)};
        return 1;
    }
}

static bool synth_start(void *user, int epoch, char *err, size_t err_cap)
{
    (void)err, (void)err_cap;
    TrainData *d = user;
    d->epoch = epoch;
    d->pos = 0;
    d->n_global = 0;
    for (int i = 0; i < d->n; i++)
        d->order[i] = i;
    if (d->o.shuffle) {
        RngStream r = rng_stream(d->o.seed, RNG_PURPOSE_SHUFFLE, 0, (uint64_t)epoch);
        for (int i = d->n - 1; i > 0; i--) {
            int j = (int)rng_below(&r, (uint64_t)i, (uint32_t)(i + 1));
            int t = d->order[i];
            d->order[i] = d->order[j];
            d->order[j] = t;
        }
    }
    return true;
}

/* Renders video v's T sampled frames, transformed and normalised, into out (T, 3, S, S), with
 * worker w's scratch (a clip depends only on v, the epoch and the seed: any worker gives the same). */
static bool synth_clip(TrainData *d, int v, int w, float *out, char *err, size_t err_cap)
{
    const int T = d->o.frames, S = d->o.frame_size;
    SynthVideo sv;
    if (!synth_plan_video(&d->synth, d->split, v, &sv)) {
        snprintf(err, err_cap, "synthetic data: out of memory planning video %d", v);
        return false;
    }
    int64_t idx[T]; /* (T) */
    video_sample_tsn(sv.frames, T, d->o.train, d->o.seed, (uint64_t)v, (uint64_t)d->epoch, idx);
    uint8_t *background = d->background + (size_t)w * S * S * 3; /* (S, S, 3) */
    uint8_t *frames = d->frames + (size_t)w * T * S * S * 3;      /* (T, S, S, 3) */
    synth_render_background(&d->synth, &sv, background);
    for (int t = 0; t < T; t++)
        synth_render_frame(&d->synth, &sv, background, (int)idx[t], frames + (size_t)t * S * S * 3);
    TransformRegion r;
    if (d->o.train && !d->whole_frame) {
        RngStream rs = rng_stream(d->o.seed, RNG_PURPOSE_AUGMENT, (uint64_t)v, (uint64_t)d->epoch);
        r = transform_multiscale_region(S, S, S, d->flip, &rs);
    } else {
        r = transform_center_region(S, S, S, S); /* the whole rendered frame */
    }
    synth_video_free(&sv);
    if (!transform_clip_f32(frames, T, S, S, &r, S, out)) {
        snprintf(err, err_cap, "synthetic data: out of memory transforming video %d", v);
        return false;
    }
    return true;
}

static int synth_batch(void *user, TrainBatch *b, char *err, size_t err_cap)
{
    TrainData *d = user;
    for (;;) {
        int left = d->n - d->pos;
        if (left <= 0 || (d->o.drop_last && left < d->o.batch_size))
            return 0;
        int B = left < d->o.batch_size ? left : d->o.batch_size;
        /* only this rank's slice of the global batch is rendered */
        int64_t lo = 0, hi = B;
        dist_shard_range(B, shard_world(d), d->o.shard_rank, &lo, &hi);
        if (!note_global(d, B)) {
            snprintf(err, err_cap, "out of memory");
            return -1;
        }
        int64_t clip = (int64_t)d->o.frames * 3 * d->o.frame_size * d->o.frame_size;
        /* Clips rendered in parallel (a full-size clip takes ~0.1 s on one core: one thread would
         * starve a GPU); each clip is a pure function of (video, epoch, seed), so the batch is the
         * same whatever the number of workers. */
        int failed = 0;
#if HAVE_OPENMP
#pragma omp parallel for schedule(dynamic) num_threads(d->workers) reduction(+ : failed)
#endif
        for (int64_t i = lo; i < hi; i++) {
            int v = d->order[d->pos + i];
#if HAVE_OPENMP
            int w = omp_get_thread_num();
#else
            int w = 0;
#endif
            char why[256];
            if (!synth_clip(d, v, w, d->batch + (i - lo) * clip, why, sizeof why)) {
#if HAVE_OPENMP
#pragma omp critical
#endif
                snprintf(err, err_cap, "%s", why);
                failed++;
            }
            d->batch_labels[i - lo] = d->labels[v];
            d->batch_videos[i - lo] = v;
        }
        if (failed)
            return -1;
        d->pos += B;
        if (hi == lo)
            continue; /* fewer clips than ranks in this batch (eval only) */
        *b = (TrainBatch){.video = d->batch, .labels = d->batch_labels, .videos = d->batch_videos, .size = (int)(hi - lo)};
        return 1;
    }
}

static TrainData *open_synthetic(const DataArgs *a, int split, const DataLoadOptions *o, TrainData *d, char *err,
                                 size_t err_cap)
{
    d->kind = SOURCE_SYNTH;
    synth_preset("synth-small", &d->synth);
    d->synth.width = d->synth.height = o->frame_size;
    d->synth.videos_train = d->synth.videos_val = a->synthetic;
    d->split = split;
    d->n = a->synthetic;
    const int T = o->frames, S = o->frame_size, B = o->batch_size;
    d->labels = malloc((size_t)d->n * sizeof *d->labels);
    d->order = malloc((size_t)d->n * sizeof *d->order);
    d->batch = malloc((size_t)B * T * 3 * S * S * sizeof *d->batch);
    d->batch_labels = malloc((size_t)B * sizeof *d->batch_labels);
    d->batch_videos = malloc((size_t)B * sizeof *d->batch_videos);
#if HAVE_OPENMP
    d->workers = omp_get_max_threads() < B ? omp_get_max_threads() : B;
#else
    d->workers = 1;
#endif
    d->frames = malloc((size_t)d->workers * T * S * S * 3);
    d->background = malloc((size_t)d->workers * S * S * 3);
    if (!d->labels || !d->order || !d->batch || !d->batch_labels || !d->batch_videos || !d->frames || !d->background) {
        snprintf(err, err_cap, "synthetic data: out of memory for %d videos of %d x %dx%d frames", d->n, T, S, S);
        train_data_close(d);
        return NULL;
    }
    if (!synth_check(&d->synth, err, err_cap)) {
        train_data_close(d);
        return NULL;
    }
    for (int v = 0; v < d->n; v++) {
        SynthVideo sv;
        if (!synth_plan_video(&d->synth, split, v, &sv)) {
            snprintf(err, err_cap, "synthetic data: out of memory");
            train_data_close(d);
            return NULL;
        }
        d->labels[v] = sv.label;
        synth_video_free(&sv);
    }
    snprintf(d->describe, sizeof d->describe, "synthetic %s split, %d videos rendered at %dx%d",
             split == DATA_SPLIT_TRAIN ? "train" : "val", d->n, S, S);
    append_augment(d);
    return d;
}

/* Names the augmentation in the description the logs and CSVs carry. */
static void append_augment(TrainData *d)
{
    size_t used = strlen(d->describe);
    snprintf(d->describe + used, sizeof d->describe - used, "; %s",
             d->whole_frame ? "whole frames, no flip (augment none)"
             : d->o.train   ? (d->flip ? "multi-scale crop + flip" : "multi-scale crop, no flip")
                            : "resize + centre crop");
}

TrainData *train_data_open(const DataArgs *a, int split, const DataLoadOptions *o, char *err, size_t err_cap)
{
    if (!data_args_has(a, split, err, err_cap))
        return NULL;
    TrainData *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    d->o = *o;
    d->whole_frame = data_args_whole_frame(a);
    d->flip = !a->no_flip && !d->whole_frame;
    if (a->synthetic > 0)
        return open_synthetic(a, split, o, d, err, err_cap);
    d->kind = SOURCE_LOADER;
    LoaderConfig lc = {.num_frames = o->frames, .crop_size = o->frame_size, .train = o->train, .flip = d->flip,
                       .whole_frame = d->whole_frame,
                       .shuffle = o->shuffle, .batch_size = o->batch_size, .drop_last = o->drop_last, .seed = o->seed,
                       .workers = a->workers};
    if (a->cache[split]) {
        if (!(d->cache = clip_cache_open(a->cache[split], err, err_cap))) {
            train_data_close(d);
            return NULL;
        }
        lc.cache = d->cache;
        snprintf(d->describe, sizeof d->describe, "cache %s (%d clips)", a->cache[split], clip_cache_count(d->cache));
    } else {
        char path[4096];
        const char *list_path = a->list[split];
        const char *root = a->root;
        if (a->data_dir) {
            snprintf(path, sizeof path, "%s/%s_list.txt", a->data_dir, split == DATA_SPLIT_TRAIN ? "train" : "val");
            list_path = path;
            if (!root)
                root = a->data_dir;
        }
        FormatOptions fo = {.classes_path = a->class_file, .split = a->split[split]};
        d->have_list = true;
        if (!formats_parse_opts(a->format ? a->format : "list", list_path, root, &fo, &d->list, err, err_cap)) {
            train_data_close(d);
            return NULL;
        }
        lc.list = &d->list;
        snprintf(d->describe, sizeof d->describe, "%s list %s (%d videos)", a->format ? a->format : "list", list_path,
                 d->list.n);
    }
    if (!(d->loader = loader_create(&lc, err, err_cap))) {
        train_data_close(d);
        return NULL;
    }
    append_augment(d);
    return d;
}

TrainDataSource train_data_source(TrainData *d)
{
    if (d->kind == SOURCE_SYNTH)
        return (TrainDataSource){.user = d, .start_epoch = synth_start, .next_batch = synth_batch};
    return (TrainDataSource){.user = d, .start_epoch = loader_start, .next_batch = loader_batch};
}

int train_data_count(const TrainData *d) { return d->kind == SOURCE_SYNTH ? d->n : loader_num_videos(d->loader); }

int train_data_classes(const TrainData *d)
{
    return d->kind == SOURCE_SYNTH ? d->synth.classes : loader_num_classes(d->loader);
}

bool train_data_multi_label(const TrainData *d)
{
    if (d->kind == SOURCE_SYNTH)
        return false;
    return d->cache ? clip_cache_multi_label(d->cache) : d->list.multi_label;
}

int train_data_labels(const TrainData *d, int v, const int32_t **labels)
{
    *labels = NULL;
    if (v < 0 || v >= train_data_count(d))
        return 0;
    if (d->kind == SOURCE_SYNTH) {
        *labels = d->labels + v;
        return 1;
    }
    if (d->cache) {
        ClipView cv;
        if (!clip_cache_get(d->cache, v, &cv))
            return 0;
        *labels = cv.labels;
        return cv.n_labels;
    }
    *labels = d->list.items[v].labels;
    return d->list.items[v].n_labels;
}

const char *train_data_describe(const TrainData *d) { return d->describe; }

void train_data_print_summary(const TrainData *d)
{
    if (d->loader)
        loader_print_summary(d->loader, stdout);
}

/* ---- any registry method: training and eval-mode exit logits ------------------------------------ */

#define METHOD_STATE_FORMAT "focusbench-method-train-state-v1"

struct MethodTrainer {
    Method *m;
    MethodTrainConfig cfg;
    char *config_text, *out_dir; /* owned copies (out_dir may be NULL) */
    char *group_names;           /* (SGD_MAX_GROUPS × SGD_GROUP_NAME_LEN) the groups' strings; outlives opt */
    Ctx *ctx;
    Sgd *opt;
    int epoch;                   /* next epoch to run */
    int64_t step;                /* steps done: the key of the next step's draws */
    DistGradSync *sync;          /* cfg.comm's gradient average, or NULL */
};

static double mt_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static char *mt_dup(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s ? s : "", n);
    return d;
}

/* A preset's float as the decimal it was written as (0.01f → 0.01). */
static double mt_decimal(float f)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)f);
    return strtod(buf, NULL);
}

MethodTrainConfig method_train_config(const Method *m)
{
    MethodTrainConfig c = {.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4, .epochs = 1};
    const MethodPresetInfo *p = m ? method_preset_find(m->preset) : NULL;
    if (p) {
        c.lr = mt_decimal(p->train.lr);
        c.weight_decay = mt_decimal(p->train.weight_decay);
        if (p->train.momentum > 0.0f)
            c.momentum = mt_decimal(p->train.momentum);
        c.epochs = p->train.epochs;
        c.grad_clip = mt_decimal(p->train.grad_clip);
    }
    return c;
}

void method_trainer_destroy(MethodTrainer *t)
{
    if (!t)
        return;
    if (t->ctx && t->opt) { /* the method goes on living on the host */
        char err[256];
        if (!train_state_to_host(t->ctx, t->m->ps, t->opt, t->sync, err, sizeof err))
            fprintf(stderr, "train: %s\n", err);
    }
    dist_grad_sync_destroy(t->sync);
    sgd_destroy(t->opt);
    ctx_destroy(t->ctx);
    free(t->group_names);
    free(t->config_text);
    free(t->out_dir);
    free(t);
}

int method_trainer_epoch(const MethodTrainer *t) { return t->epoch; }
int64_t method_trainer_steps(const MethodTrainer *t) { return t->step; }
Sgd *method_trainer_optimizer(MethodTrainer *t) { return t->opt; }

bool method_trainer_save(MethodTrainer *t, int epochs_done, char *err, size_t err_cap)
{
    if (!t->out_dir || dist_rank(t->cfg.comm) != 0) /* data-parallel: rank 0 writes */
        return true;
    /* the files are written from the host blocks; the next step moves everything back */
    if (!train_state_to_host(t->ctx, t->m->ps, t->opt, t->sync, err, err_cap))
        return false;
    const ParamSet *ps = t->m->ps, *mom = t->opt->state;
    int n = ps->n + mom->n;
    SafetensorsWriteTensor *w = calloc((size_t)n, sizeof *w);
    char **names = calloc((size_t)n, sizeof *names);
    bool ok = w && names;
    for (int i = 0; ok && i < n; i++) {
        const Tensor *x = i < ps->n ? ps->items[i] : mom->items[i - ps->n];
        const char *prefix = i < ps->n ? "model." : "momentum.";
        size_t len = strlen(prefix) + strlen(x->name) + 1;
        if (!(names[i] = malloc(len))) {
            ok = false;
            break;
        }
        snprintf(names[i], len, "%s%s", prefix, x->name);
        w[i] = (SafetensorsWriteTensor){names[i], safetensors_from_dtype(x->dtype), x->ndim, x->shape, x->data};
    }
    char epoch_s[32], step_s[32], sgd_s[32], seed_s[32], path[4096];
    snprintf(epoch_s, sizeof epoch_s, "%d", epochs_done);
    snprintf(step_s, sizeof step_s, "%" PRId64, t->step);
    snprintf(sgd_s, sizeof sgd_s, "%" PRId64, t->opt->steps);
    snprintf(seed_s, sizeof seed_s, "%" PRIu64, t->cfg.seed);
    SafetensorsMeta meta[] = {{"format", METHOD_STATE_FORMAT}, {"method", t->m->id}, {"preset", t->m->preset},
                              {"epoch", epoch_s}, {"step", step_s}, {"sgd_steps", sgd_s}, {"seed", seed_s},
                              {"config", t->config_text}};
    if (!ok)
        snprintf(err, err_cap, "train: out of memory writing a checkpoint");
    if (ok) {
        snprintf(path, sizeof path, "%s/train_state.safetensors", t->out_dir);
        ok = safetensors_write(path, w, n, meta, (int)(sizeof meta / sizeof meta[0]), err, err_cap);
    }
    if (ok) { /* the model alone, after the state: a kill between the two leaves a state never behind it */
        snprintf(path, sizeof path, "%s/model.safetensors", t->out_dir);
        SafetensorsMeta mmeta[] = {{"method", t->m->id}, {"preset", t->m->preset}, {"epoch", epoch_s},
                                   {"step", step_s}, {"config", t->config_text}};
        ok = checkpoint_save(ps, path, mmeta, 5, err, err_cap);
    }
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    free(w);
    return ok;
}

static bool mt_meta_i64(const SafetensorsFile *f, const char *key, int64_t *out, char *err, size_t err_cap)
{
    const char *v = safetensors_metadata_get(f, key);
    char *end = NULL;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || end == v || *end || x < 0) {
        snprintf(err, err_cap, "%s: metadata \"%s\" is %s (expected a non-negative integer); not a focusbench "
                 "training state", safetensors_path(f), key, v ? v : "missing");
        return false;
    }
    *out = x;
    return true;
}

static bool mt_load(MethodTrainer *t, char *err, size_t err_cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/train_state.safetensors", t->out_dir);
    FILE *probe = fopen(path, "rb");
    if (!probe)
        return true; /* a fresh run */
    fclose(probe);
    SafetensorsFile *f = safetensors_open(path, err, err_cap);
    if (!f)
        return false;
    const char *format = safetensors_metadata_get(f, "format"), *id = safetensors_metadata_get(f, "method"),
               *preset = safetensors_metadata_get(f, "preset"), *config = safetensors_metadata_get(f, "config");
    int64_t epoch = 0, step = 0, sgd_steps = 0, seed = 0;
    bool ok = false;
    if (!format || strcmp(format, METHOD_STATE_FORMAT) != 0)
        snprintf(err, err_cap, "%s: not a focusbench method training state (format \"%s\", expected \"%s\")", path,
                 format ? format : "missing", METHOD_STATE_FORMAT);
    else if (!id || !preset || strcmp(id, t->m->id) != 0 || strcmp(preset, t->m->preset) != 0)
        snprintf(err, err_cap, "%s holds a run of %s (preset %s), not of %s (preset %s); use another output directory",
                 path, id ? id : "?", preset ? preset : "?", t->m->id, t->m->preset);
    else if (!config || strcmp(config, t->config_text) != 0)
        snprintf(err, err_cap, "%s was written by a run with another configuration; resume with the same options, or "
                 "use another output directory.\n  saved: %s\n  now:   %s", path, config ? config : "(none)",
                 t->config_text);
    else if (mt_meta_i64(f, "epoch", &epoch, err, err_cap) && mt_meta_i64(f, "step", &step, err, err_cap) &&
             mt_meta_i64(f, "sgd_steps", &sgd_steps, err, err_cap) && mt_meta_i64(f, "seed", &seed, err, err_cap)) {
        if ((uint64_t)seed != t->cfg.seed)
            snprintf(err, err_cap, "%s was written with seed %lld, this run has seed %" PRIu64, path, (long long)seed,
                     t->cfg.seed);
        else
            ok = true;
    }
    if (ok) {
        CheckpointLoadOptions mo = {.file_prefix = "model."}, so = {.file_prefix = "momentum."};
        ok = checkpoint_load_file(t->m->ps, f, &mo, err, err_cap) &&
             checkpoint_load_file(t->opt->state, f, &so, err, err_cap);
    }
    safetensors_close(f);
    if (!ok)
        return false;
    t->epoch = (int)epoch;
    t->step = step;
    t->opt->steps = sgd_steps;
    sgd_set_epoch(t->opt, t->epoch);
    return true;
}

MethodTrainer *method_trainer_create(Method *m, const MethodTrainConfig *cfg, char *err, size_t err_cap)
{
    if (!m || m->ps->backend != BACKEND_CPU || !m->ops->train_loss) {
        snprintf(err, err_cap, "train: the method must be allocated on the CPU backend and trainable");
        return NULL;
    }
    if (cfg->epochs < 1 || cfg->stop_after_epochs < 0 || !(cfg->lr >= 0.0)) {
        snprintf(err, err_cap, "train: need epochs >= 1, lr >= 0 and stop-after >= 0, got %d, %g, %d", cfg->epochs,
                 cfg->lr, cfg->stop_after_epochs);
        return NULL;
    }
    for (int i = 0; i < m->ps->n; i++)
        if (m->ps->items[i]->requires_grad && !m->ps->items[i]->grad) {
            snprintf(err, err_cap, "train: the method was created without gradients (method_create with with_grads)");
            return NULL;
        }
    MethodTrainer *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, err_cap, "train: out of memory");
        return NULL;
    }
    t->m = m;
    t->cfg = *cfg;
    t->config_text = mt_dup(cfg->config_text);
    t->out_dir = cfg->out_dir ? mt_dup(cfg->out_dir) : NULL;
    t->group_names = calloc((size_t)SGD_MAX_GROUPS * SGD_GROUP_NAME_LEN, 1);
    if (!t->config_text || (cfg->out_dir && !t->out_dir) || !t->group_names) {
        snprintf(err, err_cap, "train: out of memory");
        method_trainer_destroy(t);
        return NULL;
    }
    char why[768];
    if (!(t->ctx = run_device_ctx(&cfg->device, cfg->seed, why, sizeof why))) {
        snprintf(err, err_cap, "train: %s", why);
        method_trainer_destroy(t);
        return NULL;
    }
    t->cfg.config_text = t->config_text;
    t->cfg.out_dir = t->out_dir;
    SgdGroup groups[SGD_MAX_GROUPS];
    int n_groups = method_sgd_groups(m, groups, SGD_MAX_GROUPS, t->group_names, err, err_cap);
    SgdConfig sc = {.lr = cfg->lr, .momentum = cfg->momentum, .weight_decay = cfg->weight_decay,
                    .schedule = SGD_SCHEDULE_COSINE, .epochs = cfg->epochs};
    if (n_groups < 0 || !(t->opt = sgd_create(m->ps, &sc, groups, n_groups, err, err_cap)) ||
        (cfg->resume && t->out_dir && !mt_load(t, err, err_cap)) ||
        (cfg->comm && (!dist_broadcast_params(cfg->comm, m->ps, 0, err, err_cap) ||
                       !(t->sync = dist_grad_sync_create(cfg->comm, m->ps, 0, err, err_cap))))) {
        method_trainer_destroy(t);
        return NULL;
    }
    /* synchronised batch norm: global-batch statistics in every batch norm, so the running
     * statistics are equal on every rank by construction (the sync's averaging stays off) */
    if (cfg->comm && cfg->sync_bn)
        dist_install_bn_sync(t->ctx, cfg->comm);
    return t;
}

bool method_trainer_step(MethodTrainer *t, const TrainBatch *batch, double *loss, char *err, size_t err_cap)
{
    Method *m = t->m;
    Ctx *ctx = t->ctx;
    const int B = batch->size, T = method_frames(m), S = method_frame_size(m);
    *loss = NAN;
    if (B < 1 || !batch->video || !batch->labels) {
        snprintf(err, err_cap, "train: empty batch (size %d)", B);
        return false;
    }
    for (int b = 0; b < B; b++)
        if (batch->labels[b] < 0 || batch->labels[b] >= m->classes) {
            snprintf(err, err_cap, "train: clip %d of the batch has label %d, outside the method's %d classes (an "
                     "unlabelled video, or --classes smaller than the data set's)", b, (int)batch->labels[b],
                     m->classes);
            return false;
        }
    if (!train_state_to_device(ctx, m->ps, t->opt, t->sync, err, err_cap))
        return false;
    ctx_clear_error(ctx);
    ctx_begin_pass(ctx);
    ctx_set_training(ctx, true);
    /* rank r of W keys its draws by step·W + r (W = 1: the step itself) */
    const uint64_t key = (uint64_t)t->step * (uint64_t)dist_world(t->cfg.comm) + (uint64_t)dist_rank(t->cfg.comm);
    ctx->step = key;
    Tensor *clips = run_device_from_host(ctx, DTYPE_F32, 5, (int64_t[]){B, T, 3, S, S}, batch->video); /* (B, T, 3, S, S) */
    Tensor *labels = run_device_from_host(ctx, DTYPE_I32, 1, (int64_t[]){B}, batch->labels);          /* (B) */
    run_device_zero_grad(ctx, m->ps);
    Tensor *l = clips && labels ? m->ops->train_loss(ctx, m, clips, labels, key) : NULL;
    float loss_value = NAN;
    if (!l || !l->data || !tape_backward(ctx, l) || !run_device_to_host(ctx, l, &loss_value)) {
        snprintf(err, err_cap, "train step %" PRId64 ": %s", t->step, ctx_error_message(ctx));
        return false;
    }
    *loss = (double)loss_value;
    if (!isfinite(*loss)) {
        snprintf(err, err_cap, "train step %" PRId64 ": the loss is %g (diverged; lower --lr)", t->step, *loss);
        return false;
    }
    /* data-parallel: the whole global batch's gradient on every rank, before clipping (as DDP) */
    if (t->sync && !dist_grad_sync_average(t->sync, B, NULL, err, err_cap))
        return false;
    if (t->cfg.grad_clip > 0.0 && method_clip_grad_norm(ctx, m, t->cfg.grad_clip) < 0.0) {
        snprintf(err, err_cap, "train step %" PRId64 ": clipping the gradients: %s", t->step,
                 ctx_ok(ctx) ? "they are not where the step ran" : ctx_error_message(ctx));
        return false;
    }
    if (!sgd_step(t->opt, err, err_cap))
        return false;
    t->step++;
    return true;
}

bool method_trainer_run(MethodTrainer *t, TrainDataSource *src, TrainEpochFn on_epoch, void *user, char *err,
                        size_t err_cap)
{
    FILE *log = t->cfg.log;
    for (int ran = 0; t->epoch < t->cfg.epochs; ran++) {
        if (t->cfg.stop_after_epochs > 0 && ran >= t->cfg.stop_after_epochs)
            return true;
        int e = t->epoch;
        sgd_set_epoch(t->opt, e);
        if (!src->start_epoch(src->user, e, err, err_cap))
            return false;
        TrainEpochStats es = {.epoch = e, .lr = sgd_schedule_lr(&t->opt->cfg, e)};
        double t0 = mt_now();
        for (;;) {
            TrainBatch b;
            int r = src->next_batch(src->user, &b, err, err_cap);
            if (r < 0)
                return false;
            if (r == 0)
                break;
            double loss;
            if (!method_trainer_step(t, &b, &loss, err, err_cap))
                return false;
            es.loss += b.size * loss;
            es.samples += b.size;
            es.steps++;
            if (log && t->cfg.log_every > 0 && es.steps % t->cfg.log_every == 0) {
                fprintf(log, "epoch %d step %" PRId64 " (%" PRId64 " this epoch), lr %.6g: loss %.4f\n", e, t->step,
                        es.steps, es.lr, loss);
                fflush(log);
            }
        }
        if (es.steps == 0) {
            snprintf(err, err_cap, "train: the data source gave no batch in epoch %d (empty data set, or every batch "
                     "dropped)", e);
            return false;
        }
        es.loss /= (double)es.samples;
        /* train_loss gives no predictions and no Uni-AdaFocus terms: empty cells in the epoch log */
        es.accuracy = es.cat = es.global = es.local = es.temporal = es.spatial = es.norm = NAN;
        t->epoch = e + 1;
        if (!method_trainer_save(t, t->epoch, err, err_cap))
            return false;
        es.seconds = mt_now() - t0;
        if (log) {
            fprintf(log, "epoch %d done: %" PRId64 " steps, %" PRId64 " clips, lr %.6g, loss %.4f, %.1f s%s\n", e,
                    es.steps, es.samples, es.lr, es.loss, es.seconds, t->out_dir ? ", checkpoint written" : "");
            fflush(log);
        }
        if (on_epoch)
            on_epoch(user, &es);
    }
    return true;
}

/* method_collect_exit_logits' batch: the method's forward_exits, (B, K, C), and the per-video
 * cost of each exit. */
static bool method_exit_batch(Ctx *ctx, void *user, Tensor *clips, int B, float *logits, double *gflops)
{
    Method *m = user;
    ctx->step = 0; /* eval draws (none for most methods) do not depend on the batch number */
    Tensor *lg = m->ops->forward_exits(ctx, m, clips, gflops);
    if (!lg || !lg->data || tensor_numel(lg) != (int64_t)B * m->n_exits * m->classes) {
        if (ctx_ok(ctx))
            ctx_set_error(ctx, "%s: forward_exits gave no (%d, %d, %d) logits", m->id, B, m->n_exits, m->classes);
        return false;
    }
    return run_device_to_host(ctx, lg, logits);
}

bool method_collect_exit_logits(Method *m, const RunDevice *dev, TrainDataSource *src, int epoch, FILE *progress,
                                int every, ExitLogits *out, char *err, size_t err_cap)
{
    return exit_logits_collect(dev, m->ps, m->n_exits, m->classes, method_frames(m), method_frame_size(m), true,
                               method_exit_batch, m, src, epoch, progress, every, out, err, err_cap);
}
