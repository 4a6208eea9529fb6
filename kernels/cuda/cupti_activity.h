/* cupti_activity.h — per-kernel GPU times from the CUPTI Activity API, attributed to the model's
 * components without NVTX.
 *
 * Owns: the process's one CUPTI subscriber and activity buffers (CUPTI's callbacks are global to
 * the process, so this module keeps its state in one static struct), the records it collected,
 * and the tables of kernel names and attribution labels.
 *
 * How kernels are attributed. CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL records carry GPU start/end
 * timestamps, the kernel's name and the correlation id of the API call that launched it. A
 * callback subscribed to the runtime and driver API domains runs synchronously in the launching
 * thread at the entry of every call and stores (correlation id → the current label, sub-label
 * and pass). The caller sets the label whenever the model's cost scope changes
 * (ctx->on_scope_change), e.g. label "focus", sub-label "focus/layer3". After a flush every
 * record is resolved through that table, so each kernel's time lands under the component that
 * launched it, including kernels cuDNN and cuBLASLt launch on our behalf. Memory copies and
 * memsets are recorded the same way (kind CUPTI_REC_MEMCPY / CUPTI_REC_MEMSET).
 *
 * Records are collected only between cupti_activity_start and cupti_activity_stop; timing runs
 * should happen before start (the concurrent-kernel mode instruments kernels and the API
 * callbacks add host overhead to every call).
 *
 * Errors are returned as one-line messages naming the CUPTI call and CUPTI's own result string,
 * with what the user can do (another profiler attached, profiling restricted to admins, …).
 * This header needs no CUDA headers; the functions exist only when the CUDA backend is built.
 */
#ifndef FOCUSBENCH_CUPTI_ACTIVITY_H
#define FOCUSBENCH_CUPTI_ACTIVITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { CUPTI_REC_KERNEL = 0, CUPTI_REC_MEMCPY, CUPTI_REC_MEMSET } CuptiRecordKind;

typedef struct {
    uint64_t start_ns, end_ns; /* GPU timestamps (ns) */
    uint64_t bytes;            /* memcpy / memset size; 0 for kernels */
    uint32_t correlation;      /* of the launching API call */
    uint32_t stream;
    int name;                  /* index into the name table: demangled kernel name, or "memcpy HtoD" … */
    int label, sublabel;       /* attribution (label table); -1 when the launch was not seen */
    int pass;                  /* the pass set at launch; -1 when the launch was not seen */
    CuptiRecordKind kind;
} CuptiRecord;

/* CUPTI's run-time API version (cuptiGetVersion) and the one compiled against
 * (CUPTI_API_VERSION). False with a message when the call fails. */
bool cupti_version(uint32_t *runtime, uint32_t *compiled, char *err, size_t err_cap);

/* Registers the buffer callbacks, enables the kernel / memcpy / memset activity kinds and
 * subscribes the API callback. Call once the CUDA context exists. False with a one-line message
 * (which call, CUPTI's reason, what to do) when CUPTI refuses; nothing stays enabled then. */
bool cupti_activity_start(char *err, size_t err_cap);
/* True between a successful start and stop. */
bool cupti_activity_active(void);

/* The attribution of launches from now on (copied; NULL means ""). Cheap when unchanged. */
void cupti_activity_set_label(const char *label, const char *sublabel);
/* The pass number stored with launches from now on (-1: none). */
void cupti_activity_set_pass(int pass);

/* Forces CUPTI to deliver every completed buffer and resolves each new record's attribution.
 * Call after the device finished the work (synchronise first). False with a message when the
 * flush call fails. */
bool cupti_activity_flush(char *err, size_t err_cap);

/* Records collected so far (valid until the next flush, clear or stop). */
int cupti_activity_count(void);
const CuptiRecord *cupti_activity_records(void);
/* Table lookups; "?" for an index out of range. */
const char *cupti_activity_name(int id);
const char *cupti_activity_label(int id);
/* Records CUPTI reported as dropped (buffers full). */
uint64_t cupti_activity_dropped(void);
/* Forgets the records and the launch table (names and labels stay). */
void cupti_activity_clear(void);

/* Disables the activity kinds, unsubscribes, flushes and frees everything. Safe to call when not
 * started. */
void cupti_activity_stop(void);

/* Demangles an Itanium C++ name (libstdc++'s __cxa_demangle) and strips the return type and the
 * parameter list, so "_Z11ffma_kernelPfiff" reads "ffma_kernel"; names that are not mangled
 * (cuBLAS's and cuDNN's) are copied unchanged. Always NUL-terminates out. Works without a GPU. */
void cupti_kernel_display_name(const char *raw, char *out, size_t cap);

#endif
