/* dist.c — see dist.h: the backend-independent half of the communicator and the local backend. */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

DistComm *dist_create_local(void)
{
    DistComm *c = calloc(1, sizeof *c);
    if (c) {
        c->kind = DIST_BACKEND_LOCAL;
        c->rank = 0;
        c->world = 1;
    }
    return c;
}

void dist_destroy(DistComm *c)
{
    if (!c)
        return;
#if HAVE_NCCL
    if (c->kind == DIST_BACKEND_NCCL)
        dist_nccl_destroy(c);
#endif
    free(c);
}

int dist_rank(const DistComm *c) { return c ? c->rank : 0; }
int dist_world(const DistComm *c) { return c ? c->world : 1; }
DistBackendKind dist_backend(const DistComm *c) { return c ? c->kind : DIST_BACKEND_LOCAL; }
const char *dist_backend_name(const DistComm *c) { return dist_backend(c) == DIST_BACKEND_NCCL ? "nccl" : "local"; }

int dist_nccl_version(const DistComm *c)
{
#if HAVE_NCCL
    if (c && c->kind == DIST_BACKEND_NCCL)
        return dist_nccl_comm_version(c);
#endif
    (void)c;
    return 0;
}

/* The local backend is one rank: every rank's contribution is this rank's own. */
static bool is_local(const DistComm *c) { return !c || c->kind == DIST_BACKEND_LOCAL; }

bool dist_allreduce_sum_f32(DistComm *c, float *buf, size_t n, char *err, size_t err_cap)
{
    if (n && !buf) {
        snprintf(err, err_cap, "dist_allreduce_sum_f32: NULL buffer of %zu floats (rank %d)", n, dist_rank(c));
        return false;
    }
    if (is_local(c) || n == 0)
        return true;
#if HAVE_NCCL
    return dist_nccl_allreduce_host(c, buf, n, false, err, err_cap);
#else
    snprintf(err, err_cap, "dist_allreduce_sum_f32: built without NCCL");
    return false;
#endif
}

bool dist_allreduce_sum_f64(DistComm *c, double *buf, size_t n, char *err, size_t err_cap)
{
    if (n && !buf) {
        snprintf(err, err_cap, "dist_allreduce_sum_f64: NULL buffer of %zu doubles (rank %d)", n, dist_rank(c));
        return false;
    }
    if (is_local(c) || n == 0)
        return true;
#if HAVE_NCCL
    return dist_nccl_allreduce_host(c, buf, n, true, err, err_cap);
#else
    snprintf(err, err_cap, "dist_allreduce_sum_f64: built without NCCL");
    return false;
#endif
}

bool dist_broadcast(DistComm *c, void *buf, size_t bytes, int root, char *err, size_t err_cap)
{
    if (root < 0 || root >= dist_world(c) || (bytes && !buf)) {
        snprintf(err, err_cap, "dist_broadcast: root %d of %d ranks, %zu bytes at %p (need 0 <= root < world and a "
                 "buffer)", root, dist_world(c), bytes, buf);
        return false;
    }
    if (is_local(c) || bytes == 0)
        return true;
#if HAVE_NCCL
    return dist_nccl_broadcast_host(c, buf, bytes, root, err, err_cap);
#else
    snprintf(err, err_cap, "dist_broadcast: built without NCCL");
    return false;
#endif
}

bool dist_allgather(DistComm *c, const void *send, size_t bytes, void *recv, char *err, size_t err_cap)
{
    if (bytes && (!send || !recv)) {
        snprintf(err, err_cap, "dist_allgather: NULL send or recv buffer for %zu bytes per rank (rank %d)", bytes,
                 dist_rank(c));
        return false;
    }
    if (bytes == 0)
        return true;
    if (is_local(c)) {
        memmove(recv, send, bytes);
        return true;
    }
#if HAVE_NCCL
    return dist_nccl_allgather_host(c, send, bytes, recv, err, err_cap);
#else
    snprintf(err, err_cap, "dist_allgather: built without NCCL");
    return false;
#endif
}

bool dist_barrier(DistComm *c, char *err, size_t err_cap)
{
    float one = 1.0f; /* an all-reduce completes only when every rank has joined it */
    return dist_allreduce_sum_f32(c, &one, 1, err, err_cap);
}

bool dist_allreduce_sum_f32_device(DistComm *c, float *dev_buf, size_t n, void *stream, char *err, size_t err_cap)
{
    if (is_local(c) || n == 0)
        return true;
#if HAVE_NCCL
    return dist_nccl_allreduce_device(c, dev_buf, n, stream, err, err_cap);
#else
    (void)dev_buf, (void)stream;
    snprintf(err, err_cap, "dist_allreduce_sum_f32_device: built without NCCL");
    return false;
#endif
}

bool dist_allreduce_sum_f32_buckets(DistComm *c, float *base, const size_t *offset, const size_t *count,
                                    int n_buckets, char *err, size_t err_cap)
{
    if (n_buckets < 0 || (n_buckets && (!base || !offset || !count))) {
        snprintf(err, err_cap, "dist_allreduce_sum_f32_buckets: %d buckets without a base, offsets or counts (rank %d)",
                 n_buckets, dist_rank(c));
        return false;
    }
    if (is_local(c) || n_buckets == 0)
        return true;
#if HAVE_NCCL
    return dist_nccl_allreduce_buckets(c, base, offset, count, n_buckets, err, err_cap);
#else
    snprintf(err, err_cap, "dist_allreduce_sum_f32_buckets: built without NCCL");
    return false;
#endif
}

bool dist_pin_host(DistComm *c, void *p, size_t bytes)
{
#if HAVE_NCCL
    if (!is_local(c) && p && bytes)
        return dist_nccl_pin(c, p, bytes, true);
#endif
    (void)c, (void)p, (void)bytes;
    return true;
}

void dist_unpin_host(DistComm *c, void *p)
{
#if HAVE_NCCL
    if (!is_local(c) && p)
        dist_nccl_pin(c, p, 0, false);
#endif
    (void)c, (void)p;
}

bool dist_replicas_agree(DistComm *c, const void *bytes, size_t n, int *first_differing, char *err, size_t err_cap)
{
    *first_differing = -1;
    /* FNV-1a over the bytes: equal replicas hash equal; a differing one almost surely not */
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    int world = dist_world(c);
    uint64_t *all = calloc((size_t)world, sizeof *all); /* (world) every rank's hash */
    if (!all) {
        snprintf(err, err_cap, "dist_replicas_agree: out of memory");
        return false;
    }
    bool ok = dist_allgather(c, &h, sizeof h, all, err, err_cap);
    for (int r = 1; ok && r < world && *first_differing < 0; r++)
        if (all[r] != all[0])
            *first_differing = r;
    free(all);
    return ok;
}

#if !HAVE_NCCL
bool dist_nccl_available(char *why, size_t why_cap)
{
    snprintf(why, why_cap, "this focusbench was built without NCCL (needs the CUDA backend and nccl.h at build "
             "time; see `make features`)");
    return false;
}

bool dist_nccl_unique_id(DistId *id, char *err, size_t err_cap)
{
    memset(id, 0, sizeof *id);
    return dist_nccl_available(err, err_cap);
}

DistComm *dist_create_nccl(int rank, int world, int device, const DistId *id, char *err, size_t err_cap)
{
    (void)rank, (void)world, (void)device, (void)id;
    dist_nccl_available(err, err_cap);
    return NULL;
}
#endif
