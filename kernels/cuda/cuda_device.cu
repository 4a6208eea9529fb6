/* cuda_device.cu — see cuda_device.h. */
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "kernels/cuda/cuda_device.h"
}

#ifndef CUDA_ARCH_BUILT
#define CUDA_ARCH_BUILT 0
#endif

__global__ static void probe_kernel(int *out) { *out = 42; }

extern "C" bool cuda_device_query(CudaDeviceInfo *info)
{
    memset(info, 0, sizeof *info);
    info->compiled_arch = CUDA_ARCH_BUILT;
    info->cudnn_version = cudnnGetVersion();
    info->cublaslt_version = cublasLtGetVersion();
    cudaRuntimeGetVersion(&info->runtime_version);
    cudaError_t err = cudaDriverGetVersion(&info->driver_version);
    int count = 0;
    if (err == cudaSuccess)
        err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        snprintf(info->reason, sizeof info->reason, "no usable CUDA device (%s)",
                 err != cudaSuccess ? cudaGetErrorString(err) : "device count is 0");
        return false;
    }
    if (info->driver_version < info->runtime_version) {
        snprintf(info->reason, sizeof info->reason,
                 "the driver supports CUDA %d.%d but this binary needs %d.%d: update the driver",
                 info->driver_version / 1000, info->driver_version % 1000 / 10, info->runtime_version / 1000,
                 info->runtime_version % 1000 / 10);
        return false;
    }
    cudaDeviceProp prop;
    if ((err = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) {
        snprintf(info->reason, sizeof info->reason, "cudaGetDeviceProperties: %s", cudaGetErrorString(err));
        return false;
    }
    snprintf(info->name, sizeof info->name, "%s", prop.name);
    info->cc_major = prop.major;
    info->cc_minor = prop.minor;
    info->mem_gib = (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0);
    info->sm_count = prop.multiProcessorCount;
    int *d_out = NULL, h_out = 0;
    if ((err = cudaMalloc(&d_out, sizeof(int))) != cudaSuccess) {
        snprintf(info->reason, sizeof info->reason, "cudaMalloc: %s", cudaGetErrorString(err));
        return false;
    }
    probe_kernel<<<1, 1>>>(d_out);
    err = cudaGetLastError();
    if (err == cudaSuccess)
        err = cudaMemcpy(&h_out, d_out, sizeof(int), cudaMemcpyDeviceToHost);
    cudaFree(d_out);
    if (err != cudaSuccess || h_out != 42) {
        snprintf(info->reason, sizeof info->reason,
                 "this binary's kernels do not run on %s (sm_%d%d): %s; rebuild with CUDA_ARCH=%d%d", prop.name,
                 prop.major, prop.minor, cudaGetErrorString(err), prop.major, prop.minor);
        return false;
    }
    info->usable = true;
    return true;
}
