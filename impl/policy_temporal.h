/* policy_temporal.h — Uni-AdaFocus's temporal policy (DESIGN §3 item 4; official TemporalPolicy).
 *
 * Owns: the 1-D convolutional head over the sequence of pooled glance vectors of a video
 * (B, D, G) that scores every glance frame:
 *     Tconv.0  conv (3 along time, pad 1) D → hidden, no bias   Tconv.1  BN, ReLU
 *     Tconv.3  conv (3, pad 1) hidden → hidden                  Tconv.4  BN, ReLU
 *     Tconv.6  conv (1) hidden → 1
 * giving logits l (B, G), w = softmax(l) (the Monte-Carlo loss's weights) and
 * w_T = softmax(l / τ) (the frame sampler's). The official module is written with Conv2d on a
 * (B, D, G, 1) tensor, so the checkpoint holds 4-D weights "temporal_policy.Tconv.0.weight"
 * (hidden, D, 3, 1); they are declared with that shape and viewed as 1-D kernels. The caller
 * detaches the glance vectors.
 *
 * Cost: the convolutions' MACs plus each batch norm's channels once per video (the official
 * 0.00412992 GFLOPs at D = 1280, hidden 64, G = 16).
 */
#ifndef FOCUSBENCH_POLICY_TEMPORAL_H
#define FOCUSBENCH_POLICY_TEMPORAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/policy_spatial.h"
#include "kernels/context.h"
#include "kernels/params.h"
#include "kernels/tensor.h"

typedef struct {
    int in_channels;   /* D: 1280 */
    int hidden;        /* 64 */
    int glance;        /* G */
    float temperature; /* τ of w_T; 1 in every released command */
} TemporalPolicyConfig;

typedef struct {
    TemporalPolicyConfig cfg;
    PolicyConvBn conv[2]; /* Tconv.0/1 and Tconv.3/4; weights (K, C, 3, 1) */
    Tensor *head;         /* Tconv.6.weight (1, hidden, 1, 1) */
} TemporalPolicy;

typedef struct {
    Tensor *logits;    /* (B, G) */
    Tensor *weights;   /* (B, G) softmax(logits) */
    Tensor *weights_T; /* (B, G) softmax(logits / τ); the same tensor as weights when τ = 1 */
} TemporalPolicyOutput;

/* Declares the parameters under prefix ("temporal_policy."). False with a message in err. */
bool policy_temporal_declare(TemporalPolicy *tp, const TemporalPolicyConfig *cfg, ParamSet *ps, const char *prefix,
                             char *err, size_t err_cap);
void policy_temporal_init(const TemporalPolicy *tp, uint64_t seed);

/* pooled: (B·G, D), G consecutive vectors per video. Returns ctx_ok(ctx); out's fields are NULL
 * on failure. */
bool policy_temporal_forward(Ctx *ctx, const TemporalPolicy *tp, Tensor *pooled, TemporalPolicyOutput *out);

#endif
