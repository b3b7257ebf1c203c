/* SPDX-License-Identifier: MIT */
/* handpool.h — the hand-written fork+pipe pool the benchmarks measure
 * mpkit against: x+2 over int64 inputs, batches of `batch` inputs, up to
 * `inflight` batches queued per worker. About the floor a fork-based pool
 * can hope for: with batches of 1024 for a map, with batches of one 64
 * deep for a pool that cannot batch. */
#pragma once

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HPOOL_MAX_INFLIGHT 64u
#define HPOOL_MAX_BATCH 1024u

/* Two pipes per worker (pipes beat AF_UNIX sockets for this here). A batch
 * is an 8-byte count then the inputs; the worker answers with the results
 * alone, so the parent reads them straight into the output array. With at
 * most INFLIGHT batches (~16 KiB) queued in a 64 KiB pipe, writes never
 * block; nor with FLOOR_INFLIGHT batches of one (1 KiB). */
struct hworker {
	pid_t pid;
	int to;                  /* the parent writes batches here */
	int from;                /* and reads results here */
	size_t first[HPOOL_MAX_INFLIGHT]; /* batches sent, a ring from qh, oldest first */
	size_t count[HPOOL_MAX_INFLIGHT];
	unsigned qh;
	size_t got;              /* result bytes of the oldest batch read so far */
	unsigned nq;
};

struct hpool {
	unsigned n;
	unsigned batch, inflight; /* inputs per message, messages queued per worker */
	struct hworker *w;
	struct pollfd *pfd;
};

/* Start n workers; 0, or -1 after saying why. The caller ignores SIGPIPE
 * first (a dead worker is EPIPE). */
int hpool_start(struct hpool *hp, unsigned n, unsigned batch, unsigned inflight);
/* out[i] = in[i] + 2 for i < n; 0, or -1 after saying why. */
int hpool_map(struct hpool *hp, const int64_t *in, int64_t *out, size_t n);
/* Close the pipes, reap the workers; 0, or -1 after saying why. */
int hpool_stop(struct hpool *hp);
