/* test_gpu_main.c — the GPU test binary (`make test-gpu`): CUDA groups of tests/gpu/. */
#include "tests/test_runner.h"

#define GPU_TEST_GROUPS X(device)

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
