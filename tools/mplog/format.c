/* SPDX-License-Identifier: MIT */
/* The human form of a record, close to libmplog's text sink:
 *   2026-11-23 10:18:00.123456 INFO  [w3 pid 1234 task 17 stdout] message k=v (file.c:42 func)
 *       #0 0x... backtrace frame
 * coloured per level and per worker when asked. */
#include "mplog-tool.h"
#include "text-int.h"

#include <string.h>
#include <time.h>

static const char *const level_tag[] = {"TRACE", "DEBUG", "INFO ", "NOTE ",
					"WARN ", "ERROR", "FATAL"};
static const char *const level_color[] = {"\033[90m", "\033[36m", "\033[32m", "\033[1m",
					  "\033[33m", "\033[31m", "\033[1;31m"};
static const char *const worker_color[] = {"\033[34m", "\033[35m", "\033[36m", "\033[32m",
					   "\033[33m", "\033[94m", "\033[95m", "\033[96m"};
#define RESET "\033[0m"
#define INDENT "    "

/* What a process wrote, escaped as the text sink does (text-int.h): it
 * must not drive the reader's terminal, nor start a line of its own. */
static void put_safe(FILE *out, const char *s, size_t n)
{
	struct mpk_buf b = {0};
	mpk_text_escape(&b, s, n);
	if (b.oom) /* nothing is printed raw */
		fputs("[out of memory]", out);
	else if (b.len)
		fwrite(b.data, 1, b.len, out);
	mpk_buf_free(&b);
}

static void put_str(FILE *out, const char *s)
{
	put_safe(out, s, strlen(s));
}

/* Text with each embedded newline continued on an indented line. */
static void put_indented(FILE *out, const char *s, size_t n)
{
	while (n) {
		const char *nl = memchr(s, '\n', n);
		size_t k = nl ? (size_t)(nl - s) : n;
		put_safe(out, s, k);
		if (!nl)
			return;
		n -= k + 1;
		s = nl + 1;
		if (n)
			fputs("\n" INDENT, out);
	}
}

/* k=v, the value quoted when it would not read back as one word. */
static void put_kv(FILE *out, const struct mt_kv *kv)
{
	const char *v = kv->value;
	fputc(' ', out);
	put_str(out, kv->key);
	fputc('=', out);
	if (*v && !v[strcspn(v, " \t\n\"=")]) {
		put_str(out, v);
		return;
	}
	fputc('"', out);
	for (const char *run = v; *v; run = v) {
		v += strcspn(v, "\"\\");
		put_safe(out, run, (size_t)(v - run));
		if (*v) {
			fputc('\\', out);
			fputc(*v++, out);
		}
	}
	fputc('"', out);
}

/* Shown in the brackets or below the line already. */
static bool hidden_kv(const struct mt_record *r, const char *key)
{
	return (*r->backtrace &&
		(!strcmp(key, "mpg.backtrace") || !strcmp(key, "exception.stacktrace"))) ||
	       (r->kind && (!strcmp(key, "exception.type") || !strcmp(key, "exception.message"))) ||
	       (*r->service && !strcmp(key, "mpg.service")) ||
	       (r->kind && (!strcmp(key, "mpg.task") || !strcmp(key, "mpg.worker") ||
			    !strcmp(key, "mpg.pid")));
}

/* The time: "2026-11-23 10:18:00.123456", or with iso
 * "2026-11-23T10:18:00.123456+01:00" (Z in UTC). */
static void put_time(FILE *out, uint64_t ts, bool utc, bool iso)
{
	time_t sec = (time_t)(ts / 1000000000u);
	struct tm tm;
	char when[32], zone[8] = "Z";
	if (utc)
		gmtime_r(&sec, &tm);
	else
		localtime_r(&sec, &tm);
	strftime(when, sizeof when, iso ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(out, "%s.%06u", when, (unsigned)(ts % 1000000000u / 1000u));
	if (!iso)
		return;
	if (!utc) {
		long off = tm.tm_gmtoff / 60;
		snprintf(zone, sizeof zone, "%c%02ld:%02ld", off < 0 ? '-' : '+',
			 (off < 0 ? -off : off) / 60 % 100, (off < 0 ? -off : off) % 60);
	}
	fputs(zone, out);
}

static void format_text(FILE *out, const struct mt_record *r, bool color, bool utc, bool iso)
{
	put_time(out, r->ts, utc, iso);
	fputc(' ', out);
	fprintf(out, "%s%s%s ", color ? level_color[r->level] : "", level_tag[r->level],
		color ? RESET : "");
	long long worker = mt_record_worker(r), pid = mt_record_pid(r), task = mt_record_task(r);
	const char *channel = mt_record_channel(r);
	if (worker < 0 && !*channel && pid < 0 && task < 0 && r->stream == MT_STREAM_LOG &&
	    r->res_rank < 0)
		goto message; /* from nobody in particular: no brackets */
	fputc('[', out);
	const char *sep = "";
	if (r->res_rank >= 0) { /* an MPI job's: where it was collected, as the text sink */
		if (*r->res_host) {
			put_safe(out, r->res_host, mpk_text_prefix(r->res_host, strlen(r->res_host), 40));
			fputc(' ', out);
		}
		fprintf(out, "r%lld", r->res_rank);
		sep = " ";
	}
	if (color && worker >= 0) {
		fprintf(out, "%s%s", sep, worker_color[worker % 8]);
		sep = "";
	}
	if (worker >= 0) {
		fprintf(out, "%sw%lld", sep, worker);
		sep = " ";
	} else if (*channel) {
		fputs(sep, out);
		put_safe(out, channel, mpk_text_prefix(channel, strlen(channel), 40));
		sep = " ";
	}
	if (pid >= 0) {
		fprintf(out, "%spid %lld", sep, pid);
		sep = " ";
	}
	if (task >= 0) {
		fprintf(out, "%stask %lld", sep, task);
		sep = " ";
	}
	if (r->stream != MT_STREAM_LOG)
		fprintf(out, "%s%s", sep, r->stream == MT_STREAM_STDOUT ? "stdout" : "stderr");
	if (color && worker >= 0)
		fputs(RESET, out);
	fputs("] ", out);
message:
	put_indented(out, r->body, r->body_len);
	for (size_t i = 0; i < r->nkv; i++)
		if (!hidden_kv(r, r->kv[i].key) && (*r->kv[i].value || !r->kind))
			put_kv(out, &r->kv[i]);
	if (*r->file || *r->func) {
		fputs(" (", out);
		put_str(out, r->file);
		if (r->lineno > 0)
			fprintf(out, ":%lld", r->lineno);
		if (*r->func) {
			if (*r->file)
				fputc(' ', out);
			put_str(out, r->func);
		}
		fputc(')', out);
	}
	if (*r->backtrace) {
		fputs("\n" INDENT, out);
		size_t n = strlen(r->backtrace);
		while (n && r->backtrace[n - 1] == '\n')
			n--;
		put_indented(out, r->backtrace, n);
	}
	fputc('\n', out);
}

void mt_format_text(FILE *out, const struct mt_record *r, bool color, bool utc)
{
	format_text(out, r, color, utc, false);
}

void mt_format_text_iso(FILE *out, const struct mt_record *r, bool color, bool utc)
{
	format_text(out, r, color, utc, true);
}

void mt_format_cat(FILE *out, const struct mt_record *r)
{
	put_indented(out, r->body, r->body_len);
	if (*r->backtrace) {
		fputs("\n" INDENT, out);
		size_t n = strlen(r->backtrace);
		while (n && r->backtrace[n - 1] == '\n')
			n--;
		put_indented(out, r->backtrace, n);
	}
	fputc('\n', out);
}
