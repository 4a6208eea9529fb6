/* dist_grads.c — see dist_grads.h. */
#include "dist_grads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "kernels/device.h"
#include "kernels/tensor.h"

#if HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

struct DistGradSync {
    DistComm *comm;
    ParamSet *ps;
    Ctx *device; /* the device context the gradients and buffers live on, NULL: the host */
    DistBucket *buckets;
    int n_buckets;
    size_t *offset, *count; /* (n_buckets) the buckets' slices, for the bucketed all-reduce */
    size_t grad_floats;     /* floats of the gradient block */
    bool pinned;
};

/* Float offset of tensor i's gradient inside the block, and its aligned length (padding included). */
static size_t grad_offset(const ParamSet *ps, const Tensor *t)
{
    return (size_t)((const float *)t->grad->data - (const float *)ps->grad_block);
}

/* The gradient block ends where the last trainable tensor's aligned gradient ends. */
static size_t aligned_floats(const Tensor *t)
{
    size_t bytes = (size_t)tensor_numel(t) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63; /* params.c's ARENA_ALIGN padding */
    return bytes / sizeof(float);
}

DistBucket *dist_make_buckets(const ParamSet *ps, size_t cap_bytes, int *n)
{
    *n = 0;
    if (!ps || !ps->grad_block)
        return NULL;
    size_t cap_floats = cap_bytes / sizeof(float);
    if (cap_floats == 0)
        cap_floats = 1;
    DistBucket *b = calloc((size_t)ps->n, sizeof *b); /* at most one bucket per tensor */
    if (!b)
        return NULL;
    int nb = 0;
    /* walk backwards: the open bucket [lo, hi) grows downwards over whole tensors */
    size_t hi = 0, lo = 0;
    int first = -1, last = -1;
    for (int i = ps->n - 1; i >= 0; i--) {
        const Tensor *t = ps->items[i];
        if (!t->grad || !t->grad->data)
            continue;
        size_t off = grad_offset(ps, t), len = aligned_floats(t);
        if (last >= 0 && hi - off > cap_floats) {
            b[nb++] = (DistBucket){.offset = lo, .count = hi - lo, .first = first, .last = last};
            last = -1;
        }
        if (last < 0) {
            hi = off + len;
            last = i;
        }
        lo = off;
        first = i;
    }
    if (last >= 0)
        b[nb++] = (DistBucket){.offset = lo, .count = hi - lo, .first = first, .last = last};
    *n = nb;
    return b;
}

void dist_grad_sync_destroy(DistGradSync *g)
{
    if (!g)
        return;
    if (g->pinned)
        dist_unpin_host(g->comm, g->ps->grad_block);
    free(g->buckets);
    free(g->offset);
    free(g->count);
    free(g);
}

DistGradSync *dist_grad_sync_create(DistComm *comm, ParamSet *ps, size_t bucket_bytes, char *err,
                                    size_t err_cap)
{
    if (!ps || ps->backend != BACKEND_CPU || !ps->allocated) {
        snprintf(err, err_cap, "dist_grad_sync_create: the parameters must be allocated on the CPU");
        return NULL;
    }
    DistGradSync *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, err_cap, "dist_grad_sync_create: out of memory");
        return NULL;
    }
    g->comm = comm;
    g->ps = ps;
    g->buckets = dist_make_buckets(ps, bucket_bytes ? bucket_bytes : DIST_BUCKET_DEFAULT_BYTES, &g->n_buckets);
    g->offset = calloc((size_t)g->n_buckets + 1, sizeof *g->offset);
    g->count = calloc((size_t)g->n_buckets + 1, sizeof *g->count);
    if ((ps->grad_block && !g->buckets) || !g->offset || !g->count) {
        snprintf(err, err_cap, "dist_grad_sync_create: out of memory");
        dist_grad_sync_destroy(g);
        return NULL;
    }
    for (int k = 0; k < g->n_buckets; k++) {
        g->offset[k] = g->buckets[k].offset;
        g->count[k] = g->buckets[k].count;
        if (g->offset[k] + g->count[k] > g->grad_floats)
            g->grad_floats = g->offset[k] + g->count[k];
    }
    /* page-locked gradients: the bucket copies then run asynchronously (a plain failure is not fatal) */
    g->pinned = dist_world(comm) > 1 && ps->grad_block &&
                dist_pin_host(comm, ps->grad_block, g->grad_floats * sizeof(float));
    return g;
}

int dist_grad_sync_buckets(const DistGradSync *g, const DistBucket **buckets)
{
    *buckets = g->buckets;
    return g->n_buckets;
}

void dist_grad_sync_set_device(DistGradSync *g, Ctx *ctx)
{
    g->device = ctx && ctx->backend != BACKEND_CPU ? ctx : NULL;
}

/* The device context's stream (a cudaStream_t), for the collectives on device memory. */
static void *device_stream(Ctx *ctx)
{
#if HAVE_CUDA
    if (ctx && ctx->backend == BACKEND_CUDA)
        return cuda_stream(ctx);
#endif
    (void)ctx;
    return NULL;
}

bool dist_grad_sync_average(DistGradSync *g, int local_clips, int *global_clips, char *err, size_t err_cap)
{
    double total = local_clips;
    if (!dist_allreduce_sum_f64(g->comm, &total, 1, err, err_cap))
        return false;
    if (global_clips)
        *global_clips = (int)total;
    if (!(total > 0)) {
        snprintf(err, err_cap, "dist_grad_sync_average: the global batch is empty (rank %d has %d clips)",
                 dist_rank(g->comm), local_clips);
        return false;
    }
    float w = (float)((double)local_clips / total); /* exactly 1 on one rank */
    if (g->device) {
        /* The tape's backward is one call, so every gradient is ready now: one all-reduce over the
         * whole device block (NCCL pipelines a large buffer itself; buckets were for host staging). */
        Ctx *ctx = g->device;
        float *grads = run_device_grad_block(ctx, g->ps); /* (grad_floats) on the device */
        if (!grads) {
            snprintf(err, err_cap, "dist_grad_sync_average: the gradients are not on the device");
            return false;
        }
        if (w != 1.0f)
            ctx->ops->scale_inplace(ctx, (int64_t)g->grad_floats, grads, (double)w);
        if (!ctx_ok(ctx)) {
            snprintf(err, err_cap, "dist_grad_sync_average: %s", ctx_error_message(ctx));
            return false;
        }
        return dist_allreduce_sum_f32_device(g->comm, grads, g->grad_floats, device_stream(ctx), err, err_cap);
    }
    if (w != 1.0f) {
        float *grads = g->ps->grad_block; /* (grad_floats) padding stays 0 */
        for (size_t i = 0; i < g->grad_floats; i++)
            grads[i] *= w;
    }
    return dist_allreduce_sum_f32_buckets(g->comm, g->ps->grad_block, g->offset, g->count, g->n_buckets, err,
                                          err_cap);
}

bool dist_broadcast_params(DistComm *comm, ParamSet *ps, int root, char *err, size_t err_cap)
{
    if (!ps || (ps->data_bytes && !ps->data_block)) {
        snprintf(err, err_cap, "dist_broadcast_params: the parameters are not allocated on the host");
        return false;
    }
    return dist_broadcast(comm, ps->data_block, ps->data_bytes, root, err, err_cap);
}

/* The Ctx.bn_sync hook: a host all-reduce of doubles over the communicator in `user`. */
static bool bn_sync_allreduce(void *user, double *buf, size_t n, char *err, size_t err_cap)
{
    return dist_allreduce_sum_f64((DistComm *)user, buf, n, err, err_cap);
}

void dist_install_bn_sync(Ctx *ctx, DistComm *comm)
{
    if (dist_world(comm) > 1)
        ctx_set_bn_sync(ctx, bn_sync_allreduce, comm);
    else
        ctx_set_bn_sync(ctx, NULL, NULL);
}
