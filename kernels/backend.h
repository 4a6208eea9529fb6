/* backend.h — the op table: what a backend must implement.
 *
 * Owns: the BackendOps vtable and the resolved geometry structs the op layer hands to kernels.
 * The op layer (ops_*.c) validates arguments, computes output shapes, counts costs, allocates
 * outputs and records the tape; a backend only computes. Every backward kernel ACCUMULATES
 * (+=) into the gradient tensors it is given, and any gradient pointer may be NULL (not needed).
 *
 * The meta backend has no table (Ctx.ops == NULL): the op layer skips the kernel call.
 * Tensors passed here are contiguous in their logical row-major shape.
 */
#ifndef FOCUSBENCH_BACKEND_H
#define FOCUSBENCH_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "rng.h"
#include "tensor.h"

/* Convolution over 1, 2 or 3 spatial dims, all expressed as 3-D (unused dims have extent 1).
 * x: (N, C, T, H, W)   w: (K, C/groups, kt, kh, kw)   b: (K) or NULL   y: (N, K, To, Ho, Wo) */
typedef struct {
    int N, C, K;
    int T, H, W;
    int kt, kh, kw;
    int To, Ho, Wo;
    int st, sh, sw; /* stride */
    int pt, ph, pw; /* zero padding on both sides */
    int dt, dh, dw; /* dilation */
    int groups;
} ConvGeom;

/* Batch norm over x viewed as (N, C, S), S = product of the dims after C (1 for BN1d). */
typedef struct {
    int64_t N, C, S;
    float eps;
    float momentum; /* running = (1 - momentum) * running + momentum * batch (PyTorch) */
} NormGeom;

/* What a training batch norm may fuse after itself: y = act(bn(x) + residual), residual (N, C, S)
 * or NULL, act an OpAct value (0 none, 1 ReLU, 2 ReLU6) — the values of batch_norm, add, then
 * relu/relu6 as separate ops, bit for bit. Backward: the gradient that reaches bn(x) (and is
 * added to dresidual) is g = 0 + dy·d with d = act'(y) (ReLU: y > 0, ReLU6: 0 < y < 6, none: 1),
 * which is what the separate ops' backward passes leave in their zeroed gradient buffers. */
typedef struct {
    const Tensor *residual;
    int act;
} NormEpilogue;

/* Max pooling. x: (N, C, H, W) → y: (N, C, Ho, Wo); argmax: flat h*W+w per output, i32. */
typedef struct {
    int N, C, H, W;
    int kh, kw, sh, sw, ph, pw;
    int Ho, Wo;
} PoolGeom;

/* y = x wᵀ + b.  x: (M, K)  w: (N, K)  b: (N) or NULL  y: (M, N) */
typedef struct {
    int64_t M, K, N;
} LinearGeom;

typedef enum {
    UNARY_RELU = 0,
    UNARY_RELU6,
    UNARY_SIGMOID,
    UNARY_SWISH, /* x · sigmoid(x) */
    UNARY_SCALE, /* alpha · x */
} UnaryKind;

typedef enum {
    BINARY_ADD = 0,
    BINARY_MUL,
    BINARY_MAX, /* elementwise max; on ties the gradient goes to a */
} BinaryKind;

/* Reduction over the middle axis of x viewed as (outer, n, inner): y (outer, inner) = scale · Σ. */
typedef struct {
    int64_t outer, n, inner;
    float scale;
} ReduceGeom;

/* An axis-aligned box and the affine crop matrix of a 4-vector a = (a_y, a_x, a_h, a_w) per row,
 * in float32 with one rounding per step (impl/patch_box.h owns the formula; these are its
 * constants, precomputed by the caller). Per axis (h with a_y, w with a_x):
 *   side = out_size · ((a_size · span) / in_size + offset),  lo = a_pos · (image − side),
 *   hi = lo + side;  box = (lo_y, lo_x, side_h, side_w);
 *   theta = [[side_w/image, 0, (lo_x + hi_x)/image − 1], [0, side_h/image, (lo_y + hi_y)/image − 1]]. */
typedef struct {
    float span;     /* s_max − s_min */
    float offset;   /* s_min / in_size */
    float in_size;  /* the patch side the size formula is written against */
    float out_size; /* the crop's side */
    float image;    /* the side of the image the box lives in */
} BoxGeom;

struct BackendOps {
    const char *name;

    /* memory (device backends; the CPU backend uses the host arena and leaves these NULL) */
    void *(*device_alloc)(Ctx *ctx, size_t bytes);
    void (*device_memset)(Ctx *ctx, void *p, int value, size_t bytes);
    void (*copy_from_host)(Ctx *ctx, Tensor *dst, const void *src);
    void (*copy_to_host)(Ctx *ctx, void *dst, const Tensor *src);

    /* elementwise utilities */
    void (*fill)(Ctx *ctx, Tensor *t, float value);
    void (*axpy)(Ctx *ctx, float alpha, const Tensor *x, Tensor *y); /* y += alpha · x, equal numel */
    /* 2-D strided block copy, the engine of concat/slice and their backward:
     * dst[dst_off + r·dst_ld + c] (+)= src[src_off + r·src_ld + c] for r < rows, c < cols. */
    void (*copy_block)(Ctx *ctx, const Tensor *src, int64_t src_off, int64_t src_ld, Tensor *dst,
                       int64_t dst_off, int64_t dst_ld, int64_t rows, int64_t cols, bool accumulate);
    /* dst (+)= src with its dims permuted: dst.shape[i] = src.shape[perm[i]]. */
    void (*permute)(Ctx *ctx, const Tensor *src, const int *perm, Tensor *dst, bool accumulate);

    void (*conv_forward)(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                         Tensor *y);
    void (*conv_backward)(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                          Tensor *dx, Tensor *dw, Tensor *db);

    /* Training: batch statistics; writes save_mean/save_invstd (C) and updates the running
     * statistics with the unbiased variance, as PyTorch. ep (or NULL): the fused epilogue. */
    void (*batch_norm_forward_train)(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                     const Tensor *beta, Tensor *running_mean, Tensor *running_var,
                                     const NormEpilogue *ep, Tensor *y, Tensor *save_mean, Tensor *save_invstd);
    void (*batch_norm_forward_eval)(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                    const Tensor *beta, const Tensor *running_mean,
                                    const Tensor *running_var, Tensor *y);
    /* mean/invstd: the saved batch statistics (train) or running mean and 1/sqrt(var+eps) (eval).
     * With ep (its act; its residual is not read) the forward fused an epilogue: y is that
     * forward's output, dy the gradient of y, and dresidual (or NULL) gets the residual's share. */
    void (*batch_norm_backward)(Ctx *ctx, const NormGeom *g, bool batch_stats, const Tensor *x,
                                const Tensor *gamma, const Tensor *mean, const Tensor *invstd,
                                const NormEpilogue *ep, const Tensor *y, const Tensor *dy, Tensor *dx,
                                Tensor *dgamma, Tensor *dbeta, Tensor *dresidual);

    void (*unary_forward)(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, Tensor *y);
    void (*unary_backward)(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, const Tensor *y,
                           const Tensor *dy, Tensor *dx);

    /* b broadcasts to a: same ndim, each of b's dims equal to a's or 1. y has a's shape. */
    void (*binary_forward)(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, Tensor *y);
    void (*binary_backward)(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, const Tensor *dy,
                            Tensor *da, Tensor *db);

    void (*reduce_forward)(Ctx *ctx, const ReduceGeom *g, const Tensor *x, Tensor *y);
    void (*reduce_backward)(Ctx *ctx, const ReduceGeom *g, const Tensor *dy, Tensor *dx);

    void (*max_pool_forward)(Ctx *ctx, const PoolGeom *g, const Tensor *x, Tensor *y, Tensor *argmax);
    void (*max_pool_backward)(Ctx *ctx, const PoolGeom *g, const Tensor *argmax, const Tensor *dy, Tensor *dx);

    void (*linear_forward)(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                           Tensor *y);
    void (*linear_backward)(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                            Tensor *dx, Tensor *dw, Tensor *db);

    /* Row-wise over the last dim of x viewed as (rows, cols). */
    void (*softmax_forward)(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *x, Tensor *y);
    void (*softmax_backward)(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *y, const Tensor *dy,
                             Tensor *dx);
    /* Mean cross-entropy of logits (rows, cols) against i32 labels (rows); loss is a scalar;
     * probs (rows, cols) keeps the softmax for the backward pass. */
    void (*cross_entropy_forward)(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *logits,
                                  const Tensor *labels, Tensor *loss, Tensor *probs);
    void (*cross_entropy_backward)(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *probs,
                                   const Tensor *labels, const Tensor *dloss, Tensor *dlogits);

    /* x: (B, T, R)  idx: (B, F) i32 in [0, T)  y: (B, F, R); backward scatter-adds in index order. */
    void (*gather_forward)(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *x,
                           const Tensor *idx, Tensor *y);
    void (*gather_backward)(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *idx,
                            const Tensor *dy, Tensor *dx);

    /* theta: (N, 2, 3) → grid: (N, H, W, 2) at normalised pixel centres (align_corners = false). */
    void (*affine_grid_forward)(Ctx *ctx, int N, int H, int W, const Tensor *theta, Tensor *grid);
    void (*affine_grid_backward)(Ctx *ctx, int N, int H, int W, const Tensor *dgrid, Tensor *dtheta);
    /* Bilinear, zeros padding, align_corners = false.
     * x: (N, C, H, W)  grid: (N, Ho, Wo, 2) as (x, y) in [-1, 1]  y: (N, C, Ho, Wo) */
    void (*grid_sample_forward)(Ctx *ctx, const Tensor *x, const Tensor *grid, Tensor *y);
    void (*grid_sample_backward)(Ctx *ctx, const Tensor *x, const Tensor *grid, const Tensor *dy, Tensor *dx,
                                 Tensor *dgrid);

    /* TSM. x: (N·T, C, H, W); channels [0, C/fold) take frame t+1, [C/fold, 2C/fold) frame t−1,
     * zeros at the ends; the rest unchanged. */
    void (*temporal_shift_forward)(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div,
                                   const Tensor *x, Tensor *y);
    void (*temporal_shift_backward)(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div,
                                    const Tensor *dy, Tensor *dx);

    /* Linear interpolation along the last dim, align_corners = false: x (rows, Tin) → y (rows, Tout). */
    void (*interp_linear_forward)(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *x, Tensor *y);
    void (*interp_linear_backward)(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *dy, Tensor *dx);

    /* Element i is kept iff rng_uniform(stream, i) >= p, and then scaled by 1/(1-p). The backward
     * pass regenerates the same mask from the stream instead of storing it. */
    void (*dropout_forward)(Ctx *ctx, float p, const RngStream *stream, const Tensor *x, Tensor *y);
    void (*dropout_backward)(Ctx *ctx, float p, const RngStream *stream, const Tensor *dy, Tensor *dx);

    /* ---- appended for device backends (issue 6, the CUDA backend); the CPU table leaves them
     * NULL and context.c calls each only when present. ---- */
    /* Called by ctx_begin_pass after the host arenas are reset: resets the device arenas (and
     * consolidates a first pass's overflow into one planned block). */
    void (*begin_pass)(Ctx *ctx);
    /* Called by ctx_destroy before the host arenas are freed: releases ctx->backend_state. */
    void (*destroy)(Ctx *ctx);
    /* Waits for all queued device work; false (with the context's error set) on a device fault. */
    bool (*synchronize)(Ctx *ctx);

    /* ---- appended for device backends (issue 6, a whole inference pass without host reads, so
     * it can be captured as a CUDA graph); the CPU table leaves them NULL and the model code runs
     * its host versions instead. Both are exact: the same float operations as the host code. ---- */
    /* Quantile sampling of B piecewise-constant densities, frame_sampler_quantile of
     * impl/frame_sampler.c bit for bit (double cumulative sum rounded to float at each step, the
     * last forced to 1, float32 interpolation, floor, strictly increasing, cap T − F + i).
     * w: (B, G) f32 weights; u: (B, F) f32 thresholds, or NULL for the test thresholds
     * (i + 0.5)/F; idx: (B, F) i32 in [0, T). A row with a non-finite or negative weight, or
     * whose weights are all 0 (the host version's errors), gets idx = −1 everywhere: the row
     * gather gives zeros there, and the error cannot be reported without reading the device. */
    void (*quantile_sample)(Ctx *ctx, int64_t B, int G, int T, int F, const Tensor *w, const Tensor *u, Tensor *idx);
    /* a: (N, 4) f32 → boxes (N, 4) and/or theta (N, 2, 3) (either may be NULL), see BoxGeom. */
    void (*box_transform)(Ctx *ctx, const BoxGeom *g, int64_t N, const Tensor *a, Tensor *boxes, Tensor *theta);

    /* ---- appended (issue 6, fused conv epilogues) ---- */
    /* y = act(conv(x, w) + b + residual): the sum rounded as (conv + b) + residual, then act, an
     * OpAct value of ops.h (0 none, 1 ReLU, 2 ReLU6). b and residual (N, K, To, Ho, Wo) may be
     * NULL. Forward only: while the tape records, the op layer runs the unfused ops instead. A
     * table that leaves it NULL gets the unfused ops too. */
    void (*conv_bias_act_forward)(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                                  const Tensor *residual, int act, Tensor *y);

    /* ---- appended (training on a device: the optimizer works where the parameters are). Raw
     * pointers into a ParamSet's blocks (kernels/params.h) on this backend's memory; every table
     * has them (the CPU's are the reference loops, impl/optimizer.h gives the exact arithmetic). ---- */
    /* One SGD update of n floats, torch.optim.SGD's float32 arithmetic:
     *   d = wd ? fmaf(wd, p, g) : g;   b = fresh ? d : (buf·momentum) + d (two roundings);
     *   buf = b;   p = fmaf(neg_lr, b, p). */
    void (*sgd_update)(Ctx *ctx, int64_t n, float *p, const float *g, float *buf, float neg_lr, float wd,
                       float momentum, bool fresh);
    /* Σ x² of n floats, accumulated in double (a fixed order on each backend; waits for the result). */
    double (*sum_squares)(Ctx *ctx, int64_t n, const float *x);
    /* x = (float)((double)x · coef) for n floats, in place. */
    void (*scale_inplace)(Ctx *ctx, int64_t n, float *x, double coef);

    /* ---- appended (synchronised batch norm over data-parallel ranks, Ctx.bn_sync): the train
     * batch norm split at its two reductions, so that the op layer (kernels/ops_norm.c) can sum the
     * per-channel figures over the ranks in between. The figures travel in HOST arrays of doubles
     * (C or 2C values per layer; a device backend copies them and waits). x, dy, dx: (N, C, S) as
     * NormGeom, this rank's part of the batch; `count` is the number of values per channel of the
     * whole (global) batch. ---- */
    /* This rank's statistics: stats[c] = Σ x, stats[C + c] = Σ (x − Σx/m)² over the m = N·S values
     * of channel c (two passes in double, as batch_norm_forward_train; both 0 when m = 0).
     * stats: host (2, C). */
    void (*batch_norm_stats)(Ctx *ctx, const NormGeom *g, const Tensor *x, double *stats);
    /* batch_norm_forward_train with given statistics instead of x's own: mean (C) and biased var
     * (C), host doubles; invstd = 1/√(var + ε) and everything after it with batch_norm_forward_train's
     * arithmetic, the running variance unbiased with count: var·count/(count − 1) (count > 1). With
     * x's own statistics (count = N·S) it equals batch_norm_forward_train bit for bit. */
    void (*batch_norm_forward_stats)(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                     const Tensor *beta, const double *mean, const double *var, double count,
                                     Tensor *running_mean, Tensor *running_var, Tensor *y, Tensor *save_mean,
                                     Tensor *save_invstd);
    /* This rank's backward sums: sums[c] = Σ dy, sums[C + c] = Σ dy·(x − mean)·invstd (double,
     * host (2, C), as batch_norm_backward's); dbeta += (float)sums[c], dgamma += (float)sums[C + c]
     * (either may be NULL). mean/invstd: the saved (global) statistics. */
    void (*batch_norm_backward_reduce)(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *mean,
                                       const Tensor *invstd, const Tensor *dy, double *sums, Tensor *dgamma,
                                       Tensor *dbeta);
    /* dx += γ·invstd/count·(count·dy − sums[c] − x̂·sums[C + c]), x̂ = (x − mean)·invstd, with the
     * given (global) sums, host (2, C): batch_norm_backward's train formula and arithmetic. */
    void (*batch_norm_backward_dx)(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                   const Tensor *mean, const Tensor *invstd, const Tensor *dy, const double *sums,
                                   double count, Tensor *dx);

    /* ---- appended (FP32 inference: MobileNetV2's expand + depthwise convs in one kernel) ---- */
    /* Whether expand_dw_forward takes these geometries now (ge: the 1x1 expand, gd: the depthwise
     * 3x3 on its output); a table without it, or false, and the op layer runs the two fused convs. */
    bool (*expand_dw_takes)(Ctx *ctx, const ConvGeom *ge, const ConvGeom *gd);
    /* y = act_d(dwconv(act_e(conv1x1(x, we) + be), wd) + bd), the intermediate never stored: the
     * values of conv_bias_act_forward twice (acts OpAct values; be, bd not NULL). */
    void (*expand_dw_forward)(Ctx *ctx, const ConvGeom *ge, const ConvGeom *gd, const Tensor *x, const Tensor *we,
                              const Tensor *be, int act_e, const Tensor *wd, const Tensor *bd, int act_d, Tensor *y);

    /* ---- appended (FP32 inference: MobileNetV2's depthwise conv + projection in one kernel) ---- */
    /* Whether dw_project_forward takes these geometries now (gd: the depthwise 3x3, gp: the 1x1
     * projection of its output, wp its weight); a table without it, or false, and the op layer
     * runs the two fused convs. */
    bool (*dw_project_takes)(Ctx *ctx, const ConvGeom *gd, const ConvGeom *gp, const Tensor *wp);
    /* y = act_p((conv1x1(act_d(dwconv(x, wd) + bd), wp) + bp) + residual), the depthwise output
     * never stored: the values of conv_bias_act_forward twice (acts OpAct values; bd, bp not
     * NULL; residual may be NULL). */
    void (*dw_project_forward)(Ctx *ctx, const ConvGeom *gd, const ConvGeom *gp, const Tensor *x, const Tensor *wd,
                               const Tensor *bd, int act_d, const Tensor *wp, const Tensor *bp,
                               const Tensor *residual, int act_p, Tensor *y);
};

const BackendOps *cpu_backend_ops(void);

#endif
