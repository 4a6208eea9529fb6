/* loader.h — batches of normalised clips from a video list or a clip cache, decoded ahead by threads.
 *
 * Owns: the epoch order (a seeded shuffle), per-video TSN sampling and augmentation, the worker
 * threads, the bounded prefetch queue, skipping of bad videos, and the run's data summary.
 *
 * Determinism: everything random about a sample is a pure function of (seed, video, epoch):
 * the order is a permutation keyed (seed, RNG_PURPOSE_SHUFFLE, 0, epoch), frame indices
 * (seed, RNG_PURPOSE_SAMPLING, video, epoch), the crop and flip (seed, RNG_PURPOSE_AUGMENT,
 * video, epoch). Workers fill numbered slots and batches are assembled strictly in epoch order,
 * so the batches are bit-identical whatever the number of workers or their timing.
 *
 * Bad videos: a video that fails to open or decode is left out of its batch (the batch is
 * filled from the next ones), reported with ONE warning line the first time, never retried in
 * later epochs, and counted in loader_stats. A loader never stops for a bad video.
 */
#ifndef FOCUSBENCH_LOADER_H
#define FOCUSBENCH_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "datasets/clip_cache.h"
#include "datasets/video_list.h"

typedef struct {
    const VideoList *list;     /* read videos / frame folders …                               */
    const ClipCache *cache;    /* … or a clip cache (exactly one of the two is non-NULL)      */
    int num_frames;            /* T frames per clip (TSN segments)                           */
    int crop_size;             /* S: output frames are S×S                                   */
    int scale_size;            /* test: short side resized to this before the centre crop
                                * (0: S·256/224 as TSN; set S to keep the whole frame)       */
    bool train;                /* random segment offsets + multi-scale crop (+ flip)         */
    bool flip;                 /* horizontal flip in training (off for Something/Jester)     */
    bool whole_frame;          /* no multi-scale crop: train and test see the whole frame
                                * resized to S (the synthetic benchmark, whose class evidence
                                * is a texture of a given period: rescaling would relabel it) */
    bool shuffle;              /* a new permutation every epoch                              */
    int batch_size;            /* B >= 1                                                     */
    bool drop_last;            /* drop a final batch smaller than B                          */
    uint64_t seed;
    int workers;               /* decoding threads (0: one per core; 1 or more)              */
    int prefetch_batches;      /* batches decoded ahead (0: 2)                               */
    int decoder_threads;       /* libavcodec threads per video (0: 1)                        */
    FILE *warn;                /* where the one-line warnings go (NULL: stderr)              */
} LoaderConfig;

typedef struct {
    float *data;        /* (B, T, 3, S, S) normalised RGB; equal to (B·T, 3, S, S)          */
    int32_t *labels;    /* (B) the first label of each video (-1 when it has none)         */
    float *targets;     /* (B, n_classes) multi-hot when the source is multi-label, else NULL */
    int32_t *videos;    /* (B) index of each video in the list / cache                     */
    int size;           /* B of this batch (the last batch of an epoch can be smaller)     */
} LoaderBatch;

typedef struct {
    int64_t samples;         /* clips delivered                                         */
    int64_t skipped;         /* samples left out because their video failed (all epochs) */
    int videos_failed;       /* distinct videos that failed                             */
    int64_t frames_decoded;  /* decoder output (includes frames passed on the way)      */
    double work_seconds;     /* summed over workers: decode + transform                 */
    double wait_seconds;     /* the consumer waiting for a sample that was not ready    */
} LoaderStats;

typedef struct Loader Loader;

/* Validates the configuration (clear message on a bad one) and starts the workers. */
Loader *loader_create(const LoaderConfig *cfg, char *err, size_t err_cap);
/* Starts epoch `epoch` (any order of epochs is allowed; an unfinished epoch is abandoned). */
bool loader_start_epoch(Loader *L, int epoch, char *err, size_t err_cap);
/* The next batch of the epoch, valid until the next call; false at the end of the epoch. */
bool loader_next(Loader *L, LoaderBatch *batch);
/* Number of videos in the source, and of classes (0 when unknown). */
int loader_num_videos(const Loader *L);
int loader_num_classes(const Loader *L);
LoaderStats loader_stats(const Loader *L);
/* "data: 1200 clips, 3 videos skipped (3 failed to decode), 41.2 clips/s of work" */
void loader_print_summary(const Loader *L, FILE *out);
void loader_destroy(Loader *L);

/* One sample exactly as the workers compute it (no threads): out (T, 3, S, S). For tests and
 * tools. False with a reason when the video fails. */
bool loader_load_sample(const LoaderConfig *cfg, int video, int epoch, float *out, char *err, size_t err_cap);

#endif
