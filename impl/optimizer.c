/* optimizer.c — see optimizer.h. */
#include "impl/optimizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"

static bool has_prefix(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static int match_group(const SgdGroup *groups, int n_groups, const char *key)
{
    for (int g = 0; g < n_groups; g++)
        for (int j = 0; j < SGD_MAX_PREFIXES && groups[g].prefixes[j]; j++)
            if (has_prefix(key, groups[g].prefixes[j]))
                return g;
    return -1;
}

void sgd_set_device(Sgd *opt, Ctx *ctx) { opt->device = ctx && ctx->backend != BACKEND_CPU ? ctx : NULL; }

void sgd_destroy(Sgd *opt)
{
    if (!opt)
        return;
    free(opt->params);
    free(opt->group_of);
    params_destroy(opt->state);
    free(opt);
}

Sgd *sgd_create(ParamSet *ps, const SgdConfig *cfg, const SgdGroup *groups, int n_groups, char *err, size_t err_cap)
{
    if (!ps || !ps->allocated || ps->backend != BACKEND_CPU) {
        snprintf(err, err_cap, "sgd: the parameters must be allocated on the CPU backend (host memory)");
        return NULL;
    }
    if (n_groups < 1 || n_groups > SGD_MAX_GROUPS) {
        snprintf(err, err_cap, "sgd: %d parameter groups (1 to %d supported)", n_groups, SGD_MAX_GROUPS);
        return NULL;
    }
    if (!(cfg->lr >= 0.0) || !isfinite(cfg->lr) || !(cfg->momentum >= 0.0 && cfg->momentum < 1.0) ||
        !(cfg->weight_decay >= 0.0) || !isfinite(cfg->weight_decay)) {
        snprintf(err, err_cap, "sgd: need lr >= 0, 0 <= momentum < 1 and weight decay >= 0, got lr %g, momentum %g, "
                 "weight decay %g", cfg->lr, cfg->momentum, cfg->weight_decay);
        return NULL;
    }
    if ((cfg->schedule == SGD_SCHEDULE_COSINE && cfg->epochs < 1) || cfg->n_lr_steps < 0 ||
        cfg->n_lr_steps > SGD_MAX_LR_STEPS || cfg->schedule < SGD_SCHEDULE_COSINE ||
        cfg->schedule > SGD_SCHEDULE_CONSTANT) {
        snprintf(err, err_cap, "sgd: bad schedule (%d) — the cosine schedule needs epochs >= 1 (got %d), the step "
                 "schedule at most %d steps (got %d)", (int)cfg->schedule, cfg->epochs, SGD_MAX_LR_STEPS,
                 cfg->n_lr_steps);
        return NULL;
    }
    for (int g = 0; g < n_groups; g++)
        if (!groups[g].name || !groups[g].prefixes[0] || !(groups[g].lr_mult >= 0.0) ||
            !(groups[g].decay_mult >= 0.0)) {
            snprintf(err, err_cap, "sgd: group %d needs a name, at least one key prefix and multipliers >= 0", g);
            return NULL;
        }
    Sgd *opt = calloc(1, sizeof *opt);
    if (!opt) {
        snprintf(err, err_cap, "sgd: out of memory");
        return NULL;
    }
    opt->cfg = *cfg;
    opt->ps = ps;
    opt->n_groups = n_groups;
    opt->epoch = -1;
    for (int g = 0; g < n_groups; g++)
        opt->groups[g].group = groups[g];
    int n = 0;
    for (int i = 0; i < ps->n; i++)
        n += ps->items[i]->requires_grad;
    opt->params = calloc((size_t)(n ? n : 1), sizeof *opt->params);
    opt->group_of = calloc((size_t)(n ? n : 1), sizeof *opt->group_of);
    opt->state = params_create();
    if (!opt->params || !opt->group_of || !opt->state) {
        snprintf(err, err_cap, "sgd: out of memory");
        sgd_destroy(opt);
        return NULL;
    }
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->items[i];
        if (!t->requires_grad)
            continue;
        int g = match_group(groups, n_groups, t->name);
        if (g < 0) {
            snprintf(err, err_cap, "sgd: trainable parameter %s belongs to no group (every trainable tensor needs one, "
                     "as the official get_optim_policies covers the whole model)", t->name);
            sgd_destroy(opt);
            return NULL;
        }
        if (t->dtype != DTYPE_F32 || !t->grad) {
            snprintf(err, err_cap, "sgd: parameter %s must be f32 with a gradient (create the model with gradients)",
                     t->name);
            sgd_destroy(opt);
            return NULL;
        }
        /* the momentum buffer, under the parameter's own key */
        if (!params_declare(opt->state, t->name, DTYPE_F32, t->ndim, t->shape, false)) {
            snprintf(err, err_cap, "sgd: cannot declare the momentum buffer of %s", t->name);
            sgd_destroy(opt);
            return NULL;
        }
        opt->params[opt->n] = t;
        opt->group_of[opt->n] = g;
        opt->groups[g].n_params++;
        opt->n++;
    }
    if (!params_allocate(opt->state, BACKEND_CPU, false, err, err_cap)) {
        sgd_destroy(opt);
        return NULL;
    }
    sgd_set_epoch(opt, 0);
    return opt;
}

double sgd_schedule_lr(const SgdConfig *cfg, int epoch)
{
    switch (cfg->schedule) {
    case SGD_SCHEDULE_COSINE:
        return 0.5 * cfg->lr * (1 + cos(M_PI * epoch / cfg->epochs));
    case SGD_SCHEDULE_STEP: {
        int passed = 0;
        for (int s = 0; s < cfg->n_lr_steps; s++)
            passed += epoch >= cfg->lr_steps[s];
        return cfg->lr * pow(0.1, passed);
    }
    case SGD_SCHEDULE_CONSTANT:
    default:
        return cfg->lr;
    }
}

void sgd_set_epoch(Sgd *opt, int epoch)
{
    double lr = sgd_schedule_lr(&opt->cfg, epoch);
    for (int g = 0; g < opt->n_groups; g++) {
        opt->groups[g].lr = lr * opt->groups[g].group.lr_mult;
        opt->groups[g].weight_decay = opt->cfg.weight_decay * opt->groups[g].group.decay_mult;
    }
    opt->epoch = epoch;
}

int sgd_group_of(const Sgd *opt, const char *key)
{
    for (int i = 0; i < opt->n; i++)
        if (strcmp(opt->params[i]->name, key) == 0)
            return opt->group_of[i];
    return -1;
}

bool sgd_step(Sgd *opt, char *err, size_t err_cap)
{
    const float momentum = (float)opt->cfg.momentum;
    const bool fresh = opt->steps == 0 || momentum == 0.0f;
    Ctx *ctx = opt->device;
    const BackendOps *ops = ctx ? ctx->ops : cpu_backend_ops();
    const BackendKind where = ctx ? ctx->backend : BACKEND_CPU;
    if (!ops || !ops->sgd_update) {
        snprintf(err, err_cap, "sgd: the %s backend has no optimizer update", backend_name(where));
        return false;
    }
    for (int i = 0; i < opt->n; i++) {
        const Tensor *t = opt->params[i], *b = opt->state->items[i];
        if (!t->data || !t->grad || !t->grad->data || t->backend != where || t->grad->backend != where ||
            !b->data || b->backend != where) {
            snprintf(err, err_cap, "sgd: parameter %s, its gradient or its momentum buffer is not in %s memory "
                     "(sgd_set_device after moving all three there)", t->name, backend_name(where));
            return false;
        }
    }
    for (int i = 0; i < opt->n; i++) {
        Tensor *t = opt->params[i];
        const SgdGroupState *g = &opt->groups[opt->group_of[i]];
        ops->sgd_update(ctx, tensor_numel(t), tensor_f32(t), tensor_f32(t->grad), tensor_f32(opt->state->items[i]),
                        (float)-g->lr, (float)g->weight_decay, momentum, fresh);
    }
    if (ctx && !ctx_ok(ctx)) {
        snprintf(err, err_cap, "sgd: %s", ctx_error_message(ctx));
        return false;
    }
    opt->steps++;
    return true;
}
