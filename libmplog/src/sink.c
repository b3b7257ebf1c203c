/* SPDX-License-Identifier: MIT */
/* Sinks: where the aggregator's records go. fd and file sinks queue the
 * formatted records of a dispatch round and write what goes without
 * blocking (sink-fd.c); the rest waits in the queue, bounded, for the next
 * flush (the aggregator watches a blocked fd for room). A record that
 * finds the queue full is dropped and counted, and a sink that failed
 * keeps its queue and tries again at each flush, so a record cut short by
 * a full disk is finished, never followed by another on its line; what
 * was lost is reported once the queue is written (sink-report.c). File
 * sinks reopen their path on request (logrotate); callback sinks hand the
 * record to the caller; syslog sinks (sink-syslog.c) send each record as
 * it comes. */
#include "aggregator-int.h"
#include "text-int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

int mplog__sink_alloc(enum sink_kind kind, mplog_format format, mplog_sink **ret)
{
	if (!ret || (unsigned)format > MPLOG_FORMAT_JSON)
		return -EINVAL;
	mplog_sink *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->kind = kind;
	s->format = format;
	s->fd = -1;
	s->wfd = -1;
	s->epfd = -1;
	s->min_level = MPLOG_TRACE;
	*ret = s;
	return 0;
}

MPLOG_EXPORT int mplog_sink_new_fd(int fd, mplog_format format, unsigned flags,
				   mplog_sink **ret)
{
	if (fd < 0 || (flags & ~(unsigned)(MPLOG_SINK_COLOR_NEVER | MPLOG_SINK_COLOR_ALWAYS)) ||
	    flags == (MPLOG_SINK_COLOR_NEVER | MPLOG_SINK_COLOR_ALWAYS))
		return -EINVAL;
	mplog_sink *s;
	int r = mplog__sink_alloc(SINK_FD, format, &s);
	if (r < 0)
		return r;
	r = mplog__sink_fd_open(s, fd);
	if (r < 0) {
		free(s);
		return r;
	}
	s->fd = fd;
	snprintf(s->name, sizeof s->name, "fd %d", fd);
	if (format == MPLOG_FORMAT_TEXT)
		s->color = (flags & MPLOG_SINK_COLOR_ALWAYS) ||
			   (!(flags & MPLOG_SINK_COLOR_NEVER) && isatty(fd) && mpk_term_color_ok());
	*ret = s;
	return 0;
}

/* Whether the file at path ends in a partial line (a record a full disk
 * cut short, by us or another program): the next record then starts on a
 * line of its own. */
static bool ends_mid_line(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return false;
	struct stat st;
	char c = '\n';
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    pread(fd, &c, 1, st.st_size - 1) != 1)
		c = '\n';
	close(fd);
	return c != '\n';
}

static int open_append(const char *path)
{
	int fd;
	do
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

MPLOG_EXPORT int mplog_sink_new_file(const char *path, mplog_format format, unsigned flags,
				     mplog_sink **ret)
{
	if (!path || !*path || flags)
		return -EINVAL;
	mplog_sink *s;
	int r = mplog__sink_alloc(SINK_FILE, format, &s);
	if (r < 0)
		return r;
	s->path = strdup(path);
	if (!s->path) {
		free(s);
		return -ENOMEM;
	}
	s->wfd = open_append(path);
	if (s->wfd < 0) {
		r = s->wfd;
		free(s->path);
		free(s);
		return r;
	}
	s->need_nl = ends_mid_line(path);
	mpk_fdreg_add(s->wfd); /* no forked child keeps the log file */
	*ret = s;
	return 0;
}

MPLOG_EXPORT int mplog_sink_new_callback(mplog_sink_fn fn, void *userdata, mplog_sink **ret)
{
	if (!fn)
		return -EINVAL;
	mplog_sink *s;
	int r = mplog__sink_alloc(SINK_CALLBACK, MPLOG_FORMAT_TEXT, &s);
	if (r < 0)
		return r;
	s->fn = fn;
	s->userdata = userdata;
	*ret = s;
	return 0;
}

MPLOG_EXPORT int mplog_sink_set_min_level(mplog_sink *s, mplog_level level)
{
	if (!s || (unsigned)level > MPLOG_FATAL)
		return -EINVAL;
	s->min_level = level;
	return 0;
}

MPLOG_EXPORT void mplog_sink_free(mplog_sink *s)
{
	if (!s)
		return;
	if (s->kind == SINK_SYSLOG)
		mplog__syslog_free(s);
	if (s->kind == SINK_JOURNAL)
		mplog__journal_free(s);
	if (s->watched) /* wfd may share its file with others: leave no watch */
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->wfd, NULL);
	mpk_fdreg_close(&s->wfd);
	free(s->path);
	free(s->recs);
	mpk_buf_free(&s->out);
	free(s);
}

/* In a forked child: the fd this sink opened was closed at the fork (the
 * registry), and must not be closed again. */
void mplog__sink_forget_fd(mplog_sink *s)
{
	if (s->kind == SINK_SYSLOG || s->kind == SINK_JOURNAL) {
		mpk_fdreg_del(s->fd);
		s->fd = -1;
	}
	mpk_fdreg_del(s->wfd);
	s->wfd = -1;
	s->watched = false;
}

/* ---- the queue ---------------------------------------------------------- */

static size_t queued(const mplog_sink *s)
{
	return s->out.len - s->head;
}

/* head moved n bytes on: forget the records wholly written; compact. */
static void advance(mplog_sink *s, size_t n)
{
	s->head += n;
	while (s->recs_head < s->nrecs && s->recs[s->recs_head].end <= s->head)
		s->recs_head++;
	if (s->head == s->out.len) {
		s->head = s->out.len = 0;
		s->nrecs = s->recs_head = 0;
		return;
	}
	if (s->head >= (64u << 10) && s->head > s->out.len / 2) {
		memmove(s->out.data, s->out.data + s->head, s->out.len - s->head);
		s->out.len -= s->head;
		for (size_t i = s->recs_head; i < s->nrecs; i++) {
			s->recs[i].start = s->recs[i].start > s->head ? s->recs[i].start - s->head : 0;
			s->recs[i].end -= s->head;
		}
		s->head = 0;
	}
	if (s->recs_head > 64 && s->recs_head > s->nrecs / 2) {
		memmove(s->recs, s->recs + s->recs_head, (s->nrecs - s->recs_head) * sizeof *s->recs);
		s->nrecs -= s->recs_head;
		s->recs_head = 0;
	}
}

static void count_lost(mplog_sink *s, uint64_t n, int why)
{
	if (!n)
		return;
	if (!s->lost)
		s->lost_why = why;
	s->lost += n;
	atomic_fetch_add(&s->dropped, n);
}

/* Write what is queued, without blocking; note failure and recovery. */
static void try_write(mplog_sink *s)
{
	if (s->wfd < 0 || (!queued(s) && !s->need_nl))
		return;
	int err = 0;
	size_t n = 0;
	if (s->need_nl && mplog__sink_fd_write(s, "\n", 1, &err) == 1)
		s->need_nl = false;
	if (!s->need_nl && queued(s)) {
		n = mplog__sink_fd_write(s, s->out.data + s->head, queued(s), &err);
		advance(s, n);
	}
	if (err && err != -EAGAIN) {
		if (!s->err) { /* it works no more: the others are told */
			s->err = err;
			s->report = REPORT_FAILED;
		}
		if (!s->err_seen)
			s->err_seen = err;
		return;
	}
	/* Bytes went, or it is merely full: it works. */
	s->err = 0;
	if (s->report == REPORT_FAILED)
		s->report = REPORT_NONE; /* back before anyone heard */
	if (!queued(s) && !s->need_nl && (s->lost || s->told)) {
		mplog__sink_recovered(s);
		advance(s, mplog__sink_fd_write(s, s->out.data + s->head, queued(s), &err));
	}
}

bool mplog__sink_blocked(const mplog_sink *s)
{
	return s->wfd >= 0 && !s->err && (queued(s) || s->need_nl);
}

void mplog__sink_discard(mplog_sink *s)
{
	if (s->recs_head < s->nrecs && s->recs[s->recs_head].start < s->head)
		s->need_nl = true; /* a record was cut: the next starts a line */
	count_lost(s, s->nrecs - s->recs_head, s->err ? s->err : -EAGAIN);
	s->head = s->out.len = 0;
	s->nrecs = s->recs_head = 0;
	if (s->lost || s->told)
		s->report = REPORT_GAVE_UP;
}

void mplog__sink_put_raw(mplog_sink *s, const void *data, size_t len)
{
	if (s->wfd >= 0 && queued(s) < MPLOG_SINK_QUEUE_BYTES)
		mpk_buf_put(&s->out, data, len);
}

#define ERASE_LINE "\r\033[K"

/* Its records go above its aggregator's status line. */
static bool below_status(const mplog_sink *s)
{
	const struct mplog__status *st = s->status;
	return st && st->tty && st->line && s->kind == SINK_FD && s->fd == st->fd;
}

void mplog__sink_put(mplog_sink *s, const mplog_record *r)
{
	if (s->kind == SINK_CALLBACK) {
		s->fn(r, s->userdata);
		return;
	}
	if (s->kind == SINK_SYSLOG) {
		mplog__syslog_put(s, r);
		return;
	}
	if (s->kind == SINK_JOURNAL) {
		mplog__journal_put(s, r);
		return;
	}
	if (queued(s) >= MPLOG_SINK_QUEUE_BYTES)
		try_write(s);
	if (queued(s) >= MPLOG_SINK_QUEUE_BYTES) {
		count_lost(s, 1, s->err ? s->err : -EAGAIN);
		return;
	}
	mplog__sink_queue_record(s, r);
}

void mplog__sink_queue_record(mplog_sink *s, const mplog_record *r)
{
	if (s->nrecs == s->recs_cap) {
		size_t cap = s->recs_cap ? 2 * s->recs_cap : 64;
		struct mplog__span *v = realloc(s->recs, cap * sizeof *v);
		if (!v) {
			count_lost(s, 1, -ENOMEM);
			return;
		}
		s->recs = v;
		s->recs_cap = cap;
	}
	if (!s->round) { /* the first record of a round erases the status line */
		s->round = true;
		if (below_status(s) && s->status->visible)
			mpk_buf_put(&s->out, ERASE_LINE, sizeof ERASE_LINE - 1);
	}
	size_t start = s->out.len;
	if (s->format == MPLOG_FORMAT_JSON)
		mplog__format_json(&s->out, r);
	else
		mplog__format_text(&s->out, r, s->color);
	if (s->out.oom) {
		s->out.len = start;
		s->out.oom = false;
		count_lost(s, 1, -ENOMEM);
		return;
	}
	s->recs[s->nrecs++] = (struct mplog__span){start, s->out.len};
}

int mplog__write_all(int fd, const void *data, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t k = write(fd, (const char *)data + off, len - off);
		if (k > 0) {
			off += (size_t)k;
		} else if (k < 0 && errno == EINTR) {
			continue;
		} else if (k < 0 && errno == EAGAIN) { /* a non-blocking terminal */
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, -1);
		} else {
			return k < 0 ? -errno : -EIO; /* broken: drop, do not spin */
		}
	}
	return 0;
}

void mplog__sink_flush(mplog_sink *s)
{
	if (s->kind == SINK_SYSLOG || s->kind == SINK_JOURNAL || s->kind == SINK_CALLBACK)
		return; /* sent one message at a time */
	if (s->round) { /* draw the status line again below the records */
		s->round = false;
		if (below_status(s)) {
			mpk_buf_put(&s->out, s->status->line, s->status->len);
			s->status->visible = true;
		}
	}
	if (s->out.oom) { /* the status line did not fit: draw it next time */
		s->out.oom = false;
		s->out.len = s->nrecs > s->recs_head ? s->recs[s->nrecs - 1].end : s->head;
		if (s->status)
			s->status->visible = false;
	}
	try_write(s);
}

int mplog__sink_reopen(mplog_sink *s)
{
	if (s->kind != SINK_FILE)
		return 0;
	int fd = open_append(s->path);
	if (fd < 0)
		return fd;
	/* The rest of a record the old file did not take would be a fragment
	 * in the new one: it is lost (the old file keeps a partial line). */
	if (s->recs_head < s->nrecs && s->recs[s->recs_head].start < s->head) {
		size_t end = s->recs[s->recs_head].end;
		count_lost(s, 1, s->err ? s->err : -EIO);
		advance(s, end - s->head);
	}
	mpk_fdreg_add(fd);
	mpk_fdreg_close(&s->wfd);
	s->wfd = fd;
	s->need_nl = ends_mid_line(s->path);
	s->err = 0; /* the new file has not failed (yet) */
	return 0;
}
