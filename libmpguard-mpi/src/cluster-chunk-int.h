/* SPDX-License-Identifier: MIT */
/* How a cluster map cuts its tasks into chunks (cluster-chunk.c): pure,
 * no MPI, shared by rank 0's MPI thread and its local thread. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Guided chunks: each about 1/(MPG__CL_GUIDED x slots) of the tasks not
 * handed out yet, so that, with two chunks queued per agent, little work
 * is left in other ranks' hands when one runs out; never smaller than
 * 1/(MPG__CL_MIN_DIV x slots) of the call. */
#define MPG__CL_GUIDED 4u
#define MPG__CL_MIN_DIV 64u

struct mpg__cl_chunks {
	size_t n;             /* tasks of the call */
	size_t max, min;      /* chunk sizes; equal for an explicit chunksize */
	size_t div;           /* guided: left / div */
	atomic_size_t cursor; /* the first task not handed out */
};

/* @chunksize: the caller's (every chunk that size, the last one shorter),
 * or 0: guided over @slots worker slots, at most @max tasks a chunk. */
void mpg__cl_chunks_init(struct mpg__cl_chunks *c, size_t n, size_t chunksize, size_t max,
			 size_t slots);
/* The next chunk, from any thread: true and [*first, *first + *count),
 * or false when every task has been handed out. */
bool mpg__cl_chunks_take(struct mpg__cl_chunks *c, size_t *first, size_t *count);
/* Whether tasks are left to hand out. */
bool mpg__cl_chunks_left(struct mpg__cl_chunks *c);
