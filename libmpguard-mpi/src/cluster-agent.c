/* SPDX-License-Identifier: MIT */
/* The node agent of a non-zero rank: takes chunks from rank 0 over MPI,
 * runs each on the rank's own pool (which isolates, replaces and reports
 * failing workers as anywhere in libmpguard, backtraces symbolized here),
 * and sends outputs and failures back. One chunk at a time: the pool
 * spreads it over the rank's workers; rank 0 keeps the next one queued. */
#include "cluster-log-int.h"
#include "cluster-mpi-int.h"
#include "pool-int.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

int mpg__errors_to_wire(mpg_results *res, struct mpg__cl_wire_error **ret, uint32_t *n)
{
	size_t nerr = 0;
	const mpg_error *const *errs = res ? mpg_results_errors(res, &nerr) : NULL;
	*ret = NULL;
	*n = 0;
	if (!errs || !nerr)
		return 0;
	struct mpg__cl_wire_error *w = calloc(nerr, sizeof *w);
	if (!w)
		return -ENOMEM;
	for (size_t i = 0; i < nerr; i++) {
		const mpg_error *e = errs[i];
		w[i] = (struct mpg__cl_wire_error){
			.kind = (uint32_t)e->kind, .worker = e->worker, .pid = e->pid,
			.code = e->code, .sig = e->sig, .attempts = e->attempts,
			.has_fault = e->has_fault, .si_code = e->si_code, .addr = e->addr,
			.task = e->task, .message = e->message, .backtrace = e->backtrace,
		};
	}
	*ret = w;
	*n = (uint32_t)nerr;
	return 0;
}

int mpg__cl_call_options(const struct mpg__cl_chunk *c, mpg_options **ret)
{
	mpg_options *o = NULL;
	int r = mpg_options_new(&o);
	if (r == 0 && c->ctx_len)
		r = mpg_options_set_context(o, c->ctx, c->ctx_len);
	/* Always a policy of the call's own: never the pool's default, whose
	 * MPG_ABORT would stop this rank's pool for good (rank 0 decides). */
	if (r == 0)
		r = mpg_options_set_policy(o, c->retries ? MPG_RETRY : MPG_CONTINUE, c->retries);
	if (r == 0 && c->timeout_ms)
		r = mpg_options_set_timeout(o, c->timeout_ms);
	if (r < 0) {
		mpg_options_free(o);
		return r;
	}
	/* The chunk's task 0 is task `first` of the whole call: for
	 * mpg_task_index() and the errors' tasks (OPT_BASE, pool-int.h). */
	o->set |= OPT_BASE;
	o->base = c->first;
	*ret = o;
	return 0;
}

/* Runs a decoded chunk on the pool: r's outputs (in *outputs or *bufs,
 * malloc()ed) and errors (*errs), or a status. */
static int run_decoded(mpg_pool *pool, const struct mpg__cl_chunk *c, struct mpg__cl_result *r,
		       uint8_t **outputs, mpg_buf **bufs, mpg_results **res,
		       struct mpg__cl_wire_error **errs)
{
	mpg_task_fn fn = NULL;
	int status = mpg__fnref_resolve(&c->fn, &fn);
	mpg_options *o = NULL;
	if (!status)
		status = mpg__cl_call_options(c, &o);
	if (status)
		return status;
	int m;
	if (c->flags & MPG__CL_BUFS) {
		mpg_buf *in = malloc((c->count ? c->count : 1) * sizeof *in);
		*bufs = calloc(c->count ? c->count : 1, sizeof **bufs);
		if (!in || !*bufs) {
			free(in);
			mpg_options_free(o);
			return -ENOMEM;
		}
		uint64_t off = 0;
		for (uint64_t i = 0; i < c->count; i++)
			in[i] = mpg__cl_chunk_input(c, i, &off);
		m = mpg_map(pool, fn, in, c->count, o, res);
		free(in);
		for (uint64_t i = 0; m == 0 && i < c->count; i++)
			(void)mpg_results_get(*res, i, &(*bufs)[i].data, &(*bufs)[i].len);
		r->bufs = *bufs;
	} else {
		*outputs = malloc(c->count * c->out_size + 1);
		m = *outputs ? mpg_map_array(pool, fn, c->in, c->in_size, c->count, *outputs,
					     c->out_size, o, res) :
			       -ENOMEM;
		r->out = *outputs;
	}
	mpg_options_free(o);
	return m < 0 ? m : mpg__errors_to_wire(*res, errs, &r->nerrors);
}

/* Runs one chunk message; the answer in *out. */
static int run_chunk(mpg_pool *pool, int rank, const char *host, const uint8_t *msg,
		     size_t len, uint8_t **out, size_t *out_len)
{
	struct mpg__cl_chunk *c = malloc(sizeof *c);
	if (!c)
		return -ENOMEM;
	struct mpg__cl_result r = {.rank = rank, .host = host};
	int status = mpg__cl_chunk_decode(msg, len, c);
	if (status < 0) {
		free(c);
		return status; /* nothing to answer: rank 0 sent garbage */
	}
	r.first = c->first;
	r.count = c->count;
	r.out_size = c->out_size;
	r.flags = c->flags;
	uint8_t *outputs = NULL;
	mpg_buf *bufs = NULL;
	mpg_results *res = NULL;
	struct mpg__cl_wire_error *errs = NULL;
	r.status = run_decoded(pool, c, &r, &outputs, &bufs, &res, &errs);
	if (r.status)
		r.nerrors = 0;
	int err = mpg__cl_result_encode(&r, errs, out, out_len);
	free(errs);
	mpg_results_free(res);
	free(outputs);
	free(bufs);
	free(c);
	return err;
}

/* An answer that says the chunk did not run: @status. */
static int status_answer(int rank, const char *host, const uint8_t *msg, size_t len, int status,
			 uint8_t **out, size_t *out_len)
{
	struct mpg__cl_chunk c;
	int r = mpg__cl_chunk_decode(msg, len, &c);
	if (r < 0)
		return r;
	struct mpg__cl_result res = {.rank = rank, .host = host, .status = status,
				     .first = c.first, .count = c.count, .out_size = c.out_size,
				     .flags = c.flags};
	return mpg__cl_result_encode(&res, NULL, out, out_len);
}

/* The agent: its main thread owns MPI; the chunk at hand runs on a thread
 * of its own, so that an ABORT (or rank 0's death) is seen while it runs;
 * the next chunk rank 0 sent waits here. */
struct agent {
	mpg_pool *pool;
	int rank;
	const char *host;
	int rank0_pidfd;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* the chunk ended */
	pthread_t th;
	bool running, finished, aborted;
	uint8_t *msg, *ans;
	size_t len, ans_len;
	int err;
	uint8_t *queue[MPG__CL_IN_FLIGHT];
	size_t queue_len[MPG__CL_IN_FLIGHT];
	unsigned nq;
	uint64_t beat_ns, next_beat; /* heartbeats while it holds chunks */
	uint64_t deadline_ns, heard0; /* rank 0 silent that long (it beats): dead */
};

static void *chunk_main(void *arg)
{
	struct agent *a = arg;
	uint8_t *ans = NULL;
	size_t ans_len = 0;
	int err = run_chunk(a->pool, a->rank, a->host, a->msg, a->len, &ans, &ans_len);
	pthread_mutex_lock(&a->lock);
	a->ans = ans;
	a->ans_len = ans_len;
	a->err = err;
	a->finished = true;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* While the agent waits: its chunk ended, or rank 0 died (its pidfd
 * readable: where Open MPI lets the job go on, orte_enable_recovery, no
 * STOP will ever come). */
static int agent_check(void *arg)
{
	struct agent *a = arg;
	pthread_mutex_lock(&a->lock);
	bool finished = a->finished;
	pthread_mutex_unlock(&a->lock);
	if (finished)
		return 1;
	struct pollfd p = {.fd = a->rank0_pidfd, .events = POLLIN};
	if (a->rank0_pidfd >= 0 && poll(&p, 1, 0) > 0)
		return 2;
	uint64_t now = mpg__cl_now_ns();
	if (a->deadline_ns && now - a->heard0 > a->deadline_ns)
		return 2; /* on another host: silence is all a death shows */
	(void)mpg__cl_log_pump(); /* the log records queued meanwhile */
	return a->running && a->beat_ns && now >= a->next_beat ? 3 : 0;
}

static void agent_nap(void *arg, long ns)
{
	struct agent *a = arg;
	pthread_mutex_lock(&a->lock);
	bool finished = a->finished;
	pthread_mutex_unlock(&a->lock);
	if (!finished)
		mpg__cl_cond_nap(&a->lock, &a->cond, ns);
}

static int send_answer(uint8_t *ans, size_t ans_len)
{
	if (ans_len > INT32_MAX) {
		free(ans);
		return -EMSGSIZE;
	}
	int r = MPI_Send(ans, (int)ans_len, MPI_BYTE, 0, MPG__TAG_RESULT, MPI_COMM_WORLD);
	free(ans);
	return r == MPI_SUCCESS ? 0 : -EIO;
}

/* The chunk thread ended: its answer to rank 0. */
static int finish_chunk(struct agent *a)
{
	pthread_join(a->th, NULL);
	a->running = a->finished = false;
	int r = a->err;
	if (r == 0 && a->ans_len > INT32_MAX) {
		/* Results too large for one message: the chunk fails whole. */
		free(a->ans);
		a->ans = NULL;
		r = status_answer(a->rank, a->host, a->msg, a->len, -EMSGSIZE, &a->ans, &a->ans_len);
	}
	free(a->msg);
	a->msg = NULL;
	if (r < 0)
		return r; /* rank 0 waits for an answer it will not get: MPI_Abort by the caller */
	/* Its records first: in rank 0's log when its map returns. */
	(void)mpg__cl_log_chunk_end();
	return send_answer(a->ans, a->ans_len);
}

/* Starts the next chunk waiting, if any and none runs. */
static int start_next(struct agent *a)
{
	if (a->running || !a->nq)
		return 0;
	a->msg = a->queue[0];
	a->len = a->queue_len[0];
	for (unsigned i = 1; i < a->nq; i++) {
		a->queue[i - 1] = a->queue[i];
		a->queue_len[i - 1] = a->queue_len[i];
	}
	a->nq--;
	if (pthread_create(&a->th, NULL, chunk_main, a) != 0) {
		free(a->msg);
		a->msg = NULL;
		return -EAGAIN; /* as any fatal error: MPI_Abort by the caller */
	}
	a->running = true;
	a->next_beat = mpg__cl_now_ns() + a->beat_ns;
	return 0;
}

/* A message from rank 0: 0 to go on, 1 to stop, or an error. */
static int handle(struct agent *a, int tag, uint8_t *msg, size_t len)
{
	if (tag == MPG__TAG_STOP) {
		free(msg);
		return 1;
	}
	if (tag == MPG__TAG_HEARTBEAT) {
		free(msg);
		return 0; /* rank 0 is alive */
	}
	if (tag == MPG__TAG_ABORT) {
		free(msg);
		if (!a->aborted) {
			/* Stop what runs now: the pool kills its workers, the
			 * chunk's map returns -ECANCELED; the pool stays down
			 * (another would fork from this MPI process). */
			a->aborted = true;
			mpg_pool_terminate(a->pool);
		}
		return 0;
	}
	if (tag != MPG__TAG_CHUNK) {
		free(msg);
		return -EBADMSG;
	}
	if (a->aborted) {
		uint8_t *ans = NULL;
		size_t ans_len = 0;
		int r = status_answer(a->rank, a->host, msg, len, -ECANCELED, &ans, &ans_len);
		free(msg);
		return r < 0 ? r : send_answer(ans, ans_len);
	}
	if (a->nq == MPG__CL_IN_FLIGHT) {
		free(msg);
		return -EPROTO; /* rank 0 keeps no more out */
	}
	a->queue[a->nq] = msg;
	a->queue_len[a->nq++] = len;
	return start_next(a);
}

int mpg__agent_run(mpg_pool *pool, int rank, const char *host, int rank0_pidfd, int deadline_ms)
{
	struct agent a = {.pool = pool, .rank = rank, .host = host, .rank0_pidfd = rank0_pidfd,
			  .beat_ns = (uint64_t)deadline_ms * 1000000u / 4,
			  .deadline_ns = (uint64_t)deadline_ms * 1000000u,
			  .heard0 = mpg__cl_now_ns()};
	pthread_mutex_init(&a.lock, NULL);
	mpg__cl_cond_init(&a.cond);
	int r = 0;
	while (r == 0) {
		MPI_Status st;
		int p = mpg__cl_probe(0, MPI_ANY_TAG, &st, agent_check, agent_nap, &a);
		if (p == 1) {
			int why = agent_check(&a);
			if (why == 3) {
				/* Alive: a chunk that runs long is not a silent rank. */
				a.next_beat = mpg__cl_now_ns() + a.beat_ns;
				r = MPI_Send(NULL, 0, MPI_BYTE, 0, MPG__TAG_HEARTBEAT, MPI_COMM_WORLD) ==
						    MPI_SUCCESS ? 0 : -EIO;
				continue;
			}
			if (why == 1)
				r = finish_chunk(&a);
			else
				r = -ECONNRESET;
			if (r == 0)
				r = start_next(&a);
			continue;
		}
		uint8_t *msg;
		size_t len;
		r = p < 0 ? -EIO : mpg__cl_recv(&st, &msg, &len);
		if (r)
			break;
		a.heard0 = mpg__cl_now_ns();
		r = handle(&a, st.MPI_TAG, msg, len);
	}
	/* A chunk still running (STOP comes after every answer, so only on
	 * an error or rank 0's death): it ends with the pool. */
	if (a.running) {
		mpg_pool_terminate(pool);
		pthread_join(a.th, NULL);
		free(a.ans);
		free(a.msg);
	}
	for (unsigned i = 0; i < a.nq; i++)
		free(a.queue[i]);
	pthread_cond_destroy(&a.cond);
	pthread_mutex_destroy(&a.lock);
	return r == 1 ? 0 : r;
}
