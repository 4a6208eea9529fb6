/* policy_spatial.c — see policy_spatial.h. */
#include "impl/policy_spatial.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "impl/backbone_common.h"
#include "impl/init.h"
#include "kernels/ops.h"

/* Declares prefix + name + suffix; NULL with a message in err. */
static Tensor *declare(ParamSet *ps, const char *prefix, const char *name, const char *suffix, int ndim,
                       const int64_t *dims, bool trainable, char *err, size_t err_cap)
{
    char full[BACKBONE_KEY_LEN], key[BACKBONE_KEY_LEN];
    if (snprintf(full, sizeof full, "%s%s", name, suffix) >= (int)sizeof full ||
        !backbone_key(key, prefix, full, err, err_cap))
        return NULL;
    Tensor *t = params_declare(ps, key, DTYPE_F32, ndim, dims, trainable);
    if (!t)
        snprintf(err, err_cap, "cannot declare parameter %s (duplicate name or bad shape)", key);
    return t;
}

bool policy_conv_bn_declare(PolicyConvBn *cb, ParamSet *ps, const char *prefix, const char *conv_name,
                            const char *bn_name, int ndim, const int64_t *dims, char *err, size_t err_cap)
{
    memset(cb, 0, sizeof *cb);
    int64_t k[1] = {dims[0]};
    cb->weight = declare(ps, prefix, conv_name, ".weight", ndim, dims, true, err, err_cap);
    if (!cb->weight)
        return false;
    if (!(cb->gamma = declare(ps, prefix, bn_name, ".weight", 1, k, true, err, err_cap)) ||
        !(cb->beta = declare(ps, prefix, bn_name, ".bias", 1, k, true, err, err_cap)) ||
        !(cb->running_mean = declare(ps, prefix, bn_name, ".running_mean", 1, k, false, err, err_cap)) ||
        !(cb->running_var = declare(ps, prefix, bn_name, ".running_var", 1, k, false, err, err_cap)))
        return false;
    return true;
}

void policy_conv_init(Tensor *weight, uint64_t seed)
{
    /* nn.Conv*d's reset_parameters: kaiming_uniform_(a = √5) → bound 1/√fan_in,
     * fan_in = in_channels · receptive field. */
    double fan_in = (double)tensor_span(weight, 1, weight->ndim);
    float bound = (float)(1.0 / sqrt(fan_in));
    init_uniform(weight, seed, -bound, bound);
}

void policy_conv_bn_init(const PolicyConvBn *cb, uint64_t seed)
{
    policy_conv_init(cb->weight, seed);
    init_fill(cb->gamma, 1.0f);
    init_fill(cb->beta, 0.0f);
    init_fill(cb->running_mean, 0.0f);
    init_fill(cb->running_var, 1.0f);
}

Tensor *policy_bn_relu(Ctx *ctx, const PolicyConvBn *cb, Tensor *y)
{
    y = op_batch_norm(ctx, y, cb->gamma, cb->beta, cb->running_mean, cb->running_var, POLICY_BN_MOMENTUM,
                      POLICY_BN_EPS);
    return op_relu(ctx, y);
}

bool policy_spatial_declare(SpatialPolicy *sp, const SpatialPolicyConfig *cfg, ParamSet *ps, const char *prefix,
                            char *err, size_t err_cap)
{
    memset(sp, 0, sizeof *sp);
    if (cfg->in_channels < 1 || cfg->hidden < 1 || cfg->glance < 1 || cfg->feat_side < 1 || cfg->head_frames < 0 ||
        cfg->head_frames > cfg->glance) {
        snprintf(err, err_cap, "spatial policy: in_channels %d, hidden %d, glance %d and feature side %d must all be "
                 ">= 1, head frames %d in [0, glance]", cfg->in_channels, cfg->hidden, cfg->glance, cfg->feat_side,
                 cfg->head_frames);
        return false;
    }
    sp->cfg = *cfg;
    if (sp->cfg.head_frames == 0)
        sp->cfg.head_frames = 1;
    int64_t D = cfg->in_channels, H = cfg->hidden, s = cfg->feat_side;
    static const char *const names[3][2] = {{"encoder.0", "encoder.1"}, {"encoder.3", "encoder.4"},
                                            {"encoder.6", "encoder.7"}};
    int64_t dims[3][5] = {{H, D, 1, 1, 1}, {H, H, 3, 3, 3}, {H, H, 3, 3, 3}};
    for (int i = 0; i < 3; i++)
        if (!policy_conv_bn_declare(&sp->conv[i], ps, prefix, names[i][0], names[i][1], 5, dims[i], err, err_cap))
            return false;
    sp->head = declare(ps, prefix, "encoder.9", ".weight", 5, (int64_t[]){4, H, sp->cfg.head_frames, s, s}, true, err,
                       err_cap);
    return sp->head != NULL;
}

void policy_spatial_init(const SpatialPolicy *sp, uint64_t seed)
{
    for (int i = 0; i < 3; i++)
        policy_conv_bn_init(&sp->conv[i], seed);
    policy_conv_init(sp->head, seed);
}

Tensor *policy_spatial_forward(Ctx *ctx, const SpatialPolicy *sp, Tensor *features)
{
    if (!ctx_ok(ctx) || !features) {
        if (ctx_ok(ctx))
            ctx_set_error(ctx, "policy_spatial: features is NULL");
        return NULL;
    }
    const SpatialPolicyConfig *c = &sp->cfg;
    int64_t G = c->glance, s = c->feat_side;
    if (features->ndim != 4 || features->shape[1] != c->in_channels || features->shape[2] != s ||
        features->shape[3] != s || features->shape[0] % G != 0) {
        char sf[96];
        ctx_set_error(ctx, "policy_spatial: features must be (B·G, %d, %lld, %lld) with G = %lld maps per video, got %s",
                      c->in_channels, (long long)s, (long long)s, (long long)G,
                      tensor_shape_str(features, sf, sizeof sf));
        return NULL;
    }
    int64_t B = features->shape[0] / G, D = c->in_channels, H = c->hidden;
    /* encoder.0, the 1×1×1 conv, mixes the channels of each (frame, y, x) position on its own, so
     * it commutes with arranging the G maps of a video as a volume: it runs first, as a 2-D 1×1
     * conv on the maps as they come, and only its output is permuted — H channels instead of D
     * (128 instead of 1280: a tenth of the bytes). The same MACs as the conv3d, B·G·h·w·H·D. The
     * weight keeps its checkpoint shape (H, D, 1, 1, 1); a reshape views it as (H, D, 1, 1), so
     * gradients still reach the parameter. */
    Tensor *w0 = op_reshape(ctx, sp->conv[0].weight, 4, (int64_t[]){H, D, 1, 1});
    Tensor *x = op_conv2d(ctx, features, w0, NULL, 1, 0, 1); /* (B·G, H, h, w) */
    /* (B·G, H, h, w) → (B, G, H, h, w) → (B, H, G, h, w): time becomes the volume's depth */
    x = op_reshape(ctx, x, 5, (int64_t[]){B, G, H, s, s});
    x = op_permute(ctx, x, (int[]){0, 2, 1, 3, 4});
    /* encoder.1's batch norm (and ReLU) after the permute, on the volume: per channel it would see
     * the same B·G·h·w values on the maps, but its cost is +1 per channel per sample (ops.h), and
     * a sample is a video here, not one of its G maps (counted on the maps it would be G times
     * the official figure). */
    x = policy_bn_relu(ctx, &sp->conv[0], x); /* (B, H, G, h, w) */
    static const int one[3] = {1, 1, 1}, zero[3] = {0, 0, 0};
    x = policy_bn_relu(ctx, &sp->conv[1], op_conv3d(ctx, x, sp->conv[1].weight, NULL, one, one, 1));
    x = policy_bn_relu(ctx, &sp->conv[2], op_conv3d(ctx, x, sp->conv[2].weight, NULL, one, one, 1));
    int64_t Go = G - c->head_frames + 1; /* G per frame, 1 with a whole-sequence head */
    x = op_sigmoid(ctx, op_conv3d(ctx, x, sp->head, NULL, one, zero, 1)); /* (B, 4, Go, 1, 1) */
    x = op_reshape(ctx, x, 3, (int64_t[]){B, 4, Go});
    return op_permute(ctx, x, (int[]){0, 2, 1}); /* (B, Go, 4) */
}
