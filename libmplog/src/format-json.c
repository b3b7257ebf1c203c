/* SPDX-License-Identifier: MIT */
/* JSON lines: one object per record, named after the OpenTelemetry log
 * data model (timestamp, observed_timestamp, severity_text,
 * severity_number, body, attributes). Strings are written by the shared
 * JSON string writer (json.c), so any bytes make valid JSON. */
#include "aggregator-int.h"
#include "json-int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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

void mplog__format_json(struct mpk_buf *b, const mplog_record *r)
{
	char num[128]; /* fits both 20-digit numbers */
	int n = snprintf(num, sizeof num, "{\"timestamp\":%" PRIu64 ",\"observed_timestamp\":%" PRIu64,
			 r->ts, r->observed);
	mpk_buf_put(b, num, (size_t)n);
	put_str(b, ",\"severity_text\":\"");
	put_str(b, severity_text[r->level]);
	n = snprintf(num, sizeof num, "\",\"severity_number\":%d,\"body\":",
		     severity_number[r->level]);
	mpk_buf_put(b, num, (size_t)n);
	mpk_json_string(b, r->msg, r->msg_len);
	put_str(b, ",\"attributes\":{");
	bool first = true;
	if (r->pid > 0)
		put_int(b, "process.pid", r->pid, &first);
	if (r->worker >= 0)
		put_int(b, "mpkit.worker", r->worker, &first);
	if (r->task >= 0)
		put_int(b, "mpkit.task", r->task, &first);
	if (*r->channel)
		put_attr_str(b, "mpkit.channel", r->channel, &first);
	if (*r->file)
		put_attr_str(b, "code.filepath", r->file, &first);
	if (r->line > 0)
		put_int(b, "code.lineno", r->line, &first);
	if (*r->func)
		put_attr_str(b, "code.function", r->func, &first);
	if (r->stream != MPLOG_STREAM_LOG)
		put_attr_str(b, "log.iostream", r->stream == MPLOG_STREAM_STDOUT ? "stdout" : "stderr",
			     &first);
	for (size_t i = 0; i < r->nkv; i++)
		put_attr_str(b, r->kv[2 * i], r->kv[2 * i + 1], &first);
	put_str(b, "}}\n");
}
