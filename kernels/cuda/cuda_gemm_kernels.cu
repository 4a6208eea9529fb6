/* cuda_gemm_kernels.cu — a plain fp32 GEMM for the cases cuBLASLt declines (no algorithm for a
 * layout or alignment): column-major D = op(A)·op(B) + beta·D (+ bias per row), 16×16 shared
 * tiles, the k loop in order: deterministic and simple, not fast. cuda_linear.c logs when it is
 * used. */
#include "kernels/cuda/cuda_kernels.cuh"

enum { GT = 16 };

/* Element (i, p) of op(A), with A column-major (lda) before the op. */
__device__ static inline float op_at(const float *A, int64_t lda, bool trans, int64_t i, int64_t p)
{
    return trans ? A[p + i * lda] : A[i + p * lda];
}

__global__ static void gemm_fallback_kernel(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *A,
                                            int64_t lda, const float *B, int64_t ldb, float beta, float *D,
                                            int64_t ldd, const float *bias)
{
    __shared__ float As[GT][GT + 1], Bs[GT][GT + 1];
    int64_t i = (int64_t)blockIdx.x * GT + threadIdx.x; /* row of D */
    int64_t j = (int64_t)blockIdx.y * GT + threadIdx.y; /* column of D */
    float acc = 0.0f;
    for (int64_t p0 = 0; p0 < k; p0 += GT) {
        /* As[r][q] = op(A)(block row r, p0 + q); Bs[q][c] = op(B)(p0 + q, block column c) */
        int64_t ar = (int64_t)blockIdx.x * GT + threadIdx.x, aq = p0 + threadIdx.y;
        As[threadIdx.x][threadIdx.y] = (ar < m && aq < k) ? op_at(A, lda, ta, ar, aq) : 0.0f;
        int64_t bq = p0 + threadIdx.x, bc = (int64_t)blockIdx.y * GT + threadIdx.y;
        Bs[threadIdx.x][threadIdx.y] = (bq < k && bc < n) ? op_at(B, ldb, tb, bq, bc) : 0.0f;
        __syncthreads();
#pragma unroll
        for (int q = 0; q < GT; q++)
            acc = fmaf(As[threadIdx.x][q], Bs[q][threadIdx.y], acc);
        __syncthreads();
    }
    if (i < m && j < n) {
        float *d = D + i + j * ldd;
        float v = beta != 0.0f ? f_add(acc, f_mul(beta, *d)) : acc;
        if (bias)
            v = f_add(v, bias[i]);
        *d = v;
    }
}

bool cuda_launch_gemm_fallback(Ctx *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *D,
                               int64_t ldd, const float *bias)
{
    if (m <= 0 || n <= 0)
        return true;
    if ((m + GT - 1) / GT > INT32_MAX || (n + GT - 1) / GT > 65535) {
        ctx_set_error(ctx, "gemm fallback: %lld x %lld output exceeds the grid limits", (long long)m, (long long)n);
        return false;
    }
    dim3 block(GT, GT), grid((unsigned)((m + GT - 1) / GT), (unsigned)((n + GT - 1) / GT));
    gemm_fallback_kernel<<<grid, block, 0, cuda_stream_of(ctx)>>>(trans_a, trans_b, m, n, k, A, lda, B, ldb, beta, D,
                                                                  ldd, bias);
    return LAUNCH_OK(ctx, "gemm_fallback_kernel");
}
