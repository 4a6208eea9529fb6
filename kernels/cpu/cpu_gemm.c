/* cpu_gemm.c — cpu_sgemm (OpenBLAS when built with it) and the portable blocked GEMM fallback.
 *
 * The builtin follows the usual GotoBLAS structure in plain C that GCC/Clang auto-vectorise:
 * C is cut into MC×NC tiles, one tile per OpenMP iteration (tiles write disjoint parts of C, so
 * the result does not depend on the thread count); per KC-deep slice each tile packs its block of
 * A into MR-row strips and its block of B into NR-column strips (contiguous, zero-padded, alpha
 * folded into A), and a register-blocked MR×NR micro-kernel accumulates over the slice. Every C
 * element therefore sums its K products in one fixed order. Packing buffers live on the stack
 * (about 0.4 MiB per thread), so the fallback never calls malloc.
 */
#include "cpu_gemm.h"

#include <limits.h>
#include <string.h>

/* FOCUSBENCH_BUILTIN_GEMM=1 (make CFLAGS_EXTRA=-DFOCUSBENCH_BUILTIN_GEMM=1) uses the builtin even
 * where OpenBLAS exists: a distribution OpenBLAS that does not know the CPU (Debian 12's 0.3.21
 * runs its AVX2 Haswell kernels on AVX-512 Zen 5) can be slower than the builtin. */
#ifndef FOCUSBENCH_BUILTIN_GEMM
#define FOCUSBENCH_BUILTIN_GEMM 0
#endif
#if HAVE_BLAS && !FOCUSBENCH_BUILTIN_GEMM
#include <cblas.h>
#endif

/* NR spans two vector registers of the widest ISA the compiler targets (AVX-512: 2 × 16 floats;
 * AVX2/SSE: 2 × 8), MR rows of accumulators: 6 × 2 = 12 accumulator registers, enough to hide
 * the FMA latency on two FMA pipes while leaving registers for the B vectors. */
#if defined(__AVX512F__)
enum { GEMM_NR = 32 };
#else
enum { GEMM_NR = 16 };
#endif
enum {
    GEMM_MR = 6,
    GEMM_KC = 256,                 /* B strip (KC × NR) stays in L1 across the strips of A */
    GEMM_MC = 16 * GEMM_MR,        /* packed A block (MC × KC): 96 KiB, L2 */
    GEMM_NC = 256 / GEMM_NR * GEMM_NR, /* packed B block (KC × NC): 256 KiB, L2 */
};

/* Packs alpha·op(A)[i0 : i0+mc, k0 : k0+kc] into ap: (ceil(mc/MR), kc, MR), rows past mc zero. */
static void pack_a(bool trans_a, const float *A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                   float alpha, float *restrict ap)
{
    for (int64_t s = 0; s < mc; s += GEMM_MR) {
        int64_t rows = mc - s < GEMM_MR ? mc - s : GEMM_MR;
        float *dst = ap + s * kc; /* strip s/MR: (kc, MR) */
        for (int64_t k = 0; k < kc; k++) {
            for (int64_t r = 0; r < rows; r++) {
                int64_t i = i0 + s + r, kk = k0 + k;
                dst[k * GEMM_MR + r] = alpha * (trans_a ? A[kk * lda + i] : A[i * lda + kk]);
            }
            for (int64_t r = rows; r < GEMM_MR; r++)
                dst[k * GEMM_MR + r] = 0.0f;
        }
    }
}

/* Packs op(B)[k0 : k0+kc, j0 : j0+nc] into bp: (ceil(nc/NR), kc, NR), columns past nc zero. */
static void pack_b(bool trans_b, const float *B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
                   float *restrict bp)
{
    for (int64_t s = 0; s < nc; s += GEMM_NR) {
        int64_t cols = nc - s < GEMM_NR ? nc - s : GEMM_NR;
        float *dst = bp + s * kc; /* strip s/NR: (kc, NR) */
        for (int64_t k = 0; k < kc; k++) {
            int64_t kk = k0 + k;
            if (!trans_b && cols == GEMM_NR) {
                memcpy(dst + k * GEMM_NR, B + kk * ldb + j0 + s, GEMM_NR * sizeof(float));
                continue;
            }
            for (int64_t c = 0; c < cols; c++) {
                int64_t j = j0 + s + c;
                dst[k * GEMM_NR + c] = trans_b ? B[j * ldb + kk] : B[kk * ldb + j];
            }
            for (int64_t c = cols; c < GEMM_NR; c++)
                dst[k * GEMM_NR + c] = 0.0f;
        }
    }
}

/* C[0:mr, 0:nc] += Σ_k ap[k] ⊗ bp[k]. ap: (kc, MR) strip, bp: (kc, NR) strip, C leading dim ldc.
 * The fixed-size accumulator array becomes 12 vector registers after full unrolling. */
static void micro_kernel(int64_t kc, const float *restrict ap, const float *restrict bp, float *restrict c,
                         int64_t ldc, int64_t mr, int64_t nc)
{
    float acc[GEMM_MR][GEMM_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++) {
        const float *a = ap + k * GEMM_MR; /* (MR) */
        const float *b = bp + k * GEMM_NR; /* (NR) */
        for (int i = 0; i < GEMM_MR; i++)
            for (int j = 0; j < GEMM_NR; j++)
                acc[i][j] = CPU_MADD(a[i], b[j], acc[i][j]);
    }
    if (mr == GEMM_MR && nc == GEMM_NR) {
        for (int i = 0; i < GEMM_MR; i++)
            for (int j = 0; j < GEMM_NR; j++)
                c[i * ldc + j] += acc[i][j];
    } else {
        for (int64_t i = 0; i < mr; i++)
            for (int64_t j = 0; j < nc; j++)
                c[i * ldc + j] += acc[i][j];
    }
}

/* C[i0 : i0+mc, j0 : j0+nc] *= beta, with beta == 0 writing zeros (C may be uninitialised). */
static void scale_tile(float *C, int64_t ldc, int64_t i0, int64_t mc, int64_t j0, int64_t nc, float beta)
{
    for (int64_t i = i0; i < i0 + mc; i++) {
        float *row = C + i * ldc + j0;
        if (beta == 0.0f)
            memset(row, 0, (size_t)nc * sizeof(float));
        else
            for (int64_t j = 0; j < nc; j++)
                row[j] *= beta;
    }
}

void cpu_sgemm_builtin(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                       int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return;
    int64_t tiles_m = (M + GEMM_MC - 1) / GEMM_MC, tiles_n = (N + GEMM_NC - 1) / GEMM_NC;
    bool multiply = K > 0 && alpha != 0.0f;
    /* Threads only pay off above a few MFLOP; below, the fork/join costs more than it saves. */
#pragma omp parallel for schedule(static) if (tiles_m * tiles_n > 1 && (double)M * N * K > 2e6)
    for (int64_t t = 0; t < tiles_m * tiles_n; t++) {
        int64_t i0 = t / tiles_n * GEMM_MC, j0 = t % tiles_n * GEMM_NC;
        int64_t mc = M - i0 < GEMM_MC ? M - i0 : GEMM_MC;
        int64_t nc = N - j0 < GEMM_NC ? N - j0 : GEMM_NC;
        if (beta != 1.0f)
            scale_tile(C, ldc, i0, mc, j0, nc, beta);
        if (!multiply)
            continue;
        _Alignas(64) float ap[GEMM_MC * GEMM_KC]; /* (MC/MR, KC, MR) */
        _Alignas(64) float bp[GEMM_KC * GEMM_NC]; /* (NC/NR, KC, NR) */
        for (int64_t k0 = 0; k0 < K; k0 += GEMM_KC) {
            int64_t kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
            pack_a(trans_a, A, lda, i0, mc, k0, kc, alpha, ap);
            pack_b(trans_b, B, ldb, k0, kc, j0, nc, bp);
            for (int64_t js = 0; js < nc; js += GEMM_NR) {
                int64_t ncs = nc - js < GEMM_NR ? nc - js : GEMM_NR;
                for (int64_t is = 0; is < mc; is += GEMM_MR) {
                    int64_t mrs = mc - is < GEMM_MR ? mc - is : GEMM_MR;
                    micro_kernel(kc, ap + is * kc, bp + js * kc, C + (i0 + is) * ldc + j0 + js, ldc, mrs, ncs);
                }
            }
        }
    }
}

bool cpu_sgemm_shares_openmp(void)
{
#if HAVE_BLAS && !FOCUSBENCH_BUILTIN_GEMM
#ifdef OPENBLAS_THREAD
    return openblas_get_parallel() != OPENBLAS_THREAD;
#else
    return false; /* another CBLAS: assume it brings its own threads */
#endif
#else
    return true;
#endif
}

void cpu_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
#if HAVE_BLAS && !FOCUSBENCH_BUILTIN_GEMM
    /* CBLAS takes int sizes; K == 0 is left to the builtin because some BLAS builds reject the
     * leading dimensions of an empty operand. */
    bool fits = M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX;
    if (M > 0 && N > 0 && K > 0 && fits) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M,
                    (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
        return;
    }
#endif
    cpu_sgemm_builtin(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
