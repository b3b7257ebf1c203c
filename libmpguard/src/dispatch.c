/* The dispatcher thread: the only code that talks to workers and to the
 * fork server. It sends chunks of tasks, collects results, turns worker
 * deaths into task errors, replaces workers, applies the failure policy and
 * runs the user's callbacks (without the pool lock). */
#include "pool-int.h"
#include "arena-int.h"
#include "crash-int.h"
#include "fdpass-int.h"
#include "proto-int.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define TAG_EVENT 0u
#define TAG_CTL 1u
#define TAG_SOCK 2u
#define TAG_TIMER 3u

static void fail_task(struct mpg_pool *p, struct job *job, size_t index, mpg_error *err);
void mpg__job_maybe_done(struct mpg_pool *p, struct job *job);

/* ---- small helpers ---------------------------------------------------- */

static void ep_ctl(struct mpg_pool *p, int op, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = {.events = events, .data.u64 = tag};
	(void)epoll_ctl(p->epfd, op, fd, &ev);
}

static void close_reg(int *fd)
{
	if (*fd >= 0) {
		mpg__fdreg_del(*fd);
		close(*fd);
		*fd = -1;
	}
}

void mpg__pool_wake(struct mpg_pool *p)
{
	uint64_t one = 1;
	(void)!write(p->evfd, &one, sizeof one);
}

bool mpg__on_dispatcher(struct mpg_pool *p)
{
	return p->thread_started && pthread_equal(pthread_self(), p->thread);
}

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

static int redo_push(struct job *job, struct redo r)
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

/* ---- outcome of tasks --------------------------------------------------- */

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

static int push_ready(struct job *job, struct ready r)
{
	if (job->ready_head > 0 && job->ready_head == job->nready)
		job->ready_head = job->nready = 0;
	if (grow((void **)&job->ready, job->nready, &job->ready_cap, sizeof *job->ready, 64) < 0)
		return -ENOMEM;
	job->ready[job->nready++] = r;
	return 0;
}

static void begin_stop(struct mpg_pool *p, enum pool_state st);

/* A task failed for good: record, callback, policy. Takes err (may be NULL
 * on allocation failure: the task still ends, as failed). */
static void fail_task(struct mpg_pool *p, struct job *job, size_t index, mpg_error *err)
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
		       push_ready(job, (struct ready){.index = index, .err = err}) == 0;
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
		begin_stop(p, POOL_ABORTING); /* first: the call must see the abort */
	task_ended(p, job);
}

/* The error of a failed attempt, symbolized; NULL when out of memory. */
static mpg_error *failure_error(struct mpg_pool *p, struct worker *w, size_t index,
				unsigned attempts, const struct mpg__failure *f)
{
	return mpg__failure_error(f, &p->symcache, w ? &w->modules : NULL, index,
				  w ? (int)w->slot : -1, w ? w->pid : 0, attempts + 1);
}

/* A task failed in a worker: retry or fail it. */
static void task_failed_ex(struct mpg_pool *p, struct worker *w, struct job *job, size_t index,
			   unsigned attempts, const struct mpg__failure *f)
{
	if (job->cancelled)
		return; /* ended by the cancellation */
	if (!f->no_retry && attempts < job->cfg.retries &&
	    redo_push(job, (struct redo){.first = index, .count = 1, .attempts = attempts + 1,
					  .avoid = w ? (int)w->slot : -1}) == 0) {
		p->stats.tasks_retried++;
		if (job->pr)
			job->pr->retried++;
		/* A failure that a retry may hide still gets its record. */
		struct delivery d = {.job = job, .index = index, .retrying = true, .free_err = true};
		if (p->log_writer && (d.err = failure_error(p, w, index, attempts, f)) &&
		    mpg__add_delivery(p, &d) < 0)
			mpg__error_free(d.err);
		return;
	}
	fail_task(p, job, index, failure_error(p, w, index, attempts, f));
}

static void task_failed(struct mpg_pool *p, struct worker *w, struct job *job, size_t index,
			unsigned attempts, mpg_error_kind kind, int code, int sig, const char *msg)
{
	struct mpg__failure f = {.kind = kind, .code = code, .sig = sig, .msg = msg};
	task_failed_ex(p, w, job, index, attempts, &f);
}

/* A raised error from a result frame: code, message, where it was raised. */
static void raised(struct mpg_pool *p, struct worker *w, struct job *job, size_t index,
		   unsigned attempts, const struct mpg__raised *r)
{
	char msg[MPG_MAX_MESSAGE];
	uint64_t ips[MPG_MAX_FRAMES];
	struct mpg__failure f;
	mpg__raised_failure(r, msg, sizeof msg, ips, &f);
	task_failed_ex(p, w, job, index, attempts, &f);
}

static void task_ok(struct mpg_pool *p, struct job *job, size_t index, const void *data,
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
		    push_ready(job, (struct ready){.index = index, .data = data, .len = len,
						   .blob = own}) == 0 && own)
			own->refs++;
		break;
	case JOB_SUBMIT:
		job->slots[0] = (struct slotref){data, len};
		if (job->on_result) {
			struct delivery d = {.job = job, .data = data, .len = len, .index = index};
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
	for (struct job **pp = &p->jobs_head; *pp; pp = &(*pp)->next) {
		if (*pp == job) {
			*pp = job->next;
			if (p->jobs_tail == job) {
				p->jobs_tail = NULL;
				for (struct job *j = p->jobs_head; j; j = j->next)
					p->jobs_tail = j;
			}
			break;
		}
	}
	job->next = NULL;
	pthread_cond_broadcast(&p->cond);
	if (job->user_gone) {
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

/* ---- workers ------------------------------------------------------------ */

static void free_outframes(struct worker *w)
{
	while (w->out_head) {
		struct outframe *f = w->out_head;
		w->out_head = f->next;
		for (unsigned i = 0; i < f->nfds; i++)
			close(f->fds[i]);
		free(f->data);
		free(f);
	}
	w->out_tail = NULL;
}

static void signal_worker(struct mpg_pool *p, struct worker *w, int sig)
{
	/* pidfd when the kernel (or valgrind) has it, else ask the fork
	 * server, which signals only its own unreaped child: no pid reuse race. */
	if (w->pidfd >= 0 && pidfd_send_signal(w->pidfd, sig, NULL, 0) == 0)
		return;
	if (w->pid > 0 && p->ctlfd >= 0)
		(void)mpg__fs_request_kill(p->ctlfd, w->slot, w->pid, sig);
}

static void kill_worker(struct mpg_pool *p, struct worker *w)
{
	signal_worker(p, w, SIGKILL);
}

static void note_culprit(struct mpg_pool *p, struct worker *w);
static void protocol_error(struct mpg_pool *p, struct worker *w, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void protocol_error(struct mpg_pool *p, struct worker *w, const char *fmt, ...)
{
	if (w->protocol_error || w->garbage_run)
		return; /* the first says it */
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&w->protocol_error, fmt, ap) < 0)
		w->protocol_error = NULL;
	va_end(ap);
	if (!w->protocol_error)
		w->protocol_error = strdup("garbage on the worker's channel");
	/* It dies for it, and so does the task it was running then; what it
	 * sends meanwhile is still read, for the tasks it finished. */
	note_culprit(p, w);
	kill_worker(p, w);
}

static int spawn_worker(struct mpg_pool *p, struct worker *w)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* The slot's status page still shows what the dead worker was doing:
	 * a task that hung shows as running. The new worker clears the page
	 * when it starts, but until then on_tick would time that stale task
	 * against the new worker and, after the limit, send it SIGXCPU while
	 * it starts (killing it before its handler is set, and charging its
	 * tasks a loss): a slow start (sanitizers, a loaded machine) did it.
	 * Nothing else writes the page now: the old worker is reaped. */
	struct mpg__wstatus *ws = &p->wcfg.status[w->slot];
	atomic_store(&ws->state, WS_IDLE);
	atomic_store(&ws->tasks_done, 0);
	/* Its log pipe, and its stdout/stderr if captured: the worker's death
	 * is each channel's EOF, after which the aggregator drains and closes.
	 * A channel that cannot be made leaves the worker without it. */
	int io[3];
	char name[32];
	snprintf(name, sizeof name, "worker-%u", w->slot);
	(void)mpg__log_pipes_open(p->log, name, (int)w->slot, p->opts.capture, io, w->capture_ch);
	int r = mpg__fs_request_spawn(p->ctlfd, w->slot, sv[1], io);
	close(sv[1]);
	mpg__log_pipes_close(io);
	if (r < 0) {
		close(sv[0]);
		return r;
	}
	(void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
	w->sock = sv[0];
	mpg__fdreg_add(w->sock);
	w->state = W_SPAWNING;
	w->sock_eof = false;
	w->killed_by_pool = false;
	w->tasks_done = w->tasks_sent = 0;
	w->ready_ns = 0;
	w->retiring = false;
	w->timing_out = false;
	w->timeout_killed = false;
	w->have_stack = false;
	w->watch_since = 0;
	w->ctx_job = 0;
	w->spawn_ns = mpg__now_ns();
	p->live_workers++;
	ep_ctl(p, EPOLL_CTL_ADD, w->sock, EPOLLIN, TAG_SOCK | ((uint64_t)w->slot << 8));
	return 0;
}

static void flush_out(struct mpg_pool *p, struct worker *w)
{
	while (w->out_head && w->sock >= 0 && !w->sock_eof) {
		struct outframe *f = w->out_head;
		union {
			char buf[CMSG_SPACE(sizeof(int) * MPG_CHUNK_MAX_FDS)];
			struct cmsghdr align;
		} u;
		size_t own = f->len - f->ext_len;
		struct iovec iov[2];
		int niov = 0;
		if (f->sent < own)
			iov[niov++] = (struct iovec){f->data + f->sent, own - f->sent};
		if (f->ext_len) {
			size_t done = f->sent > own ? f->sent - own : 0;
			iov[niov++] = (struct iovec){(void *)(f->ext + done), f->ext_len - done};
		}
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
		/* The fds go with the frame's first byte. */
		mpg__cmsg_put_fds(&mh, u.buf, f->fds, f->sent == 0 ? f->nfds : 0);
		ssize_t n = sendmsg(w->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				if (!w->want_out) {
					w->want_out = true;
					ep_ctl(p, EPOLL_CTL_MOD, w->sock, EPOLLIN | EPOLLOUT,
					       TAG_SOCK | ((uint64_t)w->slot << 8));
				}
				return;
			}
			/* EPIPE etc.: the worker is gone; its exit report follows. */
			free_outframes(w);
			return;
		}
		p->stats.socket_bytes += (uint64_t)n;
		f->sent += (size_t)n;
		if (f->sent == f->len) {
			w->out_head = f->next;
			if (!w->out_head)
				w->out_tail = NULL;
			for (unsigned i = 0; i < f->nfds; i++)
				close(f->fds[i]);
			free(f->data);
			free(f);
			p->stats.messages_sent++;
		}
	}
	if (w->want_out && !w->out_head && w->sock >= 0 && !w->sock_eof) {
		w->want_out = false;
		ep_ctl(p, EPOLL_CTL_MOD, w->sock, EPOLLIN, TAG_SOCK | ((uint64_t)w->slot << 8));
	}
}

/* ---- sending chunks ------------------------------------------------------ */

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
		if (job->cancelled)
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
		(void)redo_push(job, r);
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
				fail_task(p, job, r.first, mpg__error_new(MPG_ERR_RAISED, r.first, -1, 0,
									  rr, 0, r.attempts + 1, m));
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
	flush_out(p, w);
	return 1;

nomem:
	for (unsigned i = 0; f && i < f->nfds; i++)
		close(f->fds[i]);
	free(f);
	free(c);
	mpk_buf_free(&b);
	unpick(job, r);
	return -ENOMEM;
}

static void schedule(struct mpg_pool *p)
{
	if (p->state != POOL_RUNNING && p->state != POOL_CLOSED)
		return;
	bool progress = true;
	while (progress) {
		progress = false;
		for (unsigned i = 0; i < p->nworkers; i++) {
			struct worker *w = &p->workers[i];
			if (w->state != W_READY || w->ninflight >= MPG_PIPELINE || w->sock_eof)
				continue;
			if (send_chunk(p, w) > 0)
				progress = true;
		}
	}
}

/* ---- receiving results ------------------------------------------------- */

static int take_fd(struct worker *w)
{
	if (w->nfdq == 0)
		return -1;
	int fd = w->fdq[0];
	memmove(w->fdq, w->fdq + 1, --w->nfdq * sizeof w->fdq[0]);
	return fd;
}

/* The fds of a frame that is not used: closed, so the next frame's are
 * at the head of the queue. */
static void drop_fds(struct worker *w, unsigned n)
{
	for (; n && w->nfdq; n--)
		close(take_fd(w));
}

static void chunk_pop(struct worker *w)
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
static void note_culprit(struct mpg_pool *p, struct worker *w)
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
	char msg[160];
	snprintf(msg, sizeof msg, "%s", w->protocol_error ? w->protocol_error :
		 "worker wrote bytes that are not a valid frame");
	if (w->garbage_run && !w->protocol_error)
		snprintf(msg, sizeof msg, "worker wrote %zu bytes that are not a valid frame",
			 w->garbage_run);
	task_failed(p, w, c->job, index, c->attempts, MPG_ERR_PROTOCOL, 0, 0, msg);
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
	if (res->h.elapsed_ns) {
		double per = (double)res->h.elapsed_ns / count;
		job->ns_per_task = job->ns_per_task < 0 ? per : 0.5 * job->ns_per_task + 0.5 * per;
		p->last_fn = job->fn;
		p->last_ns_per_task = job->ns_per_task;
	}
	c->done += count;
	if (job->cancelled) {
		drop_fds(w, res->nshm);
		goto out;
	}

	if (res->fixed) {
		memcpy(job->out_base + first * job->out_size, res->fixed, (size_t)count * job->out_size);
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
				raised(p, w, job, first + rel, c->attempts, &err);
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
				drop_fds(w, 1);
			continue;
		}
		if (item.kind == ITEM_INLINE) {
			bytes += (double)item.len;
			if (job->kind == JOB_IMAP) {
				struct blob *b = frame_blob(job, item.data, item.len);
				task_ok(p, job, index, b ? b->mem : NULL, b ? item.len : 0, b);
				if (b && b->refs == 0)
					mpg__blob_free(b);
			} else {
				task_ok(p, job, index, (const uint8_t *)fb->mem + (item.data - res->items),
					item.len, fb);
			}
		} else if (item.kind == ITEM_SHM) {
			int fd = take_fd(w);
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
				task_failed(p, w, job, index, c->attempts, MPG_ERR_PROTOCOL, -EBADMSG, 0,
					    msg);
				continue;
			}
			struct blob *b = blob_new(job, mbase, maplen, true);
			if (!b) {
				munmap(mbase, maplen);
				task_failed(p, w, job, index, c->attempts, MPG_ERR_RAISED, -ENOMEM, 0,
					    "out of memory in the parent");
				continue;
			}
			task_ok(p, job, index, m, item.len, b);
			if (job->kind == JOB_IMAP && b->refs == 0)
				mpg__blob_free(b);
		} else {
			raised(p, w, job, index, c->attempts, &item.err);
		}
	}
	bytes /= count;
	job->result_bytes = job->result_bytes <= 0 ? bytes : 0.5 * job->result_bytes + 0.5 * bytes;
out:
	if (c->done == c->count)
		chunk_pop(w);
	return 0;
}

static void process_result(struct mpg_pool *p, struct worker *w, const uint8_t *body, size_t len,
			   unsigned nfds)
{
	struct mpg__result res;
	if (mpg__result_decode(body, len, &res) < 0 || (res.fixed ? 0 : res.nshm) != nfds) {
		drop_fds(w, nfds);
		protocol_error(p, w, "worker sent a malformed result frame (%zu bytes)", len);
		return;
	}
	struct chunk *c = result_chunk(w, res.h.job, res.h.first, res.h.count);
	if (!c || nfds > w->nfdq) {
		drop_fds(w, nfds);
		protocol_error(p, w, "worker sent a result frame that matches no task sent to it");
		return;
	}
	bool fixed = c->job->kind == JOB_ARRAY;
	if (fixed != !!res.fixed || (fixed && res.h.out_size != c->job->out_size)) {
		drop_fds(w, nfds);
		protocol_error(p, w, "worker sent results of the wrong shape");
		return;
	}
	if (apply_results(p, w, c, &res) < 0) {
		drop_fds(w, nfds);
		protocol_error(p, w, "out of memory for the worker's results");
	}
}

/* A dead worker's finished tasks whose results it had not sent: taken from
 * its arena, so that no task that ended runs again. Only the oldest chunk
 * can have any (results go in order); the frames read before may have
 * delivered some of them already. */
static void rescue_results(struct mpg_pool *p, struct worker *w)
{
	struct mpg__result res;
	void *mem;
	struct chunk *c = w->inflight_head;
	if (!c || mpg__arena_rescue(w->arena, &res, &mem) <= 0)
		return;
	uint64_t next = c->first + c->done;
	bool fixed = c->job->kind == JOB_ARRAY;
	if (res.h.job == c->job->id && res.h.first <= next && res.h.first + res.h.count > next &&
	    res.h.first + res.h.count <= c->first + c->count && fixed == !!res.fixed &&
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

/* The crash handler's last words: kept until the worker's exit is known. */
static void crash_report(struct mpg_pool *p, struct worker *w, const uint8_t *body, size_t len)
{
	struct mpg__crash_head c;
	if (mpg__crash_decode(body, len, &c, w->crash_ips) < 0) {
		protocol_error(p, w, "worker sent a malformed crash report (%zu bytes)", len);
		return;
	}
	w->crash = c;
	w->crashed = true;
	if ((p->wcfg.pause & MPG_PAUSE_ON_CRASH) && p->log_writer)
		(void)mplog_writer_log(p->log_writer, MPLOG_WARN, NULL, 0, NULL, NULL, 0,
				       "worker %u (pid %d) crashed on %s and is paused for a "
				       "debugger, up to %u s: mpattach gdb %d.%u %u, or mpattach "
				       "resume %d.%u %u",
				       w->slot, (int)w->pid, mpg__signal_name((int)c.signo),
				       p->wcfg.pause_timeout_ms / 1000, (int)p->creator,
				       p->wcfg.pool_seq, w->slot, (int)p->creator, p->wcfg.pool_seq,
				       w->slot);
}

/* Where a timed-out task is stuck: keep it, and end the worker now. */
static void stack_report(struct mpg_pool *p, struct worker *w, const uint8_t *body, size_t len)
{
	if (mpg__stack_decode(body, len, &w->stack_nips, w->stack_ips) < 0) {
		protocol_error(p, w, "worker sent a malformed stack report (%zu bytes)", len);
		return;
	}
	w->have_stack = true;
	if (w->timing_out) {
		w->timeout_killed = true;
		kill_worker(p, w);
	}
}

static void modules_report(struct mpg_pool *p, struct worker *w, const uint8_t *body, size_t len)
{
	struct mpg__modlist l;
	int r = mpg__modlist_decode(body, len, &l);
	if (r < 0) {
		protocol_error(p, w, r == -ENOMEM ? "out of memory for the worker's module list" :
			       "worker sent a malformed module list (%zu bytes)", len);
		return;
	}
	mpg__modlist_free(&w->modules);
	w->modules = l;
}

/* Its first words: set up, ready for tasks, and where its results are. */
static void hello(struct mpg_pool *p, struct worker *w, const uint8_t *body, size_t len,
		  unsigned nfds)
{
	if (mpg__hello_decode(body, len, nfds) < 0 || w->ready_ns || nfds > w->nfdq) {
		drop_fds(w, nfds);
		protocol_error(p, w, "worker sent a malformed hello (%zu bytes)", len);
		return;
	}
	w->ready_ns = mpg__now_ns();
	if (nfds) {
		w->arena = take_fd(w);
		mpg__fdreg_add(w->arena);
	}
}

/* The frame at the head of w->in, whole and of a worker's type. */
static void handle_frame(struct mpg_pool *p, struct worker *w, const struct mpk_frame_header *h,
			 const uint8_t *body)
{
	if (h->nfds && h->type != MSG_RESULT && h->type != MSG_HELLO) {
		drop_fds(w, h->nfds);
		protocol_error(p, w, "worker sent file descriptors with a frame that has none");
		return;
	}
	switch (h->type) {
	case MSG_RESULT:
		process_result(p, w, body, h->length, h->nfds);
		break;
	case MSG_CRASH:
		crash_report(p, w, body, h->length);
		break;
	case MSG_STACK:
		stack_report(p, w, body, h->length);
		break;
	case MSG_MODULES:
		modules_report(p, w, body, h->length);
		break;
	case MSG_HELLO:
		hello(p, w, body, h->length, h->nfds);
		break;
	default:
		protocol_error(p, w, "worker sent a frame of type %u, which is not a worker's",
			       h->type);
		break;
	}
}

/* Frames in w->in, as far as they are whole. Garbage (bytes that cannot
 * start a frame: seen at its first byte) makes the worker die for it; the
 * frames after it are still taken, so its finished tasks count. */
static void parse_frames(struct mpg_pool *p, struct worker *w)
{
	size_t off = 0;
	while (off < w->in.len) {
		const uint8_t *at = w->in.data + off;
		size_t avail = w->in.len - off, flen;
		int r = mpg__frame_peek(at, avail, MSG_WORKER_FIRST, MSG_WORKER_LAST, &flen);
		if (r == 0)
			break;
		if (r < 0) {
			size_t skip = mpg__frame_resync(at, avail);
			if (!w->garbage_run && !w->protocol_error) {
				w->garbage_open = true;
				note_culprit(p, w);
				kill_worker(p, w);
			}
			if (w->garbage_open)
				w->garbage_run += skip;
			off += skip;
			continue;
		}
		w->garbage_open = false;
		struct mpk_frame_header h;
		memcpy(&h, at, sizeof h);
		handle_frame(p, w, &h, at + sizeof h);
		off += flen;
	}
	mpk_buf_consume(&w->in, off);
}

/* Read everything the worker sent; process complete frames. */
static void read_worker(struct mpg_pool *p, struct worker *w)
{
	while (w->sock >= 0 && !w->sock_eof) {
		size_t want = 64 * 1024;
		if (w->in.len >= sizeof(struct mpk_frame_header)) {
			const struct mpk_frame_header *h = (const void *)w->in.data;
			size_t total = sizeof *h + h->length;
			if (h->magic == MPK_FRAME_MAGIC && h->length <= MPK_FRAME_MAX_BODY &&
			    total > w->in.len && total - w->in.len > want)
				want = total - w->in.len;
		}
		if (mpk_buf_reserve(&w->in, want) < 0) {
			protocol_error(p, w, "out of memory reading from the worker");
			w->sock_eof = true;
			break;
		}
		union {
			char buf[CMSG_SPACE(sizeof(int) * MPG_CHUNK_MAX_FDS)];
			struct cmsghdr align;
		} u;
		struct iovec iov = {.iov_base = w->in.data + w->in.len, .iov_len = w->in.cap - w->in.len};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = u.buf, .msg_controllen = sizeof u.buf};
		ssize_t n = recvmsg(w->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				w->sock_eof = true;
			break;
		}
		unsigned dropped = 0;
		w->nfdq += mpg__cmsg_take_fds(&mh, w->fdq + w->nfdq,
					      sizeof w->fdq / sizeof w->fdq[0] - w->nfdq, &dropped);
		if (dropped || (mh.msg_flags & MSG_CTRUNC)) {
			/* The queue no longer matches the frames: stop here. */
			protocol_error(p, w, "worker sent more file descriptors than allowed");
			w->sock_eof = true;
			break;
		}
		if (n == 0) {
			w->sock_eof = true;
			break;
		}
		p->stats.socket_bytes += (uint64_t)n;
		w->in.len += (size_t)n;
		parse_frames(p, w);
	}
	if (w->sock_eof && w->sock >= 0)
		ep_ctl(p, EPOLL_CTL_DEL, w->sock, 0, 0);
}

/* ---- worker death ------------------------------------------------------- */

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
			task_failed_ex(p, w, job, first + i, attempts, &lf);
		return;
	}
	if (redo_push(job, (struct redo){.first = first, .count = count, .attempts = attempts,
					  .lost = lost, .avoid = avoid}) < 0) {
		for (size_t i = 0; i < count; i++)
			task_failed_ex(p, w, job, first + i, attempts,
				       &(struct mpg__failure){.kind = MPG_ERR_CANCELLED, .code = -ENOMEM,
							      .msg = "out of memory while re-queueing the task",
							      .no_retry = true});
	}
}

/* Stop talking to a worker: no more frames out, socket closed. A live
 * worker sees EOF and exits 0. */
static void drop_socket(struct mpg_pool *p, struct worker *w)
{
	free_outframes(w);
	if (w->sock >= 0)
		ep_ctl(p, EPOLL_CTL_DEL, w->sock, 0, 0);
	close_reg(&w->sock);
}

/* An idle worker that is not needed any more: let it exit, await its report. */
static void let_go(struct mpg_pool *p, struct worker *w)
{
	drop_socket(p, w);
	w->state = W_DRAINING;
}

static void worker_exited(struct mpg_pool *p, struct worker *w, int status)
{
	read_worker(p, w); /* the dead worker's last words are in the socket */
	drop_socket(p, w);
	close_reg(&w->pidfd);
	rescue_results(p, w);
	close_reg(&w->arena);
	while (w->nfdq)
		close(take_fd(w));
	mpk_buf_free(&w->in);

	char garbage[96];
	const char *perr = w->protocol_error;
	if (!perr && w->garbage_run) {
		snprintf(garbage, sizeof garbage, "worker wrote %zu bytes that are not a valid frame",
			 w->garbage_run);
		perr = garbage;
	}
	char msg[256];
	struct mpg__failure death;
	mpg__death_failure(status, perr, w->crashed ? &w->crash : NULL, w->crash_ips, msg,
			   sizeof msg, &death);
	struct mpg__wstatus *ws = &p->wcfg.status[w->slot];
	uint32_t st = atomic_load(&ws->state);
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
			task_failed_ex(p, w, job, windex, c->attempts, &f);
			requeue(p, w, job, windex + 1, end - windex - 1, c->attempts, c->lost, c->avoid,
				&death);
		} else {
			requeue(p, w, job, start, end - start, c->attempts,
				c->lost + (!blamed && !innocent), c->avoid, &death);
		}
		chunk_pop(w);
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
		if (spawn_worker(p, w) < 0)
			w->state = W_EMPTY;
	}
}

/* ---- fork server messages ----------------------------------------------- */

static void broken(struct mpg_pool *p)
{
	/* The fork server is gone: its workers die with it (PDEATHSIG) and
	 * are reaped by init; nothing can be respawned. */
	p->broken = true;
	for (unsigned i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];
		if (w->state == W_EMPTY)
			continue;
		w->killed_by_pool = true;
		kill_worker(p, w);
		worker_exited(p, w, SIGKILL);
	}
	if (p->ctlfd >= 0) {
		ep_ctl(p, EPOLL_CTL_DEL, p->ctlfd, 0, 0);
		close_reg(&p->ctlfd);
	}
	begin_stop(p, POOL_TERMINATING);
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
			w->pid = m.pid;
			(void)mpg__log_pipes_set_pid(p->log, w->capture_ch, m.pid);
			w->pidfd = fd;
			mpg__fdreg_add(fd);
			w->state = W_READY;
			p->stats.workers_started++;
			if (p->state == POOL_ABORTING || p->state == POOL_TERMINATING) {
				w->killed_by_pool = true;
				kill_worker(p, w);
			}
			pthread_cond_broadcast(&p->cond);
			break;
		case FS_SPAWN_FAILED:
			if (fd >= 0)
				close(fd);
			close_reg(&w->sock);
			w->state = W_EMPTY;
			p->live_workers--;
			if (p->live_workers == 0 && p->jobs_head)
				broken(p);
			break;
		case FS_EXITED:
			if (fd >= 0)
				close(fd);
			if (w->state != W_EMPTY && w->pid == m.pid)
				worker_exited(p, w, m.value);
			break;
		default:
			if (fd >= 0)
				close(fd);
			break;
		}
	}
}

/* ---- time limits and recycling ------------------------------------------ */

static unsigned chunk_timeout(const struct worker *w, uint64_t job_id)
{
	for (const struct chunk *c = w->inflight_head; c; c = c->next)
		if (c->job->id == job_id)
			return c->job->cfg.timeout_ms;
	return 0;
}

/* Watch what each worker runs, from its shared status page: a task seen
 * running for longer than its limit is timed out. No cost to the tasks. */
static void on_tick(struct mpg_pool *p)
{
	uint64_t expirations;
	(void)!read(p->timerfd, &expirations, sizeof expirations);
	uint64_t now = mpg__now_ns();
	for (unsigned i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];
		if (w->state != W_READY || !w->ninflight)
			continue;
		if (w->timing_out) {
			if (now >= w->timeout_deadline) {
				w->timeout_killed = true;
				kill_worker(p, w); /* no report in time */
			}
			continue;
		}
		struct mpg__wstatus *ws = &p->wcfg.status[i];
		if (atomic_load_explicit(&ws->paused, memory_order_relaxed) != WP_NONE ||
		    atomic_load_explicit(&ws->crashing, memory_order_relaxed)) {
			w->watch_since = 0; /* a debugger's or a crash report's time */
			continue;
		}
		uint32_t st = atomic_load_explicit(&ws->state, memory_order_relaxed);
		uint64_t job = atomic_load_explicit(&ws->job, memory_order_relaxed);
		uint64_t index = atomic_load_explicit(&ws->index, memory_order_relaxed);
		uint64_t done = atomic_load_explicit(&ws->tasks_done, memory_order_relaxed);
		if (st != WS_RUNNING || job != w->watch_job || index != w->watch_index ||
		    done != w->watch_done || !w->watch_since) {
			w->watch_job = job;
			w->watch_index = index;
			w->watch_done = done;
			w->watch_since = st == WS_RUNNING ? now : 0;
			continue;
		}
		unsigned limit = chunk_timeout(w, job);
		if (limit && now - w->watch_since >= (uint64_t)limit * 1000000u) {
			w->timing_out = true;
			w->timeout_ms = limit;
			w->timeout_deadline = now + MPG_TIMEOUT_GRACE_NS;
			signal_worker(p, w, SIGXCPU); /* report where you are */
		}
	}
	mpg__progress_tick(p, now);
}

/* Tick at a tenth of the smallest time limit in use (5 ms to 250 ms). */
static void update_timer(struct mpg_pool *p)
{
	unsigned min = 0;
	for (const struct job *j = p->jobs_head; j; j = j->next)
		if (j->cfg.timeout_ms && (!min || j->cfg.timeout_ms < min))
			min = j->cfg.timeout_ms;
	uint64_t tick = 0;
	if (min) {
		tick = (uint64_t)min * 100000u; /* a tenth, in ns */
		if (tick < 5000000u)
			tick = 5000000u;
		if (tick > 250000000u)
			tick = 250000000u;
	}
	uint64_t ptick = mpg__progress_tick_ns(p);
	if (ptick && (!tick || ptick < tick))
		tick = ptick;
	if (tick == p->tick_ns)
		return;
	p->tick_ns = tick;
	struct itimerspec its = {
		.it_interval = {(time_t)(tick / 1000000000u), (long)(tick % 1000000000u)},
		.it_value = {(time_t)(tick / 1000000000u), (long)(tick % 1000000000u)},
	};
	(void)timerfd_settime(p->timerfd, 0, &its, NULL);
}

/* max_tasks_per_worker: a worker whose quota is done is let go (EOF: it
 * exits 0) and replaced. */
static void recycle_workers(struct mpg_pool *p)
{
	if (!p->opts.max_tasks || (p->state != POOL_RUNNING && p->state != POOL_CLOSED))
		return;
	for (unsigned i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];
		if (w->state != W_READY || w->ninflight || w->tasks_sent < p->opts.max_tasks)
			continue;
		let_go(p, w);
		w->retiring = true;
	}
}

/* ---- stopping ------------------------------------------------------------ */

static void begin_stop(struct mpg_pool *p, enum pool_state st)
{
	if (p->state == POOL_ABORTING || p->state == POOL_TERMINATING || p->state == POOL_STOPPED)
		return;
	p->state = st;
	p->closed = true;
	for (struct job *job = p->jobs_head; job; job = job->next)
		job->cancelled = true;
	for (unsigned i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];
		if (w->state == W_EMPTY)
			continue;
		w->killed_by_pool = true;
		kill_worker(p, w);
	}
	pthread_cond_broadcast(&p->cond);
}

void mpg__pool_cancel_all(struct mpg_pool *p, bool abort)
{
	begin_stop(p, abort ? POOL_ABORTING : POOL_TERMINATING);
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
		mpg_error *err = mpg__error_new(MPG_ERR_CANCELLED, 0, -1, 0, 0, 0, 0, msg);
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
		let_go(p, w);
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
		ep_ctl(p, EPOLL_CTL_DEL, p->ctlfd, 0, 0);
		close_reg(&p->ctlfd); /* EOF: the server exits */
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
		if (spawn_worker(p, &p->workers[i]) < 0)
			p->workers[i].state = W_EMPTY;
	p->spawned_initial = true;
	if (p->live_workers == 0)
		broken(p);
	pthread_cond_broadcast(&p->cond);
	for (;;) {
		/* Callbacks may end jobs, which may let the pool retire or
		 * stop, which may queue callbacks: settle before sleeping. */
		do {
			deliver(p);
			schedule(p);
			recycle_workers(p);
			retire_idle(p);
			if ((p->state == POOL_ABORTING || p->state == POOL_TERMINATING) &&
			    p->live_workers == 0) {
				if (p->abort_error && p->exit_status_on_abort >= 0)
					exit_on_abort(p); /* before any caller learns of the abort */
				finish_stop(p);
			}
		} while (p->ndeliveries);
		mpg__pool_bury(p);
		if (p->state == POOL_STOPPED)
			break;
		update_timer(p);
		pthread_mutex_unlock(&p->lock);
		int n = epoll_wait(p->epfd, evs, 64, -1);
		pthread_mutex_lock(&p->lock);
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
				on_tick(p);
			} else {
				struct worker *w = &p->workers[tag >> 8];
				if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					read_worker(p, w);
				if (evs[i].events & EPOLLOUT)
					flush_out(p, w);
			}
		}
	}
	stop_server(p);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}
