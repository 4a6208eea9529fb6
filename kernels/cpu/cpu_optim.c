/* cpu_optim.c — the optimizer's in-place updates on host memory (backend.h sgd_update,
 * sum_squares, scale_inplace): the reference loops the CUDA kernels are checked against. */
#include <math.h>

#include "kernels/cpu/cpu_kernels.h"

void cpu_sgd_update(Ctx *ctx, int64_t n, float *p, const float *g, float *buf, float neg_lr, float wd,
                    float momentum, bool fresh)
{
    (void)ctx;
    /* p, g, buf: (n) */
#if HAVE_OPENMP
#pragma omp parallel for schedule(static) if (n > 65536)
#endif
    for (int64_t j = 0; j < n; j++) {
        float d = wd != 0.0f ? fmaf(wd, p[j], g[j]) : g[j];
        float b = d; /* PyTorch's buffer starts as a clone of d; without momentum it keeps none */
        if (!fresh) {
            /* two statements: mul_ and add_ round separately (ISO C mode does not contract) */
            b = buf[j] * momentum;
            b = b + d;
        }
        buf[j] = b;
        p[j] = fmaf(neg_lr, b, p[j]);
    }
}

double cpu_sum_squares(Ctx *ctx, int64_t n, const float *x)
{
    (void)ctx;
    double s = 0.0; /* x: (n), summed in index order */
    for (int64_t j = 0; j < n; j++)
        s += (double)x[j] * x[j];
    return s;
}

void cpu_scale_inplace(Ctx *ctx, int64_t n, float *x, double coef)
{
    (void)ctx;
    for (int64_t j = 0; j < n; j++) /* x: (n) */
        x[j] = (float)(x[j] * coef);
}
