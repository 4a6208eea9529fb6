/* dist_grads.h — data parallelism over a ParamSet: gradient buckets, their averaged all-reduce,
 * the initial weights from rank 0, and the batch-norm statistics option.
 *
 * Owns: the buckets (kernels/params.h keeps every gradient in ONE block, declaration order, each
 * tensor 64-byte aligned; a bucket is a contiguous slice of that block covering whole tensors, at
 * most cap_bytes unless one tensor alone is larger, padding included so the buckets tile the block
 * exactly), built in REVERSE declaration order (the backward pass produces the last layers'
 * gradients first, as PyTorch DDP buckets them); the per-step gradient average; and the buffers.
 *
 * Averaging: rank r, with b_r clips of a global batch of B = Σ b_r, scales its gradient (the mean over
 * its own clips) by b_r / B and the buckets are summed over ranks: the gradient of the mean loss
 * over the whole global batch, whatever the split. One rank: b_r / B = 1 and nothing is touched, so
 * a one-rank run is bit-identical to a plain run.
 *
 * Overlap: the tape runs the backward pass as one call on the CPU (kernels/tape.h), so there is no
 * per-tensor "gradient ready" hook to start a bucket from; the buckets are launched right after
 * backward, in reverse declaration order, and pipelined among themselves (bucket k+1 copied to the
 * device while bucket k is reduced; dist.h). Overlapping with backward needs such a hook in the tape.
 *
 * Batch norm: by default the statistics that normalise a batch are each rank's own (as the
 * official DistributedDataParallel run), and the running statistics are rank 0's (DDP broadcasts
 * rank 0's buffers; rank 0 writes the checkpoints). Synchronised batch norm (launch --sync-bn,
 * torch.nn.SyncBatchNorm) is dist_install_bn_sync: it gives the context a hook (Ctx.bn_sync)
 * through which every training-mode op_batch_norm sums its per-channel figures over the ranks,
 * so each layer normalises with the mean and variance of the WHOLE global batch, its backward
 * uses the global sums, and the running statistics are updated with the global statistics — the
 * same values on every rank, so an N-rank run equals a one-rank run of the same global batch up to
 * float rounding (kernels/ops_norm.c gives the formulas and the scaling of the gradient sums that
 * makes this hold with this file's b_r / B averaging, equal shards or not). It replaced an earlier
 * option that only averaged the running statistics after each step.
 */
#ifndef FOCUSBENCH_DIST_GRADS_H
#define FOCUSBENCH_DIST_GRADS_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/context.h"
#include "kernels/dist/dist.h"
#include "kernels/params.h"

enum { DIST_BUCKET_DEFAULT_BYTES = 25 << 20 }; /* PyTorch DDP's bucket_cap_mb = 25 */

typedef struct {
    size_t offset, count; /* floats of ps->grad_block: [offset, offset + count) */
    int first, last;      /* the ParamSet items it covers (first <= last), declaration indices */
} DistBucket;

/* Buckets of ps's gradients, at most cap_bytes each (a larger tensor gets a bucket of its own).
 * *n gets the count; NULL with *n = 0 when there are no gradients. free() the result. */
DistBucket *dist_make_buckets(const ParamSet *ps, size_t cap_bytes, int *n);

typedef struct DistGradSync DistGradSync;

/* For comm's ranks and ps (allocated on the CPU, with gradients). */
DistGradSync *dist_grad_sync_create(DistComm *comm, ParamSet *ps, size_t bucket_bytes, char *err, size_t err_cap);
void dist_grad_sync_destroy(DistGradSync *g);
int dist_grad_sync_buckets(const DistGradSync *g, const DistBucket **buckets);

/* The gradients now live on ctx's device (kernels/device.h run_device_attach; NULL or a CPU context:
 * the host). On a device the average is one NCCL all-reduce over the whole gradient block on ctx's
 * stream (no host staging). */
void dist_grad_sync_set_device(DistGradSync *g, Ctx *ctx);

/* After backward: averages the gradients over ranks (local_clips of this rank's shard, see above);
 * *global_clips (may be NULL) gets B. */
bool dist_grad_sync_average(DistGradSync *g, int local_clips, int *global_clips, char *err, size_t err_cap);

/* Every tensor of ps (parameters and buffers) from rank `root`. */
bool dist_broadcast_params(DistComm *comm, ParamSet *ps, int root, char *err, size_t err_cap);

/* Synchronised batch norm on ctx over comm's ranks (see above): installs the hook when the world
 * has more than one rank, removes it otherwise (one rank: the plain op, bit-identical to a run
 * without a communicator). comm must outlive the hook (ctx_set_bn_sync(ctx, NULL, NULL) removes
 * it). Every rank must install it, or none: each batch norm is a collective then. */
void dist_install_bn_sync(Ctx *ctx, DistComm *comm);

#endif
