/* mobilenet_v2.c — see mobilenet_v2.h. */
#include "impl/mobilenet_v2.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/init.h"
#include "kernels/ops.h"

/* The inverted-residual settings of the paper: expansion t, width c, repeats n, first stride s. */
static const int SETTINGS[7][4] = {
    {1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
};

MobileNetV2Config mobilenet_v2_config_default(void)
{
    return (MobileNetV2Config){.width_mult = 1.0, .num_classes = 1000, .dropout = 0.2f, .tsm_fold_div = 8};
}

/* torchvision's _make_divisible(v, 8): the nearest multiple of 8, at least 8, and never more
 * than 10% below v. Computed in double, as Python does. */
static int divisible_torchvision(double v)
{
    int d = 8;
    int r = (int)(v + d / 2.0) / d * d;
    if (r < d)
        r = d;
    if (r < 0.9 * v)
        r += d;
    return r;
}

/* The official code's make_divisible: v rounded up to a multiple of 8. */
static int divisible_official(double v) { return (int)ceil(v / 8.0) * 8; }

/* Conv and BN names of one ConvBn inside block `f` (features.f), in the chosen key layout.
 * part: 0 expand, 1 depthwise, 2 project. */
static void block_names(MobileNetV2Keys keys, int f, bool has_expand, int part, char *conv, char *bn, size_t cap)
{
    if (keys == MOBILENET_V2_KEYS_TORCHVISION) {
        /* conv = [Conv2dNormActivation(expand)], Conv2dNormActivation(dw), Conv2d(project), BN */
        int i = has_expand ? part : part - 1;
        if (part < 2) {
            snprintf(conv, cap, "features.%d.conv.%d.0", f, i);
            snprintf(bn, cap, "features.%d.conv.%d.1", f, i);
        } else {
            snprintf(conv, cap, "features.%d.conv.%d", f, i);
            snprintf(bn, cap, "features.%d.conv.%d", f, i + 1);
        }
    } else {
        /* conv = flat Sequential: [pw, bn, relu6,] dw, bn, relu6, pw-linear, bn */
        int i = 3 * (has_expand ? part : part - 1);
        snprintf(conv, cap, "features.%d.conv.%d", f, i);
        snprintf(bn, cap, "features.%d.conv.%d", f, i + 1);
    }
}

bool mobilenet_v2_key_convert(const char *key, MobileNetV2Keys from, MobileNetV2Keys to, char *out, size_t cap)
{
    int f, n = 0;
    if (sscanf(key, "features.%d.conv.%n", &f, &n) != 1 || n == 0 || f < 1) {
        return snprintf(out, cap, "%s", key) < (int)cap; /* stem, last conv, classifier: the same */
    }
    const bool has_expand = f != 1; /* torchvision's and the official setting: block 1 has t = 1 */
    for (int part = has_expand ? 0 : 1; part < 3; part++) {
        char conv[64], bn[64], conv_to[64], bn_to[64];
        block_names(from, f, has_expand, part, conv, bn, sizeof conv);
        block_names(to, f, has_expand, part, conv_to, bn_to, sizeof conv_to);
        const char *names[2] = {conv, bn}, *names_to[2] = {conv_to, bn_to};
        for (int j = 0; j < 2; j++) {
            size_t len = strlen(names[j]);
            if (strncmp(key, names[j], len) == 0 && key[len] == '.' && !strchr(key + len + 1, '.'))
                return snprintf(out, cap, "%s%s", names_to[j], key + len) < (int)cap;
        }
    }
    return false;
}

static bool check_config(const MobileNetV2Config *cfg, char *err, size_t err_cap)
{
    if (!(cfg->width_mult > 0.0 && cfg->width_mult <= 16.0)) {
        snprintf(err, err_cap, "mobilenet_v2: width_mult = %g must be in (0, 16]", cfg->width_mult);
        return false;
    }
    if (cfg->num_classes < 0 || cfg->tsm_segments < 0 || (cfg->tsm_segments > 0 && cfg->tsm_fold_div < 1)) {
        snprintf(err, err_cap, "mobilenet_v2: num_classes = %d and tsm_segments = %d must be >= 0, tsm_fold_div = %d "
                               ">= 1 with TSM", cfg->num_classes, cfg->tsm_segments, cfg->tsm_fold_div);
        return false;
    }
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f)) {
        snprintf(err, err_cap, "mobilenet_v2: dropout = %g must be in [0, 1)", cfg->dropout);
        return false;
    }
    if (cfg->keys != MOBILENET_V2_KEYS_TORCHVISION && cfg->keys != MOBILENET_V2_KEYS_OFFICIAL) {
        snprintf(err, err_cap, "mobilenet_v2: unknown key layout %d", (int)cfg->keys);
        return false;
    }
    if (cfg->prefix && strlen(cfg->prefix) >= sizeof((MobileNetV2 *)0)->prefix) {
        snprintf(err, err_cap, "mobilenet_v2: prefix \"%s\" is longer than %zu characters", cfg->prefix,
                 sizeof((MobileNetV2 *)0)->prefix - 1);
        return false;
    }
    return true;
}

MobileNetV2 *mobilenet_v2_create(const MobileNetV2Config *cfg, ParamSet *ps, char *err, size_t err_cap)
{
    if (!check_config(cfg, err, err_cap))
        return NULL;
    MobileNetV2 *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, err_cap, "mobilenet_v2: out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    snprintf(m->prefix, sizeof m->prefix, "%s", cfg->prefix ? cfg->prefix : "");
    m->cfg.prefix = m->prefix;
    if (cfg->keys == MOBILENET_V2_KEYS_OFFICIAL)
        m->cfg.dropout = 0.0f; /* the official module's classifier is a bare Linear */
    m->ps = ps;
    const char *pre = m->prefix;
    bool tv = cfg->keys == MOBILENET_V2_KEYS_TORCHVISION;
    double w = cfg->width_mult;

    m->stem_width = tv ? divisible_torchvision(32.0 * w) : 32;
    m->last_width = tv ? divisible_torchvision(1280.0 * (w > 1.0 ? w : 1.0))
                       : (w > 1.0 ? divisible_official(1280.0 * w) : 1280);
    if (!conv_bn_declare(&m->stem, ps, pre, "features.0.0", "features.0.1", 3, m->stem_width, 3, 2, 1, err, err_cap))
        goto fail;
    m->layers[m->n_layers++] = &m->stem;

    int in = m->stem_width, f = 1;
    for (int s = 0; s < 7; s++) {
        int t = SETTINGS[s][0], c = SETTINGS[s][1], n = SETTINGS[s][2], stride0 = SETTINGS[s][3];
        int out = tv ? divisible_torchvision(c * w) : (t > 1 ? divisible_official(c * w) : c);
        for (int i = 0; i < n; i++, f++) {
            MobileNetV2Block *b = &m->blocks[f - 1];
            int stride = i == 0 ? stride0 : 1;
            int hidden = in * t; /* int(round(inp·t)) in torchvision, int(inp·t) officially: t is integral */
            bool has_expand = t != 1;
            b->residual = stride == 1 && in == out;
            b->shift = cfg->tsm_segments > 0 && has_expand && b->residual;
            char conv[72], bn[72];
            if (has_expand) {
                block_names(cfg->keys, f, true, 0, conv, bn, sizeof conv - 4); /* room for ".net" */
                if (b->shift && cfg->tsm_net_keys) /* TemporalShift(conv[0]).net */
                    strcat(conv, ".net");
                if (!conv_bn_declare(&b->expand, ps, pre, conv, bn, in, hidden, 1, 1, 1, err, err_cap))
                    goto fail;
                m->layers[m->n_layers++] = &b->expand;
            }
            block_names(cfg->keys, f, has_expand, 1, conv, bn, sizeof conv);
            if (!conv_bn_declare(&b->depthwise, ps, pre, conv, bn, hidden, hidden, 3, stride, hidden, err, err_cap))
                goto fail;
            m->layers[m->n_layers++] = &b->depthwise;
            block_names(cfg->keys, f, has_expand, 2, conv, bn, sizeof conv);
            if (!conv_bn_declare(&b->project, ps, pre, conv, bn, hidden, out, 1, 1, 1, err, err_cap))
                goto fail;
            m->layers[m->n_layers++] = &b->project;
            in = out;
        }
    }
    char conv[64], bn[64];
    snprintf(conv, sizeof conv, "features.%d.0", f);
    snprintf(bn, sizeof bn, "features.%d.1", f);
    if (!conv_bn_declare(&m->head, ps, pre, conv, bn, in, m->last_width, 1, 1, 1, err, err_cap))
        goto fail;
    m->layers[m->n_layers++] = &m->head;
    if (cfg->num_classes > 0 &&
        !linear_declare(&m->classifier, ps, pre, tv ? "classifier.1" : "classifier", m->last_width,
                        cfg->num_classes, err, err_cap))
        goto fail;
    return m;
fail:
    free(m);
    return NULL;
}

void mobilenet_v2_destroy(MobileNetV2 *m)
{
    if (!m)
        return;
    params_destroy(m->fold_ps);
    free(m);
}

void mobilenet_v2_init(MobileNetV2 *m, uint64_t seed)
{
    for (int i = 0; i < m->n_layers; i++)
        init_conv_bn(m->layers[i], seed);
    if (m->classifier.weight)
        init_linear_normal(&m->classifier, seed, 0.01f);
}

bool mobilenet_v2_fold_batch_norm(Ctx *ctx, MobileNetV2 *m)
{
    if (m->fold_ps) {
        ctx_set_error(ctx, "mobilenet_v2: the batch norms are already folded");
        return false;
    }
    return conv_bn_fold_all(ctx, m->layers, m->n_layers, &m->fold_ps);
}

static Tensor *block_forward(Ctx *ctx, const MobileNetV2 *m, const MobileNetV2Block *b, Tensor *x)
{
    /* x: (N, in, H, W) → (N, out, H/s, W/s) */
    Tensor *h = x;
    if (b->shift) /* TSM: only the branch sees the shifted input; the identity path does not */
        h = op_temporal_shift(ctx, h, m->cfg.tsm_segments, m->cfg.tsm_fold_div);
    /* [expand (N, hidden, H, W)], depthwise (N, hidden, H/s, W/s), project (N, out, H/s, W/s) */
    return conv_bn_inverted_residual_forward(ctx, b->expand.weight ? &b->expand : NULL, &b->depthwise, &b->project,
                                             h, b->residual ? x : NULL, BACKBONE_ACT_RELU6);
}

bool mobilenet_v2_forward(Ctx *ctx, const MobileNetV2 *m, Tensor *x, BackboneOutput *out)
{
    memset(out, 0, sizeof *out);
    if (x && ctx_ok(ctx) && (x->ndim != 4 || x->shape[1] != 3)) {
        char s[96];
        ctx_set_error(ctx, "mobilenet_v2: input must be (N, 3, H, W) images, got %s", tensor_shape_str(x, s, sizeof s));
        return false;
    }
    char scope[32];
    ctx_scope_push(ctx, "features.0");
    Tensor *h = conv_bn_forward(ctx, &m->stem, x, BACKBONE_ACT_RELU6); /* (N, stem, H/2, W/2) */
    ctx_scope_pop(ctx);
    for (int i = 0; i < MOBILENET_V2_BLOCKS; i++) {
        snprintf(scope, sizeof scope, "features.%d", i + 1);
        ctx_scope_push(ctx, scope);
        h = block_forward(ctx, m, &m->blocks[i], h);
        ctx_scope_pop(ctx);
    }
    snprintf(scope, sizeof scope, "features.%d", MOBILENET_V2_BLOCKS + 1);
    ctx_scope_push(ctx, scope);
    Tensor *features = conv_bn_forward(ctx, &m->head, h, BACKBONE_ACT_RELU6); /* (N, last, H/32, W/32) */
    ctx_scope_pop(ctx);
    ctx_scope_push(ctx, "pool");
    Tensor *pooled = op_global_avg_pool(ctx, features); /* (N, last) */
    ctx_scope_pop(ctx);
    Tensor *logits = NULL;
    if (m->classifier.weight) {
        ctx_scope_push(ctx, "classifier");
        Tensor *p = m->cfg.dropout > 0.0f ? op_dropout(ctx, pooled, m->cfg.dropout) : pooled;
        logits = op_linear(ctx, p, m->classifier.weight, m->classifier.bias); /* (N, classes) */
        ctx_scope_pop(ctx);
    }
    if (!ctx_ok(ctx))
        return false;
    out->features = features;
    out->pooled = pooled;
    out->logits = logits;
    return true;
}
