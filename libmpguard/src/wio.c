/* SPDX-License-Identifier: MIT */
/* Worker processes and their channels: spawning through the fork server,
 * signalling, sending queued frames, reading and framing what workers
 * send. Frames travel on two pipes, the fds they carry on a socket, each
 * sent before its frame (struct mpg__wchan). Bytes that cannot start a frame are garbage: the worker dies for
 * it, blamed on its running task, and what it sends meanwhile is still
 * read (its finished tasks count). */
#include "dispatch-int.h"
#include "fdpass-int.h"
#include "arena-int.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

void mpg__ep_ctl(struct mpg_pool *p, int op, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = {.events = events, .data.u64 = tag};
	(void)epoll_ctl(p->epfd, op, fd, &ev);
}

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

void mpg__worker_signal(struct mpg_pool *p, struct worker *w, int sig)
{
	/* pidfd when the kernel (or valgrind) has it, else ask the fork
	 * server, which signals only its own unreaped child: no pid reuse race. */
	if (w->pidfd >= 0 && pidfd_send_signal(w->pidfd, sig, NULL, 0) == 0)
		return;
	if (w->pid > 0 && p->ctlfd >= 0)
		(void)mpg__fs_request_kill(p->ctlfd, w->slot, w->pid, sig);
}

void mpg__worker_kill(struct mpg_pool *p, struct worker *w)
{
	mpg__worker_signal(p, w, SIGKILL);
}

void mpg__worker_protocol_error(struct mpg_pool *p, struct worker *w, const char *fmt, ...)
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
	mpg__note_culprit(p, w);
	mpg__worker_kill(p, w);
}

/* The parent's ends in mine, the worker's in theirs; -errno. */
static int channel_open(struct mpg__wchan *mine, struct mpg__wchan *theirs, const char **what)
{
	int sv[2], to[2], from[2];
	*what = "socketpair()";
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	*what = "pipe2()";
	if (pipe2(to, O_CLOEXEC) < 0) {
		int e = -errno;
		close(sv[0]);
		close(sv[1]);
		return e;
	}
	if (pipe2(from, O_CLOEXEC) < 0) {
		int e = -errno;
		close(sv[0]);
		close(sv[1]);
		close(to[0]);
		close(to[1]);
		return e;
	}
	/* Big chunks (inputs sent in place, up to MPG_CHUNK_MAX_BYTES) and
	 * their results go through in fewer, larger writes with room for
	 * them: 64 KiB pipes cost a batched map twice the time of the socket
	 * they replaced. Best effort: over the user's pipe quota the kernel
	 * refuses, and the default size works, only slower. */
	(void)fcntl(to[1], F_SETPIPE_SZ, MPG_FRAME_PIPE_BYTES);
	(void)fcntl(from[1], F_SETPIPE_SZ, MPG_FRAME_PIPE_BYTES);
	*mine = (struct mpg__wchan){.in = from[0], .out = to[1], .sock = sv[0]};
	*theirs = (struct mpg__wchan){.in = to[0], .out = from[1], .sock = sv[1]};
	return 0;
}

static void channel_close(struct mpg__wchan *ch)
{
	close(ch->in);
	close(ch->out);
	close(ch->sock);
}

int mpg__worker_spawn(struct mpg_pool *p, struct worker *w, const char **what)
{
	struct mpg__wchan mine = {-1, -1, -1}, theirs = {-1, -1, -1};
	int r = channel_open(&mine, &theirs, what);
	if (r < 0)
		return r;
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
	int io[MPG_LOG_FDS];
	char name[32];
	snprintf(name, sizeof name, "worker-%u", w->slot);
	int lost = mpg__log_pipes_open(p->log, name, (int)w->slot, p->opts.capture, io,
				       w->capture_ch);
	r = mpg__fs_request_spawn(p->ctlfd, w->slot, &theirs, io);
	channel_close(&theirs);
	mpg__log_pipes_close(io);
	if (r < 0) {
		channel_close(&mine);
		*what = "the request to the fork server";
		return r;
	}
	if (lost < 0 && p->log_writer) {
		char wk[16];
		snprintf(wk, sizeof wk, "%u", w->slot);
		(void)mplog_writer_log(p->log_writer, MPLOG_WARN, NULL, 0, NULL,
				       &(mplog_kv){"mpg.worker", wk}, 1,
				       "worker %u starts without some of its log channels: %s",
				       w->slot, strerror(-lost));
	}
	(void)fcntl(mine.out, F_SETFL, O_NONBLOCK);
	(void)fcntl(mine.in, F_SETFL, O_NONBLOCK);
	(void)fcntl(mine.sock, F_SETFL, O_NONBLOCK);
	w->to = mine.out;
	w->from = mine.in;
	w->sock = mine.sock;
	mpg__fdreg_add(w->to);
	mpg__fdreg_add(w->from);
	mpg__fdreg_add(w->sock);
	w->state = W_SPAWNING;
	w->from_eof = false;
	w->want_out = false;
	w->fds_lost = false;
	w->starved = false;
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
	mpg__ep_ctl(p, EPOLL_CTL_ADD, w->from, EPOLLIN, TAG_FROM | ((uint64_t)w->slot << 8));
	return 0;
}

/* A frame's fds go first, on the socket, with one byte to carry them. */
static int send_fds(struct worker *w, const int *fds, unsigned n)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MPG_CHUNK_MAX_FDS)];
		struct cmsghdr align;
	} u;
	char one = 0;
	struct iovec iov = {&one, 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	mpg__cmsg_put_fds(&mh, u.buf, fds, n);
	ssize_t k;
	do
		k = sendmsg(w->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (k < 0 && errno == EINTR);
	return k == 1 ? 0 : k < 0 ? -errno : -EIO;
}

/* Writes to a pipe whose reader died raise SIGPIPE: this thread blocks
 * every signal (mpg__dispatcher_main's creator saw to it), so it stays
 * pending here; take it, so that it is not pending for ever. */
static void consume_sigpipe(void)
{
	sigset_t pipe_set;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	(void)sigtimedwait(&pipe_set, NULL, &(struct timespec){0});
}

/* Wake when fd (the frame pipe or, for fds, the socket) has room again. */
static void want_room(struct mpg_pool *p, struct worker *w, int fd, bool *armed, bool on)
{
	if (*armed == on)
		return;
	*armed = on;
	mpg__ep_ctl(p, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, EPOLLOUT,
		    TAG_TO | ((uint64_t)w->slot << 8));
}

/* Frames are written as many at a time as are queued (up to FLUSH_IOV
 * pieces): the worker reads them in one read too. */
#define FLUSH_IOV 64

/* Pieces of the frames from w->out_head on into iov, each frame's fds sent
 * first; their count, 0 if none could go (*err: -EAGAIN for the socket, or
 * the socket's error). */
static int gather(struct worker *w, struct iovec *iov, int *err)
{
	int niov = 0;
	*err = 0;
	for (struct outframe *f = w->out_head; f && niov + 2 <= FLUSH_IOV; f = f->next) {
		if (f->nfds && !f->fds_sent) {
			int r = send_fds(w, f->fds, f->nfds);
			if (r < 0) {
				*err = r;
				break;
			}
			f->fds_sent = true;
		}
		size_t own = f->len - f->ext_len;
		if (f->sent < own)
			iov[niov++] = (struct iovec){f->data + f->sent, own - f->sent};
		if (f->ext_len) {
			size_t done = f->sent > own ? f->sent - own : 0;
			iov[niov++] = (struct iovec){(void *)(f->ext + done), f->ext_len - done};
		}
	}
	return niov;
}

/* n bytes went: free the frames wholly sent. */
static void sent(struct mpg_pool *p, struct worker *w, size_t n)
{
	p->stats.socket_bytes += n;
	while (n) {
		struct outframe *f = w->out_head;
		size_t k = f->len - f->sent < n ? f->len - f->sent : n;
		f->sent += k;
		n -= k;
		if (f->sent < f->len)
			break;
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

void mpg__worker_flush(struct mpg_pool *p, struct worker *w)
{
	while (w->out_head && w->to >= 0 && !w->from_eof) {
		struct iovec iov[FLUSH_IOV];
		int err, niov = gather(w, iov, &err);
		if (niov == 0) {
			if (err == -EAGAIN) {
				/* Rare: a worker has not taken many fds yet. */
				want_room(p, w, w->sock, &w->want_sock_out, true);
				return;
			}
			free_outframes(w); /* the worker is gone; its exit report follows */
			break;
		}
		ssize_t n = writev(w->to, iov, niov);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				want_room(p, w, w->to, &w->want_out, true);
				return;
			}
			if (errno == EPIPE)
				consume_sigpipe();
			/* The worker is gone; its exit report follows. */
			free_outframes(w);
			break;
		}
		sent(p, w, (size_t)n);
	}
	want_room(p, w, w->sock, &w->want_sock_out, false);
	if (!w->out_head)
		want_room(p, w, w->to, &w->want_out, false);
}

/* The fds a frame announced, sent on the socket before it: into the queue
 * until it holds n. False if they are not there (a worker's lie), more
 * came than the queue holds, or they found no fd free here (fds_lost). */
static bool pull_fds(struct worker *w, unsigned n)
{
	while (w->nfdq < n && w->sock >= 0) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * MPG_CHUNK_MAX_FDS)];
			struct cmsghdr align;
		} u;
		char one[1];
		struct iovec iov = {one, sizeof one};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = u.buf, .msg_controllen = sizeof u.buf};
		ssize_t k = recvmsg(w->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		unsigned dropped = 0;
		unsigned got = mpg__cmsg_take_fds(&mh, w->fdq + w->nfdq,
						  sizeof w->fdq / sizeof w->fdq[0] - w->nfdq, &dropped);
		w->nfdq += got;
		/* MSG_CTRUNC with room left in u.buf: the kernel found no fd
		 * free here (EMFILE), not the worker's fault. The frame they
		 * came for deals with it. */
		if ((mh.msg_flags & MSG_CTRUNC) && !dropped && got < MPG_CHUNK_MAX_FDS) {
			w->fds_lost = true;
			return false;
		}
		if (dropped || (mh.msg_flags & MSG_CTRUNC))
			return false;
	}
	return w->nfdq >= n;
}

int mpg__worker_take_fd(struct worker *w)
{
	if (w->nfdq == 0)
		return -1;
	int fd = w->fdq[0];
	memmove(w->fdq, w->fdq + 1, --w->nfdq * sizeof w->fdq[0]);
	return fd;
}

/* The fds of a frame that is not used: closed, so the next frame's are
 * at the head of the queue. */
void mpg__worker_drop_fds(struct worker *w, unsigned n)
{
	for (; n && w->nfdq; n--)
		close(mpg__worker_take_fd(w));
}

/* The crash handler's last words: kept until the worker's exit is known. */
static void crash_report(struct mpg_pool *p, struct worker *w, const uint8_t *body, size_t len)
{
	struct mpg__crash_head c;
	if (mpg__crash_decode(body, len, &c, w->crash_ips) < 0) {
		mpg__worker_protocol_error(p, w, "worker sent a malformed crash report (%zu bytes)", len);
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
		mpg__worker_protocol_error(p, w, "worker sent a malformed stack report (%zu bytes)", len);
		return;
	}
	w->have_stack = true;
	if (w->timing_out) {
		w->timeout_killed = true;
		mpg__worker_kill(p, w);
	}
}

static void modules_report(struct mpg_pool *p, struct worker *w, const uint8_t *body, size_t len)
{
	struct mpg__modlist l;
	int r = mpg__modlist_decode(body, len, &l);
	if (r < 0) {
		mpg__worker_protocol_error(p, w, r == -ENOMEM ? "out of memory for the worker's module list" :
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
	if (mpg__hello_decode(body, len, nfds) < 0 || w->ready_ns ||
	    (nfds > w->nfdq && !w->fds_lost)) {
		mpg__worker_drop_fds(w, nfds);
		mpg__worker_protocol_error(p, w, "worker sent a malformed hello (%zu bytes)", len);
		return;
	}
	w->ready_ns = mpg__now_ns();
	if (nfds > w->nfdq) {
		/* Its arena found no fd free here: it works without (its
		 * unsent results are not rescued if it dies). */
		mpg__worker_drop_fds(w, nfds);
		w->fds_lost = false;
	} else if (nfds) {
		w->arena = mpg__worker_take_fd(w);
		mpg__fdreg_add(w->arena);
		/* Without its head mapped, results it sends by reference
		 * cannot be released: such frames are protocol errors. */
		w->arena_head = mpg__arena_attach(w->arena);
		w->refs_read = 0;
	}
}

void mpg__worker_close_arena(struct worker *w)
{
	mpg__arena_detach(w->arena_head);
	w->arena_head = NULL;
	mpg__fdreg_close(&w->arena);
}

/* The frame at the head of w->in, whole and of a worker's type. */
static void handle_frame(struct mpg_pool *p, struct worker *w, const struct mpk_frame_header *h,
			 const uint8_t *body)
{
	if (h->nfds && h->type != MSG_RESULT && h->type != MSG_HELLO) {
		/* Taken and dropped, so the next frame's fds are its own. */
		if (pull_fds(w, h->nfds))
			mpg__worker_drop_fds(w, h->nfds);
		mpg__worker_protocol_error(p, w, "worker sent file descriptors with a frame that has none");
		return;
	}
	if (h->nfds && !pull_fds(w, h->nfds) && !w->fds_lost) {
		mpg__worker_protocol_error(p, w, "worker announced %u file descriptors it did not send",
					   (unsigned)h->nfds);
		return;
	}
	switch (h->type) {
	case MSG_RESULT:
		mpg__results_frame(p, w, body, h->length, h->nfds);
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
		mpg__worker_protocol_error(p, w, "worker sent a frame of type %u, which is not a worker's",
			       h->type);
		break;
	}
}

const char *mpg__worker_protocol_why(const struct worker *w, char *buf, size_t len)
{
	if (w->protocol_error)
		return w->protocol_error;
	if (!w->garbage_run)
		return NULL;
	snprintf(buf, len, "worker wrote %zu bytes that are not a valid frame", w->garbage_run);
	return buf;
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
				mpg__note_culprit(p, w);
				mpg__worker_kill(p, w);
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
void mpg__worker_read(struct mpg_pool *p, struct worker *w)
{
	while (w->from >= 0 && !w->from_eof) {
		size_t want = 64 * 1024;
		if (w->in.len >= sizeof(struct mpk_frame_header)) {
			const struct mpk_frame_header *h = (const void *)w->in.data;
			size_t total = sizeof *h + h->length;
			if (h->magic == MPK_FRAME_MAGIC && h->length <= MPK_FRAME_MAX_BODY &&
			    total > w->in.len && total - w->in.len > want)
				want = total - w->in.len;
		}
		if (mpk_buf_reserve(&w->in, want) < 0) {
			mpg__worker_protocol_error(p, w, "out of memory reading from the worker");
			w->from_eof = true;
			break;
		}
		ssize_t n = read(w->from, w->in.data + w->in.len, w->in.cap - w->in.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				w->from_eof = true;
			break;
		}
		if (n == 0) {
			w->from_eof = true;
			break;
		}
		p->stats.socket_bytes += (uint64_t)n;
		w->in.len += (size_t)n;
		parse_frames(p, w);
	}
	if (w->from_eof && w->from >= 0)
		mpg__ep_ctl(p, EPOLL_CTL_DEL, w->from, 0, 0);
}

/* Stop talking to a worker: no more frames out, its channel closed. A
 * live worker sees EOF and exits 0. */
void mpg__worker_drop_channel(struct mpg_pool *p, struct worker *w)
{
	free_outframes(w);
	if (w->from >= 0 && !w->from_eof)
		mpg__ep_ctl(p, EPOLL_CTL_DEL, w->from, 0, 0);
	want_room(p, w, w->to, &w->want_out, false);
	want_room(p, w, w->sock, &w->want_sock_out, false);
	mpg__fdreg_close(&w->to);
	mpg__fdreg_close(&w->from);
	mpg__fdreg_close(&w->sock);
}

/* An idle worker that is not needed any more: let it exit, await its report. */
void mpg__worker_let_go(struct mpg_pool *p, struct worker *w)
{
	mpg__worker_drop_channel(p, w);
	w->state = W_DRAINING;
}
