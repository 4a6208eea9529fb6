/* checkpoint.c — see checkpoint.h. Two passes: match and check everything (collecting every
 * problem), then copy only if nothing was wrong. */
#include "checkpoint.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_error(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_error(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static bool starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The problems found, by kind, each a malloc'd line; reported in this order. */
typedef enum { PROBLEM_MISSING = 0, PROBLEM_UNEXPECTED, PROBLEM_MISSHAPED, PROBLEM_DTYPE, PROBLEM_DUPLICATE, PROBLEM_KINDS } ProblemKind;

typedef struct {
    char **lines[PROBLEM_KINDS];
    int count[PROBLEM_KINDS], cap[PROBLEM_KINDS];
    bool oom;
} Problems;

static void problem_add(Problems *p, ProblemKind kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void problem_add(Problems *p, ProblemKind kind, const char *fmt, ...)
{
    if (p->count[kind] == p->cap[kind]) {
        int cap = p->cap[kind] ? p->cap[kind] * 2 : 16;
        char **grown = realloc(p->lines[kind], (size_t)cap * sizeof *grown);
        if (!grown) {
            p->oom = true;
            p->count[kind]++; /* still counted, just not listed */
            return;
        }
        p->lines[kind] = grown;
        p->cap[kind] = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *line = NULL;
    if (vasprintf(&line, fmt, ap) < 0)
        line = NULL;
    va_end(ap);
    if (!line)
        p->oom = true;
    p->lines[kind][p->count[kind]++] = line;
}

static void problems_free(Problems *p)
{
    for (int k = 0; k < PROBLEM_KINDS; k++) {
        int listed = p->count[k] < p->cap[k] ? p->count[k] : p->cap[k];
        for (int i = 0; i < listed; i++)
            free(p->lines[k][i]);
        free(p->lines[k]);
    }
}

static int problems_total(const Problems *p)
{
    int n = 0;
    for (int k = 0; k < PROBLEM_KINDS; k++)
        n += p->count[k];
    return n;
}

/* "PATH does not match the model: 2 missing, 1 unexpected, 1 mis-shaped key" + one line per
 * problem (up to the cap) + "and N more" + hints. */
static void problems_report(const Problems *p, const char *path, const char *hint, char *err, size_t cap)
{
    static const char *const kind_names[PROBLEM_KINDS] = {"missing", "unexpected", "mis-shaped", "wrong-dtype",
                                                          "duplicate"};
    char *msg = NULL;
    size_t msg_len = 0;
    FILE *out = open_memstream(&msg, &msg_len);
    if (!out) {
        set_error(err, cap, "%s does not match the model (%d problems; out of memory listing them)", path,
                  problems_total(p));
        return;
    }
    fprintf(out, "%s does not match the model:", path);
    const char *sep = " ";
    for (int k = 0; k < PROBLEM_KINDS; k++)
        if (p->count[k]) {
            fprintf(out, "%s%d %s", sep, p->count[k], kind_names[k]);
            sep = ", ";
        }
    fprintf(out, " key%s", problems_total(p) == 1 ? "" : "s");
    int listed = 0;
    for (int k = 0; k < PROBLEM_KINDS; k++)
        for (int i = 0; i < p->count[k] && i < p->cap[k]; i++) {
            if (listed < CHECKPOINT_MAX_LISTED_PROBLEMS && p->lines[k][i]) {
                fprintf(out, "\n  %s", p->lines[k][i]);
                listed++;
            }
        }
    if (problems_total(p) > listed)
        fprintf(out, "\n  ... and %d more", problems_total(p) - listed);
    if (hint)
        fprintf(out, "\n  hint: %s", hint);
    if (fclose(out) != 0 || !msg) {
        free(msg);
        set_error(err, cap, "%s does not match the model (%d problems)", path, problems_total(p));
        return;
    }
    set_error(err, cap, "%s", msg);
    free(msg);
}

/* Sorted parameter names for O(log n) lookups by name → declaration index. */
typedef struct {
    const char *name;
    int index;
} ParamRef;

static int compare_param_refs(const void *a, const void *b)
{
    return strcmp(((const ParamRef *)a)->name, ((const ParamRef *)b)->name);
}

static int find_param(const ParamRef *refs, int n, const char *name)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, refs[mid].name);
        if (c == 0)
            return refs[mid].index;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

static bool is_float_file_dtype(SafetensorsDtype d)
{
    return d == SAFETENSORS_F32 || d == SAFETENSORS_F16 || d == SAFETENSORS_BF16 || d == SAFETENSORS_F64;
}

/* Whether a file tensor of dtype d can fill parameter t (same dtype, or any float into f32). */
static bool dtype_loadable(SafetensorsDtype d, const Tensor *t)
{
    if (t->dtype == DTYPE_F32)
        return is_float_file_dtype(d);
    return safetensors_from_dtype(t->dtype) == d;
}

static bool same_shape(const SafetensorsTensor *ft, const Tensor *t)
{
    if (ft->ndim != t->ndim)
        return false;
    for (int d = 0; d < t->ndim; d++)
        if (ft->shape[d] != t->shape[d])
            return false;
    return true;
}

bool checkpoint_load_file(ParamSet *ps, const SafetensorsFile *file, const CheckpointLoadOptions *opt, char *err,
                          size_t err_cap)
{
    const char *path = safetensors_path(file);
    if (!ps->allocated) {
        set_error(err, err_cap, "checkpoint_load(%s): allocate the parameters (params_allocate) before loading", path);
        return false;
    }
    if (ps->backend == BACKEND_CUDA) {
        set_error(err, err_cap, "checkpoint_load(%s): load into a CPU parameter set, then upload it", path);
        return false;
    }
    const char *strip = opt && opt->strip_prefix && opt->strip_prefix[0] ? opt->strip_prefix : NULL;
    const char *select = opt && opt->file_prefix && opt->file_prefix[0] ? opt->file_prefix : NULL;
    const char *model_prefix = opt && opt->model_prefix ? opt->model_prefix : "";
    size_t model_prefix_len = strlen(model_prefix);

    int n_params = ps->n, n_file = safetensors_count(file);
    ParamRef *refs = malloc(sizeof *refs * (size_t)(n_params ? n_params : 1));
    int *match = malloc(sizeof *match * (size_t)(n_params ? n_params : 1)); /* param → file tensor index, or -1 */
    char *key = NULL;
    size_t key_cap = 0;
    Problems problems = {0};
    bool ok = false;
    if (!refs || !match) {
        set_error(err, err_cap, "checkpoint_load(%s): out of memory", path);
        goto done;
    }
    for (int i = 0; i < n_params; i++) {
        refs[i] = (ParamRef){ps->items[i]->name, i};
        match[i] = -1;
    }
    qsort(refs, (size_t)n_params, sizeof *refs, compare_param_refs);

    int unexpected_with_module = 0;
    for (int f = 0; f < n_file; f++) {
        const SafetensorsTensor *ft = safetensors_tensor_at(file, f);
        const char *name = ft->name;
        if (select) {
            if (!starts_with(name, select))
                continue;
            name += strlen(select);
        }
        if (strip && starts_with(name, strip))
            name += strlen(strip);
        size_t need = model_prefix_len + strlen(name) + 1;
        if (need > key_cap) {
            char *grown = realloc(key, need);
            if (!grown) {
                set_error(err, err_cap, "checkpoint_load(%s): out of memory", path);
                goto done;
            }
            key = grown;
            key_cap = need;
        }
        memcpy(key, model_prefix, model_prefix_len);
        strcpy(key + model_prefix_len, name);

        int p = find_param(refs, n_params, key);
        if (p < 0) {
            /* PyTorch's BatchNorm counter: not a weight, nothing here uses it. */
            if (ends_with(key, "num_batches_tracked"))
                continue;
            problem_add(&problems, PROBLEM_UNEXPECTED, "unexpected key: %s", ft->name);
            unexpected_with_module += starts_with(name, "module.");
            continue;
        }
        const Tensor *t = ps->items[p];
        if (match[p] >= 0) {
            problem_add(&problems, PROBLEM_DUPLICATE, "duplicate key: %s and %s both map to parameter %s",
                        safetensors_tensor_at(file, match[p])->name, ft->name, t->name);
            continue;
        }
        match[p] = f;
        if (!same_shape(ft, t)) {
            char fs[128], ms[128];
            problem_add(&problems, PROBLEM_MISSHAPED, "mis-shaped key %s: file %s vs model %s", ft->name,
                        safetensors_shape_str(ft->ndim, ft->shape, fs, sizeof fs), tensor_shape_str(t, ms, sizeof ms));
        } else if (!dtype_loadable(ft->dtype, t)) {
            problem_add(&problems, PROBLEM_DTYPE, "key %s: file dtype %s cannot be loaded into the model's %s parameter", ft->name,
                        safetensors_dtype_name(ft->dtype), dtype_name(t->dtype));
        }
    }
    for (int p = 0; p < n_params; p++) {
        const Tensor *t = ps->items[p];
        if (match[p] < 0 && starts_with(t->name, model_prefix))
            problem_add(&problems, PROBLEM_MISSING, "missing key: %s", t->name + model_prefix_len);
    }

    if (problems_total(&problems) > 0) {
        const char *hint = NULL;
        if (unexpected_with_module > 0 && !strip)
            hint = "keys start with \"module.\" (saved through DataParallel): set strip_prefix = \"module.\", or "
                   "convert with scripts/convert_checkpoint.py, which strips it";
        problems_report(&problems, path, hint, err, err_cap);
        goto done;
    }

    /* Everything matches: now, and only now, write into the model. */
    if (ps->backend != BACKEND_META) {
        for (int p = 0; p < n_params; p++) {
            if (match[p] < 0)
                continue;
            Tensor *t = ps->items[p];
            const SafetensorsTensor *ft = safetensors_tensor_at(file, match[p]);
            if (t->dtype == DTYPE_F32) {
                if (!safetensors_read_f32(ft, tensor_f32(t), tensor_numel(t), err, err_cap))
                    goto done; /* unreachable after the checks above */
            } else if (tensor_bytes(t)) {
                memcpy(t->data, ft->data, tensor_bytes(t));
            }
        }
    }
    ok = true;
done:
    problems_free(&problems);
    free(key);
    free(refs);
    free(match);
    return ok;
}

bool checkpoint_load(ParamSet *ps, const char *path, const CheckpointLoadOptions *opt, char *err, size_t err_cap)
{
    SafetensorsFile *f = safetensors_open(path, err, err_cap);
    if (!f)
        return false;
    bool ok = checkpoint_load_file(ps, f, opt, err, err_cap);
    safetensors_close(f);
    return ok;
}

bool checkpoint_save(const ParamSet *ps, const char *path, const SafetensorsMeta *meta, int n_meta, char *err,
                     size_t err_cap)
{
    if (!ps->allocated || ps->backend != BACKEND_CPU) {
        set_error(err, err_cap, "checkpoint_save(%s): the parameters have no host data (%s); save a CPU parameter set",
                  path, ps->allocated ? backend_name(ps->backend) : "not allocated");
        return false;
    }
    SafetensorsWriteTensor *list = malloc(sizeof *list * (size_t)(ps->n ? ps->n : 1));
    if (!list) {
        set_error(err, err_cap, "checkpoint_save(%s): out of memory", path);
        return false;
    }
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = ps->items[i];
        list[i] = (SafetensorsWriteTensor){.name = t->name,
                                           .dtype = safetensors_from_dtype(t->dtype),
                                           .ndim = t->ndim,
                                           .shape = t->shape,
                                           .data = t->data};
    }
    bool ok = safetensors_write(path, list, ps->n, meta, n_meta, err, err_cap);
    free(list);
    return ok;
}
