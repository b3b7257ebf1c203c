/* Worker processes and their sockets: spawning through the fork server,
 * signalling, sending queued frames, reading and framing what workers
 * send. Bytes that cannot start a frame are garbage: the worker dies for
 * it, blamed on its running task, and what it sends meanwhile is still
 * read (its finished tasks count). */
#include "dispatch-int.h"
#include "fdpass-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
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

int mpg__worker_spawn(struct mpg_pool *p, struct worker *w)
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
	int io[MPG_LOG_FDS];
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
	mpg__ep_ctl(p, EPOLL_CTL_ADD, w->sock, EPOLLIN, TAG_SOCK | ((uint64_t)w->slot << 8));
	return 0;
}

void mpg__worker_flush(struct mpg_pool *p, struct worker *w)
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
					mpg__ep_ctl(p, EPOLL_CTL_MOD, w->sock, EPOLLIN | EPOLLOUT,
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
		mpg__ep_ctl(p, EPOLL_CTL_MOD, w->sock, EPOLLIN, TAG_SOCK | ((uint64_t)w->slot << 8));
	}
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
	if (mpg__hello_decode(body, len, nfds) < 0 || w->ready_ns || nfds > w->nfdq) {
		mpg__worker_drop_fds(w, nfds);
		mpg__worker_protocol_error(p, w, "worker sent a malformed hello (%zu bytes)", len);
		return;
	}
	w->ready_ns = mpg__now_ns();
	if (nfds) {
		w->arena = mpg__worker_take_fd(w);
		mpg__fdreg_add(w->arena);
	}
}

/* The frame at the head of w->in, whole and of a worker's type. */
static void handle_frame(struct mpg_pool *p, struct worker *w, const struct mpk_frame_header *h,
			 const uint8_t *body)
{
	if (h->nfds && h->type != MSG_RESULT && h->type != MSG_HELLO) {
		mpg__worker_drop_fds(w, h->nfds);
		mpg__worker_protocol_error(p, w, "worker sent file descriptors with a frame that has none");
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
			mpg__worker_protocol_error(p, w, "out of memory reading from the worker");
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
			mpg__worker_protocol_error(p, w, "worker sent more file descriptors than allowed");
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
		mpg__ep_ctl(p, EPOLL_CTL_DEL, w->sock, 0, 0);
}

/* Stop talking to a worker: no more frames out, socket closed. A live
 * worker sees EOF and exits 0. */
void mpg__worker_drop_socket(struct mpg_pool *p, struct worker *w)
{
	free_outframes(w);
	if (w->sock >= 0)
		mpg__ep_ctl(p, EPOLL_CTL_DEL, w->sock, 0, 0);
	mpg__fdreg_close(&w->sock);
}

/* An idle worker that is not needed any more: let it exit, await its report. */
void mpg__worker_let_go(struct mpg_pool *p, struct worker *w)
{
	mpg__worker_drop_socket(p, w);
	w->state = W_DRAINING;
}
