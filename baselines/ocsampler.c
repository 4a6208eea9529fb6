/* ocsampler.c — see ocsampler.h. */
#include "baselines/ocsampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/frame_sampler.h"
#include "impl/init.h"
#include "kernels/ops.h"
#include "kernels/sampling.h"

/* Log-probability mask of a frame already drawn: far below any score, yet finite (0 · it = 0). */
#define DRAWN_MASK (-1e9f)

/* ---- configuration ---------------------------------------------------------------------------- */

bool ocsampler_config_check(const OcSamplerConfig *c, char *err, size_t err_cap)
{
    if (c->frames < 1 || c->select < 1 || c->select > c->frames) {
        snprintf(err, err_cap, "ocsampler: need 1 <= k (selected) = %d <= T (candidates) = %d", c->select, c->frames);
        return false;
    }
    if (c->frame_size < 16 || c->sampler_size < 16 || c->sampler_size > c->frame_size) {
        snprintf(err, err_cap, "ocsampler: frame size %d and sampler size %d must be >= 16, the sampler's <= the "
                 "frame's", c->frame_size, c->sampler_size);
        return false;
    }
    if (c->classes < 1 || c->mlp_width < 1 || !(c->explore_rate >= 0.0f)) {
        snprintf(err, err_cap, "ocsampler: classes %d and MLP width %d must be >= 1, explore rate %g >= 0", c->classes,
                 c->mlp_width, (double)c->explore_rate);
        return false;
    }
    return true;
}

/* ---- model ------------------------------------------------------------------------------------ */

void ocsampler_model_destroy(OcSamplerModel *m)
{
    if (!m)
        return;
    bl_backbone_destroy(&m->sampler);
    bl_backbone_destroy(&m->backbone);
    bl_pooling_destroy(&m->head);
    params_destroy(m->ps);
    free(m);
}

OcSamplerModel *ocsampler_model_create(const OcSamplerConfig *cfg, BackendKind backend, bool with_grads, char *err,
                                       size_t err_cap)
{
    if (!ocsampler_config_check(cfg, err, err_cap))
        return NULL;
    OcSamplerModel *m = calloc(1, sizeof *m);
    if (!m || !(m->ps = params_create())) {
        free(m);
        snprintf(err, err_cap, "ocsampler: out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    BlBackboneConfig sc = cfg->sampler;
    sc.tsm_segments = sc.tsm_segments > 0 ? cfg->frames : 0; /* the shift runs over the T candidates */
    m->cfg.sampler = sc;
    BlBackboneConfig cc = cfg->classifier;
    cc.tsm_segments = 0;
    m->cfg.classifier = cc;
    bool ok = bl_backbone_declare(&m->sampler, &sc, m->ps, "sampler.", err, err_cap) &&
              linear_declare(&m->score, m->ps, NULL, "sampler.logit", m->sampler.feature_dim, 1, err, err_cap) &&
              bl_backbone_declare(&m->backbone, &cc, m->ps, "backbone.", err, err_cap) &&
              bl_pooling_declare(&m->head, m->ps, "cls_head.", "fc", m->backbone.feature_dim, cfg->mlp_width, 1,
                                 cfg->classes, 0.0f, err, err_cap);
    if (!ok || !params_allocate(m->ps, backend, with_grads, err, err_cap)) {
        ocsampler_model_destroy(m);
        return NULL;
    }
    return m;
}

void ocsampler_model_init(OcSamplerModel *m, uint64_t seed)
{
    bl_backbone_init(&m->sampler, seed);
    init_linear_normal(&m->score, seed, 0.01f);
    bl_backbone_init(&m->backbone, seed);
    bl_pooling_init(&m->head, seed);
}

/* ---- forward ---------------------------------------------------------------------------------- */

Tensor *ocsampler_scores(Ctx *ctx, const OcSamplerModel *m, Tensor *clips)
{
    const OcSamplerConfig *c = &m->cfg;
    if (!bl_check_clip_shape(ctx, "ocsampler", clips, c->frames, c->frame_size))
        return NULL;
    const int64_t B = clips->shape[0], T = c->frames;
    Tensor *frames = op_reshape(ctx, clips, 4, (int64_t[]){B * T, 3, c->frame_size, c->frame_size});
    ctx_scope_push(ctx, "sampler");
    Tensor *small = bl_resize(ctx, frames, c->sampler_size); /* (B·T, 3, s, s) */
    BackboneOutput bo;
    bool ok = small && bl_backbone_forward(ctx, &m->sampler, small, &bo);
    Tensor *s = ok ? op_linear(ctx, bo.pooled, m->score.weight, m->score.bias) : NULL; /* (B·T, 1) */
    ctx_scope_pop(ctx);
    return op_reshape(ctx, s, 2, (int64_t[]){B, T});
}

void ocsampler_topk(const float *scores, int B, int T, int k, int32_t *idx)
{
    for (int b = 0; b < B; b++) {
        const float *s = scores + (int64_t)b * T;
        int32_t *out = idx + (int64_t)b * k;
        /* selection: k passes, each the best frame not yet chosen (earlier frame on ties) */
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int t = 0; t < T; t++) {
                bool used = false;
                for (int q = 0; q < j; q++)
                    used |= out[q] == t;
                if (!used && (best < 0 || s[t] > s[best]))
                    best = t;
            }
            out[j] = best;
        }
        /* temporal order */
        for (int j = 1; j < k; j++)
            for (int q = j; q > 0 && out[q - 1] > out[q]; q--) {
                int32_t tmp = out[q];
                out[q] = out[q - 1];
                out[q - 1] = tmp;
            }
    }
}

Tensor *ocsampler_classify(Ctx *ctx, const OcSamplerModel *m, Tensor *clips, const int32_t *idx, int64_t B)
{
    const int64_t k = m->cfg.select;
    Tensor *frames = bl_gather_frames(ctx, clips, idx, B, k); /* (B·k, 3, S, S) */
    BackboneOutput bo;
    ctx_scope_push(ctx, "backbone");
    bool ok = frames && bl_backbone_forward(ctx, &m->backbone, frames, &bo);
    ctx_scope_pop(ctx);
    if (!ok)
        return NULL;
    ctx_scope_push(ctx, "cls_head");
    Tensor *y = bl_pooling_final(ctx, &m->head, bo.pooled, B); /* (B, C) */
    ctx_scope_pop(ctx);
    return y;
}

/* Top-k of the scores on the host, or segment frames on the meta backend (no values; the cost is
 * the same for any k frames). */
static bool select_topk(Ctx *ctx, const OcSamplerModel *m, Tensor *scores, int64_t B, int32_t *idx)
{
    const int T = m->cfg.frames, k = m->cfg.select;
    float *s = malloc((size_t)(B * T) * sizeof *s); /* (B, T) */
    if (!s) {
        ctx_set_error(ctx, "ocsampler: out of memory");
        return false;
    }
    if (bl_to_host(ctx, scores, s))
        ocsampler_topk(s, (int)B, T, k, idx);
    else if (ctx_ok(ctx))
        bl_segment_indices((int)B, T, k, false, 0, 0, BL_SLOT_SEGMENT, idx);
    free(s);
    return ctx_ok(ctx);
}

Tensor *ocsampler_forward(Ctx *ctx, const OcSamplerModel *m, Tensor *clips, int32_t *idx_out)
{
    Tensor *scores = ocsampler_scores(ctx, m, clips);
    if (!scores)
        return NULL;
    const int64_t B = clips->shape[0], k = m->cfg.select;
    int32_t *idx = malloc((size_t)(B * k) * sizeof *idx); /* (B, k) */
    if (!idx) {
        ctx_set_error(ctx, "ocsampler: out of memory");
        return NULL;
    }
    Tensor *y = select_topk(ctx, m, scores, B, idx) ? ocsampler_classify(ctx, m, clips, idx, B) : NULL;
    if (y && idx_out)
        memcpy(idx_out, idx, (size_t)(B * k) * sizeof *idx);
    free(idx);
    return y;
}

/* ---- training --------------------------------------------------------------------------------- */

Tensor *ocsampler_policy_loss(Ctx *ctx, Tensor *scores, const int32_t *draws, const float *reward, int64_t B, int k)
{
    if (!ctx_ok(ctx) || !scores)
        return NULL;
    if (scores->ndim != 2 || scores->shape[0] != B || k < 1 || k > scores->shape[1]) {
        char s[96];
        ctx_set_error(ctx, "ocsampler policy loss: scores must be (B = %lld, T >= k = %d), got %s", (long long)B, k,
                      tensor_shape_str(scores, s, sizeof s));
        return NULL;
    }
    const int64_t T = scores->shape[1];
    float *mask = malloc((size_t)(B * k * T) * sizeof *mask);   /* (B, k, T): drawn before step j */
    float *weight = calloc((size_t)(B * k * T), sizeof *weight); /* (B·k, T): −r_b/B at the draw */
    if (!mask || !weight) {
        free(mask);
        free(weight);
        ctx_set_error(ctx, "ocsampler: out of memory");
        return NULL;
    }
    for (int64_t b = 0; b < B; b++)
        for (int j = 0; j < k; j++) {
            float *mrow = mask + (b * k + j) * T;
            for (int64_t t = 0; t < T; t++)
                mrow[t] = 0.0f;
            for (int q = 0; q < j; q++)
                mrow[draws[b * k + q]] = DRAWN_MASK;
            weight[(b * k + j) * T + draws[b * k + j]] = -reward[b] / (float)B;
        }
    Tensor *mt = bl_from_host(ctx, DTYPE_F32, 3, (int64_t[]){B, k, T}, mask);
    Tensor *wt = bl_from_host(ctx, DTYPE_F32, 2, (int64_t[]){B * k, T}, weight);
    free(mask);
    free(weight);
    /* row (b, j): log softmax over the frames not yet drawn = s − logsumexp(remaining) */
    Tensor *masked = op_add(ctx, mt, op_reshape(ctx, scores, 3, (int64_t[]){B, 1, T})); /* (B, k, T) */
    Tensor *logp = op_log_softmax(ctx, op_reshape(ctx, masked, 2, (int64_t[]){B * k, T}));
    return op_sum_all(ctx, op_mul(ctx, logp, wt));
}

/* Max softmax probability of each row of logits (B, C) on the host. */
static void max_prob(const float *x, int64_t B, int C, float *out)
{
    for (int64_t b = 0; b < B; b++) {
        const float *r = x + b * C;
        double mx = r[bl_argmax(r, C)], z = 0;
        for (int c = 0; c < C; c++)
            z += exp((double)r[c] - mx);
        out[b] = (float)(1.0 / z);
    }
}

Tensor *ocsampler_loss(Ctx *ctx, const OcSamplerModel *m, Tensor *clips, const int32_t *labels, uint64_t step)
{
    const OcSamplerConfig *c = &m->cfg;
    Tensor *scores = ocsampler_scores(ctx, m, clips); /* (B, T) */
    if (!scores)
        return NULL;
    const int64_t B = clips->shape[0], T = c->frames;
    const int k = c->select, C = c->classes;
    int32_t *draws = malloc((size_t)(B * k) * sizeof *draws);  /* (B, k) draw order */
    int32_t *sorted = malloc((size_t)(B * k) * sizeof *sorted); /* (B, k) time order */
    int32_t *base = malloc((size_t)(B * k) * sizeof *base);     /* (B, k) the TSN baseline clip */
    float *p = malloc((size_t)(B * T) * sizeof *p);             /* (B, T) */
    float *reward = calloc((size_t)B, sizeof *reward);          /* (B) */
    float *lp = malloc((size_t)(B * C) * sizeof *lp), *lb = malloc((size_t)(B * C) * sizeof *lb); /* (B, C) logits */
    float *mp = malloc((size_t)B * sizeof *mp), *mb = malloc((size_t)B * sizeof *mb);             /* (B) max prob */
    Tensor *loss = NULL;
    if (!draws || !sorted || !base || !p || !reward || !lp || !lb || !mp || !mb) {
        ctx_set_error(ctx, "ocsampler: out of memory");
        goto done;
    }
    /* draws ∝ softmax(scores), without replacement; uniform on meta (no values) */
    bool have = bl_to_host(ctx, scores, p);
    if (!ctx_ok(ctx))
        goto done;
    for (int64_t b = 0; b < B; b++) {
        float *row = p + b * T;
        if (have) {
            float mx = row[bl_argmax(row, (int)T)];
            for (int64_t t = 0; t < T; t++)
                row[t] = expf(row[t] - mx);
        } else {
            for (int64_t t = 0; t < T; t++)
                row[t] = 1.0f;
        }
        RngStream s = frame_sampler_stream(ctx->seed, b, BL_SLOT_POLICY, step);
        char err[256];
        if (!sample_without_replacement(row, (int)T, k, &s, 0, draws + b * k, err, sizeof err)) {
            ctx_set_error(ctx, "ocsampler: %s", err);
            goto done;
        }
        memcpy(sorted + b * k, draws + b * k, (size_t)k * sizeof *sorted);
        for (int j = 1; j < k; j++)
            for (int q = j; q > 0 && sorted[b * k + q - 1] > sorted[b * k + q]; q--) {
                int32_t tmp = sorted[b * k + q];
                sorted[b * k + q] = sorted[b * k + q - 1];
                sorted[b * k + q - 1] = tmp;
            }
    }
    bl_segment_indices((int)B, (int)T, k, true, ctx->seed, step, BL_SLOT_SEGMENT, base);
    /* the sampled clip through the classifier as a fixed function: nothing recorded */
    bool rec = ctx->recording;
    ctx->recording = false;
    Tensor *yp = ocsampler_classify(ctx, m, clips, sorted, B);
    ctx->recording = rec;
    Tensor *yb = ocsampler_classify(ctx, m, clips, base, B); /* trains the classifier */
    if (!yp || !yb)
        goto done;
    if (bl_to_host(ctx, yp, lp) && bl_to_host(ctx, yb, lb)) {
        max_prob(lp, B, C, mp);
        max_prob(lb, B, C, mb);
        for (int64_t b = 0; b < B; b++)
            reward[b] = mp[b] - mb[b];
    }
    Tensor *pg = ocsampler_policy_loss(ctx, scores, draws, reward, B, k);
    /* − explore · mean_b H(p_b) = explore/B · Σ p log p */
    Tensor *ent = op_sum_all(ctx, op_mul(ctx, op_softmax(ctx, scores), op_log_softmax(ctx, scores)));
    loss = op_add(ctx, op_add(ctx, bl_cross_entropy(ctx, yb, labels, B), pg),
                  op_scale(ctx, ent, c->explore_rate / (float)B));
done:
    free(draws);
    free(sorted);
    free(base);
    free(p);
    free(reward);
    free(lp);
    free(lb);
    free(mp);
    free(mb);
    return ctx_ok(ctx) ? loss : NULL;
}

bool ocsampler_flops(const OcSamplerConfig *cfg, OcSamplerFlops *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    OcSamplerModel *m = ocsampler_model_create(cfg, BACKEND_META, false, err, err_cap);
    if (!m)
        return false;
    Ctx *ctx = ctx_create(BACKEND_META, 0);
    if (!ctx) {
        ocsampler_model_destroy(m);
        snprintf(err, err_cap, "ocsampler flops: out of memory");
        return false;
    }
    const int T = cfg->frames, s = cfg->sampler_size, S = cfg->frame_size;
    BackboneOutput bo;
    int n = m->cfg.sampler.tsm_segments > 0 ? T : 1; /* a TSM sampler runs whole clips */
    bl_backbone_forward(ctx, &m->sampler, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){n, 3, s, s}), &bo);
    out->sampler_frame = bl_take_macs(ctx) / n;
    op_linear(ctx, tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, m->sampler.feature_dim}), m->score.weight,
              m->score.bias);
    out->score_frame = bl_take_macs(ctx);
    bl_backbone_forward(ctx, &m->backbone, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){1, 3, S, S}), &bo);
    out->backbone_frame = bl_take_macs(ctx);
    exit_classifier_mlp(ctx, &m->head.mlp, tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, m->backbone.feature_dim}));
    out->mlp_frame = bl_take_macs(ctx);
    bl_linear(ctx, &m->head.heads[0], tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, cfg->mlp_width}), 0.0f);
    out->head = bl_take_macs(ctx);
    ocsampler_forward(ctx, m, tensor_new(ctx, DTYPE_F32, 5, (int64_t[]){1, T, 3, S, S}), NULL);
    out->video = bl_take_macs(ctx);
    bool ok = ctx_ok(ctx);
    if (!ok)
        snprintf(err, err_cap, "ocsampler flops: %s", ctx_error_message(ctx));
    ctx_destroy(ctx);
    ocsampler_model_destroy(m);
    return ok;
}

/* ---- presets ---------------------------------------------------------------------------------- */

typedef struct {
    MethodPresetInfo info;
    OcSamplerConfig cfg;
} OcSamplerPreset;

/* configs/activitynet_10to6_resnet50.py: SGD lr 0.001/8·40 (40 videos per GPU on 8 GPUs), wd 1e-4,
 * cosine, 50 epochs, gradient clipping at 40. */
#define OCS_TRAIN {.lr = 0.005f, .weight_decay = 1e-4f, .momentum = 0.9f, .batch_size = 40, .epochs = 50, .grad_clip = 40}
#define SYN_TRAIN {.lr = 0.01f, .weight_decay = 1e-4f, .momentum = 0.9f, .batch_size = 8, .epochs = 20, .grad_clip = 40}
#define MBV2_TSM(w, fold) {.kind = BL_BACKBONE_MOBILENET_V2, .width_mult = (w), .tsm_segments = 1, .tsm_fold_div = (fold)}
/* The synthetic preset's sampler: the official Uni-AdaFocus MobileNetV2 layout, as baselines/tsn.c's
 * synthetic TSN, whose weights initialise it in `make reproduce`. */
#define MBV2_TSM_SYN(w, fold)                                                                                      \
    {.kind = BL_BACKBONE_MOBILENET_V2, .width_mult = (w), .tsm_segments = 1, .tsm_fold_div = (fold),               \
     .mbv2_keys = MOBILENET_V2_KEYS_OFFICIAL}
#define R50(base) {.kind = BL_BACKBONE_RESNET, .depth = 50, .base_width = (base)}
/* The synthetic benchmark's shared ResNet (baselines/tsn.c says why ResNet-18 width 16). */
#define R18(base) {.kind = BL_BACKBONE_RESNET, .depth = 18, .base_width = (base)}
#define OCS_CFG(T, k, S, s, C, sampler_, cls_, W) \
    {.frames = (T), .select = (k), .frame_size = (S), .sampler_size = (s), .classes = (C), .sampler = sampler_, \
     .classifier = cls_, .mlp_width = (W), .explore_rate = 0.1f}

static const OcSamplerPreset PRESETS[] = {
    {{"ocsampler-actnet-10to6", "ocsampler",
      "OCSampler, ActivityNet: MobileNetV2-TSM sampler at 128 on 10 frames, ResNet-50 on the top 6 at 224", OCS_TRAIN},
     OCS_CFG(10, 6, 224, 128, 200, MBV2_TSM(1.0, 10), R50(64), 4096)},
    {{"ocsampler-actnet-10to5", "ocsampler",
      "OCSampler, ActivityNet: as 10to6 with the top 5 frames (paper: 76.9 mAP at 21.7 GFLOPs)", OCS_TRAIN},
     OCS_CFG(10, 5, 224, 128, 200, MBV2_TSM(1.0, 10), R50(64), 4096)},
    {{"ocsampler-synth", "ocsampler",
      "OCSampler on the synthetic benchmark: MobileNetV2 x0.25 TSM sampler at 32 on 8 frames, ResNet-50 width 8 on "
      "the top 4 at 64", SYN_TRAIN},
     OCS_CFG(8, 4, 64, 32, 10, MBV2_TSM_SYN(0.25, 8), R18(16), 64)},
    {{"ocsampler-tiny", "ocsampler", "unit-test size: 4 candidates, top 2 at 32, sampler at 16, 5 classes", SYN_TRAIN},
     OCS_CFG(4, 2, 32, 16, 5, MBV2_TSM(0.25, 8), R50(4), 16)},
};
enum { N_PRESETS = (int)(sizeof PRESETS / sizeof PRESETS[0]) };

const MethodPresetInfo *ocsampler_preset_info(int i) { return i >= 0 && i < N_PRESETS ? &PRESETS[i].info : NULL; }

bool ocsampler_preset_config(const char *name, OcSamplerConfig *cfg)
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
    OcSamplerModel *model;
    double gflops;
} OcSamplerMethod;

static Tensor *ocs_m_forward_exits(Ctx *ctx, Method *m, Tensor *clips, double *sample_gflops)
{
    OcSamplerMethod *o = m->impl;
    if (!bl_check_clips(ctx, m, clips))
        return NULL;
    Tensor *y = ocsampler_forward(ctx, o->model, clips, NULL);
    if (!y)
        return NULL;
    bl_fill_sample_gflops(&o->gflops, 1, clips->shape[0], sample_gflops);
    return op_reshape(ctx, y, 3, (int64_t[]){clips->shape[0], 1, m->classes});
}

static Tensor *ocs_m_train_loss(Ctx *ctx, Method *m, Tensor *clips, Tensor *labels, uint64_t step)
{
    OcSamplerMethod *o = m->impl;
    ctx->step = step;
    if (!bl_check_clips(ctx, m, clips))
        return NULL;
    const int64_t B = clips->shape[0];
    int32_t *lab = malloc((size_t)B * sizeof *lab); /* (B) labels on the host */
    if (!lab) {
        ctx_set_error(ctx, "ocsampler: out of memory");
        return NULL;
    }
    Tensor *loss = bl_labels_host(ctx, labels, B, m->classes, lab) ? ocsampler_loss(ctx, o->model, clips, lab, step)
                                                                   : NULL;
    free(lab);
    return loss;
}

static bool ocs_m_exit_gflops(const Method *m, double *gflops, char *err, size_t err_cap)
{
    (void)err;
    (void)err_cap;
    gflops[0] = ((const OcSamplerMethod *)m->impl)->gflops;
    return true;
}


static void ocs_m_destroy(Method *m)
{
    if (!m)
        return;
    OcSamplerMethod *o = m->impl;
    if (o)
        ocsampler_model_destroy(o->model);
    free(o);
    free(m);
}

static const MethodOps OCS_OPS = {
    .forward_exits = ocs_m_forward_exits,
    .train_loss = ocs_m_train_loss,
    .exit_gflops = ocs_m_exit_gflops,
    .destroy = ocs_m_destroy,
};

Method *ocsampler_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                                uint64_t seed, char *err, size_t err_cap)
{
    OcSamplerConfig cfg;
    if (!ocsampler_preset_config(preset, &cfg)) {
        snprintf(err, err_cap, "ocsampler: unknown preset '%s'", preset ? preset : "(null)");
        return NULL;
    }
    if (ov) {
        if (ov->frames > 0)
            cfg.frames = ov->frames;
        if (ov->focus > 0)
            cfg.select = ov->focus;
        if (ov->frame_size > 0) {
            /* the sampler keeps its share of the frame (128/224 officially) */
            cfg.sampler_size = (int)((int64_t)cfg.sampler_size * ov->frame_size / cfg.frame_size);
            cfg.frame_size = ov->frame_size;
        }
        if (ov->classes > 0)
            cfg.classes = ov->classes;
    }
    OcSamplerFlops fl;
    if (!ocsampler_flops(&cfg, &fl, err, err_cap))
        return NULL;
    OcSamplerMethod *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, err_cap, "ocsampler: out of memory");
        return NULL;
    }
    o->gflops = fl.video * 1e-9;
    if (!(o->model = ocsampler_model_create(&cfg, backend, with_grads, err, err_cap))) {
        free(o);
        return NULL;
    }
    ocsampler_model_init(o->model, seed);
    Method *m = bl_method_new(&OCS_OPS, "ocsampler", preset, o->model->ps, o, cfg.frames, cfg.frame_size, cfg.classes,
                              1, err, err_cap);
    if (!m) {
        ocsampler_model_destroy(o->model);
        free(o);
    }
    return m;
}
