/* SPDX-License-Identifier: MIT */
/* The supervisor: long-running services in forked processes, restarted by
 * policy (permanent, transient, temporary) with exponential backoff, given
 * up on when they fail too often (restart intensity), shut down in reverse
 * order on SIGINT/SIGTERM. Single-threaded: everything happens in
 * mpg_supervisor_run()'s thread, around one epoll. Services are forked by a
 * fork server, like pool workers, and report failures the same way. */
#include "pool-int.h"
#include "control-int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SERVICES 256u
#define MAX_INTENSITY 1000u

enum svc_state { SVC_IDLE, SVC_WAITING, SVC_RUNNING, SVC_DONE };

/* The control thread (mpattach) reads a service's state, pid, restarts
 * and start time: mpg_supervisor_run()'s thread changes them under the
 * supervisor's lock (and reads them without it). */
struct service {
	char *name;
	mpg_restart restart;
	enum svc_state state;
	pid_t pid;
	int sock;
	uint64_t started_ns;
	uint64_t restart_at;     /* SVC_WAITING: when */
	unsigned failures_in_row;
	unsigned restarts;
	struct mpk_buf in;
	unsigned capture_ch[2];  /* aggregator channels of its stdout, stderr */
};

struct mpg_supervisor {
	pid_t creator;
	bool running;
	struct mpg__service *table; /* what the workers see */
	struct service *svc;
	unsigned n;
	unsigned max_restarts, period_ms;
	unsigned backoff_initial_ms, backoff_max_ms;
	unsigned shutdown_ms;
	mpg_error_fn on_error;
	void *on_error_userdata;
	mpg_error *give_up_error;
	uint64_t *restart_times;    /* ring of the last max_restarts+1 restarts */
	unsigned nrestart_times, restart_head;
	int stopfd;                 /* eventfd: mpg_supervisor_stop() */
	struct mpg__symcache symcache;
	mplog_aggregator *log;      /* where records go: the caller's, our own, or none */
	bool log_set;               /* the caller chose (maybe none) */
	bool own_log;
	bool have_stderr;           /* fd 2 was open before any fd of ours */
	unsigned capture;           /* MPG_CAPTURE_*: services' stdout/stderr as records */
	pthread_mutex_t lock;       /* the services' state, for the control thread */
	bool stopping;              /* shutting down (under the lock) */
	unsigned seq;               /* registry number: "<creator>.<seq>.sock" */
	bool control_set, control;  /* mpg_supervisor_set_control() */
	bool pause_set;             /* mpg_supervisor_set_pause() */
	unsigned pause, pause_timeout_ms;
	int fs_ctl;                 /* the fork server's socket while running, or -1 */
	struct mpg__wstatus *status_pages; /* the services', while running */
};

MPG_EXPORT int mpg_supervisor_new(mpg_supervisor **ret)
{
	if (!ret)
		return -EINVAL;
	if (mpg__in_worker)
		return -ECHILD;
	mpg_supervisor *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->creator = getpid();
	s->max_restarts = 3;
	s->period_ms = 5000;
	s->backoff_initial_ms = 10;
	s->backoff_max_ms = 5000;
	s->shutdown_ms = 5000;
	s->seq = mpg__control_seq();
	s->fs_ctl = -1;
	pthread_mutex_init(&s->lock, NULL);
	s->have_stderr = fcntl(STDERR_FILENO, F_GETFD) >= 0;
	s->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stopfd < 0) {
		int r = -errno;
		pthread_mutex_destroy(&s->lock);
		free(s);
		return r;
	}
	mpg__fdreg_add(s->stopfd);
	*ret = s;
	return 0;
}

MPG_EXPORT void mpg_supervisor_free(mpg_supervisor *s)
{
	if (!s || s->running || getpid() != s->creator)
		return;
	for (unsigned i = 0; i < s->n; i++) {
		free(s->svc[i].name);
		mpk_buf_free(&s->svc[i].in);
	}
	free(s->svc);
	free(s->table);
	free(s->restart_times);
	mpg__error_free(s->give_up_error);
	mpg__symcache_free(&s->symcache);
	if (s->own_log)
		mplog_aggregator_free(s->log);
	mpg__fdreg_close(&s->stopfd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

MPG_EXPORT int mpg_supervisor_add(mpg_supervisor *s, const char *name, mpg_service_fn fn,
				  void *userdata, mpg_restart restart)
{
	if (!s || !name || !fn || (unsigned)restart > MPG_RESTART_TEMPORARY)
		return -EINVAL;
	if (s->running)
		return -EBUSY;
	/* A name is how the log, errors and mpattach tell services apart. */
	for (unsigned i = 0; i < s->n; i++)
		if (strcmp(s->svc[i].name, name) == 0)
			return -EEXIST;
	if (s->n == MAX_SERVICES)
		return -E2BIG;
	struct service *sv = realloc(s->svc, (s->n + 1) * sizeof *sv);
	if (!sv)
		return -ENOMEM;
	s->svc = sv;
	struct mpg__service *t = realloc(s->table, (s->n + 1) * sizeof *t);
	if (!t)
		return -ENOMEM;
	s->table = t;
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	s->svc[s->n] = (struct service){.name = copy, .restart = restart, .sock = -1};
	s->table[s->n] = (struct mpg__service){.fn = fn, .userdata = userdata, .name = copy};
	return (int)s->n++;
}

MPG_EXPORT int mpg_supervisor_set_intensity(mpg_supervisor *s, unsigned max, unsigned period_ms)
{
	if (!s || max > MAX_INTENSITY || period_ms == 0 || period_ms > MPG_MAX_TIMEOUT_MS)
		return -EINVAL;
	if (s->running)
		return -EBUSY;
	s->max_restarts = max;
	s->period_ms = period_ms;
	return 0;
}

MPG_EXPORT int mpg_supervisor_set_backoff(mpg_supervisor *s, unsigned initial_ms, unsigned max_ms)
{
	if (!s || initial_ms > max_ms || max_ms > MPG_MAX_TIMEOUT_MS)
		return -EINVAL;
	s->backoff_initial_ms = initial_ms;
	s->backoff_max_ms = max_ms;
	return 0;
}

MPG_EXPORT int mpg_supervisor_set_shutdown_timeout(mpg_supervisor *s, unsigned ms)
{
	if (!s || ms > MPG_MAX_TIMEOUT_MS)
		return -EINVAL;
	s->shutdown_ms = ms;
	return 0;
}

MPG_EXPORT int mpg_supervisor_set_error_callback(mpg_supervisor *s, mpg_error_fn fn, void *ud)
{
	if (!s)
		return -EINVAL;
	s->on_error = fn;
	s->on_error_userdata = ud;
	return 0;
}

/* The default log: an aggregator of our own, text to stderr (or the
 * journal, mplog_sink_new_stderr()), if fd 2 is not one of ours
 * (have_stderr). */
static int own_log_new(mpg_supervisor *s)
{
	mplog_aggregator *a;
	mplog_sink *sink;
	int r = mplog_aggregator_new(&a);
	if (r < 0)
		return r;
	if (s->have_stderr &&
	    ((r = mplog_sink_new_stderr(MPLOG_SINK_COLOR_AUTO, &sink)) < 0 ||
	     (r = mplog_aggregator_add_sink(a, sink)) < 0)) {
		mplog_aggregator_free(a);
		return r;
	}
	s->log = a;
	s->own_log = true;
	return 0;
}

MPG_EXPORT int mpg_supervisor_set_log(mpg_supervisor *s, mplog_aggregator *log)
{
	if (!s)
		return -EINVAL;
	if (s->running)
		return -EBUSY;
	s->log_set = true;
	if (log && log == s->log)
		return 0; /* the one mpg_supervisor_log() gave: kept, still ours */
	if (s->own_log)
		mplog_aggregator_free(s->log);
	s->own_log = false;
	s->log = log;
	return 0;
}

MPG_EXPORT mplog_aggregator *mpg_supervisor_log(mpg_supervisor *s)
{
	if (!s)
		return NULL;
	if (!s->log_set && !s->own_log && !s->running)
		(void)own_log_new(s);
	return s->log;
}

MPG_EXPORT int mpg_supervisor_set_capture(mpg_supervisor *s, unsigned flags)
{
	if (!s || (flags & ~(unsigned)(MPG_CAPTURE_STDOUT | MPG_CAPTURE_STDERR)))
		return -EINVAL;
	if (s->running)
		return -EBUSY;
	s->capture = flags;
	return 0;
}

MPG_EXPORT int mpg_supervisor_set_control(mpg_supervisor *s, int on)
{
	if (!s)
		return -EINVAL;
	if (s->running)
		return -EBUSY;
	s->control_set = true;
	s->control = on != 0;
	return 0;
}

MPG_EXPORT int mpg_supervisor_set_pause(mpg_supervisor *s, unsigned flags, unsigned timeout_ms)
{
	if (!s || (flags & ~(unsigned)(MPG_PAUSE_AT_START | MPG_PAUSE_ON_CRASH)) ||
	    timeout_ms > MPG_MAX_TIMEOUT_MS)
		return -EINVAL;
	if (s->running)
		return -EBUSY;
	s->pause_set = true;
	s->pause = flags;
	s->pause_timeout_ms = timeout_ms ? timeout_ms : MPG_DEFAULT_PAUSE_TIMEOUT_MS;
	return 0;
}

MPG_EXPORT int mpg_supervisor_stop(mpg_supervisor *s)
{
	if (!s)
		return -EINVAL;
	uint64_t one = 1; /* write(2) only: async-signal-safe */
	(void)!write(s->stopfd, &one, sizeof one);
	return 0;
}

MPG_EXPORT const mpg_error *mpg_supervisor_error(mpg_supervisor *s)
{
	return s ? s->give_up_error : NULL;
}

MPG_EXPORT int mpg_supervisor_restarts(mpg_supervisor *s, unsigned index)
{
	if (!s || index >= s->n)
		return -EINVAL;
	return (int)s->svc[index].restarts;
}

/* ---- running ------------------------------------------------------------- */

struct run {
	mpg_supervisor *s;
	int ep, ctl, sigfd, timer;
	pid_t server;
	struct mpg__wconfig cfg;
	bool stopping;
	int result;
	int stop_index;          /* shutdown: the service being stopped, -1 none */
	uint64_t stop_deadline;
	bool stop_killed;
	mplog_writer *log;       /* the supervisor's own records, or NULL */
	bool log_started;        /* our own aggregator's thread, started by this run */
	struct mpg__control *control; /* its control socket, or NULL */
};

/* A service's failure as an ERROR record of the merged log, with the same
 * keys as a pool's failed tasks (mpg.service instead of mpg.task). */
static void log_failure(struct run *r, const mpg_error *e)
{
	if (!r->log || !e)
		return;
	struct mpg__error_kv k;
	mpg__error_kv(&k, e, false);
	(void)mplog_writer_log(r->log, MPLOG_ERROR, NULL, 0, NULL, k.kv, k.n, "%s", e->describe);
}

#define TAG_CTL 1u
#define TAG_SIG 2u
#define TAG_TIMER 3u
#define TAG_STOP 4u
#define TAG_SERVICE 16u /* + index: a service's socket, watched for a crash report */

/* 0, or a negative errno and in *what the step that failed. */
static int start_service(struct run *r, unsigned i, const char **what)
{
	struct service *sv = &r->s->svc[i];
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		*what = "socketpair()";
		return -errno;
	}
	/* Its log pipe, and its stdout/stderr if captured: its death is each
	 * channel's EOF, after which the aggregator drains and closes it. */
	int io[MPG_LOG_FDS];
	int lost = mpg__log_pipes_open(r->s->log, sv->name, -1, r->s->capture, io, sv->capture_ch);
	if (lost < 0 && r->log)
		(void)mplog_writer_log(r->log, MPLOG_WARN, NULL, 0, NULL,
				       &(mplog_kv){"mpg.service", sv->name}, 1,
				       "service %s starts without some of its log channels: %s",
				       sv->name, strerror(-lost));
	int e = mpg__fs_request_spawn(r->ctl, i, &(struct mpg__wchan){sp[1], sp[1], sp[1]}, io);
	close(sp[1]);
	mpg__log_pipes_close(io);
	if (e < 0) {
		close(sp[0]);
		*what = "the request to the fork server";
		return e;
	}
	(void)fcntl(sp[0], F_SETFL, O_NONBLOCK);
	mpg__fdreg_add(sp[0]);
	sv->sock = sp[0];
	sv->in.len = 0;
	pthread_mutex_lock(&r->s->lock);
	sv->state = SVC_RUNNING;
	sv->pid = 0;
	sv->started_ns = mpg__now_ns();
	pthread_mutex_unlock(&r->s->lock);
	if (r->cfg.pause & MPG_PAUSE_ON_CRASH) {
		/* To say in the log that it crashed and waits for a debugger:
		 * its crash report comes before its death. */
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_SERVICE + i};
		(void)epoll_ctl(r->ep, EPOLL_CTL_ADD, sv->sock, &ev);
	}
	return 0;
}

static void signal_service(struct run *r, unsigned i, int sig)
{
	struct service *sv = &r->s->svc[i];
	if (sv->pid > 0)
		(void)mpg__fs_request_kill(r->ctl, i, sv->pid, sig);
}

/* Everything the dead service wrote: its module list, maybe a crash report
 * or a raised error. Read to EOF; the process is gone. */
static void drain(struct service *sv)
{
	for (;;) {
		if (mpk_buf_reserve(&sv->in, 16384) < 0)
			return;
		ssize_t n = read(sv->sock, sv->in.data + sv->in.len, sv->in.cap - sv->in.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		sv->in.len += (size_t)n;
		if (sv->in.len > 4u << 20)
			return; /* a service has no business sending more */
	}
}

struct report {
	struct mpg__modlist mods;
	bool crashed, ended;
	struct mpg__crash_head crash;
	uint64_t crash_ips[MPG_MAX_FRAMES];
	struct mpg__raised end; /* into sv->in */
};

/* Its frames, as far as they are whole and valid: a service that wrote
 * garbage is judged by how it ended, and by what it said before. */
static void parse_reports(const struct service *sv, struct report *rep)
{
	size_t off = 0, flen;
	while (mpg__frame_peek(sv->in.data + off, sv->in.len - off, MSG_CRASH, MSG_SERVICE_END,
			       &flen) > 0) {
		struct mpk_frame_header h; /* frames follow each other unaligned */
		memcpy(&h, sv->in.data + off, sizeof h);
		const uint8_t *b = sv->in.data + off + sizeof h;
		if (h.type == MSG_MODULES) {
			struct mpg__modlist l;
			if (mpg__modlist_decode(b, h.length, &l) == 0) {
				mpg__modlist_free(&rep->mods);
				rep->mods = l;
			}
		} else if (h.type == MSG_CRASH) {
			rep->crashed |= mpg__crash_decode(b, h.length, &rep->crash, rep->crash_ips) == 0;
		} else if (h.type == MSG_SERVICE_END) {
			rep->ended |= mpg__service_end_decode(b, h.length, &rep->end) == 0;
		}
		off += flen;
	}
}

/* The failure of service i that ended with wait status `status`, or NULL
 * when it ended normally (returned 0 / exit(0)) or was stopped by us. */
static mpg_error *failure_of(struct run *r, unsigned i, int status, bool stopped_by_us)
{
	struct service *sv = &r->s->svc[i];
	struct report rep = {0};
	drain(sv);
	parse_reports(sv, &rep);
	mpg_error *e = NULL;
	char msg[MPG_MAX_MESSAGE];
	uint64_t ips[MPG_MAX_FRAMES];
	struct mpg__failure f;
	bool failed = true;
	if (rep.ended)
		mpg__raised_failure(&rep.end, msg, sizeof msg, ips, &f);
	else if (WIFEXITED(status) ? WEXITSTATUS(status) != 0 : !stopped_by_us)
		mpg__death_failure(status, NULL, rep.crashed ? &rep.crash : NULL, rep.crash_ips, msg,
				   sizeof msg, &f);
	else
		failed = false;
	if (failed)
		e = mpg__failure_error(&f, &r->s->symcache, &rep.mods, i, (int)i, sv->pid, 1);
	mpg__modlist_free(&rep.mods);
	if (e && mpg__error_set_service(e, sv->name) < 0) {
		mpg__error_free(e);
		e = NULL;
	}
	return e;
}

static uint64_t backoff_ns(const mpg_supervisor *s, unsigned failures_in_row)
{
	uint64_t ms = s->backoff_initial_ms;
	for (unsigned k = 1; k < failures_in_row && ms < s->backoff_max_ms; k++)
		ms *= 2;
	if (ms > s->backoff_max_ms)
		ms = s->backoff_max_ms;
	return ms * 1000000u;
}

/* Restart intensity: true if one more restart now stays within the limit. */
static bool may_restart(mpg_supervisor *s, uint64_t now)
{
	uint64_t period = (uint64_t)s->period_ms * 1000000u;
	unsigned recent = 0;
	for (unsigned k = 0; k < s->nrestart_times; k++)
		recent += now - s->restart_times[k] < period;
	if (recent >= s->max_restarts)
		return false;
	if (s->max_restarts) {
		s->restart_times[s->restart_head] = now;
		s->restart_head = (s->restart_head + 1) % s->max_restarts;
		if (s->nrestart_times < s->max_restarts)
			s->nrestart_times++;
	}
	return true;
}

static void begin_shutdown(struct run *r, int result)
{
	if (r->stopping)
		return;
	r->stopping = true;
	r->result = result;
	r->stop_index = -1;
	pthread_mutex_lock(&r->s->lock);
	r->s->stopping = true;
	for (unsigned i = 0; i < r->s->n; i++) /* and those not started yet */
		if (r->s->svc[i].state == SVC_WAITING || r->s->svc[i].state == SVC_IDLE)
			r->s->svc[i].state = SVC_DONE;
	pthread_mutex_unlock(&r->s->lock);
}

/* Shutdown in reverse order: one service at a time gets SIGTERM, then
 * SIGKILL at its deadline. */
static void shutdown_step(struct run *r, uint64_t now)
{
	if (r->stop_index >= 0) {
		struct service *sv = &r->s->svc[r->stop_index];
		if (sv->state == SVC_RUNNING) {
			if (!r->stop_killed && now >= r->stop_deadline) {
				signal_service(r, (unsigned)r->stop_index, SIGKILL);
				r->stop_killed = true;
			}
			return;
		}
	}
	for (int i = (int)r->s->n - 1; i >= 0; i--) {
		struct service *sv = &r->s->svc[i];
		if (sv->state != SVC_RUNNING)
			continue;
		if (sv->pid <= 0) {
			r->stop_index = -1;
			return; /* forked, pid not reported yet: keep the order, wait */
		}
		r->stop_index = i;
		r->stop_killed = false;
		r->stop_deadline = now + (uint64_t)r->s->shutdown_ms * 1000000u;
		signal_service(r, (unsigned)i, SIGTERM);
		return;
	}
	r->stop_index = -1;
}

static void set_state(mpg_supervisor *s, struct service *sv, enum svc_state state)
{
	pthread_mutex_lock(&s->lock);
	sv->state = state;
	pthread_mutex_unlock(&s->lock);
}

/* Service i is gone, having failed with e (taken; NULL: it ended well or
 * was stopped): record, callback, then restart by policy and backoff, or
 * give up. */
static void service_ended(struct run *r, unsigned i, mpg_error *e)
{
	mpg_supervisor *s = r->s;
	struct service *sv = &s->svc[i];
	uint64_t now = mpg__now_ns();
	log_failure(r, e);
	if (e && s->on_error)
		s->on_error(e, s->on_error_userdata);
	bool restart = !r->stopping && (sv->restart == MPG_RESTART_PERMANENT ||
					(sv->restart == MPG_RESTART_TRANSIENT && e));
	if (!restart) {
		set_state(s, sv, SVC_DONE);
		mpg__error_free(e);
		return;
	}
	if (!may_restart(s, now)) {
		char msg[512];
		snprintf(msg, sizeof msg, "gave up: service %s ended more than %u times in %u ms%s%s",
			 sv->name, s->max_restarts, s->period_ms, e ? "; last: " : "",
			 e ? mpg_error_describe(e) : "");
		mpg__error_free(s->give_up_error);
		s->give_up_error = mpg__error_new(e ? e->kind : MPG_ERR_EXITED, i, (int)i, 0,
						  e ? e->code : 0, e ? e->sig : 0, sv->restarts + 1, msg);
		if (s->give_up_error && e && e->backtrace)
			s->give_up_error->backtrace = strdup(e->backtrace);
		if (s->give_up_error && mpg__error_set_service(s->give_up_error, sv->name) < 0) {
			mpg__error_free(s->give_up_error);
			s->give_up_error = NULL;
		}
		if (r->log)
			(void)mplog_writer_log(r->log, MPLOG_ERROR, NULL, 0, NULL,
					       &(mplog_kv){"mpg.service", sv->name}, 1,
					       "supervisor %s; shutting the others down", msg);
		set_state(s, sv, SVC_DONE);
		mpg__error_free(e);
		begin_shutdown(r, -ECANCELED);
		return;
	}
	/* A service that ran long enough starts its backoff over. */
	if (!e || now - sv->started_ns > (uint64_t)s->backoff_max_ms * 1000000u)
		sv->failures_in_row = 0;
	if (e)
		sv->failures_in_row++;
	pthread_mutex_lock(&s->lock);
	sv->restarts++;
	sv->state = SVC_WAITING;
	pthread_mutex_unlock(&s->lock);
	uint64_t wait = e ? backoff_ns(s, sv->failures_in_row) : 0;
	sv->restart_at = now + wait;
	if (r->log)
		(void)mplog_writer_log(r->log, e ? MPLOG_WARN : MPLOG_INFO, NULL, 0, NULL,
				       &(mplog_kv){"mpg.service", sv->name}, 1,
				       "service %s %s; restart %u in %" PRIu64 " ms", sv->name,
				       e ? "failed" : "ended", sv->restarts, wait / 1000000u);
	mpg__error_free(e);
}

static void service_exited(struct run *r, unsigned i, int status)
{
	struct service *sv = &r->s->svc[i];
	mpg_error *e = failure_of(r, i, status, r->stopping);
	mpg__fdreg_close(&sv->sock);
	pthread_mutex_lock(&r->s->lock);
	sv->pid = 0;
	pthread_mutex_unlock(&r->s->lock);
	service_ended(r, i, e);
}

/* Service i could not be started (no fd, no memory, no process: EMFILE,
 * ENOMEM, EAGAIN from fork()): a failure of the service like any other,
 * as a pool's worker that cannot start is retried with backoff; the
 * restart intensity ends it if the cause stays. */
static void start_failed(struct run *r, unsigned i, int err, const char *what)
{
	struct service *sv = &r->s->svc[i];
	mpg__fdreg_close(&sv->sock);
	pthread_mutex_lock(&r->s->lock);
	sv->pid = 0;
	sv->started_ns = mpg__now_ns();
	pthread_mutex_unlock(&r->s->lock);
	const char *name = strerrorname_np(err);
	char msg[256];
	snprintf(msg, sizeof msg, "could not be started: %s failed: %s (%s)", what, strerror(err),
		 name ? name : "?");
	mpg_error *e = mpg__error_new(MPG_ERR_CANCELLED, i, (int)i, 0, err, 0, 1, msg);
	if (e && mpg__error_set_service(e, sv->name) < 0) {
		mpg__error_free(e);
		e = NULL;
	}
	service_ended(r, i, e);
}

static void arm_timer(struct run *r)
{
	uint64_t next = 0;
	for (unsigned i = 0; i < r->s->n; i++)
		if (r->s->svc[i].state == SVC_WAITING &&
		    (!next || r->s->svc[i].restart_at < next))
			next = r->s->svc[i].restart_at;
	if (r->stopping && r->stop_index >= 0 && !r->stop_killed &&
	    (!next || r->stop_deadline < next))
		next = r->stop_deadline;
	struct itimerspec its = {0};
	if (next) {
		its.it_value.tv_sec = (time_t)(next / 1000000000u);
		its.it_value.tv_nsec = (long)(next % 1000000000u);
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	(void)timerfd_settime(r->timer, TFD_TIMER_ABSTIME, &its, NULL);
}

static void read_server(struct run *r)
{
	for (;;) {
		struct mpg__fsmsg m;
		int fds[MPG_FS_MAX_FDS];
		int e = mpg__fs_recv(r->ctl, &m, fds, MSG_DONTWAIT);
		int fd = fds[0];
		for (int k = 1; k < MPG_FS_MAX_FDS; k++)
			if (fds[k] >= 0)
				close(fds[k]);
		if (e == -EAGAIN)
			return;
		if (e <= 0 || m.slot >= r->s->n) {
			if (fd >= 0)
				close(fd);
			/* The fork server is gone: its services die with it.
			 * A shutdown, not failures to restart from. */
			begin_shutdown(r, -EPIPE);
			if (r->log)
				(void)mplog_writer_log(r->log, MPLOG_ERROR, NULL, 0, NULL, NULL, 0,
						       "supervisor: the fork server died; its services "
						       "die with it");
			for (unsigned i = 0; i < r->s->n; i++)
				if (r->s->svc[i].state == SVC_RUNNING)
					service_exited(r, i, SIGKILL);
			return;
		}
		if (fd >= 0)
			close(fd); /* the pidfd: we signal through the server */
		struct service *sv = &r->s->svc[m.slot];
		if (m.type == FS_SPAWNED) {
			pthread_mutex_lock(&r->s->lock);
			sv->pid = m.pid; /* if stopping, shutdown_step() takes it in its turn */
			pthread_mutex_unlock(&r->s->lock);
			/* A captured service waits for this before it runs, so that
			 * its first line has its pid too (see worker.c). */
			if (mpg__log_pipes_set_pid(r->s->log, sv->capture_ch, m.pid) && sv->sock >= 0)
				(void)send(sv->sock, "g", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		} else if (m.type == FS_SPAWN_FAILED && sv->state == SVC_RUNNING && !sv->pid) {
			start_failed(r, m.slot, m.value > 0 ? m.value : EIO, "fork() in the fork server");
		} else if (m.type == FS_EXITED && sv->state == SVC_RUNNING && sv->pid == m.pid) {
			service_exited(r, m.slot, m.value);
		}
	}
}

/* A service's socket is readable while the supervisor pauses crashed
 * services: if its crash report is in, say in the log that it waits for a
 * debugger (a pool's dispatcher says the same of its workers). What is
 * read stays in sv->in for failure_of(). */
static void watch_crash(struct run *r, unsigned i)
{
	struct service *sv = &r->s->svc[i];
	bool eof = false;
	while (sv->in.len < (4u << 20) && mpk_buf_reserve(&sv->in, 4096) == 0) {
		ssize_t n = read(sv->sock, sv->in.data + sv->in.len, sv->in.cap - sv->in.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
			break;
		}
		sv->in.len += (size_t)n;
	}
	struct report rep = {0};
	parse_reports(sv, &rep);
	mpg__modlist_free(&rep.mods);
	if (rep.crashed && r->log)
		(void)mplog_writer_log(r->log, MPLOG_WARN, NULL, 0, NULL,
				       &(mplog_kv){"mpg.service", sv->name}, 1,
				       "service %s (pid %d) crashed on %s and is paused for a "
				       "debugger, up to %u s: mpattach gdb %d.%u %u, or mpattach "
				       "resume %d.%u %u",
				       sv->name, (int)sv->pid, mpg__signal_name((int)rep.crash.signo),
				       r->cfg.pause_timeout_ms / 1000, (int)r->s->creator, r->s->seq,
				       i, (int)r->s->creator, r->s->seq, i);
	/* Nothing more to watch for: its death is the fork server's news. */
	if (rep.crashed || eof || sv->in.len >= (4u << 20))
		(void)epoll_ctl(r->ep, EPOLL_CTL_DEL, sv->sock, NULL);
}

/* ---- what the control socket shows (control-int.h) ---------------------- */

static void control_snapshot(void *obj, struct mpg__ctl_summary *sum, struct mpg__ctl_slot *slots)
{
	mpg_supervisor *s = obj;
	uint64_t now = mpg__now_ns();
	pthread_mutex_lock(&s->lock);
	*sum = (struct mpg__ctl_summary){.state = s->stopping ? "stopping" : "running"};
	for (unsigned i = 0; i < s->n; i++) {
		const struct service *sv = &s->svc[i];
		bool up = sv->state == SVC_RUNNING && sv->pid > 0;
		const char *state = "down";
		if (sv->state == SVC_RUNNING && !sv->pid)
			state = "starting";
		else if (up && atomic_load(&s->status_pages[i].paused) != WP_NONE)
			state = "paused";
		else if (up)
			state = s->stopping ? "stopping" : "running";
		else if (sv->state == SVC_WAITING)
			state = "restarting"; /* after its backoff delay */
		else if (sv->state == SVC_DONE)
			state = "ended";
		slots[i] = (struct mpg__ctl_slot){
			.pid = up ? sv->pid : 0,
			.grantable = up,
			.state = state,
			.name = sv->name,
			.uptime_ms = up && now > sv->started_ns ? (now - sv->started_ns) / 1000000u : 0,
			.restarts = sv->restarts,
		};
	}
	pthread_mutex_unlock(&s->lock);
}

/* Through the fork server, which has not reaped the process yet if pid is
 * still its child in that slot: never a reused pid. */
static int control_signal(void *obj, unsigned slot, pid_t pid, int sig)
{
	mpg_supervisor *s = obj;
	/* Under the lock: the run closes that socket at its end. */
	pthread_mutex_lock(&s->lock);
	int r = s->fs_ctl >= 0 ? mpg__fs_request_kill(s->fs_ctl, slot, pid, sig) : -ESRCH;
	pthread_mutex_unlock(&s->lock);
	return r;
}

static bool all_done(const mpg_supervisor *s)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->svc[i].state != SVC_DONE)
			return false;
	return true;
}

MPG_EXPORT int mpg_supervisor_run(mpg_supervisor *s)
{
	if (!s)
		return -EINVAL;
	if (mpg__in_worker || getpid() != s->creator)
		return -ECHILD;
	if (s->running)
		return -EBUSY;
	if (s->n == 0)
		return -EINVAL;
	struct run r = {.s = s, .ep = -1, .ctl = -1, .sigfd = -1, .timer = -1, .stop_index = -1};
	int ret = 0;
	sigset_t stop_sigs, old_mask;
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGTERM);

	free(s->restart_times);
	s->restart_times = calloc(s->max_restarts ? s->max_restarts : 1, sizeof *s->restart_times);
	if (!s->restart_times)
		return -ENOMEM;
	s->nrestart_times = s->restart_head = 0;
	mpg__error_free(s->give_up_error);
	s->give_up_error = NULL;
	uint64_t drained;
	while (read(s->stopfd, &drained, sizeof drained) > 0)
		; /* a stop asked before this run does not count */

	r.cfg = (struct mpg__wconfig){
		.services = s->table,
		.nworkers = s->n,
		.shm_threshold = MPG_DEFAULT_SHM_THRESHOLD,
		.pause = s->pause,
		.pause_timeout_ms = s->pause_timeout_ms,
		.pool_pid = s->creator,
		.pool_seq = s->seq,
	};
	if (!s->pause_set)
		mpg__pause_from_env(&r.cfg.pause, &r.cfg.pause_timeout_ms);
	r.cfg.status = mmap(NULL, sizeof(struct mpg__wstatus) * s->n, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r.cfg.status == MAP_FAILED)
		return -errno;
	s->status_pages = r.cfg.status;
	for (unsigned i = 0; i < s->n; i++) {
		s->svc[i].restarts = 0;
		s->svc[i].failures_in_row = 0;
	}
	s->stopping = false;
	pthread_sigmask(SIG_BLOCK, &stop_sigs, &old_mask);
	/* Services get the caller's mask as it was, but SIGTERM is our
	 * shutdown request: a program that blocked it in main (to take it
	 * with sigwait() or a signalfd) must not make each service wait out
	 * the shutdown timeout. */
	r.cfg.sigmask = old_mask;
	sigdelset(&r.cfg.sigmask, SIGTERM);
	s->running = true;

	if (fcntl(STDERR_FILENO, F_GETFD) < 0) /* closed since: ours may take it */
		s->have_stderr = false;
	r.ep = epoll_create1(EPOLL_CLOEXEC);
	r.sigfd = signalfd(-1, &stop_sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	r.timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (r.ep < 0 || r.sigfd < 0 || r.timer < 0) {
		ret = -errno;
		goto out;
	}
	mpg__fdreg_add(r.ep);
	mpg__fdreg_add(r.sigfd);
	mpg__fdreg_add(r.timer);
	ret = mpg__forkserver_start(&r.cfg, &r.ctl, &r.server);
	if (ret < 0)
		goto out;
	s->fs_ctl = r.ctl;
	/* After the fork server: its fork happens before the log's thread. */
	if (!s->log_set && !s->own_log && (ret = own_log_new(s)) < 0)
		goto out;
	if (s->own_log) {
		/* Unless the caller started it (mpg_supervisor_log()): theirs to stop. */
		ret = mplog_aggregator_start(s->log);
		if (ret < 0 && ret != -EALREADY)
			goto out;
		r.log_started = ret == 0;
		ret = 0;
	}
	if (s->log && (ret = mplog_aggregator_writer(s->log, &r.log)) < 0)
		goto out;
	mpg__parent_log_add(r.log); /* the parent's mplog_info() too, while it runs */
	struct {
		int fd;
		uint64_t tag;
	} watch[] = {{r.ctl, TAG_CTL}, {r.sigfd, TAG_SIG}, {r.timer, TAG_TIMER}, {s->stopfd, TAG_STOP}};
	for (size_t k = 0; k < sizeof watch / sizeof watch[0]; k++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = watch[k].tag};
		epoll_ctl(r.ep, EPOLL_CTL_ADD, watch[k].fd, &ev);
	}

	if (mpg__control_wanted(s->control_set, s->control)) {
		struct mpg__ctl_target t = {
			.kind = "supervisor",
			.slot_noun = "service",
			.pid = s->creator,
			.seq = s->seq,
			.nslots = s->n,
			.status = r.cfg.status,
			.pause = r.cfg.pause,
			.log = s->log,
			.obj = s,
			.snapshot = control_snapshot,
			.signal = control_signal,
		};
		int e = mpg__control_start(&t, &r.control);
		if (e < 0 && r.log)
			(void)mplog_writer_log(r.log, MPLOG_WARN, NULL, 0, NULL, NULL, 0,
					       "supervisor runs without a control socket (no "
					       "mpattach): %s", strerror(-e));
	}

	for (unsigned i = 0; i < s->n && !r.stopping; i++) {
		const char *what = "";
		int e = start_service(&r, i, &what);
		if (e < 0)
			start_failed(&r, i, -e, what);
	}

	while (!all_done(s)) {
		uint64_t now = mpg__now_ns();
		if (r.stopping) {
			shutdown_step(&r, now);
		} else {
			for (unsigned i = 0; i < s->n; i++) {
				struct service *sv = &s->svc[i];
				const char *what = "";
				int e;
				if (sv->state == SVC_WAITING && now >= sv->restart_at &&
				    (e = start_service(&r, i, &what)) < 0)
					start_failed(&r, i, -e, what);
			}
		}
		if (all_done(s))
			break;
		arm_timer(&r);
		struct epoll_event evs[8];
		int n = epoll_wait(r.ep, evs, 8, -1);
		for (int k = 0; k < n; k++) {
			uint64_t v;
			switch (evs[k].data.u64) {
			case TAG_CTL:
				read_server(&r);
				break;
			case TAG_SIG: {
				struct signalfd_siginfo si;
				while (read(r.sigfd, &si, sizeof si) > 0)
					begin_shutdown(&r, -EINTR);
				break;
			}
			case TAG_TIMER:
				(void)!read(r.timer, &v, sizeof v);
				break;
			case TAG_STOP:
				while (read(s->stopfd, &v, sizeof v) > 0)
					begin_shutdown(&r, -EINTR);
				break;
			default:
				if (evs[k].data.u64 - TAG_SERVICE < s->n &&
				    s->svc[evs[k].data.u64 - TAG_SERVICE].sock >= 0)
					watch_crash(&r, (unsigned)(evs[k].data.u64 - TAG_SERVICE));
				break;
			}
		}
	}
	ret = r.result;

out:
	/* The control thread signals services through the fork server: not
	 * from now on. */
	pthread_mutex_lock(&s->lock);
	s->fs_ctl = -1;
	pthread_mutex_unlock(&s->lock);
	mpg__fdreg_close(&r.ctl); /* EOF: the server kills what is left and exits */
	if (r.server > 0)
		while (waitpid(r.server, NULL, 0) < 0 && errno == EINTR)
			;
	for (unsigned i = 0; i < s->n; i++) {
		mpg__fdreg_close(&s->svc[i].sock);
		set_state(s, &s->svc[i], SVC_IDLE);
	}
	mpg__fdreg_close(&r.ep);
	mpg__fdreg_close(&r.sigfd);
	mpg__fdreg_close(&r.timer);
	/* The merged log holds everything the services wrote before run()
	 * returns: they are all gone, so their pipes are at EOF. */
	mpg__parent_log_remove(r.log);
	mplog_writer_free(r.log);
	if (r.log_started)
		(void)mplog_aggregator_stop(s->log);
	else if (s->log)
		(void)mplog_aggregator_flush(s->log);
	/* Then the control socket, whose `mplog live` readers get those last
	 * records too, and which reads the status pages. */
	mpg__control_stop(r.control);
	munmap(r.cfg.status, sizeof(struct mpg__wstatus) * s->n);
	s->status_pages = NULL;
	/* Signals that arrived during the run were consumed; restore. */
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	s->running = false;
	return ret;
}
