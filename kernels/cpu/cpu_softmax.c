/* cpu_softmax.c — softmax, log-softmax and the fused mean cross-entropy on the CPU.
 *
 * All row-wise over x viewed as (rows, cols). Stability: every exponent is taken of x − max(row)
 * (≤ 0, so nothing overflows), and the log-sum-exp is accumulated in double (so a row of
 * thousands of classes, or logits like 1000 and 1001, keeps full fp32 accuracy). Rows are
 * independent and write disjoint outputs, so the row loops may run in parallel; the one
 * cross-row sum (the mean loss) runs in row order.
 */
#include <math.h>

#include "cpu_kernels.h"

/* max(row) and log Σ exp(row − max), in double. */
static void row_log_sum_exp(const float *row, int64_t cols, double *max_out, double *lse_out)
{
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < cols; j++)
        mx = row[j] > mx ? row[j] : mx;
    for (int64_t j = 0; j < cols; j++)
        sum += exp((double)row[j] - mx);
    *max_out = mx;
    *lse_out = mx + log(sum);
}

void cpu_softmax_forward(Ctx *ctx, int64_t rows, int64_t cols, bool log_out, const Tensor *x, Tensor *y)
{
    const float *px = tensor_f32(x); /* (rows, cols) */
    float *py = tensor_f32(y);       /* (rows, cols) */
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 14))
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = px + r * cols;
        float *yr = py + r * cols;
        double mx, lse;
        row_log_sum_exp(xr, cols, &mx, &lse);
        for (int64_t j = 0; j < cols; j++)
            yr[j] = log_out ? (float)((double)xr[j] - lse) : (float)exp((double)xr[j] - lse);
    }
}

/* From the output y:
 *   softmax:      dx = y ⊙ (dy − Σ dy·y)
 *   log-softmax:  dx = dy − exp(y) · Σ dy */
void cpu_softmax_backward(Ctx *ctx, int64_t rows, int64_t cols, bool log_out, const Tensor *y, const Tensor *dy,
                          Tensor *dx)
{
    const float *py = tensor_f32(y), *pdy = tensor_f32(dy); /* (rows, cols) each */
    float *pdx = tensor_f32(dx);                            /* (rows, cols), accumulated */
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 14))
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = py + r * cols, *gr = pdy + r * cols;
        float *dr = pdx + r * cols;
        double dot = 0;
        for (int64_t j = 0; j < cols; j++)
            dot += log_out ? (double)gr[j] : (double)gr[j] * yr[j];
        for (int64_t j = 0; j < cols; j++) {
            if (log_out)
                dr[j] += (float)(gr[j] - exp((double)yr[j]) * dot);
            else
                dr[j] += (float)(yr[j] * (gr[j] - dot));
        }
    }
}

/* loss = (1/rows) Σ_r (logsumexp(row r) − x[r, label_r]); probs = softmax(x). */
void cpu_cross_entropy_forward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *logits, const Tensor *labels,
                               Tensor *loss, Tensor *probs)
{
    const float *px = tensor_f32(logits);  /* (rows, cols) */
    const int32_t *pl = tensor_i32(labels); /* (rows) */
    float *pp = tensor_f32(probs);         /* (rows, cols) */
    double total = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = px + r * cols;
        float *pr = pp + r * cols;
        int32_t label = pl[r];
        if (label < 0 || label >= cols) { /* the op layer checked already; never read out of bounds */
            ctx_set_error(ctx, "cross_entropy: label %d in row %lld is outside [0, %lld)", label, (long long)r,
                          (long long)cols);
            return;
        }
        double mx, lse;
        row_log_sum_exp(xr, cols, &mx, &lse);
        for (int64_t j = 0; j < cols; j++)
            pr[j] = (float)exp((double)xr[j] - lse);
        total += lse - (double)xr[label];
    }
    tensor_f32(loss)[0] = (float)(total / (double)rows);
}

/* dlogits = (probs − onehot(label)) · dloss / rows */
void cpu_cross_entropy_backward(Ctx *ctx, int64_t rows, int64_t cols, const Tensor *probs, const Tensor *labels,
                                const Tensor *dloss, Tensor *dlogits)
{
    const float *pp = tensor_f32(probs);   /* (rows, cols) */
    const int32_t *pl = tensor_i32(labels); /* (rows) */
    float *pd = tensor_f32(dlogits);       /* (rows, cols), accumulated */
    double k = (double)tensor_f32(dloss)[0] / (double)rows;
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 14))
    for (int64_t r = 0; r < rows; r++) {
        const float *pr = pp + r * cols;
        float *dr = pd + r * cols;
        int32_t label = pl[r];
        for (int64_t j = 0; j < cols; j++)
            dr[j] += (float)(((double)pr[j] - (j == label ? 1.0 : 0.0)) * k);
    }
}
