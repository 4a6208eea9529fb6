/* mobilenet_v2.h — MobileNetV2 (Sandler et al. 2018), the glance network of Uni-AdaFocus.
 *
 * Owns: the model's layer layout and checkpoint keys, its forward pass (feature map, pooled
 * vector, optional classifier logits), torchvision-style initialisation, batch-norm folding for
 * inference, and the optional TSM temporal shift (MobileNetV2-TSM, the glance network of
 * Uni-AdaFocus-TSM).
 *
 * Layout: stem conv 3×3 s2 → 17 inverted-residual blocks (t, c, n, s) = (1,16,1,1) (6,24,2,2)
 * (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1) → 1×1 conv to the last width (1280
 * at width 1) → mean over space → [dropout →] linear. ReLU6 after every conv except the
 * projections; a block adds its input when stride 1 and widths match.
 *
 * Two key layouts of the same network (identical at width 1.0):
 *   MOBILENET_V2_KEYS_TORCHVISION  torchvision.models.mobilenet_v2: features.1.conv.0.0.weight,
 *       features.2.conv.1.1.running_var, classifier.1.weight; widths by torchvision's
 *       _make_divisible (nearest multiple of 8, never below 90%), last width 1280·max(1, w).
 *   MOBILENET_V2_KEYS_OFFICIAL  the tonylins/pytorch-mobilenet-v2 module that the official
 *       Uni-AdaFocus and Uni-AdaFocus-TSM code use for global_CNN: features.1.conv.0.weight,
 *       features.2.conv.4.running_var, classifier.weight; its width rule (stem always 32,
 *       t = 1 blocks unscaled, others rounded UP to a multiple of 8, last width 1280 unless w > 1)
 *       and no dropout in the classifier. Use it (with prefix "global_CNN.") to load a converted
 *       official checkpoint.
 *
 * TSM (tsm_segments = T > 0): the input is (N·T, 3, H, W), T consecutive frames per clip, and
 * every block with an expansion layer and a residual connection shifts its branch input along
 * time before the expansion conv (1/fold_div of the channels from the next frame, 1/fold_div
 * from the previous one) — the placement of the official TSM code for MobileNetV2. The shift
 * costs 0 MACs.
 *
 * Cost scopes: "features.0" … "features.18", "pool" and "classifier".
 */
#ifndef FOCUSBENCH_MOBILENET_V2_H
#define FOCUSBENCH_MOBILENET_V2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/backbone_common.h"
#include "kernels/context.h"
#include "kernels/params.h"

enum { MOBILENET_V2_BLOCKS = 17 };

typedef enum {
    MOBILENET_V2_KEYS_TORCHVISION = 0,
    MOBILENET_V2_KEYS_OFFICIAL,
} MobileNetV2Keys;

typedef struct {
    double width_mult;   /* 1.0: the paper's network */
    int num_classes;     /* 0: no classifier (features and pooled vector only) */
    float dropout;       /* before the classifier, torchvision layout only (torchvision: 0.2) */
    int tsm_segments;    /* 0: no temporal shift; T frames per clip otherwise */
    int tsm_fold_div;    /* 8 in TSM: 1/8 of the channels each way */
    bool tsm_net_keys;   /* name a shifted block's expansion conv "….conv.0.net.weight", as the official
                          * TSM code's TemporalShift wrapper does (false: "….conv.0.weight") */
    MobileNetV2Keys keys;
    const char *prefix;  /* before every key, e.g. "global_CNN."; NULL or "" for none */
} MobileNetV2Config;

typedef struct {
    ConvBn expand;     /* 1×1 in → hidden, ReLU6; absent (weight NULL) when t = 1 */
    ConvBn depthwise;  /* 3×3 hidden → hidden, groups = hidden, stride s, ReLU6 */
    ConvBn project;    /* 1×1 hidden → out, no activation */
    bool residual;     /* stride 1 and in == out: add the block input */
    bool shift;        /* TSM: shift the branch input (expand present and residual) */
} MobileNetV2Block;

typedef struct {
    MobileNetV2Config cfg;
    char prefix[64];   /* cfg.prefix copied (cfg.prefix points here) */
    ParamSet *ps;      /* the caller's; parameters declared by mobilenet_v2_create */
    ConvBn stem;       /* features.0: 3×3 s2, 3 → stem_width */
    MobileNetV2Block blocks[MOBILENET_V2_BLOCKS]; /* features.1 … features.17 */
    ConvBn head;       /* features.18: 1×1 → last_width */
    Linear classifier; /* last_width → num_classes; weight NULL without a classifier */
    int stem_width, last_width;
    ConvBn *layers[1 + 3 * MOBILENET_V2_BLOCKS + 1]; /* every ConvBn, for folding */
    int n_layers;
    ParamSet *fold_ps; /* the folded biases once mobilenet_v2_fold_batch_norm ran */
} MobileNetV2;

/* The name in layout `to` of checkpoint key `key` of layout `from` (e.g. torchvision's
 * "features.2.conv.1.0.weight" is the official "features.2.conv.3.weight"), for the standard
 * block layout (block 1 without expansion). Keys outside the inverted-residual blocks are the
 * same in both. False when key is not a block key of layout `from` or does not fit in cap. */
bool mobilenet_v2_key_convert(const char *key, MobileNetV2Keys from, MobileNetV2Keys to, char *out, size_t cap);

/* Width 1.0, 1000 classes, dropout 0.2, torchvision keys, no TSM (fold_div 8 when enabled). */
MobileNetV2Config mobilenet_v2_config_default(void);

/* Declares every parameter in ps (not yet allocated); the caller allocates ps afterwards. NULL
 * with a message in err on a bad configuration (nothing declared) or a declaration failure (ps
 * may then hold part of the model: discard it). */
MobileNetV2 *mobilenet_v2_create(const MobileNetV2Config *cfg, ParamSet *ps, char *err, size_t err_cap);
void mobilenet_v2_destroy(MobileNetV2 *m); /* the model only; ps stays the caller's */

/* torchvision's initialisation (after params_allocate): convs kaiming-normal fan_out, BN 1/0,
 * classifier normal(0, 0.01) with zero bias. */
void mobilenet_v2_init(MobileNetV2 *m, uint64_t seed);

/* Folds every batch norm into its conv (see conv_bn_fold_all); eval-mode inference only after. */
bool mobilenet_v2_fold_batch_norm(Ctx *ctx, MobileNetV2 *m);

/* x: (N, 3, H, W), N a multiple of tsm_segments with TSM. Fills out (features, pooled, logits).
 * Returns ctx_ok(ctx); on failure the context holds the message and out's fields are NULL. */
bool mobilenet_v2_forward(Ctx *ctx, const MobileNetV2 *m, Tensor *x, BackboneOutput *out);

#endif
