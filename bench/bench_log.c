/* SPDX-License-Identifier: MIT */
/* bench_log.c — how fast does libmplog merge the logs of many processes
 * into one file, against what one would write by hand and against Python?
 *
 * In one run, N children (default 2 x CPUs) each log M records (default
 * 200 000) with a ~120-byte message:
 *   (1) libmplog: mplog_info() in the children (writer from
 *       mplog_child_setup()), the parent's aggregator thread writing one
 *       file in the TEXT format (each line also carries time, level,
 *       worker, pid and source location, so it writes more bytes than
 *       (2));
 *   (2) each child write(2)-ing the same lines, one call per line, to one
 *       file opened with O_APPEND;
 *   (3) Python's logging cookbook recipe: QueueHandler in the children,
 *       QueueListener + FileHandler in the parent (py_log_queue.py).
 * Each is timed from the release of the (already forked) children to the
 * last record in the file; the records in each file are counted (lines;
 * every message is one line) and must be exactly N x M. Child 0 of (1)
 * also times every 64th mplog_info() call with clock_gettime() around it
 * (so each sample includes one clock read, ~20 ns) and reports the median
 * and 99th percentile, under full contention. The ratios are printed
 * against their bars as PASS/FAIL; the exit status is 0 unless something
 * broke (a record lost, a child failed). */
#include "bench.h"
#include <mplog.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_PY
#error "BENCH_PY must be the path of py_log_queue.py (bench/meson.build sets it)"
#endif

extern char **environ;

#define FILLER "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut lab"
#define LINE_FMT "worker %2d record %8zu: %s"
#define SAMPLE_EVERY 64u

#define BAR_MPLOG_OVER_PY 5.0     /* (1)/(3) throughput: at least */
#define BAR_MPLOG_OVER_DIRECT 2.0 /* (1)/(2) time: at most */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Lines in path, or -1. */
static long long count_lines(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	static char buf[1 << 16];
	long long n = 0;
	ssize_t k;
	while ((k = read(fd, buf, sizeof buf)) > 0)
		for (ssize_t i = 0; i < k; i++)
			n += buf[i] == '\n';
	close(fd);
	return n;
}

/* Block until the parent closes the write end of the go pipe. */
static void wait_go(int go_rd)
{
	char c;
	while (read(go_rd, &c, 1) < 0 && errno == EINTR)
		;
	close(go_rd);
}

static bool reap_all(const pid_t *pids, unsigned n, const char *what)
{
	bool ok = true;
	for (unsigned i = 0; i < n; i++) {
		int st;
		while (waitpid(pids[i], &st, 0) < 0)
			if (errno != EINTR) {
				perror("bench_log: waitpid");
				return false;
			}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "bench_log: %s: child %d ended with status 0x%x\n", what, pids[i], st);
			ok = false;
		}
	}
	return ok;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

struct call_cost {
	uint32_t median_ns, p99_ns, samples;
	double mean_ns; /* the child's whole loop / M */
};

/* ---- (1) libmplog --------------------------------------------------------- */

static int mplog_child(int k, size_t m, int go_rd, int cost_wr)
{
	uint32_t *s = k == 0 ? malloc((m / SAMPLE_EVERY + 1) * sizeof *s) : NULL;
	size_t ns = 0;
	wait_go(go_rd);
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < m; i++) {
		if (s && i % SAMPLE_EVERY == 0) {
			uint64_t a = now_ns();
			if (mplog_info(LINE_FMT, k, i, FILLER) != 0)
				return 1;
			s[ns++] = (uint32_t)(now_ns() - a);
		} else if (mplog_info(LINE_FMT, k, i, FILLER) != 0) {
			return 1;
		}
	}
	if (s) {
		double mean = (double)(now_ns() - t0) / (double)m;
		qsort(s, ns, sizeof *s, cmp_u32);
		struct call_cost c = {.median_ns = s[ns / 2], .p99_ns = s[ns * 99 / 100],
				      .samples = (uint32_t)ns, .mean_ns = mean};
		if (write(cost_wr, &c, sizeof c) != (ssize_t)sizeof c)
			return 1;
		free(s);
	}
	return 0;
}

static int run_mplog(unsigned n, size_t m, const char *path, double *secs, struct call_cost *cost)
{
	mplog_aggregator *a;
	mplog_sink *sink;
	int go[2], cp[2];
	if (mplog_aggregator_new(&a) < 0 || pipe2(go, O_CLOEXEC) < 0 || pipe2(cp, O_CLOEXEC) < 0)
		return -1;
	unlink(path);
	int r = mplog_sink_new_file(path, MPLOG_FORMAT_TEXT, 0, &sink);
	if (r < 0 || mplog_aggregator_add_sink(a, sink) < 0) {
		fprintf(stderr, "bench_log: %s: %s\n", path, strerror(-r));
		return -1;
	}
	pid_t *pids = calloc(n, sizeof *pids);
	for (unsigned k = 0; k < n; k++) {
		mplog_child_fds fds;
		if (mplog_aggregator_add_child(a, "w", (int)k, 0, &fds) < 0)
			return -1;
		pids[k] = fork();
		if (pids[k] < 0)
			return -1;
		if (pids[k] == 0) {
			close(go[1]);
			close(cp[0]);
			if (mplog_child_setup(&fds, (int)k, 0, NULL) < 0)
				_exit(100);
			_exit(mplog_child((int)k, m, go[0], cp[1]));
		}
		mplog_child_fds_close(&fds);
		mplog_aggregator_set_pid(a, fds.id, pids[k]);
	}
	close(go[0]);
	close(cp[1]);
	/* Children are forked before the aggregator thread starts. */
	if (mplog_aggregator_start(a) < 0)
		return -1;
	double t0 = bench_now_s();
	close(go[1]);
	bool ok = reap_all(pids, n, "libmplog");
	mplog_aggregator_stop(a); /* drains every channel, flushes the file */
	*secs = bench_now_s() - t0;
	mplog_aggregator_free(a);
	ok = ok && read(cp[0], cost, sizeof *cost) == (ssize_t)sizeof *cost;
	close(cp[0]);
	free(pids);
	return ok ? 0 : -1;
}

/* ---- (2) O_APPEND --------------------------------------------------------- */

static int direct_child(int k, size_t m, int go_rd, int fd)
{
	char line[256];
	wait_go(go_rd);
	for (size_t i = 0; i < m; i++) {
		int len = snprintf(line, sizeof line, LINE_FMT "\n", k, i, FILLER);
		if (write(fd, line, (size_t)len) != len)
			return 1;
	}
	return 0;
}

static int run_direct(unsigned n, size_t m, const char *path, double *secs)
{
	int go[2];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 || pipe2(go, O_CLOEXEC) < 0) {
		perror("bench_log: O_APPEND file");
		return -1;
	}
	pid_t *pids = calloc(n, sizeof *pids);
	for (unsigned k = 0; k < n; k++) {
		pids[k] = fork();
		if (pids[k] < 0)
			return -1;
		if (pids[k] == 0) {
			close(go[1]);
			_exit(direct_child((int)k, m, go[0], fd));
		}
	}
	close(go[0]);
	double t0 = bench_now_s();
	close(go[1]);
	bool ok = reap_all(pids, n, "O_APPEND");
	*secs = bench_now_s() - t0;
	close(fd);
	free(pids);
	return ok ? 0 : -1;
}

/* ---- (3) Python ----------------------------------------------------------- */

static int run_python(unsigned n, size_t m, const char *path, double *secs)
{
	char nb[16], mb[32];
	snprintf(nb, sizeof nb, "%u", n);
	snprintf(mb, sizeof mb, "%zu", m);
	char *argv[] = {"python3", BENCH_PY, nb, mb, (char *)path, NULL};
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	pid_t pid;
	int r = posix_spawnp(&pid, "python3", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r != 0) {
		fprintf(stderr, "bench_log: python3: %s\n", strerror(r));
		close(pfd[0]);
		return -1;
	}
	char out[64] = "";
	size_t got = 0;
	ssize_t k;
	while (got < sizeof out - 1 && (k = read(pfd[0], out + got, sizeof out - 1 - got)) != 0)
		if (k > 0)
			got += (size_t)k;
		else if (errno != EINTR)
			break;
	close(pfd[0]);
	bool ok = reap_all(&pid, 1, "python");
	*secs = strtod(out, NULL);
	return ok && *secs > 0 ? 0 : -1;
}

/* ---- report --------------------------------------------------------------- */

static bool report(const char *label, double secs, unsigned n, size_t m, const char *path)
{
	long long want = (long long)n * (long long)m, got = count_lines(path);
	printf("%-44s %8.3f s %12.0f msgs/s  records %lld/%lld %s\n", label, secs,
	       (double)want / secs, got, want, got == want ? "(none lost)" : "LOST OR EXTRA");
	unlink(path);
	return got == want;
}

int main(int argc, char **argv)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = cpus > 0 ? 2 * (unsigned)cpus : 4;
	size_t m = 200000;
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int opt;
	while ((opt = getopt(argc, argv, "n:m:d:h")) != -1) {
		switch (opt) {
		case 'n': n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'm': m = strtoull(optarg, NULL, 10); break;
		case 'd': dir = optarg; break;
		default:
			fprintf(stderr, "usage: bench_log [-n children] [-m records-per-child] [-d dir]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (n == 0 || m == 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	char p1[4096], p2[4096], p3[4096];
	snprintf(p1, sizeof p1, "%s/bench_log-%d-mplog.log", dir, (int)getpid());
	snprintf(p2, sizeof p2, "%s/bench_log-%d-append.log", dir, (int)getpid());
	snprintf(p3, sizeof p3, "%s/bench_log-%d-python.log", dir, (int)getpid());
	char probe[256];
	int len = snprintf(probe, sizeof probe, LINE_FMT "\n", 0, (size_t)0, FILLER);
	printf("bench_log: %u children x %zu records, %d-byte lines, %ld CPUs, files in %s\n", n, m,
	       len, cpus, dir);
	fflush(stdout); /* before any fork */

	double s1, s2, s3;
	struct call_cost cost = {0};
	bool ok = true;
	if (run_mplog(n, m, p1, &s1, &cost) < 0) {
		fprintf(stderr, "bench_log: (1) libmplog failed\n");
		return 1;
	}
	ok &= report("(1) libmplog -> aggregator -> text file", s1, n, m, p1);
	fflush(stdout);
	if (run_direct(n, m, p2, &s2) < 0) {
		fprintf(stderr, "bench_log: (2) O_APPEND failed\n");
		return 1;
	}
	ok &= report("(2) children write(2) to one O_APPEND file", s2, n, m, p2);
	fflush(stdout);
	if (run_python(n, m, p3, &s3) < 0) {
		fprintf(stderr, "bench_log: (3) Python failed\n");
		return 1;
	}
	ok &= report("(3) Python QueueHandler + QueueListener", s3, n, m, p3);

	printf("mplog_info() in a child, under load: median %" PRIu32 " ns, p99 %" PRIu32
	       " ns (%" PRIu32 " timed calls, one in %u); mean over the loop %.0f ns\n",
	       cost.median_ns, cost.p99_ns, cost.samples, SAMPLE_EVERY, cost.mean_ns);
	double vs_py = s3 / s1, vs_direct = s1 / s2;
	printf("libmplog vs Python:   %6.2fx faster (bar: at least %.0fx)  %s\n", vs_py,
	       BAR_MPLOG_OVER_PY, vs_py >= BAR_MPLOG_OVER_PY ? "PASS" : "FAIL");
	printf("libmplog vs O_APPEND: %6.2fx the time (bar: within %.0fx)  %s\n", vs_direct,
	       BAR_MPLOG_OVER_DIRECT, vs_direct <= BAR_MPLOG_OVER_DIRECT ? "PASS" : "FAIL");
	printf("zero records lost: %s\n", ok ? "PASS" : "FAIL");
	return ok ? 0 : 1;
}
