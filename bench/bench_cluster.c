/* SPDX-License-Identifier: MIT */
/* bench_cluster.c — what does a map cost over MPI, against one process?
 *
 * Issue 17's bar: 1 000 000 tasks of about 50 us each (a calibrated spin
 * of CPU, not a sleep), mapped (a) with mpg_cluster_map_array() over 3
 * ranks x 1 worker (mpirun --oversubscribe -np 3 on this machine, rank 0's
 * own worker included), and (b) with mpg_map_array() in one process on a
 * pool of 3 workers; the MPI path may cost at most 10% more. Both are run
 * from this one program, interleaved (alternating which goes first), the
 * median of --repeat runs each, quiet and then with two busy loops on the
 * CPUs. (a) runs this same program under mpirun with --rank: rank 0 times
 * its map after a warm-up one (MPI's start-up is not timed) and prints
 * seconds= on its stdout. Automatic chunking on both sides.
 * On a machine with fewer than 3 CPUs, both sides oversubscribe alike.
 * The ratios are reports: the exit status is 0 unless something broke. */
#include "bench.h"
#include <mpguard-mpi.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>


#define RANKS 3
#define WORKERS 3          /* of the one process; 1 per rank under MPI */
#define BAR_MPI_OVER_ONE 1.10
#define WARMUP_TASKS 3000u /* both sides run this many first, untimed */

struct config {
	size_t count;
	double task_us;
	unsigned repeat;
	bool loaded_only, quiet_only;
	/* --rank (under mpirun): */
	bool rank;
	unsigned long spin;
};

/* Iterations of spin() a task makes. Set before any pool is created: the
 * fork server, and every worker it forks, copies it then. */
static unsigned long spin_iters;

/* A chain of dependent multiply-adds the compiler may not remove. */
static uint64_t spin(uint64_t acc, unsigned long n)
{
	for (unsigned long k = 0; k < n; k++) {
		acc = acc * 6364136223846793005u + 1442695040888963407u;
		__asm__ volatile("" : "+r"(acc));
	}
	return acc;
}

static volatile uint64_t sink;

/* The task: about task_us of CPU, then x + 2. */
static int spin_task(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	int64_t x;
	if (len != sizeof x)
		return mpg_raise(EINVAL, "expected %zu input bytes, got %zu", sizeof x, len);
	memcpy(&x, in, sizeof x);
	sink = spin((uint64_t)x, spin_iters);
	x += 2;
	return mpg_task_set_result(task, &x, sizeof x);
}

/* This thread's CPU time in seconds. */
static double thread_cpu_s(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0) {
		perror("clock_gettime");
		exit(1);
	}
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Iterations of spin() per microsecond of CPU: the fastest of a few
 * tries. CPU time, not wall time: on a shared machine another process
 * taking the CPU in the middle would make the tasks shorter. */
static double calibrate(void)
{
	const unsigned long n = 1ul << 22;
	double best = 1e9;
	for (int i = 0; i < 7; i++) {
		double t0 = thread_cpu_s();
		sink = spin((uint64_t)i, n);
		double t = thread_cpu_s() - t0;
		if (t < best)
			best = t;
	}
	return (double)n / (best * 1e6);
}

/* CPU time of this process's own threads (user + system), workers not
 * included: what driving the map costs besides the tasks. */
static double self_cpu_s(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static void print_error(const mpg_error *err, void *userdata)
{
	unsigned *shown = userdata;
	if ((*shown)++ == 0)
		fprintf(stderr, "bench_cluster: first failed task: %s\n", mpg_error_describe(err));
}

/* ---- (a) under mpirun: one rank of the cluster --------------------------- */

static int rank_main(int argc, char **argv, const struct config *cfg)
{
	spin_iters = cfg->spin;
	mpg_options *opts = NULL;
	mpg_cluster *cl = NULL;
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, 1)) < 0) {
		fprintf(stderr, "bench_cluster: options: %s\n", strerror(-r));
		return 1;
	}
	r = mpg_cluster_init(&argc, &argv, opts, &cl);
	mpg_options_free(opts);
	if (r < 0)
		fprintf(stderr, "bench_cluster: mpg_cluster_init: %s\n", strerror(-r));
	if (r != 0) /* 1: an agent, done */
		return r < 0;

	int rc = 1;
	int64_t *in = malloc(cfg->count * sizeof *in), *out = malloc(cfg->count * sizeof *out);
	if (!in || !out) {
		fprintf(stderr, "bench_cluster: cannot allocate 2 x %zu int64\n", cfg->count);
		goto out;
	}
	for (size_t i = 0; i < cfg->count; i++)
		in[i] = (int64_t)i;
	unsigned shown = 0;
	size_t warm = cfg->count < WARMUP_TASKS ? cfg->count : WARMUP_TASKS;
	r = mpg_cluster_map_array(cl, spin_task, in, sizeof *in, warm, out, sizeof *out, 0,
				  print_error, &shown);
	if (r != 0) {
		fprintf(stderr, "bench_cluster: warm-up cluster map: %s\n",
			r < 0 ? strerror(-r) : "tasks failed");
		goto out;
	}
	bench_poison(out, cfg->count);
	double c0 = self_cpu_s(), t0 = bench_now_s();
	r = mpg_cluster_map_array(cl, spin_task, in, sizeof *in, cfg->count, out, sizeof *out, 0,
				  print_error, &shown);
	double t1 = bench_now_s(), c1 = self_cpu_s();
	if (r != 0) {
		fprintf(stderr, "bench_cluster: cluster map: %s\n", r < 0 ? strerror(-r) : "tasks failed");
		goto out;
	}
	if (!bench_verify_add2("bench_cluster: cluster", in, out, cfg->count))
		goto out;
	printf("ranks=%d workers=%u cpu=%.6f seconds=%.6f\n", mpg_cluster_ranks(cl),
	       mpg_cluster_workers(cl), c1 - c0, t1 - t0);
	rc = 0;
out:
	if (fflush(stdout) == EOF)
		rc = 1;
	free(in);
	free(out);
	mpg_cluster_free(cl); /* the agents return from mpg_cluster_init() */
	return rc;
}

/* ---- (a) from the driver: one mpirun ---------------------------------------- */

/* Runs this program under mpirun; 0, *secs and rank 0's own CPU time in
 * *cpu, 1 if there is no mpirun, -1 on failure (said why). */
static int cluster_run(const struct config *cfg, double *secs, double *cpu)
{
	char self[PATH_MAX], nbuf[32], cbuf[32], sbuf[32];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	if (sl < 0) {
		perror("bench_cluster: readlink /proc/self/exe");
		return -1;
	}
	self[sl] = '\0';
	snprintf(nbuf, sizeof nbuf, "%d", RANKS);
	snprintf(cbuf, sizeof cbuf, "%zu", cfg->count);
	snprintf(sbuf, sizeof sbuf, "%lu", spin_iters);
	char *argv[] = {"mpirun", "--oversubscribe", "--allow-run-as-root", "-np", nbuf, self,
			"--rank", "--count", cbuf, "--spin", sbuf, NULL};

	char out[4096];
	int st = bench_capture(argv, out, sizeof out);
	if (st == BENCH_NO_PROGRAM)
		return 1;
	if (st != 0) {
		if (st > 0)
			fprintf(stderr, "bench_cluster: mpirun exited with status %d\n", st);
		return -1;
	}
	const char *s = strstr(out, "seconds="), *c = strstr(out, "cpu=");
	char *end = NULL, *cend = NULL;
	double v = s ? strtod(s + 8, &end) : -1, cv = c ? strtod(c + 4, &cend) : -1;
	if (!s || end == s + 8 || v < 0 || !c || cend == c + 4 || cv < 0 ||
	    !strstr(out, "ranks=3 workers=3")) {
		fprintf(stderr, "bench_cluster: not 3 ranks x 1 worker, or no seconds=, in: %s\n", out);
		return -1;
	}
	*secs = v;
	*cpu = cv;
	return 0;
}

/* ---- (b) one process, 3 workers -------------------------------------------- */

static int local_map(mpg_pool *pool, const int64_t *in, int64_t *out, size_t n, double *secs,
		     double *cpu)
{
	mpg_results *res = NULL;
	bench_poison(out, n);
	double c0 = self_cpu_s(), t0 = bench_now_s();
	int r = mpg_map_array(pool, spin_task, in, sizeof *in, n, out, sizeof *out, NULL, &res);
	double t1 = bench_now_s(), c1 = self_cpu_s();
	if (r < 0) {
		fprintf(stderr, "bench_cluster: mpg_map_array: %s\n", strerror(-r));
		return -1;
	}
	size_t nerr = 0;
	const mpg_error *const *errs = mpg_results_errors(res, &nerr);
	if (nerr)
		fprintf(stderr, "bench_cluster: %zu local tasks failed, first: %s\n", nerr,
			mpg_error_describe(errs[0]));
	mpg_results_free(res);
	if (nerr || !bench_verify_add2("bench_cluster: one process", in, out, n))
		return -1;
	*secs = t1 - t0;
	*cpu = c1 - c0;
	return 0;
}

/* ---- main -------------------------------------------------------------------- */

static bool parse_ulong(const char *s, unsigned long long min, unsigned long long max,
			unsigned long long *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_cluster [--count C] [--task-us U] [--repeat R] [--quick]\n"
		   "                     [--quiet-only | --loaded-only]\n"
		   "  --count C     tasks per map (default 1000000)\n"
		   "  --task-us U   CPU time of one task, in us (default 50)\n"
		   "  --repeat R    runs of each side, median reported (default 3)\n"
		   "  --quick       40000 tasks (smoke test)\n"
		   "Needs mpirun (Debian: openmpi-bin) in PATH.\n");
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
	enum { O_RANK = 256, O_SPIN, O_QUIET, O_LOADED };
	static const struct option longopts[] = {
		{"count", required_argument, NULL, 'c'},
		{"task-us", required_argument, NULL, 'u'},
		{"repeat", required_argument, NULL, 'r'},
		{"quick", no_argument, NULL, 'q'},
		{"quiet-only", no_argument, NULL, O_QUIET},
		{"loaded-only", no_argument, NULL, O_LOADED},
		{"help", no_argument, NULL, 'h'},
		{"rank", no_argument, NULL, O_RANK}, /* internal: under mpirun */
		{"spin", required_argument, NULL, O_SPIN},
		{NULL, 0, NULL, 0},
	};
	*cfg = (struct config){.count = 1000000, .task_us = 50, .repeat = 3};
	unsigned long long v;
	int c;
	while ((c = getopt_long(argc, argv, "c:u:r:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (!parse_ulong(optarg, 1, SIZE_MAX / 2 / sizeof(int64_t), &v))
				goto bad;
			cfg->count = (size_t)v;
			break;
		case 'u':
			if (!parse_ulong(optarg, 1, 1000000, &v))
				goto bad;
			cfg->task_us = (double)v;
			break;
		case 'r':
			if (!parse_ulong(optarg, 1, BENCH_MAX_RUNS, &v))
				goto bad;
			cfg->repeat = (unsigned)v;
			break;
		case 'q':
			cfg->count = 40000;
			break;
		case O_QUIET:
			cfg->quiet_only = true;
			break;
		case O_LOADED:
			cfg->loaded_only = true;
			break;
		case O_RANK:
			cfg->rank = true;
			break;
		case O_SPIN:
			if (!parse_ulong(optarg, 0, ULONG_MAX, &v))
				goto bad;
			cfg->spin = (unsigned long)v;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc || (cfg->quiet_only && cfg->loaded_only)) {
		usage(stderr);
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "bench_cluster: bad value for %s: %s\n", argv[optind - 1], optarg);
	return -1;
}

static void row(const char *label, double med, const double *runs, unsigned n)
{
	printf("  %-44s %8.3f s", label, med);
	if (n > 1) {
		printf("   (runs:");
		for (unsigned i = 0; i < n; i++)
			printf(" %.3f", runs[i]);
		printf(")");
	}
	printf("\n");
}

int main(int argc, char **argv)
{
	struct config cfg;
	if (parse_args(argc, argv, &cfg) < 0)
		return 2;
	if (cfg.rank)
		return rank_main(argc, argv, &cfg);

	/* Calibrated before the pool, which copies spin_iters. */
	double per_us = calibrate();
	spin_iters = (unsigned long)(cfg.task_us * per_us + 0.5);

	int rc = 1;
	mpg_pool *pool = NULL;
	mpg_options *opts = NULL;
	int64_t *in = NULL, *out = NULL;
	double ta[BENCH_MAX_RUNS], tb[BENCH_MAX_RUNS], ca[BENCH_MAX_RUNS], cb[BENCH_MAX_RUNS];
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, WORKERS)) < 0 ||
	    (r = mpg_pool_new(opts, &pool)) < 0) {
		fprintf(stderr, "bench_cluster: cannot start the pool: %s\n", strerror(-r));
		goto out;
	}
	in = malloc(cfg.count * sizeof *in);
	out = malloc(cfg.count * sizeof *out);
	if (!in || !out) {
		fprintf(stderr, "bench_cluster: cannot allocate 2 x %zu int64\n", cfg.count);
		goto out;
	}
	for (size_t i = 0; i < cfg.count; i++)
		in[i] = (int64_t)i;
	double warm, warm_cpu;
	size_t nwarm = cfg.count < WARMUP_TASKS ? cfg.count : WARMUP_TASKS;
	if (local_map(pool, in, out, nwarm, &warm, &warm_cpu) < 0)
		goto out;

	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	printf("map of %zu tasks of %.0f us (%lu spins), median of %u, interleaved; %ld CPU%s\n"
	       "(a) mpg_cluster_map_array, mpirun -np %d, 1 worker per rank; (b) mpg_map_array, one "
	       "process, %d workers%s\n",
	       cfg.count, cfg.task_us, spin_iters, cfg.repeat, cpus, cpus == 1 ? "" : "s", RANKS,
	       WORKERS, cpus < WORKERS ? ": both oversubscribe the CPUs" : "");
	fflush(stdout);
	for (int loaded = cfg.quiet_only ? 0 : cfg.loaded_only ? 1 : 0;
	     loaded < (cfg.quiet_only ? 1 : 2); loaded++) {
		struct bench_hogs hogs = {{0, 0}};
		if (loaded)
			bench_hogs_start(&hogs);
		int cr = 0;
		for (unsigned i = 0; i < cfg.repeat && cr == 0; i++) {
			/* Alternate which side goes first: drift hits both alike. */
			if (i % 2 == 0 && local_map(pool, in, out, cfg.count, &tb[i], &cb[i]) < 0)
				cr = -1;
			if (cr == 0)
				cr = cluster_run(&cfg, &ta[i], &ca[i]);
			if (cr == 0 && i % 2 == 1 &&
			    local_map(pool, in, out, cfg.count, &tb[i], &cb[i]) < 0)
				cr = -1;
		}
		if (loaded)
			bench_hogs_stop(&hogs);
		if (cr == 1) {
			printf("  (a) skipped: no mpirun in PATH (Debian: openmpi-bin)\n");
			rc = 0;
			goto out;
		}
		if (cr < 0)
			goto out;
		double a = bench_median(ta, cfg.repeat), b = bench_median(tb, cfg.repeat);
		printf(" %s:\n", loaded ? "two busy loops on the CPUs" : "quiet");
		row("(a) MPI, 3 ranks x 1 worker", a, ta, cfg.repeat);
		row("(b) one process, 3 workers", b, tb, cfg.repeat);
		printf("  (a)/(b) = %.3fx  (bar <= %.2fx: %s)\n", a / b, BAR_MPI_OVER_ONE,
		       a / b <= BAR_MPI_OVER_ONE ? "PASS" : "FAIL");
		printf("  own CPU, workers not counted: rank 0 %.3f s, the one process %.3f s "
		       "(medians)\n",
		       bench_median(ca, cfg.repeat), bench_median(cb, cfg.repeat));
		fflush(stdout);
	}
	rc = 0;
out:
	if (fflush(stdout) == EOF) {
		perror("bench_cluster: stdout");
		rc = 1;
	}
	mpg_pool_free(pool);
	mpg_options_free(opts);
	free(in);
	free(out);
	return rc;
}
