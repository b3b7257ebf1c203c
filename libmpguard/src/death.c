/* SPDX-License-Identifier: MIT */
/* How a worker or a service ended, as a failure: one classification of
 * wait statuses, crash reports and protocol errors, one list of crash
 * signals and one set of messages, for the pool and the supervisor. */
#include "pool-int.h"
#include "crash-int.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

/* What a death by each signal says of its cause: the process's own doing
 * (SIGNALED: a fault, abort(), a resource limit, a write to a closed pipe)
 * or someone else's (KILLED). */
static mpg_error_kind signal_kind(int sig, const char **why)
{
	*why = "";
	switch (sig) {
	case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL: case SIGABRT:
	case SIGSYS: case SIGTRAP:
		return MPG_ERR_SIGNALED;
	case SIGXCPU:
		*why = " (over its CPU time limit, RLIMIT_CPU)";
		return MPG_ERR_SIGNALED;
	case SIGXFSZ:
		*why = " (over its file size limit, RLIMIT_FSIZE)";
		return MPG_ERR_SIGNALED;
	case SIGPIPE:
		*why = " (it wrote to a pipe or socket that no one reads)";
		return MPG_ERR_SIGNALED;
	case SIGKILL:
		*why = " from outside (perhaps out of memory: see dmesg)";
		return MPG_ERR_KILLED;
	default:
		*why = " sent from outside";
		return MPG_ERR_KILLED;
	}
}

void mpg__death_failure(int status, const char *protocol_error,
			const struct mpg__crash_head *crash, const uint64_t *crash_ips,
			char *msg, size_t msglen, struct mpg__failure *f)
{
	*f = (struct mpg__failure){.msg = msg};
	if (protocol_error) {
		f->kind = MPG_ERR_PROTOCOL;
		snprintf(msg, msglen, "%s", protocol_error);
	} else if (WIFEXITED(status)) {
		f->kind = MPG_ERR_EXITED;
		f->code = WEXITSTATUS(status);
		snprintf(msg, msglen, "exited with status %d", f->code);
	} else if (WIFSIGNALED(status)) {
		int sig = f->sig = WTERMSIG(status);
		const char *why;
		f->kind = signal_kind(sig, &why);
		if (crash && (int)crash->signo == sig) {
			/* Its crash handler told us more: si_code, address, stack. */
			const char *desc;
			const char *name = mpg__si_code_name(sig, crash->code, &desc);
			char from[48] = "";
			if (crash->code <= 0 && crash->sender_pid > 0)
				snprintf(from, sizeof from, " by pid %d", crash->sender_pid);
			if (crash->code > 0 && sig != SIGABRT)
				snprintf(msg, msglen, "%s (%s: %s) at address 0x%" PRIx64, strsignal(sig),
					 name, desc, crash->addr);
			else
				snprintf(msg, msglen, "%s (%s: %s%s)", strsignal(sig), name, desc, from);
			f->kind = MPG_ERR_SIGNALED;
			f->has_fault = true;
			f->si_code = crash->code;
			f->addr = crash->addr;
			f->ips = crash_ips;
			f->nips = crash->nips;
			f->first_exact = true;
			return;
		}
		snprintf(msg, msglen, "%s%s%s", strsignal(sig), WCOREDUMP(status) ? " (core dumped)" : "",
			 why);
	} else {
		f->kind = MPG_ERR_KILLED;
		snprintf(msg, msglen, "vanished (wait status %#x)", (unsigned)status);
	}
}

void mpg__raised_failure(const struct mpg__raised *r, char *msg, size_t msglen,
			 uint64_t ips[MPG_MAX_FRAMES], struct mpg__failure *f)
{
	snprintf(msg, msglen, "%.*s", (int)r->msg_len, r->msg);
	mpg__raised_ips(r, ips);
	*f = (struct mpg__failure){.kind = MPG_ERR_RAISED, .code = r->code, .msg = msg,
				   .ips = ips, .nips = r->nips};
}

mpg_error *mpg__failure_error(const struct mpg__failure *f, struct mpg__symcache *cache,
			      const struct mpg__modlist *mods, size_t task, int worker, pid_t pid,
			      unsigned attempts)
{
	mpg_error *err = mpg__error_new(f->kind, task, worker, pid, f->code, f->sig, attempts, f->msg);
	if (err && f->has_fault)
		mpg__error_set_fault(err, f->si_code, f->addr);
	if (err && f->nips)
		err->backtrace = mpg__symbolize(cache, mods, f->ips, f->nips, f->first_exact);
	return err;
}
