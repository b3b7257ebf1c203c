/* SPDX-License-Identifier: MIT */
/* map, map_array, imap_unordered and submit: results, order, context,
 * chunking, callbacks, large payloads. */
#include "mpk-test.h"
#include <mpguard.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>

static mpg_pool *new_pool(unsigned workers)
{
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, workers), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	return p;
}

/* Result: the input repeated (index % 5) times: variable sizes. */
static int repeat_task(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)ud;
	size_t k = mpg_task_index(t) % 5;
	uint8_t *out = mpg_task_alloc_result(t, len * k);
	if (!out && len * k != 0)
		return -errno;
	for (size_t i = 0; i < k; i++)
		memcpy(out + i * len, in, len);
	return 0;
}

START_TEST(map_returns_results_in_input_order)
{
	mpg_pool *p = new_pool(3);
	enum { N = 2000 };
	char strs[N][16];
	mpg_buf in[N];
	for (int i = 0; i < N; i++) {
		snprintf(strs[i], sizeof strs[i], "in%d", i);
		in[i] = (mpg_buf){strs[i], strlen(strs[i])};
	}
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, repeat_task, in, N, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_count(res), N);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	for (int i = 0; i < N; i++) {
		const void *d;
		size_t len;
		ck_assert_int_eq(mpg_results_get(res, i, &d, &len), 0);
		size_t k = (size_t)i % 5;
		ck_assert_uint_eq(len, in[i].len * k);
		for (size_t j = 0; j < k; j++)
			ck_assert_int_eq(memcmp((const char *)d + j * in[i].len, strs[i], in[i].len), 0);
		ck_assert_ptr_null(mpg_results_error(res, i));
	}
	ck_assert_int_eq(mpg_results_get(res, N, NULL, NULL), -EINVAL);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

static int add2(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t x;
	memcpy(&x, in, sizeof x);
	int64_t *y = mpg_task_alloc_result(t, sizeof *y);
	*y = x + 2;
	return 0;
}

START_TEST(map_array_writes_results_in_place)
{
	mpg_pool *p = new_pool(2);
	enum { N = 300000 };
	int64_t *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
	for (int i = 0; i < N; i++)
		x[i] = i * 3;
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, add2, x, sizeof *x, N, y, sizeof *y, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(y[i], i * 3 + 2);
	const void *d;
	ck_assert_int_eq(mpg_results_get(res, 7, &d, NULL), 0);
	ck_assert_ptr_eq(d, &y[7]);
	/* automatic chunking: far fewer messages than tasks */
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_lt(st.messages_sent, N / 100);
	ck_assert_uint_eq(st.tasks_ok, N);
	mpg_results_free(res);
	free(x);
	free(y);
	mpg_pool_free(p);
}
END_TEST

START_TEST(chunksize_one_sends_one_task_per_message)
{
	mpg_pool *p = new_pool(2);
	enum { N = 500 };
	int64_t x[N], y[N];
	for (int i = 0; i < N; i++)
		x[i] = i;
	mpg_options *o;
	mpg_options_new(&o);
	mpg_options_set_chunksize(o, 1);
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, add2, x, 8, N, y, 8, o, &res), 0);
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_eq(st.messages_sent, N);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(y[i], i + 2);
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);
}
END_TEST

struct params {
	int64_t mul, add;
};

/* starmap-style: the call's context carries extra arguments. */
static int affine(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len;
	size_t clen;
	const struct params *pr = mpg_task_context(t, &clen);
	if (!pr || clen != sizeof *pr)
		return mpg_raise(1, "no context");
	int64_t x, y;
	memcpy(&x, in, 8);
	y = x * pr->mul + pr->add + *(const int64_t *)ud;
	return mpg_task_set_result(t, &y, sizeof y);
}

static int64_t pool_bias = 1000; /* exists before the pool: workers see it */

START_TEST(map_passes_context_bytes_and_pool_userdata)
{
	mpg_options *o;
	mpg_pool *p;
	mpg_options_new(&o);
	mpg_options_set_workers(o, 2);
	mpg_options_set_userdata(o, &pool_bias);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);

	int64_t x[100], y[100];
	for (int i = 0; i < 100; i++)
		x[i] = i;
	for (int round = 1; round <= 3; round++) {
		struct params pr = {.mul = round, .add = -round};
		mpg_options_new(&o);
		mpg_options_set_context(o, &pr, sizeof pr);
		mpg_results *res;
		ck_assert_int_eq(mpg_map_array(p, affine, x, 8, 100, y, 8, o, &res), 0);
		ck_assert_uint_eq(mpg_results_failed(res), 0);
		for (int i = 0; i < 100; i++)
			ck_assert_int_eq(y[i], i * round - round + 1000);
		mpg_results_free(res);
		mpg_options_free(o);
	}
	/* a call without context sees none */
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, affine, x, 8, 10, y, 8, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 10);
	ck_assert_str_eq(mpg_error_message(mpg_results_error(res, 3)), "no context");
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

static int no_result(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	if (mpg_task_index(t) == 1)
		return mpg_task_set_result(t, "abc", 3) == -EMSGSIZE ? 0 : 99;
	return 0;
}

START_TEST(map_array_reports_a_missing_result)
{
	mpg_pool *p = new_pool(1);
	int64_t x[3] = {0}, y[3];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, no_result, x, 8, 3, y, 8, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 3);
	const mpg_error *e = mpg_results_error(res, 1);
	ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_RAISED);
	ck_assert_int_eq(mpg_error_code(e), ENODATA);
	ck_assert_ptr_nonnull(strstr(mpg_error_message(e), "8 bytes"));
	ck_assert_int_eq(mpg_results_get(res, 1, NULL, NULL), -EIO);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(imap_unordered_yields_every_task_once)
{
	mpg_pool *p = new_pool(3);
	enum { N = 5000 };
	int64_t x[N];
	mpg_buf in[N];
	for (int i = 0; i < N; i++) {
		x[i] = i;
		in[i] = (mpg_buf){&x[i], 8};
	}
	mpg_iter *it;
	ck_assert_int_eq(mpg_imap_unordered(p, add2, in, N, NULL, &it), 0);
	static uint8_t seen[N];
	memset(seen, 0, sizeof seen);
	size_t idx, len, count = 0;
	const void *d;
	const mpg_error *err;
	int r;
	while ((r = mpg_iter_next(it, &idx, &d, &len, &err)) == 1) {
		ck_assert_uint_lt(idx, N);
		ck_assert_int_eq(seen[idx], 0);
		seen[idx] = 1;
		ck_assert_ptr_null(err);
		ck_assert_uint_eq(len, 8);
		ck_assert_int_eq(*(const int64_t *)d, (int64_t)idx + 2);
		count++;
	}
	ck_assert_int_eq(r, 0);
	ck_assert_uint_eq(count, N);
	ck_assert_int_eq(mpg_iter_next(it, &idx, &d, &len, &err), 0);
	mpg_iter_free(it);
	mpg_pool_close(p);
	ck_assert_int_eq(mpg_pool_join(p), 0);
	mpg_pool_free(p);
}
END_TEST

/* Task 0 waits on a pipe that the caller writes only after it got the
 * other results it can get (all but the one queued behind task 0 on its
 * worker): an iterator that saw results only once the call ended never
 * gets there (the suite's timeout says so). */
static int gate_fd = -1;

static int waits_for_the_gate(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t x;
	memcpy(&x, in, 8);
	if (x == 0) {
		char c;
		if (read(gate_fd, &c, 1) != 1)
			return 1;
	}
	return mpg_task_set_result(t, &x, 8);
}

START_TEST(imap_hands_out_results_as_they_complete)
{
	int gate[2];
	ck_assert_int_eq(pipe2(gate, O_CLOEXEC), 0);
	gate_fd = gate[0]; /* the workers inherit it: forked, not exec'd */
	mpg_pool *p = new_pool(2);
	mpg_options *o;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_chunksize(o, 1), 0);
	enum { N = 6 };
	int64_t x[N];
	mpg_buf in[N];
	for (int i = 0; i < N; i++) {
		x[i] = i;
		in[i] = (mpg_buf){&x[i], 8};
	}
	mpg_iter *it;
	ck_assert_int_eq(mpg_imap_unordered(p, waits_for_the_gate, in, N, o, &it), 0);
	size_t index, len;
	const void *d;
	const mpg_error *e;
	bool seen[N] = {false};
	for (int k = 0; k < N - 2; k++) { /* task 0 is still waiting */
		ck_assert_int_eq(mpg_iter_next(it, &index, &d, &len, &e), 1);
		ck_assert_uint_ne(index, 0);
		ck_assert_ptr_null(e);
		ck_assert(!seen[index]);
		seen[index] = true;
	}
	ck_assert_int_eq(write(gate[1], "g", 1), 1);
	for (int k = 0; k < 2; k++) {
		ck_assert_int_eq(mpg_iter_next(it, &index, &d, &len, &e), 1);
		ck_assert(!seen[index]);
		seen[index] = true;
	}
	ck_assert(seen[0]);
	ck_assert_int_eq(mpg_iter_next(it, &index, &d, &len, &e), 0);
	mpg_iter_free(it);
	mpg_options_free(o);
	mpg_pool_free(p);
	close(gate[0]);
	close(gate[1]);
}
END_TEST

START_TEST(imap_freed_early_leaves_the_pool_usable)
{
	mpg_pool *p = new_pool(2);
	enum { N = 100000 };
	static int64_t x[N];
	static mpg_buf in[N];
	for (int i = 0; i < N; i++) {
		x[i] = i;
		in[i] = (mpg_buf){&x[i], 8};
	}
	mpg_iter *it;
	ck_assert_int_eq(mpg_imap_unordered(p, add2, in, N, NULL, &it), 0);
	size_t idx;
	for (int k = 0; k < 3; k++)
		ck_assert_int_eq(mpg_iter_next(it, &idx, NULL, NULL, NULL), 1);
	mpg_iter_free(it);
	int64_t y[4];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, add2, x, 8, 4, y, 8, NULL, &res), 0);
	ck_assert_int_eq(y[3], 5);
	mpg_results_free(res);
	mpg_pool_close(p);
	ck_assert_int_eq(mpg_pool_join(p), 0);
	mpg_pool_free(p);
}
END_TEST

struct cbstate {
	pthread_t caller;
	atomic_int results, errors;
	atomic_bool on_other_thread;
	mpg_pool *pool;
	atomic_int deadlk;
};

static void on_result(size_t index, const void *d, size_t len, void *ud)
{
	struct cbstate *s = ud;
	(void)index;
	if (len == 8 && *(const int64_t *)d == 42)
		atomic_fetch_add(&s->results, 1);
	if (!pthread_equal(pthread_self(), s->caller))
		atomic_store(&s->on_other_thread, true);
	if (mpg_pool_join(s->pool) == -EDEADLK)
		atomic_fetch_add(&s->deadlk, 1);
}

static void on_error(const mpg_error *e, void *ud)
{
	struct cbstate *s = ud;
	if (mpg_error_get_kind(e) == MPG_ERR_RAISED && mpg_error_code(e) == 7)
		atomic_fetch_add(&s->errors, 1);
}

static int maybe_fail(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t x;
	memcpy(&x, in, 8);
	if (x < 0)
		mpg_raise(7, "negative input %" PRId64, x);
	return mpg_task_set_result(t, &x, 8);
}

START_TEST(submit_runs_callbacks_on_the_dispatcher_thread)
{
	mpg_pool *p = new_pool(2);
	struct cbstate s = {.caller = pthread_self(), .pool = p};
	int64_t good = 42, bad = -1;
	mpg_future *f1, *f2;
	ck_assert_int_eq(mpg_submit(p, maybe_fail, &good, 8, NULL, on_result, on_error, &s, &f1), 0);
	ck_assert_int_eq(mpg_submit(p, maybe_fail, &bad, 8, NULL, on_result, on_error, &s, &f2), 0);
	ck_assert_int_eq(mpg_future_wait(f1, -1), 0);
	ck_assert_int_eq(mpg_future_wait(f2, -1), 0);
	const void *d;
	size_t len;
	ck_assert_int_eq(mpg_future_result(f1, &d, &len), 0);
	ck_assert_uint_eq(len, 8);
	ck_assert_int_eq(*(const int64_t *)d, 42);
	ck_assert_int_eq(mpg_future_result(f2, &d, &len), -EIO);
	const mpg_error *e = mpg_future_error(f2);
	ck_assert_str_eq(mpg_error_message(e), "negative input -1");
	ck_assert_int_eq(atomic_load(&s.results), 1);
	ck_assert_int_eq(atomic_load(&s.errors), 1);
	ck_assert(atomic_load(&s.on_other_thread));
	ck_assert_int_eq(atomic_load(&s.deadlk), 1);
	mpg_future_free(f1);
	mpg_future_free(f2);
	mpg_pool_free(p);
}
END_TEST

START_TEST(fire_and_forget_submits_all_end_before_join_returns)
{
	mpg_pool *p = new_pool(2);
	struct cbstate s = {.caller = pthread_self(), .pool = p};
	for (int i = 0; i < 200; i++) {
		int64_t v = i % 2 ? 42 : -1;
		ck_assert_int_eq(mpg_submit(p, maybe_fail, &v, 8, NULL, on_result, on_error, &s, NULL), 0);
	}
	mpg_pool_close(p);
	ck_assert_int_eq(mpg_pool_join(p), 0);
	ck_assert_int_eq(atomic_load(&s.results), 100);
	ck_assert_int_eq(atomic_load(&s.errors), 100);
	mpg_pool_free(p);
}
END_TEST

START_TEST(future_wait_times_out_and_outlives_the_pool)
{
	mpg_pool *p = new_pool(1);
	int64_t v = 42;
	mpg_future *f;
	ck_assert_int_eq(mpg_submit(p, maybe_fail, &v, 8, NULL, NULL, NULL, NULL, &f), 0);
	ck_assert_int_eq(mpg_future_wait(f, -1), 0);
	ck_assert_int_eq(mpg_future_wait(f, 0), 0);
	mpg_pool_free(p); /* the future is still readable */
	const void *d;
	ck_assert_int_eq(mpg_future_result(f, &d, NULL), 0);
	ck_assert_int_eq(*(const int64_t *)d, 42);
	mpg_future_free(f);
}
END_TEST

static int big_result(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	size_t n = *(const uint32_t *)in;
	uint8_t *out = mpg_task_alloc_result(t, n);
	if (!out)
		return -errno;
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(i * 7 + n);
	return 0;
}

START_TEST(large_results_come_back_through_shared_memory)
{
	mpg_pool *p = new_pool(2);
	uint32_t sizes[6] = {10, 3u << 20, 100, 5u << 20, 1u << 20, 0};
	mpg_buf in[6];
	for (int i = 0; i < 6; i++)
		in[i] = (mpg_buf){&sizes[i], 4};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, big_result, in, 6, NULL, &res), 0);
	for (int i = 0; i < 6; i++) {
		const uint8_t *d;
		size_t len;
		ck_assert_int_eq(mpg_results_get(res, i, (const void **)&d, &len), 0);
		ck_assert_uint_eq(len, sizes[i]);
		for (size_t k = 0; k < len; k += 4099)
			ck_assert_uint_eq(d[k], (uint8_t)(k * 7 + sizes[i]));
	}
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_ge(st.shm_bytes, (3u << 20) + (5u << 20) + (1u << 20));
	ck_assert_uint_lt(st.socket_bytes, 1u << 20);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

static atomic_int failures_seen;
static void count_failure(const mpg_error *e, void *ud)
{
	(void)ud;
	if (mpg_error_get_kind(e) == MPG_ERR_RAISED && mpg_error_code(e) == 7)
		atomic_fetch_add(&failures_seen, 1);
}

START_TEST(imap_reports_errors_with_their_index_and_calls_the_error_callback)
{
	mpg_pool *p = new_pool(2);
	enum { N = 1000 };
	static int64_t x[N];
	static mpg_buf in[N];
	for (int i = 0; i < N; i++) {
		x[i] = i % 10 == 3 ? -i : i;
		in[i] = (mpg_buf){&x[i], 8};
	}
	mpg_options *o;
	mpg_options_new(&o);
	mpg_options_set_error_callback(o, count_failure, NULL);
	mpg_options_set_chunksize(o, 7); /* explicit batches */
	atomic_store(&failures_seen, 0);
	mpg_iter *it;
	ck_assert_int_eq(mpg_imap_unordered(p, maybe_fail, in, N, o, &it), 0);
	size_t idx, len, ok = 0, bad = 0;
	const void *d;
	const mpg_error *err;
	while (mpg_iter_next(it, &idx, &d, &len, &err) == 1) {
		if (idx % 10 == 3) {
			ck_assert_ptr_nonnull(err);
			ck_assert_ptr_null(d);
			ck_assert_uint_eq(mpg_error_task(err), idx);
			bad++;
		} else {
			ck_assert_ptr_null(err);
			ck_assert_int_eq(*(const int64_t *)d, (int64_t)idx);
			ok++;
		}
	}
	ck_assert_uint_eq(ok, N - N / 10);
	ck_assert_uint_eq(bad, N / 10);
	mpg_iter_free(it);
	mpg_pool_close(p);
	ck_assert_int_eq(mpg_pool_join(p), 0); /* callbacks have all run */
	ck_assert_int_eq(atomic_load(&failures_seen), N / 10);
	mpg_options_free(o);
	mpg_pool_free(p);
}
END_TEST

START_TEST(large_context_and_many_workers)
{
	mpg_pool *p = new_pool(32);
	size_t clen = 3u << 20;
	struct params *big = calloc(1, clen);
	big->mul = 3;
	big->add = 4;
	mpg_options *o;
	mpg_options_new(&o);
	ck_assert_int_eq(mpg_options_set_context(o, big, clen), 0);
	enum { N = 64 };
	int64_t x[N], y[N];
	for (int i = 0; i < N; i++)
		x[i] = i;
	/* affine() wants exactly sizeof(struct params) of context: all fail,
	 * proving the 3 MiB context arrived whole on 32 workers */
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, affine, x, 8, N, y, 8, o, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), N);
	mpg_results_free(res);
	mpg_options_free(o);
	free(big);
	mpg_pool_close(p);
	ck_assert_int_eq(mpg_pool_join(p), 0);
	mpg_pool_free(p);
	mpk_assert_no_children();
}
END_TEST

static Suite *map_suite(void)
{
	Suite *s = suite_create("map");
	TCase *tc = tcase_create("map");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, map_returns_results_in_input_order);
	tcase_add_test(tc, map_array_writes_results_in_place);
	tcase_add_test(tc, chunksize_one_sends_one_task_per_message);
	tcase_add_test(tc, map_passes_context_bytes_and_pool_userdata);
	tcase_add_test(tc, map_array_reports_a_missing_result);
	tcase_add_test(tc, large_results_come_back_through_shared_memory);
	suite_add_tcase(s, tc);
	tc = tcase_create("imap");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, imap_unordered_yields_every_task_once);
	tcase_add_test(tc, imap_hands_out_results_as_they_complete);
	tcase_add_test(tc, imap_freed_early_leaves_the_pool_usable);
	tcase_add_test(tc, imap_reports_errors_with_their_index_and_calls_the_error_callback);
	tcase_add_test(tc, large_context_and_many_workers);
	suite_add_tcase(s, tc);
	tc = tcase_create("submit");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, submit_runs_callbacks_on_the_dispatcher_thread);
	tcase_add_test(tc, fire_and_forget_submits_all_end_before_join_returns);
	tcase_add_test(tc, future_wait_times_out_and_outlives_the_pool);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(map_suite)
