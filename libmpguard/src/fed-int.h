/* SPDX-License-Identifier: MIT */
/* A fed call: a call of a pool whose tasks run outside the pool's workers
 * (libmpguard-mpi runs them on the ranks of an MPI job), their outcomes
 * handed in by the caller's threads. It is an ordinary job of the pool,
 * which its dispatcher never schedules: the user reads it with the same
 * handles (mpg_results), its error callbacks and progress reports run on
 * the dispatcher thread, its errors go to the pool's log, and MPG_ABORT
 * aborts the pool, as for any call. Exported in the private version node
 * MPG_PRIVATE_0.1 (libmpguard.sym) for libmpguard-mpi alone: no promise of
 * stability, like glibc's GLIBC_PRIVATE. DESIGN.md, "Beyond one machine". */
#pragma once

#include "mpguard.h"

#include <stdbool.h>
#include <stddef.h>

struct job;

/* A fed map of @n tasks with the call's options @opts (as mpg_map()),
 * handed to @pool: 0, or -EINVAL, -ECHILD, -EDEADLK, -ENOMEM, -ESHUTDOWN. */
MPG_EXPORT int mpg__fed_map(mpg_pool *pool, size_t n, const mpg_options *opts,
			    struct job **ret);
/* Whether the call was cancelled: nothing more need run. */
MPG_EXPORT bool mpg__fed_cancelled(struct job *job);
/* Tasks @index[i] (within the call) ended with results @res[i], copied. */
MPG_EXPORT int mpg__fed_ok(struct job *job, size_t n, const size_t *index, const mpg_buf *res);
/* A task failed for good: @err (its task: the user's number, base
 * included; taken, may be NULL for out of memory at @index). */
MPG_EXPORT void mpg__fed_fail(struct job *job, size_t index, mpg_error *err);
/* As mpg_map() returns, once every task was fed or the call cancelled:
 * the results in *@ret, or with @ret NULL the number of failures. Frees
 * the job unless it became the results. */
MPG_EXPORT int mpg__fed_map_wait(struct job *job, mpg_results **ret);
