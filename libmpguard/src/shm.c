/* SPDX-License-Identifier: MIT */
/* Shared memory for large payloads: memfds that travel by SCM_RIGHTS, so
 * gigabytes never go through a socket. */
#include "pool-int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

struct shm_block {
	struct shm_block *next;
	uint8_t *addr;
	size_t size;
	int fd;
};

static pthread_mutex_t shm_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shm_block *shm_blocks;

MPG_EXPORT int mpg_shm_alloc(size_t size, void **ret)
{
	if (!ret || size == 0 || size > (size_t)PTRDIFF_MAX)
		return -EINVAL;
	struct shm_block *b = calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	b->fd = memfd_create("mpg-shm", MFD_CLOEXEC);
	if (b->fd < 0)
		goto fail_errno;
	if (ftruncate(b->fd, (off_t)size) < 0)
		goto fail_errno;
	b->addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
	if (b->addr == MAP_FAILED)
		goto fail_errno;
	b->size = size;
	pthread_mutex_lock(&shm_lock);
	b->next = shm_blocks;
	shm_blocks = b;
	pthread_mutex_unlock(&shm_lock);
	*ret = b->addr;
	return 0;

fail_errno:;
	int r = errno == ENOSPC || errno == EFBIG ? -ENOMEM : -errno;
	if (b->fd >= 0)
		close(b->fd);
	free(b);
	return r;
}

MPG_EXPORT void mpg_shm_free(void *ptr)
{
	if (!ptr)
		return;
	pthread_mutex_lock(&shm_lock);
	for (struct shm_block **pp = &shm_blocks; *pp; pp = &(*pp)->next) {
		struct shm_block *b = *pp;
		if (b->addr == ptr) {
			*pp = b->next;
			pthread_mutex_unlock(&shm_lock);
			munmap(b->addr, b->size);
			close(b->fd);
			free(b);
			return;
		}
	}
	pthread_mutex_unlock(&shm_lock);
}

int mpg__shm_lookup(const void *p, size_t len, int *ret_fd, uint64_t *ret_off)
{
	const uint8_t *q = p;
	int r = 0;
	pthread_mutex_lock(&shm_lock);
	for (struct shm_block *b = shm_blocks; b; b = b->next) {
		if (q >= b->addr && q < b->addr + b->size && len <= (size_t)(b->addr + b->size - q)) {
			int fd = fcntl(b->fd, F_DUPFD_CLOEXEC, 3);
			if (fd < 0) {
				r = -errno;
				break;
			}
			*ret_fd = fd;
			*ret_off = (uint64_t)(q - b->addr);
			r = 1;
			break;
		}
	}
	pthread_mutex_unlock(&shm_lock);
	return r;
}

int mpg__memfd_from_bytes(const void *data, size_t len, int *ret_fd)
{
	int fd = memfd_create("mpg-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	const uint8_t *p = data;
	size_t left = len;
	while (left) {
		ssize_t w = write(fd, p, left > (1u << 30) ? (1u << 30) : left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int r = errno == ENOSPC ? -ENOMEM : -errno;
			close(fd);
			return r;
		}
		p += w;
		left -= (size_t)w;
	}
	/* Sealed: a buggy worker cannot change the input a retry will read. */
	(void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	*ret_fd = fd;
	return 0;
}

void *mpg__map_fd(int fd, uint64_t off, size_t len, int prot, void **base, size_t *maplen)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t aligned = off - off % (uint64_t)page;
	size_t delta = (size_t)(off - aligned);
	size_t total = len + delta;
	if (total == 0)
		total = 1;
	void *m = mmap(NULL, total, prot, MAP_SHARED, fd, (off_t)aligned);
	if (m == MAP_FAILED)
		return NULL;
	*base = m;
	*maplen = total;
	return (uint8_t *)m + delta;
}
