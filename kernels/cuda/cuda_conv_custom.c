/* cuda_conv_custom.c — which FP32 forward convolutions run on focusbench's own kernels instead of
 * cuDNN: the SGEMM kernel for 1x1s and dense 3x3s (cuda_conv_sgemm.cu) and the stem kernel
 * (cuda_conv_stem.cu). Both carry the bias, the residual and the activation inside; cuDNN's
 * strict-FP32 engines need a separate epilogue pass over y after them.
 *
 * The choice, per shape, is recorded in the shape's cuDNN forward plan (cuda_conv.c):
 *   - autotuning off (the default outside `profile`): the kernel's default config (for 3x3s a
 *     rule by K that may say cuDNN), so that what runs never depends on timing noise;
 *   - autotuning on: on the shape's first fused call, cuDNN's autotuned plan plus the epilogue
 *     pass is timed against every config of the kernel on this call's buffers, and the fastest
 *     is kept (-1 = cuDNN). Timing is skipped while a CUDA graph is captured or the arenas are
 *     frozen; the shape's eager planning pass decides first.
 * Off entirely with cuda_set_conv_custom(ctx, false) / FOCUSBENCH_CUSTOM_CONVS=0; cuda_set_conv1x1_config
 * forces an SGEMM config (tests); FOCUSBENCH_CONV3X3=0 keeps the 3x3s on cuDNN.
 *
 * Inputs whose own conv left its epilogue pending (cuda_layout.c) are read raw by the 1x1s, which
 * apply that epilogue as they load them; the 3x3s and the stem kernel read the canonical form.
 *
 * Also here: the backend slots of the two fused MobileNetV2 ops, taken at FP32 under the same
 * switch and by a fixed rule, no timing: expand 1x1 + depthwise 3x3 (cuda_conv_expand_dw.cu, the
 * shapes that kernel suits; it never stores the expanded tensor) and depthwise 3x3 + projection
 * 1x1 (cuda_conv_dw_project.cu, the whole-row shapes where it measured faster; it never stores
 * the depthwise output). Both are what the unfused path would write and read back.
 */
#include <math.h>
#include <stdio.h>

#include "kernels/cuda/cuda_internal.h"

/* A custom kernel: how many configs, their names, the untimed default, and a launch on canonical
 * inputs (what the timing runs). */
typedef struct {
    const char *name;
    int (*configs)(void);
    const char *(*config_name)(int cfg);
    int (*default_config)(const ConvGeom *g);
    bool (*launch)(Ctx *ctx, int cfg, const ConvGeom *g, const float *x, const float *w, const float *b,
                   const float *r, int act, float *y);
} CustomKernel;

static bool sgemm_launch(Ctx *ctx, int cfg, const ConvGeom *g, const float *x, const float *w, const float *b,
                         const float *r, int act, float *y)
{
    return cuda_launch_conv_sgemm(ctx, cfg, g, x, w, b, r, act, y, NULL, NULL);
}

static int stem_configs(void) { return 1; }
static const char *stem_config_name(int cfg) { return cfg == 0 ? "stem" : "?"; }
static int stem_default_config(const ConvGeom *g)
{
    (void)g;
    return 0;
}
static bool stem_launch(Ctx *ctx, int cfg, const ConvGeom *g, const float *x, const float *w, const float *b,
                        const float *r, int act, float *y)
{
    (void)cfg;
    return cuda_launch_conv_stem(ctx, g, x, w, b, r, act, y);
}

static const CustomKernel CONV1X1 = {"conv1x1", cuda_conv1x1_configs, cuda_conv1x1_config_name,
                                     cuda_conv1x1_default_config, sgemm_launch};
static const CustomKernel CONV3X3 = {"conv3x3", cuda_conv1x1_configs, cuda_conv1x1_config_name,
                                     cuda_conv3x3_default_config, sgemm_launch};
static const CustomKernel STEM = {"stem conv", stem_configs, stem_config_name, stem_default_config, stem_launch};

/* An input t (N, C, P) that a custom kernel may read raw: when t's own conv left its epilogue
 * pending with this shape, that epilogue goes to *pe (the kernel applies it as it loads) and the
 * result is true; otherwise (also when `raw_ok` is false) t is brought to its canonical form. */
static bool pending_or_canonical(Ctx *ctx, const Tensor *t, bool raw_ok, int N, int C, int64_t P,
                                 CudaPendingEpilogue *pe)
{
    const CudaPendingEpilogue *p = raw_ok && t ? cuda_epilogue_pending(ctx, t) : NULL;
    if (p && p->N == N && p->K == C && p->P == P) {
        *pe = *p;
        return true;
    }
    cuda_layout_in(ctx, t);
    return false;
}

/* A config of a kernel on given buffers (the timed run). */
typedef struct {
    Ctx *ctx;
    const CustomKernel *k;
    int cfg;
    const ConvGeom *g;
    const float *x, *w, *b, *r;
    int act;
    float *y;
} KernelRun;

static bool kernel_run(void *arg)
{
    KernelRun *a = arg;
    return a->k->launch(a->ctx, a->cfg, a->g, a->x, a->w, a->b, a->r, a->act, a->y);
}

/* The config of kernel k that runs this shape, or -1 for cuDNN (see the top of the file). */
static int choose(Ctx *ctx, const CustomKernel *k, const ConvGeom *g, const Tensor *xt, const float *w,
                  const float *b, const Tensor *rt, int act, float *y)
{
    CudaState *st = cuda_state(ctx);
    if ((k == &CONV1X1 || k == &CONV3X3) && st->conv1x1_force >= 0)
        return st->conv1x1_force;
    bool has_cudnn = false, ok = true;
    int *decision = cuda_conv_custom_decision(ctx, g, &has_cudnn);
    if (!decision)
        return -1;
    if (*decision != CUDA_CUSTOM_UNDECIDED)
        return *decision;
    int cfg = k->default_config(g);
    if (cfg < 0 && !has_cudnn) /* the kernel's rule would leave it to cuDNN, which has no plan for it */
        cfg = 0;
    if (!st->conv_autotune || !has_cudnn || !cuda_tuning_allowed(ctx, &ok)) {
        if (ok && (!st->conv_autotune || !has_cudnn)) /* with autotuning on, a later call times it */
            *decision = cfg;
        return ok ? cfg : -1;
    }
    cuda_layout_in(ctx, xt); /* both sides are timed on the canonical inputs */
    cuda_layout_in(ctx, rt);
    const float *x = tensor_f32(xt), *r = rt ? tensor_f32(rt) : NULL;
    float best_ms = cuda_conv_cudnn_forward_time(ctx, g, x, w, b, r, act, y);
    int best = -1;
    char times[320];
    int len = snprintf(times, sizeof times, "cuDNN+epilogue %.3f ms", (double)best_ms);
    for (int i = 0; i < k->configs() && ctx_ok(ctx); i++) {
        KernelRun run = {.ctx = ctx, .k = k, .cfg = i, .g = g, .x = x, .w = w, .b = b, .r = r, .act = act, .y = y};
        float ms = cuda_time_best(ctx, kernel_run, &run);
        if (len < (int)sizeof times)
            len += snprintf(times + len, sizeof times - (size_t)len, ", %s %.3f", k->config_name(i), (double)ms);
        if (ms < best_ms)
            best_ms = ms, best = i;
    }
    cuda_scratch_release(ctx);
    if (!ctx_ok(ctx))
        return -1;
    /* fetched again: the pointer is into the plan cache, which timing went through */
    decision = cuda_conv_custom_decision(ctx, g, &has_cudnn);
    if (!decision)
        return -1;
    *decision = best;
    if (st->verbose) {
        char geom[200];
        cuda_describe_conv_geom(g, geom, sizeof geom);
        fprintf(stderr, "focusbench cuda: %s %s: %s -> %s\n", k->name, geom, times,
                best >= 0 ? k->config_name(best) : "cuDNN");
    }
    return best;
}

bool cuda_conv_custom_forward(Ctx *ctx, const ConvGeom *g, const Tensor *x, const Tensor *w, const Tensor *b,
                              const Tensor *residual, int act, Tensor *y)
{
    CudaState *st = cuda_state(ctx);
    const float *pw = tensor_f32(w);
    if (!st->conv_custom || st->conv_path != CUDA_CONV_AUTO || st->precision != CUDA_PRECISION_FP32)
        return false;
    const CustomKernel *k = cuda_conv1x1_suits(g, pw)                  ? &CONV1X1
                            : cuda_conv_stem_suits(g)                   ? &STEM
                            : st->conv3x3 && cuda_conv3x3_suits(g, pw) ? &CONV3X3
                                                                       : NULL;
    if (!k)
        return false;
    const float *pb = b ? tensor_f32(b) : NULL;
    float *py = tensor_f32(y);
    int cfg = choose(ctx, k, g, x, pw, pb, residual, act, py);
    if (cfg < 0 || !ctx_ok(ctx))
        return !ctx_ok(ctx);
    const float *px = tensor_f32(x), *pr = residual ? tensor_f32(residual) : NULL;
    bool ran;
    CudaPendingEpilogue xe = {0}, re = {0};
    int64_t Sin = (int64_t)g->T * g->H * g->W, Sout = (int64_t)g->To * g->Ho * g->Wo;
    bool have_xe = pending_or_canonical(ctx, x, k == &CONV1X1, g->N, g->C, Sin, &xe);
    bool have_re = pending_or_canonical(ctx, residual, k == &CONV1X1, g->N, g->K, Sout, &re);
    if (k == &CONV1X1)
        ran = cuda_launch_conv_sgemm(ctx, cfg, g, px, pw, pb, pr, act, py, have_xe ? &xe : NULL,
                                     have_re ? &re : NULL);
    else
        ran = k->launch(ctx, cfg, g, px, pw, pb, pr, act, py);
    if (ran)
        snprintf(st->last_conv, sizeof st->last_conv, "%s kernel %s, fused epilogue%s%s (fp32)", k->name,
                 k->config_name(cfg), have_xe ? ", x's pending epilogue on load" : "",
                 have_re ? ", the residual's pending epilogue" : "");
    cuda_scratch_release(ctx);
    return true;
}

/* ---- expand 1x1 + depthwise 3x3 (op_conv2d_expand_dw's slots) ---------------------------- */

/* Taken for the shapes where the fusion paid on the H100 (call s7g, batch 32 × 16 frames): the
 * stride-2 blocks at 56 × 56 and above, whose expanded tensor is read by a depthwise conv that
 * writes a quarter of it. MobileNetV2's block 2 (16 -> 96 at 112², stride 2) went from 2.6 ms
 * (1x1 kernel + depthwise kernel) to 1.8; block 4 (24 -> 144 at 56², stride 2) about even; the
 * stride-1 blocks and the 28² ones ran 0.05-0.1 ms slower fused (the kernel's expand, four FMAs
 * per shared-memory load, is slower than the 1x1 kernel's GEMM tiles), so they stay unfused.
 * Session 9's version (two channels per thread, parameters one chunk ahead) ran 1.64 / 1.08 ms
 * for blocks 2 / 4, and the stride-1 blocks still lost, by about 1 ms in all (call session9c;
 * FOCUSBENCH_EXPAND_DW_ALL=1 takes the kernel for every shape it suits, for such A/B runs). */
bool cuda_expand_dw_takes(Ctx *ctx, const ConvGeom *ge, const ConvGeom *gd)
{
    const CudaState *st = cuda_state(ctx);
    return st && st->conv_custom && st->conv_path == CUDA_CONV_AUTO && st->precision == CUDA_PRECISION_FP32 &&
           cuda_expand_dw_suits(ge, gd) && (st->expand_dw_all || (gd->sh == 2 && ge->H >= 56));
}

void cuda_expand_dw_forward(Ctx *ctx, const ConvGeom *ge, const ConvGeom *gd, const Tensor *x, const Tensor *we,
                            const Tensor *be, int act_e, const Tensor *wd, const Tensor *bd, int act_d, Tensor *y)
{
    if (!cuda_ready(ctx))
        return;
    CudaPendingEpilogue xe = {0};
    bool have_xe = pending_or_canonical(ctx, x, true, ge->N, ge->C, (int64_t)ge->H * ge->W, &xe);
    cuda_layout_in(ctx, we);
    cuda_layout_in(ctx, be);
    cuda_layout_in(ctx, wd);
    cuda_layout_in(ctx, bd);
    cuda_layout_out(ctx, y);
    if (cuda_launch_expand_dw(ctx, ge, gd, tensor_f32(x), have_xe ? &xe : NULL, tensor_f32(we), tensor_f32(be), act_e,
                              tensor_f32(wd), tensor_f32(bd), act_d, tensor_f32(y)))
        snprintf(cuda_state(ctx)->last_conv, sizeof cuda_state(ctx)->last_conv,
                 "expand+depthwise kernel, stride %d%s (fp32)", gd->sh,
                 have_xe ? ", x's pending epilogue on load" : "");
}

/* ---- depthwise 3x3 + projection 1x1 (op_conv2d_dw_project's slots) ----------------------- */

/* The rule (CUDA_DW_PROJECT_RULE): projections to at most 64 channels (one m tile) of the rows
 * kernel's shapes whose rows are a multiple of four pixels (MobileNetV2's blocks 1, 3, 5, 6 at
 * 112², 56², 28²). On the H100 at fp32, batch 32 × 16 frames, those four went from about 3.7 ms
 * unfused to 2.6 (calls session10e/f; the depthwise output they no longer write and read back is
 * 4.7 GB). The 14² blocks lost: 1.49 ms fused for blocks 8-10 against about 0.9 unfused, and the
 * per-pixel kernel lost on every shape (calls session10a, session10g). */
bool cuda_dw_project_takes(Ctx *ctx, const ConvGeom *gd, const ConvGeom *gp, const Tensor *wp)
{
    const CudaState *st = cuda_state(ctx);
    bool quad = false;
    return st && st->conv_custom && st->conv_path == CUDA_CONV_AUTO && st->precision == CUDA_PRECISION_FP32 &&
           st->dw_project != CUDA_DW_PROJECT_OFF && cuda_dw_project_suits(gd, gp, tensor_f32(wp)) &&
           (st->dw_project == CUDA_DW_PROJECT_ALL || (gp->K <= 64 && cuda_dw_project_rows(gd, gp, &quad) && quad));
}

void cuda_dw_project_forward(Ctx *ctx, const ConvGeom *gd, const ConvGeom *gp, const Tensor *x, const Tensor *wd,
                             const Tensor *bd, int act_d, const Tensor *wp, const Tensor *bp, const Tensor *residual,
                             int act_p, Tensor *y)
{
    if (!cuda_ready(ctx))
        return;
    CudaPendingEpilogue xe = {0};
    bool have_xe = pending_or_canonical(ctx, x, true, gd->N, gd->C, (int64_t)gd->H * gd->W, &xe);
    cuda_layout_in(ctx, wd);
    cuda_layout_in(ctx, bd);
    cuda_layout_in(ctx, wp);
    cuda_layout_in(ctx, bp);
    cuda_layout_in(ctx, residual);
    cuda_layout_out(ctx, y);
    bool rows = false;
    if (cuda_launch_dw_project(ctx, gd, gp, tensor_f32(x), have_xe ? &xe : NULL, tensor_f32(wd), tensor_f32(bd), act_d,
                               tensor_f32(wp), tensor_f32(bp), residual ? tensor_f32(residual) : NULL, act_p,
                               tensor_f32(y), &rows))
        snprintf(cuda_state(ctx)->last_conv, sizeof cuda_state(ctx)->last_conv,
                 "depthwise+project kernel (%s), stride %d%s (fp32)", rows ? "rows" : "per pixel", gd->sh,
                 have_xe ? ", x's pending epilogue on load" : "");
}
