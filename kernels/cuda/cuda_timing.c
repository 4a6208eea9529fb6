/* cuda_timing.c — see cuda_timing.h. */
#include "kernels/cuda/cuda_timing.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

struct CudaTimer {
    cudaEvent_t start, stop;
    bool started;
};

CudaTimer *cuda_timer_create(Ctx *ctx)
{
    if (!cuda_ready(ctx)) {
        if (ctx_ok(ctx))
            ctx_set_error(ctx, "cuda_timer_create: not a usable CUDA context");
        return NULL;
    }
    CudaTimer *t = calloc(1, sizeof *t);
    if (!t) {
        ctx_set_error(ctx, "cuda_timer_create: out of host memory");
        return NULL;
    }
    if (!CUDA_OK(ctx, cudaEventCreate(&t->start))) {
        free(t);
        return NULL;
    }
    if (!CUDA_OK(ctx, cudaEventCreate(&t->stop))) {
        cudaEventDestroy(t->start);
        free(t);
        return NULL;
    }
    return t;
}

void cuda_timer_destroy(CudaTimer *t)
{
    if (!t)
        return;
    cudaEventDestroy(t->start);
    cudaEventDestroy(t->stop);
    free(t);
}

bool cuda_timer_start(Ctx *ctx, CudaTimer *t)
{
    if (!cuda_ready(ctx))
        return false;
    t->started = CUDA_OK(ctx, cudaEventRecord(t->start, cuda_stream_of(ctx)));
    return t->started;
}

bool cuda_timer_stop(Ctx *ctx, CudaTimer *t, double *ms)
{
    *ms = NAN;
    if (!cuda_ready(ctx))
        return false;
    if (!t->started) {
        ctx_set_error(ctx, "cuda_timer_stop: the timer was not started");
        return false;
    }
    t->started = false;
    float f = 0;
    if (!CUDA_OK(ctx, cudaEventRecord(t->stop, cuda_stream_of(ctx))) || !CUDA_OK(ctx, cudaEventSynchronize(t->stop)) ||
        !CUDA_OK(ctx, cudaEventElapsedTime(&f, t->start, t->stop)))
        return false;
    *ms = f;
    return true;
}

/* ---- NVML ------------------------------------------------------------------------------------- */

/* The few NVML entry points used, declared by hand (nvml.h is not part of the toolkit here). */
typedef int nvml_ret;
typedef nvml_ret (*nvml_init_fn)(void);
typedef nvml_ret (*nvml_shutdown_fn)(void);
typedef nvml_ret (*nvml_by_pci_fn)(const char *pci_bus_id, void **device);
typedef nvml_ret (*nvml_clock_fn)(void *device, int clock_type, unsigned int *mhz);
typedef nvml_ret (*nvml_temp_fn)(void *device, int sensor, unsigned int *temp);
typedef nvml_ret (*nvml_reasons_fn)(void *device, unsigned long long *reasons);
typedef nvml_ret (*nvml_str_fn)(char *buf, unsigned int len);
typedef nvml_ret (*nvml_name_fn)(void *device, char *buf, unsigned int len);
typedef const char *(*nvml_err_fn)(nvml_ret r);

enum { NVML_OK = 0, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2, NVML_TEMPERATURE_GPU = 0 };

static void *sym(void *lib, const char *a, const char *b)
{
    void *p = dlsym(lib, a);
    return p || !b ? p : dlsym(lib, b);
}

void cuda_clocks_open(CudaClocks *c, Ctx *ctx)
{
    memset(c, 0, sizeof *c);
    c->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!c->lib) {
        snprintf(c->reason, sizeof c->reason, "NVML (libnvidia-ml.so.1) not found: GPU clocks unknown");
        return;
    }
    nvml_init_fn init = (nvml_init_fn)sym(c->lib, "nvmlInit_v2", "nvmlInit");
    nvml_by_pci_fn by_pci = (nvml_by_pci_fn)sym(c->lib, "nvmlDeviceGetHandleByPciBusId_v2", "nvmlDeviceGetHandleByPciBusId");
    nvml_str_fn drv = (nvml_str_fn)sym(c->lib, "nvmlSystemGetDriverVersion", NULL);
    nvml_name_fn name = (nvml_name_fn)sym(c->lib, "nvmlDeviceGetName", NULL);
    nvml_err_fn err_str = (nvml_err_fn)sym(c->lib, "nvmlErrorString", NULL);
    if (!init || !by_pci) {
        snprintf(c->reason, sizeof c->reason, "NVML lacks nvmlInit / nvmlDeviceGetHandleByPciBusId: GPU clocks unknown");
        cuda_clocks_close(c);
        return;
    }
    nvml_ret r = init();
    if (r != NVML_OK) {
        snprintf(c->reason, sizeof c->reason, "nvmlInit failed: %s: GPU clocks unknown", err_str ? err_str(r) : "?");
        dlclose(c->lib);
        c->lib = NULL;
        return;
    }
    char bus[64] = "";
    int dev = 0;
    cudaError_t ce = cudaGetDevice(&dev);
    if (ce == cudaSuccess)
        ce = cudaDeviceGetPCIBusId(bus, (int)sizeof bus, dev);
    if (ce != cudaSuccess) {
        snprintf(c->reason, sizeof c->reason, "cudaDeviceGetPCIBusId failed: %s: GPU clocks unknown",
                 cudaGetErrorString(ce));
        cudaGetLastError(); /* not the context's error: the clocks are optional */
        cuda_clocks_close(c);
        return;
    }
    r = by_pci(bus, &c->device);
    if (r != NVML_OK) {
        snprintf(c->reason, sizeof c->reason, "NVML does not know the device at PCI %s (%s): GPU clocks unknown", bus,
                 err_str ? err_str(r) : "?");
        cuda_clocks_close(c);
        return;
    }
    if (drv && drv(c->driver_version, sizeof c->driver_version) != NVML_OK)
        c->driver_version[0] = '\0';
    if (name && name(c->device, c->device_name, sizeof c->device_name) != NVML_OK)
        c->device_name[0] = '\0';
    (void)ctx;
    c->available = true;
}

void cuda_clocks_close(CudaClocks *c)
{
    if (c->lib) {
        nvml_shutdown_fn shut = (nvml_shutdown_fn)sym(c->lib, "nvmlShutdown", NULL);
        if (shut)
            shut();
        dlclose(c->lib);
    }
    c->lib = NULL;
    c->device = NULL;
    c->available = false;
}

CudaClockSample cuda_clocks_read(const CudaClocks *c)
{
    CudaClockSample s = {NAN, NAN, NAN, 0, false};
    if (!c->available)
        return s;
    nvml_clock_fn clock = (nvml_clock_fn)sym(c->lib, "nvmlDeviceGetClockInfo", NULL);
    nvml_temp_fn temp = (nvml_temp_fn)sym(c->lib, "nvmlDeviceGetTemperature", NULL);
    /* renamed from "throttle" to "clocks event" reasons in recent drivers; same bits */
    nvml_reasons_fn reasons = (nvml_reasons_fn)sym(c->lib, "nvmlDeviceGetCurrentClocksEventReasons",
                                                   "nvmlDeviceGetCurrentClocksThrottleReasons");
    unsigned int v = 0;
    if (clock && clock(c->device, NVML_CLOCK_SM, &v) == NVML_OK)
        s.sm_mhz = v;
    if (clock && clock(c->device, NVML_CLOCK_MEM, &v) == NVML_OK)
        s.mem_mhz = v;
    if (temp && temp(c->device, NVML_TEMPERATURE_GPU, &v) == NVML_OK)
        s.temperature_c = v;
    unsigned long long bits = 0;
    if (reasons && reasons(c->device, &bits) == NVML_OK) {
        s.reasons = bits;
        s.reasons_known = true;
    }
    return s;
}

void cuda_clock_reasons_str(uint64_t reasons, char *out, size_t cap)
{
    static const struct {
        uint64_t bit;
        const char *name;
    } names[] = {
        {0x1, "gpu-idle"},          {0x2, "applications-clocks-setting"}, {0x4, "sw-power-cap"},
        {0x8, "hw-slowdown"},       {0x10, "sync-boost"},                 {0x20, "sw-thermal-slowdown"},
        {0x40, "hw-thermal-slowdown"}, {0x80, "hw-power-brake-slowdown"}, {0x100, "display-clock-setting"},
    };
    if (cap == 0)
        return;
    out[0] = '\0';
    size_t n = 0;
    uint64_t known = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        known |= names[i].bit;
        if (reasons & names[i].bit) {
            int w = snprintf(out + n, cap - n, "%s%s", n ? ", " : "", names[i].name);
            if (w < 0 || (size_t)w >= cap - n)
                return;
            n += (size_t)w;
        }
    }
    if (reasons & ~known)
        snprintf(out + n, cap - n, "%sother(0x%llx)", n ? ", " : "", (unsigned long long)(reasons & ~known));
    else if (n == 0)
        snprintf(out, cap, "none");
}

/* ---- autotuning: the time of a piece of enqueued work (cuda_internal.h) ------------------- */

/* A timed group lasts at least this long (at most 64 runs); the fastest of TUNE_REPS counts. */
static const float TUNE_GROUP_MS = 0.25f;
enum { TUNE_REPS = 3 };

bool cuda_tuning_allowed(Ctx *ctx, bool *ok)
{
    enum cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    *ok = CUDA_OK(ctx, cudaStreamIsCapturing(cuda_state(ctx)->stream, &capture));
    return *ok && capture == cudaStreamCaptureStatusNone && !ctx->scratch.frozen;
}

/* `runs` executions of run(arg) between one pair of events: their mean in ms (INFINITY when one
 * fails; its error, if it set one, stays). */
static float runs_ms(Ctx *ctx, CudaTimedRun run, void *arg, cudaEvent_t e0, cudaEvent_t e1, int runs)
{
    cudaStream_t s = cuda_state(ctx)->stream;
    float ms = 0;
    bool ok = cudaEventRecord(e0, s) == cudaSuccess;
    for (int i = 0; ok && i < runs; i++)
        ok = run(arg);
    ok = ok && cudaEventRecord(e1, s) == cudaSuccess && cudaEventSynchronize(e1) == cudaSuccess &&
         cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess;
    if (!ok) {
        (void)cudaGetLastError();
        return INFINITY;
    }
    return ms / (float)runs;
}

float cuda_time_best(Ctx *ctx, CudaTimedRun run, void *arg)
{
    cudaEvent_t e0 = NULL, e1 = NULL;
    if (!CUDA_OK(ctx, cudaEventCreate(&e0)) || !CUDA_OK(ctx, cudaEventCreate(&e1))) {
        if (e0)
            cudaEventDestroy(e0);
        return INFINITY;
    }
    float best = INFINITY, once = runs_ms(ctx, run, arg, e0, e1, 1);
    if (isfinite(once)) {
        int runs = once >= TUNE_GROUP_MS ? 1 : (int)fminf(64.0f, ceilf(TUNE_GROUP_MS / fmaxf(once, 1e-3f)));
        for (int r = 0; r < TUNE_REPS && ctx_ok(ctx); r++)
            best = fminf(best, runs_ms(ctx, run, arg, e0, e1, runs));
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return best;
}
