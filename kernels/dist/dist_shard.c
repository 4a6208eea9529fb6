/* dist_shard.c — see dist_shard.h. */
#include "dist_shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dist_shard_range(int64_t n, int world, int rank, int64_t *lo, int64_t *hi)
{
    if (world < 1 || rank < 0 || rank >= world || n <= 0) {
        *lo = *hi = 0;
        return;
    }
    /* base items each, the first `extra` ranks one more: sizes differ by at most one */
    int64_t base = n / world, extra = n % world;
    *lo = rank * base + (rank < extra ? rank : extra);
    *hi = *lo + base + (rank < extra ? 1 : 0);
}

int64_t dist_shard_count(const int64_t *batch_sizes, int n_batches, int world, int rank)
{
    int64_t total = 0;
    for (int k = 0; k < n_batches; k++) {
        int64_t lo, hi;
        dist_shard_range(batch_sizes[k], world, rank, &lo, &hi);
        total += hi - lo;
    }
    return total;
}

void dist_shard_positions(const int64_t *batch_sizes, int n_batches, int world, int rank, int64_t *pos)
{
    int64_t offset = 0, j = 0;
    for (int k = 0; k < n_batches; k++) {
        int64_t lo, hi;
        dist_shard_range(batch_sizes[k], world, rank, &lo, &hi);
        for (int64_t i = lo; i < hi; i++)
            pos[j++] = offset + i;
        offset += batch_sizes[k];
    }
}

bool dist_shard_merge(const int64_t *batch_sizes, int n_batches, int world, const void *const *src,
                      const int64_t *counts, size_t row_bytes, void *dst, char *err, size_t err_cap)
{
    for (int r = 0; r < world; r++) {
        int64_t want = dist_shard_count(batch_sizes, n_batches, world, r);
        if (counts[r] != want) {
            snprintf(err, err_cap, "dist_shard_merge: rank %d has %lld rows, but its shards of the %d batches hold "
                     "%lld", r, (long long)counts[r], n_batches, (long long)want);
            return false;
        }
    }
    for (int r = 0; r < world; r++) {
        int64_t *pos = malloc((size_t)(counts[r] > 0 ? counts[r] : 1) * sizeof *pos); /* (counts[r]) */
        if (!pos) {
            snprintf(err, err_cap, "dist_shard_merge: out of memory");
            return false;
        }
        dist_shard_positions(batch_sizes, n_batches, world, r, pos);
        for (int64_t i = 0; i < counts[r]; i++)
            memcpy((char *)dst + (size_t)pos[i] * row_bytes, (const char *)src[r] + (size_t)i * row_bytes, row_bytes);
        free(pos);
    }
    return true;
}
