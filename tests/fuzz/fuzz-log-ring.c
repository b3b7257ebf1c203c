/* SPDX-License-Identifier: MIT */
/* Fuzz target: a child's log ring as the aggregator reads it
 * (mplog__channel_ring() on a log channel): the input is the ring's
 * memory, a u64 where the reader starts, then the bytes of the shared
 * header and of FUZZ_SLOTS slots; what is left of the input is XORed into
 * that memory before the reader is told that the writers are gone, as a
 * child scribbling while it is read would. Invariants: the reader stops
 * by itself, alive and at EOF, within one lap of the writers' head; what
 * comes out are records (serialized by the callback sink); at EOF
 * everything was taken or reported (no garbage count, no long record
 * half assembled once the pipe's EOF is parsed too). */
#include "channel-fuzz.h"
#include "ring-int.h"

#define FUZZ_SLOTS 128u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)fuzz_channel; /* channel-fuzz.h's pipe feeder: not used here */
	size_t len = mplog__ring_size(FUZZ_SLOTS);
	uint64_t start = 0;
	if (size >= 8) {
		memcpy(&start, data, 8);
		data += 8;
		size -= 8;
	}
	struct mplog__ring_shared *sh = aligned_alloc(64, len);
	FUZZ_CHECK(sh);
	memset(sh, 0, len);
	size_t take = size < len ? size : len;
	memcpy(sh, data, take);

	mplog_aggregator *a = fuzz_aggregator();
	struct mplog__channel *ch = calloc(1, sizeof *ch);
	struct mplog__ring_reader *r = malloc(sizeof *r);
	FUZZ_CHECK(ch && r);
	*ch = (struct mplog__channel){.id = 1, .group = 1, .fd = -1, .stream = MPLOG_STREAM_LOG,
				      .name = strdup("fuzz"), .worker = 3, .ring = r};
	FUZZ_CHECK(ch->name);
	mplog__ring_reader_init(r, &(struct mplog__ring){.sh = sh, .map_len = len,
							 .nslots = FUZZ_SLOTS});
	r->tail = r->published = start;
	fuzz_out = (struct mpk_buf){0};

	/* Alive: small budgets, until nothing more comes. Each slot matches
	 * at most one position: within a lap, it stops. */
	size_t rounds = 0;
	while (mplog__channel_ring(a, ch, 300, false) > 0)
		FUZZ_CHECK(++rounds <= FUZZ_SLOTS);
	FUZZ_CHECK(r->tail - start <= FUZZ_SLOTS);
	(void)mplog__ring_arm(r);
	mplog__ring_disarm(r);

	/* The child scribbles on, then dies. */
	for (size_t i = take; i < size; i++)
		((uint8_t *)sh)[(i - take) % len] ^= data[i];
	uint64_t at_eof = r->tail;
	(void)mplog__channel_ring(a, ch, SIZE_MAX, true);
	FUZZ_CHECK(r->at_eof && r->tail == r->end && r->end - at_eof <= FUZZ_SLOTS);
	FUZZ_CHECK(mplog__channel_ring(a, ch, SIZE_MAX, true) == 0);
	mplog__channel_parse(a, ch, true); /* the pipe's EOF: long records cut short */
	FUZZ_CHECK(ch->in.len == 0 && ch->nasm == 0 && ch->garbage == 0);

	r->ring.sh = NULL; /* not a mapping: freed here */
	mplog__channel_free(ch);
	free(sh);
	mpk_buf_free(&fuzz_out);
	return 0;
}
