/* SPDX-License-Identifier: MIT */
/* mpg_cluster_map_array() on rank 0: chunks go to the agents over MPI, two
 * in flight per agent (one running, the next queued), and to rank 0's own
 * pool from a thread of its own; both take the next chunk from one
 * counter, so faster ranks take more (guided sizes: cluster-chunk.c).
 * Only the calling thread uses MPI (MPI_THREAD_FUNNELED). Outputs land in the caller's array in place;
 * failures are collected and reported in input order at the end. */
#include "cluster-chunk-int.h"
#include "cluster-mpi-int.h"
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
	size_t in_size, out_size, n;
	struct mpg__cl_chunks chunks; /* which tasks go next, guided */
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
	memset(j->out + first * j->out_size, 0, count * j->out_size);
	for (uint64_t t = first; t < first + count; t++) {
		mpg_error *e = mpg__error_new(MPG_ERR_CANCELLED, t, -1, 0, code, 0, 0, why);
		if (e && mpg__error_set_place(e, host, rank) < 0) {
			mpg__error_free(e);
			e = NULL;
		}
		if (add_error(j, e) < 0)
			set_err(j, -ENOMEM);
	}
}

/* Rank 0's share: chunks on the local pool. */
static void *local_main(void *arg)
{
	struct cl_job *j = arg;
	size_t first, count;
	while (mpg__cl_chunks_take(&j->chunks, &first, &count)) {
		mpg_results *res = NULL;
		int r = mpg_map_array(j->cl->pool, j->fn, j->in + first * j->in_size, j->in_size,
				      count, j->out + first * j->out_size, j->out_size, NULL, &res);
		if (r < 0) {
			fail_chunk(j, first, count, -r, 0, j->cl->host, "rank 0's pool could not run the chunk");
			continue;
		}
		size_t nerr = 0;
		const mpg_error *const *errs = mpg_results_errors(res, &nerr);
		for (size_t i = 0; i < nerr; i++) {
			mpg_error *e = mpg__error_dup(errs[i]);
			if (e) {
				e->task += first;
				if (mpg__error_set_place(e, j->cl->host, 0) < 0) {
					mpg__error_free(e);
					e = NULL;
				}
			}
			if (add_error(j, e) < 0)
				set_err(j, -ENOMEM);
		}
		mpg_results_free(res);
	}
	return NULL;
}

/* Sends the next chunk to @rank in @s, if one is left: 1 sent, 0 none. */
static int send_next(struct cl_job *j, int rank, struct slot *s)
{
	size_t first, count;
	if (!mpg__cl_chunks_take(&j->chunks, &first, &count))
		return 0;
	struct mpg__cl_chunk ch = {
		.fn = j->ref, .first = first, .count = count, .in_size = j->in_size,
		.out_size = j->out_size, .in = j->in + first * j->in_size,
	};
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
	if (!s || (!res.status && res.out_size != j->out_size))
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
	memcpy(j->out + res.first * j->out_size, res.out, res.count * j->out_size);
	size_t off = 0;
	for (uint32_t i = 0; i < res.nerrors; i++) {
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
		if (add_error(j, e) < 0)
			return -ENOMEM;
	}
	return 0;
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

/* The largest automatic chunk; *slots, the worker slots taking part. */
static size_t auto_chunk(const struct cl_job *j, size_t *slots_ret)
{
	mpg_cluster *cl = j->cl;
	size_t slots = j->cl->local ? cl->workers[0] : 0;
	for (int i = 1; i < cl->ranks; i++)
		slots += cl->dead[i] ? 0 : cl->workers[i];
	*slots_ret = slots;
	size_t chunk = (j->n + CHUNKS_PER_WORKER * slots - 1) / (CHUNKS_PER_WORKER * (slots ? slots : 1));
	size_t per = j->in_size > j->out_size ? j->in_size : j->out_size;
	if (per && chunk > CHUNK_MAX_BYTES / per)
		chunk = CHUNK_MAX_BYTES / per;
	return chunk ? chunk : 1;
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
	size_t nslots = 0, chunk = chunksize ? chunksize : auto_chunk(&j, &nslots);
	if ((j.in_size && chunk > INT_MAX / j.in_size) ||
	    (j.out_size && chunk > INT_MAX / j.out_size))
		return -EMSGSIZE;
	mpg__cl_chunks_init(&j.chunks, n, chunksize, chunk, nslots);
	pthread_mutex_init(&j.lock, NULL);
	struct slot *slots = calloc((size_t)cl->ranks * IN_FLIGHT, sizeof *slots);
	if (!slots)
		return -ENOMEM;
	pthread_t local;
	bool local_on = cl->local || cl->ranks < 2;
	if (local_on && pthread_create(&local, NULL, local_main, &j) != 0)
		local_on = false;
	int outstanding = 0;
	r = drive(&j, slots, &outstanding);
	if (!local_on && r == 0 && mpg__cl_chunks_left(&j.chunks))
		local_main(&j); /* no thread and no agent: run them here */
	if (local_on)
		pthread_join(local, NULL);
	/* On a fatal error chunks may still be in flight: their buffers stay
	 * with MPI (the job is broken; DESIGN.md, open work). */
	for (int i = 0; r == 0 && i < cl->ranks * IN_FLIGHT; i++)
		free(slots[i].buf);
	free(slots);
	if (!r)
		r = j.err;
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
