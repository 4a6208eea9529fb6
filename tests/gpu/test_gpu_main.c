/* test_gpu_main.c — the GPU test binary (`make test-gpu`): CUDA groups of tests/gpu/.
 *   device     the GPU preflight (device, driver, sm_XX of this binary)
 *   cuda_ops   every non-GEMM op of the CUDA table vs the CPU reference (test_cuda_ops.c)
 *   cuda_gemm  convolutions and linear layers at fp32 / tf32 / bf16 (test_cuda_gemm.c)
 *   cuda_pass  a training step and an eval pass through the op layer, planning (test_cuda_pass.c)
 *   cuda_models  backbones vs PyTorch fixtures, Uni-AdaFocus CPU vs GPU (inference, a training step), the
 *              device frame sampler and patch boxes bit for bit (test_cuda_models.c)
 *   cuda_graph   inference captured as a CUDA graph: replay == eager, no allocation, latency (test_cuda_models.c)
 *   cuda_x3d     X3D blocks and the channel-wise 3-D convolution kernel vs the CPU (test_cuda_x3d.c)
 *   cuda_fused   the bf16 channels-last activation path and fused conv epilogues vs the CPU (test_cuda_fused.c)
 *   dist_gpu     the NCCL communicator with one rank, and with several where the machine has several GPUs
 *   cuda_train   the trainers on the GPU: optimizer kernels, a step of every method CPU vs GPU, resume (test_cuda_train.c) */
#include "tests/test_runner.h"

#define GPU_TEST_GROUPS X(device) X(cuda_ops) X(cuda_gemm) X(cuda_pass) X(profile_gpu) X(cuda_models) X(cuda_graph) X(cuda_x3d) X(cuda_fused) X(dist_gpu) X(cuda_train)

#define X(name) int test_group_##name(int *total) __attribute__((weak));
GPU_TEST_GROUPS
#undef X

int main(int argc, char **argv)
{
    static const TestGroup groups[] = {
#define X(name) {#name, test_group_##name},
        GPU_TEST_GROUPS
#undef X
    };
    return test_run_groups(groups, (int)(sizeof groups / sizeof groups[0]), argc, argv);
}
