/* losses.c — see losses.h. */
#include "impl/losses.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "impl/frame_sampler.h"
#include "kernels/backend.h"
#include "kernels/ops.h"
#include "kernels/sampling.h"

/* ---- host transfers ------------------------------------------------------------------------ */

/* A tensor of the context's backend filled from host memory (no data on meta). */
static Tensor *tensor_from_host(Ctx *ctx, const char *what, DType dtype, int ndim, const int64_t *dims,
                                const void *src)
{
    Tensor *t = tensor_new(ctx, dtype, ndim, dims);
    if (!t || !t->data)
        return t;
    if (t->backend == BACKEND_CPU)
        memcpy(t->data, src, tensor_bytes(t));
    else if (ctx->ops && ctx->ops->copy_from_host)
        ctx->ops->copy_from_host(ctx, t, src);
    else {
        ctx_set_error(ctx, "%s: the %s backend cannot copy from the host", what, backend_name(t->backend));
        return NULL;
    }
    return t;
}

/* t's f32 values into dst; false (no error) when t has no data (meta). */
static bool tensor_to_host(Ctx *ctx, const char *what, const Tensor *t, float *dst)
{
    if (!t || !t->data)
        return false;
    if (t->backend == BACKEND_CPU) {
        memcpy(dst, t->data, tensor_bytes(t));
        return true;
    }
    if (!ctx->ops || !ctx->ops->copy_to_host) {
        ctx_set_error(ctx, "%s: the %s backend cannot copy to the host", what, backend_name(t->backend));
        return false;
    }
    ctx->ops->copy_to_host(ctx, dst, t);
    return true;
}

/* The same data without its tape history (PyTorch's .detach()). */
static Tensor *detach(Ctx *ctx, Tensor *t) { return t ? tensor_view(ctx, t, t->ndim, t->shape) : NULL; }

/* False (with the context's error) when the context failed or an input is NULL. */
static bool inputs_ok(Ctx *ctx, const char *what, int n, Tensor *const *in)
{
    if (!ctx_ok(ctx))
        return false;
    for (int i = 0; i < n; i++)
        if (!in[i]) {
            ctx_set_error(ctx, "%s: input %d is NULL (an earlier step failed without a message)", what, i);
            return false;
        }
    return true;
}
#define INPUTS_OK(ctx, what, ...) \
    inputs_ok((ctx), (what), (int)(sizeof((Tensor *[]){__VA_ARGS__}) / sizeof(Tensor *)), (Tensor *[]){__VA_ARGS__})

static float scalar_value(Ctx *ctx, const Tensor *t)
{
    float v = NAN;
    tensor_to_host(ctx, "loss", t, &v);
    return v;
}

/* ---- temporal Monte-Carlo average ------------------------------------------------------------ */

int loss_mc_rounds(int glance) { return glance / 3; }

bool loss_mc_coefficients(const float *w, int B, int G, int rounds, int samples, uint64_t seed, uint64_t step,
                          float *coef, char *err, size_t err_cap)
{
    if (B < 1 || G < 1 || rounds < 1 || rounds > G || samples < 1) {
        snprintf(err, err_cap, "temporal MC loss: need B >= 1, G >= 1, 1 <= rounds <= G and samples >= 1, got B = %d, "
                 "G = %d, rounds = %d, samples = %d (rounds = floor(G/3): the model needs G >= 3 glance frames)",
                 B, G, rounds, samples);
        return false;
    }
    double acc[G];      /* (G) Σ over rounds and samples of keep_t / N */
    unsigned char keep[G]; /* (G) */
    int32_t drop[G];    /* (G) frames dropped in one sample */
    for (int b = 0; b < B; b++) {
        const float *wb = w + (int64_t)b * G; /* (G) */
        int positive = 0;
        for (int t = 0; t < G; t++) {
            if (!isfinite(wb[t]) || wb[t] < 0.0f) {
                snprintf(err, err_cap, "temporal MC loss: video %d has temporal weight w[%d] = %g (must be finite and "
                         ">= 0)", b, t, (double)wb[t]);
                return false;
            }
            positive += wb[t] > 0.0f;
        }
        if (positive < rounds) {
            snprintf(err, err_cap, "temporal MC loss: video %d has %d positive temporal weights; round %d drops %d frames "
                     "and needs one left (the weights underflowed)", b, positive, rounds - 1, rounds - 1);
            return false;
        }
        RngStream s = frame_sampler_stream(seed, b, FRAME_SAMPLER_SLOT_MC, step);
        for (int t = 0; t < G; t++)
            acc[t] = 0.0;
        for (int j = 0; j < rounds; j++) {
            /* round 0 drops nothing: every sample is the same */
            int n_samples = j == 0 ? 1 : samples;
            double reps = j == 0 ? (double)samples : 1.0;
            for (int smp = 0; smp < n_samples; smp++) {
                memset(keep, 1, sizeof keep);
                if (j > 0) {
                    uint64_t base = ((uint64_t)j * (uint64_t)samples + (uint64_t)smp) * (uint64_t)G;
                    if (!sample_without_replacement(wb, G, j, &s, base, drop, err, err_cap))
                        return false;
                    for (int d = 0; d < j; d++)
                        keep[drop[d]] = 0;
                }
                /* the remaining mass, float32 as the official new_weights.sum(dim=1) */
                float N = 0.0f;
                for (int t = 0; t < G; t++)
                    if (keep[t])
                        N += wb[t];
                for (int t = 0; t < G; t++)
                    if (keep[t])
                        acc[t] += reps / (double)N;
            }
        }
        for (int t = 0; t < G; t++)
            coef[(int64_t)b * G + t] = (float)(acc[t] * (double)G / ((double)rounds * (double)samples));
    }
    return true;
}

Tensor *loss_mc_average_with(Ctx *ctx, Tensor *glance_logits, Tensor *w, Tensor *coef)
{
    const char *what = "temporal MC average";
    if (!INPUTS_OK(ctx, what, glance_logits, w, coef))
        return NULL;
    int64_t B = w->shape[0], G = w->ndim == 2 ? w->shape[1] : -1;
    int64_t C = glance_logits->ndim >= 2 ? glance_logits->shape[glance_logits->ndim - 1] : -1;
    bool ok = w->ndim == 2 && coef->ndim == 2 && coef->shape[0] == B && coef->shape[1] == G &&
              ((glance_logits->ndim == 2 && glance_logits->shape[0] == B * G) ||
               (glance_logits->ndim == 3 && glance_logits->shape[0] == B && glance_logits->shape[1] == G));
    if (!ok) {
        char sl[96], sw[96], sc[96];
        ctx_set_error(ctx, "%s: need glance logits (B·G, C) or (B, G, C), weights (B, G) and coefficients (B, G); "
                      "got %s, %s, %s", what, tensor_shape_str(glance_logits, sl, sizeof sl),
                      tensor_shape_str(w, sw, sizeof sw), tensor_shape_str(coef, sc, sizeof sc));
        return NULL;
    }
    Tensor *wc = op_mul(ctx, w, detach(ctx, coef));                       /* (B, G) */
    Tensor *wc3 = op_reshape(ctx, wc, 3, (int64_t[]){B, G, 1});           /* (B, G, 1) */
    Tensor *l3 = op_reshape(ctx, glance_logits, 3, (int64_t[]){B, G, C}); /* (B, G, C) */
    return op_mean(ctx, op_mul(ctx, l3, wc3), 1);                        /* (B, C) */
}

Tensor *loss_mc_average(Ctx *ctx, Tensor *glance_logits, Tensor *w, int rounds, int samples, uint64_t step)
{
    const char *what = "temporal MC average";
    if (!INPUTS_OK(ctx, what, glance_logits, w))
        return NULL;
    if (w->ndim != 2 || w->dtype != DTYPE_F32) {
        char sw[96];
        ctx_set_error(ctx, "%s: weights must be f32 (B, G), got %s %s", what, dtype_name(w->dtype),
                      tensor_shape_str(w, sw, sizeof sw));
        return NULL;
    }
    int B = (int)w->shape[0], G = (int)w->shape[1];
    Tensor *coef;
    if (!w->data) { /* meta: shapes only */
        coef = tensor_new(ctx, DTYPE_F32, 2, w->shape);
    } else {
        float *host = malloc((size_t)B * G * 2 * sizeof *host); /* w (B, G), then coef (B, G) */
        if (!host) {
            ctx_set_error(ctx, "%s: out of memory", what);
            return NULL;
        }
        char err[256];
        bool ok = tensor_to_host(ctx, what, w, host);
        if (ok && !loss_mc_coefficients(host, B, G, rounds, samples, ctx->seed, step, host + (int64_t)B * G, err,
                                        sizeof err)) {
            ctx_set_error(ctx, "%s", err);
            ok = false;
        }
        coef = ok ? tensor_from_host(ctx, what, DTYPE_F32, 2, w->shape, host + (int64_t)B * G) : NULL;
        free(host);
        if (!ok)
            return NULL;
    }
    return loss_mc_average_with(ctx, glance_logits, w, coef);
}

/* ---- spatial feature-crop logits ------------------------------------------------------------- */

Tensor *loss_feature_crop_logits(Ctx *ctx, Tensor *maps, Tensor *actions, const PatchBoxGeom *geom, Tensor *aux_w,
                                 Tensor *aux_b)
{
    const char *what = "spatial feature-crop loss";
    if (!INPUTS_OK(ctx, what, maps, actions, aux_w, aux_b))
        return NULL;
    bool ok = maps->ndim == 4 && actions->ndim == 3 && actions->shape[2] == 4 &&
              maps->shape[0] == actions->shape[0] * actions->shape[1] && maps->shape[2] == geom->image_size &&
              maps->shape[3] == geom->image_size && aux_w->ndim == 2 && aux_w->shape[1] == maps->shape[1];
    if (!ok) {
        char sm[96], sa[96], sw[96];
        ctx_set_error(ctx, "%s: need glance maps (B·G, D, %d, %d), actions (B, G, 4) and aux_fc weight (C, D); got "
                      "%s, %s, %s", what, geom->image_size, geom->image_size, tensor_shape_str(maps, sm, sizeof sm),
                      tensor_shape_str(actions, sa, sizeof sa), tensor_shape_str(aux_w, sw, sizeof sw));
        return NULL;
    }
    int64_t B = actions->shape[0], G = actions->shape[1], D = maps->shape[1], p = geom->out_size;
    Tensor *a = op_reshape(ctx, actions, 2, (int64_t[]){B * G, 4});
    /* the official patches_3 = get_patch_grid_scalexy(global_feat_map.detach(), action_3, …) */
    Tensor *crop = patch_box_crop(ctx, detach(ctx, maps), a, geom);            /* (B·G, D, p, p) */
    Tensor *v = op_reshape(ctx, crop, 4, (int64_t[]){B, G, D, p * p});        /* (B, G, D, p·p) */
    v = op_mean(ctx, op_mean(ctx, v, 3), 1);                                   /* (B, D): frames and space */
    return op_linear(ctx, v, aux_w, aux_b);                                    /* (B, C) */
}

/* ---- box-size regulariser ------------------------------------------------------------------- */

Tensor *loss_box_size(Ctx *ctx, Tensor *actions)
{
    const char *what = "box-size regulariser";
    if (!INPUTS_OK(ctx, what, actions))
        return NULL;
    if (actions->ndim != 3 || actions->shape[2] != 4) {
        char sa[96];
        ctx_set_error(ctx, "%s: actions must be (B, G, 4), got %s", what, tensor_shape_str(actions, sa, sizeof sa));
        return NULL;
    }
    int64_t B = actions->shape[0], G = actions->shape[1];
    const float minus_one = -1.0f;
    Tensor *m1 = tensor_from_host(ctx, what, DTYPE_F32, 3, (int64_t[]){1, 1, 1}, &minus_one); /* (1, 1, 1) */
    Tensor *hw = op_slice(ctx, actions, 2, 2, 2);                                  /* (B, G, 2): a_h, a_w */
    Tensor *d = op_add(ctx, hw, m1);                                                /* a − 1 */
    Tensor *sq = op_sum_all(ctx, op_mul(ctx, d, d));
    return op_scale(ctx, sq, 1.0f / (float)(B * G * 2));
}

/* ---- labels and the total --------------------------------------------------------------------- */

Tensor *loss_label_rows(Ctx *ctx, const int32_t *labels, int B, int rows, int C)
{
    if (!ctx_ok(ctx))
        return NULL;
    if (B < 1 || rows < 1 || !labels) {
        ctx_set_error(ctx, "loss labels: need B >= 1 videos and rows >= 1, got B = %d, rows = %d", B, rows);
        return NULL;
    }
    for (int b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= C) {
            ctx_set_error(ctx, "loss labels: video %d of the batch has label %d, outside [0, %d) (an unlabelled "
                          "video, or a data set with more classes than the model)", b, (int)labels[b], C);
            return NULL;
        }
    int32_t *host = malloc((size_t)B * rows * sizeof *host); /* (B·rows) */
    if (!host) {
        ctx_set_error(ctx, "loss labels: out of memory");
        return NULL;
    }
    for (int b = 0; b < B; b++)
        for (int r = 0; r < rows; r++)
            host[(int64_t)b * rows + r] = labels[b];
    Tensor *t = tensor_from_host(ctx, "loss labels", DTYPE_I32, 1, (int64_t[]){(int64_t)B * rows}, host);
    free(host);
    return t;
}

/* Mean cross-entropy of logits viewed as (rows, C) against each video's label repeated. */
static Tensor *ce_rows(Ctx *ctx, Tensor *logits, const int32_t *labels, int B, int C)
{
    if (!ctx_ok(ctx) || !logits)
        return NULL;
    int64_t M = tensor_numel(logits) / C;
    if (M % B != 0 || logits->shape[logits->ndim - 1] != C) {
        char s[96];
        ctx_set_error(ctx, "loss: logits %s do not split into rows of C = %d classes per video of B = %d",
                      tensor_shape_str(logits, s, sizeof s), C, B);
        return NULL;
    }
    Tensor *x = op_reshape(ctx, logits, 2, (int64_t[]){M, C});
    return op_cross_entropy(ctx, x, loss_label_rows(ctx, labels, B, (int)(M / B), C));
}

bool uaf_loss_total(Ctx *ctx, const UafLossInputs *in, const int32_t *labels, int B, float norm_ratio,
                    UafLossTerms *out)
{
    memset(out, 0, sizeof *out);
    const char *what = "uniadafocus loss";
    if (!ctx_ok(ctx))
        return false;
    if (in->n_sets < 1 || in->n_sets > LOSS_MAX_SETS) {
        ctx_set_error(ctx, "%s: %d patch sets (1 or 2)", what, in->n_sets);
        return false;
    }
    if (!INPUTS_OK(ctx, what, in->glance_logits, in->temporal_logits, in->spatial_logits, in->glance_actions))
        return false;
    for (int s = 0; s < in->n_sets; s++)
        if (!INPUTS_OK(ctx, what, in->step_logits[s], in->local_logits[s]))
            return false;
    int C = (int)in->glance_logits->shape[in->glance_logits->ndim - 1];
    Tensor *cat = NULL, *local = NULL;
    for (int s = 0; s < in->n_sets; s++) {
        Tensor *c = ce_rows(ctx, in->step_logits[s], labels, B, C);
        Tensor *l = ce_rows(ctx, in->local_logits[s], labels, B, C);
        cat = s == 0 ? c : op_add(ctx, cat, c);
        local = s == 0 ? l : op_add(ctx, local, l);
    }
    /* tensors shared by the sets: summed n_sets times in main.py; ×2 is exact in float32 */
    float k = (float)in->n_sets;
    Tensor *global = ce_rows(ctx, in->glance_logits, labels, B, C);
    Tensor *temporal = ce_rows(ctx, in->temporal_logits, labels, B, C);
    Tensor *spatial = ce_rows(ctx, in->spatial_logits, labels, B, C);
    if (in->n_sets > 1) {
        global = op_scale(ctx, global, k);
        temporal = op_scale(ctx, temporal, k);
        spatial = op_scale(ctx, spatial, k);
    }
    Tensor *norm = loss_box_size(ctx, in->glance_actions);
    /* (loss_cat + loss_global + loss_local + loss_temporal + loss_spatial) / 2 + loss_norm · norm_ratio */
    Tensor *sum = op_add(ctx, op_add(ctx, op_add(ctx, op_add(ctx, cat, global), local), temporal), spatial);
    Tensor *total = op_add(ctx, op_scale(ctx, sum, 1.0f / k), op_scale(ctx, norm, norm_ratio));
    if (!ctx_ok(ctx))
        return false;
    out->total = total;
    out->total_value = scalar_value(ctx, total);
    out->cat = scalar_value(ctx, cat);
    out->global = scalar_value(ctx, global);
    out->local = scalar_value(ctx, local);
    out->temporal = scalar_value(ctx, temporal);
    out->spatial = scalar_value(ctx, spatial);
    out->norm = scalar_value(ctx, norm);
    return ctx_ok(ctx);
}
