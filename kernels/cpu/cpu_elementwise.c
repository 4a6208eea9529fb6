/* cpu_elementwise.c — activations, broadcast binary ops, axis reductions and dropout. */
#include <math.h>
#include <string.h>

#include "cpu_kernels.h"

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

void cpu_unary_forward(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, Tensor *y)
{
    const float *in = tensor_f32(x); /* (numel) */
    float *out = tensor_f32(y);      /* (numel) */
    int64_t n = tensor_numel(x);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++) {
        float v = in[i];
        switch (kind) {
        case UNARY_RELU: out[i] = v > 0 ? v : 0; break;
        case UNARY_RELU6: out[i] = v < 0 ? 0 : (v > 6 ? 6 : v); break;
        case UNARY_SIGMOID: out[i] = sigmoidf(v); break;
        case UNARY_SWISH: out[i] = v * sigmoidf(v); break;
        case UNARY_SCALE: out[i] = alpha * v; break;
        }
    }
}

void cpu_unary_backward(Ctx *ctx, UnaryKind kind, float alpha, const Tensor *x, const Tensor *y, const Tensor *dy,
                        Tensor *dx)
{
    const float *in = tensor_f32(x), *out = tensor_f32(y), *g = tensor_f32(dy); /* (numel) each */
    float *gx = tensor_f32(dx);
    int64_t n = tensor_numel(x);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++) {
        float v = in[i], d = 0;
        switch (kind) {
        case UNARY_RELU: d = v > 0 ? 1.0f : 0.0f; break;
        case UNARY_RELU6: d = (v > 0 && v < 6) ? 1.0f : 0.0f; break;
        case UNARY_SIGMOID: d = out[i] * (1 - out[i]); break;
        case UNARY_SWISH: {
            float s = sigmoidf(v);
            d = s * (1 + v * (1 - s));
            break;
        }
        case UNARY_SCALE: d = alpha; break;
        }
        gx[i] += g[i] * d;
    }
}

/* Offset into b of a's flat index k, b broadcasting (stride 0 along its size-1 dims). */
typedef struct {
    int nd;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t bstride[TENSOR_MAX_DIMS];
} Broadcast;

static Broadcast broadcast_plan(const Tensor *a, const Tensor *b)
{
    Broadcast p = {.nd = a->ndim};
    int64_t s = 1;
    for (int i = a->ndim - 1; i >= 0; i--) {
        p.shape[i] = a->shape[i];
        p.bstride[i] = b->shape[i] == 1 ? 0 : s;
        s *= b->shape[i];
    }
    return p;
}

static float binary_apply(BinaryKind kind, float a, float b)
{
    switch (kind) {
    case BINARY_ADD: return a + b;
    case BINARY_MUL: return a * b;
    case BINARY_MAX: return a >= b ? a : b;
    }
    return 0;
}

void cpu_binary_forward(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, Tensor *y)
{
    const float *pa = tensor_f32(a), *pb = tensor_f32(b); /* a: shape S; b: S with some dims 1 */
    float *py = tensor_f32(y);                            /* shape S */
    int64_t n = tensor_numel(a);
    if (tensor_same_shape(a, b)) {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
        for (int64_t i = 0; i < n; i++)
            py[i] = binary_apply(kind, pa[i], pb[i]);
        return;
    }
    Broadcast p = broadcast_plan(a, b);
    int64_t idx[TENSOR_MAX_DIMS] = {0}, off = 0;
    for (int64_t k = 0; k < n; k++) {
        py[k] = binary_apply(kind, pa[k], pb[off]);
        for (int i = p.nd - 1; i >= 0; i--) {
            idx[i]++;
            off += p.bstride[i];
            if (idx[i] < p.shape[i])
                break;
            off -= p.bstride[i] * p.shape[i];
            idx[i] = 0;
        }
    }
}

void cpu_binary_backward(Ctx *ctx, BinaryKind kind, const Tensor *a, const Tensor *b, const Tensor *dy, Tensor *da,
                         Tensor *db)
{
    const float *pa = tensor_f32(a), *pb = tensor_f32(b), *g = tensor_f32(dy);
    float *ga = da ? tensor_f32(da) : NULL; /* shape of a */
    float *gb = db ? tensor_f32(db) : NULL; /* shape of b: summed over broadcast dims, in order */
    Broadcast p = broadcast_plan(a, b);
    int64_t n = tensor_numel(a), idx[TENSOR_MAX_DIMS] = {0}, off = 0;
    for (int64_t k = 0; k < n; k++) {
        float va = pa[k], vb = pb[off], gk = g[k];
        switch (kind) {
        case BINARY_ADD:
            if (ga) ga[k] += gk;
            if (gb) gb[off] += gk;
            break;
        case BINARY_MUL:
            if (ga) ga[k] += gk * vb;
            if (gb) gb[off] += gk * va;
            break;
        case BINARY_MAX:
            if (va >= vb) {
                if (ga) ga[k] += gk;
            } else if (gb) {
                gb[off] += gk;
            }
            break;
        }
        for (int i = p.nd - 1; i >= 0; i--) {
            idx[i]++;
            off += p.bstride[i];
            if (idx[i] < p.shape[i])
                break;
            off -= p.bstride[i] * p.shape[i];
            idx[i] = 0;
        }
    }
}

void cpu_reduce_forward(Ctx *ctx, const ReduceGeom *g, const Tensor *x, Tensor *y)
{
    const float *in = tensor_f32(x); /* (outer, n, inner) */
    float *out = tensor_f32(y);      /* (outer, inner) */
#pragma omp parallel for schedule(static) if (g->outer * g->n * g->inner > (1 << 16))
    for (int64_t o = 0; o < g->outer; o++) {
        for (int64_t i = 0; i < g->inner; i++) {
            double acc = 0; /* double: means over 50k-element maps stay exact to f32 */
            for (int64_t j = 0; j < g->n; j++)
                acc += in[(o * g->n + j) * g->inner + i];
            out[o * g->inner + i] = (float)(acc * g->scale);
        }
    }
}

void cpu_reduce_backward(Ctx *ctx, const ReduceGeom *g, const Tensor *dy, Tensor *dx)
{
    const float *gy = tensor_f32(dy); /* (outer, inner) */
    float *gx = tensor_f32(dx);       /* (outer, n, inner) */
#pragma omp parallel for schedule(static) if (g->outer * g->n * g->inner > (1 << 16))
    for (int64_t o = 0; o < g->outer; o++)
        for (int64_t j = 0; j < g->n; j++)
            for (int64_t i = 0; i < g->inner; i++)
                gx[(o * g->n + j) * g->inner + i] += g->scale * gy[o * g->inner + i];
}

void cpu_dropout_forward(Ctx *ctx, float p, const RngStream *stream, const Tensor *x, Tensor *y)
{
    const float *in = tensor_f32(x);
    float *out = tensor_f32(y);
    float keep_scale = 1.0f / (1.0f - p);
    int64_t n = tensor_numel(x);
#pragma omp parallel for schedule(static) if (n > (1 << 14))
    for (int64_t i = 0; i < n; i++)
        out[i] = rng_uniform(stream, (uint64_t)i) >= p ? in[i] * keep_scale : 0.0f;
}

void cpu_dropout_backward(Ctx *ctx, float p, const RngStream *stream, const Tensor *dy, Tensor *dx)
{
    const float *g = tensor_f32(dy);
    float *gx = tensor_f32(dx);
    float keep_scale = 1.0f / (1.0f - p);
    int64_t n = tensor_numel(dy);
#pragma omp parallel for schedule(static) if (n > (1 << 14))
    for (int64_t i = 0; i < n; i++)
        if (rng_uniform(stream, (uint64_t)i) >= p)
            gx[i] += g[i] * keep_scale;
}
