/* patch_box.c — see patch_box.h. */
#include "impl/patch_box.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/ops.h"
#include "kernels/tape.h"

PatchBoxGeom patch_box_geom_pixels(int frame_size, int patch_size, float box_min, float box_max)
{
    return (PatchBoxGeom){.image_size = frame_size, .out_size = patch_size, .in_patch_size = patch_size,
                          .box_min = box_min, .box_max = box_max};
}

PatchBoxGeom patch_box_geom_features(int feat_side, int patch_size, float box_min, float box_max)
{
    return (PatchBoxGeom){.image_size = feat_side, .out_size = patch_size / 32, .in_patch_size = patch_size,
                          .box_min = box_min, .box_max = box_max};
}

bool patch_box_geom_check(const PatchBoxGeom *g, char *err, size_t err_cap)
{
    if (g->image_size < 1 || g->out_size < 1 || g->in_patch_size < 1) {
        snprintf(err, err_cap, "patch box: image side %d, crop side %d and patch side %d must all be >= 1 (a "
                 "feature crop needs P >= 32)", g->image_size, g->out_size, g->in_patch_size);
        return false;
    }
    if (!(g->box_min > 0.0f && g->box_min <= g->box_max && isfinite(g->box_max))) {
        snprintf(err, err_cap, "patch box: box limits s_min = %g, s_max = %g must satisfy 0 < s_min <= s_max",
                 (double)g->box_min, (double)g->box_max);
        return false;
    }
    return true;
}

/* ---- the formula -------------------------------------------------------------------------- */

/* patch_box_compute's constants, for a device backend's box_transform (kernels/backend.h). */
static BoxGeom patch_box_device_geom(const PatchBoxGeom *g)
{
    return (BoxGeom){.span = (float)((double)g->box_max - (double)g->box_min),
                     .offset = (float)((double)g->box_min / (double)g->in_patch_size),
                     .in_size = (float)g->in_patch_size,
                     .out_size = (float)g->out_size,
                     .image = (float)g->image_size};
}

/* The official float32 steps, one operation per line so the rounding is PyTorch's:
 *   patch_scale = a[2:4] * (224 - 96) / P + 96 / P     (96 / P is a Python double, cast once)
 *   side        = P_out * patch_scale
 *   coord       = a[0:2] * (image - side)
 *   theta       = side / image,  -1 + (c1 + c2) / image,  c2 = c1 + side                     */
void patch_box_compute(const PatchBoxGeom *g, const float a[4], float box[4], float theta[6])
{
    const float span = (float)((double)g->box_max - (double)g->box_min);
    const float offset = (float)((double)g->box_min / (double)g->in_patch_size);
    const float pin = (float)g->in_patch_size, pout = (float)g->out_size, img = (float)g->image_size;
    float side[2], lo[2], hi[2]; /* [0] along y (height), [1] along x (width) */
    for (int axis = 0; axis < 2; axis++) {
        float scale = a[2 + axis] * span;
        scale = scale / pin;
        scale = scale + offset;
        side[axis] = pout * scale;
        float room = img - side[axis];
        lo[axis] = a[axis] * room;
        hi[axis] = lo[axis] + side[axis];
    }
    if (box) {
        box[0] = lo[0], box[1] = lo[1], box[2] = side[0], box[3] = side[1];
    }
    if (theta) {
        theta[0] = side[1] / img;
        theta[1] = 0.0f;
        theta[2] = (lo[1] + hi[1]) / img + -1.0f;
        theta[3] = 0.0f;
        theta[4] = side[0] / img;
        theta[5] = (lo[0] + hi[0]) / img + -1.0f;
    }
}

/* With k = P_out·(s_max − s_min)/P_in (d side / d a_size) and d = side/image:
 *   θ00 = d_w, θ11 = d_h:             d/da_w = k/image, d/da_h = k/image
 *   θ02 = (2·a_x − 1)·(1 − d_w):      d/da_x = 2·(image − side_w)/image, d/da_w = k·(1 − 2·a_x)/image
 *   θ12 likewise with a_y, a_h. */
void patch_box_jacobian(const PatchBoxGeom *g, const float a[4], float jac[6][4])
{
    memset(jac, 0, 6 * sizeof jac[0]);
    double img = g->image_size;
    double k = (double)g->out_size * ((double)g->box_max - (double)g->box_min) / (double)g->in_patch_size;
    double side_h = (double)g->out_size * (a[2] * ((double)g->box_max - g->box_min) + g->box_min) /
                    (double)g->in_patch_size;
    double side_w = (double)g->out_size * (a[3] * ((double)g->box_max - g->box_min) + g->box_min) /
                    (double)g->in_patch_size;
    jac[0][3] = (float)(k / img);
    jac[2][1] = (float)(2.0 * (img - side_w) / img);
    jac[2][3] = (float)(k * (1.0 - 2.0 * a[1]) / img);
    jac[4][2] = (float)(k / img);
    jac[5][0] = (float)(2.0 * (img - side_h) / img);
    jac[5][2] = (float)(k * (1.0 - 2.0 * a[0]) / img);
}

/* ---- host transfers (a few numbers per patch) -------------------------------------------- */

/* Copies t (f32) into dst; false without data (meta backend). */
static bool read_host(Ctx *ctx, const Tensor *t, float *dst)
{
    if (!t->data)
        return false;
    if (t->backend == BACKEND_CPU) {
        memcpy(dst, t->data, tensor_bytes(t));
        return true;
    }
    if (!ctx->ops || !ctx->ops->copy_to_host) {
        ctx_set_error(ctx, "patch_box: the %s backend cannot copy to the host", backend_name(t->backend));
        return false;
    }
    ctx->ops->copy_to_host(ctx, dst, t);
    return true;
}

static void write_host(Ctx *ctx, Tensor *t, const float *src)
{
    if (!t->data)
        return;
    if (t->backend == BACKEND_CPU)
        memcpy(t->data, src, tensor_bytes(t));
    else if (ctx->ops && ctx->ops->copy_from_host)
        ctx->ops->copy_from_host(ctx, t, src);
    else
        ctx_set_error(ctx, "patch_box: the %s backend cannot copy from the host", backend_name(t->backend));
}

static bool check_actions(Ctx *ctx, const char *op, const Tensor *actions)
{
    if (!ctx_ok(ctx))
        return false;
    if (!actions) {
        ctx_set_error(ctx, "%s: actions is NULL", op);
        return false;
    }
    if (actions->dtype != DTYPE_F32 || actions->ndim != 2 || actions->shape[1] != 4) {
        char s[96];
        ctx_set_error(ctx, "%s: actions must be f32 (N, 4) as (a_y, a_x, a_h, a_w), got %s %s", op,
                      dtype_name(actions->dtype), tensor_shape_str(actions, s, sizeof s));
        return false;
    }
    return true;
}

/* Runs fn over the N actions on the host: out (N, per) from a (N, 4). */
typedef enum { PB_THETA, PB_BOXES } PbKind;

static Tensor *box_op(Ctx *ctx, const char *op, Tensor *actions, const PatchBoxGeom *g, PbKind kind)
{
    char err[256];
    if (!check_actions(ctx, op, actions))
        return NULL;
    if (!patch_box_geom_check(g, err, sizeof err)) {
        ctx_set_error(ctx, "%s: %s", op, err);
        return NULL;
    }
    int64_t N = actions->shape[0];
    Tensor *out = kind == PB_THETA ? tensor_new(ctx, DTYPE_F32, 3, (int64_t[]){N, 2, 3})
                                   : tensor_new(ctx, DTYPE_F32, 2, (int64_t[]){N, 4});
    if (!out)
        return NULL;
    ctx_count(ctx, 0, (double)tensor_bytes(actions) + (double)tensor_bytes(out));
    if (actions->data && N > 0 && actions->backend != BACKEND_CPU && ctx->ops && ctx->ops->box_transform) {
        /* A device backend computes the same float steps where the actions are: no host read,
         * no synchronisation (a CUDA graph can capture the pass). */
        BoxGeom bg = patch_box_device_geom(g);
        ctx->ops->box_transform(ctx, &bg, N, actions, kind == PB_BOXES ? out : NULL, kind == PB_THETA ? out : NULL);
    } else if (actions->data && N > 0) {
        float *a = malloc((size_t)N * 4 * sizeof *a);    /* (N, 4) */
        float *o = malloc((size_t)N * 6 * sizeof *o);    /* (N, 6) or (N, 4) */
        if (!a || !o) {
            free(a), free(o);
            ctx_set_error(ctx, "%s: out of memory for %lld actions", op, (long long)N);
            return NULL;
        }
        if (read_host(ctx, actions, a)) {
            for (int64_t n = 0; n < N; n++) {
                if (kind == PB_THETA)
                    patch_box_compute(g, a + 4 * n, NULL, o + 6 * n);
                else
                    patch_box_compute(g, a + 4 * n, o + 4 * n, NULL);
            }
            write_host(ctx, out, o);
        }
        free(a), free(o);
    }
    return ctx_ok(ctx) ? out : NULL;
}

static void theta_backward(Ctx *ctx, const TapeEntry *e)
{
    Tensor *actions = e->in[0];
    if (!actions->requires_grad || !e->out->grad)
        return;
    const PatchBoxGeom *g = e->args;
    Tensor *da = tensor_grad(ctx, actions);
    if (!da || !da->data)
        return;
    int64_t N = actions->shape[0];
    float *a = malloc((size_t)N * 4 * sizeof *a);   /* (N, 4) actions */
    float *d = malloc((size_t)N * 4 * sizeof *d);   /* (N, 4) their gradient so far */
    float *dt = malloc((size_t)N * 6 * sizeof *dt); /* (N, 6) d loss / d theta */
    if (!a || !d || !dt) {
        ctx_set_error(ctx, "patch_box_theta backward: out of memory for %lld actions", (long long)N);
    } else if (read_host(ctx, actions, a) && read_host(ctx, da, d) && read_host(ctx, e->out->grad, dt)) {
        for (int64_t n = 0; n < N; n++) {
            float jac[6][4];
            patch_box_jacobian(g, a + 4 * n, jac);
            for (int c = 0; c < 4; c++) {
                float s = 0.0f;
                for (int r = 0; r < 6; r++)
                    s += jac[r][c] * dt[6 * n + r];
                d[4 * n + c] += s;
            }
        }
        write_host(ctx, da, d);
    }
    free(a), free(d), free(dt);
}

Tensor *patch_box_theta(Ctx *ctx, Tensor *actions, const PatchBoxGeom *g)
{
    Tensor *theta = box_op(ctx, "patch_box_theta", actions, g, PB_THETA);
    if (theta && ctx->recording && actions->requires_grad) {
        TapeEntry *e = tape_record(ctx, "patch_box_theta", theta_backward, theta, g, sizeof *g);
        if (e)
            e->in[0] = actions;
    }
    return ctx_ok(ctx) ? theta : NULL;
}

Tensor *patch_box_boxes(Ctx *ctx, Tensor *actions, const PatchBoxGeom *g)
{
    return box_op(ctx, "patch_box_boxes", actions, g, PB_BOXES);
}

Tensor *patch_box_crop(Ctx *ctx, Tensor *images, Tensor *actions, const PatchBoxGeom *g)
{
    if (!ctx_ok(ctx))
        return NULL;
    if (!images) {
        ctx_set_error(ctx, "patch_box_crop: images is NULL");
        return NULL;
    }
    if (images->ndim != 4 || images->shape[2] != g->image_size || images->shape[3] != g->image_size ||
        (actions && actions->ndim == 2 && actions->shape[0] != images->shape[0])) {
        char si[96], sa[96] = "NULL";
        if (actions)
            tensor_shape_str(actions, sa, sizeof sa);
        ctx_set_error(ctx, "patch_box_crop: images must be (N, C, %d, %d) with one action per image, got images %s "
                      "and actions %s", g->image_size, g->image_size, tensor_shape_str(images, si, sizeof si), sa);
        return NULL;
    }
    Tensor *theta = patch_box_theta(ctx, actions, g); /* (N, 2, 3) */
    return op_patch_crop(ctx, images, theta, g->out_size);
}
