/* SPDX-License-Identifier: MIT */
/* mpg_cluster_map_array() and mpg_cluster_map() on rank 0: chunks go to
 * the agents over MPI, two in flight per agent (one running, the next
 * queued), and to rank 0's own pool from a thread of its own; both take
 * the next chunk from one counter, so faster ranks take more. Only the
 * calling thread uses MPI (MPI_THREAD_FUNNELED). map_array: outputs land
 * in the caller's array in place, failures are collected and reported in
 * input order at the end. map: outcomes are fed into a fed call of rank
 * 0's pool (fed-int.h), which makes them the user's mpg_results and runs
 * the callbacks on its dispatcher thread. */
#include "cluster-mpi-int.h"
#include "fed-int.h"
#include "pool-int.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IN_FLIGHT 2
#define CHUNKS_PER_WORKER 4
#define CHUNK_MAX_BYTES (4u << 20)

struct slot {
	uint8_t *buf;
	MPI_Request req;
	uint64_t first, count;
	bool busy;
};

struct cl_job {
	mpg_cluster *cl;
	mpg_task_fn fn;
	struct mpg__fnref ref;
	const uint8_t *in;
	uint8_t *out;
	size_t in_size, out_size, n, chunk, nchunks;
	/* mpg_cluster_map(): the inputs, where each chunk starts (nchunks + 1
	 * entries), the fed call, the chunks' call options */
	const mpg_buf *inputs;
	size_t *starts;
	struct job *fed;
	const void *ctx;
	uint32_t ctx_len, retries, timeout_ms;
	atomic_size_t next;
	pthread_mutex_t lock; /* errs */
	mpg_error **errs;
	size_t nerrs, cap;
	int err;      /* first fatal error of the call */
};

static int add_error(struct cl_job *j, mpg_error *e)
{
	if (!e)
		return -ENOMEM;
	pthread_mutex_lock(&j->lock);
	if (j->nerrs == j->cap) {
		size_t cap = j->cap ? 2 * j->cap : 16;
		mpg_error **a = realloc(j->errs, cap * sizeof *a);
		if (!a) {
			pthread_mutex_unlock(&j->lock);
			mpg__error_free(e);
			return -ENOMEM;
		}
		j->errs = a;
		j->cap = cap;
	}
	j->errs[j->nerrs++] = e;
	pthread_mutex_unlock(&j->lock);
	return 0;
}

static void set_err(struct cl_job *j, int err)
{
	pthread_mutex_lock(&j->lock);
	if (!j->err)
		j->err = err;
	pthread_mutex_unlock(&j->lock);
}

/* The chunk's tasks as failed without running: @why on @rank. */
static void fail_chunk(struct cl_job *j, uint64_t first, uint64_t count, int code, int rank,
		       const char *host, const char *why)
{
	if (!j->fed)
		memset(j->out + first * j->out_size, 0, count * j->out_size);
	for (uint64_t t = first; t < first + count; t++) {
		mpg_error *e = mpg__error_new(MPG_ERR_CANCELLED, t, -1, 0, code, 0, 0, why);
		if (e && mpg__error_set_place(e, host, rank) < 0) {
			mpg__error_free(e);
			e = NULL;
		}
		if (j->fed)
			mpg__fed_fail(j->fed, t, e);
		else if (add_error(j, e) < 0)
			set_err(j, -ENOMEM);
	}
}

/* Chunk @c: its first task and count. */
static void chunk_range(const struct cl_job *j, size_t c, size_t *first, size_t *count)
{
	if (j->starts) {
		*first = j->starts[c];
		*count = j->starts[c + 1] - j->starts[c];
	} else {
		*first = c * j->chunk;
		*count = j->n - *first < j->chunk ? j->n - *first : j->chunk;
	}
}

/* The next chunk's number, or nchunks when none is left (or the call
 * was cancelled: the pool aborted). */
static size_t next_chunk(struct cl_job *j)
{
	if (j->fed && mpg__fed_cancelled(j->fed))
		return j->nchunks;
	size_t c = atomic_fetch_add(&j->next, 1);
	return c < j->nchunks ? c : j->nchunks;
}

/* The options of a chunk's call on rank 0's pool (as an agent's). */
static int local_options(const struct cl_job *j, size_t first, mpg_options **ret)
{
	struct mpg__cl_chunk c = {.first = first, .ctx = j->ctx, .ctx_len = j->ctx_len,
				  .retries = j->retries, .timeout_ms = j->timeout_ms};
	return mpg__cl_call_options(&c, ret);
}

/* An error of rank 0's pool, for the call: its place. */
static mpg_error *placed(const struct cl_job *j, const mpg_error *err)
{
	mpg_error *e = mpg__error_dup(err);
	if (e && mpg__error_set_place(e, j->cl->host, 0) < 0) {
		mpg__error_free(e);
		e = NULL;
	}
	return e;
}

/* A chunk of mpg_cluster_map() on rank 0's pool, fed to the call. */
static void local_bufs(struct cl_job *j, size_t first, size_t count, mpg_options *o)
{
	mpg_results *res = NULL;
	int r = mpg_map(j->cl->pool, j->fn, j->inputs + first, count, o, &res);
	if (r < 0) {
		fail_chunk(j, first, count, -r, 0, j->cl->host, "rank 0's pool could not run the chunk");
		return;
	}
	size_t *idx = malloc(count * sizeof *idx);
	mpg_buf *outs = malloc(count * sizeof *outs);
	size_t k = 0;
	for (size_t i = 0; idx && outs && i < count; i++) {
		const mpg_error *err = mpg_results_error(res, i);
		if (err) {
			mpg__fed_fail(j->fed, first + i, placed(j, err));
			continue;
		}
		idx[k] = first + i;
		(void)mpg_results_get(res, i, &outs[k].data, &outs[k].len);
		k++;
	}
	if (!idx || !outs || mpg__fed_ok(j->fed, k, idx, outs) < 0)
		set_err(j, -ENOMEM);
	free(idx);
	free(outs);
	mpg_results_free(res);
}

/* Rank 0's share: chunks on the local pool. */
static void *local_main(void *arg)
{
	struct cl_job *j = arg;
	size_t c;
	while ((c = next_chunk(j)) < j->nchunks) {
		size_t first, count;
		chunk_range(j, c, &first, &count);
		mpg_options *o = NULL;
		int r = local_options(j, first, &o);
		if (r < 0) {
			fail_chunk(j, first, count, -r, 0, j->cl->host, "rank 0's pool could not run the chunk");
			continue;
		}
		if (j->fed) {
			local_bufs(j, first, count, o);
			mpg_options_free(o);
			continue;
		}
		mpg_results *res = NULL;
		r = mpg_map_array(j->cl->pool, j->fn, j->in + first * j->in_size, j->in_size,
				  count, j->out + first * j->out_size, j->out_size, o, &res);
		mpg_options_free(o);
		if (r < 0) {
			fail_chunk(j, first, count, -r, 0, j->cl->host, "rank 0's pool could not run the chunk");
			continue;
		}
		size_t nerr = 0;
		const mpg_error *const *errs = mpg_results_errors(res, &nerr);
		for (size_t i = 0; i < nerr; i++)
			if (add_error(j, placed(j, errs[i])) < 0)
				set_err(j, -ENOMEM);
		mpg_results_free(res);
	}
	return NULL;
}

/* Sends the next chunk to @rank in @s, if one is left: 1 sent, 0 none. */
static int send_next(struct cl_job *j, int rank, struct slot *s)
{
	size_t c = next_chunk(j);
	if (c >= j->nchunks)
		return 0;
	size_t first, count;
	chunk_range(j, c, &first, &count);
	struct mpg__cl_chunk ch = {
		.fn = j->ref, .first = first, .count = count, .ctx = j->ctx, .ctx_len = j->ctx_len,
		.retries = j->retries, .timeout_ms = j->timeout_ms,
	};
	if (j->fed) {
		ch.flags = MPG__CL_BUFS;
		ch.bufs = j->inputs + first;
	} else {
		ch.in_size = j->in_size;
		ch.out_size = j->out_size;
		ch.in = j->in + first * j->in_size;
	}
	size_t len = 0;
	int r = mpg__cl_chunk_encode(&ch, &s->buf, &len);
	if (r == 0 && len > INT_MAX) {
		free(s->buf);
		r = -EMSGSIZE;
	}
	if (r < 0) {
		fail_chunk(j, first, count, -r, rank, "", "the chunk could not be sent");
		return send_next(j, rank, s);
	}
	if (MPI_Isend(s->buf, (int)len, MPI_BYTE, rank, MPG__TAG_CHUNK, MPI_COMM_WORLD,
		      &s->req) != MPI_SUCCESS) {
		free(s->buf);
		return -EIO;
	}
	s->first = first;
	s->count = count;
	s->busy = true;
	return 1;
}

/* The results of an answer's tasks that did not fail, to the fed call. */
static int feed_outputs(struct cl_job *j, const struct mpg__cl_result *res, const bool *failed)
{
	size_t *idx = malloc((res->count ? res->count : 1) * sizeof *idx);
	mpg_buf *outs = malloc((res->count ? res->count : 1) * sizeof *outs);
	int r = idx && outs ? 0 : -ENOMEM;
	size_t k = 0;
	uint64_t off = 0;
	for (uint64_t i = 0; r == 0 && i < res->count; i++) {
		mpg_buf b = mpg__cl_result_output(res, i, &off);
		if (failed[i])
			continue;
		idx[k] = res->first + i;
		outs[k++] = b;
	}
	if (r == 0)
		r = mpg__fed_ok(j->fed, k, idx, outs);
	free(idx);
	free(outs);
	return r;
}

/* Takes in one agent's answer: its outputs and errors. */
static int take_result(struct cl_job *j, const uint8_t *msg, size_t len, int source,
		       struct slot *slots)
{
	struct mpg__cl_result res;
	if (mpg__cl_result_decode(msg, len, &res) < 0 || res.rank != source)
		return -EPROTO;
	struct slot *s = NULL;
	for (int i = 0; i < IN_FLIGHT; i++)
		if (slots[i].busy && slots[i].first == res.first && slots[i].count == res.count)
			s = &slots[i];
	if (!s || (res.flags & MPG__CL_BUFS) != (j->fed ? MPG__CL_BUFS : 0u) ||
	    (!res.status && !j->fed && res.out_size != j->out_size))
		return -EPROTO;
	MPI_Wait(&s->req, MPI_STATUS_IGNORE); /* it arrived: the agent answered it */
	free(s->buf);
	s->buf = NULL;
	s->busy = false;
	if (res.status) {
		fail_chunk(j, res.first, res.count, -res.status, source, res.host,
			   res.status == -ESTALE ? "the rank runs another build of the task's module" :
			   res.status == -ENOENT ? "the task function is not loaded on the rank" :
						   "the rank could not run the chunk");
		return 0;
	}
	bool *failed = j->fed ? calloc(res.count, sizeof *failed) : NULL;
	if (j->fed && !failed)
		return -ENOMEM;
	if (!j->fed)
		memcpy(j->out + res.first * j->out_size, res.out, res.count * j->out_size);
	size_t off = 0;
	int r = 0;
	for (uint32_t i = 0; i < res.nerrors && r == 0; i++) {
		struct mpg__cl_wire_error w;
		mpg__cl_result_error(&res, &off, &w);
		mpg_error *e = mpg__error_new(w.kind, w.task, w.worker, w.pid, w.code, w.sig,
					      w.attempts, w.message);
		if (e && *w.backtrace && !(e->backtrace = strdup(w.backtrace))) {
			mpg__error_free(e);
			e = NULL;
		}
		if (e && w.has_fault)
			mpg__error_set_fault(e, w.si_code, w.addr);
		if (e && mpg__error_set_place(e, res.host, source) < 0) {
			mpg__error_free(e);
			e = NULL;
		}
		if (j->fed) {
			failed[w.task - res.first] = true;
			mpg__fed_fail(j->fed, w.task, e);
		} else if (add_error(j, e) < 0) {
			r = -ENOMEM;
		}
	}
	if (j->fed && r == 0)
		r = feed_outputs(j, &res, failed);
	free(failed);
	return r;
}

static int cmp_task(const void *a, const void *b)
{
	size_t x = (*(mpg_error *const *)a)->task, y = (*(mpg_error *const *)b)->task;
	return x < y ? -1 : x > y;
}

/* Parks a dead rank's send buffer until MPI_Finalize(): MPI may still
 * hold it (there is no safe way to take back a send to a dead peer). */
static void park(mpg_cluster *cl, void *buf)
{
	void **a = realloc(cl->lost, (cl->nlost + 1) * sizeof *a);
	if (!a)
		return; /* leaked: freeing it under MPI would be worse */
	cl->lost = a;
	cl->lost[cl->nlost++] = buf;
}

struct watch {
	struct cl_job *j;
	struct slot *slots;
	int *outstanding;
};

/* While rank 0 waits: an agent on its host whose process ended (its
 * pidfd readable) is dead. Where Open MPI does not end the job for it
 * (orte_enable_recovery), the chunks it held fail as CANCELLED
 * (EHOSTDOWN) with its rank and host, and the map goes on without it. */
static int check_ranks(void *arg)
{
	struct watch *w = arg;
	mpg_cluster *cl = w->j->cl;
	int died = 0;
	for (int rank = 1; rank < cl->ranks; rank++) {
		if (cl->dead[rank] || cl->pidfd[rank] < 0)
			continue;
		struct pollfd p = {.fd = cl->pidfd[rank], .events = POLLIN};
		if (poll(&p, 1, 0) <= 0)
			continue;
		cl->dead[rank] = true;
		died = 1;
		for (int s = 0; s < IN_FLIGHT; s++) {
			struct slot *sl = &w->slots[rank * IN_FLIGHT + s];
			if (!sl->busy)
				continue;
			fail_chunk(w->j, sl->first, sl->count, EHOSTDOWN, rank, cl->hosts[rank],
				   "the rank died while it held the task");
			park(cl, sl->buf);
			sl->buf = NULL;
			sl->busy = false;
			(*w->outstanding)--;
		}
	}
	return died;
}

/* The agents' part, on the calling thread: 0 or a fatal error. */
static int drive(struct cl_job *j, struct slot *slots, int *outstanding)
{
	mpg_cluster *cl = j->cl;
	for (int s = 0; s < IN_FLIGHT; s++)
		for (int rank = 1; rank < cl->ranks; rank++) {
			if (!cl->workers[rank] || cl->dead[rank])
				continue;
			int r = send_next(j, rank, &slots[rank * IN_FLIGHT + s]);
			if (r < 0)
				return r;
			*outstanding += r;
		}
	while (*outstanding > 0) {
		MPI_Status st;
		int len = 0;
		struct watch w = {j, slots, outstanding};
		int p = mpg__cl_probe(MPI_ANY_SOURCE, MPG__TAG_RESULT, &st, check_ranks, &w);
		if (p == 1)
			continue;
		if (p < 0 || MPI_Get_count(&st, MPI_BYTE, &len) != MPI_SUCCESS || len < 0)
			return -EIO;
		uint8_t *msg = malloc(len ? (size_t)len : 1);
		if (!msg)
			return -ENOMEM;
		if (MPI_Recv(msg, len, MPI_BYTE, st.MPI_SOURCE, MPG__TAG_RESULT, MPI_COMM_WORLD,
			     MPI_STATUS_IGNORE) != MPI_SUCCESS) {
			free(msg);
			return -EIO;
		}
		int src = st.MPI_SOURCE;
		if (src > 0 && src < cl->ranks && cl->dead[src]) {
			free(msg); /* sent before it died: its chunks failed already */
			continue;
		}
		struct slot *mine = &slots[src * IN_FLIGHT];
		int r = src > 0 && src < cl->ranks ? take_result(j, msg, (size_t)len, src, mine) :
						      -EPROTO;
		free(msg);
		if (r < 0)
			return r;
		(*outstanding)--;
		for (int s = 0; s < IN_FLIGHT; s++)
			if (!mine[s].busy) {
				r = send_next(j, src, &mine[s]);
				if (r < 0)
					return r;
				*outstanding += r;
				break;
			}
	}
	return 0;
}

static size_t auto_chunk(const struct cl_job *j, size_t per)
{
	mpg_cluster *cl = j->cl;
	size_t slots = j->cl->local ? cl->workers[0] : 0;
	for (int i = 1; i < cl->ranks; i++)
		slots += cl->dead[i] ? 0 : cl->workers[i];
	size_t chunk = (j->n + CHUNKS_PER_WORKER * slots - 1) / (CHUNKS_PER_WORKER * (slots ? slots : 1));
	if (per && chunk > CHUNK_MAX_BYTES / per)
		chunk = CHUNK_MAX_BYTES / per;
	return chunk ? chunk : 1;
}

/* Runs the chunks of @j over every rank: 0 or a fatal error. */
static int run(struct cl_job *j)
{
	mpg_cluster *cl = j->cl;
	atomic_init(&j->next, 0);
	struct slot *slots = calloc((size_t)cl->ranks * IN_FLIGHT, sizeof *slots);
	if (!slots)
		return -ENOMEM;
	pthread_t local;
	bool local_on = cl->local || cl->ranks < 2;
	if (local_on && pthread_create(&local, NULL, local_main, j) != 0)
		local_on = false;
	int outstanding = 0;
	int r = drive(j, slots, &outstanding);
	if (!local_on && r == 0 && atomic_load(&j->next) < j->nchunks)
		local_main(j); /* no thread and no agent: run them here */
	if (local_on)
		pthread_join(local, NULL);
	/* On a fatal error chunks may still be in flight: their tasks fail,
	 * their buffers stay with MPI (the job is broken; DESIGN.md, open
	 * work). */
	for (int i = 0; i < cl->ranks * IN_FLIGHT; i++) {
		if (r == 0)
			free(slots[i].buf);
		else if (slots[i].busy)
			fail_chunk(j, slots[i].first, slots[i].count, -r, i / IN_FLIGHT,
				   cl->hosts[i / IN_FLIGHT], "the cluster map failed");
	}
	free(slots);
	return r ? r : j->err;
}

MPG_EXPORT int mpg_cluster_map_array(mpg_cluster *cl, mpg_task_fn fn, const void *in,
				     size_t in_size, size_t n, void *out, size_t out_size,
				     size_t chunksize, mpg_error_fn on_error, void *userdata)
{
	if (!cl || !fn || (n && (!in || !out || !in_size)))
		return -EINVAL;
	if (cl->pid != getpid())
		return -ECHILD;
	if (out_size > MPG__CL_MAX_OUT)
		return -EMSGSIZE;
	if (!n)
		return 0;
	struct cl_job j = {.cl = cl, .fn = fn, .in = in, .out = out, .in_size = in_size,
			.out_size = out_size, .n = n};
	int r = mpg__fnref_of(fn, &j.ref);
	if (r < 0)
		return r;
	j.chunk = chunksize ? chunksize : auto_chunk(&j, in_size > out_size ? in_size : out_size);
	if ((j.in_size && j.chunk > INT_MAX / j.in_size) ||
	    (j.out_size && j.chunk > INT_MAX / j.out_size))
		return -EMSGSIZE;
	j.nchunks = (n + j.chunk - 1) / j.chunk;
	pthread_mutex_init(&j.lock, NULL);
	r = run(&j);
	if (j.nerrs)
		qsort(j.errs, j.nerrs, sizeof *j.errs, cmp_task);
	for (size_t i = 0; i < j.nerrs; i++) {
		if (on_error && !r)
			on_error(j.errs[i], userdata);
		mpg__error_free(j.errs[i]);
	}
	free(j.errs);
	pthread_mutex_destroy(&j.lock);
	if (r < 0)
		return r;
	return j.nerrs > INT_MAX ? INT_MAX : (int)j.nerrs;
}

/* Where each chunk of mpg_cluster_map() starts: @per inputs, fewer where
 * their bytes reach CHUNK_MAX_BYTES (a larger input goes alone). */
static int cut_chunks(struct cl_job *j, size_t per)
{
	size_t cap = (j->n + per - 1) / per + 1, nc = 0;
	j->starts = malloc((cap + 1) * sizeof *j->starts);
	if (!j->starts)
		return -ENOMEM;
	size_t first = 0;
	while (first < j->n) {
		size_t count = 0, bytes = 0;
		while (first + count < j->n && count < per &&
		       (count == 0 || bytes + j->inputs[first + count].len <= CHUNK_MAX_BYTES)) {
			bytes += j->inputs[first + count].len;
			count++;
		}
		if (nc == cap) {
			size_t *a = realloc(j->starts, (2 * cap + 1) * sizeof *a);
			if (!a)
				return -ENOMEM;
			j->starts = a;
			cap *= 2;
		}
		j->starts[nc++] = first;
		first += count;
	}
	j->starts[nc] = j->n;
	j->nchunks = nc;
	return 0;
}

/* A call's settings (its options over the pool's, which every rank's
 * pool shares: made from the same options in mpg_cluster_init()). */
static int call_settings(struct cl_job *j, const mpg_options *opts, size_t *chunksize)
{
	const mpg_options *d = &j->cl->pool->opts;
	const mpg_options *pol = opts && (opts->set & OPT_POLICY) ? opts : d;
	j->retries = pol->set & OPT_POLICY ? pol->retries : 0;
	const mpg_options *tmo = opts && (opts->set & OPT_TIMEOUT) ? opts : d;
	j->timeout_ms = tmo->set & OPT_TIMEOUT ? tmo->timeout_ms : 0;
	const mpg_options *cs = opts && (opts->set & OPT_CHUNKSIZE) ? opts : d;
	*chunksize = cs->set & OPT_CHUNKSIZE ? cs->chunksize : 0;
	if (opts && (opts->set & OPT_CONTEXT)) {
		if (opts->context_len > MPG__CL_MAX_CONTEXT)
			return -EMSGSIZE;
		j->ctx = opts->context;
		j->ctx_len = (uint32_t)opts->context_len;
	}
	return 0;
}

MPG_EXPORT int mpg_cluster_map(mpg_cluster *cl, mpg_task_fn fn, const mpg_buf *inputs, size_t n,
			       const mpg_options *opts, mpg_results **ret)
{
	if (!cl || !fn || (n && !inputs))
		return -EINVAL;
	if (cl->pid != getpid())
		return -ECHILD;
	for (size_t i = 0; i < n; i++)
		if (!inputs[i].data && inputs[i].len)
			return -EINVAL;
	struct cl_job j = {.cl = cl, .fn = fn, .inputs = inputs, .n = n};
	int r = mpg__fnref_of(fn, &j.ref);
	size_t chunksize = 0;
	if (r == 0)
		r = call_settings(&j, opts, &chunksize);
	if (r < 0)
		return r;
	/* The call: its options checked and its callbacks run by rank 0's
	 * pool, as for mpg_map(). */
	r = mpg__fed_map(cl->pool, n, opts, &j.fed);
	if (r < 0)
		return r;
	if (n) {
		size_t bytes = 0;
		for (size_t i = 0; i < n; i++)
			bytes += inputs[i].len;
		r = cut_chunks(&j, chunksize ? chunksize : auto_chunk(&j, bytes / n + 1));
		pthread_mutex_init(&j.lock, NULL);
		if (r == 0)
			r = run(&j);
		pthread_mutex_destroy(&j.lock);
		free(j.starts);
		/* Whatever did not run (a fatal error) ends cancelled. */
		size_t c;
		while (r < 0 && (c = next_chunk(&j)) < j.nchunks) {
			size_t first, count;
			chunk_range(&j, c, &first, &count);
			fail_chunk(&j, first, count, -r, 0, cl->host, "the cluster map failed");
		}
	}
	if (r < 0) {
		(void)mpg__fed_map_wait(j.fed, NULL);
		return r;
	}
	return mpg__fed_map_wait(j.fed, ret);
}
