/* test_cuda_ops.c — every non-GEMM slot of the CUDA op table against the CPU reference kernels
 * (group cuda_ops): memory ops, activations, broadcast binary ops, reductions, batch norm (and
 * the synchronised batch norm's split pieces), max pooling, softmax and cross-entropy, gather,
 * affine_grid / grid_sample, temporal shift, interpolation, and dropout (whose masks must equal
 * the CPU's bit for bit).
 *
 * Pattern of every check: the same random inputs on both backends; device outputs poisoned
 * with NaN first (forward outputs) or filled with the same random values as the CPU's
 * (backward outputs, which accumulate: this also tests the +=); one line per comparison.
 * Shapes are small and odd so edge handling is exercised; a few are large enough to take the
 * multi-block paths of the reductions. Convolution and linear layers are in test_cuda_gemm.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/tape.h"
#include "tests/gpu/gpu_test_util.h"

#define CPU(slot, ...) e->cpu->ops->slot(e->cpu, __VA_ARGS__)
#define GPU(slot, ...) e->gpu->ops->slot(e->gpu, __VA_ARGS__)

/* ---- memory ----------------------------------------------------------------------------- */

static void test_memory(void **state)
{
    GpuEnv *e = gpu_begin(state, "fill, axpy, copy_block, permute");
    Tensor *ref = gh(e, DTYPE_F32, DIMS(3, 5, 7));
    Tensor *d = gd_nan_like(e, ref);
    CPU(fill, ref, 1.25f);
    GPU(fill, d, 1.25f);
    gpu_expect_close(e, "fill (3,5,7)", d, ref, TOL_EXACTISH);

    Tensor *x = gh_rand(e, 1, -2, 2, DIMS(1001)), *y = gh_rand(e, 2, -2, 2, DIMS(1001));
    Tensor *dx = gd(e, x), *dy = gd(e, y);
    CPU(axpy, -0.75f, x, y);
    GPU(axpy, -0.75f, dx, dy);
    gpu_expect_close(e, "axpy n=1001 alpha=-0.75", dy, y, TOL_EXACTISH);

    for (int acc = 0; acc < 2; acc++) {
        Tensor *src = gh_rand(e, 3, -1, 1, DIMS(7, 13)), *dst = gh_rand(e, 4, -1, 1, DIMS(9, 20));
        Tensor *dsrc = gd(e, src), *ddst = gd(e, dst);
        CPU(copy_block, src, 3, 13, dst, 7, 20, 5, 9, acc);
        GPU(copy_block, dsrc, 3, 13, ddst, 7, 20, 5, 9, acc);
        gpu_expect_close(e, acc ? "copy_block 5x9 accumulate" : "copy_block 5x9", ddst, dst, TOL_EXACTISH);
    }

    struct {
        int nd;
        int64_t shape[5];
        int perm[5];
        bool acc;
    } cases[] = {
        {4, {2, 3, 4, 5}, {3, 1, 0, 2}, false},
        {3, {5, 7, 3}, {2, 0, 1}, true},
        {5, {2, 3, 2, 3, 4}, {4, 2, 0, 3, 1}, false},
        {2, {17, 9}, {1, 0}, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Tensor *s = gh_rand(e, 10 + i, -3, 3, cases[i].nd, cases[i].shape);
        int64_t od[5];
        for (int k = 0; k < cases[i].nd; k++)
            od[k] = cases[i].shape[cases[i].perm[k]];
        Tensor *o = gh_rand(e, 20 + i, -1, 1, cases[i].nd, od);
        Tensor *ds = gd(e, s), *dout = cases[i].acc ? gd(e, o) : gd_nan_like(e, o);
        CPU(permute, s, cases[i].perm, o, cases[i].acc);
        GPU(permute, ds, cases[i].perm, dout, cases[i].acc);
        char what[96];
        snprintf(what, sizeof what, "permute %dD case %zu%s", cases[i].nd, i, cases[i].acc ? " accumulate" : "");
        gpu_expect_close(e, what, dout, o, TOL_EXACTISH);
    }
    gpu_end(e);
}

/* ---- activations ------------------------------------------------------------------------ */

static void test_unary(void **state)
{
    GpuEnv *e = gpu_begin(state, "unary: relu, relu6, sigmoid, swish, scale (forward, backward)");
    static const char *names[] = {"relu", "relu6", "sigmoid", "swish", "scale"};
    /* an odd count (one value per thread) and a multiple of 4 (16-byte accesses) */
    static const int64_t shapes[2][4] = {{5, 7, 9, 11}, {4, 6, 8, 10}};
    for (int si = 0; si < 2; si++) {
        const int64_t *sh = shapes[si];
        Tensor *x = gh_rand(e, 31 + (uint64_t)si, -8, 8, 4, sh);
        Tensor *dxx = gd(e, x);
        for (int k = UNARY_RELU; k <= UNARY_SCALE; k++) {
            float alpha = -0.37f;
            char what[96];
            Tensor *y = gh_like(e, x), *dy_out = gd_nan_like(e, x);
            CPU(unary_forward, (UnaryKind)k, alpha, x, y);
            GPU(unary_forward, (UnaryKind)k, alpha, dxx, dy_out);
            snprintf(what, sizeof what, "%s forward (%lld,%lld,%lld,%lld)", names[k], (long long)sh[0],
                     (long long)sh[1], (long long)sh[2], (long long)sh[3]);
            gpu_expect_close(e, what, dy_out, y, TOL_EXACTISH);

            Tensor *g = gh_rand(e, 40 + k + 10 * (uint64_t)si, -1, 1, 4, sh);
            Tensor *gx = gh_rand(e, 50 + k + 10 * (uint64_t)si, -1, 1, 4, sh);
            Tensor *dg = gd(e, g), *dgx = gd(e, gx), *dyy = gd(e, y); /* both backward passes read the CPU's y */
            CPU(unary_backward, (UnaryKind)k, alpha, x, y, g, gx);
            GPU(unary_backward, (UnaryKind)k, alpha, dxx, dyy, dg, dgx);
            snprintf(what, sizeof what, "%s backward (accumulating)", names[k]);
            gpu_expect_close(e, what, dgx, gx, TOL_EXACTISH);
        }
    }
    gpu_end(e);
}

/* ---- binary with broadcast -------------------------------------------------------------- */

static void quantize(Tensor *t, float step)
{
    float *p = tensor_f32(t);
    for (int64_t i = 0; i < tensor_numel(t); i++)
        p[i] = step * roundf(p[i] / step);
}

static void test_binary(void **state)
{
    GpuEnv *e = gpu_begin(state, "binary add/mul/max with broadcast (forward, backward)");
    static const char *names[] = {"add", "mul", "max"};
    struct {
        int nd;
        int64_t a[4], b[4];
    } cases[] = {
        {4, {4, 6, 5, 7}, {4, 6, 5, 7}},
        {4, {4, 6, 5, 7}, {1, 6, 1, 1}},
        {4, {4, 6, 5, 7}, {4, 1, 5, 1}},
        {4, {4, 6, 5, 7}, {1, 1, 1, 7}},
        {4, {4, 6, 5, 7}, {4, 6, 5, 1}},
        {2, {37, 1}, {1, 1}},
        {4, {8, 16, 24, 24}, {1, 16, 1, 1}}, /* long per-channel reduction: the block path of db */
        {4, {2, 8, 6, 6}, {2, 8, 6, 6}},     /* one shape, a count of 4s: add's 16-byte backward */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int k = BINARY_ADD; k <= BINARY_MAX; k++) {
            Tensor *a = gh_rand(e, 100 + c, -2, 2, cases[c].nd, cases[c].a);
            Tensor *b = gh_rand(e, 200 + c, -2, 2, cases[c].nd, cases[c].b);
            if (k == BINARY_MAX) { /* many exact ties: the gradient must go to a on both backends */
                quantize(a, 0.5f);
                quantize(b, 0.5f);
            }
            Tensor *y = gh_like(e, a), *da_ = gd(e, a), *db_ = gd(e, b), *dy = gd_nan_like(e, a);
            CPU(binary_forward, (BinaryKind)k, a, b, y);
            GPU(binary_forward, (BinaryKind)k, da_, db_, dy);
            char what[128];
            snprintf(what, sizeof what, "%s forward a(%lld,%lld,%lld,%lld) b(%lld,%lld,%lld,%lld)", names[k],
                     (long long)a->shape[0], (long long)(cases[c].nd > 1 ? a->shape[1] : 1),
                     (long long)(cases[c].nd > 2 ? a->shape[2] : 1), (long long)(cases[c].nd > 3 ? a->shape[3] : 1),
                     (long long)b->shape[0], (long long)(cases[c].nd > 1 ? b->shape[1] : 1),
                     (long long)(cases[c].nd > 2 ? b->shape[2] : 1), (long long)(cases[c].nd > 3 ? b->shape[3] : 1));
            gpu_expect_close(e, what, dy, y, TOL_EXACTISH);

            Tensor *g = gh_rand(e, 300 + c, -1, 1, cases[c].nd, cases[c].a);
            Tensor *ga = gh_rand(e, 400 + c, -1, 1, cases[c].nd, cases[c].a);
            Tensor *gb = gh_rand(e, 500 + c, -1, 1, cases[c].nd, cases[c].b);
            Tensor *dg = gd(e, g), *dga = gd(e, ga), *dgb = gd(e, gb);
            CPU(binary_backward, (BinaryKind)k, a, b, g, ga, gb);
            GPU(binary_backward, (BinaryKind)k, da_, db_, dg, dga, dgb);
            snprintf(what, sizeof what, "%s backward da, case %zu", names[k], c);
            gpu_expect_close(e, what, dga, ga, TOL_EXACTISH);
            snprintf(what, sizeof what, "%s backward db (summed over broadcast dims), case %zu", names[k], c);
            /* The CPU adds the terms one by one in float; the GPU does too (bitwise equal) except
             * for the long per-channel sums of the last case, which it adds in double in a tree:
             * there the CPU's own float rounding (~3e-6 relative for 4608 terms) is the difference. */
            gpu_expect_close(e, what, dgb, gb, TOL_FP32_GEMM);
        }
    }
    gpu_end(e);
}

/* ---- reductions ------------------------------------------------------------------------- */

/* A device copy of host tensor h whose data starts 4 bytes past a 16-byte boundary (the arena's
 * blocks are aligned): the kernels' vector-load paths must notice and take their scalar ones. */
static Tensor *gd_misaligned(GpuEnv *e, const Tensor *h)
{
    int64_t n = tensor_numel(h);
    Tensor *padded = gh(e, DTYPE_F32, DIMS(n + 1));
    tensor_f32(padded)[0] = 0.0f;
    memcpy(tensor_f32(padded) + 1, tensor_f32(h), (size_t)n * sizeof(float));
    Tensor *d = gd(e, padded);
    Tensor *v = tensor_view(e->gpu, d, 1, d->shape);
    assert_non_null(v);
    v->ndim = h->ndim;
    memcpy(v->shape, h->shape, sizeof v->shape);
    v->data = (float *)d->data + 1;
    return v;
}

static void test_reduce(void **state)
{
    GpuEnv *e = gpu_begin(state, "reduce (mean / global pool / sum) forward and backward");
    struct {
        ReduceGeom g;
        bool misaligned; /* x 4 bytes off a 16-byte boundary */
    } cases[] = {
        {{.outer = 6, .n = 63, .inner = 1, .scale = 1.0f / 63}, false},       /* global average pool */
        {{.outer = 3, .n = 37, .inner = 41, .scale = 1.0f / 37}, false},      /* mean over a middle dim */
        {{.outer = 5, .n = 300, .inner = 3, .scale = 1.0f / 300}, false},     /* chunked, strided */
        {{.outer = 2, .n = 70001, .inner = 1, .scale = 1.0f / 70001}, false}, /* chunked, long */
        {{.outer = 1, .n = 123457, .inner = 1, .scale = 1.0f}, false},        /* sum_all */
        {{.outer = 9000, .n = 300, .inner = 1, .scale = 1.0f / 300}, false},  /* many outputs: one thread each */
        /* inner == 1, n <= 64: rows staged in shared memory (reduce_rows_kernel). Output counts not
         * a multiple of its 128-row blocks; odd n (unpadded rows) and even n (padded); stretches
         * whose length is not a multiple of 4 (the scalar tail after the 16-byte loads). */
        {{.outer = 1001, .n = 49, .inner = 1, .scale = 1.0f / 49}, false}, /* the glance's 7×7 pool */
        {{.outer = 1001, .n = 49, .inner = 1, .scale = 1.0f / 49}, true},
        {{.outer = 515, .n = 16, .inner = 1, .scale = 1.0f / 16}, false}, /* the focus's 4×4 pool */
        {{.outer = 515, .n = 16, .inner = 1, .scale = 1.0f / 16}, true},
        {{.outer = 300, .n = 64, .inner = 1, .scale = 1.0f / 64}, false},
        {{.outer = 777, .n = 2, .inner = 1, .scale = 0.5f}, false},
        {{.outer = 333, .n = 7, .inner = 1, .scale = 1.0f / 7}, false},
        {{.outer = 129, .n = 1, .inner = 1, .scale = 1.0f}, false},
        {{.outer = 20000, .n = 49, .inner = 1, .scale = 1.0f / 49}, false},
        {{.outer = 200, .n = 65, .inner = 1, .scale = 1.0f / 65}, false}, /* just past: reduce_seq_kernel */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ReduceGeom *g = &cases[i].g;
        Tensor *x = gh_rand(e, 600 + i, -1, 3, DIMS(g->outer, g->n, g->inner));
        Tensor *y = gh(e, DTYPE_F32, DIMS(g->outer, g->inner));
        Tensor *dxx = cases[i].misaligned ? gd_misaligned(e, x) : gd(e, x), *dyy = gd_nan_like(e, y);
        CPU(reduce_forward, g, x, y);
        GPU(reduce_forward, g, dxx, dyy);
        char what[128];
        snprintf(what, sizeof what, "reduce forward outer %lld n %lld inner %lld%s", (long long)g->outer,
                 (long long)g->n, (long long)g->inner, cases[i].misaligned ? " (x misaligned)" : "");
        /* one thread per output summing in order (everything but the chunked long sums): the
         * CPU's arithmetic, so the same bits */
        if (g->n <= 256 || g->outer * g->inner >= 8192)
            gpu_expect_equal(e, what, dyy, y);
        else
            gpu_expect_close(e, what, dyy, y, TOL_EXACTISH);
        Tensor *gy = gh_rand(e, 700 + i, -1, 1, DIMS(g->outer, g->inner));
        Tensor *gx = gh_rand(e, 800 + i, -1, 1, DIMS(g->outer, g->n, g->inner));
        Tensor *dgy = gd(e, gy), *dgx = gd(e, gx);
        CPU(reduce_backward, g, gy, gx);
        GPU(reduce_backward, g, dgy, dgx);
        snprintf(what, sizeof what, "reduce backward case %zu (accumulating)", i);
        gpu_expect_close(e, what, dgx, gx, TOL_EXACTISH);
    }
    gpu_end(e);
}

/* ---- batch norm ------------------------------------------------------------------------- */

static void test_batch_norm(void **state)
{
    GpuEnv *e = gpu_begin(state, "batch norm train/eval forward, backward (batch and fixed statistics)");
    struct {
        int nd;
        int64_t shape[5];
        float offset;
    } cases[] = {
        {4, {4, 6, 5, 7}, 0.0f},
        {2, {8, 10}, 0.0f},            /* BN1d */
        {4, {16, 3, 40, 40}, 0.0f},    /* 25600 values per channel: several partial-sum chunks */
        {5, {2, 5, 3, 4, 6}, 100.0f},  /* |mean| >> std: the two-pass variance matters */
        {4, {2049, 2, 2, 2}, 0.0f},    /* planes of 4 (16-byte accesses), chunk length rounded up to 4s */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int nd = cases[i].nd;
        const int64_t *sh = cases[i].shape;
        int64_t C = sh[1], S = 1;
        for (int k = 2; k < nd; k++)
            S *= sh[k];
        NormGeom g = {.N = sh[0], .C = C, .S = S, .eps = 1e-5f, .momentum = 0.1f};
        Tensor *x = gh_rand(e, 900 + i, -2, 2, nd, sh);
        for (int64_t k = 0; k < tensor_numel(x); k++)
            tensor_f32(x)[k] += cases[i].offset;
        Tensor *gamma = gh_rand(e, 910 + i, 0.5f, 1.5f, DIMS(C)), *beta = gh_rand(e, 920 + i, -0.5f, 0.5f, DIMS(C));
        Tensor *rm = gh_rand(e, 930 + i, -0.2f, 0.2f, DIMS(C)), *rv = gh_rand(e, 940 + i, 0.5f, 2.0f, DIMS(C));
        Tensor *rm0 = gh_copy(e, rm), *rv0 = gh_copy(e, rv);
        Tensor *y = gh_like(e, x), *mean = gh(e, DTYPE_F32, DIMS(C)), *invstd = gh(e, DTYPE_F32, DIMS(C));
        Tensor *dxx = gd(e, x), *dgamma = gd(e, gamma), *dbeta = gd(e, beta), *drm = gd(e, rm0), *drv = gd(e, rv0);
        Tensor *dy = gd_nan_like(e, y), *dmean = gd_nan_like(e, mean), *dinv = gd_nan_like(e, invstd);
        CPU(batch_norm_forward_train, &g, x, gamma, beta, rm, rv, NULL, y, mean, invstd);
        GPU(batch_norm_forward_train, &g, dxx, dgamma, dbeta, drm, drv, NULL, dy, dmean, dinv);
        char what[128];
        snprintf(what, sizeof what, "bn train forward y, case %zu (N %lld C %lld S %lld)", i, (long long)g.N,
                 (long long)C, (long long)S);
        gpu_expect_close(e, what, dy, y, TOL_EXACTISH);
        gpu_expect_close(e, "  saved mean", dmean, mean, TOL_EXACTISH);
        gpu_expect_close(e, "  saved invstd", dinv, invstd, TOL_EXACTISH);
        gpu_expect_close(e, "  running mean (updated)", drm, rm, TOL_EXACTISH);
        gpu_expect_close(e, "  running var (updated, unbiased)", drv, rv, TOL_EXACTISH);

        Tensor *ye = gh_like(e, x), *dye = gd_nan_like(e, x);
        CPU(batch_norm_forward_eval, &g, x, gamma, beta, rm0, rv0, ye);
        Tensor *drm0 = gd(e, rm0), *drv0 = gd(e, rv0);
        GPU(batch_norm_forward_eval, &g, dxx, dgamma, dbeta, drm0, drv0, dye);
        snprintf(what, sizeof what, "bn eval forward, case %zu", i);
        gpu_expect_close(e, what, dye, ye, TOL_EXACTISH);

        for (int batch = 1; batch >= 0; batch--) {
            /* the statistics backward reads: the CPU's saved ones (train) or fixed ones (eval) */
            Tensor *m = batch ? mean : rm0, *is = batch ? invstd : gh_copy(e, rv0);
            if (!batch)
                for (int64_t c = 0; c < C; c++)
                    tensor_f32(is)[c] = (float)(1.0 / sqrt((double)tensor_f32(rv0)[c] + 1e-5));
            Tensor *gy = gh_rand(e, 950 + i, -1, 1, nd, sh);
            Tensor *gx = gh_rand(e, 960 + i, -1, 1, nd, sh);
            Tensor *gg = gh_rand(e, 970 + i, -1, 1, DIMS(C)), *gb = gh_rand(e, 980 + i, -1, 1, DIMS(C));
            Tensor *dm = gd(e, m), *dis = gd(e, is), *dgy = gd(e, gy), *dgx = gd(e, gx), *dgg = gd(e, gg),
                   *dgb = gd(e, gb);
            CPU(batch_norm_backward, &g, batch, x, gamma, m, is, NULL, NULL, gy, gx, gg, gb, NULL);
            GPU(batch_norm_backward, &g, batch, dxx, dgamma, dm, dis, NULL, NULL, dgy, dgx, dgg, dgb, NULL);
            snprintf(what, sizeof what, "bn backward (%s statistics) dx, case %zu", batch ? "batch" : "fixed", i);
            gpu_expect_close(e, what, dgx, gx, TOL_EXACTISH);
            gpu_expect_close(e, "  dgamma", dgg, gg, TOL_EXACTISH);
            gpu_expect_close(e, "  dbeta", dgb, gb, TOL_EXACTISH);
        }
    }
    gpu_end(e);
}

/* The training batch norm with a fused epilogue (NormEpilogue: + residual, then ReLU / ReLU6):
 * forward y and running statistics, backward dx, dgamma, dbeta and dresidual, against the CPU;
 * planes of 35 (one value per thread) and of 1600 and 8 (16-byte accesses). The backward reads
 * the CPU forward's y on both sides, so both take the same masks. */
static void test_batch_norm_epilogue(void **state)
{
    GpuEnv *e = gpu_begin(state, "batch norm with a fused epilogue (residual, ReLU/ReLU6): forward, backward");
    static const int64_t shapes[3][4] = {{4, 6, 5, 7}, {16, 3, 40, 40}, {2049, 2, 2, 2}};
    static const struct {
        bool residual;
        int act;
        const char *name;
    } eps[3] = {{true, 1, "residual + relu"}, {false, 2, "relu6"}, {true, 0, "residual"}};
    for (int si = 0; si < 3; si++) {
        const int64_t *sh = shapes[si];
        int64_t C = sh[1], S = sh[2] * sh[3];
        NormGeom g = {.N = sh[0], .C = C, .S = S, .eps = 1e-5f, .momentum = 0.1f};
        for (int k = 0; k < 3; k++) {
            uint64_t seed = 3000 + 100 * (uint64_t)si + 10 * (uint64_t)k;
            Tensor *x = gh_rand(e, seed, -2, 2, 4, sh), *r = gh_rand(e, seed + 1, -1, 1, 4, sh);
            Tensor *gamma = gh_rand(e, seed + 2, 0.5f, 1.5f, DIMS(C)), *beta = gh_rand(e, seed + 3, -0.5f, 3.5f, DIMS(C));
            Tensor *rm = gh_rand(e, seed + 4, -0.2f, 0.2f, DIMS(C)), *rv = gh_rand(e, seed + 5, 0.5f, 2.0f, DIMS(C));
            Tensor *drm = gd(e, rm), *drv = gd(e, rv);
            Tensor *y = gh_like(e, x), *mean = gh(e, DTYPE_F32, DIMS(C)), *invstd = gh(e, DTYPE_F32, DIMS(C));
            Tensor *dxx = gd(e, x), *dr = gd(e, r), *dgamma = gd(e, gamma), *dbeta = gd(e, beta);
            Tensor *dy = gd_nan_like(e, y), *dmean = gd_nan_like(e, mean), *dinv = gd_nan_like(e, invstd);
            NormEpilogue hep = {eps[k].residual ? r : NULL, eps[k].act}, dep = {eps[k].residual ? dr : NULL, eps[k].act};
            CPU(batch_norm_forward_train, &g, x, gamma, beta, rm, rv, &hep, y, mean, invstd);
            GPU(batch_norm_forward_train, &g, dxx, dgamma, dbeta, drm, drv, &dep, dy, dmean, dinv);
            char what[160];
            snprintf(what, sizeof what, "bn train + %s, (%lld,%lld,%lld,%lld): y", eps[k].name, (long long)sh[0],
                     (long long)sh[1], (long long)sh[2], (long long)sh[3]);
            gpu_expect_close(e, what, dy, y, TOL_EXACTISH);
            gpu_expect_close(e, "  running var", drv, rv, TOL_EXACTISH);

            Tensor *gy = gh_rand(e, seed + 6, -1, 1, 4, sh), *gx = gh_rand(e, seed + 7, -1, 1, 4, sh);
            Tensor *gr = gh_rand(e, seed + 8, -1, 1, 4, sh);
            Tensor *gg = gh_rand(e, seed + 9, -1, 1, DIMS(C)), *gb = gh_rand(e, seed + 10, -1, 1, DIMS(C));
            Tensor *dyc = gd(e, y), *dm = gd(e, mean), *dis = gd(e, invstd), *dgy = gd(e, gy), *dgx = gd(e, gx);
            Tensor *dgr = gd(e, gr), *dgg = gd(e, gg), *dgb = gd(e, gb);
            CPU(batch_norm_backward, &g, true, x, gamma, mean, invstd, &hep, y, gy, gx, gg, gb, eps[k].residual ? gr : NULL);
            GPU(batch_norm_backward, &g, true, dxx, dgamma, dm, dis, &dep, dyc, dgy, dgx, dgg, dgb,
                eps[k].residual ? dgr : NULL);
            gpu_expect_close(e, "  backward dx", dgx, gx, TOL_EXACTISH);
            gpu_expect_close(e, "  dgamma", dgg, gg, TOL_EXACTISH);
            gpu_expect_close(e, "  dbeta", dgb, gb, TOL_EXACTISH);
            gpu_expect_close(e, "  dresidual (unchanged without a residual)", dgr, gr, TOL_EXACTISH);
        }
    }
    gpu_end(e);
}

/* ---- synchronised batch norm's pieces (backend.h's last block) --------------------------- */

/* Compares two host arrays of doubles through the usual float comparison (one line). */
static bool expect_doubles_close(GpuEnv *e, const char *what, const double *got, const double *ref, int64_t n, Tol tol)
{
    Tensor *hg = gh(e, DTYPE_F32, DIMS(n)), *hr = gh(e, DTYPE_F32, DIMS(n));
    for (int64_t i = 0; i < n; i++) {
        tensor_f32(hg)[i] = (float)got[i];
        tensor_f32(hr)[i] = (float)ref[i];
    }
    return gpu_expect_close(e, what, gd(e, hg), hr, tol);
}

/* A device tensor's contents as a new host tensor (empty on a failed download: the check fails). */
static Tensor *host_of(GpuEnv *e, const Tensor *dev)
{
    Tensor *h = gh(e, dev->dtype, dev->ndim, dev->shape);
    if (!cuda_tensor_to_host(e->gpu, dev, h))
        gpu_expect_ok(e, "download");
    return h;
}

static void test_batch_norm_sync_pieces(void **state)
{
    GpuEnv *e = gpu_begin(state, "synchronised batch norm: local stats, forward with given stats, backward sums and dx");
    struct {
        int nd;
        int64_t shape[5];
        float offset;
    } cases[] = {
        {4, {4, 6, 5, 7}, 0.0f},
        {2, {8, 11}, 0.0f},            /* BN1d, odd C */
        {2, {1, 3}, 0.0f},             /* one value per channel on this rank (allowed when synchronised) */
        {4, {16, 3, 40, 40}, 0.0f},    /* several partial-sum chunks */
        {5, {2, 5, 3, 4, 6}, 100.0f},  /* |mean| >> std */
        {4, {2049, 2, 2, 2}, 0.0f},    /* planes of 4 (16-byte accesses), chunk length rounded up to 4s */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int nd = cases[i].nd;
        const int64_t *sh = cases[i].shape;
        int64_t C = sh[1], S = 1;
        for (int k = 2; k < nd; k++)
            S *= sh[k];
        NormGeom g = {.N = sh[0], .C = C, .S = S, .eps = 1e-5f, .momentum = 0.1f};
        const double m = (double)(g.N * S);
        Tensor *x = gh_rand(e, 1900 + i, -2, 2, nd, sh);
        for (int64_t k = 0; k < tensor_numel(x); k++)
            tensor_f32(x)[k] += cases[i].offset;
        Tensor *gamma = gh_rand(e, 1910 + i, 0.5f, 1.5f, DIMS(C)), *beta = gh_rand(e, 1920 + i, -0.5f, 0.5f, DIMS(C));
        Tensor *rm0 = gh_rand(e, 1930 + i, -0.2f, 0.2f, DIMS(C)), *rv0 = gh_rand(e, 1940 + i, 0.5f, 2.0f, DIMS(C));
        Tensor *dxx = gd(e, x), *dgamma = gd(e, gamma), *dbeta = gd(e, beta);
        char what[160];

        /* this rank's Σx and Σ(x − mean)²: host (2, C) */
        double *st_c = malloc((size_t)(2 * C) * sizeof(double)), *st_g = malloc((size_t)(2 * C) * sizeof(double));
        CPU(batch_norm_stats, &g, x, st_c);
        GPU(batch_norm_stats, &g, dxx, st_g);
        gpu_expect_ok(e, "batch_norm_stats");
        snprintf(what, sizeof what, "bn sync local sums, case %zu (N %lld C %lld S %lld)", i, (long long)g.N,
                 (long long)C, (long long)S);
        expect_doubles_close(e, what, st_g, st_c, C, TOL_EXACTISH);
        expect_doubles_close(e, "  local sums of squared deviations", st_g + C, st_c + C, C, TOL_EXACTISH);

        /* the forward with given "global" statistics (as if other ranks had other values) */
        double *gm = malloc((size_t)(2 * C) * sizeof(double)), *gv = gm + C; /* (C) each */
        for (int64_t c = 0; c < C; c++) {
            gm[c] = st_c[c] / m + 0.1;
            gv[c] = st_c[C + c] / m * 1.3 + 0.05;
        }
        const double count = 3 * m;
        Tensor *rm = gh_copy(e, rm0), *rv = gh_copy(e, rv0), *y = gh_like(e, x);
        Tensor *mean = gh(e, DTYPE_F32, DIMS(C)), *invstd = gh(e, DTYPE_F32, DIMS(C));
        Tensor *drm = gd(e, rm0), *drv = gd(e, rv0), *dy = gd_nan_like(e, x), *dmean = gd_nan_like(e, mean),
               *dinv = gd_nan_like(e, invstd);
        CPU(batch_norm_forward_stats, &g, x, gamma, beta, gm, gv, count, rm, rv, y, mean, invstd);
        GPU(batch_norm_forward_stats, &g, dxx, dgamma, dbeta, gm, gv, count, drm, drv, dy, dmean, dinv);
        snprintf(what, sizeof what, "bn sync forward with given statistics y, case %zu", i);
        gpu_expect_close(e, what, dy, y, TOL_EXACTISH);
        gpu_expect_close(e, "  saved mean", dmean, mean, TOL_EXACTISH);
        gpu_expect_close(e, "  saved invstd", dinv, invstd, TOL_EXACTISH);
        gpu_expect_close(e, "  running mean (updated)", drm, rm, TOL_EXACTISH);
        gpu_expect_close(e, "  running var (updated, unbiased with the global count)", drv, rv, TOL_EXACTISH);

        /* with this rank's own statistics, as the op layer forms them on one rank, the pieces are
         * the device's batch_norm_forward_train bit for bit */
        if (m > 1) {
            for (int64_t c = 0; c < C; c++) {
                gm[c] = st_g[c] / m;
                gv[c] = (st_g[C + c] + 0.0) / m;
            }
            Tensor *trm = gd(e, rm0), *trv = gd(e, rv0), *ty = gd_nan_like(e, x), *tm = gd_nan_like(e, mean),
                   *tis = gd_nan_like(e, invstd);
            GPU(batch_norm_forward_train, &g, dxx, dgamma, dbeta, trm, trv, NULL, ty, tm, tis);
            Tensor *hy = host_of(e, ty), *hm = host_of(e, tm), *his = host_of(e, tis), *hrm = host_of(e, trm),
                   *hrv = host_of(e, trv);
            Tensor *srm = gd(e, rm0), *srv = gd(e, rv0), *sy = gd_nan_like(e, x), *sm = gd_nan_like(e, mean),
                   *sis = gd_nan_like(e, invstd);
            GPU(batch_norm_forward_stats, &g, dxx, dgamma, dbeta, gm, gv, m, srm, srv, sy, sm, sis);
            gpu_expect_equal(e, "  own statistics: y equals the train forward's (bitwise)", sy, hy);
            gpu_expect_equal(e, "  own statistics: saved mean (bitwise)", sm, hm);
            gpu_expect_equal(e, "  own statistics: saved invstd (bitwise)", sis, his);
            gpu_expect_equal(e, "  own statistics: running mean (bitwise)", srm, hrm);
            gpu_expect_equal(e, "  own statistics: running var (bitwise)", srv, hrv);
        }

        /* backward: this rank's sums (accumulated into dγ/dβ), then dx with "global" sums */
        Tensor *gy = gh_rand(e, 1950 + i, -1, 1, nd, sh), *gx = gh_rand(e, 1960 + i, -1, 1, nd, sh);
        Tensor *gg = gh_rand(e, 1970 + i, -1, 1, DIMS(C)), *gb = gh_rand(e, 1980 + i, -1, 1, DIMS(C));
        Tensor *dm = gd(e, mean), *dis = gd(e, invstd), *dgy = gd(e, gy), *dgx = gd(e, gx), *dgg = gd(e, gg),
               *dgb = gd(e, gb);
        double *su_c = malloc((size_t)(2 * C) * sizeof(double)), *su_g = malloc((size_t)(2 * C) * sizeof(double));
        CPU(batch_norm_backward_reduce, &g, x, mean, invstd, gy, su_c, gg, gb);
        GPU(batch_norm_backward_reduce, &g, dxx, dm, dis, dgy, su_g, dgg, dgb);
        gpu_expect_ok(e, "batch_norm_backward_reduce");
        snprintf(what, sizeof what, "bn sync backward local sum dy, case %zu", i);
        expect_doubles_close(e, what, su_g, su_c, C, TOL_EXACTISH);
        expect_doubles_close(e, "  local sum dy*xhat", su_g + C, su_c + C, C, TOL_EXACTISH);
        gpu_expect_close(e, "  dgamma (accumulated, local)", dgg, gg, TOL_EXACTISH);
        gpu_expect_close(e, "  dbeta (accumulated, local)", dgb, gb, TOL_EXACTISH);
        for (int64_t k = 0; k < 2 * C; k++) /* as if summed with other ranks' */
            su_c[k] = su_c[k] * 1.7 + 0.05;
        CPU(batch_norm_backward_dx, &g, x, gamma, mean, invstd, gy, su_c, count, gx);
        GPU(batch_norm_backward_dx, &g, dxx, dgamma, dm, dis, dgy, su_c, count, dgx);
        snprintf(what, sizeof what, "bn sync backward dx with global sums (accumulated), case %zu", i);
        gpu_expect_close(e, what, dgx, gx, TOL_EXACTISH);
        free(st_c);
        free(st_g);
        free(gm);
        free(su_c);
        free(su_g);
    }
    gpu_end(e);
}

/* The synchronised op on one rank: the sum over ranks is the identity; counts its calls. */
static bool one_rank_sum(void *user, double *buf, size_t n, char *err, size_t err_cap)
{
    (void)buf, (void)n, (void)err, (void)err_cap;
    ++*(int *)user;
    return true;
}

/* A device leaf with a zeroed device gradient. */
static Tensor *gd_leaf(GpuEnv *e, const Tensor *h)
{
    Tensor *d = gd(e, h);
    d->requires_grad = true;
    d->grad = gd(e, gh_like(e, h));
    return d;
}

/* op_batch_norm with the hook (one rank) through the op layer on the GPU: the forward equals the
 * plain op's bit for bit (the GPU's statistics go to the host and back unchanged), the backward
 * to double rounding; and the whole synchronised op matches the CPU's. */
static void test_batch_norm_sync_op_layer(void **state)
{
    GpuEnv *e = gpu_begin(state, "synchronised batch norm through the op layer on one rank: GPU plain vs hook vs CPU");
    const int64_t C = 7;
    Tensor *x = gh_rand(e, 2001, 1, 3, DIMS(4, C, 5, 6)), *dyh = gh_rand(e, 2002, -1, 1, DIMS(4, C, 5, 6));
    Tensor *gamma = gh_rand(e, 2003, 0.5f, 1.5f, DIMS(C)), *beta = gh_rand(e, 2004, -0.5f, 0.5f, DIMS(C));
    Tensor *rm0 = gh_rand(e, 2005, -0.2f, 0.2f, DIMS(C)), *rv0 = gh_rand(e, 2006, 0.5f, 2.0f, DIMS(C));
    struct {
        Tensor *x, *gamma, *beta, *rm, *rv, *y;
    } side[3]; /* GPU plain, GPU with the hook, CPU with the hook */
    int calls[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        Ctx *ctx = k < 2 ? e->gpu : e->cpu;
        if (k < 2) {
            side[k].x = gd_leaf(e, x), side[k].gamma = gd_leaf(e, gamma), side[k].beta = gd_leaf(e, beta);
            side[k].rm = gd(e, rm0), side[k].rv = gd(e, rv0);
        } else {
            side[k].x = gh_copy(e, x), side[k].gamma = gh_copy(e, gamma), side[k].beta = gh_copy(e, beta);
            side[k].rm = gh_copy(e, rm0), side[k].rv = gh_copy(e, rv0);
            side[k].x->requires_grad = side[k].gamma->requires_grad = side[k].beta->requires_grad = true;
            side[k].x->grad = gh_like(e, x), side[k].gamma->grad = gh_like(e, gamma);
            side[k].beta->grad = gh_like(e, beta);
        }
        ctx_set_training(ctx, true);
        if (k > 0)
            ctx_set_bn_sync(ctx, one_rank_sum, &calls[k]);
        side[k].y = op_batch_norm(ctx, side[k].x, side[k].gamma, side[k].beta, side[k].rm, side[k].rv, 0.1f, 1e-5f);
        Tensor *l = op_sum_all(ctx, op_mul(ctx, side[k].y, k < 2 ? gd(e, dyh) : dyh)); /* dL/dy = dy */
        if (l)
            tape_backward(ctx, l);
        tape_clear(ctx->tape);
        ctx_set_bn_sync(ctx, NULL, NULL);
        ctx_set_training(ctx, false);
    }
    /* the CPU leaves' gradients are host tensors of the environment (freed once, by it): unlink */
    Tensor *cpu_dx = side[2].x->grad, *cpu_dg = side[2].gamma->grad, *cpu_db = side[2].beta->grad;
    side[2].x->grad = side[2].gamma->grad = side[2].beta->grad = NULL;
    gpu_expect_ok(e, "plain and synchronised batch norm on the GPU");
    e->checks++;
    bool two = calls[1] == 2 && calls[2] == 2;
    e->failures += !two;
    printf("  %s one sum over the ranks forward and one backward (GPU %d calls, CPU %d)\n", two ? "ok  " : "FAIL",
           calls[1], calls[2]);
    if (!ctx_ok(e->cpu))
        fail_msg("CPU synchronised batch norm: %s", ctx_error_message(e->cpu));
    gpu_expect_equal(e, "hook on one rank: y equals the plain op's (bitwise)", side[1].y, host_of(e, side[0].y));
    gpu_expect_equal(e, "  running mean (bitwise)", side[1].rm, host_of(e, side[0].rm));
    gpu_expect_equal(e, "  running var (bitwise)", side[1].rv, host_of(e, side[0].rv));
    gpu_expect_close(e, "  dx", side[1].x->grad, host_of(e, side[0].x->grad), TOL_EXACTISH);
    gpu_expect_close(e, "  dgamma", side[1].gamma->grad, host_of(e, side[0].gamma->grad), TOL_EXACTISH);
    gpu_expect_close(e, "  dbeta", side[1].beta->grad, host_of(e, side[0].beta->grad), TOL_EXACTISH);
    gpu_expect_close(e, "synchronised op, GPU vs CPU: y", side[1].y, side[2].y, TOL_EXACTISH);
    gpu_expect_close(e, "  running mean", side[1].rm, side[2].rm, TOL_EXACTISH);
    gpu_expect_close(e, "  running var", side[1].rv, side[2].rv, TOL_EXACTISH);
    gpu_expect_close(e, "  dx", side[1].x->grad, cpu_dx, TOL_EXACTISH);
    gpu_expect_close(e, "  dgamma", side[1].gamma->grad, cpu_dg, TOL_EXACTISH);
    gpu_expect_close(e, "  dbeta", side[1].beta->grad, cpu_db, TOL_EXACTISH);
    gpu_end(e);
}

/* ---- max pool --------------------------------------------------------------------------- */

/* Special values for the max pool: NaNs (several in some windows: the last one is the argmax),
 * a NaN in the first row and column (next to the padding), and a block of −inf (windows of −inf
 * only keep their first real position as the argmax). */
static void pool_specials(Tensor *x, int H, int W)
{
    float *p = tensor_f32(x);
    int64_t planes = tensor_numel(x) / ((int64_t)H * W);
    for (int64_t c = 0; c < planes; c++) {
        float *q = p + c * H * W;
        if (c % 3 == 0) {
            q[0] = NAN;
            q[(H / 2) * W + W / 2] = NAN;
            if (W > 1)
                q[(H / 2) * W + W / 2 + 1] = NAN; /* same windows: the later NaN wins */
            q[(H - 1) * W + (W - 1)] = NAN;
        }
        if (c % 3 == 1)
            for (int h = 0; h < H && h < 4; h++)
                for (int w = 0; w < W && w < 5; w++)
                    q[h * W + w] = -INFINITY;
    }
}

static void test_max_pool(void **state)
{
    GpuEnv *e = gpu_begin(state, "max pool 2d forward (values, argmax) and backward");
    struct {
        int N, C, H, W, k, s, p;
        bool ties, specials, misaligned;
    } cases[] = {
        {2, 3, 11, 13, 3, 2, 1, false, false, false}, {1, 4, 8, 8, 2, 2, 0, false, false, false},
        {2, 2, 9, 7, 3, 1, 1, true, false, false},    {3, 5, 15, 10, 3, 2, 0, true, false, false},
        /* 3×3 stride 2 (max_pool_3x3s2_kernel, two outputs per thread): W a multiple of 4 with pad 1
         * takes the float4 path (ResNet's stem pool, 64×64 → 32×32 on a 128 patch); odd and even H
         * and W, odd Wo (a pair with one output), pad 0, an input that is not 16-byte aligned */
        {2, 3, 64, 64, 3, 2, 1, true, true, false},   {2, 3, 64, 64, 3, 2, 1, false, false, true},
        {1, 5, 17, 20, 3, 2, 1, true, true, false},   {2, 3, 12, 12, 3, 2, 1, false, true, false},
        {1, 3, 7, 6, 3, 2, 1, true, true, false},     {2, 4, 10, 14, 3, 2, 0, true, true, false},
        {1, 3, 9, 9, 3, 2, 1, true, true, false},     {1, 3, 1, 1, 3, 2, 1, false, false, false},
        {1, 2, 2, 3, 3, 2, 1, false, true, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        PoolGeom g = {.N = cases[i].N, .C = cases[i].C, .H = cases[i].H, .W = cases[i].W, .kh = cases[i].k,
                      .kw = cases[i].k, .sh = cases[i].s, .sw = cases[i].s, .ph = cases[i].p, .pw = cases[i].p};
        g.Ho = (g.H + 2 * g.ph - g.kh) / g.sh + 1;
        g.Wo = (g.W + 2 * g.pw - g.kw) / g.sw + 1;
        Tensor *x = gh_rand(e, 1000 + i, -3, 3, DIMS(g.N, g.C, g.H, g.W));
        if (cases[i].ties)
            quantize(x, 1.0f);
        if (cases[i].specials)
            pool_specials(x, g.H, g.W);
        Tensor *y = gh(e, DTYPE_F32, DIMS(g.N, g.C, g.Ho, g.Wo)), *am = gh(e, DTYPE_I32, DIMS(g.N, g.C, g.Ho, g.Wo));
        Tensor *dxx = cases[i].misaligned ? gd_misaligned(e, x) : gd(e, x), *dy = gd_nan_like(e, y),
               *dam = gd_nan_like(e, am);
        CPU(max_pool_forward, &g, x, y, am);
        GPU(max_pool_forward, &g, dxx, dy, dam);
        char what[160];
        snprintf(what, sizeof what, "max_pool forward (%d,%d,%d,%d) k%d s%d p%d%s%s%s", g.N, g.C, g.H, g.W, g.kh,
                 g.sh, g.ph, cases[i].ties ? " with ties" : "", cases[i].specials ? ", NaN and -inf" : "",
                 cases[i].misaligned ? ", x misaligned" : "");
        gpu_expect_equal(e, what, dy, y); /* NaNs included: the same bits */
        gpu_expect_equal(e, "  argmax", dam, am);
        Tensor *gy = gh_rand(e, 1100 + i, -1, 1, DIMS(g.N, g.C, g.Ho, g.Wo));
        Tensor *gx = gh_rand(e, 1200 + i, -1, 1, DIMS(g.N, g.C, g.H, g.W));
        Tensor *dam_cpu = gd(e, am), *dgy = gd(e, gy), *dgx = gd(e, gx);
        CPU(max_pool_backward, &g, am, gy, gx);
        GPU(max_pool_backward, &g, dam_cpu, dgy, dgx);
        gpu_expect_close(e, "  backward dx (gather in output order)", dgx, gx, TOL_EXACTISH);
    }
    gpu_end(e);
}

/* ---- softmax and cross-entropy ---------------------------------------------------------- */

static void test_softmax(void **state)
{
    GpuEnv *e = gpu_begin(state, "softmax, log-softmax, cross-entropy forward and backward");
    struct {
        int64_t rows, cols;
        float offset;
    } cases[] = {{7, 13, 0.0f}, {3, 1000, 0.0f}, {33, 5, 500.0f}, {24, 6, -30.0f}, {1, 1, 0.0f}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t R = cases[i].rows, Cc = cases[i].cols;
        for (int lg = 0; lg < 2; lg++) {
            Tensor *x = gh_rand(e, 1300 + i, -6, 6, DIMS(R, Cc));
            for (int64_t k = 0; k < R * Cc; k++)
                tensor_f32(x)[k] += cases[i].offset;
            Tensor *y = gh_like(e, x), *dxx = gd(e, x), *dy = gd_nan_like(e, x);
            CPU(softmax_forward, R, Cc, lg, x, y);
            GPU(softmax_forward, R, Cc, lg, dxx, dy);
            char what[128];
            snprintf(what, sizeof what, "%s forward (%lld, %lld) offset %g", lg ? "log_softmax" : "softmax",
                     (long long)R, (long long)Cc, cases[i].offset);
            gpu_expect_close(e, what, dy, y, TOL_EXACTISH);
            Tensor *gy = gh_rand(e, 1400 + i, -1, 1, DIMS(R, Cc)), *gx = gh_rand(e, 1500 + i, -1, 1, DIMS(R, Cc));
            Tensor *dyc = gd(e, y), *dgy = gd(e, gy), *dgx = gd(e, gx);
            CPU(softmax_backward, R, Cc, lg, y, gy, gx);
            GPU(softmax_backward, R, Cc, lg, dyc, dgy, dgx);
            gpu_expect_close(e, "  backward (from the CPU's output)", dgx, gx, TOL_EXACTISH);
        }
    }
    int64_t R = 9, Cc = 17;
    Tensor *logits = gh_rand(e, 1600, -4, 4, DIMS(R, Cc));
    Tensor *labels = gh(e, DTYPE_I32, DIMS(R));
    for (int64_t r = 0; r < R; r++)
        tensor_i32(labels)[r] = (int32_t)((r * 7 + 3) % Cc);
    Tensor *loss = gh(e, DTYPE_F32, 0, NULL), *probs = gh_like(e, logits);
    Tensor *dl = gd(e, logits), *dlab = gd(e, labels), *dloss = gd_nan_like(e, loss), *dprobs = gd_nan_like(e, probs);
    CPU(cross_entropy_forward, R, Cc, logits, labels, loss, probs);
    GPU(cross_entropy_forward, R, Cc, dl, dlab, dloss, dprobs);
    gpu_expect_close(e, "cross_entropy forward loss (9, 17)", dloss, loss, TOL_EXACTISH);
    gpu_expect_close(e, "  probabilities", dprobs, probs, TOL_EXACTISH);
    Tensor *seed = gh(e, DTYPE_F32, 0, NULL);
    tensor_f32(seed)[0] = 0.7f;
    Tensor *gl = gh_rand(e, 1700, -1, 1, DIMS(R, Cc));
    Tensor *dseed = gd(e, seed), *dgl = gd(e, gl), *dpc = gd(e, probs);
    CPU(cross_entropy_backward, R, Cc, probs, labels, seed, gl);
    GPU(cross_entropy_backward, R, Cc, dpc, dlab, dseed, dgl);
    gpu_expect_close(e, "cross_entropy backward dlogits (dloss 0.7)", dgl, gl, TOL_EXACTISH);
    gpu_end(e);
}

/* ---- gather ----------------------------------------------------------------------------- */

static void test_gather(void **state)
{
    GpuEnv *e = gpu_begin(state, "gather rows forward, scatter-add backward with repeated indices");
    int64_t B = 3, T = 10, F = 6, R = 20;
    Tensor *x = gh_rand(e, 1800, -1, 1, DIMS(B, T, 4, 5));
    Tensor *idx = gh(e, DTYPE_I32, DIMS(B, F));
    static const int32_t pick[3][6] = {{0, 9, 4, 4, 4, 1}, {3, 3, 2, 7, 8, 3}, {9, 8, 7, 6, 5, 0}};
    for (int b = 0; b < 3; b++)
        for (int f = 0; f < 6; f++)
            tensor_i32(idx)[b * F + f] = pick[b][f];
    Tensor *y = gh(e, DTYPE_F32, DIMS(B, F, 4, 5));
    Tensor *dxx = gd(e, x), *didx = gd(e, idx), *dy = gd_nan_like(e, y);
    CPU(gather_forward, B, T, F, R, x, idx, y);
    GPU(gather_forward, B, T, F, R, dxx, didx, dy);
    gpu_expect_close(e, "gather forward (3,10,4,5) idx (3,6)", dy, y, TOL_EXACTISH);
    /* rows of 20 floats take the 16-byte row kernel, rows of 7 the element kernel; indices out of
     * [0, T) give zero rows on both */
    static const int64_t rows[2] = {20, 7};
    for (int v = 0; v < 2; v++) {
        Tensor *x2 = gh_rand(e, 1830 + v, -1, 1, DIMS(B, T, rows[v]));
        Tensor *idx2 = gh(e, DTYPE_I32, DIMS(B, F));
        for (int i = 0; i < B * F; i++)
            tensor_i32(idx2)[i] = i % 4 == 0 ? -1 : i % 4 == 1 ? (int32_t)T : (i * 7) % (int)T;
        Tensor *y2 = gh(e, DTYPE_F32, DIMS(B, F, rows[v]));
        CPU(gather_forward, B, T, F, rows[v], x2, idx2, y2);
        Tensor *dy2 = gd_nan_like(e, y2);
        GPU(gather_forward, B, T, F, rows[v], gd(e, x2), gd(e, idx2), dy2);
        gpu_expect_equal(e, v == 0 ? "gather forward, rows of 20 (16-byte kernel), indices out of range"
                                   : "gather forward, rows of 7 (element kernel), indices out of range",
                         dy2, y2);
    }
    Tensor *gy = gh_rand(e, 1810, -1, 1, DIMS(B, F, 4, 5)), *gx = gh_rand(e, 1820, -1, 1, DIMS(B, T, 4, 5));
    Tensor *dgy = gd(e, gy), *dgx = gd(e, gx);
    CPU(gather_backward, B, T, F, R, idx, gy, gx);
    GPU(gather_backward, B, T, F, R, didx, dgy, dgx);
    gpu_expect_close(e, "gather backward (repeats accumulate in index order)", dgx, gx, TOL_EXACTISH);
    gpu_end(e);
}

/* ---- spatial sampling ------------------------------------------------------------------- */

static void test_spatial(void **state)
{
    GpuEnv *e = gpu_begin(state, "affine_grid and grid_sample forward and backward");
    int N = 3, H = 9, W = 13;
    Tensor *theta = gh_rand(e, 1900, -0.3f, 0.3f, DIMS(N, 2, 3));
    for (int n = 0; n < N; n++) { /* near a zoomed identity, translated */
        tensor_f32(theta)[n * 6 + 0] += 0.6f;
        tensor_f32(theta)[n * 6 + 4] += 0.5f;
    }
    Tensor *grid = gh(e, DTYPE_F32, DIMS(N, H, W, 2));
    Tensor *dth = gd(e, theta), *dgrid = gd_nan_like(e, grid);
    CPU(affine_grid_forward, N, H, W, theta, grid);
    GPU(affine_grid_forward, N, H, W, dth, dgrid);
    gpu_expect_close(e, "affine_grid forward (3 thetas, 9x13)", dgrid, grid, TOL_EXACTISH);
    Tensor *gg = gh_rand(e, 1910, -1, 1, DIMS(N, H, W, 2)), *gt = gh_rand(e, 1920, -1, 1, DIMS(N, 2, 3));
    Tensor *dgg = gd(e, gg), *dgt = gd(e, gt);
    CPU(affine_grid_backward, N, H, W, gg, gt);
    GPU(affine_grid_backward, N, H, W, dgg, dgt);
    gpu_expect_close(e, "affine_grid backward dtheta", dgt, gt, TOL_EXACTISH);

    /* grid_sample on a random grid (points outside [-1, 1] too), on the affine grid above, and with
     * many channels on a random grid (the kernel of one thread per output; with 3 channels, one
     * thread per sampling point) */
    for (int which = 0; which < 3; which++) {
        int64_t Nn = which == 1 ? N : 2, C = which == 2 ? 9 : 3, Hi = 10, Wi = 12;
        int64_t Ho = which == 1 ? H : 7, Wo = which == 1 ? W : 9;
        Tensor *x = gh_rand(e, 2000 + which, -1, 1, DIMS(Nn, C, Hi, Wi));
        Tensor *gr = which == 1 ? grid : gh_rand(e, 2010 + 100 * which, -1.3f, 1.3f, DIMS(Nn, Ho, Wo, 2));
        Tensor *y = gh(e, DTYPE_F32, DIMS(Nn, C, Ho, Wo));
        Tensor *dxx = gd(e, x), *dgr = gd(e, gr), *dy = gd_nan_like(e, y);
        CPU(grid_sample_forward, x, gr, y);
        GPU(grid_sample_forward, dxx, dgr, dy);
        gpu_expect_close(e, which == 1   ? "grid_sample forward on the affine grid (the patch crop)"
                            : which == 2 ? "grid_sample forward, 9 channels, random grid"
                                         : "grid_sample forward, random grid incl. outside points",
                         dy, y, TOL_EXACTISH);
        Tensor *gy = gh_rand(e, 2020 + which, -1, 1, DIMS(Nn, C, Ho, Wo));
        Tensor *gx = gh_rand(e, 2030 + which, -1, 1, DIMS(Nn, C, Hi, Wi));
        Tensor *ggr = gh_rand(e, 2040 + which, -1, 1, DIMS(Nn, Ho, Wo, 2));
        Tensor *dgy = gd(e, gy), *dgx = gd(e, gx), *dggr = gd(e, ggr);
        CPU(grid_sample_backward, x, gr, gy, gx, ggr);
        GPU(grid_sample_backward, dxx, dgr, dgy, dgx, dggr);
        gpu_expect_close(e, "  backward dx (per-plane, CPU order)", dgx, gx, TOL_EXACTISH);
        gpu_expect_close(e, "  backward dgrid", dggr, ggr, TOL_EXACTISH);
    }
    gpu_end(e);
}

/* ---- time ------------------------------------------------------------------------------- */

static void test_time(void **state)
{
    GpuEnv *e = gpu_begin(state, "temporal shift and linear interpolation along time");
    int64_t N = 2, C = 8, HW = 15;
    int T = 5, fold_div = 4;
    Tensor *x = gh_rand(e, 2100, -1, 1, DIMS(N * T, C, 3, 5));
    Tensor *y = gh_like(e, x), *dxx = gd(e, x), *dy = gd_nan_like(e, x);
    CPU(temporal_shift_forward, N, T, C, HW, fold_div, x, y);
    GPU(temporal_shift_forward, N, T, C, HW, fold_div, dxx, dy);
    gpu_expect_close(e, "temporal_shift forward N2 T5 C8 fold_div 4", dy, y, TOL_EXACTISH);
    Tensor *gy = gh_rand(e, 2110, -1, 1, DIMS(N * T, C, 3, 5)), *gx = gh_rand(e, 2120, -1, 1, DIMS(N * T, C, 3, 5));
    Tensor *dgy = gd(e, gy), *dgx = gd(e, gx);
    CPU(temporal_shift_backward, N, T, C, HW, fold_div, gy, gx);
    GPU(temporal_shift_backward, N, T, C, HW, fold_div, dgy, dgx);
    gpu_expect_close(e, "temporal_shift backward", dgx, gx, TOL_EXACTISH);

    int lens[][2] = {{16, 48}, {48, 16}, {10, 10}, {5, 7}, {1, 4}};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        int Tin = lens[i][0], Tout = lens[i][1];
        int64_t rows = 7;
        Tensor *xi = gh_rand(e, 2200 + i, -1, 1, DIMS(rows, Tin)), *yi = gh(e, DTYPE_F32, DIMS(rows, Tout));
        Tensor *dxi = gd(e, xi), *dyi = gd_nan_like(e, yi);
        CPU(interp_linear_forward, rows, Tin, Tout, xi, yi);
        GPU(interp_linear_forward, rows, Tin, Tout, dxi, dyi);
        char what[96];
        snprintf(what, sizeof what, "interp forward %d -> %d", Tin, Tout);
        gpu_expect_close(e, what, dyi, yi, TOL_EXACTISH);
        Tensor *gyi = gh_rand(e, 2300 + i, -1, 1, DIMS(rows, Tout)), *gxi = gh_rand(e, 2400 + i, -1, 1, DIMS(rows, Tin));
        Tensor *dgyi = gd(e, gyi), *dgxi = gd(e, gxi);
        CPU(interp_linear_backward, rows, Tin, Tout, gyi, gxi);
        GPU(interp_linear_backward, rows, Tin, Tout, dgyi, dgxi);
        snprintf(what, sizeof what, "interp backward %d -> %d", Tin, Tout);
        gpu_expect_close(e, what, dgxi, gxi, TOL_EXACTISH);
    }
    gpu_end(e);
}

/* ---- dropout ---------------------------------------------------------------------------- */

static void test_dropout_masks_bitwise(void **state)
{
    GpuEnv *e = gpu_begin(state, "dropout: masks equal the CPU's bit for bit (same Philox stream)");
    int64_t n = 100003;
    float ps[] = {0.3f, 0.5f, 0.9f};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        RngStream s = rng_stream(1234 + i, RNG_PURPOSE_DROPOUT, 7, 3);
        Tensor *ones = gh(e, DTYPE_F32, DIMS(n));
        for (int64_t k = 0; k < n; k++)
            tensor_f32(ones)[k] = 1.0f;
        Tensor *mask = gh_like(e, ones), *dones = gd(e, ones), *dmask = gd_nan_like(e, ones);
        CPU(dropout_forward, ps[i], &s, ones, mask);
        GPU(dropout_forward, ps[i], &s, dones, dmask);
        char what[96];
        snprintf(what, sizeof what, "dropout mask p=%.1f, %lld elements (forward of ones)", ps[i], (long long)n);
        gpu_expect_equal(e, what, dmask, mask);
        int64_t kept = 0;
        for (int64_t k = 0; k < n; k++)
            kept += tensor_f32(mask)[k] != 0.0f;
        double frac = (double)kept / (double)n;
        e->checks++;
        bool sane = fabs(frac - (1.0 - ps[i])) < 0.01;
        e->failures += !sane;
        printf("  %s   kept fraction %.4f for p = %.1f\n", sane ? "ok  " : "FAIL", frac, ps[i]);

        Tensor *x = gh_rand(e, 2500 + i, -2, 2, DIMS(n)), *y = gh_like(e, x), *dxx = gd(e, x), *dy = gd_nan_like(e, x);
        CPU(dropout_forward, ps[i], &s, x, y);
        GPU(dropout_forward, ps[i], &s, dxx, dy);
        gpu_expect_equal(e, "  dropout forward of random x", dy, y);
        Tensor *gy = gh_rand(e, 2600 + i, -1, 1, DIMS(n)), *gx = gh_rand(e, 2700 + i, -1, 1, DIMS(n));
        Tensor *dgy = gd(e, gy), *dgx = gd(e, gx);
        CPU(dropout_backward, ps[i], &s, gy, gx);
        GPU(dropout_backward, ps[i], &s, dgy, dgx);
        gpu_expect_equal(e, "  dropout backward (regenerated mask, accumulating)", dgx, gx);
    }
    gpu_end(e);
}

int test_group_cuda_ops(int *total)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),         cmocka_unit_test(test_unary),
        cmocka_unit_test(test_binary),         cmocka_unit_test(test_reduce),
        cmocka_unit_test(test_batch_norm),     cmocka_unit_test(test_batch_norm_epilogue),
        cmocka_unit_test(test_batch_norm_sync_pieces),
        cmocka_unit_test(test_batch_norm_sync_op_layer),
        cmocka_unit_test(test_max_pool),
        cmocka_unit_test(test_softmax),        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_spatial),        cmocka_unit_test(test_time),
        cmocka_unit_test(test_dropout_masks_bitwise),
    };
    return gpu_run_group("cuda_ops", tests, sizeof tests / sizeof tests[0], total);
}
