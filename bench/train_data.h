/* train_data.h — where `focusbench train` and `focusbench eval` get their clips: the glue between
 * datasets/ (video lists, clip caches, the loader, the synthetic benchmark's renderer) and
 * impl/train_loop.h's TrainDataSource (impl/ knows nothing about files).
 *
 * Owns: the data options both commands share, opening one split (train or val) as a source of
 * normalised clips (B, T, 3, S, S) with labels, and each video's full label set (for mAP); and
 * the generic training / eval loop of any registry method (impl/method.h), which lives here
 * because impl/ must not include baselines/ (the registry's SGD groups and gradient clipping).
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

#include "impl/method.h"
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
    const char *augment;   /* --augment: "official", "none" or NULL (auto: see data_args_whole_frame) */
} DataArgs;

/* One option: 1 when it was a data option taking `val` (consumed), 2 when it was a flag without a
 * value (val unused, may be NULL), 0 when it is not a data option, −1 on a bad value (message in
 * err). --list/--cache are the train split's, the same as --train-list/--train-cache. */
int data_args_option(DataArgs *a, const char *opt, const char *val, char *err, size_t err_cap);
/* The --help lines of the data options. */
const char *data_args_help(void);
/* Whether split s has a source; false with a message naming the options when not. */
bool data_args_has(const DataArgs *a, int split, char *err, size_t err_cap);
/* Whether clips keep the whole frame at its size (no multi-scale crop, no flip, no test-time
 * rescale): --augment none, or by default on the synthetic benchmark (--synthetic, or a --data
 * directory holding the generator's synth.txt card), whose classes are textures of given periods
 * and orientations, so a rescale or a mirror image would change the label. "official" (the
 * default elsewhere) is the official multi-scale crop + flip in training and resize-and-centre-
 * crop in evaluation. */
bool data_args_whole_frame(const DataArgs *a);

typedef struct {
    int frames;            /* T */
    int frame_size;        /* S */
    int batch_size;
    bool train;            /* random TSN offsets + multi-scale crop (+ flip) */
    bool shuffle;          /* a new order every epoch */
    bool drop_last;
    uint64_t seed;
    /* data parallelism (kernels/dist/): each global batch of batch_size clips is split over
     * shard_world ranks (dist_shard_range) and this source gives rank shard_rank's slice; 0 or 1:
     * the whole batch. A batch with fewer clips than ranks leaves some ranks without a slice: they
     * skip it (eval; training asks for batch_size >= ranks). */
    int shard_rank, shard_world;
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
/* The global batch sizes of the current epoch so far (every rank sees the same; sharded eval merges
 * the ranks' results by them, kernels/dist/dist_shard.h). */
int train_data_global_batches(const TrainData *d, const int64_t **sizes);
/* The loader's one-line data summary (nothing for synthetic data). */
void train_data_print_summary(const TrainData *d);

/* ---- any registry method: training and eval-mode exit logits ------------------------------------
 *
 * One step: clips (B, method_frames, 3, S, S), S = method_frame_size → ctx in training mode →
 * m->ops->train_loss(…, step) → backward → method_clip_grad_norm when grad_clip > 0 → SGD with the
 * registry's per-prefix groups (baselines/registry.h method_sgd_groups), cosine schedule per epoch.
 * Checkpoints (out_dir set) after every epoch, atomically: OUT/train_state.safetensors ("model.<key>",
 * "momentum.<key>", __metadata__ format "focusbench-method-train-state-v1", method, preset, epoch,
 * step, sgd_steps, seed, config) and OUT/model.safetensors (the model alone, written after the
 * state). A resume reproduces the uninterrupted run bit for bit, as impl/train_loop.h's does. */

typedef struct {
    double lr, momentum, weight_decay, grad_clip; /* grad_clip <= 0: none */
    int epochs;
    uint64_t seed;           /* keys every random draw of training (the step number too) */
    const char *out_dir;     /* NULL: no checkpoints */
    bool resume;
    const char *config_text; /* stored; a resume with other text is refused (NULL: "") */
    int stop_after_epochs;   /* > 0: return after this many epochs of this call */
    FILE *log;               /* NULL: silent */
    int log_every;
    /* data parallelism: as impl/train_loop.h's TrainConfig (NULL: one process) */
    DistComm *comm;
    bool sync_bn;            /* synchronised batch norm over the ranks (TrainConfig.sync_bn) */
    RunDevice device;        /* where the steps run (kernels/device.h): the CPU (zero value) or CUDA */
} MethodTrainConfig;

/* The preset's training settings (baselines/registry.h method_preset_find(m->preset)->train),
 * momentum 0.9 when the preset gives none, no checkpoints. */
MethodTrainConfig method_train_config(const Method *m);

typedef struct MethodTrainer MethodTrainer;

/* m must be on the CPU with gradients (method_create(…, BACKEND_CPU, true, …)). Resumes from
 * OUT/train_state.safetensors when cfg->resume and it exists. */
MethodTrainer *method_trainer_create(Method *m, const MethodTrainConfig *cfg, char *err, size_t err_cap);
void method_trainer_destroy(MethodTrainer *t);
int method_trainer_epoch(const MethodTrainer *t);
int64_t method_trainer_steps(const MethodTrainer *t);
Sgd *method_trainer_optimizer(MethodTrainer *t);
/* One step with the current epoch's rates; *loss gets the batch's loss. */
bool method_trainer_step(MethodTrainer *t, const TrainBatch *batch, double *loss, char *err, size_t err_cap);
/* Epochs method_trainer_epoch … epochs − 1 (or stop_after_epochs of them), a checkpoint after each;
 * on_epoch gets loss, lr, steps, clips and seconds (the Uni-AdaFocus terms stay 0). */
bool method_trainer_run(MethodTrainer *t, TrainDataSource *src, TrainEpochFn on_epoch, void *user, char *err,
                        size_t err_cap);
bool method_trainer_save(MethodTrainer *t, int epochs_done, char *err, size_t err_cap);

/* m->ops->forward_exits in eval mode (ctx->step 0) over epoch `epoch` of src, on dev (NULL: the CPU):
 * out->K = m->n_exits, out->sample_gflops filled (n, K). */
bool method_collect_exit_logits(Method *m, const RunDevice *dev, TrainDataSource *src, int epoch, FILE *progress,
                                int every, ExitLogits *out, char *err, size_t err_cap);

#endif
