/* SPDX-License-Identifier: MIT */
/* Every pool logs: mplog_* calls in tasks reach the pool's aggregator,
 * stamped with worker and task; nothing written before a crash is lost;
 * task errors are records too, with their backtraces. */
#include "mpk-test.h"
#include <mpguard.h>
#include <mplog.h>

#include <pthread.h>
#include <sys/mman.h>

struct seen {
	pthread_mutex_t lock;
	int count[1000];
	int worker_ok;
	int last_words;
	int crash_record;
	int bad;
};

static void collect(const mplog_record *r, void *ud)
{
	struct seen *s = ud;
	size_t len;
	const char *m = mplog_record_message(r, &len);
	unsigned idx;
	pthread_mutex_lock(&s->lock);
	if (strstr(m, " says hi") && sscanf(m, "task %u says hi", &idx) == 1 && idx < 1000) {
		s->count[idx]++;
		if (mplog_record_task(r) != (int64_t)idx)
			s->bad++;
		if (mplog_record_worker(r) >= 0 && mplog_record_worker(r) < 2)
			s->worker_ok++;
	} else if (strcmp(m, "last words before the crash") == 0) {
		s->last_words++;
	} else if (strstr(m, "task 500") && strstr(m, "SIGSEGV") &&
		   mplog_record_level(r) == MPLOG_ERROR) {
		const char *bt = mplog_record_kv_get(r, "mpg.backtrace");
		const char *kind = mplog_record_kv_get(r, "mpg.kind");
		if (bt && strstr(bt, "chatty") && kind && strcmp(kind, "signaled") == 0)
			s->crash_record++;
	}
	pthread_mutex_unlock(&s->lock);
}

static int64_t *volatile nowhere;

__attribute__((no_sanitize_undefined))
static int chatty(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	size_t i = mpg_task_index(t);
	if (i == 500) {
		if (mplog_error("last words before the crash") != 0)
			return 1;
		return (int)*nowhere; /* dies right after the call returned */
	}
	if (mplog_info("task %zu says hi", i) != 0)
		return 1;
	int64_t y = (int64_t)i;
	return mpg_task_set_result(t, &y, 8);
}

START_TEST(task_logs_reach_the_aggregator_stamped_with_worker_and_task)
{
	mplog_aggregator *agg;
	mplog_sink *sink;
	struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
	ck_assert_int_eq(mplog_aggregator_new(&agg), 0);
	ck_assert_int_eq(mplog_sink_new_callback(collect, &s, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agg, sink), 0);
	mpg_options *o;
	mpg_pool *p;
	mpg_options_new(&o);
	mpg_options_set_workers(o, 2);
	ck_assert_int_eq(mpg_options_set_log(o, agg), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0); /* before the aggregator's thread */
	mpg_options_free(o);
	ck_assert_int_eq(mplog_aggregator_start(agg), 0);
	ck_assert_ptr_eq(mpg_pool_log(p), agg);
	static int64_t x[1000], y[1000];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, chatty, x, 8, 1000, y, 8, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	mpg_results_free(res);
	mpg_pool_close(p);
	ck_assert_int_eq(mpg_pool_join(p), 0);
	mpg_pool_free(p);
	mplog_aggregator_free(agg); /* drains what the workers wrote */
	for (int i = 0; i < 1000; i++)
		if (i != 500)
			ck_assert_msg(s.count[i] >= 1, "task %d's record is missing", i);
	ck_assert_int_eq(s.bad, 0);
	ck_assert_int_ge(s.worker_ok, 999);
	ck_assert_int_eq(s.last_words, 1);
	ck_assert_int_eq(s.crash_record, 1); /* the pool's own record of the crash */
	mpk_assert_no_children();
}
END_TEST

static int log_result(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	int32_t r = mplog_info("nobody listens");
	return mpg_task_set_result(t, &r, sizeof r);
}

START_TEST(logging_can_be_turned_off_and_is_on_by_default)
{
	mpg_pool *p;
	ck_assert_int_eq(mpg_pool_new(NULL, &p), 0);
	ck_assert_ptr_nonnull(mpg_pool_log(p)); /* the default: stderr */
	mpg_pool_free(p);

	mpg_options *o;
	mpg_options_new(&o);
	mpg_options_set_workers(o, 1);
	ck_assert_int_eq(mpg_options_set_log(o, NULL), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	ck_assert_ptr_null(mpg_pool_log(p));
	int64_t x = 0;
	int32_t r;
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, log_result, &x, 8, 1, &r, sizeof r, NULL, &res), 0);
	ck_assert_int_eq(r, -ENOTCONN);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

struct parent_seen {
	pthread_mutex_t lock;
	int n, pid_ok;
	char last[64];
};

static void collect_parent(const mplog_record *r, void *ud)
{
	struct parent_seen *s = ud;
	size_t len;
	const char *m = mplog_record_message(r, &len);
	if (strncmp(m, "parent ", 7) != 0)
		return;
	pthread_mutex_lock(&s->lock);
	s->n++;
	s->pid_ok += mplog_record_pid(r) == getpid() && mplog_record_worker(r) == -1 &&
		     mplog_record_task(r) == -1 && !*mplog_record_channel(r);
	snprintf(s->last, sizeof s->last, "%s", m);
	pthread_mutex_unlock(&s->lock);
}

static mpg_pool *pool_logging_to(struct parent_seen *s, mplog_aggregator **agg)
{
	mplog_sink *sink;
	ck_assert_int_eq(mplog_aggregator_new(agg), 0);
	ck_assert_int_eq(mplog_sink_new_callback(collect_parent, s, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(*agg, sink), 0);
	mpg_options *o;
	mpg_pool *p;
	mpg_options_new(&o);
	mpg_options_set_workers(o, 1);
	mpg_options_set_log(o, *agg);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	return p;
}

/* mplog_info() in the parent: to the pool's log while a pool exists (the
 * one made last), -ENOTCONN before and after; a default writer the
 * caller set stays theirs. */
START_TEST(parent_records_go_to_the_pools_log)
{
	struct parent_seen a = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct parent_seen b = {.lock = PTHREAD_MUTEX_INITIALIZER};
	ck_assert_int_eq(mplog_info("parent alone"), -ENOTCONN);
	mplog_aggregator *agg_a, *agg_b;
	mpg_pool *pa = pool_logging_to(&a, &agg_a);
	ck_assert_int_eq(mplog_info("parent to a"), 0);
	mpg_pool *pb = pool_logging_to(&b, &agg_b);
	ck_assert_int_eq(mplog_warn("parent still to a"), 0);
	mpg_pool_free(pa);
	ck_assert_int_eq(mplog_info("parent to b"), 0); /* handed on */
	mpg_pool_free(pb);
	ck_assert_int_eq(mplog_info("parent alone again"), -ENOTCONN);
	mplog_aggregator_free(agg_a);
	mplog_aggregator_free(agg_b);
	ck_assert_int_eq(a.n, 2);
	ck_assert_int_eq(a.pid_ok, 2);
	ck_assert_str_eq(a.last, "parent still to a");
	ck_assert_int_eq(b.n, 1);
	ck_assert_int_eq(b.pid_ok, 1);
	ck_assert_str_eq(b.last, "parent to b");

	/* The caller's own default writer is left alone. */
	struct parent_seen c = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct parent_seen d = {.lock = PTHREAD_MUTEX_INITIALIZER};
	mplog_aggregator *agg_c, *agg_d;
	mplog_sink *sink;
	mplog_writer *mine;
	ck_assert_int_eq(mplog_aggregator_new(&agg_c), 0);
	ck_assert_int_eq(mplog_sink_new_callback(collect_parent, &c, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agg_c, sink), 0);
	ck_assert_int_eq(mplog_aggregator_writer(agg_c, &mine), 0);
	mplog_set_default_writer(mine);
	mpg_pool *pd = pool_logging_to(&d, &agg_d);
	ck_assert_int_eq(mplog_info("parent to mine"), 0);
	mpg_pool_free(pd);
	ck_assert_ptr_eq(mplog_default_writer(), mine);
	mplog_writer_free(mine);
	mplog_aggregator_free(agg_c);
	mplog_aggregator_free(agg_d);
	ck_assert_int_eq(c.n, 1);
	ck_assert_int_eq(d.n, 0);
}
END_TEST

struct lines {
	pthread_mutex_t lock;
	int out, err, partial, pid_ok, task_ok;
};

static void collect_lines(const mplog_record *r, void *ud)
{
	struct lines *l = ud;
	size_t len;
	const char *m = mplog_record_message(r, &len);
	pthread_mutex_lock(&l->lock);
	if (mplog_record_stream(r) == MPLOG_STREAM_STDOUT && strncmp(m, "out ", 4) == 0)
		l->out++;
	if (mplog_record_stream(r) == MPLOG_STREAM_STDERR && strncmp(m, "err ", 4) == 0)
		l->err++;
	if (strcmp(m, "no newline before dying") == 0)
		l->partial++;
	/* Each line carries the task that printed it. */
	if (mplog_record_stream(r) != MPLOG_STREAM_LOG &&
	    mplog_record_task(r) == (!strcmp(m, "no newline before dying") ? 7 : atoi(m + 4)))
		l->task_ok++;
	if (mplog_record_pid(r) > 0)
		l->pid_ok++;
	pthread_mutex_unlock(&l->lock);
}

static int prints(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	size_t i = mpg_task_index(t);
	if (i == 7) {
		fputs("no newline before dying", stdout);
		fflush(stdout);
		_exit(9);
	}
	printf("out %zu\n", i);
	fprintf(stderr, "err %zu\n", i);
	return mpg_task_set_result(t, "", 0);
}

START_TEST(captured_stdout_and_stderr_lines_become_records)
{
	mplog_aggregator *agg;
	mplog_sink *sink;
	struct lines l = {.lock = PTHREAD_MUTEX_INITIALIZER};
	ck_assert_int_eq(mplog_aggregator_new(&agg), 0);
	ck_assert_int_eq(mplog_sink_new_callback(collect_lines, &l, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agg, sink), 0);
	mpg_options *o;
	mpg_pool *p;
	mpg_options_new(&o);
	mpg_options_set_workers(o, 2);
	mpg_options_set_log(o, agg);
	ck_assert_int_eq(mpg_options_set_capture(o, MPG_CAPTURE_STDOUT | MPG_CAPTURE_STDERR), 0);
	ck_assert_int_eq(mpg_options_set_capture(o, 4), -EINVAL);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	ck_assert_int_eq(mplog_aggregator_start(agg), 0);
	mpg_buf in[20];
	for (int i = 0; i < 20; i++)
		in[i] = (mpg_buf){"", 0};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, prints, in, 20, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	mpg_results_free(res);
	mpg_pool_free(p);
	mplog_aggregator_free(agg);
	ck_assert_int_ge(l.out, 19); /* re-runs after the exit may add some */
	ck_assert_int_ge(l.err, 19);
	ck_assert_int_eq(l.partial, 1);
	ck_assert_int_eq(l.pid_ok, l.out + l.err + l.partial + 1 /* the pool's error record */);
	ck_assert_int_eq(l.task_ok, l.out + l.err + l.partial);
}
END_TEST

struct retries_seen {
	pthread_mutex_t lock;
	int warn[2], error[2], bad;
};

static void collect_retries(const mplog_record *r, void *ud)
{
	struct retries_seen *s = ud;
	const char *task = mplog_record_kv_get(r, "mpg.task");
	if (!task)
		return;
	int i = atoi(task);
	size_t len;
	const char *m = mplog_record_message(r, &len);
	const char *retrying = mplog_record_kv_get(r, "mpg.retrying");
	const char *bt = mplog_record_kv_get(r, "mpg.backtrace");
	pthread_mutex_lock(&s->lock);
	if (i < 0 || i > 1)
		s->bad++;
	else if (mplog_record_level(r) == MPLOG_WARN && retrying && !strcmp(retrying, "raised") &&
		 !mplog_record_kv_get(r, "mpg.kind") && strstr(m, "will retry (attempt") &&
		 bt && strstr(bt, "flaky"))
		s->warn[i]++;
	else if (mplog_record_level(r) == MPLOG_ERROR && !retrying)
		s->error[i]++;
	else
		s->bad++;
	pthread_mutex_unlock(&s->lock);
}

static int *attempts; /* shared with the workers */

static int flaky(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	size_t i = mpg_task_index(t);
	int n = __atomic_add_fetch(&attempts[i], 1, __ATOMIC_SEQ_CST);
	if (i == 1 || n < 3)
		mpg_raise(5, "attempt %d of task %zu fails", n, i);
	return mpg_task_set_result(t, "", 0);
}

START_TEST(failed_attempts_that_are_retried_are_warnings)
{
	attempts = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(attempts, MAP_FAILED);
	mplog_aggregator *agg;
	mplog_sink *sink;
	struct retries_seen seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
	ck_assert_int_eq(mplog_aggregator_new(&agg), 0);
	ck_assert_int_eq(mplog_sink_new_callback(collect_retries, &seen, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agg, sink), 0);
	mpg_options *o;
	mpg_pool *p;
	mpg_options_new(&o);
	mpg_options_set_workers(o, 2);
	mpg_options_set_log(o, agg);
	ck_assert_int_eq(mpg_options_set_policy(o, MPG_RETRY, 2), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	ck_assert_int_eq(mplog_aggregator_start(agg), 0);
	static const mpg_buf in[2] = {{"", 0}, {"", 0}};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, flaky, in, 2, NULL, &res), 0);
	ck_assert_ptr_null(mpg_results_error(res, 0)); /* third time lucky */
	ck_assert_ptr_nonnull(mpg_results_error(res, 1));
	mpg_results_free(res);
	mpg_pool_free(p);
	mplog_aggregator_free(agg);
	ck_assert_int_eq(seen.bad, 0);
	ck_assert_int_eq(seen.warn[0], 2);
	ck_assert_int_eq(seen.error[0], 0);
	ck_assert_int_eq(seen.warn[1], 2);
	ck_assert_int_eq(seen.error[1], 1);
	munmap(attempts, 4096);
}
END_TEST


/* ---- through the workers' rings ------------------------------------------ */

#define FAMILY_GRAND 200

struct family_seen {
	pthread_mutex_t lock;
	int hi[100];
	int grand, grand_bad;
	long last_words_at, death_at, n;
	int worker_pid;
};

static void collect_family(const mplog_record *r, void *ud)
{
	struct family_seen *s = ud;
	const char *m = mplog_record_message(r, NULL);
	unsigned idx;
	pthread_mutex_lock(&s->lock);
	s->n++;
	if (strstr(m, " says hi") && sscanf(m, "task %u says hi", &idx) == 1 && idx < 100) {
		s->hi[idx]++;
		if (idx == 50)
			s->worker_pid = mplog_record_pid(r);
	} else if (sscanf(m, "grandchild record %u", &idx) == 1) {
		s->grand++;
		if (mplog_record_task(r) != 50 || mplog_record_pid(r) == s->worker_pid)
			s->grand_bad++;
	} else if (strcmp(m, "last words before the kill") == 0) {
		s->last_words_at = s->n;
	} else if (mplog_record_level(r) == MPLOG_ERROR && strstr(m, "task 77") &&
		   mplog_record_kv_get(r, "mpg.kind")) {
		s->death_at = s->n;
	}
	pthread_mutex_unlock(&s->lock);
}

static int family(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	size_t i = mpg_task_index(t);
	if (mplog_info("task %zu says hi", i) != 0)
		return 1;
	if (i == 50) { /* a grandchild logs through the worker's writer */
		pid_t g = fork();
		if (g < 0)
			return 2;
		if (g == 0) {
			for (unsigned k = 0; k < FAMILY_GRAND; k++)
				if (mplog_info("grandchild record %u", k) != 0)
					_exit(1);
			_exit(0);
		}
		/* Its records are counted; its status is not checked (under
		 * valgrind, --error-exitcode applies to it too). */
		if (waitpid(g, NULL, 0) != g)
			return 3;
	}
	if (i == 77) {
		if (mplog_warn("last words before the kill") != 0)
			return 4;
		kill(getpid(), SIGKILL); /* right after the call returned */
	}
	return mpg_task_set_result(t, "", 0);
}

START_TEST(records_of_a_worker_killed_and_of_its_grandchild_all_arrive_before_its_death)
{
	mplog_aggregator *agg;
	mplog_sink *sink;
	struct family_seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
	ck_assert_int_eq(mplog_aggregator_new(&agg), 0);
	ck_assert_int_eq(mplog_sink_new_callback(collect_family, &s, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agg, sink), 0);
	mpg_options *o;
	mpg_pool *p;
	mpg_options_new(&o);
	mpg_options_set_workers(o, 2);
	mpg_options_set_log(o, agg);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	ck_assert_int_eq(mplog_aggregator_start(agg), 0);
	static mpg_buf in[100];
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, family, in, 100, NULL, &res), 0);
	for (size_t i = 0; i < 100; i++)
		if (i != 77 && mpg_results_error(res, i))
			ck_abort_msg("task %zu: %s", i, mpg_error_describe(mpg_results_error(res, i)));
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	ck_assert_int_eq(mpg_error_get_kind(mpg_results_error(res, 77)), MPG_ERR_KILLED);
	mpg_results_free(res);
	mpg_pool_free(p);
	mplog_aggregator_free(agg);
	for (int i = 0; i < 100; i++)
		ck_assert_msg(s.hi[i] >= 1, "task %d's record is missing", i);
	ck_assert_int_eq(s.grand, FAMILY_GRAND);
	ck_assert_int_eq(s.grand_bad, 0);
	/* The pool's record of the death comes after the worker's last
	 * words: it drains the rings before its own records. */
	ck_assert_int_gt(s.last_words_at, 0);
	ck_assert_int_gt(s.death_at, s.last_words_at);
	mpk_assert_no_children();
}
END_TEST

static Suite *pool_log_suite(void)
{
	Suite *s = suite_create("pool-log");
	TCase *tc = tcase_create("pool-log");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, task_logs_reach_the_aggregator_stamped_with_worker_and_task);
	tcase_add_test(tc, logging_can_be_turned_off_and_is_on_by_default);
	tcase_add_test(tc, parent_records_go_to_the_pools_log);
	tcase_add_test(tc, captured_stdout_and_stderr_lines_become_records);
	tcase_add_test(tc, failed_attempts_that_are_retried_are_warnings);
	tcase_add_test(tc, records_of_a_worker_killed_and_of_its_grandchild_all_arrive_before_its_death);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(pool_log_suite)
