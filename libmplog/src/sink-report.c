/* SPDX-License-Identifier: MIT */
/* What a sink in trouble tells: records the aggregator emits about one of
 * its fd or file sinks. A failure goes to the other sinks at once (the
 * failing one cannot take it); once the sink's queue is written again, a
 * record with the count of what it lost goes into the sink itself, at the
 * place of the gap (before any later record), and to the other sinks; a
 * sink given up at the end (stop, free) reports its loss to the others. Keys: mplog.sink (the path, or
 * "fd N"), mplog.error (the errno's name, "EAGAIN" for a sink that was not
 * keeping up), mplog.lost (records). */
#include "aggregator-int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *err_name(int e)
{
	const char *n = e ? strerrorname_np(-e) : NULL;
	return n ? n : "0";
}

static const char *reason(int e, char *buf, size_t size)
{
	if (e == -EAGAIN)
		snprintf(buf, size, "it was not keeping up, its queue was full");
	else
		snprintf(buf, size, "%s", strerror(-e));
	return buf;
}

static int recovered_msg(char *msg, size_t size, const char *name, uint64_t lost, int why)
{
	char buf[128];
	if (!lost)
		return snprintf(msg, size, "log sink \"%s\" works again; no record lost", name);
	return snprintf(msg, size, "log sink \"%s\": %llu records lost: %s", name,
			(unsigned long long)lost, reason(why, buf, sizeof buf));
}

void mplog__sink_recovered(mplog_sink *s)
{
	const char *name = s->path ? s->path : s->name;
	char msg[1024], nl[24];
	int n = recovered_msg(msg, sizeof msg, name, s->lost, s->lost_why);
	snprintf(nl, sizeof nl, "%llu", (unsigned long long)s->lost);
	const char *kv[] = {"mplog.sink", name, "mplog.error", err_name(s->lost_why),
			    "mplog.lost", nl};
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	mplog_record r = {
		.ts = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
		.level = s->lost ? MPLOG_WARN : MPLOG_NOTICE,
		.stream = MPLOG_STREAM_LOG,
		.pid = getpid(),
		.worker = -1,
		.task = -1,
		.line = __LINE__,
		.channel = "",
		.host = "",
		.rank = -1,
		.file = __FILE__,
		.func = "mplog_aggregator",
		.msg = msg,
		.msg_len = n < 0 ? 0 : strnlen(msg, sizeof msg),
		.nkv = 3,
		.kv = kv,
	};
	r.observed = r.ts;
	if (r.level >= s->min_level)
		mplog__sink_queue_record(s, &r);
	if (s->report != REPORT_RECOVERED)
		s->report_lost = 0;
	s->report = REPORT_RECOVERED; /* the others are told at the flush */
	s->report_lost += s->lost;
	s->report_why = s->lost_why;
	s->lost = 0;
	s->lost_why = 0;
	s->told = false;
}

static void emit(mplog_aggregator *a, const mplog_sink *quiet, mplog_level level,
		 const char *name, int err, uint64_t lost, const char *msg, int n)
{
	char nl[24];
	const char *en = err_name(err);
	snprintf(nl, sizeof nl, "%llu", (unsigned long long)lost);
	struct mplog__str kv[] = {
		{"mplog.sink", 10}, {name, (uint32_t)strlen(name)},
		{"mplog.error", 11}, {en, (uint32_t)strlen(en)},
		{"mplog.lost", 10}, {nl, (uint32_t)strlen(nl)},
	};
	if (n < 0)
		n = 0;
	struct mplog__parts p = {
		.level = level,
		.stream = MPLOG_STREAM_LOG,
		.pid = getpid(),
		.worker = -1,
		.task = -1,
		.file = {__FILE__, sizeof __FILE__ - 1},
		.func = {"mplog_aggregator", 16},
		.line = __LINE__,
		.msg = {msg, (uint32_t)strnlen(msg, (size_t)n)},
		.kv = kv,
		.nkv = 3,
	};
	a->quiet = quiet;
	mplog__emit(a, NULL, &p);
	a->quiet = NULL;
}

static void report(mplog_aggregator *a, mplog_sink *s)
{
	const char *name = s->path ? s->path : s->name;
	char msg[1024], why[128];
	enum sink_report what = s->report;
	s->report = REPORT_NONE;
	uint64_t lost = s->lost;
	int n;
	switch (what) {
	case REPORT_FAILED:
		n = snprintf(msg, sizeof msg,
			     "log sink \"%s\" failed: %s; its records wait (up to %u KiB), then are "
			     "dropped and counted, until it works again",
			     name, strerror(-s->err), MPLOG_SINK_QUEUE_BYTES >> 10);
		emit(a, s, MPLOG_ERROR, name, s->err, lost, msg, n);
		s->told = true;
		return;
	case REPORT_RECOVERED: /* the sink has it already (mplog__sink_recovered()) */
		n = recovered_msg(msg, sizeof msg, name, s->report_lost, s->report_why);
		emit(a, s, s->report_lost ? MPLOG_WARN : MPLOG_NOTICE, name, s->report_why,
		     s->report_lost, msg, n);
		return;
	case REPORT_GAVE_UP:
		n = snprintf(msg, sizeof msg, "log sink \"%s\" given up: %llu records lost: %s", name,
			     (unsigned long long)lost, reason(s->lost_why, why, sizeof why));
		emit(a, s, MPLOG_ERROR, name, s->lost_why, lost, msg, n);
		break;
	case REPORT_NONE:
		return;
	}
	s->lost = 0;
	s->lost_why = 0;
	s->told = false;
}

void mplog__sink_reports(mplog_aggregator *a)
{
	for (size_t i = 0; i < a->nsinks; i++)
		if (a->sinks[i]->report != REPORT_NONE)
			report(a, a->sinks[i]);
}
