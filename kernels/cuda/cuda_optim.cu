/* cuda_optim.cu — the optimizer's in-place updates on device memory (backend.h sgd_update,
 * sum_squares, scale_inplace), so a GPU run keeps its parameters, gradients and momentum buffers on
 * the device for the whole run.
 *
 * sgd_update and scale_inplace are elementwise and spell out each rounding (fmaf is one rounding on
 * both sides; the momentum product and sum round separately, as kernels/cpu/cpu_optim.c), so an
 * update is bit-identical to the CPU's for the same inputs. sum_squares adds in double in a fixed
 * tree order (deterministic; equal to the CPU's sequential sum to double rounding).
 */
#include "kernels/cuda/cuda_kernels.cuh"

__global__ static void sgd_update_kernel(int64_t n, float *p, const float *g, float *buf, float neg_lr, float wd,
                                         float momentum, bool fresh)
{
    CK_FOR(j, n)
    {
        float pj = p[j];
        float d = wd != 0.0f ? fmaf(wd, pj, g[j]) : g[j];
        float b = fresh ? d : f_add(f_mul(buf[j], momentum), d);
        buf[j] = b;
        p[j] = fmaf(neg_lr, b, pj);
    }
}

extern "C" void cuda_sgd_update(Ctx *ctx, int64_t n, float *p, const float *g, float *buf, float neg_lr, float wd,
                                float momentum, bool fresh)
{
    if (n <= 0 || !ctx_ok(ctx))
        return;
    sgd_update_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(n, p, g, buf, neg_lr, wd,
                                                                                           momentum, fresh);
    LAUNCH_OK(ctx, "sgd_update_kernel");
}

enum { SQ_BLOCKS = 256 }; /* fixed: the partial sums and their order do not depend on the device */

/* Block k sums x[i]² for i = k·CK_THREADS + t, stepping by SQ_BLOCKS·CK_THREADS: partial[k]. */
__global__ static void sum_squares_partial_kernel(int64_t n, const float *x, double *partial)
{
    __shared__ double sh[CK_THREADS];
    double acc = 0.0;
    for (int64_t i = (int64_t)blockIdx.x * CK_THREADS + threadIdx.x; i < n; i += (int64_t)SQ_BLOCKS * CK_THREADS) {
        double v = (double)x[i];
        acc = d_add(acc, d_mul(v, v));
    }
    double total = ck_block_sum(acc, sh);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = total;
}

__global__ static void sum_squares_finish_kernel(const double *partial, double *out)
{
    __shared__ double sh[SQ_BLOCKS];
    double total = ck_block_sum(partial[threadIdx.x], sh);
    if (threadIdx.x == 0)
        *out = total;
}

extern "C" double cuda_sum_squares(Ctx *ctx, int64_t n, const float *x)
{
    if (n <= 0 || !ctx_ok(ctx))
        return 0.0;
    double *partial = (double *)cuda_scratch(ctx, (SQ_BLOCKS + 1) * sizeof(double), "sum of squares partials");
    double result = NAN;
    if (partial) {
        cudaStream_t s = cuda_stream_of(ctx);
        sum_squares_partial_kernel<<<SQ_BLOCKS, CK_THREADS, 0, s>>>(n, x, partial);
        if (LAUNCH_OK(ctx, "sum_squares_partial_kernel")) {
            sum_squares_finish_kernel<<<1, SQ_BLOCKS, 0, s>>>(partial, partial + SQ_BLOCKS);
            if (LAUNCH_OK(ctx, "sum_squares_finish_kernel") &&
                !(CUDA_OK(ctx, cudaMemcpyAsync(&result, partial + SQ_BLOCKS, sizeof result, cudaMemcpyDeviceToHost,
                                                s)) &&
                  CUDA_OK(ctx, cudaStreamSynchronize(s))))
                result = NAN;
        }
    }
    cuda_scratch_release(ctx);
    return result;
}

__global__ static void scale_inplace_kernel(int64_t n, float *x, double coef)
{
    CK_FOR(j, n)
    x[j] = (float)d_mul((double)x[j], coef);
}

extern "C" void cuda_scale_inplace(Ctx *ctx, int64_t n, float *x, double coef)
{
    if (n <= 0 || !ctx_ok(ctx))
        return;
    scale_inplace_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(n, x, coef);
    LAUNCH_OK(ctx, "scale_inplace_kernel");
}
