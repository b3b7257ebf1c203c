/* SPDX-License-Identifier: MIT */
/* Passing fds over unix sockets (SCM_RIGHTS): the one place that packs and
 * unpacks the ancillary data. Internal. */
#pragma once

#include <stddef.h>
#include <sys/socket.h>

/* Attach fds[0..n) to mh, using buf (at least CMSG_SPACE(n * sizeof(int))
 * bytes, suitably aligned); n == 0 attaches nothing. */
void mpg__cmsg_put_fds(struct msghdr *mh, void *buf, const int *fds, unsigned n);

/* Take the fds a received mh carries: up to max into out, in order; the
 * rest are closed and counted in *dropped (may be NULL). Returns how many
 * went to out. */
unsigned mpg__cmsg_take_fds(struct msghdr *mh, int *out, unsigned max, unsigned *dropped);
