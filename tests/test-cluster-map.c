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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
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

struct prog {
	int finals;
	size_t total, done;
};

static void on_progress(const mpg_progress *p, void *userdata)
{
	struct prog *g = userdata;
	if (p->final) {
		g->finals++;
		g->total = p->total;
		g->done = p->done;
	}
}

static void test_map(mpg_cluster *cl)
{
	enum { N = 5000 };
	uint8_t *store;
	mpg_buf *in = make_inputs(N, &store);
	mpg_options *o = NULL;
	struct prog g = {0};
	CHECK(mpg_options_new(&o) == 0 && mpg_options_set_context(o, "ctx-bytes", 9) == 0 &&
		      mpg_options_set_chunksize(o, 37) == 0 &&
		      mpg_options_set_progress(o, on_progress, &g, 0) == 0,
	      "options");
	mpg_results *res = NULL;
	int r = mpg_cluster_map(cl, echo, in, N, o, &res);
	mpg_options_free(o);
	CHECK(r == 0 && res, "map returned %d", r);
	if (!res)
		goto out;
	CHECK(mpg_results_count(res) == N && mpg_results_failed(res) == 0, "%zu tasks, %zu failed",
	      mpg_results_count(res), mpg_results_failed(res));
	CHECK(g.finals == 1 && g.total == N && g.done == N, "%d final progress reports: %zu of %zu",
	      g.finals, g.done, g.total);
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
	mpg_results_free(res);
	/* Whoever asks first takes a chunk: on a loaded machine rank 0's own
	 * pool may take them all. Without it, the agents get two each first. */
	CHECK(mpg_cluster_set_local(cl, 0) == 0, "set_local");
	r = mpg_cluster_map(cl, echo, in, N, NULL, &res);
	int agents[3] = {0};
	for (size_t i = 0; r == 0 && i < N; i++) {
		const void *data = NULL;
		struct head h = {.rank = -1};
		if (mpg_results_get(res, i, &data, NULL) == 0)
			memcpy(&h, data, sizeof h);
		if (h.rank >= 0 && h.rank < 3)
			agents[h.rank]++;
	}
	CHECK(r == 0 && agents[0] == 0 && agents[1] > 0 && agents[2] > 0,
	      "map on the agents returned %d, tasks per rank %d %d %d", r, agents[0], agents[1],
	      agents[2]);
	CHECK(mpg_cluster_set_local(cl, 1) == 0, "set_local");
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

static volatile int *null_page;

/* UBSan (the sanitized build) must let the NULL load fault as it would. */
__attribute__((no_sanitize("undefined"))) static int crashy(mpg_task *task, const void *in,
							     size_t len, void *userdata)
{
	if (len == 4 && memcmp(in, "segv", 4) == 0)
		return *null_page; /* SIGSEGV */
	return faulty(task, in, len, userdata);
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
	const char *bt = mpg_error_backtrace(err);
	s->placed += mpg_error_host(err) != NULL && mpg_error_rank(err) >= 0 &&
		     ((mpg_error_get_kind(err) == MPG_ERR_RAISED && mpg_error_code(err) == EDOM) ||
		      (mpg_error_get_kind(err) == MPG_ERR_SIGNALED && mpg_error_signal(err) == SIGSEGV &&
		       bt && strstr(bt, "crashy")));
	s->last = mpg_error_task(err);
}

static void test_map_errors(mpg_cluster *cl)
{
	enum { N = 400 };
	mpg_buf in[N];
	for (size_t i = 0; i < N; i++)
		in[i] = i % 40 == 3 ? (mpg_buf){"x", 1} : (mpg_buf){"ok", 2};
	in[125] = (mpg_buf){"segv", 4}; /* a crash, on an agent */
	struct seen s = {.caller = pthread_self()};
	mpg_options *o = NULL;
	CHECK(mpg_options_new(&o) == 0 && mpg_options_set_error_callback(o, on_error, &s) == 0 &&
		      mpg_options_set_chunksize(o, 9) == 0,
	      "options");
	mpg_results *res = NULL;
	CHECK(mpg_cluster_set_local(cl, 0) == 0, "set_local"); /* failures on the agents */
	int r = mpg_cluster_map(cl, crashy, in, N, o, &res);
	CHECK(mpg_cluster_set_local(cl, 1) == 0, "set_local");
	mpg_options_free(o);
	CHECK(r == 0 && res, "map returned %d", r);
	if (!res)
		return;
	CHECK(mpg_results_failed(res) == N / 40 + 1, "%zu failed", mpg_results_failed(res));
	CHECK(s.n == N / 40 + 1 && s.off_caller == s.n && s.placed == s.n,
	      "%d callbacks, %d on the dispatcher, %d with their place", s.n, s.off_caller, s.placed);
	int ranks = 0;
	const mpg_error *segv = mpg_results_error(res, 125);
	CHECK(segv && mpg_error_get_kind(segv) == MPG_ERR_SIGNALED && mpg_error_rank(segv) > 0,
	      "task 125: %s", segv ? mpg_error_describe(segv) : "no error");
	for (size_t i = 0; i < N; i++) {
		const mpg_error *e = mpg_results_error(res, i);
		if (i % 40 != 3) {
			CHECK(!e || i == 125, "task %zu failed", i);
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

struct retried {
	size_t retried;
	int finals;
};

static void on_retry_progress(const mpg_progress *p, void *userdata)
{
	struct retried *g = userdata;
	if (p->final) {
		g->finals++;
		g->retried = p->retried;
	}
}

static void test_map_retry(mpg_cluster *cl)
{
	enum { N = 60 };
	mpg_buf in[N];
	for (size_t i = 0; i < N; i++)
		in[i] = (mpg_buf){"r", 1};
	mpg_options *o = NULL;
	struct retried g = {0};
	CHECK(mpg_options_new(&o) == 0 && mpg_options_set_policy(o, MPG_RETRY, 1) == 0 &&
		      mpg_options_set_chunksize(o, 4) == 0 &&
		      mpg_options_set_progress(o, on_retry_progress, &g, 0) == 0,
	      "options");
	clear_marks();
	int r = mpg_cluster_map(cl, flaky, in, N, o, NULL);
	CHECK(r == 0, "map with a retry returned %d failures", r);
	CHECK(g.finals == 1 && g.retried == N, "progress: %zu retried", g.retried);
	/* Without retries the first run of each fails. */
	clear_marks();
	r = mpg_cluster_map(cl, flaky, in, N, NULL, NULL);
	CHECK(r == N, "map without retries returned %d failures", r);
	mpg_options_free(o);
}

/* A failed task runs again on another rank: its first run, on rank R,
 * notes R and fails; a run on R again fails too, elsewhere it succeeds. */
static int elsewhere(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)in, (void)len, (void)userdata;
	char path[128];
	snprintf(path, sizeof path, "%s/e%zu", mark_dir, mpg_task_index(task));
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	int me = my_rank();
	if (fd >= 0) {
		(void)!write(fd, &me, sizeof me);
		close(fd);
		mpg_raise(EAGAIN, "first run, on rank %d", me);
	}
	int first = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!read(fd, &first, sizeof first);
		close(fd);
	}
	if (first == me)
		mpg_raise(EBUSY, "run again on rank %d, where it failed", me);
	return mpg_task_set_result(task, &me, sizeof me);
}

static int always_fails(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)in, (void)len, (void)userdata;
	mpg_raise(EIO, "task %zu fails on rank %d", mpg_task_index(task), my_rank());
	return EIO;
}

static void test_retry_elsewhere(mpg_cluster *cl)
{
	enum { N = 30 };
	mpg_buf in[N];
	for (size_t i = 0; i < N; i++)
		in[i] = (mpg_buf){"e", 1};
	mpg_options *o = NULL;
	CHECK(mpg_options_new(&o) == 0 && mpg_options_set_policy(o, MPG_RETRY, 1) == 0 &&
		      mpg_options_set_chunksize(o, 3) == 0,
	      "options");
	clear_marks();
	mpg_results *res = NULL;
	int r = mpg_cluster_map(cl, elsewhere, in, N, o, &res);
	CHECK(r == 0 && res && mpg_results_failed(res) == 0, "map returned %d, %zu failed", r,
	      res ? mpg_results_failed(res) : 0);
	for (size_t i = 0; res && i < mpg_results_failed(res) && i < 3; i++)
		fprintf(stderr, "  %s\n", mpg_error_describe(mpg_results_errors(res, NULL)[i]));
	mpg_results_free(res);
	/* Failing everywhere: its final error counts every run, names the last rank. */
	CHECK(mpg_options_set_policy(o, MPG_RETRY, 2) == 0, "policy");
	r = mpg_cluster_map(cl, always_fails, in, 4, o, &res);
	CHECK(r == 0 && res && mpg_results_failed(res) == 4, "map returned %d", r);
	for (size_t i = 0; res && i < 4; i++) {
		const mpg_error *e = mpg_results_error(res, i);
		char rank[32];
		snprintf(rank, sizeof rank, "on rank %d", e ? mpg_error_rank(e) : -2);
		CHECK(e && mpg_error_attempts(e) == 3 && strstr(mpg_error_message(e), rank),
		      "task %zu: %u attempts, %s", i, e ? mpg_error_attempts(e) : 0,
		      e ? mpg_error_describe(e) : "no error");
	}
	mpg_results_free(res);
	mpg_options_free(o);
}

/* mpg_cluster_imap_unordered(): every result once, read as they come,
 * while the caller makes no cluster call (the driver thread moves MPI). */
static void test_imap(mpg_cluster *cl)
{
	enum { N = 2000 };
	uint8_t *store;
	mpg_buf *in = make_inputs(N, &store);
	mpg_options *o = NULL;
	CHECK(mpg_options_new(&o) == 0 && mpg_options_set_chunksize(o, 25) == 0, "options");
	mpg_iter *it = NULL;
	CHECK(mpg_cluster_set_local(cl, 0) == 0, "set_local"); /* results from the agents */
	int r = mpg_cluster_imap_unordered(cl, echo, in, N, o, &it);
	mpg_options_free(o);
	CHECK(r == 0 && it, "imap returned %d", r);
	if (!it)
		goto out;
	static char seen[N];
	memset(seen, 0, sizeof seen);
	size_t index, len, got = 0;
	const void *data;
	const mpg_error *err;
	int ranks = 0;
	while ((r = mpg_iter_next(it, &index, &data, &len, &err)) == 1) {
		got++;
		CHECK(index < N && !seen[index] && !err, "index %zu seen %d, err %p", index,
		      index < N ? seen[index] : -1, (const void *)err);
		if (index >= N || err)
			continue;
		seen[index] = 1;
		struct head h;
		memcpy(&h, data, sizeof h);
		CHECK(len == sizeof h + in[index].len && h.index == index, "result %zu", index);
		ranks |= 1 << h.rank;
	}
	CHECK(r == 0 && got == N, "iter ended with %d after %zu results", r, got);
	CHECK(ranks == 6, "results from ranks %#x", ranks);
	mpg_iter_free(it);
	CHECK(mpg_cluster_set_local(cl, 1) == 0, "set_local");
	/* Freed after a few results: the rest is dropped, nothing hangs. */
	r = mpg_cluster_imap_unordered(cl, echo, in, N, NULL, &it);
	CHECK(r == 0, "imap returned %d", r);
	for (int k = 0; r == 0 && k < 5; k++)
		CHECK(mpg_iter_next(it, &index, &data, &len, &err) == 1, "result %d", k);
	mpg_iter_free(it);
	r = mpg_cluster_map(cl, echo, in, 50, NULL, NULL);
	CHECK(r == 0, "map after a freed iterator returned %d", r);
out:
	free(in);
	free(store);
}

/* mpg_cluster_submit(): callbacks on rank 0's dispatcher thread, one at a
 * time; futures; a task's number on every rank; submitting from a
 * callback; mpg_cluster_wait(). */
struct sub {
	mpg_cluster *cl;
	pthread_t caller;
	int in_cb, overlap, results, errors, off_caller, chained, bad_number;
	int ranks;
};

static void sub_result(size_t index, const void *data, size_t len, void *userdata)
{
	struct sub *s = userdata;
	s->overlap += s->in_cb++;
	s->off_caller += !pthread_equal(pthread_self(), s->caller);
	struct head h;
	if (len >= sizeof h) {
		memcpy(&h, data, sizeof h);
		s->bad_number += h.index != index;
		s->ranks |= 1 << h.rank;
	} else {
		s->bad_number++;
	}
	s->results++;
	if (index == 0 && !s->chained) { /* from a callback: not blocking */
		s->chained = 1;
		CHECK(mpg_cluster_submit(s->cl, echo, "c", 1, NULL, sub_result, NULL, s, NULL) == 0,
		      "submit from a callback");
	}
	s->in_cb--;
}

static int array_index(mpg_task *task, const void *in, size_t len, void *userdata);

static void sub_error(const mpg_error *err, void *userdata)
{
	struct sub *s = userdata;
	s->overlap += s->in_cb++;
	s->errors += mpg_error_rank(err) >= 0 && mpg_error_host(err) != NULL;
	if (s->errors == 1) { /* calls that wait would wait for this thread */
		long in = 0, out[2];
		CHECK(mpg_cluster_map_array(s->cl, array_index, &in, sizeof in, 1, out, sizeof out, 0,
					    NULL, NULL) == -EDEADLK,
		      "map_array in a callback");
		mpg_buf b = {"x", 1};
		CHECK(mpg_cluster_map(s->cl, echo, &b, 1, NULL, NULL) == -EDEADLK, "map in a callback");
	}
	s->in_cb--;
}

static void test_submit(mpg_cluster *cl)
{
	enum { N = 300 };
	struct sub s = {.cl = cl, .caller = pthread_self()};
	mpg_future *f[3] = {NULL};
	CHECK(mpg_cluster_set_local(cl, 0) == 0, "set_local"); /* run on the agents */
	for (size_t i = 0; i < N; i++) {
		int r = mpg_cluster_submit(cl, i % 50 == 7 ? faulty : echo, i % 50 == 7 ? "x" : "ab",
					   i % 50 == 7 ? 1 : 2, NULL, sub_result, sub_error, &s,
					   i < 3 ? &f[i] : NULL);
		CHECK(r == 0, "submit %zu returned %d", i, r);
	}
	for (int k = 0; k < 3; k++) {
		CHECK(f[k] && mpg_future_wait(f[k], -1) == 0, "future %d", k);
		const void *data = NULL;
		size_t len = 0;
		CHECK(mpg_future_result(f[k], &data, &len) == 0 && len == sizeof(struct head) + 2,
		      "future %d: %zu bytes", k, len);
		struct head h;
		if (data && len >= sizeof h) {
			memcpy(&h, data, sizeof h);
			CHECK(h.index == mpg_future_task(f[k]), "future %d: task %zu, number %zu", k,
			      h.index, mpg_future_task(f[k]));
		}
	}
	/* A failing one, with its future. */
	mpg_future *bad = NULL;
	CHECK(mpg_cluster_submit(cl, faulty, "x", 1, NULL, NULL, sub_error, &s, &bad) == 0, "submit");
	CHECK(bad && mpg_future_wait(bad, -1) == 0 && mpg_future_result(bad, NULL, NULL) == -EIO,
	      "failed future");
	const mpg_error *e = mpg_future_error(bad);
	CHECK(e && mpg_error_task(e) == mpg_future_task(bad) && mpg_error_host(e),
	      "its error: %s", e ? mpg_error_describe(e) : "none");
	mpg_future_free(bad);
	CHECK(mpg_cluster_wait(cl, -1) == 0, "wait");
	int nfail = N / 50 + 1;
	CHECK(s.results == N - N / 50 + 1 && s.errors == nfail && s.overlap == 0 &&
		      s.off_caller == s.results && s.bad_number == 0 && s.chained,
	      "%d results, %d errors, %d overlaps, %d off the caller, %d wrong numbers, chained %d",
	      s.results, s.errors, s.overlap, s.off_caller, s.bad_number, s.chained);
	CHECK(s.ranks == 6, "submitted tasks ran on ranks %#x", s.ranks);
	CHECK(mpg_cluster_set_local(cl, 1) == 0, "set_local");
	for (int k = 0; k < 3; k++)
		mpg_future_free(f[k]);
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

/* A task that takes a minute: killed when the call aborts. */
static int slow_or_faulty(mpg_task *task, const void *in, size_t len, void *userdata)
{
	if (len == 4 && memcmp(in, "slow", 4) == 0)
		sleep(60);
	return faulty(task, in, len, userdata);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* MPG_ABORT: the first failure stops the call with -ECANCELED and that
 * error, at once: the agent running a slow task stops it (rank 1 runs
 * task 0, a minute long; rank 2 fails task 1). The cluster takes no call
 * after. */
static void test_abort(mpg_cluster *cl)
{
	enum { N = 40 };
	static mpg_buf in[N];
	for (size_t i = 0; i < N; i++)
		in[i] = i == 0 ? (mpg_buf){"slow", 4} : i == 1 ? (mpg_buf){"x", 1} : (mpg_buf){"ok", 2};
	mpg_options *o = NULL;
	CHECK(mpg_options_new(&o) == 0 && mpg_options_set_policy(o, MPG_ABORT, 0) == 0 &&
		      mpg_options_set_chunksize(o, 1) == 0,
	      "options");
	mpg_results *res = NULL;
	CHECK(mpg_cluster_abort_error(cl) == NULL, "an abort error before any abort");
	CHECK(mpg_cluster_set_local(cl, 0) == 0, "set_local");
	double t0 = now_s();
	int r = mpg_cluster_map(cl, slow_or_faulty, in, N, o, &res);
	double took = now_s() - t0;
	CHECK(r == -ECANCELED && !res, "aborted map returned %d", r);
	CHECK(took < 30, "the aborted map took %.1f s: the slow task was not stopped", took);
	const mpg_error *e = mpg_cluster_abort_error(cl);
	CHECK(e && mpg_error_task(e) == 1 && mpg_error_rank(e) == 2 && mpg_error_host(e),
	      "abort error: %s", e ? mpg_error_describe(e) : "none");
	if (e)
		printf("aborted in %.2f s: %s\n", took, mpg_error_describe(e));
	r = mpg_cluster_map(cl, faulty, in, 10, NULL, &res);
	CHECK(r == -ESHUTDOWN, "map after the abort returned %d", r);
	static long a[4];
	static struct idx b[4];
	r = mpg_cluster_map_array(cl, array_index, a, sizeof *a, 4, b, sizeof *b, 0, NULL, NULL);
	CHECK(r == -ESHUTDOWN, "map_array after the abort returned %d", r);
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
	null_page = NULL;
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
	test_retry_elsewhere(cl);
	test_imap(cl);
	test_submit(cl);
	test_abort(cl);
	clear_marks();
	CHECK(rmdir(mark_dir) == 0, "rmdir %s", mark_dir);
	mpg_cluster_free(cl);
	no_children("rank 0");
	printf("test-cluster-map: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
