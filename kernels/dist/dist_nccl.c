/* dist_nccl.c — see dist.h: the NCCL backend (built when HAVE_NCCL).
 *
 * Owns: opening libnccl at run time (dlopen: the GPU machines carry NCCL inside PyTorch's wheel, with
 * no development link, and CI machines have none at all, so the binary must not need it to start),
 * the communicator (ncclCommInitRank on the device this process was given), and the host-buffer
 * collectives, staged through one growing device buffer on the communicator's own stream.
 *
 * Host staging: copy in (cudaMemcpyAsync), the collective, copy out, on one stream, then one
 * synchronize. Pageable host memory makes the copies synchronous to the host; kernels/dist/
 * dist_grads.c pins the gradient block (cudaHostRegister) so its buckets' copies run asynchronously.
 * No NVLink multicast (NVLS) is used here: the launcher sets NCCL_NVLS_ENABLE=0, and this file never
 * calls cuMulticastCreate.
 */
#include "dist.h"

#if HAVE_NCCL

#include <dlfcn.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

_Static_assert(sizeof(ncclUniqueId) == DIST_ID_BYTES, "DistId must hold an ncclUniqueId");

/* The few NCCL entry points used, resolved from the library once. */
static struct {
    bool tried, ok;
    char why[1024];
    void *lib;
    char path[512];
    ncclResult_t (*get_version)(int *);
    ncclResult_t (*get_unique_id)(ncclUniqueId *);
    ncclResult_t (*comm_init_rank)(ncclComm_t *, int, ncclUniqueId, int);
    ncclResult_t (*comm_destroy)(ncclComm_t);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*broadcast)(const void *, void *, size_t, ncclDataType_t, int, ncclComm_t, cudaStream_t);
    ncclResult_t (*all_gather)(const void *, void *, size_t, ncclDataType_t, ncclComm_t, cudaStream_t);
    const char *(*error_string)(ncclResult_t);
} nccl;

typedef struct {
    ncclComm_t comm;
    cudaStream_t stream;
    cudaStream_t copy_stream; /* bucket copies to the device, ahead of the reductions */
    void *dev;        /* staging buffer on the device, dev_bytes */
    size_t dev_bytes;
    int device;
} NcclState;

static void *try_open(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (h)
        snprintf(nccl.path, sizeof nccl.path, "%s", path);
    return h;
}

/* $FOCUSBENCH_NCCL_LIB, the dynamic loader's search path, then PyTorch's wheel (nvidia-nccl-cu*). */
static void *open_library(void)
{
    const char *env = getenv("FOCUSBENCH_NCCL_LIB");
    if (env && *env)
        return try_open(env);
    void *h = try_open("libnccl.so.2");
    if (!h)
        h = try_open("libnccl.so");
    static const char *const patterns[] = {
        "/usr/local/lib/python3*/dist-packages/nvidia/nccl/lib/libnccl.so.2",
        "/usr/local/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2",
        "/usr/lib/python3*/dist-packages/nvidia/nccl/lib/libnccl.so.2",
        "/opt/conda/lib/python3*/site-packages/nvidia/nccl/lib/libnccl.so.2",
    };
    for (size_t i = 0; !h && i < sizeof patterns / sizeof patterns[0]; i++) {
        glob_t g;
        if (glob(patterns[i], 0, NULL, &g) == 0) {
            for (size_t k = 0; !h && k < g.gl_pathc; k++)
                h = try_open(g.gl_pathv[k]);
        }
        globfree(&g);
    }
    return h;
}

static bool load(void)
{
    if (nccl.tried)
        return nccl.ok;
    nccl.tried = true;
    if (!(nccl.lib = open_library())) {
        const char *e = dlerror();
        snprintf(nccl.why, sizeof nccl.why, "cannot open libnccl.so.2 (%s): install NCCL, or point FOCUSBENCH_NCCL_LIB "
                 "at it (PyTorch's wheel has one under site-packages/nvidia/nccl/lib)", e ? e : "not found");
        return false;
    }
#define SYM(field, name)                                                                                    \
    do {                                                                                                    \
        *(void **)&nccl.field = dlsym(nccl.lib, name);                                                       \
        if (!nccl.field) {                                                                                  \
            snprintf(nccl.why, sizeof nccl.why, "%s has no %s (NCCL 2.x needed)", nccl.path, name);          \
            return false;                                                                                   \
        }                                                                                                   \
    } while (0)
    SYM(get_version, "ncclGetVersion");
    SYM(get_unique_id, "ncclGetUniqueId");
    SYM(comm_init_rank, "ncclCommInitRank");
    SYM(comm_destroy, "ncclCommDestroy");
    SYM(all_reduce, "ncclAllReduce");
    SYM(broadcast, "ncclBroadcast");
    SYM(all_gather, "ncclAllGather");
    SYM(error_string, "ncclGetErrorString");
#undef SYM
    nccl.ok = true;
    return true;
}

bool dist_nccl_available(char *why, size_t why_cap)
{
    if (load())
        return true;
    snprintf(why, why_cap, "%s", nccl.why);
    return false;
}

bool dist_nccl_unique_id(DistId *id, char *err, size_t err_cap)
{
    memset(id, 0, sizeof *id);
    if (!dist_nccl_available(err, err_cap))
        return false;
    ncclUniqueId u;
    ncclResult_t r = nccl.get_unique_id(&u);
    if (r != ncclSuccess) {
        snprintf(err, err_cap, "ncclGetUniqueId: %s", nccl.error_string(r));
        return false;
    }
    memcpy(id->bytes, &u, sizeof u);
    return true;
}

int dist_nccl_comm_version(const DistComm *c)
{
    (void)c;
    int v = 0;
    if (load())
        nccl.get_version(&v);
    return v;
}

void dist_nccl_destroy(DistComm *c)
{
    NcclState *s = c->impl;
    if (!s)
        return;
    if (s->comm)
        nccl.comm_destroy(s->comm);
    if (s->dev)
        cudaFree(s->dev);
    if (s->stream)
        cudaStreamDestroy(s->stream);
    if (s->copy_stream)
        cudaStreamDestroy(s->copy_stream);
    free(s);
    c->impl = NULL;
}

DistComm *dist_create_nccl(int rank, int world, int device, const DistId *id, char *err, size_t err_cap)
{
    if (world < 1 || rank < 0 || rank >= world || device < 0) {
        snprintf(err, err_cap, "dist_create_nccl: rank %d of %d on device %d (need 0 <= rank < world, device >= 0)",
                 rank, world, device);
        return NULL;
    }
    if (!dist_nccl_available(err, err_cap))
        return NULL;
    cudaError_t ce = cudaSetDevice(device);
    if (ce != cudaSuccess) {
        snprintf(err, err_cap, "rank %d: cudaSetDevice(%d): %s (each rank needs its own GPU; the launcher sets "
                 "CUDA_VISIBLE_DEVICES)", rank, device, cudaGetErrorString(ce));
        return NULL;
    }
    DistComm *c = calloc(1, sizeof *c);
    NcclState *s = calloc(1, sizeof *s);
    if (!c || !s) {
        free(c);
        free(s);
        snprintf(err, err_cap, "dist_create_nccl: out of memory");
        return NULL;
    }
    c->kind = DIST_BACKEND_NCCL;
    c->rank = rank;
    c->world = world;
    c->impl = s;
    s->device = device;
    if ((ce = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (ce = cudaStreamCreateWithFlags(&s->copy_stream, cudaStreamNonBlocking)) != cudaSuccess) {
        snprintf(err, err_cap, "rank %d: cudaStreamCreate: %s", rank, cudaGetErrorString(ce));
        dist_destroy(c);
        return NULL;
    }
    ncclUniqueId u;
    memcpy(&u, id->bytes, sizeof u);
    ncclResult_t r = nccl.comm_init_rank(&s->comm, world, u, rank);
    if (r != ncclSuccess) {
        s->comm = NULL;
        snprintf(err, err_cap, "rank %d of %d: ncclCommInitRank: %s (library %s)", rank, world, nccl.error_string(r),
                 nccl.path);
        dist_destroy(c);
        return NULL;
    }
    return c;
}

static bool staging(DistComm *c, size_t bytes, char *err, size_t err_cap)
{
    NcclState *s = c->impl;
    if (bytes <= s->dev_bytes)
        return true;
    if (s->dev)
        cudaFree(s->dev);
    s->dev = NULL;
    s->dev_bytes = 0;
    cudaError_t ce = cudaMalloc(&s->dev, bytes);
    if (ce != cudaSuccess) {
        s->dev = NULL;
        snprintf(err, err_cap, "rank %d: cudaMalloc of a %zu-byte staging buffer: %s", c->rank, bytes,
                 cudaGetErrorString(ce));
        return false;
    }
    s->dev_bytes = bytes;
    return true;
}

static bool cuda_ok(const DistComm *c, cudaError_t ce, const char *what, char *err, size_t err_cap)
{
    if (ce == cudaSuccess)
        return true;
    snprintf(err, err_cap, "rank %d: %s: %s", c->rank, what, cudaGetErrorString(ce));
    return false;
}

static bool nccl_ok(const DistComm *c, ncclResult_t r, const char *what, size_t n, char *err, size_t err_cap)
{
    if (r == ncclSuccess)
        return true;
    snprintf(err, err_cap, "rank %d of %d: %s of %zu elements: %s", c->rank, c->world, what, n, nccl.error_string(r));
    return false;
}

bool dist_nccl_allreduce_host(DistComm *c, void *buf, size_t n, bool f64, char *err, size_t err_cap)
{
    NcclState *s = c->impl;
    size_t bytes = n * (f64 ? sizeof(double) : sizeof(float));
    if (!staging(c, bytes, err, err_cap))
        return false;
    return cuda_ok(c, cudaMemcpyAsync(s->dev, buf, bytes, cudaMemcpyHostToDevice, s->stream), "copy to the device",
                   err, err_cap) &&
           nccl_ok(c, nccl.all_reduce(s->dev, s->dev, n, f64 ? ncclFloat64 : ncclFloat32, ncclSum, s->comm, s->stream),
                   "ncclAllReduce", n, err, err_cap) &&
           cuda_ok(c, cudaMemcpyAsync(buf, s->dev, bytes, cudaMemcpyDeviceToHost, s->stream), "copy to the host", err,
                   err_cap) &&
           cuda_ok(c, cudaStreamSynchronize(s->stream), "all-reduce", err, err_cap);
}

bool dist_nccl_broadcast_host(DistComm *c, void *buf, size_t bytes, int root, char *err, size_t err_cap)
{
    NcclState *s = c->impl;
    if (!staging(c, bytes, err, err_cap))
        return false;
    bool ok = true;
    if (c->rank == root)
        ok = cuda_ok(c, cudaMemcpyAsync(s->dev, buf, bytes, cudaMemcpyHostToDevice, s->stream), "copy to the device",
                     err, err_cap);
    return ok &&
           nccl_ok(c, nccl.broadcast(s->dev, s->dev, bytes, ncclUint8, root, s->comm, s->stream), "ncclBroadcast",
                   bytes, err, err_cap) &&
           cuda_ok(c, cudaMemcpyAsync(buf, s->dev, bytes, cudaMemcpyDeviceToHost, s->stream), "copy to the host", err,
                   err_cap) &&
           cuda_ok(c, cudaStreamSynchronize(s->stream), "broadcast", err, err_cap);
}

bool dist_nccl_allgather_host(DistComm *c, const void *send, size_t bytes, void *recv, char *err, size_t err_cap)
{
    NcclState *s = c->impl;
    size_t total = bytes * (size_t)c->world;
    if (!staging(c, total, err, err_cap))
        return false;
    unsigned char *mine = (unsigned char *)s->dev + bytes * (size_t)c->rank; /* in place: own slot */
    return cuda_ok(c, cudaMemcpyAsync(mine, send, bytes, cudaMemcpyHostToDevice, s->stream), "copy to the device",
                   err, err_cap) &&
           nccl_ok(c, nccl.all_gather(mine, s->dev, bytes, ncclUint8, s->comm, s->stream), "ncclAllGather", bytes, err,
                   err_cap) &&
           cuda_ok(c, cudaMemcpyAsync(recv, s->dev, total, cudaMemcpyDeviceToHost, s->stream), "copy to the host", err,
                   err_cap) &&
           cuda_ok(c, cudaStreamSynchronize(s->stream), "all-gather", err, err_cap);
}

bool dist_nccl_pin(DistComm *c, void *p, size_t bytes, bool pin)
{
    (void)c;
    if (pin)
        return cudaHostRegister(p, bytes, cudaHostRegisterDefault) == cudaSuccess;
    return cudaHostUnregister(p) == cudaSuccess;
}

bool dist_nccl_allreduce_buckets(DistComm *c, float *base, const size_t *offset, const size_t *count, int nb,
                                 char *err, size_t err_cap)
{
    NcclState *s = c->impl;
    size_t end = 0;
    for (int k = 0; k < nb; k++)
        if (offset[k] + count[k] > end)
            end = offset[k] + count[k];
    if (!staging(c, end * sizeof(float), err, err_cap))
        return false;
    float *dev = s->dev;
    cudaEvent_t *ev = calloc(nb > 0 ? (size_t)nb : 1, sizeof *ev); /* (nb) bucket k is on the device */
    if (!ev) {
        snprintf(err, err_cap, "rank %d: out of memory for %d bucket events", c->rank, nb);
        return false;
    }
    bool ok = true;
    int made = 0;
    for (int k = 0; ok && k < nb; k++, made++)
        ok = cuda_ok(c, cudaEventCreateWithFlags(&ev[k], cudaEventDisableTiming), "cudaEventCreate", err, err_cap);
    /* every copy in first (copy stream), each reduction waiting only for its own bucket */
    for (int k = 0; ok && k < nb; k++)
        ok = cuda_ok(c, cudaMemcpyAsync(dev + offset[k], base + offset[k], count[k] * sizeof(float),
                                        cudaMemcpyHostToDevice, s->copy_stream), "bucket copy to the device", err,
                     err_cap) &&
             cuda_ok(c, cudaEventRecord(ev[k], s->copy_stream), "cudaEventRecord", err, err_cap);
    for (int k = 0; ok && k < nb; k++)
        ok = cuda_ok(c, cudaStreamWaitEvent(s->stream, ev[k], 0), "cudaStreamWaitEvent", err, err_cap) &&
             nccl_ok(c, nccl.all_reduce(dev + offset[k], dev + offset[k], count[k], ncclFloat32, ncclSum, s->comm,
                                        s->stream), "ncclAllReduce (gradient bucket)", count[k], err, err_cap) &&
             cuda_ok(c, cudaMemcpyAsync(base + offset[k], dev + offset[k], count[k] * sizeof(float),
                                        cudaMemcpyDeviceToHost, s->stream), "bucket copy to the host", err, err_cap);
    /* wait for both streams even after an error, so no copy is still writing into base */
    cudaError_t a = cudaStreamSynchronize(s->copy_stream), b = cudaStreamSynchronize(s->stream);
    if (ok)
        ok = cuda_ok(c, a != cudaSuccess ? a : b, "bucketed all-reduce", err, err_cap);
    for (int k = 0; k < made; k++)
        cudaEventDestroy(ev[k]);
    free(ev);
    return ok;
}

bool dist_nccl_allreduce_device(DistComm *c, float *dev_buf, size_t n, void *stream, char *err, size_t err_cap)
{
    NcclState *s = c->impl;
    cudaStream_t st = stream ? (cudaStream_t)stream : s->stream;
    return nccl_ok(c, nccl.all_reduce(dev_buf, dev_buf, n, ncclFloat32, ncclSum, s->comm, st), "ncclAllReduce", n, err,
                   err_cap) &&
           cuda_ok(c, cudaStreamSynchronize(st), "device all-reduce", err, err_cap);
}

#else
/* Built without NCCL: dist.c answers every NCCL call with "built without NCCL". */
typedef int dist_nccl_unused;
#endif
