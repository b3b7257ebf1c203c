/* SPDX-License-Identifier: MIT */
/* The mplog tool: its time parser, filters and line reader as units, then
 * the built binary run against JSON logs written by a real libmplog sink
 * from real forked children and from a real pool whose tasks crash:
 * every filter, --json, --stats, garbage lines, tail -n, and tail -f
 * across a rotation and a truncation (synchronized on its output only).
 * MPLOG_TOOL_VALGRIND=path runs each mplog under memcheck. */
#include "mplog-test.h"
#include "mplog-tool.h"

#include <limits.h>
#include <mpguard.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>

#define NS 1000000000ull

/* ---- units: time parser ------------------------------------------------- */

START_TEST(time_parser_reads_iso_8601_epoch_and_durations)
{
	setenv("TZ", "UTC", 1);
	tzset();
	uint64_t t, now = 1800000000ull * NS;
	ck_assert_int_eq(mt_time_parse("2026-11-23T10:00:00Z", now, &t), 0);
	ck_assert_uint_eq(t, 1795428000ull * NS);
	ck_assert_int_eq(mt_time_parse("2026-11-23 10:00", now, &t), 0); /* local = UTC here */
	ck_assert_uint_eq(t, 1795428000ull * NS);
	ck_assert_int_eq(mt_time_parse("2026-11-23T11:30:00+01:30", now, &t), 0);
	ck_assert_uint_eq(t, 1795428000ull * NS);
	ck_assert_int_eq(mt_time_parse("2026-11-23T05:00:00-0500", now, &t), 0);
	ck_assert_uint_eq(t, 1795428000ull * NS);
	ck_assert_int_eq(mt_time_parse("2026-11-23T10:00:00.25Z", now, &t), 0);
	ck_assert_uint_eq(t, 1795428000ull * NS + 250000000u);
	ck_assert_int_eq(mt_time_parse("2026-11-23T10:00:00.123456789", now, &t), 0);
	ck_assert_uint_eq(t, 1795428000ull * NS + 123456789u);
	ck_assert_int_eq(mt_time_parse("2026-11-23", now, &t), 0);
	ck_assert_uint_eq(t, (1795428000ull - 36000) * NS);
	ck_assert_int_eq(mt_time_parse("@1795428000", now, &t), 0);
	ck_assert_uint_eq(t, 1795428000ull * NS);
	ck_assert_int_eq(mt_time_parse("90s", now, &t), 0);
	ck_assert_uint_eq(t, now - 90 * NS);
	ck_assert_int_eq(mt_time_parse("10m", now, &t), 0);
	ck_assert_uint_eq(t, now - 600 * NS);
	ck_assert_int_eq(mt_time_parse("2h", now, &t), 0);
	ck_assert_uint_eq(t, now - 7200 * NS);
	ck_assert_int_eq(mt_time_parse("1d", now, &t), 0);
	ck_assert_uint_eq(t, now - 86400 * NS);
	/* A local zone of its own: no tzdata needed for a POSIX TZ string. */
	setenv("TZ", "XXX-2", 1);
	tzset();
	ck_assert_int_eq(mt_time_parse("2026-11-23 12:00", now, &t), 0);
	ck_assert_uint_eq(t, 1795428000ull * NS);
	const char *bad[] = {"", "10", "10x", "m", "-m", "2026-13-01", "2026-02-30",
			     "2026-11-23T25:00", "2026-11-23T10", "2026-11-23T10:00Q",
			     "2026-11-23T10:00+1", "@", "@12x", "@1.", "yesterdays", "5 parsecs ago",
			     "13:61", "25:00", "1", "1:", "99999999999999999999s"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(mt_time_parse(bad[i], now, &t) == -EINVAL, "accepted '%s'", bad[i]);
	unsetenv("TZ");
	tzset();
}
END_TEST

/* journalctl's forms (systemd.time(7)). */
START_TEST(time_parser_reads_systemd_time_forms)
{
	setenv("TZ", "UTC", 1);
	tzset();
	uint64_t t, now = 1800000000ull * NS + 5; /* 2027-01-15 08:00:00 UTC */
	const uint64_t midnight = (1800000000ull - 8 * 3600) * NS;
	static const struct {
		const char *s;
		int64_t from_now_s; /* or, when at != 0, exactly at */
		uint64_t at;
	} ok[] = {
		{"now", 0, 0},
		{"5 min ago", -300, 0},
		{"5min ago", -300, 0},
		{"-10m", -600, 0},
		{"+1h 30min", 5400, 0},
		{"2h left", 7200, 0},
		{"1.5h ago", -5400, 0},
		{"1 week ago", -604800, 0},
		{"3 seconds ago", -3, 0},
		{"@1795957878.55", 0, 1795957878550000000ull},
		{"@1795957878", 0, 1795957878000000000ull},
		{"2026-11-29 13:11:05 UTC", 0, 1795957865000000000ull},
		{"2026-11-29T13:11:05.5Z", 0, 1795957865500000000ull},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		ck_assert_msg(mt_time_parse(ok[i].s, now, &t) == 0, "refused '%s'", ok[i].s);
		uint64_t want = ok[i].at ? ok[i].at : now + (uint64_t)(ok[i].from_now_s * (int64_t)NS);
		ck_assert_msg(t == want, "'%s': %llu, not %llu", ok[i].s, (unsigned long long)t,
			      (unsigned long long)want);
	}
	ck_assert_int_eq(mt_time_parse("today", now, &t), 0);
	ck_assert_uint_eq(t, midnight);
	ck_assert_int_eq(mt_time_parse("yesterday", now, &t), 0);
	ck_assert_uint_eq(t, midnight - 86400 * NS);
	ck_assert_int_eq(mt_time_parse("tomorrow", now, &t), 0);
	ck_assert_uint_eq(t, midnight + 86400 * NS);
	ck_assert_int_eq(mt_time_parse("13:11", now, &t), 0);
	ck_assert_uint_eq(t, midnight + (13 * 3600 + 11 * 60) * NS);
	ck_assert_int_eq(mt_time_parse("13:11:30.25", now, &t), 0);
	ck_assert_uint_eq(t, midnight + (13 * 3600 + 11 * 60 + 30) * NS + 250000000u);
	/* A local zone (two hours east): today starts at 22:00 UTC. */
	setenv("TZ", "XXX-2", 1);
	tzset();
	ck_assert_int_eq(mt_time_parse("today", now, &t), 0);
	ck_assert_uint_eq(t, midnight - 2 * 3600 * NS);
	ck_assert_int_eq(mt_time_parse("13:11", now, &t), 0);
	ck_assert_uint_eq(t, midnight + (11 * 3600 + 11 * 60) * NS);
	ck_assert_int_eq(mt_time_parse("13:11 UTC", now, &t), 0);
	ck_assert_uint_eq(t, midnight + (13 * 3600 + 11 * 60) * NS);
	unsetenv("TZ");
	tzset();
}
END_TEST

/* Found by fuzzing: nanoseconds since 1970 in 64 bits end in 2554; a later
 * time wrapped around to an early one instead of being refused. */
START_TEST(time_parser_refuses_times_past_2554_instead_of_wrapping)
{
	uint64_t t, now = 1800000000ull * NS;
	const char *late[] = {"2926-02-28Z", "2554-07-21T23:34:34Z", "9999-12-31T23:59:59Z",
			      "@18446744074", "@18446744079"};
	for (size_t i = 0; i < sizeof late / sizeof late[0]; i++)
		ck_assert_msg(mt_time_parse(late[i], now, &t) == -EINVAL, "accepted '%s' as %llu",
			      late[i], (unsigned long long)t);
	/* The last ones that fit. */
	ck_assert_int_eq(mt_time_parse("2554-07-21T23:34:33Z", now, &t), 0);
	ck_assert_uint_eq(t, 18446744073ull * NS);
	ck_assert_int_eq(mt_time_parse("2554-07-21T23:34:33.709551615Z", now, &t), 0);
	ck_assert_uint_eq(t, UINT64_MAX);
	ck_assert_int_eq(mt_time_parse("2554-07-21T23:34:33.709551616Z", now, &t), -EINVAL);
	ck_assert_int_eq(mt_time_parse("@18446744073", now, &t), 0);
	ck_assert_uint_eq(t, 18446744073ull * NS);
}
END_TEST

/* ---- units: records and filters ------------------------------------------- */

static const char failed_line[] =
	"{\"timestamp\":2000000000000000000,\"observed_timestamp\":2000000000000000001,"
	"\"severity_text\":\"ERROR\",\"severity_number\":17,\"body\":\"task 4: worker 1 died\","
	"\"attributes\":{\"process.pid\":100,\"mpg.kind\":\"signaled\",\"mpg.task\":\"4\","
	"\"mpg.worker\":\"1\",\"mpg.pid\":\"201\",\"mpg.code\":\"0\",\"mpg.signal\":\"SEGV\","
	"\"mpg.backtrace\":\"#0 f\\n#1 g\\n\"}}";
static const char worker_line[] =
	"{\"timestamp\":1000000000000000000,\"severity_text\":\"INFO\",\"body\":\"hello\\u0000 "
	"world\",\"attributes\":{\"process.pid\":201,\"mpkit.worker\":1,\"mpkit.task\":3,"
	"\"log.iostream\":\"stderr\",\"k\":\"v\",\"n\":5}}";

static const char service_line[] =
	"{\"timestamp\":3000000000000000000,\"severity_text\":\"ERROR\",\"body\":\"service "
	"fetcher (pid 301) died by SIGSEGV: boom\",\"attributes\":{\"process.pid\":100,"
	"\"mpg.kind\":\"signaled\",\"mpg.service\":\"fetcher\",\"mpg.pid\":\"301\","
	"\"mpg.code\":\"0\",\"mpg.signal\":\"SEGV\"}}";
static const char service_says_line[] =
	"{\"timestamp\":2500000000000000000,\"severity_text\":\"INFO\",\"body\":\"fetching\","
	"\"attributes\":{\"process.pid\":301,\"mpkit.channel\":\"fetcher\"}}";

static bool matches(struct mt_filter *f, const char *line)
{
	json_tokener *tok = json_tokener_new();
	struct mt_record r;
	const char *why;
	ck_assert_int_eq(mt_record_parse(tok, line, strlen(line), &r, &why), 0);
	bool m = mt_filter_match(f, &r);
	mt_record_clear(&r);
	json_tokener_free(tok);
	return m;
}

START_TEST(records_parse_with_every_attribute)
{
	json_tokener *tok = json_tokener_new();
	struct mt_record r;
	const char *why;
	ck_assert_int_eq(mt_record_parse(tok, worker_line, strlen(worker_line), &r, &why), 0);
	ck_assert_uint_eq(r.ts, 1000000000000000000ull);
	ck_assert_int_eq(r.level, MPLOG_INFO);
	ck_assert_uint_eq(r.body_len, 12); /* the NUL byte kept */
	ck_assert_int_eq(r.pid, 201);
	ck_assert_int_eq(r.worker, 1);
	ck_assert_int_eq(r.task, 3);
	ck_assert_int_eq(r.stream, MT_STREAM_STDERR);
	ck_assert_uint_eq(r.nkv, 2);
	ck_assert_str_eq(r.kv[1].key, "n");
	ck_assert_str_eq(r.kv[1].value, "5");
	ck_assert_ptr_null(r.kind);
	mt_record_clear(&r);
	ck_assert_int_eq(mt_record_parse(tok, failed_line, strlen(failed_line), &r, &why), 0);
	ck_assert_str_eq(r.kind, "signaled");
	ck_assert_int_eq(mt_record_worker(&r), 1);
	ck_assert_int_eq(mt_record_pid(&r), 201);
	ck_assert_int_eq(mt_record_task(&r), 4);
	ck_assert_str_eq(r.backtrace, "#0 f\n#1 g\n");
	ck_assert_str_eq(mt_record_channel(&r), "worker-1"); /* the failed worker's */
	mt_record_clear(&r);
	ck_assert_int_eq(mt_record_parse(tok, service_line, strlen(service_line), &r, &why), 0);
	ck_assert_str_eq(r.service, "fetcher");
	ck_assert_str_eq(mt_record_channel(&r), "fetcher"); /* the failed service's */
	ck_assert_int_eq(mt_record_pid(&r), 301);
	ck_assert_int_eq(mt_record_worker(&r), -1);
	mt_record_clear(&r);
	const char *bad[] = {"garbage", "{\"timestamp\":1", "[1,2]", "{} x", "\"s\"", "{\"a\":}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(mt_record_parse(tok, bad[i], strlen(bad[i]), &r, &why) == -EINVAL,
			      "accepted %s", bad[i]);
	/* Severity by number when the text names no level. */
	const char *num = "{\"severity_text\":\"x\",\"severity_number\":14,\"body\":\"b\"}";
	ck_assert_int_eq(mt_record_parse(tok, num, strlen(num), &r, &why), 0);
	ck_assert_int_eq(r.level, MPLOG_WARN);
	mt_record_clear(&r);
	json_tokener_free(tok);
}
END_TEST

/* The JSON lines format (docs/mplog-record.schema.json): times as strings,
 * OTLP/JSON names, a resource, a failure's task in mpkit.task and its
 * backtrace in exception.stacktrace. */
static const char new_failed_line[] =
	"{\"time\":\"2026-11-29T13:11:18.550000001Z\",\"timeUnixNano\":\"1795957878550000001\","
	"\"observedTimeUnixNano\":\"1795957878550000002\",\"severityText\":\"ERROR\","
	"\"severityNumber\":17,\"body\":\"task 7: worker 2 died\",\"resource\":{\"service.name\":"
	"\"demo\",\"host.name\":\"vm\",\"process.pid\":100},\"attributes\":{\"process.pid\":100,"
	"\"mpkit.worker\":2,\"mpkit.task\":7,\"code.file.path\":\"pool.c\",\"code.line.number\":9,"
	"\"code.function.name\":\"reap\",\"exception.type\":\"SIGSEGV\",\"exception.message\":"
	"\"task 7: worker 2 died\",\"mpg.kind\":\"signaled\",\"mpg.pid\":\"202\","
	"\"mpg.signal\":\"SIGSEGV\",\"exception.stacktrace\":\"#0 f\\n\"}}";

START_TEST(records_of_the_new_format_parse_and_old_times_are_not_misread)
{
	json_tokener *tok = json_tokener_new();
	struct mt_record r;
	const char *why;
	ck_assert_int_eq(mt_record_parse(tok, new_failed_line, strlen(new_failed_line), &r, &why), 0);
	ck_assert_uint_eq(r.ts, 1795957878550000001ull); /* every digit: more than a double has */
	ck_assert_int_eq(r.level, MPLOG_ERROR);
	ck_assert_str_eq(r.kind, "signaled");
	ck_assert_int_eq(mt_record_task(&r), 7);
	ck_assert_int_eq(mt_record_worker(&r), 2);
	ck_assert_int_eq(mt_record_pid(&r), 202);
	ck_assert_str_eq(mt_record_channel(&r), "worker-2");
	ck_assert_str_eq(r.backtrace, "#0 f\n");
	ck_assert_str_eq(r.file, "pool.c");
	ck_assert_int_eq(r.lineno, 9);
	ck_assert_str_eq(r.func, "reap");
	ck_assert_str_eq(r.res_service, "demo");
	ck_assert_str_eq(r.res_host, "vm");
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	mt_format_text(f, &r, false, true);
	fclose(f);
	ck_assert_msg(strstr(text, "2026-11-29 13:11:18.550000 ERROR [w2 pid 202 task 7] task 7: "
				   "worker 2 died mpg.kind=signaled mpg.signal=SIGSEGV (pool.c:9 reap)\n"
				   "    #0 f\n"), "%s", text);
	free(text);
	mt_record_clear(&r);
	/* Only "time", RFC 3339. */
	const char *t = "{\"time\":\"2026-11-29T14:11:18.5+01:00\",\"body\":\"b\"}";
	ck_assert_int_eq(mt_record_parse(tok, t, strlen(t), &r, &why), 0);
	ck_assert_uint_eq(r.ts, 1795957878500000000ull);
	mt_record_clear(&r);
	/* A time that is not an integer of ns is refused, not read as 1970. */
	const char *bad[] = {"{\"timestamp\":\"1795957878\",\"body\":\"b\"}",
			     "{\"timestamp\":1.7959578785e18,\"body\":\"b\"}",
			     "{\"timestamp\":true,\"body\":\"b\"}",
			     "{\"timeUnixNano\":\"17959578785e8\",\"body\":\"b\"}",
			     "{\"timeUnixNano\":\"\",\"body\":\"b\"}",
			     "{\"timeUnixNano\":1.5,\"body\":\"b\"}",
			     "{\"timeUnixNano\":\"99999999999999999999999\",\"body\":\"b\"}",
			     "{\"time\":\"yesterday\",\"body\":\"b\"}",
			     "{\"time\":\"2026-11-29T14:11:18\",\"body\":\"b\"}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(mt_record_parse(tok, bad[i], strlen(bad[i]), &r, &why) == -EINVAL,
			      "accepted %s", bad[i]);
		ck_assert(strstr(why, "time"));
	}
	json_tokener_free(tok);
}
END_TEST

START_TEST(filters_combine_and_know_failed_tasks)
{
	struct mt_filter f = {.min_level = MPLOG_TRACE};
	ck_assert(matches(&f, worker_line) && matches(&f, failed_line));
	ck_assert_int_eq(mt_idset_add(&f.workers, "1"), 0);
	ck_assert(matches(&f, worker_line) && matches(&f, failed_line)); /* mpg.worker */
	ck_assert_int_eq(mt_idset_add(&f.tasks, "4,9"), 0);
	ck_assert(!matches(&f, worker_line) && matches(&f, failed_line));
	mt_filter_free(&f);
	f.min_level = MPLOG_TRACE;
	ck_assert_int_eq(mt_idset_add(&f.pids, "100"), 0); /* the parent sent it */
	ck_assert(!matches(&f, worker_line) && matches(&f, failed_line));
	mt_filter_free(&f);
	f.min_level = MPLOG_WARN;
	ck_assert(!matches(&f, worker_line) && matches(&f, failed_line));
	mt_filter_free(&f);
	f.min_level = MPLOG_TRACE;
	char err[128];
	ck_assert_int_eq(mt_filter_set_grep(&f, "o w", false, err, sizeof err), 0);
	ck_assert(!matches(&f, worker_line)); /* NUL between: no match across */
	ck_assert_int_eq(mt_filter_set_grep(&f, "WOR", true, err, sizeof err), 0);
	ck_assert(matches(&f, worker_line) && matches(&f, failed_line));
	ck_assert_int_eq(mt_filter_set_grep(&f, "(", false, err, sizeof err), -EINVAL);
	mt_filter_free(&f);
	f.min_level = MPLOG_TRACE;
	ck_assert_int_eq(mt_streams_add(&f.streams, "stdout,log"), 0);
	ck_assert(!matches(&f, worker_line) && matches(&f, failed_line));
	ck_assert_int_eq(mt_streams_add(&f.streams, "stdin"), -EINVAL);
	f.streams = 0;
	f.has_since = f.has_until = true;
	f.since = 1000000000000000000ull;
	f.until = 1999999999999999999ull;
	ck_assert(matches(&f, worker_line) && !matches(&f, failed_line));
	f.since = 1000000000000000001ull;
	ck_assert(!matches(&f, worker_line));
	mt_filter_free(&f);
	f.min_level = MPLOG_TRACE;
	ck_assert_int_eq(mt_names_add(&f.channels, "fetcher"), 0);
	ck_assert(matches(&f, service_line) && matches(&f, service_says_line) &&
		  !matches(&f, worker_line) && !matches(&f, failed_line));
	ck_assert_int_eq(mt_names_add(&f.channels, "a,,b"), -EINVAL);
	mt_filter_free(&f);
	f.min_level = MPLOG_TRACE; /* a failed task's record is the failed worker's */
	ck_assert_int_eq(mt_names_add(&f.channels, "worker-1"), 0);
	ck_assert(matches(&f, failed_line) && !matches(&f, service_line));
	mt_filter_free(&f);
	struct mt_idset s = {0};
	ck_assert_int_eq(mt_idset_add(&s, "1,x"), -EINVAL);
	ck_assert_int_eq(mt_idset_add(&s, "-1"), -EINVAL);
	ck_assert_int_eq(mt_idset_add(&s, "1,"), -EINVAL);
	free(s.v);
}
END_TEST

START_TEST(text_form_shows_fields_and_escapes_control_characters)
{
	char *out = NULL;
	size_t outlen = 0;
	FILE *mem = open_memstream(&out, &outlen);
	json_tokener *tok = json_tokener_new();
	struct mt_record r;
	const char *why;
	const char *esc = "{\"timestamp\":1000000000000000000,\"severity_text\":\"WARN\","
			  "\"body\":\"red \\u001b[31m\\nnext\",\"attributes\":{\"k\":\"a b\"}}";
	ck_assert_int_eq(mt_record_parse(tok, esc, strlen(esc), &r, &why), 0);
	mt_format_text(mem, &r, false, true);
	mt_record_clear(&r);
	ck_assert_int_eq(mt_record_parse(tok, worker_line, strlen(worker_line), &r, &why), 0);
	mt_format_text(mem, &r, false, true);
	mt_record_clear(&r);
	ck_assert_int_eq(mt_record_parse(tok, failed_line, strlen(failed_line), &r, &why), 0);
	mt_format_text(mem, &r, false, true);
	mt_record_clear(&r);
	ck_assert_int_eq(mt_record_parse(tok, service_line, strlen(service_line), &r, &why), 0);
	mt_format_text(mem, &r, false, true);
	mt_record_clear(&r);
	fclose(mem);
	ck_assert_str_eq(out,
			 "2001-09-09 01:46:40.000000 WARN  red \\x1b[31m\n    next k=\"a b\"\n"
			 "2001-09-09 01:46:40.000000 INFO  [w1 pid 201 task 3 stderr] hello\\x00 world"
			 " k=v n=5\n"
			 "2033-05-18 03:33:20.000000 ERROR [w1 pid 201 task 4] task 4: worker 1 died"
			 " mpg.kind=signaled mpg.code=0 mpg.signal=SEGV\n    #0 f\n    #1 g\n"
			 "2065-01-24 05:20:00.000000 ERROR [fetcher pid 301] service fetcher (pid 301)"
			 " died by SIGSEGV: boom mpg.kind=signaled mpg.code=0 mpg.signal=SEGV\n");
	free(out);
	json_tokener_free(tok);
}
END_TEST

/* Whatever a log holds (a child's message, keys, channel and file names,
 * in a log written by another producer, or by an older libmplog), the
 * text form escapes it, and only a record starts a line without a space. */
START_TEST(text_form_escapes_every_string_and_starts_no_line_of_its_own)
{
#define FAKE "2026-01-01 00:00:00.000000 ERROR [w9 pid 1 task 3] fake"
	char *out = NULL;
	size_t outlen = 0;
	FILE *mem = open_memstream(&out, &outlen);
	json_tokener *tok = json_tokener_new();
	struct mt_record r;
	const char *why;
	const char *line =
		"{\"timestamp\":1000000000000000000,\"severity_text\":\"INFO\","
		"\"body\":\"a\\r" FAKE "\\u001b]0;title\\u0007 \\u009b2J \\u202e \xff\","
		"\"attributes\":{\"mpkit.channel\":\"c\\r" FAKE "\","
		"\"code.filepath\":\"f\\n" FAKE "\",\"code.function\":\"\\u001b[2J\","
		"\"k\\r" FAKE "\":\"v\\n" FAKE "\",\"w\":\"x\\u001b[1A\","
		"\"mpg.backtrace\":\"#0\\r" FAKE "\\n#1\"}}";
	ck_assert_int_eq(mt_record_parse(tok, line, strlen(line), &r, &why), 0);
	mt_format_text(mem, &r, false, true);
	mt_record_clear(&r);
	/* A failed task's record, the parent's (no channel): its backtrace
	 * below, on indented lines. */
	line = "{\"timestamp\":1000000000000000000,\"severity_text\":\"ERROR\","
	       "\"body\":\"m\\n" FAKE "\",\"attributes\":{\"mpg.kind\":\"raised\","
	       "\"mpg.backtrace\":\"#0\\r" FAKE "\\n" FAKE "\\n\"}}";
	ck_assert_int_eq(mt_record_parse(tok, line, strlen(line), &r, &why), 0);
	mt_format_text(mem, &r, false, true);
	mt_record_clear(&r);
	fclose(mem);
	size_t records = 0;
	for (const char *l = out; *l;) {
		const char *nl = strchr(l, '\n');
		ck_assert_msg(nl, "%s", out);
		ck_assert_msg(l[0] == ' ' || !strncmp(l, "2001-09-09 01:46:40", 19),
			      "a line that is neither a record nor indented: %s", out);
		records += l[0] != ' ';
		l = nl + 1;
	}
	ck_assert_uint_eq(records, 2);
	for (const unsigned char *p = (const unsigned char *)out; *p; p++)
		ck_assert_msg((*p == '\n' || (*p >= 0x20 && *p != 0x7f)) && *p != 0xff &&
				      !(p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f),
			      "byte 0x%02x: %s", *p, out);
	ck_assert_msg(strstr(out, "[c\\r2026-01-01 00:00:00.000000 ERROR [w9 p] a\\r" FAKE
				  "\\x1b]0;title\\x07 \\u009b2J \\u202e \\xff k\\r" FAKE
				  "=\"v\\n" FAKE "\" w=x\\x1b[1A mpg.backtrace=\"#0\\r" FAKE "\\n#1\" (f\\n"
				  FAKE " \\x1b[2J)\n2001-09-09 01:46:40.000000 ERROR m\n    " FAKE
				  " mpg.kind=raised\n    #0\\r" FAKE "\n    " FAKE "\n"),
		      "%s", out);
	free(out);
	json_tokener_free(tok);
#undef FAKE
}
END_TEST

/* ---- units: the line reader ------------------------------------------- */

START_TEST(reader_holds_a_partial_line_until_its_newline)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	char *out = NULL;
	size_t outlen = 0;
	FILE *mem = open_memstream(&out, &outlen);
	struct mt_ctx c;
	ck_assert_int_eq(mt_ctx_init(&c, mem), 0);
	c.mode = MT_MODE_JSON;
	struct mt_reader rd;
	ck_assert_int_eq(mt_reader_init(&rd, "pipe"), 0);
	size_t half = strlen(worker_line) / 2;
	ck_assert_int_eq(write(p[1], worker_line, half), (ssize_t)half);
	ck_assert_int_eq(mt_reader_fill(&rd, p[0], &c), (ssize_t)half);
	fflush(mem);
	ck_assert_uint_eq(outlen, 0);
	ck_assert(mt_reader_pending(&rd));
	const char *rest = worker_line + half;
	ck_assert_int_eq(write(p[1], rest, strlen(rest)), (ssize_t)strlen(rest));
	ck_assert_int_eq(write(p[1], "\n", 1), 1);
	ck_assert_int_gt(mt_reader_fill(&rd, p[0], &c), 0);
	fflush(mem);
	ck_assert_uint_eq(outlen, strlen(worker_line) + 1);
	ck_assert(!mt_reader_pending(&rd));
	ck_assert_uint_eq(c.invalid, 0);
	/* At EOF a last line without newline is still a record. */
	ck_assert_int_eq(write(p[1], failed_line, strlen(failed_line)), (ssize_t)strlen(failed_line));
	close(p[1]);
	ck_assert_int_eq(mplog_tool_read_fd(&c, p[0], "pipe"), 0);
	fflush(mem);
	ck_assert_uint_eq(outlen, strlen(worker_line) + strlen(failed_line) + 2);
	close(p[0]);
	mt_reader_free(&rd);
	mt_ctx_free(&c);
	fclose(mem);
	free(out);
}
END_TEST

/* ---- running the tool ----------------------------------------------------- */

struct run {
	int status;
	char *out, *err;
};

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* argv for execv: under valgrind when asked. */
static char **tool_argv(const char *const *args)
{
	static char *argv[64];
	int n = 0;
	const char *vg = getenv("MPLOG_TOOL_VALGRIND");
	if (vg && *vg) {
		argv[n++] = (char *)vg;
		argv[n++] = "-q";
		argv[n++] = "--error-exitcode=3";
		argv[n++] = "--leak-check=full";
		argv[n++] = "--errors-for-leak-kinds=definite";
	}
	argv[n++] = MPLOG_TOOL;
	for (; *args; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	return argv;
}

static pid_t spawn_tool(const char *const *args, const char *in_path, int *out_fd, int *err_fd)
{
	int o[2], e[2];
	ck_assert_int_eq(pipe2(o, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(e, O_CLOEXEC), 0);
	char **argv = tool_argv(args);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
		if (in < 0 || dup2(in, 0) < 0 || dup2(o[1], 1) < 0 || dup2(e[1], 2) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	*out_fd = o[0];
	*err_fd = e[0];
	return pid;
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	ck_assert_ptr_nonnull(*buf);
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = 0;
}

/* Run mplog with NULL-terminated args, stdin from in_path (or /dev/null),
 * and collect its exit status, stdout and stderr. */
static struct run tool_in(const char *in_path, const char *arg, ...)
{
	const char *args[48];
	int n = 0;
	va_list ap;
	va_start(ap, arg);
	for (const char *a = arg; a; a = va_arg(ap, const char *))
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	int fds[2];
	pid_t pid = spawn_tool(args, in_path, &fds[0], &fds[1]);
	struct run r = {0};
	size_t len[2] = {0, 0};
	char **buf[2] = {&r.out, &r.err};
	append(&r.out, &len[0], "", 0);
	append(&r.err, &len[1], "", 0);
	int open_fds = 2;
	while (open_fds) {
		struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
		ck_assert_int_gt(poll(p, 2, 120000), 0);
		for (int i = 0; i < 2; i++) {
			if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			char tmp[65536];
			ssize_t k = read(fds[i], tmp, sizeof tmp);
			ck_assert_int_ge(k, 0);
			if (k == 0) {
				close(fds[i]);
				fds[i] = p[i].fd = -1;
				open_fds--;
			} else {
				append(buf[i], &len[i], tmp, (size_t)k);
			}
		}
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st), "mplog died: status 0x%x, stderr: %s", st, r.err);
	r.status = WEXITSTATUS(st);
	ck_assert_msg(r.status != 3 || !getenv("MPLOG_TOOL_VALGRIND"), "valgrind: %s", r.err);
	return r;
}
#define tool(...) tool_in(NULL, __VA_ARGS__, (const char *)NULL)

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Records printed: lines that start with a date. */
static size_t records(const char *out)
{
	size_t n = 0;
	for (const char *p = out; *p;) {
		if (p[0] == '2' && p[4] == '-' && p[7] == '-')
			n++;
		const char *nl = strchr(p, '\n');
		if (!nl)
			break;
		p = nl + 1;
	}
	return n;
}

/* ---- fixtures: logs from real children and a real pool -------------------- */

static char dir[64], children_log[128], pool_log[128], huge_log[128];
static pid_t pid_a, pid_b, pid_c;
static uint64_t t_mid; /* between child A's records and child B's */
#define HUGE_LEN (3u << 20)

static int child_a(int arg)
{
	(void)arg;
	mplog_set_context(0, 10);
	mplog_kv kv[] = {{"user", "alice"}};
	mplog_info("alpha one");
	mplog_warn_kv(kv, 1, "beta two");
	mplog_debug("gamma three");
	mplog_set_context(0, 11);
	mplog_kv code[] = {{"code", "7"}, {"path", "/tmp/a b"}};
	mplog_error_kv(code, 2, "delta failed");
	return 0;
}

static int child_b(int arg)
{
	(void)arg;
	mplog_set_context(1, 20);
	mplog_info("epsilon");
	printf("printed line\n");
	fflush(stdout);
	fprintf(stderr, "stderr line\n");
	mplog_set_context(1, 21);
	mplog_notice("zeta");
	mplog_fatal("omega\nsecond line");
	return 0;
}

static int child_c(int arg)
{
	(void)arg;
	mplog_set_context(2, 30);
	mplog_info("last one");
	return 0;
}

static int child_huge(int arg)
{
	(void)arg;
	mplog_set_context(2, 30);
	char *big = malloc(HUGE_LEN + 1);
	if (!big)
		return 1;
	memcpy(big, "huge:", 5);
	memset(big + 5, 'x', HUGE_LEN - 5);
	big[HUGE_LEN] = 0;
	int r = mplog_info("%s", big);
	free(big);
	return r != 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static void write_children_log(void)
{
	mplog_aggregator *a;
	mplog_sink *s;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_file(children_log, MPLOG_FORMAT_JSON, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	/* One at a time, flushed: the file's order and t_mid are known. */
	pid_a = spawn_child(a, "worker-0", 0, 0, child_a, 0);
	reap_ok(pid_a);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	t_mid = now_ns();
	pid_b = spawn_child(a, "worker-1", 1, MPLOG_CAPTURE_STDOUT | MPLOG_CAPTURE_STDERR,
			    child_b, 0);
	reap_ok(pid_b);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	pid_c = spawn_child(a, "worker-2", 2, 0, child_c, 0);
	reap_ok(pid_c);
	mplog_aggregator_free(a);
}

/* A file of its own, so the other tests (and valgrind) skip its 3 MiB. */
static void write_huge_log(void)
{
	mplog_aggregator *a;
	mplog_sink *s;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_file(huge_log, MPLOG_FORMAT_JSON, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	pid_t pid = spawn_child(a, "worker-2", 2, 0, child_huge, 0);
	/* 3 MiB do not fit in the pipe: read while the child writes. */
	int st;
	while (waitpid(pid, &st, WNOHANG) == 0)
		ck_assert_int_ge(mplog_aggregator_dispatch(a, 100), 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	mplog_aggregator_free(a);
}

static int pool_task(mpg_task *t, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	(void)len;
	int x;
	memcpy(&x, in, sizeof x);
	mplog_info("pool task %d", x);
	switch (x) {
	case 1:
		return mpg_raise(5, "task %d refuses", x);
	case 2:
		raise(SIGSEGV);
		break;
	case 3:
		_exit(3);
	case 4:
		raise(SIGKILL);
		break;
	case 5:
		abort();
	case 6:
		for (;;)
			pause(); /* over the time limit */
	}
	return mpg_task_set_result(t, &x, sizeof x);
}

static void write_pool_log(void)
{
	mpg_options *o;
	mpg_pool *p;
	mplog_aggregator *a;
	mplog_sink *s;
	/* An aggregator of ours with only the file: nothing on stderr. */
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_file(pool_log, MPLOG_FORMAT_JSON, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	ck_assert_int_eq(mplog_aggregator_start(a), 0);
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 2), 0);
	ck_assert_int_eq(mpg_options_set_timeout(o, 300), 0);
	ck_assert_int_eq(mpg_options_set_log(o, a), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	int xs[8];
	mpg_buf in[8];
	for (int i = 0; i < 8; i++) {
		xs[i] = i;
		in[i] = (mpg_buf){&xs[i], sizeof xs[i]};
	}
	mpg_results *r;
	ck_assert_int_eq(mpg_map(p, pool_task, in, 8, NULL, &r), 0);
	ck_assert_uint_eq(mpg_results_failed(r), 6);
	mpg_results_free(r);
	mpg_pool_free(p);
	mplog_aggregator_free(a);
}

static void make_logs(void)
{
	strcpy(dir, "/tmp/mplog-tool-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(children_log, sizeof children_log, "%s/children.jsonl", dir);
	snprintf(pool_log, sizeof pool_log, "%s/pool.jsonl", dir);
	snprintf(huge_log, sizeof huge_log, "%s/huge.jsonl", dir);
	write_children_log();
	write_huge_log();
	write_pool_log();
}

static void remove_logs(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	char *buf = NULL;
	size_t n = 0;
	append(&buf, &n, "", 0);
	char tmp[65536];
	size_t k;
	while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
		append(&buf, &n, tmp, k);
	fclose(f);
	if (len)
		*len = n;
	return buf;
}

#define CHILD_RECORDS 10 /* A: 4; B: 3 mplog calls, 2 captured lines; C: 1 */

/* ---- the binary: cat and filters ------------------------------------------ */

START_TEST(cat_prints_every_record_readably)
{
	struct run r = tool("cat", children_log);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.err, "");
	ck_assert_uint_eq(records(r.out), CHILD_RECORDS);
	char want[128];
	snprintf(want, sizeof want, "INFO  [w0 pid %d task 10] alpha one (", pid_a);
	ck_assert_msg(strstr(r.out, want), "no '%s' in:\n%s", want, r.out);
	snprintf(want, sizeof want, "WARN  [w0 pid %d task 10] beta two user=alice (", pid_a);
	ck_assert(strstr(r.out, want));
	ck_assert(strstr(r.out, "delta failed code=7 path=\"/tmp/a b\" ("));
	ck_assert(strstr(r.out, "test-mplog-tool.c:"));
	snprintf(want, sizeof want, "INFO  [w1 pid %d stdout] printed line\n", pid_b);
	ck_assert(strstr(r.out, want));
	snprintf(want, sizeof want, "WARN  [w1 pid %d stderr] stderr line\n", pid_b);
	ck_assert(strstr(r.out, want));
	ck_assert(strstr(r.out, "FATAL [w1 pid "));
	ck_assert(strstr(r.out, "omega\n    second line ("));
	ck_assert(strstr(r.out, "NOTE  [w1"));
	ck_assert(strstr(r.out, "DEBUG [w0"));
	ck_assert_int_eq(count(r.out, "\033["), 0); /* not a tty */
	run_free(&r);
	/* The same file twice, and "-" for stdin. */
	r = tool_in(children_log, "cat", children_log, "-", (const char *)NULL);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(records(r.out), 2 * (CHILD_RECORDS));
	run_free(&r);
}
END_TEST

START_TEST(huge_records_come_through_whole)
{
	struct run r = tool("--grep", "^huge:x", "cat", children_log, huge_log, children_log);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.err, "");
	ck_assert_uint_eq(records(r.out), 1);
	ck_assert_uint_ge(strlen(r.out), HUGE_LEN);
	char *x = strstr(r.out, "huge:");
	ck_assert_ptr_nonnull(x);
	ck_assert_uint_eq(strspn(x + 5, "x"), HUGE_LEN - 5);
	run_free(&r);
	r = tool("--json", "tail", "-n", "1", huge_log);
	ck_assert_uint_ge(strlen(r.out), HUGE_LEN);
	ck_assert_uint_eq(count(r.out, "\n"), 1);
	run_free(&r);
}
END_TEST

START_TEST(color_per_level_and_worker_when_asked)
{
	struct run r = tool("--color=always", "--task", "10", "cat", children_log);
	ck_assert(strstr(r.out, "\033[32mINFO \033[0m [\033[34mw0"));
	ck_assert(strstr(r.out, "\033[33mWARN \033[0m"));
	run_free(&r);
	setenv("NO_COLOR", "1", 1);
	r = tool("--color=auto", "cat", children_log); /* and not a tty */
	ck_assert_int_eq(count(r.out, "\033["), 0);
	run_free(&r);
	unsetenv("NO_COLOR");
	r = tool("--color=sometimes", "cat", children_log);
	ck_assert_int_eq(r.status, 2);
	run_free(&r);
}
END_TEST

START_TEST(worker_filter)
{
	struct run r = tool("--worker", "1", "cat", children_log);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(records(r.out), 5);
	ck_assert(strstr(r.out, "epsilon") && strstr(r.out, "printed line") && strstr(r.out, "omega"));
	ck_assert(!strstr(r.out, "alpha") && !strstr(r.out, "last one"));
	run_free(&r);
	struct run list = tool("-w", "0,2", "cat", children_log);
	struct run rep = tool("-w", "0", "--worker=2", "cat", children_log);
	ck_assert_uint_eq(records(list.out), 5);
	ck_assert_str_eq(list.out, rep.out);
	ck_assert(!strstr(list.out, "epsilon"));
	run_free(&list);
	run_free(&rep);
	r = tool("--worker", "1x", "cat", children_log);
	ck_assert_int_eq(r.status, 2);
	ck_assert(strstr(r.err, "1x"));
	run_free(&r);
}
END_TEST

START_TEST(pid_filter)
{
	char pid[16];
	snprintf(pid, sizeof pid, "%d", pid_a);
	struct run r = tool("--pid", pid, "cat", children_log);
	ck_assert_uint_eq(records(r.out), 4);
	ck_assert(strstr(r.out, "alpha one") && strstr(r.out, "delta failed"));
	run_free(&r);
	snprintf(pid, sizeof pid, "%d,%d", pid_b, pid_c);
	r = tool("-p", pid, "cat", children_log);
	ck_assert_uint_eq(records(r.out), 6);
	ck_assert(!strstr(r.out, "alpha"));
	run_free(&r);
}
END_TEST

START_TEST(task_filter)
{
	struct run r = tool("--task", "10", "cat", children_log);
	ck_assert_uint_eq(records(r.out), 3);
	ck_assert(strstr(r.out, "alpha") && strstr(r.out, "beta") && strstr(r.out, "gamma"));
	run_free(&r);
	r = tool("-t", "11", "-t", "21", "cat", children_log);
	ck_assert_uint_eq(records(r.out), 3);
	ck_assert(strstr(r.out, "delta") && strstr(r.out, "zeta") && strstr(r.out, "omega"));
	run_free(&r);
}
END_TEST

/* An MPI job's log (libmpguard-mpi): every rank's records, each with the
 * host and rank that collected it in its resource. */
START_TEST(host_and_rank_filters_read_the_resource)
{
	char path[160];
	snprintf(path, sizeof path, "%s/ranks.jsonl", dir);
	FILE *f = fopen(path, "we");
	ck_assert_ptr_nonnull(f);
	static const char *const where[][2] = {
		{"node1", "0"}, {"node2", "1"}, {"node2", "2"}, {"node3", NULL}};
	for (int i = 0; i < 4; i++)
		fprintf(f,
			"{\"time\":\"2026-11-29T17:31:1%d.000000000Z\",\"timeUnixNano\":\"179578147%d000000000\","
			"\"observedTimeUnixNano\":\"179578147%d000000000\",\"severityText\":\"INFO\","
			"\"severityNumber\":9,\"body\":\"record %d\",\"resource\":{\"host.name\":\"%s\","
			"\"process.pid\":%d%s%s%s},\"attributes\":{\"process.pid\":%d}}\n",
			i, i, i, i, where[i][0], 100 + i, where[i][1] ? ",\"mpkit.mpi.rank\":" : "",
			where[i][1] ? where[i][1] : "", "", 200 + i);
	fclose(f);
	struct run r = tool("--host", "node2", "cat", path);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(records(r.out), 2);
	ck_assert(strstr(r.out, "record 1") && strstr(r.out, "record 2"));
	/* Shown as the text sink shows them. */
	ck_assert_msg(strstr(r.out, "[node2 r1 pid 201] record 1"), "%s", r.out);
	run_free(&r);
	r = tool("--host", "node3", "cat", path);
	ck_assert_msg(strstr(r.out, "[pid 203] record 3"), "%s", r.out); /* no rank */
	run_free(&r);
	r = tool("--host", "node1,node3", "cat", path);
	ck_assert_uint_eq(records(r.out), 2);
	ck_assert(strstr(r.out, "record 0") && strstr(r.out, "record 3"));
	run_free(&r);
	r = tool("--rank", "0", "--rank=2", "cat", path);
	ck_assert_uint_eq(records(r.out), 2);
	ck_assert(strstr(r.out, "record 0") && strstr(r.out, "record 2"));
	run_free(&r);
	r = tool("--host", "node2", "--rank", "0", "cat", path);
	ck_assert_uint_eq(records(r.out), 0);
	run_free(&r);
	r = tool("--host", "nowhere", "cat", path);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(records(r.out), 0);
	run_free(&r);
	r = tool("--rank", "-1", "cat", path);
	ck_assert_int_eq(r.status, 2);
	run_free(&r);
	r = tool("--host", ",", "cat", path);
	ck_assert_int_eq(r.status, 2);
	run_free(&r);
	unlink(path);
}
END_TEST

START_TEST(level_filter)
{
	struct run r = tool("--level", "warn", "cat", children_log);
	ck_assert_uint_eq(records(r.out), 4); /* beta, delta, stderr line, omega */
	ck_assert(strstr(r.out, "beta") && strstr(r.out, "delta") && strstr(r.out, "stderr line") &&
		  strstr(r.out, "omega"));
	run_free(&r);
	r = tool("-l", "ERROR", "cat", children_log);
	ck_assert_uint_eq(records(r.out), 2);
	run_free(&r);
	r = tool("-l", "notice", "-w", "1", "cat", children_log); /* AND */
	ck_assert_uint_eq(records(r.out), 3);
	run_free(&r);
	r = tool("--level", "loud", "cat", children_log);
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.out, "");
	run_free(&r);
}
END_TEST

START_TEST(grep_filter)
{
	struct run r = tool("--grep", "^(alpha|delta) ", "cat", children_log);
	ck_assert_uint_eq(records(r.out), 2);
	run_free(&r);
	r = tool("--grep", "ALPHA", "cat", children_log);
	ck_assert_uint_eq(records(r.out), 0);
	ck_assert_int_eq(r.status, 0); /* nothing matched is not an error */
	run_free(&r);
	r = tool("-i", "--grep", "ALPHA", "cat", children_log);
	ck_assert_uint_eq(records(r.out), 1);
	run_free(&r);
	r = tool("--grep", "second line$", "cat", children_log); /* the whole message */
	ck_assert_uint_eq(records(r.out), 1);
	run_free(&r);
	r = tool("--grep", "(", "cat", children_log);
	ck_assert_int_eq(r.status, 2);
	run_free(&r);
}
END_TEST

/* t as local "YYYY-MM-DD HH:MM:SS.nnnnnnnnn" or as UTC with an offset. */
static void fmt_time(char *buf, size_t n, uint64_t t, const char *sep, long offset)
{
	time_t sec = (time_t)(t / NS);
	struct tm tm;
	char zone[32] = "";
	if (offset == LONG_MIN) {
		localtime_r(&sec, &tm);
	} else {
		sec += offset;
		gmtime_r(&sec, &tm);
		snprintf(zone, sizeof zone, "%c%02ld:%02ld", offset < 0 ? '-' : '+',
			 labs(offset) / 3600 % 24, labs(offset) % 3600 / 60);
	}
	char day[16], clock[16];
	strftime(day, sizeof day, "%Y-%m-%d", &tm);
	strftime(clock, sizeof clock, "%H:%M:%S", &tm);
	snprintf(buf, n, "%s%s%s.%09llu%s", day, sep, clock, (unsigned long long)(t % NS), zone);
}

START_TEST(since_and_until_absolute)
{
	char when[64];
	fmt_time(when, sizeof when, t_mid, "T", 0);
	ck_assert_ptr_nonnull(strstr(when, "+00:00"));
	struct run r = tool("--until", when, "cat", children_log);
	ck_assert_uint_eq(records(r.out), 4); /* child A's */
	ck_assert(strstr(r.out, "alpha") && !strstr(r.out, "epsilon"));
	run_free(&r);
	fmt_time(when, sizeof when, t_mid, "T", 5400); /* the same instant at +01:30 */
	r = tool("--since", when, "cat", children_log);
	ck_assert_uint_eq(records(r.out), 6);
	ck_assert(!strstr(r.out, "alpha") && strstr(r.out, "epsilon"));
	run_free(&r);
	fmt_time(when, sizeof when, t_mid, " ", LONG_MIN); /* local time */
	r = tool("--since", when, "cat", children_log);
	ck_assert_uint_eq(records(r.out), 6);
	run_free(&r);
	/* Minutes only; a day before and after everything. */
	time_t yesterday = (time_t)(t_mid / NS) - 86400, tomorrow = yesterday + 2 * 86400;
	struct tm tm;
	char y[32], t[32];
	strftime(y, sizeof y, "%Y-%m-%d %H:%M", localtime_r(&yesterday, &tm));
	strftime(t, sizeof t, "%Y-%m-%dT%H:%M", localtime_r(&tomorrow, &tm));
	r = tool("--since", y, "--until", t, "cat", children_log);
	ck_assert_uint_eq(records(r.out), CHILD_RECORDS);
	run_free(&r);
	r = tool("--until", y, "cat", children_log);
	ck_assert_uint_eq(records(r.out), 0);
	run_free(&r);
	r = tool("--since", "2026-02-30", "cat", children_log);
	ck_assert_int_eq(r.status, 2);
	run_free(&r);
}
END_TEST

START_TEST(since_and_until_relative)
{
	struct run r = tool("--since", "1h", "cat", children_log);
	ck_assert_uint_eq(records(r.out), CHILD_RECORDS);
	run_free(&r);
	r = tool("--until", "1h", "cat", children_log);
	ck_assert_uint_eq(records(r.out), 0);
	run_free(&r);
	r = tool("--since", "1d", "--until", "0s", "cat", children_log);
	ck_assert_uint_eq(records(r.out), CHILD_RECORDS);
	run_free(&r);
	r = tool("--since", "10", "cat", children_log);
	ck_assert_int_eq(r.status, 2);
	run_free(&r);
}
END_TEST

START_TEST(stream_filter)
{
	struct run r = tool("--stream", "stdout", "cat", children_log);
	ck_assert_uint_eq(records(r.out), 1);
	ck_assert(strstr(r.out, "stdout] printed line"));
	run_free(&r);
	r = tool("--stream", "stdout,stderr", "cat", children_log);
	ck_assert_uint_eq(records(r.out), 2);
	run_free(&r);
	r = tool("--stream", "log", "cat", children_log);
	ck_assert_uint_eq(records(r.out), CHILD_RECORDS - 2);
	ck_assert(!strstr(r.out, "printed line"));
	run_free(&r);
	r = tool("--stream", "stdin", "cat", children_log);
	ck_assert_int_eq(r.status, 2);
	run_free(&r);
}
END_TEST

START_TEST(json_output_round_trips)
{
	size_t len;
	char *orig = slurp(children_log, &len);
	struct run r = tool("--json", "cat", children_log);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(strlen(r.out), len);
	ck_assert(memcmp(r.out, orig, len) == 0); /* byte for byte */
	run_free(&r);
	/* Filtered JSON, read back, prints as the filter on the file does. */
	r = tool("--json", "-w", "1", "cat", children_log);
	ck_assert_uint_eq(count(r.out, "\n"), 5);
	char path[160];
	snprintf(path, sizeof path, "%s/w1.jsonl", dir);
	FILE *f = fopen(path, "w");
	fputs(r.out, f);
	fclose(f);
	struct run back = tool_in(path, "cat", "-", (const char *)NULL);
	struct run direct = tool("-w", "1", "cat", children_log);
	ck_assert_str_eq(back.out, direct.out);
	run_free(&r);
	run_free(&back);
	run_free(&direct);
	free(orig);
}
END_TEST

static uint64_t jget2(json_object *o, const char *a, const char *b)
{
	json_object *v;
	ck_assert_msg(json_object_object_get_ex(o, a, &v), "no %s", a);
	if (b)
		ck_assert_msg(json_object_object_get_ex(v, b, &v), "no %s.%s", a, b);
	return json_object_get_uint64(v);
}
#define jget_(o, a, b, ...) jget2(o, a, b)
#define jget(...) jget_(__VA_ARGS__, NULL, NULL)

START_TEST(stats_count_levels_workers_and_crashes)
{
	struct run r = tool("--stats", "--json", "cat", pool_log);
	ck_assert_int_eq(r.status, 0);
	json_object *o = json_tokener_parse(r.out);
	ck_assert_msg(o, "not JSON: %s", r.out);
	ck_assert_uint_eq(jget(o, "failed_tasks", "total"), 6);
	ck_assert_uint_eq(jget(o, "failed_tasks", "raised"), 1);
	ck_assert_uint_eq(jget(o, "failed_tasks", "exited"), 1);
	ck_assert_uint_eq(jget(o, "failed_tasks", "signaled"), 2); /* SEGV, ABRT */
	ck_assert_uint_eq(jget(o, "failed_tasks", "killed"), 1);
	ck_assert_uint_eq(jget(o, "failed_tasks", "timeout"), 1);
	ck_assert_uint_eq(jget(o, "failed_tasks", "protocol"), 0);
	ck_assert_uint_eq(jget(o, "signals", "SEGV"), 1);
	ck_assert_uint_eq(jget(o, "signals", "ABRT"), 1);
	ck_assert_uint_eq(jget(o, "signals", "KILL"), 2); /* killed, and timeout's kill */
	ck_assert_uint_eq(jget(o, "records"), 8 + 6); /* a line per task, an error each */
	ck_assert_uint_eq(jget(o, "errors"), 6);
	ck_assert_uint_eq(jget(o, "levels", "error"), 6);
	ck_assert_uint_eq(jget(o, "levels", "info"), 8);
	ck_assert_uint_eq(jget(o, "invalid_lines"), 0);
	ck_assert_uint_eq(jget(o, "workers", "0") + jget(o, "workers", "1"), 14);
	ck_assert_uint_eq(jget(o, "workers", "none"), 0); /* errors count for their worker */
	json_object_put(o);
	run_free(&r);

	r = tool("--stats", "cat", children_log);
	ck_assert(strstr(r.out, "records        10\n"));
	ck_assert(strstr(r.out, "errors         2 "));
	ck_assert(strstr(r.out, "  0            4\n  1            5\n  2            1\n"));
	ck_assert(strstr(r.out, "failed tasks   0\n"));
	run_free(&r);
	r = tool("--stats", "--level", "error", "cat", pool_log);
	ck_assert(strstr(r.out, "records        6\n"));
	ck_assert(strstr(r.out, "  signaled     2\n"));
	run_free(&r);
}
END_TEST

START_TEST(failed_tasks_print_with_their_backtrace)
{
	struct run r = tool("--grep", "SIGSEGV", "cat", pool_log);
	ck_assert_uint_eq(records(r.out), 1);
	ck_assert_msg(strstr(r.out, "mpg.kind=signaled") && strstr(r.out, "mpg.signal=SEGV"), "%s",
		      r.out);
	ck_assert(strstr(r.out, "\n    #0 0x")); /* backtrace, indented */
	ck_assert(strstr(r.out, "pool_task"));
	run_free(&r);
	/* The failed worker's task selects its error record too. */
	r = tool("--task", "3", "cat", pool_log);
	ck_assert_uint_eq(records(r.out), 2);
	ck_assert(strstr(r.out, "task 3] pool task 3") && strstr(r.out, "mpg.kind=exited"));
	run_free(&r);
}
END_TEST

static int forging_task(mpg_task *t, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	(void)len;
	(void)in;
	mplog_kv kv[] = {{"mpg.kind", "signaled"}, {"mpg.signal", "SEGV"}, {"mpg.task", "3"},
			 {"mpg.worker", "9"},      {"mpg.pid", "1"},        {"process.pid", "1"},
			 {"mpkit.worker", "9"},    {"mpg.backtrace", "#0 0x1 fake\n"}};
	mplog_error_kv(kv, 8, "task 3: worker 9 (pid 1) died by SIGSEGV");
	return mpg_task_set_result(t, "ok", 2);
}

/* A task logs the keys of the pool's failure records: nothing failed, and
 * neither --stats nor a filter says otherwise. A log written before
 * libmplog renamed such keys is read the same (the record came from a
 * channel: a child's). */
START_TEST(a_task_cannot_forge_a_failed_task)
{
	char path[160];
	snprintf(path, sizeof path, "%s/forged.jsonl", dir);
	mplog_aggregator *a;
	mplog_sink *s;
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 1), 0);
	ck_assert_int_eq(mpg_options_set_log(o, a), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	mpg_buf in = {"x", 1};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, forging_task, &in, 1, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	mpg_results_free(res);
	pid_t wpid = mpg_pool_worker_pid(p, 0);
	mpg_pool_free(p);
	mplog_aggregator_free(a);

	struct run r = tool("--stats", "--json", "cat", path);
	ck_assert_int_eq(r.status, 0);
	json_object *j = json_tokener_parse(r.out);
	ck_assert_msg(j, "not JSON: %s", r.out);
	ck_assert_uint_eq(jget(j, "records"), 1);
	ck_assert_uint_eq(jget(j, "failed_tasks", "total"), 0);
	ck_assert_uint_eq(jget(j, "failed_tasks", "signaled"), 0);
	ck_assert_uint_eq(jget(j, "workers", "0"), 1);
	json_object_put(j);
	run_free(&r);
	/* Its own worker, pid and task, not the forged ones. */
	r = tool("--worker", "9", "cat", path);
	ck_assert_uint_eq(records(r.out), 0);
	run_free(&r);
	r = tool("cat", path);
	char want[64];
	snprintf(want, sizeof want, "ERROR [w0 pid %d task 0] task 3:", (int)wpid);
	ck_assert_msg(strstr(r.out, want) && strstr(r.out, " child.mpg.kind=signaled") &&
			      strstr(r.out, " child.process.pid=1"),
		      "%s", r.out);
	run_free(&r);

	/* The same record as a log written before the renaming holds it. */
	snprintf(path, sizeof path, "%s/forged-old.jsonl", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"timestamp\":1,\"severity_text\":\"ERROR\",\"body\":\"x\",\"attributes\":{"
	      "\"process.pid\":42,\"mpkit.worker\":0,\"mpkit.task\":0,\"mpkit.channel\":\"worker-0\","
	      "\"mpg.kind\":\"signaled\",\"mpg.signal\":\"SEGV\",\"mpg.worker\":\"9\","
	      "\"mpg.task\":\"3\"}}\n", f);
	fclose(f);
	r = tool("--stats", "--json", "cat", path);
	j = json_tokener_parse(r.out);
	ck_assert_msg(j, "not JSON: %s", r.out);
	ck_assert_uint_eq(jget(j, "failed_tasks", "total"), 0);
	ck_assert_uint_eq(jget(j, "workers", "0"), 1);
	json_object_put(j);
	run_free(&r);
	r = tool("--task", "3", "cat", path);
	ck_assert_uint_eq(records(r.out), 0);
	run_free(&r);
}
END_TEST

/* A log not written by libmplog may hold any bytes in its strings, which
 * json-c keeps as they are: --stats --json still prints valid UTF-8. */
START_TEST(stats_json_is_valid_utf8_whatever_the_log_holds)
{
	char path[160];
	snprintf(path, sizeof path, "%s/latin1.jsonl", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"timestamp\":1,\"severity_text\":\"ERROR\",\"severity_number\":17,\"body\":\"x\","
	      "\"attributes\":{\"mpg.kind\":\"signaled\",\"mpg.signal\":\"S\xe9GV\\u0001\"}}\n", f);
	fclose(f);
	struct run r = tool("--stats", "--json", "cat", path);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.out, "\"signals\":{\"S\xef\xbf\xbdGV\\u0001\":1}"), "%s", r.out);
	run_free(&r);
}
END_TEST

START_TEST(garbage_lines_are_skipped_with_a_warning)
{
	char *orig = slurp(children_log, NULL);
	char path[160];
	snprintf(path, sizeof path, "%s/garbage.jsonl", dir);
	FILE *f = fopen(path, "w");
	const char *p = orig;
	for (int line = 1; *p; line++) {
		const char *nl = strchr(p, '\n');
		if (line == 3)
			fputs("this is not json\n", f);
		if (line == 5)
			fputs("{\"timestamp\":12,\"body\":\"cut sh\n", f);
		if (line == 7)
			fputs("\x01\xff\xfe{}}\n\n", f); /* and a blank line */
		fwrite(p, 1, (size_t)(nl - p) + 1, f);
		p = nl + 1;
	}
	fclose(f);
	struct run r = tool("cat", path);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(records(r.out), CHILD_RECORDS);
	char want[200];
	snprintf(want, sizeof want, "mplog: %s:3: not a record, skipped", path);
	ck_assert_msg(strstr(r.err, want), "%s", r.err);
	snprintf(want, sizeof want, "mplog: %s:6: not a record, skipped", path);
	ck_assert_msg(strstr(r.err, want), "%s", r.err);
	snprintf(want, sizeof want, "mplog: %s:9: not a record, skipped", path);
	ck_assert_msg(strstr(r.err, want), "%s", r.err);
	ck_assert(strstr(r.err, "3 lines skipped"));
	run_free(&r);
	r = tool("--strict", "cat", path);
	ck_assert_int_eq(r.status, 1);
	ck_assert_uint_eq(records(r.out), CHILD_RECORDS);
	run_free(&r);
	r = tool("--stats", "--json", "cat", path);
	json_object *o = json_tokener_parse(r.out);
	ck_assert_uint_eq(jget(o, "invalid_lines"), 3);
	ck_assert_uint_eq(jget(o, "records"), CHILD_RECORDS);
	json_object_put(o);
	run_free(&r);
	free(orig);
}
END_TEST

START_TEST(tail_prints_the_last_records)
{
	/* The file holds A's records, then B's (its three channels in any
	 * order), then C's one. */
	struct run r = tool("tail", "-n", "6", children_log);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(records(r.out), 6);
	ck_assert(strstr(r.out, "epsilon") && strstr(r.out, "printed line") &&
		  strstr(r.out, "stderr line") && strstr(r.out, "zeta") && strstr(r.out, "omega"));
	ck_assert(!strstr(r.out, "delta"));
	ck_assert(strstr(r.out, "omega") < strstr(r.out, "last one"));
	run_free(&r);
	r = tool("tail", "-n7", children_log);
	ck_assert_uint_eq(records(r.out), 7);
	ck_assert(strstr(r.out, "delta") && !strstr(r.out, "gamma"));
	run_free(&r);
	r = tool("tail", "-n", "2", "-w", "0", children_log);
	ck_assert_uint_eq(records(r.out), 2);
	ck_assert(strstr(r.out, "gamma") && strstr(r.out, "delta"));
	ck_assert(strstr(r.out, "gamma") < strstr(r.out, "delta"));
	run_free(&r);
	r = tool("tail", children_log); /* 10 by default: all of them */
	ck_assert_uint_eq(records(r.out), 10);
	run_free(&r);
	r = tool("tail", "-n", "1000000000000", children_log); /* costs what it keeps */
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(records(r.out), 10);
	run_free(&r);
	r = tool("tail", "-n", "0", children_log);
	ck_assert_str_eq(r.out, "");
	run_free(&r);
	r = tool("--json", "tail", "-n1", children_log);
	ck_assert_uint_eq(count(r.out, "\n"), 1);
	ck_assert(strstr(r.out, "\"body\":\"last one\""));
	run_free(&r);
}
END_TEST

START_TEST(usage_and_runtime_errors_have_their_exit_status)
{
	struct run r = tool("cat", "/nonexistent/x.jsonl", children_log);
	ck_assert_int_eq(r.status, 1);
	ck_assert(strstr(r.err, "/nonexistent/x.jsonl: No such file"));
	ck_assert_uint_eq(records(r.out), CHILD_RECORDS); /* the others still read */
	run_free(&r);
	const char *const bad[][4] = {
		{"--bogus", "cat", NULL}, {"-o", "frob", NULL}, {"--since", NULL},
		{"tail", NULL},           {"-n", "x", "tail", NULL}, {"-f", "cat", NULL},
		{"-r", "tail", "-f", NULL}, {"-S", "5 parsecs ago", NULL},
		{NULL},
	};
	for (int i = 0; bad[i][0]; i++) {
		r = tool(bad[i][0], bad[i][1], bad[i][2], bad[i][3]);
		ck_assert_msg(r.status == 2, "%s: status %d", bad[i][0], r.status);
		ck_assert(strstr(r.err, "mplog"));
		run_free(&r);
	}
	r = tool("--help");
	ck_assert_int_eq(r.status, 0);
	ck_assert(strstr(r.out, "Usage: mplog"));
	run_free(&r);
	r = tool("--version");
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "mplog (mpkit) " MPKIT_VERSION "\n"); /* as mpattach's */
	run_free(&r);
}
END_TEST

/* journalctl's habits: FILE alone means cat, -o, -r, -S/-U. */
START_TEST(output_modes_reverse_and_file_alone)
{
	struct run a = tool("cat", children_log), b = tool(children_log);
	ck_assert_int_eq(b.status, 0);
	ck_assert_str_eq(a.out, b.out);
	run_free(&a);
	run_free(&b);
	struct run r = tool("-o", "cat", children_log);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(!strncmp(r.out, "alpha one\nbeta two\n", 19), "%s", r.out);
	run_free(&r);
	r = tool("-o", "short-iso", "--utc", "-g", "^alpha", children_log);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strlen(r.out) > 28 && r.out[10] == 'T' && r.out[26] == 'Z' && r.out[27] == ' ',
		      "%s", r.out);
	run_free(&r);
	r = tool("-o", "json-pretty", "-g", "^alpha", children_log);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.out, "\"body\": \"alpha one\"") && count(r.out, "\n") > 5, "%s", r.out);
	run_free(&r);
	r = tool("-r", children_log);
	struct run fwd = tool(children_log);
	ck_assert_uint_eq(records(r.out), records(fwd.out));
	const char *first = strstr(r.out, "last one"), *alpha = strstr(r.out, "alpha one");
	ck_assert(first && alpha && first < alpha);
	ck_assert(strstr(fwd.out, "alpha one") < strstr(fwd.out, "last one"));
	run_free(&r);
	run_free(&fwd);
	r = tool("-r", "tail", "-n", "2", children_log);
	ck_assert_uint_eq(records(r.out), 2);
	ck_assert_msg(strstr(r.out, "last one") && strstr(r.out, "last one") < strchr(r.out, '\n'),
		      "%s", r.out);
	run_free(&r);
	r = tool("-S", "@0", "-U", "@1", children_log);
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "");
	run_free(&r);
	r = tool("-S", "10 min ago", "-U", "+1h", children_log);
	ck_assert_uint_eq(records(r.out), CHILD_RECORDS);
	run_free(&r);
}
END_TEST

/* ---- tail -f: rotation, truncation, a record written in two parts --------- */

struct follower {
	pid_t pid;
	int out, err;
	char *got[2];
	size_t len[2], seen[2];
};

/* Wait until needle appears on the follower's stdout (0) or stderr (1)
 * after what was already matched. Event-driven: poll on the pipes. */
static void expect(struct follower *f, int which, const char *needle)
{
	int fds[2] = {f->out, f->err};
	for (;;) {
		char *hit = f->got[which] ? strstr(f->got[which] + f->seen[which], needle) : NULL;
		if (hit) {
			f->seen[which] = (size_t)(hit - f->got[which]) + strlen(needle);
			return;
		}
		struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
		int r = poll(p, 2, 60000);
		ck_assert_msg(r > 0, "timed out waiting for '%s'; stdout:\n%s\nstderr:\n%s", needle,
			      f->got[0] ? f->got[0] : "", f->got[1] ? f->got[1] : "");
		for (int i = 0; i < 2; i++) {
			if (!p[i].revents)
				continue;
			char tmp[65536];
			ssize_t k = read(fds[i], tmp, sizeof tmp);
			ck_assert_msg(k > 0, "mplog ended early; stderr: %s", f->got[1]);
			append(&f->got[i], &f->len[i], tmp, (size_t)k);
		}
	}
}

static void put(mplog_aggregator *a, mplog_writer *w, const char *msg)
{
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, __FILE__, __LINE__, __func__, NULL, 0,
					  "%s", msg),
			 0);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
}

/* Offset of the follower's open fd on path (from /proc), or -1. */
static long long follower_pos(pid_t pid, const char *path)
{
	char link[256], target[256];
	for (int fd = 0; fd < 1024; fd++) {
		snprintf(link, sizeof link, "/proc/%d/fd/%d", pid, fd);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n < 0)
			continue;
		target[n] = 0;
		if (strcmp(target, path))
			continue;
		snprintf(link, sizeof link, "/proc/%d/fdinfo/%d", pid, fd);
		FILE *f = fopen(link, "r");
		long long pos = -1;
		if (f && fscanf(f, "pos: %lld", &pos) != 1)
			pos = -1;
		if (f)
			fclose(f);
		return pos;
	}
	return -1;
}

START_TEST(tail_follows_across_rotation_and_truncation)
{
	char path[160], rotated[170];
	snprintf(path, sizeof path, "%s/follow.jsonl", dir);
	snprintf(rotated, sizeof rotated, "%s.1", path);
	mplog_aggregator *a;
	mplog_sink *s;
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	ck_assert_int_eq(mplog_aggregator_writer(a, &w), 0);
	mplog_set_context(4, 40);
	put(a, w, "r0 before");
	put(a, w, "r1 first");
	put(a, w, "r2 second");

	struct follower f = {0};
	const char *args[] = {"tail", "-f", "-n", "2", path, NULL};
	f.pid = spawn_tool(args, NULL, &f.out, &f.err);
	expect(&f, 0, "r1 first");
	expect(&f, 0, "r2 second");
	put(a, w, "r3 appended");
	expect(&f, 0, "r3 appended");

	/* Rotation: renamed; a record still goes to the old file; a new file. */
	ck_assert_int_eq(rename(path, rotated), 0);
	put(a, w, "r4 old file");
	ck_assert_int_eq(mplog_aggregator_reopen(a), 0);
	put(a, w, "r5 new file");
	expect(&f, 0, "r4 old file");
	expect(&f, 0, "r5 new file");
	expect(&f, 1, "file replaced");

	/* Truncation: read again from the start. */
	put(a, w, "r6 more");
	expect(&f, 0, "r6 more");
	ck_assert_int_eq(truncate(path, 0), 0);
	expect(&f, 1, "file truncated");
	put(a, w, "r7 after truncation");
	expect(&f, 0, "r7 after truncation");

	/* A record written in two parts: held until its newline. The second
	 * part is written once the follower has read the first. */
	char other[170];
	snprintf(other, sizeof other, "%s/one.jsonl", dir);
	mplog_aggregator *b;
	mplog_writer *bw;
	ck_assert_int_eq(mplog_aggregator_new(&b), 0);
	ck_assert_int_eq(mplog_sink_new_file(other, MPLOG_FORMAT_JSON, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(b, s), 0);
	ck_assert_int_eq(mplog_aggregator_writer(b, &bw), 0);
	put(b, bw, "r8 written in two parts");
	mplog_writer_free(bw);
	mplog_aggregator_free(b);
	size_t len;
	char *line = slurp(other, &len);
	int fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, line, len / 2), (ssize_t)(len / 2));
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	for (int i = 0; follower_pos(f.pid, path) != st.st_size; i++) {
		ck_assert_msg(i < 6000, "the follower did not read the first part");
		poll(NULL, 0, 10);
	}
	ck_assert_int_eq(write(fd, line + len / 2, len - len / 2), (ssize_t)(len - len / 2));
	close(fd);
	expect(&f, 0, "r8 written in two parts");
	put(a, w, "r9 last");
	expect(&f, 0, "r9 last");

	ck_assert_int_eq(kill(f.pid, SIGTERM), 0);
	int status;
	ck_assert_int_eq(waitpid(f.pid, &status, 0), f.pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x, stderr: %s",
		      status, f.got[1]);
	/* Drain what is left: every record exactly once, in order. */
	char tmp[65536];
	ssize_t k;
	while ((k = read(f.out, tmp, sizeof tmp)) > 0)
		append(&f.got[0], &f.len[0], tmp, (size_t)k);
	while ((k = read(f.err, tmp, sizeof tmp)) > 0)
		append(&f.got[1], &f.len[1], tmp, (size_t)k);
	ck_assert(!strstr(f.got[0], "r0 before"));
	ck_assert_uint_eq(records(f.got[0]), 9);
	const char *order[] = {"r1 ", "r2 ", "r3 ", "r4 ", "r5 ", "r6 ", "r7 ", "r8 ", "r9 "};
	const char *prev = f.got[0];
	for (int i = 0; i < 9; i++) {
		ck_assert_uint_eq(count(f.got[0], order[i]), 1);
		ck_assert(strstr(f.got[0], order[i]) >= prev);
		prev = strstr(f.got[0], order[i]);
	}
	ck_assert_msg(!strstr(f.got[1], "skipped"), "%s", f.got[1]);
	ck_assert(strstr(f.got[0], "[w4 pid "));
	close(f.out);
	close(f.err);
	free(f.got[0]);
	free(f.got[1]);
	free(line);
	mplog_writer_free(w);
	mplog_aggregator_free(a);
}
END_TEST

START_TEST(tail_f_waits_for_the_file_to_appear)
{
	char path[160];
	snprintf(path, sizeof path, "%s/later.jsonl", dir);
	struct follower f = {0};
	const char *args[] = {"--json", "tail", "-f", path, NULL};
	f.pid = spawn_tool(args, NULL, &f.out, &f.err);
	expect(&f, 1, "waiting for it");
	mplog_aggregator *a;
	mplog_sink *s;
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	ck_assert_int_eq(mplog_aggregator_writer(a, &w), 0);
	put(a, w, "born late");
	expect(&f, 0, "\"body\":\"born late\"");
	ck_assert_int_eq(kill(f.pid, SIGTERM), 0);
	int status;
	ck_assert_int_eq(waitpid(f.pid, &status, 0), f.pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x", status);
	/* Without -f a missing file is an error. */
	struct run r = tool("tail", "/nonexistent/x.jsonl");
	ck_assert_int_eq(r.status, 1);
	ck_assert(strstr(r.err, "No such file"));
	run_free(&r);
	close(f.out);
	close(f.err);
	free(f.got[0]);
	free(f.got[1]);
	mplog_writer_free(w);
	mplog_aggregator_free(a);
}
END_TEST

START_TEST(tail_f_follows_several_files)
{
	char p1[160], p2[160];
	snprintf(p1, sizeof p1, "%s/several-1.jsonl", dir);
	snprintf(p2, sizeof p2, "%s/several-2.jsonl", dir);
	mplog_aggregator *a[2];
	mplog_writer *w[2];
	const char *paths[2] = {p1, p2};
	for (int i = 0; i < 2; i++) {
		mplog_sink *s;
		ck_assert_int_eq(mplog_aggregator_new(&a[i]), 0);
		ck_assert_int_eq(mplog_sink_new_file(paths[i], MPLOG_FORMAT_JSON, 0, &s), 0);
		ck_assert_int_eq(mplog_aggregator_add_sink(a[i], s), 0);
		ck_assert_int_eq(mplog_aggregator_writer(a[i], &w[i]), 0);
	}
	put(a[0], w[0], "one old");
	put(a[1], w[1], "two old");
	struct follower f = {0};
	const char *args[] = {"tail", "-f", "-n", "1", p1, p2, NULL};
	f.pid = spawn_tool(args, NULL, &f.out, &f.err);
	expect(&f, 0, "one old");
	expect(&f, 0, "two old");
	put(a[1], w[1], "two new");
	expect(&f, 0, "two new");
	put(a[0], w[0], "one new");
	expect(&f, 0, "one new");
	ck_assert_int_eq(kill(f.pid, SIGTERM), 0);
	int status;
	ck_assert_int_eq(waitpid(f.pid, &status, 0), f.pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x", status);
	close(f.out);
	close(f.err);
	free(f.got[0]);
	free(f.got[1]);
	for (int i = 0; i < 2; i++) {
		mplog_writer_free(w[i]);
		mplog_aggregator_free(a[i]);
	}
}
END_TEST

static Suite *tool_suite(void)
{
	Suite *s = suite_create("mplog-tool");
	TCase *units = tcase_create("units");
	tcase_add_test(units, time_parser_reads_iso_8601_epoch_and_durations);
	tcase_add_test(units, time_parser_refuses_times_past_2554_instead_of_wrapping);
	tcase_add_test(units, time_parser_reads_systemd_time_forms);
	tcase_add_test(units, records_of_the_new_format_parse_and_old_times_are_not_misread);
	tcase_add_test(units, records_parse_with_every_attribute);
	tcase_add_test(units, filters_combine_and_know_failed_tasks);
	tcase_add_test(units, reader_holds_a_partial_line_until_its_newline);
	tcase_add_test(units, text_form_shows_fields_and_escapes_control_characters);
	tcase_add_test(units, text_form_escapes_every_string_and_starts_no_line_of_its_own);
	suite_add_tcase(s, units);
	/* Filters and options, then what memcheck also runs (each mplog under
	 * valgrind costs a second or two: CK_RUN_CASE=memcheck there). */
	TCase *tc = tcase_create("binary");
	tcase_set_timeout(tc, 300);
	tcase_add_unchecked_fixture(tc, make_logs, remove_logs);
	tcase_add_test(tc, color_per_level_and_worker_when_asked);
	tcase_add_test(tc, worker_filter);
	tcase_add_test(tc, pid_filter);
	tcase_add_test(tc, task_filter);
	tcase_add_test(tc, level_filter);
	tcase_add_test(tc, grep_filter);
	tcase_add_test(tc, since_and_until_absolute);
	tcase_add_test(tc, since_and_until_relative);
	tcase_add_test(tc, stream_filter);
	tcase_add_test(tc, failed_tasks_print_with_their_backtrace);
	tcase_add_test(tc, tail_prints_the_last_records);
	tcase_add_test(tc, usage_and_runtime_errors_have_their_exit_status);
	tcase_add_test(tc, output_modes_reverse_and_file_alone);
	suite_add_tcase(s, tc);
	TCase *mc = tcase_create("memcheck");
	tcase_set_timeout(mc, 300);
	tcase_add_unchecked_fixture(mc, make_logs, remove_logs);
	tcase_add_test(mc, cat_prints_every_record_readably);
	tcase_add_test(mc, huge_records_come_through_whole);
	tcase_add_test(mc, json_output_round_trips);
	tcase_add_test(mc, stats_count_levels_workers_and_crashes);
	tcase_add_test(mc, a_task_cannot_forge_a_failed_task);
	tcase_add_test(mc, host_and_rank_filters_read_the_resource);
	tcase_add_test(mc, stats_json_is_valid_utf8_whatever_the_log_holds);
	tcase_add_test(mc, garbage_lines_are_skipped_with_a_warning);
	tcase_add_test(mc, tail_follows_across_rotation_and_truncation);
	tcase_add_test(mc, tail_f_follows_several_files);
	tcase_add_test(mc, tail_f_waits_for_the_file_to_appear);
	suite_add_tcase(s, mc);
	return s;
}

MPK_TEST_MAIN(tool_suite)
