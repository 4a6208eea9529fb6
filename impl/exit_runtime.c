/* exit_runtime.c — see exit_runtime.h. */
#include "impl/exit_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "impl/patch_box.h"
#include "impl/resnet.h"
#include "kernels/ops.h"

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Rows idx[0..n) of x (N, ...) as (n, ...): x viewed as (1, N, R) and gathered along its dim 1. */
static Tensor *gather_batch(Ctx *ctx, Tensor *x, const int32_t *idx, int n)
{
    if (!x || !ctx_ok(ctx))
        return NULL;
    int64_t N = x->shape[0], R = tensor_numel(x) / N;
    Tensor *v = op_reshape(ctx, x, 3, (int64_t[]){1, N, R});
    Tensor *g = op_gather_rows(ctx, v, uaf_index_tensor(ctx, idx, 1, n)); /* (1, n, R) */
    int64_t dims[TENSOR_MAX_DIMS];
    dims[0] = n;
    for (int i = 1; i < x->ndim; i++)
        dims[i] = x->shape[i];
    return op_reshape(ctx, g, x->ndim, dims);
}

/* Host copy of logits (n, C) and their scores (n). */
static bool read_scores(Ctx *ctx, Tensor *l, int n, int C, ExitScoreKind kind, float *host, float *scores)
{
    if (!l || !uaf_read_host(ctx, l, host)) {
        if (ctx_ok(ctx))
            ctx_set_error(ctx, "exit_run_batch: cannot read the exit logits back to the host");
        return false;
    }
    char err[256];
    if (!exit_scores(host, n, 1, C, kind, scores, err, sizeof err)) {
        ctx_set_error(ctx, "exit_run_batch: %s", err);
        return false;
    }
    return true;
}

bool exit_run_batch(Ctx *ctx, const UafModel *m, Tensor *video, const float *thresholds, ExitScoreKind kind,
                    int32_t *exit_of, float *logits, ExitRunStats *stats)
{
    memset(stats, 0, sizeof *stats);
    if (!ctx_ok(ctx))
        return false;
    if (ctx->training) {
        ctx_set_error(ctx, "exit_run_batch: conditional exit runs in eval mode (ctx_set_training(ctx, false))");
        return false;
    }
    const UafConfig *c = &m->cfg;
    const ExitClassifier *ec = &m->classifier;
    const int G = c->glance, F = c->focus, T = c->frames, C = c->num_classes, W = c->mlp_width;
    if (!video || video->ndim != 5 || video->shape[1] != T) {
        ctx_set_error(ctx, "exit_run_batch: the video must be (B, T = %d, 3, S, S)", T);
        return false;
    }
    const int B = (int)video->shape[0];
    double t0 = now_seconds();
    /* host work arrays: (B) positions, (B, C) logits, (B) scores */
    int32_t *rem = malloc((size_t)B * sizeof *rem), *cur = malloc((size_t)B * sizeof *cur);
    int32_t *keep = malloc((size_t)B * sizeof *keep), *fi = malloc((size_t)B * sizeof *fi);
    int32_t *ai = malloc((size_t)B * sizeof *ai);
    float *host = malloc((size_t)B * C * sizeof *host), *sc = malloc((size_t)B * sizeof *sc);
    if (!rem || !cur || !keep || !fi || !ai || !host || !sc) {
        ctx_set_error(ctx, "exit_run_batch: out of memory");
        goto done;
    }

    /* exit 0: the glance */
    UafForwardOptions fo = {0};
    UafOutput g;
    if (!uaf_glance(ctx, m, video, &fo, &g))
        goto done;
    ctx_scope_push(ctx, "classifier");
    Tensor *zg = op_reshape(ctx, exit_classifier_mlp(ctx, &ec->global_mlp, g.glance_pooled), 3,
                            (int64_t[]){B, G, W}); /* (B, G, W) */
    Tensor *zmax = NULL;                          /* (B, W) */
    for (int t = 0; t < G && ctx_ok(ctx); t++) {
        Tensor *zt = op_reshape(ctx, op_slice(ctx, zg, 1, t, 1), 2, (int64_t[]){B, W});
        zmax = t == 0 ? zt : op_maximum(ctx, zt, zmax); /* the new step first, as the full pass */
    }
    Tensor *l0 = exit_classifier_head(ctx, ec, &ec->global_heads[G - 1], zmax); /* (B, C) */
    ctx_scope_pop(ctx);
    if (!read_scores(ctx, l0, B, C, kind, host, sc))
        goto done;
    int n_rem = 0;
    for (int b = 0; b < B; b++) {
        if (F == 0 || sc[b] >= thresholds[0]) {
            exit_of[b] = 0;
            memcpy(logits + (int64_t)b * C, host + (int64_t)b * C, (size_t)C * sizeof *logits);
        } else {
            rem[n_rem++] = b;
        }
    }
    double t1 = now_seconds();
    stats->glance_seconds = t1 - t0;
    if (n_rem == 0)
        goto finish;

    /* the policies of the videos still running */
    int32_t *rows = malloc((size_t)n_rem * G * sizeof *rows); /* (n_rem·G) glance rows */
    if (!rows) {
        ctx_set_error(ctx, "exit_run_batch: out of memory");
        goto done;
    }
    for (int j = 0; j < n_rem; j++)
        for (int t = 0; t < G; t++)
            rows[j * G + t] = rem[j] * G + t;
    UafOutput sub;
    memset(&sub, 0, sizeof sub);
    sub.B = n_rem;
    sub.glance_features = gather_batch(ctx, g.glance_features, rows, n_rem * G); /* (n_rem·G, D, h, w) */
    sub.glance_pooled = gather_batch(ctx, g.glance_pooled, rows, n_rem * G);     /* (n_rem·G, D) */
    free(rows);
    if (!uaf_policies(ctx, m, &sub) || !uaf_select_focus(ctx, m, &fo, &sub))
        goto done;
    Tensor *zR = gather_batch(ctx, zmax, rem, n_rem); /* (n_rem, W) */
    double t2 = now_seconds();
    stats->policy_seconds = t2 - t1;

    /* focus steps; cur[j] indexes the n_rem set, y is aligned with cur */
    int n_cur = n_rem;
    for (int j = 0; j < n_cur; j++)
        cur[j] = j;
    Tensor *y = NULL;
    for (int k = 1; k <= F && n_cur > 0; k++) {
        for (int j = 0; j < n_cur; j++) {
            int32_t cand = sub.focus_idx_host[(int64_t)cur[j] * F + (k - 1)];
            fi[j] = rem[cur[j]] * T + cand; /* the frame in the whole video batch */
            ai[j] = cur[j] * T + cand;      /* its action in the running videos' (n_rem, T, 4) */
        }
        Tensor *frames = gather_batch(ctx, op_reshape(ctx, video, 4, (int64_t[]){(int64_t)B * T, 3, c->frame_size,
                                                                                    c->frame_size}), fi, n_cur);
        Tensor *acts = gather_batch(ctx, op_reshape(ctx, sub.actions, 2, (int64_t[]){(int64_t)n_rem * T, 4}), ai,
                                    n_cur); /* (n_cur, 4) */
        Tensor *patches = patch_box_crop(ctx, frames, acts, &m->pixel_box); /* (n_cur, 3, P, P) */
        BackboneOutput lo;
        ctx_scope_push(ctx, "focus");
        bool ok = patches && resnet_forward(ctx, m->local_cnn, patches, &lo);
        ctx_scope_pop(ctx);
        if (!ok)
            goto done;
        stats->patches += n_cur;
        ctx_scope_push(ctx, "classifier");
        Tensor *yk = exit_classifier_mlp(ctx, &ec->local_mlp, lo.pooled); /* (n_cur, W) */
        y = k == 1 ? yk : op_maximum(ctx, yk, y);
        Tensor *cat = op_concat(ctx, (Tensor *[]){y, gather_batch(ctx, zR, cur, n_cur)}, 2, 1); /* (n_cur, 2W) */
        Tensor *lk = exit_classifier_head(ctx, ec, &ec->local_heads[k - 1], cat);              /* (n_cur, C) */
        ctx_scope_pop(ctx);
        if (!read_scores(ctx, lk, n_cur, C, kind, host, sc))
            goto done;
        int n_keep = 0;
        for (int j = 0; j < n_cur; j++) {
            int b = rem[cur[j]];
            if (k == F || sc[j] >= thresholds[k]) {
                exit_of[b] = k;
                memcpy(logits + (int64_t)b * C, host + (int64_t)j * C, (size_t)C * sizeof *logits);
            } else {
                keep[n_keep++] = j;
            }
        }
        if (n_keep > 0 && n_keep < n_cur)
            y = gather_batch(ctx, y, keep, n_keep);
        for (int j = 0; j < n_keep; j++)
            keep[j] = cur[keep[j]];
        memcpy(cur, keep, (size_t)n_keep * sizeof *cur);
        n_cur = n_keep;
    }
    stats->focus_seconds = now_seconds() - t2;
finish:
    stats->seconds = now_seconds() - t0;
done:
    free(rem);
    free(cur);
    free(keep);
    free(fi);
    free(ai);
    free(host);
    free(sc);
    return ctx_ok(ctx);
}
