/* SPDX-License-Identifier: MIT */
/* How an fd or file sink writes: through a descriptor of its own, never
 * blocking and never raising SIGPIPE, since it writes under the
 * aggregator's lock from whichever thread logs (a pool's dispatcher too).
 *
 * - A pipe or a terminal is reopened through /proc/self/fd with
 *   O_NONBLOCK: a file description of our own, so the flag does not
 *   change the program's own writes to it. A socket is written with
 *   send(MSG_DONTWAIT). A regular file never makes a write wait for a
 *   reader; it is dup'ed. Where /proc is missing, a pipe or a terminal is
 *   dup'ed and its writes may block (DESIGN.md, "Known limits").
 * - The descriptor is >= 3 and taken when the sink is made, so that what
 *   later takes the caller's number (fd 2 closed, then reused by an epoll
 *   fd) never receives log text. */
#include "aggregator-int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int mplog__sink_fd_open(mplog_sink *s, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	s->fifo = S_ISFIFO(st.st_mode);
	s->sock = S_ISSOCK(st.st_mode);
	s->pollable = s->fifo || s->sock || S_ISCHR(st.st_mode);
	int w = -1;
	if (s->fifo || S_ISCHR(st.st_mode)) {
		char path[40];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		do
			w = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		while (w < 0 && errno == EINTR);
		if (w >= 0 && w < 3) { /* keep clear of 0-2 */
			int d = fcntl(w, F_DUPFD_CLOEXEC, 3);
			close(w);
			w = d;
		}
	}
	if (w < 0) /* a socket, a file, or no /proc: the same description */
		w = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (w < 0)
		return -errno;
	s->wfd = w;
	mpk_fdreg_add(w); /* no forked child keeps it */
	return 0;
}

/* write(2) to a pipe whose reader is gone raises SIGPIPE at the writing
 * thread (a thread-directed signal), which would kill a program that did
 * not ignore it. MSG_NOSIGNAL exists for sockets only, so for a pipe the
 * thread blocks SIGPIPE while it writes and, if the write failed with
 * EPIPE, takes the signal it raised with sigtimedwait() (zero timeout)
 * before unblocking. Safe because: the mask is this thread's only and is
 * restored; a SIGPIPE already pending before the write (sent by someone
 * else) is left alone, as it would merge with ours; Linux dequeues a
 * thread's own pending signals before the process's, so what we take is
 * the one our write raised. */
static ssize_t write_pipe(int fd, const void *data, size_t len)
{
	sigset_t pipe_set, old, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigemptyset(&pending);
	sigpending(&pending);
	bool was_pending = sigismember(&pending, SIGPIPE);
	ssize_t k;
	do
		k = write(fd, data, len);
	while (k < 0 && errno == EINTR);
	int e = errno;
	if (k < 0 && e == EPIPE && !was_pending) {
		const struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return k;
}

size_t mplog__sink_fd_write(mplog_sink *s, const void *data, size_t len, int *err)
{
	const char *p = data;
	size_t off = 0;
	*err = 0;
	while (off < len) {
		ssize_t k;
		if (s->sock)
			k = send(s->wfd, p + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		else if (s->fifo)
			k = write_pipe(s->wfd, p + off, len - off);
		else
			k = write(s->wfd, p + off, len - off);
		if (k > 0) {
			off += (size_t)k;
		} else if (k < 0 && errno == EINTR) {
			continue;
		} else {
			*err = k < 0 ? -errno : -EIO; /* -EAGAIN: full for now */
			if (*err == -EWOULDBLOCK)
				*err = -EAGAIN;
			break;
		}
	}
	return off;
}
