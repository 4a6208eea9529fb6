/* cuda_backend.h — the CUDA backend's public API: creating a CUDA context, moving tensors and
 * parameters between host and device, precision, and the knobs tests and benchmarks need.
 *
 * Owns nothing itself; declares what kernels/cuda/cuda_context.c implements. This header needs
 * no CUDA headers, so any C file (bench/, tests/) can include it; the functions exist only when
 * the backend is built (HAVE_CUDA = 1).
 *
 * A CUDA context is an ordinary Ctx (kernels/context.h) whose tensors live in device memory:
 * model code runs unchanged on it. Activations come from a device arena (one cudaMalloc block,
 * bump allocation, reset by ctx_begin_pass, planned from the first pass's high-water mark like
 * kernels/arena.c), per-op workspace from a second device arena (reset after each op). Every op
 * is enqueued on the context's one stream; copies to the host synchronise. Device faults become
 * the context's sticky error, naming the failing call, file and line.
 *
 * Tensors stay f32 in memory at every precision; the precision selects the math of convolutions
 * and GEMMs (cuDNN engines and cuBLASLt compute types): strict FP32, TF32 tensor cores, or BF16
 * tensor cores with fp32 accumulation. Every other op computes in fp32 (or double where the CPU
 * reference does) whatever the precision.
 */
#ifndef FOCUSBENCH_CUDA_BACKEND_H
#define FOCUSBENCH_CUDA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/context.h"
#include "kernels/params.h"
#include "kernels/tensor.h"

typedef enum {
    CUDA_PRECISION_FP32 = 0, /* strict fp32: no tensor-core down-conversion anywhere */
    CUDA_PRECISION_TF32,     /* convs and GEMMs on TF32 tensor cores, fp32 accumulate */
    CUDA_PRECISION_BF16,     /* convs and GEMMs with bf16 inputs, fp32 accumulate */
} CudaPrecision;

/* How convolutions are computed. AUTO: cuDNN execution plans (backend graph API, one per shape),
 * the custom direct kernel for depthwise convs (see cuda_set_depthwise_custom) and wherever cuDNN
 * has no plan. CUDNN / DIRECT force one path (tests compare both against the CPU). */
typedef enum {
    CUDA_CONV_AUTO = 0,
    CUDA_CONV_CUDNN,
    CUDA_CONV_DIRECT,
} CudaConvPath;

/* "fp32", "tf32", "bf16". */
const char *cuda_precision_name(CudaPrecision p);
/* Parses those names; false for anything else. */
bool cuda_precision_parse(const char *name, CudaPrecision *out);

/* A context on device 0. Always returns a context (NULL only when host memory is exhausted); if
 * the device, the driver or a library is unusable, the context has its error set (check
 * ctx_ok(ctx); ctx_error_message says why and what to do) and runs no ops. Free with
 * ctx_destroy. */
Ctx *cuda_ctx_create(uint64_t seed, CudaPrecision precision);

void cuda_set_precision(Ctx *ctx, CudaPrecision precision);
CudaPrecision cuda_get_precision(const Ctx *ctx);
void cuda_set_conv_path(Ctx *ctx, CudaConvPath path);
/* Depthwise convs (groups == C == K) on the custom direct kernel instead of cuDNN (default true:
 * cuDNN's grouped 3-D kernel ran ~100x below the memory roofline on H100, research/ecosystem.md). */
void cuda_set_depthwise_custom(Ctx *ctx, bool on);

/* FP32: 1x1 convolutions (no padding, groups 1), dense 2-D 3x3 convolutions and stem convolutions
 * (<= 4 input channels, 3x3 or 7x7 at stride 2) on focusbench's own kernels with the bias, residual
 * and activation inside (kernels/cuda/cuda_conv_sgemm.cu, cuda_conv_stem.cu) instead of cuDNN plus
 * a separate epilogue pass; with autotuning on, per shape whichever timed faster, without it a rule
 * (the 3x3s only from 128 output channels). Default on (FOCUSBENCH_CUSTOM_CONVS=0 in the
 * environment turns it off at creation, FOCUSBENCH_CONV3X3=0 only for the 3x3s). Applies to the fused
 * conv op (inference); training keeps cuDNN. */
void cuda_set_conv_custom(Ctx *ctx, bool on);
bool cuda_get_conv_custom(const Ctx *ctx);
/* The SGEMM kernel's tile configs: how many; cuda_set_conv1x1_config forces one (0 .. count-1)
 * for every 1x1 and 3x3 conv it suits, -1 (the default) lets the rule or the timing choose. For
 * tests (and FOCUSBENCH_CONV1X1_CONFIG=N). */
int cuda_conv1x1_configs(void);
void cuda_set_conv1x1_config(Ctx *ctx, int cfg);
/* op_conv2d_expand_dw at FP32 runs fused for the shapes where that paid (stride-2 depthwise at
 * 56² and above, kernels/cuda/cuda_conv_custom.c); on: for every shape the kernel suits (tests). */
void cuda_set_expand_dw_all(Ctx *ctx, bool on);
/* op_conv2d_dw_project at FP32 (MobileNetV2's depthwise conv and projection in one kernel,
 * kernels/cuda/cuda_conv_dw_project.cu): OFF runs the two convs, RULE (the default) fuses the
 * shapes where that paid (kernels/cuda/cuda_conv_custom.c), ALL every shape the kernel suits
 * (tests). FOCUSBENCH_DW_PROJECT=0 / all sets it from the environment. */
typedef enum { CUDA_DW_PROJECT_OFF = 0, CUDA_DW_PROJECT_RULE, CUDA_DW_PROJECT_ALL } CudaDwProjectMode;
void cuda_set_dw_project(Ctx *ctx, CudaDwProjectMode mode);
/* FP32 linear forwards of a few rows and a large weight (the exit classifier's heads) run on the
 * skinny split-K kernel (cuda_linear_skinny.cu), its reduce step a programmatic dependent launch
 * (default; FOCUSBENCH_SKINNY_LINEAR=plain: an ordinary launch, =0: cuBLASLt for every linear). */
typedef enum { CUDA_SKINNY_OFF = 0, CUDA_SKINNY_PLAIN, CUDA_SKINNY_PDL } CudaSkinnyMode;
void cuda_set_skinny_linear(Ctx *ctx, CudaSkinnyMode mode);
CudaSkinnyMode cuda_get_skinny_linear(const Ctx *ctx);

/* Autotuning of the cuDNN convolution plans: each new shape's first execution times up to 24
 * (FP32; 8 at TF32 and BF16) acceptable engine configs of the heuristics (mode A's list, then the
 * fallback list) on its own buffers and keeps the fastest (as PyTorch's cudnn.benchmark). Default off, so that which engine runs, and hence the rounding,
 * never depends on timing noise (FOCUSBENCH_CUDNN_AUTOTUNE=1 in the environment turns it on at
 * creation); `focusbench profile` turns it on. Applies to plans built after the call. */
void cuda_set_conv_autotune(Ctx *ctx, bool on);
bool cuda_get_conv_autotune(const Ctx *ctx);

/* Whether cuDNN engines noted nondeterministic (their reductions use atomics: results vary in the
 * last bits from run to run) may run convolutions, as under PyTorch's default
 * cudnn.deterministic = False. Default off: focusbench's runs repeat bit for bit (a resumed run
 * ends bit-identical to an uninterrupted one); FOCUSBENCH_CUDNN_NONDETERMINISTIC=1 in the
 * environment turns it on at creation, `profile --nondeterministic` too. Applies to plans built
 * after the call (the flag is part of the plan cache's key). */
void cuda_set_conv_nondeterministic(Ctx *ctx, bool on);
bool cuda_get_conv_nondeterministic(const Ctx *ctx);

/* FP32 / TF32: a fused convolution run by cuDNN leaves its bias + activation pending until its
 * output is first read, and the depthwise 3x3 kernel applies it while reading its input (one
 * pass over the tensor less); any other reader gets it applied in place first. The same values
 * either way. Default on (FOCUSBENCH_CUDA_DEFER_EPILOGUE=0 in the environment turns it off). */
void cuda_set_defer_epilogue(Ctx *ctx, bool on);

/* BF16 only: keep the outputs of fused convs (and of the depthwise, residual-add, ReLU and TSM
 * ops that follow them) as bf16 channels-last copies between layers instead of f32 NCHW; any op
 * that needs the f32 form gets it converted on demand (kernels/cuda/cuda_layout.c). Default on
 * (FOCUSBENCH_CUDA_RESIDENT=0 in the environment turns it off at creation). */
void cuda_set_resident_bf16(Ctx *ctx, bool on);

/* Debugging: poison = every new activation and workspace block is filled with NaN bytes (0xFF)
 * so an element a kernel forgets to write shows up; sync_each_launch = synchronise after every
 * kernel and library call, so an asynchronous fault is reported at the call that caused it.
 * Both default off (FOCUSBENCH_CUDA_DEBUG=1 in the environment turns both on at creation). */
void cuda_set_debug(Ctx *ctx, bool poison, bool sync_each_launch);

/* Waits for the context's stream; false with the context's error on a device fault. */
bool cuda_synchronize(Ctx *ctx);

/* A new device activation tensor (arena) holding a copy of host tensor `h` (any dtype). */
Tensor *cuda_tensor_from_host(Ctx *ctx, const Tensor *h);
/* Copies device tensor `d` into host tensor `h` of the same dtype and element count (waits). */
bool cuda_tensor_to_host(Ctx *ctx, const Tensor *d, Tensor *h);

/* Parameters: `ps` allocated on the CPU (params_allocate(ps, BACKEND_CPU, ...)) is copied to the
 * device (data, and gradients where present) and its tensors are re-pointed there (backend
 * CUDA). The host blocks stay allocated: download copies device values back into them, release
 * re-points the tensors to the host blocks and frees the device copy. ctx_destroy frees device
 * copies still held (without touching `ps`, which may already be gone). Use
 * cuda_params_zero_grad, not params_zero_grad, while the set is on the device. */
bool cuda_params_upload(Ctx *ctx, ParamSet *ps);
bool cuda_params_download(Ctx *ctx, ParamSet *ps);
void cuda_params_release(Ctx *ctx, ParamSet *ps);
void cuda_params_zero_grad(Ctx *ctx, ParamSet *ps);
/* The device copy of ps's gradient block (same offsets as the host block), NULL when ps is not on
 * this context's device or has no gradients. */
float *cuda_params_grad_block(Ctx *ctx, const ParamSet *ps);

/* Makes the activation arena one block of at least `bytes` (planning from a meta pass); call
 * between passes. */
void cuda_arena_reserve(Ctx *ctx, size_t bytes);

typedef struct {
    size_t arena_block_bytes;   /* size of the planned activation block */
    size_t arena_high_water;    /* largest activation use of a pass */
    size_t scratch_block_bytes; /* per-op workspace block */
    size_t scratch_high_water;
    size_t device_mallocs;      /* cudaMalloc calls of both arenas since creation */
    int conv_plans;             /* cached convolution plans (cuDNN or direct) */
    int conv_plans_cudnn;       /* ... of which run cuDNN */
    int gemm_plans;             /* cached cuBLASLt matmul plans */
    size_t cudnn_version;       /* runtime cuDNN, e.g. 91400 */
} CudaStats;
void cuda_get_stats(const Ctx *ctx, CudaStats *out);

/* A one-line description of how the last convolution call ran ("cudnn fwd engine 7 (heuristics
 * A) fp32", "direct (depthwise)", ...), for logs and tests. */
const char *cuda_last_conv_info(const Ctx *ctx);
/* How the last linear forward ran: "skinny kernel kc 80, 52 slices x 5 column tiles" (FP32, few
 * rows: cuda_linear_skinny.cu), "cuBLASLt fp32", ...; "none" before the first. For logs and tests. */
const char *cuda_last_linear_info(const Ctx *ctx);

/* The context's cudaStream_t (as void *), for events, graph capture and profiling. */
void *cuda_stream(Ctx *ctx);

#endif
