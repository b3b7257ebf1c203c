/* SPDX-License-Identifier: MIT */
/* Fed calls (fed-int.h): jobs of a pool whose tasks run elsewhere. Their
 * outcomes take the paths of a worker's (outcome.c) under the pool lock;
 * the dispatcher is woken to run the callbacks and wake the waiters. */
#include "dispatch-int.h"
#include "fed-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

MPG_EXPORT int mpg__fed_map(mpg_pool *p, size_t n, const mpg_options *opts, struct job **ret)
{
	int r = mpg__check_caller(p);
	if (r < 0)
		return r;
	if (mpg__on_dispatcher(p))
		return -EDEADLK;
	struct job *job = mpg__job_new(JOB_MAP, NULL, n);
	if (!job)
		return -ENOMEM;
	job->fed = true;
	r = mpg__callcfg_resolve(p, opts, &job->cfg);
	if (r == 0) {
		job->base = job->cfg.base;
		job->cfg.timeout_ms = 0; /* applied where the tasks run */
		r = mpg__pool_enqueue(p, job);
	}
	if (r < 0) {
		mpg__job_free(job);
		return r;
	}
	*ret = job;
	return 0;
}

MPG_EXPORT bool mpg__fed_cancelled(struct job *job)
{
	struct mpg_pool *p = job->pool;
	pthread_mutex_lock(&p->lock);
	bool c = job->cancelled;
	pthread_mutex_unlock(&p->lock);
	return c;
}

/* With the lock: the job in the pool's list (it may still be among those
 * handed in), and whether it still takes outcomes. */
static bool takes(struct mpg_pool *p, struct job *job)
{
	mpg__take_incoming(p);
	return !job->cancelled && !job->done;
}

/* Whether task @index has not ended yet: each ends once. */
static bool pending(const struct job *job, size_t index)
{
	return index < job->n && job->state[index] == ITEM_PENDING;
}

MPG_EXPORT int mpg__fed_ok(struct job *job, size_t n, const size_t *index, const mpg_buf *res)
{
	struct mpg_pool *p = job->pool;
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += res[i].len;
	/* One block for the batch, kept by the job (its results point in). */
	struct blob *b = calloc(1, sizeof *b);
	uint8_t *mem = malloc(bytes ? bytes : 1);
	if (!b || !mem) {
		free(b);
		free(mem);
		return -ENOMEM;
	}
	*b = (struct blob){.mem = mem, .len = bytes};
	pthread_mutex_lock(&p->lock);
	if (!takes(p, job)) {
		pthread_mutex_unlock(&p->lock);
		mpg__blob_free(b);
		return 0;
	}
	b->next = job->blobs;
	job->blobs = b;
	for (size_t i = 0; i < n; i++) {
		if (!pending(job, index[i]))
			continue;
		if (res[i].len)
			memcpy(mem, res[i].data, res[i].len);
		mpg__task_ok(p, job, index[i], mem, res[i].len, b);
		mem += res[i].len;
	}
	pthread_mutex_unlock(&p->lock);
	mpg__pool_wake(p);
	return 0;
}

MPG_EXPORT void mpg__fed_fail(struct job *job, size_t index, mpg_error *err)
{
	struct mpg_pool *p = job->pool;
	pthread_mutex_lock(&p->lock);
	if (takes(p, job) && pending(job, index))
		mpg__fail_task(p, job, index, err);
	else
		mpg__error_free(err);
	pthread_mutex_unlock(&p->lock);
	mpg__pool_wake(p);
}

MPG_EXPORT int mpg__fed_map_wait(struct job *job, mpg_results **ret)
{
	return mpg__map_wait(job->pool, job, ret);
}
