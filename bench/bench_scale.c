/* SPDX-License-Identifier: MIT */
/* bench_scale: per-task cost of a map as the pool grows: x + 2 over
 * int64s with mpg_map_array() (automatic chunking), and mpg_map() of
 * 100 000 inputs of 1 KiB each returning 1 KiB, at 1, 2, 8 and 64 workers;
 * the ratio is each row's time to the 1-worker row's. Median of 3. */
#include "bench.h"
#include <mpguard.h>

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

/* 1 KiB in, its bytes reversed out. */
static int reverse_kib(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)ud;
	uint8_t *out = mpg_task_alloc_result(t, len);
	if (!out)
		return 1;
	const uint8_t *b = in;
	for (size_t i = 0; i < len; i++)
		out[i] = b[len - 1 - i];
	return 0;
}

int main(int argc, char **argv)
{
	bool quick = argc > 1 && !strcmp(argv[1], "--quick");
	size_t n_small = quick ? 200000 : 4000000, n_kib = quick ? 10000 : 100000;
	int64_t *x = malloc(n_small * 8), *y = malloc(n_small * 8);
	uint8_t *kib = malloc(n_kib * 1024);
	mpg_buf *in = malloc(n_kib * sizeof *in);
	if (!x || !y || !kib || !in)
		return 1;
	for (size_t i = 0; i < n_small; i++)
		x[i] = (int64_t)i;
	for (size_t i = 0; i < n_kib; i++) {
		memset(kib + i * 1024, (int)(i & 0xff), 1024);
		in[i] = (mpg_buf){kib + i * 1024, 1024};
	}
	const unsigned counts[] = {1, 2, 8, 64};
	double base_small = 0, base_kib = 0;
	printf("map per task, median of 3; ratio: time against 1 worker (%zu x+2, %zu x 1 KiB)\n",
	       n_small, n_kib);
	printf("  workers   x+2 (map_array)        1 KiB in, 1 KiB out (map)\n");
	for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
		mpg_options *o;
		mpg_pool *p;
		if (mpg_options_new(&o) < 0 || mpg_options_set_workers(o, counts[k]) < 0 ||
		    mpg_pool_new(o, &p) < 0)
			return 1;
		mpg_options_free(o);
		double ts[3], tk[3];
		for (int r = 0; r < 3; r++) {
			mpg_results *res;
			double t0 = bench_now_s();
			if (mpg_map_array(p, add2, x, 8, n_small, y, 8, NULL, &res) < 0)
				return 1;
			ts[r] = bench_now_s() - t0;
			mpg_results_free(res);
			t0 = bench_now_s();
			if (mpg_map(p, reverse_kib, in, n_kib, NULL, &res) < 0)
				return 1;
			tk[r] = bench_now_s() - t0;
			mpg_results_free(res);
		}
		double ms = bench_median(ts, 3), mk = bench_median(tk, 3);
		if (k == 0) {
			base_small = ms;
			base_kib = mk;
		}
		printf("  %7u   %7.1f ns/task %5.2fx   %7.2f us/task %5.2fx\n", counts[k],
		       ms / (double)n_small * 1e9, ms / base_small, mk / (double)n_kib * 1e6,
		       mk / base_kib);
		mpg_pool_free(p);
	}
	free(x);
	free(y);
	free(kib);
	free(in);
	return 0;
}
