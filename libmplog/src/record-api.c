/* SPDX-License-Identifier: MIT */
/* Read access to a received record, for callback sinks. */
#include "aggregator-int.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

MPLOG_EXPORT uint64_t mplog_record_timestamp(const mplog_record *r) { return r ? r->ts : 0; }
MPLOG_EXPORT uint64_t mplog_record_observed_timestamp(const mplog_record *r)
{
	return r ? r->observed : 0;
}
MPLOG_EXPORT mplog_level mplog_record_level(const mplog_record *r)
{
	return r ? r->level : MPLOG_TRACE;
}
MPLOG_EXPORT int mplog_record_pid(const mplog_record *r) { return r ? r->pid : 0; }
MPLOG_EXPORT int mplog_record_worker(const mplog_record *r) { return r ? r->worker : -1; }
MPLOG_EXPORT int64_t mplog_record_task(const mplog_record *r) { return r ? r->task : -1; }
MPLOG_EXPORT mplog_stream mplog_record_stream(const mplog_record *r)
{
	return r ? r->stream : MPLOG_STREAM_LOG;
}
MPLOG_EXPORT const char *mplog_record_channel(const mplog_record *r) { return r ? r->channel : ""; }
MPLOG_EXPORT const char *mplog_record_host(const mplog_record *r) { return r ? r->host : ""; }
MPLOG_EXPORT int mplog_record_host_pid(const mplog_record *r) { return r ? r->host_pid : 0; }
MPLOG_EXPORT int mplog_record_rank(const mplog_record *r) { return r ? r->rank : -1; }
MPLOG_EXPORT const char *mplog_record_file(const mplog_record *r) { return r ? r->file : ""; }
MPLOG_EXPORT int mplog_record_line(const mplog_record *r) { return r ? r->line : 0; }
MPLOG_EXPORT const char *mplog_record_function(const mplog_record *r) { return r ? r->func : ""; }

MPLOG_EXPORT const char *mplog_record_message(const mplog_record *r, size_t *len)
{
	if (len)
		*len = r ? r->msg_len : 0;
	return r ? r->msg : "";
}

MPLOG_EXPORT size_t mplog_record_kv_count(const mplog_record *r) { return r ? r->nkv : 0; }

MPLOG_EXPORT int mplog_record_kv(const mplog_record *r, size_t i, const char **key,
				 const char **value)
{
	if (!r)
		return -EINVAL;
	if (i >= r->nkv)
		return -ERANGE;
	if (key)
		*key = r->kv[2 * i];
	if (value)
		*value = r->kv[2 * i + 1];
	return 0;
}

MPLOG_EXPORT const char *mplog_record_kv_get(const mplog_record *r, const char *key)
{
	if (!r || !key)
		return NULL;
	for (size_t i = 0; i < r->nkv; i++)
		if (strcmp(r->kv[2 * i], key) == 0)
			return r->kv[2 * i + 1];
	return NULL;
}

MPLOG_EXPORT ssize_t mplog_record_format(const mplog_record *r, mplog_format format, unsigned flags,
					 char *buf, size_t size)
{
	if (!r || (!buf && size) || (format != MPLOG_FORMAT_TEXT && format != MPLOG_FORMAT_JSON) ||
	    (flags & ~(unsigned)(MPLOG_SINK_COLOR_NEVER | MPLOG_SINK_COLOR_ALWAYS)))
		return -EINVAL;
	struct mpk_buf b = {0};
	if (format == MPLOG_FORMAT_JSON)
		mplog__format_json(&b, r);
	else
		mplog__format_text(&b, r, flags & MPLOG_SINK_COLOR_ALWAYS);
	if (b.oom) {
		mpk_buf_free(&b);
		return -ENOMEM;
	}
	size_t n = b.len;
	if (n < size) {
		memcpy(buf, b.data, n);
		buf[n] = '\0';
	}
	mpk_buf_free(&b);
	return n > SSIZE_MAX ? -EOVERFLOW : (ssize_t)n;
}
