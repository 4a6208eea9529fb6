/* train_loop.h — end-to-end training of Uni-AdaFocus, and eval-mode passes over a data source.
 *
 * Owns: one training step exactly as the official main.py train() + AdaFocus.forward (training
 * branch) do it, the epoch loop with the per-epoch learning rate, checkpoints written atomically
 * after every epoch, resuming from them bit for bit, and collecting eval-mode exit logits over a
 * data source (what conditional-exit calibration and evaluation consume).
 *
 * Data comes through a TrainDataSource callback (bench/ glues datasets/loader.h to it; impl/
 * knows nothing about files): normalised clips (B, T, 3, S, S) and one label per clip.
 *
 * One step (DESIGN §3 item 9):
 *   glance (random offset per group) → policies → focus frames (stratified thresholds) → two
 *   patch sets from the same focus frames: the policy's actions and random ones (a_y, a_x ~ U(0,1),
 *   a_h = a_w = (P − s_min)/(s_max − s_min), the official (P − 96)/(224 − 96)) → ONE local-CNN pass
 *   over both sets → classifier per set; the temporal MC average of the glance logits; the spatial
 *   policy run a second time on the same detached maps, as the official forward does for
 *   `action_3` (its batch norms therefore update their running statistics twice per step, like
 *   the official model's; `single_spatial_pass` turns that off) → feature-crop logits and the box
 *   regulariser on those actions; the total of impl/losses.h; backward; SGD (impl/optimizer.h).
 *   Random numbers are keyed by (seed, step), dropout by (seed, step, op number): a step is a
 *   pure function of the parameters, the optimizer state, the batch and the step number.
 *
 * Parameter groups (the official get_optim_policies, in its order): temporal_policy
 * ×temporal_lr_ratio, spatial_policy ×stn_lr_ratio, global_CNN, global_CNN_fc and aux_fc
 * ×global_lr_ratio, local_CNN and local_CNN_fc ×1, pooling_classifier ×classifier_lr_ratio; decay
 * multiplier 1 everywhere (biases and batch-norm weights are decayed too, as in the official run).
 *
 * Checkpoints (out_dir set), after every epoch, each written atomically:
 *   OUT/train_state.safetensors  every model tensor as "model.<key>", every momentum buffer as
 *                                "momentum.<key>", and __metadata__: format, epoch (completed),
 *                                step, sgd_steps, seed, config — everything a resume needs;
 *   OUT/model.safetensors        the model alone under the official keys (infer/eval load it),
 *                                written after the state, so a kill between the two leaves a
 *                                state that is never behind the model.
 * A resumed run (resume = true, OUT/train_state.safetensors present) continues from the saved
 * epoch and reproduces the uninterrupted run's weights bit for bit, provided the data source
 * gives the same batches for the same epoch (datasets/loader.h does: its order and augmentation
 * are keyed by (seed, epoch)). A state whose config text differs from this run's is refused.
 */
#ifndef FOCUSBENCH_TRAIN_LOOP_H
#define FOCUSBENCH_TRAIN_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "impl/losses.h"
#include "impl/optimizer.h"
#include "impl/uniadafocus.h"
#include "kernels/context.h"
#include "kernels/device.h"
#include "kernels/dist/dist.h"
#include "kernels/dist/dist_grads.h"

/* ---- data ------------------------------------------------------------------------------------ */

typedef struct {
    const float *video;    /* (B, T, 3, S, S) normalised frames, host memory */
    const int32_t *labels; /* (B) the class of each clip (its first label) */
    const int32_t *videos; /* (B) index of each clip in its data set, or NULL */
    int size;              /* B >= 1 */
} TrainBatch;

typedef struct {
    void *user;
    /* Starts epoch e (any order). The batches of an epoch must depend only on e and the
     * source's own seed, so that a resumed run sees the same data. */
    bool (*start_epoch)(void *user, int epoch, char *err, size_t err_cap);
    /* 1: *batch filled (valid until the next call); 0: end of the epoch; −1: error in err. */
    int (*next_batch)(void *user, TrainBatch *batch, char *err, size_t err_cap);
} TrainDataSource;

/* ---- training -------------------------------------------------------------------------------- */

typedef struct {
    /* optimisation (the official command line; presets.h has each data set's values) */
    double lr, momentum, weight_decay;
    SgdSchedule schedule;   /* cosine in every released command */
    double lr_steps[SGD_MAX_LR_STEPS]; /* the step schedule's epochs (the official --lr_steps) */
    int n_lr_steps;
    int epochs;
    double global_lr_ratio, stn_lr_ratio, temporal_lr_ratio, classifier_lr_ratio;
    float norm_ratio;       /* box-size regulariser weight */
    int mc_samples;         /* 128 */
    uint64_t seed;          /* master seed of every random draw in training */
    bool single_spatial_pass; /* false (official): the spatial policy runs twice per step */

    /* checkpoints */
    const char *out_dir;    /* NULL: none written */
    bool resume;            /* continue from OUT/train_state.safetensors when it exists */
    const char *config_text;/* stored in the state; a resume with other text is refused (NULL: "") */
    int stop_after_epochs;  /* > 0: return after this many epochs of this call (time slicing, tests) */

    /* progress */
    FILE *log;              /* NULL: silent */
    int log_every;          /* steps between progress lines (0: only epoch summaries) */

    /* data parallelism (kernels/dist/dist_grads.h): NULL, or this run's communicator. Each rank
     * steps on its shard of every global batch; the gradients are averaged over the ranks before
     * SGD (identical updates everywhere), rank 0's initial weights are broadcast at create, only
     * rank 0 writes checkpoints, and rank r keys its random draws by step·world + r (one rank:
     * unchanged, bit-identical to comm = NULL). */
    DistComm *comm;
    bool sync_bn;           /* synchronised batch norm: every batch norm normalises with the statistics of the
                             * whole global batch, and its running statistics follow them (kernels/dist/
                             * dist_grads.h dist_install_bn_sync); more than one rank only */

    /* where the steps run (kernels/device.h): the CPU (zero value) or a CUDA GPU at a precision */
    RunDevice device;
} TrainConfig;

/* A TrainConfig with the official ActivityNet command's values and no checkpoints. */
TrainConfig train_config_default(void);

/* What one step did (the terms as main.py logs them). */
typedef struct {
    UafLossTerms terms;     /* values only; the tensors are gone after the step */
    int batch;              /* B */
    int correct;            /* clips whose policy-set prediction (the last step) is the label */
    double seconds;
} TrainStepStats;

/* Per-epoch means (weighted by batch size). */
typedef struct {
    int epoch;              /* 0-based */
    int64_t steps;          /* steps of this epoch */
    int64_t samples;
    double lr;              /* the base rate of this epoch (before group multipliers) */
    double loss, cat, global, local, temporal, spatial, norm;
    double accuracy;        /* top-1 of the policy patches' prediction, on the training batches */
    double seconds;
} TrainEpochStats;

typedef void (*TrainEpochFn)(void *user, const TrainEpochStats *st);

typedef struct Trainer Trainer;

/* Builds the optimizer and a context on cfg->device for m (created with gradients: uaf_create(…, true, …)).
 * When cfg->resume and the state file exists, loads it (model, momentum, epoch, step). */
Trainer *trainer_create(UafModel *m, const TrainConfig *cfg, char *err, size_t err_cap);
void trainer_destroy(Trainer *tr);

/* Epoch the next trainer_run starts at (0, or the resumed epoch), and steps done so far. */
int trainer_epoch(const Trainer *tr);
int64_t trainer_steps(const Trainer *tr);
Sgd *trainer_optimizer(Trainer *tr);
Ctx *trainer_context(Trainer *tr);

/* One step on a batch with the current epoch's rates. */
bool trainer_step(Trainer *tr, const TrainBatch *batch, TrainStepStats *st, char *err, size_t err_cap);

/* Epochs trainer_epoch … cfg->epochs − 1 (or stop_after_epochs of them), a checkpoint after
 * each; on_epoch (may be NULL) after each checkpoint. */
bool trainer_run(Trainer *tr, TrainDataSource *src, TrainEpochFn on_epoch, void *user, char *err, size_t err_cap);

/* Writes the two checkpoint files for `epochs_done` completed epochs. */
bool trainer_save(Trainer *tr, int epochs_done, char *err, size_t err_cap);

/* ---- where a trainer's tensors live (shared by this loop and bench/train_data.h's) ------------------ */

/* Moves the parameters ps, their gradients and the optimizer's momentum buffers to ctx's device and
 * points the optimizer and the gradient average (sync, may be NULL) there; a no-op on a CPU context or
 * when they are already there. A trainer calls it before a step. */
bool train_state_to_device(Ctx *ctx, ParamSet *ps, Sgd *opt, DistGradSync *sync, char *err, size_t err_cap);
/* Brings them back into their host blocks (a checkpoint reads them there; the run's end). */
bool train_state_to_host(Ctx *ctx, ParamSet *ps, Sgd *opt, DistGradSync *sync, char *err, size_t err_cap);

/* The random patch set's actions (B, T, 4) of a step, on the host: a_y, a_x uniform from video b's
 * RANDOM_PATCH stream (elements 2t, 2t+1), a_h = a_w = the fixed size. */
void train_random_actions(int B, int T, int P, float box_min, float box_max, uint64_t seed, uint64_t step,
                          float *actions);

/* ---- eval-mode pass over a data source -------------------------------------------------------- */

typedef struct {
    int64_t n;          /* clips seen */
    int K, C;           /* exits (F + 1) and classes */
    float *exit_logits; /* (n, K, C) */
    int32_t *labels;    /* (n) */
    int32_t *videos;    /* (n), −1 when the source gives no index */
    double *sample_gflops; /* (n, K) per-video cost at each exit, or NULL (collect_exit_logits) */
} ExitLogits;

/* Runs m in eval mode over epoch `epoch` of src (batch by batch, on dev: NULL is the CPU), keeping
 * every exit's logits. progress (may be NULL) gets a line every `every` batches. False with a message. */
bool collect_exit_logits(const UafModel *m, const RunDevice *dev, TrainDataSource *src, int epoch, FILE *progress,
                         int every, ExitLogits *out, char *err, size_t err_cap);

/* One batch of the collection loop below: clips (B, T, 3, S, S) on ctx's device → the B rows of
 * exit logits (B, K, C) written into the host array `logits`, and, when the loop keeps them, the
 * per-video cost of each exit into `gflops` (B, K; NULL otherwise). False with ctx's error set. */
typedef bool (*ExitLogitsBatchFn)(Ctx *ctx, void *user, Tensor *clips, int B, float *logits, double *gflops);

/* The loop behind collect_exit_logits and method_collect_exit_logits: a context on dev holding ps,
 * eval mode, every batch of src's epoch through batch_fn, the rows appended to out (K exits, C
 * classes, clips of T frames of S x S; out->sample_gflops kept when with_gflops). */
bool exit_logits_collect(const RunDevice *dev, ParamSet *ps, int K, int C, int T, int S, bool with_gflops,
                         ExitLogitsBatchFn batch_fn, void *user, TrainDataSource *src, int epoch, FILE *progress,
                         int every, ExitLogits *out, char *err, size_t err_cap);
void exit_logits_free(ExitLogits *e);

#endif
