/* SPDX-License-Identifier: MIT */
/* Progress of the calls: counts kept by the dispatcher as tasks end (one
 * increment per task, nothing else on the hot path), reports taken on the
 * dispatcher's timer at most once per interval and once at the end, handed
 * to the progress callback and drawn as a bar on stderr — through the
 * pool's aggregator when it has one, so log records go above the bar. */
#include "pool-int.h"
#include "text-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define RED "\033[31m"
#define RESET "\033[0m"
#define ERASE "\r\033[K"

static enum bar_out bar_out(mpg_progress_bar mode)
{
	if (mode == MPG_PROGRESS_BAR_OFF)
		return BAR_NONE;
	if (isatty(STDERR_FILENO))
		return mpk_term_smart() ? BAR_TTY : BAR_PLAIN; /* dumb: no erasing */
	return mode == MPG_PROGRESS_BAR_AUTO ? BAR_PLAIN : BAR_NONE;
}

static void tracker_init(struct mpg__progress *pr, const struct job *job, uint64_t now)
{
	*pr = (struct mpg__progress){
		.fn = job->cfg.progress_fn,
		.userdata = job->cfg.progress_userdata,
		.interval_ns = (uint64_t)job->cfg.progress_ms * 1000000u,
		.bar = bar_out(job->cfg.bar),
		.kind = job->kind,
		.on = true,
		.start_ns = now,
		.rate_ns = now,
		.rate = -1,
	};
	pr->next_cb = now + pr->interval_ns;
	pr->next_bar = now + (pr->bar == BAR_PLAIN ? MPG_PROGRESS_PLAIN_NS : pr->interval_ns);
}

void mpg__progress_start(struct mpg_pool *p, struct job *job)
{
	if (!job->cfg.progress_fn && bar_out(job->cfg.bar) == BAR_NONE &&
	    !(job->kind == JOB_SUBMIT && p->subprog.on))
		return;
	uint64_t now = mpg__now_ns();
	if (job->kind != JOB_SUBMIT) {
		tracker_init(&job->prog, job, now);
		job->prog.total = job->n;
		job->pr = &job->prog;
		return;
	}
	/* A submit opens a batch, or joins the open one (whose settings stay). */
	if (!p->subprog.on)
		tracker_init(&p->subprog, job, now);
	p->subprog.total++;
	job->pr = &p->subprog;
}

void mpg__progress_cancelled(struct job *job, size_t n)
{
	if (!job->pr || !n)
		return;
	job->pr->done += n;
	job->pr->failed += n;
	job->pr->kinds[MPG_ERR_CANCELLED] += n;
}

static void snapshot(const struct mpg__progress *pr, uint64_t now, bool final, mpg_progress *s)
{
	*s = (mpg_progress){
		.size = sizeof *s,
		.total = pr->total,
		.done = pr->done,
		.failed = pr->failed,
		.retried = pr->retried,
		.elapsed_ns = now - pr->start_ns,
		.final = final,
	};
	memcpy(s->failed_by_kind, pr->kinds, sizeof s->failed_by_kind);
	if (final)
		s->rate = s->elapsed_ns ? (double)pr->done * 1e9 / (double)s->elapsed_ns : 0;
	else
		s->rate = pr->rate > 0 ? pr->rate : 0;
	s->eta_s = final ? 0 : s->rate > 0 ? (double)(pr->total - pr->done) / s->rate : -1;
}

/* Queue a report of pr for delivery, held by job. */
static bool queue_note(struct mpg_pool *p, struct job *job, struct mpg__progress *pr,
		       uint64_t now, bool final, bool cb, bool bar)
{
	struct mpg__progress_note *n = malloc(sizeof *n);
	if (!n)
		return false;
	*n = (struct mpg__progress_note){.fn = cb ? pr->fn : NULL, .userdata = pr->userdata,
					 .bar = bar ? pr->bar : BAR_NONE, .kind = pr->kind,
					 .key = pr};
	snapshot(pr, now, final, &n->snap);
	if (mpg__add_delivery(p, &(struct delivery){.job = job, .note = n}) < 0) {
		free(n);
		return false;
	}
	return true;
}

/* Next point of pr's grid after now: reports come at most once an interval. */
static uint64_t next_slot(const struct mpg__progress *pr, uint64_t now, uint64_t every)
{
	return pr->start_ns + ((now - pr->start_ns) / every + 1) * every;
}

static void tick_one(struct mpg_pool *p, struct job *job, struct mpg__progress *pr, uint64_t now)
{
	uint64_t dt = now - pr->rate_ns;
	if (dt >= 20000000u) { /* rate: exponentially smoothed, ~0.5 s memory */
		double inst = (double)(pr->done - pr->rate_done) * 1e9 / (double)dt;
		double alpha = (double)dt / ((double)dt + 5e8);
		pr->rate = pr->rate < 0 ? inst : (1 - alpha) * pr->rate + alpha * inst;
		pr->rate_ns = now;
		pr->rate_done = pr->done;
	}
	bool cb = pr->fn && now >= pr->next_cb;
	bool bar = pr->bar != BAR_NONE && now >= pr->next_bar;
	if (!cb && !bar)
		return;
	if (cb)
		pr->next_cb = next_slot(pr, now, pr->interval_ns);
	if (bar)
		pr->next_bar = next_slot(pr, now, pr->bar == BAR_PLAIN ? MPG_PROGRESS_PLAIN_NS
							       : pr->interval_ns);
	(void)queue_note(p, job, pr, now, false, cb, bar);
}

void mpg__progress_tick(struct mpg_pool *p, uint64_t now)
{
	struct job *sub = NULL;
	for (struct job *job = p->jobs_head; job; job = job->next) {
		if (job->pr == &job->prog && job->prog.on && !job->cancelled && job->remaining)
			tick_one(p, job, &job->prog, now);
		else if (!sub && job->pr == &p->subprog && job->remaining && !job->cancelled)
			sub = job; /* a running task of the batch holds its reports */
	}
	if (sub && p->subprog.on)
		tick_one(p, sub, &p->subprog, now);
}

uint64_t mpg__progress_tick_ns(const struct mpg_pool *p)
{
	uint64_t t = p->subprog.on ? p->subprog.interval_ns : 0;
	uint64_t calls = mpg__minset_min(&p->progress_ns);
	return calls && (!t || calls < t) ? calls : t;
}

bool mpg__progress_final(struct mpg_pool *p, struct job *job)
{
	struct mpg__progress *pr = job->pr;
	if (!pr->on || pr->done < pr->total)
		return false; /* a submit batch with tasks still to end */
	pr->on = false; /* a submit after this opens a new batch */
	return queue_note(p, job, pr, mpg__now_ns(), true, pr->fn != NULL, pr->bar != BAR_NONE);
}

void mpg__pool_progress(struct mpg_pool *p, uint64_t *done, uint64_t *total)
{
	uint64_t d = 0, t = 0;
	pthread_mutex_lock(&p->lock);
	for (const struct job *job = p->jobs_head; job; job = job->next) {
		t += job->n;
		d += job->n - job->remaining;
	}
	/* and the calls handed in that the dispatcher has not taken yet */
	pthread_mutex_lock(&p->incoming_lock);
	for (const struct job *job = p->incoming_head; job; job = job->next)
		t += job->n;
	pthread_mutex_unlock(&p->incoming_lock);
	pthread_mutex_unlock(&p->lock);
	if (done)
		*done = d;
	if (total)
		*total = t;
}

/* ---- drawing ------------------------------------------------------------ */

/* A compact count: 999, 12.3k, 4.56M. */
static void fmt_count(char *b, size_t n, double v)
{
	if (v < 1e4)
		snprintf(b, n, "%.0f", v);
	else if (v < 1e6)
		snprintf(b, n, "%.1fk", v / 1e3);
	else if (v < 1e9)
		snprintf(b, n, "%.2fM", v / 1e6);
	else
		snprintf(b, n, "%.2fG", v / 1e9);
}

static void fmt_duration(char *b, size_t n, double s)
{
	if (s < 0 || s > 1e8) {
		snprintf(b, n, "?");
		return;
	}
	unsigned long t = (unsigned long)(s + 0.5);
	if (t >= 3600)
		snprintf(b, n, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(b, n, "%lu:%02lu", t / 60, t % 60);
}

static const char *call_name(enum job_kind k)
{
	switch (k) {
	case JOB_MAP: return "map";
	case JOB_ARRAY: return "map_array";
	case JOB_IMAP: return "imap";
	case JOB_SUBMIT: return "submit";
	}
	return "call";
}

static unsigned term_width(void)
{
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

/* One bar line fitted to width columns (ASCII but for colour codes):
 *   map  45% [=========>          ] 450000/1000000  123.4k/s  ETA 0:05  3 failed */
static void bar_line(char *out, size_t cap, const struct mpg__progress_note *n, unsigned width,
		     bool color)
{
	const mpg_progress *s = &n->snap;
	double frac = s->total ? (double)s->done / (double)s->total : 0;
	char rate[16], eta[24], fail[48] = "";
	fmt_count(rate, sizeof rate, s->rate);
	fmt_duration(eta, sizeof eta, s->eta_s);
	if (s->failed)
		snprintf(fail, sizeof fail, "  %s%zu failed%s", color ? RED : "", s->failed,
			 color ? RESET : "");
	char tail[160];
	int tl = snprintf(tail, sizeof tail, " %zu/%zu  %s/s  ETA %s", s->done, s->total, rate, eta);
	int head = snprintf(NULL, 0, "%s %3d%% ", call_name(n->kind), (int)(frac * 100));
	int fail_cols = s->failed ? snprintf(NULL, 0, "  %zu failed", s->failed) : 0;
	/* The bar takes what is left, up to 40 columns; none under 10. */
	int room = (int)width - 1 - head - tl - fail_cols - 2;
	int bw = room > 40 ? 40 : room;
	char bar[48] = "";
	if (bw >= 10) {
		int full = (int)(frac * bw);
		bar[0] = '[';
		for (int i = 0; i < bw; i++)
			bar[1 + i] = i < full ? '=' : i == full ? '>' : ' ';
		bar[1 + bw] = ']';
		bar[2 + bw] = 0;
	}
	if (head + tl + fail_cols >= (int)width) /* too narrow: counts only */
		snprintf(out, cap, "%s %3d%% %zu/%zu", call_name(n->kind), (int)(frac * 100), s->done,
			 s->total);
	else
		snprintf(out, cap, "%s %3d%% %s%s%s", call_name(n->kind), (int)(frac * 100), bar, tail,
			 fail);
}

/* The summary that replaces the bar:
 *   mpkit map: 1000000 tasks in 2.31 s, 432.9k tasks/s; 3 failed (2 raised, 1 signaled), 5 retried */
static void summary_line(char *out, size_t cap, const struct mpg__progress_note *n, bool color)
{
	const mpg_progress *s = &n->snap;
	char rate[16];
	fmt_count(rate, sizeof rate, s->rate);
	int k = snprintf(out, cap, "mpkit %s: %zu tasks in %.2f s, %s tasks/s; ", call_name(n->kind),
			 s->done, (double)s->elapsed_ns / 1e9, rate);
	if (k < 0 || (size_t)k >= cap)
		return;
	size_t len = (size_t)k;
	if (!s->failed) {
		snprintf(out + len, cap - len, "none failed");
	} else {
		len += (size_t)snprintf(out + len, cap - len, "%s%zu failed (", color ? RED : "",
					s->failed);
		const char *sep = "";
		for (int kind = MPG_ERR_RAISED; kind <= MPG_ERR_CANCELLED && len < cap; kind++) {
			if (!s->failed_by_kind[kind])
				continue;
			len += (size_t)snprintf(out + len, cap - len, "%s%zu %s", sep,
						s->failed_by_kind[kind],
						mpg_error_kind_name((mpg_error_kind)kind));
			sep = ", ";
		}
		if (len < cap)
			snprintf(out + len, cap - len, ")%s", color ? RESET : "");
	}
	len = strlen(out);
	if (s->retried && len < cap)
		snprintf(out + len, cap - len, ", %zu retried", s->retried);
}

static void plain_line(char *out, size_t cap, const struct mpg__progress_note *n)
{
	const mpg_progress *s = &n->snap;
	char rate[16], eta[24];
	fmt_count(rate, sizeof rate, s->rate);
	fmt_duration(eta, sizeof eta, s->eta_s);
	snprintf(out, cap, "mpkit %s: %zu/%zu tasks (%d%%), %s tasks/s, ETA %s, %zu failed",
		 call_name(n->kind), s->done, s->total,
		 s->total ? (int)((double)s->done * 100 / (double)s->total) : 0, rate, eta, s->failed);
}

/* Write a status line to stderr: through the aggregator (which keeps log
 * records above it) when the pool logs, else straight. keep: a line that
 * stays (summary, plain line); else the bar, redrawn in place. */
static void status_write(struct mpg_pool *p, const char *line, bool keep, bool tty)
{
	if (p->log && mplog_aggregator_set_status(p->log, STDERR_FILENO, line,
						  keep ? MPLOG_STATUS_KEEP : 0) != -ENOTTY)
		return;
	char buf[MPLOG_STATUS_MAX + 8];
	int k = snprintf(buf, sizeof buf, "%s%s%s", tty ? ERASE : "", line ? line : "",
			 keep ? "\n" : "");
	if (k <= 0)
		return;
	size_t len = (size_t)k < sizeof buf ? (size_t)k : sizeof buf - 1, off = 0;
	while (off < len) {
		ssize_t w = write(STDERR_FILENO, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

void mpg__progress_deliver(struct mpg_pool *p, const struct mpg__progress_note *n)
{
	if (n->fn)
		n->fn(&n->snap, n->userdata);
	if (n->bar == BAR_NONE)
		return;
	char line[1024];
	bool tty = n->bar == BAR_TTY;
	if (n->snap.final) {
		/* Every record of the call's tasks goes above the summary. */
		if (p->log)
			(void)mplog_aggregator_flush(p->log);
		summary_line(line, sizeof line, n, tty && mpk_term_color_ok());
		status_write(p, line, true, tty);
		if (p->bar_owner == n->key)
			p->bar_owner = NULL;
		return;
	}
	if (!tty) {
		plain_line(line, sizeof line, n);
		status_write(p, line, true, false);
		return;
	}
	if (p->bar_owner && p->bar_owner != n->key)
		return; /* another call's bar is up: one at a time */
	p->bar_owner = n->key;
	bar_line(line, sizeof line, n, term_width(), mpk_term_color_ok());
	status_write(p, line, false, true);
}

void mpg__progress_bar_clear(struct mpg_pool *p)
{
	if (p->bar_owner)
		status_write(p, NULL, false, true);
	p->bar_owner = NULL;
}
