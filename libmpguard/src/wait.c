/* SPDX-License-Identifier: MIT */
/* Waiting for submitted tasks without closing the pool: each submitted
 * task has a number (job->base, in the order of mpg_submit() calls), and
 * the pool's list of jobs not ended is in that order too. */
#include "pool-int.h"

#include <errno.h>
#include <time.h>

/* With the lock: is a task submitted before number `mark` still not done?
 * Jobs leave the list when done, in any order, but those still in it keep
 * the order they came in, submitted ones by number: the first submitted
 * one in the list is the oldest not done. */
static bool submitted_pending(struct mpg_pool *p, uint64_t mark)
{
	for (const struct job *j = p->jobs_head; j; j = j->next)
		if (j->kind == JOB_SUBMIT)
			return j->base < mark;
	/* Then those handed in that the dispatcher has not taken yet. */
	bool pending = false;
	pthread_mutex_lock(&p->incoming_lock);
	for (const struct job *j = p->incoming_head; j; j = j->next) {
		if (j->kind == JOB_SUBMIT) {
			pending = j->base < mark;
			break;
		}
	}
	pthread_mutex_unlock(&p->incoming_lock);
	return pending;
}

MPG_EXPORT int mpg_pool_wait(mpg_pool *p, int timeout_ms)
{
	int r = mpg__check_caller(p);
	if (r < 0)
		return r;
	if (mpg__on_dispatcher(p))
		return -EDEADLK;
	struct timespec dl;
	mpg__deadline_after_ms(&dl, timeout_ms);
	pthread_mutex_lock(&p->lock);
	pthread_mutex_lock(&p->incoming_lock);
	uint64_t mark = p->next_submit;
	pthread_mutex_unlock(&p->incoming_lock);
	while (r == 0 && submitted_pending(p, mark)) {
		if (timeout_ms < 0)
			pthread_cond_wait(&p->cond, &p->lock);
		else if (pthread_cond_timedwait(&p->cond, &p->lock, &dl) == ETIMEDOUT &&
			 submitted_pending(p, mark))
			r = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}
