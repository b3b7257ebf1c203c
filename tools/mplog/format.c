/* The human form of a record, close to libmplog's text sink:
 *   2026-11-23 10:18:00.123456 INFO  [w3 pid 1234 task 17 stdout] message k=v (file.c:42 func)
 *       #0 0x... backtrace frame
 * coloured per level and per worker when asked. */
#include "mplog-tool.h"

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

/* Other control characters (a child's stray escape sequences, NUL bytes)
 * shown as \xNN: they must not drive the reader's terminal. */
static void put_safe(FILE *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			fprintf(out, "\\x%02x", ch);
		else
			fputc(ch, out);
	}
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
	fprintf(out, " %s=", kv->key);
	if (*v && !v[strcspn(v, " \t\n\"=")]) {
		put_safe(out, v, strlen(v));
		return;
	}
	fputc('"', out);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', out);
		if (*v == '\n')
			fputs("\\n", out);
		else
			put_safe(out, v, 1);
	}
	fputc('"', out);
}

/* Shown in the brackets or below the line already. */
static bool hidden_kv(const struct mt_record *r, const char *key)
{
	return !strcmp(key, "mpg.backtrace") || !strcmp(key, "mpg.service") ||
	       (r->kind && (!strcmp(key, "mpg.task") || !strcmp(key, "mpg.worker") ||
			    !strcmp(key, "mpg.pid")));
}

void mt_format_text(FILE *out, const struct mt_record *r, bool color, bool utc)
{
	time_t sec = (time_t)(r->ts / 1000000000u);
	struct tm tm;
	char when[32];
	if (utc)
		gmtime_r(&sec, &tm);
	else
		localtime_r(&sec, &tm);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(out, "%s.%06u ", when, (unsigned)(r->ts % 1000000000u / 1000u));
	fprintf(out, "%s%s%s ", color ? level_color[r->level] : "", level_tag[r->level],
		color ? RESET : "");
	long long worker = mt_record_worker(r), pid = mt_record_pid(r), task = mt_record_task(r);
	const char *channel = mt_record_channel(r);
	if (worker < 0 && !*channel && pid < 0 && task < 0 && r->stream == MT_STREAM_LOG)
		goto message; /* from nobody in particular: no brackets */
	fputc('[', out);
	if (color && worker >= 0)
		fputs(worker_color[worker % 8], out);
	const char *sep = "";
	if (worker >= 0) {
		fprintf(out, "w%lld", worker);
		sep = " ";
	} else if (*channel) {
		fprintf(out, "%.40s", channel);
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
		fprintf(out, " (%s", r->file);
		if (r->lineno > 0)
			fprintf(out, ":%lld", r->lineno);
		if (*r->func)
			fprintf(out, "%s%s", *r->file ? " " : "", r->func);
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
