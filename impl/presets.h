/* presets.h — named Uni-AdaFocus configurations and their size-knob overrides.
 *
 * Owns: the paper's configurations (research/paper.md §3, the official README commands) and the
 * tiny synthetic ones, each with the training settings of its README command, and setting one
 * knob of a configuration by name ("patch-size", "glance", …) from a string — what every
 * `--preset P` subcommand's overrides go through, so they all accept the same knobs.
 *
 *   actnet-p96 | p128 | p160 | p192   ActivityNet: T 48, G 16, F 16, S 224, P, 200 classes
 *   fcvid-p128                         FCVID: 239 classes, lr 0.004, batch 64, wd 1e-4
 *   minik-p128                         Mini-Kinetics: 200 classes, fc_dropout 0.1, norm_ratio 0.75
 *   synth-tiny                         CPU-sized: T 8, G 4, F 4, S 64, P 32, 10 classes, MobileNetV2
 *                                      width 0.25, ResNet-50 base width 8, widths 16/8, MLP 64
 *   synth-small                        a larger CPU model for the synthetic benchmark: T 16, G 8,
 *                                      F 8, S 128, P 64, 10 classes
 * Box limits scale with the frame: s_min = 96·S/224, s_max = S (96 and 224 at S = 224).
 */
#ifndef FOCUSBENCH_PRESETS_H
#define FOCUSBENCH_PRESETS_H

#include <stdbool.h>
#include <stddef.h>

#include "impl/uniadafocus.h"

/* The training settings of a preset (official README commands; research/paper.md §3.5–3.6). */
typedef struct {
    float lr;                   /* base learning rate */
    float weight_decay;
    float momentum;             /* 0.9 */
    int batch_size;             /* total over the official 4 GPUs */
    int epochs;                 /* 50, cosine per epoch, no warm-up */
    float norm_ratio;           /* box-size regulariser weight */
    float global_lr_ratio;      /* 0.5: global CNN and its heads */
    float stn_lr_ratio;         /* 0.2: spatial policy */
    float temporal_lr_ratio;    /* 0.2: temporal policy */
    float classifier_lr_ratio;  /* 20: the classifier */
    int mc_samples;             /* 128 Monte-Carlo samples of the temporal loss */
} UafTrainDefaults;

typedef struct {
    const char *name;
    const char *description;
    UafConfig cfg;
    UafTrainDefaults train;
} UafPreset;

int uaf_preset_count(void);
const UafPreset *uaf_preset_at(int i);
/* NULL when unknown. */
const UafPreset *uaf_preset_find(const char *name);
/* "actnet-p96, actnet-p128, …" into buf; returns buf. */
char *uaf_preset_names(char *buf, size_t cap);

/* One knob by name (a leading "--" is ignored): frames, glance, focus, frame-size, patch-size,
 * classes, box-min, box-max, spatial-hidden, temporal-hidden, mlp-width, glance-width,
 * local-depth, local-base-width, backbone-fc-classes, dropout, fc-dropout, temperature.
 * Changing frame-size rescales the box limits with the frame. Returns 1 when applied, 0 when
 * the name is not a knob, -1 on a bad value (message in err). The whole configuration is
 * checked later (uaf_config_check), once every knob is set. */
int uaf_config_override(UafConfig *cfg, const char *name, const char *value, char *err, size_t err_cap);
/* Knob i's name and what it sets (for --help); false past the last knob. */
bool uaf_config_knob(int i, const char **name, const char **help);

#endif
