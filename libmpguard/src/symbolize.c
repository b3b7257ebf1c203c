/* SPDX-License-Identifier: MIT */
/* Parent-side symbolization of a dead worker's raw instruction pointers
 * with libdw (elfutils): function, file:line and inlined frames from DWARF
 * where the module has it, else symbol+offset from the ELF symbol table,
 * else the module and its offset. Modules are those the worker reported
 * (path, load bias, build-id), so PIE and shared libraries resolve under
 * ASLR; a module whose file changed on disk (build-id mismatch) is not
 * trusted for names. */
#include "pool-int.h"
#include "crash-int.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct mpg__module *module_of(const struct mpg__modlist *mods, uint64_t ip)
{
	for (size_t i = 0; mods && i < mods->n; i++)
		if (ip >= mods->m[i].lo && ip < mods->m[i].hi)
			return &mods->m[i];
	return NULL;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static const Dwfl_Callbacks offline_callbacks = {
	.find_elf = dwfl_build_id_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.section_address = dwfl_offline_section_address,
};

static bool same_modules(const struct mpg__modlist *a, const struct mpg__modlist *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (a->m[i].bias != b->m[i].bias || a->m[i].lo != b->m[i].lo ||
		    a->m[i].hi != b->m[i].hi || strcmp(a->m[i].path, b->m[i].path) != 0)
			return false;
	return true;
}

static int copy_modules(struct mpg__modlist *dst, const struct mpg__modlist *src)
{
	*dst = (struct mpg__modlist){calloc(src->n ? src->n : 1, sizeof *src->m), src->n};
	if (!dst->m)
		return -ENOMEM;
	for (size_t i = 0; i < src->n; i++) {
		dst->m[i] = src->m[i];
		dst->m[i].path = strdup(src->m[i].path);
		if (!dst->m[i].path) {
			dst->n = i;
			mpg__modlist_free(dst);
			return -ENOMEM;
		}
	}
	return 0;
}

void mpg__symcache_free(struct mpg__symcache *c)
{
	if (c->dwfl)
		dwfl_end(c->dwfl);
	mpg__modlist_free(&c->mods);
	free(c->trusted);
	*c = (struct mpg__symcache){0};
}

/* A Dwfl for this module list, reused while workers have the same modules
 * (they all fork from one image): DWARF is read once, not per crash. A
 * module whose file on disk is not the one the worker loaded (build-id
 * differs) is not trusted for names. */
static Dwfl *cached_dwfl(struct mpg__symcache *c, const struct mpg__modlist *mods)
{
	if (c->dwfl && same_modules(&c->mods, mods))
		return c->dwfl;
	mpg__symcache_free(c);
	if (copy_modules(&c->mods, mods) < 0)
		return NULL;
	c->trusted = calloc(mods->n ? mods->n : 1, sizeof *c->trusted);
	c->dwfl = dwfl_begin(&offline_callbacks);
	if (!c->trusted || !c->dwfl) {
		mpg__symcache_free(c);
		return NULL;
	}
	dwfl_report_begin(c->dwfl);
	for (size_t i = 0; i < mods->n; i++) {
		const struct mpg__module *m = &mods->m[i];
		if (m->path[0] != '/')
			continue; /* the vdso */
		Dwfl_Module *dm = dwfl_report_elf(c->dwfl, base_name(m->path), m->path, -1, m->bias,
						  false);
		if (!dm)
			continue;
		const unsigned char *bits;
		GElf_Addr vaddr;
		int len = dwfl_module_build_id(dm, &bits, &vaddr);
		c->trusted[i] = !m->build_id_len ||
				(len == (int)m->build_id_len &&
				 memcmp(bits, m->build_id, m->build_id_len) == 0);
	}
	dwfl_report_end(c->dwfl, NULL, NULL);
	return c->dwfl;
}

struct inlined {
	const char *name;     /* function inlined here */
	const char *file;     /* where it was called from, in the next one out */
	int line;
};

/* The chain of functions inlined at pc, innermost first. Returns how many
 * (0: none); *scopes must be freed. */
static int inline_chain(Dwfl_Module *dm, uint64_t pc, struct inlined *out, int max,
			Dwarf_Die **scopes)
{
	Dwarf_Addr bias;
	*scopes = NULL;
	Dwarf_Die *cu = dwfl_module_addrdie(dm, pc, &bias);
	if (!cu)
		return 0;
	int ns = dwarf_getscopes(cu, pc - bias, scopes);
	Dwarf_Files *files = NULL;
	size_t nfiles = 0;
	if (dwarf_getsrcfiles(cu, &files, &nfiles) != 0)
		files = NULL;
	int n = 0;
	for (int i = 0; i < ns && n < max; i++) {
		if (dwarf_tag(&(*scopes)[i]) != DW_TAG_inlined_subroutine)
			continue;
		Dwarf_Attribute a;
		Dwarf_Die origin, *d = &(*scopes)[i];
		Dwarf_Word cfile = 0, cline = 0;
		dwarf_formudata(dwarf_attr(d, DW_AT_call_file, &a), &cfile);
		dwarf_formudata(dwarf_attr(d, DW_AT_call_line, &a), &cline);
		if (dwarf_attr(d, DW_AT_abstract_origin, &a) && dwarf_formref_die(&a, &origin))
			d = &origin;
		out[n++] = (struct inlined){
			.name = dwarf_diename(d),
			.file = files && cfile < nfiles ? dwarf_filesrc(files, cfile, NULL, NULL) : NULL,
			.line = (int)cline,
		};
	}
	return n;
}

char *mpg__symbolize(struct mpg__symcache *cache, const struct mpg__modlist *mods,
		     const uint64_t *ips, unsigned n, bool first_exact)
{
	char *text = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&text, &size);
	if (!out)
		return NULL;
	static const struct mpg__modlist none;
	Dwfl *dwfl = cached_dwfl(cache, mods ? mods : &none);

	unsigned frame = 0;
	for (unsigned k = 0; k < n; k++) {
		uint64_t ip = ips[k];
		/* A return address points after the call: look up the call. */
		uint64_t pc = (k == 0 && first_exact) || ip == 0 ? ip : ip - 1;
		const struct mpg__module *m = module_of(mods, ip);
		const char *mname = m ? base_name(m->path) : "??";
		bool trusted = m && cache->trusted && cache->trusted[m - mods->m];
		Dwfl_Module *dm = dwfl && trusted ? dwfl_addrmodule(dwfl, pc) : NULL;
		const char *fn = NULL;
		GElf_Off off = 0;
		GElf_Sym sym;
		if (dm)
			fn = dwfl_module_addrinfo(dm, pc, &off, &sym, NULL, NULL, NULL);
		Dwfl_Line *line = dm ? dwfl_module_getsrc(dm, pc) : NULL;
		int lineno = 0;
		const char *file = line ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;

		/* Inlined functions first, each at the line it is at; the real
		 * function last, at the line of the outermost inlined call. */
		struct inlined chain[16];
		Dwarf_Die *scopes = NULL;
		int ni = dm ? inline_chain(dm, pc, chain, 16, &scopes) : 0;
		for (int i = 0; i < ni; i++) {
			fprintf(out, "#%u 0x%016" PRIx64 " %s", frame++, ip,
				chain[i].name ? chain[i].name : "??");
			if (file && lineno > 0)
				fprintf(out, " (%s:%d)", base_name(file), lineno);
			fprintf(out, " [%s, inlined]\n", mname);
			file = chain[i].file;
			lineno = chain[i].line;
		}
		free(scopes);

		fprintf(out, "#%u 0x%016" PRIx64 " ", frame++, ip);
		if (fn)
			fprintf(out, "%s+0x%" PRIx64, fn, (uint64_t)(off + (pc != ip)));
		else if (m)
			fprintf(out, "?? (+0x%" PRIx64 ")", ip - m->bias);
		else
			fprintf(out, "??");
		if (file && lineno > 0)
			fprintf(out, " (%s:%d)", base_name(file), lineno);
		fprintf(out, " [%s]\n", mname);
	}
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

const char *mpg__si_code_name(int sig, int code, const char **description)
{
#define C(name, text) do { *description = text; return #name; } while (0)
	switch (code) {
	case SI_USER: C(SI_USER, "sent by kill()");
	case SI_TKILL: C(SI_TKILL, "sent by tkill() or raise()");
	case SI_QUEUE: C(SI_QUEUE, "sent by sigqueue()");
	case SI_KERNEL: C(SI_KERNEL, "sent by the kernel");
	}
	switch (sig) {
	case SIGSEGV:
		switch (code) {
		case SEGV_MAPERR: C(SEGV_MAPERR, "address not mapped to object");
		case SEGV_ACCERR: C(SEGV_ACCERR, "invalid permissions for mapped object");
		case SEGV_BNDERR: C(SEGV_BNDERR, "failed address bound checks");
		case SEGV_PKUERR: C(SEGV_PKUERR, "access denied by memory protection keys");
		}
		break;
	case SIGBUS:
		switch (code) {
		case BUS_ADRALN: C(BUS_ADRALN, "invalid address alignment");
		case BUS_ADRERR: C(BUS_ADRERR, "nonexistent physical address");
		case BUS_OBJERR: C(BUS_OBJERR, "object-specific hardware error");
		case BUS_MCEERR_AR: C(BUS_MCEERR_AR, "hardware memory error, action required");
		case BUS_MCEERR_AO: C(BUS_MCEERR_AO, "hardware memory error, action optional");
		}
		break;
	case SIGFPE:
		switch (code) {
		case FPE_INTDIV: C(FPE_INTDIV, "integer divide by zero");
		case FPE_INTOVF: C(FPE_INTOVF, "integer overflow");
		case FPE_FLTDIV: C(FPE_FLTDIV, "floating-point divide by zero");
		case FPE_FLTOVF: C(FPE_FLTOVF, "floating-point overflow");
		case FPE_FLTUND: C(FPE_FLTUND, "floating-point underflow");
		case FPE_FLTRES: C(FPE_FLTRES, "floating-point inexact result");
		case FPE_FLTINV: C(FPE_FLTINV, "floating-point invalid operation");
		case FPE_FLTSUB: C(FPE_FLTSUB, "subscript out of range");
		}
		break;
	case SIGILL:
		switch (code) {
		case ILL_ILLOPC: C(ILL_ILLOPC, "illegal opcode");
		case ILL_ILLOPN: C(ILL_ILLOPN, "illegal operand");
		case ILL_ILLADR: C(ILL_ILLADR, "illegal addressing mode");
		case ILL_ILLTRP: C(ILL_ILLTRP, "illegal trap");
		case ILL_PRVOPC: C(ILL_PRVOPC, "privileged opcode");
		case ILL_PRVREG: C(ILL_PRVREG, "privileged register");
		case ILL_COPROC: C(ILL_COPROC, "coprocessor error");
		case ILL_BADSTK: C(ILL_BADSTK, "internal stack error");
		}
		break;
	case SIGTRAP:
		switch (code) {
		case TRAP_BRKPT: C(TRAP_BRKPT, "process breakpoint");
		case TRAP_TRACE: C(TRAP_TRACE, "process trace trap");
		}
		break;
	case SIGSYS:
		if (code == 1) /* SYS_SECCOMP; glibc's headers lack the name */
			C(SYS_SECCOMP, "blocked by seccomp");
		break;
	}
#undef C
	*description = "unknown si_code";
	return "?";
}
