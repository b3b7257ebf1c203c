/* SPDX-License-Identifier: MIT */
/* The parent-side aggregator: owns channels (read ends), waits on them with
 * epoll, reads without blocking, hands the bytes to the channel parsers
 * and the resulting records to the sinks. One mutex protects everything;
 * epoll_wait runs outside it so channels can be added from other threads
 * while a dispatcher waits. A child's log channel may have a ring: it is
 * read at every dispatch, and its writers wake us (a frame on the
 * channel's pipe) only when we are about to sleep. */
#include "aggregator-int.h"
#include "ring-int.h"
#include "writer-int.h"
#include "text-int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define WAKE_ID 0u /* epoll data of the eventfd */
#define SINK_ID UINT64_MAX /* of a blocked sink's fd: room to write */
#define READ_CHUNK (64u << 10)
#define DISPATCH_BUDGET (256u << 10) /* bytes per channel per dispatch */

_Thread_local const struct mplog_aggregator *mplog__in_callback;

/* Refuse use from a forked child, and re-entry from a sink callback. */
#define CHECK_USABLE(a)                                                        \
	do {                                                                   \
		if (!(a))                                                      \
			return -EINVAL;                                        \
		if (getpid() != (a)->owner)                                    \
			return -ECHILD;                                        \
		if (mplog__in_callback == (a))                                 \
			return -EDEADLK;                                       \
	} while (0)

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

MPLOG_EXPORT int mplog_aggregator_new(mplog_aggregator **ret)
{
	if (!ret)
		return -EINVAL;
	mplog_aggregator *a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	a->owner = getpid();
	a->next_id = 1;
	a->evfd = -1;
	a->status.fd = -1;
	a->rank = -1;
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	int r = -errno;
	if (a->epfd < 0)
		goto fail;
	a->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = -errno;
	if (a->evfd < 0)
		goto fail;
	/* No child forked from now on keeps them (nor the channels' read
	 * ends and the sinks' files): a worker's stray write would land in
	 * the log. */
	mpk_fdreg_add(a->epfd);
	mpk_fdreg_add(a->evfd);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_ID};
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->evfd, &ev) < 0) {
		r = -errno;
		goto fail;
	}
	pthread_mutex_init(&a->lock, NULL);
	*ret = a;
	return 0;
fail:
	mpk_fdreg_close(&a->epfd);
	mpk_fdreg_close(&a->evfd);
	free(a);
	return r;
}

/* Watch the fd of a sink that waits for room (EPOLLOUT wakes the
 * dispatcher, whose round flushes it), and only while it waits: a failed
 * one (a pipe without reader) would be "ready" for ever. */
static void watch_sinks(mplog_aggregator *a)
{
	for (size_t i = 0; i < a->nsinks; i++) {
		mplog_sink *s = a->sinks[i];
		bool want = s->pollable && mplog__sink_blocked(s);
		if (want == s->watched)
			continue;
		struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = SINK_ID};
		if (epoll_ctl(a->epfd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, s->wfd, &ev) == 0)
			s->watched = want;
		else if (want)
			s->pollable = false; /* EPERM: never blocks, never watched */
		else
			s->watched = false;
	}
}

/* Write out what the sinks hold, without blocking; then what they have
 * to report about themselves, once (more reports wait for the next
 * round). */
static void flush_sinks(mplog_aggregator *a)
{
	bool reports = false;
	for (size_t i = 0; i < a->nsinks; i++) {
		mplog__sink_flush(a->sinks[i]);
		reports |= a->sinks[i]->report != REPORT_NONE;
	}
	if (reports) {
		mplog__sink_reports(a);
		for (size_t i = 0; i < a->nsinks; i++)
			mplog__sink_flush(a->sinks[i]);
	}
	watch_sinks(a);
}

/* The error of a fd or file sink failing now, else the first one seen
 * since the last call (then forgotten); 0. Lock held. */
static int sink_errors(mplog_aggregator *a)
{
	int r = 0;
	for (size_t i = 0; i < a->nsinks; i++) {
		mplog_sink *s = a->sinks[i];
		int e = s->err && s->kind != SINK_SYSLOG ? s->err : s->err_seen;
		s->err_seen = 0;
		if (!r)
			r = e;
	}
	return r;
}

/* Wait, without the lock, for the blocked sinks to take their queues,
 * until one makes no progress for MPLOG_SINK_STALL_MS. At the end (the
 * aggregator is being freed), drop what a sink has not taken, failing or
 * blocked (counted, and reported to the others); else it stays queued. */
static void drain_sinks(mplog_aggregator *a, bool end)
{
	for (;;) {
		pthread_mutex_lock(&a->lock);
		flush_sinks(a);
		size_t n = 0;
		for (size_t i = 0; i < a->nsinks; i++)
			n += a->sinks[i]->pollable && mplog__sink_blocked(a->sinks[i]);
		struct pollfd *pf = n ? calloc(n, sizeof *pf) : NULL;
		n = 0;
		for (size_t i = 0; pf && i < a->nsinks; i++)
			if (a->sinks[i]->pollable && mplog__sink_blocked(a->sinks[i]))
				pf[n++] = (struct pollfd){.fd = a->sinks[i]->wfd, .events = POLLOUT};
		pthread_mutex_unlock(&a->lock);
		int k = pf ? poll(pf, n, MPLOG_SINK_STALL_MS) : 0;
		free(pf);
		if (k == 0 || (k < 0 && errno != EINTR))
			break;
	}
	if (!end)
		return;
	pthread_mutex_lock(&a->lock);
	bool dropped = false;
	for (size_t i = 0; i < a->nsinks; i++) {
		mplog_sink *s = a->sinks[i];
		if (s->wfd >= 0 && (mplog__sink_blocked(s) || s->err)) {
			mplog__sink_discard(s);
			dropped = true;
		}
	}
	if (dropped)
		flush_sinks(a); /* the reports, to the sinks that work */
	pthread_mutex_unlock(&a->lock);
}

static size_t find_channel(const mplog_aggregator *a, unsigned id)
{
	for (size_t i = 0; i < a->nch; i++)
		if (a->ch[i]->id == id)
			return i;
	return a->nch;
}

static void close_channel(mplog_aggregator *a, size_t i)
{
	struct mplog__channel *ch = a->ch[i];
	epoll_ctl(a->epfd, EPOLL_CTL_DEL, ch->fd, NULL);
	mplog__channel_free(ch);
	memmove(&a->ch[i], &a->ch[i + 1], (a->nch - i - 1) * sizeof a->ch[0]);
	a->nch--;
}

/* Read channel i until EAGAIN, EOF or budget bytes; parse as we go. At EOF
 * the channel is parsed one last time and closed. Returns true if it was
 * closed. Lock held. */
static bool read_channel(mplog_aggregator *a, size_t i, size_t budget)
{
	struct mplog__channel *ch = a->ch[i];
	size_t got = 0;
	while (got < budget) {
		if (mpk_buf_reserve(&ch->in, READ_CHUNK) < 0) {
			mplog__protocol_error(a, ch, "out of memory, channel dropped", ch->in.len);
			close_channel(a, i);
			return true;
		}
		ssize_t k = read(ch->fd, ch->in.data + ch->in.len, ch->in.cap - ch->in.len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return false;
		if (k <= 0) { /* EOF, or an error that ends the channel */
			if (ch->ring) /* every writer is gone: take all */
				(void)mplog__channel_ring(a, ch, SIZE_MAX, true);
			mplog__channel_parse(a, ch, true);
			close_channel(a, i);
			return true;
		}
		ch->in.len += (size_t)k;
		got += (size_t)k;
		mplog__channel_parse(a, ch, false);
	}
	return false;
}

static void wake(mplog_aggregator *a)
{
	uint64_t one = 1;
	(void)!write(a->evfd, &one, sizeof one);
}

static void do_reopen(mplog_aggregator *a, int *first_err)
{
	atomic_store(&a->reopen_req, false);
	for (size_t i = 0; i < a->nsinks; i++) {
		mplog__sink_flush(a->sinks[i]);
		int r = mplog__sink_reopen(a->sinks[i]);
		if (r < 0 && first_err && *first_err == 0)
			*first_err = r;
	}
}

/* Take up to budget bytes from every ring (lock held). */
static void read_rings(mplog_aggregator *a, size_t budget)
{
	for (size_t i = 0; i < a->nch; i++)
		if (a->ch[i]->ring)
			(void)mplog__channel_ring(a, a->ch[i], budget, false);
}

/* About to sleep, or to let the caller's loop wait on our epoll fd: writers
 * wake us from now on; an entry already there wakes us now. Lock held. */
static void arm_rings(mplog_aggregator *a)
{
	bool ready = false;
	for (size_t i = 0; i < a->nch; i++)
		if (a->ch[i]->ring && mplog__ring_arm(a->ch[i]->ring))
			ready = true;
	if (ready)
		wake(a);
}

/* Read everything now readable on every channel. Lock held. */
static void drain_all(mplog_aggregator *a)
{
	read_rings(a, SIZE_MAX);
	for (size_t i = 0; i < a->nch;) {
		if (!read_channel(a, i, SIZE_MAX))
			i++;
	}
}

static int do_dispatch(mplog_aggregator *a, int timeout_ms)
{
	struct epoll_event ev[32];
	int n = epoll_wait(a->epfd, ev, 32, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	pthread_mutex_lock(&a->lock);
	uint64_t before = a->delivered;
	for (size_t i = 0; i < a->nch; i++) /* awake: writers need not wake us */
		if (a->ch[i]->ring)
			mplog__ring_disarm(a->ch[i]->ring);
	for (int k = 0; k < n; k++) {
		if (ev[k].data.u64 == WAKE_ID) {
			uint64_t v;
			(void)!read(a->evfd, &v, sizeof v);
			continue;
		}
		if (ev[k].data.u64 == SINK_ID)
			continue; /* flushed below */
		size_t i = find_channel(a, (unsigned)ev[k].data.u64);
		if (i < a->nch)
			read_channel(a, i, DISPATCH_BUDGET);
	}
	read_rings(a, DISPATCH_BUDGET);
	if (atomic_load(&a->reopen_req))
		do_reopen(a, NULL);
	flush_sinks(a);
	arm_rings(a);
	uint64_t count = a->delivered - before;
	pthread_mutex_unlock(&a->lock);
	return count > INT32_MAX ? INT32_MAX : (int)count;
}

MPLOG_EXPORT int mplog_aggregator_dispatch(mplog_aggregator *a, int timeout_ms)
{
	CHECK_USABLE(a);
	pthread_mutex_lock(&a->lock);
	bool running = a->running;
	pthread_mutex_unlock(&a->lock);
	if (running)
		return -EBUSY;
	return do_dispatch(a, timeout_ms);
}

MPLOG_EXPORT int mplog_aggregator_fd(const mplog_aggregator *a)
{
	return a ? a->epfd : -EINVAL;
}

MPLOG_EXPORT int mplog_aggregator_flush(mplog_aggregator *a)
{
	CHECK_USABLE(a);
	pthread_mutex_lock(&a->lock);
	drain_all(a);
	for (size_t i = 0; i < a->nch; i++)
		mplog__channel_report_garbage(a, a->ch[i]);
	if (atomic_load(&a->reopen_req))
		do_reopen(a, NULL);
	flush_sinks(a);
	arm_rings(a);
	int r = sink_errors(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

static void *thread_main(void *userdata)
{
	mplog_aggregator *a = userdata;
	while (!atomic_load(&a->stop))
		if (do_dispatch(a, -1) < 0)
			break; /* epoll fd broken: nothing sensible left to do */
	return NULL;
}

MPLOG_EXPORT int mplog_aggregator_start(mplog_aggregator *a)
{
	CHECK_USABLE(a);
	pthread_mutex_lock(&a->lock);
	if (a->running) {
		pthread_mutex_unlock(&a->lock);
		return -EALREADY;
	}
	atomic_store(&a->stop, false);
	/* The thread takes no signal: they stay with the caller's threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&a->thread, NULL, thread_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0)
		a->running = true;
	pthread_mutex_unlock(&a->lock);
	return -r;
}

static void stop_thread(mplog_aggregator *a)
{
	pthread_mutex_lock(&a->lock);
	bool running = a->running;
	pthread_mutex_unlock(&a->lock);
	if (!running)
		return;
	atomic_store(&a->stop, true);
	wake(a);
	pthread_join(a->thread, NULL);
	pthread_mutex_lock(&a->lock);
	a->running = false;
	pthread_mutex_unlock(&a->lock);
}

MPLOG_EXPORT int mplog_aggregator_stop(mplog_aggregator *a)
{
	CHECK_USABLE(a);
	stop_thread(a);
	int r = mplog_aggregator_flush(a); /* drained all the same */
	drain_sinks(a, false);
	pthread_mutex_lock(&a->lock);
	int e = sink_errors(a);
	pthread_mutex_unlock(&a->lock);
	return r ? r : e;
}

static int status_write(mplog_aggregator *a, int fd, const void *data, size_t len);

MPLOG_EXPORT void mplog_aggregator_free(mplog_aggregator *a)
{
	if (!a)
		return;
	bool origin = getpid() == a->owner;
	if (origin) {
		stop_thread(a);
		(void)mplog_aggregator_flush(a);
		pthread_mutex_lock(&a->lock);
		if (a->status.visible) /* leave the terminal clean */
			(void)status_write(a, a->status.fd, "\r\033[K", 4);
		a->status.visible = false;
		pthread_mutex_unlock(&a->lock);
		drain_sinks(a, true);
	}
	/* In a forked child the registry closed our fds at the fork: their
	 * numbers may be the child's own files by now. */
	for (size_t i = 0; i < a->nch; i++) {
		if (!origin)
			a->ch[i]->fd = -1;
		mplog__channel_free(a->ch[i]);
	}
	free(a->ch);
	for (size_t i = 0; i < a->nsinks; i++) {
		if (!origin) { /* a child must not write the parent's output */
			a->sinks[i]->out.len = 0;
			mplog__sink_forget_fd(a->sinks[i]);
		}
		mplog_sink_free(a->sinks[i]);
	}
	free(a->sinks);
	free(a->status.line);
	mpk_buf_free(&a->scratch);
	free(a->kvp);
	if (origin) {
		mpk_fdreg_close(&a->epfd);
		mpk_fdreg_close(&a->evfd);
		pthread_mutex_destroy(&a->lock);
	}
	free(a);
}

MPLOG_EXPORT void mplog_aggregator_freep(mplog_aggregator **a)
{
	if (a) {
		mplog_aggregator_free(*a);
		*a = NULL;
	}
}

MPLOG_EXPORT int mplog_aggregator_add_sink(mplog_aggregator *a, mplog_sink *s)
{
	if (!a || !s) {
		mplog_sink_free(s);
		return -EINVAL;
	}
	int r = 0;
	if (getpid() != a->owner)
		r = -ECHILD;
	else if (mplog__in_callback == a)
		r = -EDEADLK;
	if (r < 0) {
		mplog_sink_free(s);
		return r;
	}
	pthread_mutex_lock(&a->lock);
	mplog_sink **v = realloc(a->sinks, (a->nsinks + 1) * sizeof *v);
	if (v) {
		a->sinks = v;
		a->sinks[a->nsinks++] = s;
		s->status = &a->status;
		s->epfd = a->epfd;
	}
	pthread_mutex_unlock(&a->lock);
	if (!v) {
		mplog_sink_free(s);
		return -ENOMEM;
	}
	return 0;
}

MPLOG_EXPORT int mplog_aggregator_remove_sink(mplog_aggregator *a, mplog_sink *s)
{
	if (!a || !s)
		return -EINVAL;
	if (getpid() != a->owner)
		return -ECHILD;
	if (mplog__in_callback == a)
		return -EDEADLK;
	pthread_mutex_lock(&a->lock);
	size_t i = 0;
	while (i < a->nsinks && a->sinks[i] != s)
		i++;
	bool found = i < a->nsinks;
	if (found) {
		memmove(&a->sinks[i], &a->sinks[i + 1], (a->nsinks - i - 1) * sizeof *a->sinks);
		a->nsinks--;
	}
	pthread_mutex_unlock(&a->lock);
	if (!found)
		return -ENOENT;
	/* Ours alone now: let it take its queue, for a while. */
	mplog__sink_flush(s);
	while (s->pollable && mplog__sink_blocked(s)) {
		struct pollfd pf = {.fd = s->wfd, .events = POLLOUT};
		int k = poll(&pf, 1, MPLOG_SINK_STALL_MS);
		if (k == 0 || (k < 0 && errno != EINTR))
			break;
		mplog__sink_flush(s);
	}
	mplog_sink_free(s);
	return 0;
}

/* Add a channel with a given group (0: its own id). Lock held. */
static int add_locked(mplog_aggregator *a, int fd, mplog_stream stream, const char *name,
		      int worker, unsigned group)
{
	int r;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		r = errno == EBADF ? -EINVAL : -errno;
		close(fd);
		return r;
	}
	struct mplog__channel *ch = calloc(1, sizeof *ch);
	char *nm = strdup(name ? name : "");
	if (!ch || !nm || (a->nch == a->capch && a->capch > SIZE_MAX / 4)) {
		r = -ENOMEM;
		goto fail;
	}
	if (a->nch == a->capch) {
		size_t cap = a->capch ? 2 * a->capch : 8;
		struct mplog__channel **v = realloc(a->ch, cap * sizeof *v);
		if (!v) {
			r = -ENOMEM;
			goto fail;
		}
		a->ch = v;
		a->capch = cap;
	}
	*ch = (struct mplog__channel){
		.id = a->next_id, .group = group ? group : a->next_id, .fd = fd,
		.stream = stream, .name = nm, .worker = worker, .task = -1};
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ch->id};
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		r = -errno;
		goto fail;
	}
	mpk_fdreg_add(fd); /* closed by mplog__channel_free() */
	a->next_id++;
	a->ch[a->nch++] = ch;
	return (int)ch->id;
fail:
	free(ch);
	free(nm);
	close(fd);
	return r;
}

MPLOG_EXPORT int mplog_aggregator_add(mplog_aggregator *a, int fd, mplog_stream stream,
				      const char *name, int worker)
{
	if (!a || fd < 0 || (unsigned)stream > MPLOG_STREAM_STDERR) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	if (getpid() != a->owner || mplog__in_callback == a) {
		close(fd);
		return getpid() != a->owner ? -ECHILD : -EDEADLK;
	}
	pthread_mutex_lock(&a->lock);
	int r = a->next_id > INT32_MAX - 4 ? -ENOSPC : add_locked(a, fd, stream, name, worker, 0);
	if (r == -ENOSPC)
		close(fd);
	pthread_mutex_unlock(&a->lock);
	return r;
}

MPLOG_EXPORT int mplog_aggregator_add_child(mplog_aggregator *a, const char *name, int worker,
					    unsigned flags, mplog_child_fds *ret)
{
	CHECK_USABLE(a);
	if (!ret || (flags & ~(unsigned)(MPLOG_CAPTURE_STDOUT | MPLOG_CAPTURE_STDERR)))
		return -EINVAL;
	int rd[3] = {-1, -1, -1}, wr[3] = {-1, -1, -1}, ring_fd = -1;
	bool want[3] = {true, flags & MPLOG_CAPTURE_STDOUT, flags & MPLOG_CAPTURE_STDERR};
	int r = 0;
	for (int k = 0; k < 3 && r == 0; k++)
		if (want[k])
			r = mplog_pipe(&rd[k], &wr[k]);
	if (r < 0)
		goto fail;
	/* The records' ring; without one (no memfd, no memory) the pipe
	 * carries them, as for any writer on it. */
	struct mplog__ring ring;
	struct mplog__ring_reader *reader = malloc(sizeof *reader);
	if (reader && mplog__ring_create(&ring, &ring_fd) == 0) {
		mplog__ring_reader_init(reader, &ring);
	} else {
		free(reader);
		reader = NULL;
	}
	pthread_mutex_lock(&a->lock);
	unsigned group = a->next_id;
	int first = -1;
	for (int k = 0; k < 3; k++) {
		if (!want[k])
			continue;
		int id = add_locked(a, rd[k], (mplog_stream)k, name, worker, group);
		rd[k] = -1; /* owned (closed on failure) */
		if (id < 0) {
			r = id;
			break;
		}
		if (first < 0) {
			first = id;
			a->ch[a->nch - 1]->ring = reader; /* freed with the channel */
			reader = NULL;
		}
	}
	if (r < 0) { /* undo: drop the channels of this group */
		for (size_t i = a->nch; i-- > 0;)
			if (a->ch[i]->group == group)
				close_channel(a, i);
	}
	pthread_mutex_unlock(&a->lock);
	mplog__ring_reader_free(reader); /* not attached: no log channel */
	if (r < 0)
		goto fail;
	*ret = (mplog_child_fds){.log_fd = wr[0], .stdout_fd = wr[1], .stderr_fd = wr[2],
				 .id = (unsigned)first, .ring_fd = ring_fd};
	return 0;
fail:
	if (ring_fd >= 0)
		close(ring_fd);
	for (int k = 0; k < 3; k++) {
		if (rd[k] >= 0)
			close(rd[k]);
		if (wr[k] >= 0)
			close(wr[k]);
	}
	return r;
}

MPLOG_EXPORT int mplog_aggregator_set_pid(mplog_aggregator *a, unsigned id, int pid)
{
	CHECK_USABLE(a);
	int r = -ENOENT;
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->nch; i++)
		if (a->ch[i]->id == id || a->ch[i]->group == id) {
			a->ch[i]->pid = pid;
			r = 0;
		}
	pthread_mutex_unlock(&a->lock);
	return r;
}

MPLOG_EXPORT int mplog_aggregator_remove(mplog_aggregator *a, unsigned id)
{
	CHECK_USABLE(a);
	if (id == 0)
		return -EINVAL;
	pthread_mutex_lock(&a->lock);
	int r = id < a->next_id ? 0 : -ENOENT;
	for (size_t i = 0; i < a->nch;) {
		struct mplog__channel *ch = a->ch[i];
		if (ch->id != id && ch->group != id) {
			i++;
			continue;
		}
		if (read_channel(a, i, SIZE_MAX))
			continue; /* reached EOF and closed */
		if (ch->ring) /* the child may live on: its writes in flight are lost */
			(void)mplog__channel_ring(a, ch, SIZE_MAX, false);
		mplog__channel_parse(a, ch, true); /* last partial line, garbage */
		close_channel(a, i);
	}
	flush_sinks(a);
	pthread_mutex_unlock(&a->lock);
	return r;
}

MPLOG_EXPORT int mplog_aggregator_reopen(mplog_aggregator *a)
{
	CHECK_USABLE(a);
	int err = 0;
	pthread_mutex_lock(&a->lock);
	do_reopen(a, &err);
	pthread_mutex_unlock(&a->lock);
	return err;
}

MPLOG_EXPORT void mplog_aggregator_request_reopen(mplog_aggregator *a)
{
	/* Async-signal-safe: an atomic store and write(2) on an eventfd. */
	if (!a)
		return;
	int saved = errno;
	atomic_store(&a->reopen_req, true);
	wake(a);
	errno = saved;
}

MPLOG_EXPORT int mplog_aggregator_set_status(mplog_aggregator *a, int fd, const char *line,
					     unsigned flags)
{
	CHECK_USABLE(a);
	if (fd < 0 || (flags & ~(unsigned)MPLOG_STATUS_KEEP))
		return -EINVAL;
	bool clear = !line || !*line;
	size_t len = clear ? 0 : strcspn(line, "\n");
	if (len > MPLOG_STATUS_MAX)
		len = MPLOG_STATUS_MAX;
	char *copy = NULL;
	if (!clear && !(flags & MPLOG_STATUS_KEEP)) {
		copy = strndup(line, len);
		if (!copy)
			return -ENOMEM;
	}
	pthread_mutex_lock(&a->lock);
	struct mplog__status *st = &a->status;
	flush_sinks(a); /* nothing buffered goes out below the new line */
	int r = 0;
	if (st->fd != fd) {
		if (st->visible)
			(void)status_write(a, st->fd, "\r\033[K", 4);
		st->visible = false;
		st->fd = fd;
		st->tty = isatty(fd) && mpk_term_smart(); /* dumb: cannot erase */
	}
	struct mpk_buf b = {0};
	if (st->tty) {
		mpk_buf_put(&b, "\r\033[K", 4);
		if (!clear)
			mpk_buf_put(&b, line, len);
		if ((flags & MPLOG_STATUS_KEEP) && !clear)
			mpk_buf_put_u8(&b, '\n');
	} else if ((flags & MPLOG_STATUS_KEEP) && !clear) {
		mpk_buf_put(&b, line, len); /* a plain line on a non-terminal */
		mpk_buf_put_u8(&b, '\n');
	} else if (!clear) {
		r = -ENOTTY;
	}
	if (b.oom)
		r = -ENOMEM;
	else if (r == 0 && b.len)
		r = status_write(a, fd, b.data, b.len);
	mpk_buf_free(&b);
	free(st->line);
	st->line = NULL;
	st->len = 0;
	st->visible = false;
	if (r == 0 && copy && st->tty) {
		st->line = copy;
		st->len = len;
		st->visible = true;
		copy = NULL;
	}
	pthread_mutex_unlock(&a->lock);
	free(copy);
	return r;
}

/* Write to the status line's fd: through the queue of the sink writing
 * to it, if any (in order with its records, never blocking), else
 * directly. Lock held. */
static int status_write(mplog_aggregator *a, int fd, const void *data, size_t len)
{
	for (size_t i = 0; i < a->nsinks; i++) {
		mplog_sink *s = a->sinks[i];
		if (s->kind == SINK_FD && s->fd == fd && s->wfd >= 0) {
			mplog__sink_put_raw(s, data, len);
			mplog__sink_flush(s);
			watch_sinks(a);
			return s->err;
		}
	}
	return mplog__write_all(fd, data, len);
}

MPLOG_EXPORT uint64_t mplog_aggregator_protocol_errors(const mplog_aggregator *a)
{
	return a ? atomic_load(&a->protocol_errors) : 0;
}

MPLOG_EXPORT int mplog_aggregator_writer(mplog_aggregator *a, mplog_writer **ret)
{
	CHECK_USABLE(a);
	if (!ret)
		return -EINVAL;
	mplog_writer *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->agg = a;
	w->owner = getpid();
	*ret = w;
	return 0;
}

int mplog__aggregator_deliver(mplog_aggregator *a, const void *body, size_t len)
{
	CHECK_USABLE(a);
	struct mplog__rec rec;
	if (mplog__rec_decode(body, len, &rec) < 0)
		return -EINVAL;
	pthread_mutex_lock(&a->lock);
	/* What children have logged so far comes before: a worker's last
	 * records before the pool's record of its death. */
	read_rings(a, SIZE_MAX);
	mplog__emit_rec(a, NULL, &rec);
	flush_sinks(a);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

/* ---- delivery ---------------------------------------------------------- */

struct mplog__parts mplog__rec_parts(const struct mplog__rec *rec, int worker)
{
	return (struct mplog__parts){
		.ts = rec->ts,
		.level = (mplog_level)rec->level,
		.stream = (mplog_stream)rec->stream,
		.pid = rec->pid,
		.worker = worker,
		.task = rec->task,
		.line = rec->line > INT32_MAX ? 0 : (int)rec->line,
		.file = rec->file,
		.func = rec->func,
		.msg = rec->msg,
		.kv_from = rec,
		.nkv = rec->nkv,
	};
}

void mplog__emit_rec(mplog_aggregator *a, const struct mplog__channel *ch,
		     const struct mplog__rec *rec)
{
	struct mplog__parts p =
		mplog__rec_parts(rec, rec->worker >= 0 ? rec->worker : (ch ? ch->worker : -1));
	mplog__emit(a, ch, &p);
}

void mplog__protocol_error(mplog_aggregator *a, const struct mplog__channel *ch,
			   const char *what, uint64_t bytes)
{
	atomic_fetch_add(&a->protocol_errors, 1);
	char msg[512], nb[24], wk[16];
	int n = snprintf(msg, sizeof msg, "protocol error on channel \"%s\" (worker %d): %s (%llu bytes)",
			 ch ? ch->name : "", ch ? ch->worker : -1, what, (unsigned long long)bytes);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof msg)
		n = sizeof msg - 1;
	snprintf(nb, sizeof nb, "%llu", (unsigned long long)bytes);
	snprintf(wk, sizeof wk, "%d", ch ? ch->worker : -1);
	struct mplog__str kv[] = {
		{"mplog.error", 11}, {"protocol", 8},
		{"mplog.bytes", 11}, {nb, (uint32_t)strlen(nb)},
		{"mplog.worker", 12}, {wk, (uint32_t)strlen(wk)},
	};
	struct mplog__parts p = {
		.level = MPLOG_ERROR,
		.stream = MPLOG_STREAM_LOG,
		.pid = ch ? ch->pid : 0,
		.worker = ch ? ch->worker : -1,
		.task = -1,
		.file = {__FILE__, sizeof __FILE__ - 1},
		.func = {"mplog_aggregator", 16},
		.line = __LINE__,
		.msg = {msg, (uint32_t)n},
		.kv = kv,
		.nkv = 3,
	};
	mplog__emit(a, ch, &p);
}

/* Append s and a NUL to the scratch buffer (room reserved); return it. */
static const char *scratch_str(mplog_aggregator *a, struct mplog__str s)
{
	char *d = (char *)a->scratch.data + a->scratch.len;
	if (s.n)
		memcpy(d, s.p, s.n);
	d[s.n] = 0;
	a->scratch.len += (size_t)s.n + 1;
	return d;
}

static bool str_is(struct mplog__str s, const char *lit)
{
	return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

static bool str_starts(struct mplog__str s, const char *lit)
{
	return s.n >= strlen(lit) && memcmp(s.p, lit, strlen(lit)) == 0;
}

/* Keys only the parent's side writes (mplog.h, "Reserved keys"): the
 * pool's and the aggregator's own (mpg.*, mplog.*), and the attributes
 * the JSON sink makes of a record's fields. mplog.dropped is the child's
 * own writer reporting on its own pipe. */
static bool reserved_key(struct mplog__str k)
{
	static const char *const names[] = {
		"process.pid", "code.file.path", "code.line.number", "code.function.name",
		"log.iostream", "exception.type", "exception.message", "exception.stacktrace",
		/* the names of earlier versions, which mplog(1) still reads */
		"code.filepath", "code.lineno", "code.function"};
	if (str_starts(k, "mpg.") || str_starts(k, "mpkit."))
		return true;
	if (str_starts(k, "mplog."))
		return !str_is(k, "mplog.dropped");
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (str_is(k, names[i]))
			return true;
	return false;
}

#define CHILD_PREFIX "child."

/* A key a child sent, "child."-prefixed when it is reserved (room for
 * the prefix reserved): kept, but never taken for the parent's. */
static const char *scratch_key(mplog_aggregator *a, struct mplog__str k)
{
	if (!reserved_key(k))
		return scratch_str(a, k);
	char *d = (char *)a->scratch.data + a->scratch.len;
	memcpy(d, CHILD_PREFIX, sizeof CHILD_PREFIX - 1);
	a->scratch.len += sizeof CHILD_PREFIX - 1;
	scratch_str(a, k);
	return d;
}

void mplog__emit(mplog_aggregator *a, const struct mplog__channel *ch,
		 const struct mplog__parts *p)
{
	bool wanted = false;
	for (size_t i = 0; i < a->nsinks && !wanted; i++)
		wanted = p->level >= a->sinks[i]->min_level && a->sinks[i] != a->quiet;
	a->delivered++;
	if (!wanted)
		return;
	struct mplog__str chan = {ch ? ch->name : "", ch ? (uint32_t)strlen(ch->name) : 0};
	if (p->remote)
		chan = p->channel;
	/* Reserve everything first so the pointers into scratch stay valid. */
	size_t need = (size_t)p->file.n + p->func.n + p->msg.n + chan.n + p->host.n + 5;
	if (p->kv_from) /* >= the strings plus their NULs, and a prefix each */
		need += p->kv_from->kvs_len + p->nkv * (sizeof CHILD_PREFIX - 1);
	else
		for (size_t i = 0; i < 2 * p->nkv; i++)
			need += (size_t)p->kv[i].n + 1;
	a->scratch.len = 0;
	a->scratch.oom = false;
	if (mpk_buf_reserve(&a->scratch, need) < 0)
		return; /* out of memory: this record is lost */
	if (p->nkv > a->kvcap / 2) {
		const char **v = realloc(a->kvp, 2 * p->nkv * sizeof *v);
		if (!v)
			return;
		a->kvp = v;
		a->kvcap = 2 * p->nkv;
	}
	mplog_record r = {
		.ts = p->ts ? p->ts : now_ns(),
		.observed = p->remote && p->observed ? p->observed : now_ns(),
		.level = p->level,
		.stream = p->stream,
		.pid = p->pid,
		.worker = p->worker,
		.task = p->task,
		.line = p->line,
		.file = scratch_str(a, p->file),
		.func = scratch_str(a, p->func),
		.msg = scratch_str(a, p->msg),
		.channel = scratch_str(a, chan),
		.host = scratch_str(a, p->host),
		.host_pid = p->remote ? p->host_pid : 0,
		.rank = p->remote ? p->rank : a->rank,
		.msg_len = p->msg.n,
		.nkv = p->nkv,
		.kv = a->kvp,
	};
	size_t it = 0;
	for (size_t i = 0; i < p->nkv; i++) {
		struct mplog__str k, v;
		if (p->kv_from) {
			if (!mplog__rec_next_kv(p->kv_from, &it, &k, &v))
				return;
		} else {
			k = p->kv[2 * i];
			v = p->kv[2 * i + 1];
		}
		/* A child's record: from a channel, decoded (the aggregator's own
		 * protocol errors come with a channel too, but not decoded). */
		a->kvp[2 * i] = ch && p->kv_from ? scratch_key(a, k) : scratch_str(a, k);
		a->kvp[2 * i + 1] = scratch_str(a, v);
	}
	for (size_t i = 0; i < a->nsinks; i++)
		if (p->level >= a->sinks[i]->min_level && a->sinks[i] != a->quiet) {
			mplog__in_callback = a;
			mplog__sink_put(a->sinks[i], &r);
			mplog__in_callback = NULL;
		}
}
