/* backbone_common.c — see backbone_common.h. */
#include "impl/backbone_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"

bool backbone_key(char *key, const char *prefix, const char *name, char *err, size_t err_cap)
{
    int n = snprintf(key, BACKBONE_KEY_LEN, "%s%s", prefix ? prefix : "", name);
    if (n < 0 || n >= BACKBONE_KEY_LEN) {
        snprintf(err, err_cap, "parameter key \"%s%s\" is longer than %d characters; use a shorter prefix",
                 prefix ? prefix : "", name, BACKBONE_KEY_LEN - 1);
        return false;
    }
    return true;
}

/* Declares prefix + base + suffix; NULL with a message in err on failure. */
static Tensor *declare(ParamSet *ps, const char *prefix, const char *base, const char *suffix, int ndim,
                       const int64_t *dims, bool trainable, char *err, size_t err_cap)
{
    char name[BACKBONE_KEY_LEN], key[BACKBONE_KEY_LEN];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    if (!backbone_key(key, prefix, name, err, err_cap))
        return NULL;
    Tensor *t = params_declare(ps, key, DTYPE_F32, ndim, dims, trainable);
    if (!t)
        snprintf(err, err_cap, "could not declare parameter \"%s\" (duplicate name, bad shape, or the parameter "
                               "set is already allocated)", key);
    return t;
}

bool conv_bn_declare(ConvBn *cb, ParamSet *ps, const char *prefix, const char *conv_name, const char *bn_name,
                     int cin, int cout, int k, int stride, int groups, char *err, size_t err_cap)
{
    memset(cb, 0, sizeof *cb);
    if (cin < 1 || cout < 1 || k < 1 || stride < 1 || groups < 1 || cin % groups || cout % groups) {
        snprintf(err, err_cap, "%s%s: bad conv geometry (in %d, out %d, kernel %d, stride %d, groups %d)",
                 prefix ? prefix : "", conv_name, cin, cout, k, stride, groups);
        return false;
    }
    int64_t wdims[4] = {cout, cin / groups, k, k};
    int64_t cdims[1] = {cout};
    cb->weight = declare(ps, prefix, conv_name, ".weight", 4, wdims, true, err, err_cap);
    if (!cb->weight)
        return false;
    cb->gamma = declare(ps, prefix, bn_name, ".weight", 1, cdims, true, err, err_cap);
    if (!cb->gamma)
        return false;
    cb->beta = declare(ps, prefix, bn_name, ".bias", 1, cdims, true, err, err_cap);
    if (!cb->beta)
        return false;
    cb->running_mean = declare(ps, prefix, bn_name, ".running_mean", 1, cdims, false, err, err_cap);
    if (!cb->running_mean)
        return false;
    cb->running_var = declare(ps, prefix, bn_name, ".running_var", 1, cdims, false, err, err_cap);
    if (!cb->running_var)
        return false;
    cb->stride = stride;
    cb->pad = (k - 1) / 2;
    cb->groups = groups;
    return true;
}

bool linear_declare(Linear *fc, ParamSet *ps, const char *prefix, const char *name, int in, int out, char *err,
                    size_t err_cap)
{
    memset(fc, 0, sizeof *fc);
    if (in < 1 || out < 1) {
        snprintf(err, err_cap, "%s%s: bad linear shape (in %d, out %d)", prefix ? prefix : "", name, in, out);
        return false;
    }
    fc->weight = declare(ps, prefix, name, ".weight", 2, (int64_t[]){out, in}, true, err, err_cap);
    if (!fc->weight)
        return false;
    fc->bias = declare(ps, prefix, name, ".bias", 1, (int64_t[]){out}, true, err, err_cap);
    return fc->bias != NULL;
}

Tensor *conv_bn_forward(Ctx *ctx, const ConvBn *cb, Tensor *x, BackboneAct act)
{
    return conv_bn_add_forward(ctx, cb, x, NULL, act);
}

Tensor *conv_bn_add_forward(Ctx *ctx, const ConvBn *cb, Tensor *x, Tensor *residual, BackboneAct act)
{
    if (!x || !ctx_ok(ctx))
        return NULL;
    OpAct fused = act == BACKBONE_ACT_RELU ? OP_ACT_RELU : act == BACKBONE_ACT_RELU6 ? OP_ACT_RELU6 : OP_ACT_NONE;
    if (cb->folded_bias) {
        if (ctx->training) {
            ctx_set_error(ctx, "conv_bn: %s has its batch norm folded into the conv (inference only); training "
                               "needs an unfolded model",
                          cb->weight->name);
            return NULL;
        }
        /* One fused op: conv + folded bias + residual + activation in a single pass over y on
         * backends with fused epilogues (the same values as conv2d, add, then relu/relu6, see
         * op_conv2d_bias_act). */
        Tensor *y =
            op_conv2d_bias_act(ctx, x, cb->weight, cb->folded_bias, residual, cb->stride, cb->pad, cb->groups, fused);
        /* The folded batch norm still counts: +1 per BN channel per sample (FLOP_CONVENTION). */
        if (y)
            ctx_count(ctx, (double)y->shape[0] * (double)cb->weight->shape[0], 0.0);
        return y;
    }
    /* conv, then batch norm + residual + activation: one fused op in training (the same values
     * as batch_norm, add, relu; see op_batch_norm_act) */
    Tensor *y = op_conv2d(ctx, x, cb->weight, NULL, cb->stride, cb->pad, cb->groups);
    return op_batch_norm_act(ctx, y, cb->gamma, cb->beta, cb->running_mean, cb->running_var, BACKBONE_BN_MOMENTUM,
                             BACKBONE_BN_EPS, residual, fused);
}

Tensor *conv_bn_inverted_residual_forward(Ctx *ctx, const ConvBn *expand, const ConvBn *dw, const ConvBn *project,
                                          Tensor *x, Tensor *residual, BackboneAct act)
{
    if (!x || !ctx_ok(ctx))
        return NULL;
    bool fusable = dw->folded_bias && project->folded_bias && (!expand || expand->folded_bias) && !ctx->training &&
                   dw->weight->shape[2] == 3 && dw->pad == 1 && dw->groups == dw->weight->shape[0];
    if (!fusable) {
        Tensor *h = expand ? conv_bn_forward(ctx, expand, x, act) : x;
        return conv_bn_add_forward(ctx, project, conv_bn_forward(ctx, dw, h, act), residual, BACKBONE_ACT_NONE);
    }
    /* the folded batch norms still count: +1 per BN channel per sample each (FLOP_CONVENTION) */
    OpAct fused = act == BACKBONE_ACT_RELU ? OP_ACT_RELU : act == BACKBONE_ACT_RELU6 ? OP_ACT_RELU6 : OP_ACT_NONE;
    double n = (double)x->shape[0], e = (double)dw->weight->shape[0];
    Tensor *h = x;
    if (expand) {
        if (op_conv2d_expand_dw_fuses(ctx, x, expand->weight, expand->folded_bias, fused, dw->weight, dw->folded_bias,
                                      dw->stride, fused)) {
            h = op_conv2d_expand_dw(ctx, x, expand->weight, expand->folded_bias, fused, dw->weight,
                                    dw->folded_bias, dw->stride, fused);
            if (h)
                ctx_count(ctx, 2.0 * n * e, 0.0);
            return conv_bn_add_forward(ctx, project, h, residual, BACKBONE_ACT_NONE);
        }
        h = conv_bn_forward(ctx, expand, x, act);
    }
    Tensor *y = op_conv2d_dw_project(ctx, h, dw->weight, dw->folded_bias, dw->stride, fused, project->weight,
                                     project->folded_bias, residual, OP_ACT_NONE);
    if (y)
        ctx_count(ctx, n * e + n * (double)project->weight->shape[0], 0.0);
    return y;
}

bool conv_bn_fold_all(Ctx *ctx, ConvBn *const *layers, int n, ParamSet **bias_ps)
{
    *bias_ps = NULL;
    if (!ctx_ok(ctx))
        return false;
    if (n < 1) {
        ctx_set_error(ctx, "fold_batch_norm: no layers to fold");
        return false;
    }
    BackendKind backend = layers[0]->weight->backend;
    /* Check everything first so that a failure changes nothing. */
    for (int i = 0; i < n; i++) {
        const ConvBn *cb = layers[i];
        const Tensor *all[5] = {cb->weight, cb->gamma, cb->beta, cb->running_mean, cb->running_var};
        if (cb->folded_bias) {
            ctx_set_error(ctx, "fold_batch_norm: %s is already folded", cb->weight->name);
            return false;
        }
        for (int j = 0; j < 5; j++) {
            if (all[j]->backend != backend || (backend == BACKEND_CPU && !all[j]->data) ||
                (backend != BACKEND_CPU && backend != BACKEND_META)) {
                ctx_set_error(ctx, "fold_batch_norm: %s is on the %s backend%s; fold an allocated CPU (or meta) "
                                   "model before uploading it",
                              all[j]->name, backend_name(all[j]->backend), all[j]->data ? "" : " without data");
                return false;
            }
            if (j > 0 && (all[j]->ndim != 1 || all[j]->shape[0] != cb->weight->shape[0])) {
                ctx_set_error(ctx, "fold_batch_norm: %s has %lld entries, the conv %s has %lld output channels",
                              all[j]->name, (long long)tensor_numel(all[j]), cb->weight->name,
                              (long long)cb->weight->shape[0]);
                return false;
            }
        }
    }

    ParamSet *ps = params_create();
    if (!ps) {
        ctx_set_error(ctx, "fold_batch_norm: out of memory");
        return false;
    }
    Tensor **bias = calloc((size_t)n, sizeof *bias);
    if (!bias) {
        params_destroy(ps);
        ctx_set_error(ctx, "fold_batch_norm: out of memory");
        return false;
    }
    for (int i = 0; i < n; i++) {
        char key[2 * BACKBONE_KEY_LEN];
        snprintf(key, sizeof key, "%s.folded_bias", layers[i]->weight->name);
        bias[i] = params_declare(ps, key, DTYPE_F32, 1, (int64_t[]){layers[i]->weight->shape[0]}, false);
        if (!bias[i]) {
            ctx_set_error(ctx, "fold_batch_norm: could not declare %s (is a layer listed twice?)", key);
            free(bias);
            params_destroy(ps);
            return false;
        }
    }
    char err[256];
    if (!params_allocate(ps, backend, false, err, sizeof err)) { /* zeroed: the convs had no bias */
        ctx_set_error(ctx, "fold_batch_norm: %s", err);
        free(bias);
        params_destroy(ps);
        return false;
    }
    /* From here on the caller owns the biases: each layer is consistent on its own (folded weight
     * with its bias, or untouched), even in the unreachable case of a fold failing midway. */
    *bias_ps = ps;
    for (int i = 0; i < n; i++) {
        ConvBn *cb = layers[i];
        if (backend == BACKEND_CPU &&
            !op_fold_batch_norm(ctx, cb->weight, bias[i], cb->gamma, cb->beta, cb->running_mean, cb->running_var,
                                BACKBONE_BN_EPS)) {
            ctx_set_error(ctx, "fold_batch_norm: folding %s failed after %d of %d layers were folded; discard "
                               "this model", cb->weight->name, i, n);
            free(bias);
            return false;
        }
        cb->folded_bias = bias[i];
    }
    free(bias);
    return true;
}
