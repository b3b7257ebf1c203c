/* SPDX-License-Identifier: MIT */
/* bench_progress.c — what does the progress bar cost a map of tiny tasks?
 *
 * In one run, interleaved, it times x+2 over an int64 array with
 * mpg_map_array() and automatic chunking (bench_map's (a)):
 *   (off) no progress bar,
 *   (on)  the bar, as MPKIT_PROGRESS=1 gives it: redrawn every 100 ms,
 *   (1ms) the bar redrawn every 1 ms (a stress case, for information),
 * with the process's stderr on a real pseudo-terminal (openpty) that a
 * thread drains, so the bar does all its drawing work: formatting, the
 * aggregator's lock, write(2) to a tty. The bar is on when (on)/(off) is at
 * most 1.05. Reported, not enforced: the exit status is 0 unless something
 * broke. */
#include "bench.h"
#include <mpguard.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <pty.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPEAT BENCH_MAX_RUNS
#define BAR_RATIO 1.05

static int add2_task(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	int64_t x;
	if (len != sizeof x)
		return mpg_raise(EINVAL, "expected %zu input bytes, got %zu", sizeof x, len);
	memcpy(&x, in, sizeof x);
	void *out = mpg_task_alloc_result(task, sizeof x);
	if (!out)
		return errno ? errno : ENOMEM;
	x += 2;
	memcpy(out, &x, sizeof x);
	return 0;
}

/* The terminal's other end: read and count what the bar draws. */
static _Atomic uint64_t drawn;
static void *drain(void *arg)
{
	int fd = *(int *)arg;
	char buf[65536];
	for (;;) {
		ssize_t k = read(fd, buf, sizeof buf);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return NULL;
		atomic_fetch_add(&drawn, (uint64_t)k);
	}
}

static int timed_map(mpg_pool *pool, const mpg_options *o, const int64_t *in, int64_t *out,
		     size_t n, double *secs, uint64_t *bytes)
{
	mpg_results *res;
	uint64_t b0 = atomic_load(&drawn);
	double t0 = bench_now_s();
	int r = mpg_map_array(pool, add2_task, in, sizeof *in, n, out, sizeof *out, o, &res);
	double t1 = bench_now_s();
	if (r < 0) {
		fprintf(stdout, "bench_progress: mpg_map_array: %s\n", strerror(-r));
		return -1;
	}
	size_t failed = mpg_results_failed(res);
	mpg_results_free(res);
	for (size_t i = 0; i < n; i++) {
		if (failed || out[i] != in[i] + 2) {
			fprintf(stdout, "bench_progress: wrong result at %zu\n", i);
			return -1;
		}
	}
	*secs = t1 - t0;
	*bytes += atomic_load(&drawn) - b0; /* may lag a little: informative */
	return 0;
}

int main(int argc, char **argv)
{
	size_t count = 10000000;
	unsigned repeat = 5, workers = 0;
	static const struct option longopts[] = {
		{"count", required_argument, NULL, 'c'}, {"repeat", required_argument, NULL, 'r'},
		{"workers", required_argument, NULL, 'w'}, {"quick", no_argument, NULL, 'q'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:r:w:q", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': count = strtoull(optarg, NULL, 10); break;
		case 'r': repeat = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'w': workers = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'q': count = 1000000; repeat = 3; break;
		default:
			fprintf(stderr, "usage: bench_progress [--count C] [--repeat R] [--workers N] [--quick]\n");
			return 2;
		}
	}
	if (!count || !repeat || repeat > MAX_REPEAT) {
		fprintf(stderr, "bench_progress: bad --count or --repeat\n");
		return 2;
	}
	unsetenv("MPKIT_PROGRESS"); /* the runs choose */

	/* stderr becomes a terminal before the pool exists: its log sink and
	 * its bar see a tty, as in an interactive run. */
	int master, slave;
	struct winsize ws = {.ws_row = 40, .ws_col = 120};
	if (openpty(&master, &slave, NULL, NULL, &ws) < 0) {
		perror("bench_progress: openpty");
		return 1;
	}
	fcntl(master, F_SETFD, FD_CLOEXEC);
	fcntl(slave, F_SETFD, FD_CLOEXEC);
	int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	pthread_t th;
	if (saved < 0 || pthread_create(&th, NULL, drain, &master) != 0 ||
	    dup2(slave, STDERR_FILENO) < 0) {
		perror("bench_progress: setting up the terminal");
		return 1;
	}

	int rc = 1;
	mpg_pool *pool = NULL;
	mpg_options *po = NULL, *on = NULL, *fast = NULL;
	int64_t *in = malloc(count * sizeof *in), *out = malloc(count * sizeof *out);
	if (!in || !out)
		goto out;
	for (size_t i = 0; i < count; i++)
		in[i] = (int64_t)i;
	int r;
	if ((r = mpg_options_new(&po)) < 0 || (workers && (r = mpg_options_set_workers(po, workers)) < 0) ||
	    (r = mpg_pool_new(po, &pool)) < 0 || (r = mpg_options_new(&on)) < 0 ||
	    (r = mpg_options_set_progress_bar(on, MPG_PROGRESS_BAR_TTY)) < 0 ||
	    (r = mpg_options_new(&fast)) < 0 ||
	    (r = mpg_options_set_progress_bar(fast, MPG_PROGRESS_BAR_TTY)) < 0 ||
	    (r = mpg_options_set_progress(fast, NULL, NULL, 1)) < 0) {
		printf("bench_progress: pool or options: %s\n", strerror(-r));
		goto out;
	}
	double toff[MAX_REPEAT], ton[MAX_REPEAT], tfast[MAX_REPEAT], warm;
	uint64_t boff = 0, bon = 0, bfast = 0, bwarm = 0;
	if (timed_map(pool, NULL, in, out, count, &warm, &bwarm) < 0) /* warm up */
		goto out;
	printf("map x+2 over %zu int64, %u workers, stderr on a pty (median of %u)\n", count,
	       mpg_pool_workers(pool), repeat);
	fflush(stdout);
	for (unsigned i = 0; i < repeat; i++) /* interleaved: drift hits all alike */
		if (timed_map(pool, NULL, in, out, count, &toff[i], &boff) < 0 ||
		    timed_map(pool, on, in, out, count, &ton[i], &bon) < 0 ||
		    timed_map(pool, fast, in, out, count, &tfast[i], &bfast) < 0)
			goto out;
	double moff = bench_median(toff, repeat), mon = bench_median(ton, repeat), mfast = bench_median(tfast, repeat);
	struct { const char *label; double med; const double *runs; uint64_t bytes; } rows[] = {
		{"(off) no bar", moff, toff, boff},
		{"(on)  bar, redrawn every 100 ms", mon, ton, bon},
		{"(1ms) bar, redrawn every 1 ms", mfast, tfast, bfast},
	};
	for (size_t k = 0; k < 3; k++) {
		printf("  %-34s %7.3f s  %8llu bytes to the tty  (runs:", rows[k].label, rows[k].med,
		       (unsigned long long)rows[k].bytes);
		for (unsigned i = 0; i < repeat; i++)
			printf(" %.3f", rows[k].runs[i]);
		printf(")\n");
	}
	printf("  (on)/(off) = %.3fx  (bar <= %.2fx: %s)\n", mon / moff, BAR_RATIO,
	       mon / moff <= BAR_RATIO ? "PASS" : "FAIL");
	printf("  (1ms)/(off) = %.3fx\n", mfast / moff);
	rc = 0;
out:
	fflush(stdout);
	mpg_pool_free(pool);
	mpg_options_free(po);
	mpg_options_free(on);
	mpg_options_free(fast);
	free(in);
	free(out);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(slave);
	pthread_join(th, NULL);
	close(master);
	return rc;
}
