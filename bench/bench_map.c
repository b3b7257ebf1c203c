/* SPDX-License-Identifier: MIT */
/* bench_map.c — how fast is libmpguard's map, against what one would write
 * by hand and against Python?
 *
 * In one run it times x+2 over an int64 array with
 *   (a) mpg_map_array() with automatic chunking,
 *   (b) a hand-written pool of forked workers fed batches of 1024 over
 *       pipes (about the floor a fork-based pool can hope for),
 *   (c) Python's multiprocessing.Pool.map with its default chunksize
 *       (py_pool_map.py, run as a child process),
 * then the cost of one task per message (chunksize 1) for mpkit, for the
 * hand-written pool fed one-task messages 64 deep per worker (the floor of
 * a pool that cannot batch), quiet and with two busy loops, and Python.
 * It prints the ratios against their bars as PASS/FAIL; those are reports,
 * so the exit status is 0 unless something broke (wrong results, errors). */
#include "bench.h"
#include "handpool.h"
#include <mpguard.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_PY
#error "BENCH_PY must be the path of py_pool_map.py (bench/meson.build sets it)"
#endif


#define BATCH HPOOL_MAX_BATCH /* inputs per message in the hand-written pool */
#define INFLIGHT 2u   /* batches queued per worker: one running, one waiting */
#define FLOOR_INFLIGHT HPOOL_MAX_INFLIGHT /* one-task messages per worker, the floor */
#define MAX_REPEAT BENCH_MAX_RUNS

#define BAR_PY_OVER_MPKIT 10.0   /* (c)/(a) must be at least this */
#define BAR_MPKIT_OVER_HAND 2.0  /* (a)/(b) must be at most this */
#define BAR_ONE_OVER_FLOOR 2.0   /* chunksize=1 / the floor must be at most this */

#define LABEL_W 44 /* width of the label column of the table */

struct config {
	unsigned workers;
	size_t count;        /* inputs of (a), (b), (c) */
	unsigned repeat;     /* runs of (a) and (b); the median is reported */
	size_t task_count;   /* inputs of the mpkit chunksize=1 run */
	size_t py_task_count; /* inputs of the Python chunksize=1 run */
};

/* ---- (a) mpkit ------------------------------------------------------------ */

/* The task: runs in an mpkit worker, one input at a time. */
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
	memcpy(out, &x, sizeof x); /* the room need not be 8-byte aligned */
	return 0;
}

/* One timed mpg_map_array(); 0 and *secs, or -1 after saying why. */
static int mpkit_map(mpg_pool *pool, const mpg_options *opts, const int64_t *in, int64_t *out,
		     size_t n, double *secs)
{
	mpg_results *res;
	bench_poison(out, n);
	double t0 = bench_now_s();
	int r = mpg_map_array(pool, add2_task, in, sizeof *in, n, out, sizeof *out, opts, &res);
	double t1 = bench_now_s();
	if (r < 0) {
		fprintf(stderr, "bench_map: mpg_map_array: %s\n", strerror(-r));
		return -1;
	}
	size_t failed = mpg_results_failed(res);
	if (failed) {
		for (size_t i = 0; i < n; i++) {
			const mpg_error *e = mpg_results_error(res, i);
			if (e) {
				fprintf(stderr, "bench_map: %zu of %zu mpkit tasks failed, first: %s\n",
					failed, n, mpg_error_describe(e));
				break;
			}
		}
		mpg_results_free(res);
		return -1;
	}
	mpg_results_free(res);
	if (!bench_verify_add2("bench_map: mpkit", in, out, n))
		return -1;
	*secs = t1 - t0;
	return 0;
}

/* ---- (b) the hand-written pool (handpool.c) ------------------------------ */

static int hand_map(struct hpool *hp, const int64_t *in, int64_t *out, size_t n, double *secs)
{
	bench_poison(out, n);
	double t0 = bench_now_s();
	int r = hpool_map(hp, in, out, n);
	double t1 = bench_now_s();
	if (r < 0 || !bench_verify_add2("bench_map: hand-written pool", in, out, n))
		return -1;
	*secs = t1 - t0;
	return 0;
}

/* ---- (c) Python ------------------------------------------------------------ */

/* Run py_pool_map.py; 0 and *secs, 1 if python3 is not there, -1 on
 * failure (said why). */
static int python_map(unsigned workers, size_t count, size_t chunksize, double *secs)
{
	char wbuf[16], cbuf[32], kbuf[32];
	snprintf(wbuf, sizeof wbuf, "%u", workers);
	snprintf(cbuf, sizeof cbuf, "%zu", count);
	snprintf(kbuf, sizeof kbuf, "%zu", chunksize);
	char *argv[] = {"python3", BENCH_PY, "--workers", wbuf, "--count", cbuf,
			"--chunksize", kbuf, NULL};

	char out[4096];
	int st = bench_capture(argv, out, sizeof out);
	if (st == BENCH_NO_PROGRAM || st == 127)
		return 1; /* 127: e.g. a pyenv shim with no python3 behind it */
	if (st != 0) {
		if (st > 0)
			fprintf(stderr, "bench_map: python3 " BENCH_PY " exited with status %d\n", st);
		return -1;
	}
	const char *s = strstr(out, "seconds=");
	char *end = NULL;
	double v = s ? strtod(s + 8, &end) : -1;
	if (!s || end == s + 8 || v < 0) {
		fprintf(stderr, "bench_map: no seconds= in python3's output: %s\n", out);
		return -1;
	}
	*secs = v;
	return 0;
}

/* ---- main -------------------------------------------------------------------- */

static unsigned cpu_count(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	return 1;
}

static bool parse_size(const char *s, size_t min, size_t max, size_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return false;
	*ret = (size_t)v;
	return true;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_map [--workers N] [--count C] [--repeat R] [--quick]\n"
		   "  --workers N  workers in each pool (default: CPUs we may run on)\n"
		   "  --count C    inputs of the timed maps (default 10000000)\n"
		   "  --repeat R   runs of (a) and (b), median reported (default 3)\n"
		   "  --quick      smaller counts everywhere (smoke test)\n");
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
	static const struct option longopts[] = {
		{"workers", required_argument, NULL, 'w'},
		{"count", required_argument, NULL, 'c'},
		{"repeat", required_argument, NULL, 'r'},
		{"quick", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	size_t workers = 0, count = 0, repeat = 3;
	bool quick = false;
	int c;
	while ((c = getopt_long(argc, argv, "w:c:r:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (!parse_size(optarg, 1, 4096, &workers)) {
				fprintf(stderr, "bench_map: --workers wants 1..4096\n");
				return -1;
			}
			break;
		case 'c':
			if (!parse_size(optarg, 1, SIZE_MAX / 2 / sizeof(int64_t), &count)) {
				fprintf(stderr, "bench_map: --count wants a positive number\n");
				return -1;
			}
			break;
		case 'r':
			if (!parse_size(optarg, 1, MAX_REPEAT, &repeat)) {
				fprintf(stderr, "bench_map: --repeat wants 1..%u\n", MAX_REPEAT);
				return -1;
			}
			break;
		case 'q':
			quick = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return -1;
	}
	cfg->workers = workers ? (unsigned)workers : cpu_count();
	cfg->count = count ? count : quick ? 1000000 : 10000000;
	cfg->repeat = (unsigned)repeat;
	cfg->task_count = quick ? 20000 : 200000;
	cfg->py_task_count = quick ? 10000 : 100000;
	return 0;
}

static void row(const char *label, double secs)
{
	printf("  %-*s %7.3f s\n", LABEL_W, label, secs);
}

static void row_runs(const char *label, double med, const double *runs, unsigned n)
{
	printf("  %-*s %7.3f s", LABEL_W, label, med);
	if (n > 1) {
		printf("   (runs:");
		for (unsigned i = 0; i < n; i++)
			printf(" %.3f", runs[i]);
		printf(")");
	}
	printf("\n");
}

static void ratio(const char *name, double v, bool at_least, double bar)
{
	bool pass = at_least ? v >= bar : v <= bar;
	printf("  %s = %.2fx  (bar %s %gx: %s)\n", name, v, at_least ? ">=" : "<=", bar,
	       pass ? "PASS" : "FAIL");
}

int main(int argc, char **argv)
{
	struct config cfg;
	if (parse_args(argc, argv, &cfg) < 0)
		return 2;

	int rc = 1;
	mpg_pool *pool = NULL;
	mpg_options *opts = NULL, *opts1 = NULL;
	struct hpool hp = {0};
	bool hp_started = false;
	int64_t *in = NULL, *out = NULL;
	double ta[MAX_REPEAT], tb[MAX_REPEAT];

	/* The pool first: its fork server forks now, before this process has
	 * the big arrays and the hand-written workers' pipes (the fork server
	 * and mpkit's workers would keep copies of any fd open now). */
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, cfg.workers)) < 0 ||
	    (r = mpg_pool_new(opts, &pool)) < 0) {
		fprintf(stderr, "bench_map: cannot start the mpkit pool: %s\n", strerror(-r));
		goto out;
	}
	if ((r = mpg_options_new(&opts1)) < 0 || (r = mpg_options_set_chunksize(opts1, 1)) < 0) {
		fprintf(stderr, "bench_map: mpkit options: %s\n", strerror(-r));
		goto out;
	}

	size_t nalloc = cfg.count > cfg.task_count ? cfg.count : cfg.task_count;
	in = malloc(nalloc * sizeof *in);
	out = malloc(nalloc * sizeof *out);
	if (!in || !out) {
		fprintf(stderr, "bench_map: cannot allocate 2 x %zu int64\n", nalloc);
		goto out;
	}
	for (size_t i = 0; i < nalloc; i++)
		in[i] = (int64_t)i;

	/* Warm up, like the Python side: the workers have run a task. */
	double warm;
	if (mpkit_map(pool, opts1, in, out, 2 * (size_t)cfg.workers, &warm) < 0)
		goto out;
	/* A worker that died must show up as EPIPE on our write, not kill us.
	 * Set after mpg_pool_new(), so mpkit's processes keep the default. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		perror("bench_map: signal(SIGPIPE)");
		goto out;
	}
	if (hpool_start(&hp, cfg.workers, BATCH, INFLIGHT) < 0)
		goto out;
	hp_started = true;

	printf("map x+2 over %zu int64, %u worker%s (median of %u)\n", cfg.count, cfg.workers,
	       cfg.workers == 1 ? "" : "s", cfg.repeat);
	fflush(stdout);
	/* Interleaved, so that drift in the machine's speed hits both alike. */
	for (unsigned i = 0; i < cfg.repeat; i++) {
		if (mpkit_map(pool, NULL, in, out, cfg.count, &ta[i]) < 0 ||
		    hand_map(&hp, in, out, cfg.count, &tb[i]) < 0)
			goto out;
	}
	hp_started = false;
	if (hpool_stop(&hp) < 0)
		goto out;
	double a = bench_median(ta, cfg.repeat), b = bench_median(tb, cfg.repeat);
	row_runs("(a) mpkit mpg_map_array, auto chunking", a, ta, cfg.repeat);
	row_runs("(b) hand-written fork+pipe, batches of 1024", b, tb, cfg.repeat);
	fflush(stdout);

	double c;
	int pr = python_map(cfg.workers, cfg.count, 0, &c);
	if (pr < 0)
		goto out;
	if (pr == 0)
		row("(c) Python Pool.map, default chunksize", c);
	else
		printf("  %-*s %7s   (python3 not found)\n", LABEL_W,
		       "(c) Python Pool.map, default chunksize", "skipped");
	if (pr == 0)
		ratio("(c)/(a)", c / a, true, BAR_PY_OVER_MPKIT);
	else
		printf("  (c)/(a) = n/a  (python3 not found)\n");
	ratio("(a)/(b)", a / b, false, BAR_MPKIT_OVER_HAND);

	printf("per-task overhead, chunking off (one task per message), median of %u\n",
	       cfg.repeat);
	fflush(stdout);
	double us_mpkit = 0;
	if (hpool_start(&hp, cfg.workers, 1, FLOOR_INFLIGHT) < 0)
		goto out;
	hp_started = true;
	for (int loaded = 0; loaded < 2; loaded++) {
		struct bench_hogs hogs;
		if (loaded)
			bench_hogs_start(&hogs);
		for (unsigned i = 0; i < cfg.repeat; i++) {
			if (mpkit_map(pool, opts1, in, out, cfg.task_count, &ta[i]) < 0 ||
			    hand_map(&hp, in, out, cfg.task_count, &tb[i]) < 0) {
				if (loaded)
					bench_hogs_stop(&hogs);
				goto out;
			}
		}
		if (loaded)
			bench_hogs_stop(&hogs);
		double us_one = bench_median(ta, cfg.repeat) * 1e6 / (double)cfg.task_count;
		double us_floor = bench_median(tb, cfg.repeat) * 1e6 / (double)cfg.task_count;
		if (!loaded)
			us_mpkit = us_one;
		printf(" %s:\n", loaded ? "two busy loops on the CPUs" : "quiet");
		printf("  %-34s %8zu tasks %8.2f us/task\n", "mpkit chunksize=1", cfg.task_count,
		       us_one);
		printf("  %-34s %8zu tasks %8.2f us/task\n", "hand-written, 1 task/message, 64 deep",
		       cfg.task_count, us_floor);
		ratio("mpkit/floor", us_one / us_floor, false, BAR_ONE_OVER_FLOOR);
		fflush(stdout);
	}
	hp_started = false;
	if (hpool_stop(&hp) < 0)
		goto out;

	/* Done with mpkit: stop it cleanly (an error here is a bug to see)
	 * and leave the machine to the last Python run. */
	if ((r = mpg_pool_close(pool)) < 0 || (r = mpg_pool_join(pool)) < 0) {
		fprintf(stderr, "bench_map: stopping the mpkit pool: %s\n", strerror(-r));
		goto out;
	}
	mpg_pool_free(pool);
	pool = NULL;

	if (pr == 0) {
		double tp;
		if (python_map(cfg.workers, cfg.py_task_count, 1, &tp) != 0)
			goto out;
		double us_py = tp * 1e6 / (double)cfg.py_task_count;
		printf("  %-22s %8zu tasks %8.2f us/task\n", "Python chunksize=1",
		       cfg.py_task_count, us_py);
		printf("  Python/mpkit = %.1fx\n", us_py / us_mpkit);
	} else {
		printf("  %-22s skipped: python3 not found\n", "Python chunksize=1");
	}
	rc = 0;
out:
	if (fflush(stdout) == EOF) {
		perror("bench_map: stdout");
		rc = 1;
	}
	if (hp_started && hpool_stop(&hp) < 0)
		rc = 1;
	mpg_pool_free(pool);
	mpg_options_free(opts);
	mpg_options_free(opts1);
	free(in);
	free(out);
	return rc;
}
