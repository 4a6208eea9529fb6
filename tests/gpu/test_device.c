/* test_device.c — the GPU preflight: a device is usable and runs this binary's sm_XX code. */
#include <stdio.h>

#include "kernels/cuda/cuda_device.h"
#include "tests/test_util.h"

static void test_device_is_usable(void **state)
{
    CudaDeviceInfo info;
    if (!cuda_device_query(&info))
        fail_msg("%s", info.reason);
    printf("  device: %s, sm_%d%d, %d SMs, %.1f GiB; driver CUDA %d, runtime %d, cuDNN %zu, cuBLASLt %zu\n",
           info.name, info.cc_major, info.cc_minor, info.sm_count, info.mem_gib, info.driver_version,
           info.runtime_version, info.cudnn_version, info.cublaslt_version);
    assert_int_equal(info.cc_major * 10 + info.cc_minor, info.compiled_arch);
    assert_true(info.cudnn_version >= 90000);
}

TEST_GROUP(device, cmocka_unit_test(test_device_is_usable))
