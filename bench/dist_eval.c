/* dist_eval.c — see dist_eval.h. */
#include "dist_eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dist/dist_shard.h"

/* One array of rows (row_bytes each, n_local of them) gathered and merged into a new (total) array. */
static void *gather_rows(DistComm *comm, const void *local, int64_t n_local, const int64_t *counts, int64_t max_count,
                         int64_t total, size_t row_bytes, const int64_t *sizes, int n_batches, char *err,
                         size_t err_cap)
{
    int world = dist_world(comm);
    size_t slot = (size_t)max_count * row_bytes;
    unsigned char *send = calloc(slot ? slot : 1, 1);                 /* (max_count rows) */
    unsigned char *all = calloc(slot ? slot * (size_t)world : 1, 1);  /* (world, max_count rows) */
    void *out = calloc(total > 0 ? (size_t)total * row_bytes : 1, 1); /* (total rows) */
    const void **src = calloc((size_t)world, sizeof *src);
    bool ok = send && all && out && src;
    if (!ok)
        snprintf(err, err_cap, "eval gather: out of memory for %lld rows", (long long)total);
    if (ok && n_local)
        memcpy(send, local, (size_t)n_local * row_bytes);
    ok = ok && dist_allgather(comm, send, slot, all, err, err_cap);
    for (int r = 0; ok && r < world; r++)
        src[r] = all + (size_t)r * slot;
    ok = ok && dist_shard_merge(sizes, n_batches, world, src, counts, row_bytes, out, err, err_cap);
    free(send);
    free(all);
    free(src);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

bool dist_gather_exit_logits(DistComm *comm, const int64_t *sizes, int n_batches, ExitLogits *e, char *err,
                             size_t err_cap)
{
    int world = dist_world(comm);
    if (world == 1)
        return true; /* the one rank's rows are the pass */
    int64_t *counts = calloc((size_t)world, sizeof *counts); /* (world) */
    if (!counts) {
        snprintf(err, err_cap, "eval gather: out of memory");
        return false;
    }
    int64_t n = e->n;
    bool ok = dist_allgather(comm, &n, sizeof n, counts, err, err_cap);
    int64_t total = 0, max_count = 0;
    for (int r = 0; ok && r < world; r++) {
        total += counts[r];
        if (counts[r] > max_count)
            max_count = counts[r];
    }
    const size_t lrow = (size_t)e->K * e->C * sizeof(float);
    float *logits = ok ? gather_rows(comm, e->exit_logits, n, counts, max_count, total, lrow, sizes, n_batches, err,
                                     err_cap) : NULL;
    int32_t *labels = logits ? gather_rows(comm, e->labels, n, counts, max_count, total, sizeof(int32_t), sizes,
                                           n_batches, err, err_cap) : NULL;
    int32_t *videos = labels ? gather_rows(comm, e->videos, n, counts, max_count, total, sizeof(int32_t), sizes,
                                           n_batches, err, err_cap) : NULL;
    double *gf = NULL;
    ok = videos != NULL;
    if (ok && e->sample_gflops) {
        gf = gather_rows(comm, e->sample_gflops, n, counts, max_count, total, (size_t)e->K * sizeof(double), sizes,
                         n_batches, err, err_cap);
        ok = gf != NULL;
    }
    free(counts);
    if (!ok) {
        free(logits);
        free(labels);
        free(videos);
        return false;
    }
    free(e->exit_logits);
    free(e->labels);
    free(e->videos);
    free(e->sample_gflops);
    e->exit_logits = logits;
    e->labels = labels;
    e->videos = videos;
    e->sample_gflops = gf;
    e->n = total;
    return true;
}
