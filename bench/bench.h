/* SPDX-License-Identifier: MIT */
/* What every benchmark needs: a clock, a median, busy loops to load the
 * CPUs with, a child's output read back, the x + 2 maps' check.
 * Header-only: each benchmark is one program. */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_RUNS 99u

/* CLOCK_MONOTONIC in seconds. */
static inline double bench_now_s(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0) {
		perror("clock_gettime");
		exit(1);
	}
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The median of n (at most BENCH_MAX_RUNS) values; v is left as it is. */
static inline double bench_median(const double *v, unsigned n)
{
	double s[BENCH_MAX_RUNS];
	memcpy(s, v, n * sizeof *v);
	qsort(s, n, sizeof *s, bench_cmp_double);
	return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* Two busy loops, one per CPU of this machine, as long as the benchmark
 * wants the CPUs shared. */
struct bench_hogs {
	pid_t pid[2];
};

static inline void bench_hogs_start(struct bench_hogs *h)
{
	for (int i = 0; i < 2; i++) {
		h->pid[i] = fork();
		if (h->pid[i] == 0)
			for (volatile unsigned long k = 0;; k++)
				;
	}
}

static inline void bench_hogs_stop(struct bench_hogs *h)
{
	for (int i = 0; i < 2; i++) {
		if (h->pid[i] > 0) {
			kill(h->pid[i], SIGKILL);
			waitpid(h->pid[i], NULL, 0);
		}
	}
}

/* Reap one child. Returns its exit status, or -1 if it could not be reaped
 * or died of a signal (said so). */
static inline int bench_reap(pid_t pid, const char *what)
{
	int st;
	pid_t r;
	do
		r = waitpid(pid, &st, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		fprintf(stderr, "bench: waitpid(%s): %s\n", what, strerror(errno));
		return -1;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	fprintf(stderr, "bench: %s killed by signal %d\n", what,
		WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return -1;
}

static inline int bench_close(int fd)
{
	if (fd >= 0 && close(fd) < 0 && errno != EINTR) {
		perror("bench: close");
		return -1;
	}
	return 0;
}

extern char **environ;

#define BENCH_NO_PROGRAM (-2)

/* Runs @argv (@argv[0] looked up in PATH) with its stdout into @out, at
 * most @cap - 1 bytes and NUL-terminated, SIGPIPE at its default (the
 * benchmarks ignore it), and waits for it. Returns its exit status,
 * BENCH_NO_PROGRAM when there is no such program, or -1 (said why).
 * Its stdout is closed before the wait: a child with more to say gets
 * EPIPE, not a hang. */
static inline int bench_capture(char *const argv[], char *out, size_t cap)
{
	out[0] = '\0';
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		perror("bench: pipe2");
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
			/* dup2 clears O_CLOEXEC on the child's stdout only. */
			if (sigemptyset(&def) < 0 || sigaddset(&def, SIGPIPE) < 0)
				r = errno;
			if (r == 0)
				r = posix_spawnattr_setsigdefault(&attr, &def);
			if (r == 0)
				r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
			if (r == 0)
				r = posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
			if (r == 0)
				r = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
			posix_spawnattr_destroy(&attr);
		}
		posix_spawn_file_actions_destroy(&fa);
	}
	if (bench_close(pfd[1]) < 0 || r != 0) {
		bench_close(pfd[0]);
		if (r != 0 && r != ENOENT)
			fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(r));
		if (pid > 0)
			bench_reap(pid, argv[0]);
		return r == ENOENT ? BENCH_NO_PROGRAM : -1;
	}
	size_t len = 0;
	bool read_ok = true;
	while (len < cap - 1) {
		ssize_t got = read(pfd[0], out + len, cap - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			perror("bench: read from a child");
			read_ok = false;
		}
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	out[len] = '\0';
	if (bench_close(pfd[0]) < 0)
		read_ok = false;
	int st = bench_reap(pid, argv[0]);
	return read_ok ? st : -1;
}

/* The x + 2 maps' output, poisoned first so that a result never written
 * cannot pass, then checked. bench_verify_add2() says where it is wrong
 * (@what: the program and whose map) and returns false then. */
static inline void bench_poison(int64_t *out, size_t n)
{
	memset(out, 0xff, n * sizeof *out);
}

static inline bool bench_verify_add2(const char *what, const int64_t *in, const int64_t *out,
				     size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (out[i] != in[i] + 2) {
			fprintf(stderr, "%s: wrong result at %zu: %" PRId64 ", want %" PRId64 "\n",
				what, i, out[i], in[i] + 2);
			return false;
		}
	}
	return true;
}
