/* cuda_norm.cu — batch normalisation on the GPU (train and eval forward, backward): the CUDA
 * version of kernels/cpu/cpu_norm.c with its formulas and its double-precision statistics.
 *
 * x is viewed as (N, C, S); channel c owns x[(n·C + c)·S + s]. Per-channel sums are split into
 * fixed chunks (`chunks` blocks per channel, each a fixed-order tree sum in double), and one
 * thread per channel adds its chunks in order: deterministic, no atomics, and equal to the
 * CPU's sums up to the order of double additions. Where a channel's planes hold a multiple of 4
 * values (and the pointers are 16-byte aligned) each thread moves 4 consecutive values of a plane
 * with one 16-byte access (BN_VEC): the element loops were latency-bound with one 4-byte access
 * in flight per thread; the per-element arithmetic is the same. The statistics then go through exactly the
 * CPU's double arithmetic (mean, two-pass biased variance, 1/sqrt(var + eps), the running-stat
 * update with the unbiased variance, scale and shift), and y = (float)(x·scale + shift) in double.
 *
 * A fused epilogue (NormEpilogue, training; BnEp below): the normalise kernel applies the residual
 * and the activation as it writes y; backward kernels read dy through it, g = 0 + dy·act'(y), and
 * the dx kernel adds g to the residual's gradient — the CPU's expressions (cpu_norm.c).
 *
 * The synchronised batch norm's pieces (backend.h's last block, kernels/ops_norm.c) are the same
 * kernels split at the reductions: batch_norm_stats copies this rank's Σx and Σ(x − mean)² to
 * the host and waits; batch_norm_forward_stats copies the global mean/variance in and finishes as
 * the train forward; batch_norm_backward_reduce copies this rank's Σdy, Σdy·x̂ out (and adds them
 * to dγ/dβ); batch_norm_backward_dx copies the global sums in. Host arrays are (2, C), planar.
 */
#include "kernels/cuda/cuda_kernels.cuh"

enum { BN_CHUNK = 8192, BN_MAX_CHUNKS = 512, BN_VEC = 4 };

typedef struct {
    int64_t N, C, S;
    int64_t m;          /* N·S values per channel */
    int64_t chunk_len;  /* values per partial-sum block */
    int chunks;         /* blocks per channel */
} BnPlan;

static BnPlan bn_plan(const NormGeom *g)
{
    BnPlan p;
    p.N = g->N, p.C = g->C, p.S = g->S, p.m = g->N * g->S;
    int64_t chunks = (p.m + BN_CHUNK - 1) / BN_CHUNK;
    if (chunks > BN_MAX_CHUNKS)
        chunks = BN_MAX_CHUNKS;
    if (chunks < 1)
        chunks = 1;
    p.chunk_len = (p.m + chunks - 1) / chunks;
    if (p.chunk_len < 1)
        p.chunk_len = 1;
    if (p.S % BN_VEC == 0) /* chunks of whole 4-value groups (a group never straddles two planes) */
        p.chunk_len = (p.chunk_len + BN_VEC - 1) / BN_VEC * BN_VEC;
    p.chunks = (int)((p.m + p.chunk_len - 1) / p.chunk_len);
    if (p.chunks < 1)
        p.chunks = 1;
    return p;
}

/* Element e (0 ≤ e < N·S) of channel c. */
__device__ static inline int64_t bn_index(const BnPlan &p, int64_t c, int64_t e)
{
    return ((e / p.S) * p.C + c) * p.S + e % p.S;
}

/* The channel of element k of an (N, C, S) tensor. */
__device__ static inline int64_t bn_channel(int64_t k, int64_t C, int64_t S) { return (k / S) % C; }

/* V consecutive floats at p (V = 1, or BN_VEC as one 16-byte access). */
template <int V>
__device__ static inline void bn_load(const float *p, float *v)
{
    if (V == BN_VEC) {
        float4 q = *reinterpret_cast<const float4 *>(p);
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
#pragma unroll
        for (int j = 0; j < V; j++)
            v[j] = p[j];
    }
}

template <int V>
__device__ static inline void bn_store(float *p, const float *v)
{
    if (V == BN_VEC) {
        *reinterpret_cast<float4 *>(p) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
#pragma unroll
        for (int j = 0; j < V; j++)
            p[j] = v[j];
    }
}

/* BN_VEC when every plane holds whole 4-value groups and the pointers (NULL: absent) allow
 * 16-byte accesses. */
static int bn_width(int64_t S, const void *a, const void *b = NULL, const void *c = NULL, const void *d = NULL,
                    const void *e = NULL)
{
    uintptr_t bits = (uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d | (uintptr_t)e;
    return S % BN_VEC == 0 && (bits & 15u) == 0 ? BN_VEC : 1;
}

/* The fused epilogue on the device: forward reads r (the residual, or NULL); backward reads y
 * (the forward's output; NULL: no epilogue) and adds to dr (the residual's gradient, or NULL).
 * act: 0 none, 1 ReLU, 2 ReLU6. */
typedef struct {
    const float *r, *y;
    float *dr;
    int act;
} BnEp;

static const BnEp BN_NO_EP = {NULL, NULL, NULL, 0};

/* The gradient reaching bn(x) from dy where the epilogue's output is y (cpu_norm.c's ep_grad). */
__device__ static inline float bn_ep_grad(int act, float y, float dy)
{
    float d = act == 1 ? (y > 0 ? 1.0f : 0.0f) : act == 2 ? ((y > 0 && y < 6) ? 1.0f : 0.0f) : 1.0f;
    return f_add(0.0f, f_mul(dy, d));
}

/* Grid (C, chunks). partial[c·chunks + chunk] = Σ x (center == NULL) or Σ (x − center[c])². Each
 * thread takes V consecutive values of a plane at a time (chunk bounds are multiples of V). */
template <int V>
__global__ static void bn_partial_kernel(BnPlan p, const float *x, const double *center, double *partial)
{
    __shared__ double sh[CK_THREADS];
    int64_t c = blockIdx.x;
    int64_t e0 = (int64_t)blockIdx.y * p.chunk_len, e1 = e0 + p.chunk_len < p.m ? e0 + p.chunk_len : p.m;
    double mu = center ? center[c] : 0.0, acc = 0.0;
    for (int64_t e = e0 + (int64_t)V * threadIdx.x; e < e1; e += (int64_t)V * blockDim.x) {
        float xv[V];
        bn_load<V>(x + bn_index(p, c, e), xv);
#pragma unroll
        for (int j = 0; j < V; j++) {
            double v = (double)xv[j];
            if (center) {
                double d = d_sub(v, mu);
                acc = d_add(acc, d_mul(d, d));
            } else {
                acc = d_add(acc, v);
            }
        }
    }
    double total = ck_block_sum(acc, sh);
    if (threadIdx.x == 0)
        partial[c * p.chunks + blockIdx.y] = total;
}

__device__ static inline double bn_chunk_total(const BnPlan &p, const double *partial, int64_t c)
{
    double acc = 0.0;
    for (int k = 0; k < p.chunks; k++)
        acc = d_add(acc, partial[c * p.chunks + k]);
    return acc;
}

__global__ static void bn_mean_kernel(BnPlan p, const double *partial, double *mean)
{
    CK_FOR(c, p.C) mean[c] = d_div(bn_chunk_total(p, partial, c), (double)p.m);
}

/* From the squared deviations: invstd, saved statistics, running statistics, scale and shift. */
__global__ static void bn_train_stats_kernel(BnPlan p, const double *partial, const double *mean, float eps,
                                             float momentum, const float *gamma, const float *beta, float *rmean,
                                             float *rvar, float *save_mean, float *save_invstd, double *scale,
                                             double *shift)
{
    CK_FOR(c, p.C)
    {
        double var = d_div(bn_chunk_total(p, partial, c), (double)p.m);
        double invstd = d_div(1.0, sqrt(d_add(var, (double)eps)));
        double mu = mean[c], mom = (double)momentum;
        double unbias = d_div((double)p.m, (double)(p.m - 1));
        save_mean[c] = (float)mu;
        save_invstd[c] = (float)invstd;
        rmean[c] = (float)d_add(d_mul(mom, mu), d_mul(d_sub(1.0, mom), (double)rmean[c]));
        rvar[c] = (float)d_add(d_mul(d_mul(mom, var), unbias), d_mul(d_sub(1.0, mom), (double)rvar[c]));
        double sc = d_mul(invstd, (double)gamma[c]);
        scale[c] = sc;
        shift[c] = d_sub((double)beta[c], d_mul(mu, sc));
    }
}

__global__ static void bn_eval_stats_kernel(int64_t C, float eps, const float *gamma, const float *beta,
                                            const float *rmean, const float *rvar, double *scale, double *shift)
{
    CK_FOR(c, C)
    {
        double invstd = d_div(1.0, sqrt(d_add((double)rvar[c], (double)eps)));
        double sc = d_mul(invstd, (double)gamma[c]);
        scale[c] = sc;
        shift[c] = d_sub((double)beta[c], d_mul((double)rmean[c], sc));
    }
}

/* y = (float)(x·scale[c] + shift[c]) in double, as channel_normalise; V values per thread. */
template <int V>
__global__ static void bn_normalise_kernel(int64_t groups, int64_t C, int64_t S, const float *x, const double *scale,
                                           const double *shift, BnEp ep, float *y)
{
    CK_FOR(q, groups)
    {
        int64_t k = q * V, c = bn_channel(k, C, S);
        double sc = scale[c], sh = shift[c];
        float v[V], r[V];
        bn_load<V>(x + k, v);
        if (ep.r)
            bn_load<V>(ep.r + k, r);
#pragma unroll
        for (int j = 0; j < V; j++) {
            v[j] = (float)d_add(d_mul((double)v[j], sc), sh);
            v[j] = ck_act(ep.r ? f_add(v[j], r[j]) : v[j], ep.act);
        }
        bn_store<V>(y + k, v);
    }
}

/* y = epilogue(x·scale + shift) (ep.r and ep.act; BN_NO_EP: none). */
static bool bn_launch_normalise(Ctx *ctx, int64_t total, int64_t C, int64_t S, const float *x, const double *scale,
                                const double *shift, const BnEp &ep, float *y)
{
    cudaStream_t s = cuda_stream_of(ctx);
    if (bn_width(S, x, y, ep.r) == BN_VEC)
        bn_normalise_kernel<BN_VEC><<<ck_blocks(total / BN_VEC, CK_THREADS), CK_THREADS, 0, s>>>(
            total / BN_VEC, C, S, x, scale, shift, ep, y);
    else
        bn_normalise_kernel<1><<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, s>>>(total, C, S, x, scale, shift, ep,
                                                                                   y);
    return LAUNCH_OK(ctx, "bn_normalise_kernel");
}

/* The two partial-sum passes of the forward: Σ x (center NULL), then Σ (x − center)². */
static bool bn_launch_partial(Ctx *ctx, const BnPlan &p, const float *x, const double *center, double *partial)
{
    dim3 grid((unsigned)p.C, (unsigned)p.chunks);
    cudaStream_t s = cuda_stream_of(ctx);
    if (bn_width(p.S, x, NULL, NULL) == BN_VEC)
        bn_partial_kernel<BN_VEC><<<grid, CK_THREADS, 0, s>>>(p, x, center, partial);
    else
        bn_partial_kernel<1><<<grid, CK_THREADS, 0, s>>>(p, x, center, partial);
    return LAUNCH_OK(ctx, center ? "bn_partial_kernel(squared deviations)" : "bn_partial_kernel(sum)");
}

extern "C" void cuda_batch_norm_forward_train(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                              const Tensor *beta, Tensor *running_mean, Tensor *running_var,
                                              const NormEpilogue *ep, Tensor *y, Tensor *save_mean,
                                              Tensor *save_invstd)
{
    if (!cuda_ready(ctx) || g->C == 0)
        return;
    BnPlan p = bn_plan(g);
    cudaStream_t s = cuda_stream_of(ctx);
    double *partial = (double *)cuda_scratch(ctx, (size_t)(p.C * p.chunks) * sizeof(double), "batch_norm partials");
    double *stats = (double *)cuda_scratch(ctx, (size_t)(3 * p.C) * sizeof(double), "batch_norm statistics");
    if (!partial || !stats) {
        cuda_scratch_release(ctx);
        return;
    }
    double *mean = stats, *scale = stats + p.C, *shift = stats + 2 * p.C; /* (C) each */
    unsigned cb = ck_blocks(p.C, 128);
    bool ok = bn_launch_partial(ctx, p, tensor_f32(x), NULL, partial);
    if (ok) {
        bn_mean_kernel<<<cb, 128, 0, s>>>(p, partial, mean);
        ok = LAUNCH_OK(ctx, "bn_mean_kernel");
    }
    ok = ok && bn_launch_partial(ctx, p, tensor_f32(x), mean, partial);
    if (ok) {
        bn_train_stats_kernel<<<cb, 128, 0, s>>>(p, partial, mean, g->eps, g->momentum, tensor_f32(gamma),
                                                 tensor_f32(beta), tensor_f32(running_mean), tensor_f32(running_var),
                                                 tensor_f32(save_mean), tensor_f32(save_invstd), scale, shift);
        ok = LAUNCH_OK(ctx, "bn_train_stats_kernel");
    }
    int64_t total = p.N * p.C * p.S;
    if (ok && total > 0) {
        BnEp dep = {ep && ep->residual ? tensor_f32(ep->residual) : NULL, NULL, NULL, ep ? ep->act : 0};
        bn_launch_normalise(ctx, total, p.C, p.S, tensor_f32(x), scale, shift, dep, tensor_f32(y));
    }
    cuda_scratch_release(ctx);
}

extern "C" void cuda_batch_norm_forward_eval(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                             const Tensor *beta, const Tensor *running_mean,
                                             const Tensor *running_var, Tensor *y)
{
    int64_t total = g->N * g->C * g->S;
    if (!cuda_ready(ctx) || total == 0)
        return;
    cudaStream_t s = cuda_stream_of(ctx);
    double *stats = (double *)cuda_scratch(ctx, (size_t)(2 * g->C) * sizeof(double), "batch_norm scale/shift");
    if (!stats) {
        cuda_scratch_release(ctx);
        return;
    }
    double *scale = stats, *shift = stats + g->C; /* (C) each */
    bn_eval_stats_kernel<<<ck_blocks(g->C, 128), 128, 0, s>>>(g->C, g->eps, tensor_f32(gamma), tensor_f32(beta),
                                                             tensor_f32(running_mean), tensor_f32(running_var), scale,
                                                             shift);
    if (LAUNCH_OK(ctx, "bn_eval_stats_kernel")) {
        bn_launch_normalise(ctx, total, g->C, g->S, tensor_f32(x), scale, shift, BN_NO_EP, tensor_f32(y));
    }
    cuda_scratch_release(ctx);
}

/* Grid (C, chunks): partial[(c·chunks + chunk)·2 + {0, 1}] = Σ dy, Σ dy·(x − mean)·invstd; V
 * consecutive values of a plane per step, as bn_partial_kernel. */
template <int V>
__global__ static void bn_backward_partial_kernel(BnPlan p, const float *x, const float *dy, BnEp ep,
                                                  const float *mean, const float *invstd, double *partial)
{
    __shared__ double sh[CK_THREADS];
    int64_t c = blockIdx.x;
    int64_t e0 = (int64_t)blockIdx.y * p.chunk_len, e1 = e0 + p.chunk_len < p.m ? e0 + p.chunk_len : p.m;
    double mu = mean[c], is = invstd[c], a = 0.0, b = 0.0;
    for (int64_t e = e0 + (int64_t)V * threadIdx.x; e < e1; e += (int64_t)V * blockDim.x) {
        int64_t k = bn_index(p, c, e);
        float xv[V], gv[V], yv[V];
        bn_load<V>(x + k, xv);
        bn_load<V>(dy + k, gv);
        if (ep.y)
            bn_load<V>(ep.y + k, yv);
#pragma unroll
        for (int j = 0; j < V; j++) {
            double gr = (double)(ep.y ? bn_ep_grad(ep.act, yv[j], gv[j]) : gv[j]);
            a = d_add(a, gr);
            b = d_add(b, d_mul(d_mul(gr, d_sub((double)xv[j], mu)), is));
        }
    }
    double ta = ck_block_sum(a, sh);
    double tb = ck_block_sum(b, sh);
    if (threadIdx.x == 0) {
        partial[(c * p.chunks + blockIdx.y) * 2] = ta;
        partial[(c * p.chunks + blockIdx.y) * 2 + 1] = tb;
    }
}

static bool bn_launch_backward_partial(Ctx *ctx, const BnPlan &p, const float *x, const float *dy, const BnEp &ep,
                                       const float *mean, const float *invstd, double *partial)
{
    dim3 grid((unsigned)p.C, (unsigned)p.chunks);
    cudaStream_t s = cuda_stream_of(ctx);
    if (bn_width(p.S, x, dy, ep.y) == BN_VEC)
        bn_backward_partial_kernel<BN_VEC><<<grid, CK_THREADS, 0, s>>>(p, x, dy, ep, mean, invstd, partial);
    else
        bn_backward_partial_kernel<1><<<grid, CK_THREADS, 0, s>>>(p, x, dy, ep, mean, invstd, partial);
    return LAUNCH_OK(ctx, "bn_backward_partial_kernel");
}

/* Per channel: the two sums in chunk order; dgamma/dbeta accumulated; sums kept for dx, as
 * (C, 2) pairs, or planar (2, C) for the host (the synchronised op). */
__global__ static void bn_backward_stats_kernel(BnPlan p, const double *partial, float *dgamma, float *dbeta,
                                                double *sums, bool planar)
{
    CK_FOR(c, p.C)
    {
        double a = 0.0, b = 0.0;
        for (int k = 0; k < p.chunks; k++) {
            a = d_add(a, partial[(c * p.chunks + k) * 2]);
            b = d_add(b, partial[(c * p.chunks + k) * 2 + 1]);
        }
        sums[planar ? c : 2 * c] = a;
        sums[planar ? p.C + c : 2 * c + 1] = b;
        if (dbeta)
            dbeta[c] = f_add(dbeta[c], (float)a);
        if (dgamma)
            dgamma[c] = f_add(dgamma[c], (float)b);
    }
}

/* train: dx += (float)(k/m·(m·dy − Σdy − x̂·Σdy·x̂)), eval: dx += (float)(k·dy), k = γ·invstd.
 * m: the values per channel the statistics cover (N·S, or the global count when synchronised);
 * Σdy of channel c at sum_dy[c·stride], Σdy·x̂ at sum_dy_xhat[c·stride] (NULL in eval). */
/* coef[c] = γ·invstd (/ m with batch statistics): the per-channel factor of dx, computed once per
 * channel with the double operations the element loop used to repeat (the same bits). */
__global__ static void bn_dx_coef_kernel(int64_t C, bool batch_stats, double m, const float *gamma,
                                         const float *invstd, double *coef)
{
    CK_FOR(c, C)
    {
        double kk = d_mul((double)gamma[c], (double)invstd[c]);
        coef[c] = batch_stats ? d_div(kk, m) : kk;
    }
}

/* dx += the input gradient (dx may be NULL), and, with an epilogue (ep.y), ep.dr += the gradient
 * reaching bn(x) (ep.dr may be NULL). */
template <int V>
__global__ static void bn_backward_dx_kernel(BnPlan p, bool batch_stats, double m, const float *x, const float *dy,
                                             BnEp ep, const double *coef, const float *mean, const float *invstd,
                                             const double *sum_dy, const double *sum_dy_xhat, int64_t stride,
                                             float *dx)
{
    CK_FOR(q, p.N * p.C * p.S / V)
    {
        int64_t k = q * V, c = bn_channel(k, p.C, p.S);
        double co = coef[c];
        float gv[V], d[V], xv[V];
        bn_load<V>(dy + k, gv);
        if (ep.y) {
            float yv[V];
            bn_load<V>(ep.y + k, yv);
#pragma unroll
            for (int j = 0; j < V; j++)
                gv[j] = bn_ep_grad(ep.act, yv[j], gv[j]);
            if (ep.dr) {
                float r[V];
                bn_load<V>(ep.dr + k, r);
#pragma unroll
                for (int j = 0; j < V; j++)
                    r[j] = f_add(r[j], gv[j]);
                bn_store<V>(ep.dr + k, r);
            }
        }
        if (!dx)
            continue;
        bn_load<V>(dx + k, d);
        if (batch_stats) {
            bn_load<V>(x + k, xv);
            double mu = (double)mean[c], is = (double)invstd[c], sdy = sum_dy[c * stride], sdx = sum_dy_xhat[c * stride];
#pragma unroll
            for (int j = 0; j < V; j++) {
                double xhat = d_mul(d_sub((double)xv[j], mu), is);
                double v = d_mul(co, d_sub(d_sub(d_mul(m, (double)gv[j]), sdy), d_mul(xhat, sdx)));
                d[j] = f_add(d[j], (float)v);
            }
        } else {
#pragma unroll
            for (int j = 0; j < V; j++)
                d[j] = f_add(d[j], (float)d_mul(co, (double)gv[j]));
        }
        bn_store<V>(dx + k, d);
    }
}

/* dx += the batch norm's input gradient (dx may be NULL when ep.dr is wanted), ep.dr += the
 * residual's (the two kernels above; coef in scratch, released by the caller). sum_dy[c·stride],
 * sum_dy_xhat[c·stride]: the per-channel sums (batch statistics). */
static bool bn_launch_dx(Ctx *ctx, const BnPlan &p, bool batch_stats, double m, const float *x, const float *dy,
                         const BnEp &ep, const float *gamma, const float *mean, const float *invstd,
                         const double *sum_dy, const double *sum_dy_xhat, int64_t stride, float *dx)
{
    cudaStream_t s = cuda_stream_of(ctx);
    double *coef = (double *)cuda_scratch(ctx, (size_t)p.C * sizeof(double), "batch_norm dx coefficients");
    if (!coef)
        return false;
    bn_dx_coef_kernel<<<ck_blocks(p.C, 128), 128, 0, s>>>(p.C, batch_stats, m, gamma, invstd, coef);
    if (!LAUNCH_OK(ctx, "bn_dx_coef_kernel"))
        return false;
    int64_t total = p.N * p.C * p.S;
    if (bn_width(p.S, x, dy, dx, ep.y, ep.dr) == BN_VEC)
        bn_backward_dx_kernel<BN_VEC><<<ck_blocks(total / BN_VEC, CK_THREADS), CK_THREADS, 0, s>>>(
            p, batch_stats, m, x, dy, ep, coef, mean, invstd, sum_dy, sum_dy_xhat, stride, dx);
    else
        bn_backward_dx_kernel<1><<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, s>>>(
            p, batch_stats, m, x, dy, ep, coef, mean, invstd, sum_dy, sum_dy_xhat, stride, dx);
    return LAUNCH_OK(ctx, "bn_backward_dx_kernel");
}

extern "C" void cuda_batch_norm_backward(Ctx *ctx, const NormGeom *g, bool batch_stats, const Tensor *x,
                                         const Tensor *gamma, const Tensor *mean, const Tensor *invstd,
                                         const NormEpilogue *ep, const Tensor *y, const Tensor *dy, Tensor *dx,
                                         Tensor *dgamma, Tensor *dbeta, Tensor *dresidual)
{
    if (!cuda_ready(ctx) || g->C == 0)
        return;
    BnPlan p = bn_plan(g);
    BnEp dep = {NULL, ep ? tensor_f32(y) : NULL, ep && dresidual ? tensor_f32(dresidual) : NULL, ep ? ep->act : 0};
    cudaStream_t s = cuda_stream_of(ctx);
    bool need_sums = dgamma || dbeta || (dx && batch_stats);
    bool ok = true;
    double *sums = NULL; /* (C, 2) */
    if (need_sums && p.m > 0) {
        double *partial = (double *)cuda_scratch(ctx, (size_t)(p.C * p.chunks * 2) * sizeof(double),
                                                 "batch_norm backward partials");
        sums = (double *)cuda_scratch(ctx, (size_t)(2 * p.C) * sizeof(double), "batch_norm backward sums");
        ok = partial && sums;
        if (ok) {
            ok = bn_launch_backward_partial(ctx, p, tensor_f32(x), tensor_f32(dy), dep, tensor_f32(mean),
                                            tensor_f32(invstd), partial);
        }
        if (ok) {
            bn_backward_stats_kernel<<<ck_blocks(p.C, 128), 128, 0, s>>>(
                p, partial, dgamma ? tensor_f32(dgamma) : NULL, dbeta ? tensor_f32(dbeta) : NULL, sums, false);
            ok = LAUNCH_OK(ctx, "bn_backward_stats_kernel");
        }
    }
    int64_t total = p.N * p.C * p.S;
    if (ok && (dx || dep.dr) && total > 0) {
        bn_launch_dx(ctx, p, batch_stats, (double)p.m, tensor_f32(x), tensor_f32(dy), dep, tensor_f32(gamma),
                     tensor_f32(mean), tensor_f32(invstd), sums, sums ? sums + 1 : NULL, 2, dx ? tensor_f32(dx) : NULL);
    }
    cuda_scratch_release(ctx);
}

/* ================================ synchronised batch norm (backend.h's last block) ========== */

/* stats[c] = Σx of channel c (chunk order), mean[c] = stats[c]/m (NaN when m = 0: unused then,
 * as no value of the channel reads it). */
__global__ static void bn_sum_mean_kernel(BnPlan p, const double *partial, double *stats, double *mean)
{
    CK_FOR(c, p.C)
    {
        double total = bn_chunk_total(p, partial, c);
        stats[c] = total;
        mean[c] = d_div(total, (double)p.m);
    }
}

/* stats[C + c] = Σ(x − mean)² of channel c (chunk order). */
__global__ static void bn_sq_total_kernel(BnPlan p, const double *partial, double *stats)
{
    CK_FOR(c, p.C) stats[p.C + c] = bn_chunk_total(p, partial, c);
}

extern "C" void cuda_batch_norm_stats(Ctx *ctx, const NormGeom *g, const Tensor *x, double *stats)
{
    if (!cuda_ready(ctx) || g->C == 0)
        return;
    BnPlan p = bn_plan(g);
    cudaStream_t s = cuda_stream_of(ctx);
    double *partial = (double *)cuda_scratch(ctx, (size_t)(p.C * p.chunks) * sizeof(double), "batch_norm partials");
    double *dev = (double *)cuda_scratch(ctx, (size_t)(3 * p.C) * sizeof(double), "batch_norm local statistics");
    if (!partial || !dev) {
        cuda_scratch_release(ctx);
        return;
    }
    double *dstats = dev, *mean = dev + 2 * p.C; /* (2, C) Σx, Σ(x − mean)²; (C) the local mean */
    unsigned cb = ck_blocks(p.C, 128);
    bool ok = bn_launch_partial(ctx, p, tensor_f32(x), NULL, partial);
    if (ok) {
        bn_sum_mean_kernel<<<cb, 128, 0, s>>>(p, partial, dstats, mean);
        ok = LAUNCH_OK(ctx, "bn_sum_mean_kernel");
    }
    ok = ok && bn_launch_partial(ctx, p, tensor_f32(x), mean, partial);
    if (ok) {
        bn_sq_total_kernel<<<cb, 128, 0, s>>>(p, partial, dstats);
        ok = LAUNCH_OK(ctx, "bn_sq_total_kernel");
    }
    /* the op layer sums them over the ranks on the host next: wait for them */
    if (ok && CUDA_OK(ctx, cudaMemcpyAsync(stats, dstats, (size_t)(2 * p.C) * sizeof(double),
                                           cudaMemcpyDeviceToHost, s)))
        CUDA_OK(ctx, cudaStreamSynchronize(s));
    cuda_scratch_release(ctx);
}

/* bn_train_stats_kernel with given (global) mean and biased variance over `count` values. */
__global__ static void bn_given_stats_kernel(int64_t C, const double *mean, const double *var, double count, float eps,
                                             float momentum, const float *gamma, const float *beta, float *rmean,
                                             float *rvar, float *save_mean, float *save_invstd, double *scale,
                                             double *shift)
{
    CK_FOR(c, C)
    {
        double v = var[c];
        double invstd = d_div(1.0, sqrt(d_add(v, (double)eps)));
        double mu = mean[c], mom = (double)momentum;
        double unbias = d_div(count, d_sub(count, 1.0));
        save_mean[c] = (float)mu;
        save_invstd[c] = (float)invstd;
        rmean[c] = (float)d_add(d_mul(mom, mu), d_mul(d_sub(1.0, mom), (double)rmean[c]));
        rvar[c] = (float)d_add(d_mul(d_mul(mom, v), unbias), d_mul(d_sub(1.0, mom), (double)rvar[c]));
        double sc = d_mul(invstd, (double)gamma[c]);
        scale[c] = sc;
        shift[c] = d_sub((double)beta[c], d_mul(mu, sc));
    }
}

extern "C" void cuda_batch_norm_forward_stats(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                              const Tensor *beta, const double *mean, const double *var, double count,
                                              Tensor *running_mean, Tensor *running_var, Tensor *y, Tensor *save_mean,
                                              Tensor *save_invstd)
{
    if (!cuda_ready(ctx) || g->C == 0)
        return;
    const int64_t C = g->C;
    cudaStream_t s = cuda_stream_of(ctx);
    double *dev = (double *)cuda_scratch(ctx, (size_t)(4 * C) * sizeof(double), "batch_norm global statistics");
    if (!dev) {
        cuda_scratch_release(ctx);
        return;
    }
    double *dmean = dev, *dvar = dev + C, *scale = dev + 2 * C, *shift = dev + 3 * C; /* (C) each */
    /* from pageable host memory: each copy returns once its source is staged (the host arrays
     * may be reused at once), and it is ordered before the kernels on the stream */
    bool ok = CUDA_OK(ctx, cudaMemcpyAsync(dmean, mean, (size_t)C * sizeof(double), cudaMemcpyHostToDevice, s)) &&
              CUDA_OK(ctx, cudaMemcpyAsync(dvar, var, (size_t)C * sizeof(double), cudaMemcpyHostToDevice, s));
    if (ok) {
        bn_given_stats_kernel<<<ck_blocks(C, 128), 128, 0, s>>>(
            C, dmean, dvar, count, g->eps, g->momentum, tensor_f32(gamma), tensor_f32(beta), tensor_f32(running_mean),
            tensor_f32(running_var), tensor_f32(save_mean), tensor_f32(save_invstd), scale, shift);
        ok = LAUNCH_OK(ctx, "bn_given_stats_kernel");
    }
    int64_t total = g->N * C * g->S;
    if (ok && total > 0) {
        bn_launch_normalise(ctx, total, C, g->S, tensor_f32(x), scale, shift, BN_NO_EP, tensor_f32(y));
    }
    cuda_scratch_release(ctx);
}

extern "C" void cuda_batch_norm_backward_reduce(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *mean,
                                                const Tensor *invstd, const Tensor *dy, double *sums, Tensor *dgamma,
                                                Tensor *dbeta)
{
    if (!cuda_ready(ctx) || g->C == 0)
        return;
    BnPlan p = bn_plan(g);
    if (p.m == 0) { /* no values here: zero sums, nothing added to dγ/dβ */
        for (int64_t i = 0; i < 2 * p.C; i++)
            sums[i] = 0.0;
        return;
    }
    cudaStream_t s = cuda_stream_of(ctx);
    double *partial = (double *)cuda_scratch(ctx, (size_t)(p.C * p.chunks * 2) * sizeof(double),
                                             "batch_norm backward partials");
    double *dsums = (double *)cuda_scratch(ctx, (size_t)(2 * p.C) * sizeof(double), "batch_norm backward sums");
    bool ok = partial && dsums;
    if (ok) {
        ok = bn_launch_backward_partial(ctx, p, tensor_f32(x), tensor_f32(dy), BN_NO_EP, tensor_f32(mean),
                                        tensor_f32(invstd), partial);
    }
    if (ok) {
        bn_backward_stats_kernel<<<ck_blocks(p.C, 128), 128, 0, s>>>(
            p, partial, dgamma ? tensor_f32(dgamma) : NULL, dbeta ? tensor_f32(dbeta) : NULL, dsums, true);
        ok = LAUNCH_OK(ctx, "bn_backward_stats_kernel");
    }
    /* the op layer sums them over the ranks on the host next: wait for them */
    if (ok && CUDA_OK(ctx, cudaMemcpyAsync(sums, dsums, (size_t)(2 * p.C) * sizeof(double), cudaMemcpyDeviceToHost,
                                           s)))
        CUDA_OK(ctx, cudaStreamSynchronize(s));
    cuda_scratch_release(ctx);
}

extern "C" void cuda_batch_norm_backward_dx(Ctx *ctx, const NormGeom *g, const Tensor *x, const Tensor *gamma,
                                            const Tensor *mean, const Tensor *invstd, const Tensor *dy,
                                            const double *sums, double count, Tensor *dx)
{
    int64_t total = g->N * g->C * g->S;
    if (!cuda_ready(ctx) || total == 0)
        return;
    BnPlan p = bn_plan(g);
    cudaStream_t s = cuda_stream_of(ctx);
    double *dsums = (double *)cuda_scratch(ctx, (size_t)(2 * p.C) * sizeof(double), "batch_norm global sums");
    /* pageable host source: returns once staged, ordered before the kernel */
    bool ok = dsums &&
              CUDA_OK(ctx, cudaMemcpyAsync(dsums, sums, (size_t)(2 * p.C) * sizeof(double), cudaMemcpyHostToDevice, s));
    if (ok)
        bn_launch_dx(ctx, p, true, count, tensor_f32(x), tensor_f32(dy), BN_NO_EP, tensor_f32(gamma), tensor_f32(mean),
                     tensor_f32(invstd), dsums, dsums + p.C, 1, tensor_f32(dx));
    cuda_scratch_release(ctx);
}
