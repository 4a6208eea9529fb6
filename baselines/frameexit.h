/* frameexit.h — FrameExit (Ghodrati et al., CVPR'21; official inference code
 * Qualcomm-AI-research/FrameExit, model/adaptive_models.py and config/activitynet_inference_2d.yml).
 *
 * Owns: the model, its exit rule, its training loss (reconstructed: the repository ships inference
 * only), the cost of each exit, the presets and the Method adapter (id "frameexit").
 *
 *   order    the T clip frames are processed in a fixed coarse-to-fine order: the official
 *            config's [5, 0, 9, 2, 7, 4, 6, 3, 8, 1] for T = 10, AdaFocusV2's rule
 *            (bl_coarse_to_fine_order) for other T;
 *   frame    backbone.* (ResNet-50 at 224 in the paper) → pooled (D) → mlp (linear D → W, BN1d,
 *            ReLU; W = 4096) → running element-wise max over the frames so far → step t's own
 *            linear head classifiers.t (W → C);
 *   gates    exit_selector.{t−1} for steps t = 1 … T−2 (the last step always exits): the current
 *            and previous running maxima, each through conv1 1×1 (W → 128, bias) + bn1 + ReLU,
 *            conv2 1×1 (128 → 64) + bn2 + ReLU (shared weights), concatenated (128) → linear → 1 →
 *            sigmoid q. As in the official code q is the probability of CONTINUING: a sample leaves
 *            at step t when q < 0.5;
 *   exit 0   the first frame leaves when its max softmax probability > first_threshold (0.99);
 *   exits    T exits, exit t after t + 1 frames (the Method's forward_exits gives every step's
 *            logits; frameexit_decide applies the gates).
 *
 * Training (reconstructed from the paper; no official training code): cross-entropy of every
 * step's logits (mean over steps) + the gates' binary cross-entropy (mean over gated steps) on
 * pseudo-labels made on the fly: a sample should leave at step t (1-based k = t + 1) when that
 * step's classification loss is below β·exp(k/2) (the paper's accuracy/cost trade-off β). The
 * gates read detached features, so their loss does not shape the classifier.
 *
 * Cost of leaving at exit t, as the official inference runs: (t + 1)·(backbone + mlp) on frames,
 * the first head (always run for the threshold test), head t when t > 0, and the gates of steps
 * 1 … min(t, T − 2). Every part is measured on the meta backend.
 */
#ifndef FOCUSBENCH_BASELINES_FRAMEEXIT_H
#define FOCUSBENCH_BASELINES_FRAMEEXIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "baselines/common.h"

enum { FRAMEEXIT_MAX_FRAMES = 64 };

typedef struct {
    int frames;                /* T: frames per clip, all processed in order at most */
    int frame_size;            /* S */
    int classes;               /* C */
    BlBackboneConfig backbone; /* ResNet-50 in the paper */
    int mlp_width;             /* W: 4096 */
    int gate_hidden1, gate_hidden2; /* 128, 64 */
    float first_threshold;     /* 0.99: max softmax of the first step */
    float gate_threshold;      /* 0.5: leave when the continue probability is below */
    float beta;                /* pseudo-label trade-off (training) */
    float gate_loss_weight;    /* 1 */
    const int32_t *order;      /* explicit order of T frames, or NULL: bl_coarse_to_fine_order */
} FrameExitConfig;

bool frameexit_config_check(const FrameExitConfig *cfg, char *err, size_t err_cap);
/* The processing order of cfg (T entries). */
void frameexit_order(const FrameExitConfig *cfg, int32_t *order);

/* A 1×1 convolution with bias followed by a batch norm (the gate's conv1 + bn1, conv2 + bn2). */
typedef struct {
    Tensor *weight, *bias;                          /* (K, C, 1, 1), (K) */
    Tensor *gamma, *beta, *running_mean, *running_var; /* (K) */
} FrameExitConvBn;

typedef struct {
    FrameExitConvBn c1, c2; /* conv1/bn1, conv2/bn2 */
    Linear linear;          /* (1, 2·hidden2) */
} FrameExitGate;

typedef struct {
    FrameExitConfig cfg;
    int32_t order[FRAMEEXIT_MAX_FRAMES];
    ParamSet *ps;              /* owned */
    BlBackbone backbone;       /* backbone.* */
    BlPoolingClassifier cls;   /* mlp.*, classifiers.t.* */
    FrameExitGate *gates;      /* [T − 2]: exit_selector.{t−1} for t = 1 … T−2 */
    int n_gates;
} FrameExitModel;

FrameExitModel *frameexit_model_create(const FrameExitConfig *cfg, BackendKind backend, bool with_grads, char *err,
                                       size_t err_cap);
void frameexit_model_destroy(FrameExitModel *m);
void frameexit_model_init(FrameExitModel *m, uint64_t seed);

typedef struct {
    Tensor *step_logits;                 /* (B, T, C), step t after the first t+1 frames of the order */
    Tensor *pooled[FRAMEEXIT_MAX_FRAMES];/* running maxima (B, W) */
    Tensor *gate_logit[FRAMEEXIT_MAX_FRAMES]; /* (B, 1) pre-sigmoid continue score at t = 1 … T−2, else NULL */
} FrameExitOutput;

/* clips (B, T, 3, S, S) → every step's logits and gate. Returns ctx_ok(ctx). */
bool frameexit_forward(Ctx *ctx, const FrameExitModel *m, Tensor *clips, FrameExitOutput *out);

/* The exit rule on the host. logits (B, T, C); cont (B, T): continue probabilities σ(gate logit)
 * (entries at t = 0 and t = T−1 are ignored). exit_of (B): the step each sample leaves at. */
void frameexit_decide(const float *logits, const float *cont, int B, int T, int C, float first_threshold,
                      float gate_threshold, int32_t *exit_of);

/* Runs the eval forward and the exit rule: exit_of (B). False with the context's error. */
bool frameexit_gate_exits(Ctx *ctx, const FrameExitModel *m, Tensor *clips, int32_t *exit_of);

/* Per-component MACs (meta backend) and the cost of each exit (MACs per video). */
typedef struct {
    double backbone_frame, mlp_frame, head, gate;
    double exit[FRAMEEXIT_MAX_FRAMES];
    int n_exits;
} FrameExitFlops;
bool frameexit_flops(const FrameExitConfig *cfg, FrameExitFlops *out, char *err, size_t err_cap);

/* The training loss (see the header comment) for labels (B) on the host; ctx in training mode. */
Tensor *frameexit_loss(Ctx *ctx, const FrameExitModel *m, Tensor *clips, const int32_t *labels);

/* ---- presets and the Method adapter ----------------------------------------------------------- */

const MethodPresetInfo *frameexit_preset_info(int i);
bool frameexit_preset_config(const char *name, FrameExitConfig *cfg);
Method *frameexit_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                                uint64_t seed, char *err, size_t err_cap);

#endif
