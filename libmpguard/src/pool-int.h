/* SPDX-License-Identifier: MIT */
/* Internal structures of libmpguard, shared by its source files. */
#pragma once

#include "mpguard.h"
#include "mplog.h"
#include "wire-int.h"
#include "fdreg-int.h"
#include "crash-int.h"
#include "proto-int.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define MPG_MAX_WORKERS 4096u
#define MPG_MAX_RETRIES 1000u
#define MPG_MAX_CONTEXT (16u << 20)
#define MPG_DEFAULT_SHM_THRESHOLD (1u << 20)
#define MPG_MIN_SHM_THRESHOLD 4096u
/* Chunks in flight per worker: one running, one waiting in the socket, so a
 * worker never idles through a round trip. */
#define MPG_PIPELINE 2u
/* Chunks that take less than this are many round trips each: a worker
 * that is answering (a result within MPG_STREAMING_NS) keeps up to
 * MPG_PIPELINE_SHORT of them, so it finds the next one waiting instead of
 * sleeping until the parent answers its last result. One that stops
 * answering (a slow task) gets no more queued behind it. */
#define MPG_SHORT_CHUNK_NS 50000.0
#define MPG_STREAMING_NS 1000000u
#define MPG_PIPELINE_SHORT 32u
/* Auto-chunking aims at this much work per message. */
#define MPG_CHUNK_TARGET_NS 5000000.0
/* Inline bytes per chunk/results frame; beyond, workers flush early. */
#define MPG_CHUNK_MAX_BYTES (4u << 20)
#define MPG_FRAME_PIPE_BYTES (1u << 20) /* a worker's frame pipes, each way (wio.c) */
/* An automatic mpg_map_array() chunk's inputs at most: MPG_PIPELINE of
 * them fit in the frame pipe with room to spare. A pipe that holds the
 * next chunk whole spares the parent a wake-up on EPOLLOUT to finish it,
 * which on a busy machine left workers waiting for the rest (README,
 * Performance). */
#define MPG_ARRAY_CHUNK_BYTES (MPG_FRAME_PIPE_BYTES / 4)
#define MPG_RESULT_FLUSH_BYTES (8u << 20)
/* Fixed results of a frame from this many bytes stay in the worker's
 * arena, read from there by the parent (RESULT_IN_ARENA); smaller ones
 * ride in the frame. Results held so, unread, span at most MPG_REF_SPAN
 * of the arena before the worker waits for the parent. */
#define MPG_RESULT_REF_MIN (32u << 10)
#define MPG_REF_SPAN (24u << 20)
#define MPG_CHUNK_MAX_FDS 32u
/* A chunk lost with its worker (no task to blame) is re-run at most this
 * many times before its tasks fail with the worker's death. */
#define MPG_MAX_LOST 3u
/* A slot whose worker could not be started (no fd, no memory, no process)
 * tries again after MPG_START_BACKOFF_NS, doubling up to
 * MPG_START_BACKOFF_MAX_NS; once no worker is alive and every slot failed
 * MPG_START_TRIES starts in a row, the tasks not run fail (respawn.c). */
#define MPG_START_BACKOFF_NS (10u * 1000000u)
#define MPG_START_BACKOFF_MAX_NS (1000u * 1000000u)
#define MPG_START_TRIES 3u

/* ---- options ---------------------------------------------------------- */
enum {
	OPT_WORKERS = 1u << 0,
	OPT_POLICY = 1u << 1,
	OPT_ABORT_EXIT = 1u << 2,
	OPT_CHUNKSIZE = 1u << 3,
	OPT_USERDATA = 1u << 4,
	OPT_CONTEXT = 1u << 5,
	OPT_ERROR_CB = 1u << 6,
	OPT_SHM_THRESHOLD = 1u << 7,
	OPT_TIMEOUT = 1u << 8,
	OPT_MAX_TASKS = 1u << 9,
	OPT_CLOSE_FDS = 1u << 10,
	OPT_LOG = 1u << 11,
	OPT_CAPTURE = 1u << 12,
	OPT_PAUSE = 1u << 20,
	OPT_CONTROL = 1u << 21,
	OPT_PROGRESS = 1u << 13,
	OPT_PROGRESS_BAR = 1u << 14,
	/* Private (libmpguard-mpi, no setter): the user's number of the
	 * call's task 0, for a call that is part of a larger one. */
	OPT_BASE = 1u << 15,
};
#define OPT_POOL_ONLY (OPT_WORKERS | OPT_USERDATA | OPT_SHM_THRESHOLD | OPT_MAX_TASKS | \
		       OPT_CLOSE_FDS | OPT_LOG | OPT_CAPTURE | OPT_PAUSE | OPT_CONTROL)
#define MPG_DEFAULT_PAUSE_TIMEOUT_MS (300u * 1000u)
#define MPG_MAX_TIMEOUT_MS (24u * 3600u * 1000u)
#define MPG_DEFAULT_PROGRESS_MS 100u
#define MPG_MAX_PROGRESS_MS (3600u * 1000u)
/* On a non-terminal, a plain progress line at most this often. */
#define MPG_PROGRESS_PLAIN_NS (5000u * 1000000ull)
/* After SIGXCPU, how long a timed-out worker may take to report its stack. */
#define MPG_TIMEOUT_GRACE_NS (1000u * 1000000u)

struct mpg_options {
	unsigned set;
	unsigned workers;
	mpg_policy policy;
	unsigned retries;
	int abort_exit;
	size_t chunksize;
	void *userdata;
	void *context;
	size_t context_len;
	mpg_error_fn on_error;
	void *on_error_userdata;
	size_t shm_threshold;
	unsigned timeout_ms;
	uint64_t max_tasks;
	bool close_fds;
	mplog_aggregator *log;
	unsigned capture;           /* MPG_CAPTURE_* */
	unsigned pause;             /* MPG_PAUSE_* */
	unsigned pause_timeout_ms;
	bool control;               /* register a control socket */
	mpg_progress_fn progress_fn;
	void *progress_userdata;
	unsigned progress_ms;       /* 0: default */
	mpg_progress_bar bar;
	uint64_t base;              /* OPT_BASE */
};

/* Settings of one call: pool defaults overridden by the call's options. */
struct mpg__callcfg {
	mpg_policy policy;
	unsigned retries;
	int abort_exit;
	size_t chunksize;
	mpg_error_fn on_error;
	void *on_error_userdata;
	void *context; /* owned copy */
	size_t context_len;
	unsigned timeout_ms;
	mpg_progress_fn progress_fn;
	void *progress_userdata;
	unsigned progress_ms;       /* resolved: never 0 */
	mpg_progress_bar bar;       /* resolved with MPKIT_PROGRESS */
	uint64_t base;              /* OPT_BASE, else 0 */
};

/* ---- errors ----------------------------------------------------------- */
struct mpg_error {
	mpg_error_kind kind;
	size_t task;
	int worker;
	pid_t pid;
	int code;
	int sig;
	unsigned attempts;
	bool has_fault;
	int si_code;
	uint64_t addr;
	char *message;
	char *backtrace;
	char *describe;
	char *service;    /* a supervised service's name, or NULL for a task */
	char *host;       /* a cluster rank's host name, or NULL (local) */
	int rank;         /* its MPI rank, or -1 */
};

mpg_error *mpg__error_new(mpg_error_kind kind, size_t task, int worker, pid_t pid,
			  int code, int sig, unsigned attempts, const char *message);
void mpg__error_free(mpg_error *err);
/* The key-values of a failure's record in the merged log, what there is
 * (no empty signal or backtrace): mpg.kind (mpg.retrying for an attempt
 * that will run again, with mpg.attempt), mpg.task and mpg.worker (or
 * mpg.service), mpg.pid, mpg.code, mpg.signal, mpg.backtrace. kv points
 * into e and into the struct. */
struct mpg__error_kv {
	char task[24], worker[16], pid[16], code[16], attempt[16];
	mplog_kv kv[8];
	size_t n;
};
void mpg__error_kv(struct mpg__error_kv *k, const mpg_error *e, bool retrying);
/* Make err a failure of service `name` (its description says so). */
int mpg__error_set_service(mpg_error *err, const char *name);
void mpg__error_set_fault(mpg_error *err, int si_code, uint64_t addr);
mpg_error *mpg__error_dup(const mpg_error *err);
/* Where a cluster task failed (libmpguard-mpi): host name and rank. */
int mpg__error_set_place(mpg_error *err, const char *host, int rank);
const char *mpg__signal_name(int sig);

/* ---- how a task or a service failed (death.c) -------------------------- */
struct mpg__failure {
	mpg_error_kind kind;
	int code, sig;
	const char *msg;
	bool has_fault;            /* a crash report arrived */
	int si_code;
	uint64_t addr;
	const uint64_t *ips;       /* raw backtrace, symbolized if it fails for good */
	unsigned nips;
	bool first_exact;          /* ips[0] is the faulting instruction itself */
	bool no_retry;             /* fails for good, whatever the policy */
};
/* A process ended with wait status `status`, after garbage on its channel
 * (protocol_error, or NULL) and its crash handler's report (crash and its
 * ips, or NULL): f says how, its message in msg (f->ips into crash_ips). */
void mpg__death_failure(int status, const char *protocol_error,
			const struct mpg__crash_head *crash, const uint64_t *crash_ips,
			char *msg, size_t msglen, struct mpg__failure *f);
/* A raised error (mpg_raise(), a non-zero return): its message copied to
 * msg, its ips to ips. */
void mpg__raised_failure(const struct mpg__raised *r, char *msg, size_t msglen,
			 uint64_t ips[MPG_MAX_FRAMES], struct mpg__failure *f);
/* The error of a failure, its backtrace symbolized against mods. */
struct mpg__symcache;
mpg_error *mpg__failure_error(const struct mpg__failure *f, struct mpg__symcache *cache,
			      const struct mpg__modlist *mods, size_t task, int worker, pid_t pid,
			      unsigned attempts);

/* ---- minset.c: the smallest of the values jobs hold (0: none) --------- */
struct mpg__minset_entry {
	uint64_t v;
	size_t n;              /* jobs holding v */
};
struct mpg__minset {
	struct mpg__minset_entry *e;
	size_t len, cap;
};
int mpg__minset_add(struct mpg__minset *s, uint64_t v); /* 0 or -ENOMEM */
void mpg__minset_del(struct mpg__minset *s, uint64_t v);
uint64_t mpg__minset_min(const struct mpg__minset *s);
void mpg__minset_free(struct mpg__minset *s);

/* ---- fd registry: parent-side fds every forked child closes (atfork) --- */
/* libmpguard's own copy of the registry (libmplog/src/fdreg.c), which
 * libmplog's fds are not in: each library registers what it opens. */
static inline void mpg__fdreg_add(int fd) { mpk_fdreg_add(fd); }
static inline void mpg__fdreg_del(int fd) { mpk_fdreg_del(fd); }
/* Unregister and close *fd, then set it to -1; nothing when it is -1. */
static inline void mpg__fdreg_close(int *fd) { mpk_fdreg_close(fd); }

/* logpipe.c: one worker's or service's pipes to aggregator a (none when a
 * is NULL): io[0] its records, io[1]/io[2] its stdout/stderr when capture
 * (MPG_CAPTURE_*) asks, io[3] the ring of its records (a memfd), -1 where
 * none; the read ends become channels named name, stamped with worker;
 * capture_ch gets the ids of the stdout and stderr channels (0: none).
 * Returns 0, or the negative errno of the first channel that could not be
 * made (the others are made). */
#define MPG_LOG_FDS 4
int mpg__log_pipes_open(mplog_aggregator *a, const char *name, int worker, unsigned capture,
			int io[MPG_LOG_FDS], unsigned capture_ch[2]);
/* Close the write ends once the spawn request has passed them on. */
void mpg__log_pipes_close(int io[MPG_LOG_FDS]);
/* Stamp the captured channels' lines with the child's pid, known once it
 * is forked; returns whether it has any. */
bool mpg__log_pipes_set_pid(mplog_aggregator *a, const unsigned capture_ch[2], pid_t pid);

/* parentlog.c: w (a pool's or supervisor's in-process writer) takes the
 * parent's own default-writer records while it exists, when the caller
 * set no default writer; remove before freeing it. */
void mpg__parent_log_add(mplog_writer *w);
void mpg__parent_log_remove(mplog_writer *w);

/* ---- shared memory ---------------------------------------------------- */
int mpg__memfd_from_bytes(const void *data, size_t len, int *ret_fd);
/* If [p, p+len) lies inside an mpg_shm_alloc() block: a dup of its fd and the
 * offset. Returns 1 found, 0 not, <0 errno. */
int mpg__shm_lookup(const void *p, size_t len, int *ret_fd, uint64_t *ret_off);
/* Map [off, off+len) of fd; returns the pointer to byte off, sets the base
 * and length to munmap. */
void *mpg__map_fd(int fd, uint64_t off, size_t len, int prot, void **base, size_t *maplen);

/* Worker status, in memory shared by parent and workers: the parent reads
 * it after a worker died to know which task was running. */
enum { WS_IDLE = 0, WS_RUNNING = 1, WS_SENDING = 2 };
/* Why a worker is paused (pause.c). */
enum { WP_NONE = 0, WP_START = 1, WP_CRASH = 2 };
struct mpg__wstatus {
	_Atomic uint32_t state;
	_Atomic uint64_t job;
	_Atomic uint64_t index;
	_Atomic uint64_t tasks_done;
	/* Control requests from the parent (control.c), served by the worker
	 * (pause.c): bump ctl_seq and wake it, and signal a running worker. */
	_Atomic uint32_t paused;      /* WP_* */
	_Atomic uint32_t ctl_seq;     /* futex: a request is waiting */
	_Atomic uint32_t resume;      /* 1: leave the pause */
	_Atomic int32_t ptracer;      /* grant ptrace to this pid (PR_SET_PTRACER) */
	_Atomic uint32_t ptracer_req; /* bumped by the parent for each grant */
	_Atomic uint32_t ptracer_ack; /* futex: = ptracer_req once served */
	_Atomic int32_t ptracer_err;  /* its errno, 0 on success */
	_Atomic uint32_t crashing;    /* in its crash handler: no time limit now */
};
_Static_assert(sizeof(struct mpg__wstatus) == 64, "one cache line per worker");

/* ---- pause and ptrace grants, worker side (pause.c) ------------------- */
/* The signal the parent sends a worker to serve a ptrace grant now. */
#define MPG_CONTROL_SIGNAL SIGURG
int mpg__pause_install(struct mpg__wstatus *st);
/* Pause (WP_START or WP_CRASH) until resumed, the timeout, or a debugger
 * attached and let the worker run. Async-signal-safe. */
void mpg__pause(uint32_t why, unsigned timeout_ms);
/* From the crash handler: the time a crash report takes is not the task's. */
void mpg__status_crashing(void);

/* ---- fork server ------------------------------------------------------ */
struct mpg__service { /* a supervised service, as its worker sees it */
	mpg_service_fn fn;
	void *userdata;
	const char *name;
};

struct mpg__wconfig { /* what a worker needs; fixed at pool creation */
	const struct mpg__service *services; /* a supervisor's, else NULL */
	void *userdata;
	size_t shm_threshold;
	struct mpg__wstatus *status; /* array, one per slot */
	sigset_t sigmask;            /* the creating thread's mask */
	unsigned nworkers;
	bool close_fds;              /* the server keeps only stdio and its socket */
	unsigned pause;              /* MPG_PAUSE_* */
	unsigned pause_timeout_ms;
	pid_t pool_pid;              /* the pool's registry name, for messages: */
	unsigned pool_seq;           /* "<pool_pid>.<pool_seq>" */
};

/* Start the fork server. On success *ret_fd is the parent's end of the
 * control socket and *ret_pid the server's pid. */
int mpg__forkserver_start(const struct mpg__wconfig *cfg, int *ret_fd, pid_t *ret_pid);
/* A worker's end of its channel to the parent. A pool's workers read
 * frames from one pipe and write them to another (pipes cost a fraction
 * of a unix socket per message); the socket carries only the fds frames
 * refer to, each sent before its frame. A service has the socket alone:
 * in == out == sock. */
struct mpg__wchan {
	int in, out, sock;
};
#define MPG_FS_MAX_FDS 7 /* a worker's socket, two frame pipes, log, stdout, stderr, ring */
int mpg__fs_recv(int sock, struct mpg__fsmsg *m, int fds[MPG_FS_MAX_FDS], int flags);
/* ch: the worker's end (the fork server passes it on and closes it); io:
 * its log, stdout, stderr pipe write ends and log ring, -1 for none; or
 * NULL. */
int mpg__fs_request_spawn(int ctl, unsigned slot, const struct mpg__wchan *ch,
			  const int io[MPG_LOG_FDS]);
int mpg__fs_request_kill(int ctl, unsigned slot, pid_t pid, int sig);
/* worker.c: true in a worker or a service. */
extern bool mpg__in_worker;
/* Worker main, in the freshly forked worker. Never returns. */
_Noreturn void mpg__worker_main(const struct mpg__wconfig *cfg, unsigned slot,
				const struct mpg__wchan *ch, const int io[MPG_LOG_FDS]);

/* ---- parent-side pool ------------------------------------------------- */
enum job_kind { JOB_MAP, JOB_ARRAY, JOB_IMAP, JOB_SUBMIT };
enum item_state { ITEM_PENDING = 0, ITEM_OK, ITEM_FAILED, ITEM_CANCELLED };

struct blob { /* memory holding result bytes */
	struct blob *next;
	void *mem;
	size_t len;
	size_t refs;    /* IMAP: results not consumed yet */
	bool mapped;
};

struct redo { /* a range of tasks to (re)dispatch */
	size_t first;
	size_t count;
	unsigned attempts; /* runs that failed so far */
	unsigned lost;     /* times lost with a worker, nobody to blame */
	int avoid;         /* worker slot to avoid, or -1 */
};

struct slotref {
	const void *data;
	size_t len;
};

struct ready { /* a finished task of an imap, waiting for mpg_iter_next() */
	size_t index;
	const void *data;
	size_t len;
	mpg_error *err;
	struct blob *blob;
};

/* ---- progress (progress.c) -------------------------------------------- */
enum bar_out { BAR_NONE = 0, BAR_TTY, BAR_PLAIN }; /* what the bar draws, resolved */

/* The progress of one call, or of the pool's submit batch. Counts and
 * deadlines under the pool lock. */
struct mpg__progress {
	mpg_progress_fn fn;
	void *userdata;
	uint64_t interval_ns;
	enum bar_out bar;
	enum job_kind kind;
	bool on;                    /* tracking */
	size_t total, done, failed, retried;
	size_t kinds[8];            /* failed, by mpg_error_kind */
	uint64_t start_ns;
	uint64_t next_cb, next_bar; /* on a grid of intervals from start_ns */
	uint64_t rate_ns;           /* last rate sample */
	size_t rate_done;
	double rate;                /* smoothed tasks/s, < 0 before the first sample */
};

/* One report to deliver (without the lock) on the dispatcher thread. */
struct mpg__progress_note {
	mpg_progress snap;
	mpg_progress_fn fn;         /* NULL: bar only */
	void *userdata;
	enum bar_out bar;           /* BAR_NONE: callback only */
	enum job_kind kind;
	const void *key;            /* the tracker: which bar */
};

/* A call's tasks: a common part (identity, scheduling, counts, life),
 * then what each kind of call adds. */
struct job {
	/* ---- every kind ---- */
	struct job *next, *prev;    /* the pool's list of jobs not ended */
	struct mpg_pool *pool;
	uint64_t id;
	uint64_t base;              /* what the user calls task 0: 0, or a
				     * submitted task's number (mpg_submit()) */
	enum job_kind kind;
	mpg_task_fn fn;
	struct mpg__callcfg cfg;
	size_t n;
	/* scheduling */
	size_t cursor;              /* next never-dispatched task */
	struct redo *redo;          /* FIFO of ranges to re-run */
	size_t nredo, redo_head, redo_cap;
	double ns_per_task;         /* measured, < 0 unknown */
	double result_bytes;        /* measured mean result size */
	/* outcome */
	size_t remaining;           /* tasks not ended */
	size_t nfailed;
	struct blob *blobs;         /* result memory the job keeps */
	mpg_error_fn on_error;      /* SUBMIT's own, else NULL */
	void *userdata;
	unsigned pending_callbacks;
	struct mpg__progress prog;  /* MAP, ARRAY, IMAP: the call's progress */
	struct mpg__progress *pr;   /* &prog, the pool's submit batch, or NULL */
	uint64_t tick_ns;           /* its progress interval in the pool's set, or 0 */
	/* life */
	bool progress_ended;        /* its end was seen by the progress tracker */
	bool cancelled;             /* pool aborted/terminated: stop */
	bool done;
	bool user_gone;             /* iterator/future freed by the user */
	bool fed;                   /* its tasks run elsewhere (fed.c) */
	bool fed_held;              /* and its feeder may still touch it: not
				     * freed, and a map not returned, until
				     * released (mpg__fed_release()) */

	/* ---- MAP and IMAP: the caller's buffers ---- */
	struct {
		const mpg_buf *inputs;
	};
	/* ---- ARRAY: the caller's arrays, results written in place ---- */
	struct {
		const uint8_t *in_base;
		size_t in_size;
		uint8_t *out_base;
		size_t out_size;
	};
	/* ---- MAP and ARRAY: per-task outcome until the call returns ---- */
	struct {
		uint8_t *state;             /* enum item_state per task */
		struct slotref *slots;      /* MAP (and SUBMIT's one result) */
		mpg_error **errors;
		size_t nerrors, errors_cap;
	};
	/* ---- IMAP: finished tasks waiting for mpg_iter_next() ---- */
	struct {
		struct ready *ready;
		size_t nready, ready_head, ready_cap;
	};
	/* ---- SUBMIT: one task, its input owned, its future ---- */
	struct {
		void *owned_in;             /* copy of a small input */
		size_t owned_len;
		int owned_fd;               /* memfd of a large input, or -1 */
		uint64_t owned_off;
		mpg_error *error;
		mpg_result_fn on_result;
	};
};

struct outframe {
	struct outframe *next;
	uint8_t *data;              /* header and fields, owned */
	size_t len, sent;           /* len counts ext too */
	const uint8_t *ext;         /* then bytes sent in place from the caller's
				     * array (mpg_map_array blocks until done) */
	size_t ext_len;
	int fds[MPG_CHUNK_MAX_FDS];
	unsigned nfds;
	bool fds_sent;              /* on the socket, ahead of the frame */
};

struct chunk {
	struct chunk *next;
	struct job *job;
	size_t first;
	size_t count;
	size_t done;                /* results received so far */
	unsigned attempts;
	unsigned lost;
	int avoid;                  /* slot a retried task should not return to */
};

enum wstate { W_EMPTY, W_SPAWNING, W_READY, W_DRAINING, W_DEAD };

/* One worker slot and the process in it, grouped by who uses what: the
 * process (wio.c), its socket and frames (wio.c, results.c), the work out
 * (schedule.c), its time limit (timelimit.c), and what explains its death
 * (results.c, blame.c). */
struct mpg__arena_head;
struct worker {
	/* ---- the process ---- */
	struct {
		unsigned slot;
		enum wstate state;
		pid_t pid;
		int pidfd;
		uint64_t spawn_ns;
		uint64_t ready_ns;          /* its hello: set up, ready for tasks */
		unsigned restarts;
		unsigned start_failures;    /* failed starts in a row (respawn.c) */
		int start_err;              /* the errno of the last */
		uint64_t start_at;          /* W_EMPTY after one: when to try again */
		bool retiring;              /* max_tasks reached: socket closed */
		bool killed_by_pool;        /* abort, terminate, fork server lost */
		unsigned capture_ch[2];     /* aggregator channels of its stdout, stderr */
		struct mpg__modlist modules;/* what it has loaded, for symbolization */
	};
	/* ---- its channel: frames out on one pipe and in on another, the
	 * fds they carry on a socket (see struct mpg__wchan) ---- */
	struct {
		int to, from, sock;
		bool want_out;              /* EPOLLOUT armed on to */
		bool want_sock_out;         /* and on sock, for fds */
		bool from_eof;
		struct outframe *out_head, *out_tail;
		struct mpk_buf in;
		int fdq[2 * MPG_CHUNK_MAX_FDS];
		unsigned nfdq;
		int arena;                  /* its result arena (memfd), or -1 */
		struct mpg__arena_head *arena_head; /* mapped, to release; or NULL */
		uint32_t refs_read;         /* RESULT_IN_ARENA frames read from it */
		bool fds_lost;              /* fds it sent found none free here (EMFILE) */
	};
	/* ---- its work ---- */
	struct {
		struct chunk *inflight_head, *inflight_tail;
		unsigned ninflight;
		uint64_t tasks_sent;
		uint64_t tasks_done;        /* results received from this process */
		uint64_t last_result_ns;    /* when the last of them came */
		uint64_t ctx_job;           /* job whose context this worker holds */
	};
	/* ---- its time limit: the task seen running at the last tick ---- */
	struct {
		uint64_t watch_job, watch_index, watch_done, watch_since;
		bool timing_out;            /* SIGXCPU sent, SIGKILL at timeout_deadline */
		bool timeout_killed;        /* that SIGKILL sent: a SIGKILL death is ours */
		uint64_t timeout_deadline;
		unsigned timeout_ms;
		bool have_stack;            /* where the timed-out task was stuck */
		uint32_t stack_nips;
		uint64_t stack_ips[MPG_MAX_FRAMES];
	};
	/* ---- what explains its death ---- */
	struct {
		bool crashed;               /* its crash handler reported */
		struct mpg__crash_head crash;
		uint64_t crash_ips[MPG_MAX_FRAMES];
		char *protocol_error;       /* a malformed frame: why */
		size_t garbage_run;         /* bytes of the first garbage it wrote */
		bool garbage_open;          /* that garbage may go on */
		struct {                    /* the task running when it was seen */
			bool set;
			uint64_t job, index;
		} culprit;
		bool culprit_failed;        /* and it failed for it */
		bool starved;               /* killed: no fd free here for its results */
	};
};

enum pool_state { POOL_RUNNING, POOL_CLOSED, POOL_ABORTING, POOL_TERMINATING, POOL_STOPPED };

struct delivery { /* a callback to run without the lock */
	struct job *job;
	mpg_error *err;             /* error callback if set, else result */
	const void *data;
	size_t len;
	size_t index;
	mpg_error_fn error_fn;
	void *error_userdata;
	bool free_err;
	bool retrying;              /* err is a failed attempt to be retried: log only */
	struct mpg__progress_note *note; /* a progress report, owned */
};

struct mpg_pool {
	_Atomic unsigned refs;      /* the user's, plus one per live iterator/future */
	bool thread_joined;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pid_t creator;
	pthread_t thread;
	bool thread_started;
	enum pool_state state;
	bool closed;                /* no more submissions */
	bool join_requested;
	bool broken;                /* fork server lost */
	bool spawned_initial;       /* the dispatcher asked for the first workers */
	bool is_default;            /* mpg_pool_default()'s: the library's, never the caller's */
	uint64_t start_kick_job;    /* the last job that made waiting slots try at once */
	unsigned start_waiting;     /* slots waiting to try again (start_at set) */

	struct mpg_options opts;    /* pool defaults */
	struct mpg__wconfig wcfg;
	unsigned nworkers;
	struct worker *workers;
	unsigned live_workers;      /* spawning or ready or draining */

	int epfd, evfd, ctlfd, timerfd;
	uint64_t tick_ns;           /* timer period armed now, 0: off */
	pid_t server_pid;

	struct job *jobs_head, *jobs_tail;
	bool wake_waiters;          /* results or a job's end came this round */
	/* Calls hand their jobs in here, under incoming_lock alone: the
	 * dispatcher holds the pool lock through a round, and a submitting
	 * thread waiting for it cost two futex calls a submit. The
	 * dispatcher takes them in (mpg__take_incoming()) after each
	 * round's callbacks. */
	pthread_mutex_t incoming_lock;
	struct job *incoming_head, *incoming_tail;
	bool refusing;              /* under incoming_lock: closed, stopping or broken */
	atomic_bool dispatcher_asleep; /* in epoll_wait(): a new job must wake it */
	struct mpg__minset timeouts;     /* the jobs' time limits, ms */
	struct mpg__minset progress_ns;  /* the calls' progress intervals */
	struct job *graveyard;      /* ended jobs nobody holds: freed between rounds */
	uint64_t next_job_id;
	uint64_t next_submit;       /* the number the next submitted task gets (incoming_lock) */
	mpg_error *abort_error;
	int exit_status_on_abort;   /* -1: none */

	struct delivery *deliveries;
	size_t ndeliveries, deliveries_cap;

	mpg_stats stats;
	struct mpg__symcache symcache; /* dispatcher thread only */
	mplog_aggregator *log;      /* where workers' mplog_* records go, or NULL */
	mplog_writer *log_writer;   /* the pool's own records: task errors */
	bool own_log;               /* created by the pool (else the caller's) */
	mplog_sink *log_sink;       /* own_log: its default sink (stderr), or NULL;
	                             * an MPI agent takes it out (cluster-log.c) */
	struct mpg__control *control; /* the registered control socket, or NULL */
	mpg_task_fn last_fn;        /* the last task function timed, and its cost: */
	double last_ns_per_task;    /* a new call of the same function starts there */
	struct mpg__progress subprog; /* the submit batch */
	const void *bar_owner;      /* tracker whose bar is drawn (dispatcher only) */
};

/* control.c: the control socket for mpattach and mplog live (control-int.h) */
struct mpg__control;
/* options.c: MPKIT_PAUSE=start|crash|start,crash and
 * MPKIT_PAUSE_TIMEOUT=seconds, for programs that did not choose. */
void mpg__pause_from_env(unsigned *flags, unsigned *timeout_ms);

/* pool.c */
/* -EINVAL without a pool, -ECHILD in a worker or a forked child, else 0. */
int mpg__check_caller(const struct mpg_pool *p);
/* Cancel what has not ended, reap the workers, join the dispatcher (as
 * mpg_pool_terminate(), unchecked). Not on the dispatcher thread. */
void mpg__pool_stop(struct mpg_pool *p);
/* Drop a reference (the user's, an iterator's, a future's); the last frees. */
void mpg__pool_unref(struct mpg_pool *p);

/* dispatch.c: the dispatcher thread (its files talk through dispatch-int.h) */
void *mpg__dispatcher_main(void *arg);
void mpg__pool_wake(struct mpg_pool *p);
bool mpg__on_dispatcher(struct mpg_pool *p);
void mpg__pool_cancel_all(struct mpg_pool *p, bool abort);

/* outcome.c; with the lock */
void mpg__job_maybe_done(struct mpg_pool *p, struct job *job);
void mpg__pool_bury(struct mpg_pool *p);
int mpg__add_delivery(struct mpg_pool *p, const struct delivery *d);

/* progress.c; all with the lock held but _deliver and _bar_clear. */
void mpg__progress_start(struct mpg_pool *p, struct job *job);
void mpg__progress_tick(struct mpg_pool *p, uint64_t now);
uint64_t mpg__progress_tick_ns(const struct mpg_pool *p);
/* The job's tasks all ended: queue the final report if due; true if queued
 * (the job ends after it is delivered). */
bool mpg__progress_final(struct mpg_pool *p, struct job *job);
/* Tasks that end without running (cancelled, dropped). */
void mpg__progress_cancelled(struct job *job, size_t n);
void mpg__progress_deliver(struct mpg_pool *p, const struct mpg__progress_note *n);
void mpg__progress_bar_clear(struct mpg_pool *p);

/* For tools (mpattach list): tasks ended and tasks in all, summed over the
 * calls running now (maps, iterators not done, submitted tasks not ended);
 * 0 and 0 when idle. From any thread of the parent not holding the pool
 * lock. */
void mpg__pool_progress(struct mpg_pool *p, uint64_t *done, uint64_t *total);

/* job.c */
struct job *mpg__job_new(enum job_kind kind, mpg_task_fn fn, size_t n);
/* Wait for a map job handed in, and make it the results (as mpg_map()
 * returns); frees the job unless it became them. */
int mpg__map_wait(struct mpg_pool *p, struct job *job, mpg_results **ret);
/* The user's handles of an IMAP and a SUBMIT job (a pool reference each). */
mpg_iter *mpg__iter_new(struct mpg_pool *p, struct job *job);
mpg_future *mpg__future_new(struct mpg_pool *p, struct job *job);
int mpg__callcfg_resolve(const struct mpg_pool *p, const mpg_options *call, struct mpg__callcfg *ret);
void mpg__callcfg_clear(struct mpg__callcfg *c);
void mpg__job_free(struct job *job);
void mpg__blob_free(struct blob *b);
/* Hand a job to the dispatcher (any thread): 0, or -ESHUTDOWN once the
 * pool refuses new jobs. */
int mpg__pool_enqueue(struct mpg_pool *p, struct job *job);
/* No job is handed in from now on (close, stop, a lost fork server). */
void mpg__pool_refuse(struct mpg_pool *p);
/* Whether jobs wait to be taken; take them into the pool's list (with the
 * pool lock: the dispatcher each round, a thread that must find its job
 * there). */
bool mpg__incoming_pending(struct mpg_pool *p);
void mpg__take_incoming(struct mpg_pool *p);

/* sized.c: structs the caller hands in with their size first (mpg_stats,
 * mpg_worker_info). The smallest size each accepts: all the fields of
 * version 0.1 (a caller that forgot to set it gets -EINVAL). */
#define MPG_STATS_SIZE_0_1 (offsetof(mpg_stats, tasks_rescued) + sizeof(uint64_t))
#define MPG_WORKER_INFO_SIZE_0_1 (offsetof(mpg_worker_info, task) + sizeof(size_t))
/* Copy src (known bytes, its size field first) to dst: no more than the
 * size dst says it has, its size set to the bytes filled, nothing past
 * them. dst's size was checked against the minimum. */
void mpg__copy_sized(void *dst, const void *src, size_t known);

/* clock.c: CLOCK_MONOTONIC in ns; async-signal-safe */
uint64_t mpg__now_ns(void);
/* *dl = timeout_ms from now on CLOCK_MONOTONIC (the pool's cond), for
 * pthread_cond_timedwait(); a negative timeout leaves it now (unused). */
void mpg__deadline_after_ms(struct timespec *dl, int timeout_ms);
