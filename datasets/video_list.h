/* video_list.h — the one internal list every benchmark format is parsed into.
 *
 * Owns: VideoEntry / VideoList (path, frame count if known, one or more labels), class names.
 * Parsers (datasets/formats_*.c) fill it; the loader, `data inspect`, `gen-data` and the
 * metrics consume it.
 */
#ifndef FOCUSBENCH_VIDEO_LIST_H
#define FOCUSBENCH_VIDEO_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *path;         /* absolute, or relative to the list's root directory */
    int64_t num_frames; /* from the list file; -1 when the format does not give it */
    int32_t *labels;    /* class indices in [0, n_classes); several for multi-label sets */
    int n_labels;
} VideoEntry;

typedef struct {
    VideoEntry *items;
    int n, cap;
    char **class_names; /* n_classes names, index = label; may be NULL when the format has none */
    int n_classes;
    bool multi_label;   /* ActivityNet/FCVID style: evaluate with mAP */
    char *root;         /* directory the relative paths are under (may be NULL) */
} VideoList;

void video_list_init(VideoList *list);
void video_list_free(VideoList *list);
/* Appends an entry (copies path and labels); returns false on out-of-memory. */
bool video_list_add(VideoList *list, const char *path, int64_t num_frames, const int32_t *labels, int n_labels);
/* root + "/" + path unless path is absolute; written into buf (returns false if it does not fit). */
bool video_list_resolve(const VideoList *list, const VideoEntry *e, char *buf, size_t cap);

/* Added by the formats module (datasets/formats*.c) — helpers the parsers share. */
/* Replaces the root directory (copied; NULL clears it). False on out-of-memory. */
bool video_list_set_root(VideoList *list, const char *root);
/* Appends a class name (copied) as index n_classes; returns that index, or -1 on out-of-memory. */
int video_list_add_class(VideoList *list, const char *name);
/* Index of the class called `name` (exact byte comparison), or -1. Linear: for reporting and
 * tests; the parsers use their own hash table on large lists. */
int video_list_find_class(const VideoList *list, const char *name);

#endif
