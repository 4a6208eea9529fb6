/* policy_spatial.h — Uni-AdaFocus's spatial policy (DESIGN §3 item 3; official SpatialPolicy).
 *
 * Owns: the 3-D convolutional head that reads the G glance feature maps of a video as one volume
 * (B, D, G, h, w) and gives one action a = (a_y, a_x, a_h, a_w) ∈ [0,1]⁴ per glance frame:
 *     encoder.0  conv3d 1×1×1 D → hidden, no bias      encoder.1  BN3d, ReLU
 *     encoder.3  conv3d 3×3×3 pad 1 hidden → hidden    encoder.4  BN3d, ReLU
 *     encoder.6  conv3d 3×3×3 pad 1 hidden → hidden    encoder.7  BN3d, ReLU
 *     encoder.9  conv3d (1, h, w) no padding → 4       sigmoid
 * The TSM and X3D variants' head spans the whole sequence instead, kernel (G, h, w) (config
 * head_frames = G): one action per video, output (B, 1, 4).
 * (the official Sequential's indices, so the checkpoint keys are "spatial_policy.encoder.0.weight",
 * "spatial_policy.encoder.1.running_mean", …). The caller detaches the feature maps.
 *
 * Also owns PolicyConvBn, the bias-free convolution + batch norm unit both policies are built of
 * (impl/policy_temporal.h uses it too).
 *
 * Cost: the convolutions' MACs over the whole volume plus each batch norm's channels once per
 * video (the official 0.822485376 GFLOPs at D = 1280, hidden 128, G = 16, 7×7).
 */
#ifndef FOCUSBENCH_POLICY_SPATIAL_H
#define FOCUSBENCH_POLICY_SPATIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/context.h"
#include "kernels/params.h"
#include "kernels/tensor.h"

#define POLICY_BN_EPS 1e-5f     /* nn.BatchNorm defaults */
#define POLICY_BN_MOMENTUM 0.1f

/* A bias-free convolution (any rank) and its batch norm. */
typedef struct {
    Tensor *weight;                     /* (K, C, k...) as in the checkpoint */
    Tensor *gamma, *beta;               /* (K) */
    Tensor *running_mean, *running_var; /* (K) buffers */
} PolicyConvBn;

/* Declares prefix+conv_name.weight with the given shape (ndim dims, dims[0] = K) and
 * prefix+bn_name.{weight, bias, running_mean, running_var} (K). False with a message in err. */
bool policy_conv_bn_declare(PolicyConvBn *cb, ParamSet *ps, const char *prefix, const char *conv_name,
                            const char *bn_name, int ndim, const int64_t *dims, char *err, size_t err_cap);
/* PyTorch's defaults (the official code does not re-initialise its policies): conv weight
 * U(±1/√fan_in) (kaiming_uniform with a = √5), BN γ 1, β 0, running mean 0, variance 1. */
void policy_conv_bn_init(const PolicyConvBn *cb, uint64_t seed);
/* Bias-free conv weight only (the policies' last layers): U(±1/√fan_in). */
void policy_conv_init(Tensor *weight, uint64_t seed);
/* y: the convolution's output (N, K, ...) → batch norm (batch statistics when ctx->training) → ReLU. */
Tensor *policy_bn_relu(Ctx *ctx, const PolicyConvBn *cb, Tensor *y);

typedef struct {
    int in_channels; /* D: 1280, the glance feature width */
    int hidden;      /* 128 */
    int glance;      /* G: glance frames per video */
    int feat_side;   /* h = w: 7 (S/32) */
    int head_frames; /* the head's kernel depth along time: 0 or 1 per frame (ActivityNet variant);
                      * G: one action per video (TSM/X3D variants); must be <= G */
} SpatialPolicyConfig;

typedef struct {
    SpatialPolicyConfig cfg;
    PolicyConvBn conv[3]; /* encoder.0/1, encoder.3/4, encoder.6/7 */
    Tensor *head;         /* encoder.9.weight (4, hidden, head_frames, h, w) */
} SpatialPolicy;

/* Declares the parameters under prefix ("spatial_policy."). False with a message in err. */
bool policy_spatial_declare(SpatialPolicy *sp, const SpatialPolicyConfig *cfg, ParamSet *ps, const char *prefix,
                            char *err, size_t err_cap);
void policy_spatial_init(const SpatialPolicy *sp, uint64_t seed);

/* features: (B·G, D, h, w), G consecutive maps per video → actions (B, G − head_frames + 1, 4) in
 * [0, 1]: (B, G, 4) per frame, (B, 1, 4) with a whole-sequence head. encoder.0 runs as a 2-D 1×1
 * conv on the maps before they are arranged as a volume (the same values and MACs; the permute
 * then moves hidden channels instead of D). NULL with the context's error on a shape mismatch. */
Tensor *policy_spatial_forward(Ctx *ctx, const SpatialPolicy *sp, Tensor *features);

#endif
