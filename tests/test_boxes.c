/* test_boxes.c — the policy's boxes against the synthetic ground truth (bench/boxes.h) and the
 * exit histograms of `eval`: the clip → video frame mapping, IoU of known boxes, the clip → video
 * pixel mapping, the ground truth read back, the methods' focus_boxes (impl/method.h), and the
 * built binary (FOCUSBENCH_BIN, set by `make test`; skipped otherwise) on a tiny generated
 * benchmark: `eval --boxes-csv` (one row per video and focus frame, IoU in [0, 1], the summary),
 * centred boxes of the centre ablation, the message of a method without boxes and of data without
 * ground truth, `eval --exits-csv` (each histogram sums to the videos), and `plot --kind iou-bars`
 * / `exit-histogram` on those CSVs (when gnuplot exists). */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "baselines/registry.h"
#include "bench/boxes.h"
#include "bench/csv_out.h"
#include "datasets/synth.h"
#include "datasets/video.h"
#include "impl/presets.h"
#include "kernels/ops.h"
#include "test_util.h"

/* |a − b| <= tol in double precision (this cmocka has no assert_double_equal). */
#define assert_near(a, b, tol)                                                                                  \
    do {                                                                                                        \
        double a_ = (a), b_ = (b);                                                                              \
        if (!(fabs(a_ - b_) <= (tol)))                                                                          \
            fail_msg("%s = %.17g, expected %s = %.17g (tolerance %g)", #a, a_, #b, b_, (double)(tol));          \
    } while (0)

/* ---- pure functions ------------------------------------------------------------------------- */

static void test_frame_mapping(void **state)
{
    (void)state;
    /* the official test sampling: int(tick/2 + tick·i), tick = n/T */
    static const int NS[] = {1, 3, 7, 8, 28, 33, 36, 97};
    static const int TS[] = {1, 4, 6, 8, 16};
    for (size_t a = 0; a < sizeof NS / sizeof NS[0]; a++)
        for (size_t b = 0; b < sizeof TS / sizeof TS[0]; b++) {
            int n = NS[a], T = TS[b];
            int64_t idx[16];
            video_sample_tsn(n, T, false, 7, 3, 2, idx);
            for (int t = 0; t < T; t++) {
                double tick = (double)n / T;
                int64_t want = (int64_t)(tick / 2.0 + tick * t);
                int64_t got = boxes_video_frame(n, T, t);
                if (got != want || got != idx[t] || got < 0 || got >= n)
                    fail_msg("n %d, T %d, t %d: mapped to %lld, official %lld, loader %lld", n, T, t, (long long)got,
                             (long long)want, (long long)idx[t]);
            }
        }
    assert_int_equal(boxes_video_frame(33, 8, 1), 6); /* tick 4.125: int(2.0625 + 4.125) */
    assert_int_equal(boxes_video_frame(33, 8, 8), -1);
    assert_int_equal(boxes_video_frame(33, 8, -1), -1);
    assert_int_equal(boxes_video_frame(0, 8, 0), -1);
}

static void test_iou(void **state)
{
    (void)state;
    const float a[4] = {10, 20, 10, 10};
    assert_near(boxes_iou(a, a), 1.0, 1e-12);                              /* identical */
    assert_near(boxes_iou(a, (const float[]){30, 20, 10, 10}), 0.0, 0.0); /* disjoint */
    assert_near(boxes_iou(a, (const float[]){20, 20, 10, 10}), 0.0, 0.0); /* touching edges */
    /* half of a overlaps b (shifted by half its width): 50 / 150 */
    assert_near(boxes_iou(a, (const float[]){15, 20, 10, 10}), 1.0 / 3.0, 1e-12);
    assert_near(boxes_iou((const float[]){15, 20, 10, 10}, a), 1.0 / 3.0, 1e-12); /* symmetric */
    /* b is half of a: 50 / 100 */
    assert_near(boxes_iou(a, (const float[]){10, 25, 10, 5}), 0.5, 1e-12);
    /* a quarter: b shifted by half in x and y, 25 / 175 */
    assert_near(boxes_iou(a, (const float[]){15, 25, 10, 10}), 25.0 / 175.0, 1e-12);
    /* empty boxes never overlap */
    assert_near(boxes_iou(a, (const float[]){12, 22, 0, 5}), 0.0, 0.0);
    assert_near(boxes_iou((const float[]){0, 0, 0, 0}, (const float[]){0, 0, 0, 0}), 0.0, 0.0);
}

static void test_clip_to_video(void **state)
{
    (void)state;
    float out[4];
    /* a square 64-pixel video as 32-pixel clips, whole frame: ×2 */
    boxes_clip_to_video(64, 64, 32, true, (const float[]){4, 8, 16, 10}, out);
    assert_float_equal(out[0], 8, 1e-5), assert_float_equal(out[1], 16, 1e-5);
    assert_float_equal(out[2], 32, 1e-5), assert_float_equal(out[3], 20, 1e-5);
    /* same size: identity */
    boxes_clip_to_video(64, 64, 64, true, (const float[]){4, 8, 16, 10}, out);
    assert_float_equal(out[0], 4, 1e-5), assert_float_equal(out[3], 10, 1e-5);
    /* 96×64 whole frame at 32: short side 64 → 32 (48×32), centre crop x from round(8) = 8 → ×2, +16 */
    boxes_clip_to_video(96, 64, 32, true, (const float[]){0, 0, 32, 32}, out);
    assert_float_equal(out[0], 16, 1e-5), assert_float_equal(out[1], 0, 1e-5);
    assert_float_equal(out[2], 64, 1e-5), assert_float_equal(out[3], 64, 1e-5);
    /* official test transform: 224 video, S 224 → resize to 256, crop 224 at 16: 224/256 per pixel */
    boxes_clip_to_video(224, 224, 224, false, (const float[]){0, 0, 224, 224}, out);
    assert_float_equal(out[0], 16 * 224.0f / 256, 1e-4), assert_float_equal(out[2], 196, 1e-4);
}

/* --synthetic N: the planned truth of each validation video at the clip size. */
static void test_truth_synthetic(void **state)
{
    (void)state;
    DataArgs a = {.synthetic = 3};
    BoxTruth t;
    char err[512];
    assert_true(box_truth_load(&a, 32, &t, err, sizeof err));
    assert_int_equal(t.n_videos, 3);
    assert_int_equal(t.width, 32);
    assert_true(t.rendered);
    SynthConfig c;
    synth_preset("synth-small", &c);
    c.width = c.height = 32;
    for (int v = 0; v < 3; v++) {
        SynthVideo sv;
        assert_true(synth_plan_video(&c, DATA_SPLIT_VAL, v, &sv));
        assert_int_equal(t.frames[v], sv.frames);
        assert_int_equal(t.hard[v], sv.hard);
        for (int f = 0; f < sv.frames; f++) {
            assert_float_equal(t.box[4 * (t.first[v] + f)], sv.truth[f].x, 0);
            assert_float_equal(t.box[4 * (t.first[v] + f) + 3], sv.truth[f].h, 0);
            assert_int_equal(t.evidence[t.first[v] + f], sv.truth[f].evidence);
        }
        synth_video_free(&sv);
    }
    box_truth_free(&t);
    /* data without ground truth: the reason */
    DataArgs k = {.format = "k400"};
    k.list[DATA_SPLIT_VAL] = "x.csv";
    assert_false(box_truth_load(&k, 32, &t, err, sizeof err));
    assert_non_null(strstr(err, "no ground truth"));
    DataArgs d = {.data_dir = "/nonexistent-focusbench-dir"};
    assert_false(box_truth_load(&d, 32, &t, err, sizeof err));
    assert_non_null(strstr(err, "no ground truth"));
}

/* ---- the methods' focus_boxes ------------------------------------------------------------ */

static Method *make(const char *preset)
{
    char err[512];
    Method *m = method_create(preset, NULL, BACKEND_CPU, false, 3, err, sizeof err);
    if (!m)
        fail_msg("%s: %s", preset, err);
    return m;
}

static void test_method_focus_boxes(void **state)
{
    (void)state;
    static const char *const presets[] = {"uniadafocus-tiny", "uniadafocus-centre-tiny", "adafocusv2-tiny"};
    const int64_t B = 2;
    for (size_t p = 0; p < sizeof presets / sizeof presets[0]; p++) {
        Method *m = make(presets[p]);
        assert_non_null(m->ops->focus_boxes);
        const int T = m->frames, S = m->frame_size;
        Ctx *ctx = ctx_create(BACKEND_CPU, 0);
        ctx_set_training(ctx, false);
        char err[512];
        MethodFocusBoxes fb;
        /* no pass yet: refused with a message */
        assert_false(m->ops->focus_boxes(ctx, m, &fb, err, sizeof err));
        assert_non_null(strstr(err, "forward_exits"));
        ctx_begin_pass(ctx);
        Tensor *clips = tensor_new(ctx, DTYPE_F32, 5, (int64_t[]){B, T, 3, S, S}); /* (B, T, 3, S, S) */
        tfill_normal(clips, 5, 1.0f);
        assert_non_null(m->ops->forward_exits(ctx, m, clips, NULL));
        if (!m->ops->focus_boxes(ctx, m, &fb, err, sizeof err))
            fail_msg("%s: %s", presets[p], err);
        assert_int_equal(fb.n, B);
        bool v2 = strcmp(m->id, "adafocusv2") == 0, centre = strcmp(m->id, "uniadafocus-centre") == 0;
        if (v2)
            assert_int_equal(fb.focus, T); /* every frame, in processing order */
        for (int i = 0; i < fb.n; i++) {
            int seen = 0;
            for (int k = 0; k < fb.focus; k++) {
                const float *b = fb.boxes + 4 * (i * fb.focus + k);
                int f = fb.frame_idx[i * fb.focus + k];
                if (f < 0 || f >= T || !(b[2] > 0) || !(b[3] > 0) || b[0] < -1e-3f || b[1] < -1e-3f ||
                    b[0] + b[2] > S + 1e-3f || b[1] + b[3] > S + 1e-3f)
                    fail_msg("%s: video %d slot %d: frame %d, box %g %g %g %g (S = %d)", presets[p], i, k, f, b[0],
                             b[1], b[2], b[3], S);
                if (centre) {
                    assert_float_equal(b[0] + b[2] / 2, S / 2.0f, 1e-3);
                    assert_float_equal(b[1] + b[3] / 2, S / 2.0f, 1e-3);
                }
                if (v2) {
                    assert_float_equal(b[2], 16, 1e-4); /* adafocusv2-tiny: P = 16, no rescaling */
                    seen |= 1 << f;
                }
            }
            if (v2)
                assert_int_equal(seen, (1 << T) - 1); /* a permutation of the T frames */
        }
        /* another pass began: the old boxes are gone, so they are refused */
        ctx_begin_pass(ctx);
        Tensor *x = tensor_new(ctx, DTYPE_F32, 1, (int64_t[]){4});
        assert_non_null(x);
        (void)op_relu(ctx, x);
        assert_false(m->ops->focus_boxes(ctx, m, &fb, err, sizeof err));
        ctx_destroy(ctx);
        method_destroy(m);
    }
    Method *tsn = make("tsn-synth");
    assert_null(tsn->ops->focus_boxes); /* no spatial policy, no boxes */
    method_destroy(tsn);
}

/* ---- the binary ----------------------------------------------------------------------------- */

enum { OUT_CAP = 1 << 16 };

typedef struct {
    int status;
    char out[OUT_CAP], err[OUT_CAP];
} Run;

static char g_dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown_dir(void **state)
{
    (void)state;
    if (g_dir[0])
        nftw(g_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    g_dir[0] = '\0';
    return 0;
}

/* `'$FOCUSBENCH_BIN' ARGS` (ARGS may name $D, the test's folder), stdout and stderr captured. */
static Run *run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static Run *run(const char *fmt, ...)
{
    const char *bin = tbin_or_skip();
    char args[4096], cmd[8192], err_path[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", g_dir);
    snprintf(cmd, sizeof cmd, "D='%s'; OMP_NUM_THREADS=1 '%s' %s 2>'%s'", g_dir, bin, args, err_path);
    Run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    tread_all(p, r->out, sizeof r->out);
    int st = pclose(p);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    FILE *e = fopen(err_path, "r");
    assert_non_null(e);
    tread_all(e, r->err, sizeof r->err);
    fclose(e);
    return r;
}

static void expect_ok(Run *r, const char *what)
{
    if (r->status != 0)
        fail_msg("%s: exit %d\nstdout:\n%s\nstderr:\n%s", what, r->status, r->out, r->err);
}

static bool exists(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return access(p, F_OK) == 0;
}

static void read_table(const char *name, CsvTable *t)
{
    char p[256], err[CSV_ERR_LEN];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    if (!csv_table_read(p, t, err, sizeof err))
        fail_msg("%s", err);
}

static double num(const CsvTable *t, int r, const char *col)
{
    double v;
    if (!csv_table_number(t, r, csv_table_col(t, col), &v))
        fail_msg("%s row %d: no number in %s ('%s')", t->source, r + 1, col, csv_table_cell(t, r, csv_table_col(t, col)));
    return v;
}

static const char *cell(const CsvTable *t, int r, const char *col)
{
    return csv_table_cell(t, r, csv_table_col(t, col));
}

enum { N_VAL = 3, N_TRAIN = 2 };

/* A tiny synthetic benchmark in a fresh temporary folder ($D/data); skips without an encoder. */
static int setup_data(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/focusbench_boxes_XXXXXX");
    if (!mkdtemp(g_dir)) {
        g_dir[0] = '\0';
        return -1;
    }
    return 0;
}

static void gen_data(void)
{
    Run *r = run("gen-data --out \"$D/data\" --preset synth-small --seed 0 --videos-train %d --videos-val %d "
                 "--threads 1", N_TRAIN, N_VAL);
    bool no_encoder = r->status != 0 && strstr(r->err, "encoder");
    if (!no_encoder)
        expect_ok(r, "gen-data");
    free(r);
    if (no_encoder) {
        print_message("no video encoder in this build; skipping\n");
        skip();
    }
}

/* Checks a --boxes-csv file against the ground truth; returns the mean IoU of its summary row. */
static double check_boxes_csv(const char *name, int T, bool centred)
{
    CsvTable b, gv, gf;
    read_table(name, &b);
    read_table("data/ground_truth/val_videos.csv", &gv);
    read_table("data/ground_truth/val_frames.csv", &gf);
    assert_int_equal(gv.n_rows, N_VAL);
    int n_box = 0, n_sum = 0, slots = 0, per_video[N_VAL] = {0};
    double total = 0.0, summary = NAN, summary_n = NAN;
    for (int r = 0; r < b.n_rows; r++) {
        const char *kind = cell(&b, r, "row");
        if (strcmp(kind, "summary") == 0) {
            summary = num(&b, r, "iou"), summary_n = num(&b, r, "n_boxes");
            n_sum++;
            continue;
        }
        if (strcmp(kind, "summary-evidence") == 0)
            continue;
        assert_string_equal(kind, "box");
        int v = (int)num(&b, r, "video"), cf = (int)num(&b, r, "clip_frame"), vf = (int)num(&b, r, "video_frame");
        assert_true(v >= 0 && v < N_VAL);
        assert_true(cf >= 0 && cf < T);
        per_video[v]++;
        int slot = (int)num(&b, r, "focus_slot");
        slots = slot + 1 > slots ? slot + 1 : slots;
        /* the clip frame maps to the video frame through the test sampling */
        int n_frames = (int)num(&gv, v, "frames");
        assert_int_equal(vf, boxes_video_frame(n_frames, T, cf));
        /* the ground truth of that video at that frame */
        int g = -1;
        for (int k = 0; k < gf.n_rows && g < 0; k++)
            if ((int)num(&gf, k, "video") == v && (int)num(&gf, k, "frame") == vf)
                g = k;
        assert_true(g >= 0);
        static const char *const bc[4] = {"box_x_px", "box_y_px", "box_w_px", "box_h_px"};
        static const char *const gc[4] = {"gt_x_px", "gt_y_px", "gt_w_px", "gt_h_px"};
        static const char *const fc[4] = {"x", "y", "w", "h"};
        float box[4], gt[4];
        for (int k = 0; k < 4; k++) {
            box[k] = (float)num(&b, r, bc[k]);
            gt[k] = (float)num(&b, r, gc[k]);
            assert_float_equal(gt[k], num(&gf, g, fc[k]), 1e-4);
        }
        assert_int_equal((int)num(&b, r, "evidence_visible"), (int)num(&gf, g, "evidence_visible"));
        assert_string_equal(cell(&b, r, "difficulty"), cell(&gv, v, "difficulty"));
        double iou = num(&b, r, "iou");
        assert_true(iou >= 0.0 && iou <= 1.0);
        assert_near(iou, boxes_iou(box, gt), 1e-6);
        if (centred) { /* 64×64 videos */
            assert_float_equal(box[0] + box[2] / 2, 32.0f, 1e-3);
            assert_float_equal(box[1] + box[3] / 2, 32.0f, 1e-3);
        }
        total += iou;
        n_box++;
    }
    assert_int_equal(n_sum, 1);
    for (int v = 0; v < N_VAL; v++)
        assert_int_equal(per_video[v], slots); /* one row per (video, focus frame) */
    assert_int_equal(n_box, N_VAL * slots);
    assert_near(summary_n, n_box, 0);
    assert_near(summary, total / n_box, 1e-9);
    csv_table_free(&b);
    csv_table_free(&gv);
    csv_table_free(&gf);
    return summary;
}

/* Every histogram (mode, score, point) of an --exits-csv sums to the validation videos. */
static void check_exits_csv(const char *name, int K, int n_hist)
{
    CsvTable t;
    read_table(name, &t);
    assert_int_equal(t.n_rows, K * n_hist);
    for (int h = 0; h < n_hist; h++) {
        double videos = 0.0, share = 0.0;
        for (int k = 0; k < K; k++) {
            int r = h * K + k;
            assert_int_equal((int)num(&t, r, "exit"), k);
            assert_string_equal(cell(&t, r, "point"), cell(&t, h * K, "point"));
            videos += num(&t, r, "videos");
            share += num(&t, r, "share");
            assert_int_equal((int)num(&t, r, "n_val"), N_VAL);
        }
        if (videos != N_VAL)
            fail_msg("%s: histogram %s sums to %g videos, not %d", name, cell(&t, h * K, "point"), videos, N_VAL);
        assert_near(share, 1.0, 1e-12);
    }
    csv_table_free(&t);
}

static bool have_gnuplot(void) { return system("command -v gnuplot >/dev/null 2>&1") == 0; }

static void expect_figure(const char *prefix)
{
    static const char *const ext[] = {"png", "svg", "gp"};
    for (int i = 0; i < 3; i++) {
        char p[256];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s.%s", g_dir, prefix, ext[i]);
        if (stat(p, &st) != 0 || st.st_size < 100)
            fail_msg("%s missing or empty", p);
    }
}

static void test_eval_boxes_and_exits(void **state)
{
    (void)state;
    tbin_or_skip();
    gen_data();
    const int T = uaf_preset_find("synth-tiny")->cfg.frames, F = uaf_preset_find("synth-tiny")->cfg.focus;
    /* batch 2 over 3 videos: a short last batch */
    Run *r = run("eval --preset synth-tiny --init-seed 1 --data \"$D/data\" --budgets 0.3,0.7 --score max-logit "
                 "--batch-size 2 --boxes-csv \"$D/boxes.csv\" --exits-csv \"$D/exits.csv\"");
    expect_ok(r, "eval --boxes-csv --exits-csv");
    char want[64];
    snprintf(want, sizeof want, "over %d boxes", N_VAL * F);
    if (!strstr(r->out, "mean IoU") || !strstr(r->out, want))
        fail_msg("no \"mean IoU … %s\" line in:\n%s", want, r->out);
    free(r);
    check_boxes_csv("boxes.csv", T, false);
    check_exits_csv("exits.csv", F + 1, F + 1 + 2); /* the F + 1 fixed exits, 2 budgets */

    /* the centre ablation: every box centred in the frame */
    r = run("eval --method uniadafocus-centre-synth-tiny --init-seed 1 --data \"$D/data\" --budgets 0.5 "
            "--score max-logit --boxes-csv \"$D/centre.csv\"");
    expect_ok(r, "eval --method uniadafocus-centre-synth-tiny --boxes-csv");
    free(r);
    check_boxes_csv("centre.csv", T, true);

    if (!have_gnuplot()) {
        print_message("gnuplot is not installed; the plots are not checked\n");
        return;
    }
    r = run("plot --csv \"$D/boxes.csv\" --csv \"$D/centre.csv\" --kind iou-bars --out \"$D/iou\"");
    expect_ok(r, "plot --kind iou-bars");
    free(r);
    expect_figure("iou");
    r = run("plot --csv \"$D/exits.csv\" --kind exit-histogram --where score=max-logit --where 'budget_p=0.3|0.7' "
            "--group point --out \"$D/exits\"");
    expect_ok(r, "plot --kind exit-histogram");
    free(r);
    expect_figure("exits");
}

static void test_eval_no_boxes(void **state)
{
    (void)state;
    tbin_or_skip();
    gen_data();
    /* a method without a spatial policy: said, nothing written, the rest of eval stands */
    Run *r = run("eval --method tsn-synth --init-seed 1 --data \"$D/data\" --budgets 0.5 --score max-logit "
                 "--boxes-csv \"$D/tsn_boxes.csv\" --exits-csv \"$D/tsn_exits.csv\"");
    expect_ok(r, "eval --method tsn-synth --boxes-csv");
    if (!strstr(r->err, "tsn has no spatial policy") || !strstr(r->err, "not written"))
        fail_msg("no clear message in:\n%s", r->err);
    free(r);
    assert_false(exists("tsn_boxes.csv"));
    check_exits_csv("tsn_exits.csv", 1, 2); /* the one fixed exit, and the one budget of a one-exit method */
    /* data without ground truth (the dataset card gone): said, nothing written */
    char p[256];
    snprintf(p, sizeof p, "%s/data/synth.txt", g_dir);
    assert_int_equal(remove(p), 0);
    r = run("eval --method uniadafocus-centre-synth-tiny --init-seed 1 --data \"$D/data\" --budgets 0.5 "
            "--score max-logit --boxes-csv \"$D/nogt.csv\"");
    expect_ok(r, "eval --boxes-csv without ground truth");
    if (!strstr(r->err, "no ground truth") || !strstr(r->err, "not written"))
        fail_msg("no clear message in:\n%s", r->err);
    free(r);
    assert_false(exists("nogt.csv"));
    /* --boxes-csv needs the model: not with --logits-in */
    r = run("eval --preset synth-tiny --logits-in \"$D/x.safetensors\" --boxes-csv \"$D/b.csv\"");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "--boxes-csv"));
    free(r);
}

TEST_GROUP(boxes, cmocka_unit_test(test_frame_mapping), cmocka_unit_test(test_iou),
           cmocka_unit_test(test_clip_to_video), cmocka_unit_test(test_truth_synthetic),
           cmocka_unit_test(test_method_focus_boxes),
           cmocka_unit_test_setup_teardown(test_eval_boxes_and_exits, setup_data, teardown_dir),
           cmocka_unit_test_setup_teardown(test_eval_no_boxes, setup_data, teardown_dir))
