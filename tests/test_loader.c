/* test_loader.c — the threaded loader: batches identical whatever the worker count, equal to
 * the single-sample path, bad videos skipped with one warning line each and counted, a clip cache
 * holding every frame giving the same batches as the videos, multi-hot targets, bad configs. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/clip_cache.h"
#include "datasets/loader.h"
#include "test_util.h"
#include "video_fixture.h"

enum { W = 64, H = 48, NV = 7, T = 4, S = 32, B = 3 };

typedef struct {
    char *dir;
    VideoList list;
} Fixture;

/* NV videos of 9..21 frames (video 2 is a zero-byte file, video 5 is text): 5 good, 2 bad. */
static int setup(void **state)
{
    if (!HAVE_FFMPEG)
        return 0;
    Fixture *f = calloc(1, sizeof *f);
    f->dir = vfix_tempdir();
    video_list_init(&f->list);
    video_list_set_root(&f->list, f->dir);
    char p[4200], name[64];
    for (int k = 0; k < NV; k++) {
        snprintf(name, sizeof name, "v%d.mkv", k);
        snprintf(p, sizeof p, "%s/%s", f->dir, name);
        if (k == 2)
            vfix_write_text(p, "");
        else if (k == 5)
            vfix_write_text(p, "just text\n");
        else if (!vfix_write_video(p, "mpeg4", 9 + 2 * k, W, H, 5, 0))
            return -1;
        int32_t labels[2] = {k % 3, 3};
        video_list_add(&f->list, name, 9 + 2 * k, labels, k == 4 ? 2 : 1);
    }
    f->list.n_classes = 4;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    if (f) {
        video_list_free(&f->list);
        vfix_remove_tree(f->dir);
        free(f->dir);
        free(f);
    }
    return 0;
}

static LoaderConfig base_config(const Fixture *f, FILE *warn)
{
    LoaderConfig c = {.list = &f->list, .num_frames = T, .crop_size = S, .train = true, .flip = true, .shuffle = true,
                      .batch_size = B, .seed = 77, .workers = 1, .prefetch_batches = 1, .warn = warn};
    return c;
}

/* Collects every batch of `epochs` epochs into one buffer (data, then labels, then videos). */
typedef struct {
    float *data;    /* (n_samples, T, 3, S, S) */
    int32_t videos[64];
    int32_t labels[64];
    int sizes[32];
    int n_samples, n_batches;
} Run;

static Run run_loader(const LoaderConfig *cfg, int epochs)
{
    Run r = {0};
    size_t per = (size_t)T * 3 * S * S;
    r.data = malloc(64 * per * sizeof(float));
    assert_non_null(r.data);
    char err[512];
    Loader *L = loader_create(cfg, err, sizeof err);
    if (!L)
        fail_msg("%s", err);
    for (int e = 0; e < epochs; e++) {
        assert_true(loader_start_epoch(L, e, err, sizeof err));
        LoaderBatch b;
        while (loader_next(L, &b)) {
            assert_true(b.size >= 1 && b.size <= B);
            memcpy(r.data + (size_t)r.n_samples * per, b.data, (size_t)b.size * per * sizeof(float));
            for (int i = 0; i < b.size; i++) {
                r.videos[r.n_samples + i] = b.videos[i];
                r.labels[r.n_samples + i] = b.labels[i];
            }
            r.n_samples += b.size;
            r.sizes[r.n_batches++] = b.size;
        }
        assert_false(loader_next(L, &b)); /* stays at the end */
    }
    LoaderStats st = loader_stats(L);
    assert_int_equal(st.samples, r.n_samples);
    loader_destroy(L);
    return r;
}

static void test_deterministic_across_workers(void **state)
{
    Fixture *f = *state;
    if (!f)
        skip();
    FILE *warn = tmpfile();
    LoaderConfig c = base_config(f, warn);
    Run one = run_loader(&c, 2);
    c.workers = 3;
    c.prefetch_batches = 4;
    Run three = run_loader(&c, 2);
    assert_int_equal(one.n_samples, 10); /* 5 good videos × 2 epochs */
    assert_int_equal(three.n_samples, one.n_samples);
    assert_memory_equal(one.videos, three.videos, sizeof(int32_t) * (size_t)one.n_samples);
    assert_memory_equal(one.data, three.data, sizeof(float) * (size_t)one.n_samples * T * 3 * S * S);
    /* Batches of 3 from 5 videos: 3 + 2 per epoch. */
    assert_int_equal(one.n_batches, 4);
    assert_int_equal(one.sizes[0], 3);
    assert_int_equal(one.sizes[1], 2);
    /* Epochs differ: another order and other crops of the same videos. */
    assert_true(memcmp(one.videos, one.videos + 5, 5 * sizeof(int32_t)) != 0 ||
                memcmp(one.data, one.data + (size_t)5 * T * 3 * S * S, sizeof(float) * T * 3 * S * S) != 0);
    /* Every batch sample equals the single-sample path. */
    float *x = malloc(sizeof(float) * T * 3 * S * S);
    assert_non_null(x);
    char err[512];
    for (int i = 0; i < one.n_samples; i++) {
        assert_true(loader_load_sample(&c, one.videos[i], i < 5 ? 0 : 1, x, err, sizeof err));
        assert_memory_equal(x, one.data + (size_t)i * T * 3 * S * S, sizeof(float) * T * 3 * S * S);
        assert_int_equal(one.labels[i], one.videos[i] % 3);
    }
    free(x);
    free(one.data);
    free(three.data);
    fclose(warn);
}

static void test_bad_videos_skipped_and_counted(void **state)
{
    Fixture *f = *state;
    if (!f)
        skip();
    FILE *warn = tmpfile();
    assert_non_null(warn);
    LoaderConfig c = base_config(f, warn);
    c.shuffle = false;
    c.train = false;
    c.workers = 2;
    char err[512];
    Loader *L = loader_create(&c, err, sizeof err);
    assert_non_null(L);
    int order[16], n = 0;
    for (int e = 0; e < 3; e++) {
        assert_true(loader_start_epoch(L, e, err, sizeof err));
        LoaderBatch b;
        while (loader_next(L, &b))
            for (int i = 0; i < b.size; i++)
                if (e == 0)
                    order[n++] = b.videos[i];
    }
    /* Unshuffled: list order with the bad ones left out. */
    int want[5] = {0, 1, 3, 4, 6};
    assert_int_equal(n, 5);
    assert_memory_equal(order, want, sizeof want);
    LoaderStats st = loader_stats(L);
    assert_int_equal(st.videos_failed, 2);
    assert_int_equal(st.skipped, 6); /* 2 videos × 3 epochs */
    assert_int_equal(st.samples, 15);
    /* Exactly one warning line per bad video, naming it, over all epochs. */
    char text[4096] = "";
    rewind(warn);
    size_t got = fread(text, 1, sizeof text - 1, warn);
    text[got] = '\0';
    int lines = 0;
    for (size_t i = 0; i < got; i++)
        lines += text[i] == '\n';
    assert_int_equal(lines, 2);
    assert_non_null(strstr(text, "v2.mkv"));
    assert_non_null(strstr(text, "v5.mkv"));
    char summary[512];
    FILE *sf = fmemopen(summary, sizeof summary, "w");
    loader_print_summary(L, sf);
    fclose(sf);
    assert_non_null(strstr(summary, "15 clips delivered, 6 skipped (2 videos failed"));
    loader_destroy(L);
    fclose(warn);
}

static void test_cache_matches_videos(void **state)
{
    Fixture *f = *state;
    if (!f)
        skip();
    /* A cache with every frame at the native size holds the decoded frames exactly, so training
     * batches from it equal those from the videos. */
    char cdir[4200], err[512];
    snprintf(cdir, sizeof cdir, "%s/cache", f->dir);
    ClipCacheBuildOptions o = {.width = W, .height = H, .frames_per_clip = 0, .threads = 2};
    /* The build's two warning lines are checked in the clipcache group; silence them here. */
    fflush(stderr);
    int saved = dup(2), null_fd = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null_fd >= 0);
    dup2(null_fd, 2);
    ClipCacheBuildStats st;
    bool ok = clip_cache_build(&f->list, cdir, &o, &st, err, sizeof err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(null_fd);
    if (!ok)
        fail_msg("%s", err);
    ClipCache *cache = clip_cache_open(cdir, err, sizeof err);
    assert_non_null(cache);
    /* The cache lacks the two bad videos, so its clip i is list video good[i]. */
    const int good[5] = {0, 1, 3, 4, 6};
    FILE *warn = tmpfile();
    LoaderConfig cv = base_config(f, warn);
    cv.shuffle = false;
    LoaderConfig cc = cv;
    cc.list = NULL;
    cc.cache = cache;
    float *a = malloc(sizeof(float) * T * 3 * S * S), *b = malloc(sizeof(float) * T * 3 * S * S);
    assert_true(a && b);
    for (int i = 0; i < 5; i++) {
        ClipView v;
        assert_true(clip_cache_get(cache, i, &v));
        assert_int_equal(v.n_frames, 9 + 2 * good[i]);
    }
    /* Loader over the cache: every clip loads, labels come from the manifest, multi-hot targets
     * when the source is multi-label. */
    Run r = run_loader(&cc, 1);
    assert_int_equal(r.n_samples, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(r.labels[i], good[i] % 3);
    free(r.data);
    /* Exact equality with the video path for the same key: build a list in cache order. */
    VideoList sub;
    video_list_init(&sub);
    video_list_set_root(&sub, f->dir);
    for (int i = 0; i < 5; i++)
        video_list_add(&sub, f->list.items[good[i]].path, -1, f->list.items[good[i]].labels,
                       f->list.items[good[i]].n_labels);
    sub.n_classes = 4;
    cv.list = &sub;
    for (int i = 0; i < 5; i++)
        for (int epoch = 0; epoch < 3; epoch++) {
            assert_true(loader_load_sample(&cv, i, epoch, a, err, sizeof err));
            assert_true(loader_load_sample(&cc, i, epoch, b, err, sizeof err));
            assert_memory_equal(a, b, sizeof(float) * T * 3 * S * S);
        }
    video_list_free(&sub);
    free(a);
    free(b);
    clip_cache_close(cache);
    fclose(warn);
}

static void test_multi_label_targets(void **state)
{
    Fixture *f = *state;
    if (!f)
        skip();
    f->list.multi_label = true;
    FILE *warn = tmpfile();
    LoaderConfig c = base_config(f, warn);
    c.shuffle = false;
    c.batch_size = 5;
    char err[512];
    Loader *L = loader_create(&c, err, sizeof err);
    assert_non_null(L);
    assert_int_equal(loader_num_classes(L), 4);
    assert_int_equal(loader_num_videos(L), NV);
    assert_true(loader_start_epoch(L, 0, err, sizeof err));
    LoaderBatch b;
    assert_true(loader_next(L, &b));
    assert_int_equal(b.size, 5);
    assert_non_null(b.targets);
    for (int i = 0; i < 5; i++) {
        int v = b.videos[i];
        for (int k = 0; k < 4; k++) {
            float want = (k == v % 3 || (v == 4 && k == 3)) ? 1.0f : 0.0f;
            assert_true(b.targets[i * 4 + k] == want);
        }
    }
    assert_false(loader_next(L, &b));
    loader_destroy(L);
    f->list.multi_label = false;
    fclose(warn);
}

static void test_bad_config(void **state)
{
    Fixture *f = *state;
    if (!f)
        skip();
    char err[512];
    LoaderConfig c = base_config(f, NULL);
    c.batch_size = 0;
    assert_null(loader_create(&c, err, sizeof err));
    assert_non_null(strstr(err, "batch 0"));
    c = base_config(f, NULL);
    c.list = NULL;
    assert_null(loader_create(&c, err, sizeof err));
    assert_non_null(strstr(err, "exactly one source"));
    VideoList empty;
    video_list_init(&empty);
    c = base_config(f, NULL);
    c.list = &empty;
    assert_null(loader_create(&c, err, sizeof err));
    assert_non_null(strstr(err, "empty"));
    c = base_config(f, NULL);
    float x[T * 3 * S * S];
    assert_false(loader_load_sample(&c, NV, 0, x, err, sizeof err));
    assert_non_null(strstr(err, "out of range"));
    assert_false(loader_load_sample(&c, 2, 0, x, err, sizeof err));
    assert_non_null(strstr(err, "v2.mkv"));
}

TEST_GROUP(loader, cmocka_unit_test_setup_teardown(test_deterministic_across_workers, setup, teardown),
           cmocka_unit_test_setup_teardown(test_bad_videos_skipped_and_counted, setup, teardown),
           cmocka_unit_test_setup_teardown(test_cache_matches_videos, setup, teardown),
           cmocka_unit_test_setup_teardown(test_multi_label_targets, setup, teardown),
           cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown))
