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

void mpg__deadline_after_ms(struct timespec *dl, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, dl); /* the pool's cond runs on it */
	if (timeout_ms < 0)
		return;
	dl->tv_sec += timeout_ms / 1000;
	dl->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl->tv_nsec >= 1000000000L) {
		dl->tv_sec++;
		dl->tv_nsec -= 1000000000L;
	}
}

