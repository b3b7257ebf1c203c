/* SPDX-License-Identifier: MIT */
/* The control socket of a pool or a supervisor (a target, see
 * control-int.h), for mpattach and `mplog live`: registered as
 * "<pid>.<n>.sock" in the registry directory (registry.c) and served by a
 * thread of its own, so a slow or stuck client never holds up the
 * dispatcher or the supervisor. Peers must have this process's effective
 * uid (SO_PEERCRED).
 *
 * Protocol: the client sends one request per line (control-request.c
 * decodes them); each gets one JSON line in reply:
 *   info               the target and its slots (workers, services)
 *   ptrace SLOT        let the peer's pid (from SO_PEERCRED, never from
 *                      the request) ptrace that slot: PR_SET_PTRACER,
 *                      only while the process that connected lives (a
 *                      pidfd taken at connect, checked at the grant)
 *   resume SLOT|all    end the pause of paused slots
 *   log                {"ok":true}, then the log's records as JSON
 *                      lines, until the client hangs up
 * SLOT is a number, or a service's name. Errors: {"ok":false,"error":"..."}. */
#include "pool-int.h"
#include "control-int.h"
#include "control-request-int.h"
#include "futex-int.h"
#include "json-int.h"
#include "registry-int.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif

#define MAX_CLIENTS 16
#define GRANT_TIMEOUT_NS (2000u * 1000000u)
/* A live log reader gets this much backlog, then records are dropped. */
#define LOG_BACKLOG (4u << 20)

struct mpg__control;
struct client {
	struct mpg__control *ctl;
	int fd;
	pid_t pid;
	/* The process that connected (pid): -1 when it could not be had,
	 * readable once that process has exited. */
	int pidfd;
	int pidfd_err; /* why there is none, an errno */
	char req[MPG_CTL_MAX_REQUEST + 1];
	size_t req_len;
	/* a log subscriber: records queued by the sink callback, which runs on
	 * the aggregator's thread */
	mplog_sink *sink;
	pthread_mutex_t out_lock;
	struct mpk_buf out;
	uint64_t dropped;
	uint64_t after; /* "log N": records up to this number came in the backlog */
	bool broken; /* send failed: hang up */
};

struct mpg__control {
	struct mpg__ctl_target t;
	struct mpg__ctl_slot *slots; /* the control thread's snapshot */
	int listen_fd;
	int wake_fd; /* eventfd: stop, or a log subscriber has backlog */
	_Atomic bool stopping;
	pthread_t thread;
	char path[PATH_MAX];
	uint64_t start_realtime_ns;
	struct client *clients[MAX_CLIENTS];
	struct mpg__backlog *backlog; /* of t.log, for "log N" */
};

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Any bytes (a program's name, a service's) as valid JSON. */
static void put_json_string(struct mpk_buf *b, const char *s)
{
	mpk_json_string(b, s, strlen(s));
}

/* Blocking send of a whole reply (the socket has a send timeout). */
static void send_all(struct client *c, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len && !c->broken) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			c->broken = true;
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

static void reply(struct client *c, const struct mpk_buf *b)
{
	if (b->oom) {
		static const char oom[] = "{\"ok\":false,\"error\":\"out of memory\"}\n";
		send_all(c, oom, sizeof oom - 1);
	} else {
		send_all(c, b->data, b->len);
	}
}

static void reply_error(struct client *c, const char *fmt, ...) MPG_PRINTF(2, 3);
static void reply_error(struct client *c, const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct mpk_buf b = {0};
	mpk_buf_put(&b, "{\"ok\":false,\"error\":", 20);
	put_json_string(&b, msg);
	mpk_buf_put(&b, "}\n", 2);
	reply(c, &b);
	mpk_buf_free(&b);
}

static void put_u64(struct mpk_buf *b, const char *key, uint64_t v)
{
	mpk_buf_printf(b, ",\"%s\":%" PRIu64, key, v);
}

static void do_info(struct mpg__control *ctl, struct client *c)
{
	const struct mpg__ctl_target *t = &ctl->t;
	struct mpg__ctl_summary sum = {0};
	t->snapshot(t->obj, &sum, ctl->slots);
	struct mpk_buf b = {0};
	mpk_buf_printf(&b, "{\"ok\":true,\"kind\":\"%s\",\"pid\":%d,\"pool\":%u,\"program\":", t->kind,
		       (int)t->pid, t->seq);
	put_json_string(&b, program_invocation_name);
	put_u64(&b, "start_ns", ctl->start_realtime_ns);
	mpk_buf_printf(&b, ",\"state\":\"%s\",\"pause\":\"%s%s%s\"", sum.state,
		       t->pause & MPG_PAUSE_AT_START ? "start" : "",
		       t->pause == (MPG_PAUSE_AT_START | MPG_PAUSE_ON_CRASH) ? "," : "",
		       t->pause & MPG_PAUSE_ON_CRASH ? "crash" : "");
	if (sum.counts_tasks) {
		put_u64(&b, "tasks_done", sum.tasks_done);
		put_u64(&b, "tasks_total", sum.tasks_total);
		put_u64(&b, "tasks_failed", sum.tasks_failed);
	}
	mpk_buf_printf(&b, ",\"workers\":[");
	for (unsigned i = 0; i < t->nslots; i++) {
		const struct mpg__ctl_slot *sl = &ctl->slots[i];
		mpk_buf_printf(&b, "%s{\"worker\":%u", i ? "," : "", i);
		if (sl->name) {
			mpk_buf_printf(&b, ",\"name\":");
			put_json_string(&b, sl->name);
		}
		mpk_buf_printf(&b, ",\"pid\":%d,\"state\":\"%s\"", (int)sl->pid, sl->state);
		if (sl->has_task) {
			put_u64(&b, "job", sl->job);
			put_u64(&b, "task", sl->task);
		}
		put_u64(&b, "uptime_ms", sl->uptime_ms);
		if (sl->counts_tasks)
			put_u64(&b, "tasks_done", sl->tasks_done);
		mpk_buf_printf(&b, ",\"restarts\":%u}", sl->restarts);
	}
	mpk_buf_printf(&b, "]}\n");
	reply(c, &b);
	mpk_buf_free(&b);
}

/* The slot a request names (its number, or a service's name), -2 for
 * "all", or -1 after replying why none. Takes a snapshot, which the
 * caller may use. */
static int find_slot(struct mpg__control *ctl, struct client *c, const struct mpg__ctl_request *req)
{
	const struct mpg__ctl_target *t = &ctl->t;
	struct mpg__ctl_summary sum;
	t->snapshot(t->obj, &sum, ctl->slots);
	if (req->target == MPG_CTL_ALL)
		return -2;
	if (req->target == MPG_CTL_SLOT && req->slot < t->nslots)
		return (int)req->slot;
	for (unsigned i = 0; req->target == MPG_CTL_NAME && i < t->nslots; i++) {
		const char *name = ctl->slots[i].name;
		if (name && strlen(name) == req->arg_len && memcmp(name, req->arg, req->arg_len) == 0)
			return (int)i;
	}
	reply_error(c, "no %s \"%.*s\" (%ss are 0 to %u%s%s)", t->slot_noun, (int)req->arg_len,
		    req->arg, t->slot_noun, t->nslots - 1, ctl->slots[0].name ? " or their names" : "",
		    req->verb == MPG_CTL_RESUME ? ", or all" : "");
	return -1;
}

/* Has the process that connected exited (its pid free to be reused)? */
static bool peer_gone(const struct client *c)
{
	struct pollfd p = {.fd = c->pidfd, .events = POLLIN};
	return poll(&p, 1, 0) != 0; /* readable at exit; an error: assume gone */
}

/* Ask slot's process to name tracer its ptracer (0: nobody); wait for its
 * answer. Returns its errno (0: done), or -1 after replying why none. */
static int ask_grant(struct mpg__control *ctl, struct client *c, int slot,
		     const struct mpg__ctl_slot *sl, pid_t tracer)
{
	const struct mpg__ctl_target *t = &ctl->t;
	struct mpg__wstatus *ws = &t->status[slot];
	atomic_store(&ws->ptracer, tracer);
	uint32_t req_seq = atomic_fetch_add(&ws->ptracer_req, 1) + 1;
	/* A paused process waits on ctl_seq; a running one takes the signal. */
	atomic_fetch_add(&ws->ctl_seq, 1);
	mpg__futex_wake(&ws->ctl_seq);
	int e = t->signal(t->obj, (unsigned)slot, sl->pid, MPG_CONTROL_SIGNAL);
	if (e < 0) {
		reply_error(c, "%s %d (pid %d) could not be signalled: %s", t->slot_noun, slot,
			    (int)sl->pid, strerror(-e));
		return -1;
	}
	uint64_t deadline = mpg__now_ns() + GRANT_TIMEOUT_NS;
	for (;;) {
		uint32_t ack = atomic_load(&ws->ptracer_ack);
		if (ack == req_seq)
			break;
		uint64_t now = mpg__now_ns();
		if (now >= deadline) {
			reply_error(c, "%s %d (pid %d) did not answer within 2 s (is SIGURG "
				       "blocked in its %s?)", t->slot_noun, slot, (int)sl->pid,
				    sl->counts_tasks ? "task" : "code");
			return -1;
		}
		mpg__futex_wait(&ws->ptracer_ack, ack, deadline - now);
	}
	return atomic_load(&ws->ptracer_err);
}

/* The grant goes to the peer's pid only while the process that connected
 * lives: checked before, so that a pid it left behind is never named, and
 * after, since a pid cannot be reused while its process lives (one that
 * dies after the grant takes it along: Yama drops a dead tracer's). */
static void do_ptrace(struct mpg__control *ctl, struct client *c, const struct mpg__ctl_request *req)
{
	const struct mpg__ctl_target *t = &ctl->t;
	int slot = find_slot(ctl, c, req);
	if (slot < 0)
		return;
	const struct mpg__ctl_slot *sl = &ctl->slots[slot];
	pid_t pid = sl->grantable ? sl->pid : 0;
	if (pid <= 0) {
		reply_error(c, "%s %d is not running now (%s)", t->slot_noun, slot, sl->state);
		return;
	}
	if (c->pidfd < 0 && c->pidfd_err != ESRCH) {
		reply_error(c, "no ptrace grant: the process that connected (pid %d) cannot be "
			       "told from one that reuses its pid: %s", (int)c->pid,
			    strerror(c->pidfd_err));
		return;
	}
	if (c->pidfd < 0 || peer_gone(c)) {
		reply_error(c, "no ptrace grant: the process that connected (pid %d) has "
			       "exited; ask from the process that is to trace", (int)c->pid);
		return;
	}
	int err = ask_grant(ctl, c, slot, sl, c->pid);
	if (err < 0)
		return;
	if (peer_gone(c)) {
		/* Named while it lived, or the pid's next owner: take it back. */
		if (err == 0 && ask_grant(ctl, c, slot, sl, 0) < 0)
			return;
		reply_error(c, "no ptrace grant: the process that connected (pid %d) exited "
			       "during the grant", (int)c->pid);
		return;
	}
	/* It lived before and after, so its pid was its own throughout:
	 * EINVAL, which under Yama would mean no such process, means no Yama. */
	if (err && err != EINVAL) {
		reply_error(c, "%s %d could not grant ptrace: %s", t->slot_noun, slot, strerror(err));
		return;
	}
	struct mpk_buf b = {0};
	/* EINVAL without Yama: nothing to grant; ptrace's usual rules apply. */
	mpk_buf_printf(&b, "{\"ok\":true,\"worker\":%d,\"pid\":%d,\"yama\":%s,\"tracer\":%d}\n", slot,
		(int)pid, err == EINVAL ? "false" : "true", (int)c->pid);
	reply(c, &b);
	mpk_buf_free(&b);
}

static void do_resume(struct mpg__control *ctl, struct client *c, const struct mpg__ctl_request *req)
{
	const struct mpg__ctl_target *t = &ctl->t;
	int slot = find_slot(ctl, c, req);
	if (slot == -1)
		return;
	unsigned resumed = 0;
	for (unsigned i = 0; i < t->nslots; i++) {
		if (slot >= 0 && i != (unsigned)slot)
			continue;
		struct mpg__wstatus *ws = &t->status[i];
		if (atomic_load(&ws->paused) == WP_NONE)
			continue;
		atomic_store(&ws->resume, 1);
		atomic_fetch_add(&ws->ctl_seq, 1);
		mpg__futex_wake(&ws->ctl_seq);
		resumed++;
	}
	struct mpk_buf b = {0};
	mpk_buf_printf(&b, "{\"ok\":true,\"kind\":\"%s\",\"resumed\":%u}\n", t->kind, resumed);
	reply(c, &b);
	mpk_buf_free(&b);
}

static void wake(struct mpg__control *ctl)
{
	uint64_t one = 1;
	(void)!write(ctl->wake_fd, &one, sizeof one);
}

/* Send what the client's backlog holds without blocking; out_lock held. */
static void flush_backlog(struct client *c)
{
	while (c->out.len && !c->broken) {
		ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			c->broken = true;
			return;
		}
		mpk_buf_consume(&c->out, (size_t)n);
	}
}

/* The sink callback of a live log reader, on the aggregator's thread:
 * queue the record whole, or drop it whole (a line is never cut). */
static void on_log_record(const mplog_record *r, void *userdata)
{
	struct client *c = userdata;
	char small[1024];
	ssize_t n = mplog_record_format(r, MPLOG_FORMAT_JSON, 0, small, sizeof small);
	char *big = NULL;
	if (n >= (ssize_t)sizeof small) {
		big = malloc((size_t)n + 1);
		if (!big || mplog_record_format(r, MPLOG_FORMAT_JSON, 0, big, (size_t)n + 1) != n)
			n = -ENOMEM;
	}
	pthread_mutex_lock(&c->out_lock);
	/* This record's number (we run under the aggregator's lock, after
	 * the backlog's sink); c->after is set under out_lock in do_log(). */
	if (c->after && mpg__backlog_seq(c->ctl->backlog) <= c->after) {
		pthread_mutex_unlock(&c->out_lock);
		free(big);
		return; /* sent with the backlog */
	}
	if (n < 0 || c->out.len + (size_t)n > LOG_BACKLOG) {
		c->dropped++;
	} else {
		if (c->dropped) {
			/* In the JSON sink's shape (docs/mplog-record.schema.json). */
			char note[512];
			uint64_t ns = realtime_ns();
			time_t sec = (time_t)(ns / 1000000000u);
			struct tm tm;
			gmtime_r(&sec, &tm);
			int k = snprintf(note, sizeof note,
					 "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09" PRIu64 "Z\","
					 "\"timeUnixNano\":\"%" PRIu64 "\",\"observedTimeUnixNano\":\"%"
					 PRIu64 "\",\"severityText\":\"WARN\",\"severityNumber\":13,"
					 "\"body\":\"%" PRIu64 " records dropped: the reader was too "
					 "slow\",\"resource\":{\"process.pid\":%d},\"attributes\":{"
					 "\"mpkit.channel\":\"control\"}}\n",
					 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
					 tm.tm_min, tm.tm_sec, ns % 1000000000u, ns, ns, c->dropped,
					 (int)getpid());
			mpk_buf_put(&c->out, note, (size_t)k);
			c->dropped = 0;
		}
		mpk_buf_put(&c->out, big ? big : small, (size_t)n);
	}
	flush_backlog(c);
	bool pending = c->out.len > 0;
	pthread_mutex_unlock(&c->out_lock);
	free(big);
	if (pending) /* the control thread sends the rest when it can */
		wake(c->ctl);
}

static void do_log(struct mpg__control *ctl, struct client *c, const struct mpg__ctl_request *req)
{
	if (!ctl->t.log) {
		reply_error(c, "this %s has no log (%s)", ctl->t.kind,
			    strcmp(ctl->t.kind, "pool") == 0 ? "mpg_options_set_log(NULL)" :
							       "mpg_supervisor_set_log(NULL)");
		return;
	}
	if (c->sink) {
		reply_error(c, "already following the log");
		return;
	}
	mplog_sink *sink;
	if (mplog_sink_new_callback(on_log_record, c, &sink) < 0) {
		reply_error(c, "out of memory");
		return;
	}
	/* Every record after the reply reaches the client, none before it:
	 * the sink's callback waits for out_lock until the reply is sent. */
	pthread_mutex_lock(&c->out_lock);
	c->sink = sink;
	if (mplog_aggregator_add_sink(ctl->t.log, sink) < 0) {
		c->sink = NULL; /* freed by add_sink */
		c->broken = true;
	} else {
		/* The last records: taken before the reply, so that they are the
		 * ones logged before it; those the sink gets too (added above,
		 * blocked on out_lock) are skipped there (number <= c->after). */
		struct mpk_buf b = {0};
		if (req->target == MPG_CTL_COUNT && req->slot && ctl->backlog)
			c->after = mpg__backlog_copy(ctl->backlog, req->slot, &b);
		char ok[64];
		int n = snprintf(ok, sizeof ok, "{\"ok\":true,\"kind\":\"%s\"}\n", ctl->t.kind);
		send_all(c, ok, (size_t)n);
		if (b.oom)
			c->broken = true;
		else if (b.len)
			send_all(c, b.data, b.len);
		mpk_buf_free(&b);
	}
	pthread_mutex_unlock(&c->out_lock);
}

static void handle_request(struct mpg__control *ctl, struct client *c, const char *line,
			   size_t len)
{
	struct mpg__ctl_request req;
	int r = mpg__ctl_request_decode(line, len, &req);
	if (r == -ENOENT)
		reply_error(c, "unknown request \"%.*s\" (info, ptrace W, resume W|all, log [N])",
			    req.word_len > 64 ? 64 : (int)req.word_len, req.word);
	else if (r < 0)
		reply_error(c, "bad request \"%.*s\": %s", req.word_len > 64 ? 64 : (int)req.word_len,
			    req.word, req.error);
	else if (req.verb == MPG_CTL_INFO)
		do_info(ctl, c);
	else if (req.verb == MPG_CTL_PTRACE)
		do_ptrace(ctl, c, &req);
	else if (req.verb == MPG_CTL_RESUME)
		do_resume(ctl, c, &req);
	else
		do_log(ctl, c, &req);
}

static void client_free(struct mpg__control *ctl, struct client *c)
{
	if (c->sink) {
		(void)mplog_aggregator_remove_sink(ctl->t.log, c->sink);
		/* The last records too (within the send timeout). */
		send_all(c, c->out.data, c->out.len);
	}
	mpg__fdreg_close(&c->fd);
	mpg__fdreg_close(&c->pidfd);
	mpk_buf_free(&c->out);
	pthread_mutex_destroy(&c->out_lock);
	free(c);
}

/* The process that connected, for ptrace grants: SO_PEERPIDFD names it
 * as it was at connect(); before Linux 6.5, pidfd_open() of its pid now,
 * which a process that connected, exited and had its pid reused before
 * this accept() would fool. Either pidfd is O_CLOEXEC. ESRCH: it has
 * exited already. */
static void take_peer_pidfd(struct client *c)
{
	socklen_t len = sizeof c->pidfd;
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERPIDFD, &c->pidfd, &len) < 0 ||
	    len != sizeof c->pidfd) {
		c->pidfd = -1;
		if (errno == ENOPROTOOPT || errno == EINVAL)
			c->pidfd = c->pid > 0 ? pidfd_open(c->pid, 0) : -1;
	}
	if (c->pidfd < 0) {
		c->pidfd_err = c->pid > 0 ? errno : ESRCH;
		return;
	}
	mpg__fdreg_add(c->pidfd);
}

static void accept_client(struct mpg__control *ctl)
{
	int fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		close(fd);
		return;
	}
	struct timeval tv = {.tv_sec = 1};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct client tmp = {.fd = fd, .pid = cred.pid, .pidfd = -1};
	if (cred.uid != geteuid()) {
		/* The directory and socket modes keep others out; this is the
		 * lock behind the door. */
		reply_error(&tmp, "permission denied: uid %u may not control a %s of uid %u",
			    (unsigned)cred.uid, ctl->t.kind, (unsigned)geteuid());
		close(fd);
		return;
	}
	size_t i = 0;
	while (i < MAX_CLIENTS && ctl->clients[i])
		i++;
	struct client *c = i < MAX_CLIENTS ? calloc(1, sizeof *c) : NULL;
	if (!c) {
		reply_error(&tmp, "too many clients");
		close(fd);
		return;
	}
	*c = tmp;
	c->ctl = ctl;
	take_peer_pidfd(c);
	pthread_mutex_init(&c->out_lock, NULL);
	mpg__fdreg_add(fd);
	ctl->clients[i] = c;
}

/* Read requests; returns false when the client is to go. */
static bool serve_client(struct mpg__control *ctl, struct client *c)
{
	char buf[512];
	ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0)
		return false;
	for (ssize_t i = 0; i < n && !c->broken; i++) {
		if (buf[i] == '\n') {
			size_t len = c->req_len;
			c->req_len = 0;
			handle_request(ctl, c, c->req, len);
		} else if (c->req_len < sizeof c->req - 1) {
			c->req[c->req_len++] = buf[i];
		} else {
			reply_error(c, "request longer than %u bytes", MPG_CTL_MAX_REQUEST);
			return false;
		}
	}
	return !c->broken;
}

static void *control_main(void *arg)
{
	struct mpg__control *ctl = arg;
	struct pollfd pfd[2 + MAX_CLIENTS];
	struct client *who[2 + MAX_CLIENTS];
	while (!atomic_load(&ctl->stopping)) {
		nfds_t n = 0;
		pfd[n++] = (struct pollfd){.fd = ctl->wake_fd, .events = POLLIN};
		pfd[n++] = (struct pollfd){.fd = ctl->listen_fd, .events = POLLIN};
		for (size_t i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = ctl->clients[i];
			if (!c)
				continue;
			short ev = POLLIN;
			if (c->sink) {
				pthread_mutex_lock(&c->out_lock);
				if (c->out.len)
					ev |= POLLOUT;
				pthread_mutex_unlock(&c->out_lock);
			}
			who[n] = c;
			pfd[n++] = (struct pollfd){.fd = c->fd, .events = ev};
		}
		if (poll(pfd, n, -1) < 0)
			continue;
		if (pfd[0].revents) {
			uint64_t v;
			(void)!read(ctl->wake_fd, &v, sizeof v);
		}
		if (pfd[1].revents & POLLIN)
			accept_client(ctl);
		for (nfds_t k = 2; k < n; k++) {
			struct client *c = who[k];
			bool keep = true;
			if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
				keep = serve_client(ctl, c);
			if (keep && c->sink) {
				pthread_mutex_lock(&c->out_lock);
				flush_backlog(c);
				keep = !c->broken;
				pthread_mutex_unlock(&c->out_lock);
			}
			if (!keep) {
				for (size_t i = 0; i < MAX_CLIENTS; i++)
					if (ctl->clients[i] == c)
						ctl->clients[i] = NULL;
				client_free(ctl, c);
			}
		}
	}
	return NULL;
}

/* Entries of pools and supervisors whose process is gone: a crash leaves them behind. */
static void sweep_stale(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		pid_t pid;
		unsigned n;
		if (mpg__registry_parse(e->d_name, &pid, &n) < 0)
			continue;
		if (kill(pid, 0) < 0 && errno == ESRCH)
			(void)unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

static int listen_at(struct mpg__control *ctl, const char *dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(ctl->path, sizeof ctl->path, "%s/%d.%u%s", dir, (int)ctl->t.pid,
			 ctl->t.seq, MPG_REGISTRY_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof sa.sun_path) {
		ctl->path[0] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, ctl->path, (size_t)n + 1);
	ctl->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (ctl->listen_fd < 0)
		return -errno;
	(void)unlink(ctl->path); /* a dead process's pid, reused */
	if (bind(ctl->listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int r = -errno;
		ctl->path[0] = '\0';
		return r;
	}
	/* The directory is 0700 already; the mode is a second lock. */
	if (chmod(ctl->path, 0600) < 0 || listen(ctl->listen_fd, 8) < 0)
		return -errno;
	return 0;
}

static void control_free(struct mpg__control *ctl)
{
	for (size_t i = 0; i < MAX_CLIENTS; i++)
		if (ctl->clients[i])
			client_free(ctl, ctl->clients[i]);
	mpg__backlog_free(ctl->backlog, ctl->t.log);
	if (ctl->path[0])
		(void)unlink(ctl->path);
	mpg__fdreg_close(&ctl->listen_fd);
	mpg__fdreg_close(&ctl->wake_fd);
	free(ctl->slots);
	free(ctl);
}

bool mpg__control_wanted(bool chosen, bool on)
{
	if (chosen)
		return on;
	const char *env = getenv("MPKIT_CONTROL");
	return !(env && strcmp(env, "0") == 0);
}

unsigned mpg__control_seq(void)
{
	static _Atomic unsigned seq;
	return atomic_fetch_add(&seq, 1);
}

int mpg__control_start(const struct mpg__ctl_target *t, struct mpg__control **ret)
{
	if (!t->nslots || !t->snapshot || !t->signal)
		return -EINVAL;
	struct mpg__control *ctl = calloc(1, sizeof *ctl);
	if (!ctl)
		return -ENOMEM;
	ctl->t = *t;
	ctl->listen_fd = ctl->wake_fd = -1;
	ctl->start_realtime_ns = realtime_ns();
	ctl->slots = calloc(t->nslots, sizeof *ctl->slots);
	int r = -ENOMEM;
	if (!ctl->slots)
		goto fail;
	/* Before any reader's sink (see control-backlog.c). */
	if (t->log && (r = mpg__backlog_new(t->log, &ctl->backlog)) < 0)
		goto fail;
	char dir[PATH_MAX];
	r = mpg__registry_dir(dir, sizeof dir, true);
	if (r < 0)
		goto fail;
	sweep_stale(dir);
	ctl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctl->wake_fd < 0) {
		r = -errno;
		goto fail;
	}
	mpg__fdreg_add(ctl->wake_fd);
	r = listen_at(ctl, dir);
	if (ctl->listen_fd >= 0)
		mpg__fdreg_add(ctl->listen_fd);
	if (r < 0)
		goto fail;
	/* Like the dispatcher, it takes no signal meant for the program. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 128 * 1024);
	r = -pthread_create(&ctl->thread, &attr, control_main, ctl);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto fail;
	*ret = ctl;
	return 0;
fail:
	control_free(ctl);
	return r;
}

void mpg__control_stop(struct mpg__control *ctl)
{
	if (!ctl)
		return;
	atomic_store(&ctl->stopping, true);
	wake(ctl);
	pthread_join(ctl->thread, NULL);
	control_free(ctl);
}
