/* SPDX-License-Identifier: MIT */
/* Output marks (mark-int.h): the child's call that writes them, and the
 * parser's test for one. */
#include "mark-int.h"
#include "mplog.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

size_t mplog__mark_format(char *dst, int64_t task)
{
	int n = snprintf(dst, MPLOG_MARK_MAX + 1, MPLOG_MARK_PREFIX "%lld\033\\",
			 (long long)(task < -1 ? -1 : task));
	return (size_t)n;
}

enum mplog__mark_scan mplog__mark_at(const uint8_t *p, size_t n, size_t *len, int64_t *task)
{
	size_t k = n < MPLOG_MARK_PREFIX_LEN ? n : MPLOG_MARK_PREFIX_LEN;
	if (memcmp(p, MPLOG_MARK_PREFIX, k) != 0)
		return MARK_NONE;
	if (n <= MPLOG_MARK_PREFIX_LEN)
		return MARK_PARTIAL;
	size_t i = MPLOG_MARK_PREFIX_LEN;
	if (p[i] == '-') { /* only -1 */
		if (n == i + 1)
			return MARK_PARTIAL;
		if (p[i + 1] != '1')
			return MARK_NONE;
		i += 2;
		*task = -1;
	} else {
		uint64_t v = 0;
		size_t d = i;
		for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
			if (i - d == 19)
				return MARK_NONE;
			v = v * 10 + (uint64_t)(p[i] - '0');
		}
		if (i == d && i < n)
			return MARK_NONE;
		if (v > INT64_MAX)
			return MARK_NONE;
		*task = (int64_t)v;
	}
	if (i == n)
		return MARK_PARTIAL;
	if (p[i] != '\033')
		return MARK_NONE;
	if (i + 1 == n)
		return MARK_PARTIAL;
	if (p[i + 1] != '\\')
		return MARK_NONE;
	*len = i + 2;
	return MARK_FOUND;
}

/* All of it, through EINTR and a full non-blocking pipe. */
static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		return k < 0 ? -errno : -EIO;
	}
	return 0;
}

MPLOG_EXPORT int mplog_mark_output(unsigned streams)
{
	if (!streams || (streams & ~(unsigned)(MPLOG_CAPTURE_STDOUT | MPLOG_CAPTURE_STDERR)))
		return -EINVAL;
	int64_t task;
	mplog_get_context(NULL, &task);
	char mark[MPLOG_MARK_MAX + 1];
	size_t n = mplog__mark_format(mark, task);
	int r = 0;
	/* What stdio holds was written before the mark. */
	if (streams & MPLOG_CAPTURE_STDOUT) {
		fflush(stdout);
		r = write_all(STDOUT_FILENO, mark, n);
	}
	if (streams & MPLOG_CAPTURE_STDERR) {
		fflush(stderr);
		int e = write_all(STDERR_FILENO, mark, n);
		if (!r)
			r = e;
	}
	return r;
}
