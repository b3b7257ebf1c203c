/* SPDX-License-Identifier: MIT */
/* JSON lines: one object per record, self-describing, in the names of the
 * OpenTelemetry log data model as its JSON encoding (OTLP/JSON) spells
 * them, with values kept plain (a string body, attributes as an object)
 * so that jq reads them as they are:
 *   {"time":"2026-11-29T17:31:18.550000001Z","timeUnixNano":"...",
 *    "observedTimeUnixNano":"...","severityText":"INFO","severityNumber":9,
 *    "body":"...","resource":{"service.name":..,"host.name":..,"process.pid":N,
 *    "mpkit.mpi.rank":N},
 *    "attributes":{...}}
 * Times are strings: 64-bit integers lose precision in most JSON readers.
 * The schema is docs/mplog-record.schema.json. Strings are written by the
 * shared JSON string writer (json.c), so any bytes make valid JSON. */
#include "aggregator-int.h"
#include "json-int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void put_str(struct mpk_buf *b, const char *s)
{
	mpk_buf_put(b, s, strlen(s));
}

static void put_key(struct mpk_buf *b, const char *key, bool *first)
{
	if (!*first)
		mpk_buf_put_u8(b, ',');
	*first = false;
	mpk_json_string(b, key, strlen(key));
	mpk_buf_put_u8(b, ':');
}

static void put_int(struct mpk_buf *b, const char *key, long long v, bool *first)
{
	char num[24];
	put_key(b, key, first);
	int n = snprintf(num, sizeof num, "%lld", v);
	mpk_buf_put(b, num, (size_t)n);
}

static void put_attr_str(struct mpk_buf *b, const char *key, const char *v, bool *first)
{
	put_key(b, key, first);
	mpk_json_string(b, v, strlen(v));
}

static const int severity_number[] = {1, 5, 9, 10, 13, 17, 21};
static const char *const severity_text[] = {"TRACE", "DEBUG",  "INFO", "NOTICE",
					    "WARN",  "ERROR", "FATAL"};

/* ---- the resource: who wrote the log ------------------------------------ */

static pthread_once_t resource_once = PTHREAD_ONCE_INIT;
static char service_name[256], host_name[256];

static void resource_init(void)
{
	/* OTEL_SERVICE_NAME: the OpenTelemetry SDKs' own setting. */
	const char *s = getenv("OTEL_SERVICE_NAME");
	if (!s || !*s)
		s = program_invocation_short_name;
	snprintf(service_name, sizeof service_name, "%s", s ? s : "");
	if (gethostname(host_name, sizeof host_name) < 0)
		host_name[0] = 0;
	host_name[sizeof host_name - 1] = 0;
}

/* The process formatting is the aggregator's, the pool's or supervisor's:
 * the records of its children are about its work. A record collected by
 * another process (an MPI agent rank's, injected) is about that one's:
 * its host and pid; and the rank of either in its job, when it has one. */
static void put_resource(struct mpk_buf *b, const mplog_record *r)
{
	pthread_once(&resource_once, resource_init);
	bool first = true;
	put_str(b, ",\"resource\":{");
	if (*service_name)
		put_attr_str(b, "service.name", service_name, &first);
	const char *host = *r->host ? r->host : host_name;
	if (*host)
		put_attr_str(b, "host.name", host, &first);
	if (!*r->host)
		put_int(b, "process.pid", getpid(), &first);
	else if (r->host_pid > 0)
		put_int(b, "process.pid", r->host_pid, &first);
	if (r->rank >= 0)
		put_int(b, "mpkit.mpi.rank", r->rank, &first);
	mpk_buf_put_u8(b, '}');
}

/* ---- time --------------------------------------------------------------- */

static void put_times(struct mpk_buf *b, uint64_t ts, uint64_t observed)
{
	char out[160];
	time_t sec = (time_t)(ts / 1000000000u);
	struct tm tm;
	gmtime_r(&sec, &tm);
	int n = snprintf(out, sizeof out,
			 "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09" PRIu64 "Z\","
			 "\"timeUnixNano\":\"%" PRIu64 "\",\"observedTimeUnixNano\":\"%" PRIu64 "\"",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts % 1000000000u, ts, observed);
	mpk_buf_put(b, out, (size_t)n);
}

/* ---- a pool's failure records ------------------------------------------- */

/* A task or worker number a pool wrote as text: its value, else -1. */
static long long decimal(const char *s)
{
	long long v = 0;
	if (!*s || strlen(s) > 18)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

static const char *kv_get(const mplog_record *r, const char *key)
{
	for (size_t i = 0; i < r->nkv; i++)
		if (!strcmp(r->kv[2 * i], key))
			return r->kv[2 * i + 1];
	return NULL;
}

/* What the parent's own records about a task or worker (a failure, a
 * retry, a worker that cannot start) become: mpg.task and mpg.worker the
 * integers mpkit.task and mpkit.worker, like the task's own records; a
 * failure (mpg.kind) the OpenTelemetry exception attributes. A child's
 * keys of these names arrive renamed "child.*" (reserved_key(),
 * aggregator.c), so only the parent's are read here. */
struct failure {
	long long task, worker;
	bool task_used, worker_used;
	const char *kind, *signal, *backtrace;
};

static void failure_of(const mplog_record *r, struct failure *f)
{
	*f = (struct failure){.task = r->task, .worker = r->worker};
	const char *t = kv_get(r, "mpg.task"), *w = kv_get(r, "mpg.worker");
	if (t && f->task < 0 && decimal(t) >= 0) {
		f->task = decimal(t);
		f->task_used = true;
	}
	if (w && f->worker < 0 && decimal(w) >= 0) {
		f->worker = decimal(w);
		f->worker_used = true;
	}
	f->kind = kv_get(r, "mpg.kind");
	f->signal = kv_get(r, "mpg.signal");
	f->backtrace = kv_get(r, "mpg.backtrace");
}

void mplog__format_json(struct mpk_buf *b, const mplog_record *r)
{
	struct failure f;
	failure_of(r, &f);
	put_times(b, r->ts, r->observed);
	put_str(b, ",\"severityText\":\"");
	put_str(b, severity_text[r->level]);
	char num[48];
	int n = snprintf(num, sizeof num, "\",\"severityNumber\":%d,\"body\":",
			 severity_number[r->level]);
	mpk_buf_put(b, num, (size_t)n);
	mpk_json_string(b, r->msg, r->msg_len);
	put_resource(b, r);
	put_str(b, ",\"attributes\":{");
	bool first = true;
	if (r->pid > 0)
		put_int(b, "process.pid", r->pid, &first);
	if (f.worker >= 0)
		put_int(b, "mpkit.worker", f.worker, &first);
	if (f.task >= 0)
		put_int(b, "mpkit.task", f.task, &first);
	if (*r->channel)
		put_attr_str(b, "mpkit.channel", r->channel, &first);
	if (*r->file)
		put_attr_str(b, "code.file.path", r->file, &first);
	if (r->line > 0)
		put_int(b, "code.line.number", r->line, &first);
	if (*r->func)
		put_attr_str(b, "code.function.name", r->func, &first);
	if (r->stream != MPLOG_STREAM_LOG)
		put_attr_str(b, "log.iostream", r->stream == MPLOG_STREAM_STDOUT ? "stdout" : "stderr",
			     &first);
	if (f.kind) {
		put_attr_str(b, "exception.type", f.signal ? f.signal : f.kind, &first);
		put_key(b, "exception.message", &first);
		mpk_json_string(b, r->msg, r->msg_len);
	}
	for (size_t i = 0; i < r->nkv; i++) {
		const char *k = r->kv[2 * i], *v = r->kv[2 * i + 1];
		if ((f.task_used && !strcmp(k, "mpg.task")) ||
		    (f.worker_used && !strcmp(k, "mpg.worker")))
			continue; /* written above as integers */
		if (f.kind && v == f.backtrace)
			k = "exception.stacktrace";
		put_attr_str(b, k, v, &first);
	}
	put_str(b, "}}\n");
}
