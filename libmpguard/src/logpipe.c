/* SPDX-License-Identifier: MIT */
/* The pipes of one worker or service to the merged log: its records and,
 * when captured, its stdout and stderr, each a channel of the aggregator.
 * Shared by the pool and the supervisor. */
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

int mpg__log_pipes_open(mplog_aggregator *a, const char *name, int worker, unsigned capture,
			int io[3], unsigned capture_ch[2])
{
	io[0] = io[1] = io[2] = -1;
	capture_ch[0] = capture_ch[1] = 0;
	if (!a)
		return 0;
	int r = open_one(a, MPLOG_STREAM_LOG, name, worker, &io[0], NULL), e;
	if (capture & MPG_CAPTURE_STDOUT &&
	    (e = open_one(a, MPLOG_STREAM_STDOUT, name, worker, &io[1], &capture_ch[0])) < 0 && !r)
		r = e;
	if (capture & MPG_CAPTURE_STDERR &&
	    (e = open_one(a, MPLOG_STREAM_STDERR, name, worker, &io[2], &capture_ch[1])) < 0 && !r)
		r = e;
	return r;
}

void mpg__log_pipes_close(int io[3])
{
	for (int i = 0; i < 3; i++)
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
