/* SPDX-License-Identifier: MIT */
/* The aggregator's side of a log ring. The ring is written by a child the
 * parent does not trust: each header is read once, every length is
 * bounded before use, entries are copied out before they are decoded, and
 * the reader's position is its own (the shared copy is only published).
 * Whatever the child writes, the reader moves forward, within the ring. */
#include "ring-int.h"

#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

void mplog__ring_reader_init(struct mplog__ring_reader *r, const struct mplog__ring *ring)
{
	r->ring = *ring;
	r->owner = getpid();
	r->tail = r->published = r->end = 0;
	r->at_eof = false;
}

static uint64_t slot_hdr(const struct mplog__ring_reader *r, uint64_t pos)
{
	return atomic_load_explicit(&r->ring.sh->slot[pos & (r->ring.nslots - 1)].hdr,
				    memory_order_acquire);
}

/* A header written for pos (not left from an earlier lap, not blank). */
static bool written_for(uint64_t h, uint64_t pos)
{
	return (uint32_t)h == (uint32_t)pos && (h >> 56) != 0;
}

static enum mplog__ring_got skip(struct mplog__ring_reader *r, uint64_t slots,
				 enum mplog__ring_got got, struct mplog__ring_item *it)
{
	r->tail += slots;
	*it = (struct mplog__ring_item){.len = (size_t)slots * MPLOG_RING_SLOT};
	return got;
}

/* At EOF: the slots from tail up to the next committed entry (or to the
 * end) were reserved by writers that died before committing them. */
static enum mplog__ring_got lost_run(struct mplog__ring_reader *r, struct mplog__ring_item *it)
{
	uint64_t n = 0;
	while (n < r->end - r->tail) {
		uint64_t h = slot_hdr(r, r->tail + n);
		if (written_for(h, r->tail + n) && h >> 56 != RING_CONT)
			break;
		n++;
	}
	return skip(r, n, RING_LOST, it);
}

enum mplog__ring_got mplog__ring_next(struct mplog__ring_reader *r, bool eof,
				      struct mplog__ring_item *it)
{
	if (eof && !r->at_eof) {
		/* Writers are gone: they stopped at head, read once and kept
		 * within one lap whatever it says. */
		uint64_t h = atomic_load_explicit(&r->ring.sh->head, memory_order_acquire);
		r->end = h - r->tail <= r->ring.nslots ? h : r->tail + r->ring.nslots;
		r->at_eof = true;
	}
	/* Differences, not comparisons: positions count modulo 2^64. */
	if (r->at_eof && r->tail == r->end)
		return RING_NONE;
	uint64_t pos = r->tail, h = slot_hdr(r, pos);
	unsigned kind = (unsigned)(h >> 56);
	uint32_t len = (uint32_t)(h >> 32) & 0xffffffu;
	if (!written_for(h, pos)) /* not committed (yet) */
		return r->at_eof ? lost_run(r, it) : RING_NONE;
	if (kind == RING_CONT) /* a continuation without its start */
		return r->at_eof ? lost_run(r, it) : skip(r, 1, RING_GARBAGE, it);
	uint64_t k = MPLOG_RING_SLOTS_OF((uint64_t)len);
	if ((kind != RING_RECORD && kind != RING_FRAGMENT) || len == 0 || len > MPLOG_BODY_MAX ||
	    (r->at_eof && k > r->end - pos))
		return skip(r, 1, RING_GARBAGE, it);
	/* Copy out, checking that each continuation was written for this
	 * entry; a writer commits the first slot last, so they are there. */
	for (uint64_t i = 0; i < k; i++) {
		if (i && slot_hdr(r, pos + i) != ((uint64_t)RING_CONT << 56 | (uint32_t)(pos + i)))
			return skip(r, 1, RING_GARBAGE, it);
		size_t off = (size_t)i * MPLOG_RING_DATA;
		size_t n = len - off < MPLOG_RING_DATA ? len - off : MPLOG_RING_DATA;
		memcpy(r->buf + off, r->ring.sh->slot[(pos + i) & (r->ring.nslots - 1)].data, n);
	}
	r->tail += k;
	*it = (struct mplog__ring_item){.kind = kind, .data = r->buf, .len = len};
	return RING_ENTRY;
}

void mplog__ring_publish(struct mplog__ring_reader *r)
{
	if (r->tail == r->published)
		return;
	struct mplog__ring_shared *sh = r->ring.sh;
	r->published = r->tail;
	/* Release: what was copied out is no longer read. Then look for
	 * waiters (a writer says it waits, then looks at tail). */
	atomic_store(&sh->tail, r->tail);
	if (atomic_load(&sh->waiters) && atomic_exchange(&sh->waiters, 0)) {
		atomic_fetch_add(&sh->space, 1);
		/* Never blocks: the reader does not wait for a child. */
		syscall(SYS_futex, &sh->space, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	}
}

bool mplog__ring_arm(struct mplog__ring_reader *r)
{
	atomic_store(&r->ring.sh->sleeping, 1);
	/* Sequentially consistent with a writer's commit and its load of
	 * sleeping: an entry committed before we slept is seen here. */
	uint64_t h = atomic_load(&r->ring.sh->slot[r->tail & (r->ring.nslots - 1)].hdr);
	return written_for(h, r->tail);
}

void mplog__ring_disarm(struct mplog__ring_reader *r)
{
	atomic_store_explicit(&r->ring.sh->sleeping, 0, memory_order_relaxed);
}

void mplog__ring_reader_free(struct mplog__ring_reader *r)
{
	if (!r)
		return;
	if (getpid() == r->owner && r->ring.sh) {
		struct mplog__ring_shared *sh = r->ring.sh;
		atomic_store(&sh->closed, 1);
		atomic_fetch_add(&sh->space, 1);
		syscall(SYS_futex, &sh->space, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
		mplog__ring_unmap(&r->ring);
	}
	free(r);
}
