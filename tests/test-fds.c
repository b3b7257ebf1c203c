/* SPDX-License-Identifier: MIT */
/* File descriptors as a fault of the environment: a pool whose workers
 * cannot be replaced for want of fds returns and comes back once fds are
 * free; a pool that cannot start fails cleanly; a supervisor's service
 * that cannot be started fails and is restarted like any other; workers,
 * services and fork() children do not inherit the fds of an aggregator
 * made before them. */
#include "mpk-test.h"
#include <mpguard.h>
#include <mplog.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

static void set_fd_limit(rlim_t soft)
{
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = soft;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static int echo(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)ud;
	return mpg_task_set_result(t, in, len);
}

static int die(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)t; (void)in; (void)len; (void)ud;
	_exit(3);
}

static int which_worker(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	unsigned slot = mpg_task_worker(t);
	return mpg_task_set_result(t, &slot, sizeof slot);
}

/* The pool's records about starting workers. */
struct starts {
	pthread_mutex_t lock;
	unsigned warn[2];  /* "could not be started", EMFILE, per slot */
	unsigned gave_up;  /* ERROR: tasks failed for want of a worker */
};

static void count_starts(const mplog_record *r, void *ud)
{
	struct starts *s = ud;
	const char *err = mplog_record_kv_get(r, "mpg.errno");
	const char *wk = mplog_record_kv_get(r, "mpg.worker");
	const char *msg = mplog_record_message(r, NULL);
	if (!err || strcmp(err, "EMFILE") != 0)
		return;
	pthread_mutex_lock(&s->lock);
	if (mplog_record_level(r) == MPLOG_WARN && wk && strstr(msg, "could not be started") &&
	    (wk[0] == '0' || wk[0] == '1') && !wk[1])
		s->warn[wk[0] - '0']++;
	if (mplog_record_level(r) == MPLOG_ERROR && strstr(msg, "no worker could be started"))
		s->gave_up++;
	pthread_mutex_unlock(&s->lock);
}

static mpg_results *map_n(mpg_pool *p, mpg_task_fn fn, size_t n)
{
	int64_t in[16];
	mpg_buf bufs[16];
	ck_assert_uint_le(n, 16);
	for (size_t i = 0; i < n; i++) {
		in[i] = (int64_t)i;
		bufs[i] = (mpg_buf){&in[i], sizeof in[i]};
	}
	mpg_options *o;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_chunksize(o, 1), 0);
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, fn, bufs, n, o, &res), 0);
	mpg_options_free(o);
	return res;
}

/* Poll the pool's state (not a sleep as synchronization): true once every
 * slot has a worker again. */
static bool all_slots_up(mpg_pool *p, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited++) {
		bool up = true;
		for (unsigned i = 0; i < mpg_pool_workers(p); i++) {
			mpg_worker_info wi = {.size = sizeof wi};
			ck_assert_int_eq(mpg_pool_worker_info(p, i, &wi), 0);
			up &= wi.pid > 0;
		}
		if (up)
			return true;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	return false;
}

START_TEST(a_map_returns_when_no_worker_can_be_started_and_the_slots_come_back)
{
	set_fd_limit(256);
	int before = mpk_count_fds();
	struct starts seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
	mplog_aggregator *agg;
	mplog_sink *sink;
	ck_assert_int_eq(mplog_aggregator_new(&agg), 0);
	ck_assert_int_eq(mplog_sink_new_callback(count_starts, &seen, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agg, sink), 0);
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 2), 0);
	ck_assert_int_eq(mpg_options_set_log(o, agg), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	ck_assert_int_eq(mplog_aggregator_start(agg), 0);

	mpg_results *res = map_n(p, echo, 4);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	mpg_results_free(res);

	/* Every fd taken, and none of those the pool frees can be taken
	 * again (as if a thread grabbed each one that comes free). */
	int held[256], nheld = 0;
	int fd;
	while ((fd = dup(0)) >= 0)
		held[nheld++] = fd;
	ck_assert_int_eq(errno, EMFILE);
	set_fd_limit(3);

	/* Each task kills its worker; none can be replaced. The call
	 * returns: the tasks that ran failed as they did, the others fail
	 * naming the cause. */
	res = map_n(p, die, 6);
	ck_assert_uint_eq(mpg_results_failed(res), 6);
	unsigned exited = 0, cancelled = 0;
	for (size_t i = 0; i < 6; i++) {
		const mpg_error *e = mpg_results_error(res, i);
		ck_assert_ptr_nonnull(e);
		if (mpg_error_get_kind(e) == MPG_ERR_EXITED) {
			exited++;
		} else {
			ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_CANCELLED);
			ck_assert_int_eq(mpg_error_code(e), EMFILE);
			ck_assert_ptr_nonnull(strstr(mpg_error_message(e), "no worker could be started"));
			ck_assert_ptr_nonnull(strstr(mpg_error_message(e), "EMFILE"));
			cancelled++;
		}
	}
	ck_assert_uint_eq(exited, 2); /* one per worker */
	ck_assert_uint_eq(cancelled, 4);
	mpg_results_free(res);
	mpg_worker_info wi = {.size = sizeof wi};
	for (unsigned i = 0; i < 2; i++) {
		ck_assert_int_eq(mpg_pool_worker_info(p, i, &wi), 0);
		ck_assert_int_eq(wi.pid, 0);
	}
	/* Every failed start is in the log, and why the tasks failed. */
	mplog_aggregator_flush(agg);
	pthread_mutex_lock(&seen.lock);
	ck_assert_uint_ge(seen.warn[0], 3);
	ck_assert_uint_ge(seen.warn[1], 3);
	ck_assert_uint_ge(seen.gave_up, 1);
	pthread_mutex_unlock(&seen.lock);

	/* fds free again: both slots come back and run tasks. */
	set_fd_limit(256);
	while (nheld)
		close(held[--nheld]);
	ck_assert(all_slots_up(p, 10000));
	res = map_n(p, which_worker, 2);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	unsigned ran_on = 0;
	for (size_t i = 0; i < 2; i++) {
		const void *d;
		size_t len;
		unsigned slot;
		ck_assert_int_eq(mpg_results_get(res, i, &d, &len), 0);
		ck_assert_uint_eq(len, sizeof slot);
		memcpy(&slot, d, sizeof slot);
		ran_on |= 1u << slot;
	}
	ck_assert_uint_eq(ran_on, 3);
	mpg_results_free(res);

	mpg_pool_free(p);
	mplog_aggregator_free(agg);
	mpk_assert_no_children();
	ck_assert_int_eq(mpk_count_fds(), before);
}
END_TEST

static int big_result(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	size_t n = 4u << 20; /* over the shm threshold: sent as a memfd */
	void *r = mpg_task_alloc_result(t, n);
	if (!r)
		return 1;
	memset(r, 7, n);
	return 0;
}

/* A result whose memfd finds no fd free in the parent is not the worker's
 * fault (it was a protocol error blamed on its task): the task fails for
 * want of fds, naming them, and runs once fds are free. */
START_TEST(a_result_the_parent_has_no_fd_for_is_not_the_workers_fault)
{
	set_fd_limit(256);
	int before = mpk_count_fds();
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 1), 0);
	ck_assert_int_eq(mpg_options_set_log(o, NULL), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	mpg_results *res = map_n(p, echo, 2); /* the worker is up and said hello */
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	mpg_results_free(res);

	int held[256], nheld = 0, fd;
	while ((fd = dup(0)) >= 0)
		held[nheld++] = fd;
	set_fd_limit(3);
	res = map_n(p, big_result, 1);
	const mpg_error *e = mpg_results_error(res, 0);
	ck_assert_ptr_nonnull(e);
	ck_assert_msg(mpg_error_get_kind(e) == MPG_ERR_CANCELLED && mpg_error_code(e) == EMFILE,
		      "%s", mpg_error_describe(e));
	mpg_results_free(res);

	set_fd_limit(256);
	while (nheld)
		close(held[--nheld]);
	res = map_n(p, big_result, 1);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	mpg_results_free(res);
	mpg_pool_free(p);
	mpk_assert_no_children();
	ck_assert_int_eq(mpk_count_fds(), before);
}
END_TEST

START_TEST(pool_new_at_a_low_fd_limit_fails_cleanly_or_works)
{
	/* The pool's default log writes each failed start to stderr. */
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(devnull, 0);
	ck_assert_int_eq(dup2(devnull, STDERR_FILENO), STDERR_FILENO);
	close(devnull);
	int before = mpk_count_fds();
	int failed = 0, worked = 0;
	for (rlim_t limit = 4; limit <= 40; limit++) {
		set_fd_limit(limit);
		mpg_options *o;
		ck_assert_int_eq(mpg_options_new(&o), 0);
		ck_assert_int_eq(mpg_options_set_workers(o, 2), 0);
		mpg_pool *p = NULL;
		int r = mpg_pool_new(o, &p);
		mpg_options_free(o);
		if (r < 0) {
			set_fd_limit(256);
			ck_assert_msg(r == -EMFILE || r == -ENFILE || r == -ENOMEM || r == -EAGAIN,
				      "limit %d: %s", (int)limit, strerror(-r));
			ck_assert_ptr_null(p);
			failed++;
		} else {
			/* A pool that says it started runs a call to its end. */
			mpg_results *res = map_n(p, echo, 4);
			for (size_t i = 0; i < 4; i++) {
				const mpg_error *e = mpg_results_error(res, i);
				ck_assert_msg(!e || mpg_error_code(e) == EMFILE, "limit %d: %s",
					      (int)limit, e ? mpg_error_describe(e) : "");
			}
			mpg_results_free(res);
			mpg_pool_free(p);
			set_fd_limit(256);
			worked++;
		}
		ck_assert_msg(mpk_count_fds() == before, "limit %d: %d fds, not %d", (int)limit,
			      mpk_count_fds(), before);
		mpk_assert_no_children();
	}
	ck_assert_int_gt(failed, 0);
	ck_assert_int_gt(worked, 0);
}
END_TEST

/* ---- a supervisor's service that cannot be started ----------------------- */

static int fails_first(void *ud)
{
	atomic_int *runs = ud; /* shared memory: counted across processes */
	return atomic_fetch_add(runs, 1) == 0 ? 1 : 0;
}

struct svc_faults {
	int held[256];
	int nheld;
	bool free_again;          /* give the fds back after the first EMFILE */
	unsigned raised, no_fd;   /* errors seen */
};

static void exhaust_fds(struct svc_faults *f)
{
	int fd;
	while ((fd = dup(0)) >= 0 && f->nheld < 256)
		f->held[f->nheld++] = fd;
	set_fd_limit(3); /* and none the supervisor frees can be taken again */
}

static void free_fds(struct svc_faults *f)
{
	set_fd_limit(256);
	while (f->nheld)
		close(f->held[--f->nheld]);
}

/* On the supervisor's thread: its first failure takes every fd, so that
 * the restart cannot be started. */
static void on_svc_error(const mpg_error *e, void *ud)
{
	struct svc_faults *f = ud;
	if (mpg_error_get_kind(e) == MPG_ERR_RAISED) {
		f->raised++;
		exhaust_fds(f);
		return;
	}
	ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_CANCELLED);
	ck_assert_int_eq(mpg_error_code(e), EMFILE);
	ck_assert_str_eq(mpg_error_service(e), "flaky");
	ck_assert_ptr_nonnull(strstr(mpg_error_message(e), "could not be started"));
	f->no_fd++;
	if (f->free_again)
		free_fds(f);
}

static void count_svc_starts(const mplog_record *r, void *ud)
{
	atomic_uint *n = ud;
	const char *svc = mplog_record_kv_get(r, "mpg.service");
	const char *msg = mplog_record_message(r, NULL);
	if (mplog_record_level(r) == MPLOG_ERROR && svc && strcmp(svc, "flaky") == 0 &&
	    strstr(msg, "could not be started") && strstr(msg, "EMFILE") && !strstr(msg, "gave up"))
		atomic_fetch_add(n, 1);
}

static void run_flaky(bool free_again, int want_result, unsigned want_no_fd)
{
	set_fd_limit(256);
	int before = mpk_count_fds();
	atomic_int *runs = mmap(NULL, sizeof *runs, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(runs, MAP_FAILED);
	atomic_init(runs, 0);
	atomic_uint records;
	atomic_init(&records, 0);
	mplog_aggregator *agg;
	mplog_sink *sink;
	ck_assert_int_eq(mplog_aggregator_new(&agg), 0);
	ck_assert_int_eq(mplog_sink_new_callback(count_svc_starts, &records, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agg, sink), 0);
	struct svc_faults f = {.free_again = free_again};
	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	ck_assert_int_eq(mpg_supervisor_set_log(s, agg), 0);
	ck_assert_int_eq(mpg_supervisor_set_control(s, 0), 0);
	ck_assert_int_eq(mpg_supervisor_set_intensity(s, 3, 60000), 0);
	ck_assert_int_eq(mpg_supervisor_set_backoff(s, 1, 4), 0);
	ck_assert_int_eq(mpg_supervisor_set_error_callback(s, on_svc_error, &f), 0);
	ck_assert_int_ge(mpg_supervisor_add(s, "flaky", fails_first, runs, MPG_RESTART_TRANSIENT), 0);
	ck_assert_int_eq(mpg_supervisor_run(s), want_result);
	free_fds(&f);
	ck_assert_uint_eq(f.raised, 1);
	ck_assert_uint_eq(f.no_fd, want_no_fd);
	ck_assert_uint_eq(atomic_load(&records), want_no_fd); /* each failed start */
	if (want_result == 0) {
		ck_assert_int_eq(atomic_load(runs), 2); /* it came back */
	} else {
		const mpg_error *e = mpg_supervisor_error(s);
		ck_assert_ptr_nonnull(e);
		ck_assert_ptr_nonnull(strstr(mpg_error_describe(e), "EMFILE"));
	}
	mpg_supervisor_free(s);
	mplog_aggregator_free(agg);
	munmap(runs, sizeof *runs);
	mpk_assert_no_children();
	ck_assert_int_eq(mpk_count_fds(), before);
}

START_TEST(a_service_that_cannot_be_started_is_restarted_once_fds_are_free)
{
	run_flaky(true, 0, 1);
}
END_TEST

START_TEST(a_service_that_cannot_be_started_is_given_up_naming_the_cause)
{
	/* The first run's failure, then starts that fail until the
	 * intensity (3 restarts) is exceeded. */
	run_flaky(false, -ECANCELED, 3);
}
END_TEST

/* ---- inherited fds ------------------------------------------------------ */

struct file_id {
	dev_t dev;
	ino_t ino;
};

/* How many of this process's fds are an aggregator's: an epoll or an
 * eventfd (workers and services make neither), or the log file. */
static int aggregator_fds_here(const struct file_id *log_file)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int bad = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		char path[300], link[256];
		snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(path, link, sizeof link - 1);
		if (n < 0)
			continue;
		link[n] = 0;
		struct stat st;
		if (strcmp(link, "anon_inode:[eventpoll]") == 0 ||
		    strcmp(link, "anon_inode:[eventfd]") == 0 ||
		    (stat(path, &st) == 0 && st.st_dev == log_file->dev && st.st_ino == log_file->ino)) {
			fprintf(stderr, "pid %d holds fd %s: %s\n", (int)getpid(), e->d_name, link);
			bad++;
		}
	}
	closedir(d);
	return bad;
}

static int check_fds_task(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len;
	int bad = aggregator_fds_here(ud);
	return mpg_task_set_result(t, &bad, sizeof bad);
}

static int check_fds_service(void *ud)
{
	return aggregator_fds_here(ud);
}

static void on_service_error(const mpg_error *e, void *ud)
{
	(void)ud;
	ck_abort_msg("service failed: %s", mpg_error_describe(e));
}

/* The pattern mpg_options_set_log() invites: an aggregator, with a JSON
 * file, made before the pool and the supervisor. */
START_TEST(workers_and_services_hold_none_of_an_aggregators_fds)
{
	char path[] = "/tmp/mpkit-test-fds-XXXXXX";
	int tmp = mkstemp(path);
	ck_assert_int_ge(tmp, 0);
	close(tmp);
	mplog_aggregator *agg;
	mplog_sink *sink;
	ck_assert_int_eq(mplog_aggregator_new(&agg), 0);
	ck_assert_int_eq(mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agg, sink), 0);
	ck_assert_int_eq(mplog_aggregator_start(agg), 0);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	struct file_id id = {st.st_dev, st.st_ino};

	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 2), 0);
	ck_assert_int_eq(mpg_options_set_log(o, agg), 0);
	ck_assert_int_eq(mpg_options_set_userdata(o, &id), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	mpg_results *res = map_n(p, check_fds_task, 2);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	for (size_t i = 0; i < 2; i++) {
		const void *d;
		size_t len;
		int bad;
		ck_assert_int_eq(mpg_results_get(res, i, &d, &len), 0);
		ck_assert_uint_eq(len, sizeof bad);
		memcpy(&bad, d, sizeof bad);
		ck_assert_int_eq(bad, 0);
	}
	mpg_results_free(res);
	mpg_pool_free(p);

	mpg_supervisor *s;
	ck_assert_int_eq(mpg_supervisor_new(&s), 0);
	ck_assert_int_eq(mpg_supervisor_set_log(s, agg), 0);
	ck_assert_int_eq(mpg_supervisor_set_error_callback(s, on_service_error, NULL), 0);
	ck_assert_int_ge(mpg_supervisor_add(s, "check-fds", check_fds_service, &id,
					    MPG_RESTART_TEMPORARY), 0);
	ck_assert_int_eq(mpg_supervisor_run(s), 0);
	mpg_supervisor_free(s);

	/* A plain fork() child of the program, too. */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(aggregator_fds_here(&id) == 0 ? 0 : 1);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);

	mplog_aggregator_free(agg);
	unlink(path);
	mpk_assert_no_children();
}
END_TEST

/* In a forked child the aggregator's fds were closed at the fork, and their
 * numbers may be the child's own files by the time it frees the
 * aggregator: freeing it there must close none of them. */
START_TEST(an_aggregator_freed_in_a_forked_child_closes_none_of_the_childs_fds)
{
	char path[] = "/tmp/mpkit-test-fds-XXXXXX";
	int tmp = mkstemp(path);
	ck_assert_int_ge(tmp, 0);
	close(tmp);
	mplog_aggregator *agg;
	mplog_sink *sink;
	mplog_child_fds cf;
	ck_assert_int_eq(mplog_aggregator_new(&agg), 0);
	ck_assert_int_eq(mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agg, sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_child(agg, "c", 0, MPLOG_CAPTURE_STDOUT, &cf), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int mine[16], n = 0, fd;
		while (n < 16 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
			mine[n++] = fd; /* the lowest numbers: the aggregator's were among them */
		mplog_aggregator_free(agg);
		for (int i = 0; i < n; i++)
			if (fcntl(mine[i], F_GETFD) < 0)
				_exit(1);
		_exit(0);
	}
	mplog_child_fds_close(&cf);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	mplog_aggregator_free(agg);
	unlink(path);
}
END_TEST

static Suite *fds_suite(void)
{
	Suite *s = suite_create("fds");
	TCase *tc = tcase_create("fds");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, a_map_returns_when_no_worker_can_be_started_and_the_slots_come_back);
	tcase_add_test(tc, a_result_the_parent_has_no_fd_for_is_not_the_workers_fault);
	tcase_add_test(tc, pool_new_at_a_low_fd_limit_fails_cleanly_or_works);
	tcase_add_test(tc, a_service_that_cannot_be_started_is_restarted_once_fds_are_free);
	tcase_add_test(tc, a_service_that_cannot_be_started_is_given_up_naming_the_cause);
	tcase_add_test(tc, workers_and_services_hold_none_of_an_aggregators_fds);
	tcase_add_test(tc, an_aggregator_freed_in_a_forked_child_closes_none_of_the_childs_fds);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(fds_suite)
