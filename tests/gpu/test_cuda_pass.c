/* test_cuda_pass.c — whole passes through the op layer on the CUDA backend (group cuda_pass):
 * a small network's training step (forward, cross-entropy, tape backward) and an eval forward
 * against the CPU; a second training step that must allocate nothing (device arenas, host
 * arena and workspace frozen after the first pass planned them) and reproduce the first one's
 * loss and gradients bit for bit; parameter upload / download round trip.
 */
#include <stdio.h>
#include <string.h>

#include "kernels/params.h"
#include "kernels/tape.h"
#include "tests/gpu/gpu_test_util.h"

/* Errors of ~1e-7 per op compound through eight ops, one of which (batch norm) divides by a
 * batch standard deviation and another (the mean loss) sums them all; gradients of a composed
 * network agree to ~1e-5 relative. The network avoids kinks (no relu or max pool: swish and
 * sigmoid), so no backend can route a gradient differently because of a last-bit difference. */
#define TOL_COMPOSED ((Tol){1e-4, 1e-3})

typedef struct {
    ParamSet *ps;
    Tensor *w1, *b1, *g1, *be1, *m1, *v1, *wd, *wl, *bl;
} Net;

static void net_init(Net *n)
{
    memset(n, 0, sizeof *n);
    n->ps = params_create();
    assert_non_null(n->ps);
    ParamSet *ps = n->ps;
    n->w1 = params_declare(ps, "conv1.weight", DTYPE_F32, 4, (int64_t[]){8, 3, 3, 3}, true);
    n->b1 = params_declare(ps, "dw.bias", DTYPE_F32, 1, (int64_t[]){8}, true);
    n->g1 = params_declare(ps, "bn1.weight", DTYPE_F32, 1, (int64_t[]){8}, true);
    n->be1 = params_declare(ps, "bn1.bias", DTYPE_F32, 1, (int64_t[]){8}, true);
    n->m1 = params_declare(ps, "bn1.running_mean", DTYPE_F32, 1, (int64_t[]){8}, false);
    n->v1 = params_declare(ps, "bn1.running_var", DTYPE_F32, 1, (int64_t[]){8}, false);
    n->wd = params_declare(ps, "dw.weight", DTYPE_F32, 4, (int64_t[]){8, 1, 3, 3}, true);
    n->wl = params_declare(ps, "fc.weight", DTYPE_F32, 2, (int64_t[]){5, 8}, true);
    n->bl = params_declare(ps, "fc.bias", DTYPE_F32, 1, (int64_t[]){5}, true);
    char err[128];
    if (!params_allocate(ps, BACKEND_CPU, true, err, sizeof err))
        fail_msg("params_allocate: %s", err);
    tfill_normal(n->w1, 1, 0.3f);
    tfill_uniform(n->b1, 2, -0.1f, 0.1f);
    tfill_uniform(n->g1, 3, 0.8f, 1.2f);
    tfill_uniform(n->be1, 4, -0.1f, 0.1f);
    tfill_uniform(n->m1, 5, -0.1f, 0.1f);
    tfill_uniform(n->v1, 6, 0.8f, 1.2f);
    tfill_normal(n->wd, 7, 0.3f);
    tfill_normal(n->wl, 8, 0.5f);
    tfill_uniform(n->bl, 9, -0.1f, 0.1f);
}

/* conv 3×3 → BN → swish → depthwise 3×3 s2 (+bias) → sigmoid → GAP → dropout → fc → logits
 * (no bias before the batch norm: its gradient would be zero up to rounding noise) */
static Tensor *net_logits(Ctx *ctx, const Net *n, Tensor *x)
{
    Tensor *h = op_conv2d(ctx, x, n->w1, NULL, 1, 1, 1);
    h = op_swish(ctx, op_batch_norm(ctx, h, n->g1, n->be1, n->m1, n->v1, 0.1f, 1e-5f));
    h = op_sigmoid(ctx, op_conv2d(ctx, h, n->wd, n->b1, 2, 1, 8));
    h = op_dropout(ctx, op_global_avg_pool(ctx, h), 0.2f);
    return op_linear(ctx, h, n->wl, n->bl);
}

typedef struct {
    Tensor *loss;
    Tensor *grads[7]; /* w1, b1, g1, be1, wd, wl, bl */
    Tensor *rm, *rv;
} StepResult;

static void trainables(const Net *n, Tensor *out[7])
{
    Tensor *t[7] = {n->w1, n->b1, n->g1, n->be1, n->wd, n->wl, n->bl};
    memcpy(out, t, sizeof t);
}
static const char *const GRAD_NAMES[7] = {"conv1.weight", "dw.bias",   "bn1.weight", "bn1.bias",
                                          "dw.weight",    "fc.weight", "fc.bias"};

/* One training step on the GPU; results downloaded into host tensors of `e`. */
static bool gpu_step(GpuEnv *e, Net *n, const Tensor *x, const Tensor *labels, StepResult *r)
{
    Ctx *g = e->gpu;
    Tensor *dx = cuda_tensor_from_host(g, x), *dl = cuda_tensor_from_host(g, labels);
    Tensor *loss = op_cross_entropy(g, net_logits(g, n, dx), dl);
    if (!loss || !tape_backward(g, loss) || !cuda_synchronize(g)) {
        printf("  FAIL training step on the GPU: %s\n", ctx_error_message(g));
        e->checks++, e->failures++;
        return false;
    }
    Tensor *tr[7];
    trainables(n, tr);
    r->loss = gh(e, DTYPE_F32, 0, NULL);
    bool ok = cuda_tensor_to_host(g, loss, r->loss);
    for (int i = 0; i < 7 && ok; i++) {
        r->grads[i] = gh_like(e, tr[i]);
        ok = cuda_tensor_to_host(g, tr[i]->grad, r->grads[i]);
    }
    r->rm = gh_like(e, n->m1);
    r->rv = gh_like(e, n->v1);
    ok = ok && cuda_tensor_to_host(g, n->m1, r->rm) && cuda_tensor_to_host(g, n->v1, r->rv);
    if (!ok) {
        printf("  FAIL downloading the step's results: %s\n", ctx_error_message(g));
        e->checks++, e->failures++;
    }
    return ok;
}

static bool same_bits(const Tensor *a, const Tensor *b) { return memcmp(a->data, b->data, tensor_bytes(a)) == 0; }

static void test_training_step(void **state)
{
    GpuEnv *e = gpu_begin(state, "training step through the op layer: GPU vs CPU, then a frozen second step");
    Net cpu_net, gpu_net;
    net_init(&cpu_net);
    net_init(&gpu_net);
    if (!cuda_params_upload(e->gpu, gpu_net.ps))
        fail_msg("cuda_params_upload: %s", ctx_error_message(e->gpu));
    Tensor *x = gh_rand(e, 77, -1, 1, DIMS(4, 3, 12, 12));
    Tensor *labels = gh(e, DTYPE_I32, DIMS(4));
    const int32_t lab[4] = {0, 3, 1, 4};
    memcpy(labels->data, lab, sizeof lab);

    /* CPU reference step */
    ctx_set_training(e->cpu, true);
    Tensor *loss = op_cross_entropy(e->cpu, net_logits(e->cpu, &cpu_net, x), labels);
    if (!loss || !tape_backward(e->cpu, loss))
        fail_msg("CPU training step: %s", ctx_error_message(e->cpu));

    /* GPU step 1: plans the arenas, builds the conv and GEMM plans */
    ctx_set_training(e->gpu, true);
    StepResult r1, r2;
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    if (gpu_step(e, &gpu_net, x, labels, &r1)) {
        Tensor *tr[7];
        trainables(&cpu_net, tr);
        Tensor *dloss = gd(e, r1.loss);
        gpu_expect_close(e, "step 1 loss", dloss, loss, TOL_COMPOSED);
        for (int i = 0; i < 7; i++) {
            char what[96];
            snprintf(what, sizeof what, "step 1 grad %s", GRAD_NAMES[i]);
            gpu_expect_close(e, what, gd(e, r1.grads[i]), tr[i]->grad, TOL_COMPOSED);
        }
        gpu_expect_close(e, "step 1 running mean", gd(e, r1.rm), cpu_net.m1, TOL_COMPOSED);
        gpu_expect_close(e, "step 1 running var", gd(e, r1.rv), cpu_net.v1, TOL_COMPOSED);
    }

    /* GPU step 2, everything frozen: must allocate nothing and reproduce step 1 exactly
     * (batch norm in training uses batch statistics, so the running-stat update of step 1
     * does not change the loss). */
    ctx_begin_pass(e->gpu);
    cuda_params_zero_grad(e->gpu, gpu_net.ps);
    CudaStats before, after;
    cuda_get_stats(e->gpu, &before);
    size_t host_before = e->gpu->host.system_allocs + e->gpu->scratch.system_allocs;
    arena_freeze(&e->gpu->arena, true);
    arena_freeze(&e->gpu->host, true);
    arena_freeze(&e->gpu->scratch, true);
    bool ok2 = gpu_step(e, &gpu_net, x, labels, &r2);
    arena_freeze(&e->gpu->arena, false);
    arena_freeze(&e->gpu->host, false);
    arena_freeze(&e->gpu->scratch, false);
    cuda_get_stats(e->gpu, &after);
    size_t host_after = e->gpu->host.system_allocs + e->gpu->scratch.system_allocs;
    e->checks++;
    bool no_alloc = ok2 && after.device_mallocs == before.device_mallocs && host_after == host_before &&
                    after.conv_plans == before.conv_plans && after.gemm_plans == before.gemm_plans;
    e->failures += !no_alloc;
    printf("  %s step 2 allocated nothing: device mallocs %zu -> %zu, host arena blocks %zu -> %zu, conv plans %d -> "
           "%d, gemm plans %d -> %d (activation arena %zu bytes planned, high water %zu; workspace %zu)\n",
           no_alloc ? "ok  " : "FAIL", before.device_mallocs, after.device_mallocs, host_before, host_after,
           before.conv_plans, after.conv_plans, before.gemm_plans, after.gemm_plans, after.arena_block_bytes,
           after.arena_high_water, after.scratch_block_bytes);
    if (ok2 && r1.loss) {
        e->checks++;
        bool same = same_bits(r1.loss, r2.loss);
        for (int i = 0; i < 7; i++)
            same = same && same_bits(r1.grads[i], r2.grads[i]);
        e->failures += !same;
        printf("  %s step 2 loss and all gradients bitwise equal to step 1's (deterministic kernels)\n",
               same ? "ok  " : "FAIL");
    }

    /* eval forward (running statistics, no dropout, no tape); the GPU's running statistics saw
     * two steps, the CPU's one: give the GPU the CPU's */
    ctx_begin_pass(e->cpu);
    ctx_begin_pass(e->gpu);
    e->gpu->ops->copy_from_host(e->gpu, gpu_net.m1, cpu_net.m1->data);
    e->gpu->ops->copy_from_host(e->gpu, gpu_net.v1, cpu_net.v1->data);
    ctx_set_training(e->cpu, false);
    ctx_set_training(e->gpu, false);
    Tensor *logits_cpu = net_logits(e->cpu, &cpu_net, x);
    Tensor *logits_gpu = net_logits(e->gpu, &gpu_net, cuda_tensor_from_host(e->gpu, x));
    if (!logits_cpu)
        fail_msg("CPU eval forward: %s", ctx_error_message(e->cpu));
    gpu_expect_close(e, "eval forward logits (4, 5)", logits_gpu, logits_cpu, TOL_COMPOSED);

    /* parameters round trip: download copies the device values into the host blocks */
    e->checks++;
    bool rt = cuda_params_download(e->gpu, gpu_net.ps);
    cuda_params_release(e->gpu, gpu_net.ps);
    rt = rt && gpu_net.ps->backend == BACKEND_CPU && gpu_net.w1->backend == BACKEND_CPU &&
         memcmp(gpu_net.w1->data, cpu_net.w1->data, tensor_bytes(cpu_net.w1)) == 0;
    e->failures += !rt;
    printf("  %s parameters download + release: host copy of conv1.weight unchanged, tensors back on the CPU\n",
           rt ? "ok  " : "FAIL");
    ctx_set_training(e->cpu, false);
    params_destroy(cpu_net.ps);
    params_destroy(gpu_net.ps);
    gpu_end(e);
}

int test_group_cuda_pass(int *total)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_step),
    };
    return gpu_run_group("cuda_pass", tests, sizeof tests / sizeof tests[0], total);
}
