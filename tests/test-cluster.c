/* SPDX-License-Identifier: MIT */
/* libmpguard-mpi end to end, run by tests/run-mpi.sh under
 * `mpirun -np 3`: one map over every rank's workers, in input order; a
 * task that raises and one that segfaults on an agent come back to rank 0
 * with rank, host and a backtrace symbolized there; every rank ends with
 * no child left. Not a Check suite: Check forks each test, and a process
 * forked after MPI_Init must not use MPI. */
#include "mpguard-mpi.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 10000

static int failures;
#define CHECK(cond, ...)                                                           \
	do {                                                                       \
		if (!(cond)) {                                                     \
			fprintf(stderr, "test-cluster:%d: %s: ", __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                              \
			fputc('\n', stderr);                                       \
			failures++;                                                \
		}                                                                  \
	} while (0)

struct out {
	long square;
	int rank; /* the rank whose worker ran it */
};

/* The rank a worker belongs to: mpirun sets it in each rank's
 * environment, which the fork server and its workers inherit. */
static int my_rank(void)
{
	const char *r = getenv("OMPI_COMM_WORLD_RANK");
	return r ? atoi(r) : -1;
}

static int square(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)len, (void)userdata;
	long v;
	memcpy(&v, in, sizeof v);
	struct out o = {v * v, my_rank()};
	return mpg_task_set_result(task, &o, sizeof o);
}

static volatile int *null_page;

/* UBSan (the sanitized build) must let the NULL load fault as it would. */
__attribute__((no_sanitize("undefined"))) static int faulty_task(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)len, (void)userdata;
	long v;
	memcpy(&v, in, sizeof v);
	if (v == 17)
		mpg_raise(EDOM, "input %ld is out of range", v);
	if (v == 42)
		return *null_page; /* SIGSEGV */
	struct out o = {v, my_rank()};
	return mpg_task_set_result(task, &o, sizeof o);
}

struct seen {
	int n;
	const char *host;
	int raised_ok, segv_ok;
};

static void on_error(const mpg_error *err, void *userdata)
{
	struct seen *s = userdata;
	s->n++;
	const char *bt = mpg_error_backtrace(err);
	printf("rank 0 got: %s\n", mpg_error_describe(err));
	CHECK(mpg_error_rank(err) == 1 || mpg_error_rank(err) == 2, "rank %d", mpg_error_rank(err));
	CHECK(mpg_error_host(err) && strcmp(mpg_error_host(err), s->host) == 0, "host %s",
	      mpg_error_host(err));
	CHECK(mpg_error_pid(err) > 0 && mpg_error_pid(err) != getpid(), "pid %d",
	      (int)mpg_error_pid(err));
	CHECK(mpg_error_worker(err) >= 0, "worker %d", mpg_error_worker(err));
	CHECK(strstr(mpg_error_describe(err), " of rank ") != NULL, "%s", mpg_error_describe(err));
	CHECK(bt && strstr(bt, "faulty_task"), "backtrace:\n%s", bt ? bt : "(none)");
	if (mpg_error_task(err) == 17) {
		CHECK(mpg_error_get_kind(err) == MPG_ERR_RAISED, "kind %d", mpg_error_get_kind(err));
		CHECK(mpg_error_code(err) == EDOM, "code %d", mpg_error_code(err));
		CHECK(strcmp(mpg_error_message(err), "input 17 is out of range") == 0, "%s",
		      mpg_error_message(err));
		s->raised_ok = 1;
	} else if (mpg_error_task(err) == 42) {
		CHECK(mpg_error_get_kind(err) == MPG_ERR_SIGNALED, "kind %d", mpg_error_get_kind(err));
		CHECK(mpg_error_signal(err) == SIGSEGV, "signal %d", mpg_error_signal(err));
		int code = 0;
		uintptr_t addr = 1;
		CHECK(mpg_error_fault(err, &code, &addr) == 0 && addr == 0, "fault at %#lx",
		      (unsigned long)addr);
		s->segv_ok = 1;
	} else {
		CHECK(0, "unexpected failed task %zu", mpg_error_task(err));
	}
}

static void test_order(mpg_cluster *cl)
{
	static long in[N];
	static struct out out[N];
	for (long i = 0; i < N; i++)
		in[i] = i - 5000;
	int r = mpg_cluster_map_array(cl, square, in, sizeof *in, N, out, sizeof *out, 0, NULL, NULL);
	CHECK(r == 0, "map returned %d", r);
	int by_rank[3] = {0};
	for (long i = 0; i < N; i++) {
		CHECK(out[i].square == in[i] * in[i], "out[%ld] = %ld", i, out[i].square);
		if (out[i].rank >= 0 && out[i].rank < 3)
			by_rank[out[i].rank]++;
		else
			CHECK(0, "out[%ld] ran on rank %d", i, out[i].rank);
		if (failures > 10)
			return;
	}
	printf("tasks per rank: %d %d %d\n", by_rank[0], by_rank[1], by_rank[2]);
	/* Chunks go to whoever asks first: every rank gets some with 24 of them. */
	CHECK(by_rank[0] > 0 && by_rank[1] > 0 && by_rank[2] > 0, "a rank got no work");
}

static void test_failures(mpg_cluster *cl)
{
	/* Only the agents run tasks: the failures are on another rank. */
	CHECK(mpg_cluster_set_local(cl, 0) == 0, "set_local");
	long in[100];
	struct out out[100];
	for (long i = 0; i < 100; i++)
		in[i] = i;
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	struct seen s = {.host = host};
	int r = mpg_cluster_map_array(cl, faulty_task, in, sizeof *in, 100, out, sizeof *out, 5,
				      on_error, &s);
	CHECK(r == 2, "map returned %d, 2 failed expected", r);
	CHECK(s.n == 2 && s.raised_ok && s.segv_ok, "%d errors", s.n);
	for (long i = 0; i < 100; i++) {
		if (i == 17 || i == 42)
			CHECK(out[i].square == 0 && out[i].rank == 0, "failed slot %ld not zeroed", i);
		else
			CHECK(out[i].square == i && (out[i].rank == 1 || out[i].rank == 2),
			      "out[%ld] = %ld on rank %d", i, out[i].square, out[i].rank);
	}
	/* The ranks go on after the crash: another map over them works. */
	r = mpg_cluster_map_array(cl, faulty_task, in + 50, sizeof *in, 50, out, sizeof *out, 5,
				  NULL, NULL);
	CHECK(r == 0, "map after the crash returned %d", r);
	CHECK(mpg_cluster_set_local(cl, 1) == 0, "set_local");
}

struct cancelled {
	int n, on_agent;
};

static void on_cancelled(const mpg_error *err, void *userdata)
{
	struct cancelled *c = userdata;
	c->n++;
	c->on_agent += mpg_error_get_kind(err) == MPG_ERR_CANCELLED && mpg_error_code(err) == ENOENT &&
		       mpg_error_rank(err) >= 1 && mpg_error_host(err) != NULL &&
		       strstr(mpg_error_message(err), "not loaded") != NULL;
}

/* A function in a library loaded on rank 0 only: the agents fail its
 * chunks as CANCELLED (ENOENT), naming themselves; nothing hangs. */
static void test_unknown_function(mpg_cluster *cl)
{
	void *lib = dlopen(CLUSTERLIB_PATH, RTLD_NOW | RTLD_LOCAL);
	CHECK(lib, "dlopen: %s", dlerror());
	if (!lib)
		return;
	mpg_task_fn fn;
	void *sym = dlsym(lib, "clusterlib_task");
	memcpy(&fn, &sym, sizeof fn);
	CHECK(mpg_cluster_set_local(cl, 0) == 0, "set_local");
	long in[20], out[20];
	for (int i = 0; i < 20; i++)
		in[i] = i + 1;
	struct cancelled c = {0};
	int r = mpg_cluster_map_array(cl, fn, in, sizeof *in, 20, out, sizeof *out, 3,
				      on_cancelled, &c);
	CHECK(r == 20 && c.n == 20 && c.on_agent == 20, "map returned %d, %d errors, %d as expected",
	      r, c.n, c.on_agent);
	for (int i = 0; i < 20; i++)
		CHECK(out[i] == 0, "failed slot %d not zeroed", i);
	CHECK(mpg_cluster_set_local(cl, 1) == 0, "set_local");
	dlclose(lib);
}

static void no_children(const char *who)
{
	errno = 0;
	pid_t p = waitpid(-1, NULL, WNOHANG);
	CHECK(p == -1 && errno == ECHILD, "%s has a child left (waitpid: %d)", who, (int)p);
}

int main(int argc, char **argv)
{
	null_page = NULL;
	mpg_options *opts = NULL;
	if (mpg_options_new(&opts) < 0 || mpg_options_set_workers(opts, 1) < 0)
		return 1;
	mpg_cluster *cl = NULL;
	int r = mpg_cluster_init(&argc, &argv, opts, &cl);
	mpg_options_free(opts);
	if (r < 0) {
		fprintf(stderr, "test-cluster: mpg_cluster_init: %s\n", strerror(-r));
		return 1;
	}
	if (r > 0) { /* an agent, done */
		no_children("an agent");
		return failures ? 1 : 0;
	}
	CHECK(mpg_cluster_ranks(cl) == 3, "%d ranks", mpg_cluster_ranks(cl));
	CHECK(mpg_cluster_workers(cl) == 3, "%u workers", mpg_cluster_workers(cl));
	test_order(cl);
	test_failures(cl);
	test_unknown_function(cl);
	mpg_cluster_free(cl);
	no_children("rank 0");
	printf("test-cluster: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
