/* SPDX-License-Identifier: MIT */
/* Stop everything at the first error: the MPG_ABORT policy.
 *
 * 2000 records are validated on 3 workers; record 700 is corrupt.
 *  1. With MPG_ABORT the first error stops dispatch, every worker is killed
 *     and reaped, the merged log is flushed, and mpg_map_array() returns
 *     -ECANCELED; mpg_pool_abort_error() says which task failed and why.
 *     The pool is finished: later calls return -ESHUTDOWN.
 *  2. With mpg_options_set_abort_exit(opts, 3) as well, the pool ends the
 *     whole process with status 3 after printing the error, like Python's
 *     SystemExit. Run in a child process here, as a shell would run the
 *     program, so this one can check the status.
 *
 *   $ ./abort       exit 0 when both happened as described
 */
#include <mpguard.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { N = 2000, CORRUPT = 700, EXIT_STATUS = 3 };

struct record {
	uint32_t id, crc;
};

static uint32_t crc_of(uint32_t id) { return id * 2654435761u; }

static int validate(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	struct record rec;
	if (len != sizeof rec)
		return mpg_raise(EINVAL, "a record is %zu bytes, not %zu", sizeof rec, len);
	memcpy(&rec, in, sizeof rec);
	if (rec.crc != crc_of(rec.id))
		mpg_raise(EBADMSG, "record %" PRIu32 ": bad checksum %08" PRIx32, rec.id, rec.crc);
	uint8_t valid = 1;
	return mpg_task_set_result(task, &valid, sizeof valid);
}

/* A backtrace is one frame a line: indent each. */
static void print_indented(const char *text, const char *indent)
{
	for (const char *line = text; line && *line;) {
		size_t n = strcspn(line, "\n");
		printf("%s%.*s\n", indent, (int)n, line);
		line += n + (line[n] == '\n');
	}
}

static struct record records[N];
static uint8_t valid[N];

static mpg_pool *aborting_pool(int exit_status)
{
	mpg_options *opts = NULL;
	mpg_pool *pool = NULL;
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, 3)) < 0 ||
	    (r = mpg_options_set_policy(opts, MPG_ABORT, 0)) < 0 ||
	    (exit_status >= 0 && (r = mpg_options_set_abort_exit(opts, exit_status)) < 0) ||
	    (r = mpg_pool_new(opts, &pool)) < 0)
		fprintf(stderr, "abort: cannot start the pool: %s\n", strerror(-r));
	mpg_options_free(opts);
	return pool;
}

/* Part 2, in a child: the pool exits the process; the return is not reached. */
static _Noreturn void validate_or_exit(void)
{
	mpg_pool *pool = aborting_pool(EXIT_STATUS);
	if (!pool)
		_exit(1);
	mpg_results *res;
	int r = mpg_map_array(pool, validate, records, sizeof records[0], N, valid, sizeof valid[0],
			      NULL, &res);
	fprintf(stderr, "abort: the map returned %d instead of ending the process\n", r);
	_exit(1);
}

int main(void)
{
	for (uint32_t i = 0; i < N; i++)
		records[i] = (struct record){.id = i, .crc = crc_of(i)};
	records[CORRUPT].crc ^= 0x40; /* one flipped bit */

	printf("1. validate %d records on 3 workers with MPG_ABORT:\n", N);
	mpg_pool *pool = aborting_pool(-1);
	if (!pool)
		return 1;
	mpg_results *res = NULL;
	int r = mpg_map_array(pool, validate, records, sizeof records[0], N, valid, sizeof valid[0],
			      NULL, &res);
	const mpg_error *e = mpg_pool_abort_error(pool); /* valid until mpg_pool_free() */
	printf("  mpg_map_array() returned %s\n", r == -ECANCELED ? "-ECANCELED" : strerror(-r));
	if (e) {
		printf("  first error: %s\n  raised at:\n", mpg_error_describe(e));
		print_indented(mpg_error_backtrace(e), "    ");
	}
	int ok = r == -ECANCELED && !res && e && mpg_error_task(e) == CORRUPT &&
		 mpg_error_code(e) == EBADMSG;
	r = mpg_map_array(pool, validate, records, sizeof records[0], 1, valid, sizeof valid[0],
			  NULL, &res);
	printf("  a later call returns %s\n", r == -ESHUTDOWN ? "-ESHUTDOWN" : strerror(-r));
	ok &= r == -ESHUTDOWN;
	if (r == 0)
		mpg_results_free(res);
	mpg_pool_free(pool);

	printf("2. the same with mpg_options_set_abort_exit(opts, %d), in a child process:\n",
	       EXIT_STATUS);
	fflush(stdout);
	pid_t child = fork();
	if (child < 0) {
		perror("abort: fork");
		return 1;
	}
	if (child == 0)
		validate_or_exit();
	int status;
	while ((r = waitpid(child, &status, 0)) < 0 && errno == EINTR)
		;
	if (r < 0) {
		perror("abort: waitpid");
		return 1;
	}
	if (WIFEXITED(status))
		printf("  the child exited with status %d\n", WEXITSTATUS(status));
	else
		printf("  the child died by signal %d\n", WTERMSIG(status));
	ok &= WIFEXITED(status) && WEXITSTATUS(status) == EXIT_STATUS;
	printf("%s\n", ok ? "OK" : "UNEXPECTED");
	return ok ? 0 : 1;
}
