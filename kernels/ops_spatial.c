/* ops_spatial.c — affine_grid, bilinear grid_sample and the affine patch crop (op layer).
 *
 * Owns the PyTorch semantics of Uni-AdaFocus's deformable patch crop: argument checks, output
 * shapes, cost counting (0 MACs: crops are not conv/linear, DESIGN §4) and the tape entries.
 * Both ops follow torch.nn.functional with align_corners = False, bilinear, zeros padding; the
 * arithmetic lives in the backend kernels (kernels/cpu/cpu_spatial.c documents the formulas).
 * op_patch_crop is the composition of the two, so its gradients reach x and theta through the
 * tape without a kernel of its own.
 */
#include <limits.h>

#include "backend.h"
#include "op_util.h"
#include "ops.h"

/* ---- affine_grid ------------------------------------------------------------------------ */

typedef struct {
    int N, H, W;
} AffineGridArgs;

static void affine_grid_backward(Ctx *ctx, const TapeEntry *e)
{
    const AffineGridArgs *a = e->args;
    Tensor *dtheta = op_grad_for(ctx, e->in[0]);
    if (dtheta)
        OP_KERNEL(ctx, affine_grid_backward, a->N, a->H, a->W, e->out->grad, dtheta);
}

/* theta must be f32 (N, 2, 3); `op` names the public op in the message. */
static bool check_theta(Ctx *ctx, const char *op, const Tensor *theta)
{
    if (!op_check_f32(ctx, op, "theta", theta))
        return false;
    if (theta->ndim != 3 || theta->shape[1] != 2 || theta->shape[2] != 3 || theta->shape[0] > INT_MAX) {
        char s[96];
        ctx_set_error(ctx, "%s: theta must be (N, 2, 3) (one 2x3 affine matrix per sample), got %s", op,
                      tensor_shape_str(theta, s, sizeof s));
        return false;
    }
    return true;
}

Tensor *op_affine_grid(Ctx *ctx, Tensor *theta, int H, int W)
{
    if (!OP_INPUTS_OK(ctx, "affine_grid", theta) || !check_theta(ctx, "affine_grid", theta))
        return NULL;
    if (H < 1 || W < 1) {
        ctx_set_error(ctx, "affine_grid: output size H = %d, W = %d must both be >= 1", H, W);
        return NULL;
    }
    AffineGridArgs a = {(int)theta->shape[0], H, W};
    int64_t dims[4] = {a.N, H, W, 2};
    Tensor *grid = tensor_new(ctx, DTYPE_F32, 4, dims);
    if (!grid)
        return NULL;
    ctx_count(ctx, 0, OP_BYTES(theta, grid));
    OP_KERNEL(ctx, affine_grid_forward, a.N, H, W, theta, grid);
    if (OP_RECORDS(ctx, theta)) {
        TapeEntry *e = tape_record(ctx, "affine_grid", affine_grid_backward, grid, &a, sizeof a);
        if (e)
            e->in[0] = theta;
    }
    return grid;
}

/* ---- grid_sample ------------------------------------------------------------------------ */

static void grid_sample_backward(Ctx *ctx, const TapeEntry *e)
{
    Tensor *dx = op_grad_for(ctx, e->in[0]);
    Tensor *dgrid = op_grad_for(ctx, e->in[1]);
    if (dx || dgrid)
        OP_KERNEL(ctx, grid_sample_backward, e->in[0], e->in[1], e->out->grad, dx, dgrid);
}

/* x: f32 (N, C, H, W) with H, W >= 1; `op` names the public op in the message. */
static bool check_image(Ctx *ctx, const char *op, const Tensor *x)
{
    if (!op_check_f32(ctx, op, "x", x) || !op_check_ndim(ctx, op, "x (N, C, H, W)", x, 4, 4))
        return false;
    if (x->shape[2] < 1 || x->shape[3] < 1 || x->shape[2] > INT_MAX || x->shape[3] > INT_MAX) {
        char s[96];
        ctx_set_error(ctx, "%s: x %s must have a non-empty spatial extent (H, W >= 1)", op,
                      tensor_shape_str(x, s, sizeof s));
        return false;
    }
    return true;
}

Tensor *op_grid_sample(Ctx *ctx, Tensor *x, Tensor *grid)
{
    if (!OP_INPUTS_OK(ctx, "grid_sample", x, grid) || !check_image(ctx, "grid_sample", x) ||
        !op_check_f32(ctx, "grid_sample", "grid", grid))
        return NULL;
    if (grid->ndim != 4 || grid->shape[0] != x->shape[0] || grid->shape[3] != 2) {
        char sx[96], sg[96];
        ctx_set_error(ctx, "grid_sample: grid must be (N, Ho, Wo, 2) with N = %lld as x %s, got %s",
                      (long long)x->shape[0], tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(grid, sg, sizeof sg));
        return NULL;
    }
    int64_t dims[4] = {x->shape[0], x->shape[1], grid->shape[1], grid->shape[2]};
    Tensor *y = tensor_new(ctx, DTYPE_F32, 4, dims);
    if (!y)
        return NULL;
    ctx_count(ctx, 0, OP_BYTES(x, grid, y));
    OP_KERNEL(ctx, grid_sample_forward, x, grid, y);
    if (OP_RECORDS(ctx, x, grid)) {
        TapeEntry *e = tape_record(ctx, "grid_sample", grid_sample_backward, y, NULL, 0);
        if (e)
            e->in[0] = x, e->in[1] = grid;
    }
    return y;
}

/* ---- patch crop ------------------------------------------------------------------------- */

Tensor *op_patch_crop(Ctx *ctx, Tensor *x, Tensor *theta, int P)
{
    /* Checked here too so a mistake is reported as the crop's, with both shapes. */
    if (!OP_INPUTS_OK(ctx, "patch_crop", x, theta) || !check_image(ctx, "patch_crop", x) ||
        !check_theta(ctx, "patch_crop", theta))
        return NULL;
    if (theta->shape[0] != x->shape[0]) {
        char sx[96], st[96];
        ctx_set_error(ctx, "patch_crop: theta %s must hold one matrix per image of x %s",
                      tensor_shape_str(theta, st, sizeof st), tensor_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    if (P < 1) {
        ctx_set_error(ctx, "patch_crop: patch side P = %d must be >= 1", P);
        return NULL;
    }
    Tensor *grid = op_affine_grid(ctx, theta, P, P); /* (N, P, P, 2) */
    return op_grid_sample(ctx, x, grid);             /* (N, C, P, P) */
}
