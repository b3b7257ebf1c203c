/* SPDX-License-Identifier: MIT */
/* RFC 5424 syslog messages for the syslog sink:
 *   <PRI>1 2024-11-23T10:18:00.123456Z host app 1234 - [mpkit@32473 worker="3"
 *   task="17" stream="stdout" key="value"] message
 * PRI is facility * 8 + severity. The structured data carries the worker,
 * task and stream when known, then the record's key-values; names are
 * reduced to the SD-NAME charset, values escaped ('"', '\', ']') and made
 * valid UTF-8. The message is the body as is, without a BOM. 32473 is the
 * IANA example enterprise number (RFC 5612), for an SD-ID that is not
 * registered. */
#include "aggregator-int.h"
#include "json-int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SD_ID "mpkit@32473"
#define SD_NAME_MAX 32

int mplog__syslog_severity(mplog_level level)
{
	static const int sev[] = {7, 7, 6, 5, 4, 3, 2};
	return (unsigned)level <= MPLOG_FATAL ? sev[level] : 6;
}

void mplog__syslog_token(char *dst, size_t cap, const char *src)
{
	size_t n = 0;
	for (; src && src[n] && n < cap - 1; n++) {
		unsigned char c = (unsigned char)src[n];
		dst[n] = c >= 33 && c <= 126 ? (char)c : '_';
	}
	if (n == 0)
		dst[n++] = '-';
	dst[n] = 0;
}

static void put_str(struct mpk_buf *b, const char *s)
{
	mpk_buf_put(b, s, strlen(s));
}

/* SD-NAME: 1 to 32 printable US-ASCII characters except '=', ' ', ']', '"'. */
static void put_sd_name(struct mpk_buf *b, const char *name)
{
	size_t n = 0;
	for (; name[n] && n < SD_NAME_MAX; n++) {
		unsigned char c = (unsigned char)name[n];
		bool ok = c >= 33 && c <= 126 && c != '=' && c != ']' && c != '"';
		mpk_buf_put_u8(b, ok ? c : '_');
	}
	if (n == 0)
		mpk_buf_put_u8(b, '_');
}

/* PARAM-VALUE: UTF-8 with '"', '\' and ']' escaped by a backslash. */
static void put_sd_value(struct mpk_buf *b, const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	size_t n = strlen(v);
	for (size_t i = 0; i < n;) {
		size_t len = mpk_utf8_len(p + i, n - i);
		if (len == 0) {
			mpk_buf_put(b, "\xef\xbf\xbd", 3); /* U+FFFD */
			i++;
			continue;
		}
		if (len == 1 && (p[i] == '"' || p[i] == '\\' || p[i] == ']'))
			mpk_buf_put_u8(b, '\\');
		mpk_buf_put(b, p + i, len);
		i += len;
	}
}

static void put_param(struct mpk_buf *b, const char *name, const char *value)
{
	mpk_buf_put_u8(b, ' ');
	put_sd_name(b, name);
	put_str(b, "=\"");
	put_sd_value(b, value);
	mpk_buf_put_u8(b, '"');
}

void mplog__format_syslog(struct mpk_buf *b, const mplog_record *r, int facility,
			  const char *hostname, const char *app)
{
	char head[128];
	time_t sec = (time_t)(r->ts / 1000000000u);
	struct tm tm;
	char when[32];
	gmtime_r(&sec, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	int n = snprintf(head, sizeof head, "<%d>1 %s.%06uZ ", facility * 8 + mplog__syslog_severity(r->level),
			 when, (unsigned)(r->ts % 1000000000u / 1000u));
	if (n > 0)
		mpk_buf_put(b, head, (size_t)n < sizeof head ? (size_t)n : sizeof head - 1);
	put_str(b, hostname);
	mpk_buf_put_u8(b, ' ');
	put_str(b, app);
	if (r->pid > 0)
		n = snprintf(head, sizeof head, " %d - ", r->pid);
	else
		n = snprintf(head, sizeof head, " - - ");
	if (n > 0)
		mpk_buf_put(b, head, (size_t)n);

	bool sd = r->worker >= 0 || r->task >= 0 || r->stream != MPLOG_STREAM_LOG || r->nkv > 0;
	if (!sd) {
		mpk_buf_put_u8(b, '-');
	} else {
		put_str(b, "[" SD_ID);
		char num[24];
		if (r->worker >= 0) {
			snprintf(num, sizeof num, "%d", r->worker);
			put_param(b, "worker", num);
		}
		if (r->task >= 0) {
			snprintf(num, sizeof num, "%" PRId64, r->task);
			put_param(b, "task", num);
		}
		if (r->stream != MPLOG_STREAM_LOG)
			put_param(b, "stream", r->stream == MPLOG_STREAM_STDOUT ? "stdout" : "stderr");
		for (size_t i = 0; i < r->nkv; i++)
			put_param(b, r->kv[2 * i], r->kv[2 * i + 1]);
		mpk_buf_put_u8(b, ']');
	}
	if (r->msg_len) {
		mpk_buf_put_u8(b, ' ');
		mpk_buf_put(b, r->msg, r->msg_len);
	}
}
