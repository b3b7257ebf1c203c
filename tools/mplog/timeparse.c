/* SPDX-License-Identifier: MIT */
/* --since/--until arguments: ISO 8601 dates and times (local unless a zone
 * is given), "@EPOCH", or a duration meaning that long before now. */
#include "mplog-tool.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#define NS 1000000000ull

/* Exactly n digits at *p into *v. */
static bool digits(const char **p, int n, int *v)
{
	int x = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		x = x * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*v = x;
	return true;
}

static int relative(const char *s, uint64_t now, uint64_t *ret)
{
	const char *p = s;
	uint64_t n = 0;
	while (isdigit((unsigned char)*p)) {
		if (n > UINT64_MAX / 10 / NS)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*p++ - '0');
	}
	if (p == s || p[0] == 0 || p[1] != 0)
		return -EINVAL;
	const char *units = "smhdw";
	static const uint64_t secs[] = {1, 60, 3600, 86400, 604800};
	const char *u = strchr(units, *p);
	if (!u)
		return -EINVAL;
	uint64_t mul = secs[u - units] * NS;
	if (n > UINT64_MAX / mul)
		return -EINVAL;
	n *= mul;
	*ret = n > now ? 0 : now - n;
	return 0;
}

/* [Z|z|(+|-)HH[[:]MM]] at p, the rest of the string; *off in seconds
 * east of UTC, *zoned when there was one. */
static bool zone(const char *p, bool *zoned, long *off)
{
	*zoned = false;
	*off = 0;
	if (!*p)
		return true;
	if ((*p == 'Z' || *p == 'z') && !p[1]) {
		*zoned = true;
		return true;
	}
	if (*p != '+' && *p != '-')
		return false;
	int sign = *p++ == '-' ? -1 : 1, hh, mm = 0;
	if (!digits(&p, 2, &hh) || hh > 23)
		return false;
	if (*p == ':')
		p++;
	if (*p && (!digits(&p, 2, &mm) || mm > 59))
		return false;
	if (*p)
		return false;
	*zoned = true;
	*off = sign * (hh * 3600L + mm * 60L);
	return true;
}

static int absolute(const char *s, uint64_t *ret)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	uint64_t frac = 0;
	if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
	    !digits(&p, 2, &d))
		return -EINVAL;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
			return -EINVAL;
		if (*p == ':') {
			p++;
			if (!digits(&p, 2, &sec))
				return -EINVAL;
			if (*p == '.' || *p == ',') {
				p++;
				uint64_t scale = NS / 10;
				if (!isdigit((unsigned char)*p))
					return -EINVAL;
				for (; isdigit((unsigned char)*p); p++, scale /= 10)
					frac += (uint64_t)(*p - '0') * scale;
			}
		}
	}
	bool zoned;
	long off;
	if (!zone(p, &zoned, &off))
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
			.tm_min = mi, .tm_sec = sec, .tm_isdst = -1};
	time_t t = zoned ? timegm(&tm) : mktime(&tm);
	if (t == (time_t)-1 || tm.tm_mday != d) /* mktime moved 31 Feb to March */
		return -EINVAL;
	t -= off;
	/* Nanoseconds in 64 bits end in 2554: later must not wrap. */
	if (t < 0 || (uint64_t)t > (UINT64_MAX - frac) / NS)
		return -EINVAL;
	*ret = (uint64_t)t * NS + frac;
	return 0;
}

int mt_time_parse(const char *s, uint64_t now_ns, uint64_t *ret)
{
	if (!s || !*s || !ret)
		return -EINVAL;
	if (*s == '@') {
		const char *p = s + 1;
		uint64_t n = 0;
		for (; isdigit((unsigned char)*p); p++) {
			if (n > UINT64_MAX / 10 / NS)
				return -EINVAL;
			n = n * 10 + (uint64_t)(*p - '0');
		}
		if (p == s + 1 || *p || n > UINT64_MAX / NS)
			return -EINVAL;
		*ret = n * NS;
		return 0;
	}
	if (relative(s, now_ns, ret) == 0)
		return 0;
	return absolute(s, ret);
}
