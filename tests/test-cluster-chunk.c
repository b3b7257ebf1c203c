/* SPDX-License-Identifier: MIT */
/* How a cluster map cuts its tasks into chunks (libmpguard-mpi's
 * cluster-chunk.c, compiled in alone: no MPI). */
#include "mpk-test.h"
#include "cluster-chunk-int.h"

#include <pthread.h>
#include <stdint.h>

/* Takes every chunk; checks they tile [0, n) in order; their sizes in
 * sizes[] (at most cap of them), their number returned. */
static size_t take_all(struct mpg__cl_chunks *c, size_t n, size_t *sizes, size_t cap)
{
	size_t first, count, next = 0, k = 0;
	while (mpg__cl_chunks_take(c, &first, &count)) {
		ck_assert_uint_eq(first, next);
		ck_assert_uint_gt(count, 0);
		ck_assert_uint_lt(k, cap);
		sizes[k++] = count;
		next = first + count;
	}
	ck_assert_uint_eq(next, n);
	ck_assert(!mpg__cl_chunks_left(c));
	return k;
}

static size_t sizes[1 << 16];

START_TEST(automatic_chunks_start_at_the_largest_and_tile_the_tasks)
{
	const size_t n = 1000003, slots = 3, max = (n + 11) / 12;
	struct mpg__cl_chunks c;
	mpg__cl_chunks_init(&c, n, 0, max, slots);
	size_t k = take_all(&c, n, sizes, sizeof sizes / sizeof *sizes);
	ck_assert_uint_eq(sizes[0], max); /* as fixed chunks began */
	for (size_t i = 1; i < k; i++) {
		ck_assert_uint_le(sizes[i], sizes[i - 1] + 1);
		ck_assert_uint_le(sizes[i], max);
	}
	/* Not many more messages than fixed chunks (12). */
	ck_assert_uint_le(k, 12 * 5);
}
END_TEST

/* The end of a map: once the last chunk is handed out, the chunks handed
 * out just before it (which other ranks may still hold, one running and
 * one queued each) are small. With fixed chunks of n / (4 x slots) they
 * held half of a slot's share each. */
START_TEST(automatic_chunks_shrink_toward_the_end)
{
	const size_t n = 1000000, slots = 3, max = n / 12;
	struct mpg__cl_chunks c;
	mpg__cl_chunks_init(&c, n, 0, max, slots);
	size_t k = take_all(&c, n, sizes, sizeof sizes / sizeof *sizes);
	ck_assert_uint_ge(k, 2 * slots);
	size_t tail = 0;
	for (size_t i = k - 2 * slots; i < k; i++)
		tail += sizes[i];
	ck_assert_uint_le(tail, n / 16);
	ck_assert_uint_le(sizes[k - 1], n / (16 * slots));
}
END_TEST

START_TEST(a_large_bound_keeps_chunks_under_it)
{
	/* 4 MiB of 8-byte inputs: the byte bound, under n / (4 x slots). */
	const size_t n = 10000000, slots = 3, max = (4u << 20) / 8;
	struct mpg__cl_chunks c;
	mpg__cl_chunks_init(&c, n, 0, max, slots);
	size_t k = take_all(&c, n, sizes, sizeof sizes / sizeof *sizes);
	for (size_t i = 0; i < k; i++)
		ck_assert_uint_le(sizes[i], max);
	ck_assert_uint_eq(sizes[0], max);
}
END_TEST

START_TEST(an_explicit_chunksize_is_kept)
{
	struct mpg__cl_chunks c;
	mpg__cl_chunks_init(&c, 10500, 1000, 1000, 3);
	size_t k = take_all(&c, 10500, sizes, sizeof sizes / sizeof *sizes);
	ck_assert_uint_eq(k, 11);
	for (size_t i = 0; i < 10; i++)
		ck_assert_uint_eq(sizes[i], 1000);
	ck_assert_uint_eq(sizes[10], 500);
}
END_TEST

START_TEST(small_maps_and_no_slots)
{
	struct mpg__cl_chunks c;
	mpg__cl_chunks_init(&c, 1, 0, 1, 3);
	ck_assert_uint_eq(take_all(&c, 1, sizes, 4), 1);
	ck_assert_uint_eq(sizes[0], 1);
	mpg__cl_chunks_init(&c, 5, 0, 1, 3);
	ck_assert_uint_eq(take_all(&c, 5, sizes, 8), 5);
	mpg__cl_chunks_init(&c, 100, 0, 100, 0); /* no slot counted: as one */
	take_all(&c, 100, sizes, 100);
	mpg__cl_chunks_init(&c, 0, 0, 1, 3);
	ck_assert_uint_eq(take_all(&c, 0, sizes, 1), 0);
}
END_TEST

/* Rank 0's MPI thread and its local thread take from one chunker. */
struct taker {
	struct mpg__cl_chunks *c;
	uint8_t *seen;
};

static void *take_loop(void *arg)
{
	struct taker *t = arg;
	size_t first, count;
	while (mpg__cl_chunks_take(t->c, &first, &count))
		for (size_t i = first; i < first + count; i++)
			t->seen[i]++; /* ranges are disjoint: no race on a byte */
	return NULL;
}

START_TEST(two_threads_take_every_task_once)
{
	const size_t n = 200000;
	uint8_t *seen = calloc(n, 1);
	ck_assert_ptr_nonnull(seen);
	for (size_t explicit_size = 0; explicit_size <= 7; explicit_size += 7) {
		memset(seen, 0, n);
		struct mpg__cl_chunks c;
		mpg__cl_chunks_init(&c, n, explicit_size, explicit_size ? 7 : n / 8, 2);
		struct taker t = {&c, seen};
		pthread_t th[2];
		for (int i = 0; i < 2; i++)
			ck_assert_int_eq(pthread_create(&th[i], NULL, take_loop, &t), 0);
		for (int i = 0; i < 2; i++)
			ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		size_t wrong = 0;
		for (size_t i = 0; i < n; i++)
			wrong += seen[i] != 1;
		ck_assert_uint_eq(wrong, 0);
	}
	free(seen);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("cluster-chunk");
	TCase *tc = tcase_create("chunks");
	tcase_add_test(tc, automatic_chunks_start_at_the_largest_and_tile_the_tasks);
	tcase_add_test(tc, automatic_chunks_shrink_toward_the_end);
	tcase_add_test(tc, a_large_bound_keeps_chunks_under_it);
	tcase_add_test(tc, an_explicit_chunksize_is_kept);
	tcase_add_test(tc, small_maps_and_no_slots);
	tcase_add_test(tc, two_threads_take_every_task_once);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(make_suite)
