/* JSON lines: one object per record, named after the OpenTelemetry log
 * data model (timestamp, observed_timestamp, severity_text,
 * severity_number, body, attributes). Any byte string is made a valid JSON
 * string: control characters escaped, invalid UTF-8 replaced by U+FFFD. */
#include "aggregator-int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

size_t mplog__utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

void mplog__json_string(struct mpk_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	mpk_buf_put_u8(b, '"');
	size_t i = 0;
	while (i < n) {
		size_t run = i; /* copy plain ASCII in one go */
		while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		if (run > i) {
			mpk_buf_put(b, p + i, run - i);
			i = run;
			continue;
		}
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			mpk_buf_put(b, e, 2);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			const char *e = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r"
				      : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
			if (e) {
				mpk_buf_put(b, e, 2);
			} else {
				char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
				mpk_buf_put(b, u, 6);
			}
			i++;
		} else {
			size_t len = mplog__utf8_len(p + i, n - i);
			if (len) {
				mpk_buf_put(b, p + i, len);
				i += len;
			} else {
				mpk_buf_put(b, "\xef\xbf\xbd", 3); /* U+FFFD */
				i++;
			}
		}
	}
	mpk_buf_put_u8(b, '"');
}

static void put_str(struct mpk_buf *b, const char *s)
{
	mpk_buf_put(b, s, strlen(s));
}

static void put_key(struct mpk_buf *b, const char *key, bool *first)
{
	if (!*first)
		mpk_buf_put_u8(b, ',');
	*first = false;
	mplog__json_string(b, key, strlen(key));
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
	mplog__json_string(b, v, strlen(v));
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
	mplog__json_string(b, r->msg, r->msg_len);
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
