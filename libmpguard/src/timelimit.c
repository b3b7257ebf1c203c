/* SPDX-License-Identifier: MIT */
/* Time limits, watched from the workers' status pages at no cost to the
 * tasks: a task running past its limit gets SIGXCPU (its worker reports
 * where it is stuck), then SIGKILL. The tick also drives progress reports. */
#include "dispatch-int.h"

#include <signal.h>
#include <sys/timerfd.h>
#include <unistd.h>

static unsigned chunk_timeout(const struct worker *w, uint64_t job_id)
{
	for (const struct chunk *c = w->inflight_head; c; c = c->next)
		if (c->job->id == job_id)
			return c->job->cfg.timeout_ms;
	return 0;
}

/* Watch what each worker runs, from its shared status page: a task seen
 * running for longer than its limit is timed out. No cost to the tasks. */
void mpg__on_tick(struct mpg_pool *p)
{
	uint64_t expirations;
	(void)!read(p->timerfd, &expirations, sizeof expirations);
	uint64_t now = mpg__now_ns();
	for (unsigned i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];
		if (w->state != W_READY || !w->ninflight)
			continue;
		if (w->timing_out) {
			if (now >= w->timeout_deadline) {
				w->timeout_killed = true;
				mpg__worker_kill(p, w); /* no report in time */
			}
			continue;
		}
		struct mpg__wstatus *ws = &p->wcfg.status[i];
		if (atomic_load_explicit(&ws->paused, memory_order_relaxed) != WP_NONE ||
		    atomic_load_explicit(&ws->crashing, memory_order_relaxed)) {
			w->watch_since = 0; /* a debugger's or a crash report's time */
			continue;
		}
		uint32_t st = atomic_load_explicit(&ws->state, memory_order_relaxed);
		uint64_t job = atomic_load_explicit(&ws->job, memory_order_relaxed);
		uint64_t index = atomic_load_explicit(&ws->index, memory_order_relaxed);
		uint64_t done = atomic_load_explicit(&ws->tasks_done, memory_order_relaxed);
		if (st != WS_RUNNING || job != w->watch_job || index != w->watch_index ||
		    done != w->watch_done || !w->watch_since) {
			w->watch_job = job;
			w->watch_index = index;
			w->watch_done = done;
			w->watch_since = st == WS_RUNNING ? now : 0;
			continue;
		}
		unsigned limit = chunk_timeout(w, job);
		if (limit && now - w->watch_since >= (uint64_t)limit * 1000000u) {
			w->timing_out = true;
			w->timeout_ms = limit;
			w->timeout_deadline = now + MPG_TIMEOUT_GRACE_NS;
			mpg__worker_signal(p, w, SIGXCPU); /* report where you are */
		}
	}
	mpg__progress_tick(p, now);
}

/* Tick at a tenth of the smallest time limit in use (5 ms to 250 ms). */
void mpg__update_timer(struct mpg_pool *p)
{
	uint64_t min = mpg__minset_min(&p->timeouts);
	uint64_t tick = 0;
	if (min) {
		tick = (uint64_t)min * 100000u; /* a tenth, in ns */
		if (tick < 5000000u)
			tick = 5000000u;
		if (tick > 250000000u)
			tick = 250000000u;
	}
	uint64_t ptick = mpg__progress_tick_ns(p);
	if (ptick && (!tick || ptick < tick))
		tick = ptick;
	if (tick == p->tick_ns)
		return;
	p->tick_ns = tick;
	struct itimerspec its = {
		.it_interval = {(time_t)(tick / 1000000000u), (long)(tick % 1000000000u)},
		.it_value = {(time_t)(tick / 1000000000u), (long)(tick % 1000000000u)},
	};
	(void)timerfd_settime(p->timerfd, 0, &its, NULL);
}
