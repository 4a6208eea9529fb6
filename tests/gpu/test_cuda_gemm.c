/* test_cuda_gemm.c — convolutions (cuDNN plans and the direct kernels) and linear layers
 * (cuBLASLt, and the skinny kernel for FP32 forwards of few rows) of the CUDA backend against the
 * CPU reference loops (group cuda_gemm), at each precision with its tolerance (gpu_test_util.h),
 * forward and every gradient, plus determinism checks (two identical backward passes, two skinny
 * forwards give identical bits); the convolutions once more with autotuned cuDNN plans.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/gpu/gpu_test_util.h"

#define CPU(slot, ...) e->cpu->ops->slot(e->cpu, __VA_ARGS__)
#define GPU(slot, ...) e->gpu->ops->slot(e->gpu, __VA_ARGS__)

static const CudaPrecision PRECISIONS[3] = {CUDA_PRECISION_FP32, CUDA_PRECISION_TF32, CUDA_PRECISION_BF16};

/* ---- linear ----------------------------------------------------------------------------- */

static void test_linear(void **state)
{
    GpuEnv *e = gpu_begin(state, "linear forward/backward (cuBLASLt, FP32 skinny kernel) at fp32, tf32, bf16");
    /* skinny: the FP32 forward runs cuda_linear_skinny.cu's kernel (M <= 32, K % 4 == 0, N·K >= 2^18) */
    struct {
        int64_t M, K, N;
        bool bias, skinny;
    } cases[] = {
        {7, 13, 5, true, false},
        {33, 64, 17, false, false},
        {1, 200, 200, true, false},
        {128, 96, 70, true, false},
        {4, 2048, 200, true, true},
        {32, 4096, 200, true, true},   /* the exit classifier's glance heads at batch 32 */
        {32, 8192, 200, false, true},  /* ... its focus heads (no bias here) */
        {1, 4096, 200, true, true},    /* one row */
        {5, 4100, 70, false, true},    /* N not a multiple of the 40-column tile, K not of the slice */
        {17, 2052, 130, true, true},   /* 17 rows: the 32-row tile with 15 zero rows */
        {32, 4098, 200, true, false},  /* K % 4 != 0: no 16-byte loads, stays on cuBLASLt */
        {33, 2048, 200, false, false}, /* M > 32 */
    };
    /* FOCUSBENCH_SKINNY_LINEAR=0 in the environment: cuBLASLt everywhere, and so expected */
    const CudaSkinnyMode skinny_mode = cuda_get_skinny_linear(e->gpu);
    const bool skinny_on = skinny_mode != CUDA_SKINNY_OFF;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        LinearGeom g = {.M = cases[c].M, .K = cases[c].K, .N = cases[c].N};
        Tensor *x = gh_rand(e, 3000 + c, -1, 1, DIMS(g.M, g.K)), *w = gh_rand(e, 3010 + c, -0.5f, 0.5f, DIMS(g.N, g.K));
        Tensor *b = cases[c].bias ? gh_rand(e, 3020 + c, -1, 1, DIMS(g.N)) : NULL;
        Tensor *y = gh(e, DTYPE_F32, DIMS(g.M, g.N));
        Tensor *dy = gh_rand(e, 3030 + c, -1, 1, DIMS(g.M, g.N));
        Tensor *gx0 = gh_rand(e, 3040 + c, -1, 1, DIMS(g.M, g.K)), *gw0 = gh_rand(e, 3050 + c, -1, 1, DIMS(g.N, g.K));
        Tensor *gb0 = gh_rand(e, 3060 + c, -1, 1, DIMS(g.N));
        Tensor *gx = gh_copy(e, gx0), *gw = gh_copy(e, gw0), *gb = gh_copy(e, gb0);
        CPU(linear_forward, &g, x, w, b, y);
        CPU(linear_backward, &g, x, w, dy, gx, gw, cases[c].bias ? gb : NULL);
        Tensor *dxx = gd(e, x), *dw = gd(e, w), *db = b ? gd(e, b) : NULL, *ddy = gd(e, dy);
        for (int p = 0; p < 3; p++) {
            cuda_set_precision(e->gpu, PRECISIONS[p]);
            Tol tol = gpu_tol_for(PRECISIONS[p]);
            Tensor *yd = gd_nan_like(e, y), *gxd = gd(e, gx0), *gwd = gd(e, gw0), *gbd = gd(e, gb0);
            GPU(linear_forward, &g, dxx, dw, db, yd);
            char what[192];
            snprintf(what, sizeof what, "linear %s M%lld K%lld N%lld%s forward [%s]",
                     cuda_precision_name(PRECISIONS[p]), (long long)g.M, (long long)g.K, (long long)g.N,
                     cases[c].bias ? " +bias" : "", cuda_last_linear_info(e->gpu));
            gpu_expect_close(e, what, yd, y, tol);
            bool want_skinny = PRECISIONS[p] == CUDA_PRECISION_FP32 && cases[c].skinny && skinny_on;
            bool ran_skinny = strncmp(cuda_last_linear_info(e->gpu), "skinny", 6) == 0;
            e->checks++;
            if (ran_skinny != want_skinny) {
                printf("  FAIL %s: expected the %s path\n", what, want_skinny ? "skinny kernel" : "cuBLASLt");
                e->failures++;
            }
            if (ran_skinny) { /* fixed summation order, no atomics: a second run gives the same bits, */
                Tensor *h_first = gh_like(e, y), *again = gd_nan_like(e, y);
                GPU(linear_forward, &g, dxx, dw, db, again);
                if (cuda_tensor_to_host(e->gpu, yd, h_first))
                    gpu_expect_equal(e, "  a second run gives the same bits", again, h_first);
                /* ... and so does the reduce step launched the other way (programmatic or plain) */
                cuda_set_skinny_linear(e->gpu, skinny_mode == CUDA_SKINNY_PDL ? CUDA_SKINNY_PLAIN : CUDA_SKINNY_PDL);
                Tensor *other = gd_nan_like(e, y);
                GPU(linear_forward, &g, dxx, dw, db, other);
                gpu_expect_equal(e, "  the reduce step launched the other way gives the same bits", other, h_first);
                cuda_set_skinny_linear(e->gpu, skinny_mode);
            }
            GPU(linear_backward, &g, dxx, dw, ddy, gxd, gwd, cases[c].bias ? gbd : NULL);
            gpu_expect_close(e, "  dx (accumulating)", gxd, gx, tol);
            gpu_expect_close(e, "  dw (accumulating)", gwd, gw, tol);
            if (cases[c].bias)
                gpu_expect_close(e, "  db (accumulating)", gbd, gb, TOL_EXACTISH);
        }
    }
    CudaStats s;
    cuda_get_stats(e->gpu, &s);
    printf("  (%d cuBLASLt plans cached)\n", s.gemm_plans);
    gpu_end(e);
}

/* ---- convolution ------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    int N, C, K, T, H, W, kt, kh, kw, st, sh, sw, pt, ph, pw, groups;
    bool bias;
    bool expect_cudnn; /* a mainstream shape: at fp32 the AUTO path must run cuDNN */
} ConvCase;

static const ConvCase CONV_CASES[] = {
    {"conv2d 3x3 s1 p1", 2, 5, 7, 1, 11, 13, 1, 3, 3, 1, 1, 1, 0, 1, 1, 1, true, false},
    {"conv2d 3x3 s2 p1", 2, 16, 24, 1, 15, 15, 1, 3, 3, 1, 2, 2, 0, 1, 1, 1, false, true},
    {"conv2d 1x1", 3, 32, 16, 1, 7, 9, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, true, true},
    {"conv2d 7x7 s2 p3 (stem)", 1, 3, 8, 1, 23, 23, 1, 7, 7, 1, 2, 2, 0, 3, 3, 1, false, false},
    {"conv2d grouped g4", 2, 8, 12, 1, 9, 9, 1, 3, 3, 1, 1, 1, 0, 1, 1, 4, true, false},
    {"conv2d depthwise 3x3 s2", 2, 12, 12, 1, 14, 14, 1, 3, 3, 1, 2, 2, 0, 1, 1, 12, false, false},
    {"conv1d k5 s2 p2", 3, 6, 5, 1, 1, 29, 1, 1, 5, 1, 1, 2, 0, 0, 2, 1, true, false},
    {"conv3d 3x3x3 p1", 2, 4, 6, 5, 7, 9, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, true},
    {"conv3d 3x1x1 temporal", 2, 8, 8, 7, 6, 6, 3, 1, 1, 1, 1, 1, 1, 0, 0, 1, false, false},
    {"conv3d depthwise 3x3x3 s(1,2,2)", 2, 10, 10, 6, 8, 8, 3, 3, 3, 1, 2, 2, 1, 1, 1, 10, true, false},
    {"conv3d 3x7x7 s(1,2,2) p(1,3,3) (stem)", 1, 3, 8, 8, 16, 16, 3, 7, 7, 1, 2, 2, 1, 3, 3, 1, false, false},
};

static ConvGeom geom_of(const ConvCase *c)
{
    ConvGeom g = {.N = c->N, .C = c->C, .K = c->K, .T = c->T, .H = c->H, .W = c->W, .kt = c->kt, .kh = c->kh,
                  .kw = c->kw, .st = c->st, .sh = c->sh, .sw = c->sw, .pt = c->pt, .ph = c->ph, .pw = c->pw,
                  .dt = 1, .dh = 1, .dw = 1, .groups = c->groups};
    g.To = (g.T + 2 * g.pt - g.kt) / g.st + 1;
    g.Ho = (g.H + 2 * g.ph - g.kh) / g.sh + 1;
    g.Wo = (g.W + 2 * g.pw - g.kw) / g.sw + 1;
    return g;
}

/* One case: the CPU reference once, then the GPU at each (precision, path) combination. */
static void conv_case(GpuEnv *e, size_t ci)
{
    const ConvCase *cc = &CONV_CASES[ci];
    ConvGeom g = geom_of(cc);
    int Cg = g.C / g.groups;
    uint64_t seed = 4000 + 100 * ci;
    Tensor *x = gh_rand(e, seed, -1, 1, DIMS(g.N, g.C, g.T, g.H, g.W));
    Tensor *w = gh_rand(e, seed + 1, -0.5f, 0.5f, DIMS(g.K, Cg, g.kt, g.kh, g.kw));
    Tensor *b = cc->bias ? gh_rand(e, seed + 2, -1, 1, DIMS(g.K)) : NULL;
    Tensor *y = gh(e, DTYPE_F32, DIMS(g.N, g.K, g.To, g.Ho, g.Wo));
    Tensor *dy = gh_rand(e, seed + 3, -1, 1, DIMS(g.N, g.K, g.To, g.Ho, g.Wo));
    Tensor *gx0 = gh_rand(e, seed + 4, -1, 1, DIMS(g.N, g.C, g.T, g.H, g.W));
    Tensor *gw0 = gh_rand(e, seed + 5, -1, 1, DIMS(g.K, Cg, g.kt, g.kh, g.kw));
    Tensor *gb0 = gh_rand(e, seed + 6, -1, 1, DIMS(g.K));
    Tensor *gx = gh_copy(e, gx0), *gw = gh_copy(e, gw0), *gb = gh_copy(e, gb0);
    CPU(conv_forward, &g, x, w, b, y);
    CPU(conv_backward, &g, x, w, dy, gx, gw, gb);

    Tensor *dxx = gd(e, x), *dw = gd(e, w), *db = b ? gd(e, b) : NULL, *ddy = gd(e, dy);
    bool depthwise = g.groups == g.C && g.K == g.C;
    struct {
        CudaPrecision p;
        CudaConvPath path;
        bool dw_custom;
    } runs[] = {
        {CUDA_PRECISION_FP32, CUDA_CONV_AUTO, true},
        {CUDA_PRECISION_TF32, CUDA_CONV_AUTO, true},
        {CUDA_PRECISION_BF16, CUDA_CONV_AUTO, true},
        {CUDA_PRECISION_FP32, CUDA_CONV_DIRECT, true},
        {CUDA_PRECISION_FP32, CUDA_CONV_CUDNN, false}, /* depthwise cases only: cuDNN's grouped path */
    };
    int n_runs = depthwise ? 5 : 4;
    for (int r = 0; r < n_runs; r++) {
        cuda_set_precision(e->gpu, runs[r].p);
        cuda_set_conv_path(e->gpu, runs[r].path);
        cuda_set_depthwise_custom(e->gpu, runs[r].dw_custom);
        /* the direct kernels compute in fp32 whatever the precision */
        Tol tol = runs[r].path == CUDA_CONV_DIRECT ? TOL_FP32_GEMM : gpu_tol_for(runs[r].p);
        const char *path = runs[r].path == CUDA_CONV_DIRECT ? "direct" : runs[r].path == CUDA_CONV_CUDNN ? "cudnn" : "auto";
        Tensor *yd = gd_nan_like(e, y);
        GPU(conv_forward, &g, dxx, dw, db, yd);
        char what[224], info[160];
        snprintf(info, sizeof info, "%s", cuda_last_conv_info(e->gpu));
        snprintf(what, sizeof what, "%s %s path=%s forward [%s]", cc->name, cuda_precision_name(runs[r].p), path,
                 info);
        gpu_expect_close(e, what, yd, y, tol);
        if (strstr(info, "to be autotuned")) { /* autotuning happens at a plan's first run, not later */
            e->checks++;
            e->failures++;
            printf("  FAIL %s: the plan ran without being autotuned\n", what);
        }
        if (cc->expect_cudnn && runs[r].p == CUDA_PRECISION_FP32 && runs[r].path == CUDA_CONV_AUTO) {
            e->checks++;
            bool ok = strncmp(info, "cudnn", 5) == 0;
            e->failures += !ok;
            printf("  %s   %s ran on cuDNN at fp32 (a mainstream shape must not fall back to the direct kernel)\n",
                   ok ? "ok  " : "FAIL", cc->name);
        }
        Tensor *gxd = gd(e, gx0), *gwd = gd(e, gw0), *gbd = gd(e, gb0);
        GPU(conv_backward, &g, dxx, dw, ddy, gxd, gwd, gbd);
        snprintf(what, sizeof what, "  backward dx (accumulating) [last: %s]", cuda_last_conv_info(e->gpu));
        gpu_expect_close(e, what, gxd, gx, tol);
        gpu_expect_close(e, "  backward dw (accumulating)", gwd, gw, tol);
        gpu_expect_close(e, "  backward db (accumulating)", gbd, gb, TOL_EXACTISH);
    }
}

static void test_conv_2d(void **state)
{
    GpuEnv *e = gpu_begin(state, "conv1d/conv2d (cuDNN plans, direct kernels, depthwise) vs CPU reference");
    for (size_t i = 0; i < sizeof CONV_CASES / sizeof CONV_CASES[0]; i++)
        if (CONV_CASES[i].T == 1) {
            conv_case(e, i);
            ctx_begin_pass(e->gpu); /* give the arena back between cases */
        }
    gpu_end(e);
}

static void test_conv_3d(void **state)
{
    GpuEnv *e = gpu_begin(state, "conv3d (cuDNN plans, direct kernels, depthwise) vs CPU reference");
    for (size_t i = 0; i < sizeof CONV_CASES / sizeof CONV_CASES[0]; i++)
        if (CONV_CASES[i].T > 1) {
            conv_case(e, i);
            ctx_begin_pass(e->gpu);
        }
    CudaStats s;
    cuda_get_stats(e->gpu, &s);
    printf("  (%d convolution plans cached, %d of them cuDNN)\n", s.conv_plans, s.conv_plans_cudnn);
    gpu_end(e);
}

/* Every case again with autotuning on (a fresh context, so every plan is new): each plan's first
 * run times its candidates on the call's own buffers, each candidate writing the whole output,
 * and keeps the fastest; the results must still match the CPU at each precision. */
static void test_conv_autotuned(void **state)
{
    GpuEnv *e = gpu_begin(state, "conv1d/2d/3d with autotuned cuDNN plans vs CPU reference");
    cuda_set_conv_autotune(e->gpu, true);
    for (size_t i = 0; i < sizeof CONV_CASES / sizeof CONV_CASES[0]; i++) {
        conv_case(e, i);
        ctx_begin_pass(e->gpu);
    }
    gpu_end(e);
}

/* Every case again with nondeterministic cuDNN engines allowed as well (cuda_set_conv_nondeterministic,
 * `profile --nondeterministic`): new plans (the flag is part of the cache key), autotuned over the
 * larger candidate set; the results must still match the CPU at each precision. */
static void test_conv_nondeterministic(void **state)
{
    GpuEnv *e = gpu_begin(state, "conv1d/2d/3d with nondeterministic cuDNN engines allowed vs CPU reference");
    cuda_set_conv_autotune(e->gpu, true);
    cuda_set_conv_nondeterministic(e->gpu, true);
    for (size_t i = 0; i < sizeof CONV_CASES / sizeof CONV_CASES[0]; i++) {
        conv_case(e, i);
        ctx_begin_pass(e->gpu);
    }
    gpu_end(e);
}

/* Two identical backward passes (cuDNN at fp32 and bf16, heuristic and autotuned plans, and the
 * direct kernels) must give the same bits: the plans are restricted to deterministic engines and
 * the custom kernels use no atomics. */
static void test_conv_deterministic(void **state)
{
    GpuEnv *e = gpu_begin(state, "conv backward twice: bitwise identical gradients");
    const ConvCase *cc = &CONV_CASES[1];
    ConvGeom g = geom_of(cc);
    Tensor *x = gh_rand(e, 5000, -1, 1, DIMS(g.N, g.C, g.T, g.H, g.W));
    Tensor *w = gh_rand(e, 5001, -0.5f, 0.5f, DIMS(g.K, g.C / g.groups, g.kt, g.kh, g.kw));
    Tensor *dy = gh_rand(e, 5002, -1, 1, DIMS(g.N, g.K, g.To, g.Ho, g.Wo));
    Tensor *dxx = gd(e, x), *dw = gd(e, w), *ddy = gd(e, dy);
    struct {
        CudaPrecision p;
        CudaConvPath path;
        bool autotune;
    } runs[] = {{CUDA_PRECISION_FP32, CUDA_CONV_AUTO, false}, {CUDA_PRECISION_BF16, CUDA_CONV_AUTO, false},
                {CUDA_PRECISION_FP32, CUDA_CONV_AUTO, true},  {CUDA_PRECISION_BF16, CUDA_CONV_AUTO, true},
                {CUDA_PRECISION_FP32, CUDA_CONV_DIRECT, false}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        cuda_set_precision(e->gpu, runs[r].p);
        cuda_set_conv_path(e->gpu, runs[r].path);
        cuda_set_conv_autotune(e->gpu, runs[r].autotune);
        Tensor *first_x = gh_like(e, x), *first_w = gh_like(e, w);
        for (int rep = 0; rep < 2; rep++) {
            Tensor *gxd = gd_nan_like(e, x), *gwd = gd_nan_like(e, w);
            e->gpu->ops->device_memset(e->gpu, gxd->data, 0, tensor_bytes(gxd));
            e->gpu->ops->device_memset(e->gpu, gwd->data, 0, tensor_bytes(gwd));
            GPU(conv_backward, &g, dxx, dw, ddy, gxd, gwd, NULL);
            char what[192];
            if (rep == 0) {
                if (!cuda_tensor_to_host(e->gpu, gxd, first_x) || !cuda_tensor_to_host(e->gpu, gwd, first_w))
                    gpu_expect_ok(e, "download of the first backward pass");
                continue;
            }
            snprintf(what, sizeof what, "%s %s%s second dx == first [%s]", cc->name, cuda_precision_name(runs[r].p),
                     runs[r].autotune ? " autotuned" : "", cuda_last_conv_info(e->gpu));
            gpu_expect_equal(e, what, gxd, first_x);
            gpu_expect_equal(e, "  second dw == first", gwd, first_w);
        }
    }
    gpu_end(e);
}

int test_group_cuda_gemm(int *total)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_conv_2d),
        cmocka_unit_test(test_conv_3d),
        cmocka_unit_test(test_conv_autotuned),
        cmocka_unit_test(test_conv_nondeterministic),
        cmocka_unit_test(test_conv_deterministic),
    };
    return gpu_run_group("cuda_gemm", tests, sizeof tests / sizeof tests[0], total);
}
