/* SPDX-License-Identifier: MIT */
/* Sinks under faults of the environment: a full disk (a real tmpfs, filled
 * up, mounted in a mount namespace of a child), a stderr pipe nobody reads
 * or whose reader went away, stderr closed before the pool, a sink's fd
 * number reused. Nothing blocks the pool, nothing is lost silently, no
 * SIGPIPE kills the program, every line of a JSON file is JSON. The
 * full-disk test is left out, and the program exits 77 saying why, where
 * no tmpfs can be mounted (neither as root nor in a user namespace). */
#include "mpk-test.h"
#include <mpguard.h>
#include <mplog.h>

#include <json-c/json.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* ---- helpers --------------------------------------------------------------- */

/* Run fn in a child; its exit status (0 passes), or 128 + signal. A child
 * still running after timeout_ms is a failure (a stall), killed. */
static int run_child(int (*fn)(void *), void *arg, int timeout_ms)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(fn(arg));
	int pidfd = pidfd_open(pid, 0);
	ck_assert_int_ge(pidfd, 0);
	bool gone = mpk_wait_gone(pidfd, timeout_ms);
	close(pidfd);
	if (!gone)
		kill(pid, SIGKILL);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(gone, "the child stalled (killed after %d ms)", timeout_ms);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* In a child: fail with a message on the saved stderr. */
static int err_fd = 2;
#define CHILD_CHECK(cond, ...)                                                 \
	do {                                                                   \
		if (!(cond)) {                                                 \
			dprintf(err_fd, "%s:%d: %s: ", __FILE__, __LINE__, #cond); \
			dprintf(err_fd, __VA_ARGS__);                          \
			dprintf(err_fd, "\n");                                 \
			return 1;                                              \
		}                                                              \
	} while (0)

/* Records about sinks (key mplog.sink) that reach a callback sink. */
struct reports {
	pthread_mutex_t lock;
	int failed, lost_records;
	char error[32], sink[256];
	unsigned long long lost;
};

static void on_record(const mplog_record *r, void *ud)
{
	struct reports *rp = ud;
	const char *sink = mplog_record_kv_get(r, "mplog.sink");
	if (!sink)
		return;
	pthread_mutex_lock(&rp->lock);
	const char *e = mplog_record_kv_get(r, "mplog.error");
	const char *lost = mplog_record_kv_get(r, "mplog.lost");
	if (mplog_record_level(r) == MPLOG_ERROR && strstr(mplog_record_message(r, NULL), "failed")) {
		rp->failed++;
		snprintf(rp->error, sizeof rp->error, "%s", e ? e : "");
		snprintf(rp->sink, sizeof rp->sink, "%s", sink);
	} else if (lost) {
		rp->lost_records++;
		rp->lost += strtoull(lost, NULL, 10);
	}
	pthread_mutex_unlock(&rp->lock);
}

static mplog_sink *reports_sink(struct reports *rp)
{
	*rp = (struct reports){.lock = PTHREAD_MUTEX_INITIALIZER};
	mplog_sink *s;
	ck_assert_int_eq(mplog_sink_new_callback(on_record, rp, &s), 0);
	return s;
}

/* ---- a full disk --------------------------------------------------------------- */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

/* In a child: a private mount namespace (as root, else in a user
 * namespace of our own) with a 4 MiB tmpfs on dir. 0 or -errno. */
static int mount_small_tmpfs(const char *dir)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	if (unshare(CLONE_NEWNS) < 0) {
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
			return -errno;
		char map[64];
		snprintf(map, sizeof map, "0 %u 1\n", (unsigned)uid);
		if (write_file("/proc/self/uid_map", map) < 0)
			return -EPERM;
		(void)write_file("/proc/self/setgroups", "deny");
		snprintf(map, sizeof map, "0 %u 1\n", (unsigned)gid);
		if (write_file("/proc/self/gid_map", map) < 0)
			return -EPERM;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0700") < 0)
		return -errno;
	return 0;
}

static char tmpfs_dir[64];
static char tmpfs_skip[256];

static int probe_tmpfs(void *arg)
{
	(void)arg;
	return mount_small_tmpfs(tmpfs_dir) < 0;
}

/* Can a child mount a tmpfs? Else tmpfs_skip says why. */
static bool tmpfs_works(void)
{
	snprintf(tmpfs_dir, sizeof tmpfs_dir, "/tmp/mpk-sink-XXXXXX");
	if (!mkdtemp(tmpfs_dir)) {
		snprintf(tmpfs_skip, sizeof tmpfs_skip, "mkdtemp: %s", strerror(errno));
		return false;
	}
	pid_t pid = fork();
	if (pid == 0)
		_exit(probe_tmpfs(NULL));
	int st = 0;
	waitpid(pid, &st, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return true;
	snprintf(tmpfs_skip, sizeof tmpfs_skip,
		 "cannot mount a tmpfs: unshare(CLONE_NEWNS) and "
		 "unshare(CLONE_NEWUSER|CLONE_NEWNS) + mount both failed");
	return false;
}

/* Fill the file system of dir: a file written until ENOSPC. */
static int fill_up(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	char block[4096];
	memset(block, 'x', sizeof block);
	for (;;) {
		ssize_t k = write(fd, block, sizeof block);
		if (k < 0) {
			int e = errno;
			close(fd);
			return e == ENOSPC ? 0 : -e;
		}
		if (k < (ssize_t)sizeof block) { /* the last bytes: once more */
			if (write(fd, block, 1) < 0 && errno == ENOSPC)
				break;
		}
	}
	close(fd);
	return 0;
}

#define BEFORE 50
#define DURING 1500 /* ~1.7 MiB: more than the queue holds */
#define AFTER 20

static int log_n(mplog_writer *w, const char *what, int n, size_t pad)
{
	char padding[1200];
	memset(padding, 'p', pad);
	padding[pad] = 0;
	for (int i = 0; i < n; i++)
		if (mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, NULL, 0, "%s %d %s", what, i,
				     padding) != 0)
			return -1;
	return 0;
}

/* Read the JSON lines file: every line must be one JSON object. Counts
 * the records of each phase, checks their order, and returns the lost
 * count the file itself reports. */
struct file_check {
	int before, during, after, lost_records, stuck, later;
	unsigned long long lost;
	int bad_lines;
	bool in_order;
	char first_bad[200];
};

static void check_file(const char *path, struct file_check *fc)
{
	*fc = (struct file_check){.in_order = true};
	FILE *f = fopen(path, "re");
	if (!f) {
		fc->bad_lines = -1;
		return;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int next_during = 0, phase = 0;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] != '\n') {
			fc->bad_lines++;
			snprintf(fc->first_bad, sizeof fc->first_bad, "no newline at end: %.100s", line);
			continue;
		}
		struct json_tokener *tok = json_tokener_new();
		json_object *o = json_tokener_parse_ex(tok, line, (int)n);
		bool whole = o && json_tokener_get_parse_end(tok) >= (size_t)n - 1 &&
			     json_object_is_type(o, json_type_object);
		json_tokener_free(tok);
		if (!whole) {
			if (!fc->bad_lines++)
				snprintf(fc->first_bad, sizeof fc->first_bad, "%.150s", line);
			json_object_put(o);
			continue;
		}
		json_object *body, *attrs, *lost;
		const char *b = json_object_object_get_ex(o, "body", &body) ? json_object_get_string(body) : "";
		int i;
		if (sscanf(b, "before %d", &i) == 1) {
			fc->before++;
			fc->in_order &= phase == 0;
		} else if (sscanf(b, "during %d", &i) == 1) {
			fc->during++;
			fc->in_order &= phase <= 1 && i >= next_during;
			next_during = i + 1;
			phase = 1;
		} else if (sscanf(b, "stuck %d", &i) == 1) {
			fc->stuck++;
		} else if (sscanf(b, "later %d", &i) == 1) {
			fc->later++;
		} else if (sscanf(b, "after %d", &i) == 1) {
			fc->after++;
			fc->in_order &= fc->lost_records == 1; /* the gap is told before */
			phase = 2;
		} else if (json_object_object_get_ex(o, "attributes", &attrs) &&
			   json_object_object_get_ex(attrs, "mplog.lost", &lost)) {
			fc->lost_records++;
			fc->lost += strtoull(json_object_get_string(lost), NULL, 10);
		}
		json_object_put(o);
	}
	free(line);
	fclose(f);
}

static int full_disk_child(void *arg)
{
	(void)arg;
	CHILD_CHECK(mount_small_tmpfs(tmpfs_dir) == 0, "mount");
	char path[128], filler[128];
	snprintf(path, sizeof path, "%s/log.json", tmpfs_dir);
	snprintf(filler, sizeof filler, "%s/filler", tmpfs_dir);

	mplog_aggregator *a;
	mplog_sink *file, *cb;
	mplog_writer *w;
	struct reports rp;
	CHILD_CHECK(mplog_aggregator_new(&a) == 0, "new");
	CHILD_CHECK(mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &file) == 0, "file sink");
	CHILD_CHECK(mplog_aggregator_add_sink(a, file) == 0, "add");
	cb = reports_sink(&rp);
	CHILD_CHECK(mplog_aggregator_add_sink(a, cb) == 0, "add");
	CHILD_CHECK(mplog_aggregator_writer(a, &w) == 0, "writer");

	CHILD_CHECK(log_n(w, "before", BEFORE, 300) == 0, "log");
	CHILD_CHECK(mplog_aggregator_flush(a) == 0, "flush before");
	CHILD_CHECK(fill_up(filler) == 0, "fill");
	CHILD_CHECK(log_n(w, "during", DURING, 1000) == 0, "log");
	int r = mplog_aggregator_flush(a);
	CHILD_CHECK(r == -ENOSPC, "flush on a full disk returned %d", r);
	CHILD_CHECK(rp.failed == 1 && strcmp(rp.error, "ENOSPC") == 0 && strcmp(rp.sink, path) == 0,
		    "failure reported %d times, error \"%s\", sink \"%s\"", rp.failed, rp.error,
		    rp.sink);
	uint64_t dropped = mplog_sink_dropped(file);
	CHILD_CHECK(dropped > 0 && dropped < DURING, "dropped %llu", (unsigned long long)dropped);

	CHILD_CHECK(unlink(filler) == 0, "unlink"); /* space comes back */
	CHILD_CHECK(log_n(w, "after", AFTER, 300) == 0, "log");
	r = mplog_aggregator_flush(a);
	CHILD_CHECK(r == 0, "flush after space came back returned %d", r);
	CHILD_CHECK(rp.lost_records == 1 && rp.lost == dropped, "lost reported %d times, %llu of %llu",
		    rp.lost_records, rp.lost, (unsigned long long)dropped);
	CHILD_CHECK(mplog_sink_dropped(file) == dropped, "dropped after");
	mplog_writer_free(w);
	mplog_aggregator_free(a);

	struct file_check fc;
	check_file(path, &fc);
	CHILD_CHECK(fc.bad_lines == 0, "%d lines are not JSON, first: %s", fc.bad_lines, fc.first_bad);
	CHILD_CHECK(fc.before == BEFORE && fc.after == AFTER, "before %d after %d", fc.before, fc.after);
	CHILD_CHECK(fc.lost_records == 1 && fc.lost == dropped, "the file reports %d losses, %llu",
		    fc.lost_records, fc.lost);
	CHILD_CHECK(fc.during + (int)dropped == DURING, "%d written + %llu lost != %d", fc.during,
		    (unsigned long long)dropped, DURING);
	CHILD_CHECK(fc.in_order, "records out of order");

	/* The disk fills again, and this time the program gives up: freed
	 * with records it could not write. They are counted and told; the
	 * record the disk cut stays a partial line, and the next program's
	 * records start on lines of their own. */
	CHILD_CHECK(fill_up(filler) == 0, "fill again");
	CHILD_CHECK(mplog_aggregator_new(&a) == 0, "new");
	CHILD_CHECK(mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &file) == 0, "file sink");
	CHILD_CHECK(mplog_aggregator_add_sink(a, file) == 0, "add");
	cb = reports_sink(&rp);
	CHILD_CHECK(mplog_aggregator_add_sink(a, cb) == 0, "add");
	CHILD_CHECK(mplog_aggregator_writer(a, &w) == 0, "writer");
	CHILD_CHECK(log_n(w, "stuck", 30, 1000) == 0, "log");
	CHILD_CHECK(mplog_aggregator_flush(a) == -ENOSPC, "flush on a full disk");
	mplog_writer_free(w);
	mplog_aggregator_free(a);
	CHILD_CHECK(rp.failed == 1 && rp.lost_records == 1 && rp.lost > 0,
		    "failed %d, %d loss records, %llu lost", rp.failed, rp.lost_records, rp.lost);
	CHILD_CHECK(unlink(filler) == 0, "unlink");
	CHILD_CHECK(mplog_aggregator_new(&a) == 0, "new");
	CHILD_CHECK(mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &file) == 0, "file sink");
	CHILD_CHECK(mplog_aggregator_add_sink(a, file) == 0, "add");
	CHILD_CHECK(mplog_aggregator_writer(a, &w) == 0, "writer");
	CHILD_CHECK(log_n(w, "later", AFTER, 300) == 0, "log");
	mplog_writer_free(w);
	mplog_aggregator_free(a);
	check_file(path, &fc);
	CHILD_CHECK(fc.bad_lines <= 1, "%d lines are not JSON, first: %s", fc.bad_lines, fc.first_bad);
	CHILD_CHECK(fc.stuck + (int)rp.lost == 30, "%d stuck written + %llu lost != 30", fc.stuck, rp.lost);
	CHILD_CHECK(fc.later == AFTER, "later %d", fc.later);
	return 0;
}

START_TEST(a_full_disk_is_reported_and_the_file_recovers_with_whole_json_lines)
{
	ck_assert_int_eq(run_child(full_disk_child, NULL, 60000), 0);
}
END_TEST

/* A file that ends in a partial line (a record cut short when a disk
 * filled up, the program gone since): the next record starts on a line of
 * its own. */
START_TEST(a_record_never_follows_a_partial_line_on_the_same_line)
{
	char path[] = "/tmp/mpk-partial-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	const char *cut = "{\"timestamp\":1,\"bo";
	ck_assert_int_eq(write(fd, cut, strlen(cut)), (ssize_t)strlen(cut));
	close(fd);
	mplog_aggregator *a;
	mplog_sink *s;
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	ck_assert_int_eq(mplog_aggregator_writer(a, &w), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, NULL, 0, "whole"), 0);
	mplog_writer_free(w);
	mplog_aggregator_free(a);
	char buf[4096];
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	unlink(path);
	ck_assert_int_gt(n, 0);
	buf[n] = 0;
	char *nl = strchr(buf, '\n');
	ck_assert_ptr_nonnull(nl);
	ck_assert_int_eq(nl - buf, (long)strlen(cut)); /* the cut line ends there */
	json_object *o = json_tokener_parse(nl + 1);
	ck_assert_ptr_nonnull(o);
	json_object_put(o);
}
END_TEST

/* ---- a stderr pipe nobody reads, or whose reader went away ---------------- */

#define CHATTY_TASKS 3000

static int chatty(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	char pad[1001];
	memset(pad, 'q', 1000);
	pad[1000] = 0;
	return mplog_info("chatty %zu %s", mpg_task_index(t), pad) == 0 ? 0 : 1;
}

static mpg_pool *new_pool(unsigned workers)
{
	mpg_options *o;
	if (mpg_options_new(&o) < 0)
		return NULL;
	mpg_options_set_workers(o, workers);
	mpg_pool *p = NULL;
	int r = mpg_pool_new(o, &p);
	mpg_options_free(o);
	return r == 0 ? p : NULL;
}

static int map_chatty(mpg_pool *p, size_t n)
{
	mpg_results *res;
	mpg_buf *in = calloc(n, sizeof *in);
	int r = mpg_map(p, chatty, in, n, NULL, &res);
	free(in);
	if (r == 0 && mpg_results_failed(res) != 0)
		r = -EPROTO;
	if (r == 0 || r == -EPROTO)
		mpg_results_free(res);
	return r;
}

/* Read the pipe until the record telling what the sink lost. */
static int read_until_lost(int fd, int *lines, unsigned long long *lost)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	*lines = 0;
	*lost = 0;
	bool found = false;
	while (!found) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, 30000) != 1)
			break; /* nothing for 30 s: it will not come */
		if (cap - len < 4096)
			buf = realloc(buf, cap *= 2);
		ssize_t k = read(fd, buf + len, cap - len - 1);
		if (k <= 0)
			break;
		len += (size_t)k;
		buf[len] = 0;
		found = strstr(buf, "mplog.lost=") && strchr(strstr(buf, "mplog.lost="), '\n');
	}
	for (char *l = buf; l && *l;) {
		char *end = strchr(l, '\n');
		if (!end)
			break;
		*end = 0;
		if (strstr(l, " chatty "))
			++*lines;
		char *m = strstr(l, "mplog.lost=");
		if (m)
			*lost = strtoull(m + 11, NULL, 10);
		l = end + 1;
	}
	free(buf);
	return found ? 0 : -1;
}

static int unread_pipe_child(void *arg)
{
	(void)arg;
	int p[2];
	err_fd = dup(2);
	CHILD_CHECK(pipe2(p, O_CLOEXEC) == 0 && dup2(p[1], 2) == 2, "pipe");
	close(p[1]);
	mpg_pool *pool = new_pool(2);
	CHILD_CHECK(pool, "pool");
	/* Nobody reads fd 2: ~3 MiB of records go to a 64 KiB pipe. */
	int r = map_chatty(pool, CHATTY_TASKS);
	CHILD_CHECK(r == 0, "map: %d", r);
	r = mplog_aggregator_flush(mpg_pool_log(pool));
	CHILD_CHECK(r == 0, "flush of a blocked sink: %d (not an error)", r);
	/* Now read: the queue drains, then the loss is told, in the stream. */
	int lines;
	unsigned long long lost;
	CHILD_CHECK(read_until_lost(p[0], &lines, &lost) == 0, "no record of the loss (%d lines)", lines);
	CHILD_CHECK(lost > 0 && lines + (int)lost == CHATTY_TASKS, "%d lines + %llu lost != %d", lines,
		    lost, CHATTY_TASKS);
	mpg_pool_free(pool);
	return 0;
}

START_TEST(a_pool_whose_stderr_nobody_reads_finishes_and_counts_what_it_dropped)
{
	ck_assert_int_eq(run_child(unread_pipe_child, NULL, 60000), 0);
}
END_TEST

static int gone_reader_child(void *arg)
{
	(void)arg;
	int p[2], ctl[2];
	err_fd = dup(2);
	/* The reader: a process of its own (else the pool's fork server and
	 * workers would hold the read end too), gone when told on ctl. */
	CHILD_CHECK(pipe2(p, O_CLOEXEC) == 0 && pipe2(ctl, O_CLOEXEC) == 0, "pipe");
	pid_t reader = fork();
	CHILD_CHECK(reader >= 0, "fork");
	if (reader == 0) {
		char c;
		close(ctl[1]);
		close(p[1]);
		(void)!read(ctl[0], &c, 1);
		_exit(0);
	}
	close(ctl[0]);
	close(p[0]);
	CHILD_CHECK(dup2(p[1], 2) == 2, "dup2");
	close(p[1]);
	mpg_pool *pool = new_pool(1);
	CHILD_CHECK(pool, "pool");
	mplog_aggregator *log = mpg_pool_log(pool);
	struct reports rp;
	CHILD_CHECK(mplog_aggregator_add_sink(log, reports_sink(&rp)) == 0, "add");
	CHILD_CHECK(map_chatty(pool, 10) == 0, "map");
	/* The reader goes away (a byte: the fork server holds ctl[1] too). */
	CHILD_CHECK(write(ctl[1], "q", 1) == 1, "tell the reader");
	CHILD_CHECK(waitpid(reader, NULL, 0) == reader, "reap");
	/* Records written on this thread now meet EPIPE: no SIGPIPE. */
	mplog_writer *w;
	CHILD_CHECK(mplog_aggregator_writer(log, &w) == 0, "writer");
	for (int i = 0; i < 5; i++)
		CHILD_CHECK(mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, NULL, 0, "to nobody") == 0,
			    "log");
	int r = mplog_aggregator_flush(log);
	CHILD_CHECK(r == -EPIPE, "flush returned %d", r);
	pthread_mutex_lock(&rp.lock);
	CHILD_CHECK(rp.failed == 1 && strcmp(rp.error, "EPIPE") == 0 && strcmp(rp.sink, "fd 2") == 0,
		    "failure reported %d times, \"%s\", \"%s\"", rp.failed, rp.error, rp.sink);
	pthread_mutex_unlock(&rp.lock);
	sigset_t pending;
	sigpending(&pending);
	CHILD_CHECK(!sigismember(&pending, SIGPIPE), "a SIGPIPE left pending");
	CHILD_CHECK(map_chatty(pool, 10) == 0, "the pool goes on");
	mplog_writer_free(w);
	mpg_pool_free(pool);
	return 0;
}

START_TEST(a_stderr_reader_that_went_away_is_an_error_not_a_sigpipe)
{
	int rc = run_child(gone_reader_child, NULL, 60000);
	ck_assert_msg(rc != 128 + SIGPIPE, "killed by SIGPIPE");
	ck_assert_int_eq(rc, 0);
}
END_TEST

/* ---- stderr closed; a sink's fd number reused ------------------------------------ */

/* Every write(2) of this process (libmplog's calls land here first): one
 * of text (not an eventfd's 8 bytes) into the file fd 2 is, while fd 2 is
 * one of the pool's, through any descriptor (a sink's dup too), counted. */
static pid_t watched_pid;
static _Atomic int writes_to_2;

static bool same_file_as_2(int fd)
{
	if (fd == 2)
		return true;
	pid_t self = getpid();
	long r = syscall(SYS_kcmp, self, self, 0 /* KCMP_FILE */, fd, 2);
	return r == 0;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	if (watched_pid && getpid() == watched_pid && n != 8 && same_file_as_2(fd))
		atomic_fetch_add(&writes_to_2, 1);
	return syscall(SYS_write, fd, buf, n);
}

static int mpg_raiser(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	if (mpg_task_index(t) % 2)
		mpg_raise(EINVAL, "odd task %zu", mpg_task_index(t));
	mplog_info("even task %zu", mpg_task_index(t));
	return 0;
}

static int closed_stderr_child(void *arg)
{
	(void)arg;
	err_fd = fcntl(2, F_DUPFD_CLOEXEC, 10);
	close(2);
	mpg_pool *pool = new_pool(2);
	CHILD_CHECK(pool, "pool");
	watched_pid = getpid();
	struct stat st;
	CHILD_CHECK(fstat(2, &st) == 0, "fd 2 is not one of the pool's"); /* else pointless */
	struct reports rp;
	CHILD_CHECK(mplog_aggregator_add_sink(mpg_pool_log(pool), reports_sink(&rp)) == 0, "add");
	for (int round = 0; round < 2; round++) {
		mpg_results *res;
		mpg_buf in[20] = {{0}};
		int r = mpg_map(pool, mpg_raiser, in, 20, NULL, &res);
		CHILD_CHECK(r == 0 && mpg_results_failed(res) == 10, "map %d: %d", round, r);
		mpg_results_free(res);
	}
	mplog_aggregator_flush(mpg_pool_log(pool));
	mpg_pool_free(pool);
	int n = atomic_load(&writes_to_2);
	CHILD_CHECK(n == 0, "%d writes into fd 2, one of the pool's own fds", n);
	return 0;
}

START_TEST(with_stderr_closed_no_log_text_goes_into_the_pools_own_fds)
{
	ck_assert_int_eq(run_child(closed_stderr_child, NULL, 60000), 0);
}
END_TEST

static int says_hello(void *ud)
{
	(void)ud;
	return mplog_info("hello from a service") == 0 ? 0 : 1;
}

static int closed_stderr_supervisor_child(void *arg)
{
	(void)arg;
	err_fd = fcntl(2, F_DUPFD_CLOEXEC, 10);
	close(2);
	mpg_supervisor *sup;
	CHILD_CHECK(mpg_supervisor_new(&sup) == 0, "new");
	struct stat st;
	CHILD_CHECK(fstat(2, &st) == 0, "fd 2 is not one of the supervisor's"); /* else pointless */
	watched_pid = getpid();
	CHILD_CHECK(mpg_supervisor_add(sup, "hello", says_hello, NULL, MPG_RESTART_TEMPORARY) == 0,
		    "add");
	int r = mpg_supervisor_run(sup);
	CHILD_CHECK(r == 0, "run: %d", r);
	mpg_supervisor_free(sup);
	int n = atomic_load(&writes_to_2);
	CHILD_CHECK(n == 0, "%d writes into fd 2, one of the supervisor's own fds", n);
	return 0;
}

START_TEST(with_stderr_closed_no_log_text_goes_into_the_supervisors_own_fds)
{
	ck_assert_int_eq(run_child(closed_stderr_supervisor_child, NULL, 60000), 0);
}
END_TEST

START_TEST(a_sink_keeps_writing_where_its_fd_was_when_the_number_is_reused)
{
	int a_[2], b[2];
	ck_assert_int_eq(pipe2(a_, O_CLOEXEC), 0);
	mplog_aggregator *a;
	mplog_sink *s;
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_fd(a_[1], MPLOG_FORMAT_TEXT, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	int num = a_[1];
	/* The caller closes its fd; the number is taken by another pipe. */
	ck_assert_int_eq(pipe2(b, O_CLOEXEC), 0);
	ck_assert_int_eq(dup3(b[1], num, O_CLOEXEC), num);
	close(b[1]);
	b[1] = num;
	ck_assert_int_eq(mplog_aggregator_writer(a, &w), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, NULL, 0, "where?"), 0);
	mplog_writer_free(w);
	mplog_aggregator_free(a);
	close(b[1]);
	char buf[512];
	ck_assert_int_eq(read(b[0], buf, sizeof buf), 0); /* nothing, EOF */
	ssize_t n = read(a_[0], buf, sizeof buf - 1);
	ck_assert_int_gt(n, 0);
	buf[n] = 0;
	ck_assert_ptr_nonnull(strstr(buf, "where?"));
	close(a_[0]);
	close(b[0]);
	int closed = num;
	ck_assert_int_eq(mplog_sink_new_fd(closed, MPLOG_FORMAT_TEXT, 0, &s), -EBADF);
}
END_TEST

static bool with_tmpfs;

static Suite *sink_faults_suite(void)
{
	Suite *s = suite_create("sink-faults");
	TCase *tc = tcase_create("faults");
	if (with_tmpfs)
		tcase_add_test(tc, a_full_disk_is_reported_and_the_file_recovers_with_whole_json_lines);
	tcase_add_test(tc, a_record_never_follows_a_partial_line_on_the_same_line);
	tcase_add_test(tc, a_pool_whose_stderr_nobody_reads_finishes_and_counts_what_it_dropped);
	tcase_add_test(tc, a_stderr_reader_that_went_away_is_an_error_not_a_sigpipe);
	tcase_add_test(tc, with_stderr_closed_no_log_text_goes_into_the_pools_own_fds);
	tcase_add_test(tc, with_stderr_closed_no_log_text_goes_into_the_supervisors_own_fds);
	tcase_add_test(tc, a_sink_keeps_writing_where_its_fd_was_when_the_number_is_reused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	struct rlimit nocore = {0, 0};
	setrlimit(RLIMIT_CORE, &nocore);
	with_tmpfs = tmpfs_works();
	SRunner *sr = srunner_create(sink_faults_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (tmpfs_dir[0])
		rmdir(tmpfs_dir);
	if (failed)
		return EXIT_FAILURE;
	if (!with_tmpfs) {
		printf("SKIP: the full-disk test did not run: %s (the others passed)\n", tmpfs_skip);
		return 77;
	}
	return EXIT_SUCCESS;
}
