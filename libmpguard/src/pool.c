/* SPDX-License-Identifier: MIT */
/* The pool's lifecycle: create (fork server, dispatcher thread, workers),
 * close, join, terminate, free, and its introspection calls. */
#include "dispatch-int.h"
#include "control-int.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

int mpg__check_caller(const struct mpg_pool *p)
{
	if (!p)
		return -EINVAL;
	if (mpg__in_worker || getpid() != p->creator)
		return -ECHILD;
	return 0;
}

static unsigned cpu_count(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static void pool_release(struct mpg_pool *p)
{
	mpg__control_stop(p->control); /* first: it reads the workers and uses the log */
	p->control = NULL;
	mpg__pool_bury(p);
	mpg__parent_log_remove(p->log_writer);
	mplog_writer_free(p->log_writer);
	if (p->own_log)
		mplog_aggregator_free(p->log); /* drains every worker's last records */
	mpg__symcache_free(&p->symcache);
	mpg__minset_free(&p->timeouts);
	mpg__minset_free(&p->progress_ns);
	if (p->workers) {
		for (unsigned i = 0; i < p->nworkers; i++) {
			mpk_buf_free(&p->workers[i].in);
			mpg__modlist_free(&p->workers[i].modules);
			free(p->workers[i].protocol_error);
			mpg__worker_close_arena(&p->workers[i]); /* closed at its death, else here */
		}
		free(p->workers);
	}
	mpg__fdreg_close(&p->epfd);
	mpg__fdreg_close(&p->evfd);
	mpg__fdreg_close(&p->timerfd);
	mpg__fdreg_close(&p->ctlfd);
	if (p->server_pid > 0)
		while (waitpid(p->server_pid, NULL, 0) < 0 && errno == EINTR)
			;
	if (p->wcfg.status)
		munmap(p->wcfg.status, sizeof(struct mpg__wstatus) * p->nworkers);
	mpg__error_free(p->abort_error);
	free(p->opts.context);
	free(p->deliveries);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->incoming_lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

void mpg__pool_unref(struct mpg_pool *p)
{
	if (p && atomic_fetch_sub(&p->refs, 1) == 1)
		pool_release(p);
}

/* The default: an aggregator of the pool's own, text to stderr (the
 * journal's fields when stderr is the journal), if
 * stderr was open when mpg_pool_new() began (else one of the pool's own
 * fds may hold number 2 now, and no text must go there). */
static int setup_log(struct mpg_pool *p, bool have_stderr)
{
	if (p->opts.set & OPT_LOG) {
		p->log = p->opts.log;
		int r = p->log ? mplog_aggregator_writer(p->log, &p->log_writer) : 0;
		mpg__parent_log_add(p->log_writer); /* the parent's mplog_info() too */
		return r;
	}
	mplog_sink *sink;
	int r = mplog_aggregator_new(&p->log);
	if (r < 0)
		return r;
	p->own_log = true;
	if (have_stderr) {
		r = mplog_sink_new_stderr(MPLOG_SINK_COLOR_AUTO, &sink); /* or the journal */
		if (r < 0)
			return r;
		r = mplog_aggregator_add_sink(p->log, sink);
		if (r < 0)
			return r;
		p->log_sink = sink;
	}
	r = mplog_aggregator_writer(p->log, &p->log_writer);
	if (r < 0)
		return r;
	mpg__parent_log_add(p->log_writer); /* the parent's mplog_info() too */
	return mplog_aggregator_start(p->log);
}

/* ---- what the control socket shows (control-int.h) ---------------------- */

static mpg_worker_state worker_state_of(const struct worker *w, const struct mpg__wstatus *ws)
{
	if (w->state == W_SPAWNING)
		return MPG_WORKER_STARTING;
	if (w->state != W_READY && w->state != W_DRAINING)
		return MPG_WORKER_DOWN;
	if (atomic_load_explicit(&ws->paused, memory_order_relaxed) != WP_NONE)
		return MPG_WORKER_PAUSED;
	uint32_t st = atomic_load_explicit(&ws->state, memory_order_relaxed);
	return st == WS_IDLE && !w->ninflight ? MPG_WORKER_IDLE : MPG_WORKER_BUSY;
}

static const char *worker_state(const struct worker *w, const struct mpg__wstatus *ws)
{
	static const char *const names[] = {
		[MPG_WORKER_DOWN] = "down", [MPG_WORKER_STARTING] = "starting",
		[MPG_WORKER_IDLE] = "idle", [MPG_WORKER_BUSY] = "busy",
		[MPG_WORKER_PAUSED] = "paused",
	};
	return names[worker_state_of(w, ws)];
}

/* With the lock: the user's number of task 0 of call `job` that worker w
 * runs (a submitted task's own number), 0 when it is not among its chunks. */
static uint64_t task_base(const struct worker *w, uint64_t job)
{
	for (const struct chunk *c = w->inflight_head; c; c = c->next)
		if (c->job->id == job)
			return c->job->base;
	return 0;
}

static const char *pool_state_name(enum pool_state s)
{
	switch (s) {
	case POOL_RUNNING: return "running";
	case POOL_CLOSED: return "closed";
	case POOL_ABORTING: return "aborting";
	case POOL_TERMINATING: return "terminating";
	case POOL_STOPPED: return "stopped";
	}
	return "?";
}

static void control_snapshot(void *obj, struct mpg__ctl_summary *sum, struct mpg__ctl_slot *slots)
{
	struct mpg_pool *p = obj;
	uint64_t now = mpg__now_ns();
	*sum = (struct mpg__ctl_summary){.counts_tasks = true};
	mpg__pool_progress(p, &sum->tasks_done, &sum->tasks_total); /* takes the lock */
	pthread_mutex_lock(&p->lock);
	sum->state = pool_state_name(p->state);
	sum->tasks_failed = p->stats.tasks_failed;
	for (unsigned i = 0; i < p->nworkers; i++) {
		const struct worker *w = &p->workers[i];
		const struct mpg__wstatus *ws = &p->wcfg.status[i];
		bool up = w->state == W_READY || w->state == W_DRAINING;
		const char *state = worker_state(w, ws);
		slots[i] = (struct mpg__ctl_slot){
			.pid = up ? w->pid : 0,
			.grantable = w->state == W_READY,
			.state = state,
			.uptime_ms = up && w->ready_ns && now > w->ready_ns ?
					     (now - w->ready_ns) / 1000000u : 0,
			.restarts = w->restarts,
			.counts_tasks = true,
			.tasks_done = w->tasks_done,
		};
		if (up && (strcmp(state, "busy") == 0 || strcmp(state, "paused") == 0) &&
		    atomic_load_explicit(&ws->state, memory_order_relaxed) != WS_IDLE) {
			slots[i].has_task = true;
			slots[i].job = atomic_load_explicit(&ws->job, memory_order_relaxed);
			slots[i].task = atomic_load_explicit(&ws->index, memory_order_relaxed) +
					task_base(w, slots[i].job);
		}
	}
	pthread_mutex_unlock(&p->lock);
}

/* The control thread's signal (a ptrace grant, a resume), to the worker
 * its snapshot showed: only if the slot still holds that process, and
 * through its pidfd or the fork server (mpg__worker_signal()), never by a
 * pid that may have been reused since. */
static int control_signal(void *obj, unsigned slot, pid_t pid, int sig)
{
	struct mpg_pool *p = obj;
	int r = -ESRCH;
	pthread_mutex_lock(&p->lock);
	if (slot < p->nworkers) {
		struct worker *w = &p->workers[slot];
		if (w->state != W_EMPTY && w->pid == pid && pid > 0) {
			mpg__worker_signal(p, w, sig);
			r = 0;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

static int start_control(struct mpg_pool *p)
{
	struct mpg__ctl_target t = {
		.kind = "pool",
		.slot_noun = "worker",
		.pid = p->creator,
		.seq = p->wcfg.pool_seq,
		.nslots = p->nworkers,
		.status = p->wcfg.status,
		.pause = p->wcfg.pause,
		.log = p->log,
		.obj = p,
		.snapshot = control_snapshot,
		.signal = control_signal,
	};
	return mpg__control_start(&t, &p->control);
}

static void wait_stopped(struct mpg_pool *p);

/* With the lock held, once the first starts are settled: 0 if a worker
 * runs, else why none does (every start failed, or the fork server died). */
static int start_error(const struct mpg_pool *p)
{
	if (p->live_workers)
		return 0;
	int err = p->broken ? EPIPE : EAGAIN;
	uint64_t latest = 0;
	for (unsigned i = 0; i < p->nworkers; i++) {
		const struct worker *w = &p->workers[i];
		if (w->start_failures && w->start_at >= latest) {
			latest = w->start_at;
			err = w->start_err;
		}
	}
	return -err;
}

MPG_EXPORT int mpg_pool_new(const mpg_options *opts, mpg_pool **ret)
{
	if (!ret)
		return -EINVAL;
	if (mpg__in_worker)
		return -ECHILD;
	bool have_stderr = fcntl(STDERR_FILENO, F_GETFD) >= 0; /* before any fd of ours */
	struct mpg_pool *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	atomic_init(&p->refs, 1);
	p->epfd = p->evfd = p->ctlfd = p->timerfd = -1;
	p->exit_status_on_abort = -1;
	p->creator = getpid();
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->incoming_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);

	int r = 0;
	if (opts) {
		p->opts = *opts;
		p->opts.context = NULL; /* per-call only */
		p->opts.context_len = 0;
		p->opts.set &= ~(unsigned)OPT_CONTEXT;
	} else {
		p->opts.abort_exit = -1;
	}
	if (!(p->opts.set & OPT_SHM_THRESHOLD))
		p->opts.shm_threshold = MPG_DEFAULT_SHM_THRESHOLD;
	p->nworkers = (p->opts.set & OPT_WORKERS) ? p->opts.workers : cpu_count();
	if (p->nworkers > MPG_MAX_WORKERS)
		p->nworkers = MPG_MAX_WORKERS;

	p->workers = calloc(p->nworkers, sizeof *p->workers);
	if (!p->workers) {
		r = -ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < p->nworkers; i++)
		p->workers[i] = (struct worker){.slot = i, .to = -1, .from = -1, .sock = -1, .pidfd = -1, .arena = -1};

	/* Shared with every worker: which task each is running. */
	void *st = mmap(NULL, sizeof(struct mpg__wstatus) * p->nworkers, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (st == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	p->wcfg = (struct mpg__wconfig){
		.userdata = p->opts.userdata,
		.shm_threshold = p->opts.shm_threshold,
		.status = st,
		.nworkers = p->nworkers,
		.close_fds = p->opts.close_fds,
		.pause = p->opts.pause,
		.pause_timeout_ms = p->opts.pause_timeout_ms,
		.pool_pid = p->creator,
		.pool_seq = mpg__control_seq(),
	};
	if (!(p->opts.set & OPT_PAUSE))
		mpg__pause_from_env(&p->wcfg.pause, &p->wcfg.pause_timeout_ms);
	pthread_sigmask(SIG_SETMASK, NULL, &p->wcfg.sigmask);

	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	p->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (p->epfd < 0 || p->evfd < 0 || p->timerfd < 0) {
		r = -errno;
		goto fail;
	}
	mpg__fdreg_add(p->epfd);
	mpg__fdreg_add(p->evfd);
	mpg__fdreg_add(p->timerfd);

	r = mpg__forkserver_start(&p->wcfg, &p->ctlfd, &p->server_pid);
	if (r < 0)
		goto fail;
	/* After the fork server: it needs none of this, and its fork happens
	 * before the aggregator's thread exists. */
	r = setup_log(p, have_stderr);
	if (r < 0)
		goto fail;
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
	epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->evfd, &ev);
	ev.data.u64 = 1;
	epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->ctlfd, &ev);
	ev.data.u64 = 3;
	epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->timerfd, &ev);

	/* The dispatcher takes no signal meant for the program. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_mutex_lock(&p->lock);
	r = -pthread_create(&p->thread, &attr, mpg__dispatcher_main, p);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		pthread_mutex_unlock(&p->lock);
		goto fail;
	}
	p->thread_started = true;
	/* Wait for the first workers, so pids are known when we return. */
	for (;;) {
		bool spawning = !p->spawned_initial;
		for (unsigned i = 0; i < p->nworkers; i++)
			spawning |= p->workers[i].state == W_SPAWNING;
		if (!spawning || p->state == POOL_STOPPED || p->broken)
			break;
		pthread_cond_wait(&p->cond, &p->lock);
	}
	r = start_error(p);
	if (r < 0) {
		/* Not one worker: stop the dispatcher and the fork server (no
		 * child is left), release the rest. The failed starts are in
		 * the log. */
		mpg__pool_cancel_all(p, false);
		wait_stopped(p);
		goto fail;
	}
	pthread_mutex_unlock(&p->lock);
	if (mpg__control_wanted(p->opts.set & OPT_CONTROL, p->opts.control)) {
		r = start_control(p);
		if (r < 0 && p->log_writer)
			(void)mplog_writer_log(p->log_writer, MPLOG_WARN, NULL, 0, NULL, NULL, 0,
					       "pool runs without a control socket (no mpattach): %s",
					       strerror(-r));
	}
	*ret = p;
	return 0;

fail:
	pool_release(p);
	return r;
}

static void join_thread(struct mpg_pool *p)
{
	/* One caller joins the thread; others just saw POOL_STOPPED. */
	bool mine = false;
	pthread_mutex_lock(&p->lock);
	if (p->thread_started && !p->thread_joined) {
		p->thread_joined = true;
		mine = true;
	}
	pthread_mutex_unlock(&p->lock);
	if (mine)
		pthread_join(p->thread, NULL);
}

/* With the lock held: wake the dispatcher, wait until the pool stopped
 * (every worker reaped), then join its thread. Returns unlocked. */
static void wait_stopped(struct mpg_pool *p)
{
	mpg__pool_wake(p);
	while (p->state != POOL_STOPPED)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	join_thread(p);
}

MPG_EXPORT int mpg_pool_close(mpg_pool *p)
{
	int r = mpg__check_caller(p);
	if (r < 0)
		return r;
	if (p->is_default)
		return -EPERM; /* the library's: other threads may use it */
	/* Refused first: a job handed in before is in the incoming list when
	 * the dispatcher sees the pool closed, and it takes that list first. */
	mpg__pool_refuse(p);
	pthread_mutex_lock(&p->lock);
	p->closed = true;
	if (p->state == POOL_RUNNING)
		p->state = POOL_CLOSED;
	pthread_mutex_unlock(&p->lock);
	mpg__pool_wake(p);
	return 0;
}

MPG_EXPORT int mpg_pool_join(mpg_pool *p)
{
	int r = mpg__check_caller(p);
	if (r < 0)
		return r;
	if (p->is_default)
		return -EPERM;
	if (mpg__on_dispatcher(p))
		return -EDEADLK;
	pthread_mutex_lock(&p->lock);
	if (p->state == POOL_RUNNING) {
		pthread_mutex_unlock(&p->lock);
		return -EINVAL;
	}
	p->join_requested = true;
	wait_stopped(p);
	return 0;
}

void mpg__pool_stop(struct mpg_pool *p)
{
	pthread_mutex_lock(&p->lock);
	mpg__pool_cancel_all(p, false);
	wait_stopped(p);
}

MPG_EXPORT int mpg_pool_terminate(mpg_pool *p)
{
	int r = mpg__check_caller(p);
	if (r < 0)
		return r;
	if (p->is_default)
		return -EPERM;
	if (mpg__on_dispatcher(p))
		return -EDEADLK;
	mpg__pool_stop(p);
	return 0;
}

MPG_EXPORT void mpg_pool_free(mpg_pool *p)
{
	if (mpg__check_caller(p) < 0 || mpg__on_dispatcher(p) || p->is_default)
		return; /* not ours to stop: a forked child's copy, or the default pool */
	mpg__pool_stop(p);
	if (p->log)
		mplog_aggregator_flush(p->log); /* every worker's last records, now */
	mpg__pool_unref(p);
}

MPG_EXPORT unsigned mpg_pool_workers(const mpg_pool *p)
{
	return p ? p->nworkers : 0;
}

MPG_EXPORT pid_t mpg_pool_worker_pid(mpg_pool *p, unsigned slot)
{
	int r = mpg__check_caller(p);
	if (r < 0)
		return r;
	if (slot >= p->nworkers)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	pid_t pid = p->state == POOL_STOPPED ? -ESRCH :
		    p->workers[slot].state == W_READY ? p->workers[slot].pid : 0;
	pthread_mutex_unlock(&p->lock);
	return pid;
}

MPG_EXPORT int mpg_pool_worker_info(mpg_pool *p, unsigned slot, mpg_worker_info *ret)
{
	int r = mpg__check_caller(p);
	if (r < 0)
		return r;
	if (slot >= p->nworkers || !ret)
		return -EINVAL;
	if (ret->size < MPG_WORKER_INFO_SIZE_0_1)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	const struct worker *w = &p->workers[slot];
	const struct mpg__wstatus *ws = &p->wcfg.status[slot];
	if (p->state == POOL_STOPPED) {
		pthread_mutex_unlock(&p->lock);
		return -ESRCH;
	}
	mpg_worker_info wi = {
		.pid = w->state == W_READY ? w->pid : 0,
		.restarts = w->restarts,
		.tasks_done = w->tasks_done,
		.ready_ns = w->state == W_READY ? w->ready_ns : 0, /* 0: still setting up */
		.state = worker_state_of(w, ws),
	};
	/* The task as the worker published it; a worker between tasks shows
	 * none, even with chunks queued (busy: it is about to run one). */
	if ((wi.state == MPG_WORKER_BUSY || wi.state == MPG_WORKER_PAUSED) &&
	    atomic_load_explicit(&ws->state, memory_order_relaxed) != WS_IDLE) {
		wi.call = atomic_load_explicit(&ws->job, memory_order_relaxed);
		wi.task = (size_t)(atomic_load_explicit(&ws->index, memory_order_relaxed) +
				   task_base(w, wi.call));
	}
	pthread_mutex_unlock(&p->lock);
	mpg__copy_sized(ret, &wi, sizeof wi);
	return 0;
}

MPG_EXPORT mplog_aggregator *mpg_pool_log(mpg_pool *p)
{
	return p ? p->log : NULL;
}

MPG_EXPORT const mpg_error *mpg_pool_abort_error(mpg_pool *p)
{
	if (!p)
		return NULL;
	pthread_mutex_lock(&p->lock);
	const mpg_error *e = p->abort_error;
	pthread_mutex_unlock(&p->lock);
	return e;
}

MPG_EXPORT int mpg_pool_stats(mpg_pool *p, mpg_stats *ret)
{
	if (!p || !ret || ret->size < MPG_STATS_SIZE_0_1)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	mpg_stats st = p->stats;
	pthread_mutex_unlock(&p->lock);
	mpg__copy_sized(ret, &st, sizeof st);
	return 0;
}
