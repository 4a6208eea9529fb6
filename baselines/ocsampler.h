/* ocsampler.h — OCSampler (Lin et al., CVPR'22; official code MCG-NJU/OCSampler:
 * mmaction/models/recognizers/sampler2d_recognizer2d.py, mmaction/models/backbones/mobilenet_v2.py
 * (is_sampler), configs/activitynet_10to6_resnet50.py), a one-step frame sampler.
 *
 * Owns: the model, its training loss, the cost, the presets and the Method adapter (id
 * "ocsampler").
 *
 *   sampler   all T candidate frames resized to the sampler's side (128 px), one pass of a
 *             MobileNetV2 with temporal shift over the T frames (sampler.*), mean over space, a
 *             linear score per frame (sampler.logit, D → 1), softmax over the T frames → p (B, T);
 *             ONE step scores every candidate;
 *   select    at test the k highest p (ties: the earlier frame), sorted in time;
 *   classify  the k frames at S through backbone.* (ResNet-50) → the FrameExit head cls_head.*
 *             (MLP D → W, BN1d, ReLU per frame, max over the k frames, linear W → C). One exit.
 *
 * Training (REINFORCE, bp_mode "gradient_policy" with the "tsn" baseline and reward kind 1):
 *   - k frames drawn without replacement with probability ∝ p (kernels/sampling.h, the POLICY
 *     slot), sorted in time; a baseline clip of k TSN-style segment frames (SEGMENT slot);
 *   - reward r_b = max softmax of the classifier on the sampled clip − the same on the baseline
 *     clip (no gradient);
 *   - policy term −mean_b r_b · Σ_j log π(i_j | frames not yet drawn) (the Plackett–Luce
 *     probability of the draw sequence, the official calc_mode "approximate"), minus
 *     explore_rate · mean entropy of p (official explore_rate 0.1);
 *   - the classifier: the official code loads a FrameExit classifier trained beforehand and
 *     freezes it; here it is trained in the same run by cross-entropy on the baseline (TSN) clip
 *     — the clips such a classifier is trained on — and the sampled clip's pass runs without
 *     recording (no gradient), so the policy sees the classifier as fixed.
 *
 * Cost: T·(sampler frame at its side) + T·score + k·(backbone at S + MLP) + head, measured on
 * the meta backend by one eval forward of one video.
 */
#ifndef FOCUSBENCH_BASELINES_OCSAMPLER_H
#define FOCUSBENCH_BASELINES_OCSAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "baselines/common.h"

typedef struct {
    int frames;                  /* T candidates (10) */
    int select;                  /* k frames classified (6; 4 or 5 on Mini-Kinetics) */
    int frame_size;              /* S: classifier side (224) */
    int sampler_size;            /* the sampler's side (128), <= S */
    int classes;                 /* C */
    BlBackboneConfig sampler;    /* MobileNetV2; TSM over the T frames (fold_div 10 officially) */
    BlBackboneConfig classifier; /* ResNet-50 */
    int mlp_width;               /* W (4096) */
    float explore_rate;          /* entropy weight (0.1) */
} OcSamplerConfig;

bool ocsampler_config_check(const OcSamplerConfig *cfg, char *err, size_t err_cap);

typedef struct {
    OcSamplerConfig cfg;
    ParamSet *ps;            /* owned */
    BlBackbone sampler;      /* sampler.* */
    Linear score;            /* sampler.logit: (1, D) */
    BlBackbone backbone;     /* backbone.* */
    BlPoolingClassifier head;/* cls_head.mlp.layers.*, cls_head.fc */
} OcSamplerModel;

OcSamplerModel *ocsampler_model_create(const OcSamplerConfig *cfg, BackendKind backend, bool with_grads, char *err,
                                       size_t err_cap);
void ocsampler_model_destroy(OcSamplerModel *m);
/* Backbones torchvision-style; sampler.logit normal(0, 0.01) (the official init_std), the rest
 * PyTorch defaults. */
void ocsampler_model_init(OcSamplerModel *m, uint64_t seed);

/* The sampler's scores (B, T) (pre-softmax) for clips (B, T, 3, S, S). */
Tensor *ocsampler_scores(Ctx *ctx, const OcSamplerModel *m, Tensor *clips);
/* Top-k selection on the host: scores (B, T) → idx (B, k), the k largest of each row (ties: the
 * earlier frame), sorted ascending. */
void ocsampler_topk(const float *scores, int B, int T, int k, int32_t *idx);
/* The classifier on frames idx (B, k) (host) of clips → logits (B, C). */
Tensor *ocsampler_classify(Ctx *ctx, const OcSamplerModel *m, Tensor *clips, const int32_t *idx, int64_t B);
/* Eval forward: scores → top-k → classifier. idx_out (B, k) (may be NULL) gets the frames. */
Tensor *ocsampler_forward(Ctx *ctx, const OcSamplerModel *m, Tensor *clips, int32_t *idx_out);

/* The REINFORCE term for draws (B, k) in draw order and rewards (B): −(1/B) Σ_b r_b Σ_j
 * log softmax(scores_b over the frames not drawn before j)[draw_j]. Differentiable in scores. */
Tensor *ocsampler_policy_loss(Ctx *ctx, Tensor *scores, const int32_t *draws, const float *reward, int64_t B, int k);
/* The whole training loss (see the header comment), labels (B) on the host. */
Tensor *ocsampler_loss(Ctx *ctx, const OcSamplerModel *m, Tensor *clips, const int32_t *labels, uint64_t step);

typedef struct {
    double sampler_frame, score_frame, backbone_frame, mlp_frame, head; /* MACs */
    double video;                                                       /* one eval forward */
} OcSamplerFlops;
bool ocsampler_flops(const OcSamplerConfig *cfg, OcSamplerFlops *out, char *err, size_t err_cap);

/* ---- presets and the Method adapter ----------------------------------------------------------- */

const MethodPresetInfo *ocsampler_preset_info(int i);
bool ocsampler_preset_config(const char *name, OcSamplerConfig *cfg);
Method *ocsampler_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                                uint64_t seed, char *err, size_t err_cap);

#endif
