/* SPDX-License-Identifier: MIT */
/* The fork server: a single-threaded process forked once, when the pool is
 * created, that forks every worker on the parent's request. Replacing a
 * worker therefore never forks the parent, which may have threads holding
 * locks (the dispatcher's, the user's), and every worker starts from the
 * same memory image. The server reaps its workers and reports their exit
 * status; when the parent dies (EOF on the control socket) it kills them. */
#include "pool-int.h"
#include "fdpass-int.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Send one message with up to MPG_FS_MAX_FDS fds. */
static int fs_send(int sock, const struct mpg__fsmsg *m, const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MPG_FS_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof *m};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	mpg__cmsg_put_fds(&mh, u.buf, fds, nfds);
	for (;;) {
		ssize_t w = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (w == (ssize_t)sizeof *m)
			return 0;
		if (w < 0 && errno == EINTR)
			continue;
		return w < 0 ? -errno : -EPROTO;
	}
}

static int fs_send1(int sock, const struct mpg__fsmsg *m, int fd)
{
	return fs_send(sock, m, &fd, fd >= 0 ? 1 : 0);
}

/* Receive one message and the fds sent with it (up to MPG_FS_MAX_FDS; -1
 * where none). Returns 1, 2 when some of its fds were lost (MSG_CTRUNC:
 * no fd was free here, the message itself is whole), 0 on EOF, or a
 * negative errno (-EAGAIN on a non-blocking socket); fds beyond the
 * maximum are closed. */
int mpg__fs_recv(int sock, struct mpg__fsmsg *m, int fds[MPG_FS_MAX_FDS], int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * (MPG_FS_MAX_FDS + 2))];
		struct cmsghdr align;
	} u;
	uint8_t msg[sizeof *m];
	struct iovec iov = {.iov_base = msg, .iov_len = sizeof msg};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = u.buf, .msg_controllen = sizeof u.buf};
	for (int i = 0; i < MPG_FS_MAX_FDS; i++)
		fds[i] = -1;
	ssize_t r;
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	mpg__cmsg_take_fds(&mh, fds, MPG_FS_MAX_FDS, NULL);
	if (r == 0)
		return 0;
	if (mpg__fsmsg_decode(msg, (size_t)r, mh.msg_flags & MSG_TRUNC, m) < 0) {
		for (int i = 0; i < MPG_FS_MAX_FDS; i++) {
			if (fds[i] >= 0)
				close(fds[i]);
			fds[i] = -1;
		}
		return -EPROTO;
	}
	return mh.msg_flags & MSG_CTRUNC ? 2 : 1;
}

static void reap(int ctl, pid_t *pids, unsigned n)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct mpg__fsmsg m = {.type = FS_EXITED, .pid = pid, .value = status};
		for (unsigned i = 0; i < n; i++) {
			if (pids[i] == pid) {
				pids[i] = 0;
				m.slot = i;
			}
		}
		(void)fs_send1(ctl, &m, -1);
	}
}

static void close_fds(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* fds: the worker's socket, its two frame pipes if FS_SPAWN_PIPES, then
 * its log, stdout and stderr pipes and its log ring (or -1); fds_lost:
 * some did not reach us (no fd free). */
static void spawn(const struct mpg__wconfig *cfg, int ctl, int sigfd, pid_t *pids,
		  const struct mpg__fsmsg *req, const int *fds, bool fds_lost)
{
	struct mpg__wchan ch = {fds[0], fds[0], fds[0]};
	int k = 1;
	if (req->value & FS_SPAWN_PIPES) {
		ch.in = fds[k++];
		ch.out = fds[k++];
	}
	int io[MPG_LOG_FDS] = {-1, -1, -1, -1};
	for (int i = 0; i < MPG_LOG_FDS && k < MPG_FS_MAX_FDS; i++)
		if (req->value & (1 << i))
			io[i] = fds[k++];
	struct mpg__fsmsg m = {.type = FS_SPAWN_FAILED, .slot = req->slot};
	if (fds_lost) {
		m.value = EMFILE; /* a worker without its socket or pipes is of no use */
		goto fail;
	}
	if (ch.sock < 0 || ch.in < 0 || ch.out < 0 || req->slot >= cfg->nworkers ||
	    pids[req->slot] != 0) {
		m.value = EINVAL;
		goto fail;
	}
	pid_t server = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		m.value = errno;
		goto fail;
	}
	if (pid == 0) {
		/* The server is single-threaded, so the child may do anything. */
		close(ctl);
		close(sigfd);
		/* Die with the server, which dies with the parent. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != server)
			_exit(127);
		mpg__worker_main(cfg, req->slot, &ch, io);
	}
	close_fds(fds, MPG_FS_MAX_FDS);
	pids[req->slot] = pid;
	/* The child cannot have been reaped yet (we reap only below), so this
	 * pidfd names exactly our child. */
	int pidfd = pidfd_open(pid, 0);
	m = (struct mpg__fsmsg){.type = FS_SPAWNED, .slot = req->slot, .pid = pid};
	(void)fs_send1(ctl, &m, pidfd);
	if (pidfd >= 0)
		close(pidfd);
	return;
fail:
	close_fds(fds, MPG_FS_MAX_FDS);
	(void)fs_send1(ctl, &m, -1);
}

static _Noreturn void server_main(const struct mpg__wconfig *cfg, int ctl)
{
	if (cfg->close_fds) {
		/* Nothing of the program's but stdio reaches the workers. */
		if (ctl > 3)
			close_range(3, (unsigned)ctl - 1, 0);
		close_range((unsigned)ctl + 1, ~0u, 0);
	}
	/* Ctrl-C reaches the whole process group: the parent decides what it
	 * means, so the server does not die of it. */
	signal(SIGINT, SIG_IGN);
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	signal(SIGCHLD, SIG_DFL);
	int sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0)
		_exit(127);
	prctl(PR_SET_NAME, "mpg-forkserver");
	/* What the program had buffered on stdout and stderr when the server
	 * was forked is the program's to print, not every worker's at its
	 * exit: dropped from our copies (__fpurge takes no lock, so a lock
	 * some parent thread held at fork time does not matter). Flushing in
	 * the parent instead could block on a thread reading stdin. */
	__fpurge(stdout);
	__fpurge(stderr);
	/* libunwind's one-time setup (some 1.3 ms) once here, inherited by
	 * every worker forked from now on, not paid again by each of them. */
	mpg__unwind_warm();

	pid_t pids[MPG_MAX_WORKERS];
	memset(pids, 0, sizeof(pid_t) * cfg->nworkers);
	bool parent_alive = true;

	for (;;) {
		bool any = false;
		for (unsigned i = 0; i < cfg->nworkers; i++)
			any |= pids[i] != 0;
		if (!parent_alive && !any)
			_exit(0);
		struct pollfd pfd[2] = {
			{.fd = parent_alive ? ctl : -1, .events = POLLIN},
			{.fd = sigfd, .events = POLLIN},
		};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(127);
		}
		if (pfd[1].revents) {
			struct signalfd_siginfo si;
			while (read(sigfd, &si, sizeof si) > 0)
				;
			reap(ctl, pids, cfg->nworkers);
		}
		if (pfd[0].revents) {
			struct mpg__fsmsg req;
			int fds[MPG_FS_MAX_FDS];
			int r = mpg__fs_recv(ctl, &req, fds, 0);
			if (r >= 1 && req.type == FS_SPAWN) {
				spawn(cfg, ctl, sigfd, pids, &req, fds, r == 2);
			} else if (r >= 1 && req.type == FS_KILL) {
				/* Race-free: our child, not reaped yet, cannot be a reused pid. */
				if (req.slot < cfg->nworkers && pids[req.slot] == req.pid && req.pid > 0)
					kill(req.pid, req.value);
				close_fds(fds, MPG_FS_MAX_FDS);
			} else if (r == 0 || (r < 0 && r != -EAGAIN && r != -EPROTO)) {
				/* Parent gone or closing: no worker may outlive it. */
				parent_alive = false;
				for (unsigned i = 0; i < cfg->nworkers; i++)
					if (pids[i])
						kill(pids[i], SIGKILL);
			} else {
				close_fds(fds, MPG_FS_MAX_FDS);
			}
		}
	}
}

int mpg__forkserver_start(const struct mpg__wconfig *cfg, int *ret_fd, pid_t *ret_pid)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* Registered, so the server's atfork handler closes our end: the
	 * server then sees EOF when the parent dies. */
	mpg__fdreg_add(sv[0]);
	pid_t pid = fork();
	if (pid == 0)
		server_main(cfg, sv[1]);
	int err = errno;
	close(sv[1]);
	if (pid < 0) {
		mpg__fdreg_del(sv[0]);
		close(sv[0]);
		return -err;
	}
	*ret_fd = sv[0];
	*ret_pid = pid;
	return 0;
}

int mpg__fs_request_spawn(int ctl, unsigned slot, const struct mpg__wchan *ch,
			  const int io[MPG_LOG_FDS])
{
	struct mpg__fsmsg m = {.type = FS_SPAWN, .slot = slot};
	/* Only the fds that exist travel; bits of value say whether frame
	 * pipes follow the socket, and which of log, stdout, stderr, ring
	 * follow them, in that order. */
	int fds[MPG_FS_MAX_FDS] = {ch->sock};
	unsigned n = 1;
	if (ch->in != ch->sock) {
		fds[n++] = ch->in;
		fds[n++] = ch->out;
		m.value |= FS_SPAWN_PIPES;
	}
	for (int i = 0; i < MPG_LOG_FDS; i++) {
		if (io && io[i] >= 0) {
			fds[n++] = io[i];
			m.value |= 1 << i;
		}
	}
	return fs_send(ctl, &m, fds, n);
}

int mpg__fs_request_kill(int ctl, unsigned slot, pid_t pid, int sig)
{
	struct mpg__fsmsg m = {.type = FS_KILL, .slot = slot, .pid = pid, .value = sig};
	return fs_send1(ctl, &m, -1);
}
