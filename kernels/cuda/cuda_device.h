/* cuda_device.h — what CUDA device, driver and libraries this process sees.
 *
 * Owns: the device/driver/library version report used by `focusbench version`, the result
 * CSVs' environment columns and the GPU tests' preflight. Safe to call on a machine without a
 * GPU or driver: it then reports why no device is usable.
 */
#ifndef FOCUSBENCH_CUDA_DEVICE_H
#define FOCUSBENCH_CUDA_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    bool usable;            /* a device exists and runs this binary's kernels */
    char reason[512];       /* why not, when !usable */
    char name[256];         /* "NVIDIA H100 80GB HBM3" */
    int cc_major, cc_minor; /* compute capability */
    int driver_version;     /* CUDA version the driver supports, e.g. 13000 */
    int runtime_version;
    size_t cudnn_version;   /* runtime cuDNN, e.g. 91400 */
    size_t cublaslt_version;
    int compiled_arch;      /* the sm_XX this binary was built for */
    double mem_gib;
    int sm_count;
} CudaDeviceInfo;

/* Fills info for device 0; returns info->usable. Launches one tiny kernel to prove the
 * binary's architecture matches the device (else reason says which arch to build for). */
bool cuda_device_query(CudaDeviceInfo *info);

#endif
