/* SPDX-License-Identifier: MIT */
/* A program built against an installed mpkit (tests/check-install.sh):
 * the header as pkg-config's flags find it, a map on a real pool. */
#include <mpguard.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int add2(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)task;
	(void)userdata;
	if (len != sizeof(long))
		return EINVAL;
	long x;
	memcpy(&x, in, sizeof x);
	long *y = mpg_task_alloc_result(task, sizeof *y);
	if (!y)
		return ENOMEM;
	*y = x + 2;
	return 0;
}

int main(void)
{
	mpg_options *o;
	mpg_pool *pool;
	if (mpg_options_new(&o) < 0 || mpg_options_set_workers(o, 2) < 0 ||
	    mpg_options_set_control(o, 0) < 0 || mpg_pool_new(o, &pool) < 0)
		return 1;
	mpg_options_free(o);
	long xs[100], ys[100];
	for (int i = 0; i < 100; i++)
		xs[i] = i;
	mpg_results *res;
	int r = mpg_map_array(pool, add2, xs, sizeof xs[0], 100, ys, sizeof ys[0], NULL, &res);
	if (r < 0 || mpg_results_failed(res) != 0)
		return 2;
	mpg_results_free(res);
	mpg_pool_free(pool);
	for (int i = 0; i < 100; i++)
		if (ys[i] != i + 2)
			return 3;
	printf("libmpguard %s: 100 tasks\n", mplog_version());
	return 0;
}
