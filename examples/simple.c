/* SPDX-License-Identifier: MIT */
/* The simple case in a handful of calls, as Python's
 *
 *     with Pool() as p:
 *         ys = p.map(f, xs)
 *
 * The process's default pool (mpg_pool_default(): one worker per CPU, made
 * on first use, stopped at exit), a C array mapped in place with
 * mpg_map_array(), and which items failed and why with
 * mpg_results_errors() (or only how many, in one call). Then a batch of submitted tasks, each known by its
 * own number, waited for with mpg_pool_wait() while the pool stays open;
 * and one per-call setting (a time limit) whose options free themselves.
 *
 *   $ ./simple      exit 0 when the failures and results were the expected ones
 */
#include <mpguard.h>

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static int64_t *volatile nowhere; /* NULL, read through a pointer the compiler cannot see */

/* y = 1000 / x: x = 0 raises, x = 13 crashes its worker (the tests build
 * this with UBSan too, which must let the bug fault as it would). */
__attribute__((no_sanitize("undefined"))) static int inverse(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)len; (void)userdata;
	int64_t x;
	memcpy(&x, in, sizeof x);
	if (x == 0)
		mpg_raise(EDOM, "cannot divide by %" PRId64, x);
	if (x == 13)
		x = *nowhere; /* a bug: reported as SIGSEGV, the pool goes on */
	int64_t *y = mpg_task_alloc_result(task, sizeof *y);
	if (!y)
		return errno; /* positive errno, the library's convention */
	*y = 1000 / x;
	return 0;
}

static int spin_if_asked(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)len; (void)userdata;
	int64_t x;
	memcpy(&x, in, sizeof x);
	while (x < 0) /* never converges: the time limit ends it */
		;
	return mpg_task_set_result(task, &x, sizeof x);
}

static atomic_uint done_ok, done_failed;

static void on_result(size_t task, const void *data, size_t len, void *userdata)
{
	(void)data; (void)len; (void)userdata;
	printf("  submitted task %zu done\n", task);
	atomic_fetch_add(&done_ok, 1);
}

static void on_error(const mpg_error *err, void *userdata)
{
	(void)userdata;
	printf("  submitted task %zu failed: %s\n", mpg_error_task(err), mpg_error_message(err));
	atomic_fetch_add(&done_failed, 1);
}

int main(void)
{
	enum { N = 20 };
	int64_t xs[N], ys[N];
	for (int i = 0; i < N; i++)
		xs[i] = i;

	/* 1. Map an array on the default pool; see which failed and why. */
	mpg_pool *pool;
	mpg_results *res;
	int r = mpg_pool_default(&pool);
	if (r == 0)
		r = mpg_map_array(pool, inverse, xs, sizeof xs[0], N, ys, sizeof ys[0], NULL, &res);
	if (r < 0) {
		fprintf(stderr, "simple: %s\n", strerror(-r));
		return 1;
	}
	size_t nfailed;
	const mpg_error *const *errs = mpg_results_errors(res, &nfailed);
	printf("map over %d inputs: %zu failed\n", N, nfailed);
	for (size_t k = 0; k < nfailed; k++)
		printf("  %s\n", mpg_error_describe(errs[k]));
	int ok = nfailed == 2 && mpg_error_task(errs[0]) == 0 &&
		 mpg_error_code(errs[0]) == EDOM && mpg_error_task(errs[1]) == 13 &&
		 mpg_error_get_kind(errs[1]) == MPG_ERR_SIGNALED && ys[4] == 250 && ys[19] == 52;
	mpg_results_free(res);

	/* The same when the log says enough (each failure is an ERROR record
	 * with its backtrace): one call, the number that failed. */
	int nf = mpg_map_array(pool, inverse, xs, sizeof xs[0], N, ys, sizeof ys[0], NULL, NULL);
	printf("again, results only: %d failed\n", nf);
	ok &= nf == 2 && ys[0] == 0 && ys[13] == 0 && ys[5] == 200;

	/* 2. A batch of submitted tasks, each known by its number; wait for
	 * them all, the pool stays open for the next batch. */
	printf("submit 4 tasks, then wait for them:\n");
	for (int64_t x = -1; x <= 2; x++)
		if (mpg_submit(pool, inverse, &(int64_t){x + 1}, sizeof x, NULL, on_result, on_error,
			       NULL, NULL) < 0)
			ok = 0;
	ok &= mpg_pool_wait(pool, 10000) == 0;
	ok &= atomic_load(&done_ok) == 3 && atomic_load(&done_failed) == 1;

	/* 3. One per-call setting: options that free themselves. */
	{
		__attribute__((cleanup(mpg_options_freep))) mpg_options *o = NULL;
		__attribute__((cleanup(mpg_results_freep))) mpg_results *tres = NULL;
		int64_t in[3] = {1, -1, 2}, out[3];
		if (mpg_options_new(&o) == 0 && mpg_options_set_timeout(o, 200) == 0 &&
		    mpg_map_array(pool, spin_if_asked, in, sizeof in[0], 3, out, sizeof out[0], o,
				  &tres) == 0) {
			const mpg_error *const *te = mpg_results_errors(tres, &nfailed);
			printf("with a 200 ms time limit: %zu failed (%s)\n", nfailed,
			       nfailed ? mpg_error_kind_name(mpg_error_get_kind(te[0])) : "-");
			ok &= nfailed == 1 && mpg_error_task(te[0]) == 1 &&
			      mpg_error_get_kind(te[0]) == MPG_ERR_TIMEOUT && out[2] == 2;
		} else {
			ok = 0;
		}
	}
	printf("%s\n", ok ? "as expected" : "NOT as expected");
	return ok ? 0 : 1; /* the default pool stops at exit, its log drained */
}
