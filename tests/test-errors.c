/* SPDX-License-Identifier: MIT */
/* Child-exception propagation: every way a task can fail reaches the
 * parent as a structured error; the pool replaces dead workers, applies
 * its policy, and every task ends exactly once. */
#include "mpk-test.h"
#include <mpguard.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>

static mpg_pool *new_pool(unsigned workers, mpg_policy policy, unsigned retries)
{
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, workers), 0);
	ck_assert_int_eq(mpg_options_set_policy(o, policy, retries), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	return p;
}

static void *shared(size_t size)
{
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);
	return m;
}

static int64_t input_of(const void *in) { int64_t x; memcpy(&x, in, 8); return x; }

/* UBSan would turn the division by zero into an exit: we want the trap. */
__attribute__((no_sanitize_undefined))
static int failing(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t x = input_of(in);
	switch (x) {
	case -1: mpg_raise(11, "bad value %d in task %zu", (int)x, mpg_task_index(t)); break;
	case -2: return -5;
	case -3: exit(3);
	case -4: raise(SIGSEGV); break;
	case -5: abort();
	case -6: { volatile int64_t n = 7, z = 0; x = n / z; break; } /* a real #DE trap */
	}
	int64_t y = x * 10;
	return mpg_task_set_result(t, &y, 8);
}

static const mpg_error *run_one_failure(mpg_pool *p, int64_t bad, mpg_results **res)
{
	int64_t x[9] = {1, 2, 3, 4, bad, 6, 7, 8, 9}, y[9];
	ck_assert_int_eq(mpg_map_array(p, failing, x, 8, 9, y, 8, NULL, res), 0);
	ck_assert_uint_eq(mpg_results_failed(*res), 1);
	for (int i = 0; i < 9; i++)
		if (i != 4)
			ck_assert_int_eq(y[i], x[i] * 10);
	const mpg_error *e = mpg_results_error(*res, 4);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(mpg_error_task(e), 4);
	ck_assert_int_ge(mpg_error_worker(e), 0);
	ck_assert_int_gt(mpg_error_pid(e), 0);
	ck_assert_uint_eq(mpg_error_attempts(e), 1);
	ck_assert_int_eq(mpg_results_get(*res, 4, NULL, NULL), -EIO);
	return e;
}

START_TEST(raise_reports_code_message_worker_and_pid)
{
	mpg_pool *p = new_pool(2, MPG_CONTINUE, 0);
	mpg_results *res;
	const mpg_error *e = run_one_failure(p, -1, &res);
	ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_RAISED);
	ck_assert_int_eq(mpg_error_code(e), 11);
	ck_assert_str_eq(mpg_error_message(e), "bad value -1 in task 4");
	ck_assert_ptr_nonnull(strstr(mpg_error_describe(e), "task 4 raised error 11"));
	pid_t pid = mpg_error_pid(e);
	int slot = mpg_error_worker(e);
	mpg_results_free(res);
	/* a raise does not kill the worker */
	ck_assert_int_eq(mpg_pool_worker_pid(p, (unsigned)slot), pid);
	ck_assert_int_eq(mpg_raise(1, "outside a task"), -EPERM);
	mpg_pool_free(p);
}
END_TEST

START_TEST(nonzero_return_is_raised_with_that_code)
{
	mpg_pool *p = new_pool(2, MPG_CONTINUE, 0);
	mpg_results *res;
	const mpg_error *e = run_one_failure(p, -2, &res);
	ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_RAISED);
	ck_assert_int_eq(mpg_error_code(e), -5);
	ck_assert_str_eq(mpg_error_message(e), "task returned -5 (-EIO: Input/output error)");
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(exit_in_a_task_fails_only_that_task)
{
	/* one worker: tasks 5..8 must run on its replacement */
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	mpg_results *res;
	const mpg_error *e = run_one_failure(p, -3, &res);
	ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_EXITED);
	ck_assert_int_eq(mpg_error_code(e), 3);
	pid_t dead = mpg_error_pid(e);
	unsigned slot = (unsigned)mpg_error_worker(e);
	mpg_results_free(res);
	pid_t now = mpg_pool_worker_pid(p, slot);
	ck_assert_int_gt(now, 0);
	ck_assert_int_ne(now, dead); /* replaced */
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_eq(st.workers_replaced, 1);
	mpg_pool_free(p);
}
END_TEST

START_TEST(fatal_signals_are_reported_as_signaled)
{
	mpg_pool *p = new_pool(2, MPG_CONTINUE, 0);
	static const struct { int64_t bad; int sig; } cases[] = {
		{-4, SIGSEGV}, {-5, SIGABRT}, {-6, SIGFPE},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mpg_results *res;
		const mpg_error *e = run_one_failure(p, cases[i].bad, &res);
		ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_SIGNALED);
		ck_assert_int_eq(mpg_error_signal(e), cases[i].sig);
		ck_assert_ptr_nonnull(strstr(mpg_error_describe(e), sigabbrev_np(cases[i].sig)));
		mpg_results_free(res);
	}
	mpg_pool_free(p);
}
END_TEST

/* ---- a worker killed from outside ------------------------------------- */

static int announce_fd = -1;

static int blocks_at_five(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	if (input_of(in) == 5) {
		pid_t me = getpid();
		if (write(announce_fd, &me, sizeof me) != sizeof me)
			return 1;
		for (;;)
			pause(); /* until killed */
	}
	int64_t y = input_of(in) + 1;
	return mpg_task_set_result(t, &y, 8);
}

static void *killer(void *arg)
{
	int fd = *(int *)arg;
	pid_t pid;
	if (read(fd, &pid, sizeof pid) == sizeof pid)
		kill(pid, SIGKILL);
	return NULL;
}

START_TEST(worker_killed_mid_task_neither_hangs_nor_loses_tasks)
{
	int pfd[2];
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	announce_fd = pfd[1]; /* workers inherit it: they fork from the pool's snapshot */
	mpg_pool *p = new_pool(2, MPG_CONTINUE, 0);
	pthread_t th;
	pthread_create(&th, NULL, killer, &pfd[0]);
	enum { N = 1000 };
	int64_t x[N], y[N];
	for (int i = 0; i < N; i++)
		x[i] = i;
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, blocks_at_five, x, 8, N, y, 8, NULL, &res), 0);
	pthread_join(th, NULL);
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	const mpg_error *e = mpg_results_error(res, 5);
	ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_KILLED);
	ck_assert_int_eq(mpg_error_signal(e), SIGKILL);
	ck_assert_ptr_nonnull(strstr(mpg_error_message(e), "out of memory"));
	for (int i = 0; i < N; i++)
		if (i != 5)
			ck_assert_int_eq(y[i], i + 1);
	mpg_results_free(res);
	mpg_pool_free(p);
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

static int plus_one(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t y = input_of(in) + 1;
	return mpg_task_set_result(t, &y, 8);
}

struct lost_call {
	mpg_pool *pool;
	int64_t x[2], y[2];
	mpg_results *res;
	int rc;
	atomic_bool done;
};

static void *lost_call_main(void *arg)
{
	struct lost_call *c = arg;
	c->rc = mpg_map_array(c->pool, plus_one, c->x, 8, 2, c->y, 8, NULL, &c->res);
	atomic_store(&c->done, true);
	return NULL;
}

/* Workers paused at start hold their tasks without running them; killing
 * each one loses them again, until they fail, named for what they are. */
START_TEST(tasks_lost_again_and_again_fail_with_their_true_attempt_count)
{
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 1), 0);
	ck_assert_int_eq(mpg_options_set_pause(o, MPG_PAUSE_AT_START, 60000), 0);
	ck_assert_int_eq(mpg_options_set_control(o, 0), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	struct lost_call c = {.pool = p, .x = {1, 2}};
	pthread_t th;
	pthread_create(&th, NULL, lost_call_main, &c);
	pid_t last = 0;
	while (!atomic_load(&c.done)) {
		pid_t pid = mpg_pool_worker_pid(p, 0);
		if (pid > 0 && pid != last) {
			kill(pid, SIGKILL);
			last = pid;
		} else {
			poll(NULL, 0, 1); /* the replacement is on its way */
		}
	}
	pthread_join(th, NULL);
	ck_assert_int_eq(c.rc, 0);
	ck_assert_uint_eq(mpg_results_failed(c.res), 2);
	for (int i = 0; i < 2; i++) {
		const mpg_error *e = mpg_results_error(c.res, (size_t)i);
		ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_KILLED);
		ck_assert_uint_eq(mpg_error_attempts(e), 1);
		ck_assert_msg(!strstr(mpg_error_describe(e), "attempts"), "%s", mpg_error_describe(e));
	}
	mpg_results_free(c.res);
	mpg_pool_free(p);
}
END_TEST

/* ---- retry -------------------------------------------------------------- */

struct attempt_log {
	atomic_int runs[64];
	atomic_int slot_of_run[64][4];
};
static struct attempt_log *alog;

static int fails_first_time(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	size_t i = mpg_task_index(t);
	int run = atomic_fetch_add(&alog->runs[i], 1);
	if (run < 4)
		atomic_store(&alog->slot_of_run[i][run], (int)mpg_task_worker(t));
	int64_t x = input_of(in);
	if (run == 0 && x == -1)
		mpg_raise(1, "first try fails");
	if (run == 0 && x == -4)
		raise(SIGSEGV);
	if (x == -9)
		mpg_raise(9, "always fails");
	int64_t y = 100 + run;
	return mpg_task_set_result(t, &y, 8);
}

START_TEST(retry_succeeds_on_the_second_try_on_another_worker)
{
	alog = shared(sizeof *alog);
	mpg_pool *p = new_pool(3, MPG_RETRY, 2);
	int64_t x[4] = {0, -1, -4, 0}, y[4];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, fails_first_time, x, 8, 4, y, 8, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	ck_assert_int_eq(y[0], 100);
	ck_assert_int_eq(y[1], 101); /* second run */
	ck_assert_int_eq(y[2], 101);
	ck_assert_int_eq(atomic_load(&alog->runs[1]), 2);
	ck_assert_int_ne(atomic_load(&alog->slot_of_run[1][0]), atomic_load(&alog->slot_of_run[1][1]));
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_eq(st.tasks_retried, 2);
	mpg_results_free(res);
	mpg_pool_free(p);
	munmap(alog, sizeof *alog);
}
END_TEST

START_TEST(retry_gives_up_after_n_retries_and_says_so)
{
	alog = shared(sizeof *alog);
	mpg_pool *p = new_pool(2, MPG_CONTINUE, 0);
	mpg_options *o;
	mpg_options_new(&o);
	mpg_options_set_policy(o, MPG_RETRY, 3); /* per-call override */
	int64_t x[2] = {0, -9}, y[2];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, fails_first_time, x, 8, 2, y, 8, o, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	const mpg_error *e = mpg_results_error(res, 1);
	ck_assert_uint_eq(mpg_error_attempts(e), 4);
	ck_assert_int_eq(atomic_load(&alog->runs[1]), 4);
	ck_assert_ptr_nonnull(strstr(mpg_error_describe(e), "after 4 attempts"));
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);
	munmap(alog, sizeof *alog);
}
END_TEST

/* ---- abort --------------------------------------------------------------- */

START_TEST(abort_policy_stops_all_workers_and_returns_the_first_error)
{
	mpg_pool *p = new_pool(3, MPG_ABORT, 0);
	int pidfds[3];
	for (unsigned i = 0; i < 3; i++) {
		pid_t pid = mpg_pool_worker_pid(p, i);
		ck_assert_int_gt(pid, 0);
		pidfds[i] = pidfd_open(pid, 0);
		ck_assert_int_ge(pidfds[i], 0);
	}
	enum { N = 2000 };
	int64_t x[N], y[N];
	for (int i = 0; i < N; i++)
		x[i] = i == 700 ? -1 : i;
	mpg_results *res = NULL;
	ck_assert_int_eq(mpg_map_array(p, failing, x, 8, N, y, 8, NULL, &res), -ECANCELED);
	ck_assert_ptr_null(res);
	const mpg_error *e = mpg_pool_abort_error(p);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(mpg_error_task(e), 700);
	ck_assert_int_eq(mpg_error_code(e), 11);
	for (int i = 0; i < 3; i++) {
		ck_assert(mpk_wait_gone(pidfds[i], 0)); /* already dead when map returned */
		close(pidfds[i]);
	}
	ck_assert_int_eq(mpg_map_array(p, failing, x, 8, 1, y, 8, NULL, &res), -ESHUTDOWN);
	mpg_pool_free(p);
}
END_TEST

START_TEST(abort_exit_ends_the_process_with_the_chosen_status)
{
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		mpg_options *o;
		mpg_pool *p;
		mpg_options_new(&o);
		mpg_options_set_workers(o, 2);
		mpg_options_set_policy(o, MPG_ABORT, 0);
		mpg_options_set_abort_exit(o, 7);
		if (mpg_pool_new(o, &p) < 0)
			_exit(100);
		int64_t x[3] = {1, -4, 3}, y[3];
		mpg_results *res;
		mpg_map_array(p, failing, x, 8, 3, y, 8, NULL, &res);
		_exit(101); /* not reached: the pool exits the process */
	}
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 7);
}
END_TEST

/* ---- garbage ------------------------------------------------------------ */

static int writes_garbage(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	if (input_of(in) == 2) {
		/* Its frames to the parent: the first write-only pipe after
		 * its socket (see worker_out() in test-protocol.c). */
		int sock = -1;
		for (int fd = 3; fd < 1024 && sock < 0; fd++) {
			struct stat s;
			if (fstat(fd, &s) == 0 && S_ISSOCK(s.st_mode))
				sock = fd;
		}
		for (int fd = sock + 1; sock >= 0 && fd < 1024; fd++) {
			struct stat s;
			if (fstat(fd, &s) == 0 && S_ISFIFO(s.st_mode) &&
			    (fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY) {
				(void)!write(fd, "this is not a frame, this is garbage!!", 38);
				break;
			}
		}
		for (;;)
			pause(); /* the pool kills us */
	}
	int64_t y = input_of(in);
	return mpg_task_set_result(t, &y, 8);
}

START_TEST(garbage_from_a_worker_is_a_protocol_error_of_that_task)
{
	mpg_pool *p = new_pool(2, MPG_CONTINUE, 0);
	int64_t x[6] = {0, 1, 2, 3, 4, 5}, y[6];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, writes_garbage, x, 8, 6, y, 8, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	const mpg_error *e = mpg_results_error(res, 2);
	ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_PROTOCOL);
	ck_assert_ptr_nonnull(strstr(mpg_error_message(e), "not a valid frame"));
	ck_assert_ptr_nonnull(strstr(mpg_error_message(e), "38 bytes"));
	for (int i = 0; i < 6; i++)
		if (i != 2)
			ck_assert_int_eq(y[i], i);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

/* ---- exactly once under mixed failures --------------------------------- */

static atomic_int *runs;

static int chaos(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	size_t i = mpg_task_index(t);
	atomic_fetch_add(&runs[i], 1);
	if (i % 97 == 13)
		mpg_raise(97, "raise %zu", i);
	if (i % 211 == 17)
		raise(SIGSEGV);
	if (i % 307 == 19)
		_exit(5);
	if (i % 401 == 23)
		abort();
	if (i % 997 == 29)
		for (;;)
			; /* hangs: the time limit ends it */
	int64_t y = input_of(in) * 2;
	return mpg_task_set_result(t, &y, 8);
}

START_TEST(every_task_ends_exactly_once_under_raise_crash_exit_abort_and_hang)
{
	enum { N = 20000 };
	runs = shared(N * sizeof *runs);
	mpg_pool *p = new_pool(2, MPG_CONTINUE, 0);
	static int64_t x[N], y[N];
	for (int i = 0; i < N; i++)
		x[i] = i;
	mpg_options *o;
	mpg_options_new(&o);
	/* Wall time: short enough for 20 hangs, long enough that a task
	 * held off the CPU by a loaded machine is not taken for one. */
	mpg_options_set_timeout(o, 300);
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, chaos, x, 8, N, y, 8, o, &res), 0);
	mpg_options_free(o);
	size_t expected_failures = 0;
	for (int i = 0; i < N; i++) {
		mpg_error_kind want = 0;
		if (i % 97 == 13)
			want = MPG_ERR_RAISED;
		else if (i % 211 == 17 || i % 401 == 23)
			want = MPG_ERR_SIGNALED;
		else if (i % 307 == 19)
			want = MPG_ERR_EXITED;
		else if (i % 997 == 29)
			want = MPG_ERR_TIMEOUT;
		const mpg_error *e = mpg_results_error(res, i);
		if (want) {
			expected_failures++;
			ck_assert_msg(e && mpg_error_get_kind(e) == want, "task %d: %s", i,
				      e ? mpg_error_describe(e) : "succeeded");
			ck_assert_int_eq(atomic_load(&runs[i]), 1); /* failed tasks never re-run */
		} else {
			ck_assert_msg(!e, "task %d: %s", i, e ? mpg_error_describe(e) : "");
			ck_assert_int_eq(y[i], 2 * i);
			ck_assert_int_ge(atomic_load(&runs[i]), 1);
		}
	}
	ck_assert_uint_eq(mpg_results_failed(res), expected_failures);
	mpg_results_free(res);
	mpg_pool_free(p);
	munmap(runs, N * sizeof *runs);
}
END_TEST

/* ---- crash reports and backtraces ------------------------------------- */

static volatile int64_t *volatile bad_pointer = (volatile int64_t *)16;
static const int crash_line = __LINE__ + 4; /* the dereference below */
__attribute__((noinline)) static int64_t crash_here(volatile int64_t *p)
{
	int64_t v;
	v = *p; /* faults: p is 0x10 */
	return v;
}

static const int inlined_line = __LINE__ + 3; /* the dereference below */
static inline __attribute__((always_inline)) int64_t inlined_deref(volatile int64_t *p)
{
	return *p * 3;
}

static const int caller_line = __LINE__ + 3; /* the inlined call below */
__attribute__((noinline)) static int64_t calls_inlined(volatile int64_t *p)
{
	int64_t v = inlined_deref(p);
	return v + 1;
}

static volatile int after_raise;
static const int raise_line = __LINE__ + 3; /* the mpg_raise() below */
__attribute__((noinline)) static void raise_here(int64_t x)
{
	mpg_raise(33, "raised at %d", (int)x);
	after_raise++; /* not reached; keeps the call from being a tail call */
}

static volatile int recurse_limit = 1 << 30; /* never reached: the stack ends first */
__attribute__((noinline)) static int recurse(volatile int depth)
{
	if (depth > recurse_limit)
		return 0;
	volatile char pad[256];
	pad[0] = (char)depth;
	return recurse(depth + 1) + pad[0]; /* no tail call: the stack grows */
}

/* A mapping past the end of its file: touching it is SIGBUS (BUS_ADRERR). */
__attribute__((noinline)) static int64_t read_past_end_of_file(void)
{
	char path[] = "/tmp/mpkit-sigbus-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unlink(path);
	volatile char *m = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0); /* file is empty */
	close(fd);
	return m == MAP_FAILED ? -1 : m[100];
}

/* UBSan must not stop strlen(NULL) before it faults. */
__attribute__((no_sanitize_undefined))
static int crashes(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t x = input_of(in);
	if (x == 1)
		x = crash_here(bad_pointer);
	else if (x == 2)
		raise_here(x);
	else if (x == 3)
		x = (int64_t)strlen(*(char *volatile *)&(char *){NULL}); /* in libc */
	else if (x == 4)
		x = recurse(0);
	else if (x == 5)
		abort();
	else if (x == 6)
		x = read_past_end_of_file();
	else if (x == 7)
		__builtin_trap(); /* ud2 on x86: SIGILL */
	else if (x == 8)
		__asm__ volatile("int3"); /* SIGTRAP */
	else if (x == 9)
		raise(SIGSYS);
	else if (x == 12)
		x = calls_inlined(bad_pointer);
	else if (x == 10)
		x = dlopen(CRASHLIB_PATH, RTLD_NOW) ? 10 : -1; /* stays loaded */
	else if (x == 11) {
		int (*deref)(volatile int *) = (int (*)(volatile int *))dlsym(
			dlopen(CRASHLIB_PATH, RTLD_NOW), "crashlib_deref");
		x = deref ? deref(NULL) : -1;
	}
	return mpg_task_set_result(t, &x, 8);
}

static const mpg_error *crash_error(mpg_pool *p, int64_t what, mpg_results **res)
{
	int64_t x[3] = {0, what, 0}, y[3];
	ck_assert_int_eq(mpg_map_array(p, crashes, x, 8, 3, y, 8, NULL, res), 0);
	ck_assert_uint_eq(mpg_results_failed(*res), 1);
	const mpg_error *e = mpg_results_error(*res, 1);
	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_nonnull(mpg_error_backtrace(e));
	return e;
}

START_TEST(segfault_reports_si_code_address_and_file_line)
{
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	mpg_results *res;
	const mpg_error *e = crash_error(p, 1, &res);
	ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_SIGNALED);
	ck_assert_int_eq(mpg_error_signal(e), SIGSEGV);
	int code;
	uintptr_t addr;
	ck_assert_int_eq(mpg_error_fault(e, &code, &addr), 0);
	ck_assert_int_eq(code, SEGV_MAPERR);
	ck_assert_uint_eq(addr, 16);
	ck_assert_ptr_nonnull(strstr(mpg_error_message(e), "SEGV_MAPERR"));
	ck_assert_ptr_nonnull(strstr(mpg_error_message(e), "address not mapped"));
	const char *bt = mpg_error_backtrace(e);
	char want[64];
	snprintf(want, sizeof want, "(test-errors.c:%d)", crash_line);
	/* the first frame is the faulting one, in the task's code, not the handler */
	ck_assert_msg(strncmp(bt, "#0 ", 3) == 0 && strstr(bt, "crash_here"), "%s", bt);
	ck_assert_msg(strstr(strstr(bt, "crash_here"), want), "want %s in\n%s", want, bt);
	ck_assert_msg(strstr(bt, "crashes"), "%s", bt); /* the task function, a caller */
	ck_assert_msg(!strstr(bt, "on_crash") && !strstr(bt, "run_tasks"), "%s", bt);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(raise_carries_a_backtrace_of_where_it_was_raised)
{
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	mpg_results *res;
	const mpg_error *e = crash_error(p, 2, &res);
	ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_RAISED);
	ck_assert_int_eq(mpg_error_fault(e, NULL, NULL), -ENODATA);
	const char *bt = mpg_error_backtrace(e);
	char want[64];
	snprintf(want, sizeof want, "raise_here"); /* maybe raise_here.constprop.0 */
	ck_assert_msg(strncmp(bt, "#0 ", 3) == 0 && strstr(bt, want), "%s", bt);
	snprintf(want, sizeof want, "(test-errors.c:%d)", raise_line);
	ck_assert_msg(strstr(bt, want), "want %s in\n%s", want, bt);
	ck_assert_msg(!strstr(bt, "mpg_raise"), "%s", bt);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(fault_inside_a_shared_library_names_the_library_then_the_caller)
{
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	mpg_results *res;
	const mpg_error *e = crash_error(p, 3, &res);
	ck_assert_int_eq(mpg_error_signal(e), SIGSEGV);
	const char *bt = mpg_error_backtrace(e);
	ck_assert_ptr_nonnull(bt);
	const char *nl = strchr(bt, '\n');
	ck_assert_ptr_nonnull(nl);
	/* libc's strlen, or the sanitizer runtime's interceptor under ASan */
	ck_assert_msg(memmem(bt, (size_t)(nl - bt), ".so", 3) &&
		      !memmem(bt, (size_t)(nl - bt), "[test-errors]", 13), "%s", bt);
	ck_assert_msg(strstr(nl, "crashes"), "%s", bt);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(stack_overflow_is_caught_and_reported)
{
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	mpg_results *res;
	const mpg_error *e = crash_error(p, 4, &res);
	ck_assert_int_eq(mpg_error_signal(e), SIGSEGV);
	ck_assert_int_eq(mpg_error_fault(e, NULL, NULL), 0); /* the handler ran, on its own stack */
	ck_assert_msg(strstr(mpg_error_backtrace(e), "recurse"), "%s", mpg_error_backtrace(e));
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(abort_reports_sigabrt_with_a_backtrace)
{
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	mpg_results *res;
	const mpg_error *e = crash_error(p, 5, &res);
	ck_assert_int_eq(mpg_error_signal(e), SIGABRT);
	ck_assert_msg(strstr(mpg_error_backtrace(e), "crashes"), "%s", mpg_error_backtrace(e));
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

/* ---- time limits, recycling --------------------------------------------- */

static volatile int spin_forever = 1;
__attribute__((noinline)) static void spin_here(void)
{
	while (spin_forever)
		; /* stuck: the time limit must end it */
}

static int block_fd_in_task = -1;
__attribute__((noinline)) static void block_here(void)
{
	char c;
	(void)!read(block_fd_in_task, &c, 1); /* never written */
}

/* The time limit expiring just as a task dies of its own doing: the pool
 * has sent SIGXCPU, which is left unhandled (here the task blocks it; in
 * the race, the crash handler blocks every signal, or the worker is
 * already exiting). These wait for the signal itself, then die. */
static void wait_until_timed_out(void)
{
	sigset_t xcpu, pending;
	sigemptyset(&xcpu);
	sigaddset(&xcpu, SIGXCPU);
	sigprocmask(SIG_BLOCK, &xcpu, NULL);
	do
		sigpending(&pending);
	while (!sigismember(&pending, SIGXCPU));
}

__attribute__((noinline)) static void abort_once_timed_out(void)
{
	wait_until_timed_out();
	abort();
}

/* Armed by a task about to hang: the worker forked next, in a fork
 * handler (before any of the pool's code runs in it), waits up to half a
 * second for a SIGXCPU that is not meant for it. [0] armed, [1] it came. */
static atomic_int *slow_start;
static void start_slowly(void)
{
	if (!slow_start || !atomic_exchange(&slow_start[0], 0))
		return;
	sigset_t xcpu, old;
	sigemptyset(&xcpu);
	sigaddset(&xcpu, SIGXCPU);
	sigprocmask(SIG_BLOCK, &xcpu, &old);
	struct timespec window = {0, 500 * 1000000};
	if (sigtimedwait(&xcpu, NULL, &window) == SIGXCPU)
		atomic_store(&slow_start[1], 1);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static int slow(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t x = input_of(in);
	if (x == -1)
		spin_here();
	if (x == -2)
		block_here();
	if (x == -3)
		abort_once_timed_out();
	if (x == -4) {
		wait_until_timed_out();
		_exit(7);
	}
	if (x == -5) /* the timed task returns; the next one exits */
		wait_until_timed_out();
	if (x == -6)
		_exit(8);
	if (x == -7) {
		atomic_store(&slow_start[0], 1);
		spin_here();
	}
	return mpg_task_set_result(t, &x, 8);
}

/* slow(), counting runs; a task -5 run again (as innocent) just returns. */
static int counted_slow(mpg_task *t, const void *in, size_t len, void *ud)
{
	if (atomic_fetch_add(&runs[mpg_task_index(t)], 1) > 0 && input_of(in) == -5)
		return mpg_task_set_result(t, in, 8);
	return slow(t, in, len, ud);
}

START_TEST(timeout_ends_a_stuck_task_with_where_it_was_stuck)
{
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0); /* inherited by the workers on purpose */
	block_fd_in_task = pfd[0];
	mpg_pool *p = new_pool(2, MPG_CONTINUE, 0);
	mpg_options *o;
	mpg_options_new(&o);
	ck_assert_int_eq(mpg_options_set_timeout(o, 100), 0);
	int64_t x[8] = {0, 1, -1, 3, 4, -2, 6, 7}, y[8];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, slow, x, 8, 8, y, 8, o, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 2);
	const char *where[2] = {"spin_here", "block_here"};
	size_t idx[2] = {2, 5};
	for (int k = 0; k < 2; k++) {
		const mpg_error *e = mpg_results_error(res, idx[k]);
		ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_TIMEOUT);
		ck_assert_int_eq(mpg_error_signal(e), SIGKILL);
		ck_assert_ptr_nonnull(strstr(mpg_error_message(e), "100 ms"));
		const char *bt = mpg_error_backtrace(e);
		ck_assert_msg(bt && strstr(bt, where[k]) && strstr(bt, "slow"), "%s", bt ? bt : "(none)");
	}
	for (int i = 0; i < 8; i++)
		if (i != 2 && i != 5)
			ck_assert_int_eq(y[i], x[i]);
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_eq(st.tasks_timed_out, 2);
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

START_TEST(a_crash_as_the_time_limit_expires_is_reported_as_the_crash)
{
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	mpg_options *o;
	mpg_options_new(&o);
	ck_assert_int_eq(mpg_options_set_timeout(o, 30), 0);
	int64_t x[3] = {0, -3, 2}, y[3];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, slow, x, 8, 3, y, 8, o, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	const mpg_error *e = mpg_results_error(res, 1);
	ck_assert_msg(mpg_error_get_kind(e) == MPG_ERR_SIGNALED, "%s", mpg_error_describe(e));
	ck_assert_int_eq(mpg_error_signal(e), SIGABRT);
	int code;
	uintptr_t addr;
	ck_assert_int_eq(mpg_error_fault(e, &code, &addr), 0); /* the crash report's */
	const char *bt = mpg_error_backtrace(e);
	ck_assert_msg(bt && strstr(bt, "abort_once_timed_out"), "%s", bt ? bt : "(none)");
	ck_assert_int_eq(y[0], 0);
	ck_assert_int_eq(y[2], 2);
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_eq(st.tasks_timed_out, 0);
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);
}
END_TEST

START_TEST(an_exit_as_the_time_limit_expires_is_reported_as_the_exit)
{
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	mpg_options *o;
	mpg_options_new(&o);
	ck_assert_int_eq(mpg_options_set_timeout(o, 30), 0);
	int64_t x[3] = {0, -4, 2}, y[3];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, slow, x, 8, 3, y, 8, o, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	const mpg_error *e = mpg_results_error(res, 1);
	ck_assert_msg(mpg_error_get_kind(e) == MPG_ERR_EXITED, "%s", mpg_error_describe(e));
	ck_assert_int_eq(mpg_error_code(e), 7);
	ck_assert_int_eq(y[2], 2);
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_eq(st.tasks_timed_out, 0);
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);
}
END_TEST

/* Task 1 is timed out but returns (SIGXCPU pending, unhandled); task 2,
 * in the same chunk, exits before the pool's SIGKILL: the exit is task
 * 2's, and task 1 did not fail. */
START_TEST(an_exit_after_the_timed_task_returned_is_the_exiting_tasks)
{
	runs = shared(4 * sizeof *runs);
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	mpg_options *o;
	mpg_options_new(&o);
	ck_assert_int_eq(mpg_options_set_timeout(o, 30), 0);
	ck_assert_int_eq(mpg_options_set_chunksize(o, 4), 0);
	int64_t x[4] = {0, -5, -6, 3}, y[4];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, counted_slow, x, 8, 4, y, 8, o, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	const mpg_error *e = mpg_results_error(res, 2);
	ck_assert_msg(e && mpg_error_get_kind(e) == MPG_ERR_EXITED, "%s",
		      e ? mpg_error_describe(e) : "task 2 succeeded");
	ck_assert_int_eq(mpg_error_code(e), 8);
	ck_assert_int_eq(atomic_load(&runs[2]), 1); /* not re-run as innocent */
	ck_assert_ptr_null(mpg_results_error(res, 1));
	ck_assert_int_eq(y[1], -5);
	ck_assert_int_eq(y[3], 3);
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);
	munmap(runs, 4 * sizeof *runs);
}
END_TEST

/* A worker replacing one that hung must not be timed on the dead one's
 * task while it starts (its status page still showed that task). */
START_TEST(a_replacement_worker_is_not_timed_on_its_predecessors_task)
{
	slow_start = shared(2 * sizeof *slow_start);
	ck_assert_int_eq(pthread_atfork(NULL, NULL, start_slowly), 0);
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	mpg_options *o;
	mpg_options_new(&o);
	ck_assert_int_eq(mpg_options_set_timeout(o, 30), 0);
	int64_t x[4] = {0, -7, 2, 3}, y[4];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, slow, x, 8, 4, y, 8, o, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	ck_assert_int_eq(mpg_error_get_kind(mpg_results_error(res, 1)), MPG_ERR_TIMEOUT);
	ck_assert_int_eq(y[2], 2);
	ck_assert_int_eq(y[3], 3);
	ck_assert_msg(atomic_load(&slow_start[0]) == 0, "no worker started after the hang");
	ck_assert_msg(atomic_load(&slow_start[1]) == 0, "the new worker got SIGXCPU as it started");
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_eq(st.workers_replaced, 1);
	ck_assert_uint_eq(st.tasks_timed_out, 1);
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);
	munmap(slow_start, 2 * sizeof *slow_start);
	slow_start = NULL;
}
END_TEST

/* Told it is over its limit (SIGXCPU, blocked so that it never reports),
 * it asks to be killed from outside, before the pool's own SIGKILL. */
static int killed_from_outside_while_timed(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t x = input_of(in);
	if (x < 0) {
		sigset_t xcpu;
		sigemptyset(&xcpu);
		sigaddset(&xcpu, SIGXCPU);
		sigprocmask(SIG_BLOCK, &xcpu, NULL);
		while (sigwaitinfo(&xcpu, NULL) < 0)
			;
		pid_t me = getpid();
		if (write(announce_fd, &me, sizeof me) != sizeof me)
			return 1;
		for (;;)
			pause(); /* until killed */
	}
	return mpg_task_set_result(t, &x, 8);
}

START_TEST(a_kill_from_outside_while_timed_out_is_a_kill)
{
	int pfd[2];
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	announce_fd = pfd[1];
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	pthread_t th;
	pthread_create(&th, NULL, killer, &pfd[0]);
	mpg_options *o;
	mpg_options_new(&o);
	ck_assert_int_eq(mpg_options_set_timeout(o, 30), 0);
	int64_t x[3] = {0, -1, 2}, y[3];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, killed_from_outside_while_timed, x, 8, 3, y, 8, o, &res),
			 0);
	pthread_join(th, NULL);
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	const mpg_error *e = mpg_results_error(res, 1);
	ck_assert_msg(mpg_error_get_kind(e) == MPG_ERR_KILLED && mpg_error_signal(e) == SIGKILL,
		      "%s", mpg_error_describe(e));
	ck_assert_int_eq(y[2], 2);
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_eq(st.tasks_timed_out, 0);
	mpg_results_free(res);
	mpg_options_free(o);
	mpg_pool_free(p);
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

static int whoami(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	int64_t pid = getpid();
	return mpg_task_set_result(t, &pid, 8);
}

START_TEST(max_tasks_per_worker_replaces_workers_after_n_tasks)
{
	mpg_options *o;
	mpg_pool *p;
	mpg_options_new(&o);
	mpg_options_set_workers(o, 2);
	ck_assert_int_eq(mpg_options_set_max_tasks_per_worker(o, 10), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	enum { N = 100 };
	int64_t x[N] = {0}, pids[N];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, whoami, x, 8, N, pids, 8, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	int distinct = 0;
	for (int i = 0; i < N; i++) {
		int count = 0, seen_before = 0;
		for (int j = 0; j < N; j++)
			count += pids[j] == pids[i];
		for (int j = 0; j < i; j++)
			seen_before |= pids[j] == pids[i];
		ck_assert_int_le(count, 10);
		distinct += !seen_before;
	}
	ck_assert_int_ge(distinct, 10);
	mpg_stats st = {.size = sizeof st};
	mpg_pool_stats(p, &st);
	ck_assert_uint_ge(st.workers_recycled, 8);
	ck_assert_uint_eq(st.workers_replaced, 0);
	mpg_results_free(res);
	mpg_pool_close(p);
	ck_assert_int_eq(mpg_pool_join(p), 0);
	mpg_pool_free(p);
	mpk_assert_no_children();
}
END_TEST

START_TEST(every_fatal_signal_is_reported_with_its_si_code_and_a_backtrace)
{
	static const struct {
		int64_t what;
		int sig;
		int code; /* -1: any */
	} cases[] = {
		{6, SIGBUS, BUS_ADRERR},
		{7, SIGILL, -1},
		{8, SIGTRAP, -1},
		{9, SIGSYS, SI_TKILL},
	};
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mpg_results *res;
		const mpg_error *e = crash_error(p, cases[i].what, &res);
		ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_SIGNALED);
		ck_assert_int_eq(mpg_error_signal(e), cases[i].sig);
		int code;
		ck_assert_int_eq(mpg_error_fault(e, &code, NULL), 0);
		if (cases[i].code != -1)
			ck_assert_int_eq(code, cases[i].code);
		ck_assert_msg(strstr(mpg_error_backtrace(e), "crashes"), "%s", mpg_error_backtrace(e));
		mpg_results_free(res);
	}
	mpg_pool_free(p);
}
END_TEST

START_TEST(inlined_frames_get_their_own_line)
{
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0);
	mpg_results *res;
	const mpg_error *e = crash_error(p, 12, &res);
	const char *bt = mpg_error_backtrace(e);
	char want0[96], want1[96];
	snprintf(want0, sizeof want0, "inlined_deref (test-errors.c:%d) [test-errors, inlined]",
		 inlined_line);
	snprintf(want1, sizeof want1, "(test-errors.c:%d) [test-errors]", caller_line);
	const char *nl = strchr(bt, '\n');
	ck_assert_msg(nl && strncmp(bt, "#0 ", 3) == 0 && memmem(bt, (size_t)(nl - bt), want0,
		      strlen(want0)), "want %s first in\n%s", want0, bt);
	ck_assert_msg(strstr(nl, "calls_inlined") && strstr(nl, want1), "want %s in\n%s", want1, bt);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(a_crash_in_a_library_dlopened_by_an_earlier_task_is_symbolized)
{
	mpg_pool *p = new_pool(1, MPG_CONTINUE, 0); /* one worker: both calls run there */
	int64_t x = 10, y;
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, crashes, &x, 8, 1, &y, 8, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	ck_assert_int_eq(y, 10); /* the dlopen() worked */
	mpg_results_free(res);
	const mpg_error *e = crash_error(p, 11, &res);
	const char *bt = mpg_error_backtrace(e);
	ck_assert_ptr_nonnull(bt);
	const char *nl = strchr(bt, '\n');
	ck_assert_msg(nl && memmem(bt, (size_t)(nl - bt), "crashlib_deref", 14) &&
		      memmem(bt, (size_t)(nl - bt), "(crashlib.c:9)", 14) &&
		      memmem(bt, (size_t)(nl - bt), "[libcrashlib.so]", 16), "%s", bt);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

static Suite *errors_suite(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = tcase_create("kinds");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, raise_reports_code_message_worker_and_pid);
	tcase_add_test(tc, nonzero_return_is_raised_with_that_code);
	tcase_add_test(tc, exit_in_a_task_fails_only_that_task);
	tcase_add_test(tc, fatal_signals_are_reported_as_signaled);
	tcase_add_test(tc, worker_killed_mid_task_neither_hangs_nor_loses_tasks);
	tcase_add_test(tc, tasks_lost_again_and_again_fail_with_their_true_attempt_count);
	tcase_add_test(tc, garbage_from_a_worker_is_a_protocol_error_of_that_task);
	tcase_add_test(tc, every_task_ends_exactly_once_under_raise_crash_exit_abort_and_hang);
	suite_add_tcase(s, tc);
	tc = tcase_create("backtraces");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, segfault_reports_si_code_address_and_file_line);
	tcase_add_test(tc, raise_carries_a_backtrace_of_where_it_was_raised);
	tcase_add_test(tc, fault_inside_a_shared_library_names_the_library_then_the_caller);
	tcase_add_test(tc, stack_overflow_is_caught_and_reported);
	tcase_add_test(tc, abort_reports_sigabrt_with_a_backtrace);
	tcase_add_test(tc, every_fatal_signal_is_reported_with_its_si_code_and_a_backtrace);
	tcase_add_test(tc, a_crash_in_a_library_dlopened_by_an_earlier_task_is_symbolized);
	tcase_add_test(tc, inlined_frames_get_their_own_line);
	suite_add_tcase(s, tc);
	tc = tcase_create("limits");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, timeout_ends_a_stuck_task_with_where_it_was_stuck);
	tcase_add_test(tc, a_crash_as_the_time_limit_expires_is_reported_as_the_crash);
	tcase_add_test(tc, an_exit_as_the_time_limit_expires_is_reported_as_the_exit);
	tcase_add_test(tc, an_exit_after_the_timed_task_returned_is_the_exiting_tasks);
	tcase_add_test(tc, a_replacement_worker_is_not_timed_on_its_predecessors_task);
	tcase_add_test(tc, a_kill_from_outside_while_timed_out_is_a_kill);
	tcase_add_test(tc, max_tasks_per_worker_replaces_workers_after_n_tasks);
	suite_add_tcase(s, tc);
	tc = tcase_create("policies");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, retry_succeeds_on_the_second_try_on_another_worker);
	tcase_add_test(tc, retry_gives_up_after_n_retries_and_says_so);
	tcase_add_test(tc, abort_policy_stops_all_workers_and_returns_the_first_error);
	tcase_add_test(tc, abort_exit_ends_the_process_with_the_chosen_status);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(errors_suite)
