/* dist_shard.h — which part of a global batch, and of an evaluation pass, each rank takes.
 *
 * Owns: the split of n items over `world` ranks (contiguous, sizes differing by at most one, the
 * first n mod world ranks one larger), the positions in a whole pass that a rank's items had (each
 * global batch split on its own, so a pass of batches B0, B1, … gives rank r the slice of every
 * batch), and the merge of per-rank results back into the order a one-rank pass would have had
 * (what sharded `eval` gathers on rank 0, so its metrics are those of a single-rank run).
 */
#ifndef FOCUSBENCH_DIST_SHARD_H
#define FOCUSBENCH_DIST_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Rank r's items of n: [*lo, *hi). */
void dist_shard_range(int64_t n, int world, int rank, int64_t *lo, int64_t *hi);

/* How many items rank r has over batches of the given global sizes. */
int64_t dist_shard_count(const int64_t *batch_sizes, int n_batches, int world, int rank);

/* Global positions (within the pass, batches concatenated) of rank r's items in the order the rank
 * saw them; pos has dist_shard_count(...) entries. */
void dist_shard_positions(const int64_t *batch_sizes, int n_batches, int world, int rank, int64_t *pos);

/* Rows of `row_bytes` from every rank (rank r's rows at src[r], in its own order) written to dst at
 * their global positions. False (with a message) when the counts do not match the batches. */
bool dist_shard_merge(const int64_t *batch_sizes, int n_batches, int world, const void *const *src,
                      const int64_t *counts, size_t row_bytes, void *dst, char *err, size_t err_cap);

#endif
