/* train_data.h — where `focusbench train` and `focusbench eval` get their clips: the glue between
 * datasets/ (video lists, clip caches, the loader, the synthetic benchmark's renderer) and
 * impl/train_loop.h's TrainDataSource (impl/ knows nothing about files).
 *
 * Owns: the data options both commands share, opening one split (train or val) as a source of
 * normalised clips (B, T, 3, S, S) with labels, and each video's full label set (for mAP).
 *
 *   --data DIR            DIR/train_list.txt and DIR/val_list.txt in the official list format,
 *                         paths under DIR (what `focusbench gen-data` writes)
 *   --list FILE           train's list (train); --train-list / --val-list (eval)
 *   --format NAME         the lists' format (datasets/formats.h; default list)
 *   --root DIR            directory the lists' relative paths are under
 *   --class-file FILE     the format's class file (default: its conventional file)
 *   --train-split S / --val-split S   ActivityNet subset or Kinetics split column to keep
 *   --cache DIR           train's clip cache; --train-cache / --val-cache (eval)
 *   --synthetic N         N videos per split of the synthetic benchmark rendered in memory at the
 *                         model's frame size (no files, no FFmpeg: smoke tests, GPU machines)
 *   --workers N           decoding threads (0: one per core)
 *   --no-flip             no horizontal flip in training (Something-Something, Jester)
 */
#ifndef FOCUSBENCH_TRAIN_DATA_H
#define FOCUSBENCH_TRAIN_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/train_loop.h"

enum { DATA_SPLIT_TRAIN = 0, DATA_SPLIT_VAL = 1 };

typedef struct {
    const char *data_dir;
    const char *list[2];   /* per split */
    const char *cache[2];
    const char *split[2];  /* FormatOptions.split per split */
    const char *format;    /* NULL: "list" */
    const char *root;
    const char *class_file;
    int synthetic;         /* > 0: videos per split rendered in memory */
    int workers;
    bool no_flip;
} DataArgs;

/* One option: 1 when it was a data option taking `val` (consumed), 2 when it was a flag without a
 * value (val unused, may be NULL), 0 when it is not a data option, −1 on a bad value (message in
 * err). --list/--cache are the train split's, the same as --train-list/--train-cache. */
int data_args_option(DataArgs *a, const char *opt, const char *val, char *err, size_t err_cap);
/* The --help lines of the data options. */
const char *data_args_help(void);
/* Whether split s has a source; false with a message naming the options when not. */
bool data_args_has(const DataArgs *a, int split, char *err, size_t err_cap);

typedef struct {
    int frames;            /* T */
    int frame_size;        /* S */
    int batch_size;
    bool train;            /* random TSN offsets + multi-scale crop (+ flip) */
    bool shuffle;          /* a new order every epoch */
    bool drop_last;
    uint64_t seed;
} DataLoadOptions;

typedef struct TrainData TrainData;

/* Opens split s (DATA_SPLIT_TRAIN or DATA_SPLIT_VAL). NULL with a message. */
TrainData *train_data_open(const DataArgs *a, int split, const DataLoadOptions *o, char *err, size_t err_cap);
void train_data_close(TrainData *d);
TrainDataSource train_data_source(TrainData *d);
int train_data_count(const TrainData *d);
int train_data_classes(const TrainData *d);   /* 0 when unknown */
bool train_data_multi_label(const TrainData *d);
/* Every label of video v (its index in the split); returns how many. */
int train_data_labels(const TrainData *d, int v, const int32_t **labels);
/* "list data/train_list.txt (400 videos)": for logs and the training state's config text. */
const char *train_data_describe(const TrainData *d);
/* The loader's one-line data summary (nothing for synthetic data). */
void train_data_print_summary(const TrainData *d);

#endif
