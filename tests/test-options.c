/* SPDX-License-Identifier: MIT */
/* Bad input gets a clear error: options, pool calls and levels. */
#include "mpk-test.h"
#include <mpguard.h>
#include <mplog.h>

static int noop(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)t; (void)in; (void)len; (void)ud;
	return 0;
}

START_TEST(options_reject_invalid_values)
{
	mpg_options *o;
	ck_assert_int_eq(mpg_options_new(NULL), -EINVAL);
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 0), -EINVAL);
	ck_assert_int_eq(mpg_options_set_workers(o, 4097), -EINVAL);
	ck_assert_int_eq(mpg_options_set_workers(NULL, 2), -EINVAL);
	ck_assert_int_eq(mpg_options_set_policy(o, (mpg_policy)42, 0), -EINVAL);
	ck_assert_int_eq(mpg_options_set_policy(o, MPG_RETRY, 1001), -EINVAL);
	ck_assert_int_eq(mpg_options_set_abort_exit(o, 256), -EINVAL);
	ck_assert_int_eq(mpg_options_set_abort_exit(o, -2), -EINVAL);
	ck_assert_int_eq(mpg_options_set_context(o, NULL, 5), -EINVAL);
	ck_assert_int_eq(mpg_options_set_context(o, "x", (16u << 20) + 1), -EMSGSIZE);
	ck_assert_int_eq(mpg_options_set_shm_threshold(o, 10), -EINVAL);
	ck_assert_int_eq(mpg_options_set_workers(o, 2), 0);
	mpg_options_free(o);
	mpg_options_free(NULL);
}
END_TEST

START_TEST(pool_calls_reject_invalid_arguments)
{
	mpg_pool *p;
	mpg_options *o;
	mpg_results *res;
	mpg_buf in = {NULL, 4};
	int64_t x = 1, y;
	ck_assert_int_eq(mpg_pool_new(NULL, NULL), -EINVAL);
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 1), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);

	ck_assert_int_eq(mpg_map(p, NULL, &in, 1, NULL, &res), -EINVAL);  /* no function */
	ck_assert_int_eq(mpg_map(p, noop, NULL, 1, NULL, &res), -EINVAL); /* no inputs */
	ck_assert_int_eq(mpg_map(p, noop, &in, 1, NULL, &res), -EINVAL);  /* NULL data, len 4 */
	ck_assert_int_eq(mpg_map(p, noop, &in, 0, NULL, NULL), 0);  /* no results: failures counted */
	ck_assert_int_eq(mpg_map_array(p, noop, &x, 8, 1, &y, 0, NULL, &res), -EINVAL);
	ck_assert_int_eq(mpg_map_array(p, noop, &x, 8, SIZE_MAX / 4, &y, 8, NULL, &res), -EINVAL);
	ck_assert_int_eq(mpg_map_array(p, noop, &x, 8, 1, &y, 64u << 20, NULL, &res), -EMSGSIZE);
	ck_assert_int_eq(mpg_map(NULL, noop, &in, 0, NULL, &res), -EINVAL);
	ck_assert_int_eq(mpg_submit(p, NULL, &x, 8, NULL, NULL, NULL, NULL, NULL), -EINVAL);
	/* pool-only options are refused per call */
	ck_assert_int_eq(mpg_map(p, noop, &in, 0, o, &res), -EINVAL);
	ck_assert_int_eq(mpg_pool_join(p), -EINVAL); /* join before close */
	ck_assert_int_eq(mpg_pool_worker_pid(p, 5), -EINVAL);

	/* an empty map is fine */
	ck_assert_int_eq(mpg_map(p, noop, NULL, 0, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_count(res), 0);
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);
	mpg_pool_free(NULL);
}
END_TEST

START_TEST(calls_after_close_or_terminate_are_refused)
{
	mpg_pool *p;
	mpg_results *res;
	int64_t x = 1, y;
	ck_assert_int_eq(mpg_pool_new(NULL, &p), 0);
	ck_assert_int_eq(mpg_pool_close(p), 0);
	ck_assert_int_eq(mpg_map_array(p, noop, &x, 8, 1, &y, 8, NULL, &res), -ESHUTDOWN);
	ck_assert_int_eq(mpg_submit(p, noop, &x, 8, NULL, NULL, NULL, NULL, NULL), -ESHUTDOWN);
	ck_assert_int_eq(mpg_pool_join(p), 0);
	ck_assert_int_eq(mpg_pool_join(p), 0); /* twice is harmless */
	ck_assert_int_eq(mpg_pool_worker_pid(p, 0), -ESRCH);
	mpg_pool_free(p);

	ck_assert_int_eq(mpg_pool_new(NULL, &p), 0);
	ck_assert_int_eq(mpg_pool_terminate(p), 0);
	ck_assert_int_eq(mpg_map_array(p, noop, &x, 8, 1, &y, 8, NULL, &res), -ESHUTDOWN);
	ck_assert_int_eq(mpg_pool_join(p), 0);
	mpg_pool_free(p);
}
END_TEST

START_TEST(level_names_parse_and_print)
{
	mplog_level l;
	ck_assert_str_eq(mplog_level_name(MPLOG_WARN), "warn");
	ck_assert_ptr_null(mplog_level_name((mplog_level)99));
	ck_assert_int_eq(mplog_level_parse("WARNING", &l), 0);
	ck_assert_int_eq(l, MPLOG_WARN);
	ck_assert_int_eq(mplog_level_parse("Error", &l), 0);
	ck_assert_int_eq(l, MPLOG_ERROR);
	ck_assert_int_eq(mplog_level_parse("loud", &l), -EINVAL);
	ck_assert_int_eq(mplog_level_parse(NULL, &l), -EINVAL);
	ck_assert_str_eq(mplog_version(), "0.1.0");
}
END_TEST

static Suite *options_suite(void)
{
	Suite *s = suite_create("options");
	TCase *tc = tcase_create("validation");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, options_reject_invalid_values);
	tcase_add_test(tc, pool_calls_reject_invalid_arguments);
	tcase_add_test(tc, calls_after_close_or_terminate_are_refused);
	tcase_add_test(tc, level_names_parse_and_print);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(options_suite)
