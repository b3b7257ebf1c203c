/* SPDX-License-Identifier: MIT */
/* Starting and stopping a cluster: the local pool first, then MPI; rank 0
 * keeps a handle, the other ranks become agents. */
#include "cluster-log-int.h"
#include "cluster-mpi-int.h"
#include "fed-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/pidfd.h>
#include <unistd.h>

static int mpi_err(int r) { return r == MPI_SUCCESS ? 0 : -EIO; }

/* The knobs of a rank's death, from rank 0's environment (DESIGN.md,
 * "Beyond one machine"): MPKIT_CLUSTER_DEADLINE_MS, how long a rank may
 * stay silent before it is taken for dead (0: never; by default 10000
 * under orte_enable_recovery, which mpirun passes on as
 * OMPI_MCA_orte_enable_recovery, else never: without it Open MPI ends the
 * job when a rank dies, and a rank stopped in a debugger must not be
 * taken for dead); MPKIT_CLUSTER_PIDFD=0 turns off the watch of the
 * ranks on rank 0's host by pidfd (to test the deadline on one host). */
static void knobs(int *deadline_ms, int *pidfd_watch)
{
	const char *rec = getenv("OMPI_MCA_orte_enable_recovery");
	bool recovery = rec && (strcmp(rec, "1") == 0 || strcasecmp(rec, "true") == 0);
	const char *d = getenv("MPKIT_CLUSTER_DEADLINE_MS");
	char *end = NULL;
	long v = d && *d ? strtol(d, &end, 10) : -1;
	*deadline_ms = v >= 0 && v <= 24L * 3600 * 1000 && !*end ? (int)v :
		       recovery                                  ? MPG__CL_DEADLINE_MS :
								   0;
	const char *w = getenv("MPKIT_CLUSTER_PIDFD");
	*pidfd_watch = !(w && strcmp(w, "0") == 0);
}

MPG_EXPORT int mpg_cluster_init(int *argc, char ***argv, const mpg_options *opts,
				mpg_cluster **ret)
{
	if (!ret)
		return -EINVAL;
	int inited = 0, finalized = 0;
	if (MPI_Initialized(&inited) != MPI_SUCCESS || inited ||
	    MPI_Finalized(&finalized) != MPI_SUCCESS || finalized)
		return -EALREADY;
	/* The pool's fork server is forked here, before MPI_Init: it and the
	 * workers it forks never had MPI in them, and no process that
	 * initializes MPI forks later (DESIGN.md, "Beyond one machine"). */
	mpg_pool *pool = NULL;
	int r = mpg_pool_new(opts, &pool);
	if (r < 0)
		return r;
	int provided = 0;
	/* SERIALIZED: on rank 0 a driver thread, not the caller's, makes the
	 * MPI calls between here and mpg_cluster_free() (cluster-driver.c). */
	if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
		mpg_pool_free(pool);
		return -EIO;
	}
	/* Failures come back as codes, not as the default abort. */
	int rank = 0, size = 0;
	r = mpi_err(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
	if (!r)
		r = mpi_err(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
	if (!r)
		r = mpi_err(MPI_Comm_size(MPI_COMM_WORLD, &size));
	if (!r && provided < MPI_THREAD_SERIALIZED)
		r = -EIO;
	char host[MPG__CL_MAX_HOST] = "";
	if (gethostname(host, sizeof host - 1) < 0)
		strcpy(host, "?");
	/* Every rank tells rank 0 how many workers it has. */
	unsigned mine = mpg_pool_workers(pool);
	unsigned *workers = rank == 0 ? calloc(size > 0 ? (size_t)size : 1, sizeof *workers) : NULL;
	if (!r && rank == 0 && !workers)
		r = -ENOMEM;
	if (!r)
		r = mpi_err(MPI_Gather(&mine, 1, MPI_UNSIGNED, workers, 1, MPI_UNSIGNED, 0,
				       MPI_COMM_WORLD));
	/* And its pid and host: rank 0 watches the agents on its own host. */
	int pid = (int)getpid(), *pids = NULL;
	char(*hosts)[MPG__CL_MAX_HOST] = NULL;
	if (!r && rank == 0) {
		pids = calloc((size_t)size, sizeof *pids);
		hosts = calloc((size_t)size, sizeof *hosts);
		r = pids && hosts ? 0 : -ENOMEM;
	}
	if (!r)
		r = mpi_err(MPI_Gather(&pid, 1, MPI_INT, pids, 1, MPI_INT, 0, MPI_COMM_WORLD));
	if (!r)
		r = mpi_err(MPI_Gather(host, MPG__CL_MAX_HOST, MPI_CHAR, hosts, MPG__CL_MAX_HOST,
				       MPI_CHAR, 0, MPI_COMM_WORLD));
	/* Rank 0's pid and host to the agents: they watch it likewise. */
	int pid0 = pid;
	char host0[MPG__CL_MAX_HOST];
	memcpy(host0, host, sizeof host0);
	if (!r)
		r = mpi_err(MPI_Bcast(&pid0, 1, MPI_INT, 0, MPI_COMM_WORLD));
	if (!r)
		r = mpi_err(MPI_Bcast(host0, MPG__CL_MAX_HOST, MPI_CHAR, 0, MPI_COMM_WORLD));
	/* And rank 0's knobs: the agents beat within its deadline. */
	int k[2];
	knobs(&k[0], &k[1]);
	if (!r)
		r = mpi_err(MPI_Bcast(k, 2, MPI_INT, 0, MPI_COMM_WORLD));
	if (r < 0) {
		free(pids);
		free(hosts);
		goto fail;
	}
	if (rank != 0) {
		host0[MPG__CL_MAX_HOST - 1] = '\0';
		int watch = k[1] && pid0 > 0 && strcmp(host0, host) == 0 ?
				    pidfd_open((pid_t)pid0, 0) : -1;
		(void)mpg__cl_log_agent_start(pool, rank, host); /* else logs stay here */
		r = mpg__agent_run(pool, rank, host, watch, k[0]);
		if (watch >= 0)
			close(watch);
		mpg__cl_log_agent_end(pool, r == 0); /* frees the pool */
		*ret = NULL;
		if (r == -ECONNRESET)
			return r; /* rank 0 is gone: nobody to finalize MPI with */
		if (r < 0)
			MPI_Abort(MPI_COMM_WORLD, 70); /* rank 0 would wait for it forever */
		MPI_Finalize();
		return 1;
	}
	mpg_cluster *cl = calloc(1, sizeof *cl);
	int *pidfd = calloc((size_t)size, sizeof *pidfd);
	bool *dead = calloc((size_t)size, sizeof *dead);
	struct mpg__cl_slot *slots = calloc((size_t)size * MPG__CL_IN_FLIGHT, sizeof *slots);
	uint64_t *heard = calloc((size_t)size, sizeof *heard);
	if (!cl || !pidfd || !dead || !slots || !heard) {
		free(cl);
		free(pidfd);
		free(dead);
		free(slots);
		free(heard);
		free(pids);
		free(hosts);
		r = -ENOMEM;
		goto fail;
	}
	for (int i = 0; i < size; i++) {
		hosts[i][MPG__CL_MAX_HOST - 1] = '\0';
		/* The agent is alive (it is in MPI_Init's job and has not been
		 * told to stop), so its pid names it; O_CLOEXEC by default. */
		pidfd[i] = k[1] && i > 0 && pids[i] > 0 && strcmp(hosts[i], host) == 0 ?
				   pidfd_open((pid_t)pids[i], 0) :
				   -1;
	}
	free(pids);
	cl->hosts = hosts;
	cl->pidfd = pidfd;
	cl->dead = dead;
	cl->pid = getpid();
	cl->pool = pool;
	mpg__cl_log_rank0(pool);
	cl->ranks = size;
	cl->workers = workers;
	cl->local = true;
	for (int i = 0; i < size; i++)
		cl->total_workers += workers[i];
	memcpy(cl->host, host, sizeof host);
	cl->slots = slots;
	cl->heard = heard;
	cl->deadline_ns = (uint64_t)k[0] * 1000000u;
	pthread_mutex_init(&cl->lock, NULL);
	mpg__cl_cond_init(&cl->cond);
	atomic_init(&cl->kick, false);
	/* The driver, which owns MPI from now on, and rank 0's runner. */
	if (pthread_create(&cl->driver, NULL, mpg__cl_driver_main, cl) != 0) {
		for (int i = 1; i < size; i++) /* no driver: stop the agents here */
			MPI_Send(NULL, 0, MPI_BYTE, i, MPG__TAG_STOP, MPI_COMM_WORLD);
		r = -EAGAIN;
	} else if (pthread_create(&cl->runner, NULL, mpg__cl_runner_main, cl) != 0) {
		pthread_mutex_lock(&cl->lock);
		cl->stopping = true;
		pthread_mutex_unlock(&cl->lock);
		pthread_join(cl->driver, NULL); /* it stops the agents */
		r = -EAGAIN;
	}
	if (r < 0) {
		cl->threads = false;
		mpg_cluster_free(cl);
		return r;
	}
	cl->threads = true;
	*ret = cl;
	return 0;
fail:
	free(workers);
	mpg_pool_free(pool);
	/* Other ranks may wait in a collective: take the job down, not hang. */
	MPI_Abort(MPI_COMM_WORLD, 70);
	MPI_Finalize();
	return r;
}

MPG_EXPORT void mpg_cluster_free(mpg_cluster *cl)
{
	if (!cl || cl->pid != getpid())
		return;
	if (cl->threads) {
		/* The driver finishes the pieces out, then stops the agents. */
		pthread_mutex_lock(&cl->lock);
		cl->stopping = true;
		pthread_cond_broadcast(&cl->cond);
		pthread_mutex_unlock(&cl->lock);
		atomic_store(&cl->kick, true);
		pthread_join(cl->runner, NULL);
		pthread_join(cl->driver, NULL);
	}
	/* Calls left (an iterator not read to its end, submitted tasks not
	 * waited for): their tasks not run end cancelled with the pool. */
	while (cl->calls) {
		struct mpg__cl_call *c = cl->calls;
		cl->calls = c->next;
		if (c->fed) {
			mpg__fed_release(c->fed);
			mpg__cl_call_clear(c);
			free(c);
		}
	}
	mpg_pool_free(cl->pool);
	MPI_Finalize();
	for (size_t i = 0; i < cl->nlost; i++)
		free(cl->lost[i]);
	free(cl->lost);
	for (int i = 0; i < cl->ranks; i++)
		if (cl->pidfd[i] >= 0)
			close(cl->pidfd[i]);
	for (int i = 0; i < cl->ranks * MPG__CL_IN_FLIGHT; i++)
		free(cl->slots[i].buf);
	free(cl->slots);
	free(cl->heard);
	free(cl->pidfd);
	free(cl->dead);
	free(cl->hosts);
	free(cl->workers);
	pthread_cond_destroy(&cl->cond);
	pthread_mutex_destroy(&cl->lock);
	free(cl);
}

MPG_EXPORT void mpg_cluster_freep(mpg_cluster **cl)
{
	if (cl)
		mpg_cluster_free(*cl);
}

MPG_EXPORT int mpg_cluster_ranks(const mpg_cluster *cl) { return cl ? cl->ranks : 0; }

MPG_EXPORT unsigned mpg_cluster_workers(const mpg_cluster *cl)
{
	return cl ? cl->total_workers : 0;
}

MPG_EXPORT int mpg_cluster_set_local(mpg_cluster *cl, int on)
{
	if (!cl || (!on && cl->ranks < 2))
		return -EINVAL;
	pthread_mutex_lock(&cl->lock);
	cl->local = on != 0;
	pthread_cond_broadcast(&cl->cond);
	pthread_mutex_unlock(&cl->lock);
	return 0;
}

MPG_EXPORT const mpg_error *mpg_cluster_abort_error(mpg_cluster *cl)
{
	return cl ? mpg_pool_abort_error(cl->pool) : NULL;
}
