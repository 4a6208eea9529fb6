/* policy_temporal.c — see policy_temporal.h. */
#include "impl/policy_temporal.h"

#include <stdio.h>
#include <string.h>

#include "impl/backbone_common.h"
#include "kernels/ops.h"

bool policy_temporal_declare(TemporalPolicy *tp, const TemporalPolicyConfig *cfg, ParamSet *ps, const char *prefix,
                             char *err, size_t err_cap)
{
    memset(tp, 0, sizeof *tp);
    if (cfg->in_channels < 1 || cfg->hidden < 1 || cfg->glance < 1 || !(cfg->temperature > 0.0f)) {
        snprintf(err, err_cap, "temporal policy: in_channels %d, hidden %d and glance %d must be >= 1 and the "
                 "temperature %g > 0", cfg->in_channels, cfg->hidden, cfg->glance, (double)cfg->temperature);
        return false;
    }
    tp->cfg = *cfg;
    int64_t D = cfg->in_channels, H = cfg->hidden;
    if (!policy_conv_bn_declare(&tp->conv[0], ps, prefix, "Tconv.0", "Tconv.1", 4, (int64_t[]){H, D, 3, 1}, err,
                                err_cap) ||
        !policy_conv_bn_declare(&tp->conv[1], ps, prefix, "Tconv.3", "Tconv.4", 4, (int64_t[]){H, H, 3, 1}, err,
                                err_cap))
        return false;
    char key[BACKBONE_KEY_LEN];
    if (!backbone_key(key, prefix, "Tconv.6.weight", err, err_cap))
        return false;
    tp->head = params_declare(ps, key, DTYPE_F32, 4, (int64_t[]){1, H, 1, 1}, true);
    if (!tp->head)
        snprintf(err, err_cap, "cannot declare parameter %s (duplicate name)", key);
    return tp->head != NULL;
}

void policy_temporal_init(const TemporalPolicy *tp, uint64_t seed)
{
    policy_conv_bn_init(&tp->conv[0], seed);
    policy_conv_bn_init(&tp->conv[1], seed);
    policy_conv_init(tp->head, seed);
}

/* The checkpoint's (K, C, k, 1) Conv2d weight as the (K, C, k) kernel of a 1-D convolution
 * (a differentiable view: gradients reach the parameter). */
static Tensor *as_1d(Ctx *ctx, Tensor *w)
{
    return op_reshape(ctx, w, 3, (int64_t[]){w->shape[0], w->shape[1], w->shape[2]});
}

bool policy_temporal_forward(Ctx *ctx, const TemporalPolicy *tp, Tensor *pooled, TemporalPolicyOutput *out)
{
    memset(out, 0, sizeof *out);
    if (!ctx_ok(ctx))
        return false;
    const TemporalPolicyConfig *c = &tp->cfg;
    int64_t G = c->glance;
    if (!pooled || pooled->ndim != 2 || pooled->shape[1] != c->in_channels || pooled->shape[0] % G != 0) {
        char s[96] = "NULL";
        if (pooled)
            tensor_shape_str(pooled, s, sizeof s);
        ctx_set_error(ctx, "policy_temporal: pooled glance vectors must be (B·G, %d) with G = %lld per video, got %s",
                      c->in_channels, (long long)G, s);
        return false;
    }
    int64_t B = pooled->shape[0] / G;
    /* (B·G, D) → (B, G, D) → (B, D, G): a sequence of G steps with D channels */
    Tensor *x = op_reshape(ctx, pooled, 3, (int64_t[]){B, G, c->in_channels});
    x = op_permute(ctx, x, (int[]){0, 2, 1});
    x = policy_bn_relu(ctx, &tp->conv[0], op_conv1d(ctx, x, as_1d(ctx, tp->conv[0].weight), NULL, 1, 1, 1));
    x = policy_bn_relu(ctx, &tp->conv[1], op_conv1d(ctx, x, as_1d(ctx, tp->conv[1].weight), NULL, 1, 1, 1));
    x = op_conv1d(ctx, x, as_1d(ctx, tp->head), NULL, 1, 0, 1); /* (B, 1, G) */
    Tensor *logits = op_reshape(ctx, x, 2, (int64_t[]){B, G});
    Tensor *w = op_softmax(ctx, logits);
    /* The official x / T; with T = 1 the division is exact, so w_T is w itself. */
    Tensor *w_T = c->temperature == 1.0f ? w : op_softmax(ctx, op_scale(ctx, logits, 1.0f / c->temperature));
    if (!ctx_ok(ctx))
        return false;
    out->logits = logits;
    out->weights = w;
    out->weights_T = w_T;
    return true;
}
