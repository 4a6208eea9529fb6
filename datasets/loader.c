/* loader.c — worker threads, a bounded ring of sample slots, in-order batch assembly.
 *
 * Epoch position p (0..n−1) holds video perm[p] and lives in slot p mod n_slots. A worker
 * claims the next position only while it is less than consumed + n_slots (the bounded
 * prefetch: at most prefetch_batches·B samples decoded ahead), computes the sample into the
 * slot, and marks it done. The consumer takes positions strictly in order, so batch contents
 * never depend on which worker finished first. A new epoch waits for in-flight work to finish
 * before it reuses the slots.
 */
#include "datasets/loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "datasets/transform.h"
#include "datasets/video.h"
#include "kernels/rng.h"

enum { SLOT_FREE = 0, SLOT_BUSY, SLOT_DONE };

typedef struct {
    int state;
    int64_t pos;      /* epoch position held */
    int video;
    bool ok;
    float *data;      /* (T, 3, S, S) */
    char msg[512];
} Slot;

/* A worker's reusable decode buffer. */
typedef struct {
    uint8_t *frames;  /* (T, h, w, 3) */
    size_t cap;
} Scratch;

struct Loader {
    LoaderConfig cfg;
    int n_videos, n_classes;
    bool multi_label;
    size_t sample_floats; /* T·3·S·S */

    pthread_t *tid;
    int n_workers, started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    Slot *slots;
    int n_slots;
    int *perm;            /* (n_videos) epoch order */
    int epoch;
    bool running, shutdown;
    int64_t next_claim, consumed;
    int active;
    unsigned char *failed; /* (n_videos) 1 once a video has failed (and was reported) */

    float *batch_data;     /* (B, T, 3, S, S) */
    int32_t *batch_labels; /* (B) */
    float *batch_targets;  /* (B, n_classes) or NULL */
    int32_t *batch_videos; /* (B) */
    LoaderStats stats;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int source_count(const LoaderConfig *c)
{
    return c->list ? c->list->n : clip_cache_count(c->cache);
}

static bool check_config(const LoaderConfig *c, char *err, size_t cap)
{
    if (!c || (!c->list) == (!c->cache)) {
        snprintf(err, cap, "loader: give exactly one source, a video list or a clip cache");
        return false;
    }
    if (c->num_frames < 1 || c->num_frames > 4096 || c->crop_size < 1 || c->crop_size > 8192 || c->scale_size < 0 ||
        c->batch_size < 1 || c->workers < 0 || c->workers > 256 || c->prefetch_batches < 0 ||
        c->decoder_threads < 0) {
        snprintf(err, cap,
                 "loader: bad configuration: frames %d (1..4096), crop %d (1..8192), scale %d (>= 0), batch %d (>= 1), "
                 "workers %d (0..256), prefetch %d (>= 0), decoder threads %d (>= 0)",
                 c->num_frames, c->crop_size, c->scale_size, c->batch_size, c->workers, c->prefetch_batches,
                 c->decoder_threads);
        return false;
    }
    if (source_count(c) == 0) {
        snprintf(err, cap, "loader: the %s is empty", c->list ? "video list" : "clip cache");
        return false;
    }
    return true;
}

static bool grow(Scratch *s, size_t bytes)
{
    if (s->cap >= bytes)
        return true;
    uint8_t *p = realloc(s->frames, bytes);
    if (!p)
        return false;
    s->frames = p;
    s->cap = bytes;
    return true;
}

/* The whole per-sample computation; shared by the workers and loader_load_sample. */
static bool load_sample(const LoaderConfig *c, int video, int epoch, float *out, Scratch *sc, int64_t *decoded,
                        char *err, size_t cap)
{
    const int T = c->num_frames, S = c->crop_size;
    const int scale = c->scale_size > 0 ? c->scale_size : S * 256 / 224;
    int64_t idx_buf[256];
    int64_t *idx = T <= 256 ? idx_buf : malloc((size_t)T * sizeof *idx); /* (T) */
    if (!idx) {
        snprintf(err, cap, "loader: out of memory");
        return false;
    }
    bool ok = false;
    int w, h;
    if (c->cache) {
        ClipView v;
        if (!clip_cache_get(c->cache, video, &v)) {
            snprintf(err, cap, "loader: clip %d is not in the cache", video);
            goto done;
        }
        /* The cached frames are the video now: sample T of them. */
        w = clip_cache_width(c->cache);
        h = clip_cache_height(c->cache);
        video_sample_tsn(v.n_frames, T, c->train, c->seed, (uint64_t)video, (uint64_t)epoch, idx);
        size_t fb = (size_t)w * h * 3;
        if (!grow(sc, (size_t)T * fb)) {
            snprintf(err, cap, "loader: out of memory");
            goto done;
        }
        for (int t = 0; t < T; t++)
            memcpy(sc->frames + (size_t)t * fb, v.frames + (size_t)idx[t] * fb, fb);
    } else {
        char path[4096];
        if (!video_list_resolve(c->list, &c->list->items[video], path, sizeof path)) {
            snprintf(err, cap, "loader: path of video %d is too long", video);
            goto done;
        }
        VideoReader *r = video_open(path, c->decoder_threads > 0 ? c->decoder_threads : 1, err, cap);
        if (!r)
            goto done;
        const VideoInfo *in = video_reader_info(r);
        w = in->width;
        h = in->height;
        video_sample_tsn(in->frames, T, c->train, c->seed, (uint64_t)video, (uint64_t)epoch, idx);
        bool got = grow(sc, (size_t)T * w * h * 3);
        if (!got)
            snprintf(err, cap, "video '%s': out of memory for %d frames of %dx%d", path, T, w, h);
        got = got && video_read_frames(r, idx, T, sc->frames, err, cap);
        if (decoded)
            *decoded += video_reader_stats(r).frames_decoded;
        video_close(r);
        if (!got)
            goto done;
    }
    TransformRegion reg;
    if (c->whole_frame) {
        reg = transform_center_region(w, h, S, S); /* the short side becomes S: the whole frame when square */
    } else if (c->train) {
        RngStream aug = rng_stream(c->seed, RNG_PURPOSE_AUGMENT, (uint64_t)video, (uint64_t)epoch);
        reg = transform_multiscale_region(w, h, S, c->flip, &aug);
    } else {
        reg = transform_center_region(w, h, scale, S);
    }
    ok = transform_clip_f32(sc->frames, T, w, h, &reg, S, out);
    if (!ok)
        snprintf(err, cap, "loader: out of memory transforming video %d", video);
done:
    if (idx != idx_buf)
        free(idx);
    return ok;
}

bool loader_load_sample(const LoaderConfig *cfg, int video, int epoch, float *out, char *err, size_t err_cap)
{
    if (!check_config(cfg, err, err_cap))
        return false;
    if (video < 0 || video >= source_count(cfg)) {
        snprintf(err, err_cap, "loader: video %d out of range (0..%d)", video, source_count(cfg) - 1);
        return false;
    }
    Scratch sc = {0};
    bool ok = load_sample(cfg, video, epoch, out, &sc, NULL, err, err_cap);
    free(sc.frames);
    return ok;
}

static void *worker_main(void *arg)
{
    Loader *L = arg;
    Scratch sc = {0};
    pthread_mutex_lock(&L->mu);
    for (;;) {
        if (L->shutdown)
            break;
        if (!L->running || L->next_claim >= L->n_videos || L->next_claim >= L->consumed + L->n_slots) {
            pthread_cond_wait(&L->cv_work, &L->mu);
            continue;
        }
        int64_t pos = L->next_claim++;
        Slot *s = &L->slots[pos % L->n_slots];
        s->state = SLOT_BUSY;
        s->pos = pos;
        s->video = L->perm[pos];
        bool known_bad = L->failed[s->video];
        int epoch = L->epoch;
        L->active++;
        pthread_mutex_unlock(&L->mu);

        double t0 = now_s();
        int64_t decoded = 0;
        char msg[sizeof s->msg];
        msg[0] = '\0';
        /* A video that failed once fails again: skip the work, keep the order. */
        bool ok = !known_bad && load_sample(&L->cfg, s->video, epoch, s->data, &sc, &decoded, msg, sizeof msg);
        double dt = now_s() - t0;

        pthread_mutex_lock(&L->mu);
        L->active--;
        s->ok = ok;
        memcpy(s->msg, msg, sizeof msg);
        s->state = SLOT_DONE;
        L->stats.frames_decoded += decoded;
        L->stats.work_seconds += dt;
        pthread_cond_broadcast(&L->cv_done);
    }
    pthread_mutex_unlock(&L->mu);
    free(sc.frames);
    return NULL;
}

void loader_destroy(Loader *L)
{
    if (!L)
        return;
    pthread_mutex_lock(&L->mu);
    L->shutdown = true;
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    for (int t = 0; t < L->started; t++)
        pthread_join(L->tid[t], NULL);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv_work);
    pthread_cond_destroy(&L->cv_done);
    for (int i = 0; L->slots && i < L->n_slots; i++)
        free(L->slots[i].data);
    free(L->slots);
    free(L->tid);
    free(L->perm);
    free(L->failed);
    free(L->batch_data);
    free(L->batch_labels);
    free(L->batch_targets);
    free(L->batch_videos);
    free(L);
}

Loader *loader_create(const LoaderConfig *cfg, char *err, size_t err_cap)
{
    if (!check_config(cfg, err, err_cap))
        return NULL;
    Loader *L = calloc(1, sizeof *L);
    if (!L) {
        snprintf(err, err_cap, "loader: out of memory");
        return NULL;
    }
    L->cfg = *cfg;
    L->n_videos = source_count(cfg);
    if (cfg->list) {
        L->n_classes = cfg->list->n_classes;
        L->multi_label = cfg->list->multi_label;
        /* A list without a class file: the classes are the labels seen. */
        for (int i = 0; L->n_classes == 0 && i < cfg->list->n; i++)
            for (int k = 0; k < cfg->list->items[i].n_labels; k++)
                if (cfg->list->items[i].labels[k] + 1 > L->n_classes)
                    L->n_classes = cfg->list->items[i].labels[k] + 1;
    } else {
        L->n_classes = clip_cache_n_classes(cfg->cache);
        L->multi_label = clip_cache_multi_label(cfg->cache);
    }
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv_work, NULL);
    pthread_cond_init(&L->cv_done, NULL);
    const int B = cfg->batch_size;
    L->sample_floats = (size_t)cfg->num_frames * 3 * (size_t)cfg->crop_size * (size_t)cfg->crop_size;
    L->n_workers = cfg->workers > 0 ? cfg->workers : cpu_count();
    int prefetch = cfg->prefetch_batches > 0 ? cfg->prefetch_batches : 2;
    /* Enough slots for the batches ahead, and at least two per worker so none idles. */
    L->n_slots = prefetch * B > 2 * L->n_workers ? prefetch * B : 2 * L->n_workers;
    L->slots = calloc((size_t)L->n_slots, sizeof *L->slots);
    L->tid = calloc((size_t)L->n_workers, sizeof *L->tid);
    L->perm = malloc((size_t)L->n_videos * sizeof *L->perm);
    L->failed = calloc((size_t)L->n_videos, 1);
    L->batch_data = malloc((size_t)B * L->sample_floats * sizeof *L->batch_data);
    L->batch_labels = malloc((size_t)B * sizeof *L->batch_labels);
    L->batch_videos = malloc((size_t)B * sizeof *L->batch_videos);
    if (L->multi_label && L->n_classes > 0)
        L->batch_targets = malloc((size_t)B * L->n_classes * sizeof *L->batch_targets);
    bool ok = L->slots && L->tid && L->perm && L->failed && L->batch_data && L->batch_labels && L->batch_videos &&
              (!L->multi_label || L->n_classes == 0 || L->batch_targets);
    for (int i = 0; ok && i < L->n_slots; i++)
        ok = (L->slots[i].data = malloc(L->sample_floats * sizeof(float))) != NULL;
    if (!ok) {
        snprintf(err, err_cap, "loader: out of memory for %d prefetch slots of %zu floats", L->n_slots,
                 L->sample_floats);
        loader_destroy(L);
        return NULL;
    }
    for (int t = 0; t < L->n_workers; t++) {
        if (pthread_create(&L->tid[t], NULL, worker_main, L) != 0) {
            snprintf(err, err_cap, "loader: cannot start worker thread %d", t);
            loader_destroy(L);
            return NULL;
        }
        L->started++;
    }
    return L;
}

bool loader_start_epoch(Loader *L, int epoch, char *err, size_t err_cap)
{
    if (!L || epoch < 0) {
        snprintf(err, err_cap, "loader_start_epoch: bad arguments (epoch %d)", epoch);
        return false;
    }
    pthread_mutex_lock(&L->mu);
    L->running = false;
    while (L->active > 0)
        pthread_cond_wait(&L->cv_done, &L->mu);
    for (int i = 0; i < L->n_slots; i++)
        L->slots[i].state = SLOT_FREE;
    for (int i = 0; i < L->n_videos; i++)
        L->perm[i] = i;
    if (L->cfg.shuffle) {
        /* Fisher-Yates, from the top, on a stream keyed by the epoch. */
        RngStream s = rng_stream(L->cfg.seed, RNG_PURPOSE_SHUFFLE, 0, (uint64_t)epoch);
        for (int i = L->n_videos - 1; i > 0; i--) {
            int j = (int)rng_below(&s, (uint64_t)i, (uint32_t)(i + 1));
            int t = L->perm[i];
            L->perm[i] = L->perm[j];
            L->perm[j] = t;
        }
    }
    L->epoch = epoch;
    L->next_claim = 0;
    L->consumed = 0;
    L->running = true;
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    return true;
}

bool loader_next(Loader *L, LoaderBatch *batch)
{
    const int B = L->cfg.batch_size;
    FILE *warn = L->cfg.warn ? L->cfg.warn : stderr;
    int b = 0;
    pthread_mutex_lock(&L->mu);
    if (!L->running) {
        pthread_mutex_unlock(&L->mu);
        return false;
    }
    while (b < B && L->consumed < L->n_videos) {
        Slot *s = &L->slots[L->consumed % L->n_slots];
        if (!(s->state == SLOT_DONE && s->pos == L->consumed)) {
            double t0 = now_s();
            while (!(s->state == SLOT_DONE && s->pos == L->consumed))
                pthread_cond_wait(&L->cv_done, &L->mu);
            L->stats.wait_seconds += now_s() - t0;
        }
        if (s->ok) {
            /* The slot cannot be reclaimed until `consumed` moves past it: copy unlocked. */
            pthread_mutex_unlock(&L->mu);
            memcpy(L->batch_data + (size_t)b * L->sample_floats, s->data, L->sample_floats * sizeof(float));
            const int32_t *labels;
            int n_labels;
            if (L->cfg.list) {
                labels = L->cfg.list->items[s->video].labels;
                n_labels = L->cfg.list->items[s->video].n_labels;
            } else {
                ClipView v;
                clip_cache_get(L->cfg.cache, s->video, &v);
                labels = v.labels;
                n_labels = v.n_labels;
            }
            L->batch_labels[b] = n_labels > 0 ? labels[0] : -1;
            L->batch_videos[b] = s->video;
            if (L->batch_targets) {
                float *tg = L->batch_targets + (size_t)b * L->n_classes;
                memset(tg, 0, (size_t)L->n_classes * sizeof *tg);
                for (int k = 0; k < n_labels; k++)
                    if (labels[k] >= 0 && labels[k] < L->n_classes)
                        tg[labels[k]] = 1.0f;
            }
            b++;
            pthread_mutex_lock(&L->mu);
            L->stats.samples++;
        } else {
            L->stats.skipped++;
            if (!L->failed[s->video]) {
                L->failed[s->video] = 1;
                L->stats.videos_failed++;
                fprintf(warn, "warning: skipping video %d: %s\n", s->video, s->msg);
                fflush(warn);
            }
        }
        s->state = SLOT_FREE;
        L->consumed++;
        pthread_cond_broadcast(&L->cv_work);
    }
    if (b == 0 || (b < B && L->cfg.drop_last))
        L->running = L->consumed < L->n_videos; /* an epoch ends once every position is taken */
    pthread_mutex_unlock(&L->mu);
    if (b == 0 || (b < B && L->cfg.drop_last))
        return false;
    batch->data = L->batch_data;
    batch->labels = L->batch_labels;
    batch->targets = L->batch_targets;
    batch->videos = L->batch_videos;
    batch->size = b;
    return true;
}

int loader_num_videos(const Loader *L)
{
    return L->n_videos;
}

int loader_num_classes(const Loader *L)
{
    return L->n_classes;
}

LoaderStats loader_stats(const Loader *L)
{
    pthread_mutex_lock((pthread_mutex_t *)&L->mu);
    LoaderStats s = L->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&L->mu);
    return s;
}

void loader_print_summary(const Loader *L, FILE *out)
{
    LoaderStats s = loader_stats(L);
    double rate = s.work_seconds > 0 ? (double)(s.samples + s.skipped) / s.work_seconds : 0.0;
    fprintf(out, "data: %lld clips delivered, %lld skipped (%d video%s failed to open or decode), %.1f clips/s per "
                 "worker, %.1f s waiting for data\n",
            (long long)s.samples, (long long)s.skipped, s.videos_failed, s.videos_failed == 1 ? "" : "s", rate,
            s.wait_seconds);
}
