/* What every benchmark needs: a clock, a median, busy loops to load the
 * CPUs with. Header-only: each benchmark is one program. */
#pragma once

#include <signal.h>
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
