/* SPDX-License-Identifier: MIT */
/* Fuzz target: what the parent reads of a dead worker's result arena
 * (libmpguard/src/arena.c: mpg__arena_rescue): the input is the arena's
 * bytes, head page then data, in a memfd as a worker leaves it.
 * Invariants: a rescue hands back at most the committed count of whole
 * results, inside its private copy, never an ITEM_SHM (its memfd died
 * with the worker). */
#include "fuzz-check.h"
#include "arena-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>


static int fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fd < 0) {
		fd = memfd_create("fuzz-arena", MFD_CLOEXEC);
		FUZZ_CHECK(fd >= 0);
		/* As big as a worker's first arena. */
		FUZZ_CHECK(ftruncate(fd, MPG_ARENA_DATA + MPG_ARENA_INITIAL) == 0);
	}
	static uint8_t zero[MPG_ARENA_DATA + MPG_ARENA_INITIAL];
	FUZZ_CHECK(pwrite(fd, zero, sizeof zero, 0) == (ssize_t)sizeof zero);
	if (size > sizeof zero)
		size = sizeof zero;
	FUZZ_CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);

	struct mpg__result r;
	void *mem;
	int rc = mpg__arena_rescue(fd, &r, &mem);
	if (rc <= 0) {
		FUZZ_CHECK(mem == NULL);
		return 0;
	}
	FUZZ_CHECK(r.h.count > 0);
	if (r.fixed) {
		FUZZ_CHECK(r.fixed == mem);
	} else {
		struct mpg__item_iter it;
		mpg__items_begin(&it, r.items, r.items_len);
		for (uint32_t i = 0; i < r.h.count; i++) {
			struct mpg__item item;
			FUZZ_CHECK(mpg__items_next(&it, &item));
			FUZZ_CHECK(item.kind != ITEM_SHM);
			if (item.kind == ITEM_INLINE)
				FUZZ_CHECK(item.data >= (const uint8_t *)mem &&
				      item.data + item.len <= (const uint8_t *)mem + r.items_len);
		}
	}
	free(mem);
	return 0;
}
