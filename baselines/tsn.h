/* tsn.h — TSN and TSM: the static baselines (Wang et al. ECCV'16; Lin et al. ICCV'19, official code
 * mit-han-lab/temporal-shift-module).
 *
 * Owns: the model (a 2-D backbone run on F of the clip's T frames, a linear classifier per
 * frame, the logits averaged over frames — TSN's "avg" consensus), TSM as the same model whose
 * backbone shifts 1/8 of its channels one frame each way inside every residual branch (0 MACs),
 * the presets, and the Method adapter (id "tsn" or "tsm").
 *
 *   frames   segment sampling of F of the T clip frames: the centre of each of F equal segments
 *            at test, a random frame of each in training (baselines/common.h);
 *   backbone base_model.* — MobileNetV2 (torchvision keys) or ResNet (torchvision keys), widths as
 *            knobs; with TSM the F frames of a clip are consecutive in the batch;
 *   head     new_fc (the official name): dropout (training) + linear D → C per frame;
 *   output   mean over the F frames → (B, C); one exit.
 * Training loss: cross-entropy of the averaged logits.
 *
 * Cost: F · (backbone on one S×S frame + fc), measured on the meta backend by running the eval
 * forward pass of one video (tsn_flops also gives the parts).
 */
#ifndef FOCUSBENCH_BASELINES_TSN_H
#define FOCUSBENCH_BASELINES_TSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "baselines/common.h"

typedef struct {
    int frames;                /* T: frames per clip */
    int segments;              /* F: frames the backbone sees, 1 ≤ F ≤ T */
    int frame_size;            /* S */
    int classes;               /* C */
    bool tsm;                  /* temporal shift in the backbone */
    BlBackboneConfig backbone; /* tsm_segments is set from F when tsm */
    float dropout;             /* before new_fc (TSN 0.8 / TSM 0.5 in the official commands) */
} TsnConfig;

bool tsn_config_check(const TsnConfig *cfg, char *err, size_t err_cap);

typedef struct {
    TsnConfig cfg;
    ParamSet *ps;        /* owned */
    BlBackbone backbone; /* base_model.* */
    Linear fc;           /* new_fc: (C, D) */
} TsnModel;

TsnModel *tsn_model_create(const TsnConfig *cfg, BackendKind backend, bool with_grads, char *err, size_t err_cap);
void tsn_model_destroy(TsnModel *m);
/* torchvision initialisation of the backbone; new_fc normal(0, 0.001), bias 0 (the official TSN). */
void tsn_model_init(TsnModel *m, uint64_t seed);

/* clips (B, T, 3, S, S) → per-frame logits (B, F, C) (*frame_logits, may be NULL) and their
 * mean (B, C) (returned). Training mode (ctx->training): random segment offsets keyed by
 * (ctx->seed, step) and dropout. */
Tensor *tsn_forward(Ctx *ctx, const TsnModel *m, Tensor *clips, uint64_t step, Tensor **frame_logits);

/* Cost parts (MACs, meta backend): the backbone on one frame, new_fc on one frame, and the
 * whole eval forward of one video (= F·(backbone + fc)). */
typedef struct {
    double backbone_frame, fc_frame, video;
} TsnFlops;
bool tsn_flops(const TsnConfig *cfg, TsnFlops *out, char *err, size_t err_cap);

/* ---- presets and the Method adapter ----------------------------------------------------------- */

/* Preset i (NULL past the last). */
const MethodPresetInfo *tsn_preset_info(int i);
/* The preset's configuration (false when unknown). */
bool tsn_preset_config(const char *name, TsnConfig *cfg);
/* Builds the Method for a preset of this module (overrides: frames, focus = F, frame_size,
 * classes). NULL with a message in err. */
Method *tsn_method_create(const char *preset, const MethodOverrides *ov, BackendKind backend, bool with_grads,
                          uint64_t seed, char *err, size_t err_cap);

#endif
