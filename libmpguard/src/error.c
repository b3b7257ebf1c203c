/* SPDX-License-Identifier: MIT */
/* Structured task errors: creation, accessors, one-line descriptions. */
#include "pool-int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
	[MPG_ERR_RAISED] = "raised", [MPG_ERR_EXITED] = "exited",
	[MPG_ERR_SIGNALED] = "signaled", [MPG_ERR_KILLED] = "killed",
	[MPG_ERR_TIMEOUT] = "timeout", [MPG_ERR_PROTOCOL] = "protocol",
	[MPG_ERR_CANCELLED] = "cancelled",
};

const char *mpg__signal_name(int sig)
{
	/* sigabbrev_np() is glibc >= 2.32 and async-signal-safe (table lookup). */
	const char *abbrev = sigabbrev_np(sig);
	return abbrev ? abbrev : "?";
}

MPG_EXPORT const char *mpg_error_kind_name(mpg_error_kind kind)
{
	if ((unsigned)kind >= sizeof kind_names / sizeof kind_names[0] || !kind_names[kind])
		return "unknown";
	return kind_names[kind];
}

/* "service indexer (pid 4242) exited with status 3". */
static char *describe_service(const mpg_error *e)
{
	char who[160];
	if (e->pid > 0)
		snprintf(who, sizeof who, "service %.100s (pid %d)", e->service, (int)e->pid);
	else
		snprintf(who, sizeof who, "service %.100s", e->service);
	char *s = NULL;
	int n;
	switch (e->kind) {
	case MPG_ERR_RAISED:
		n = asprintf(&s, "%s raised error %d: %s", who, e->code, e->message);
		break;
	case MPG_ERR_EXITED:
		/* The plain exit says it all; another message (giving up) adds. */
		n = strncmp(e->message, "exited with status", 18) == 0 || !*e->message ?
			    asprintf(&s, "%s exited with status %d", who, e->code) :
			    asprintf(&s, "%s exited with status %d: %s", who, e->code, e->message);
		break;
	case MPG_ERR_SIGNALED:
	case MPG_ERR_KILLED:
		n = asprintf(&s, "%s %s by SIG%s: %s", who,
			     e->kind == MPG_ERR_SIGNALED ? "died" : "killed",
			     mpg__signal_name(e->sig), e->message);
		break;
	default:
		n = asprintf(&s, "%s %s: %s", who, mpg_error_kind_name(e->kind), e->message);
		break;
	}
	return n < 0 ? NULL : s;
}

static char *describe(const mpg_error *e)
{
	char *s = NULL;
	int n;

	if (e->service)
		return describe_service(e);
	char where[192];
	if (e->worker >= 0)
		snprintf(where, sizeof where, "worker %d (pid %d)", e->worker, (int)e->pid);
	else
		snprintf(where, sizeof where, "no worker");
	if (e->host) {
		size_t w = strlen(where);
		snprintf(where + w, sizeof where - w, " of rank %d (host %.64s)", e->rank, e->host);
	}
	switch (e->kind) {
	case MPG_ERR_RAISED:
		n = asprintf(&s, "task %zu raised error %d on %s: %s", e->task, e->code, where,
			     e->message);
		break;
	case MPG_ERR_EXITED:
		n = asprintf(&s, "task %zu: %s exited with status %d", e->task, where, e->code);
		break;
	case MPG_ERR_SIGNALED:
	case MPG_ERR_KILLED:
	case MPG_ERR_TIMEOUT:
		n = asprintf(&s, "task %zu: %s %s by SIG%s: %s", e->task, where,
			     e->kind == MPG_ERR_TIMEOUT ? "timed out, killed" :
			     e->kind == MPG_ERR_SIGNALED ? "died" : "killed",
			     mpg__signal_name(e->sig), e->message);
		break;
	default:
		n = asprintf(&s, "task %zu %s on %s: %s", e->task, mpg_error_kind_name(e->kind),
			     where, e->message);
		break;
	}
	if (n < 0)
		return NULL;
	if (e->attempts > 1) {
		char *t = NULL;
		if (asprintf(&t, "%s (after %u attempts)", s, e->attempts) >= 0) {
			free(s);
			s = t;
		}
	}
	return s;
}

mpg_error *mpg__error_new(mpg_error_kind kind, size_t task, int worker, pid_t pid,
			  int code, int sig, unsigned attempts, const char *message)
{
	mpg_error *e = calloc(1, sizeof *e);
	if (!e)
		return NULL;
	*e = (mpg_error){
		.kind = kind, .task = task, .worker = worker, .pid = pid,
		.code = code, .sig = sig, .attempts = attempts, .rank = -1,
	};
	e->message = strdup(message ? message : "");
	if (!e->message) {
		free(e);
		return NULL;
	}
	e->describe = describe(e);
	if (!e->describe) {
		mpg__error_free(e);
		return NULL;
	}
	return e;
}

void mpg__error_kv(struct mpg__error_kv *k, const mpg_error *e, bool retrying)
{
	snprintf(k->task, sizeof k->task, "%zu", e->task);
	snprintf(k->worker, sizeof k->worker, "%d", e->worker);
	snprintf(k->pid, sizeof k->pid, "%d", (int)e->pid);
	snprintf(k->code, sizeof k->code, "%d", e->code);
	snprintf(k->attempt, sizeof k->attempt, "%u", e->attempts);
	k->n = 0;
	k->kv[k->n++] = (mplog_kv){retrying ? "mpg.retrying" : "mpg.kind",
				   mpg_error_kind_name(e->kind)};
	if (e->service) {
		k->kv[k->n++] = (mplog_kv){"mpg.service", e->service};
	} else {
		k->kv[k->n++] = (mplog_kv){"mpg.task", k->task};
		k->kv[k->n++] = (mplog_kv){"mpg.worker", k->worker};
	}
	k->kv[k->n++] = (mplog_kv){"mpg.pid", k->pid};
	k->kv[k->n++] = (mplog_kv){"mpg.code", k->code};
	if (retrying)
		k->kv[k->n++] = (mplog_kv){"mpg.attempt", k->attempt};
	if (e->sig)
		k->kv[k->n++] = (mplog_kv){"mpg.signal", mpg__signal_name(e->sig)};
	if (e->backtrace && *e->backtrace)
		k->kv[k->n++] = (mplog_kv){"mpg.backtrace", e->backtrace};
}

/* The description again, after a field it shows changed. */
static int redescribe(mpg_error *e)
{
	char *d = describe(e);
	if (!d)
		return -ENOMEM;
	free(e->describe);
	e->describe = d;
	return 0;
}

int mpg__error_set_service(mpg_error *e, const char *name)
{
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	free(e->service);
	e->service = copy;
	return redescribe(e);
}

void mpg__error_set_fault(mpg_error *e, int si_code, uint64_t addr)
{
	e->has_fault = true;
	e->si_code = si_code;
	e->addr = addr;
}

mpg_error *mpg__error_dup(const mpg_error *src)
{
	mpg_error *e = mpg__error_new(src->kind, src->task, src->worker, src->pid, src->code,
				      src->sig, src->attempts, src->message);
	if (e && src->backtrace)
		e->backtrace = strdup(src->backtrace);
	if (e && src->has_fault)
		mpg__error_set_fault(e, src->si_code, src->addr);
	if (e && src->service && mpg__error_set_service(e, src->service) < 0) {
		mpg__error_free(e);
		return NULL;
	}
	if (e && src->host && mpg__error_set_place(e, src->host, src->rank) < 0) {
		mpg__error_free(e);
		return NULL;
	}
	return e;
}

int mpg__error_set_place(mpg_error *e, const char *host, int rank)
{
	char *copy = strdup(host);
	if (!copy)
		return -ENOMEM;
	free(e->host);
	e->host = copy;
	e->rank = rank;
	return redescribe(e);
}

void mpg__error_free(mpg_error *e)
{
	if (!e)
		return;
	free(e->message);
	free(e->backtrace);
	free(e->describe);
	free(e->service);
	free(e->host);
	free(e);
}

MPG_EXPORT mpg_error_kind mpg_error_get_kind(const mpg_error *e) { return e ? e->kind : 0; }
MPG_EXPORT size_t mpg_error_task(const mpg_error *e) { return e ? e->task : 0; }
MPG_EXPORT int mpg_error_worker(const mpg_error *e) { return e ? e->worker : -1; }
MPG_EXPORT pid_t mpg_error_pid(const mpg_error *e) { return e ? e->pid : 0; }
MPG_EXPORT int mpg_error_code(const mpg_error *e) { return e ? e->code : 0; }
MPG_EXPORT int mpg_error_signal(const mpg_error *e) { return e ? e->sig : 0; }
MPG_EXPORT unsigned mpg_error_attempts(const mpg_error *e) { return e ? e->attempts : 0; }
MPG_EXPORT const char *mpg_error_message(const mpg_error *e) { return e ? e->message : NULL; }
MPG_EXPORT const char *mpg_error_backtrace(const mpg_error *e) { return e ? e->backtrace : NULL; }
MPG_EXPORT const char *mpg_error_describe(const mpg_error *e) { return e ? e->describe : NULL; }
MPG_EXPORT const char *mpg_error_service(const mpg_error *e) { return e ? e->service : NULL; }
MPG_EXPORT const char *mpg_error_host(const mpg_error *e) { return e ? e->host : NULL; }
MPG_EXPORT int mpg_error_rank(const mpg_error *e) { return e ? e->rank : -1; }

MPG_EXPORT int mpg_error_fault(const mpg_error *e, int *si_code, uintptr_t *address)
{
	if (!e || !e->has_fault)
		return -ENODATA;
	if (si_code)
		*si_code = e->si_code;
	if (address)
		*address = (uintptr_t)e->addr;
	return 0;
}
