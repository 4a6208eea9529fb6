/* cupti_range.h — hardware FLOPs per named range from the CUPTI range profiler (CUDA 13 API).
 *
 * Owns: the metric set that counts floating-point work on Hopper, the metric configuration and
 * evaluation through CUPTI's host API (cupti_profiler_host.h: works without a GPU, so metric
 * names and pass counts can be checked offline), and a range-profiling session on the current
 * CUDA context of device 0 (cupti_range_profiler.h) in UserRange + UserReplay mode: the caller
 * runs the same workload once per pass (CUPTI needs several passes to read every counter), naming
 * ranges as it goes, and gets per-name sums back.
 *
 * The metrics (research/ecosystem.md §2.3, verified on an H100 against 2·M·N·K and 2·MACs):
 *   tensor cores  sm__ops_path_tensor_src_{fp16, bf16_dst_fp32, tf32_dst_fp32}.sum count
 *                 mathematical ops, a MAC counting 2: they ARE FLOPs;
 *   CUDA cores    FLOPs = 2·FFMA + FADD + FMUL from smsp__sass_thread_inst_executed_op_
 *                 {f,h,d}{fma,add,mul}_pred_on.sum (NVIDIA's flop_count_sp mapping), per
 *                 precision (fp32, fp16, fp64);
 *   also          gpu__time_duration.sum, sm__cycles_elapsed.avg.per_second (the SM clock that
 *                 was reached), dram__bytes_{read,write}.sum.
 * Hardware counts include work the paper convention leaves out (epilogues, conversions, samplers,
 * padding of tiles); they are reported beside the analytic MACs, never instead of them.
 *
 * Ranges. cupti_range_enter(name) closes the range that is open and opens one named
 * "name#k" (k-th range of that name in the pass, so every range of a pass is a distinct node of
 * CUPTI's range tree); results are summed per name (without the "#k"). Each range boundary
 * synchronises the device, so a range holds exactly the work launched inside it. The sequence of
 * ranges must be the same in every pass (a deterministic forward pass is). Timing taken under the
 * range profiler is perturbed: measure latency before, never during, a session.
 *
 * Errors: one-line messages naming the CUPTI call, CUPTI's result string and what the user can do
 * (profiling restricted to administrators, another profiler attached, an unsupported device).
 * cupti_range_refusal() tells such machine policies apart from bugs.
 *
 * This header needs no CUDA headers; the functions exist only when the CUDA backend is built.
 */
#ifndef FOCUSBENCH_CUPTI_RANGE_H
#define FOCUSBENCH_CUPTI_RANGE_H

#include <stdbool.h>
#include <stddef.h>

enum { CUPTI_RANGE_NAME_CAP = 64, CUPTI_RANGE_MAX_PASSES = 64 };

/* The metric set, in config order (CUPTI_RANGE_METRIC_NAMES). */
typedef enum {
    CR_TENSOR_FP16 = 0, /* sm__ops_path_tensor_src_fp16.sum (ops) */
    CR_TENSOR_BF16,     /* sm__ops_path_tensor_src_bf16_dst_fp32.sum */
    CR_TENSOR_TF32,     /* sm__ops_path_tensor_src_tf32_dst_fp32.sum */
    CR_FFMA,            /* smsp__sass_thread_inst_executed_op_ffma_pred_on.sum (thread instructions) */
    CR_FADD,
    CR_FMUL,
    CR_HFMA,
    CR_HADD,
    CR_HMUL,
    CR_DFMA,
    CR_DADD,
    CR_DMUL,
    CR_GPU_TIME_NS,     /* gpu__time_duration.sum (ns) */
    CR_SM_HZ,           /* sm__cycles_elapsed.avg.per_second (Hz) */
    CR_DRAM_READ,       /* dram__bytes_read.sum (bytes) */
    CR_DRAM_WRITE,      /* dram__bytes_write.sum */
    CR_N_METRICS
} CuptiRangeMetric;

extern const char *const CUPTI_RANGE_METRIC_NAMES[CR_N_METRICS];

/* The chip name the offline checks use when no GPU is there: the H100's (GH100). */
#define CUPTI_RANGE_DEFAULT_CHIP "GH100"

/* Sums over the ranges of one name. v[CR_SM_HZ] is the mean over those ranges weighted by their
 * GPU time; every other metric is a plain sum. */
typedef struct {
    char name[CUPTI_RANGE_NAME_CAP];
    int ranges; /* ranges summed (per pass) */
    double v[CR_N_METRICS];
} CuptiRangeTotals;

/* FLOPs from the totals (see the file comment). cuda_core = fp32 + fp16 + fp64. */
double cupti_range_tensor_flops(const CuptiRangeTotals *t);
double cupti_range_fp32_flops(const CuptiRangeTotals *t);
double cupti_range_fp16_flops(const CuptiRangeTotals *t);
double cupti_range_fp64_flops(const CuptiRangeTotals *t);
double cupti_range_cuda_core_flops(const CuptiRangeTotals *t);

/* ---- host API (no GPU needed) ----------------------------------------------------------------- */

/* Builds the range profiler's config image for `metrics` on `chip` ("GH100", ...) and counts the
 * replay passes it needs. False with a message naming the refused metric or chip. */
bool cupti_range_host_passes(const char *chip, const char *const *metrics, int n_metrics, size_t *passes,
                             size_t *config_bytes, char *err, size_t err_cap);
/* Whether CUPTI's host API knows `chip`; *n_chips (optional) receives how many chips it knows. */
bool cupti_range_chip_supported(const char *chip, int *n_chips, char *err, size_t err_cap);

/* ---- a session on the GPU --------------------------------------------------------------------- */

typedef struct CuptiRange CuptiRange;

/* Initialises the profiler for the current CUDA context of device 0 (the context must exist),
 * configures the metric set and enables range profiling for up to max_ranges ranges per pass.
 * NULL with a one-line message when CUPTI refuses; nothing stays enabled then. */
CuptiRange *cupti_range_create(int max_ranges, char *err, size_t err_cap);
const char *cupti_range_chip(const CuptiRange *cr);
/* Replay passes the metric set needs (the host API's count). */
size_t cupti_range_passes(const CuptiRange *cr);

/* One pass of the workload: the work runs between pass_begin and pass_end, inside ranges. */
bool cupti_range_pass_begin(CuptiRange *cr, char *err, size_t err_cap);
/* Closes the open range (if any) and opens the next range of `name`; nothing when the open
 * range already has that name. Errors are kept and reported by pass_end (this is called from
 * inside model code). */
void cupti_range_enter(CuptiRange *cr, const char *name);
/* Closes the open range (if any). */
void cupti_range_leave(CuptiRange *cr);
/* Ends the pass (closing an open range); *all_done is true once CUPTI has every pass it needs. */
bool cupti_range_pass_end(CuptiRange *cr, bool *all_done, char *err, size_t err_cap);

/* The workload of one pass; returns false with a message on failure. */
typedef bool (*CuptiRangeWork)(CuptiRange *cr, void *user, char *err, size_t err_cap);
/* Runs `work` once per pass until CUPTI has them all (at most CUPTI_RANGE_MAX_PASSES);
 * *passes_run (optional) receives how many ran. */
bool cupti_range_collect(CuptiRange *cr, CuptiRangeWork work, void *user, int *passes_run, char *err,
                         size_t err_cap);

/* After the last pass: decodes the counters and evaluates the metric set per range, summed per
 * name in first-seen order into out[0 .. *n_out). *dropped (optional) receives the ranges CUPTI
 * could not store (more than max_ranges in a pass). */
bool cupti_range_results(CuptiRange *cr, CuptiRangeTotals *out, int cap, int *n_out, size_t *dropped, char *err,
                         size_t err_cap);

/* Disables range profiling and frees the session. NULL is fine. */
void cupti_range_destroy(CuptiRange *cr);
/* Deinitialises the CUPTI profiler once the process is done with range profiling (sessions
 * share one initialisation; creating a session afterwards initialises it again). */
void cupti_range_shutdown(void);

/* True when a message from this module says the machine refuses counters (privileges, another
 * profiler attached, unsupported or virtualised device) rather than that something broke. */
bool cupti_range_refusal(const char *message);

#endif
