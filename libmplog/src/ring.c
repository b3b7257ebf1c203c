/* SPDX-License-Identifier: MIT */
/* The log ring's memory (created by the aggregator, mapped by the child)
 * and its writers: lock-free, so that nothing is held at fork() time and
 * any thread or forked process sharing the mapping can log at once. An
 * entry costs a compare-and-swap, copies and one store; a system call
 * only to wake a sleeping reader or to wait for room. */
#include "ring-int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert((MPLOG_RING_SLOTS & (MPLOG_RING_SLOTS - 1)) == 0, "slots: a power of two");
_Static_assert(MPLOG_RING_SLOTS >= 2 * MPLOG_RING_SLOTS_OF(MPLOG_BODY_MAX),
	       "the longest entry fits twice");

/* How long a writer waits for room before it checks that the reader is
 * still there (a frame on the pipe: EPIPE if not). */
#define WAIT_CHECK_NS 100000000L

int mplog__ring_create(struct mplog__ring *r, int *ret_fd)
{
	int fd = memfd_create("mplog-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	size_t len = mplog__ring_size(MPLOG_RING_SLOTS);
	void *m = MAP_FAILED;
	/* Sealed at its size: a child cannot shrink it under the reader
	 * (which would then fault on the missing pages). */
	if (ftruncate(fd, (off_t)len) == 0 &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		int e = -errno;
		close(fd);
		return e;
	}
	/* Children forked later (siblings) do not inherit the aggregator's
	 * view: the child maps its own ring from the fd. */
	(void)madvise(m, len, MADV_DONTFORK);
	struct mplog__ring_shared *sh = m;
	sh->magic = MPLOG_RING_MAGIC;
	sh->version = MPLOG_RING_VERSION;
	sh->nslots = MPLOG_RING_SLOTS;
	sh->slot_size = MPLOG_RING_SLOT;
	atomic_store(&sh->sleeping, 1); /* nobody reads yet: the first entry wakes */
	*r = (struct mplog__ring){.sh = sh, .map_len = len, .nslots = MPLOG_RING_SLOTS};
	*ret_fd = fd;
	return 0;
}

int mplog__ring_attach(int fd, struct mplog__ring *r)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(struct mplog__ring_shared) ||
	    (uint64_t)st.st_size > mplog__ring_size(1u << 24))
		return -EINVAL;
	size_t len = (size_t)st.st_size;
	struct mplog__ring_shared *sh = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (sh == MAP_FAILED)
		return -errno;
	uint32_t n = sh->nslots;
	if (sh->magic != MPLOG_RING_MAGIC || sh->version != MPLOG_RING_VERSION ||
	    sh->slot_size != MPLOG_RING_SLOT || n < 2 * MPLOG_RING_SLOTS_OF(MPLOG_BODY_MAX) ||
	    (n & (n - 1)) || n > 1u << 24 || mplog__ring_size(n) != len) {
		munmap(sh, len);
		return -EINVAL;
	}
	*r = (struct mplog__ring){.sh = sh, .map_len = len, .nslots = n};
	return 0;
}

void mplog__ring_unmap(struct mplog__ring *r)
{
	if (r->sh)
		munmap(r->sh, r->map_len);
	r->sh = NULL;
}

static uint64_t make_hdr(uint64_t pos, unsigned kind, uint32_t len)
{
	return (uint64_t)((uint32_t)kind << 24 | len) << 32 | (uint32_t)pos;
}

/* A MPLOG_FRAME_WAKE frame on the log pipe: 0, or -errno (-EPIPE: the
 * reader is gone). A full non-blocking pipe needs no more wake-ups. */
static int wake_reader(int fd)
{
	struct mpk_frame_header h;
	mpk_frame_header_init(&h, MPLOG_FRAME_WAKE, 0, 0);
	for (;;) {
		ssize_t k = write(fd, &h, sizeof h); /* <= PIPE_BUF: all or nothing */
		if (k == (ssize_t)sizeof h || (k < 0 && errno == EAGAIN))
			return 0;
		if (k < 0 && errno != EINTR)
			return -errno;
	}
}

/* Reserve k slots: true and their first position in *pos, or false when
 * the ring has no room. */
static bool reserve(struct mplog__ring_shared *sh, uint32_t nslots, uint32_t k, uint64_t *pos)
{
	uint64_t h = atomic_load_explicit(&sh->head, memory_order_relaxed);
	for (;;) {
		/* Acquire: the reader has copied out what it freed. */
		uint64_t t = atomic_load_explicit(&sh->tail, memory_order_acquire);
		if (h - t > nslots - k)
			return false;
		if (atomic_compare_exchange_weak_explicit(&sh->head, &h, h + k, memory_order_relaxed,
							  memory_order_relaxed)) {
			*pos = h;
			return true;
		}
	}
}

/* Wait until the reader may have made room. 0 (try again),
 * MPLOG_RING_CLOSED, or -errno of the pipe. */
static int wait_room(struct mplog__ring *r, int wake_fd, uint32_t k)
{
	struct mplog__ring_shared *sh = r->sh;
	uint32_t seq = atomic_load(&sh->space);
	atomic_store(&sh->waiters, 1);
	/* After saying we wait, look again (the reader looks at waiters after
	 * it publishes its tail: one of us sees the other). */
	if (atomic_load(&sh->closed))
		return MPLOG_RING_CLOSED;
	if (atomic_load(&sh->head) - atomic_load(&sh->tail) <= r->nslots - k)
		return 0;
	if (atomic_exchange(&sh->sleeping, 0)) {
		int e = wake_reader(wake_fd);
		if (e < 0)
			return e;
	}
	struct timespec ts = {0, WAIT_CHECK_NS};
	/* Not FUTEX_PRIVATE: the word is shared with the aggregator. */
	long rc = syscall(SYS_futex, &sh->space, FUTEX_WAIT, seq, &ts, NULL, 0);
	if (rc < 0 && errno == ETIMEDOUT) {
		/* A reader killed without closing the ring: the pipe says so. */
		int e = wake_reader(wake_fd);
		if (e < 0)
			return e;
	}
	return 0;
}

int mplog__ring_put(struct mplog__ring *r, int wake_fd, unsigned kind, const void *p, size_t len,
		    bool may_drop)
{
	struct mplog__ring_shared *sh = r->sh;
	uint32_t k = (uint32_t)MPLOG_RING_SLOTS_OF(len), mask = r->nslots - 1;
	uint64_t pos;
	if (atomic_load_explicit(&sh->closed, memory_order_relaxed))
		return MPLOG_RING_CLOSED;
	while (!reserve(sh, r->nslots, k, &pos)) {
		if (may_drop)
			return 1;
		int e = wait_room(r, wake_fd, k);
		if (e != 0)
			return e;
	}
	const uint8_t *src = p;
	for (uint32_t i = 1; i < k; i++) {
		struct mplog__ring_slot *s = &sh->slot[(pos + i) & mask];
		size_t off = (size_t)i * MPLOG_RING_DATA;
		memcpy(s->data, src + off, len - off < MPLOG_RING_DATA ? len - off : MPLOG_RING_DATA);
		atomic_store_explicit(&s->hdr, make_hdr(pos + i, RING_CONT, 0), memory_order_relaxed);
	}
	struct mplog__ring_slot *s0 = &sh->slot[pos & mask];
	memcpy(s0->data, src, len < MPLOG_RING_DATA ? len : MPLOG_RING_DATA);
	/* The commit. Sequentially consistent with the load of sleeping
	 * below, as the reader's store of sleeping and load of this header
	 * are: either it sees the entry before sleeping or we see it sleep. */
	atomic_store_explicit(&s0->hdr, make_hdr(pos, kind, (uint32_t)len), memory_order_seq_cst);
	if (atomic_load_explicit(&sh->sleeping, memory_order_seq_cst) &&
	    atomic_exchange(&sh->sleeping, 0))
		return wake_reader(wake_fd);
	return 0;
}
