/* SPDX-License-Identifier: MIT */
/* --since/--until arguments, in the forms of systemd.time(7) that
 * journalctl takes: "2026-11-23 10:00:00[.frac]" (or with a T) with an
 * optional zone (Z, +01:00, " UTC"), a date, a time of today ("13:11"),
 * "now", "today", "yesterday", "tomorrow", "@EPOCH[.frac]", and spans
 * ("5 min ago", "-10m", "+1h 30min", "2h left"; a bare "90s" means ago, as
 * it always did here). Local time when no zone is given. */
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

/* systemd.time(7)'s units, longest first where one is a prefix. */
static const struct unit {
	const char *name;
	uint64_t ns;
} units[] = {
	{"usec", 1000}, {"us", 1000}, {"\xc2\xb5s", 1000},
	{"msec", 1000000}, {"ms", 1000000},
	{"seconds", NS}, {"second", NS}, {"sec", NS}, {"s", NS},
	{"minutes", 60 * NS}, {"minute", 60 * NS}, {"min", 60 * NS}, {"m", 60 * NS},
	{"hours", 3600 * NS}, {"hour", 3600 * NS}, {"hr", 3600 * NS}, {"h", 3600 * NS},
	{"days", 86400 * NS}, {"day", 86400 * NS}, {"d", 86400 * NS},
	{"weeks", 604800 * NS}, {"week", 604800 * NS}, {"w", 604800 * NS},
	{"months", 2629800 * NS}, {"month", 2629800 * NS}, {"M", 2629800 * NS},
	{"years", 31557600 * NS}, {"year", 31557600 * NS}, {"y", 31557600 * NS},
};

/* A span: one or more NUMBER[.FRAC] [ ]UNIT, spaces between; into *ret
 * ns. The whole of s[0..n) must be one. */
static int span(const char *s, size_t n, bool need_unit, uint64_t *ret)
{
	const char *p = s, *end = s + n;
	uint64_t total = 0;
	bool any = false;
	while (p < end) {
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		uint64_t whole = 0, frac = 0, scale = NS; /* frac in 1e-9 units */
		const char *d = p;
		while (p < end && isdigit((unsigned char)*p)) {
			if (whole > UINT64_MAX / 10 - 10)
				return -EINVAL;
			whole = whole * 10 + (uint64_t)(*p++ - '0');
		}
		if (p < end && *p == '.') {
			p++;
			for (; p < end && isdigit((unsigned char)*p); p++)
				if (scale /= 10)
					frac += (uint64_t)(*p - '0') * scale;
		}
		if (p == d || (p == d + 1 && *d == '.'))
			return -EINVAL;
		while (p < end && *p == ' ')
			p++;
		const struct unit *u = NULL;
		size_t ul = 0;
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
			size_t l = strlen(units[i].name);
			if ((size_t)(end - p) >= l && !memcmp(p, units[i].name, l) &&
			    (p + l == end || !isalpha((unsigned char)p[l])) && l > ul) {
				u = &units[i];
				ul = l;
			}
		}
		if (!u) {
			if (p != end || need_unit)
				return -EINVAL;
			u = &units[5]; /* a bare number: seconds, as in systemd */
		}
		p += ul;
		if (whole > UINT64_MAX / u->ns)
			return -EINVAL;
		uint64_t v = whole * u->ns, f = frac / 1000 * (u->ns / 1000000); /* no overflow */
		if (u->ns < 1000000)
			f = frac * u->ns / NS;
		if (v > UINT64_MAX - f || total > UINT64_MAX - v - f)
			return -EINVAL;
		total += v + f;
		any = true;
	}
	if (!any)
		return -EINVAL;
	*ret = total;
	return 0;
}

static bool ends_with(const char *s, size_t n, const char *suffix, size_t *left)
{
	size_t k = strlen(suffix);
	if (n < k || memcmp(s + n - k, suffix, k))
		return false;
	*left = n - k;
	return true;
}

/* "-SPAN", "+SPAN", "SPAN ago", "SPAN left", or a bare SPAN (ago). */
static int relative(const char *s, uint64_t now, uint64_t *ret)
{
	size_t n = strlen(s), k;
	bool future = false, bare = false;
	uint64_t d;
	if (*s == '-' || *s == '+') {
		future = *s == '+';
		s++;
		n--;
	} else if (ends_with(s, n, " ago", &k) || ends_with(s, n, "ago", &k)) {
		n = k;
	} else if (ends_with(s, n, " left", &k)) {
		n = k;
		future = true;
	} else {
		bare = true; /* "90s": a unit, or it would be no time at all */
	}
	if (!n || !isdigit((unsigned char)*s) || span(s, n, bare, &d) < 0)
		return -EINVAL;
	if (future) {
		if (d > UINT64_MAX - now)
			return -EINVAL;
		*ret = now + d;
	} else {
		*ret = d > now ? 0 : now - d;
	}
	return 0;
}

/* [Z|z|(+|-)HH[[:]MM]| UTC] at p, the rest of the string; *off in seconds
 * east of UTC, *zoned when there was one. */
static bool zone(const char *p, bool *zoned, long *off)
{
	*zoned = false;
	*off = 0;
	if (!*p)
		return true;
	if (((*p == 'Z' || *p == 'z') && !p[1]) || !strcmp(p, " UTC") || !strcmp(p, " Z")) {
		*zoned = true;
		return true;
	}
	if (*p == ' ' && (p[1] == '+' || p[1] == '-'))
		p++;
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

/* HH:MM[:SS[.frac]] at *p. */
static bool clock_time(const char **p, int *h, int *mi, int *sec, uint64_t *frac)
{
	*sec = 0;
	*frac = 0;
	if (!digits(p, 2, h) || *(*p)++ != ':' || !digits(p, 2, mi))
		return false;
	if (**p != ':')
		return true;
	(*p)++;
	if (!digits(p, 2, sec))
		return false;
	if (**p == '.' || **p == ',') {
		(*p)++;
		uint64_t scale = NS / 10;
		if (!isdigit((unsigned char)**p))
			return false;
		for (; isdigit((unsigned char)**p); (*p)++, scale /= 10)
			*frac += (uint64_t)(**p - '0') * scale;
	}
	return true;
}

/* Broken-down time (local unless zoned, off seconds east) to ns. */
static int to_ns(struct tm *tm, bool zoned, long off, uint64_t frac, uint64_t *ret)
{
	int d = tm->tm_mday;
	time_t t = zoned ? timegm(tm) : mktime(tm);
	if (t == (time_t)-1 || tm->tm_mday != d) /* mktime moved 31 Feb to March */
		return -EINVAL;
	t -= off;
	/* Nanoseconds in 64 bits end in 2554: later must not wrap. */
	if (t < 0 || (uint64_t)t > (UINT64_MAX - frac) / NS)
		return -EINVAL;
	*ret = (uint64_t)t * NS + frac;
	return 0;
}

/* needzone: RFC 3339, as the JSON sink writes "time". */
static int absolute(const char *s, bool needzone, uint64_t *ret)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	uint64_t frac = 0;
	if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
	    !digits(&p, 2, &d))
		return -EINVAL;
	if ((*p == 'T' || *p == 't' || *p == ' ') && isdigit((unsigned char)p[1])) {
		p++;
		if (!clock_time(&p, &h, &mi, &sec, &frac))
			return -EINVAL;
	}
	bool zoned;
	long off;
	if (!zone(p, &zoned, &off) || (needzone && !zoned))
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
			.tm_min = mi, .tm_sec = sec, .tm_isdst = -1};
	return to_ns(&tm, zoned, off, frac, ret);
}

/* Today's date (local, or UTC when zoned) at a time, days added. */
static int on_day(uint64_t now, int days, int h, int mi, int sec, uint64_t frac, bool zoned,
		  long off, uint64_t *ret)
{
	time_t t = (time_t)(now / NS) + (zoned ? off : 0);
	struct tm tm;
	if (!(zoned ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)))
		return -EINVAL;
	tm = (struct tm){.tm_year = tm.tm_year, .tm_mon = tm.tm_mon, .tm_mday = tm.tm_mday + days,
			 .tm_hour = h, .tm_min = mi, .tm_sec = sec, .tm_isdst = -1};
	time_t u = zoned ? timegm(&tm) : mktime(&tm);
	if (u == (time_t)-1)
		return -EINVAL;
	u -= off;
	if (u < 0 || (uint64_t)u > (UINT64_MAX - frac) / NS)
		return -EINVAL;
	*ret = (uint64_t)u * NS + frac;
	return 0;
}

/* "now", "today", "yesterday", "tomorrow", each with an optional zone;
 * "HH:MM[:SS]" today. */
static int named(const char *s, uint64_t now, uint64_t *ret)
{
	static const struct {
		const char *name;
		int days;
	} days[] = {{"today", 0}, {"yesterday", -1}, {"tomorrow", 1}};
	bool zoned;
	long off;
	if (!strcmp(s, "now")) {
		*ret = now;
		return 0;
	}
	for (size_t i = 0; i < sizeof days / sizeof days[0]; i++) {
		size_t l = strlen(days[i].name);
		if (!strncmp(s, days[i].name, l) && (!s[l] || s[l] == ' ') &&
		    zone(s + l, &zoned, &off))
			return on_day(now, days[i].days, 0, 0, 0, 0, zoned, off, ret);
	}
	const char *p = s;
	int h, mi, sec;
	uint64_t frac;
	if (strlen(s) >= 5 && s[2] == ':' && clock_time(&p, &h, &mi, &sec, &frac) &&
	    zone(p, &zoned, &off) && h <= 23 && mi <= 59 && sec <= 60)
		return on_day(now, 0, h, mi, sec, frac, zoned, off, ret);
	return -EINVAL;
}

/* "@SECONDS[.FRAC]": exact, in ns. */
static int epoch(const char *s, uint64_t *ret)
{
	const char *p = s + 1;
	uint64_t n = 0, frac = 0, scale = NS;
	for (; isdigit((unsigned char)*p); p++) {
		if (n > UINT64_MAX / 10 / NS)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (p == s + 1)
		return -EINVAL;
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++)
			if (scale /= 10)
				frac += (uint64_t)(*p - '0') * scale;
	}
	if (*p || n > (UINT64_MAX - frac) / NS)
		return -EINVAL;
	*ret = n * NS + frac;
	return 0;
}

int mt_time_parse(const char *s, uint64_t now_ns, uint64_t *ret)
{
	if (!s || !*s || !ret)
		return -EINVAL;
	if (*s == '@')
		return epoch(s, ret);
	if (named(s, now_ns, ret) == 0)
		return 0;
	if (relative(s, now_ns, ret) == 0)
		return 0;
	return absolute(s, false, ret);
}

int mt_time_parse_rfc3339(const char *s, uint64_t *ret)
{
	return s && ret ? absolute(s, true, ret) : -EINVAL;
}
