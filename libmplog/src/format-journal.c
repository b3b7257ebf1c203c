/* SPDX-License-Identifier: MIT */
/* The journal's native protocol, as the journal sink sends it: a record
 * becomes one datagram of fields, each "NAME=value\n", or, when the value
 * holds a newline (a backtrace, a message of several lines),
 *   NAME "\n" u64 length (little-endian) value "\n"
 * (systemd's "Native Journal Protocol"). Field names are what journald
 * accepts: A-Z, 0-9 and '_', not starting with '_' or a digit, at most 64
 * characters. */
#include "aggregator-int.h"

#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define NAME_MAX_LEN 64

static void put_field(struct mpk_buf *b, const char *name, const char *v, size_t n)
{
	mpk_buf_put(b, name, strlen(name));
	if (!memchr(v, '\n', n)) {
		mpk_buf_put_u8(b, '=');
		mpk_buf_put(b, v, n);
	} else {
		uint64_t le = htole64((uint64_t)n);
		mpk_buf_put_u8(b, '\n');
		mpk_buf_put(b, &le, sizeof le);
		mpk_buf_put(b, v, n);
	}
	mpk_buf_put_u8(b, '\n');
}

static void put_str_field(struct mpk_buf *b, const char *name, const char *v)
{
	put_field(b, name, v, strlen(v));
}

/* Fields the journal gives a meaning to, and the sink's own: a key-value
 * never takes their place. */
static bool taken(const char *name)
{
	static const char *const own[] = {
		"MESSAGE", "MESSAGE_ID", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
		"ERRNO", "SYSLOG_FACILITY", "SYSLOG_IDENTIFIER", "SYSLOG_PID",
		"SYSLOG_TIMESTAMP", "SYSLOG_RAW", "DOCUMENTATION", "TID", "INVOCATION_ID",
		"USER_INVOCATION_ID", "UNIT", "USER_UNIT", "MPKIT_WORKER", "MPKIT_TASK",
		"MPKIT_PID", "MPKIT_STREAM", "MPKIT_CHANNEL", "MPKIT_HOST", "MPKIT_HOST_PID",
		"MPKIT_RANK",
	};
	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
		if (strcmp(name, own[i]) == 0)
			return true;
	return strncmp(name, "OBJECT_", 7) == 0 || strncmp(name, "COREDUMP_", 9) == 0;
}

void mplog__journal_field_name(char *dst, const char *key)
{
	char name[NAME_MAX_LEN + 1];
	size_t n = 0;
	for (; key[n] && n < NAME_MAX_LEN; n++) {
		char c = key[n];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			c = '_';
		name[n] = c;
	}
	name[n] = 0;
	if (n == 0 || name[0] == '_' || (name[0] >= '0' && name[0] <= '9') || taken(name))
		snprintf(dst, NAME_MAX_LEN + 1, "MPKIT_KV_%.55s", name); /* 64 at most */
	else
		memcpy(dst, name, n + 1);
}

void mplog__format_journal(struct mpk_buf *b, const mplog_record *r, int facility,
			   const char *ident)
{
	char num[24];
	put_field(b, "MESSAGE", r->msg, r->msg_len);
	snprintf(num, sizeof num, "%d", mplog__syslog_severity(r->level));
	put_str_field(b, "PRIORITY", num);
	if (facility >= 0) {
		snprintf(num, sizeof num, "%d", facility);
		put_str_field(b, "SYSLOG_FACILITY", num);
	}
	put_str_field(b, "SYSLOG_IDENTIFIER", ident);
	if (*r->file)
		put_str_field(b, "CODE_FILE", r->file);
	if (r->line > 0) {
		snprintf(num, sizeof num, "%d", r->line);
		put_str_field(b, "CODE_LINE", num);
	}
	if (*r->func)
		put_str_field(b, "CODE_FUNC", r->func);
	if (r->worker >= 0) {
		snprintf(num, sizeof num, "%d", r->worker);
		put_str_field(b, "MPKIT_WORKER", num);
	}
	if (r->task >= 0) {
		snprintf(num, sizeof num, "%" PRId64, r->task);
		put_str_field(b, "MPKIT_TASK", num);
	}
	if (r->pid > 0) {
		snprintf(num, sizeof num, "%d", r->pid);
		put_str_field(b, "MPKIT_PID", num);
	}
	if (r->stream != MPLOG_STREAM_LOG)
		put_str_field(b, "MPKIT_STREAM", r->stream == MPLOG_STREAM_STDOUT ? "stdout" : "stderr");
	if (*r->channel)
		put_str_field(b, "MPKIT_CHANNEL", r->channel);
	/* Another host's record: journald's _HOSTNAME is its own, trusted. */
	if (*r->host)
		put_str_field(b, "MPKIT_HOST", r->host);
	if (r->host_pid > 0) {
		snprintf(num, sizeof num, "%d", r->host_pid);
		put_str_field(b, "MPKIT_HOST_PID", num);
	}
	if (r->rank >= 0) {
		snprintf(num, sizeof num, "%d", r->rank);
		put_str_field(b, "MPKIT_RANK", num);
	}
	for (size_t i = 0; i < r->nkv; i++) {
		char name[NAME_MAX_LEN + 1];
		mplog__journal_field_name(name, r->kv[2 * i]);
		put_str_field(b, name, r->kv[2 * i + 1]);
	}
}
