/* resnet.h — ResNet-18/34/50/101/152 (He et al. 2016) in torchvision's layout, with the
 * optional TSM temporal shift; the local network of Uni-AdaFocus.
 *
 * Owns: the model's layer layout and torchvision checkpoint keys (conv1.weight, bn1.*,
 * layer1.0.conv1.weight, layer2.0.downsample.0.weight, layer2.0.downsample.1.*, fc.weight, …),
 * its forward pass (feature map, pooled vector, optional fc logits), torchvision's
 * initialisation, batch-norm folding for inference, and the TSM shift.
 *
 * Layout: conv 7×7 s2 (3 → w) + BN + ReLU + max pool 3×3 s2 p1 (the "stem"), then four stages
 * of blocks of widths w, 2w, 4w, 8w (w = base_width, 64 in torchvision), the first block of
 * stages 2–4 with stride 2, then the mean over space and the fc layer.
 *   basic block (18, 34):       3×3 conv(stride) + BN + ReLU, 3×3 conv + BN; expansion 1
 *   bottleneck (50, 101, 152):  1×1 + BN + ReLU, 3×3 (stride) + BN + ReLU, 1×1 to 4× + BN;
 *                               the stride sits on the 3×3 conv (torchvision's "v1.5")
 * The residual is added, then ReLU; a block whose stride or width changes projects its input
 * with downsample = 1×1 conv (stride) + BN. base_width scales every width (a CPU-sized model);
 * it is not torchvision's width_per_group, which widens only the bottleneck's inner convs.
 *
 * TSM (tsm_segments = T > 0): the input is (N·T, 3, H, W), T consecutive frames per clip, and the
 * residual branch of a block shifts its input along time before conv1 (1/fold_div of the
 * channels from the next frame, 1/fold_div from the previous one; the identity path is not
 * shifted) — the official TSM code's "blockres" placement. As there, when stage 3 has 23 or more
 * blocks (ResNet-101/152) only every second block of each stage shifts (n_round = 2). The shift
 * costs 0 MACs. (The official TSM checkpoints name a shifted conv "layer1.0.conv1.net.weight":
 * tsm_net_keys declares those names; otherwise strip the ".net" when converting.)
 *
 * Cost scopes: "stem", "layer1" … "layer4", "pool", "fc".
 */
#ifndef FOCUSBENCH_RESNET_H
#define FOCUSBENCH_RESNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/backbone_common.h"
#include "kernels/context.h"
#include "kernels/params.h"

typedef struct {
    int depth;        /* 18, 34, 50, 101 or 152 */
    int base_width;   /* stem and first-stage width; 64 in torchvision */
    int num_classes;  /* 0: no fc (features and pooled vector only) */
    int tsm_segments; /* 0: no temporal shift; T frames per clip otherwise */
    int tsm_fold_div; /* 8 in TSM */
    bool tsm_net_keys; /* name a shifted conv1 "layerS.B.conv1.net.weight", as the official TSM code's
                        * TemporalShift wrapper does (false: "…conv1.weight") */
    const char *prefix; /* before every key, e.g. "local_CNN."; NULL or "" for none */
} ResNetConfig;

typedef struct {
    ConvBn conv1, conv2, conv3; /* convN with bnN; conv3 absent (weight NULL) in a basic block */
    ConvBn downsample;          /* absent (weight NULL) when the identity is added */
    bool shift;                 /* TSM shift of the branch input */
} ResNetBlock;

typedef struct {
    ResNetConfig cfg;
    char prefix[64];       /* cfg.prefix copied (cfg.prefix points here) */
    ParamSet *ps;          /* the caller's */
    bool bottleneck;
    int stage_blocks[4];   /* blocks per stage: (2,2,2,2), (3,4,6,3), (3,4,23,3), (3,8,36,3) */
    int feature_dim;       /* 8·base_width·expansion: 512 (18/34) or 2048 (50+) at width 64 */
    ConvBn stem;           /* conv1 + bn1 */
    ResNetBlock *blocks;   /* all blocks, stage by stage */
    int n_blocks;
    Linear fc;             /* feature_dim → num_classes; weight NULL without fc */
    ConvBn **layers;       /* every ConvBn, for folding */
    int n_layers;
    ParamSet *fold_ps;     /* the folded biases once resnet_fold_batch_norm ran */
} ResNet;

/* depth 50, base width 64, 1000 classes, no TSM (fold_div 8 when enabled). */
ResNetConfig resnet_config_default(void);

/* Declares every parameter in ps (not yet allocated); the caller allocates ps afterwards. NULL
 * with a message in err on a bad configuration (nothing declared) or a declaration failure (ps
 * may then hold part of the model: discard it). */
ResNet *resnet_create(const ResNetConfig *cfg, ParamSet *ps, char *err, size_t err_cap);
void resnet_destroy(ResNet *r); /* the model only; ps stays the caller's */

/* torchvision's initialisation (after params_allocate): convs kaiming-normal fan_out, BN 1/0,
 * fc PyTorch's nn.Linear default U(±1/√in). */
void resnet_init(ResNet *r, uint64_t seed);

/* Folds every batch norm into its conv (see conv_bn_fold_all); eval-mode inference only after. */
bool resnet_fold_batch_norm(Ctx *ctx, ResNet *r);

/* x: (N, 3, H, W), N a multiple of tsm_segments with TSM. Fills out (features, pooled, logits).
 * Returns ctx_ok(ctx); on failure the context holds the message and out's fields are NULL. */
bool resnet_forward(Ctx *ctx, const ResNet *r, Tensor *x, BackboneOutput *out);

#endif
