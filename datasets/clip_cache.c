/* clip_cache.c — the clip cache: atomic writer, memory-mapped reader, parallel builder.
 * Format and guarantees: see clip_cache.h. Reading needs only POSIX (no FFmpeg). */
#include "datasets/clip_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "datasets/transform.h"
#include "datasets/video.h"

static const char MAGIC[8] = {'F', 'B', 'C', 'L', 'I', 'P', 'S', '1'};
enum { HEADER_BYTES = 64 };

/* The 64-byte header of clips.bin, little-endian on disk (x86/ARM hosts are little-endian;
 * the reader checks the magic and version, which a byte-swapped file would fail). */
typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint64_t cache_id;
    uint32_t width, height;
    uint64_t clips;
    uint64_t data_bytes;
    uint8_t pad[16];
} CacheHeader;
_Static_assert(sizeof(CacheHeader) == HEADER_BYTES, "clip cache header must be 64 bytes");

/* FNV-1a, 64-bit: the cache id is a hash of everything after the header. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int64_t align_up(int64_t x)
{
    return (x + CLIP_CACHE_ALIGN - 1) / CLIP_CACHE_ALIGN * CLIP_CACHE_ALIGN;
}

static bool join_path(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap;
}

/* ---- manifest escaping: paths and names may hold tabs or newlines ------------------------- */

static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\\': fputs("\\\\", f); break;
        case '\t': fputs("\\t", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        default: fputc(*s, f);
        }
    }
}

/* In-place unescape; returns s. */
static char *unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            *o++ = *p == 't' ? '\t' : *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return s;
}

/* ---- writer ------------------------------------------------------------------------------- */

typedef struct {
    int64_t offset;
    int n_frames;
    int64_t source_frames;
    int64_t *indices; /* (n_frames) */
    int32_t *labels;  /* (n_labels) */
    int n_labels;
    char *path;
} ClipRecord;

typedef struct {
    char *path, *reason;
} SkipRecord;

struct ClipCacheWriter {
    char *dir;
    char data_tmp[4096], data_final[4096], man_tmp[4096], man_final[4096];
    FILE *data;
    int width, height;
    int64_t pos;       /* bytes written to clips.bin so far (header included) */
    uint64_t hash;
    ClipRecord *clips;
    int n_clips, cap_clips;
    SkipRecord *skips;
    int n_skips, cap_skips;
};

static void free_records(ClipCacheWriter *w)
{
    for (int i = 0; i < w->n_clips; i++) {
        free(w->clips[i].indices);
        free(w->clips[i].labels);
        free(w->clips[i].path);
    }
    free(w->clips);
    for (int i = 0; i < w->n_skips; i++) {
        free(w->skips[i].path);
        free(w->skips[i].reason);
    }
    free(w->skips);
}

void clip_cache_writer_abort(ClipCacheWriter *w)
{
    if (!w)
        return;
    if (w->data)
        fclose(w->data);
    unlink(w->data_tmp);
    unlink(w->man_tmp);
    free_records(w);
    free(w->dir);
    free(w);
}

ClipCacheWriter *clip_cache_writer_open(const char *dir, int width, int height, char *err, size_t err_cap)
{
    if (!dir || !dir[0] || width <= 0 || height <= 0 || width > 16384 || height > 16384) {
        snprintf(err, err_cap, "clip cache '%s': need a directory and a frame size in 1..16384 (got %dx%d)",
                 dir ? dir : "", width, height);
        return NULL;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_cap, "clip cache '%s': cannot create the directory: %s", dir, strerror(errno));
        return NULL;
    }
    ClipCacheWriter *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        snprintf(err, err_cap, "clip cache '%s': out of memory", dir);
        return NULL;
    }
    if (!join_path(w->data_tmp, sizeof w->data_tmp, dir, "clips.bin.tmp") ||
        !join_path(w->data_final, sizeof w->data_final, dir, "clips.bin") ||
        !join_path(w->man_tmp, sizeof w->man_tmp, dir, "manifest.tsv.tmp") ||
        !join_path(w->man_final, sizeof w->man_final, dir, "manifest.tsv")) {
        snprintf(err, err_cap, "clip cache '%s': path too long", dir);
        w->data_tmp[0] = w->man_tmp[0] = '\0';
        clip_cache_writer_abort(w);
        return NULL;
    }
    w->width = width;
    w->height = height;
    w->hash = 0xcbf29ce484222325ULL;
    w->data = fopen(w->data_tmp, "wb");
    if (!w->data) {
        snprintf(err, err_cap, "clip cache '%s': cannot create %s: %s (is the directory writable?)", dir, w->data_tmp,
                 strerror(errno));
        w->data_tmp[0] = '\0';
        clip_cache_writer_abort(w);
        return NULL;
    }
    static const uint8_t zeros[HEADER_BYTES];
    if (fwrite(zeros, 1, HEADER_BYTES, w->data) != HEADER_BYTES) {
        snprintf(err, err_cap, "clip cache '%s': write failed: %s", dir, strerror(errno));
        clip_cache_writer_abort(w);
        return NULL;
    }
    w->pos = HEADER_BYTES;
    return w;
}

bool clip_cache_writer_add(ClipCacheWriter *w, const char *path, const int32_t *labels, int n_labels,
                           int64_t source_frames, const int64_t *indices, int n_frames, const uint8_t *frames,
                           char *err, size_t err_cap)
{
    if (!path || n_frames <= 0 || n_labels < 0 || (n_labels > 0 && !labels) || !indices || !frames) {
        snprintf(err, err_cap, "clip cache '%s': bad clip (path %s, %d frames, %d labels)", w->dir, path ? path : "NULL",
                 n_frames, n_labels);
        return false;
    }
    if (w->n_clips == w->cap_clips) {
        int cap = w->cap_clips ? w->cap_clips * 2 : 256;
        ClipRecord *g = realloc(w->clips, (size_t)cap * sizeof *g);
        if (!g)
            goto oom;
        w->clips = g;
        w->cap_clips = cap;
    }
    /* Pad to the alignment so every clip can be used in place from the mapping. */
    static const uint8_t zeros[CLIP_CACHE_ALIGN];
    int64_t start = align_up(w->pos);
    size_t pad = (size_t)(start - w->pos);
    size_t bytes = (size_t)n_frames * (size_t)w->width * (size_t)w->height * 3;
    if ((pad && fwrite(zeros, 1, pad, w->data) != pad) || fwrite(frames, 1, bytes, w->data) != bytes) {
        snprintf(err, err_cap, "clip cache '%s': write failed (disk full?): %s", w->dir, strerror(errno));
        return false;
    }
    w->hash = fnv1a(w->hash, zeros, pad);
    w->hash = fnv1a(w->hash, frames, bytes);
    w->pos = start + (int64_t)bytes;
    ClipRecord r = {.offset = start, .n_frames = n_frames, .source_frames = source_frames, .n_labels = n_labels};
    r.indices = malloc((size_t)n_frames * sizeof *r.indices);
    r.labels = malloc((size_t)(n_labels > 0 ? n_labels : 1) * sizeof *r.labels);
    r.path = strdup(path);
    if (!r.indices || !r.labels || !r.path) {
        free(r.indices);
        free(r.labels);
        free(r.path);
        goto oom;
    }
    memcpy(r.indices, indices, (size_t)n_frames * sizeof *r.indices);
    if (n_labels > 0)
        memcpy(r.labels, labels, (size_t)n_labels * sizeof *r.labels);
    w->clips[w->n_clips++] = r;
    return true;
oom:
    snprintf(err, err_cap, "clip cache '%s': out of memory", w->dir);
    return false;
}

bool clip_cache_writer_skip(ClipCacheWriter *w, const char *path, const char *reason, char *err, size_t err_cap)
{
    if (w->n_skips == w->cap_skips) {
        int cap = w->cap_skips ? w->cap_skips * 2 : 16;
        SkipRecord *g = realloc(w->skips, (size_t)cap * sizeof *g);
        if (!g)
            goto oom;
        w->skips = g;
        w->cap_skips = cap;
    }
    SkipRecord s = {strdup(path ? path : ""), strdup(reason ? reason : "")};
    if (!s.path || !s.reason) {
        free(s.path);
        free(s.reason);
        goto oom;
    }
    w->skips[w->n_skips++] = s;
    return true;
oom:
    snprintf(err, err_cap, "clip cache '%s': out of memory", w->dir);
    return false;
}

static bool write_manifest(ClipCacheWriter *w, const VideoList *classes, uint64_t id, char *err, size_t err_cap)
{
    FILE *f = fopen(w->man_tmp, "w");
    if (!f) {
        snprintf(err, err_cap, "clip cache '%s': cannot create %s: %s", w->dir, w->man_tmp, strerror(errno));
        return false;
    }
    fprintf(f, "focusbench-clip-cache\t%d\n", CLIP_CACHE_VERSION);
    fprintf(f, "cache_id\t%016" PRIx64 "\n", id);
    fprintf(f, "width\t%d\nheight\t%d\nclips\t%d\nskipped\t%d\n", w->width, w->height, w->n_clips, w->n_skips);
    fprintf(f, "data_file\tclips.bin\ndata_bytes\t%" PRId64 "\n", w->pos);
    int n_classes = classes ? classes->n_classes : 0;
    fprintf(f, "multi_label\t%d\nclasses\t%d\n", classes && classes->multi_label ? 1 : 0, n_classes);
    for (int c = 0; c < n_classes; c++) {
        fprintf(f, "class\t%d\t", c);
        put_escaped(f, classes->class_names && classes->class_names[c] ? classes->class_names[c] : "");
        fputc('\n', f);
    }
    fputs("# clip <i> <offset> <frames> <source frames> <labels> <source frame indices> <path>\n", f);
    for (int i = 0; i < w->n_clips; i++) {
        const ClipRecord *r = &w->clips[i];
        fprintf(f, "clip\t%d\t%" PRId64 "\t%d\t%" PRId64 "\t", i, r->offset, r->n_frames, r->source_frames);
        if (r->n_labels == 0)
            fputc('-', f);
        for (int k = 0; k < r->n_labels; k++)
            fprintf(f, "%s%" PRId32, k ? "," : "", r->labels[k]);
        fputc('\t', f);
        for (int k = 0; k < r->n_frames; k++)
            fprintf(f, "%s%" PRId64, k ? "," : "", r->indices[k]);
        fputc('\t', f);
        put_escaped(f, r->path);
        fputc('\n', f);
    }
    for (int i = 0; i < w->n_skips; i++) {
        fputs("skip\t", f);
        put_escaped(f, w->skips[i].path);
        fputc('\t', f);
        put_escaped(f, w->skips[i].reason);
        fputc('\n', f);
    }
    fprintf(f, "end\t%d\n", w->n_clips);
    bool ok = !ferror(f);
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok)
        snprintf(err, err_cap, "clip cache '%s': writing %s failed (disk full?): %s", w->dir, w->man_tmp,
                 strerror(errno));
    return ok;
}

bool clip_cache_writer_finish(ClipCacheWriter *w, const VideoList *classes, char *err, size_t err_cap)
{
    if (!w)
        return false;
    CacheHeader h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, MAGIC, sizeof MAGIC);
    h.version = CLIP_CACHE_VERSION;
    h.header_bytes = HEADER_BYTES;
    h.width = (uint32_t)w->width;
    h.height = (uint32_t)w->height;
    h.clips = (uint64_t)w->n_clips;
    h.data_bytes = (uint64_t)w->pos;
    h.cache_id = fnv1a(w->hash, &h.width, sizeof h.width * 2) ^ (uint64_t)w->n_clips;
    bool ok = fseek(w->data, 0, SEEK_SET) == 0 && fwrite(&h, 1, sizeof h, w->data) == sizeof h;
    ok = fflush(w->data) == 0 && ok;
    ok = fsync(fileno(w->data)) == 0 && ok;
    ok = fclose(w->data) == 0 && ok;
    w->data = NULL;
    if (!ok) {
        snprintf(err, err_cap, "clip cache '%s': writing %s failed (disk full?): %s", w->dir, w->data_tmp,
                 strerror(errno));
        clip_cache_writer_abort(w);
        return false;
    }
    if (!write_manifest(w, classes, h.cache_id, err, err_cap)) {
        clip_cache_writer_abort(w);
        return false;
    }
    /* Data first, manifest last: the manifest names the data's id, so a reader never pairs a
     * new manifest with old data. */
    if (rename(w->data_tmp, w->data_final) != 0 || rename(w->man_tmp, w->man_final) != 0) {
        snprintf(err, err_cap, "clip cache '%s': cannot rename the finished files into place: %s", w->dir,
                 strerror(errno));
        clip_cache_writer_abort(w);
        return false;
    }
    int dfd = open(w->dir, O_RDONLY);
    if (dfd >= 0) {
        fsync(dfd); /* the renames themselves; best effort (some file systems refuse) */
        close(dfd);
    }
    w->data_tmp[0] = w->man_tmp[0] = '\0';
    clip_cache_writer_abort(w); /* frees; nothing left to remove */
    return true;
}

/* ---- reader ------------------------------------------------------------------------------- */

struct ClipCache {
    char *dir;
    int width, height, n_clips, n_skipped, n_classes;
    bool multi_label;
    const uint8_t *map;   /* the whole clips.bin, read-only */
    size_t map_bytes;
    int64_t *offset;      /* (n_clips) */
    int *n_frames;        /* (n_clips) */
    int64_t *source_frames; /* (n_clips) */
    int64_t **indices;    /* (n_clips) → (n_frames[i]) */
    int32_t **labels;     /* (n_clips) → (n_labels[i]) */
    int *n_labels;        /* (n_clips) */
    char **paths;         /* (n_clips) */
    char **class_names;   /* (n_classes) */
};

void clip_cache_close(ClipCache *c)
{
    if (!c)
        return;
    if (c->map)
        munmap((void *)c->map, c->map_bytes);
    for (int i = 0; i < c->n_clips; i++) {
        if (c->indices)
            free(c->indices[i]);
        if (c->labels)
            free(c->labels[i]);
        if (c->paths)
            free(c->paths[i]);
    }
    for (int i = 0; i < c->n_classes; i++)
        if (c->class_names)
            free(c->class_names[i]);
    free(c->offset);
    free(c->n_frames);
    free(c->source_frames);
    free(c->indices);
    free(c->labels);
    free(c->n_labels);
    free(c->paths);
    free(c->class_names);
    free(c->dir);
    free(c);
}

static char *read_text(const char *path, size_t *len, char *err, size_t err_cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_cap, "clip cache: cannot open %s: %s (build the cache first)", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 1 << 17;
            char *g = realloc(buf, cap + 1);
            if (!g) {
                free(buf);
                fclose(f);
                snprintf(err, err_cap, "clip cache: out of memory reading %s", path);
                return NULL;
            }
            buf = g;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, err_cap, "clip cache: read error on %s", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Parses "a,b,c" into n int64 values; false if the count or a number is wrong. */
static bool parse_i64_list(const char *s, int64_t *out, int n)
{
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno)
            return false;
        out[i] = v;
        s = end;
        if (i + 1 < n) {
            if (*s != ',')
                return false;
            s++;
        }
    }
    return *s == '\0';
}

/* Splits line at tabs into at most max fields; returns the count. */
static int split_tabs(char *line, char **fields, int max)
{
    int n = 0;
    fields[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') {
            *p = '\0';
            fields[n++] = p + 1;
        }
    return n;
}

ClipCache *clip_cache_open(const char *dir, char *err, size_t err_cap)
{
    char man_path[4096], data_path[4096];
    if (!dir || !join_path(man_path, sizeof man_path, dir, "manifest.tsv") ||
        !join_path(data_path, sizeof data_path, dir, "clips.bin")) {
        snprintf(err, err_cap, "clip cache: bad directory name");
        return NULL;
    }
    size_t len = 0;
    char *text = read_text(man_path, &len, err, err_cap);
    if (!text)
        return NULL;
    ClipCache *c = calloc(1, sizeof *c);
    int fd = -1;
    uint64_t id = 0;
    int64_t data_bytes = -1;
    int line_no = 0, clips_seen = 0, classes_seen = 0, version = 0;
    bool ended = false;
    if (!c || !(c->dir = strdup(dir)))
        goto oom;
    c->n_clips = -1;
    c->n_classes = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *f[8];
        int nf = split_tabs(line, f, 8);
        const char *k = f[0];
        if (line_no == 1) {
            if (strcmp(k, "focusbench-clip-cache") != 0 || nf < 2 || (version = atoi(f[1])) != CLIP_CACHE_VERSION)
                goto bad;
            continue;
        }
        if (strcmp(k, "cache_id") == 0 && nf == 2)
            id = strtoull(f[1], NULL, 16);
        else if (strcmp(k, "width") == 0 && nf == 2)
            c->width = atoi(f[1]);
        else if (strcmp(k, "height") == 0 && nf == 2)
            c->height = atoi(f[1]);
        else if (strcmp(k, "skipped") == 0 && nf == 2)
            c->n_skipped = atoi(f[1]);
        else if (strcmp(k, "data_bytes") == 0 && nf == 2)
            data_bytes = strtoll(f[1], NULL, 10);
        else if (strcmp(k, "multi_label") == 0 && nf == 2)
            c->multi_label = atoi(f[1]) != 0;
        else if (strcmp(k, "data_file") == 0 && nf == 2) {
            if (strcmp(f[1], "clips.bin") != 0)
                goto bad;
        } else if (strcmp(k, "clips") == 0 && nf == 2) {
            if (c->n_clips >= 0)
                goto bad;
            c->n_clips = atoi(f[1]);
            if (c->n_clips < 0 || c->n_clips > (1 << 28))
                goto bad;
            size_t n = (size_t)(c->n_clips > 0 ? c->n_clips : 1);
            c->offset = calloc(n, sizeof *c->offset);
            c->n_frames = calloc(n, sizeof *c->n_frames);
            c->source_frames = calloc(n, sizeof *c->source_frames);
            c->indices = calloc(n, sizeof *c->indices);
            c->labels = calloc(n, sizeof *c->labels);
            c->n_labels = calloc(n, sizeof *c->n_labels);
            c->paths = calloc(n, sizeof *c->paths);
            if (!c->offset || !c->n_frames || !c->source_frames || !c->indices || !c->labels || !c->n_labels ||
                !c->paths)
                goto oom;
        } else if (strcmp(k, "classes") == 0 && nf == 2) {
            if (c->class_names)
                goto bad;
            int n = atoi(f[1]);
            if (n < 0 || n > (1 << 24))
                goto bad;
            c->class_names = calloc((size_t)(n > 0 ? n : 1), sizeof *c->class_names);
            if (!c->class_names)
                goto oom;
            c->n_classes = n;
        } else if (strcmp(k, "class") == 0 && nf == 3) {
            int i = atoi(f[1]);
            if (!c->class_names || i != classes_seen || i >= c->n_classes)
                goto bad;
            if (!(c->class_names[i] = strdup(unescape(f[2]))))
                goto oom;
            classes_seen++;
        } else if (strcmp(k, "clip") == 0 && nf == 8) {
            int i = atoi(f[1]);
            if (c->n_clips < 0 || i != clips_seen || i >= c->n_clips)
                goto bad;
            c->offset[i] = strtoll(f[2], NULL, 10);
            c->n_frames[i] = atoi(f[3]);
            c->source_frames[i] = strtoll(f[4], NULL, 10);
            if (c->n_frames[i] <= 0 || c->n_frames[i] > (1 << 24))
                goto bad;
            int nl = strcmp(f[5], "-") == 0 ? 0 : 1;
            for (const char *p = f[5]; nl && *p; p++)
                nl += *p == ',';
            c->n_labels[i] = nl;
            c->labels[i] = malloc((size_t)(nl > 0 ? nl : 1) * sizeof **c->labels);
            c->indices[i] = malloc((size_t)c->n_frames[i] * sizeof **c->indices);
            if (!c->labels[i] || !c->indices[i])
                goto oom;
            int64_t tmp[64];
            int64_t *lab = nl <= 64 ? tmp : malloc((size_t)nl * sizeof *lab);
            if (!lab)
                goto oom;
            bool lab_ok = nl == 0 || parse_i64_list(f[5], lab, nl);
            for (int j = 0; lab_ok && j < nl; j++) {
                lab_ok = lab[j] >= 0 && lab[j] <= INT32_MAX;
                c->labels[i][j] = (int32_t)lab[j];
            }
            if (lab != tmp)
                free(lab);
            if (!lab_ok || !parse_i64_list(f[6], c->indices[i], c->n_frames[i]))
                goto bad;
            if (!(c->paths[i] = strdup(unescape(f[7]))))
                goto oom;
            clips_seen++;
        } else if (strcmp(k, "skip") == 0) {
            /* informational */
        } else if (strcmp(k, "end") == 0 && nf == 2) {
            ended = atoi(f[1]) == clips_seen;
            if (!ended)
                goto bad;
        } else {
            goto bad;
        }
    }
    free(text);
    text = NULL;
    if (!ended || c->n_clips < 0 || clips_seen != c->n_clips || classes_seen != c->n_classes || c->width <= 0 ||
        c->height <= 0 || data_bytes < HEADER_BYTES) {
        snprintf(err, err_cap, "clip cache '%s': manifest.tsv is incomplete (%d of %d clips); rebuild the cache", dir,
                 clips_seen, c->n_clips);
        goto fail;
    }
    /* The data file: size, header and every clip's extent. */
    fd = open(data_path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        snprintf(err, err_cap, "clip cache '%s': cannot open clips.bin: %s", dir, strerror(errno));
        goto fail;
    }
    if ((int64_t)sb.st_size != data_bytes) {
        snprintf(err, err_cap, "clip cache '%s': clips.bin has %lld bytes, the manifest says %lld; rebuild the cache",
                 dir, (long long)sb.st_size, (long long)data_bytes);
        goto fail;
    }
    c->map_bytes = (size_t)sb.st_size;
    void *m = mmap(NULL, c->map_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    fd = -1;
    if (m == MAP_FAILED) {
        snprintf(err, err_cap, "clip cache '%s': cannot map clips.bin: %s", dir, strerror(errno));
        goto fail;
    }
    c->map = m;
    CacheHeader h;
    memcpy(&h, c->map, sizeof h);
    if (memcmp(h.magic, MAGIC, sizeof MAGIC) != 0 || h.version != CLIP_CACHE_VERSION || h.header_bytes != HEADER_BYTES) {
        snprintf(err, err_cap, "clip cache '%s': clips.bin is not a focusbench clip cache of version %d", dir,
                 CLIP_CACHE_VERSION);
        goto fail;
    }
    if (h.cache_id != id || h.width != (uint32_t)c->width || h.height != (uint32_t)c->height ||
        h.clips != (uint64_t)c->n_clips || h.data_bytes != (uint64_t)data_bytes) {
        snprintf(err, err_cap, "clip cache '%s': clips.bin and manifest.tsv belong to different builds; rebuild the cache",
                 dir);
        goto fail;
    }
    size_t frame_bytes = (size_t)c->width * (size_t)c->height * 3;
    for (int i = 0; i < c->n_clips; i++) {
        int64_t end = c->offset[i] + (int64_t)(c->n_frames[i] * frame_bytes);
        if (c->offset[i] < HEADER_BYTES || c->offset[i] % CLIP_CACHE_ALIGN != 0 || end > data_bytes) {
            snprintf(err, err_cap, "clip cache '%s': clip %d lies outside clips.bin; rebuild the cache", dir, i);
            goto fail;
        }
    }
    return c;
bad:
    snprintf(err, err_cap, "clip cache '%s': manifest.tsv line %d is malformed; rebuild the cache", dir, line_no);
    goto fail;
oom:
    snprintf(err, err_cap, "clip cache '%s': out of memory", dir);
fail:
    if (fd >= 0)
        close(fd);
    free(text);
    if (c && c->n_clips < 0)
        c->n_clips = 0;
    clip_cache_close(c);
    return NULL;
}

int clip_cache_count(const ClipCache *c) { return c->n_clips; }
int clip_cache_width(const ClipCache *c) { return c->width; }
int clip_cache_height(const ClipCache *c) { return c->height; }
int clip_cache_skipped(const ClipCache *c) { return c->n_skipped; }
int clip_cache_n_classes(const ClipCache *c) { return c->n_classes; }
bool clip_cache_multi_label(const ClipCache *c) { return c->multi_label; }

const char *clip_cache_class_name(const ClipCache *c, int i)
{
    return i >= 0 && i < c->n_classes && c->class_names ? c->class_names[i] : NULL;
}

bool clip_cache_get(const ClipCache *c, int i, ClipView *out)
{
    if (i < 0 || i >= c->n_clips)
        return false;
    out->frames = c->map + c->offset[i];
    out->n_frames = c->n_frames[i];
    out->source_frames = c->source_frames[i];
    out->indices = c->indices[i];
    out->labels = c->labels[i];
    out->n_labels = c->n_labels[i];
    out->path = c->paths[i];
    return true;
}

/* ---- builder ------------------------------------------------------------------------------ */

/* One decoded video waiting to be written, in order. */
typedef struct {
    int state;            /* 0 empty/claimed, 1 done */
    bool ok;
    uint8_t *frames;      /* (n, height, width, 3) */
    int64_t *indices;     /* (n) */
    int n;
    int64_t source_frames;
    char msg[512];
} BuildSlot;

typedef struct {
    const VideoList *list;
    const ClipCacheBuildOptions *opt;
    pthread_mutex_t mu;
    pthread_cond_t cv_done, cv_space;
    BuildSlot *slots;     /* (window) ring; video i uses slot i % window */
    int window;
    int next;             /* next video to claim */
    int written;          /* videos handed to the writer so far */
    bool stop;
} BuildState;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Decodes video i into s (frames covered to width×height). */
static void build_one(const BuildState *b, int i, BuildSlot *s)
{
    const ClipCacheBuildOptions *o = b->opt;
    const VideoEntry *e = &b->list->items[i];
    char path[4096];
    s->ok = false;
    if (!video_list_resolve(b->list, e, path, sizeof path)) {
        snprintf(s->msg, sizeof s->msg, "path too long");
        return;
    }
    VideoReader *r = video_open(path, 1, s->msg, sizeof s->msg);
    if (!r)
        return;
    const VideoInfo *info = video_reader_info(r);
    int64_t nf = info->frames;
    int n = o->frames_per_clip > 0 ? o->frames_per_clip
            : (o->max_frames > 0 && nf > o->max_frames) ? o->max_frames
                                                        : (int)(nf < (1 << 24) ? nf : (1 << 24));
    size_t out_frame = (size_t)o->width * o->height * 3;
    s->indices = malloc((size_t)n * sizeof *s->indices);
    s->frames = malloc((size_t)n * out_frame);
    /* Decode in chunks so a long video at full size never sits in memory whole. */
    enum { CHUNK = 32 };
    size_t in_frame = (size_t)info->width * info->height * 3;
    uint8_t *chunk = malloc(CHUNK * in_frame); /* (CHUNK, h, w, 3) */
    if (!s->indices || !s->frames || !chunk) {
        snprintf(s->msg, sizeof s->msg, "video '%.400s': out of memory for %d frames", path, n);
        goto done;
    }
    if (o->frames_per_clip > 0 || n < nf)
        video_sample_tsn(nf, n, false, 0, 0, 0, s->indices);
    else
        for (int k = 0; k < n; k++)
            s->indices[k] = k;
    TransformRegion reg = transform_cover_region(info->width, info->height, o->width, o->height);
    bool same = info->width == o->width && info->height == o->height;
    for (int k0 = 0; k0 < n; k0 += CHUNK) {
        int m = n - k0 < CHUNK ? n - k0 : CHUNK;
        if (!video_read_frames(r, s->indices + k0, m, chunk, s->msg, sizeof s->msg))
            goto done;
        for (int k = 0; k < m; k++) {
            uint8_t *dst = s->frames + (size_t)(k0 + k) * out_frame;
            if (same)
                memcpy(dst, chunk + (size_t)k * in_frame, in_frame);
            else if (!transform_frame_u8(chunk + (size_t)k * in_frame, info->width, info->height, &reg, o->width,
                                         o->height, dst)) {
                snprintf(s->msg, sizeof s->msg, "video '%.400s': out of memory resizing", path);
                goto done;
            }
        }
    }
    s->n = n;
    s->source_frames = video_reader_info(r)->frames;
    s->ok = true;
done:
    free(chunk);
    video_close(r);
}

static void *build_worker(void *arg)
{
    BuildState *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->stop && b->next < b->list->n && b->next >= b->written + b->window)
            pthread_cond_wait(&b->cv_space, &b->mu);
        if (b->stop || b->next >= b->list->n)
            break;
        int i = b->next++;
        BuildSlot *s = &b->slots[i % b->window];
        pthread_mutex_unlock(&b->mu);
        BuildSlot local = {0};
        build_one(b, i, &local);
        pthread_mutex_lock(&b->mu);
        *s = local;
        s->state = 1;
        pthread_cond_broadcast(&b->cv_done);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

bool clip_cache_build(const VideoList *list, const char *dir, const ClipCacheBuildOptions *opt,
                      ClipCacheBuildStats *stats, char *err, size_t err_cap)
{
    ClipCacheBuildStats st = {0};
    double t0 = now_s();
    if (!list || !opt || opt->frames_per_clip < 0 || opt->max_frames < 0) {
        snprintf(err, err_cap, "clip_cache_build: bad arguments");
        return false;
    }
    if (!HAVE_FFMPEG) {
        snprintf(err, err_cap, "clip cache '%s': building a cache decodes videos, and focusbench was built without "
                               "FFmpeg; build it on a machine with FFmpeg and copy the directory", dir);
        return false;
    }
    ClipCacheWriter *w = clip_cache_writer_open(dir, opt->width, opt->height, err, err_cap);
    if (!w)
        return false;
    int threads = opt->threads > 0 ? opt->threads : cpu_count();
    if (threads > 64)
        threads = 64;
    BuildState b = {.list = list, .opt = opt, .window = 2 * threads};
    b.slots = calloc((size_t)b.window, sizeof *b.slots);
    pthread_t tid[64];
    int started = 0;
    bool ok = b.slots != NULL;
    if (!ok)
        snprintf(err, err_cap, "clip cache '%s': out of memory", dir);
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv_done, NULL);
    pthread_cond_init(&b.cv_space, NULL);
    for (int t = 0; ok && t < threads; t++) {
        if (pthread_create(&tid[t], NULL, build_worker, &b) != 0) {
            snprintf(err, err_cap, "clip cache '%s': cannot start a decoding thread", dir);
            ok = false;
            break;
        }
        started++;
    }
    double last_report = t0;
    for (int i = 0; ok && i < list->n; i++) {
        BuildSlot *s = &b.slots[i % b.window];
        pthread_mutex_lock(&b.mu);
        while (s->state != 1)
            pthread_cond_wait(&b.cv_done, &b.mu);
        BuildSlot got = *s;
        memset(s, 0, sizeof *s);
        pthread_mutex_unlock(&b.mu);
        const VideoEntry *e = &list->items[i];
        if (got.ok) {
            ok = clip_cache_writer_add(w, e->path, e->labels, e->n_labels, got.source_frames, got.indices, got.n,
                                       got.frames, err, err_cap);
            st.clips++;
            st.frames += got.n;
        } else {
            fprintf(stderr, "warning: skipping video %d: %s\n", i, got.msg);
            ok = clip_cache_writer_skip(w, e->path, got.msg, err, err_cap);
            st.skipped++;
        }
        free(got.frames);
        free(got.indices);
        pthread_mutex_lock(&b.mu);
        b.written = i + 1;
        pthread_cond_broadcast(&b.cv_space);
        pthread_mutex_unlock(&b.mu);
        double t = now_s();
        if (opt->progress && (t - last_report > 2.0 || i + 1 == list->n)) {
            double rate = (i + 1) / (t - t0);
            fprintf(stderr, "cache: %d/%d videos (%d skipped), %.1f videos/s, ETA %.0f s\n", i + 1, list->n,
                    st.skipped, rate, (list->n - i - 1) / (rate > 0 ? rate : 1));
            last_report = t;
        }
    }
    pthread_mutex_lock(&b.mu);
    b.stop = true;
    pthread_cond_broadcast(&b.cv_space);
    pthread_mutex_unlock(&b.mu);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    /* Results decoded ahead of a failure are dropped here. */
    for (int k = 0; b.slots && k < b.window; k++) {
        free(b.slots[k].frames);
        free(b.slots[k].indices);
    }
    free(b.slots);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv_done);
    pthread_cond_destroy(&b.cv_space);
    st.bytes = w->pos;
    if (ok)
        ok = clip_cache_writer_finish(w, list, err, err_cap);
    else
        clip_cache_writer_abort(w);
    st.seconds = now_s() - t0;
    if (stats)
        *stats = st;
    return ok;
}
