/* uniadafocus_x3d.c — see uniadafocus_x3d.h. */
#include "impl/uniadafocus_x3d.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/frame_sampler.h"
#include "impl/init.h"
#include "impl/losses.h"
#include "impl/uniadafocus.h"
#include "kernels/backend.h"
#include "kernels/ops.h"

static const char WHO[] = "uniadafocus-x3d"; /* in error messages */

/* ---- presets ---------------------------------------------------------------------------------- */

#define K400_TRAIN                                                                                             \
    {.lr = 0.005f, .weight_decay = 5e-5f, .momentum = 0.9f, .batch_size = 64, .epochs = 50, .grad_clip = 20.0f, \
     .norm_ratio = 0.5f, .global_lr_ratio = 0.5f, .stn_lr_ratio = 0.4f, .temporal_lr_ratio = 0.4f, .mc_samples = 128}

#define X3D_NET(depth)                                                                                        \
    {.width_factor = 2.0, .depth_factor = depth, .bottleneck_factor = 2.25, .dim_c1 = 12, .dim_c5 = 2048,     \
     .se_ratio = 0.0625, .stem_temporal_kernel = 5, .dropout = 0.5f, .zero_init_final_bn = true}
#define TINY_NET(depth)                                                                                       \
    {.width_factor = 2.0, .depth_factor = depth, .bottleneck_factor = 2.25, .dim_c1 = 4, .dim_c5 = 64,        \
     .se_ratio = 0.0625, .stem_temporal_kernel = 5, .dropout = 0.5f, .zero_init_final_bn = true}

static const UafX3dPreset PRESETS[] = {
    {"k400-x3d", "Uni-AdaFocus-X3D, Kinetics-400: X3D-S 16x160 glance, X3D-L 32x128 patches of 96, 1 view",
     {.frames = 96, .glance = 16, .focus = 32, .frame_size = 224, .full_size = 224, .views = 1, .glance_size = 160,
      .patch_size = 128, .box_min = 96, .box_max = 224, .spatial_hidden = 128, .temporal_hidden = 64,
      .num_classes = 400, .dropout = 0.5f, .glance_net = X3D_NET(2.2), .local_net = X3D_NET(5.0)},
     K400_TRAIN},
    {"k400-x3d-3view", "Uni-AdaFocus-X3D, Kinetics-400, three 224x224 views of 256x256 frames (cost x3)",
     {.frames = 96, .glance = 16, .focus = 32, .frame_size = 224, .full_size = 256, .views = 3, .glance_size = 160,
      .patch_size = 128, .box_min = 96, .box_max = 224, .spatial_hidden = 128, .temporal_hidden = 64,
      .num_classes = 400, .dropout = 0.5f, .glance_net = X3D_NET(2.2), .local_net = X3D_NET(5.0)},
     K400_TRAIN},
    {"synth-x3d-tiny", "Uni-AdaFocus-X3D, CPU-sized: T 12, G 6 at 64x64, F 4 of 32x32, narrow X3Ds, 10 classes",
     {.frames = 12, .glance = 6, .focus = 4, .frame_size = 64, .full_size = 64, .views = 1, .glance_size = 64,
      .patch_size = 32, .box_min = 96.0f * 64.0f / 224.0f, .box_max = 64, .spatial_hidden = 16,
      .temporal_hidden = 8, .num_classes = 10, .dropout = 0.5f, .glance_net = TINY_NET(0.5),
      .local_net = TINY_NET(0.7)},
     {.lr = 0.02f, .weight_decay = 5e-5f, .momentum = 0.9f, .batch_size = 8, .epochs = 10, .grad_clip = 20.0f,
      .norm_ratio = 0.5f, .global_lr_ratio = 0.5f, .stn_lr_ratio = 0.4f, .temporal_lr_ratio = 0.4f,
      .mc_samples = 16}},
};
enum { N_PRESETS = (int)(sizeof PRESETS / sizeof PRESETS[0]) };

int uafx3d_preset_count(void) { return N_PRESETS; }
const UafX3dPreset *uafx3d_preset_at(int i) { return i >= 0 && i < N_PRESETS ? &PRESETS[i] : NULL; }

const UafX3dPreset *uafx3d_preset_find(const char *name)
{
    for (int i = 0; name && i < N_PRESETS; i++)
        if (strcmp(PRESETS[i].name, name) == 0)
            return &PRESETS[i];
    return NULL;
}

/* The glance map side: five stride-2 convs (k 3, pad 1) take H to ceil(H / 2) each. */
static int map_side(int size)
{
    for (int i = 0; i < 5; i++)
        size = (size + 1) / 2;
    return size;
}

bool uafx3d_config_check(const UafX3dConfig *c, char *err, size_t err_cap)
{
    if (!frame_sampler_check(c->frames, c->glance, c->focus, err, err_cap))
        return false;
    if (c->views != 1 && c->views != 3) {
        snprintf(err, err_cap, "uniadafocus-x3d: views must be 1 or 3, got %d", c->views);
        return false;
    }
    if (c->frame_size < 32 || c->full_size < c->frame_size || (c->views == 1 && c->full_size != c->frame_size)) {
        snprintf(err, err_cap, "uniadafocus-x3d: frame size %d and full size %d: need 32 <= frame size <= full size, "
                 "equal with one view", c->frame_size, c->full_size);
        return false;
    }
    if (c->glance_size < 32 || c->patch_size < 32 || c->patch_size > c->frame_size) {
        snprintf(err, err_cap, "uniadafocus-x3d: glance size %d and patch size %d must be >= 32 (patch <= frame %d)",
                 c->glance_size, c->patch_size, c->frame_size);
        return false;
    }
    if (!(c->box_min > 0) || !(c->box_max >= c->box_min) || c->spatial_hidden < 1 || c->temporal_hidden < 1 ||
        c->num_classes < 2 || c->dropout < 0 || c->dropout >= 1) {
        snprintf(err, err_cap, "uniadafocus-x3d: box limits %g..%g, policy widths %d/%d, %d classes or dropout %g "
                 "out of range", (double)c->box_min, (double)c->box_max, c->spatial_hidden, c->temporal_hidden,
                 c->num_classes, (double)c->dropout);
        return false;
    }
    if (c->glance < 3) {
        snprintf(err, err_cap, "uniadafocus-x3d: glance %d: the MC loss needs round(G/3) >= 1 rounds (G >= 3)",
                 c->glance);
        return false;
    }
    return true;
}

/* ---- model ------------------------------------------------------------------------------------ */

void uafx3d_destroy(UafX3dModel *m)
{
    if (!m)
        return;
    x3d_destroy(m->global_cnn);
    x3d_destroy(m->local_cnn);
    params_destroy(m->ps);
    free(m);
}

static Tensor *declare_plain(ParamSet *ps, const char *key, int ndim, const int64_t *dims, char *err, size_t cap)
{
    Tensor *t = params_declare(ps, key, DTYPE_F32, ndim, dims, true);
    if (!t)
        snprintf(err, cap, "uniadafocus-x3d: could not declare \"%s\"", key);
    return t;
}

UafX3dModel *uafx3d_create(const UafX3dConfig *cfg, BackendKind backend, bool with_grads, char *err, size_t err_cap)
{
    if (!uafx3d_config_check(cfg, err, err_cap))
        return NULL;
    UafX3dModel *m = calloc(1, sizeof *m);
    if (!m || !(m->ps = params_create())) {
        free(m);
        snprintf(err, err_cap, "uniadafocus-x3d: out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    const UafX3dConfig *c = &m->cfg;
    X3dConfig g = c->glance_net, l = c->local_net;
    g.prefix = "global_CNN.";
    l.prefix = "local_CNN.";
    g.num_classes = l.num_classes = c->num_classes;
    g.dropout = l.dropout = c->dropout;
    g.detach_head = l.detach_head = true; /* get_featmap: head.avg_pool(x.detach()) */
    m->feat_side = map_side(c->glance_size);
    bool ok = (m->global_cnn = x3d_create(&g, m->ps, err, err_cap)) && (m->local_cnn = x3d_create(&l, m->ps, err, err_cap));
    const int Dg = ok ? m->global_cnn->feature_dim : 0, Dl = ok ? m->local_cnn->feature_dim : 0;
    const int C = c->num_classes, H = c->spatial_hidden, h = m->feat_side;
    ok = ok && (m->global_head_w0 = declare_plain(m->ps, "global_CNN_head.0.weight", 2, (int64_t[]){g.dim_c5, Dg}, err, err_cap)) &&
         linear_declare(&m->global_head_fc, m->ps, "", "global_CNN_head.3", g.dim_c5, C, err, err_cap) &&
         (m->local_head_w0 = declare_plain(m->ps, "local_CNN_head.0.weight", 2, (int64_t[]){l.dim_c5, Dl}, err, err_cap)) &&
         linear_declare(&m->local_head_fc, m->ps, "", "local_CNN_head.3", l.dim_c5, C, err, err_cap) &&
         linear_declare(&m->aux_head, m->ps, "", "aux_head.0", Dg, C, err, err_cap) &&
         policy_conv_bn_declare(&m->spatial[0], m->ps, "spatial_policy.", "encoder.0", "encoder.1", 5,
                                (int64_t[]){H, Dg, 1, 1, 1}, err, err_cap) &&
         policy_conv_bn_declare(&m->spatial[1], m->ps, "spatial_policy.", "encoder.3", "encoder.4", 5,
                                (int64_t[]){H, H, 3, 3, 3}, err, err_cap) &&
         policy_conv_bn_declare(&m->spatial[2], m->ps, "spatial_policy.", "encoder.6", "encoder.7", 5,
                                (int64_t[]){H, H, 3, 3, 3}, err, err_cap) &&
         (m->spatial_head = declare_plain(m->ps, "spatial_policy.encoder.9.weight", 5,
                                          (int64_t[]){4, H, c->glance, h, h}, err, err_cap));
    TemporalPolicyConfig tc = {.in_channels = Dg, .hidden = c->temporal_hidden, .glance = c->glance, .temperature = 1.0f};
    ok = ok && policy_temporal_declare(&m->temporal, &tc, m->ps, "temporal_policy.", err, err_cap) &&
         params_allocate(m->ps, backend, with_grads, err, err_cap);
    if (!ok) {
        uafx3d_destroy(m);
        return NULL;
    }
    m->pixel_box = patch_box_geom_pixels(c->frame_size, c->patch_size, c->box_min, c->box_max);
    /* the official global_feat_map_patch_size = round(map side · P / input_size) */
    int crop = (int)lround((double)h * c->patch_size / c->frame_size);
    m->feature_box = (PatchBoxGeom){.image_size = h, .out_size = crop < 1 ? 1 : crop, .in_patch_size = c->patch_size,
                                    .box_min = c->box_min, .box_max = c->box_max};
    return m;
}

/* Copies src's values into dst (same numel; CPU data only). */
static void copy_values(Tensor *dst, const Tensor *src)
{
    if (dst->data && src->data && tensor_numel(dst) == tensor_numel(src))
        memcpy(dst->data, src->data, (size_t)tensor_numel(dst) * sizeof(float));
}

void uafx3d_init(UafX3dModel *m, uint64_t seed)
{
    x3d_init(m->global_cnn, seed);
    x3d_init(m->local_cnn, seed);
    init_linear_default(&m->aux_head, seed);
    for (int i = 0; i < 3; i++)
        policy_conv_bn_init(&m->spatial[i], seed);
    policy_conv_init(m->spatial_head, seed);
    policy_temporal_init(&m->temporal, seed);
    /* share_head_params: lin_5 (a 1×1×1 conv) squeezed into head.0, projection into head.3 */
    copy_values(m->global_head_w0, m->global_cnn->lin5);
    copy_values(m->global_head_fc.weight, m->global_cnn->proj_w);
    copy_values(m->global_head_fc.bias, m->global_cnn->proj_b);
    copy_values(m->local_head_w0, m->local_cnn->lin5);
    copy_values(m->local_head_fc.weight, m->local_cnn->proj_w);
    copy_values(m->local_head_fc.bias, m->local_cnn->proj_b);
}

/* ---- forward pieces --------------------------------------------------------------------------- */

/* Bilinear resize (N, C, H, W) → (N, C, size, size): an identity affine crop (0 MACs), which is
 * F.interpolate(bilinear, align_corners=False) when downscaling. */
static Tensor *resize(Ctx *ctx, Tensor *x, int size)
{
    if (!x || (x->shape[2] == size && x->shape[3] == size))
        return x;
    const int64_t N = x->shape[0];
    float *th = uaf_host_alloc(ctx, WHO, (size_t)N * 6 * sizeof *th); /* (N, 2, 3) identity */
    if (!th)
        return NULL;
    for (int64_t n = 0; n < N; n++) {
        const float id[6] = {1, 0, 0, 0, 1, 0};
        memcpy(th + n * 6, id, sizeof id);
    }
    Tensor *theta = tensor_new(ctx, DTYPE_F32, 3, (int64_t[]){N, 2, 3});
    if (!theta)
        return NULL;
    if (ctx->backend == BACKEND_CPU)
        memcpy(theta->data, th, (size_t)N * 6 * sizeof *th);
    else if (ctx->ops && ctx->ops->copy_from_host)
        ctx->ops->copy_from_host(ctx, theta, th);
    return op_patch_crop(ctx, x, theta, size);
}

/* Per-frame head: feat (N, D, T) → linear (no bias) → ReLU → dropout → linear → mean over T (N, C);
 * the per-frame logits (N·T, C) through *frame_logits when not NULL. */
static Tensor *frame_head(Ctx *ctx, Tensor *feat, Tensor *w0, const Linear *fc, float dropout, Tensor **frame_logits)
{
    if (!feat)
        return NULL;
    const int64_t N = feat->shape[0], D = feat->shape[1], T = feat->shape[2];
    Tensor *x = op_reshape(ctx, op_permute(ctx, feat, (int[]){0, 2, 1}), 2, (int64_t[]){N * T, D});
    x = op_relu(ctx, op_linear(ctx, x, w0, NULL));
    if (dropout > 0)
        x = op_dropout(ctx, x, dropout);
    Tensor *y = op_linear(ctx, x, fc->weight, fc->bias); /* (N·T, C) */
    if (frame_logits)
        *frame_logits = y;
    if (!y)
        return NULL;
    return op_mean(ctx, op_reshape(ctx, y, 3, (int64_t[]){N, T, y->shape[1]}), 1);
}

/* The spatial policy on detached maps (N, D, G, h, h) → (N, 4). */
static Tensor *spatial_policy(Ctx *ctx, const UafX3dModel *m, Tensor *maps)
{
    static const int s1[3] = {1, 1, 1}, p0[3] = {0, 0, 0}, p1[3] = {1, 1, 1};
    Tensor *x = uaf_detach(ctx, maps);
    x = policy_bn_relu(ctx, &m->spatial[0], op_conv3d(ctx, x, m->spatial[0].weight, NULL, s1, p0, 1));
    x = policy_bn_relu(ctx, &m->spatial[1], op_conv3d(ctx, x, m->spatial[1].weight, NULL, s1, p1, 1));
    x = policy_bn_relu(ctx, &m->spatial[2], op_conv3d(ctx, x, m->spatial[2].weight, NULL, s1, p1, 1));
    x = op_sigmoid(ctx, op_conv3d(ctx, x, m->spatial_head, NULL, s1, p0, 1)); /* (N, 4, 1, 1, 1) */
    return x ? op_reshape(ctx, x, 2, (int64_t[]){x->shape[0], 4}) : NULL;
}

/* The clip's views stacked view-major: (V·B, T, 3, S, S). */
static Tensor *views_of(Ctx *ctx, const UafX3dModel *m, Tensor *clips)
{
    const UafX3dConfig *c = &m->cfg;
    if (c->views == 1)
        return clips;
    const int S = c->frame_size, Sf = c->full_size;
    Tensor *rows = op_slice(ctx, clips, 3, (Sf - S) / 2, S); /* centred height */
    Tensor *v[3];
    const int64_t off[3] = {0, (Sf - S) / 2, Sf - S};
    for (int i = 0; i < 3; i++)
        v[i] = op_slice(ctx, rows, 4, off[i], S);
    return op_concat(ctx, v, 3, 0);
}

/* Mean over V view-major rows: (V·B, ...) → (B, ...). */
static Tensor *view_mean(Ctx *ctx, Tensor *x, int V)
{
    if (!x || V == 1)
        return x;
    int64_t dims[TENSOR_MAX_DIMS + 1];
    dims[0] = V;
    dims[1] = x->shape[0] / V;
    for (int i = 1; i < x->ndim; i++)
        dims[i + 1] = x->shape[i];
    return op_mean(ctx, op_reshape(ctx, x, x->ndim + 1, dims), 0);
}

typedef struct {
    int64_t N;              /* videos × views */
    X3dOutput glance;       /* X3D-S outputs */
    Tensor *glance_frame_logits; /* (N·G, C) */
    Tensor *global_avg;     /* (N, C) */
    TemporalPolicyOutput temporal;
    Tensor *actions;        /* (N, 4) attached */
    int32_t *focus_host;    /* (N, F) host indices; NULL when a device backend sampled them */
    Tensor *focus_idx;      /* (N, F) */
} GlanceStage;

/* Stages 1–4 on view-stacked clips v (N, T, 3, S, S). */
static bool glance_stage(Ctx *ctx, const UafX3dModel *m, Tensor *v, uint64_t step, GlanceStage *gs)
{
    const UafX3dConfig *c = &m->cfg;
    const int T = c->frames, G = c->glance, F = c->focus, S = c->frame_size, g = c->glance_size;
    memset(gs, 0, sizeof *gs);
    if (!v || !ctx_ok(ctx))
        return false;
    const int64_t N = v->shape[0];
    gs->N = N;
    int32_t *gidx = uaf_host_alloc(ctx, WHO, (size_t)(N * G) * sizeof *gidx);
    if (!gidx)
        return false;
    frame_sampler_glance((int)N, T, G, ctx->training, ctx->seed, step, gidx);
    ctx_scope_push(ctx, "glance");
    Tensor *frames = op_gather_rows(ctx, v, uaf_index_tensor(ctx, gidx, N, G)); /* (N, G, 3, S, S) */
    frames = resize(ctx, op_reshape(ctx, frames, 4, (int64_t[]){N * G, 3, S, S}), g);
    Tensor *clip = op_permute(ctx, op_reshape(ctx, frames, 5, (int64_t[]){N, G, 3, g, g}), (int[]){0, 2, 1, 3, 4});
    x3d_forward(ctx, m->global_cnn, clip, &gs->glance);
    ctx_scope_pop(ctx);
    ctx_scope_push(ctx, "glance_head");
    gs->global_avg = frame_head(ctx, gs->glance.frame_features, m->global_head_w0, &m->global_head_fc, c->dropout,
                                &gs->glance_frame_logits);
    ctx_scope_pop(ctx);
    if (!ctx_ok(ctx))
        return false;
    const int64_t D = gs->glance.frame_features->shape[1];
    Tensor *pooled = op_reshape(ctx, op_permute(ctx, gs->glance.frame_features, (int[]){0, 2, 1}), 2,
                                (int64_t[]){N * G, D}); /* (N·G, D) */
    ctx_scope_push(ctx, "temporal_policy");
    policy_temporal_forward(ctx, &m->temporal, uaf_detach(ctx, pooled), &gs->temporal);
    ctx_scope_pop(ctx);
    ctx_scope_push(ctx, "spatial_policy");
    gs->actions = spatial_policy(ctx, m, gs->glance.features);
    ctx_scope_pop(ctx);
    if (!ctx_ok(ctx))
        return false;
    const Tensor *wt = gs->temporal.weights_T;
    if (wt->data && wt->backend != BACKEND_CPU && ctx->ops && ctx->ops->quantile_sample && ctx->ops->copy_from_host) {
        /* a device backend samples on the device, bit for bit the host's indices, without reading
         * w_T back (so an eval pass can be captured as a CUDA graph) */
        Tensor *u = NULL; /* (N, F) stratified thresholds in training; NULL: the test midpoints */
        if (ctx->training) {
            float *uh = uaf_host_alloc(ctx, WHO, (size_t)(N * F) * sizeof *uh);
            if (!uh)
                return false;
            for (int64_t b = 0; b < N; b++) {
                RngStream r = frame_sampler_stream(ctx->seed, b, FRAME_SAMPLER_SLOT_FOCUS, step);
                frame_sampler_thresholds(F, &r, uh + b * F);
            }
            if (!(u = tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){N, F})))
                return false;
            ctx->ops->copy_from_host(ctx, u, uh);
        }
        gs->focus_host = NULL;
        if (!(gs->focus_idx = tensor_new(ctx, DTYPE_I32, 2, (int64_t[]){N, F})))
            return false;
        ctx->ops->quantile_sample(ctx, N, G, T, F, wt, u, gs->focus_idx);
        return ctx_ok(ctx);
    }
    /* focus frames from w_T on the host (uniform weights on meta, which has no data) */
    gs->focus_host = uaf_host_alloc(ctx, WHO, (size_t)(N * F) * sizeof *gs->focus_host);
    float *w = uaf_host_alloc(ctx, WHO, (size_t)(N * G) * sizeof *w);
    if (!w || !gs->focus_host)
        return false;
    if (!uaf_read_host(ctx, gs->temporal.weights_T, w)) {
        if (!ctx_ok(ctx))
            return false;
        for (int64_t i = 0; i < N * G; i++)
            w[i] = 1.0f / (float)G;
    }
    char err[256];
    if (!frame_sampler_focus(w, (int)N, G, T, F, ctx->training, ctx->seed, step, gs->focus_host, err, sizeof err)) {
        ctx_set_error(ctx, "uniadafocus-x3d: %s", err);
        return false;
    }
    gs->focus_idx = uaf_index_tensor(ctx, gs->focus_host, N, F);
    return ctx_ok(ctx);
}

/* Stage 5 for n_sets action sets a[s] (N, 4) (detached here): one X3D-L pass over all patches
 * (the official torch.cat), out[s] = the local X3D's final logits (N, C); frame_feat (n·N, D_l, F). */
static bool local_stage(Ctx *ctx, const UafX3dModel *m, Tensor *v, const GlanceStage *gs, Tensor *const *a, int n_sets,
                        X3dOutput *local)
{
    const UafX3dConfig *c = &m->cfg;
    const int F = c->focus, S = c->frame_size, P = c->patch_size;
    const int64_t N = gs->N;
    ctx_scope_push(ctx, "local");
    Tensor *frames = op_gather_rows(ctx, v, gs->focus_idx); /* (N, F, 3, S, S) */
    frames = op_reshape(ctx, frames, 4, (int64_t[]){N * F, 3, S, S});
    Tensor *sets[8] = {0};
    for (int s = 0; s < n_sets; s++) {
        Tensor *as = op_reshape(ctx, uaf_repeat_action(ctx, WHO, uaf_detach(ctx, a[s]), F), 2, (int64_t[]){N * F, 4});
        sets[s] = patch_box_crop(ctx, frames, as, &m->pixel_box); /* (N·F, 3, P, P) */
    }
    Tensor *patches = n_sets == 1 ? sets[0] : op_concat(ctx, sets, n_sets, 0);
    Tensor *clip = op_permute(ctx, op_reshape(ctx, patches, 5, (int64_t[]){n_sets * N, F, 3, P, P}),
                              (int[]){0, 2, 1, 3, 4}); /* (n·N, 3, F, P, P) */
    x3d_forward(ctx, m->local_cnn, clip, local);
    ctx_scope_pop(ctx);
    return ctx_ok(ctx);
}

static bool check_clips(Ctx *ctx, const UafX3dModel *m, const Tensor *clips)
{
    const UafX3dConfig *c = &m->cfg;
    if (!clips || !ctx_ok(ctx))
        return false;
    if (clips->ndim != 5 || clips->dtype != DTYPE_F32 || clips->shape[1] != c->frames || clips->shape[2] != 3 ||
        clips->shape[3] != c->full_size || clips->shape[4] != c->full_size || clips->shape[0] < 1) {
        char s[96];
        ctx_set_error(ctx, "uniadafocus-x3d: clips must be f32 (B, %d, 3, %d, %d), got %s", c->frames, c->full_size,
                      c->full_size, tensor_shape_str(clips, s, sizeof s));
        return false;
    }
    return true;
}

bool uafx3d_forward(Ctx *ctx, const UafX3dModel *m, Tensor *clips, uint64_t step, UafX3dOutput *out)
{
    memset(out, 0, sizeof *out);
    if (!check_clips(ctx, m, clips))
        return false;
    const int V = m->cfg.views;
    const int64_t B = clips->shape[0];
    Tensor *v = views_of(ctx, m, clips);
    GlanceStage gs;
    X3dOutput local;
    if (!glance_stage(ctx, m, v, step, &gs) || !local_stage(ctx, m, v, &gs, &gs.actions, 1, &local))
        return false;
    Tensor *final = op_add(ctx, gs.glance.logits, local.logits); /* (N, C) */
    const int64_t C = m->cfg.num_classes;
    Tensor *e0 = op_reshape(ctx, view_mean(ctx, gs.global_avg, V), 3, (int64_t[]){B, 1, C});
    Tensor *e1 = op_reshape(ctx, view_mean(ctx, final, V), 3, (int64_t[]){B, 1, C});
    out->exit_logits = op_concat(ctx, (Tensor *[]){e0, e1}, 2, 1); /* (B, 2, C) */
    out->weights = gs.temporal.weights;
    out->actions = gs.actions;
    out->focus_idx = ctx->backend == BACKEND_META ? NULL : gs.focus_host; /* NULL when sampled on a device */
    return ctx_ok(ctx);
}

/* The training's random set: a_y, a_x ~ U(0, 1) from the RANDOM_PATCH slot, size fixed to a box of
 * P pixels, (N, 4); a constant of the step. */
static Tensor *random_actions(Ctx *ctx, const UafX3dModel *m, int64_t N, uint64_t step)
{
    const UafX3dConfig *c = &m->cfg;
    float *a = uaf_host_alloc(ctx, WHO, (size_t)(N * 4) * sizeof *a);
    if (!a)
        return NULL;
    double size = ((double)c->patch_size - c->box_min) / ((double)c->box_max - c->box_min);
    float s = (float)(c->box_max > c->box_min ? (size < 0 ? 0 : size > 1 ? 1 : size) : 0.0);
    for (int64_t b = 0; b < N; b++) {
        RngStream r = frame_sampler_stream(ctx->seed, b, FRAME_SAMPLER_SLOT_RANDOM_PATCH, step);
        a[b * 4 + 0] = rng_uniform(&r, 0);
        a[b * 4 + 1] = rng_uniform(&r, 1);
        a[b * 4 + 2] = s;
        a[b * 4 + 3] = s;
    }
    Tensor *t = tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){N, 4});
    if (!t)
        return NULL;
    if (ctx->backend == BACKEND_CPU)
        memcpy(t->data, a, (size_t)(N * 4) * sizeof *a);
    else if (ctx->ops && ctx->ops->copy_from_host)
        ctx->ops->copy_from_host(ctx, t, a);
    return t;
}

Tensor *uafx3d_train_loss(Ctx *ctx, const UafX3dModel *m, Tensor *clips, const int32_t *labels, uint64_t step,
                          const UafX3dTrain *train)
{
    if (!check_clips(ctx, m, clips))
        return NULL;
    const UafX3dConfig *c = &m->cfg;
    if (c->views != 1) {
        ctx_set_error(ctx, "uniadafocus-x3d: training uses one view (views = %d)", c->views);
        return NULL;
    }
    const int64_t B = clips->shape[0];
    const int G = c->glance, F = c->focus, C = c->num_classes;
    GlanceStage gs;
    if (!glance_stage(ctx, m, clips, step, &gs))
        return NULL;
    /* set 0: random patches (the official action_1), set 1: the policy's (action_2) */
    Tensor *acts[2] = {random_actions(ctx, m, B, step), gs.actions};
    X3dOutput local;
    if (!local_stage(ctx, m, clips, &gs, acts, 2, &local))
        return NULL;
    Tensor *lab = loss_label_rows(ctx, labels, (int)B, 1, C); /* (B) */
    Tensor *local_avg = frame_head(ctx, local.frame_features, m->local_head_w0, &m->local_head_fc, c->dropout, NULL);
    /* MC temporal logits on the detached per-frame glance logits */
    int rounds = (int)lround(G / 3.0);
    Tensor *mc = loss_mc_average(ctx, uaf_detach(ctx, gs.glance_frame_logits), gs.temporal.weights, rounds,
                                 train->mc_samples, step);
    /* feature-crop logits: the box of every glance frame's map (the same box for all G) */
    Tensor *a3 = uaf_repeat_action(ctx, WHO, gs.actions, G); /* (B, G, 4) */
    Tensor *maps = gs.glance.features;               /* (B, D, G, h, h) */
    Tensor *sp = NULL;
    if (maps) {
        const int64_t D = maps->shape[1], h = maps->shape[3];
        Tensor *mp = op_reshape(ctx, op_permute(ctx, maps, (int[]){0, 2, 1, 3, 4}), 4, (int64_t[]){B * G, D, h, h});
        sp = loss_feature_crop_logits(ctx, mp, a3, &m->feature_box, m->aux_head.weight, m->aux_head.bias);
    }
    Tensor *shared = op_add(ctx, op_add(ctx, op_cross_entropy(ctx, gs.global_avg, lab), op_cross_entropy(ctx, mc, lab)),
                            op_cross_entropy(ctx, sp, lab));
    Tensor *sum = op_scale(ctx, shared, 2.0f); /* counted once per set, as main.py sums over the sets */
    for (int s = 0; s < 2 && ctx_ok(ctx); s++) {
        Tensor *gl = op_slice(ctx, local.logits, 0, s * B, B);
        Tensor *la = op_slice(ctx, local_avg, 0, s * B, B);
        sum = op_add(ctx, sum, op_add(ctx, op_cross_entropy(ctx, op_add(ctx, gs.glance.logits, gl), lab),
                                      op_cross_entropy(ctx, la, lab)));
    }
    Tensor *norm = loss_box_size(ctx, op_reshape(ctx, gs.actions, 3, (int64_t[]){B, 1, 4}));
    (void)F;
    Tensor *total = op_add(ctx, op_scale(ctx, sum, 0.5f), op_scale(ctx, norm, train->norm_ratio));
    return ctx_ok(ctx) ? total : NULL;
}

float uafx3d_lr_multiplier(const UafX3dTrain *t, const char *key)
{
    if (strncmp(key, "temporal_policy.", 16) == 0)
        return t->temporal_lr_ratio;
    if (strncmp(key, "spatial_policy.", 15) == 0)
        return t->stn_lr_ratio;
    if (strncmp(key, "global_CNN", 10) == 0 || strncmp(key, "aux_head.", 9) == 0)
        return t->global_lr_ratio; /* global_CNN., global_CNN_head. */
    return 1.0f;                   /* local_CNN., local_CNN_head. */
}

/* ---- cost ------------------------------------------------------------------------------------- */

bool uafx3d_flops(const UafX3dConfig *cfg, UafX3dFlops *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    UafX3dConfig one = *cfg; /* one view: the per-view components */
    one.views = 1;
    one.full_size = one.frame_size;
    UafX3dModel *m = uafx3d_create(&one, BACKEND_META, false, err, err_cap);
    if (!m)
        return false;
    Ctx *ctx = ctx_create(BACKEND_META, 0);
    bool ok = false;
    if (!ctx) {
        snprintf(err, err_cap, "uniadafocus-x3d: out of memory");
    } else {
        ctx_begin_pass(ctx);
        ctx_reset_counters(ctx);
        Tensor *clips = tensor_new(ctx, DTYPE_F32, 5, (int64_t[]){1, one.frames, 3, one.frame_size, one.frame_size});
        UafX3dOutput o;
        ok = uafx3d_forward(ctx, m, clips, 0, &o);
        if (!ok) {
            snprintf(err, err_cap, "%s", ctx_error_message(ctx));
        } else {
            out->glance_net = ctx_scope_macs(ctx, "glance");
            out->glance_head = ctx_scope_macs(ctx, "glance_head");
            out->local_net = ctx_scope_macs(ctx, "local");
            out->spatial_policy = ctx_scope_macs(ctx, "spatial_policy");
            out->temporal_policy = ctx_scope_macs(ctx, "temporal_policy");
            out->views = cfg->views;
            double V = cfg->views;
            out->exit[0] = V * (out->glance_net + out->glance_head);
            out->exit[1] = out->exit[0] + V * (out->local_net + out->spatial_policy + out->temporal_policy);
            out->official_exit[0] = V * out->glance_net;
            out->official_exit[1] = out->official_exit[0] + V * (out->local_net + out->spatial_policy + out->temporal_policy);
            double counted = out->glance_net + out->glance_head + out->local_net + out->spatial_policy +
                             out->temporal_policy;
            if (fabs(ctx_total_macs(ctx) - counted) > 0.5) {
                snprintf(err, err_cap, "uniadafocus-x3d: %.0f MACs counted outside the cost scopes",
                         ctx_total_macs(ctx) - counted);
                ok = false;
            }
        }
        ctx_destroy(ctx);
    }
    uafx3d_destroy(m);
    return ok;
}
