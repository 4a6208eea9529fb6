/* params.c — see params.h. */
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

ParamSet *params_create(void) { return calloc(1, sizeof(ParamSet)); }

void params_destroy(ParamSet *ps)
{
    if (!ps)
        return;
    for (int i = 0; i < ps->n; i++) {
        free((char *)ps->items[i]->name);
        free(ps->items[i]->grad);
        free(ps->items[i]);
    }
    free(ps->items);
    free(ps->data_block);
    free(ps->grad_block);
    free(ps);
}

Tensor *params_find(const ParamSet *ps, const char *name)
{
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->items[i]->name, name) == 0)
            return ps->items[i];
    return NULL;
}

Tensor *params_declare(ParamSet *ps, const char *name, DType dtype, int ndim, const int64_t *dims, bool trainable)
{
    if (ps->allocated) {
        fprintf(stderr, "params_declare(\"%s\"): the set is already allocated; declare everything first\n", name);
        return NULL;
    }
    if (params_find(ps, name)) {
        fprintf(stderr, "params_declare: duplicate parameter name \"%s\"\n", name);
        return NULL;
    }
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) {
        fprintf(stderr, "params_declare(\"%s\"): %d dims (0..%d supported)\n", name, ndim, TENSOR_MAX_DIMS);
        return NULL;
    }
    for (int i = 0; i < ndim; i++) {
        if (dims[i] <= 0) {
            fprintf(stderr, "params_declare(\"%s\"): dim %d has size %lld\n", name, i, (long long)dims[i]);
            return NULL;
        }
    }
    if (ps->n == ps->cap) {
        int cap = ps->cap ? ps->cap * 2 : 64;
        Tensor **grown = realloc(ps->items, (size_t)cap * sizeof *grown);
        if (!grown)
            return NULL;
        ps->items = grown;
        ps->cap = cap;
    }
    Tensor *t = calloc(1, sizeof *t);
    char *copy = strdup(name);
    if (!t || !copy) {
        free(t);
        free(copy);
        return NULL;
    }
    tensor_set_shape(t, ndim, dims);
    t->dtype = dtype;
    t->name = copy;
    t->requires_grad = trainable;
    ps->items[ps->n++] = t;
    return t;
}

static size_t aligned(size_t n) { return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

bool params_allocate(ParamSet *ps, BackendKind backend, bool with_grads, char *err, size_t err_cap)
{
    if (ps->allocated) {
        snprintf(err, err_cap, "params_allocate: already allocated");
        return false;
    }
    if (backend == BACKEND_CUDA) {
        snprintf(err, err_cap, "params_allocate: allocate on the CPU, then upload with the CUDA backend");
        return false;
    }
    ps->backend = backend;
    size_t data_bytes = 0, grad_bytes = 0;
    for (int i = 0; i < ps->n; i++) {
        data_bytes += aligned(tensor_bytes(ps->items[i]));
        if (with_grads && ps->items[i]->requires_grad)
            grad_bytes += aligned((size_t)tensor_numel(ps->items[i]) * sizeof(float));
    }
    ps->allocated = true;
    ps->data_bytes = data_bytes;
    for (int i = 0; i < ps->n; i++)
        ps->items[i]->backend = backend;
    if (backend == BACKEND_META)
        return true;
    ps->data_block = data_bytes ? aligned_alloc(ARENA_ALIGN, data_bytes) : NULL;
    ps->grad_block = grad_bytes ? aligned_alloc(ARENA_ALIGN, grad_bytes) : NULL;
    if ((data_bytes && !ps->data_block) || (grad_bytes && !ps->grad_block)) {
        snprintf(err, err_cap, "params_allocate: out of memory (%zu + %zu bytes)", data_bytes, grad_bytes);
        return false;
    }
    if (data_bytes)
        memset(ps->data_block, 0, data_bytes);
    if (grad_bytes)
        memset(ps->grad_block, 0, grad_bytes);
    unsigned char *d = ps->data_block, *g = ps->grad_block;
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->items[i];
        t->data = d;
        d += aligned(tensor_bytes(t));
        if (with_grads && t->requires_grad) {
            Tensor *grad = calloc(1, sizeof *grad);
            if (!grad) {
                snprintf(err, err_cap, "params_allocate: out of memory");
                return false;
            }
            tensor_set_shape(grad, t->ndim, t->shape);
            grad->dtype = DTYPE_F32;
            grad->backend = backend;
            grad->data = g;
            g += aligned((size_t)tensor_numel(t) * sizeof(float));
            t->grad = grad;
        }
    }
    return true;
}

void params_zero_grad(ParamSet *ps)
{
    /* Host memory only: gradients uploaded to a device are zeroed by that backend
     * (cuda_params_zero_grad); writing them from here would touch device pointers. */
    for (int i = 0; i < ps->n; i++) {
        Tensor *g = ps->items[i]->grad;
        if (g && g->data && g->backend == BACKEND_CPU)
            memset(g->data, 0, tensor_bytes(g));
    }
}

int64_t params_count_trainable(const ParamSet *ps)
{
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (ps->items[i]->requires_grad)
            n += tensor_numel(ps->items[i]);
    return n;
}

int64_t params_count_all(const ParamSet *ps)
{
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++)
        n += tensor_numel(ps->items[i]);
    return n;
}
