/* uniadafocus.h — the Uni-AdaFocus model (ActivityNet / FCVID / Mini-Kinetics variant): its
 * configuration, parameters under the official state_dict names, the forward pass and its cost.
 *
 * Owns: wiring the parts together as the official AdaFocus.forward does (models/uni_adafocus.py):
 *   1. glance: G of the T candidates (impl/frame_sampler.h) → global CNN = MobileNetV2 in the
 *      official key layout (global_CNN.features.*) → feature maps (B·G, D_g, S/32, S/32) and their
 *      means g (B·G, D_g); global_CNN_fc (dropout + linear) gives per-frame glance logits.
 *   2. spatial policy on the detached maps → one action per glance frame (B, G, 4), linearly
 *      interpolated in time to all T candidates (B, T, 4) (PyTorch interpolate, align_corners off).
 *   3. temporal policy on the detached g → logits, w, w_T (B, G).
 *   4. focus frames: quantile sampling of w_T (deterministic at test, stratified in training).
 *   5. from each focus frame a deformable patch with that candidate's (detached) action
 *      (impl/patch_box.h) → local CNN = ResNet (local_CNN.*) → (B·F, D_l); local_CNN_fc gives
 *      per-patch logits.
 *   6. the classifier with exits (impl/exit_classifier.h) → 32 step logits, 17 exits, prediction.
 * The stages are exposed one by one so that training can run its second (random) patch set and
 * the losses on the intermediate tensors, and conditional exit can run focus frames in steps.
 *
 * Checkpoint keys: exactly the official model's state_dict (less DataParallel's "module."):
 * global_CNN.*, global_CNN_fc.1.*, aux_fc.*, local_CNN.*, local_CNN_fc.1.*, spatial_policy.*,
 * temporal_policy.*, classifier.*. The backbones' own ImageNet heads (global_CNN.classifier.*,
 * local_CNN.fc.*) are in that state_dict but never run: they are declared as non-trainable
 * tensors so a converted checkpoint loads unchanged and saves back whole.
 *
 * Training mode (ctx_set_training(ctx, true)): batch-norm batch statistics, dropout, random
 * glance offsets and stratified focus thresholds (keyed by ctx->seed and opt->step), and every
 * op records on the tape.
 *
 * Cost (uaf_flops): the paper's per-video convention of research/paper.md §6a, every component
 * measured by running its real code on the meta backend on its unit of work (one frame, one
 * patch, one video's policy input), then composed as the official early-exit script does: exit
 * k = G·glance frame + (k ≥ 1)·(spatial + temporal policy) + k·patch + G·(global MLP + head) +
 * k·(local MLP + head). A whole eval forward of B videos counts exactly B·exit[F] (tested).
 */
#ifndef FOCUSBENCH_UNIADAFOCUS_H
#define FOCUSBENCH_UNIADAFOCUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/backbone_common.h"
#include "impl/exit_classifier.h"
#include "impl/mobilenet_v2.h"
#include "impl/patch_box.h"
#include "impl/policy_spatial.h"
#include "impl/policy_temporal.h"
#include "impl/resnet.h"
#include "kernels/context.h"
#include "kernels/params.h"

enum { UAF_MAX_FOCUS = 256 }; /* F bound (the exit table is a fixed array) */

/* Every size knob. The paper's ActivityNet P = 128 model: presets.h, "actnet-p128". */
typedef struct {
    int frames;               /* T: candidate frames per video (48) */
    int glance;               /* G: glance frames (16); T must be a multiple with T/G >= 2 */
    int focus;                /* F: focus frames / patches (16) */
    int frame_size;           /* S: frame side in pixels (224), a multiple of 32 */
    int patch_size;           /* P: patch side (96, 128, 160, 192), >= 32 */
    float box_min, box_max;   /* s_min, s_max: box side limits in frame pixels (96, 224) */
    int spatial_hidden;       /* spatial policy width (128) */
    int temporal_hidden;      /* temporal policy width (64) */
    int mlp_width;            /* classifier MLP width W (4096) */
    int num_classes;          /* C (200 ActivityNet and Mini-Kinetics, 239 FCVID) */
    double glance_width_mult; /* MobileNetV2 width multiplier (1.0), official width rule */
    int local_depth;          /* ResNet depth (50) */
    int local_base_width;     /* ResNet stem/first-stage width (64) */
    int backbone_fc_classes;  /* the unused ImageNet heads' outputs (1000); 0: not declared */
    float dropout;            /* before every classifier head (0.2) */
    float fc_dropout;         /* global_CNN_fc and local_CNN_fc (0.2; Mini-Kinetics 0.1) */
    float temperature;        /* τ of the sampler's w_T (1.0) */
} UafConfig;

/* Checks every knob; false with a message in err naming the knob and what is allowed. */
bool uaf_config_check(const UafConfig *cfg, char *err, size_t err_cap);

typedef struct {
    UafConfig cfg;
    ParamSet *ps;           /* owned: every parameter under its checkpoint key */
    MobileNetV2 *global_cnn;
    ResNet *local_cnn;
    Linear global_fc;       /* global_CNN_fc.1: (C, D_g) */
    Linear aux_fc;          /* aux_fc: (C, D_g), the spatial feature-crop loss's head */
    Linear local_fc;        /* local_CNN_fc.1: (C, D_l) */
    Linear global_imagenet; /* global_CNN.classifier: never run; weight NULL when not declared */
    Linear local_imagenet;  /* local_CNN.fc: never run */
    SpatialPolicy spatial;
    TemporalPolicy temporal;
    ExitClassifier classifier;
    int global_dim;         /* D_g: 1280 */
    int local_dim;          /* D_l: 2048 */
    int feat_side;          /* S/32: 7 */
    PatchBoxGeom pixel_box;   /* frame → P×P patch */
    PatchBoxGeom feature_box; /* glance map → (P/32)² crop (the spatial loss) */
} UafModel;

/* Declares and allocates every parameter on `backend` (CPU or META; gradients when with_grads).
 * NULL with a message in err. Parameters are zero until uaf_init or a checkpoint load. */
UafModel *uaf_create(const UafConfig *cfg, BackendKind backend, bool with_grads, char *err, size_t err_cap);
void uaf_destroy(UafModel *m);
/* The official model's initial state from the project RNG: torchvision initialisation of the
 * backbones, PyTorch defaults of everything else (policies, heads, classifier). */
void uaf_init(UafModel *m, uint64_t seed);

/* Folds the backbones' batch norms into their convolutions (impl/backbone_common.h) for faster
 * eval-mode inference; the policies and the classifier keep theirs (a negligible share). The
 * counted MACs do not change. A folded model is for inference only: do not train or save it. */
bool uaf_fold_batch_norm(Ctx *ctx, UafModel *m);

/* Which learning-rate group a parameter belongs to (the official get_optim_policies). */
typedef enum {
    UAF_GROUP_TEMPORAL_POLICY = 0, /* lr × temporal_lr_ratio (0.2) */
    UAF_GROUP_SPATIAL_POLICY,      /* lr × stn_lr_ratio (0.2) */
    UAF_GROUP_GLOBAL,              /* global_CNN, global_CNN_fc, aux_fc: lr × global_lr_ratio (0.5) */
    UAF_GROUP_LOCAL,               /* local_CNN, local_CNN_fc: lr × 1 */
    UAF_GROUP_CLASSIFIER,          /* classifier: lr × classifier_lr_ratio (20) */
    UAF_GROUP_UNKNOWN = -1
} UafParamGroup;
UafParamGroup uaf_param_group(const char *key);

/* ---- the forward pass ------------------------------------------------------------------------ */

typedef struct {
    bool aux_logits; /* also global_CNN_fc per glance frame and local_CNN_fc per patch (always in training) */
    uint64_t step;   /* training step: part of the RNG key of glance offsets and focus thresholds */
} UafForwardOptions;

/* What the local branch gives for one patch set. */
typedef struct {
    Tensor *actions;       /* (B, F, 4): the (detached) actions of the chosen candidates */
    Tensor *boxes;         /* (B, F, 4): (y1, x1, h, w) in frame pixels */
    Tensor *theta;         /* (B·F, 2, 3) */
    Tensor *patches;       /* (B·F, 3, P, P) */
    Tensor *local_pooled;  /* (B·F, D_l) */
    Tensor *local_logits;  /* (B·F, C), with aux_logits */
    ExitClassifierOutput cls;
} UafFocusOutput;

typedef struct {
    int B;
    int32_t *glance_idx_host; /* [B·G] in ctx->host */
    int32_t *focus_idx_host;  /* [B·F]; NULL when a device backend sampled them (read focus_idx) */
    Tensor *glance_idx;       /* (B, G) i32 */
    Tensor *focus_idx;        /* (B, F) i32 */
    Tensor *glance_features;  /* (B·G, D_g, S/32, S/32) */
    Tensor *glance_pooled;    /* (B·G, D_g) */
    Tensor *glance_logits;    /* (B·G, C), with aux_logits */
    Tensor *glance_actions;   /* (B, G, 4): the spatial policy's output (attached: the spatial loss trains it) */
    Tensor *actions;          /* (B, T, 4): interpolated to every candidate */
    TemporalPolicyOutput temporal; /* logits, w, w_T (B, G) */
    UafFocusOutput focus;     /* the policy's patch set */
} UafOutput;

/* video: (B, T, 3, S, S) normalised frames. Runs every stage; returns ctx_ok(ctx). opt may be NULL
 * (no aux logits, step 0) here and in every stage below. */
bool uaf_forward(Ctx *ctx, const UafModel *m, Tensor *video, const UafForwardOptions *opt, UafOutput *out);

/* Stage 1: glance frames → features, pooled, (aux) logits. Fills out->B, the glance indices and
 * glance_* fields. */
bool uaf_glance(Ctx *ctx, const UafModel *m, Tensor *video, const UafForwardOptions *opt, UafOutput *out);
/* Stage 2–3: both policies on the detached glance outputs; fills glance_actions, actions, temporal. */
bool uaf_policies(Ctx *ctx, const UafModel *m, UafOutput *out);
/* Stage 4: focus indices from w_T on the host (uniform weights on the meta backend, which has no
 * data); fills focus_idx(_host). A device backend with a sampler slot (CUDA) samples on the
 * device instead, bit for bit the same indices, without reading w_T back (so the pass can be
 * captured as a CUDA graph); focus_idx_host is then NULL. */
bool uaf_select_focus(Ctx *ctx, const UafModel *m, const UafForwardOptions *opt, UafOutput *out);
/* Stage 5–6 for n_sets (1 … 8) patch sets (1 at test; 2 in training: the policy's and the random one):
 * the candidates focus_idx (B, F) cropped from video with each set's actions_T[s] (B, T, 4)
 * (detached here) → ONE local-CNN pass over all sets' patches (the official
 * `images[focus_indices].repeat(2)` batch, so training batch norms see both sets together) →
 * local_CNN_fc → the classifier once per set with the glance pooled features. outs[n_sets]. */
bool uaf_focus(Ctx *ctx, const UafModel *m, Tensor *video, Tensor *focus_idx, Tensor *const *actions_T, int n_sets,
               Tensor *glance_pooled, const UafForwardOptions *opt, UafFocusOutput *outs);
/* The spatial feature-crop logits (the official spatial_sample_logits_3): the boxes of
 * glance_actions (B, G, 4) cropped from the detached glance maps at (P/32)², averaged over frames
 * and space, then aux_fc → (B, C). Gradients reach the actions (not the maps). */
Tensor *uaf_spatial_aux_logits(Ctx *ctx, const UafModel *m, Tensor *glance_features, Tensor *glance_actions);

/* The training's second patch set (the official actions_2): for every candidate a_y, a_x ~ U(0,1)
 * and a fixed size a_h = a_w = (P − s_min)/(s_max − s_min) (a box of P pixels: no rescaling), as
 * (B, T, 4). Draws from the RANDOM_PATCH slot of impl/frame_sampler.h, keyed by ctx->seed and
 * step. Not differentiable (a constant of the step). */
Tensor *uaf_random_actions(Ctx *ctx, const UafModel *m, int64_t B, uint64_t step);

/* A (B, K) i32 index tensor of the context's backend from host values. */
Tensor *uaf_index_tensor(Ctx *ctx, const int32_t *host, int64_t B, int64_t K);

/* ---- pieces the three variants share (this model, uniadafocus_tsm.h, uniadafocus_x3d.h) ----------
 * `who` names the model in error messages ("uniadafocus", "uniadafocus-tsm", ...). */

/* The same data as t without its tape history (PyTorch's .detach()); NULL stays NULL. */
Tensor *uaf_detach(Ctx *ctx, Tensor *t);
/* bytes of the context's host arena (per-pass host data: frame indices); NULL with the error set
 * when the arena is frozen and full. */
void *uaf_host_alloc(Ctx *ctx, const char *who, size_t bytes);
/* Checks video is f32 (B >= 1, T = frames, 3, S = size, S = size); false with the error set. */
bool uaf_check_video(Ctx *ctx, const char *who, const Tensor *video, int frames, int size);
/* Frames of video (B, T, 3, S, S) at idx (B, K) as a batch of images (B·K, 3, S, S). */
Tensor *uaf_gather_frames(Ctx *ctx, Tensor *video, Tensor *idx);
/* a (B, 4) → (B, K, 4): each video's action for its K frames (a gather of row 0, so the backward
 * sums over the K copies, as autograd of a repeat does). */
Tensor *uaf_repeat_action(Ctx *ctx, const char *who, Tensor *a, int64_t K);
/* The MACs the ops counted since the last reset; then resets the counters and begins a new pass
 * (the unit step of the uaf*_flops tables). */
double uaf_take_macs(Ctx *ctx);
/* A tensor's f32 values on the host (CPU data or a device copy); false on meta (no data). */
bool uaf_read_host(Ctx *ctx, const Tensor *t, float *dst);

/* ---- cost (research/paper.md §6a convention) ------------------------------------------------ */

typedef struct {
    /* per unit of work, in MACs (paper convention) */
    double glance_frame;     /* global CNN on one S×S frame (0.299511328e9) */
    double spatial_policy;   /* all G glance maps of one video (0.822485376e9) */
    double temporal_policy;  /* all G glance vectors (0.00412992e9) */
    double local_patch;      /* local CNN on one P×P patch (1.334601664e9 at P = 128) */
    double global_mlp_frame; /* 5.246976e6 */
    double local_mlp_frame;  /* 8.392704e6 */
    double global_head;      /* one glance step's head (0.8192e6) */
    double local_head;       /* one focus step's head (1.6384e6) */
    /* per video */
    double global_cnn;       /* G · glance_frame */
    double classifier;       /* G·(global MLP + head) + F·(local MLP + head) */
    double exit[UAF_MAX_FOCUS + 1]; /* exit k = 0 … F */
    int n_exits;             /* F + 1 */
    double total;            /* exit[F] */
} UafFlops;

/* Builds the model on the meta backend and measures every component. False with a message. */
bool uaf_flops(const UafConfig *cfg, UafFlops *out, char *err, size_t err_cap);

#endif
