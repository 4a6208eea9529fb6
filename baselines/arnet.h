/* arnet.h — AR-Net (Meng et al., ECCV'20; official code mengyuest/AR-Net), adaptive resolution:
 * a lightweight policy decides per frame which backbone (at which resolution) processes it, or
 * to skip frames.
 *
 * Owns: the model, its decisions (Gumbel-Softmax in training, argmax at test), the eval pass that
 * runs only what was decided, per-sample costs, the training loss, the presets and the Method
 * adapter (id "arnet").
 *
 *   policy   every visited frame resized to the policy side (84 px) → lite_backbone.*
 *            (MobileNetV2) → pooled feature → an LSTM cell over the frames in time (rnn.*, the
 *            state carried unchanged over skipped frames) → linear.* → A = K + n_skips logits:
 *            "process with branch k" (k < K) or "skip n frames" (this one and the next n − 1);
 *   branches base_model_list.k.* (ResNet-50 at 224, ResNet-34 at 168, ResNet-18 at 112 in the
 *            paper) + new_fc_list.k.* (linear → C), on the frame resized to branch k's side;
 *   output   the mean of the processed frames' logits (zeros if a video processed none). One exit.
 *
 * Test: argmax decisions, made step by step on the host; the policy CNN runs only on visited
 * frames and each branch only on the frames that chose it, so the MACs counted are those of the
 * decisions taken. A video's cost = Σ over visited frames of (policy CNN + LSTM step + policy fc)
 * + Σ over processed frames of its branch's (backbone + fc), each part measured on the meta
 * backend (arnet_flops); forward_exits reports it per sample.
 *
 * Training (straight-through Gumbel-Softmax, as the official hard Gumbel-Softmax): at frame t the
 * decision is the argmax of π_t + g (g Gumbel noise from the GUMBEL slot of video b at `step`,
 * element t·A + a); its value in the forward pass is that one-hot, its gradient that of
 * softmax((π_t + g)/τ), τ = max(τ_min, τ₀·decay^(step/decay_steps)) (τ₀ = 5, exponential decay).
 * Every branch runs on every frame (batched) and the prediction is Σ_t Σ_k y_{t,k}·logits_{t,k} /
 * (processed frames, a constant), so gradients reach the policy through y. Loss =
 * accuracy_weight·CE + efficiency_weight·E + usage_weight·U, where E = Σ_{t,k} y_{t,k}·cost_k /
 * (T·max_k cost_k) averaged over videos (the expected backbone GFLOPs, normalised) and U =
 * Σ_a (mean usage of action a over visited frames − 1/A)² (the uniform-usage term).
 */
#ifndef FOCUSBENCH_BASELINES_ARNET_H
#define FOCUSBENCH_BASELINES_ARNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "baselines/common.h"

enum { ARNET_MAX_BRANCHES = 4, ARNET_MAX_SKIPS = 4, ARNET_MAX_ACTIONS = ARNET_MAX_BRANCHES + ARNET_MAX_SKIPS };

typedef struct {
    int frames;                 /* T: 16 */
    int frame_size;             /* S: the clips' side = the largest branch side (224) */
    int classes;                /* C */
    int policy_size;            /* the policy's input side (84) */
    BlBackboneConfig policy;    /* MobileNetV2 */
    int lstm_hidden;            /* 512 */
    int n_branches;             /* K */
    BlBackboneConfig branch[ARNET_MAX_BRANCHES]; /* ResNet-50, -34, -18 */
    int branch_size[ARNET_MAX_BRANCHES];         /* 224, 168, 112 */
    int n_skips;
    int skips[ARNET_MAX_SKIPS]; /* frames skipped by each skip action: 1, 2, 4 */
    float tau0, tau_decay, tau_min; /* Gumbel temperature: 5, ×0.965 per decay_steps, floor */
    int tau_decay_steps;
    float accuracy_weight, efficiency_weight, usage_weight; /* 0.95, 0.05, 3.0 */
    float dropout;              /* before new_fc_list (0.5) */
} ArNetConfig;

bool arnet_config_check(const ArNetConfig *cfg, char *err, size_t err_cap);
static inline int arnet_actions(const ArNetConfig *cfg) { return cfg->n_branches + cfg->n_skips; }

/* Per-frame MACs of each part (meta backend). */
typedef struct {
    double policy_cnn, policy_rnn;          /* lite backbone at the policy side; LSTM step + policy fc */
    double branch[ARNET_MAX_BRANCHES];      /* backbone k at its side + its fc */
    double worst;                           /* T·(policy + max_k branch k): every frame, largest branch */
} ArNetFlops;
typedef struct {
    ArNetConfig cfg;
    ArNetFlops flops;                       /* measured at creation (meta backend) */
    ParamSet *ps;                           /* owned */
    BlBackbone policy;                      /* lite_backbone.* */
    BlLstm rnn;                             /* rnn.* */
    Linear policy_fc;                       /* linear: (A, H) */
    BlBackbone branch[ARNET_MAX_BRANCHES];  /* base_model_list.k.* */
    Linear branch_fc[ARNET_MAX_BRANCHES];   /* new_fc_list.k: (C, D_k) */
} ArNetModel;

ArNetModel *arnet_model_create(const ArNetConfig *cfg, BackendKind backend, bool with_grads, char *err,
                               size_t err_cap);
void arnet_model_destroy(ArNetModel *m);
void arnet_model_init(ArNetModel *m, uint64_t seed);

/* The Gumbel temperature at a training step. */
float arnet_tau(const ArNetConfig *cfg, uint64_t step);

typedef struct {
    Tensor *logits;       /* (B, C) the prediction */
    int32_t *actions;     /* (B·T) host (malloc'd): the action of each frame, −1 for a skipped frame */
    double *cost;         /* (B) host (malloc'd): MACs per video of the decisions taken */
    float *policy_logits; /* (B·T·A) host (malloc'd): π_t of each frame (0 at skipped frames) */
    Tensor *decisions;    /* training only: (B, T, A) straight-through one-hots (zero rows at skipped frames) */
} ArNetOutput;
void arnet_output_free(ArNetOutput *out);

/* Eval (hard decisions, only the chosen work runs) or training (Gumbel, every branch runs)
 * forward, by ctx->training; step keys the Gumbel noise and τ. Returns ctx_ok(ctx). */
bool arnet_forward(Ctx *ctx, const ArNetModel *m, Tensor *clips, uint64_t step, ArNetOutput *out);
/* The training loss (see the header comment), labels (B) on the host. */
Tensor *arnet_loss(Ctx *ctx, const ArNetModel *m, Tensor *clips, const int32_t *labels, uint64_t step);

/* The parts' MACs of a configuration (builds it on the meta backend). */
bool arnet_flops(const ArNetConfig *cfg, ArNetFlops *out, char *err, size_t err_cap);

/* ---- presets and the Method adapter ----------------------------------------------------------- */

const MethodPresetInfo *arnet_preset_info(int i);
bool arnet_preset_config(const char *name, ArNetConfig *cfg);
Method *arnet_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                            uint64_t seed, char *err, size_t err_cap);
/* The decisions of the Method's last forward_exits call: actions (B·T), −1 for skipped frames;
 * NULL before the first call. For reports (action histograms) and tests. */
const int32_t *arnet_method_last_actions(const Method *m, int64_t *B, int *T);

#endif
