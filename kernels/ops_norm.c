/* ops_norm.c — batch normalisation (train and eval, BN1d/2d/3d) and its folding into the
 * preceding conv/linear layer for inference (op layer).
 *
 * Cost (FLOP_CONVENTION, DESIGN §4): a batch norm counts N·C MACs — one per channel per sample
 * (the leading dim), not per element — because that is how the paper's published GFLOPs
 * constants count BN ("+1 per batch-norm channel"): the classifier's global MLP is 5.246976
 * MFLOPs per frame = 1280·4096 + 4096, and the spatial policy on one video's (1280, 16, 7, 7)
 * volume adds 3·128 for its three BNs. Per sample, not per call, so a batch of B clips costs
 * exactly B times one clip, as convs do. Counting N·C·S would break the exact match.
 *
 * Synchronised batch norm (torch.nn.SyncBatchNorm): with a hook on the context (Ctx.bn_sync, a
 * sum over the ranks of a data-parallel run) a training-mode batch norm normalises every rank's
 * part of the batch with the statistics of the WHOLE global batch, so an N-rank run equals a
 * one-rank run of the same global batch up to float rounding:
 *
 *   forward   each rank sends, per channel, m_r (its count), S_r = Σx, Q_r = Σ(x − S_r/m_r)² (two
 *             passes in double) and P_r = S_r²/m_r, in ONE sum over the ranks (3C + 1 doubles);
 *             then M = Σm_r, S = ΣS_r, mean = S/M and the exact pooled sum of squares
 *             Σ(x − mean)² = ΣQ_r + (ΣP_r − S²/M) (Chan et al.'s parallel variance: the second term
 *             is the spread of the ranks' means; it is the only cancellation, between double sums
 *             of the ranks' means, not of single values). var = that/M (biased), and the rank's
 *             values are normalised, the statistics saved and the running statistics updated
 *             (unbiased with M: var·M/(M − 1)) by batch_norm_forward_stats with the CPU's
 *             arithmetic. One rank: ΣP_r − S²/M is exactly 0 and the result is bit-identical to
 *             the unsynchronised op. M > 1 is required over all ranks (a rank alone may hold
 *             one value or none).
 *   backward  each rank's Σdy and Σdy·x̂ (x̂ with the saved global statistics) are summed over the
 *             ranks in one call (2C doubles), and dx = γ·invstd/M·(M·dy − Σdy − x̂·Σdy·x̂) with the
 *             global sums and M; dγ and dβ get this rank's own sums (the trainers' gradient
 *             all-reduce adds the ranks' up, kernels/dist/dist_grads.h).
 *
 * Scaling of dy. Rank r's loss is the mean over its own b_r clips, and the gradient all-reduce
 * weighs rank r by w_r = b_r/B (B = Σb): the global loss is L = Σ w_r·L_r. Every adjoint a rank
 * computes is therefore 1/w_r times the adjoint of L; at a synchronised batch norm the true
 * global sums are Σ_s w_s·Σdy_s (and alike for Σdy·x̂), so rank r must use (Σ_s w_s·Σdy_s)/w_r.
 * The op takes w_s ∝ m_s, the layer's local count: every layer of the models here sees a fixed
 * number of values per clip, so m_s/m_r = b_s/b_r. Each rank therefore sends m_r·(its sums) and
 * divides the total by m_r. For equal shards this is exactly torch's SyncBatchNorm + DDP (plain
 * sums: dy unscaled in the global sums, then the gradients averaged); with unequal shards (a
 * global batch that the world does not divide) it still gives the gradient of the mean loss
 * over the global batch, which plain sums would not. A layer whose count is not proportional to
 * the rank's clips would get torch's unweighted behaviour only for equal shards.
 *
 * Collectives: every rank runs the same model code, so every rank calls the hook in the same
 * order with the same n. The meta backend (no data) never calls it. A rank that fails before a
 * call (an error on that rank alone) leaves the others waiting in it, as with any collective.
 */
#include <math.h>
#include <stdlib.h>

#include "backend.h"
#include "op_util.h"
#include "ops.h"

typedef struct {
    NormGeom g;
    bool batch_stats; /* train mode: backward goes through the batch statistics */
    bool synced;      /* the statistics are the global batch's (Ctx.bn_sync; see the file comment) */
    double count;     /* synced: values per channel of the global batch (M) */
    bool fused;       /* an epilogue (op_batch_norm_act) is fused: in[3] is the residual or NULL */
    int act;          /* its OpAct */
} BatchNormArgs;

/* Sums buf (n doubles) over the ranks through the context's hook; false with the error set. */
static bool bn_allreduce(Ctx *ctx, double *buf, size_t n, const char *what)
{
    char err[CTX_ERROR_LEN / 2];
    err[0] = '\0';
    if (ctx->bn_sync(ctx->bn_sync_user, buf, n, err, sizeof err))
        return true;
    ctx_set_error(ctx, "batch_norm: summing the %s over the ranks (%zu doubles) failed: %s", what, n,
                  err[0] ? err : "(no message)");
    return false;
}

/* `n` doubles of the scratch arena (host memory on every backend but meta); NULL with the error set. */
static double *bn_host_scratch(Ctx *ctx, size_t n)
{
    double *p = arena_alloc(&ctx->scratch, n * sizeof(double));
    if (!p)
        ctx_set_error(ctx, "batch_norm: scratch arena frozen and full (%zu doubles needed for the synchronised "
                           "statistics)", n);
    return p;
}

/* The synchronised backward: this rank's sums (dγ, dβ get them), then, when dx is wanted, the
 * global sums through the hook, weighted by the ranks' counts (the file comment says why), and dx. */
static void batch_norm_backward_synced(Ctx *ctx, const BatchNormArgs *a, const TapeEntry *e, Tensor *dx,
                                       Tensor *dgamma, Tensor *dbeta)
{
    const int64_t C = a->g.C;
    double *sums = bn_host_scratch(ctx, 2 * (size_t)C); /* (2, C): Σdy, Σdy·x̂ */
    if (!sums)
        return;
    OP_KERNEL(ctx, batch_norm_backward_reduce, &a->g, e->in[0], e->saved[0], e->saved[1], e->out->grad, sums, dgamma,
              dbeta);
    /* dx is wanted on every rank or on none (same model code): the hook is called on all or none */
    if (dx && ctx_ok(ctx)) {
        const double m = (double)(a->g.N * a->g.S); /* this rank's weight */
        for (int64_t i = 0; i < 2 * C; i++)
            sums[i] *= m;
        if (bn_allreduce(ctx, sums, 2 * (size_t)C, "batch-norm gradient sums") && m > 0) {
            for (int64_t i = 0; i < 2 * C; i++)
                sums[i] /= m;
            OP_KERNEL(ctx, batch_norm_backward_dx, &a->g, e->in[0], e->in[1], e->saved[0], e->saved[1], e->out->grad,
                      sums, a->count, dx);
        }
    }
    arena_reset(&ctx->scratch); /* per-op workspace: give it back */
}

static void batch_norm_backward(Ctx *ctx, const TapeEntry *e)
{
    const BatchNormArgs *a = e->args;
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    Tensor *dgamma = op_grad_for(ctx, e->in[1]);
    Tensor *dbeta = op_grad_for(ctx, e->in[2]);
    Tensor *dresidual = a->fused ? op_grad_for(ctx, e->in[3]) : NULL;
    NormEpilogue ep = {.residual = NULL, .act = a->act}; /* backward reads only act (and y) */
    if (a->synced && (dx || dgamma || dbeta)) /* never fused (op_batch_norm_act) */
        batch_norm_backward_synced(ctx, a, e, dx, dgamma, dbeta);
    else if (dx || dgamma || dbeta || dresidual)
        OP_KERNEL(ctx, batch_norm_backward, &a->g, a->batch_stats, e->in[0], e->in[1], e->saved[0], e->saved[1],
                  a->fused ? &ep : NULL, e->out, e->out->grad, dx, dgamma, dbeta, dresidual);
}

/* The synchronised forward (see the file comment): the global count, mean and biased variance
 * from every rank's figures, then the normalisation with them. *count gets M. */
static bool batch_norm_forward_synced(Ctx *ctx, const NormGeom *g, Tensor *x, Tensor *gamma, Tensor *beta,
                                      Tensor *running_mean, Tensor *running_var, Tensor *y, Tensor *mean,
                                      Tensor *invstd, double *count)
{
    const int64_t C = g->C;
    const double m = (double)(g->N * g->S);
    /* (3C + 1): S_r (C), Q_r (C), P_r (C), m_r; then the global mean (C) and variance (C) */
    double *buf = bn_host_scratch(ctx, 5 * (size_t)C + 1);
    if (!buf)
        return false;
    double *S = buf, *Q = buf + C, *P = buf + 2 * C, *gmean = buf + 3 * C + 1, *gvar = gmean + C;
    OP_KERNEL(ctx, batch_norm_stats, g, x, buf); /* fills S and Q */
    bool ok = ctx_ok(ctx);
    if (ok) {
        for (int64_t c = 0; c < C; c++)
            P[c] = m > 0 ? S[c] * S[c] / m : 0.0;
        buf[3 * C] = m;
        ok = bn_allreduce(ctx, buf, 3 * (size_t)C + 1, "batch-norm statistics");
    }
    const double M = ok ? buf[3 * C] : 0.0;
    if (ok && !(M > 1)) {
        char sx[96];
        ctx_set_error(ctx, "batch_norm: expected more than 1 value per channel over all ranks when training, got %g "
                           "(this rank's input %s)", M, tensor_shape_str(x, sx, sizeof sx));
        ok = false;
    }
    if (ok) {
        for (int64_t c = 0; c < C; c++) {
            /* the ranks' means spread: ΣP − S²/M ≥ 0 (exactly 0 on one rank); rounding may dip below */
            double between = P[c] - S[c] * S[c] / M;
            gmean[c] = S[c] / M;
            gvar[c] = (Q[c] + (between > 0 ? between : 0.0)) / M;
        }
        OP_KERNEL(ctx, batch_norm_forward_stats, g, x, gamma, beta, gmean, gvar, M, running_mean, running_var, y,
                  mean, invstd);
        ok = ctx_ok(ctx);
    }
    arena_reset(&ctx->scratch); /* per-op workspace: give it back */
    *count = M;
    return ok;
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

/* The batch norm op, with `ep` (training, not synchronised: op_batch_norm_act) its fused
 * epilogue, whose residual (or NULL) the caller checked. */
static Tensor *batch_norm_op(Ctx *ctx, const char *op, Tensor *x, Tensor *gamma, Tensor *beta, Tensor *running_mean,
                             Tensor *running_var, float momentum, float eps, const NormEpilogue *ep, Tensor *residual)
{
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
    /* the meta backend has no data to synchronise: it runs (counts) the plain op */
    bool synced = batch_stats && ctx->bn_sync && ctx->ops;
    /* synchronised, the count that matters is the global one, checked after the sum over ranks */
    if (batch_stats && !synced && g.N * g.S <= 1) {
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
        ctx_count(ctx, macs,
                  OP_BYTES(x, gamma, beta, running_mean, running_var, y, running_mean, running_var, residual));
    else
        ctx_count(ctx, macs, OP_BYTES(x, gamma, beta, running_mean, running_var, y));

    bool records = OP_RECORDS(ctx, x, gamma, beta) || (residual && OP_RECORDS(ctx, residual));
    Tensor *mean = NULL, *invstd = NULL; /* (C) each: the statistics backward needs */
    if (batch_stats || records) {
        int64_t dims[1] = {C};
        mean = tensor_new(ctx, DTYPE_F32, 1, dims);
        invstd = tensor_new(ctx, DTYPE_F32, 1, dims);
        if (!mean || !invstd)
            return NULL;
    }
    double count = (double)(g.N * g.S);
    if (synced) {
        if (!batch_norm_forward_synced(ctx, &g, x, gamma, beta, running_mean, running_var, y, mean, invstd, &count))
            return NULL;
    } else if (batch_stats) {
        OP_KERNEL(ctx, batch_norm_forward_train, &g, x, gamma, beta, running_mean, running_var, ep, y, mean, invstd);
    } else {
        OP_KERNEL(ctx, batch_norm_forward_eval, &g, x, gamma, beta, running_mean, running_var, y);
        if (records && !snapshot_running_stats(ctx, running_mean, running_var, eps, mean, invstd))
            return NULL;
    }
    if (!ctx_ok(ctx))
        return NULL;
    if (records) {
        BatchNormArgs args = {g, batch_stats, synced, count, ep != NULL, ep ? ep->act : 0};
        TapeEntry *e = tape_record(ctx, op, batch_norm_backward, y, &args, sizeof args);
        if (e) {
            e->in[0] = x, e->in[1] = gamma, e->in[2] = beta, e->in[3] = residual;
            e->saved[0] = mean, e->saved[1] = invstd;
        }
    }
    return y;
}

Tensor *op_batch_norm(Ctx *ctx, Tensor *x, Tensor *gamma, Tensor *beta, Tensor *running_mean,
                      Tensor *running_var, float momentum, float eps)
{
    return batch_norm_op(ctx, "batch_norm", x, gamma, beta, running_mean, running_var, momentum, eps, NULL, NULL);
}

/* residual: f32 with x's shape; else false with the error set. */
static bool residual_fits(Ctx *ctx, const char *op, const Tensor *residual, const Tensor *x)
{
    if (!op_check_f32(ctx, op, "residual", residual))
        return false;
    bool same = residual->ndim == x->ndim;
    for (int i = 0; same && i < x->ndim; i++)
        same = residual->shape[i] == x->shape[i];
    if (!same) {
        char sr[96], sx[96];
        ctx_set_error(ctx, "%s: residual %s must have x's shape %s", op, tensor_shape_str(residual, sr, sizeof sr),
                      tensor_shape_str(x, sx, sizeof sx));
        return false;
    }
    return true;
}

Tensor *op_batch_norm_act(Ctx *ctx, Tensor *x, Tensor *gamma, Tensor *beta, Tensor *running_mean,
                          Tensor *running_var, float momentum, float eps, Tensor *residual, OpAct act)
{
    const char *op = "batch_norm_act";
    if (!ctx_ok(ctx))
        return NULL;
    if (act != OP_ACT_NONE && act != OP_ACT_RELU && act != OP_ACT_RELU6) {
        ctx_set_error(ctx, "%s: act = %d is not an OpAct (none, ReLU, ReLU6)", op, (int)act);
        return NULL;
    }
    if (residual && x && (!OP_INPUTS_OK(ctx, op, residual) || !residual_fits(ctx, op, residual, x)))
        return NULL;
    /* Fused in training on one rank; elsewhere (eval, the synchronised statistics, nothing to
     * fuse) the separate ops, which give the same values. */
    bool fuse = ctx->training && !(ctx->bn_sync && ctx->ops) && (residual || act != OP_ACT_NONE);
    if (fuse) {
        NormEpilogue ep = {.residual = residual, .act = (int)act};
        return batch_norm_op(ctx, op, x, gamma, beta, running_mean, running_var, momentum, eps, &ep, residual);
    }
    Tensor *y = op_batch_norm(ctx, x, gamma, beta, running_mean, running_var, momentum, eps);
    if (residual)
        y = op_add(ctx, y, residual);
    return act == OP_ACT_RELU ? op_relu(ctx, y) : act == OP_ACT_RELU6 ? op_relu6(ctx, y) : y;
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
