/* presets.c — see presets.h. */
#include "impl/presets.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The ActivityNet P model of the official README (main.py command). */
#define ACTNET_CFG(P)                                                                                           \
    {.frames = 48, .glance = 16, .focus = 16, .frame_size = 224, .patch_size = (P), .box_min = 96.0f,             \
     .box_max = 224.0f, .spatial_hidden = 128, .temporal_hidden = 64, .mlp_width = 4096, .num_classes = 200,      \
     .glance_width_mult = 1.0, .local_depth = 50, .local_base_width = 64, .backbone_fc_classes = 1000,            \
     .dropout = 0.2f, .fc_dropout = 0.2f, .temperature = 1.0f}
#define ACTNET_TRAIN                                                                                            \
    {.lr = 0.002f, .weight_decay = 2e-4f, .momentum = 0.9f, .batch_size = 32, .epochs = 50, .norm_ratio = 1.0f,   \
     .global_lr_ratio = 0.5f, .stn_lr_ratio = 0.2f, .temporal_lr_ratio = 0.2f, .classifier_lr_ratio = 20.0f,      \
     .mc_samples = 128}

/* s_min = 96·S/224 as a float: the paper's ratio at other frame sizes. */
#define SYNTH_CFG(T, G, F, S, P, width, depth, base, sh, th, W)                                                        \
    {.frames = (T), .glance = (G), .focus = (F), .frame_size = (S), .patch_size = (P),                          \
     .box_min = (float)(96.0 * (S) / 224.0), .box_max = (float)(S), .spatial_hidden = (sh), .temporal_hidden = (th), \
     .mlp_width = (W), .num_classes = 10, .glance_width_mult = (width), .local_depth = (depth), .local_base_width = (base), \
     .backbone_fc_classes = 0, .dropout = 0.2f, .fc_dropout = 0.2f, .temperature = 1.0f}
#define SYNTH_TRAIN                                                                                             \
    {.lr = 0.01f, .weight_decay = 1e-4f, .momentum = 0.9f, .batch_size = 8, .epochs = 20, .norm_ratio = 1.0f,     \
     .global_lr_ratio = 0.5f, .stn_lr_ratio = 0.2f, .temporal_lr_ratio = 0.2f, .classifier_lr_ratio = 20.0f,      \
     .mc_samples = 128}

static const UafPreset PRESETS[] = {
    {"actnet-p96", "ActivityNet, 96x96 patches (paper: 17.9 GFLOPs)", ACTNET_CFG(96), ACTNET_TRAIN},
    {"actnet-p128", "ActivityNet, 128x128 patches (paper: 27.2 GFLOPs, 80.7 mAP)", ACTNET_CFG(128), ACTNET_TRAIN},
    {"actnet-p160", "ActivityNet, 160x160 patches (paper: 39.2 GFLOPs)", ACTNET_CFG(160), ACTNET_TRAIN},
    {"actnet-p192", "ActivityNet, 192x192 patches (paper: 53.9 GFLOPs)", ACTNET_CFG(192), ACTNET_TRAIN},
    {"fcvid-p128",
     "FCVID, 128x128 patches (paper: 27.2 GFLOPs, 86.4 mAP)",
     {.frames = 48, .glance = 16, .focus = 16, .frame_size = 224, .patch_size = 128, .box_min = 96.0f,
      .box_max = 224.0f, .spatial_hidden = 128, .temporal_hidden = 64, .mlp_width = 4096, .num_classes = 239,
      .glance_width_mult = 1.0, .local_depth = 50, .local_base_width = 64, .backbone_fc_classes = 1000,
      .dropout = 0.2f, .fc_dropout = 0.2f, .temperature = 1.0f},
     {.lr = 0.004f, .weight_decay = 1e-4f, .momentum = 0.9f, .batch_size = 64, .epochs = 50, .norm_ratio = 1.0f,
      .global_lr_ratio = 0.5f, .stn_lr_ratio = 0.2f, .temporal_lr_ratio = 0.2f, .classifier_lr_ratio = 20.0f,
      .mc_samples = 128}},
    {"minik-p128",
     "Mini-Kinetics, 128x128 patches (paper: 27.2 GFLOPs, 75.8 top-1)",
     {.frames = 48, .glance = 16, .focus = 16, .frame_size = 224, .patch_size = 128, .box_min = 96.0f,
      .box_max = 224.0f, .spatial_hidden = 128, .temporal_hidden = 64, .mlp_width = 4096, .num_classes = 200,
      .glance_width_mult = 1.0, .local_depth = 50, .local_base_width = 64, .backbone_fc_classes = 1000,
      .dropout = 0.2f, .fc_dropout = 0.1f, .temperature = 1.0f},
     {.lr = 0.003f, .weight_decay = 1e-4f, .momentum = 0.9f, .batch_size = 48, .epochs = 50, .norm_ratio = 0.75f,
      .global_lr_ratio = 0.5f, .stn_lr_ratio = 0.2f, .temporal_lr_ratio = 0.2f, .classifier_lr_ratio = 20.0f,
      .mc_samples = 128}},
    /* ResNet-18 width 16 as the local network: the synthetic benchmark's shared ResNet (baselines/tsn.c
     * says why), so the TSN trained in `make reproduce` initialises it. */
    {"synth-tiny", "CPU-sized synthetic model (T 8, G 4, F 4, 64x64 frames, 32x32 patches, 10 classes; "
     "MobileNetV2 x0.25 + ResNet-18 width 16)",
     SYNTH_CFG(8, 4, 4, 64, 32, 0.25, 18, 16, 16, 8, 64), SYNTH_TRAIN},
    {"synth-small", "small synthetic model (T 16, G 8, F 8, 128x128 frames, 64x64 patches, 10 classes)",
     SYNTH_CFG(16, 8, 8, 128, 64, 0.5, 50, 16, 32, 16, 256), SYNTH_TRAIN},
};

int uaf_preset_count(void) { return (int)(sizeof PRESETS / sizeof PRESETS[0]); }

const UafPreset *uaf_preset_at(int i) { return i >= 0 && i < uaf_preset_count() ? &PRESETS[i] : NULL; }

const UafPreset *uaf_preset_find(const char *name)
{
    for (int i = 0; name && i < uaf_preset_count(); i++)
        if (strcmp(PRESETS[i].name, name) == 0)
            return &PRESETS[i];
    return NULL;
}

char *uaf_preset_names(char *buf, size_t cap)
{
    size_t used = 0;
    if (cap)
        buf[0] = '\0';
    for (int i = 0; i < uaf_preset_count() && used < cap; i++) {
        int n = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", PRESETS[i].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return buf;
}

/* ---- overrides ------------------------------------------------------------------------------- */

typedef enum { KNOB_INT, KNOB_FLOAT, KNOB_DOUBLE } KnobType;

typedef struct {
    const char *name;
    KnobType type;
    size_t offset;
    double lo, hi;
    const char *help;
} Knob;

#define KNOB(n, t, field, lo, hi, help) {n, t, offsetof(UafConfig, field), lo, hi, help}
static const Knob KNOBS[] = {
    KNOB("frames", KNOB_INT, frames, 2, 4096, "T: candidate frames per video"),
    KNOB("glance", KNOB_INT, glance, 1, 2048, "G: glance frames (T a multiple of G, T/G >= 2)"),
    KNOB("focus", KNOB_INT, focus, 1, UAF_MAX_FOCUS, "F: focus frames (patches) per video"),
    KNOB("frame-size", KNOB_INT, frame_size, 32, 8192, "S: frame side in pixels, a multiple of 32"),
    KNOB("patch-size", KNOB_INT, patch_size, 32, 8192, "P: patch side in pixels"),
    KNOB("classes", KNOB_INT, num_classes, 1, 1000000, "C: number of classes"),
    KNOB("box-min", KNOB_FLOAT, box_min, 1e-3, 8192, "s_min: smallest box side in frame pixels"),
    KNOB("box-max", KNOB_FLOAT, box_max, 1e-3, 8192, "s_max: largest box side in frame pixels"),
    KNOB("spatial-hidden", KNOB_INT, spatial_hidden, 1, 65536, "spatial policy width"),
    KNOB("temporal-hidden", KNOB_INT, temporal_hidden, 1, 65536, "temporal policy width"),
    KNOB("mlp-width", KNOB_INT, mlp_width, 1, 1 << 20, "classifier MLP width W"),
    KNOB("glance-width", KNOB_DOUBLE, glance_width_mult, 0.01, 16, "MobileNetV2 width multiplier"),
    KNOB("local-depth", KNOB_INT, local_depth, 18, 152, "ResNet depth (18, 34, 50, 101, 152)"),
    KNOB("local-base-width", KNOB_INT, local_base_width, 1, 4096, "ResNet stem/first-stage width"),
    KNOB("backbone-fc-classes", KNOB_INT, backbone_fc_classes, 0, 1000000,
         "outputs of the backbones' unused ImageNet heads (0: none)"),
    KNOB("dropout", KNOB_FLOAT, dropout, 0, 0.999, "dropout before the classifier heads"),
    KNOB("fc-dropout", KNOB_FLOAT, fc_dropout, 0, 0.999, "dropout of global_CNN_fc and local_CNN_fc"),
    KNOB("temperature", KNOB_FLOAT, temperature, 1e-6, 1e6, "tau of the sampler's softmax"),
};

int uaf_config_override(UafConfig *cfg, const char *name, const char *value, char *err, size_t err_cap)
{
    if (!name)
        return 0;
    if (strncmp(name, "--", 2) == 0)
        name += 2;
    for (size_t i = 0; i < sizeof KNOBS / sizeof KNOBS[0]; i++) {
        const Knob *k = &KNOBS[i];
        if (strcmp(k->name, name) != 0)
            continue;
        char *end = NULL;
        errno = 0;
        double v = value ? strtod(value, &end) : NAN;
        bool ok = value && end != value && *end == '\0' && errno == 0 && v >= k->lo && v <= k->hi;
        if (ok && k->type == KNOB_INT && v != floor(v))
            ok = false;
        if (!ok) {
            snprintf(err, err_cap, "--%s: bad value '%s' (%s; %s in [%g, %g])", k->name, value ? value : "(none)",
                     k->help, k->type == KNOB_INT ? "an integer" : "a number", k->lo, k->hi);
            return -1;
        }
        char *field = (char *)cfg + k->offset;
        if (strcmp(k->name, "frame-size") == 0 && cfg->frame_size > 0) {
            /* the box limits are a fraction of the frame (96/224 and 224/224 in the paper) */
            double r = v / cfg->frame_size;
            cfg->box_min = (float)(cfg->box_min * r);
            cfg->box_max = (float)(cfg->box_max * r);
        }
        if (k->type == KNOB_INT)
            *(int *)field = (int)v;
        else if (k->type == KNOB_FLOAT)
            *(float *)field = (float)v;
        else
            *(double *)field = v;
        return 1;
    }
    return 0;
}

bool uaf_config_knob(int i, const char **name, const char **help)
{
    if (i < 0 || i >= (int)(sizeof KNOBS / sizeof KNOBS[0]))
        return false;
    *name = KNOBS[i].name;
    *help = KNOBS[i].help;
    return true;
}
