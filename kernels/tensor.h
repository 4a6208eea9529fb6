/* tensor.h — the tensor record shared by every backend.
 *
 * Owns: the Tensor struct (logical shape up to 5-D, dtype, backend, data, parameter name,
 * gradient link), shape helpers and dtype sizes. Memory is never owned by a tensor: it comes
 * from an Arena (activations, see arena.h) or a ParamSet (parameters, see params.h).
 *
 * Logical layout is always row-major over the logical shape (N, C, (T), H, W); a backend that
 * prefers another physical layout keeps its own copy (the CPU backend does not).
 */
#ifndef FOCUSBENCH_TENSOR_H
#define FOCUSBENCH_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { TENSOR_MAX_DIMS = 5 };

typedef enum {
    DTYPE_F32 = 0,
    DTYPE_BF16,
    DTYPE_F16,
    DTYPE_I32,
    DTYPE_I64,
    DTYPE_U8,
} DType;

typedef enum {
    BACKEND_CPU = 0,
    BACKEND_META, /* shapes and counts only: data is always NULL */
    BACKEND_CUDA,
} BackendKind;

typedef struct Tensor {
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    DType dtype;
    BackendKind backend;
    void *data;          /* NULL on the meta backend */
    const char *name;    /* checkpoint key for parameters, NULL for activations */
    struct Tensor *grad; /* same shape, f32; NULL until backward needs it */
    bool requires_grad;  /* a parameter, or computed from one while the tape records */
} Tensor;

size_t dtype_size(DType dtype);
const char *dtype_name(DType dtype);
const char *backend_name(BackendKind kind);

int64_t tensor_numel(const Tensor *t);
size_t tensor_bytes(const Tensor *t);
bool tensor_same_shape(const Tensor *a, const Tensor *b);

/* Product of shape[from..to) (empty range → 1). */
int64_t tensor_span(const Tensor *t, int from, int to);

/* Writes "(2, 3, 224, 224)" into buf; returns buf. */
char *tensor_shape_str(const Tensor *t, char *buf, size_t cap);

/* Typed data access; only valid on backends with host-visible memory (CPU). */
static inline float *tensor_f32(const Tensor *t) { return (float *)t->data; }
static inline int32_t *tensor_i32(const Tensor *t) { return (int32_t *)t->data; }

/* Fills shape fields from a dims array; ndim in 1..TENSOR_MAX_DIMS (0 means a scalar, shape {}). */
void tensor_set_shape(Tensor *t, int ndim, const int64_t *dims);

#endif
