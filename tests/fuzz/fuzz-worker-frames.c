/* SPDX-License-Identifier: MIT */
/* Fuzz target: the worker protocol's decoders (libmpguard/src/proto.c) on
 * a byte stream as the parent reads a worker's socket: frames found with
 * mpg__frame_peek / mpg__frame_resync (garbage skipped as the dispatcher
 * does), each whole frame decoded by its type; and the same bytes as a
 * chunk body, as a worker decodes what the parent sent.
 * Invariants: peek never reports a frame longer than the bytes given,
 * resync always moves on; a result that decodes iterates exactly its
 * count of items (or nerr errors) inside the frame, and carries no more
 * memfds than items; a chunk's inputs lie inside the body. */
#include "fuzz-check.h"
#include "proto-int.h"
#include "arena-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static bool inside(const void *p, size_t n, const uint8_t *data, size_t size)
{
	return n == 0 || ((const uint8_t *)p >= data && (const uint8_t *)p + n <= data + size);
}

static void result(const uint8_t *b, size_t n)
{
	struct mpg__result r;
	if (mpg__result_decode(b, n, &r) < 0)
		return;
	FUZZ_CHECK(r.h.count > 0);
	if (r.is_fixed) {
		if (r.in_arena) /* where in the arena: within its biggest size */
			FUZZ_CHECK(!r.fixed && r.arena_off + r.h.count * r.h.out_size <= MPG_ARENA_MAX);
		else
			FUZZ_CHECK(inside(r.fixed, r.h.count * r.h.out_size, b, n));
		FUZZ_CHECK(r.nerr <= r.h.count);
		struct mpk_reader er;
		mpk_reader_init(&er, r.errs, r.errs_len);
		int64_t last = -1;
		for (uint32_t e = 0; e < r.nerr; e++) {
			uint32_t rel;
			struct mpg__raised err;
			FUZZ_CHECK(mpg__fixed_error_next(&er, &rel, &err));
			FUZZ_CHECK(rel < r.h.count && (int64_t)rel > last);
			FUZZ_CHECK(inside(err.msg, err.msg_len, b, n) && err.msg_len < MPG_MAX_MESSAGE);
			last = rel;
		}
		FUZZ_CHECK(er.left == 0);
		return;
	}
	FUZZ_CHECK(r.nshm <= r.h.count);
	struct mpg__item_iter it;
	mpg__items_begin(&it, r.items, r.items_len);
	for (uint32_t i = 0; i < r.h.count; i++) {
		struct mpg__item item;
		FUZZ_CHECK(mpg__items_next(&it, &item));
		if (item.kind == ITEM_INLINE)
			FUZZ_CHECK(inside(item.data, item.len, b, n));
		if (item.kind == ITEM_ERROR) {
			uint64_t ips[MPG_MAX_FRAMES];
			FUZZ_CHECK(item.err.nips <= MPG_MAX_FRAMES);
			mpg__raised_ips(&item.err, ips);
		}
	}
	FUZZ_CHECK(it.r.left == 0);
}

static void frame(uint8_t type, const uint8_t *b, size_t n, unsigned nfds)
{
	uint64_t ips[MPG_MAX_FRAMES];
	switch (type) {
	case MSG_RESULT:
		result(b, n);
		break;
	case MSG_CRASH: {
		struct mpg__crash_head c;
		if (mpg__crash_decode(b, n, &c, ips) == 0)
			FUZZ_CHECK(c.nips <= MPG_MAX_FRAMES);
		break;
	}
	case MSG_STACK: {
		uint32_t k;
		if (mpg__stack_decode(b, n, &k, ips) == 0)
			FUZZ_CHECK(k <= MPG_MAX_FRAMES);
		break;
	}
	case MSG_MODULES: {
		struct mpg__modlist l;
		if (mpg__modlist_decode(b, n, &l) == 0) {
			for (size_t i = 0; i < l.n; i++)
				FUZZ_CHECK(l.m[i].path && l.m[i].build_id_len <= 64);
			mpg__modlist_free(&l);
		}
		break;
	}
	case MSG_SERVICE_END: {
		struct mpg__raised e;
		if (mpg__service_end_decode(b, n, &e) == 0)
			FUZZ_CHECK(inside(e.msg, e.msg_len, b, n));
		break;
	}
	case MSG_HELLO:
		(void)mpg__hello_decode(b, n, nfds);
		break;
	}
}

static void chunk(const uint8_t *b, size_t n)
{
	struct mpg__chunk c;
	if (mpg__chunk_decode(b, n, &c) < 0)
		return;
	FUZZ_CHECK(c.h.count > 0);
	FUZZ_CHECK(inside(c.ctx, c.ctx_len, b, n));
	struct mpg__input in;
	for (uint32_t i = 0; i < c.h.count && mpg__input_next(&c, &in); i++)
		if (!in.shm)
			FUZZ_CHECK(inside(in.data, in.len, b, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		size_t len = 0;
		int r = mpg__frame_peek(data + off, size - off, MSG_WORKER_FIRST, MSG_WORKER_LAST, &len);
		if (r == 0)
			break;
		if (r < 0) {
			size_t skip = mpg__frame_resync(data + off, size - off);
			FUZZ_CHECK(skip > 0 && skip <= size - off);
			off += skip;
			continue;
		}
		FUZZ_CHECK(len >= sizeof(struct mpk_frame_header) && len <= size - off);
		struct mpk_frame_header h;
		memcpy(&h, data + off, sizeof h);
		/* A copy of exactly the body: reading past it is a bug ASan sees. */
		size_t n = len - sizeof h;
		uint8_t *body = malloc(n ? n : 1);
		FUZZ_CHECK(body);
		memcpy(body, data + off + sizeof h, n);
		frame(h.type, body, n, h.nfds);
		free(body);
		off += len;
	}
	uint8_t *copy = malloc(size ? size : 1);
	FUZZ_CHECK(copy);
	memcpy(copy, data, size);
	chunk(copy, size);
	free(copy);
	return 0;
}
