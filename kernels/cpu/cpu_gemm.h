/* cpu_gemm.h — single-precision matrix multiply for the CPU kernels (conv, linear).
 *
 * Owns: cpu_sgemm, the one GEMM entry point of kernels/cpu, and cpu_sgemm_builtin, the portable
 * blocked C GEMM it falls back to. All matrices are row-major:
 *     C (M, N) = alpha · op(A) (M, K) · op(B) (K, N) + beta · C
 * op(A) = A stored (M, K) with leading dim lda, or, when trans_a, Aᵀ of A stored (K, M);
 * op(B) = B stored (K, N) with leading dim ldb, or, when trans_b, Bᵀ of B stored (N, K).
 * beta == 0 overwrites C without reading it (BLAS semantics: C may hold garbage or NaN).
 *
 * cpu_sgemm calls OpenBLAS (cblas_sgemm) when the build found it (HAVE_BLAS=1), else the builtin.
 * Both are deterministic: the same call gives bit-identical results on every run with the same
 * thread count (the builtin: with any thread count). Call them from serial code: they thread
 * internally (OpenBLAS threads, or OpenMP in the builtin).
 */
#ifndef FOCUSBENCH_CPU_GEMM_H
#define FOCUSBENCH_CPU_GEMM_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* c + a·b as one fused multiply-add where the target has FMA (the C11 build does not contract
 * a*b+c on its own, and vectorised fmaf is one instruction); elsewhere a multiply and an add,
 * which beats a libm call. Shared by the CPU kernels that want FMA throughput. */
#ifdef FP_FAST_FMAF
#define CPU_MADD(a, b, c) fmaf((a), (b), (c))
#else
#define CPU_MADD(a, b, c) ((a) * (b) + (c))
#endif

void cpu_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* True when cpu_sgemm's threads are this program's OpenMP threads (the builtin, or an OpenMP or
 * sequential OpenBLAS). With OpenBLAS's own pthread pool, callers should not wrap OpenMP loops
 * around their GEMM calls: OpenMP workers spin for milliseconds after each parallel region and
 * take the cores from the BLAS threads (measured on 2 cores: a ResNet-50 3×3 conv at 52 instead
 * of 295 GFLOP/s). */
bool cpu_sgemm_shares_openmp(void);

/* The portable fallback, always compiled so tests exercise it on machines with OpenBLAS too. */
void cpu_sgemm_builtin(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                       int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

#endif
