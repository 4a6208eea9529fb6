/* test_cuda_fused.c — the fused conv epilogues and the fast depthwise kernel of the CUDA backend
 * against the CPU reference (group cuda_fused): conv_bias_act_forward (y = act(conv + b +
 * residual)) on depthwise 3x3 (the tiled kernel), a depthwise 5x5 (the direct kernel plus the
 * epilogue), dense 1x1 / 3x3 convs (cuDNN plus the fp32 epilogue, the fp32 1x1s and stems on
 * focusbench's kernels with the epilogue inside and forced onto cuDNN too, or the bf16
 * channels-last conversion carrying the epilogue), at fp32 / tf32 / bf16 with their tolerances, outputs
 * poisoned with NaN first (the GPU context of the tests poisons every new block), each result
 * repeated bit for bit; and the fused op through the op layer equal to the unfused chain on the
 * GPU (forward), with its backward (the recorded chain) against the CPU; deferred epilogues
 * (fp32 / tf32) against immediate ones and the CPU.
 */
#include <stdio.h>
#include <string.h>

#include "kernels/ops.h"
#include "kernels/tape.h"
#include "tests/gpu/gpu_test_util.h"

#define CPU(slot, ...) e->cpu->ops->slot(e->cpu, __VA_ARGS__)
#define GPU(slot, ...) e->gpu->ops->slot(e->gpu, __VA_ARGS__)

typedef struct {
    const char *name;
    int N, C, K, H, W, k, stride, pad, groups;
    bool bias, residual;
    int act; /* OpAct */
} FusedCase;

static const FusedCase CASES[] = {
    {"depthwise 3x3 s1, odd width, bias, ReLU6", 3, 24, 24, 17, 19, 3, 1, 1, 24, true, false, OP_ACT_RELU6},
    {"depthwise 3x3 s2, bias, ReLU6", 2, 16, 16, 16, 16, 3, 2, 1, 16, true, false, OP_ACT_RELU6},
    {"depthwise 3x3 s2, odd size", 2, 8, 8, 15, 13, 3, 2, 1, 8, true, false, OP_ACT_RELU},
    {"depthwise 3x3 s1, residual, no act", 2, 32, 32, 8, 8, 3, 1, 1, 32, false, true, OP_ACT_NONE},
    {"depthwise 3x3 s1 tiny planes", 4, 96, 96, 4, 4, 3, 1, 1, 96, true, false, OP_ACT_RELU6},
    /* MobileNetV2's 14² and 7² planes (rows read and written one float at a time: W % 4 != 0),
     * a plane of one row, and 16² planes with a residual */
    {"depthwise 3x3 s1 14x14 planes, bias, ReLU6", 3, 37, 37, 14, 14, 3, 1, 1, 37, true, false, OP_ACT_RELU6},
    {"depthwise 3x3 s1 7x7 planes, residual, ReLU6", 2, 45, 45, 7, 7, 3, 1, 1, 45, true, true, OP_ACT_RELU6},
    {"depthwise 3x3 s1 1x16 planes", 1, 5, 5, 1, 16, 3, 1, 1, 5, false, false, OP_ACT_RELU},
    {"depthwise 3x3 s1 16x16 planes, residual", 2, 9, 9, 16, 16, 3, 1, 1, 9, true, true, OP_ACT_NONE},
    /* even widths that are no multiple of 4: 8-byte loads and stores */
    {"depthwise 3x3 s1 10x6, residual, ReLU6", 2, 11, 11, 10, 6, 3, 1, 1, 11, true, true, OP_ACT_RELU6},
    {"depthwise 3x3 s2 14x14 -> 7x7, ReLU6", 2, 13, 13, 14, 14, 3, 2, 1, 13, true, false, OP_ACT_RELU6},
    {"depthwise 3x3 s2 14x18 -> 7x9, residual", 2, 7, 7, 14, 18, 3, 2, 1, 7, false, true, OP_ACT_RELU},
    {"depthwise 3x3 s1 large (grid stride)", 8, 96, 96, 64, 64, 3, 1, 1, 96, true, false, OP_ACT_RELU6},
    {"depthwise 5x5 s1 (direct + epilogue)", 2, 12, 12, 11, 9, 5, 1, 2, 12, true, true, OP_ACT_RELU6},
    /* larger planes, both strides, odd sizes */
    {"depthwise 3x3 s2 32x29, bias, ReLU6", 3, 10, 10, 32, 29, 3, 2, 1, 10, true, false,
     OP_ACT_RELU6},
    {"depthwise 3x3 s1 13x21, residual, ReLU", 2, 6, 6, 13, 21, 3, 1, 1, 6, true, true, OP_ACT_RELU},
    {"depthwise 3x3 s2 pad 0, 11x12", 2, 8, 8, 11, 12, 3, 2, 0, 8, true, false, OP_ACT_NONE},
    {"dense 1x1, bias + residual + ReLU (bottleneck end)", 2, 32, 48, 7, 7, 1, 1, 0, 1, true, true, OP_ACT_RELU},
    {"dense 1x1 project, bias + residual", 3, 64, 24, 9, 9, 1, 1, 0, 1, true, true, OP_ACT_NONE},
    {"dense 3x3 s2 stem, bias, ReLU6", 2, 3, 16, 33, 33, 3, 2, 1, 1, true, false, OP_ACT_RELU6},
    {"grouped 3x3 g4, bias, ReLU", 2, 8, 12, 9, 9, 3, 1, 1, 4, true, false, OP_ACT_RELU},
    /* planes of a multiple of 4 values: the f32 epilogue's 16-byte quads within one plane (the
     * cases above with P % 4 != 0 exercise quads straddling two planes) */
    {"dense 1x1 8x8 planes, bias + residual + ReLU6", 2, 16, 24, 8, 8, 1, 1, 0, 1, true, true, OP_ACT_RELU6},
    {"dense 3x3 12x12 planes, bias, ReLU", 3, 8, 20, 12, 12, 3, 1, 1, 1, true, false, OP_ACT_RELU},
    /* the FP32 1x1s run on the SGEMM kernel (cuda_conv_sgemm.cu): every epilogue it carries */
    {"dense 1x1, bias + ReLU (bottleneck start)", 3, 40, 20, 6, 6, 1, 1, 0, 1, true, false, OP_ACT_RELU},
    {"dense 1x1, no bias, no act", 2, 16, 8, 5, 5, 1, 1, 0, 1, false, false, OP_ACT_NONE},
    {"dense 1x1, residual + ReLU, no bias", 2, 24, 32, 4, 4, 1, 1, 0, 1, false, true, OP_ACT_RELU},
    /* FP32 stems on the stem kernel (cuda_conv_stem.cu): partial row and column tiles */
    {"ResNet stem 7x7 s2 pad 3, bias, ReLU", 2, 3, 64, 37, 35, 7, 2, 3, 1, true, false, OP_ACT_RELU},
    {"stem 3x3 s2, 32 channels, residual, no act", 2, 3, 32, 30, 31, 3, 2, 1, 1, false, true, OP_ACT_NONE},
    {"stem 3x3 s2, 4 input channels, 16 out, pad 0", 3, 4, 16, 20, 28, 3, 2, 0, 1, true, false, OP_ACT_RELU6},
};

/* Two runs' outputs (device tensors shaped like the host tensor `like`) must be the same bits. */
static void expect_same_bits(GpuEnv *e, const char *what, const Tensor *first, const Tensor *second,
                             const Tensor *like)
{
    Tensor *h1 = gh_like(e, like), *h2 = gh_like(e, like);
    if (cuda_tensor_to_host(e->gpu, first, h1) && cuda_tensor_to_host(e->gpu, second, h2) &&
        memcmp(h1->data, h2->data, tensor_bytes(like)) != 0) {
        printf("  FAIL %s: a second run gave different bits\n", what);
        e->failures++;
    }
    e->checks++;
}

/* A fused op under its default rule at FP32: the CPU's values, and the path the rule should take
 * (the last conv info names `kernel` exactly when `fused`). */
static void expect_rule_choice(GpuEnv *e, const char *what, const Tensor *got, const Tensor *want, const char *kernel,
                               bool fused)
{
    gpu_expect_ok(e, what);
    gpu_expect_close(e, what, got, want, gpu_tol_for(CUDA_PRECISION_FP32));
    if ((strstr(cuda_last_conv_info(e->gpu), kernel) != NULL) != fused) {
        printf("  FAIL %s: the rule chose the other path\n", what);
        e->failures++;
    }
    e->checks++;
}

static ConvGeom geom_of(const FusedCase *c)
{
    ConvGeom g = {.N = c->N, .C = c->C, .K = c->K, .T = 1, .H = c->H, .W = c->W, .kt = 1, .kh = c->k, .kw = c->k,
                  .st = 1, .sh = c->stride, .sw = c->stride, .pt = 0, .ph = c->pad, .pw = c->pad,
                  .dt = 1, .dh = 1, .dw = 1, .groups = c->groups};
    g.To = 1;
    g.Ho = (g.H + 2 * g.ph - g.kh) / g.sh + 1;
    g.Wo = (g.W + 2 * g.pw - g.kw) / g.sw + 1;
    return g;
}

static void test_fused_conv_epilogues(void **state)
{
    GpuEnv *e = gpu_begin(state, "conv_bias_act_forward (fused epilogues, depthwise 3x3) vs CPU at fp32, tf32, bf16");
    static const CudaPrecision precisions[3] = {CUDA_PRECISION_FP32, CUDA_PRECISION_TF32, CUDA_PRECISION_BF16};
    for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
        const FusedCase *fc = &CASES[ci];
        ConvGeom g = geom_of(fc);
        uint64_t seed = 7000 + 100 * ci;
        /* inputs drawn so that a good share of outputs lands on each side of 0 and of 6 */
        Tensor *x = gh_rand(e, seed, -2, 3, DIMS(g.N, g.C, 1, g.H, g.W));
        Tensor *w = gh_rand(e, seed + 1, -1, 1, DIMS(g.K, g.C / g.groups, 1, g.kh, g.kw));
        Tensor *b = fc->bias ? gh_rand(e, seed + 2, -1, 2, DIMS(g.K)) : NULL;
        Tensor *r = fc->residual ? gh_rand(e, seed + 3, -2, 2, DIMS(g.N, g.K, 1, g.Ho, g.Wo)) : NULL;
        Tensor *y = gh(e, DTYPE_F32, DIMS(g.N, g.K, 1, g.Ho, g.Wo));
        CPU(conv_bias_act_forward, &g, x, w, b, r, fc->act, y);
        Tensor *dx = gd(e, x), *dw = gd(e, w), *db = b ? gd(e, b) : NULL, *dr = r ? gd(e, r) : NULL;
        bool depthwise = g.groups == g.C && g.K == g.C;
        bool pointwise = g.kh == 1 && g.kw == 1 && g.groups == 1; /* FP32: the 1x1 kernel */
        bool stem = g.C <= 4 && g.sh == 2 && (g.kh == 3 || g.kh == 7) && (g.K == 16 || g.K == 32 || g.K == 64);
        const char *custom = pointwise ? "conv1x1 kernel" : stem ? "stem conv kernel" : NULL;
        for (int p = 0; p < 3; p++) {
            for (int force_cudnn = 0; force_cudnn <= ((depthwise || custom) && p == 0); force_cudnn++) {
                cuda_set_precision(e->gpu, precisions[p]);
                cuda_set_conv_path(e->gpu, force_cudnn ? CUDA_CONV_CUDNN : CUDA_CONV_AUTO);
                cuda_set_depthwise_custom(e->gpu, !force_cudnn);
                /* depthwise runs the fp32 kernels whatever the precision (unless cuDNN is forced) */
                Tol tol = depthwise && !force_cudnn ? TOL_FP32_GEMM : gpu_tol_for(precisions[p]);
                Tensor *yd = gd_nan_like(e, y), *yd2 = gd_nan_like(e, y);
                GPU(conv_bias_act_forward, &g, dx, dw, db, dr, fc->act, yd);
                char what[256];
                snprintf(what, sizeof what, "%s %s%s [%s]", fc->name, cuda_precision_name(precisions[p]),
                         force_cudnn ? " cudnn forced" : "", cuda_last_conv_info(e->gpu));
                gpu_expect_ok(e, what);
                gpu_expect_close(e, what, yd, y, tol);
                if (custom && p == 0 && !force_cudnn && !strstr(cuda_last_conv_info(e->gpu), custom)) {
                    printf("  FAIL %s: an FP32 conv did not run on the %s\n", what, custom);
                    e->failures++;
                }
                GPU(conv_bias_act_forward, &g, dx, dw, db, dr, fc->act, yd2);
                expect_same_bits(e, what, yd, yd2, y);
            }
        }
    }
    cuda_set_precision(e->gpu, CUDA_PRECISION_FP32);
    cuda_set_conv_path(e->gpu, CUDA_CONV_AUTO);
    cuda_set_depthwise_custom(e->gpu, true);
    gpu_end(e);
}

/* The FP32 SGEMM kernel (cuda_conv_sgemm.cu) on 1x1 and 3x3 convs, every tile config forced in
 * turn, then the autotuned choice, against the CPU: shapes that leave partial tiles in both dims,
 * planes of S % 4 != 0 (the one-column loads and stores), C not a multiple of the reduction step, a
 * column tile spanning several images, every epilogue, and for 3x3 the padding taps of every
 * border, strides 1 and 2, no padding; each result repeated bit for bit. */
typedef struct {
    int N, C, K, H, W, stride;
    bool bias, residual;
    int act;
    int k, pad; /* filter side and padding */
} PointwiseCase;

static const PointwiseCase PW_CASES[] = {
    {3, 12, 20, 7, 7, 1, true, true, OP_ACT_RELU, 1, 0},     /* S = 49, K a partial tile, C = 12 */
    {2, 36, 130, 4, 4, 1, true, false, OP_ACT_RELU6, 1, 0},  /* S = 16: a column tile spans images */
    {5, 260, 33, 5, 3, 1, false, true, OP_ACT_NONE, 1, 0},   /* S = 15, C = 260 (a half reduction step) */
    {2, 64, 256, 16, 16, 1, true, true, OP_ACT_RELU, 1, 0},  /* full tiles, 16-byte paths */
    {1, 8, 8, 1, 1, 1, true, false, OP_ACT_NONE, 1, 0},      /* one column */
    /* stride 2 (ResNet's downsample): x read one column at a time */
    {2, 64, 256, 16, 16, 2, true, true, OP_ACT_NONE, 1, 0},  /* S = 64: y and r 16 bytes at a time */
    {3, 20, 36, 9, 11, 2, true, false, OP_ACT_RELU, 1, 0},   /* odd sides: 5 x 6 outputs */
    {2, 16, 24, 7, 8, 3, false, true, OP_ACT_RELU6, 1, 0},   /* stride 3 */
    /* 3x3 as an implicit GEMM (rows c·9 + tap) */
    {2, 8, 20, 7, 9, 1, true, false, OP_ACT_RELU, 3, 1},       /* S = 63, partial tiles */
    {3, 12, 64, 8, 8, 1, true, true, OP_ACT_RELU6, 3, 1},      /* S = 64: 16-byte y and r */
    {2, 64, 130, 16, 16, 2, true, false, OP_ACT_RELU, 3, 1},   /* stride 2 (ResNet v1.5) */
    {2, 20, 36, 9, 11, 2, false, true, OP_ACT_NONE, 3, 1},     /* odd sides: 5 x 6 outputs */
    {2, 4, 8, 6, 5, 1, true, false, OP_ACT_NONE, 3, 0},        /* no padding: 4 x 3 outputs */
    {1, 36, 12, 3, 3, 1, true, false, OP_ACT_RELU, 3, 2},      /* padding 2: taps off every side */
};

/* ResNet's bottleneck tail at FP32: a 3x3 stride-2 conv (bias, ReLU) and a 1x1 stride-2
 * downsample (bias) run on cuDNN and leave their epilogues pending (the downsample with the custom
 * kernels switched off for it, as where cuDNN timed faster); the 1x1 kernel reads the first as x
 * and the second as its residual, applying both as it reads. With deferral on and off: the same
 * bits, the CPU's values, and the two inputs read back afterwards are right too. */
static void test_conv1x1_pending_inputs(void **state)
{
    GpuEnv *e = gpu_begin(state, "FP32 1x1 kernel reading x and the residual with their epilogues pending");
    /* 10 x 10 -> 5 x 5: one column at a time; 16 x 16 -> 8 x 8: 16-byte paths, the residual staged
     * in shared memory */
    static const int SIDES[2] = {10, 16};
    for (int si = 0; si < 2; si++) {
        const int N = 2, C = 16, H = SIDES[si], W = SIDES[si], M = 8, K = 32;
        Tensor *x = gh_rand(e, 9600, -2, 3, DIMS(N, C, H, W));
        Tensor *wd = gh_rand(e, 9601, -1, 1, DIMS(K, C, 1, 1)), *bd = gh_rand(e, 9602, -1, 2, DIMS(K));
        Tensor *w2 = gh_rand(e, 9603, -1, 1, DIMS(M, C, 3, 3)), *b2 = gh_rand(e, 9604, -1, 2, DIMS(M));
        Tensor *w3 = gh_rand(e, 9605, -1, 1, DIMS(K, M, 1, 1)), *b3 = gh_rand(e, 9606, -1, 2, DIMS(K));
        Tensor *ds_ref = op_conv2d_bias_act(e->cpu, x, wd, bd, NULL, 2, 0, 1, OP_ACT_NONE);
        Tensor *h_ref = op_conv2d_bias_act(e->cpu, x, w2, b2, NULL, 2, 1, 1, OP_ACT_RELU);
        Tensor *y_ref = op_conv2d_bias_act(e->cpu, h_ref, w3, b3, ds_ref, 1, 0, 1, OP_ACT_RELU);
        Tensor *dx = gd(e, x), *dwd = gd(e, wd), *dbd = gd(e, bd), *dw2 = gd(e, w2), *db2 = gd(e, b2);
        Tensor *dw3 = gd(e, w3), *db3 = gd(e, b3);
        Tensor *first_y = gh_like(e, y_ref);
        const Tol tol = gpu_tol_for(CUDA_PRECISION_FP32);
        for (int defer = 1; defer >= 0; defer--) {
            cuda_set_defer_epilogue(e->gpu, defer);
            cuda_set_conv_custom(e->gpu, false); /* both on cuDNN (the 3x3 would take the SGEMM kernel) */
            Tensor *ds = op_conv2d_bias_act(e->gpu, dx, dwd, dbd, NULL, 2, 0, 1, OP_ACT_NONE);
            Tensor *h = op_conv2d_bias_act(e->gpu, dx, dw2, db2, NULL, 2, 1, 1, OP_ACT_RELU);
            cuda_set_conv_custom(e->gpu, true);
            Tensor *y = op_conv2d_bias_act(e->gpu, h, dw3, db3, ds, 1, 0, 1, OP_ACT_RELU);
            char what[256];
            snprintf(what, sizeof what, "%dx%d, deferral %s: the 1x1's output [%s]", H, W, defer ? "on" : "off",
                     cuda_last_conv_info(e->gpu));
            gpu_expect_ok(e, what);
            gpu_expect_close(e, what, y, y_ref, tol);
            const char *info = cuda_last_conv_info(e->gpu);
            if (defer && !strstr(info, "x's pending epilogue on load, the residual's pending")) {
                printf("  FAIL %s: the 1x1 kernel did not take both pending epilogues\n", what);
                e->failures++;
            }
            e->checks++;
            if (defer) {
                if (!cuda_tensor_to_host(e->gpu, y, first_y))
                    gpu_expect_ok(e, "download with deferral on");
            } else {
                gpu_expect_equal(e, "  deferral off gives the deferral-on output, bit for bit", y, first_y);
            }
            snprintf(what, sizeof what, "deferral %s: the 3x3's output read afterwards", defer ? "on" : "off");
            gpu_expect_close(e, what, h, h_ref, tol);
            snprintf(what, sizeof what, "deferral %s: the downsample's output read afterwards", defer ? "on" : "off");
            gpu_expect_close(e, what, ds, ds_ref, tol);
        }
    }
    cuda_set_defer_epilogue(e->gpu, true);
    gpu_end(e);
}

/* op_conv2d_expand_dw at FP32 on the GPU (cuda_conv_expand_dw.cu): against the CPU (its two convs);
 * bit for bit against the unfused chain on the GPU where that chain's expand runs on the 1x1 kernel
 * (C % 4 == 0: the same sums in the same order); partial tiles, channel counts that leave a partial
 * chunk of 32, both strides, every activation; the last case reads x with a pending epilogue (a
 * 3x3 conv on cuDNN deferred it). */
typedef struct {
    int N, C, E, H, W, stride;
    OpAct act_e, act_d;
    bool pending_x;
} ExpandDwCase;

static const ExpandDwCase XD_CASES[] = {
    {2, 16, 96, 17, 15, 2, OP_ACT_RELU6, OP_ACT_RELU6, false},
    {3, 24, 144, 14, 13, 1, OP_ACT_RELU6, OP_ACT_RELU6, false},
    {2, 32, 40, 9, 20, 1, OP_ACT_RELU, OP_ACT_NONE, false},
    {1, 8, 64, 33, 35, 2, OP_ACT_NONE, OP_ACT_RELU, false},
    {2, 4, 32, 4, 4, 2, OP_ACT_RELU6, OP_ACT_RELU6, false},
    {2, 6, 36, 10, 12, 1, OP_ACT_RELU6, OP_ACT_RELU6, false}, /* C % 4 != 0: the chain's expand is on cuDNN */
    {2, 16, 48, 12, 12, 2, OP_ACT_RELU6, OP_ACT_RELU6, true},
};

static void test_expand_dw_kernel(void **state)
{
    GpuEnv *e = gpu_begin(state, "FP32 expand + depthwise kernel vs CPU and vs the unfused GPU chain");
    cuda_set_expand_dw_all(e->gpu, true); /* the small shapes here are below the default rule's sizes */
    for (size_t ci = 0; ci < sizeof XD_CASES / sizeof XD_CASES[0]; ci++) {
        const ExpandDwCase *c = &XD_CASES[ci];
        uint64_t seed = 9700 + 10 * ci;
        /* x itself, or the input of a 3x3 conv (8 -> C channels, bias only) that makes x */
        Tensor *x0 = gh_rand(e, seed, -2, 3, DIMS(c->N, c->pending_x ? 8 : c->C, c->H, c->W));
        Tensor *w0 = gh_rand(e, seed + 1, -0.5f, 0.5f, DIMS(c->C, 8, 3, 3)), *b0 = gh_rand(e, seed + 2, -1, 1, DIMS(c->C));
        Tensor *we = gh_rand(e, seed + 3, -1, 1, DIMS(c->E, c->C, 1, 1)), *be = gh_rand(e, seed + 4, -1, 2, DIMS(c->E));
        Tensor *wd = gh_rand(e, seed + 5, -1, 1, DIMS(c->E, 1, 3, 3)), *bd = gh_rand(e, seed + 6, -1, 2, DIMS(c->E));
        Tensor *xc = c->pending_x ? op_conv2d_bias_act(e->cpu, x0, w0, b0, NULL, 1, 1, 1, OP_ACT_NONE) : x0;
        Tensor *want = op_conv2d_expand_dw(e->cpu, xc, we, be, c->act_e, wd, bd, c->stride, c->act_d);
        Tensor *dx0 = gd(e, x0), *dw0 = gd(e, w0), *db0 = gd(e, b0), *dwe = gd(e, we), *dbe = gd(e, be);
        Tensor *dwd = gd(e, wd), *dbd = gd(e, bd);
        cuda_set_conv_custom(e->gpu, false); /* the 3x3 on cuDNN, which defers its epilogue */
        Tensor *dx = c->pending_x ? op_conv2d_bias_act(e->gpu, dx0, dw0, db0, NULL, 1, 1, 1, OP_ACT_NONE) : dx0;
        cuda_set_conv_custom(e->gpu, true);
        Tensor *got = op_conv2d_expand_dw(e->gpu, dx, dwe, dbe, c->act_e, dwd, dbd, c->stride, c->act_d);
        char what[256];
        snprintf(what, sizeof what, "expand+dw N%d C%d E%d %dx%d s%d acts %d/%d%s [%s]", c->N, c->C, c->E, c->H, c->W,
                 c->stride, (int)c->act_e, (int)c->act_d, c->pending_x ? ", x pending" : "",
                 cuda_last_conv_info(e->gpu));
        gpu_expect_ok(e, what);
        gpu_expect_close(e, what, got, want, gpu_tol_for(CUDA_PRECISION_FP32));
        const char *need = c->pending_x ? "expand+depthwise kernel, stride %d, x's pending" : "expand+depthwise kernel";
        char need_s[96];
        snprintf(need_s, sizeof need_s, need, c->stride);
        if (!strstr(cuda_last_conv_info(e->gpu), need_s)) {
            printf("  FAIL %s: the fused kernel did not run as expected (%s)\n", what, need_s);
            e->failures++;
        }
        e->checks++;
        Tensor *again = op_conv2d_expand_dw(e->gpu, dx, dwe, dbe, c->act_e, dwd, dbd, c->stride, c->act_d);
        Tensor *h_got = gh_like(e, want);
        if (cuda_tensor_to_host(e->gpu, got, h_got))
            gpu_expect_equal(e, "  a second run gives the same bits", again, h_got);
        if (c->C % 4 == 0 && !c->pending_x) { /* the unfused chain: the 1x1 kernel, then the depthwise kernel */
            Tensor *h = op_conv2d_bias_act(e->gpu, dx, dwe, dbe, NULL, 1, 0, 1, c->act_e);
            Tensor *chain = op_conv2d_bias_act(e->gpu, h, dwd, dbd, NULL, c->stride, 1, c->E, c->act_d);
            gpu_expect_ok(e, "the unfused chain");
            gpu_expect_equal(e, "  fused == the unfused chain on the GPU, bit for bit", chain, h_got);
        }
    }
    /* the default rule: a stride-2 block at 56² is fused, a stride-1 one is not (same values) */
    cuda_set_expand_dw_all(e->gpu, false);
    static const int rule_stride[2] = {2, 1};
    for (int i = 0; i < 2; i++) {
        Tensor *x = gh_rand(e, 9800 + i, -1, 1, DIMS(1, 16, 56, 56));
        Tensor *we = gh_rand(e, 9810 + i, -1, 1, DIMS(32, 16, 1, 1)), *be = gh_rand(e, 9820 + i, -1, 1, DIMS(32));
        Tensor *wd = gh_rand(e, 9830 + i, -1, 1, DIMS(32, 1, 3, 3)), *bd = gh_rand(e, 9840 + i, -1, 1, DIMS(32));
        Tensor *want = op_conv2d_expand_dw(e->cpu, x, we, be, OP_ACT_RELU6, wd, bd, rule_stride[i], OP_ACT_RELU6);
        Tensor *got = op_conv2d_expand_dw(e->gpu, gd(e, x), gd(e, we), gd(e, be), OP_ACT_RELU6, gd(e, wd), gd(e, bd),
                                          rule_stride[i], OP_ACT_RELU6);
        char what[200];
        snprintf(what, sizeof what, "default rule, stride %d at 56x56: %s [%s]", rule_stride[i],
                 i == 0 ? "fused" : "unfused", cuda_last_conv_info(e->gpu));
        expect_rule_choice(e, what, got, want, "expand+depthwise kernel", i == 0);
    }
    gpu_end(e);
}

/* op_conv2d_dw_project at FP32 on the GPU (cuda_conv_dw_project.cu): against the CPU (its two
 * convs), and bit for bit against the unfused chain on the GPU (the depthwise kernel, then the 1x1
 * kernel: the same sums in the same order). Both kernels (the rows kernel: tiles of whole rows,
 * partial last tiles, rows of a multiple of four (16-byte windows) and not (each pixel its own
 * taps; bulk copies widened to 16-byte groups), odd widths; the per-pixel kernel: planes of an odd
 * size), both strides, one and several m tiles (K up to 16, 32, 64, past 64), channel counts that
 * leave a partial step of 8, residuals, every activation, x with a pending epilogue (a 3x3 conv on
 * cuDNN deferred it). */
typedef struct {
    int N, E, K, H, W, stride;
    OpAct act_d;
    bool residual, pending_x;
} DwProjectCase;

static const DwProjectCase DP_CASES[] = {
    {2, 32, 16, 16, 16, 1, OP_ACT_RELU6, false, false},
    {3, 24, 24, 12, 12, 1, OP_ACT_RELU6, true, false},
    {2, 36, 64, 14, 14, 1, OP_ACT_RELU6, true, false},
    {1, 48, 80, 9, 11, 1, OP_ACT_RELU, false, false},
    {2, 16, 24, 16, 16, 2, OP_ACT_RELU6, false, false},
    {2, 24, 40, 14, 14, 2, OP_ACT_NONE, false, false},
    {1, 8, 8, 7, 9, 2, OP_ACT_RELU6, false, false},
    {2, 16, 32, 12, 12, 1, OP_ACT_RELU6, true, true},
    {2, 24, 16, 7, 7, 1, OP_ACT_RELU6, true, true},
    {1, 16, 16, 8, 16, 2, OP_ACT_RELU6, false, true},
    {2, 40, 72, 28, 28, 1, OP_ACT_RELU6, true, false},
    {1, 36, 48, 8, 24, 2, OP_ACT_RELU6, false, false},
    {1, 8, 16, 112, 112, 1, OP_ACT_RELU6, true, false},
    {2, 16, 24, 10, 10, 1, OP_ACT_RELU6, true, false},
    {1, 16, 32, 10, 14, 1, OP_ACT_RELU6, true, true},
    {1, 16, 16, 9, 12, 2, OP_ACT_RELU, false, false},
    {2, 8, 24, 12, 11, 2, OP_ACT_RELU6, false, true},
};

static void test_dw_project_kernel(void **state)
{
    GpuEnv *e = gpu_begin(state, "FP32 depthwise + projection kernel vs CPU and vs the unfused GPU chain");
    cuda_set_dw_project(e->gpu, CUDA_DW_PROJECT_ALL);
    for (size_t ci = 0; ci < sizeof DP_CASES / sizeof DP_CASES[0]; ci++) {
        const DwProjectCase *c = &DP_CASES[ci];
        int Ho = (c->H - 1) / c->stride + 1, Wo = (c->W - 1) / c->stride + 1;
        uint64_t seed = 9900 + 10 * ci;
        /* x itself, or the input of a 3x3 conv (8 -> E channels, bias only) that makes x */
        Tensor *x0 = gh_rand(e, seed, -2, 3, DIMS(c->N, c->pending_x ? 8 : c->E, c->H, c->W));
        Tensor *w0 = gh_rand(e, seed + 1, -0.5f, 0.5f, DIMS(c->E, 8, 3, 3)), *b0 = gh_rand(e, seed + 2, -1, 1, DIMS(c->E));
        Tensor *wd = gh_rand(e, seed + 3, -1, 1, DIMS(c->E, 1, 3, 3)), *bd = gh_rand(e, seed + 4, -1, 2, DIMS(c->E));
        Tensor *wp = gh_rand(e, seed + 5, -1, 1, DIMS(c->K, c->E, 1, 1)), *bp = gh_rand(e, seed + 6, -1, 2, DIMS(c->K));
        Tensor *r = c->residual ? gh_rand(e, seed + 7, -2, 2, DIMS(c->N, c->K, Ho, Wo)) : NULL;
        Tensor *xc = c->pending_x ? op_conv2d_bias_act(e->cpu, x0, w0, b0, NULL, 1, 1, 1, OP_ACT_NONE) : x0;
        Tensor *want = op_conv2d_dw_project(e->cpu, xc, wd, bd, c->stride, c->act_d, wp, bp, r, OP_ACT_NONE);
        Tensor *dx0 = gd(e, x0), *dw0 = gd(e, w0), *db0 = gd(e, b0), *dwd = gd(e, wd), *dbd = gd(e, bd);
        Tensor *dwp = gd(e, wp), *dbp = gd(e, bp), *dr = r ? gd(e, r) : NULL;
        cuda_set_conv_custom(e->gpu, false); /* the 3x3 on cuDNN, which defers its epilogue */
        Tensor *dx = c->pending_x ? op_conv2d_bias_act(e->gpu, dx0, dw0, db0, NULL, 1, 1, 1, OP_ACT_NONE) : dx0;
        cuda_set_conv_custom(e->gpu, true);
        Tensor *got = op_conv2d_dw_project(e->gpu, dx, dwd, dbd, c->stride, c->act_d, dwp, dbp, dr, OP_ACT_NONE);
        char what[256];
        snprintf(what, sizeof what, "dw+project N%d E%d K%d %dx%d s%d act %d%s%s [%s]", c->N, c->E, c->K, c->H, c->W,
                 c->stride, (int)c->act_d, c->residual ? ", residual" : "", c->pending_x ? ", x pending" : "",
                 cuda_last_conv_info(e->gpu));
        gpu_expect_ok(e, what);
        gpu_expect_close(e, what, got, want, gpu_tol_for(CUDA_PRECISION_FP32));
        /* the rows kernel: rows of at most 112 outputs, planes of a multiple of four inputs */
        bool rows = Wo <= 112 && (c->H * c->W) % 4 == 0;
        char need[128];
        snprintf(need, sizeof need, "depthwise+project kernel (%s), stride %d%s", rows ? "rows" : "per pixel",
                 c->stride, c->pending_x ? ", x's pending" : "");
        if (!strstr(cuda_last_conv_info(e->gpu), need)) {
            printf("  FAIL %s: the fused kernel did not run as expected (%s)\n", what, need);
            e->failures++;
        }
        e->checks++;
        Tensor *h_got = gh_like(e, want);
        if (cuda_tensor_to_host(e->gpu, got, h_got)) {
            Tensor *again = op_conv2d_dw_project(e->gpu, dx, dwd, dbd, c->stride, c->act_d, dwp, dbp, dr, OP_ACT_NONE);
            gpu_expect_equal(e, "  a second run gives the same bits", again, h_got);
            /* the unfused chain: the depthwise kernel, then the 1x1 kernel */
            Tensor *h = op_conv2d_bias_act(e->gpu, dx, dwd, dbd, NULL, c->stride, 1, c->E, c->act_d);
            Tensor *chain = op_conv2d_bias_act(e->gpu, h, dwp, dbp, dr, 1, 0, 1, OP_ACT_NONE);
            gpu_expect_ok(e, "the unfused chain");
            gpu_expect_equal(e, "  fused == the unfused chain on the GPU, bit for bit", chain, h_got);
        }
    }
    /* the default rule: a projection to 64 channels at 28² is fused; one to 96 channels, or one at
     * 7² (the per-pixel kernel), is not (same values) */
    cuda_set_dw_project(e->gpu, CUDA_DW_PROJECT_RULE);
    static const int rule_k[3] = {64, 96, 64}, rule_hw[3] = {28, 28, 7};
    for (int i = 0; i < 3; i++) {
        Tensor *x = gh_rand(e, 9990 + 10 * i, -1, 1, DIMS(2, 32, rule_hw[i], rule_hw[i]));
        Tensor *wd = gh_rand(e, 9991 + 10 * i, -1, 1, DIMS(32, 1, 3, 3)), *bd = gh_rand(e, 9992 + 10 * i, -1, 1, DIMS(32));
        Tensor *wp = gh_rand(e, 9993 + 10 * i, -1, 1, DIMS(rule_k[i], 32, 1, 1)), *bp = gh_rand(e, 9994 + 10 * i, -1, 1, DIMS(rule_k[i]));
        Tensor *want = op_conv2d_dw_project(e->cpu, x, wd, bd, 1, OP_ACT_RELU6, wp, bp, NULL, OP_ACT_NONE);
        Tensor *got = op_conv2d_dw_project(e->gpu, gd(e, x), gd(e, wd), gd(e, bd), 1, OP_ACT_RELU6, gd(e, wp),
                                           gd(e, bp), NULL, OP_ACT_NONE);
        char what[200];
        snprintf(what, sizeof what, "default rule, 32 -> %d channels at %d²: %s [%s]", rule_k[i], rule_hw[i],
                 i == 0 ? "fused" : "unfused", cuda_last_conv_info(e->gpu));
        expect_rule_choice(e, what, got, want, "depthwise+project kernel", i == 0);
    }
    gpu_end(e);
}

static void test_conv_sgemm_kernel(void **state)
{
    GpuEnv *e =
        gpu_begin(state, "FP32 SGEMM conv kernel (1x1, 3x3): every tile config and the autotuned choice vs CPU");
    int n_cfg = cuda_conv1x1_configs();
    for (size_t ci = 0; ci < sizeof PW_CASES / sizeof PW_CASES[0]; ci++) {
        const PointwiseCase *pc = &PW_CASES[ci];
        int k = pc->k, st = pc->stride, Ho = (pc->H + 2 * pc->pad - k) / st + 1,
            Wo = (pc->W + 2 * pc->pad - k) / st + 1;
        ConvGeom g = {.N = pc->N, .C = pc->C, .K = pc->K, .T = 1, .H = pc->H, .W = pc->W, .kt = 1, .kh = k, .kw = k,
                      .To = 1, .Ho = Ho, .Wo = Wo, .st = 1, .sh = st, .sw = st, .ph = pc->pad, .pw = pc->pad,
                      .dt = 1, .dh = 1, .dw = 1, .groups = 1};
        const char *kernel = k == 1 ? "conv1x1 kernel" : "conv3x3 kernel";
        uint64_t seed = 9500 + 10 * ci;
        Tensor *x = gh_rand(e, seed, -2, 3, DIMS(g.N, g.C, 1, g.H, g.W));
        Tensor *w = gh_rand(e, seed + 1, -1, 1, DIMS(g.K, g.C, 1, k, k));
        Tensor *b = pc->bias ? gh_rand(e, seed + 2, -1, 2, DIMS(g.K)) : NULL;
        Tensor *r = pc->residual ? gh_rand(e, seed + 3, -2, 2, DIMS(g.N, g.K, 1, Ho, Wo)) : NULL;
        Tensor *y = gh(e, DTYPE_F32, DIMS(g.N, g.K, 1, Ho, Wo));
        CPU(conv_bias_act_forward, &g, x, w, b, r, pc->act, y);
        Tensor *dx = gd(e, x), *dw = gd(e, w), *db = b ? gd(e, b) : NULL, *dr = r ? gd(e, r) : NULL;
        for (int v = 0; v <= n_cfg; v++) { /* each config, then the autotuned choice */
            cuda_set_conv1x1_config(e->gpu, v < n_cfg ? v : -1);
            cuda_set_conv_autotune(e->gpu, v == n_cfg);
            Tensor *yd = gd_nan_like(e, y), *yd2 = gd_nan_like(e, y);
            GPU(conv_bias_act_forward, &g, dx, dw, db, dr, pc->act, yd);
            char what[256];
            snprintf(what, sizeof what, "%dx%d N%d C%d K%d %dx%d stride %d pad %d%s%s act %d, %s [%s]", k, k, g.N, g.C,
                     g.K, g.H, g.W, st, pc->pad, pc->bias ? " bias" : "", pc->residual ? " residual" : "", pc->act,
                     v < n_cfg ? "forced config" : "autotuned", cuda_last_conv_info(e->gpu));
            gpu_expect_ok(e, what);
            gpu_expect_close(e, what, yd, y, gpu_tol_for(CUDA_PRECISION_FP32));
            if (v < n_cfg && !strstr(cuda_last_conv_info(e->gpu), kernel)) {
                printf("  FAIL %s: the forced config did not run\n", what);
                e->failures++;
            }
            e->checks++;
            GPU(conv_bias_act_forward, &g, dx, dw, db, dr, pc->act, yd2);
            expect_same_bits(e, what, yd, yd2, y);
        }
    }
    cuda_set_conv1x1_config(e->gpu, -1);
    cuda_set_conv_autotune(e->gpu, false);
    gpu_end(e);
}

/* Through the op layer on the GPU: the fused op equals the unfused chain (fp32: the same float
 * operations in the same order on the same paths), and, recording, its gradients (the chain's
 * backward, including the depthwise backward kernels) match the CPU's, on every depthwise case. */
static Tensor *upload(GpuEnv *e, Tensor *h, bool grad)
{
    Tensor *d = gd(e, h);
    if (d && grad) {
        d->requires_grad = true;
        d->grad = gd(e, gh_like(e, h)); /* zeros */
    }
    return d;
}

static Tensor *leaf_copy(const Tensor *h)
{
    Tensor *t = ttensor(DTYPE_F32, h->ndim, h->shape, true);
    memcpy(t->data, h->data, tensor_bytes(h));
    return t;
}

static void test_fused_op_layer(void **state)
{
    GpuEnv *e = gpu_begin(state, "op_conv2d_bias_act on the GPU: equals the unfused chain; backward vs CPU");
    cuda_set_precision(e->gpu, CUDA_PRECISION_FP32);
    /* every depthwise case: the 3x3 ones run the 2-D depthwise backward kernels (both strides,
     * odd sizes, padding 0 and 1, planes under and over a block), the 5x5 one the direct kernels */
    for (int ci = 0; ci < (int)(sizeof CASES / sizeof CASES[0]); ci++) {
        const FusedCase *fc = &CASES[ci];
        if (!(fc->groups == fc->C && fc->K == fc->C))
            continue;
        int64_t Ho = (fc->H + 2 * fc->pad - fc->k) / fc->stride + 1, Wo = (fc->W + 2 * fc->pad - fc->k) / fc->stride + 1;
        uint64_t seed = 8000 + 10 * (uint64_t)ci;
        Tensor *x = gh_rand(e, seed, -2, 3, DIMS(fc->N, fc->C, fc->H, fc->W));
        Tensor *w = gh_rand(e, seed + 1, -1, 1, DIMS(fc->K, fc->C / fc->groups, fc->k, fc->k));
        Tensor *b = gh_rand(e, seed + 2, -1, 2, DIMS(fc->K));
        Tensor *r = fc->residual ? gh_rand(e, seed + 3, -2, 2, DIMS(fc->N, fc->K, Ho, Wo)) : NULL;
        OpAct act = (OpAct)fc->act;
        /* forward, not recording: fused kernel vs unfused chain on the GPU */
        Tensor *dx = gd(e, x), *dw = gd(e, w), *db = gd(e, b), *dr = r ? gd(e, r) : NULL;
        Tensor *fused = op_conv2d_bias_act(e->gpu, dx, dw, db, dr, fc->stride, fc->pad, fc->groups, act);
        Tensor *chain = op_conv2d(e->gpu, dx, dw, db, fc->stride, fc->pad, fc->groups);
        if (dr)
            chain = op_add(e->gpu, chain, dr);
        chain = act == OP_ACT_RELU6 ? op_relu6(e->gpu, chain) : act == OP_ACT_RELU ? op_relu(e->gpu, chain) : chain;
        gpu_expect_ok(e, "fused and unfused forward");
        Tensor *hchain = gh(e, DTYPE_F32, DIMS(fc->N, fc->K, Ho, Wo));
        if (chain && cuda_tensor_to_host(e->gpu, chain, hchain)) {
            char what[200];
            snprintf(what, sizeof what, "%s: fused == unfused chain on the GPU (fp32)", fc->name);
            gpu_expect_equal(e, what, fused, hchain);
        }
        /* backward through the recorded chain, GPU vs CPU */
        /* CPU leaves with zeroed gradients (ttensor owns and frees its grad; freed below) */
        Tensor *cx = leaf_copy(x), *cw = leaf_copy(w), *cb = leaf_copy(b), *cr = r ? leaf_copy(r) : NULL;
        Tensor *gx = upload(e, x, true), *gw = upload(e, w, true), *gb = upload(e, b, true);
        Tensor *gr = r ? upload(e, r, true) : NULL;
        Tensor *dyh = gh_rand(e, seed + 5, -1, 1, DIMS(fc->N, fc->K, Ho, Wo));
        Ctx *ctxs[2] = {e->cpu, e->gpu};
        for (int side = 0; side < 2; side++) {
            Ctx *ctx = ctxs[side];
            ctx->recording = true;
            Tensor *y = side == 0 ? op_conv2d_bias_act(ctx, cx, cw, cb, cr, fc->stride, fc->pad, fc->groups, act)
                                  : op_conv2d_bias_act(ctx, gx, gw, gb, gr, fc->stride, fc->pad, fc->groups, act);
            Tensor *dy = side == 0 ? dyh : gd(e, dyh);
            /* L = Σ y·dy: its gradient with respect to y is dy */
            Tensor *l = op_sum_all(ctx, op_mul(ctx, y, dy));
            if (l)
                tape_backward(ctx, l);
            ctx->recording = false;
            /* The tape's entries point at this case's leaves, freed below: the next case must
             * not walk them again (found by AddressSanitizer: heap-use-after-free on the CPU
             * side, which corrupted the heap and later deadlocked cmocka's abort handler). */
            tape_clear(ctx->tape);
        }
        gpu_expect_ok(e, "fused op backward");
        char what[200];
        snprintf(what, sizeof what, "  %s: dx", fc->name);
        gpu_expect_close(e, what, gx->grad, cx->grad, TOL_FP32_GEMM);
        snprintf(what, sizeof what, "  %s: dw", fc->name);
        gpu_expect_close(e, what, gw->grad, cw->grad, TOL_FP32_GEMM);
        snprintf(what, sizeof what, "  %s: db", fc->name);
        gpu_expect_close(e, what, gb->grad, cb->grad, TOL_FP32_GEMM);
        if (gr) {
            snprintf(what, sizeof what, "  %s: dresidual", fc->name);
            gpu_expect_close(e, what, gr->grad, cr->grad, TOL_FP32_GEMM);
        }
        ttensor_free(cx), ttensor_free(cw), ttensor_free(cb);
        if (cr)
            ttensor_free(cr);
    }
    gpu_end(e);
}

/* bf16 training: the forward keeps a conv input's bf16 copy (cuda_conv.c's bf16_input) for the
 * weight gradient. The gradient must be the one a fresh conversion gives, bit for bit: two convs
 * of the same x recorded (the second reuses the first's copy), then one backward, against the
 * conv backward slot called directly (scratch conversion). A write to x in between must drop the
 * copy: after x is zeroed in place, the next recorded conv's weight gradient is zero. */
static void test_bf16_kept_conv_input(void **state)
{
    GpuEnv *e = gpu_begin(state, "bf16 training: a conv input's kept bf16 copy gives the fresh conversion's dw");
    cuda_set_precision(e->gpu, CUDA_PRECISION_BF16);
    const int N = 2, C = 8, K = 16, H = 9, W = 9;
    Tensor *hx = gh_rand(e, 8600, -1, 1, DIMS(N, C, H, W)), *hw = gh_rand(e, 8601, -0.5f, 0.5f, DIMS(K, C, 3, 3));
    Tensor *hw2 = gh_rand(e, 8602, -0.5f, 0.5f, DIMS(K, C, 1, 1));
    Tensor *hdy = gh_rand(e, 8603, -1, 1, DIMS(N, K, H, W));
    /* reference: the slot, no recording (x converted into scratch) */
    ConvGeom g = {.N = N, .C = C, .K = K, .T = 1, .H = H, .W = W, .kt = 1, .kh = 3, .kw = 3, .st = 1, .sh = 1,
                  .sw = 1, .pt = 0, .ph = 1, .pw = 1, .dt = 1, .dh = 1, .dw = 1, .groups = 1, .To = 1, .Ho = H, .Wo = W};
    ConvGeom g2 = g;
    g2.kh = g2.kw = 1, g2.ph = g2.pw = 0;
    Tensor *rw = gd(e, gh_like(e, hw)), *rw2 = gd(e, gh_like(e, hw2)); /* zeros */
    GPU(conv_backward, &g, gd(e, hx), gd(e, hw), gd(e, hdy), NULL, rw, NULL);
    GPU(conv_backward, &g2, gd(e, hx), gd(e, hw2), gd(e, hdy), NULL, rw2, NULL);
    Tensor *ref = gh_like(e, hw), *ref2 = gh_like(e, hw2);
    if (!cuda_tensor_to_host(e->gpu, rw, ref) || !cuda_tensor_to_host(e->gpu, rw2, ref2))
        gpu_expect_ok(e, "download of the reference gradients");
    /* recorded: L = Σ conv3x3(x)·dy + Σ conv1x1(x)·dy */
    Tensor *x = upload(e, hx, false), *w = upload(e, hw, true), *w2 = upload(e, hw2, true), *dy = gd(e, hdy);
    e->gpu->recording = true;
    ctx_set_training(e->gpu, true);
    Tensor *y = op_conv2d(e->gpu, x, w, NULL, 1, 1, 1), *y2 = op_conv2d(e->gpu, x, w2, NULL, 1, 0, 1);
    Tensor *l = op_add(e->gpu, op_sum_all(e->gpu, op_mul(e->gpu, y, dy)), op_sum_all(e->gpu, op_mul(e->gpu, y2, dy)));
    if (l)
        tape_backward(e->gpu, l);
    tape_clear(e->gpu->tape);
    gpu_expect_ok(e, "recorded convs and backward");
    gpu_expect_equal(e, "3x3 dw from the kept copy == the fresh conversion's", w->grad, ref);
    gpu_expect_equal(e, "1x1 dw (second conv of the same x) == the fresh conversion's", w2->grad, ref2);
    /* x zeroed in place: its kept copy must go, so the next conv's dw is exactly zero */
    e->gpu->ops->device_memset(e->gpu, x->data, 0, tensor_bytes(x));
    Tensor *w3 = upload(e, hw, true);
    Tensor *y3 = op_conv2d(e->gpu, x, w3, NULL, 1, 1, 1);
    Tensor *l3 = op_sum_all(e->gpu, op_mul(e->gpu, y3, dy));
    if (l3)
        tape_backward(e->gpu, l3);
    tape_clear(e->gpu->tape);
    e->gpu->recording = false;
    ctx_set_training(e->gpu, false);
    gpu_expect_ok(e, "conv after x was overwritten");
    gpu_expect_equal(e, "dw after x was zeroed in place: zero (the stale copy was dropped)", w3->grad, gh_like(e, hw));
    gpu_end(e);
}

/* ---- bf16 channels-last activations between layers (cuda_layout.c) ---------------------- */

/* A MobileNetV2 block and a TSM-ResNet-like tail through the op layer on the GPU at BF16 with
 * resident layouts on and off, against the CPU: stem conv, expand 1x1, depthwise 3x3, project,
 * residual add, temporal shift, a 1x1 with a fused residual, ReLU(add), then ops that do not
 * know the layout (a reshape view + scale, a global average pool) and must see correct f32
 * data. The f32 data of resident tensors stays NaN-poisoned until converted on demand, so a
 * consumer that read stale f32 data fails the comparison. Tolerance: up to 8 bf16 roundings in
 * sequence (each ~2e-3 relative), so twice TOL_BF16's norm bound at the end of the chain. */
typedef struct {
    Tensor *q, *u, *v, *gap;
} ChainOut;

static ChainOut run_chain(Ctx *ctx, Tensor *const *in)
{
    /* in: x (4, 3, 17, 17), stem w (16, 3, 3, 3) b, exp w (32, 16, 1, 1) b, dw w (32, 1, 3, 3) b,
     * proj w (16, 32, 1, 1) b, tail w (16, 16, 1, 1) b */
    Tensor *a = op_conv2d_bias_act(ctx, in[0], in[1], in[2], NULL, 2, 1, 1, OP_ACT_RELU6);   /* (4, 16, 9, 9) */
    Tensor *e = op_conv2d_bias_act(ctx, a, in[3], in[4], NULL, 1, 0, 1, OP_ACT_RELU6);       /* (4, 32, 9, 9) */
    Tensor *d = op_conv2d_bias_act(ctx, e, in[5], in[6], NULL, 1, 1, 32, OP_ACT_RELU6);      /* (4, 32, 9, 9) */
    Tensor *p = op_conv2d_bias_act(ctx, d, in[7], in[8], NULL, 1, 0, 1, OP_ACT_NONE);        /* (4, 16, 9, 9) */
    Tensor *r = op_add(ctx, a, p);
    Tensor *t = op_temporal_shift(ctx, r, 2, 4);
    ChainOut o;
    o.q = op_conv2d_bias_act(ctx, t, in[9], in[10], r, 1, 0, 1, OP_ACT_RELU);
    o.u = op_relu(ctx, op_add(ctx, o.q, t));
    o.v = op_scale(ctx, op_reshape(ctx, o.u, 2, (int64_t[]){4, 16 * 81}), 0.5f);
    o.gap = op_global_avg_pool(ctx, o.u);
    return o;
}

static void test_resident_bf16_chain(void **state)
{
    GpuEnv *e = gpu_begin(state, "bf16 channels-last activations between layers: op chain vs CPU, resident on/off");
    static const int64_t shapes[11][4] = {{4, 3, 17, 17}, {16, 3, 3, 3}, {16}, {32, 16, 1, 1}, {32},
                                          {32, 1, 3, 3},  {32},          {16, 32, 1, 1}, {16}, {16, 16, 1, 1}, {16}};
    static const int ndims[11] = {4, 4, 1, 4, 1, 4, 1, 4, 1, 4, 1};
    static const float scale[11] = {1.0f, 0.35f, 0.5f, 0.45f, 0.5f, 0.5f, 0.5f, 0.3f, 0.5f, 0.4f, 0.5f};
    Tensor *h[11], *d[11];
    for (int i = 0; i < 11; i++) {
        h[i] = gh_rand(e, 9100 + (uint64_t)i, -scale[i], scale[i], ndims[i], shapes[i]);
        d[i] = gd(e, h[i]);
    }
    ChainOut ref = run_chain(e->cpu, h);
    assert_true(ctx_ok(e->cpu));
    const Tol chain_tol = {3e-2, 2e-1};
    cuda_set_precision(e->gpu, CUDA_PRECISION_BF16);
    for (int resident = 1; resident >= 0; resident--) {
        cuda_set_resident_bf16(e->gpu, resident != 0);
        ChainOut got = run_chain(e->gpu, d);
        char what[160];
        snprintf(what, sizeof what, "chain resident=%d: ", resident);
        gpu_expect_ok(e, what);
        const char *names[4] = {"q = conv1x1(tshift) + residual, ReLU", "u = ReLU(q + t)", "v = 0.5 * reshape(u)",
                                "global average pool of u"};
        Tensor *g4[4] = {got.q, got.u, got.v, got.gap}, *r4[4] = {ref.q, ref.u, ref.v, ref.gap};
        for (int k = 0; k < 4; k++) {
            char w2[224];
            snprintf(w2, sizeof w2, "%s%s", what, names[k]);
            if (g4[k])
                gpu_expect_close(e, w2, g4[k], r4[k], chain_tol);
        }
    }
    cuda_set_resident_bf16(e->gpu, true);
    cuda_set_precision(e->gpu, CUDA_PRECISION_FP32);
    gpu_end(e);
}

/* The resident depthwise kernels (8 channels per thread when C % 8 == 0, else 2) and the
 * vectorised epilogue, on odd widths and both strides: 1x1 expand (leaves a bf16 shadow), then
 * the depthwise 3x3 reading it, then a global average pool (an op that needs the f32 form). */
static void test_resident_depthwise(void **state)
{
    GpuEnv *e = gpu_begin(state, "bf16 channels-last depthwise 3x3 (2 and 8 channels per thread) vs CPU");
    const struct {
        int C, H, W, stride;
    } cases[] = {{6, 9, 11, 1}, {6, 10, 7, 2}, {16, 13, 13, 1}, {24, 15, 9, 2}, {40, 8, 8, 1}};
    cuda_set_precision(e->gpu, CUDA_PRECISION_BF16);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int C = cases[ci].C;
        uint64_t seed = 9500 + 10 * ci;
        Tensor *h[5] = {gh_rand(e, seed, -1, 1, DIMS(2, 4, cases[ci].H, cases[ci].W)),
                        gh_rand(e, seed + 1, -0.5f, 0.5f, DIMS(C, 4, 1, 1)), gh_rand(e, seed + 2, -0.5f, 0.5f, DIMS(C)),
                        gh_rand(e, seed + 3, -0.5f, 0.5f, DIMS(C, 1, 3, 3)), gh_rand(e, seed + 4, -0.5f, 0.5f, DIMS(C))};
        Tensor *d[5];
        for (int k = 0; k < 5; k++)
            d[k] = gd(e, h[k]);
        Tensor *ref = op_conv2d_bias_act(e->cpu, op_conv2d_bias_act(e->cpu, h[0], h[1], h[2], NULL, 1, 0, 1, OP_ACT_RELU6),
                                         h[3], h[4], NULL, cases[ci].stride, 1, C, OP_ACT_RELU6);
        Tensor *got = op_conv2d_bias_act(e->gpu, op_conv2d_bias_act(e->gpu, d[0], d[1], d[2], NULL, 1, 0, 1, OP_ACT_RELU6),
                                         d[3], d[4], NULL, cases[ci].stride, 1, C, OP_ACT_RELU6);
        char what[200];
        snprintf(what, sizeof what, "C %d, %dx%d, stride %d [%s]", C, cases[ci].H, cases[ci].W, cases[ci].stride,
                 cuda_last_conv_info(e->gpu));
        gpu_expect_ok(e, what);
        if (got)
            gpu_expect_close(e, what, got, ref, TOL_BF16);
        Tensor *gref = op_global_avg_pool(e->cpu, ref), *ggot = op_global_avg_pool(e->gpu, got);
        if (ggot)
            gpu_expect_close(e, "  its global average pool (f32 converted on demand)", ggot, gref, TOL_BF16);
    }
    cuda_set_precision(e->gpu, CUDA_PRECISION_FP32);
    gpu_end(e);
}

/* FP32 / TF32 deferred epilogues (cuda_layout.c): a fused 1x1 conv (bias, ReLU6) feeding a fused
 * depthwise 3x3 conv (bias, ReLU6), as MobileNetV2's expand and depthwise; the depthwise kernel
 * applies the 1x1's pending epilogue while reading, and the 1x1's output read back afterwards
 * gets it applied in place. With deferral on and off: the same bits for both tensors, and both
 * match the CPU. */
static void test_deferred_epilogue(void **state)
{
    GpuEnv *e = gpu_begin(state, "deferred conv epilogues (fp32, tf32): same bits as immediate ones, and the CPU's");
    static const CudaPrecision precisions[2] = {CUDA_PRECISION_FP32, CUDA_PRECISION_TF32};
    const int N = 2, C = 8, K = 16, H = 12, W = 12;
    Tensor *x = gh_rand(e, 9100, -2, 3, DIMS(N, C, H, W));
    Tensor *w1 = gh_rand(e, 9101, -1, 1, DIMS(K, C, 1, 1)), *b1 = gh_rand(e, 9102, -1, 2, DIMS(K));
    Tensor *w2 = gh_rand(e, 9103, -1, 1, DIMS(K, 1, 3, 3)), *b2 = gh_rand(e, 9104, -1, 2, DIMS(K));
    Tensor *h_ref = op_conv2d_bias_act(e->cpu, x, w1, b1, NULL, 1, 0, 1, OP_ACT_RELU6);
    Tensor *y_ref = op_conv2d_bias_act(e->cpu, h_ref, w2, b2, NULL, 1, 1, K, OP_ACT_RELU6);
    Tensor *dx = gd(e, x), *dw1 = gd(e, w1), *db1 = gd(e, b1), *dw2 = gd(e, w2), *db2 = gd(e, b2);
    for (int p = 0; p < 2; p++) {
        cuda_set_precision(e->gpu, precisions[p]);
        Tensor *first_h = gh_like(e, h_ref), *first_y = gh_like(e, y_ref);
        for (int defer = 1; defer >= 0; defer--) {
            cuda_set_defer_epilogue(e->gpu, defer);
            Tensor *h = op_conv2d_bias_act(e->gpu, dx, dw1, db1, NULL, 1, 0, 1, OP_ACT_RELU6);
            Tensor *y = op_conv2d_bias_act(e->gpu, h, dw2, db2, NULL, 1, 1, K, OP_ACT_RELU6);
            char what[160];
            snprintf(what, sizeof what, "%s deferral %s: depthwise output", cuda_precision_name(precisions[p]),
                     defer ? "on" : "off");
            gpu_expect_ok(e, what);
            Tol tol = gpu_tol_for(precisions[p]);
            gpu_expect_close(e, what, y, y_ref, tol);
            snprintf(what, sizeof what, "%s deferral %s: the 1x1 output read afterwards", cuda_precision_name(precisions[p]),
                     defer ? "on" : "off");
            gpu_expect_close(e, what, h, h_ref, tol);
            if (defer) {
                if (!cuda_tensor_to_host(e->gpu, h, first_h) || !cuda_tensor_to_host(e->gpu, y, first_y))
                    gpu_expect_ok(e, "download with deferral on");
            } else {
                gpu_expect_equal(e, "  deferral off gives the deferral-on depthwise output, bit for bit", y, first_y);
                gpu_expect_equal(e, "  ... and the same 1x1 output", h, first_h);
            }
        }
    }
    cuda_set_defer_epilogue(e->gpu, true);
    cuda_set_precision(e->gpu, CUDA_PRECISION_FP32);
    gpu_end(e);
}

int test_group_cuda_fused(int *total)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_conv_epilogues),
        cmocka_unit_test(test_fused_op_layer),
        cmocka_unit_test(test_resident_bf16_chain),
        cmocka_unit_test(test_resident_depthwise),
        cmocka_unit_test(test_bf16_kept_conv_input),
        cmocka_unit_test(test_deferred_epilogue),
        cmocka_unit_test(test_conv_sgemm_kernel),
        cmocka_unit_test(test_conv1x1_pending_inputs),
        cmocka_unit_test(test_expand_dw_kernel),
        cmocka_unit_test(test_dw_project_kernel),
    };
    return gpu_run_group("cuda_fused", tests, sizeof tests / sizeof tests[0], total);
}
