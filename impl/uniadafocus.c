/* uniadafocus.c — see uniadafocus.h. */
#include "impl/uniadafocus.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/frame_sampler.h"
#include "impl/init.h"
#include "kernels/backend.h"
#include "kernels/device.h"
#include "kernels/ops.h"

static const char WHO[] = "uniadafocus"; /* in error messages */

/* ---- configuration -------------------------------------------------------------------------- */

bool uaf_config_check(const UafConfig *c, char *err, size_t err_cap)
{
    if (!frame_sampler_check(c->frames, c->glance, c->focus, err, err_cap))
        return false;
    if (c->focus > UAF_MAX_FOCUS) {
        snprintf(err, err_cap, "focus = %d frames: at most %d supported", c->focus, UAF_MAX_FOCUS);
        return false;
    }
    if (c->frame_size < 32 || c->frame_size % 32 != 0) {
        snprintf(err, err_cap, "frame size S = %d must be a positive multiple of 32 (the glance feature map is S/32, "
                 "as the official code asserts)", c->frame_size);
        return false;
    }
    if (c->patch_size < 32) {
        snprintf(err, err_cap, "patch size P = %d must be >= 32 (the spatial loss crops P/32 feature cells)",
                 c->patch_size);
        return false;
    }
    if (!(c->box_min > 0.0f && c->box_min <= c->box_max && c->box_max <= (float)c->frame_size)) {
        snprintf(err, err_cap, "box limits s_min = %g, s_max = %g must satisfy 0 < s_min <= s_max <= S = %d",
                 (double)c->box_min, (double)c->box_max, c->frame_size);
        return false;
    }
    if (c->spatial_hidden < 1 || c->temporal_hidden < 1 || c->mlp_width < 1 || c->num_classes < 1) {
        snprintf(err, err_cap, "spatial-hidden %d, temporal-hidden %d, mlp-width %d and classes %d must all be >= 1",
                 c->spatial_hidden, c->temporal_hidden, c->mlp_width, c->num_classes);
        return false;
    }
    if (!(c->glance_width_mult > 0.0 && c->glance_width_mult <= 16.0) || c->local_base_width < 1 ||
        c->backbone_fc_classes < 0) {
        snprintf(err, err_cap, "glance width %g must be in (0, 16], local base width %d >= 1, backbone fc classes "
                 "%d >= 0", c->glance_width_mult, c->local_base_width, c->backbone_fc_classes);
        return false;
    }
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f && c->fc_dropout >= 0.0f && c->fc_dropout < 1.0f) ||
        !(c->temperature > 0.0f && isfinite(c->temperature))) {
        snprintf(err, err_cap, "dropout %g and fc-dropout %g must be in [0, 1), temperature %g > 0", (double)c->dropout,
                 (double)c->fc_dropout, (double)c->temperature);
        return false;
    }
    return true;
}

/* ---- model ---------------------------------------------------------------------------------- */

/* An unused head of the official state_dict: prefix.weight (out, in) and prefix.bias (out),
 * not trainable (nothing reads them, so they get no gradient and no optimizer update). */
static bool declare_unused_linear(Linear *fc, ParamSet *ps, const char *name, int in, int out, char *err,
                                  size_t err_cap)
{
    char key[BACKBONE_KEY_LEN];
    snprintf(key, sizeof key, "%s.weight", name);
    fc->weight = params_declare(ps, key, DTYPE_F32, 2, (int64_t[]){out, in}, false);
    snprintf(key, sizeof key, "%s.bias", name);
    fc->bias = fc->weight ? params_declare(ps, key, DTYPE_F32, 1, (int64_t[]){out}, false) : NULL;
    if (!fc->bias)
        snprintf(err, err_cap, "cannot declare %s (duplicate name)", name);
    return fc->bias != NULL;
}

UafModel *uaf_create(const UafConfig *cfg, BackendKind backend, bool with_grads, char *err, size_t err_cap)
{
    if (!uaf_config_check(cfg, err, err_cap))
        return NULL;
    UafModel *m = calloc(1, sizeof *m);
    if (!m || !(m->ps = params_create())) {
        free(m);
        snprintf(err, err_cap, "uniadafocus: out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    ParamSet *ps = m->ps;
    const int C = cfg->num_classes;

    /* Declared in the official state_dict's order. */
    MobileNetV2Config gc = mobilenet_v2_config_default();
    gc.width_mult = cfg->glance_width_mult;
    gc.num_classes = 0; /* its ImageNet head is declared below, unused */
    gc.dropout = 0.0f;
    gc.keys = MOBILENET_V2_KEYS_OFFICIAL;
    gc.prefix = "global_CNN.";
    if (!(m->global_cnn = mobilenet_v2_create(&gc, ps, err, err_cap)))
        goto fail;
    m->global_dim = m->global_cnn->last_width;
    m->feat_side = cfg->frame_size / 32;
    if (cfg->backbone_fc_classes > 0 && !declare_unused_linear(&m->global_imagenet, ps, "global_CNN.classifier",
                                                               m->global_dim, cfg->backbone_fc_classes, err, err_cap))
        goto fail;
    if (!linear_declare(&m->global_fc, ps, NULL, "global_CNN_fc.1", m->global_dim, C, err, err_cap) ||
        !linear_declare(&m->aux_fc, ps, NULL, "aux_fc", m->global_dim, C, err, err_cap))
        goto fail;

    ResNetConfig lc = resnet_config_default();
    lc.depth = cfg->local_depth;
    lc.base_width = cfg->local_base_width;
    lc.num_classes = 0;
    lc.prefix = "local_CNN.";
    if (!(m->local_cnn = resnet_create(&lc, ps, err, err_cap)))
        goto fail;
    m->local_dim = m->local_cnn->feature_dim;
    if (cfg->backbone_fc_classes > 0 && !declare_unused_linear(&m->local_imagenet, ps, "local_CNN.fc", m->local_dim,
                                                               cfg->backbone_fc_classes, err, err_cap))
        goto fail;
    if (!linear_declare(&m->local_fc, ps, NULL, "local_CNN_fc.1", m->local_dim, C, err, err_cap))
        goto fail;

    SpatialPolicyConfig sc = {.in_channels = m->global_dim, .hidden = cfg->spatial_hidden, .glance = cfg->glance,
                              .feat_side = m->feat_side};
    TemporalPolicyConfig tc = {.in_channels = m->global_dim, .hidden = cfg->temporal_hidden, .glance = cfg->glance,
                               .temperature = cfg->temperature};
    ExitClassifierConfig ec = {.global_dim = m->global_dim, .local_dim = m->local_dim, .width = cfg->mlp_width,
                               .glance = cfg->glance, .focus = cfg->focus, .classes = C, .dropout = cfg->dropout};
    if (!policy_spatial_declare(&m->spatial, &sc, ps, "spatial_policy.", err, err_cap) ||
        !policy_temporal_declare(&m->temporal, &tc, ps, "temporal_policy.", err, err_cap) ||
        !exit_classifier_declare(&m->classifier, &ec, ps, "classifier.", err, err_cap))
        goto fail;
    m->pixel_box = patch_box_geom_pixels(cfg->frame_size, cfg->patch_size, cfg->box_min, cfg->box_max);
    m->feature_box = patch_box_geom_features(m->feat_side, cfg->patch_size, cfg->box_min, cfg->box_max);
    if (!params_allocate(ps, backend, with_grads, err, err_cap))
        goto fail;
    return m;
fail:
    uaf_destroy(m);
    return NULL;
}

void uaf_destroy(UafModel *m)
{
    if (!m)
        return;
    mobilenet_v2_destroy(m->global_cnn);
    resnet_destroy(m->local_cnn);
    exit_classifier_destroy(&m->classifier);
    params_destroy(m->ps);
    free(m);
}

void uaf_init(UafModel *m, uint64_t seed)
{
    mobilenet_v2_init(m->global_cnn, seed);
    resnet_init(m->local_cnn, seed);
    if (m->global_imagenet.weight) /* the official MobileNetV2 _initialize_weights: normal(0, 0.01), bias 0 */
        init_linear_normal(&m->global_imagenet, seed, 0.01f);
    if (m->local_imagenet.weight) /* torchvision leaves ResNet's fc at nn.Linear's default */
        init_linear_default(&m->local_imagenet, seed);
    init_linear_default(&m->global_fc, seed);
    init_linear_default(&m->aux_fc, seed);
    init_linear_default(&m->local_fc, seed);
    policy_spatial_init(&m->spatial, seed);
    policy_temporal_init(&m->temporal, seed);
    exit_classifier_init(&m->classifier, seed);
}

bool uaf_fold_batch_norm(Ctx *ctx, UafModel *m)
{
    return mobilenet_v2_fold_batch_norm(ctx, m->global_cnn) && resnet_fold_batch_norm(ctx, m->local_cnn);
}

UafParamGroup uaf_param_group(const char *key)
{
    static const struct {
        const char *prefix;
        UafParamGroup group;
    } map[] = {
        {"temporal_policy.", UAF_GROUP_TEMPORAL_POLICY}, {"spatial_policy.", UAF_GROUP_SPATIAL_POLICY},
        {"global_CNN.", UAF_GROUP_GLOBAL},               {"global_CNN_fc.", UAF_GROUP_GLOBAL},
        {"aux_fc.", UAF_GROUP_GLOBAL},                   {"local_CNN.", UAF_GROUP_LOCAL},
        {"local_CNN_fc.", UAF_GROUP_LOCAL},              {"classifier.", UAF_GROUP_CLASSIFIER},
    };
    for (size_t i = 0; key && i < sizeof map / sizeof map[0]; i++)
        if (strncmp(key, map[i].prefix, strlen(map[i].prefix)) == 0)
            return map[i].group;
    return UAF_GROUP_UNKNOWN;
}

/* ---- host transfers ------------------------------------------------------------------------- */

bool uaf_read_host(Ctx *ctx, const Tensor *t, float *dst) { return run_device_to_host(ctx, t, dst); }

Tensor *uaf_index_tensor(Ctx *ctx, const int32_t *host, int64_t B, int64_t K)
{
    Tensor *t = tensor_new(ctx, DTYPE_I32, 2, (int64_t[]){B, K});
    if (!t || !t->data)
        return t; /* meta: shape only */
    if (t->backend == BACKEND_CPU)
        memcpy(t->data, host, tensor_bytes(t));
    else if (ctx->ops && ctx->ops->copy_from_host)
        ctx->ops->copy_from_host(ctx, t, host);
    else
        ctx_set_error(ctx, "uniadafocus: the %s backend cannot copy from the host", backend_name(t->backend));
    return ctx_ok(ctx) ? t : NULL;
}

Tensor *uaf_random_actions(Ctx *ctx, const UafModel *m, int64_t B, uint64_t step)
{
    if (!ctx_ok(ctx))
        return NULL;
    const UafConfig *c = &m->cfg;
    int64_t T = c->frames;
    Tensor *t = tensor_new(ctx, DTYPE_F32, 3, (int64_t[]){B, T, 4});
    if (!t || !t->data)
        return t; /* meta: shape only */
    float *a = malloc((size_t)(B * T * 4) * sizeof *a); /* (B, T, 4) on the host */
    if (!a) {
        ctx_set_error(ctx, "uaf_random_actions: out of memory");
        return NULL;
    }
    /* the official (P − 96)/(224 − 96), with the configured limits */
    float size = (float)(((double)c->patch_size - c->box_min) / ((double)c->box_max - c->box_min));
    for (int64_t b = 0; b < B; b++) {
        RngStream s = frame_sampler_stream(ctx->seed, b, FRAME_SAMPLER_SLOT_RANDOM_PATCH, step);
        for (int64_t j = 0; j < T; j++) {
            float *aj = a + (b * T + j) * 4;
            aj[0] = rng_uniform(&s, (uint64_t)(2 * j));
            aj[1] = rng_uniform(&s, (uint64_t)(2 * j + 1));
            aj[2] = aj[3] = size;
        }
    }
    if (t->backend == BACKEND_CPU)
        memcpy(t->data, a, tensor_bytes(t));
    else if (ctx->ops && ctx->ops->copy_from_host)
        ctx->ops->copy_from_host(ctx, t, a);
    else
        ctx_set_error(ctx, "uaf_random_actions: the %s backend cannot copy from the host", backend_name(t->backend));
    free(a);
    return ctx_ok(ctx) ? t : NULL;
}

Tensor *uaf_detach(Ctx *ctx, Tensor *t)
{
    return t ? tensor_view(ctx, t, t->ndim, t->shape) : NULL;
}

void *uaf_host_alloc(Ctx *ctx, const char *who, size_t bytes)
{
    void *p = arena_alloc(&ctx->host, bytes);
    if (!p)
        ctx_set_error(ctx, "%s: the host arena is frozen and full (%zu bytes of per-pass host data)", who, bytes);
    return p;
}

/* ---- the forward pass --------------------------------------------------------------------------- */

bool uaf_check_video(Ctx *ctx, const char *who, const Tensor *video, int frames, int size)
{
    if (!ctx_ok(ctx))
        return false;
    if (!video || video->dtype != DTYPE_F32 || video->ndim != 5 || video->shape[0] < 1 || video->shape[1] != frames ||
        video->shape[2] != 3 || video->shape[3] != size || video->shape[4] != size) {
        char s[96] = "NULL";
        if (video)
            tensor_shape_str(video, s, sizeof s);
        ctx_set_error(ctx, "%s: the video must be f32 (B, T = %d, 3, S = %d, S = %d) normalised frames, got %s%s%s",
                      who, frames, size, size, video ? dtype_name(video->dtype) : "", video ? " " : "", s);
        return false;
    }
    return true;
}

Tensor *uaf_gather_frames(Ctx *ctx, Tensor *video, Tensor *idx)
{
    Tensor *f = op_gather_rows(ctx, video, idx); /* (B, K, 3, S, S) */
    if (!f)
        return NULL;
    return op_reshape(ctx, f, 4, (int64_t[]){f->shape[0] * f->shape[1], 3, f->shape[3], f->shape[4]});
}

Tensor *uaf_repeat_action(Ctx *ctx, const char *who, Tensor *a, int64_t K)
{
    if (!ctx_ok(ctx) || !a)
        return NULL;
    const int64_t B = a->shape[0];
    int32_t *zeros = uaf_host_alloc(ctx, who, (size_t)(B * K) * sizeof *zeros); /* (B, K) */
    if (!zeros)
        return NULL;
    memset(zeros, 0, (size_t)(B * K) * sizeof *zeros);
    return op_gather_rows(ctx, op_reshape(ctx, a, 3, (int64_t[]){B, 1, 4}), uaf_index_tensor(ctx, zeros, B, K));
}

static const UafForwardOptions NO_OPTIONS = {0};

bool uaf_glance(Ctx *ctx, const UafModel *m, Tensor *video, const UafForwardOptions *opt, UafOutput *out)
{
    memset(out, 0, sizeof *out);
    opt = opt ? opt : &NO_OPTIONS;
    if (!uaf_check_video(ctx, WHO, video, m->cfg.frames, m->cfg.frame_size))
        return false;
    const UafConfig *c = &m->cfg;
    int B = (int)video->shape[0], G = c->glance;
    out->B = B;
    out->glance_idx_host = uaf_host_alloc(ctx, WHO, (size_t)B * G * sizeof(int32_t)); /* (B, G) */
    if (!out->glance_idx_host)
        return false;
    frame_sampler_glance(B, c->frames, G, ctx->training, ctx->seed, opt->step, out->glance_idx_host);
    out->glance_idx = uaf_index_tensor(ctx, out->glance_idx_host, B, G);
    Tensor *frames = uaf_gather_frames(ctx, video, out->glance_idx); /* (B·G, 3, S, S) */
    BackboneOutput g;
    ctx_scope_push(ctx, "glance");
    bool ok = frames && mobilenet_v2_forward(ctx, m->global_cnn, frames, &g);
    ctx_scope_pop(ctx);
    if (!ok)
        return false;
    out->glance_features = g.features;
    out->glance_pooled = g.pooled;
    if (opt->aux_logits || ctx->training) {
        ctx_scope_push(ctx, "aux_heads");
        Tensor *p = c->fc_dropout > 0.0f ? op_dropout(ctx, g.pooled, c->fc_dropout) : g.pooled;
        out->glance_logits = op_linear(ctx, p, m->global_fc.weight, m->global_fc.bias); /* (B·G, C) */
        ctx_scope_pop(ctx);
    }
    return ctx_ok(ctx);
}

bool uaf_policies(Ctx *ctx, const UafModel *m, UafOutput *out)
{
    if (!ctx_ok(ctx))
        return false;
    if (!out->glance_features || !out->glance_pooled) {
        ctx_set_error(ctx, "uaf_policies: run uaf_glance first (no glance features)");
        return false;
    }
    /* The policies read the glance outputs with their gradients stopped, as the official
     * global_feat_map.detach() / global_feat.detach() */
    ctx_scope_push(ctx, "spatial_policy");
    Tensor *a = policy_spatial_forward(ctx, &m->spatial, uaf_detach(ctx, out->glance_features)); /* (B, G, 4) */
    ctx_scope_pop(ctx);
    out->glance_actions = a;
    /* (B, G, 4) → (B, 4, G) → linear interpolation to T → (B, T, 4) */
    Tensor *at = op_interp_time(ctx, op_permute(ctx, a, (int[]){0, 2, 1}), m->cfg.frames);
    out->actions = op_permute(ctx, at, (int[]){0, 2, 1});
    ctx_scope_push(ctx, "temporal_policy");
    policy_temporal_forward(ctx, &m->temporal, uaf_detach(ctx, out->glance_pooled), &out->temporal);
    ctx_scope_pop(ctx);
    return ctx_ok(ctx);
}

/* uaf_select_focus on a backend with a device sampler (CUDA): w_T is never read to the host, so
 * the whole inference pass runs without a host synchronisation and can be captured as one CUDA
 * graph. Training thresholds do not depend on data: they are drawn on the host from the same
 * streams as frame_sampler_focus and uploaded. The indices are the host sampler's bit for bit. */
static bool select_focus_device(Ctx *ctx, const UafModel *m, const UafForwardOptions *opt, UafOutput *out)
{
    const UafConfig *c = &m->cfg;
    int B = out->B, G = c->glance, F = c->focus;
    const Tensor *w = out->temporal.weights_T;
    if (w->dtype != DTYPE_F32 || w->ndim != 2 || w->shape[0] != B || w->shape[1] != G) {
        char s[96];
        ctx_set_error(ctx, "uaf_select_focus: temporal weights must be f32 (B = %d, G = %d), got %s %s", B, G,
                      dtype_name(w->dtype), tensor_shape_str(w, s, sizeof s));
        return false;
    }
    Tensor *u = NULL; /* (B, F) stratified thresholds in training; NULL: the test thresholds (i + 0.5)/F */
    if (ctx->training) {
        float *uh = uaf_host_alloc(ctx, WHO, (size_t)B * F * sizeof *uh); /* (B, F) */
        if (!uh)
            return false;
        for (int b = 0; b < B; b++) {
            RngStream s = frame_sampler_stream(ctx->seed, b, FRAME_SAMPLER_SLOT_FOCUS, opt->step);
            frame_sampler_thresholds(F, &s, uh + (int64_t)b * F);
        }
        u = tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){B, F});
        if (!u)
            return false;
        ctx->ops->copy_from_host(ctx, u, uh);
    }
    out->focus_idx_host = NULL; /* the indices exist on the device only */
    out->focus_idx = tensor_new(ctx, DTYPE_I32, 2, (int64_t[]){B, F});
    if (!out->focus_idx)
        return false;
    ctx->ops->quantile_sample(ctx, B, G, c->frames, F, w, u, out->focus_idx);
    return ctx_ok(ctx);
}

bool uaf_select_focus(Ctx *ctx, const UafModel *m, const UafForwardOptions *opt, UafOutput *out)
{
    opt = opt ? opt : &NO_OPTIONS;
    if (!ctx_ok(ctx))
        return false;
    const UafConfig *c = &m->cfg;
    int B = out->B, G = c->glance, F = c->focus;
    if (!out->temporal.weights_T || B < 1) {
        ctx_set_error(ctx, "uaf_select_focus: run uaf_glance and uaf_policies first (no temporal weights)");
        return false;
    }
    if (out->temporal.weights_T->data && out->temporal.weights_T->backend != BACKEND_CPU && ctx->ops &&
        ctx->ops->quantile_sample && ctx->ops->copy_from_host)
        return select_focus_device(ctx, m, opt, out);
    float *w = malloc((size_t)B * G * sizeof *w); /* (B, G) w_T on the host */
    out->focus_idx_host = uaf_host_alloc(ctx, WHO, (size_t)B * F * sizeof(int32_t)); /* (B, F) */
    if (!w || !out->focus_idx_host) {
        free(w);
        if (ctx_ok(ctx))
            ctx_set_error(ctx, "uaf_select_focus: out of memory");
        return false;
    }
    if (!uaf_read_host(ctx, out->temporal.weights_T, w)) {
        if (!ctx_ok(ctx)) {
            free(w);
            return false;
        }
        for (int64_t i = 0; i < (int64_t)B * G; i++) /* meta: no data; any valid choice costs the same */
            w[i] = 1.0f / (float)G;
    }
    char err[256];
    bool ok = frame_sampler_focus(w, B, G, c->frames, F, ctx->training, ctx->seed, opt->step, out->focus_idx_host,
                                  err, sizeof err);
    free(w);
    if (!ok) {
        ctx_set_error(ctx, "uaf_select_focus: %s", err);
        return false;
    }
    out->focus_idx = uaf_index_tensor(ctx, out->focus_idx_host, B, F);
    return ctx_ok(ctx);
}

bool uaf_focus(Ctx *ctx, const UafModel *m, Tensor *video, Tensor *focus_idx, Tensor *const *actions_T, int n_sets,
               Tensor *glance_pooled, const UafForwardOptions *opt, UafFocusOutput *outs)
{
    opt = opt ? opt : &NO_OPTIONS;
    if (n_sets >= 1)
        memset(outs, 0, (size_t)n_sets * sizeof *outs);
    if (!uaf_check_video(ctx, WHO, video, m->cfg.frames, m->cfg.frame_size))
        return false;
    const UafConfig *c = &m->cfg;
    int64_t B = video->shape[0], T = c->frames, F = c->focus;
    if (n_sets < 1 || n_sets > 8 || !focus_idx || focus_idx->ndim != 2 || focus_idx->shape[0] != B ||
        focus_idx->shape[1] != F) {
        char s[96] = "NULL";
        if (focus_idx)
            tensor_shape_str(focus_idx, s, sizeof s);
        ctx_set_error(ctx, "uaf_focus: need 1 to 8 patch sets and focus indices (B = %lld, F = %lld), got %d sets and %s",
                      (long long)B, (long long)F, n_sets, s);
        return false;
    }
    for (int s = 0; s < n_sets; s++) {
        const Tensor *a = actions_T[s];
        if (!a || a->ndim != 3 || a->shape[0] != B || a->shape[1] != T || a->shape[2] != 4) {
            char sa[96] = "NULL";
            if (a)
                tensor_shape_str(a, sa, sizeof sa);
            ctx_set_error(ctx, "uaf_focus: actions of patch set %d must be (B = %lld, T = %lld, 4), got %s", s,
                          (long long)B, (long long)T, sa);
            return false;
        }
    }
    int64_t BF = B * F;
    Tensor *frames = uaf_gather_frames(ctx, video, focus_idx); /* (B·F, 3, S, S) */
    Tensor *patch_sets[8] = {NULL};
    for (int s = 0; s < n_sets; s++) {
        /* The official local_actions.detach(): the pixel crop sends no gradient to the policy. */
        Tensor *a = op_gather_rows(ctx, uaf_detach(ctx, actions_T[s]), focus_idx); /* (B, F, 4) */
        Tensor *a2 = op_reshape(ctx, a, 2, (int64_t[]){BF, 4});
        outs[s].actions = a;
        Tensor *boxes = patch_box_boxes(ctx, a2, &m->pixel_box);
        outs[s].boxes = op_reshape(ctx, boxes, 3, (int64_t[]){B, F, 4});
        outs[s].theta = patch_box_theta(ctx, a2, &m->pixel_box);                  /* (B·F, 2, 3) */
        patch_sets[s] = op_patch_crop(ctx, frames, outs[s].theta, c->patch_size); /* (B·F, 3, P, P) */
        outs[s].patches = patch_sets[s];
    }
    Tensor *patches = n_sets == 1 ? patch_sets[0] : op_concat(ctx, patch_sets, n_sets, 0); /* (n·B·F, 3, P, P) */
    BackboneOutput l;
    ctx_scope_push(ctx, "focus");
    bool ok = patches && resnet_forward(ctx, m->local_cnn, patches, &l);
    ctx_scope_pop(ctx);
    if (!ok)
        return false;
    Tensor *local_logits = NULL; /* (n·B·F, C) */
    if (opt->aux_logits || ctx->training) {
        ctx_scope_push(ctx, "aux_heads");
        Tensor *p = c->fc_dropout > 0.0f ? op_dropout(ctx, l.pooled, c->fc_dropout) : l.pooled;
        local_logits = op_linear(ctx, p, m->local_fc.weight, m->local_fc.bias);
        ctx_scope_pop(ctx);
    }
    for (int s = 0; s < n_sets && ctx_ok(ctx); s++) {
        outs[s].local_pooled = n_sets == 1 ? l.pooled : op_slice(ctx, l.pooled, 0, s * BF, BF); /* (B·F, D_l) */
        if (local_logits)
            outs[s].local_logits = n_sets == 1 ? local_logits : op_slice(ctx, local_logits, 0, s * BF, BF);
        ctx_scope_push(ctx, "classifier");
        exit_classifier_forward(ctx, &m->classifier, glance_pooled, outs[s].local_pooled, &outs[s].cls);
        ctx_scope_pop(ctx);
    }
    return ctx_ok(ctx);
}

Tensor *uaf_spatial_aux_logits(Ctx *ctx, const UafModel *m, Tensor *glance_features, Tensor *glance_actions)
{
    if (!ctx_ok(ctx))
        return NULL;
    if (!glance_features || !glance_actions || glance_actions->ndim != 3 || glance_actions->shape[2] != 4 ||
        glance_features->ndim != 4 || glance_features->shape[0] != glance_actions->shape[0] * glance_actions->shape[1]) {
        ctx_set_error(ctx, "uaf_spatial_aux_logits: need glance maps (B·G, D, h, w) and actions (B, G, 4)");
        return NULL;
    }
    int64_t B = glance_actions->shape[0], G = glance_actions->shape[1], D = glance_features->shape[1];
    int p = m->feature_box.out_size;
    ctx_scope_push(ctx, "spatial_aux");
    Tensor *a = op_reshape(ctx, glance_actions, 2, (int64_t[]){B * G, 4});
    Tensor *crop = patch_box_crop(ctx, uaf_detach(ctx, glance_features), a, &m->feature_box); /* (B·G, D, p, p) */
    Tensor *v = op_reshape(ctx, crop, 5, (int64_t[]){B, G, D, p, p});
    /* the official mean over dims [1, 3, 4]: frames and space */
    v = op_mean(ctx, op_mean(ctx, op_mean(ctx, v, 4), 3), 1); /* (B, D) */
    Tensor *logits = op_linear(ctx, v, m->aux_fc.weight, m->aux_fc.bias);
    ctx_scope_pop(ctx);
    return logits;
}

bool uaf_forward(Ctx *ctx, const UafModel *m, Tensor *video, const UafForwardOptions *opt, UafOutput *out)
{
    if (!uaf_glance(ctx, m, video, opt, out) || !uaf_policies(ctx, m, out) || !uaf_select_focus(ctx, m, opt, out))
        return false;
    Tensor *acts[1] = {out->actions};
    return uaf_focus(ctx, m, video, out->focus_idx, acts, 1, out->glance_pooled, opt, &out->focus);
}

/* ---- cost ------------------------------------------------------------------------------------- */

double uaf_take_macs(Ctx *ctx)
{
    double v = ctx_total_macs(ctx);
    ctx_reset_counters(ctx);
    ctx_begin_pass(ctx);
    return v;
}

bool uaf_flops(const UafConfig *cfg, UafFlops *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    UafModel *m = uaf_create(cfg, BACKEND_META, false, err, err_cap);
    if (!m)
        return false;
    Ctx *ctx = ctx_create(BACKEND_META, 0);
    if (!ctx) {
        uaf_destroy(m);
        snprintf(err, err_cap, "uniadafocus flops: out of memory");
        return false;
    }
    const int G = cfg->glance, F = cfg->focus, S = cfg->frame_size, P = cfg->patch_size, W = cfg->mlp_width;
    const int64_t h = m->feat_side;
    BackboneOutput bo;
    TemporalPolicyOutput to;
    /* Each component's own code, on its unit of work (the official constants' units). */
    mobilenet_v2_forward(ctx, m->global_cnn, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){1, 3, S, S}), &bo);
    out->glance_frame = uaf_take_macs(ctx);
    policy_spatial_forward(ctx, &m->spatial, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){G, m->global_dim, h, h}));
    out->spatial_policy = uaf_take_macs(ctx);
    policy_temporal_forward(ctx, &m->temporal, tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){G, m->global_dim}), &to);
    out->temporal_policy = uaf_take_macs(ctx);
    resnet_forward(ctx, m->local_cnn, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){1, 3, P, P}), &bo);
    out->local_patch = uaf_take_macs(ctx);
    const ExitClassifier *ec = &m->classifier;
    exit_classifier_mlp(ctx, &ec->global_mlp, tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, m->global_dim}));
    out->global_mlp_frame = uaf_take_macs(ctx);
    exit_classifier_mlp(ctx, &ec->local_mlp, tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, m->local_dim}));
    out->local_mlp_frame = uaf_take_macs(ctx);
    exit_classifier_head(ctx, ec, &ec->global_heads[0], tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, W}));
    out->global_head = uaf_take_macs(ctx);
    exit_classifier_head(ctx, ec, &ec->local_heads[0], tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, 2 * W}));
    out->local_head = uaf_take_macs(ctx);
    bool ok = ctx_ok(ctx);
    if (!ok)
        snprintf(err, err_cap, "uniadafocus flops: %s", ctx_error_message(ctx));
    ctx_destroy(ctx);
    uaf_destroy(m);
    if (!ok)
        return false;

    /* The official get_flops composition (ops/early_exit_uni_adafocus.py), in MACs. */
    out->global_cnn = G * out->glance_frame;
    out->n_exits = F + 1;
    for (int k = 0; k <= F; k++) {
        double policies = k > 0 ? out->spatial_policy + out->temporal_policy : 0.0;
        double cls = G * (out->global_mlp_frame + out->global_head) + k * (out->local_mlp_frame + out->local_head);
        out->exit[k] = out->global_cnn + policies + k * out->local_patch + cls;
    }
    out->classifier = G * (out->global_mlp_frame + out->global_head) + F * (out->local_mlp_frame + out->local_head);
    out->total = out->exit[F];
    return true;
}
