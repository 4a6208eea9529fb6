/* cuda_softmax.cu — softmax, log-softmax and the fused mean cross-entropy on the GPU, with the
 * formulas of kernels/cpu/cpu_softmax.c: exponents of x − max(row), the log-sum-exp and the dot
 * products of the backward pass accumulated in double, the mean loss summed over rows in row
 * order by one thread (as the CPU). One block per row, fixed-order tree sums: deterministic.
 */
#include <math.h>

#include "kernels/cuda/cuda_kernels.cuh"

enum { ROW_THREADS = 128 };

/* Maximum of the row (NaN never selected, as the CPU's `row[j] > mx ? row[j] : mx`) and the
 * log-sum-exp, both in double; every thread of the block gets them. */
__device__ static void row_lse(const float *row, int64_t cols, double *sh, double *mx_out, double *lse_out)
{
    double mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
        mx = (double)row[j] > mx ? (double)row[j] : mx;
    sh[threadIdx.x] = mx;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] = sh[threadIdx.x + s] > sh[threadIdx.x] ? sh[threadIdx.x + s] : sh[threadIdx.x];
        __syncthreads();
    }
    mx = sh[0];
    __syncthreads();
    double sum = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
        sum = d_add(sum, exp(d_sub((double)row[j], mx)));
    sum = ck_block_sum(sum, sh);
    *mx_out = mx;
    *lse_out = d_add(mx, log(sum));
}

__global__ static void softmax_forward_kernel(int64_t cols, bool log_out, const float *x, float *y)
{
    __shared__ double sh[ROW_THREADS];
    int64_t r = blockIdx.x;
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    double mx, lse;
    row_lse(xr, cols, sh, &mx, &lse);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        double d = d_sub((double)xr[j], lse);
        yr[j] = log_out ? (float)d : (float)exp(d);
    }
}

extern "C" void cuda_softmax_forward(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *x, Tensor *y)
{
    if (!cuda_ready(ctx) || rows == 0 || cols == 0)
        return;
    if (rows > INT32_MAX) {
        ctx_set_error(ctx, "softmax: %lld rows exceed the CUDA grid limit", (long long)rows);
        return;
    }
    softmax_forward_kernel<<<(unsigned)rows, ROW_THREADS, 0, cuda_stream_of(ctx)>>>(cols, log, tensor_f32(x),
                                                                                    tensor_f32(y));
    LAUNCH_OK(ctx, "softmax_forward_kernel");
}

/* softmax: dx += y·(dy − Σ dy·y);  log-softmax: dx += dy − exp(y)·Σ dy. */
__global__ static void softmax_backward_kernel(int64_t cols, bool log_out, const float *y, const float *dy, float *dx)
{
    __shared__ double sh[ROW_THREADS];
    int64_t r = blockIdx.x;
    const float *yr = y + r * cols, *gr = dy + r * cols;
    float *dr = dx + r * cols;
    double dot = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
        dot = d_add(dot, log_out ? (double)gr[j] : d_mul((double)gr[j], (double)yr[j]));
    dot = ck_block_sum(dot, sh);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        double v = log_out ? d_sub((double)gr[j], d_mul(exp((double)yr[j]), dot))
                           : d_mul((double)yr[j], d_sub((double)gr[j], dot));
        dr[j] = f_add(dr[j], (float)v);
    }
}

extern "C" void cuda_softmax_backward(Ctx *ctx, int64_t rows, int64_t cols, bool log, const Tensor *y,
                                      const Tensor *dy, Tensor *dx)
{
    if (!cuda_ready(ctx) || rows == 0 || cols == 0)
        return;
    if (rows > INT32_MAX) {
        ctx_set_error(ctx, "softmax backward: %lld rows exceed the CUDA grid limit", (long long)rows);
        return;
    }
    softmax_backward_kernel<<<(unsigned)rows, ROW_THREADS, 0, cuda_stream_of(ctx)>>>(cols, log, tensor_f32(y),
                                                                                     tensor_f32(dy), tensor_f32(dx));
    LAUNCH_OK(ctx, "softmax_backward_kernel");
}

/* probs = softmax(row); term[r] = lse − x[label] (NaN for a label outside [0, cols): the op
 * layer checks labels it can read on the host; on the device a bad label poisons the loss
 * instead of reading out of bounds). */
__global__ static void cross_entropy_rows_kernel(int64_t cols, const float *x, const int32_t *labels, float *probs,
                                                 double *term)
{
    __shared__ double sh[ROW_THREADS];
    int64_t r = blockIdx.x;
    const float *xr = x + r * cols;
    float *pr = probs + r * cols;
    double mx, lse;
    row_lse(xr, cols, sh, &mx, &lse);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
        pr[j] = (float)exp(d_sub((double)xr[j], lse));
    if (threadIdx.x == 0) {
        int32_t label = labels[r];
        term[r] = (label >= 0 && label < cols) ? d_sub(lse, (double)xr[label]) : (double)NAN;
    }
}

/* loss = (float)(Σ_r term[r] / rows), rows in order (the CPU's sum, to the bit). */
__global__ static void cross_entropy_mean_kernel(int64_t rows, const double *term, float *loss)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        double total = 0.0;
        for (int64_t r = 0; r < rows; r++)
            total = d_add(total, term[r]);
        loss[0] = (float)d_div(total, (double)rows);
    }
}

extern "C" void cuda_cross_entropy_forward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *logits,
                                           const Tensor *labels, Tensor *loss, Tensor *probs)
{
    if (!cuda_ready(ctx) || rows == 0 || cols == 0)
        return;
    if (rows > INT32_MAX) {
        ctx_set_error(ctx, "cross_entropy: %lld rows exceed the CUDA grid limit", (long long)rows);
        return;
    }
    cudaStream_t s = cuda_stream_of(ctx);
    double *term = (double *)cuda_scratch(ctx, (size_t)rows * sizeof(double), "cross_entropy row losses");
    if (term) {
        cross_entropy_rows_kernel<<<(unsigned)rows, ROW_THREADS, 0, s>>>(cols, tensor_f32(logits), tensor_i32(labels),
                                                                        tensor_f32(probs), term);
        if (LAUNCH_OK(ctx, "cross_entropy_rows_kernel")) {
            cross_entropy_mean_kernel<<<1, 1, 0, s>>>(rows, term, tensor_f32(loss));
            LAUNCH_OK(ctx, "cross_entropy_mean_kernel");
        }
    }
    cuda_scratch_release(ctx);
}

/* dlogits += (float)((p − onehot(label)) · dloss / rows), dloss read on the device. */
__global__ static void cross_entropy_backward_kernel(int64_t rows, int64_t cols, const float *probs,
                                                     const int32_t *labels, const float *dloss, float *dlogits)
{
    double k = d_div((double)dloss[0], (double)rows);
    CK_FOR(i, rows * cols)
    {
        int64_t r = i / cols, j = i % cols;
        double onehot = j == labels[r] ? 1.0 : 0.0;
        dlogits[i] = f_add(dlogits[i], (float)d_mul(d_sub((double)probs[i], onehot), k));
    }
}

extern "C" void cuda_cross_entropy_backward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *probs,
                                            const Tensor *labels, const Tensor *dloss, Tensor *dlogits)
{
    int64_t n = rows * cols;
    if (!cuda_ready(ctx) || n == 0)
        return;
    cross_entropy_backward_kernel<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, cuda_stream_of(ctx)>>>(
        rows, cols, tensor_f32(probs), tensor_i32(labels), tensor_f32(dloss), tensor_f32(dlogits));
    LAUNCH_OK(ctx, "cross_entropy_backward_kernel");
}
