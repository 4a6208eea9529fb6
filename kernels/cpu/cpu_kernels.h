/* cpu_kernels.h — the CPU backend's kernels, one declaration per op-table slot.
 *
 * Owns nothing; lists what each file of kernels/cpu provides. Where a fast path exists, the
 * plain reference is exported too (`_ref`) so tests can compare them; the slot function picks
 * the fast path unless ctx->cpu_reference is set.
 */
#ifndef FOCUSBENCH_CPU_KERNELS_H
#define FOCUSBENCH_CPU_KERNELS_H

#include "../backend.h"

/* cpu_memory.c */
void cpu_fill(Ctx *ctx, Tensor *t, float value);
void cpu_axpy(Ctx *ctx, float alpha, const Tensor *x, Tensor *y);
void cpu_copy_block(Ctx *ctx, const Tensor *src, int64_t src_off, int64_t src_ld, Tensor *dst, int64_t dst_off,
                    int64_t dst_ld, int64_t rows, int64_t cols, bool accumulate);
void cpu_permute(Ctx *ctx, const Tensor *src, const int *perm, Tensor *dst, bool accumulate);

/* cpu_elementwise.c */
void cpu_unary_forward(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, Tensor *y);
void cpu_unary_backward(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, const Tensor *y,
                        const Tensor *dy, Tensor *dx);
void cpu_binary_forward(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, Tensor *y);
void cpu_binary_backward(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, const Tensor *dy,
                         Tensor *da, Tensor *db);
void cpu_reduce_forward(Ctx *ctx, const ReduceGeom *g, const Tensor *x, Tensor *y);
void cpu_reduce_backward(Ctx *ctx, const ReduceGeom *g, const Tensor *dy, Tensor *dx);
void cpu_dropout_forward(Ctx *ctx, float p, const RngStream *stream, const Tensor *x, Tensor *y);
void cpu_dropout_backward(Ctx *ctx, float p, const RngStream *stream, const Tensor *dy, Tensor *dx);

/* cpu_conv.c: reference = direct loops; fast = oneDNN (dense forward, cpu_conv_dnnl.c), im2col/vol2col
 * + BLAS sgemm otherwise, direct depthwise kernels */
void cpu_conv_forward_ref(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                          Tensor *y);
void cpu_conv_backward_ref(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                           Tensor *dx, Tensor *dw, Tensor *db);
void cpu_conv_forward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b, Tensor *y);
void cpu_conv_backward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                       Tensor *dx, Tensor *dw, Tensor *db);

/* cpu_linear.c: reference = loops; fast = BLAS sgemm */
void cpu_linear_forward_ref(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                            Tensor *y);
void cpu_linear_backward_ref(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                             Tensor *dx, Tensor *dw, Tensor *db);
void cpu_linear_forward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                        Tensor *y);
void cpu_linear_backward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                         Tensor *dx, Tensor *dw, Tensor *db);

/* cpu_norm.c */
void cpu_batch_norm_forward_train(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                  const Tensor *beta, Tensor *running_mean, Tensor *running_var,
                                  const NormEpilogue *ep, Tensor *y, Tensor *save_mean, Tensor *save_invstd);
void cpu_batch_norm_forward_eval(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                 const Tensor *beta, const Tensor *running_mean, const Tensor *running_var,
                                 Tensor *y);
void cpu_batch_norm_backward(Ctx *ctx, const NormGeom *g, bool batch_stats, const Tensor *x, const Tensor *gamma,
                             const Tensor *mean, const Tensor *invstd, const NormEpilogue *ep, const Tensor *y,
                             const Tensor *dy, Tensor *dx, Tensor *dgamma, Tensor *dbeta, Tensor *dresidual);

/* cpu_pool.c */
void cpu_max_pool_forward(Ctx *ctx, const PoolGeom *g, const Tensor *x, Tensor *y, Tensor *argmax);
void cpu_max_pool_backward(Ctx *ctx, const PoolGeom *g, const Tensor *argmax, const Tensor *dy, Tensor *dx);

/* cpu_softmax.c */
void cpu_softmax_forward(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *x, Tensor *y);
void cpu_softmax_backward(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *y, const Tensor *dy,
                          Tensor *dx);
void cpu_cross_entropy_forward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *logits, const Tensor *labels,
                               Tensor *loss, Tensor *probs);
void cpu_cross_entropy_backward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *probs, const Tensor *labels,
                                const Tensor *dloss, Tensor *dlogits);

/* cpu_spatial.c */
void cpu_affine_grid_forward(Ctx *ctx, int N, int H, int W, const Tensor *theta, Tensor *grid);
void cpu_affine_grid_backward(Ctx *ctx, int N, int H, int W, const Tensor *dgrid, Tensor *dtheta);
void cpu_grid_sample_forward(Ctx *ctx, const Tensor *x, const Tensor *grid, Tensor *y);
void cpu_grid_sample_backward(Ctx *ctx, const Tensor *x, const Tensor *grid, const Tensor *dy, Tensor *dx,
                              Tensor *dgrid);

/* cpu_time.c */
void cpu_temporal_shift_forward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div, const Tensor *x,
                                Tensor *y);
void cpu_temporal_shift_backward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div,
                                 const Tensor *dy, Tensor *dx);
void cpu_interp_linear_forward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *x, Tensor *y);
void cpu_interp_linear_backward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *dy, Tensor *dx);
void cpu_gather_forward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *x, const Tensor *idx,
                        Tensor *y);
void cpu_gather_backward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *idx,
                         const Tensor *dy, Tensor *dx);

/* cpu_conv_fused.c: y = act(conv(x, w) + b + residual) as cpu_conv_forward, then the residual
 * add and the activation with cpu_binary / cpu_unary's formulas (act: an OpAct value) */
void cpu_conv_bias_act_forward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                               const Tensor *residual, int act, Tensor *y);

/* cpu_optim.c: the optimizer's in-place updates on raw host arrays (backend.h gives the arithmetic) */
void cpu_sgd_update(Ctx *ctx, int64_t n, float *p, const float *g, float *buf, float neg_lr, float wd,
                    float momentum, bool fresh);
double cpu_sum_squares(Ctx *ctx, int64_t n, const float *x);
void cpu_scale_inplace(Ctx *ctx, int64_t n, float *x, double coef);

/* cpu_norm.c: synchronised batch norm's pieces (backend.h's last block; host double arrays) */
void cpu_batch_norm_stats(Ctx *ctx, const NormGeom *g, const Tensor *x, double *stats);
void cpu_batch_norm_forward_stats(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                  const Tensor *beta, const double *mean, const double *var, double count,
                                  Tensor *running_mean, Tensor *running_var, Tensor *y, Tensor *save_mean,
                                  Tensor *save_invstd);
void cpu_batch_norm_backward_reduce(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *mean,
                                    const Tensor *invstd, const Tensor *dy, double *sums, Tensor *dgamma,
                                    Tensor *dbeta);
void cpu_batch_norm_backward_dx(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                const Tensor *mean, const Tensor *invstd, const Tensor *dy, const double *sums,
                                double count, Tensor *dx);

#endif
