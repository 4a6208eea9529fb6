/* dist.h — the communicator of data-parallel runs: rank, world size and the collectives.
 *
 * Owns: a DistComm handle with two backends behind one interface:
 *   local  one rank, no library at all: every collective is the identity (an all-reduce leaves the
 *          buffer as it is, an all-gather copies, a broadcast does nothing). CPU builds and CI run
 *          the same data-parallel code through it, and a one-rank run is bit-identical to a plain one.
 *   nccl   one process per GPU, NCCL's communicator built from a unique id (ncclGetUniqueId on rank
 *          0, passed to the others by kernels/dist/dist_rendezvous.h, then ncclCommInitRank). Built
 *          when HAVE_NCCL (nccl.h found at build time, CUDA backend on); the library itself is
 *          opened at run time (dlopen of libnccl.so.2: $FOCUSBENCH_NCCL_LIB, the loader's path, or
 *          PyTorch's wheel under site-packages/nvidia/nccl/lib), so the binary still starts where
 *          NCCL is missing and says so when a run asks for it.
 *
 * Training runs on the CPU or on a GPU (impl/train_loop.h, kernels/device.h). The host collectives
 * below take HOST buffers (a CPU run's gradients): the NCCL backend stages them through a device
 * buffer on its own CUDA stream (copy in, collective, copy out). dist_allreduce_sum_f32_device is the
 * entry for device-resident data (a GPU run's gradients and batch-norm buffers, no staging).
 *
 * Every call is collective: all ranks call it in the same order with the same sizes. Errors are
 * returned with a message naming the call, the sizes and the rank.
 */
#ifndef FOCUSBENCH_DIST_H
#define FOCUSBENCH_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { DIST_ID_BYTES = 128 }; /* sizeof(ncclUniqueId) */

typedef struct {
    unsigned char bytes[DIST_ID_BYTES];
} DistId;

typedef enum { DIST_BACKEND_LOCAL = 0, DIST_BACKEND_NCCL = 1 } DistBackendKind;

typedef struct DistComm DistComm;

/* The one-rank communicator (never fails except out of memory). */
DistComm *dist_create_local(void);

/* Whether this build has the NCCL backend and the library opens; false with the reason. */
bool dist_nccl_available(char *why, size_t why_cap);
/* ncclGetUniqueId (rank 0 only; the id must reach every rank before they create the communicator). */
bool dist_nccl_unique_id(DistId *id, char *err, size_t err_cap);
/* cudaSetDevice(device), then ncclCommInitRank(world, id, rank); a stream and staging buffer of
 * its own. NULL with a message on failure. */
DistComm *dist_create_nccl(int rank, int world, int device, const DistId *id, char *err, size_t err_cap);

void dist_destroy(DistComm *c);

int dist_rank(const DistComm *c);  /* 0 for NULL */
int dist_world(const DistComm *c); /* 1 for NULL */
DistBackendKind dist_backend(const DistComm *c);
const char *dist_backend_name(const DistComm *c);

/* In-place sums over ranks of host arrays (n elements). */
bool dist_allreduce_sum_f32(DistComm *c, float *buf, size_t n, char *err, size_t err_cap);
bool dist_allreduce_sum_f64(DistComm *c, double *buf, size_t n, char *err, size_t err_cap);
/* Rank root's `bytes` bytes of buf overwrite every other rank's. */
bool dist_broadcast(DistComm *c, void *buf, size_t bytes, int root, char *err, size_t err_cap);
/* recv (world × bytes) gets every rank's `bytes` of send, rank order. send and recv must not overlap. */
bool dist_allgather(DistComm *c, const void *send, size_t bytes, void *recv, char *err, size_t err_cap);
/* Returns when every rank has called it. */
bool dist_barrier(DistComm *c, char *err, size_t err_cap);

/* In-place sum of a DEVICE array of n floats, enqueued on `stream` (a cudaStream_t; NULL: the
 * communicator's own) and waited for. The local backend returns at once (identity). */
bool dist_allreduce_sum_f32_device(DistComm *c, float *dev_buf, size_t n, void *stream, char *err, size_t err_cap);

/* In-place sums of n_buckets slices of one host array: bucket k is base[offset[k] … offset[k] +
 * count[k]), launched in the given order. The NCCL backend pipelines them: bucket k+1's copy to the
 * device (a second stream) runs while bucket k is being reduced. */
bool dist_allreduce_sum_f32_buckets(DistComm *c, float *base, const size_t *offset, const size_t *count,
                                    int n_buckets, char *err, size_t err_cap);
/* Page-locks a host range for asynchronous copies (cudaHostRegister); a no-op (true) on the local
 * backend. dist_unpin_host undoes it. */
bool dist_pin_host(DistComm *c, void *p, size_t bytes);
void dist_unpin_host(DistComm *c, void *p);

/* Whether every rank holds the same n bytes (a hash of each rank's bytes, all-gathered): after
 * data-parallel training every replica must hold the same weights. *first_differing gets the first
 * rank whose bytes differ from rank 0's, or −1. False only when the collective fails. */
bool dist_replicas_agree(DistComm *c, const void *bytes, size_t n, int *first_differing, char *err, size_t err_cap);

/* The NCCL backend's library version (e.g. 22703), 0 on the local backend. */
int dist_nccl_version(const DistComm *c);

/* ---- pieces the backends share (dist.c) -------------------------------------------------------- */

struct DistComm {
    DistBackendKind kind;
    int rank, world;
    void *impl; /* the NCCL backend's state */
};

#if HAVE_NCCL
/* dist_nccl.c: the NCCL backend's half of each call above (c->kind == DIST_BACKEND_NCCL). */
bool dist_nccl_allreduce_host(DistComm *c, void *buf, size_t n, bool f64, char *err, size_t err_cap);
bool dist_nccl_broadcast_host(DistComm *c, void *buf, size_t bytes, int root, char *err, size_t err_cap);
bool dist_nccl_allgather_host(DistComm *c, const void *send, size_t bytes, void *recv, char *err, size_t err_cap);
bool dist_nccl_allreduce_buckets(DistComm *c, float *base, const size_t *offset, const size_t *count, int nb,
                                 char *err, size_t err_cap);
bool dist_nccl_pin(DistComm *c, void *p, size_t bytes, bool pin);
bool dist_nccl_allreduce_device(DistComm *c, float *dev_buf, size_t n, void *stream, char *err, size_t err_cap);
void dist_nccl_destroy(DistComm *c);
int dist_nccl_comm_version(const DistComm *c);
#endif

#endif
