/* SPDX-License-Identifier: MIT */
/* A cluster map's chunks. Fixed chunks of n / (4 x slots) left the end of
 * a map to chance: an agent keeps a second chunk queued behind the one it
 * runs, so when the counter ran out one rank could still hold two chunks,
 * half of its share, while the others idled (bench_cluster: the ranks'
 * last answers seconds apart in a 20 s map). Guided chunks start at the
 * same size and shrink with the work left. */
#include "cluster-chunk-int.h"

void mpg__cl_chunks_init(struct mpg__cl_chunks *c, size_t n, size_t chunksize, size_t max,
			 size_t slots)
{
	if (!slots)
		slots = 1;
	c->n = n;
	c->div = chunksize ? 0 : MPG__CL_GUIDED * slots;
	c->max = chunksize ? chunksize : max ? max : 1;
	size_t min = n / (MPG__CL_MIN_DIV * slots);
	c->min = chunksize ? chunksize : min < 1 ? 1 : min > c->max ? c->max : min;
	atomic_init(&c->cursor, 0);
}

bool mpg__cl_chunks_take(struct mpg__cl_chunks *c, size_t *first, size_t *count)
{
	size_t cur = atomic_load(&c->cursor), k;
	do {
		if (cur >= c->n)
			return false;
		size_t left = c->n - cur;
		k = c->div ? (left + c->div - 1) / c->div : c->max;
		k = k < c->min ? c->min : k > c->max ? c->max : k;
		if (k > left)
			k = left;
	} while (!atomic_compare_exchange_weak(&c->cursor, &cur, cur + k));
	*first = cur;
	*count = k;
	return true;
}

bool mpg__cl_chunks_left(struct mpg__cl_chunks *c)
{
	return atomic_load(&c->cursor) < c->n;
}
