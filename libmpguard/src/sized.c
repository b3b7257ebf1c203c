/* Structs the caller hands in with their size first (mpg_stats,
 * mpg_worker_info): the library and the program may have been built
 * against different versions of the header, so neither writes past what
 * the other knows. */
#include "pool-int.h"

#include <string.h>

void mpg__copy_sized(void *dst, const void *src, size_t known)
{
	size_t have;
	memcpy(&have, dst, sizeof have);
	size_t n = have < known ? have : known;
	memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t),
	       n - sizeof(size_t));
	if (have > n) /* a newer program: fields this library does not know */
		memset((char *)dst + n, 0, have - n);
	memcpy(dst, &n, sizeof n);
}
