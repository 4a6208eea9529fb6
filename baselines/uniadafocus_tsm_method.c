/* uniadafocus_tsm_method.c — see uniadafocus_tsm_method.h. */
#include "baselines/uniadafocus_tsm_method.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"

static MethodPresetInfo INFOS[64];
static int N_INFOS;
static pthread_once_t INFOS_ONCE = PTHREAD_ONCE_INIT;

static void build_infos(void)
{
    int n = uaf_tsm_preset_count();
    for (int i = 0; i < n && i < (int)(sizeof INFOS / sizeof INFOS[0]); i++) {
        const UafTsmPreset *p = uaf_tsm_preset_at(i);
        INFOS[i] = (MethodPresetInfo){.name = p->name, .id = "uniadafocus-tsm", .description = p->description,
                                      .train = {.lr = p->train.lr, .weight_decay = p->train.weight_decay,
                                                .momentum = p->train.momentum, .batch_size = p->train.batch_size,
                                                .epochs = p->train.epochs, .grad_clip = p->train.grad_clip}};
        N_INFOS = i + 1;
    }
}

const MethodPresetInfo *uniadafocus_tsm_preset_info(int i)
{
    pthread_once(&INFOS_ONCE, build_infos);
    return i >= 0 && i < N_INFOS ? &INFOS[i] : NULL;
}

typedef struct {
    UafTsmModel *model;
    UafTsmTrainDefaults train;
    double gflops[UAF_TSM_EXITS];
} TsmMethod;

static Tensor *tsm_forward_exits(Ctx *ctx, Method *mm, Tensor *clips, double *sample_gflops)
{
    TsmMethod *u = mm->impl;
    if (!bl_check_clips(ctx, mm, clips))
        return NULL;
    UafTsmOutput out;
    if (!uaf_tsm_forward(ctx, u->model, clips, ctx->step, &out))
        return NULL;
    bl_fill_sample_gflops(u->gflops, mm->n_exits, clips->shape[0], sample_gflops);
    return out.exit_logits; /* (B, 2, C) */
}

static Tensor *tsm_train_loss(Ctx *ctx, Method *mm, Tensor *clips, Tensor *labels, uint64_t step)
{
    TsmMethod *u = mm->impl;
    ctx->step = step;
    if (!bl_check_clips(ctx, mm, clips))
        return NULL;
    const int64_t B = clips->shape[0];
    int32_t *lab = malloc((size_t)B * sizeof *lab); /* (B) labels on the host */
    if (!lab) {
        ctx_set_error(ctx, "uniadafocus-tsm: out of memory");
        return NULL;
    }
    UafTsmLoss loss;
    bool ok = bl_labels_host(ctx, labels, B, mm->classes, lab) &&
              uaf_tsm_train_loss(ctx, u->model, clips, lab, step, u->train.norm_ratio, u->train.mc_samples, &loss);
    free(lab);
    return ok ? loss.total : NULL;
}

static bool tsm_exit_gflops(const Method *mm, double *gflops, char *err, size_t err_cap)
{
    (void)err;
    (void)err_cap;
    memcpy(gflops, ((const TsmMethod *)mm->impl)->gflops, (size_t)mm->n_exits * sizeof *gflops);
    return true;
}

static float tsm_lr_multiplier(const Method *mm, const char *key)
{
    return uaf_tsm_lr_multiplier(&((const TsmMethod *)mm->impl)->train, key);
}

static void tsm_destroy(Method *mm)
{
    if (!mm)
        return;
    TsmMethod *u = mm->impl;
    if (u)
        uaf_tsm_destroy(u->model);
    free(u);
    free(mm);
}

static const MethodOps TSM_OPS = {
    .forward_exits = tsm_forward_exits,
    .train_loss = tsm_train_loss,
    .exit_gflops = tsm_exit_gflops,
    .lr_multiplier = tsm_lr_multiplier,
    .destroy = tsm_destroy,
};

UafTsmModel *uniadafocus_tsm_method_model(const Method *mm)
{
    return mm && mm->ops == &TSM_OPS ? ((const TsmMethod *)mm->impl)->model : NULL;
}

Method *uniadafocus_tsm_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend,
                                      bool with_grads, uint64_t seed, char *err, size_t err_cap)
{
    const UafTsmPreset *p = uaf_tsm_preset_find(preset);
    if (!p) {
        char names[512];
        snprintf(err, err_cap, "uniadafocus-tsm: unknown preset '%s' (known: %s)", preset ? preset : "(null)",
                 uaf_tsm_preset_names(names, sizeof names));
        return NULL;
    }
    UafTsmConfig cfg = p->cfg;
    if (ov) {
        if (ov->frames > 0)
            cfg.frames = ov->frames;
        if (ov->glance > 0)
            cfg.glance = ov->glance;
        if (ov->focus > 0)
            cfg.focus = ov->focus;
        if (ov->patch_size > 0)
            cfg.patch_size = ov->patch_size;
        if (ov->classes > 0)
            cfg.num_classes = ov->classes;
        if (ov->frame_size > 0) { /* the box limits are a fraction of the frame */
            double r = (double)ov->frame_size / cfg.frame_size;
            cfg.box_min = (float)(cfg.box_min * r);
            cfg.box_max = (float)(cfg.box_max * r);
            cfg.frame_size = ov->frame_size;
        }
    }
    UafTsmFlops fl;
    if (!uaf_tsm_flops(&cfg, &fl, err, err_cap)) /* also checks the configuration */
        return NULL;
    TsmMethod *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, err_cap, "uniadafocus-tsm: out of memory");
        return NULL;
    }
    u->train = p->train;
    for (int k = 0; k < UAF_TSM_EXITS; k++)
        u->gflops[k] = fl.exit[k] * 1e-9;
    if (!(u->model = uaf_tsm_create(&cfg, backend, with_grads, err, err_cap))) {
        free(u);
        return NULL;
    }
    uaf_tsm_init(u->model, seed);
    Method *mm = bl_method_new(&TSM_OPS, "uniadafocus-tsm", preset, u->model->ps, u, cfg.frames, cfg.frame_size,
                               cfg.num_classes, UAF_TSM_EXITS, err, err_cap);
    if (!mm) {
        uaf_tsm_destroy(u->model);
        free(u);
    }
    return mm;
}
