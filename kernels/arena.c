/* arena.c — see arena.h. */
#include "arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ArenaBlock {
    ArenaBlock *next;
    size_t cap;
    size_t top;
    unsigned char *base; /* aligned start inside storage */
    void *storage;
};

static size_t align_up(size_t n) { return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

static ArenaBlock *block_new(size_t cap)
{
    ArenaBlock *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->storage = malloc(cap + ARENA_ALIGN);
    if (!b->storage) {
        free(b);
        return NULL;
    }
    b->base = (unsigned char *)align_up((uintptr_t)b->storage);
    b->cap = cap;
    return b;
}

static void blocks_free(ArenaBlock *b)
{
    while (b) {
        ArenaBlock *next = b->next;
        free(b->storage);
        free(b);
        b = next;
    }
}

void arena_init(Arena *a, size_t initial_bytes, bool measure_only)
{
    memset(a, 0, sizeof *a);
    a->measure_only = measure_only;
    if (!measure_only && initial_bytes > 0)
        arena_reserve(a, initial_bytes);
}

void arena_free(Arena *a)
{
    blocks_free(a->blocks);
    memset(a, 0, sizeof *a);
}

void *arena_alloc(Arena *a, size_t bytes)
{
    size_t need = align_up(bytes ? bytes : 1);
    a->used += need;
    if (a->used > a->high_water)
        a->high_water = a->used;
    if (a->measure_only)
        return NULL;
    ArenaBlock *b = a->blocks;
    if (!b || b->top + need > b->cap) {
        if (a->frozen)
            return NULL;
        /* Grow geometrically so a first pass needs few blocks; reset consolidates. */
        size_t cap = b ? b->cap * 2 : (size_t)1 << 20;
        if (cap < need)
            cap = need;
        ArenaBlock *nb = block_new(cap);
        if (!nb) {
            fprintf(stderr, "focusbench: out of memory: arena block of %zu bytes (malloc failed)\n", cap);
            abort();
        }
        a->system_allocs++;
        nb->next = b;
        a->blocks = b = nb;
    }
    void *p = b->base + b->top;
    b->top += need;
    return p;
}

void *arena_calloc(Arena *a, size_t bytes)
{
    void *p = arena_alloc(a, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void arena_reserve(Arena *a, size_t bytes)
{
    if (a->measure_only)
        return;
    if (a->blocks && !a->blocks->next && a->blocks->cap >= bytes)
        return;
    blocks_free(a->blocks);
    a->blocks = block_new(bytes);
    if (!a->blocks) {
        fprintf(stderr, "focusbench: out of memory: arena of %zu bytes (malloc failed)\n", bytes);
        abort();
    }
    a->system_allocs++;
}

void arena_reset(Arena *a)
{
    if (!a->measure_only && a->blocks && a->blocks->next)
        arena_reserve(a, align_up(a->high_water));
    else if (a->blocks)
        a->blocks->top = 0;
    a->used = 0;
}
