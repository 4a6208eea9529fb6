/* train_loop.c — see train_loop.h. */
#include "impl/train_loop.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "impl/checkpoint.h"
#include "impl/frame_sampler.h"
#include "impl/safetensors.h"
#include "kernels/backend.h"
#include "kernels/dist/dist_grads.h"
#include "kernels/ops.h"
#include "kernels/tape.h"

#define TRAIN_STATE_FORMAT "focusbench-uniadafocus-train-state-v1"
#define STATE_FILE "train_state.safetensors"
#define MODEL_FILE "model.safetensors"

struct Trainer {
    UafModel *m;
    TrainConfig cfg;
    char *config_text; /* owned copy */
    char *out_dir;     /* owned copy or NULL */
    Ctx *ctx;
    Sgd *opt;
    int epoch;         /* next epoch to run */
    int64_t step;      /* steps done (the RNG key of the next step) */
    DistGradSync *sync; /* cfg.comm's gradient average, or NULL */
};

TrainConfig train_config_default(void)
{
    return (TrainConfig){.lr = 0.002, .momentum = 0.9, .weight_decay = 2e-4, .schedule = SGD_SCHEDULE_COSINE,
                         .epochs = 50, .global_lr_ratio = 0.5, .stn_lr_ratio = 0.2, .temporal_lr_ratio = 0.2,
                         .classifier_lr_ratio = 20.0, .norm_ratio = 1.0f, .mc_samples = LOSS_MC_SAMPLES, .seed = 0};
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static char *dup_str(const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void join_path(char *buf, size_t cap, const char *dir, const char *file)
{
    snprintf(buf, cap, "%s/%s", dir, file);
}

/* ---- tensors from the host --------------------------------------------------------------------- */

static Tensor *detach(Ctx *ctx, Tensor *t) { return t ? tensor_view(ctx, t, t->ndim, t->shape) : NULL; }

/* ---- groups ------------------------------------------------------------------------------------- */

/* The official get_optim_policies, in its order. */
static int uaf_groups(const TrainConfig *c, SgdGroup *g)
{
    const SgdGroup groups[] = {
        {"temporal_policy", {"temporal_policy."}, c->temporal_lr_ratio, 1.0},
        {"spatial_policy", {"spatial_policy."}, c->stn_lr_ratio, 1.0},
        {"global_CNN", {"global_CNN."}, c->global_lr_ratio, 1.0},
        {"global_CNN_fc", {"global_CNN_fc."}, c->global_lr_ratio, 1.0},
        {"aux_fc", {"aux_fc."}, c->global_lr_ratio, 1.0},
        {"local_CNN", {"local_CNN."}, 1.0, 1.0},
        {"local_CNN_fc", {"local_CNN_fc."}, 1.0, 1.0},
        {"pooling_classifier", {"classifier."}, c->classifier_lr_ratio, 1.0},
    };
    int n = (int)(sizeof groups / sizeof groups[0]);
    memcpy(g, groups, sizeof groups);
    return n;
}

/* ---- checkpoints ------------------------------------------------------------------------------- */

bool train_state_to_device(Ctx *ctx, ParamSet *ps, Sgd *opt, DistGradSync *sync, char *err, size_t err_cap)
{
    if (ctx->backend == BACKEND_CPU || ps->backend == ctx->backend)
        return true;
    if (!run_device_attach(ctx, ps, err, err_cap) || !run_device_attach(ctx, opt->state, err, err_cap)) {
        train_state_to_host(ctx, ps, opt, sync, err + strlen(err), err_cap - strlen(err));
        return false;
    }
    sgd_set_device(opt, ctx);
    if (sync)
        dist_grad_sync_set_device(sync, ctx);
    return true;
}

bool train_state_to_host(Ctx *ctx, ParamSet *ps, Sgd *opt, DistGradSync *sync, char *err, size_t err_cap)
{
    bool ok = run_device_detach(ctx, ps, err, err_cap);
    ok = run_device_detach(ctx, opt->state, ok ? err : err + strlen(err), ok ? err_cap : err_cap - strlen(err)) && ok;
    sgd_set_device(opt, NULL);
    if (sync)
        dist_grad_sync_set_device(sync, NULL);
    return ok;
}

bool trainer_save(Trainer *tr, int epochs_done, char *err, size_t err_cap)
{
    if (!tr->out_dir || dist_rank(tr->cfg.comm) != 0) /* data-parallel: rank 0 writes */
        return true;
    /* the files are written from the host blocks; the next step moves everything back */
    if (!train_state_to_host(tr->ctx, tr->m->ps, tr->opt, tr->sync, err, err_cap))
        return false;
    const ParamSet *ps = tr->m->ps, *mom = tr->opt->state;
    int n = ps->n + mom->n;
    SafetensorsWriteTensor *t = calloc((size_t)n, sizeof *t);
    char **names = calloc((size_t)n, sizeof *names);
    bool ok = t && names;
    for (int i = 0; ok && i < n; i++) {
        const Tensor *x = i < ps->n ? ps->items[i] : mom->items[i - ps->n];
        const char *prefix = i < ps->n ? "model." : "momentum.";
        size_t len = strlen(prefix) + strlen(x->name) + 1;
        names[i] = malloc(len);
        if (!names[i]) {
            ok = false;
            break;
        }
        snprintf(names[i], len, "%s%s", prefix, x->name);
        t[i] = (SafetensorsWriteTensor){names[i], safetensors_from_dtype(x->dtype), x->ndim, x->shape, x->data};
    }
    char epoch_s[32], step_s[32], sgd_s[32], seed_s[32];
    snprintf(epoch_s, sizeof epoch_s, "%d", epochs_done);
    snprintf(step_s, sizeof step_s, "%" PRId64, tr->step);
    snprintf(sgd_s, sizeof sgd_s, "%" PRId64, tr->opt->steps);
    snprintf(seed_s, sizeof seed_s, "%" PRIu64, tr->cfg.seed);
    SafetensorsMeta meta[] = {{"format", TRAIN_STATE_FORMAT}, {"epoch", epoch_s},         {"step", step_s},
                              {"sgd_steps", sgd_s},           {"seed", seed_s},           {"config", tr->config_text}};
    int n_meta = (int)(sizeof meta / sizeof meta[0]);
    char path[4096];
    if (!ok)
        snprintf(err, err_cap, "train: out of memory writing a checkpoint");
    if (ok) {
        join_path(path, sizeof path, tr->out_dir, STATE_FILE);
        ok = safetensors_write(path, t, n, meta, n_meta, err, err_cap);
    }
    if (ok) {
        /* the model alone, for infer / eval; after the state (see the header) */
        join_path(path, sizeof path, tr->out_dir, MODEL_FILE);
        SafetensorsMeta mmeta[] = {{"epoch", epoch_s}, {"step", step_s}, {"config", tr->config_text}};
        ok = checkpoint_save(ps, path, mmeta, 3, err, err_cap);
    }
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    free(t);
    return ok;
}

static bool parse_i64(const SafetensorsFile *f, const char *key, int64_t *out, char *err, size_t err_cap)
{
    const char *v = safetensors_metadata_get(f, key);
    char *end = NULL;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || end == v || *end || x < 0) {
        snprintf(err, err_cap, "%s: metadata \"%s\" is %s%s%s (expected a non-negative integer); not a focusbench "
                 "training state", safetensors_path(f), key, v ? "\"" : "missing", v ? v : "", v ? "\"" : "");
        return false;
    }
    *out = x;
    return true;
}

/* Loads OUT/train_state.safetensors when present; *found says whether it was. */
static bool trainer_load(Trainer *tr, bool *found, char *err, size_t err_cap)
{
    char path[4096];
    join_path(path, sizeof path, tr->out_dir, STATE_FILE);
    *found = false;
    FILE *probe = fopen(path, "rb");
    if (!probe)
        return true; /* nothing to resume: a fresh run */
    fclose(probe);
    *found = true;
    SafetensorsFile *f = safetensors_open(path, err, err_cap);
    if (!f)
        return false;
    bool ok = true;
    const char *format = safetensors_metadata_get(f, "format");
    const char *config = safetensors_metadata_get(f, "config");
    int64_t epoch = 0, step = 0, sgd_steps = 0, seed = 0;
    if (!format || strcmp(format, TRAIN_STATE_FORMAT) != 0) {
        snprintf(err, err_cap, "%s: not a focusbench Uni-AdaFocus training state (format \"%s\", expected \"%s\")",
                 path, format ? format : "missing", TRAIN_STATE_FORMAT);
        ok = false;
    } else if (!config || strcmp(config, tr->config_text) != 0) {
        snprintf(err, err_cap, "%s was written by a run with another configuration; resume with the same options, or "
                 "use another output directory.\n  saved: %s\n  now:   %s", path, config ? config : "(none)",
                 tr->config_text);
        ok = false;
    } else {
        ok = parse_i64(f, "epoch", &epoch, err, err_cap) && parse_i64(f, "step", &step, err, err_cap) &&
             parse_i64(f, "sgd_steps", &sgd_steps, err, err_cap) && parse_i64(f, "seed", &seed, err, err_cap);
        if (ok && (uint64_t)seed != tr->cfg.seed) {
            snprintf(err, err_cap, "%s was written with seed %lld, this run has seed %" PRIu64, path, (long long)seed,
                     tr->cfg.seed);
            ok = false;
        }
    }
    if (ok) {
        CheckpointLoadOptions mo = {.file_prefix = "model."}, so = {.file_prefix = "momentum."};
        ok = checkpoint_load_file(tr->m->ps, f, &mo, err, err_cap) &&
             checkpoint_load_file(tr->opt->state, f, &so, err, err_cap);
    }
    safetensors_close(f);
    if (!ok)
        return false;
    tr->epoch = (int)epoch;
    tr->step = step;
    tr->opt->steps = sgd_steps;
    sgd_set_epoch(tr->opt, tr->epoch);
    return true;
}

/* ---- trainer ------------------------------------------------------------------------------------ */

void trainer_destroy(Trainer *tr)
{
    if (!tr)
        return;
    if (tr->ctx && tr->opt) { /* the model goes on living on the host */
        char err[256];
        if (!train_state_to_host(tr->ctx, tr->m->ps, tr->opt, tr->sync, err, sizeof err))
            fprintf(stderr, "train: %s\n", err);
    }
    dist_grad_sync_destroy(tr->sync);
    sgd_destroy(tr->opt);
    ctx_destroy(tr->ctx);
    free(tr->config_text);
    free(tr->out_dir);
    free(tr);
}

Trainer *trainer_create(UafModel *m, const TrainConfig *cfg, char *err, size_t err_cap)
{
    if (!m || m->ps->backend != BACKEND_CPU) {
        snprintf(err, err_cap, "train: the model must be allocated on the CPU backend");
        return NULL;
    }
    if (cfg->epochs < 1 || cfg->mc_samples < 1 || !(cfg->norm_ratio >= 0.0f) || cfg->stop_after_epochs < 0) {
        snprintf(err, err_cap, "train: need epochs >= 1, mc samples >= 1, norm ratio >= 0 and stop-after >= 0, got %d, "
                 "%d, %g, %d", cfg->epochs, cfg->mc_samples, (double)cfg->norm_ratio, cfg->stop_after_epochs);
        return NULL;
    }
    if (loss_mc_rounds(m->cfg.glance) < 1) {
        snprintf(err, err_cap, "train: the temporal MC loss needs G >= 3 glance frames (floor(G/3) rounds), got G = %d",
                 m->cfg.glance);
        return NULL;
    }
    for (int i = 0; i < m->ps->n; i++)
        if (m->ps->items[i]->requires_grad && !m->ps->items[i]->grad) {
            snprintf(err, err_cap, "train: the model was created without gradients (uaf_create with with_grads)");
            return NULL;
        }
    Trainer *tr = calloc(1, sizeof *tr);
    if (!tr) {
        snprintf(err, err_cap, "train: out of memory");
        return NULL;
    }
    tr->m = m;
    tr->cfg = *cfg;
    tr->config_text = dup_str(cfg->config_text);
    tr->out_dir = cfg->out_dir ? dup_str(cfg->out_dir) : NULL;
    if (!tr->config_text || (cfg->out_dir && !tr->out_dir)) {
        snprintf(err, err_cap, "train: out of memory");
        trainer_destroy(tr);
        return NULL;
    }
    char why[768];
    if (!(tr->ctx = run_device_ctx(&cfg->device, cfg->seed, why, sizeof why))) {
        snprintf(err, err_cap, "train: %s", why);
        trainer_destroy(tr);
        return NULL;
    }
    tr->cfg.config_text = tr->config_text;
    tr->cfg.out_dir = tr->out_dir;
    SgdConfig sc = {.lr = cfg->lr, .momentum = cfg->momentum, .weight_decay = cfg->weight_decay,
                    .schedule = cfg->schedule, .epochs = cfg->epochs, .n_lr_steps = cfg->n_lr_steps};
    memcpy(sc.lr_steps, cfg->lr_steps, sizeof sc.lr_steps);
    SgdGroup groups[SGD_MAX_GROUPS];
    int n_groups = uaf_groups(cfg, groups);
    if (!(tr->opt = sgd_create(m->ps, &sc, groups, n_groups, err, err_cap))) {
        trainer_destroy(tr);
        return NULL;
    }
    if (cfg->resume && tr->out_dir) {
        bool found;
        if (!trainer_load(tr, &found, err, err_cap)) {
            trainer_destroy(tr);
            return NULL;
        }
    }
    /* every rank starts from rank 0's weights (a resume reads the same state file on every rank);
     * synchronised batch norm keeps the running statistics equal on every rank by construction, so
     * the sync's averaging of them stays off (it would only add rounding) */
    if (cfg->comm && (!dist_broadcast_params(cfg->comm, m->ps, 0, err, err_cap) ||
                      !(tr->sync = dist_grad_sync_create(cfg->comm, m->ps, 0, err, err_cap)))) {
        trainer_destroy(tr);
        return NULL;
    }
    if (cfg->comm && cfg->sync_bn)
        dist_install_bn_sync(tr->ctx, cfg->comm);
    return tr;
}

int trainer_epoch(const Trainer *tr) { return tr->epoch; }
int64_t trainer_steps(const Trainer *tr) { return tr->step; }
Sgd *trainer_optimizer(Trainer *tr) { return tr->opt; }
Ctx *trainer_context(Trainer *tr) { return tr->ctx; }

void train_random_actions(int B, int T, int P, float box_min, float box_max, uint64_t seed, uint64_t step,
                          float *actions)
{
    /* the official (P − 96)/(224 − 96): a box of exactly P pixels, no rescaling */
    double size = box_max > box_min ? ((double)P - box_min) / ((double)box_max - box_min) : 0.0;
    float a_size = (float)(size < 0.0 ? 0.0 : size > 1.0 ? 1.0 : size);
    for (int b = 0; b < B; b++) {
        RngStream s = frame_sampler_stream(seed, b, FRAME_SAMPLER_SLOT_RANDOM_PATCH, step);
        for (int t = 0; t < T; t++) {
            float *a = actions + ((int64_t)b * T + t) * 4; /* (4) */
            a[0] = rng_uniform(&s, 2 * (uint64_t)t);
            a[1] = rng_uniform(&s, 2 * (uint64_t)t + 1);
            a[2] = a_size;
            a[3] = a_size;
        }
    }
}

bool trainer_step(Trainer *tr, const TrainBatch *batch, TrainStepStats *st, char *err, size_t err_cap)
{
    memset(st, 0, sizeof *st);
    double t0 = now_seconds();
    const UafModel *m = tr->m;
    const UafConfig *c = &m->cfg;
    Ctx *ctx = tr->ctx;
    const int B = batch->size, T = c->frames, S = c->frame_size, C = c->num_classes;
    if (B < 1 || !batch->video || !batch->labels) {
        snprintf(err, err_cap, "train: empty batch (size %d)", B);
        return false;
    }
    for (int b = 0; b < B; b++)
        if (batch->labels[b] < 0 || batch->labels[b] >= C) {
            snprintf(err, err_cap, "train: clip %d of the batch has label %d, outside the model's %d classes (an "
                     "unlabelled video, or --classes smaller than the data set's)", b, (int)batch->labels[b], C);
            return false;
        }
    if (!train_state_to_device(ctx, tr->m->ps, tr->opt, tr->sync, err, err_cap))
        return false;
    ctx_clear_error(ctx);
    ctx_begin_pass(ctx);
    ctx_set_training(ctx, true);
    /* the key of this step's draws: rank r of W uses step·W + r (W = 1: the step itself) */
    const uint64_t key = (uint64_t)tr->step * (uint64_t)dist_world(tr->cfg.comm) + (uint64_t)dist_rank(tr->cfg.comm);
    ctx->step = key;
    float *rand_host = malloc((size_t)B * T * 4 * sizeof *rand_host); /* (B, T, 4) */
    if (!rand_host) {
        snprintf(err, err_cap, "train: out of memory");
        return false;
    }
    train_random_actions(B, T, c->patch_size, c->box_min, c->box_max, tr->cfg.seed, key, rand_host);

    Tensor *video = run_device_from_host(ctx, DTYPE_F32, 5, (int64_t[]){B, T, 3, S, S}, batch->video);
    UafForwardOptions fo = {.aux_logits = true, .step = key};
    UafOutput out;
    UafFocusOutput sets[2];
    memset(sets, 0, sizeof sets);
    bool ok = video && uaf_glance(ctx, m, video, &fo, &out) && uaf_policies(ctx, m, &out) &&
              uaf_select_focus(ctx, m, &fo, &out);
    if (ok) {
        Tensor *acts[2] = {out.actions, run_device_from_host(ctx, DTYPE_F32, 3, (int64_t[]){B, T, 4}, rand_host)};
        ok = uaf_focus(ctx, m, video, out.focus_idx, acts, 2, out.glance_pooled, &fo, sets);
    }
    free(rand_host);
    UafLossTerms terms;
    memset(&terms, 0, sizeof terms);
    if (ok) {
        Tensor *mc = loss_mc_average(ctx, out.glance_logits, out.temporal.weights, loss_mc_rounds(c->glance),
                                     tr->cfg.mc_samples, key);
        /* the official action_3 = self.spatial_policy(global_feat_map.detach()): a second pass */
        Tensor *a3 = tr->cfg.single_spatial_pass
                         ? out.glance_actions
                         : policy_spatial_forward(ctx, &m->spatial, detach(ctx, out.glance_features));
        Tensor *sp = loss_feature_crop_logits(ctx, out.glance_features, a3, &m->feature_box, m->aux_fc.weight,
                                              m->aux_fc.bias);
        UafLossInputs li = {.n_sets = 2,
                            .step_logits = {sets[0].cls.step_logits, sets[1].cls.step_logits},
                            .local_logits = {sets[0].local_logits, sets[1].local_logits},
                            .glance_logits = out.glance_logits,
                            .temporal_logits = mc,
                            .spatial_logits = sp,
                            .glance_actions = a3};
        ok = uaf_loss_total(ctx, &li, batch->labels, B, tr->cfg.norm_ratio, &terms);
    }
    if (ok) {
        run_device_zero_grad(ctx, m->ps);
        ok = tape_backward(ctx, terms.total);
    }
    if (!ok) {
        snprintf(err, err_cap, "train step %" PRId64 ": %s", tr->step, ctx_error_message(ctx));
        return false;
    }
    if (!isfinite(terms.total_value)) {
        snprintf(err, err_cap, "train step %" PRId64 ": the loss is %g (diverged; lower --lr)", tr->step,
                 (double)terms.total_value);
        return false;
    }
    /* data-parallel: the gradient of the whole global batch on every rank (one rank: untouched) */
    if (tr->sync && !dist_grad_sync_average(tr->sync, B, NULL, err, err_cap))
        return false;
    if (!sgd_step(tr->opt, err, err_cap))
        return false;
    /* accuracy of the policy set's prediction, as main.py's acc1 on pred_1 */
    const Tensor *pred = sets[0].cls.prediction; /* (B, C) */
    int correct = 0;
    float *p = pred && pred->data ? malloc((size_t)B * C * sizeof *p) : NULL; /* (B, C) on the host */
    if (p && run_device_to_host(ctx, pred, p)) {
        for (int b = 0; b < B; b++) {
            int best = 0;
            for (int k = 1; k < C; k++)
                if (p[(int64_t)b * C + k] > p[(int64_t)b * C + best])
                    best = k;
            correct += best == batch->labels[b];
        }
    }
    free(p);
    terms.total = NULL;
    st->terms = terms;
    st->batch = B;
    st->correct = correct;
    tr->step++;
    st->seconds = now_seconds() - t0;
    return true;
}

bool trainer_run(Trainer *tr, TrainDataSource *src, TrainEpochFn on_epoch, void *user, char *err, size_t err_cap)
{
    int ran = 0;
    FILE *log = tr->cfg.log;
    while (tr->epoch < tr->cfg.epochs) {
        if (tr->cfg.stop_after_epochs > 0 && ran >= tr->cfg.stop_after_epochs)
            return true;
        int e = tr->epoch;
        sgd_set_epoch(tr->opt, e);
        if (!src->start_epoch(src->user, e, err, err_cap))
            return false;
        TrainEpochStats es = {.epoch = e, .lr = sgd_schedule_lr(&tr->opt->cfg, e)};
        double t0 = now_seconds();
        int64_t correct = 0;
        for (;;) {
            TrainBatch b;
            int r = src->next_batch(src->user, &b, err, err_cap);
            if (r < 0)
                return false;
            if (r == 0)
                break;
            TrainStepStats st;
            if (!trainer_step(tr, &b, &st, err, err_cap))
                return false;
            double w = st.batch;
            es.loss += w * st.terms.total_value;
            es.cat += w * st.terms.cat;
            es.global += w * st.terms.global;
            es.local += w * st.terms.local;
            es.temporal += w * st.terms.temporal;
            es.spatial += w * st.terms.spatial;
            es.norm += w * st.terms.norm;
            es.samples += st.batch;
            correct += st.correct;
            es.steps++;
            if (log && tr->cfg.log_every > 0 && es.steps % tr->cfg.log_every == 0) {
                fprintf(log, "epoch %d step %" PRId64 " (%" PRId64 " this epoch), lr %.6g: loss %.4f (cat %.4f global "
                        "%.4f local %.4f temporal %.4f spatial %.4f norm %.4f), acc %.1f%%, %.2f s/step\n", e,
                        tr->step, es.steps, es.lr, (double)st.terms.total_value, (double)st.terms.cat,
                        (double)st.terms.global, (double)st.terms.local, (double)st.terms.temporal,
                        (double)st.terms.spatial, (double)st.terms.norm, 100.0 * st.correct / st.batch, st.seconds);
                fflush(log);
            }
        }
        if (es.steps == 0) {
            snprintf(err, err_cap, "train: the data source gave no batch in epoch %d (empty data set, or every batch "
                     "dropped)", e);
            return false;
        }
        double n = (double)es.samples;
        es.loss /= n, es.cat /= n, es.global /= n, es.local /= n, es.temporal /= n, es.spatial /= n, es.norm /= n;
        es.accuracy = (double)correct / n;
        tr->epoch = e + 1;
        if (!trainer_save(tr, tr->epoch, err, err_cap))
            return false;
        es.seconds = now_seconds() - t0;
        if (log) {
            fprintf(log, "epoch %d done: %" PRId64 " steps, %" PRId64 " clips, lr %.6g, loss %.4f (cat %.4f global %.4f "
                    "local %.4f temporal %.4f spatial %.4f norm %.4f), train acc %.2f%%, %.1f s%s\n", e, es.steps,
                    es.samples, es.lr, es.loss, es.cat, es.global, es.local, es.temporal, es.spatial, es.norm,
                    100.0 * es.accuracy, es.seconds, tr->out_dir ? ", checkpoint written" : "");
            fflush(log);
        }
        if (on_epoch)
            on_epoch(user, &es);
        ran++;
    }
    return true;
}

/* ---- eval-mode exit logits ------------------------------------------------------------------------- */

void exit_logits_free(ExitLogits *e)
{
    if (!e)
        return;
    free(e->exit_logits);
    free(e->labels);
    free(e->videos);
    free(e->sample_gflops);
    memset(e, 0, sizeof *e);
}

/* Grows out's arrays to hold `need` clips (cap doubles); false when memory runs out. */
static bool exit_logits_reserve(ExitLogits *out, int64_t need, int64_t *cap, bool with_gflops)
{
    if (need <= *cap)
        return true;
    int64_t ncap = *cap ? *cap * 2 : 256;
    while (ncap < need)
        ncap *= 2;
    float *l = realloc(out->exit_logits, (size_t)ncap * out->K * out->C * sizeof *l); /* (n, K, C) */
    if (l)
        out->exit_logits = l;
    int32_t *y = realloc(out->labels, (size_t)ncap * sizeof *y);
    if (y)
        out->labels = y;
    int32_t *v = realloc(out->videos, (size_t)ncap * sizeof *v);
    if (v)
        out->videos = v;
    double *g = NULL;
    if (with_gflops) {
        g = realloc(out->sample_gflops, (size_t)ncap * out->K * sizeof *g); /* (n, K) */
        if (g)
            out->sample_gflops = g;
    }
    if (!l || !y || !v || (with_gflops && !g))
        return false;
    *cap = ncap;
    return true;
}

bool exit_logits_collect(const RunDevice *dev, ParamSet *ps, int K, int C, int T, int S, bool with_gflops,
                         ExitLogitsBatchFn batch_fn, void *user, TrainDataSource *src, int epoch, FILE *progress,
                         int every, ExitLogits *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    out->K = K;
    out->C = C;
    char why[768];
    Ctx *ctx = run_device_open(dev, 0, ps, why, sizeof why);
    if (!ctx) {
        snprintf(err, err_cap, "eval: %s", why);
        return false;
    }
    ctx_set_training(ctx, false);
    int64_t cap = 0;
    bool ok = src->start_epoch(src->user, epoch, err, err_cap);
    for (int64_t batches = 0; ok; batches++) {
        TrainBatch b;
        int r = src->next_batch(src->user, &b, err, err_cap);
        if (r <= 0) {
            ok = r == 0;
            break;
        }
        if (!exit_logits_reserve(out, out->n + b.size, &cap, with_gflops)) {
            snprintf(err, err_cap, "eval: out of memory for %lld clips' exit logits", (long long)(out->n + b.size));
            ok = false;
            break;
        }
        ctx_clear_error(ctx);
        ctx_begin_pass(ctx);
        Tensor *clips = run_device_from_host(ctx, DTYPE_F32, 5, (int64_t[]){b.size, T, 3, S, S}, b.video);
        if (!clips || !batch_fn(ctx, user, clips, b.size, out->exit_logits + out->n * K * C,
                                with_gflops ? out->sample_gflops + out->n * K : NULL)) {
            snprintf(err, err_cap, "eval: %s", ctx_error_message(ctx));
            ok = false;
            break;
        }
        for (int i = 0; i < b.size; i++) {
            out->labels[out->n + i] = b.labels ? b.labels[i] : -1;
            out->videos[out->n + i] = b.videos ? b.videos[i] : -1;
        }
        out->n += b.size;
        if (progress && every > 0 && (batches + 1) % every == 0) {
            fprintf(progress, "  %lld clips\n", (long long)out->n);
            fflush(progress);
        }
    }
    run_device_close(ctx, ps);
    if (ok && out->n == 0) {
        snprintf(err, err_cap, "eval: the data source gave no clip");
        ok = false;
    }
    if (!ok)
        exit_logits_free(out);
    return ok;
}

/* collect_exit_logits' batch: Uni-AdaFocus's forward, its (B, F + 1, C) exit logits. */
static bool uaf_exit_batch(Ctx *ctx, void *user, Tensor *clips, int B, float *logits, double *gflops)
{
    (void)B, (void)gflops;
    const UafModel *m = user;
    UafForwardOptions fo = {0};
    UafOutput o;
    return uaf_forward(ctx, m, clips, &fo, &o) && uaf_read_host(ctx, o.focus.cls.exit_logits, logits);
}

bool collect_exit_logits(const UafModel *m, const RunDevice *dev, TrainDataSource *src, int epoch, FILE *progress,
                         int every, ExitLogits *out, char *err, size_t err_cap)
{
    const UafConfig *c = &m->cfg;
    return exit_logits_collect(dev, m->ps, c->focus + 1, c->num_classes, c->frames, c->frame_size, false,
                               uaf_exit_batch, (void *)m, src, epoch, progress, every, out, err, err_cap);
}
