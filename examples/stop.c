/* SPDX-License-Identifier: MIT */
/* Stopping a pool: finish the queued work, or stop now.
 *
 *  - mpg_pool_close() + mpg_pool_join(): no more work is accepted, but what
 *    was queued still runs; join returns once every task ended and every
 *    worker was reaped. Here 8 fire-and-forget tasks all complete.
 *  - mpg_pool_terminate(): the workers are killed now and every task that
 *    did not end yet ends as MPG_ERR_CANCELLED — once, through its error
 *    callback and its future. Here 6 tasks stuck waiting for an answer that
 *    never comes are cancelled, running or queued alike.
 *
 *   $ ./stop        exit 0 when every task ended exactly once as described
 */
#include <mpguard.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int work(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)in; (void)len; (void)userdata;
	nanosleep(&(struct timespec){.tv_nsec = 5 * 1000000}, NULL); /* 5 ms of "work" */
	return mpg_task_set_result(task, "done", 4);
}

static int wait_forever(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)task; (void)in; (void)len; (void)userdata;
	for (;;)
		pause(); /* an answer that never comes */
	return 0;        /* not reached */
}

static atomic_int done, cancelled, other;

static void on_result(size_t index, const void *data, size_t len, void *userdata)
{
	(void)index; (void)data; (void)len; (void)userdata;
	atomic_fetch_add(&done, 1);
}

static void on_error(const mpg_error *err, void *userdata)
{
	(void)userdata;
	atomic_fetch_add(mpg_error_get_kind(err) == MPG_ERR_CANCELLED ? &cancelled : &other, 1);
}

static mpg_pool *new_pool(void)
{
	mpg_options *opts = NULL;
	mpg_pool *pool = NULL;
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, 2)) < 0 ||
	    (r = mpg_pool_new(opts, &pool)) < 0)
		fprintf(stderr, "stop: cannot start a pool: %s\n", strerror(-r));
	mpg_options_free(opts);
	return pool;
}

int main(void)
{
	int r, ok = 1;
	enum { NWORK = 8, NSTUCK = 6 };

	printf("close + join: %d tasks of 5 ms queued on 2 workers, then close\n", NWORK);
	mpg_pool *pool = new_pool();
	if (!pool)
		return 1;
	for (int i = 0; i < NWORK; i++) {
		r = mpg_submit(pool, work, &i, sizeof i, NULL, on_result, on_error, NULL, NULL);
		if (r < 0) {
			fprintf(stderr, "stop: mpg_submit: %s\n", strerror(-r));
			ok = 0;
		}
	}
	if ((r = mpg_pool_close(pool)) < 0 || (r = mpg_pool_join(pool)) < 0) {
		fprintf(stderr, "stop: close/join: %s\n", strerror(-r));
		ok = 0;
	}
	r = mpg_submit(pool, work, "x", 1, NULL, NULL, NULL, NULL, NULL);
	printf("  after join: %d done, %d cancelled; a new submit returns %s\n", atomic_load(&done),
	       atomic_load(&cancelled), r == -ESHUTDOWN ? "-ESHUTDOWN (pool closed)" : strerror(-r));
	ok &= atomic_load(&done) == NWORK && atomic_load(&cancelled) == 0 && r == -ESHUTDOWN;
	mpg_pool_free(pool);

	printf("terminate: %d tasks that never end, on 2 workers\n", NSTUCK);
	atomic_store(&done, 0);
	if (!(pool = new_pool()))
		return 1;
	mpg_future *f[NSTUCK] = {NULL};
	for (int i = 0; i < NSTUCK; i++)
		if ((r = mpg_submit(pool, wait_forever, &i, sizeof i, NULL, on_result, on_error, NULL,
				    &f[i])) < 0) {
			fprintf(stderr, "stop: mpg_submit: %s\n", strerror(-r));
			ok = 0;
		}
	/* A program would do this on a deadline or on Ctrl-C. */
	if ((r = mpg_pool_terminate(pool)) < 0) {
		fprintf(stderr, "stop: mpg_pool_terminate: %s\n", strerror(-r));
		ok = 0;
	}
	int futures_cancelled = 0;
	for (int i = 0; i < NSTUCK; i++) {
		/* Ended already: waiting 0 ms is enough. */
		if (f[i] && mpg_future_wait(f[i], 0) == 0 &&
		    mpg_future_result(f[i], NULL, NULL) == -EIO &&
		    mpg_error_get_kind(mpg_future_error(f[i])) == MPG_ERR_CANCELLED)
			futures_cancelled++;
		mpg_future_free(f[i]);
	}
	printf("  after terminate: %d done, %d cancelled (%d futures say so), %d other errors\n",
	       atomic_load(&done), atomic_load(&cancelled), futures_cancelled, atomic_load(&other));
	ok &= atomic_load(&done) == 0 && atomic_load(&cancelled) == NSTUCK &&
	      futures_cancelled == NSTUCK && atomic_load(&other) == 0;
	mpg_pool_free(pool);
	printf("%s\n", ok ? "OK" : "UNEXPECTED");
	return ok ? 0 : 1;
}
