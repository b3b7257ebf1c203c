/* SPDX-License-Identifier: MIT */
/* A task that never ends: mpg_options_set_timeout().
 *
 * Finds the fixed point of the logistic map x -> r x (1 - x) for several
 * r by iterating until x stops moving. For r = 3.5 it never does (x cycles
 * through four values), so that task spins forever. With a 200 ms limit
 * the pool sends its worker SIGXCPU, the worker reports where it is stuck,
 * is killed and replaced; the task ends as MPG_ERR_TIMEOUT with that
 * backtrace, and the other tasks are not affected.
 *
 *   $ ./timeout     exit 0 when exactly the r = 3.5 task timed out, in converge()
 */
#include <mpguard.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static volatile uint64_t iterations; /* progress a debugger could look at */

static __attribute__((noinline)) double converge(double r)
{
	double x = 0.5, prev;
	for (;;) {
		prev = x;
		x = r * x * (1 - x);
		iterations++;
		double d = x - prev;
		if (d < 1e-12 && d > -1e-12)
			return x;
	}
}

static int fixed_point(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	double r;
	if (len != sizeof r)
		return mpg_raise(EINVAL, "expected a double, got %zu bytes", len);
	memcpy(&r, in, sizeof r);
	double x = converge(r);
	return mpg_task_set_result(task, &x, sizeof x);
}

int main(void)
{
	static const double rs[] = {1.5, 2.0, 2.5, 2.8, 3.5, 2.9};
	enum { N = sizeof rs / sizeof rs[0], STUCK = 4, LIMIT_MS = 200 };
	double xs[N];

	mpg_options *opts = NULL;
	mpg_pool *pool = NULL;
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, 2)) < 0 ||
	    (r = mpg_options_set_timeout(opts, LIMIT_MS)) < 0 || /* per task; pool default */
	    (r = mpg_pool_new(opts, &pool)) < 0) {
		fprintf(stderr, "timeout: cannot start the pool: %s\n", strerror(-r));
		mpg_options_free(opts);
		return 1;
	}
	mpg_options_free(opts);

	printf("fixed points of x -> r x (1 - x), at most %d ms each:\n", LIMIT_MS);
	mpg_results *res;
	if ((r = mpg_map_array(pool, fixed_point, rs, sizeof rs[0], N, xs, sizeof xs[0], NULL,
			       &res)) < 0) {
		fprintf(stderr, "timeout: mpg_map_array: %s\n", strerror(-r));
		mpg_pool_free(pool);
		return 1;
	}
	int ok = mpg_results_failed(res) == 1;
	for (size_t i = 0; i < N; i++) {
		const mpg_error *e = mpg_results_error(res, i);
		if (!e) {
			printf("  r = %.1f: x = %.6f (expected %.6f)\n", rs[i], xs[i], 1 - 1 / rs[i]);
			ok &= xs[i] - (1 - 1 / rs[i]) < 1e-9 && xs[i] - (1 - 1 / rs[i]) > -1e-9;
			continue;
		}
		printf("  r = %.1f: %s\n    stuck at:\n", rs[i], mpg_error_describe(e));
		const char *bt = mpg_error_backtrace(e);
		for (const char *line = bt; line && *line;) { /* one frame a line */
			size_t n = strcspn(line, "\n");
			printf("      %.*s\n", (int)n, line);
			line += n + (line[n] == '\n');
		}
		ok &= i == STUCK && mpg_error_get_kind(e) == MPG_ERR_TIMEOUT && bt &&
		      strstr(bt, "converge");
	}
	mpg_results_free(res);

	mpg_stats st = {.size = sizeof st};
	if (mpg_pool_stats(pool, &st) < 0)
		ok = 0;
	printf("tasks timed out: %" PRIu64 ", workers replaced: %" PRIu64 "\n", st.tasks_timed_out,
	       st.workers_replaced);
	ok &= st.tasks_timed_out == 1;
	if ((r = mpg_pool_close(pool)) < 0 || (r = mpg_pool_join(pool)) < 0) {
		fprintf(stderr, "timeout: close/join: %s\n", strerror(-r));
		ok = 0;
	}
	mpg_pool_free(pool);
	printf("%s\n", ok ? "OK" : "UNEXPECTED");
	return ok ? 0 : 1;
}
