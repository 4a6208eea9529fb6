/* cuda_timing.h — timing device work the right way, and the GPU clocks seen while doing it.
 *
 * Owns:
 *   - CudaTimer: a pair of CUDA events recorded on a context's stream around a region of
 *     enqueued work; the elapsed time is the device's, not the host's (a host clock around
 *     asynchronous work would time the launches). Every CUDA call is checked: a failure becomes
 *     the context's sticky error naming the call, file and line.
 *   - CudaClocks: the SM and memory clocks, temperature and clock-event (throttle) reasons from
 *     NVML, loaded at run time with dlopen("libnvidia-ml.so.1") so the binary neither links
 *     against NVML nor needs it: without it every reading says "unknown" with the reason. The
 *     NVML device is matched to the CUDA device by PCI bus id (NVML's and CUDA's orders may
 *     differ). Clocks are only read, never set.
 *
 * This header needs no CUDA headers; the functions exist only when the CUDA backend is built.
 */
#ifndef FOCUSBENCH_CUDA_TIMING_H
#define FOCUSBENCH_CUDA_TIMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/context.h"

typedef struct CudaTimer CudaTimer;

/* Two events on ctx's device (timing enabled). NULL with the context's error set on failure. */
CudaTimer *cuda_timer_create(Ctx *ctx);
void cuda_timer_destroy(CudaTimer *t);
/* Records the start event on ctx's stream. */
bool cuda_timer_start(Ctx *ctx, CudaTimer *t);
/* Records the stop event on ctx's stream, waits for it and stores the elapsed device time
 * between the two events in *ms. False with the context's error on any failure (a device fault
 * in the timed work shows up here). */
bool cuda_timer_stop(Ctx *ctx, CudaTimer *t, double *ms);

/* ---- clocks (NVML) ---------------------------------------------------------------------------- */

typedef struct {
    double sm_mhz, mem_mhz;  /* NaN when unknown */
    double temperature_c;    /* NaN when unknown */
    uint64_t reasons;        /* NVML clock-event reasons bitmask (0 when unknown or none) */
    bool reasons_known;
} CudaClockSample;

typedef struct {
    bool available;          /* NVML loaded and the device found */
    char reason[256];        /* why not, when !available */
    char driver_version[32]; /* "580.159.04", or "" */
    char device_name[96];
    void *lib;               /* dlopen handle */
    void *device;            /* nvmlDevice_t */
} CudaClocks;

/* Loads NVML and finds ctx's device. Always fills c (c->available false with the reason). */
void cuda_clocks_open(CudaClocks *c, Ctx *ctx);
void cuda_clocks_close(CudaClocks *c);
/* The current clocks; every field NaN / unknown when NVML is unavailable. */
CudaClockSample cuda_clocks_read(const CudaClocks *c);
/* "none", or the active throttle reasons, e.g. "sw-power-cap, hw-thermal-slowdown" ("gpu-idle"
 * alone is normal between runs). */
void cuda_clock_reasons_str(uint64_t reasons, char *out, size_t cap);

#endif
