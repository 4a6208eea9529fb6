/* ops.h — the op API that model code is written against (once, for every backend).
 *
 * Every op: checks its arguments (a NULL input means an earlier op failed: return NULL), checks
 * shapes and writes a clear message into the context on a mismatch, allocates its output from
 * the context's arena, adds its cost to the current scope (FLOP_CONVENTION: MACs of conv and
 * linear without bias, +1 per batch-norm channel, everything else 0; bytes = tensors read +
 * written), runs the backend kernel (skipped on meta), and, while the context records, appends
 * itself to the tape so tape_backward() can compute gradients.
 *
 * Shapes use PyTorch's logical order: (N, C, H, W) images, (N, C, T, H, W) volumes, (N, C, L)
 * sequences, (M, K) matrices. All floating tensors are f32 on the CPU backend.
 */
#ifndef FOCUSBENCH_OPS_H
#define FOCUSBENCH_OPS_H

#include <stdint.h>

#include "context.h"
#include "tensor.h"

/* ---- convolution ------------------------------------------------------------------------ */
/* x: (N, C, L)        w: (K, C/groups, k)          b: (K) or NULL → (N, K, Lo)          */
Tensor *op_conv1d(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b, int stride, int pad, int groups);
/* x: (N, C, H, W)     w: (K, C/groups, kh, kw)     b: (K) or NULL → (N, K, Ho, Wo)      */
Tensor *op_conv2d(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b, int stride, int pad, int groups);
/* x: (N, C, T, H, W)  w: (K, C/groups, kt, kh, kw) b: (K) or NULL → (N, K, To, Ho, Wo)
 * stride and pad in (t, h, w) order. */
Tensor *op_conv3d(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b, const int stride[3], const int pad[3],
                  int groups);

/* Fused forward: y = act(conv2d(x, w) + b + residual). residual: NULL or the output's shape
 * (N, K, Ho, Wo); b may be NULL. Same MACs as op_conv2d (DESIGN §4). Differentiable: while the
 * tape records it runs as op_conv2d, op_add, op_relu / op_relu6 (identical values). */
typedef enum {
    OP_ACT_NONE = 0,
    OP_ACT_RELU,
    OP_ACT_RELU6,
} OpAct;
Tensor *op_conv2d_bias_act(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b, Tensor *residual, int stride, int pad,
                           int groups, OpAct act);
/* MobileNetV2's expand and depthwise convs: act_d(dwconv3x3(act_e(conv1x1(x, we) + be), wd, stride,
 * pad 1) + bd), we (E, C, 1, 1), wd (E, 1, 3, 3), be and bd (E) or NULL. One kernel that never
 * stores the expanded tensor where the backend has one for the shapes (expand_dw_takes, FP32 on
 * the GPU); elsewhere, and while the tape records, the two op_conv2d_bias_act calls, which give
 * the same values. Counts both convs' MACs either way. */
Tensor *op_conv2d_expand_dw(Ctx *ctx, Tensor *x, Tensor *we, Tensor *be, OpAct act_e, Tensor *wd, Tensor *bd,
                            int stride, OpAct act_d);
/* Whether op_conv2d_expand_dw with these arguments runs as one kernel here (false, nothing set,
 * where it would run its two convs; false with the context's error for malformed x or we). */
bool op_conv2d_expand_dw_fuses(Ctx *ctx, Tensor *x, Tensor *we, Tensor *be, OpAct act_e, Tensor *wd, Tensor *bd,
                               int stride, OpAct act_d);
/* MobileNetV2's depthwise conv and projection: act_p((conv1x1(act_d(dwconv3x3(x, wd, stride, pad 1)
 * + bd), wp) + bp) + residual), wd (E, 1, 3, 3), wp (K, E, 1, 1), bd (E) and bp (K) or NULL,
 * residual (N, K, Ho, Wo) or NULL. One kernel that never stores the depthwise output where the
 * backend has one for the shapes (dw_project_takes, FP32 on the GPU); elsewhere, and while the
 * tape records, the two op_conv2d_bias_act calls, which give the same values. Counts both convs'
 * MACs either way. */
Tensor *op_conv2d_dw_project(Ctx *ctx, Tensor *x, Tensor *wd, Tensor *bd, int stride, OpAct act_d, Tensor *wp,
                             Tensor *bp, Tensor *residual, OpAct act_p);

/* ---- normalisation ---------------------------------------------------------------------- */
/* x: (N, C, ...) with 2 to 5 dims; gamma, beta, running_mean, running_var: (C).
 * Training: batch statistics, running statistics updated in place (momentum as PyTorch, unbiased
 * variance). Eval: running statistics. Counts C MACs (the paper's +1 per BN channel). */
Tensor *op_batch_norm(Ctx *ctx, Tensor *x, Tensor *gamma, Tensor *beta, Tensor *running_mean,
                      Tensor *running_var, float momentum, float eps);
/* act(batch_norm(x) + residual): residual has x's shape or is NULL; act none, ReLU or ReLU6. In
 * training on one rank (no synchronised statistics) one fused op: the batch norm's kernels apply
 * the residual and the activation as they write y and read the gradient back through them
 * (NormEpilogue, backend.h), so neither the batch norm's output nor the sum is kept; elsewhere
 * batch_norm, add and the activation as separate ops. The same values either way. */
Tensor *op_batch_norm_act(Ctx *ctx, Tensor *x, Tensor *gamma, Tensor *beta, Tensor *running_mean,
                          Tensor *running_var, float momentum, float eps, Tensor *residual, OpAct act);
/* Folds an eval-mode batch norm into the preceding conv/linear weights (K, ...) and bias (K),
 * in place, on host memory: w' = w·γ/√(var+ε), b' = (b − mean)·γ/√(var+ε) + β. `bias` must
 * exist (zero-initialised if the layer had none). Returns false with ctx's error on mismatch. */
bool op_fold_batch_norm(Ctx *ctx, Tensor *weight, Tensor *bias, const Tensor *gamma, const Tensor *beta,
                        const Tensor *running_mean, const Tensor *running_var, float eps);

/* ---- activations and elementwise -------------------------------------------------------- */
Tensor *op_relu(Ctx *ctx, Tensor *x);
Tensor *op_relu6(Ctx *ctx, Tensor *x);
Tensor *op_sigmoid(Ctx *ctx, Tensor *x);
Tensor *op_swish(Ctx *ctx, Tensor *x);
Tensor *op_scale(Ctx *ctx, Tensor *x, float alpha);
/* b has a's ndim and each of its dims equals a's or is 1 (broadcast). Result has a's shape. */
Tensor *op_add(Ctx *ctx, Tensor *a, Tensor *b);
Tensor *op_mul(Ctx *ctx, Tensor *a, Tensor *b);
Tensor *op_maximum(Ctx *ctx, Tensor *a, Tensor *b); /* running max-pooling; ties → a */
/* p in [0, 1); identity unless ctx->training. The mask is a function of (seed, step, op number). */
Tensor *op_dropout(Ctx *ctx, Tensor *x, float p);

/* ---- reductions and pooling ------------------------------------------------------------- */
/* x: (N, C, ...) → (N, C): mean over every dim after C. */
Tensor *op_global_avg_pool(Ctx *ctx, Tensor *x);
/* Mean over one dim (removed from the shape). */
Tensor *op_mean(Ctx *ctx, Tensor *x, int dim);
/* Sum of all elements → scalar (ndim 0). */
Tensor *op_sum_all(Ctx *ctx, Tensor *x);
/* x: (N, C, H, W) → (N, C, Ho, Wo); square kernel, stride, zero... -inf padding as PyTorch. */
Tensor *op_max_pool2d(Ctx *ctx, Tensor *x, int kernel, int stride, int pad);

/* ---- linear and classification ---------------------------------------------------------- */
/* x: (M, K)  w: (N, K)  b: (N) or NULL → (M, N) */
Tensor *op_linear(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b);
/* Over the last dim. */
Tensor *op_softmax(Ctx *ctx, Tensor *x);
Tensor *op_log_softmax(Ctx *ctx, Tensor *x);
/* logits: (M, C), labels: (M) i32 in [0, C) → scalar mean cross-entropy (log-softmax fused). */
Tensor *op_cross_entropy(Ctx *ctx, Tensor *logits, Tensor *labels);

/* ---- shape and data movement ------------------------------------------------------------ */
/* Same data, new shape of equal numel (no copy). */
Tensor *op_reshape(Ctx *ctx, Tensor *x, int ndim, const int64_t *dims);
/* out.shape[i] = x.shape[perm[i]] (a copy). */
Tensor *op_permute(Ctx *ctx, Tensor *x, const int *perm);
/* Concatenates n tensors along `dim`; all other dims equal. */
Tensor *op_concat(Ctx *ctx, Tensor *const *xs, int n, int dim);
/* Elements [start, start + len) of `dim` (a copy). */
Tensor *op_slice(Ctx *ctx, Tensor *x, int dim, int64_t start, int64_t len);
/* x: (B, T, ...)  idx: (B, F) i32 in [0, T) → (B, F, ...): frame selection; backward scatter-adds. */
Tensor *op_gather_rows(Ctx *ctx, Tensor *x, Tensor *idx);

/* ---- spatial sampling ------------------------------------------------------------------- */
/* theta: (N, 2, 3) → grid (N, H, W, 2), PyTorch affine_grid with align_corners = false. */
Tensor *op_affine_grid(Ctx *ctx, Tensor *theta, int H, int W);
/* x: (N, C, H, W), grid: (N, Ho, Wo, 2) → (N, C, Ho, Wo); bilinear, zeros padding,
 * align_corners = false (PyTorch grid_sample). Differentiable in x and in grid. */
Tensor *op_grid_sample(Ctx *ctx, Tensor *x, Tensor *grid);
/* The affine patch crop: affine_grid(theta, P, P) then grid_sample. x: (N, C, H, W) → (N, C, P, P). */
Tensor *op_patch_crop(Ctx *ctx, Tensor *x, Tensor *theta, int P);

/* ---- time ------------------------------------------------------------------------------- */
/* TSM shift. x: (N·T, C, H, W); 1/fold_div of the channels from the next frame, 1/fold_div from
 * the previous one, zeros at the clip ends (the official `shift`, not in-place). 0 MACs. */
Tensor *op_temporal_shift(Ctx *ctx, Tensor *x, int T, int fold_div);
/* Linear interpolation along the last dim, x: (..., Tin) → (..., Tout); PyTorch
 * interpolate(mode='linear', align_corners=False). */
Tensor *op_interp_time(Ctx *ctx, Tensor *x, int Tout);

#endif
