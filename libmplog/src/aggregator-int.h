/* SPDX-License-Identifier: MIT */
/* Parent-side objects shared by the aggregator (aggregator.c), the channel
 * parsers (channel.c), the sinks (sink.c, format-*.c) and the record
 * accessors (record-api.c). Internal to libmplog, never installed. */
#pragma once

#include "mplog.h"
#include "record-int.h"
#include "wire-int.h"
#include "fdreg-int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

/* A received record, materialized for the sinks: every string is
 * NUL-terminated (they live in the aggregator's scratch buffer). */
struct mplog_record {
	uint64_t ts, observed;
	mplog_level level;
	mplog_stream stream;
	int pid;
	int worker;
	int64_t task;
	int line;
	const char *channel, *file, *func, *msg;
	size_t msg_len;
	/* Where it was collected: "" (here), or the host of the process
	 * whose aggregator took it first (mplog_aggregator_inject()); that
	 * process's pid (0: here) and MPI rank (-1: none). */
	const char *host;
	int host_pid;
	int rank;
	size_t nkv;
	const char *const *kv; /* 2 * nkv: key, value, key, value... */
};

/* ---- sinks ------------------------------------------------------------ */
enum sink_kind { SINK_FD, SINK_FILE, SINK_CALLBACK, SINK_SYSLOG, SINK_JOURNAL };

struct mplog__syslog; /* sink-syslog.c */
struct mplog__journal; /* sink-journal.c */

/* The status line of an aggregator (mplog_aggregator_set_status()): kept
 * at the bottom of a terminal; fd sinks writing to that terminal erase it
 * before their records and redraw it after (lock held). */
struct mplog__status {
	int fd;        /* -1: none */
	bool tty;      /* fd is a terminal (checked when fd was set) */
	char *line;    /* NUL-terminated, without newline; NULL: none */
	size_t len;
	bool visible;  /* drawn on the terminal now */
};

/* A record's bytes in a sink's queue, [start, end) of s->out. */
struct mplog__span {
	size_t start, end;
};

/* What a sink has to tell (sink-report.c): that it failed (to the other
 * sinks), that it works again and what it lost (to every sink), that its
 * queue was dropped at the end and what it lost (to the others). */
enum sink_report { REPORT_NONE, REPORT_FAILED, REPORT_RECOVERED, REPORT_GAVE_UP };

/* How long stop/free/remove_sink wait for a blocked sink to take its
 * queue before they drop it. */
#define MPLOG_SINK_STALL_MS 1000

struct mplog_sink {
	enum sink_kind kind;
	mplog_format format;
	int fd;  /* SINK_FD: the caller's number (status line); SINK_SYSLOG, _JOURNAL: socket */
	int wfd; /* SINK_FD, SINK_FILE: our own descriptor, written to */
	char *path; /* SINK_FILE */
	char name[32]; /* SINK_FD: "fd N" (reports) */
	bool color;
	mplog_level min_level;
	mplog_sink_fn fn;
	void *userdata;
	struct mpk_buf out; /* the queue: formatted, written up to head */
	size_t head;
	struct mplog__span *recs; /* the records in out not wholly written */
	size_t nrecs, recs_head, recs_cap;
	bool fifo;     /* wfd is a pipe: SIGPIPE is possible (sink-fd.c) */
	bool sock;     /* wfd is a socket: send(MSG_DONTWAIT | MSG_NOSIGNAL) */
	bool pollable; /* wfd can be watched for EPOLLOUT */
	bool watched;  /* it is, in epfd */
	bool need_nl;  /* SINK_FILE: the file ends in a partial line */
	bool round;    /* records put since the last flush (status line erased) */
	int err;       /* SINK_SYSLOG: first error; else the last write's (0: fine) */
	int err_seen;  /* first error since the last mplog_aggregator_flush() */
	int lost_why;  /* what made the records counted in lost go */
	uint64_t lost; /* records dropped since the last report */
	enum sink_report report; /* to emit */
	uint64_t report_lost;    /* REPORT_RECOVERED: what it says */
	int report_why;
	bool told;     /* its failure was reported, its recovery not yet */
	_Atomic uint64_t dropped; /* every record dropped, mplog_sink_dropped() */
	int epfd;      /* its aggregator's epoll fd, once added */
	struct mplog__syslog *sys; /* SINK_SYSLOG: address, identity, counters */
	struct mplog__journal *jnl; /* SINK_JOURNAL: address, identity */
	struct mplog__status *status; /* its aggregator's, once added */
};

/* A sink of that kind with nothing open (fds -1, every level); -EINVAL for
 * an unknown format, -ENOMEM. */
int mplog__sink_alloc(enum sink_kind kind, mplog_format format, mplog_sink **ret);
/* Format r into s->out (or call the callback); a record that finds the
 * queue full is dropped and counted. */
void mplog__sink_put(mplog_sink *s, const mplog_record *r);
/* Write what is queued without blocking; the rest waits for the next
 * flush. */
void mplog__sink_flush(mplog_sink *s);
/* Queue bytes that are not a record (status line drawing), after what is
 * queued. */
void mplog__sink_put_raw(mplog_sink *s, const void *data, size_t len);
/* Whether s has queued bytes it is waiting to write (not failed). */
bool mplog__sink_blocked(const mplog_sink *s);
/* Drop what is queued, counting the records in it as lost. */
void mplog__sink_discard(mplog_sink *s);
/* Write all of data to fd (poll through EAGAIN); 0 or -errno. */
int mplog__write_all(int fd, const void *data, size_t len);
/* Reopen a file sink; 0 or -errno (other kinds: 0). */
int mplog__sink_reopen(mplog_sink *s);
void mplog__sink_forget_fd(mplog_sink *s);

/* sink-fd.c: our own descriptor for fd (non-blocking when fd is a pipe
 * or a terminal, FD_CLOEXEC, >= 3); its kind in s. -errno on failure. */
int mplog__sink_fd_open(mplog_sink *s, int fd);
/* Write as much of data as goes without blocking and without SIGPIPE;
 * returns the count written and in *err 0 (all of it), -EAGAIN (wfd is
 * full for now) or the -errno that stopped it. */
size_t mplog__sink_fd_write(mplog_sink *s, const void *data, size_t len, int *err);

/* Queue r in s whatever the queue's length (a notice of the sink's own). */
void mplog__sink_queue_record(mplog_sink *s, const mplog_record *r);

/* sink-report.c: emit what sinks have to report (lock held): a failure
 * to the other sinks, a recovery and the records lost to the others. */
void mplog__sink_reports(mplog_aggregator *a);
/* s wrote its whole queue after a failure or losses: queue the notice of
 * what it lost into s now, at the place of the gap; the others are told at
 * the next mplog__sink_reports(). */
void mplog__sink_recovered(mplog_sink *s);

void mplog__format_text(struct mpk_buf *b, const mplog_record *r, bool color);
void mplog__format_json(struct mpk_buf *b, const mplog_record *r);

/* Syslog (format-syslog.c). Severity of a level: 7 trace/debug, 6 info,
 * 5 notice, 4 warn, 3 error, 2 fatal. */
int mplog__syslog_severity(mplog_level level);
/* Append the RFC 5424 message of r, without framing or newline:
 *   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - [origin ...] MSG [params]
 * or, with sd_id (valid, see below), ... - [SD-ID params] MSG.
 * hostname and app are tokens made by mplog__syslog_token(). */
void mplog__format_syslog(struct mpk_buf *b, const mplog_record *r, int facility,
			  const char *hostname, const char *app, const char *sd_id);
/* Append the RFC 3164 message of r as glibc's syslog(3) sends it on the
 * local socket: <PRI>Mmm dd hh:mm:ss APP[PID]: MSG [params]. */
void mplog__format_rfc3164(struct mpk_buf *b, const mplog_record *r, int facility, const char *app);
/* Whether id is an SD-ID of the name@PEN form (at most 32 characters). */
bool mplog__syslog_sd_id_valid(const char *id);
/* Copy src into dst (cap bytes, cap >= 2) as an RFC 5424 header token:
 * printable US-ASCII, others replaced by '_', at most cap - 1 bytes, "-"
 * (NILVALUE) when empty or NULL. */
void mplog__syslog_token(char *dst, size_t cap, const char *src);
/* Format r and send it through a syslog sink (sink-syslog.c). */
void mplog__syslog_put(mplog_sink *s, const mplog_record *r);
void mplog__syslog_free(mplog_sink *s);

/* The journal's native protocol (format-journal.c): r's fields (MESSAGE,
 * PRIORITY, SYSLOG_IDENTIFIER ident, SYSLOG_FACILITY unless facility < 0,
 * CODE_*, MPKIT_WORKER/TASK/PID/STREAM/CHANNEL, then its key-values). */
void mplog__format_journal(struct mpk_buf *b, const mplog_record *r, int facility,
			   const char *ident);
/* A key's journal field name into dst (65 bytes): upper case, other
 * characters '_', at most 64; "MPKIT_KV_" before a name journald would
 * refuse or that is a field of the journal's or of the sink's own. */
void mplog__journal_field_name(char *dst, const char *key);
/* sink-journal.c */
void mplog__journal_put(mplog_sink *s, const mplog_record *r);
void mplog__journal_free(mplog_sink *s);
void mplog__journal_set_facility(mplog_sink *s, int facility);
void mplog__journal_set_ident(mplog_sink *s, const char *name);

/* The aggregator whose sink callback runs on this thread, if any. */
extern _Thread_local const struct mplog_aggregator *mplog__in_callback;

/* ---- channels ---------------------------------------------------------- */
struct mplog__assembly {
	uint32_t pid, seq, count, next, total;
	struct mpk_buf buf;
};
#define MPLOG_MAX_ASSEMBLIES 16u
#ifndef MPLOG_LINE_MAX /* the fuzz build lowers it, to reach it */
#define MPLOG_LINE_MAX (64u << 10)
#endif

struct mplog__ring_reader; /* ring-int.h */

struct mplog__channel {
	unsigned id;    /* unique; epoll data */
	unsigned group; /* mplog_aggregator_add_child() id, else id */
	int fd;
	mplog_stream stream;
	char *name;
	int worker;
	int pid;           /* last sender seen / set_pid */
	int64_t task;      /* captured lines: the task of the last mark, -1 */
	size_t clean;      /* captured: bytes at the start of in with no mark */
	struct mpk_buf in; /* bytes read, not yet parsed */
	uint64_t garbage;  /* bytes skipped since the last good frame */
	struct mplog__assembly *asm_;
	size_t nasm;
	struct mplog__ring_reader *ring; /* a log channel's ring, or NULL */
};

/* ---- the aggregator ---------------------------------------------------- */
struct mplog_aggregator {
	pthread_mutex_t lock;
	int epfd, evfd;
	pid_t owner;
	struct mplog__channel **ch;
	size_t nch, capch;
	unsigned next_id;
	mplog_sink **sinks;
	size_t nsinks;
	pthread_t thread;
	bool running;
	atomic_bool stop;
	atomic_bool reopen_req;
	_Atomic uint64_t protocol_errors;
	uint64_t delivered;
	struct mpk_buf scratch;  /* strings of the record being delivered */
	const char **kvp;        /* its key/value pointers */
	size_t kvcap;
	struct mplog__status status;
	const mplog_sink *quiet; /* mplog__emit() skips it (reports about it) */
	int rank;                /* mplog_aggregator_set_rank(): its records', -1 */
};

/* Everything a record consists of, before materialization. */
struct mplog__parts {
	uint64_t ts;
	mplog_level level;
	mplog_stream stream;
	int pid, worker;
	int64_t task;
	int line;
	struct mplog__str file, func, msg;
	const struct mplog__rec *kv_from; /* key-values of a decoded record */
	const struct mplog__str *kv;      /* or these (2 * nkv) */
	size_t nkv;
	/* A record injected from another aggregator (mplog_aggregator_inject()):
	 * its observed time, channel, host, collector's pid and rank; keys
	 * kept as they are (that aggregator renamed a child's already). */
	bool remote;
	uint64_t observed;
	struct mplog__str channel, host;
	int host_pid, rank;
};

/* Deliver one record to every sink (lock held). ch may be NULL. */
void mplog__emit(mplog_aggregator *a, const struct mplog__channel *ch,
		 const struct mplog__parts *p);
/* The parts of a decoded record, its worker @worker. */
struct mplog__parts mplog__rec_parts(const struct mplog__rec *rec, int worker);
/* Deliver a decoded record received on ch (or from the parent: NULL). */
void mplog__emit_rec(mplog_aggregator *a, const struct mplog__channel *ch,
		     const struct mplog__rec *rec);
/* Report a protocol error of ch: what happened and how many bytes. */
void mplog__protocol_error(mplog_aggregator *a, const struct mplog__channel *ch,
			   const char *what, uint64_t bytes);

/* Parse what ch->in holds (lock held). eof: the writer side is gone,
 * nothing more will come. */
void mplog__channel_parse(mplog_aggregator *a, struct mplog__channel *ch, bool eof);
/* Take the entries of ch's ring (lock held): up to about budget bytes,
 * or, at eof (every writer gone), all of them, reporting the slots never
 * committed. Returns the bytes taken. */
size_t mplog__channel_ring(mplog_aggregator *a, struct mplog__channel *ch, size_t budget,
			  bool eof);
/* Report garbage seen so far on ch, if any. */
void mplog__channel_report_garbage(mplog_aggregator *a, struct mplog__channel *ch);
void mplog__channel_free(struct mplog__channel *ch);
