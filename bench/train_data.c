/* train_data.c — see train_data.h. */
#include "bench/train_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/clip_cache.h"
#include "datasets/formats.h"
#include "datasets/loader.h"
#include "datasets/synth.h"
#include "datasets/transform.h"
#include "datasets/video.h"
#include "datasets/video_list.h"
#include "kernels/rng.h"

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
           "  --no-flip             no horizontal flip in training (Something-Something, Jester)\n";
}

static bool parse_count(const char *val, int lo, int *out, const char *opt, char *err, size_t err_cap)
{
    char *end;
    errno = 0;
    long v = val ? strtol(val, &end, 10) : 0;
    if (!val || errno || end == val || *end || v < lo || v > 100000000) {
        snprintf(err, err_cap, "bad value '%s' for %s (an integer >= %d)", val ? val : "", opt, lo);
        return false;
    }
    *out = (int)v;
    return true;
}

int data_args_option(DataArgs *a, const char *opt, const char *val, char *err, size_t err_cap)
{
    if (strcmp(opt, "--no-flip") == 0) {
        a->no_flip = true;
        return 2;
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

/* ---- the source ------------------------------------------------------------------------------- */

typedef enum { SOURCE_LOADER, SOURCE_SYNTH } SourceKind;

struct TrainData {
    SourceKind kind;
    DataLoadOptions o;
    char describe[5120];
    bool flip;
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
    uint8_t *frames;   /* (T, S, S, 3) */
    uint8_t *background; /* (S, S, 3) */
};

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
    return loader_start_epoch(d->loader, epoch, err, err_cap);
}

static int loader_batch(void *user, TrainBatch *b, char *err, size_t err_cap)
{
    (void)err, (void)err_cap;
    TrainData *d = user;
    LoaderBatch lb;
    if (!loader_next(d->loader, &lb))
        return 0;
    *b = (TrainBatch){.video = lb.data, .labels = lb.labels, .videos = lb.videos, .size = lb.size};
    return 1;
}

static bool synth_start(void *user, int epoch, char *err, size_t err_cap)
{
    (void)err, (void)err_cap;
    TrainData *d = user;
    d->epoch = epoch;
    d->pos = 0;
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

/* Renders video v's T sampled frames, transformed and normalised, into out (T, 3, S, S). */
static bool synth_clip(TrainData *d, int v, float *out, char *err, size_t err_cap)
{
    const int T = d->o.frames, S = d->o.frame_size;
    SynthVideo sv;
    if (!synth_plan_video(&d->synth, d->split, v, &sv)) {
        snprintf(err, err_cap, "synthetic data: out of memory planning video %d", v);
        return false;
    }
    int64_t idx[T]; /* (T) */
    video_sample_tsn(sv.frames, T, d->o.train, d->o.seed, (uint64_t)v, (uint64_t)d->epoch, idx);
    synth_render_background(&d->synth, &sv, d->background);
    for (int t = 0; t < T; t++)
        synth_render_frame(&d->synth, &sv, d->background, (int)idx[t], d->frames + (size_t)t * S * S * 3);
    TransformRegion r;
    if (d->o.train) {
        RngStream rs = rng_stream(d->o.seed, RNG_PURPOSE_AUGMENT, (uint64_t)v, (uint64_t)d->epoch);
        r = transform_multiscale_region(S, S, S, d->flip, &rs);
    } else {
        r = transform_center_region(S, S, S, S); /* the whole rendered frame */
    }
    synth_video_free(&sv);
    if (!transform_clip_f32(d->frames, T, S, S, &r, S, out)) {
        snprintf(err, err_cap, "synthetic data: out of memory transforming video %d", v);
        return false;
    }
    return true;
}

static int synth_batch(void *user, TrainBatch *b, char *err, size_t err_cap)
{
    TrainData *d = user;
    int left = d->n - d->pos;
    if (left <= 0 || (d->o.drop_last && left < d->o.batch_size))
        return 0;
    int B = left < d->o.batch_size ? left : d->o.batch_size;
    int64_t clip = (int64_t)d->o.frames * 3 * d->o.frame_size * d->o.frame_size;
    for (int i = 0; i < B; i++) {
        int v = d->order[d->pos + i];
        if (!synth_clip(d, v, d->batch + i * clip, err, err_cap))
            return -1;
        d->batch_labels[i] = d->labels[v];
        d->batch_videos[i] = v;
    }
    d->pos += B;
    *b = (TrainBatch){.video = d->batch, .labels = d->batch_labels, .videos = d->batch_videos, .size = B};
    return 1;
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
    d->frames = malloc((size_t)T * S * S * 3);
    d->background = malloc((size_t)S * S * 3);
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
    return d;
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
    d->flip = !a->no_flip;
    if (a->synthetic > 0)
        return open_synthetic(a, split, o, d, err, err_cap);
    d->kind = SOURCE_LOADER;
    LoaderConfig lc = {.num_frames = o->frames, .crop_size = o->frame_size, .train = o->train, .flip = !a->no_flip,
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
