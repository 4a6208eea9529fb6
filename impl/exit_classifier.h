/* exit_classifier.h — Uni-AdaFocus's FrameExit-style classifier with 17 exits (DESIGN §3 item 8;
 * the official PoolingClassifier).
 *
 * Owns: the two MLPs, the running max-pooling over steps and the per-step heads, and which step
 * logits are the exits.
 *   global_mlp  classifier.global_mlp.layers.0 (linear D_g → W) + layers.1 (BN1d) + ReLU, per glance frame
 *   local_mlp   classifier.local_mlp.layers.0 (linear D_l → W) + layers.1 (BN1d) + ReLU, per focus frame
 *   glance step t = 0 … G−1: z_t = max(mlp_g(g_0), …, mlp_g(g_t)) (element-wise, running);
 *                head classifier.global_classifiers.t.1 (dropout, linear W → C) on z_t
 *   focus step k = 0 … F−1:  y_k = running max of mlp_l over the focus frames in temporal order;
 *                head classifier.local_classifiers.k.1 (dropout, linear 2W → C) on concat(y_k, z_{G−1})
 * 32 step logits at the paper's sizes (G + F); the prediction is the last. The exits are the last
 * glance step and the F focus steps: exit 0 = step G−1 (glance only), exit k = step G−1+k.
 * W = 4096 in the paper (the official heads hard-code 4096 and 8192 = 2W).
 *
 * Cost per video (paper convention): G·(MLP_g + head_g) + F·(MLP_l + head_l), the MLPs counting
 * their linear layer plus W for the batch norm per frame (the official 5.246976 and 8.392704
 * MFLOPs per frame).
 */
#ifndef FOCUSBENCH_EXIT_CLASSIFIER_H
#define FOCUSBENCH_EXIT_CLASSIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/backbone_common.h"
#include "kernels/context.h"
#include "kernels/params.h"
#include "kernels/tensor.h"

typedef struct {
    int global_dim; /* D_g: 1280 */
    int local_dim;  /* D_l: 2048 */
    int width;      /* W: 4096 */
    int glance;     /* G */
    int focus;      /* F */
    int classes;    /* C */
    float dropout;  /* before every head (0.2 in the paper) */
} ExitClassifierConfig;

typedef struct {
    Linear fc;                          /* layers.0: (W, D) */
    Tensor *gamma, *beta;               /* layers.1: (W) */
    Tensor *running_mean, *running_var; /* (W) */
} ExitMlp;

typedef struct {
    ExitClassifierConfig cfg;
    ExitMlp global_mlp, local_mlp;
    Linear *global_heads; /* [G]: (C, W) */
    Linear *local_heads;  /* [F]: (C, 2W) */
} ExitClassifier;

typedef struct {
    Tensor *global_z;    /* (B, G, W): the global MLP per glance frame (before pooling) */
    Tensor *local_z;     /* (B, F, W): the local MLP per focus frame */
    Tensor *global_max;  /* (B, W): z_{G−1}, the pooled glance feature every focus head sees */
    Tensor *step_logits; /* (B, G + F, C) */
    Tensor *exit_logits; /* (B, F + 1, C): steps G−1 … G+F−1 */
    Tensor *prediction;  /* (B, C): the last step */
} ExitClassifierOutput;

/* Declares the parameters under prefix ("classifier."). False with a message in err. */
bool exit_classifier_declare(ExitClassifier *ec, const ExitClassifierConfig *cfg, ParamSet *ps, const char *prefix,
                             char *err, size_t err_cap);
void exit_classifier_destroy(ExitClassifier *ec); /* the head arrays; parameters stay in the ParamSet */
/* PyTorch's defaults (the official classifier is not re-initialised): linear U(±1/√in), BN 1/0. */
void exit_classifier_init(const ExitClassifier *ec, uint64_t seed);

/* x: (N, D) → (N, W): linear, BN1d (batch statistics when ctx->training), ReLU. */
Tensor *exit_classifier_mlp(Ctx *ctx, const ExitMlp *mlp, Tensor *x);
/* z: (N, in) → (N, C): dropout (training only) then the head's linear layer. */
Tensor *exit_classifier_head(Ctx *ctx, const ExitClassifier *ec, const Linear *head, Tensor *z);

/* global_feat: (B·G, D_g), local_feat: (B·F, D_l) (focus frames in temporal order per video).
 * Returns ctx_ok(ctx); out's fields are NULL on failure. Cost scopes "global_mlp", "local_mlp",
 * "global_heads", "local_heads" under the caller's scope. */
bool exit_classifier_forward(Ctx *ctx, const ExitClassifier *ec, Tensor *global_feat, Tensor *local_feat,
                             ExitClassifierOutput *out);

#endif
