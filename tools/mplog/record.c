/* SPDX-License-Identifier: MIT */
/* One JSON line of libmplog's JSON sink into a struct mt_record. Tolerant
 * of other producers of the same OpenTelemetry shape: attributes of any
 * type, ids as strings, severity by text or by number. */
#include "mplog-tool.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* An attribute that is an integer, or a string holding one; else -1. */
static long long as_id(json_object *v)
{
	if (!v)
		return -1;
	if (json_object_is_type(v, json_type_int))
		return json_object_get_int64(v);
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		char *end;
		errno = 0;
		long long n = strtoll(s, &end, 10);
		if (*s && !*end && !errno && n >= 0)
			return n;
	}
	return -1;
}

/* Strings as they are, anything else as its JSON text (owned by v). */
static const char *as_str(json_object *v)
{
	if (!v)
		return "";
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

/* OpenTelemetry severity numbers: 1-4 trace, 5-8 debug, 9-12 info (10 is
 * libmplog's notice), 13-16 warn, 17-20 error, 21-24 fatal. */
static mplog_level from_number(int64_t n)
{
	if (n >= 21)
		return MPLOG_FATAL;
	if (n >= 17)
		return MPLOG_ERROR;
	if (n >= 13)
		return MPLOG_WARN;
	if (n == 10)
		return MPLOG_NOTICE;
	if (n >= 9)
		return MPLOG_INFO;
	if (n >= 5)
		return MPLOG_DEBUG;
	if (n >= 1)
		return MPLOG_TRACE;
	return MPLOG_INFO;
}

static mplog_level parse_level(json_object *root)
{
	json_object *v;
	mplog_level l;
	/* OTLP/JSON names, then those of files of earlier development builds. */
	if ((json_object_object_get_ex(root, "severityText", &v) ||
	     json_object_object_get_ex(root, "severity_text", &v)) &&
	    json_object_is_type(v, json_type_string) &&
	    mplog_level_parse(json_object_get_string(v), &l) == 0)
		return l;
	if ((json_object_object_get_ex(root, "severityNumber", &v) ||
	     json_object_object_get_ex(root, "severity_number", &v)) &&
	    json_object_is_type(v, json_type_int))
		return from_number(json_object_get_int64(v));
	return MPLOG_INFO;
}

/* The record's time, ns: "timeUnixNano" (a string of digits, as OTLP/JSON
 * writes 64-bit integers, or an integer), else "time" (RFC 3339), else
 * "timestamp" (an integer, files of earlier development builds). A time of another
 * type is an error, never read as 0 (1970). 0: none given. */
static int parse_time(json_object *root, uint64_t *ts, const char **why)
{
	json_object *v;
	*ts = 0;
	if (json_object_object_get_ex(root, "timeUnixNano", &v)) {
		if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0) {
			*ts = (uint64_t)json_object_get_int64(v);
			return 0;
		}
		const char *s = json_object_get_string(v);
		char *end = NULL;
		errno = 0;
		if (json_object_is_type(v, json_type_string) && *s >= '0' && *s <= '9') {
			unsigned long long n = strtoull(s, &end, 10);
			if (!*end && !errno) {
				*ts = n;
				return 0;
			}
		}
		*why = "\"timeUnixNano\" is not an integer of nanoseconds";
		return -EINVAL;
	}
	if (json_object_object_get_ex(root, "time", &v)) {
		if (!json_object_is_type(v, json_type_string) ||
		    mt_time_parse_rfc3339(json_object_get_string(v), ts) < 0) {
			*why = "\"time\" is not an RFC 3339 time";
			return -EINVAL;
		}
		return 0;
	}
	if (json_object_object_get_ex(root, "timestamp", &v)) {
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
			*why = "\"timestamp\" is not an integer of nanoseconds";
			return -EINVAL;
		}
		*ts = (uint64_t)json_object_get_int64(v);
	}
	return 0;
}

static void parse_resource(json_object *root, struct mt_record *r)
{
	json_object *res, *v;
	if (!json_object_object_get_ex(root, "resource", &res) ||
	    !json_object_is_type(res, json_type_object))
		return;
	if (json_object_object_get_ex(res, "service.name", &v))
		r->res_service = as_str(v);
	if (json_object_object_get_ex(res, "host.name", &v))
		r->res_host = as_str(v);
	if (json_object_object_get_ex(res, "process.pid", &v))
		r->res_pid = as_id(v);
	if (json_object_object_get_ex(res, "mpkit.mpi.rank", &v))
		r->res_rank = as_id(v);
}

static int parse_attributes(json_object *attrs, struct mt_record *r)
{
	size_t n = (size_t)json_object_object_length(attrs);
	r->kv = calloc(n ? n : 1, sizeof *r->kv);
	if (!r->kv)
		return -ENOMEM;
	json_object_object_foreach(attrs, key, v) {
		if (!strcmp(key, "process.pid"))
			r->pid = as_id(v);
		else if (!strcmp(key, "mpkit.worker"))
			r->worker = as_id(v);
		else if (!strcmp(key, "mpkit.task"))
			r->task = as_id(v);
		else if (!strcmp(key, "mpkit.channel"))
			r->channel = as_str(v);
		else if (!strcmp(key, "code.file.path") || !strcmp(key, "code.filepath"))
			r->file = as_str(v);
		else if (!strcmp(key, "code.line.number") || !strcmp(key, "code.lineno"))
			r->lineno = as_id(v);
		else if (!strcmp(key, "code.function.name") || !strcmp(key, "code.function"))
			r->func = as_str(v);
		else if (!strcmp(key, "log.iostream")) {
			const char *s = as_str(v);
			r->stream = !strcmp(s, "stdout")   ? MT_STREAM_STDOUT
				    : !strcmp(s, "stderr") ? MT_STREAM_STDERR
							   : MT_STREAM_LOG;
		} else {
			/* The pool's failed-task records: kept as key-values
			 * too, and the ones a filter or counter needs picked. */
			if (!strcmp(key, "mpg.kind"))
				r->kind = as_str(v);
			else if (!strcmp(key, "mpg.pid"))
				r->mpg_pid = as_id(v);
			else if (!strcmp(key, "mpg.worker"))
				r->mpg_worker = as_id(v);
			else if (!strcmp(key, "mpg.task"))
				r->mpg_task = as_id(v);
			else if (!strcmp(key, "mpg.signal"))
				r->signal = as_str(v);
			else if (!strcmp(key, "mpg.backtrace") ||
				 !strcmp(key, "exception.stacktrace"))
				r->backtrace = as_str(v);
			else if (!strcmp(key, "mpg.service"))
				r->service = as_str(v);
			r->kv[r->nkv++] = (struct mt_kv){key, as_str(v)};
		}
	}
	return 0;
}

int mt_record_parse(json_tokener *tok, const char *line, size_t len, struct mt_record *r,
		    const char **why)
{
	*r = (struct mt_record){.pid = -1, .worker = -1, .task = -1, .mpg_pid = -1,
				.mpg_worker = -1, .mpg_task = -1, .channel = "", .file = "",
				.func = "", .signal = "", .backtrace = "", .service = "", .body = "",
				.res_service = "", .res_host = "", .res_pid = -1, .res_rank = -1};
	if (len > INT_MAX) {
		*why = "line too long";
		return -EINVAL;
	}
	json_tokener_reset(tok);
	json_object *root = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	if (!root) {
		*why = e == json_tokener_continue ? "truncated JSON" : json_tokener_error_desc(e);
		return -EINVAL;
	}
	size_t end = json_tokener_get_parse_end(tok);
	while (end < len && strchr(" \t\r", line[end]))
		end++;
	if (end != len || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		*why = end != len ? "text after the JSON value" : "not a JSON object";
		return -EINVAL;
	}
	r->root = root;
	json_object *v;
	if (parse_time(root, &r->ts, why) < 0) {
		mt_record_clear(r);
		return -EINVAL;
	}
	parse_resource(root, r);
	r->level = parse_level(root);
	if (json_object_object_get_ex(root, "body", &v) && v) {
		if (json_object_is_type(v, json_type_string)) {
			r->body = json_object_get_string(v);
			r->body_len = (size_t)json_object_get_string_len(v);
		} else {
			r->body = as_str(v);
			r->body_len = strlen(r->body);
		}
	}
	int ret = 0;
	if (json_object_object_get_ex(root, "attributes", &v) &&
	    json_object_is_type(v, json_type_object))
		ret = parse_attributes(v, r);
	if (*r->channel) {
		/* A record from a channel is a child's: its mpg.* are forged
		 * (libmplog now renames them "child.mpg.*"; a log written
		 * before may still hold them). The pool's and supervisor's
		 * own records come from no channel. */
		r->kind = NULL;
		r->mpg_pid = r->mpg_worker = r->mpg_task = -1;
		r->signal = r->backtrace = r->service = "";
	}
	if (r->kind) {
		/* Now a failure record names its task and worker as
		 * every record does (mpkit.task, mpkit.worker), not in mpg.*. */
		if (r->mpg_worker < 0)
			r->mpg_worker = r->worker;
		if (r->mpg_task < 0)
			r->mpg_task = r->task;
	}
	if (r->kind && r->mpg_worker >= 0)
		snprintf(r->failed_channel, sizeof r->failed_channel, "worker-%lld", r->mpg_worker);
	if (ret < 0) {
		mt_record_clear(r);
		*why = "out of memory";
	}
	return ret;
}

void mt_record_clear(struct mt_record *r)
{
	free(r->kv);
	json_object_put(r->root);
	r->kv = NULL;
	r->root = NULL;
}

long long mt_record_worker(const struct mt_record *r)
{
	return r->kind && r->mpg_worker >= 0 ? r->mpg_worker : r->worker;
}

long long mt_record_pid(const struct mt_record *r)
{
	return r->kind && r->mpg_pid >= 0 ? r->mpg_pid : r->pid;
}

const char *mt_record_channel(const struct mt_record *r)
{
	if (*r->service)
		return r->service;
	if (r->kind && r->mpg_worker >= 0)
		return r->failed_channel;
	return r->channel;
}

long long mt_record_task(const struct mt_record *r)
{
	return r->kind && r->mpg_task >= 0 ? r->mpg_task : r->task;
}
