/* meta_train_memory.c — session 3b record (not built by the Makefile): the activation-arena high-water mark of an
 * actnet-p128 training step (train_loss + backward) and of an eval pass on the meta backend, argv[1] = batch,
 * argv[2] = 1 train / 0 eval. Links against libfocusbench.a like scripts/gpu_debug/conditioning_probe.c. */
#include <stdio.h>
#include <stdlib.h>
#include "impl/method.h"
#include "baselines/registry.h"
#include "kernels/tape.h"
#include "kernels/context.h"
int main(int argc, char **argv)
{
    char err[512];
    int B = atoi(argv[1]); int train = argc > 2 ? atoi(argv[2]) : 1;
    Method *mm = method_create("uniadafocus-actnet-p128", NULL, BACKEND_META, train, 0, err, sizeof err);
    if (!mm) { printf("%s\n", err); return 1; }
    Ctx *ctx = ctx_create(BACKEND_META, 0);
    Tensor *clip = tensor_new(ctx, DTYPE_F32, 5, (int64_t[]){B, mm->frames, 3, mm->frame_size, mm->frame_size});
    Tensor *labels = tensor_new(ctx, DTYPE_I32, 1, (int64_t[]){B});
    size_t h0 = ctx->arena.high_water;
    if (train) {
        ctx_set_training(ctx, true);
        Tensor *loss = mm->ops->train_loss(ctx, mm, clip, labels, 1);
        size_t hf = ctx->arena.high_water;
        bool ok = loss && tape_backward(ctx, loss);
        printf("B=%d train: ok=%d %s clip %.2f GB, after fwd %.2f GB, after bwd %.2f GB\n", B, ok, ctx_error_message(ctx), h0/1e9, hf/1e9, ctx->arena.high_water/1e9);
    } else {
        Tensor *y = mm->ops->forward_exits(ctx, mm, clip, NULL);
        printf("B=%d eval: ok=%d %s %.2f GB\n", B, y != NULL, ctx_error_message(ctx), ctx->arena.high_water/1e9);
    }
    return 0;
}
