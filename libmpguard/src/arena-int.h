/* SPDX-License-Identifier: MIT */
/* The result arena: a worker's results, built in memory the parent can
 * read after the worker died. Exactly-once rests on it: a task's result is
 * committed there when the task ends, before anything else runs, so a
 * worker that dies before its batch is sent loses no finished task; the
 * parent takes the committed results from the dead worker's arena and
 * re-runs only the tasks that had not finished (arena.c). */
#pragma once

#include "proto-int.h"

#include <stdatomic.h>
#include <stdint.h>

/* The first page: what the data region holds. Written by the worker only,
 * read by the parent only once the worker is dead, so no lock; the order
 * of the stores still matters (a worker can die between any two): a
 * commit stores len, then count; a reset stores count = 0 first.
 *
 * Results sent by reference (RESULT_IN_ARENA frames) stay in the data
 * region until the parent has read them: it counts such frames in
 * `released`, its own cache line of the head, which it maps (the file is
 * sealed against shrinking, so the mapping cannot fault). The worker
 * reuses a region only once `released` says every frame it sent was
 * read; it sleeps on `released` (a futex) with `waiting` set. */
struct mpg__arena_head {
	_Atomic uint32_t count;    /* tasks committed, not yet sent */
	_Atomic uint32_t mode;     /* CHUNK_FIXED_OUT, or 0: items */
	_Atomic uint64_t job;
	_Atomic uint64_t first;    /* the first committed task */
	_Atomic uint64_t out_size; /* fixed: bytes per task */
	_Atomic uint64_t data_off; /* where the first committed task's bytes start */
	_Atomic uint64_t len;      /* committed bytes from data_off */
	_Alignas(64) _Atomic uint32_t released; /* parent: RESULT_IN_ARENA frames read */
	_Atomic uint32_t waiting;  /* worker: asleep on released */
};
#define MPG_ARENA_DATA 4096u          /* the data region's offset */
#define MPG_ARENA_INITIAL (64u << 10) /* data bytes at first */
/* Results a worker holds unsent: a fixed chunk, or a flush's worth of
 * items plus one inline result. */
#define MPG_ARENA_MAX ((size_t)MPK_FRAME_MAX_BODY + (16u << 20))

/* ---- worker side ------------------------------------------------------- */
struct mpg__arena {
	int fd;
	uint8_t *base;             /* head, then data */
	size_t size;               /* mapped and file size */
};
/* Create it (a memfd); 0 or a negative errno. */
int mpg__arena_open(struct mpg__arena *a);
/* Make the data region hold at least cap bytes (it may move). */
int mpg__arena_reserve(struct mpg__arena *a, size_t cap);
static inline struct mpg__arena_head *mpg__arena_head(const struct mpg__arena *a)
{
	return (struct mpg__arena_head *)a->base;
}
static inline uint8_t *mpg__arena_data(const struct mpg__arena *a)
{
	return a->base + MPG_ARENA_DATA;
}
/* Nothing committed: tasks from `first` of job go at data_off next. */
static inline void mpg__arena_reset(struct mpg__arena *a, uint64_t job, uint64_t first,
				    uint32_t mode, uint64_t out_size, uint64_t data_off)
{
	struct mpg__arena_head *h = mpg__arena_head(a);
	atomic_store_explicit(&h->count, 0, memory_order_release);
	atomic_store_explicit(&h->job, job, memory_order_relaxed);
	atomic_store_explicit(&h->first, first, memory_order_relaxed);
	atomic_store_explicit(&h->mode, mode, memory_order_relaxed);
	atomic_store_explicit(&h->out_size, out_size, memory_order_relaxed);
	atomic_store_explicit(&h->data_off, data_off, memory_order_relaxed);
	atomic_store_explicit(&h->len, 0, memory_order_relaxed);
}

/* Tasks [first, first + count) are done; their bytes are [data_off, +len).
 * Once per task, inline: two plain stores on x86. Release: the data and
 * len are in place before the count says so. */
static inline void mpg__arena_commit(struct mpg__arena *a, uint32_t count, uint64_t len)
{
	struct mpg__arena_head *h = mpg__arena_head(a);
	atomic_store_explicit(&h->len, len, memory_order_relaxed);
	atomic_store_explicit(&h->count, count, memory_order_release);
}

/* Wait until the parent read all @sent RESULT_IN_ARENA frames: 0, or
 * -EPIPE when @chan_in hung up (the parent let us go). */
int mpg__arena_await(struct mpg__arena *a, uint32_t sent, int chan_in);

/* ---- parent side ------------------------------------------------------- */
/* The head of a worker's arena, mapped shared to release what was read:
 * NULL when the fd is not a memfd sealed against shrinking. */
struct mpg__arena_head *mpg__arena_attach(int fd);
void mpg__arena_detach(struct mpg__arena_head *h);
/* Reading @read frames by reference is done: the worker may reuse them. */
void mpg__arena_release(struct mpg__arena_head *h, uint32_t read);
/* What a dead worker had committed: 1 and *res over a private copy (*mem,
 * to free) holding the longest valid run of committed results; 0 when
 * there is none; a negative errno when the arena is not one (not a
 * regular file, too big, shorter than its head says). An ITEM_SHM ends
 * the run: its memfd died with the worker. */
int mpg__arena_rescue(int fd, struct mpg__result *res, void **mem);
