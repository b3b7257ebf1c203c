/* SPDX-License-Identifier: MIT */
/* The syslog sink: messages (format-syslog.c) to the local syslog socket
 * in the RFC 3164 form the local daemon parses, or RFC 5424 to a UDP or
 * TCP collector. Datagram sockets carry one message per datagram; stream
 * sockets use RFC 6587 octet counting ("LEN SP MSG"). Sends have a
 * timeout, so a stuck collector delays the aggregator by a bounded time; a
 * failed send reconnects once and resends, else the message is dropped and
 * counted, and reconnection is not tried again for a second. */
#include "aggregator-int.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SEND_TIMEOUT_MS 500
#define RETRY_NS 1000000000ull
#define MSG_MAX 64000u /* longer messages are cut (a UDP datagram holds 65507) */

struct mplog__syslog {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int socktype; /* SOCK_DGRAM or SOCK_STREAM */
	int facility;
	char hostname[256];
	char app[49];
	bool rfc3164;   /* the local form */
	char sd_id[33]; /* "" : the registered "origin" only */
	uint64_t retry_after; /* CLOCK_MONOTONIC ns; 0: reconnect at once */
	_Atomic uint64_t dropped;
	};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A socket of type connected to the stored address: fd or -errno. */
static int sys_connect(const struct mplog__syslog *y, int type)
{
	int fd = socket(y->addr.ss_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	mpk_fdreg_add(fd); /* no forked child keeps it */
	struct timeval tv = {.tv_sec = SEND_TIMEOUT_MS / 1000, .tv_usec = SEND_TIMEOUT_MS % 1000 * 1000};
	/* SO_SNDTIMEO also bounds connect() of a TCP socket. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
		int e = -errno;
		mpk_fdreg_close(&fd);
		return e;
	}
	int r;
	do
		r = connect(fd, (const struct sockaddr *)&y->addr, y->addrlen);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		int e = errno == EINPROGRESS || errno == EAGAIN ? -ETIMEDOUT : -errno;
		mpk_fdreg_close(&fd);
		return e;
	}
	return fd;
}

/* Connect, resolving host:port (host may be "[v6]") for type. */
static int resolve_connect(struct mplog__syslog *y, const char *spec, int type)
{
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec || !colon[1])
		return -EINVAL;
	char host[256];
	size_t hl = (size_t)(colon - spec);
	if (spec[0] == '[') {
		if (hl < 3 || spec[hl - 1] != ']')
			return -EINVAL;
		spec++;
		hl -= 2;
	}
	if (hl >= sizeof host)
		return -EINVAL;
	memcpy(host, spec, hl);
	host[hl] = 0;
	char *end;
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || errno || port == 0 || port > 65535 || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;

	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = type,
				 .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG}, *res;
	int g = getaddrinfo(host, colon + 1, &hints, &res);
	if (g == EAI_MEMORY)
		return -ENOMEM;
	if (g == EAI_AGAIN)
		return -EAGAIN;
	if (g == EAI_SYSTEM)
		return errno ? -errno : -EIO;
	if (g != 0)
		return -EADDRNOTAVAIL;
	int fd = -EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof y->addr)
			continue;
		memcpy(&y->addr, ai->ai_addr, ai->ai_addrlen);
		y->addrlen = ai->ai_addrlen;
		fd = sys_connect(y, type);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	y->socktype = type;
	return fd;
}

/* Connect to a unix socket: a datagram socket, else (EPROTOTYPE) a stream. */
static int unix_connect(struct mplog__syslog *y, const char *path)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&y->addr;
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof un->sun_path)
		return -EINVAL;
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, n + 1);
	y->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	y->socktype = SOCK_DGRAM;
	int fd = sys_connect(y, SOCK_DGRAM);
	if (fd == -EPROTOTYPE) {
		y->socktype = SOCK_STREAM;
		fd = sys_connect(y, SOCK_STREAM);
	}
	return fd;
}

MPLOG_EXPORT int mplog_sink_new_syslog(const char *address, unsigned flags, mplog_sink **ret)
{
	if (!ret || (flags & ~(unsigned)(MPLOG_SYSLOG_RFC3164 | MPLOG_SYSLOG_RFC5424)) ||
	    flags == (MPLOG_SYSLOG_RFC3164 | MPLOG_SYSLOG_RFC5424))
		return -EINVAL;
	if (!address)
		address = "unix:/dev/log";
	int kind;
	if (strncmp(address, "unix:", 5) == 0)
		kind = 0;
	else if (strncmp(address, "udp:", 4) == 0)
		kind = SOCK_DGRAM;
	else if (strncmp(address, "tcp:", 4) == 0)
		kind = SOCK_STREAM;
	else
		return -EINVAL;
	struct mplog__syslog *y = calloc(1, sizeof *y);
	mplog_sink *s = NULL;
	(void)mplog__sink_alloc(SINK_SYSLOG, MPLOG_FORMAT_TEXT, &s);
	if (!y || !s) {
		free(y);
		free(s);
		return -ENOMEM;
	}
	int fd = kind == 0 ? unix_connect(y, address + 5) : resolve_connect(y, address + 4, kind);
	if (fd < 0) {
		free(y);
		free(s);
		return fd;
	}
	y->facility = 1; /* user */
	/* Local daemons parse what glibc's syslog() sends, not RFC 5424. */
	y->rfc3164 = flags ? (flags & MPLOG_SYSLOG_RFC3164) != 0 : kind == 0;
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	mplog__syslog_token(y->hostname, sizeof y->hostname, host);
	mplog__syslog_token(y->app, sizeof y->app, program_invocation_short_name);
	s->fd = fd;
	s->sys = y;
	*ret = s;
	return 0;
}

MPLOG_EXPORT int mplog_sink_set_syslog_facility(mplog_sink *s, int facility)
{
	if (!s || (s->kind != SINK_SYSLOG && s->kind != SINK_JOURNAL) || facility < 0 ||
	    facility > 23)
		return -EINVAL;
	if (s->kind == SINK_JOURNAL)
		mplog__journal_set_facility(s, facility);
	else
		s->sys->facility = facility;
	return 0;
}

MPLOG_EXPORT int mplog_sink_set_syslog_app_name(mplog_sink *s, const char *name)
{
	if (!s || (s->kind != SINK_SYSLOG && s->kind != SINK_JOURNAL) || !name || !*name)
		return -EINVAL;
	if (s->kind == SINK_JOURNAL)
		mplog__journal_set_ident(s, name);
	else
		mplog__syslog_token(s->sys->app, sizeof s->sys->app, name);
	return 0;
}

MPLOG_EXPORT int mplog_sink_set_syslog_sd_id(mplog_sink *s, const char *sd_id)
{
	if (!s || s->kind != SINK_SYSLOG || !mplog__syslog_sd_id_valid(sd_id))
		return -EINVAL;
	snprintf(s->sys->sd_id, sizeof s->sys->sd_id, "%s", sd_id);
	return 0;
}

MPLOG_EXPORT uint64_t mplog_sink_dropped(const mplog_sink *s)
{
	if (!s || s->kind == SINK_CALLBACK)
		return 0;
	if (s->kind != SINK_SYSLOG)
		return atomic_load(&s->dropped); /* sink.c: its queue was full */
	return atomic_load(&s->sys->dropped);
}

void mplog__syslog_free(mplog_sink *s)
{
	mpk_fdreg_close(&s->fd);
	free(s->sys);
	s->sys = NULL;
}

/* A collector never writes to us: readable or hung up means it is gone. */
static bool peer_gone(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
	return poll(&p, 1, 0) > 0;
}

/* Send the whole of iov (2 entries) or fail with -errno. */
static int send_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t k = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno; /* EAGAIN: the send timeout expired */
		}
		while (n > 0 && (size_t)k >= iov->iov_len) {
			k -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

static int send_msg(mplog_sink *s, const uint8_t *msg, size_t n)
{
	char len[24] = "";
	struct iovec iov[2] = {{len, 0}, {(void *)msg, n}};
	if (s->sys->socktype == SOCK_STREAM)
		iov[0].iov_len = (size_t)snprintf(len, sizeof len, "%zu ", n);
	if (s->sys->socktype == SOCK_DGRAM)
		return send_all(s->fd, iov + 1, 1);
	return send_all(s->fd, iov, 2);
}

static void drop_conn(mplog_sink *s)
{
	mpk_fdreg_close(&s->fd);
}

static void syslog_send(mplog_sink *s, const uint8_t *msg, size_t n)
{
	struct mplog__syslog *y = s->sys;
	bool fresh = false;
	if (n > MSG_MAX)
		n = MSG_MAX;
	if (s->fd >= 0 && y->socktype == SOCK_STREAM && peer_gone(s->fd))
		drop_conn(s);
	if (s->fd < 0) {
		if (y->retry_after && mono_ns() < y->retry_after)
			goto dropped;
		s->fd = sys_connect(y, y->socktype);
		if (s->fd < 0)
			goto failed;
		fresh = true;
	}
	if (send_msg(s, msg, n) == 0)
		return;
	drop_conn(s);
	if (!fresh) { /* reconnect once and resend */
		s->fd = sys_connect(y, y->socktype);
		if (s->fd >= 0 && send_msg(s, msg, n) == 0) {
			y->retry_after = 0;
			return;
		}
		drop_conn(s);
	}
failed:
	s->err = s->err ? s->err : -EIO;
	y->retry_after = mono_ns() + RETRY_NS;
dropped:
	atomic_fetch_add(&y->dropped, 1);
}

void mplog__syslog_put(mplog_sink *s, const mplog_record *r)
{
	s->out.len = 0;
	s->out.oom = false;
	struct mplog__syslog *y = s->sys;
	if (y->rfc3164)
		mplog__format_rfc3164(&s->out, r, y->facility, y->app);
	else
		mplog__format_syslog(&s->out, r, y->facility, y->hostname, y->app,
				     y->sd_id[0] ? y->sd_id : NULL);
	if (s->out.oom)
		atomic_fetch_add(&s->sys->dropped, 1); /* out of memory */
	else
		syslog_send(s, s->out.data, s->out.len);
	s->out.len = 0;
}
