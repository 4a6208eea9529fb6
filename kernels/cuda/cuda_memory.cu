/* cuda_memory.cu — fill, axpy, strided block copy and permute on device memory (the CUDA
 * versions of kernels/cpu/cpu_memory.c, element for element: each output element is written by
 * one thread, additions spelled out so results equal the CPU's bit for bit). */
#include "kernels/cuda/cuda_kernels.cuh"

__global__ static void fill_kernel(float *p, int64_t n, float v)
{
    CK_FOR(i, n) p[i] = v;
}

/* y += alpha · x, or y += x when alpha == 1 (cuda_launch_add) — the same rounding either way. */
__global__ static void axpy_kernel(const float *x, float *y, int64_t n, float alpha)
{
    CK_FOR(i, n) y[i] = f_add(y[i], f_mul(alpha, x[i]));
}

bool cuda_launch_fill(Ctx *ctx, float *p, int64_t n, float value)
{
    if (n <= 0)
        return true;
    fill_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(p, n, value);
    return LAUNCH_OK(ctx, "fill_kernel");
}

bool cuda_launch_add(Ctx *ctx, const float *x, float *y, int64_t n)
{
    if (n <= 0)
        return true;
    axpy_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(x, y, n, 1.0f);
    return LAUNCH_OK(ctx, "axpy_kernel");
}

extern "C" void cuda_fill(Ctx *ctx, Tensor *t, float value)
{
    if (!cuda_ready(ctx))
        return;
    cuda_launch_fill(ctx, tensor_f32(t), tensor_numel(t), value); /* t: (numel) */
}

extern "C" void cuda_axpy(Ctx *ctx, float alpha, const Tensor *x, Tensor *y)
{
    int64_t n = tensor_numel(y);
    if (!cuda_ready(ctx) || n == 0)
        return;
    axpy_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(tensor_f32(x), tensor_f32(y), n,
                                                                                  alpha);
    LAUNCH_OK(ctx, "axpy_kernel");
}

/* d (rows × cols, ld dst_ld) (+)= s (rows × cols, ld src_ld) */
__global__ static void copy_block_kernel(const float *s, int64_t src_ld, float *d, int64_t dst_ld, int64_t rows,
                                         int64_t cols, bool accumulate)
{
    CK_FOR(i, rows * cols)
    {
        int64_t r = i / cols, c = i % cols;
        float v = s[r * src_ld + c];
        float *q = d + r * dst_ld + c;
        *q = accumulate ? f_add(*q, v) : v;
    }
}

extern "C" void cuda_copy_block(Ctx *ctx, const Tensor *src, int64_t src_off, int64_t src_ld, Tensor *dst,
                                int64_t dst_off, int64_t dst_ld, int64_t rows, int64_t cols, bool accumulate)
{
    if (!cuda_ready(ctx) || rows <= 0 || cols <= 0)
        return;
    copy_block_kernel<<<ck_blocks(rows * cols, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        tensor_f32(src) + src_off, src_ld, tensor_f32(dst) + dst_off, dst_ld, rows, cols, accumulate);
    LAUNCH_OK(ctx, "copy_block_kernel");
}

/* Moving one step along dst dim i moves step[i] elements in src. */
typedef struct {
    int nd;
    int64_t dst_shape[TENSOR_MAX_DIMS];
    int64_t step[TENSOR_MAX_DIMS];
} PermutePlan;

__global__ static void permute_kernel(const float *in, float *out, int64_t n, PermutePlan p, bool accumulate)
{
    CK_FOR(k, n)
    {
        int64_t rem = k, off = 0;
#pragma unroll
        for (int i = TENSOR_MAX_DIMS - 1; i >= 0; i--) {
            if (i < p.nd) {
                int64_t idx = rem % p.dst_shape[i];
                rem /= p.dst_shape[i];
                off += idx * p.step[i];
            }
        }
        out[k] = accumulate ? f_add(out[k], in[off]) : in[off];
    }
}

extern "C" void cuda_permute(Ctx *ctx, const Tensor *src, const int *perm, Tensor *dst, bool accumulate)
{
    int64_t n = tensor_numel(dst);
    if (!cuda_ready(ctx) || n == 0)
        return;
    PermutePlan p;
    memset(&p, 0, sizeof p);
    p.nd = src->ndim;
    int64_t src_stride[TENSOR_MAX_DIMS], s = 1;
    for (int i = src->ndim - 1; i >= 0; i--) {
        src_stride[i] = s;
        s *= src->shape[i];
    }
    for (int i = 0; i < src->ndim; i++) {
        p.dst_shape[i] = dst->shape[i];
        p.step[i] = src_stride[perm[i]];
    }
    permute_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(tensor_f32(src),
                                                                                     tensor_f32(dst), n, p, accumulate);
    LAUNCH_OK(ctx, "permute_kernel");
}
