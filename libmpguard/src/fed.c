/* SPDX-License-Identifier: MIT */
/* Fed calls (fed-int.h): jobs of a pool whose tasks run elsewhere. Their
 * outcomes take the paths of a worker's (outcome.c) under the pool lock;
 * the dispatcher is woken to run the callbacks and wake the waiters. */
#include "dispatch-int.h"
#include "fed-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A fed job of @kind, its options resolved, not handed in yet. */
static int fed_new(mpg_pool *p, enum job_kind kind, size_t n, const mpg_options *opts,
		   struct job **ret)
{
	int r = mpg__check_caller(p);
	if (r < 0)
		return r;
	struct job *job = mpg__job_new(kind, NULL, n);
	if (!job)
		return -ENOMEM;
	/* Each task ends once (outcomes come from other processes). */
	if (!job->state && !(job->state = calloc(n ? n : 1, 1))) {
		mpg__job_free(job);
		return -ENOMEM;
	}
	job->fed = true;
	job->fed_held = true;
	r = mpg__callcfg_resolve(p, opts, &job->cfg);
	if (r < 0) {
		mpg__job_free(job);
		return r;
	}
	job->base = job->cfg.base;
	job->cfg.timeout_ms = 0; /* applied where the tasks run */
	*ret = job;
	return 0;
}

MPG_EXPORT int mpg__fed_map(mpg_pool *p, size_t n, const mpg_options *opts, struct job **ret)
{
	if (p && mpg__on_dispatcher(p))
		return -EDEADLK;
	struct job *job;
	int r = fed_new(p, JOB_MAP, n, opts, &job);
	if (r == 0 && (r = mpg__pool_enqueue(p, job)) < 0)
		mpg__job_free(job);
	if (r == 0)
		*ret = job;
	return r;
}

MPG_EXPORT int mpg__fed_imap(mpg_pool *p, size_t n, const mpg_options *opts, struct job **job,
			     mpg_iter **ret)
{
	struct job *j;
	int r = fed_new(p, JOB_IMAP, n, opts, &j);
	if (r < 0)
		return r;
	mpg_iter *it = mpg__iter_new(p, j);
	if (!it) {
		mpg__job_free(j);
		return -ENOMEM;
	}
	r = mpg__pool_enqueue(p, j);
	if (r < 0) {
		free(it);
		mpg__pool_unref(p);
		mpg__job_free(j);
		return r;
	}
	*job = j;
	*ret = it;
	return 0;
}

MPG_EXPORT int mpg__fed_submit(mpg_pool *p, const mpg_options *opts, mpg_result_fn on_result,
			       mpg_error_fn on_error, void *userdata, struct job **job,
			       size_t *number, mpg_future **ret)
{
	struct job *j;
	int r = fed_new(p, JOB_SUBMIT, 1, opts, &j);
	if (r < 0)
		return r;
	j->on_result = on_result;
	j->on_error = on_error;
	j->userdata = userdata;
	j->user_gone = !ret;
	mpg_future *f = ret ? mpg__future_new(p, j) : NULL;
	if (ret && !f) {
		mpg__job_free(j);
		return -ENOMEM;
	}
	r = mpg__pool_enqueue(p, j); /* gives it its number */
	if (r < 0) {
		if (f) {
			free(f);
			mpg__pool_unref(p);
		}
		mpg__job_free(j);
		return r;
	}
	*job = j;
	*number = (size_t)j->base; /* set before the job was handed in */
	if (ret)
		*ret = f;
	return 0;
}

MPG_EXPORT bool mpg__fed_take(struct job *job, size_t first, size_t count)
{
	struct mpg_pool *p = job->pool;
	pthread_mutex_lock(&p->lock);
	bool ok = !job->cancelled && !job->done && job->cursor == first && count <= job->n - first;
	if (ok)
		job->cursor = first + count;
	pthread_mutex_unlock(&p->lock);
	return ok;
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

/* Whether task @index has not ended yet, and marks it ended. */
static bool ends(struct job *job, size_t index)
{
	if (index >= job->n || job->state[index] != ITEM_PENDING)
		return false;
	job->state[index] = ITEM_FAILED; /* MAP: set again by its outcome */
	return true;
}

MPG_EXPORT int mpg__fed_ok(struct job *job, size_t n, const size_t *index, const mpg_buf *res)
{
	struct mpg_pool *p = job->pool;
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += res[i].len;
	/* One block for the batch (its results point in): kept by the job,
	 * or for an iterator by its results not read yet. */
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
	bool imap = job->kind == JOB_IMAP;
	if (!imap) {
		b->next = job->blobs;
		job->blobs = b;
	}
	for (size_t i = 0; i < n; i++) {
		if (!ends(job, index[i]))
			continue;
		if (res[i].len)
			memcpy(mem, res[i].data, res[i].len);
		mpg__task_ok(p, job, index[i], mem, res[i].len, imap ? b : NULL);
		mem += res[i].len;
	}
	if (imap && b->refs == 0)
		mpg__blob_free(b);
	pthread_mutex_unlock(&p->lock);
	mpg__pool_wake(p);
	return 0;
}

MPG_EXPORT void mpg__fed_fail(struct job *job, size_t index, mpg_error *err)
{
	struct mpg_pool *p = job->pool;
	pthread_mutex_lock(&p->lock);
	if (takes(p, job) && ends(job, index))
		mpg__fail_task(p, job, index, err);
	else
		mpg__error_free(err);
	pthread_mutex_unlock(&p->lock);
	mpg__pool_wake(p);
}

MPG_EXPORT void mpg__fed_retrying(struct job *job, size_t index, mpg_error *err)
{
	struct mpg_pool *p = job->pool;
	pthread_mutex_lock(&p->lock);
	if (takes(p, job) && index < job->n && job->state[index] == ITEM_PENDING) {
		p->stats.tasks_retried++;
		if (job->pr)
			job->pr->retried++;
		struct delivery d = {.job = job, .err = err, .index = index, .retrying = true,
				     .free_err = true};
		if (err && p->log_writer && mpg__add_delivery(p, &d) == 0)
			err = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	mpg__error_free(err);
	mpg__pool_wake(p);
}

MPG_EXPORT void mpg__fed_release(struct job *job)
{
	struct mpg_pool *p = job->pool;
	pthread_mutex_lock(&p->lock);
	mpg__take_incoming(p);
	job->fed_held = false;
	/* Ended, and its user gone: nobody else will free it. */
	bool free_now = job->done && job->user_gone;
	pthread_cond_broadcast(&p->cond); /* a map's waiter */
	pthread_mutex_unlock(&p->lock);
	if (free_now)
		mpg__job_free(job);
}

MPG_EXPORT int mpg__fed_map_wait(struct job *job, mpg_results **ret)
{
	return mpg__map_wait(job->pool, job, ret);
}
