/* SPDX-License-Identifier: MIT */
/* A call's tasks over the ranks: its chunks, handed out in order to
 * whichever rank asks first (the driver for the agents, the runner for
 * rank 0's pool), each task's outcome taken once, a failed task run again
 * on another rank while its retries last. Outcomes of map, imap and
 * submit go to their fed call in rank 0's pool (fed-int.h), which the
 * user reads; map_array's outputs land in the caller's array and its
 * failures are kept for the caller. All under cl->lock but the runs. */
#include "cluster-mpi-int.h"
#include "fed-int.h"
#include "pool-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_MAX_BYTES (4u << 20)

/* Worker slots that take chunks now. Locked. */
static size_t live_slots(const mpg_cluster *cl)
{
	size_t slots = cl->local ? cl->workers[0] : 0;
	for (int i = 1; i < cl->ranks; i++)
		slots += cl->dead[i] ? 0 : cl->workers[i];
	return slots ? slots : cl->workers[0];
}

/* Where each chunk of a fed call starts: as c->chunks hands them out,
 * cut short where their inputs' bytes reach CHUNK_MAX_BYTES (a larger
 * input goes alone). */
static int cut_chunks(struct mpg__cl_call *c)
{
	size_t cap = 64, nc = 0;
	c->starts = malloc((cap + 1) * sizeof *c->starts);
	if (!c->starts)
		return -ENOMEM;
	size_t first, per;
	while (mpg__cl_chunks_take(&c->chunks, &first, &per)) {
		size_t count = 0, bytes = 0;
		while (count < per &&
		       (count == 0 || bytes + c->inputs[first + count].len <= CHUNK_MAX_BYTES)) {
			bytes += c->inputs[first + count].len;
			count++;
		}
		atomic_store(&c->chunks.cursor, first + count); /* the rest in the next */
		if (nc == cap) {
			size_t *a = realloc(c->starts, (2 * cap + 1) * sizeof *a);
			if (!a)
				return -ENOMEM;
			c->starts = a;
			cap *= 2;
		}
		c->starts[nc++] = first;
	}
	c->starts[nc] = c->n;
	c->nchunks = nc;
	return 0;
}

/* A call's settings: its options over the pool's defaults, which every
 * rank's pool shares (made from the same options in mpg_cluster_init()). */
static int settings(mpg_cluster *cl, struct mpg__cl_call *c, const mpg_options *opts,
		    size_t *chunksize)
{
	const mpg_options *d = &cl->pool->opts;
	const mpg_options *pol = opts && (opts->set & OPT_POLICY) ? opts : d;
	c->retries = pol->set & OPT_POLICY ? pol->retries : 0;
	const mpg_options *tmo = opts && (opts->set & OPT_TIMEOUT) ? opts : d;
	c->timeout_ms = tmo->set & OPT_TIMEOUT ? tmo->timeout_ms : 0;
	const mpg_options *cs = opts && (opts->set & OPT_CHUNKSIZE) ? opts : d;
	if (!*chunksize)
		*chunksize = cs->set & OPT_CHUNKSIZE ? cs->chunksize : 0;
	if (opts && (opts->set & OPT_CONTEXT) && opts->context_len) {
		if (opts->context_len > MPG__CL_MAX_CONTEXT)
			return -EMSGSIZE;
		if (!(c->ctx = malloc(opts->context_len)))
			return -ENOMEM;
		memcpy(c->ctx, opts->context, opts->context_len);
		c->ctx_len = (uint32_t)opts->context_len;
	}
	if (c->retries && c->n && !(c->attempts = calloc(c->n, sizeof *c->attempts)))
		return -ENOMEM;
	return 0;
}

void mpg__cl_call_clear(struct mpg__cl_call *c)
{
	free(c->starts);
	free(c->redo);
	free(c->attempts);
	free(c->ctx);
	free(c->owned);
	for (size_t i = 0; i < c->nerrs; i++)
		mpg__error_free(c->errs[i]);
	free(c->errs);
	c->starts = NULL, c->redo = NULL, c->attempts = NULL, c->ctx = NULL, c->owned = NULL;
	c->errs = NULL;
	c->nerrs = 0;
}

int mpg__cl_call_start(mpg_cluster *cl, struct mpg__cl_call *c, size_t chunksize,
		       const mpg_options *opts)
{
	int r = settings(cl, c, opts, &chunksize);
	pthread_mutex_lock(&cl->lock);
	if (r == 0 && cl->broken)
		r = cl->broken;
	if (r == 0 && cl->aborted)
		r = -ESHUTDOWN; /* as an aborted pool */
	if (r == 0) {
		/* Automatic: guided (cluster-chunk.c), the first a quarter of
		 * a worker slot's share, at most 4 MiB of inputs (or
		 * outputs) each. */
		size_t slots = live_slots(cl);
		size_t max = (c->n + MPG__CL_GUIDED * slots - 1) / (MPG__CL_GUIDED * slots);
		size_t per = c->fed ? 0 : (c->in_size > c->out_size ? c->in_size : c->out_size);
		if (per && max > CHUNK_MAX_BYTES / per)
			max = CHUNK_MAX_BYTES / per;
		mpg__cl_chunks_init(&c->chunks, c->n, chunksize, max ? max : 1, slots);
		if (c->fed)
			r = cut_chunks(c);
	}
	if (r < 0) {
		pthread_mutex_unlock(&cl->lock);
		mpg__cl_call_clear(c);
		return r;
	}
	if (cl->calls_tail)
		cl->calls_tail->next = c;
	else
		cl->calls = c;
	cl->calls_tail = c;
	/* A call of no task ends here. */
	c->out_chunks++;
	mpg__cl_piece_done(cl, c);
	pthread_cond_broadcast(&cl->cond);
	pthread_mutex_unlock(&cl->lock);
	atomic_store(&cl->kick, true);
	return 0;
}

static void unlink_call(mpg_cluster *cl, struct mpg__cl_call *c)
{
	struct mpg__cl_call **pp = &cl->calls, *prev = NULL;
	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = c->next;
	if (cl->calls_tail == c)
		cl->calls_tail = prev;
	c->next = NULL;
}

/* Locked: whether @c has tasks not handed out yet. */
static bool tasks_left(struct mpg__cl_call *c)
{
	return c->starts ? c->next_chunk < c->nchunks : mpg__cl_chunks_left(&c->chunks);
}

/* Locked: none of @c's tasks not handed out yet will be. */
static void hand_out_no_more(struct mpg__cl_call *c)
{
	c->next_chunk = c->nchunks;
	atomic_store(&c->chunks.cursor, c->n);
}

void mpg__cl_piece_done(mpg_cluster *cl, struct mpg__cl_call *c)
{
	c->out_chunks--;
	if (c->out_chunks || c->nredo || tasks_left(c))
		return;
	unlink_call(cl, c);
	if (c->fed) {
		/* Every task it took was fed: the user's handle takes over. */
		mpg__fed_release(c->fed);
		mpg__cl_call_clear(c);
		free(c);
	} else {
		c->done = true;
		pthread_cond_broadcast(&cl->cond);
	}
}

/* Locked: whether a rank other than @rank takes work now. */
static bool other_taker(const mpg_cluster *cl, int rank)
{
	if (rank != 0 && (cl->local || cl->ranks < 2))
		return true;
	for (int i = 1; i < cl->ranks; i++)
		if (i != rank && !cl->dead[i] && cl->workers[i])
			return true;
	return false;
}

struct mpg__cl_call *mpg__cl_pick(mpg_cluster *cl, int rank, size_t *first, size_t *count)
{
	for (struct mpg__cl_call *c = cl->calls, *next; c; c = next) {
		next = c->next;
		if (c->fed && (c->nredo || tasks_left(c)) && mpg__fed_cancelled(c->fed)) {
			/* The pool aborted: nothing more of it runs. */
			c->nredo = 0;
			hand_out_no_more(c);
			c->out_chunks++;
			mpg__cl_piece_done(cl, c);
			continue;
		}
		for (size_t k = 0; k < c->nredo; k++) {
			if (c->redo[k].avoid == rank && other_taker(cl, rank))
				continue;
			*first = c->redo[k].index;
			*count = 1;
			c->redo[k] = c->redo[--c->nredo];
			c->out_chunks++;
			return c;
		}
		if (c->starts) {
			if (c->next_chunk >= c->nchunks)
				continue;
			*first = c->starts[c->next_chunk];
			*count = c->starts[c->next_chunk + 1] - *first;
		} else if (!mpg__cl_chunks_take(&c->chunks, first, count)) {
			continue;
		}
		if (c->fed && !mpg__fed_take(c->fed, *first, *count)) {
			/* Its iterator was freed (or it was cancelled): the tasks
			 * not handed out were dropped with it. */
			hand_out_no_more(c);
			c->out_chunks++;
			mpg__cl_piece_done(cl, c);
			continue;
		}
		c->next_chunk++;
		c->out_chunks++;
		return c;
	}
	return NULL;
}

/* Locked: a final failure of a map_array call. */
static void keep_error(struct mpg__cl_call *c, mpg_error *e)
{
	if (c->nerrs == c->errs_cap) {
		size_t cap = c->errs_cap ? 2 * c->errs_cap : 16;
		mpg_error **a = realloc(c->errs, cap * sizeof *a);
		if (!a) {
			mpg__error_free(e);
			c->err = -ENOMEM;
			return;
		}
		c->errs = a;
		c->errs_cap = cap;
	}
	c->errs[c->nerrs++] = e;
}

void mpg__cl_task_failed(mpg_cluster *cl, struct mpg__cl_call *c, size_t index, mpg_error *e,
			 int rank)
{
	unsigned failed = c->attempts ? c->attempts[index] + 1u : 1u;
	if (c->attempts && failed <= c->retries &&
	    !(c->fed && mpg__fed_cancelled(c->fed))) {
		if (c->nredo == c->redo_cap) {
			size_t cap = c->redo_cap ? 2 * c->redo_cap : 16;
			struct mpg__cl_redo *a = realloc(c->redo, cap * sizeof *a);
			if (!a)
				goto final;
			c->redo = a;
			c->redo_cap = cap;
		}
		c->attempts[index]++;
		c->redo[c->nredo++] = (struct mpg__cl_redo){index, rank};
		if (e)
			e->attempts = failed;
		if (c->fed)
			mpg__fed_retrying(c->fed, index, e); /* counted, logged */
		else
			mpg__error_free(e);
		atomic_store(&cl->kick, true);
		pthread_cond_broadcast(&cl->cond);
		return;
	}
final:
	if (e)
		e->attempts = failed; /* its runs on every rank */
	if (!c->fed) {
		memset(c->out + index * c->out_size, 0, c->out_size);
		if (e)
			keep_error(c, e);
		else
			c->err = -ENOMEM;
		return;
	}
	mpg__fed_fail(c->fed, index, e);
}

void mpg__cl_fail_piece(mpg_cluster *cl, struct mpg__cl_call *c, size_t first, size_t count,
			int code, int rank, const char *host, const char *why)
{
	for (size_t t = first; t < first + count; t++) {
		mpg_error *e = mpg__error_new(MPG_ERR_CANCELLED, c->base + t, -1, 0, code, 0, 1, why);
		if (e && mpg__error_set_place(e, host, rank) < 0) {
			mpg__error_free(e);
			e = NULL;
		}
		mpg__cl_task_failed(cl, c, t, e, rank);
	}
}

/* An answer's error as an mpg_error, symbolized where it ran. */
static mpg_error *wire_error(const struct mpg__cl_wire_error *w, const char *host, int rank)
{
	mpg_error *e = mpg__error_new(w->kind, w->task, w->worker, w->pid, w->code, w->sig,
				      w->attempts, w->message);
	if (e && *w->backtrace && !(e->backtrace = strdup(w->backtrace))) {
		mpg__error_free(e);
		return NULL;
	}
	if (e && w->has_fault)
		mpg__error_set_fault(e, w->si_code, w->addr);
	if (e && mpg__error_set_place(e, host, rank) < 0) {
		mpg__error_free(e);
		return NULL;
	}
	return e;
}

int mpg__cl_take_answer(mpg_cluster *cl, struct mpg__cl_call *c, const struct mpg__cl_result *res,
			int rank)
{
	size_t first = res->first - c->base;
	if (res->status) {
		mpg__cl_fail_piece(cl, c, first, res->count, -res->status, rank, res->host,
				   res->status == -ESTALE ?
					   "the rank runs another build of the task's module" :
				   res->status == -ENOENT ? "the task function is not loaded on the rank" :
							    "the rank could not run the chunk");
		return 0;
	}
	bool *failed = calloc(res->count ? res->count : 1, sizeof *failed);
	if (!failed)
		return -ENOMEM;
	if (!c->fed)
		memcpy(c->out + first * c->out_size, res->out, res->count * c->out_size);
	size_t off = 0;
	for (uint32_t i = 0; i < res->nerrors; i++) {
		struct mpg__cl_wire_error w;
		mpg__cl_result_error(res, &off, &w);
		failed[w.task - res->first] = true;
		mpg__cl_task_failed(cl, c, w.task - c->base, wire_error(&w, res->host, rank), rank);
	}
	int r = 0;
	if (c->fed) {
		size_t *idx = malloc(res->count * sizeof *idx + 1);
		mpg_buf *outs = malloc(res->count * sizeof *outs + 1);
		size_t k = 0;
		uint64_t at = 0;
		for (uint64_t i = 0; idx && outs && i < res->count; i++) {
			mpg_buf b = mpg__cl_result_output(res, i, &at);
			if (failed[i])
				continue;
			idx[k] = first + i;
			outs[k++] = b;
		}
		r = idx && outs ? mpg__fed_ok(c->fed, k, idx, outs) : -ENOMEM;
		free(idx);
		free(outs);
	}
	free(failed);
	return r;
}

int mpg__cl_encode_piece(const struct mpg__cl_call *c, size_t first, size_t count, uint8_t **buf,
			 size_t *len)
{
	struct mpg__cl_chunk ch = {
		.fn = c->ref, .first = c->base + first, .count = count, .ctx = c->ctx,
		.ctx_len = c->ctx_len, .timeout_ms = c->timeout_ms,
	};
	if (c->fed) {
		ch.flags = MPG__CL_BUFS;
		ch.bufs = c->inputs + first;
	} else {
		ch.in_size = c->in_size;
		ch.out_size = c->out_size;
		ch.in = c->in + first * c->in_size;
	}
	return mpg__cl_chunk_encode(&ch, buf, len);
}

/* An error of rank 0's pool, for the call: its place. */
static mpg_error *placed(const mpg_cluster *cl, const mpg_error *err)
{
	mpg_error *e = mpg__error_dup(err);
	if (e && mpg__error_set_place(e, cl->host, 0) < 0) {
		mpg__error_free(e);
		e = NULL;
	}
	return e;
}

/* Runs a piece on rank 0's pool, unlocked; its outcomes taken locked. */
static void run_local(mpg_cluster *cl, struct mpg__cl_call *c, size_t first, size_t count)
{
	struct mpg__cl_chunk ch = {.first = c->base + first, .ctx = c->ctx, .ctx_len = c->ctx_len,
				   .timeout_ms = c->timeout_ms};
	mpg_options *o = NULL;
	mpg_results *res = NULL;
	int r = mpg__cl_call_options(&ch, &o);
	if (r == 0 && c->fed)
		r = mpg_map(cl->pool, c->fn, c->inputs + first, count, o, &res);
	else if (r == 0)
		r = mpg_map_array(cl->pool, c->fn, c->in + first * c->in_size, c->in_size, count,
				  c->out + first * c->out_size, c->out_size, o, &res);
	mpg_options_free(o);
	size_t *idx = r == 0 && c->fed ? malloc(count * sizeof *idx) : NULL;
	mpg_buf *outs = r == 0 && c->fed ? malloc(count * sizeof *outs) : NULL;
	pthread_mutex_lock(&cl->lock);
	if (r < 0) {
		mpg__cl_fail_piece(cl, c, first, count, -r, 0, cl->host,
				   "rank 0's pool could not run the chunk");
	} else {
		size_t k = 0;
		for (size_t i = 0; i < count; i++) {
			const mpg_error *err = mpg_results_error(res, i);
			if (err) {
				mpg__cl_task_failed(cl, c, first + i, placed(cl, err), 0);
			} else if (idx && outs) {
				idx[k] = first + i;
				(void)mpg_results_get(res, i, &outs[k].data, &outs[k].len);
				k++;
			}
		}
		if (c->fed && (!idx || !outs || mpg__fed_ok(c->fed, k, idx, outs) < 0))
			mpg__cl_fail_piece(cl, c, first, count, ENOMEM, 0, cl->host,
					   "out of memory on rank 0");
	}
	free(idx);
	free(outs);
	mpg_results_free(res);
	mpg__cl_piece_done(cl, c);
	pthread_mutex_unlock(&cl->lock);
}

/* Locked: whether rank 0's pool takes pieces now: when asked to, or
 * when no agent is left. */
static bool runs_local(const mpg_cluster *cl)
{
	return cl->local || !other_taker(cl, 0);
}

void *mpg__cl_runner_main(void *arg)
{
	mpg_cluster *cl = arg;
	pthread_mutex_lock(&cl->lock);
	while (!cl->stopping) {
		size_t first, count;
		struct mpg__cl_call *c = runs_local(cl) ? mpg__cl_pick(cl, 0, &first, &count) : NULL;
		if (!c) {
			pthread_cond_wait(&cl->cond, &cl->lock);
			continue;
		}
		pthread_mutex_unlock(&cl->lock);
		run_local(cl, c, first, count);
		pthread_mutex_lock(&cl->lock);
	}
	pthread_mutex_unlock(&cl->lock);
	return NULL;
}
