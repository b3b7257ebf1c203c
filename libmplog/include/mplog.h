/* SPDX-License-Identifier: MIT */
/* mplog.h — libmplog, centralized log aggregation for multiprocess programs.
 *
 * Two sides:
 *
 *  - the child side (any process that logs): an mplog_writer bound to the
 *    write end of a pipe (and, set up by mplog_child_setup(), to a ring of
 *    memory shared with the aggregator), a process-global default writer,
 *    and the mplog_info()/mplog_warn()/... macros. Every record carries a realtime
 *    timestamp in ns, its level, the pid, the worker and task ids set with
 *    mplog_set_context(), the source location, the message and optional
 *    key-values.
 *
 *  - the parent side: an mplog_aggregator that owns the read ends of many
 *    children's channels (and optionally their stdout/stderr pipes), reads
 *    them without blocking, validates every frame, and hands the records to
 *    several sinks (text, JSON lines, syslog, callback), each with its own minimum
 *    level.
 *
 * Guarantees of the wire protocol (see DESIGN.md, "Processes and channels"):
 *
 *  - A writer made by mplog_child_setup() for a child of
 *    mplog_aggregator_add_child() puts each record in the child's ring:
 *    memory shared with the aggregator, written without a system call
 *    (the pipe only wakes the aggregator when it sleeps). Otherwise a
 *    record whose encoded frame is at most PIPE_BUF (4096) bytes is sent
 *    with exactly one write(2). Either way, records from several threads
 *    or processes sharing one writer (a forked child inherits it) never
 *    interleave, and a record whose mplog_* call has returned is in the
 *    ring or the pipe: it survives any later death of the process,
 *    SIGKILL included.
 *  - Longer records are SPLIT, not truncated: the encoded record is cut into
 *    fragments of at most PIPE_BUF bytes each, tagged with (pid, record
 *    sequence number, fragment index, fragment count, total length); each
 *    fragment is one write(2). The aggregator reassembles them per channel,
 *    keyed by (pid, sequence), so fragments of concurrent long records from
 *    several threads or processes on one channel are reassembled correctly. A
 *    long record is complete only when its call has returned; a process
 *    killed in the middle of one leaves an incomplete record, which the
 *    aggregator drops and reports with an error record. A message is only
 *    truncated (with the marker " [truncated]") beyond MPLOG_RECORD_MAX
 *    bytes of encoded record.
 *  - The child side takes no lock: it is safe from several threads, in a
 *    child after fork() (even when another thread was logging at the time
 *    of the fork), and it allocates memory only for messages over 1 KiB or
 *    records over PIPE_BUF (and one page per process, at its first record,
 *    to keep its pid). It is not async-signal-safe (it formats with
 *    vsnprintf); do not log from a signal handler.
 *
 * Error convention: functions return 0 (or a documented non-negative value)
 * on success and a negative errno on failure; results go out through a
 * `ret` pointer that is untouched on failure; destructors accept NULL. The
 * library never prints, aborts or exits.
 */
#ifndef MPLOG_H
#define MPLOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MPLOG_EXPORT __attribute__((visibility("default")))
#define MPLOG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MPLOG_EXPORT
#define MPLOG_PRINTF(f, a)
#endif

/** Severity levels, in increasing order. Since 0.1. */
typedef enum mplog_level {
	MPLOG_TRACE = 0,
	MPLOG_DEBUG,
	MPLOG_INFO,
	MPLOG_NOTICE,
	MPLOG_WARN,
	MPLOG_ERROR,
	MPLOG_FATAL,
} mplog_level;

/**
 * mplog_level_name - lower-case name of a level ("info", "warn", ...).
 * Returns NULL for a value that is not a level. Since 0.1.
 */
MPLOG_EXPORT const char *mplog_level_name(mplog_level level);

/**
 * mplog_level_parse - parse a level name, case-insensitively; "warning" is
 * accepted for MPLOG_WARN. On success stores the level in *ret and returns 0;
 * returns -EINVAL for NULL arguments or an unknown name (*ret untouched).
 * Since 0.1.
 */
MPLOG_EXPORT int mplog_level_parse(const char *name, mplog_level *ret);

/** mplog_version - the library's version string, e.g. "0.1.0". Since 0.1. */
MPLOG_EXPORT const char *mplog_version(void);

/** Largest encoded record; longer messages are truncated. Since 0.1. */
#define MPLOG_RECORD_MAX (16u << 20)

/** Where a record came from. Since 0.1. */
typedef enum mplog_stream {
	MPLOG_STREAM_LOG = 0,    /* an mplog_* call */
	MPLOG_STREAM_STDOUT = 1, /* a line the child wrote to its fd 1 */
	MPLOG_STREAM_STDERR = 2, /* a line the child wrote to its fd 2 */
} mplog_stream;

/** One structured key-value of a record; both strings NUL-terminated.
 *
 * Reserved keys: "mpg.*", "mpkit.*" and "mplog.*" (but "mplog.dropped",
 * which a child's writer sends about its own pipe) are the library's own
 * (a pool's failure records: "mpg.kind", "mpg.task", ...), and so are the
 * attributes the JSON format makes of a record's fields ("process.pid",
 * "code.file.path", "code.line.number", "code.function.name",
 * "log.iostream", "exception.type", "exception.message",
 * "exception.stacktrace", and the names of earlier development builds: "code.filepath",
 * "code.lineno", "code.function"). A
 * record that comes from a child (through a channel of an aggregator)
 * keeps such a key renamed "child." KEY ("child.mpg.kind"), so that no
 * child passes for the parent; the parent's own records (through
 * mplog_aggregator_writer()) keep their keys. Since 0.1. */
typedef struct mplog_kv {
	const char *key;
	const char *value;
} mplog_kv;

/* ======================================================================
 * Child side: writers and logging calls
 * ====================================================================== */

/** A writer: sends records to one channel. Opaque. Since 0.1. */
typedef struct mplog_writer mplog_writer;

/** Flags of mplog_writer_new(). Since 0.1. */
enum {
	/* When the pipe is full, drop the record and count it instead of
	 * blocking. Puts fd in O_NONBLOCK mode (which its other users share).
	 * The count is sent as a warning record ("N records dropped", key
	 * "mplog.dropped") as soon as a write succeeds again. Fragments of a
	 * long record whose first fragment went out are never dropped: the
	 * writer then waits (poll) for room, so the stream stays whole. */
	MPLOG_WRITER_DROP = 1u << 0,
};

/**
 * mplog_writer_new - create a writer on the write end of a channel pipe.
 * @fd: write end of a pipe whose read end an aggregator owns (see
 *      mplog_pipe() and mplog_aggregator_add_child()). Not owned: the
 *      writer never closes it.
 * @flags: 0 (block when the pipe is full: nothing is lost) or
 *      MPLOG_WRITER_DROP.
 * Returns 0 and the writer in *ret, -EINVAL (bad fd, unknown flag, NULL
 * ret), -ENOMEM, or the errno of fcntl(). Since 0.1.
 */
MPLOG_EXPORT int mplog_writer_new(int fd, unsigned flags, mplog_writer **ret);

/**
 * mplog_writer_free - free a writer (NULL is accepted). If it is the default
 * writer, the default is unset first. Not to be called while other threads
 * still log through it. Since 0.1.
 */
MPLOG_EXPORT void mplog_writer_free(mplog_writer *w);

/** mplog_writer_freep - mplog_writer_free(*w), for __attribute__((cleanup)). */
MPLOG_EXPORT void mplog_writer_freep(mplog_writer **w);

/**
 * mplog_writer_dropped - number of records this writer has dropped because
 * the pipe was full (MPLOG_WRITER_DROP only) since it was created. Returns
 * 0 for NULL. Since 0.1.
 */
MPLOG_EXPORT uint64_t mplog_writer_dropped(const mplog_writer *w);

/**
 * mplog_set_default_writer - make w the writer used by mplog_log() and the
 * mplog_info()... macros; NULL unsets it. The writer is not owned. Always
 * returns 0. Async-signal-safe (one atomic store). Since 0.1.
 */
MPLOG_EXPORT int mplog_set_default_writer(mplog_writer *w);

/** mplog_default_writer - the current default writer, or NULL. Since 0.1. */
MPLOG_EXPORT mplog_writer *mplog_default_writer(void);

/**
 * mplog_set_context - set the worker id and task id stamped on every record
 * this process sends from now on; -1 means unknown (the initial values).
 * Process-wide; async-signal-safe (atomic stores). Since 0.1.
 */
MPLOG_EXPORT void mplog_set_context(int worker, int64_t task);

/**
 * mplog_mark_output - the lines this process writes to its captured stdout
 * and stderr from now on are the task's set with mplog_set_context():
 * @streams: the captured ones, MPLOG_CAPTURE_STDOUT and/or
 *  MPLOG_CAPTURE_STDERR.
 * Flushes stdio's stream and writes a mark into the fd (1, 2) itself, an
 * APC escape string ("ESC _ mpkit:task=N ESC \") that the aggregator takes
 * out of the captured bytes; the lines after it carry the task (a line cut
 * by it, the task that ends it). Call it only on captured streams: a
 * terminal ignores the string, a file keeps it. A pool's workers that
 * capture call it as each task starts. Returns 0, -EINVAL, or the negative
 * errno of write(2). Since 0.1.
 */
MPLOG_EXPORT int mplog_mark_output(unsigned streams);

/**
 * mplog_get_context - read back what mplog_set_context() set; either
 * pointer may be NULL. Since 0.1.
 */
MPLOG_EXPORT void mplog_get_context(int *worker, int64_t *task);

/**
 * mplog_set_min_level - records below level are not sent by this process
 * at all (mplog_log() returns 0 without writing). Default MPLOG_TRACE.
 * Returns -EINVAL for a value that is not a level. Since 0.1.
 */
MPLOG_EXPORT int mplog_set_min_level(mplog_level level);

/**
 * mplog_writer_logv - format and send one record through w.
 * @w: the writer; NULL means the default writer.
 * @level: severity.
 * @file, @line, @func: source location (file and func may be NULL).
 * @kv, @nkv: key-values (kv may be NULL when nkv is 0); keys and values
 *      must not be NULL.
 * @fmt, @ap: printf-style message.
 * Returns 0 when the record is in the pipe (or filtered out by
 * mplog_set_min_level()), 1 when it was dropped because the pipe was full
 * (MPLOG_WRITER_DROP), -ENOTCONN when w is NULL and there is no default
 * writer, -EINVAL for bad arguments, -ECHILD for a writer from
 * mplog_aggregator_writer() used in another process, -ENOMEM when a long
 * record could not be allocated, or the errno of write(2) (e.g. -EPIPE
 * when the aggregator closed the channel and SIGPIPE is ignored).
 * Since 0.1.
 */
MPLOG_EXPORT int mplog_writer_logv(mplog_writer *w, mplog_level level, const char *file,
				   int line, const char *func, const mplog_kv *kv, size_t nkv,
				   const char *fmt, va_list ap) MPLOG_PRINTF(8, 0);

/** mplog_writer_log - mplog_writer_logv() with variadic arguments. Since 0.1. */
MPLOG_EXPORT int mplog_writer_log(mplog_writer *w, mplog_level level, const char *file,
				  int line, const char *func, const mplog_kv *kv, size_t nkv,
				  const char *fmt, ...) MPLOG_PRINTF(8, 9);

/**
 * mplog_log - send one record through the default writer; what the
 * mplog_info()... macros call. Returns as mplog_writer_logv(). Since 0.1.
 */
MPLOG_EXPORT int mplog_log(mplog_level level, const char *file, int line, const char *func,
			   const char *fmt, ...) MPLOG_PRINTF(5, 6);

/** mplog_log_kv - mplog_log() with key-values. Since 0.1. */
MPLOG_EXPORT int mplog_log_kv(mplog_level level, const char *file, int line, const char *func,
			      const mplog_kv *kv, size_t nkv, const char *fmt, ...)
	MPLOG_PRINTF(7, 8);

/* Logging macros: mplog_info("x=%d", x); mplog_info_kv(kv, n, "msg").
 * The format is part of the variadic arguments, so they are valid C11. */
#define mplog_trace(...) mplog_log(MPLOG_TRACE, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define mplog_debug(...) mplog_log(MPLOG_DEBUG, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define mplog_info(...) mplog_log(MPLOG_INFO, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define mplog_notice(...) mplog_log(MPLOG_NOTICE, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define mplog_warn(...) mplog_log(MPLOG_WARN, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define mplog_error(...) mplog_log(MPLOG_ERROR, __FILE__, __LINE__, __func__, __VA_ARGS__)
/* Logs at MPLOG_FATAL; does not abort or exit. */
#define mplog_fatal(...) mplog_log(MPLOG_FATAL, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define mplog_log_kv_at(level, kv, nkv, ...) \
	mplog_log_kv(level, __FILE__, __LINE__, __func__, kv, nkv, __VA_ARGS__)
#define mplog_info_kv(kv, nkv, ...) mplog_log_kv_at(MPLOG_INFO, kv, nkv, __VA_ARGS__)
#define mplog_warn_kv(kv, nkv, ...) mplog_log_kv_at(MPLOG_WARN, kv, nkv, __VA_ARGS__)
#define mplog_error_kv(kv, nkv, ...) mplog_log_kv_at(MPLOG_ERROR, kv, nkv, __VA_ARGS__)

/**
 * mplog_pipe - create a channel pipe, both ends O_CLOEXEC: the read end for
 * mplog_aggregator_add(), the write end for mplog_writer_new() in a child.
 * Returns 0 and the fds, or the negative errno of pipe2(). Since 0.1.
 */
MPLOG_EXPORT int mplog_pipe(int *ret_read_fd, int *ret_write_fd);

/** Write ends handed to one child by mplog_aggregator_add_child(). */
typedef struct mplog_child_fds {
	int log_fd;    /* records: mplog_writer_new(log_fd, ...) */
	int stdout_fd; /* to become the child's fd 1, or -1 */
	int stderr_fd; /* to become the child's fd 2, or -1 */
	unsigned id;   /* channel group id for mplog_aggregator_remove() */
	int ring_fd;   /* the records' ring (a memfd) for mplog_child_setup(), or -1 */
} mplog_child_fds;

/**
 * mplog_child_setup - in a child just forked, connect it to its channels:
 * dup2() stdout_fd/stderr_fd (when >= 0) onto fds 1 and 2, make stdout
 * line-buffered when it is captured, map the ring in ring_fd (when >= 0),
 * close the original fds except log_fd, create a writer on log_fd with
 * @flags and make it the default writer, and call
 * mplog_set_context(worker, -1). With a ring, the writer puts records in
 * it (a full ring blocks or, with MPLOG_WRITER_DROP, drops, as a full
 * pipe does) and writes to log_fd only to wake the aggregator; processes
 * forked later inherit both. A ring_fd that is not a ring (say 0, in a
 * struct filled by hand for mplog_pipe() and mplog_aggregator_add()) or
 * cannot be mapped is left open and the writer uses log_fd alone. On success the writer is in *ret (may be
 * NULL if the caller does not want it; it then lives until exit).
 * Returns 0 or a negative errno (-EINVAL, -ENOMEM, errno of dup2()).
 * Since 0.1.
 */
MPLOG_EXPORT int mplog_child_setup(const mplog_child_fds *fds, int worker, unsigned flags,
				   mplog_writer **ret);

/**
 * mplog_child_fds_close - in the parent after fork(), close the child's
 * write ends (needed for the aggregator to see EOF when the child dies)
 * and its ring_fd, and set them to -1. NULL is accepted. Since 0.1.
 */
MPLOG_EXPORT void mplog_child_fds_close(mplog_child_fds *fds);

/* ======================================================================
 * Records as the aggregator delivers them (to callback sinks)
 * ====================================================================== */

/** A received record; valid only during the sink callback. Since 0.1. */
typedef struct mplog_record mplog_record;

/** Realtime timestamp of the record (ns since the epoch), 0 for NULL. */
MPLOG_EXPORT uint64_t mplog_record_timestamp(const mplog_record *r);
/** Time the aggregator received it (ns since the epoch). */
MPLOG_EXPORT uint64_t mplog_record_observed_timestamp(const mplog_record *r);
/** Severity. */
MPLOG_EXPORT mplog_level mplog_record_level(const mplog_record *r);
/** Pid of the process that sent it (0 when unknown, e.g. stdout lines of a
 * child whose pid was not given with mplog_aggregator_set_pid()). */
MPLOG_EXPORT int mplog_record_pid(const mplog_record *r);
/** Worker id: the sender's context, else the channel's; -1 when unknown. */
MPLOG_EXPORT int mplog_record_worker(const mplog_record *r);
/** Task id, -1 when unknown. */
MPLOG_EXPORT int64_t mplog_record_task(const mplog_record *r);
/** Where it came from: an mplog call, or a stdout/stderr line. */
MPLOG_EXPORT mplog_stream mplog_record_stream(const mplog_record *r);
/** Name of the channel it arrived on ("" for the parent's own records). */
MPLOG_EXPORT const char *mplog_record_channel(const mplog_record *r);
/** Where the record was collected, when another process's aggregator
 * took it first and it came here through mplog_aggregator_inject() (an
 * MPI agent rank's, say): that process's host name, else "". Since 0.1. */
MPLOG_EXPORT const char *mplog_record_host(const mplog_record *r);
/** The pid of that process (whose log the record was part of), 0 for a
 * record collected here. Since 0.1. */
MPLOG_EXPORT int mplog_record_host_pid(const mplog_record *r);
/** The rank of that process in its job (the injected one), else the one
 * set with mplog_aggregator_set_rank(); -1 when none. Since 0.1. */
MPLOG_EXPORT int mplog_record_rank(const mplog_record *r);
/** Source file ("" when unknown), line (0 when unknown), function (""). */
MPLOG_EXPORT const char *mplog_record_file(const mplog_record *r);
MPLOG_EXPORT int mplog_record_line(const mplog_record *r);
MPLOG_EXPORT const char *mplog_record_function(const mplog_record *r);
/** The message: NUL-terminated; its length (it may contain NUL bytes and
 * invalid UTF-8: it is whatever the child sent) in *len when len is not
 * NULL. */
MPLOG_EXPORT const char *mplog_record_message(const mplog_record *r, size_t *len);
/** Number of key-values. */
MPLOG_EXPORT size_t mplog_record_kv_count(const mplog_record *r);
/** Key-value i: 0 and the NUL-terminated strings, or -EINVAL/-ERANGE. */
MPLOG_EXPORT int mplog_record_kv(const mplog_record *r, size_t i, const char **key,
				 const char **value);
/** Value of the first key-value named key, or NULL. */
MPLOG_EXPORT const char *mplog_record_kv_get(const mplog_record *r, const char *key);

/* ======================================================================
 * Sinks
 * ====================================================================== */

/** A destination for records. Opaque. Since 0.1. */
typedef struct mplog_sink mplog_sink;

/** Output formats of fd and file sinks. Since 0.1. */
typedef enum mplog_format {
	/* Text for humans, a line per record: time, level, [host and rank
	 * (of a record injected from another rank, mplog_aggregator_inject();
	 * the rank of this process's own once set) worker/pid/task],
	 * message, key-values, source location; a message or value of several
	 * lines continues on indented lines below (only a record's line starts
	 * without a space). What came from a child is escaped so that it
	 * cannot drive a terminal: newline and carriage return as \n and \r,
	 * other control characters and bytes that are not valid UTF-8 as
	 * \xNN, C1 controls and the bidi and line separator characters as
	 * \uXXXX. */
	MPLOG_FORMAT_TEXT = 0,
	/* JSON lines, one object per record, the OpenTelemetry log data
	 * model in the names of its JSON encoding (OTLP/JSON), values plain
	 * (schema: docs/mplog-record.schema.json): "time" (RFC 3339, UTC,
	 * ns), "timeUnixNano", "observedTimeUnixNano" (ns since the epoch,
	 * decimal strings: JSON readers lose precision on 64-bit numbers),
	 * "severityText" ("INFO", ...), "severityNumber" (OTel numbers: 1
	 * trace, 5 debug, 9 info, 10 notice, 13 warn, 17 error, 21 fatal),
	 * "body" (the message), "resource": "service.name" (OTEL_SERVICE_NAME,
	 * else the program's name), "host.name", "process.pid" (of the
	 * process writing the log: the pool's; of a record injected from
	 * another rank, mplog_aggregator_inject(), that rank's host and
	 * pid), "mpkit.mpi.rank" (the rank, when there is one);
	 * "attributes": "process.pid" (the sender's), "mpkit.worker",
	 * "mpkit.task" (integers),
	 * "mpkit.channel", "code.file.path", "code.line.number",
	 * "code.function.name", "log.iostream" ("stdout"/"stderr", for
	 * captured lines only), then the record's key-values as strings. A
	 * pool's own record about a task or worker gives its "mpg.task" and
	 * "mpg.worker" as the integers "mpkit.task" and "mpkit.worker"; a
	 * failure ("mpg.kind") also has "exception.type" (the signal, else
	 * the kind), "exception.message" (the body) and
	 * "exception.stacktrace" (was "mpg.backtrace"). A key equal to one of
	 * those names, which only the parent's own records can have (see
	 * mplog_kv), is written twice. Unknown values (worker or task -1, no
	 * source location) are left out. Bytes that are not valid UTF-8
	 * become U+FFFD; control characters are escaped. Earlier development
	 * builds wrote "timestamp"/"observed_timestamp" (integers), "severity_text",
	 * "severity_number", "code.filepath", "code.lineno", "code.function",
	 * no resource; mplog(1) reads both. */
	MPLOG_FORMAT_JSON = 1,
} mplog_format;

/** Bytes an fd or file sink holds unwritten before it drops records.
 * Since 0.1. */
#define MPLOG_SINK_QUEUE_BYTES (1u << 20)

/** Colour choice for text sinks. Since 0.1. */
enum {
	MPLOG_SINK_COLOR_AUTO = 0,       /* colour when the fd is a tty, unless NO_COLOR
	                                  * is set (not empty) or TERM is "dumb" */
	MPLOG_SINK_COLOR_NEVER = 1u << 0,
	MPLOG_SINK_COLOR_ALWAYS = 1u << 1,
};

/**
 * mplog_sink_new_fd - a sink writing to the file fd refers to now (e.g.
 * STDERR_FILENO). fd is not owned: the sink takes a descriptor of its own
 * (>= 3, close-on-exec; for a pipe or a terminal a new open file
 * description through /proc/self/fd, O_NONBLOCK), so what the caller does
 * with fd later (closing it, its number taken by another file) does not
 * matter; the sink keeps the file open until it is freed.
 * @flags: MPLOG_SINK_COLOR_* (text format only; colour per level and per
 *      worker).
 * fd and file sinks never block the thread that logs: records wait in a
 * queue of the sink while fd is full (a pipe nobody reads, a stopped
 * terminal), written as room comes; past MPLOG_SINK_QUEUE_BYTES waiting,
 * records are dropped and counted (mplog_sink_dropped()), and once the
 * queue is written a WARN record says how many ("mplog.lost"). A write
 * that fails (EPIPE: the reader went away, no SIGPIPE is raised; EIO,
 * ENOSPC...) keeps the queue the same way, is reported by an ERROR record
 * on the other sinks (keys "mplog.sink", "mplog.error", "mplog.lost") and
 * returned by mplog_aggregator_flush() and _stop(); the sink tries again
 * at each flush, finishing the record it was cut in, and reports what it
 * lost when it works again.
 * Returns 0 and the sink in *ret, -EINVAL, -EBADF (fd is not open), or
 * -ENOMEM. Since 0.1.
 */
MPLOG_EXPORT int mplog_sink_new_fd(int fd, mplog_format format, unsigned flags,
				   mplog_sink **ret);

/**
 * mplog_sink_new_file - a sink appending to the file at path, opened with
 * O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC, mode 0644 (minus umask); reopened by
 * mplog_aggregator_reopen() (for logrotate). Never coloured: @flags must
 * be 0 (reserved). On a full disk it behaves as a failing fd sink (see
 * mplog_sink_new_fd()): the record the disk cut is finished when space
 * comes back, so every line stays whole; a file found ending in a partial
 * line (a program that gave up on a full disk) gets a newline before the
 * first record.
 * Returns 0 and the sink, -EINVAL, -ENOMEM, or the errno of open(2).
 * Since 0.1.
 */
MPLOG_EXPORT int mplog_sink_new_file(const char *path, mplog_format format, unsigned flags,
				     mplog_sink **ret);

/** Message forms of mplog_sink_new_syslog() (default: by address). Since 0.1. */
enum {
	MPLOG_SYSLOG_RFC3164 = 1u << 0, /* the local form, as glibc's syslog(3) sends */
	MPLOG_SYSLOG_RFC5424 = 1u << 1,
};

/**
 * mplog_sink_new_syslog - a sink sending each record as a syslog message,
 * in the form the receiver parses: on a local socket ("unix:", /dev/log)
 * the RFC 3164 form glibc's syslog(3) sends there, which rsyslogd's
 * imuxsock and journald parse,
 *   <PRI>Mmm dd hh:mm:ss APP-NAME[PID]: MSG [PARAMS]
 * (the time local, no hostname); over the network ("udp:", "tcp:")
 * RFC 5424,
 *   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - [origin software="mpkit"
 *   swVersion="VERSION"] MSG [PARAMS]
 * with TIMESTAMP in UTC with microseconds ("2024-11-23T10:18:00.123456Z")
 * and the registered SD-ID "origin" (RFC 5424 7.2); once an SD-ID of the
 * caller's is set (mplog_sink_set_syslog_sd_id()) the parameters are
 * structured data of that ID instead: "- [NAME@PEN PARAMS] MSG" ("-" when
 * there are none).
 * PRI is facility * 8 + severity (trace and debug 7, info 6, notice 5,
 * warn 4, error 3, fatal 2); HOSTNAME from gethostname() (a record
 * injected from another host's rank, mplog_aggregator_inject(): that
 * host); APP-NAME program_invocation_short_name (see
 * mplog_sink_set_syslog_app_name()); PID the record's ("-" or nothing
 * when unknown); no MSGID. PARAMS are host and rank (of such a record;
 * the rank also from mplog_aggregator_set_rank()), worker, task (when
 * known), stream ("stdout"/"stderr", for captured
 * lines) and the record's key-values as SD-PARAMs: name="value", names
 * reduced to the SD-NAME charset (other characters become '_', at most
 * 32), values with '"', '\' and ']' escaped and invalid UTF-8 replaced by
 * U+FFFD; " [PARAMS]" is left out when there are none. MSG is the message
 * as is, without a BOM. Messages over 64000 bytes are cut.
 * @address: NULL or "unix:PATH" (NULL means "unix:/dev/log"): a datagram
 *      socket, or a stream socket with octet-counting framing if PATH is a
 *      stream socket; "udp:HOST:PORT": one datagram per message;
 *      "tcp:HOST:PORT": RFC 6587 octet-counting framing ("LEN MSG").
 *      HOST is a name or an address, IPv6 in brackets ("[::1]").
 * @flags: 0 (the form by address), or MPLOG_SYSLOG_RFC3164 or
 *      MPLOG_SYSLOG_RFC5424 for that form whatever the address.
 * The socket is O_CLOEXEC and connected at once. Sends time out after
 * 500 ms; a failed send (collector gone, timeout) reconnects once and
 * resends; if that fails too the message is dropped and counted (see
 * mplog_sink_dropped()), and for the next second messages are dropped
 * without trying. The facility is user (1) unless set with
 * mplog_sink_set_syslog_facility().
 * Returns 0 and the sink in *ret, -EINVAL (malformed address, flags, NULL
 * ret), -ENOMEM, -EADDRNOTAVAIL (HOST does not resolve), or the errno of
 * socket()/connect() (e.g. -ENOENT, -ECONNREFUSED, -ETIMEDOUT).
 * Since 0.1.
 */
MPLOG_EXPORT int mplog_sink_new_syslog(const char *address, unsigned flags, mplog_sink **ret);

/**
 * mplog_sink_new_journal - a sink sending each record to systemd-journald
 * in the journal's native protocol (no libsystemd needed): one datagram
 * per record, fields MESSAGE, PRIORITY (as the syslog sink's severity),
 * SYSLOG_IDENTIFIER (program_invocation_short_name, see
 * mplog_sink_set_syslog_app_name()), SYSLOG_FACILITY (only once set with
 * mplog_sink_set_syslog_facility()), CODE_FILE, CODE_LINE, CODE_FUNC (when
 * known), MPKIT_WORKER, MPKIT_TASK, MPKIT_PID (when known), MPKIT_STREAM
 * ("stdout"/"stderr", captured lines), MPKIT_CHANNEL (the channel's name,
 * when it has one), MPKIT_HOST, MPKIT_HOST_PID, MPKIT_RANK (of a record
 * injected from another rank, mplog_aggregator_inject(); the rank also
 * from mplog_aggregator_set_rank()), then one field per key-value: the
 * key in upper case, other characters than A-Z and 0-9 made '_', at most
 * 64 ("mpg.kind" is MPG_KIND, "mpg.backtrace" MPG_BACKTRACE); a key that
 * would start with '_' or a digit, be empty, or be one of the fields above
 * (or another the journal gives a meaning to, such as ERRNO, MESSAGE_ID,
 * UNIT, OBJECT_*) gets "MPKIT_KV_" in front. Values go as they are, newlines included: a
 * backtrace is one field of several lines, a message of several lines one
 * entry. A record too big for a datagram is passed in a sealed memfd, as
 * the protocol specifies.
 * @path: NULL for "/run/systemd/journal/socket", else the journal's
 *      socket (e.g. "/run/systemd/journal.NAMESPACE/socket").
 * @flags: 0 (reserved).
 * The socket is O_CLOEXEC and connected at once (to check that journald
 * listens); each send names the path again, so a restarted journald is
 * found. Sends time out after 500 ms; a record that cannot be sent is
 * dropped and counted (mplog_sink_dropped()), and the next
 * mplog_aggregator_flush() returns the first error; when journald is
 * gone or does not read (a timeout), the records of the next second are
 * dropped and counted without trying.
 * Returns 0 and the sink in *ret, -EINVAL (flags, NULL ret, path too long
 * or empty), -ENOMEM, or the errno of socket()/connect() (-ENOENT: no
 * journald there, -ECONNREFUSED, -EACCES). Since 0.1.
 */
MPLOG_EXPORT int mplog_sink_new_journal(const char *path, unsigned flags, mplog_sink **ret);

/**
 * mplog_sink_new_stderr - the sink for a program's stderr, as pools and
 * supervisors make by default: a journal sink (mplog_sink_new_journal(),
 * default path) when stderr is the journal, that is when the environment
 * variable JOURNAL_STREAM ("DEVICE:INODE", set by systemd for a service
 * whose output goes to the journal) names the file on fd 2; else, or if
 * the journal's socket cannot be reached, a text sink on fd 2
 * (mplog_sink_new_fd(STDERR_FILENO, MPLOG_FORMAT_TEXT, @flags)).
 * @flags: MPLOG_SINK_COLOR_* (for the text sink).
 * Returns 0 and the sink in *ret, or what mplog_sink_new_fd() returns.
 * Since 0.1.
 */
MPLOG_EXPORT int mplog_sink_new_stderr(unsigned flags, mplog_sink **ret);

/**
 * mplog_sink_set_syslog_sd_id - put a syslog sink's PARAMS in RFC 5424
 * structured data under @sd_id, an SD-ID of the form NAME@PEN (RFC 5424
 * 6.3.2: PEN is the IANA private enterprise number of the organisation
 * that defines NAME; at most 32 characters, NAME printable US-ASCII
 * without '=', ']', '"', '@' or space, PEN digits and dots), instead of
 * after the message. RFC 3164 messages keep them after the message.
 * Call it before mplog_aggregator_add_sink(). Returns 0, or -EINVAL (not
 * a syslog sink, NULL or malformed @sd_id). Since 0.1.
 */
MPLOG_EXPORT int mplog_sink_set_syslog_sd_id(mplog_sink *s, const char *sd_id);

/**
 * mplog_sink_set_syslog_facility - facility of a syslog (or journal) sink's
 * messages:
 * 0 to 23 (1 user, the default; 16 to 23 local0 to local7, i.e.
 * LOG_LOCAL0 >> 3); a journal sink sends it as SYSLOG_FACILITY. Call it
 * before mplog_aggregator_add_sink(). Returns 0, or -EINVAL (not a syslog
 * or journal sink, facility out of range). Since 0.1.
 */
MPLOG_EXPORT int mplog_sink_set_syslog_facility(mplog_sink *s, int facility);

/**
 * mplog_sink_set_syslog_app_name - APP-NAME of a syslog sink's messages,
 * SYSLOG_IDENTIFIER of a journal sink's (copied; non-printable or
 * non-ASCII characters become '_', at most 48). Call it before
 * mplog_aggregator_add_sink(). Returns 0, or -EINVAL (not a syslog or
 * journal sink, NULL or empty name). Since 0.1.
 */
MPLOG_EXPORT int mplog_sink_set_syslog_app_name(mplog_sink *s, const char *name);

/**
 * mplog_sink_dropped - number of records a sink lost: messages a syslog
 * or journal sink could not send; records an fd or file sink dropped because its
 * queue was full (blocked or failing) or gave up at the end; 0 for a
 * callback sink and NULL. May be called from any thread while the sink
 * exists (until its aggregator is freed). Since 0.1.
 */
MPLOG_EXPORT uint64_t mplog_sink_dropped(const mplog_sink *s);

/**
 * mplog_record_format - format a record as a sink would write it (ending
 * in '\n'; a JSON record is one line): into
 * @buf, NUL-terminated, when it fits in @size bytes; like snprintf() it
 * returns the length it needs without the NUL, so call again with a
 * bigger buffer when the result is >= @size. @flags: MPLOG_SINK_COLOR_ALWAYS
 * for a coloured text line, else 0. Returns the length, -EINVAL, -ENOMEM.
 * Since 0.1.
 */
MPLOG_EXPORT ssize_t mplog_record_format(const mplog_record *r, mplog_format format,
					 unsigned flags, char *buf, size_t size);

/**
 * mplog_record_encode - encode a received record (in a callback sink) to
 * be delivered by an aggregator of another process with
 * mplog_aggregator_inject(): its times, level, stream, pid, worker,
 * task, channel, source location, message and key-values (as the
 * aggregator delivered them: a child's reserved keys renamed already).
 * In the host's byte order: for a process of the same build (an MPI
 * job's ranks), not for storage. @task_base is added to the task when it
 * is known (>= 0) and to the decimal value of a "mpg.task" key (a pool's
 * own record about a task): for records of a part of a bigger call, 0
 * for none. Like snprintf() it writes into @buf only when the whole fits
 * in @size bytes and returns the length it needs; call again with a
 * bigger buffer when the result is >= @size. Returns the length,
 * -EINVAL, -ENOMEM, or -EMSGSIZE (over 4 GiB). Since 0.1.
 */
MPLOG_EXPORT ssize_t mplog_record_encode(const mplog_record *r, uint64_t task_base, void *buf,
					 size_t size);

/** Callback of a callback sink; runs on the thread that dispatches. */
typedef void (*mplog_sink_fn)(const mplog_record *record, void *userdata);

/**
 * mplog_sink_new_callback - a sink calling fn for each record. The
 * callback must not call the aggregator that owns the sink (it would
 * return -EDEADLK). Returns 0 and the sink, -EINVAL, or -ENOMEM.
 * Since 0.1.
 */
MPLOG_EXPORT int mplog_sink_new_callback(mplog_sink_fn fn, void *userdata, mplog_sink **ret);

/**
 * mplog_sink_set_min_level - the sink ignores records below level (default
 * MPLOG_TRACE). Call it before mplog_aggregator_add_sink(). Returns 0 or
 * -EINVAL. Since 0.1.
 */
MPLOG_EXPORT int mplog_sink_set_min_level(mplog_sink *s, mplog_level level);

/** mplog_sink_free - free a sink not added to an aggregator (NULL is ok). */
MPLOG_EXPORT void mplog_sink_free(mplog_sink *s);

/* ======================================================================
 * Parent side: the aggregator
 * ====================================================================== */

/** The parent-side collector. Opaque. Since 0.1. */
typedef struct mplog_aggregator mplog_aggregator;

/**
 * mplog_aggregator_new - create an aggregator (no channel, no sink).
 * Returns 0 and it in *ret, -EINVAL, -ENOMEM, or the errno of
 * epoll_create1()/eventfd(). Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_new(mplog_aggregator **ret);

/**
 * mplog_aggregator_free - stop its thread if running, drain every channel
 * (everything already written is delivered), flush and free the sinks,
 * close every fd. A sink that cannot take its queue (full and no room
 * for 1 s, or failing) loses it; that is counted and reported on the
 * other sinks (use mplog_aggregator_stop() first to get the error). NULL
 * is accepted. In a child forked from the creating process it frees
 * memory only (no drain, no sink output, no fd closed: every child forked
 * from the creating process loses the aggregator's epoll and eventfd, its
 * channels' read ends and the descriptors its sinks opened at the fork).
 * Since 0.1.
 */
MPLOG_EXPORT void mplog_aggregator_free(mplog_aggregator *a);

/** mplog_aggregator_freep - for __attribute__((cleanup)). */
MPLOG_EXPORT void mplog_aggregator_freep(mplog_aggregator **a);

/**
 * mplog_aggregator_add_sink - hand a sink to the aggregator, which owns it
 * from then on (also on failure: it is freed). Returns 0, -EINVAL,
 * -ECHILD (forked child), -ENOMEM. Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_add_sink(mplog_aggregator *a, mplog_sink *s);

/**
 * mplog_aggregator_remove_sink - take a sink added with
 * mplog_aggregator_add_sink() out of the aggregator, flush it (waiting up
 * to 1 s without progress for a blocked fd to take the queue) and free it.
 * Once it returns the sink gets no more records (its callback, if any,
 * has returned and will not run again). Returns 0, -EINVAL, -ECHILD,
 * -EDEADLK (called from a sink callback of this aggregator), -ENOENT (not
 * one of its sinks). Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_remove_sink(mplog_aggregator *a, mplog_sink *s);

/**
 * mplog_aggregator_add - add a channel: fd is the read end of a record pipe
 * (stream MPLOG_STREAM_LOG) or of a child's stdout/stderr pipe. The
 * aggregator owns fd (closes it, also on failure) and sets O_NONBLOCK.
 * @name: shown in records ("worker-3"); copied; NULL means "".
 * @worker: worker id for records whose sender did not set one (-1: none).
 * Each line of a stdout channel becomes a record at MPLOG_INFO, of a stderr
 * channel at MPLOG_WARN (without its '\n'; a line over 64 KiB is cut into
 * 64 KiB records; a last line without '\n' is delivered at EOF).
 * Records are delivered in the order they are read: in order per channel
 * (and per writing thread), not sorted by timestamp across channels.
 * Returns a channel id (> 0) or -EINVAL, -ECHILD, -ENOMEM, errno of
 * epoll_ctl(). Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_add(mplog_aggregator *a, int fd, mplog_stream stream,
				      const char *name, int worker);

/** Flags of mplog_aggregator_add_child(). */
enum {
	MPLOG_CAPTURE_STDOUT = 1u << 0,
	MPLOG_CAPTURE_STDERR = 1u << 1,
};

/**
 * mplog_aggregator_add_child - create the pipes of one child to be forked:
 * a record pipe and, per flags, its stdout and stderr pipes; and the ring
 * its records go through (256 KiB of shared memory, ring_fd; -1 when no
 * memfd could be made: the pipe then carries them). The aggregator
 * keeps the read ends and its own mapping of the ring; the write ends and
 * ring_fd (O_CLOEXEC) go to *ret, to be used
 * with mplog_child_setup() in the child and closed with
 * mplog_child_fds_close() in the parent after fork(). The ring is read
 * as untrusted input: whatever the child writes into it is reported as
 * a protocol error, like garbage on a pipe. At EOF on the record pipe
 * (every process holding it ended), every record committed to the ring
 * is delivered, and records their writer began but did not finish (it
 * was killed while logging) are reported as a protocol error. Fork each child right
 * after adding it (before adding the next) so no child inherits a
 * sibling's write ends. Returns 0, -EINVAL, -ECHILD, -ENOMEM, -EMFILE...
 * Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_add_child(mplog_aggregator *a, const char *name, int worker,
					    unsigned flags, mplog_child_fds *ret);

/**
 * mplog_aggregator_set_pid - pid to stamp on the stdout/stderr lines of
 * channel (group) id; call it right after fork(). Until then, lines carry
 * the pid of the group's last record, else 0. Returns 0, -EINVAL, -ECHILD,
 * -ENOENT. Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_set_pid(mplog_aggregator *a, unsigned id, int pid);

/**
 * mplog_aggregator_remove - read what is left in channel id (or in every
 * channel of the group from mplog_aggregator_add_child()), deliver it, and
 * close it. Channels that reached EOF are removed automatically; removing
 * them again returns 0. Returns 0, -EINVAL, -ECHILD, -ENOENT (id never
 * given). Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_remove(mplog_aggregator *a, unsigned id);

/**
 * mplog_aggregator_fd - an epoll fd that becomes readable when
 * mplog_aggregator_dispatch() has work; for the caller's event loop.
 * Returns the fd, or -EINVAL. Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_fd(const mplog_aggregator *a);

/**
 * mplog_aggregator_dispatch - wait up to timeout_ms (-1: forever, 0: do
 * not wait) for channel activity, read what is there without blocking,
 * deliver the records and flush the sinks. Returns the number of records
 * delivered (>= 0), -EINVAL, -ECHILD, -EBUSY (a thread from
 * mplog_aggregator_start() is running), or the errno of epoll_wait().
 * Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_dispatch(mplog_aggregator *a, int timeout_ms);

/**
 * mplog_aggregator_flush - read every channel until it has nothing more
 * (EAGAIN) or EOF, deliver everything, report pending garbage, and flush
 * the sinks. Anything a child wrote before this call is delivered (in
 * particular everything written by a child that has died): written, or
 * queued in a sink whose fd is full, never waited for. Safe while the
 * thread runs. Returns 0, -EINVAL, -ECHILD, or the error of an fd or file
 * sink: the one failing now, else the first one met since the last call
 * (e.g. -ENOSPC, -EPIPE). Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_flush(mplog_aggregator *a);

/**
 * mplog_aggregator_start / _stop - run the dispatch loop on a thread of
 * its own; stop drains and flushes before it returns (also when no thread
 * runs, then as mplog_aggregator_flush()), and waits for blocked sinks to
 * take their queues, until one makes no progress for 1 s (what it has not
 * taken stays queued). Returns 0, -EINVAL,
 * -ECHILD, -EALREADY (start: already running), the errno of
 * pthread_create(), or (stop) a sink's error as mplog_aggregator_flush().
 * Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_start(mplog_aggregator *a);
MPLOG_EXPORT int mplog_aggregator_stop(mplog_aggregator *a);

/**
 * mplog_aggregator_reopen - reopen every file sink (after logrotate moved
 * the files). Returns 0 or the first negative errno of open(2) (a sink
 * that fails keeps its old file). Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_reopen(mplog_aggregator *a);

/**
 * mplog_aggregator_request_reopen - async-signal-safe (an atomic store and
 * a write(2) to an eventfd): ask the dispatching side to reopen the file
 * sinks at its next dispatch; call it from a SIGHUP handler. Since 0.1.
 */
MPLOG_EXPORT void mplog_aggregator_request_reopen(mplog_aggregator *a);

/**
 * mplog_aggregator_writer - a writer that delivers this (parent) process's
 * own records straight to the aggregator's sinks, in the same merged
 * stream; make it the default with mplog_set_default_writer(). Free it
 * before the aggregator. In a forked child it returns -ECHILD.
 * Returns 0, -EINVAL, -ENOMEM. Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_writer(mplog_aggregator *a, mplog_writer **ret);

/**
 * mplog_aggregator_inject - deliver to @a's sinks a record that another
 * process's aggregator received and mplog_record_encode() encoded (the
 * @len bytes at @data), stamped with where it was collected: @host (that
 * process's host name; NULL or "" for none; at most 255 bytes are kept),
 * @pid (that process's, 0 when unknown) and @rank (its rank in an MPI
 * job, -1 for none). Sinks show them as they show a record's own fields
 * (see MPLOG_FORMAT_JSON's resource, the text form's prefix, the journal's
 * MPKIT_HOST and MPKIT_RANK, syslog's HOSTNAME). Its key-values are kept
 * as they are (the other aggregator renamed its children's reserved keys
 * already): inject only records of a process you trust as your own, such
 * as the agents of your MPI job. Runs on the calling thread, under the
 * aggregator's lock, like the records of mplog_aggregator_writer().
 * Returns 0, -EINVAL, -ECHILD, -EDEADLK (from a sink callback), or
 * -EBADMSG (not one encoded record: reported as a protocol error, see
 * mplog_aggregator_protocol_errors()). Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_inject(mplog_aggregator *a, const void *data, size_t len,
					 const char *host, int pid, int rank);

/**
 * mplog_aggregator_set_rank - the rank (in an MPI job, say) of this
 * process, stamped on the records @a collects itself (injected ones carry
 * their own): see mplog_record_rank(); -1 (the default) for none.
 * Returns 0, -EINVAL, -ECHILD, -EDEADLK. Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_set_rank(mplog_aggregator *a, int rank);

/** Longest status line kept by mplog_aggregator_set_status(). Since 0.1. */
#define MPLOG_STATUS_MAX 4096

/** Flags of mplog_aggregator_set_status(). Since 0.1. */
enum {
	MPLOG_STATUS_KEEP = 1u << 0, /* write the line for good (with a newline) */
};

/**
 * mplog_aggregator_set_status - show @line as a status line (a progress
 * bar, say) at the bottom of the terminal @fd, below the records: every fd
 * sink writing to @fd erases it ("\r" ESC "[K") before it writes records
 * and draws it again after them, under the aggregator's lock, so records
 * and the status line never break each other, whichever thread writes.
 * When a sink writes to @fd, the line goes through that sink's queue (in
 * order with its records, never blocking).
 * The line is written now (replacing the previous one) and kept; it should
 * fit the terminal's width (a line that wraps cannot be erased whole).
 * @line: one line without newline (cut at the first '\n' and at
 *      MPLOG_STATUS_MAX bytes), or NULL or "" to erase the status line.
 * @flags: MPLOG_STATUS_KEEP: write @line for good, with a newline (e.g. a
 *      final summary replacing a progress bar); no status line is kept.
 *      On a non-terminal @fd (or while TERM is "dumb": it cannot erase
 *      a line), this writes @line and a newline as one
 *      plain line (without escape sequences), in order with the records.
 * One status line per aggregator: a call with another @fd erases the
 * previous one first. mplog_aggregator_free() erases it.
 * Returns 0, -EINVAL, -ECHILD, -EDEADLK (from a sink callback), -ENOTTY
 * (@fd is not a terminal, or TERM is "dumb", and MPLOG_STATUS_KEEP was not given: nothing is
 * written), -ENOMEM, or the errno of write(2). Since 0.1.
 */
MPLOG_EXPORT int mplog_aggregator_set_status(mplog_aggregator *a, int fd, const char *line,
					     unsigned flags);

/**
 * mplog_aggregator_protocol_errors - number of protocol errors (garbage
 * runs, bad frames, incomplete records) seen so far. Since 0.1.
 */
MPLOG_EXPORT uint64_t mplog_aggregator_protocol_errors(const mplog_aggregator *a);

#ifdef __cplusplus
}
#endif

#endif /* MPLOG_H */
