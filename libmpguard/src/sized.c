/* SPDX-License-Identifier: MIT */
/* Structs the caller hands in with their size first (mpg_stats,
 * mpg_worker_info): the library and the program may have been built
 * against different versions of the header, so the library writes no
 * further than both know. Nothing past its own fields: a size the caller
 * left uninitialized (garbage, large) must not make it write far. */
#include "pool-int.h"

#include <string.h>

void mpg__copy_sized(void *dst, const void *src, size_t known)
{
	size_t have;
	memcpy(&have, dst, sizeof have);
	size_t n = have < known ? have : known;
	memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t),
	       n - sizeof(size_t));
	memcpy(dst, &n, sizeof n);
}
