/* frameexit.c — see frameexit.h. */
#include "baselines/frameexit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/init.h"
#include "kernels/ops.h"

#define GATE_BN_EPS 1e-5f /* nn.BatchNorm2d defaults */
#define GATE_BN_MOMENTUM 0.1f

/* The official ActivityNet / Mini-Kinetics config's input_order for 10 frames. */
static const int32_t FE_ORDER_10[10] = {5, 0, 9, 2, 7, 4, 6, 3, 8, 1};

/* ---- configuration ---------------------------------------------------------------------------- */

bool frameexit_config_check(const FrameExitConfig *c, char *err, size_t err_cap)
{
    if (c->frames < 1 || c->frames > FRAMEEXIT_MAX_FRAMES) {
        snprintf(err, err_cap, "frameexit: frames T = %d must be in 1 … %d", c->frames, FRAMEEXIT_MAX_FRAMES);
        return false;
    }
    if (c->frame_size < 16 || c->classes < 1 || c->mlp_width < 1 || c->gate_hidden1 < 1 || c->gate_hidden2 < 1) {
        snprintf(err, err_cap, "frameexit: frame size %d >= 16, classes %d, mlp width %d and gate widths %d, %d >= 1 "
                 "needed", c->frame_size, c->classes, c->mlp_width, c->gate_hidden1, c->gate_hidden2);
        return false;
    }
    if (!(c->first_threshold >= 0.0f && c->first_threshold <= 1.0f && c->gate_threshold >= 0.0f &&
          c->gate_threshold <= 1.0f && c->beta > 0.0f && c->gate_loss_weight >= 0.0f)) {
        snprintf(err, err_cap, "frameexit: thresholds %g and %g must be in [0, 1], beta %g > 0, gate loss weight %g >= 0",
                 (double)c->first_threshold, (double)c->gate_threshold, (double)c->beta, (double)c->gate_loss_weight);
        return false;
    }
    if (c->order) {
        int seen[FRAMEEXIT_MAX_FRAMES] = {0};
        for (int i = 0; i < c->frames; i++) {
            if (c->order[i] < 0 || c->order[i] >= c->frames || seen[c->order[i]]++) {
                snprintf(err, err_cap, "frameexit: the frame order is not a permutation of 0 … %d", c->frames - 1);
                return false;
            }
        }
    }
    return true;
}

void frameexit_order(const FrameExitConfig *cfg, int32_t *order)
{
    if (cfg->order)
        memcpy(order, cfg->order, (size_t)cfg->frames * sizeof *order);
    else
        bl_coarse_to_fine_order(cfg->frames, order);
}

/* ---- model ------------------------------------------------------------------------------------ */

static bool declare_conv_bn(FrameExitConvBn *cb, ParamSet *ps, const char *prefix, const char *conv, const char *bn,
                            int cin, int cout, char *err, size_t err_cap)
{
    char key[BACKBONE_KEY_LEN];
    snprintf(key, sizeof key, "%s%s.weight", prefix, conv);
    cb->weight = params_declare(ps, key, DTYPE_F32, 4, (int64_t[]){cout, cin, 1, 1}, true);
    snprintf(key, sizeof key, "%s%s.bias", prefix, conv);
    cb->bias = cb->weight ? params_declare(ps, key, DTYPE_F32, 1, (int64_t[]){cout}, true) : NULL;
    const char *names[4] = {"weight", "bias", "running_mean", "running_var"};
    Tensor **slot[4] = {&cb->gamma, &cb->beta, &cb->running_mean, &cb->running_var};
    bool ok = cb->bias != NULL;
    for (int i = 0; ok && i < 4; i++) {
        snprintf(key, sizeof key, "%s%s.%s", prefix, bn, names[i]);
        ok = (*slot[i] = params_declare(ps, key, DTYPE_F32, 1, (int64_t[]){cout}, i < 2)) != NULL;
    }
    if (!ok)
        snprintf(err, err_cap, "frameexit: cannot declare %s%s", prefix, conv);
    return ok;
}

void frameexit_model_destroy(FrameExitModel *m)
{
    if (!m)
        return;
    bl_backbone_destroy(&m->backbone);
    bl_pooling_destroy(&m->cls);
    free(m->gates);
    params_destroy(m->ps);
    free(m);
}

FrameExitModel *frameexit_model_create(const FrameExitConfig *cfg, BackendKind backend, bool with_grads, char *err,
                                       size_t err_cap)
{
    if (!frameexit_config_check(cfg, err, err_cap))
        return NULL;
    FrameExitModel *m = calloc(1, sizeof *m);
    if (!m || !(m->ps = params_create())) {
        free(m);
        snprintf(err, err_cap, "frameexit: out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    m->cfg.order = NULL; /* the model keeps its own copy */
    frameexit_order(cfg, m->order);
    const int T = cfg->frames;
    m->n_gates = T > 2 ? T - 2 : 0;
    bool ok = bl_backbone_declare(&m->backbone, &cfg->backbone, m->ps, "backbone.", err, err_cap) &&
              bl_pooling_declare(&m->cls, m->ps, NULL, "classifiers.%d", m->backbone.feature_dim, cfg->mlp_width, T,
                                 cfg->classes, 0.0f, err, err_cap);
    if (ok && m->n_gates > 0 && !(m->gates = calloc((size_t)m->n_gates, sizeof *m->gates))) {
        snprintf(err, err_cap, "frameexit: out of memory");
        ok = false;
    }
    for (int g = 0; ok && g < m->n_gates; g++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "exit_selector.%d.", g);
        FrameExitGate *gt = &m->gates[g];
        ok = declare_conv_bn(&gt->c1, m->ps, prefix, "conv1", "bn1", cfg->mlp_width, cfg->gate_hidden1, err, err_cap) &&
             declare_conv_bn(&gt->c2, m->ps, prefix, "conv2", "bn2", cfg->gate_hidden1, cfg->gate_hidden2, err,
                             err_cap) &&
             linear_declare(&gt->linear, m->ps, prefix, "linear", 2 * cfg->gate_hidden2, 1, err, err_cap);
    }
    if (!ok || !params_allocate(m->ps, backend, with_grads, err, err_cap)) {
        frameexit_model_destroy(m);
        return NULL;
    }
    return m;
}

/* PyTorch's Conv2d default (kaiming-uniform a = √5: U(±1/√fan_in) for weight and bias), BN 1/0. */
static void init_conv_bn_default(const FrameExitConvBn *cb, uint64_t seed)
{
    float k = 1.0f / sqrtf((float)cb->weight->shape[1]);
    init_uniform(cb->weight, seed, -k, k);
    init_uniform(cb->bias, seed, -k, k);
    init_fill(cb->gamma, 1.0f);
    init_fill(cb->beta, 0.0f);
    init_fill(cb->running_mean, 0.0f);
    init_fill(cb->running_var, 1.0f);
}

void frameexit_model_init(FrameExitModel *m, uint64_t seed)
{
    bl_backbone_init(&m->backbone, seed);
    bl_pooling_init(&m->cls, seed);
    for (int g = 0; g < m->n_gates; g++) {
        init_conv_bn_default(&m->gates[g].c1, seed);
        init_conv_bn_default(&m->gates[g].c2, seed);
        init_linear_default(&m->gates[g].linear, seed);
    }
}

/* z (B, W) → conv1 + bn1 + ReLU → conv2 + bn2 + ReLU → (B, hidden2). */
static Tensor *gate_branch(Ctx *ctx, const FrameExitGate *g, Tensor *z)
{
    if (!z)
        return NULL;
    const int64_t B = z->shape[0];
    Tensor *x = op_reshape(ctx, z, 4, (int64_t[]){B, z->shape[1], 1, 1});
    const FrameExitConvBn *cb[2] = {&g->c1, &g->c2};
    for (int i = 0; i < 2; i++) {
        x = op_conv2d(ctx, x, cb[i]->weight, cb[i]->bias, 1, 0, 1);
        x = op_batch_norm(ctx, x, cb[i]->gamma, cb[i]->beta, cb[i]->running_mean, cb[i]->running_var,
                          GATE_BN_MOMENTUM, GATE_BN_EPS);
        x = op_relu(ctx, x);
    }
    return x ? op_reshape(ctx, x, 2, (int64_t[]){B, x->shape[1]}) : NULL;
}

/* The gate on (current, previous) running maxima → (B, 1) continue logit. */
static Tensor *gate_forward(Ctx *ctx, const FrameExitGate *g, Tensor *cur, Tensor *prev)
{
    Tensor *xs[2] = {gate_branch(ctx, g, cur), gate_branch(ctx, g, prev)};
    if (!xs[0] || !xs[1])
        return NULL;
    return op_linear(ctx, op_concat(ctx, xs, 2, 1), g->linear.weight, g->linear.bias);
}

bool frameexit_forward(Ctx *ctx, const FrameExitModel *m, Tensor *clips, FrameExitOutput *out)
{
    memset(out, 0, sizeof *out);
    const FrameExitConfig *c = &m->cfg;
    if (!bl_check_clip_shape(ctx, "frameexit", clips, c->frames, c->frame_size))
        return false;
    const int64_t B = clips->shape[0], T = c->frames;
    int32_t *idx = malloc((size_t)(B * T) * sizeof *idx); /* (B, T): the processing order */
    if (!idx) {
        ctx_set_error(ctx, "frameexit: out of memory");
        return false;
    }
    for (int64_t b = 0; b < B; b++)
        memcpy(idx + b * T, m->order, (size_t)T * sizeof *idx);
    Tensor *frames = bl_gather_frames(ctx, clips, idx, B, T); /* (B·T, 3, S, S) in processing order */
    free(idx);
    BackboneOutput bo;
    ctx_scope_push(ctx, "backbone");
    bool ok = frames && bl_backbone_forward(ctx, &m->backbone, frames, &bo);
    ctx_scope_pop(ctx);
    if (!ok)
        return false;
    ctx_scope_push(ctx, "classifier");
    out->step_logits = bl_pooling_forward(ctx, &m->cls, bo.pooled, B, out->pooled); /* (B, T, C) */
    ctx_scope_pop(ctx);
    ctx_scope_push(ctx, "gates");
    /* the gates read detached features: their loss must not reshape the classifier */
    for (int t = 1; t <= m->n_gates && ctx_ok(ctx); t++)
        out->gate_logit[t] = gate_forward(ctx, &m->gates[t - 1], bl_detach(ctx, out->pooled[t]),
                                          bl_detach(ctx, out->pooled[t - 1]));
    ctx_scope_pop(ctx);
    return ctx_ok(ctx);
}

void frameexit_decide(const float *logits, const float *cont, int B, int T, int C, float first_threshold,
                      float gate_threshold, int32_t *exit_of)
{
    for (int b = 0; b < B; b++) {
        int e = T - 1;
        for (int t = 0; t < T - 1; t++) {
            if (t == 0) {
                /* the official threshold_selection: max softmax > threshold (strict) */
                const float *x = logits + ((int64_t)b * T) * C;
                float mx = x[bl_argmax(x, C)];
                double z = 0;
                for (int k = 0; k < C; k++)
                    z += exp((double)x[k] - mx);
                if (1.0 / z > first_threshold) {
                    e = 0;
                    break;
                }
            } else if (cont[(int64_t)b * T + t] < gate_threshold) {
                /* the official gate: sigmoid >= 0.5 continues, below leaves */
                e = t;
                break;
            }
        }
        exit_of[b] = e;
    }
}

bool frameexit_gate_exits(Ctx *ctx, const FrameExitModel *m, Tensor *clips, int32_t *exit_of)
{
    FrameExitOutput out;
    if (!frameexit_forward(ctx, m, clips, &out))
        return false;
    const int B = (int)clips->shape[0], T = m->cfg.frames, C = m->cfg.classes;
    float *logits = malloc((size_t)B * T * C * sizeof *logits); /* (B, T, C) */
    float *cont = calloc((size_t)B * T, sizeof *cont);           /* (B, T) */
    float *g = malloc((size_t)B * sizeof *g);                    /* (B) */
    bool ok = logits && cont && g && bl_to_host(ctx, out.step_logits, logits);
    for (int t = 1; ok && t <= m->n_gates; t++) {
        ok = bl_to_host(ctx, out.gate_logit[t], g);
        for (int b = 0; ok && b < B; b++)
            cont[(int64_t)b * T + t] = 1.0f / (1.0f + expf(-g[b]));
    }
    if (ok)
        frameexit_decide(logits, cont, B, T, C, m->cfg.first_threshold, m->cfg.gate_threshold, exit_of);
    else if (ctx_ok(ctx))
        ctx_set_error(ctx, "frameexit: exit decisions need data (not the meta backend) and memory");
    free(logits);
    free(cont);
    free(g);
    return ok;
}

bool frameexit_flops(const FrameExitConfig *cfg, FrameExitFlops *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    FrameExitModel *m = frameexit_model_create(cfg, BACKEND_META, false, err, err_cap);
    if (!m)
        return false;
    Ctx *ctx = ctx_create(BACKEND_META, 0);
    if (!ctx) {
        frameexit_model_destroy(m);
        snprintf(err, err_cap, "frameexit flops: out of memory");
        return false;
    }
    const int S = cfg->frame_size, W = cfg->mlp_width, T = cfg->frames;
    BackboneOutput bo;
    bl_backbone_forward(ctx, &m->backbone, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){1, 3, S, S}), &bo);
    out->backbone_frame = bl_take_macs(ctx);
    exit_classifier_mlp(ctx, &m->cls.mlp, tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, m->backbone.feature_dim}));
    out->mlp_frame = bl_take_macs(ctx);
    bl_linear(ctx, &m->cls.heads[0], tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, W}), 0.0f);
    out->head = bl_take_macs(ctx);
    if (m->n_gates > 0) {
        gate_forward(ctx, &m->gates[0], tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, W}),
                     tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, W}));
        out->gate = bl_take_macs(ctx);
    }
    bool ok = ctx_ok(ctx);
    if (!ok)
        snprintf(err, err_cap, "frameexit flops: %s", ctx_error_message(ctx));
    ctx_destroy(ctx);
    int n_gates = m->n_gates;
    frameexit_model_destroy(m);
    if (!ok)
        return false;
    out->n_exits = T;
    for (int t = 0; t < T; t++) {
        int gates = t < n_gates ? t : n_gates; /* gates of steps 1 … min(t, T − 2) ran */
        out->exit[t] = (t + 1) * (out->backbone_frame + out->mlp_frame) + out->head + (t > 0 ? out->head : 0.0) +
                       gates * out->gate;
    }
    return true;
}

Tensor *frameexit_loss(Ctx *ctx, const FrameExitModel *m, Tensor *clips, const int32_t *labels)
{
    FrameExitOutput out;
    if (!frameexit_forward(ctx, m, clips, &out))
        return NULL;
    const int64_t B = clips->shape[0];
    const int T = m->cfg.frames, C = m->cfg.classes;
    Tensor *loss = bl_cross_entropy(ctx, out.step_logits, labels, B); /* mean over steps and videos */
    if (m->n_gates == 0 || m->cfg.gate_loss_weight == 0.0f)
        return loss;
    /* pseudo-labels from each step's classification loss, on the host (no gradient) */
    float *lg = malloc((size_t)B * T * C * sizeof *lg); /* (B, T, C) */
    int32_t *cont = malloc((size_t)B * T * sizeof *cont); /* (B, T): 1 = continue */
    if (!lg || !cont) {
        free(lg);
        free(cont);
        ctx_set_error(ctx, "frameexit: out of memory");
        return NULL;
    }
    bool have = bl_to_host(ctx, out.step_logits, lg);
    for (int64_t b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            if (!have) { /* meta: no values; any labels cost the same */
                cont[b * T + t] = 1;
                continue;
            }
            const float *x = lg + (b * T + t) * C;
            double mx = x[bl_argmax(x, C)], z = 0;
            for (int k = 0; k < C; k++)
                z += exp((double)x[k] - mx);
            double ce = mx + log(z) - x[labels[b]];
            cont[b * T + t] = ce < (double)m->cfg.beta * exp((t + 1) / 2.0) ? 0 : 1;
        }
    free(lg);
    Tensor *gate_sum = NULL;
    for (int t = 1; t <= m->n_gates && ctx_ok(ctx); t++) {
        /* binary cross-entropy of σ(a) as a two-class cross-entropy on logits (0, a) */
        Tensor *two[2] = {tensor_new_zeros(ctx, DTYPE_F32, 2, (int64_t[]){B, 1}), out.gate_logit[t]};
        Tensor *pair = op_concat(ctx, two, 2, 1); /* (B, 2) */
        int32_t *lab = malloc((size_t)B * sizeof *lab); /* (B) continue labels of step t */
        if (!lab) {
            ctx_set_error(ctx, "frameexit: out of memory");
            break;
        }
        for (int64_t b = 0; b < B; b++)
            lab[b] = cont[b * T + t];
        Tensor *lt = bl_from_host(ctx, DTYPE_I32, 1, (int64_t[]){B}, lab);
        free(lab);
        Tensor *bce = op_cross_entropy(ctx, pair, lt);
        gate_sum = gate_sum ? op_add(ctx, gate_sum, bce) : bce;
    }
    free(cont);
    return op_add(ctx, loss, op_scale(ctx, gate_sum, m->cfg.gate_loss_weight / (float)m->n_gates));
}

/* ---- presets ---------------------------------------------------------------------------------- */

typedef struct {
    MethodPresetInfo info;
    FrameExitConfig cfg;
} FrameExitPreset;

#define R50(base) {.kind = BL_BACKBONE_RESNET, .depth = 50, .base_width = (base)}
/* The synthetic benchmark's shared ResNet (baselines/tsn.c says why ResNet-18 width 16). */
#define R18(base) {.kind = BL_BACKBONE_RESNET, .depth = 18, .base_width = (base)}
#define ACT_TRAIN {.lr = 0.002f, .weight_decay = 2e-4f, .momentum = 0.9f, .batch_size = 32, .epochs = 50, .grad_clip = 0}
#define SYN_TRAIN {.lr = 0.01f, .weight_decay = 1e-4f, .momentum = 0.9f, .batch_size = 8, .epochs = 20, .grad_clip = 0}
#define FE_CFG(T, S, C, bb, W, h1, h2, order_) \
    {.frames = (T), .frame_size = (S), .classes = (C), .backbone = bb, .mlp_width = (W), .gate_hidden1 = (h1), \
     .gate_hidden2 = (h2), .first_threshold = 0.99f, .gate_threshold = 0.5f, .beta = 0.1f, .gate_loss_weight = 1.0f, \
     .order = (order_)}

static const FrameExitPreset PRESETS[] = {
    {{"frameexit-r50-10x224", "frameexit",
      "FrameExit, ResNet-50, up to 10 frames at 224, official order (ActivityNet, 200 classes; paper: 26.1 GFLOPs "
      "average)", ACT_TRAIN},
     FE_CFG(10, 224, 200, R50(64), 4096, 128, 64, FE_ORDER_10)},
    {{"frameexit-synth", "frameexit",
      "FrameExit on the synthetic benchmark: ResNet-50 width 8, up to 8 frames at 64, MLP 64", SYN_TRAIN},
     FE_CFG(8, 64, 10, R18(16), 64, 16, 8, NULL)},
    {{"frameexit-tiny", "frameexit", "unit-test size: ResNet-50 width 4, up to 4 frames at 32, 5 classes", SYN_TRAIN},
     FE_CFG(4, 32, 5, R50(4), 16, 8, 4, NULL)},
};
enum { N_PRESETS = (int)(sizeof PRESETS / sizeof PRESETS[0]) };

const MethodPresetInfo *frameexit_preset_info(int i) { return i >= 0 && i < N_PRESETS ? &PRESETS[i].info : NULL; }

bool frameexit_preset_config(const char *name, FrameExitConfig *cfg)
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
    FrameExitModel *model;
    double gflops[FRAMEEXIT_MAX_FRAMES];
} FrameExitMethod;

static Tensor *fe_m_forward_exits(Ctx *ctx, Method *m, Tensor *clips, double *sample_gflops)
{
    FrameExitMethod *f = m->impl;
    if (!bl_check_clips(ctx, m, clips))
        return NULL;
    FrameExitOutput out;
    if (!frameexit_forward(ctx, f->model, clips, &out))
        return NULL;
    bl_fill_sample_gflops(f->gflops, m->n_exits, clips->shape[0], sample_gflops);
    return out.step_logits;
}

static Tensor *fe_m_train_loss(Ctx *ctx, Method *m, Tensor *clips, Tensor *labels, uint64_t step)
{
    FrameExitMethod *f = m->impl;
    ctx->step = step;
    if (!bl_check_clips(ctx, m, clips))
        return NULL;
    const int64_t B = clips->shape[0];
    int32_t *lab = malloc((size_t)B * sizeof *lab); /* (B) labels on the host */
    if (!lab) {
        ctx_set_error(ctx, "frameexit: out of memory");
        return NULL;
    }
    Tensor *loss = bl_labels_host(ctx, labels, B, m->classes, lab) ? frameexit_loss(ctx, f->model, clips, lab) : NULL;
    free(lab);
    return loss;
}

static bool fe_m_exit_gflops(const Method *m, double *gflops, char *err, size_t err_cap)
{
    (void)err;
    (void)err_cap;
    memcpy(gflops, ((const FrameExitMethod *)m->impl)->gflops, (size_t)m->n_exits * sizeof *gflops);
    return true;
}


static void fe_m_destroy(Method *m)
{
    if (!m)
        return;
    FrameExitMethod *f = m->impl;
    if (f)
        frameexit_model_destroy(f->model);
    free(f);
    free(m);
}

static const MethodOps FE_OPS = {
    .forward_exits = fe_m_forward_exits,
    .train_loss = fe_m_train_loss,
    .exit_gflops = fe_m_exit_gflops,
    .destroy = fe_m_destroy,
};

Method *frameexit_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                                uint64_t seed, char *err, size_t err_cap)
{
    FrameExitConfig cfg;
    if (!frameexit_preset_config(preset, &cfg)) {
        snprintf(err, err_cap, "frameexit: unknown preset '%s'", preset ? preset : "(null)");
        return NULL;
    }
    if (ov) {
        if (ov->frames > 0 && ov->frames != cfg.frames) {
            cfg.frames = ov->frames;
            cfg.order = NULL; /* the official list is for 10 frames; the coarse-to-fine rule otherwise */
        }
        if (ov->frame_size > 0)
            cfg.frame_size = ov->frame_size;
        if (ov->classes > 0)
            cfg.classes = ov->classes;
    }
    FrameExitFlops fl;
    if (!frameexit_flops(&cfg, &fl, err, err_cap))
        return NULL;
    FrameExitMethod *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, err_cap, "frameexit: out of memory");
        return NULL;
    }
    for (int t = 0; t < fl.n_exits; t++)
        f->gflops[t] = fl.exit[t] * 1e-9;
    if (!(f->model = frameexit_model_create(&cfg, backend, with_grads, err, err_cap))) {
        free(f);
        return NULL;
    }
    frameexit_model_init(f->model, seed);
    Method *m = bl_method_new(&FE_OPS, "frameexit", preset, f->model->ps, f, cfg.frames, cfg.frame_size, cfg.classes,
                              cfg.frames, err, err_cap);
    if (!m) {
        frameexit_model_destroy(f->model);
        free(f);
    }
    return m;
}
