/* SPDX-License-Identifier: MIT */
/* bench_crash.c — how fast does the pool report a crash, and replace the
 * worker? One worker; each round a task records the time and dereferences
 * NULL three calls deep. Measured per round:
 *   fault -> error callback holding the symbolized backtrace (bar < 50 ms),
 *   fault -> replacement worker set up and ready (bar < 10 ms),
 * and the medians are printed. Times are CLOCK_MONOTONIC, one clock for
 * every process of the machine. */
#include <mpguard.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BAR_REPORT_MS 50.0
#define BAR_READY_MS 10.0

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static volatile uint64_t *fault_ns; /* shared with the workers */
static int64_t *volatile nowhere;

__attribute__((noinline)) static int64_t inner(int64_t x) { return *nowhere + x; }
__attribute__((noinline)) static int64_t middle(int64_t x) { return inner(x) * 2; }

static int crash(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	*fault_ns = now_ns();
	int64_t y = middle(1);
	return mpg_task_set_result(t, &y, 8);
}

static int noop(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	return mpg_task_set_result(t, "", 0);
}

struct round {
	uint64_t callback_ns;
	bool had_backtrace;
};

static void on_error(const mpg_error *e, void *ud)
{
	struct round *r = ud;
	r->callback_ns = now_ns();
	const char *bt = mpg_error_backtrace(e);
	r->had_backtrace = bt && strstr(bt, "inner") && strstr(bt, "(bench_crash.c:");
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 200;
	if (rounds < 1 || rounds > 100000) {
		fprintf(stderr, "usage: bench_crash [ROUNDS]\n");
		return 2;
	}
	fault_ns = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	double *report = calloc((size_t)rounds, sizeof *report);
	double *ready = calloc((size_t)rounds, sizeof *ready);
	if (fault_ns == MAP_FAILED || !report || !ready)
		return 1;
	mpg_options *o;
	mpg_pool *p;
	int r;
	if ((r = mpg_options_new(&o)) < 0 || (r = mpg_options_set_workers(o, 1)) < 0 ||
	    (r = mpg_pool_new(o, &p)) < 0) {
		fprintf(stderr, "bench_crash: cannot start the pool: %s\n", strerror(-r));
		return 1;
	}
	mpg_options_free(o);
	for (int i = 0; i < rounds; i++) {
		struct round rd = {0};
		mpg_future *f;
		if ((r = mpg_submit(p, crash, NULL, 0, NULL, NULL, on_error, &rd, &f)) < 0 ||
		    (r = mpg_future_wait(f, -1)) < 0) {
			fprintf(stderr, "bench_crash: %s\n", strerror(-r));
			return 1;
		}
		mpg_future_free(f);
		if (!rd.had_backtrace) {
			fprintf(stderr, "bench_crash: round %d: no symbolized backtrace\n", i);
			return 1;
		}
		/* The only worker died: this runs on its replacement, so the
		 * replacement is ready when it returns. */
		if ((r = mpg_submit(p, noop, NULL, 0, NULL, NULL, NULL, NULL, &f)) < 0 ||
		    (r = mpg_future_wait(f, -1)) < 0) {
			fprintf(stderr, "bench_crash: %s\n", strerror(-r));
			return 1;
		}
		mpg_future_free(f);
		mpg_worker_info wi = {.size = sizeof wi};
		if ((r = mpg_pool_worker_info(p, 0, &wi)) < 0 || !wi.ready_ns) {
			fprintf(stderr, "bench_crash: worker info: %s\n", strerror(-r));
			return 1;
		}
		report[i] = (double)(rd.callback_ns - *fault_ns) / 1e6;
		ready[i] = (double)(wi.ready_ns - *fault_ns) / 1e6;
	}
	mpg_pool_free(p);
	qsort(report, (size_t)rounds, sizeof *report, cmp);
	qsort(ready, (size_t)rounds, sizeof *ready, cmp);
	double mr = report[rounds / 2], md = ready[rounds / 2];
	printf("crash to report, 1 worker, %d crashes (NULL dereference 3 calls deep)\n", rounds);
	printf("  fault -> error callback with symbolized backtrace  median %7.3f ms  (p90 %.3f, max %.3f)  bar < %.0f ms: %s\n",
	       mr, report[rounds * 9 / 10], report[rounds - 1], BAR_REPORT_MS,
	       mr < BAR_REPORT_MS ? "PASS" : "FAIL");
	printf("  fault -> replacement worker ready                  median %7.3f ms  (p90 %.3f, max %.3f)  bar < %.0f ms: %s\n",
	       md, ready[rounds * 9 / 10], ready[rounds - 1], BAR_READY_MS,
	       md < BAR_READY_MS ? "PASS" : "FAIL");
	free(report);
	free(ready);
	return 0;
}
