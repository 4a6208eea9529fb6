/* arnet.c — see arnet.h. */
#include "baselines/arnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/frame_sampler.h"
#include "impl/init.h"
#include "kernels/ops.h"

/* ---- configuration ---------------------------------------------------------------------------- */

bool arnet_config_check(const ArNetConfig *c, char *err, size_t err_cap)
{
    if (c->frames < 1 || c->frame_size < 16 || c->classes < 1 || c->policy_size < 16 || c->lstm_hidden < 1) {
        snprintf(err, err_cap, "arnet: frames %d >= 1, frame size %d >= 16, classes %d >= 1, policy size %d >= 16 and "
                 "LSTM width %d >= 1 needed", c->frames, c->frame_size, c->classes, c->policy_size, c->lstm_hidden);
        return false;
    }
    if (c->n_branches < 1 || c->n_branches > ARNET_MAX_BRANCHES || c->n_skips < 0 || c->n_skips > ARNET_MAX_SKIPS) {
        snprintf(err, err_cap, "arnet: 1 … %d branches and 0 … %d skip actions, got %d and %d", ARNET_MAX_BRANCHES,
                 ARNET_MAX_SKIPS, c->n_branches, c->n_skips);
        return false;
    }
    for (int k = 0; k < c->n_branches; k++)
        if (c->branch_size[k] < 16 || c->branch_size[k] > c->frame_size) {
            snprintf(err, err_cap, "arnet: branch %d side %d must be in 16 … S = %d", k, c->branch_size[k],
                     c->frame_size);
            return false;
        }
    for (int s = 0; s < c->n_skips; s++)
        if (c->skips[s] < 1) {
            snprintf(err, err_cap, "arnet: skip action %d skips %d frames (>= 1 needed)", s, c->skips[s]);
            return false;
        }
    if (!(c->tau0 > 0.0f && c->tau_min > 0.0f && c->tau_decay > 0.0f && c->tau_decay <= 1.0f) ||
        c->tau_decay_steps < 1 || !(c->dropout >= 0.0f && c->dropout < 1.0f)) {
        snprintf(err, err_cap, "arnet: tau0 %g and tau_min %g > 0, decay %g in (0, 1], decay steps %d >= 1, dropout %g "
                 "in [0, 1) needed", (double)c->tau0, (double)c->tau_min, (double)c->tau_decay, c->tau_decay_steps,
                 (double)c->dropout);
        return false;
    }
    return true;
}

float arnet_tau(const ArNetConfig *cfg, uint64_t step)
{
    double tau = cfg->tau0 * pow(cfg->tau_decay, (double)step / cfg->tau_decay_steps);
    return (float)(tau < cfg->tau_min ? cfg->tau_min : tau);
}

/* ---- model ------------------------------------------------------------------------------------ */

static bool measure_flops(const ArNetModel *m, ArNetFlops *out, char *err, size_t err_cap);

void arnet_model_destroy(ArNetModel *m)
{
    if (!m)
        return;
    bl_backbone_destroy(&m->policy);
    for (int k = 0; k < ARNET_MAX_BRANCHES; k++)
        bl_backbone_destroy(&m->branch[k]);
    params_destroy(m->ps);
    free(m);
}

ArNetModel *arnet_model_create(const ArNetConfig *cfg, BackendKind backend, bool with_grads, char *err,
                               size_t err_cap)
{
    if (!arnet_config_check(cfg, err, err_cap))
        return NULL;
    ArNetModel *m = calloc(1, sizeof *m);
    if (!m || !(m->ps = params_create())) {
        free(m);
        snprintf(err, err_cap, "arnet: out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    BlBackboneConfig pc = cfg->policy;
    pc.tsm_segments = 0;
    bool ok = bl_backbone_declare(&m->policy, &pc, m->ps, "lite_backbone.", err, err_cap) &&
              bl_lstm_declare(&m->rnn, m->ps, "rnn.", m->policy.feature_dim, cfg->lstm_hidden, err, err_cap) &&
              linear_declare(&m->policy_fc, m->ps, NULL, "linear", cfg->lstm_hidden, arnet_actions(cfg), err, err_cap);
    for (int k = 0; ok && k < cfg->n_branches; k++) {
        char prefix[64], fc[64];
        snprintf(prefix, sizeof prefix, "base_model_list.%d.", k);
        snprintf(fc, sizeof fc, "new_fc_list.%d", k);
        BlBackboneConfig bc = cfg->branch[k];
        bc.tsm_segments = 0;
        ok = bl_backbone_declare(&m->branch[k], &bc, m->ps, prefix, err, err_cap) &&
             linear_declare(&m->branch_fc[k], m->ps, NULL, fc, m->branch[k].feature_dim, cfg->classes, err, err_cap);
    }
    if (!ok || !params_allocate(m->ps, backend, with_grads, err, err_cap)) {
        arnet_model_destroy(m);
        return NULL;
    }
    /* a meta model measures itself; any other measures its meta twin */
    if (!(backend == BACKEND_META ? measure_flops(m, &m->flops, err, err_cap) : arnet_flops(cfg, &m->flops, err, err_cap))) {
        arnet_model_destroy(m);
        return NULL;
    }
    return m;
}

void arnet_model_init(ArNetModel *m, uint64_t seed)
{
    bl_backbone_init(&m->policy, seed);
    bl_lstm_init(&m->rnn, seed);
    init_linear_default(&m->policy_fc, seed);
    for (int k = 0; k < m->cfg.n_branches; k++) {
        bl_backbone_init(&m->branch[k], seed);
        init_linear_normal(&m->branch_fc[k], seed, 0.001f); /* TSN's new_fc initialisation */
    }
}

void arnet_output_free(ArNetOutput *out)
{
    free(out->actions);
    free(out->cost);
    free(out->policy_logits);
    memset(out, 0, sizeof *out);
}

/* ---- forward ---------------------------------------------------------------------------------- */

/* rows (n, D) of a subset of the B videos, row of video b at slot[b] (−1: none) → (B, D) with zero
 * rows for the others (a gather from [rows; 0], so it is differentiable and counts 0 MACs). */
static Tensor *scatter_rows(Ctx *ctx, Tensor *rows, const int32_t *slot, int64_t B)
{
    if (!rows)
        return NULL;
    const int64_t n = rows->shape[0], D = rows->shape[1];
    Tensor *parts[2] = {rows, tensor_new_zeros(ctx, DTYPE_F32, 2, (int64_t[]){1, D})};
    Tensor *all = op_reshape(ctx, op_concat(ctx, parts, 2, 0), 3, (int64_t[]){1, n + 1, D}); /* (1, n+1, D) */
    int32_t *idx = malloc((size_t)B * sizeof *idx); /* (B) row of each video */
    if (!idx) {
        ctx_set_error(ctx, "arnet: out of memory");
        return NULL;
    }
    for (int64_t b = 0; b < B; b++)
        idx[b] = slot[b] >= 0 ? slot[b] : (int32_t)n;
    Tensor *it = bl_from_host(ctx, DTYPE_I32, 2, (int64_t[]){1, B}, idx);
    free(idx);
    return op_reshape(ctx, op_gather_rows(ctx, all, it), 2, (int64_t[]){B, D});
}

/* Frames at flat indices idx (n) (b·T + t) of clips (1, B·T, 3, S, S) → (n, 3, side, side). */
static Tensor *frames_at(Ctx *ctx, Tensor *flat, const int32_t *idx, int64_t n, int side)
{
    Tensor *it = bl_from_host(ctx, DTYPE_I32, 2, (int64_t[]){1, n}, idx);
    Tensor *f = op_gather_rows(ctx, flat, it); /* (1, n, 3, S, S) */
    if (!f)
        return NULL;
    f = op_reshape(ctx, f, 4, (int64_t[]){n, 3, f->shape[3], f->shape[4]});
    return bl_resize(ctx, f, side);
}

/* A (B, 1) constant of per-video values. */
static Tensor *column(Ctx *ctx, const float *v, int64_t B)
{
    return bl_from_host(ctx, DTYPE_F32, 2, (int64_t[]){B, 1}, v);
}

bool arnet_forward(Ctx *ctx, const ArNetModel *m, Tensor *clips, uint64_t step, ArNetOutput *out)
{
    memset(out, 0, sizeof *out);
    const ArNetConfig *c = &m->cfg;
    if (!bl_check_clip_shape(ctx, "arnet", clips, c->frames, c->frame_size))
        return false;
    const ArNetFlops fl = m->flops;
    const int64_t B = clips->shape[0], T = c->frames, S = c->frame_size;
    const int A = arnet_actions(c), K = c->n_branches, C = c->classes;
    const bool train = ctx->training;
    out->actions = malloc((size_t)(B * T) * sizeof *out->actions);           /* (B, T) */
    out->cost = calloc((size_t)B, sizeof *out->cost);                        /* (B) */
    out->policy_logits = calloc((size_t)(B * T * A), sizeof *out->policy_logits); /* (B, T, A) */
    int32_t *remaining = calloc((size_t)B, sizeof *remaining); /* frames still to skip */
    int32_t *slot = malloc((size_t)B * sizeof *slot);          /* row of each video among the visited */
    int32_t *vis_idx = malloc((size_t)B * sizeof *vis_idx);    /* flat frame index of each visited video */
    float *v = malloc((size_t)B * sizeof *v);                  /* (B) visited: 1 / 0 */
    float *pi = malloc((size_t)(B * A) * sizeof *pi);          /* (B, A) policy logits */
    float *soft = malloc((size_t)(B * A) * sizeof *soft);      /* (B, A) */
    float *delta = malloc((size_t)(B * A) * sizeof *delta);    /* (B, A) one-hot − soft */
    float *noise = malloc((size_t)(B * A) * sizeof *noise);    /* (B, A) Gumbel */
    Tensor **ys = calloc((size_t)T, sizeof *ys);                /* T × (B, 1, A) */
    if (!out->actions || !out->cost || !out->policy_logits || !remaining || !slot || !vis_idx || !v || !pi || !soft ||
        !delta || !noise || !ys) {
        ctx_set_error(ctx, "arnet: out of memory");
        goto done;
    }
    Tensor *flat = op_reshape(ctx, clips, 5, (int64_t[]){1, B * T, 3, S, S});
    Tensor *feat_all = NULL; /* training: (B, T, Dp), every frame's policy feature */
    const int64_t Dp = m->policy.feature_dim;
    if (train) {
        ctx_scope_push(ctx, "policy_cnn");
        Tensor *small = bl_resize(ctx, op_reshape(ctx, clips, 4, (int64_t[]){B * T, 3, S, S}), c->policy_size);
        BackboneOutput bo;
        if (small && bl_backbone_forward(ctx, &m->policy, small, &bo))
            feat_all = op_reshape(ctx, bo.pooled, 3, (int64_t[]){B, T, Dp});
        ctx_scope_pop(ctx);
    }
    const float tau = arnet_tau(c, step);
    Tensor *h = NULL, *cs = NULL;
    for (int64_t t = 0; t < T && ctx_ok(ctx); t++) {
        int64_t n_vis = 0;
        for (int64_t b = 0; b < B; b++) {
            v[b] = remaining[b] == 0 ? 1.0f : 0.0f;
            slot[b] = v[b] > 0 ? (int32_t)n_vis : -1;
            if (v[b] > 0)
                vis_idx[n_vis++] = (int32_t)(b * T + t);
        }
        if (n_vis == 0 && !train) { /* every video skips this frame: nothing runs */
            for (int64_t b = 0; b < B; b++) {
                out->actions[b * T + t] = -1;
                remaining[b]--;
            }
            continue;
        }
        Tensor *f = NULL; /* (B, Dp) */
        if (train) {
            f = op_reshape(ctx, op_slice(ctx, feat_all, 1, t, 1), 2, (int64_t[]){B, Dp});
        } else {
            /* only the visited frames go through the policy CNN */
            ctx_scope_push(ctx, "policy_cnn");
            BackboneOutput bo;
            Tensor *small = frames_at(ctx, flat, vis_idx, n_vis, c->policy_size);
            if (small && bl_backbone_forward(ctx, &m->policy, small, &bo))
                f = scatter_rows(ctx, bo.pooled, slot, B);
            ctx_scope_pop(ctx);
        }
        ctx_scope_push(ctx, "policy_rnn");
        Tensor *h2 = NULL, *c2 = NULL;
        bl_lstm_cell(ctx, &m->rnn, f, h, cs, &h2, &c2);
        Tensor *logits = op_linear(ctx, h2, m->policy_fc.weight, m->policy_fc.bias); /* (B, A) */
        ctx_scope_pop(ctx);
        /* the state moves only where the frame was visited */
        Tensor *vt = column(ctx, v, B);
        h = h ? op_add(ctx, h, op_mul(ctx, op_add(ctx, h2, op_scale(ctx, h, -1.0f)), vt)) : op_mul(ctx, h2, vt);
        cs = cs ? op_add(ctx, cs, op_mul(ctx, op_add(ctx, c2, op_scale(ctx, cs, -1.0f)), vt)) : op_mul(ctx, c2, vt);
        if (!ctx_ok(ctx))
            break;
        if (!bl_to_host(ctx, logits, pi)) {
            if (!ctx_ok(ctx))
                break;
            memset(pi, 0, (size_t)(B * A) * sizeof *pi); /* meta: no values; the first action */
        }
        for (int64_t b = 0; b < B; b++) {
            RngStream s = frame_sampler_stream(ctx->seed, b, BL_SLOT_GUMBEL, step);
            for (int a = 0; a < A; a++)
                noise[b * A + a] = train ? bl_gumbel(&s, (uint64_t)(t * A + a)) : 0.0f;
        }
        for (int64_t b = 0; b < B; b++) {
            int32_t *act = &out->actions[b * T + t];
            if (v[b] == 0) {
                *act = -1;
                remaining[b]--;
                continue;
            }
            memcpy(out->policy_logits + (b * T + t) * A, pi + b * A, (size_t)A * sizeof *pi);
            float z[ARNET_MAX_ACTIONS];
            for (int a = 0; a < A; a++)
                z[a] = pi[b * A + a] + noise[b * A + a];
            int a = bl_argmax(z, A);
            *act = a;
            out->cost[b] += fl.policy_cnn + fl.policy_rnn;
            if (a < K)
                out->cost[b] += fl.branch[a];
            else
                remaining[b] = c->skips[a - K] - 1; /* this frame and the next skips − 1 */
        }
        if (train) {
            /* straight-through Gumbel-Softmax: forward value one-hot, gradient of softmax((π + g)/τ) */
            Tensor *g = bl_from_host(ctx, DTYPE_F32, 2, (int64_t[]){B, A}, noise);
            Tensor *y_soft = op_softmax(ctx, op_scale(ctx, op_add(ctx, logits, g), 1.0f / tau));
            if (!bl_to_host(ctx, y_soft, soft)) {
                if (!ctx_ok(ctx))
                    break;
                memset(soft, 0, (size_t)(B * A) * sizeof *soft);
            }
            for (int64_t b = 0; b < B; b++)
                for (int a = 0; a < A; a++)
                    delta[b * A + a] = (out->actions[b * T + t] == a ? 1.0f : 0.0f) - soft[b * A + a];
            Tensor *y = op_mul(ctx, op_add(ctx, y_soft, bl_from_host(ctx, DTYPE_F32, 2, (int64_t[]){B, A}, delta)), vt);
            ys[t] = op_reshape(ctx, y, 3, (int64_t[]){B, 1, A});
        }
    }
    if (!ctx_ok(ctx))
        goto done;

    /* processed frames per video, for the mean over them (a constant) */
    float *scale = v; /* reuse: (B) T / max(1, processed) */
    for (int64_t b = 0; b < B; b++) {
        int n = 0;
        for (int64_t t = 0; t < T; t++)
            n += out->actions[b * T + t] >= 0 && out->actions[b * T + t] < K;
        scale[b] = (float)T / (float)(n > 0 ? n : 1);
    }
    Tensor *sum = NULL; /* (B, C): Σ over processed frames / T */
    ctx_scope_push(ctx, "branches");
    if (train) {
        out->decisions = T == 1 ? ys[0] : op_concat(ctx, ys, (int)T, 1); /* (B, T, A) */
        Tensor *all = op_reshape(ctx, clips, 4, (int64_t[]){B * T, 3, S, S});
        for (int k = 0; k < K && ctx_ok(ctx); k++) {
            BackboneOutput bo;
            Tensor *x = bl_resize(ctx, all, c->branch_size[k]);
            if (!x || !bl_backbone_forward(ctx, &m->branch[k], x, &bo))
                break;
            Tensor *lk = op_reshape(ctx, bl_linear(ctx, &m->branch_fc[k], bo.pooled, c->dropout), 3,
                                    (int64_t[]){B, T, C});
            Tensor *wk = op_slice(ctx, out->decisions, 2, k, 1); /* (B, T, 1) */
            Tensor *part = op_mean(ctx, op_mul(ctx, lk, wk), 1);  /* (B, C) */
            sum = sum ? op_add(ctx, sum, part) : part;
        }
    } else {
        /* each branch on the frames that chose it, then every frame's row back in place */
        Tensor *rows[ARNET_MAX_BRANCHES + 1];
        int n_rows = 0;
        int32_t *where = malloc((size_t)(B * T) * sizeof *where); /* row of frame (b, t) or −1 */
        int32_t *list = malloc((size_t)(B * T) * sizeof *list);   /* frames of one branch */
        if (!where || !list) {
            free(where);
            free(list);
            ctx_scope_pop(ctx);
            ctx_set_error(ctx, "arnet: out of memory");
            goto done;
        }
        int64_t used = 0;
        for (int64_t i = 0; i < B * T; i++)
            where[i] = -1;
        for (int k = 0; k < K && ctx_ok(ctx); k++) {
            int64_t n = 0;
            for (int64_t i = 0; i < B * T; i++)
                if (out->actions[i] == k) {
                    where[i] = (int32_t)(used + n);
                    list[n++] = (int32_t)i;
                }
            if (n == 0)
                continue;
            BackboneOutput bo;
            Tensor *x = frames_at(ctx, flat, list, n, c->branch_size[k]);
            if (!x || !bl_backbone_forward(ctx, &m->branch[k], x, &bo))
                break;
            rows[n_rows++] = bl_linear(ctx, &m->branch_fc[k], bo.pooled, 0.0f); /* (n, C) */
            used += n;
        }
        rows[n_rows++] = tensor_new_zeros(ctx, DTYPE_F32, 2, (int64_t[]){1, C});
        for (int64_t i = 0; i < B * T; i++)
            if (where[i] < 0)
                where[i] = (int32_t)used; /* the zero row */
        Tensor *table = n_rows == 1 ? rows[0] : op_concat(ctx, rows, n_rows, 0); /* (used + 1, C) */
        table = op_reshape(ctx, table, 3, (int64_t[]){1, used + 1, C});
        Tensor *wt = bl_from_host(ctx, DTYPE_I32, 2, (int64_t[]){1, B * T}, where);
        Tensor *per_frame = op_reshape(ctx, op_gather_rows(ctx, table, wt), 3, (int64_t[]){B, T, C});
        sum = op_mean(ctx, per_frame, 1); /* (B, C) */
        free(where);
        free(list);
    }
    ctx_scope_pop(ctx);
    out->logits = op_mul(ctx, sum, column(ctx, scale, B));
done:
    free(remaining);
    free(slot);
    free(vis_idx);
    free(v);
    free(pi);
    free(soft);
    free(delta);
    free(noise);
    free(ys);
    if (!ctx_ok(ctx)) {
        arnet_output_free(out);
        return false;
    }
    return true;
}

Tensor *arnet_loss(Ctx *ctx, const ArNetModel *m, Tensor *clips, const int32_t *labels, uint64_t step)
{
    ArNetOutput out;
    if (!arnet_forward(ctx, m, clips, step, &out))
        return NULL;
    const ArNetConfig *c = &m->cfg;
    const int64_t B = clips->shape[0], T = c->frames;
    const int A = arnet_actions(c), K = c->n_branches;
    const ArNetFlops fl = m->flops;
    double worst = 0;
    for (int k = 0; k < K; k++)
        worst = fmax(worst, fl.branch[k]);
    float cost[ARNET_MAX_ACTIONS] = {0}; /* per action, normalised by T · the largest branch */
    for (int k = 0; k < K; k++)
        cost[k] = (float)(fl.branch[k] / (worst * (double)T));
    int64_t visited = 0;
    for (int64_t i = 0; i < B * T; i++)
        visited += out.actions[i] >= 0;
    Tensor *ce = bl_cross_entropy(ctx, out.logits, labels, B);
    /* E: the expected branch cost of the decisions, per video */
    Tensor *cv = bl_from_host(ctx, DTYPE_F32, 3, (int64_t[]){1, 1, A}, cost);
    Tensor *eff = op_scale(ctx, op_sum_all(ctx, op_mul(ctx, out.decisions, cv)), 1.0f / (float)B);
    /* U: the actions' usage over the visited frames against uniform */
    Tensor *u = op_scale(ctx, op_mean(ctx, op_mean(ctx, out.decisions, 1), 0),
                         (float)(B * T) / (float)(visited > 0 ? visited : 1)); /* (A) */
    Tensor *d = op_add(ctx, u, bl_const(ctx, -1.0f / (float)A, 1));
    Tensor *usage = op_sum_all(ctx, op_mul(ctx, d, d));
    Tensor *loss = op_add(ctx, op_add(ctx, op_scale(ctx, ce, c->accuracy_weight), op_scale(ctx, eff, c->efficiency_weight)),
                          op_scale(ctx, usage, c->usage_weight));
    arnet_output_free(&out);
    return loss;
}

/* Runs each part of a meta-backend model on its unit of work. */
static bool measure_flops(const ArNetModel *m, ArNetFlops *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    const ArNetConfig *cfg = &m->cfg;
    Ctx *ctx = ctx_create(BACKEND_META, 0);
    if (!ctx) {
        snprintf(err, err_cap, "arnet flops: out of memory");
        return false;
    }
    BackboneOutput bo;
    const int p = cfg->policy_size;
    bl_backbone_forward(ctx, &m->policy, tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){1, 3, p, p}), &bo);
    out->policy_cnn = bl_take_macs(ctx);
    Tensor *h = NULL, *c = NULL;
    bl_lstm_cell(ctx, &m->rnn, tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){1, m->policy.feature_dim}), NULL, NULL, &h, &c);
    op_linear(ctx, h, m->policy_fc.weight, m->policy_fc.bias);
    out->policy_rnn = bl_take_macs(ctx);
    double best = 0;
    for (int k = 0; k < cfg->n_branches; k++) {
        const int s = cfg->branch_size[k];
        bl_backbone_forward(ctx, &m->branch[k], tensor_new(ctx, DTYPE_F32, 4, (int64_t[]){1, 3, s, s}), &bo);
        bl_linear(ctx, &m->branch_fc[k], bo.pooled, 0.0f);
        out->branch[k] = bl_take_macs(ctx);
        best = fmax(best, out->branch[k]);
    }
    out->worst = cfg->frames * (out->policy_cnn + out->policy_rnn + best);
    bool ok = ctx_ok(ctx);
    if (!ok)
        snprintf(err, err_cap, "arnet flops: %s", ctx_error_message(ctx));
    ctx_destroy(ctx);
    return ok;
}

bool arnet_flops(const ArNetConfig *cfg, ArNetFlops *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    ArNetModel *m = arnet_model_create(cfg, BACKEND_META, false, err, err_cap); /* measures itself */
    if (!m)
        return false;
    *out = m->flops;
    arnet_model_destroy(m);
    return true;
}

/* ---- presets ---------------------------------------------------------------------------------- */

typedef struct {
    MethodPresetInfo info;
    ArNetConfig cfg;
} ArNetPreset;

#define MBV2(w) {.kind = BL_BACKBONE_MOBILENET_V2, .width_mult = (w)}
/* The synthetic preset's policy network: the official Uni-AdaFocus MobileNetV2 layout, as
 * baselines/tsn.c's synthetic TSN, whose weights initialise it in `make reproduce`. */
#define MBV2_SYN(w) {.kind = BL_BACKBONE_MOBILENET_V2, .width_mult = (w), .mbv2_keys = MOBILENET_V2_KEYS_OFFICIAL}
#define RN(d, base) {.kind = BL_BACKBONE_RESNET, .depth = (d), .base_width = (base)}
/* AR-Net's joint training (scripts_train.sh, approximately): SGD lr 0.001, wd 1e-4, 50 epochs. */
#define ARN_TRAIN {.lr = 0.001f, .weight_decay = 1e-4f, .momentum = 0.9f, .batch_size = 48, .epochs = 50, .grad_clip = 20}
#define SYN_TRAIN {.lr = 0.01f, .weight_decay = 1e-4f, .momentum = 0.9f, .batch_size = 8, .epochs = 20, .grad_clip = 20}

static const ArNetPreset PRESETS[] = {
    {{"arnet-actnet-16", "arnet",
      "AR-Net, ActivityNet: MobileNetV2 policy at 84 + LSTM 512, ResNet-50/34/18 at 224/168/112 or skip 1/2/4, 16 "
      "frames (paper: 73.8 mAP at 33.5 GFLOPs)", ARN_TRAIN},
     {.frames = 16, .frame_size = 224, .classes = 200, .policy_size = 84, .policy = MBV2(1.0), .lstm_hidden = 512,
      .n_branches = 3, .branch = {RN(50, 64), RN(34, 64), RN(18, 64)}, .branch_size = {224, 168, 112}, .n_skips = 3,
      .skips = {1, 2, 4}, .tau0 = 5.0f, .tau_decay = 0.965f, .tau_min = 0.01f, .tau_decay_steps = 200,
      .accuracy_weight = 0.95f, .efficiency_weight = 0.05f, .usage_weight = 3.0f, .dropout = 0.5f}},
    {{"arnet-synth", "arnet",
      "AR-Net on the synthetic benchmark: MobileNetV2 x0.25 policy at 32, ResNet-18 width 16 at 64/48/32 (the "
      "benchmark's shared ResNet at three resolutions) or skip 1/2, 8 frames", SYN_TRAIN},
     {.frames = 8, .frame_size = 64, .classes = 10, .policy_size = 32, .policy = MBV2_SYN(0.25), .lstm_hidden = 32,
      .n_branches = 3, .branch = {RN(18, 16), RN(18, 16), RN(18, 16)}, .branch_size = {64, 48, 32}, .n_skips = 2,
      .skips = {1, 2}, .tau0 = 5.0f, .tau_decay = 0.965f, .tau_min = 0.01f, .tau_decay_steps = 50,
      .accuracy_weight = 0.95f, .efficiency_weight = 0.05f, .usage_weight = 3.0f, .dropout = 0.5f}},
    {{"arnet-tiny", "arnet", "unit-test size: 4 frames at 32, two branches (32, 16) or skip 1/2, 5 classes",
      SYN_TRAIN},
     {.frames = 4, .frame_size = 32, .classes = 5, .policy_size = 16, .policy = MBV2(0.25), .lstm_hidden = 8,
      .n_branches = 2, .branch = {RN(50, 4), RN(18, 4)}, .branch_size = {32, 16}, .n_skips = 2, .skips = {1, 2},
      .tau0 = 5.0f, .tau_decay = 0.965f, .tau_min = 0.01f, .tau_decay_steps = 50, .accuracy_weight = 0.95f,
      .efficiency_weight = 0.05f, .usage_weight = 3.0f, .dropout = 0.2f}},
};
enum { N_PRESETS = (int)(sizeof PRESETS / sizeof PRESETS[0]) };

const MethodPresetInfo *arnet_preset_info(int i) { return i >= 0 && i < N_PRESETS ? &PRESETS[i].info : NULL; }

bool arnet_preset_config(const char *name, ArNetConfig *cfg)
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
    ArNetModel *model;
    double worst;          /* GFLOPs: the exit's bound */
    int32_t *last_actions; /* (last_B · T) of the last forward_exits */
    int64_t last_B;
} ArNetMethod;

static Tensor *arn_m_forward_exits(Ctx *ctx, Method *m, Tensor *clips, double *sample_gflops)
{
    ArNetMethod *a = m->impl;
    if (!bl_check_clips(ctx, m, clips))
        return NULL;
    ArNetOutput out;
    if (!arnet_forward(ctx, a->model, clips, ctx->step, &out))
        return NULL;
    const int64_t B = clips->shape[0];
    if (sample_gflops)
        for (int64_t b = 0; b < B; b++)
            sample_gflops[b] = out.cost[b] * 1e-9;
    free(a->last_actions);
    a->last_actions = out.actions;
    a->last_B = B;
    out.actions = NULL;
    Tensor *y = op_reshape(ctx, out.logits, 3, (int64_t[]){B, 1, m->classes});
    arnet_output_free(&out);
    return y;
}

static Tensor *arn_m_train_loss(Ctx *ctx, Method *m, Tensor *clips, Tensor *labels, uint64_t step)
{
    ArNetMethod *a = m->impl;
    ctx->step = step;
    if (!bl_check_clips(ctx, m, clips))
        return NULL;
    const int64_t B = clips->shape[0];
    int32_t *lab = malloc((size_t)B * sizeof *lab); /* (B) labels on the host */
    if (!lab) {
        ctx_set_error(ctx, "arnet: out of memory");
        return NULL;
    }
    Tensor *loss = bl_labels_host(ctx, labels, B, m->classes, lab) ? arnet_loss(ctx, a->model, clips, lab, step) : NULL;
    free(lab);
    return loss;
}

/* The one exit's cost is decision-dependent; its bound (every frame, the largest branch) here, the
 * actual per-sample costs from forward_exits. */
static bool arn_m_exit_gflops(const Method *m, double *gflops, char *err, size_t err_cap)
{
    (void)err;
    (void)err_cap;
    gflops[0] = ((const ArNetMethod *)m->impl)->worst;
    return true;
}


static void arn_m_destroy(Method *m)
{
    if (!m)
        return;
    ArNetMethod *a = m->impl;
    if (a) {
        arnet_model_destroy(a->model);
        free(a->last_actions);
    }
    free(a);
    free(m);
}

static const MethodOps ARN_OPS = {
    .forward_exits = arn_m_forward_exits,
    .train_loss = arn_m_train_loss,
    .exit_gflops = arn_m_exit_gflops,
    .destroy = arn_m_destroy,
};

const int32_t *arnet_method_last_actions(const Method *m, int64_t *B, int *T)
{
    const ArNetMethod *a = m && m->ops == &ARN_OPS ? m->impl : NULL;
    if (!a || !a->last_actions)
        return NULL;
    *B = a->last_B;
    *T = m->frames;
    return a->last_actions;
}

Method *arnet_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                            uint64_t seed, char *err, size_t err_cap)
{
    ArNetConfig cfg;
    if (!arnet_preset_config(preset, &cfg)) {
        snprintf(err, err_cap, "arnet: unknown preset '%s'", preset ? preset : "(null)");
        return NULL;
    }
    if (ov) {
        if (ov->frames > 0)
            cfg.frames = ov->frames;
        if (ov->frame_size > 0) {
            /* every side keeps its share of the largest (168/224, 112/224, 84/224 officially) */
            for (int k = 0; k < cfg.n_branches; k++)
                cfg.branch_size[k] = (int)((int64_t)cfg.branch_size[k] * ov->frame_size / cfg.frame_size);
            cfg.policy_size = (int)((int64_t)cfg.policy_size * ov->frame_size / cfg.frame_size);
            cfg.frame_size = ov->frame_size;
        }
        if (ov->classes > 0)
            cfg.classes = ov->classes;
    }
    ArNetMethod *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, err_cap, "arnet: out of memory");
        return NULL;
    }
    if (!(a->model = arnet_model_create(&cfg, backend, with_grads, err, err_cap))) {
        free(a);
        return NULL;
    }
    a->worst = a->model->flops.worst * 1e-9;
    arnet_model_init(a->model, seed);
    Method *m = bl_method_new(&ARN_OPS, "arnet", preset, a->model->ps, a, cfg.frames, cfg.frame_size, cfg.classes, 1,
                              err, err_cap);
    if (!m) {
        arnet_model_destroy(a->model);
        free(a);
    }
    return m;
}
