/* backbone_common.h — the layer blocks the CNN backbones (impl/mobilenet_v2.c, impl/resnet.c) are
 * made of.
 *
 * Owns: ConvBn — a bias-free 2-D convolution followed by a batch norm, declared in a ParamSet
 * under the PyTorch state_dict keys the caller names (e.g. "layer1.0.conv1" + "layer1.0.bn1"),
 * its forward pass with an optional activation, and folding its batch norm into the convolution
 * for inference; a linear layer declared the same way; and checkpoint-key formatting with a
 * model prefix ("local_CNN." + "layer1.0.conv1.weight").
 *
 * Batch norm uses PyTorch's defaults (eps 1e-5, momentum 0.1), as torchvision's backbones do.
 *
 * Folding (conv_bn_fold_all) rewrites the conv weights in place and gives every conv a bias that
 * lives in a small ParamSet of its own, so the model's ParamSet keeps exactly the checkpoint's
 * keys. A folded layer still counts its batch norm's N·C MACs (FLOP_CONVENTION: +1 per BN
 * channel), so a folded model reports the same figure as the unfolded one: the paper's figures
 * describe the architecture, not how an inference engine happens to run it.
 */
#ifndef FOCUSBENCH_BACKBONE_COMMON_H
#define FOCUSBENCH_BACKBONE_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/context.h"
#include "kernels/params.h"
#include "kernels/tensor.h"

#define BACKBONE_BN_EPS 1e-5f     /* nn.BatchNorm2d default */
#define BACKBONE_BN_MOMENTUM 0.1f /* nn.BatchNorm2d default */

enum { BACKBONE_KEY_LEN = 160 }; /* longest checkpoint key a backbone builds, prefix included */

typedef enum {
    BACKBONE_ACT_NONE = 0,
    BACKBONE_ACT_RELU,
    BACKBONE_ACT_RELU6,
} BackboneAct;

typedef struct {
    Tensor *weight;                     /* (K, C/groups, k, k), no bias in the checkpoint */
    Tensor *gamma, *beta;               /* (K) batch-norm weight and bias */
    Tensor *running_mean, *running_var; /* (K) batch-norm buffers */
    Tensor *folded_bias;                /* (K) after conv_bn_fold_all; NULL while unfolded */
    int stride, pad, groups;
} ConvBn;

typedef struct {
    Tensor *weight; /* (out, in) */
    Tensor *bias;   /* (out) */
} Linear;

/* What a backbone's forward pass returns (activations in the context's arena). */
typedef struct {
    Tensor *features; /* (N, D, h, w): the last feature map (D = 1280 MobileNetV2, 2048 ResNet-50) */
    Tensor *pooled;   /* (N, D): its spatial mean */
    Tensor *logits;   /* (N, classes), or NULL when the model has no classifier */
} BackboneOutput;

/* Writes prefix + name into key[BACKBONE_KEY_LEN]; false (with a message in err) if too long. */
bool backbone_key(char *key, const char *prefix, const char *name, char *err, size_t err_cap);

/* Declares conv_name.weight (cout, cin/groups, k, k) and bn_name.{weight, bias, running_mean,
 * running_var} (cout), each name behind `prefix`. Padding is (k − 1)/2 as in torchvision.
 * False with a message in err on a bad shape, a duplicate name or a key that is too long. */
bool conv_bn_declare(ConvBn *cb, ParamSet *ps, const char *prefix, const char *conv_name, const char *bn_name,
                     int cin, int cout, int k, int stride, int groups, char *err, size_t err_cap);

/* Declares name.weight (out, in) and name.bias (out) behind `prefix`. */
bool linear_declare(Linear *fc, ParamSet *ps, const char *prefix, const char *name, int in, int out, char *err,
                    size_t err_cap);

/* x: (N, C, H, W) → conv → batch norm (batch statistics when ctx->training, running statistics
 * otherwise; a folded layer adds its bias instead) → activation. NULL propagates; a folded layer
 * in training mode is an error (its batch norm no longer exists as such). */
Tensor *conv_bn_forward(Ctx *ctx, const ConvBn *cb, Tensor *x, BackboneAct act);

/* The same with a residual added before the activation: act(conv_bn(x) + residual), residual
 * of the output's shape (NULL: none). A folded layer runs it as one fused op (one pass over
 * the output on the GPU); the values are those of conv_bn_forward, op_add, then the activation. */
Tensor *conv_bn_add_forward(Ctx *ctx, const ConvBn *cb, Tensor *x, Tensor *residual, BackboneAct act);

/* MobileNetV2's inverted residual branch: expand 1x1 (NULL: none) and depthwise 3x3 (padding 1),
 * both with `act`, then the projection 1x1 without one, plus residual (NULL: none). conv_bn_forward
 * for each, or, all folded and in eval mode, the fused ops where the backend has them: the expand
 * and the depthwise conv in one (op_conv2d_expand_dw) or the depthwise conv and the projection in
 * one (op_conv2d_dw_project; on the GPU at FP32 the intermediate is never stored). The same values
 * and counts either way. */
Tensor *conv_bn_inverted_residual_forward(Ctx *ctx, const ConvBn *expand, const ConvBn *dw, const ConvBn *project,
                                          Tensor *x, Tensor *residual, BackboneAct act);

/* Folds the batch norm of each of the n layers into its conv, in place: declares one bias per
 * layer ("<conv weight key>.folded_bias") in a new ParamSet returned through *bias_ps, on the
 * backend of the layers' weights, then rewrites the weights (CPU; on the meta backend only the
 * structure changes, which is all counting needs). Every layer is checked before any changes;
 * false with ctx's error set on failure. The caller owns *bias_ps whenever it is non-NULL, and
 * must keep it as long as the model runs. A folded model is for inference: its conv weights no
 * longer match its batch-norm tensors, so do not save it as a checkpoint. */
bool conv_bn_fold_all(Ctx *ctx, ConvBn *const *layers, int n, ParamSet **bias_ps);

#endif
