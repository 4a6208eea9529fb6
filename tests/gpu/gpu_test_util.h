/* gpu_test_util.h — helpers of the GPU tests: a CPU reference context next to a CUDA context,
 * host/device tensor helpers, and comparisons that print one line per check.
 *
 * The GPU tests run on a lent machine whose log is read by someone else, so every comparison
 * prints what was compared, the precision, the error metrics and the tolerance, and a failed
 * test says which comparisons failed. Comparisons (gpu_expect_close):
 *   norm error  ‖got − ref‖₂ / ‖ref‖₂
 *   elem error  max_i |got_i − ref_i| / (|ref_i| + rms(ref))
 * Both must be within the tolerance; any NaN or Inf in either tensor fails (device outputs are
 * poisoned with NaN before each run, so an element a kernel forgets to write fails too).
 */
#ifndef FOCUSBENCH_GPU_TEST_UTIL_H
#define FOCUSBENCH_GPU_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "tests/test_util.h"

enum { GPU_MAX_HOST_TENSORS = 512 };

typedef struct {
    Ctx *cpu;  /* CPU backend, cpu_reference = true: the plain reference kernels */
    Ctx *gpu;  /* CUDA backend, debugging on (NaN poisoning, sync after every launch) */
    Tensor *host[GPU_MAX_HOST_TENSORS]; /* host tensors to free at the end of a test */
    int n_host;
    int failures; /* comparisons failed in the current test */
    int checks;
} GpuEnv;

/* Tolerances: the norm error and the element error bounds (see the file comment). */
typedef struct {
    double norm, elem;
} Tol;

/* Elementwise and reduction kernels in fp32 (the same formulas as the CPU, mostly the same
 * roundings): agree to float rounding. */
#define TOL_EXACTISH ((Tol){1e-6, 1e-5})
/* fp32 GEMM / convolution: the GPU sums up to a few thousand products in fp32 in another order
 * than the CPU reference (which sums in double); cuDNN may also split the reduction. The
 * expected error is ~1e-7..1e-6 relative to the tensor's scale; 1e-5 / 1e-4 leaves room for the
 * longest reductions without hiding a wrong tap or a missing term. */
#define TOL_FP32_GEMM ((Tol){1e-5, 1e-4})
/* TF32 inputs carry 10 mantissa bits (unit roundoff 2^-11 ≈ 4.9e-4): ~5e-4 relative error per
 * output, max over 10^4 elements ~2e-3. */
#define TOL_TF32 ((Tol){2e-3, 2e-2})
/* BF16 inputs carry 7 mantissa bits (unit roundoff 2^-9 ≈ 2e-3), and the BF16 conv path also
 * rounds its output to bf16: ~2e-3..4e-3 relative error, max ~1.5e-2. */
#define TOL_BF16 ((Tol){1.5e-2, 1e-1})

/* The tolerance of a GEMM-like op (conv, linear) at precision p. */
Tol gpu_tol_for(CudaPrecision p);

/* The environment of a test group, passed to each test as its cmocka prestate; NULL (having
 * printed why) when there is no usable GPU. */
GpuEnv *gpu_env_create(void);
void gpu_env_destroy(GpuEnv *e);
/* Runs a group's tests with env = gpu_env_create() as their state; without a GPU every test of
 * the group counts as failed (the message says why). Returns the number of failures. */
int gpu_run_group(const char *name, struct CMUnitTest *tests, size_t n, int *total);

/* Start of every test: frees the previous test's host tensors, starts a new pass on both
 * contexts, clears a previous test's error (a broken device stays broken and fails here). */
GpuEnv *gpu_begin(void **state, const char *test_name);
/* End of every test: fails it when any comparison failed. */
void gpu_end(GpuEnv *e);

/* Host tensors (freed by the next gpu_begin or the teardown). */
Tensor *gh(GpuEnv *e, DType dtype, int ndim, const int64_t *dims);
Tensor *gh_rand(GpuEnv *e, uint64_t seed, float lo, float hi, int ndim, const int64_t *dims);
Tensor *gh_like(GpuEnv *e, const Tensor *t);   /* zeros, same shape and dtype */
Tensor *gh_copy(GpuEnv *e, const Tensor *t);   /* same data */
/* Device tensors of the GPU context's arena: a copy of a host tensor, or NaN-filled. */
Tensor *gd(GpuEnv *e, const Tensor *h);
Tensor *gd_nan(GpuEnv *e, DType dtype, int ndim, const int64_t *dims);
Tensor *gd_nan_like(GpuEnv *e, const Tensor *h);

/* Downloads `dev` and compares it with host `ref`; prints one line; counts a failure. */
bool gpu_expect_close(GpuEnv *e, const char *what, const Tensor *dev, const Tensor *ref, Tol tol);
/* Exact (bitwise) equality of a device and a host tensor of any dtype. */
bool gpu_expect_equal(GpuEnv *e, const char *what, const Tensor *dev, const Tensor *ref);
/* Fails the current comparison set with a message when the GPU context has an error. */
bool gpu_expect_ok(GpuEnv *e, const char *what);

#define DIMS(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

#endif
