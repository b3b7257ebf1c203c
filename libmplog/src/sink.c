/* Sinks: where the aggregator's records go. fd and file sinks buffer the
 * formatted records of one dispatch round and write them at once; file
 * sinks reopen their path on request (logrotate); callback sinks hand the
 * record to the caller; syslog sinks (sink-syslog.c) send each record as
 * it comes. */
#include "aggregator-int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int sink_alloc(enum sink_kind kind, mplog_format format, mplog_sink **ret)
{
	if (!ret || (unsigned)format > MPLOG_FORMAT_JSON)
		return -EINVAL;
	mplog_sink *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->kind = kind;
	s->format = format;
	s->fd = -1;
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
	int r = sink_alloc(SINK_FD, format, &s);
	if (r < 0)
		return r;
	s->fd = fd;
	if (format == MPLOG_FORMAT_TEXT)
		s->color = (flags & MPLOG_SINK_COLOR_ALWAYS) ||
			   (!(flags & MPLOG_SINK_COLOR_NEVER) && isatty(fd));
	*ret = s;
	return 0;
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
	int r = sink_alloc(SINK_FILE, format, &s);
	if (r < 0)
		return r;
	s->path = strdup(path);
	if (!s->path) {
		free(s);
		return -ENOMEM;
	}
	s->fd = open_append(path);
	if (s->fd < 0) {
		r = s->fd;
		free(s->path);
		free(s);
		return r;
	}
	mpk_fdreg_add(s->fd); /* no forked child keeps the log file */
	*ret = s;
	return 0;
}

MPLOG_EXPORT int mplog_sink_new_callback(mplog_sink_fn fn, void *userdata, mplog_sink **ret)
{
	if (!fn)
		return -EINVAL;
	mplog_sink *s;
	int r = sink_alloc(SINK_CALLBACK, MPLOG_FORMAT_TEXT, &s);
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
	if (s->kind == SINK_FILE)
		mpk_fdreg_close(&s->fd);
	if (s->kind == SINK_SYSLOG)
		mplog__syslog_free(s);
	free(s->path);
	mpk_buf_free(&s->out);
	free(s);
}

/* In a forked child: the fd this sink opened was closed at the fork (the
 * registry), and must not be closed again. */
void mplog__sink_forget_fd(mplog_sink *s)
{
	if (s->kind == SINK_FILE || s->kind == SINK_SYSLOG) {
		mpk_fdreg_del(s->fd);
		s->fd = -1;
	}
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
	if (s->format == MPLOG_FORMAT_JSON)
		mplog__format_json(&s->out, r);
	else
		mplog__format_text(&s->out, r, s->color);
	if (s->out.len >= (1u << 20))
		mplog__sink_flush(s);
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

#define ERASE_LINE "\r\033[K"

void mplog__sink_flush(mplog_sink *s)
{
	if (s->kind == SINK_SYSLOG)
		return; /* sent one message at a time */
	struct mplog__status *st = s->status;
	bool below = st && st->tty && st->line && s->kind == SINK_FD && s->fd == st->fd &&
		     s->out.len && s->fd >= 0;
	int r = 0;
	/* Records go above the status line: erase it, write, draw it again. */
	if (below && st->visible)
		r = mplog__write_all(s->fd, ERASE_LINE, sizeof ERASE_LINE - 1);
	if (r == 0 && s->fd >= 0)
		r = mplog__write_all(s->fd, s->out.data, s->out.len);
	if (below) {
		st->visible = r == 0 && mplog__write_all(s->fd, st->line, st->len) == 0;
	}
	if (r < 0 && !s->err)
		s->err = r;
	s->out.len = 0;
	s->out.oom = false;
}

int mplog__sink_reopen(mplog_sink *s)
{
	if (s->kind != SINK_FILE)
		return 0;
	int fd = open_append(s->path);
	if (fd < 0)
		return fd;
	mpk_fdreg_add(fd);
	mpk_fdreg_close(&s->fd);
	s->fd = fd;
	s->err = 0;
	return 0;
}
