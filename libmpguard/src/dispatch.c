/* SPDX-License-Identifier: MIT */
/* The dispatcher thread: the only code that talks to workers and to the
 * fork server. Its loop (mpg__dispatcher_main) waits on epoll for worker
 * sockets, the fork server, the timer and wake-ups; between rounds it runs
 * the user's callbacks without the pool lock, schedules work, and stops the
 * pool on abort, terminate or join. The other files of the dispatcher:
 * wio.c (worker processes and sockets), results.c (results into outcomes),
 * outcome.c (what becomes of a task), blame.c (a worker's death),
 * respawn.c (starting workers, and slots whose worker could not start),
 * schedule.c (chunks out), timelimit.c (time limits). */
#include "dispatch-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

void mpg__pool_wake(struct mpg_pool *p)
{
	uint64_t one = 1;
	(void)!write(p->evfd, &one, sizeof one);
}

bool mpg__on_dispatcher(struct mpg_pool *p)
{
	return p->thread_started && pthread_equal(pthread_self(), p->thread);
}

static void broken(struct mpg_pool *p)
{
	/* The fork server is gone: its workers die with it (PDEATHSIG) and
	 * are reaped by init; nothing can be respawned. */
	p->broken = true;
	mpg__pool_refuse(p);
	for (unsigned i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];
		if (w->state == W_EMPTY)
			continue;
		w->killed_by_pool = true;
		mpg__worker_kill(p, w);
		mpg__worker_exited(p, w, SIGKILL);
	}
	if (p->ctlfd >= 0) {
		mpg__ep_ctl(p, EPOLL_CTL_DEL, p->ctlfd, 0, 0);
		mpg__fdreg_close(&p->ctlfd);
	}
	mpg__begin_stop(p, POOL_TERMINATING);
}

static void read_ctl(struct mpg_pool *p)
{
	for (;;) {
		struct mpg__fsmsg m;
		int fds[MPG_FS_MAX_FDS];
		int r = mpg__fs_recv(p->ctlfd, &m, fds, MSG_DONTWAIT);
		int fd = fds[0];
		for (int k = 1; k < MPG_FS_MAX_FDS; k++)
			if (fds[k] >= 0)
				close(fds[k]);
		if (r == -EAGAIN)
			return;
		if (r <= 0 || m.slot >= p->nworkers) {
			if (fd >= 0)
				close(fd);
			broken(p);
			return;
		}
		struct worker *w = &p->workers[m.slot];
		switch (m.type) {
		case FS_SPAWNED:
			/* Its pidfd may be missing (no fd free here): signals then
			 * go through the fork server. */
			w->pid = m.pid;
			w->start_failures = 0;
			(void)mpg__log_pipes_set_pid(p->log, w->capture_ch, m.pid);
			w->pidfd = fd;
			mpg__fdreg_add(fd);
			w->state = W_READY;
			p->stats.workers_started++;
			if (p->state == POOL_ABORTING || p->state == POOL_TERMINATING) {
				w->killed_by_pool = true;
				mpg__worker_kill(p, w);
			}
			pthread_cond_broadcast(&p->cond);
			break;
		case FS_SPAWN_FAILED:
			/* fork() failed there (EAGAIN, ENOMEM), or the fds did not
			 * reach it: try again later (respawn.c). */
			if (fd >= 0)
				close(fd);
			if (w->state != W_SPAWNING)
				break;
			mpg__worker_drop_channel(p, w);
			p->live_workers--;
			mpg__start_failed(p, w, m.value > 0 ? m.value : EIO, "fork() in the fork server");
			break;
		case FS_EXITED:
			if (fd >= 0)
				close(fd);
			if (w->state != W_EMPTY && w->pid == m.pid)
				mpg__worker_exited(p, w, m.value);
			break;
		default:
			if (fd >= 0)
				close(fd);
			break;
		}
	}
}

void mpg__begin_stop(struct mpg_pool *p, enum pool_state st)
{
	if (p->state == POOL_ABORTING || p->state == POOL_TERMINATING || p->state == POOL_STOPPED)
		return;
	p->state = st;
	p->closed = true;
	mpg__pool_refuse(p);
	mpg__take_incoming(p); /* those handed in before are cancelled too */
	for (struct job *job = p->jobs_head; job; job = job->next)
		job->cancelled = true;
	for (unsigned i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];
		if (w->state == W_EMPTY)
			continue;
		w->killed_by_pool = true;
		mpg__worker_kill(p, w);
	}
	pthread_cond_broadcast(&p->cond);
}

void mpg__pool_cancel_all(struct mpg_pool *p, bool abort)
{
	mpg__begin_stop(p, abort ? POOL_ABORTING : POOL_TERMINATING);
}

static void cancel_remaining(struct mpg_pool *p, struct job *job)
{
	job->cancelled = true;
	if (job->remaining == 0)
		return;
	mpg__progress_cancelled(job, job->remaining);
	char msg[512];
	if (p->abort_error)
		snprintf(msg, sizeof msg, "cancelled: the pool aborted after %s",
			 mpg_error_describe(p->abort_error));
	else
		snprintf(msg, sizeof msg, "cancelled: the pool was terminated");
	switch (job->kind) {
	case JOB_MAP:
	case JOB_ARRAY:
		for (size_t i = 0; i < job->n; i++)
			if (job->state[i] == ITEM_PENDING)
				job->state[i] = ITEM_CANCELLED;
		break;
	case JOB_SUBMIT: {
		mpg_error *err = mpg__error_new(MPG_ERR_CANCELLED, job->base, -1, 0, 0, 0, 0, msg);
		job->error = err;
		mpg_error_fn efn = job->on_error ? job->on_error : job->cfg.on_error;
		void *eud = job->on_error ? job->userdata : job->cfg.on_error_userdata;
		if (efn && err)
			(void)mpg__add_delivery(p, &(struct delivery){.job = job, .err = err,
								  .error_fn = efn,
								  .error_userdata = eud});
		break;
	}
	case JOB_IMAP:
		break;
	}
	job->remaining = 0;
}

static void finish_stop(struct mpg_pool *p)
{
	p->state = POOL_STOPPED;
	for (struct job *job = p->jobs_head, *next; job; job = next) {
		next = job->next;
		cancel_remaining(p, job);
		mpg__job_maybe_done(p, job);
	}
	pthread_cond_broadcast(&p->cond);
}

/* close()+join(): once no work is left, close the idle workers' sockets;
 * they see EOF and exit(0). */
static void retire_idle(struct mpg_pool *p)
{
	if (!p->join_requested || p->state != POOL_CLOSED || p->jobs_head)
		return;
	for (unsigned i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];
		if (w->state != W_READY)
			continue;
		mpg__worker_let_go(p, w);
	}
	if (p->live_workers == 0) {
		p->state = POOL_STOPPED;
		pthread_cond_broadcast(&p->cond);
	}
}

/* A failed task, as an ERROR record in the pool's merged log. */
static void log_error(struct mpg_pool *p, const mpg_error *e)
{
	if (!p->log_writer || e->kind == MPG_ERR_CANCELLED)
		return;
	struct mpg__error_kv k;
	mpg__error_kv(&k, e, false);
	(void)mplog_writer_log(p->log_writer, MPLOG_ERROR, NULL, 0, NULL, k.kv, k.n, "%s",
			       e->describe);
}

/* A failed attempt that will be retried, as a WARN record: the task has
 * not failed (yet), so it is no ERROR and carries no mpg.kind. */
static void log_retry(struct mpg_pool *p, const mpg_error *e, unsigned retries)
{
	struct mpg__error_kv k;
	mpg__error_kv(&k, e, true);
	(void)mplog_writer_log(p->log_writer, MPLOG_WARN, NULL, 0, NULL, k.kv, k.n,
			       "%s; will retry (attempt %u of %u)", e->describe, e->attempts + 1,
			       retries + 1);
}

/* Run queued callbacks without the lock; a job ends after its callbacks. */
static void deliver(struct mpg_pool *p)
{
	while (p->ndeliveries) {
		struct delivery *list = p->deliveries;
		size_t n = p->ndeliveries;
		p->deliveries = NULL;
		p->ndeliveries = p->deliveries_cap = 0;
		pthread_mutex_unlock(&p->lock);
		for (size_t i = 0; i < n; i++) {
			struct delivery *d = &list[i];
			if (d->note) {
				mpg__progress_deliver(p, d->note);
				free(d->note);
				d->note = NULL;
			} else if (d->retrying) {
				log_retry(p, d->err, d->job->cfg.retries);
			} else if (d->err) {
				log_error(p, d->err);
				if (d->error_fn)
					d->error_fn(d->err, d->error_userdata);
			} else {
				d->job->on_result(d->index, d->data, d->len, d->job->userdata);
			}
		}
		pthread_mutex_lock(&p->lock);
		for (size_t i = 0; i < n; i++) {
			struct delivery *d = &list[i];
			if (d->free_err)
				mpg__error_free(d->err);
			d->job->pending_callbacks--;
			mpg__job_maybe_done(p, d->job);
		}
		free(list);
	}
}

static void stop_server(struct mpg_pool *p)
{
	if (p->ctlfd >= 0) {
		mpg__ep_ctl(p, EPOLL_CTL_DEL, p->ctlfd, 0, 0);
		mpg__fdreg_close(&p->ctlfd); /* EOF: the server exits */
	}
	if (p->server_pid > 0) {
		while (waitpid(p->server_pid, NULL, 0) < 0 && errno == EINTR)
			;
		p->server_pid = 0;
	}
}

/* mpg_options_set_abort_exit(): SystemExit. The workers are dead and
 * reaped; run the callbacks already due, stop the fork server, then exit
 * the process without letting any waiting caller go on first. */
static _Noreturn void exit_on_abort(struct mpg_pool *p)
{
	deliver(p);
	stop_server(p);
	mpg__progress_bar_clear(p);
	int status = p->exit_status_on_abort;
	/* Unlocked: atexit handlers may call into the pool; callers stay
	 * asleep as no job is marked done. */
	pthread_mutex_unlock(&p->lock);
	if (p->log)
		mplog_aggregator_flush(p->log); /* the merged log is complete first */
	fprintf(stderr, "mpguard: pool aborted: %s\n", mpg_error_describe(p->abort_error));
	fflush(NULL);
	exit(status);
}

void *mpg__dispatcher_main(void *arg)
{
	struct mpg_pool *p = arg;
	struct epoll_event evs[64];

	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nworkers; i++)
		mpg__worker_start(p, &p->workers[i]);
	p->spawned_initial = true;
	pthread_cond_broadcast(&p->cond);
	for (;;) {
		/* Callbacks may end jobs, which may let the pool retire or
		 * stop, which may queue callbacks: settle before sleeping. */
		do {
			deliver(p);
			/* After the callbacks, which ran without the lock: a call
			 * that came meanwhile is in the list before anything
			 * decides that no work is left. */
			mpg__take_incoming(p);
			mpg__respawn_due(p);
			mpg__fail_unstartable(p);
			mpg__schedule(p);
			mpg__recycle_workers(p);
			retire_idle(p);
			if ((p->state == POOL_ABORTING || p->state == POOL_TERMINATING) &&
			    p->live_workers == 0) {
				if (p->abort_error && p->exit_status_on_abort >= 0)
					exit_on_abort(p); /* before any caller learns of the abort */
				finish_stop(p);
			}
		} while (p->ndeliveries);
		mpg__pool_bury(p);
		if (p->state == POOL_STOPPED) {
			pthread_cond_broadcast(&p->cond); /* the last round's waiters too */
			break;
		}
		mpg__update_timer(p);
		/* Callers waiting for results or for their call's end: one
		 * wake-up for all that this round brought, not one a task. */
		if (p->wake_waiters) {
			p->wake_waiters = false;
			pthread_cond_broadcast(&p->cond);
		}
		/* -1 unless a slot waits to try starting its worker again. */
		int timeout = mpg__respawn_timeout_ms(p);
		/* Asleep first, then look: a caller that handed a job in after
		 * our look sees the flag and writes the eventfd. */
		atomic_store(&p->dispatcher_asleep, true);
		pthread_mutex_unlock(&p->lock);
		int n = 0;
		if (!mpg__incoming_pending(p))
			n = epoll_wait(p->epfd, evs, 64, timeout);
		pthread_mutex_lock(&p->lock);
		atomic_store(&p->dispatcher_asleep, false);
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;
			uint32_t kind = (uint32_t)(tag & 0xff);
			if (kind == TAG_EVENT) {
				uint64_t v;
				(void)!read(p->evfd, &v, sizeof v);
			} else if (kind == TAG_CTL) {
				if (p->ctlfd >= 0)
					read_ctl(p);
			} else if (kind == TAG_TIMER) {
				mpg__on_tick(p);
			} else {
				struct worker *w = &p->workers[tag >> 8];
				if (kind == TAG_FROM)
					mpg__worker_read(p, w);
				else if (kind == TAG_TO)
					mpg__worker_flush(p, w);
			}
		}
	}
	stop_server(p);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}
