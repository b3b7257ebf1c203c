/* SPDX-License-Identifier: MIT */
/* The calls of a cluster on rank 0: mpg_cluster_map_array(),
 * mpg_cluster_map(), mpg_cluster_imap_unordered(), mpg_cluster_submit()
 * and mpg_cluster_wait(). Each makes a call (cluster-call.c) that the
 * driver (agents) and the runner (rank 0's pool) take chunks of; map,
 * imap and submit are fed calls of rank 0's pool (fed-int.h), read by the
 * user with the handles of a local pool; map_array writes in place and
 * calls its error callback itself, in input order, at the end. */
#include "cluster-mpi-int.h"
#include "fed-int.h"
#include "pool-int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int check_cluster(mpg_cluster *cl, mpg_task_fn fn)
{
	if (!cl || !fn)
		return -EINVAL;
	if (cl->pid != getpid())
		return -ECHILD;
	/* Broken (MPI failed) or aborted: refused before anything starts. */
	pthread_mutex_lock(&cl->lock);
	int r = cl->broken ? cl->broken : cl->aborted ? -ESHUTDOWN : 0;
	pthread_mutex_unlock(&cl->lock);
	return r;
}

/* In a callback of rank 0's pool: a call that waits would wait for it. */
static bool on_dispatcher(const mpg_cluster *cl)
{
	const struct mpg_pool *p = cl->pool;
	return p->thread_started && pthread_equal(pthread_self(), p->thread);
}

static int cmp_task(const void *a, const void *b)
{
	size_t x = (*(mpg_error *const *)a)->task, y = (*(mpg_error *const *)b)->task;
	return x < y ? -1 : x > y;
}

MPG_EXPORT int mpg_cluster_map_array(mpg_cluster *cl, mpg_task_fn fn, const void *in,
				     size_t in_size, size_t n, void *out, size_t out_size,
				     size_t chunksize, mpg_error_fn on_error, void *userdata)
{
	int r = check_cluster(cl, fn);
	if (r < 0)
		return r;
	if (n && (!in || !out || !in_size))
		return -EINVAL;
	if (out_size > MPG__CL_MAX_OUT)
		return -EMSGSIZE;
	if (on_dispatcher(cl))
		return -EDEADLK;
	if (!n)
		return 0;
	if ((chunksize && in_size && chunksize > INT_MAX / in_size) ||
	    (chunksize && out_size && chunksize > INT_MAX / out_size))
		return -EMSGSIZE;
	struct mpg__cl_call c = {.fn = fn, .in = in, .out = out, .in_size = in_size,
				 .out_size = out_size, .n = n};
	r = mpg__fnref_of(fn, &c.ref);
	if (r == 0)
		r = mpg__cl_call_start(cl, &c, chunksize, NULL);
	if (r < 0)
		return r;
	pthread_mutex_lock(&cl->lock);
	while (!c.done)
		pthread_cond_wait(&cl->cond, &cl->lock);
	pthread_mutex_unlock(&cl->lock);
	r = c.err;
	if (c.nerrs)
		qsort(c.errs, c.nerrs, sizeof *c.errs, cmp_task);
	for (size_t i = 0; on_error && !r && i < c.nerrs; i++)
		on_error(c.errs[i], userdata);
	size_t failed = c.nerrs;
	mpg__cl_call_clear(&c);
	if (r < 0)
		return r;
	return failed > INT_MAX ? INT_MAX : (int)failed;
}

static int check_inputs(const mpg_buf *inputs, size_t n)
{
	if (n && !inputs)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!inputs[i].data && inputs[i].len)
			return -EINVAL;
	return 0;
}

/* A fed call's part of the cluster; the fed job was made. On failure
 * (out of memory) its tasks end there, failed, and it is released. */
static int start_fed(mpg_cluster *cl, struct mpg__cl_call *c, const mpg_options *opts)
{
	int r = mpg__cl_call_start(cl, c, 0, opts);
	if (r < 0) {
		mpg_error *e = mpg__error_new(MPG_ERR_CANCELLED, c->base, -1, 0, -r, 0, 1,
					      "the call could not be started on the cluster");
		for (size_t i = 0; i < c->n; i++)
			mpg__fed_fail(c->fed, i, i + 1 < c->n ? mpg__error_dup(e) : e);
		if (!c->n)
			mpg__error_free(e);
		mpg__fed_release(c->fed);
		free(c);
	}
	return r;
}

static struct mpg__cl_call *new_call(mpg_cluster *cl, mpg_task_fn fn, int *r)
{
	struct mpg__cl_call *c = calloc(1, sizeof *c);
	*r = c ? mpg__fnref_of(fn, &c->ref) : -ENOMEM;
	if (*r < 0) {
		free(c);
		return NULL;
	}
	(void)cl;
	c->fn = fn;
	return c;
}

MPG_EXPORT int mpg_cluster_map(mpg_cluster *cl, mpg_task_fn fn, const mpg_buf *inputs, size_t n,
			       const mpg_options *opts, mpg_results **ret)
{
	int r = check_cluster(cl, fn);
	if (r == 0)
		r = check_inputs(inputs, n);
	if (r < 0)
		return r;
	struct mpg__cl_call *c = new_call(cl, fn, &r);
	if (!c)
		return r;
	c->inputs = inputs;
	c->n = n;
	/* The call: its options checked and its callbacks run by rank 0's
	 * pool, as for mpg_map(). */
	struct job *job;
	r = mpg__fed_map(cl->pool, n, opts, &job);
	if (r < 0) {
		free(c);
		return r;
	}
	c->fed = job; /* c is the cluster's from here: it frees it */
	r = start_fed(cl, c, opts);
	int w = mpg__fed_map_wait(job, r < 0 ? NULL : ret);
	return r < 0 ? r : w;
}

MPG_EXPORT int mpg_cluster_imap_unordered(mpg_cluster *cl, mpg_task_fn fn, const mpg_buf *inputs,
					  size_t n, const mpg_options *opts, mpg_iter **ret)
{
	int r = check_cluster(cl, fn);
	if (r == 0)
		r = ret ? check_inputs(inputs, n) : -EINVAL;
	if (r < 0)
		return r;
	struct mpg__cl_call *c = new_call(cl, fn, &r);
	if (!c)
		return r;
	c->inputs = inputs;
	c->n = n;
	mpg_iter *it;
	r = mpg__fed_imap(cl->pool, n, opts, &c->fed, &it);
	if (r < 0) {
		free(c);
		return r;
	}
	r = start_fed(cl, c, opts);
	if (r < 0) {
		mpg_iter_free(it);
		return r;
	}
	*ret = it;
	return 0;
}

MPG_EXPORT int mpg_cluster_submit(mpg_cluster *cl, mpg_task_fn fn, const void *in, size_t len,
				  const mpg_options *opts, mpg_result_fn on_result,
				  mpg_error_fn on_error, void *userdata, mpg_future **ret)
{
	int r = check_cluster(cl, fn);
	if (r == 0 && !in && len)
		r = -EINVAL;
	if (r < 0)
		return r;
	struct mpg__cl_call *c = new_call(cl, fn, &r);
	if (!c)
		return r;
	/* The input is copied now: the caller may reuse it at once. */
	c->owned = malloc(len ? len : 1);
	if (!c->owned) {
		free(c);
		return -ENOMEM;
	}
	if (len)
		memcpy(c->owned, in, len);
	c->one = (mpg_buf){c->owned, len};
	c->inputs = &c->one;
	c->n = 1;
	size_t number = 0;
	mpg_future *f = NULL;
	r = mpg__fed_submit(cl->pool, opts, on_result, on_error, userdata, &c->fed, &number,
			    ret ? &f : NULL);
	if (r < 0) {
		free(c->owned);
		free(c);
		return r;
	}
	c->base = number; /* its task's number: mpg_task_index() on any rank */
	r = start_fed(cl, c, opts);
	if (r < 0) {
		mpg_future_free(f);
		return r;
	}
	if (ret)
		*ret = f;
	return 0;
}

MPG_EXPORT int mpg_cluster_wait(mpg_cluster *cl, int timeout_ms)
{
	if (!cl)
		return -EINVAL;
	if (cl->pid != getpid())
		return -ECHILD;
	return mpg_pool_wait(cl->pool, timeout_ms);
}
