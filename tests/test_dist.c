/* test_dist.c — data parallelism without GPUs: the one-rank communicator, gradient buckets, shard
 * splits and their merge, one-rank data-parallel training against plain training, synchronised
 * batch norm (ranks as threads of one process, summing through the context's hook), the
 * launcher's options and rank environments, and the id rendezvous (file, and TCP between two
 * processes). */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include "baselines/registry.h"
#include "bench/dist_eval.h"
#include "bench/dist_launch.h"
#include "bench/train_data.h"
#include "impl/presets.h"
#include "impl/train_loop.h"
#include "kernels/dist/dist.h"
#include "kernels/dist/dist_grads.h"
#include "kernels/dist/dist_rendezvous.h"
#include "kernels/dist/dist_shard.h"
#include "kernels/params.h"
#include "kernels/tape.h"
#include "tests/test_util.h"

static void test_local_collectives_exact(void **state)
{
    (void)state;
    char err[256];
    DistComm *c = dist_create_local();
    assert_non_null(c);
    assert_int_equal(dist_rank(c), 0);
    assert_int_equal(dist_world(c), 1);
    assert_string_equal(dist_backend_name(c), "local");
    float f[37], f0[37];
    double d[5] = {1e300, -0.0, 3.25, 1e-310, 7}, d0[5];
    RngStream r = rng_stream(5, 0, 0, 0);
    for (int i = 0; i < 37; i++)
        f[i] = f0[i] = rng_uniform(&r, (uint64_t)i) * 2e6f - 1e6f;
    memcpy(d0, d, sizeof d);
    assert_true(dist_allreduce_sum_f32(c, f, 37, err, sizeof err));
    assert_memory_equal(f, f0, sizeof f);
    assert_true(dist_allreduce_sum_f64(c, d, 5, err, sizeof err));
    assert_memory_equal(d, d0, sizeof d);
    assert_true(dist_broadcast(c, f, sizeof f, 0, err, sizeof err));
    assert_memory_equal(f, f0, sizeof f);
    float g[37];
    assert_true(dist_allgather(c, f, sizeof f, g, err, sizeof err));
    assert_memory_equal(g, f0, sizeof g);
    size_t off[2] = {0, 20}, cnt[2] = {20, 17};
    assert_true(dist_allreduce_sum_f32_buckets(c, f, off, cnt, 2, err, sizeof err));
    assert_memory_equal(f, f0, sizeof f);
    assert_true(dist_barrier(c, err, sizeof err));
    /* a root outside the world is refused with a message */
    assert_false(dist_broadcast(c, f, sizeof f, 1, err, sizeof err));
    assert_non_null(strstr(err, "root 1 of 1"));
    /* NULL (no communicator) behaves as one rank */
    assert_int_equal(dist_world(NULL), 1);
    assert_true(dist_allreduce_sum_f32(NULL, f, 37, err, sizeof err));
#if !HAVE_NCCL
    assert_false(dist_nccl_available(err, sizeof err));
    assert_non_null(strstr(err, "without NCCL"));
    DistId id;
    assert_null(dist_create_nccl(0, 1, 0, &id, err, sizeof err));
#endif
    dist_destroy(c);
}

/* A ParamSet of odd shapes, some buffers (no gradient) among them. */
static ParamSet *odd_params(void)
{
    ParamSet *ps = params_create();
    const int64_t shapes[][2] = {{3, 5}, {7, 1}, {1, 1}, {64, 33}, {2, 2}, {129, 1}, {5, 5}, {16, 16}};
    char name[32], err[128];
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "p%d.weight", i);
        assert_non_null(params_declare(ps, name, DTYPE_F32, 2, shapes[i], i != 2 && i != 5));
    }
    assert_true(params_allocate(ps, BACKEND_CPU, true, err, sizeof err));
    return ps;
}

static void test_buckets_cover_every_gradient_once(void **state)
{
    (void)state;
    ParamSet *ps = odd_params();
    size_t total = 0; /* floats in the gradient block: the end of the last gradient, aligned */
    for (int i = 0; i < ps->n; i++) {
        Tensor *g = ps->items[i]->grad;
        if (g) {
            size_t end = (size_t)((float *)g->data - (float *)ps->grad_block) + (size_t)tensor_numel(g);
            end = (end + 15) / 16 * 16;
            total = end > total ? end : total;
        }
    }
    const size_t caps[] = {1, 64, 200, 4096, 9000, 1 << 30};
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
        int nb;
        DistBucket *b = dist_make_buckets(ps, caps[ci], &nb);
        assert_non_null(b);
        int *hits = calloc(total, sizeof *hits);
        for (int k = 0; k < nb; k++) {
            assert_true(b[k].first <= b[k].last);
            /* a bucket over several tensors stays within the cap */
            if (b[k].first != b[k].last)
                assert_true(b[k].count * sizeof(float) <= caps[ci]);
            for (size_t i = b[k].offset; i < b[k].offset + b[k].count; i++)
                hits[i]++;
            /* reverse declaration order: each bucket sits before the previous one */
            if (k > 0)
                assert_true(b[k].offset + b[k].count <= b[k - 1].offset && b[k].last < b[k - 1].first);
        }
        for (size_t i = 0; i < total; i++)
            assert_int_equal(hits[i], 1); /* tiles the block: every gradient exactly once */
        for (int i = 0; i < ps->n; i++) {
            Tensor *g = ps->items[i]->grad;
            if (!g)
                continue;
            size_t o = (size_t)((float *)g->data - (float *)ps->grad_block);
            int owners = 0;
            for (int k = 0; k < nb; k++)
                owners += o >= b[k].offset && o + (size_t)tensor_numel(g) <= b[k].offset + b[k].count;
            assert_int_equal(owners, 1);
        }
        if (caps[ci] == 1)
            assert_int_equal(nb, 6); /* one per trainable tensor */
        if (caps[ci] == (size_t)1 << 30)
            assert_int_equal(nb, 1);
        free(hits);
        free(b);
    }
    params_destroy(ps);
}

static void test_grad_sync_one_rank_is_identity(void **state)
{
    (void)state;
    char err[256];
    ParamSet *ps = odd_params();
    float *g = ps->grad_block;
    size_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (ps->items[i]->grad)
            n = (size_t)((float *)ps->items[i]->grad->data - g) + (size_t)tensor_numel(ps->items[i]);
    RngStream r = rng_stream(9, 0, 0, 0);
    for (size_t i = 0; i < n; i++)
        g[i] = rng_uniform(&r, (uint64_t)i) - 0.5f;
    float *copy = malloc(n * sizeof *copy);
    memcpy(copy, g, n * sizeof *copy);
    DistComm *c = dist_create_local();
    DistGradSync *s = dist_grad_sync_create(c, ps, 256, err, sizeof err);
    assert_non_null(s);
    int global = 0;
    assert_true(dist_grad_sync_average(s, 3, &global, err, sizeof err));
    assert_int_equal(global, 3);
    assert_memory_equal(g, copy, n * sizeof *copy);
    assert_true(dist_broadcast_params(c, ps, 0, err, sizeof err));
    assert_false(dist_grad_sync_average(s, 0, NULL, err, sizeof err)); /* an empty global batch */
    assert_non_null(strstr(err, "empty"));
    dist_grad_sync_destroy(s);
    dist_destroy(c);
    free(copy);
    params_destroy(ps);
}

static void test_shards_partition(void **state)
{
    (void)state;
    for (int world = 1; world <= 9; world++) {
        for (int64_t n = 0; n <= 40; n++) {
            int64_t next = 0, smallest = n, largest = 0;
            for (int r = 0; r < world; r++) {
                int64_t lo, hi;
                dist_shard_range(n, world, r, &lo, &hi);
                assert_int_equal(lo, next); /* contiguous, in rank order */
                assert_true(hi >= lo);
                next = hi;
                smallest = hi - lo < smallest ? hi - lo : smallest;
                largest = hi - lo > largest ? hi - lo : largest;
            }
            assert_int_equal(next, n);
            assert_true(largest - smallest <= 1); /* even split */
        }
    }
    /* a pass of uneven batches (the validation set's last one short, some smaller than the world) */
    const int64_t sizes[] = {8, 8, 8, 3, 1};
    const int64_t N = 28;
    for (int world = 1; world <= 5; world++) {
        int *seen = calloc(N, sizeof *seen);
        int64_t total = 0;
        for (int r = 0; r < world; r++) {
            int64_t cnt = dist_shard_count(sizes, 5, world, r);
            int64_t *pos = malloc((size_t)(cnt + 1) * sizeof *pos);
            dist_shard_positions(sizes, 5, world, r, pos);
            for (int64_t i = 0; i < cnt; i++) {
                assert_true(pos[i] >= 0 && pos[i] < N);
                seen[pos[i]]++;
                if (i)
                    assert_true(pos[i] > pos[i - 1]);
            }
            total += cnt;
            free(pos);
        }
        assert_int_equal(total, N);
        for (int64_t i = 0; i < N; i++)
            assert_int_equal(seen[i], 1);
        /* the merge puts each rank's rows back at their positions: rows are their own position */
        int64_t *rows[5], counts[5];
        const void *src[5];
        for (int r = 0; r < world; r++) {
            counts[r] = dist_shard_count(sizes, 5, world, r);
            rows[r] = malloc((size_t)(counts[r] + 1) * sizeof(int64_t));
            dist_shard_positions(sizes, 5, world, r, rows[r]);
            src[r] = rows[r];
        }
        int64_t merged[28];
        char err[256];
        assert_true(dist_shard_merge(sizes, 5, world, src, counts, sizeof(int64_t), merged, err, sizeof err));
        for (int64_t i = 0; i < N; i++)
            assert_int_equal(merged[i], i);
        if (world > 1) {
            counts[0]++;
            assert_false(dist_shard_merge(sizes, 5, world, src, counts, sizeof(int64_t), merged, err, sizeof err));
            assert_non_null(strstr(err, "rank 0 has"));
        }
        for (int r = 0; r < world; r++)
            free(rows[r]);
        free(seen);
    }
}

static void test_eval_gather_one_rank(void **state)
{
    (void)state;
    char err[256];
    ExitLogits e = {.n = 3, .K = 2, .C = 2};
    e.exit_logits = malloc(12 * sizeof(float));
    e.labels = malloc(3 * sizeof(int32_t));
    e.videos = malloc(3 * sizeof(int32_t));
    for (int i = 0; i < 12; i++)
        e.exit_logits[i] = (float)i * 0.5f;
    for (int i = 0; i < 3; i++)
        e.labels[i] = i, e.videos[i] = 10 + i;
    float *before = e.exit_logits;
    DistComm *c = dist_create_local();
    const int64_t sizes[] = {2, 1};
    assert_true(dist_gather_exit_logits(c, sizes, 2, &e, err, sizeof err));
    assert_ptr_equal(e.exit_logits, before); /* one rank: untouched */
    assert_int_equal(e.n, 3);
    dist_destroy(c);
    exit_logits_free(&e);
}

/* The synthetic training split as a source, sharded as rank `rank` of `world`. */
static void test_sharded_synthetic_source(void **state)
{
    (void)state;
    char err[512];
    DataArgs da = {.synthetic = 11};
    int64_t seen_videos[11] = {0};
    int total = 0;
    for (int world = 1; world <= 3; world++) {
        memset(seen_videos, 0, sizeof seen_videos);
        total = 0;
        for (int r = 0; r < world; r++) {
            DataLoadOptions o = {.frames = 2, .frame_size = 16, .batch_size = 4, .train = false, .shuffle = true,
                                 .drop_last = false, .seed = 3, .shard_rank = r, .shard_world = world};
            TrainData *d = train_data_open(&da, DATA_SPLIT_VAL, &o, err, sizeof err);
            assert_non_null(d);
            TrainDataSource src = train_data_source(d);
            assert_true(src.start_epoch(src.user, 0, err, sizeof err));
            TrainBatch b;
            int rc;
            while ((rc = src.next_batch(src.user, &b, err, sizeof err)) == 1) {
                for (int i = 0; i < b.size; i++)
                    seen_videos[b.videos[i]]++;
                total += b.size;
            }
            assert_int_equal(rc, 0);
            const int64_t *sizes;
            int nb = train_data_global_batches(d, &sizes);
            assert_int_equal(nb, 3); /* 4 + 4 + 3 on every rank */
            assert_int_equal(sizes[2], 3);
            train_data_close(d);
        }
        assert_int_equal(total, 11);
        for (int v = 0; v < 11; v++)
            assert_int_equal(seen_videos[v], 1); /* the ranks' shards partition the split */
    }
}

/* Two trainers of a tiny method on the same batches: plain, and through the one-rank communicator. */
static void test_one_rank_training_bit_identical(void **state)
{
    (void)state;
    char err[1024];
    Method *m[2];
    MethodTrainer *t[2];
    DistComm *c = dist_create_local();
    for (int k = 0; k < 2; k++) {
        m[k] = method_create("tsn-tiny", NULL, BACKEND_CPU, true, 4, err, sizeof err);
        if (!m[k])
            fail_msg("%s", err);
        MethodTrainConfig tc = method_train_config(m[k]);
        tc.epochs = 2;
        tc.seed = 7;
        tc.comm = k ? c : NULL;
        tc.sync_bn = k == 1;
        t[k] = method_trainer_create(m[k], &tc, err, sizeof err);
        if (!t[k])
            fail_msg("%s", err);
    }
    const int B = 3, T = method_frames(m[0]), S = method_frame_size(m[0]);
    size_t clip = (size_t)T * 3 * S * S;
    float *video = malloc((size_t)B * clip * sizeof *video); /* (B, T, 3, S, S) */
    int32_t labels[3];
    for (int step = 0; step < 2; step++) {
        RngStream r = rng_stream(100 + (uint64_t)step, 0, 0, 0);
        for (size_t i = 0; i < (size_t)B * clip; i++)
            video[i] = rng_uniform(&r, (uint64_t)i) * 2 - 1;
        for (int b = 0; b < B; b++)
            labels[b] = (int32_t)((b + step) % m[0]->classes);
        TrainBatch tb = {.video = video, .labels = labels, .size = B};
        for (int k = 0; k < 2; k++) {
            double loss;
            if (!method_trainer_step(t[k], &tb, &loss, err, sizeof err))
                fail_msg("%s", err);
        }
    }
    assert_int_equal(m[0]->ps->data_bytes, m[1]->ps->data_bytes);
    assert_memory_equal(m[0]->ps->data_block, m[1]->ps->data_block, m[0]->ps->data_bytes);
    for (int k = 0; k < 2; k++) {
        method_trainer_destroy(t[k]);
        method_destroy(m[k]);
    }
    dist_destroy(c);
    free(video);
}

static void test_launch_options(void **state)
{
    (void)state;
    char err[512];
    LaunchArgs a;
#define ARGV(...) ((char *[]){__VA_ARGS__, NULL}), (int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *))
#define ARGS(...) (int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)), ((char *[]){__VA_ARGS__, NULL})
    struct {
        char **argv;
        int argc;
        const char *message;
    } bad[] = {
        {ARGV("launch", "--gpus", "0", "--", "train"), "at least 1"},
        {ARGV("launch", "--gpus", "x", "--", "train"), "--gpus \"x\""},
        {ARGV("launch", "--gpus", "2", "train"), "unknown option train"},
        {ARGV("launch", "--gpus", "2"), "missing \"--\""},
        {ARGV("launch", "--", "train"), "--gpus N is required"},
        {ARGV("launch", "--gpus", "2", "--"), "no subcommand"},
        {ARGV("launch", "--gpus"), "--gpus needs a value"},
        {ARGV("launch", "--gpus", "2", "--nnodes", "2", "--node-rank", "1", "--", "eval"), "--master-addr"},
        {ARGV("launch", "--gpus", "2", "--nnodes", "2", "--node-rank", "2", "--master-addr", "h", "--master-port",
              "9", "--", "eval"), "not below --nnodes"},
        {ARGV("launch", "--gpus", "2", "--backend", "gloo", "--", "train"), "nccl or local"},
        {ARGV("launch", "--gpus", "2", "--backend", "local", "--", "train"), "need nccl"},
        {ARGV("launch", "--gpus", "1", "--master-port", "70000", "--", "train"), "1..65535"},
        {ARGV("launch", "--gpus", "1", "--", "launch", "--gpus", "1"), "launch itself"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(launch_parse(bad[i].argc, bad[i].argv, &a, err, sizeof err), 2);
        if (!strstr(err, bad[i].message))
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, bad[i].message);
    }
    assert_int_equal(launch_parse(ARGS("launch", "--help"), &a, err, sizeof err), -1);
    assert_int_equal(launch_parse(ARGS("launch", "--gpus", "4", "--sync-bn", "--", "train", "--preset", "x", "--", "y"),
                                  &a, err, sizeof err), 0);
    assert_int_equal(a.gpus, 4);
    assert_true(a.sync_bn);
    assert_int_equal(a.sub_argc, 5); /* a later "--" belongs to the subcommand */
    assert_string_equal(a.sub_argv[0], "train");
    assert_string_equal(a.sub_argv[4], "y");

    /* rank environments: host 1 of 2 with 4 GPUs runs ranks 4..7 of 8, over TCP */
    assert_int_equal(launch_parse(ARGS("launch", "--gpus", "4", "--nnodes", "2", "--node-rank", "1", "--master-addr",
                                       "10.0.0.1", "--master-port", "29500", "--", "eval"), &a, err, sizeof err), 0);
    char store[16][512];
    int n = launch_rank_env(&a, 2, "/tmp/x", "3,5,6,7", store, 16, err, sizeof err);
    assert_true(n > 0);
    const char *want[] = {"FOCUSBENCH_RANK=6", "FOCUSBENCH_WORLD_SIZE=8", "FOCUSBENCH_LOCAL_RANK=2",
                          "FOCUSBENCH_DIST_BACKEND=nccl", "CUDA_VISIBLE_DEVICES=6", "NCCL_NVLS_ENABLE=0",
                          "FOCUSBENCH_MASTER_ADDR=10.0.0.1", "FOCUSBENCH_MASTER_PORT=29500"};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        bool found = false;
        for (int k = 0; k < n; k++)
            found |= strcmp(store[k], want[w]) == 0;
        if (!found)
            fail_msg("missing %s", want[w]);
    }
    for (int k = 0; k < n; k++)
        assert_null(strstr(store[k], "FOCUSBENCH_ID_FILE")); /* several hosts: TCP, no file */
    assert_int_equal(launch_rank_env(&a, 3, NULL, "0,1", store, 16, err, sizeof err), -1);
    assert_non_null(strstr(err, "fewer than --gpus"));
    /* one host, one GPU: the local backend, the id file */
    assert_int_equal(launch_parse(ARGS("launch", "--gpus", "1", "--", "train"), &a, err, sizeof err), 0);
    n = launch_rank_env(&a, 0, "/tmp/id", NULL, store, 16, err, sizeof err);
    bool local = false, file = false;
    for (int k = 0; k < n; k++) {
        local |= strcmp(store[k], "FOCUSBENCH_DIST_BACKEND=local") == 0;
        file |= strcmp(store[k], "FOCUSBENCH_ID_FILE=/tmp/id") == 0;
    }
    assert_true(local && file);
#undef ARGV
#undef ARGS
}

static void test_env_read(void **state)
{
    (void)state;
    char err[512];
    DistEnv env;
    const char *vars[] = {"FOCUSBENCH_RANK", "FOCUSBENCH_WORLD_SIZE", "FOCUSBENCH_LOCAL_RANK", "FOCUSBENCH_DIST_BACKEND",
                          "FOCUSBENCH_ID_FILE", "FOCUSBENCH_MASTER_ADDR", "FOCUSBENCH_MASTER_PORT",
                          "FOCUSBENCH_RENDEZVOUS_TIMEOUT"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    assert_true(dist_env_read(&env, err, sizeof err));
    assert_int_equal(env.world, 1);
    assert_int_equal(env.backend, DIST_BACKEND_LOCAL);
    DistComm *c = dist_init_from_env(err, sizeof err);
    assert_non_null(c);
    assert_int_equal(dist_world(c), 1);
    dist_destroy(c);
    setenv("FOCUSBENCH_WORLD_SIZE", "2", 1);
    assert_false(dist_env_read(&env, err, sizeof err));
    assert_non_null(strstr(err, "go together"));
    setenv("FOCUSBENCH_RANK", "2", 1);
    assert_false(dist_env_read(&env, err, sizeof err));
    assert_non_null(strstr(err, "not below"));
    setenv("FOCUSBENCH_RANK", "1", 1);
    assert_true(dist_env_read(&env, err, sizeof err));
    assert_int_equal(env.backend, DIST_BACKEND_NCCL);
    assert_int_equal(env.local_rank, 1);
    setenv("FOCUSBENCH_DIST_BACKEND", "local", 1);
    assert_false(dist_env_read(&env, err, sizeof err));
    assert_non_null(strstr(err, "one rank"));
    setenv("FOCUSBENCH_DIST_BACKEND", "nccl", 1);
    setenv("FOCUSBENCH_MASTER_ADDR", "localhost", 1);
    assert_false(dist_env_read(&env, err, sizeof err));
    assert_non_null(strstr(err, "FOCUSBENCH_MASTER_PORT"));
#if !HAVE_NCCL
    setenv("FOCUSBENCH_MASTER_PORT", "1234", 1);
    assert_null(dist_init_from_env(err, sizeof err));
    assert_non_null(strstr(err, "without NCCL"));
#endif
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static void test_id_file_roundtrip(void **state)
{
    (void)state;
    char dir[] = "/tmp/focusbench-test-dist-XXXXXX", path[128], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/id", dir);
    DistId id, got;
    for (int i = 0; i < DIST_ID_BYTES; i++)
        id.bytes[i] = (unsigned char)(i * 37 + 11);
    assert_false(dist_id_file_read(path, &got, 0.05, err, sizeof err)); /* not there yet: times out */
    assert_non_null(strstr(err, "no id"));
    assert_true(dist_id_file_write(path, &id, err, sizeof err));
    assert_true(dist_id_file_read(path, &got, 1, err, sizeof err));
    assert_memory_equal(id.bytes, got.bytes, DIST_ID_BYTES);
    FILE *f = fopen(path, "w");
    fputs("zz\n", f);
    fclose(f);
    assert_false(dist_id_file_read(path, &got, 1, err, sizeof err));
    assert_non_null(strstr(err, "not an id file"));
    unlink(path);
    rmdir(dir);
}

/* A free TCP port on localhost (bound, read, released). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Rank 0 (this process) sends a dummy 128-byte id to rank 1 (a child process), which checks it. */
static void test_tcp_rendezvous_two_processes(void **state)
{
    (void)state;
    char err[512];
    int port = free_port();
    DistId id;
    for (int i = 0; i < DIST_ID_BYTES; i++)
        id.bytes[i] = (unsigned char)(255 - i);
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        DistId got;
        char e[512];
        bool ok = dist_tcp_fetch_id("127.0.0.1", port, 2, &got, 10, e, sizeof e);
        if (!ok)
            fprintf(stderr, "rank 1: %s\n", e);
        _exit(ok && memcmp(got.bytes, id.bytes, DIST_ID_BYTES) == 0 ? 0 : 3);
    }
    bool served = dist_tcp_serve_id("127.0.0.1", port, 1, 2, &id, 10, err, sizeof err);
    int status = 0;
    waitpid(child, &status, 0);
    if (!served)
        fail_msg("rank 0: %s", err);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* a world-size mismatch is refused by the joining rank */
    port = free_port();
    fflush(NULL);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        DistId got;
        char e[512];
        bool ok = dist_tcp_fetch_id("127.0.0.1", port, 4, &got, 10, e, sizeof e);
        _exit(!ok && strstr(e, "runs 2 ranks") ? 0 : 3);
    }
    dist_tcp_serve_id("127.0.0.1", port, 1, 2, &id, 10, err, sizeof err);
    waitpid(child, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* nobody listening: the joining rank gives up after its timeout with a message */
    DistId got;
    assert_false(dist_tcp_fetch_id("127.0.0.1", free_port(), 2, &got, 0.2, err, sizeof err));
    assert_non_null(strstr(err, "no rank 0 listening"));
}

/* ---- synchronised batch norm: W ranks as W threads, each with its own CPU context ------------- */

/* What a rank of a synchronised run must reproduce: the one-rank run of the whole global batch.
 * Each rank's loss is the mean over its own rows and the gradient sync weighs rank r by b_r / B
 * (kernels/dist/dist_grads.h), so rank r's gradients times b_r / B, summed (dγ, dβ, weights) or
 * concatenated (dx), must equal the one-rank gradients. */

enum { SB_MAX_RANKS = 4 };
static const float SB_EPS = 1e-5f, SB_MOMENTUM = 0.1f;

/* A thread communicator: every rank posts its buffer, all wait, each sums all buffers in rank
 * order (the same order on every rank: equal results), all wait again, each writes its own. */
typedef struct {
    pthread_barrier_t barrier;
    int world;
    double *buf[SB_MAX_RANKS];
    size_t n[SB_MAX_RANKS];
} SbComm;

typedef struct {
    SbComm *comm;
    int rank;
    int calls; /* hook calls so far */
} SbRank;

static bool sb_allreduce(void *user, double *buf, size_t n, char *err, size_t err_cap)
{
    SbRank *r = user;
    SbComm *c = r->comm;
    r->calls++;
    c->buf[r->rank] = buf;
    c->n[r->rank] = n;
    pthread_barrier_wait(&c->barrier);
    bool same = true;
    for (int k = 0; k < c->world; k++)
        same = same && c->n[k] == n;
    double *sum = same ? malloc((n ? n : 1) * sizeof *sum) : NULL; /* (n) */
    for (size_t i = 0; sum && i < n; i++) {
        double acc = 0.0;
        for (int k = 0; k < c->world; k++)
            acc += c->buf[k][i];
        sum[i] = acc;
    }
    pthread_barrier_wait(&c->barrier); /* every rank has read every buffer */
    if (sum)
        memcpy(buf, sum, n * sizeof *sum);
    free(sum);
    if (!sum)
        snprintf(err, err_cap, "thread all-reduce: the ranks disagree on the size, or out of memory");
    return sum != NULL;
}

/* A hook that fails, for the error path. */
static bool sb_failing_allreduce(void *user, double *buf, size_t n, char *err, size_t err_cap)
{
    (void)buf, (void)n;
    ++*(int *)user;
    snprintf(err, err_cap, "the network is down");
    return false;
}

/* The inputs of one batch-norm layer on one rank (host tensors made by the main thread). */
typedef struct {
    Tensor *x, *gamma, *beta, *rm, *rv; /* x, gamma, beta with gradients */
    Tensor *dy;                         /* the fixed upstream gradient: loss = Σ y·dy */
} SbLayer;

typedef struct {
    SbRank rank;
    bool sync;
    SbLayer in;
    float *y; /* (numel x) out */
    bool ok;
    char err[CTX_ERROR_LEN];
} SbJob;

static void *sb_bn_job(void *arg)
{
    SbJob *j = arg;
    Ctx *ctx = ctx_create(BACKEND_CPU, 3);
    if (!ctx) {
        snprintf(j->err, sizeof j->err, "ctx_create failed");
        return NULL;
    }
    ctx_set_training(ctx, true);
    if (j->sync)
        ctx_set_bn_sync(ctx, sb_allreduce, &j->rank);
    ctx_begin_pass(ctx);
    Tensor *y = op_batch_norm(ctx, j->in.x, j->in.gamma, j->in.beta, j->in.rm, j->in.rv, SB_MOMENTUM, SB_EPS);
    Tensor *l = op_mul(ctx, y, j->in.dy); /* seeded with ones: d l / d y = dy */
    j->ok = l && tape_backward(ctx, l);
    if (j->ok)
        memcpy(j->y, y->data, (size_t)tensor_numel(y) * sizeof(float));
    snprintf(j->err, sizeof j->err, "%s", ctx_error_message(ctx));
    ctx_destroy(ctx);
    return NULL;
}

/* Runs W jobs as W threads over one thread communicator. */
static void sb_run(void *(*fn)(void *), void *jobs, size_t job_size, SbRank *(*rank_of)(void *), int W)
{
    SbComm comm;
    memset(&comm, 0, sizeof comm);
    comm.world = W;
    assert_int_equal(pthread_barrier_init(&comm.barrier, NULL, (unsigned)W), 0);
    pthread_t th[SB_MAX_RANKS];
    for (int r = 0; r < W; r++) {
        void *job = (char *)jobs + (size_t)r * job_size;
        SbRank *rk = rank_of(job);
        rk->comm = &comm;
        rk->rank = r;
        rk->calls = 0;
        assert_int_equal(pthread_create(&th[r], NULL, fn, job), 0);
    }
    for (int r = 0; r < W; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&comm.barrier);
}

static SbRank *sb_bn_rank(void *job) { return &((SbJob *)job)->rank; }

/* Rows [r0, r0 + rows) of t (dim 0) as a new host tensor, times `scale`. */
static Tensor *sb_rows(const Tensor *t, int64_t r0, int64_t rows, float scale, bool grads)
{
    int64_t dims[TENSOR_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++)
        dims[i] = t->shape[i];
    dims[0] = rows;
    Tensor *o = ttensor(DTYPE_F32, t->ndim, dims, grads);
    int64_t row = tensor_span(t, 1, t->ndim);
    for (int64_t i = 0; i < rows * row; i++)
        tensor_f32(o)[i] = tensor_f32(t)[r0 * row + i] * scale;
    return o;
}

static Tensor *sb_clone(const Tensor *t, bool grads) { return sb_rows(t, 0, t->shape[0], 1.0f, grads); }

static void sb_layer_free(SbLayer *l)
{
    ttensor_free(l->x);
    ttensor_free(l->gamma);
    ttensor_free(l->beta);
    ttensor_free(l->rm);
    ttensor_free(l->rv);
    ttensor_free(l->dy);
}

/* out[i] = Σ_r w_r · a_r[i] (the gradient sync's weighted sum), in double. */
static void sb_weighted_sum(float *out, const Tensor *const *a, const double *w, int W, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        double acc = 0.0;
        for (int r = 0; r < W; r++)
            acc += w[r] * tensor_f32(a[r])[i];
        out[i] = (float)acc;
    }
}

/* One synchronised batch norm over W ranks (rows split as `rows`) against one context running
 * the whole batch: y, running statistics, dx, dγ, dβ. */
static void sb_check_layer(int ndim, const int64_t *dims, float offset, int W, const int64_t *rows, uint64_t seed)
{
    const int64_t N = dims[0], C = dims[1];
    SbLayer full = {.x = ttensor(DTYPE_F32, ndim, dims, true), .gamma = TTG(C), .beta = TTG(C), .rm = TT(C),
                    .rv = TT(C), .dy = ttensor(DTYPE_F32, ndim, dims, false)};
    tfill_uniform(full.x, seed, offset - 2.0f, offset + 2.0f);
    tfill_uniform(full.gamma, seed + 1, 0.5f, 1.5f);
    tfill_uniform(full.beta, seed + 2, -0.5f, 0.5f);
    tfill_uniform(full.rm, seed + 3, -0.5f, 0.5f);
    tfill_uniform(full.rv, seed + 4, 0.5f, 2.0f);
    tfill_uniform(full.dy, seed + 5, -1.0f, 1.0f);
    const int64_t numel = tensor_numel(full.x), row = numel / N;

    SbJob jobs[SB_MAX_RANKS + 1];
    memset(jobs, 0, sizeof jobs);
    double w[SB_MAX_RANKS];
    int64_t r0 = 0;
    for (int r = 0; r < W; r++) {
        /* rank r's loss is the mean over its rows: the global mean's per-row terms times N / b_r */
        w[r] = (double)rows[r] / (double)N;
        SbJob *j = &jobs[r];
        j->sync = true;
        j->in = (SbLayer){.x = sb_rows(full.x, r0, rows[r], 1.0f, true), .gamma = sb_clone(full.gamma, true),
                          .beta = sb_clone(full.beta, true), .rm = sb_clone(full.rm, false),
                          .rv = sb_clone(full.rv, false),
                          .dy = sb_rows(full.dy, r0, rows[r], (float)((double)N / (double)rows[r]), false)};
        j->y = malloc((size_t)(rows[r] * row + 1) * sizeof(float));
        r0 += rows[r];
    }
    assert_int_equal(r0, N);
    SbJob *one = &jobs[W];
    one->in = full;
    one->y = malloc((size_t)numel * sizeof(float));
    sb_run(sb_bn_job, jobs, sizeof jobs[0], sb_bn_rank, W);
    sb_run(sb_bn_job, one, sizeof *one, sb_bn_rank, 1); /* no hook: the plain op */
    for (int r = 0; r <= W; r++)
        if (!jobs[r].ok)
            fail_msg("rank %d: %s", r, jobs[r].err);
    for (int r = 0; r < W; r++)
        assert_int_equal(jobs[r].rank.calls, 2); /* one sum forward, one backward */

    char what[160];
    float *cat = malloc((size_t)numel * sizeof *cat), *wsum = malloc((size_t)(numel > C ? numel : C) * sizeof *wsum);
    r0 = 0;
    for (int r = 0; r < W; r++) {
        memcpy(cat + r0 * row, jobs[r].y, (size_t)(rows[r] * row) * sizeof *cat);
        for (int64_t i = 0; i < rows[r] * row; i++) /* dx scaled as the gradient sync scales it */
            jobs[r].y[i] = (float)(w[r] * tensor_f32(jobs[r].in.x->grad)[i]);
        r0 += rows[r];
    }
    snprintf(what, sizeof what, "sync bn y, %d ranks, N %lld C %lld (%d-D)", W, (long long)N, (long long)C, ndim);
    tassert_close(cat, one->y, numel, 1e-6, 1e-5, what);
    r0 = 0;
    for (int r = 0; r < W; r++) {
        memcpy(cat + r0 * row, jobs[r].y, (size_t)(rows[r] * row) * sizeof *cat);
        r0 += rows[r];
        /* every rank updated its running statistics with the same global figures: equal bits */
        assert_memory_equal(tensor_f32(jobs[r].in.rm), tensor_f32(jobs[0].in.rm), (size_t)C * sizeof(float));
        assert_memory_equal(tensor_f32(jobs[r].in.rv), tensor_f32(jobs[0].in.rv), (size_t)C * sizeof(float));
    }
    tassert_close(tensor_f32(jobs[0].in.rm), tensor_f32(full.rm), C, 1e-7, 1e-6, "sync bn running mean");
    tassert_close(tensor_f32(jobs[0].in.rv), tensor_f32(full.rv), C, 1e-7, 1e-6, "sync bn running var (unbiased, M)");
    snprintf(what, sizeof what, "sync bn dx, %d ranks, N %lld C %lld", W, (long long)N, (long long)C);
    tassert_close(cat, tensor_f32(full.x->grad), numel, 2e-6, 1e-5, what);
    const Tensor *g[SB_MAX_RANKS];
    for (int r = 0; r < W; r++)
        g[r] = jobs[r].in.gamma->grad;
    sb_weighted_sum(wsum, g, w, W, C);
    tassert_close(wsum, tensor_f32(full.gamma->grad), C, 1e-6, 1e-5, "sync bn dgamma (weighted sum of ranks')");
    for (int r = 0; r < W; r++)
        g[r] = jobs[r].in.beta->grad;
    sb_weighted_sum(wsum, g, w, W, C);
    tassert_close(wsum, tensor_f32(full.beta->grad), C, 1e-6, 1e-5, "sync bn dbeta (weighted sum of ranks')");

    for (int r = 0; r <= W; r++) {
        if (r < W)
            sb_layer_free(&jobs[r].in);
        free(jobs[r].y);
    }
    sb_layer_free(&full);
    free(cat);
    free(wsum);
}

static void test_sync_bn_ranks_equal_one_rank(void **state)
{
    (void)state;
    /* BN1d, equal halves (torch's SyncBatchNorm + DDP case) */
    sb_check_layer(2, (int64_t[]){6, 5}, 0.0f, 2, (int64_t[]){3, 3}, 11);
    /* 2-D maps, odd channel count, |mean| >> std (the pooled variance must not cancel) */
    sb_check_layer(4, (int64_t[]){4, 7, 3, 5}, 50.0f, 2, (int64_t[]){2, 2}, 21);
    /* unequal shards (a global batch the world does not divide): the count-weighted gradient sums */
    sb_check_layer(4, (int64_t[]){5, 3, 4, 3}, 0.5f, 2, (int64_t[]){3, 2}, 31);
    /* three ranks, BN1d with a single value per channel on one rank (allowed: the global count is 5) */
    sb_check_layer(2, (int64_t[]){5, 9}, -1.0f, 3, (int64_t[]){2, 2, 1}, 41);
    /* 3-D maps over four ranks */
    sb_check_layer(5, (int64_t[]){4, 3, 2, 3, 2}, 0.0f, 4, (int64_t[]){1, 1, 1, 1}, 51);
}

/* The hook on one rank (world 1): the forward is the plain op bit for bit (ΣP − S²/M is exactly 0),
 * the backward to double rounding (this rank's sums times m, divided by m). */
static void test_sync_bn_one_rank_is_plain(void **state)
{
    (void)state;
    const int64_t dims[][4] = {{6, 5, 1, 1}, {3, 7, 4, 5}};
    for (int k = 0; k < 2; k++) {
        SbJob jobs[2];
        memset(jobs, 0, sizeof jobs);
        int ndim = k == 0 ? 2 : 4;
        for (int j = 0; j < 2; j++) {
            SbLayer *l = &jobs[j].in;
            l->x = ttensor(DTYPE_F32, ndim, dims[k], true);
            l->gamma = TTG(dims[k][1]);
            l->beta = TTG(dims[k][1]);
            l->rm = TT(dims[k][1]);
            l->rv = TT(dims[k][1]);
            l->dy = ttensor(DTYPE_F32, ndim, dims[k], false);
            tfill_uniform(l->x, 61, 3.0f, 5.0f);
            tfill_uniform(l->gamma, 62, 0.5f, 1.5f);
            tfill_uniform(l->beta, 63, -0.5f, 0.5f);
            tfill_uniform(l->rm, 64, -0.5f, 0.5f);
            tfill_uniform(l->rv, 65, 0.5f, 2.0f);
            tfill_uniform(l->dy, 66, -1.0f, 1.0f);
            jobs[j].sync = j == 1;
            jobs[j].y = malloc((size_t)tensor_numel(l->x) * sizeof(float));
        }
        sb_run(sb_bn_job, &jobs[0], sizeof jobs[0], sb_bn_rank, 1);
        sb_run(sb_bn_job, &jobs[1], sizeof jobs[1], sb_bn_rank, 1);
        assert_true(jobs[0].ok && jobs[1].ok);
        assert_int_equal(jobs[0].rank.calls, 0);
        assert_int_equal(jobs[1].rank.calls, 2);
        const SbLayer *a = &jobs[0].in, *b = &jobs[1].in;
        int64_t n = tensor_numel(a->x), C = dims[k][1];
        assert_memory_equal(jobs[1].y, jobs[0].y, (size_t)n * sizeof(float));
        assert_memory_equal(tensor_f32(b->rm), tensor_f32(a->rm), (size_t)C * sizeof(float));
        assert_memory_equal(tensor_f32(b->rv), tensor_f32(a->rv), (size_t)C * sizeof(float));
        tassert_close(tensor_f32(b->x->grad), tensor_f32(a->x->grad), n, 1e-7, 1e-6, "one-rank sync bn dx");
        tassert_close(tensor_f32(b->gamma->grad), tensor_f32(a->gamma->grad), C, 1e-7, 1e-6, "one-rank dgamma");
        tassert_close(tensor_f32(b->beta->grad), tensor_f32(a->beta->grad), C, 1e-7, 1e-6, "one-rank dbeta");
        for (int j = 0; j < 2; j++) {
            sb_layer_free(&jobs[j].in);
            free(jobs[j].y);
        }
    }
}

/* A small network on every rank — BN1d → sigmoid → linear → BN1d → Σ y·dy — so the gradients reach
 * the first layer through the second's cross-rank terms: the ranks' weighted parameter gradients
 * and their dx equal the one-rank run's, for equal and unequal shards. */
typedef struct {
    Tensor *x, *g1, *b1, *rm1, *rv1, *w, *bias, *g2, *b2, *rm2, *rv2, *dy;
} SbNet;

enum { SB_NET_IN = 6, SB_NET_OUT = 5, SB_NET_PARAMS = 6 };

typedef struct {
    SbRank rank;
    SbNet net;
    bool ok;
    char err[CTX_ERROR_LEN];
} SbNetJob;

static SbRank *sb_net_rank(void *job) { return &((SbNetJob *)job)->rank; }

static void *sb_net_job(void *arg)
{
    SbNetJob *j = arg;
    SbNet *n = &j->net;
    Ctx *ctx = ctx_create(BACKEND_CPU, 3);
    if (!ctx) {
        snprintf(j->err, sizeof j->err, "ctx_create failed");
        return NULL;
    }
    ctx_set_training(ctx, true);
    if (j->rank.comm->world > 1)
        ctx_set_bn_sync(ctx, sb_allreduce, &j->rank);
    ctx_begin_pass(ctx);
    Tensor *h = op_batch_norm(ctx, n->x, n->g1, n->b1, n->rm1, n->rv1, SB_MOMENTUM, SB_EPS);
    h = op_linear(ctx, op_sigmoid(ctx, h), n->w, n->bias);
    h = op_batch_norm(ctx, h, n->g2, n->b2, n->rm2, n->rv2, SB_MOMENTUM, SB_EPS);
    Tensor *l = op_mul(ctx, h, n->dy);
    j->ok = l && tape_backward(ctx, l);
    snprintf(j->err, sizeof j->err, "%s", ctx_error_message(ctx));
    ctx_destroy(ctx);
    return NULL;
}

static void sb_net_free(SbNet *n)
{
    Tensor **all = &n->x;
    for (size_t i = 0; i < sizeof *n / sizeof(Tensor *); i++)
        ttensor_free(all[i]);
}

static void test_sync_bn_network_gradients(void **state)
{
    (void)state;
    const int64_t N = 5;
    const int64_t splits[][SB_MAX_RANKS] = {{3, 2}, {2, 2, 1}};
    const int worlds[] = {2, 3};
    for (int s = 0; s < 2; s++) {
        const int W = worlds[s];
        SbNet full = {.x = TTG(N, SB_NET_IN), .g1 = TTG(SB_NET_IN), .b1 = TTG(SB_NET_IN), .rm1 = TT(SB_NET_IN),
                      .rv1 = TT(SB_NET_IN), .w = TTG(SB_NET_OUT, SB_NET_IN), .bias = TTG(SB_NET_OUT),
                      .g2 = TTG(SB_NET_OUT), .b2 = TTG(SB_NET_OUT), .rm2 = TT(SB_NET_OUT), .rv2 = TT(SB_NET_OUT),
                      .dy = TT(N, SB_NET_OUT)};
        tfill_uniform(full.x, 71, -2.0f, 2.0f);
        tfill_uniform(full.g1, 72, 0.5f, 1.5f);
        tfill_uniform(full.b1, 73, -0.5f, 0.5f);
        tfill_uniform(full.w, 74, -1.0f, 1.0f);
        tfill_uniform(full.bias, 75, -0.5f, 0.5f);
        tfill_uniform(full.g2, 76, 0.5f, 1.5f);
        tfill_uniform(full.b2, 77, -0.5f, 0.5f);
        tfill_uniform(full.rv1, 78, 0.5f, 2.0f);
        tfill_uniform(full.rv2, 79, 0.5f, 2.0f);
        tfill_uniform(full.dy, 80, -1.0f, 1.0f);
        SbNetJob jobs[SB_MAX_RANKS + 1];
        memset(jobs, 0, sizeof jobs);
        double w[SB_MAX_RANKS];
        int64_t r0 = 0;
        for (int r = 0; r < W; r++) {
            int64_t b = splits[s][r];
            w[r] = (double)b / (double)N;
            SbNet *n = &jobs[r].net;
            *n = (SbNet){.x = sb_rows(full.x, r0, b, 1.0f, true), .g1 = sb_clone(full.g1, true),
                         .b1 = sb_clone(full.b1, true), .rm1 = sb_clone(full.rm1, false),
                         .rv1 = sb_clone(full.rv1, false), .w = sb_clone(full.w, true),
                         .bias = sb_clone(full.bias, true), .g2 = sb_clone(full.g2, true),
                         .b2 = sb_clone(full.b2, true), .rm2 = sb_clone(full.rm2, false),
                         .rv2 = sb_clone(full.rv2, false),
                         .dy = sb_rows(full.dy, r0, b, (float)((double)N / (double)b), false)};
            r0 += b;
        }
        jobs[W].net = full;
        sb_run(sb_net_job, jobs, sizeof jobs[0], sb_net_rank, W);
        sb_run(sb_net_job, &jobs[W], sizeof jobs[0], sb_net_rank, 1);
        for (int r = 0; r <= W; r++)
            if (!jobs[r].ok)
                fail_msg("rank %d: %s", r, jobs[r].err);
        for (int r = 0; r < W; r++)
            assert_int_equal(jobs[r].rank.calls, 4); /* two layers: forward and backward each */
        /* the parameters' gradients, as the gradient sync combines them */
        static const char *names[SB_NET_PARAMS] = {"g1", "b1", "w", "bias", "g2", "b2"};
        for (int p = 0; p < SB_NET_PARAMS; p++) {
            Tensor *const *pf = (Tensor *const *)&full;
            const int idx[SB_NET_PARAMS] = {1, 2, 5, 6, 7, 8}; /* SbNet field positions */
            const Tensor *ref = pf[idx[p]]->grad;
            const Tensor *g[SB_MAX_RANKS];
            for (int r = 0; r < W; r++)
                g[r] = ((Tensor *const *)&jobs[r].net)[idx[p]]->grad;
            int64_t n = tensor_numel(ref);
            float *got = malloc((size_t)n * sizeof *got);
            sb_weighted_sum(got, g, w, W, n);
            char what[96];
            snprintf(what, sizeof what, "sync bn network d%s, %d ranks", names[p], W);
            tassert_close(got, tensor_f32(ref), n, 2e-6, 1e-5, what);
            free(got);
        }
        float dx[5 * SB_NET_IN];
        r0 = 0;
        for (int r = 0; r < W; r++) {
            for (int64_t i = 0; i < splits[s][r] * SB_NET_IN; i++)
                dx[r0 * SB_NET_IN + i] = (float)(w[r] * tensor_f32(jobs[r].net.x->grad)[i]);
            r0 += splits[s][r];
        }
        tassert_close(dx, tensor_f32(full.x->grad), N * SB_NET_IN, 2e-6, 1e-5, "sync bn network dx");
        for (int r = 0; r < W; r++) {
            tassert_close(tensor_f32(jobs[r].net.rm2), tensor_f32(full.rm2), SB_NET_OUT, 1e-7, 1e-6,
                          "sync bn network running mean, layer 2");
            tassert_close(tensor_f32(jobs[r].net.rv2), tensor_f32(full.rv2), SB_NET_OUT, 1e-7, 1e-6,
                          "sync bn network running var, layer 2");
            sb_net_free(&jobs[r].net);
        }
        sb_net_free(&full);
    }
}

/* Errors: a global count of 1, a failing hook; the meta backend never calls the hook and counts
 * as the plain op; dist_install_bn_sync installs only for more than one rank. */
static void test_sync_bn_errors_meta_install(void **state)
{
    (void)state;
    SbJob j;
    memset(&j, 0, sizeof j);
    j.sync = true;
    j.in = (SbLayer){.x = TTG(1, 3), .gamma = TTG(3), .beta = TTG(3), .rm = TT(3), .rv = TT(3), .dy = TT(1, 3)};
    j.y = malloc(3 * sizeof(float));
    sb_run(sb_bn_job, &j, sizeof j, sb_bn_rank, 1);
    assert_false(j.ok);
    tassert_contains(j.err, "more than 1 value per channel over all ranks", "global count error");
    tassert_contains(j.err, "(1, 3)", "global count error names the shape");
    free(j.y);
    sb_layer_free(&j.in);

    int calls = 0;
    Ctx *ctx = tctx(5);
    ctx_set_training(ctx, true);
    ctx_set_bn_sync(ctx, sb_failing_allreduce, &calls);
    Tensor *x = TTG(4, 3), *ga = TTG(3), *be = TTG(3), *rm = TT(3), *rv = TT(3);
    tfill_uniform(x, 5, -1, 1);
    assert_null(op_batch_norm(ctx, x, ga, be, rm, rv, SB_MOMENTUM, SB_EPS));
    assert_int_equal(calls, 1);
    tassert_contains(ctx_error_message(ctx), "batch_norm: summing the batch-norm statistics over the ranks",
                     "hook failure");
    tassert_contains(ctx_error_message(ctx), "the network is down", "hook failure keeps the hook's message");
    /* eval mode: running statistics, no collective */
    ctx_clear_error(ctx);
    ctx_set_training(ctx, false);
    ctx_begin_pass(ctx);
    assert_non_null(op_batch_norm(ctx, x, ga, be, rm, rv, SB_MOMENTUM, SB_EPS));
    assert_int_equal(calls, 1);
    ctx_destroy(ctx);

    double macs[2];
    for (int k = 0; k < 2; k++) {
        Ctx *meta = ctx_create(BACKEND_META, 1);
        ctx_set_training(meta, true);
        if (k)
            ctx_set_bn_sync(meta, sb_failing_allreduce, &calls);
        Tensor *mx = tensor_new(meta, DTYPE_F32, 4, (int64_t[]){2, 3, 4, 4});
        Tensor *p[4];
        for (int i = 0; i < 4; i++)
            p[i] = tensor_new(meta, DTYPE_F32, 1, (int64_t[]){3});
        assert_non_null(op_batch_norm(meta, mx, p[0], p[1], p[2], p[3], SB_MOMENTUM, SB_EPS));
        assert_true(ctx_ok(meta));
        macs[k] = ctx_total_macs(meta);
        ctx_destroy(meta);
    }
    assert_int_equal(calls, 1);
    assert_true(macs[0] == 2 * 3 && macs[1] == macs[0]);

    ctx = tctx(6);
    DistComm *local = dist_create_local();
    dist_install_bn_sync(ctx, local);
    assert_null(ctx->bn_sync); /* one rank: the plain op */
    DistComm two = {.kind = DIST_BACKEND_LOCAL, .rank = 0, .world = 2};
    dist_install_bn_sync(ctx, &two);
    assert_non_null(ctx->bn_sync);
    assert_ptr_equal(ctx->bn_sync_user, &two);
    ctx_set_bn_sync(ctx, NULL, &two);
    assert_null(ctx->bn_sync);
    assert_null(ctx->bn_sync_user);
    dist_destroy(local);
    ctx_destroy(ctx);
    ttensor_free(x);
    ttensor_free(ga);
    ttensor_free(be);
    ttensor_free(rm);
    ttensor_free(rv);
}

TEST_GROUP(dist, cmocka_unit_test(test_local_collectives_exact), cmocka_unit_test(test_buckets_cover_every_gradient_once),
           cmocka_unit_test(test_grad_sync_one_rank_is_identity), cmocka_unit_test(test_shards_partition),
           cmocka_unit_test(test_eval_gather_one_rank), cmocka_unit_test(test_sharded_synthetic_source),
           cmocka_unit_test(test_one_rank_training_bit_identical), cmocka_unit_test(test_launch_options),
           cmocka_unit_test(test_env_read), cmocka_unit_test(test_id_file_roundtrip),
           cmocka_unit_test(test_tcp_rendezvous_two_processes), cmocka_unit_test(test_sync_bn_ranks_equal_one_rank),
           cmocka_unit_test(test_sync_bn_one_rank_is_plain), cmocka_unit_test(test_sync_bn_network_gradients),
           cmocka_unit_test(test_sync_bn_errors_meta_install))
