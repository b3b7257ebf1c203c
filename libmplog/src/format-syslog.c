/* SPDX-License-Identifier: MIT */
/* Syslog messages for the syslog sink, in two forms.
 *
 * On a local socket (/dev/log), what glibc's syslog(3) sends and the local
 * daemon parses (rsyslogd's imuxsock, journald), RFC 3164 without the
 * hostname:
 *   <PRI>Nov 23 11:18:00 app[1234]: message [worker="3" task="17" key="value"]
 * the time local, the record's context and key-values after the message.
 *
 * Over the network, RFC 5424:
 *   <PRI>1 2024-11-23T10:18:00.123456Z host app 1234 - [SD] message
 * The structured data is the registered SD-ID "origin" (RFC 5424 7.2:
 * software="mpkit" swVersion="VERSION") and the context and key-values
 * after the message, as above; or, once the caller named an SD-ID of its
 * own (name@ its IANA private enterprise number), an element of that ID
 * holding them: [name@PEN worker="3" task="17" key="value"]. mpkit has no
 * enterprise number of its own, and the one RFC 5612 gives for
 * documentation (32473) has no place in real logs.
 *
 * PRI is facility * 8 + severity. The context is the host and rank of a
 * record collected on another MPI rank (mplog_aggregator_inject(); its
 * host is RFC 5424's HOSTNAME too), the worker, task and stream when
 * known; names are reduced to the SD-NAME charset, values escaped ('"',
 * '\', ']') and made valid UTF-8. The message is the body as is, without
 * a BOM. */
#include "aggregator-int.h"
#include "json-int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

static void put_param(struct mpk_buf *b, bool *space, const char *name, const char *value)
{
	if (*space)
		mpk_buf_put_u8(b, ' ');
	*space = true;
	put_sd_name(b, name);
	put_str(b, "=\"");
	put_sd_value(b, value);
	mpk_buf_put_u8(b, '"');
}

/* The record's context and key-values as SD-PARAMs, separated by spaces
 * (and one before the first when space is set). */
static void put_params(struct mpk_buf *b, const mplog_record *r, bool space)
{
	char num[24];
	if (*r->host) /* RFC 3164's local form has no HOSTNAME */
		put_param(b, &space, "host", r->host);
	if (r->rank >= 0) {
		snprintf(num, sizeof num, "%d", r->rank);
		put_param(b, &space, "rank", num);
	}
	if (r->worker >= 0) {
		snprintf(num, sizeof num, "%d", r->worker);
		put_param(b, &space, "worker", num);
	}
	if (r->task >= 0) {
		snprintf(num, sizeof num, "%" PRId64, r->task);
		put_param(b, &space, "task", num);
	}
	if (r->stream != MPLOG_STREAM_LOG)
		put_param(b, &space, "stream", r->stream == MPLOG_STREAM_STDOUT ? "stdout" : "stderr");
	for (size_t i = 0; i < r->nkv; i++)
		put_param(b, &space, r->kv[2 * i], r->kv[2 * i + 1]);
}

static bool has_params(const mplog_record *r)
{
	return *r->host || r->rank >= 0 || r->worker >= 0 || r->task >= 0 || r->stream != MPLOG_STREAM_LOG || r->nkv > 0;
}

/* The message, then " [params]" when there are some. */
static void put_msg_params(struct mpk_buf *b, const mplog_record *r)
{
	mpk_buf_put(b, r->msg, r->msg_len);
	if (!has_params(r))
		return;
	put_str(b, r->msg_len ? " [" : "[");
	put_params(b, r, false);
	mpk_buf_put_u8(b, ']');
}

bool mplog__syslog_sd_id_valid(const char *id)
{
	const char *at = id ? strchr(id, '@') : NULL;
	size_t n = id ? strlen(id) : 0;
	if (!at || at == id || !at[1] || n > SD_NAME_MAX)
		return false;
	for (const char *p = id; p < at; p++)
		if (*p <= 32 || *p >= 127 || *p == '=' || *p == ']' || *p == '"' || *p == '@')
			return false;
	for (const char *p = at + 1; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '.'))
			return false;
	return at[1] != '.';
}

void mplog__format_syslog(struct mpk_buf *b, const mplog_record *r, int facility,
			  const char *hostname, const char *app, const char *sd_id)
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
	if (*r->host) { /* collected on another host (an MPI rank's): its name */
		char h[256];
		mplog__syslog_token(h, sizeof h, r->host);
		put_str(b, h);
	} else {
		put_str(b, hostname);
	}
	mpk_buf_put_u8(b, ' ');
	put_str(b, app);
	if (r->pid > 0)
		n = snprintf(head, sizeof head, " %d - ", r->pid);
	else
		n = snprintf(head, sizeof head, " - - ");
	if (n > 0)
		mpk_buf_put(b, head, (size_t)n);

	if (sd_id) {
		if (!has_params(r)) {
			mpk_buf_put_u8(b, '-');
		} else {
			mpk_buf_put_u8(b, '[');
			put_str(b, sd_id);
			put_params(b, r, true);
			mpk_buf_put_u8(b, ']');
		}
		if (r->msg_len) {
			mpk_buf_put_u8(b, ' ');
			mpk_buf_put(b, r->msg, r->msg_len);
		}
		return;
	}
	put_str(b, "[origin software=\"mpkit\" swVersion=\"" MPKIT_VERSION "\"]");
	if (r->msg_len || has_params(r)) {
		mpk_buf_put_u8(b, ' ');
		put_msg_params(b, r);
	}
}

void mplog__format_rfc3164(struct mpk_buf *b, const mplog_record *r, int facility, const char *app)
{
	/* glibc's form: "%h %e %T" in local time, then "TAG[PID]: ". */
	time_t sec = (time_t)(r->ts / 1000000000u);
	struct tm tm;
	localtime_r(&sec, &tm);
	static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	mpk_buf_printf(b, "<%d>%s %2d %02d:%02d:%02d ", facility * 8 + mplog__syslog_severity(r->level),
		       mon[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	put_str(b, app);
	if (r->pid > 0)
		mpk_buf_printf(b, "[%d]", r->pid);
	put_str(b, ": ");
	put_msg_params(b, r);
}
