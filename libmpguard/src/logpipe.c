/* SPDX-License-Identifier: MIT */
/* The pipes of one worker or service to the merged log: its records (a
 * pipe and a ring) and, when captured, its stdout and stderr, each a
 * channel of the aggregator. Shared by the pool and the supervisor. */
#include "pool-int.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* One pipe: the read end becomes a channel, the write end goes to io. */
static int open_one(mplog_aggregator *a, mplog_stream stream, const char *name, int worker,
		    int *io, unsigned *channel)
{
	int lp[2];
	if (pipe2(lp, O_CLOEXEC) < 0)
		return -errno;
	mpg__fdreg_add(lp[1]); /* a fork() elsewhere must not keep it open */
	int id = mplog_aggregator_add(a, lp[0], stream, name, worker);
	if (id < 0) {
		mpg__fdreg_del(lp[1]);
		close(lp[1]);
		return id; /* the aggregator closed lp[0] */
	}
	*io = lp[1];
	if (channel)
		*channel = (unsigned)id;
	return 0;
}

/* The records' channel: its pipe and ring. */
static int open_log(mplog_aggregator *a, const char *name, int worker, int io[MPG_LOG_FDS])
{
	mplog_child_fds fds;
	int r = mplog_aggregator_add_child(a, name, worker, 0, &fds);
	if (r < 0)
		return r;
	mpg__fdreg_add(fds.log_fd); /* a fork() elsewhere must not keep them */
	if (fds.ring_fd >= 0)
		mpg__fdreg_add(fds.ring_fd);
	io[0] = fds.log_fd;
	io[3] = fds.ring_fd;
	return 0;
}

int mpg__log_pipes_open(mplog_aggregator *a, const char *name, int worker, unsigned capture,
			int io[MPG_LOG_FDS], unsigned capture_ch[2])
{
	io[0] = io[1] = io[2] = io[3] = -1;
	capture_ch[0] = capture_ch[1] = 0;
	if (!a)
		return 0;
	int r = open_log(a, name, worker, io), e;
	if (capture & MPG_CAPTURE_STDOUT &&
	    (e = open_one(a, MPLOG_STREAM_STDOUT, name, worker, &io[1], &capture_ch[0])) < 0 && !r)
		r = e;
	if (capture & MPG_CAPTURE_STDERR &&
	    (e = open_one(a, MPLOG_STREAM_STDERR, name, worker, &io[2], &capture_ch[1])) < 0 && !r)
		r = e;
	return r;
}

void mpg__log_pipes_close(int io[MPG_LOG_FDS])
{
	for (int i = 0; i < MPG_LOG_FDS; i++)
		mpg__fdreg_close(&io[i]);
}

bool mpg__log_pipes_set_pid(mplog_aggregator *a, const unsigned capture_ch[2], pid_t pid)
{
	bool captured = false;
	for (int k = 0; k < 2; k++) {
		if (capture_ch[k]) {
			(void)mplog_aggregator_set_pid(a, capture_ch[k], pid);
			captured = true;
		}
	}
	return captured;
}
