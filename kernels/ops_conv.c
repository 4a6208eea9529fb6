/* ops_conv.c — conv1d, conv2d and conv3d (op layer).
 *
 * All three resolve to the 3-D ConvGeom of backend.h, so one kernel pair serves every rank:
 *   conv3d (N, C, T, H, W): the geometry as given;
 *   conv2d (N, C, H, W):    T = kt = To = 1 (stride 1, pad 0 along t);
 *   conv1d (N, C, L):       T = H = 1, W = L: the sequence is the innermost, contiguous dim, as
 *                           the width is for images, so the kernels' vectorised width loops and
 *                           the depthwise flat grid apply to sequences unchanged.
 * The tensors are passed as they are: (N, C, L) and (N, C, 1, 1, L) have the same memory layout.
 * Dilation is 1 (the geometry and the CPU kernels support more; the ops do not expose it).
 * MACs = N·K·To·Ho·Wo·(C/groups)·kt·kh·kw (bias not counted, DESIGN §4).
 */
#include <limits.h>

#include "backend.h"
#include "op_util.h"
#include "ops.h"

static void conv_backward(Ctx *ctx, const TapeEntry *e)
{
    const ConvGeom *g = e->args;
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    Tensor *dw = op_grad_for(ctx, e->in[1]);
    Tensor *db = op_grad_for(ctx, e->in[2]);
    if (dx || dw || db)
        OP_KERNEL(ctx, conv_backward, g, e->in[0], e->in[1], e->out->grad, dx, dw, db);
}

/* Output extent along one dim, or a message and -1 when the kernel does not fit. */
static int64_t out_extent(Ctx *ctx, const char *op, const char *dim, int64_t in, int64_t k, int stride, int pad,
                          const char *xs, const char *ws)
{
    int64_t span = in + 2 * (int64_t)pad - k; /* dilation 1 */
    if (span < 0) {
        ctx_set_error(ctx, "%s: kernel %s extent %lld is larger than the padded input (%lld + 2·%d) for x %s, w %s",
                      op, dim, (long long)k, (long long)in, pad, xs, ws);
        return -1;
    }
    int64_t out = span / stride + 1;
    if (out > INT_MAX) {
        ctx_set_error(ctx, "%s: output %s extent %lld is beyond %d (x %s, w %s, pad %d)", op, dim, (long long)out,
                      INT_MAX, xs, ws, pad);
        return -1;
    }
    return out;
}

/* Checks x: (N, C, sp...) with `nsp` spatial dims, w: (K, C/groups, k...), b, stride/pad in
 * spatial order; fills the geometry and the output dims. False with the context's error. */
static bool conv_resolve(Ctx *ctx, const char *op, int nsp, Tensor *x, Tensor *w, Tensor *b, const int *stride,
                         const int *pad, int groups, ConvGeom *gout, int64_t dims[5], double *macs_out)
{
    if (!OP_INPUTS_OK(ctx, op, x, w) || !op_check_f32(ctx, op, "x", x) || !op_check_f32(ctx, op, "w", w) ||
        (b && !op_check_f32(ctx, op, "b", b)) || !op_check_ndim(ctx, op, "x", x, nsp + 2, nsp + 2) ||
        !op_check_ndim(ctx, op, "w", w, nsp + 2, nsp + 2))
        return false;
    char xs[96], ws[96], bs[96];
    tensor_shape_str(x, xs, sizeof xs);
    tensor_shape_str(w, ws, sizeof ws);
    for (int d = 0; d < x->ndim; d++)
        if (x->shape[d] > INT_MAX || w->shape[d] > INT_MAX) {
            ctx_set_error(ctx, "%s: x %s or w %s has a dim beyond %d", op, xs, ws, INT_MAX);
            return false;
        }
    int64_t N = x->shape[0], C = x->shape[1], K = w->shape[0];
    for (int d = 0; d < x->ndim; d++) /* an empty batch (N = 0) is fine: it gives an empty output */
        if ((d > 0 && x->shape[d] < 1) || w->shape[d] < 1) {
            ctx_set_error(ctx, "%s: x %s and w %s must not have empty channel, kernel or spatial dims", op, xs, ws);
            return false;
        }
    if (groups < 1) {
        ctx_set_error(ctx, "%s: groups = %d must be >= 1", op, groups);
        return false;
    }
    if (C % groups != 0 || K % groups != 0) {
        ctx_set_error(ctx,
                      "%s: groups = %d must divide the input channels C = %lld and the output channels K = %lld "
                      "(x %s, w %s)",
                      op, groups, (long long)C, (long long)K, xs, ws);
        return false;
    }
    if (w->shape[1] != C / groups) {
        ctx_set_error(ctx, "%s: channel mismatch: w %s has %lld input channels per group, x %s has C/groups = %lld/%d = %lld",
                      op, ws, (long long)w->shape[1], xs, (long long)C, groups, (long long)(C / groups));
        return false;
    }
    if (b && (b->ndim != 1 || b->shape[0] != K)) {
        ctx_set_error(ctx, "%s: b %s must be (%lld), one bias per output channel of w %s", op,
                      tensor_shape_str(b, bs, sizeof bs), (long long)K, ws);
        return false;
    }
    static const char *const dim_names[3][3] = {{"L"}, {"H", "W"}, {"T", "H", "W"}};
    int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, out[3] = {1, 1, 1};
    int st[3] = {1, 1, 1}, pd[3] = {0, 0, 0};
    for (int s = 0; s < nsp; s++) {
        int d = 3 - nsp + s; /* conv1d fills W only; conv2d H and W */
        if (stride[s] < 1 || pad[s] < 0) {
            ctx_set_error(ctx, "%s: stride %d must be >= 1 and pad %d >= 0 along %s (x %s, w %s)", op, stride[s],
                          pad[s], dim_names[nsp - 1][s], xs, ws);
            return false;
        }
        in[d] = x->shape[2 + s], k[d] = w->shape[2 + s], st[d] = stride[s], pd[d] = pad[s];
        out[d] = out_extent(ctx, op, dim_names[nsp - 1][s], in[d], k[d], st[d], pd[d], xs, ws);
        if (out[d] < 0)
            return false;
    }
    ConvGeom g = {.N = (int)N, .C = (int)C, .K = (int)K,
                  .T = (int)in[0], .H = (int)in[1], .W = (int)in[2],
                  .kt = (int)k[0], .kh = (int)k[1], .kw = (int)k[2],
                  .To = (int)out[0], .Ho = (int)out[1], .Wo = (int)out[2],
                  .st = st[0], .sh = st[1], .sw = st[2],
                  .pt = pd[0], .ph = pd[1], .pw = pd[2],
                  .dt = 1, .dh = 1, .dw = 1, .groups = groups};
    dims[0] = N, dims[1] = K;
    for (int s = 0; s < nsp; s++)
        dims[2 + s] = out[3 - nsp + s];
    *gout = g;
    *macs_out = (double)N * K * out[0] * out[1] * out[2] * (double)(C / groups) * k[0] * k[1] * k[2];
    return true;
}

/* x: (N, C, sp...) with `nsp` spatial dims, w: (K, C/groups, k...), stride/pad in spatial order. */
static Tensor *conv_nd(Ctx *ctx, const char *op, int nsp, Tensor *x, Tensor *w, Tensor *b, const int *stride,
                       const int *pad, int groups)
{
    ConvGeom g;
    int64_t dims[5];
    double macs;
    if (!conv_resolve(ctx, op, nsp, x, w, b, stride, pad, groups, &g, dims, &macs))
        return NULL;
    Tensor *y = tensor_new(ctx, DTYPE_F32, nsp + 2, dims);
    if (!y)
        return NULL;
    ctx_count(ctx, macs, OP_BYTES(x, w, b, y));
    OP_KERNEL(ctx, conv_forward, &g, x, w, b, y);
    if (OP_RECORDS(ctx, x, w, b)) {
        TapeEntry *e = tape_record(ctx, op, conv_backward, y, &g, sizeof g);
        if (e)
            e->in[0] = x, e->in[1] = w, e->in[2] = b;
    }
    return y;
}

Tensor *op_conv1d(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b, int stride, int pad, int groups)
{
    return conv_nd(ctx, "conv1d", 1, x, w, b, &stride, &pad, groups);
}

Tensor *op_conv2d(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b, int stride, int pad, int groups)
{
    int s[2] = {stride, stride}, p[2] = {pad, pad};
    return conv_nd(ctx, "conv2d", 2, x, w, b, s, p, groups);
}

Tensor *op_conv3d(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b, const int stride[3], const int pad[3], int groups)
{
    return conv_nd(ctx, "conv3d", 3, x, w, b, stride, pad, groups);
}

/* ---- conv2d + bias + residual + activation, fused (issue 6: one pass over the output) ----
 * y = act(conv2d(x, w) + b + residual). Counts what op_conv2d counts (MACs; the add and the
 * activation are 0 MACs); bytes are the fused op's own traffic (x, w, b, residual, y).
 * When the tape must record (an input needs a gradient) or the backend has no fused kernel, it
 * runs as op_conv2d, op_add and op_relu / op_relu6: the same float operations in the same order
 * ((conv + b) + residual, then the activation), so the result is the same either way. */
Tensor *op_conv2d_bias_act(Ctx *ctx, Tensor *x, Tensor *w, Tensor *b, Tensor *residual, int stride, int pad,
                           int groups, OpAct act)
{
    static const char *const op = "conv2d_bias_act";
    if (!OP_INPUTS_OK(ctx, op, x, w))
        return NULL;
    if (act != OP_ACT_NONE && act != OP_ACT_RELU && act != OP_ACT_RELU6) {
        ctx_set_error(ctx, "%s: act = %d is not one of OP_ACT_NONE, OP_ACT_RELU, OP_ACT_RELU6", op, (int)act);
        return NULL;
    }
    bool fused_kernel = !ctx->ops || ctx->ops->conv_bias_act_forward;
    if (!fused_kernel || OP_RECORDS(ctx, x, w, b, residual)) {
        Tensor *y = op_conv2d(ctx, x, w, b, stride, pad, groups);
        if (residual)
            y = op_add(ctx, y, residual);
        if (act == OP_ACT_RELU)
            y = op_relu(ctx, y);
        else if (act == OP_ACT_RELU6)
            y = op_relu6(ctx, y);
        return y;
    }
    int s[2] = {stride, stride}, p[2] = {pad, pad};
    ConvGeom g;
    int64_t dims[5];
    double macs;
    if (!conv_resolve(ctx, op, 2, x, w, b, s, p, groups, &g, dims, &macs))
        return NULL;
    if (residual) {
        char rs[96], ys[96];
        Tensor want = {0};
        tensor_set_shape(&want, 4, dims);
        if (!op_check_f32(ctx, op, "residual", residual))
            return NULL;
        if (!tensor_same_shape(residual, &want)) {
            ctx_set_error(ctx, "%s: residual %s must have the output's shape %s", op,
                          tensor_shape_str(residual, rs, sizeof rs), tensor_shape_str(&want, ys, sizeof ys));
            return NULL;
        }
    }
    Tensor *y = tensor_new(ctx, DTYPE_F32, 4, dims);
    if (!y)
        return NULL;
    ctx_count(ctx, macs, OP_BYTES(x, w, b, residual, y));
    OP_KERNEL(ctx, conv_bias_act_forward, &g, x, w, b, residual, (int)act, y);
    return y;
}

/* ---- expand 1x1 + depthwise 3x3, fused (FP32 inference on the GPU: cuda_conv_expand_dw.cu) ---- */
/* Whether the backend runs op_conv2d_expand_dw's arguments as one kernel: its geometries (ge: the
 * expand, gd: the depthwise) and the expand's MACs when it does. False with the context's error
 * when x or we are malformed. */
static bool expand_dw_fused(Ctx *ctx, const char *op, Tensor *x, Tensor *we, Tensor *be, OpAct act_e, Tensor *wd,
                            Tensor *bd, int stride, OpAct act_d, ConvGeom *ge, ConvGeom *gd, double *macs_e)
{
    bool takes = ctx->ops && ctx->ops->expand_dw_takes && ctx->ops->expand_dw_forward && be && bd &&
                 act_e >= OP_ACT_NONE && act_e <= OP_ACT_RELU6 && act_d >= OP_ACT_NONE && act_d <= OP_ACT_RELU6 &&
                 !OP_RECORDS(ctx, x, we, be, wd, bd);
    if (!takes)
        return false;
    int s1[2] = {1, 1}, p0[2] = {0, 0};
    int64_t de[5];
    if (!conv_resolve(ctx, op, 2, x, we, be, s1, p0, 1, ge, de, macs_e))
        return false;
    int64_t E = ge->K;
    if (!(wd->ndim == 4 && wd->dtype == DTYPE_F32 && wd->shape[0] == E && wd->shape[1] == 1 && wd->shape[2] == 3 &&
          wd->shape[3] == 3 && bd->ndim == 1 && bd->dtype == DTYPE_F32 && bd->shape[0] == E && stride >= 1))
        return false;
    *gd = (ConvGeom){.N = ge->N, .C = ge->K, .K = ge->K, .T = 1, .H = ge->Ho, .W = ge->Wo, .kt = 1, .kh = 3, .kw = 3,
                     .To = 1, .Ho = (ge->Ho + 2 - 3) / stride + 1, .Wo = (ge->Wo + 2 - 3) / stride + 1, .st = 1,
                     .sh = stride, .sw = stride, .pt = 0, .ph = 1, .pw = 1, .dt = 1, .dh = 1, .dw = 1,
                     .groups = ge->K};
    return ctx->ops->expand_dw_takes(ctx, ge, gd);
}

bool op_conv2d_expand_dw_fuses(Ctx *ctx, Tensor *x, Tensor *we, Tensor *be, OpAct act_e, Tensor *wd, Tensor *bd,
                               int stride, OpAct act_d)
{
    ConvGeom ge, gd;
    double macs_e = 0;
    if (!x || !we || !wd || !ctx_ok(ctx))
        return false;
    bool fused = expand_dw_fused(ctx, "conv2d_expand_dw", x, we, be, act_e, wd, bd, stride, act_d, &ge, &gd, &macs_e);
    return fused && ctx_ok(ctx);
}

Tensor *op_conv2d_expand_dw(Ctx *ctx, Tensor *x, Tensor *we, Tensor *be, OpAct act_e, Tensor *wd, Tensor *bd,
                            int stride, OpAct act_d)
{
    static const char *const op = "conv2d_expand_dw";
    if (!OP_INPUTS_OK(ctx, op, x, we, wd))
        return NULL;
    ConvGeom ge, gd;
    double macs_e = 0;
    bool takes = expand_dw_fused(ctx, op, x, we, be, act_e, wd, bd, stride, act_d, &ge, &gd, &macs_e);
    if (!ctx_ok(ctx))
        return NULL;
    if (!takes) { /* the two fused convs (they check the arguments the fused path did not) */
        Tensor *h = op_conv2d_bias_act(ctx, x, we, be, NULL, 1, 0, 1, act_e);
        return op_conv2d_bias_act(ctx, h, wd, bd, NULL, stride, 1, h ? (int)h->shape[1] : 1, act_d);
    }
    int64_t dims[4] = {gd.N, gd.K, gd.Ho, gd.Wo};
    Tensor *y = tensor_new(ctx, DTYPE_F32, 4, dims);
    if (!y)
        return NULL;
    double macs_d = (double)gd.N * gd.K * gd.Ho * gd.Wo * 9.0;
    ctx_count(ctx, macs_e + macs_d, OP_BYTES(x, we, be, wd, bd, y));
    OP_KERNEL(ctx, expand_dw_forward, &ge, &gd, x, we, be, (int)act_e, wd, bd, (int)act_d, y);
    return y;
}

/* ---- depthwise 3x3 + projection 1x1, fused (FP32 inference on the GPU: cuda_conv_dw_project.cu) ---- */
Tensor *op_conv2d_dw_project(Ctx *ctx, Tensor *x, Tensor *wd, Tensor *bd, int stride, OpAct act_d, Tensor *wp,
                             Tensor *bp, Tensor *residual, OpAct act_p)
{
    static const char *const op = "conv2d_dw_project";
    if (!OP_INPUTS_OK(ctx, op, x, wd, wp))
        return NULL;
    bool takes = ctx->ops && ctx->ops->dw_project_takes && ctx->ops->dw_project_forward && bd && bp &&
                 act_d >= OP_ACT_NONE && act_d <= OP_ACT_RELU6 && act_p >= OP_ACT_NONE && act_p <= OP_ACT_RELU6 &&
                 !OP_RECORDS(ctx, x, wd, bd, wp, bp, residual);
    ConvGeom gd, gp;
    int64_t dd[5];
    double macs_d = 0;
    if (takes) {
        int s[2] = {stride, stride}, p1[2] = {1, 1};
        int groups = x->ndim == 4 && x->shape[1] <= INT_MAX ? (int)x->shape[1] : 1;
        if (!conv_resolve(ctx, op, 2, x, wd, bd, s, p1, groups, &gd, dd, &macs_d))
            return NULL;
        int64_t E = gd.K;
        takes = gd.kh == 3 && gd.kw == 3 && gd.K == gd.C && wp->ndim == 4 && wp->dtype == DTYPE_F32 &&
                wp->shape[1] == E && wp->shape[2] == 1 && wp->shape[3] == 1 && wp->shape[0] <= INT_MAX &&
                bp->ndim == 1 && bp->dtype == DTYPE_F32 && bp->shape[0] == wp->shape[0];
        if (takes) {
            gp = (ConvGeom){.N = gd.N, .C = (int)E, .K = (int)wp->shape[0], .T = 1, .H = gd.Ho, .W = gd.Wo,
                            .kt = 1, .kh = 1, .kw = 1, .To = 1, .Ho = gd.Ho, .Wo = gd.Wo, .st = 1, .sh = 1, .sw = 1,
                            .pt = 0, .ph = 0, .pw = 0, .dt = 1, .dh = 1, .dw = 1, .groups = 1};
            takes = !residual || (residual->ndim == 4 && residual->dtype == DTYPE_F32 &&
                                  residual->shape[0] == gp.N && residual->shape[1] == gp.K &&
                                  residual->shape[2] == gp.Ho && residual->shape[3] == gp.Wo);
        }
        takes = takes && ctx->ops->dw_project_takes(ctx, &gd, &gp, wp);
    }
    if (!takes) { /* the two fused convs (they check the arguments the fused path did not) */
        Tensor *h = op_conv2d_bias_act(ctx, x, wd, bd, NULL, stride, 1, x->ndim >= 2 ? (int)x->shape[1] : 1, act_d);
        return op_conv2d_bias_act(ctx, h, wp, bp, residual, 1, 0, 1, act_p);
    }
    int64_t dims[4] = {gp.N, gp.K, gp.Ho, gp.Wo};
    Tensor *y = tensor_new(ctx, DTYPE_F32, 4, dims);
    if (!y)
        return NULL;
    double macs_p = (double)gp.N * gp.K * gp.Ho * gp.Wo * (double)gp.C;
    ctx_count(ctx, macs_d + macs_p, OP_BYTES(x, wd, bd, wp, bp, residual, y));
    OP_KERNEL(ctx, dw_project_forward, &gd, &gp, x, wd, bd, (int)act_d, wp, bp, residual, (int)act_p, y);
    return y;
}
