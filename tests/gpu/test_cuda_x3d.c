/* test_cuda_x3d.c — the `cuda_x3d` GPU test group: the channel-wise 3-D convolution kernels
 * (kernels/cuda/cuda_dwconv3d.cu) and X3D (impl/x3d.h) on the CUDA backend against the CPU.
 *
 *   dwconv3d kernels   random 3-D depthwise shapes (odd sizes, strides 1/2 in time and space, 3×3×3,
 *                      5×1×1, 1×3×3, with and without bias): forward, backward data and weights
 *                      (both accumulating) vs the CPU reference kernels; the dispatch must report
 *                      the dwconv3d path; the weight gradient twice, bit for bit (determinism).
 *   dwconv3d speed     X3D-L-sized channel-wise convs (the local network at 128², B 8 × 2 sets):
 *                      time per call and the effective bandwidth (x + w + y bytes, and x + dy + dx
 *                      for the backward), printed for the report; only sanity-checked.
 *   x3d block          blocks of the small fixture X3D (projection + SE + stride 2; identity, no
 *                      SE) on the GPU vs the CPU, eval and train mode, with parameter gradients.
 *   x3d fixture        the whole small X3D on the GPU vs the PyTorch fixture
 *                      (tests/fixtures/x3d_small.safetensors): eval logits and features, train
 *                      logits and gradients.
 *   uniadafocus-x3d    synth-x3d-tiny eval on the GPU (device frame sampler) vs the CPU, both exits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "impl/checkpoint.h"
#include "impl/safetensors.h"
#include "impl/uniadafocus_x3d.h"
#include "impl/x3d.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/ops.h"
#include "kernels/tape.h"
#include "tests/gpu/gpu_test_util.h"

#define CPU(slot, ...) e->cpu->ops->slot(e->cpu, __VA_ARGS__)
#define GPU(slot, ...) e->gpu->ops->slot(e->gpu, __VA_ARGS__)
#define FIXTURE "tests/fixtures/x3d_small.safetensors"

static void check(GpuEnv *e, bool ok, const char *what)
{
    e->checks++;
    e->failures += !ok;
    printf("  %s %s\n", ok ? "ok  " : "FAIL", what);
    fflush(stdout);
}

/* ---- the kernels -------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int N, C, T, H, W, kt, kh, kw, st, ss, pt, ps;
    bool bias;
} DwCase;

static const DwCase CASES[] = {
    {"3x3x3 s1 odd", 2, 5, 7, 9, 11, 3, 3, 3, 1, 1, 1, 1, true},
    {"3x3x3 s(1,2,2) odd", 3, 7, 5, 13, 9, 3, 3, 3, 1, 2, 1, 1, false},
    {"3x3x3 s2 all dims", 1, 6, 9, 15, 15, 3, 3, 3, 2, 2, 1, 1, true},
    {"5x1x1 stem", 2, 24, 13, 20, 20, 5, 1, 1, 1, 1, 2, 0, false},
    {"1x3x3 in time", 2, 9, 4, 7, 5, 1, 3, 3, 1, 1, 0, 1, true},
    {"3x3x3 tiny map", 4, 33, 6, 2, 2, 3, 3, 3, 1, 1, 1, 1, false},
    {"3x3x3 X3D-S s4", 2, 216, 16, 10, 10, 3, 3, 3, 1, 1, 1, 1, false},
    {"3x3x3 no pad", 2, 3, 5, 6, 7, 3, 3, 3, 1, 1, 0, 0, true},
};

static ConvGeom geom_of(const DwCase *c)
{
    ConvGeom g = {.N = c->N, .C = c->C, .K = c->C, .T = c->T, .H = c->H, .W = c->W, .kt = c->kt, .kh = c->kh,
                  .kw = c->kw, .st = c->st, .sh = c->ss, .sw = c->ss, .pt = c->pt, .ph = c->ps, .pw = c->ps,
                  .dt = 1, .dh = 1, .dw = 1, .groups = c->C};
    g.To = (g.T + 2 * g.pt - g.kt) / g.st + 1;
    g.Ho = (g.H + 2 * g.ph - g.kh) / g.sh + 1;
    g.Wo = (g.W + 2 * g.pw - g.kw) / g.sw + 1;
    return g;
}

static void test_dwconv3d_kernels(void **state)
{
    GpuEnv *e = gpu_begin(state, "channel-wise 3-D conv kernels vs the CPU reference (fwd, bwd data, bwd weights)");
    cuda_set_precision(e->gpu, CUDA_PRECISION_FP32);
    cuda_set_conv_path(e->gpu, CUDA_CONV_AUTO);
    cuda_set_depthwise_custom(e->gpu, true);
    for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
        const DwCase *cc = &CASES[ci];
        ConvGeom g = geom_of(cc);
        uint64_t seed = 7000 + 100 * ci;
        Tensor *x = gh_rand(e, seed, -1, 1, DIMS(g.N, g.C, g.T, g.H, g.W));
        Tensor *w = gh_rand(e, seed + 1, -0.5f, 0.5f, DIMS(g.C, 1, g.kt, g.kh, g.kw));
        Tensor *b = cc->bias ? gh_rand(e, seed + 2, -1, 1, DIMS(g.C)) : NULL;
        Tensor *y = gh(e, DTYPE_F32, DIMS(g.N, g.C, g.To, g.Ho, g.Wo));
        Tensor *dy = gh_rand(e, seed + 3, -1, 1, DIMS(g.N, g.C, g.To, g.Ho, g.Wo));
        Tensor *gx0 = gh_rand(e, seed + 4, -1, 1, DIMS(g.N, g.C, g.T, g.H, g.W));
        Tensor *gw0 = gh_rand(e, seed + 5, -1, 1, DIMS(g.C, 1, g.kt, g.kh, g.kw));
        Tensor *gx = gh_copy(e, gx0), *gw = gh_copy(e, gw0);
        CPU(conv_forward, &g, x, w, b, y);
        CPU(conv_backward, &g, x, w, dy, gx, gw, NULL);

        Tensor *dxx = gd(e, x), *dw = gd(e, w), *db = b ? gd(e, b) : NULL, *ddy = gd(e, dy), *yd = gd_nan_like(e, y);
        char what[256];
        GPU(conv_forward, &g, dxx, dw, db, yd);
        bool routed = strncmp(cuda_last_conv_info(e->gpu), "dwconv3d", 8) == 0;
        snprintf(what, sizeof what, "%s: (%d, %d, %d, %d, %d) k(%d,%d,%d) s(%d,%d) forward [%s]", cc->name, g.N, g.C,
                 g.T, g.H, g.W, g.kt, g.kh, g.kw, g.st, g.sh, cuda_last_conv_info(e->gpu));
        gpu_expect_close(e, what, yd, y, TOL_FP32_GEMM);
        snprintf(what, sizeof what, "  %s ran on the dwconv3d kernels", cc->name);
        check(e, routed, what);
        Tensor *gxd = gd(e, gx0), *gwd = gd(e, gw0);
        GPU(conv_backward, &g, dxx, dw, ddy, gxd, gwd, NULL);
        gpu_expect_close(e, "  backward dx (accumulating)", gxd, gx, TOL_FP32_GEMM);
        gpu_expect_close(e, "  backward dw (accumulating)", gwd, gw, TOL_FP32_GEMM);
        /* determinism: the weight gradient again from the same start, bit for bit */
        Tensor *first = gh_like(e, gw);
        e->gpu->ops->copy_to_host(e->gpu, tensor_f32(first), gwd);
        Tensor *gwd2 = gd(e, gw0);
        GPU(conv_backward, &g, dxx, dw, ddy, NULL, gwd2, NULL);
        gpu_expect_equal(e, "  backward dw twice: bit-identical", gwd2, first);
    }
    gpu_end(e);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void test_dwconv3d_speed(void **state)
{
    GpuEnv *e = gpu_begin(state, "channel-wise 3-D conv speed at X3D-L sizes (128² patches, 32 frames, batch 16)");
    cuda_set_precision(e->gpu, CUDA_PRECISION_FP32);
    cuda_set_conv_path(e->gpu, CUDA_CONV_AUTO);
    cuda_set_depthwise_custom(e->gpu, true);
    /* X3D-L stages at 128²: s2 first block (64² → 32², stride 2), s2 (32²), s3 (16²), s4 (8²), s5 (4²) */
    const DwCase sizes[] = {
        {"X3D-L s2 stride 2", 16, 54, 32, 64, 64, 3, 3, 3, 1, 2, 1, 1, false},
        {"X3D-L s2", 16, 54, 32, 32, 32, 3, 3, 3, 1, 1, 1, 1, false},
        {"X3D-L s3", 16, 108, 32, 16, 16, 3, 3, 3, 1, 1, 1, 1, false},
        {"X3D-L s4", 16, 216, 32, 8, 8, 3, 3, 3, 1, 1, 1, 1, false},
        {"X3D-L s5", 16, 432, 32, 4, 4, 3, 3, 3, 1, 1, 1, 1, false},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ConvGeom g = geom_of(&sizes[i]);
        Tensor *x = gh_rand(e, 9000 + i, -1, 1, DIMS(g.N, g.C, g.T, g.H, g.W));
        Tensor *w = gh_rand(e, 9100 + i, -1, 1, DIMS(g.C, 1, 3, 3, 3));
        Tensor *dy = gh_rand(e, 9200 + i, -1, 1, DIMS(g.N, g.C, g.To, g.Ho, g.Wo));
        Tensor *dxx = gd(e, x), *dw = gd(e, w), *ddy = gd(e, dy), *yd = gd_nan_like(e, dy);
        Tensor *gxd = gd_nan_like(e, x), *gwd = gd_nan_like(e, w);
        e->gpu->ops->fill(e->gpu, gxd, 0.0f);
        e->gpu->ops->fill(e->gpu, gwd, 0.0f);
        const int reps = 20;
        double t[3];
        for (int op = 0; op < 3; op++) {
            for (int r = -2; r < reps; r++) { /* two warm-up calls */
                if (r == 0) {
                    cuda_synchronize(e->gpu);
                    t[op] = now_s();
                }
                if (op == 0)
                    GPU(conv_forward, &g, dxx, dw, NULL, yd);
                else if (op == 1)
                    GPU(conv_backward, &g, dxx, dw, ddy, gxd, NULL, NULL);
                else
                    GPU(conv_backward, &g, dxx, dw, ddy, NULL, gwd, NULL);
            }
            cuda_synchronize(e->gpu);
            t[op] = (now_s() - t[op]) / reps;
        }
        double bx = 4.0 * tensor_numel(x), by = 4.0 * tensor_numel(dy);
        printf("  info %-18s fwd %7.1f us (%6.0f GB/s)  bwd-data %7.1f us (%6.0f GB/s)  bwd-w %7.1f us (%6.0f GB/s)\n",
               sizes[i].name, t[0] * 1e6, (bx + by) / t[0] * 1e-9, t[1] * 1e6, (2 * bx + by) / t[1] * 1e-9,
               t[2] * 1e6, (bx + by) / t[2] * 1e-9);
        char what[160];
        snprintf(what, sizeof what, "%s: finite times, no device error", sizes[i].name);
        check(e, ctx_ok(e->gpu) && t[0] > 0 && t[1] > 0 && t[2] > 0, what);
    }
    gpu_end(e);
}

/* ---- X3D on the GPU ------------------------------------------------------------------------------ */

static X3dConfig small_config(void)
{
    X3dConfig c = x3d_config(X3D_S);
    c.depth_factor = 0.5;
    c.dim_c1 = 4;
    c.dim_c5 = 32;
    c.num_classes = 5;
    c.dropout = 0.0f;
    return c;
}

typedef struct {
    ParamSet *ps;
    X3d *net;
} SmallNet;

static SmallNet small_net_load(const SafetensorsFile *f)
{
    SmallNet s = {params_create(), NULL};
    char err[1024];
    X3dConfig c = small_config();
    s.net = x3d_create(&c, s.ps, err, sizeof err);
    if (!s.net)
        fail_msg("x3d_create: %s", err);
    if (!params_allocate(s.ps, BACKEND_CPU, true, err, sizeof err))
        fail_msg("params_allocate: %s", err);
    CheckpointLoadOptions opt = {.file_prefix = "w."};
    if (!checkpoint_load_file(s.ps, f, &opt, err, sizeof err))
        fail_msg("fixture weights: %s", err);
    return s;
}

static Tensor *fixture_f32(GpuEnv *e, const SafetensorsFile *f, const char *name)
{
    const SafetensorsTensor *st = safetensors_find(f, name);
    if (!st)
        fail_msg("fixture has no tensor \"%s\"", name);
    Tensor *t = gh(e, DTYPE_F32, st->ndim, st->shape);
    char err[256];
    if (!safetensors_read_f32(st, tensor_f32(t), tensor_numel(t), err, sizeof err))
        fail_msg("%s", err);
    return t;
}

/* A host copy of a CPU parameter's gradient. */
static Tensor *grad_copy(GpuEnv *e, ParamSet *ps, const char *key)
{
    Tensor *p = params_find(ps, key);
    if (!p || !p->grad)
        fail_msg("no parameter %s", key);
    return gh_copy(e, p->grad);
}

static const char *const BLOCK_KEYS[] = {"s2.pathway0_res0.branch2.a.weight", "s2.pathway0_res0.branch2.b.weight",
                                         "s2.pathway0_res0.branch2.se.fc1.weight", "s2.pathway0_res0.branch1.weight",
                                         "s2.pathway0_res0.branch2.c_bn.weight"};

static void test_x3d_block(void **state)
{
    GpuEnv *e = gpu_begin(state, "X3D blocks (projection+SE+stride 2; identity) GPU vs CPU, eval and train");
    cuda_set_precision(e->gpu, CUDA_PRECISION_FP32);
    cuda_set_conv_path(e->gpu, CUDA_CONV_AUTO);
    char err[512];
    SafetensorsFile *f = safetensors_open(FIXTURE, err, sizeof err);
    if (!f)
        fail_msg("cannot open the fixture (run from the repository root): %s", err);
    SmallNet s = small_net_load(f);
    const char *xs[2] = {"blk0.x", "blk1.x"};
    const int index[2] = {0, s.net->depth[0] + s.net->depth[1] + 1};
    for (int i = 0; i < 2; i++) {
        const X3dBlock *blk = &s.net->blocks[index[i]];
        Tensor *x = fixture_f32(e, f, xs[i]);
        /* CPU: eval output, then train output and gradients of Σ y·r */
        ctx_begin_pass(e->cpu);
        Tensor *ye = gh_copy(e, x3d_block_forward(e->cpu, blk, x));
        ctx_begin_pass(e->cpu);
        ctx_set_training(e->cpu, true);
        params_zero_grad(s.ps);
        Tensor *yt_cpu = x3d_block_forward(e->cpu, blk, x);
        Tensor *r = gh_rand(e, 33 + i, -1, 1, yt_cpu->ndim, yt_cpu->shape);
        bool ok = tape_backward(e->cpu, op_sum_all(e->cpu, op_mul(e->cpu, yt_cpu, r)));
        ctx_set_training(e->cpu, false);
        if (!ok)
            fail_msg("CPU block backward: %s", ctx_error_message(e->cpu));
        Tensor *yt = gh_copy(e, yt_cpu);
        Tensor *grads[5] = {0};
        if (i == 0)
            for (int k = 0; k < 5; k++)
                grads[k] = grad_copy(e, s.ps, BLOCK_KEYS[k]);
        /* reset the running statistics the CPU train pass moved: reload the fixture weights */
        CheckpointLoadOptions opt = {.file_prefix = "w."};
        if (!checkpoint_load_file(s.ps, f, &opt, err, sizeof err))
            fail_msg("%s", err);
        if (!cuda_params_upload(e->gpu, s.ps))
            fail_msg("upload: %s", ctx_error_message(e->gpu));
        char what[160];
        ctx_begin_pass(e->gpu);
        Tensor *y = x3d_block_forward(e->gpu, blk, gd(e, x));
        snprintf(what, sizeof what, "block %d eval output", index[i]);
        if (y)
            gpu_expect_close(e, what, y, ye, TOL_FP32_GEMM);
        else
            check(e, false, ctx_error_message(e->gpu));
        ctx_begin_pass(e->gpu);
        ctx_set_training(e->gpu, true);
        cuda_params_zero_grad(e->gpu, s.ps);
        y = x3d_block_forward(e->gpu, blk, gd(e, x));
        ok = y && tape_backward(e->gpu, op_sum_all(e->gpu, op_mul(e->gpu, y, gd(e, r)))) && cuda_synchronize(e->gpu);
        ctx_set_training(e->gpu, false);
        snprintf(what, sizeof what, "block %d train forward/backward ran", index[i]);
        check(e, ok, ok ? what : ctx_error_message(e->gpu));
        if (ok) {
            snprintf(what, sizeof what, "block %d train output", index[i]);
            gpu_expect_close(e, what, y, yt, TOL_FP32_GEMM);
            for (int k = 0; i == 0 && k < 5; k++) {
                snprintf(what, sizeof what, "  grad %s", BLOCK_KEYS[k]);
                gpu_expect_close(e, what, params_find(s.ps, BLOCK_KEYS[k])->grad, grads[k], TOL_FP32_GEMM);
            }
        }
        ctx_clear_error(e->gpu);
        cuda_params_release(e->gpu, s.ps);
    }
    x3d_destroy(s.net);
    params_destroy(s.ps);
    safetensors_close(f);
    gpu_end(e);
}

static void test_x3d_fixture(void **state)
{
    GpuEnv *e = gpu_begin(state, "small X3D on the GPU vs the PyTorch fixture (eval outputs; train logits, grads)");
    cuda_set_precision(e->gpu, CUDA_PRECISION_FP32);
    cuda_set_conv_path(e->gpu, CUDA_CONV_AUTO);
    char err[512];
    SafetensorsFile *f = safetensors_open(FIXTURE, err, sizeof err);
    if (!f)
        fail_msg("cannot open the fixture (run from the repository root): %s", err);
    SmallNet s = small_net_load(f);
    if (!cuda_params_upload(e->gpu, s.ps))
        fail_msg("upload: %s", ctx_error_message(e->gpu));
    Tensor *x = fixture_f32(e, f, "x");
    ctx_begin_pass(e->gpu);
    X3dOutput out;
    if (!x3d_forward(e->gpu, s.net, gd(e, x), &out)) {
        check(e, false, ctx_error_message(e->gpu));
    } else {
        gpu_expect_close(e, "eval logits", out.logits, fixture_f32(e, f, "eval.logits"), TOL_FP32_GEMM);
        gpu_expect_close(e, "eval features", out.features, fixture_f32(e, f, "eval.features"), TOL_FP32_GEMM);
        gpu_expect_close(e, "eval frame features", out.frame_features, fixture_f32(e, f, "eval.frame_features"),
                         TOL_FP32_GEMM);
    }
    ctx_begin_pass(e->gpu);
    ctx_set_training(e->gpu, true);
    cuda_params_zero_grad(e->gpu, s.ps);
    bool ok = x3d_forward(e->gpu, s.net, gd(e, x), &out) &&
              tape_backward(e->gpu, op_sum_all(e->gpu, op_mul(e->gpu, out.logits, gd(e, fixture_f32(e, f, "r"))))) &&
              cuda_synchronize(e->gpu);
    ctx_set_training(e->gpu, false);
    check(e, ok, ok ? "train forward/backward ran" : ctx_error_message(e->gpu));
    if (ok) {
        /* PyTorch's own fp32 differs from the CPU reference by ~1e-5 here: the fp32 GEMM bound */
        gpu_expect_close(e, "train logits", out.logits, fixture_f32(e, f, "train.logits"), TOL_FP32_GEMM);
        const char *keys[] = {"s1.pathway0_stem.conv_xy.weight", "s1.pathway0_stem.conv.weight",
                              "s3.pathway0_res0.branch2.b.weight", "s2.pathway0_res0.branch2.se.fc1.weight",
                              "s5.pathway0_res0.branch1.weight", "head.lin_5.weight"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            char name[128], what[160];
            snprintf(name, sizeof name, "grad.%s", keys[k]);
            snprintf(what, sizeof what, "  %s", name);
            gpu_expect_close(e, what, params_find(s.ps, keys[k])->grad, fixture_f32(e, f, name), (Tol){1e-4, 2e-3});
        }
    }
    ctx_clear_error(e->gpu);
    cuda_params_release(e->gpu, s.ps);
    x3d_destroy(s.net);
    params_destroy(s.ps);
    safetensors_close(f);
    gpu_end(e);
}

/* Uni-AdaFocus-X3D (synth-x3d-tiny, random weights) eval on the GPU vs the CPU reference: both exits.
 * The focus frames come from the device sampler (bit for bit the host's on equal weights); a flipped
 * index from a last-bit difference in w_T would show as an exit-1 mismatch with exit 0 matching. */
static void test_uafx3d_tiny(void **state)
{
    GpuEnv *e = gpu_begin(state, "Uni-AdaFocus-X3D synth-x3d-tiny eval: GPU vs CPU, both exits");
    cuda_set_precision(e->gpu, CUDA_PRECISION_FP32);
    cuda_set_conv_path(e->gpu, CUDA_CONV_AUTO);
    char err[512];
    UafX3dModel *m = uafx3d_create(&uafx3d_preset_find("synth-x3d-tiny")->cfg, BACKEND_CPU, false, err, sizeof err);
    if (!m)
        fail_msg("uafx3d_create: %s", err);
    uafx3d_init(m, 5);
    /* the residual branches start at zero (ZERO_INIT_FINAL_BN): give every c_bn γ a value so they count */
    for (int i = 0; i < m->ps->n; i++) {
        Tensor *t = m->ps->items[i];
        if (strstr(t->name, "c_bn.weight"))
            for (int64_t j = 0; j < tensor_numel(t); j++)
                tensor_f32(t)[j] = 0.5f;
    }
    Tensor *clips = gh_rand(e, 77, -1, 1, DIMS(2, 12, 3, 64, 64));
    ctx_begin_pass(e->cpu);
    UafX3dOutput oc;
    if (!uafx3d_forward(e->cpu, m, clips, 0, &oc))
        fail_msg("CPU forward: %s", ctx_error_message(e->cpu));
    Tensor *ref = gh_copy(e, oc.exit_logits);
    Tensor *e0 = gh(e, DTYPE_F32, DIMS(2, 1, 10)), *e1 = gh(e, DTYPE_F32, DIMS(2, 1, 10));
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 10; c++) {
            tensor_f32(e0)[b * 10 + c] = tensor_f32(ref)[(b * 2 + 0) * 10 + c];
            tensor_f32(e1)[b * 10 + c] = tensor_f32(ref)[(b * 2 + 1) * 10 + c];
        }
    if (!cuda_params_upload(e->gpu, m->ps))
        fail_msg("upload: %s", ctx_error_message(e->gpu));
    ctx_begin_pass(e->gpu);
    UafX3dOutput og;
    if (!uafx3d_forward(e->gpu, m, gd(e, clips), 0, &og)) {
        check(e, false, ctx_error_message(e->gpu));
    } else {
        gpu_expect_close(e, "exit 0 (glance: X3D-S + per-frame head)", op_slice(e->gpu, og.exit_logits, 1, 0, 1), e0,
                         TOL_FP32_GEMM);
        gpu_expect_close(e, "exit 1 (X3D-S + X3D-L final logits)", op_slice(e->gpu, og.exit_logits, 1, 1, 1), e1,
                         TOL_FP32_GEMM);
    }
    ctx_clear_error(e->gpu);
    cuda_params_release(e->gpu, m->ps);
    uafx3d_destroy(m);
    gpu_end(e);
}

int test_group_cuda_x3d(int *total)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dwconv3d_kernels),
        cmocka_unit_test(test_dwconv3d_speed),
        cmocka_unit_test(test_x3d_block),
        cmocka_unit_test(test_x3d_fixture),
        cmocka_unit_test(test_uafx3d_tiny),
    };
    return gpu_run_group("cuda_x3d", tests, sizeof tests / sizeof tests[0], total);
}
