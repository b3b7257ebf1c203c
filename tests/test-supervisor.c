/* SPDX-License-Identifier: MIT */
/* Supervised long-running services: restart policies, backoff, restart
 * intensity, failures reported like task errors, ordered shutdown on
 * SIGTERM and on request. */
#include "mpk-test.h"
#include <mpguard.h>
#include <mplog.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>

struct shared {
	atomic_int runs[8];
	atomic_llong started_ns[8][8];
	char order[64];
	atomic_int norder;
	atomic_int term_blocked, term_default; /* 0: not seen; 1: no; 2: yes */
};
static struct shared *sh;
static int ready_fd = -1; /* services say "up" here (inherited) */

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void setup(void)
{
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(sh, MAP_FAILED);
}

static int run_index(int id)
{
	int k = atomic_fetch_add(&sh->runs[id], 1);
	if (k < 8)
		atomic_store(&sh->started_ns[id][k], now_ns());
	return k;
}

static int64_t *volatile nowhere;

/* Crashes on its first two runs, then says it is up and waits to be stopped.
 * UBSan must let the NULL dereference fault. */
__attribute__((no_sanitize_undefined))
static int flaky(void *ud)
{
	int id = (int)(intptr_t)ud;
	int k = run_index(id);
	if (k < 2)
		return (int)*nowhere;
	char c = (char)('0' + id);
	if (write(ready_fd, &c, 1) != 1)
		return 1;
	for (;;)
		pause();
}

static atomic_int errors_seen, backtraces_seen;
static void count_errors(const mpg_error *e, void *ud)
{
	(void)ud;
	atomic_fetch_add(&errors_seen, 1);
	if (mpg_error_backtrace(e) && strstr(mpg_error_backtrace(e), "flaky"))
		atomic_fetch_add(&backtraces_seen, 1);
}

struct stopper {
	mpg_supervisor *s;
	int fd;
	int wait_for;
	bool by_signal;
};

static void *stopper_main(void *arg)
{
	struct stopper *st = arg;
	char c;
	for (int i = 0; i < st->wait_for; i++)
		if (read(st->fd, &c, 1) != 1)
			break;
	if (st->by_signal)
		kill(getpid(), SIGTERM); /* blocked everywhere: the supervisor's signalfd takes it */
	else
		mpg_supervisor_stop(st->s);
	return NULL;
}

START_TEST(permanent_service_is_restarted_after_crashes_and_stops_on_request)
{
	setup();
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	ready_fd = pfd[1];
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	ck_assert_int_eq(mpg_supervisor_add(s, "flaky", flaky, (void *)(intptr_t)0,
					    MPG_RESTART_PERMANENT), 0);
	ck_assert_int_eq(mpg_supervisor_set_backoff(s, 1, 100), 0);
	ck_assert_int_eq(mpg_supervisor_set_error_callback(s, count_errors, NULL), 0);
	atomic_store(&errors_seen, 0);
	atomic_store(&backtraces_seen, 0);
	struct stopper st = {.s = s, .fd = pfd[0], .wait_for = 1};
	pthread_t th;
	pthread_create(&th, NULL, stopper_main, &st);
	ck_assert_int_eq(mpg_supervisor_run(s), -EINTR);
	pthread_join(th, NULL);
	ck_assert_int_eq(atomic_load(&sh->runs[0]), 3);
	ck_assert_int_eq(mpg_supervisor_restarts(s, 0), 2);
	ck_assert_int_eq(atomic_load(&errors_seen), 2); /* the stop is no failure */
	ck_assert_int_eq(atomic_load(&backtraces_seen), 2);
	mpg_supervisor_free(s);
	mpk_assert_no_children();
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

static int ok_once(void *ud) { run_index((int)(intptr_t)ud); return 0; }
static int fail_once(void *ud)
{
	int id = (int)(intptr_t)ud;
	if (run_index(id) == 0)
		mpg_raise(7, "first run of %d fails", id);
	return 0;
}
static int always_fails(void *ud) { run_index((int)(intptr_t)ud); return 3; }

START_TEST(transient_restarts_only_failures_and_temporary_never)
{
	setup();
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	mpg_supervisor_set_backoff(s, 1, 10);
	mpg_supervisor_add(s, "transient-ok", ok_once, (void *)(intptr_t)0, MPG_RESTART_TRANSIENT);
	mpg_supervisor_add(s, "transient-fails-once", fail_once, (void *)(intptr_t)1,
			   MPG_RESTART_TRANSIENT);
	mpg_supervisor_add(s, "temporary-fails", always_fails, (void *)(intptr_t)2,
			   MPG_RESTART_TEMPORARY);
	atomic_store(&errors_seen, 0);
	mpg_supervisor_set_error_callback(s, count_errors, NULL);
	int rr = mpg_supervisor_run(s);
	ck_assert_msg(rr == 0, "run: %d: %s", rr, mpg_supervisor_error(s) ? mpg_error_describe(mpg_supervisor_error(s)) : "-"); /* all ended for good */
	ck_assert_int_eq(atomic_load(&sh->runs[0]), 1);
	ck_assert_int_eq(atomic_load(&sh->runs[1]), 2);
	ck_assert_int_eq(atomic_load(&sh->runs[2]), 1);
	ck_assert_int_eq(atomic_load(&errors_seen), 2);
	mpg_supervisor_free(s);
	mpk_assert_no_children();
}
END_TEST

START_TEST(restart_intensity_exceeded_gives_up_with_a_clear_error)
{
	setup();
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	mpg_supervisor_set_backoff(s, 0, 0);
	ck_assert_int_eq(mpg_supervisor_set_intensity(s, 3, 60000), 0);
	mpg_supervisor_add(s, "doomed", always_fails, (void *)(intptr_t)0, MPG_RESTART_PERMANENT);
	ck_assert_int_eq(mpg_supervisor_run(s), -ECANCELED);
	ck_assert_int_eq(atomic_load(&sh->runs[0]), 4); /* first run + 3 restarts */
	const mpg_error *e = mpg_supervisor_error(s);
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_RAISED);
	ck_assert_msg(strstr(mpg_error_message(e), "gave up") &&
		      strstr(mpg_error_message(e), "doomed"), "%s", mpg_error_message(e));
	mpg_supervisor_free(s);
	mpk_assert_no_children();
}
END_TEST

START_TEST(restart_delay_backs_off_exponentially)
{
	setup();
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	ck_assert_int_eq(mpg_supervisor_set_backoff(s, 20, 1000), 0);
	mpg_supervisor_set_intensity(s, 4, 60000);
	mpg_supervisor_add(s, "slow-to-fail", always_fails, (void *)(intptr_t)0,
			   MPG_RESTART_PERMANENT);
	ck_assert_int_eq(mpg_supervisor_run(s), -ECANCELED);
	ck_assert_int_eq(atomic_load(&sh->runs[0]), 5);
	/* Lower bounds only: each restart waited at least its delay. */
	long long want_ms[] = {20, 40, 80, 160};
	for (int k = 0; k < 4; k++) {
		long long gap = atomic_load(&sh->started_ns[0][k + 1]) - atomic_load(&sh->started_ns[0][k]);
		ck_assert_msg(gap >= want_ms[k] * 1000000LL, "restart %d after %lld ns", k + 1, gap);
	}
	mpg_supervisor_free(s);
}
END_TEST

/* Says it is up, records its SIGTERM in the shared order, exits. */
static int orderly(void *ud)
{
	int id = (int)(intptr_t)ud;
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	char c = (char)('0' + id);
	if (write(ready_fd, &c, 1) != 1)
		return 1;
	int sig;
	sigwait(&term, &sig);
	int k = atomic_fetch_add(&sh->norder, 1);
	sh->order[k] = (char)('a' + id);
	return 0;
}

START_TEST(sigterm_shuts_services_down_in_reverse_order)
{
	setup();
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	ready_fd = pfd[1];
	/* Block SIGTERM in this thread before the stopper thread exists, so
	 * neither takes it: only the supervisor's signalfd does. */
	sigset_t term, old;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	const char *names[3] = {"orderly-a", "orderly-b", "orderly-c"};
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(mpg_supervisor_add(s, names[i], orderly, (void *)(intptr_t)i,
						    MPG_RESTART_PERMANENT), i);
	struct stopper st = {.s = s, .fd = pfd[0], .wait_for = 3, .by_signal = true};
	pthread_t th;
	pthread_create(&th, NULL, stopper_main, &st);
	ck_assert_int_eq(mpg_supervisor_run(s), -EINTR);
	pthread_join(th, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	ck_assert_int_eq(atomic_load(&sh->norder), 3);
	ck_assert_msg(memcmp(sh->order, "cba", 3) == 0, "order %.3s", sh->order);
	mpg_supervisor_free(s);
	mpk_assert_no_children();
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

/* Fails at once, every run, after saying so on the pipe. */
static int fails_at_once(void *ud)
{
	run_index((int)(intptr_t)ud);
	return write(ready_fd, "f", 1) == 1 ? 3 : 4;
}

static char last_error[256];
static int last_kind, last_code;
static void keep_last_error(const mpg_error *e, void *ud)
{
	(void)ud;
	atomic_fetch_add(&errors_seen, 1);
	last_kind = mpg_error_get_kind(e);
	last_code = mpg_error_code(e);
	snprintf(last_error, sizeof last_error, "%s", mpg_error_describe(e));
}

/* The sizing rule of mpg_supervisor_set_intensity(): with delays of max_ms
 * and (max_restarts - 1) * max_ms >= period_ms, no max_restarts restarts
 * ever fall within one period, so a service that keeps failing is
 * restarted for ever (here until stopped), never given up. */
START_TEST(restarts_spaced_wider_than_the_intensity_allows_are_never_given_up)
{
	setup();
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	ready_fd = pfd[1];
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	ck_assert_int_eq(mpg_supervisor_set_intensity(s, 2, 50), 0);
	ck_assert_int_eq(mpg_supervisor_set_backoff(s, 60, 60), 0);
	ck_assert_int_eq(mpg_supervisor_set_log(s, NULL), 0);
	ck_assert_int_eq(mpg_supervisor_add(s, "failing", fails_at_once, (void *)(intptr_t)0,
					    MPG_RESTART_PERMANENT), 0);
	ck_assert_int_eq(mpg_supervisor_set_error_callback(s, keep_last_error, NULL), 0);
	atomic_store(&errors_seen, 0);
	struct stopper st = {.s = s, .fd = pfd[0], .wait_for = 8};
	pthread_t th;
	pthread_create(&th, NULL, stopper_main, &st);
	ck_assert_int_eq(mpg_supervisor_run(s), -EINTR);
	pthread_join(th, NULL);
	ck_assert_int_ge(atomic_load(&sh->runs[0]), 8);
	ck_assert_int_ge(mpg_supervisor_restarts(s, 0), 7);
	ck_assert_ptr_null(mpg_supervisor_error(s));
	/* A non-zero return: RAISED, its value the code, a message saying so. */
	ck_assert_int_ge(atomic_load(&errors_seen), 7); /* the last may be stopped */
	ck_assert_int_eq(last_kind, MPG_ERR_RAISED);
	ck_assert_int_eq(last_code, 3);
	ck_assert_msg(strstr(last_error, "service failing (pid ") &&
		      strstr(last_error, "service returned 3"), "%s", last_error);
	mpg_supervisor_free(s);
	mpk_assert_no_children();
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

/* Says whether SIGTERM is blocked and at its default action, then waits to
 * be stopped. */
static int reports_sigterm(void *ud)
{
	(void)ud;
	sigset_t cur;
	struct sigaction sa;
	sigprocmask(SIG_SETMASK, NULL, &cur);
	sigaction(SIGTERM, NULL, &sa);
	atomic_store(&sh->term_blocked, 1 + sigismember(&cur, SIGTERM));
	atomic_store(&sh->term_default, 1 + (sa.sa_handler == SIG_DFL));
	if (write(ready_fd, "x", 1) != 1)
		return 1;
	for (;;)
		pause();
}

static void ignore_signal(int sig) { (void)sig; }

START_TEST(services_start_with_sigterm_unblocked_when_the_caller_blocked_it)
{
	setup();
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	ready_fd = pfd[1];
	/* The usual way: SIGINT and SIGTERM blocked in main before any thread
	 * (to take them with sigwait() or a signalfd), and a handler too. */
	sigset_t stop, old;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	struct sigaction sa = {.sa_handler = ignore_signal}, old_sa;
	sigaction(SIGTERM, &sa, &old_sa);
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	ck_assert_int_eq(mpg_supervisor_add(s, "sleeper", reports_sigterm, NULL,
					    MPG_RESTART_PERMANENT), 0);
	ck_assert_int_eq(mpg_supervisor_set_shutdown_timeout(s, 30000), 0);
	ck_assert_int_eq(mpg_supervisor_set_log(s, NULL), 0);
	ck_assert_int_eq(mpg_supervisor_set_error_callback(s, count_errors, NULL), 0);
	atomic_store(&errors_seen, 0);
	struct stopper st = {.s = s, .fd = pfd[0], .wait_for = 1};
	pthread_t th;
	pthread_create(&th, NULL, stopper_main, &st);
	long long t0 = now_ns();
	ck_assert_int_eq(mpg_supervisor_run(s), -EINTR);
	long long took_ms = (now_ns() - t0) / 1000000;
	pthread_join(th, NULL);
	sigaction(SIGTERM, &old_sa, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	ck_assert_int_eq(atomic_load(&sh->term_blocked), 1);
	ck_assert_int_eq(atomic_load(&sh->term_default), 2);
	ck_assert_int_eq(atomic_load(&errors_seen), 0); /* a stop, not a failure */
	/* Ended by SIGTERM, not by SIGKILL after the 30 s shutdown timeout. */
	ck_assert_msg(took_ms < 10000, "shutdown took %lld ms", took_ms);
	mpg_supervisor_free(s);
	mpk_assert_no_children();
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

/* Says (on the pipe) when a service paused at start. */
static void paused_at_start(const mplog_record *r, void *ud)
{
	(void)ud;
	if (strstr(mplog_record_message(r, NULL), "paused at start"))
		(void)!write(ready_fd, "p", 1);
}

START_TEST(a_service_paused_at_start_dies_of_the_shutdown_sigterm)
{
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	ready_fd = pfd[1];
	/* A handler of the program's must not take the service's SIGTERM,
	 * even before the service function runs. */
	struct sigaction sa = {.sa_handler = ignore_signal}, old_sa;
	sigaction(SIGTERM, &sa, &old_sa);
	mplog_aggregator *agg;
	mplog_sink *sink;
	ck_assert_int_eq(mplog_aggregator_new(&agg), 0);
	ck_assert_int_eq(mplog_sink_new_callback(paused_at_start, NULL, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agg, sink), 0);
	ck_assert_int_eq(mplog_aggregator_start(agg), 0);
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	ck_assert_int_eq(mpg_supervisor_add(s, "held", reports_sigterm, NULL,
					    MPG_RESTART_PERMANENT), 0);
	ck_assert_int_eq(mpg_supervisor_set_pause(s, MPG_PAUSE_AT_START, 60000), 0);
	ck_assert_int_eq(mpg_supervisor_set_control(s, 0), 0);
	ck_assert_int_eq(mpg_supervisor_set_shutdown_timeout(s, 30000), 0);
	ck_assert_int_eq(mpg_supervisor_set_log(s, agg), 0);
	ck_assert_int_eq(mpg_supervisor_set_error_callback(s, count_errors, NULL), 0);
	atomic_store(&errors_seen, 0);
	struct stopper st = {.s = s, .fd = pfd[0], .wait_for = 1};
	pthread_t th;
	pthread_create(&th, NULL, stopper_main, &st);
	long long t0 = now_ns();
	ck_assert_int_eq(mpg_supervisor_run(s), -EINTR);
	long long took_ms = (now_ns() - t0) / 1000000;
	pthread_join(th, NULL);
	sigaction(SIGTERM, &old_sa, NULL);
	ck_assert_int_eq(atomic_load(&errors_seen), 0);
	ck_assert_msg(took_ms < 10000, "shutdown took %lld ms", took_ms);
	mpg_supervisor_free(s);
	mplog_aggregator_free(agg);
	mpk_assert_no_children();
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

struct log_seen {
	pthread_mutex_t lock;
	int said, printed, failure, restart, gave_up, bad;
};

static void collect_log(const mplog_record *r, void *ud)
{
	struct log_seen *l = ud;
	size_t len;
	const char *m = mplog_record_message(r, &len);
	const char *service = mplog_record_kv_get(r, "mpg.service");
	pthread_mutex_lock(&l->lock);
	if (strstr(m, "talker run ")) {
		/* the service's own record: on its channel, no worker */
		if (strcmp(mplog_record_channel(r), "talker") == 0 && mplog_record_worker(r) == -1 &&
		    mplog_record_stream(r) == MPLOG_STREAM_LOG)
			l->said++;
		else
			l->bad++;
	} else if (strstr(m, "printed by talker")) {
		if (mplog_record_stream(r) == MPLOG_STREAM_STDOUT &&
		    strcmp(mplog_record_channel(r), "talker") == 0 && mplog_record_pid(r) > 0)
			l->printed++;
		else
			l->bad++;
	} else if (strstr(m, "gave up: service talker")) {
		l->gave_up += service && !strcmp(service, "talker");
	} else if (service && mplog_record_level(r) == MPLOG_ERROR) {
		const char *bt = mplog_record_kv_get(r, "mpg.backtrace");
		if (!strcmp(service, "talker") && strstr(m, "service talker (pid ") &&
		    strstr(m, "died by SIGSEGV") && bt && strstr(bt, "talker"))
			l->failure++;
		else
			l->bad++;
	} else if (strstr(m, "service talker failed; restart ")) {
		l->restart += service && !strcmp(service, "talker");
	}
	pthread_mutex_unlock(&l->lock);
}

/* Logs, prints, then crashes: every run. */
__attribute__((no_sanitize_undefined))
static int talker(void *ud)
{
	int k = run_index((int)(intptr_t)ud);
	if (mplog_info("talker run %d", k) != 0)
		return 99;
	printf("printed by talker %d\n", k);
	fflush(stdout);
	return (int)*nowhere;
}

static atomic_int named_errors;
static void count_named(const mpg_error *e, void *ud)
{
	(void)ud;
	if (mpg_error_service(e) && !strcmp(mpg_error_service(e), "talker") &&
	    mpg_error_worker(e) == 0 && strstr(mpg_error_describe(e), "service talker (pid "))
		atomic_fetch_add(&named_errors, 1);
}

START_TEST(services_log_to_the_supervisors_aggregator)
{
	setup();
	struct log_seen l = {.lock = PTHREAD_MUTEX_INITIALIZER};
	mplog_aggregator *agg;
	mplog_sink *sink;
	ck_assert_int_eq(mplog_aggregator_new(&agg), 0);
	ck_assert_int_eq(mplog_sink_new_callback(collect_log, &l, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agg, sink), 0);
	ck_assert_int_eq(mplog_aggregator_start(agg), 0);
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	ck_assert_int_eq(mpg_supervisor_add(s, "talker", talker, (void *)(intptr_t)0,
					    MPG_RESTART_PERMANENT), 0);
	ck_assert_int_eq(mpg_supervisor_set_log(s, agg), 0);
	ck_assert_ptr_eq(mpg_supervisor_log(s), agg);
	ck_assert_int_eq(mpg_supervisor_set_capture(s, MPG_CAPTURE_STDOUT), 0);
	ck_assert_int_eq(mpg_supervisor_set_intensity(s, 2, 60000), 0);
	ck_assert_int_eq(mpg_supervisor_set_backoff(s, 1, 10), 0);
	ck_assert_int_eq(mpg_supervisor_set_error_callback(s, count_named, NULL), 0);
	atomic_store(&named_errors, 0);
	ck_assert_int_eq(mpg_supervisor_run(s), -ECANCELED);
	/* Delivered before run() returned: no flush needed here. */
	pthread_mutex_lock(&l.lock);
	ck_assert_int_eq(l.bad, 0);
	ck_assert_int_eq(l.said, 3);
	ck_assert_int_eq(l.printed, 3);
	ck_assert_int_eq(l.failure, 3);
	ck_assert_int_eq(l.restart, 2);
	ck_assert_int_eq(l.gave_up, 1);
	pthread_mutex_unlock(&l.lock);
	ck_assert_int_eq(atomic_load(&named_errors), 3);
	const mpg_error *e = mpg_supervisor_error(s);
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(mpg_error_service(e), "talker");
	mpg_supervisor_free(s);
	mplog_aggregator_free(agg);
	mpk_assert_no_children();
}
END_TEST

/* Logs and prints once, then ends well. */
static int talks_once(void *ud)
{
	int k = run_index((int)(intptr_t)ud);
	if (mplog_info("talker run %d", k) != 0)
		return 99;
	printf("printed by talker %d\n", k);
	fflush(stdout);
	return 0;
}

START_TEST(the_default_log_can_be_given_back_and_started_by_the_caller)
{
	setup();
	struct log_seen l = {.lock = PTHREAD_MUTEX_INITIALIZER};
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	mplog_aggregator *a = mpg_supervisor_log(s);
	ck_assert_ptr_nonnull(a);
	mplog_sink *sink;
	ck_assert_int_eq(mplog_sink_new_callback(collect_log, &l, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, sink), 0);
	ck_assert_int_eq(mpg_supervisor_set_log(s, a), 0); /* given back: still the supervisor's */
	ck_assert_ptr_eq(mpg_supervisor_log(s), a);
	ck_assert_int_eq(mplog_aggregator_start(a), 0);     /* started by the caller */
	ck_assert_int_eq(mpg_supervisor_set_capture(s, MPG_CAPTURE_STDOUT), 0);
	ck_assert_int_eq(mpg_supervisor_add(s, "talker", talks_once, (void *)(intptr_t)0,
					    MPG_RESTART_TRANSIENT), 0);
	ck_assert_int_eq(mpg_supervisor_run(s), 0);
	ck_assert_int_eq(mplog_aggregator_stop(a), 0); /* the caller's thread, still running */
	pthread_mutex_lock(&l.lock);
	ck_assert_int_eq(l.bad, 0);
	ck_assert_int_eq(l.said, 1);
	ck_assert_int_eq(l.printed, 1); /* with the service's pid */
	pthread_mutex_unlock(&l.lock);
	mpg_supervisor_free(s);
	mpk_assert_no_children();
}
END_TEST

static int log_result(void *ud)
{
	(void)ud;
	return mplog_info("anyone?") == -ENOTCONN ? 0 : 1;
}

START_TEST(services_log_by_default_and_not_when_turned_off)
{
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	ck_assert_ptr_nonnull(mpg_supervisor_log(s)); /* the default, to stderr */
	ck_assert_int_eq(mpg_supervisor_set_log(s, NULL), 0);
	ck_assert_ptr_null(mpg_supervisor_log(s));
	ck_assert_int_eq(mpg_supervisor_add(s, "mute", log_result, NULL, MPG_RESTART_TRANSIENT), 0);
	ck_assert_int_eq(mpg_supervisor_run(s), 0); /* returned 0: -ENOTCONN seen */
	ck_assert_int_eq(mpg_supervisor_set_capture(s, 4), -EINVAL);
	mpg_supervisor_free(s);
	mpk_assert_no_children();
}
END_TEST

/* ---- a death means the same for a service as for a pool's worker ---------- */

static const int own_signals[] = {SIGXCPU, SIGXFSZ, SIGPIPE};
static char service_msgs[3][256];
static int service_kinds[3];

static int dies_of_own_signal(void *ud)
{
	int sig = own_signals[(intptr_t)ud];
	signal(sig, SIG_DFL);
	raise(sig);
	return 0;
}

static int task_dies_of_own_signal(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)t; (void)len; (void)ud;
	int64_t i;
	memcpy(&i, in, 8);
	signal(own_signals[i], SIG_DFL);
	raise(own_signals[i]);
	return 0;
}

static void keep_service_error(const mpg_error *e, void *ud)
{
	(void)ud;
	const char *name = mpg_error_service(e);
	int i = name ? name[0] - '0' : -1;
	if (i >= 0 && i < 3) {
		service_kinds[i] = mpg_error_get_kind(e);
		snprintf(service_msgs[i], sizeof service_msgs[i], "%s", mpg_error_message(e));
	}
}

START_TEST(a_service_dies_of_a_signal_as_a_pool_worker_does)
{
	setup();
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	ck_assert_int_eq(mpg_supervisor_set_log(s, NULL), 0);
	ck_assert_int_eq(mpg_supervisor_set_error_callback(s, keep_service_error, NULL), 0);
	const char *names[3] = {"0-xcpu", "1-xfsz", "2-pipe"};
	for (intptr_t i = 0; i < 3; i++)
		ck_assert_int_eq(mpg_supervisor_add(s, names[i], dies_of_own_signal, (void *)i,
						    MPG_RESTART_TEMPORARY), (int)i);
	ck_assert_int_eq(mpg_supervisor_run(s), 0);
	mpg_supervisor_free(s);

	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 1), 0);
	ck_assert_int_eq(mpg_options_set_log(o, NULL), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	int64_t x[3] = {0, 1, 2};
	mpg_buf in[3] = {{&x[0], 8}, {&x[1], 8}, {&x[2], 8}};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, task_dies_of_own_signal, in, 3, NULL, &res), 0);
	for (int i = 0; i < 3; i++) {
		const mpg_error *e = mpg_results_error(res, (size_t)i);
		ck_assert_ptr_nonnull(e);
		ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_SIGNALED);
		ck_assert_int_eq(service_kinds[i], MPG_ERR_SIGNALED);
		ck_assert_str_eq(service_msgs[i], mpg_error_message(e));
		ck_assert_ptr_null(strstr(service_msgs[i], "from outside"));
	}
	mpg_results_free(res);
	mpg_pool_free(p);
	mpk_assert_no_children();
}
END_TEST

START_TEST(supervisor_rejects_bad_input)
{
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(NULL), -EINVAL);
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	ck_assert_int_eq(mpg_supervisor_run(s), -EINVAL); /* nothing to run */
	ck_assert_int_eq(mpg_supervisor_add(s, NULL, ok_once, NULL, MPG_RESTART_TEMPORARY), -EINVAL);
	ck_assert_int_eq(mpg_supervisor_add(s, "x", NULL, NULL, MPG_RESTART_TEMPORARY), -EINVAL);
	ck_assert_int_eq(mpg_supervisor_add(s, "x", ok_once, NULL, (mpg_restart)9), -EINVAL);
	ck_assert_int_eq(mpg_supervisor_set_backoff(s, 10, 5), -EINVAL);
	ck_assert_int_eq(mpg_supervisor_set_intensity(s, 1, 0), -EINVAL);
	ck_assert_int_eq(mpg_supervisor_restarts(s, 0), -EINVAL);
	/* Names tell services apart in errors, the log and mpattach. */
	ck_assert_int_eq(mpg_supervisor_add(s, "x", ok_once, NULL, MPG_RESTART_TEMPORARY), 0);
	ck_assert_int_eq(mpg_supervisor_add(s, "x", ok_once, NULL, MPG_RESTART_PERMANENT), -EEXIST);
	ck_assert_int_eq(mpg_supervisor_add(s, "y", ok_once, NULL, MPG_RESTART_TEMPORARY), 1);
	ck_assert_int_eq(mpg_supervisor_restarts(s, 2), -EINVAL);
	mpg_supervisor_free(s);
	mpg_supervisor_free(NULL);
}
END_TEST

static Suite *supervisor_suite(void)
{
	Suite *s = suite_create("supervisor");
	TCase *tc = tcase_create("supervisor");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, permanent_service_is_restarted_after_crashes_and_stops_on_request);
	tcase_add_test(tc, transient_restarts_only_failures_and_temporary_never);
	tcase_add_test(tc, restart_intensity_exceeded_gives_up_with_a_clear_error);
	tcase_add_test(tc, restart_delay_backs_off_exponentially);
	tcase_add_test(tc, restarts_spaced_wider_than_the_intensity_allows_are_never_given_up);
	tcase_add_test(tc, sigterm_shuts_services_down_in_reverse_order);
	tcase_add_test(tc, services_start_with_sigterm_unblocked_when_the_caller_blocked_it);
	tcase_add_test(tc, a_service_paused_at_start_dies_of_the_shutdown_sigterm);
	tcase_add_test(tc, supervisor_rejects_bad_input);
	tcase_add_test(tc, a_service_dies_of_a_signal_as_a_pool_worker_does);
	tcase_add_test(tc, services_log_to_the_supervisors_aggregator);
	tcase_add_test(tc, services_log_by_default_and_not_when_turned_off);
	tcase_add_test(tc, the_default_log_can_be_given_back_and_started_by_the_caller);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(supervisor_suite)
