/* device.h — where training and evaluation compute: the host, or a CUDA GPU holding the parameters.
 *
 * Owns: the choice of backend and precision a command takes (`--device cpu|cuda`, `--precision`),
 * creating its context with one clear message when the GPU is unusable, and moving a ParamSet's
 * tensors to that device and back (parameters, their gradients, or an optimizer's momentum buffers),
 * so the training loops and the evaluation passes are written once for both backends.
 *
 * On the CPU every call here is a no-op or a plain memcpy. On CUDA a ParamSet is "attached" (its
 * tensors re-pointed to a device copy, kernels/cuda/cuda_backend.h cuda_params_upload) for the run
 * and "detached" (values copied back into the host blocks, device copy freed) before anything reads
 * it on the host: a checkpoint, the end of the run. A run must detach what it attached before the
 * context is destroyed: ctx_destroy frees device copies but cannot re-point the tensors.
 */
#ifndef FOCUSBENCH_DEVICE_H
#define FOCUSBENCH_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/context.h"
#include "kernels/params.h"
#include "kernels/tensor.h"

typedef struct {
    BackendKind backend; /* BACKEND_CPU (the zero value) or BACKEND_CUDA */
    int precision;       /* CUDA only: a CudaPrecision (0 = strict fp32) */
} RunDevice;

/* "cpu" or "cuda", and NULL or "fp32" | "tf32" | "bf16" (CUDA only; the CPU computes fp32). False
 * with a message on a bad name, a precision on the CPU, or CUDA in a build without the backend. */
bool run_device_parse(const char *device, const char *precision, RunDevice *out, char *err, size_t err_cap);
/* "cpu" or "cuda fp32" etc. */
const char *run_device_name(const RunDevice *d, char *buf, size_t cap);

/* A context on the device (NULL d: the CPU). NULL with a message when host memory is exhausted or
 * the GPU, its driver or a library is unusable. */
Ctx *run_device_ctx(const RunDevice *d, uint64_t seed, char *err, size_t err_cap);

/* An evaluation's context: run_device_ctx, then ps attached (NULL with a message). run_device_close
 * detaches ps and destroys the context (ps back on the host, unchanged: eval writes no weights). */
Ctx *run_device_open(const RunDevice *d, uint64_t seed, ParamSet *ps, char *err, size_t err_cap);
void run_device_close(Ctx *ctx, ParamSet *ps);

/* Moves ps (allocated on the host) to ctx's device, gradients included; a no-op on the CPU. */
bool run_device_attach(Ctx *ctx, ParamSet *ps, char *err, size_t err_cap);
/* Copies the device values (and gradients) back into ps's host blocks and points its tensors there
 * again; a no-op on the CPU or for a set that is not attached. */
bool run_device_detach(Ctx *ctx, ParamSet *ps, char *err, size_t err_cap);
/* Zeroes ps's gradients wherever they are. */
void run_device_zero_grad(Ctx *ctx, ParamSet *ps);
/* The first float of ps's gradient block where it is now (device or host); NULL without gradients.
 * Bucket offsets of kernels/dist/dist_grads.h index it on either side. */
float *run_device_grad_block(Ctx *ctx, ParamSet *ps);

/* A new activation tensor of ctx holding a copy of host bytes src (NULL with ctx's error set). */
Tensor *run_device_from_host(Ctx *ctx, DType dtype, int ndim, const int64_t *dims, const void *src);
/* Copies t (any backend of ctx) to host memory dst; false with ctx's error set. */
bool run_device_to_host(Ctx *ctx, const Tensor *t, void *dst);

#endif
