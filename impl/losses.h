/* losses.h — Uni-AdaFocus's training losses, as ops on the tape (DESIGN §3 item 9; the official
 * main.py train() and models/uni_adafocus.py MCSampleFeature / get_patch_grid_scalexy).
 *
 * Owns:
 *   temporal Monte-Carlo average  For rounds j = 0 … J−1 (J = floor(G/3)) and S = 128 samples:
 *       drop j glance frames drawn without replacement with probability ∝ w (kernels/sampling.h),
 *       average the glance logits weighted by the remaining w, dividing by the remaining weight
 *       mass N_{j,s} with the normaliser DETACHED; mean over rounds and samples → (B, C).
 *       Since N is a constant for autograd, the whole average is Σ_t c_t·w_t·logits_t with
 *       c_t = (1/(J·S)) Σ_{j,s} keep_{j,s,t} / N_{j,s}: the coefficients c are computed on the
 *       host (no gradient) and the average is built from mul and mean ops, so gradients reach
 *       both the weights w and the glance logits — as in the official ActivityNet variant,
 *       where global_logits are not detached.
 *       Draws: video b's stream frame_sampler_stream(seed, b, FRAME_SAMPLER_SLOT_MC, step);
 *       sample (j, s) uses its elements (j·S + s)·G … +G−1.
 *   spatial feature-crop logits  the boxes of the glance actions (attached) cropped from the
 *       DETACHED glance feature maps at the feature-map scale (impl/patch_box.h feature
 *       geometry, output (P/32)²), mean over frames and space, linear aux_fc → (B, C).
 *   box-size regulariser  mean over glance actions of ((a_h − 1)² + (a_w − 1)²)/2 — the
 *       official ((action3[:, 2:4] − 1)²).mean().
 *   the total  with the official weights (all cross-entropies weight 1, mean over rows):
 *       loss_cat      = Σ_sets CE(step logits (B·(G+F), C), label of each row)
 *       loss_global   = Σ_sets CE(glance logits (B·G, C))        (the same tensor in both sets)
 *       loss_local    = Σ_sets CE(patch logits (B·F, C))
 *       loss_temporal = Σ_sets CE(MC average (B, C))               (the same in both sets)
 *       loss_spatial  = Σ_sets CE(feature-crop logits (B, C))      (the same in both sets)
 *       total = (loss_cat + loss_global + loss_local + loss_temporal + loss_spatial) / n_sets
 *               + norm_ratio · loss_norm
 *   With the official two sets (policy patches and random patches) the division is the /2 of
 *   main.py; terms that are the same tensor in both sets are doubled first (×2 is exact), so the
 *   float32 arithmetic follows main.py's order. The KL term is omitted: KL_ratio = 0 in every
 *   released command.
 */
#ifndef FOCUSBENCH_LOSSES_H
#define FOCUSBENCH_LOSSES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/patch_box.h"
#include "kernels/context.h"
#include "kernels/tensor.h"

enum { LOSS_MAX_SETS = 2, LOSS_MC_SAMPLES = 128 };

/* The official number of MC rounds: floor(G / 3). */
int loss_mc_rounds(int glance);

/* Host part of the MC average: w (B, G) → coef (B, G) = c_t of the header comment, multiplied
 * by G (so that a mean over frames gives the sum). rounds >= 1 (round 0 drops nothing),
 * rounds <= G, samples >= 1. False with a message on bad sizes or weights (non-finite,
 * negative, or fewer positive weights than a round must drop). */
bool loss_mc_coefficients(const float *w, int B, int G, int rounds, int samples, uint64_t seed, uint64_t step,
                          float *coef, char *err, size_t err_cap);

/* The MC average from given coefficients (B, G) (no gradient): glance_logits (B·G, C) or
 * (B, G, C), w (B, G) → (B, C) = mean_t(coef_t · w_t · logits_t). */
Tensor *loss_mc_average_with(Ctx *ctx, Tensor *glance_logits, Tensor *w, Tensor *coef);

/* The whole MC average: coefficients from w's values (read to the host) with ctx->seed and
 * `step`, then loss_mc_average_with. */
Tensor *loss_mc_average(Ctx *ctx, Tensor *glance_logits, Tensor *w, int rounds, int samples, uint64_t step);

/* Spatial feature-crop logits: maps (B·G, D, h, w) (detached here), actions (B, G, 4) (attached),
 * geom the feature-map crop geometry, aux_w (C, D), aux_b (C) → (B, C). */
Tensor *loss_feature_crop_logits(Ctx *ctx, Tensor *maps, Tensor *actions, const PatchBoxGeom *geom, Tensor *aux_w,
                                 Tensor *aux_b);

/* Box-size regulariser: actions (B, G, 4) → scalar mean of (a_{h,w} − 1)² over the B·G·2 sizes. */
Tensor *loss_box_size(Ctx *ctx, Tensor *actions);

/* Labels on the context's backend: host (B) → (B·rows) i32, label[b] repeated `rows` times
 * (the official target.view(B, −1).expand(B, rows).reshape(−1)). Checks 0 <= label < C. */
Tensor *loss_label_rows(Ctx *ctx, const int32_t *labels, int B, int rows, int C);

/* Everything the total needs from one training forward pass. */
typedef struct {
    int n_sets;                          /* 2 in training (policy patches, random patches); 1 allowed */
    Tensor *step_logits[LOSS_MAX_SETS];  /* (B, G + F, C) each */
    Tensor *local_logits[LOSS_MAX_SETS]; /* (B·F, C) each */
    Tensor *glance_logits;               /* (B·G, C) */
    Tensor *temporal_logits;             /* (B, C): the MC average */
    Tensor *spatial_logits;              /* (B, C): the feature-crop logits */
    Tensor *glance_actions;              /* (B, G, 4): the regulariser's actions */
} UafLossInputs;

/* The terms as main.py logs them (each summed over the sets) and the total. */
typedef struct {
    Tensor *total;            /* scalar, on the tape */
    float total_value;
    float cat, global, local, temporal, spatial, norm;
} UafLossTerms;

/* Builds the total from the inputs with labels (B) host values and the given norm_ratio.
 * Returns ctx_ok(ctx); term values are read back to the host. */
bool uaf_loss_total(Ctx *ctx, const UafLossInputs *in, const int32_t *labels, int B, float norm_ratio,
                    UafLossTerms *out);

#endif
