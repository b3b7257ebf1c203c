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
#include <poll.h>
#include <stdlib.h>
#include <string.h>

int mpg__errors_to_wire(mpg_results *res, uint64_t first, struct mpg__cl_wire_error **ret,
			uint32_t *n)
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
			.task = first + e->task, .message = e->message, .backtrace = e->backtrace,
		};
	}
	*ret = w;
	*n = (uint32_t)nerr;
	return 0;
}

struct map_call {
	mpg_pool *pool;
	mpg_task_fn fn;
	const struct mpg__cl_chunk *c;
	uint8_t *outputs;
	mpg_results **res;
};

static int map_chunk(void *arg)
{
	struct map_call *m = arg;
	return mpg_map_array(m->pool, m->fn, m->c->in, m->c->in_size, m->c->count, m->outputs,
			     m->c->out_size, NULL, m->res);
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
	mpg_task_fn fn = NULL;
	uint8_t *outputs = NULL;
	mpg_results *res = NULL;
	struct mpg__cl_wire_error *errs = NULL;
	status = mpg__fnref_resolve(&c->fn, &fn);
	if (!status) {
		outputs = malloc(c->count * c->out_size + 1);
		status = outputs ? 0 : -ENOMEM;
	}
	if (!status) {
		/* Its log records go to rank 0 as it runs (cluster-log.c). */
		struct map_call call = {pool, fn, c, outputs, &res};
		int m = mpg__cl_log_run(c->first, map_chunk, &call);
		status = m < 0 ? m : mpg__errors_to_wire(res, c->first, &errs, &r.nerrors);
	}
	r.status = status;
	r.out = outputs;
	if (status)
		r.nerrors = 0;
	int err = mpg__cl_result_encode(&r, errs, out, out_len);
	free(errs);
	mpg_results_free(res);
	free(outputs);
	free(c);
	return err;
}

/* Rank 0 died (its pidfd is readable): where Open MPI lets the job go on
 * (orte_enable_recovery), no STOP will ever come. */
static int rank0_died(void *arg)
{
	struct pollfd p = {.fd = *(int *)arg, .events = POLLIN};
	if (p.fd >= 0 && poll(&p, 1, 0) > 0)
		return 1;
	(void)mpg__cl_log_pump(); /* and, while waiting, send the logs */
	return 0;
}

int mpg__agent_run(mpg_pool *pool, int rank, const char *host, int rank0_pidfd)
{
	for (;;) {
		MPI_Status st;
		int p = mpg__cl_probe(0, MPI_ANY_TAG, &st, rank0_died, &rank0_pidfd);
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
