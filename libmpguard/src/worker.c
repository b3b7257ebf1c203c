/* SPDX-License-Identifier: MIT */
/* The worker: reads chunks of tasks, runs them, sends their results and
 * raised errors back. Runs in a process forked by the single-threaded fork
 * server, so it may allocate freely. It publishes the task it is running in
 * shared memory, so that if it dies the parent knows which task killed it. */
#include "pool-int.h"
#include "arena-int.h"
#include "crash-int.h"
#include "fdpass-int.h"
#include "proto-int.h"
#include "mplog.h"

#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#define EX_PROTOCOL_ERROR 76 /* the parent sent something we cannot read */

struct mpg_task {
	size_t index; /* within the chunk's call */
	size_t id;    /* what the user calls it: base + index */
};

static struct {
	const struct mpg__wconfig *cfg;
	struct mpg__wstatus *status;
	unsigned slot;
	struct mpg__wchan ch;
	/* Frames read ahead: the queued chunks come in one read, not two a
	 * chunk. [rd_pos, rd_len) is unread. */
	uint8_t rd[64 * 1024];
	size_t rd_pos, rd_len;

	struct mpk_buf body;
	int fdq[4 * MPG_CHUNK_MAX_FDS];
	unsigned nfdq;

	void *ctx;
	size_t ctx_len;
	uint64_t ctx_job;
	mpg_task_fn checked_fn;

	/* the chunk */
	struct mpg__chunk chunk; /* decoded; its reader walks the inputs */
	uint64_t job;
	uint64_t first;
	uint64_t base;   /* the user's number of task 0 */
	uint32_t count;
	uint32_t mode;
	size_t in_size, out_size;

	/* Results being built, for tasks [frame_first, frame_first + frame_count),
	 * in the arena the parent reads if we die (malloc'd memory when there
	 * is no arena). */
	struct mpg__arena arena;
	uint32_t frame_first, frame_count;
	struct mpk_buf res;   /* generic items */
	uint8_t *fixed;       /* fixed-size results, count * out_size */
	size_t fixed_cap;     /* without an arena */
	size_t fixed_off;     /* where W.fixed is in the arena's data region */
	uint32_t refs_sent;   /* RESULT_IN_ARENA frames sent */
	size_t ref_top;       /* data bytes such frames may still be read from */
	struct mpk_buf errs;  /* fixed mode: raised errors */
	uint32_t nerrs;
	int out_fds[MPG_CHUNK_MAX_FDS];
	unsigned nout_fds;
	uint64_t frame_start_ns;

	/* the task */
	struct mpg_task task;
	size_t rec_off;        /* generic: where this task's record starts */
	bool has_result;
	int shm_fd;            /* large result of this task, or -1 */
	void *shm_base;
	size_t shm_maplen;
	sigjmp_buf jmp;
	bool in_task;
	pthread_t task_thread;
	int raise_code;
	uint64_t tasks_done;
	uint32_t i;            /* task of the chunk being run */
	void *in_map;          /* mapping of a shared-memory input */
	size_t in_maplen;
	char msg[MPG_MAX_MESSAGE];
	uint64_t raise_ips[MPG_MAX_FRAMES];
	uint32_t raise_nips;
	volatile bool sending;  /* a frame is half written: the crash handler keeps out */
	uint64_t modules_gen;   /* the module list the parent knows of */
	bool logging;           /* a log channel to the parent exists */
	unsigned capturing;     /* MPLOG_CAPTURE_* going to the log too */
} W;

/* stdout and stderr only: other streams may hold the program's buffers
 * as they were at fork time, which are not ours to write. */
static _Noreturn void worker_exit(int status)
{
	fflush(stdout);
	fflush(stderr);
	_exit(status);
}

/* Read from fd into p (at most n bytes), queueing any fds that come
 * along. 0 on EOF; exits on error. */
static size_t read_some(int fd, void *p, size_t n)
{
	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * MPG_CHUNK_MAX_FDS)];
			struct cmsghdr align;
		} u;
		struct iovec iov = {.iov_base = p, .iov_len = n};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = u.buf, .msg_controllen = sizeof u.buf};
		ssize_t r = fd == W.ch.sock ? recvmsg(fd, &mh, MSG_CMSG_CLOEXEC) : read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			worker_exit(EX_PROTOCOL_ERROR);
		if (fd == W.ch.sock) {
			unsigned dropped = 0;
			W.nfdq += mpg__cmsg_take_fds(&mh, W.fdq + W.nfdq,
						     sizeof W.fdq / sizeof W.fdq[0] - W.nfdq, &dropped);
			if (dropped)
				worker_exit(EX_PROTOCOL_ERROR);
		}
		return (size_t)r;
	}
}

/* Read exactly n bytes of frames into p: from what was read ahead, then
 * from the channel (a big body straight into p). 0 on EOF before the
 * first byte, 1 when done; exits on error or mid-frame EOF. */
static int read_full(void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		if (W.rd_pos < W.rd_len) {
			size_t k = W.rd_len - W.rd_pos < n - got ? W.rd_len - W.rd_pos : n - got;
			memcpy((uint8_t *)p + got, W.rd + W.rd_pos, k);
			W.rd_pos += k;
			got += k;
			continue;
		}
		size_t r;
		if (n - got >= sizeof W.rd) {
			r = read_some(W.ch.in, (uint8_t *)p + got, n - got);
			got += r;
		} else {
			r = read_some(W.ch.in, W.rd, sizeof W.rd);
			W.rd_pos = 0;
			W.rd_len = r;
		}
		if (r == 0) {
			if (got == 0)
				return 0;
			worker_exit(EX_PROTOCOL_ERROR);
		}
	}
	return 1;
}

/* The n fds of the frame just read, from the socket, where they were sent
 * before it (one message a frame: a read stops after a message's fds). */
static void pull_fds(unsigned n)
{
	char one[16];
	while (W.nfdq < n)
		if (read_some(W.ch.sock, one, sizeof one) == 0)
			worker_exit(EX_PROTOCOL_ERROR);
}

static int take_fd(void)
{
	if (W.nfdq == 0)
		worker_exit(EX_PROTOCOL_ERROR);
	int fd = W.fdq[0];
	memmove(W.fdq, W.fdq + 1, --W.nfdq * sizeof W.fdq[0]);
	return fd;
}

/* Write all of iov to fd; the parent gone: nobody to report to, leave. */
static void write_all(int fd, struct msghdr *mh)
{
	while (mh->msg_iovlen) {
		ssize_t w = fd == W.ch.sock ? sendmsg(fd, mh, MSG_NOSIGNAL) :
					      writev(fd, mh->msg_iov, (int)mh->msg_iovlen);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			worker_exit(0);
		mh->msg_control = NULL; /* fds went with the first byte */
		mh->msg_controllen = 0;
		size_t left = (size_t)w;
		while (mh->msg_iovlen && left >= mh->msg_iov->iov_len) {
			left -= mh->msg_iov->iov_len;
			mh->msg_iov++;
			mh->msg_iovlen--;
		}
		if (mh->msg_iovlen) {
			mh->msg_iov->iov_base = (uint8_t *)mh->msg_iov->iov_base + left;
			mh->msg_iov->iov_len -= left;
		}
	}
}

/* One frame to the parent, its fds first on the socket when frames go on
 * a pipe. A parent that closed the pipe has let us go: SIGPIPE ends us,
 * and it does not look at how. */
static void send_all(struct iovec *iov, int iovcnt, const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MPG_CHUNK_MAX_FDS)];
		struct cmsghdr align;
	} u;
	W.sending = true;
	if (nfds && W.ch.out != W.ch.sock) {
		char one = 0;
		struct iovec fiov = {&one, 1};
		struct msghdr fmh = {.msg_iov = &fiov, .msg_iovlen = 1};
		mpg__cmsg_put_fds(&fmh, u.buf, fds, nfds);
		write_all(W.ch.sock, &fmh);
		nfds = 0;
	}
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
	mpg__cmsg_put_fds(&mh, u.buf, fds, nfds);
	write_all(W.ch.out, &mh);
	W.sending = false;
}

/* Tell the parent which modules are loaded, at start and after a task
 * dlopen()ed one, so it can symbolize a crash after we are gone. */
static void send_modules_if_changed(void)
{
	uint64_t n = mpg__modules_generation();
	if (n == W.modules_gen)
		return;
	struct mpk_buf b = {0};
	mpk_buf_grow(&b, sizeof(struct mpk_frame_header));
	if (mpg__modules_encode(&b) >= 0 && !b.oom &&
	    b.len - sizeof(struct mpk_frame_header) <= MPK_FRAME_MAX_BODY) {
		mpk_frame_header_init((struct mpk_frame_header *)b.data, MSG_MODULES,
				      (uint32_t)(b.len - sizeof(struct mpk_frame_header)), 0);
		struct iovec iov = {b.data, b.len};
		send_all(&iov, 1, NULL, 0);
		W.modules_gen = n;
	}
	mpk_buf_free(&b);
}

static bool fixed_out(void) { return W.mode & CHUNK_FIXED_OUT; }

/* The generic results buffer lives in the arena's data region. */
static int res_resize(struct mpk_buf *b, size_t cap)
{
	int r = mpg__arena_reserve(&W.arena, cap);
	if (r == 0) {
		b->data = mpg__arena_data(&W.arena);
		b->cap = W.arena.size - MPG_ARENA_DATA;
	}
	return r;
}

/* Our first frame: the result arena, for the parent to read if we die.
 * Without one (no memfd), results travel as before, only not exactly once. */
static void say_hello(void)
{
	if (mpg__arena_open(&W.arena) == 0)
		W.res = (struct mpk_buf){.resize = res_resize};
	struct mpg__hello_frame f;
	mpg__hello_init(&f, W.arena.fd >= 0);
	struct iovec iov = {&f, sizeof f};
	send_all(&iov, 1, &W.arena.fd, W.arena.fd >= 0);
}

/* Every result frame sent by reference has been read: the data region is
 * free. A parent that let us go reads no more: leave. */
static void await_refs(void)
{
	if (mpg__arena_await(&W.arena, W.refs_sent, W.ch.in) < 0)
		worker_exit(0);
	W.ref_top = 0;
}

static bool refs_read(void)
{
	return atomic_load_explicit(&mpg__arena_head(&W.arena)->released, memory_order_acquire) ==
	       W.refs_sent;
}

/* Room for a fixed chunk's count * out_size results. In the arena, after
 * the results the parent may not have read yet (sent by reference), so
 * that the worker seldom waits for it; back at the start once it read
 * them all, or when they span MPG_REF_SPAN. */
static uint8_t *fixed_room(size_t need)
{
	if (W.arena.fd >= 0) {
		if (refs_read())
			W.ref_top = 0;
		else if (W.ref_top + need > MPG_REF_SPAN)
			await_refs();
		if (mpg__arena_reserve(&W.arena, W.ref_top + need) < 0)
			return NULL;
		W.fixed_off = W.ref_top;
		W.ref_top += (need + 63) & ~(size_t)63;
		return mpg__arena_data(&W.arena) + W.fixed_off;
	}
	if (need > W.fixed_cap) {
		free(W.fixed);
		W.fixed = malloc(need);
		W.fixed_cap = W.fixed ? need : 0;
	}
	return W.fixed;
}

/* The arena holds nothing committed; the next task's results go first. */
static void arena_restart(void)
{
	if (W.arena.fd < 0)
		return;
	mpg__arena_reset(&W.arena, W.job, W.first + W.frame_first, W.mode & CHUNK_FIXED_OUT,
			 W.out_size,
			 fixed_out() ? W.fixed_off + (uint64_t)W.frame_first * W.out_size : 0);
}

/* The tasks of the frame so far are done: if we die now, the parent takes
 * their results from the arena and does not run them again. */
static void arena_commit(void)
{
	if (W.arena.fd < 0)
		return;
	mpg__arena_commit(&W.arena, W.frame_count,
			  fixed_out() ? (uint64_t)W.frame_count * W.out_size : W.res.len);
}

/* Send results of tasks [frame_first, frame_first + frame_count). */
static void flush_results(void)
{
	if (W.frame_count == 0)
		return;
	atomic_store_explicit(&W.status[W.slot].state, WS_SENDING, memory_order_relaxed);
	struct mpg__result_frame head;
	uint64_t now = mpg__now_ns();
	struct iovec iov[4];
	int n = 0;
	size_t body = sizeof head.r;
	iov[n++] = (struct iovec){&head, sizeof head};
	uint32_t nerrs = W.nerrs;
	uint32_t mode = fixed_out() ? CHUNK_FIXED_OUT : 0;
	uint64_t arena_off = 0;
	if (fixed_out()) {
		size_t bytes = (size_t)W.frame_count * W.out_size;
		uint8_t *at = W.fixed + (size_t)W.frame_first * W.out_size;
		if (W.arena.fd >= 0 && bytes >= MPG_RESULT_REF_MIN) {
			/* Big: the parent reads them from the arena, straight
			 * into the caller's array, not through the pipe. */
			mode |= RESULT_IN_ARENA;
			arena_off = (uint64_t)(at - mpg__arena_data(&W.arena));
			iov[n++] = (struct iovec){&arena_off, sizeof arena_off};
			body += sizeof arena_off;
		} else {
			iov[n++] = (struct iovec){at, bytes};
			body += bytes;
		}
		iov[n++] = (struct iovec){&nerrs, sizeof nerrs};
		iov[n++] = (struct iovec){W.errs.data, W.errs.len};
		body += sizeof nerrs + W.errs.len;
	} else {
		iov[n++] = (struct iovec){W.res.data, W.res.len};
		body += W.res.len;
	}
	if (W.res.oom || W.errs.oom || body > MPK_FRAME_MAX_BODY)
		worker_exit(EX_PROTOCOL_ERROR); /* cannot report: the parent sees the exit */
	mpk_frame_header_init(&head.h, MSG_RESULT, (uint32_t)body, (uint16_t)W.nout_fds);
	head.r = (struct mpg__result_head){
		.job = W.job,
		.first = W.first + W.frame_first,
		.count = W.frame_count,
		.mode = mode,
		.out_size = W.out_size,
		.elapsed_ns = now - W.frame_start_ns,
	};
	send_all(iov, n, W.out_fds, W.nout_fds);
	W.refs_sent += !!(mode & RESULT_IN_ARENA);
	for (unsigned i = 0; i < W.nout_fds; i++)
		close(W.out_fds[i]);
	W.nout_fds = 0;
	W.res.len = 0;
	W.errs.len = 0;
	W.nerrs = 0;
	W.frame_first += W.frame_count;
	W.frame_count = 0;
	arena_restart();
	W.frame_start_ns = mpg__now_ns();
}

static void drop_shm_result(void)
{
	if (W.shm_base) {
		munmap(W.shm_base, W.shm_maplen);
		W.shm_base = NULL;
	}
	if (W.shm_fd >= 0) {
		close(W.shm_fd);
		W.shm_fd = -1;
	}
}

/* Forget the current task's result so far. */
static void reset_result(void)
{
	drop_shm_result();
	if (!fixed_out())
		W.res.len = W.rec_off;
	W.has_result = false;
}

/* The task failed: code, message and, for mpg_raise(), where it raised. */
static void record_error_at(int code, const char *msg, const uint64_t *ips, uint32_t nips)
{
	reset_result();
	if (fixed_out()) {
		memset(W.fixed + (W.task.index - W.first) * W.out_size, 0, W.out_size);
		mpg__fixed_error_put(&W.errs, (uint32_t)(W.task.index - W.first - W.frame_first),
				     code, msg, ips, nips);
		W.nerrs++;
	} else {
		mpg__item_put_error(&W.res, code, msg, ips, nips);
	}
	W.has_result = true;
}

static void record_error(int code, const char *msg)
{
	record_error_at(code, msg, NULL, 0);
}

static void *result_room(mpg_task *t, size_t len)
{
	if (!t || t != &W.task || !W.in_task) {
		errno = EINVAL;
		return NULL;
	}
	if (fixed_out()) {
		if (len != W.out_size) {
			errno = EMSGSIZE;
			return NULL;
		}
		W.has_result = true;
		return W.fixed + (W.task.index - W.first) * W.out_size;
	}
	reset_result();
	if (len >= W.cfg->shm_threshold) {
		int fd = memfd_create("mpg-result", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (fd < 0)
			return NULL;
		/* Its size is final: the parent maps it and would fault on a
		 * shorter file. F_SEAL_WRITE follows once we unmap it. */
		if (ftruncate(fd, (off_t)len) < 0 ||
		    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
			close(fd);
			errno = ENOMEM;
			return NULL;
		}
		void *base;
		size_t maplen;
		void *p = mpg__map_fd(fd, 0, len, PROT_READ | PROT_WRITE, &base, &maplen);
		if (!p) {
			close(fd);
			return NULL;
		}
		W.shm_fd = fd;
		W.shm_base = base;
		W.shm_maplen = maplen;
		mpg__item_put_shm(&W.res, len);
		W.has_result = true;
		return p;
	}
	void *p = mpg__item_put_inline(&W.res, len);
	if (!p || W.res.oom) {
		W.res.oom = false;
		W.res.len = W.rec_off;
		errno = ENOMEM;
		return NULL;
	}
	W.has_result = true;
	return p;
}

MPG_EXPORT void *mpg_task_alloc_result(mpg_task *t, size_t len)
{
	return result_room(t, len);
}

MPG_EXPORT int mpg_task_set_result(mpg_task *t, const void *data, size_t len)
{
	if (!t || (!data && len))
		return -EINVAL;
	void *p = result_room(t, len);
	if (!p)
		return -errno;
	if (len)
		memcpy(p, data, len);
	return 0;
}

MPG_EXPORT const void *mpg_task_context(mpg_task *t, size_t *len)
{
	if (!t || t != &W.task || W.ctx_job != W.job || !W.ctx) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = W.ctx_len;
	return W.ctx;
}

MPG_EXPORT size_t mpg_task_index(const mpg_task *t) { return t ? t->id : 0; }
MPG_EXPORT unsigned mpg_task_worker(const mpg_task *t) { return t ? W.slot : 0; }

MPG_EXPORT int mpg_raise(int code, const char *fmt, ...)
{
	if (!W.in_task || !pthread_equal(pthread_self(), W.task_thread))
		return -EPERM;
	va_list ap;
	va_start(ap, fmt);
	int n = fmt ? vsnprintf(W.msg, sizeof W.msg, fmt, ap) : 0;
	va_end(ap);
	if (n < 0)
		snprintf(W.msg, sizeof W.msg, "(unprintable message)");
	else if ((size_t)n >= sizeof W.msg)
		memcpy(W.msg + sizeof W.msg - 4, "...", 4);
	W.raise_code = code;
	/* Where it was raised: skip the unwinder's frame and our own. */
	W.raise_nips = mpg__backtrace_here(W.raise_ips, MPG_MAX_FRAMES, 2);
	siglongjmp(W.jmp, 1);
}

static void begin_task(size_t index)
{
	W.task.index = index;
	W.task.id = (size_t)(W.base + index);
	W.rec_off = W.res.len;
	W.has_result = false;
	W.shm_fd = -1;
	W.shm_base = NULL;
	atomic_store_explicit(&W.status[W.slot].index, index, memory_order_relaxed);
	atomic_store_explicit(&W.status[W.slot].state, WS_RUNNING, memory_order_relaxed);
	if (W.logging)
		mplog_set_context((int)W.slot, (int64_t)W.task.id);
	/* Its captured lines carry its index: a small write a captured
	 * stream a task, paid only when output is captured. */
	if (W.logging && W.capturing)
		(void)mplog_mark_output(W.capturing);
}

static void end_task(bool failed)
{
	bool shm = W.shm_fd >= 0;
	if (shm) {
		munmap(W.shm_base, W.shm_maplen);
		W.shm_base = NULL;
		/* Read-only from now on, for the parent that maps it. */
		(void)fcntl(W.shm_fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL);
		W.out_fds[W.nout_fds++] = W.shm_fd;
		W.shm_fd = -1;
	}
	if (W.in_map) {
		munmap(W.in_map, W.in_maplen);
		W.in_map = NULL;
	}
	/* Single writer: a plain store, no locked read-modify-write per task. */
	atomic_store_explicit(&W.status[W.slot].tasks_done, ++W.tasks_done, memory_order_relaxed);
	W.frame_count++;
	/* Done: committed to the arena before the next task can kill us. A
	 * fixed-size failure is not (the arena has no room for its error):
	 * it is sent now, like a result whose memfd would die with us. */
	if (!(failed && fixed_out()))
		arena_commit();
	/* A failed task is reported at once: if a later task of the chunk
	 * kills the worker, the error is not lost and the task not re-run. */
	if (failed || shm || W.res.len + W.errs.len >= MPG_RESULT_FLUSH_BYTES ||
	    W.nout_fds + 1 >= MPG_CHUNK_MAX_FDS)
		flush_results();
}

/* The outcome of a task that returned. */
static bool task_returned(int rc)
{
	if (rc != 0) {
		/* A negative errno passed on from a library call (`return r;`):
		 * name it, the code stays as the task gave it. */
		const char *name = rc < 0 && rc > -4096 ? strerrorname_np(-rc) : NULL;
		char m[128];
		if (name)
			snprintf(m, sizeof m, "task returned %d (-%s: %s)", rc, name, strerror(-rc));
		else
			snprintf(m, sizeof m, "task returned %d", rc);
		record_error(rc, m);
		return true;
	}
	if (W.has_result)
		return false;
	if (fixed_out()) {
		char m[128];
		snprintf(m, sizeof m, "task set no result (mpg_map_array needs %zu bytes)", W.out_size);
		record_error(ENODATA, m); /* the library's codes are positive errnos */
		return true;
	}
	(void)mpg__item_put_inline(&W.res, 0);
	return false;
}

/* Next input of the chunk: 1 and the bytes, 0 if it could not be mapped
 * (the task is then ended as failed). Exits on a malformed chunk. */
static int next_input(const void **in, size_t *len)
{
	if (W.mode & CHUNK_FIXED_IN) {
		/* The decoder checked: exactly count inputs of in_size bytes. */
		*in = W.chunk.inputs.p + (size_t)W.i * W.in_size;
		*len = W.in_size;
		return 1;
	}
	struct mpg__input it;
	if (!mpg__input_next(&W.chunk, &it))
		worker_exit(EX_PROTOCOL_ERROR);
	*len = it.len;
	if (!it.shm) {
		*in = it.data;
		return 1;
	}
	int fd = take_fd();
	*in = mpg__map_fd(fd, it.off, it.len, PROT_READ, &W.in_map, &W.in_maplen);
	int err = errno;
	close(fd);
	if (*in)
		return 1;
	W.in_map = NULL;
	char m[96];
	snprintf(m, sizeof m, "cannot map a %zu-byte input: %s", (size_t)it.len, strerror(err));
	record_error(err, m);
	return 0;
}

/* Run tasks [W.i, W.count) of the chunk. One sigsetjmp per chunk, not per
 * task: mpg_raise() jumps back here and the loop resumes after the task
 * that raised. The loop's state lives in W (static storage), which
 * siglongjmp does not clobber. No signal mask is saved: a sigprocmask per
 * raise is not worth it, and tasks do not raise from signal handlers. */
/* Not inlined: backtraces stop at its frame (see mpg__crash_install). */
__attribute__((noinline)) static void run_tasks(mpg_task_fn fn)
{
	void *userdata = W.cfg->userdata;
	if (sigsetjmp(W.jmp, 0) != 0) {
		W.in_task = false;
		record_error_at(W.raise_code, W.msg, W.raise_ips, W.raise_nips);
		end_task(true);
		W.i++;
	}
	for (; W.i < W.count; W.i++) {
		begin_task(W.first + W.i);
		const void *in;
		size_t len;
		if (!next_input(&in, &len)) {
			end_task(true);
			continue;
		}
		W.in_task = true;
		int rc = fn(&W.task, in, len, userdata);
		W.in_task = false;
		end_task(task_returned(rc));
	}
}

static bool fn_is_mapped(mpg_task_fn fn)
{
	Dl_info info;
	return dladdr((void *)(uintptr_t)fn, &info) != 0 && info.dli_fname;
}

static void fail_all(const char *msg)
{
	for (uint32_t i = W.frame_first + W.frame_count; i < W.count; i++) {
		W.task.index = W.first + i;
		W.rec_off = W.res.len;
		record_error(EFAULT, msg);
		W.frame_count++;
	}
}

static void run_chunk(void)
{
	if (mpg__chunk_decode(W.body.data, W.body.len, &W.chunk) < 0 || W.chunk.nshm != W.nfdq)
		worker_exit(EX_PROTOCOL_ERROR);
	const struct mpg__chunk_head *h = &W.chunk.h;
	W.job = h->job;
	mpg_task_fn fn = (mpg_task_fn)(uintptr_t)h->fn;
	W.first = h->first;
	W.base = h->base;
	W.count = h->count;
	W.mode = h->mode;
	W.in_size = h->in_size;
	W.out_size = h->out_size;
	if (W.mode & CHUNK_HAS_CTX) {
		free(W.ctx);
		W.ctx = malloc(W.chunk.ctx_len ? W.chunk.ctx_len : 1);
		if (!W.ctx)
			worker_exit(EX_PROTOCOL_ERROR);
		memcpy(W.ctx, W.chunk.ctx, W.chunk.ctx_len);
		W.ctx_len = W.chunk.ctx_len;
		W.ctx_job = W.job;
	}
	atomic_store_explicit(&W.status[W.slot].job, W.job, memory_order_relaxed);

	W.frame_first = W.frame_count = 0;
	W.res.len = W.errs.len = 0;
	W.nerrs = 0;
	W.nout_fds = 0;
	W.frame_start_ns = mpg__now_ns();
	if (fixed_out()) {
		W.fixed = fixed_room((size_t)W.count * W.out_size); /* decode checked the product */
		if (!W.fixed)
			worker_exit(EX_PROTOCOL_ERROR);
	} else if (W.arena.fd >= 0) {
		/* Generic results are built from the region's start. */
		if (!refs_read())
			await_refs();
		W.ref_top = 0;
		(void)res_resize(&W.res, 0); /* the data region may have moved */
	}
	arena_restart();

	if (fn != W.checked_fn) {
		if (!fn_is_mapped(fn)) {
			char m[160];
			snprintf(m, sizeof m,
				 "task function %p is not mapped in the worker "
				 "(loaded after the pool was created?)", (void *)(uintptr_t)fn);
			fail_all(m);
			goto out;
		}
		W.checked_fn = fn;
	}

	W.i = 0;
	run_tasks(fn);
out:
	flush_results();
	atomic_store_explicit(&W.status[W.slot].state, WS_IDLE, memory_order_relaxed);
}

bool mpg__in_worker;

/* A supervised service: run it once, report a failure in one frame, exit.
 * A normal return exits 0. Backtraces stop at this function. */
__attribute__((noinline)) static _Noreturn void run_service(const struct mpg__service *svc)
{
	int code;
	const char *msg;
	char m[64];
	if (sigsetjmp(W.jmp, 0) == 0) {
		W.in_task = true;
		code = svc->fn(svc->userdata);
		W.in_task = false;
		if (code == 0)
			worker_exit(0);
		snprintf(m, sizeof m, "service returned %d", code);
		msg = m;
		W.raise_nips = 0;
	} else {
		W.in_task = false;
		code = W.raise_code;
		msg = W.msg;
	}
	struct mpk_buf b = {0};
	if (mpg__service_end_encode(&b, code, msg, W.raise_ips, W.raise_nips) == 0) {
		struct iovec iov = {b.data, b.len};
		send_all(&iov, 1, NULL, 0);
	}
	worker_exit(1);
}

_Noreturn void mpg__worker_main(const struct mpg__wconfig *cfg, unsigned slot,
				const struct mpg__wchan *ch, const int io[MPG_LOG_FDS])
{
	int logfd = io ? io[0] : -1;
	mpg__in_worker = true;
	W.cfg = cfg;
	W.status = cfg->status;
	W.slot = slot;
	W.ch = *ch;
	W.shm_fd = -1;
	W.arena.fd = -1;
	W.task_thread = pthread_self();
	atomic_store(&W.status[slot].state, WS_IDLE);
	atomic_store(&W.status[slot].tasks_done, 0);
	char name[16];
	snprintf(name, sizeof name, cfg->services ? "mpg-service-%u" : "mpg-worker-%u", slot);
	prctl(PR_SET_NAME, name);
	signal(SIGCHLD, SIG_DFL);
	/* Before any task: the handler's memory and libunwind's state. */
	const void *loop = cfg->services ? (const void *)(uintptr_t)run_service :
					   (const void *)(uintptr_t)run_tasks;
	(void)mpg__crash_install(ch->out, &W.sending, loop);
	(void)mpg__pause_install(&W.status[slot]);
	if (cfg->pause & MPG_PAUSE_ON_CRASH)
		mpg__crash_set_pause(cfg->pause_timeout_ms);
	/* A service's SIGTERM is the supervisor's shutdown request: its
	 * default action before the mask (which leaves SIGTERM unblocked for
	 * services) lets it in, so that a handler of the program's never
	 * takes it, even while the service pauses at start. */
	if (cfg->services)
		signal(SIGTERM, SIG_DFL);
	sigprocmask(SIG_SETMASK, &cfg->sigmask, NULL);
	/* mplog_* calls in tasks reach the pool's aggregator, stamped with
	 * this worker and the running task. */
	/* Captured stdout/stderr: the aggregator turns each line into a record. */
	for (int i = 1; io && i < 3; i++) {
		if (io[i] >= 0) {
			fflush(i == 1 ? stdout : stderr);
			dup2(io[i], i);
			close(io[i]);
			W.capturing |= i == 1 ? MPLOG_CAPTURE_STDOUT : MPLOG_CAPTURE_STDERR;
		}
	}
	if (io && io[1] >= 0)
		setvbuf(stdout, NULL, _IOLBF, 0); /* a line at a time, like a terminal */
	/* Records go through the ring when there is one (io[3]), the pipe
	 * waking the aggregator; mplog_child_setup() maps it. */
	mplog_child_fds lf = {.log_fd = logfd, .stdout_fd = -1, .stderr_fd = -1,
			      .ring_fd = io ? io[3] : -1};
	if (logfd >= 0 && mplog_child_setup(&lf, -1, 0, NULL) == 0)
		W.logging = true;
	else /* not the parent's in-process writer (parentlog.c): none, -ENOTCONN */
		mplog_set_default_writer(NULL);
	/* A service's records are known by their channel, the service's name. */
	mplog_set_context(cfg->services ? -1 : (int)slot, -1);
	if (!cfg->services)
		say_hello();
	send_modules_if_changed();
	if (cfg->pause & MPG_PAUSE_AT_START) {
		if (cfg->services)
			mplog_warn("service %s (pid %d) paused at start for a debugger, up to %u s: "
				   "mpattach gdb %d.%u %u, or mpattach resume %d.%u %u",
				   cfg->services[slot].name, (int)getpid(), cfg->pause_timeout_ms / 1000,
				   (int)cfg->pool_pid, cfg->pool_seq, slot, (int)cfg->pool_pid,
				   cfg->pool_seq, slot);
		else
			mplog_warn("worker %u (pid %d) paused at start for a debugger, up to %u s: "
				   "mpattach gdb %d.%u %u, or mpattach resume %d.%u %u",
				   slot, (int)getpid(), cfg->pause_timeout_ms / 1000, (int)cfg->pool_pid,
				   cfg->pool_seq, slot, (int)cfg->pool_pid, cfg->pool_seq, slot);
		mpg__pause(WP_START, cfg->pause_timeout_ms);
	}
	if (cfg->services) {
		if (io && (io[1] >= 0 || io[2] >= 0)) {
			/* Captured lines carry our pid once the supervisor knows it:
			 * it says so with one byte. EOF: it is gone. */
			char go;
			ssize_t n;
			do
				n = read(W.ch.in, &go, 1);
			while (n < 0 && errno == EINTR);
			if (n != 1)
				worker_exit(0);
		}
		run_service(&cfg->services[slot]);
	}

	for (;;) {
		struct mpk_frame_header h;
		if (read_full(&h, sizeof h) == 0)
			worker_exit(0); /* parent closed: done */
		if (mpk_frame_header_check(&h, MPK_FRAME_MAX_BODY) < 0 || h.type != MSG_CHUNK ||
		    h.nfds > MPG_CHUNK_MAX_FDS)
			worker_exit(EX_PROTOCOL_ERROR);
		W.body.len = 0;
		void *b = mpk_buf_grow(&W.body, h.length);
		if (!b)
			worker_exit(EX_PROTOCOL_ERROR);
		if (h.length && read_full(b, h.length) == 0)
			worker_exit(EX_PROTOCOL_ERROR);
		if (W.ch.sock != W.ch.in)
			pull_fds(h.nfds);
		send_modules_if_changed(); /* a task of the last chunk may have dlopen()ed */
		run_chunk();
		/* fds the chunk did not claim would leak */
		while (W.nfdq)
			close(take_fd());
	}
}
