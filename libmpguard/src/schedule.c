/* SPDX-License-Identifier: MIT */
/* Scheduling: which worker runs what next (re-runs first, then new
 * tasks), in chunks sized to ~5 ms of measured work, and the chunk frames
 * that carry them (inline inputs, or memfds for large ones). */
#include "dispatch-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Input i of a job. */
static void job_input(const struct job *job, size_t i, const void **data, size_t *len)
{
	switch (job->kind) {
	case JOB_ARRAY:
		*data = job->in_base + i * job->in_size;
		*len = job->in_size;
		break;
	case JOB_SUBMIT:
		*data = job->owned_in;
		*len = job->owned_len;
		break;
	default:
		*data = job->inputs[i].data;
		*len = job->inputs[i].len;
		break;
	}
}

static size_t chunk_size(const struct mpg_pool *p, const struct job *job, size_t avail)
{
	double c;
	if (job->cfg.chunksize)
		c = (double)job->cfg.chunksize;
	else if (job->ns_per_task < 0)
		c = 1;
	else {
		c = MPG_CHUNK_TARGET_NS / (job->ns_per_task > 1 ? job->ns_per_task : 1);
		/* Guided: keep enough pieces left that all workers finish together. */
		double guided = (double)(job->n - job->cursor) / (2.0 * p->nworkers);
		if (c > guided)
			c = guided;
		if (job->result_bytes > 0 && c > MPG_RESULT_FLUSH_BYTES / job->result_bytes)
			c = MPG_RESULT_FLUSH_BYTES / job->result_bytes;
	}
	if (job->kind == JOB_ARRAY) {
		if (job->in_size && c > (double)MPG_CHUNK_MAX_BYTES / (double)job->in_size)
			c = (double)MPG_CHUNK_MAX_BYTES / (double)job->in_size;
		/* Automatic: the chunks in flight fit in the frame pipe, so
		 * that a worker's next chunk is whole there when it wants it. */
		if (!job->cfg.chunksize && job->in_size &&
		    c > (double)MPG_ARRAY_CHUNK_BYTES / (double)job->in_size)
			c = (double)MPG_ARRAY_CHUNK_BYTES / (double)job->in_size;
		if (c > (double)MPG_RESULT_FLUSH_BYTES / (double)job->out_size)
			c = (double)MPG_RESULT_FLUSH_BYTES / (double)job->out_size;
	}
	if (c < 1)
		c = 1;
	if (c > (double)avail)
		c = (double)avail;
	if (c > (double)UINT32_MAX)
		c = (double)UINT32_MAX;
	return (size_t)c;
}

/* Pick work for worker w: a range to re-run first, else new tasks. */
static bool pick_range(struct mpg_pool *p, struct worker *w, size_t cap, struct job **rjob,
		       struct redo *out)
{
	unsigned others = 0;
	for (unsigned i = 0; i < p->nworkers; i++)
		if (i != w->slot && p->workers[i].state == W_READY)
			others++;
	for (struct job *job = p->jobs_head; job; job = job->next) {
		if (job->cancelled || job->fed)
			continue;
		for (size_t k = job->redo_head; k < job->nredo; k++) {
			struct redo *r = &job->redo[k];
			if (r->count == 0 || (r->avoid == (int)w->slot && others > 0))
				continue;
			size_t c = chunk_size(p, job, r->count < cap ? r->count : cap);
			*out = *r;
			out->count = c;
			r->first += c;
			r->count -= c;
			while (job->redo_head < job->nredo && job->redo[job->redo_head].count == 0)
				job->redo_head++;
			*rjob = job;
			return true;
		}
		if (job->cursor < job->n) {
			size_t avail = job->n - job->cursor;
			size_t c = chunk_size(p, job, avail < cap ? avail : cap);
			*out = (struct redo){.first = job->cursor, .count = c, .avoid = -1};
			job->cursor += c;
			*rjob = job;
			return true;
		}
	}
	return false;
}

/* Give back the tail of a range that did not fit in a frame. */
static void unpick(struct job *job, struct redo r)
{
	if (r.count == 0)
		return;
	if (r.attempts == 0 && r.lost == 0 && r.first + r.count == job->cursor)
		job->cursor = r.first;
	else
		(void)mpg__redo_push(job, r);
}

static int send_chunk(struct mpg_pool *p, struct worker *w)
{
	struct job *job;
	struct redo r;
	size_t cap = SIZE_MAX;
	if (p->opts.max_tasks) {
		if (w->tasks_sent >= p->opts.max_tasks)
			return 0; /* this worker's quota is sent: it retires when done */
		cap = (size_t)(p->opts.max_tasks - w->tasks_sent);
	}
	if (!pick_range(p, w, cap, &job, &r))
		return 0;

	bool fixed_in = job->kind == JOB_ARRAY && job->in_size < p->opts.shm_threshold;
	bool fixed_out = job->kind == JOB_ARRAY;
	bool send_ctx = job->cfg.context && w->ctx_job != job->id;
	struct outframe *f = calloc(1, sizeof *f);
	struct chunk *c = calloc(1, sizeof *c);
	struct mpk_buf b = {0};
	if (!f || !c)
		goto nomem;
	struct mpg__chunk_head head = {
		.job = job->id,
		.fn = (uint64_t)(uintptr_t)job->fn,
		.first = r.first,
		.mode = (fixed_in ? CHUNK_FIXED_IN : 0) | (fixed_out ? CHUNK_FIXED_OUT : 0) |
			(send_ctx ? CHUNK_HAS_CTX : 0),
		.in_size = job->in_size,
		.out_size = job->out_size,
		.base = job->base,
	};
	mpg__chunk_begin(&b, &head, job->cfg.context, job->cfg.context_len);
	size_t n = 0;
	if (fixed_in) {
		mpg__chunk_align_fixed(&b);
		n = r.count;
		f->ext = job->in_base + r.first * job->in_size; /* sent in place, no copy */
		f->ext_len = n * job->in_size;
	} else {
		size_t inline_bytes = 0;
		for (; n < r.count; n++) {
			const void *data;
			size_t len;
			job_input(job, r.first + n, &data, &len);
			if (n > 0 && (inline_bytes >= MPG_CHUNK_MAX_BYTES || f->nfds == MPG_CHUNK_MAX_FDS))
				break;
			bool large = len >= p->opts.shm_threshold ||
				     (job->kind == JOB_SUBMIT && job->owned_fd >= 0);
			if (!large) {
				mpg__input_put_inline(&b, data, len);
				inline_bytes += len;
				continue;
			}
			int fd = -1;
			uint64_t off = 0;
			int rr;
			if (job->kind == JOB_SUBMIT && job->owned_fd >= 0) {
				fd = fcntl(job->owned_fd, F_DUPFD_CLOEXEC, 3);
				off = job->owned_off;
				rr = fd < 0 ? -errno : 1;
			} else {
				rr = mpg__shm_lookup(data, len, &fd, &off);
				if (rr == 0) {
					rr = mpg__memfd_from_bytes(data, len, &fd);
					if (rr == 0) {
						rr = 1;
						p->stats.shm_copied_bytes += len;
					}
				}
			}
			if (rr < 0) {
				if (n > 0)
					break; /* send what we have; this one goes next time */
				char m[128];
				snprintf(m, sizeof m, "could not hand the %zu-byte input to a worker: %s",
					 len, strerror(-rr));
				mpg__fail_task(p, job, r.first, mpg__error_new(MPG_ERR_RAISED, job->base + r.first, -1, 0,
									  -rr, 0, r.attempts + 1, m));
				r.first++;
				r.count--;
				unpick(job, r);
				free(f);
				free(c);
				mpk_buf_free(&b);
				return 1;
			}
			p->stats.shm_bytes += len;
			f->fds[f->nfds++] = fd;
			mpg__input_put_shm(&b, off, len);
		}
	}
	if (mpg__chunk_finish(&b, (uint32_t)n, f->ext_len, (uint16_t)f->nfds) < 0)
		goto nomem;
	f->data = b.data;
	f->len = b.len + f->ext_len;
	if (send_ctx)
		w->ctx_job = job->id;

	*c = (struct chunk){.job = job, .first = r.first, .count = n, .attempts = r.attempts,
			    .lost = r.lost, .avoid = r.avoid};
	unpick(job, (struct redo){.first = r.first + n, .count = r.count - n,
				  .attempts = r.attempts, .lost = r.lost, .avoid = r.avoid});
	w->tasks_sent += n;
	if (w->inflight_tail)
		w->inflight_tail->next = c;
	else
		w->inflight_head = c;
	w->inflight_tail = c;
	w->ninflight++;
	if (w->out_tail)
		w->out_tail->next = f;
	else
		w->out_head = f;
	w->out_tail = f;
	return 1; /* mpg__schedule() flushes, all of a round's frames at once */

nomem:
	for (unsigned i = 0; f && i < f->nfds; i++)
		close(f->fds[i]);
	free(f);
	free(c);
	mpk_buf_free(&b);
	unpick(job, r);
	return -ENOMEM;
}

/* How many chunks w may have in flight: two, or more of chunks that run
 * for less than a round trip (measured; unknown counts as long) while it
 * keeps answering. */
static unsigned pipeline_depth(const struct worker *w, uint64_t now)
{
	const struct chunk *c = w->inflight_tail;
	if (!c || c->job->ns_per_task < 0 ||
	    (double)c->count * c->job->ns_per_task >= MPG_SHORT_CHUNK_NS ||
	    now - w->last_result_ns > MPG_STREAMING_NS)
		return MPG_PIPELINE;
	return MPG_PIPELINE_SHORT;
}

void mpg__schedule(struct mpg_pool *p)
{
	if (p->state != POOL_RUNNING && p->state != POOL_CLOSED)
		return;
	bool progress = true;
	uint64_t now = mpg__now_ns();
	while (progress) {
		progress = false;
		for (unsigned i = 0; i < p->nworkers; i++) {
			struct worker *w = &p->workers[i];
			if (w->state != W_READY || w->ninflight >= pipeline_depth(w, now) || w->from_eof)
				continue;
			if (send_chunk(p, w) > 0)
				progress = true;
		}
	}
	/* One write for each worker's frames of this round. */
	for (unsigned i = 0; i < p->nworkers; i++)
		if (p->workers[i].out_head && !p->workers[i].want_out)
			mpg__worker_flush(p, &p->workers[i]);
}

/* max_tasks_per_worker: a worker whose quota is done is let go (EOF: it
 * exits 0) and replaced. */
void mpg__recycle_workers(struct mpg_pool *p)
{
	if (!p->opts.max_tasks || (p->state != POOL_RUNNING && p->state != POOL_CLOSED))
		return;
	for (unsigned i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];
		if (w->state != W_READY || w->ninflight || w->tasks_sent < p->opts.max_tasks)
			continue;
		mpg__worker_let_go(p, w);
		w->retiring = true;
	}
}
