/* SPDX-License-Identifier: MIT */
/* Channel plumbing around fork(): creating pipes, connecting a freshly
 * forked child to its channels (and its ring), closing the child's ends in
 * the parent. */
#include "writer-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

MPLOG_EXPORT int mplog_pipe(int *ret_read_fd, int *ret_write_fd)
{
	if (!ret_read_fd || !ret_write_fd)
		return -EINVAL;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	*ret_read_fd = p[0];
	*ret_write_fd = p[1];
	return 0;
}

static int move_to(int fd, int target)
{
	if (fd < 0 || fd == target)
		return 0;
	/* dup2 leaves the new fd without FD_CLOEXEC: stdout/stderr survive
	 * an exec, as they should. */
	while (dup2(fd, target) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

MPLOG_EXPORT int mplog_child_setup(const mplog_child_fds *fds, int worker, unsigned flags,
				   mplog_writer **ret)
{
	if (!fds || fds->log_fd < 0)
		return -EINVAL;
	fflush(stdout);
	fflush(stderr);
	int r = move_to(fds->stdout_fd, STDOUT_FILENO);
	if (r == 0)
		r = move_to(fds->stderr_fd, STDERR_FILENO);
	if (r < 0)
		return r;
	if (fds->stdout_fd > STDERR_FILENO && fds->stdout_fd != fds->log_fd)
		close(fds->stdout_fd);
	if (fds->stderr_fd > STDERR_FILENO && fds->stderr_fd != fds->log_fd)
		close(fds->stderr_fd);
	struct mplog__ring ring = {0};
	if (fds->ring_fd >= 0 && fds->ring_fd != fds->log_fd) {
		/* Not a ring (a struct filled by hand, zero for ring_fd: fd 0),
		 * or no memory to map it: the pipe alone, the fd untouched. */
		if (mplog__ring_attach(fds->ring_fd, &ring) < 0)
			ring.sh = NULL;
		else if (fds->ring_fd > STDERR_FILENO)
			close(fds->ring_fd); /* the mapping stays */
	}
	if (fds->stdout_fd >= 0)
		setvbuf(stdout, NULL, _IOLBF, 0); /* a pipe would make it fully buffered */
	mplog_writer *w;
	r = mplog_writer_new(fds->log_fd, flags, &w);
	if (r < 0) {
		mplog__ring_unmap(&ring);
		return r;
	}
	w->ring = ring;
	mplog_set_default_writer(w);
	mplog_set_context(worker, -1);
	if (ret)
		*ret = w;
	return 0;
}

MPLOG_EXPORT void mplog_child_fds_close(mplog_child_fds *fds)
{
	if (!fds)
		return;
	int *v[4] = {&fds->log_fd, &fds->stdout_fd, &fds->stderr_fd, &fds->ring_fd};
	for (int i = 0; i < 4; i++) {
		if (*v[i] >= 0)
			close(*v[i]);
		*v[i] = -1;
	}
}
