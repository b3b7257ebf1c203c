/* SPDX-License-Identifier: MIT */
/* Fuzz target: mplog(1)'s --since/--until parser (mt_time_parse): the
 * forms of systemd.time(7). Invariants: "@N[.F]" is N seconds (and F)
 * exactly; a span ago is never after now, one ahead ("+", "left") never
 * before; a time with "Z" falls in the year it names (no wrap-around). */
#include "fuzz-check.h"
#include "mplog-tool.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>


#define NS 1000000000ull
static const uint64_t now = 1764000000ull * NS; /* 2025-11-24 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = strndup((const char *)data, size); /* up to a NUL, as argv */
	FUZZ_CHECK(s);
	size_t n = strlen(s);
	uint64_t t;
	if (mt_time_parse(s, now, &t) == 0) {
		FUZZ_CHECK(n > 0);
		bool ahead = s[0] == '+' || (n > 5 && !strcmp(s + n - 5, " left"));
		if (s[0] == '@') {
			/* Every digit counted, nothing wrapped. */
			char *end;
			unsigned long long secs = strtoull(s + 1, &end, 10);
			FUZZ_CHECK((!*end && t % NS == 0 && t / NS == secs) ||
				   (*end == '.' && t / NS == secs));
		} else if (ahead) {
			FUZZ_CHECK(t >= now);
		} else if (n >= 2 && s[n - 1] >= 'a' && s[n - 1] <= 'z' && s[n - 1] != 'z' &&
			   strcmp(s, "tomorrow")) {
			FUZZ_CHECK(t <= now); /* a span ago, today, yesterday */
		} else if (n >= 10 && (s[n - 1] == 'Z' || s[n - 1] == 'z') && s[4] == '-') {
			/* :60, a leap second, is the next second: maybe Jan 1. */
			time_t sec = (time_t)(t / NS);
			struct tm tm, before;
			time_t sec1 = sec - 1;
			FUZZ_CHECK(gmtime_r(&sec, &tm) && gmtime_r(&sec1, &before));
			FUZZ_CHECK(tm.tm_year + 1900 == atoi(s) || before.tm_year + 1900 == atoi(s));
		}
	}
	free(s);
	return 0;
}
