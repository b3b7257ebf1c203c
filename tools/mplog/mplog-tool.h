/* SPDX-License-Identifier: MIT */
/* mplog-tool.h — internal interfaces of the mplog command-line tool: a
 * record parsed from one JSON line, filters, outputs (text, JSON lines,
 * statistics) and the line reader that feeds them from any fd. Not
 * installed. */
#pragma once

#include <json-c/json.h>
#include <mplog.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ---- record.c: one JSON line, as libmplog's JSON sink writes it ---------- */

enum mt_stream { MT_STREAM_LOG = 0, MT_STREAM_STDOUT = 1, MT_STREAM_STDERR = 2 };

struct mt_kv {
	const char *key, *value;
};

/* Strings point into root (or are static): valid until mt_record_clear(). */
struct mt_record {
	json_object *root;
	uint64_t ts;         /* "timestamp", ns since the epoch; 0 unknown */
	mplog_level level;   /* unknown severities count as INFO */
	const char *body;
	size_t body_len;
	long long pid, worker, task;           /* process.pid, mpkit.*; -1 unknown */
	long long mpg_pid, mpg_worker, mpg_task; /* a failed task's mpg.*; -1 */
	enum mt_stream stream;
	const char *channel, *file, *func; /* "" when absent */
	long long lineno;
	const char *kind;      /* mpg.kind of a failed-task record, else NULL */
	const char *signal;    /* mpg.signal, "" when absent */
	const char *backtrace; /* mpg.backtrace, "" when absent */
	const char *service;   /* mpg.service (a supervised service's), "" when absent */
	const char *res_service, *res_host; /* the resource's names, "" when absent */
	long long res_pid;     /* the resource's process.pid, -1 */
	long long res_rank;    /* the resource's mpkit.mpi.rank (an MPI job's), -1 */
	char failed_channel[32]; /* "worker-N" of a failed task's record */
	struct mt_kv *kv;      /* every other attribute, in order */
	size_t nkv;
};

/* Parse one line (without its '\n'). Returns 0, -EINVAL (not a JSON
 * object; *why says why) or -ENOMEM. */
int mt_record_parse(json_tokener *tok, const char *line, size_t len, struct mt_record *r,
		    const char **why);
void mt_record_clear(struct mt_record *r);

/* The worker, pid and task a record is about: its sender's, or for a
 * failed-task record (sent by the parent) the failed worker's. */
long long mt_record_worker(const struct mt_record *r);
long long mt_record_pid(const struct mt_record *r);
long long mt_record_task(const struct mt_record *r);
/* Its channel: for a supervisor's record about a service, the service's
 * name; for a failed task's record, the failed worker's ("worker-N"). */
const char *mt_record_channel(const struct mt_record *r);

/* ---- timeparse.c ------------------------------------------------------- */

/* "2026-11-23T10:00:00[.frac][Z|+01:00]", "2026-11-23 10:00", a date,
 * "@EPOCH" seconds, or a duration before now_ns ("90s", "10m", "2h", "1d",
 * "1w"). Local time when no zone is given. Returns 0 or -EINVAL. */
int mt_time_parse(const char *s, uint64_t now_ns, uint64_t *ret);
/* An RFC 3339 time with its zone ("2026-11-29T17:31:18.550000001Z"), as
 * the JSON sink's "time". 0 or -EINVAL. */
int mt_time_parse_rfc3339(const char *s, uint64_t *ret);

/* ---- filter.c ---------------------------------------------------------- */

struct mt_idset {
	long long *v;
	size_t n;
};

struct mt_names {
	char **v;
	size_t n;
};

struct mt_filter {
	struct mt_idset workers, pids, tasks; /* empty: any */
	struct mt_names channels;             /* empty: any */
	struct mt_names hosts;                /* the resource's host.name; empty: any */
	struct mt_idset ranks;                /* the resource's mpkit.mpi.rank; empty: any */
	mplog_level min_level;
	bool has_grep, has_since, has_until;
	regex_t grep;
	uint64_t since, until; /* inclusive, ns */
	unsigned streams;      /* bits 1 << mt_stream; 0: any */
};

/* Add the comma-separated non-negative integers of arg. 0 or -EINVAL. */
int mt_idset_add(struct mt_idset *s, const char *arg);
/* Add the comma-separated non-empty names of arg. 0, -EINVAL or -ENOMEM. */
int mt_names_add(struct mt_names *s, const char *arg);
/* Add "stdout", "stderr" or "log" (comma list). 0 or -EINVAL. */
int mt_streams_add(unsigned *streams, const char *arg);
/* Compile an extended regex; on failure, err gets regerror()'s text. */
int mt_filter_set_grep(struct mt_filter *f, const char *re, bool icase, char *err, size_t errlen);
bool mt_filter_match(const struct mt_filter *f, const struct mt_record *r);
void mt_filter_free(struct mt_filter *f);

/* ---- stats.c ----------------------------------------------------------- */

enum { MT_KIND_RAISED, MT_KIND_EXITED, MT_KIND_SIGNALED, MT_KIND_KILLED, MT_KIND_TIMEOUT,
       MT_KIND_PROTOCOL, MT_KIND_OTHER, MT_NKINDS };

struct mt_count {
	char *name; /* worker id in decimal, or a signal name */
	long long id;
	uint64_t n;
};

struct mt_stats {
	uint64_t records, errors, no_worker;
	uint64_t levels[MPLOG_FATAL + 1];
	uint64_t kinds[MT_NKINDS], failed;
	struct mt_count *workers, *signals;
	size_t nworkers, nsignals;
};

int mt_stats_add(struct mt_stats *s, const struct mt_record *r);
void mt_stats_print(const struct mt_stats *s, uint64_t invalid, bool json, FILE *out);
void mt_stats_free(struct mt_stats *s);

/* ---- output.c: what happens to each line ------------------------------ */

/* -o: short (mplog's own text form), short-iso (times in ISO 8601 with
 * their zone), cat (the message alone), json (lines as read),
 * json-pretty (indented). */
enum mt_mode { MT_MODE_TEXT, MT_MODE_JSON, MT_MODE_STATS, MT_MODE_ISO, MT_MODE_CAT,
	       MT_MODE_PRETTY };

struct mt_ctx {
	struct mt_filter filter;
	enum mt_mode mode;
	bool color, utc;
	bool reverse; /* -r: the ring keeps every record, printed newest first */
	FILE *out;
	json_tokener *tok;
	struct mt_stats stats;
	uint64_t invalid; /* lines skipped */
	/* tail -n: keep the last ring_cap matching lines instead of printing */
	char **ring;
	size_t *ring_len;
	size_t ring_cap, ring_alloc, ring_n, ring_next;
};

int mt_ctx_init(struct mt_ctx *c, FILE *out);
void mt_ctx_free(struct mt_ctx *c);
/* Handle one line: parse, filter, print/count or keep for tail. A line
 * that is not a record is reported on stderr with name:lineno, counted,
 * and skipped. Returns 0 or -ENOMEM. */
int mt_ctx_line(struct mt_ctx *c, const char *name, uint64_t lineno, const char *line,
		size_t len);
/* tail -n: start keeping the last n matching lines / print them. */
int mt_ctx_ring_start(struct mt_ctx *c, size_t n);
int mt_ctx_ring_flush(struct mt_ctx *c);

/* ---- format.c: the human form ---------------------------------------- */

void mt_format_text(FILE *out, const struct mt_record *r, bool color, bool utc);
/* The same with the time in ISO 8601 and its zone ("-o short-iso"). */
void mt_format_text_iso(FILE *out, const struct mt_record *r, bool color, bool utc);
/* The message and a backtrace alone ("-o cat"). */
void mt_format_cat(FILE *out, const struct mt_record *r);

/* ---- reader.c: an fd as a stream of lines ---------------------------- */

struct mt_reader {
	char *name; /* for warnings: a path, "<stdin>", a socket's peer */
	char *buf;
	size_t len, cap, scanned;
	uint64_t lineno; /* of the last complete line handed out */
};

int mt_reader_init(struct mt_reader *rd, const char *name);
void mt_reader_free(struct mt_reader *rd);
/* One read(2) from fd; hands every complete line to c. A partial last line
 * is held until its '\n' arrives. Returns the bytes read, 0 at EOF, or a
 * negative errno (-EAGAIN for a non-blocking fd with nothing to read). */
ssize_t mt_reader_fill(struct mt_reader *rd, int fd, struct mt_ctx *c);
/* True when a partial line is held. */
bool mt_reader_pending(const struct mt_reader *rd);
/* At the end of a stream: hand the partial last line, if any, to c. */
int mt_reader_finish(struct mt_reader *rd, struct mt_ctx *c);
/* Forget everything held (the file was truncated or replaced). */
void mt_reader_reset(struct mt_reader *rd);

/* Read fd to EOF as JSON lines into c, flushing the output after each
 * read (so records from a socket or pipe show as they come). The entry
 * point for any already-connected fd. Returns 0 or a negative errno. */
int mplog_tool_read_fd(struct mt_ctx *c, int fd, const char *name);
/* The same, with bytes already read from fd (pre) handed over first. */
int mplog_tool_read_stream(struct mt_ctx *c, int fd, const char *name, const void *pre,
			   size_t prelen);
/* Append bytes to the reader and hand out its complete lines. */
int mt_reader_feed(struct mt_reader *rd, const void *data, size_t len, struct mt_ctx *c);

/* ---- follow.c --------------------------------------------------------- */

/* tail [-f]: print the last n matching records of path ("-": stdin), then
 * with follow keep printing new ones across rotation and truncation until
 * SIGINT or SIGTERM. Returns 0 or a negative errno (reported on stderr). */
int mt_tail(struct mt_ctx *c, char *const *paths, size_t npaths, size_t n, bool follow);
