/* SPDX-License-Identifier: MIT */
/* mpg_cluster_map() end to end, run by tests/run-mpi.sh under
 * `mpirun -np 3`: inputs and results of any length in input order over
 * every rank; the call's context, the task's index in the whole call and
 * the pool's userdata as a task sees them on every rank; the error
 * callback on rank 0's dispatcher thread; retries; mpg_cluster_map_array()'s
 * task index; MPG_ABORT (last: it ends the cluster's calls). Not a Check
 * suite: a process forked after MPI_Init must not use MPI. */
#include "mpguard-mpi.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...)                                                               \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "test-cluster-map:%d: %s: ", __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                  \
			fputc('\n', stderr);                                           \
			failures++;                                                    \
		}                                                                      \
	} while (0)

static int my_rank(void)
{
	const char *r = getenv("OMPI_COMM_WORLD_RANK");
	return r ? atoi(r) : -1;
}

/* The pool's userdata: set before mpg_cluster_init() on every rank,
 * changed on rank 0 after it, which no worker sees. */
struct shared {
	int magic;
};
static struct shared shared;

/* A result: what the task saw, then its input reversed. */
struct head {
	size_t index, ctx_len;
	int rank, magic;
	char ctx[16];
};

static int echo(mpg_task *task, const void *in, size_t len, void *userdata)
{
	struct head h = {.index = mpg_task_index(task), .rank = my_rank(),
			 .magic = userdata ? ((const struct shared *)userdata)->magic : -1};
	const void *ctx = mpg_task_context(task, &h.ctx_len);
	if (ctx)
		memcpy(h.ctx, ctx, h.ctx_len < sizeof h.ctx ? h.ctx_len : sizeof h.ctx);
	uint8_t *out = mpg_task_alloc_result(task, sizeof h + len);
	if (!out)
		return ENOMEM;
	memcpy(out, &h, sizeof h);
	for (size_t i = 0; i < len; i++)
		out[sizeof h + i] = ((const uint8_t *)in)[len - 1 - i];
	return 0;
}

/* Input i: i % 300 bytes (some empty), a pattern of i. */
static mpg_buf *make_inputs(size_t n, uint8_t **store)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += i % 300;
	*store = malloc(total + 1);
	mpg_buf *in = calloc(n, sizeof *in);
	uint8_t *p = *store;
	for (size_t i = 0; i < n; i++) {
		in[i] = (mpg_buf){p, i % 300};
		for (size_t k = 0; k < i % 300; k++)
			p[k] = (uint8_t)(i * 7 + k);
		p += i % 300;
	}
	return in;
}

static void test_map(mpg_cluster *cl)
{
	enum { N = 5000 };
	uint8_t *store;
	mpg_buf *in = make_inputs(N, &store);
	mpg_options *o = NULL;
	CHECK(mpg_options_new(&o) == 0 && mpg_options_set_context(o, "ctx-bytes", 9) == 0 &&
		      mpg_options_set_chunksize(o, 37) == 0,
	      "options");
	mpg_results *res = NULL;
	int r = mpg_cluster_map(cl, echo, in, N, o, &res);
	mpg_options_free(o);
	CHECK(r == 0 && res, "map returned %d", r);
	if (!res)
		goto out;
	CHECK(mpg_results_count(res) == N && mpg_results_failed(res) == 0, "%zu tasks, %zu failed",
	      mpg_results_count(res), mpg_results_failed(res));
	int by_rank[3] = {0};
	for (size_t i = 0; i < N && failures < 10; i++) {
		const void *data = NULL;
		size_t len = 0;
		CHECK(mpg_results_get(res, i, &data, &len) == 0, "task %zu", i);
		if (!data || len < sizeof(struct head)) {
			CHECK(0, "result %zu: %zu bytes", i, len);
			continue;
		}
		struct head h;
		memcpy(&h, data, sizeof h);
		CHECK(len == sizeof h + in[i].len, "result %zu: %zu bytes", i, len);
		CHECK(h.index == i, "task %zu saw mpg_task_index() %zu", i, h.index);
		CHECK(h.ctx_len == 9 && memcmp(h.ctx, "ctx-bytes", 9) == 0, "task %zu: context %zu bytes",
		      i, h.ctx_len);
		CHECK(h.magic == 1234, "task %zu on rank %d: userdata %d", i, h.rank, h.magic);
		const uint8_t *rev = (const uint8_t *)data + sizeof h;
		for (size_t k = 0; k < in[i].len && len == sizeof h + in[i].len; k++)
			if (rev[k] != ((const uint8_t *)in[i].data)[in[i].len - 1 - k]) {
				CHECK(0, "result %zu byte %zu", i, k);
				break;
			}
		if (h.rank >= 0 && h.rank < 3)
			by_rank[h.rank]++;
	}
	printf("map: tasks per rank: %d %d %d\n", by_rank[0], by_rank[1], by_rank[2]);
	CHECK(by_rank[0] > 0 && by_rank[1] > 0 && by_rank[2] > 0, "a rank got no work");
	mpg_results_free(res);
	/* With no results asked: the number of failures. */
	r = mpg_cluster_map(cl, echo, in, 100, NULL, NULL);
	CHECK(r == 0, "map without results returned %d", r);
	/* No inputs: nothing to do. */
	r = mpg_cluster_map(cl, echo, NULL, 0, NULL, &res);
	CHECK(r == 0 && mpg_results_count(res) == 0, "empty map returned %d", r);
	mpg_results_free(res);
out:
	free(in);
	free(store);
}

static int faulty(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	if (len == 1 && *(const char *)in == 'x')
		mpg_raise(EDOM, "task %zu refuses x", mpg_task_index(task));
	return mpg_task_set_result(task, in, len);
}

struct seen {
	pthread_t caller;
	int n, off_caller, placed;
	size_t last;
	int in_order;
};

static void on_error(const mpg_error *err, void *userdata)
{
	struct seen *s = userdata;
	s->n++;
	s->off_caller += !pthread_equal(pthread_self(), s->caller);
	s->placed += mpg_error_host(err) != NULL && mpg_error_rank(err) >= 0 &&
		     mpg_error_get_kind(err) == MPG_ERR_RAISED && mpg_error_code(err) == EDOM;
	s->last = mpg_error_task(err);
}

static void test_map_errors(mpg_cluster *cl)
{
	enum { N = 400 };
	mpg_buf in[N];
	for (size_t i = 0; i < N; i++)
		in[i] = i % 40 == 3 ? (mpg_buf){"x", 1} : (mpg_buf){"ok", 2};
	struct seen s = {.caller = pthread_self()};
	mpg_options *o = NULL;
	CHECK(mpg_options_new(&o) == 0 && mpg_options_set_error_callback(o, on_error, &s) == 0 &&
		      mpg_options_set_chunksize(o, 9) == 0,
	      "options");
	mpg_results *res = NULL;
	int r = mpg_cluster_map(cl, faulty, in, N, o, &res);
	mpg_options_free(o);
	CHECK(r == 0 && res, "map returned %d", r);
	if (!res)
		return;
	CHECK(mpg_results_failed(res) == N / 40, "%zu failed", mpg_results_failed(res));
	CHECK(s.n == N / 40 && s.off_caller == s.n && s.placed == s.n,
	      "%d callbacks, %d on the dispatcher, %d with their place", s.n, s.off_caller, s.placed);
	int ranks = 0;
	for (size_t i = 0; i < N; i++) {
		const mpg_error *e = mpg_results_error(res, i);
		if (i % 40 != 3) {
			CHECK(!e, "task %zu failed", i);
			continue;
		}
		CHECK(e && mpg_error_task(e) == i, "task %zu: error of task %zu", i,
		      e ? mpg_error_task(e) : 0);
		CHECK(e && strstr(mpg_error_message(e), "refuses x"), "task %zu: %s", i,
		      e ? mpg_error_message(e) : "no error");
		if (e)
			ranks |= 1 << mpg_error_rank(e);
		char msg[64];
		snprintf(msg, sizeof msg, "task %zu refuses x", i);
		CHECK(e && strcmp(mpg_error_message(e), msg) == 0, "message %s",
		      e ? mpg_error_message(e) : "-");
	}
	CHECK(ranks & 6, "no failure came from an agent (ranks %#x)", ranks);
	size_t nerr = 0;
	const mpg_error *const *errs = mpg_results_errors(res, &nerr);
	for (size_t i = 1; i < nerr; i++)
		CHECK(mpg_error_task(errs[i - 1]) < mpg_error_task(errs[i]), "errors out of order");
	mpg_results_free(res);
}

/* Fails its first run of each input (a file per input marks it), so it
 * takes a retry to succeed, wherever it runs (every rank is on this host).
 * The directory is named before mpg_cluster_init(), the same on every rank
 * (after mpirun, their parent): workers see memory as it was then. */
static char mark_dir[64];
static int flaky(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	char path[128];
	snprintf(path, sizeof path, "%s/%zu", mark_dir, mpg_task_index(task));
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
		mpg_raise(EAGAIN, "first run of task %zu", mpg_task_index(task));
	}
	return mpg_task_set_result(task, in, len);
}

/* Empties the mark directory (no system(): rank 0 must not fork). */
static void clear_marks(void)
{
	DIR *d = opendir(mark_dir);
	CHECK(d, "opendir %s", mark_dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			CHECK(unlinkat(dirfd(d), e->d_name, 0) == 0, "unlink %s", e->d_name);
	if (d)
		closedir(d);
}

static void test_map_retry(mpg_cluster *cl)
{
	enum { N = 60 };
	mpg_buf in[N];
	for (size_t i = 0; i < N; i++)
		in[i] = (mpg_buf){"r", 1};
	mpg_options *o = NULL;
	CHECK(mpg_options_new(&o) == 0 && mpg_options_set_policy(o, MPG_RETRY, 1) == 0 &&
		      mpg_options_set_chunksize(o, 4) == 0,
	      "options");
	clear_marks();
	int r = mpg_cluster_map(cl, flaky, in, N, o, NULL);
	CHECK(r == 0, "map with a retry returned %d failures", r);
	/* Without retries the first run of each fails. */
	clear_marks();
	r = mpg_cluster_map(cl, flaky, in, N, NULL, NULL);
	CHECK(r == N, "map without retries returned %d failures", r);
	mpg_options_free(o);
}

struct idx {
	size_t index;
	int rank;
};

static int array_index(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)in, (void)len, (void)userdata;
	struct idx x = {mpg_task_index(task), my_rank()};
	return mpg_task_set_result(task, &x, sizeof x);
}

/* mpg_cluster_map_array(): a task's index is its index in the call. */
static void test_array_index(mpg_cluster *cl)
{
	enum { N = 300 };
	static int in[N];
	static struct idx out[N];
	int r = mpg_cluster_map_array(cl, array_index, in, sizeof *in, N, out, sizeof *out, 7,
				      NULL, NULL);
	CHECK(r == 0, "map_array returned %d", r);
	int wrong = 0;
	for (size_t i = 0; i < N; i++)
		wrong += out[i].index != i;
	CHECK(wrong == 0, "%d tasks saw another index (task 8: %zu, on rank %d)", wrong,
	      out[8].index, out[8].rank);
}

/* MPG_ABORT: the first failure stops the call with -ECANCELED and that
 * error; the cluster takes no call after. */
static void test_abort(mpg_cluster *cl)
{
	enum { N = 2000 };
	static mpg_buf in[N];
	for (size_t i = 0; i < N; i++)
		in[i] = i == 1500 ? (mpg_buf){"x", 1} : (mpg_buf){"ok", 2};
	mpg_options *o = NULL;
	CHECK(mpg_options_new(&o) == 0 && mpg_options_set_policy(o, MPG_ABORT, 0) == 0 &&
		      mpg_options_set_chunksize(o, 10) == 0,
	      "options");
	mpg_results *res = NULL;
	CHECK(mpg_cluster_abort_error(cl) == NULL, "an abort error before any abort");
	int r = mpg_cluster_map(cl, faulty, in, N, o, &res);
	CHECK(r == -ECANCELED && !res, "aborted map returned %d", r);
	const mpg_error *e = mpg_cluster_abort_error(cl);
	CHECK(e && mpg_error_task(e) == 1500 && mpg_error_host(e), "abort error: %s",
	      e ? mpg_error_describe(e) : "none");
	if (e)
		printf("aborted: %s\n", mpg_error_describe(e));
	r = mpg_cluster_map(cl, faulty, in, 10, NULL, &res);
	CHECK(r == -ESHUTDOWN, "map after the abort returned %d", r);
	mpg_options_free(o);
}

static void no_children(const char *who)
{
	errno = 0;
	pid_t p = waitpid(-1, NULL, WNOHANG);
	CHECK(p == -1 && errno == ECHILD, "%s has a child left (waitpid: %d)", who, (int)p);
}

int main(int argc, char **argv)
{
	shared.magic = 1234;
	snprintf(mark_dir, sizeof mark_dir, "/tmp/test-cluster-map.%d", (int)getppid());
	if (mkdir(mark_dir, 0700) < 0 && errno != EEXIST)
		return 1;
	mpg_options *opts = NULL;
	if (mpg_options_new(&opts) < 0 || mpg_options_set_workers(opts, 1) < 0 ||
	    mpg_options_set_userdata(opts, &shared) < 0)
		return 1;
	mpg_cluster *cl = NULL;
	int r = mpg_cluster_init(&argc, &argv, opts, &cl);
	mpg_options_free(opts);
	if (r < 0) {
		fprintf(stderr, "test-cluster-map: mpg_cluster_init: %s\n", strerror(-r));
		return 1;
	}
	if (r > 0) { /* an agent, done */
		no_children("an agent");
		return failures ? 1 : 0;
	}
	shared.magic = 999; /* after the pools were made: no worker sees it */
	test_map(cl);
	test_map_errors(cl);
	test_map_retry(cl);
	test_array_index(cl);
	test_abort(cl);
	clear_marks();
	CHECK(rmdir(mark_dir) == 0, "rmdir %s", mark_dir);
	mpg_cluster_free(cl);
	no_children("rank 0");
	printf("test-cluster-map: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
