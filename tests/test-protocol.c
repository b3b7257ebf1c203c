/* SPDX-License-Identifier: MIT */
/* The parent against its workers: tasks that write crafted frames or
 * garbage to their worker's socket, die in the middle of a batch, or die of
 * signals of their own doing. Nothing a worker sends may hurt the parent
 * or another task, and a task that finished never runs again. */
#include "mpk-test.h"
#include <mpguard.h>

#include <stdatomic.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* The frame header and the layouts a worker writes (libmpguard's
 * proto-int.h), spelled out: the tests craft frames as a hostile task
 * would, without the library's encoders. */
struct hdr {
	uint32_t magic;
	uint8_t version, type;
	uint16_t nfds;
	uint32_t length, reserved;
};
#define MAGIC 0x464b504du
enum { RESULT = 2, MODULES = 4 };
struct result_head {
	uint64_t job, first;
	uint32_t count, mode;
	uint64_t out_size, elapsed_ns;
};
#define FIXED_OUT 2u
#define ITEM_SHM 1u

static mpg_pool *new_pool(unsigned workers, size_t chunksize)
{
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, workers), 0);
	ck_assert_int_eq(mpg_options_set_policy(o, MPG_CONTINUE, 0), 0);
	if (chunksize)
		ck_assert_int_eq(mpg_options_set_chunksize(o, chunksize), 0);
	ck_assert_int_eq(mpg_options_set_log(o, NULL), 0); /* no failure records on stderr */
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	return p;
}

/* How often each task ran, counted across processes. */
static atomic_int *runs;
#define MAX_TASKS 1000

static void count_runs(void)
{
	runs = mmap(NULL, MAX_TASKS * sizeof *runs, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(runs, MAP_FAILED);
}

static int64_t input_of(const void *in) { int64_t x; memcpy(&x, in, 8); return x; }

/* Inputs 0..n-1, as int64 buffers (static: one call at a time). */
static mpg_buf *inputs(size_t n)
{
	static int64_t x[MAX_TASKS];
	static mpg_buf in[MAX_TASKS];
	ck_assert_uint_le(n, MAX_TASKS);
	for (size_t i = 0; i < n; i++) {
		x[i] = (int64_t)i;
		in[i] = (mpg_buf){&x[i], 8};
	}
	return in;
}

/* The worker's channel to the parent: its one stream socket (for fds),
 * then, as the fork server received them in one message (each fd the
 * lowest free number, so in increasing order), the pipe it reads frames
 * from and the one it writes frames to. */
static int worker_sock(void)
{
	for (int fd = 3; fd < 1024; fd++) {
		struct stat s;
		int type;
		socklen_t len = sizeof type;
		if (fstat(fd, &s) == 0 && S_ISSOCK(s.st_mode) &&
		    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM)
			return fd;
	}
	return -1;
}

static int worker_out(void)
{
	int sock = worker_sock();
	for (int fd = sock + 1; sock >= 0 && fd < 1024; fd++) {
		struct stat s;
		if (fstat(fd, &s) == 0 && S_ISFIFO(s.st_mode) && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY)
			return fd;
	}
	return -1;
}

static void send_frame(uint8_t type, const void *body, uint32_t len, int fd_to_pass)
{
	struct hdr h = {.magic = MAGIC, .version = 1, .type = type, .nfds = fd_to_pass >= 0,
			.length = len};
	struct iovec iov[2] = {{&h, sizeof h}, {(void *)body, len}};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	/* The fd goes first, on the socket, with a byte to carry it. */
	char one = 0;
	struct iovec fiov = {&one, 1};
	struct msghdr mh = {.msg_iov = &fiov, .msg_iovlen = 1};
	if (fd_to_pass >= 0) {
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof u.buf;
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd_to_pass, sizeof(int));
	}
	if (fd_to_pass >= 0)
		(void)!sendmsg(worker_sock(), &mh, MSG_NOSIGNAL);
	(void)!writev(worker_out(), iov, 2);
}

static int returns_input(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t x = input_of(in);
	atomic_fetch_add(&runs[x], 1);
	return mpg_task_set_result(t, &x, 8);
}

/* Every task but `bad` succeeded with its input and ran once; `bad` failed
 * once as `kind`. */
static void assert_only_bad_failed(mpg_results *res, size_t n, size_t bad, mpg_error_kind kind)
{
	ck_assert_uint_eq(mpg_results_failed(res), 1);
	const mpg_error *e = mpg_results_error(res, bad);
	ck_assert_ptr_nonnull(e);
	ck_assert_msg(mpg_error_get_kind(e) == kind, "task %zu: %s", bad, mpg_error_describe(e));
	ck_assert_uint_eq(mpg_error_attempts(e), 1);
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(atomic_load(&runs[i]) == 1, "task %zu ran %d times", i,
			      atomic_load(&runs[i]));
		if (i == bad)
			continue;
		const void *d;
		size_t len;
		ck_assert_int_eq(mpg_results_get(res, i, &d, &len), 0);
		ck_assert_int_eq(input_of(d), (int64_t)i);
	}
}

/* ---- crafted frames ----------------------------------------------------- */

/* A module list whose one module's build-id is 65 bytes and ends there,
 * then a crash: the parent once kept a module with no path and crashed
 * symbolizing. */
static int bad_modules_then_crash(mpg_task *t, const void *in, size_t len, void *ud)
{
	if (input_of(in) == 3) {
		atomic_fetch_add(&runs[3], 1); /* first: the frame gets us killed */
		uint8_t b[4 + 24 + 4 + 4 + 4 + 65] = {0};
		uint32_t one = 1, plen = 4, idlen = 65;
		memcpy(b, &one, 4);
		memcpy(b + 28, &plen, 4);
		memcpy(b + 32, "/bin", 4);
		memcpy(b + 36, &idlen, 4);
		send_frame(MODULES, b, sizeof b, -1);
		raise(SIGSEGV);
	}
	return returns_input(t, in, len, ud);
}

START_TEST(a_module_list_with_an_overlong_build_id_is_a_protocol_error)
{
	count_runs();
	mpg_pool *p = new_pool(2, 1);
	mpg_buf *in = inputs(8);
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, bad_modules_then_crash, in, 8, NULL, &res), 0);
	assert_only_bad_failed(res, 8, 3, MPG_ERR_PROTOCOL);
	ck_assert_ptr_nonnull(strstr(mpg_error_message(mpg_results_error(res, 3)),
				     "malformed module list"));
	mpg_results_free(res);
	/* Again, on the worker that replaced it: the parent is unharmed. */
	memset(runs, 0, sizeof *runs * 8);
	ck_assert_int_eq(mpg_map(p, bad_modules_then_crash, inputs(4) + 3, 1, NULL, &res), 0);
	ck_assert_int_eq(mpg_error_get_kind(mpg_results_error(res, 0)), MPG_ERR_PROTOCOL);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

/* A fixed-size result frame of one task claiming 2^32-1 raised errors, then
 * waiting to be killed: the pool once stalled for minutes on it. */
static int claims_4g_errors(mpg_task *t, const void *in, size_t len, void *ud)
{
	int64_t x = input_of(in);
	if (x == 1) {
		atomic_fetch_add(&runs[1], 1);
		uint8_t b[sizeof(struct result_head) + 8 + 4];
		struct result_head h = {.job = 1, .first = 1, .count = 1, .mode = FIXED_OUT,
					.out_size = 8};
		uint32_t nerr = 0xffffffffu;
		memcpy(b, &h, sizeof h);
		memcpy(b + sizeof h, &x, 8);
		memcpy(b + sizeof h + 8, &nerr, 4);
		send_frame(RESULT, b, sizeof b, -1);
		for (;;)
			pause(); /* the pool kills us */
	}
	return returns_input(t, in, len, ud);
}

START_TEST(a_result_frame_claiming_4g_errors_fails_its_task_at_once)
{
	count_runs();
	mpg_pool *p = new_pool(2, 1);
	int64_t x[6] = {0, 1, 2, 3, 4, 5}, y[6];
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, claims_4g_errors, x, 8, 6, y, 8, NULL, &res), 0);
	assert_only_bad_failed(res, 6, 1, MPG_ERR_PROTOCOL);
	ck_assert_ptr_nonnull(strstr(mpg_error_message(mpg_results_error(res, 1)),
				     "malformed result frame"));
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

/* "oops\n": shorter than a frame header, so it once went unseen until the
 * next frame arrived, and then a queued task took the blame. */
static int writes_oops(mpg_task *t, const void *in, size_t len, void *ud)
{
	if (input_of(in) == 50) {
		atomic_fetch_add(&runs[50], 1);
		(void)!write(worker_out(), "oops\n", 5);
		for (;;)
			pause(); /* the pool kills us */
	}
	return returns_input(t, in, len, ud);
}

static void garbage_case(size_t chunksize)
{
	count_runs();
	mpg_pool *p = new_pool(2, chunksize);
	enum { N = 200 };
	mpg_buf *in = inputs(N);
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, writes_oops, in, N, NULL, &res), 0);
	assert_only_bad_failed(res, N, 50, MPG_ERR_PROTOCOL);
	const char *m = mpg_error_message(mpg_results_error(res, 50));
	ck_assert_msg(strstr(m, "wrote 5 bytes that are not a valid frame"), "%s", m);
	mpg_stats st = {.size = sizeof st};
	ck_assert_int_eq(mpg_pool_stats(p, &st), 0);
	ck_assert_uint_eq(st.tasks_retried, 0);
	mpg_results_free(res);
	mpg_pool_free(p);
}

START_TEST(garbage_shorter_than_a_header_fails_its_task_once)
{
	garbage_case(1);
}
END_TEST

START_TEST(garbage_in_a_batch_fails_its_task_once_and_no_other)
{
	garbage_case(40); /* task 50 is in the middle of a batch */
}
END_TEST

/* A large result's memfd shorter than the result, or not sealed: the
 * caller once got SIGBUS reading it. */
static int lies_about_its_memfd(mpg_task *t, const void *in, size_t len, void *ud)
{
	int64_t x = input_of(in);
	if (x == 2 || x == 4) {
		atomic_fetch_add(&runs[x], 1);
		int fd = memfd_create("short", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		(void)!ftruncate(fd, 4096);
		if (x == 4) /* sealed, but short */
			(void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
		uint8_t b[sizeof(struct result_head) + 16];
		struct result_head h = {.job = 1, .first = (uint64_t)x, .count = 1};
		uint64_t item[2] = {ITEM_SHM, 1u << 20};
		memcpy(b, &h, sizeof h);
		memcpy(b + sizeof h, item, 16);
		send_frame(RESULT, b, sizeof b, fd);
		_exit(0); /* its task is answered: the worker goes */
	}
	return returns_input(t, in, len, ud);
}

START_TEST(a_large_result_must_be_a_sealed_memfd_of_its_size)
{
	count_runs();
	mpg_pool *p = new_pool(2, 1);
	enum { N = 8 };
	mpg_buf *in = inputs(N);
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, lies_about_its_memfd, in, N, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 2);
	const char *m2 = mpg_error_message(mpg_results_error(res, 2));
	const char *m4 = mpg_error_message(mpg_results_error(res, 4));
	ck_assert_msg(strstr(m2, "not sealed"), "%s", m2);
	ck_assert_msg(strstr(m4, "holds only 4096 bytes"), "%s", m4);
	ck_assert_int_eq(mpg_error_get_kind(mpg_results_error(res, 2)), MPG_ERR_PROTOCOL);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(atomic_load(&runs[i]), 1);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

/* ---- exactly once ------------------------------------------------------- */

/* Every third task kills its own worker (SIGKILL: no handler, no last
 * words): the tasks of its batch that finished before it are not run
 * again. */
static int kills_every_third(mpg_task *t, const void *in, size_t len, void *ud)
{
	int64_t x = input_of(in);
	atomic_fetch_add(&runs[x], 1);
	if (x % 3 == 2)
		raise(SIGKILL);
	(void)len; (void)ud;
	return mpg_task_set_result(t, &x, 8);
}

static void check_killers(mpg_results *res, size_t n, mpg_pool *p)
{
	size_t killers = 0;
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(atomic_load(&runs[i]) == 1, "task %zu ran %d times", i,
			      atomic_load(&runs[i]));
		const mpg_error *e = mpg_results_error(res, i);
		if (i % 3 == 2) {
			killers++;
			ck_assert_ptr_nonnull(e);
			ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_KILLED);
		} else {
			ck_assert_msg(!e, "task %zu: %s", i, mpg_error_describe(e));
		}
	}
	ck_assert_uint_eq(mpg_results_failed(res), killers);
	mpg_stats st = {.size = sizeof st};
	ck_assert_int_eq(mpg_pool_stats(p, &st), 0);
	ck_assert_uint_eq(st.tasks_retried, 0);
	/* With batches of 10, each killer has finished tasks before it. */
	ck_assert_uint_gt(st.tasks_rescued, 0);
}

START_TEST(finished_tasks_of_a_killed_worker_never_run_again)
{
	count_runs();
	mpg_pool *p = new_pool(2, 10);
	enum { N = 300 };
	mpg_buf *in = inputs(N);
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, kills_every_third, in, N, NULL, &res), 0);
	check_killers(res, N, p);
	for (int i = 0; i < N; i++) {
		const void *d;
		size_t len;
		if (i % 3 != 2) {
			ck_assert_int_eq(mpg_results_get(res, i, &d, &len), 0);
			ck_assert_int_eq(input_of(d), i);
		}
	}
	mpg_results_free(res);
	mpg_pool_free(p);
	mpk_assert_no_children();
}
END_TEST

START_TEST(finished_fixed_size_tasks_of_a_killed_worker_never_run_again)
{
	count_runs();
	mpg_pool *p = new_pool(2, 10);
	enum { N = 300 };
	int64_t x[N], y[N];
	for (int i = 0; i < N; i++)
		x[i] = i;
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, kills_every_third, x, 8, N, y, 8, NULL, &res), 0);
	check_killers(res, N, p);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(y[i], i % 3 == 2 ? 0 : i);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

/* As kills_every_third, with 16 KiB results: frames of two tasks or more
 * leave them in the worker's arena, read from there (RESULT_IN_ARENA). */
enum { BIG_OUT = 16 << 10 };
static int kills_every_third_big(mpg_task *t, const void *in, size_t len, void *ud)
{
	int64_t x = input_of(in);
	atomic_fetch_add(&runs[x], 1);
	if (x % 3 == 2)
		raise(SIGKILL);
	(void)len; (void)ud;
	int64_t *out = mpg_task_alloc_result(t, BIG_OUT);
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < BIG_OUT / 8; i++)
		out[i] = x * 1000 + (int64_t)i;
	return 0;
}

static int big_result(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)len; (void)ud;
	int64_t x = input_of(in), *out = mpg_task_alloc_result(t, BIG_OUT);
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < BIG_OUT / 8; i++)
		out[i] = x * 1000 + (int64_t)i;
	return 0;
}

static void check_big(const int64_t *y, size_t n, bool killers)
{
	for (size_t k = 0; k < n; k++) {
		size_t bad = BIG_OUT / 8;
		for (size_t i = 0; i < BIG_OUT / 8 && bad == BIG_OUT / 8; i++)
			if (y[k * BIG_OUT / 8 + i] != (killers && k % 3 == 2 ? 0 : (int64_t)(k * 1000 + i)))
				bad = i;
		ck_assert_msg(bad == BIG_OUT / 8, "task %zu, word %zu", k, bad);
	}
}

START_TEST(big_fixed_results_read_from_the_arena_come_back_exactly_once)
{
	count_runs();
	mpg_pool *p = new_pool(2, 10);
	enum { N = 300 };
	int64_t x[N];
	int64_t *y = malloc((size_t)N * BIG_OUT);
	for (int i = 0; i < N; i++)
		x[i] = i;
	mpg_results *res;
	ck_assert_int_eq(mpg_map_array(p, kills_every_third_big, x, 8, N, y, BIG_OUT, NULL, &res), 0);
	check_killers(res, N, p);
	check_big(y, N, true);
	mpg_results_free(res);

	/* Many chunks of 8 MiB each: more than a worker's arena holds
	 * unread, so it waits for the parent to read some. */
	enum { M = 4096 };
	int64_t *xs = malloc(M * sizeof *xs), *ys = malloc((size_t)M * BIG_OUT);
	for (int i = 0; i < M; i++)
		xs[i] = i;
	mpg_options *o;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_chunksize(o, 512), 0);
	for (int round = 0; round < 3; round++) {
		memset(ys, 0xff, (size_t)M * BIG_OUT);
		ck_assert_int_eq(mpg_map_array(p, big_result, xs, 8, M, ys, BIG_OUT, o, NULL), 0);
		check_big(ys, M, false);
	}
	mpg_options_free(o);
	free(xs);
	free(ys);
	free(y);
	mpg_pool_free(p);
	mpk_assert_no_children();
}
END_TEST

START_TEST(finished_tasks_of_a_killed_worker_reach_an_iterator_once)
{
	count_runs();
	mpg_pool *p = new_pool(2, 10);
	enum { N = 300 };
	mpg_buf *in = inputs(N);
	mpg_iter *it;
	ck_assert_int_eq(mpg_imap_unordered(p, kills_every_third, in, N, NULL, &it), 0);
	static uint8_t seen[N];
	memset(seen, 0, sizeof seen);
	size_t index, len, n = 0;
	const void *d;
	const mpg_error *e;
	while (mpg_iter_next(it, &index, &d, &len, &e) == 1) {
		ck_assert_uint_lt(index, N);
		ck_assert_uint_eq(seen[index]++, 0);
		if (index % 3 == 2)
			ck_assert_ptr_nonnull(e);
		else
			ck_assert_int_eq(input_of(d), (int64_t)index);
		n++;
	}
	ck_assert_uint_eq(n, N);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(atomic_load(&runs[i]), 1);
	mpg_iter_free(it);
	mpg_pool_free(p);
}
END_TEST

/* ---- deaths of the task's own doing ------------------------------------- */

static int writes_to_a_closed_pipe(mpg_task *t, const void *in, size_t len, void *ud)
{
	if (input_of(in) == 1) {
		int fds[2];
		(void)!pipe(fds);
		close(fds[0]);
		(void)!write(fds[1], "x", 1); /* SIGPIPE */
	}
	return returns_input(t, in, len, ud);
}

START_TEST(a_worker_dead_of_its_own_sigpipe_is_signaled_not_sent_from_outside)
{
	count_runs();
	mpg_pool *p = new_pool(1, 1);
	mpg_buf *in = inputs(3);
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, writes_to_a_closed_pipe, in, 3, NULL, &res), 0);
	const mpg_error *e = mpg_results_error(res, 1);
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_SIGNALED);
	ck_assert_int_eq(mpg_error_signal(e), SIGPIPE);
	ck_assert_msg(strstr(mpg_error_message(e), "no one reads"), "%s", mpg_error_message(e));
	ck_assert_ptr_null(strstr(mpg_error_message(e), "from outside"));
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

static Suite *protocol_suite(void)
{
	Suite *s = suite_create("protocol");
	TCase *tc = tcase_create("crafted");
	tcase_add_test(tc, a_module_list_with_an_overlong_build_id_is_a_protocol_error);
	tcase_add_test(tc, a_result_frame_claiming_4g_errors_fails_its_task_at_once);
	tcase_add_test(tc, garbage_shorter_than_a_header_fails_its_task_once);
	tcase_add_test(tc, garbage_in_a_batch_fails_its_task_once_and_no_other);
	tcase_add_test(tc, a_large_result_must_be_a_sealed_memfd_of_its_size);
	suite_add_tcase(s, tc);
	tc = tcase_create("exactly-once");
	tcase_add_test(tc, finished_tasks_of_a_killed_worker_never_run_again);
	tcase_add_test(tc, finished_fixed_size_tasks_of_a_killed_worker_never_run_again);
	tcase_add_test(tc, finished_tasks_of_a_killed_worker_reach_an_iterator_once);
	tcase_add_test(tc, big_fixed_results_read_from_the_arena_come_back_exactly_once);
	suite_add_tcase(s, tc);
	tc = tcase_create("deaths");
	tcase_add_test(tc, a_worker_dead_of_its_own_sigpipe_is_signaled_not_sent_from_outside);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(protocol_suite)
