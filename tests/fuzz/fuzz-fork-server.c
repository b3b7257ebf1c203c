/* SPDX-License-Identifier: MIT */
/* Fuzz target: the fork server's messages as the parent and the server
 * decode them (libmpguard/src/proto.c: mpg__fsmsg_decode), one datagram a
 * run; the first byte says whether the kernel flagged it truncated.
 * Invariant: only a whole message of a known type is accepted. */
#include "proto-int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	struct mpg__fsmsg m;
	if (mpg__fsmsg_decode(data + 1, size - 1, data[0] & 1, &m) == 0 &&
	    (size - 1 != sizeof m || (data[0] & 1) || m.type < FS_SPAWN || m.type > FS_KILL))
		abort();
	return 0;
}
