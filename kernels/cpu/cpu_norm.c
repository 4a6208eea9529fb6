/* cpu_norm.c — batch normalisation kernels (train and eval forward, backward) on the CPU.
 *
 * x is viewed as (N, C, S) with S the product of the dims after C (1 for BN1d), so one channel
 * c owns the elements x[(n·C + c)·S + s]. Every loop over channels writes only that channel's
 * outputs, so the channel loop may run in parallel; the sums inside one channel always run in
 * the same order (n, then s) in double precision, so results are bit-identical run to run and
 * do not lose digits on large batches.
 *
 * The synchronised batch norm (backend.h's last block, kernels/ops_norm.c) uses the same pieces
 * split at the reductions: batch_norm_stats gives this rank's Σx and Σ(x − local mean)²,
 * batch_norm_forward_stats finishes with given (global) statistics, batch_norm_backward_reduce
 * and batch_norm_backward_dx are batch_norm_backward's two loops apart.
 *
 * A fused epilogue (NormEpilogue, training): y = act(bn(x) + residual) per channel right after
 * the normalisation, with the add's and the activation's own expressions (cpu_elementwise.c);
 * backward reads dy through it, g = 0 + dy·act'(y), element by element, as the separate ops'
 * backward passes would have left g in their zeroed gradient buffers.
 */
#include <math.h>

#include "cpu_kernels.h"

/* Σx and Σ(x − mean)² of channel c, two passes in double (the one-pass E[x²] − E[x]² form
 * cancels badly when |mean| ≫ std). *mean = Σx / n (NaN when n = 0; then both sums are 0). */
static void channel_sums(const NormGeom *g, const float *px, int64_t c, double *sum_out, double *mean, double *sq_out)
{
    double n = (double)(g->N * g->S), sum = 0, sq = 0;
    for (int64_t i = 0; i < g->N; i++) {
        const float *row = px + (i * g->C + c) * g->S; /* (S) */
        for (int64_t s = 0; s < g->S; s++)
            sum += row[s];
    }
    double m = sum / n;
    for (int64_t i = 0; i < g->N; i++) {
        const float *row = px + (i * g->C + c) * g->S; /* (S) */
        for (int64_t s = 0; s < g->S; s++) {
            double d = row[s] - m;
            sq += d * d;
        }
    }
    *sum_out = sum;
    *mean = m;
    *sq_out = sq;
}

/* The epilogue on one value (act: 0 none, 1 ReLU, 2 ReLU6), as cpu_unary_forward. */
static inline float ep_act(int act, float v)
{
    if (act == 1)
        return v > 0 ? v : 0;
    if (act == 2)
        return v < 0 ? 0 : (v > 6 ? 6 : v);
    return v;
}

/* The gradient reaching bn(x) from dy where the epilogue's output is y: 0 + dy·act'(y) (ReLU:
 * y > 0 exactly where its input was; ReLU6: 0 < y < 6 likewise). */
static inline float ep_grad(int act, float y, float dy)
{
    float d = act == 1 ? (y > 0 ? 1.0f : 0.0f) : act == 2 ? ((y > 0 && y < 6) ? 1.0f : 0.0f) : 1.0f;
    return 0.0f + dy * d;
}

/* Mean and biased variance of channel c. */
static void channel_stats(const NormGeom *g, const float *px, int64_t c, double *mean, double *var)
{
    double sum, sq;
    channel_sums(g, px, c, &sum, mean, &sq);
    *var = sq / (double)(g->N * g->S);
}

/* y = (x − mean)·invstd·γ + β on channel c, as one scale and one shift per channel. */
static void channel_normalise(const NormGeom *g, const float *px, float *py, int64_t c, double mean, double invstd,
                              double gamma, double beta)
{
    double scale = invstd * gamma, shift = beta - mean * scale;
    for (int64_t i = 0; i < g->N; i++) {
        const float *xr = px + (i * g->C + c) * g->S; /* (S) */
        float *yr = py + (i * g->C + c) * g->S;       /* (S) */
        for (int64_t s = 0; s < g->S; s++)
            yr[s] = (float)(xr[s] * scale + shift);
    }
}

/* y = act(y + residual) on channel c (the fused epilogue, after channel_normalise). */
static void channel_epilogue(const NormGeom *g, const NormEpilogue *ep, float *py, int64_t c)
{
    const float *pr = ep->residual ? tensor_f32(ep->residual) : NULL; /* (N, C, S) or NULL */
    for (int64_t i = 0; i < g->N; i++) {
        float *yr = py + (i * g->C + c) * g->S;                   /* (S) */
        const float *rr = pr ? pr + (i * g->C + c) * g->S : NULL; /* (S) */
        for (int64_t s = 0; s < g->S; s++)
            yr[s] = ep_act(ep->act, rr ? yr[s] + rr[s] : yr[s]);
    }
}

/* The train forward of channel c once its statistics are known (this batch's, or the global
 * batch's for the synchronised op): saved mean/invstd, running statistics, y. unbias = n/(n−1)
 * for the n values the statistics cover. */
static void channel_finish_train(const NormGeom *g, const float *px, float *py, int64_t c, double mean, double var,
                                 double unbias, const float *pg, const float *pb, float *prm, float *prv, float *pm,
                                 float *pis)
{
    double mom = g->momentum;
    double invstd = 1.0 / sqrt(var + (double)g->eps);
    pm[c] = (float)mean;
    pis[c] = (float)invstd;
    /* Same order of terms as PyTorch's CPU update (momentum·batch + (1−momentum)·running). */
    prm[c] = (float)(mom * mean + (1.0 - mom) * prm[c]);
    prv[c] = (float)(mom * var * unbias + (1.0 - mom) * prv[c]);
    channel_normalise(g, px, py, c, mean, invstd, pg[c], pb[c]);
}

void cpu_batch_norm_forward_train(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                  const Tensor *beta, Tensor *running_mean, Tensor *running_var,
                                  const NormEpilogue *ep, Tensor *y, Tensor *save_mean, Tensor *save_invstd)
{
    const float *px = tensor_f32(x);                                   /* (N, C, S) */
    const float *pg = tensor_f32(gamma), *pb = tensor_f32(beta);       /* (C) each */
    float *prm = tensor_f32(running_mean), *prv = tensor_f32(running_var); /* (C) each, updated */
    float *py = tensor_f32(y);                                         /* (N, C, S) */
    float *pm = tensor_f32(save_mean), *pis = tensor_f32(save_invstd); /* (C) each */
    int64_t n = g->N * g->S;
    /* PyTorch keeps the running variance unbiased: var · n/(n−1). The op layer guarantees n > 1. */
    double unbias = (double)n / (double)(n - 1);
#pragma omp parallel for schedule(static) if (g->N * g->C * g->S > (1 << 16))
    for (int64_t c = 0; c < g->C; c++) {
        double mean, var;
        channel_stats(g, px, c, &mean, &var);
        channel_finish_train(g, px, py, c, mean, var, unbias, pg, pb, prm, prv, pm, pis);
        if (ep)
            channel_epilogue(g, ep, py, c);
    }
}

void cpu_batch_norm_forward_eval(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                 const Tensor *beta, const Tensor *running_mean, const Tensor *running_var,
                                 Tensor *y)
{
    const float *px = tensor_f32(x);                                         /* (N, C, S) */
    const float *pg = tensor_f32(gamma), *pb = tensor_f32(beta);             /* (C) each */
    const float *prm = tensor_f32(running_mean), *prv = tensor_f32(running_var); /* (C) each */
    float *py = tensor_f32(y);                                               /* (N, C, S) */
#pragma omp parallel for schedule(static) if (g->N * g->C * g->S > (1 << 16))
    for (int64_t c = 0; c < g->C; c++) {
        double invstd = 1.0 / sqrt((double)prv[c] + (double)g->eps);
        channel_normalise(g, px, py, c, prm[c], invstd, pg[c], pb[c]);
    }
}

/* With x̂ = (x − mean)·invstd:
 *   dβ = Σ dy,  dγ = Σ dy·x̂   (sums over n and s of one channel)
 *   eval (fixed statistics):  dx = dy·γ·invstd
 *   train (statistics of this batch, m = N·S values per channel):
 *       dx = γ·invstd/m · (m·dy − dβ − x̂·dγ)
 * The train formula needs both sums even when dγ/dβ themselves are not wanted. */

/* Σ dy and Σ dy·x̂ of channel c in double, n then s; with py (a fused epilogue's output, act its
 * activation), dy is read through the epilogue (ep_grad). */
static void channel_backward_sums(const NormGeom *g, const float *px, const float *pdy, const float *py, int act,
                                  int64_t c, double mu, double is, double *sum_dy_out, double *sum_dy_xhat_out)
{
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t i = 0; i < g->N; i++) {
        const float *xr = px + (i * g->C + c) * g->S;                   /* (S) */
        const float *gr = pdy + (i * g->C + c) * g->S;                  /* (S) */
        const float *yr = py ? py + (i * g->C + c) * g->S : NULL;       /* (S) or NULL */
        for (int64_t s = 0; s < g->S; s++) {
            float gv = yr ? ep_grad(act, yr[s], gr[s]) : gr[s];
            sum_dy += gv;
            sum_dy_xhat += gv * (xr[s] - mu) * is;
        }
    }
    *sum_dy_out = sum_dy;
    *sum_dy_xhat_out = sum_dy_xhat;
}

/* dx of channel c: the train formula over m values with the given sums, or the eval one; py and
 * act as channel_backward_sums. */
static void channel_backward_dx(const NormGeom *g, bool batch_stats, const float *px, const float *pdy,
                                const float *py, int act, float *pdx, int64_t c, double mu, double is, double gamma,
                                double m, double sum_dy, double sum_dy_xhat)
{
    double k = gamma * is;
    for (int64_t i = 0; i < g->N; i++) {
        const float *xr = px + (i * g->C + c) * g->S;                   /* (S) */
        const float *gr = pdy + (i * g->C + c) * g->S;                  /* (S) */
        const float *yr = py ? py + (i * g->C + c) * g->S : NULL;       /* (S) or NULL */
        float *dr = pdx + (i * g->C + c) * g->S;                        /* (S) */
        for (int64_t s = 0; s < g->S; s++) {
            float gv = yr ? ep_grad(act, yr[s], gr[s]) : gr[s];
            if (batch_stats) {
                double xhat = (xr[s] - mu) * is;
                dr[s] += (float)(k / m * (m * gv - sum_dy - xhat * sum_dy_xhat));
            } else {
                dr[s] += (float)(k * gv);
            }
        }
    }
}

/* dresidual += the gradient reaching bn(x) through the epilogue, channel c. */
static void channel_backward_residual(const NormGeom *g, const float *pdy, const float *py, int act, float *pdr,
                                      int64_t c)
{
    for (int64_t i = 0; i < g->N; i++) {
        const float *gr = pdy + (i * g->C + c) * g->S; /* (S) */
        const float *yr = py + (i * g->C + c) * g->S;  /* (S) */
        float *rr = pdr + (i * g->C + c) * g->S;       /* (S) */
        for (int64_t s = 0; s < g->S; s++)
            rr[s] += ep_grad(act, yr[s], gr[s]);
    }
}

void cpu_batch_norm_backward(Ctx *ctx, const NormGeom *g, bool batch_stats, const Tensor *x, const Tensor *gamma,
                             const Tensor *mean, const Tensor *invstd, const NormEpilogue *ep, const Tensor *y,
                             const Tensor *dy, Tensor *dx, Tensor *dgamma, Tensor *dbeta, Tensor *dresidual)
{
    const float *px = tensor_f32(x), *pdy = tensor_f32(dy);               /* (N, C, S) each */
    const float *py = ep ? tensor_f32(y) : NULL;                          /* (N, C, S): the epilogue's output */
    int act = ep ? ep->act : 0;
    float *pdr = ep && dresidual ? tensor_f32(dresidual) : NULL;          /* (N, C, S), accumulated */
    const float *pg = tensor_f32(gamma);                                  /* (C) */
    const float *pm = tensor_f32(mean), *pis = tensor_f32(invstd);        /* (C) each */
    float *pdx = dx ? tensor_f32(dx) : NULL;                              /* (N, C, S), accumulated */
    float *pdg = dgamma ? tensor_f32(dgamma) : NULL;                      /* (C), accumulated */
    float *pdb = dbeta ? tensor_f32(dbeta) : NULL;                        /* (C), accumulated */
    double m = (double)(g->N * g->S);
#pragma omp parallel for schedule(static) if (g->N * g->C * g->S > (1 << 16))
    for (int64_t c = 0; c < g->C; c++) {
        double mu = pm[c], is = pis[c], sum_dy, sum_dy_xhat;
        channel_backward_sums(g, px, pdy, py, act, c, mu, is, &sum_dy, &sum_dy_xhat);
        if (pdb)
            pdb[c] += (float)sum_dy;
        if (pdg)
            pdg[c] += (float)sum_dy_xhat;
        if (pdx)
            channel_backward_dx(g, batch_stats, px, pdy, py, act, pdx, c, mu, is, pg[c], m, sum_dy, sum_dy_xhat);
        if (pdr)
            channel_backward_residual(g, pdy, py, act, pdr, c);
    }
}

/* ---- synchronised batch norm: the pieces above, split at the reductions (backend.h) ---- */

void cpu_batch_norm_stats(Ctx *ctx, const NormGeom *g, const Tensor *x, double *stats)
{
    const float *px = tensor_f32(x); /* (N, C, S) */
    /* stats: (2, C) host: Σx, then Σ(x − local mean)² */
#pragma omp parallel for schedule(static) if (g->N * g->C * g->S > (1 << 16))
    for (int64_t c = 0; c < g->C; c++) {
        double mean;
        channel_sums(g, px, c, &stats[c], &mean, &stats[g->C + c]);
    }
}

void cpu_batch_norm_forward_stats(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                  const Tensor *beta, const double *mean, const double *var, double count,
                                  Tensor *running_mean, Tensor *running_var, Tensor *y, Tensor *save_mean,
                                  Tensor *save_invstd)
{
    const float *px = tensor_f32(x);                                   /* (N, C, S) */
    const float *pg = tensor_f32(gamma), *pb = tensor_f32(beta);       /* (C) each */
    float *prm = tensor_f32(running_mean), *prv = tensor_f32(running_var); /* (C) each, updated */
    float *py = tensor_f32(y);                                         /* (N, C, S) */
    float *pm = tensor_f32(save_mean), *pis = tensor_f32(save_invstd); /* (C) each */
    /* the global count: the op layer guarantees count > 1 */
    double unbias = count / (count - 1.0);
#pragma omp parallel for schedule(static) if (g->N * g->C * g->S > (1 << 16))
    for (int64_t c = 0; c < g->C; c++)
        channel_finish_train(g, px, py, c, mean[c], var[c], unbias, pg, pb, prm, prv, pm, pis);
}

void cpu_batch_norm_backward_reduce(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *mean,
                                    const Tensor *invstd, const Tensor *dy, double *sums, Tensor *dgamma,
                                    Tensor *dbeta)
{
    const float *px = tensor_f32(x), *pdy = tensor_f32(dy);        /* (N, C, S) each */
    const float *pm = tensor_f32(mean), *pis = tensor_f32(invstd); /* (C) each */
    float *pdg = dgamma ? tensor_f32(dgamma) : NULL;               /* (C), accumulated */
    float *pdb = dbeta ? tensor_f32(dbeta) : NULL;                 /* (C), accumulated */
    /* sums: (2, C) host: Σdy, then Σdy·x̂ */
#pragma omp parallel for schedule(static) if (g->N * g->C * g->S > (1 << 16))
    for (int64_t c = 0; c < g->C; c++) {
        channel_backward_sums(g, px, pdy, NULL, 0, c, pm[c], pis[c], &sums[c], &sums[g->C + c]);
        if (pdb)
            pdb[c] += (float)sums[c];
        if (pdg)
            pdg[c] += (float)sums[g->C + c];
    }
}

void cpu_batch_norm_backward_dx(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                const Tensor *mean, const Tensor *invstd, const Tensor *dy, const double *sums,
                                double count, Tensor *dx)
{
    const float *px = tensor_f32(x), *pdy = tensor_f32(dy);        /* (N, C, S) each */
    const float *pg = tensor_f32(gamma);                           /* (C) */
    const float *pm = tensor_f32(mean), *pis = tensor_f32(invstd); /* (C) each */
    float *pdx = tensor_f32(dx);                                   /* (N, C, S), accumulated */
#pragma omp parallel for schedule(static) if (g->N * g->C * g->S > (1 << 16))
    for (int64_t c = 0; c < g->C; c++)
        channel_backward_dx(g, true, px, pdy, NULL, 0, pdx, c, pm[c], pis[c], pg[c], count, sums[c], sums[g->C + c]);
}
