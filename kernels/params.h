/* params.h — a model's parameters and buffers in one block.
 *
 * Owns: the named parameter tensors of a model (checkpoint keys, e.g. "layer1.0.conv1.weight"),
 * their data in ONE allocation, and their gradients in a second one. Model builders first
 * declare every tensor (name, shape, trainable or buffer), then allocate once; lookups by name
 * serve checkpoint loading. Buffers (batch-norm running statistics) are not trainable and get
 * no gradient.
 */
#ifndef FOCUSBENCH_PARAMS_H
#define FOCUSBENCH_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "tensor.h"

typedef struct ParamSet {
    Tensor **items; /* declaration order */
    int n, cap;
    BackendKind backend;
    void *data_block;  /* all parameter data, each tensor 64-byte aligned inside */
    void *grad_block;  /* all gradients of trainable tensors */
    size_t data_bytes; /* size of data_block */
    bool allocated;
} ParamSet;

ParamSet *params_create(void);
void params_destroy(ParamSet *ps);

/* Declares a tensor; the name is copied. Returns NULL (and prints why) on a duplicate name, a
 * declaration after params_allocate, or a bad shape. */
Tensor *params_declare(ParamSet *ps, const char *name, DType dtype, int ndim, const int64_t *dims, bool trainable);

/* Allocates data (zeroed) for every declared tensor in one block, and gradients in a second
 * one if with_grads. On BACKEND_META nothing is allocated (data stays NULL). CPU only here; a
 * device backend uploads from a CPU set. Returns false with a message in err on failure. */
bool params_allocate(ParamSet *ps, BackendKind backend, bool with_grads, char *err, size_t err_cap);

Tensor *params_find(const ParamSet *ps, const char *name);
/* Zeroes host-memory gradients (device copies: the backend's own call, e.g. cuda_params_zero_grad). */
void params_zero_grad(ParamSet *ps);
/* Element count of trainable tensors (the "parameters" a paper quotes) and of everything. */
int64_t params_count_trainable(const ParamSet *ps);
int64_t params_count_all(const ParamSet *ps);

#endif
