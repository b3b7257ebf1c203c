/* SPDX-License-Identifier: MIT */
/* The last records of a pool's or supervisor's log, as JSON lines, for
 * `mplog live -n N` (the control socket's "log N"): a callback sink added
 * when the control socket starts, before any reader's, so that for each
 * record it runs first and numbers it (seq); a reader that was handed the
 * backlog up to seq k skips the records numbered k or less that reach its
 * own sink too. Costs a JSON formatting per record while the control
 * socket runs; holds at most MPG_BACKLOG_RECORDS records and
 * MPG_BACKLOG_BYTES bytes. */
#include "control-int.h"
#include "wire-int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MPG_BACKLOG_RECORDS 1000u
#define MPG_BACKLOG_BYTES (1u << 20)

struct mpg__backlog {
	pthread_mutex_t lock;
	mplog_sink *sink;
	_Atomic uint64_t seq; /* of the last record delivered */
	char *line[MPG_BACKLOG_RECORDS];
	size_t len[MPG_BACKLOG_RECORDS];
	size_t first, n, bytes; /* ring: the oldest at first */
};

static void drop_oldest(struct mpg__backlog *b)
{
	b->bytes -= b->len[b->first];
	free(b->line[b->first]);
	b->line[b->first] = NULL;
	b->first = (b->first + 1) % MPG_BACKLOG_RECORDS;
	b->n--;
}

/* On the aggregator's thread, its lock held. */
static void on_record(const mplog_record *r, void *userdata)
{
	struct mpg__backlog *b = userdata;
	char small[1024], *line = NULL;
	ssize_t n = mplog_record_format(r, MPLOG_FORMAT_JSON, 0, small, sizeof small);
	if (n >= 0 && (size_t)n < MPG_BACKLOG_BYTES && (line = malloc((size_t)n + 1)))
		if (n >= (ssize_t)sizeof small
			    ? mplog_record_format(r, MPLOG_FORMAT_JSON, 0, line, (size_t)n + 1) != n
			    : !memcpy(line, small, (size_t)n + 1)) {
			free(line);
			line = NULL;
		}
	pthread_mutex_lock(&b->lock);
	atomic_fetch_add(&b->seq, 1); /* a record lost here is still counted */
	if (line) {
		while (b->n && (b->n == MPG_BACKLOG_RECORDS || b->bytes + (size_t)n > MPG_BACKLOG_BYTES))
			drop_oldest(b);
		size_t at = (b->first + b->n) % MPG_BACKLOG_RECORDS;
		b->line[at] = line;
		b->len[at] = (size_t)n;
		b->bytes += (size_t)n;
		b->n++;
	}
	pthread_mutex_unlock(&b->lock);
}

int mpg__backlog_new(mplog_aggregator *log, struct mpg__backlog **ret)
{
	struct mpg__backlog *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	pthread_mutex_init(&b->lock, NULL);
	int r = mplog_sink_new_callback(on_record, b, &b->sink);
	if (r == 0)
		r = mplog_aggregator_add_sink(log, b->sink); /* frees it on failure */
	if (r < 0) {
		pthread_mutex_destroy(&b->lock);
		free(b);
		return r;
	}
	*ret = b;
	return 0;
}

void mpg__backlog_free(struct mpg__backlog *b, mplog_aggregator *log)
{
	if (!b)
		return;
	(void)mplog_aggregator_remove_sink(log, b->sink);
	while (b->n)
		drop_oldest(b);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

uint64_t mpg__backlog_seq(struct mpg__backlog *b)
{
	return b ? atomic_load(&b->seq) : 0;
}

uint64_t mpg__backlog_copy(struct mpg__backlog *b, size_t n, struct mpk_buf *out)
{
	if (!b)
		return 0;
	pthread_mutex_lock(&b->lock);
	if (n > b->n)
		n = b->n;
	for (size_t i = b->n - n; i < b->n; i++) {
		size_t k = (b->first + i) % MPG_BACKLOG_RECORDS;
		mpk_buf_put(out, b->line[k], b->len[k]);
	}
	uint64_t seq = atomic_load(&b->seq);
	pthread_mutex_unlock(&b->lock);
	return seq;
}
