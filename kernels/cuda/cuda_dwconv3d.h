/* cuda_dwconv3d.h — the channel-wise (depthwise) 3-D convolution kernels of the CUDA backend
 * (cuda_dwconv3d.cu), used by cuda_conv.c for X3D's 3×3×3 and 5×1×1 channel-wise convolutions,
 * and the backward kernels of the 2-D 3×3 depthwise convolution (end of this header).
 *
 * Why: cuDNN's grouped kernels run such shapes about 100× under the memory bound, and the
 * generic direct kernels of cuda_conv_kernels.cu reduce each weight gradient element in its own
 * block over the whole batch (one pass over x and dy per tap).
 *
 * Geometry: the 3-D ConvGeom of backend.h with groups == C == K (> 1), a 3-D volume (T > 1 or
 * kt > 1: 2-D depthwise convs keep their own path) and at most DWCONV3D_MAX_TAPS taps:
 *   x (N, C, T, H, W)   w (C, 1, kt, kh, kw)   b (C) or NULL   y (N, C, To, Ho, Wo)
 * Deterministic: every output element is written by one thread with its taps in a fixed order;
 * the weight gradient sums per-block partials of a fixed split of the (n, position) range, each
 * block reducing in a fixed tree order (double), then a second kernel adds the partials in split
 * order. No atomics.
 */
#ifndef FOCUSBENCH_CUDA_DWCONV3D_H
#define FOCUSBENCH_CUDA_DWCONV3D_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/backend.h" /* C declarations (ctx_set_error, ConvGeom): C linkage from the .cu too */

enum { DWCONV3D_MAX_TAPS = 27 };

/* Whether these kernels take the geometry (see the header comment). */
bool cuda_dwconv3d_suits(const ConvGeom *g);
/* y = conv(x, w) + b (b may be NULL); overwrites y. */
bool cuda_dwconv3d_forward(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b, float *y);
/* dx += convᵀ(dy, w). */
bool cuda_dwconv3d_backward_data(Ctx *ctx, const ConvGeom *g, const float *w, const float *dy, float *dx);
/* dw += Σ_n Σ_out dy · x (per-block partials, fixed-order reduction; uses and releases scratch). */
bool cuda_dwconv3d_backward_filter(Ctx *ctx, const ConvGeom *g, const float *x, const float *dy, float *dw);

/* The backward of the 2-D 3x3 depthwise conv (MobileNetV2's; the geometry of
 * cuda_dwconv2d_supported, whose forward is cuda_launch_dwconv2d_forward): the same contracts as
 * the two above, the same determinism; an error on any other geometry. */
bool cuda_dwconv2d_backward_data(Ctx *ctx, const ConvGeom *g, const float *w, const float *dy, float *dx);
bool cuda_dwconv2d_backward_filter(Ctx *ctx, const ConvGeom *g, const float *x, const float *dy, float *dw);

#ifdef __cplusplus
}
#endif

#endif
