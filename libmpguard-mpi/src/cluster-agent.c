/* SPDX-License-Identifier: MIT */
/* The node agent of a non-zero rank: takes chunks from rank 0 over MPI,
 * runs each on the rank's own pool (which isolates, replaces and reports
 * failing workers as anywhere in libmpguard, backtraces symbolized here),
 * and sends outputs and failures back. One chunk at a time: the pool
 * spreads it over the rank's workers; rank 0 keeps the next one queued. */
#include "cluster-mpi-int.h"
#include "pool-int.h"

#include <errno.h>
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

/* Rank 0 died (its pidfd is readable): where Open MPI lets the job go on
 * (orte_enable_recovery), no STOP will ever come. */
static int rank0_died(void *arg)
{
	struct pollfd p = {.fd = *(int *)arg, .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}

int mpg__agent_run(mpg_pool *pool, int rank, const char *host, int rank0_pidfd)
{
	for (;;) {
		MPI_Status st;
		int p = mpg__cl_probe(0, MPI_ANY_TAG, &st, rank0_pidfd >= 0 ? rank0_died : NULL,
				      &rank0_pidfd);
		if (p == 1)
			return -ECONNRESET;
		if (p < 0)
			return -EIO;
		int len = 0;
		if (MPI_Get_count(&st, MPI_BYTE, &len) != MPI_SUCCESS || len < 0)
			return -EIO;
		uint8_t *msg = malloc(len ? (size_t)len : 1);
		if (!msg)
			return -ENOMEM;
		if (MPI_Recv(msg, len, MPI_BYTE, 0, st.MPI_TAG, MPI_COMM_WORLD,
			     MPI_STATUS_IGNORE) != MPI_SUCCESS) {
			free(msg);
			return -EIO;
		}
		if (st.MPI_TAG == MPG__TAG_STOP) {
			free(msg);
			return 0;
		}
		uint8_t *ans = NULL;
		size_t ans_len = 0;
		int r = st.MPI_TAG == MPG__TAG_CHUNK ?
				run_chunk(pool, rank, host, msg, (size_t)len, &ans, &ans_len) :
				-EBADMSG;
		free(msg);
		if (r < 0)
			return r; /* rank 0 waits for an answer it will not get: MPI_Abort by the caller */
		if (ans_len > INT32_MAX) {
			free(ans);
			return -EMSGSIZE;
		}
		r = MPI_Send(ans, (int)ans_len, MPI_BYTE, 0, MPG__TAG_RESULT, MPI_COMM_WORLD);
		free(ans);
		if (r != MPI_SUCCESS)
			return -EIO;
	}
}
