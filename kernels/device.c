/* device.c — the backend a run computes on, and its parameters' way there and back (device.h). */
#include "kernels/device.h"

#include <stdio.h>
#include <string.h>

#include "kernels/backend.h"

#if HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

bool run_device_parse(const char *device, const char *precision, RunDevice *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    if (!device || strcmp(device, "cpu") == 0) {
        if (precision && strcmp(precision, "fp32") != 0) {
            snprintf(err, err_cap, "--precision %s needs --device cuda (the CPU computes in fp32)", precision);
            return false;
        }
        out->backend = BACKEND_CPU;
        return true;
    }
    if (strcmp(device, "cuda") != 0) {
        snprintf(err, err_cap, "--device must be cpu or cuda, not '%s'", device);
        return false;
    }
#if HAVE_CUDA
    CudaPrecision p = CUDA_PRECISION_FP32;
    if (precision && !cuda_precision_parse(precision, &p)) {
        snprintf(err, err_cap, "--precision must be fp32, tf32 or bf16, not '%s'", precision);
        return false;
    }
    out->backend = BACKEND_CUDA;
    out->precision = (int)p;
    return true;
#else
    snprintf(err, err_cap, "--device cuda: this focusbench was built without the CUDA backend (rebuild on a machine "
             "with the CUDA toolkit and cuDNN: `make CUDA=1`; `focusbench version` lists the features)");
    return false;
#endif
}

const char *run_device_name(const RunDevice *d, char *buf, size_t cap)
{
#if HAVE_CUDA
    if (d && d->backend == BACKEND_CUDA) {
        snprintf(buf, cap, "cuda %s", cuda_precision_name((CudaPrecision)d->precision));
        return buf;
    }
#endif
    snprintf(buf, cap, "cpu");
    return buf;
}

Ctx *run_device_ctx(const RunDevice *d, uint64_t seed, char *err, size_t err_cap)
{
    Ctx *ctx = NULL;
#if HAVE_CUDA
    if (d && d->backend == BACKEND_CUDA) {
        ctx = cuda_ctx_create(seed, (CudaPrecision)d->precision);
        if (ctx && !ctx_ok(ctx)) {
            snprintf(err, err_cap, "no usable GPU: %s", ctx_error_message(ctx));
            ctx_destroy(ctx);
            return NULL;
        }
    } else
#endif
        ctx = ctx_create(BACKEND_CPU, seed);
    if (!ctx)
        snprintf(err, err_cap, "out of host memory creating the compute context");
    return ctx;
}

Ctx *run_device_open(const RunDevice *d, uint64_t seed, ParamSet *ps, char *err, size_t err_cap)
{
    Ctx *ctx = run_device_ctx(d, seed, err, err_cap);
    if (ctx && !run_device_attach(ctx, ps, err, err_cap)) {
        ctx_destroy(ctx);
        return NULL;
    }
    return ctx;
}

void run_device_close(Ctx *ctx, ParamSet *ps)
{
    if (!ctx)
        return;
    if (ps && ps->backend != BACKEND_CPU && ctx->backend != BACKEND_CPU) {
#if HAVE_CUDA
        cuda_params_release(ctx, ps); /* the host blocks still hold the values eval started from */
#endif
    }
    ctx_destroy(ctx);
}

bool run_device_attach(Ctx *ctx, ParamSet *ps, char *err, size_t err_cap)
{
    if (!ps || ctx->backend == BACKEND_CPU)
        return true;
#if HAVE_CUDA
    if (ctx->backend == BACKEND_CUDA) {
        if (cuda_params_upload(ctx, ps))
            return true;
        snprintf(err, err_cap, "moving the parameters to the GPU: %s", ctx_error_message(ctx));
        return false;
    }
#endif
    snprintf(err, err_cap, "the %s backend holds no parameters", backend_name(ctx->backend));
    return false;
}

bool run_device_detach(Ctx *ctx, ParamSet *ps, char *err, size_t err_cap)
{
    if (!ps || ps->backend == BACKEND_CPU || ctx->backend == BACKEND_CPU)
        return true;
#if HAVE_CUDA
    if (ctx->backend == BACKEND_CUDA) {
        bool ok = cuda_params_download(ctx, ps);
        if (!ok)
            snprintf(err, err_cap, "copying the parameters back from the GPU: %s", ctx_error_message(ctx));
        cuda_params_release(ctx, ps); /* the host pointers come back even after a failed copy */
        return ok;
    }
#endif
    (void)err_cap;
    return true;
}

void run_device_zero_grad(Ctx *ctx, ParamSet *ps)
{
#if HAVE_CUDA
    if (ps->backend == BACKEND_CUDA) {
        cuda_params_zero_grad(ctx, ps);
        return;
    }
#endif
    (void)ctx;
    params_zero_grad(ps);
}

float *run_device_grad_block(Ctx *ctx, ParamSet *ps)
{
#if HAVE_CUDA
    if (ps->backend == BACKEND_CUDA)
        return cuda_params_grad_block(ctx, ps);
#endif
    (void)ctx;
    return ps->grad_block;
}

Tensor *run_device_from_host(Ctx *ctx, DType dtype, int ndim, const int64_t *dims, const void *src)
{
    Tensor *t = tensor_new(ctx, dtype, ndim, dims);
    if (!t || !t->data)
        return t; /* meta: shapes only */
    if (t->backend == BACKEND_CPU)
        memcpy(t->data, src, tensor_bytes(t));
    else if (ctx->ops && ctx->ops->copy_from_host)
        ctx->ops->copy_from_host(ctx, t, src);
    else {
        ctx_set_error(ctx, "the %s backend cannot copy from the host", backend_name(t->backend));
        return NULL;
    }
    return t;
}

bool run_device_to_host(Ctx *ctx, const Tensor *t, void *dst)
{
    if (!ctx_ok(ctx) || !t || !t->data)
        return false;
    if (t->backend == BACKEND_CPU) {
        memcpy(dst, t->data, tensor_bytes(t));
        return true;
    }
    if (!ctx->ops || !ctx->ops->copy_to_host) {
        ctx_set_error(ctx, "the %s backend cannot copy to the host", backend_name(t->backend));
        return false;
    }
    ctx->ops->copy_to_host(ctx, dst, t);
    return ctx_ok(ctx);
}
