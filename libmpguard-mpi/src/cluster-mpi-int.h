/* SPDX-License-Identifier: MIT */
/* libmpguard-mpi internals that need MPI: the cluster handle, its calls,
 * its driver thread. */
#pragma once

#include "cluster-chunk-int.h"
#include "cluster-int.h"
#include "mpguard-mpi.h"

#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#define MPG__CL_IN_FLIGHT 2 /* chunks per agent: one running, the next queued */

struct job;
struct mpg__cl_call;

/* A chunk out to an agent (the driver's). */
struct mpg__cl_slot {
	uint8_t *buf;
	MPI_Request req;
	struct mpg__cl_call *call;
	size_t first, count; /* within the call */
	bool busy;
};

/* A task to run again after a failure, not on the rank it failed on. */
struct mpg__cl_redo {
	size_t index;
	int avoid;
};

/* One call's tasks over the ranks (cluster-call.c). */
struct mpg__cl_call {
	struct mpg__cl_call *next;     /* the cluster's calls with work left */
	mpg_task_fn fn;
	struct mpg__fnref ref;
	struct job *fed;               /* map, imap, submit: outcomes go there; NULL: map_array */
	uint64_t base;                 /* the user's number of task 0 (a submitted task's) */
	size_t n;
	const mpg_buf *inputs;         /* fed calls' inputs */
	mpg_buf one;                   /* a submitted task's, copied: */
	void *owned;
	const uint8_t *in;             /* map_array's arrays */
	uint8_t *out;
	size_t in_size, out_size;
	size_t *starts;                /* fed: where each chunk starts (nchunks + 1) */
	size_t nchunks, next_chunk;    /* fed: chunks; the next to hand out */
	struct mpg__cl_chunks chunks;  /* map_array: which tasks go next */
	unsigned out_chunks;           /* handed out, not answered yet */
	struct mpg__cl_redo *redo;     /* tasks to run again */
	size_t nredo, redo_cap;
	uint16_t *attempts;            /* failed runs per task (when retries) */
	uint32_t retries, timeout_ms;
	void *ctx;                     /* the call's context, copied */
	uint32_t ctx_len;
	mpg_error **errs;              /* map_array: its failures */
	size_t nerrs, errs_cap;
	int err;                       /* map_array: a fatal error */
	bool done;                     /* map_array: every task ended */
};

struct mpg_cluster {
	pid_t pid;      /* the creator: refused in a forked child */
	mpg_pool *pool; /* rank 0's own workers */
	int ranks;
	unsigned *workers; /* per rank */
	unsigned total_workers;
	bool local;        /* rank 0's workers take chunks too */
	char host[MPG__CL_MAX_HOST];
	char (*hosts)[MPG__CL_MAX_HOST]; /* per rank */
	int *pidfd;        /* per agent on rank 0's host, else -1: seen dying */
	bool *dead;        /* per rank: died, sent nothing more */
	void **lost;       /* send buffers of chunks a dead rank held: MPI may */
	size_t nlost;      /* still hold them; freed after MPI_Finalize() */
	/* The calls and their chunks: lock over them and the fields above
	 * that the driver changes (dead, local); cond wakes the local runner
	 * and map_array's callers. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct mpg__cl_call *calls, *calls_tail;
	struct mpg__cl_slot *slots; /* ranks * MPG__CL_IN_FLIGHT, the driver's */
	uint64_t *heard;   /* per rank: when it last answered or beat (the driver's) */
	uint64_t deadline_ns; /* silent that long with chunks out: dead (0: never) */
	uint64_t beaten;   /* when the driver last beat to the agents */
	pthread_t driver, runner;
	bool threads;
	bool stopping;
	int broken;        /* the driver's fatal error: later calls fail with it */
	bool aborted;      /* MPG_ABORT: the agents were told; later calls refused */
	atomic_bool kick;  /* a call came: the driver looks now, not after its nap */
};

/* The agent of a non-zero rank: runs until rank 0 says stop. 0, -EIO
 * when MPI failed under it, -ECONNRESET when @rank0_pidfd (rank 0 on this
 * host, or -1) says rank 0 died. While it holds chunks it beats every
 * quarter of rank 0's @deadline_ms (0: never). */
int mpg__agent_run(mpg_pool *pool, int rank, const char *host, int rank0_pidfd, int deadline_ms);
/* Monotonic ns. */
uint64_t mpg__cl_now_ns(void);
/* Errors of one chunk run on a local pool as wire records; *errs
 * malloc()ed, strings into @res. */
int mpg__errors_to_wire(mpg_results *res, struct mpg__cl_wire_error **errs, uint32_t *n);
/* The options of a chunk's call on a rank's pool: its context, time
 * limit, no retry there (rank 0 re-runs a failed task elsewhere), and its
 * first task's number in the whole call (OPT_BASE). */
int mpg__cl_call_options(const struct mpg__cl_chunk *c, mpg_options **ret);
/* MPI_Probe() on MPI_COMM_WORLD without a busy wait (cluster-wait.c): 0,
 * or -EIO; 1 (no message) when @check, called after each nap of the
 * wait, returned non-zero. @nap_fn(@arg, ns) naps (NULL: nanosleep()). */
int mpg__cl_probe(int source, int tag, MPI_Status *st, int (*check)(void *),
		  void (*nap_fn)(void *, long), void *arg);
/* Receives the message @st probed (its source and tag) into a malloc()ed
 * *@msg of *@len bytes: 0, or -EIO (MPI failed), -ENOMEM. */
int mpg__cl_recv(const MPI_Status *st, uint8_t **msg, size_t *len);
/* A nap of @ns on @cond (with @lock not held), cut short by a signal. */
void mpg__cl_cond_nap(pthread_mutex_t *lock, pthread_cond_t *cond, long ns);
/* A condition variable on CLOCK_MONOTONIC, for mpg__cl_cond_nap(). */
void mpg__cl_cond_init(pthread_cond_t *cond);

/* cluster-call.c; "locked": with cl->lock held. */
/* A new call (zeroed but for what the caller set: fn, ref, fed or the
 * arrays, n, base, inputs) joins the cluster: its chunks cut by
 * @chunksize (0: automatic), its options copied. 0, or -ENOMEM,
 * -EMSGSIZE, or the cluster's fatal error; on failure the call is not
 * the cluster's. */
int mpg__cl_call_start(mpg_cluster *cl, struct mpg__cl_call *c, size_t chunksize,
		       const mpg_options *opts);
/* Locked: the next piece of work for @rank (0: rank 0's pool): *first
 * and *count of the call returned, or NULL. */
struct mpg__cl_call *mpg__cl_pick(mpg_cluster *cl, int rank, size_t *first, size_t *count);
/* Locked: a piece of @c ended (answered, or failed whole). */
void mpg__cl_piece_done(mpg_cluster *cl, struct mpg__cl_call *c);
/* Locked: the tasks of a piece failed without running (@code, why). */
void mpg__cl_fail_piece(mpg_cluster *cl, struct mpg__cl_call *c, size_t first, size_t count,
			int code, int rank, const char *host, const char *why);
/* Locked: task @index of @c failed on @rank (@e, taken): run again
 * elsewhere, or its final error. */
void mpg__cl_task_failed(mpg_cluster *cl, struct mpg__cl_call *c, size_t index, mpg_error *e,
			 int rank);
/* An agent's decoded answer for @c's piece; locked. 0 or -ENOMEM. */
int mpg__cl_take_answer(mpg_cluster *cl, struct mpg__cl_call *c, const struct mpg__cl_result *res,
			int rank);
/* The chunk message of a piece: 0 or an error of mpg__cl_chunk_encode(). */
int mpg__cl_encode_piece(const struct mpg__cl_call *c, size_t first, size_t count, uint8_t **buf,
			 size_t *len);
/* Frees what the call owns (not the struct). */
void mpg__cl_call_clear(struct mpg__cl_call *c);
/* Rank 0's runner thread: pieces on rank 0's pool until the cluster stops. */
void *mpg__cl_runner_main(void *arg);

/* cluster-driver.c: the thread that owns MPI between mpg_cluster_init()
 * and mpg_cluster_free() on rank 0. */
void *mpg__cl_driver_main(void *arg);
