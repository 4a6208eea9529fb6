/* cpu_conv_dnnl.h — the oneDNN fast path for dense convolutions (forward only).
 *
 * Owns: the process-wide cache of oneDNN convolution primitives (one entry per geometry, bias
 * presence and OpenMP thread count) and the call that runs one forward convolution through it:
 *     x (N, C, T, H, W) NCHW  →  reorder to oneDNN's blocked layout  →  direct convolution
 *     (bias fused)  →  reorder back to y (N, K, To, Ho, Wo) NCHW
 * with the weights (K, C/groups, kt, kh, kw) reordered to the blocked layout on every call (they
 * change during training and a tensor carries no version; see cpu_conv_dnnl.c for the cost).
 *
 * Which convolutions take it (cpu_conv_dnnl_suits): a build with oneDNN (HAVE_DNNL=1), any
 * groups except depthwise (groups == C == K, which keeps cpu_conv.c's direct kernels), and more
 * than one kernel tap (1×1 convs stay on the GEMM path: measured faster there once oneDNN's
 * layout conversions are counted). FOCUSBENCH_CONV_DNNL=0 in the environment turns the path off
 * (read on every call, so tests can switch it); the im2col + GEMM path then runs. Without
 * oneDNN every function here is a stub that declines.
 *
 * Results are bit-identical run to run for a fixed thread count (oneDNN's forward kernels
 * partition the outputs; no reduction across threads). The algorithm is always "direct" (never
 * Winograd), so results agree with the reference to fp32 rounding of a reordered sum.
 */
#ifndef FOCUSBENCH_CPU_CONV_DNNL_H
#define FOCUSBENCH_CPU_CONV_DNNL_H

#include <stdbool.h>
#include <stddef.h>

#include "../backend.h"

/* True when cpu_conv_forward should try the oneDNN path for this geometry (see above). */
bool cpu_conv_dnnl_suits(const ConvGeom *g);

/* y (N, K, To, Ho, Wo) = conv(x, w) + b through oneDNN; b may be NULL. Workspace (blocked
 * copies, oneDNN's scratchpad) comes from ctx->scratch and is released before returning.
 * Returns false, y untouched and no error set, when oneDNN declines the geometry (it offers
 * only its slow reference implementation, or the build has no oneDNN): the caller runs its own
 * path. Returns true when the call was handled; a failure (scratch arena frozen and full, a
 * oneDNN call failing) then sets the context's error. */
bool cpu_conv_dnnl_forward(Ctx *ctx, const ConvGeom *g, const float *x, const float *w, const float *b, float *y);

/* Writes oneDNN's implementation name for this geometry into buf, e.g. "brgconv:avx512_core"
 * (creating the primitive if needed) and returns true; false (buf "") when the path does not
 * take the geometry. For reports (bench-ops, tests). */
bool cpu_conv_dnnl_impl(const ConvGeom *g, bool bias, char *buf, size_t cap);

/* "oneDNN 2.6.3" (the headers built against), or NULL in a build without oneDNN. */
const char *cpu_conv_dnnl_version(void);

#endif
