/* Registry of the parent-side fds of every pool in this process. A forked
 * child does not exec, so O_CLOEXEC does not protect it: it must close these
 * itself, or a worker would hold another worker's socket open and EOF would
 * never reach it. */
#include "pool-int.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static int *reg_fds;
static size_t reg_n, reg_cap;

void mpg__fdreg_lock(void) { pthread_mutex_lock(&reg_lock); }
void mpg__fdreg_unlock(void) { pthread_mutex_unlock(&reg_lock); }

void mpg__fdreg_add(int fd)
{
	if (fd < 0)
		return;
	pthread_mutex_lock(&reg_lock);
	if (reg_n == reg_cap) {
		size_t cap = reg_cap ? reg_cap * 2 : 64;
		int *n = realloc(reg_fds, cap * sizeof *n);
		if (!n) {
			/* Not fatal: the fd only stays open in later children. */
			pthread_mutex_unlock(&reg_lock);
			return;
		}
		reg_fds = n;
		reg_cap = cap;
	}
	reg_fds[reg_n++] = fd;
	pthread_mutex_unlock(&reg_lock);
}

void mpg__fdreg_del(int fd)
{
	pthread_mutex_lock(&reg_lock);
	for (size_t i = 0; i < reg_n; i++) {
		if (reg_fds[i] == fd) {
			reg_fds[i] = reg_fds[--reg_n];
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
}

void mpg__fdreg_close_all_in_child(int keep)
{
	/* Runs right after fork(): only close(), no lock (the parent's forking
	 * thread held reg_lock, so the array is consistent), no malloc. */
	for (size_t i = 0; i < reg_n; i++)
		if (reg_fds[i] != keep)
			close(reg_fds[i]);
	reg_n = 0;
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	reg_lock = fresh;
}
