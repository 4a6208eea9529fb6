/* cupti_range.c — see cupti_range.h.
 *
 * Flow (CUDA 13.0, research/ecosystem.md §2.2, as verified on an H100 by the research probe):
 *   target  cuptiProfilerInitialize (once per process), cuptiProfilerDeviceSupported,
 *           cuptiDeviceGetChipName, cuptiProfilerGetCounterAvailability (size, then data; the
 *           first call that fails where the driver restricts counters);
 *   host    cuptiProfilerHostInitialize(RANGE_PROFILER, chip, availability), ConfigAddMetrics,
 *           GetConfigImageSize / GetConfigImage, GetNumOfPasses;
 *   range   cuptiRangeProfilerEnable(ctx), GetCounterDataSize, CounterDataImageInitialize,
 *           SetConfig(UserRange, UserReplay), then per pass Start → Push/Pop… → Stop until
 *           isAllPassSubmitted, DecodeData, GetCounterDataInfo, CounterDataGetRangeInfo and
 *           cuptiProfilerHostEvaluateToGpuValues per range; Disable, HostDeinitialize.
 *
 * cupti_profiler_host.h (CUPTI 13.0) includes C++'s <string> although it declares only C: the
 * Makefile compiles this file with a private include directory holding an empty file named
 * `string` (ecosystem.md §2.4), so the header compiles as C11.
 *
 * CUPTI's range profiler needs the CUcontext, which only the driver API hands out; the binary
 * does not link libcuda (it must start on machines without a driver), so cuCtxGetCurrent is
 * fetched through the runtime's cudaGetDriverEntryPointByVersion.
 */
#include "kernels/cuda/cupti_range.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda.h>
#include <cuda_runtime_api.h>
#include <cupti_profiler_host.h>
#include <cupti_profiler_target.h>
#include <cupti_range_profiler.h>
#include <cupti_result.h>
#include <cupti_target.h>

const char *const CUPTI_RANGE_METRIC_NAMES[CR_N_METRICS] = {
    [CR_TENSOR_FP16] = "sm__ops_path_tensor_src_fp16.sum",
    [CR_TENSOR_BF16] = "sm__ops_path_tensor_src_bf16_dst_fp32.sum",
    [CR_TENSOR_TF32] = "sm__ops_path_tensor_src_tf32_dst_fp32.sum",
    [CR_FFMA] = "smsp__sass_thread_inst_executed_op_ffma_pred_on.sum",
    [CR_FADD] = "smsp__sass_thread_inst_executed_op_fadd_pred_on.sum",
    [CR_FMUL] = "smsp__sass_thread_inst_executed_op_fmul_pred_on.sum",
    [CR_HFMA] = "smsp__sass_thread_inst_executed_op_hfma_pred_on.sum",
    [CR_HADD] = "smsp__sass_thread_inst_executed_op_hadd_pred_on.sum",
    [CR_HMUL] = "smsp__sass_thread_inst_executed_op_hmul_pred_on.sum",
    [CR_DFMA] = "smsp__sass_thread_inst_executed_op_dfma_pred_on.sum",
    [CR_DADD] = "smsp__sass_thread_inst_executed_op_dadd_pred_on.sum",
    [CR_DMUL] = "smsp__sass_thread_inst_executed_op_dmul_pred_on.sum",
    [CR_GPU_TIME_NS] = "gpu__time_duration.sum",
    [CR_SM_HZ] = "sm__cycles_elapsed.avg.per_second",
    [CR_DRAM_READ] = "dram__bytes_read.sum",
    [CR_DRAM_WRITE] = "dram__bytes_write.sum",
};

/* ---- FLOPs ------------------------------------------------------------------------------------- */

double cupti_range_tensor_flops(const CuptiRangeTotals *t)
{
    return t->v[CR_TENSOR_FP16] + t->v[CR_TENSOR_BF16] + t->v[CR_TENSOR_TF32];
}
double cupti_range_fp32_flops(const CuptiRangeTotals *t) { return 2 * t->v[CR_FFMA] + t->v[CR_FADD] + t->v[CR_FMUL]; }
double cupti_range_fp16_flops(const CuptiRangeTotals *t) { return 2 * t->v[CR_HFMA] + t->v[CR_HADD] + t->v[CR_HMUL]; }
double cupti_range_fp64_flops(const CuptiRangeTotals *t) { return 2 * t->v[CR_DFMA] + t->v[CR_DADD] + t->v[CR_DMUL]; }
double cupti_range_cuda_core_flops(const CuptiRangeTotals *t)
{
    return cupti_range_fp32_flops(t) + cupti_range_fp16_flops(t) + cupti_range_fp64_flops(t);
}

/* ---- messages ---------------------------------------------------------------------------------- */

static const char *result_string(CUptiResult r)
{
    const char *s = NULL;
    if (cuptiGetResultString(r, &s) != CUPTI_SUCCESS || !s)
        s = "unknown CUPTI error";
    return s;
}

/* What a user can do about a refusal. The texts carry the words cupti_range_refusal looks for. */
static const char *result_hint(CUptiResult r)
{
    switch (r) {
    case CUPTI_ERROR_INSUFFICIENT_PRIVILEGES:
    case CUPTI_ERROR_VIRTUALIZED_DEVICE_INSUFFICIENT_PRIVILEGES:
        return "the driver restricts GPU performance counters to administrators "
               "(NVreg_RestrictProfilingToAdminUsers=1; in a container add --cap-add SYS_ADMIN)";
    case CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED:
    case CUPTI_ERROR_HARDWARE_BUSY:
    case CUPTI_ERROR_OLD_PROFILER_API_INITIALIZED:
        return "another profiler (nsys, ncu, a CUPTI injection library) is attached to this process or GPU; run "
               "without it";
    case CUPTI_ERROR_NOT_INITIALIZED:
        return "CUPTI's profiler could not initialise: libnvperf_host.so / libnvperf_target.so must sit next to "
               "libcupti.so on the library path";
    case CUPTI_ERROR_NOT_COMPATIBLE:
        return "the driver is not compatible with this CUPTI";
    case CUPTI_ERROR_VIRTUALIZED_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_CONFIDENTIAL_COMPUTING_NOT_SUPPORTED:
    case CUPTI_ERROR_CMP_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_MIG_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_SLI_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_WSL_DEVICE_NOT_SUPPORTED:
    case CUPTI_ERROR_NOT_SUPPORTED:
        return "this device or configuration does not support GPU performance counters";
    case CUPTI_ERROR_INVALID_CHIP_NAME:
        return "CUPTI does not know this chip";
    default:
        return "";
    }
}

static bool fail(CUptiResult r, const char *call, char *err, size_t cap)
{
    const char *hint = result_hint(r);
    snprintf(err, cap, "%s failed: %s (%d)%s%s", call, result_string(r), (int)r, *hint ? ": " : "", hint);
    return false;
}

static bool ok_or(CUptiResult r, const char *call, char *err, size_t cap)
{
    return r == CUPTI_SUCCESS || fail(r, call, err, cap);
}
#define CK(call, err, cap) ok_or((call), #call, (err), (cap))
/* A CUPTI parameter struct, zeroed, with its structSize set. */
#define PARAMS(type, var) type var = {.structSize = type##_STRUCT_SIZE}

bool cupti_range_refusal(const char *m)
{
    return m && (strstr(m, "administrators") || strstr(m, "another profiler") ||
                 strstr(m, "does not support GPU performance counters"));
}

/* ---- host side --------------------------------------------------------------------------------- */

static void host_deinit(CUpti_Profiler_Host_Object *h)
{
    if (!h)
        return;
    PARAMS(CUpti_Profiler_Host_Deinitialize_Params, p);
    p.pHostObject = h;
    cuptiProfilerHostDeinitialize(&p);
}

/* The first of `metrics` that CUPTI refuses on its own (a fresh host object each), or -1. */
static int refused_metric(const char *chip, const uint8_t *availability, const char *const *metrics, int n)
{
    for (int i = 0; i < n; i++) {
        PARAMS(CUpti_Profiler_Host_Initialize_Params, ip);
        ip.profilerType = CUPTI_PROFILER_TYPE_RANGE_PROFILER;
        ip.pChipName = chip;
        ip.pCounterAvailabilityImage = availability;
        if (cuptiProfilerHostInitialize(&ip) != CUPTI_SUCCESS)
            return -1;
        const char *one[1] = {metrics[i]};
        PARAMS(CUpti_Profiler_Host_ConfigAddMetrics_Params, am);
        am.pHostObject = ip.pHostObject;
        am.ppMetricNames = one;
        am.numMetrics = 1;
        CUptiResult r = cuptiProfilerHostConfigAddMetrics(&am);
        host_deinit(ip.pHostObject);
        if (r != CUPTI_SUCCESS)
            return i;
    }
    return -1;
}

/* A host object for `chip` with `metrics` configured, and the config image (malloc'd).
 * availability may be NULL (offline). */
static bool host_config(const char *chip, const uint8_t *availability, const char *const *metrics, int n,
                        CUpti_Profiler_Host_Object **host, uint8_t **config, size_t *config_size, char *err,
                        size_t cap)
{
    *host = NULL;
    *config = NULL;
    *config_size = 0;
    if (!chip || !*chip || n <= 0 || n > 256) {
        snprintf(err, cap, "cupti range: a chip name and 1..256 metrics are needed");
        return false;
    }
    PARAMS(CUpti_Profiler_Host_Initialize_Params, ip);
    ip.profilerType = CUPTI_PROFILER_TYPE_RANGE_PROFILER;
    ip.pChipName = chip;
    ip.pCounterAvailabilityImage = availability;
    CUptiResult r = cuptiProfilerHostInitialize(&ip);
    if (r != CUPTI_SUCCESS) {
        char call[128];
        snprintf(call, sizeof call, "cuptiProfilerHostInitialize(chip \"%.40s\")", chip);
        return fail(r, call, err, cap);
    }
    *host = ip.pHostObject;
    /* All metrics in ONE call: CUPTI schedules the passes per call, so adding them one by one
     * would give each its own passes (9 SASS counters: 9 passes instead of 1). */
    const char *names[256]; /* ppMetricNames is not const-qualified */
    for (int i = 0; i < n; i++)
        names[i] = metrics[i];
    PARAMS(CUpti_Profiler_Host_ConfigAddMetrics_Params, am);
    am.pHostObject = *host;
    am.ppMetricNames = names;
    am.numMetrics = (size_t)n;
    r = cuptiProfilerHostConfigAddMetrics(&am);
    if (r != CUPTI_SUCCESS) {
        int bad_i = n > 1 ? refused_metric(chip, availability, metrics, n) : 0;
        char call[256];
        if (bad_i >= 0)
            snprintf(call, sizeof call, "cuptiProfilerHostConfigAddMetrics(\"%.120s\" on %.40s)", metrics[bad_i], chip);
        else
            snprintf(call, sizeof call, "cuptiProfilerHostConfigAddMetrics(%d metrics on %.40s)", n, chip);
        fail(r, call, err, cap);
        goto bad;
    }
    PARAMS(CUpti_Profiler_Host_GetConfigImageSize_Params, cs);
    cs.pHostObject = *host;
    if (!CK(cuptiProfilerHostGetConfigImageSize(&cs), err, cap))
        goto bad;
    *config = malloc(cs.configImageSize ? cs.configImageSize : 1);
    if (!*config) {
        snprintf(err, cap, "cupti range: out of memory for a %zu-byte config image", cs.configImageSize);
        goto bad;
    }
    PARAMS(CUpti_Profiler_Host_GetConfigImage_Params, gi);
    gi.pHostObject = *host;
    gi.configImageSize = cs.configImageSize;
    gi.pConfigImage = *config;
    if (!CK(cuptiProfilerHostGetConfigImage(&gi), err, cap))
        goto bad;
    *config_size = cs.configImageSize;
    return true;
bad:
    free(*config);
    *config = NULL;
    host_deinit(*host);
    *host = NULL;
    return false;
}

static bool config_passes(uint8_t *config, size_t size, size_t *passes, char *err, size_t cap)
{
    PARAMS(CUpti_Profiler_Host_GetNumOfPasses_Params, np);
    np.configImageSize = size;
    np.pConfigImage = config;
    if (!CK(cuptiProfilerHostGetNumOfPasses(&np), err, cap))
        return false;
    *passes = np.numOfPasses;
    return true;
}

bool cupti_range_host_passes(const char *chip, const char *const *metrics, int n_metrics, size_t *passes,
                             size_t *config_bytes, char *err, size_t err_cap)
{
    CUpti_Profiler_Host_Object *host;
    uint8_t *config;
    size_t size;
    if (!host_config(chip, NULL, metrics, n_metrics, &host, &config, &size, err, err_cap))
        return false;
    size_t p = 0;
    bool ok = config_passes(config, size, &p, err, err_cap);
    if (ok) {
        if (passes)
            *passes = p;
        if (config_bytes)
            *config_bytes = size;
    }
    free(config);
    host_deinit(host);
    return ok;
}

bool cupti_range_chip_supported(const char *chip, int *n_chips, char *err, size_t err_cap)
{
    PARAMS(CUpti_Profiler_Host_GetSupportedChips_Params, sc);
    if (!CK(cuptiProfilerHostGetSupportedChips(&sc), err, err_cap))
        return false;
    if (n_chips)
        *n_chips = (int)sc.numChips;
    for (size_t i = 0; chip && i < sc.numChips; i++)
        if (sc.ppChipNames[i] && strcmp(sc.ppChipNames[i], chip) == 0)
            return true;
    snprintf(err, err_cap, "CUPTI's host API does not know chip \"%s\" (it knows %zu chips)", chip ? chip : "(null)",
             sc.numChips);
    return false;
}

/* ---- the session ------------------------------------------------------------------------------- */

struct CuptiRange {
    char chip[64];
    CUcontext ctx;
    uint8_t *availability;
    CUpti_Profiler_Host_Object *host;
    uint8_t *config;
    size_t config_size, passes;
    CUpti_RangeProfiler_Object *obj;
    uint8_t *counter_data;
    size_t counter_data_size;
    int max_ranges;
    bool in_pass, range_open, all_done;
    char open_name[CUPTI_RANGE_NAME_CAP]; /* the open range's name (without "#k") */
    int n_ranges_pass;          /* ranges opened in the current pass */
    char seen[64][CUPTI_RANGE_NAME_CAP]; /* names of this pass and how often each was opened */
    int seen_count[64];
    int n_seen;
    char error[512];            /* first error inside a pass (sticky until pass_end) */
};

static int g_profiler_users; /* cuptiProfilerInitialize done while > 0 or g_profiler_init */
static bool g_profiler_init;

static bool profiler_init(char *err, size_t cap)
{
    if (g_profiler_init)
        return true;
    PARAMS(CUpti_Profiler_Initialize_Params, pi);
    if (!CK(cuptiProfilerInitialize(&pi), err, cap))
        return false;
    g_profiler_init = true;
    return true;
}

void cupti_range_shutdown(void)
{
    if (!g_profiler_init || g_profiler_users > 0)
        return;
    PARAMS(CUpti_Profiler_DeInitialize_Params, pd);
    cuptiProfilerDeInitialize(&pd);
    g_profiler_init = false;
}

typedef CUresult (*CtxGetCurrentFn)(CUcontext *);

static bool current_context(CUcontext *out, char *err, size_t cap)
{
    *out = NULL;
    void *fn = NULL;
    enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    cudaError_t e = cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &fn, 12000, cudaEnableDefault, &q);
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || !fn) {
        snprintf(err, cap, "cupti range: cannot reach the driver's cuCtxGetCurrent (%s)", cudaGetErrorString(e));
        return false;
    }
    CtxGetCurrentFn get = (CtxGetCurrentFn)(uintptr_t)fn;
    if (get(out) != CUDA_SUCCESS || !*out) {
        snprintf(err, cap, "cupti range: no current CUDA context (create the CUDA context first)");
        return false;
    }
    return true;
}

static const char *support_level(CUpti_Profiler_Support_Level l)
{
    return l == CUPTI_PROFILER_CONFIGURATION_SUPPORTED  ? "supported"
           : l == CUPTI_PROFILER_CONFIGURATION_DISABLED ? "disabled"
           : l == CUPTI_PROFILER_CONFIGURATION_UNSUPPORTED ? "unsupported"
                                                           : "unknown";
}

static bool device_supported(char *err, size_t cap)
{
    PARAMS(CUpti_Profiler_DeviceSupported_Params, p);
    p.cuDevice = 0;
    p.api = CUPTI_PROFILER_RANGE_PROFILING;
    if (!CK(cuptiProfilerDeviceSupported(&p), err, cap))
        return false;
    if (p.isSupported == CUPTI_PROFILER_CONFIGURATION_SUPPORTED)
        return true;
    snprintf(err, cap, "cuptiProfilerDeviceSupported: this device or configuration does not support GPU performance "
             "counters (architecture %s, SLI %s, vGPU %s, confidential compute %s, CMP %s, WSL %s)",
             support_level(p.architecture), support_level(p.sli), support_level(p.vGpu),
             support_level(p.confidentialCompute), support_level(p.cmp), support_level(p.wsl));
    return false;
}

static void session_free(CuptiRange *cr)
{
    if (cr->obj) {
        PARAMS(CUpti_RangeProfiler_Disable_Params, dp);
        dp.pRangeProfilerObject = cr->obj;
        cuptiRangeProfilerDisable(&dp);
    }
    host_deinit(cr->host);
    free(cr->config);
    free(cr->availability);
    free(cr->counter_data);
    free(cr);
}

CuptiRange *cupti_range_create(int max_ranges, char *err, size_t cap)
{
    if (max_ranges < 1 || max_ranges > 4096) {
        snprintf(err, cap, "cupti_range_create: max_ranges must be in [1, 4096], not %d", max_ranges);
        return NULL;
    }
    CuptiRange *cr = calloc(1, sizeof *cr);
    if (!cr) {
        snprintf(err, cap, "cupti range: out of memory");
        return NULL;
    }
    cr->max_ranges = max_ranges;
    if (!profiler_init(err, cap)) {
        free(cr);
        return NULL;
    }
    g_profiler_users++;
    if (!current_context(&cr->ctx, err, cap) || !device_supported(err, cap))
        goto bad;

    PARAMS(CUpti_Device_GetChipName_Params, cn);
    cn.deviceIndex = 0;
    if (!CK(cuptiDeviceGetChipName(&cn), err, cap))
        goto bad;
    snprintf(cr->chip, sizeof cr->chip, "%s", cn.pChipName ? cn.pChipName : "?");

    /* where the driver restricts counters, this is usually the first call to say so */
    PARAMS(CUpti_Profiler_GetCounterAvailability_Params, ca);
    ca.ctx = cr->ctx;
    if (!CK(cuptiProfilerGetCounterAvailability(&ca), err, cap))
        goto bad;
    cr->availability = malloc(ca.counterAvailabilityImageSize ? ca.counterAvailabilityImageSize : 1);
    if (!cr->availability) {
        snprintf(err, cap, "cupti range: out of memory");
        goto bad;
    }
    ca.pCounterAvailabilityImage = cr->availability;
    if (!CK(cuptiProfilerGetCounterAvailability(&ca), err, cap))
        goto bad;

    if (!host_config(cr->chip, cr->availability, CUPTI_RANGE_METRIC_NAMES, CR_N_METRICS, &cr->host, &cr->config,
                     &cr->config_size, err, cap) ||
        !config_passes(cr->config, cr->config_size, &cr->passes, err, cap))
        goto bad;

    PARAMS(CUpti_RangeProfiler_Enable_Params, en);
    en.ctx = cr->ctx;
    if (!CK(cuptiRangeProfilerEnable(&en), err, cap))
        goto bad;
    cr->obj = en.pRangeProfilerObject;

    const char *names[CR_N_METRICS];
    for (int i = 0; i < CR_N_METRICS; i++)
        names[i] = CUPTI_RANGE_METRIC_NAMES[i];
    PARAMS(CUpti_RangeProfiler_GetCounterDataSize_Params, ds);
    ds.pRangeProfilerObject = cr->obj;
    ds.pMetricNames = names;
    ds.numMetrics = CR_N_METRICS;
    ds.maxNumOfRanges = (size_t)max_ranges;
    ds.maxNumRangeTreeNodes = (uint32_t)max_ranges;
    if (!CK(cuptiRangeProfilerGetCounterDataSize(&ds), err, cap))
        goto bad;
    cr->counter_data = calloc(1, ds.counterDataSize ? ds.counterDataSize : 1);
    if (!cr->counter_data) {
        snprintf(err, cap, "cupti range: out of memory for a %zu-byte counter data image", ds.counterDataSize);
        goto bad;
    }
    cr->counter_data_size = ds.counterDataSize;
    PARAMS(CUpti_RangeProfiler_CounterDataImage_Initialize_Params, ci);
    ci.pRangeProfilerObject = cr->obj;
    ci.counterDataSize = cr->counter_data_size;
    ci.pCounterData = cr->counter_data;
    if (!CK(cuptiRangeProfilerCounterDataImageInitialize(&ci), err, cap))
        goto bad;

    PARAMS(CUpti_RangeProfiler_SetConfig_Params, sc);
    sc.pRangeProfilerObject = cr->obj;
    sc.configSize = cr->config_size;
    sc.pConfig = cr->config;
    sc.counterDataImageSize = cr->counter_data_size;
    sc.pCounterDataImage = cr->counter_data;
    sc.range = CUPTI_UserRange;
    sc.replayMode = CUPTI_UserReplay; /* KernelReplay is refused with UserRange (verified) */
    sc.maxRangesPerPass = (size_t)max_ranges;
    sc.numNestingLevels = 1;
    sc.minNestingLevel = 1;
    sc.passIndex = 0;
    sc.targetNestingLevel = 1;
    if (!CK(cuptiRangeProfilerSetConfig(&sc), err, cap))
        goto bad;
    return cr;
bad:
    session_free(cr);
    g_profiler_users--;
    return NULL;
}

const char *cupti_range_chip(const CuptiRange *cr) { return cr->chip; }
size_t cupti_range_passes(const CuptiRange *cr) { return cr->passes; }

static void keep_error(CuptiRange *cr, const char *msg)
{
    if (!cr->error[0])
        snprintf(cr->error, sizeof cr->error, "%s", msg);
}

/* Waits for the device so the range holds exactly the work launched inside it. */
static void range_sync(CuptiRange *cr)
{
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        char m[256];
        snprintf(m, sizeof m, "cupti range: cudaDeviceSynchronize at a range boundary: %s", cudaGetErrorString(e));
        keep_error(cr, m);
    }
}

bool cupti_range_pass_begin(CuptiRange *cr, char *err, size_t cap)
{
    if (cr->in_pass || cr->all_done) {
        snprintf(err, cap, "cupti_range_pass_begin: %s", cr->in_pass ? "a pass is already running"
                                                                     : "every pass was already submitted");
        return false;
    }
    range_sync(cr); /* work queued before the pass stays out of it */
    PARAMS(CUpti_RangeProfiler_Start_Params, st);
    st.pRangeProfilerObject = cr->obj;
    if (!CK(cuptiRangeProfilerStart(&st), err, cap))
        return false;
    cr->in_pass = true;
    cr->range_open = false;
    cr->n_ranges_pass = 0;
    cr->n_seen = 0;
    cr->error[0] = '\0';
    return true;
}

void cupti_range_leave(CuptiRange *cr)
{
    if (!cr || !cr->in_pass || !cr->range_open)
        return;
    range_sync(cr);
    PARAMS(CUpti_RangeProfiler_PopRange_Params, pp);
    pp.pRangeProfilerObject = cr->obj;
    char m[512];
    if (!CK(cuptiRangeProfilerPopRange(&pp), m, sizeof m))
        keep_error(cr, m);
    cr->range_open = false;
}

void cupti_range_enter(CuptiRange *cr, const char *name)
{
    if (!cr || !cr->in_pass)
        return;
    name = name && *name ? name : "unnamed";
    if (cr->range_open && strcmp(cr->open_name, name) == 0)
        return; /* already inside it: scope changes within one component keep its range */
    cupti_range_leave(cr);
    int k = 0;
    while (k < cr->n_seen && strcmp(cr->seen[k], name) != 0)
        k++;
    if (k == cr->n_seen) {
        if (k == (int)(sizeof cr->seen / sizeof cr->seen[0])) {
            keep_error(cr, "cupti range: more than 64 distinct range names in one pass");
            return;
        }
        snprintf(cr->seen[k], CUPTI_RANGE_NAME_CAP, "%s", name);
        cr->seen_count[k] = 0;
        cr->n_seen++;
    }
    if (cr->n_ranges_pass == cr->max_ranges) {
        char m[160];
        snprintf(m, sizeof m, "cupti range: more than %d ranges in one pass (raise max_ranges)", cr->max_ranges);
        keep_error(cr, m);
        return;
    }
    char full[CUPTI_RANGE_NAME_CAP + 16];
    snprintf(full, sizeof full, "%s#%d", cr->seen[k], cr->seen_count[k]++);
    PARAMS(CUpti_RangeProfiler_PushRange_Params, pr);
    pr.pRangeProfilerObject = cr->obj;
    pr.pRangeName = full;
    char m[512];
    if (!CK(cuptiRangeProfilerPushRange(&pr), m, sizeof m)) {
        keep_error(cr, m);
        return;
    }
    cr->range_open = true;
    snprintf(cr->open_name, sizeof cr->open_name, "%s", cr->seen[k]);
    cr->n_ranges_pass++;
}

bool cupti_range_pass_end(CuptiRange *cr, bool *all_done, char *err, size_t cap)
{
    if (all_done)
        *all_done = false;
    if (!cr->in_pass) {
        snprintf(err, cap, "cupti_range_pass_end: no pass is running");
        return false;
    }
    cupti_range_leave(cr);
    PARAMS(CUpti_RangeProfiler_Stop_Params, sp);
    sp.pRangeProfilerObject = cr->obj;
    bool ok = CK(cuptiRangeProfilerStop(&sp), err, cap);
    cr->in_pass = false;
    if (ok && cr->error[0]) {
        snprintf(err, cap, "%s", cr->error);
        ok = false;
    }
    if (!ok)
        return false;
    cr->all_done = sp.isAllPassSubmitted != 0;
    if (all_done)
        *all_done = cr->all_done;
    return true;
}

bool cupti_range_collect(CuptiRange *cr, CuptiRangeWork work, void *user, int *passes_run, char *err, size_t cap)
{
    int n = 0;
    bool done = false;
    if (passes_run)
        *passes_run = 0;
    while (!done) {
        if (n == CUPTI_RANGE_MAX_PASSES) {
            snprintf(err, cap, "cupti range: CUPTI still wanted passes after %d (it said %zu)", n, cr->passes);
            return false;
        }
        if (!cupti_range_pass_begin(cr, err, cap))
            return false;
        if (!work(cr, user, err, cap)) {
            char ignore[64];
            bool d;
            cupti_range_pass_end(cr, &d, ignore, sizeof ignore); /* leaves CUPTI consistent */
            return false;
        }
        if (!cupti_range_pass_end(cr, &done, err, cap))
            return false;
        n++;
        if (passes_run)
            *passes_run = n;
    }
    return true;
}

/* "focus#3" → "focus" */
static void base_name(const char *full, char *out, size_t cap)
{
    const char *hash = strrchr(full, '#');
    size_t n = hash ? (size_t)(hash - full) : strlen(full);
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), full);
}

bool cupti_range_results(CuptiRange *cr, CuptiRangeTotals *out, int cap, int *n_out, size_t *dropped, char *err,
                         size_t err_cap)
{
    *n_out = 0;
    if (dropped)
        *dropped = 0;
    if (!cr->all_done) {
        snprintf(err, err_cap, "cupti_range_results: CUPTI has not got every pass yet (%zu needed)", cr->passes);
        return false;
    }
    PARAMS(CUpti_RangeProfiler_DecodeData_Params, dd);
    dd.pRangeProfilerObject = cr->obj;
    if (!CK(cuptiRangeProfilerDecodeData(&dd), err, err_cap))
        return false;
    if (dropped)
        *dropped = dd.numOfRangeDropped;
    PARAMS(CUpti_RangeProfiler_GetCounterDataInfo_Params, di);
    di.pCounterDataImage = cr->counter_data;
    di.counterDataImageSize = cr->counter_data_size;
    if (!CK(cuptiRangeProfilerGetCounterDataInfo(&di), err, err_cap))
        return false;
    const char *names[CR_N_METRICS];
    for (int i = 0; i < CR_N_METRICS; i++)
        names[i] = CUPTI_RANGE_METRIC_NAMES[i];
    double clock_weight[64] = {0}; /* per output: GPU time behind the clock mean */
    for (size_t r = 0; r < di.numTotalRanges; r++) {
        PARAMS(CUpti_RangeProfiler_CounterData_GetRangeInfo_Params, ri);
        ri.pCounterDataImage = cr->counter_data;
        ri.counterDataImageSize = cr->counter_data_size;
        ri.rangeIndex = r;
        ri.rangeDelimiter = "/";
        if (!CK(cuptiRangeProfilerCounterDataGetRangeInfo(&ri), err, err_cap))
            return false;
        double v[CR_N_METRICS];
        PARAMS(CUpti_Profiler_Host_EvaluateToGpuValues_Params, ev);
        ev.pHostObject = cr->host;
        ev.pCounterDataImage = cr->counter_data;
        ev.counterDataImageSize = cr->counter_data_size;
        ev.rangeIndex = r;
        ev.ppMetricNames = names;
        ev.numMetrics = CR_N_METRICS;
        ev.pMetricValues = v;
        if (!CK(cuptiProfilerHostEvaluateToGpuValues(&ev), err, err_cap))
            return false;
        char base[CUPTI_RANGE_NAME_CAP];
        base_name(ri.rangeName ? ri.rangeName : "?", base, sizeof base);
        int k = 0;
        while (k < *n_out && strcmp(out[k].name, base) != 0)
            k++;
        if (k == *n_out) {
            if (k == cap || k == (int)(sizeof clock_weight / sizeof clock_weight[0])) {
                snprintf(err, err_cap, "cupti_range_results: more than %d range names", k);
                return false;
            }
            memset(&out[k], 0, sizeof out[k]);
            snprintf(out[k].name, sizeof out[k].name, "%s", base);
            (*n_out)++;
        }
        CuptiRangeTotals *t = &out[k];
        t->ranges++;
        for (int m = 0; m < CR_N_METRICS; m++) {
            if (m == CR_SM_HZ || !isfinite(v[m]))
                continue;
            t->v[m] += v[m];
        }
        /* the clock: a running mean weighted by each range's GPU time */
        double w = isfinite(v[CR_GPU_TIME_NS]) && v[CR_GPU_TIME_NS] > 0 ? v[CR_GPU_TIME_NS] : 0;
        if (w > 0 && isfinite(v[CR_SM_HZ])) {
            t->v[CR_SM_HZ] = (t->v[CR_SM_HZ] * clock_weight[k] + v[CR_SM_HZ] * w) / (clock_weight[k] + w);
            clock_weight[k] += w;
        }
    }
    return true;
}

void cupti_range_destroy(CuptiRange *cr)
{
    if (!cr)
        return;
    if (cr->in_pass) {
        char ignore[64];
        bool d;
        cupti_range_pass_end(cr, &d, ignore, sizeof ignore);
    }
    session_free(cr);
    g_profiler_users--;
}
