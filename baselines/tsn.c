/* tsn.c — see tsn.h. */
#include "baselines/tsn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/init.h"
#include "kernels/ops.h"

/* ---- configuration ---------------------------------------------------------------------------- */

bool tsn_config_check(const TsnConfig *c, char *err, size_t err_cap)
{
    if (c->frames < 1 || c->segments < 1 || c->segments > c->frames) {
        snprintf(err, err_cap, "tsn: need 1 <= F (segments) = %d <= T (frames) = %d", c->segments, c->frames);
        return false;
    }
    if (c->frame_size < 16 || c->classes < 1) {
        snprintf(err, err_cap, "tsn: frame size %d must be >= 16 and classes %d >= 1", c->frame_size, c->classes);
        return false;
    }
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f)) {
        snprintf(err, err_cap, "tsn: dropout %g must be in [0, 1)", (double)c->dropout);
        return false;
    }
    return true;
}

/* ---- model ------------------------------------------------------------------------------------ */

void tsn_model_destroy(TsnModel *m)
{
    if (!m)
        return;
    bl_backbone_destroy(&m->backbone);
    params_destroy(m->ps);
    free(m);
}

TsnModel *tsn_model_create(const TsnConfig *cfg, BackendKind backend, bool with_grads, char *err, size_t err_cap)
{
    if (!tsn_config_check(cfg, err, err_cap))
        return NULL;
    TsnModel *m = calloc(1, sizeof *m);
    if (!m || !(m->ps = params_create())) {
        free(m);
        snprintf(err, err_cap, "tsn: out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    BlBackboneConfig bc = cfg->backbone;
    bc.tsm_segments = cfg->tsm ? cfg->segments : 0;
    m->cfg.backbone = bc;
    if (!bl_backbone_declare(&m->backbone, &bc, m->ps, "base_model.", err, err_cap) ||
        !linear_declare(&m->fc, m->ps, NULL, "new_fc", m->backbone.feature_dim, cfg->classes, err, err_cap) ||
        !params_allocate(m->ps, backend, with_grads, err, err_cap)) {
        tsn_model_destroy(m);
        return NULL;
    }
    return m;
}

void tsn_model_init(TsnModel *m, uint64_t seed)
{
    bl_backbone_init(&m->backbone, seed);
    /* the official TSN/TSM new_fc: normal(0, 0.001), bias 0 */
    init_linear_normal(&m->fc, seed, 0.001f);
}

Tensor *tsn_forward(Ctx *ctx, const TsnModel *m, Tensor *clips, uint64_t step, Tensor **frame_logits)
{
    if (frame_logits)
        *frame_logits = NULL;
    const TsnConfig *c = &m->cfg;
    if (!bl_check_clip_shape(ctx, c->tsm ? "tsm" : "tsn", clips, c->frames, c->frame_size))
        return NULL;
    const int64_t B = clips->shape[0], F = c->segments;
    int32_t *idx = malloc((size_t)(B * F) * sizeof *idx); /* (B, F) */
    if (!idx) {
        ctx_set_error(ctx, "tsn: out of memory");
        return NULL;
    }
    bl_segment_indices((int)B, c->frames, (int)F, ctx->training, ctx->seed, step, BL_SLOT_SEGMENT, idx);
    Tensor *frames = bl_gather_frames(ctx, clips, idx, B, F); /* (B·F, 3, S, S) */
    free(idx);
    BackboneOutput bo;
    ctx_scope_push(ctx, "backbone");
    bool ok = frames && bl_backbone_forward(ctx, &m->backbone, frames, &bo);
    ctx_scope_pop(ctx);
    if (!ok)
        return NULL;
    ctx_scope_push(ctx, "fc");
    Tensor *logits = bl_linear(ctx, &m->fc, bo.pooled, c->dropout); /* (B·F, C) */
    ctx_scope_pop(ctx);
    Tensor *fl = op_reshape(ctx, logits, 3, (int64_t[]){B, F, c->classes}); /* (B, F, C) */
    Tensor *mean = op_mean(ctx, fl, 1);                                      /* (B, C): the avg consensus */
    if (!ctx_ok(ctx))
        return NULL;
    if (frame_logits)
        *frame_logits = fl;
    return mean;
}

bool tsn_flops(const TsnConfig *cfg, TsnFlops *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    TsnModel *m = tsn_model_create(cfg, BACKEND_META, false, err, err_cap);
    if (!m)
        return false;
    Ctx *ctx = ctx_create(BACKEND_META, 0);
    if (!ctx) {
        tsn_model_destroy(m);
        snprintf(err, err_cap, "tsn flops: out of memory");
        return false;
    }
    const int F = cfg->segments, S = cfg->frame_size;
    BackboneOutput bo;
    /* one clip of F frames (TSM needs whole clips); the shift is free, so per frame = total / F */
    bl_backbone_forward(ctx, &m->backbone, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){F, 3, S, S}), &bo);
    out->backbone_frame = bl_take_macs(ctx) / F;
    op_linear(ctx, tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, m->backbone.feature_dim}), m->fc.weight, m->fc.bias);
    out->fc_frame = bl_take_macs(ctx);
    tsn_forward(ctx, m, tensor_new(ctx, DTYPE_F32, 5, (int64_t[]){1, cfg->frames, 3, S, S}), 0, NULL);
    out->video = bl_take_macs(ctx);
    bool ok = ctx_ok(ctx);
    if (!ok)
        snprintf(err, err_cap, "tsn flops: %s", ctx_error_message(ctx));
    ctx_destroy(ctx);
    tsn_model_destroy(m);
    return ok;
}

/* ---- presets ---------------------------------------------------------------------------------- */

typedef struct {
    MethodPresetInfo info;
    TsnConfig cfg;
} TsnPreset;

#define R50(base) {.kind = BL_BACKBONE_RESNET, .depth = 50, .base_width = (base)}
/* The synthetic benchmark's shared ResNet: ResNet-18 width 16 learns the textures from scratch within the CPU budget
 * of `make reproduce`; ResNet-50 width 8 (a quarter of its FLOPs per layer, 4x narrower stem) stayed near chance. */
#define R18(base) {.kind = BL_BACKBONE_RESNET, .depth = 18, .base_width = (base)}
#define MBV2(w) {.kind = BL_BACKBONE_MOBILENET_V2, .width_mult = (w)}
/* The synthetic presets' MobileNetV2s use the official Uni-AdaFocus module's layout (its keys and
 * its channel rounding, which differs from torchvision's at width 0.25), so that a TSN trained here
 * initialises the glance network of Uni-AdaFocus, AdaFocusV2, AR-Net and OCSampler. */
#define MBV2_SYN(w) {.kind = BL_BACKBONE_MOBILENET_V2, .width_mult = (w), .mbv2_keys = MOBILENET_V2_KEYS_OFFICIAL}
/* The TSM README's Something-Something command: lr 0.01 (batch 64), wd 5e-4, 50 epochs, clip 20. */
#define STH_TRAIN {.lr = 0.01f, .weight_decay = 5e-4f, .momentum = 0.9f, .batch_size = 64, .epochs = 50, .grad_clip = 20}
/* ActivityNet-style fine-tuning (the Uni-AdaFocus command's optimiser settings). */
#define ACT_TRAIN {.lr = 0.002f, .weight_decay = 2e-4f, .momentum = 0.9f, .batch_size = 32, .epochs = 50, .grad_clip = 20}
/* The synthetic benchmark on CPU (the synth presets of impl/presets.h). */
#define SYN_TRAIN {.lr = 0.01f, .weight_decay = 1e-4f, .momentum = 0.9f, .batch_size = 8, .epochs = 20, .grad_clip = 20}

#define CFG(T, F, S, C, tsm_, bb, drop) \
    {.frames = (T), .segments = (F), .frame_size = (S), .classes = (C), .tsm = (tsm_), .backbone = bb, .dropout = (drop)}

static const TsnPreset PRESETS[] = {
    {{"tsn-r50-8x224", "tsn", "TSN, ResNet-50, 8 frames at 224 (Sth-Sth, 174 classes; paper: 33.2 GFLOPs)", STH_TRAIN},
     CFG(8, 8, 224, 174, false, R50(64), 0.5f)},
    {{"tsn-r50-16x224", "tsn", "TSN, ResNet-50, 16 frames at 224 (ActivityNet, 200 classes)", ACT_TRAIN},
     CFG(16, 16, 224, 200, false, R50(64), 0.5f)},
    {{"tsn-r50-8x160", "tsn", "TSN, ResNet-50, 8 frames at 160 (ActivityNet, 200 classes)", ACT_TRAIN},
     CFG(8, 8, 160, 200, false, R50(64), 0.5f)},
    {{"tsn-mbv2-16x224", "tsn", "TSN, MobileNetV2, 16 frames at 224 (ActivityNet, 200 classes)", ACT_TRAIN},
     CFG(16, 16, 224, 200, false, MBV2(1.0), 0.5f)},
    {{"tsm-r50-8x224", "tsm", "TSM, ResNet-50, 8 frames at 224 (Sth-Sth, 174 classes; paper: 33 GFLOPs)", STH_TRAIN},
     CFG(8, 8, 224, 174, true, R50(64), 0.5f)},
    {{"tsm-r50-16x224", "tsm", "TSM, ResNet-50, 16 frames at 224 (Sth-Sth, 174 classes)", STH_TRAIN},
     CFG(16, 16, 224, 174, true, R50(64), 0.5f)},
    {{"tsm-mbv2-8x224", "tsm", "TSM, MobileNetV2, 8 frames at 224 (Sth-Sth, 174 classes)", STH_TRAIN},
     CFG(8, 8, 224, 174, true, MBV2(1.0), 0.5f)},
    {{"tsn-synth", "tsn", "TSN on the synthetic benchmark: ResNet-18 width 16, 4 of 8 frames at 64, 10 classes",
      SYN_TRAIN},
     CFG(8, 4, 64, 10, false, R18(16), 0.5f)},
    {{"tsn-synth-f8", "tsn", "TSN on the synthetic benchmark: ResNet-18 width 16, all 8 frames at 64", SYN_TRAIN},
     CFG(8, 8, 64, 10, false, R18(16), 0.5f)},
    {{"tsn-mbv2-synth", "tsn", "TSN on the synthetic benchmark: MobileNetV2 x0.25, 4 of 8 frames at 64", SYN_TRAIN},
     CFG(8, 4, 64, 10, false, MBV2_SYN(0.25), 0.5f)},
    {{"tsm-synth", "tsm", "TSM on the synthetic benchmark: ResNet-18 width 16, 4 of 8 frames at 64", SYN_TRAIN},
     CFG(8, 4, 64, 10, true, R18(16), 0.5f)},
    {{"tsn-tiny", "tsn", "unit-test size: MobileNetV2 x0.25, 3 of 4 frames at 32, 5 classes", SYN_TRAIN},
     CFG(4, 3, 32, 5, false, MBV2(0.25), 0.2f)},
    {{"tsm-tiny", "tsm", "unit-test size: ResNet-50 width 4 with TSM, 4 frames at 32, 5 classes", SYN_TRAIN},
     CFG(4, 4, 32, 5, true, R50(4), 0.2f)},
};
enum { N_PRESETS = (int)(sizeof PRESETS / sizeof PRESETS[0]) };

const MethodPresetInfo *tsn_preset_info(int i) { return i >= 0 && i < N_PRESETS ? &PRESETS[i].info : NULL; }

bool tsn_preset_config(const char *name, TsnConfig *cfg)
{
    for (int i = 0; name && i < N_PRESETS; i++)
        if (strcmp(PRESETS[i].info.name, name) == 0) {
            *cfg = PRESETS[i].cfg;
            return true;
        }
    return false;
}

/* ---- the Method adapter ----------------------------------------------------------------------- */

typedef struct {
    TsnModel *model;
    double gflops; /* per video, the one exit */
} TsnMethod;

static Tensor *tsn_m_forward_exits(Ctx *ctx, Method *m, Tensor *clips, double *sample_gflops)
{
    TsnMethod *t = m->impl;
    if (!bl_check_clips(ctx, m, clips))
        return NULL;
    Tensor *y = tsn_forward(ctx, t->model, clips, ctx->step, NULL); /* (B, C) */
    if (!y)
        return NULL;
    bl_fill_sample_gflops(&t->gflops, 1, clips->shape[0], sample_gflops);
    return op_reshape(ctx, y, 3, (int64_t[]){clips->shape[0], 1, m->classes});
}

static Tensor *tsn_m_train_loss(Ctx *ctx, Method *m, Tensor *clips, Tensor *labels, uint64_t step)
{
    TsnMethod *t = m->impl;
    ctx->step = step; /* dropout masks are keyed by the step */
    if (!bl_check_clips(ctx, m, clips))
        return NULL;
    const int64_t B = clips->shape[0];
    int32_t *lab = malloc((size_t)B * sizeof *lab); /* (B) */
    if (!lab) {
        ctx_set_error(ctx, "%s: out of memory", m->id);
        return NULL;
    }
    Tensor *loss = NULL;
    if (bl_labels_host(ctx, labels, B, m->classes, lab))
        loss = bl_cross_entropy(ctx, tsn_forward(ctx, t->model, clips, step, NULL), lab, B);
    free(lab);
    return loss;
}

static bool tsn_m_exit_gflops(const Method *m, double *gflops, char *err, size_t err_cap)
{
    (void)err;
    (void)err_cap;
    gflops[0] = ((const TsnMethod *)m->impl)->gflops;
    return true;
}


static void tsn_m_destroy(Method *m)
{
    if (!m)
        return;
    TsnMethod *t = m->impl;
    if (t)
        tsn_model_destroy(t->model);
    free(t);
    free(m);
}

static const MethodOps TSN_OPS = {
    .forward_exits = tsn_m_forward_exits,
    .train_loss = tsn_m_train_loss,
    .exit_gflops = tsn_m_exit_gflops,
    .destroy = tsn_m_destroy,
};

Method *tsn_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                          uint64_t seed, char *err, size_t err_cap)
{
    TsnConfig cfg;
    const MethodPresetInfo *info = NULL;
    for (int i = 0; i < N_PRESETS; i++)
        if (preset && strcmp(PRESETS[i].info.name, preset) == 0)
            info = &PRESETS[i].info, cfg = PRESETS[i].cfg;
    if (!info) {
        snprintf(err, err_cap, "tsn: unknown preset '%s'", preset ? preset : "(null)");
        return NULL;
    }
    if (ov) {
        bool all_frames = cfg.segments == cfg.frames;
        if (ov->frames > 0)
            cfg.frames = ov->frames;
        if (ov->focus > 0)
            cfg.segments = ov->focus;
        else if (ov->frames > 0 && (all_frames || cfg.segments > cfg.frames))
            cfg.segments = cfg.frames; /* "8x224" means every frame: it follows --frames */
        if (ov->frame_size > 0)
            cfg.frame_size = ov->frame_size;
        if (ov->classes > 0)
            cfg.classes = ov->classes;
    }
    TsnFlops fl;
    if (!tsn_flops(&cfg, &fl, err, err_cap))
        return NULL;
    TsnMethod *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, err_cap, "tsn: out of memory");
        return NULL;
    }
    t->gflops = fl.video * 1e-9;
    if (!(t->model = tsn_model_create(&cfg, backend, with_grads, err, err_cap))) {
        free(t);
        return NULL;
    }
    tsn_model_init(t->model, seed);
    Method *m = bl_method_new(&TSN_OPS, cfg.tsm ? "tsm" : "tsn", info->name, t->model->ps, t, cfg.frames,
                              cfg.frame_size, cfg.classes, 1, err, err_cap);
    if (!m) {
        tsn_model_destroy(t->model);
        free(t);
    }
    return m;
}
