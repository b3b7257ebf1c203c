/* SPDX-License-Identifier: MIT */
/* The journal sink: each record one datagram of the journal's native
 * protocol (format-journal.c) to /run/systemd/journal/socket, no
 * libsystemd needed. A record too big for a datagram goes, as the
 * protocol specifies, in a sealed memfd passed with SCM_RIGHTS and an
 * empty datagram. Sends are addressed each time (a restarted journald is
 * found at its path) and time out like the syslog sink's; a record that
 * cannot go is dropped and counted, and so are those of the next second,
 * without trying (a journald that does not read delays us once a second
 * at most). Also the default sink's choice:
 * stderr's text, or the journal when stderr is the journal's stream. */
#include "aggregator-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define JOURNAL_SOCKET "/run/systemd/journal/socket"
#define SEND_TIMEOUT_MS 500
#define SNDBUF_WANTED (8u << 20) /* as libsystemd asks; the kernel may cap it */
#define RETRY_NS 1000000000ull

struct mplog__journal {
	struct sockaddr_un addr;
	socklen_t addrlen;
	int facility; /* -1: none sent */
	char ident[49];
	uint64_t retry_after; /* CLOCK_MONOTONIC ns: drop without trying until then */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

MPLOG_EXPORT int mplog_sink_new_journal(const char *path, unsigned flags, mplog_sink **ret)
{
	if (!ret || flags)
		return -EINVAL;
	if (!path)
		path = JOURNAL_SOCKET;
	size_t n = strlen(path);
	struct mplog__journal *j = calloc(1, sizeof *j);
	if (!j)
		return -ENOMEM;
	if (n == 0 || n >= sizeof j->addr.sun_path) {
		free(j);
		return -EINVAL;
	}
	j->addr.sun_family = AF_UNIX;
	memcpy(j->addr.sun_path, path, n + 1);
	j->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	j->facility = -1;
	mplog__syslog_token(j->ident, sizeof j->ident, program_invocation_short_name);
	mplog_sink *s = NULL;
	(void)mplog__sink_alloc(SINK_JOURNAL, MPLOG_FORMAT_TEXT, &s);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (!s || fd < 0) {
		int e = fd < 0 ? -errno : -ENOMEM;
		if (fd >= 0)
			close(fd);
		free(j);
		free(s);
		return e;
	}
	mpk_fdreg_add(fd); /* no forked child keeps it */
	struct timeval tv = {.tv_sec = SEND_TIMEOUT_MS / 1000, .tv_usec = SEND_TIMEOUT_MS % 1000 * 1000};
	int sndbuf = SNDBUF_WANTED;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf); /* best effort */
	int r = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ? -errno : 0;
	/* Connecting tells at once whether a journald listens there; the
	 * sends name the address anyway. */
	if (r == 0 && connect(fd, (const struct sockaddr *)&j->addr, j->addrlen) < 0)
		r = -errno;
	if (r < 0) {
		mpk_fdreg_close(&fd);
		free(j);
		free(s);
		return r;
	}
	s->fd = fd;
	s->jnl = j;
	*ret = s;
	return 0;
}

void mplog__journal_set_facility(mplog_sink *s, int facility)
{
	s->jnl->facility = facility;
}

void mplog__journal_set_ident(mplog_sink *s, const char *name)
{
	mplog__syslog_token(s->jnl->ident, sizeof s->jnl->ident, name);
}

void mplog__journal_free(mplog_sink *s)
{
	mpk_fdreg_close(&s->fd);
	free(s->jnl);
	s->jnl = NULL;
}

static int send_datagram(mplog_sink *s, const void *data, size_t n, int memfd)
{
	struct iovec iov = {(void *)data, n};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr mh = {.msg_name = &s->jnl->addr, .msg_namelen = s->jnl->addrlen,
			    .msg_iov = &iov, .msg_iovlen = 1};
	if (memfd >= 0) {
		mh.msg_iov = NULL;
		mh.msg_iovlen = 0;
		memset(&ctl, 0, sizeof ctl);
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof ctl.buf;
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &memfd, sizeof(int));
	}
	ssize_t k;
	do
		k = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	return k < 0 ? -errno : 0;
}

/* The protocol's way for a record bigger than a datagram: the fields in a
 * memfd sealed against every change, so journald can map it safely. */
static int send_memfd(mplog_sink *s, const void *data, size_t n)
{
	int fd = memfd_create("mplog-journal", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	mpk_fdreg_add(fd);
	int r = mplog__write_all(fd, data, n);
	if (r == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		r = -errno;
	if (r == 0)
		r = send_datagram(s, NULL, 0, fd);
	mpk_fdreg_close(&fd);
	return r;
}

void mplog__journal_put(mplog_sink *s, const mplog_record *r)
{
	struct mplog__journal *j = s->jnl;
	if (j->retry_after && mono_ns() < j->retry_after) {
		atomic_fetch_add(&s->dropped, 1);
		return;
	}
	s->out.len = 0;
	s->out.oom = false;
	mplog__format_journal(&s->out, r, j->facility, j->ident);
	int e = s->out.oom ? -ENOMEM : send_datagram(s, s->out.data, s->out.len, -1);
	if (e == -EMSGSIZE || e == -ENOBUFS)
		e = send_memfd(s, s->out.data, s->out.len);
	s->out.len = 0;
	/* journald gone or not reading: give it a second. */
	j->retry_after = e == -EAGAIN || e == -ECONNREFUSED || e == -ENOENT ? mono_ns() + RETRY_NS : 0;
	if (e < 0) {
		if (!s->err_seen) /* returned by the next flush */
			s->err_seen = e;
		atomic_fetch_add(&s->dropped, 1);
	}
}

/* JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected a
 * service's stdout/stderr to; stderr is the journal when it is that very
 * file (a child that redirected stderr keeps the variable, not the file). */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	int end = 0;
	if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &end) != 2 || e[end])
		return false;
	struct stat st;
	return fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

MPLOG_EXPORT int mplog_sink_new_stderr(unsigned flags, mplog_sink **ret)
{
	if (!ret || (flags & ~(unsigned)(MPLOG_SINK_COLOR_NEVER | MPLOG_SINK_COLOR_ALWAYS)) ||
	    flags == (MPLOG_SINK_COLOR_NEVER | MPLOG_SINK_COLOR_ALWAYS))
		return -EINVAL;
	if (stderr_is_journal() && mplog_sink_new_journal(NULL, 0, ret) == 0)
		return 0;
	return mplog_sink_new_fd(STDERR_FILENO, MPLOG_FORMAT_TEXT, flags, ret);
}
