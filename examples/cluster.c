/* SPDX-License-Identifier: MIT */
/* Beyond one machine: the same map over the ranks of an MPI job.
 *
 *   mpirun -np 3 ./cluster       (add --oversubscribe on a small machine)
 *
 * Every rank creates its pool in mpg_cluster_init(), before MPI; rank 0
 * drives, the others run chunks on their workers until rank 0 is done.
 * 100 000 inputs are mapped in place over all ranks' workers; input 777
 * crashes its worker, wherever it runs: the crash comes back to rank 0
 * with the rank, host and backtrace, and every rank goes on. Then words
 * of any length are mapped to their reverse, read as a local pool's
 * results, and one task is submitted and waited for with its future.
 * Exits 0 when that is what happened.
 */
#include <mpguard-mpi.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 100000

static volatile int *nowhere;

__attribute__((no_sanitize("undefined"))) /* the bug faults under UBSan too */
static int cube(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)len, (void)userdata;
	double x = *(const double *)in;
	if (x == 777)
		return *nowhere; /* a bug on one input */
	double y = x * x * x;
	return mpg_task_set_result(task, &y, sizeof y);
}

/* Any lengths: a word in, the word reversed out. */
static int reverse(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	char *out = mpg_task_alloc_result(task, len);
	if (!out && len)
		return ENOMEM;
	for (size_t i = 0; i < len; i++)
		out[i] = ((const char *)in)[len - 1 - i];
	return 0;
}

static void report(const mpg_error *err, void *userdata)
{
	int *crashes = userdata;
	printf("%s\n%s", mpg_error_describe(err), mpg_error_backtrace(err) ? mpg_error_backtrace(err) : "");
	*crashes += mpg_error_get_kind(err) == MPG_ERR_SIGNALED && mpg_error_host(err);
}

int main(int argc, char **argv)
{
	mpg_cluster *cl = NULL;
	int r = mpg_cluster_init(&argc, &argv, NULL, &cl);
	if (r != 0) /* 1: an agent whose job is over; < 0: a failure */
		return r < 0;

	static double in[N], out[N];
	for (int i = 0; i < N; i++)
		in[i] = i;
	int crashes = 0;
	int failed = mpg_cluster_map_array(cl, cube, in, sizeof *in, N, out, sizeof *out, 0,
					   report, &crashes);
	printf("%d ranks, %u workers: %d of %d tasks failed; out[10] = %g\n",
	       mpg_cluster_ranks(cl), mpg_cluster_workers(cl), failed, N, out[10]);

	const char *words[] = {"mpkit", "over", "many", "hosts"};
	mpg_buf in2[4];
	for (int i = 0; i < 4; i++)
		in2[i] = (mpg_buf){words[i], strlen(words[i])};
	mpg_results *res = NULL;
	int ok = mpg_cluster_map(cl, reverse, in2, 4, NULL, &res) == 0;
	for (size_t i = 0; ok && i < 4; i++) {
		const void *data;
		size_t len;
		ok = mpg_results_get(res, i, &data, &len) == 0;
		if (ok)
			printf("%s -> %.*s\n", words[i], (int)len, (const char *)data);
	}
	mpg_results_free(res);

	mpg_future *f = NULL;
	const void *data;
	size_t len = 0;
	ok = ok && mpg_cluster_submit(cl, reverse, "submitted", 9, NULL, NULL, NULL, NULL, &f) == 0 &&
	     mpg_future_wait(f, -1) == 0 && mpg_future_result(f, &data, &len) == 0 && len == 9 &&
	     memcmp(data, "dettimbus", 9) == 0;
	mpg_future_free(f);
	mpg_cluster_free(cl);
	return failed == 1 && crashes == 1 && out[10] == 1000 && ok ? 0 : 1;
}
