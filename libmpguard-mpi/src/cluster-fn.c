/* SPDX-License-Identifier: MIT */
/* A task function's name across processes. Every rank runs the same
 * build, but ASLR loads the program and its libraries at other addresses
 * in each: a function travels as (module, build ID, offset from the
 * module's load address), and is found again with dl_iterate_phdr(). The
 * build ID catches a rank that runs another build of the module; the
 * offset must fall in one of the module's executable segments. */
#include "cluster-int.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <string.h>

struct find {
	uintptr_t addr;        /* by address (of), or */
	const char *module;    /* by name (resolve) */
	bool found;
	struct mpg__fnref *ref;
	uintptr_t base;
	bool in_exec;          /* the offset is in an executable PT_LOAD */
	uint8_t build_id[MPG__CL_MAX_BUILD_ID];
	uint32_t build_id_len;
};

/* The GNU build ID note of a loaded module, if it has one. */
static void build_id(const struct dl_phdr_info *info, struct find *f)
{
	f->build_id_len = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
		size_t left = ph->p_memsz;
		while (left >= sizeof(ElfW(Nhdr))) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			size_t name = (nh->n_namesz + 3) & ~(size_t)3;
			size_t desc = (nh->n_descsz + 3) & ~(size_t)3;
			size_t rec = sizeof *nh + name + desc;
			if (rec > left)
				break;
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    memcmp(p + sizeof *nh, "GNU", 4) == 0 &&
			    nh->n_descsz <= MPG__CL_MAX_BUILD_ID) {
				memcpy(f->build_id, p + sizeof *nh + name, nh->n_descsz);
				f->build_id_len = nh->n_descsz;
				return;
			}
			p += rec;
			left -= rec;
		}
	}
}

static bool in_exec_segment(const struct dl_phdr_info *info, uintptr_t addr)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && addr >= start &&
		    addr - start < ph->p_memsz)
			return true;
	}
	return false;
}

static int visit(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	struct find *f = data;
	const char *name = info->dlpi_name ? info->dlpi_name : "";
	if (f->module) {
		if (strcmp(name, f->module) != 0)
			return 0;
		f->base = info->dlpi_addr;
		f->in_exec = in_exec_segment(info, info->dlpi_addr + f->ref->offset);
	} else {
		if (!in_exec_segment(info, f->addr))
			return 0;
		if (strlen(name) >= sizeof f->ref->module)
			return 0;
		strcpy(f->ref->module, name);
		f->ref->offset = f->addr - info->dlpi_addr;
		f->in_exec = true;
	}
	build_id(info, f);
	f->found = true;
	return 1;
}

int mpg__fnref_of(mpg_task_fn fn, struct mpg__fnref *ref)
{
	/* A function pointer as an address: POSIX (dlsym()) makes it one. */
	struct find f = {.ref = ref};
	memcpy(&f.addr, &fn, sizeof f.addr);
	dl_iterate_phdr(visit, &f);
	if (!f.found)
		return -ENOENT;
	memcpy(ref->build_id, f.build_id, f.build_id_len);
	ref->build_id_len = f.build_id_len;
	return 0;
}

int mpg__fnref_resolve(const struct mpg__fnref *ref, mpg_task_fn *fn)
{
	struct find f = {.module = ref->module, .ref = (struct mpg__fnref *)ref};
	dl_iterate_phdr(visit, &f);
	if (!f.found || !f.in_exec)
		return -ENOENT;
	if (f.build_id_len != ref->build_id_len ||
	    memcmp(f.build_id, ref->build_id, f.build_id_len) != 0)
		return -ESTALE;
	uintptr_t addr = f.base + (uintptr_t)ref->offset;
	memcpy(fn, &addr, sizeof *fn);
	return 0;
}
