/* uniadafocus_method.h — Uni-AdaFocus (impl/uniadafocus.h) behind the Method interface, and its
 * ablations.
 *
 * Owns: the variants, their presets ("uniadafocus-<paper or synthetic preset>" and
 * "uniadafocus-<ablation>-<preset>", built on impl/presets.h), their forward passes, training
 * losses and per-exit costs, all composed from the uaf_* stages and impl/losses.h:
 *
 *   uniadafocus            the model as impl/ defines it: 17 exits at the paper's sizes (F + 1);
 *                          training = impl/train_loop.h's step (two patch sets, the temporal MC loss,
 *                          the second spatial-policy pass, the feature-crop loss, the box regulariser,
 *                          uaf_loss_total);
 *   uniadafocus-uniform    no temporal policy: the focus frames are the quantile sampler's with
 *                          uniform weights (uniform at test, stratified in training); no temporal
 *                          loss; the temporal policy is neither run nor charged;
 *   uniadafocus-centre     no spatial policy: every patch is the centred box of P pixels (a_y = a_x =
 *                          0.5, a_h = a_w = (P − s_min)/(s_max − s_min), no rescaling); training keeps
 *                          the random-patch set; no feature-crop or box loss;
 *   uniadafocus-randombox  no spatial policy: a random box position per candidate frame with the same
 *                          size (training: one patch set, drawn per step; test: drawn from ctx->seed
 *                          and ctx->step, per video of the batch);
 *   uniadafocus-noexit     the full model without sample-wise exits: one exit, the last.
 * A variant's unused module keeps its parameters (the checkpoint keys stay the full model's) with
 * learning-rate multiplier 0.
 *
 * Cost (uaf_flops' parts, meta backend): exit k = G·glance frame + (k ≥ 1)·(policies run) + k·patch
 * + classifier up to k.
 */
#ifndef FOCUSBENCH_BASELINES_UNIADAFOCUS_METHOD_H
#define FOCUSBENCH_BASELINES_UNIADAFOCUS_METHOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "baselines/common.h"
#include "impl/presets.h"
#include "impl/uniadafocus.h"

typedef enum {
    UAF_VARIANT_FULL = 0,
    UAF_VARIANT_UNIFORM,
    UAF_VARIANT_CENTRE,
    UAF_VARIANT_RANDOMBOX,
    UAF_VARIANT_NOEXIT,
} UafVariant;

/* "uniadafocus", "uniadafocus-uniform", … */
const char *uaf_variant_id(UafVariant v);

/* Per-exit MACs of a variant for a configuration (n_exits: F + 1, or 1 without exits). */
bool uaf_variant_flops(const UafConfig *cfg, UafVariant v, double *exit_macs, int *n_exits, char *err,
                       size_t err_cap);

/* The centre box's actions (B, T, 4): (0.5, 0.5, s, s), s = clamp((P − s_min)/(s_max − s_min), 0, 1). */
Tensor *uaf_centre_actions(Ctx *ctx, const UafModel *m, int64_t B);

/* A variant's forward pass (eval, or training-mode with opt->step): glance, the variant's decisions
 * (actions of patch set 1 and focus frames) and one patch set through the local CNN and the
 * classifier; out as uaf_forward fills it (temporal is empty for uniform, glance_actions NULL for
 * centre and randombox). Returns ctx_ok(ctx). */
bool uaf_variant_forward(Ctx *ctx, const UafModel *m, UafVariant v, Tensor *clips, const UafForwardOptions *opt,
                         UafOutput *out);

const MethodPresetInfo *uniadafocus_preset_info(int i);
/* The configuration and variant of a preset name. */
bool uniadafocus_preset_config(const char *name, UafConfig *cfg, UafVariant *variant);
Method *uniadafocus_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                                  uint64_t seed, char *err, size_t err_cap);
/* The model behind a Method built here (NULL for other methods). */
UafModel *uniadafocus_method_model(const Method *m);

#endif
