/* test_util.c — see test_util.h. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/tape.h"

Tensor *ttensor(DType dtype, int ndim, const int64_t *dims, bool requires_grad)
{
    Tensor *t = calloc(1, sizeof *t);
    assert_non_null(t);
    tensor_set_shape(t, ndim, dims);
    t->dtype = dtype;
    t->backend = BACKEND_CPU;
    t->data = calloc((size_t)tensor_numel(t) + 1, dtype_size(dtype));
    assert_non_null(t->data);
    if (requires_grad) {
        t->requires_grad = true;
        t->grad = ttensor(DTYPE_F32, ndim, dims, false);
    }
    return t;
}

void ttensor_free(Tensor *t)
{
    if (!t)
        return;
    if (t->grad)
        ttensor_free(t->grad);
    free(t->data);
    free(t);
}

void tfill_uniform(Tensor *t, uint64_t seed, float lo, float hi)
{
    RngStream s = rng_stream(seed, RNG_PURPOSE_TEST, 0, 0);
    float *p = tensor_f32(t);
    for (int64_t i = 0; i < tensor_numel(t); i++)
        p[i] = lo + (hi - lo) * rng_uniform(&s, (uint64_t)i);
}

void tfill_normal(Tensor *t, uint64_t seed, float stddev)
{
    RngStream s = rng_stream(seed, RNG_PURPOSE_TEST, 1, 0);
    float *p = tensor_f32(t);
    for (int64_t i = 0; i < tensor_numel(t); i++)
        p[i] = stddev * rng_normal(&s, (uint64_t)i);
}

void tassert_close(const float *a, const float *b, int64_t n, double atol, double rtol, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        if (!isfinite(x) || !isfinite(y) || fabs(x - y) > atol + rtol * fabs(y)) {
            fail_msg("%s: element %lld differs: got %.9g, expected %.9g (atol %g, rtol %g)", what, (long long)i, x,
                     y, atol, rtol);
        }
    }
}

double tmax_rel_err(const float *a, const float *b, int64_t n, double atol)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (atol + fabs((double)b[i]));
        if (!(e <= worst))
            worst = e; /* NaN propagates as the worst */
    }
    return worst;
}

Ctx *tctx(uint64_t seed)
{
    Ctx *ctx = ctx_create(BACKEND_CPU, seed);
    assert_non_null(ctx);
    return ctx;
}

/* L = Σ out·R in double, from one forward pass in eval-free recording-off mode. */
static double gc_loss(GradFn fn, Tensor **inputs, void *user, const float *R, int64_t *n_out)
{
    Ctx *ctx = tctx(7);
    ctx->training = true; /* same mode as the analytic pass (batch-norm statistics, dropout) */
    ctx->recording = false;
    Tensor *out = fn(ctx, inputs, user);
    if (!ctx_ok(ctx))
        fail_msg("gradcheck forward failed: %s", ctx_error_message(ctx));
    double L = 0;
    const float *o = tensor_f32(out);
    int64_t n = tensor_numel(out);
    for (int64_t i = 0; i < n; i++)
        L += (double)o[i] * (R ? R[i] : 0.0);
    *n_out = n;
    ctx_destroy(ctx);
    return L;
}

void tgradcheck(GradFn fn, Tensor **inputs, int n_inputs, void *user, double eps, double atol, double rtol,
                int max_probe, const char *what)
{
    /* Analytic pass: out, then L = sum(out * R) through the tape. */
    Ctx *ctx = tctx(7);
    ctx_set_training(ctx, true);
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i]->requires_grad)
            memset(inputs[i]->grad->data, 0, tensor_bytes(inputs[i]->grad));
    Tensor *out = fn(ctx, inputs, user);
    if (!ctx_ok(ctx))
        fail_msg("%s: forward failed: %s", what, ctx_error_message(ctx));
    int64_t n_out = tensor_numel(out);
    Tensor *R = tensor_new(ctx, DTYPE_F32, out->ndim, out->shape);
    RngStream rs = rng_stream(99, RNG_PURPOSE_TEST, 2, 0);
    for (int64_t i = 0; i < n_out; i++)
        tensor_f32(R)[i] = 0.5f + rng_uniform(&rs, (uint64_t)i);
    Tensor *loss = op_sum_all(ctx, op_mul(ctx, out, R));
    if (!tape_backward(ctx, loss))
        fail_msg("%s: backward failed: %s", what, ctx_error_message(ctx));
    float *Rcopy = malloc((size_t)n_out * sizeof *Rcopy);
    memcpy(Rcopy, R->data, (size_t)n_out * sizeof *Rcopy);
    ctx_destroy(ctx);

    for (int i = 0; i < n_inputs; i++) {
        Tensor *t = inputs[i];
        if (!t->requires_grad)
            continue;
        int64_t n = tensor_numel(t);
        int64_t probes = (max_probe > 0 && n > max_probe) ? max_probe : n;
        RngStream ps = rng_stream(5, RNG_PURPOSE_TEST, 3, (uint64_t)i);
        for (int64_t p = 0; p < probes; p++) {
            int64_t k = probes == n ? p : (int64_t)rng_below(&ps, (uint64_t)p, (uint32_t)n);
            float *x = tensor_f32(t) + k;
            float saved = *x;
            int64_t m;
            *x = saved + (float)eps;
            double lp = gc_loss(fn, inputs, user, Rcopy, &m);
            *x = saved - (float)eps;
            double lm = gc_loss(fn, inputs, user, Rcopy, &m);
            *x = saved;
            double numeric = (lp - lm) / (2 * eps);
            double analytic = tensor_f32(t->grad)[k];
            if (!isfinite(analytic) || fabs(numeric - analytic) > atol + rtol * fabs(numeric)) {
                free(Rcopy);
                fail_msg("%s: d/d(input %d)[%lld]: analytic %.7g, numeric %.7g (atol %g, rtol %g)", what, i,
                         (long long)k, analytic, numeric, atol, rtol);
            }
        }
    }
    free(Rcopy);
}

/* ---- running the focusbench binary ------------------------------------------------------------- */

const char *tbin_or_skip(void)
{
    const char *bin = getenv("FOCUSBENCH_BIN");
    if (!bin || !*bin || access(bin, X_OK) != 0) {
        print_message("FOCUSBENCH_BIN is not set to an executable (run through `make test`); skipping\n");
        skip();
    }
    return bin;
}

void tread_all(FILE *f, char *buf, size_t cap)
{
    size_t n = 0, got;
    while (n + 1 < cap && (got = fread(buf + n, 1, cap - 1 - n, f)) > 0)
        n += got;
    buf[n] = '\0';
}

TCmdResult *trun_bin(const char *args)
{
    const char *bin = tbin_or_skip();
    static TCmdResult result;
    TCmdResult *r = &result;
    memset(r, 0, sizeof *r);
    char err_path[] = "/tmp/focusbench_test_cmd_XXXXXX";
    int fd = mkstemp(err_path);
    assert_true(fd >= 0);
    close(fd);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s'", bin, args, err_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    tread_all(p, r->out, sizeof r->out);
    int st = pclose(p);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    FILE *e = fopen(err_path, "r");
    assert_non_null(e);
    tread_all(e, r->err, sizeof r->err);
    fclose(e);
    remove(err_path);
    return r;
}

void tassert_contains(const char *haystack, const char *needle, const char *what)
{
    if (!strstr(haystack, needle))
        fail_msg("%s: expected to find \"%s\" in:\n%s", what, needle, haystack);
}

int tcount_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}
