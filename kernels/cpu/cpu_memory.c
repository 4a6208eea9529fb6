/* cpu_memory.c — fill, axpy, strided block copy and permute on host memory. */
#include <string.h>

#include "cpu_kernels.h"

void cpu_fill(Ctx *ctx, Tensor *t, float value)
{
    float *p = tensor_f32(t); /* (numel) */
    int64_t n = tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        p[i] = value;
}

void cpu_axpy(Ctx *ctx, float alpha, const Tensor *x, Tensor *y)
{
    const float *xs = tensor_f32(x); /* (numel) */
    float *ys = tensor_f32(y);       /* (numel) */
    int64_t n = tensor_numel(y);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++)
        ys[i] += alpha * xs[i];
}

void cpu_copy_block(Ctx *ctx, const Tensor *src, int64_t src_off, int64_t src_ld, Tensor *dst, int64_t dst_off,
                    int64_t dst_ld, int64_t rows, int64_t cols, bool accumulate)
{
    const float *s = tensor_f32(src) + src_off; /* rows × cols, leading dim src_ld */
    float *d = tensor_f32(dst) + dst_off;       /* rows × cols, leading dim dst_ld */
    for (int64_t r = 0; r < rows; r++) {
        if (accumulate) {
            for (int64_t c = 0; c < cols; c++)
                d[r * dst_ld + c] += s[r * src_ld + c];
        } else {
            memcpy(d + r * dst_ld, s + r * src_ld, (size_t)cols * sizeof(float));
        }
    }
}

void cpu_permute(Ctx *ctx, const Tensor *src, const int *perm, Tensor *dst, bool accumulate)
{
    int nd = src->ndim;
    int64_t src_stride[TENSOR_MAX_DIMS], step[TENSOR_MAX_DIMS], idx[TENSOR_MAX_DIMS] = {0};
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        src_stride[i] = s;
        s *= src->shape[i];
    }
    for (int i = 0; i < nd; i++)
        step[i] = src_stride[perm[i]]; /* moving one along dst dim i moves step[i] in src */
    const float *in = tensor_f32(src);
    float *out = tensor_f32(dst); /* dst.shape[i] = src.shape[perm[i]] */
    int64_t n = tensor_numel(dst), off = 0;
    for (int64_t k = 0; k < n; k++) {
        if (accumulate)
            out[k] += in[off];
        else
            out[k] = in[off];
        /* advance the dst multi-index, keeping the src offset in step */
        for (int i = nd - 1; i >= 0; i--) {
            idx[i]++;
            off += step[i];
            if (idx[i] < dst->shape[i])
                break;
            off -= step[i] * dst->shape[i];
            idx[i] = 0;
        }
    }
}
