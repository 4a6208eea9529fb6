/* test_dist_gpu.c — the NCCL backend with one rank on the device: library, unique id, communicator,
 * the staged host collectives (exact: one rank's sum is its own value) and a device all-reduce. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dist/dist.h"
#include "tests/test_util.h"

#if HAVE_NCCL
#include <cuda_runtime_api.h>
#endif

static void test_nccl_one_rank(void **state)
{
    (void)state;
#if !HAVE_NCCL
    skip(); /* built without NCCL: nothing to run */
#else
    char err[1024];
    if (!dist_nccl_available(err, sizeof err))
        fail_msg("%s", err);
    DistId id;
    if (!dist_nccl_unique_id(&id, err, sizeof err))
        fail_msg("%s", err);
    DistComm *c = dist_create_nccl(0, 1, 0, &id, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    printf("  NCCL %d, backend %s, rank %d of %d\n", dist_nccl_version(c), dist_backend_name(c), dist_rank(c),
           dist_world(c));
    assert_int_equal(dist_world(c), 1);
    enum { N = 100003 };
    float *h = malloc(N * sizeof *h), *h0 = malloc(N * sizeof *h0), *g = malloc(N * sizeof *g);
    for (int i = 0; i < N; i++)
        h[i] = h0[i] = (float)((i * 7919) % 1000) * 0.001f - 0.5f;
    assert_true(dist_allreduce_sum_f32(c, h, N, err, sizeof err));
    assert_memory_equal(h, h0, N * sizeof *h);
    double d[3] = {1.5, -2.25, 1e-300};
    assert_true(dist_allreduce_sum_f64(c, d, 3, err, sizeof err));
    assert_true(d[0] == 1.5 && d[1] == -2.25 && d[2] == 1e-300);
    assert_true(dist_broadcast(c, h, N * sizeof *h, 0, err, sizeof err));
    assert_memory_equal(h, h0, N * sizeof *h);
    assert_true(dist_allgather(c, h, N * sizeof *h, g, err, sizeof err));
    assert_memory_equal(g, h0, N * sizeof *h);
    size_t off[3] = {0, 40000, 40016}, cnt[3] = {40000, 16, N - 40016};
    assert_true(dist_allreduce_sum_f32_buckets(c, h, off, cnt, 3, err, sizeof err));
    assert_memory_equal(h, h0, N * sizeof *h);
    /* on device memory */
    float *dev = NULL;
    assert_int_equal(cudaMalloc((void **)&dev, N * sizeof *dev), cudaSuccess);
    assert_int_equal(cudaMemcpy(dev, h0, N * sizeof *dev, cudaMemcpyHostToDevice), cudaSuccess);
    if (!dist_allreduce_sum_f32_device(c, dev, N, NULL, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(cudaMemcpy(g, dev, N * sizeof *dev, cudaMemcpyDeviceToHost), cudaSuccess);
    assert_memory_equal(g, h0, N * sizeof *g);
    cudaFree(dev);
    assert_true(dist_barrier(c, err, sizeof err));
    dist_destroy(c);
    free(h);
    free(h0);
    free(g);
#endif
}

TEST_GROUP(dist_gpu, cmocka_unit_test(test_nccl_one_rank))
