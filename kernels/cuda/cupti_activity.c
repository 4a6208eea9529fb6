/* cupti_activity.c — see cupti_activity.h.
 *
 * Threads: the API callback runs in the thread that calls CUDA (ours); CUPTI may deliver
 * completed buffers from its own worker thread at any time. Everything the two share (the
 * records, the name table, the launch table) is behind one mutex.
 */
#include "kernels/cuda/cupti_activity.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cupti.h>

enum { BUF_BYTES = 8 << 20, MAX_NAMES = 4096, MAX_LABELS = 256, NAME_CAP = 256, LABEL_CAP = 64 };

typedef struct {
    uint32_t correlation;
    int16_t label, sublabel;
    int32_t pass;
} Launch;

typedef struct {
    const char *raw; /* CUPTI's pointer for this name (shared by every record of one kernel) */
    char *display;
} NameEntry;

/* The one CUPTI state of the process (CUPTI's subscriber and buffers are process-global). */
static struct {
    pthread_mutex_t mu;
    bool active;
    bool callbacks_registered; /* cuptiActivityRegisterCallbacks is done once per process */
    CUpti_SubscriberHandle sub;
    bool subscribed;
    bool kinds_on[3];

    CuptiRecord *recs;
    int n_recs, cap_recs;
    int resolved; /* records [0, resolved) have their attribution */
    uint64_t dropped;

    Launch *launches;
    int n_launches, cap_launches;

    NameEntry names[MAX_NAMES];
    int n_names;

    char labels[MAX_LABELS][LABEL_CAP];
    int n_labels;
    int cur_label, cur_sublabel, cur_pass;
    char cur_label_str[LABEL_CAP], cur_sublabel_str[LABEL_CAP];
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .cur_label = -1, .cur_sublabel = -1, .cur_pass = -1};

static const CUpti_ActivityKind KINDS[3] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                            CUPTI_ACTIVITY_KIND_MEMSET};

/* ---- messages ---------------------------------------------------------------------------------- */

static const char *result_string(CUptiResult r)
{
    const char *s = NULL;
    if (cuptiGetResultString(r, &s) != CUPTI_SUCCESS || !s)
        s = "unknown CUPTI error";
    return s;
}

/* What a user can do about a refusal. */
static const char *result_hint(CUptiResult r)
{
    switch (r) {
    case CUPTI_ERROR_INSUFFICIENT_PRIVILEGES:
        return "the driver restricts GPU profiling to administrators (NVreg_RestrictProfilingToAdminUsers=1; "
               "in a container add --cap-add SYS_ADMIN)";
    case CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED:
        return "another profiler (nsys, ncu, a CUPTI injection library) is already attached to this process; run "
               "without it";
    case CUPTI_ERROR_NOT_INITIALIZED:
        return "CUPTI could not initialise (is libcupti from the same CUDA as the driver?)";
    case CUPTI_ERROR_NOT_COMPATIBLE:
        return "the driver is not compatible with this CUPTI";
    default:
        return "";
    }
}

static bool cupti_fail(CUptiResult r, const char *call, char *err, size_t err_cap)
{
    const char *hint = result_hint(r);
    snprintf(err, err_cap, "%s failed: %s (%d)%s%s", call, result_string(r), (int)r, *hint ? ": " : "", hint);
    return false;
}

static bool cupti_ok(CUptiResult r, const char *call, char *err, size_t err_cap)
{
    return r == CUPTI_SUCCESS || cupti_fail(r, call, err, err_cap);
}
#define CUPTI_CALL(call, err, cap) cupti_ok((call), #call, (err), (cap))

/* ---- names ------------------------------------------------------------------------------------- */

/* libstdc++'s demangler (linked with the CUDA backend), declared by hand: no C header has it. */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

void cupti_kernel_display_name(const char *raw, char *out, size_t cap)
{
    if (cap == 0)
        return;
    if (!raw) {
        snprintf(out, cap, "?");
        return;
    }
    int status = -1;
    char *dem = strncmp(raw, "_Z", 2) == 0 ? __cxa_demangle(raw, NULL, NULL, &status) : NULL;
    bool demangled = status == 0 && dem;
    const char *s = demangled ? dem : raw;
    if (demangled && strncmp(s, "void ", 5) == 0) /* a template function's return type */
        s += 5;
    size_t n = strlen(s);
    /* Cut the parameter list: the '(' matching the final ')' (names may hold "(anonymous namespace)"). */
    if (demangled && n > 0 && s[n - 1] == ')') {
        int depth = 0;
        for (size_t i = n; i-- > 0;) {
            if (s[i] == ')')
                depth++;
            else if (s[i] == '(' && --depth == 0) {
                n = i;
                break;
            }
        }
    }
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
    free(dem);
}

/* Index of a name by CUPTI's pointer (same pointer for every record of a kernel), then by text.
 * Called with the mutex held. */
static int name_intern(const char *raw)
{
    for (int i = S.n_names - 1; i >= 0; i--)
        if (S.names[i].raw == raw)
            return i;
    char display[NAME_CAP];
    cupti_kernel_display_name(raw, display, sizeof display);
    for (int i = 0; i < S.n_names; i++)
        if (strcmp(S.names[i].display, display) == 0)
            return i; /* a second pointer for a known kernel (another module) */
    if (S.n_names == MAX_NAMES)
        return MAX_NAMES - 1; /* absurdly many kernels: the last entry collects the rest */
    char *copy = strdup(display);
    if (!copy)
        return -1;
    S.names[S.n_names] = (NameEntry){raw, copy};
    return S.n_names++;
}

static int name_intern_text(const char *text)
{
    for (int i = 0; i < S.n_names; i++)
        if (strcmp(S.names[i].display, text) == 0)
            return i;
    return name_intern(text);
}

static const char *memcpy_name(uint8_t kind)
{
    switch (kind) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD:
        return "[memcpy HtoD]";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH:
        return "[memcpy DtoH]";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD:
        return "[memcpy DtoD]";
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOH:
        return "[memcpy HtoH]";
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP:
        return "[memcpy PtoP]";
    default:
        return "[memcpy]";
    }
}

static int label_intern(const char *s)
{
    for (int i = 0; i < S.n_labels; i++)
        if (strcmp(S.labels[i], s) == 0)
            return i;
    if (S.n_labels == MAX_LABELS)
        return MAX_LABELS - 1;
    snprintf(S.labels[S.n_labels], LABEL_CAP, "%s", s);
    return S.n_labels++;
}

/* ---- CUPTI callbacks --------------------------------------------------------------------------- */

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records)
{
    *buffer = aligned_alloc(8, BUF_BYTES); /* CUPTI wants 8-byte alignment */
    *size = *buffer ? BUF_BYTES : 0;
    *max_records = 0; /* as many as fit */
}

static bool rec_push(const CuptiRecord *r)
{
    if (S.n_recs == S.cap_recs) {
        int cap = S.cap_recs ? 2 * S.cap_recs : 8192;
        CuptiRecord *p = realloc(S.recs, (size_t)cap * sizeof *p);
        if (!p)
            return false;
        S.recs = p;
        S.cap_recs = cap;
    }
    S.recs[S.n_recs++] = *r;
    return true;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream_id, uint8_t *buffer, size_t size, size_t valid)
{
    (void)size;
    pthread_mutex_lock(&S.mu);
    CUpti_Activity *a = NULL;
    while (valid > 0 && cuptiActivityGetNextRecord(buffer, valid, &a) == CUPTI_SUCCESS) {
        CuptiRecord r = {.label = -1, .sublabel = -1, .pass = -1, .name = -1};
        if (a->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || a->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
            const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)a;
            r.kind = CUPTI_REC_KERNEL;
            r.start_ns = k->start, r.end_ns = k->end;
            r.correlation = k->correlationId;
            r.stream = k->streamId;
            r.name = name_intern(k->name);
        } else if (a->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
            const CUpti_ActivityMemcpy6 *m = (const CUpti_ActivityMemcpy6 *)a;
            r.kind = CUPTI_REC_MEMCPY;
            r.start_ns = m->start, r.end_ns = m->end;
            r.bytes = m->bytes;
            /* the runtime call's id when the copy came through the runtime (ours do) */
            r.correlation = m->runtimeCorrelationId ? m->runtimeCorrelationId : m->correlationId;
            r.stream = m->streamId;
            r.name = name_intern_text(memcpy_name(m->copyKind));
        } else if (a->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
            const CUpti_ActivityMemset4 *m = (const CUpti_ActivityMemset4 *)a;
            r.kind = CUPTI_REC_MEMSET;
            r.start_ns = m->start, r.end_ns = m->end;
            r.bytes = m->bytes;
            r.correlation = m->correlationId;
            r.stream = m->streamId;
            r.name = name_intern_text("[memset]");
        } else {
            continue;
        }
        if (!rec_push(&r))
            S.dropped++; /* out of host memory: counted like CUPTI's own drops */
    }
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(ctx, stream_id, &dropped) == CUPTI_SUCCESS) /* ctx NULL: the global queue */
        S.dropped += dropped;
    pthread_mutex_unlock(&S.mu);
    free(buffer);
}

/* Entry of every runtime / driver API call: remember who was running when it was made. */
static void CUPTIAPI api_callback(void *user, CUpti_CallbackDomain domain, CUpti_CallbackId cbid, const void *data)
{
    (void)user;
    (void)cbid;
    if (domain != CUPTI_CB_DOMAIN_RUNTIME_API && domain != CUPTI_CB_DOMAIN_DRIVER_API)
        return;
    const CUpti_CallbackData *cb = data;
    if (cb->callbackSite != CUPTI_API_ENTER)
        return;
    pthread_mutex_lock(&S.mu);
    if (S.n_launches == S.cap_launches) {
        int cap = S.cap_launches ? 2 * S.cap_launches : 16384;
        Launch *p = realloc(S.launches, (size_t)cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&S.mu);
            return; /* that call's work stays unattributed (label -1) */
        }
        S.launches = p;
        S.cap_launches = cap;
    }
    S.launches[S.n_launches++] =
        (Launch){cb->correlationId, (int16_t)S.cur_label, (int16_t)S.cur_sublabel, (int32_t)S.cur_pass};
    pthread_mutex_unlock(&S.mu);
}

/* ---- public ------------------------------------------------------------------------------------ */

bool cupti_version(uint32_t *runtime, uint32_t *compiled, char *err, size_t err_cap)
{
    *compiled = CUPTI_API_VERSION;
    *runtime = 0;
    return CUPTI_CALL(cuptiGetVersion(runtime), err, err_cap);
}

static void disable_all(void)
{
    for (int i = 0; i < 3; i++)
        if (S.kinds_on[i]) {
            cuptiActivityDisable(KINDS[i]);
            S.kinds_on[i] = false;
        }
    if (S.subscribed) {
        cuptiUnsubscribe(S.sub);
        S.subscribed = false;
    }
}

bool cupti_activity_start(char *err, size_t err_cap)
{
    if (S.active)
        return true;
    uint32_t rt = 0, ct = 0;
    if (!cupti_version(&rt, &ct, err, err_cap))
        return false;
    if (rt < ct) {
        /* record layouts are versioned: an older CUPTI would hand us records we misread */
        snprintf(err, err_cap, "libcupti's API version %u is older than the %u this binary was built with; put the "
                 "CUDA toolkit's libcupti first on LD_LIBRARY_PATH", rt, ct);
        return false;
    }
    if (!S.callbacks_registered) {
        if (!CUPTI_CALL(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), err, err_cap))
            return false;
        S.callbacks_registered = true;
    }
    if (!CUPTI_CALL(cuptiSubscribe(&S.sub, api_callback, NULL), err, err_cap))
        return false;
    S.subscribed = true;
    if (!CUPTI_CALL(cuptiEnableDomain(1, S.sub, CUPTI_CB_DOMAIN_RUNTIME_API), err, err_cap) ||
        !CUPTI_CALL(cuptiEnableDomain(1, S.sub, CUPTI_CB_DOMAIN_DRIVER_API), err, err_cap)) {
        disable_all();
        return false;
    }
    for (int i = 0; i < 3; i++) {
        CUptiResult r = cuptiActivityEnable(KINDS[i]);
        if (r != CUPTI_SUCCESS) {
            char call[96];
            snprintf(call, sizeof call, "cuptiActivityEnable(%s)",
                     i == 0 ? "CONCURRENT_KERNEL" : i == 1 ? "MEMCPY" : "MEMSET");
            cupti_fail(r, call, err, err_cap);
            disable_all();
            return false;
        }
        S.kinds_on[i] = true;
    }
    S.active = true;
    return true;
}

bool cupti_activity_active(void) { return S.active; }

void cupti_activity_set_label(const char *label, const char *sublabel)
{
    label = label ? label : "";
    sublabel = sublabel ? sublabel : "";
    if (S.cur_label >= 0 && strcmp(S.cur_label_str, label) == 0 && strcmp(S.cur_sublabel_str, sublabel) == 0)
        return;
    pthread_mutex_lock(&S.mu);
    S.cur_label = label_intern(label);
    S.cur_sublabel = label_intern(sublabel);
    snprintf(S.cur_label_str, sizeof S.cur_label_str, "%s", label);
    snprintf(S.cur_sublabel_str, sizeof S.cur_sublabel_str, "%s", sublabel);
    pthread_mutex_unlock(&S.mu);
}

void cupti_activity_set_pass(int pass)
{
    pthread_mutex_lock(&S.mu);
    S.cur_pass = pass;
    pthread_mutex_unlock(&S.mu);
}

static int cmp_launch(const void *a, const void *b)
{
    uint32_t x = ((const Launch *)a)->correlation, y = ((const Launch *)b)->correlation;
    return (x > y) - (x < y);
}

/* Attribution of records [resolved, n_recs) through the launch table. Mutex held. */
static void resolve_new(void)
{
    if (S.resolved == S.n_recs)
        return;
    /* Correlation ids grow with every call, but nested driver calls and other threads may
     * interleave: sort before searching. */
    qsort(S.launches, (size_t)S.n_launches, sizeof *S.launches, cmp_launch);
    for (int i = S.resolved; i < S.n_recs; i++) {
        CuptiRecord *r = &S.recs[i];
        int lo = 0, hi = S.n_launches;
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (S.launches[mid].correlation < r->correlation)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < S.n_launches && S.launches[lo].correlation == r->correlation) {
            r->label = S.launches[lo].label;
            r->sublabel = S.launches[lo].sublabel;
            r->pass = S.launches[lo].pass;
        }
    }
    S.resolved = S.n_recs;
}

bool cupti_activity_flush(char *err, size_t err_cap)
{
    if (!S.active) {
        snprintf(err, err_cap, "cupti_activity_flush: CUPTI activity collection is not running");
        return false;
    }
    if (!CUPTI_CALL(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), err, err_cap))
        return false;
    pthread_mutex_lock(&S.mu);
    resolve_new();
    pthread_mutex_unlock(&S.mu);
    return true;
}

int cupti_activity_count(void) { return S.resolved; }
const CuptiRecord *cupti_activity_records(void) { return S.recs; }

const char *cupti_activity_name(int id) { return id >= 0 && id < S.n_names ? S.names[id].display : "?"; }
const char *cupti_activity_label(int id) { return id >= 0 && id < S.n_labels ? S.labels[id] : "?"; }
uint64_t cupti_activity_dropped(void) { return S.dropped; }

void cupti_activity_clear(void)
{
    pthread_mutex_lock(&S.mu);
    S.n_recs = S.resolved = 0;
    S.n_launches = 0;
    S.dropped = 0;
    pthread_mutex_unlock(&S.mu);
}

void cupti_activity_stop(void)
{
    if (S.active) {
        disable_all();
        cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED); /* frees buffers still held */
        S.active = false;
    }
    pthread_mutex_lock(&S.mu);
    free(S.recs);
    free(S.launches);
    S.recs = NULL;
    S.launches = NULL;
    S.n_recs = S.cap_recs = S.resolved = 0;
    S.n_launches = S.cap_launches = 0;
    for (int i = 0; i < S.n_names; i++)
        free(S.names[i].display);
    S.n_names = 0;
    S.n_labels = 0;
    S.cur_label = S.cur_sublabel = S.cur_pass = -1;
    S.cur_label_str[0] = S.cur_sublabel_str[0] = '\0';
    pthread_mutex_unlock(&S.mu);
}
