/* uniadafocus_tsm.h — Uni-AdaFocus-TSM, the Something-Something V1/V2 and Jester variant
 * (research/paper.md §1c, §3.8, §6b; the official "Uni-AdaFocus-TSM …" folder,
 * archs/uni_adafocus_tsm.py and ops/models.py).
 *
 * Owns: the variant's configuration and presets, its parameters under the official state_dict
 * names, the forward pass (both patch sets of training), the training loss of main.py, and its
 * cost composed as ops/early_exit_uni_adafocus_tsm.py does.
 *
 * The model, as the official AdaFocus.forward:
 *   1. glance: G of the T candidate frames (TSN segments: candidate floor((j + 0.5)·T/G) at test,
 *      floor((j + U)·T/G) in training) → global_CNN = MobileNetV2-TSM (shift within each video's
 *      G frames) → maps (B·G, D_g, S/32, S/32), pooled (B·G, D_g); dropout (the TSN head replaces
 *      the backbone's classifier by Dropout(p)) → two TSN heads, averaged over the G frames:
 *        new_fc     on the DETACHED features → glance "final" logit (B, C), part of the sum;
 *        new_new_fc on the features          → glance "avg" logit (B, C): exit 0, L_global.
 *   2. temporal policy (impl/policy_temporal.h) on the detached dropped-out pooled vectors → w, w_T.
 *      spatial policy (impl/policy_spatial.h with head_frames = G: the last conv spans the whole
 *      glance sequence) on the detached maps → ONE action a (B, 4) per video.
 *   3. focus: K of the T = 3K candidates by quantile sampling of w_T (impl/frame_sampler.h).
 *   4. every focus frame cropped with the video's (detached) box (impl/patch_box.h) → local_CNN =
 *      ResNet-50-TSM (blockres, shift within each video's K patches) → the two TSN heads the same
 *      way → local final / avg logits (B, C).
 *   5. final logit = glance final + local final. Exits (the official uni_adafocus_tsm_exit.py and
 *      test_early_exit_uni_adafocus_tsm.py): exit 0 = the glance avg logit, exit 1 = the final
 *      logit → (B, 2, C).
 * Training (main.py): two patch sets through ONE local-CNN pass, [random boxes of side P (a_y,
 * a_x ~ U(0,1), a_h = a_w = (P − s_min)/(s_max − s_min)), policy boxes] (the official order),
 * then
 *     L = (Σ_sets CE(final) + 2·CE(glance avg) + Σ_sets CE(local avg) + 2·CE(MC temporal)
 *          + 2·CE(feature crop)) / 2 + norm_ratio · mean((a_{h,w} − 1)²)
 * with the MC average of the DETACHED per-frame glance avg-head logits (impl/losses.h,
 * floor(G/3) rounds, 128 samples) and the feature-crop logits of a second spatial-policy pass
 * (the official action_3), cropped from the detached glance maps at (P/32)², averaged over frames
 * and space, aux_fc.
 *
 * Deviation: the official loader samples the 8 glance frames and the 3K candidates from the
 * video independently; here a clip holds the T = 3K candidates (TSN segment centres at test) and
 * the glance frames are the candidates whose segments hold the G glance segments' centres (at
 * test exactly the official frames whenever T is a multiple of G, e.g. 24 = 3·8; T = 36 with
 * G = 8 rounds each glance time to the candidate containing it).
 *
 * Checkpoint keys: exactly the official state_dict less DataParallel's "module." (what
 * scripts/convert_checkpoint.py writes by default):
 *   global_CNN.base_model.features.*   MobileNetV2, the official (tonylins) layout
 *   global_CNN.new_fc.*, global_CNN.new_new_fc.*
 *   local_CNN.base_model.{conv1, bn1, layer1 … layer4}.*   torchvision ResNet-50
 *   local_CNN.new_fc.*, local_CNN.new_new_fc.*
 *   aux_fc.*, spatial_policy.encoder.{0,1,3,4,6,7,9}.*, temporal_policy.Tconv.{0,1,3,4,6}.*
 * TSM wraps every shifted conv in TemporalShift, whose attribute "net" adds a level to the key:
 * the backbones declare those names (tsm_net_keys), e.g.
 * "global_CNN.base_model.features.3.conv.0.net.weight", "local_CNN.base_model.layer1.0.conv1.net.weight"
 * (their batch norms keep the plain names: "…features.3.conv.1.weight", "…layer1.0.bn1.weight").
 * The backbones' own classifiers are Dropout modules there (no keys). num_batches_tracked
 * buffers are ignored by the loader.
 *
 * Cost (uaf_tsm_flops, research/paper.md §6b): each component's own code on the meta backend
 * on its unit of work, DESIGN §4 convention (conv/linear MACs, no bias, +1 per BN channel per
 * sample). The official constants count each backbone per frame WITH its two TSN heads
 * (MobileNetV2-TSM 0.299956768 = 0.299511328 + 2·1280·174 MACs; ResNet-50-TSM at P = 96
 * 0.75143776 = 0.750725056 + 2·2048·174): both heads run in the forward pass, so the same
 * figures come out here at C = 174 (Sth-Sth). The official script keeps those constants for
 * Jester (C = 27); here the heads follow C, so jester-p128-8x12 costs 0.010236 GFLOPs less than the
 * script's 18.837 (both round to the paper's 18.8). The script counts no aux_fc and no MC average
 * (training-only parts): neither runs in an eval pass here. Exit 0 = G·frame, exit 1 = exit 0 +
 * spatial + temporal policy + K·patch.
 */
#ifndef FOCUSBENCH_UNIADAFOCUS_TSM_H
#define FOCUSBENCH_UNIADAFOCUS_TSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/backbone_common.h"
#include "impl/mobilenet_v2.h"
#include "impl/patch_box.h"
#include "impl/policy_spatial.h"
#include "impl/policy_temporal.h"
#include "impl/resnet.h"
#include "kernels/context.h"
#include "kernels/params.h"

enum { UAF_TSM_EXITS = 2 };

typedef struct {
    int frames;               /* T: candidate frames per clip (3K: 24, 36, 48) */
    int glance;               /* G: glance frames (8), T >= G */
    int focus;                /* K: focus patches (8, 12, 16), K <= T */
    int frame_size;           /* S (224), a multiple of 32 */
    int patch_size;           /* P (96, 128), >= 32 */
    float box_min, box_max;   /* box sides in frame pixels (96, 224) */
    int spatial_hidden;       /* 128 */
    int temporal_hidden;      /* 64 */
    int num_classes;          /* C: 174 Sth-Sth V1/V2, 27 Jester */
    double glance_width_mult; /* MobileNetV2 width (1.0), the official width rule */
    int local_depth;          /* ResNet depth (50) */
    int local_base_width;     /* ResNet stem width (64) */
    int shift_div;            /* TSM fold divisor (8) */
    float dropout;            /* the TSN heads' dropout (0.5) */
    float temperature;        /* τ of w_T (1.0) */
} UafTsmConfig;

bool uaf_tsm_config_check(const UafTsmConfig *cfg, char *err, size_t err_cap);

/* The training settings of a preset (the official README commands, research/paper.md §3.6). */
typedef struct {
    float lr, weight_decay, momentum;
    int batch_size, epochs;
    float norm_ratio;        /* 0.5 Sth-Sth, 0.25 Jester */
    float grad_clip;         /* --gd 20 */
    float global_lr_ratio;   /* 0.5: global_CNN and aux_fc */
    float stn_lr_ratio;      /* 0.2 */
    float temporal_lr_ratio; /* 0.2 */
    int mc_samples;          /* 128 */
} UafTsmTrainDefaults;

typedef struct {
    const char *name; /* "sthv1-p128-8x12" */
    const char *description;
    UafTsmConfig cfg;
    UafTsmTrainDefaults train;
} UafTsmPreset;

/* sthv1-p96-8x8, sthv1-p96-8x12, sthv1-p128-8x12, sthv1-p128-8x16, the same four sthv2-…,
 * jester-p128-8x12, and synth-tsm-tiny (CPU-sized: T 12, G 4, K 4, 64² frames, 32² patches,
 * MobileNetV2 width 0.25, ResNet-50 base width 8, 10 classes). */
int uaf_tsm_preset_count(void);
const UafTsmPreset *uaf_tsm_preset_at(int i);
const UafTsmPreset *uaf_tsm_preset_find(const char *name); /* NULL when unknown */
char *uaf_tsm_preset_names(char *buf, size_t cap);
/* One size knob by name (leading "--" ignored): frames, glance, focus, frame-size (rescales the
 * box limits), patch-size, classes. 1 applied, 0 not a knob, -1 bad value (message in err). */
int uaf_tsm_config_override(UafTsmConfig *cfg, const char *name, const char *value, char *err, size_t err_cap);

/* A TSN head pair of one backbone. */
typedef struct {
    Linear final_fc; /* new_fc: on the detached features */
    Linear avg_fc;   /* new_new_fc */
} UafTsmHeads;

typedef struct {
    UafTsmConfig cfg;
    ParamSet *ps; /* owned */
    MobileNetV2 *global_cnn;
    ResNet *local_cnn;
    UafTsmHeads global_heads, local_heads;
    Linear aux_fc;
    SpatialPolicy spatial;
    TemporalPolicy temporal;
    int global_dim, local_dim, feat_side;
    PatchBoxGeom pixel_box, feature_box;
} UafTsmModel;

/* Declares and allocates every parameter on backend (CPU or META); NULL with a message. */
UafTsmModel *uaf_tsm_create(const UafTsmConfig *cfg, BackendKind backend, bool with_grads, char *err, size_t err_cap);
void uaf_tsm_destroy(UafTsmModel *m);
/* torchvision initialisation of the backbones, TSN heads normal(0, 0.001) with zero bias,
 * PyTorch defaults for aux_fc and the policies. */
void uaf_tsm_init(UafTsmModel *m, uint64_t seed);
/* Learning-rate multiplier of a key: temporal_policy / spatial_policy lr ratios, global_CNN and
 * aux_fc the global ratio, local_CNN 1 (the official get_optim_policies). */
float uaf_tsm_lr_multiplier(const UafTsmTrainDefaults *t, const char *key);

/* ---- the forward pass ------------------------------------------------------------------------ */

typedef struct {
    Tensor *actions;     /* (B, 4) the (detached) box actions of this set */
    Tensor *theta;       /* (B·K, 2, 3) */
    Tensor *patches;     /* (B·K, 3, P, P) */
    Tensor *local_pooled;/* (B·K, D_l) */
    Tensor *local_final; /* (B, C) new_fc consensus */
    Tensor *local_avg;   /* (B, C) new_new_fc consensus */
    Tensor *logit;       /* (B, C) glance final + local final */
} UafTsmFocusOutput;

typedef struct {
    int B;
    int32_t *glance_idx_host; /* [B·G] in ctx->host */
    int32_t *focus_idx_host;  /* [B·K] */
    Tensor *glance_idx;       /* (B, G) i32 */
    Tensor *focus_idx;        /* (B, K) i32 */
    Tensor *glance_features;  /* (B·G, D_g, h, w) */
    Tensor *glance_feat;      /* (B·G, D_g) pooled after dropout (the official base_out_feat) */
    Tensor *glance_avg_frames;/* (B·G, C) new_new_fc per frame (the MC loss's global_logit) */
    Tensor *glance_final;     /* (B, C) */
    Tensor *glance_avg;       /* (B, C): exit 0 */
    TemporalPolicyOutput temporal; /* (B, G) each */
    Tensor *action;           /* (B, 4) the spatial policy's output, attached */
    UafTsmFocusOutput focus;  /* the policy's set */
    Tensor *exit_logits;      /* (B, 2, C) */
} UafTsmOutput;

/* Stage 1: glance; fills B, glance_* (step keys the training offsets). */
bool uaf_tsm_glance(Ctx *ctx, const UafTsmModel *m, Tensor *video, uint64_t step, UafTsmOutput *out);
/* Stage 2: both policies; fills temporal and action. */
bool uaf_tsm_policies(Ctx *ctx, const UafTsmModel *m, UafTsmOutput *out);
/* Stage 3: focus indices from w_T (host; uniform weights on meta). At test on a device backend with
 * a quantile_sample slot (CUDA) they are sampled there (focus_idx_host NULL), so the eval pass never
 * reads the device and can be captured as a CUDA graph. */
bool uaf_tsm_select_focus(Ctx *ctx, const UafTsmModel *m, uint64_t step, UafTsmOutput *out);
/* Stage 4–5 for n_sets (1 or 2) patch sets, actions[s] (B, 4), one local-CNN pass; outs[n_sets]. */
bool uaf_tsm_focus(Ctx *ctx, const UafTsmModel *m, Tensor *video, Tensor *focus_idx, Tensor *const *actions, int n_sets,
                   Tensor *glance_final, UafTsmFocusOutput *outs);
/* Every stage at test (or training mode with one patch set, the policy's) and the exit logits.
 * video: (B, T, 3, S, S). */
bool uaf_tsm_forward(Ctx *ctx, const UafTsmModel *m, Tensor *video, uint64_t step, UafTsmOutput *out);

/* The training set of random boxes (B, 4): a_y, a_x ~ U(0, 1) from the RANDOM_PATCH slot,
 * a_h = a_w = (P − s_min)/(s_max − s_min). */
Tensor *uaf_tsm_random_actions(Ctx *ctx, const UafTsmModel *m, int64_t B, uint64_t step);

/* The main.py terms (each summed over the two sets) and the total. */
typedef struct {
    Tensor *total; /* scalar on the tape */
    float total_value, cat, global, local, temporal, spatial, norm;
} UafTsmLoss;

/* One training step's loss (ctx in training mode): labels (B) host values. */
bool uaf_tsm_train_loss(Ctx *ctx, const UafTsmModel *m, Tensor *video, const int32_t *labels, uint64_t step,
                        float norm_ratio, int mc_samples, UafTsmLoss *out);

/* ---- cost ------------------------------------------------------------------------------------- */

typedef struct {
    /* per unit of work, MACs */
    double glance_backbone;  /* MobileNetV2-TSM on one frame, no heads (0.299511328e9) */
    double glance_heads;     /* new_fc + new_new_fc on one frame (2·D_g·C) */
    double glance_frame;     /* their sum: the official per-frame constant (0.299956768e9 at C = 174) */
    double spatial_policy;   /* all G maps (0.41124288e9) */
    double temporal_policy;  /* all G vectors (0.002065024e9) */
    double local_backbone;   /* ResNet-50-TSM on one P² patch, no heads */
    double local_heads;      /* 2·D_l·C */
    double local_patch;      /* their sum: the official per-frame constant */
    /* per video */
    double global_cnn;       /* G · glance_frame */
    double local_cnn;        /* K · local_patch */
    double exit[UAF_TSM_EXITS];
    double total;            /* exit[1] */
} UafTsmFlops;

bool uaf_tsm_flops(const UafTsmConfig *cfg, UafTsmFlops *out, char *err, size_t err_cap);

#endif
