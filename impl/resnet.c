/* resnet.c — see resnet.h. */
#include "impl/resnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/init.h"
#include "kernels/ops.h"

ResNetConfig resnet_config_default(void)
{
    return (ResNetConfig){.depth = 50, .base_width = 64, .num_classes = 1000, .tsm_fold_div = 8};
}

/* torchvision's stage depths; false for an unknown depth. */
static bool stage_layout(int depth, int blocks[4], bool *bottleneck)
{
    static const int table[5][5] = {
        {18, 2, 2, 2, 2}, {34, 3, 4, 6, 3}, {50, 3, 4, 6, 3}, {101, 3, 4, 23, 3}, {152, 3, 8, 36, 3},
    };
    for (int i = 0; i < 5; i++) {
        if (table[i][0] == depth) {
            memcpy(blocks, &table[i][1], 4 * sizeof(int));
            *bottleneck = depth >= 50;
            return true;
        }
    }
    return false;
}

static bool check_config(const ResNetConfig *cfg, char *err, size_t err_cap)
{
    int blocks[4];
    bool bottleneck;
    if (!stage_layout(cfg->depth, blocks, &bottleneck)) {
        snprintf(err, err_cap, "resnet: depth %d is not one of 18, 34, 50, 101, 152", cfg->depth);
        return false;
    }
    if (cfg->base_width < 1 || cfg->base_width > 4096) {
        snprintf(err, err_cap, "resnet: base_width = %d must be in [1, 4096] (torchvision: 64)", cfg->base_width);
        return false;
    }
    if (cfg->num_classes < 0 || cfg->tsm_segments < 0 || (cfg->tsm_segments > 0 && cfg->tsm_fold_div < 1)) {
        snprintf(err, err_cap, "resnet: num_classes = %d and tsm_segments = %d must be >= 0, tsm_fold_div = %d >= 1 "
                               "with TSM", cfg->num_classes, cfg->tsm_segments, cfg->tsm_fold_div);
        return false;
    }
    if (cfg->prefix && strlen(cfg->prefix) >= sizeof((ResNet *)0)->prefix) {
        snprintf(err, err_cap, "resnet: prefix \"%s\" is longer than %zu characters", cfg->prefix,
                 sizeof((ResNet *)0)->prefix - 1);
        return false;
    }
    return true;
}

/* Declares block b of stage `stage` (0-based) with input width `in`; returns its output width or
 * -1 with a message. Names: layer{stage+1}.{b}.conv1 / bn1 / … / downsample.0 / downsample.1. */
static int declare_block(ResNet *r, ResNetBlock *blk, int stage, int b, int in, char *err, size_t err_cap)
{
    const char *pre = r->prefix;
    int planes = r->cfg.base_width << stage;
    int stride = (b == 0 && stage > 0) ? 2 : 1;
    int out = r->bottleneck ? 4 * planes : planes;
    char conv[48], bn[48];
#define NAMES(c, n)                                                   \
    snprintf(conv, sizeof conv, "layer%d.%d.%s", stage + 1, b, (c)); \
    snprintf(bn, sizeof bn, "layer%d.%d.%s", stage + 1, b, (n))
    const char *conv1 = blk->shift && r->cfg.tsm_net_keys ? "conv1.net" : "conv1"; /* TemporalShift(conv1).net */
    if (r->bottleneck) {
        NAMES(conv1, "bn1");
        if (!conv_bn_declare(&blk->conv1, r->ps, pre, conv, bn, in, planes, 1, 1, 1, err, err_cap))
            return -1;
        NAMES("conv2", "bn2");
        if (!conv_bn_declare(&blk->conv2, r->ps, pre, conv, bn, planes, planes, 3, stride, 1, err, err_cap))
            return -1;
        NAMES("conv3", "bn3");
        if (!conv_bn_declare(&blk->conv3, r->ps, pre, conv, bn, planes, out, 1, 1, 1, err, err_cap))
            return -1;
    } else {
        NAMES(conv1, "bn1");
        if (!conv_bn_declare(&blk->conv1, r->ps, pre, conv, bn, in, planes, 3, stride, 1, err, err_cap))
            return -1;
        NAMES("conv2", "bn2");
        if (!conv_bn_declare(&blk->conv2, r->ps, pre, conv, bn, planes, planes, 3, 1, 1, err, err_cap))
            return -1;
    }
    if (stride != 1 || in != out) {
        NAMES("downsample.0", "downsample.1");
        if (!conv_bn_declare(&blk->downsample, r->ps, pre, conv, bn, in, out, 1, stride, 1, err, err_cap))
            return -1;
    }
#undef NAMES
    return out;
}

ResNet *resnet_create(const ResNetConfig *cfg, ParamSet *ps, char *err, size_t err_cap)
{
    if (!check_config(cfg, err, err_cap))
        return NULL;
    ResNet *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, err_cap, "resnet: out of memory");
        return NULL;
    }
    r->cfg = *cfg;
    snprintf(r->prefix, sizeof r->prefix, "%s", cfg->prefix ? cfg->prefix : "");
    r->cfg.prefix = r->prefix;
    r->ps = ps;
    stage_layout(cfg->depth, r->stage_blocks, &r->bottleneck);
    for (int s = 0; s < 4; s++)
        r->n_blocks += r->stage_blocks[s];
    r->blocks = calloc((size_t)r->n_blocks, sizeof *r->blocks);
    r->layers = calloc((size_t)(1 + 4 * r->n_blocks), sizeof *r->layers);
    if (!r->blocks || !r->layers) {
        snprintf(err, err_cap, "resnet: out of memory");
        goto fail;
    }
    if (!conv_bn_declare(&r->stem, ps, r->prefix, "conv1", "bn1", 3, cfg->base_width, 7, 2, 1, err, err_cap))
        goto fail;
    r->layers[r->n_layers++] = &r->stem;

    /* The official TSM code shifts every block, or every second one when stage 3 is very deep. */
    int n_round = r->stage_blocks[2] >= 23 ? 2 : 1;
    int in = cfg->base_width, k = 0;
    for (int s = 0; s < 4; s++) {
        for (int b = 0; b < r->stage_blocks[s]; b++, k++) {
            ResNetBlock *blk = &r->blocks[k];
            blk->shift = cfg->tsm_segments > 0 && b % n_round == 0;
            in = declare_block(r, blk, s, b, in, err, err_cap);
            if (in < 0)
                goto fail;
            ConvBn *all[4] = {&blk->conv1, &blk->conv2, &blk->conv3, &blk->downsample};
            for (int j = 0; j < 4; j++)
                if (all[j]->weight)
                    r->layers[r->n_layers++] = all[j];
        }
    }
    r->feature_dim = in;
    if (cfg->num_classes > 0 && !linear_declare(&r->fc, ps, r->prefix, "fc", in, cfg->num_classes, err, err_cap))
        goto fail;
    return r;
fail:
    resnet_destroy(r);
    return NULL;
}

void resnet_destroy(ResNet *r)
{
    if (!r)
        return;
    params_destroy(r->fold_ps);
    free(r->blocks);
    free(r->layers);
    free(r);
}

void resnet_init(ResNet *r, uint64_t seed)
{
    for (int i = 0; i < r->n_layers; i++)
        init_conv_bn(r->layers[i], seed);
    if (r->fc.weight)
        init_linear_default(&r->fc, seed);
}

bool resnet_fold_batch_norm(Ctx *ctx, ResNet *r)
{
    if (r->fold_ps) {
        ctx_set_error(ctx, "resnet: the batch norms are already folded");
        return false;
    }
    return conv_bn_fold_all(ctx, r->layers, r->n_layers, &r->fold_ps);
}

static Tensor *block_forward(Ctx *ctx, const ResNet *r, const ResNetBlock *b, Tensor *x)
{
    /* x: (N, in, H, W) → (N, out, H/s, W/s) */
    Tensor *h = x;
    if (b->shift) /* TSM "blockres": the branch sees the shifted input, the identity does not */
        h = op_temporal_shift(ctx, h, r->cfg.tsm_segments, r->cfg.tsm_fold_div);
    h = conv_bn_forward(ctx, &b->conv1, h, BACKBONE_ACT_RELU);
    const ConvBn *last = &b->conv2; /* (N, planes, H/s, W/s) out of the basic block */
    if (b->conv3.weight) {
        h = conv_bn_forward(ctx, &b->conv2, h, BACKBONE_ACT_RELU); /* (N, planes, H/s, W/s) */
        last = &b->conv3;                                          /* (N, 4·planes, H/s, W/s) out */
    }
    Tensor *identity = b->downsample.weight ? conv_bn_forward(ctx, &b->downsample, x, BACKBONE_ACT_NONE) : x;
    return conv_bn_add_forward(ctx, last, h, identity, BACKBONE_ACT_RELU); /* relu(last(h) + identity) */
}

bool resnet_forward(Ctx *ctx, const ResNet *r, Tensor *x, BackboneOutput *out)
{
    memset(out, 0, sizeof *out);
    if (x && ctx_ok(ctx) && (x->ndim != 4 || x->shape[1] != 3)) {
        char s[96];
        ctx_set_error(ctx, "resnet: input must be (N, 3, H, W) images, got %s", tensor_shape_str(x, s, sizeof s));
        return false;
    }
    ctx_scope_push(ctx, "stem");
    Tensor *h = conv_bn_forward(ctx, &r->stem, x, BACKBONE_ACT_RELU); /* (N, w, H/2, W/2) */
    h = op_max_pool2d(ctx, h, 3, 2, 1);                                /* (N, w, H/4, W/4) */
    ctx_scope_pop(ctx);
    int k = 0;
    for (int s = 0; s < 4; s++) {
        char scope[24];
        snprintf(scope, sizeof scope, "layer%d", s + 1);
        ctx_scope_push(ctx, scope);
        for (int b = 0; b < r->stage_blocks[s]; b++, k++)
            h = block_forward(ctx, r, &r->blocks[k], h);
        ctx_scope_pop(ctx);
    }
    Tensor *features = h;                               /* (N, feature_dim, H/32, W/32) */
    ctx_scope_push(ctx, "pool");
    Tensor *pooled = op_global_avg_pool(ctx, features); /* (N, feature_dim) */
    ctx_scope_pop(ctx);
    Tensor *logits = NULL;
    if (r->fc.weight) {
        ctx_scope_push(ctx, "fc");
        logits = op_linear(ctx, pooled, r->fc.weight, r->fc.bias); /* (N, classes) */
        ctx_scope_pop(ctx);
    }
    if (!ctx_ok(ctx))
        return false;
    out->features = features;
    out->pooled = pooled;
    out->logits = logits;
    return true;
}
