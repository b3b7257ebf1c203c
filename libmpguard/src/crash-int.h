/* SPDX-License-Identifier: MIT */
/* Crash reports and backtraces: the worker-side handler and module list,
 * the parent-side symbolizer. Internal. */
#pragma once

#include "proto-int.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Worker side. */
/* task_loop: the function that calls task functions; backtraces stop there. */
int mpg__crash_install(int fd, const volatile bool *sending, const void *task_loop);
/* After a crash report, pause up to timeout_ms for a debugger (0: never). */
void mpg__crash_set_pause(unsigned timeout_ms);
unsigned mpg__backtrace_here(uint64_t *ips, unsigned max, unsigned skip);
/* libunwind's first use sets it up (tables, caches): done ahead of time
 * so that the crash handler finds it ready. */
void mpg__unwind_warm(void);
/* A number that changes whenever a module is loaded or unloaded: the
 * worker sends its module list again when it has. */
uint64_t mpg__modules_generation(void);
/* Append this process's module list (a MSG_MODULES body) to b; the number
 * of modules, or -1. */
int mpg__modules_encode(struct mpk_buf *b);

/* Parent side. */
/* Symbolization state kept between calls (owned by the pool). */
struct mpg__symcache {
	void *dwfl;          /* Dwfl *, for the module list below */
	struct mpg__modlist mods;
	bool *trusted;       /* per module: its file is the one that was loaded */
};
void mpg__symcache_free(struct mpg__symcache *c);

/* "#N 0xADDR function+off (file.c:LINE) [module]" lines; malloc'd, or NULL.
 * ips[0] is exact when first_exact (a signal frame); the others are return
 * addresses, looked up one byte earlier to name the call's line. */
char *mpg__symbolize(struct mpg__symcache *cache, const struct mpg__modlist *mods,
		     const uint64_t *ips, unsigned n, bool first_exact);
/* "address not mapped to object" for SIGSEGV/SEGV_MAPERR, etc. */
const char *mpg__si_code_name(int sig, int code, const char **description);
