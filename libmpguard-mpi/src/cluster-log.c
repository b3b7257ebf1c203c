/* SPDX-License-Identifier: MIT */
/* The agents' log records into rank 0's aggregator. On an agent, a
 * callback sink on its pool's aggregator encodes each record
 * (mplog_record_encode(); its task is already the index in the whole
 * call, OPT_BASE) into a bounded queue; the agent's main thread, the one
 * that calls MPI, sends the queue as LOG messages while it waits for
 * messages and for the chunk that runs on a thread of its own
 * (mpg__cl_log_pump(), about every millisecond), at the chunk's end
 * before its answer (mpg__cl_log_chunk_end()), and at the agent's end
 * with a LAST mark. Rank 0's driver thread hands each record to its
 * pool's aggregator (mplog_aggregator_inject(): libmplog's one decoder,
 * the aggregator the one owner of its sinks), stamped with the agent's
 * host, pid and rank, as LOG messages come (mpg__cl_log_take()), between
 * calls too, and reads every agent's last after STOP, before MPI_Finalize
 * (mpg__cl_log_drain()). One forwarder per process: an agent is one per
 * process. */
#include "cluster-log-int.h"
#include "cluster-mpi-int.h"
#include "pool-int.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_MAX (4u << 20)     /* bytes queued before the sink waits for a send */
#define QUEUE_HARD (64u << 20)   /* or, when no send is sure to come, drops */

static struct fwd {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* room made */
	bool on;             /* forwarding: the sink is in agg */
	uint8_t *q;          /* the queue: records as mpg__cl_log_put_record() */
	size_t len, cap;
	uint32_t nrec;
	uint64_t dropped;    /* since the last LOG message */
	bool waitable;       /* the MPI thread sends soon: a full queue waits */
	int err;             /* a LOG message could not be sent: off */
	pthread_t mpi;       /* the thread that may call MPI */
	mplog_aggregator *agg;
	mplog_sink *sink;
	bool own;            /* agg is the pool's own: freed with it */
	int rank, pid;
	char host[MPG__CL_MAX_HOST];
} F = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* Sends what is queued as one LOG message (lock held; released during
 * the send). MPI thread only. */
static int send_batch(struct fwd *f, bool last)
{
	if (f->err)
		return f->err;
	if (!f->len && !f->dropped && !last)
		return 0;
	struct mpg__cl_log_batch b = {.rank = f->rank, .pid = f->pid, .nrec = f->nrec,
				      .dropped = f->dropped, .host = f->host,
				      .flags = last ? MPG__CL_LOG_LAST : 0};
	uint8_t *recs = f->q;
	size_t len = f->len, head = mpg__cl_log_header_size(f->host);
	f->q = NULL;
	f->len = f->cap = 0;
	f->nrec = 0;
	f->dropped = 0;
	pthread_cond_broadcast(&f->cond); /* room */
	pthread_mutex_unlock(&f->lock);
	int r = 0;
	uint8_t *msg = len <= INT_MAX - head ? malloc(head + len) : NULL;
	if (msg) {
		mpg__cl_log_header_encode(&b, msg);
		if (len)
			memcpy(msg + head, recs, len);
		if (MPI_Send(msg, (int)(head + len), MPI_BYTE, 0, MPG__TAG_LOG, MPI_COMM_WORLD) !=
		    MPI_SUCCESS)
			r = -EIO;
	} else {
		r = -ENOMEM;
	}
	free(msg);
	free(recs);
	pthread_mutex_lock(&f->lock);
	if (r == -ENOMEM && !last)
		f->dropped += b.nrec; /* told with the next one */
	else if (r < 0)
		f->err = r;
	return r;
}

/* The callback sink on the agent's aggregator: any thread that delivers. */
static void on_record(const mplog_record *r, void *userdata)
{
	struct fwd *f = userdata;
	pthread_mutex_lock(&f->lock);
	ssize_t n = mplog_record_encode(r, 0, NULL, 0);
	size_t need = n >= 0 && (uint64_t)n <= UINT32_MAX - 5 ? 4 + (size_t)n : SIZE_MAX;
	bool mine = pthread_equal(pthread_self(), f->mpi);
	/* Full: the MPI thread sends it now if that is us (a flush or the
	 * pool's end delivering), else we wait for it while it is sure to
	 * come (a chunk on a thread, a wait loop), else the queue grows to
	 * QUEUE_HARD and then the record is dropped and counted (rank 0
	 * reports it). A record alone is never too big. */
	size_t limit = f->waitable ? QUEUE_MAX : QUEUE_HARD;
	while (need != SIZE_MAX && f->len && f->len + need > limit && !f->err) {
		if (mine)
			(void)send_batch(f, false);
		else if (f->waitable)
			pthread_cond_wait(&f->cond, &f->lock);
		else
			break;
		limit = f->waitable ? QUEUE_MAX : QUEUE_HARD;
	}
	if (need == SIZE_MAX || f->err || (f->len && f->len + need > limit)) {
		f->dropped++;
		pthread_mutex_unlock(&f->lock);
		return;
	}
	if (f->len + need + 1 > f->cap) {
		size_t cap = f->cap ? f->cap : 64u << 10;
		while (cap < f->len + need + 1)
			cap *= 2;
		uint8_t *q = realloc(f->q, cap);
		if (!q) {
			f->dropped++;
			pthread_mutex_unlock(&f->lock);
			return;
		}
		f->q = q;
		f->cap = cap;
	}
	uint32_t len = (uint32_t)n;
	memcpy(f->q + f->len, &len, 4);
	(void)mplog_record_encode(r, 0, f->q + f->len + 4, (size_t)n + 1);
	f->len += need;
	f->nrec++;
	pthread_mutex_unlock(&f->lock);
}

int mpg__cl_log_agent_start(mpg_pool *pool, int rank, const char *host)
{
	struct fwd *f = &F;
	f->rank = rank;
	f->pid = (int)getpid();
	f->mpi = pthread_self();
	f->waitable = true;
	snprintf(f->host, sizeof f->host, "%s", host);
	mplog_aggregator *a = mpg_pool_log(pool);
	if (!a)
		return 0; /* no log: nothing to forward, the LAST mark all the same */
	(void)mplog_aggregator_set_rank(a, rank);
	mplog_sink *s;
	int r = mplog_sink_new_callback(on_record, f, &s);
	if (r == 0)
		r = mplog_aggregator_add_sink(a, s);
	if (r < 0)
		return r;
	f->agg = a;
	f->sink = s;
	f->own = pool->own_log;
	f->on = true;
	/* Rank 0 writes its records: the pool's own stderr sink would write
	 * them twice (mpirun forwards every rank's stderr). A sink of the
	 * caller's aggregator stays. */
	if (pool->own_log && pool->log_sink) {
		(void)mplog_aggregator_remove_sink(a, pool->log_sink);
		pool->log_sink = NULL;
	}
	return 0;
}

/* Whether a sink that finds the queue full may wait for this thread.
 * Before it may not (this thread is about to deliver, or to join the
 * aggregator's thread), the queue is sent: a sink waiting now has room. */
static void set_waitable(struct fwd *f, bool on)
{
	pthread_mutex_lock(&f->lock);
	if (!on && f->on)
		(void)send_batch(f, false);
	f->waitable = on;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

int mpg__cl_log_pump(void)
{
	struct fwd *f = &F;
	if (!f->on)
		return 0;
	pthread_mutex_lock(&f->lock);
	int r = f->len || f->dropped ? send_batch(f, false) : 0;
	pthread_mutex_unlock(&f->lock);
	return r;
}

int mpg__cl_log_chunk_end(void)
{
	struct fwd *f = &F;
	if (!f->on)
		return 0;
	/* Its workers' last records (in their rings and pipes until read):
	 * delivered on this thread, sent as the queue fills, then the rest,
	 * before the chunk's answer. */
	set_waitable(f, false);
	(void)mplog_aggregator_flush(f->agg);
	pthread_mutex_lock(&f->lock);
	f->waitable = true;
	int r = send_batch(f, false);
	pthread_mutex_unlock(&f->lock);
	return r;
}

void mpg__cl_log_agent_end(mpg_pool *pool, bool send)
{
	struct fwd *f = &F;
	pthread_mutex_lock(&f->lock);
	if (!send && !f->err)
		f->err = -ECANCELED; /* MPI is broken, or rank 0 gone: no more sends */
	pthread_mutex_unlock(&f->lock);
	/* The pool's end delivers on this thread (its aggregator's thread
	 * stops first, and must not wait for us meanwhile). */
	set_waitable(f, false);
	mpg_pool_free(pool); /* a pool's own aggregator, our sink with it */
	if (f->on && !f->own) {
		(void)mplog_aggregator_flush(f->agg); /* the last workers' records */
		(void)mplog_aggregator_remove_sink(f->agg, f->sink);
	}
	f->on = false;
	pthread_mutex_lock(&f->lock);
	if (send)
		(void)send_batch(f, true);
	free(f->q);
	f->q = NULL;
	f->len = f->cap = 0;
	pthread_mutex_unlock(&f->lock);
}

/* ---- rank 0 -------------------------------------------------------------- */

void mpg__cl_log_rank0(mpg_pool *pool)
{
	mplog_aggregator *a = mpg_pool_log(pool);
	if (a)
		(void)mplog_aggregator_set_rank(a, 0);
}

int mpg__cl_log_take(mpg_cluster *cl, const uint8_t *msg, size_t len, int source)
{
	struct mpg__cl_log_batch b;
	if (mpg__cl_log_decode(msg, len, &b) < 0 || b.rank != source || source < 1 ||
	    source >= cl->ranks)
		return -EPROTO;
	mplog_aggregator *a = mpg_pool_log(cl->pool);
	const char *host = cl->hosts[source];
	size_t off = 0;
	const uint8_t *rec;
	uint32_t n;
	/* A malformed record is reported by the aggregator, the rest kept. */
	while (a && mpg__cl_log_next(&b, &off, &rec, &n))
		(void)mplog_aggregator_inject(a, rec, n, host, b.pid, source);
	if (b.dropped && cl->pool->log_writer) {
		char num[24], rk[16];
		snprintf(num, sizeof num, "%llu", (unsigned long long)b.dropped);
		snprintf(rk, sizeof rk, "%d", source);
		mplog_kv kv[] = {{"mplog.lost", num}, {"mpg.rank", rk}, {"mpg.host", host}};
		(void)mplog_writer_log(cl->pool->log_writer, MPLOG_WARN, __FILE__, __LINE__, __func__,
				       kv, 3, "rank %d (%s) lost %llu log records (its queue was full)",
				       source, host, (unsigned long long)b.dropped);
	}
	return b.flags & MPG__CL_LOG_LAST ? 1 : 0;
}

struct drain {
	mpg_cluster *cl;
	const bool *last;
};

/* An agent that died sends no LAST: on rank 0's host its pidfd says so,
 * elsewhere its silence past the deadline (when there is one). */
static int agent_died(void *arg)
{
	struct drain *d = arg;
	mpg_cluster *cl = d->cl;
	int died = 0;
	uint64_t now = cl->deadline_ns ? mpg__cl_now_ns() : 0;
	pthread_mutex_lock(&cl->lock);
	for (int rank = 1; rank < cl->ranks; rank++) {
		if (d->last[rank] || cl->dead[rank])
			continue;
		struct pollfd p = {.fd = cl->pidfd[rank], .events = POLLIN};
		if ((cl->pidfd[rank] >= 0 && poll(&p, 1, 0) > 0) ||
		    (now && now - cl->heard[rank] > cl->deadline_ns)) {
			cl->dead[rank] = true;
			died = 1;
		}
	}
	pthread_mutex_unlock(&cl->lock);
	return died;
}

int mpg__cl_log_drain(mpg_cluster *cl)
{
	bool *last = calloc((size_t)cl->ranks, sizeof *last);
	if (!last)
		return -ENOMEM;
	struct drain d = {cl, last};
	int r = 0;
	for (;;) {
		int waiting = 0;
		for (int rank = 1; rank < cl->ranks; rank++)
			waiting += !last[rank] && !cl->dead[rank];
		if (!waiting)
			break;
		MPI_Status st;
		/* Any tag: a map that failed may have left chunks in flight,
		 * whose answers come (and are dropped) before the agent's STOP. */
		int p = mpg__cl_probe(MPI_ANY_SOURCE, MPI_ANY_TAG, &st, agent_died, NULL, &d);
		if (p == 1)
			continue;
		uint8_t *msg;
		size_t len;
		r = p < 0 ? -EIO : mpg__cl_recv(&st, &msg, &len);
		if (r)
			break;
		if (st.MPI_SOURCE > 0 && st.MPI_SOURCE < cl->ranks)
			cl->heard[st.MPI_SOURCE] = mpg__cl_now_ns();
		if (st.MPI_TAG != MPG__TAG_LOG) {
			free(msg);
			continue;
		}
		int t = mpg__cl_log_take(cl, msg, len, st.MPI_SOURCE);
		free(msg);
		if (t < 0 && !r)
			r = t;
		/* A malformed one may have been its last: read no more of it. */
		if (t != 0 && st.MPI_SOURCE > 0 && st.MPI_SOURCE < cl->ranks)
			last[st.MPI_SOURCE] = true;
	}
	free(last);
	return r;
}
