/* SPDX-License-Identifier: MIT */
/* Child side: writers, the process-global default writer and context, and
 * the logging calls. Lock-free on purpose: nothing here can be held by
 * another thread at fork() time, so a forked child can log at once. A
 * record of at most PIPE_BUF bytes is built on the stack and put in the
 * writer's ring (ring.c), or sent with one write(2) on a writer without
 * one; a longer one is split into PIPE_BUF-sized fragments. */
#include "record-int.h"
#include "writer-int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static _Atomic(mplog_writer *) default_writer;
static _Atomic int ctx_worker = -1;
static _Atomic int64_t ctx_task = -1;
static _Atomic int min_level = MPLOG_TRACE;
static _Atomic uint32_t next_seq;

static const char trunc_marker[] = " [truncated]";

MPLOG_EXPORT int mplog_writer_new(int fd, unsigned flags, mplog_writer **ret)
{
	if (fd < 0 || !ret || (flags & ~(unsigned)MPLOG_WRITER_DROP))
		return -EINVAL;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return errno == EBADF ? -EINVAL : -errno;
	if ((flags & MPLOG_WRITER_DROP) && !(fl & O_NONBLOCK) &&
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	mplog_writer *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->flags = flags;
	w->owner = getpid();
	*ret = w;
	return 0;
}

MPLOG_EXPORT void mplog_writer_free(mplog_writer *w)
{
	if (!w)
		return;
	mplog_writer *expected = w;
	atomic_compare_exchange_strong(&default_writer, &expected, NULL);
	mplog__ring_unmap(&w->ring);
	free(w);
}

MPLOG_EXPORT void mplog_writer_freep(mplog_writer **w)
{
	if (w) {
		mplog_writer_free(*w);
		*w = NULL;
	}
}

MPLOG_EXPORT uint64_t mplog_writer_dropped(const mplog_writer *w)
{
	return w ? atomic_load(&w->dropped) : 0;
}

MPLOG_EXPORT int mplog_set_default_writer(mplog_writer *w)
{
	atomic_store(&default_writer, w);
	return 0;
}

MPLOG_EXPORT mplog_writer *mplog_default_writer(void)
{
	return atomic_load(&default_writer);
}

MPLOG_EXPORT void mplog_set_context(int worker, int64_t task)
{
	atomic_store_explicit(&ctx_worker, worker, memory_order_relaxed);
	atomic_store_explicit(&ctx_task, task, memory_order_relaxed);
}

MPLOG_EXPORT void mplog_get_context(int *worker, int64_t *task)
{
	if (worker)
		*worker = atomic_load(&ctx_worker);
	if (task)
		*task = atomic_load(&ctx_task);
}

MPLOG_EXPORT int mplog_set_min_level(mplog_level level)
{
	if ((unsigned)level > MPLOG_FATAL)
		return -EINVAL;
	atomic_store(&min_level, (int)level);
	return 0;
}

/* Write one frame of at most PIPE_BUF bytes: a single write(2) on a pipe,
 * all or nothing. Returns 0, 1 (pipe full and may_drop), or -errno. */
static int send_frame(mplog_writer *w, const uint8_t *p, size_t n, bool may_drop)
{
	size_t off = 0;
	while (off < n) {
		ssize_t k = write(w->fd, p + off, n - off);
		if (k > 0) {
			off += (size_t)k; /* short writes happen only on non-pipes */
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			if (may_drop && off == 0)
				return 1;
			struct pollfd pfd = {.fd = w->fd, .events = POLLOUT};
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		return k < 0 ? -errno : -EIO;
	}
	return 0;
}

/* Send one frame whose body (len bytes) is at frame + 16: put in the ring,
 * or with its header on the pipe. Returns as send_frame(). */
static int send_body(mplog_writer *w, uint8_t *frame, uint8_t type, size_t len, bool may_drop)
{
	if (w->ring.sh) {
		unsigned kind = type == MPLOG_FRAME_RECORD ? RING_RECORD : RING_FRAGMENT;
		int r = mplog__ring_put(&w->ring, w->fd, kind, frame + sizeof(struct mpk_frame_header),
					len, may_drop);
		if (r != MPLOG_RING_CLOSED)
			return r;
		/* The aggregator closed the channel: the pipe tells how
		 * (EPIPE, or SIGPIPE), as for a writer without a ring. */
	}
	struct mpk_frame_header h;
	mpk_frame_header_init(&h, type, (uint32_t)len, 0);
	memcpy(frame, &h, sizeof h);
	return send_frame(w, frame, sizeof h + len, may_drop);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* getpid() is a system call (glibc keeps no cache), as dear as the rest
 * of a record on a machine with costly syscalls. The pid is kept in a page
 * the kernel zeroes in a forked child (MADV_WIPEONFORK), whatever made
 * the fork: no handler to run, nothing held. Without that page (older
 * kernel), getpid() each time. */
typedef _Atomic pid_t apid;
static apid *_Atomic pid_page;

static pid_t my_pid(void)
{
	apid *page = atomic_load_explicit(&pid_page, memory_order_acquire);
	if (!page) {
		void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			return getpid();
		if (madvise(m, 4096, MADV_WIPEONFORK) < 0) {
			munmap(m, 4096);
			return getpid();
		}
		apid *expected = NULL; /* another thread may have won */
		if (atomic_compare_exchange_strong(&pid_page, &expected, (apid *)m))
			page = m;
		else {
			munmap(m, 4096);
			page = expected;
		}
	}
	pid_t pid = atomic_load_explicit(page, memory_order_relaxed);
	if (pid == 0) { /* first call in this process */
		pid = getpid();
		atomic_store_explicit(page, pid, memory_order_relaxed);
	}
	return pid;
}

/* Send an encoded body of len bytes as fragments. The first fragment may
 * be dropped (then nothing was sent); later ones wait for room. */
static int send_fragments(mplog_writer *w, const uint8_t *body, size_t len)
{
	uint8_t frame[MPLOG_FRAME_MAX];
	uint32_t seq = atomic_fetch_add(&next_seq, 1);
	uint32_t count = (uint32_t)((len + MPLOG_FRAG_CHUNK - 1) / MPLOG_FRAG_CHUNK);
	uint32_t hdr[5] = {(uint32_t)my_pid(), seq, 0, count, (uint32_t)len};
	for (uint32_t i = 0; i < count; i++) {
		size_t off = (size_t)i * MPLOG_FRAG_CHUNK;
		size_t n = len - off < MPLOG_FRAG_CHUNK ? len - off : MPLOG_FRAG_CHUNK;
		size_t at = sizeof(struct mpk_frame_header);
		hdr[2] = i;
		memcpy(frame + at, hdr, sizeof hdr);
		memcpy(frame + at + MPLOG_FRAG_HDR, body + off, n);
		int r = send_body(w, frame, MPLOG_FRAME_FRAGMENT, MPLOG_FRAG_HDR + n,
				  (w->flags & MPLOG_WRITER_DROP) && i == 0);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Encode in and send it (or deliver it in-process). 0, 1 dropped, -errno. */
static int send_record(mplog_writer *w, const struct mplog__rec_in *in)
{
	size_t len = mplog__rec_size(in);
	if (w->agg || len > MPLOG_BODY_MAX) {
		uint8_t *body = malloc(len);
		if (!body)
			return -ENOMEM;
		mplog__rec_encode(in, body);
		int r = w->agg ? mplog__aggregator_deliver(w->agg, body, len)
			       : send_fragments(w, body, len);
		free(body);
		return r;
	}
	uint8_t frame[MPLOG_FRAME_MAX];
	mplog__rec_encode(in, frame + sizeof(struct mpk_frame_header));
	return send_body(w, frame, MPLOG_FRAME_RECORD, len, w->flags & MPLOG_WRITER_DROP);
}

/* Report records dropped earlier, if any, before the next record. */
static void report_drops(mplog_writer *w, const struct mplog__rec_in *like)
{
	uint64_t n = atomic_exchange(&w->unreported, 0);
	if (!n)
		return;
	char msg[96], num[24];
	int ml = snprintf(msg, sizeof msg, "mplog: %llu records dropped (log pipe full)",
			  (unsigned long long)n);
	snprintf(num, sizeof num, "%llu", (unsigned long long)n);
	mplog_kv kv = {"mplog.dropped", num};
	struct mplog__rec_in in = *like;
	in.level = MPLOG_WARN;
	in.file = in.func = (struct mplog__str){"", 0};
	in.line = 0;
	in.msg = (struct mplog__str){msg, (uint32_t)ml};
	in.kv = &kv;
	in.nkv = 1;
	if (send_record(w, &in) != 0)
		atomic_fetch_add(&w->unreported, n); /* try again next time */
}

static struct mplog__str cstr(const char *s)
{
	if (!s)
		return (struct mplog__str){"", 0};
	size_t n = strlen(s);
	return (struct mplog__str){s, (uint32_t)(n > 65536 ? 65536 : n)};
}

MPLOG_EXPORT int mplog_writer_logv(mplog_writer *w, mplog_level level, const char *file,
				   int line, const char *func, const mplog_kv *kv, size_t nkv,
				   const char *fmt, va_list ap)
{
	if (!w)
		w = atomic_load(&default_writer);
	if (!w)
		return -ENOTCONN;
	if ((unsigned)level > MPLOG_FATAL || !fmt || (nkv && !kv) || nkv > MPLOG_KV_MAX)
		return -EINVAL;
	for (size_t i = 0; i < nkv; i++)
		if (!kv[i].key || !kv[i].value)
			return -EINVAL;
	if (w->agg && my_pid() != w->owner)
		return -ECHILD;
	if ((int)level < atomic_load(&min_level))
		return 0;

	/* Format on the stack; only long messages touch the heap. */
	char small[1024];
	char *heap = NULL;
	va_list aq;
	va_copy(aq, ap);
	int n = vsnprintf(small, sizeof small, fmt, aq);
	va_end(aq);
	if (n < 0)
		return -EINVAL;
	const char *msg = small;
	if ((size_t)n >= sizeof small) {
		heap = malloc((size_t)n + 1);
		if (!heap)
			return -ENOMEM;
		vsnprintf(heap, (size_t)n + 1, fmt, ap);
		msg = heap;
	}

	struct mplog__rec_in in = {
		.ts = now_ns(),
		.level = (uint8_t)level,
		.stream = MPLOG_STREAM_LOG,
		.pid = (int32_t)my_pid(),
		.worker = atomic_load(&ctx_worker),
		.task = atomic_load(&ctx_task),
		.line = line > 0 ? (uint32_t)line : 0,
		.file = cstr(file),
		.func = cstr(func),
		.msg = {msg, (uint32_t)n},
		.kv = kv,
		.nkv = nkv,
	};
	size_t len = mplog__rec_size(&in);
	int r = 0;
	if (len > MPLOG_RECORD_MAX) {
		size_t over = len - MPLOG_RECORD_MAX + sizeof trunc_marker - 1;
		if (!heap || over > in.msg.n) {
			r = -EMSGSIZE; /* the key-values alone are too big */
			goto out;
		}
		in.msg.n -= (uint32_t)over;
		memcpy(heap + in.msg.n, trunc_marker, sizeof trunc_marker - 1);
		in.msg.n += sizeof trunc_marker - 1;
	}
	if (atomic_load(&w->unreported))
		report_drops(w, &in);
	r = send_record(w, &in);
	if (r == 1) {
		atomic_fetch_add(&w->dropped, 1);
		atomic_fetch_add(&w->unreported, 1);
	}
out:
	free(heap);
	return r;
}

MPLOG_EXPORT int mplog_writer_log(mplog_writer *w, mplog_level level, const char *file,
				  int line, const char *func, const mplog_kv *kv, size_t nkv,
				  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = mplog_writer_logv(w, level, file, line, func, kv, nkv, fmt, ap);
	va_end(ap);
	return r;
}

MPLOG_EXPORT int mplog_log(mplog_level level, const char *file, int line, const char *func,
			   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = mplog_writer_logv(NULL, level, file, line, func, NULL, 0, fmt, ap);
	va_end(ap);
	return r;
}

MPLOG_EXPORT int mplog_log_kv(mplog_level level, const char *file, int line, const char *func,
			      const mplog_kv *kv, size_t nkv, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = mplog_writer_logv(NULL, level, file, line, func, kv, nkv, fmt, ap);
	va_end(ap);
	return r;
}
