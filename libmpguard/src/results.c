/* SPDX-License-Identifier: MIT */
/* Results from workers into task outcomes: result frames, and the arena
 * of a worker that died before sending its finished tasks' results (so
 * that no finished task runs again). The task that wrote garbage fails
 * for it whatever its result says. */
#include "dispatch-int.h"
#include "arena-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void mpg__chunk_pop(struct worker *w)
{
	struct chunk *c = w->inflight_head;
	w->inflight_head = c->next;
	if (!w->inflight_head)
		w->inflight_tail = NULL;
	w->ninflight--;
	free(c);
}

static struct blob *blob_new(struct job *job, void *mem, size_t len, bool mapped)
{
	struct blob *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	*b = (struct blob){.mem = mem, .len = len, .mapped = mapped};
	if (job->kind != JOB_IMAP) {
		b->next = job->blobs;
		job->blobs = b;
	}
	return b;
}

/* Keep the inline result bytes of one frame alive for the job. */
static struct blob *frame_blob(struct job *job, const uint8_t *body, size_t len)
{
	void *m = malloc(len ? len : 1);
	if (!m)
		return NULL;
	memcpy(m, body, len);
	struct blob *b = blob_new(job, m, len, false);
	if (!b)
		free(m);
	return b;
}

/* Garbage came from the task w was running when we saw it, or from the one
 * it began last: that task fails for it, if it is still out. */
void mpg__note_culprit(struct mpg_pool *p, struct worker *w)
{
	struct mpg__wstatus *ws = &p->wcfg.status[w->slot];
	uint64_t job = atomic_load(&ws->job), index = atomic_load(&ws->index);
	for (const struct chunk *c = w->inflight_head; c; c = c->next) {
		if (c->job->id == job && index >= c->first + c->done && index < c->first + c->count) {
			w->culprit.set = true;
			w->culprit.job = job;
			w->culprit.index = index;
			return;
		}
	}
}

/* Is task index of job the culprit of garbage? Then it fails for it, once,
 * whatever its result says. */
static bool fail_culprit(struct mpg_pool *p, struct worker *w, struct chunk *c, size_t index)
{
	if (!w->culprit.set || w->culprit.job != c->job->id || w->culprit.index != index)
		return false;
	w->culprit.set = false;
	w->culprit_failed = true;
	char why[96];
	const char *msg = mpg__worker_protocol_why(w, why, sizeof why);
	mpg__task_failed(p, w, c->job, index, c->attempts, MPG_ERR_PROTOCOL, 0, 0,
			 msg ? msg : "worker wrote bytes that are not a valid frame");
	return true;
}

/* A large result's memfd: mapped read-only once it is known to hold len
 * bytes for good (sealed against shrinking and writing), else NULL and why. */
static void *map_result(int fd, uint64_t len, void **base, size_t *maplen, char *why, size_t whylen)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || seals < 0) {
		snprintf(why, whylen, "it did not come with a memfd");
		return NULL;
	}
	if ((seals & (F_SEAL_SHRINK | F_SEAL_WRITE)) != (F_SEAL_SHRINK | F_SEAL_WRITE)) {
		snprintf(why, whylen, "its memfd is not sealed against shrinking and writing");
		return NULL;
	}
	if ((uint64_t)st.st_size < len) {
		snprintf(why, whylen, "its memfd holds only %jd bytes", (intmax_t)st.st_size);
		return NULL;
	}
	void *m = mpg__map_fd(fd, 0, len, PROT_READ, base, maplen);
	if (!m)
		snprintf(why, whylen, "%s", strerror(errno));
	return m;
}

/* The chunk a result for tasks [first, first + count) of job belongs to:
 * the oldest in flight, which must be answered in order. */
static struct chunk *result_chunk(struct worker *w, uint64_t job, uint64_t first, uint32_t count)
{
	struct chunk *c = w->inflight_head;
	if (!c || c->job->id != job || first != c->first + c->done || count == 0 ||
	    count > c->count - c->done)
		return NULL;
	return c;
}

/* Tasks of chunk c ended as res says (a frame, or a dead worker's arena);
 * res is valid. The fds of its ITEM_SHM results are at the head of the
 * queue. */
static int apply_results(struct mpg_pool *p, struct worker *w, struct chunk *c,
			 const struct mpg__result *res)
{
	struct job *job = c->job;
	uint64_t first = res->h.first;
	uint32_t count = res->h.count;
	w->tasks_done += count;
	w->last_result_ns = mpg__now_ns();
	if (res->h.elapsed_ns) {
		double per = (double)res->h.elapsed_ns / count;
		job->ns_per_task = job->ns_per_task < 0 ? per : 0.5 * job->ns_per_task + 0.5 * per;
		p->last_fn = job->fn;
		p->last_ns_per_task = job->ns_per_task;
	}
	c->done += count;
	if (job->cancelled) {
		mpg__worker_drop_fds(w, res->nshm);
		goto out;
	}

	if (res->is_fixed) {
		uint8_t *dst = job->out_base + first * job->out_size;
		if (res->fixed != dst) /* else read there from the arena */
			memcpy(dst, res->fixed, (size_t)count * job->out_size);
		uint8_t *st = job->state + first;
		for (uint32_t i = 0; i < count; i++)
			st[i] = ITEM_OK;
		size_t ok = count;
		struct mpk_reader r;
		mpk_reader_init(&r, res->errs, res->errs_len);
		for (uint32_t e = 0; e < res->nerr; e++) {
			uint32_t rel;
			struct mpg__raised err;
			(void)mpg__fixed_error_next(&r, &rel, &err); /* validated */
			st[rel] = ITEM_PENDING;
			ok--;
			if (!fail_culprit(p, w, c, first + rel))
				mpg__task_raised(p, w, job, first + rel, c->attempts, &err);
		}
		if (w->culprit.set && w->culprit.job == job->id && w->culprit.index >= first &&
		    w->culprit.index < first + count && st[w->culprit.index - first] == ITEM_OK) {
			st[w->culprit.index - first] = ITEM_PENDING;
			ok--;
			fail_culprit(p, w, c, w->culprit.index);
		}
		p->stats.tasks_ok += ok;
		job->remaining -= ok;
		if (job->pr)
			job->pr->done += ok;
		mpg__job_maybe_done(p, job);
		goto out;
	}

	/* Generic: items are 16-aligned from the region start, which the
	 * blob keeps. */
	struct blob *fb = NULL;
	if (job->kind != JOB_IMAP) {
		fb = frame_blob(job, res->items, res->items_len);
		if (!fb) {
			c->done -= count;
			w->tasks_done -= count;
			return -ENOMEM;
		}
	}
	struct mpg__item_iter it;
	mpg__items_begin(&it, res->items, res->items_len);
	double bytes = 0;
	for (uint32_t i = 0; i < count; i++) {
		size_t index = first + i;
		struct mpg__item item;
		(void)mpg__items_next(&it, &item); /* validated */
		if (fail_culprit(p, w, c, index)) {
			if (item.kind == ITEM_SHM)
				mpg__worker_drop_fds(w, 1);
			continue;
		}
		if (item.kind == ITEM_INLINE) {
			bytes += (double)item.len;
			if (job->kind == JOB_IMAP) {
				struct blob *b = frame_blob(job, item.data, item.len);
				mpg__task_ok(p, job, index, b ? b->mem : NULL, b ? item.len : 0, b);
				if (b && b->refs == 0)
					mpg__blob_free(b);
			} else {
				mpg__task_ok(p, job, index, (const uint8_t *)fb->mem + (item.data - res->items),
					item.len, fb);
			}
		} else if (item.kind == ITEM_SHM) {
			int fd = mpg__worker_take_fd(w);
			void *mbase;
			size_t maplen;
			char why[96];
			void *m = map_result(fd, item.len, &mbase, &maplen, why, sizeof why);
			close(fd);
			p->stats.shm_bytes += item.len;
			if (!m) {
				char msg[192];
				snprintf(msg, sizeof msg, "cannot take the %zu-byte result: %s",
					 (size_t)item.len, why);
				mpg__task_failed(p, w, job, index, c->attempts, MPG_ERR_PROTOCOL, EBADMSG, 0,
					    msg);
				continue;
			}
			struct blob *b = blob_new(job, mbase, maplen, true);
			if (!b) {
				munmap(mbase, maplen);
				mpg__task_failed(p, w, job, index, c->attempts, MPG_ERR_RAISED, ENOMEM, 0,
					    "out of memory in the parent");
				continue;
			}
			mpg__task_ok(p, job, index, m, item.len, b);
			if (job->kind == JOB_IMAP && b->refs == 0)
				mpg__blob_free(b);
		} else {
			mpg__task_raised(p, w, job, index, c->attempts, &item.err);
		}
	}
	bytes /= count;
	job->result_bytes = job->result_bytes <= 0 ? bytes : 0.5 * job->result_bytes + 0.5 * bytes;
out:
	if (c->done == c->count)
		mpg__chunk_pop(w);
	return 0;
}

/* Results the frame left in the worker's arena: read straight into the
 * caller's array, and released for the worker to reuse. */
static int take_from_arena(struct mpg_pool *p, struct worker *w, struct chunk *c,
			   struct mpg__result *res)
{
	if (!w->arena_head) {
		mpg__worker_protocol_error(p, w, "worker sent results by reference without an arena");
		return -EPROTO;
	}
	struct job *job = c->job;
	uint8_t *dst = job->out_base + res->h.first * job->out_size;
	size_t len = (size_t)res->h.count * job->out_size, got = 0;
	int err = 0;
	while (!job->cancelled && got < len) {
		ssize_t r = pread(w->arena, dst + got, len - got,
				  (off_t)(MPG_ARENA_DATA + res->arena_off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? errno : EBADMSG;
			break;
		}
		got += (size_t)r;
	}
	mpg__arena_release(w->arena_head, ++w->refs_read);
	if (err) {
		mpg__worker_protocol_error(p, w, "cannot read the worker's results from its arena: %s",
					   strerror(err));
		return -EPROTO;
	}
	res->fixed = dst;
	return 0;
}

void mpg__results_frame(struct mpg_pool *p, struct worker *w, const uint8_t *body, size_t len,
			   unsigned nfds)
{
	struct mpg__result res;
	if (mpg__result_decode(body, len, &res) < 0 || (res.is_fixed ? 0 : res.nshm) != nfds) {
		mpg__worker_drop_fds(w, nfds);
		mpg__worker_protocol_error(p, w, "worker sent a malformed result frame (%zu bytes)", len);
		return;
	}
	struct chunk *c = result_chunk(w, res.h.job, res.h.first, res.h.count);
	if (c && nfds > w->nfdq && w->fds_lost) {
		/* Its results' memfds found no fd free here: they are lost.
		 * Not its fault; it is killed and its tasks run again (with a
		 * loss counted, so that this cannot go on for ever). */
		mpg__worker_drop_fds(w, nfds);
		w->starved = true;
		w->from_eof = true; /* it is killed: the arena has the rest */
		mpg__worker_kill(p, w);
		return;
	}
	if (!c || nfds > w->nfdq) {
		mpg__worker_drop_fds(w, nfds);
		mpg__worker_protocol_error(p, w, "worker sent a result frame that matches no task sent to it");
		return;
	}
	bool fixed = c->job->kind == JOB_ARRAY;
	if (fixed != res.is_fixed || (fixed && res.h.out_size != c->job->out_size)) {
		mpg__worker_drop_fds(w, nfds);
		mpg__worker_protocol_error(p, w, "worker sent results of the wrong shape");
		return;
	}
	if (res.in_arena && take_from_arena(p, w, c, &res) < 0)
		return;
	if (apply_results(p, w, c, &res) < 0) {
		mpg__worker_drop_fds(w, nfds);
		mpg__worker_protocol_error(p, w, "out of memory for the worker's results");
	}
}

/* A dead worker's finished tasks whose results it had not sent: taken from
 * its arena, so that no task that ended runs again. Only the oldest chunk
 * can have any (results go in order); the frames read before may have
 * delivered some of them already. */
void mpg__results_rescue(struct mpg_pool *p, struct worker *w)
{
	struct mpg__result res;
	void *mem;
	struct chunk *c = w->inflight_head;
	if (!c || mpg__arena_rescue(w->arena, &res, &mem) <= 0)
		return;
	uint64_t next = c->first + c->done;
	bool fixed = c->job->kind == JOB_ARRAY;
	if (res.h.job == c->job->id && res.h.first <= next && res.h.first + res.h.count > next &&
	    res.h.first + res.h.count <= c->first + c->count && fixed == res.is_fixed &&
	    (!fixed || res.h.out_size == c->job->out_size)) {
		/* Skip what the frames delivered. */
		uint32_t skip = (uint32_t)(next - res.h.first);
		if (fixed) {
			res.fixed += (size_t)skip * res.h.out_size;
		} else {
			struct mpg__item_iter it;
			struct mpg__item item;
			mpg__items_begin(&it, res.items, res.items_len);
			for (uint32_t i = 0; i < skip; i++)
				(void)mpg__items_next(&it, &item);
			mpk_get_align(&it.r, 16);
			res.items = it.r.p;
			res.items_len = it.r.left;
		}
		res.h.first = next;
		res.h.count -= skip;
		res.h.elapsed_ns = 0;
		res.nshm = 0;
		if (apply_results(p, w, c, &res) == 0)
			p->stats.tasks_rescued += res.h.count;
	}
	free(mem);
}
