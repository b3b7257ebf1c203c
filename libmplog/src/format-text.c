/* SPDX-License-Identifier: MIT */
/* The human format of fd and file sinks: one line per record,
 *   2024-11-23 11:18:00.123456 INFO  [w3 pid 1234 task 17] message k=v (file.c:42 func)
 * or, for a record of another host's rank (mplog_aggregator_inject()),
 *   ... INFO  [node2 r1 w3 pid 1234 task 17] ...
 * with colour per level and per worker when the sink asked for it.
 * Newlines inside a message continue on indented lines; a key-value whose
 * value has several lines (a backtrace) goes below, "    key:" and then
 * its lines indented further. Only a record starts a line with something
 * other than a space, and whatever a child sent (message, key-values,
 * channel, file and function names) goes through mpk_text_escape(): no
 * carriage return, escape sequence or invalid UTF-8 reaches the reader's
 * terminal, and no child can print what looks like another record. */
#include "aggregator-int.h"
#include "text-int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const level_tag[] = {"TRACE", "DEBUG", "INFO ", "NOTE ",
					"WARN ", "ERROR", "FATAL"};
static const char *const level_color[] = {"\033[90m", "\033[36m", "\033[32m", "\033[1m",
					  "\033[33m", "\033[31m", "\033[1;31m"};
static const char *const worker_color[] = {"\033[34m", "\033[35m", "\033[36m", "\033[32m",
					   "\033[33m", "\033[94m", "\033[95m", "\033[96m"};
#define RESET "\033[0m"

static void put_str(struct mpk_buf *b, const char *s)
{
	mpk_buf_put(b, s, strlen(s));
}

/* What a child sent, on one line. */
static void put_safe(struct mpk_buf *b, const char *s)
{
	mpk_text_escape(b, s, strlen(s));
}

static void put_message(struct mpk_buf *b, const char *m, size_t n)
{
	for (;;) {
		const char *nl = memchr(m, '\n', n);
		if (!nl) {
			mpk_text_escape(b, m, n);
			return;
		}
		mpk_text_escape(b, m, (size_t)(nl - m));
		put_str(b, "\n    ");
		n -= (size_t)(nl - m) + 1;
		m = nl + 1;
	}
}

/* A value of several lines, below the record's line; its final newlines
 * would only make empty lines. */
static void put_block(struct mpk_buf *b, const char *key, const char *value)
{
	if (!strchr(value, '\n'))
		return;
	size_t n = strlen(value);
	while (n && value[n - 1] == '\n')
		n--;
	if (!n)
		return; /* newlines only: nothing to show */
	put_str(b, "\n    ");
	put_safe(b, key);
	put_str(b, ":");
	for (;;) {
		const char *nl = memchr(value, '\n', n);
		size_t len = nl ? (size_t)(nl - value) : n;
		put_str(b, "\n      ");
		mpk_text_escape(b, value, len);
		if (!nl)
			return;
		n -= len + 1;
		value = nl + 1;
	}
}

/* Decimal digits of v. Not printf: an aggregator formats every record of
 * every child on one thread, and printf was most of its time (perf). */
static void put_int(struct mpk_buf *b, long long v)
{
	char d[24], *p = d + sizeof d;
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--p = '-';
	mpk_buf_put(b, p, (size_t)(d + sizeof d - p));
}

/* "2024-11-23 11:18:00.123456 ": the date and time are made once a second
 * (per thread: several aggregators may format at once). */
static void put_time(struct mpk_buf *b, uint64_t ts)
{
	static _Thread_local time_t last;
	static _Thread_local char when[32];
	static _Thread_local size_t len;
	time_t sec = (time_t)(ts / 1000000000u);
	if (!len || sec != last) {
		struct tm tm;
		localtime_r(&sec, &tm);
		len = strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
		last = sec;
	}
	mpk_buf_put(b, when, len);
	char us[8] = ".000000 ";
	for (unsigned v = (unsigned)(ts % 1000000000u / 1000u), i = 6; i > 0; v /= 10, i--)
		us[i] = (char)('0' + v % 10);
	mpk_buf_put(b, us, sizeof us);
}

void mplog__format_text(struct mpk_buf *b, const mplog_record *r, bool color)
{
	put_time(b, r->ts);
	if (color)
		put_str(b, level_color[r->level]);
	put_str(b, level_tag[r->level]);
	if (color)
		put_str(b, RESET);
	put_str(b, " [");
	if (*r->host) { /* collected on another host (an MPI rank's) */
		mpk_text_escape(b, r->host, mpk_text_prefix(r->host, strlen(r->host), 40));
		mpk_buf_put_u8(b, ' ');
	}
	if (r->rank >= 0) {
		mpk_buf_put_u8(b, 'r');
		put_int(b, r->rank);
		mpk_buf_put_u8(b, ' ');
	}
	if (color && r->worker >= 0)
		put_str(b, worker_color[r->worker % 8]);
	if (r->worker >= 0) {
		mpk_buf_put_u8(b, 'w');
		put_int(b, r->worker);
		mpk_buf_put_u8(b, ' ');
	} else if (*r->channel) {
		mpk_text_escape(b, r->channel, mpk_text_prefix(r->channel, strlen(r->channel), 40));
		mpk_buf_put_u8(b, ' ');
	}
	put_str(b, "pid ");
	put_int(b, r->pid);
	if (r->task >= 0) {
		put_str(b, " task ");
		put_int(b, r->task);
	}
	if (r->stream != MPLOG_STREAM_LOG)
		put_str(b, r->stream == MPLOG_STREAM_STDOUT ? " stdout" : " stderr");
	if (color && r->worker >= 0)
		put_str(b, RESET);
	put_str(b, "] ");
	put_message(b, r->msg, r->msg_len);
	for (size_t i = 0; i < r->nkv; i++) {
		if (strchr(r->kv[2 * i + 1], '\n'))
			continue; /* below */
		mpk_buf_put_u8(b, ' ');
		put_safe(b, r->kv[2 * i]);
		mpk_buf_put_u8(b, '=');
		put_safe(b, r->kv[2 * i + 1]);
	}
	if (*r->file || *r->func) {
		put_str(b, " (");
		put_safe(b, r->file);
		if (r->line > 0) {
			mpk_buf_put_u8(b, ':');
			put_int(b, r->line);
		}
		if (*r->func) {
			if (*r->file)
				mpk_buf_put_u8(b, ' ');
			put_safe(b, r->func);
		}
		mpk_buf_put_u8(b, ')');
	}
	for (size_t i = 0; i < r->nkv; i++)
		put_block(b, r->kv[2 * i], r->kv[2 * i + 1]);
	mpk_buf_put_u8(b, '\n');
}
