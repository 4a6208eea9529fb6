/* adafocusv2.h — AdaFocusV2 (Wang et al., CVPR'22; official code LeapLabTHU/AdaFocusV2,
 * "Experiments on ActivityNet, FCVID and Mini-Kinetics": models/adafocus_v2.py, main_v2.py,
 * ops/early_exit.py), the end-to-end spatial-focus predecessor of Uni-AdaFocus.
 *
 * Owns: the model, its training loss, the per-exit cost, the presets and the Method adapter
 * (id "adafocusv2").
 *
 *   order    the T clip frames are processed in the coarse-to-fine order of main_v2.py's
 *            input_order (--sample, used by every released command; bl_coarse_to_fine_order), so
 *            a prefix of k frames is a coarse sampling of the whole clip;
 *   glance   global_CNN = MobileNetV2 (official key layout) on every full S×S frame → maps
 *            (D_g, S/32, S/32) and pooled g; global_CNN_fc.1 (dropout + linear) gives aux logits;
 *   policy   policy_stn on the DETACHED maps, frame by frame in processing order:
 *            encoder.0 conv 1×1 D_g → 64 (no bias), encoder.1 BN2d, tanh, flatten, encoder.4
 *            linear → hidden (2048), encoder.5 BN1d, tanh; a GRU over the frames (gru.*, h₀ = 0);
 *            fc.0 linear hidden → 2, sigmoid → patch position a = (a_y, a_x) ∈ [0, 1]²;
 *   crop     a fixed P×P patch with top-left a·(S − P) (the official get_patches_frame),
 *            bilinearly interpolated (affine grid + grid_sample): the loss's gradient reaches
 *            the policy THROUGH THE CROP — the policy has no other training signal;
 *   local    local_CNN = ResNet-50 on the patches → l; local_CNN_fc.1 gives aux logits;
 *   classify classifier = the pooling classifier on concat(g, l) (mlp.layers.*, running max,
 *            classifiers.t.1 per step with dropout) → T step logits.
 * Exits: T, exit k−1 after the first k frames of the order (V2+ conditional exit, thresholds from
 * impl/conditional_exit.h).
 *
 * Training (main_v2.py train): two patch sets from the same frames — the policy's and random
 * positions a ~ U(0, 1)² (input diversity) — each through the local CNN (separately, as the
 * official loop) and the classifier; per set CE(all step logits) + CE(glance logits) +
 * CE(patch logits); the total is the mean over the two sets. Random draws: the RANDOM slot of
 * video b at `step`, elements 2t and 2t + 1 for frame t.
 *
 * Cost per frame: glance frame + policy step + patch + MLP + one head; exit k−1 costs k frames
 * (the official total/16·k). All parts are measured on the meta backend.
 */
#ifndef FOCUSBENCH_BASELINES_ADAFOCUSV2_H
#define FOCUSBENCH_BASELINES_ADAFOCUSV2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "baselines/common.h"
#include "impl/patch_box.h"

enum { ADAFOCUSV2_MAX_FRAMES = 64 };

typedef struct {
    int frames;              /* T: 16 */
    int frame_size;          /* S: 224, a multiple of 32 */
    int patch_size;          /* P: 96, 128, 160 (< S) */
    int classes;             /* C */
    double glance_width;     /* MobileNetV2 width (1.0) */
    int local_depth;         /* 50 */
    int local_base_width;    /* 64 */
    int policy_conv;         /* the policy's 1×1 conv width (64) */
    int policy_hidden;       /* stn_hidden_dim (2048 in every released command) */
    int mlp_width;           /* classifier MLP width W (4096) */
    float dropout;           /* before the step heads (0.2) */
    float fc_dropout;        /* before the aux heads (0.2) */
    bool coarse_to_fine;     /* --sample: process frames in the coarse-to-fine order */
    float global_lr_ratio;   /* 0.5: global_CNN, global_CNN_fc */
    float stn_lr_ratio;      /* 0.1: policy_stn */
    float classifier_lr_ratio; /* 5: classifier */
} AdaFocusV2Config;

bool adafocusv2_config_check(const AdaFocusV2Config *cfg, char *err, size_t err_cap);

typedef struct {
    Tensor *conv;                                   /* encoder.0.weight (C1, D_g, 1, 1) */
    Tensor *bn1_gamma, *bn1_beta, *bn1_mean, *bn1_var; /* encoder.1 (C1) */
    Linear fc1;                                     /* encoder.4 (H, C1·h·h) */
    Tensor *bn2_gamma, *bn2_beta, *bn2_mean, *bn2_var; /* encoder.5 (H) */
    BlGru gru;                                      /* gru (H → H) */
    Linear out;                                     /* fc.0 (2, H) */
} AdaFocusV2Policy;

typedef struct {
    AdaFocusV2Config cfg;
    int32_t order[ADAFOCUSV2_MAX_FRAMES];
    ParamSet *ps;            /* owned */
    BlBackbone glance;       /* global_CNN.* */
    Linear glance_fc;        /* global_CNN_fc.1 */
    BlBackbone local;        /* local_CNN.* */
    Linear local_fc;         /* local_CNN_fc.1 */
    AdaFocusV2Policy policy; /* policy_stn.* */
    BlPoolingClassifier cls; /* classifier.* */
    int feat_side;           /* S/32 */
    PatchBoxGeom box;        /* a fixed P-pixel box in an S frame */
} AdaFocusV2Model;

AdaFocusV2Model *adafocusv2_model_create(const AdaFocusV2Config *cfg, BackendKind backend, bool with_grads, char *err,
                                         size_t err_cap);
void adafocusv2_model_destroy(AdaFocusV2Model *m);
void adafocusv2_model_init(AdaFocusV2Model *m, uint64_t seed);

/* The policy on glance maps (B·T, D_g, h, h), T frames per video in processing order (the caller
 * detaches them) → patch positions (B·T, 2) in [0, 1]. */
Tensor *adafocusv2_policy(Ctx *ctx, const AdaFocusV2Model *m, Tensor *maps, int64_t B, int64_t T);
/* frames (N, 3, S, S), positions (N, 2) → patches (N, 3, P, P); differentiable in both. */
Tensor *adafocusv2_crop(Ctx *ctx, const AdaFocusV2Model *m, Tensor *frames, Tensor *positions);

typedef struct {
    Tensor *frames;        /* (B·T, 3, S, S) in processing order */
    Tensor *maps, *glance; /* (B·T, D_g, h, h), (B·T, D_g) */
    Tensor *glance_logits; /* (B·T, C), training only */
    Tensor *positions;     /* (B·T, 2) the policy's */
    Tensor *patches;       /* (B·T, 3, P, P) */
    Tensor *local_logits;  /* (B·T, C), training only */
    Tensor *step_logits;   /* (B, T, C) */
} AdaFocusV2Output;

/* Eval (or training-mode) forward with the policy's patches. Returns ctx_ok(ctx). */
bool adafocusv2_forward(Ctx *ctx, const AdaFocusV2Model *m, Tensor *clips, AdaFocusV2Output *out);
/* The training loss (main_v2.py), labels (B) on the host; random positions keyed by step. */
Tensor *adafocusv2_loss(Ctx *ctx, const AdaFocusV2Model *m, Tensor *clips, const int32_t *labels, uint64_t step);

typedef struct {
    double glance_frame, policy_frame, local_patch, mlp_frame, head; /* MACs */
    double frame;                                                    /* their sum */
    double exit[ADAFOCUSV2_MAX_FRAMES];                              /* exit k−1 = k frames */
    int n_exits;
} AdaFocusV2Flops;
bool adafocusv2_flops(const AdaFocusV2Config *cfg, AdaFocusV2Flops *out, char *err, size_t err_cap);

/* ---- presets and the Method adapter ----------------------------------------------------------- */

const MethodPresetInfo *adafocusv2_preset_info(int i);
bool adafocusv2_preset_config(const char *name, AdaFocusV2Config *cfg);
Method *adafocusv2_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                                 uint64_t seed, char *err, size_t err_cap);

#endif
