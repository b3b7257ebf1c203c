/* SPDX-License-Identifier: MIT */
/* The README's demo: a map over 12 inputs in which task 3 raises an error
 * and task 7 crashes its worker with a NULL dereference. The pool reports
 * both as structured errors with backtraces, replaces the dead worker, and
 * goes on. Task 5 logs a line; it and the pool's error records reach
 * stderr through the pool's log aggregator (libmplog). Then a longer map
 * shows the progress bar on stderr, with log records going above it. */
#include <mpguard.h>

#include <inttypes.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int64_t *volatile nowhere; /* NULL */

static __attribute__((noinline)) int64_t lookup(int64_t x)
{
	return x == 7 ? *nowhere : x; /* 7: a real segfault */
}

static int square(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	int64_t x;
	if (len != sizeof x)
		return mpg_raise(22, "expected 8 bytes, got %zu", len);
	memcpy(&x, in, sizeof x);
	if (x == 3)
		mpg_raise(42, "refusing to square %" PRId64 ": three is unlucky", x);
	if (x == 5)
		mplog_info("squaring %" PRId64 " in worker %u", x, mpg_task_worker(task));
	x = lookup(x);
	int64_t y = x * x;
	return mpg_task_set_result(task, &y, sizeof y);
}

/* About 0.6 ms of work; every 1500th input fails, every 2000th logs. */
static int slow_square(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	int64_t x;
	if (len != sizeof x)
		return mpg_raise(22, "expected 8 bytes, got %zu", len);
	memcpy(&x, in, sizeof x);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 600000L);
	if (x % 1500 == 1499)
		mpg_raise(7, "input %" PRId64 " is not welcome", x);
	if (x % 2000 == 0)
		mplog_info("%" PRId64 " inputs in, worker %u says hello", x, mpg_task_worker(task));
	int64_t y = x * x;
	return mpg_task_set_result(task, &y, sizeof y);
}

static void on_error(const mpg_error *err, void *userdata)
{
	(void)userdata;
	printf("  error callback: %s\n", mpg_error_describe(err));
}

int main(void)
{
	mpg_options *opts;
	mpg_pool *pool;
	int r;

	if ((r = mpg_options_new(&opts)) < 0 ||
	    (r = mpg_options_set_workers(opts, 3)) < 0 ||
	    (r = mpg_options_set_error_callback(opts, on_error, NULL)) < 0 ||
	    (r = mpg_pool_new(opts, &pool)) < 0) {
		fprintf(stderr, "demo: cannot start the pool: %s\n", strerror(-r));
		return 1;
	}
	mpg_options_free(opts);
	printf("pool of %u workers: pids", mpg_pool_workers(pool));
	for (unsigned i = 0; i < mpg_pool_workers(pool); i++)
		printf(" %d", (int)mpg_pool_worker_pid(pool, i));
	printf("\n\nmap square() over 0..11 (3 raises, 7 segfaults):\n");

	int64_t xs[12];
	mpg_buf in[12];
	for (int i = 0; i < 12; i++) {
		xs[i] = i;
		in[i] = (mpg_buf){&xs[i], sizeof xs[i]};
	}
	mpg_results *res;
	r = mpg_map(pool, square, in, 12, NULL, &res);
	if (r < 0) {
		fprintf(stderr, "demo: map failed: %s\n", strerror(-r));
		mpg_pool_free(pool);
		return 1;
	}
	printf("\nresults in input order:\n");
	for (size_t i = 0; i < mpg_results_count(res); i++) {
		const void *data;
		if (mpg_results_get(res, i, &data, NULL) == 0) {
			int64_t y;
			memcpy(&y, data, sizeof y);
			printf("  %2zu -> %" PRId64 "\n", i, y);
			continue;
		}
		const mpg_error *e = mpg_results_error(res, i);
		printf("  %2zu -> FAILED  kind=%s worker=%d pid=%d code=%d signal=%d\n"
		       "        %s\n", i, mpg_error_kind_name(mpg_error_get_kind(e)),
		       mpg_error_worker(e), (int)mpg_error_pid(e), mpg_error_code(e),
		       mpg_error_signal(e), mpg_error_message(e));
		const char *bt = mpg_error_backtrace(e);
		for (const char *line = bt; line && *line;) {
			const char *end = strchr(line, '\n');
			int n = end ? (int)(end - line) : (int)strlen(line);
			printf("        %.*s\n", n, line);
			line += n + (end != NULL);
		}
	}
	printf("%zu of %zu tasks failed\n", mpg_results_failed(res), mpg_results_count(res));
	mpg_results_free(res);

	printf("\nthe pool carries on: map again over 0..5 minus the bad ones:\n");
	int64_t ok[] = {0, 1, 2, 4, 5, 6};
	int64_t sq[6];
	r = mpg_map_array(pool, square, ok, sizeof ok[0], 6, sq, sizeof sq[0], NULL, &res);
	if (r == 0) {
		for (int i = 0; i < 6; i++)
			printf("  %" PRId64 "^2 = %" PRId64 "\n", ok[i], sq[i]);
		mpg_results_free(res);
	}
	/* A longer map with a progress bar: redrawn in place on a terminal
	 * (records go above it), then a summary line that stays. */
	enum { NBIG = 4000 };
	static int64_t big[NBIG], bigsq[NBIG];
	for (int i = 0; i < NBIG; i++)
		big[i] = i;
	printf("\nmap slow_square() over %d inputs with a progress bar on stderr:\n", NBIG);
	fflush(stdout);
	mpg_options *bar;
	if ((r = mpg_options_new(&bar)) < 0 ||
	    (r = mpg_options_set_progress_bar(bar, MPG_PROGRESS_BAR_AUTO)) < 0 ||
	    (r = mpg_options_set_error_callback(bar, NULL, NULL)) < 0) { /* no printing under the bar */
		fprintf(stderr, "demo: options: %s\n", strerror(-r));
		mpg_pool_free(pool);
		return 1;
	}
	r = mpg_map_array(pool, slow_square, big, sizeof big[0], NBIG, bigsq, sizeof bigsq[0], bar,
			  &res);
	mpg_options_free(bar);
	if (r == 0) {
		printf("  %zu of %d tasks failed\n", mpg_results_failed(res), NBIG);
		mpg_results_free(res);
	}

	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(pool, &st);
	printf("\nworkers replaced: %" PRIu64 ", pids now", st.workers_replaced);
	for (unsigned i = 0; i < mpg_pool_workers(pool); i++) {
		pid_t pid = mpg_pool_worker_pid(pool, i);
		if (pid > 0)
			printf(" %d", (int)pid);
		else
			printf(" (starting)");
	}
	printf("\n");
	mpg_pool_close(pool);
	mpg_pool_join(pool);
	mpg_pool_free(pool);
	return 0;
}
