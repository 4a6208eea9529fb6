/* adafocusv2.c — see adafocusv2.h. */
#include "baselines/adafocusv2.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/frame_sampler.h"
#include "impl/init.h"
#include "kernels/backend.h"
#include "kernels/ops.h"

#define POLICY_BN_EPS 1e-5f /* nn.BatchNorm defaults */
#define POLICY_BN_MOMENTUM 0.1f

/* ---- configuration ---------------------------------------------------------------------------- */

bool adafocusv2_config_check(const AdaFocusV2Config *c, char *err, size_t err_cap)
{
    if (c->frames < 1 || c->frames > ADAFOCUSV2_MAX_FRAMES) {
        snprintf(err, err_cap, "adafocusv2: frames T = %d must be in 1 … %d", c->frames, ADAFOCUSV2_MAX_FRAMES);
        return false;
    }
    if (c->frame_size < 32 || c->frame_size % 32 != 0) {
        snprintf(err, err_cap, "adafocusv2: frame size S = %d must be a positive multiple of 32 (the policy flattens "
                 "the S/32 glance map)", c->frame_size);
        return false;
    }
    if (c->patch_size < 8 || c->patch_size > c->frame_size) {
        snprintf(err, err_cap, "adafocusv2: patch size P = %d must be in 8 … S = %d", c->patch_size, c->frame_size);
        return false;
    }
    if (c->classes < 1 || c->policy_conv < 1 || c->policy_hidden < 1 || c->mlp_width < 1 || c->local_base_width < 1 ||
        !(c->glance_width > 0.0)) {
        snprintf(err, err_cap, "adafocusv2: classes %d, policy widths %d/%d, MLP width %d, local width %d and glance "
                 "width %g must be positive", c->classes, c->policy_conv, c->policy_hidden, c->mlp_width,
                 c->local_base_width, c->glance_width);
        return false;
    }
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f && c->fc_dropout >= 0.0f && c->fc_dropout < 1.0f)) {
        snprintf(err, err_cap, "adafocusv2: dropout %g and fc dropout %g must be in [0, 1)", (double)c->dropout,
                 (double)c->fc_dropout);
        return false;
    }
    return true;
}

/* ---- model ------------------------------------------------------------------------------------ */

static bool declare_bn(Tensor **g, Tensor **b, Tensor **mean, Tensor **var, ParamSet *ps, const char *name, int C,
                       char *err, size_t err_cap)
{
    const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    Tensor **slot[4] = {g, b, mean, var};
    char key[BACKBONE_KEY_LEN];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "%s.%s", name, suffix[i]);
        if (!(*slot[i] = params_declare(ps, key, DTYPE_F32, 1, (int64_t[]){C}, i < 2))) {
            snprintf(err, err_cap, "adafocusv2: cannot declare %s", key);
            return false;
        }
    }
    return true;
}

void adafocusv2_model_destroy(AdaFocusV2Model *m)
{
    if (!m)
        return;
    bl_backbone_destroy(&m->glance);
    bl_backbone_destroy(&m->local);
    bl_pooling_destroy(&m->cls);
    params_destroy(m->ps);
    free(m);
}

AdaFocusV2Model *adafocusv2_model_create(const AdaFocusV2Config *cfg, BackendKind backend, bool with_grads, char *err,
                                         size_t err_cap)
{
    if (!adafocusv2_config_check(cfg, err, err_cap))
        return NULL;
    AdaFocusV2Model *m = calloc(1, sizeof *m);
    if (!m || !(m->ps = params_create())) {
        free(m);
        snprintf(err, err_cap, "adafocusv2: out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    if (cfg->coarse_to_fine)
        bl_coarse_to_fine_order(cfg->frames, m->order);
    else
        for (int t = 0; t < cfg->frames; t++)
            m->order[t] = t;
    m->feat_side = cfg->frame_size / 32;
    /* a box of exactly P pixels whatever the action: s_min = s_max = P */
    m->box = patch_box_geom_pixels(cfg->frame_size, cfg->patch_size, (float)cfg->patch_size, (float)cfg->patch_size);
    ParamSet *ps = m->ps;
    const int C = cfg->classes, H = cfg->policy_hidden, C1 = cfg->policy_conv;
    BlBackboneConfig gc = {.kind = BL_BACKBONE_MOBILENET_V2, .width_mult = cfg->glance_width,
                           .mbv2_keys = MOBILENET_V2_KEYS_OFFICIAL};
    BlBackboneConfig lc = {.kind = BL_BACKBONE_RESNET, .depth = cfg->local_depth, .base_width = cfg->local_base_width};
    AdaFocusV2Policy *p = &m->policy;
    /* declared in the official state_dict's order */
    bool ok = bl_backbone_declare(&m->glance, &gc, ps, "global_CNN.", err, err_cap) &&
              linear_declare(&m->glance_fc, ps, NULL, "global_CNN_fc.1", m->glance.feature_dim, C, err, err_cap) &&
              bl_backbone_declare(&m->local, &lc, ps, "local_CNN.", err, err_cap) &&
              linear_declare(&m->local_fc, ps, NULL, "local_CNN_fc.1", m->local.feature_dim, C, err, err_cap);
    if (ok) {
        const int64_t D = m->glance.feature_dim, h = m->feat_side;
        ok = (p->conv = params_declare(ps, "policy_stn.encoder.0.weight", DTYPE_F32, 4, (int64_t[]){C1, D, 1, 1},
                                       true)) != NULL;
        if (!ok)
            snprintf(err, err_cap, "adafocusv2: cannot declare the policy");
        ok = ok &&
             declare_bn(&p->bn1_gamma, &p->bn1_beta, &p->bn1_mean, &p->bn1_var, ps, "policy_stn.encoder.1", C1, err,
                        err_cap) &&
             linear_declare(&p->fc1, ps, NULL, "policy_stn.encoder.4", (int)(C1 * h * h), H, err, err_cap) &&
             declare_bn(&p->bn2_gamma, &p->bn2_beta, &p->bn2_mean, &p->bn2_var, ps, "policy_stn.encoder.5", H, err,
                        err_cap) &&
             bl_gru_declare(&p->gru, ps, "policy_stn.gru.", H, H, err, err_cap) &&
             linear_declare(&p->out, ps, NULL, "policy_stn.fc.0", H, 2, err, err_cap);
    }
    ok = ok && bl_pooling_declare(&m->cls, ps, "classifier.", "classifiers.%d.1",
                                  m->glance.feature_dim + m->local.feature_dim, cfg->mlp_width, cfg->frames, C,
                                  cfg->dropout, err, err_cap);
    if (!ok || !params_allocate(ps, backend, with_grads, err, err_cap)) {
        adafocusv2_model_destroy(m);
        return NULL;
    }
    return m;
}

void adafocusv2_model_init(AdaFocusV2Model *m, uint64_t seed)
{
    bl_backbone_init(&m->glance, seed);
    bl_backbone_init(&m->local, seed);
    init_linear_default(&m->glance_fc, seed);
    init_linear_default(&m->local_fc, seed);
    AdaFocusV2Policy *p = &m->policy;
    /* PyTorch's defaults: conv U(±1/√fan_in), BN 1/0, linear and GRU defaults */
    float k = 1.0f / sqrtf((float)p->conv->shape[1]);
    init_uniform(p->conv, seed, -k, k);
    init_fill(p->bn1_gamma, 1.0f);
    init_fill(p->bn1_beta, 0.0f);
    init_fill(p->bn1_mean, 0.0f);
    init_fill(p->bn1_var, 1.0f);
    init_linear_default(&p->fc1, seed);
    init_fill(p->bn2_gamma, 1.0f);
    init_fill(p->bn2_beta, 0.0f);
    init_fill(p->bn2_mean, 0.0f);
    init_fill(p->bn2_var, 1.0f);
    bl_gru_init(&p->gru, seed);
    init_linear_default(&p->out, seed);
    bl_pooling_init(&m->cls, seed);
}

/* ---- forward ---------------------------------------------------------------------------------- */

Tensor *adafocusv2_policy(Ctx *ctx, const AdaFocusV2Model *m, Tensor *maps, int64_t B, int64_t T)
{
    if (!ctx_ok(ctx) || !maps)
        return NULL;
    const AdaFocusV2Policy *p = &m->policy;
    const int64_t h = m->feat_side, H = m->cfg.policy_hidden;
    if (maps->ndim != 4 || maps->shape[0] != B * T || maps->shape[1] != p->conv->shape[1] || maps->shape[2] != h ||
        maps->shape[3] != h) {
        char s[96];
        ctx_set_error(ctx, "adafocusv2 policy: maps must be (B·T = %lld, %lld, %lld, %lld), got %s", (long long)(B * T),
                      (long long)p->conv->shape[1], (long long)h, (long long)h, tensor_shape_str(maps, s, sizeof s));
        return NULL;
    }
    Tensor *x = op_conv2d(ctx, maps, p->conv, NULL, 1, 0, 1); /* (B·T, C1, h, h) */
    x = op_batch_norm(ctx, x, p->bn1_gamma, p->bn1_beta, p->bn1_mean, p->bn1_var, POLICY_BN_MOMENTUM, POLICY_BN_EPS);
    x = bl_tanh(ctx, x);
    x = op_reshape(ctx, x, 2, (int64_t[]){B * T, p->fc1.weight->shape[1]}); /* flatten (C1·h·h) */
    x = op_linear(ctx, x, p->fc1.weight, p->fc1.bias);                      /* (B·T, H) */
    x = op_batch_norm(ctx, x, p->bn2_gamma, p->bn2_beta, p->bn2_mean, p->bn2_var, POLICY_BN_MOMENTUM, POLICY_BN_EPS);
    x = bl_tanh(ctx, x);
    x = op_reshape(ctx, x, 3, (int64_t[]){B, T, H}); /* (B, T, H) */
    Tensor **hs = calloc((size_t)T, sizeof *hs);     /* T × (B, 1, H) */
    if (!hs) {
        ctx_set_error(ctx, "adafocusv2 policy: out of memory");
        return NULL;
    }
    Tensor *state = NULL;
    for (int64_t t = 0; t < T && ctx_ok(ctx); t++) {
        Tensor *xt = op_reshape(ctx, op_slice(ctx, x, 1, t, 1), 2, (int64_t[]){B, H});
        state = bl_gru_cell(ctx, &p->gru, xt, state); /* (B, H) */
        hs[t] = op_reshape(ctx, state, 3, (int64_t[]){B, 1, H});
    }
    Tensor *all = ctx_ok(ctx) ? (T == 1 ? hs[0] : op_concat(ctx, hs, (int)T, 1)) : NULL; /* (B, T, H) */
    free(hs);
    all = op_reshape(ctx, all, 2, (int64_t[]){B * T, H});
    return op_sigmoid(ctx, op_linear(ctx, all, p->out.weight, p->out.bias)); /* (B·T, 2) */
}

Tensor *adafocusv2_crop(Ctx *ctx, const AdaFocusV2Model *m, Tensor *frames, Tensor *positions)
{
    if (!ctx_ok(ctx) || !frames || !positions)
        return NULL;
    if (positions->ndim != 2 || positions->shape[1] != 2) {
        char s[96];
        ctx_set_error(ctx, "adafocusv2 crop: positions must be (N, 2), got %s",
                      tensor_shape_str(positions, s, sizeof s));
        return NULL;
    }
    /* (a_y, a_x, 0, 0): the size entries do nothing with s_min = s_max = P */
    Tensor *a[2] = {positions, tensor_new_zeros(ctx, DTYPE_F32, 2, (int64_t[]){positions->shape[0], 2})};
    return patch_box_crop(ctx, frames, op_concat(ctx, a, 2, 1), &m->box);
}

/* Glance stage: frames in processing order, maps, pooled, aux logits (training). */
static bool glance_stage(Ctx *ctx, const AdaFocusV2Model *m, Tensor *clips, AdaFocusV2Output *out)
{
    const AdaFocusV2Config *c = &m->cfg;
    if (!bl_check_clip_shape(ctx, "adafocusv2", clips, c->frames, c->frame_size))
        return false;
    const int64_t B = clips->shape[0], T = c->frames;
    int32_t *idx = malloc((size_t)(B * T) * sizeof *idx); /* (B, T) */
    if (!idx) {
        ctx_set_error(ctx, "adafocusv2: out of memory");
        return false;
    }
    for (int64_t b = 0; b < B; b++)
        memcpy(idx + b * T, m->order, (size_t)T * sizeof *idx);
    out->frames = bl_gather_frames(ctx, clips, idx, B, T);
    free(idx);
    BackboneOutput g;
    ctx_scope_push(ctx, "glance");
    bool ok = out->frames && bl_backbone_forward(ctx, &m->glance, out->frames, &g);
    ctx_scope_pop(ctx);
    if (!ok)
        return false;
    out->maps = g.features;
    out->glance = g.pooled;
    if (ctx->training) {
        ctx_scope_push(ctx, "aux_heads");
        out->glance_logits = bl_linear(ctx, &m->glance_fc, g.pooled, c->fc_dropout);
        ctx_scope_pop(ctx);
    }
    return ctx_ok(ctx);
}

/* Local stage for one patch set: patches → local CNN → (aux logits) → classifier step logits. */
static bool focus_stage(Ctx *ctx, const AdaFocusV2Model *m, Tensor *frames, Tensor *glance, Tensor *positions,
                        int64_t B, Tensor **patches, Tensor **local_logits, Tensor **step_logits)
{
    *patches = adafocusv2_crop(ctx, m, frames, positions); /* (B·T, 3, P, P) */
    BackboneOutput l;
    ctx_scope_push(ctx, "local");
    bool ok = *patches && bl_backbone_forward(ctx, &m->local, *patches, &l);
    ctx_scope_pop(ctx);
    if (!ok)
        return false;
    if (ctx->training) {
        ctx_scope_push(ctx, "aux_heads");
        *local_logits = bl_linear(ctx, &m->local_fc, l.pooled, m->cfg.fc_dropout);
        ctx_scope_pop(ctx);
    }
    Tensor *cat[2] = {glance, l.pooled};
    ctx_scope_push(ctx, "classifier");
    *step_logits = bl_pooling_forward(ctx, &m->cls, op_concat(ctx, cat, 2, 1), B, NULL); /* (B, T, C) */
    ctx_scope_pop(ctx);
    return ctx_ok(ctx);
}

bool adafocusv2_forward(Ctx *ctx, const AdaFocusV2Model *m, Tensor *clips, AdaFocusV2Output *out)
{
    memset(out, 0, sizeof *out);
    if (!glance_stage(ctx, m, clips, out))
        return false;
    const int64_t B = clips->shape[0];
    ctx_scope_push(ctx, "policy");
    /* the official policy_stn(global_feat_map.detach()) */
    out->positions = adafocusv2_policy(ctx, m, bl_detach(ctx, out->maps), B, m->cfg.frames);
    ctx_scope_pop(ctx);
    return focus_stage(ctx, m, out->frames, out->glance, out->positions, B, &out->patches, &out->local_logits,
                       &out->step_logits);
}

Tensor *adafocusv2_loss(Ctx *ctx, const AdaFocusV2Model *m, Tensor *clips, const int32_t *labels, uint64_t step)
{
    AdaFocusV2Output out;
    if (!adafocusv2_forward(ctx, m, clips, &out))
        return NULL;
    const int64_t B = clips->shape[0], T = m->cfg.frames;
    /* the second patch set: uniform random positions (the official torch.rand_like(actions_1)) */
    float *rnd = malloc((size_t)(B * T * 2) * sizeof *rnd); /* (B·T, 2) */
    if (!rnd) {
        ctx_set_error(ctx, "adafocusv2: out of memory");
        return NULL;
    }
    for (int64_t b = 0; b < B; b++) {
        RngStream s = frame_sampler_stream(ctx->seed, b, BL_SLOT_RANDOM, step);
        for (int64_t t = 0; t < 2 * T; t++)
            rnd[b * 2 * T + t] = rng_uniform(&s, (uint64_t)t);
    }
    Tensor *pos2 = bl_from_host(ctx, DTYPE_F32, 2, (int64_t[]){B * T, 2}, rnd);
    free(rnd);
    Tensor *patches2 = NULL, *local2 = NULL, *steps2 = NULL;
    if (!focus_stage(ctx, m, out.frames, out.glance, pos2, B, &patches2, &local2, &steps2))
        return NULL;
    /* per set: CE(step logits) + CE(glance logits) + CE(patch logits); total = mean over the sets */
    Tensor *glance_ce = bl_cross_entropy(ctx, out.glance_logits, labels, B);
    Tensor *l1 = op_add(ctx, op_add(ctx, bl_cross_entropy(ctx, out.step_logits, labels, B), glance_ce),
                        bl_cross_entropy(ctx, out.local_logits, labels, B));
    Tensor *l2 = op_add(ctx, op_add(ctx, bl_cross_entropy(ctx, steps2, labels, B), glance_ce),
                        bl_cross_entropy(ctx, local2, labels, B));
    return op_scale(ctx, op_add(ctx, l1, l2), 0.5f);
}

bool adafocusv2_flops(const AdaFocusV2Config *cfg, AdaFocusV2Flops *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    AdaFocusV2Model *m = adafocusv2_model_create(cfg, BACKEND_META, false, err, err_cap);
    if (!m)
        return false;
    Ctx *ctx = ctx_create(BACKEND_META, 0);
    if (!ctx) {
        adafocusv2_model_destroy(m);
        snprintf(err, err_cap, "adafocusv2 flops: out of memory");
        return false;
    }
    const int S = cfg->frame_size, P = cfg->patch_size;
    const int64_t h = m->feat_side;
    BackboneOutput bo;
    bl_backbone_forward(ctx, &m->glance, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){1, 3, S, S}), &bo);
    out->glance_frame = bl_take_macs(ctx);
    adafocusv2_policy(ctx, m, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){1, m->glance.feature_dim, h, h}), 1, 1);
    out->policy_frame = bl_take_macs(ctx);
    bl_backbone_forward(ctx, &m->local, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){1, 3, P, P}), &bo);
    out->local_patch = bl_take_macs(ctx);
    exit_classifier_mlp(ctx, &m->cls.mlp,
                        tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, m->glance.feature_dim + m->local.feature_dim}));
    out->mlp_frame = bl_take_macs(ctx);
    bl_linear(ctx, &m->cls.heads[0], tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, cfg->mlp_width}), 0.0f);
    out->head = bl_take_macs(ctx);
    bool ok = ctx_ok(ctx);
    if (!ok)
        snprintf(err, err_cap, "adafocusv2 flops: %s", ctx_error_message(ctx));
    ctx_destroy(ctx);
    adafocusv2_model_destroy(m);
    if (!ok)
        return false;
    out->frame = out->glance_frame + out->policy_frame + out->local_patch + out->mlp_frame + out->head;
    out->n_exits = cfg->frames;
    for (int k = 1; k <= cfg->frames; k++)
        out->exit[k - 1] = k * out->frame;
    return true;
}

/* ---- presets ---------------------------------------------------------------------------------- */

typedef struct {
    MethodPresetInfo info;
    AdaFocusV2Config cfg;
} AdaFocusV2Preset;

/* main_v2.py's ActivityNet command (scripts/train.sh): lr 0.002, batch 32, wd 1e-4, 50 epochs,
 * dropout 0.2, fc_dropout 0.2, stn_hidden_dim 2048, lr ratios global 0.5, stn 0.1, classifier 5. */
#define ACT_TRAIN {.lr = 0.002f, .weight_decay = 1e-4f, .momentum = 0.9f, .batch_size = 32, .epochs = 50, .grad_clip = 0}
#define SYN_TRAIN {.lr = 0.01f, .weight_decay = 1e-4f, .momentum = 0.9f, .batch_size = 8, .epochs = 20, .grad_clip = 0}
#define V2_CFG(T, S, P, C, gw, base, pc, ph, W)                                                                     \
    {.frames = (T), .frame_size = (S), .patch_size = (P), .classes = (C), .glance_width = (gw), .local_depth = 50,  \
     .local_base_width = (base), .policy_conv = (pc), .policy_hidden = (ph), .mlp_width = (W), .dropout = 0.2f,     \
     .fc_dropout = 0.2f, .coarse_to_fine = true, .global_lr_ratio = 0.5f, .stn_lr_ratio = 0.1f,                    \
     .classifier_lr_ratio = 5.0f}
/* The synthetic preset: the benchmark's shared ResNet-18 width 16 (baselines/tsn.c says why). */
#define V2_CFG_SYN(T, S, P, C, gw, base, pc, ph, W)                                                                     \
    {.frames = (T), .frame_size = (S), .patch_size = (P), .classes = (C), .glance_width = (gw), .local_depth = 18,  \
     .local_base_width = (base), .policy_conv = (pc), .policy_hidden = (ph), .mlp_width = (W), .dropout = 0.2f,     \
     .fc_dropout = 0.2f, .coarse_to_fine = true, .global_lr_ratio = 0.5f, .stn_lr_ratio = 0.1f,                    \
     .classifier_lr_ratio = 5.0f}

static const AdaFocusV2Preset PRESETS[] = {
    {{"adafocusv2-actnet-p96", "adafocusv2",
      "AdaFocusV2-MN2/RN, ActivityNet, 16 frames, 96x96 patches (paper: 17.6 GFLOPs, 77.4 mAP)", ACT_TRAIN},
     V2_CFG(16, 224, 96, 200, 1.0, 64, 64, 2048, 4096)},
    {{"adafocusv2-actnet-p128", "adafocusv2",
      "AdaFocusV2-MN2/RN, ActivityNet, 16 frames, 128x128 patches (paper: 27.0 GFLOPs, 79.0 mAP)", ACT_TRAIN},
     V2_CFG(16, 224, 128, 200, 1.0, 64, 64, 2048, 4096)},
    {{"adafocusv2-actnet-p160", "adafocusv2",
      "AdaFocusV2-MN2/RN, ActivityNet, 16 frames, 160x160 patches (paper: 39.0 GFLOPs, 79.9 mAP)", ACT_TRAIN},
     V2_CFG(16, 224, 160, 200, 1.0, 64, 64, 2048, 4096)},
    {{"adafocusv2-synth", "adafocusv2",
      "AdaFocusV2 on the synthetic benchmark: 8 frames at 64, 32x32 patches, MobileNetV2 x0.25 + ResNet-18 width 16",
      SYN_TRAIN},
     V2_CFG_SYN(8, 64, 32, 10, 0.25, 16, 8, 32, 64)},
    {{"adafocusv2-tiny", "adafocusv2", "unit-test size: 4 frames at 32, 16x16 patches, 5 classes", SYN_TRAIN},
     V2_CFG(4, 32, 16, 5, 0.25, 4, 4, 8, 16)},
};
enum { N_PRESETS = (int)(sizeof PRESETS / sizeof PRESETS[0]) };

const MethodPresetInfo *adafocusv2_preset_info(int i) { return i >= 0 && i < N_PRESETS ? &PRESETS[i].info : NULL; }

bool adafocusv2_preset_config(const char *name, AdaFocusV2Config *cfg)
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
    AdaFocusV2Model *model;
    double gflops[ADAFOCUSV2_MAX_FRAMES];
    /* the last forward_exits pass, for focus_boxes (its positions tensor: valid while it is live) */
    const Ctx *last_ctx;
    uint64_t last_ops;          /* ctx->op_counter after that pass */
    const Tensor *last_pos;     /* (B·T, 2) (a_y, a_x) in processing order */
    float *pos_host;            /* (B·T, 2) */
    int32_t *idx_host;          /* (B, T) frames in processing order */
    float *box_host;            /* (B, T, 4) x, y, w, h */
    int64_t host_cap;           /* B·T entries allocated */
} AdaFocusV2Method;

static Tensor *v2_m_forward_exits(Ctx *ctx, Method *m, Tensor *clips, double *sample_gflops)
{
    AdaFocusV2Method *v = m->impl;
    if (!bl_check_clips(ctx, m, clips))
        return NULL;
    AdaFocusV2Output out;
    if (!adafocusv2_forward(ctx, v->model, clips, &out))
        return NULL;
    bl_fill_sample_gflops(v->gflops, m->n_exits, clips->shape[0], sample_gflops);
    v->last_ctx = ctx; /* remembered, not read (focus_boxes reads) */
    v->last_ops = ctx->op_counter;
    v->last_pos = out.positions;
    return out.step_logits;
}

/* Every frame is a focus frame, in processing order; the box is the fixed P-pixel one the crop
 * placed at the policy's position (patch_box_compute with a_h = a_w = 0: s_min = s_max = P). */
static bool v2_m_focus_boxes(Ctx *ctx, Method *m, MethodFocusBoxes *out, char *err, size_t err_cap)
{
    AdaFocusV2Method *v = m->impl;
    const AdaFocusV2Model *md = v->model;
    memset(out, 0, sizeof *out);
    const Tensor *p = v->last_pos;
    const int64_t T = md->cfg.frames;
    if (v->last_ctx != ctx || v->last_ops != ctx->op_counter || !p || p->ndim != 2 || p->shape[1] != 2 ||
        p->shape[0] % T != 0) {
        snprintf(err, err_cap, "adafocusv2: focus_boxes needs the live pass of a forward_exits in this context");
        return false;
    }
    const int64_t B = p->shape[0] / T;
    if (B * T > v->host_cap) {
        float *p2 = realloc(v->pos_host, (size_t)(B * T * 2) * sizeof *p2);
        if (p2)
            v->pos_host = p2;
        int32_t *i2 = realloc(v->idx_host, (size_t)(B * T) * sizeof *i2);
        if (i2)
            v->idx_host = i2;
        float *b2 = realloc(v->box_host, (size_t)(B * T * 4) * sizeof *b2);
        if (b2)
            v->box_host = b2;
        if (!p2 || !i2 || !b2) {
            snprintf(err, err_cap, "adafocusv2: out of memory for %lld boxes", (long long)(B * T));
            return false;
        }
        v->host_cap = B * T;
    }
    bool ok = p->data != NULL;
    if (ok && p->backend == BACKEND_CPU)
        memcpy(v->pos_host, p->data, tensor_bytes(p));
    else if (ok && ctx->ops && ctx->ops->copy_to_host)
        ctx->ops->copy_to_host(ctx, v->pos_host, p);
    else
        ok = false;
    if (!ok || !ctx_ok(ctx)) {
        snprintf(err, err_cap, "adafocusv2: cannot read the positions of the %s backend (%s)",
                 backend_name(p->backend), ctx_ok(ctx) ? "no data" : ctx_error_message(ctx));
        return false;
    }
    for (int64_t i = 0; i < B * T; i++) {
        float a[4] = {v->pos_host[2 * i], v->pos_host[2 * i + 1], 0.0f, 0.0f}, box[4]; /* box: (y1, x1, h, w) */
        patch_box_compute(&md->box, a, box, NULL);
        float *o = v->box_host + 4 * i;
        o[0] = box[1], o[1] = box[0], o[2] = box[3], o[3] = box[2];
        v->idx_host[i] = md->order[i % T];
    }
    *out = (MethodFocusBoxes){.n = (int)B, .focus = (int)T, .frame_idx = v->idx_host, .boxes = v->box_host};
    return true;
}

static Tensor *v2_m_train_loss(Ctx *ctx, Method *m, Tensor *clips, Tensor *labels, uint64_t step)
{
    AdaFocusV2Method *v = m->impl;
    ctx->step = step;
    if (!bl_check_clips(ctx, m, clips))
        return NULL;
    const int64_t B = clips->shape[0];
    int32_t *lab = malloc((size_t)B * sizeof *lab); /* (B) labels on the host */
    if (!lab) {
        ctx_set_error(ctx, "adafocusv2: out of memory");
        return NULL;
    }
    Tensor *loss = bl_labels_host(ctx, labels, B, m->classes, lab) ? adafocusv2_loss(ctx, v->model, clips, lab, step)
                                                                   : NULL;
    free(lab);
    return loss;
}

static bool v2_m_exit_gflops(const Method *m, double *gflops, char *err, size_t err_cap)
{
    (void)err;
    (void)err_cap;
    memcpy(gflops, ((const AdaFocusV2Method *)m->impl)->gflops, (size_t)m->n_exits * sizeof *gflops);
    return true;
}

/* The official get_optim_policies: policy_stn ×stn, global_CNN(+fc) ×global, local ×1, classifier
 * ×classifier. */
static float v2_m_lr_multiplier(const Method *m, const char *key)
{
    const AdaFocusV2Config *c = &((const AdaFocusV2Method *)m->impl)->model->cfg;
    if (strncmp(key, "policy_stn.", 11) == 0)
        return c->stn_lr_ratio;
    if (strncmp(key, "global_CNN", 10) == 0) /* global_CNN. and global_CNN_fc. */
        return c->global_lr_ratio;
    if (strncmp(key, "classifier.", 11) == 0)
        return c->classifier_lr_ratio;
    return 1.0f;
}

static void v2_m_destroy(Method *m)
{
    if (!m)
        return;
    AdaFocusV2Method *v = m->impl;
    if (v) {
        adafocusv2_model_destroy(v->model);
        free(v->pos_host);
        free(v->idx_host);
        free(v->box_host);
    }
    free(v);
    free(m);
}

static const MethodOps V2_OPS = {
    .forward_exits = v2_m_forward_exits,
    .train_loss = v2_m_train_loss,
    .exit_gflops = v2_m_exit_gflops,
    .lr_multiplier = v2_m_lr_multiplier,
    .destroy = v2_m_destroy,
    .focus_boxes = v2_m_focus_boxes,
};

Method *adafocusv2_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                                 uint64_t seed, char *err, size_t err_cap)
{
    AdaFocusV2Config cfg;
    if (!adafocusv2_preset_config(preset, &cfg)) {
        snprintf(err, err_cap, "adafocusv2: unknown preset '%s'", preset ? preset : "(null)");
        return NULL;
    }
    if (ov) {
        if (ov->frames > 0)
            cfg.frames = ov->frames;
        if (ov->frame_size > 0)
            cfg.frame_size = ov->frame_size;
        if (ov->classes > 0)
            cfg.classes = ov->classes;
        if (ov->patch_size > 0)
            cfg.patch_size = ov->patch_size;
    }
    AdaFocusV2Flops fl;
    if (!adafocusv2_flops(&cfg, &fl, err, err_cap))
        return NULL;
    AdaFocusV2Method *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, err_cap, "adafocusv2: out of memory");
        return NULL;
    }
    for (int k = 0; k < fl.n_exits; k++)
        v->gflops[k] = fl.exit[k] * 1e-9;
    if (!(v->model = adafocusv2_model_create(&cfg, backend, with_grads, err, err_cap))) {
        free(v);
        return NULL;
    }
    adafocusv2_model_init(v->model, seed);
    Method *m = bl_method_new(&V2_OPS, "adafocusv2", preset, v->model->ps, v, cfg.frames, cfg.frame_size, cfg.classes,
                              cfg.frames, err, err_cap);
    if (!m) {
        adafocusv2_model_destroy(v->model);
        free(v);
    }
    return m;
}
