/* video_list.c — the internal video list (see video_list.h): growth, copies, path resolution.
 *
 * Every string in a VideoList is owned by it (copied on the way in), so a parser can free its
 * file buffer as soon as it has added the entries.
 */
#include "datasets/video_list.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void video_list_init(VideoList *list)
{
    memset(list, 0, sizeof *list);
}

void video_list_free(VideoList *list)
{
    if (!list)
        return;
    for (int i = 0; i < list->n; i++) {
        free(list->items[i].path);
        free(list->items[i].labels);
    }
    free(list->items);
    for (int c = 0; c < list->n_classes; c++)
        free(list->class_names ? list->class_names[c] : NULL);
    free(list->class_names);
    free(list->root);
    memset(list, 0, sizeof *list);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

bool video_list_add(VideoList *list, const char *path, int64_t num_frames, const int32_t *labels, int n_labels)
{
    if (!path || n_labels < 0 || (n_labels > 0 && !labels))
        return false;
    if (list->n == list->cap) {
        /* Doubling keeps appends amortised O(1) for Kinetics-size lists (~250k entries). */
        int cap = list->cap ? list->cap * 2 : 64;
        if (cap <= list->cap)
            return false;
        VideoEntry *items = realloc(list->items, (size_t)cap * sizeof *items);
        if (!items)
            return false;
        list->items = items;
        list->cap = cap;
    }
    VideoEntry e = {.path = dup_str(path), .num_frames = num_frames, .labels = NULL, .n_labels = n_labels};
    if (!e.path)
        return false;
    if (n_labels > 0) {
        e.labels = malloc((size_t)n_labels * sizeof *e.labels); /* (n_labels) */
        if (!e.labels) {
            free(e.path);
            return false;
        }
        memcpy(e.labels, labels, (size_t)n_labels * sizeof *e.labels);
    }
    list->items[list->n++] = e;
    return true;
}

bool video_list_resolve(const VideoList *list, const VideoEntry *e, char *buf, size_t cap)
{
    if (!e || !e->path || !buf || cap == 0)
        return false;
    int n;
    if (e->path[0] == '/' || !list->root || !list->root[0])
        n = snprintf(buf, cap, "%s", e->path);
    else {
        size_t rl = strlen(list->root);
        bool has_slash = list->root[rl - 1] == '/';
        n = snprintf(buf, cap, "%s%s%s", list->root, has_slash ? "" : "/", e->path);
    }
    return n >= 0 && (size_t)n < cap;
}

bool video_list_set_root(VideoList *list, const char *root)
{
    char *copy = NULL;
    if (root && !(copy = dup_str(root)))
        return false;
    free(list->root);
    list->root = copy;
    return true;
}

int video_list_add_class(VideoList *list, const char *name)
{
    /* Grows to 2n whenever n is 0 or a power of two, so the capacity is always >= n + 1 and the
     * total copying stays linear (no separate capacity field in the shared struct). */
    int n = list->n_classes;
    if (n < 0 || (n > 0 && !list->class_names))
        return -1; /* a count without names (list format without a classes file): cannot append */
    if ((n & (n - 1)) == 0) {
        size_t cap = n ? (size_t)n * 2 : 1;
        char **names = realloc(list->class_names, cap * sizeof *names);
        if (!names)
            return -1;
        list->class_names = names;
    }
    char *copy = dup_str(name);
    if (!copy)
        return -1;
    list->class_names[n] = copy;
    list->n_classes = n + 1;
    return n;
}

int video_list_find_class(const VideoList *list, const char *name)
{
    for (int c = 0; c < list->n_classes; c++)
        if (list->class_names && list->class_names[c] && strcmp(list->class_names[c], name) == 0)
            return c;
    return -1;
}
