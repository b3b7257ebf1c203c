/* SPDX-License-Identifier: MIT */
/* The process's default pool (mpg_pool_default()): made on the first call
 * with the default options, shared by every thread, owned by the library,
 * stopped at exit(). */
#include "pool-int.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static mpg_pool *default_pool;
static mpg_pool *parents_pool; /* a forked child's copy of its parent's: kept reachable, untouched */

/* At exit(), as Python's `with Pool()` ends: cancel what has not ended,
 * reap the workers and drain the log, so the last records are written.
 * The pool's memory stays (reachable): a thread still in a call on it
 * returns -ECANCELED instead of touching freed memory. Nothing in a
 * worker or a forked child, whose copy of the pool is not theirs. */
static void stop_at_exit(void)
{
	pthread_mutex_lock(&default_lock);
	mpg_pool *p = default_pool;
	pthread_mutex_unlock(&default_lock);
	if (!p || mpg__check_caller(p) < 0 || mpg__on_dispatcher(p))
		return;
	mpg__pool_stop(p);
	/* Stopped, not only flushed: what a sink could not take at once
	 * (stderr is a pipe the reader empties as it can) is waited for. */
	if (p->log)
		(void)mplog_aggregator_stop(p->log);
}

MPG_EXPORT int mpg_pool_default(mpg_pool **ret)
{
	if (!ret)
		return -EINVAL;
	if (mpg__in_worker)
		return -ECHILD;
	int r = 0;
	pthread_mutex_lock(&default_lock);
	/* A process forked from the pool's creator has a copy of its handle,
	 * whose fds the fork closed: the child's default pool is its own. The
	 * copy is the parent's memory; it is left alone. */
	if (default_pool && default_pool->creator != getpid()) {
		parents_pool = default_pool;
		default_pool = NULL;
	}
	if (!default_pool) {
		static bool registered;
		if (!registered && atexit(stop_at_exit) != 0)
			r = -ENOMEM;
		else
			registered = true;
		if (r == 0)
			r = mpg_pool_new(NULL, &default_pool);
		if (r == 0)
			default_pool->is_default = true;
	}
	if (r == 0)
		*ret = default_pool;
	pthread_mutex_unlock(&default_lock);
	return r;
}
