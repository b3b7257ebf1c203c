/* SPDX-License-Identifier: MIT */
/* Progress: callback counts add up (failures and retries included), reports
 * are rate-limited, the bar on a pseudo-terminal never breaks a log line
 * and ends with the summary, nothing is printed on a non-tty unless asked;
 * libmplog's status line is redrawn around records. */
#include "mpk-test.h"
#include <mpguard.h>
#include <mplog.h>

#include <fcntl.h>
#include <pthread.h>
#include <pty.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <termios.h>
#include <unistd.h>

/* Internal (pool-int.h), for mpattach: linked from the static library. */
void mpg__pool_progress(struct mpg_pool *p, uint64_t *done, uint64_t *total);

/* ---- recording reports ---------------------------------------------------- */

#define MAX_REPORTS 20000

struct reports {
	size_t n, finals;
	mpg_progress r[MAX_REPORTS];
	bool bad_size;
};

static void record(const mpg_progress *pr, void *ud)
{
	struct reports *rs = ud;
	if (pr->size != sizeof *pr)
		rs->bad_size = true;
	if (pr->final)
		rs->finals++;
	if (rs->n < MAX_REPORTS)
		rs->r[rs->n] = *pr;
	rs->n++;
}

/* Reports never go back, never exceed the total; the last is the only final. */
static void assert_consistent(const struct reports *rs, size_t finals)
{
	ck_assert(!rs->bad_size);
	ck_assert_uint_le(rs->n, MAX_REPORTS);
	ck_assert_uint_eq(rs->finals, finals);
	for (size_t i = 0; i < rs->n; i++) {
		const mpg_progress *p = &rs->r[i];
		ck_assert_uint_le(p->done, p->total);
		ck_assert_uint_le(p->failed, p->done);
		size_t sum = 0;
		for (int k = 0; k < 8; k++)
			sum += p->failed_by_kind[k];
		ck_assert_uint_eq(sum, p->failed);
		if (i > 0 && !rs->r[i - 1].final) {
			ck_assert_uint_ge(p->done, rs->r[i - 1].done);
			ck_assert_uint_ge(p->retried, rs->r[i - 1].retried);
			ck_assert_uint_ge(p->elapsed_ns, rs->r[i - 1].elapsed_ns);
		}
	}
	if (finals == 1)
		ck_assert(rs->r[rs->n - 1].final);
}

/* ---- tasks -------------------------------------------------------------- */

/* Attempts per input, shared with the workers (mapped before the pool). */
static _Atomic unsigned *attempts;
static int *volatile nowhere;

static void map_attempts(size_t n)
{
	void *m = mmap(NULL, n * sizeof *attempts, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);
	attempts = m;
}

/* 7 mod 40: raises once, then succeeds; 13 mod 100: always raises;
 * 150: SIGSEGV once; 250: SIGSEGV always. */
__attribute__((no_sanitize_undefined))
static int flaky(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	size_t i = mpg_task_index(t);
	unsigned a = atomic_fetch_add(&attempts[i], 1);
	if ((i % 40 == 7 && a == 0) || i % 100 == 13)
		return mpg_raise(5, "task %zu refuses (attempt %u)", i, a + 1);
	if ((i == 150 && a == 0) || i == 250)
		*nowhere = 1; /* a real SIGSEGV */
	uint64_t y = i * 2;
	return mpg_task_set_result(t, &y, sizeof y);
}

static int add1(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)ud;
	int64_t x;
	if (len != sizeof x)
		return 1;
	memcpy(&x, in, sizeof x);
	x++;
	return mpg_task_set_result(t, &x, sizeof x);
}

static mpg_pool *new_pool(unsigned workers, bool log)
{
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, workers), 0);
	if (!log)
		ck_assert_int_eq(mpg_options_set_log(o, NULL), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	return p;
}

/* ---- counts --------------------------------------------------------------- */

#define NFLAKY 400
/* 10 tasks raise once, 4 always (2 retries each), 150 and 250 crash. */
#define FLAKY_FAILED 5u
#define FLAKY_RETRIED (10u + 1u + 2u * (4u + 1u))

START_TEST(callback_counts_add_up_with_failures_and_retries)
{
	map_attempts(NFLAKY);
	mpg_pool *p = new_pool(2, false);
	static struct reports rs;
	memset(&rs, 0, sizeof rs);
	mpg_options *o;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_policy(o, MPG_RETRY, 2), 0);
	ck_assert_int_eq(mpg_options_set_progress(o, record, &rs, 1), 0);
	static uint64_t in[NFLAKY];
	static mpg_buf bufs[NFLAKY];
	for (size_t i = 0; i < NFLAKY; i++)
		bufs[i] = (mpg_buf){&in[i], sizeof in[i]};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, flaky, bufs, NFLAKY, o, &res), 0);
	/* The final report came before mpg_map() returned. */
	assert_consistent(&rs, 1);
	const mpg_progress *f = &rs.r[rs.n - 1];
	ck_assert_uint_eq(f->total, NFLAKY);
	ck_assert_uint_eq(f->done, NFLAKY);
	ck_assert_uint_eq(f->failed, FLAKY_FAILED);
	ck_assert_uint_eq(f->failed, mpg_results_failed(res));
	ck_assert_uint_eq(f->failed_by_kind[MPG_ERR_RAISED], 4);
	ck_assert_uint_eq(f->failed_by_kind[MPG_ERR_SIGNALED], 1);
	ck_assert_uint_eq(f->retried, FLAKY_RETRIED);
	mpg_stats st = {.size = sizeof st};
	ck_assert_int_eq(mpg_pool_stats(p, &st), 0);
	ck_assert_uint_eq(st.tasks_retried, FLAKY_RETRIED);
	ck_assert_uint_eq(st.tasks_failed, FLAKY_FAILED);
	ck_assert_uint_eq(st.tasks_ok + st.tasks_failed, NFLAKY);
	ck_assert_double_gt(f->rate, 0);
	mpg_results_free(res);

	/* The same through imap_unordered: the final report before the end. */
	memset(&rs, 0, sizeof rs);
	memset(attempts, 0, NFLAKY * sizeof *attempts);
	mpg_iter *it;
	ck_assert_int_eq(mpg_imap_unordered(p, flaky, bufs, NFLAKY, o, &it), 0);
	size_t idx, got = 0, failed = 0;
	const mpg_error *err;
	int r;
	while ((r = mpg_iter_next(it, &idx, NULL, NULL, &err)) == 1) {
		got++;
		failed += err != NULL;
	}
	ck_assert_int_eq(r, 0);
	ck_assert_uint_eq(got, NFLAKY);
	assert_consistent(&rs, 1);
	f = &rs.r[rs.n - 1];
	ck_assert_uint_eq(f->done, NFLAKY);
	ck_assert_uint_eq(f->failed, failed);
	ck_assert_uint_eq(f->failed, FLAKY_FAILED);
	ck_assert_uint_eq(f->retried, FLAKY_RETRIED);
	mpg_iter_free(it);
	mpg_options_free(o);
	mpg_pool_free(p);
	munmap(attempts, NFLAKY * sizeof *attempts);
}
END_TEST

/* Submit batches: every final report of a batch has done == total, and the
 * batches' totals add up to the tasks submitted. */
#define NSUB 60
START_TEST(submit_batches_add_up)
{
	map_attempts(NSUB);
	static struct reports rs;
	memset(&rs, 0, sizeof rs);
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 2), 0);
	ck_assert_int_eq(mpg_options_set_log(o, NULL), 0);
	ck_assert_int_eq(mpg_options_set_progress(o, record, &rs, 1), 0); /* pool default */
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	mpg_future *fut[NSUB];
	uint64_t x = 0;
	size_t failed = 0;
	for (size_t i = 0; i < NSUB; i++)
		ck_assert_int_eq(mpg_submit(p, flaky, &x, sizeof x, NULL, NULL, NULL, NULL, &fut[i]), 0);
	for (size_t i = 0; i < NSUB; i++) {
		ck_assert_int_eq(mpg_future_wait(fut[i], -1), 0);
		failed += mpg_future_error(fut[i]) != NULL;
		mpg_future_free(fut[i]);
	}
	/* Submitted tasks are numbered 0..NSUB-1: without retries 7, 13 and 47
	 * fail (see flaky()). */
	ck_assert_uint_eq(failed, 3);
	ck_assert_uint_ge(rs.finals, 1);
	size_t total = 0;
	for (size_t i = 0; i < rs.n; i++) {
		ck_assert_uint_le(rs.r[i].done, rs.r[i].total);
		if (rs.r[i].final) {
			ck_assert_uint_eq(rs.r[i].done, rs.r[i].total);
			total += rs.r[i].total;
		}
	}
	ck_assert_uint_eq(total, NSUB);
	ck_assert(rs.r[rs.n - 1].final);
	mpg_pool_free(p);
	munmap(attempts, NSUB * sizeof *attempts);
}
END_TEST

/* ---- rate limit ------------------------------------------------------------ */

#define NMILLION 1000000
/* A map of a million tiny tasks with reports every interval_ms: at most one
 * report per interval slot of the call (their elapsed times fall in
 * distinct slots), plus the final one. */
static void million(mpg_pool *p, const int64_t *in, int64_t *out, unsigned interval_ms,
		    struct reports *rs)
{
	memset(rs, 0, sizeof *rs);
	mpg_options *o;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_progress(o, record, rs, interval_ms), 0);
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, add1, in, sizeof *in, NMILLION, out, sizeof *out, o, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	ck_assert_int_eq(out[NMILLION - 1], NMILLION);
	mpg_results_free(res);
	mpg_options_free(o);
	assert_consistent(rs, 1);
	const mpg_progress *f = &rs->r[rs->n - 1];
	ck_assert_uint_eq(f->done, NMILLION);
	ck_assert_uint_eq(f->total, NMILLION);
	uint64_t slot = (interval_ms ? interval_ms : 100) * 1000000ull;
	ck_assert_uint_le(rs->n, f->elapsed_ns / slot + 2);
	for (size_t i = 1; i + 1 < rs->n; i++)
		ck_assert_uint_gt(rs->r[i].elapsed_ns / slot, rs->r[i - 1].elapsed_ns / slot);
	fprintf(stderr, "a_million_tasks, every %u ms: %zu reports in %.3f s\n", interval_ms,
		rs->n, (double)f->elapsed_ns / 1e9);
}

START_TEST(a_million_tasks_make_few_reports)
{
	mpg_pool *p = new_pool(2, false);
	static struct reports rs;
	int64_t *in = malloc(NMILLION * sizeof *in), *out = malloc(NMILLION * sizeof *out);
	ck_assert(in && out);
	for (size_t i = 0; i < NMILLION; i++)
		in[i] = (int64_t)i;
	million(p, in, out, 0, &rs); /* the default, 100 ms */
	ck_assert_uint_le(rs.n, 300);
	million(p, in, out, 1, &rs);
	free(in);
	free(out);
	mpg_pool_free(p);
}
END_TEST

/* ---- mpattach's view ---------------------------------------------------------- */

/* Tasks that wait for a byte on the gate: the call is surely running
 * while the test looks at it (a call of 500 tiny tasks could end before). */
static int gate[2] = {-1, -1};

static int add1_gated(mpg_task *t, const void *in, size_t len, void *ud)
{
	char c;
	if (read(gate[0], &c, 1) != 1)
		return mpg_raise(EIO, "the gate closed");
	return add1(t, in, len, ud);
}

START_TEST(pool_progress_sums_the_running_calls)
{
	ck_assert_int_eq(pipe2(gate, O_CLOEXEC), 0); /* before the pool: its workers have it */
	mpg_pool *p = new_pool(2, false);
	uint64_t done = 1, total = 1;
	mpg__pool_progress(p, &done, &total);
	ck_assert_uint_eq(done, 0);
	ck_assert_uint_eq(total, 0);
	static int64_t in[500];
	static mpg_buf bufs[500];
	for (size_t i = 0; i < 500; i++)
		bufs[i] = (mpg_buf){&in[i], sizeof in[i]};
	mpg_iter *it;
	ck_assert_int_eq(mpg_imap_unordered(p, add1_gated, bufs, 500, NULL, &it), 0);
	mpg__pool_progress(p, &done, &total);
	ck_assert_uint_eq(total, 500);
	ck_assert_uint_eq(done, 0);
	static char opens[500];
	ck_assert_int_eq(write(gate[1], opens, sizeof opens), (ssize_t)sizeof opens);
	size_t idx, n = 0;
	while (mpg_iter_next(it, &idx, NULL, NULL, NULL) == 1)
		n++;
	ck_assert_uint_eq(n, 500);
	mpg__pool_progress(p, &done, &total); /* the call ended */
	ck_assert_uint_eq(done, 0);
	ck_assert_uint_eq(total, 0);
	mpg_iter_free(it);
	mpg_pool_free(p);
	close(gate[0]);
	close(gate[1]);
}
END_TEST

/* ---- the bar on a pseudo-terminal ----------------------------------------------- */

struct drain {
	int fd;
	char *buf;
	size_t len, cap;
};

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	for (;;) {
		if (d->cap - d->len < 65536) {
			d->cap = d->cap ? 2 * d->cap : 1 << 20;
			d->buf = realloc(d->buf, d->cap);
			if (!d->buf)
				abort();
		}
		ssize_t k = read(d->fd, d->buf + d->len, d->cap - d->len - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break; /* EIO: every slave fd is closed */
		d->len += (size_t)k;
	}
	d->buf[d->len] = 0;
	return NULL;
}

/* What a terminal shows: lines ended by '\n', after '\r' (column 0), "ESC[K"
 * (erase to the end of the line) and colours were applied. A log line that
 * a bar redraw cut in two cannot come out whole. */
static char **screen_lines(const char *s, size_t n, size_t *nlines, char *last, size_t lastcap)
{
	char **lines = NULL;
	size_t cap = 0;
	*nlines = 0;
	char cur[8192];
	size_t len = 0, pos = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\033' && i + 1 < n && s[i + 1] == '[') {
			size_t j = i + 2;
			while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == ';'))
				j++;
			if (j < n && s[j] == 'K')
				len = pos;
			i = j;
		} else if (c == '\r') {
			pos = 0;
		} else if (c == '\n') {
			if (*nlines == cap) {
				cap = cap ? 2 * cap : 1024;
				lines = realloc(lines, cap * sizeof *lines);
				ck_assert_ptr_nonnull(lines);
			}
			lines[(*nlines)++] = strndup(cur, len);
			len = pos = 0;
		} else if (pos < sizeof cur) {
			cur[pos++] = c;
			if (pos > len)
				len = pos;
		}
	}
	snprintf(last, lastcap, "%.*s", (int)len, cur);
	return lines;
}

#define NPTY 3000
static int chatty(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	size_t i = mpg_task_index(t);
	for (int k = 0; k < 2; k++)
		if (mplog_info("task %zu says line %d of two", i, k) != 0)
			return 1;
	if (i % 500 == 99)
		return 3; /* a failure: red in the bar, an ERROR record above it */
	int64_t y = (int64_t)i;
	return mpg_task_set_result(t, &y, sizeof y);
}

START_TEST(bar_on_a_pty_keeps_log_lines_whole_and_ends_with_the_summary)
{
	int master, slave;
	struct winsize ws = {.ws_row = 30, .ws_col = 100};
	ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, &ws), 0);
	struct termios tio;
	ck_assert_int_eq(tcgetattr(slave, &tio), 0);
	cfmakeraw(&tio);
	ck_assert_int_eq(tcsetattr(slave, TCSANOW, &tio), 0);
	fcntl(master, F_SETFD, FD_CLOEXEC);
	fcntl(slave, F_SETFD, FD_CLOEXEC);
	struct drain d = {.fd = master};
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, drain_main, &d), 0);
	int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(slave, STDERR_FILENO), STDERR_FILENO);

	/* The pool's own aggregator: text to stderr, coloured on this tty. */
	mpg_pool *p = new_pool(2, true);
	mpg_options *o;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_progress_bar(o, MPG_PROGRESS_BAR_TTY), 0);
	ck_assert_int_eq(mpg_options_set_progress(o, NULL, NULL, 1), 0); /* redraw often */
	static int64_t in[NPTY];
	static mpg_buf bufs[NPTY];
	for (size_t i = 0; i < NPTY; i++)
		bufs[i] = (mpg_buf){&in[i], sizeof in[i]};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, chatty, bufs, NPTY, o, &res), 0);
	size_t failed = mpg_results_failed(res);
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);

	ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(slave);
	pthread_join(th, NULL);
	close(master);
	ck_assert_uint_eq(failed, NPTY / 500);

	size_t nl;
	char last[8192];
	char **lines = screen_lines(d.buf, d.len, &nl, last, sizeof last);
	static unsigned char seen[NPTY][2];
	memset(seen, 0, sizeof seen);
	size_t redraws = 0;
	for (const char *q = d.buf; (q = strstr(q, "ETA")); q++)
		redraws++;
	size_t summary_at = SIZE_MAX;
	for (size_t i = 0; i < nl; i++) {
		const char *l = lines[i];
		/* No bar is left on the screen: each was erased or replaced. */
		ck_assert_msg(!strstr(l, "ETA"), "a bar left on screen: \"%s\"", l);
		if (strncmp(l, "mpkit map: ", 11) == 0)
			summary_at = i;
		const char *m = strstr(l, "] task ");
		size_t t;
		int k;
		if (!m || !strstr(l, " says line ") ||
		    sscanf(m, "] task %zu says line %d of two", &t, &k) != 2)
			continue;
		/* A whole record: timestamp, level, stamp, message, source. */
		ck_assert_msg(l[0] == '2' && l[4] == '-' && strstr(l, " INFO ") && strstr(l, "[w") &&
			      strstr(l, " of two (") && l[strlen(l) - 1] == ')' &&
			      strstr(l, "chatty)"), "broken log line: \"%s\"", l);
		ck_assert(t < NPTY && k >= 0 && k < 2);
		seen[t][k]++;
	}
	for (size_t t = 0; t < NPTY; t++)
		for (int k = 0; k < 2; k++)
			ck_assert_msg(seen[t][k] == 1, "task %zu line %d seen %u times", t, k, seen[t][k]);
	ck_assert_msg(summary_at != SIZE_MAX, "no summary line");
	char want[128];
	snprintf(want, sizeof want, "mpkit map: %d tasks in ", NPTY);
	ck_assert_msg(strncmp(lines[summary_at], want, strlen(want)) == 0, "summary: %s",
		      lines[summary_at]);
	snprintf(want, sizeof want, "%zu failed (%zu raised)", failed, failed);
	ck_assert_msg(strstr(lines[summary_at], want), "summary: %s", lines[summary_at]);
	ck_assert_str_eq(last, ""); /* nothing left half-drawn */
	fprintf(stderr, "bar_on_a_pty: %zu bytes, %zu lines, %zu bar redraws\n", d.len, nl, redraws);
	for (size_t i = 0; i < nl; i++)
		free(lines[i]);
	free(lines);
	free(d.buf);
}
END_TEST

/* A map of 500 chatty tasks (one fails) with the bar, on a pty, under the
 * environment variable name=value; what the terminal got. */
static char *map_on_a_pty_with(const char *name, const char *value, size_t *len)
{
	int master, slave;
	struct winsize ws = {.ws_row = 30, .ws_col = 100};
	ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, &ws), 0);
	struct termios tio;
	ck_assert_int_eq(tcgetattr(slave, &tio), 0);
	cfmakeraw(&tio);
	ck_assert_int_eq(tcsetattr(slave, TCSANOW, &tio), 0);
	fcntl(master, F_SETFD, FD_CLOEXEC);
	fcntl(slave, F_SETFD, FD_CLOEXEC);
	struct drain d = {.fd = master};
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, drain_main, &d), 0);
	int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(slave, STDERR_FILENO), STDERR_FILENO);
	setenv(name, value, 1);
	mpg_pool *p = new_pool(2, true); /* its default sink: text to this tty */
	mpg_options *o;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_progress_bar(o, MPG_PROGRESS_BAR_AUTO), 0);
	ck_assert_int_eq(mpg_options_set_progress(o, NULL, NULL, 1), 0);
	static int64_t in[500];
	static mpg_buf bufs[500];
	for (size_t i = 0; i < 500; i++)
		bufs[i] = (mpg_buf){&in[i], sizeof in[i]};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, chatty, bufs, 500, o, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);
	unsetenv(name);
	ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(slave);
	pthread_join(th, NULL);
	close(master);
	*len = d.len;
	return d.buf;
}

/* The tools' rule, in the library too: NO_COLOR takes the colours off the
 * log and the bar (which still redraws in place); TERM=dumb takes every
 * escape sequence off, and the bar becomes plain lines. */
START_TEST(no_color_and_dumb_terminals_get_no_colour)
{
	size_t n;
	setenv("TERM", "xterm", 1); /* whatever the test's environment says */
	unsetenv("NO_COLOR");
	char *t = map_on_a_pty_with("NO_COLOR", "1", &n);
	ck_assert_msg(strstr(t, "1 failed (1 raised)") && strstr(t, " ERROR "), "no summary");
	ck_assert_msg(strstr(t, "\r\033[K"), "the bar was not drawn in place");
	for (const char *q = t; (q = strchr(q, '\033')); q++)
		ck_assert_msg(strncmp(q, "\033[K", 3) == 0, "a colour under NO_COLOR at byte %td",
			      q - t);
	free(t);

	t = map_on_a_pty_with("TERM", "dumb", &n);
	ck_assert_msg(strstr(t, " ERROR ") && strstr(t, "1 failed (1 raised)\n"), "no summary");
	ck_assert_msg(!memchr(t, '\033', n), "an escape sequence on a dumb terminal");
	ck_assert_msg(!memchr(t, '\r', n), "a carriage return on a dumb terminal");
	free(t);

	/* And the rule's other side: a coloured log and bar otherwise. */
	t = map_on_a_pty_with("TERM", "xterm", &n);
	ck_assert_msg(strstr(t, "\033[31m"), "no colour on a terminal");
	free(t);
}
END_TEST

/* ---- non-tty ----------------------------------------------------------------- */

/* Run a small map with stderr on a file; return what stderr got. */
static char *map_with_stderr_to_file(mpg_progress_bar mode, bool set_mode, const char *env)
{
	FILE *f = tmpfile();
	ck_assert_ptr_nonnull(f);
	int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	ck_assert_int_ge(dup2(fileno(f), STDERR_FILENO), 0);
	if (env)
		setenv("MPKIT_PROGRESS", env, 1);
	else
		unsetenv("MPKIT_PROGRESS");
	mpg_pool *p = new_pool(2, true);
	mpg_options *o;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	if (set_mode)
		ck_assert_int_eq(mpg_options_set_progress_bar(o, mode), 0);
	static int64_t in[200], out[200];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, add1, in, 8, 200, out, 8, o, &res), 0);
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);
	unsetenv("MPKIT_PROGRESS");
	ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	char *text = calloc(1, 65536);
	ck_assert_ptr_nonnull(text);
	rewind(f);
	size_t k = fread(text, 1, 65535, f);
	text[k] = 0;
	fclose(f);
	return text;
}

START_TEST(no_output_on_a_non_tty_when_disabled)
{
	char *t = map_with_stderr_to_file(MPG_PROGRESS_BAR_OFF, false, NULL); /* default */
	ck_assert_str_eq(t, "");
	free(t);
	t = map_with_stderr_to_file(MPG_PROGRESS_BAR_OFF, true, "1"); /* chosen off wins */
	ck_assert_str_eq(t, "");
	free(t);
	t = map_with_stderr_to_file(MPG_PROGRESS_BAR_TTY, true, NULL); /* tty only */
	ck_assert_str_eq(t, "");
	free(t);
	t = map_with_stderr_to_file(MPG_PROGRESS_BAR_AUTO, true, "0"); /* forced off */
	ck_assert_str_eq(t, "");
	free(t);
}
END_TEST

START_TEST(non_tty_gets_a_plain_summary_when_asked)
{
	const char *want = "mpkit map_array: 200 tasks in ";
	char *t = map_with_stderr_to_file(MPG_PROGRESS_BAR_AUTO, true, NULL);
	ck_assert_msg(strncmp(t, want, strlen(want)) == 0, "got \"%s\"", t);
	ck_assert_msg(strstr(t, "none failed\n") && !strchr(t, '\033') && !strchr(t, '\r'), "got \"%s\"", t);
	free(t);
	t = map_with_stderr_to_file(MPG_PROGRESS_BAR_OFF, false, "1"); /* MPKIT_PROGRESS=1 */
	ck_assert_msg(strncmp(t, want, strlen(want)) == 0, "got \"%s\"", t);
	free(t);
}
END_TEST

/* ---- libmplog's status line ----------------------------------------------------- */

START_TEST(status_line_is_erased_and_redrawn_around_records)
{
	int master, slave;
	ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, NULL), 0);
	struct termios tio;
	tcgetattr(slave, &tio);
	cfmakeraw(&tio);
	tcsetattr(slave, TCSANOW, &tio);
	mplog_aggregator *a;
	mplog_sink *s;
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_fd(slave, MPLOG_FORMAT_TEXT, MPLOG_SINK_COLOR_NEVER, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	ck_assert_int_eq(mplog_aggregator_writer(a, &w), 0);
	ck_assert_int_eq(mplog_aggregator_set_status(a, slave, "bar 1", 0), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, NULL, 0, "hello"), 0);
	ck_assert_int_eq(mplog_aggregator_set_status(a, slave, "bar 2\nnot this", 0), 0);
	ck_assert_int_eq(mplog_aggregator_set_status(a, slave, "summary", MPLOG_STATUS_KEEP), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, NULL, 0, "after"), 0);
	mplog_writer_free(w);
	mplog_aggregator_free(a);
	/* One read may return only part of it (the pty hands output over
	 * in pieces): read to EIO, which comes once the slave is closed. */
	close(slave);
	struct drain d = {.fd = master};
	drain_main(&d);
	char *buf = d.buf;
	ck_assert_uint_gt(d.len, 0);
	/* bar 1; erased; the record; bar 1 again; bar 2; the summary stays;
	 * then a record with no status line to redraw. */
	char *r1 = strstr(buf, "hello\n");
	ck_assert_ptr_nonnull(r1);
	ck_assert_msg(strncmp(buf, "\r\033[Kbar 1\r\033[K", 13) == 0, "%s", buf);
	const char *then = "bar 1\r\033[Kbar 2\r\033[Ksummary\n";
	ck_assert_msg(strncmp(r1 + 6, then, strlen(then)) == 0, "%s", r1);
	char *r2 = strstr(r1, "summary\n");
	ck_assert_ptr_nonnull(strstr(r2 + 8, "after\n"));
	ck_assert_ptr_null(strstr(r2, "bar"));
	ck_assert_ptr_null(strstr(buf, "not this"));
	close(master);
	free(d.buf);

	/* On a non-terminal: only kept lines, plain. */
	int pfd[2];
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_aggregator_set_status(a, pfd[1], "bar", 0), -ENOTTY);
	ck_assert_int_eq(mplog_aggregator_set_status(a, pfd[1], "done", MPLOG_STATUS_KEEP), 0);
	ck_assert_int_eq(mplog_aggregator_set_status(a, -1, "x", 0), -EINVAL);
	mplog_aggregator_free(a);
	close(pfd[1]);
	char plain[64];
	ssize_t k = read(pfd[0], plain, sizeof plain - 1);
	ck_assert_int_eq(k, 5);
	ck_assert_int_eq(memcmp(plain, "done\n", 5), 0);
	close(pfd[0]);
}
END_TEST

START_TEST(progress_options_are_checked)
{
	mpg_options *o;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_progress(NULL, record, NULL, 0), -EINVAL);
	ck_assert_int_eq(mpg_options_set_progress(o, record, NULL, 3600u * 1000u + 1), -EINVAL);
	ck_assert_int_eq(mpg_options_set_progress(o, record, NULL, 3600u * 1000u), 0);
	ck_assert_int_eq(mpg_options_set_progress(o, NULL, NULL, 0), 0);
	ck_assert_int_eq(mpg_options_set_progress_bar(NULL, MPG_PROGRESS_BAR_AUTO), -EINVAL);
	ck_assert_int_eq(mpg_options_set_progress_bar(o, (mpg_progress_bar)3), -EINVAL);
	ck_assert_int_eq(mpg_options_set_progress_bar(o, MPG_PROGRESS_BAR_TTY), 0);
	/* Both are pool defaults and per call. */
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_set_workers(o, 1), 0);
	ck_assert_int_eq(mpg_options_set_log(o, NULL), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_progress(o, record, NULL, 5), 0);
	ck_assert_int_eq(mpg_options_set_progress_bar(o, MPG_PROGRESS_BAR_OFF), 0);
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, add1, NULL, 0, o, &res), 0); /* no task: no report */
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);
}
END_TEST

static Suite *progress_suite(void)
{
	Suite *s = suite_create("progress");
	TCase *tc = tcase_create("progress");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, callback_counts_add_up_with_failures_and_retries);
	tcase_add_test(tc, submit_batches_add_up);
	tcase_add_test(tc, a_million_tasks_make_few_reports);
	tcase_add_test(tc, pool_progress_sums_the_running_calls);
	tcase_add_test(tc, bar_on_a_pty_keeps_log_lines_whole_and_ends_with_the_summary);
	tcase_add_test(tc, no_color_and_dumb_terminals_get_no_colour);
	tcase_add_test(tc, no_output_on_a_non_tty_when_disabled);
	tcase_add_test(tc, non_tty_gets_a_plain_summary_when_asked);
	tcase_add_test(tc, status_line_is_erased_and_redrawn_around_records);
	tcase_add_test(tc, progress_options_are_checked);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(progress_suite)
