/* SPDX-License-Identifier: MIT */
/* Payloads of any size: a single 2.5 GiB input and 4 GiB in total go to the
 * workers through shared memory, not through the socket. Needs ~12 GiB of
 * memory; skipped (exit 77) with a reason where there is less. */
#include "mpk-test.h"
#include <mpguard.h>

#include <stdint.h>
#include <sys/mman.h>

#define GiB (UINT64_C(1) << 30)

static int checksum(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)ud;
	const uint64_t *w = in;
	uint64_t sum = len;
	for (size_t i = 0; i < len / 8; i++)
		sum += w[i] * (i | 1);
	return mpg_task_set_result(t, &sum, 8);
}

static uint64_t expected(const void *in, size_t len)
{
	const uint64_t *w = in;
	uint64_t sum = len;
	for (size_t i = 0; i < len / 8; i++)
		sum += w[i] * (i | 1);
	return sum;
}

static void fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = seed ^ (i * 0x9e3779b97f4a7c15u);
}

static mpg_pool *new_pool(void)
{
	mpg_options *o;
	mpg_pool *p;
	mpg_options_new(&o);
	mpg_options_set_workers(o, 2);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	return p;
}

START_TEST(single_2_5_gib_input_goes_through_shared_memory)
{
	size_t len = 5 * GiB / 2;
	void *big = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(big, MAP_FAILED);
	fill(big, len, 1);
	mpg_pool *p = new_pool();
	mpg_buf in = {big, len};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, checksum, &in, 1, NULL, &res), 0);
	const uint64_t *sum;
	ck_assert_int_eq(mpg_results_get(res, 0, (const void **)&sum, NULL), 0);
	ck_assert(*sum == expected(big, len));
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_eq(st.shm_bytes, len);
	ck_assert_uint_lt(st.socket_bytes, 4096); /* headers only */
	mpg_results_free(res);
	mpg_pool_free(p);
	munmap(big, len);
}
END_TEST

START_TEST(four_gib_in_total_from_shm_buffers_are_never_copied)
{
	enum { K = 4 };
	size_t len = GiB;
	void *bufs[K];
	mpg_buf in[K];
	for (int i = 0; i < K; i++) {
		ck_assert_int_eq(mpg_shm_alloc(len, &bufs[i]), 0);
		fill(bufs[i], len, (uint64_t)i + 7);
		in[i] = (mpg_buf){bufs[i], len};
	}
	mpg_pool *p = new_pool();
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, checksum, in, K, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	for (int i = 0; i < K; i++) {
		const uint64_t *sum;
		ck_assert_int_eq(mpg_results_get(res, i, (const void **)&sum, NULL), 0);
		ck_assert(*sum == expected(bufs[i], len));
	}
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_eq(st.shm_bytes, (uint64_t)K * len);
	ck_assert_uint_eq(st.shm_copied_bytes, 0); /* zero-copy */
	ck_assert_uint_lt(st.socket_bytes, 4096);
	mpg_results_free(res);
	/* an async submit of a slice of a shm buffer works the same way */
	mpg_future *f;
	ck_assert_int_eq(mpg_submit(p, checksum, (char *)bufs[1] + 4096, len - 4096, NULL, NULL,
				    NULL, NULL, &f), 0);
	ck_assert_int_eq(mpg_future_wait(f, -1), 0);
	const uint64_t *sum;
	ck_assert_int_eq(mpg_future_result(f, (const void **)&sum, NULL), 0);
	ck_assert(*sum == expected((char *)bufs[1] + 4096, len - 4096));
	mpg_future_free(f);
	mpg_pool_free(p);
	for (int i = 0; i < K; i++)
		mpg_shm_free(bufs[i]);
}
END_TEST

static Suite *bigdata_suite(void)
{
	Suite *s = suite_create("bigdata");
	TCase *tc = tcase_create("bigdata");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, single_2_5_gib_input_goes_through_shared_memory);
	tcase_add_test(tc, four_gib_in_total_from_shm_buffers_are_never_copied);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	long pages = sysconf(_SC_AVPHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	if (pages > 0 && (uint64_t)pages * (uint64_t)psize < 12 * GiB) {
		fprintf(stderr, "SKIP: needs 12 GiB of free memory, %lu MiB available\n",
			(unsigned long)((uint64_t)pages * (uint64_t)psize >> 20));
		return 77;
	}
	struct rlimit nocore = {0, 0};
	setrlimit(RLIMIT_CORE, &nocore);
	SRunner *sr = srunner_create(bigdata_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
