/* SPDX-License-Identifier: MIT */
/* A worker's death: which task killed it (its status page, or the task
 * we timed out, or the one that wrote garbage), that task's failure with
 * the crash report, the innocent tasks re-queued, the worker replaced. */
#include "dispatch-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void requeue(struct mpg_pool *p, struct worker *w, struct job *job, size_t first,
		    size_t count, unsigned attempts, unsigned lost, int avoid, const struct mpg__failure *f)
{
	if (count == 0 || job->cancelled)
		return;
	if (lost > MPG_MAX_LOST) {
		struct mpg__failure lf = *f;
		lf.no_retry = true;
		lf.has_fault = false;
		lf.nips = 0;
		for (size_t i = 0; i < count; i++)
			mpg__task_failure(p, w, job, first + i, attempts, &lf);
		return;
	}
	if (mpg__redo_push(job, (struct redo){.first = first, .count = count, .attempts = attempts,
					  .lost = lost, .avoid = avoid}) < 0) {
		for (size_t i = 0; i < count; i++)
			mpg__task_failure(p, w, job, first + i, attempts,
				       &(struct mpg__failure){.kind = MPG_ERR_CANCELLED, .code = ENOMEM,
							      .msg = "out of memory while re-queueing the task",
							      .no_retry = true});
	}
}

void mpg__worker_exited(struct mpg_pool *p, struct worker *w, int status)
{
	mpg__worker_read(p, w); /* the dead worker's last words are in the socket */
	mpg__worker_drop_channel(p, w);
	mpg__fdreg_close(&w->pidfd);
	mpg__results_rescue(p, w);
	mpg__worker_close_arena(w);
	while (w->nfdq)
		close(mpg__worker_take_fd(w));
	mpk_buf_free(&w->in);

	char why[96];
	const char *perr = mpg__worker_protocol_why(w, why, sizeof why);
	char msg[256];
	struct mpg__failure death;
	mpg__death_failure(status, perr, w->crashed ? &w->crash : NULL, w->crash_ips, msg,
			   sizeof msg, &death);
	if (w->starved && !w->killed_by_pool) {
		/* We killed it, for want of an fd to take its results: no task
		 * is to blame, the lost ones count a loss. */
		death = (struct mpg__failure){.kind = MPG_ERR_CANCELLED, .code = EMFILE,
					      .msg = "the pool had no fd free to take the worker's "
						     "results: Too many open files (EMFILE)"};
	}
	struct mpg__wstatus *ws = &p->wcfg.status[w->slot];
	uint32_t st = atomic_load(&ws->state);
	if (w->starved)
		st = WS_IDLE;
	uint64_t wjob = atomic_load(&ws->job), windex = atomic_load(&ws->index);

	/* The running task is to blame; tasks queued behind it are innocent.
	 * Only when no task was running (killed between tasks, or while
	 * sending) do the lost tasks count a loss, so a task that kills its
	 * worker without being seen still fails after MPG_MAX_LOST tries. */
	/* A task over its limit ends as a timeout only if our SIGKILL ended
	 * it. A worker that died of its own doing meanwhile (an exit, a crash
	 * whose handler kept SIGXCPU blocked, a teardown the page still shows
	 * as the task running, or a later task after the timed one returned)
	 * is reported as what it is, blamed on the task the page shows: else
	 * a crash lost its backtrace to a TIMEOUT, an _exit() read "killed by
	 * SIG?", and the task that really died was re-queued as innocent. */
	bool timed_out = w->timeout_killed && !w->killed_by_pool && WIFSIGNALED(status) &&
			 WTERMSIG(status) == SIGKILL;
	if (timed_out)
		st = WS_RUNNING, wjob = w->watch_job, windex = w->watch_index; /* the task we timed */
	/* Garbage: its task, not what runs now; and once its task failed for
	 * it, the others are innocent. */
	if (perr && w->culprit.set)
		st = WS_RUNNING, wjob = w->culprit.job, windex = w->culprit.index;
	else if (perr && w->culprit_failed)
		st = WS_IDLE;
	bool innocent = w->killed_by_pool || (perr && w->culprit_failed);
	bool blamed = false;
	for (struct chunk *c = w->inflight_head; c && !w->killed_by_pool; c = c->next)
		blamed |= st == WS_RUNNING && wjob == c->job->id && windex >= c->first + c->done &&
			  windex < c->first + c->count;
	while (w->inflight_head) {
		struct chunk *c = w->inflight_head;
		struct job *job = c->job;
		size_t start = c->first + c->done, end = c->first + c->count;
		if (blamed && wjob == job->id && windex >= start && windex < end) {
			requeue(p, w, job, start, windex - start, c->attempts, c->lost, c->avoid, &death);
			struct mpg__failure f = death;
			char tmsg[128];
			if (timed_out) {
				snprintf(tmsg, sizeof tmsg, "ran over its time limit of %u ms; %s",
					 w->timeout_ms, w->have_stack ? "killed after reporting where it was"
					 : "killed (it did not report where it was)");
				f = (struct mpg__failure){.kind = MPG_ERR_TIMEOUT, .sig = death.sig,
							  .msg = tmsg, .ips = w->stack_ips,
							  .first_exact = true,
							  .nips = w->have_stack ? w->stack_nips : 0};
				p->stats.tasks_timed_out++;
			}
			mpg__task_failure(p, w, job, windex, c->attempts, &f);
			requeue(p, w, job, windex + 1, end - windex - 1, c->attempts, c->lost, c->avoid,
				&death);
		} else {
			requeue(p, w, job, start, end - start, c->attempts,
				c->lost + (!blamed && !innocent), c->avoid, &death);
		}
		mpg__chunk_pop(w);
	}
	free(w->protocol_error);
	w->protocol_error = NULL;
	w->garbage_run = 0;
	w->garbage_open = false;
	w->culprit.set = false;
	w->culprit_failed = false;
	mpg__modlist_free(&w->modules);
	w->crashed = false;
	w->state = W_EMPTY;
	w->pid = 0;
	p->live_workers--;
	pthread_cond_broadcast(&p->cond);

	bool wanted = p->state == POOL_RUNNING || (p->state == POOL_CLOSED && p->jobs_head);
	if (w->retiring)
		p->stats.workers_recycled++;
	else if (!w->killed_by_pool)
		p->stats.workers_replaced++;
	if (wanted && !p->broken) {
		w->restarts++;
		mpg__worker_start(p, w);
	}
}
