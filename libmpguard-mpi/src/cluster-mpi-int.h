/* SPDX-License-Identifier: MIT */
/* libmpguard-mpi internals that need MPI: the cluster handle. */
#pragma once

#include "cluster-int.h"
#include "mpguard-mpi.h"

#include <mpi.h>
#include <sys/types.h>

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
	bool *dead;        /* per rank: died in a map, sent nothing more */
	void **lost;       /* send buffers of chunks a dead rank held: MPI may */
	size_t nlost;      /* still hold them; freed after MPI_Finalize() */
};

/* The agent of a non-zero rank: runs until rank 0 says stop. 0, -EIO
 * when MPI failed under it, -ECONNRESET when @rank0_pidfd (rank 0 on this
 * host, or -1) says rank 0 died. */
int mpg__agent_run(mpg_pool *pool, int rank, const char *host, int rank0_pidfd);
/* Errors of one chunk run on a local pool as wire records; *errs
 * malloc()ed, strings into @res. */
int mpg__errors_to_wire(mpg_results *res, struct mpg__cl_wire_error **errs, uint32_t *n);
/* The options of a chunk's call on a rank's pool: its context, retries,
 * time limit, and its first task's index in the whole call (OPT_BASE). */
int mpg__cl_call_options(const struct mpg__cl_chunk *c, mpg_options **ret);
/* MPI_Probe() on MPI_COMM_WORLD without a busy wait (cluster-wait.c): 0,
 * or -EIO; 1 (no message) when @check, called about every millisecond of
 * waiting, returned non-zero. */
int mpg__cl_probe(int source, int tag, MPI_Status *st, int (*check)(void *), void *arg);
