/* common.c — see common.h. */
#include "baselines/common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/frame_sampler.h"
#include "impl/init.h"
#include "kernels/backend.h"
#include "kernels/device.h"
#include "kernels/ops.h"

/* ---- method records --------------------------------------------------------------------------- */

Method *bl_method_new(const MethodOps *ops, const char *id, const char *preset, ParamSet *ps, void *impl, int frames,
                      int frame_size, int classes, int n_exits, char *err, size_t err_cap)
{
    Method *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, err_cap, "%s: out of memory", id);
        return NULL;
    }
    m->ops = ops;
    m->id = id;
    snprintf(m->preset, sizeof m->preset, "%s", preset ? preset : "");
    m->ps = ps;
    m->impl = impl;
    m->frames = frames;
    m->frame_size = frame_size;
    m->classes = classes;
    m->n_exits = n_exits;
    return m;
}

bool bl_check_clip_shape(Ctx *ctx, const char *what, const Tensor *clips, int T, int S)
{
    if (!ctx_ok(ctx))
        return false;
    if (!clips || clips->dtype != DTYPE_F32 || clips->ndim != 5 || clips->shape[0] < 1 || clips->shape[1] != T ||
        clips->shape[2] != 3 || clips->shape[3] != S || clips->shape[4] != S) {
        char s[96] = "NULL";
        if (clips)
            tensor_shape_str(clips, s, sizeof s);
        ctx_set_error(ctx, "%s: clips must be f32 (B, T = %d, 3, S = %d, S = %d) normalised frames, got %s%s%s", what,
                      T, S, S, clips ? dtype_name(clips->dtype) : "", clips ? " " : "", s);
        return false;
    }
    return true;
}

bool bl_check_clips(Ctx *ctx, const Method *m, const Tensor *clips)
{
    char what[128];
    snprintf(what, sizeof what, "%s (preset %s)", m->id, m->preset);
    return bl_check_clip_shape(ctx, what, clips, m->frames, m->frame_size);
}

void bl_fill_sample_gflops(const double *gflops, int n, int64_t B, double *sample)
{
    if (!sample)
        return;
    for (int64_t b = 0; b < B; b++)
        memcpy(sample + b * n, gflops, (size_t)n * sizeof *gflops);
}

/* ---- backbones -------------------------------------------------------------------------------- */

bool bl_backbone_declare(BlBackbone *bb, const BlBackboneConfig *cfg, ParamSet *ps, const char *prefix, char *err,
                         size_t err_cap)
{
    memset(bb, 0, sizeof *bb);
    bb->cfg = *cfg;
    int fold = cfg->tsm_fold_div > 0 ? cfg->tsm_fold_div : 8;
    if (cfg->kind == BL_BACKBONE_MOBILENET_V2) {
        MobileNetV2Config mc = mobilenet_v2_config_default();
        mc.width_mult = cfg->width_mult;
        mc.num_classes = 0;
        mc.dropout = 0.0f;
        mc.tsm_segments = cfg->tsm_segments;
        mc.tsm_fold_div = fold;
        mc.keys = cfg->mbv2_keys;
        mc.prefix = prefix;
        if (!(bb->mbv2 = mobilenet_v2_create(&mc, ps, err, err_cap)))
            return false;
        bb->feature_dim = bb->mbv2->last_width;
        return true;
    }
    if (cfg->kind == BL_BACKBONE_RESNET) {
        ResNetConfig rc = resnet_config_default();
        rc.depth = cfg->depth;
        rc.base_width = cfg->base_width;
        rc.num_classes = 0;
        rc.tsm_segments = cfg->tsm_segments;
        rc.tsm_fold_div = fold;
        rc.prefix = prefix;
        if (!(bb->resnet = resnet_create(&rc, ps, err, err_cap)))
            return false;
        bb->feature_dim = bb->resnet->feature_dim;
        return true;
    }
    snprintf(err, err_cap, "backbone: unknown kind %d (MobileNetV2 or ResNet)", (int)cfg->kind);
    return false;
}

void bl_backbone_destroy(BlBackbone *bb)
{
    if (!bb)
        return;
    mobilenet_v2_destroy(bb->mbv2);
    resnet_destroy(bb->resnet);
    bb->mbv2 = NULL;
    bb->resnet = NULL;
}

void bl_backbone_init(const BlBackbone *bb, uint64_t seed)
{
    if (bb->mbv2)
        mobilenet_v2_init(bb->mbv2, seed);
    if (bb->resnet)
        resnet_init(bb->resnet, seed);
}

bool bl_backbone_forward(Ctx *ctx, const BlBackbone *bb, Tensor *x, BackboneOutput *out)
{
    memset(out, 0, sizeof *out);
    if (!ctx_ok(ctx))
        return false;
    if (bb->mbv2)
        return mobilenet_v2_forward(ctx, bb->mbv2, x, out);
    if (bb->resnet)
        return resnet_forward(ctx, bb->resnet, x, out);
    ctx_set_error(ctx, "backbone: not declared");
    return false;
}

char *bl_backbone_describe(const BlBackboneConfig *cfg, char *buf, size_t cap)
{
    if (cfg->kind == BL_BACKBONE_MOBILENET_V2)
        snprintf(buf, cap, "MobileNetV2 x%g%s", cfg->width_mult, cfg->tsm_segments > 0 ? ", TSM" : "");
    else
        snprintf(buf, cap, "ResNet-%d (width %d)%s", cfg->depth, cfg->base_width, cfg->tsm_segments > 0 ? ", TSM" : "");
    return buf;
}

Tensor *bl_linear(Ctx *ctx, const Linear *fc, Tensor *x, float dropout)
{
    if (dropout > 0.0f)
        x = op_dropout(ctx, x, dropout);
    return op_linear(ctx, x, fc->weight, fc->bias);
}

/* ---- the pooling classifier ------------------------------------------------------------------ */

bool bl_pooling_declare(BlPoolingClassifier *pc, ParamSet *ps, const char *prefix, const char *heads_fmt, int in_dim,
                        int width, int steps, int classes, float dropout, char *err, size_t err_cap)
{
    memset(pc, 0, sizeof *pc);
    if (in_dim < 1 || width < 1 || steps < 1 || classes < 1) {
        snprintf(err, err_cap, "pooling classifier: input %d, width %d, steps %d and classes %d must be >= 1", in_dim,
                 width, steps, classes);
        return false;
    }
    pc->in_dim = in_dim;
    pc->width = width;
    pc->steps = steps;
    pc->classes = classes;
    pc->dropout = dropout;
    char name[BACKBONE_KEY_LEN], key[BACKBONE_KEY_LEN];
    snprintf(name, sizeof name, "%smlp.layers.0", prefix ? prefix : "");
    if (!linear_declare(&pc->mlp.fc, ps, NULL, name, in_dim, width, err, err_cap))
        return false;
    const char *bn[4] = {"weight", "bias", "running_mean", "running_var"};
    Tensor **slot[4] = {&pc->mlp.gamma, &pc->mlp.beta, &pc->mlp.running_mean, &pc->mlp.running_var};
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "%smlp.layers.1.%s", prefix ? prefix : "", bn[i]);
        if (!(*slot[i] = params_declare(ps, key, DTYPE_F32, 1, (int64_t[]){width}, i < 2))) {
            snprintf(err, err_cap, "pooling classifier: cannot declare %s", key);
            return false;
        }
    }
    if (!(pc->heads = calloc((size_t)steps, sizeof *pc->heads))) {
        snprintf(err, err_cap, "pooling classifier: out of memory");
        return false;
    }
    for (int t = 0; t < steps; t++) {
        char head[BACKBONE_KEY_LEN];
        snprintf(head, sizeof head, heads_fmt, t);
        snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", head);
        if (!linear_declare(&pc->heads[t], ps, NULL, name, width, classes, err, err_cap))
            return false;
    }
    return true;
}

void bl_pooling_destroy(BlPoolingClassifier *pc)
{
    if (!pc)
        return;
    free(pc->heads);
    pc->heads = NULL;
}

void bl_pooling_init(const BlPoolingClassifier *pc, uint64_t seed)
{
    init_linear_default(&pc->mlp.fc, seed);
    init_fill(pc->mlp.gamma, 1.0f);
    init_fill(pc->mlp.beta, 0.0f);
    init_fill(pc->mlp.running_mean, 0.0f);
    init_fill(pc->mlp.running_var, 1.0f);
    for (int t = 0; t < pc->steps; t++)
        init_linear_default(&pc->heads[t], seed);
}

Tensor *bl_pooling_forward(Ctx *ctx, const BlPoolingClassifier *pc, Tensor *feat, int64_t B, Tensor **pooled)
{
    if (!ctx_ok(ctx) || !feat)
        return NULL;
    if (feat->ndim != 2 || feat->shape[1] != pc->in_dim || B < 1 || feat->shape[0] % B != 0 ||
        feat->shape[0] / B > pc->steps) {
        char s[96];
        ctx_set_error(ctx, "pooling classifier: features must be (B·S, %d) with B = %lld and S <= %d, got %s",
                      pc->in_dim, (long long)B, pc->steps, tensor_shape_str(feat, s, sizeof s));
        return NULL;
    }
    const int64_t S = feat->shape[0] / B, W = pc->width;
    ctx_scope_push(ctx, "mlp");
    Tensor *z = exit_classifier_mlp(ctx, &pc->mlp, feat); /* (B·S, W) */
    ctx_scope_pop(ctx);
    z = op_reshape(ctx, z, 3, (int64_t[]){B, S, W}); /* (B, S, W) */
    Tensor *run = NULL;
    Tensor **logits = calloc((size_t)S, sizeof *logits); /* S × (B, 1, C) */
    if (!logits) {
        ctx_set_error(ctx, "pooling classifier: out of memory");
        return NULL;
    }
    ctx_scope_push(ctx, "heads");
    for (int64_t t = 0; t < S && ctx_ok(ctx); t++) {
        Tensor *zt = op_reshape(ctx, op_slice(ctx, z, 1, t, 1), 2, (int64_t[]){B, W}); /* (B, W) */
        run = t == 0 ? zt : op_maximum(ctx, zt, run);
        if (pooled)
            pooled[t] = run;
        Tensor *l = bl_linear(ctx, &pc->heads[t], run, pc->dropout); /* (B, C) */
        logits[t] = op_reshape(ctx, l, 3, (int64_t[]){B, 1, pc->classes});
    }
    ctx_scope_pop(ctx);
    Tensor *out = ctx_ok(ctx) ? (S == 1 ? logits[0] : op_concat(ctx, logits, (int)S, 1)) : NULL; /* (B, S, C) */
    free(logits);
    return out;
}

Tensor *bl_pooling_final(Ctx *ctx, const BlPoolingClassifier *pc, Tensor *feat, int64_t B)
{
    if (!ctx_ok(ctx) || !feat)
        return NULL;
    if (feat->ndim != 2 || feat->shape[1] != pc->in_dim || B < 1 || feat->shape[0] % B != 0) {
        char s[96];
        ctx_set_error(ctx, "pooling classifier: features must be (B·S, %d) with B = %lld, got %s", pc->in_dim,
                      (long long)B, tensor_shape_str(feat, s, sizeof s));
        return NULL;
    }
    const int64_t S = feat->shape[0] / B, W = pc->width;
    ctx_scope_push(ctx, "mlp");
    Tensor *z = op_reshape(ctx, exit_classifier_mlp(ctx, &pc->mlp, feat), 3, (int64_t[]){B, S, W}); /* (B, S, W) */
    ctx_scope_pop(ctx);
    Tensor *run = NULL;
    for (int64_t t = 0; t < S && ctx_ok(ctx); t++) {
        Tensor *zt = op_reshape(ctx, op_slice(ctx, z, 1, t, 1), 2, (int64_t[]){B, W});
        run = t == 0 ? zt : op_maximum(ctx, zt, run);
    }
    ctx_scope_push(ctx, "heads");
    Tensor *y = bl_linear(ctx, &pc->heads[0], run, pc->dropout);
    ctx_scope_pop(ctx);
    return y;
}

/* ---- recurrent cells -------------------------------------------------------------------------- */

static bool declare_rnn(Tensor **w_ih, Tensor **w_hh, Tensor **b_ih, Tensor **b_hh, int gates, ParamSet *ps,
                        const char *prefix, int input, int hidden, char *err, size_t err_cap)
{
    if (input < 1 || hidden < 1) {
        snprintf(err, err_cap, "%s: recurrent cell sizes input %d and hidden %d must be >= 1", prefix, input, hidden);
        return false;
    }
    char key[BACKBONE_KEY_LEN];
    const int64_t G = (int64_t)gates * hidden;
    snprintf(key, sizeof key, "%sweight_ih_l0", prefix);
    *w_ih = params_declare(ps, key, DTYPE_F32, 2, (int64_t[]){G, input}, true);
    snprintf(key, sizeof key, "%sweight_hh_l0", prefix);
    *w_hh = *w_ih ? params_declare(ps, key, DTYPE_F32, 2, (int64_t[]){G, hidden}, true) : NULL;
    snprintf(key, sizeof key, "%sbias_ih_l0", prefix);
    *b_ih = *w_hh ? params_declare(ps, key, DTYPE_F32, 1, (int64_t[]){G}, true) : NULL;
    snprintf(key, sizeof key, "%sbias_hh_l0", prefix);
    *b_hh = *b_ih ? params_declare(ps, key, DTYPE_F32, 1, (int64_t[]){G}, true) : NULL;
    if (!*b_hh) {
        snprintf(err, err_cap, "%s: cannot declare the recurrent cell (duplicate name?)", prefix);
        return false;
    }
    return true;
}

bool bl_gru_declare(BlGru *g, ParamSet *ps, const char *prefix, int input, int hidden, char *err, size_t err_cap)
{
    memset(g, 0, sizeof *g);
    g->input = input;
    g->hidden = hidden;
    return declare_rnn(&g->w_ih, &g->w_hh, &g->b_ih, &g->b_hh, 3, ps, prefix, input, hidden, err, err_cap);
}

bool bl_lstm_declare(BlLstm *l, ParamSet *ps, const char *prefix, int input, int hidden, char *err, size_t err_cap)
{
    memset(l, 0, sizeof *l);
    l->input = input;
    l->hidden = hidden;
    return declare_rnn(&l->w_ih, &l->w_hh, &l->b_ih, &l->b_hh, 4, ps, prefix, input, hidden, err, err_cap);
}

static void init_rnn(Tensor *const *t, int hidden, uint64_t seed)
{
    float k = 1.0f / sqrtf((float)hidden);
    for (int i = 0; i < 4; i++)
        init_uniform(t[i], seed, -k, k);
}

void bl_gru_init(const BlGru *g, uint64_t seed)
{
    Tensor *t[4] = {g->w_ih, g->w_hh, g->b_ih, g->b_hh};
    init_rnn(t, g->hidden, seed);
}

void bl_lstm_init(const BlLstm *l, uint64_t seed)
{
    Tensor *t[4] = {l->w_ih, l->w_hh, l->b_ih, l->b_hh};
    init_rnn(t, l->hidden, seed);
}

Tensor *bl_tanh(Ctx *ctx, Tensor *x)
{
    Tensor *s = op_sigmoid(ctx, op_scale(ctx, x, 2.0f));
    return op_add(ctx, op_scale(ctx, s, 2.0f), bl_const(ctx, -1.0f, x ? x->ndim : 2));
}

/* A zero state (N, H) when the caller gives none. */
static Tensor *zero_state(Ctx *ctx, Tensor *x, int hidden)
{
    if (!x)
        return NULL;
    return tensor_new_zeros(ctx, DTYPE_F32, 2, (int64_t[]){x->shape[0], hidden});
}

static bool check_cell(Ctx *ctx, const char *what, Tensor *x, Tensor *h, int input, int hidden)
{
    if (!ctx_ok(ctx))
        return false;
    if (!x || x->ndim != 2 || x->shape[1] != input || (h && (h->ndim != 2 || h->shape[0] != x->shape[0] ||
                                                             h->shape[1] != hidden))) {
        char sx[96] = "NULL", sh[96] = "none";
        if (x)
            tensor_shape_str(x, sx, sizeof sx);
        if (h)
            tensor_shape_str(h, sh, sizeof sh);
        ctx_set_error(ctx, "%s: input must be (N, %d) and state (N, %d), got %s and %s", what, input, hidden, sx, sh);
        return false;
    }
    return true;
}

Tensor *bl_gru_cell(Ctx *ctx, const BlGru *g, Tensor *x, Tensor *h)
{
    if (!check_cell(ctx, "gru cell", x, h, g->input, g->hidden))
        return NULL;
    const int H = g->hidden;
    if (!h)
        h = zero_state(ctx, x, H);
    Tensor *gi = op_linear(ctx, x, g->w_ih, g->b_ih); /* (N, 3H): r, z, n */
    Tensor *gh = op_linear(ctx, h, g->w_hh, g->b_hh); /* (N, 3H) */
    Tensor *r = op_sigmoid(ctx, op_add(ctx, op_slice(ctx, gi, 1, 0, H), op_slice(ctx, gh, 1, 0, H)));
    Tensor *z = op_sigmoid(ctx, op_add(ctx, op_slice(ctx, gi, 1, H, H), op_slice(ctx, gh, 1, H, H)));
    Tensor *n = bl_tanh(ctx, op_add(ctx, op_slice(ctx, gi, 1, 2 * H, H), op_mul(ctx, r, op_slice(ctx, gh, 1, 2 * H, H))));
    /* (1 − z)·n + z·h = n + z·(h − n) */
    Tensor *d = op_add(ctx, h, op_scale(ctx, n, -1.0f));
    return op_add(ctx, n, op_mul(ctx, z, d));
}

bool bl_lstm_cell(Ctx *ctx, const BlLstm *l, Tensor *x, Tensor *h, Tensor *c, Tensor **h_out, Tensor **c_out)
{
    *h_out = *c_out = NULL;
    if (!check_cell(ctx, "lstm cell", x, h, l->input, l->hidden) || !check_cell(ctx, "lstm cell", x, c, l->input,
                                                                                  l->hidden))
        return false;
    const int H = l->hidden;
    if (!h)
        h = zero_state(ctx, x, H);
    if (!c)
        c = zero_state(ctx, x, H);
    Tensor *gates = op_add(ctx, op_linear(ctx, x, l->w_ih, l->b_ih), op_linear(ctx, h, l->w_hh, l->b_hh)); /* (N, 4H) */
    Tensor *i = op_sigmoid(ctx, op_slice(ctx, gates, 1, 0, H));
    Tensor *f = op_sigmoid(ctx, op_slice(ctx, gates, 1, H, H));
    Tensor *g = bl_tanh(ctx, op_slice(ctx, gates, 1, 2 * H, H));
    Tensor *o = op_sigmoid(ctx, op_slice(ctx, gates, 1, 3 * H, H));
    Tensor *c2 = op_add(ctx, op_mul(ctx, f, c), op_mul(ctx, i, g));
    Tensor *h2 = op_mul(ctx, o, bl_tanh(ctx, c2));
    if (!ctx_ok(ctx))
        return false;
    *h_out = h2;
    *c_out = c2;
    return true;
}

/* ---- frame choices ---------------------------------------------------------------------------- */

void bl_segment_indices(int B, int T, int F, bool train, uint64_t seed, uint64_t step, int slot, int32_t *idx)
{
    for (int b = 0; b < B; b++) {
        RngStream s = frame_sampler_stream(seed, b, slot, step);
        for (int i = 0; i < F; i++) {
            /* segment i: [lo, hi) in integer frames, never empty */
            int lo = (int)(((int64_t)i * T) / F);
            int hi = (int)(((int64_t)(i + 1) * T) / F);
            if (hi <= lo)
                hi = lo + 1;
            if (lo >= T)
                lo = T - 1, hi = T;
            int k;
            if (train)
                k = lo + (int)rng_below(&s, (uint64_t)i, (uint32_t)(hi - lo));
            else
                k = (int)floor(((double)i + 0.5) * (double)T / (double)F);
            idx[(int64_t)b * F + i] = k < 0 ? 0 : k >= T ? T - 1 : k;
        }
    }
}

static bool in_list(const int32_t *list, int n, int32_t v)
{
    for (int i = 0; i < n; i++)
        if (list[i] == v)
            return true;
    return false;
}

void bl_coarse_to_fine_order(int T, int32_t *order)
{
    int n = 0;
    const int32_t first[3] = {(int32_t)((T - 1) / 2), 0, (int32_t)(T - 1)};
    for (int i = 0; i < 3 && n < T; i++)
        if (!in_list(order, n, first[i]))
            order[n++] = first[i];
    for (int64_t q = 2; n < T; q *= 2) {
        /* interval ends floor(linspace(0, T−1, q+1)) = floor(j·(T−1)/q), computed exactly in integers */
        for (int64_t j = 0; j < q && n < T; j++) {
            int64_t a = (j * (T - 1)) / q, b = ((j + 1) * (T - 1)) / q;
            int32_t mid = (int32_t)((a + b) / 2);
            if (!in_list(order, n, mid))
                order[n++] = mid;
        }
    }
}

/* ---- tensors ---------------------------------------------------------------------------------- */

/* kernels/device.h does the copies (any backend); these names stay for the baselines' code. */
Tensor *bl_from_host(Ctx *ctx, DType dtype, int ndim, const int64_t *dims, const void *src)
{
    return run_device_from_host(ctx, dtype, ndim, dims, src);
}

bool bl_to_host(Ctx *ctx, const Tensor *t, void *dst) { return run_device_to_host(ctx, t, dst); }

Tensor *bl_const(Ctx *ctx, float value, int ndim)
{
    int64_t dims[TENSOR_MAX_DIMS] = {1, 1, 1, 1, 1};
    if (ndim < 1 || ndim > TENSOR_MAX_DIMS) {
        ctx_set_error(ctx, "baselines: a constant needs 1 to %d dims, got %d", TENSOR_MAX_DIMS, ndim);
        return NULL;
    }
    return bl_from_host(ctx, DTYPE_F32, ndim, dims, &value);
}

Tensor *bl_detach(Ctx *ctx, Tensor *t) { return t ? tensor_view(ctx, t, t->ndim, t->shape) : NULL; }

Tensor *bl_gather_frames(Ctx *ctx, Tensor *clips, const int32_t *idx, int64_t B, int64_t F)
{
    if (!ctx_ok(ctx) || !clips)
        return NULL;
    Tensor *it = bl_from_host(ctx, DTYPE_I32, 2, (int64_t[]){B, F}, idx);
    Tensor *f = op_gather_rows(ctx, clips, it); /* (B, F, 3, S, S) */
    if (!f)
        return NULL;
    return op_reshape(ctx, f, 4, (int64_t[]){B * F, f->shape[2], f->shape[3], f->shape[4]});
}

Tensor *bl_resize(Ctx *ctx, Tensor *x, int size)
{
    if (!ctx_ok(ctx) || !x)
        return NULL;
    if (x->ndim != 4 || size < 1) {
        char s[96];
        ctx_set_error(ctx, "resize: x must be (N, C, H, W) and the size >= 1, got %s and %d",
                      tensor_shape_str(x, s, sizeof s), size);
        return NULL;
    }
    if (x->shape[2] == size && x->shape[3] == size)
        return x;
    const int64_t N = x->shape[0];
    float *th = malloc((size_t)N * 6 * sizeof *th); /* (N, 2, 3) identity */
    if (!th) {
        ctx_set_error(ctx, "resize: out of memory");
        return NULL;
    }
    for (int64_t n = 0; n < N; n++) {
        const float id[6] = {1, 0, 0, 0, 1, 0};
        memcpy(th + n * 6, id, sizeof id);
    }
    Tensor *theta = bl_from_host(ctx, DTYPE_F32, 3, (int64_t[]){N, 2, 3}, th);
    free(th);
    return op_patch_crop(ctx, x, theta, size);
}

bool bl_labels_host(Ctx *ctx, const Tensor *labels, int64_t B, int C, int32_t *out)
{
    if (!ctx_ok(ctx))
        return false;
    if (!labels || labels->dtype != DTYPE_I32 || labels->ndim != 1 || labels->shape[0] != B) {
        char s[96] = "NULL";
        if (labels)
            tensor_shape_str(labels, s, sizeof s);
        ctx_set_error(ctx, "train: labels must be i32 (B = %lld), got %s%s%s", (long long)B,
                      labels ? dtype_name(labels->dtype) : "", labels ? " " : "", s);
        return false;
    }
    if (!labels->data) { /* meta: any valid labels */
        memset(out, 0, (size_t)B * sizeof *out);
        return true;
    }
    if (!bl_to_host(ctx, labels, out))
        return false;
    for (int64_t b = 0; b < B; b++)
        if (out[b] < 0 || out[b] >= C) {
            ctx_set_error(ctx, "train: clip %lld has label %d, outside the model's %d classes", (long long)b,
                          (int)out[b], C);
            return false;
        }
    return true;
}

Tensor *bl_cross_entropy(Ctx *ctx, Tensor *logits, const int32_t *labels, int64_t B)
{
    if (!ctx_ok(ctx) || !logits)
        return NULL;
    int64_t C = logits->shape[logits->ndim - 1];
    int64_t M = tensor_numel(logits) / C;
    if (B < 1 || M % B != 0) {
        char s[96];
        ctx_set_error(ctx, "cross-entropy: logits %s do not split into rows of the B = %lld videos",
                      tensor_shape_str(logits, s, sizeof s), (long long)B);
        return NULL;
    }
    int64_t R = M / B;
    int32_t *rows = malloc((size_t)M * sizeof *rows); /* (B·R) */
    if (!rows) {
        ctx_set_error(ctx, "cross-entropy: out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < M; i++)
        rows[i] = labels[i / R];
    Tensor *lt = bl_from_host(ctx, DTYPE_I32, 1, (int64_t[]){M}, rows);
    free(rows);
    Tensor *x = op_reshape(ctx, logits, 2, (int64_t[]){M, C});
    return op_cross_entropy(ctx, x, lt);
}

float bl_gumbel(const RngStream *s, uint64_t i)
{
    float u = rng_uniform(s, i);
    if (u < 1e-7f)
        u = 1e-7f;
    if (u > 1.0f - 1e-7f)
        u = 1.0f - 1e-7f;
    return -logf(-logf(u));
}

int bl_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* ---- cost ------------------------------------------------------------------------------------- */

double bl_take_macs(Ctx *ctx)
{
    double v = ctx_total_macs(ctx);
    ctx_reset_counters(ctx);
    ctx_begin_pass(ctx);
    return v;
}
