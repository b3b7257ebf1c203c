/* SPDX-License-Identifier: MIT */
/* Pool lifecycle: no zombie, no leaked fd, close/join and terminate,
 * workers die with the parent, calls from workers and forked children are
 * refused, worker replacement from a multithreaded parent. */
#include "mpk-test.h"
#include <mpguard.h>

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

static int64_t input_of(const void *in) { int64_t x; memcpy(&x, in, 8); return x; }

static int work(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t x = input_of(in);
	if (x == -4)
		raise(SIGSEGV);
	if (x == -3)
		_exit(3);
	return mpg_task_set_result(t, &x, 8);
}

START_TEST(free_leaves_no_zombie_and_no_extra_fd)
{
	int before = mpk_count_fds();
	for (int round = 0; round < 3; round++) {
		mpg_pool *p = new_pool(3);
		int64_t x[5] = {1, -4, 3, -3, 5}, y[5];
		mpg_results *res;
		ck_assert_int_eq(mpg_map_array(p, work, x, 8, 5, y, 8, NULL, &res), 0);
		ck_assert_uint_eq(mpg_results_failed(res), 2);
		mpg_results_free(res);
		if (round == 0) {
			mpg_pool_close(p);
			ck_assert_int_eq(mpg_pool_join(p), 0);
		} else if (round == 1) {
			ck_assert_int_eq(mpg_pool_terminate(p), 0);
		}
		mpg_pool_free(p);
		ck_assert_int_eq(mpk_count_fds(), before);
		mpk_assert_no_children();
	}
}
END_TEST

static atomic_int done_count;
static void count_done(size_t i, const void *d, size_t l, void *ud)
{
	(void)i; (void)d; (void)l; (void)ud;
	atomic_fetch_add(&done_count, 1);
}

static int echo_task(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)ud;
	return mpg_task_set_result(t, in, len);
}

START_TEST(output_buffered_before_the_pool_is_printed_once)
{
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	fflush(stdout);
	int saved = fcntl(1, F_DUPFD_CLOEXEC, 3);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(fds[1], 1), 1);
	close(fds[1]);
	printf("said once|"); /* no newline: still in stdout's buffer */
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 2), 0);
	ck_assert_int_eq(mpg_options_set_max_tasks_per_worker(o, 1), 0); /* more exits */
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	static const mpg_buf in[4] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, echo_task, in, 4, NULL, &res), 0);
	mpg_results_free(res);
	mpg_pool_free(p);
	fflush(stdout);
	ck_assert_int_eq(dup2(saved, 1), 1); /* the pipe's last writer goes */
	close(saved);
	char buf[256];
	size_t got = 0;
	ssize_t n;
	while ((n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fds[0]);
	ck_assert_str_eq(buf, "said once|");
}
END_TEST

static atomic_int reader_tid;

static void *reads_a_line(void *arg)
{
	char line[64];
	atomic_store(&reader_tid, (int)gettid());
	*(bool *)arg = fgets(line, sizeof line, stdin) != NULL; /* holds stdin's lock */
	return NULL;
}

/* The reader is in read(2) on fd 0, inside fgets(): it has the lock. */
static bool reader_blocked(void)
{
	char path[64], buf[64] = "";
	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", atomic_load(&reader_tid));
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool in_read = fgets(buf, sizeof buf, f) && strncmp(buf, "0 0x0 ", 6) == 0;
	fclose(f);
	return in_read;
}

/* A thread waiting for input on stdin holds its FILE lock: creating a
 * pool must not wait for it (it once did, flushing every stream). */
START_TEST(a_pool_starts_while_a_thread_waits_on_stdin)
{
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	int saved = fcntl(0, F_DUPFD_CLOEXEC, 3);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(fds[0], 0), 0);
	bool got = false;
	pthread_t th;
	atomic_store(&reader_tid, 0);
	ck_assert_int_eq(pthread_create(&th, NULL, reads_a_line, &got), 0);
	while (!atomic_load(&reader_tid) || !reader_blocked())
		poll(NULL, 0, 1); /* until it waits in read(2) */
	mpg_pool *p = new_pool(1); /* the test times out if this waits */
	mpg_pool_free(p);
	ck_assert_int_eq(write(fds[1], "go\n", 3), 3);
	pthread_join(th, NULL);
	ck_assert(got);
	ck_assert_int_eq(dup2(saved, 0), 0);
	close(saved);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(close_and_join_finish_queued_work)
{
	mpg_pool *p = new_pool(2);
	atomic_store(&done_count, 0);
	for (int64_t i = 0; i < 500; i++)
		ck_assert_int_eq(mpg_submit(p, work, &i, 8, NULL, count_done, NULL, NULL, NULL), 0);
	ck_assert_int_eq(mpg_pool_close(p), 0);
	ck_assert_int_eq(mpg_pool_join(p), 0);
	ck_assert_int_eq(atomic_load(&done_count), 500);
	mpk_assert_no_children();
	mpg_pool_free(p);
}
END_TEST

static int block_fd = -1;
static int blocks(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)t; (void)in; (void)len; (void)ud;
	char c;
	(void)!read(block_fd, &c, 1); /* never written: blocks until killed */
	return 0;
}

static atomic_int cancelled;
static void count_cancelled(const mpg_error *e, void *ud)
{
	(void)ud;
	if (mpg_error_get_kind(e) == MPG_ERR_CANCELLED)
		atomic_fetch_add(&cancelled, 1);
}

START_TEST(terminate_stops_now_and_cancels_what_did_not_end)
{
	int pfd[2];
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	block_fd = pfd[0];
	mpg_pool *p = new_pool(2);
	atomic_store(&cancelled, 0);
	mpg_future *f[10];
	int64_t v = 0;
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(mpg_submit(p, blocks, &v, 8, NULL, NULL, count_cancelled, NULL, &f[i]), 0);
	ck_assert_int_eq(mpg_future_wait(f[0], 0), -ETIMEDOUT);
	ck_assert_int_eq(mpg_pool_terminate(p), 0);
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(mpg_future_wait(f[i], 0), 0);
		ck_assert_int_eq(mpg_future_result(f[i], NULL, NULL), -EIO);
		ck_assert_int_eq(mpg_error_get_kind(mpg_future_error(f[i])), MPG_ERR_CANCELLED);
		mpg_future_free(f[i]);
	}
	ck_assert_int_eq(atomic_load(&cancelled), 10);
	mpk_assert_no_children();
	mpg_pool_free(p);
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

static int uses_pool_inside(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	mpg_pool *outer; /* the parent's pool pointer, passed by value */
	memcpy(&outer, in, sizeof outer);
	mpg_pool *inner;
	mpg_results *res;
	int64_t x = 1, y;
	int32_t codes[4] = {
		mpg_pool_new(NULL, &inner),
		mpg_map_array(outer, work, &x, 8, 1, &y, 8, NULL, &res),
		mpg_submit(outer, work, &x, 8, NULL, NULL, NULL, NULL, NULL),
		mpg_pool_close(outer),
	};
	return mpg_task_set_result(t, codes, sizeof codes);
}

START_TEST(pool_calls_from_inside_a_worker_return_echild)
{
	mpg_pool *p = new_pool(1);
	mpg_buf in = {&p, sizeof p};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, uses_pool_inside, &in, 1, NULL, &res), 0);
	const int32_t *codes;
	size_t len;
	ck_assert_int_eq(mpg_results_get(res, 0, (const void **)&codes, &len), 0);
	ck_assert_uint_eq(len, 4 * sizeof(int32_t));
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(codes[i], -ECHILD);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(a_forked_child_cannot_use_the_parents_pool)
{
	mpg_pool *p = new_pool(1);
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		int64_t x = 1, y;
		mpg_results *res;
		int r1 = mpg_map_array(p, work, &x, 8, 1, &y, 8, NULL, &res);
		int r2 = mpg_pool_close(p);
		mpg_pool_free(p); /* a no-op in the child */
		_exit(r1 == -ECHILD && r2 == -ECHILD ? 0 : 1);
	}
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	int64_t x = 5, y = 0;
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, work, &x, 8, 1, &y, 8, NULL, &res), 0);
	ck_assert_int_eq(y, 5);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(parent_killed_leaves_no_worker_alive)
{
	int pfd[2];
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	pid_t parent = fork();
	ck_assert_int_ge(parent, 0);
	if (parent == 0) {
		close(pfd[0]);
		mpg_options *o;
		mpg_pool *p;
		mpg_options_new(&o);
		mpg_options_set_workers(o, 3);
		if (mpg_pool_new(o, &p) < 0)
			_exit(1);
		pid_t pids[3];
		for (unsigned i = 0; i < 3; i++)
			pids[i] = mpg_pool_worker_pid(p, i);
		if (write(pfd[1], pids, sizeof pids) != sizeof pids)
			_exit(1);
		for (;;)
			pause(); /* killed by the test */
	}
	close(pfd[1]);
	pid_t pids[3];
	ck_assert_int_eq(read(pfd[0], pids, sizeof pids), sizeof pids);
	close(pfd[0]);
	int pidfds[3];
	for (int i = 0; i < 3; i++) {
		ck_assert_int_gt(pids[i], 0);
		pidfds[i] = pidfd_open(pids[i], 0);
		ck_assert_int_ge(pidfds[i], 0);
	}
	ck_assert_int_eq(kill(parent, SIGKILL), 0);
	int status;
	ck_assert_int_eq(waitpid(parent, &status, 0), parent);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	for (int i = 0; i < 3; i++) {
		/* event-driven; the bound only keeps a broken build from hanging */
		ck_assert_msg(mpk_wait_gone(pidfds[i], 30000), "worker %d outlived its parent", pids[i]);
		close(pidfds[i]);
	}
}
END_TEST

static atomic_bool stop_threads;
static void *malloc_stdio_loop(void *arg)
{
	FILE *devnull = arg;
	while (!atomic_load(&stop_threads)) {
		void *m = malloc(1000);
		fprintf(devnull, "%p\n", m);
		free(m);
	}
	return NULL;
}

START_TEST(crashing_workers_are_replaced_while_parent_threads_hold_locks)
{
	mpg_pool *p = new_pool(2);
	FILE *devnull = fopen("/dev/null", "we");
	pthread_t th[8];
	atomic_store(&stop_threads, false);
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, malloc_stdio_loop, devnull);
	enum { CRASHES = 1000 };
	static int64_t x[CRASHES * 2], y[CRASHES * 2];
	for (int i = 0; i < CRASHES * 2; i++)
		x[i] = i % 2 ? -4 : i;
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, work, x, 8, CRASHES * 2, y, 8, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), CRASHES);
	mpg_results_free(res);
	atomic_store(&stop_threads, true);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	fclose(devnull);
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_eq(st.workers_replaced, CRASHES);
	mpg_pool_free(p);
	mpk_assert_no_children();
}
END_TEST

START_TEST(two_pools_do_not_hold_each_others_workers)
{
	mpg_pool *a = new_pool(2);
	mpg_pool *b = new_pool(2);
	mpg_pool_close(a);
	ck_assert_int_eq(mpg_pool_join(a), 0); /* would hang if b's processes held a's sockets */
	int64_t x = 9, y;
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(b, work, &x, 8, 1, &y, 8, NULL, &res), 0);
	ck_assert_int_eq(y, 9);
	mpg_results_free(res);
	mpg_pool_close(b);
	ck_assert_int_eq(mpg_pool_join(b), 0);
	mpg_pool_free(a);
	mpg_pool_free(b);
	mpk_assert_no_children();
}
END_TEST

START_TEST(a_users_forked_child_does_not_keep_workers_alive)
{
	mpg_pool *p = new_pool(2);
	int hold[2];
	ck_assert_int_eq(pipe2(hold, O_CLOEXEC), 0);
	pid_t child = fork(); /* a plain fork, no exec: O_CLOEXEC does not apply */
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		close(hold[1]);
		char c;
		(void)!read(hold[0], &c, 1); /* lives until the test lets it go */
		_exit(0);
	}
	close(hold[0]);
	/* would hang if the child held the workers' sockets open */
	mpg_pool_close(p);
	ck_assert_int_eq(mpg_pool_join(p), 0);
	mpg_pool_free(p);
	close(hold[1]);
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

START_TEST(close_fds_keeps_the_programs_pipes_out_of_the_workers)
{
	int pfd[2];
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	mpg_options *o;
	mpg_pool *p;
	mpg_options_new(&o);
	mpg_options_set_workers(o, 2);
	ck_assert_int_eq(mpg_options_set_close_fds(o, 1), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	int64_t x = 4, y;
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, work, &x, 8, 1, &y, 8, NULL, &res), 0); /* workers up */
	mpg_results_free(res);
	close(pfd[1]);
	/* No worker or fork server holds the write end: EOF right away. */
	struct pollfd pl = {.fd = pfd[0], .events = POLLIN};
	ck_assert_int_eq(poll(&pl, 1, 0), 1);
	ck_assert(pl.revents & POLLHUP);
	mpg_pool_free(p);
	close(pfd[0]);
}
END_TEST

static Suite *lifecycle_suite(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("lifecycle");
	/* 1000 replacements against 8 busy threads take 40 s under ASan on
	 * 2 idle cores; room for a loaded machine. */
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, free_leaves_no_zombie_and_no_extra_fd);
	tcase_add_test(tc, close_and_join_finish_queued_work);
	tcase_add_test(tc, output_buffered_before_the_pool_is_printed_once);
	tcase_add_test(tc, a_pool_starts_while_a_thread_waits_on_stdin);
	tcase_add_test(tc, terminate_stops_now_and_cancels_what_did_not_end);
	tcase_add_test(tc, pool_calls_from_inside_a_worker_return_echild);
	tcase_add_test(tc, a_forked_child_cannot_use_the_parents_pool);
	tcase_add_test(tc, parent_killed_leaves_no_worker_alive);
	tcase_add_test(tc, crashing_workers_are_replaced_while_parent_threads_hold_locks);
	tcase_add_test(tc, two_pools_do_not_hold_each_others_workers);
	tcase_add_test(tc, a_users_forked_child_does_not_keep_workers_alive);
	tcase_add_test(tc, close_fds_keeps_the_programs_pipes_out_of_the_workers);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(lifecycle_suite)
