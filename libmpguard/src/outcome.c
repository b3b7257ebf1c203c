/* SPDX-License-Identifier: MIT */
/* What becomes of a task: its result kept for the caller, its failure
 * retried or recorded (error callback, log record, policy), and the end of
 * its job once no task and no callback is left. With the pool lock, on the
 * dispatcher thread; callbacks are queued as deliveries. */
#include "dispatch-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Room for one more element in a doubling array of *cap elements. */
static int grow(void **arr, size_t len, size_t *cap, size_t elem, size_t first_cap)
{
	if (len < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : first_cap;
	void *n = realloc(*arr, c * elem);
	if (!n)
		return -ENOMEM;
	*arr = n;
	*cap = c;
	return 0;
}

int mpg__add_delivery(struct mpg_pool *p, const struct delivery *d)
{
	if (grow((void **)&p->deliveries, p->ndeliveries, &p->deliveries_cap,
		 sizeof *p->deliveries, 64) < 0)
		return -ENOMEM;
	p->deliveries[p->ndeliveries++] = *d;
	d->job->pending_callbacks++;
	return 0;
}

int mpg__redo_push(struct job *job, struct redo r)
{
	if (r.count == 0)
		return 0;
	if (job->redo_head > 0 && job->redo_head == job->nredo)
		job->redo_head = job->nredo = 0;
	if (grow((void **)&job->redo, job->nredo, &job->redo_cap, sizeof *job->redo, 16) < 0)
		return -ENOMEM;
	job->redo[job->nredo++] = r;
	return 0;
}

static void task_ended(struct mpg_pool *p, struct job *job)
{
	job->remaining--;
	if (job->pr)
		job->pr->done++;
	mpg__job_maybe_done(p, job);
}

static int push_error(struct job *job, mpg_error *err)
{
	if (grow((void **)&job->errors, job->nerrors, &job->errors_cap, sizeof *job->errors, 16) < 0)
		return -ENOMEM;
	job->errors[job->nerrors++] = err;
	return 0;
}

/* A finished task for mpg_iter_next(): its waiter is woken once the
 * dispatcher has taken in this round's results (dispatch.c), once a batch,
 * not once a task. */
static int push_ready(struct mpg_pool *p, struct job *job, struct ready r)
{
	if (job->ready_head > 0 && job->ready_head == job->nready)
		job->ready_head = job->nready = 0;
	if (grow((void **)&job->ready, job->nready, &job->ready_cap, sizeof *job->ready, 64) < 0)
		return -ENOMEM;
	job->ready[job->nready++] = r;
	p->wake_waiters = true;
	return 0;
}

/* A task failed for good: record, callback, policy. Takes err (may be NULL
 * on allocation failure: the task still ends, as failed). */
void mpg__fail_task(struct mpg_pool *p, struct job *job, size_t index, mpg_error *err)
{
	job->nfailed++;
	p->stats.tasks_failed++;
	if (job->pr) {
		job->pr->failed++;
		job->pr->kinds[err ? err->kind & 7 : MPG_ERR_CANCELLED]++;
	}
	if (job->cfg.policy == MPG_ABORT && !p->abort_error && err) {
		p->abort_error = mpg__error_dup(err);
		p->exit_status_on_abort = job->cfg.abort_exit;
	}
	mpg_error_fn efn = job->kind == JOB_SUBMIT && job->on_error ? job->on_error : job->cfg.on_error;
	void *eud = job->kind == JOB_SUBMIT && job->on_error ? job->userdata : job->cfg.on_error_userdata;
	bool kept = false; /* does the job own err now? */
	switch (job->kind) {
	case JOB_MAP:
	case JOB_ARRAY:
		job->state[index] = ITEM_FAILED;
		if (job->kind == JOB_ARRAY)
			memset(job->out_base + index * job->out_size, 0, job->out_size);
		kept = err && push_error(job, err) == 0;
		break;
	case JOB_IMAP:
		kept = err && !job->user_gone &&
		       push_ready(p, job, (struct ready){.index = index, .err = err}) == 0;
		break;
	case JOB_SUBMIT:
		job->error = err;
		kept = true;
		break;
	}
	/* Delivered without the lock: the callback, and the error's record in
	 * the merged log. */
	struct delivery d = {.job = job, .err = err, .index = index, .error_fn = efn,
			     .error_userdata = eud, .free_err = !kept};
	if (kept && job->kind == JOB_IMAP && err && (efn || p->log_writer)) {
		/* The iterator may hand out and free its error before the
		 * callback runs: the callback gets a copy of its own. */
		d.err = mpg__error_dup(err);
		d.free_err = true;
		if (d.err && mpg__add_delivery(p, &d) < 0)
			mpg__error_free(d.err);
	} else if (!((efn || p->log_writer) && err && mpg__add_delivery(p, &d) == 0) && !kept) {
		mpg__error_free(err);
	}
	if (job->cfg.policy == MPG_ABORT)
		mpg__begin_stop(p, POOL_ABORTING); /* first: the call must see the abort */
	task_ended(p, job);
}

/* The error of a failed attempt, symbolized; NULL when out of memory. */
static mpg_error *failure_error(struct mpg_pool *p, struct worker *w, const struct job *job,
				size_t index, unsigned attempts, const struct mpg__failure *f)
{
	return mpg__failure_error(f, &p->symcache, w ? &w->modules : NULL, job->base + index,
				  w ? (int)w->slot : -1, w ? w->pid : 0, attempts + 1);
}

/* A task failed in a worker: retry or fail it. */
void mpg__task_failure(struct mpg_pool *p, struct worker *w, struct job *job, size_t index,
			   unsigned attempts, const struct mpg__failure *f)
{
	if (job->cancelled)
		return; /* ended by the cancellation */
	if (!f->no_retry && attempts < job->cfg.retries &&
	    mpg__redo_push(job, (struct redo){.first = index, .count = 1, .attempts = attempts + 1,
					  .avoid = w ? (int)w->slot : -1}) == 0) {
		p->stats.tasks_retried++;
		if (job->pr)
			job->pr->retried++;
		/* A failure that a retry may hide still gets its record. */
		struct delivery d = {.job = job, .index = index, .retrying = true, .free_err = true};
		if (p->log_writer && (d.err = failure_error(p, w, job, index, attempts, f)) &&
		    mpg__add_delivery(p, &d) < 0)
			mpg__error_free(d.err);
		return;
	}
	mpg__fail_task(p, job, index, failure_error(p, w, job, index, attempts, f));
}

void mpg__task_failed(struct mpg_pool *p, struct worker *w, struct job *job, size_t index,
			unsigned attempts, mpg_error_kind kind, int code, int sig, const char *msg)
{
	struct mpg__failure f = {.kind = kind, .code = code, .sig = sig, .msg = msg};
	mpg__task_failure(p, w, job, index, attempts, &f);
}

/* A raised error from a result frame: code, message, where it was raised. */
void mpg__task_raised(struct mpg_pool *p, struct worker *w, struct job *job, size_t index,
		   unsigned attempts, const struct mpg__raised *r)
{
	char msg[MPG_MAX_MESSAGE];
	uint64_t ips[MPG_MAX_FRAMES];
	struct mpg__failure f;
	mpg__raised_failure(r, msg, sizeof msg, ips, &f);
	mpg__task_failure(p, w, job, index, attempts, &f);
}

void mpg__task_ok(struct mpg_pool *p, struct job *job, size_t index, const void *data,
		    size_t len, struct blob *own)
{
	p->stats.tasks_ok++;
	switch (job->kind) {
	case JOB_ARRAY:
		job->state[index] = ITEM_OK;
		break;
	case JOB_MAP:
		job->state[index] = ITEM_OK;
		job->slots[index] = (struct slotref){data, len};
		break;
	case JOB_IMAP:
		if (!job->user_gone &&
		    push_ready(p, job, (struct ready){.index = index, .data = data, .len = len,
						   .blob = own}) == 0 && own)
			own->refs++;
		break;
	case JOB_SUBMIT:
		job->slots[0] = (struct slotref){data, len};
		if (job->on_result) {
			struct delivery d = {.job = job, .data = data, .len = len,
					     .index = job->base + index};
			(void)mpg__add_delivery(p, &d);
		}
		break;
	}
	task_ended(p, job);
}

void mpg__job_maybe_done(struct mpg_pool *p, struct job *job)
{
	if (job->done || job->remaining || job->pending_callbacks)
		return;
	/* A cancelled job ends once the workers are dead and reaped. */
	if (job->cancelled && p->state != POOL_STOPPED)
		return;
	/* Its final progress report first: the call returns after it. */
	if (job->pr && !job->progress_ended) {
		job->progress_ended = true;
		if (mpg__progress_final(p, job))
			return;
	}
	job->done = true;
	/* Out of the pool's list, and its values out of the pool's sets: both
	 * in constant time, whatever the number of jobs queued. */
	if (job->prev)
		job->prev->next = job->next;
	else
		p->jobs_head = job->next;
	if (job->next)
		job->next->prev = job->prev;
	else
		p->jobs_tail = job->prev;
	job->next = job->prev = NULL;
	p->wake_waiters = true; /* its caller, at the end of this round */
	if (job->cfg.timeout_ms)
		mpg__minset_del(&p->timeouts, job->cfg.timeout_ms);
	if (job->tick_ns)
		mpg__minset_del(&p->progress_ns, job->tick_ns);
	if (job->user_gone && !job->fed_held) {
		/* Freed after this round of events: callers up the stack may
		 * still hold it (a frame's other tasks, the chunk). */
		job->next = p->graveyard;
		p->graveyard = job;
	}
}

void mpg__pool_bury(struct mpg_pool *p)
{
	while (p->graveyard) {
		struct job *job = p->graveyard;
		p->graveyard = job->next;
		mpg__job_free(job);
	}
}
