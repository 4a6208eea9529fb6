/* arena.h — bump allocation for activations, gradients, tape entries and scratch buffers.
 *
 * Owns: the Arena. Allocation is a pointer bump inside one block. The first pass of a model at
 * a given batch shape may outgrow the block: the arena then chains an overflow block and
 * remembers the high-water mark; the next arena_reset() replaces everything by one block of
 * that size. From then on the same pass allocates nothing from the system ("planned per model
 * and batch shape"). arena_freeze() turns any further growth into an error, so a timed region
 * can prove it allocates nothing.
 *
 * A "measure-only" arena (meta backend) hands out no memory at all, only counts bytes: a
 * meta pass therefore gives the exact activation size of a real pass.
 */
#ifndef FOCUSBENCH_ARENA_H
#define FOCUSBENCH_ARENA_H

#include <stdbool.h>
#include <stddef.h>

enum { ARENA_ALIGN = 64 };

typedef struct ArenaBlock ArenaBlock;

typedef struct Arena {
    ArenaBlock *blocks;   /* newest first; after a reset exactly one */
    size_t used;          /* bytes handed out since the last reset (with alignment padding) */
    size_t high_water;    /* largest `used` seen */
    size_t system_allocs; /* blocks ever obtained from malloc */
    bool measure_only;    /* hand out NULL, only count */
    bool frozen;          /* growth beyond the current block is an error */
} Arena;

void arena_init(Arena *a, size_t initial_bytes, bool measure_only);
void arena_free(Arena *a);

/* Returns 64-byte aligned memory, or NULL when frozen and full (the caller reports it) or on
 * a measure-only arena. Never returns NULL for bytes == 0 on a real arena. */
void *arena_alloc(Arena *a, size_t bytes);
void *arena_calloc(Arena *a, size_t bytes);

/* Forget all allocations; if the last pass overflowed, replace the blocks by one block of the
 * high-water size so the next identical pass needs no system allocation. */
void arena_reset(Arena *a);

/* Makes sure one block of at least `bytes` exists (planning from a meta pass). */
void arena_reserve(Arena *a, size_t bytes);

static inline void arena_freeze(Arena *a, bool frozen) { a->frozen = frozen; }

#endif
