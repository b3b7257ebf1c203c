/* SPDX-License-Identifier: MIT */
/* SCM_RIGHTS packing and unpacking, shared by the fork server, the
 * dispatcher and the worker. */
#include "fdpass-int.h"

#include <string.h>
#include <unistd.h>

void mpg__cmsg_put_fds(struct msghdr *mh, void *buf, const int *fds, unsigned n)
{
	if (n == 0) {
		mh->msg_control = NULL;
		mh->msg_controllen = 0;
		return;
	}
	memset(buf, 0, CMSG_SPACE(sizeof(int) * n));
	mh->msg_control = buf;
	mh->msg_controllen = CMSG_SPACE(sizeof(int) * n);
	struct cmsghdr *c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
}

unsigned mpg__cmsg_take_fds(struct msghdr *mh, int *out, unsigned max, unsigned *dropped)
{
	unsigned got = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
			if (got < max) {
				out[got++] = fd;
			} else {
				close(fd);
				if (dropped)
					(*dropped)++;
			}
		}
	}
	return got;
}
