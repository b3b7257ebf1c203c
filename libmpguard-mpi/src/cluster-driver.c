/* SPDX-License-Identifier: MIT */
/* Rank 0's driver: the one thread that uses MPI between mpg_cluster_init()
 * and mpg_cluster_free() (MPI_THREAD_SERIALIZED: the calling thread hands
 * its calls over and waits, or goes on with an iterator or a future). It
 * keeps two pieces in flight per agent (one running, the next queued),
 * takes in the answers, watches the agents on its host for death, and at
 * the end tells every agent to stop. */
#include "cluster-log-int.h"
#include "cluster-mpi-int.h"
#include "pool-int.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

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

/* Locked: @rank is dead (@why). Where Open MPI does not end the job for
 * it (orte_enable_recovery), the pieces it held fail as CANCELLED
 * (EHOSTDOWN) with its rank and host, or run again elsewhere while
 * retries last. */
static void rank_died(mpg_cluster *cl, int rank, const char *why)
{
	cl->dead[rank] = true;
	for (int s = 0; s < MPG__CL_IN_FLIGHT; s++) {
		struct mpg__cl_slot *sl = &cl->slots[rank * MPG__CL_IN_FLIGHT + s];
		if (!sl->busy)
			continue;
		mpg__cl_fail_piece(cl, sl->call, sl->first, sl->count, EHOSTDOWN, rank,
				   cl->hosts[rank], why);
		park(cl, sl->buf);
		sl->buf = NULL;
		sl->busy = false;
		mpg__cl_piece_done(cl, sl->call);
	}
	pthread_cond_broadcast(&cl->cond); /* rank 0's runner may take over */
}

/* Locked: whether @rank holds pieces. */
static bool holds(const mpg_cluster *cl, int rank)
{
	for (int s = 0; s < MPG__CL_IN_FLIGHT; s++)
		if (cl->slots[rank * MPG__CL_IN_FLIGHT + s].busy)
			return true;
	return false;
}

/* While the driver waits: a new call, the end, an agent on its host whose
 * process ended (its pidfd readable), or an agent that holds pieces and
 * has been silent (no answer, no heartbeat) past the deadline: on another
 * host, under orte_enable_recovery, that is how its death shows. */
static int check(void *arg)
{
	mpg_cluster *cl = arg;
	int wake = atomic_exchange(&cl->kick, false);
	bool abort = mpg_pool_abort_error(cl->pool) != NULL;
	pthread_mutex_lock(&cl->lock);
	wake |= cl->stopping || (abort && !cl->aborted);
	if (cl->deadline_ns && mpg__cl_now_ns() - cl->beaten >= cl->deadline_ns / 4)
		wake = 1; /* time to beat */
	for (int rank = 1; rank < cl->ranks; rank++) {
		if (cl->dead[rank] || cl->pidfd[rank] < 0)
			continue;
		struct pollfd p = {.fd = cl->pidfd[rank], .events = POLLIN};
		if (poll(&p, 1, 0) <= 0)
			continue;
		rank_died(cl, rank, "the rank died while it held the task");
		wake = 1;
	}
	uint64_t now = cl->deadline_ns ? mpg__cl_now_ns() : 0;
	for (int rank = 1; now && rank < cl->ranks; rank++) {
		if (cl->dead[rank] || !holds(cl, rank) || now - cl->heard[rank] <= cl->deadline_ns)
			continue;
		rank_died(cl, rank, "the rank went silent while it held the task (no answer "
				    "nor heartbeat within the deadline): taken for dead");
		wake = 1;
	}
	pthread_mutex_unlock(&cl->lock);
	return wake;
}

/* Locked: hand out pieces to the agents' free slots; sends them. */
static int fill(mpg_cluster *cl)
{
	for (int s = 0; s < MPG__CL_IN_FLIGHT; s++)
		for (int rank = 1; rank < cl->ranks; rank++) {
			struct mpg__cl_slot *sl = &cl->slots[rank * MPG__CL_IN_FLIGHT + s];
			if (sl->busy || cl->dead[rank] || !cl->workers[rank] || cl->stopping)
				continue;
			size_t first, count;
			bool idle = !holds(cl, rank);
			struct mpg__cl_call *c = mpg__cl_pick(cl, rank, &first, &count);
			if (!c)
				return 0;
			if (idle)
				cl->heard[rank] = mpg__cl_now_ns(); /* its deadline starts */
			size_t len = 0;
			int r = mpg__cl_encode_piece(c, first, count, &sl->buf, &len);
			if (r == 0 && len > INT_MAX) {
				free(sl->buf);
				r = -EMSGSIZE;
			}
			if (r < 0) {
				mpg__cl_fail_piece(cl, c, first, count, -r, rank, cl->hosts[rank],
						   "the chunk could not be sent");
				mpg__cl_piece_done(cl, c);
				s--; /* this slot again */
				break;
			}
			/* MPI_Isend under the lock: it only queues the message. */
			if (MPI_Isend(sl->buf, (int)len, MPI_BYTE, rank, MPG__TAG_CHUNK,
				      MPI_COMM_WORLD, &sl->req) != MPI_SUCCESS) {
				free(sl->buf);
				sl->buf = NULL;
				mpg__cl_fail_piece(cl, c, first, count, EIO, rank, cl->hosts[rank],
						   "MPI failed to send the chunk");
				mpg__cl_piece_done(cl, c);
				return -EIO;
			}
			*sl = (struct mpg__cl_slot){.buf = sl->buf, .req = sl->req, .call = c,
						    .first = first, .count = count, .busy = true};
		}
	return 0;
}

/* Takes in one agent's answer. Locked. */
static int take(mpg_cluster *cl, const uint8_t *msg, size_t len, int source)
{
	struct mpg__cl_result res;
	if (source <= 0 || source >= cl->ranks || mpg__cl_result_decode(msg, len, &res) < 0 ||
	    res.rank != source)
		return -EPROTO;
	if (cl->dead[source])
		return 0; /* sent before it died: its pieces failed already */
	struct mpg__cl_slot *s = NULL;
	for (int i = 0; i < MPG__CL_IN_FLIGHT; i++) {
		struct mpg__cl_slot *x = &cl->slots[source * MPG__CL_IN_FLIGHT + i];
		if (x->busy && x->call->base + x->first == res.first && x->count == res.count)
			s = x;
	}
	if (!s || (res.flags & MPG__CL_BUFS) != (s->call->fed ? MPG__CL_BUFS : 0u) ||
	    (!res.status && !s->call->fed && res.out_size != s->call->out_size))
		return -EPROTO;
	MPI_Wait(&s->req, MPI_STATUS_IGNORE); /* it arrived: the agent answered it */
	free(s->buf);
	s->buf = NULL;
	s->busy = false;
	int r = mpg__cl_take_answer(cl, s->call, &res, source);
	mpg__cl_piece_done(cl, s->call);
	return r;
}

static bool pieces_out(const mpg_cluster *cl)
{
	for (int i = MPG__CL_IN_FLIGHT; i < cl->ranks * MPG__CL_IN_FLIGHT; i++)
		if (cl->slots[i].busy)
			return true;
	return false;
}

/* Locked: a fatal error: every piece out and every call's tasks not
 * handed out fail with it; later calls return it. */
static void broken(mpg_cluster *cl, int err)
{
	cl->broken = err;
	for (int i = MPG__CL_IN_FLIGHT; i < cl->ranks * MPG__CL_IN_FLIGHT; i++) {
		struct mpg__cl_slot *sl = &cl->slots[i];
		if (!sl->busy)
			continue;
		int rank = i / MPG__CL_IN_FLIGHT;
		mpg__cl_fail_piece(cl, sl->call, sl->first, sl->count, -err, rank, cl->hosts[rank],
				   "MPI failed under the cluster");
		park(cl, sl->buf); /* MPI may still hold it */
		sl->buf = NULL;
		sl->busy = false;
		mpg__cl_piece_done(cl, sl->call);
	}
	/* The rest runs on rank 0's pool. */
	for (int rank = 1; rank < cl->ranks; rank++)
		cl->dead[rank] = true;
	pthread_cond_broadcast(&cl->cond);
}

/* MPG_ABORT on rank 0: every agent stops the chunks it runs (its pool
 * kills its workers) and answers -ECANCELED from now on; rank 0 takes no
 * call any more, as an aborted pool. */
static void abort_agents(mpg_cluster *cl)
{
	pthread_mutex_lock(&cl->lock);
	bool first = !cl->aborted;
	cl->aborted = true;
	pthread_mutex_unlock(&cl->lock);
	for (int i = 1; first && i < cl->ranks; i++)
		if (!cl->dead[i])
			MPI_Send(NULL, 0, MPI_BYTE, i, MPG__TAG_ABORT, MPI_COMM_WORLD);
}

/* Rank 0 beats too, every quarter of the deadline, busy or not: an agent
 * whose rank 0 died on another host sees it fall silent. Fire and forget
 * (a send to a rank that died must not stop the driver). */
static void beat(mpg_cluster *cl)
{
	for (int i = 1; i < cl->ranks; i++) {
		MPI_Request req;
		if (!cl->dead[i] && MPI_Isend(NULL, 0, MPI_BYTE, i, MPG__TAG_HEARTBEAT, MPI_COMM_WORLD,
					      &req) == MPI_SUCCESS)
			MPI_Request_free(&req);
	}
}

static void driver_nap(void *arg, long ns)
{
	mpg_cluster *cl = arg;
	mpg__cl_cond_nap(&cl->lock, &cl->cond, ns); /* a new call signals cond */
}

void *mpg__cl_driver_main(void *arg)
{
	mpg_cluster *cl = arg;
	int err = 0;
	uint64_t checked = 0;
	for (;;) {
		/* The checks of a wait, also when answers come without a pause
		 * (a wait checks after its naps only): once a millisecond. */
		uint64_t now = mpg__cl_now_ns();
		if (now - checked > 1000000u) {
			checked = now;
			(void)check(cl);
		}
		if (cl->deadline_ns && now - cl->beaten >= cl->deadline_ns / 4) {
			cl->beaten = now;
			beat(cl);
		}
		if (!cl->aborted && mpg_pool_abort_error(cl->pool))
			abort_agents(cl);
		pthread_mutex_lock(&cl->lock);
		if (!err)
			err = fill(cl);
		bool out = pieces_out(cl);
		bool done = cl->stopping && !out;
		if (err)
			broken(cl, err);
		pthread_mutex_unlock(&cl->lock);
		if (done || err)
			break;
		MPI_Status st;
		int p = mpg__cl_probe(MPI_ANY_SOURCE, MPI_ANY_TAG, &st, check, driver_nap, cl);
		if (p == 1)
			continue;
		uint8_t *msg;
		size_t len;
		err = p < 0 ? -EIO : mpg__cl_recv(&st, &msg, &len);
		if (err)
			continue;
		int src = st.MPI_SOURCE;
		if (st.MPI_TAG == MPG__TAG_LOG) {
			/* An agent's log records, into rank 0's aggregator: not
			 * under the lock, they go through its sinks. */
			int t = mpg__cl_log_take(cl, msg, len, src);
			free(msg);
			if (t < 0)
				err = t;
			if (src > 0 && src < cl->ranks)
				cl->heard[src] = mpg__cl_now_ns();
			continue;
		}
		pthread_mutex_lock(&cl->lock);
		if (src > 0 && src < cl->ranks)
			cl->heard[src] = mpg__cl_now_ns();
		switch (st.MPI_TAG) {
		case MPG__TAG_RESULT:
			err = take(cl, msg, len, src);
			break;
		case MPG__TAG_HEARTBEAT:
			break; /* heard */
		default:
			err = -EPROTO;
			break;
		}
		pthread_mutex_unlock(&cl->lock);
		free(msg);
	}
	/* Stop the agents (each returns from its mpg_cluster_init()), and
	 * take their last log records. */
	for (int i = 1; i < cl->ranks; i++)
		if (!cl->dead[i] || err)
			MPI_Send(NULL, 0, MPI_BYTE, i, MPG__TAG_STOP, MPI_COMM_WORLD);
	if (!err)
		(void)mpg__cl_log_drain(cl);
	return NULL;
}
