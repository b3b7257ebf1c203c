/* SPDX-License-Identifier: MIT */
/* The worker's module list: every loaded ELF object with its load bias,
 * address range and build-id, sent to the parent so it can symbolize raw
 * instruction pointers after the worker is gone. */
#include "pool-int.h"
#include "crash-int.h"

#include <elf.h>
#include <stddef.h>
#include <stdint.h>
#include <link.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

/* glibc counts every load and unload in each dl_phdr_info it hands out:
 * the first one says whether anything changed, without walking them all
 * (the worker asks before every chunk). Without those fields, count. */
static int generation_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	uint64_t *g = data;
	if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
		*g = (uint64_t)info->dlpi_adds + (uint64_t)info->dlpi_subs;
		return 1;
	}
	(*g)++;
	return 0;
}

uint64_t mpg__modules_generation(void)
{
	uint64_t g = 0;
	dl_iterate_phdr(generation_cb, &g);
	return g;
}

static size_t find_build_id(const struct dl_phdr_info *info, const uint8_t **id)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
		const uint8_t *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const void *)p;
			size_t name = (nh->n_namesz + 3u) & ~3u, desc = (nh->n_descsz + 3u) & ~3u;
			const uint8_t *d = p + sizeof *nh + name;
			if (d + desc > end)
				break;
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    memcmp(p + sizeof *nh, "GNU", 4) == 0) {
				*id = d;
				return nh->n_descsz;
			}
			p = d + desc;
		}
	}
	return 0;
}

static int encode_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	struct mpk_buf *b = data;
	char exe[PATH_MAX];
	const char *path = info->dlpi_name;
	if (!path || !path[0]) {
		/* The main program (or the vdso, which has no file). */
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		if (n <= 0)
			return 0;
		exe[n] = '\0';
		path = exe;
	}
	uint64_t lo = UINT64_MAX, hi = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uint64_t a = info->dlpi_addr + ph->p_vaddr;
		if (a < lo)
			lo = a;
		if (a + ph->p_memsz > hi)
			hi = a + ph->p_memsz;
	}
	if (hi == 0)
		return 0;
	const uint8_t *id = NULL;
	size_t idlen = find_build_id(info, &id);
	if (idlen > 64)
		idlen = 0;
	mpg__module_put(b, info->dlpi_addr, lo, hi, path, id, (uint32_t)idlen);
	return 0;
}

int mpg__modules_encode(struct mpk_buf *b)
{
	size_t count_off = b->len;
	mpk_buf_put_u32(b, 0);
	size_t start = b->len;
	dl_iterate_phdr(encode_cb, b);
	if (b->oom)
		return -1;
	/* Count what was written: walk the records. */
	uint32_t n = 0;
	struct mpk_reader r;
	mpk_reader_init(&r, b->data + start, b->len - start);
	while (r.left) {
		mpk_get_u64(&r);
		mpk_get_u64(&r);
		mpk_get_u64(&r);
		mpk_get_bytes(&r, mpk_get_u32(&r));
		mpk_get_bytes(&r, mpk_get_u32(&r));
		if (r.err)
			return -1;
		n++;
	}
	memcpy(b->data + count_off, &n, sizeof n);
	return (int)n;
}
