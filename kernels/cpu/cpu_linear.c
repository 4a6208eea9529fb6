/* cpu_linear.c — the fully connected layer on the CPU: reference loops and the GEMM fast path.
 *
 *   x (M, K)   w (N, K)   b (N) or NULL   y (M, N) = x wᵀ + b
 * Backward (accumulating): dx (M, K) += dy w;  dw (N, K) += dyᵀ x;  db (N) += Σ_m dy.
 * The fast path is one cpu_sgemm per product; db sums rows in a fixed order, so every result is
 * bit-identical run to run.
 */
#include "cpu_gemm.h"
#include "cpu_kernels.h"

void cpu_linear_forward_ref(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                            Tensor *y)
{
    const float *px = tensor_f32(x);            /* (M, K) */
    const float *pw = tensor_f32(w);            /* (N, K) */
    const float *pb = b ? tensor_f32(b) : NULL; /* (N) */
    float *py = tensor_f32(y);                  /* (M, N) */
    for (int64_t m = 0; m < g->M; m++)
        for (int64_t n = 0; n < g->N; n++) {
            double acc = pb ? pb[n] : 0.0;
            for (int64_t k = 0; k < g->K; k++)
                acc += (double)px[m * g->K + k] * pw[n * g->K + k];
            py[m * g->N + n] = (float)acc;
        }
}

void cpu_linear_backward_ref(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                             Tensor *dx, Tensor *dw, Tensor *db)
{
    const float *px = tensor_f32(x);          /* (M, K) */
    const float *pw = tensor_f32(w);          /* (N, K) */
    const float *pdy = tensor_f32(dy);        /* (M, N) */
    float *pdx = dx ? tensor_f32(dx) : NULL;  /* (M, K), accumulated */
    float *pdw = dw ? tensor_f32(dw) : NULL;  /* (N, K), accumulated */
    float *pdb = db ? tensor_f32(db) : NULL;  /* (N), accumulated */
    if (pdx)
        for (int64_t m = 0; m < g->M; m++)
            for (int64_t k = 0; k < g->K; k++) {
                double acc = 0;
                for (int64_t n = 0; n < g->N; n++)
                    acc += (double)pdy[m * g->N + n] * pw[n * g->K + k];
                pdx[m * g->K + k] += (float)acc;
            }
    if (pdw)
        for (int64_t n = 0; n < g->N; n++)
            for (int64_t k = 0; k < g->K; k++) {
                double acc = 0;
                for (int64_t m = 0; m < g->M; m++)
                    acc += (double)pdy[m * g->N + n] * px[m * g->K + k];
                pdw[n * g->K + k] += (float)acc;
            }
    if (pdb)
        for (int64_t n = 0; n < g->N; n++) {
            double acc = 0;
            for (int64_t m = 0; m < g->M; m++)
                acc += pdy[m * g->N + n];
            pdb[n] += (float)acc;
        }
}

void cpu_linear_forward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                        Tensor *y)
{
    if (ctx->cpu_reference) {
        cpu_linear_forward_ref(ctx, g, x, w, b, y);
        return;
    }
    const float *pb = b ? tensor_f32(b) : NULL; /* (N) */
    float *py = tensor_f32(y);                  /* (M, N) */
    /* y = x wᵀ, then + b: adding the bias afterwards keeps the GEMM a plain beta = 0 call */
    cpu_sgemm(false, true, g->M, g->N, g->K, 1.0f, tensor_f32(x), g->K, tensor_f32(w), g->K, 0.0f, py, g->N);
    if (pb) {
#pragma omp parallel for schedule(static) if (cpu_sgemm_shares_openmp() && g->M * g->N > (1 << 16))
        for (int64_t m = 0; m < g->M; m++)
            for (int64_t n = 0; n < g->N; n++)
                py[m * g->N + n] += pb[n];
    }
}

void cpu_linear_backward(Ctx *ctx, const LinearGeom *g, const Tensor *x, const Tensor *w, const Tensor *dy,
                         Tensor *dx, Tensor *dw, Tensor *db)
{
    if (ctx->cpu_reference) {
        cpu_linear_backward_ref(ctx, g, x, w, dy, dx, dw, db);
        return;
    }
    const float *pdy = tensor_f32(dy); /* (M, N) */
    if (dx) /* dx (M, K) += dy (M, N) · w (N, K) */
        cpu_sgemm(false, false, g->M, g->K, g->N, 1.0f, pdy, g->N, tensor_f32(w), g->K, 1.0f, tensor_f32(dx), g->K);
    if (dw) /* dw (N, K) += dyᵀ (N, M) · x (M, K) */
        cpu_sgemm(true, false, g->N, g->K, g->M, 1.0f, pdy, g->N, tensor_f32(x), g->K, 1.0f, tensor_f32(dw), g->K);
    if (db) {
        float *pdb = tensor_f32(db); /* (N), accumulated */
        /* column sums: rows added in order, vectorised along N */
        for (int64_t m = 0; m < g->M; m++)
            for (int64_t n = 0; n < g->N; n++)
                pdb[n] += pdy[m * g->N + n];
    }
}
