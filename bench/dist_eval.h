/* dist_eval.h — sharded evaluation: every rank's exit logits gathered, in the one-rank order.
 *
 * Owns: the gather after a sharded pass (bench/train_data.h's shard options give each rank a slice
 * of every global batch): counts, then the rows (logits, labels, video indices, per-video costs)
 * padded to the largest count and all-gathered, then put back at their positions in the pass
 * (kernels/dist/dist_shard.h). Every rank ends with the whole pass, exactly what one rank computes;
 * rank 0 computes the metrics and writes.
 */
#ifndef FOCUSBENCH_DIST_EVAL_H
#define FOCUSBENCH_DIST_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "impl/train_loop.h"
#include "kernels/dist/dist.h"

/* e: this rank's rows in, the whole pass's out. sizes: the pass's global batch sizes. */
bool dist_gather_exit_logits(DistComm *comm, const int64_t *sizes, int n_batches, ExitLogits *e, char *err,
                             size_t err_cap);

#endif
