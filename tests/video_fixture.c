/* video_fixture.c — see video_fixture.h. */
#include "video_fixture.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/video_writer.h"
#include "kernels/rng.h"
#include "test_util.h"

char *vfix_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/focusbench_test_XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    if (!d)
        fail_msg("mkdtemp(%s) failed", tmpl);
    return strdup(d);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void vfix_remove_tree(const char *dir)
{
    if (dir && strstr(dir, "focusbench_test_"))
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void vfix_draw_index(uint8_t *rgb, int w, int h, int index)
{
    int bar = w / 8;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int b = x / bar;
            uint8_t v = (b < 8 && ((index >> b) & 1)) ? 225 : 30;
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            p[0] = p[1] = p[2] = v;
        }
}

int vfix_read_index(const uint8_t *rgb, int w, int h)
{
    int bar = w / 8, idx = 0;
    for (int b = 0; b < 8; b++) {
        const uint8_t *p = rgb + ((size_t)(h / 2) * w + b * bar + bar / 2) * 3;
        int g = p[1];
        if (g > 160)
            idx |= 1 << b;
        else if (g > 90)
            return -1;
    }
    return idx;
}

bool vfix_write_video(const char *path, const char *codec, int n, int w, int h, int gop, int bframes)
{
    if (!video_encoder_available(codec)) {
        print_message("encoder %s not available in this FFmpeg build\n", codec);
        return false;
    }
    char err[512];
    VideoWriterOptions o = {.width = w, .height = h, .fps = 25, .codec = codec, .gop = gop, .bframes = bframes,
                            .quality = 0, .preset = "ultrafast", .threads = 1};
    VideoWriter *vw = video_writer_open(path, &o, err, sizeof err);
    if (!vw)
        fail_msg("%s", err);
    uint8_t *rgb = malloc((size_t)w * h * 3); /* (h, w, 3) */
    assert_non_null(rgb);
    for (int i = 0; i < n; i++) {
        vfix_draw_index(rgb, w, h, i);
        if (!video_writer_add(vw, rgb, err, sizeof err))
            fail_msg("%s", err);
    }
    free(rgb);
    if (!video_writer_finish(vw, err, sizeof err))
        fail_msg("%s", err);
    return true;
}

bool vfix_write_jpeg_folder(const char *dir, const char *prefix, int n, int w, int h)
{
    if (mkdir(dir, 0755) != 0)
        fail_msg("mkdir %s failed", dir);
    uint8_t *rgb = malloc((size_t)w * h * 3); /* (h, w, 3) */
    assert_non_null(rgb);
    char path[4200], err[512];
    for (int i = 0; i < n; i++) {
        vfix_draw_index(rgb, w, h, i);
        snprintf(path, sizeof path, "%s/%s%05d.jpg", dir, prefix, i + 1);
        if (!video_write_jpeg(path, rgb, w, h, 2, err, sizeof err)) {
            free(rgb);
            print_message("%s\n", err);
            return false;
        }
    }
    free(rgb);
    return true;
}

void vfix_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    size_t n = strlen(text);
    assert_int_equal(fwrite(text, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

void vfix_truncate(const char *path, long keep)
{
    assert_int_equal(truncate(path, keep), 0);
}

void vfix_corrupt(const char *path, long from, long len, uint64_t seed)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    RngStream s = rng_stream(seed, RNG_PURPOSE_TEST, 0, 0);
    assert_int_equal(fseek(f, from, SEEK_SET), 0);
    for (long i = 0; i < len; i++)
        fputc((int)rng_below(&s, (uint64_t)i, 256), f);
    assert_int_equal(fclose(f), 0);
}

long vfix_file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

bool vfix_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}
