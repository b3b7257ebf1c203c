/* SPDX-License-Identifier: MIT */
/* bench_log.c — how fast does libmplog merge the logs of many processes
 * into one file, against what one would write by hand and against Python?
 *
 * N children (default 2 x CPUs) each log M records (default 200 000) with
 * a ~120-byte message:
 *   (1) libmplog: mplog_info() in the children (writer from
 *       mplog_child_setup(), so through the child's ring), the parent's
 *       aggregator thread writing one file in the TEXT format (each line
 *       also carries time, level, worker, pid and source location, so it
 *       writes more bytes than (2));
 *   (2) each child write(2)-ing the same lines, one call per line, to one
 *       file opened with O_APPEND;
 *   (3) Python's logging cookbook recipe: QueueHandler in the children,
 *       QueueListener + FileHandler in the parent (py_log_queue.py); once,
 *       quiet (-P: not at all).
 * (1) and (2) run R times each (default 3, alternated), quiet and then
 * with two busy loops hogging the CPUs (bench_hogs_start()); the medians
 * are compared. Each is timed from the release of the (already forked)
 * children to the last record in the file; the records in each file are
 * counted (lines; every message is one line) and must be exactly N x M.
 * Child 0 also times every 64th call, mplog_info() in (1) and write(2) of
 * the line in (2), with clock_gettime() around it (so each sample
 * includes one clock read, ~20 ns): the medians compare the cost of one
 * record with that of writing the same line yourself, under the same
 * contention. The two bars of issue 13 are printed side by side as
 * ratios, quiet and loaded: throughput (1)/(2) at least 1.5x, and
 * mplog_info() at most half a write(2). The exit status is 0 unless
 * something broke (a record lost, a child failed). */
#include "bench.h"
#include <mplog.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
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


#define FILLER "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut lab"
#define LINE_FMT "worker %2d record %8zu: %s"
#define SAMPLE_EVERY 64u

#define BAR_MPLOG_OVER_PY 5.0     /* (1)/(3) throughput: at least */
#define BAR_MPLOG_OVER_DIRECT 1.5 /* (1)/(2) throughput: at least */
#define BAR_CALL_OVER_WRITE 0.5   /* mplog_info() / write(2), medians: at most */

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

/* Child 0's samples of one call in a timed loop. */
struct sampler {
	uint32_t *s;
	size_t n;
	uint64_t t0;
};

static void sampler_start(struct sampler *sp, int k, size_t m)
{
	*sp = (struct sampler){.s = k == 0 ? malloc((m / SAMPLE_EVERY + 1) * sizeof *sp->s) : NULL,
			       .t0 = now_ns()};
}

/* Write child 0's costs to fd: 0, or 1 when that failed. */
static int sampler_report(struct sampler *sp, size_t m, int fd)
{
	if (!sp->s)
		return 0;
	double mean = (double)(now_ns() - sp->t0) / (double)m;
	qsort(sp->s, sp->n, sizeof *sp->s, cmp_u32);
	struct call_cost c = {.median_ns = sp->s[sp->n / 2], .p99_ns = sp->s[sp->n * 99 / 100],
			      .samples = (uint32_t)sp->n, .mean_ns = mean};
	free(sp->s);
	return write(fd, &c, sizeof c) != (ssize_t)sizeof c;
}

/* ---- (1) libmplog --------------------------------------------------------- */

static int mplog_child(int k, size_t m, int go_rd, int cost_wr)
{
	struct sampler sp;
	wait_go(go_rd);
	sampler_start(&sp, k, m);
	for (size_t i = 0; i < m; i++) {
		if (sp.s && i % SAMPLE_EVERY == 0) {
			uint64_t a = now_ns();
			if (mplog_info(LINE_FMT, k, i, FILLER) != 0)
				return 1;
			sp.s[sp.n++] = (uint32_t)(now_ns() - a);
		} else if (mplog_info(LINE_FMT, k, i, FILLER) != 0) {
			return 1;
		}
	}
	return sampler_report(&sp, m, cost_wr);
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

static int direct_child(int k, size_t m, int go_rd, int fd, int cost_wr)
{
	char line[256];
	struct sampler sp;
	wait_go(go_rd);
	sampler_start(&sp, k, m);
	for (size_t i = 0; i < m; i++) {
		int len = snprintf(line, sizeof line, LINE_FMT "\n", k, i, FILLER);
		uint64_t a = sp.s && i % SAMPLE_EVERY == 0 ? now_ns() : 0;
		if (write(fd, line, (size_t)len) != len)
			return 1;
		if (a)
			sp.s[sp.n++] = (uint32_t)(now_ns() - a);
	}
	return sampler_report(&sp, m, cost_wr);
}

static int run_direct(unsigned n, size_t m, const char *path, double *secs, struct call_cost *cost)
{
	int go[2], cp[2];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0 || pipe2(go, O_CLOEXEC) < 0 || pipe2(cp, O_CLOEXEC) < 0) {
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
			close(cp[0]);
			_exit(direct_child((int)k, m, go[0], fd, cp[1]));
		}
	}
	close(go[0]);
	close(cp[1]);
	double t0 = bench_now_s();
	close(go[1]);
	bool ok = reap_all(pids, n, "O_APPEND");
	*secs = bench_now_s() - t0;
	close(fd);
	ok = ok && read(cp[0], cost, sizeof *cost) == (ssize_t)sizeof *cost;
	close(cp[0]);
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
	char out[64];
	int st = bench_capture(argv, out, sizeof out);
	if (st == BENCH_NO_PROGRAM)
		fprintf(stderr, "bench_log: no python3\n");
	bool ok = st == 0;
	*secs = strtod(out, NULL);
	return ok && *secs > 0 ? 0 : -1;
}

/* ---- report --------------------------------------------------------------- */

static bool count_ok(unsigned n, size_t m, const char *path, const char *label)
{
	long long want = (long long)n * (long long)m, got = count_lines(path);
	unlink(path);
	if (got != want)
		fprintf(stderr, "bench_log: %s: %lld records of %lld: LOST OR EXTRA\n", label, got, want);
	return got == want;
}

/* One mode (quiet or loaded): the medians of runs of (1) and (2). */
struct mode {
	double s1, s2;            /* seconds */
	double call_ns, write_ns; /* child 0's median cost of one call */
	double call_p99, write_p99;
};

static bool run_mode(unsigned n, size_t m, unsigned runs, const char *p1, const char *p2,
		     struct mode *out)
{
	double s1[BENCH_MAX_RUNS], s2[BENCH_MAX_RUNS], c1[BENCH_MAX_RUNS], c2[BENCH_MAX_RUNS];
	double q1[BENCH_MAX_RUNS], q2[BENCH_MAX_RUNS];
	bool ok = true;
	for (unsigned r = 0; r < runs; r++) {
		struct call_cost a = {0}, b = {0};
		if (run_mplog(n, m, p1, &s1[r], &a) < 0 || run_direct(n, m, p2, &s2[r], &b) < 0) {
			fprintf(stderr, "bench_log: a run failed\n");
			return false;
		}
		ok &= count_ok(n, m, p1, "(1) libmplog") & count_ok(n, m, p2, "(2) O_APPEND");
		c1[r] = a.median_ns, q1[r] = a.p99_ns;
		c2[r] = b.median_ns, q2[r] = b.p99_ns;
		printf("  run %u: (1) %.3f s, mplog_info() median %u ns; (2) %.3f s, write(2) median %u ns\n",
		       r + 1, s1[r], a.median_ns, s2[r], b.median_ns);
		fflush(stdout);
	}
	*out = (struct mode){.s1 = bench_median(s1, runs), .s2 = bench_median(s2, runs),
			     .call_ns = bench_median(c1, runs), .write_ns = bench_median(c2, runs),
			     .call_p99 = bench_median(q1, runs), .write_p99 = bench_median(q2, runs)};
	return ok;
}

static const char *pass(bool ok)
{
	return ok ? "PASS" : "FAIL";
}

int main(int argc, char **argv)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = cpus > 0 ? 2 * (unsigned)cpus : 4, runs = 3;
	size_t m = 200000;
	bool python = true;
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int opt;
	while ((opt = getopt(argc, argv, "n:m:r:d:Ph")) != -1) {
		switch (opt) {
		case 'n': n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'm': m = strtoull(optarg, NULL, 10); break;
		case 'r': runs = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': dir = optarg; break;
		case 'P': python = false; break;
		default:
			fprintf(stderr, "usage: bench_log [-n children] [-m records-per-child] "
					"[-r runs] [-d dir] [-P (no Python)]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (n == 0 || m == 0 || runs == 0 || runs > BENCH_MAX_RUNS)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	char p1[4096], p2[4096], p3[4096];
	snprintf(p1, sizeof p1, "%s/bench_log-%d-mplog.log", dir, (int)getpid());
	snprintf(p2, sizeof p2, "%s/bench_log-%d-append.log", dir, (int)getpid());
	snprintf(p3, sizeof p3, "%s/bench_log-%d-python.log", dir, (int)getpid());
	char probe[256];
	int len = snprintf(probe, sizeof probe, LINE_FMT "\n", 0, (size_t)0, FILLER);
	printf("bench_log: %u children x %zu records, %d-byte lines, %ld CPUs, files in %s, "
	       "median of %u runs\n", n, m, len, cpus, dir, runs);
	fflush(stdout); /* before any fork */

	struct mode q, l;
	bool ok = true;
	printf("quiet:\n");
	fflush(stdout);
	ok &= run_mode(n, m, runs, p1, p2, &q);
	printf("loaded (two busy loops):\n");
	fflush(stdout);
	struct bench_hogs hogs;
	bench_hogs_start(&hogs);
	ok &= run_mode(n, m, runs, p1, p2, &l);
	bench_hogs_stop(&hogs);

	double tq = q.s2 / q.s1, tl = l.s2 / l.s1;
	double cq = q.call_ns / q.write_ns, cl = l.call_ns / l.write_ns;
	printf("\n%-44s %18s %18s\n", "", "quiet", "loaded");
	printf("%-44s %16.3f s %16.3f s\n", "(1) libmplog -> aggregator -> text file", q.s1, l.s1);
	printf("%-44s %16.3f s %16.3f s\n", "(2) children write(2) to one O_APPEND file", q.s2, l.s2);
	printf("%-44s %11.0f msgs/s %11.0f msgs/s\n", "(1) throughput", n * (double)m / q.s1,
	       n * (double)m / l.s1);
	printf("%-44s %15.0f ns %15.0f ns\n", "mplog_info() in child 0, median", q.call_ns,
	       l.call_ns);
	printf("%-44s %15.0f ns %15.0f ns\n", "mplog_info() in child 0, p99", q.call_p99, l.call_p99);
	printf("%-44s %15.0f ns %15.0f ns\n", "write(2) of the line in child 0, median", q.write_ns,
	       l.write_ns);
	printf("%-44s %15.0f ns %15.0f ns\n", "write(2) of the line in child 0, p99", q.write_p99,
	       l.write_p99);
	printf("%-44s %13.2fx %4s %13.2fx %4s  (bar: at least %.1fx)\n",
	       "throughput (1)/(2)", tq, pass(tq >= BAR_MPLOG_OVER_DIRECT), tl,
	       pass(tl >= BAR_MPLOG_OVER_DIRECT), BAR_MPLOG_OVER_DIRECT);
	printf("%-44s %13.2fx %4s %13.2fx %4s  (bar: at most %.1fx)\n",
	       "mplog_info() / write(2), medians", cq, pass(cq <= BAR_CALL_OVER_WRITE), cl,
	       pass(cl <= BAR_CALL_OVER_WRITE), BAR_CALL_OVER_WRITE);
	if (python) {
		double s3;
		if (run_python(n, m, p3, &s3) < 0) {
			fprintf(stderr, "bench_log: (3) Python failed\n");
			return 1;
		}
		ok &= count_ok(n, m, p3, "(3) Python");
		printf("(3) Python QueueHandler + QueueListener, quiet: %.3f s; libmplog %.2fx faster "
		       "(bar: at least %.0fx)  %s\n", s3, s3 / q.s1, BAR_MPLOG_OVER_PY,
		       pass(s3 / q.s1 >= BAR_MPLOG_OVER_PY));
	}
	printf("zero records lost: %s\n", pass(ok));
	return ok ? 0 : 1;
}
