/* boxes.c — the policy's boxes against the synthetic ground truth (see boxes.h). */
#include "bench/boxes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/synth.h"
#include "datasets/transform.h"
#include "datasets/video.h"
#include "kernels/tensor.h"

double boxes_iou(const float a[4], const float b[4])
{
    if (!(a[2] > 0.0f && a[3] > 0.0f && b[2] > 0.0f && b[3] > 0.0f))
        return 0.0;
    double ix = fmin((double)a[0] + a[2], (double)b[0] + b[2]) - fmax(a[0], b[0]);
    double iy = fmin((double)a[1] + a[3], (double)b[1] + b[3]) - fmax(a[1], b[1]);
    if (ix <= 0.0 || iy <= 0.0)
        return 0.0;
    double inter = ix * iy, uni = (double)a[2] * a[3] + (double)b[2] * b[3] - inter;
    return uni > 0.0 ? inter / uni : 0.0;
}

int64_t boxes_video_frame(int64_t num_frames, int T, int t)
{
    if (num_frames < 1 || T < 1 || t < 0 || t >= T)
        return -1;
    int64_t buf[256];
    int64_t *idx = T <= 256 ? buf : malloc((size_t)T * sizeof *idx); /* (T) */
    if (!idx)
        return -1;
    /* test sampling draws nothing: seed, video and epoch do not matter */
    video_sample_tsn(num_frames, T, false, 0, 0, 0, idx);
    int64_t f = idx[t];
    if (idx != buf)
        free(idx);
    return f;
}

void boxes_clip_to_video(int video_w, int video_h, int S, bool whole_frame, const float in[4], float out[4])
{
    /* the region of the source frame the S×S clip frame shows, as datasets/loader.c draws it */
    TransformRegion r = transform_center_region(video_w, video_h, whole_frame ? S : S * 256 / 224, S);
    double sx = r.w / S, sy = r.h / S;
    out[0] = (float)(r.x + in[0] * sx);
    out[1] = (float)(r.y + in[1] * sy);
    out[2] = (float)(in[2] * sx);
    out[3] = (float)(in[3] * sy);
}

/* ---- ground truth ----------------------------------------------------------------------------- */

void box_truth_free(BoxTruth *t)
{
    if (!t)
        return;
    free(t->frames);
    free(t->first);
    free(t->hard);
    free(t->box);
    free(t->evidence);
    memset(t, 0, sizeof *t);
}

/* Sizes the per-video arrays for n videos (frames filled by the caller), then the per-frame ones. */
static bool truth_alloc_videos(BoxTruth *t, int n)
{
    t->n_videos = n;
    t->frames = calloc((size_t)(n > 0 ? n : 1), sizeof *t->frames);
    t->first = calloc((size_t)(n > 0 ? n : 1), sizeof *t->first);
    t->hard = calloc((size_t)(n > 0 ? n : 1), 1);
    return t->frames && t->first && t->hard;
}

static bool truth_alloc_frames(BoxTruth *t)
{
    int64_t total = 0;
    for (int v = 0; v < t->n_videos; v++) {
        t->first[v] = total;
        total += t->frames[v];
    }
    t->box = calloc((size_t)(total > 0 ? total : 1) * 4, sizeof *t->box);
    t->evidence = calloc((size_t)(total > 0 ? total : 1), 1);
    return t->box && t->evidence;
}

/* --synthetic N: the renderer's plan of every validation video at S×S (bench/train_data.c renders
 * them the same way). */
static bool truth_synthetic(int n, int S, BoxTruth *t, char *err, size_t err_cap)
{
    SynthConfig c;
    synth_preset("synth-small", &c);
    c.width = c.height = S;
    c.videos_train = c.videos_val = n;
    t->width = t->height = S;
    t->rendered = true;
    if (!truth_alloc_videos(t, n))
        goto oom;
    SynthVideo *sv = calloc((size_t)n, sizeof *sv);
    if (!sv)
        goto oom;
    bool ok = true;
    for (int v = 0; v < n && ok; v++) {
        ok = synth_plan_video(&c, DATA_SPLIT_VAL, v, &sv[v]);
        if (ok)
            t->frames[v] = sv[v].frames, t->hard[v] = sv[v].hard;
    }
    ok = ok && truth_alloc_frames(t);
    for (int v = 0; v < n && ok; v++)
        for (int f = 0; f < sv[v].frames; f++) {
            const SynthFrameTruth *g = &sv[v].truth[f];
            float *b = t->box + 4 * (t->first[v] + f);
            b[0] = g->x, b[1] = g->y, b[2] = g->w, b[3] = g->h;
            t->evidence[t->first[v] + f] = g->evidence;
        }
    for (int v = 0; v < n; v++)
        synth_video_free(&sv[v]);
    free(sv);
    if (ok)
        return true;
oom:
    snprintf(err, err_cap, "boxes: out of memory for the ground truth of %d synthetic videos", n);
    box_truth_free(t);
    return false;
}

/* "width N" / "height N" from the generator's dataset card DIR/synth.txt. */
static bool read_card(const char *dir, int *w, int *h)
{
    char path[4200], line[256];
    snprintf(path, sizeof path, "%s/synth.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    *w = *h = 0;
    while (fgets(line, sizeof line, f)) {
        int v;
        if (sscanf(line, "width %d", &v) == 1)
            *w = v;
        else if (sscanf(line, "height %d", &v) == 1)
            *h = v;
    }
    fclose(f);
    return *w > 0 && *h > 0;
}

static int need(const CsvTable *c, const char *name, char *err, size_t err_cap)
{
    int i = csv_table_col(c, name);
    if (i < 0)
        snprintf(err, err_cap, "boxes: %s has no column '%s' (written by an older gen-data? regenerate the data)",
                 c->source, name);
    return i;
}

/* DIR/ground_truth/val_{videos,frames}.csv and DIR/synth.txt, as `gen-data` writes them. */
static bool truth_dir(const char *dir, BoxTruth *t, char *err, size_t err_cap)
{
    char path[4200];
    if (!read_card(dir, &t->width, &t->height)) {
        snprintf(err, err_cap, "%s has no ground truth: not a synthetic benchmark (no %s/synth.txt with the frame "
                 "size; --boxes-csv needs data written by focusbench gen-data)", dir, dir);
        return false;
    }
    CsvTable vt = {0}, ft = {0};
    snprintf(path, sizeof path, "%s/ground_truth/val_videos.csv", dir);
    bool ok = csv_table_read(path, &vt, err, err_cap);
    snprintf(path, sizeof path, "%s/ground_truth/val_frames.csv", dir);
    ok = ok && csv_table_read(path, &ft, err, err_cap);
    int cv = -1, cn = -1, cd = -1, fv = -1, ff = -1, fx = -1, fy = -1, fw = -1, fh = -1, fe = -1;
    if (ok) {
        cv = need(&vt, "video", err, err_cap), cn = need(&vt, "frames", err, err_cap),
        cd = need(&vt, "difficulty", err, err_cap);
        fv = need(&ft, "video", err, err_cap), ff = need(&ft, "frame", err, err_cap), fx = need(&ft, "x", err, err_cap),
        fy = need(&ft, "y", err, err_cap), fw = need(&ft, "w", err, err_cap), fh = need(&ft, "h", err, err_cap),
        fe = need(&ft, "evidence_visible", err, err_cap);
        ok = cv >= 0 && cn >= 0 && cd >= 0 && fv >= 0 && ff >= 0 && fx >= 0 && fy >= 0 && fw >= 0 && fh >= 0 &&
             fe >= 0;
    }
    if (ok && !truth_alloc_videos(t, vt.n_rows)) {
        snprintf(err, err_cap, "boxes: out of memory for %d videos' ground truth", vt.n_rows);
        ok = false;
    }
    /* video i of the list is row i of val_videos.csv (gen-data writes both in one order) */
    for (int r = 0; ok && r < vt.n_rows; r++) {
        double v, n;
        ok = csv_table_number(&vt, r, cv, &v) && v == r && csv_table_number(&vt, r, cn, &n) && n >= 1 && n < 1e7;
        if (!ok)
            snprintf(err, err_cap, "boxes: %s row %d: expected video %d with a frame count", vt.source, r + 1, r);
        else
            t->frames[r] = (int)n, t->hard[r] = strcmp(csv_table_cell(&vt, r, cd), "hard") == 0;
    }
    if (ok && !truth_alloc_frames(t)) {
        snprintf(err, err_cap, "boxes: out of memory for the per-frame ground truth");
        ok = false;
    }
    for (int r = 0; ok && r < ft.n_rows; r++) {
        double v, f, x, y, w, h, e;
        ok = csv_table_number(&ft, r, fv, &v) && csv_table_number(&ft, r, ff, &f) && v >= 0 && v < t->n_videos &&
             f >= 0 && f < t->frames[(int)v] && csv_table_number(&ft, r, fx, &x) && csv_table_number(&ft, r, fy, &y) &&
             csv_table_number(&ft, r, fw, &w) && csv_table_number(&ft, r, fh, &h) && csv_table_number(&ft, r, fe, &e);
        if (!ok) {
            snprintf(err, err_cap, "boxes: %s row %d: bad video/frame/box values", ft.source, r + 1);
            break;
        }
        int64_t i = t->first[(int)v] + (int64_t)f;
        float *b = t->box + 4 * i;
        b[0] = (float)x, b[1] = (float)y, b[2] = (float)w, b[3] = (float)h;
        t->evidence[i] = e != 0.0;
    }
    csv_table_free(&vt);
    csv_table_free(&ft);
    if (!ok)
        box_truth_free(t);
    return ok;
}

bool box_truth_load(const DataArgs *a, int S, BoxTruth *t, char *err, size_t err_cap)
{
    memset(t, 0, sizeof *t);
    if (a->synthetic > 0)
        return truth_synthetic(a->synthetic, S, t, err, err_cap);
    if (a->format && strcmp(a->format, "list") != 0) {
        snprintf(err, err_cap, "the %s data has no ground truth: not a synthetic benchmark (--boxes-csv needs data "
                 "written by focusbench gen-data, read as --data DIR)", a->format);
        return false;
    }
    if (a->cache[DATA_SPLIT_VAL]) {
        snprintf(err, err_cap, "a clip cache carries no ground truth (give the synthetic benchmark as --data DIR)");
        return false;
    }
    char dir[4096];
    if (a->data_dir) {
        snprintf(dir, sizeof dir, "%s", a->data_dir);
    } else if (a->list[DATA_SPLIT_VAL]) {
        snprintf(dir, sizeof dir, "%s", a->list[DATA_SPLIT_VAL]);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    } else {
        snprintf(err, err_cap, "no validation data to find the ground truth of");
        return false;
    }
    return truth_dir(dir, t, err, err_cap);
}

/* ---- one pass over the data ------------------------------------------------------------------ */

void box_records_free(BoxRecords *r)
{
    if (!r)
        return;
    free(r->video);
    free(r->slot);
    free(r->clip_frame);
    free(r->box);
    memset(r, 0, sizeof *r);
}

static bool records_grow(BoxRecords *r, int64_t need, int64_t *cap)
{
    if (need <= *cap)
        return true;
    int64_t nc = *cap ? *cap * 2 : 1024;
    while (nc < need)
        nc *= 2;
    int32_t *v = realloc(r->video, (size_t)nc * sizeof *v);
    if (v)
        r->video = v;
    int32_t *s = realloc(r->slot, (size_t)nc * sizeof *s);
    if (s)
        r->slot = s;
    int32_t *c = realloc(r->clip_frame, (size_t)nc * sizeof *c);
    if (c)
        r->clip_frame = c;
    float *b = realloc(r->box, (size_t)nc * 4 * sizeof *b);
    if (b)
        r->box = b;
    if (!v || !s || !c || !b)
        return false;
    *cap = nc;
    return true;
}

/* Uni-AdaFocus (impl/uniadafocus.h): the one patch set's boxes (y1, x1, h, w) → (x, y, w, h). */
static bool uaf_boxes(Ctx *ctx, const UafModel *um, Tensor *clips, float **box, int32_t **idx, int *F, char *err,
                      size_t err_cap)
{
    UafForwardOptions fo = {0};
    UafOutput o;
    if (!uaf_forward(ctx, um, clips, &fo, &o) || !o.focus.boxes || !o.focus_idx) {
        snprintf(err, err_cap, "boxes: %s", ctx_ok(ctx) ? "the model gave no boxes" : ctx_error_message(ctx));
        return false;
    }
    const int64_t B = clips->shape[0];
    *F = um->cfg.focus;
    *box = malloc((size_t)(B * *F * 4) * sizeof **box); /* (B, F, 4) */
    if (!*box || !uaf_read_host(ctx, o.focus.boxes, *box)) {
        snprintf(err, err_cap, "boxes: cannot read the boxes");
        return false;
    }
    for (int64_t i = 0; i < B * *F; i++) {
        float *b = *box + 4 * i, y1 = b[0], x1 = b[1], h = b[2], w = b[3];
        b[0] = x1, b[1] = y1, b[2] = w, b[3] = h;
    }
    /* the focus frames (B, F): the host copy when the sampler ran there, else the device's */
    *idx = malloc((size_t)(B * *F) * sizeof **idx);
    if (!*idx || !(o.focus_idx_host ? (memcpy(*idx, o.focus_idx_host, (size_t)(B * *F) * sizeof **idx), true)
                                    : run_device_to_host(ctx, o.focus_idx, *idx))) {
        snprintf(err, err_cap, "boxes: cannot read the focus frames");
        return false;
    }
    return true;
}

bool boxes_collect(TrainDataSource *src, Method *mm, const UafModel *um, const RunDevice *dev, int T, int S,
                   BoxRecords *out, char *err, size_t err_cap)
{
    memset(out, 0, sizeof *out);
    if ((mm != NULL) == (um != NULL) || (mm && !mm->ops->focus_boxes)) {
        snprintf(err, err_cap, "boxes: need one model with boxes");
        return false;
    }
    ParamSet *ps = mm ? mm->ps : um->ps;
    char why[768];
    Ctx *ctx = run_device_open(dev, 0, ps, why, sizeof why);
    if (!ctx) {
        snprintf(err, err_cap, "boxes: %s", why);
        return false;
    }
    ctx_set_training(ctx, false);
    int64_t cap = 0;
    bool ok = src->start_epoch(src->user, 0, err, err_cap);
    while (ok) {
        TrainBatch b;
        int r = src->next_batch(src->user, &b, err, err_cap);
        if (r <= 0) {
            ok = r == 0;
            break;
        }
        ctx_clear_error(ctx);
        ctx_begin_pass(ctx);
        ctx->step = 0; /* as eval: draws do not depend on the batch number */
        Tensor *clips = run_device_from_host(ctx, DTYPE_F32, 5, (int64_t[]){b.size, T, 3, S, S}, b.video);
        const float *box = NULL;
        const int32_t *idx = NULL;
        float *own_box = NULL;
        int32_t *uaf_idx = NULL;
        int F = 0;
        if (!clips) {
            snprintf(err, err_cap, "boxes: %s", ctx_error_message(ctx));
            ok = false;
        } else if (mm) {
            MethodFocusBoxes fb;
            ok = mm->ops->forward_exits(ctx, mm, clips, NULL) != NULL;
            if (!ok)
                snprintf(err, err_cap, "boxes: %s", ctx_error_message(ctx));
            ok = ok && mm->ops->focus_boxes(ctx, mm, &fb, err, err_cap);
            if (ok && fb.n != b.size) {
                snprintf(err, err_cap, "boxes: %s reported boxes of %d videos for a batch of %d", mm->id, fb.n, b.size);
                ok = false;
            }
            box = fb.boxes, idx = fb.frame_idx, F = fb.focus;
        } else {
            ok = uaf_boxes(ctx, um, clips, &own_box, &uaf_idx, &F, err, err_cap);
            box = own_box, idx = uaf_idx;
        }
        if (ok && !records_grow(out, out->n + (int64_t)b.size * F, &cap)) {
            snprintf(err, err_cap, "boxes: out of memory");
            ok = false;
        }
        for (int i = 0; ok && i < b.size; i++)
            for (int k = 0; k < F; k++) {
                int64_t j = out->n++, s = (int64_t)i * F + k;
                out->video[j] = b.videos ? b.videos[i] : -1;
                out->slot[j] = k;
                out->clip_frame[j] = idx[s];
                memcpy(out->box + 4 * j, box + 4 * s, 4 * sizeof *box);
            }
        out->focus = F;
        free(own_box);
        free(uaf_idx);
    }
    run_device_close(ctx, ps);
    if (!ok)
        box_records_free(out);
    return ok;
}

/* ---- the CSV ------------------------------------------------------------------------------- */

static const char *const COLUMNS[] = {"method", "preset", "row", "video", "difficulty", "focus_slot", "clip_frame",
                                      "video_frame", "box_x_px", "box_y_px", "box_w_px", "box_h_px", "gt_x_px",
                                      "gt_y_px", "gt_w_px", "gt_h_px", "iou", "evidence_visible", "n_boxes"};
enum { N_COLUMNS = (int)(sizeof COLUMNS / sizeof COLUMNS[0]) };

static void summary_row(CsvOut *w, const char *method_id, const char *preset, const char *row, double iou, int64_t n)
{
    csv_out_str(w, method_id);
    csv_out_str(w, preset);
    csv_out_str(w, row);
    for (int k = 0; k < 13; k++) /* video … gt_h_px */
        csv_out_empty(w);
    csv_out_double(w, iou);
    csv_out_empty(w);
    csv_out_int(w, n);
    csv_out_end_row(w);
}

bool boxes_write_csv(const char *path, const BoxRecords *r, const BoxTruth *t, int T, int S, bool whole_frame,
                     const char *method_id, const char *preset, const CsvEnv *env, BoxSummary *sum, char *err,
                     size_t err_cap)
{
    memset(sum, 0, sizeof *sum);
    CsvOut *w = csv_out_open(path, COLUMNS, N_COLUMNS, env, err, err_cap);
    if (!w)
        return false;
    double total = 0.0, total_ev = 0.0;
    for (int64_t j = 0; j < r->n; j++) {
        int v = r->video[j], cf = r->clip_frame[j];
        if (v < 0 || v >= t->n_videos || cf < 0 || cf >= T) {
            snprintf(err, err_cap, "boxes: video %d (clip frame %d) is not in the ground truth's %d videos (is it the "
                     "same data set?)", v, cf, t->n_videos);
            csv_out_abort(w);
            return false;
        }
        int64_t vf = boxes_video_frame(t->frames[v], T, cf);
        const float *gt = t->box + 4 * (t->first[v] + vf);
        bool ev = t->evidence[t->first[v] + vf];
        float bv[4];
        if (t->rendered) /* rendered at the clip size: clip pixels are video pixels */
            memcpy(bv, r->box + 4 * j, sizeof bv);
        else
            boxes_clip_to_video(t->width, t->height, S, whole_frame, r->box + 4 * j, bv);
        double iou = boxes_iou(bv, gt);
        total += iou;
        sum->n++;
        if (ev) {
            total_ev += iou;
            sum->n_evidence++;
        }
        csv_out_str(w, method_id);
        csv_out_str(w, preset);
        csv_out_str(w, "box");
        csv_out_int(w, v);
        csv_out_str(w, t->hard[v] ? "hard" : "easy");
        csv_out_int(w, r->slot[j]);
        csv_out_int(w, cf);
        csv_out_int(w, vf);
        for (int k = 0; k < 4; k++)
            csv_out_float(w, bv[k]);
        for (int k = 0; k < 4; k++)
            csv_out_float(w, gt[k]);
        csv_out_double(w, iou);
        csv_out_int(w, ev);
        csv_out_empty(w);
        csv_out_end_row(w);
    }
    sum->mean_iou = sum->n ? total / (double)sum->n : NAN;
    sum->mean_iou_evidence = sum->n_evidence ? total_ev / (double)sum->n_evidence : NAN;
    summary_row(w, method_id, preset, "summary", sum->mean_iou, sum->n);
    summary_row(w, method_id, preset, "summary-evidence", sum->mean_iou_evidence, sum->n_evidence);
    return csv_out_commit(w, err, err_cap);
}
