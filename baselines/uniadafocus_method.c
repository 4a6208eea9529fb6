/* uniadafocus_method.c — see uniadafocus_method.h. */
#include "baselines/uniadafocus_method.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/frame_sampler.h"
#include "impl/losses.h"
#include "kernels/backend.h"
#include "kernels/ops.h"

/* ---- variants --------------------------------------------------------------------------------- */

const char *uaf_variant_id(UafVariant v)
{
    switch (v) {
    case UAF_VARIANT_FULL: return "uniadafocus";
    case UAF_VARIANT_UNIFORM: return "uniadafocus-uniform";
    case UAF_VARIANT_CENTRE: return "uniadafocus-centre";
    case UAF_VARIANT_RANDOMBOX: return "uniadafocus-randombox";
    case UAF_VARIANT_NOEXIT: return "uniadafocus-noexit";
    }
    return "uniadafocus";
}

static bool uses_spatial_policy(UafVariant v) { return v != UAF_VARIANT_CENTRE && v != UAF_VARIANT_RANDOMBOX; }
static bool uses_temporal_policy(UafVariant v) { return v != UAF_VARIANT_UNIFORM; }

bool uaf_variant_flops(const UafConfig *cfg, UafVariant v, double *exit_macs, int *n_exits, char *err,
                       size_t err_cap)
{
    UafFlops f;
    if (!uaf_flops(cfg, &f, err, err_cap))
        return false;
    const int G = cfg->glance, F = cfg->focus;
    double policies = (uses_spatial_policy(v) ? f.spatial_policy : 0.0) + (uses_temporal_policy(v) ? f.temporal_policy : 0.0);
    for (int k = 0; k <= F; k++) {
        double cls = G * (f.global_mlp_frame + f.global_head) + k * (f.local_mlp_frame + f.local_head);
        exit_macs[k] = f.global_cnn + (k > 0 ? policies : 0.0) + k * f.local_patch + cls;
    }
    if (v == UAF_VARIANT_NOEXIT) {
        exit_macs[0] = exit_macs[F];
        *n_exits = 1;
    } else {
        *n_exits = F + 1;
    }
    return true;
}

/* (B, T, 4) actions from host values. */
static Tensor *actions_from_host(Ctx *ctx, const float *a, int64_t B, int64_t T)
{
    return bl_from_host(ctx, DTYPE_F32, 3, (int64_t[]){B, T, 4}, a);
}

Tensor *uaf_centre_actions(Ctx *ctx, const UafModel *m, int64_t B)
{
    if (!ctx_ok(ctx))
        return NULL;
    const UafConfig *c = &m->cfg;
    const int64_t T = c->frames;
    double size = c->box_max > c->box_min ? ((double)c->patch_size - c->box_min) / ((double)c->box_max - c->box_min)
                                          : 0.0;
    float s = (float)(size < 0.0 ? 0.0 : size > 1.0 ? 1.0 : size);
    float *a = malloc((size_t)(B * T * 4) * sizeof *a); /* (B, T, 4) */
    if (!a) {
        ctx_set_error(ctx, "uniadafocus: out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < B * T; i++) {
        a[i * 4 + 0] = 0.5f;
        a[i * 4 + 1] = 0.5f;
        a[i * 4 + 2] = s;
        a[i * 4 + 3] = s;
    }
    Tensor *t = actions_from_host(ctx, a, B, T);
    free(a);
    return t;
}

/* ---- presets ---------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    UafVariant variant;
    const char *base;       /* impl/presets.h */
    MethodOverrides adjust; /* applied to the base: the unit-test sizes */
    const char *description;
} UafMethodPreset;

/* The smallest model the training losses accept: G >= 3 (the MC loss's floor(G/3) rounds), T/G >= 2,
 * S a multiple of 32, P >= 32. */
#define TINY {.frames = 6, .glance = 3, .focus = 3, .frame_size = 32, .patch_size = 32, .classes = 5}
#define NONE {0}

static const UafMethodPreset PRESETS[] = {
    {"uniadafocus-actnet-p96", UAF_VARIANT_FULL, "actnet-p96", NONE, "Uni-AdaFocus, ActivityNet, 96x96 patches (paper: 17.9 GFLOPs)"},
    {"uniadafocus-actnet-p128", UAF_VARIANT_FULL, "actnet-p128", NONE,
     "Uni-AdaFocus, ActivityNet, 128x128 patches (paper: 27.2 GFLOPs, 80.7 mAP)"},
    {"uniadafocus-actnet-p160", UAF_VARIANT_FULL, "actnet-p160", NONE, "Uni-AdaFocus, ActivityNet, 160x160 patches (paper: 39.2 GFLOPs)"},
    {"uniadafocus-actnet-p192", UAF_VARIANT_FULL, "actnet-p192", NONE, "Uni-AdaFocus, ActivityNet, 192x192 patches (paper: 53.9 GFLOPs)"},
    {"uniadafocus-fcvid-p128", UAF_VARIANT_FULL, "fcvid-p128", NONE, "Uni-AdaFocus, FCVID, 128x128 patches (paper: 27.2 GFLOPs, 86.4 mAP)"},
    {"uniadafocus-minik-p128", UAF_VARIANT_FULL, "minik-p128", NONE,
     "Uni-AdaFocus, Mini-Kinetics, 128x128 patches (paper: 27.2 GFLOPs, 75.8 top-1)"},
    {"uniadafocus-synth-tiny", UAF_VARIANT_FULL, "synth-tiny", NONE, "Uni-AdaFocus on the synthetic benchmark (synth-tiny)"},
    {"uniadafocus-synth-small", UAF_VARIANT_FULL, "synth-small", NONE, "Uni-AdaFocus on the synthetic benchmark (synth-small)"},
    {"uniadafocus-tiny", UAF_VARIANT_FULL, "synth-tiny", TINY, "unit-test size: T 6, G 3, F 3, 32-pixel frames, 5 classes"},
#define ABLATION(v, id, what)                                                                                     \
    {"uniadafocus-" id "-actnet-p128", v, "actnet-p128", NONE, "ablation, " what ", ActivityNet P = 128"},       \
    {"uniadafocus-" id "-synth-tiny", v, "synth-tiny", NONE, "ablation, " what ", synth-tiny"},                  \
    {"uniadafocus-" id "-synth-small", v, "synth-small", NONE, "ablation, " what ", synth-small"},               \
    {"uniadafocus-" id "-tiny", v, "synth-tiny", TINY, "ablation, " what ", unit-test size"}
    ABLATION(UAF_VARIANT_UNIFORM, "uniform", "uniform focus frames instead of the temporal policy"),
    ABLATION(UAF_VARIANT_CENTRE, "centre", "centre box instead of the spatial policy"),
    ABLATION(UAF_VARIANT_RANDOMBOX, "randombox", "random box instead of the spatial policy"),
    ABLATION(UAF_VARIANT_NOEXIT, "noexit", "no conditional exit (one exit)"),
#undef ABLATION
};
enum { N_PRESETS = (int)(sizeof PRESETS / sizeof PRESETS[0]) };

static MethodPresetInfo INFOS[N_PRESETS];
static pthread_once_t INFOS_ONCE = PTHREAD_ONCE_INIT;

/* The public records, with each base preset's training settings (impl/presets.h). */
static void build_infos(void)
{
    for (int i = 0; i < N_PRESETS; i++) {
        const UafPreset *base = uaf_preset_find(PRESETS[i].base);
        INFOS[i].name = PRESETS[i].name;
        INFOS[i].id = uaf_variant_id(PRESETS[i].variant);
        INFOS[i].description = PRESETS[i].description;
        if (base)
            INFOS[i].train = (BaselineTrainDefaults){.lr = base->train.lr, .weight_decay = base->train.weight_decay,
                                                     .momentum = base->train.momentum,
                                                     .batch_size = base->train.batch_size,
                                                     .epochs = base->train.epochs, .grad_clip = 0};
    }
}

const MethodPresetInfo *uniadafocus_preset_info(int i)
{
    pthread_once(&INFOS_ONCE, build_infos);
    return i >= 0 && i < N_PRESETS ? &INFOS[i] : NULL;
}

static void apply_overrides(UafConfig *cfg, const MethodOverrides *ov)
{
    if (!ov)
        return;
    if (ov->frames > 0)
        cfg->frames = ov->frames;
    if (ov->glance > 0)
        cfg->glance = ov->glance;
    if (ov->focus > 0)
        cfg->focus = ov->focus;
    if (ov->frame_size > 0 && cfg->frame_size > 0) {
        /* the box limits are a fraction of the frame, as impl/presets.h's frame-size knob does */
        double r = (double)ov->frame_size / cfg->frame_size;
        cfg->box_min = (float)(cfg->box_min * r);
        cfg->box_max = (float)(cfg->box_max * r);
        cfg->frame_size = ov->frame_size;
    }
    if (ov->patch_size > 0)
        cfg->patch_size = ov->patch_size;
    if (ov->classes > 0)
        cfg->num_classes = ov->classes;
}

static const UafMethodPreset *find(const char *name)
{
    for (int i = 0; name && i < N_PRESETS; i++)
        if (strcmp(PRESETS[i].name, name) == 0)
            return &PRESETS[i];
    return NULL;
}

bool uniadafocus_preset_config(const char *name, UafConfig *cfg, UafVariant *variant)
{
    const UafMethodPreset *p = find(name);
    const UafPreset *base = p ? uaf_preset_find(p->base) : NULL;
    if (!base)
        return false;
    *cfg = base->cfg;
    apply_overrides(cfg, &p->adjust);
    *variant = p->variant;
    return true;
}

/* ---- the Method adapter ----------------------------------------------------------------------- */

typedef struct {
    UafModel *model;
    UafVariant variant;
    UafTrainDefaults train;
    double gflops[UAF_MAX_FOCUS + 1];
    /* the last forward_exits pass, for focus_boxes (tensors of that pass: valid while it is live) */
    const Ctx *last_ctx;
    uint64_t last_ops;          /* ctx->op_counter after that pass: another pass changes it */
    const Tensor *last_idx;     /* (B, F) i32 focus frames */
    const Tensor *last_boxes;   /* (B, F, 4) (y1, x1, h, w) in frame pixels */
    int32_t *idx_host;          /* (B, F) focus_boxes' copies */
    float *box_host;            /* (B, F, 4) x, y, w, h */
    int64_t host_cap;           /* B·F entries allocated */
} UafMethod;

/* Spatial policy only (the uniform ablation): glance_actions and the interpolated actions. */
static bool spatial_stage(Ctx *ctx, const UafModel *m, UafOutput *out)
{
    ctx_scope_push(ctx, "spatial_policy");
    Tensor *a = policy_spatial_forward(ctx, &m->spatial, bl_detach(ctx, out->glance_features)); /* (B, G, 4) */
    ctx_scope_pop(ctx);
    out->glance_actions = a;
    Tensor *at = op_interp_time(ctx, op_permute(ctx, a, (int[]){0, 2, 1}), m->cfg.frames);
    out->actions = op_permute(ctx, at, (int[]){0, 2, 1}); /* (B, T, 4) */
    return ctx_ok(ctx);
}

/* Temporal policy and focus selection (every variant but uniform). */
static bool temporal_stage(Ctx *ctx, const UafModel *m, const UafForwardOptions *opt, UafOutput *out)
{
    ctx_scope_push(ctx, "temporal_policy");
    policy_temporal_forward(ctx, &m->temporal, bl_detach(ctx, out->glance_pooled), &out->temporal);
    ctx_scope_pop(ctx);
    return ctx_ok(ctx) && uaf_select_focus(ctx, m, opt, out);
}

/* Uniform focus frames: the quantile sampler on uniform weights (stratified in training). */
static bool uniform_focus(Ctx *ctx, const UafModel *m, const UafForwardOptions *opt, UafOutput *out)
{
    const UafConfig *c = &m->cfg;
    const int B = out->B, G = c->glance, F = c->focus;
    float *w = malloc((size_t)B * G * sizeof *w); /* (B, G) */
    out->focus_idx_host = arena_alloc(&ctx->host, (size_t)B * F * sizeof(int32_t));
    if (!w || !out->focus_idx_host) {
        free(w);
        ctx_set_error(ctx, "uniadafocus-uniform: out of memory");
        return false;
    }
    for (int i = 0; i < B * G; i++)
        w[i] = 1.0f / (float)G;
    char err[256];
    bool ok = frame_sampler_focus(w, B, G, c->frames, F, ctx->training, ctx->seed, opt->step, out->focus_idx_host, err,
                                  sizeof err);
    free(w);
    if (!ok) {
        ctx_set_error(ctx, "uniadafocus-uniform: %s", err);
        return false;
    }
    out->focus_idx = uaf_index_tensor(ctx, out->focus_idx_host, B, F);
    return ctx_ok(ctx);
}

/* The variant's patch-set-1 actions and focus frames after the glance. */
static bool decide(Ctx *ctx, const UafModel *m, UafVariant v, const UafForwardOptions *opt, UafOutput *out)
{
    switch (v) {
    case UAF_VARIANT_FULL:
    case UAF_VARIANT_NOEXIT:
        return uaf_policies(ctx, m, out) && uaf_select_focus(ctx, m, opt, out);
    case UAF_VARIANT_UNIFORM:
        return spatial_stage(ctx, m, out) && uniform_focus(ctx, m, opt, out);
    case UAF_VARIANT_CENTRE:
        out->actions = uaf_centre_actions(ctx, m, out->B);
        return temporal_stage(ctx, m, opt, out);
    case UAF_VARIANT_RANDOMBOX:
        out->actions = uaf_random_actions(ctx, m, out->B, opt->step);
        return temporal_stage(ctx, m, opt, out);
    }
    return false;
}

bool uaf_variant_forward(Ctx *ctx, const UafModel *m, UafVariant v, Tensor *clips, const UafForwardOptions *opt,
                         UafOutput *out)
{
    static const UafForwardOptions none = {0};
    opt = opt ? opt : &none;
    if (!uaf_glance(ctx, m, clips, opt, out) || !decide(ctx, m, v, opt, out))
        return false;
    Tensor *acts[1] = {out->actions};
    return uaf_focus(ctx, m, clips, out->focus_idx, acts, 1, out->glance_pooled, opt, &out->focus);
}

static Tensor *uaf_m_forward_exits(Ctx *ctx, Method *mm, Tensor *clips, double *sample_gflops)
{
    UafMethod *u = mm->impl;
    if (!bl_check_clips(ctx, mm, clips))
        return NULL;
    UafForwardOptions opt = {.aux_logits = false, .step = ctx->step};
    UafOutput out;
    if (!uaf_variant_forward(ctx, u->model, u->variant, clips, &opt, &out))
        return NULL;
    Tensor *y = out.focus.cls.exit_logits; /* (B, F + 1, C) */
    if (u->variant == UAF_VARIANT_NOEXIT)
        y = op_slice(ctx, y, 1, u->model->cfg.focus, 1); /* the last exit only */
    bl_fill_sample_gflops(u->gflops, mm->n_exits, clips->shape[0], sample_gflops);
    /* remembered, not read: reading the device here would stall every pass (focus_boxes reads) */
    u->last_ctx = ctx;
    u->last_ops = ctx->op_counter;
    u->last_idx = out.focus_idx;
    u->last_boxes = out.focus.boxes;
    return ctx_ok(ctx) ? y : NULL;
}

/* A tensor's bytes on the host (CPU data, or the backend's device copy). */
static bool read_host(Ctx *ctx, const Tensor *t, void *dst)
{
    if (!t || !t->data)
        return false;
    if (t->backend == BACKEND_CPU) {
        memcpy(dst, t->data, tensor_bytes(t));
        return true;
    }
    if (!ctx->ops || !ctx->ops->copy_to_host)
        return false;
    ctx->ops->copy_to_host(ctx, dst, t);
    return ctx_ok(ctx);
}

static bool uaf_m_focus_boxes(Ctx *ctx, Method *mm, MethodFocusBoxes *out, char *err, size_t err_cap)
{
    UafMethod *u = mm->impl;
    memset(out, 0, sizeof *out);
    const Tensor *it = u->last_idx, *bt = u->last_boxes;
    if (u->last_ctx != ctx || u->last_ops != ctx->op_counter || !it || !bt || it->ndim != 2 || bt->ndim != 3) {
        snprintf(err, err_cap, "%s: focus_boxes needs the live pass of a forward_exits in this context", mm->id);
        return false;
    }
    const int64_t B = it->shape[0], F = it->shape[1];
    if (B * F > u->host_cap) {
        int32_t *i2 = realloc(u->idx_host, (size_t)(B * F) * sizeof *i2);
        if (i2)
            u->idx_host = i2;
        float *b2 = realloc(u->box_host, (size_t)(B * F * 4) * sizeof *b2);
        if (b2)
            u->box_host = b2;
        if (!i2 || !b2) {
            snprintf(err, err_cap, "%s: out of memory for %lld boxes", mm->id, (long long)(B * F));
            return false;
        }
        u->host_cap = B * F;
    }
    if (!read_host(ctx, it, u->idx_host) || !read_host(ctx, bt, u->box_host)) {
        snprintf(err, err_cap, "%s: cannot read the boxes of the %s backend (%s)", mm->id, backend_name(bt->backend),
                 ctx_ok(ctx) ? "no data" : ctx_error_message(ctx));
        return false;
    }
    for (int64_t i = 0; i < B * F; i++) { /* (y1, x1, h, w) → (x, y, w, h) */
        float *b = u->box_host + 4 * i, y1 = b[0], x1 = b[1], h = b[2], w = b[3];
        b[0] = x1, b[1] = y1, b[2] = w, b[3] = h;
    }
    *out = (MethodFocusBoxes){.n = (int)B, .focus = (int)F, .frame_idx = u->idx_host, .boxes = u->box_host};
    return true;
}

/* The loss of the ablations whose terms differ from uaf_loss_total's full set; the same weights:
 * (Σ_sets CE(steps) + n·CE(glance) + Σ_sets CE(patches) + n·[CE(temporal)] + n·[CE(spatial)]) / n
 * + [norm_ratio · box regulariser]. */
static Tensor *partial_total(Ctx *ctx, UafFocusOutput *sets, int n_sets, Tensor *glance_logits, Tensor *temporal,
                             Tensor *spatial, Tensor *actions, const int32_t *labels, int64_t B, float norm_ratio)
{
    Tensor *sum = NULL;
    for (int s = 0; s < n_sets; s++) {
        Tensor *t = op_add(ctx, bl_cross_entropy(ctx, sets[s].cls.step_logits, labels, B),
                           bl_cross_entropy(ctx, sets[s].local_logits, labels, B));
        sum = sum ? op_add(ctx, sum, t) : t;
    }
    Tensor *shared = bl_cross_entropy(ctx, glance_logits, labels, B);
    if (temporal)
        shared = op_add(ctx, shared, bl_cross_entropy(ctx, temporal, labels, B));
    if (spatial)
        shared = op_add(ctx, shared, bl_cross_entropy(ctx, spatial, labels, B));
    /* the shared terms are counted once per set, as main.py sums them over the sets */
    Tensor *total = op_scale(ctx, op_add(ctx, sum, op_scale(ctx, shared, (float)n_sets)), 1.0f / (float)n_sets);
    if (actions)
        total = op_add(ctx, total, op_scale(ctx, loss_box_size(ctx, actions), norm_ratio));
    return total;
}

static Tensor *uaf_m_train_loss(Ctx *ctx, Method *mm, Tensor *clips, Tensor *labels, uint64_t step)
{
    UafMethod *u = mm->impl;
    const UafModel *m = u->model;
    ctx->step = step;
    if (!bl_check_clips(ctx, mm, clips))
        return NULL;
    const int64_t B = clips->shape[0];
    int32_t *lab = malloc((size_t)B * sizeof *lab); /* (B) labels on the host */
    if (!lab) {
        ctx_set_error(ctx, "uniadafocus: out of memory");
        return NULL;
    }
    Tensor *loss = NULL;
    UafForwardOptions opt = {.aux_logits = true, .step = step};
    UafOutput out;
    UafFocusOutput sets[2];
    memset(sets, 0, sizeof sets);
    if (!bl_labels_host(ctx, labels, B, mm->classes, lab) || !uaf_glance(ctx, m, clips, &opt, &out) ||
        !decide(ctx, m, u->variant, &opt, &out))
        goto done;
    /* patch sets: the variant's actions and the random set (randombox: its random set only) */
    int n_sets = u->variant == UAF_VARIANT_RANDOMBOX ? 1 : 2;
    Tensor *acts[2] = {out.actions, n_sets > 1 ? uaf_random_actions(ctx, m, B, step) : NULL};
    if (!uaf_focus(ctx, m, clips, out.focus_idx, acts, n_sets, out.glance_pooled, &opt, sets))
        goto done;
    Tensor *mc = NULL, *sp = NULL, *a3 = NULL;
    if (uses_temporal_policy(u->variant))
        mc = loss_mc_average(ctx, out.glance_logits, out.temporal.weights, loss_mc_rounds(m->cfg.glance),
                             u->train.mc_samples, step);
    if (uses_spatial_policy(u->variant)) {
        /* the official action_3: the spatial policy run a second time on the detached maps */
        a3 = policy_spatial_forward(ctx, &m->spatial, bl_detach(ctx, out.glance_features));
        sp = loss_feature_crop_logits(ctx, out.glance_features, a3, &m->feature_box, m->aux_fc.weight, m->aux_fc.bias);
    }
    if (u->variant == UAF_VARIANT_FULL || u->variant == UAF_VARIANT_NOEXIT) {
        UafLossInputs li = {.n_sets = 2,
                            .step_logits = {sets[0].cls.step_logits, sets[1].cls.step_logits},
                            .local_logits = {sets[0].local_logits, sets[1].local_logits},
                            .glance_logits = out.glance_logits,
                            .temporal_logits = mc,
                            .spatial_logits = sp,
                            .glance_actions = a3};
        UafLossTerms terms;
        if (uaf_loss_total(ctx, &li, lab, (int)B, u->train.norm_ratio, &terms))
            loss = terms.total;
    } else {
        loss = partial_total(ctx, sets, n_sets, out.glance_logits, mc, sp, a3, lab, B, u->train.norm_ratio);
    }
done:
    free(lab);
    return ctx_ok(ctx) ? loss : NULL;
}

static bool uaf_m_exit_gflops(const Method *mm, double *gflops, char *err, size_t err_cap)
{
    (void)err;
    (void)err_cap;
    memcpy(gflops, ((const UafMethod *)mm->impl)->gflops, (size_t)mm->n_exits * sizeof *gflops);
    return true;
}

/* The official groups (impl/train_loop.h); a variant's unused modules get 0 (never updated). */
static float uaf_m_lr_multiplier(const Method *mm, const char *key)
{
    const UafMethod *u = mm->impl;
    const UafTrainDefaults *t = &u->train;
    if (!uses_spatial_policy(u->variant) && strncmp(key, "aux_fc.", 7) == 0)
        return 0.0f; /* aux_fc serves only the spatial policy's loss */
    switch (uaf_param_group(key)) {
    case UAF_GROUP_TEMPORAL_POLICY: return uses_temporal_policy(u->variant) ? t->temporal_lr_ratio : 0.0f;
    case UAF_GROUP_SPATIAL_POLICY: return uses_spatial_policy(u->variant) ? t->stn_lr_ratio : 0.0f;
    case UAF_GROUP_GLOBAL: return t->global_lr_ratio;
    case UAF_GROUP_LOCAL: return 1.0f;
    case UAF_GROUP_CLASSIFIER: return t->classifier_lr_ratio;
    case UAF_GROUP_UNKNOWN: break;
    }
    return 1.0f;
}

static void uaf_m_destroy(Method *mm)
{
    if (!mm)
        return;
    UafMethod *u = mm->impl;
    if (u) {
        uaf_destroy(u->model);
        free(u->idx_host);
        free(u->box_host);
    }
    free(u);
    free(mm);
}

static const MethodOps UAF_OPS = {
    .forward_exits = uaf_m_forward_exits,
    .train_loss = uaf_m_train_loss,
    .exit_gflops = uaf_m_exit_gflops,
    .lr_multiplier = uaf_m_lr_multiplier,
    .destroy = uaf_m_destroy,
    .focus_boxes = uaf_m_focus_boxes,
};

UafModel *uniadafocus_method_model(const Method *mm)
{
    return mm && mm->ops == &UAF_OPS ? ((const UafMethod *)mm->impl)->model : NULL;
}

Method *uniadafocus_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                                  uint64_t seed, char *err, size_t err_cap)
{
    const UafMethodPreset *p = find(preset);
    const UafPreset *base = p ? uaf_preset_find(p->base) : NULL;
    if (!base) {
        snprintf(err, err_cap, "uniadafocus: unknown preset '%s'", preset ? preset : "(null)");
        return NULL;
    }
    UafConfig cfg = base->cfg;
    apply_overrides(&cfg, &p->adjust);
    apply_overrides(&cfg, ov);
    if (!uaf_config_check(&cfg, err, err_cap))
        return NULL;
    UafMethod *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, err_cap, "uniadafocus: out of memory");
        return NULL;
    }
    u->variant = p->variant;
    u->train = base->train;
    double macs[UAF_MAX_FOCUS + 1];
    int n_exits = 0;
    if (!uaf_variant_flops(&cfg, p->variant, macs, &n_exits, err, err_cap) ||
        !(u->model = uaf_create(&cfg, backend, with_grads, err, err_cap))) {
        free(u);
        return NULL;
    }
    for (int k = 0; k < n_exits; k++)
        u->gflops[k] = macs[k] * 1e-9;
    uaf_init(u->model, seed);
    Method *mm = bl_method_new(&UAF_OPS, uaf_variant_id(p->variant), preset, u->model->ps, u, cfg.frames,
                               cfg.frame_size, cfg.num_classes, n_exits, err, err_cap);
    if (!mm) {
        uaf_destroy(u->model);
        free(u);
    }
    return mm;
}
