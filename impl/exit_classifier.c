/* exit_classifier.c — see exit_classifier.h. */
#include "impl/exit_classifier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/init.h"
#include "kernels/ops.h"

#define MLP_BN_EPS 1e-5f /* nn.BatchNorm1d defaults */
#define MLP_BN_MOMENTUM 0.1f

static bool declare_mlp(ExitMlp *mlp, ParamSet *ps, const char *prefix, const char *name, int in, int width,
                        char *err, size_t err_cap)
{
    char base[BACKBONE_KEY_LEN], key[BACKBONE_KEY_LEN];
    snprintf(base, sizeof base, "%s.layers.0", name);
    if (!linear_declare(&mlp->fc, ps, prefix, base, in, width, err, err_cap))
        return false;
    static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    Tensor **slot[4] = {&mlp->gamma, &mlp->beta, &mlp->running_mean, &mlp->running_var};
    for (int i = 0; i < 4; i++) {
        snprintf(base, sizeof base, "%s.layers.1.%s", name, suffix[i]);
        if (!backbone_key(key, prefix, base, err, err_cap))
            return false;
        *slot[i] = params_declare(ps, key, DTYPE_F32, 1, (int64_t[]){width}, i < 2);
        if (!*slot[i]) {
            snprintf(err, err_cap, "cannot declare parameter %s (duplicate name)", key);
            return false;
        }
    }
    return true;
}

bool exit_classifier_declare(ExitClassifier *ec, const ExitClassifierConfig *cfg, ParamSet *ps, const char *prefix,
                             char *err, size_t err_cap)
{
    memset(ec, 0, sizeof *ec);
    if (cfg->global_dim < 1 || cfg->local_dim < 1 || cfg->width < 1 || cfg->glance < 1 || cfg->focus < 1 ||
        cfg->classes < 1 || !(cfg->dropout >= 0.0f && cfg->dropout < 1.0f)) {
        snprintf(err, err_cap, "exit classifier: dims (%d, %d), width %d, glance %d, focus %d and classes %d must be "
                 ">= 1 and dropout %g in [0, 1)", cfg->global_dim, cfg->local_dim, cfg->width, cfg->glance,
                 cfg->focus, cfg->classes, (double)cfg->dropout);
        return false;
    }
    ec->cfg = *cfg;
    ec->global_heads = calloc((size_t)cfg->glance, sizeof *ec->global_heads);
    ec->local_heads = calloc((size_t)cfg->focus, sizeof *ec->local_heads);
    if (!ec->global_heads || !ec->local_heads) {
        snprintf(err, err_cap, "exit classifier: out of memory");
        exit_classifier_destroy(ec);
        return false;
    }
    /* Declaration order follows the official state_dict: global_mlp, local_mlp, then the heads. */
    bool ok = declare_mlp(&ec->global_mlp, ps, prefix, "global_mlp", cfg->global_dim, cfg->width, err, err_cap) &&
              declare_mlp(&ec->local_mlp, ps, prefix, "local_mlp", cfg->local_dim, cfg->width, err, err_cap);
    char name[64];
    for (int t = 0; ok && t < cfg->glance; t++) {
        snprintf(name, sizeof name, "global_classifiers.%d.1", t);
        ok = linear_declare(&ec->global_heads[t], ps, prefix, name, cfg->width, cfg->classes, err, err_cap);
    }
    for (int k = 0; ok && k < cfg->focus; k++) {
        snprintf(name, sizeof name, "local_classifiers.%d.1", k);
        ok = linear_declare(&ec->local_heads[k], ps, prefix, name, 2 * cfg->width, cfg->classes, err, err_cap);
    }
    if (!ok)
        exit_classifier_destroy(ec);
    return ok;
}

void exit_classifier_destroy(ExitClassifier *ec)
{
    free(ec->global_heads);
    free(ec->local_heads);
    ec->global_heads = ec->local_heads = NULL;
}

static void init_mlp(const ExitMlp *mlp, uint64_t seed)
{
    init_linear_default(&mlp->fc, seed);
    init_fill(mlp->gamma, 1.0f);
    init_fill(mlp->beta, 0.0f);
    init_fill(mlp->running_mean, 0.0f);
    init_fill(mlp->running_var, 1.0f);
}

void exit_classifier_init(const ExitClassifier *ec, uint64_t seed)
{
    init_mlp(&ec->global_mlp, seed);
    init_mlp(&ec->local_mlp, seed);
    for (int t = 0; t < ec->cfg.glance; t++)
        init_linear_default(&ec->global_heads[t], seed);
    for (int k = 0; k < ec->cfg.focus; k++)
        init_linear_default(&ec->local_heads[k], seed);
}

Tensor *exit_classifier_mlp(Ctx *ctx, const ExitMlp *mlp, Tensor *x)
{
    Tensor *h = op_linear(ctx, x, mlp->fc.weight, mlp->fc.bias); /* (N, W) */
    h = op_batch_norm(ctx, h, mlp->gamma, mlp->beta, mlp->running_mean, mlp->running_var, MLP_BN_MOMENTUM, MLP_BN_EPS);
    return op_relu(ctx, h);
}

Tensor *exit_classifier_head(Ctx *ctx, const ExitClassifier *ec, const Linear *head, Tensor *z)
{
    Tensor *h = ec->cfg.dropout > 0.0f ? op_dropout(ctx, z, ec->cfg.dropout) : z;
    return op_linear(ctx, h, head->weight, head->bias);
}

/* Row t of (B, S, W) as (B, W). */
static Tensor *step_of(Ctx *ctx, Tensor *z, int t)
{
    Tensor *s = op_slice(ctx, z, 1, t, 1); /* (B, 1, W) */
    return s ? op_reshape(ctx, s, 2, (int64_t[]){s->shape[0], s->shape[2]}) : NULL;
}

bool exit_classifier_forward(Ctx *ctx, const ExitClassifier *ec, Tensor *global_feat, Tensor *local_feat,
                             ExitClassifierOutput *out)
{
    memset(out, 0, sizeof *out);
    if (!ctx_ok(ctx))
        return false;
    const ExitClassifierConfig *c = &ec->cfg;
    int G = c->glance, F = c->focus, W = c->width, C = c->classes;
    bool shapes_ok = global_feat && local_feat && global_feat->ndim == 2 && local_feat->ndim == 2 &&
                     global_feat->shape[1] == c->global_dim && local_feat->shape[1] == c->local_dim &&
                     global_feat->shape[0] % G == 0 && local_feat->shape[0] % F == 0 &&
                     global_feat->shape[0] / G == local_feat->shape[0] / F;
    if (!shapes_ok) {
        char sg[96] = "NULL", sl[96] = "NULL";
        if (global_feat)
            tensor_shape_str(global_feat, sg, sizeof sg);
        if (local_feat)
            tensor_shape_str(local_feat, sl, sizeof sl);
        ctx_set_error(ctx, "exit_classifier: expected glance features (B·%d, %d) and focus features (B·%d, %d) of the "
                      "same B videos, got %s and %s", G, c->global_dim, F, c->local_dim, sg, sl);
        return false;
    }
    int64_t B = global_feat->shape[0] / G;

    ctx_scope_push(ctx, "global_mlp");
    Tensor *zg = op_reshape(ctx, exit_classifier_mlp(ctx, &ec->global_mlp, global_feat), 3,
                            (int64_t[]){B, G, W}); /* (B, G, W) */
    ctx_scope_pop(ctx);
    ctx_scope_push(ctx, "local_mlp");
    Tensor *zl = op_reshape(ctx, exit_classifier_mlp(ctx, &ec->local_mlp, local_feat), 3,
                            (int64_t[]){B, F, W}); /* (B, F, W) */
    ctx_scope_pop(ctx);

    Tensor **steps = calloc((size_t)(G + F), sizeof *steps); /* [G + F] of (B, 1, C) */
    if (!steps) {
        ctx_set_error(ctx, "exit_classifier: out of memory");
        return false;
    }
    /* Running max: the new step first, as the official MaxPooling(z_t, running) puts it, so a
     * tie sends the gradient to the newer frame as torch.max does. */
    ctx_scope_push(ctx, "global_heads");
    Tensor *zmax = NULL; /* (B, W) */
    for (int t = 0; t < G; t++) {
        Tensor *zt = step_of(ctx, zg, t);
        zmax = t == 0 ? zt : op_maximum(ctx, zt, zmax);
        Tensor *l = exit_classifier_head(ctx, ec, &ec->global_heads[t], zmax); /* (B, C) */
        steps[t] = op_reshape(ctx, l, 3, (int64_t[]){B, 1, C});
    }
    ctx_scope_pop(ctx);
    ctx_scope_push(ctx, "local_heads");
    Tensor *ymax = NULL; /* (B, W) */
    for (int k = 0; k < F; k++) {
        Tensor *yk = step_of(ctx, zl, k);
        ymax = k == 0 ? yk : op_maximum(ctx, yk, ymax);
        Tensor *cat = op_concat(ctx, (Tensor *[]){ymax, zmax}, 2, 1); /* (B, 2W) */
        Tensor *l = exit_classifier_head(ctx, ec, &ec->local_heads[k], cat);
        steps[G + k] = op_reshape(ctx, l, 3, (int64_t[]){B, 1, C});
    }
    ctx_scope_pop(ctx);
    Tensor *all = op_concat(ctx, steps, G + F, 1); /* (B, G + F, C) */
    free(steps);
    Tensor *exits = op_slice(ctx, all, 1, G - 1, F + 1); /* (B, F + 1, C) */
    Tensor *last = op_slice(ctx, all, 1, G + F - 1, 1);
    Tensor *pred = last ? op_reshape(ctx, last, 2, (int64_t[]){B, C}) : NULL;
    if (!ctx_ok(ctx))
        return false;
    out->global_z = zg;
    out->local_z = zl;
    out->global_max = zmax;
    out->step_logits = all;
    out->exit_logits = exits;
    out->prediction = pred;
    return true;
}
