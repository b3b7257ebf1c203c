/* SPDX-License-Identifier: MIT */
/* The API's conveniences and conventions: submitted tasks' numbers,
 * mpg_pool_wait(), what mpg_pool_worker_info() says a worker runs, sized
 * structs, *_freep, the default pool, mpg_results_errors(), and the sign
 * of the codes the library makes. */
#include "mpk-test.h"
#include <mpguard.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

static mpg_pool *new_pool(unsigned workers)
{
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, workers), 0);
	ck_assert_int_eq(mpg_options_set_control(o, 0), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	return p;
}

/* Pipes made before the pools, so workers have them: a task blocks on
 * `go` until the test lets it, after telling `started` it runs. */
static int go[2] = {-1, -1}, started[2] = {-1, -1};

static void make_pipes(void)
{
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(started, O_CLOEXEC), 0);
}

static int blocking_task(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	char c = 's';
	if (write(started[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
		return EIO;
	size_t i = mpg_task_index(t);
	return mpg_task_set_result(t, &i, sizeof i);
}

static void wait_started(void)
{
	char c;
	ck_assert_int_eq(read(started[0], &c, 1), 1);
}

static void let_go(void)
{
	ck_assert_int_eq(write(go[1], "g", 1), 1);
}

/* Its result: its own index as mpg_task_index() gives it. */
static int echo_index(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	size_t i = mpg_task_index(t);
	return mpg_task_set_result(t, &i, sizeof i);
}

/* Fails, naming its index in the message. */
static int fail_index(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	mpg_raise(EDOM, "I am task %zu", mpg_task_index(t));
	return 0;
}

struct seen {
	pthread_mutex_t lock;
	size_t result_index[16], result_value[16], nresults;
	size_t error_task[16], nerrors;
	char error_text[16][160];
	atomic_size_t ended;
};

static void on_result(size_t index, const void *data, size_t len, void *ud)
{
	struct seen *s = ud;
	size_t v = 0;
	if (len == sizeof v)
		memcpy(&v, data, sizeof v);
	pthread_mutex_lock(&s->lock);
	s->result_index[s->nresults] = index;
	s->result_value[s->nresults++] = v;
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_add(&s->ended, 1);
}

static void on_error(const mpg_error *e, void *ud)
{
	struct seen *s = ud;
	pthread_mutex_lock(&s->lock);
	s->error_task[s->nerrors] = mpg_error_task(e);
	snprintf(s->error_text[s->nerrors++], sizeof s->error_text[0], "%s",
		 mpg_error_describe(e));
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_add(&s->ended, 1);
}

START_TEST(submitted_tasks_have_numbers_of_their_own)
{
	mpg_pool *p = new_pool(2);
	struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
	mpg_future *f[7];
	/* 0..3 fail, 4..6 succeed: each is known by its own number. */
	for (int k = 0; k < 7; k++)
		ck_assert_int_eq(mpg_submit(p, k < 4 ? fail_index : echo_index, "x", 1, NULL,
					    on_result, on_error, &s, &f[k]), 0);
	for (int k = 0; k < 7; k++) {
		ck_assert_uint_eq(mpg_future_task(f[k]), (size_t)k);
		ck_assert_int_eq(mpg_future_wait(f[k], -1), 0);
	}
	ck_assert_uint_eq(s.nerrors, 4);
	ck_assert_uint_eq(s.nresults, 3);
	bool errs[4] = {0};
	for (size_t i = 0; i < 4; i++) {
		size_t t = s.error_task[i];
		ck_assert_uint_lt(t, 4);
		errs[t] = true;
		char want[64];
		snprintf(want, sizeof want, "task %zu raised error %d", t, EDOM);
		ck_assert_msg(strncmp(s.error_text[i], want, strlen(want)) == 0, "%s", s.error_text[i]);
		snprintf(want, sizeof want, "I am task %zu", t);
		ck_assert_ptr_nonnull(strstr(s.error_text[i], want));
	}
	ck_assert(errs[0] && errs[1] && errs[2] && errs[3]);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_uint_ge(s.result_index[i], 4);
		ck_assert_uint_eq(s.result_value[i], s.result_index[i]); /* mpg_task_index() */
	}
	for (int k = 0; k < 4; k++)
		ck_assert_uint_eq(mpg_error_task(mpg_future_error(f[k])), (size_t)k);
	for (int k = 0; k < 7; k++)
		mpg_future_free(f[k]);
	/* A map's tasks are still numbered from 0 within the call. */
	mpg_buf in[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, echo_index, in, 3, NULL, &res), 0);
	for (size_t i = 0; i < 3; i++) {
		const void *d;
		ck_assert_int_eq(mpg_results_get(res, i, &d, NULL), 0);
		ck_assert_uint_eq(*(const size_t *)d, i);
	}
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

/* Logs "hello from N" (N: its index), then fails if its input says so. */
static int log_and_maybe_fail(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	if (mplog_info("hello from %zu", mpg_task_index(t)) != 0)
		return EIO;
	return *(const char *)in == 'f' ? EDOM : echo_index(t, in, 1, NULL);
}

struct records {
	pthread_mutex_t lock;
	int hello[8];      /* per number: records whose stamp matched it */
	int hello_bad;     /* records stamped with another task */
	int failed[8];     /* the pool's ERROR records, by mpg.task */
};

static void collect(const mplog_record *r, void *ud)
{
	struct records *s = ud;
	const char *m = mplog_record_message(r, NULL);
	unsigned n;
	pthread_mutex_lock(&s->lock);
	if (sscanf(m, "hello from %u", &n) == 1 && n < 8) {
		if (mplog_record_task(r) == (int64_t)n)
			s->hello[n]++;
		else
			s->hello_bad++;
	}
	const char *task = mplog_record_kv_get(r, "mpg.task");
	if (mplog_record_level(r) == MPLOG_ERROR && task && sscanf(task, "%u", &n) == 1 && n < 8)
		s->failed[n]++;
	pthread_mutex_unlock(&s->lock);
}

START_TEST(submitted_tasks_are_logged_under_their_numbers)
{
	mplog_aggregator *agg;
	mplog_sink *sink;
	struct records s = {.lock = PTHREAD_MUTEX_INITIALIZER};
	ck_assert_int_eq(mplog_aggregator_new(&agg), 0);
	ck_assert_int_eq(mplog_sink_new_callback(collect, &s, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agg, sink), 0);
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 2), 0);
	ck_assert_int_eq(mpg_options_set_control(o, 0), 0);
	ck_assert_int_eq(mpg_options_set_log(o, agg), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	ck_assert_int_eq(mplog_aggregator_start(agg), 0);
	for (int k = 0; k < 6; k++)
		ck_assert_int_eq(mpg_submit(p, log_and_maybe_fail, k % 2 ? "f" : "o", 1, NULL, NULL,
					    NULL, NULL, NULL), 0);
	ck_assert_int_eq(mpg_pool_wait(p, -1), 0);
	mpg_pool_free(p);
	mplog_aggregator_free(agg); /* drains every record */
	ck_assert_int_eq(s.hello_bad, 0);
	for (int k = 0; k < 6; k++) {
		ck_assert_msg(s.hello[k] == 1, "task %d: %d records", k, s.hello[k]);
		ck_assert_int_eq(s.failed[k], k % 2);
	}
}
END_TEST

START_TEST(pool_wait_waits_for_submitted_tasks_and_keeps_the_pool_open)
{
	make_pipes();
	mpg_pool *p = new_pool(2);
	struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
	ck_assert_int_eq(mpg_pool_wait(p, -1), 0); /* nothing submitted */
	for (int k = 0; k < 5; k++)
		ck_assert_int_eq(mpg_submit(p, k == 2 ? fail_index : echo_index, "x", 1, NULL,
					    on_result, on_error, &s, NULL), 0);
	ck_assert_int_eq(mpg_pool_wait(p, -1), 0);
	ck_assert_uint_eq(atomic_load(&s.ended), 5); /* every callback has run */

	/* A task that does not end: the wait times out, the pool stays open. */
	ck_assert_int_eq(mpg_submit(p, blocking_task, "x", 1, NULL, on_result, on_error, &s,
				    NULL), 0);
	wait_started();
	ck_assert_int_eq(mpg_pool_wait(p, 20), -ETIMEDOUT);
	ck_assert_int_eq(mpg_pool_wait(p, 0), -ETIMEDOUT);
	ck_assert_int_eq(mpg_submit(p, echo_index, "x", 1, NULL, on_result, on_error, &s, NULL), 0);
	let_go();
	ck_assert_int_eq(mpg_pool_wait(p, -1), 0);
	ck_assert_uint_eq(atomic_load(&s.ended), 7);
	ck_assert_int_eq(mpg_pool_wait(NULL, 0), -EINVAL);
	mpg_pool_free(p);
}
END_TEST

static atomic_int wait_in_callback = 1;

static void wait_from_callback(size_t index, const void *data, size_t len, void *ud)
{
	(void)index; (void)data; (void)len;
	atomic_store(&wait_in_callback, mpg_pool_wait(ud, 0));
}

START_TEST(pool_wait_in_a_callback_is_a_deadlock)
{
	mpg_pool *p = new_pool(1);
	mpg_future *f;
	ck_assert_int_eq(mpg_submit(p, echo_index, "x", 1, NULL, wait_from_callback, NULL, p, &f), 0);
	ck_assert_int_eq(mpg_future_wait(f, -1), 0);
	ck_assert_int_eq(atomic_load(&wait_in_callback), -EDEADLK);
	mpg_future_free(f);
	mpg_pool_free(p);
}
END_TEST

START_TEST(worker_info_says_which_task_a_worker_runs)
{
	make_pipes();
	mpg_pool *p = new_pool(1);
	mpg_worker_info wi = {.size = sizeof wi};
	ck_assert_int_eq(mpg_pool_worker_info(p, 0, &wi), 0);
	ck_assert_uint_eq(wi.size, sizeof wi);
	ck_assert_int_eq(wi.state, MPG_WORKER_IDLE);
	ck_assert_uint_eq(wi.call, 0);
	ck_assert_int_gt(wi.pid, 0);

	/* Submitted task number 2 (the third), blocked. */
	for (int k = 0; k < 2; k++)
		ck_assert_int_eq(mpg_submit(p, echo_index, "x", 1, NULL, NULL, NULL, NULL, NULL), 0);
	mpg_future *f;
	ck_assert_int_eq(mpg_submit(p, blocking_task, "x", 1, NULL, NULL, NULL, NULL, &f), 0);
	wait_started();
	ck_assert_int_eq(mpg_pool_worker_info(p, 0, &wi), 0);
	ck_assert_int_eq(wi.state, MPG_WORKER_BUSY);
	ck_assert_uint_eq(wi.task, 2);
	uint64_t submit_call = wi.call;
	ck_assert_uint_gt(submit_call, 0);
	let_go();
	ck_assert_int_eq(mpg_future_wait(f, -1), 0);
	mpg_future_free(f);

	/* Input 2 of an unordered map, a later call. */
	mpg_options *o;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_chunksize(o, 1), 0);
	mpg_buf in[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
	mpg_iter *it;
	ck_assert_int_eq(mpg_imap_unordered(p, blocking_task, in, 3, o, &it), 0);
	mpg_options_free(o);
	for (int k = 0; k < 2; k++) {
		wait_started();
		ck_assert_int_eq(mpg_pool_worker_info(p, 0, &wi), 0);
		ck_assert_int_eq(wi.state, MPG_WORKER_BUSY);
		ck_assert_uint_eq(wi.task, (size_t)k);
		ck_assert_uint_gt(wi.call, submit_call);
		let_go();
	}
	wait_started();
	let_go();
	size_t idx;
	while (mpg_iter_next(it, &idx, NULL, NULL, NULL) == 1)
		;
	mpg_iter_free(it);
	mpg_pool_free(p);
}
END_TEST

START_TEST(sized_structs_are_filled_no_further_than_the_caller_says)
{
	mpg_pool *p = new_pool(1);
	mpg_stats st = {0};
	ck_assert_int_eq(mpg_pool_stats(p, &st), -EINVAL); /* size forgotten */
	mpg_worker_info wi = {0};
	ck_assert_int_eq(mpg_pool_worker_info(p, 0, &wi), -EINVAL);

	/* A program built against a newer header: more room than we know. */
	struct {
		mpg_stats st;
		unsigned char later[32];
	} big;
	memset(&big, 0xa5, sizeof big);
	big.st.size = sizeof big;
	ck_assert_int_eq(mpg_pool_stats(p, &big.st), 0);
	ck_assert_uint_eq(big.st.size, sizeof(mpg_stats));
	ck_assert_uint_ge(big.st.workers_started, 1);
	for (size_t i = 0; i < sizeof big.later; i++)
		ck_assert_uint_eq(big.later[i], 0xa5); /* fields this library lacks: untouched */

	struct {
		mpg_worker_info wi;
		unsigned char later[16];
	} wbig;
	memset(&wbig, 0xa5, sizeof wbig);
	wbig.wi.size = sizeof wbig;
	ck_assert_int_eq(mpg_pool_worker_info(p, 0, &wbig.wi), 0);
	ck_assert_uint_eq(wbig.wi.size, sizeof(mpg_worker_info));
	ck_assert_int_gt(wbig.wi.pid, 0);
	for (size_t i = 0; i < sizeof wbig.later; i++)
		ck_assert_uint_eq(wbig.later[i], 0xa5);
	mpg_pool_free(p);
}
END_TEST

START_TEST(freep_helpers_release_everything_at_scope_end)
{
	int fds = mpk_count_fds();
	{
		__attribute__((cleanup(mpg_options_freep))) mpg_options *o = NULL;
		__attribute__((cleanup(mpg_pool_freep))) mpg_pool *p = NULL;
		__attribute__((cleanup(mpg_results_freep))) mpg_results *res = NULL;
		__attribute__((cleanup(mpg_iter_freep))) mpg_iter *it = NULL;
		__attribute__((cleanup(mpg_future_freep))) mpg_future *f = NULL;
		__attribute__((cleanup(mpg_supervisor_freep))) mpg_supervisor *sup = NULL;
		ck_assert_int_eq(mpg_options_new(&o), 0);
		ck_assert_int_eq(mpg_options_set_workers(o, 1), 0);
		ck_assert_int_eq(mpg_options_set_control(o, 0), 0);
		ck_assert_int_eq(mpg_pool_new(o, &p), 0);
		mpg_buf in[2] = {{"a", 1}, {"b", 1}};
		ck_assert_int_eq(mpg_map(p, echo_index, in, 2, NULL, &res), 0);
		ck_assert_int_eq(mpg_imap_unordered(p, echo_index, in, 2, NULL, &it), 0);
		ck_assert_int_eq(mpg_submit(p, echo_index, "x", 1, NULL, NULL, NULL, NULL, &f), 0);
		ck_assert_int_eq(mpg_supervisor_new(&sup), 0);
	}
	/* NULL handles are fine too. */
	mpg_pool_freep(NULL);
	{
		__attribute__((cleanup(mpg_pool_freep))) mpg_pool *none = NULL;
		(void)none;
	}
	mpk_assert_no_children();
	ck_assert_int_eq(mpk_count_fds(), fds);
}
END_TEST

static int square_or_fail(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t x;
	memcpy(&x, in, sizeof x);
	if (x % 5 == 3)
		mpg_raise(EDOM, "%lld is not welcome", (long long)x);
	if (x % 5 == 4)
		return 0; /* no result: the library's own failure */
	int64_t *y = mpg_task_alloc_result(t, sizeof *y);
	if (!y)
		return errno;
	*y = x * x;
	return 0;
}

START_TEST(the_default_pool_maps_an_array_and_says_which_failed)
{
	mpg_pool *p, *again;
	ck_assert_int_eq(mpg_pool_default(&p), 0);
	ck_assert_int_eq(mpg_pool_default(&again), 0);
	ck_assert_ptr_eq(p, again);
	ck_assert_int_eq(mpg_pool_default(NULL), -EINVAL);

	enum { N = 20 };
	int64_t x[N], y[N];
	for (int i = 0; i < N; i++)
		x[i] = i;
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, square_or_fail, x, sizeof x[0], N, y, sizeof y[0], NULL,
				       &res), 0);
	size_t n;
	const mpg_error *const *errs = mpg_results_errors(res, &n);
	ck_assert_uint_eq(n, 8);
	ck_assert_uint_eq(mpg_results_failed(res), n);
	for (size_t k = 0; k < n; k++) {
		size_t i = mpg_error_task(errs[k]);
		ck_assert_uint_eq(i, 5 * (k / 2) + 3 + k % 2); /* 3, 4, 8, 9, ... in order */
		ck_assert_int_eq(mpg_error_get_kind(errs[k]), MPG_ERR_RAISED);
		/* Codes are positive errnos, the library's own too. */
		ck_assert_int_eq(mpg_error_code(errs[k]), i % 5 == 3 ? EDOM : ENODATA);
		ck_assert_ptr_eq(errs[k], mpg_results_error(res, i));
	}
	for (int i = 0; i < N; i++)
		if (i % 5 < 3)
			ck_assert_int_eq(y[i], (int64_t)i * i);
	mpg_results_free(res);

	/* Without results: how many failed. */
	ck_assert_int_eq(mpg_map_array(p, square_or_fail, x, sizeof x[0], N, y, sizeof y[0], NULL,
				       NULL), 8);
	ck_assert_int_eq(y[5], 25);
	ck_assert_int_eq(y[8], 0); /* failed: zeroed */
	mpg_buf in[2] = {{&x[3], 8}, {&x[5], 8}};
	ck_assert_int_eq(mpg_map(p, square_or_fail, in, 2, NULL, NULL), 1);

	/* The library's: nobody may stop it, freeing it does nothing. */
	ck_assert_int_eq(mpg_pool_close(p), -EPERM);
	ck_assert_int_eq(mpg_pool_join(p), -EPERM);
	ck_assert_int_eq(mpg_pool_terminate(p), -EPERM);
	mpg_pool_free(p);
	ck_assert_int_eq(mpg_map_array(p, square_or_fail, x, sizeof x[0], 3, y, sizeof y[0], NULL,
				       &res), 0);
	ck_assert_ptr_null(mpg_results_errors(res, &n));
	ck_assert_uint_eq(n, 0);
	mpg_results_free(res);
}
END_TEST

/* More records than the log pipe holds: some are still in it when the
 * task ends. */
static int say_bye(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	for (int i = 0; i < 3000; i++)
		if (mplog_info("record %d of a chatty task, padded to make it long enough", i) != 0)
			return EIO;
	if (mplog_info("bye from the default pool") != 0)
		return EIO;
	return mpg_task_set_result(t, "k", 1);
}

/* A program that uses the default pool and exits without a word: the
 * pool stops at exit() and its log is written out first. The program is
 * forked from one with a default pool: it gets its own. */
START_TEST(the_default_pool_stops_at_exit_with_its_log_written)
{
#ifdef __SANITIZE_ADDRESS__
	/* The child, forked from this threaded process, makes a pool: glibc's
	 * malloc is fork-safe, ASan's allocator is not (a lock a parent thread
	 * held at the fork stays held: seen hanging). The plain and valgrind
	 * runs check this case. */
	fprintf(stderr, "the_default_pool_stops_at_exit_with_its_log_written: SKIP under "
			"AddressSanitizer (its allocator is not fork-safe in a threaded process)\n");
	return;
#endif
	mpg_pool *parents;
	ck_assert_int_eq(mpg_pool_default(&parents), 0);
	int err[2];
	ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(err[1], STDERR_FILENO);
		mpg_pool *p;
		mpg_buf in[1] = {{"x", 1}};
		mpg_results *res;
		if (mpg_pool_default(&p) < 0 || p == parents ||
		    mpg_map(p, say_bye, in, 1, NULL, &res) < 0 || mpg_results_failed(res) != 0)
			_exit(3);
		exit(0); /* no free: the library's atexit handler stops the pool */
	}
	close(err[1]);
	static char buf[4 << 20];
	size_t got = 0;
	ssize_t n;
	while (got < sizeof buf - 1 && (n = read(err[0], buf + got, sizeof buf - 1 - got)) != 0)
		if (n > 0)
			got += (size_t)n;
	buf[got] = '\0';
	close(err[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_msg(strstr(buf, "record 2999 of"), "%zu bytes of stderr", got);
	ck_assert_msg(strstr(buf, "bye from the default pool"), "%zu bytes of stderr", got);
	mpg_pool *again; /* the parent's is still its own */
	ck_assert_int_eq(mpg_pool_default(&again), 0);
	ck_assert_ptr_eq(again, parents);
}
END_TEST

static int return_negative_errno(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)t; (void)in; (void)len; (void)ud;
	return -EMSGSIZE; /* as `return r;` after a library call */
}

START_TEST(a_returned_negative_errno_is_named_and_kept_as_is)
{
	mpg_pool *p = new_pool(1);
	mpg_buf in[1] = {{"a", 1}};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, return_negative_errno, in, 1, NULL, &res), 0);
	const mpg_error *e = mpg_results_error(res, 0);
	ck_assert_int_eq(mpg_error_code(e), -EMSGSIZE);
	ck_assert_msg(strstr(mpg_error_message(e), "-EMSGSIZE"), "%s", mpg_error_message(e));
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

static Suite *api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("api");
	tcase_add_test(tc, submitted_tasks_have_numbers_of_their_own);
	tcase_add_test(tc, submitted_tasks_are_logged_under_their_numbers);
	tcase_add_test(tc, pool_wait_waits_for_submitted_tasks_and_keeps_the_pool_open);
	tcase_add_test(tc, pool_wait_in_a_callback_is_a_deadlock);
	tcase_add_test(tc, worker_info_says_which_task_a_worker_runs);
	tcase_add_test(tc, sized_structs_are_filled_no_further_than_the_caller_says);
	tcase_add_test(tc, freep_helpers_release_everything_at_scope_end);
	tcase_add_test(tc, the_default_pool_maps_an_array_and_says_which_failed);
	tcase_add_test(tc, the_default_pool_stops_at_exit_with_its_log_written);
	tcase_add_test(tc, a_returned_negative_errno_is_named_and_kept_as_is);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(api_suite)
