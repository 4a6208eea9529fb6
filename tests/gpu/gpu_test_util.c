/* gpu_test_util.c — see gpu_test_util.h. */
#include "tests/gpu/gpu_test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_device.h"

Tol gpu_tol_for(CudaPrecision p)
{
    switch (p) {
    case CUDA_PRECISION_TF32: return TOL_TF32;
    case CUDA_PRECISION_BF16: return TOL_BF16;
    case CUDA_PRECISION_FP32: break;
    }
    return TOL_FP32_GEMM;
}

static void free_host(GpuEnv *e)
{
    for (int i = 0; i < e->n_host; i++)
        ttensor_free(e->host[i]);
    e->n_host = 0;
}

GpuEnv *gpu_env_create(void)
{
    CudaDeviceInfo info;
    if (!cuda_device_query(&info)) {
        printf("  [gpu] no usable device: %s\n", info.reason);
        return NULL;
    }
    GpuEnv *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->cpu = ctx_create(BACKEND_CPU, 1);
    e->gpu = cuda_ctx_create(1, CUDA_PRECISION_FP32);
    if (!e->cpu || !e->gpu || !ctx_ok(e->gpu)) {
        printf("  [gpu] cannot create the CUDA context: %s\n", e->gpu ? ctx_error_message(e->gpu) : "out of memory");
        ctx_destroy(e->cpu);
        ctx_destroy(e->gpu);
        free(e);
        return NULL;
    }
    e->cpu->cpu_reference = true; /* the plain loops are the reference */
    cuda_set_debug(e->gpu, true, true);
    CudaStats s;
    cuda_get_stats(e->gpu, &s);
    printf("  [gpu] %s (sm_%d%d, %d SMs), driver CUDA %d, runtime %d, cuDNN %zu, cuBLASLt %zu; NaN poisoning and "
           "sync-after-launch on\n",
           info.name, info.cc_major, info.cc_minor, info.sm_count, info.driver_version, info.runtime_version,
           s.cudnn_version, info.cublaslt_version);
    return e;
}

void gpu_env_destroy(GpuEnv *e)
{
    if (!e)
        return;
    free_host(e);
    ctx_destroy(e->cpu);
    ctx_destroy(e->gpu);
    free(e);
}

int gpu_run_group(const char *name, struct CMUnitTest *tests, size_t n, int *total)
{
    *total += (int)n;
    GpuEnv *e = gpu_env_create();
    if (!e) {
        printf("[  FAILED  ] group %s: all %zu tests fail (no usable GPU, see above)\n", name, n);
        return (int)n;
    }
    for (size_t i = 0; i < n; i++)
        tests[i].initial_state = e;
    int failed = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
    gpu_env_destroy(e);
    return failed;
}

GpuEnv *gpu_begin(void **state, const char *test_name)
{
    GpuEnv *e = *state;
    free_host(e);
    e->failures = e->checks = 0;
    printf("  -- %s\n", test_name);
    ctx_clear_error(e->cpu);
    ctx_clear_error(e->gpu);
    cuda_set_precision(e->gpu, CUDA_PRECISION_FP32);
    cuda_set_conv_path(e->gpu, CUDA_CONV_AUTO);
    cuda_set_depthwise_custom(e->gpu, true);
    /* the defaults again: a test that turned these on must not choose the next test's engines */
    cuda_set_conv_autotune(e->gpu, false);
    cuda_set_conv_nondeterministic(e->gpu, false);
    cuda_set_conv_custom(e->gpu, true);
    cuda_set_conv1x1_config(e->gpu, -1);
    cuda_set_expand_dw_all(e->gpu, false);
    cuda_set_dw_project(e->gpu, CUDA_DW_PROJECT_RULE);
    ctx_begin_pass(e->cpu);
    ctx_begin_pass(e->gpu);
    if (!cuda_synchronize(e->gpu))
        fail_msg("the CUDA context is broken before %s: %s", test_name, ctx_error_message(e->gpu));
    return e;
}

void gpu_end(GpuEnv *e)
{
    if (!ctx_ok(e->gpu)) {
        printf("  FAIL the CUDA context has an error: %s\n", ctx_error_message(e->gpu));
        e->failures++;
    }
    printf("  == %d of %d checks passed\n", e->checks - e->failures, e->checks);
    if (e->failures)
        fail_msg("%d of %d GPU-vs-CPU checks failed (see the lines marked FAIL above)", e->failures, e->checks);
}

static Tensor *keep_host(GpuEnv *e, Tensor *t)
{
    if (e->n_host == GPU_MAX_HOST_TENSORS)
        fail_msg("gpu tests: more than %d host tensors in one test", GPU_MAX_HOST_TENSORS);
    e->host[e->n_host++] = t;
    return t;
}

Tensor *gh(GpuEnv *e, DType dtype, int ndim, const int64_t *dims)
{
    return keep_host(e, ttensor(dtype, ndim, dims, false));
}

Tensor *gh_rand(GpuEnv *e, uint64_t seed, float lo, float hi, int ndim, const int64_t *dims)
{
    Tensor *t = gh(e, DTYPE_F32, ndim, dims);
    tfill_uniform(t, seed, lo, hi);
    return t;
}

Tensor *gh_like(GpuEnv *e, const Tensor *t) { return gh(e, t->dtype, t->ndim, t->shape); }

Tensor *gh_copy(GpuEnv *e, const Tensor *t)
{
    Tensor *c = gh_like(e, t);
    memcpy(c->data, t->data, tensor_bytes(t));
    return c;
}

Tensor *gd(GpuEnv *e, const Tensor *h)
{
    Tensor *d = cuda_tensor_from_host(e->gpu, h);
    if (!d)
        fail_msg("upload of a %s tensor failed: %s", dtype_name(h->dtype), ctx_error_message(e->gpu));
    return d;
}

Tensor *gd_nan(GpuEnv *e, DType dtype, int ndim, const int64_t *dims)
{
    Tensor *d = tensor_new(e->gpu, dtype, ndim, dims);
    if (!d)
        fail_msg("device allocation failed: %s", ctx_error_message(e->gpu));
    e->gpu->ops->device_memset(e->gpu, d->data, 0xFF, tensor_bytes(d)); /* f32 NaN, i32 -1 */
    return d;
}

Tensor *gd_nan_like(GpuEnv *e, const Tensor *h) { return gd_nan(e, h->dtype, h->ndim, h->shape); }

bool gpu_expect_ok(GpuEnv *e, const char *what)
{
    if (ctx_ok(e->gpu) && cuda_synchronize(e->gpu))
        return true;
    e->checks++;
    e->failures++;
    printf("  FAIL %s: the CUDA backend reported: %s\n", what, ctx_error_message(e->gpu));
    return false;
}

static bool download(GpuEnv *e, const char *what, const Tensor *dev, Tensor **out)
{
    *out = NULL;
    if (!gpu_expect_ok(e, what))
        return false;
    if (!dev) {
        e->checks++;
        e->failures++;
        printf("  FAIL %s: no device tensor (an op returned NULL)\n", what);
        return false;
    }
    Tensor *h = gh(e, dev->dtype, dev->ndim, dev->shape);
    if (!cuda_tensor_to_host(e->gpu, dev, h)) {
        e->checks++;
        e->failures++;
        printf("  FAIL %s: download failed: %s\n", what, ctx_error_message(e->gpu));
        return false;
    }
    *out = h;
    return true;
}

bool gpu_expect_close(GpuEnv *e, const char *what, const Tensor *dev, const Tensor *ref, Tol tol)
{
    Tensor *got;
    if (!download(e, what, dev, &got))
        return false;
    e->checks++;
    int64_t n = tensor_numel(ref);
    if (tensor_numel(got) != n || got->dtype != DTYPE_F32 || ref->dtype != DTYPE_F32) {
        e->failures++;
        printf("  FAIL %s: device tensor has %lld elements (%s), reference %lld (%s)\n", what,
               (long long)tensor_numel(got), dtype_name(got->dtype), (long long)n, dtype_name(ref->dtype));
        return false;
    }
    const float *g = tensor_f32(got), *r = tensor_f32(ref);
    double ss_ref = 0, ss_diff = 0;
    int64_t bad = -1;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(g[i]) || !isfinite(r[i])) {
            bad = i;
            break;
        }
        ss_ref += (double)r[i] * r[i];
        ss_diff += ((double)g[i] - r[i]) * ((double)g[i] - r[i]);
    }
    if (bad >= 0) {
        e->failures++;
        int64_t nonfinite = 0;
        for (int64_t i = 0; i < n; i++)
            nonfinite += !isfinite(g[i]) || !isfinite(r[i]);
        printf("  FAIL %s: element %lld is not finite (gpu %.9g, cpu %.9g); %lld of %lld elements non-finite "
               "(NaN on the gpu side = never written, or computed NaN)\n",
               what, (long long)bad, g[bad], r[bad], (long long)nonfinite, (long long)n);
        return false;
    }
    double rms = n ? sqrt(ss_ref / (double)n) : 0;
    double scale = rms > 1e-30 ? rms : 1e-30;
    double norm_err = ss_ref > 0 ? sqrt(ss_diff / ss_ref) : sqrt(ss_diff);
    double elem_err = 0;
    int64_t worst = 0;
    bool bitwise = true;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - r[i]) / (fabs((double)r[i]) + scale);
        if (d > elem_err) {
            elem_err = d;
            worst = i;
        }
        bitwise &= memcmp(&g[i], &r[i], sizeof(float)) == 0;
    }
    bool ok = norm_err <= tol.norm && elem_err <= tol.elem;
    if (!ok)
        e->failures++;
    printf("  %s %s: norm err %.2e (tol %.0e), elem err %.2e (tol %.0e)%s", ok ? "ok  " : "FAIL", what, norm_err,
           tol.norm, elem_err, tol.elem, bitwise ? ", bitwise equal" : "");
    if (!ok || !bitwise)
        printf(" [worst element %lld: gpu %.9g, cpu %.9g; %lld elements]", (long long)worst, g[worst], r[worst],
               (long long)n);
    printf("\n");
    return ok;
}

bool gpu_expect_equal(GpuEnv *e, const char *what, const Tensor *dev, const Tensor *ref)
{
    Tensor *got;
    if (!download(e, what, dev, &got))
        return false;
    e->checks++;
    size_t bytes = tensor_bytes(ref);
    if (tensor_bytes(got) != bytes) {
        e->failures++;
        printf("  FAIL %s: sizes differ (%zu vs %zu bytes)\n", what, tensor_bytes(got), bytes);
        return false;
    }
    size_t es = dtype_size(ref->dtype), first = bytes, differ = 0;
    for (size_t i = 0; i < bytes; i += es)
        if (memcmp((const char *)got->data + i, (const char *)ref->data + i, es) != 0) {
            if (first == bytes)
                first = i;
            differ++;
        }
    if (differ) {
        e->failures++;
        if (ref->dtype == DTYPE_I32)
            printf("  FAIL %s: %zu of %zu elements differ; first at %zu: gpu %d, cpu %d\n", what, differ, bytes / es,
                   first / es, ((const int32_t *)got->data)[first / es], ((const int32_t *)ref->data)[first / es]);
        else
            printf("  FAIL %s: %zu of %zu elements differ; first at %zu: gpu %.9g, cpu %.9g\n", what, differ,
                   bytes / es, first / es, ((const float *)got->data)[first / es],
                   ((const float *)ref->data)[first / es]);
        return false;
    }
    printf("  ok   %s: all %zu elements bitwise equal\n", what, bytes / es);
    return true;
}
