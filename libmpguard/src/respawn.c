/* SPDX-License-Identifier: MIT */
/* Starting workers, and slots whose worker could not be started (no fd,
 * no memory, no process: EMFILE, ENFILE, ENOMEM, EAGAIN from fork()).
 * Each failure is a WARN record; the slot tries again after a backoff,
 * driven by the dispatcher's epoll_wait() timeout, and at once when a new
 * call comes. Once no worker is alive and every slot failed
 * MPG_START_TRIES starts in a row, the tasks not run fail as
 * MPG_ERR_CANCELLED with the errno as code: the call returns instead of
 * waiting for ever. The slots keep trying, so the pool comes back once
 * the cause is gone. */
#include "dispatch-int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* "Too many open files (EMFILE)". */
static const char *errno_text(int err, char *buf, size_t len)
{
	const char *name = strerrorname_np(err);
	snprintf(buf, len, "%s (%s)", strerror(err), name ? name : "?");
	return buf;
}

/* Would a worker in this slot be put to use? */
static bool wanted(const struct mpg_pool *p)
{
	return !p->broken && (p->state == POOL_RUNNING || (p->state == POOL_CLOSED && p->jobs_head));
}

void mpg__worker_start(struct mpg_pool *p, struct worker *w)
{
	const char *what = "";
	int r = mpg__worker_spawn(p, w, &what);
	if (r < 0)
		mpg__start_failed(p, w, -r, what);
}

void mpg__start_failed(struct mpg_pool *p, struct worker *w, int err, const char *what)
{
	w->state = W_EMPTY;
	w->pid = 0;
	w->start_err = err;
	w->start_failures++;
	uint64_t wait = MPG_START_BACKOFF_NS;
	for (unsigned k = 1; k < w->start_failures && wait < MPG_START_BACKOFF_MAX_NS; k++)
		wait *= 2;
	if (wait > MPG_START_BACKOFF_MAX_NS)
		wait = MPG_START_BACKOFF_MAX_NS;
	if (!w->start_at)
		p->start_waiting++;
	w->start_at = mpg__now_ns() + wait;
	pthread_cond_broadcast(&p->cond); /* mpg_pool_new() waits for the first starts */
	if (!p->log_writer)
		return;
	char wk[16], buf[96];
	snprintf(wk, sizeof wk, "%u", w->slot);
	const char *name = strerrorname_np(err);
	mplog_kv kv[2] = {{"mpg.worker", wk}, {"mpg.errno", name ? name : "?"}};
	(void)mplog_writer_log(p->log_writer, MPLOG_WARN, NULL, 0, NULL, kv, 2,
			       "worker %u could not be started (%s failed: %s), failure %u in a "
			       "row; next try in %llu ms",
			       w->slot, what, errno_text(err, buf, sizeof buf), w->start_failures,
			       (unsigned long long)(wait / 1000000u));
}

/* Slots whose backoff is over, and every waiting slot when a new call
 * came (it may be the first chance since fds were freed). */
void mpg__respawn_due(struct mpg_pool *p)
{
	bool kick = p->next_job_id != p->start_kick_job;
	p->start_kick_job = p->next_job_id;
	if (!p->start_waiting || !wanted(p))
		return;
	uint64_t now = mpg__now_ns();
	for (unsigned i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];
		if (w->state == W_EMPTY && w->start_at && (kick || now >= w->start_at)) {
			w->start_at = 0;
			p->start_waiting--;
			mpg__worker_start(p, w);
		}
	}
}

int mpg__respawn_timeout_ms(const struct mpg_pool *p)
{
	if (!p->start_waiting || !wanted(p))
		return -1;
	uint64_t next = 0;
	for (unsigned i = 0; i < p->nworkers; i++) {
		const struct worker *w = &p->workers[i];
		if (w->state == W_EMPTY && w->start_at && (!next || w->start_at < next))
			next = w->start_at;
	}
	if (!next)
		return -1;
	uint64_t now = mpg__now_ns();
	return next <= now ? 0 : (int)((next - now + 999999u) / 1000000u);
}

/* No worker alive and none can be started: fail what waits for one. */
void mpg__fail_unstartable(struct mpg_pool *p)
{
	if (p->live_workers || !p->jobs_head || !wanted(p))
		return;
	const struct worker *last = NULL;
	for (unsigned i = 0; i < p->nworkers; i++) {
		const struct worker *w = &p->workers[i];
		if (w->state != W_EMPTY || w->start_failures < MPG_START_TRIES)
			return;
		if (!last || w->start_at > last->start_at)
			last = w; /* the latest failure */
	}
	if (!last)
		return;
	char buf[96], cause[160], msg[192];
	snprintf(cause, sizeof cause, "no worker could be started (worker %u: %s)", last->slot,
		 errno_text(last->start_err, buf, sizeof buf));
	snprintf(msg, sizeof msg, "never ran: %s", cause);
	struct mpg__failure f = {.kind = MPG_ERR_CANCELLED, .code = last->start_err, .msg = msg,
				 .no_retry = true};
	size_t failed = 0;
	for (struct job *job = p->jobs_head, *next; job; job = next) {
		next = job->next; /* a job may end and leave the list */
		if (job->fed)
			continue; /* its tasks run elsewhere */
		for (size_t k = job->redo_head; k < job->nredo && !job->cancelled; k++) {
			struct redo *r = &job->redo[k];
			for (; r->count && !job->cancelled; r->first++, r->count--, failed++)
				mpg__task_failure(p, NULL, job, r->first, r->attempts, &f);
		}
		for (; job->cursor < job->n && !job->cancelled; job->cursor++, failed++)
			mpg__task_failure(p, NULL, job, job->cursor, 0, &f);
	}
	if (failed && p->log_writer) {
		const char *name = strerrorname_np(last->start_err);
		mplog_kv kv = {"mpg.errno", name ? name : "?"};
		(void)mplog_writer_log(p->log_writer, MPLOG_ERROR, NULL, 0, NULL, &kv, 1,
				       "%zu task%s failed: %s; the pool keeps trying to start its "
				       "workers",
				       failed, failed == 1 ? "" : "s", cause);
	}
}
