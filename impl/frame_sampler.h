/* frame_sampler.h — Uni-AdaFocus's frame choices (DESIGN §3 items 2 and 5), on the host.
 *
 * Owns: the glance frames (which G of the T candidates the global CNN sees) and the focus frames
 * (which F candidates the temporal policy's distribution w_T selects), as the official code makes
 * them (AdaFocus.forward and policy_sample_indices in models/uni_adafocus.py). No gradient: the
 * indices are discrete.
 *
 * Glance: times = T/G; at test candidate 1 + j·times (the official arange(T)[1::times]); in
 * training one uniformly random candidate in each group j·times … j·times + times − 1.
 *
 * Focus ("quantile" sampling): w_T is a piecewise-constant density over G equal bins of [0, 1].
 *   c_0 = 0, c_j = w_1 + … + w_j (accumulated in double and rounded to float at each step, as
 *   PyTorch's CPU cumsum does), c_G forced to exactly 1.
 *   u_i = (i + 0.5)/F at test, (i + U(0,1))/F in training (stratified), i = 0 … F−1, in float.
 *   j = the first index with c_j ≥ u_i, bin b = clamp(j, 1, G) − 1;
 *   x_i = (x2·(u − c_b) − x1·(u − c_{b+1})) / (c_{b+1} − c_b), x1 = b/G, x2 = (b+1)/G — the official
 *   cal_x, the linear interpolation inside the bin, in float32;
 *   k_i = floor(x_i·T); then k_i = max(k_i, k_{i−1} + 1) for i = 1 … F−1 (strictly increasing),
 *   then k_i = min(k_i, T − F + i) (so the last F−i indices still fit).
 * Uniform weights give uniform sampling: k_i = floor((i + 0.5)·T/F).
 *
 * Randomness: training draws come from rng_stream(seed, RNG_PURPOSE_SAMPLING, b·FRAME_SAMPLER_SLOTS
 * + slot, step), element i — one stream per (video b, purpose slot, step), so reruns repeat
 * exactly and the slots never share numbers.
 */
#ifndef FOCUSBENCH_FRAME_SAMPLER_H
#define FOCUSBENCH_FRAME_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/rng.h"

/* Random-number slots of one video in one training step (the `sample` key is b·SLOTS + slot). */
enum {
    FRAME_SAMPLER_SLOT_GLANCE = 0,  /* glance offsets within their groups */
    FRAME_SAMPLER_SLOT_FOCUS,       /* stratified thresholds */
    FRAME_SAMPLER_SLOT_RANDOM_PATCH,/* the training's random patch positions (impl/uniadafocus) */
    FRAME_SAMPLER_SLOT_MC,          /* the temporal Monte-Carlo loss's drops */
    FRAME_SAMPLER_SLOTS = 8
};

/* The stream of video b's slot at a training step. */
RngStream frame_sampler_stream(uint64_t seed, int64_t b, int slot, uint64_t step);

/* Checks T, G, F: G >= 1, T a multiple of G with T/G >= 2 (the test offset 1 must lie inside each
 * group), 1 <= F <= T. False with a message in err. */
bool frame_sampler_check(int T, int G, int F, char *err, size_t err_cap);

/* Glance indices of B videos: idx (B, G). train: random offsets from the GLANCE slot streams. */
void frame_sampler_glance(int B, int T, int G, bool train, uint64_t seed, uint64_t step, int32_t *idx);

/* Thresholds u (F): (i + 0.5)/F, or (i + U)/F with U from stream s (element i) when s is non-NULL. */
void frame_sampler_thresholds(int F, const RngStream *s, float *u);

/* One video: weights w (G) (finite, >= 0, not all 0), thresholds u (F) → idx (F) in [0, T),
 * strictly increasing. False with a message in err on bad weights or sizes. */
bool frame_sampler_quantile(const float *w, int G, int T, int F, const float *u, int32_t *idx, char *err,
                            size_t err_cap);

/* B videos: w (B, G) → idx (B, F); train: stratified thresholds from the FOCUS slot streams. */
bool frame_sampler_focus(const float *w, int B, int G, int T, int F, bool train, uint64_t seed, uint64_t step,
                         int32_t *idx, char *err, size_t err_cap);

#endif
