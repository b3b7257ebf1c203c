/* SPDX-License-Identifier: MIT */
/* One task at a time, asynchronously: mpg_submit() with success and error
 * callbacks and an mpg_future to wait on, plus a retry policy.
 *
 * Three "fetches" are submitted at once:
 *  - "index.html" succeeds; its success callback submits a follow-up task
 *    (callbacks run on the pool's dispatcher thread and may submit);
 *  - "missing.html" raises error 404: its error callback runs, and its
 *    future holds the error;
 *  - "flaky.html" fails twice (as a flaky network would) and succeeds on
 *    its third attempt, because this submit asks for MPG_RETRY with up to
 *    3 re-runs.
 * mpg_pool_close() + mpg_pool_join() then wait for the follow-up.
 *
 *   $ ./submit      exit 0 when every task ended as described
 */
#include <mpguard.h>

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* A task cannot learn which attempt it is, and each worker has its own
 * memory: a page shared by all processes counts the flaky fetch's attempts.
 * It must exist before the pool, so the workers inherit it. */
static atomic_int *flaky_attempts;

static int fetch(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	char url[64];
	if (len == 0 || len >= sizeof url)
		return mpg_raise(EINVAL, "bad url length %zu", len);
	memcpy(url, in, len);
	url[len] = '\0';
	if (strcmp(url, "missing.html") == 0)
		mpg_raise(404, "%s: not found", url);
	if (strcmp(url, "flaky.html") == 0 && atomic_fetch_add(flaky_attempts, 1) < 2)
		mpg_raise(ECONNRESET, "%s: connection reset by peer", url);
	char page[128];
	int n = snprintf(page, sizeof page, "<h1>%s</h1>", url);
	return mpg_task_set_result(task, page, (size_t)n);
}

static mpg_pool *pool;
static atomic_int results_seen, errors_seen, followups_done;

static void on_followup(size_t index, const void *data, size_t len, void *userdata)
{
	(void)index; (void)userdata;
	printf("  follow-up done: %.*s\n", (int)len, (const char *)data);
	atomic_fetch_add(&followups_done, 1);
}

static void on_result(size_t index, const void *data, size_t len, void *userdata)
{
	(void)index;
	const char *url = userdata;
	printf("  success callback: %s -> %.*s\n", url, (int)len, (const char *)data);
	atomic_fetch_add(&results_seen, 1);
	if (strcmp(url, "index.html") == 0) {
		/* Fire and forget (no future): mpg_pool_join() waits for it. */
		int r = mpg_submit(pool, fetch, "style.css", 9, NULL, on_followup, NULL, NULL, NULL);
		if (r < 0)
			printf("  follow-up not submitted: %s\n", strerror(-r));
	}
}

static void on_error(const mpg_error *err, void *userdata)
{
	printf("  error callback: %s: %s\n", (const char *)userdata, mpg_error_describe(err));
	atomic_fetch_add(&errors_seen, 1);
}

int main(void)
{
	flaky_attempts = mmap(NULL, sizeof *flaky_attempts, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (flaky_attempts == MAP_FAILED) {
		perror("submit: mmap");
		return 1;
	}
	mpg_options *opts = NULL, *retry = NULL;
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, 2)) < 0 ||
	    (r = mpg_pool_new(opts, &pool)) < 0 ||
	    /* per call: re-run a failed task up to 3 times, on another worker if any */
	    (r = mpg_options_new(&retry)) < 0 ||
	    (r = mpg_options_set_policy(retry, MPG_RETRY, 3)) < 0) {
		fprintf(stderr, "submit: setup: %s\n", strerror(-r));
		mpg_options_free(opts);
		mpg_options_free(retry);
		mpg_pool_free(pool);
		return 1;
	}
	mpg_options_free(opts);

	static char urls[][16] = {"index.html", "missing.html", "flaky.html"}; /* userdata */
	enum { N = 3 };
	mpg_future *f[N] = {NULL};
	printf("submitting %d fetches to 2 workers:\n", N);
	for (int i = 0; i < N; i++) {
		r = mpg_submit(pool, fetch, urls[i], strlen(urls[i]), i == 2 ? retry : NULL,
			       on_result, on_error, urls[i], &f[i]);
		if (r < 0) {
			fprintf(stderr, "submit: mpg_submit(%s): %s\n", urls[i], strerror(-r));
			mpg_pool_free(pool);
			return 1;
		}
	}
	mpg_options_free(retry); /* the submit copied what it needs */

	int ok = 1;
	printf("futures:\n");
	for (int i = 0; i < N; i++) {
		if ((r = mpg_future_wait(f[i], -1)) < 0) { /* callbacks have run when it returns */
			fprintf(stderr, "submit: mpg_future_wait: %s\n", strerror(-r));
			ok = 0;
			continue;
		}
		const void *data;
		size_t len;
		r = mpg_future_result(f[i], &data, &len);
		if (r == 0) {
			printf("  %s: %zu bytes\n", urls[i], len);
			ok &= i != 1;
		} else if (r == -EIO) {
			const mpg_error *e = mpg_future_error(f[i]);
			printf("  %s: failed after %u attempt(s), code %d: %s\n", urls[i],
			       mpg_error_attempts(e), mpg_error_code(e), mpg_error_message(e));
			ok &= i == 1 && mpg_error_code(e) == 404 && mpg_error_attempts(e) == 1;
		} else {
			fprintf(stderr, "submit: mpg_future_result: %s\n", strerror(-r));
			ok = 0;
		}
		mpg_future_free(f[i]);
	}

	/* Finish queued work (the follow-up), then reap the workers. */
	if ((r = mpg_pool_close(pool)) < 0 || (r = mpg_pool_join(pool)) < 0) {
		fprintf(stderr, "submit: close/join: %s\n", strerror(-r));
		ok = 0;
	}
	mpg_stats st = {.size = sizeof st};
	if ((r = mpg_pool_stats(pool, &st)) < 0) {
		fprintf(stderr, "submit: mpg_pool_stats: %s\n", strerror(-r));
		ok = 0;
	}
	mpg_pool_free(pool);
	printf("flaky.html ran %d times; the pool retried %" PRIu64 " task runs; follow-ups done: %d\n",
	       atomic_load(flaky_attempts), st.tasks_retried, atomic_load(&followups_done));
	ok &= atomic_load(&results_seen) == 2 && atomic_load(&errors_seen) == 1 &&
	      atomic_load(&followups_done) == 1 && atomic_load(flaky_attempts) == 3 &&
	      st.tasks_retried == 2;
	munmap(flaky_attempts, sizeof *flaky_attempts);
	printf("%s\n", ok ? "OK" : "UNEXPECTED");
	return ok ? 0 : 1;
}
