/* SPDX-License-Identifier: MIT */
/* A task in a library that test-cluster dlopen()s on rank 0 only: the
 * agents cannot find it, and must say so instead of jumping anywhere. */
#include "mpguard.h"

__attribute__((visibility("default"))) int clusterlib_task(mpg_task *task, const void *in,
							   size_t len, void *userdata)
{
	(void)userdata;
	return mpg_task_set_result(task, in, len);
}
