/* SPDX-License-Identifier: MIT */
/* Worker side of debugging: ptrace grants and pauses.
 *
 * Under Yama ptrace_scope=1 only an ancestor may attach to a worker, and a
 * debugger started by mpattach is none. The pool asks the worker (through
 * its status page, see control.c) to name that debugger's pid its ptracer
 * with PR_SET_PTRACER: that pid only, never PR_SET_PTRACER_ANY.
 *
 * Everything here is async-signal-safe: it runs in a signal handler (the
 * grant, on MPG_CONTROL_SIGNAL) and in the crash handler (a pause after a
 * crash report). Only atomics on the shared page, prctl, futex, clock_gettime,
 * open/read/close: no malloc, no stdio, no lock. */
#include "pool-int.h"
#include "futex-int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#ifndef PR_SET_PTRACER
#define PR_SET_PTRACER 0x59616d61
#endif

#define PAUSE_POLL_NS (100u * 1000000u)

static struct mpg__wstatus *S;

/* Serve a pending grant (pid 0: take it back). EINVAL means Yama is not
 * active, or under Yama that no process has the pid: the parent tells
 * which (it knows whether the tracer lived throughout). */
static void serve_grant(void)
{
	uint32_t req = atomic_load(&S->ptracer_req);
	if (req == atomic_load(&S->ptracer_ack))
		return;
	int32_t pid = atomic_load(&S->ptracer);
	int err = prctl(PR_SET_PTRACER, (unsigned long)pid, 0, 0, 0) < 0 ? errno : 0;
	atomic_store(&S->ptracer_err, err);
	atomic_store(&S->ptracer_ack, req);
	mpg__futex_wake(&S->ptracer_ack);
}

static void on_control_signal(int sig)
{
	(void)sig;
	int saved = errno;
	serve_grant();
	errno = saved;
}

int mpg__pause_install(struct mpg__wstatus *st)
{
	S = st;
	atomic_store(&S->paused, WP_NONE);
	atomic_store(&S->crashing, 0);
	atomic_store(&S->resume, 0);
	atomic_store(&S->ptracer_ack, atomic_load(&S->ptracer_req)); /* a dead worker's */
	struct sigaction sa = {.sa_handler = on_control_signal, .sa_flags = SA_RESTART};
	sigfillset(&sa.sa_mask);
	return sigaction(MPG_CONTROL_SIGNAL, &sa, NULL) < 0 ? -errno : 0;
}

/* Is a debugger attached? From the TracerPid line of /proc/self/status. */
static bool traced(void)
{
	char buf[2048];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	const char *t = strstr(buf, "TracerPid:");
	if (!t)
		return false;
	for (t += 10; *t == ' ' || *t == '\t'; t++)
		;
	return *t >= '1' && *t <= '9';
}

void mpg__status_crashing(void)
{
	if (S)
		atomic_store(&S->crashing, 1);
}

void mpg__pause(uint32_t why, unsigned timeout_ms)
{
	if (!S)
		return;
	atomic_store(&S->resume, 0); /* meant for an earlier pause */
	atomic_store(&S->paused, why);
	uint64_t deadline = mpg__now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		uint32_t seq = atomic_load(&S->ctl_seq);
		serve_grant(); /* signals may be blocked here (crash handler) */
		if (atomic_exchange(&S->resume, 0))
			break;
		/* A debugger attached, and since we are running it let us go
		 * on: its breakpoints are set, or it wants to see the crash. */
		if (traced())
			break;
		uint64_t now = mpg__now_ns();
		if (now >= deadline)
			break;
		uint64_t left = deadline - now;
		mpg__futex_wait(&S->ctl_seq, seq, left < PAUSE_POLL_NS ? left : PAUSE_POLL_NS);
	}
	atomic_store(&S->paused, WP_NONE);
}
