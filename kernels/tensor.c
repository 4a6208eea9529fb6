/* tensor.c — shape helpers for the Tensor record. */
#include "tensor.h"

#include <stdio.h>
#include <string.h>

size_t dtype_size(DType dtype)
{
    switch (dtype) {
    case DTYPE_F32: return 4;
    case DTYPE_BF16: return 2;
    case DTYPE_F16: return 2;
    case DTYPE_I32: return 4;
    case DTYPE_I64: return 8;
    case DTYPE_U8: return 1;
    }
    return 0;
}

const char *dtype_name(DType dtype)
{
    switch (dtype) {
    case DTYPE_F32: return "f32";
    case DTYPE_BF16: return "bf16";
    case DTYPE_F16: return "f16";
    case DTYPE_I32: return "i32";
    case DTYPE_I64: return "i64";
    case DTYPE_U8: return "u8";
    }
    return "?";
}

const char *backend_name(BackendKind kind)
{
    switch (kind) {
    case BACKEND_CPU: return "cpu";
    case BACKEND_META: return "meta";
    case BACKEND_CUDA: return "cuda";
    }
    return "?";
}

int64_t tensor_span(const Tensor *t, int from, int to)
{
    int64_t n = 1;
    for (int i = from; i < to && i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

int64_t tensor_numel(const Tensor *t) { return tensor_span(t, 0, t->ndim); }

size_t tensor_bytes(const Tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->dtype); }

bool tensor_same_shape(const Tensor *a, const Tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

char *tensor_shape_str(const Tensor *t, char *buf, size_t cap)
{
    size_t used = 0;
    int n = snprintf(buf, cap, "(");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < t->ndim && used < cap; i++) {
        n = snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used < cap)
        snprintf(buf + used, cap - used, ")");
    return buf;
}

void tensor_set_shape(Tensor *t, int ndim, const int64_t *dims)
{
    t->ndim = ndim;
    memset(t->shape, 0, sizeof t->shape);
    for (int i = 0; i < ndim; i++)
        t->shape[i] = dims[i];
}
