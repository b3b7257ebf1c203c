/* SPDX-License-Identifier: MIT */
/* Registry of the fds this library's objects hold in the parent
 * (fdreg-int.h). A forked child that does not exec keeps them despite
 * O_CLOEXEC: a fork server would hold another pool's sockets, a user's
 * fork() child would keep our workers from ever seeing EOF, a worker
 * would hold an aggregator's epoll, eventfd and log file (a stray write
 * there lands in the log). A pthread_atfork() child handler closes them in
 * every child forked from this process (the child cannot use those
 * objects anyway: their calls there return -ECHILD). */
#include "fdreg-int.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static int *reg_fds;
static size_t reg_n, reg_cap;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static void before_fork(void) { pthread_mutex_lock(&reg_lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&reg_lock); }

static void after_fork_child(void)
{
	/* Runs right after fork(): only close(), no malloc. The forking
	 * thread held reg_lock, so the array is consistent; the lock is
	 * re-created rather than unlocked by a thread that is not its owner. */
	for (size_t i = 0; i < reg_n; i++)
		close(reg_fds[i]);
	reg_n = 0;
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	reg_lock = fresh;
}

static void install_atfork(void)
{
	pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

void mpk_fdreg_add(int fd)
{
	if (fd < 0)
		return;
	pthread_once(&reg_once, install_atfork);
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

void mpk_fdreg_del(int fd)
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

void mpk_fdreg_close(int *fd)
{
	if (*fd >= 0) {
		mpk_fdreg_del(*fd);
		close(*fd);
		*fd = -1;
	}
}
