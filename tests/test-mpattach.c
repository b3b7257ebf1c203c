/* SPDX-License-Identifier: MIT */
/* The tools against real pools in this process: mpattach list shows the
 * workers and their tasks, stacks shows where a stuck task is, gdb (batch)
 * prints the stack of a worker paused after its crash, resume lets paused
 * workers go on, the control socket refuses another uid, and mplog live
 * follows a pool's log until it ends. */
#include "mpk-test.h"
#include <mpguard.h>
#include <mplog.h>

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <inttypes.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#ifndef MPLOG_PATH
#error "MPLOG_PATH must name the built mplog"
#endif
#ifndef MPATTACH_PATH
#error "MPATTACH_PATH must name the built tool"
#endif

static char rundir[64];
static int started[2] = {-1, -1}; /* tasks write their index when they run */
static int release[2] = {-1, -1}; /* one byte lets one stuck task end */

static void setup(void)
{
	strcpy(rundir, "/tmp/mpattach-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(rundir));
	/* Our own registry: other suites' pools do not show up. */
	char registry[128];
	snprintf(registry, sizeof registry, "%s/mpkit", rundir);
	setenv("MPKIT_REGISTRY", registry, 1);
	ck_assert_int_eq(pipe2(started, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(release, O_CLOEXEC), 0);
}

static void teardown(void)
{
	char dir[128];
	snprintf(dir, sizeof dir, "%s/mpkit", rundir);
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		(void)unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
	rmdir(dir);
	rmdir(rundir);
	for (int i = 0; i < 2; i++) {
		close(started[i]);
		close(release[i]);
	}
}

__attribute__((noinline)) void mpk_test_stuck_here(void)
{
	char c;
	while (read(release[0], &c, 1) < 0 && errno == EINTR)
		;
}

static int stuck_task(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	char line[32];
	int n = snprintf(line, sizeof line, "%zu\n", mpg_task_index(t));
	(void)!write(started[1], line, (size_t)n);
	mpk_test_stuck_here();
	return mpg_task_set_result(t, "ok", 2);
}

__attribute__((noinline)) void mpk_test_crash_here(void)
{
	volatile int *volatile bad = (int *)8; /* opaque to the compiler */
	*bad = 1;
}

static int crash_task(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)t; (void)in; (void)len; (void)ud;
	mpk_test_crash_here();
	return 0;
}

static int ok_task(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)ud;
	return mpg_task_set_result(t, in, len);
}

static mpg_pool *new_pool(unsigned workers, unsigned pause)
{
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, workers), 0);
	if (pause)
		ck_assert_int_eq(mpg_options_set_pause(o, pause, 60000), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	return p;
}

/* Run the tool; its stdout and stderr, together, into *out (malloc'd).
 * Returns its exit status. */
static int run_tool(char **out, const char *arg, ...)
{
	const char *argv[16] = {MPATTACH_PATH};
	int argc = 1;
	va_list ap;
	va_start(ap, arg);
	for (const char *a = arg; a && argc < 15; a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(fds[1]);
	/* Read until the tool has exited, not until EOF: a process forked
	 * meanwhile by another thread of ours (a supervisor starting its fork
	 * server) holds a copy of the pipe's write end, and EOF never comes. */
	int pidfd = pidfd_open(pid, 0);
	ck_assert_int_ge(pidfd, 0);
	ck_assert_int_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	for (bool exited = false;;) {
		ssize_t n = read(fds[0], buf + len, cap - len - 1);
		if (n > 0) {
			len += (size_t)n;
			if (cap - len < 1024)
				buf = realloc(buf, cap *= 2);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || exited)
			break; /* EOF, or all it wrote before it exited */
		struct pollfd pf[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
		if (poll(pf, 2, -1) > 0 && (pf[1].revents & POLLIN))
			exited = true; /* one more read takes what is left */
	}
	buf[len] = '\0';
	close(pidfd);
	close(fds[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	*out = buf;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const char *self(void)
{
	static char spec[16];
	snprintf(spec, sizeof spec, "%d", (int)getpid());
	return spec;
}

/* `mpattach list --json` of this process's pool. */
static json_object *list_json(void)
{
	char *out;
	int rc = run_tool(&out, "list", "--json", self(), NULL);
	ck_assert_msg(rc == 0, "mpattach list failed (%d): %s", rc, out);
	json_object *all = json_tokener_parse(out);
	ck_assert_msg(all && json_object_array_length(all) == 1, "bad list: %s", out);
	json_object *pool = json_object_get(json_object_array_get_idx(all, 0));
	json_object_put(all);
	free(out);
	return pool;
}

static json_object *worker_of(json_object *pool, size_t i)
{
	json_object *ws;
	ck_assert(json_object_object_get_ex(pool, "workers", &ws));
	return json_object_array_get_idx(ws, i);
}

static int64_t field(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

static const char *sfield(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

/* Wait (10 s at most) until worker i shows the state. */
static json_object *wait_state(size_t i, const char *state)
{
	for (int tries = 0; tries < 1000; tries++) {
		json_object *pool = list_json();
		if (strcmp(sfield(worker_of(pool, i), "state"), state) == 0)
			return pool;
		json_object_put(pool);
		poll(NULL, 0, 10);
	}
	ck_abort_msg("worker %zu never became %s", i, state);
	return NULL;
}

/* Both tasks of a 2-task map are running (their indices read back). */
static void wait_started(unsigned n)
{
	char buf[64];
	size_t got = 0;
	unsigned lines = 0;
	while (lines < n) {
		ssize_t r = read(started[0], buf + got, sizeof buf - 1 - got);
		ck_assert_int_gt(r, 0);
		for (ssize_t i = 0; i < r; i++)
			lines += buf[got + (size_t)i] == '\n';
		got += (size_t)r;
	}
}

struct map_call {
	mpg_pool *pool;
	mpg_task_fn fn;
	size_t n;
	int rc;
	mpg_results *res;
	unsigned timeout_ms;
};

static void *map_thread(void *arg)
{
	struct map_call *c = arg;
	static const mpg_buf in[4] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}};
	mpg_options *o;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	if (c->timeout_ms)
		ck_assert_int_eq(mpg_options_set_timeout(o, c->timeout_ms), 0);
	c->rc = mpg_map(c->pool, c->fn, in, c->n, o, &c->res);
	mpg_options_free(o);
	return NULL;
}

/* One version line format for both tools: "NAME (mpkit) VERSION". */
START_TEST(version_line_names_the_package)
{
	char *out;
	ck_assert_int_eq(run_tool(&out, "--version", NULL), 0);
	ck_assert_str_eq(out, "mpattach (mpkit) " MPKIT_VERSION "\n");
	free(out);
}
END_TEST

START_TEST(list_shows_workers_and_their_tasks)
{
	mpg_pool *p = new_pool(2, 0);
	struct map_call call = {.pool = p, .fn = stuck_task, .n = 2};
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, map_thread, &call), 0);
	wait_started(2);

	json_object *pool = list_json();
	ck_assert_int_eq(field(pool, "pid"), getpid());
	ck_assert_int_eq(field(pool, "tasks_total"), 2);
	ck_assert_int_eq(field(pool, "tasks_done"), 0);
	ck_assert_str_eq(sfield(pool, "state"), "running");
	int64_t tasks = 0;
	for (unsigned i = 0; i < 2; i++) {
		json_object *w = worker_of(pool, i);
		ck_assert_int_eq(field(w, "worker"), i);
		ck_assert_int_eq(field(w, "pid"), mpg_pool_worker_pid(p, i));
		ck_assert_str_eq(sfield(w, "state"), "busy");
		tasks |= 1 << field(w, "task"); /* tasks 0 and 1, one each */
		ck_assert_int_eq(field(w, "restarts"), 0);
	}
	ck_assert_int_eq(tasks, 3);
	json_object_put(pool);

	/* The human listing names the same. */
	char *out;
	ck_assert_int_eq(run_tool(&out, "list", NULL), 0);
	char want[64];
	snprintf(want, sizeof want, "pool %d.", (int)getpid());
	ck_assert_msg(strstr(out, want) && strstr(out, "busy") && strstr(out, "progress 0/2"),
		      "%s", out);
	free(out);

	ck_assert_int_eq(write(release[1], "xx", 2), 2);
	pthread_join(th, NULL);
	ck_assert_int_eq(call.rc, 0);
	ck_assert_uint_eq(mpg_results_failed(call.res), 0);
	mpg_results_free(call.res);

	pool = wait_state(0, "idle");
	ck_assert_int_eq(field(worker_of(pool, 0), "tasks_done") + field(worker_of(pool, 1), "tasks_done"), 2);
	json_object_put(pool);
	mpg_pool_free(p);
}
END_TEST

static int quick_task(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	return mpg_task_set_result(t, "ok", 2);
}

START_TEST(list_shows_a_submitted_task_by_its_number)
{
	mpg_pool *p = new_pool(1, 0);
	for (int k = 0; k < 3; k++) /* numbers 0, 1, 2 */
		ck_assert_int_eq(mpg_submit(p, quick_task, "x", 1, NULL, NULL, NULL, NULL, NULL), 0);
	ck_assert_int_eq(mpg_pool_wait(p, -1), 0);
	mpg_future *f;
	ck_assert_int_eq(mpg_submit(p, stuck_task, "x", 1, NULL, NULL, NULL, NULL, &f), 0);
	wait_started(1);
	json_object *pool = list_json();
	ck_assert_str_eq(sfield(worker_of(pool, 0), "state"), "busy");
	ck_assert_int_eq(field(worker_of(pool, 0), "task"), 3);
	json_object_put(pool);
	ck_assert_int_eq(write(release[1], "x", 1), 1);
	ck_assert_int_eq(mpg_future_wait(f, -1), 0);
	mpg_future_free(f);
	mpg_pool_free(p);
}
END_TEST

START_TEST(stacks_show_where_tasks_are_stuck)
{
	mpg_pool *p = new_pool(2, 0);
	struct map_call call = {.pool = p, .fn = stuck_task, .n = 2};
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, map_thread, &call), 0);
	wait_started(2);

	char *out;
	int rc = run_tool(&out, "stacks", self(), NULL);
	ck_assert_msg(rc == 0, "stacks failed (%d): %s", rc, out);
	for (unsigned i = 0; i < 2; i++) {
		char hdr[64];
		snprintf(hdr, sizeof hdr, "=== worker %u (pid %d, busy, task ", i,
			 (int)mpg_pool_worker_pid(p, i));
		ck_assert_msg(strstr(out, hdr), "no \"%s\" in:\n%s", hdr, out);
	}
	/* Both workers are in the function, under the task. */
	const char *first = strstr(out, "mpk_test_stuck_here");
	ck_assert_msg(first && strstr(first + 1, "mpk_test_stuck_here"), "%s", out);
	ck_assert_msg(strstr(out, "stuck_task"), "%s", out);
	free(out);

	ck_assert_int_eq(write(release[1], "xx", 2), 2);
	pthread_join(th, NULL);
	ck_assert_int_eq(call.rc, 0);
	ck_assert_uint_eq(mpg_results_failed(call.res), 0); /* detached, unharmed */
	mpg_results_free(call.res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(gdb_prints_the_stack_of_a_worker_paused_after_its_crash)
{
	/* From the environment, as a program that chose nothing gets it. */
	setenv("MPKIT_PAUSE", "crash", 1);
	mpg_pool *p = new_pool(1, 0);
	unsetenv("MPKIT_PAUSE");
	/* A time limit far below the pause: paused time does not count. */
	struct map_call call = {.pool = p, .fn = crash_task, .n = 1, .timeout_ms = 50};
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, map_thread, &call), 0);
	json_object *pool = wait_state(0, "paused");
	ck_assert_str_eq(sfield(pool, "pause"), "crash");
	ck_assert_int_eq(field(worker_of(pool, 0), "task"), 0);
	pid_t crashed = (pid_t)field(worker_of(pool, 0), "pid");
	json_object_put(pool);

	char *out;
	int rc = run_tool(&out, "gdb", self(), "0", "--", "-batch", "-ex", "bt", NULL);
	ck_assert_msg(rc == 0, "gdb failed (%d): %s", rc, out);
	/* The crash handler's frame, the signal frame, then the fault. */
	const char *sig = strstr(out, "<signal handler called>");
	ck_assert_msg(sig, "%s", out);
	ck_assert_msg(strstr(sig, "mpk_test_crash_here") && strstr(sig, "crash_task"), "%s", out);
	free(out);

	/* Still paused after gdb detached; resume lets it die of its crash. */
	ck_assert_int_eq(run_tool(&out, "resume", self(), "0", NULL), 0);
	ck_assert_msg(strstr(out, "resumed 1 worker"), "%s", out);
	free(out);
	pthread_join(th, NULL);
	ck_assert_int_eq(call.rc, 0);
	const mpg_error *e = mpg_results_error(call.res, 0);
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(mpg_error_get_kind(e), MPG_ERR_SIGNALED);
	ck_assert_int_eq(mpg_error_signal(e), SIGSEGV);
	ck_assert_int_eq(mpg_error_pid(e), crashed);
	ck_assert_ptr_nonnull(strstr(mpg_error_backtrace(e), "mpk_test_crash_here"));
	mpg_results_free(call.res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(workers_paused_at_start_run_after_resume)
{
	mpg_pool *p = new_pool(2, MPG_PAUSE_AT_START);
	for (unsigned i = 0; i < 2; i++)
		json_object_put(wait_state(i, "paused"));
	struct map_call call = {.pool = p, .fn = ok_task, .n = 4};
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, map_thread, &call), 0);
	/* Nothing runs while they are paused. */
	json_object *pool;
	for (int tries = 0; field(pool = list_json(), "tasks_total") != 4; tries++) {
		ck_assert_int_lt(tries, 1000); /* the call reaches the pool soon */
		json_object_put(pool);
		poll(NULL, 0, 10);
	}
	ck_assert_int_eq(field(pool, "tasks_done"), 0);
	ck_assert_str_eq(sfield(worker_of(pool, 0), "state"), "paused");
	json_object_put(pool);

	char *out;
	ck_assert_int_eq(run_tool(&out, "resume", NULL), 0);
	ck_assert_msg(strstr(out, "resumed 2 workers"), "%s", out);
	free(out);
	pthread_join(th, NULL);
	ck_assert_int_eq(call.rc, 0);
	ck_assert_uint_eq(mpg_results_failed(call.res), 0);
	mpg_results_free(call.res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(a_pause_ends_at_its_timeout)
{
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 1), 0);
	ck_assert_int_eq(mpg_options_set_pause(o, MPG_PAUSE_AT_START, 200), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	/* Nobody resumes it: the map still completes, after the pause. */
	static const mpg_buf in[2] = {{"a", 1}, {"b", 1}};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, ok_task, in, 2, NULL, &res), 0);
	ck_assert_uint_eq(mpg_results_failed(res), 0);
	mpg_results_free(res);
	mpg_pool_free(p);
}
END_TEST

START_TEST(tool_errors_are_clear)
{
	char *out;
	ck_assert_int_eq(run_tool(&out, "list", NULL), 0); /* none: not an error */
	ck_assert_msg(strstr(out, "no running pool"), "%s", out);
	free(out);
	ck_assert_int_eq(run_tool(&out, "stacks", "1", NULL), 1);
	ck_assert_msg(strstr(out, "no running pool 1"), "%s", out);
	free(out);
	ck_assert_int_eq(run_tool(&out, "frobnicate", NULL), 2);
	ck_assert_msg(strstr(out, "unknown command"), "%s", out);
	free(out);
	ck_assert_int_eq(run_tool(&out, "--help", NULL), 0);
	ck_assert_msg(strstr(out, "Usage: mpattach"), "%s", out);
	free(out);

	mpg_pool *p = new_pool(2, 0);
	ck_assert_int_eq(run_tool(&out, "gdb", self(), "7", "--", "-batch", NULL), 1);
	ck_assert_msg(strstr(out, "no worker \"7\""), "%s", out);
	free(out);
	ck_assert_int_eq(run_tool(&out, "resume", "x.y", NULL), 1);
	ck_assert_msg(strstr(out, "no worker \"x.y\""), "%s", out);
	free(out);
	mpg_pool_free(p);
	/* The pool's entry went with it. */
	int rc = run_tool(&out, "list", NULL);
	ck_assert_msg(rc == 0 && strstr(out, "no running pool"), "%d: %s", rc, out);
	free(out);
}
END_TEST

/* resume's synopsis is [POOL] [WORKER|all]: a lone PID or PID.N is the
 * pool, and all its paused workers go on. */
START_TEST(resume_with_a_lone_pool_resumes_that_pool)
{
	mpg_pool *p = new_pool(2, MPG_PAUSE_AT_START);
	for (unsigned i = 0; i < 2; i++)
		json_object_put(wait_state(i, "paused"));
	char *out;
	int rc = run_tool(&out, "resume", self(), NULL);
	ck_assert_msg(rc == 0 && strstr(out, "resumed 2 workers"), "%d: %s", rc, out);
	free(out);
	for (unsigned i = 0; i < 2; i++)
		json_object_put(wait_state(i, "idle"));
	/* PID.N too, and a worker after it as before. */
	json_object *pool = list_json();
	char spec[32];
	snprintf(spec, sizeof spec, "%s.%" PRId64, self(), field(pool, "pool"));
	json_object_put(pool);
	rc = run_tool(&out, "resume", spec, NULL);
	ck_assert_msg(rc == 0 && strstr(out, "resumed 0 workers"), "%d: %s", rc, out);
	free(out);
	rc = run_tool(&out, "resume", spec, "1", NULL);
	ck_assert_msg(rc == 0 && strstr(out, "resumed 0 workers"), "%d: %s", rc, out);
	free(out);
	mpg_pool_free(p);
}
END_TEST

/* PID.N of a process that has pools, but not that one: the ones it has. */
START_TEST(a_pool_number_that_does_not_exist_names_the_ones_that_do)
{
	mpg_pool *p = new_pool(1, 0);
	json_object *pool = list_json();
	int64_t n = field(pool, "pool");
	json_object_put(pool);
	char spec[48], want[160];
	snprintf(spec, sizeof spec, "%s.%" PRId64, self(), n + 5);
	snprintf(want, sizeof want, "no pool %s: process %s has only %s.%" PRId64 " ", spec, self(),
		 self(), n);
	char *out;
	int rc = run_tool(&out, "list", spec, NULL);
	ck_assert_msg(rc == 1 && strstr(out, want) && !strstr(out, "registered none"), "%d: %s", rc,
		      out);
	free(out);
	rc = run_tool(&out, "gdb", spec, "0", NULL);
	ck_assert_msg(rc == 1 && strstr(out, want), "%d: %s", rc, out);
	free(out);
	mpg_pool_free(p);
}
END_TEST

/* In a mount namespace of its own, a Yama setting of scope (whether or
 * not this kernel has Yama): /proc/sys/kernel becomes a tmpfs holding
 * yama/ptrace_scope. Returns false when that cannot be done. Forked from
 * a process without threads. */
static bool fake_ptrace_scope(int scope)
{
	char v[4];
	int n = snprintf(v, sizeof v, "%d\n", scope);
	int fd;
	return unshare(CLONE_NEWNS) == 0 &&
	       mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
	       mount("mpattach-test", "/proc/sys/kernel", "tmpfs", MS_NOSUID | MS_NODEV, NULL) == 0 &&
	       mkdir("/proc/sys/kernel/yama", 0755) == 0 &&
	       (fd = open("/proc/sys/kernel/yama/ptrace_scope", O_WRONLY | O_CREAT | O_CLOEXEC,
			  0644)) >= 0 &&
	       write(fd, v, (size_t)n) == n && close(fd) == 0;
}

/* In a child with a fake Yama scope 2, as uid (or as root: uid < 0): a
 * pool of its own and `mpattach gdb` at its worker, gdb told to print a
 * word if it runs at all. The tool's output into *out; its exit status,
 * or 77 when the namespace could not be made. */
static int gdb_at_scope_2(int uid, const char *registry, char **out)
{
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	pid_t pid = fork(); /* no thread yet: the child may do anything */
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		if (!fake_ptrace_scope(2))
			_exit(77);
		if (uid >= 0 && (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 ||
				 setuid((uid_t)uid) < 0))
			_exit(3);
		setenv("MPKIT_REGISTRY", registry, 1);
		mpg_pool *p = new_pool(1, 0);
		json_object_put(wait_state(0, "idle"));
		char *text;
		int rc = run_tool(&text, "gdb", self(), "0", "--", "-batch", "-ex",
				  "echo GDB-RAN\\n", NULL);
		(void)!write(fds[1], text, strlen(text));
		free(text);
		mpg_pool_free(p);
		_exit(rc);
	}
	close(fds[1]);
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	ssize_t n;
	while ((n = read(fds[0], buf + len, cap - len - 1)) > 0)
		if ((len += (size_t)n) + 1024 > cap)
			buf = realloc(buf, cap *= 2);
	buf[len] = '\0';
	close(fds[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "status %#x: %s", status, buf);
	*out = buf;
	return WEXITSTATUS(status);
}

/* Yama's scope 2 lets only CAP_SYS_PTRACE attach: a user without it is
 * told so, and what to do, instead of gdb's "Operation not permitted";
 * root still attaches. */
START_TEST(gdb_at_ptrace_scope_2_is_explained_and_root_still_attaches)
{
	if (geteuid() != 0) {
		fprintf(stderr, "gdb_at_ptrace_scope_2_is_explained_and_root_still_attaches: SKIP: "
				"needs root to fake Yama's setting in a mount namespace\n");
		return;
	}
	struct passwd *pw = getpwnam("nobody");
	uid_t uid = pw ? pw->pw_uid : 65534;
	char registry[64] = "/tmp/mpattach-nobody-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(registry));
	ck_assert_int_eq(chown(registry, uid, (gid_t)uid), 0);
	char *out;
	int rc = gdb_at_scope_2((int)uid, registry, &out);
	rmdir(registry);
	if (rc == 77) {
		fprintf(stderr, "gdb_at_ptrace_scope_2_is_explained_and_root_still_attaches: SKIP: "
				"no mount namespace here\n");
		free(out);
		return;
	}
	ck_assert_msg(rc == 1 && strstr(out, "ptrace_scope is 2") && strstr(out, "sudo gdb -p ") &&
			      !strstr(out, "GDB-RAN") && !strstr(out, "not permitted"),
		      "%d: %s", rc, out);
	free(out);
	char mine[128];
	snprintf(mine, sizeof mine, "%s/mpkit", rundir);
	rc = gdb_at_scope_2(-1, mine, &out);
	ck_assert_msg(rc == 0 && strstr(out, "GDB-RAN"), "%d: %s", rc, out);
	free(out);
	mpk_assert_no_children();
}
END_TEST

/* Send one request as uid nobody; the reply line into buf. */
static void ask_as_nobody(const char *path, char *buf, size_t size, int *connect_errno)
{
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	struct passwd *pw = getpwnam("nobody");
	uid_t uid = pw ? pw->pw_uid : 65534;
	gid_t gid = pw ? pw->pw_gid : 65534;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	pid_t pid = fork();
	if (pid == 0) {
		/* Forked from a threaded process: system calls only. */
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
			_exit(3);
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
			int e = errno;
			(void)!write(fds[1], &e, sizeof e);
			_exit(0);
		}
		(void)!send(s, "info\n", 5, MSG_NOSIGNAL); /* it may have hung up */
		char r[512];
		ssize_t n = read(s, r, sizeof r);
		(void)!write(fds[1], r, n > 0 ? (size_t)n : 0);
		_exit(0);
	}
	close(fds[1]);
	ssize_t n, got = 0;
	while ((n = read(fds[0], buf + got, size - 1 - (size_t)got)) > 0)
		got += n;
	buf[got] = '\0';
	close(fds[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "could not become nobody (status %#x)", status);
	*connect_errno = 0;
	if (got == sizeof(int))
		memcpy(connect_errno, buf, sizeof(int));
}

START_TEST(socket_refuses_another_uid)
{
	if (geteuid() != 0) {
		fprintf(stderr, "socket_refuses_another_uid: SKIP: needs root to run a part as nobody\n");
		return;
	}
	mpg_pool *p = new_pool(1, 0);
	char path[512], dir[128];
	snprintf(dir, sizeof dir, "%s/mpkit", rundir);
	snprintf(path, sizeof path, "%s/%d.", dir, (int)getpid());
	DIR *d = opendir(dir);
	struct dirent *e;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, path + strlen(dir) + 1, strlen(path) - strlen(dir) - 1) == 0)
			break;
	ck_assert_ptr_nonnull(e);
	snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
	closedir(d);
	struct stat st;
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);

	char reply[512];
	int err;
	/* The modes keep nobody out... */
	ask_as_nobody(path, reply, sizeof reply, &err);
	ck_assert_msg(err == EACCES, "nobody got in: %s", reply);
	/* ...and with them opened up, the pool's uid check still does. */
	ck_assert_int_eq(chmod(rundir, 0711), 0);
	ck_assert_int_eq(chmod(dir, 0711), 0);
	ck_assert_int_eq(chmod(path, 0666), 0);
	ask_as_nobody(path, reply, sizeof reply, &err);
	ck_assert_int_eq(err, 0);
	ck_assert_msg(strstr(reply, "\"ok\":false") && strstr(reply, "permission denied") &&
		      !strstr(reply, "workers"), "%s", reply);
	/* The tool will not trust a registry others can enter. */
	char *out;
	ck_assert_int_eq(run_tool(&out, "list", NULL), 1);
	ck_assert_msg(strstr(out, "mode 0700"), "%s", out);
	free(out);
	/* The pool goes on serving its own user. */
	ck_assert_int_eq(chmod(dir, 0700), 0);
	json_object *pool = list_json();
	ck_assert_int_eq(field(pool, "pid"), getpid());
	json_object_put(pool);
	mpg_pool_free(p);
}
END_TEST

/* The control socket of this process's only pool, into path. */
static void pool_socket(char *path, size_t size)
{
	char dir[128], prefix[32];
	snprintf(dir, sizeof dir, "%s/mpkit", rundir);
	snprintf(prefix, sizeof prefix, "%d.", (int)getpid());
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *e;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			break;
	ck_assert_ptr_nonnull(e);
	snprintf(path, size, "%s/%s", dir, e->d_name);
	closedir(d);
}

/* One request on a fresh connection; the reply line into buf. */
static void ask_once(const char *path, const char *req, char *buf, size_t size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(connect(s, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(send(s, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	ssize_t n, got = 0;
	while (!memchr(buf, '\n', (size_t)got) && (n = read(s, buf + got, size - 1 - (size_t)got)) > 0)
		got += n;
	buf[got] = '\0';
	close(s);
}

/* The grant is for the process that connected: one that has exited left
 * its pid free for another process, which must not be named. Here the
 * connection outlives it (a child of its holds the socket) and asks. */
START_TEST(a_ptrace_grant_goes_only_to_a_live_peer)
{
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0); /* the grandchild is ours */
	mpg_pool *p = new_pool(1, 0);
	char path[512], reply[512];
	pool_socket(path, sizeof path);
	/* From a live peer, the grant is made. */
	ask_once(path, "ptrace 0\n", reply, sizeof reply);
	ck_assert_msg(strstr(reply, "\"ok\":true"), "%s", reply);

	int go[2], res[2];
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	pid_t connector = fork();
	ck_assert_int_ge(connector, 0);
	if (connector == 0) {
		/* Forked from a threaded process: system calls only. */
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0)
			_exit(3);
		pid_t asker = fork();
		if (asker < 0)
			_exit(4);
		if (asker == 0) {
			char c, r[512];
			if (read(go[0], &c, 1) != 1) /* the connector is gone */
				_exit(5);
			if (send(s, "ptrace 0\n", 9, MSG_NOSIGNAL) != 9)
				_exit(6);
			ssize_t n = read(s, r, sizeof r);
			(void)!write(res[1], r, n > 0 ? (size_t)n : 0);
			_exit(0);
		}
		_exit(0);
	}
	close(go[0]);
	close(res[1]);
	int status;
	ck_assert_int_eq(waitpid(connector, &status, 0), connector);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	/* Reaped: its pid may be anyone's now. */
	ck_assert_int_eq(write(go[1], "x", 1), 1);
	close(go[1]);
	ssize_t n, got = 0;
	while ((n = read(res[0], reply + got, sizeof reply - 1 - (size_t)got)) > 0)
		got += n;
	reply[got] = '\0';
	close(res[0]);
	ck_assert_int_gt(waitpid(-1, &status, 0), 0); /* the asker */
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	ck_assert_msg(strstr(reply, "\"ok\":false") && strstr(reply, "has exited"), "%s", reply);
	char want[64];
	snprintf(want, sizeof want, "(pid %d)", (int)connector);
	ck_assert_msg(strstr(reply, want), "%s", reply);
	mpg_pool_free(p);
	mpk_assert_no_children();
}
END_TEST

/* A child that blocks until its pipe closes, as uid (or as us: uid < 0);
 * returned once it is that uid. */
static pid_t start_sleeper(int uid, int *hold)
{
	int fds[2], ready[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Forked from a threaded process: system calls only. */
		close(fds[1]);
		close(ready[0]);
		if (uid >= 0 && (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 ||
				 setuid((uid_t)uid) < 0))
			_exit(3);
		close(ready[1]); /* EOF: it is who it should be */
		char c;
		while (read(fds[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(fds[0]);
	close(ready[1]);
	char c;
	while (read(ready[0], &c, 1) < 0 && errno == EINTR)
		;
	close(ready[0]);
	*hold = fds[1];
	return pid;
}

static void stop_sleeper(pid_t pid, int hold)
{
	close(hold);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
}

START_TEST(a_pid_without_a_pool_of_ours_is_explained)
{
	char *out, spec[32];
	int hold;
	/* A process of ours that runs no pool. */
	pid_t pid = start_sleeper(-1, &hold);
	snprintf(spec, sizeof spec, "%d", (int)pid);
	ck_assert_int_eq(run_tool(&out, "stacks", spec, NULL), 1);
	ck_assert_msg(strstr(out, "has registered none") && strstr(out, "MPKIT_CONTROL=0"), "%s",
		      out);
	free(out);
	stop_sleeper(pid, hold);
	/* A process that is gone: a pid above pid_max, which no process can
	 * have (the sleeper's own may be reused at once). */
	FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
	long pid_max = 0;
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%ld", &pid_max), 1);
	fclose(f);
	snprintf(spec, sizeof spec, "%ld", pid_max + 1);
	ck_assert_int_eq(run_tool(&out, "gdb", spec, "0", NULL), 1);
	ck_assert_msg(strstr(out, "no process"), "%s", out);
	free(out);
	if (geteuid() != 0) {
		fprintf(stderr, "a_pid_without_a_pool_of_ours_is_explained: SKIP (another "
				"user's process): needs root to run a part as nobody\n");
		return;
	}
	/* Another user's process: its pools answer that user only. */
	struct passwd *pw = getpwnam("nobody");
	pid = start_sleeper(pw ? (int)pw->pw_uid : 65534, &hold);
	snprintf(spec, sizeof spec, "%d", (int)pid);
	ck_assert_int_eq(run_tool(&out, "gdb", spec, "0", NULL), 1);
	ck_assert_msg(strstr(out, "belongs to uid") && strstr(out, "run mpattach as that user"),
		      "%s", out);
	free(out);
	stop_sleeper(pid, hold);
}
END_TEST

/* A pool started without XDG_RUNTIME_DIR (cron, sudo) registers in
 * /tmp/mpkit-<uid>; a tool run from a session that has one finds it. */
START_TEST(a_pool_of_another_environment_is_found)
{
	char registry[128];
	snprintf(registry, sizeof registry, "%s", getenv("MPKIT_REGISTRY"));
	unsetenv("MPKIT_REGISTRY");
	unsetenv("XDG_RUNTIME_DIR");
	mpg_pool *p = new_pool(1, 0);
	setenv("XDG_RUNTIME_DIR", rundir, 1); /* the tool's: nothing there */
	json_object *pool = list_json();
	ck_assert_int_eq(field(pool, "pid"), getpid());
	json_object_put(pool);
	mpg_pool_free(p);
	setenv("MPKIT_REGISTRY", registry, 1);
}
END_TEST

static int log_task(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	mplog_info("hello from task %zu", mpg_task_index(t));
	return 0;
}

/* Start `mplog ARGS... live SPEC`; its stdout and stderr pipes. */
static pid_t start_mplog(int *out, int *err, const char *opt)
{
	int o[2], e[2];
	ck_assert_int_eq(pipe2(o, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(e, O_CLOEXEC), 0);
	const char *argv[] = {MPLOG_PATH, "--color=never", opt ? opt : "live", opt ? "live" : self(),
			      opt ? self() : NULL, NULL};
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(o[1], 1);
		dup2(e[1], 2);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	*out = o[0];
	*err = e[0];
	return pid;
}

/* Read fd until its text holds want (or EOF). */
static char *read_until(int fd, const char *want)
{
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	buf[0] = '\0';
	while (!want || !strstr(buf, want)) {
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		ck_assert_uint_lt(len, cap - 1);
	}
	return buf;
}

START_TEST(mplog_live_follows_a_running_pool_until_it_ends)
{
	mpg_pool *p = new_pool(2, 0);
	int out, err, out2, err2;
	pid_t all = start_mplog(&out, &err, NULL);
	pid_t one = start_mplog(&out2, &err2, "--task=1");
	/* Once it says it follows, every later record reaches it. */
	char *text = read_until(err, "following the log of pool");
	ck_assert_msg(strstr(text, "following the log of pool"), "%s", text);
	free(text);
	text = read_until(err2, "following the log of pool");
	ck_assert_msg(strstr(text, "following the log of pool"), "%s", text);
	free(text);

	static const mpg_buf in[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, log_task, in, 3, NULL, &res), 0);
	mpg_results_free(res);
	mpg_pool_free(p); /* the socket closes: mplog ends */

	text = read_until(out, NULL);
	for (int i = 0; i < 3; i++) {
		char want[64];
		snprintf(want, sizeof want, "task %d] hello from task %d", i, i);
		ck_assert_msg(strstr(text, want), "no \"%s\" in:\n%s", want, text);
	}
	free(text);
	text = read_until(out2, NULL);
	ck_assert_msg(strstr(text, "hello from task 1") && !strstr(text, "hello from task 0") &&
		      !strstr(text, "hello from task 2"), "%s", text);
	free(text);
	int status;
	ck_assert_int_eq(waitpid(all, &status, 0), all);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(waitpid(one, &status, 0), one);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(out), close(err), close(out2), close(err2);
}
END_TEST

static int log_later(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	mplog_info("later %zu", mpg_task_index(t));
	return 0;
}

/* live -n N: the last N records first, then the new ones, each once. */
START_TEST(mplog_live_with_a_backlog)
{
	mpg_pool *p = new_pool(2, 0);
	static const mpg_buf in[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
	mpg_results *res;
	ck_assert_int_eq(mpg_map(p, log_task, in, 3, NULL, &res), 0);
	mpg_results_free(res);
	/* The hellos are in the log pipes; in the log (the backlog) now. */
	ck_assert_int_eq(mplog_aggregator_flush(mpg_pool_log(p)), 0);
	int out, err;
	pid_t pid = start_mplog(&out, &err, "--lines=2");
	char *text = read_until(err, "following the log of pool");
	ck_assert_msg(strstr(text, "following the log of pool"), "%s", text);
	free(text);
	ck_assert_int_eq(mpg_map(p, log_later, in, 3, NULL, &res), 0);
	mpg_results_free(res);
	mpg_pool_free(p);
	text = read_until(out, NULL);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Two of the three hellos (which two: the order the log got them):
	 * the records before the reply, none of those after. */
	int hellos = 0;
	for (const char *q = text; (q = strstr(q, "hello from task")); q++)
		hellos++;
	ck_assert_msg(hellos == 2, "%s", text);
	for (int i = 0; i < 3; i++) {
		char want[32];
		snprintf(want, sizeof want, "later %d", i);
		const char *at = strstr(text, want);
		ck_assert_msg(at && !strstr(at + 1, want), "\"%s\" not once in:\n%s", want, text);
		ck_assert(strstr(text, "hello from task") < at);
	}
	free(text);
	close(out), close(err);
}
END_TEST

START_TEST(mplog_live_needs_a_pool_with_a_log)
{
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_log(o, NULL), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	int out, err, status;
	pid_t pid = start_mplog(&out, &err, NULL);
	char *text = read_until(err, NULL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1 && strstr(text, "has no log"),
		      "%s", text);
	free(text);
	close(out), close(err);
	mpg_pool_free(p);
}
END_TEST

/* Run python3's strict JSON parser (and UTF-8 decoder) on text; what the
 * script prints from it (d: the parsed value) into *out. Returns its exit
 * status, or 77 if there is no python3. */
static int python_json(const char *text, const char *script, char **out)
{
	char prog[1024];
	snprintf(prog, sizeof prog,
		 "import json, sys\n"
		 "d = json.loads(sys.stdin.buffer.read().decode('utf-8', 'strict'))\n"
		 "%s\n", script);
	int in[2], o[2];
	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(o, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(o[1], 1);
		dup2(o[1], 2);
		execlp("python3", "python3", "-c", prog, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(o[1]);
	size_t len = strlen(text);
	ck_assert_int_eq(write(in[1], text, len), (ssize_t)len); /* small: fits the pipe */
	close(in[1]);
	*out = read_until(o[0], NULL);
	close(o[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status) == 127 ? 77 : WEXITSTATUS(status);
}

START_TEST(list_json_is_valid_for_a_name_in_bad_utf8)
{
	/* A Latin-1 program name, as argv[0] may be: not UTF-8. */
	char *saved = program_invocation_name;
	program_invocation_name = (char *)"op\xe9s \x01\"";
	mpg_pool *p = new_pool(1, 0);
	char *out, *py;
	int rc = run_tool(&out, "list", "--json", self(), NULL);
	program_invocation_name = saved;
	ck_assert_msg(rc == 0, "%s", out);
	rc = python_json(out, "print(ascii(d[0]['program']))", &py);
	if (rc == 77) {
		fprintf(stderr, "list_json_is_valid_for_a_name_in_bad_utf8: SKIP: no python3\n");
	} else {
		/* The bad byte is U+FFFD, the control character escaped. */
		ck_assert_msg(rc == 0 && strcmp(py, "'op\\ufffds \\x01\"'\n") == 0,
			      "python3 (%d): %s\non: %s", rc, py, out);
	}
	free(py);
	free(out);
	mpg_pool_free(p);
}
END_TEST

/* ---- supervisors ---------------------------------------------------------- */

static int tokens[2] = {-1, -1}; /* a byte there: the flaky service fails once */

/* Runs until released; tells when it started. */
static int stuck_service(void *ud)
{
	(void)ud;
	(void)!write(started[1], "s\n", 2);
	mpk_test_stuck_here();
	return 0;
}

/* Fails while there is a token, then runs like stuck_service. */
static int flaky_service(void *ud)
{
	char c;
	if (read(tokens[0], &c, 1) == 1)
		return 3;
	return stuck_service(ud);
}

static int crash_service(void *ud)
{
	(void)ud;
	mpk_test_crash_here();
	return 0;
}

static int logging_service(void *ud)
{
	(void)ud;
	char c;
	while (read(release[0], &c, 1) < 0 && errno == EINTR)
		;
	mplog_info("hello from the service");
	return 0;
}

struct sup_run {
	mpg_supervisor *sup;
	pthread_t th;
	int rc;
	pthread_mutex_t lock;  /* the records the log's callback sink saw: */
	char records[8192];
	size_t len;
	mpg_error_kind kind;   /* the last failure's */
	int sig;
	unsigned failures;
};

static void *sup_thread(void *arg)
{
	struct sup_run *r = arg;
	r->rc = mpg_supervisor_run(r->sup);
	return NULL;
}

static void on_record(const mplog_record *rec, void *ud)
{
	struct sup_run *r = ud;
	char line[1024];
	ssize_t n = mplog_record_format(rec, MPLOG_FORMAT_TEXT, 0, line, sizeof line);
	pthread_mutex_lock(&r->lock);
	if (n > 0 && r->len + (size_t)n < sizeof r->records) {
		memcpy(r->records + r->len, line, (size_t)n);
		r->len += (size_t)n;
		r->records[r->len] = '\0';
	}
	pthread_mutex_unlock(&r->lock);
}

static void on_failure(const mpg_error *e, void *ud)
{
	struct sup_run *r = ud;
	r->kind = mpg_error_get_kind(e);
	r->sig = mpg_error_signal(e);
	r->failures++;
}

/* A supervisor of the given services (fn NULL ends the list), its log
 * also seen by a callback sink; not running yet. */
static struct sup_run *new_supervisor(const char *const *names, const mpg_service_fn *fns,
				      mpg_restart restart)
{
	struct sup_run *r = calloc(1, sizeof *r);
	pthread_mutex_init(&r->lock, NULL);
	ck_assert_int_eq(mpg_supervisor_new(&r->sup), 0);
	for (int i = 0; fns[i]; i++)
		ck_assert_int_eq(mpg_supervisor_add(r->sup, names[i], fns[i], NULL, restart), i);
	ck_assert_int_eq(mpg_supervisor_set_error_callback(r->sup, on_failure, r), 0);
	mplog_sink *sink;
	ck_assert_int_eq(mplog_sink_new_callback(on_record, r, &sink), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(mpg_supervisor_log(r->sup), sink), 0);
	return r;
}

static void start_supervisor(struct sup_run *r)
{
	ck_assert_int_eq(pthread_create(&r->th, NULL, sup_thread, r), 0);
}

/* Wait for the run to end; returns what it returned. */
static int join_supervisor(struct sup_run *r)
{
	pthread_join(r->th, NULL);
	return r->rc;
}

static void free_supervisor(struct sup_run *r)
{
	mpg_supervisor_free(r->sup);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Wait (10 s at most) until the supervisor is registered and service i
 * shows the state, with a pid if it is one that has a process. */
static json_object *wait_service(size_t i, const char *state)
{
	bool with_pid = strcmp(state, "running") == 0 || strcmp(state, "paused") == 0;
	for (int tries = 0; tries < 1000; tries++) {
		/* mpg_supervisor_run(), on its thread, may not have registered yet */
		char *out;
		int rc = run_tool(&out, "list", "--json", self(), NULL);
		json_object *sup = rc == 0 ? json_tokener_parse(out) : NULL;
		free(out);
		if (!sup) {
			poll(NULL, 0, 10);
			continue;
		}
		json_object *all = sup;
		sup = json_object_get(json_object_array_get_idx(all, 0));
		json_object_put(all);
		json_object *w = worker_of(sup, i);
		if (strcmp(sfield(w, "state"), state) == 0 && (!with_pid || field(w, "pid") > 0))
			return sup;
		json_object_put(sup);
		poll(NULL, 0, 10);
	}
	ck_abort_msg("service %zu never became %s", i, state);
	return NULL;
}

/* The name the kernel has for process pid. */
static void comm_of(pid_t pid, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(buf, (int)size, f));
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

START_TEST(list_shows_a_supervisors_services_by_name)
{
	ck_assert_int_eq(pipe2(tokens, O_CLOEXEC | O_NONBLOCK), 0);
	ck_assert_int_eq(write(tokens[1], "x", 1), 1); /* flaky fails once */
	/* A Latin-1 name too: the JSON says U+FFFD for its bad byte. */
	static const char *const names[] = {"fetcher", "op\xe9s"};
	static const mpg_service_fn fns[] = {stuck_service, flaky_service, NULL};
	struct sup_run *r = new_supervisor(names, fns, MPG_RESTART_PERMANENT);
	start_supervisor(r);
	wait_started(2);
	json_object_put(wait_service(0, "running"));
	json_object *sup = wait_service(1, "running");
	ck_assert_str_eq(sfield(sup, "kind"), "supervisor");
	ck_assert_int_eq(field(sup, "pid"), getpid());
	ck_assert_str_eq(sfield(sup, "state"), "running");
	ck_assert_int_eq(field(sup, "tasks_total"), -1); /* no tasks here */
	for (unsigned i = 0; i < 2; i++) {
		json_object *w = worker_of(sup, i);
		ck_assert_int_eq(field(w, "worker"), i);
		char comm[32], want[32];
		comm_of((pid_t)field(w, "pid"), comm, sizeof comm);
		snprintf(want, sizeof want, "mpg-service-%u", i);
		ck_assert_str_eq(comm, want);
		ck_assert_int_eq(field(w, "restarts"), i); /* flaky failed once */
		ck_assert_int_eq(field(w, "task"), -1);
	}
	ck_assert_str_eq(sfield(worker_of(sup, 0), "name"), "fetcher");
	ck_assert_str_eq(sfield(worker_of(sup, 1), "name"), "op\xef\xbf\xbds");
	json_object_put(sup);

	char *out, *py;
	ck_assert_int_eq(run_tool(&out, "list", "--json", NULL), 0);
	int rc = python_json(out, "print(ascii([w['name'] for w in d[0]['workers']]))", &py);
	if (rc != 77)
		ck_assert_msg(rc == 0 && strcmp(py, "['fetcher', 'op\\ufffds']\n") == 0, "%d: %s", rc,
			      py);
	free(py);
	free(out);

	/* The human listing: the supervisor, its services by name. */
	ck_assert_int_eq(run_tool(&out, "list", NULL), 0);
	char want[64];
	snprintf(want, sizeof want, "supervisor %d.", (int)getpid());
	ck_assert_msg(strstr(out, want) && strstr(out, "SERVICE") && strstr(out, "fetcher") &&
		      strstr(out, "running"), "%s", out);
	free(out);

	ck_assert_int_eq(mpg_supervisor_stop(r->sup), 0);
	ck_assert_int_eq(join_supervisor(r), -EINTR);
	ck_assert_uint_eq(r->failures, 1);
	free_supervisor(r);
	close(tokens[0]);
	close(tokens[1]);
	/* Its entry went with the run. */
	ck_assert_int_eq(run_tool(&out, "list", NULL), 0);
	ck_assert_msg(strstr(out, "no running pool or supervisor"), "%s", out);
	free(out);
}
END_TEST

START_TEST(stacks_and_gdb_reach_services_by_number_and_name)
{
	static const char *const names[] = {"fetcher", "indexer"};
	static const mpg_service_fn fns[] = {stuck_service, stuck_service, NULL};
	struct sup_run *r = new_supervisor(names, fns, MPG_RESTART_PERMANENT);
	start_supervisor(r);
	wait_started(2);
	json_object *sup = wait_service(0, "running");
	json_object_put(sup);
	sup = wait_service(1, "running");
	pid_t pids[2] = {(pid_t)field(worker_of(sup, 0), "pid"), (pid_t)field(worker_of(sup, 1), "pid")};
	json_object_put(sup);

	char *out;
	int rc = run_tool(&out, "stacks", self(), NULL);
	ck_assert_msg(rc == 0, "stacks failed (%d): %s", rc, out);
	for (unsigned i = 0; i < 2; i++) {
		char hdr[96];
		snprintf(hdr, sizeof hdr, "=== service %u %s (pid %d, running)", i, names[i],
			 (int)pids[i]);
		ck_assert_msg(strstr(out, hdr), "no \"%s\" in:\n%s", hdr, out);
	}
	const char *first = strstr(out, "mpk_test_stuck_here");
	ck_assert_msg(first && strstr(first + 1, "mpk_test_stuck_here") && strstr(out, "stuck_service"),
		      "%s", out);
	free(out);

	/* By name: gdb attaches to that service. */
	rc = run_tool(&out, "gdb", self(), "indexer", "--", "-batch", "-ex", "bt", NULL);
	ck_assert_msg(rc == 0 && strstr(out, "mpk_test_stuck_here"), "gdb failed (%d): %s", rc, out);
	free(out);
	rc = run_tool(&out, "gdb", self(), "nosuch", "--", "-batch", NULL);
	ck_assert_msg(rc == 1 && strstr(out, "no service \"nosuch\""), "%d: %s", rc, out);
	free(out);

	ck_assert_int_eq(mpg_supervisor_stop(r->sup), 0);
	ck_assert_int_eq(join_supervisor(r), -EINTR);
	ck_assert_uint_eq(r->failures, 0); /* detached, unharmed, stopped by us */
	free_supervisor(r);
}
END_TEST

START_TEST(a_crashed_service_pauses_for_gdb_then_resumes_by_name)
{
	/* From the environment, as for a pool. */
	setenv("MPKIT_PAUSE", "crash", 1);
	static const char *const names[] = {"crasher"};
	static const mpg_service_fn fns[] = {crash_service, NULL};
	struct sup_run *r = new_supervisor(names, fns, MPG_RESTART_TEMPORARY);
	start_supervisor(r);
	json_object *sup = wait_service(0, "paused");
	unsetenv("MPKIT_PAUSE");
	ck_assert_str_eq(sfield(sup, "pause"), "crash");
	json_object_put(sup);

	char *out;
	int rc = run_tool(&out, "gdb", self(), "0", "--", "-batch", "-ex", "bt", NULL);
	ck_assert_msg(rc == 0, "gdb failed (%d): %s", rc, out);
	const char *sig = strstr(out, "<signal handler called>");
	ck_assert_msg(sig && strstr(sig, "mpk_test_crash_here") && strstr(sig, "crash_service"),
		      "%s", out);
	free(out);

	ck_assert_int_eq(run_tool(&out, "resume", self(), "crasher", NULL), 0);
	ck_assert_msg(strstr(out, "resumed 1 service"), "%s", out);
	free(out);
	ck_assert_int_eq(join_supervisor(r), 0); /* temporary: not restarted */
	ck_assert_uint_eq(r->failures, 1);
	ck_assert_int_eq(r->kind, MPG_ERR_SIGNALED);
	ck_assert_int_eq(r->sig, SIGSEGV);
	/* The log said it paused, and how to attach. */
	char want[96];
	snprintf(want, sizeof want, "service crasher (pid ");
	ck_assert_msg(strstr(r->records, want) &&
		      strstr(r->records, "crashed on SEGV and is paused for a debugger") &&
		      strstr(r->records, "mpattach gdb"), "%s", r->records);
	free_supervisor(r);
}
END_TEST

START_TEST(services_paused_at_start_run_after_resume)
{
	static const char *const names[] = {"a", "b"};
	static const mpg_service_fn fns[] = {stuck_service, stuck_service, NULL};
	struct sup_run *r = new_supervisor(names, fns, MPG_RESTART_PERMANENT);
	ck_assert_int_eq(mpg_supervisor_set_pause(r->sup, MPG_PAUSE_AT_START, 60000), 0);
	start_supervisor(r);
	json_object_put(wait_service(0, "paused"));
	json_object *sup = wait_service(1, "paused");
	ck_assert_str_eq(sfield(sup, "pause"), "start");
	json_object_put(sup);
	/* Neither has run its function. */
	struct pollfd pfd = {.fd = started[0], .events = POLLIN};
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);

	char *out;
	ck_assert_int_eq(run_tool(&out, "resume", NULL), 0);
	ck_assert_msg(strstr(out, "resumed 2 services"), "%s", out);
	free(out);
	wait_started(2);
	ck_assert_int_eq(mpg_supervisor_stop(r->sup), 0);
	ck_assert_int_eq(join_supervisor(r), -EINTR);
	ck_assert_msg(strstr(r->records, "service a (pid ") &&
		      strstr(r->records, "paused at start for a debugger"), "%s", r->records);
	free_supervisor(r);
}
END_TEST

START_TEST(a_supervisor_without_control_registers_nothing)
{
	static const char *const names[] = {"a"};
	static const mpg_service_fn fns[] = {stuck_service, NULL};
	struct sup_run *r = new_supervisor(names, fns, MPG_RESTART_PERMANENT);
	ck_assert_int_eq(mpg_supervisor_set_control(r->sup, 0), 0);
	ck_assert_int_eq(mpg_supervisor_set_pause(r->sup, 4, 0), -EINVAL);
	start_supervisor(r);
	wait_started(1);
	ck_assert_int_eq(mpg_supervisor_set_control(r->sup, 1), -EBUSY);
	ck_assert_int_eq(mpg_supervisor_set_pause(r->sup, 0, 0), -EBUSY);
	char *out;
	ck_assert_int_eq(run_tool(&out, "list", NULL), 0);
	ck_assert_msg(strstr(out, "no running pool or supervisor"), "%s", out);
	free(out);
	ck_assert_int_eq(mpg_supervisor_stop(r->sup), 0);
	ck_assert_int_eq(join_supervisor(r), -EINTR);
	free_supervisor(r);
}
END_TEST

START_TEST(mplog_live_follows_a_supervisor)
{
	static const char *const names[] = {"talker"};
	static const mpg_service_fn fns[] = {logging_service, NULL};
	struct sup_run *r = new_supervisor(names, fns, MPG_RESTART_TEMPORARY);
	start_supervisor(r);
	json_object_put(wait_service(0, "running"));
	int out, err;
	pid_t pid = start_mplog(&out, &err, NULL);
	char *text = read_until(err, "following the log of supervisor");
	ck_assert_msg(strstr(text, "following the log of supervisor"), "%s", text);
	free(text);
	ck_assert_int_eq(write(release[1], "x", 1), 1);
	ck_assert_int_eq(join_supervisor(r), 0); /* the socket closes: mplog ends */
	text = read_until(out, NULL);
	ck_assert_msg(strstr(text, "hello from the service"), "%s", text);
	free(text);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(out), close(err);
	free_supervisor(r);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("mpattach");
	TCase *tc = tcase_create("tool");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, list_shows_workers_and_their_tasks);
	tcase_add_test(tc, list_shows_a_submitted_task_by_its_number);
	tcase_add_test(tc, stacks_show_where_tasks_are_stuck);
	tcase_add_test(tc, gdb_prints_the_stack_of_a_worker_paused_after_its_crash);
	tcase_add_test(tc, workers_paused_at_start_run_after_resume);
	tcase_add_test(tc, a_pause_ends_at_its_timeout);
	tcase_add_test(tc, tool_errors_are_clear);
	tcase_add_test(tc, socket_refuses_another_uid);
	tcase_add_test(tc, a_ptrace_grant_goes_only_to_a_live_peer);
	tcase_add_test(tc, resume_with_a_lone_pool_resumes_that_pool);
	tcase_add_test(tc, a_pool_number_that_does_not_exist_names_the_ones_that_do);
	tcase_add_test(tc, gdb_at_ptrace_scope_2_is_explained_and_root_still_attaches);
	tcase_add_test(tc, a_pid_without_a_pool_of_ours_is_explained);
	tcase_add_test(tc, a_pool_of_another_environment_is_found);
	tcase_add_test(tc, mplog_live_follows_a_running_pool_until_it_ends);
	tcase_add_test(tc, mplog_live_needs_a_pool_with_a_log);
	tcase_add_test(tc, mplog_live_with_a_backlog);
	tcase_add_test(tc, version_line_names_the_package);
	tcase_add_test(tc, list_json_is_valid_for_a_name_in_bad_utf8);
	suite_add_tcase(s, tc);
	TCase *sv = tcase_create("supervisor");
	tcase_add_checked_fixture(sv, setup, teardown);
	tcase_add_test(sv, list_shows_a_supervisors_services_by_name);
	tcase_add_test(sv, stacks_and_gdb_reach_services_by_number_and_name);
	tcase_add_test(sv, a_crashed_service_pauses_for_gdb_then_resumes_by_name);
	tcase_add_test(sv, services_paused_at_start_run_after_resume);
	tcase_add_test(sv, a_supervisor_without_control_registers_nothing);
	tcase_add_test(sv, mplog_live_follows_a_supervisor);
	suite_add_tcase(s, sv);
	return s;
}

MPK_TEST_MAIN(make_suite)
