/* SPDX-License-Identifier: MIT */
/* A fed call: a call of a pool whose tasks run outside the pool's workers
 * (libmpguard-mpi runs them on the ranks of an MPI job), their outcomes
 * handed in by the caller's threads. It is an ordinary job of the pool,
 * which its dispatcher never schedules: the user reads it with the same
 * handles (mpg_results, mpg_iter, mpg_future), its callbacks and progress
 * reports run on the dispatcher thread, its errors go to the pool's log,
 * MPG_ABORT aborts the pool, and mpg_pool_wait() waits for fed submitted
 * tasks, as for any call. Exported in the private version node
 * MPG_PRIVATE_0.1 (libmpguard.sym) for libmpguard-mpi alone: no promise of
 * stability, like glibc's GLIBC_PRIVATE. DESIGN.md, "Beyond one machine".
 *
 * The feeder holds the job from its creation until mpg__fed_release():
 * until then it is not freed (the user may free their handle), and a
 * map's waiter does not return. */
#pragma once

#include "mpguard.h"

#include <stdbool.h>
#include <stddef.h>

struct job;

/* A fed map of @n tasks with the call's options @opts (as mpg_map()),
 * handed to @pool: 0, or -EINVAL, -ECHILD, -EDEADLK, -ENOMEM, -ESHUTDOWN. */
MPG_EXPORT int mpg__fed_map(mpg_pool *pool, size_t n, const mpg_options *opts,
			    struct job **ret);
/* A fed mpg_imap_unordered(): the job, and the user's iterator. */
MPG_EXPORT int mpg__fed_imap(mpg_pool *pool, size_t n, const mpg_options *opts,
			     struct job **job, mpg_iter **ret);
/* A fed mpg_submit() of one task: the job, its number (mpg_future_task())
 * in *@number, and the user's future when @ret is not NULL. */
MPG_EXPORT int mpg__fed_submit(mpg_pool *pool, const mpg_options *opts, mpg_result_fn on_result,
			       mpg_error_fn on_error, void *userdata, struct job **job,
			       size_t *number, mpg_future **ret);
/* Hand out tasks [@first, @first + @count), the next ones in order: true,
 * or false when the call takes no more (cancelled: the pool aborted; its
 * iterator freed: the tasks not handed out are dropped). */
MPG_EXPORT bool mpg__fed_take(struct job *job, size_t first, size_t count);
/* Whether the call was cancelled: nothing more need run. */
MPG_EXPORT bool mpg__fed_cancelled(struct job *job);
/* Tasks @index[i] (within the call) ended with results @res[i], copied. */
MPG_EXPORT int mpg__fed_ok(struct job *job, size_t n, const size_t *index, const mpg_buf *res);
/* A task failed for good: @err (its task: the user's number; taken, may
 * be NULL for out of memory). Each task ends once: later outcomes of the
 * same task are dropped. */
MPG_EXPORT void mpg__fed_fail(struct job *job, size_t index, mpg_error *err);
/* Task @index failed a run (@err, taken; its attempts the runs so far)
 * and will run again: a retry in the call's progress and the pool's
 * stats, and the failure's record in the pool's log. */
MPG_EXPORT void mpg__fed_retrying(struct job *job, size_t index, mpg_error *err);
/* The feeder is done with the job: every task it took was fed. */
MPG_EXPORT void mpg__fed_release(struct job *job);
/* As mpg_map() returns, once every task was fed or the call cancelled,
 * and the job released: the results in *@ret, or with @ret NULL the
 * number of failures. Frees the job unless it became the results. */
MPG_EXPORT int mpg__fed_map_wait(struct job *job, mpg_results **ret);
