/* patch_box.h — Uni-AdaFocus's deformable patch: action → box → affine θ → crop (DESIGN §3 item 6).
 *
 * Owns: turning a spatial-policy action a = (a_y, a_x, a_h, a_w) ∈ [0,1]⁴ into a box and the
 * affine matrix that crops it, with the official code's formula and float32 arithmetic order
 * (get_patch_grid_scalexy in models/uni_adafocus.py), and the crop itself (op_patch_crop).
 *
 * The formula, for one axis (h with a_y, w with a_x), in the units of the image the box lives in:
 *     scale = a_h·(s_max − s_min)/P_in + s_min/P_in        (per axis; P_in = the patch side P)
 *     side  = P_out · scale                                 (P_out = the crop's side)
 *     y1    = a_y · (image − side),  y2 = y1 + side
 *     θ     = [[side_w/image, 0, −1 + (x1 + x2)/image],
 *              [0, side_h/image, −1 + (y1 + y2)/image]]
 * The pixel crop has P_out = P_in = P and image = S, so side = s_min + a·(s_max − s_min) pixels
 * (96…224 at S = 224). The feature-crop of the spatial loss uses the same formula on the glance
 * feature map: image = S/32 (7), P_out = P/32 (the official `patch_size // 32`), P_in = P, so
 * the box is the pixel box in feature-map cells. The official code hard-codes s_min = 96 and
 * s_max = 224 pixels; here they are parameters (the paper presets use those values).
 *
 * The crop samples a P_out×P_out grid at normalised pixel centres (affine_grid + bilinear
 * grid_sample, zeros outside, align_corners = false): the box is cropped and resized in one step.
 *
 * patch_box_theta is a differentiable op (the spatial feature-crop loss trains the policy
 * through θ). It runs on the host: a few numbers per patch, computed with exactly the official
 * float32 operations. On a device backend with a box_transform slot (CUDA) the forward runs
 * there instead, the same float steps bit for bit, so an inference pass never reads the device
 * (and can be captured as a CUDA graph); the backward reads through the backend's host copies.
 * It counts 0 MACs (DESIGN §4: crops are free).
 */
#ifndef FOCUSBENCH_PATCH_BOX_H
#define FOCUSBENCH_PATCH_BOX_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/context.h"
#include "kernels/tensor.h"

typedef struct {
    int image_size;    /* side of the image the box lives in: S pixels, or the feature-map side */
    int out_size;      /* side of the crop: P pixels, or P/32 feature cells */
    int in_patch_size; /* P: the patch side the size formula is written against */
    float box_min;     /* s_min in frame pixels (96 in the paper) */
    float box_max;     /* s_max in frame pixels (224 in the paper) */
} PatchBoxGeom;

/* The pixel crop of a frame of side S into P×P patches. */
PatchBoxGeom patch_box_geom_pixels(int frame_size, int patch_size, float box_min, float box_max);
/* The feature-map crop of the spatial loss: map side S/32, crop side P/32 (integer division). */
PatchBoxGeom patch_box_geom_features(int feat_side, int patch_size, float box_min, float box_max);

/* Checks the geometry; false with a message in err. */
bool patch_box_geom_check(const PatchBoxGeom *g, char *err, size_t err_cap);

/* One action a[4] = (a_y, a_x, a_h, a_w) → box[4] = (y1, x1, h, w) in image units and theta[6]
 * (row-major 2×3), the official float32 arithmetic. Either output may be NULL. */
void patch_box_compute(const PatchBoxGeom *g, const float a[4], float box[4], float theta[6]);

/* d theta / d a for one action: jac[6][4] (row = theta element, column = action component). */
void patch_box_jacobian(const PatchBoxGeom *g, const float a[4], float jac[6][4]);

/* actions: (N, 4) f32 → theta (N, 2, 3). Differentiable with respect to actions. */
Tensor *patch_box_theta(Ctx *ctx, Tensor *actions, const PatchBoxGeom *g);
/* actions: (N, 4) → boxes (N, 4) as (y1, x1, h, w) in image units. Not differentiable. */
Tensor *patch_box_boxes(Ctx *ctx, Tensor *actions, const PatchBoxGeom *g);
/* images: (N, C, H, W) with H = W = image_size, actions: (N, 4) → (N, C, out_size, out_size).
 * Gradients reach the images and, through θ, the actions (detach the actions to stop them). */
Tensor *patch_box_crop(Ctx *ctx, Tensor *images, Tensor *actions, const PatchBoxGeom *g);

#endif
