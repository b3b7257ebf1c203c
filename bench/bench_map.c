/* bench_map.c — how fast is libmpguard's map, against what one would write
 * by hand and against Python?
 *
 * In one run it times x+2 over an int64 array with
 *   (a) mpg_map_array() with automatic chunking,
 *   (b) a hand-written pool of forked workers fed batches of 1024 over
 *       pipes (about the floor a fork-based pool can hope for),
 *   (c) Python's multiprocessing.Pool.map with its default chunksize
 *       (py_pool_map.py, run as a child process),
 * then the cost of one task per message (chunksize 1) for mpkit and Python.
 * It prints the ratios against their bars as PASS/FAIL; those are reports,
 * so the exit status is 0 unless something broke (wrong results, errors). */
#include "bench.h"
#include <mpguard.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_PY
#error "BENCH_PY must be the path of py_pool_map.py (bench/meson.build sets it)"
#endif

extern char **environ;

#define BATCH 1024u   /* inputs per message in the hand-written pool */
#define INFLIGHT 2u   /* batches queued per worker: one running, one waiting */
#define MAX_REPEAT BENCH_MAX_RUNS

#define BAR_PY_OVER_MPKIT 10.0   /* (c)/(a) must be at least this */
#define BAR_MPKIT_OVER_HAND 2.0  /* (a)/(b) must be at most this */

#define LABEL_W 44 /* width of the label column of the table */

struct config {
	unsigned workers;
	size_t count;        /* inputs of (a), (b), (c) */
	unsigned repeat;     /* runs of (a) and (b); the median is reported */
	size_t task_count;   /* inputs of the mpkit chunksize=1 run */
	size_t py_task_count; /* inputs of the Python chunksize=1 run */
};

/* Poison the output first so a result never written cannot pass. */
static void poison(int64_t *out, size_t n)
{
	memset(out, 0xff, n * sizeof *out);
}

static bool verify(const char *what, const int64_t *in, const int64_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (out[i] != in[i] + 2) {
			fprintf(stderr, "bench_map: %s: wrong result at %zu: %" PRId64 ", want %" PRId64 "\n",
				what, i, out[i], in[i] + 2);
			return false;
		}
	}
	return true;
}

/* ---- (a) mpkit ------------------------------------------------------------ */

/* The task: runs in an mpkit worker, one input at a time. */
static int add2_task(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	int64_t x;
	if (len != sizeof x)
		return mpg_raise(EINVAL, "expected %zu input bytes, got %zu", sizeof x, len);
	memcpy(&x, in, sizeof x);
	void *out = mpg_task_alloc_result(task, sizeof x);
	if (!out)
		return errno ? errno : ENOMEM;
	x += 2;
	memcpy(out, &x, sizeof x); /* the room need not be 8-byte aligned */
	return 0;
}

/* One timed mpg_map_array(); 0 and *secs, or -1 after saying why. */
static int mpkit_map(mpg_pool *pool, const mpg_options *opts, const int64_t *in, int64_t *out,
		     size_t n, double *secs)
{
	mpg_results *res;
	poison(out, n);
	double t0 = bench_now_s();
	int r = mpg_map_array(pool, add2_task, in, sizeof *in, n, out, sizeof *out, opts, &res);
	double t1 = bench_now_s();
	if (r < 0) {
		fprintf(stderr, "bench_map: mpg_map_array: %s\n", strerror(-r));
		return -1;
	}
	size_t failed = mpg_results_failed(res);
	if (failed) {
		for (size_t i = 0; i < n; i++) {
			const mpg_error *e = mpg_results_error(res, i);
			if (e) {
				fprintf(stderr, "bench_map: %zu of %zu mpkit tasks failed, first: %s\n",
					failed, n, mpg_error_describe(e));
				break;
			}
		}
		mpg_results_free(res);
		return -1;
	}
	mpg_results_free(res);
	if (!verify("mpkit", in, out, n))
		return -1;
	*secs = t1 - t0;
	return 0;
}

/* ---- (b) the hand-written pool -------------------------------------------- */

/* Two pipes per worker (pipes beat AF_UNIX sockets for this here). A batch
 * is an 8-byte count then the inputs; the worker answers with the results
 * alone, so the parent reads them straight into the output array. With at
 * most INFLIGHT batches (~16 KiB) queued in a 64 KiB pipe, writes never
 * block. */
struct hworker {
	pid_t pid;
	int to;                  /* the parent writes batches here */
	int from;                /* and reads results here */
	size_t first[INFLIGHT];  /* batches sent, oldest first: where they start */
	size_t count[INFLIGHT];
	size_t got;              /* result bytes of the oldest batch read so far */
	unsigned nq;
};

struct hpool {
	unsigned n;
	struct hworker *w;
	struct pollfd *pfd;
};

/* Read exactly n bytes: 1, or 0 on EOF before the first byte, -1 on error
 * or EOF mid-way. Async-signal-safe (used in forked workers). */
static int read_full(int fd, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 && got == 0 ? 0 : -1;
		got += (size_t)r;
	}
	return 1;
}

/* Write all of iov[0..n) (a pipe may take a big write in pieces). 0 or -1. */
static int writev_full(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		size_t left = (size_t)w;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

/* Worker main. The parent has threads (mpkit's dispatcher), so after fork()
 * only async-signal-safe calls are allowed: read, write, _exit. */
static _Noreturn void hworker_main(int in_fd, int out_fd)
{
	int64_t buf[BATCH];
	for (;;) {
		uint64_t k;
		int r = read_full(in_fd, &k, sizeof k);
		if (r == 0)
			_exit(0); /* the parent closed: no more work */
		if (r < 0 || k > BATCH || read_full(in_fd, buf, k * sizeof buf[0]) != 1)
			_exit(2);
		for (size_t i = 0; i < k; i++)
			buf[i] += 2;
		struct iovec iov = {buf, k * sizeof buf[0]};
		if (writev_full(out_fd, &iov, 1) < 0)
			_exit(3); /* the parent is gone */
	}
}

/* Reap one child. Returns its exit status, or -1 if it could not be reaped
 * or died of a signal (said so). */
static int reap(pid_t pid, const char *what)
{
	int st;
	pid_t r;
	do
		r = waitpid(pid, &st, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		fprintf(stderr, "bench_map: waitpid(%s): %s\n", what, strerror(errno));
		return -1;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	fprintf(stderr, "bench_map: %s killed by signal %d\n", what,
		WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return -1;
}

static int xclose(int fd)
{
	if (fd >= 0 && close(fd) < 0 && errno != EINTR) {
		perror("bench_map: close");
		return -1;
	}
	return 0;
}

/* Close the pipes (workers see EOF and exit) and reap every worker. */
static int hpool_stop(struct hpool *hp)
{
	int rc = 0;
	for (unsigned i = 0; i < hp->n; i++) {
		if (xclose(hp->w[i].to) < 0 || xclose(hp->w[i].from) < 0)
			rc = -1;
		hp->w[i].to = hp->w[i].from = -1;
	}
	for (unsigned i = 0; i < hp->n; i++) {
		int st = reap(hp->w[i].pid, "hand-written worker");
		if (st != 0) {
			if (st > 0)
				fprintf(stderr, "bench_map: hand-written worker exited with status %d\n", st);
			rc = -1;
		}
	}
	free(hp->w);
	free(hp->pfd);
	*hp = (struct hpool){0};
	return rc;
}

/* Close every fd above stdio but keep_a and keep_b. Async-signal-safe. */
static int close_all_but(int keep_a, int keep_b)
{
	int lo = keep_a < keep_b ? keep_a : keep_b, hi = keep_a < keep_b ? keep_b : keep_a;
	unsigned from = 3;
	int keep[2] = {lo, hi};
	for (int i = 0; i < 2; i++) {
		if (keep[i] < 3)
			continue;
		if ((unsigned)keep[i] > from && close_range(from, (unsigned)keep[i] - 1, 0) < 0)
			return -1;
		from = (unsigned)keep[i] + 1;
	}
	return close_range(from, ~0u, 0);
}

static int hpool_start(struct hpool *hp, unsigned n)
{
	*hp = (struct hpool){0};
	hp->w = calloc(n, sizeof *hp->w);
	hp->pfd = calloc(n, sizeof *hp->pfd);
	if (!hp->w || !hp->pfd) {
		fprintf(stderr, "bench_map: out of memory\n");
		free(hp->w);
		free(hp->pfd);
		*hp = (struct hpool){0};
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		int to[2], from[2];
		if (pipe2(to, O_CLOEXEC) < 0) {
			perror("bench_map: pipe2");
			hpool_stop(hp);
			return -1;
		}
		if (pipe2(from, O_CLOEXEC) < 0) {
			perror("bench_map: pipe2");
			xclose(to[0]);
			xclose(to[1]);
			hpool_stop(hp);
			return -1;
		}
		pid_t pid = fork();
		if (pid < 0) {
			perror("bench_map: fork");
			xclose(to[0]);
			xclose(to[1]);
			xclose(from[0]);
			xclose(from[1]);
			hpool_stop(hp);
			return -1;
		}
		if (pid == 0) {
			/* No exec, so O_CLOEXEC does not help: close every inherited fd
			 * but our two pipe ends (and stdio), or an earlier worker's pipe
			 * stays open here and that worker never sees EOF. */
			if (close_all_but(to[0], from[1]) < 0)
				_exit(127);
			hworker_main(to[0], from[1]);
		}
		hp->w[hp->n++] = (struct hworker){.pid = pid, .to = to[1], .from = from[0]};
		if (xclose(to[0]) < 0 || xclose(from[1]) < 0) {
			hpool_stop(hp);
			return -1;
		}
	}
	return 0;
}

static int hsend(struct hworker *w, const int64_t *in, size_t *next, size_t n)
{
	uint64_t k = n - *next < BATCH ? n - *next : BATCH;
	struct iovec iov[2] = {{&k, sizeof k}, {(void *)(in + *next), k * sizeof *in}};
	if (writev_full(w->to, iov, 2) < 0) {
		fprintf(stderr, "bench_map: write to worker %d: %s\n", (int)w->pid, strerror(errno));
		return -1;
	}
	w->first[w->nq] = *next;
	w->count[w->nq] = k;
	w->nq++;
	*next += k;
	return 0;
}

/* Map x+2 over in[0..n) into out with the hand-written pool. */
static int hpool_map(struct hpool *hp, const int64_t *in, int64_t *out, size_t n)
{
	size_t next = 0, done = 0;
	for (unsigned i = 0; i < hp->n; i++)
		while (hp->w[i].nq < INFLIGHT && next < n)
			if (hsend(&hp->w[i], in, &next, n) < 0)
				return -1;
	while (done < n) {
		for (unsigned i = 0; i < hp->n; i++)
			hp->pfd[i] = (struct pollfd){.fd = hp->w[i].nq ? hp->w[i].from : -1,
						     .events = POLLIN};
		if (poll(hp->pfd, hp->n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("bench_map: poll");
			return -1;
		}
		for (unsigned i = 0; i < hp->n; i++) {
			struct hworker *w = &hp->w[i];
			if (!hp->pfd[i].revents)
				continue;
			/* One read for whatever came back, across both batches. */
			struct iovec iov[INFLIGHT];
			int niov = 0;
			for (unsigned q = 0; q < w->nq; q++, niov++) {
				size_t skip = q == 0 ? w->got : 0;
				iov[q] = (struct iovec){(char *)(out + w->first[q]) + skip,
							w->count[q] * sizeof *out - skip};
			}
			ssize_t r = readv(w->from, iov, niov);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				fprintf(stderr, "bench_map: worker %d: %s\n", (int)w->pid,
					r < 0 ? strerror(errno) : "died");
				return -1;
			}
			size_t left = (size_t)r;
			while (left) {
				size_t need = w->count[0] * sizeof *out - w->got;
				if (left < need) {
					w->got += left;
					break;
				}
				left -= need;
				w->got = 0;
				done += w->count[0];
				w->nq--;
				if (w->nq) {
					w->first[0] = w->first[1];
					w->count[0] = w->count[1];
				}
			}
			/* Refill at once, so the worker never waits for us. */
			while (w->nq < INFLIGHT && next < n)
				if (hsend(w, in, &next, n) < 0)
					return -1;
		}
	}
	return 0;
}

static int hand_map(struct hpool *hp, const int64_t *in, int64_t *out, size_t n, double *secs)
{
	poison(out, n);
	double t0 = bench_now_s();
	int r = hpool_map(hp, in, out, n);
	double t1 = bench_now_s();
	if (r < 0 || !verify("hand-written pool", in, out, n))
		return -1;
	*secs = t1 - t0;
	return 0;
}

/* ---- (c) Python ------------------------------------------------------------ */

/* Run py_pool_map.py; 0 and *secs, 1 if python3 is not there, -1 on
 * failure (said why). */
static int python_map(unsigned workers, size_t count, size_t chunksize, double *secs)
{
	char wbuf[16], cbuf[32], kbuf[32];
	snprintf(wbuf, sizeof wbuf, "%u", workers);
	snprintf(cbuf, sizeof cbuf, "%zu", count);
	snprintf(kbuf, sizeof kbuf, "%zu", chunksize);
	char *argv[] = {"python3", BENCH_PY, "--workers", wbuf, "--count", cbuf,
			"--chunksize", kbuf, NULL};

	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		perror("bench_map: pipe2");
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t def;
	pid_t pid = -1;
	int r = posix_spawn_file_actions_init(&fa);
	if (r == 0) {
		r = posix_spawnattr_init(&attr);
		if (r == 0) {
			/* We ignore SIGPIPE (see main); the child gets the default back.
			 * dup2 clears O_CLOEXEC on the child's stdout only. */
			if (sigemptyset(&def) < 0 || sigaddset(&def, SIGPIPE) < 0)
				r = errno;
			if (r == 0)
				r = posix_spawnattr_setsigdefault(&attr, &def);
			if (r == 0)
				r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
			if (r == 0)
				r = posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
			if (r == 0)
				r = posix_spawnp(&pid, "python3", &fa, &attr, argv, environ);
			posix_spawnattr_destroy(&attr);
		}
		posix_spawn_file_actions_destroy(&fa);
	}
	if (xclose(pfd[1]) < 0 || r != 0) {
		xclose(pfd[0]);
		if (r == ENOENT)
			return 1;
		if (r != 0)
			fprintf(stderr, "bench_map: cannot run python3: %s\n", strerror(r));
		if (pid > 0)
			reap(pid, "python3");
		return -1;
	}

	char out[4096];
	size_t len = 0;
	bool read_ok = true;
	while (len < sizeof out - 1) {
		ssize_t got = read(pfd[0], out + len, sizeof out - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			perror("bench_map: read from python3");
			read_ok = false;
		}
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	out[len] = '\0';
	/* Closed before the wait: if it had more to say, it gets EPIPE, not a hang. */
	if (xclose(pfd[0]) < 0)
		read_ok = false;
	int st = reap(pid, "python3 " BENCH_PY);
	if (st == 127)
		return 1; /* e.g. a pyenv shim with no python3 behind it */
	if (st != 0) {
		if (st > 0)
			fprintf(stderr, "bench_map: python3 " BENCH_PY " exited with status %d\n", st);
		return -1;
	}
	const char *s = strstr(out, "seconds=");
	char *end = NULL;
	double v = s ? strtod(s + 8, &end) : -1;
	if (!read_ok || !s || end == s + 8 || v < 0) {
		fprintf(stderr, "bench_map: no seconds= in python3's output: %s\n", out);
		return -1;
	}
	*secs = v;
	return 0;
}

/* ---- main -------------------------------------------------------------------- */

static unsigned cpu_count(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	return 1;
}

static bool parse_size(const char *s, size_t min, size_t max, size_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return false;
	*ret = (size_t)v;
	return true;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_map [--workers N] [--count C] [--repeat R] [--quick]\n"
		   "  --workers N  workers in each pool (default: CPUs we may run on)\n"
		   "  --count C    inputs of the timed maps (default 10000000)\n"
		   "  --repeat R   runs of (a) and (b), median reported (default 3)\n"
		   "  --quick      smaller counts everywhere (smoke test)\n");
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
	static const struct option longopts[] = {
		{"workers", required_argument, NULL, 'w'},
		{"count", required_argument, NULL, 'c'},
		{"repeat", required_argument, NULL, 'r'},
		{"quick", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	size_t workers = 0, count = 0, repeat = 3;
	bool quick = false;
	int c;
	while ((c = getopt_long(argc, argv, "w:c:r:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (!parse_size(optarg, 1, 4096, &workers)) {
				fprintf(stderr, "bench_map: --workers wants 1..4096\n");
				return -1;
			}
			break;
		case 'c':
			if (!parse_size(optarg, 1, SIZE_MAX / 2 / sizeof(int64_t), &count)) {
				fprintf(stderr, "bench_map: --count wants a positive number\n");
				return -1;
			}
			break;
		case 'r':
			if (!parse_size(optarg, 1, MAX_REPEAT, &repeat)) {
				fprintf(stderr, "bench_map: --repeat wants 1..%u\n", MAX_REPEAT);
				return -1;
			}
			break;
		case 'q':
			quick = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return -1;
	}
	cfg->workers = workers ? (unsigned)workers : cpu_count();
	cfg->count = count ? count : quick ? 1000000 : 10000000;
	cfg->repeat = (unsigned)repeat;
	cfg->task_count = quick ? 20000 : 200000;
	cfg->py_task_count = quick ? 10000 : 100000;
	return 0;
}

static void row(const char *label, double secs)
{
	printf("  %-*s %7.3f s\n", LABEL_W, label, secs);
}

static void row_runs(const char *label, double med, const double *runs, unsigned n)
{
	printf("  %-*s %7.3f s", LABEL_W, label, med);
	if (n > 1) {
		printf("   (runs:");
		for (unsigned i = 0; i < n; i++)
			printf(" %.3f", runs[i]);
		printf(")");
	}
	printf("\n");
}

static void ratio(const char *name, double v, bool at_least, double bar)
{
	bool pass = at_least ? v >= bar : v <= bar;
	printf("  %s = %.2fx  (bar %s %gx: %s)\n", name, v, at_least ? ">=" : "<=", bar,
	       pass ? "PASS" : "FAIL");
}

int main(int argc, char **argv)
{
	struct config cfg;
	if (parse_args(argc, argv, &cfg) < 0)
		return 2;

	int rc = 1;
	mpg_pool *pool = NULL;
	mpg_options *opts = NULL, *opts1 = NULL;
	struct hpool hp = {0};
	bool hp_started = false;
	int64_t *in = NULL, *out = NULL;
	double ta[MAX_REPEAT], tb[MAX_REPEAT];

	/* The pool first: its fork server forks now, before this process has
	 * the big arrays and the hand-written workers' pipes (the fork server
	 * and mpkit's workers would keep copies of any fd open now). */
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, cfg.workers)) < 0 ||
	    (r = mpg_pool_new(opts, &pool)) < 0) {
		fprintf(stderr, "bench_map: cannot start the mpkit pool: %s\n", strerror(-r));
		goto out;
	}
	if ((r = mpg_options_new(&opts1)) < 0 || (r = mpg_options_set_chunksize(opts1, 1)) < 0) {
		fprintf(stderr, "bench_map: mpkit options: %s\n", strerror(-r));
		goto out;
	}

	size_t nalloc = cfg.count > cfg.task_count ? cfg.count : cfg.task_count;
	in = malloc(nalloc * sizeof *in);
	out = malloc(nalloc * sizeof *out);
	if (!in || !out) {
		fprintf(stderr, "bench_map: cannot allocate 2 x %zu int64\n", nalloc);
		goto out;
	}
	for (size_t i = 0; i < nalloc; i++)
		in[i] = (int64_t)i;

	/* Warm up, like the Python side: the workers have run a task. */
	double warm;
	if (mpkit_map(pool, opts1, in, out, 2 * (size_t)cfg.workers, &warm) < 0)
		goto out;
	/* A worker that died must show up as EPIPE on our write, not kill us.
	 * Set after mpg_pool_new(), so mpkit's processes keep the default. */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		perror("bench_map: signal(SIGPIPE)");
		goto out;
	}
	if (hpool_start(&hp, cfg.workers) < 0)
		goto out;
	hp_started = true;

	printf("map x+2 over %zu int64, %u worker%s (median of %u)\n", cfg.count, cfg.workers,
	       cfg.workers == 1 ? "" : "s", cfg.repeat);
	fflush(stdout);
	/* Interleaved, so that drift in the machine's speed hits both alike. */
	for (unsigned i = 0; i < cfg.repeat; i++) {
		if (mpkit_map(pool, NULL, in, out, cfg.count, &ta[i]) < 0 ||
		    hand_map(&hp, in, out, cfg.count, &tb[i]) < 0)
			goto out;
	}
	hp_started = false;
	if (hpool_stop(&hp) < 0)
		goto out;
	double a = bench_median(ta, cfg.repeat), b = bench_median(tb, cfg.repeat);
	row_runs("(a) mpkit mpg_map_array, auto chunking", a, ta, cfg.repeat);
	row_runs("(b) hand-written fork+pipe, batches of 1024", b, tb, cfg.repeat);
	fflush(stdout);

	double c;
	int pr = python_map(cfg.workers, cfg.count, 0, &c);
	if (pr < 0)
		goto out;
	if (pr == 0)
		row("(c) Python Pool.map, default chunksize", c);
	else
		printf("  %-*s %7s   (python3 not found)\n", LABEL_W,
		       "(c) Python Pool.map, default chunksize", "skipped");
	if (pr == 0)
		ratio("(c)/(a)", c / a, true, BAR_PY_OVER_MPKIT);
	else
		printf("  (c)/(a) = n/a  (python3 not found)\n");
	ratio("(a)/(b)", a / b, false, BAR_MPKIT_OVER_HAND);

	printf("per-task overhead, chunking off (one task per message)\n");
	fflush(stdout);
	double t1;
	if (mpkit_map(pool, opts1, in, out, cfg.task_count, &t1) < 0)
		goto out;
	double us_mpkit = t1 * 1e6 / (double)cfg.task_count;
	printf("  %-22s %8zu tasks %8.2f us/task\n", "mpkit chunksize=1", cfg.task_count, us_mpkit);
	fflush(stdout);

	/* Done with mpkit: stop it cleanly (an error here is a bug to see)
	 * and leave the machine to the last Python run. */
	if ((r = mpg_pool_close(pool)) < 0 || (r = mpg_pool_join(pool)) < 0) {
		fprintf(stderr, "bench_map: stopping the mpkit pool: %s\n", strerror(-r));
		goto out;
	}
	mpg_pool_free(pool);
	pool = NULL;

	if (pr == 0) {
		double tp;
		if (python_map(cfg.workers, cfg.py_task_count, 1, &tp) != 0)
			goto out;
		double us_py = tp * 1e6 / (double)cfg.py_task_count;
		printf("  %-22s %8zu tasks %8.2f us/task\n", "Python chunksize=1",
		       cfg.py_task_count, us_py);
		printf("  Python/mpkit = %.1fx\n", us_py / us_mpkit);
	} else {
		printf("  %-22s skipped: python3 not found\n", "Python chunksize=1");
	}
	rc = 0;
out:
	if (fflush(stdout) == EOF) {
		perror("bench_map: stdout");
		rc = 1;
	}
	if (hp_started && hpool_stop(&hp) < 0)
		rc = 1;
	mpg_pool_free(pool);
	mpg_options_free(opts);
	mpg_options_free(opts1);
	free(in);
	free(out);
	return rc;
}
