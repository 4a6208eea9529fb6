/* cuda_layout.c — activations resident in bf16 channels-last between layers (BF16 precision).
 *
 * DESIGN: "the physical layout is the backend's choice". At BF16, the fused conv op
 * (conv_bias_act_forward, cuda_conv.c) leaves its output as a bf16 (N, S, C) copy — a shadow —
 * registered here under the f32 tensor's device address, and does not write the f32 (N, C, S)
 * data. The next conv reads the shadow directly (no conversion), and so do the ops that know
 * the layout: the depthwise 3x3 conv, the residual add, ReLU/ReLU6 and the TSM shift, which
 * write shadows in turn. Every other slot goes through a wrapper below that first asks for the
 * canonical form of each input (cuda_layout_in: a shadow whose f32 data is stale is converted
 * back, once) and, for each output, drops any shadow it overlaps (cuda_layout_out: after making
 * the f32 data current, so a partial or accumulating write keeps the rest right). Copies to
 * the host and device memsets do the same. So any op stays correct: it just sees f32 tensors.
 *
 * Entries live for one pass: the registry is emptied whenever the activation arena is reset
 * (begin_pass, cuda_arena_reserve), as the addresses are reused then. The same wrappers apply
 * the deferred epilogues of FP32 / TF32 (below). Lookups are by address
 * range, so a view into a shadowed tensor (same memory, other shape, or an offset) is
 * canonicalised too. With no shadow registered (FP32, TF32, or resident mode off outside bf16
 * training) every wrapper returns at its first test. bf16 training registers shadows of another
 * kind: a conv input's copy kept for its weight gradient (cuda_shadow_keep), whose f32 data stays
 * current; any write to the tensor drops it like the others; the layout-aware slots never read
 * shadows while recording (cuda_resident_active).
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

void cuda_shadow_reset(Ctx *ctx)
{
    CudaState *st = cuda_state(ctx);
    if (st)
        st->n_shadows = st->n_pending = 0;
}

/* ---- deferred epilogues (FP32 / TF32) ------------------------------------------------------
 * A fused conv on the cuDNN path writes its raw output and registers the bias + activation as
 * pending instead of running the in-place epilogue pass. The f32 depthwise kernel applies a
 * pending epilogue of its input as it reads it (MobileNetV2's expand → depthwise: the largest
 * tensors of the glance then make one trip through memory less); any other reader, and any
 * writer, goes through layout_range below, which applies it in place first, once. The values are
 * the same either way: the same (v + b) then act, each rounded on its own. */

bool cuda_epilogue_deferrable(const Ctx *ctx)
{
    const CudaState *st = cuda_state(ctx);
    return st && st->defer_epilogue && st->precision != CUDA_PRECISION_BF16 && !ctx->recording;
}

bool cuda_epilogue_defer(Ctx *ctx, const Tensor *t, const float *bias, int act, int64_t N, int64_t K, int64_t P)
{
    CudaState *st = cuda_state(ctx);
    /* the entry lives until the arena is reset; the bias it applies must too (a model's
     * weights may be freed before then): a copy in the arena */
    float *b = bias ? cuda_arena_alloc(ctx, (size_t)K * sizeof *b, "a deferred epilogue's bias") : NULL;
    if (bias && (!b || !CUDA_OK(ctx, cudaMemcpyAsync(b, bias, (size_t)K * sizeof *b, cudaMemcpyDeviceToDevice,
                                                      st->stream))))
        return false;
    CudaPendingEpilogue *pending = cuda_grow(ctx, st->pending, &st->cap_pending, st->n_pending, sizeof *pending, 64,
                                             "the deferred-epilogue registry");
    if (!pending)
        return false;
    st->pending = pending;
    st->pending[st->n_pending++] = (CudaPendingEpilogue){
        .base = (const char *)t->data, .bytes = tensor_bytes(t), .bias = b, .act = act, .N = N, .K = K, .P = P};
    return true;
}

const CudaPendingEpilogue *cuda_epilogue_pending(const Ctx *ctx, const Tensor *t)
{
    const CudaState *st = cuda_state(ctx);
    if (!st || !t || !t->data)
        return NULL;
    for (int i = st->n_pending - 1; i >= 0; i--)
        if (st->pending[i].base == (const char *)t->data && st->pending[i].bytes == tensor_bytes(t))
            return &st->pending[i];
    return NULL;
}

/* Applies (and forgets) every pending epilogue overlapping [lo, hi). */
static void pending_apply(Ctx *ctx, const char *lo, const char *hi)
{
    CudaState *st = cuda_state(ctx);
    for (int i = 0; i < st->n_pending; i++) {
        CudaPendingEpilogue *e = &st->pending[i];
        if (e->base >= hi || e->base + e->bytes <= lo)
            continue;
        CudaPendingEpilogue done = *e;
        st->pending[i--] = st->pending[--st->n_pending];
        if (!cuda_launch_conv_epilogue(ctx, (float *)done.base, done.bias, NULL, done.act, done.N, done.K, done.P))
            return;
    }
}

bool cuda_resident_active(const Ctx *ctx)
{
    const CudaState *st = cuda_state(ctx);
    return st && st->resident && st->precision == CUDA_PRECISION_BF16 && !ctx->recording;
}

const CudaShadow *cuda_shadow_of(const Ctx *ctx, const Tensor *t)
{
    const CudaState *st = cuda_state(ctx);
    if (!st || !t || !t->data || st->n_shadows == 0)
        return NULL;
    for (int i = st->n_shadows - 1; i >= 0; i--) {
        const CudaShadow *s = &st->shadows[i];
        if (s->base == (const char *)t->data && s->bytes == tensor_bytes(t))
            return s;
    }
    return NULL;
}

static bool shadow_register(Ctx *ctx, const Tensor *t, void *bf16, int64_t N, int64_t C, int64_t S, bool canon)
{
    CudaState *st = cuda_state(ctx);
    CudaShadow *shadows = cuda_grow(ctx, st->shadows, &st->cap_shadows, st->n_shadows, sizeof *shadows, 256,
                                    "the bf16 layout registry");
    if (!shadows)
        return false;
    st->shadows = shadows;
    st->shadows[st->n_shadows++] = (CudaShadow){
        .base = (const char *)t->data, .bytes = tensor_bytes(t), .bf16 = bf16, .N = N, .C = C, .S = S, .canon = canon};
    return true;
}

bool cuda_shadow_add(Ctx *ctx, const Tensor *t, void *bf16, int64_t N, int64_t C, int64_t S)
{
    return shadow_register(ctx, t, bf16, N, C, S, false);
}

bool cuda_shadow_keep(Ctx *ctx, const Tensor *t, void *bf16, int64_t N, int64_t C, int64_t S)
{
    return shadow_register(ctx, t, bf16, N, C, S, true);
}

/* Makes the f32 data of every shadow overlapping [p, p + bytes) current; with drop, forgets
 * those shadows too. */
static void layout_range(Ctx *ctx, const void *p, size_t bytes, bool drop)
{
    CudaState *st = cuda_state(ctx);
    if (!st || (st->n_shadows == 0 && st->n_pending == 0) || !p || !bytes || ctx->failed)
        return;
    const char *lo = p, *hi = lo + bytes;
    if (st->n_pending)
        pending_apply(ctx, lo, hi);
    for (int i = 0; i < st->n_shadows; i++) {
        CudaShadow *s = &st->shadows[i];
        if (s->base >= hi || s->base + s->bytes <= lo)
            continue;
        if (!s->canon) {
            if (!cuda_launch_from_bf16_cl_tiled(ctx, s->bf16, (float *)s->base, s->N, s->C, s->S, NULL, NULL, 0,
                                                false))
                return;
            s->canon = true;
        }
        if (drop) {
            st->shadows[i] = st->shadows[--st->n_shadows];
            i--;
        }
    }
}

void cuda_layout_in(Ctx *ctx, const Tensor *t)
{
    if (t)
        layout_range(ctx, t->data, tensor_bytes(t), false);
}

void cuda_layout_out(Ctx *ctx, const Tensor *t)
{
    if (t)
        layout_range(ctx, t->data, tensor_bytes(t), true);
}

void cuda_layout_in_range(Ctx *ctx, const void *p, size_t bytes) { layout_range(ctx, p, bytes, false); }
void cuda_layout_out_range(Ctx *ctx, const void *p, size_t bytes) { layout_range(ctx, p, bytes, true); }

/* ================================ layout-aware slots ===================================== */

/* A bf16 block of the activation arena for a shadow of t (numel elements). */
static void *shadow_block(Ctx *ctx, const Tensor *t)
{
    return cuda_arena_alloc(ctx, (size_t)tensor_numel(t) * 2, "a bf16 channels-last activation");
}

void cl_unary_forward(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, Tensor *y)
{
    const CudaShadow *s = (kind == UNARY_RELU || kind == UNARY_RELU6) && cuda_resident_active(ctx)
                              ? cuda_shadow_of(ctx, x) : NULL;
    if (s && cuda_ready(ctx)) {
        CudaShadow sx = *s;
        cuda_layout_out(ctx, y);
        void *yb = shadow_block(ctx, y);
        if (yb && cuda_launch_bf16_add_act(ctx, sx.bf16, NULL, yb, kind == UNARY_RELU ? 1 : 2, tensor_numel(x)))
            cuda_shadow_add(ctx, y, yb, sx.N, sx.C, sx.S);
        return;
    }
    cuda_layout_in(ctx, x);
    cuda_layout_out(ctx, y);
    cuda_unary_forward(ctx, kind, alpha, x, y);
}

void cl_binary_forward(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, Tensor *y)
{
    const CudaShadow *sa = NULL, *sb = NULL;
    if (kind == BINARY_ADD && cuda_resident_active(ctx) && tensor_same_shape(a, b)) {
        sa = cuda_shadow_of(ctx, a);
        sb = sa ? cuda_shadow_of(ctx, b) : NULL;
    }
    if (sa && sb && sa->N == sb->N && sa->C == sb->C && sa->S == sb->S && cuda_ready(ctx)) {
        CudaShadow ca = *sa, cb = *sb;
        cuda_layout_out(ctx, y);
        void *yb = shadow_block(ctx, y);
        if (yb && cuda_launch_bf16_add_act(ctx, ca.bf16, cb.bf16, yb, 0, tensor_numel(a)))
            cuda_shadow_add(ctx, y, yb, ca.N, ca.C, ca.S);
        return;
    }
    cuda_layout_in(ctx, a);
    cuda_layout_in(ctx, b);
    cuda_layout_out(ctx, y);
    cuda_binary_forward(ctx, kind, a, b, y);
}

void cl_temporal_shift_forward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div, const Tensor *x,
                               Tensor *y)
{
    const CudaShadow *s = cuda_resident_active(ctx) ? cuda_shadow_of(ctx, x) : NULL;
    if (s && s->N == N * T && s->C == C && s->S == HW && cuda_ready(ctx)) {
        CudaShadow sx = *s;
        cuda_layout_out(ctx, y);
        void *yb = shadow_block(ctx, y);
        if (yb && cuda_launch_tshift_nhwc(ctx, sx.bf16, yb, N, T, HW, C, fold_div))
            cuda_shadow_add(ctx, y, yb, sx.N, sx.C, sx.S);
        return;
    }
    cuda_layout_in(ctx, x);
    cuda_layout_out(ctx, y);
    cuda_temporal_shift_forward(ctx, N, T, C, HW, fold_div, x, y);
}

/* ================================ the other slots: canonical in, shadows dropped out ======= */

void cl_fill(Ctx *ctx, Tensor *t, float value)
{
    cuda_layout_out(ctx, t);
    cuda_fill(ctx, t, value);
}

void cl_axpy(Ctx *ctx, float alpha, const Tensor *x, Tensor *y)
{
    cuda_layout_in(ctx, x);
    cuda_layout_out(ctx, y);
    cuda_axpy(ctx, alpha, x, y);
}

void cl_copy_block(Ctx *ctx, const Tensor *src, int64_t src_off, int64_t src_ld, Tensor *dst, int64_t dst_off, int64_t dst_ld, int64_t rows, int64_t cols, bool accumulate)
{
    cuda_layout_in(ctx, src);
    cuda_layout_out(ctx, dst);
    cuda_copy_block(ctx, src, src_off, src_ld, dst, dst_off, dst_ld, rows, cols, accumulate);
}

void cl_permute(Ctx *ctx, const Tensor *src, const int *perm, Tensor *dst, bool accumulate)
{
    cuda_layout_in(ctx, src);
    cuda_layout_out(ctx, dst);
    cuda_permute(ctx, src, perm, dst, accumulate);
}

void cl_conv_backward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy, Tensor *dx, Tensor *dw, Tensor *db)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, w);
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_layout_out(ctx, dw);
    cuda_layout_out(ctx, db);
    cuda_conv_backward(ctx, g, x, w, dy, dx, dw, db);
}

void cl_batch_norm_forward_train(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma, const Tensor *beta, Tensor *running_mean, Tensor *running_var, const NormEpilogue *ep, Tensor *y, Tensor *save_mean, Tensor *save_invstd)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, gamma);
    cuda_layout_in(ctx, beta);
    if (ep)
        cuda_layout_in(ctx, ep->residual);
    cuda_layout_out(ctx, running_mean);
    cuda_layout_out(ctx, running_var);
    cuda_layout_out(ctx, y);
    cuda_layout_out(ctx, save_mean);
    cuda_layout_out(ctx, save_invstd);
    cuda_batch_norm_forward_train(ctx, g, x, gamma, beta, running_mean, running_var, ep, y, save_mean, save_invstd);
}

void cl_batch_norm_forward_eval(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma, const Tensor *beta, const Tensor *running_mean, const Tensor *running_var, Tensor *y)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, gamma);
    cuda_layout_in(ctx, beta);
    cuda_layout_in(ctx, running_mean);
    cuda_layout_in(ctx, running_var);
    cuda_layout_out(ctx, y);
    cuda_batch_norm_forward_eval(ctx, g, x, gamma, beta, running_mean, running_var, y);
}

void cl_batch_norm_backward(Ctx *ctx, const NormGeom *g, bool batch_stats, const Tensor *x, const Tensor *gamma, const Tensor *mean, const Tensor *invstd, const NormEpilogue *ep, const Tensor *y, const Tensor *dy, Tensor *dx, Tensor *dgamma, Tensor *dbeta, Tensor *dresidual)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, gamma);
    cuda_layout_in(ctx, mean);
    cuda_layout_in(ctx, invstd);
    cuda_layout_in(ctx, y);
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_layout_out(ctx, dgamma);
    cuda_layout_out(ctx, dbeta);
    cuda_layout_out(ctx, dresidual);
    cuda_batch_norm_backward(ctx, g, batch_stats, x, gamma, mean, invstd, ep, y, dy, dx, dgamma, dbeta, dresidual);
}

void cl_batch_norm_stats(Ctx *ctx, const NormGeom *g, const Tensor *x, double *stats)
{
    cuda_layout_in(ctx, x);
    cuda_batch_norm_stats(ctx, g, x, stats);
}

void cl_batch_norm_forward_stats(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                 const Tensor *beta, const double *mean, const double *var, double count,
                                 Tensor *running_mean, Tensor *running_var, Tensor *y, Tensor *save_mean,
                                 Tensor *save_invstd)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, gamma);
    cuda_layout_in(ctx, beta);
    cuda_layout_out(ctx, running_mean);
    cuda_layout_out(ctx, running_var);
    cuda_layout_out(ctx, y);
    cuda_layout_out(ctx, save_mean);
    cuda_layout_out(ctx, save_invstd);
    cuda_batch_norm_forward_stats(ctx, g, x, gamma, beta, mean, var, count, running_mean, running_var, y, save_mean,
                                  save_invstd);
}

void cl_batch_norm_backward_reduce(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *mean,
                                   const Tensor *invstd, const Tensor *dy, double *sums, Tensor *dgamma,
                                   Tensor *dbeta)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, mean);
    cuda_layout_in(ctx, invstd);
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dgamma);
    cuda_layout_out(ctx, dbeta);
    cuda_batch_norm_backward_reduce(ctx, g, x, mean, invstd, dy, sums, dgamma, dbeta);
}

void cl_batch_norm_backward_dx(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                               const Tensor *mean, const Tensor *invstd, const Tensor *dy, const double *sums,
                               double count, Tensor *dx)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, gamma);
    cuda_layout_in(ctx, mean);
    cuda_layout_in(ctx, invstd);
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_batch_norm_backward_dx(ctx, g, x, gamma, mean, invstd, dy, sums, count, dx);
}

void cl_unary_backward(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, const Tensor *y, const Tensor *dy, Tensor *dx)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, y);
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_unary_backward(ctx, kind, alpha, x, y, dy, dx);
}

void cl_binary_backward(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, const Tensor *dy, Tensor *da, Tensor *db)
{
    cuda_layout_in(ctx, a);
    cuda_layout_in(ctx, b);
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, da);
    cuda_layout_out(ctx, db);
    cuda_binary_backward(ctx, kind, a, b, dy, da, db);
}

void cl_reduce_forward(Ctx *ctx, const ReduceGeom *g, const Tensor *x, Tensor *y)
{
    cuda_layout_in(ctx, x);
    cuda_layout_out(ctx, y);
    cuda_reduce_forward(ctx, g, x, y);
}

void cl_reduce_backward(Ctx *ctx, const ReduceGeom *g, const Tensor *dy, Tensor *dx)
{
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_reduce_backward(ctx, g, dy, dx);
}

void cl_max_pool_forward(Ctx *ctx, const PoolGeom *g, const Tensor *x, Tensor *y, Tensor *argmax)
{
    cuda_layout_in(ctx, x);
    cuda_layout_out(ctx, y);
    cuda_layout_out(ctx, argmax);
    cuda_max_pool_forward(ctx, g, x, y, argmax);
}

void cl_max_pool_backward(Ctx *ctx, const PoolGeom *g, const Tensor *argmax, const Tensor *dy, Tensor *dx)
{
    cuda_layout_in(ctx, argmax);
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_max_pool_backward(ctx, g, argmax, dy, dx);
}

void cl_linear_forward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *b, Tensor *y)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, w);
    cuda_layout_in(ctx, b);
    cuda_layout_out(ctx, y);
    cuda_linear_forward(ctx, g, x, w, b, y);
}

void cl_linear_backward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy, Tensor *dx, Tensor *dw, Tensor *db)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, w);
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_layout_out(ctx, dw);
    cuda_layout_out(ctx, db);
    cuda_linear_backward(ctx, g, x, w, dy, dx, dw, db);
}

void cl_softmax_forward(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *x, Tensor *y)
{
    cuda_layout_in(ctx, x);
    cuda_layout_out(ctx, y);
    cuda_softmax_forward(ctx, rows, cols, log, x, y);
}

void cl_softmax_backward(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *y, const Tensor *dy, Tensor *dx)
{
    cuda_layout_in(ctx, y);
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_softmax_backward(ctx, rows, cols, log, y, dy, dx);
}

void cl_cross_entropy_forward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *logits, const Tensor *labels, Tensor *loss, Tensor *probs)
{
    cuda_layout_in(ctx, logits);
    cuda_layout_in(ctx, labels);
    cuda_layout_out(ctx, loss);
    cuda_layout_out(ctx, probs);
    cuda_cross_entropy_forward(ctx, rows, cols, logits, labels, loss, probs);
}

void cl_cross_entropy_backward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *probs, const Tensor *labels, const Tensor *dloss, Tensor *dlogits)
{
    cuda_layout_in(ctx, probs);
    cuda_layout_in(ctx, labels);
    cuda_layout_in(ctx, dloss);
    cuda_layout_out(ctx, dlogits);
    cuda_cross_entropy_backward(ctx, rows, cols, probs, labels, dloss, dlogits);
}

void cl_gather_forward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *x, const Tensor *idx, Tensor *y)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, idx);
    cuda_layout_out(ctx, y);
    cuda_gather_forward(ctx, B, T, F, R, x, idx, y);
}

void cl_gather_backward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *idx, const Tensor *dy, Tensor *dx)
{
    cuda_layout_in(ctx, idx);
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_gather_backward(ctx, B, T, F, R, idx, dy, dx);
}

void cl_affine_grid_forward(Ctx *ctx, int N, int H, int W, const Tensor *theta, Tensor *grid)
{
    cuda_layout_in(ctx, theta);
    cuda_layout_out(ctx, grid);
    cuda_affine_grid_forward(ctx, N, H, W, theta, grid);
}

void cl_affine_grid_backward(Ctx *ctx, int N, int H, int W, const Tensor *dgrid, Tensor *dtheta)
{
    cuda_layout_in(ctx, dgrid);
    cuda_layout_out(ctx, dtheta);
    cuda_affine_grid_backward(ctx, N, H, W, dgrid, dtheta);
}

void cl_grid_sample_forward(Ctx *ctx, const Tensor *x, const Tensor *grid, Tensor *y)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, grid);
    cuda_layout_out(ctx, y);
    cuda_grid_sample_forward(ctx, x, grid, y);
}

void cl_grid_sample_backward(Ctx *ctx, const Tensor *x, const Tensor *grid, const Tensor *dy, Tensor *dx, Tensor *dgrid)
{
    cuda_layout_in(ctx, x);
    cuda_layout_in(ctx, grid);
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_layout_out(ctx, dgrid);
    cuda_grid_sample_backward(ctx, x, grid, dy, dx, dgrid);
}

void cl_temporal_shift_backward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div, const Tensor *dy, Tensor *dx)
{
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_temporal_shift_backward(ctx, N, T, C, HW, fold_div, dy, dx);
}

void cl_interp_linear_forward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *x, Tensor *y)
{
    cuda_layout_in(ctx, x);
    cuda_layout_out(ctx, y);
    cuda_interp_linear_forward(ctx, rows, Tin, Tout, x, y);
}

void cl_interp_linear_backward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *dy, Tensor *dx)
{
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_interp_linear_backward(ctx, rows, Tin, Tout, dy, dx);
}

void cl_dropout_forward(Ctx *ctx, float p, const RngStream *stream, const Tensor *x, Tensor *y)
{
    cuda_layout_in(ctx, x);
    cuda_layout_out(ctx, y);
    cuda_dropout_forward(ctx, p, stream, x, y);
}

void cl_dropout_backward(Ctx *ctx, float p, const RngStream *stream, const Tensor *dy, Tensor *dx)
{
    cuda_layout_in(ctx, dy);
    cuda_layout_out(ctx, dx);
    cuda_dropout_backward(ctx, p, stream, dy, dx);
}

void cl_quantile_sample(Ctx *ctx, int64_t B, int G, int T, int F, const Tensor *w, const Tensor *u, Tensor *idx)
{
    cuda_layout_in(ctx, w);
    cuda_layout_in(ctx, u);
    cuda_layout_out(ctx, idx);
    cuda_quantile_sample(ctx, B, G, T, F, w, u, idx);
}

void cl_box_transform(Ctx *ctx, const BoxGeom *g, int64_t N, const Tensor *a, Tensor *boxes, Tensor *theta)
{
    cuda_layout_in(ctx, a);
    cuda_layout_out(ctx, boxes);
    cuda_layout_out(ctx, theta);
    cuda_box_transform(ctx, g, N, a, boxes, theta);
}
