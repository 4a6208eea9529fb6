/* x3d.c — see x3d.h. */
#include "impl/x3d.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/init.h"
#include "kernels/ops.h"

enum { KEY_LEN = 192 };

static const int STAGE_BASE_DEPTH[X3D_STAGES] = {1, 2, 5, 3};

X3dConfig x3d_config(X3dVariant v)
{
    X3dConfig c = {.width_factor = 2.0,
                   .depth_factor = v == X3D_L ? 5.0 : 2.2,
                   .bottleneck_factor = 2.25,
                   .dim_c1 = 12,
                   .dim_c5 = 2048,
                   .se_ratio = 0.0625,
                   .stem_temporal_kernel = 5,
                   .num_classes = 400,
                   .dropout = 0.5f,
                   .zero_init_final_bn = true,
                   .detach_head = false,
                   .prefix = NULL};
    return c;
}

void x3d_standard_input(X3dVariant v, int *frames, int *crop)
{
    static const int F[] = {4, 13, 16, 16}, S[] = {160, 160, 224, 312};
    int i = (int)v < 0 || (int)v > 3 ? 1 : (int)v;
    *frames = F[i];
    *crop = S[i];
}

int x3d_round_width(double width, double multiplier, int min_width, int divisor)
{
    if (multiplier == 0.0)
        return (int)width;
    width *= multiplier;
    if (min_width == 0)
        min_width = divisor;
    int out = (int)(width + divisor / 2.0) / divisor * divisor;
    if (out < min_width)
        out = min_width;
    if (out < 0.9 * width)
        out += divisor;
    return out;
}

/* ---- declaration ------------------------------------------------------------------------------ */

static Tensor *declare(X3d *m, const char *name, int ndim, const int64_t *dims, bool trainable, char *err,
                       size_t err_cap)
{
    char key[KEY_LEN];
    int n = snprintf(key, sizeof key, "%s%s", m->prefix, name);
    if (n < 0 || n >= (int)sizeof key) {
        snprintf(err, err_cap, "x3d: key '%s%s' is too long", m->prefix, name);
        return NULL;
    }
    Tensor *t = params_declare(m->ps, key, DTYPE_F32, ndim, dims, trainable);
    if (!t)
        snprintf(err, err_cap, "x3d: could not declare \"%s\" (duplicate name, bad shape, or the parameter set is "
                               "already allocated)", key);
    return t;
}

/* conv `conv` (cout, cin/groups, k[0..2]) and batch norm `bn` (cout); padding k/2 unless pad given. */
static bool convbn_declare(X3d *m, X3dConvBn *cb, const char *conv, const char *bn, int cin, int cout,
                           const int k[3], const int stride[3], const int pad[3], int groups, char *err,
                           size_t err_cap)
{
    memset(cb, 0, sizeof *cb);
    char wname[KEY_LEN];
    snprintf(wname, sizeof wname, "%s.weight", conv);
    cb->weight = declare(m, wname, 5, (int64_t[]){cout, cin / groups, k[0], k[1], k[2]}, true, err, err_cap);
    if (!cb->weight)
        return false;
    for (int i = 0; i < 3; i++) {
        cb->stride[i] = stride[i];
        cb->pad[i] = pad ? pad[i] : k[i] / 2;
    }
    cb->groups = groups;
    if (!bn)
        return true;
    char name[KEY_LEN];
    const char *suffix[4] = {".weight", ".bias", ".running_mean", ".running_var"};
    Tensor **dst[4] = {&cb->gamma, &cb->beta, &cb->running_mean, &cb->running_var};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s%s", bn, suffix[i]);
        *dst[i] = declare(m, name, 1, (int64_t[]){cout}, i < 2, err, err_cap);
        if (!*dst[i])
            return false;
    }
    return true;
}

static const int K111[3] = {1, 1, 1}, S111[3] = {1, 1, 1};

static bool block_declare(X3d *m, X3dBlock *blk, int stage, int j, int din, int dout, int inner, int stride,
                          char *err, size_t err_cap)
{
    char p[64], cn[KEY_LEN], bn[KEY_LEN];
    snprintf(p, sizeof p, "s%d.pathway0_res%d.", stage + 2, j);
    memset(blk, 0, sizeof *blk);
    const int sp[3] = {1, stride, stride};
    blk->has_branch1 = din != dout || stride != 1;
    if (blk->has_branch1) {
        snprintf(cn, sizeof cn, "%sbranch1", p);
        snprintf(bn, sizeof bn, "%sbranch1_bn", p);
        if (!convbn_declare(m, &blk->branch1, cn, bn, din, dout, K111, sp, NULL, 1, err, err_cap))
            return false;
    }
    const int k333[3] = {3, 3, 3};
    snprintf(cn, sizeof cn, "%sbranch2.a", p);
    snprintf(bn, sizeof bn, "%sbranch2.a_bn", p);
    if (!convbn_declare(m, &blk->a, cn, bn, din, inner, K111, S111, NULL, 1, err, err_cap))
        return false;
    snprintf(cn, sizeof cn, "%sbranch2.b", p);
    snprintf(bn, sizeof bn, "%sbranch2.b_bn", p);
    if (!convbn_declare(m, &blk->b, cn, bn, inner, inner, k333, sp, NULL, inner, err, err_cap))
        return false;
    /* SE on blocks 0, 2, 4, … of each stage: the official `(block_idx + 1) % 2` */
    blk->has_se = m->cfg.se_ratio > 0.0 && j % 2 == 0;
    if (blk->has_se) {
        int r = x3d_round_width(inner, m->cfg.se_ratio, 8, 8);
        blk->se_dim = r;
        snprintf(cn, sizeof cn, "%sbranch2.se.fc1.weight", p);
        blk->se_w1 = declare(m, cn, 5, (int64_t[]){r, inner, 1, 1, 1}, true, err, err_cap);
        snprintf(cn, sizeof cn, "%sbranch2.se.fc1.bias", p);
        blk->se_b1 = blk->se_w1 ? declare(m, cn, 1, (int64_t[]){r}, true, err, err_cap) : NULL;
        snprintf(cn, sizeof cn, "%sbranch2.se.fc2.weight", p);
        blk->se_w2 = blk->se_b1 ? declare(m, cn, 5, (int64_t[]){inner, r, 1, 1, 1}, true, err, err_cap) : NULL;
        snprintf(cn, sizeof cn, "%sbranch2.se.fc2.bias", p);
        blk->se_b2 = blk->se_w2 ? declare(m, cn, 1, (int64_t[]){inner}, true, err, err_cap) : NULL;
        if (!blk->se_b2)
            return false;
    }
    snprintf(cn, sizeof cn, "%sbranch2.c", p);
    snprintf(bn, sizeof bn, "%sbranch2.c_bn", p);
    return convbn_declare(m, &blk->c, cn, bn, inner, dout, K111, S111, NULL, 1, err, err_cap);
}

X3d *x3d_create(const X3dConfig *cfg, ParamSet *ps, char *err, size_t err_cap)
{
    if (!cfg || !ps) {
        snprintf(err, err_cap, "x3d: no configuration or parameter set");
        return NULL;
    }
    if (!(cfg->width_factor > 0) || !(cfg->depth_factor > 0) || !(cfg->bottleneck_factor > 0) || cfg->dim_c1 < 1 ||
        cfg->dim_c5 < 1 || cfg->se_ratio < 0 || cfg->stem_temporal_kernel < 1 || cfg->stem_temporal_kernel % 2 == 0 ||
        cfg->num_classes < 0 || cfg->dropout < 0 || cfg->dropout >= 1) {
        snprintf(err, err_cap, "x3d: bad configuration (width factor %g, depth factor %g, bottleneck factor %g, "
                 "dim_c1 %d, dim_c5 %d, se ratio %g, stem temporal kernel %d (odd), classes %d, dropout %g)",
                 cfg->width_factor, cfg->depth_factor, cfg->bottleneck_factor, cfg->dim_c1, cfg->dim_c5,
                 cfg->se_ratio, cfg->stem_temporal_kernel, cfg->num_classes, (double)cfg->dropout);
        return NULL;
    }
    X3d *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, err_cap, "x3d: out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    snprintf(m->prefix, sizeof m->prefix, "%s", cfg->prefix ? cfg->prefix : "");
    if (cfg->prefix && strlen(cfg->prefix) >= sizeof m->prefix) {
        snprintf(err, err_cap, "x3d: prefix '%s' is longer than %zu characters", cfg->prefix, sizeof m->prefix - 1);
        free(m);
        return NULL;
    }
    m->cfg.prefix = m->prefix;
    m->ps = ps;

    /* widths: the stem, then dim_c1 doubled per stage with round_width(divisor 8), times γ_w */
    int base[X3D_STAGES];
    base[0] = cfg->dim_c1; /* X3D.SCALE_RES2 false */
    for (int s = 1; s < X3D_STAGES; s++)
        base[s] = x3d_round_width(base[s - 1], 2.0, 8, 8);
    m->stem_width = x3d_round_width(cfg->dim_c1, cfg->width_factor, 1, 1);
    int total = 0;
    for (int s = 0; s < X3D_STAGES; s++) {
        m->width[s] = x3d_round_width(base[s], cfg->width_factor, 1, 1);
        m->inner[s] = (int)(cfg->bottleneck_factor * m->width[s]);
        m->depth[s] = (int)ceil(cfg->depth_factor * STAGE_BASE_DEPTH[s]);
        total += m->depth[s];
    }
    if (total > X3D_MAX_BLOCKS) {
        snprintf(err, err_cap, "x3d: %d blocks exceed the limit of %d (depth factor %g)", total, X3D_MAX_BLOCKS,
                 cfg->depth_factor);
        free(m);
        return NULL;
    }
    m->feature_dim = m->inner[X3D_STAGES - 1];

    const int kxy[3] = {1, 3, 3}, sxy[3] = {1, 2, 2}, pxy[3] = {0, 1, 1};
    const int kt[3] = {cfg->stem_temporal_kernel, 1, 1};
    bool ok = convbn_declare(m, &m->stem_xy, "s1.pathway0_stem.conv_xy", NULL, 3, m->stem_width, kxy, sxy, pxy, 1,
                             err, err_cap) &&
              convbn_declare(m, &m->stem_t, "s1.pathway0_stem.conv", "s1.pathway0_stem.bn", m->stem_width,
                             m->stem_width, kt, S111, NULL, m->stem_width, err, err_cap);
    int din = m->stem_width;
    for (int s = 0; ok && s < X3D_STAGES; s++) {
        for (int j = 0; ok && j < m->depth[s]; j++) {
            int i = m->n_blocks++;
            m->block_stage[i] = s;
            m->block_index[i] = j;
            ok = block_declare(m, &m->blocks[i], s, j, j == 0 ? din : m->width[s], m->width[s], m->inner[s],
                               j == 0 ? 2 : 1, err, err_cap);
        }
        din = m->width[s];
    }
    ok = ok && convbn_declare(m, &m->conv5, "head.conv_5", "head.conv_5_bn", din, m->feature_dim, K111, S111, NULL,
                              1, err, err_cap);
    if (ok && cfg->num_classes > 0) {
        m->lin5 = declare(m, "head.lin_5.weight", 5, (int64_t[]){cfg->dim_c5, m->feature_dim, 1, 1, 1}, true, err,
                          err_cap);
        m->proj_w = m->lin5 ? declare(m, "head.projection.weight", 2, (int64_t[]){cfg->num_classes, cfg->dim_c5},
                                      true, err, err_cap)
                            : NULL;
        m->proj_b = m->proj_w ? declare(m, "head.projection.bias", 1, (int64_t[]){cfg->num_classes}, true, err,
                                        err_cap)
                              : NULL;
        ok = m->proj_b != NULL;
    }
    if (!ok) {
        free(m);
        return NULL;
    }
    return m;
}

void x3d_destroy(X3d *m) { free(m); }

/* ---- initialisation --------------------------------------------------------------------------- */

static void convbn_init(const X3dConvBn *cb, uint64_t seed, float gamma)
{
    init_kaiming_normal_fan_out(cb->weight, seed);
    if (cb->gamma) {
        init_fill(cb->gamma, gamma);
        init_fill(cb->beta, 0.0f);
        init_fill(cb->running_mean, 0.0f);
        init_fill(cb->running_var, 1.0f);
    }
}

void x3d_init(const X3d *m, uint64_t seed)
{
    convbn_init(&m->stem_xy, seed, 1.0f);
    convbn_init(&m->stem_t, seed, 1.0f);
    for (int i = 0; i < m->n_blocks; i++) {
        const X3dBlock *b = &m->blocks[i];
        if (b->has_branch1)
            convbn_init(&b->branch1, seed, 1.0f);
        convbn_init(&b->a, seed, 1.0f);
        convbn_init(&b->b, seed, 1.0f);
        convbn_init(&b->c, seed, m->cfg.zero_init_final_bn ? 0.0f : 1.0f);
        if (b->has_se) {
            init_kaiming_normal_fan_out(b->se_w1, seed);
            init_kaiming_normal_fan_out(b->se_w2, seed);
            init_fill(b->se_b1, 0.0f);
            init_fill(b->se_b2, 0.0f);
        }
    }
    convbn_init(&m->conv5, seed, 1.0f);
    if (m->lin5) {
        init_kaiming_normal_fan_out(m->lin5, seed);
        init_normal(m->proj_w, seed, 0.0f, 0.01f);
        init_fill(m->proj_b, 0.0f);
    }
}

/* ---- forward ---------------------------------------------------------------------------------- */

static Tensor *conv(Ctx *ctx, const X3dConvBn *cb, Tensor *x)
{
    return op_conv3d(ctx, x, cb->weight, NULL, cb->stride, cb->pad, cb->groups);
}

static Tensor *bn(Ctx *ctx, const X3dConvBn *cb, Tensor *y)
{
    return op_batch_norm(ctx, y, cb->gamma, cb->beta, cb->running_mean, cb->running_var, X3D_BN_MOMENTUM, X3D_BN_EPS);
}

/* Squeeze-excitation: x (N, C, T, H, W) · σ(fc2(ReLU(fc1(mean x)))), the gate broadcast over T, H, W. */
static Tensor *se_forward(Ctx *ctx, const X3dBlock *blk, Tensor *x)
{
    if (!x)
        return NULL;
    const int64_t N = x->shape[0], C = x->shape[1];
    static const int s1[3] = {1, 1, 1}, p0[3] = {0, 0, 0};
    Tensor *s = op_reshape(ctx, op_global_avg_pool(ctx, x), 5, (int64_t[]){N, C, 1, 1, 1}); /* (N, C, 1, 1, 1) */
    s = op_relu(ctx, op_conv3d(ctx, s, blk->se_w1, blk->se_b1, s1, p0, 1));                /* (N, r, 1, 1, 1) */
    s = op_sigmoid(ctx, op_conv3d(ctx, s, blk->se_w2, blk->se_b2, s1, p0, 1));             /* (N, C, 1, 1, 1) */
    return op_mul(ctx, x, s);
}

Tensor *x3d_block_forward(Ctx *ctx, const X3dBlock *blk, Tensor *x)
{
    if (!x || !ctx_ok(ctx))
        return NULL;
    Tensor *f = op_relu(ctx, bn(ctx, &blk->a, conv(ctx, &blk->a, x)));
    f = bn(ctx, &blk->b, conv(ctx, &blk->b, f));
    if (blk->has_se)
        f = se_forward(ctx, blk, f);
    f = op_swish(ctx, f);
    f = bn(ctx, &blk->c, conv(ctx, &blk->c, f));
    Tensor *sc = blk->has_branch1 ? bn(ctx, &blk->branch1, conv(ctx, &blk->branch1, x)) : x;
    return op_relu(ctx, op_add(ctx, sc, f));
}

bool x3d_forward(Ctx *ctx, const X3d *m, Tensor *x, X3dOutput *out)
{
    memset(out, 0, sizeof *out);
    if (!x || !ctx_ok(ctx))
        return false;
    if (x->ndim != 5 || x->shape[1] != 3 || x->dtype != DTYPE_F32) {
        char s[96];
        ctx_set_error(ctx, "x3d: the clip must be f32 (N, 3, T, H, W), got %s", tensor_shape_str(x, s, sizeof s));
        return false;
    }
    ctx_scope_push(ctx, "s1");
    Tensor *y = op_relu(ctx, bn(ctx, &m->stem_t, conv(ctx, &m->stem_t, conv(ctx, &m->stem_xy, x))));
    ctx_scope_pop(ctx);
    for (int i = 0; i < m->n_blocks; i++) {
        char scope[16];
        snprintf(scope, sizeof scope, "s%d", m->block_stage[i] + 2);
        ctx_scope_push(ctx, scope);
        y = x3d_block_forward(ctx, &m->blocks[i], y);
        ctx_scope_pop(ctx);
    }
    ctx_scope_push(ctx, "head");
    Tensor *feat = op_relu(ctx, bn(ctx, &m->conv5, conv(ctx, &m->conv5, y))); /* (N, D, T, h, w) */
    Tensor *frames = feat ? op_mean(ctx, op_mean(ctx, feat, 4), 3) : NULL;    /* (N, D, T) */
    Tensor *logits = NULL;
    if (m->lin5 && feat) {
        const int64_t N = feat->shape[0], D = feat->shape[1];
        Tensor *src = m->cfg.detach_head ? tensor_view(ctx, feat, feat->ndim, feat->shape) : feat;
        static const int s1[3] = {1, 1, 1}, p0[3] = {0, 0, 0};
        Tensor *p = op_reshape(ctx, op_global_avg_pool(ctx, src), 5, (int64_t[]){N, D, 1, 1, 1});
        Tensor *h = op_relu(ctx, op_conv3d(ctx, p, m->lin5, NULL, s1, p0, 1)); /* (N, dim_c5, 1, 1, 1) */
        h = op_reshape(ctx, h, 2, (int64_t[]){N, m->cfg.dim_c5});
        if (m->cfg.dropout > 0)
            h = op_dropout(ctx, h, m->cfg.dropout);
        logits = op_linear(ctx, h, m->proj_w, m->proj_b); /* (N, classes) */
    }
    ctx_scope_pop(ctx);
    if (!ctx_ok(ctx))
        return false;
    out->features = feat;
    out->frame_features = frames;
    out->logits = logits;
    return true;
}

bool x3d_count_macs(const X3dConfig *cfg, int frames, int size, double *macs, char *err, size_t err_cap)
{
    ParamSet *ps = params_create();
    Ctx *ctx = ps ? ctx_create(BACKEND_META, 0) : NULL;
    X3d *m = ctx ? x3d_create(cfg, ps, err, err_cap) : NULL;
    bool ok = false;
    if (!ps || !ctx) {
        snprintf(err, err_cap, "x3d: out of memory");
    } else if (m && params_allocate(ps, BACKEND_META, false, err, err_cap)) {
        ctx_begin_pass(ctx);
        ctx_reset_counters(ctx);
        X3dOutput out;
        Tensor *x = tensor_new(ctx, DTYPE_F32, 5, (int64_t[]){1, 3, frames, size, size});
        ok = x3d_forward(ctx, m, x, &out);
        if (ok)
            *macs = ctx_total_macs(ctx);
        else
            snprintf(err, err_cap, "%s", ctx_error_message(ctx));
    }
    x3d_destroy(m);
    if (ctx)
        ctx_destroy(ctx);
    params_destroy(ps);
    return ok;
}
