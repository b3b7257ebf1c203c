/* SPDX-License-Identifier: MIT */
/* Shared by the fuzz targets of libmplog's channel parser (log-frames,
 * log-lines): an aggregator with one callback sink that serializes every
 * record it gets, and a channel fed the fuzzer's bytes in reads of given
 * sizes, as the aggregator's read loop would (parse after each read, then
 * once more at EOF). No fd, no epoll: mplog__channel_parse() only ever
 * looks at the bytes buffered in the channel. */
#pragma once

#include "fuzz-check.h"
#include "aggregator-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Called for each record the channel yields, after it was serialized. */
static void (*fuzz_on_record)(const mplog_record *r);

/* The records of the current run, serialized without their timestamps
 * (a line's is the time of delivery). */
static struct mpk_buf fuzz_out;

static void fuzz_put_str(const char *s, size_t n)
{
	mpk_buf_put(&fuzz_out, &n, sizeof n);
	mpk_buf_put(&fuzz_out, s, n);
}

static void fuzz_collect(const mplog_record *r, void *userdata)
{
	(void)userdata;
	int64_t f[] = {r->level, r->stream, r->pid, r->worker, r->task, r->line};
	mpk_buf_put(&fuzz_out, f, sizeof f);
	fuzz_put_str(r->channel, strlen(r->channel));
	fuzz_put_str(r->file, strlen(r->file));
	fuzz_put_str(r->func, strlen(r->func));
	fuzz_put_str(r->msg, r->msg_len);
	for (size_t i = 0; i < 2 * r->nkv; i++)
		fuzz_put_str(r->kv[i], strlen(r->kv[i]));
	FUZZ_CHECK(!fuzz_out.oom);
	if (fuzz_on_record)
		fuzz_on_record(r);
}

static mplog_aggregator *fuzz_aggregator(void)
{
	static mplog_aggregator *a;
	if (!a) {
		mplog_sink *s;
		FUZZ_CHECK(mplog_aggregator_new(&a) == 0);
		FUZZ_CHECK(mplog_sink_new_callback(fuzz_collect, NULL, &s) == 0);
		FUZZ_CHECK(mplog_aggregator_add_sink(a, s) == 0);
	}
	return a;
}

/* Next read size from a xorshift state: mostly small, sometimes large. */
static size_t fuzz_read_size(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x % 4 ? 1 + *x % 64 : 1 + *x % 5000;
}

/* Feed data to a fresh channel of that stream: in one read when seed is
 * 0, else in reads of sizes drawn from seed. Returns the records,
 * serialized (the caller frees them). held_max: bytes a channel may keep
 * between reads. */
static struct mpk_buf fuzz_feed(mplog_stream stream, const uint8_t *data, size_t size,
				uint64_t seed, size_t held_max)
{
	mplog_aggregator *a = fuzz_aggregator();
	struct mplog__channel *ch = calloc(1, sizeof *ch);
	FUZZ_CHECK(ch);
	*ch = (struct mplog__channel){.id = 1, .group = 1, .fd = -1, .stream = stream,
				      .name = strdup("fuzz"), .worker = 3, .task = -1};
	FUZZ_CHECK(ch->name);
	fuzz_out = (struct mpk_buf){0};
	size_t off = 0;
	while (off < size) {
		size_t n = seed ? fuzz_read_size(&seed) : size;
		if (n > size - off)
			n = size - off;
		mpk_buf_put(&ch->in, data + off, n);
		FUZZ_CHECK(!ch->in.oom);
		off += n;
		mplog__channel_parse(a, ch, false);
		FUZZ_CHECK(ch->in.len <= held_max);
	}
	mplog__channel_parse(a, ch, true);
	/* EOF: everything was delivered or reported, nothing is kept. */
	FUZZ_CHECK(ch->in.len == 0 && ch->nasm == 0 && ch->garbage == 0);
	mplog__channel_free(ch);
	return fuzz_out;
}

/* The same bytes, in one read and in many: the same records. */
static void fuzz_channel(mplog_stream stream, const uint8_t *data, size_t size,
			 size_t held_max)
{
	uint64_t seed = 0x9e3779b97f4a7c15u ^ size;
	for (size_t i = 0; i < size && i < 64; i++)
		seed = seed * 31 + data[i];
	struct mpk_buf whole = fuzz_feed(stream, data, size, 0, held_max);
	void (*hook)(const mplog_record *) = fuzz_on_record;
	fuzz_on_record = NULL; /* once is enough */
	struct mpk_buf cut = fuzz_feed(stream, data, size, seed | 1, held_max);
	fuzz_on_record = hook;
	FUZZ_CHECK(whole.len == cut.len && (!whole.len || !memcmp(whole.data, cut.data, whole.len)));
	mpk_buf_free(&whole);
	mpk_buf_free(&cut);
}
