/* SPDX-License-Identifier: MIT */
/* bench_submit: mpg_submit() fire and forget, per task, against the length
 * of the queue: N tasks submitted back to back (x + 2, an 8-byte result to
 * a callback), timed from the first submit to the last callback; then the
 * same with two busy loops on the CPUs; side by side with Python's
 * Pool.apply_async in the same conditions, and the hand-written pool fed
 * one-task messages 64 deep (handpool.h: the floor of a pool that cannot
 * batch). The bars: the cost at 40 000 queued at most 1.5x the
 * cost at 5 000, loaded; at least 5x faster than apply_async; at most 2x
 * the floor. */
#include "bench.h"
#include "handpool.h"
#include <mpguard.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add2(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t x;
	memcpy(&x, in, 8);
	x += 2;
	return mpg_task_set_result(t, &x, 8);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static size_t left;

static void got(size_t index, const void *data, size_t len, void *ud)
{
	(void)index; (void)data; (void)len; (void)ud;
	pthread_mutex_lock(&lock);
	if (--left == 0)
		pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
}

/* Seconds per task for n submits on pool p. */
static double run(mpg_pool *p, size_t n)
{
	left = n;
	double t0 = bench_now_s();
	for (size_t i = 0; i < n; i++) {
		int64_t x = (int64_t)i;
		int r = mpg_submit(p, add2, &x, 8, NULL, got, NULL, NULL, NULL);
		if (r < 0) {
			fprintf(stderr, "mpg_submit: %s\n", strerror(-r));
			exit(1);
		}
	}
	pthread_mutex_lock(&lock);
	while (left)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	return (bench_now_s() - t0) / (double)n;
}

static double python(unsigned workers, size_t n)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "python3 %s --workers %u --count %zu", BENCH_PY, workers, n);
	FILE *f = popen(cmd, "r");
	double s = -1;
	if (!f || fscanf(f, "seconds=%lf", &s) != 1)
		s = -1;
	if (f)
		pclose(f);
	return s < 0 ? -1 : s / (double)n;
}

static struct bench_hogs hogs;

/* Seconds per task of the floor, n inputs. */
static double floor_run(struct hpool *hp, int64_t *io, size_t n)
{
	double t0 = bench_now_s();
	if (hpool_map(hp, io, io + n, n) < 0)
		exit(1);
	return (bench_now_s() - t0) / (double)n;
}

/* Medians of reps runs of mpkit at small and large and of the floor at
 * large, interleaved so that the machine's drift hits all three alike. */
static void medians(mpg_pool *p, struct hpool *hp, int64_t *io, size_t small, size_t large,
		    int reps, double *a, double *b, double *f)
{
	double va[BENCH_MAX_RUNS], vb[BENCH_MAX_RUNS], vf[BENCH_MAX_RUNS];
	for (int i = 0; i < reps; i++) {
		va[i] = run(p, small);
		vb[i] = run(p, large);
		vf[i] = floor_run(hp, io, large);
	}
	*a = bench_median(va, (unsigned)reps);
	*b = bench_median(vb, (unsigned)reps);
	*f = bench_median(vf, (unsigned)reps);
}

int main(int argc, char **argv)
{
	unsigned workers = 2;
	int reps = 7;
	bool quick = argc > 1 && !strcmp(argv[1], "--quick");
	size_t small = quick ? 500 : 5000, large = quick ? 4000 : 40000;
	mpg_options *o;
	mpg_pool *p;
	if (mpg_options_new(&o) < 0 || mpg_options_set_workers(o, workers) < 0 ||
	    mpg_pool_new(o, &p) < 0) {
		fprintf(stderr, "bench_submit: no pool\n");
		return 1;
	}
	mpg_options_free(o);
	(void)run(p, 1000); /* workers up, first-time costs paid */
	if (argc > 1 && !strcmp(argv[1], "--profile")) { /* the slow case alone, for perf */
		bench_hogs_start(&hogs);
		printf("loaded, %zu queued: %.2f us/task\n", large, run(p, large) * 1e6);
		bench_hogs_stop(&hogs);
		mpg_pool_free(p);
		return 0;
	}
	/* The floor's workers after the pool's fork server, which would keep
	 * their pipes open; a dead one is EPIPE, not our death. */
	signal(SIGPIPE, SIG_IGN);
	struct hpool hp;
	int64_t *io = calloc(2 * large, sizeof *io);
	if (!io || hpool_start(&hp, workers, 1, HPOOL_MAX_INFLIGHT) < 0)
		return 1;
	printf("mpg_submit fire and forget, x + 2, %u workers; median of %d\n", workers, reps);
	for (int loaded = 0; loaded < 2; loaded++) {
		if (loaded)
			bench_hogs_start(&hogs);
		double a, b, f;
		medians(p, &hp, io, small, large, reps, &a, &b, &f);
		double pa = python(workers, small), pb = python(workers, large);
		if (loaded)
			bench_hogs_stop(&hogs);
		printf("%s:\n", loaded ? "two busy loops on the CPUs" : "quiet");
		printf("  mpkit  %6zu queued %8.2f us/task   %6zu queued %8.2f us/task   ratio %.2fx (bar <= 1.5x%s)\n",
		       small, a * 1e6, large, b * 1e6, b / a, loaded ? "" : ", loaded only");
		if (pa > 0 && pb > 0)
			printf("  python %6zu queued %8.2f us/task   %6zu queued %8.2f us/task   python/mpkit at %zu: %.1fx (bar >= 5x)\n",
			       small, pa * 1e6, large, pb * 1e6, large, pb / b);
		printf("  floor  (hand-written, 1 task/message, 64 deep)  %6zu tasks %8.2f us/task   mpkit/floor at %zu: %.2fx (bar <= 2x)\n",
		       large, f * 1e6, large, b / f);
	}
	if (hpool_stop(&hp) < 0)
		return 1;
	free(io);
	mpg_pool_free(p);
	return 0;
}
