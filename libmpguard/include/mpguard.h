/* SPDX-License-Identifier: MIT */
/* mpguard.h — libmpguard, a fault-tolerant pool of forked worker processes.
 *
 * A pool runs task functions in forked worker processes and reports every
 * failure in a worker — an error raised by the task, exit(), a fatal signal,
 * a kill from outside — to the parent as a structured error, replacing the
 * dead worker and going on (or retrying, or aborting, by policy).
 *
 * Conventions
 *  - Functions returning int return 0 (or a documented non-negative value)
 *    on success and a negative errno on failure; output parameters (*ret)
 *    are untouched on failure.
 *  - Destructors accept NULL; those of handles (options, pool, results,
 *    iterator, future, supervisor) have a *_freep() twin for
 *    __attribute__((cleanup(...))).
 *  - A task's error code (mpg_error_code()) is, by convention, a positive
 *    errno value: `return EINVAL;`, mpg_raise(EINVAL, ...). The codes the
 *    library sets itself follow it (ENODATA, EFAULT, EMFILE, ...). A task's
 *    own code is kept as given: `return r;` of a library call's negative
 *    errno arrives negative (its message names it).
 *  - Structs the caller fills in for the library to complete (mpg_stats,
 *    mpg_worker_info) start with a size the caller sets to sizeof; the
 *    library writes no more than that and says how much it wrote, so
 *    fields can be appended without breaking programs built before.
 *  - Pool functions called from inside a worker return -ECHILD; called from
 *    a callback running on the pool's dispatcher thread, blocking functions
 *    return -EDEADLK.
 *
 * Threads and memory
 *  - Workers are forked by a small single-threaded fork server that the pool
 *    starts when it is created, so replacing a worker never forks the
 *    (possibly multithreaded) parent. A worker therefore sees the program's
 *    memory as it was when the pool was created: task functions and the
 *    pool's userdata must exist then; per-call data travels by value (the
 *    inputs and the call's context bytes). A pointer to memory allocated
 *    after the pool was created reads, in a worker, whatever was at that
 *    address then (zeros, or a crash), with no error: pass bytes, not
 *    pointers (a large input in an mpg_shm_alloc() buffer, passed as the
 *    input itself, is handed over without a copy).
 *  - Each pool has one dispatcher thread in the parent. Callbacks (result,
 *    error, progress) run on it, one at a time, with no pool lock held: they may call
 *    non-blocking pool functions such as mpg_submit(), and must not block
 *    for long.
 */
#ifndef MPGUARD_H
#define MPGUARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mplog.h" /* beside it, also when included as <mpkit/mpguard.h> */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MPG_EXPORT __attribute__((visibility("default")))
#define MPG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MPG_EXPORT
#define MPG_PRINTF(a, b)
#endif

typedef struct mpg_pool mpg_pool;       /* a pool of workers */
typedef struct mpg_options mpg_options; /* pool and per-call options */
typedef struct mpg_task mpg_task;       /* the running task, inside a worker */
typedef struct mpg_error mpg_error;     /* why one task failed */
typedef struct mpg_results mpg_results; /* outcome of a map */
typedef struct mpg_iter mpg_iter;       /* unordered results, as they complete */
typedef struct mpg_future mpg_future;   /* one submitted task */

/** One input: a byte buffer. Since 0.1. */
typedef struct mpg_buf {
	const void *data;
	size_t len;
} mpg_buf;

/**
 * mpg_task_fn - a task, run in a worker.
 * @task: the running task; use it to set the result (mpg_task_set_result()).
 * @in, @len: the input bytes (valid until the task returns).
 * @userdata: the pool's userdata (mpg_options_set_userdata()).
 * Returns 0 on success. Any other value ends the task as MPG_ERR_RAISED with
 * that value as the code. mpg_raise() ends it with a message too.
 */
typedef int (*mpg_task_fn)(mpg_task *task, const void *in, size_t len, void *userdata);

/** Success callback of mpg_submit(): the task's number (mpg_future_task()) and
 *  its result bytes, valid during the call. */
typedef void (*mpg_result_fn)(size_t index, const void *data, size_t len, void *userdata);

/** Error callback: the error is valid during the call (copy what you keep). */
typedef void (*mpg_error_fn)(const mpg_error *err, void *userdata);

/* ------------------------------------------------------------------------ */
/* Options                                                                  */

/** What happens to a task that failed (after its retries). Since 0.1. */
typedef enum mpg_policy {
	MPG_CONTINUE = 0, /* error callback, result slot marked failed, go on */
	MPG_RETRY,        /* re-run up to `retries` times on another worker, then CONTINUE */
	MPG_ABORT,        /* stop dispatch, kill all workers, return the first error */
} mpg_policy;

/**
 * mpg_options_new - new options, all unset (defaults apply).
 * Returns 0, -EINVAL (ret NULL) or -ENOMEM. Free with mpg_options_free().
 * Since 0.1.
 */
MPG_EXPORT int mpg_options_new(mpg_options **ret);
MPG_EXPORT void mpg_options_free(mpg_options *opts);
/** mpg_options_freep - mpg_options_free(*opts), for __attribute__((cleanup)). */
MPG_EXPORT void mpg_options_freep(mpg_options **opts);

/** Number of workers, 1..4096 (default: CPUs this process may run on). Pool only.
 *  Returns -EINVAL for 0 or more than 4096. Since 0.1. */
MPG_EXPORT int mpg_options_set_workers(mpg_options *opts, unsigned n);

/** Failure policy (default MPG_CONTINUE). @retries: re-runs before the final
 *  action, for any policy (at most 1000); MPG_RETRY with 0 retries means 1.
 *  Pool default and per call. Returns -EINVAL on a bad value. Since 0.1. */
MPG_EXPORT int mpg_options_set_policy(mpg_options *opts, mpg_policy policy, unsigned retries);

/** With MPG_ABORT: after the pool stopped its workers, print the error to
 *  stderr, flush stdio and exit(status) the whole process (SystemExit-style).
 *  @status 0..255, or -1 to turn it off (default). Since 0.1. */
MPG_EXPORT int mpg_options_set_abort_exit(mpg_options *opts, int status);

/** Inputs per message to a worker; 0 = automatic (default): batches are
 *  sized from measured task time, so tiny tasks are batched and slow ones
 *  are not. Pool default and per call. Since 0.1. */
MPG_EXPORT int mpg_options_set_chunksize(mpg_options *opts, size_t n);

/** The pointer passed to every task function. Pool only. Points into the
 *  workers' copy of memory as it was at pool creation. Since 0.1. */
MPG_EXPORT int mpg_options_set_userdata(mpg_options *opts, void *userdata);

/** Per call: bytes copied now and handed to every task of the call
 *  (mpg_task_context()), e.g. the extra arguments of a starmap. At most
 *  16 MiB. Returns -EINVAL, -EMSGSIZE or -ENOMEM. Since 0.1. */
MPG_EXPORT int mpg_options_set_context(mpg_options *opts, const void *ctx, size_t len);

/** Error callback for every task that failed for good (after retries), on
 *  the dispatcher thread. Pool default and per call. Since 0.1. */
MPG_EXPORT int mpg_options_set_error_callback(mpg_options *opts, mpg_error_fn fn, void *userdata);

/** Inputs and results of at least this many bytes go through shared memory
 *  (memfd) instead of the socket (default 1 MiB; 4096 to 4 MiB, else
 *  -EINVAL). Pool only. */
MPG_EXPORT int mpg_options_set_shm_threshold(mpg_options *opts, size_t bytes);

/** Time limit of one task in milliseconds (0: none, the default; at most
 *  one day). A task over its limit is sent SIGXCPU, which makes its worker
 *  report where it is stuck, then SIGKILL after a grace period; the task
 *  ends as MPG_ERR_TIMEOUT with that backtrace (or is retried, by policy)
 *  and the worker is replaced. A worker that exits or crashes of its own
 *  before that SIGKILL ends its task as that exit or crash instead (with
 *  its crash report). The limit is wall-clock time, measured by the
 *  parent to within ~10% (at least 5 ms), at no cost to the tasks. Pool
 *  default and per call. Returns -EINVAL on a bad value. Since 0.1. */
MPG_EXPORT int mpg_options_set_timeout(mpg_options *opts, unsigned ms);

/** Close every inherited fd but stdin, stdout and stderr in the fork
 *  server and so in every worker (default: off, fork semantics: workers
 *  share the fds the program had when the pool was created, O_CLOEXEC or
 *  not, since they do not exec). Turn it on when the program holds pipes to
 *  other processes whose EOF must not wait for the pool. Pool only.
 *  Since 0.1. */
MPG_EXPORT int mpg_options_set_close_fds(mpg_options *opts, int close_fds);

/** Where the workers' logs go. By default (never called) the pool makes its
 *  own aggregator, writing text to stderr (coloured on a tty; the
 *  journal's fields when stderr is the journal, mplog_sink_new_stderr()),
 *  run on its
 *  own thread and drained at mpg_pool_free(); get it with mpg_pool_log() to
 *  add sinks. @log: an aggregator of yours instead (you run it with
 *  mplog_aggregator_start() or dispatch(), and free it after the pool), or
 *  NULL for no log channels at all. Either way mplog_* calls in a task are
 *  stamped with the worker and the task's index. Pool only. Since 0.1. */
MPG_EXPORT int mpg_options_set_log(mpg_options *opts, mplog_aggregator *log);

/** Also capture the workers' stdout and/or stderr (MPG_CAPTURE_STDOUT,
 *  MPG_CAPTURE_STDERR; default none): each line a task prints becomes a
 *  record of the pool's log, tagged with its stream, worker and pid (a last
 *  line without newline is kept when the worker dies). Needs logging on
 *  (mpg_options_set_log()). Pool only. Since 0.1. */
enum { MPG_CAPTURE_STDOUT = 1u << 0, MPG_CAPTURE_STDERR = 1u << 1 };
MPG_EXPORT int mpg_options_set_capture(mpg_options *opts, unsigned streams);

/** Replace a worker after it ran @n tasks (0: never, the default), e.g. to
 *  contain a leak in the task code. Pool only. Since 0.1. */
MPG_EXPORT int mpg_options_set_max_tasks_per_worker(mpg_options *opts, uint64_t n);

/** Pause workers for a debugger (default: never): MPG_PAUSE_AT_START, a
 *  new worker waits before its first task; MPG_PAUSE_ON_CRASH, a crashing
 *  worker waits after its crash report, before it dies (the task's error
 *  reaches the parent when it does). A paused worker shows as "paused" in
 *  `mpattach list` and waits until `mpattach resume`, until a debugger
 *  attached to it lets it run (`mpattach gdb`, then gdb's `continue`), or
 *  for @timeout_ms (0: 5 minutes; at most one day). Task time limits do not
 *  run while a worker is paused. When the program did not call this, the
 *  environment decides: MPKIT_PAUSE=start, crash or start,crash, and
 *  MPKIT_PAUSE_TIMEOUT in seconds. Pool only (a supervisor's services:
 *  mpg_supervisor_set_pause()). Returns -EINVAL on a bad value.
 *  Since 0.1. */
enum { MPG_PAUSE_AT_START = 1u << 0, MPG_PAUSE_ON_CRASH = 1u << 1 };
MPG_EXPORT int mpg_options_set_pause(mpg_options *opts, unsigned flags, unsigned timeout_ms);

/** Register the pool for `mpattach` and `mplog live` (default: on, unless
 *  the environment has MPKIT_CONTROL=0): a control socket
 *  "<pid>.<n>.sock" in $MPKIT_REGISTRY, else $XDG_RUNTIME_DIR/mpkit,
 *  else /tmp/mpkit-<uid> (variables count when absolute paths),
 *  directory 0700, socket 0600, served by a thread of the pool that
 *  answers only peers of this process's effective uid (SO_PEERCRED).
 *  It lists the workers, streams the log, resumes paused workers and lets
 *  a debugger started by that peer ptrace a worker (PR_SET_PTRACER naming
 *  the peer's pid, so Yama's ptrace_scope=1 allows it). A registry that
 *  cannot be set up (say, a directory of another owner) is reported on
 *  the pool's log and the pool runs without it. Workers use SIGURG
 *  for these requests. Pool only (a supervisor:
 *  mpg_supervisor_set_control()). Since 0.1. */
MPG_EXPORT int mpg_options_set_control(mpg_options *opts, int on);

/**
 * Progress of a call: what a progress callback gets (valid during the call;
 * copy what you keep). Fields are only ever appended in later versions:
 * @size is sizeof the struct the library filled in, so a program built
 * against a newer header can tell which fields are there. Since 0.1.
 *
 * For mpg_map(), mpg_map_array() and mpg_imap_unordered() the counts are
 * the call's. For mpg_submit() they are the pool's current *submit batch*:
 * it opens with a submit made while no submitted task is running or queued,
 * takes in every task submitted until all of them ended, and closes there
 * with the final report; @total is the tasks submitted in the batch so far
 * (it grows as you submit).
 */
typedef struct mpg_progress {
	size_t size;        /* sizeof(mpg_progress) as the library knows it */
	size_t total;       /* tasks of the call (or of the submit batch so far) */
	size_t done;        /* tasks ended: succeeded or failed for good */
	size_t failed;      /* of those, failed for good (after retries; cancelled included) */
	size_t retried;     /* re-runs after a failure (as mpg_stats.tasks_retried) */
	uint64_t elapsed_ns;/* since the call (or batch) started */
	double rate;        /* tasks ended per second: smoothed over the last second
			     * or so; in the final report, done / elapsed */
	double eta_s;       /* seconds left at that rate, or -1 when unknown */
	int final;          /* 1 in the last report of the call: done == total */
	size_t failed_by_kind[8]; /* failed, indexed by mpg_error_kind (1..7) */
} mpg_progress;

/** Progress callback: on the dispatcher thread, without the pool lock, like
 *  error callbacks; it must not block for long. Since 0.1. */
typedef void (*mpg_progress_fn)(const mpg_progress *progress, void *userdata);

/** Progress callback of the calls (pool default and per call; @fn NULL
 *  turns it off). It is called from a timer of the dispatcher, at most once
 *  per @interval_ms (0: the default, 100 ms; at most one hour) while the
 *  call runs, whether results came in or not — never per task — and once at
 *  the end (final = 1): before mpg_map() returns, before mpg_iter_next()
 *  returns 0, before the last future of a submit batch is done. The
 *  interval is also the redraw period of the progress bar. A call of no
 *  task reports nothing. Returns -EINVAL on a bad value. Since 0.1. */
MPG_EXPORT int mpg_options_set_progress(mpg_options *opts, mpg_progress_fn fn, void *userdata,
					unsigned interval_ms);

/** Progress bar modes (mpg_options_set_progress_bar()). Since 0.1. */
typedef enum mpg_progress_bar {
	MPG_PROGRESS_BAR_OFF = 0, /* no bar */
	MPG_PROGRESS_BAR_AUTO,    /* stderr a terminal: a bar redrawn in place, then a
				   * summary; else a plain line every 5 s, then the summary */
	MPG_PROGRESS_BAR_TTY,     /* the bar and summary on a terminal, nothing else */
} mpg_progress_bar;

/**
 * mpg_options_set_progress_bar - a progress bar on stderr (pool default
 * and per call; default off). On a terminal it is one line, redrawn in
 * place at the progress interval (mpg_options_set_progress(), 100 ms by
 * default): done/total, percent, rate (tasks/s), ETA and failures (in red),
 * fitted to the terminal's width; the pool's log records (and yours, in
 * the same aggregator, see mplog_aggregator_set_status()) are written
 * above it, never through it. At the end it is replaced by a one-line
 * summary that stays: tasks, failures by kind, retries, wall time, tasks/s.
 * On a terminal while TERM is "dumb", plain lines (as off a terminal, in
 * both modes) without escape sequences; not red while NO_COLOR is set.
 * The environment variable MPKIT_PROGRESS gives every call a bar without
 * recompiling: "1" (or "auto") means MPG_PROGRESS_BAR_AUTO and "tty"
 * MPG_PROGRESS_BAR_TTY for calls whose program chose nothing; "0" turns
 * every bar off, chosen or not. One bar at a time per pool: while one call
 * draws, others' bars wait (their summaries are still printed).
 * Returns -EINVAL on a bad mode. Since 0.1.
 */
MPG_EXPORT int mpg_options_set_progress_bar(mpg_options *opts, mpg_progress_bar mode);

/* ------------------------------------------------------------------------ */
/* Pool                                                                     */

/**
 * mpg_pool_new - start a pool: the fork server, the dispatcher thread and
 * the workers. @opts may be NULL. Per-call-only options are ignored.
 * Returns 0, -EINVAL, -ECHILD (called in a worker), -ENOMEM, or the errno
 * of a failed fork/socket/thread creation, or the errno that kept every
 * worker from starting (-EMFILE, -ENFILE, -ENOMEM, -EAGAIN; nothing is
 * left of the pool then). A worker that cannot be started later (a
 * replacement) is a WARN record and its slot tries again with backoff;
 * once none is alive and every slot failed 3 starts in a row, the tasks
 * not run fail as MPG_ERR_CANCELLED with that errno as code. Since 0.1.
 */
MPG_EXPORT int mpg_pool_new(const mpg_options *opts, mpg_pool **ret);

/** mpg_pool_close - accept no more work; queued work still runs (to wait
 *  for submitted tasks and go on, see mpg_pool_wait()). Returns 0,
 *  -EINVAL, -ECHILD, or -EPERM on mpg_pool_default()'s pool. Since 0.1. */
MPG_EXPORT int mpg_pool_close(mpg_pool *pool);

/**
 * mpg_pool_join - after mpg_pool_close() or mpg_pool_terminate(): wait until
 * every task has ended and every worker has exited and been reaped.
 * Returns 0, -EINVAL (pool still open), -EDEADLK, -ECHILD, -EPERM (the
 * default pool). Since 0.1.
 */
MPG_EXPORT int mpg_pool_join(mpg_pool *pool);

/**
 * mpg_pool_terminate - stop now: kill the workers; every task not ended yet
 * ends with MPG_ERR_CANCELLED. Returns once the workers are reaped: 0, or
 * -EINVAL, -ECHILD, -EDEADLK, -EPERM (the default pool). Since 0.1.
 */
MPG_EXPORT int mpg_pool_terminate(mpg_pool *pool);

/** mpg_pool_free - terminate if still running, then release everything.
 *  Accepts NULL. No zombie, no fd of the pool's remains. Does nothing when
 *  called from a callback (on the dispatcher thread), in a worker, or in a
 *  process forked from the pool's creator, nor on mpg_pool_default()'s
 *  pool. Since 0.1. */
MPG_EXPORT void mpg_pool_free(mpg_pool *pool);
/** mpg_pool_freep - mpg_pool_free(*pool), for __attribute__((cleanup)). */
MPG_EXPORT void mpg_pool_freep(mpg_pool **pool);

/**
 * mpg_pool_default - the process's default pool, for the simple case (as
 * Python's `with Pool() as p`): made on the first call with the default
 * options (a worker per CPU, the log text on stderr, the MPKIT_*
 * variables), then the same pool for every thread. Like any pool its
 * workers see the program's memory as it was when it was made, at the
 * first call: make it early. It belongs to the library:
 * mpg_pool_close(), mpg_pool_join() and mpg_pool_terminate() refuse it
 * with -EPERM and mpg_pool_free() leaves it; at exit() its tasks not ended
 * are cancelled (mpg_pool_wait() first for submitted ones), its workers
 * reaped and its log drained. A call on it whose policy is MPG_ABORT and
 * that aborts stops it for good (later calls: -ESHUTDOWN), as any pool. A
 * program that needs other options makes a pool of its own with
 * mpg_pool_new(). A process forked from one with a default pool (not a
 * worker) gets one of its own at its first call. Returns 0, -EINVAL,
 * -ECHILD (in a worker), or an error of mpg_pool_new() (the next call
 * tries again). Since 0.1.
 */
MPG_EXPORT int mpg_pool_default(mpg_pool **ret);

/** Number of worker slots. */
MPG_EXPORT unsigned mpg_pool_workers(const mpg_pool *pool);

/**
 * mpg_pool_worker_pid - pid of the worker in @slot now (0 while it is being
 * replaced). Returns a pid, or -EINVAL / -ESRCH (pool stopped). Since 0.1.
 */
MPG_EXPORT pid_t mpg_pool_worker_pid(mpg_pool *pool, unsigned slot);

/** What a worker slot is doing (mpg_worker_info.state). Since 0.1. */
typedef enum mpg_worker_state {
	MPG_WORKER_DOWN = 0, /* no process: being replaced, or cannot be started */
	MPG_WORKER_STARTING, /* forked, setting up */
	MPG_WORKER_IDLE,     /* ready, no task */
	MPG_WORKER_BUSY,     /* running a task (call, task) */
	MPG_WORKER_PAUSED,   /* paused for a debugger (mpg_options_set_pause()) */
} mpg_worker_state;

/**
 * One worker slot, now (as `mpattach list` shows it). The caller sets
 * @size to sizeof(mpg_worker_info) before the call (e.g.
 * `mpg_worker_info wi = {.size = sizeof wi};`): the library fills in no more
 * than @size bytes, so a program built against an older, shorter struct is
 * safe with a newer library; it sets @size to the bytes it filled in and
 * leaves the rest untouched, so a program built against a newer header
 * can tell which fields an older library knew (start from {0} to find
 * them zero). Fields are only ever appended. Since 0.1.
 */
typedef struct mpg_worker_info {
	size_t size;         /* in: sizeof what the caller has; out: what was filled */
	pid_t pid;           /* 0 while the slot is being (re)started */
	unsigned restarts;   /* replacements of this slot so far */
	uint64_t tasks_done; /* by the current process */
	uint64_t ready_ns;   /* CLOCK_MONOTONIC time the current process had set up
			      * (crash handler, module list) and was ready; 0 before */
	mpg_worker_state state;
	uint64_t call;       /* BUSY or PAUSED in a task: the call it belongs to, a
			      * number the pool gives each call in order (a map, an
			      * imap, each submitted task), from 1; else 0 */
	size_t task;         /* and the task: its input index within the call, or a
			      * submitted task's number (as mpg_error_task()); else 0 */
} mpg_worker_info;
/** Returns 0, -EINVAL (bad slot, or @size less than the first version's
 *  fields: forgotten), -ESRCH (pool stopped), -ECHILD. */
MPG_EXPORT int mpg_pool_worker_info(mpg_pool *pool, unsigned slot, mpg_worker_info *ret);

/** The aggregator the pool's workers log into (see mpg_options_set_log()),
 *  or NULL when logging is off. Valid until mpg_pool_free(). Since 0.1. */
MPG_EXPORT mplog_aggregator *mpg_pool_log(mpg_pool *pool);

/** The error that aborted the pool (MPG_ABORT), or NULL. Valid until
 *  mpg_pool_free(). Since 0.1. */
MPG_EXPORT const mpg_error *mpg_pool_abort_error(mpg_pool *pool);

/** Counters, for tests and monitoring. The caller sets @size to
 *  sizeof(mpg_stats) (`mpg_stats st = {.size = sizeof st};`), as for
 *  mpg_worker_info: the library fills no more than that, sets @size to what
 *  it filled, leaving the rest; fields are only ever appended. Since 0.1. */
typedef struct mpg_stats {
	size_t size;               /* in: sizeof the caller's; out: bytes filled */
	uint64_t tasks_ok;
	uint64_t tasks_failed;
	uint64_t tasks_retried;
	uint64_t workers_started;
	uint64_t workers_replaced;  /* after a death */
	uint64_t workers_recycled;  /* after max_tasks_per_worker */
	uint64_t tasks_timed_out;
	uint64_t messages_sent;    /* frames parent -> workers */
	uint64_t socket_bytes;     /* bytes through worker sockets, both ways */
	uint64_t shm_bytes;        /* payload bytes handed over in shared memory */
	uint64_t shm_copied_bytes; /* of those, bytes the pool copied into a memfd */
	uint64_t tasks_rescued;    /* finished tasks of a dead worker whose results
				    * were taken from its memory, not run again */
} mpg_stats;
/** Returns 0, or -EINVAL (no pool or @ret, or @size too small). */
MPG_EXPORT int mpg_pool_stats(mpg_pool *pool, mpg_stats *ret);

/* ------------------------------------------------------------------------ */
/* Running work                                                             */

/**
 * mpg_map - run @fn on each input, wait, return results in input order.
 * @inputs: @n buffers, valid until mpg_map() returns.
 * @opts: per-call options, or NULL.
 * @ret: the results, or NULL when only the number of failures matters
 * (their errors still reach the error callback and the pool's log).
 * Returns 0 once every task ended (some may have failed under MPG_CONTINUE:
 * see mpg_results_failed()), or with @ret NULL the number of tasks that
 * failed (at most INT_MAX); -ECANCELED if the pool aborted or was
 * terminated meanwhile (see mpg_pool_abort_error()); -EINVAL, -ESHUTDOWN
 * (pool closed), -ECHILD, -EDEADLK, -ENOMEM. Since 0.1.
 */
MPG_EXPORT int mpg_map(mpg_pool *pool, mpg_task_fn fn, const mpg_buf *inputs, size_t n,
		       const mpg_options *opts, mpg_results **ret);

/**
 * mpg_map_array - mpg_map() over a C array: input i is the @in_size bytes at
 * in + i * in_size; its result must be exactly @out_size bytes and is
 * written to out + i * out_size (failed slots are zeroed; a task that sets
 * no result fails, RAISED with code ENODATA). The fast path for numeric
 * work; with @ret NULL the simple case is one call that returns how many
 * failed. Returns and errors as mpg_map(), and -EMSGSIZE when @out_size is
 * over 8 MiB. Since 0.1.
 */
MPG_EXPORT int mpg_map_array(mpg_pool *pool, mpg_task_fn fn, const void *in, size_t in_size,
			     size_t n, void *out, size_t out_size, const mpg_options *opts,
			     mpg_results **ret);

/** Number of tasks; of those that failed (or were cancelled). */
MPG_EXPORT size_t mpg_results_count(const mpg_results *res);
MPG_EXPORT size_t mpg_results_failed(const mpg_results *res);
/** Result of task @index: 0 and its bytes; -EIO if it failed (see
 *  mpg_results_error()); -EINVAL for a bad index. For mpg_map_array() the
 *  bytes point into the caller's output array. */
MPG_EXPORT int mpg_results_get(const mpg_results *res, size_t index, const void **data, size_t *len);
/** The error of task @index, or NULL if it succeeded. */
MPG_EXPORT const mpg_error *mpg_results_error(const mpg_results *res, size_t index);
/** mpg_results_errors - the errors of the failed tasks, in input order
 *  (mpg_error_task() is each one's index): which failed and why, without a
 *  call per task. Stores their number in *@n (@n may be NULL): that is
 *  mpg_results_failed() unless memory ran out for an error. Returns NULL
 *  when there is none; valid until mpg_results_free(). Since 0.1. */
MPG_EXPORT const mpg_error *const *mpg_results_errors(const mpg_results *res, size_t *n);
MPG_EXPORT void mpg_results_free(mpg_results *res);
/** mpg_results_freep - mpg_results_free(*res), for __attribute__((cleanup)). */
MPG_EXPORT void mpg_results_freep(mpg_results **res);

/**
 * mpg_imap_unordered - start @fn on each input; read results as they
 * complete with mpg_iter_next(). @inputs must stay valid until the iterator
 * is freed. Errors as mpg_map() but -EDEADLK and -ECANCELED (the call
 * itself does not wait). Since 0.1.
 */
MPG_EXPORT int mpg_imap_unordered(mpg_pool *pool, mpg_task_fn fn, const mpg_buf *inputs,
				  size_t n, const mpg_options *opts, mpg_iter **ret);

/**
 * mpg_iter_next - wait for the next completed task. Stores its input index,
 * and either its result (@data, @len: valid until the next call or
 * mpg_iter_free()) with *err = NULL, or its error in *err. Returns 1 when a
 * task was returned, 0 when all were, -ECANCELED when the pool aborted or
 * was terminated, -EDEADLK, -EINVAL. Since 0.1.
 */
MPG_EXPORT int mpg_iter_next(mpg_iter *it, size_t *index, const void **data, size_t *len,
			     const mpg_error **err);
/** Free the iterator; tasks not started yet are dropped (they end cancelled). */
MPG_EXPORT void mpg_iter_free(mpg_iter *it);
/** mpg_iter_freep - mpg_iter_free(*it), for __attribute__((cleanup)). */
MPG_EXPORT void mpg_iter_freep(mpg_iter **it);

/**
 * mpg_submit - run one task asynchronously. Each submitted task has a number
 * of its own in the pool, in the order of the calls: 0 for the first, then
 * 1, 2, ...; it is the index that mpg_task_index(), mpg_error_task(), the
 * result callback, the merged log and `mpattach list` show, and
 * mpg_future_task() returns it. The input is copied (into shared
 * memory if large) before the call returns, unless it lies in a buffer of
 * mpg_shm_alloc(): that is handed over as it is, so the caller must not
 * change it until the task ended. On success @on_result, on failure
 * @on_error is called on the dispatcher thread, with @userdata; a NULL
 * @on_error means the error callback of @opts or of the pool, if any.
 * @ret may be NULL (fire and forget); else free the future with
 * mpg_future_free(), which may happen before the task ended. Errors as
 * mpg_map() but -EDEADLK and -ECANCELED, and those of memfd_create(2) and
 * write(2) for a large input. Since 0.1.
 */
MPG_EXPORT int mpg_submit(mpg_pool *pool, mpg_task_fn fn, const void *in, size_t len,
			  const mpg_options *opts, mpg_result_fn on_result,
			  mpg_error_fn on_error, void *userdata, mpg_future **ret);

/** Wait until the task ended (@timeout_ms < 0: forever). Returns 0, or
 *  -ETIMEDOUT, -EDEADLK. Callbacks have run when it returns 0. */
MPG_EXPORT int mpg_future_wait(mpg_future *f, int timeout_ms);
/** 0 and the result; -EINPROGRESS (not ended); -EIO (failed: mpg_future_error()). */
MPG_EXPORT int mpg_future_result(mpg_future *f, const void **data, size_t *len);
MPG_EXPORT const mpg_error *mpg_future_error(mpg_future *f);
/** The submitted task's number in its pool (see mpg_submit()), or 0 for a
 *  NULL future. Since 0.1. */
MPG_EXPORT size_t mpg_future_task(const mpg_future *f);
MPG_EXPORT void mpg_future_free(mpg_future *f);
/** mpg_future_freep - mpg_future_free(*f), for __attribute__((cleanup)). */
MPG_EXPORT void mpg_future_freep(mpg_future **f);

/**
 * mpg_pool_wait - wait until every task submitted to @pool with mpg_submit()
 * before this call has ended and its callbacks have run (as many futures'
 * mpg_future_wait()), fire-and-forget ones included; the pool stays open,
 * unlike mpg_pool_close() + mpg_pool_join(). Tasks submitted meanwhile, from
 * callbacks or other threads, are not waited for. @timeout_ms < 0: forever.
 * Returns 0, -ETIMEDOUT, -EINVAL, -ECHILD, or -EDEADLK on the dispatcher
 * thread (in a callback). Since 0.1.
 */
MPG_EXPORT int mpg_pool_wait(mpg_pool *pool, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* Inside a task (in a worker)                                              */

/** Set the task's result (copied). Replaces an earlier result. Returns 0,
 *  -EINVAL, -ENOMEM, or -EMSGSIZE for a wrong size in mpg_map_array(). */
MPG_EXPORT int mpg_task_set_result(mpg_task *task, const void *data, size_t len);
/** Room for a result of @len bytes to write in place (large ones live in
 *  shared memory: no copy at all). Valid until the task returns or sets
 *  another result. NULL on failure (errno set). */
MPG_EXPORT void *mpg_task_alloc_result(mpg_task *task, size_t len);
/** The call's context bytes (mpg_options_set_context()), or NULL. */
MPG_EXPORT const void *mpg_task_context(mpg_task *task, size_t *len);
/** The task's input index within its call; for a submitted task, its
 *  number in the pool (see mpg_submit()). */
MPG_EXPORT size_t mpg_task_index(const mpg_task *task);
/** The worker's slot number. */
MPG_EXPORT unsigned mpg_task_worker(const mpg_task *task);

/**
 * mpg_raise - end the running task with an error: @code and a printf-style
 * message (truncated at 4 KiB) reach the parent as MPG_ERR_RAISED. Does not
 * return when called from a task's thread; like longjmp(), it skips the
 * task's cleanup. Returns -EPERM when no task is running in this thread.
 * Since 0.1.
 */
MPG_EXPORT int mpg_raise(int code, const char *fmt, ...) MPG_PRINTF(2, 3);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

/** What ended a task in failure. Since 0.1. */
typedef enum mpg_error_kind {
	MPG_ERR_RAISED = 1, /* task returned non-zero or called mpg_raise() */
	MPG_ERR_EXITED,     /* the worker exited (exit(), _exit()) during the task */
	MPG_ERR_SIGNALED,   /* the worker died on a fatal signal (SEGV, ABRT, ...) */
	MPG_ERR_KILLED,     /* the worker was killed from outside (SIGKILL, OOM, SIGTERM) */
	MPG_ERR_TIMEOUT,    /* the task ran over its time limit */
	MPG_ERR_PROTOCOL,   /* the worker sent garbage or vanished mid-message */
	MPG_ERR_CANCELLED,  /* never ran to the end: pool aborted or terminated,
			     * or no worker could be started (code: the errno) */
} mpg_error_kind;

MPG_EXPORT mpg_error_kind mpg_error_get_kind(const mpg_error *err);
/** "raised", "exited", "signaled", "killed", "timeout", "protocol", "cancelled". */
MPG_EXPORT const char *mpg_error_kind_name(mpg_error_kind kind);
/** Input index of the failed task within its call; for a submitted task,
 *  its number in the pool (see mpg_submit()). */
MPG_EXPORT size_t mpg_error_task(const mpg_error *err);
/** Worker slot, or -1 if the task never reached a worker. */
MPG_EXPORT int mpg_error_worker(const mpg_error *err);
/** Pid of the worker, or 0. */
MPG_EXPORT pid_t mpg_error_pid(const mpg_error *err);
/** RAISED: the code; EXITED: the exit status; CANCELLED because no worker
 *  (or service) could be started: the errno, such as EMFILE; else 0.
 *  Codes are positive errno values by convention, the library's own
 *  (ENODATA, EFAULT, EBADMSG, ENOMEM, ...) too; a task's is kept as the
 *  task gave it (see Conventions at the top). */
MPG_EXPORT int mpg_error_code(const mpg_error *err);
/** SIGNALED, KILLED, TIMEOUT: the signal number; else 0. */
MPG_EXPORT int mpg_error_signal(const mpg_error *err);
/** How many times the task ran (1 + retries). */
MPG_EXPORT unsigned mpg_error_attempts(const mpg_error *err);
/** The message: the task's for RAISED, the pool's explanation otherwise. */
MPG_EXPORT const char *mpg_error_message(const mpg_error *err);
/** Symbolized backtrace, one frame a line, innermost first, or NULL when
 *  none was taken. Each line reads "#N 0xADDR function+0xOFF (file.c:LINE)
 *  [module]"; an inlined call gets its own line, without the offset and
 *  marked "[module, inlined]". For a
 *  crash the first frame is the faulting instruction; for MPG_ERR_RAISED it
 *  is where mpg_raise() was called. Since 0.1. */
MPG_EXPORT const char *mpg_error_backtrace(const mpg_error *err);
/** For a crash the worker's handler reported (SIGNALED): si_code (e.g.
 *  SEGV_MAPERR) and the fault address (si_addr). Returns 0, or -ENODATA
 *  when there was no crash report. Since 0.1. */
MPG_EXPORT int mpg_error_fault(const mpg_error *err, int *si_code, uintptr_t *address);
/** One line for humans, e.g. "task 7: worker 1 (pid 4242) killed by
 *  SIGKILL: Killed from outside (perhaps out of memory: see dmesg)". */
MPG_EXPORT const char *mpg_error_describe(const mpg_error *err);
/** For a supervised service's failure: the service's name (then
 *  mpg_error_task() and mpg_error_worker() are its index, and the
 *  description reads "service NAME (pid P) ..."); NULL for a task.
 *  Since 0.1. */
MPG_EXPORT const char *mpg_error_service(const mpg_error *err);
/** For a task of a cluster map (mpguard-mpi.h): the host name and the MPI
 *  rank it failed on (the description then reads "... worker W (pid P)
 *  of rank R (host H) ..."); NULL and -1 for a task of a local pool.
 *  Since 0.1. */
MPG_EXPORT const char *mpg_error_host(const mpg_error *err);
MPG_EXPORT int mpg_error_rank(const mpg_error *err);

/* ------------------------------------------------------------------------ */
/* Supervised long-running workers                                          */

/*
 * A supervisor runs K named service functions, each in its own forked
 * process (through a fork server, as pools do), restarts them by policy when
 * they end, and gives up when they fail too often — the Erlang/OTP way.
 * Failures are reported as mpg_error (RAISED, EXITED, SIGNALED with
 * backtrace, KILLED); mpg_error_task() is the service's index.
 */
typedef struct mpg_supervisor mpg_supervisor;

/** A service: runs until it returns. 0 is a normal end; non-zero or
 *  mpg_raise() a failure (RAISED with that code; a non-zero return's
 *  message is "service returned N"). It starts with the signal mask the
 *  thread calling mpg_supervisor_run() had, but SIGTERM unblocked and at
 *  its default action (the shutdown request), and SIGINT ignored. */
typedef int (*mpg_service_fn)(void *userdata);

/** When a service that ended is started again. Since 0.1. */
typedef enum mpg_restart {
	MPG_RESTART_PERMANENT = 0, /* always */
	MPG_RESTART_TRANSIENT,     /* only after a failure */
	MPG_RESTART_TEMPORARY,     /* never */
} mpg_restart;

/** Returns 0, -EINVAL, -ENOMEM, -ECHILD (in a worker). Since 0.1. */
MPG_EXPORT int mpg_supervisor_new(mpg_supervisor **ret);
MPG_EXPORT void mpg_supervisor_free(mpg_supervisor *sup);
/** mpg_supervisor_freep - mpg_supervisor_free(*sup), for __attribute__((cleanup)). */
MPG_EXPORT void mpg_supervisor_freep(mpg_supervisor **sup);

/** Add a service (before mpg_supervisor_run(); at most 256). @name is
 *  copied, and must differ from the other services' names. @userdata is
 *  seen by the service in its copy of memory as it was when
 *  mpg_supervisor_run() started. Returns its index, or -EINVAL, -EEXIST
 *  (a service has that name), -EBUSY (running), -E2BIG, -ENOMEM.
 *  Since 0.1. */
MPG_EXPORT int mpg_supervisor_add(mpg_supervisor *sup, const char *name, mpg_service_fn fn,
				  void *userdata, mpg_restart restart);

/** Restart intensity: more than @max_restarts restarts within @period_ms
 *  and the supervisor gives up (default 3 in 5000 ms). Size it with the
 *  backoff: a service that fails at once fails for the
 *  (@max_restarts + 1)th time after backoff delays of about
 *  initial_ms * (2^@max_restarts - 1) (each capped at max_ms) plus its run
 *  times, and is given up then if that is within @period_ms; once its
 *  delay is max_ms and (@max_restarts - 1) * max_ms >= @period_ms, it is
 *  never given up, only restarted every max_ms. See
 *  mpg_supervisor_new(3), NOTES. Since 0.1. */
MPG_EXPORT int mpg_supervisor_set_intensity(mpg_supervisor *sup, unsigned max_restarts,
					    unsigned period_ms);

/** Restart delay: @initial_ms after a first failure, doubling with each
 *  failure in a row up to @max_ms (default 10 ms .. 5000 ms); a service
 *  that ran for longer than @max_ms starts over at @initial_ms. */
MPG_EXPORT int mpg_supervisor_set_backoff(mpg_supervisor *sup, unsigned initial_ms,
					  unsigned max_ms);

/** At shutdown, how long a service has after SIGTERM before SIGKILL
 *  (default 5000 ms). */
MPG_EXPORT int mpg_supervisor_set_shutdown_timeout(mpg_supervisor *sup, unsigned ms);

/** Called (in mpg_supervisor_run()'s thread) for every failure. */
MPG_EXPORT int mpg_supervisor_set_error_callback(mpg_supervisor *sup, mpg_error_fn fn,
						 void *userdata);

/**
 * mpg_supervisor_set_log - where the services' mplog_* records and the
 * supervisor's own (each failure as an ERROR record with mpg.kind,
 * mpg.service, mpg.pid, mpg.code, mpg.signal and mpg.backtrace; each
 * restart; giving up) go. Default: an aggregator of the supervisor's own,
 * text on stderr (or the journal, see mplog_sink_new_stderr()), run on a
 * thread of its own during mpg_supervisor_run().
 * @log: the caller's aggregator instead (it must outlive the supervisor's
 * runs and be dispatched by another thread, e.g. mplog_aggregator_start()),
 * or NULL for no log (mplog_* calls in services then return -ENOTCONN).
 * A service's records come on a channel named after the service.
 * Everything a service wrote is delivered before mpg_supervisor_run()
 * returns. Returns 0, -EINVAL, -EBUSY (running). Since 0.1.
 */
MPG_EXPORT int mpg_supervisor_set_log(mpg_supervisor *sup, mplog_aggregator *log);

/** The aggregator the records go to (creating the default one, to which
 *  sinks may be added), or NULL: none, or out of memory. The default one
 *  belongs to the supervisor: valid until mpg_supervisor_free(), or a
 *  mpg_supervisor_set_log() with another aggregator. Since 0.1. */
MPG_EXPORT mplog_aggregator *mpg_supervisor_log(mpg_supervisor *sup);

/** Also turn each line the services print on stdout and/or stderr
 *  (MPG_CAPTURE_STDOUT, MPG_CAPTURE_STDERR) into a record of the log
 *  (none without a log). Returns 0, -EINVAL, -EBUSY. Since 0.1. */
MPG_EXPORT int mpg_supervisor_set_capture(mpg_supervisor *sup, unsigned flags);

/** Register the supervisor for `mpattach` and `mplog live` while it runs
 *  (default: on, unless the environment has MPKIT_CONTROL=0), as
 *  mpg_options_set_control() does a pool: a control socket
 *  "<pid>.<n>.sock" in the same registry, served by a thread of its own
 *  that answers only peers of this process's effective uid. `mpattach
 *  list` shows each service by its name, pid, state and restarts;
 *  `mpattach gdb`, `stacks` and `resume` take a service's index or name.
 *  Services use SIGURG for these requests. Returns 0, -EINVAL, -EBUSY
 *  (running). Since 0.1. */
MPG_EXPORT int mpg_supervisor_set_control(mpg_supervisor *sup, int on);

/** Pause services for a debugger, as mpg_options_set_pause() does a
 *  pool's workers: MPG_PAUSE_AT_START, a service waits before it runs;
 *  MPG_PAUSE_ON_CRASH, a crashing service waits after its crash report,
 *  before it dies (its failure, and its restart, come when it does).
 *  Until `mpattach resume`, a debugger attached lets it run, or
 *  @timeout_ms (0: 5 minutes; at most one day). When the program did not
 *  call this, MPKIT_PAUSE and MPKIT_PAUSE_TIMEOUT decide. Returns 0,
 *  -EINVAL, -EBUSY (running). Since 0.1. */
MPG_EXPORT int mpg_supervisor_set_pause(mpg_supervisor *sup, unsigned flags, unsigned timeout_ms);

/**
 * mpg_supervisor_run - start the services in the order they were added and
 * supervise them until none is left to run. SIGINT and SIGTERM are blocked
 * in the calling thread and taken through a signalfd while it runs (block
 * them in your other threads too, or they may go there): either one, or
 * mpg_supervisor_stop(), shuts the services down in reverse order, each
 * with SIGTERM then, after the shutdown timeout, SIGKILL.
 * Returns 0 when every service ended for good; -EINTR after a shutdown by
 * signal or mpg_supervisor_stop(); -ECANCELED when it gave up (restart
 * intensity exceeded: mpg_supervisor_error() says why; the others were shut
 * down); -EPIPE when the fork server died (the services die with it);
 * -EINVAL (no service), -EBUSY, -ECHILD, or a setup errno. A service that
 * cannot be started (EMFILE, ENOMEM, EAGAIN from fork) fails as
 * MPG_ERR_CANCELLED with that errno as code, and is restarted by its
 * policy like any failed service. Since 0.1.
 */
MPG_EXPORT int mpg_supervisor_run(mpg_supervisor *sup);

/** Ask a running supervisor to shut down (from any thread; async-signal-
 *  safe). Returns 0 or -EINVAL. Since 0.1. */
MPG_EXPORT int mpg_supervisor_stop(mpg_supervisor *sup);

/** The failure that made the supervisor give up, or NULL. */
MPG_EXPORT const mpg_error *mpg_supervisor_error(mpg_supervisor *sup);
/** Times service @index was restarted; -EINVAL for a bad index. */
MPG_EXPORT int mpg_supervisor_restarts(mpg_supervisor *sup, unsigned index);

/* ------------------------------------------------------------------------ */
/* Shared memory buffers                                                    */

/**
 * mpg_shm_alloc - allocate @size bytes of shared memory (a memfd mapping).
 * A buffer passed as a task input that lies inside such an allocation is
 * handed to the worker without any copy. Returns 0, -EINVAL, -ENOMEM.
 * Free with mpg_shm_free(). Since 0.1.
 */
MPG_EXPORT int mpg_shm_alloc(size_t size, void **ret);
MPG_EXPORT void mpg_shm_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* MPGUARD_H */
