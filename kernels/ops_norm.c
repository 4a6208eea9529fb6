/* ops_norm.c — batch normalisation (train and eval, BN1d/2d/3d) and its folding into the
 * preceding conv/linear layer for inference (op layer).
 *
 * Cost (FLOP_CONVENTION, DESIGN §4): a batch norm counts N·C MACs — one per channel per sample
 * (the leading dim), not per element — because that is how the paper's published GFLOPs
 * constants count BN ("+1 per batch-norm channel"): the classifier's global MLP is 5.246976
 * MFLOPs per frame = 1280·4096 + 4096, and the spatial policy on one video's (1280, 16, 7, 7)
 * volume adds 3·128 for its three BNs. Per sample, not per call, so a batch of B clips costs
 * exactly B times one clip, as convs do. Counting N·C·S would break the exact match.
 */
#include <math.h>
#include <stdlib.h>

#include "backend.h"
#include "op_util.h"
#include "ops.h"

typedef struct {
    NormGeom g;
    bool batch_stats; /* train mode: backward goes through the batch statistics */
} BatchNormArgs;

static void batch_norm_backward(Ctx *ctx, const TapeEntry *e)
{
    const BatchNormArgs *a = e->args;
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    Tensor *dgamma = op_grad_for(ctx, e->in[1]);
    Tensor *dbeta = op_grad_for(ctx, e->in[2]);
    if (dx || dgamma || dbeta)
        OP_KERNEL(ctx, batch_norm_backward, &a->g, a->batch_stats, e->in[0], e->in[1], e->saved[0], e->saved[1],
                  e->out->grad, dx, dgamma, dbeta);
}

/* Checks that a per-channel tensor is f32 of shape (C). */
static bool check_channel_vector(Ctx *ctx, const char *op, const char *what, const Tensor *t, int64_t C,
                                 const Tensor *x)
{
    if (!op_check_f32(ctx, op, what, t))
        return false;
    if (t->ndim == 1 && t->shape[0] == C)
        return true;
    char st[96], sx[96];
    ctx_set_error(ctx, "%s: %s must have shape (C) = (%lld) for x %s, got %s", op, what, (long long)C,
                  tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(t, st, sizeof st));
    return false;
}

/* Eval mode with the tape on: the backward pass needs the statistics the forward pass used, so
 * they are copied now (mean) and turned into invstd = 1/√(var + ε) now. This runs on the host
 * (C values); a device backend goes through its copy slots. */
static bool snapshot_running_stats(Ctx *ctx, const Tensor *running_mean, const Tensor *running_var, float eps,
                                   Tensor *mean, Tensor *invstd)
{
    if (!ctx->ops)
        return true; /* meta: no data, and no backward kernel will run */
    int64_t C = running_mean->shape[0];
    if (op_host_visible(running_mean) && op_host_visible(running_var) && op_host_visible(mean)) {
        for (int64_t c = 0; c < C; c++) {
            tensor_f32(mean)[c] = tensor_f32(running_mean)[c];
            tensor_f32(invstd)[c] = (float)(1.0 / sqrt((double)tensor_f32(running_var)[c] + (double)eps));
        }
        return true;
    }
    if (!ctx->ops->copy_to_host || !ctx->ops->copy_from_host) {
        ctx_set_error(ctx, "batch_norm: the %s backend cannot copy the running statistics to the host "
                           "(copy_to_host/copy_from_host missing) for the eval-mode backward",
                      ctx->ops->name);
        return false;
    }
    float *buf = arena_alloc(&ctx->scratch, 2 * (size_t)C * sizeof(float)); /* (2, C) */
    if (!buf) {
        ctx_set_error(ctx, "batch_norm: scratch arena frozen and full (%lld floats needed)", (long long)(2 * C));
        return false;
    }
    ctx->ops->copy_to_host(ctx, buf, running_mean);
    ctx->ops->copy_to_host(ctx, buf + C, running_var);
    for (int64_t c = 0; c < C; c++)
        buf[C + c] = (float)(1.0 / sqrt((double)buf[C + c] + (double)eps));
    ctx->ops->copy_from_host(ctx, mean, buf);
    ctx->ops->copy_from_host(ctx, invstd, buf + C);
    arena_reset(&ctx->scratch); /* per-op workspace: give it back */
    return true;
}

Tensor *op_batch_norm(Ctx *ctx, Tensor *x, Tensor *gamma, Tensor *beta, Tensor *running_mean,
                      Tensor *running_var, float momentum, float eps)
{
    const char *op = "batch_norm";
    if (!OP_INPUTS_OK(ctx, op, x, gamma, beta, running_mean, running_var) || !op_check_f32(ctx, op, "x", x) ||
        !op_check_ndim(ctx, op, "x", x, 2, 5))
        return NULL;
    int64_t C = x->shape[1];
    if (!check_channel_vector(ctx, op, "gamma", gamma, C, x) || !check_channel_vector(ctx, op, "beta", beta, C, x) ||
        !check_channel_vector(ctx, op, "running_mean", running_mean, C, x) ||
        !check_channel_vector(ctx, op, "running_var", running_var, C, x))
        return NULL;
    if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f)) {
        ctx_set_error(ctx, "batch_norm: eps = %g must be > 0 and momentum = %g in [0, 1]", eps, momentum);
        return NULL;
    }
    NormGeom g = {.N = x->shape[0], .C = C, .S = tensor_span(x, 2, x->ndim), .eps = eps, .momentum = momentum};
    bool batch_stats = ctx->training;
    if (batch_stats && g.N * g.S <= 1) {
        char sx[96];
        ctx_set_error(ctx, "batch_norm: expected more than 1 value per channel when training, got input size %s",
                      tensor_shape_str(x, sx, sizeof sx));
        return NULL;
    }

    Tensor *y = tensor_new_like(ctx, x);
    if (!y)
        return NULL;
    /* N·C MACs: the paper's "+1 per BN channel", per sample (see the file comment). */
    double macs = (double)g.N * (double)C;
    if (batch_stats) /* the running statistics are read and written */
        ctx_count(ctx, macs, OP_BYTES(x, gamma, beta, running_mean, running_var, y, running_mean, running_var));
    else
        ctx_count(ctx, macs, OP_BYTES(x, gamma, beta, running_mean, running_var, y));

    bool records = OP_RECORDS(ctx, x, gamma, beta);
    Tensor *mean = NULL, *invstd = NULL; /* (C) each: the statistics backward needs */
    if (batch_stats || records) {
        int64_t dims[1] = {C};
        mean = tensor_new(ctx, DTYPE_F32, 1, dims);
        invstd = tensor_new(ctx, DTYPE_F32, 1, dims);
        if (!mean || !invstd)
            return NULL;
    }
    if (batch_stats) {
        OP_KERNEL(ctx, batch_norm_forward_train, &g, x, gamma, beta, running_mean, running_var, y, mean, invstd);
    } else {
        OP_KERNEL(ctx, batch_norm_forward_eval, &g, x, gamma, beta, running_mean, running_var, y);
        if (records && !snapshot_running_stats(ctx, running_mean, running_var, eps, mean, invstd))
            return NULL;
    }
    if (!ctx_ok(ctx))
        return NULL;
    if (records) {
        BatchNormArgs args = {g, batch_stats};
        TapeEntry *e = tape_record(ctx, op, batch_norm_backward, y, &args, sizeof args);
        if (e) {
            e->in[0] = x, e->in[1] = gamma, e->in[2] = beta;
            e->saved[0] = mean, e->saved[1] = invstd;
        }
    }
    return y;
}

bool op_fold_batch_norm(Ctx *ctx, Tensor *weight, Tensor *bias, const Tensor *gamma, const Tensor *beta,
                        const Tensor *running_mean, const Tensor *running_var, float eps)
{
    const char *op = "fold_batch_norm";
    if (!ctx_ok(ctx))
        return false;
    const Tensor *all[6] = {weight, bias, gamma, beta, running_mean, running_var};
    static const char *names[6] = {"weight", "bias", "gamma", "beta", "running_mean", "running_var"};
    for (int i = 0; i < 6; i++) {
        if (!all[i]) {
            ctx_set_error(ctx, "%s: %s is NULL (a layer without bias needs a zero-initialised one to fold into)",
                          op, names[i]);
            return false;
        }
        if (!op_check_f32(ctx, op, names[i], all[i]))
            return false;
        if (!op_host_visible(all[i])) {
            ctx_set_error(ctx, "%s: %s is not in host memory (%s backend%s); fold before uploading the weights", op,
                          names[i], backend_name(all[i]->backend), all[i]->data ? "" : ", no data");
            return false;
        }
    }
    if (weight->ndim < 1) {
        ctx_set_error(ctx, "%s: weight must have at least 1 dim (K, ...), got a scalar", op);
        return false;
    }
    int64_t K = weight->shape[0];
    for (int i = 1; i < 6; i++) {
        if (all[i]->ndim != 1 || all[i]->shape[0] != K) {
            char sw[96], st[96];
            ctx_set_error(ctx, "%s: %s must have shape (K) = (%lld) to match weight %s, got %s", op, names[i],
                          (long long)K, tensor_shape_str(weight, sw, sizeof sw),
                          tensor_shape_str(all[i], st, sizeof st));
            return false;
        }
    }
    if (!(eps > 0.0f)) {
        ctx_set_error(ctx, "%s: eps = %g must be > 0", op, eps);
        return false;
    }
    float *w = tensor_f32(weight);  /* (K, R): R = everything after the output channel */
    float *b = tensor_f32(bias);    /* (K) */
    const float *pg = tensor_f32(gamma), *pb = tensor_f32(beta);             /* (K) each */
    const float *prm = tensor_f32(running_mean), *prv = tensor_f32(running_var); /* (K) each */
    int64_t R = tensor_span(weight, 1, weight->ndim);
    for (int64_t k = 0; k < K; k++) {
        /* Same grouping as torch.nn.utils.fuse_conv_bn_weights: w·(γ·rsqrt(var+ε)). */
        double scale = (double)pg[k] / sqrt((double)prv[k] + (double)eps);
        for (int64_t r = 0; r < R; r++)
            w[k * R + r] = (float)(w[k * R + r] * scale);
        b[k] = (float)(((double)b[k] - prm[k]) * scale + pb[k]);
    }
    return true;
}
