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
 * rank 0's driver, a rank that died, an agent's chunk done). A nap may be
 * a wait that an event cuts short (@nap_fn): a condition variable. And
 * taking in the message a wait found (mpg__cl_recv()). */
#include "cluster-mpi-int.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define SPINS 64
#define NAP_MIN_NS 10000L
#define NAP_MAX_NS 1000000L

int mpg__cl_probe(int source, int tag, MPI_Status *st, int (*check)(void *),
		  void (*nap_fn)(void *, long), void *arg)
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
		if (nap_fn)
			nap_fn(arg, nap);
		else
			nanosleep(&(struct timespec){0, nap}, NULL);
		if (check && check(arg))
			return 1;
		if (nap < NAP_MAX_NS)
			nap = nap * 2 < NAP_MAX_NS ? nap * 2 : NAP_MAX_NS;
	}
}

void mpg__cl_cond_nap(pthread_mutex_t *lock, pthread_cond_t *cond, long ns)
{
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_nsec += ns;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(lock);
	pthread_cond_timedwait(cond, lock, &dl);
	pthread_mutex_unlock(lock);
}

void mpg__cl_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC); /* mpg__cl_cond_nap() */
	pthread_cond_init(cond, &a);
	pthread_condattr_destroy(&a);
}

uint64_t mpg__cl_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int mpg__cl_recv(const MPI_Status *st, uint8_t **msg, size_t *len)
{
	int n = 0;
	*msg = NULL;
	if (MPI_Get_count(st, MPI_BYTE, &n) != MPI_SUCCESS || n < 0)
		return -EIO;
	uint8_t *m = malloc(n ? (size_t)n : 1);
	if (!m)
		return -ENOMEM;
	if (MPI_Recv(m, n, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, MPI_COMM_WORLD,
		     MPI_STATUS_IGNORE) != MPI_SUCCESS) {
		free(m);
		return -EIO;
	}
	*msg = m;
	*len = (size_t)n;
	return 0;
}
