/* SPDX-License-Identifier: MIT */
/* The one clock of the library: CLOCK_MONOTONIC in nanoseconds, for time
 * limits, rates and deadlines. clock_gettime() is async-signal-safe. */
#include "pool-int.h"

#include <time.h>

uint64_t mpg__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

