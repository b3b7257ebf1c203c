/* SPDX-License-Identifier: MIT */
/* The log ring: memory shared by one child (and the threads and processes
 * that inherit its writer) with the aggregator, holding that child's
 * records so that logging takes no system call. Its layout, the writers'
 * side (ring.c) and the aggregator's, which reads it as hostile input
 * (ring-read.c). Internal to libmplog, never installed; DESIGN.md, "The
 * life of a log record", tells the protocol.
 *
 * The data area is an array of 64-byte slots. An entry (the body of a
 * record or of a fragment, at most MPLOG_BODY_MAX bytes) takes k
 * consecutive slots, reserved at once by a compare-and-swap on head; each
 * slot starts with an 8-byte header and carries 56 bytes of the entry.
 * A header says which position it was written for (its low 32 bits): one
 * left from an earlier lap, or never written, does not match, so nothing
 * needs clearing behind the reader. The writer fills the slots, writes the
 * headers of slots 1..k-1 (RING_CONT), then commits by writing the first
 * one (kind and length) with release order. The reader takes entries in
 * position order; its position (tail) is its own, published for writers. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "record-int.h"

#define MPLOG_RING_MAGIC   0x474e524du /* "MRNG" in memory */
#define MPLOG_RING_VERSION 1u
#define MPLOG_RING_SLOT    64u
#define MPLOG_RING_DATA    (MPLOG_RING_SLOT - 8u) /* entry bytes per slot */
#ifndef MPLOG_RING_SLOTS
#define MPLOG_RING_SLOTS 4096u /* 256 KiB of slots */
#endif
/* Slots of an entry of len bytes (1..MPLOG_BODY_MAX). */
#define MPLOG_RING_SLOTS_OF(len) (((len) + MPLOG_RING_DATA - 1) / MPLOG_RING_DATA)

/* A header's kind (bits 24..31 of its high word; the low 24 bits are the
 * entry's length in a first slot, 0 in the others). 0: never written. */
enum { RING_RECORD = 1, RING_FRAGMENT = 2, RING_CONT = 3 };

struct mplog__ring_slot {
	_Atomic uint64_t hdr;
	uint8_t data[MPLOG_RING_DATA];
};

/* What the memfd holds, each group on its own cache line. */
struct mplog__ring_shared {
	/* Written by the aggregator before the child exists. */
	uint32_t magic, version, nslots, slot_size;
	uint8_t pad0[48];
	_Atomic uint64_t head; /* writers: next position to reserve */
	uint8_t pad1[56];
	_Atomic uint64_t tail;     /* the reader's position, published */
	_Atomic uint32_t space;    /* futex: bumped when tail moves for waiters */
	_Atomic uint32_t waiters;  /* a writer waits for room */
	uint8_t pad2[48];
	_Atomic uint32_t sleeping; /* the reader waits: wake it (a frame on the pipe) */
	_Atomic uint32_t closed;   /* the reader is gone: writers use the pipe */
	uint8_t pad3[56];
	struct mplog__ring_slot slot[];
};
_Static_assert(sizeof(struct mplog__ring_shared) == 256, "four cache lines");

/* One mapping of a ring, either side. */
struct mplog__ring {
	struct mplog__ring_shared *sh;
	size_t map_len;
	uint32_t nslots; /* a power of two; never read back from sh by the reader */
};

/* Bytes of a ring of nslots slots. */
static inline size_t mplog__ring_size(uint32_t nslots)
{
	return sizeof(struct mplog__ring_shared) + (size_t)nslots * MPLOG_RING_SLOT;
}

/* ---- both sides (ring.c) ----------------------------------------------- */

/* Aggregator: a sealed memfd (size fixed) holding a new ring of
 * MPLOG_RING_SLOTS, mapped into r but not into children forked later
 * (MADV_DONTFORK). 0 and the fd (O_CLOEXEC) in *ret_fd, or -errno. */
int mplog__ring_create(struct mplog__ring *r, int *ret_fd);
/* Child: map the ring in fd (it stays mapped in processes forked later).
 * 0, or -EINVAL (not a ring of ours), -errno of fstat()/mmap(). */
int mplog__ring_attach(int fd, struct mplog__ring *r);
void mplog__ring_unmap(struct mplog__ring *r);

/* Writer: put one entry of kind RING_RECORD or RING_FRAGMENT, len bytes
 * (1..MPLOG_BODY_MAX). When the ring is full: return 1 if may_drop, else
 * wait for room. Wakes the reader when it sleeps by writing a
 * MPLOG_FRAME_WAKE frame to wake_fd (its log pipe). Returns 0 (committed),
 * 1 (dropped), MPLOG_RING_CLOSED (the reader is gone: send on the pipe,
 * which reports it), or -errno of that pipe (e.g. -EPIPE). */
#define MPLOG_RING_CLOSED 2
int mplog__ring_put(struct mplog__ring *r, int wake_fd, unsigned kind, const void *p, size_t len,
		    bool may_drop);

/* ---- the reader (ring-read.c) -------------------------------------------- */

struct mplog__ring_reader {
	struct mplog__ring ring;
	pid_t owner;        /* the mapping exists only in this process */
	uint64_t tail;      /* next position to read: ours, not the shared one */
	uint64_t published; /* last tail published to writers */
	uint64_t end;       /* at EOF: where writers stopped (head read once) */
	bool at_eof;
	uint8_t buf[MPLOG_BODY_MAX]; /* the entry taken, copied out of shared memory */
};

/* What mplog__ring_next() found. */
enum mplog__ring_got {
	RING_NONE,    /* nothing to take now (or nothing left, at EOF) */
	RING_ENTRY,   /* an entry: kind, data (r->buf), len */
	RING_GARBAGE, /* a committed slot that is not a valid entry: len bytes skipped */
	RING_LOST,    /* at EOF: slots reserved but never committed, len bytes */
};

struct mplog__ring_item {
	unsigned kind;
	const uint8_t *data;
	size_t len;
};

/* Start reading ring (the reader owns it from now on). */
void mplog__ring_reader_init(struct mplog__ring_reader *r, const struct mplog__ring *ring);
/* Take what comes next. eof: every writer is gone (the ring no longer
 * changes), so slots never committed are skipped and reported. Each
 * header is read once; nothing read from the ring is trusted. */
enum mplog__ring_got mplog__ring_next(struct mplog__ring_reader *r, bool eof,
				      struct mplog__ring_item *it);
/* Make the room taken so far free for writers, waking any that wait. */
void mplog__ring_publish(struct mplog__ring_reader *r);
/* About to sleep: ask writers for a wake-up; true if an entry is ready
 * already (then do not sleep). */
bool mplog__ring_arm(struct mplog__ring_reader *r);
/* Awake: writers need not wake us. */
void mplog__ring_disarm(struct mplog__ring_reader *r);
/* Say the reader is gone (writers fall back to the pipe), wake waiting
 * writers, unmap (only in the process that mapped it), free r. */
void mplog__ring_reader_free(struct mplog__ring_reader *r);
