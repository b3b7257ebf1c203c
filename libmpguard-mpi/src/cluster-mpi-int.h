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
};

/* The agent of a non-zero rank: runs until rank 0 says stop. 0, or -EIO
 * when MPI failed under it. */
int mpg__agent_run(mpg_pool *pool, int rank, const char *host);
/* Errors of one chunk run on a local pool as wire records (task indices
 * plus @first); *errs malloc()ed, strings into @res. */
int mpg__errors_to_wire(mpg_results *res, uint64_t first, struct mpg__cl_wire_error **errs,
			uint32_t *n);
/* MPI_Probe() on MPI_COMM_WORLD without a busy wait (cluster-wait.c): 0,
 * or -EIO. */
int mpg__cl_probe(int source, int tag, MPI_Status *st);
