/* SPDX-License-Identifier: MIT */
/* The result arena (see arena-int.h): a memfd the worker creates, maps and
 * builds its unsent results in, and hands to the parent in its hello. */
#include "arena-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct mpg__arena_head) <= MPG_ARENA_DATA, "head fits its page");

int mpg__arena_open(struct mpg__arena *a)
{
	a->fd = memfd_create("mpg-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (a->fd < 0)
		return -errno;
	a->size = MPG_ARENA_DATA + MPG_ARENA_INITIAL;
	/* It only ever grows: sealed so, the parent may map its head. */
	if (ftruncate(a->fd, (off_t)a->size) < 0 ||
	    fcntl(a->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
		goto fail;
	a->base = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
	if (a->base == MAP_FAILED)
		goto fail;
	return 0;
fail:;
	int e = -errno;
	close(a->fd);
	*a = (struct mpg__arena){.fd = -1};
	return e;
}

int mpg__arena_reserve(struct mpg__arena *a, size_t cap)
{
	if (cap <= a->size - MPG_ARENA_DATA)
		return 0;
	if (cap > MPG_ARENA_MAX)
		return -EMSGSIZE;
	size_t size = a->size;
	while (size - MPG_ARENA_DATA < cap)
		size = size * 2 > MPG_ARENA_DATA + MPG_ARENA_MAX ? MPG_ARENA_DATA + MPG_ARENA_MAX :
								   size * 2;
	if (ftruncate(a->fd, (off_t)size) < 0)
		return -errno;
	void *b = mremap(a->base, a->size, size, MREMAP_MAYMOVE);
	if (b == MAP_FAILED)
		return -errno;
	a->base = b;
	a->size = size;
	return 0;
}

static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
	/* Not FUTEX_PRIVATE: the word is shared by two processes. */
	return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

int mpg__arena_await(struct mpg__arena *a, uint32_t sent, int chan_in)
{
	struct mpg__arena_head *h = mpg__arena_head(a);
	while (atomic_load(&h->released) != sent) {
		atomic_store(&h->waiting, 1);
		/* Seen again after waiting is set (both sequentially
		 * consistent): the parent's release either came before, or
		 * sees waiting and wakes us. */
		uint32_t seen = atomic_load(&h->released);
		if (seen != sent) {
			struct timespec ts = {.tv_nsec = 100 * 1000 * 1000};
			(void)futex(&h->released, FUTEX_WAIT, seen, &ts);
		}
		atomic_store(&h->waiting, 0);
		/* A parent that let us go releases nothing more. */
		struct pollfd pfd = {.fd = chan_in, .events = POLLIN};
		if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR)))
			return -EPIPE;
	}
	return 0;
}

struct mpg__arena_head *mpg__arena_attach(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK))
		return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < MPG_ARENA_DATA)
		return NULL;
	void *m = mmap(NULL, MPG_ARENA_DATA, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return m == MAP_FAILED ? NULL : m;
}

void mpg__arena_detach(struct mpg__arena_head *h)
{
	if (h)
		munmap(h, MPG_ARENA_DATA);
}

void mpg__arena_release(struct mpg__arena_head *h, uint32_t read)
{
	atomic_store(&h->released, read);
	if (atomic_load(&h->waiting))
		(void)futex(&h->released, FUTEX_WAKE, 1, NULL);
}

/* Read, not mapped: pread() copies into private memory (what the decoder
 * needs anyway, so that no other holder of the memfd changes what it
 * checks) and cannot fault on a file cut short, and no munmap() shoots
 * down the TLBs of the parent's threads at every death. */
static int read_at(int fd, void *p, size_t n, uint64_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (uint8_t *)p + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EBADMSG; /* shorter than it says */
		got += (size_t)r;
	}
	return 0;
}

int mpg__arena_rescue(int fd, struct mpg__result *res, void **mem)
{
	*mem = NULL;
	struct stat st;
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < MPG_ARENA_DATA ||
	    (uint64_t)st.st_size > MPG_ARENA_DATA + MPG_ARENA_MAX)
		return -EBADMSG;
	struct mpg__arena_head ah;
	int r = read_at(fd, &ah, sizeof ah, 0);
	if (r < 0)
		return r;
	struct mpg__result_head h = {
		.count = atomic_load_explicit(&ah.count, memory_order_relaxed),
		.mode = atomic_load_explicit(&ah.mode, memory_order_relaxed),
		.job = atomic_load_explicit(&ah.job, memory_order_relaxed),
		.first = atomic_load_explicit(&ah.first, memory_order_relaxed),
		.out_size = atomic_load_explicit(&ah.out_size, memory_order_relaxed),
	};
	uint64_t off = atomic_load_explicit(&ah.data_off, memory_order_relaxed);
	uint64_t len = atomic_load_explicit(&ah.len, memory_order_relaxed);
	uint64_t room = (uint64_t)st.st_size - MPG_ARENA_DATA;
	if (h.count == 0)
		return 0;
	if (off > room || len > room - off || (h.mode & ~(uint32_t)CHUNK_FIXED_OUT))
		return -EBADMSG;
	if (h.mode & CHUNK_FIXED_OUT) {
		if (h.out_size == 0 || h.out_size > len / h.count)
			return -EBADMSG;
		len = h.count * h.out_size;
	}
	*mem = malloc(len ? len : 1);
	if (!*mem)
		return -ENOMEM;
	r = read_at(fd, *mem, len, MPG_ARENA_DATA + off);
	if (r < 0)
		goto fail;
	*res = (struct mpg__result){.h = h};
	if (h.mode & CHUNK_FIXED_OUT) {
		res->is_fixed = true;
		res->fixed = *mem;
		return 1;
	}
	/* The longest run of whole items, up to the first whose fd is gone. */
	struct mpg__item_iter it;
	mpg__items_begin(&it, *mem, len);
	uint32_t n = 0;
	struct mpg__item item;
	while (n < h.count && mpg__items_next(&it, &item) && item.kind != ITEM_SHM)
		n++;
	res->h.count = n;
	res->items = *mem;
	res->items_len = len;
	if (n > 0)
		return 1;
	r = 0;
fail:
	free(*mem);
	*mem = NULL;
	return r;
}
