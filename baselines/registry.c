/* registry.c — see registry.h. */
#include "baselines/registry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines/adafocusv2.h"
#include "baselines/arnet.h"
#include "baselines/frameexit.h"
#include "baselines/ocsampler.h"
#include "baselines/tsn.h"
#include "baselines/uniadafocus_method.h"
#include "baselines/uniadafocus_x3d_method.h"
#include "baselines/uniadafocus_tsm_method.h"
#include "kernels/backend.h"

/* One module: its preset list and constructor. */
typedef struct {
    const MethodPresetInfo *(*preset_info)(int i);
    Method *(*create)(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                      uint64_t seed, char *err, size_t err_cap);
} MethodModule;

static const MethodModule MODULES[] = {
    {uniadafocus_preset_info, uniadafocus_method_create},
    {tsn_preset_info, tsn_method_create},
    {frameexit_preset_info, frameexit_method_create},
    {adafocusv2_preset_info, adafocusv2_method_create},
    {ocsampler_preset_info, ocsampler_method_create},
    {arnet_preset_info, arnet_method_create},
    {uniadafocus_x3d_preset_info, uniadafocus_x3d_method_create},
    {uniadafocus_tsm_preset_info, uniadafocus_tsm_method_create},
};
enum { N_MODULES = (int)(sizeof MODULES / sizeof MODULES[0]) };

/* Every id and the preset it builds by default (the paper configuration it names). */
static const struct {
    const char *id;
    const char *preset;
} IDS[] = {
    {"uniadafocus", "uniadafocus-actnet-p128"},
    {"uniadafocus-uniform", "uniadafocus-uniform-actnet-p128"},
    {"uniadafocus-centre", "uniadafocus-centre-actnet-p128"},
    {"uniadafocus-randombox", "uniadafocus-randombox-actnet-p128"},
    {"uniadafocus-noexit", "uniadafocus-noexit-actnet-p128"},
    {"tsn", "tsn-r50-8x224"},
    {"tsm", "tsm-r50-8x224"},
    {"adafocusv2", "adafocusv2-actnet-p128"},
    {"frameexit", "frameexit-r50-10x224"},
    {"ocsampler", "ocsampler-actnet-10to6"},
    {"arnet", "arnet-actnet-16"},
    {"uniadafocus-x3d", "uniadafocus-x3d-k400-x3d"},
    {"uniadafocus-tsm", "sthv1-p128-8x12"},
};
enum { N_IDS = (int)(sizeof IDS / sizeof IDS[0]) };

int method_id_count(void) { return N_IDS; }
const char *method_id_at(int i) { return i >= 0 && i < N_IDS ? IDS[i].id : NULL; }

const char *method_default_preset(const char *id)
{
    for (int i = 0; id && i < N_IDS; i++)
        if (strcmp(IDS[i].id, id) == 0)
            return IDS[i].preset;
    return NULL;
}

int method_preset_count(void)
{
    int n = 0;
    for (int k = 0; k < N_MODULES; k++)
        for (int i = 0; MODULES[k].preset_info(i); i++)
            n++;
    return n;
}

/* Preset i over all modules, and its module through *module. */
static const MethodPresetInfo *preset_at(int i, int *module)
{
    if (i < 0)
        return NULL;
    for (int k = 0; k < N_MODULES; k++)
        for (int j = 0; MODULES[k].preset_info(j); j++)
            if (i-- == 0) {
                if (module)
                    *module = k;
                return MODULES[k].preset_info(j);
            }
    return NULL;
}

const MethodPresetInfo *method_preset_at(int i) { return preset_at(i, NULL); }

/* The preset named name (an id resolves to its default), its module through *module. */
static const MethodPresetInfo *find_preset(const char *name, int *module)
{
    if (!name)
        return NULL;
    const char *def = method_default_preset(name);
    if (def)
        name = def;
    for (int i = 0;; i++) {
        const MethodPresetInfo *p = preset_at(i, module);
        if (!p)
            return NULL;
        if (strcmp(p->name, name) == 0)
            return p;
    }
}

const MethodPresetInfo *method_preset_find(const char *id_or_preset) { return find_preset(id_or_preset, NULL); }

char *method_id_list(char *buf, size_t cap)
{
    size_t used = 0;
    if (cap)
        buf[0] = '\0';
    for (int i = 0; i < N_IDS && used < cap; i++) {
        int n = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", IDS[i].id);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return buf;
}

void method_print_help(FILE *out)
{
    fprintf(out, "methods (id: default preset):\n");
    for (int i = 0; i < N_IDS; i++)
        fprintf(out, "  %-24s %s\n", IDS[i].id, IDS[i].preset);
    fprintf(out, "presets:\n");
    for (int i = 0;; i++) {
        const MethodPresetInfo *p = method_preset_at(i);
        if (!p)
            break;
        fprintf(out, "  %-32s %s\n", p->name, p->description);
    }
}

Method *method_create(const char *id_or_preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                      uint64_t seed, char *err, size_t err_cap)
{
    if (backend != BACKEND_CPU && backend != BACKEND_META) {
        snprintf(err, err_cap, "method_create: parameters live on the CPU or meta backend, not %s (a device copy is "
                 "made from a CPU model)", backend_name(backend));
        return NULL;
    }
    int module = -1;
    const MethodPresetInfo *p = find_preset(id_or_preset, &module);
    if (!p) {
        /* the message lists every id and preset, so the user can pick one */
        size_t used = 0;
        used += (size_t)snprintf(err, err_cap, "unknown method or preset '%s'; methods: ",
                                 id_or_preset ? id_or_preset : "(null)");
        if (used < err_cap)
            method_id_list(err + used, err_cap - used);
        used = strlen(err);
        for (int i = 0; used + 1 < err_cap; i++) {
            const MethodPresetInfo *q = method_preset_at(i);
            if (!q)
                break;
            int n = snprintf(err + used, err_cap - used, "%s%s", i ? ", " : "; presets: ", q->name);
            if (n < 0)
                break;
            used += (size_t)n;
        }
        return NULL;
    }
    return MODULES[module].create(p->name, ov, backend, with_grads, seed, err, err_cap);
}

void method_destroy(Method *m)
{
    if (m && m->ops && m->ops->destroy)
        m->ops->destroy(m);
}

int method_sgd_groups(const Method *m, SgdGroup *groups, int cap, char *names, char *err, size_t err_cap)
{
    int n = 0;
    for (int i = 0; i < m->ps->n; i++) {
        const Tensor *t = m->ps->items[i];
        if (!t->requires_grad)
            continue;
        const char *dot = strchr(t->name, '.');
        size_t len = dot ? (size_t)(dot - t->name) + 1 : strlen(t->name);
        if (len + 1 > SGD_GROUP_NAME_LEN) {
            snprintf(err, err_cap, "%s: parameter key prefix of '%s' is longer than %d characters", m->id, t->name,
                     SGD_GROUP_NAME_LEN - 1);
            return -1;
        }
        float mult = m->ops->lr_multiplier ? m->ops->lr_multiplier(m, t->name) : 1.0f;
        int g = 0;
        for (; g < n; g++)
            if (strncmp(groups[g].prefixes[0], t->name, len) == 0 && strlen(groups[g].prefixes[0]) == len)
                break;
        if (g < n) {
            if ((float)groups[g].lr_mult != mult) {
                snprintf(err, err_cap, "%s: parameters under '%s' have different learning-rate multipliers (%g and %g "
                         "for %s)", m->id, groups[g].prefixes[0], groups[g].lr_mult, (double)mult, t->name);
                return -1;
            }
            continue;
        }
        if (n >= cap) {
            snprintf(err, err_cap, "%s: more than %d parameter key prefixes (optimizer groups)", m->id, cap);
            return -1;
        }
        char *name = names + (size_t)n * SGD_GROUP_NAME_LEN;
        memcpy(name, t->name, len);
        name[len] = '\0';
        memset(&groups[n], 0, sizeof groups[n]);
        groups[n].name = name;
        groups[n].prefixes[0] = name;
        groups[n].lr_mult = mult;
        groups[n].decay_mult = 1.0;
        n++;
    }
    return n;
}

double method_clip_grad_norm(Ctx *ctx, const Method *m, double max_norm)
{
    const BackendKind where = ctx ? ctx->backend : BACKEND_CPU;
    const BackendOps *ops = ctx ? ctx->ops : cpu_backend_ops();
    if (!ops || !ops->sum_squares || !ops->scale_inplace)
        return -1.0;
    double sq = 0;
    for (int i = 0; i < m->ps->n; i++) {
        const Tensor *t = m->ps->items[i];
        if (!t->requires_grad || !t->grad)
            continue;
        if (t->grad->backend != where || !t->grad->data)
            return -1.0;
        sq += ops->sum_squares(ctx, tensor_numel(t->grad), tensor_f32(t->grad)); /* tensor by tensor, as torch */
    }
    double norm = sqrt(sq);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
        for (int i = 0; i < m->ps->n; i++) {
            const Tensor *t = m->ps->items[i];
            if (t->requires_grad && t->grad)
                ops->scale_inplace(ctx, tensor_numel(t->grad), tensor_f32(t->grad), coef);
        }
    return ctx && !ctx_ok(ctx) ? -1.0 : norm;
}
