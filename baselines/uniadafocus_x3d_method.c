/* uniadafocus_x3d_method.c — see uniadafocus_x3d_method.h. */
#include "baselines/uniadafocus_x3d_method.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"

static const char *const ID = "uniadafocus-x3d";
enum { MAX_PRESETS = 8 };

static MethodPresetInfo INFOS[MAX_PRESETS];
static char NAMES[MAX_PRESETS][64];
static int N_INFOS;
static pthread_once_t INFOS_ONCE = PTHREAD_ONCE_INIT;

static void build_infos(void)
{
    for (int i = 0; i < uafx3d_preset_count() && i < MAX_PRESETS; i++) {
        const UafX3dPreset *p = uafx3d_preset_at(i);
        snprintf(NAMES[i], sizeof NAMES[i], "uniadafocus-x3d-%s", p->name);
        INFOS[i] = (MethodPresetInfo){.name = NAMES[i],
                                      .id = ID,
                                      .description = p->description,
                                      .train = {.lr = p->train.lr, .weight_decay = p->train.weight_decay,
                                                .momentum = p->train.momentum, .batch_size = p->train.batch_size,
                                                .epochs = p->train.epochs, .grad_clip = p->train.grad_clip}};
        N_INFOS = i + 1;
    }
}

const MethodPresetInfo *uniadafocus_x3d_preset_info(int i)
{
    pthread_once(&INFOS_ONCE, build_infos);
    return i >= 0 && i < N_INFOS ? &INFOS[i] : NULL;
}

typedef struct {
    UafX3dModel *model;
    UafX3dTrain train;
    double gflops[UAFX3D_EXITS];
} UafX3dMethod;

static Tensor *m_forward_exits(Ctx *ctx, Method *mm, Tensor *clips, double *sample_gflops)
{
    UafX3dMethod *u = mm->impl;
    if (!bl_check_clips(ctx, mm, clips))
        return NULL;
    UafX3dOutput out;
    if (!uafx3d_forward(ctx, u->model, clips, ctx->step, &out))
        return NULL;
    bl_fill_sample_gflops(u->gflops, mm->n_exits, clips->shape[0], sample_gflops);
    return out.exit_logits;
}

static Tensor *m_train_loss(Ctx *ctx, Method *mm, Tensor *clips, Tensor *labels, uint64_t step)
{
    UafX3dMethod *u = mm->impl;
    ctx->step = step;
    if (!bl_check_clips(ctx, mm, clips))
        return NULL;
    const int64_t B = clips->shape[0];
    int32_t *lab = malloc((size_t)B * sizeof *lab); /* (B) labels on the host */
    if (!lab) {
        ctx_set_error(ctx, "%s: out of memory", ID);
        return NULL;
    }
    Tensor *loss = NULL;
    if (bl_labels_host(ctx, labels, B, mm->classes, lab))
        loss = uafx3d_train_loss(ctx, u->model, clips, lab, step, &u->train);
    free(lab);
    return loss;
}

static bool m_exit_gflops(const Method *mm, double *gflops, char *err, size_t err_cap)
{
    (void)err;
    (void)err_cap;
    memcpy(gflops, ((const UafX3dMethod *)mm->impl)->gflops, (size_t)mm->n_exits * sizeof *gflops);
    return true;
}

static float m_lr_multiplier(const Method *mm, const char *key)
{
    return uafx3d_lr_multiplier(&((const UafX3dMethod *)mm->impl)->train, key);
}

static void m_destroy(Method *mm)
{
    if (!mm)
        return;
    UafX3dMethod *u = mm->impl;
    if (u)
        uafx3d_destroy(u->model);
    free(u);
    free(mm);
}

static const MethodOps OPS = {
    .forward_exits = m_forward_exits,
    .train_loss = m_train_loss,
    .exit_gflops = m_exit_gflops,
    .lr_multiplier = m_lr_multiplier,
    .destroy = m_destroy,
};

UafX3dModel *uniadafocus_x3d_method_model(const Method *mm)
{
    return mm && mm->ops == &OPS ? ((const UafX3dMethod *)mm->impl)->model : NULL;
}

Method *uniadafocus_x3d_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend,
                                      bool with_grads, uint64_t seed, char *err, size_t err_cap)
{
    const char *prefix = "uniadafocus-x3d-";
    const UafX3dPreset *p = preset && strncmp(preset, prefix, strlen(prefix)) == 0
                                ? uafx3d_preset_find(preset + strlen(prefix))
                                : NULL;
    if (!p) {
        snprintf(err, err_cap, "%s: unknown preset '%s'", ID, preset ? preset : "(null)");
        return NULL;
    }
    UafX3dConfig cfg = p->cfg;
    if (ov) {
        if (ov->frames > 0)
            cfg.frames = ov->frames;
        if (ov->glance > 0)
            cfg.glance = ov->glance;
        if (ov->focus > 0)
            cfg.focus = ov->focus;
        if (ov->frame_size > 0) {
            /* box limits are a fraction of the view, as impl/presets.h's frame-size knob does */
            double r = (double)ov->frame_size / cfg.frame_size;
            cfg.box_min = (float)(cfg.box_min * r);
            cfg.box_max = (float)(cfg.box_max * r);
            if (cfg.views == 1)
                cfg.full_size = ov->frame_size;
            cfg.frame_size = ov->frame_size;
        }
        if (ov->patch_size > 0)
            cfg.patch_size = ov->patch_size;
        if (ov->classes > 0)
            cfg.num_classes = ov->classes;
    }
    UafX3dMethod *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, err_cap, "%s: out of memory", ID);
        return NULL;
    }
    u->train = p->train;
    UafX3dFlops f;
    if (!uafx3d_flops(&cfg, &f, err, err_cap) || !(u->model = uafx3d_create(&cfg, backend, with_grads, err, err_cap))) {
        free(u);
        return NULL;
    }
    for (int k = 0; k < UAFX3D_EXITS; k++)
        u->gflops[k] = f.exit[k] * 1e-9;
    uafx3d_init(u->model, seed);
    Method *mm = bl_method_new(&OPS, ID, preset, u->model->ps, u, cfg.frames, cfg.full_size, cfg.num_classes,
                               UAFX3D_EXITS, err, err_cap);
    if (!mm) {
        uafx3d_destroy(u->model);
        free(u);
    }
    return mm;
}
