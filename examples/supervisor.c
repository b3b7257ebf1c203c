/* SPDX-License-Identifier: MIT */
/* Long-running services restarted on failure: mpg_supervisor_*.
 *
 * 1. Two services, each in its own process:
 *    - "fetcher", MPG_RESTART_PERMANENT: crashes (SIGSEGV) on its first
 *      three runs, then is healthy and runs until it is stopped;
 *    - "indexer", MPG_RESTART_TRANSIENT: fails once (mpg_raise), is
 *      restarted, finishes its job and returns 0: it is not started again.
 *    Each failure reaches the error callback with its backtrace; restarts
 *    wait 10 ms, 20 ms, 40 ms (exponential backoff). Once the fetcher says
 *    it is healthy and the indexer is done, a thread of this program calls
 *    mpg_supervisor_stop(): the fetcher gets SIGTERM and
 *    mpg_supervisor_run() returns -EINTR.
 * 2. A service that always fails: after more than 3 restarts in 5 s the
 *    supervisor gives up, returns -ECANCELED, and mpg_supervisor_error()
 *    says why.
 *
 * Services say "healthy" and "done" through a pipe, and count their runs
 * in a shared page: a service cannot otherwise tell which run it is.
 *
 *   $ ./supervisor  exit 0 when the restarts and results are as described
 */
#include <mpguard.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct shared {
	atomic_int fetcher_runs, indexer_runs, doomed_runs;
};
static struct shared *sh; /* MAP_SHARED: every service process sees the same counters */
static int news_fd = -1;  /* write end of the pipe services report on */

static int64_t *volatile nowhere;

/* UBSan must let the NULL dereference fault, as it would in production. */
__attribute__((no_sanitize("undefined"), noinline)) static int fetch_one(void)
{
	return (int)*nowhere;
}

static int fetcher(void *userdata)
{
	(void)userdata;
	if (atomic_fetch_add(&sh->fetcher_runs, 1) < 3)
		return fetch_one(); /* a bug that bites on each of the first runs */
	if (write(news_fd, "F", 1) != 1) /* healthy */
		return 1;
	for (;;)
		pause(); /* serve until the supervisor's SIGTERM */
	return 0;        /* not reached */
}

static int indexer(void *userdata)
{
	(void)userdata;
	if (atomic_fetch_add(&sh->indexer_runs, 1) == 0)
		mpg_raise(EIO, "index is corrupt, rebuilding on restart");
	if (write(news_fd, "I", 1) != 1) /* job done */
		return 1;
	return 0; /* a normal end: a transient service stays down */
}

static int doomed(void *userdata)
{
	(void)userdata;
	atomic_fetch_add(&sh->doomed_runs, 1);
	return 3; /* fails every time */
}

static struct timespec t0;
static int failures;

static void on_failure(const mpg_error *err, void *userdata)
{
	(void)userdata; /* called in mpg_supervisor_run()'s thread */
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
	const char *bt = mpg_error_backtrace(err);
	printf("  %4ld ms  %s\n", ms, mpg_error_message(err));
	if (bt)
		printf("           at %.*s\n", (int)strcspn(bt, "\n"), bt); /* innermost frame */
	failures++;
}

struct watch {
	mpg_supervisor *sup;
	int fd; /* read end of the services' pipe */
};

/* Stops the supervisor once both services reported; gives up at EOF. */
static void *watcher(void *arg)
{
	const struct watch *w = arg;
	char c;
	int healthy = 0, done = 0;
	while ((!healthy || !done) && read(w->fd, &c, 1) == 1) {
		healthy |= c == 'F';
		done |= c == 'I';
	}
	if (healthy && done) {
		printf("  fetcher healthy and indexer done: stopping\n");
		mpg_supervisor_stop(w->sup); /* async-signal-safe, from any thread */
	}
	return NULL;
}

static int part1(void)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		perror("supervisor: pipe2");
		return 0;
	}
	news_fd = pfd[1];
	mpg_supervisor *sup = NULL;
	int r;
	if ((r = mpg_supervisor_new(&sup)) < 0 ||
	    (r = mpg_supervisor_add(sup, "fetcher", fetcher, NULL, MPG_RESTART_PERMANENT)) < 0 ||
	    (r = mpg_supervisor_add(sup, "indexer", indexer, NULL, MPG_RESTART_TRANSIENT)) < 0 ||
	    (r = mpg_supervisor_set_intensity(sup, 10, 5000)) < 0 ||
	    (r = mpg_supervisor_set_backoff(sup, 10, 1000)) < 0 ||
	    (r = mpg_supervisor_set_error_callback(sup, on_failure, NULL)) < 0) {
		fprintf(stderr, "supervisor: setup: %s\n", strerror(-r));
		goto fail;
	}
	/* SIGINT and SIGTERM are the supervisor's: blocked in other threads. */
	struct watch w = {sup, pfd[0]};
	sigset_t stop_sigs, old;
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_sigs, &old);
	pthread_t th;
	int e = pthread_create(&th, NULL, watcher, &w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		fprintf(stderr, "supervisor: pthread_create: %s\n", strerror(e));
		goto fail;
	}
	printf("1. fetcher (permanent) and indexer (transient):\n");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = mpg_supervisor_run(sup);
	close(pfd[1]); /* every service is gone: the watcher sees EOF if it still reads */
	pthread_join(th, NULL);
	close(pfd[0]);
	int fr = mpg_supervisor_restarts(sup, 0), ir = mpg_supervisor_restarts(sup, 1);
	printf("  mpg_supervisor_run() returned %s; restarts: fetcher %d, indexer %d; %d failures\n",
	       r == -EINTR ? "-EINTR (stopped)" : strerror(-r), fr, ir, failures);
	mpg_supervisor_free(sup);
	return r == -EINTR && fr == 3 && ir == 1 && failures == 4 &&
	       atomic_load(&sh->fetcher_runs) == 4 && atomic_load(&sh->indexer_runs) == 2;
fail:
	mpg_supervisor_free(sup);
	close(pfd[0]);
	close(pfd[1]);
	return 0;
}

static int part2(void)
{
	mpg_supervisor *sup = NULL;
	int r;
	if ((r = mpg_supervisor_new(&sup)) < 0 ||
	    (r = mpg_supervisor_add(sup, "doomed", doomed, NULL, MPG_RESTART_PERMANENT)) < 0 ||
	    (r = mpg_supervisor_set_intensity(sup, 3, 5000)) < 0 ||
	    (r = mpg_supervisor_set_backoff(sup, 10, 1000)) < 0 ||
	    (r = mpg_supervisor_set_error_callback(sup, on_failure, NULL)) < 0) {
		fprintf(stderr, "supervisor: setup: %s\n", strerror(-r));
		mpg_supervisor_free(sup);
		return 0;
	}
	printf("2. doomed (permanent), fails every time; at most 3 restarts in 5 s:\n");
	failures = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = mpg_supervisor_run(sup);
	const mpg_error *e = mpg_supervisor_error(sup); /* valid until freed or run again */
	printf("  mpg_supervisor_run() returned %s: %s\n",
	       r == -ECANCELED ? "-ECANCELED (gave up)" : strerror(-r),
	       e ? mpg_error_message(e) : "no error?");
	int ok = r == -ECANCELED && e && atomic_load(&sh->doomed_runs) == 4 && failures == 4;
	mpg_supervisor_free(sup);
	return ok;
}

int main(void)
{
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("supervisor: mmap");
		return 1;
	}
	int ok = part1();
	ok &= part2();
	munmap(sh, sizeof *sh);
	printf("%s\n", ok ? "OK" : "UNEXPECTED");
	return ok ? 0 : 1;
}
