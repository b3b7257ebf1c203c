/* SPDX-License-Identifier: MIT */
/* The control socket (control.c) serves a pool or a supervisor alike:
 * what it needs of either is a target, which each of them fills in
 * (pool.c, supervisor.c). */
#pragma once

#include "mplog.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct mpg__control;
struct mpg__wstatus;

/* One slot, as `mpattach list` shows it: a pool's worker or a
 * supervisor's service. */
struct mpg__ctl_slot {
	pid_t pid;          /* its process, 0 when it has none now */
	bool grantable;     /* set up and running: may be asked for a ptrace grant */
	const char *state;  /* a static string: "idle", "busy", "paused", ... */
	const char *name;   /* a service's name, or NULL */
	uint64_t uptime_ms;
	unsigned restarts;
	bool has_task;      /* in a task (running, or paused in it): job, task */
	uint64_t job, task;
	bool counts_tasks;  /* a pool's worker: tasks_done */
	uint64_t tasks_done;
};

/* The target as a whole. */
struct mpg__ctl_summary {
	const char *state;  /* a static string: "running", "closed", ... */
	bool counts_tasks;  /* a pool: the tasks of the calls running now */
	uint64_t tasks_done, tasks_total, tasks_failed;
};

struct mpg__ctl_target {
	const char *kind;            /* "pool" or "supervisor", in replies */
	const char *slot_noun;       /* "worker" or "service", in messages */
	pid_t pid;                   /* its registry name: "<pid>.<seq>.sock" */
	unsigned seq;
	unsigned nslots;
	struct mpg__wstatus *status; /* one page per slot, shared with its process */
	unsigned pause;              /* MPG_PAUSE_* in force */
	mplog_aggregator *log;       /* the merged log, or NULL */
	void *obj;
	/* Fill *sum and slots[0 .. nslots) at one moment (under the target's
	 * lock); called on the control thread. */
	void (*snapshot)(void *obj, struct mpg__ctl_summary *sum, struct mpg__ctl_slot *slots);
	/* Send sig to the process of slot, pid as the snapshot gave it.
	 * Returns 0 or a negative errno. */
	int (*signal)(void *obj, unsigned slot, pid_t pid, int sig);
};

/* Register the target and serve it on a thread of its own until
 * mpg__control_stop(). The target's fields are copied; obj, status and
 * log must stay valid until then. Returns 0 or a negative errno (the
 * registry could not be set up, ...). */
int mpg__control_start(const struct mpg__ctl_target *t, struct mpg__control **ret);
/* Stop serving, unregister, free; ctl may be NULL. */
void mpg__control_stop(struct mpg__control *ctl);
/* control-backlog.c: the last records of log as JSON lines, for "log N".
 * new adds its sink (before any reader's); free removes it. seq: the
 * number of records delivered so far, which inside a reader's sink
 * callback is the number of the record at hand. copy appends the last n
 * lines to out and returns the number of the last record it holds. */
struct mpg__backlog;
struct mpk_buf;
int mpg__backlog_new(mplog_aggregator *log, struct mpg__backlog **ret);
void mpg__backlog_free(struct mpg__backlog *b, mplog_aggregator *log);
uint64_t mpg__backlog_seq(struct mpg__backlog *b);
uint64_t mpg__backlog_copy(struct mpg__backlog *b, size_t n, struct mpk_buf *out);

/* Register one? What the program chose (chosen, on), else the environment:
 * MPKIT_CONTROL=0 registers none. */
bool mpg__control_wanted(bool chosen, bool on);
/* The next registry number of this process, shared by its pools and
 * supervisors. */
unsigned mpg__control_seq(void);
