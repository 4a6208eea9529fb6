/* cuda_internal.h — what the files of kernels/cuda share: the backend state, the device arenas,
 * the checked-call macros and every slot / launcher each file provides (one block per file).
 *
 * Included by the C files (compiled by gcc) and the .cu files (nvcc); everything is C linkage.
 * Not part of the public API (that is cuda_backend.h).
 *
 * Error convention: every CUDA runtime, cuDNN and cuBLASLt call goes through CUDA_OK / CUDNN_OK /
 * CUBLAS_OK, and every kernel launch is followed by LAUNCH_OK. On failure they set the context's
 * sticky error — "file:line: call failed: <library's error string>" — and return false; the
 * caller returns at once. Slots start with `if (!cuda_ready(ctx)) return;` so nothing runs
 * after the first failure.
 */
#ifndef FOCUSBENCH_CUDA_INTERNAL_H
#define FOCUSBENCH_CUDA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/backend.h"
#include "kernels/cuda/cuda_backend.h"

/* ---- device arenas (cuda_context.c) ----------------------------------------------------- */

enum { CUDA_ALIGN = 256 }; /* every device allocation: cuDNN wants 16 B, vector loads 16 B */

typedef struct {
    void *ptr;
    size_t cap, top;
} DevBlock;

/* Bump allocation in blocks[0]; a pass that outgrows it chains more blocks, and the next reset
 * replaces them all by one block of the high-water size (as kernels/arena.c on the host). */
typedef struct {
    const char *name;
    DevBlock *blocks;
    int n_blocks, cap_blocks;
    size_t used, high_water;
    size_t mallocs; /* cudaMalloc calls */
} DevArena;

typedef struct ConvPlanCache ConvPlanCache; /* cuda_conv.c */
typedef struct GemmPlanCache GemmPlanCache; /* cuda_linear.c */

typedef struct {
    ParamSet *ps;
    void *d_data, *d_grad;            /* device copies of ps->data_block / ps->grad_block */
    size_t data_bytes, grad_bytes;
    void **host_data, **host_grad;    /* per tensor: its host pointers, to restore on release */
} CudaUpload;

/* A bf16 channels-last copy (N, S, C) of the f32 (N, C, S) activation at [base, base + bytes)
 * (cuda_layout.c); canon: the f32 data is current too. */
typedef struct {
    const char *base;
    size_t bytes;
    void *bf16;
    int64_t N, C, S;
    bool canon;
} CudaShadow;

/* An f32 conv output whose epilogue (bias, activation) is still to be applied in place
 * (cuda_layout.c): the f32 data at [base, base + bytes) is the raw conv output (N, K, P). */
typedef struct {
    const char *base;
    size_t bytes;
    const float *bias;
    int act;
    int64_t N, K, P;
} CudaPendingEpilogue;

typedef struct CudaState {
    CudaPrecision precision;
    CudaConvPath conv_path;
    bool depthwise_custom;
    bool poison;
    bool sync_each_launch;
    bool verbose; /* FOCUSBENCH_CUDA_VERBOSE=1: print each new conv / GEMM plan on stderr */
    bool conv_autotune; /* time the candidate cuDNN plans of each new conv shape (cuda_conv.c) */
    bool conv_nondeterministic; /* cuDNN engines whose results vary run to run are acceptable */
    bool conv_custom;           /* FP32 1x1, 3x3 and stem convs on cuda_conv_sgemm.cu's / cuda_conv_stem.cu's kernels */
    bool conv3x3;               /* ... the 3x3s among them (off: those on cuDNN; A/B runs) */
    int conv1x1_force;          /* >= 0: that tile config of the SGEMM kernel for every conv it runs */
    bool expand_dw_all;         /* the fused expand + depthwise kernel for every shape it suits (tests) */
    CudaDwProjectMode dw_project; /* FP32 depthwise + projection: unfused, fused by the rule, or always */
    CudaSkinnyMode skinny_linear; /* FP32 few-row linear forwards: cuBLASLt or the skinny kernel */
    int device;
    int sm_count;
    size_t cudnn_version;
    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasLtHandle_t lt;
    void *lt_ws; /* cuBLASLt workspace */
    size_t lt_ws_bytes;
    DevArena arena;   /* activations and gradients of a pass */
    DevArena scratch; /* per-op workspace, released at the end of each op */
    ConvPlanCache *conv;
    GemmPlanCache *gemm;
    CudaUpload *uploads;
    int n_uploads, cap_uploads;
    char last_conv[160];
    bool resident; /* BF16: keep activations as bf16 channels-last shadows (cuda_layout.c) */
    CudaShadow *shadows;
    int n_shadows, cap_shadows;
    bool defer_epilogue; /* FP32/TF32: conv epilogues wait for their reader (cuda_layout.c) */
    CudaPendingEpilogue *pending;
    int n_pending, cap_pending;
    char last_linear[96]; /* how the last linear forward ran (cuda_linear.c; empty: none yet) */
} CudaState;

static inline CudaState *cuda_state(const Ctx *ctx) { return (CudaState *)ctx->backend_state; }

/* The context is healthy and has a device state: slots may run. */
static inline bool cuda_ready(const Ctx *ctx) { return !ctx->failed && ctx->backend_state; }

static inline cudaStream_t cuda_stream_of(const Ctx *ctx) { return cuda_state(ctx)->stream; }

/* Per-op device workspace (NULL with the context's error set on failure). Poisoned when
 * debugging. Released — all of it — by cuda_scratch_release at the end of the op. */
void *cuda_scratch(Ctx *ctx, size_t bytes, const char *what);
/* Room for item n of a host array of *cap items of item_size bytes that doubles as it grows
 * (from `first`): the array, possibly moved (the caller stores it back), or NULL when out of host
 * memory (the context's error names `what`; the old array stays valid). */
void *cuda_grow(Ctx *ctx, void *items, int *cap, int n, size_t item_size, int first, const char *what);
void cuda_scratch_release(Ctx *ctx);
/* A block of the activation arena (lives until the next pass); NULL with the error set. */
void *cuda_arena_alloc(Ctx *ctx, size_t bytes, const char *what);

/* ---- checked calls (cuda_context.c) ------------------------------------------------------ */

bool cuda_check_rt(Ctx *ctx, cudaError_t e, const char *call, const char *file, int line);
bool cuda_check_dnn(Ctx *ctx, cudnnStatus_t s, const char *call, const char *file, int line);
bool cuda_check_blas(Ctx *ctx, cublasStatus_t s, const char *call, const char *file, int line);
/* After a kernel launch: the launch error, and with sync_each_launch the execution error too. */
bool cuda_check_launch(Ctx *ctx, const char *kernel, const char *file, int line);

#define CUDA_OK(ctx, call) cuda_check_rt((ctx), (call), #call, __FILE__, __LINE__)
#define CUDNN_OK(ctx, call) cuda_check_dnn((ctx), (call), #call, __FILE__, __LINE__)
#define CUBLAS_OK(ctx, call) cuda_check_blas((ctx), (call), #call, __FILE__, __LINE__)
#define LAUNCH_OK(ctx, kernel) cuda_check_launch((ctx), (kernel), __FILE__, __LINE__)
/* After a cuDNN / cuBLASLt call that returned success: libraries may leave a benign error of
 * their own probing in the runtime's last-error slot, so it is cleared (not reported, and not
 * blamed on our next kernel); with sync_each_launch the work is waited for and checked. */
bool cuda_check_library(Ctx *ctx, const char *call, const char *file, int line);
#define LIBRARY_OK(ctx, call) cuda_check_library((ctx), (call), __FILE__, __LINE__)

/* ---- cuda_memory.cu ---------------------------------------------------------------------- */
void cuda_fill(Ctx *ctx, Tensor *t, float value);
void cuda_axpy(Ctx *ctx, float alpha, const Tensor *x, Tensor *y);
void cuda_copy_block(Ctx *ctx, const Tensor *src, int64_t src_off, int64_t src_ld, Tensor *dst, int64_t dst_off,
                     int64_t dst_ld, int64_t rows, int64_t cols, bool accumulate);
void cuda_permute(Ctx *ctx, const Tensor *src, const int *perm, Tensor *dst, bool accumulate);
/* Raw helpers for the other files: y[i] += x[i] (n floats); p[i] = value. */
bool cuda_launch_add(Ctx *ctx, const float *x, float *y, int64_t n);
bool cuda_launch_fill(Ctx *ctx, float *p, int64_t n, float value);

/* ---- cuda_elementwise.cu ----------------------------------------------------------------- */
void cuda_unary_forward(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, Tensor *y);
void cuda_unary_backward(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, const Tensor *y,
                         const Tensor *dy, Tensor *dx);
void cuda_binary_forward(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, Tensor *y);
void cuda_binary_backward(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, const Tensor *dy,
                          Tensor *da, Tensor *db);
void cuda_reduce_forward(Ctx *ctx, const ReduceGeom *g, const Tensor *x, Tensor *y);
void cuda_reduce_backward(Ctx *ctx, const ReduceGeom *g, const Tensor *dy, Tensor *dx);
void cuda_dropout_forward(Ctx *ctx, float p, const RngStream *stream, const Tensor *x, Tensor *y);
void cuda_dropout_backward(Ctx *ctx, float p, const RngStream *stream, const Tensor *dy, Tensor *dx);
/* out[c] += Σ_r in[r·cols + c] (rows in order, double accumulation): linear's bias gradient. */
bool cuda_launch_column_sums(Ctx *ctx, const float *in, int64_t rows, int64_t cols, float *out);

/* ---- cuda_norm.cu ------------------------------------------------------------------------ */
void cuda_batch_norm_forward_train(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                   const Tensor *beta, Tensor *running_mean, Tensor *running_var,
                                   const NormEpilogue *ep, Tensor *y, Tensor *save_mean, Tensor *save_invstd);
void cuda_batch_norm_forward_eval(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                  const Tensor *beta, const Tensor *running_mean, const Tensor *running_var,
                                  Tensor *y);
void cuda_batch_norm_backward(Ctx *ctx, const NormGeom *g, bool batch_stats, const Tensor *x, const Tensor *gamma,
                              const Tensor *mean, const Tensor *invstd, const NormEpilogue *ep, const Tensor *y,
                              const Tensor *dy, Tensor *dx, Tensor *dgamma, Tensor *dbeta, Tensor *dresidual);

/* ---- cuda_pool.cu ------------------------------------------------------------------------ */
void cuda_max_pool_forward(Ctx *ctx, const PoolGeom *g, const Tensor *x, Tensor *y, Tensor *argmax);
void cuda_max_pool_backward(Ctx *ctx, const PoolGeom *g, const Tensor *argmax, const Tensor *dy, Tensor *dx);

/* ---- cuda_softmax.cu --------------------------------------------------------------------- */
void cuda_softmax_forward(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *x, Tensor *y);
void cuda_softmax_backward(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *y, const Tensor *dy,
                           Tensor *dx);
void cuda_cross_entropy_forward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *logits, const Tensor *labels,
                                Tensor *loss, Tensor *probs);
void cuda_cross_entropy_backward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *probs, const Tensor *labels,
                                 const Tensor *dloss, Tensor *dlogits);

/* ---- cuda_spatial.cu --------------------------------------------------------------------- */
void cuda_affine_grid_forward(Ctx *ctx, int N, int H, int W, const Tensor *theta, Tensor *grid);
void cuda_affine_grid_backward(Ctx *ctx, int N, int H, int W, const Tensor *dgrid, Tensor *dtheta);
void cuda_grid_sample_forward(Ctx *ctx, const Tensor *x, const Tensor *grid, Tensor *y);
void cuda_grid_sample_backward(Ctx *ctx, const Tensor *x, const Tensor *grid, const Tensor *dy, Tensor *dx,
                               Tensor *dgrid);

/* ---- cuda_time.cu ------------------------------------------------------------------------ */
void cuda_temporal_shift_forward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div,
                                 const Tensor *x, Tensor *y);
void cuda_temporal_shift_backward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div,
                                  const Tensor *dy, Tensor *dx);
void cuda_interp_linear_forward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *x, Tensor *y);
void cuda_interp_linear_backward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *dy, Tensor *dx);
void cuda_gather_forward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *x, const Tensor *idx,
                         Tensor *y);
void cuda_gather_backward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *idx,
                          const Tensor *dy, Tensor *dx);

/* ---- cuda_sampler.cu (the model's host steps on the device, for CUDA graphs) --------------- */
void cuda_quantile_sample(Ctx *ctx, int64_t B, int G, int T, int F, const Tensor *w, const Tensor *u, Tensor *idx);
void cuda_box_transform(Ctx *ctx, const BoxGeom *g, int64_t N, const Tensor *a, Tensor *boxes, Tensor *theta);

/* ---- cuda_optim.cu (the optimizer's in-place updates, backend.h) ------------------------- */
void cuda_sgd_update(Ctx *ctx, int64_t n, float *p, const float *g, float *buf, float neg_lr, float wd,
                     float momentum, bool fresh);
double cuda_sum_squares(Ctx *ctx, int64_t n, const float *x);
void cuda_scale_inplace(Ctx *ctx, int64_t n, float *x, double coef);

/* ---- cuda_conv.c (cuDNN plans + dispatch) ------------------------------------------------ */
void cuda_conv_forward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b, Tensor *y);
void cuda_conv_backward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                        Tensor *dx, Tensor *dw, Tensor *db);
void cuda_conv_bias_act_forward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                                const Tensor *residual, int act, Tensor *y);
ConvPlanCache *cuda_conv_cache_create(void);
void cuda_conv_cache_destroy(ConvPlanCache *c);
void cuda_conv_cache_stats(const ConvPlanCache *c, int *plans, int *cudnn_plans);

/* ---- cuda_conv_kernels.cu (direct convolution, bias, layout conversion) ------------------ */
/* y (N, K, To, Ho, Wo) = conv(x, w) + b (b may be NULL); overwrites y. */
bool cuda_launch_conv_direct_forward(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b,
                                     float *y);
/* dx (N, C, T, H, W) += convᵀ(dy, w). */
bool cuda_launch_conv_direct_backward_data(Ctx *ctx, const ConvGeom *g, const float *w, const float *dy, float *dx);
/* dw (K, C/groups, kt, kh, kw) += Σ_n Σ_out dy · x (deterministic block reductions). */
bool cuda_launch_conv_direct_backward_filter(Ctx *ctx, const ConvGeom *g, const float *x, const float *dy,
                                             float *dw);
/* y (N, K, P) += b[k]. */
bool cuda_launch_conv_bias_add(Ctx *ctx, const float *b, float *y, int64_t N, int64_t K, int64_t P);
/* db[k] += Σ_n Σ_p dy[n, k, p]. */
bool cuda_launch_conv_bias_grad(Ctx *ctx, const float *dy, float *db, int64_t N, int64_t K, int64_t P);
/* dst (N, S, C) bf16 = src (N, C, S) f32: channels-last copy in bfloat16 (round to nearest even). */
bool cuda_launch_to_bf16_channels_last(Ctx *ctx, const float *src, void *dst, int64_t N, int64_t C, int64_t S);
/* dst (N, C, S) f32 (+)= src (N, S, C) bf16 (+ bias[c] when bias is not NULL). */
bool cuda_launch_from_bf16_channels_last(Ctx *ctx, const void *src, float *dst, int64_t N, int64_t C, int64_t S,
                                         const float *bias, bool accumulate);

/* ---- cuda_conv_fused.cu (fused epilogues, depthwise 3x3, tiled bf16 layout conversions) --- */
/* act: an OpAct value (0 none, 1 ReLU, 2 ReLU6). Epilogue order: (v + b[k]) + r, then act. */
/* y (N, K, P) = act(y + b[k] + r) in place; b and r may be NULL (nothing to do: no launch). */
bool cuda_launch_conv_epilogue(Ctx *ctx, float *y, const float *b, const float *r, int act, int64_t N, int64_t K,
                               int64_t P);
/* Whether cuda_launch_dwconv2d_forward takes this geometry: depthwise (groups == C == K), 2-D,
 * 3x3, stride 1 or 2 in both dims, dilation 1, tensors under 2^31 elements. */
bool cuda_dwconv2d_supported(const ConvGeom *g);
/* y (N, C, Ho, Wo) = act(dwconv3x3(x', w) + b + r) (b, r may be NULL); overwrites y. x' = x, or
 * with in_bias, x' = in_act(x + in_bias[c]) element by element (a deferred epilogue of the conv
 * that wrote x, applied as it is read; padding stays 0). */
bool cuda_launch_dwconv2d_forward(Ctx *ctx, const ConvGeom *g, const float *x, const float *in_bias, int in_act,
                                  const float *w, const float *b, const float *r, int act, float *y);
/* dst (N, S, C) bf16 = src (N, C, S) f32 (round to nearest even). */
bool cuda_launch_to_bf16_cl_tiled(Ctx *ctx, const float *src, void *dst, int64_t N, int64_t C, int64_t S);
/* dst (N, C, S) f32 = act(src (N, S, C) bf16 + bias[c] + r) (bias, r may be NULL), or, when
 * accumulate, dst += src (bias, r and act ignored). */
bool cuda_launch_from_bf16_cl_tiled(Ctx *ctx, const void *src, float *dst, int64_t N, int64_t C, int64_t S,
                                    const float *bias, const float *r, int act, bool accumulate);

/* ---- cuda_layout.c (bf16 channels-last activations between layers) ----------------------- */
void cuda_shadow_reset(Ctx *ctx);
/* FP32 / TF32, deferral on, not recording: a fused conv may leave its epilogue pending. */
bool cuda_epilogue_deferrable(const Ctx *ctx);
/* Registers t (the raw conv output (N, K, P)) as waiting for act(t + bias[k]); the first reader
 * that is not cuda_epilogue_pending's caller gets it applied in place (cuda_layout_in). */
bool cuda_epilogue_defer(Ctx *ctx, const Tensor *t, const float *bias, int act, int64_t N, int64_t K, int64_t P);
/* The pending epilogue of exactly t, or NULL; it stays registered (other readers still get it
 * applied). Valid until the next defer or layout call. */
const CudaPendingEpilogue *cuda_epilogue_pending(const Ctx *ctx, const Tensor *t);
/* BF16 precision, resident mode on, not recording: fused convs may leave shadows. */
bool cuda_resident_active(const Ctx *ctx);
/* The shadow of exactly t (same address and size), or NULL. Valid until the next add/drop. */
const CudaShadow *cuda_shadow_of(const Ctx *ctx, const Tensor *t);
bool cuda_shadow_add(Ctx *ctx, const Tensor *t, void *bf16, int64_t N, int64_t C, int64_t S);
/* Registers bf16 as a channels-last copy of t whose f32 data stays current (canon): training keeps
 * a conv input's copy for the weight gradient (cuda_conv.c). */
bool cuda_shadow_keep(Ctx *ctx, const Tensor *t, void *bf16, int64_t N, int64_t C, int64_t S);
/* Before reading t's f32 data: converts stale shadows overlapping it back (once). */
void cuda_layout_in(Ctx *ctx, const Tensor *t);
/* Before writing t's f32 data: as cuda_layout_in, then forgets the overlapping shadows. */
void cuda_layout_out(Ctx *ctx, const Tensor *t);
void cuda_layout_in_range(Ctx *ctx, const void *p, size_t bytes);
void cuda_layout_out_range(Ctx *ctx, const void *p, size_t bytes);
void cl_unary_forward(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, Tensor *y);
void cl_binary_forward(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, Tensor *y);
void cl_temporal_shift_forward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div, const Tensor *x,
                               Tensor *y);
/* The wrappers of every other slot (canonical inputs, shadows of outputs dropped). */
void cl_fill(Ctx *ctx, Tensor *t, float value);
void cl_axpy(Ctx *ctx, float alpha, const Tensor *x, Tensor *y);
void cl_copy_block(Ctx *ctx, const Tensor *src, int64_t src_off, int64_t src_ld, Tensor *dst, int64_t dst_off, int64_t dst_ld, int64_t rows, int64_t cols, bool accumulate);
void cl_permute(Ctx *ctx, const Tensor *src, const int *perm, Tensor *dst, bool accumulate);
void cl_conv_backward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy, Tensor *dx, Tensor *dw, Tensor *db);
void cl_batch_norm_forward_train(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma, const Tensor *beta, Tensor *running_mean, Tensor *running_var, const NormEpilogue *ep, Tensor *y, Tensor *save_mean, Tensor *save_invstd);
void cl_batch_norm_forward_eval(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma, const Tensor *beta, const Tensor *running_mean, const Tensor *running_var, Tensor *y);
void cl_batch_norm_backward(Ctx *ctx, const NormGeom *g, bool batch_stats, const Tensor *x, const Tensor *gamma, const Tensor *mean, const Tensor *invstd, const NormEpilogue *ep, const Tensor *y, const Tensor *dy, Tensor *dx, Tensor *dgamma, Tensor *dbeta, Tensor *dresidual);
void cl_unary_backward(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, const Tensor *y, const Tensor *dy, Tensor *dx);
void cl_binary_backward(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, const Tensor *dy, Tensor *da, Tensor *db);
void cl_reduce_forward(Ctx *ctx, const ReduceGeom *g, const Tensor *x, Tensor *y);
void cl_reduce_backward(Ctx *ctx, const ReduceGeom *g, const Tensor *dy, Tensor *dx);
void cl_max_pool_forward(Ctx *ctx, const PoolGeom *g, const Tensor *x, Tensor *y, Tensor *argmax);
void cl_max_pool_backward(Ctx *ctx, const PoolGeom *g, const Tensor *argmax, const Tensor *dy, Tensor *dx);
void cl_linear_forward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *b, Tensor *y);
void cl_linear_backward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy, Tensor *dx, Tensor *dw, Tensor *db);
void cl_softmax_forward(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *x, Tensor *y);
void cl_softmax_backward(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *y, const Tensor *dy, Tensor *dx);
void cl_cross_entropy_forward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *logits, const Tensor *labels, Tensor *loss, Tensor *probs);
void cl_cross_entropy_backward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *probs, const Tensor *labels, const Tensor *dloss, Tensor *dlogits);
void cl_gather_forward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *x, const Tensor *idx, Tensor *y);
void cl_gather_backward(Ctx *ctx, int64_t B, int64_t T, int64_t F, int64_t R, const Tensor *idx, const Tensor *dy, Tensor *dx);
void cl_affine_grid_forward(Ctx *ctx, int N, int H, int W, const Tensor *theta, Tensor *grid);
void cl_affine_grid_backward(Ctx *ctx, int N, int H, int W, const Tensor *dgrid, Tensor *dtheta);
void cl_grid_sample_forward(Ctx *ctx, const Tensor *x, const Tensor *grid, Tensor *y);
void cl_grid_sample_backward(Ctx *ctx, const Tensor *x, const Tensor *grid, const Tensor *dy, Tensor *dx, Tensor *dgrid);
void cl_temporal_shift_backward(Ctx *ctx, int64_t N, int T, int64_t C, int64_t HW, int fold_div, const Tensor *dy, Tensor *dx);
void cl_interp_linear_forward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *x, Tensor *y);
void cl_interp_linear_backward(Ctx *ctx, int64_t rows, int Tin, int Tout, const Tensor *dy, Tensor *dx);
void cl_dropout_forward(Ctx *ctx, float p, const RngStream *stream, const Tensor *x, Tensor *y);
void cl_dropout_backward(Ctx *ctx, float p, const RngStream *stream, const Tensor *dy, Tensor *dx);
void cl_quantile_sample(Ctx *ctx, int64_t B, int G, int T, int F, const Tensor *w, const Tensor *u, Tensor *idx);
void cl_box_transform(Ctx *ctx, const BoxGeom *g, int64_t N, const Tensor *a, Tensor *boxes, Tensor *theta);

/* ---- cuda_layout_kernels.cu (kernels on bf16 (N, S, C) shadows) ---------------------------- */
/* y (rows, C) = act(y + b[c] + r) in place; b (C) f32 and r (rows, C) bf16 may be NULL. */
bool cuda_launch_nhwc_epilogue(Ctx *ctx, void *y, const float *b, const void *r, int act, int64_t rows, int64_t C);
/* Depthwise 3x3 (cuda_dwconv2d_supported geometry, C even): x (N, H, W, C) bf16, w (C, 1, 3, 3)
 * f32, b (C) or NULL → y (N, Ho, Wo, C) bf16 = act(conv + b). */
bool cuda_launch_dw3x3_nhwc(Ctx *ctx, const ConvGeom *g, const void *x, const float *w, const float *b, int act,
                            void *y);
/* y = act(a + b) (b may be NULL) over n bf16 elements. */
bool cuda_launch_bf16_add_act(Ctx *ctx, const void *a, const void *b, void *y, int act, int64_t n);
/* TSM shift of x (N·T, S, C) bf16 into y. */
bool cuda_launch_tshift_nhwc(Ctx *ctx, const void *x, void *y, int64_t N, int T, int64_t S, int64_t C, int fold_div);

/* ---- cuda_linear.c (cuBLASLt) ------------------------------------------------------------ */
void cuda_linear_forward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                         Tensor *y);
void cuda_linear_backward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                          Tensor *dx, Tensor *dw, Tensor *db);
GemmPlanCache *cuda_gemm_cache_create(void);
void cuda_gemm_cache_destroy(GemmPlanCache *c);
int cuda_gemm_cache_size(const GemmPlanCache *c);

/* ---- cuda_linear_skinny.cu (FP32 linear forward for a few rows and a large weight) ---------- */
/* The sizes of one skinny linear forward: column tiles of 40 outputs × slices of kc along k;
 * tm: rows of x per lane (the block covers 4·tm >= M rows). */
typedef struct {
    int M, N, K, kc, slices, tiles, tm;
} CudaSkinnyPlan;
/* Whether the kernel takes y (M, N) = x (M, K) · wᵀ + b (1 <= M <= 32, K % 4 == 0, x and w 16-byte
 * aligned, N·K >= 2^18, the partial sums no larger than w), and its sizes for a device of sm_count
 * multiprocessors. */
bool cuda_skinny_linear_plan(int64_t M, int64_t N, int64_t K, const float *x, const float *w, int sm_count,
                             CudaSkinnyPlan *plan);
/* y = x · wᵀ + b (b may be NULL), fp32, deterministic: the partial-sum kernel and the reduce
 * kernel (launched as a programmatic dependent of the first when pdl is set), with the partial
 * sums in the per-op workspace (released here). */
bool cuda_launch_skinny_linear(Ctx *ctx, const CudaSkinnyPlan *p, const float *x, const float *w, const float *b,
                               float *y, bool pdl);

/* ---- cuda_timing.c (autotuning: timing enqueued work) ----------------------------------- */
/* One run of what is being timed: enqueues it on the context's stream; false when it failed. */
typedef bool (*CudaTimedRun)(void *arg);
/* Whether timing may run now: not while a CUDA graph is being captured or the workspace arena is
 * frozen (*ok false: the capture query failed, reported). */
bool cuda_tuning_allowed(Ctx *ctx, bool *ok);
/* run(arg)'s time per execution in ms: one untimed run, then the fastest of three timed groups,
 * each as many back-to-back runs as fill 0.25 ms (a small convolution runs for microseconds,
 * below what one event pair resolves, and launch gaps would decide the choice). INFINITY when a
 * run fails (skipped, not reported, unless the run set the context's error itself). */
float cuda_time_best(Ctx *ctx, CudaTimedRun run, void *arg);

/* ---- cuda_conv.c, for cuda_conv_custom.c ----------------------------------------------- */
enum { CUDA_CUSTOM_UNDECIDED = -2 };
/* "x(N,C,T,H,W) w(K,C/g,kt,kh,kw) stride(..) pad(..) groups G", for logs. */
void cuda_describe_conv_geom(const ConvGeom *g, char *buf, size_t cap);
/* The forward plan's record of which custom kernel config runs this shape (-1: cuDNN,
 * CUDA_CUSTOM_UNDECIDED before the choice); *has_cudnn: whether cuDNN has a plan for it. NULL
 * with the error set when the plan cannot be made. */
int *cuda_conv_custom_decision(Ctx *ctx, const ConvGeom *g, bool *has_cudnn);
/* cuDNN's forward of this shape (its candidates autotuned first if they are not yet) followed by
 * the f32 epilogue pass, timed on these buffers (y is overwritten): ms per run, INFINITY when
 * cuDNN cannot run it. */
float cuda_conv_cudnn_forward_time(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b,
                                   const float *r, int act, float *y);

/* ---- cuda_conv_custom.c (the choice between cuDNN and the custom FP32 forward kernels) ----- */
/* The fused conv's FP32 forward on a custom kernel (1x1, stem) when one suits the shape and is
 * chosen for it: true when it ran (or failed: the error is set); false, nothing done, when the
 * caller runs cuDNN. */
bool cuda_conv_custom_forward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                              const Tensor *residual, int act, Tensor *y);

/* op_conv2d_expand_dw's backend slots (FP32, the custom kernels on, the shapes of
 * cuda_expand_dw_suits). */
bool cuda_expand_dw_takes(Ctx *ctx, const ConvGeom *ge, const ConvGeom *gd);
void cuda_expand_dw_forward(Ctx *ctx, const ConvGeom *ge, const ConvGeom *gd, const Tensor *x, const Tensor *we,
                            const Tensor *be, int act_e, const Tensor *wd, const Tensor *bd, int act_d, Tensor *y);

/* op_conv2d_dw_project's backend slots (FP32, the custom kernels on, the shapes of
 * cuda_dw_project_suits, and the rule of cuda_set_dw_project). */
bool cuda_dw_project_takes(Ctx *ctx, const ConvGeom *gd, const ConvGeom *gp, const Tensor *wp);
void cuda_dw_project_forward(Ctx *ctx, const ConvGeom *gd, const ConvGeom *gp, const Tensor *x, const Tensor *wd,
                             const Tensor *bd, int act_d, const Tensor *wp, const Tensor *bp, const Tensor *residual,
                             int act_p, Tensor *y);

/* ---- cuda_conv_dw_project.cu (FP32 depthwise 3x3 + projection 1x1 in one kernel) ------------ */
/* gd: a depthwise 3x3 (stride 1 or 2, padding 1); gp: a 1x1 conv (stride 1, groups 1) on its
 * output with C % 4 == 0, wp 16-byte aligned; tensors below 2^31 elements. */
bool cuda_dw_project_suits(const ConvGeom *gd, const ConvGeom *gp, const float *wp);
/* Whether the shape runs on the rows kernel (output rows of at most 112 pixels, H·W % 4 == 0; the
 * other shapes take the per-pixel kernel); *quad: with 16-byte windows (rows of a multiple of four). */
bool cuda_dw_project_rows(const ConvGeom *gd, const ConvGeom *gp, bool *quad);
/* y = act_p((conv1x1(act_d(dw(x', wd) + bd), wp) + bp) + r) (bp, r may be NULL), x' = x or x with
 * its pending epilogue xe applied as it is read; *rows: whether the rows kernel ran it. */
bool cuda_launch_dw_project(Ctx *ctx, const ConvGeom *gd, const ConvGeom *gp, const float *x,
                            const CudaPendingEpilogue *xe, const float *wd, const float *bd, int d_act,
                            const float *wp, const float *bp, const float *r, int p_act, float *y, bool *rows);

/* ---- cuda_conv_expand_dw.cu (FP32 expand 1x1 + depthwise 3x3 in one kernel) ---------------- */
/* ge: a 1x1 conv (stride 1, no padding, groups 1) with C <= 32; gd: a depthwise 3x3 on its output,
 * stride 1 or 2, padding 1; tensors below 2^31 elements. */
bool cuda_expand_dw_suits(const ConvGeom *ge, const ConvGeom *gd);
/* z = act_d(dw(act_e(conv1x1(x', we) + be), wd) + bd), x' = x or x with its pending epilogue xe
 * applied as it is read. */
bool cuda_launch_expand_dw(Ctx *ctx, const ConvGeom *ge, const ConvGeom *gd, const float *x,
                           const CudaPendingEpilogue *xe, const float *we, const float *be, int e_act, const float *wd,
                           const float *bd, int d_act, float *z);

/* ---- cuda_conv_sgemm.cu (FP32 1x1 and 3x3 convolutions as one SGEMM, the epilogue inside) -- */
/* A 1x1 conv the kernel takes: stride 1, no padding, groups 1, C % 4 == 0, w 16-byte aligned,
 * N·C·S and N·K·S below 2^31. */
bool cuda_conv1x1_suits(const ConvGeom *g, const float *w);
/* A 3x3 conv the same kernel takes as an implicit GEMM over 9·C rows (cuda_launch_conv_sgemm with
 * xe NULL): 2-D (T = 1), any stride and padding, dilation 1, groups 1, C % 4 == 0, w 16-byte
 * aligned, N·C·H·W and N·K·Ho·Wo below 2^31. */
bool cuda_conv3x3_suits(const ConvGeom *g, const float *w);
/* The tile configs (how many: cuda_conv1x1_configs in cuda_backend.h): a name for each, and the
 * one used without timing. */
const char *cuda_conv1x1_config_name(int cfg);
int cuda_conv1x1_default_config(const ConvGeom *g);
/* A 3x3's config without timing, -1 for cuDNN: the 128x128 tiles for K >= 128, where they ran
 * faster than cuDNN plus its epilogue on the H100 (ResNet-50's 3x3s from 128 channels on, both
 * strides; at 64 channels cuDNN was faster; call session11c). */
int cuda_conv3x3_default_config(const ConvGeom *g);
/* y (N, K, S) = act((conv(x', w) + b[k]) + r') for a 1x1 or 3x3 conv g (b, r may be NULL; act an
 * OpAct value), where x' = x, or for a 1x1 x with its pending epilogue xe applied as it is read,
 * and r' likewise with re. */
bool cuda_launch_conv_sgemm(Ctx *ctx, int cfg, const ConvGeom *g, const float *x, const float *w, const float *b,
                            const float *r, int act, float *y, const CudaPendingEpilogue *xe,
                            const CudaPendingEpilogue *re);

/* ---- cuda_conv_stem.cu (FP32 stem convolutions: few input channels, stride 2) ------------ */
/* 2-D, square 3x3 or 7x7 filter, stride 2, dilation 1, groups 1, C <= 4, K in {16, 32, 64}. */
bool cuda_conv_stem_suits(const ConvGeom *g);
/* y = act((conv(x, w) + b[k]) + r) (b, r may be NULL). */
bool cuda_launch_conv_stem(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b,
                           const float *r, int act, float *y);

/* ---- cuda_gemm_kernels.cu (fallback GEMM) ------------------------------------------------ */
/* Column-major D (m×n, ld ldd) = op(A)·op(B) + beta·D (+ bias[i] on row i when bias is set),
 * fp32 throughout: the path when cuBLASLt offers no algorithm for a layout. */
bool cuda_launch_gemm_fallback(Ctx *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *D,
                               int64_t ldd, const float *bias);

/* ---- synchronised batch norm (cuda_norm.cu; the cl_ wrappers in cuda_layout.c) ------------ */
void cuda_batch_norm_stats(Ctx *ctx, const NormGeom *g, const Tensor *x, double *stats);
void cuda_batch_norm_forward_stats(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                   const Tensor *beta, const double *mean, const double *var, double count,
                                   Tensor *running_mean, Tensor *running_var, Tensor *y, Tensor *save_mean,
                                   Tensor *save_invstd);
void cuda_batch_norm_backward_reduce(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *mean,
                                     const Tensor *invstd, const Tensor *dy, double *sums, Tensor *dgamma,
                                     Tensor *dbeta);
void cuda_batch_norm_backward_dx(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                 const Tensor *mean, const Tensor *invstd, const Tensor *dy, const double *sums,
                                 double count, Tensor *dx);
void cl_batch_norm_stats(Ctx *ctx, const NormGeom *g, const Tensor *x, double *stats);
void cl_batch_norm_forward_stats(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                 const Tensor *beta, const double *mean, const double *var, double count,
                                 Tensor *running_mean, Tensor *running_var, Tensor *y, Tensor *save_mean,
                                 Tensor *save_invstd);
void cl_batch_norm_backward_reduce(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *mean,
                                   const Tensor *invstd, const Tensor *dy, double *sums, Tensor *dgamma,
                                   Tensor *dbeta);
void cl_batch_norm_backward_dx(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                               const Tensor *mean, const Tensor *invstd, const Tensor *dy, const double *sums,
                               double count, Tensor *dx);

#ifdef __cplusplus
}
#endif

#endif
