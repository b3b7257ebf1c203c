/* SPDX-License-Identifier: MIT */
/* Waiting for a message without spinning a core. Open MPI's blocking
 * MPI_Probe() polls its transports in a loop (with mpi_yield_when_idle it
 * only adds sched_yield(), still a full core when nothing else runs), and
 * rank 0 and the agents share their hosts with their own workers. So:
 * MPI_Iprobe() (which also drives MPI's progress), a few times at once for
 * a message already on its way, then sleeps doubling from 10 us to 1 ms:
 * an idle rank costs about a thousand cheap polls a second, and a message
 * waits at most 1 ms more than it would (a chunk's answer, not a task's).
 * After each nap, @check says whether to stop waiting (a new call for
 * rank 0's driver, a rank that died). */
#include "cluster-mpi-int.h"

#include <errno.h>
#include <time.h>

#define SPINS 64
#define NAP_MIN_NS 10000L
#define NAP_MAX_NS 1000000L

int mpg__cl_probe(int source, int tag, MPI_Status *st, int (*check)(void *), void *arg)
{
	long nap = NAP_MIN_NS;
	for (unsigned i = 0;; i++) {
		int flag = 0;
		if (MPI_Iprobe(source, tag, MPI_COMM_WORLD, &flag, st) != MPI_SUCCESS)
			return -EIO;
		if (flag)
			return 0;
		if (i < SPINS)
			continue;
		nanosleep(&(struct timespec){0, nap}, NULL);
		if (check && check(arg))
			return 1;
		if (nap < NAP_MAX_NS)
			nap = nap * 2 < NAP_MAX_NS ? nap * 2 : NAP_MAX_NS;
	}
}
