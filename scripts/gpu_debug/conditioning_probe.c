/* conditioning_probe.c — session 3b debugging record (not built by the Makefile): one
 * Uni-AdaFocus synth-tiny training step on the CPU, five ways — fast paths; reference loops;
 * fast with the policy's actions scaled by 1 +- eps (argv[1]); fast again with run 0's actions;
 * reference loops with run 0's indices and actions — then the error of every stage, loss and
 * gradient group against run 0. argv[2] = batch (default 2), argv[3] = step (default 5). Env PV=eps: run 2
 * scales the clip by 1 +- eps instead (draw argv[4]) with run 0's actions; ONLY02=1: runs 0 and 2 only.
 * It separated poor conditioning from a GPU bug (results/gpu/NOTES_session3_gpuperf.md,
 * "session 3b"). Build (gnu11: one statement expression) against a built library, e.g.
 *   gcc -std=gnu11 -O2 -fopenmp -I. -DHAVE_CUDA=1 scripts/gpu_debug/conditioning_probe.c \
 *       build/gpu2/rel-cuda/tests/test_util.o build/gpu2/rel-cuda/libfocusbench.a -o probe <the LDLIBS of make V=1>
 */
/* debug: CPU fast vs CPU reference vs perturbed-actions train step of synth-tiny */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "impl/losses.h"
#include "impl/policy_spatial.h"
#include "impl/presets.h"
#include "impl/uniadafocus.h"
#include "kernels/params.h"
#include "kernels/tape.h"
#include "kernels/rng.h"
#include "tests/test_util.h"
void dump_stats(UafModel *a, UafModel *b);

typedef struct { UafOutput out; UafFocusOutput sets[2]; UafLossTerms terms; float *acts0; } StepOut;

static double perturb_acts = 0; static int force_acts = 0; static float *forced_acts;
static int32_t *forced_idx;

static bool train_step(Ctx *ctx, const UafModel *m, Tensor *video, const int32_t *labels, int B, uint64_t step, StepOut *so)
{
    memset(so, 0, sizeof *so);
    const UafConfig *c = &m->cfg;
    ctx_set_training(ctx, true);
    ctx->step = step;
    UafForwardOptions fo = {.aux_logits = true, .step = step};
    UafOutput *out = &so->out;
    if (!uaf_glance(ctx, m, video, &fo, out) || !uaf_policies(ctx, m, out) || !uaf_select_focus(ctx, m, &fo, out))
        return false;
    if (forced_idx) out->focus_idx = uaf_index_tensor(ctx, forced_idx, B, c->focus);
    float *a = out->actions->data; int64_t na = tensor_numel(out->actions);
    if (force_acts) memcpy(a, forced_acts, na * 4);
    if (perturb_acts != 0) { RngStream r = rng_stream(99, RNG_PURPOSE_TEST, 7, 0); for (int64_t i = 0; i < na; i++) a[i] *= 1 + perturb_acts * (2*rng_uniform(&r, i)-1); }
    so->acts0 = malloc(na*4); memcpy(so->acts0, a, na*4);
    Tensor *acts[2] = {out->actions, uaf_random_actions(ctx, m, B, step)};
    if (!uaf_focus(ctx, m, video, out->focus_idx, acts, 2, out->glance_pooled, &fo, so->sets))
        return false;
    Tensor *mc = loss_mc_average(ctx, out->glance_logits, out->temporal.weights, loss_mc_rounds(c->glance), LOSS_MC_SAMPLES, step);
    Tensor *maps = out->glance_features ? tensor_view(ctx, out->glance_features, out->glance_features->ndim, out->glance_features->shape) : NULL;
    Tensor *a3 = policy_spatial_forward(ctx, &m->spatial, maps);
    Tensor *sp = loss_feature_crop_logits(ctx, out->glance_features, a3, &m->feature_box, m->aux_fc.weight, m->aux_fc.bias);
    UafLossInputs li = {.n_sets = 2, .step_logits = {so->sets[0].cls.step_logits, so->sets[1].cls.step_logits},
        .local_logits = {so->sets[0].local_logits, so->sets[1].local_logits}, .glance_logits = out->glance_logits,
        .temporal_logits = mc, .spatial_logits = sp, .glance_actions = a3};
    return uaf_loss_total(ctx, &li, labels, B, 1.0f, &so->terms) && tape_backward(ctx, so->terms.total);
}

static double nerr(const float *g, const float *r, int64_t n)
{ double d = 0, s = 0; for (int64_t i = 0; i < n; i++) { d += ((double)g[i]-r[i])*((double)g[i]-r[i]); s += (double)r[i]*r[i]; } return sqrt(d)/(sqrt(s)+1e-30); }
static void cmpt(const char *w, const Tensor *a, const Tensor *b) { printf("  %-40s %.3e\n", w, nerr(a->data, b->data, tensor_numel(a))); }

static void cmp_group(const char *w, UafModel *a, UafModel *b, int grp)
{
    double d = 0, s = 0; const char *worst = ""; double we = 0;
    for (int i = 0; i < b->ps->n; i++) { Tensor *tb = b->ps->items[i], *ta = a->ps->items[i];
        if (!tb->requires_grad || !tb->grad || uaf_param_group(tb->name) != grp) continue;
        int64_t k = tensor_numel(tb); const float *x = ta->grad->data, *y = tb->grad->data; double dd = 0, ss = 0;
        for (int64_t j = 0; j < k; j++) { dd += ((double)x[j]-y[j])*((double)x[j]-y[j]); ss += (double)y[j]*y[j]; }
        d += dd; s += ss; double e = sqrt(dd)/(sqrt(ss)+1e-30); if (e > we) { we = e; worst = tb->name; } }
    printf("  grads %-30s %.3e (worst %s %.2e)\n", w, sqrt(d)/(sqrt(s)+1e-30), worst, we);
}

int main(int argc, char **argv)
{
    const UafConfig *c = &uaf_preset_find("synth-tiny")->cfg;
    const int B = argc > 2 ? atoi(argv[2]) : 2; const uint64_t step = argc > 3 ? atoi(argv[3]) : 5; int32_t labels[16] = {3, 7, 1, 5, 9, 0, 2, 4, 6, 8, 3, 2, 1, 0, 9, 8};
    char err[256];
    UafModel *m[5]; StepOut so[5];
    Tensor *video = NULL;
    int only02 = getenv("ONLY02") != NULL;
    for (int k = 0; k < 5; k++) {
        if (only02 && (k == 1 || k == 3 || k == 4)) continue;
        m[k] = uaf_create(c, BACKEND_CPU, true, err, sizeof err); uaf_init(m[k], 11); params_zero_grad(m[k]->ps);
        Ctx *ctx = ctx_create(BACKEND_CPU, 1);
        if (!video) { int64_t d[5] = {B, c->frames, 3, c->frame_size, c->frame_size}; video = tensor_new(ctx, DTYPE_F32, 5, d);
            Ctx *h = ctx_create(BACKEND_CPU, 1); (void)h; }
        ctx->cpu_reference = (k == 1 || k == 4);
        perturb_acts = (k == 2) ? atof(argc > 1 ? argv[1] : "1e-5") : 0;
        force_acts = (k == 3 || k == 4);
        Tensor *v = tensor_new(ctx, DTYPE_F32, 5, video->shape); tfill_normal(v, 41, 1.0f);
        if (k == 2 && getenv("PV")) { double eps = atof(getenv("PV")); RngStream r = rng_stream(argc > 4 ? atoi(argv[4]) : 5, RNG_PURPOSE_TEST, 9, 0);
            float *pv = v->data; for (int64_t i = 0; i < tensor_numel(v); i++) pv[i] *= 1 + eps * (2*rng_uniform(&r, i)-1); perturb_acts = 0; force_acts = 1; }
        if (k > 0) forced_idx = so[0].out.focus_idx_host;
        if (!train_step(ctx, m[k], v, labels, B, step, &so[k])) { printf("fail %s\n", ctx_error_message(ctx)); return 1; }
        if (k == 0) { forced_acts = so[0].acts0; }
        printf("run %d (%s): loss %.9g local %.9g cat %.9g\n", k, k==0?"fast":k==1?"reference":k==2?"fast, actions perturbed":"fast again, forced acts", so[k].terms.total_value, so[k].terms.local, so[k].terms.cat);
    }
    for (int k = 1; k < 5; k++) {
        if (only02 && k != 2) continue;
        printf("run %d vs run 0:\n", k);
        printf("  %-40s %.3e\n", "actions", nerr(so[k].acts0, so[0].acts0, tensor_numel(so[0].out.actions)));
        cmpt("glance logits", so[k].out.glance_logits, so[0].out.glance_logits);
        for (int s = 0; s < 2; s++) {
            cmpt(s ? "set2 patches" : "set1 patches", so[k].sets[s].patches, so[0].sets[s].patches);
            cmpt(s ? "set2 local_pooled" : "set1 local_pooled", so[k].sets[s].local_pooled, so[0].sets[s].local_pooled);
            cmpt(s ? "set2 step logits" : "set1 step logits", so[k].sets[s].cls.step_logits, so[0].sets[s].cls.step_logits);
            if (so[0].sets[s].local_pooled->grad) cmpt("  grad local_pooled", so[k].sets[s].local_pooled->grad, so[0].sets[s].local_pooled->grad); else printf("no grad on pooled\n");
            if (so[0].sets[s].local_logits->grad) cmpt("  grad local_logits", so[k].sets[s].local_logits->grad, so[0].sets[s].local_logits->grad);
            if (so[0].sets[s].cls.step_logits->grad) cmpt("  grad step_logits", so[k].sets[s].cls.step_logits->grad, so[0].sets[s].cls.step_logits->grad);
        }
        static const char *G[5] = {"temporal", "spatial", "global", "local", "classifier"};
        for (int g = 0; g < 5; g++) cmp_group(G[g], m[k], m[0], g);
    }
    if (only02) return 0;
    for (int s = 0; s < 2; s++) { Tensor *a = so[0].sets[s].local_pooled->grad, *b = so[4].sets[s].local_pooled->grad;
        int64_t N = a->shape[0], D = a->shape[1]; double sd = 0, ss = 0, sa = 0;
        const float *x = a->data, *y = b->data;
        for (int64_t d = 0; d < D; d++) { double c0 = 0, c1 = 0, ab = 0; for (int64_t n = 0; n < N; n++) { c0 += x[n*D+d]; c1 += y[n*D+d]; ab += fabs(x[n*D+d]); }
            sd += (c0-c1)*(c0-c1); ss += c0*c0; sa += ab*ab; }
        printf("set %d: pooled grad column sums: err %.3e, |colsum| %.3e vs |col abs sum| %.3e\n", s, sqrt(sd/ss), sqrt(ss), sqrt(sa)); }
    dump_stats(m[0], m[0]);
    for (int i = 0; i < m[0]->ps->n; i++) { Tensor *tb = m[0]->ps->items[i], *ta = m[4]->ps->items[i]; if (!tb->grad || strncmp(tb->name, "local_CNN", 9)) continue; printf("G %-40s %.3e |g| %.3e\n", tb->name, nerr(ta->grad->data, tb->grad->data, tensor_numel(tb)), ({double q=0; const float*z=tb->grad->data; for(int64_t j=0;j<tensor_numel(tb);j++) q+=(double)z[j]*z[j]; sqrt(q/tensor_numel(tb));})); }
    return 0;
}
/* appended: stats dump */
void dump_stats(UafModel *a, UafModel *b);
void dump_stats(UafModel *a, UafModel *b)
{
    for (int i = 0; i < b->ps->n; i++) { Tensor *t = b->ps->items[i];
        size_t L = strlen(t->name);
        if (strncmp(t->name, "local_CNN", 9) || L < 11 || strcmp(t->name + L - 11, "running_var")) continue;
        Tensor *tm = b->ps->items[i-1]; /* running_mean assumed before */
        int64_t k = tensor_numel(t); const float *v = t->data, *mu = tm->data;
        double minv = 1e30, maxr = 0; int64_t at = 0;
        for (int64_t j = 0; j < k; j++) { double bv = ((double)v[j] - 0.9) * 10; double m = mu[j]*10.0;
            if (bv < minv) { minv = bv; at = j; } double r = m*m/(bv+1e-12); if (r > maxr) maxr = r; }
        /* grad err of matching weight */
        printf("%-36s C=%3lld min batch var %.3e (ch %lld)  max mean^2/var %.2e [%s]\n", t->name, (long long)k, minv, (long long)at, maxr, tm->name);
    }
    (void)a;
}
