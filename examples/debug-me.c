/* SPDX-License-Identifier: MIT */
/* A worker that crashes, for trying mpattach on.
 *
 * Six records are parsed on 2 workers; record 4 names a field that does
 * not exist, and the parser dereferences the NULL its lookup returned: the
 * worker dies by SIGSEGV. The pool reports it (signal, si_code, fault
 * address, symbolized backtrace), replaces the worker and finishes the
 * others.
 *
 *   $ ./debug-me            ends by itself at once (pausing is turned off
 *                           here, whatever MPKIT_PAUSE says)
 *   $ ./debug-me --pause    the crashing worker stays alive after its crash
 *                           report, paused for a debugger, for up to 5
 *                           minutes: the same as MPKIT_PAUSE=crash for a
 *                           program that does not choose. Meanwhile, in
 *                           another terminal (give the pool, PID.N as
 *                           listed, when other pools are running):
 *
 *     mpattach list          the pool, its workers, one of them "paused"
 *     mpattach stacks        every worker's stack; the paused one shows
 *                            field_width() at the faulting line
 *     mpattach gdb PID.N W   gdb on worker W (the pool's log prints the
 *                            exact command); `continue` there stops on
 *                            the SIGSEGV at the faulting line
 *     mpattach resume        let paused workers go on (they die, the
 *                            error reaches the program, which ends)
 *
 * Exit 0 when the crash was reported as described and the other records
 * were parsed.
 */
#include <mpguard.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

struct field {
	const char *name;
	int width;
};

static const struct field fields[] = {{"id", 8}, {"name", 32}, {"price", 12}};

static const struct field *find_field(const char *name)
{
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (strcmp(fields[i].name, name) == 0)
			return &fields[i];
	return NULL;
}

/* The bug: no check for an unknown field. (UBSan is told to let it fault,
 * as it would in a release build, instead of reporting it first.) */
__attribute__((no_sanitize("undefined"), noinline)) static int field_width(const char *name)
{
	const struct field *f = find_field(name);
	return f->width;
}

static int parse_record(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	char name[32];
	if (len == 0 || len >= sizeof name)
		return mpg_raise(EINVAL, "bad field name length %zu", len);
	memcpy(name, in, len);
	name[len] = '\0';
	int32_t width = field_width(name);
	return mpg_task_set_result(task, &width, sizeof width);
}

int main(int argc, char **argv)
{
	int want_pause = argc > 1 && strcmp(argv[1], "--pause") == 0;
	if (argc > 1 && !want_pause) {
		fprintf(stderr, "usage: %s [--pause]\n", argv[0]);
		return 2;
	}
	static const char *records[] = {"id", "name", "price", "id", "colour", "name"};
	enum { N = sizeof records / sizeof records[0], BAD = 4 };
	mpg_buf in[N];
	for (size_t i = 0; i < N; i++)
		in[i] = (mpg_buf){records[i], strlen(records[i])};

	mpg_options *opts = NULL;
	mpg_pool *pool = NULL;
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, 2)) < 0 ||
	    /* A choice made here overrides MPKIT_PAUSE; 0 ms: the default 5 minutes. */
	    (r = mpg_options_set_pause(opts, want_pause ? MPG_PAUSE_ON_CRASH : 0, 0)) < 0 ||
	    (r = mpg_pool_new(opts, &pool)) < 0) {
		fprintf(stderr, "debug-me: cannot start the pool: %s\n", strerror(-r));
		mpg_options_free(opts);
		return 1;
	}
	mpg_options_free(opts);
	if (want_pause)
		printf("the crashing worker will pause: try `mpattach list`, `mpattach stacks`,\n"
		       "`mpattach gdb` (the pool's log on stderr gives the command) and\n"
		       "`mpattach resume` from another terminal\n");
	printf("parsing %d records on 2 workers, pids %d %d\n", N,
	       (int)mpg_pool_worker_pid(pool, 0), (int)mpg_pool_worker_pid(pool, 1));
	fflush(stdout);

	mpg_results *res;
	if ((r = mpg_map(pool, parse_record, in, N, NULL, &res)) < 0) {
		fprintf(stderr, "debug-me: mpg_map: %s\n", strerror(-r));
		mpg_pool_free(pool);
		return 1;
	}
	int ok = mpg_results_failed(res) == 1;
	for (size_t i = 0; i < N; i++) {
		const void *data;
		size_t len;
		int32_t width;
		if (mpg_results_get(res, i, &data, &len) == 0 && len == sizeof width) {
			memcpy(&width, data, sizeof width);
			printf("  %-6s width %" PRId32 "\n", records[i], width);
			continue;
		}
		const mpg_error *e = mpg_results_error(res, i);
		if (!e) {
			printf("  %-6s: result of %zu bytes?\n", records[i], len);
			ok = 0;
			continue;
		}
		int si_code = 0;
		uintptr_t addr = 0;
		int have_fault = mpg_error_fault(e, &si_code, &addr) == 0;
		printf("  %-6s FAILED: %s\n", records[i], mpg_error_describe(e));
		if (have_fault)
			printf("         si_code %d, fault address %#" PRIxPTR "\n", si_code, addr);
		const char *bt = mpg_error_backtrace(e);
		for (const char *line = bt; line && *line;) { /* one frame a line */
			size_t n = strcspn(line, "\n");
			printf("         %.*s\n", (int)n, line);
			line += n + (line[n] == '\n');
		}
		ok &= i == BAD && mpg_error_get_kind(e) == MPG_ERR_SIGNALED &&
		      mpg_error_signal(e) == SIGSEGV && have_fault && bt && strstr(bt, "field_width");
	}
	mpg_results_free(res);
	if ((r = mpg_pool_close(pool)) < 0 || (r = mpg_pool_join(pool)) < 0) {
		fprintf(stderr, "debug-me: close/join: %s\n", strerror(-r));
		ok = 0;
	}
	mpg_pool_free(pool);
	printf("%s\n", ok ? "OK" : "UNEXPECTED");
	return ok ? 0 : 1;
}
