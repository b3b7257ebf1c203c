/* SPDX-License-Identifier: MIT */
/* Calls that run work — map, map_array, imap_unordered, submit — and the
 * handles they return: results, iterators, futures. */
#include "dispatch-int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct mpg_results {
	struct job *job;
};

struct mpg_iter {
	struct job *job;
	struct mpg_pool *pool;
	struct blob *cur_blob;
	mpg_error *cur_err;
};

struct mpg_future {
	struct job *job;
	struct mpg_pool *pool;
};

int mpg__callcfg_resolve(const struct mpg_pool *p, const mpg_options *call,
			 struct mpg__callcfg *ret)
{
	const mpg_options *d = &p->opts;
	if (call && (call->set & OPT_POOL_ONLY))
		return -EINVAL;
	struct mpg__callcfg c = {
		.policy = d->set & OPT_POLICY ? d->policy : MPG_CONTINUE,
		.retries = d->set & OPT_POLICY ? d->retries : 0,
		.abort_exit = d->set & OPT_ABORT_EXIT ? d->abort_exit : -1,
		.chunksize = d->set & OPT_CHUNKSIZE ? d->chunksize : 0,
		.on_error = d->on_error,
		.on_error_userdata = d->on_error_userdata,
		.timeout_ms = d->set & OPT_TIMEOUT ? d->timeout_ms : 0,
		.progress_fn = d->progress_fn,
		.progress_userdata = d->progress_userdata,
		.progress_ms = d->progress_ms,
		.bar = d->set & OPT_PROGRESS_BAR ? d->bar : MPG_PROGRESS_BAR_OFF,
	};
	bool bar_chosen = d->set & OPT_PROGRESS_BAR;
	if (call) {
		if (call->set & OPT_POLICY) {
			c.policy = call->policy;
			c.retries = call->retries;
		}
		if (call->set & OPT_ABORT_EXIT)
			c.abort_exit = call->abort_exit;
		if (call->set & OPT_CHUNKSIZE)
			c.chunksize = call->chunksize;
		if (call->set & OPT_BASE)
			c.base = call->base;
		if (call->set & OPT_TIMEOUT)
			c.timeout_ms = call->timeout_ms;
		if (call->set & OPT_ERROR_CB) {
			c.on_error = call->on_error;
			c.on_error_userdata = call->on_error_userdata;
		}
		if (call->set & OPT_PROGRESS) {
			c.progress_fn = call->progress_fn;
			c.progress_userdata = call->progress_userdata;
			c.progress_ms = call->progress_ms;
		}
		if (call->set & OPT_PROGRESS_BAR) {
			c.bar = call->bar;
			bar_chosen = true;
		}
		if ((call->set & OPT_CONTEXT) && call->context_len) {
			c.context = malloc(call->context_len);
			if (!c.context)
				return -ENOMEM;
			memcpy(c.context, call->context, call->context_len);
			c.context_len = call->context_len;
		}
	}
	if (!c.progress_ms)
		c.progress_ms = MPG_DEFAULT_PROGRESS_MS;
	/* MPKIT_PROGRESS: "0" turns every bar off; "1"/"auto" or "tty" give one
	 * to calls whose program chose nothing. */
	const char *env = getenv("MPKIT_PROGRESS");
	if (env && (!strcmp(env, "0") || !strcasecmp(env, "off")))
		c.bar = MPG_PROGRESS_BAR_OFF;
	else if (env && !bar_chosen && (!strcmp(env, "1") || !strcasecmp(env, "auto") ||
					!strcasecmp(env, "on")))
		c.bar = MPG_PROGRESS_BAR_AUTO;
	else if (env && !bar_chosen && !strcasecmp(env, "tty"))
		c.bar = MPG_PROGRESS_BAR_TTY;
	*ret = c;
	return 0;
}

void mpg__callcfg_clear(struct mpg__callcfg *c)
{
	free(c->context);
	c->context = NULL;
}

void mpg__blob_free(struct blob *b)
{
	if (!b)
		return;
	if (b->mapped)
		munmap(b->mem, b->len);
	else
		free(b->mem);
	free(b);
}

static void blob_unref(struct blob *b)
{
	if (b && --b->refs == 0)
		mpg__blob_free(b);
}

void mpg__job_free(struct job *job)
{
	if (!job)
		return;
	mpg__callcfg_clear(&job->cfg);
	free(job->redo);
	free(job->state);
	free(job->slots);
	while (job->blobs) {
		struct blob *b = job->blobs;
		job->blobs = b->next;
		mpg__blob_free(b);
	}
	for (size_t i = 0; i < job->nerrors; i++)
		mpg__error_free(job->errors[i]);
	free(job->errors);
	for (size_t i = job->ready_head; i < job->nready; i++) {
		mpg__error_free(job->ready[i].err);
		blob_unref(job->ready[i].blob);
	}
	free(job->ready);
	mpg__error_free(job->error);
	free(job->owned_in);
	if (job->owned_fd >= 0)
		close(job->owned_fd);
	free(job);
}

static int check_call(struct mpg_pool *p, mpg_task_fn fn)
{
	return fn ? mpg__check_caller(p) : -EINVAL;
}

struct job *mpg__job_new(enum job_kind kind, mpg_task_fn fn, size_t n)
{
	struct job *job = calloc(1, sizeof *job);
	if (!job)
		return NULL;
	job->kind = kind;
	job->fn = fn;
	job->n = n;
	job->remaining = n;
	job->ns_per_task = -1;
	job->owned_fd = -1;
	if (kind == JOB_MAP || kind == JOB_ARRAY) {
		job->state = calloc(n ? n : 1, 1);
		if (!job->state)
			goto fail;
	}
	if (kind == JOB_MAP || kind == JOB_SUBMIT) {
		job->slots = calloc(n ? n : 1, sizeof *job->slots);
		if (!job->slots)
			goto fail;
	}
	return job;
fail:
	mpg__job_free(job);
	return NULL;
}

int mpg__pool_enqueue(struct mpg_pool *p, struct job *job)
{
	job->pool = p;
	if (job->n == 0) {
		pthread_mutex_lock(&p->incoming_lock);
		bool refusing = p->refusing;
		pthread_mutex_unlock(&p->incoming_lock);
		if (refusing)
			return -ESHUTDOWN;
		job->done = true;
		return 0;
	}
	pthread_mutex_lock(&p->incoming_lock);
	if (p->refusing) {
		pthread_mutex_unlock(&p->incoming_lock);
		return -ESHUTDOWN;
	}
	if (job->kind == JOB_SUBMIT)
		job->base = p->next_submit++; /* its task number, in errors, logs, callbacks */
	if (p->incoming_tail)
		p->incoming_tail->next = job;
	else
		p->incoming_head = job;
	p->incoming_tail = job;
	pthread_mutex_unlock(&p->incoming_lock);
	/* An awake dispatcher looks at the incoming jobs before it sleeps
	 * (mpg__incoming_pending()): only a sleeping one needs the eventfd.
	 * The list's lock orders our append against its look; the flag is
	 * sequentially consistent, so one of us sees the other. */
	if (atomic_exchange(&p->dispatcher_asleep, false))
		mpg__pool_wake(p);
	return 0;
}

void mpg__pool_refuse(struct mpg_pool *p)
{
	pthread_mutex_lock(&p->incoming_lock);
	p->refusing = true;
	pthread_mutex_unlock(&p->incoming_lock);
}

bool mpg__incoming_pending(struct mpg_pool *p)
{
	pthread_mutex_lock(&p->incoming_lock);
	bool pending = p->incoming_head != NULL;
	pthread_mutex_unlock(&p->incoming_lock);
	return pending;
}

/* One handed-in job joins the pool's list. Out of memory for its time
 * limit or progress interval, its tasks fail (the call was accepted). */
static void take_job(struct mpg_pool *p, struct job *job)
{
	job->next = NULL;
	job->id = ++p->next_job_id;
	/* The same function as last time: size the first chunks from its cost. */
	if (p->last_fn == job->fn && p->last_ns_per_task > 0)
		job->ns_per_task = p->last_ns_per_task;
	bool nomem = false;
	if (job->cfg.timeout_ms && mpg__minset_add(&p->timeouts, job->cfg.timeout_ms) < 0) {
		job->cfg.timeout_ms = 0;
		nomem = true;
	}
	mpg__progress_start(p, job);
	if (job->pr == &job->prog && job->prog.on) {
		if (mpg__minset_add(&p->progress_ns, job->prog.interval_ns) == 0)
			job->tick_ns = job->prog.interval_ns;
		else
			nomem = true;
	}
	job->prev = p->jobs_tail;
	if (p->jobs_tail)
		p->jobs_tail->next = job;
	else
		p->jobs_head = job;
	p->jobs_tail = job;
	/* Stopping: it is cancelled with the others (mpg__begin_stop()). */
	if (p->state == POOL_ABORTING || p->state == POOL_TERMINATING)
		job->cancelled = true;
	else if (nomem)
		for (; job->cursor < job->n && !job->done; job->cursor++)
			mpg__task_failure(p, NULL, job, job->cursor, 0,
					  &(struct mpg__failure){.kind = MPG_ERR_CANCELLED,
								 .code = ENOMEM,
								 .msg = "out of memory while queueing the call",
								 .no_retry = true});
}

void mpg__take_incoming(struct mpg_pool *p)
{
	pthread_mutex_lock(&p->incoming_lock);
	struct job *job = p->incoming_head;
	p->incoming_head = p->incoming_tail = NULL;
	pthread_mutex_unlock(&p->incoming_lock);
	while (job) {
		struct job *next = job->next;
		take_job(p, job);
		job = next;
	}
}

static int cmp_error(const void *a, const void *b)
{
	const mpg_error *x = *(mpg_error *const *)a, *y = *(mpg_error *const *)b;
	return x->task < y->task ? -1 : x->task > y->task;
}

int mpg__map_wait(struct mpg_pool *p, struct job *job, mpg_results **ret)
{
	mpg_results *res = ret ? malloc(sizeof *res) : NULL;
	pthread_mutex_lock(&p->lock);
	while (!job->done || job->fed_held)
		pthread_cond_wait(&p->cond, &p->lock);
	bool cancelled = job->cancelled;
	pthread_mutex_unlock(&p->lock);
	int r;
	if (cancelled) {
		/* The workers are dead: their last records are in the pipes. */
		if (p->log)
			mplog_aggregator_flush(p->log);
		r = -ECANCELED;
		goto fail;
	}
	job->pool = NULL;
	if (!ret) {
		/* Nobody reads the outcome: the number of failures says it all
		 * (their errors went to the callback and the log). */
		size_t failed = job->nfailed;
		mpg__job_free(job);
		return failed > INT_MAX ? INT_MAX : (int)failed;
	}
	if (!res) {
		r = -ENOMEM;
		goto fail;
	}
	if (job->nerrors)
		qsort(job->errors, job->nerrors, sizeof *job->errors, cmp_error);
	res->job = job;
	*ret = res;
	return 0;
fail:
	free(res);
	mpg__job_free(job);
	return r;
}

/* Start a map job and wait for it; on success the job becomes the results. */
static int run_map(struct mpg_pool *p, struct job *job, const mpg_options *opts,
		   mpg_results **ret)
{
	int r = mpg__callcfg_resolve(p, opts, &job->cfg);
	if (r < 0)
		goto fail;
	job->base = job->cfg.base;
	r = mpg__pool_enqueue(p, job);
	if (r < 0)
		goto fail;
	return mpg__map_wait(p, job, ret);
fail:
	mpg__job_free(job);
	return r;
}

MPG_EXPORT int mpg_map(mpg_pool *p, mpg_task_fn fn, const mpg_buf *inputs, size_t n,
		       const mpg_options *opts, mpg_results **ret)
{
	int r = check_call(p, fn);
	if (r < 0)
		return r;
	if ((!inputs && n) || n > SIZE_MAX / sizeof(struct slotref))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!inputs[i].data && inputs[i].len)
			return -EINVAL;
	if (mpg__on_dispatcher(p))
		return -EDEADLK;
	struct job *job = mpg__job_new(JOB_MAP, fn, n);
	if (!job)
		return -ENOMEM;
	job->inputs = inputs;
	return run_map(p, job, opts, ret);
}

MPG_EXPORT int mpg_map_array(mpg_pool *p, mpg_task_fn fn, const void *in, size_t in_size,
			     size_t n, void *out, size_t out_size, const mpg_options *opts,
			     mpg_results **ret)
{
	int r = check_call(p, fn);
	if (r < 0)
		return r;
	if ((n && (!out || (!in && in_size))) || out_size == 0)
		return -EINVAL;
	if ((in_size && n > SIZE_MAX / in_size) || n > SIZE_MAX / out_size)
		return -EINVAL;
	if (out_size > MPG_RESULT_FLUSH_BYTES)
		return -EMSGSIZE;
	if (mpg__on_dispatcher(p))
		return -EDEADLK;
	struct job *job = mpg__job_new(JOB_ARRAY, fn, n);
	if (!job)
		return -ENOMEM;
	job->in_base = in;
	job->in_size = in_size;
	job->out_base = out;
	job->out_size = out_size;
	return run_map(p, job, opts, ret);
}

MPG_EXPORT size_t mpg_results_count(const mpg_results *res)
{
	return res ? res->job->n : 0;
}

MPG_EXPORT size_t mpg_results_failed(const mpg_results *res)
{
	return res ? res->job->nfailed : 0;
}

MPG_EXPORT int mpg_results_get(const mpg_results *res, size_t i, const void **data, size_t *len)
{
	if (!res || i >= res->job->n)
		return -EINVAL;
	const struct job *job = res->job;
	if (job->state[i] != ITEM_OK)
		return -EIO;
	if (job->kind == JOB_ARRAY) {
		if (data)
			*data = job->out_base + i * job->out_size;
		if (len)
			*len = job->out_size;
	} else {
		if (data)
			*data = job->slots[i].data;
		if (len)
			*len = job->slots[i].len;
	}
	return 0;
}

MPG_EXPORT const mpg_error *mpg_results_error(const mpg_results *res, size_t i)
{
	if (!res || i >= res->job->n || res->job->state[i] == ITEM_OK)
		return NULL;
	size_t lo = 0, hi = res->job->nerrors, want = res->job->base + i;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		mpg_error *e = res->job->errors[mid];
		if (e->task == want)
			return e;
		if (e->task < want)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

MPG_EXPORT const mpg_error *const *mpg_results_errors(const mpg_results *res, size_t *n)
{
	size_t k = res ? res->job->nerrors : 0;
	if (n)
		*n = k;
	return k ? (const mpg_error *const *)res->job->errors : NULL; /* sorted by run_map() */
}

MPG_EXPORT void mpg_results_free(mpg_results *res)
{
	if (!res)
		return;
	mpg__job_free(res->job);
	free(res);
}

/* ---- imap_unordered ---------------------------------------------------- */

mpg_iter *mpg__iter_new(struct mpg_pool *p, struct job *job)
{
	mpg_iter *it = calloc(1, sizeof *it);
	if (!it)
		return NULL;
	atomic_fetch_add(&p->refs, 1);
	it->job = job;
	it->pool = p;
	return it;
}

mpg_future *mpg__future_new(struct mpg_pool *p, struct job *job)
{
	mpg_future *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	atomic_fetch_add(&p->refs, 1);
	f->job = job;
	f->pool = p;
	return f;
}

MPG_EXPORT int mpg_imap_unordered(mpg_pool *p, mpg_task_fn fn, const mpg_buf *inputs, size_t n,
				  const mpg_options *opts, mpg_iter **ret)
{
	int r = check_call(p, fn);
	if (r < 0)
		return r;
	if (!ret || (!inputs && n))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!inputs[i].data && inputs[i].len)
			return -EINVAL;
	struct job *job = mpg__job_new(JOB_IMAP, fn, n);
	mpg_iter *it = job ? mpg__iter_new(p, job) : NULL;
	if (!it) {
		r = -ENOMEM;
		goto fail;
	}
	job->inputs = inputs;
	r = mpg__callcfg_resolve(p, opts, &job->cfg);
	if (r < 0)
		goto fail;
	job->base = job->cfg.base;
	r = mpg__pool_enqueue(p, job);
	if (r < 0)
		goto fail;
	*ret = it;
	return 0;
fail:
	if (it) {
		free(it);
		mpg__pool_unref(p);
	}
	mpg__job_free(job);
	return r;
}

MPG_EXPORT int mpg_iter_next(mpg_iter *it, size_t *index, const void **data, size_t *len,
			     const mpg_error **err)
{
	if (!it)
		return -EINVAL;
	struct mpg_pool *p = it->pool;
	if (mpg__on_dispatcher(p))
		return -EDEADLK;
	struct job *job = it->job;
	pthread_mutex_lock(&p->lock);
	blob_unref(it->cur_blob);
	it->cur_blob = NULL;
	mpg__error_free(it->cur_err);
	it->cur_err = NULL;
	while (job->ready_head == job->nready && !job->done)
		pthread_cond_wait(&p->cond, &p->lock);
	int r;
	if (job->ready_head < job->nready) {
		struct ready *rd = &job->ready[job->ready_head++];
		it->cur_blob = rd->blob;
		it->cur_err = rd->err;
		if (index)
			*index = rd->index;
		if (data)
			*data = rd->err ? NULL : rd->data;
		if (len)
			*len = rd->err ? 0 : rd->len;
		if (err)
			*err = rd->err;
		r = 1;
	} else {
		r = job->cancelled ? -ECANCELED : 0;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

MPG_EXPORT void mpg_iter_free(mpg_iter *it)
{
	if (!it)
		return;
	struct mpg_pool *p = it->pool;
	struct job *job = it->job;
	pthread_mutex_lock(&p->lock);
	mpg__take_incoming(p); /* its job may not be in the pool's list yet */
	blob_unref(it->cur_blob);
	mpg__error_free(it->cur_err);
	bool free_now = job->done && !job->fed_held;
	if (job->done && !free_now) {
		job->user_gone = true; /* its feeder frees it (fed.c) */
	} else if (!free_now) {
		/* Tasks not sent yet end here; those running finish unseen. */
		size_t dropped = job->n - job->cursor;
		for (size_t k = job->redo_head; k < job->nredo; k++)
			dropped += job->redo[k].count;
		job->cursor = job->n;
		job->redo_head = job->nredo = 0;
		job->remaining -= dropped;
		mpg__progress_cancelled(job, dropped);
		job->prog.fn = NULL; /* nobody to tell: the bar, if any, ends */
		job->user_gone = true;
		for (size_t i = job->ready_head; i < job->nready; i++) {
			mpg__error_free(job->ready[i].err);
			blob_unref(job->ready[i].blob);
		}
		job->ready_head = job->nready = 0;
		mpg__job_maybe_done(p, job); /* frees it if nothing is running */
		mpg__pool_wake(p);
	}
	pthread_mutex_unlock(&p->lock);
	if (free_now)
		mpg__job_free(job);
	free(it);
	mpg__pool_unref(p);
}

/* ---- submit -------------------------------------------------------------- */

MPG_EXPORT int mpg_submit(mpg_pool *p, mpg_task_fn fn, const void *in, size_t len,
			  const mpg_options *opts, mpg_result_fn on_result, mpg_error_fn on_error,
			  void *userdata, mpg_future **ret)
{
	int r = check_call(p, fn);
	if (r < 0)
		return r;
	if (!in && len)
		return -EINVAL;
	struct job *job = mpg__job_new(JOB_SUBMIT, fn, 1);
	mpg_future *f = ret && job ? mpg__future_new(p, job) : NULL;
	if (!job || (ret && !f)) {
		r = -ENOMEM;
		goto fail;
	}
	r = mpg__callcfg_resolve(p, opts, &job->cfg);
	if (r < 0)
		goto fail;
	if (len >= p->opts.shm_threshold) {
		int fd;
		uint64_t off = 0;
		r = mpg__shm_lookup(in, len, &fd, &off);
		if (r == 0)
			r = mpg__memfd_from_bytes(in, len, &fd);
		if (r < 0)
			goto fail;
		job->owned_fd = fd;
		job->owned_off = off;
		job->owned_len = len;
	} else {
		job->owned_in = malloc(len ? len : 1);
		if (!job->owned_in) {
			r = -ENOMEM;
			goto fail;
		}
		if (len)
			memcpy(job->owned_in, in, len);
		job->owned_len = len;
	}
	job->on_result = on_result;
	job->on_error = on_error;
	job->userdata = userdata;
	job->user_gone = !ret;
	r = mpg__pool_enqueue(p, job);
	if (r < 0)
		goto fail;
	if (ret)
		*ret = f;
	return 0;
fail:
	if (f) {
		free(f);
		mpg__pool_unref(p);
	}
	mpg__job_free(job);
	return r;
}

MPG_EXPORT int mpg_future_wait(mpg_future *f, int timeout_ms)
{
	if (!f)
		return -EINVAL;
	struct mpg_pool *p = f->pool;
	if (mpg__on_dispatcher(p))
		return -EDEADLK;
	struct timespec dl;
	mpg__deadline_after_ms(&dl, timeout_ms);
	int r = 0;
	pthread_mutex_lock(&p->lock);
	while (!f->job->done && r == 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&p->cond, &p->lock);
		else if (pthread_cond_timedwait(&p->cond, &p->lock, &dl) == ETIMEDOUT)
			r = f->job->done ? 0 : -ETIMEDOUT;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

MPG_EXPORT int mpg_future_result(mpg_future *f, const void **data, size_t *len)
{
	if (!f)
		return -EINVAL;
	pthread_mutex_lock(&f->pool->lock);
	bool done = f->job->done;
	pthread_mutex_unlock(&f->pool->lock);
	if (!done)
		return -EINPROGRESS;
	if (f->job->error)
		return -EIO;
	if (data)
		*data = f->job->slots[0].data;
	if (len)
		*len = f->job->slots[0].len;
	return 0;
}

MPG_EXPORT const mpg_error *mpg_future_error(mpg_future *f)
{
	if (!f)
		return NULL;
	pthread_mutex_lock(&f->pool->lock);
	const mpg_error *e = f->job->done ? f->job->error : NULL;
	pthread_mutex_unlock(&f->pool->lock);
	return e;
}

MPG_EXPORT size_t mpg_future_task(const mpg_future *f)
{
	return f ? (size_t)f->job->base : 0; /* set before the future was returned */
}

MPG_EXPORT void mpg_future_free(mpg_future *f)
{
	if (!f)
		return;
	struct mpg_pool *p = f->pool;
	pthread_mutex_lock(&p->lock);
	bool free_now = f->job->done && !f->job->fed_held;
	if (!free_now)
		f->job->user_gone = true; /* the dispatcher (or feeder) frees it when it ends */
	pthread_mutex_unlock(&p->lock);
	if (free_now)
		mpg__job_free(f->job);
	free(f);
	mpg__pool_unref(p);
}
