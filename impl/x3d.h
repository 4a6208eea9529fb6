/* x3d.h — X3D (Feichtenhofer, CVPR 2020), the glance and local networks of Uni-AdaFocus-X3D.
 *
 * Owns: the layer layout of PySlowFast's X3D (slowfast/models/video_model_builder.py X3D, as
 * carried by the official Uni-AdaFocus-X3D code in archs/x3d_video_model_builder.py) under its
 * state_dict keys, its forward pass (the official get_featmap: logits, feature map, per-frame
 * features), PySlowFast's initialisation, and the width/depth rules of the X3D configs.
 *
 * Layout, for an input clip x (N, 3, T, H, W):
 *   s1.pathway0_stem      conv_xy 1×3×3 s(1,2,2) 3 → c1, conv 5×1×1 channel-wise (groups c1),
 *                         bn, ReLU                                   c1 = round(dim_c1 · γ_w)
 *   s2 … s5               stages of d_i = ceil(γ_d · (1, 2, 5, 3)_i) residual blocks; the first
 *                         block of a stage has stride 2 in space and a projection shortcut
 *                         (branch1 1×1×1 s(1,2,2) + branch1_bn); widths w_i = round(γ_w · b_i)
 *                         with b = (12, 24, 48, 96) (dim_c1 doubled with PySlowFast's
 *                         round_width(divisor 8)), inner width int(γ_b · w_i).
 *   pathway0_res<j>       branch2: a 1×1×1 → a_bn → ReLU → b 3×3×3 channel-wise (groups =
 *                         inner), stride → b_bn → [se, every other block: j even] → swish → c
 *                         1×1×1 → c_bn; out = ReLU(shortcut + branch2).
 *   se                    x · σ(fc2(ReLU(fc1(mean_THW x)))), fc1/fc2 1×1×1 convs with bias,
 *                         reduced width = SE._round_width(inner, 1/16): nearest multiple of 8,
 *                         at least 8, bumped by 8 when below 90 % (54 → 8, 108 → 8, 216 → 16,
 *                         432 → 32).
 *   head                  conv_5 1×1×1 w_5 → inner_5 → conv_5_bn → ReLU = the feature map;
 *                         global average over (T, H, W) → lin_5 1×1×1 inner_5 → dim_c5 (2048, no
 *                         bias) → ReLU → dropout → projection (linear, dim_c5 → classes).
 * X3D-S / M / L: γ_w 2.0, γ_b 2.25, γ_d 2.2 / 2.2 / 5.0, dim_c1 12, dim_c5 2048 (configs/X3D_*.yaml);
 * they differ from each other only in depth and in the input clip (S 13×160², M 16×224², L 16×312²).
 *
 * Deviations from PySlowFast, both exact for the sizes Uni-AdaFocus uses:
 *   - the head pools globally (AdaptiveAvgPool). PySlowFast uses AvgPool3d with the kernel
 *     (NUM_FRAMES, ceil(crop/32), ceil(crop/32)), stride 1, which is the same global mean
 *     whenever the clip has the training size (160² → 5², 128² → 4²), the only case here;
 *   - in the official get_featmap the head's logits are computed from the DETACHED feature map
 *     (`head.avg_pool(x.detach())`): with cfg.detach_head (the Uni-AdaFocus use) the logits train
 *     lin_5 and projection only. PySlowFast's plain forward does not detach (detach_head false).
 *
 * Cost (FLOP_CONVENTION: conv and linear MACs, +1 per BN channel, SE convs and the head counted):
 * X3D-S 13×160² 1.962907844 GMACs, X3D-M 16×224² 4.732484468, X3D-L 16×312² 18.367743332 (the
 * MODEL_ZOO's 1.96 / 4.73 / 18.37); X3D-S 16×160² 2.415453044 and X3D-L 32×128² 5.984521316 — the
 * constants of the official early_exit_unifocus_X3D.py to the last digit (research/paper.md §6c),
 * so the official counter (fvcore, 400 classes) counted the same terms. Cost scopes: "s1" … "s5",
 * "head".
 */
#ifndef FOCUSBENCH_X3D_H
#define FOCUSBENCH_X3D_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/context.h"
#include "kernels/params.h"
#include "kernels/tensor.h"

enum { X3D_STAGES = 4, X3D_MAX_BLOCKS = 64 };

#define X3D_BN_EPS 1e-5f     /* PySlowFast BN defaults */
#define X3D_BN_MOMENTUM 0.1f

typedef enum {
    X3D_XS = 0,
    X3D_S,
    X3D_M,
    X3D_L,
} X3dVariant;

typedef struct {
    double width_factor;      /* γ_w: 2.0 */
    double depth_factor;      /* γ_d: 2.2 (XS, S, M), 5.0 (L) */
    double bottleneck_factor; /* γ_b: 2.25 */
    int dim_c1;               /* 12 */
    int dim_c5;               /* 2048 */
    double se_ratio;          /* 0.0625; 0 disables SE */
    int stem_temporal_kernel; /* 5 */
    int num_classes;          /* projection outputs (400); 0: no lin_5 / projection */
    float dropout;            /* before the projection (0.5) */
    bool zero_init_final_bn;  /* RESNET.ZERO_INIT_FINAL_BN (true): c_bn γ = 0 */
    bool detach_head;         /* the head's logits from the detached map (Uni-AdaFocus get_featmap) */
    const char *prefix;       /* before every key ("global_CNN."); NULL or "" for none */
} X3dConfig;

/* The configs/X3D_{XS,S,M,L}.yaml values (400 classes, dropout 0.5, detach_head false). */
X3dConfig x3d_config(X3dVariant v);
/* The clip a variant is trained on: frames and crop (XS 4×160, S 13×160, M 16×224, L 16×312). */
void x3d_standard_input(X3dVariant v, int *frames, int *crop);

/* PySlowFast's round_width: width·multiplier to the nearest multiple of divisor (at least
 * min_width), plus divisor when that falls below 90 %. */
int x3d_round_width(double width, double multiplier, int min_width, int divisor);

/* A bias-free 3-D convolution and its batch norm. */
typedef struct {
    Tensor *weight;                     /* (K, C/groups, kt, kh, kw) */
    Tensor *gamma, *beta;               /* (K) */
    Tensor *running_mean, *running_var; /* (K) */
    int stride[3], pad[3], groups;
} X3dConvBn;

typedef struct {
    bool has_branch1;       /* projection shortcut (first block of a stage) */
    X3dConvBn branch1;      /* 1×1×1 stride (1, s, s) + branch1_bn */
    X3dConvBn a, b, c;      /* branch2.a/a_bn, branch2.b/b_bn, branch2.c/c_bn */
    bool has_se;
    Tensor *se_w1, *se_b1;  /* branch2.se.fc1: (r, inner, 1, 1, 1), (r) */
    Tensor *se_w2, *se_b2;  /* branch2.se.fc2: (inner, r, 1, 1, 1), (inner) */
    int se_dim;             /* r */
} X3dBlock;

typedef struct {
    X3dConfig cfg;
    char prefix[64];
    ParamSet *ps;                /* the caller's */
    X3dConvBn stem_xy, stem_t;   /* s1.pathway0_stem.conv_xy; .conv + .bn (bn tensors on stem_t) */
    int depth[X3D_STAGES];       /* blocks per stage */
    int width[X3D_STAGES];       /* stage output widths */
    int inner[X3D_STAGES];       /* stage bottleneck widths */
    int stem_width;
    int n_blocks;
    X3dBlock blocks[X3D_MAX_BLOCKS]; /* in stage order */
    int block_stage[X3D_MAX_BLOCKS], block_index[X3D_MAX_BLOCKS];
    X3dConvBn conv5;             /* head.conv_5 + head.conv_5_bn */
    Tensor *lin5;                /* head.lin_5.weight (dim_c5, inner_5, 1, 1, 1); NULL without classes */
    Tensor *proj_w, *proj_b;     /* head.projection: (classes, dim_c5), (classes) */
    int feature_dim;             /* inner_5: conv_5's width (432 at γ_w 2, γ_b 2.25) */
} X3d;

/* Declares every parameter in ps (not yet allocated). NULL with a message in err. */
X3d *x3d_create(const X3dConfig *cfg, ParamSet *ps, char *err, size_t err_cap);
void x3d_destroy(X3d *m);
/* PySlowFast's init_weights (after params_allocate): convs kaiming-normal fan_out (c2_msra_fill),
 * conv biases 0, BN γ 1 (c_bn γ 0 with zero_init_final_bn), β 0, statistics 0/1, projection
 * normal(0, 0.01) with zero bias. */
void x3d_init(const X3d *m, uint64_t seed);

typedef struct {
    Tensor *features;       /* (N, D, T, h, w): the head's conv_5 map after ReLU, D = feature_dim */
    Tensor *frame_features; /* (N, D, T): its mean over space (get_featmap's x.mean([3, 4])) */
    Tensor *logits;         /* (N, classes), or NULL without classes */
} X3dOutput;

/* x: (N, 3, T, H, W) → out. Returns ctx_ok(ctx); out's fields NULL on failure. */
bool x3d_forward(Ctx *ctx, const X3d *m, Tensor *x, X3dOutput *out);

/* One residual block (exposed for the block-level fixture tests): x (N, C, T, H, W) → (N, K, To, Ho, Wo). */
Tensor *x3d_block_forward(Ctx *ctx, const X3dBlock *blk, Tensor *x);

/* MACs of the whole network on one (3, T, S, S) clip, measured on the meta backend. */
bool x3d_count_macs(const X3dConfig *cfg, int frames, int size, double *macs, char *err, size_t err_cap);

#endif
