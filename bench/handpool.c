/* SPDX-License-Identifier: MIT */
/* handpool.c — the hand-written pool of handpool.h. */
#include "bench.h"
#include "handpool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

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
	int64_t buf[HPOOL_MAX_BATCH];
	for (;;) {
		uint64_t k;
		int r = read_full(in_fd, &k, sizeof k);
		if (r == 0)
			_exit(0); /* the parent closed: no more work */
		if (r < 0 || k > HPOOL_MAX_BATCH || read_full(in_fd, buf, k * sizeof buf[0]) != 1)
			_exit(2);
		for (size_t i = 0; i < k; i++)
			buf[i] += 2;
		struct iovec iov = {buf, k * sizeof buf[0]};
		if (writev_full(out_fd, &iov, 1) < 0)
			_exit(3); /* the parent is gone */
	}
}

/* Close the pipes (workers see EOF and exit) and reap every worker. */
int hpool_stop(struct hpool *hp)
{
	int rc = 0;
	for (unsigned i = 0; i < hp->n; i++) {
		if (bench_close(hp->w[i].to) < 0 || bench_close(hp->w[i].from) < 0)
			rc = -1;
		hp->w[i].to = hp->w[i].from = -1;
	}
	for (unsigned i = 0; i < hp->n; i++) {
		int st = bench_reap(hp->w[i].pid, "hand-written worker");
		if (st != 0) {
			if (st > 0)
				fprintf(stderr, "handpool: hand-written worker exited with status %d\n", st);
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

int hpool_start(struct hpool *hp, unsigned n, unsigned batch, unsigned inflight)
{
	*hp = (struct hpool){.batch = batch, .inflight = inflight};
	hp->w = calloc(n, sizeof *hp->w);
	hp->pfd = calloc(n, sizeof *hp->pfd);
	if (!hp->w || !hp->pfd) {
		fprintf(stderr, "handpool: out of memory\n");
		free(hp->w);
		free(hp->pfd);
		*hp = (struct hpool){0};
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		int to[2], from[2];
		if (pipe2(to, O_CLOEXEC) < 0) {
			perror("handpool: pipe2");
			hpool_stop(hp);
			return -1;
		}
		if (pipe2(from, O_CLOEXEC) < 0) {
			perror("handpool: pipe2");
			bench_close(to[0]);
			bench_close(to[1]);
			hpool_stop(hp);
			return -1;
		}
		pid_t pid = fork();
		if (pid < 0) {
			perror("handpool: fork");
			bench_close(to[0]);
			bench_close(to[1]);
			bench_close(from[0]);
			bench_close(from[1]);
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
		if (bench_close(to[0]) < 0 || bench_close(from[1]) < 0) {
			hpool_stop(hp);
			return -1;
		}
	}
	return 0;
}

static int hsend(const struct hpool *hp, struct hworker *w, const int64_t *in, size_t *next,
		 size_t n)
{
	uint64_t k = n - *next < hp->batch ? n - *next : hp->batch;
	struct iovec iov[2] = {{&k, sizeof k}, {(void *)(in + *next), k * sizeof *in}};
	if (writev_full(w->to, iov, 2) < 0) {
		fprintf(stderr, "handpool: write to worker %d: %s\n", (int)w->pid, strerror(errno));
		return -1;
	}
	unsigned t = (w->qh + w->nq) % HPOOL_MAX_INFLIGHT;
	w->first[t] = *next;
	w->count[t] = k;
	w->nq++;
	*next += k;
	return 0;
}

/* Map x+2 over in[0..n) into out with the hand-written pool. */
int hpool_map(struct hpool *hp, const int64_t *in, int64_t *out, size_t n)
{
	size_t next = 0, done = 0;
	for (unsigned i = 0; i < hp->n; i++)
		while (hp->w[i].nq < hp->inflight && next < n)
			if (hsend(hp, &hp->w[i], in, &next, n) < 0)
				return -1;
	while (done < n) {
		for (unsigned i = 0; i < hp->n; i++)
			hp->pfd[i] = (struct pollfd){.fd = hp->w[i].nq ? hp->w[i].from : -1,
						     .events = POLLIN};
		if (poll(hp->pfd, hp->n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("handpool: poll");
			return -1;
		}
		for (unsigned i = 0; i < hp->n; i++) {
			struct hworker *w = &hp->w[i];
			if (!hp->pfd[i].revents)
				continue;
			/* One read for whatever came back, across the batches. */
			struct iovec iov[HPOOL_MAX_INFLIGHT];
			int niov = 0;
			for (unsigned q = 0; q < w->nq; q++, niov++) {
				unsigned s = (w->qh + q) % HPOOL_MAX_INFLIGHT;
				size_t skip = q == 0 ? w->got : 0;
				iov[q] = (struct iovec){(char *)(out + w->first[s]) + skip,
							w->count[s] * sizeof *out - skip};
			}
			ssize_t r = readv(w->from, iov, niov);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				fprintf(stderr, "handpool: worker %d: %s\n", (int)w->pid,
					r < 0 ? strerror(errno) : "died");
				return -1;
			}
			size_t left = (size_t)r;
			while (left) {
				size_t need = w->count[w->qh] * sizeof *out - w->got;
				if (left < need) {
					w->got += left;
					break;
				}
				left -= need;
				w->got = 0;
				done += w->count[w->qh];
				w->qh = (w->qh + 1) % HPOOL_MAX_INFLIGHT;
				w->nq--;
			}
			/* Refill at once, so the worker never waits for us. */
			while (w->nq < hp->inflight && next < n)
				if (hsend(hp, w, in, &next, n) < 0)
					return -1;
		}
	}
	return 0;
}

