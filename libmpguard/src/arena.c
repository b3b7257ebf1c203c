/* The result arena (see arena-int.h): a memfd the worker creates, maps and
 * builds its unsent results in, and hands to the parent in its hello. */
#include "arena-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(struct mpg__arena_head) <= MPG_ARENA_DATA, "head fits its page");

int mpg__arena_open(struct mpg__arena *a)
{
	a->fd = memfd_create("mpg-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (a->fd < 0)
		return -errno;
	a->size = MPG_ARENA_DATA + MPG_ARENA_INITIAL;
	/* Sealed against shrinking: the parent maps it and reads it, and a
	 * shorter file would fault there (SIGBUS). */
	if (ftruncate(a->fd, (off_t)a->size) < 0 || fcntl(a->fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
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

int mpg__arena_rescue(int fd, struct mpg__result *res, void **mem)
{
	*mem = NULL;
	struct stat st;
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	int seals = fcntl(fd, F_GET_SEALS);
	if (!S_ISREG(st.st_mode) || seals < 0 || !(seals & F_SEAL_SHRINK) ||
	    (uint64_t)st.st_size < MPG_ARENA_DATA ||
	    (uint64_t)st.st_size > MPG_ARENA_DATA + MPG_ARENA_MAX)
		return -EBADMSG;
	size_t size = (size_t)st.st_size;
	uint8_t *base = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	struct mpg__arena_head *ah = (struct mpg__arena_head *)base;
	struct mpg__result_head h = {
		.count = atomic_load_explicit(&ah->count, memory_order_acquire),
		.mode = atomic_load_explicit(&ah->mode, memory_order_relaxed),
		.job = atomic_load_explicit(&ah->job, memory_order_relaxed),
		.first = atomic_load_explicit(&ah->first, memory_order_relaxed),
		.out_size = atomic_load_explicit(&ah->out_size, memory_order_relaxed),
	};
	uint64_t off = atomic_load_explicit(&ah->data_off, memory_order_relaxed);
	uint64_t len = atomic_load_explicit(&ah->len, memory_order_relaxed);
	size_t room = size - MPG_ARENA_DATA;
	int r = 0;
	if (h.count == 0)
		goto out;
	r = -EBADMSG;
	if (off > room || len > room - off || (h.mode & ~(uint32_t)CHUNK_FIXED_OUT))
		goto out;
	if (h.mode & CHUNK_FIXED_OUT) {
		if (h.out_size == 0 || h.out_size > len / h.count)
			goto out;
		len = h.count * h.out_size;
	}
	/* A private copy: whoever else holds the memfd (a task's child)
	 * cannot change what is decoded while it is. */
	r = -ENOMEM;
	*mem = malloc(len ? len : 1);
	if (!*mem)
		goto out;
	memcpy(*mem, base + MPG_ARENA_DATA + off, len);
	*res = (struct mpg__result){.h = h};
	if (h.mode & CHUNK_FIXED_OUT) {
		res->fixed = *mem;
	} else {
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
	}
	r = res->h.count > 0;
	if (!r) {
		free(*mem);
		*mem = NULL;
	}
out:
	munmap(base, size);
	return r;
}
