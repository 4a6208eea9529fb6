/* uniadafocus_tsm.c — see uniadafocus_tsm.h. */
#include "impl/uniadafocus_tsm.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/frame_sampler.h"
#include "impl/init.h"
#include "impl/losses.h"
#include "impl/uniadafocus.h"
#include "kernels/backend.h"
#include "kernels/ops.h"

static const char WHO[] = "uniadafocus-tsm"; /* in error messages */

/* ---- presets ---------------------------------------------------------------------------------- */

/* The official README command of a Sth-Sth / Jester model: --num_glance_segments 8
 * --num_input_focus_segments 3K --num_focus_segments K --patch_size P --dropout 0.5 --shift_div 8
 * --stn_hidden_dim 128 --temporal_hidden_dim 64. */
#define TSM_CFG(K, P, C)                                                                                          \
    {.frames = 3 * (K), .glance = 8, .focus = (K), .frame_size = 224, .patch_size = (P), .box_min = 96.0f,          \
     .box_max = 224.0f, .spatial_hidden = 128, .temporal_hidden = 64, .num_classes = (C), .glance_width_mult = 1.0, \
     .local_depth = 50, .local_base_width = 64, .shift_div = 8, .dropout = 0.5f, .temperature = 1.0f}
/* --lr 0.02 --wd WD --batch-size 64 --epochs 50 --gd 20, lr ratios 0.5 / 0.2 / 0.2 */
#define TSM_TRAIN(WD, NORM)                                                                                       \
    {.lr = 0.02f, .weight_decay = (WD), .momentum = 0.9f, .batch_size = 64, .epochs = 50, .norm_ratio = (NORM),    \
     .grad_clip = 20.0f, .global_lr_ratio = 0.5f, .stn_lr_ratio = 0.2f, .temporal_lr_ratio = 0.2f, .mc_samples = 128}
#define STHV1(K, P) TSM_CFG(K, P, 174), TSM_TRAIN(1e-3f, 0.5f)
#define STHV2(K, P) TSM_CFG(K, P, 174), TSM_TRAIN(5e-4f, 0.5f)

static const UafTsmPreset PRESETS[] = {
    {"sthv1-p96-8x8", "Uni-AdaFocus-TSM, Sth-Sth V1, 96x96, 8+8 (paper: 8.8 GFLOPs, 47.5%)", STHV1(8, 96)},
    {"sthv1-p96-8x12", "Uni-AdaFocus-TSM, Sth-Sth V1, 96x96, 8+12 (paper: 11.8 GFLOPs, 49.5%)", STHV1(12, 96)},
    {"sthv1-p128-8x12", "Uni-AdaFocus-TSM, Sth-Sth V1, 128x128, 8+12 (paper: 18.8 GFLOPs, 50.5%)", STHV1(12, 128)},
    {"sthv1-p128-8x16", "Uni-AdaFocus-TSM, Sth-Sth V1, 128x128, 8+16 (paper: 24.2 GFLOPs, 51.5%)", STHV1(16, 128)},
    {"sthv2-p96-8x8", "Uni-AdaFocus-TSM, Sth-Sth V2, 96x96, 8+8 (paper: 8.8 GFLOPs, 60.8%)", STHV2(8, 96)},
    {"sthv2-p96-8x12", "Uni-AdaFocus-TSM, Sth-Sth V2, 96x96, 8+12 (paper: 11.8 GFLOPs, 62.6%)", STHV2(12, 96)},
    {"sthv2-p128-8x12", "Uni-AdaFocus-TSM, Sth-Sth V2, 128x128, 8+12 (paper: 18.8 GFLOPs, 63.2%)", STHV2(12, 128)},
    {"sthv2-p128-8x16", "Uni-AdaFocus-TSM, Sth-Sth V2, 128x128, 8+16 (paper: 24.2 GFLOPs, 64.2%)", STHV2(16, 128)},
    {"jester-p128-8x12", "Uni-AdaFocus-TSM, Jester, 128x128, 8+12 (paper: 18.8 GFLOPs, 97.1%)", TSM_CFG(12, 128, 27),
     TSM_TRAIN(1e-3f, 0.25f)},
    {"synth-tsm-tiny", "Uni-AdaFocus-TSM, CPU-sized synthetic model (T 12, G 4, K 4, 64x64 frames, 32x32 patches, "
     "10 classes)",
     {.frames = 12, .glance = 4, .focus = 4, .frame_size = 64, .patch_size = 32, .box_min = (float)(96.0 * 64 / 224.0),
      .box_max = 64.0f, .spatial_hidden = 16, .temporal_hidden = 8, .num_classes = 10, .glance_width_mult = 0.25,
      .local_depth = 50, .local_base_width = 8, .shift_div = 8, .dropout = 0.2f, .temperature = 1.0f},
     {.lr = 0.01f, .weight_decay = 1e-4f, .momentum = 0.9f, .batch_size = 8, .epochs = 20, .norm_ratio = 0.5f,
      .grad_clip = 20.0f, .global_lr_ratio = 0.5f, .stn_lr_ratio = 0.2f, .temporal_lr_ratio = 0.2f, .mc_samples = 128}},
};
#undef STHV1
#undef STHV2
enum { N_PRESETS = (int)(sizeof PRESETS / sizeof PRESETS[0]) };

int uaf_tsm_preset_count(void) { return N_PRESETS; }
const UafTsmPreset *uaf_tsm_preset_at(int i) { return i >= 0 && i < N_PRESETS ? &PRESETS[i] : NULL; }

const UafTsmPreset *uaf_tsm_preset_find(const char *name)
{
    for (int i = 0; name && i < N_PRESETS; i++)
        if (strcmp(PRESETS[i].name, name) == 0)
            return &PRESETS[i];
    return NULL;
}

char *uaf_tsm_preset_names(char *buf, size_t cap)
{
    size_t used = 0;
    if (cap)
        buf[0] = '\0';
    for (int i = 0; i < N_PRESETS && used < cap; i++) {
        int n = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", PRESETS[i].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return buf;
}

int uaf_tsm_config_override(UafTsmConfig *cfg, const char *name, const char *value, char *err, size_t err_cap)
{
    if (!name || !value)
        return 0;
    if (strncmp(name, "--", 2) == 0)
        name += 2;
    static const char *const knobs[] = {"frames", "glance", "focus", "frame-size", "patch-size", "classes"};
    int k = -1;
    for (int i = 0; i < (int)(sizeof knobs / sizeof knobs[0]); i++)
        if (strcmp(name, knobs[i]) == 0)
            k = i;
    if (k < 0)
        return 0;
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < 1 || v > 100000) {
        snprintf(err, err_cap, "--%s %s: expected a positive integer", name, value);
        return -1;
    }
    switch (k) {
    case 0: cfg->frames = (int)v; break;
    case 1: cfg->glance = (int)v; break;
    case 2: cfg->focus = (int)v; break;
    case 3: { /* the box limits are a fraction of the frame */
        double r = (double)v / cfg->frame_size;
        cfg->box_min = (float)(cfg->box_min * r);
        cfg->box_max = (float)(cfg->box_max * r);
        cfg->frame_size = (int)v;
        break;
    }
    case 4: cfg->patch_size = (int)v; break;
    default: cfg->num_classes = (int)v; break;
    }
    return 1;
}

bool uaf_tsm_config_check(const UafTsmConfig *c, char *err, size_t err_cap)
{
    if (c->glance < 1 || c->focus < 1 || c->frames < c->glance || c->frames < c->focus) {
        snprintf(err, err_cap, "uniadafocus-tsm: need G = %d >= 1 glance and K = %d >= 1 focus frames out of T = %d "
                 ">= G, K candidates", c->glance, c->focus, c->frames);
        return false;
    }
    if (c->frame_size < 32 || c->frame_size % 32 != 0) {
        snprintf(err, err_cap, "uniadafocus-tsm: frame size S = %d must be a positive multiple of 32", c->frame_size);
        return false;
    }
    if (c->patch_size < 32) {
        snprintf(err, err_cap, "uniadafocus-tsm: patch size P = %d must be >= 32 (the feature crop is P/32 cells)",
                 c->patch_size);
        return false;
    }
    if (!(c->box_min > 0.0f && c->box_min <= c->box_max && c->box_max <= (float)c->frame_size)) {
        snprintf(err, err_cap, "uniadafocus-tsm: box limits %g..%g must satisfy 0 < s_min <= s_max <= S = %d",
                 (double)c->box_min, (double)c->box_max, c->frame_size);
        return false;
    }
    if (c->spatial_hidden < 1 || c->temporal_hidden < 1 || c->num_classes < 1 || c->local_base_width < 1 ||
        c->shift_div < 1 || !(c->glance_width_mult > 0.0 && c->glance_width_mult <= 16.0)) {
        snprintf(err, err_cap, "uniadafocus-tsm: spatial-hidden %d, temporal-hidden %d, classes %d, local base width "
                 "%d, shift div %d must be >= 1 and glance width %g in (0, 16]", c->spatial_hidden, c->temporal_hidden,
                 c->num_classes, c->local_base_width, c->shift_div, c->glance_width_mult);
        return false;
    }
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f) || !(c->temperature > 0.0f && isfinite(c->temperature))) {
        snprintf(err, err_cap, "uniadafocus-tsm: dropout %g must be in [0, 1), temperature %g > 0", (double)c->dropout,
                 (double)c->temperature);
        return false;
    }
    return true;
}

/* ---- model ------------------------------------------------------------------------------------ */

static bool declare_heads(UafTsmHeads *h, ParamSet *ps, const char *prefix, int in, int C, char *err, size_t err_cap)
{
    return linear_declare(&h->final_fc, ps, prefix, "new_fc", in, C, err, err_cap) &&
           linear_declare(&h->avg_fc, ps, prefix, "new_new_fc", in, C, err, err_cap);
}

UafTsmModel *uaf_tsm_create(const UafTsmConfig *cfg, BackendKind backend, bool with_grads, char *err, size_t err_cap)
{
    if (!uaf_tsm_config_check(cfg, err, err_cap))
        return NULL;
    UafTsmModel *m = calloc(1, sizeof *m);
    if (!m || !(m->ps = params_create())) {
        free(m);
        snprintf(err, err_cap, "uniadafocus-tsm: out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    ParamSet *ps = m->ps;
    const int C = cfg->num_classes;

    /* The official state_dict's order: global_CNN, local_CNN, aux_fc, spatial_policy, temporal_policy. */
    MobileNetV2Config gc = mobilenet_v2_config_default();
    gc.width_mult = cfg->glance_width_mult;
    gc.num_classes = 0; /* TSN replaces the classifier by Dropout: no keys */
    gc.dropout = 0.0f;
    gc.tsm_segments = cfg->glance;
    gc.tsm_fold_div = cfg->shift_div;
    gc.keys = MOBILENET_V2_KEYS_OFFICIAL;
    gc.tsm_net_keys = true; /* "….conv.0.net.weight": the TemporalShift wrapper's level */
    gc.prefix = "global_CNN.base_model.";
    if (!(m->global_cnn = mobilenet_v2_create(&gc, ps, err, err_cap)))
        goto fail;
    m->global_dim = m->global_cnn->last_width;
    m->feat_side = cfg->frame_size / 32;
    if (!declare_heads(&m->global_heads, ps, "global_CNN.", m->global_dim, C, err, err_cap))
        goto fail;

    ResNetConfig lc = resnet_config_default();
    lc.depth = cfg->local_depth;
    lc.base_width = cfg->local_base_width;
    lc.num_classes = 0;
    lc.tsm_segments = cfg->focus;
    lc.tsm_fold_div = cfg->shift_div;
    lc.tsm_net_keys = true; /* "layerS.B.conv1.net.weight" */
    lc.prefix = "local_CNN.base_model.";
    if (!(m->local_cnn = resnet_create(&lc, ps, err, err_cap)))
        goto fail;
    m->local_dim = m->local_cnn->feature_dim;
    if (!declare_heads(&m->local_heads, ps, "local_CNN.", m->local_dim, C, err, err_cap) ||
        !linear_declare(&m->aux_fc, ps, NULL, "aux_fc", m->global_dim, C, err, err_cap))
        goto fail;

    SpatialPolicyConfig sc = {.in_channels = m->global_dim, .hidden = cfg->spatial_hidden, .glance = cfg->glance,
                              .feat_side = m->feat_side, .head_frames = cfg->glance};
    TemporalPolicyConfig tc = {.in_channels = m->global_dim, .hidden = cfg->temporal_hidden, .glance = cfg->glance,
                               .temperature = cfg->temperature};
    if (!policy_spatial_declare(&m->spatial, &sc, ps, "spatial_policy.", err, err_cap) ||
        !policy_temporal_declare(&m->temporal, &tc, ps, "temporal_policy.", err, err_cap))
        goto fail;
    m->pixel_box = patch_box_geom_pixels(cfg->frame_size, cfg->patch_size, cfg->box_min, cfg->box_max);
    m->feature_box = patch_box_geom_features(m->feat_side, cfg->patch_size, cfg->box_min, cfg->box_max);
    if (!patch_box_geom_check(&m->feature_box, err, err_cap) || !params_allocate(ps, backend, with_grads, err, err_cap))
        goto fail;
    return m;
fail:
    uaf_tsm_destroy(m);
    return NULL;
}

void uaf_tsm_destroy(UafTsmModel *m)
{
    if (!m)
        return;
    mobilenet_v2_destroy(m->global_cnn);
    resnet_destroy(m->local_cnn);
    params_destroy(m->ps);
    free(m);
}

void uaf_tsm_init(UafTsmModel *m, uint64_t seed)
{
    mobilenet_v2_init(m->global_cnn, seed);
    resnet_init(m->local_cnn, seed);
    /* TSN._prepare_tsn: normal_(weight, 0, 0.001), bias 0 */
    init_linear_normal(&m->global_heads.final_fc, seed, 0.001f);
    init_linear_normal(&m->global_heads.avg_fc, seed, 0.001f); /* streams differ by key (impl/init.h) */
    init_linear_normal(&m->local_heads.final_fc, seed, 0.001f);
    init_linear_normal(&m->local_heads.avg_fc, seed, 0.001f);
    init_linear_default(&m->aux_fc, seed);
    policy_spatial_init(&m->spatial, seed);
    policy_temporal_init(&m->temporal, seed);
}

float uaf_tsm_lr_multiplier(const UafTsmTrainDefaults *t, const char *key)
{
    if (!key)
        return 1.0f;
    if (strncmp(key, "temporal_policy.", 16) == 0)
        return t->temporal_lr_ratio;
    if (strncmp(key, "spatial_policy.", 15) == 0)
        return t->stn_lr_ratio;
    if (strncmp(key, "global_CNN.", 11) == 0 || strncmp(key, "aux_fc.", 7) == 0)
        return t->global_lr_ratio;
    return 1.0f; /* local_CNN */
}

/* ---- helpers ---------------------------------------------------------------------------------- */

/* An f32 tensor of the context's backend from host values (shape only on meta). */
static Tensor *f32_from_host(Ctx *ctx, int ndim, const int64_t *dims, const float *src)
{
    Tensor *t = tensor_new(ctx, DTYPE_F32, ndim, dims);
    if (!t || !t->data)
        return t;
    if (t->backend == BACKEND_CPU)
        memcpy(t->data, src, tensor_bytes(t));
    else if (ctx->ops && ctx->ops->copy_from_host)
        ctx->ops->copy_from_host(ctx, t, src);
    else
        ctx_set_error(ctx, "uniadafocus-tsm: the %s backend cannot copy from the host", backend_name(t->backend));
    return ctx_ok(ctx) ? t : NULL;
}

/* TSN head pair on per-frame features (B·n, D): dropout once, new_fc on the detached result,
 * new_new_fc on it, both averaged over the n frames ("avg" consensus). */
static void tsn_heads(Ctx *ctx, const UafTsmHeads *h, Tensor *feat, int64_t B, int64_t n, float dropout,
                      Tensor **dropped, Tensor **final_frames, Tensor **avg_frames, Tensor **final, Tensor **avg)
{
    Tensor *d = dropout > 0.0f ? op_dropout(ctx, feat, dropout) : feat;
    Tensor *fl = op_linear(ctx, uaf_detach(ctx, d), h->final_fc.weight, h->final_fc.bias); /* (B·n, C) */
    Tensor *al = op_linear(ctx, d, h->avg_fc.weight, h->avg_fc.bias);
    int64_t C = h->final_fc.weight ? h->final_fc.weight->shape[0] : 0;
    if (dropped)
        *dropped = d;
    if (final_frames)
        *final_frames = fl;
    if (avg_frames)
        *avg_frames = al;
    *final = op_mean(ctx, op_reshape(ctx, fl, 3, (int64_t[]){B, n, C}), 1); /* (B, C) */
    *avg = op_mean(ctx, op_reshape(ctx, al, 3, (int64_t[]){B, n, C}), 1);
}

/* ---- the forward pass ------------------------------------------------------------------------- */

bool uaf_tsm_glance(Ctx *ctx, const UafTsmModel *m, Tensor *video, uint64_t step, UafTsmOutput *out)
{
    memset(out, 0, sizeof *out);
    if (!uaf_check_video(ctx, WHO, video, m->cfg.frames, m->cfg.frame_size))
        return false;
    const UafTsmConfig *c = &m->cfg;
    const int B = (int)video->shape[0], G = c->glance, T = c->frames;
    out->B = B;
    out->glance_idx_host = uaf_host_alloc(ctx, WHO, (size_t)B * G * sizeof(int32_t)); /* (B, G) */
    if (!out->glance_idx_host)
        return false;
    /* TSN segments of the T candidates: the one holding time (j + 0.5)/G at test, (j + U)/G in training */
    for (int b = 0; b < B; b++) {
        RngStream s = frame_sampler_stream(ctx->seed, b, FRAME_SAMPLER_SLOT_GLANCE, step);
        for (int j = 0; j < G; j++) {
            int64_t k;
            if (ctx->training)
                k = (int64_t)floor(((double)j + rng_uniform(&s, (uint64_t)j)) * T / G);
            else
                k = ((int64_t)(2 * j + 1) * T) / (2 * G);
            out->glance_idx_host[b * G + j] = (int32_t)(k < T ? k : T - 1);
        }
    }
    out->glance_idx = uaf_index_tensor(ctx, out->glance_idx_host, B, G);
    Tensor *frames = uaf_gather_frames(ctx, video, out->glance_idx); /* (B·G, 3, S, S) */
    BackboneOutput g;
    ctx_scope_push(ctx, "glance"); /* the heads too: the official per-frame constant holds them */
    bool ok = frames && mobilenet_v2_forward(ctx, m->global_cnn, frames, &g);
    if (ok) {
        out->glance_features = g.features;
        tsn_heads(ctx, &m->global_heads, g.pooled, B, G, c->dropout, &out->glance_feat, NULL,
                  &out->glance_avg_frames, &out->glance_final, &out->glance_avg);
    }
    ctx_scope_pop(ctx);
    return ok && ctx_ok(ctx);
}

bool uaf_tsm_policies(Ctx *ctx, const UafTsmModel *m, UafTsmOutput *out)
{
    if (!ctx_ok(ctx))
        return false;
    if (!out->glance_features || !out->glance_feat) {
        ctx_set_error(ctx, "uaf_tsm_policies: run uaf_tsm_glance first (no glance features)");
        return false;
    }
    ctx_scope_push(ctx, "temporal_policy");
    policy_temporal_forward(ctx, &m->temporal, uaf_detach(ctx, out->glance_feat), &out->temporal);
    ctx_scope_pop(ctx);
    ctx_scope_push(ctx, "spatial_policy");
    Tensor *a = policy_spatial_forward(ctx, &m->spatial, uaf_detach(ctx, out->glance_features)); /* (B, 1, 4) */
    ctx_scope_pop(ctx);
    out->action = a ? op_reshape(ctx, a, 2, (int64_t[]){a->shape[0], 4}) : NULL;
    return ctx_ok(ctx);
}

bool uaf_tsm_select_focus(Ctx *ctx, const UafTsmModel *m, uint64_t step, UafTsmOutput *out)
{
    if (!ctx_ok(ctx))
        return false;
    const UafTsmConfig *c = &m->cfg;
    const int B = out->B, G = c->glance, K = c->focus;
    if (!out->temporal.weights_T || B < 1) {
        ctx_set_error(ctx, "uaf_tsm_select_focus: run uaf_tsm_glance and uaf_tsm_policies first (no temporal weights)");
        return false;
    }
    const Tensor *wt = out->temporal.weights_T;
    if (!ctx->training && wt->data && wt->backend != BACKEND_CPU && ctx->ops && ctx->ops->quantile_sample) {
        /* a device sampler (CUDA): the same indices bit for bit without reading w_T back, so the
         * eval pass can be captured as a CUDA graph (as uaf_select_focus); no host copy then */
        out->focus_idx_host = NULL;
        out->focus_idx = tensor_new(ctx, DTYPE_I32, 2, (int64_t[]){B, K});
        if (!out->focus_idx)
            return false;
        ctx->ops->quantile_sample(ctx, B, G, c->frames, K, wt, NULL, out->focus_idx);
        return ctx_ok(ctx);
    }
    float *w = malloc((size_t)B * G * sizeof *w); /* (B, G) w_T on the host */
    out->focus_idx_host = uaf_host_alloc(ctx, WHO, (size_t)B * K * sizeof(int32_t)); /* (B, K) */
    if (!w || !out->focus_idx_host) {
        free(w);
        if (ctx_ok(ctx))
            ctx_set_error(ctx, "uaf_tsm_select_focus: out of memory");
        return false;
    }
    if (!uaf_read_host(ctx, out->temporal.weights_T, w)) {
        if (!ctx_ok(ctx)) {
            free(w);
            return false;
        }
        for (int64_t i = 0; i < (int64_t)B * G; i++) /* meta: no data; every choice costs the same */
            w[i] = 1.0f / (float)G;
    }
    char err[256];
    bool ok = frame_sampler_focus(w, B, G, c->frames, K, ctx->training, ctx->seed, step, out->focus_idx_host, err,
                                  sizeof err);
    free(w);
    if (!ok) {
        ctx_set_error(ctx, "uaf_tsm_select_focus: %s", err);
        return false;
    }
    out->focus_idx = uaf_index_tensor(ctx, out->focus_idx_host, B, K);
    return ctx_ok(ctx);
}

bool uaf_tsm_focus(Ctx *ctx, const UafTsmModel *m, Tensor *video, Tensor *focus_idx, Tensor *const *actions, int n_sets,
                   Tensor *glance_final, UafTsmFocusOutput *outs)
{
    if (n_sets >= 1 && n_sets <= 2)
        memset(outs, 0, (size_t)n_sets * sizeof *outs);
    if (!uaf_check_video(ctx, WHO, video, m->cfg.frames, m->cfg.frame_size))
        return false;
    const UafTsmConfig *c = &m->cfg;
    const int64_t B = video->shape[0], K = c->focus, C = c->num_classes;
    if (n_sets < 1 || n_sets > 2 || !focus_idx || focus_idx->ndim != 2 || focus_idx->shape[0] != B ||
        focus_idx->shape[1] != K || !glance_final || glance_final->ndim != 2 || glance_final->shape[0] != B ||
        glance_final->shape[1] != C) {
        ctx_set_error(ctx, "uaf_tsm_focus: need 1 or 2 patch sets, focus indices (B = %lld, K = %lld) and glance logits "
                      "(B, C = %lld)", (long long)B, (long long)K, (long long)C);
        return false;
    }
    for (int s = 0; s < n_sets; s++) {
        const Tensor *a = actions[s];
        if (!a || a->ndim != 2 || a->shape[0] != B || a->shape[1] != 4) {
            char sa[96] = "NULL";
            if (a)
                tensor_shape_str(a, sa, sizeof sa);
            ctx_set_error(ctx, "uaf_tsm_focus: actions of patch set %d must be (B = %lld, 4), got %s", s, (long long)B,
                          sa);
            return false;
        }
    }
    const int64_t BK = B * K;
    Tensor *frames = uaf_gather_frames(ctx, video, focus_idx); /* (B·K, 3, S, S) */
    Tensor *sets[2] = {NULL, NULL};
    for (int s = 0; s < n_sets; s++) {
        /* the official action.detach(): one box per video, the same for its K frames */
        outs[s].actions = uaf_detach(ctx, actions[s]);
        Tensor *a = op_reshape(ctx, uaf_repeat_action(ctx, WHO, outs[s].actions, K), 2, (int64_t[]){BK, 4});
        outs[s].theta = patch_box_theta(ctx, a, &m->pixel_box);                    /* (B·K, 2, 3) */
        outs[s].patches = sets[s] = op_patch_crop(ctx, frames, outs[s].theta, c->patch_size); /* (B·K, 3, P, P) */
    }
    Tensor *patches = n_sets == 1 ? sets[0] : op_concat(ctx, sets, n_sets, 0); /* (n·B·K, 3, P, P) */
    BackboneOutput l;
    Tensor *final = NULL, *avg = NULL; /* (n·B, C) */
    ctx_scope_push(ctx, "focus"); /* with the heads, as the official per-patch constant */
    bool ok = patches && resnet_forward(ctx, m->local_cnn, patches, &l);
    if (ok)
        tsn_heads(ctx, &m->local_heads, l.pooled, n_sets * B, K, c->dropout, NULL, NULL, NULL, &final, &avg);
    ctx_scope_pop(ctx);
    if (!ok)
        return false;
    for (int s = 0; s < n_sets && ctx_ok(ctx); s++) {
        outs[s].local_pooled = n_sets == 1 ? l.pooled : op_slice(ctx, l.pooled, 0, s * BK, BK);
        outs[s].local_final = n_sets == 1 ? final : op_slice(ctx, final, 0, s * B, B);
        outs[s].local_avg = n_sets == 1 ? avg : op_slice(ctx, avg, 0, s * B, B);
        outs[s].logit = op_add(ctx, glance_final, outs[s].local_final);
    }
    return ctx_ok(ctx);
}

bool uaf_tsm_forward(Ctx *ctx, const UafTsmModel *m, Tensor *video, uint64_t step, UafTsmOutput *out)
{
    if (!uaf_tsm_glance(ctx, m, video, step, out) || !uaf_tsm_policies(ctx, m, out) ||
        !uaf_tsm_select_focus(ctx, m, step, out))
        return false;
    Tensor *acts[1] = {out->action};
    if (!uaf_tsm_focus(ctx, m, video, out->focus_idx, acts, 1, out->glance_final, &out->focus))
        return false;
    const int64_t B = out->B, C = m->cfg.num_classes;
    Tensor *e[2] = {op_reshape(ctx, out->glance_avg, 3, (int64_t[]){B, 1, C}),
                    op_reshape(ctx, out->focus.logit, 3, (int64_t[]){B, 1, C})};
    out->exit_logits = op_concat(ctx, e, 2, 1); /* (B, 2, C) */
    return ctx_ok(ctx);
}

Tensor *uaf_tsm_random_actions(Ctx *ctx, const UafTsmModel *m, int64_t B, uint64_t step)
{
    if (!ctx_ok(ctx))
        return NULL;
    const UafTsmConfig *c = &m->cfg;
    float *a = malloc((size_t)(B * 4) * sizeof *a); /* (B, 4) */
    if (!a) {
        ctx_set_error(ctx, "uaf_tsm_random_actions: out of memory");
        return NULL;
    }
    /* the official (P − 96)/(224 − 96), with the configured limits */
    float size = (float)(((double)c->patch_size - c->box_min) / ((double)c->box_max - c->box_min));
    size = size < 0.0f ? 0.0f : size > 1.0f ? 1.0f : size;
    for (int64_t b = 0; b < B; b++) {
        RngStream s = frame_sampler_stream(ctx->seed, b, FRAME_SAMPLER_SLOT_RANDOM_PATCH, step);
        a[b * 4 + 0] = rng_uniform(&s, 0);
        a[b * 4 + 1] = rng_uniform(&s, 1);
        a[b * 4 + 2] = a[b * 4 + 3] = size;
    }
    Tensor *t = f32_from_host(ctx, 2, (int64_t[]){B, 4}, a);
    free(a);
    return t;
}

bool uaf_tsm_train_loss(Ctx *ctx, const UafTsmModel *m, Tensor *video, const int32_t *labels, uint64_t step,
                        float norm_ratio, int mc_samples, UafTsmLoss *out)
{
    memset(out, 0, sizeof *out);
    UafTsmOutput o;
    if (!uaf_tsm_glance(ctx, m, video, step, &o) || !uaf_tsm_policies(ctx, m, &o) ||
        !uaf_tsm_select_focus(ctx, m, step, &o))
        return false;
    const int64_t B = o.B, G = m->cfg.glance;
    /* [random boxes, policy boxes]: the official torch.cat([patches_1, patches_2]) */
    Tensor *acts[2] = {uaf_tsm_random_actions(ctx, m, B, step), o.action};
    UafTsmFocusOutput sets[2];
    if (!uaf_tsm_focus(ctx, m, video, o.focus_idx, acts, 2, o.glance_final, sets))
        return false;
    ctx_scope_push(ctx, "losses");
    /* temporal_sample_logits: the MC average of the detached per-frame glance (new_new_fc) logits */
    Tensor *mc = loss_mc_average(ctx, uaf_detach(ctx, o.glance_avg_frames), o.temporal.weights, loss_mc_rounds((int)G),
                                 mc_samples, step);
    /* action_3: the spatial policy run again on the detached maps (its batch norms update twice, as
     * there), attached: the feature-crop loss and the box regulariser train the policy */
    Tensor *a3 = policy_spatial_forward(ctx, &m->spatial, uaf_detach(ctx, o.glance_features)); /* (B, 1, 4) */
    Tensor *sp = loss_feature_crop_logits(ctx, o.glance_features, uaf_repeat_action(ctx, WHO, op_reshape(ctx, a3, 2,
                                          (int64_t[]){B, 4}), G), &m->feature_box, m->aux_fc.weight, m->aux_fc.bias);
    /* main.py's total is uaf_loss_total's with one row per video in every term */
    UafLossInputs li = {.n_sets = 2,
                        .step_logits = {sets[0].logit, sets[1].logit},
                        .local_logits = {sets[0].local_avg, sets[1].local_avg},
                        .glance_logits = o.glance_avg,
                        .temporal_logits = mc,
                        .spatial_logits = sp,
                        .glance_actions = a3};
    UafLossTerms t;
    bool ok = ctx_ok(ctx) && uaf_loss_total(ctx, &li, labels, (int)B, norm_ratio, &t);
    ctx_scope_pop(ctx);
    if (!ok)
        return false;
    *out = (UafTsmLoss){.total = t.total, .total_value = t.total_value, .cat = t.cat, .global = t.global,
                        .local = t.local, .temporal = t.temporal, .spatial = t.spatial, .norm = t.norm};
    return true;
}

/* ---- cost ------------------------------------------------------------------------------------- */

bool uaf_tsm_flops(const UafTsmConfig *cfg, UafTsmFlops *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    UafTsmModel *m = uaf_tsm_create(cfg, BACKEND_META, false, err, err_cap);
    if (!m)
        return false;
    Ctx *ctx = ctx_create(BACKEND_META, 0);
    if (!ctx) {
        uaf_tsm_destroy(m);
        snprintf(err, err_cap, "uniadafocus-tsm flops: out of memory");
        return false;
    }
    const int G = cfg->glance, K = cfg->focus, S = cfg->frame_size, P = cfg->patch_size;
    const int64_t h = m->feat_side;
    BackboneOutput bo;
    TemporalPolicyOutput to;
    Tensor *fl, *al;
    /* Each component's own code on its unit of work (the official constants' units). The TSM shift
     * needs whole clips: a clip of G frames (K patches) counted, then divided (MACs are per frame). */
    mobilenet_v2_forward(ctx, m->global_cnn, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){G, 3, S, S}), &bo);
    out->glance_backbone = uaf_take_macs(ctx) / G;
    tsn_heads(ctx, &m->global_heads, tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, m->global_dim}), 1, 1, 0.0f, NULL,
              NULL, NULL, &fl, &al);
    out->glance_heads = uaf_take_macs(ctx);
    policy_spatial_forward(ctx, &m->spatial, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){G, m->global_dim, h, h}));
    out->spatial_policy = uaf_take_macs(ctx);
    policy_temporal_forward(ctx, &m->temporal, tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){G, m->global_dim}), &to);
    out->temporal_policy = uaf_take_macs(ctx);
    resnet_forward(ctx, m->local_cnn, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){K, 3, P, P}), &bo);
    out->local_backbone = uaf_take_macs(ctx) / K;
    tsn_heads(ctx, &m->local_heads, tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, m->local_dim}), 1, 1, 0.0f, NULL,
              NULL, NULL, &fl, &al);
    out->local_heads = uaf_take_macs(ctx);
    bool ok = ctx_ok(ctx);
    if (!ok)
        snprintf(err, err_cap, "uniadafocus-tsm flops: %s", ctx_error_message(ctx));
    ctx_destroy(ctx);
    uaf_tsm_destroy(m);
    if (!ok)
        return false;
    /* ops/early_exit_uni_adafocus_tsm.py get_flops: [flops[0], flops[K]] */
    out->glance_frame = out->glance_backbone + out->glance_heads;
    out->local_patch = out->local_backbone + out->local_heads;
    out->global_cnn = G * out->glance_frame;
    out->local_cnn = K * out->local_patch;
    out->exit[0] = out->global_cnn;
    out->exit[1] = out->global_cnn + out->spatial_policy + out->temporal_policy + out->local_cnn;
    out->total = out->exit[1];
    return true;
}
