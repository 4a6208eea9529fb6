/* test_linear.c — the GEMM (builtin fallback and cpu_sgemm) against a naive triple loop, and the
 * linear op: fast path vs reference, finite-difference gradients, MACs on meta, bad arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/backend.h"
#include "kernels/cpu/cpu_gemm.h"
#include "kernels/cpu/cpu_kernels.h"
#include "test_util.h"

typedef void (*SgemmFn)(bool, bool, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t,
                        float, float *, int64_t);

/* C = alpha·op(A)·op(B) + beta·C in double, straight from the definition (beta = 0 ignores C). */
static void naive_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
            C[i * ldc + j] = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * C[i * ldc + j]));
        }
}

static float *random_floats(int64_t n, uint64_t seed)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    assert_non_null(p);
    RngStream s = rng_stream(seed, RNG_PURPOSE_TEST, 4, 0);
    for (int64_t i = 0; i < n; i++)
        p[i] = 2.0f * rng_uniform(&s, (uint64_t)i) - 1.0f;
    return p;
}

typedef struct {
    int64_t M, N, K;
} GemmShape;

/* Odd sizes; K past one KC block (256), M past one MC block (96), N past one NC block (256). */
static const GemmShape GEMM_SHAPES[] = {{1, 1, 1}, {7, 13, 5}, {37, 70, 300}, {100, 260, 33}, {5, 600, 17},
                                        {97, 33, 513}, {6, 32, 256}, {3, 5, 0}};

/* Every transpose combination, padded leading dims, alpha ≠ 1, and beta 0 (C full of NaN that
 * must not leak through), 1 and −0.5. */
static void check_sgemm(SgemmFn fn, const char *name)
{
    const float betas[3] = {0.0f, 1.0f, -0.5f};
    for (size_t s = 0; s < sizeof GEMM_SHAPES / sizeof GEMM_SHAPES[0]; s++) {
        GemmShape sh = GEMM_SHAPES[s];
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            int64_t lda = (ta ? sh.M : sh.K) + 3, ldb = (tb ? sh.K : sh.N) + 2, ldc = sh.N + 5;
            int64_t a_rows = ta ? sh.K : sh.M, b_rows = tb ? sh.N : sh.K;
            float *A = random_floats(a_rows * lda, 1 + s), *B = random_floats(b_rows * ldb, 2 + s);
            for (int bi = 0; bi < 3; bi++) {
                float *C = random_floats(sh.M * ldc, 3 + s), *expect = random_floats(sh.M * ldc, 3 + s);
                if (betas[bi] == 0.0f)
                    for (int64_t i = 0; i < sh.M * ldc; i++)
                        C[i] = NAN;
                fn(ta, tb, sh.M, sh.N, sh.K, 0.75f, A, lda, B, ldb, betas[bi], C, ldc);
                naive_sgemm(ta, tb, sh.M, sh.N, sh.K, 0.75f, A, lda, B, ldb, betas[bi], expect, ldc);
                char what[160];
                snprintf(what, sizeof what, "%s M=%lld N=%lld K=%lld ta=%d tb=%d beta=%g", name, (long long)sh.M,
                         (long long)sh.N, (long long)sh.K, ta, tb, betas[bi]);
                for (int64_t i = 0; i < sh.M; i++) /* the rows' padding past N is never touched */
                    tassert_close(C + i * ldc, expect + i * ldc, sh.N, 1e-5, 1e-5, what);
                free(C);
                free(expect);
            }
            free(A);
            free(B);
        }
    }
}

static void test_gemm_builtin_matches_naive(void **state) { check_sgemm(cpu_sgemm_builtin, "cpu_sgemm_builtin"); }
static void test_gemm_dispatch_matches_naive(void **state) { check_sgemm(cpu_sgemm, "cpu_sgemm"); }

/* The builtin splits C into tiles, never K: one thread or two give the same bits. */
static void test_gemm_builtin_thread_count_independent(void **state)
{
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    int64_t M = 300, N = 520, K = 700;
    float *A = random_floats(M * K, 5), *B = random_floats(K * N, 6);
    float *C1 = malloc((size_t)(M * N) * sizeof(float)), *C2 = malloc((size_t)(M * N) * sizeof(float));
    omp_set_num_threads(1);
    cpu_sgemm_builtin(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
    omp_set_num_threads(2);
    cpu_sgemm_builtin(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
    omp_set_num_threads(saved);
    assert_memory_equal(C1, C2, (size_t)(M * N) * sizeof(float));
    free(A);
    free(B);
    free(C1);
    free(C2);
#else
    skip();
#endif
}

/* ---- the linear op ---------------------------------------------------------------------- */

static const LinearGeom LINEAR_SHAPES[] = {{1, 1, 1}, {3, 17, 5}, {64, 300, 33}, {9, 1280, 40}, {130, 7, 260}};

static void test_linear_fast_matches_reference(void **state)
{
    Ctx *ctx = tctx(1);
    for (size_t s = 0; s < sizeof LINEAR_SHAPES / sizeof LINEAR_SHAPES[0]; s++) {
        LinearGeom g = LINEAR_SHAPES[s];
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            Tensor *x = TT(g.M, g.K), *w = TT(g.N, g.K), *b = with_bias ? TT(g.N) : NULL, *dy = TT(g.M, g.N);
            tfill_uniform(x, 10 + s, -1, 1);
            tfill_uniform(w, 20 + s, -1, 1);
            if (b)
                tfill_uniform(b, 30 + s, -1, 1);
            tfill_uniform(dy, 40 + s, -1, 1);
            Tensor *y_ref = TT(g.M, g.N), *y_fast = TT(g.M, g.N);
            cpu_linear_forward_ref(ctx, &g, x, w, b, y_ref);
            for (int64_t i = 0; i < g.M * g.N; i++)
                tensor_f32(y_fast)[i] = NAN;
            cpu_linear_forward(ctx, &g, x, w, b, y_fast);
            char what[128];
            snprintf(what, sizeof what, "linear forward M=%lld K=%lld N=%lld bias=%d", (long long)g.M, (long long)g.K,
                     (long long)g.N, with_bias);
            tassert_close(tensor_f32(y_fast), tensor_f32(y_ref), g.M * g.N, 1e-5, 1e-5, what);
            /* gradients accumulate onto the same random start on both paths */
            Tensor *ref[3] = {TT(g.M, g.K), TT(g.N, g.K), TT(g.N)}, *fast[3] = {TT(g.M, g.K), TT(g.N, g.K), TT(g.N)};
            for (int k = 0; k < 3; k++) {
                tfill_uniform(ref[k], 50 + (uint64_t)k, -1, 1);
                tfill_uniform(fast[k], 50 + (uint64_t)k, -1, 1);
            }
            cpu_linear_backward_ref(ctx, &g, x, w, dy, ref[0], ref[1], ref[2]);
            cpu_linear_backward(ctx, &g, x, w, dy, fast[0], fast[1], fast[2]);
            const char *names[3] = {"dx", "dw", "db"};
            for (int k = 0; k < 3; k++) {
                snprintf(what, sizeof what, "linear backward %s M=%lld K=%lld N=%lld", names[k], (long long)g.M,
                         (long long)g.K, (long long)g.N);
                tassert_close(tensor_f32(fast[k]), tensor_f32(ref[k]), tensor_numel(ref[k]), 1e-5, 1e-5, what);
                ttensor_free(ref[k]);
                ttensor_free(fast[k]);
            }
            assert_true(ctx_ok(ctx));
            Tensor *all[] = {x, w, b, dy, y_ref, y_fast};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
                ttensor_free(all[i]);
        }
    }
    ctx_destroy(ctx);
}

static void test_linear_known_values(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(2, 3), *w = TT(2, 3), *b = TT(2);
    const float xv[6] = {1, 2, 3, 4, 5, 6}, wv[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, bv[2] = {10, -1};
    memcpy(x->data, xv, sizeof xv);
    memcpy(w->data, wv, sizeof wv);
    memcpy(b->data, bv, sizeof bv);
    const float expect[4] = {1 - 3 + 10, 3 - 1, 4 - 6 + 10, 7.5f - 1};
    for (int ref = 0; ref < 2; ref++) {
        ctx->cpu_reference = ref == 1;
        Tensor *y = op_linear(ctx, x, w, b);
        assert_non_null(y);
        assert_int_equal(y->shape[0], 2);
        assert_int_equal(y->shape[1], 2);
        tassert_close(tensor_f32(y), expect, 4, 0, 1e-6, ref ? "linear (reference)" : "linear (fast)");
    }
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(w);
    ttensor_free(b);
}

static Tensor *apply_linear(Ctx *ctx, Tensor **in, void *user)
{
    return op_linear(ctx, in[0], in[1], in[2]->requires_grad ? in[2] : NULL);
}

static void test_linear_gradcheck(void **state)
{
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        Tensor *x = TTG(4, 7), *w = TTG(5, 7), *b = with_bias ? TTG(5) : TT(5);
        tfill_uniform(x, 1, -1, 1);
        tfill_uniform(w, 2, -1, 1);
        tfill_uniform(b, 3, -1, 1);
        Tensor *in[3] = {x, w, b};
        tgradcheck(apply_linear, in, 3, NULL, 1e-2, 1e-3, 1e-2, 0, with_bias ? "linear with bias" : "linear without bias");
        ttensor_free(x);
        ttensor_free(w);
        ttensor_free(b);
    }
}

static void test_linear_meta_macs(void **state)
{
    Ctx *ctx = ctx_create(BACKEND_META, 1);
    assert_non_null(ctx);
    /* classifier head: 16 frames × 1280 → 200 classes = 4,096,000 MACs, bias not counted */
    Tensor *x = tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){16, 1280});
    Tensor *w = tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){200, 1280});
    Tensor *b = tensor_new(ctx, DTYPE_F32, 1, (int64_t[]){200});
    Tensor *y = op_linear(ctx, x, w, b);
    assert_non_null(y);
    assert_null(y->data);
    assert_int_equal(y->shape[0], 16);
    assert_int_equal(y->shape[1], 200);
    assert_true(ctx_total_macs(ctx) == 4096000.0);
    ctx_reset_counters(ctx);
    /* global MLP 1280 → 4096 on 16 glance frames: 83,886,080 */
    Tensor *w2 = tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){4096, 1280});
    assert_non_null(op_linear(ctx, x, w2, NULL));
    assert_true(ctx_total_macs(ctx) == 83886080.0);
    assert_true(ctx_ok(ctx));
    ctx_destroy(ctx);
}

static void test_linear_bad_arguments(void **state)
{
    Ctx *ctx = tctx(1);
    Tensor *x = TT(4, 7), *w = TT(5, 6), *w_ok = TT(5, 7), *b = TT(4), *x3 = TT(2, 2, 7);
    assert_null(op_linear(ctx, x, w, NULL));
    const char *msg = ctx_error_message(ctx);
    assert_non_null(strstr(msg, "linear"));
    assert_non_null(strstr(msg, "(4, 7)"));
    assert_non_null(strstr(msg, "(5, 6)"));
    ctx_clear_error(ctx);
    assert_null(op_linear(ctx, x, w_ok, b));
    assert_non_null(strstr(ctx_error_message(ctx), "b (4) must be (5)"));
    ctx_clear_error(ctx);
    assert_null(op_linear(ctx, x3, w_ok, NULL));
    assert_non_null(strstr(ctx_error_message(ctx), "x must have 2 dims"));
    ctx_clear_error(ctx);
    assert_null(op_linear(ctx, x, NULL, NULL));
    assert_non_null(strstr(ctx_error_message(ctx), "input 1 is NULL"));
    ctx_clear_error(ctx);
    assert_non_null(op_linear(ctx, x, w_ok, NULL));
    assert_true(ctx_ok(ctx));
    ctx_destroy(ctx);
    Tensor *all[] = {x, w, w_ok, b, x3};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ttensor_free(all[i]);
}

/* Fast path twice with two threads: bit-identical forward and gradients. */
static void test_linear_runs_are_bit_identical(void **state)
{
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
#endif
    LinearGeom g = {.M = 96, .K = 1280, .N = 300};
    Tensor *out[2][4];
    for (int run = 0; run < 2; run++) {
        Ctx *ctx = tctx(1);
        Tensor *x = TT(g.M, g.K), *w = TT(g.N, g.K), *b = TT(g.N), *dy = TT(g.M, g.N);
        tfill_uniform(x, 1, -1, 1);
        tfill_uniform(w, 2, -1, 1);
        tfill_uniform(b, 3, -1, 1);
        tfill_uniform(dy, 4, -1, 1);
        out[run][0] = TT(g.M, g.N), out[run][1] = TT(g.M, g.K), out[run][2] = TT(g.N, g.K), out[run][3] = TT(g.N);
        cpu_linear_forward(ctx, &g, x, w, b, out[run][0]);
        cpu_linear_backward(ctx, &g, x, w, dy, out[run][1], out[run][2], out[run][3]);
        ctx_destroy(ctx);
        Tensor *all[] = {x, w, b, dy};
        for (size_t i = 0; i < 4; i++)
            ttensor_free(all[i]);
    }
    for (int k = 0; k < 4; k++) {
        assert_memory_equal(out[0][k]->data, out[1][k]->data, tensor_bytes(out[0][k]));
        ttensor_free(out[0][k]);
        ttensor_free(out[1][k]);
    }
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
}

TEST_GROUP(linear, cmocka_unit_test(test_gemm_builtin_matches_naive), cmocka_unit_test(test_gemm_dispatch_matches_naive),
           cmocka_unit_test(test_gemm_builtin_thread_count_independent),
           cmocka_unit_test(test_linear_fast_matches_reference), cmocka_unit_test(test_linear_known_values),
           cmocka_unit_test(test_linear_gradcheck), cmocka_unit_test(test_linear_meta_macs),
           cmocka_unit_test(test_linear_bad_arguments), cmocka_unit_test(test_linear_runs_are_bit_identical))
