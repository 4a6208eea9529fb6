/* uniadafocus_x3d.h — Uni-AdaFocus-X3D, the Kinetics-400 variant (research/paper.md §1d, §3.9, §6c;
 * official archs/uni_adafocus_X3D.py): configuration, presets, parameters under the official
 * state_dict names, forward pass with its two exits, training loss, and cost.
 *
 * Owns: wiring impl/ pieces (impl/x3d.h backbones, impl/policy_temporal.h, the spatial policy's
 * PolicyConvBn units, impl/patch_box.h, impl/frame_sampler.h, impl/losses.h) the way the official
 * AdaFocus.forward of the X3D variant does:
 *   1. glance: G of the T candidates (frame_sampler_glance), bilinearly resized to the glance size
 *      (160; F.interpolate, align_corners off: an identity affine crop, 0 MACs), one clip
 *      (B, 3, G, g, g) → X3D-S (global_CNN.*) → its head logits (global_final_logit, from the
 *      DETACHED map as get_featmap does), the 5×5 map (B, D, G, h, h), per-frame features
 *      (B·G, D) (D = 432);
 *   2. per-frame glance head global_CNN_head (linear D → 2048 no bias, ReLU, dropout, linear →
 *      C) averaged over frames = global_avg_logit: EXIT 0;
 *   3. temporal policy on the detached per-frame features → w (B, G); focus frames by quantile
 *      sampling (stratified in training, midpoints at test);
 *   4. spatial policy on the detached maps: encoder.0 1×1×1 D → hidden, BN, ReLU, encoder.3/6
 *      3×3×3, BN, ReLU, encoder.9 (G, h, h) → 4, sigmoid: ONE action per video, the same box on
 *      every focus frame;
 *   5. the F focus frames cropped with that (detached) box to P×P, one clip (B, 3, F, P, P) →
 *      X3D-L (local_CNN.*) → local_final_logit; final logit = global + local final logits: EXIT 1.
 * Training adds the second patch set (random position, size P: no rescale) through the same
 * local pass (the official torch.cat of both sets), local_CNN_head's per-frame logits, the MC
 * temporal logits (round(G/3) rounds, 128 samples, on the detached per-frame glance logits), the
 * feature-crop logits (the box on the 5×5 maps, crop side round(h·P/S) = 3, aux_head) and the
 * loss of main.py: (Σ_sets [CE(final) + CE(global_avg) + CE(local_avg) + CE(temporal) +
 * CE(spatial)])/2 + norm_ratio · mean((a_h,w − 1)²).
 *
 * Views: with views = 3 the clip's frames are the full-resolution S_full² frames and the model
 * runs on three crop² views, offsets along the width (0, centre, end) at the centred height
 * (PySlowFast's uniform_crop for spatial_idx 0/1/2 on a square frame); every logit is averaged
 * over the views before the exit decision (main_nViewEval.py). Cost × 3.
 *
 * Deviation: the official training runs the spatial policy three times (action_3 for the aux
 * loss, action_2 for the pixels, and once more in eval); here it runs once per pass and the policy
 * patch set uses its detached output — the same values; only the BN running statistics see one
 * update instead of two.
 *
 * Cost (uafx3d_flops, FLOP_CONVENTION, per view): every component measured on the meta backend by
 * running its code on one video. At k400-x3d: glance X3D-S 16×160² 2.415453044, local X3D-L
 * 32×128² 5.984521316, spatial policy 0.376217984, temporal policy 0.001524864 GMACs — the four
 * constants of the official early_exit_unifocus_X3D.py to the last digit. CONVENTION DIFFERENCE:
 * the official script charges exit 0 with the X3D-S network only (2.4155) and the full model with
 * the four constants (8.7777); it leaves out the per-frame glance head global_CNN_head that exit 0's
 * logit (global_avg_logit) needs, G · (D·2048 + 2048·C) = 16 · 1.703936 M = 0.027263 GMACs at 400
 * classes. Measured here: exit 0 = 2.442716, exit 1 = 8.804984 (both reported; official_exit
 * keeps the script's figures). Both round to the paper's 8.8 per view.
 */
#ifndef FOCUSBENCH_UNIADAFOCUS_X3D_H
#define FOCUSBENCH_UNIADAFOCUS_X3D_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/backbone_common.h"
#include "impl/patch_box.h"
#include "impl/policy_spatial.h"
#include "impl/policy_temporal.h"
#include "impl/x3d.h"
#include "kernels/context.h"
#include "kernels/params.h"

enum { UAFX3D_EXITS = 2 };

typedef struct {
    int frames;             /* T: candidate frames per video (96) */
    int glance;             /* G: glance frames (16); T a multiple, T/G >= 2 */
    int focus;              /* F: focus frames (32) */
    int frame_size;         /* S: side of a view (input_size 224) */
    int full_size;          /* side of the clip's frames: S with 1 view, larger with 3 (256) */
    int views;              /* 1 or 3 spatial views */
    int glance_size;        /* glance resize (160) */
    int patch_size;         /* P (128) */
    float box_min, box_max; /* box side limits in view pixels (96, 224) */
    int spatial_hidden;     /* stn_hidden_dim (128) */
    int temporal_hidden;    /* temporal_hidden_dim (64) */
    int num_classes;        /* 400 */
    float dropout;          /* the per-frame heads' and the X3D heads' dropout (0.5) */
    X3dConfig glance_net;   /* X3D-S (prefix and classes are set by the model) */
    X3dConfig local_net;    /* X3D-L */
} UafX3dConfig;

/* Training settings of a preset (U-RD-X README command; research/paper.md §3.5–3.6). */
typedef struct {
    float lr, weight_decay, momentum;
    int batch_size, epochs;
    float grad_clip;         /* --gd 20 */
    float norm_ratio;        /* 0.5 */
    float global_lr_ratio;   /* 0.5: global CNN, its head, aux head */
    float stn_lr_ratio;      /* 0.4 on K400 */
    float temporal_lr_ratio; /* 0.4 on K400 */
    int mc_samples;          /* 128 */
} UafX3dTrain;

typedef struct {
    const char *name;
    const char *description;
    UafX3dConfig cfg;
    UafX3dTrain train;
} UafX3dPreset;

/* Presets (kept here, not in impl/presets.h, whose UafPreset holds the ActivityNet variant's UafConfig;
 * `flops --preset`, the Method presets "uniadafocus-x3d-<name>" and the tests read this table):
 *   k400-x3d         T 96, G 16 at 160², F 32 of 128² from 224² views, 1 view, 400 classes
 *   k400-x3d-3view   the same on three 224² views of 256² frames (cost × 3)
 *   synth-x3d-tiny   CPU-trainable: T 12, G 6 at 64², F 4 of 32², 64² frames, 10 classes, narrow
 *                    X3Ds (dim_c1 4, dim_c5 64; depth factors 0.5 / 0.7), policies 16 / 8 wide */
int uafx3d_preset_count(void);
const UafX3dPreset *uafx3d_preset_at(int i);
const UafX3dPreset *uafx3d_preset_find(const char *name);

bool uafx3d_config_check(const UafX3dConfig *cfg, char *err, size_t err_cap);

typedef struct {
    UafX3dConfig cfg;
    ParamSet *ps;              /* owned */
    X3d *global_cnn;           /* global_CNN.* (X3D-S, detach_head) */
    X3d *local_cnn;            /* local_CNN.* (X3D-L, detach_head) */
    Tensor *global_head_w0;    /* global_CNN_head.0.weight (2048, D_g) */
    Linear global_head_fc;     /* global_CNN_head.3 (C, 2048) */
    Tensor *local_head_w0;     /* local_CNN_head.0.weight (2048, D_l) */
    Linear local_head_fc;      /* local_CNN_head.3 */
    Linear aux_head;           /* aux_head.0 (C, D_g) */
    PolicyConvBn spatial[3];   /* spatial_policy.encoder.{0,1} {3,4} {6,7} */
    Tensor *spatial_head;      /* spatial_policy.encoder.9.weight (4, hidden, G, h, h) */
    TemporalPolicy temporal;   /* temporal_policy.Tconv.* */
    int feat_side;             /* h: the glance map side (5 at 160²) */
    PatchBoxGeom pixel_box;    /* view → P×P */
    PatchBoxGeom feature_box;  /* glance map → round(h·P/S)² */
} UafX3dModel;

UafX3dModel *uafx3d_create(const UafX3dConfig *cfg, BackendKind backend, bool with_grads, char *err, size_t err_cap);
void uafx3d_destroy(UafX3dModel *m);
/* PySlowFast's X3D initialisation, PyTorch defaults elsewhere, then the official share_head_params:
 * the per-frame heads start as copies of their network's lin_5 and projection. */
void uafx3d_init(UafX3dModel *m, uint64_t seed);

typedef struct {
    Tensor *exit_logits;    /* (B, 2, C): global_avg_logit, global + local final logit (view means) */
    Tensor *weights;        /* (B·V, G) temporal policy w */
    Tensor *actions;        /* (B·V, 4) spatial policy output (attached) */
    int32_t *focus_idx;     /* [B·V·F] host, in ctx->host (NULL on meta, and on a device backend that
                             * samples on the device: the CUDA quantile_sample slot, bit for bit the same) */
} UafX3dOutput;

/* clips: (B, T, 3, S_full, S_full) normalised frames. Eval or train mode (single patch set: the
 * policy's). Returns ctx_ok(ctx). */
bool uafx3d_forward(Ctx *ctx, const UafX3dModel *m, Tensor *clips, uint64_t step, UafX3dOutput *out);

/* The training loss of main.py (ctx in training mode; views must be 1): scalar on the tape. */
Tensor *uafx3d_train_loss(Ctx *ctx, const UafX3dModel *m, Tensor *clips, const int32_t *labels, uint64_t step,
                          const UafX3dTrain *train);

/* Which official optimizer group a key belongs to, and its multiplier under `train`. */
float uafx3d_lr_multiplier(const UafX3dTrain *train, const char *key);

typedef struct {
    /* per view, MACs */
    double glance_net;      /* X3D-S on G glance frames incl. its head (2.415453044e9) */
    double glance_head;     /* global_CNN_head on G frames (0.027263e9 at 400 classes) */
    double local_net;       /* X3D-L on F patches incl. its head (5.984521316e9) */
    double spatial_policy;  /* 0.376217984e9 */
    double temporal_policy; /* 0.001524864e9 */
    int views;
    /* per video (× views) */
    double exit[UAFX3D_EXITS];          /* measured: exit 0 = glance net + glance head; exit 1 = all */
    double official_exit[UAFX3D_EXITS]; /* the official script's composition (no glance head) */
} UafX3dFlops;

bool uafx3d_flops(const UafX3dConfig *cfg, UafX3dFlops *out, char *err, size_t err_cap);

#endif
