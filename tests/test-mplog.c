/* SPDX-License-Identifier: MIT */
/* libmplog end to end, with real forked children: per-child ordering, no
 * interleaving of records of 1 byte to 64 KiB from several processes and
 * threads, no loss at SIGKILL, stdout/stderr capture, garbage injection,
 * drop mode, file reopen, JSON lines checked by Python's json module. */
#include "mplog-test.h"

#include <spawn.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>

extern char **environ;

/* ---- ordering and fields ------------------------------------------------ */

#define ORDER_N 2000

static int log_in_order(int arg)
{
	(void)arg;
	mplog_set_context(3, 42);
	mplog_kv kv[] = {{"user", "alice"}, {"size", "12"}};
	for (int i = 0; i < ORDER_N; i++) {
		int r = i % 2 ? mplog_info("record %d", i) : mplog_warn_kv(kv, 2, "record %d", i);
		if (r != 0)
			return 1;
	}
	return 0;
}

START_TEST(records_carry_every_field_and_arrive_in_order_through_the_epoll_fd)
{
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	pid_t pid = spawn_child(a, "w3", 7, 0, log_in_order, 0);
	/* The child writes more than a pipe holds: the caller's own loop
	 * must keep reading through mplog_aggregator_fd() + dispatch(). */
	struct pollfd p = {.fd = mplog_aggregator_fd(a), .events = POLLIN};
	while (c.n < ORDER_N) {
		ck_assert_int_eq(poll(&p, 1, 60000), 1);
		ck_assert_int_ge(mplog_aggregator_dispatch(a, 0), 0);
	}
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	ck_assert_uint_eq(c.n, ORDER_N);
	for (int i = 0; i < ORDER_N; i++) {
		struct got *g = &c.v[i];
		char want[32];
		snprintf(want, sizeof want, "record %d", i);
		ck_assert_str_eq(g->msg, want);
		ck_assert_int_eq(g->level, i % 2 ? MPLOG_INFO : MPLOG_WARN);
		ck_assert_int_eq(g->pid, pid);
		ck_assert_int_eq(g->worker, 3); /* the child's context wins */
		ck_assert_int_eq(g->task, 42);
		ck_assert_int_eq(g->stream, MPLOG_STREAM_LOG);
		ck_assert_str_eq(g->channel, "w3");
		ck_assert_ptr_nonnull(strstr(g->file, "test-mplog.c"));
		ck_assert_int_gt(g->line, 0);
		ck_assert_str_eq(g->func, "log_in_order");
		ck_assert_str_eq(g->kvs, i % 2 ? "" : "user=alice;size=12;");
	}
	mplog_aggregator_free(a);
	collector_free(&c);
	mpk_assert_no_children();
}
END_TEST

/* ---- no interleaving ---------------------------------------------------- */

#define MIX_N 120
static const size_t mix_sizes[] = {1, 65536, 100, 4000, 4049, 4050, 4096, 5000,
				   12345, 3, 40000, 1000, 8100, 65536, 7};

static size_t mix_size(int writer, int i)
{
	return mix_sizes[(size_t)(writer * 7 + i * 5) % (sizeof mix_sizes / sizeof mix_sizes[0])];
}

static char mix_byte(int writer, int i, size_t j)
{
	return (char)('a' + (writer * 7 + i * 13 + (int)(j % 1000)) % 26);
}

/* "w<writer> i<i>:" then a pattern; exactly mix_size() bytes in all. */
static int log_mix(int writer)
{
	char *buf = malloc(65537);
	if (!buf)
		return 2;
	for (int i = 0; i < MIX_N; i++) {
		size_t n = mix_size(writer, i);
		int h = snprintf(buf, 65537, "w%d i%d:", writer, i);
		for (size_t j = (size_t)h; j < n; j++)
			buf[j] = mix_byte(writer, i, j);
		buf[n > (size_t)h ? n : (size_t)h] = 0;
		if (mplog_info("%s", buf) != 0) {
			free(buf);
			return 1;
		}
	}
	free(buf);
	return 0;
}

static void *mix_thread(void *arg)
{
	return (void *)(intptr_t)log_mix((int)(intptr_t)arg);
}

/* Child 0: itself and a grandchild on the same pipe. Child 1: three
 * threads on one pipe. Child 2: alone. */
static int mix_child(int child)
{
	if (child == 0) {
		pid_t g = fork();
		if (g < 0)
			return 3;
		if (g == 0)
			_exit(log_mix(1));
		int r = log_mix(0), st;
		if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st))
			return 4;
		return r;
	}
	if (child == 1) {
		pthread_t t[3];
		for (int k = 0; k < 3; k++)
			if (pthread_create(&t[k], NULL, mix_thread, (void *)(intptr_t)(10 + k)))
				return 5;
		int r = 0;
		for (int k = 0; k < 3; k++) {
			void *v;
			pthread_join(t[k], &v);
			r |= (int)(intptr_t)v;
		}
		return r;
	}
	return log_mix(20);
}

START_TEST(records_of_1_byte_to_64k_from_processes_and_threads_never_interleave)
{
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	pid_t pids[3];
	/* Fork before the aggregator's thread starts: ASan's allocator (GCC
	 * 12) keeps its locks across fork(), so a child forked while that
	 * thread allocates can deadlock in malloc. glibc's malloc does not. */
	for (int k = 0; k < 3; k++)
		pids[k] = spawn_child(a, "mix", k, 0, mix_child, k);
	ck_assert_int_eq(mplog_aggregator_start(a), 0);
	for (int k = 0; k < 3; k++)
		reap_ok(pids[k]);
	ck_assert_int_eq(mplog_aggregator_stop(a), 0);
	static const int writers[] = {0, 1, 10, 11, 12, 20};
	int next[32] = {0};
	ck_assert_uint_eq(c.n, MIX_N * 6);
	for (size_t r = 0; r < c.n; r++) {
		struct got *g = &c.v[r];
		int w, i, h;
		ck_assert_int_eq(sscanf(g->msg, "w%d i%d:%n", &w, &i, &h), 2);
		ck_assert(w >= 0 && w < 32);
		ck_assert_int_eq(i, next[w]); /* in order per writer */
		next[w]++;
		size_t n = mix_size(w, i);
		ck_assert_uint_eq(g->len, n > (size_t)h ? n : (size_t)h);
		for (size_t j = (size_t)h; j < g->len; j++)
			if (g->msg[j] != mix_byte(w, i, j))
				ck_abort_msg("record w%d i%d corrupt at byte %zu", w, i, j);
	}
	for (size_t k = 0; k < sizeof writers / sizeof writers[0]; k++)
		ck_assert_int_eq(next[writers[k]], MIX_N);
	ck_assert_uint_eq(mplog_aggregator_protocol_errors(a), 0);
	mplog_aggregator_free(a);
	collector_free(&c);
	mpk_assert_no_children();
}
END_TEST

/* ---- SIGKILL ------------------------------------------------------------ */

static int kill_ready_fd = -1;

static int log_then_wait_for_death(int arg)
{
	(void)arg;
	for (int i = 0; i < 50; i++)
		if (mplog_info("before %d", i))
			return 1;
	char *big = malloc(100001);
	if (!big)
		return 2;
	memset(big, 'k', 100000);
	big[100000] = 0;
	if (mplog_error("%s", big)) /* a fragmented record */
		return 1;
	free(big);
	if (mplog_fatal("last words"))
		return 1;
	/* Every call above returned: tell the parent, then wait to die. */
	if (write(kill_ready_fd, "r", 1) != 1)
		return 3;
	for (;;)
		pause();
}

START_TEST(records_survive_sigkill_right_after_the_call_returns)
{
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	int ready[2];
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	kill_ready_fd = ready[1];
	pid_t pid = spawn_child(a, "doomed", 1, 0, log_then_wait_for_death, 0);
	ck_assert_int_eq(mplog_aggregator_start(a), 0); /* after fork(): see above */
	close(ready[1]);
	char b;
	ck_assert_int_eq(read(ready[0], &b, 1), 1);
	close(ready[0]);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	ck_assert_int_eq(mplog_aggregator_stop(a), 0);
	ck_assert_uint_eq(c.n, 52);
	for (int i = 0; i < 50; i++) {
		char want[32];
		snprintf(want, sizeof want, "before %d", i);
		ck_assert_str_eq(c.v[i].msg, want);
	}
	ck_assert_uint_eq(c.v[50].len, 100000);
	ck_assert_int_eq(c.v[50].msg[99999], 'k');
	ck_assert_str_eq(c.v[51].msg, "last words");
	ck_assert_int_eq(c.v[51].level, MPLOG_FATAL);
	mplog_aggregator_free(a);
	collector_free(&c);
	mpk_assert_no_children();
}
END_TEST

/* ---- stdout / stderr ---------------------------------------------------- */

static int print_stuff(int arg)
{
	(void)arg;
	printf("out one\n");
	printf("out two\n");
	fprintf(stderr, "err one\n");
	fflush(stdout);
	if (write(STDOUT_FILENO, "partial", 7) != 7 || write(STDERR_FILENO, "err tail", 8) != 8)
		return 1;
	return 0;
}

START_TEST(stdout_and_stderr_lines_are_records_and_a_partial_last_line_is_flushed)
{
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	pid_t pid = spawn_child(a, "printer", 4, MPLOG_CAPTURE_STDOUT | MPLOG_CAPTURE_STDERR,
				print_stuff, 0);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	ck_assert_uint_eq(c.n, 5);
	const char *out[3], *err[2];
	size_t no = 0, ne = 0;
	for (size_t i = 0; i < c.n; i++) {
		ck_assert_int_eq(c.v[i].pid, pid);
		ck_assert_int_eq(c.v[i].worker, 4);
		ck_assert_str_eq(c.v[i].channel, "printer");
		if (c.v[i].stream == MPLOG_STREAM_STDOUT) {
			ck_assert_uint_lt(no, 3);
			ck_assert_int_eq(c.v[i].level, MPLOG_INFO);
			out[no++] = c.v[i].msg;
		} else {
			ck_assert_int_eq(c.v[i].stream, MPLOG_STREAM_STDERR);
			ck_assert_uint_lt(ne, 2);
			ck_assert_int_eq(c.v[i].level, MPLOG_WARN);
			err[ne++] = c.v[i].msg;
		}
	}
	ck_assert_str_eq(out[0], "out one");
	ck_assert_str_eq(out[1], "out two");
	ck_assert_str_eq(out[2], "partial");
	ck_assert_str_eq(err[0], "err one");
	ck_assert_str_eq(err[1], "err tail");
	mplog_aggregator_free(a);
	collector_free(&c);
	mpk_assert_no_children();
}
END_TEST

static int print_per_task(int arg)
{
	(void)arg;
	unsigned both = MPLOG_CAPTURE_STDOUT | MPLOG_CAPTURE_STDERR;
	printf("before any task\n");
	mplog_set_context(4, 5);
	if (mplog_mark_output(both) != 0 || mplog_mark_output(0) != -EINVAL)
		return 1;
	printf("five\n");
	fprintf(stderr, "five on stderr\n");
	printf("six starts"); /* ended by task 6: goes with it */
	mplog_set_context(4, 6);
	if (mplog_mark_output(both) != 0)
		return 1;
	printf(" and ends\n");
	/* Not marks: kept as they are. */
	printf("fake \033_mpkit:task=x\033\\ \033_mpkit:task=1\n");
	mplog_set_context(4, -1);
	if (mplog_mark_output(MPLOG_CAPTURE_STDOUT) != 0)
		return 1;
	printf("after the tasks\n");
	return 0;
}

/* Output marks: each captured line carries the task that printed it. */
START_TEST(captured_lines_carry_the_task_of_the_last_mark)
{
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	pid_t pid = spawn_child(a, "marks", 4, MPLOG_CAPTURE_STDOUT | MPLOG_CAPTURE_STDERR,
				print_per_task, 0);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	static const struct {
		const char *msg;
		int64_t task;
	} want[] = {
		{"before any task", -1},
		{"five", 5},
		{"six starts and ends", 6},
		{"fake \033_mpkit:task=x\033\\ \033_mpkit:task=1", 6},
		{"after the tasks", -1},
		{"five on stderr", 5},
	};
	ck_assert_uint_eq(c.n, 6);
	for (size_t k = 0; k < 6; k++) {
		size_t i = 0;
		while (i < c.n && strcmp(c.v[i].msg, want[k].msg))
			i++;
		ck_assert_msg(i < c.n, "no line '%s'", want[k].msg);
		ck_assert_msg(c.v[i].task == want[k].task, "'%s': task %lld", want[k].msg,
			      (long long)c.v[i].task);
	}
	mplog_aggregator_free(a);
	collector_free(&c);
	mpk_assert_no_children();
}
END_TEST

/* ---- garbage ------------------------------------------------------------- */

/* Garbage: text, then a fake magic with a broken header. */
static const char garbage[] = "this is not a frame\n\x01\x02MPKF\x07\x09garbage";
#define GARBAGE_LEN (sizeof garbage - 1)

static int log_hundred(int arg)
{
	for (int i = 0; i < 100; i++)
		if (mplog_info("clean %d %d", arg, i))
			return 1;
	return 0;
}

START_TEST(garbage_on_one_channel_yields_a_protocol_error_and_spares_the_others)
{
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	/* The bad child: a real record, garbage written raw on its log pipe,
	 * another real record, then a frame cut short. Built by hand so the
	 * exact byte counts are known. Its writer is on the pipe alone (no
	 * ring), so the garbage falls between its frames. */
	mplog_child_fds fds;
	ck_assert_int_eq(mplog_aggregator_add_child(a, "bad", 5, 0, &fds), 0);
	pid_t bad = fork();
	ck_assert_int_ge(bad, 0);
	if (bad == 0) {
		mplog_writer *w;
		close(fds.ring_fd);
		fds.ring_fd = -1;
		if (mplog_child_setup(&fds, 5, 0, &w) < 0 || mplog_info("good before") ||
		    write(fds.log_fd, garbage, GARBAGE_LEN) != (ssize_t)GARBAGE_LEN ||
		    mplog_info("good after"))
			_exit(1);
		if (write(fds.log_fd, "MPKF\x01\x40\0\0", 8) != 8) /* cut short */
			_exit(1);
		_exit(0);
	}
	mplog_child_fds_close(&fds);
	pid_t good = spawn_child(a, "good", 6, 0, log_hundred, 6);
	reap_ok(bad);
	reap_ok(good);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	int clean = 0, errors = 0;
	bool before = false, after = false;
	for (size_t i = 0; i < c.n; i++) {
		struct got *g = &c.v[i];
		if (strcmp(g->channel, "good") == 0) {
			char want[32];
			snprintf(want, sizeof want, "clean 6 %d", clean++);
			ck_assert_str_eq(g->msg, want);
		} else if (strstr(g->msg, "protocol error")) {
			ck_assert_str_eq(g->channel, "bad");
			ck_assert_int_eq(g->worker, 5);
			ck_assert_int_eq(g->level, MPLOG_ERROR);
			ck_assert_ptr_nonnull(strstr(g->msg, "\"bad\" (worker 5)"));
			char want[64];
			snprintf(want, sizeof want, "mplog.bytes=%zu;", errors == 0 ? GARBAGE_LEN : 8);
			ck_assert_msg(strstr(g->kvs, want), "kvs %s, want %s", g->kvs, want);
			ck_assert_msg(errors == 0 ? before && !after : after, "error out of order");
			errors++;
		} else if (strcmp(g->msg, "good before") == 0) {
			before = true;
		} else {
			ck_assert_str_eq(g->msg, "good after");
			after = true;
		}
	}
	ck_assert_int_eq(clean, 100);
	ck_assert(before && after);
	ck_assert_int_eq(errors, 2); /* the garbage, the frame cut short at EOF */
	ck_assert_uint_eq(mplog_aggregator_protocol_errors(a), 2);
	mplog_aggregator_free(a);
	collector_free(&c);
	mpk_assert_no_children();
}
END_TEST

/* ---- drop mode ----------------------------------------------------------- */

static int drop_report_fd = -1, drop_go_fd = -1;

START_TEST(drop_mode_drops_when_full_and_reports_the_count_in_a_record)
{
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	int rep[2], go[2];
	ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	drop_report_fd = rep[1];
	drop_go_fd = go[0];
	mplog_child_fds fds;
	ck_assert_int_eq(mplog_aggregator_add_child(a, "dropper", 2, 0, &fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		mplog_writer *w;
		if (mplog_child_setup(&fds, 2, MPLOG_WRITER_DROP, &w) < 0)
			_exit(1);
		/* Nobody reads yet: fill the pipe until 10 records dropped. */
		uint32_t sent = 0;
		while (mplog_writer_dropped(w) < 10) {
			int r = mplog_info("filler %u", sent);
			if (r < 0)
				_exit(2);
			sent += r == 0;
		}
		uint64_t d = mplog_writer_dropped(w);
		if (write(drop_report_fd, &sent, sizeof sent) != sizeof sent)
			_exit(3);
		char b;
		if (read(drop_go_fd, &b, 1) != 1 || mplog_info("after the drain"))
			_exit(4);
		_exit(mplog_writer_dropped(w) == d ? 0 : 5);
	}
	mplog_child_fds_close(&fds);
	close(rep[1]);
	close(go[0]);
	uint32_t sent;
	ck_assert_int_eq(read(rep[0], &sent, sizeof sent), sizeof sent);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0); /* drain the full pipe */
	ck_assert_uint_eq(c.n, sent);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	ck_assert_uint_eq(c.n, sent + 2);
	ck_assert_int_eq(c.v[sent].level, MPLOG_WARN);
	ck_assert_ptr_nonnull(strstr(c.v[sent].msg, "10 records dropped"));
	ck_assert_str_eq(c.v[sent].kvs, "mplog.dropped=10;");
	ck_assert_str_eq(c.v[sent + 1].msg, "after the drain");
	close(rep[0]);
	close(go[1]);
	mplog_aggregator_free(a);
	collector_free(&c);
	mpk_assert_no_children();
}
END_TEST

/* ---- file sink reopen ---------------------------------------------------- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* An aggregator writing text to the file at path, and a writer into it. */
static void text_file_log(const char *path, mplog_aggregator **a, mplog_writer **w)
{
	mplog_sink *s;
	ck_assert_int_eq(mplog_aggregator_new(a), 0);
	ck_assert_int_eq(mplog_sink_new_file(path, MPLOG_FORMAT_TEXT, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(*a, s), 0);
	ck_assert_int_eq(mplog_aggregator_writer(*a, w), 0);
}

START_TEST(file_sink_reopens_a_rotated_file_on_request)
{
	char dir[] = "/tmp/mplog-test-XXXXXX", path[128], rotated[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/app.log", dir);
	snprintf(rotated, sizeof rotated, "%s/app.log.1", dir);
	mplog_aggregator *a;
	mplog_writer *w;
	text_file_log(path, &a, &w);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, "f.c", 1, "fn", NULL, 0, "before"), 0);
	ck_assert_int_eq(rename(path, rotated), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, "f.c", 2, "fn", NULL, 0, "still old"), 0);
	ck_assert_int_eq(mplog_aggregator_reopen(a), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, "f.c", 3, "fn", NULL, 0, "after"), 0);
	/* The async-signal-safe request, as from a SIGHUP handler. */
	ck_assert_int_eq(rename(path, rotated), 0 /* replaces .1 */);
	mplog_aggregator_request_reopen(a);
	ck_assert_int_ge(mplog_aggregator_dispatch(a, 0), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_WARN, "f.c", 4, "fn", NULL, 0, "third"), 0);
	char *t = slurp(rotated);
	ck_assert_ptr_nonnull(strstr(t, "] after (f.c:3 fn)\n"));
	ck_assert_ptr_null(strstr(t, "third"));
	t = slurp(path);
	ck_assert_ptr_nonnull(strstr(t, "WARN "));
	ck_assert_ptr_nonnull(strstr(t, "] third (f.c:4 fn)\n"));
	ck_assert_ptr_null(strstr(t, "after"));
	ck_assert_int_eq(strchr(t, '\033') == NULL, 1); /* never coloured */
	mplog_writer_free(w);
	mplog_aggregator_free(a);
	unlink(path);
	unlink(rotated);
	rmdir(dir);
}
END_TEST

START_TEST(text_puts_a_value_of_several_lines_below_the_record)
{
	char dir[] = "/tmp/mplog-test-XXXXXX", path[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/app.log", dir);
	mplog_aggregator *a;
	mplog_writer *w;
	text_file_log(path, &a, &w);
	mplog_kv kv[] = {{"trace", "#0 f\n#1 g\n"}, {"k", "v"}, {"empty", ""}};
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_ERROR, "f.c", 5, "fn", kv, 3, "two\nlines"), 0);
	ck_assert_int_ge(mplog_aggregator_dispatch(a, 0), 0);
	mplog_writer_free(w);
	mplog_aggregator_free(a);
	char *t = slurp(path);
	ck_assert_msg(strstr(t, "] two\n    lines k=v empty= (f.c:5 fn)\n    trace:\n      #0 f\n"
				"      #1 g\n") && t[strlen(t) - 2] == 'g',
		      "%s", t);
	unlink(path);
	rmdir(dir);
}
END_TEST

/* ---- hostile output ----------------------------------------------------- */

/* What a child may write to take over the reader's terminal: clear it, set
 * its title, and start what looks like a record of another worker, after a
 * newline or a carriage return, in its message, a key-value, a file name
 * and a captured line. */
#define FAKE "2026-01-01 00:00:00.000000 ERROR [w9 pid 1 task 3] fake"
static int log_hostile(int arg)
{
	(void)arg;
	mplog_kv kv[] = {{"k\033[2J", "v\r" FAKE}, {"bt", "#0 f\n" FAKE "\n\033]0;t\007"}};
	if (mplog_writer_log(mplog_default_writer(), MPLOG_INFO, "f\r" FAKE, 1, "fn\033[1A", kv,
			     2, "ok\n" FAKE "\r" FAKE " \033[2J\033]0;title\007 \xc2\x9b" "2J "
			     "\xe2\x80\xae" "rtl bad\xff\xc0 \xc3\xa9 end") < 0)
		return 1;
	printf("line\r" FAKE "\033[K\n");
	return 0;
}

/* Every line either starts a record (a date) or a continuation (a space);
 * no control character but the newlines; valid UTF-8; no C1 control. */
static size_t check_safe_text(const char *t)
{
	size_t records = 0;
	for (const char *line = t; *line;) {
		const char *nl = strchr(line, '\n');
		ck_assert_msg(nl, "no final newline: %s", t);
		if (line[0] != ' ') {
			ck_assert_msg(line[0] == '2' && line[4] == '-' && line[7] == '-' &&
					      line[10] == ' ' && line[13] == ':',
				      "a line that is neither a record nor indented: %.*s",
				      (int)(nl - line), line);
			records++;
		}
		line = nl + 1;
	}
	for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
		ck_assert_msg(*p == '\n' || (*p >= 0x20 && *p != 0x7f), "control byte 0x%02x: %s",
			      *p, t);
		ck_assert_msg(!(p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f), "C1 control: %s", t);
		ck_assert_msg(*p != 0xff && *p != 0xc0, "invalid UTF-8: %s", t);
	}
	return records;
}

START_TEST(text_shows_what_children_send_escaped_and_cannot_be_given_a_fake_record)
{
	char dir[] = "/tmp/mplog-test-XXXXXX", path[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/app.log", dir);
	mplog_aggregator *a;
	mplog_sink *s;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_file(path, MPLOG_FORMAT_TEXT, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	pid_t pid = spawn_child(a, "ch\033]0;x\007\r" FAKE, -1, MPLOG_CAPTURE_STDOUT, log_hostile,
				0);
	reap_ok(pid);
	mplog_aggregator_free(a);
	char *t = slurp(path);
	ck_assert_uint_eq(check_safe_text(t), 2); /* the record, the captured line */
	/* Shown, escaped, where they were. */
	ck_assert_msg(strstr(t, "] ok\n    " FAKE "\\r" FAKE " \\x1b[2J\\x1b]0;title\\x07 \\u009b2J "
				"\\u202ertl bad\\xff\\xc0 \xc3\xa9 end k\\x1b[2J=v\\r" FAKE
				" (f\\r" FAKE ":1 fn\\x1b[1A)\n    bt:\n      #0 f\n      " FAKE
				"\n      \\x1b]0;t\\x07\n"),
		      "%s", t);
	ck_assert_msg(strstr(t, "[ch\\x1b]0;x\\x07\\r2026-01-01 00:00:00.000000 ERRO pid "), "%s", t);
	ck_assert_msg(strstr(t, " stdout] line\\r" FAKE "\\x1b[K\n"), "%s", t);
	unlink(path);
	rmdir(dir);
	mpk_assert_no_children();
}
END_TEST

/* ---- reserved keys ------------------------------------------------------ */

static int log_forged_keys(int arg)
{
	(void)arg;
	mplog_kv kv[] = {{"mpg.kind", "signaled"}, {"mpg.task", "3"},     {"process.pid", "1"},
			 {"mpkit.worker", "9"},    {"mplog.error", "x"},  {"mplog.dropped", "2"},
			 {"code.lineno", "7"},     {"mpgx", "plain"},     {"user", "alice"}};
	return mplog_error_kv(kv, 9, "forged") != 0;
}

START_TEST(reserved_keys_from_a_child_are_renamed_and_the_parents_kept)
{
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	pid_t pid = spawn_child(a, "w0", 0, 0, log_forged_keys, 0);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_writer(a, &w), 0);
	mplog_kv kv[] = {{"mpg.kind", "raised"}, {"mplog.error", "protocol"}};
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_ERROR, NULL, 0, NULL, kv, 2, "parent's"), 0);
	mplog_writer_free(w);
	ck_assert_uint_eq(c.n, 2);
	ck_assert_str_eq(c.v[0].msg, "forged");
	ck_assert_str_eq(c.v[0].kvs, "child.mpg.kind=signaled;child.mpg.task=3;child.process.pid=1;"
				     "child.mpkit.worker=9;child.mplog.error=x;mplog.dropped=2;"
				     "child.code.lineno=7;mpgx=plain;user=alice;");
	ck_assert_int_eq(c.v[0].pid, pid);
	ck_assert_str_eq(c.v[1].kvs, "mpg.kind=raised;mplog.error=protocol;");
	mplog_aggregator_free(a);
	collector_free(&c);
	mpk_assert_no_children();
}
END_TEST

/* ---- JSON lines ---------------------------------------------------------- */

static int log_nasty(int arg)
{
	(void)arg;
	mplog_set_context(9, 77);
	mplog_kv kv[] = {{"quote\"key", "back\\slash"}, {"ctl", "a\x01" "b\x7f"}};
	if (mplog_error_kv(kv, 2, "q\" b\\ nl\n tab\t ctl\x01\x1f bad\xff\xfe\xc0\xaf ok\xc3\xa9 "
				  "euro\xe2\x82\xac sur\xed\xa0\x80 end"))
		return 1;
	printf("plain stdout line\n");
	return 0;
}

/* argv: the file, the child's pid, the schema (docs/), the parent's pid. */
static const char json_check[] =
	"import json, sys, datetime\n"
	"try:\n"
	"    import jsonschema\n"
	"except ImportError:\n"
	"    sys.exit('python3-jsonschema is not installed')\n"
	"schema = json.load(open(sys.argv[3]))\n"
	"jsonschema.Draft202012Validator.check_schema(schema)\n"
	"recs = [json.loads(l) for l in open(sys.argv[1], encoding='utf-8')]\n"
	"assert len(recs) == 4, recs\n"
	"for r in recs:\n"
	"    jsonschema.validate(r, schema, cls=jsonschema.Draft202012Validator)\n"
	"    ns = int(r['timeUnixNano'])\n"
	"    t = datetime.datetime.fromisoformat(r['time'][:26] + '+00:00')\n"
	"    assert r['time'][20:29] == '%09d' % (ns % 10**9), r\n"
	"    assert int(t.timestamp()) == ns // 10**9, r\n"
	"    assert r['resource']['process.pid'] == int(sys.argv[4]), r\n"
	"    assert r['resource']['service.name'] == 'test-mplog', r\n"
	"r = recs[0]\n"
	"assert int(r['timeUnixNano']) > 1600000000 * 10**9\n"
	"assert r['severityText'] == 'ERROR' and r['severityNumber'] == 17\n"
	"want = 'q\" b\\\\ nl\\n tab\\t ctl\\x01\\x1f bad\\ufffd\\ufffd\\ufffd\\ufffd ok\\u00e9 euro\\u20ac sur\\ufffd\\ufffd\\ufffd end'\n"
	"assert r['body'] == want, repr(r['body'])\n"
	"a = r['attributes']\n"
	"assert a['process.pid'] == int(sys.argv[2]) and a['mpkit.worker'] == 9 and a['mpkit.task'] == 77, a\n"
	"assert a['code.file.path'].endswith('test-mplog.c') and a['code.line.number'] > 0 and a['code.function.name'] == 'log_nasty', a\n"
	"assert a['mpkit.channel'] == 'json\\nchild', a\n"
	"assert a['quote\"key'] == 'back\\\\slash' and a['ctl'] == 'a\\x01b\\x7f', a\n"
	"assert 'log.iostream' not in a\n"
	"o = recs[1]\n"
	"assert o['body'] == 'plain stdout line' and o['attributes']['log.iostream'] == 'stdout', o\n"
	"assert o['severityText'] == 'INFO' and o['severityNumber'] == 9\n"
	"p = recs[2]\n"
	"assert p['body'] == 'parent says hi' and p['severityText'] == 'NOTICE' and p['severityNumber'] == 10, p\n"
	"assert 'mpkit.worker' not in p['attributes'], p\n"
	"f = recs[3]['attributes']\n"
	"assert f['mpkit.task'] == 7 and f['mpkit.worker'] == 2 and 'mpg.task' not in f and 'mpg.worker' not in f, f\n"
	"assert f['exception.type'] == 'SIGSEGV' and f['exception.message'] == recs[3]['body'], f\n"
	"assert f['exception.stacktrace'] == '#0 0x1 f (a.c:1)\\n' and 'mpg.backtrace' not in f, f\n"
	"assert f['mpg.kind'] == 'signaled' and f['mpg.pid'] == '4242', f\n";

START_TEST(json_lines_parse_back_with_python_and_escape_any_bytes)
{
	char dir[] = "/tmp/mplog-test-XXXXXX", path[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/log.json", dir);
	mplog_aggregator *a;
	mplog_sink *s;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	pid_t pid = spawn_child(a, "json\nchild", 1, MPLOG_CAPTURE_STDOUT, log_nasty, 0);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_writer(a, &w), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_NOTICE, NULL, 0, NULL, NULL, 0, "parent says hi"), 0);
	/* A pool's record of a failed task, as libmpguard writes it. */
	mplog_kv fail[] = {{"mpg.kind", "signaled"}, {"mpg.task", "7"}, {"mpg.worker", "2"},
			   {"mpg.pid", "4242"}, {"mpg.signal", "SIGSEGV"},
			   {"mpg.backtrace", "#0 0x1 f (a.c:1)\n"}};
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_ERROR, NULL, 0, NULL, fail, 6,
					  "task 7: worker 2 died by SIGSEGV"), 0);
	mplog_writer_free(w);
	mplog_aggregator_free(a);

	char pidstr[16], self[16];
	snprintf(pidstr, sizeof pidstr, "%d", pid);
	snprintf(self, sizeof self, "%d", (int)getpid());
	char *argv[] = {"python3", "-c", (char *)json_check, path, pidstr, MPLOG_SCHEMA, self, NULL};
	pid_t py;
	int r = posix_spawnp(&py, "python3", NULL, NULL, argv, environ);
	if (r == ENOENT) {
		unlink(path);
		rmdir(dir);
		ck_abort_msg("python3 not installed");
	}
	ck_assert_int_eq(r, 0);
	int st;
	ck_assert_int_eq(waitpid(py, &st, 0), py);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "python3 rejected %s", slurp(path));
	unlink(path);
	rmdir(dir);
	mpk_assert_no_children();
}
END_TEST

/* ---- records across aggregators (an MPI agent's, on rank 0) ------------- */

/* A callback sink that encodes what it gets, as an agent rank does. */
struct encoded {
	uint8_t *v[8];
	size_t len[8], n;
};

static void encode_record(const mplog_record *r, void *userdata)
{
	struct encoded *e = userdata;
	ssize_t n = mplog_record_encode(r, 100, NULL, 0);
	ck_assert_int_gt(n, 0);
	ck_assert_uint_lt(e->n, 8);
	e->v[e->n] = malloc((size_t)n + 1);
	ck_assert_int_eq(mplog_record_encode(r, 100, e->v[e->n], (size_t)n + 1), n);
	e->len[e->n++] = (size_t)n;
}

static int log_for_rank0(int arg)
{
	(void)arg;
	mplog_set_context(9, 5);
	if (mplog_mark_output(MPLOG_CAPTURE_STDOUT) < 0)
		return 1;
	mplog_kv kv[] = {{"user", "alice"}, {"mpg.task", "3"}};
	if (mplog_warn_kv(kv, 2, "from the agent's worker"))
		return 1;
	printf("a printed line\n");
	return 0;
}

static const char inject_check[] =
	"import json, sys, socket\n"
	"import jsonschema\n"
	"schema = json.load(open(sys.argv[2]))\n"
	"recs = [json.loads(l) for l in open(sys.argv[1], encoding='utf-8')]\n"
	"assert len(recs) == 6, recs\n"
	"for r in recs:\n"
	"    jsonschema.validate(r, schema, cls=jsonschema.Draft202012Validator)\n"
	"w, o, f, own = recs[0], recs[1], recs[2], recs[5]\n"
	"for r in (w, o, f):\n"
	"    assert r['resource']['host.name'] == 'node2' and r['resource']['process.pid'] == 4242, r\n"
	"    assert r['resource']['mpkit.mpi.rank'] == 2, r\n"
	"a = w['attributes']\n"
	"assert w['body'] == 'from the agent\\'s worker' and w['severityText'] == 'WARN', w\n"
	"assert a['process.pid'] == int(sys.argv[3]) and a['mpkit.worker'] == 9 and a['mpkit.task'] == 105, a\n"
	"assert a['mpkit.channel'] == 'worker-9' and a['code.function.name'] == 'log_for_rank0', a\n"
	"assert a['code.file.path'].endswith('test-mplog.c') and a['code.line.number'] > 0, a\n"
	"assert a['user'] == 'alice' and a['child.mpg.task'] == '3', a\n"
	"assert o['body'] == 'a printed line' and o['attributes']['log.iostream'] == 'stdout', o\n"
	"assert o['attributes']['mpkit.task'] == 105, o\n"
	"assert int(o['observedTimeUnixNano']) <= int(own['observedTimeUnixNano']), o\n"
	"fa = f['attributes']\n"
	"assert fa['mpkit.task'] == 107 and fa['exception.type'] == 'SIGSEGV', fa\n"
	"assert own['resource']['mpkit.mpi.rank'] == 0 and own['resource']['host.name'] == socket.gethostname(), own\n";

START_TEST(records_encoded_on_one_aggregator_and_injected_into_another_keep_every_field_and_their_origin)
{
	/* The agent's side: a child's records and the pool's own. */
	struct encoded e = {0};
	mplog_aggregator *agent;
	mplog_sink *s;
	ck_assert_int_eq(mplog_aggregator_new(&agent), 0);
	ck_assert_int_eq(mplog_sink_new_callback(encode_record, &e, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agent, s), 0);
	pid_t pid = spawn_child(agent, "worker-9", 9, MPLOG_CAPTURE_STDOUT, log_for_rank0, 0);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_flush(agent), 0);
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_writer(agent, &w), 0);
	mplog_kv fail[] = {{"mpg.kind", "signaled"}, {"mpg.task", "7"}, {"mpg.signal", "SIGSEGV"}};
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_ERROR, NULL, 0, NULL, fail, 3, "task 7 died"), 0);
	mplog_writer_free(w);
	mplog_aggregator_free(agent);
	ck_assert_uint_eq(e.n, 3);

	/* Rank 0's: a JSON file and a callback, its own record stamped rank 0. */
	char dir[] = "/tmp/mplog-test-XXXXXX", path[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/log.json", dir);
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	ck_assert_int_eq(mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	ck_assert_int_eq(mplog_aggregator_set_rank(a, 0), 0);
	for (size_t i = 0; i < e.n; i++)
		ck_assert_int_eq(mplog_aggregator_inject(a, e.v[i], e.len[i], "node2", 4242, 2), 0);
	/* Anything else is refused and reported, never delivered. */
	ck_assert_int_eq(mplog_aggregator_inject(a, e.v[0], e.len[0] - 1, "node2", 4242, 2), -EBADMSG);
	e.v[0][0] ^= 1;
	ck_assert_int_eq(mplog_aggregator_inject(a, e.v[0], e.len[0], "node2", 4242, 2), -EBADMSG);
	ck_assert_uint_eq(mplog_aggregator_protocol_errors(a), 2);
	ck_assert_int_eq(mplog_aggregator_inject(a, NULL, 1, "node2", 4242, 2), -EINVAL);
	ck_assert_int_eq(mplog_aggregator_inject(a, e.v[1], e.len[1], "node2", 4242, -2), -EINVAL);
	ck_assert_int_eq(mplog_aggregator_set_rank(a, -2), -EINVAL);
	ck_assert_int_eq(mplog_record_encode(NULL, 0, NULL, 0), -EINVAL);
	ck_assert_int_eq(mplog_aggregator_writer(a, &w), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, NULL, 0, "rank 0's own"), 0);
	mplog_writer_free(w);
	ck_assert_uint_eq(c.n, 6); /* 3 injected, 2 protocol errors, 1 own */
	ck_assert_str_eq(c.v[0].msg, "from the agent's worker");
	ck_assert_int_eq(c.v[0].pid, pid);
	ck_assert_int_eq(c.v[0].worker, 9);
	ck_assert_int_eq(c.v[0].task, 105);
	ck_assert_str_eq(c.v[0].channel, "worker-9");
	ck_assert_str_eq(c.v[0].func, "log_for_rank0");
	ck_assert_str_eq(c.v[0].kvs, "user=alice;child.mpg.task=3;");
	ck_assert_int_eq(c.v[1].stream, MPLOG_STREAM_STDOUT);
	ck_assert_str_eq(c.v[2].kvs, "mpg.kind=signaled;mpg.task=107;mpg.signal=SIGSEGV;");
	ck_assert_ptr_nonnull(strstr(c.v[3].msg, "malformed record from node2 rank 2"));
	mplog_aggregator_free(a);
	collector_free(&c);
	for (size_t i = 0; i < e.n; i++)
		free(e.v[i]);

	char pidstr[16];
	snprintf(pidstr, sizeof pidstr, "%d", pid);
	char *argv[] = {"python3", "-c", (char *)inject_check, path, MPLOG_SCHEMA, pidstr, NULL};
	pid_t py;
	ck_assert_int_eq(posix_spawnp(&py, "python3", NULL, NULL, argv, environ), 0);
	int st;
	ck_assert_int_eq(waitpid(py, &st, 0), py);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "python3 rejected %s", slurp(path));
	unlink(path);
	rmdir(dir);
	mpk_assert_no_children();
}
END_TEST

/* The accessors and the text, journal and syslog forms of an injected
 * record: host and rank wherever the form has room for them. */
static void check_forms(const mplog_record *r, void *userdata)
{
	int *seen = userdata;
	char buf[1024];
	ck_assert_str_eq(mplog_record_host(r), "node2");
	ck_assert_int_eq(mplog_record_host_pid(r), 4242);
	ck_assert_int_eq(mplog_record_rank(r), 2);
	ck_assert_int_lt(mplog_record_format(r, MPLOG_FORMAT_TEXT, 0, buf, sizeof buf), (ssize_t)sizeof buf);
	ck_assert_msg(strstr(buf, "[node2 r2 w9 pid "), "%s", buf);
	(*seen)++;
}

START_TEST(an_injected_records_host_and_rank_show_in_the_text_form_and_accessors)
{
	struct encoded e = {0};
	mplog_aggregator *agent;
	mplog_sink *s;
	ck_assert_int_eq(mplog_aggregator_new(&agent), 0);
	ck_assert_int_eq(mplog_sink_new_callback(encode_record, &e, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agent, s), 0);
	reap_ok(spawn_child(agent, "worker-9", 9, 0, log_for_rank0, 0));
	mplog_aggregator_free(agent);
	ck_assert_uint_eq(e.n, 1);
	int seen = 0;
	mplog_aggregator *a;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_callback(check_forms, &seen, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	ck_assert_int_eq(mplog_aggregator_inject(a, e.v[0], e.len[0], "node2", 4242, 2), 0);
	ck_assert_int_eq(seen, 1);
	ck_assert_int_eq(mplog_record_host_pid(NULL), 0);
	ck_assert_int_eq(mplog_record_rank(NULL), -1);
	ck_assert_str_eq(mplog_record_host(NULL), "");
	mplog_aggregator_free(a);
	free(e.v[0]);
	mpk_assert_no_children();
}
END_TEST

/* ---- API contract -------------------------------------------------------- */

START_TEST(api_rejects_bad_arguments_and_accepts_null_destructors)
{
	mplog_writer *w = NULL;
	mplog_aggregator *a = NULL;
	mplog_sink *s = NULL;
	ck_assert_int_eq(mplog_writer_new(-1, 0, &w), -EINVAL);
	ck_assert_int_eq(mplog_writer_new(0, 0, NULL), -EINVAL);
	ck_assert_int_eq(mplog_writer_new(0, 0x100, &w), -EINVAL);
	ck_assert_ptr_null(w);
	ck_assert_int_eq(mplog_set_default_writer(NULL), 0);
	ck_assert_int_eq(mplog_info("nowhere"), -ENOTCONN);
	ck_assert_int_eq(mplog_set_min_level((mplog_level)99), -EINVAL);
	ck_assert_int_eq(mplog_aggregator_new(NULL), -EINVAL);
	ck_assert_int_eq(mplog_aggregator_dispatch(NULL, 0), -EINVAL);
	ck_assert_int_eq(mplog_aggregator_flush(NULL), -EINVAL);
	ck_assert_int_eq(mplog_aggregator_fd(NULL), -EINVAL);
	ck_assert_int_eq(mplog_sink_new_callback(NULL, NULL, &s), -EINVAL);
	ck_assert_int_eq(mplog_sink_new_fd(-1, MPLOG_FORMAT_TEXT, 0, &s), -EINVAL);
	ck_assert_int_eq(mplog_sink_new_fd(2, (mplog_format)5, 0, &s), -EINVAL);
	ck_assert_int_eq(mplog_sink_new_file("/nonexistent/dir/x.log", MPLOG_FORMAT_TEXT, 0, &s),
			 -ENOENT);
	ck_assert_ptr_null(s);
	mplog_writer_free(NULL);
	mplog_writer_freep(NULL);
	mplog_sink_free(NULL);
	mplog_aggregator_free(NULL);
	mplog_aggregator_freep(&a);
	ck_assert_uint_eq(mplog_writer_dropped(NULL), 0);

	int fds0 = mpk_count_fds();
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_aggregator_add(a, 1000, MPLOG_STREAM_LOG, "x", 0), -EINVAL);
	ck_assert_int_eq(mplog_aggregator_remove(a, 12345), -ENOENT);
	int rd, wr;
	ck_assert_int_eq(mplog_pipe(&rd, &wr), 0);
	ck_assert_int_eq(fcntl(rd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(fcntl(wr, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	int id = mplog_aggregator_add(a, rd, MPLOG_STREAM_LOG, "x", 0);
	ck_assert_int_gt(id, 0);
	ck_assert_int_eq(mplog_aggregator_start(a), 0);
	ck_assert_int_eq(mplog_aggregator_start(a), -EALREADY);
	ck_assert_int_eq(mplog_aggregator_dispatch(a, 0), -EBUSY);
	ck_assert_int_eq(mplog_aggregator_stop(a), 0);
	ck_assert_int_eq(mplog_aggregator_remove(a, (unsigned)id), 0);
	close(wr);
	/* A forked child may not drive the parent's aggregator. */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		mplog_writer *aw;
		int ok = mplog_aggregator_flush(a) == -ECHILD &&
			 mplog_aggregator_writer(a, &aw) == -ECHILD;
		mplog_aggregator_free(a); /* frees memory only */
		_exit(ok ? 0 : 1);
	}
	reap_ok(pid);
	mplog_aggregator_free(a);
	ck_assert_int_eq(mpk_count_fds(), fds0);
	mpk_assert_no_children();
}
END_TEST

static int log_parent_writer_in_child(int arg)
{
	(void)arg;
	return 0;
}

START_TEST(aggregator_writer_is_refused_in_a_forked_child)
{
	mplog_aggregator *a;
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_aggregator_writer(a, &w), 0);
	ck_assert_int_eq(mplog_set_default_writer(w), 0);
	ck_assert_int_eq(mplog_info("parent"), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(mplog_info("child") == -ECHILD ? log_parent_writer_in_child(0) : 1);
	reap_ok(pid);
	mplog_writer_free(w);
	ck_assert_ptr_null(mplog_default_writer()); /* freeing unset it */
	mplog_aggregator_free(a);
}
END_TEST

START_TEST(sinks_and_the_child_filter_by_minimum_level)
{
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	mplog_sink *s;
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(mplog_sink_new_fd(p[1], MPLOG_FORMAT_TEXT, MPLOG_SINK_COLOR_ALWAYS, &s), 0);
	ck_assert_int_eq(mplog_sink_set_min_level(s, MPLOG_ERROR), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_writer(a, &w), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, NULL, 0, "info"), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_ERROR, NULL, 0, NULL, NULL, 0, "error"), 0);
	ck_assert_int_eq(mplog_set_min_level(MPLOG_WARN), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, NULL, 0, "filtered"), 0);
	ck_assert_int_eq(mplog_set_min_level(MPLOG_TRACE), 0);
	mplog_writer_free(w);
	mplog_aggregator_free(a);
	close(p[1]);
	char buf[512];
	ssize_t n = read(p[0], buf, sizeof buf - 1);
	close(p[0]);
	ck_assert_int_gt(n, 0);
	buf[n] = 0;
	ck_assert_ptr_null(strstr(buf, "info"));
	ck_assert_ptr_nonnull(strstr(buf, "\033[31mERROR\033[0m"));
	ck_assert_ptr_nonnull(strstr(buf, "] error\n"));
	ck_assert_uint_eq(c.n, 2); /* callback sink: TRACE and up, not "filtered" */
	collector_free(&c);
}
END_TEST


/* ---- the ring ------------------------------------------------------------ */

/* Memory the test shares with its children (mapped before they fork). */
static void *shared(size_t n)
{
	void *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);
	memset(m, 0, n);
	return m;
}

/* Wait for a state another process reaches on its own (polled, 1 ms). */
static void wait_for(bool (*cond)(void *arg), void *arg)
{
	while (!cond(arg))
		nanosleep(&(struct timespec){0, 1000000}, NULL);
}

/* The state letter of /proc/pid/stat ('R', 'S', ...). */
static char proc_state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	ck_assert_ptr_nonnull(p);
	return p[2];
}

/* A record of writer t, number i: "t<t> i<i>:" then a pattern, n bytes. */
static int log_pattern(int t, unsigned long i, size_t n)
{
	char buf[16384];
	int h = snprintf(buf, sizeof buf, "t%d i%lu:", t, i);
	size_t len = n > (size_t)h ? n : (size_t)h;
	for (size_t j = (size_t)h; j < len; j++)
		buf[j] = (char)('a' + (t * 7 + (int)i * 13 + (int)j) % 26);
	buf[len] = 0;
	return mplog_info("%s", buf);
}

/* Check record g is writer t's record i, whole. */
static void check_pattern(const struct got *g, int t, unsigned long i)
{
	int wt, h;
	unsigned long wi;
	ck_assert_int_eq(sscanf(g->msg, "t%d i%lu:%n", &wt, &wi, &h), 2);
	ck_assert_int_eq(wt, t);
	ck_assert_uint_eq(wi, i);
	for (size_t j = (size_t)h; j < g->len; j++)
		if (g->msg[j] != (char)('a' + (t * 7 + (int)i * 13 + (int)j) % 26))
			ck_abort_msg("record t%d i%lu corrupt at byte %zu", t, i, j);
}

/* Which writer a record is from, and its number; -1 for other records. */
static int writer_of(const struct got *g, unsigned long *i)
{
	int t;
	return sscanf(g->msg, "t%d i%lu:", &t, i) == 2 ? t : -1;
}

#define KILL_THREADS 4
struct kill_state {
	atomic_ulong done[KILL_THREADS]; /* calls that returned 0, per thread */
	atomic_int failed;
};
static struct kill_state *ks;

static void *log_until_killed(void *arg)
{
	int t = (int)(intptr_t)arg;
	for (unsigned long i = 0;; i++) {
		/* Mostly short, now and then long enough to be fragmented. */
		if (log_pattern(t, i, i % 50 == 7 ? 6000 : 20 + i % 300) != 0) {
			atomic_store(&ks->failed, 1);
			return NULL;
		}
		atomic_store(&ks->done[t], i + 1);
	}
}

static int threads_until_killed(int arg)
{
	(void)arg;
	pthread_t th[KILL_THREADS];
	for (int t = 0; t < KILL_THREADS; t++)
		if (pthread_create(&th[t], NULL, log_until_killed, (void *)(intptr_t)t))
			return 1;
	for (;;)
		pause();
}

static bool threads_logged_enough(void *arg)
{
	(void)arg;
	for (int t = 0; t < KILL_THREADS; t++)
		if (atomic_load(&ks->done[t]) < 3000)
			return false;
	return true;
}

START_TEST(sigkill_of_a_child_logging_on_four_threads_loses_no_record_whose_call_returned)
{
	ks = shared(sizeof *ks);
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	pid_t pid = spawn_child(a, "killed", 1, 0, threads_until_killed, 0);
	ck_assert_int_eq(mplog_aggregator_start(a), 0); /* after fork(): see above */
	wait_for(threads_logged_enough, NULL);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	ck_assert_int_eq(mplog_aggregator_stop(a), 0);
	ck_assert_int_eq(atomic_load(&ks->failed), 0);
	/* Per thread: every record whose call returned, in order, and at
	 * most the one the kill caught after its commit. A record caught
	 * between reservation and commit may be reported, nothing else. */
	unsigned long next[KILL_THREADS] = {0};
	size_t errors = 0;
	for (size_t r = 0; r < c.n; r++) {
		unsigned long i;
		int t = writer_of(&c.v[r], &i);
		if (t < 0) {
			ck_assert_msg(strstr(c.v[r].msg, "never committed") ||
					      strstr(c.v[r].msg, "cut short by EOF"),
				      "unexpected record: %s", c.v[r].msg);
			errors++;
			continue;
		}
		ck_assert(t < KILL_THREADS);
		check_pattern(&c.v[r], t, next[t]++);
	}
	for (int t = 0; t < KILL_THREADS; t++) {
		unsigned long done = atomic_load(&ks->done[t]);
		ck_assert_msg(next[t] == done || next[t] == done + 1,
			      "thread %d: %lu calls returned, %lu records", t, done, next[t]);
	}
	ck_assert_uint_le(errors, 2 * KILL_THREADS);
	mplog_aggregator_free(a);
	collector_free(&c);
	munmap(ks, sizeof *ks);
	mpk_assert_no_children();
}
END_TEST

#define MANY_THREADS 8
#define MANY_N 3000
static const size_t many_sizes[] = {1, 40, 56, 57, 100, 200, 1000, 3000, 4050, 5000, 9000};

static size_t many_size(int t, unsigned long i)
{
	return many_sizes[(size_t)(t * 3 + i * 7) % (sizeof many_sizes / sizeof many_sizes[0])];
}

static void *log_many(void *arg)
{
	int t = (int)(intptr_t)arg;
	for (unsigned long i = 0; i < MANY_N; i++)
		if (log_pattern(t, i, many_size(t, i)) != 0)
			return (void *)1;
	return NULL;
}

static int many_threads(int arg)
{
	(void)arg;
	pthread_t th[MANY_THREADS];
	for (int t = 0; t < MANY_THREADS; t++)
		if (pthread_create(&th[t], NULL, log_many, (void *)(intptr_t)t))
			return 1;
	int r = 0;
	for (int t = 0; t < MANY_THREADS; t++) {
		void *v;
		pthread_join(th[t], &v);
		r |= v != NULL;
	}
	return r;
}

START_TEST(eight_threads_of_a_child_lose_and_mix_no_record_through_its_ring)
{
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	pid_t pid = spawn_child(a, "many", 2, 0, many_threads, 0);
	ck_assert_int_eq(mplog_aggregator_start(a), 0);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_stop(a), 0);
	ck_assert_uint_eq(c.n, MANY_THREADS * MANY_N);
	unsigned long next[MANY_THREADS] = {0};
	for (size_t r = 0; r < c.n; r++) {
		unsigned long i;
		int t = writer_of(&c.v[r], &i);
		ck_assert(t >= 0 && t < MANY_THREADS);
		check_pattern(&c.v[r], t, next[t]);
		ck_assert_int_eq(c.v[r].pid, pid);
		size_t n = many_size(t, next[t]++);
		ck_assert_uint_ge(c.v[r].len, n);
	}
	ck_assert_uint_eq(mplog_aggregator_protocol_errors(a), 0);
	mplog_aggregator_free(a);
	collector_free(&c);
	mpk_assert_no_children();
}
END_TEST

#define SLOW_N 20000 /* about 20 times what a ring holds */
static atomic_ulong *slow_done;

static int log_a_lot(int arg)
{
	(void)arg;
	for (unsigned long i = 0; i < SLOW_N; i++) {
		if (log_pattern(0, i, 200) != 0)
			return 1;
		atomic_store(slow_done, i + 1);
	}
	return 0;
}

static bool writer_waits(void *arg)
{
	pid_t pid = *(pid_t *)arg;
	unsigned long before = atomic_load(slow_done);
	return before > 0 && proc_state(pid) == 'S' && atomic_load(slow_done) == before;
}

START_TEST(a_slow_reader_makes_the_writer_wait_and_loses_nothing)
{
	slow_done = shared(sizeof *slow_done);
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	pid_t pid = spawn_child(a, "waiter", 3, 0, log_a_lot, 0);
	/* Nobody reads: the child fills its ring, then waits (asleep). */
	wait_for(writer_waits, &pid);
	ck_assert_uint_lt(atomic_load(slow_done), SLOW_N);
	ck_assert_uint_eq(c.n, 0);
	ck_assert_int_eq(mplog_aggregator_start(a), 0);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_stop(a), 0);
	ck_assert_uint_eq(c.n, SLOW_N);
	for (unsigned long i = 0; i < SLOW_N; i++)
		check_pattern(&c.v[i], 0, i);
	ck_assert_uint_eq(mplog_aggregator_protocol_errors(a), 0);
	mplog_aggregator_free(a);
	collector_free(&c);
	munmap(slow_done, sizeof *slow_done);
	mpk_assert_no_children();
}
END_TEST

#define DROP_THREADS 4
#define DROP_N 5000
struct drop_state {
	atomic_ulong sent, dropped; /* calls that returned 0, 1 */
	atomic_ulong writer_dropped;
	atomic_int phase; /* 1: child done dropping; 2: parent drained */
};
static struct drop_state *ds;

static void *log_and_count(void *arg)
{
	int t = (int)(intptr_t)arg;
	for (unsigned long i = 0; i < DROP_N; i++) {
		int r = log_pattern(t, i, 100 + i % 200);
		if (r < 0)
			return (void *)1;
		atomic_fetch_add(r ? &ds->dropped : &ds->sent, 1);
	}
	return NULL;
}

static bool phase_is(void *arg)
{
	return atomic_load(&ds->phase) == (int)(intptr_t)arg;
}

static int drop_threads(int arg)
{
	(void)arg;
	mplog_writer *w = mplog_default_writer();
	pthread_t th[DROP_THREADS];
	for (int t = 0; t < DROP_THREADS; t++)
		if (pthread_create(&th[t], NULL, log_and_count, (void *)(intptr_t)t))
			return 1;
	int r = 0;
	for (int t = 0; t < DROP_THREADS; t++) {
		void *v;
		pthread_join(th[t], &v);
		r |= v != NULL;
	}
	atomic_store(&ds->writer_dropped, mplog_writer_dropped(w));
	atomic_store(&ds->phase, 1);
	wait_for(phase_is, (void *)(intptr_t)2);
	return r | (mplog_info("after the drain") != 0);
}

START_TEST(drop_mode_counts_exactly_what_a_full_ring_dropped)
{
	ds = shared(sizeof *ds);
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	mplog_child_fds fds;
	ck_assert_int_eq(mplog_aggregator_add_child(a, "dropper", 4, 0, &fds), 0);
	ck_assert_int_ge(fds.ring_fd, 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (mplog_child_setup(&fds, 4, MPLOG_WRITER_DROP, NULL) < 0)
			_exit(100);
		_exit(drop_threads(0));
	}
	mplog_child_fds_close(&fds);
	/* Nobody reads until the child has dropped what did not fit. */
	wait_for(phase_is, (void *)(intptr_t)1);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	atomic_store(&ds->phase, 2);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	unsigned long sent = atomic_load(&ds->sent), dropped = atomic_load(&ds->dropped);
	ck_assert_uint_eq(sent + dropped, DROP_THREADS * DROP_N);
	ck_assert_uint_gt(dropped, 0);
	ck_assert_uint_eq(atomic_load(&ds->writer_dropped), dropped);
	/* Every record sent is there; the reports add up to every drop. */
	unsigned long records = 0, reported = 0;
	for (size_t r = 0; r < c.n; r++) {
		unsigned long i;
		const char *n = strstr(c.v[r].kvs, "mplog.dropped=");
		if (writer_of(&c.v[r], &i) >= 0)
			records++;
		else if (n)
			reported += strtoul(n + strlen("mplog.dropped="), NULL, 10);
		else
			ck_assert_str_eq(c.v[r].msg, "after the drain");
	}
	ck_assert_uint_eq(records, sent);
	ck_assert_uint_eq(reported, dropped);
	ck_assert_str_eq(c.v[c.n - 1].msg, "after the drain");
	ck_assert_uint_eq(mplog_aggregator_protocol_errors(a), 0);
	mplog_aggregator_free(a);
	collector_free(&c);
	munmap(ds, sizeof *ds);
	mpk_assert_no_children();
}
END_TEST

/* How a bad child spoils its ring (the parent must not care). */
enum scribble { RANDOM_ALL, RANDOM_SLOTS, OWN_TAGS, VALID_HEADERS, HEAD_AND_CONTS, NSCRIBBLES };

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void scribble(uint8_t *m, size_t len, enum scribble how, uint64_t seed)
{
	size_t slots = (len - 256) / 64;
	uint8_t *slot0 = m + 256;
	uint64_t head;
	memcpy(&head, m + 64, 8);
	for (size_t i = 0; i < len && how == RANDOM_ALL; i++)
		m[i] = (uint8_t)next_rand(&seed);
	for (size_t i = 256; i < len && how == RANDOM_SLOTS; i++)
		m[i] = (uint8_t)next_rand(&seed);
	for (size_t s = 0; s < slots && how != RANDOM_ALL && how != RANDOM_SLOTS; s++) {
		uint64_t pos = head + s, r = next_rand(&seed);
		uint32_t info = how == OWN_TAGS ? (uint32_t)r
			      : how == VALID_HEADERS ? (1u << 24 | (uint32_t)(r % 4081))
						     : 3u << 24;
		uint64_t h = (uint64_t)info << 32 | (uint32_t)pos;
		memcpy(slot0 + (pos % slots) * 64, &h, 8);
		for (int k = 8; k < 64; k++)
			slot0[(pos % slots) * 64 + (size_t)k] = (uint8_t)next_rand(&seed);
	}
	if (how == RANDOM_SLOTS || how == HEAD_AND_CONTS) { /* as if reserved */
		head += how == RANDOM_SLOTS ? slots / 2 : slots * 5 + 3;
		memcpy(m + 64, &head, 8);
	}
}

static int scribble_fd = -1, scribble_go = -1;

static int log_then_scribble(int how)
{
	struct stat st;
	if (mplog_info("before %d", how) || fstat(scribble_fd, &st) < 0)
		return 1;
	uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, scribble_fd, 0);
	char b;
	if (m == MAP_FAILED || read(scribble_go, &b, 1) != 1)
		return 2;
	scribble(m, (size_t)st.st_size, (enum scribble)how, 0x9e3779b97f4a7c15u * (uint64_t)(how + 1));
	return 0;
}

START_TEST(a_child_scribbling_over_its_ring_is_reported_and_spares_the_parent_and_the_others)
{
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	pid_t bad[NSCRIBBLES];
	int go[2];
	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	scribble_go = go[0];
	for (int k = 0; k < NSCRIBBLES; k++) {
		char name[16];
		snprintf(name, sizeof name, "bad%d", k);
		mplog_child_fds fds;
		ck_assert_int_eq(mplog_aggregator_add_child(a, name, k, 0, &fds), 0);
		bad[k] = fork();
		ck_assert_int_ge(bad[k], 0);
		if (bad[k] == 0) {
			close(go[1]);
			scribble_fd = dup(fds.ring_fd); /* the ring, as the writer maps it */
			if (scribble_fd < 0 || mplog_child_setup(&fds, k, 0, NULL) < 0)
				_exit(100);
			_exit(log_then_scribble(k));
		}
		mplog_child_fds_close(&fds);
	}
	pid_t good = spawn_child(a, "good", 9, 0, log_hundred, 9);
	close(go[0]);
	/* Each bad child's record first, read while its ring was sound. */
	for (size_t seen = 0; seen < NSCRIBBLES;) {
		ck_assert_int_ge(mplog_aggregator_dispatch(a, 60000), 0);
		seen = 0;
		for (size_t i = 0; i < c.n; i++)
			seen += strncmp(c.v[i].channel, "bad", 3) == 0;
	}
	ck_assert_int_eq(write(go[1], "ggggg", NSCRIBBLES), NSCRIBBLES);
	close(go[1]);
	for (int k = 0; k < NSCRIBBLES; k++)
		reap_ok(bad[k]);
	reap_ok(good);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	int clean = 0, errors[NSCRIBBLES] = {0}, before[NSCRIBBLES] = {0};
	for (size_t i = 0; i < c.n; i++) {
		struct got *g = &c.v[i];
		if (strcmp(g->channel, "good") == 0) {
			char want[32];
			snprintf(want, sizeof want, "clean 9 %d", clean++);
			ck_assert_str_eq(g->msg, want);
			continue;
		}
		int k;
		ck_assert_int_eq(sscanf(g->channel, "bad%d", &k), 1);
		ck_assert(k >= 0 && k < NSCRIBBLES);
		if (strstr(g->msg, "protocol error")) {
			ck_assert_int_eq(g->level, MPLOG_ERROR);
			errors[k]++;
		} else if (strncmp(g->msg, "before ", 7) == 0) {
			before[k]++;
		} /* else: a record the scribbles happened to make valid */
	}
	ck_assert_int_eq(clean, 100);
	for (int k = 0; k < NSCRIBBLES; k++) {
		ck_assert_int_eq(before[k], 1);
		ck_assert_msg(errors[k] > 0, "scribble %d not reported", k);
	}
	mplog_aggregator_free(a);
	collector_free(&c);
	mpk_assert_no_children();
}
END_TEST

#define GRAND_N 500
static pid_t *grand_pids; /* shared: [0] fork()ed, [1] _Fork()ed */

static int log_with_grandchildren(int arg)
{
	(void)arg;
	for (int k = 0; k < 2; k++) {
		/* _Fork() runs no atfork handler: the pid must come right anyway. */
		pid_t g = k == 0 ? fork() : _Fork();
		if (g < 0)
			return 1;
		if (g == 0) {
			grand_pids[k] = getpid();
			for (unsigned long i = 0; i < GRAND_N; i++)
				if (log_pattern(k + 1, i, 50 + i % 5000))
					_exit(1);
			_exit(0);
		}
	}
	int r = 0;
	for (unsigned long i = 0; i < GRAND_N; i++)
		r |= log_pattern(0, i, 60 + i % 300);
	for (int k = 0; k < 2; k++) {
		int st;
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			r = 1;
	}
	return r;
}

START_TEST(grandchildren_log_through_the_inherited_writer_with_their_own_pids)
{
	grand_pids = shared(2 * sizeof *grand_pids);
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	pid_t pid = spawn_child(a, "family", 5, 0, log_with_grandchildren, 0);
	ck_assert_int_eq(mplog_aggregator_start(a), 0);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_stop(a), 0);
	ck_assert_uint_eq(c.n, 3 * GRAND_N);
	unsigned long next[3] = {0};
	for (size_t r = 0; r < c.n; r++) {
		unsigned long i;
		int t = writer_of(&c.v[r], &i);
		ck_assert(t >= 0 && t < 3);
		check_pattern(&c.v[r], t, next[t]++);
		ck_assert_int_eq(c.v[r].pid, t == 0 ? pid : grand_pids[t - 1]);
		ck_assert_int_eq(c.v[r].worker, 5);
	}
	ck_assert_uint_eq(mplog_aggregator_protocol_errors(a), 0);
	mplog_aggregator_free(a);
	collector_free(&c);
	munmap(grand_pids, 2 * sizeof *grand_pids);
	mpk_assert_no_children();
}
END_TEST

START_TEST(a_pipe_of_mplog_pipe_and_a_hand_filled_child_fds_still_carry_records)
{
	struct collector c;
	mplog_aggregator *a = new_collecting(&c);
	int rd, wr;
	ck_assert_int_eq(mplog_pipe(&rd, &wr), 0);
	int id = mplog_aggregator_add(a, rd, MPLOG_STREAM_LOG, "plain", 6);
	ck_assert_int_gt(id, 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* As a program written before rings fills it: ring_fd is 0. */
		mplog_child_fds fds = {.log_fd = wr, .stdout_fd = -1, .stderr_fd = -1};
		if (mplog_child_setup(&fds, 6, 0, NULL) < 0)
			_exit(100);
		for (unsigned long i = 0; i < 3000; i++) /* more than a pipe holds */
			if (log_pattern(0, i, 100))
				_exit(1);
		_exit(fcntl(0, F_GETFD) < 0 ? 2 : 0); /* fd 0 was left alone */
	}
	close(wr);
	ck_assert_int_eq(mplog_aggregator_start(a), 0);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_stop(a), 0);
	ck_assert_uint_eq(c.n, 3000);
	for (unsigned long i = 0; i < 3000; i++)
		check_pattern(&c.v[i], 0, i);
	mplog_aggregator_free(a);
	collector_free(&c);
	mpk_assert_no_children();
}
END_TEST

static Suite *mplog_suite(void)
{
	Suite *s = suite_create("mplog");
	TCase *tc = tcase_create("end-to-end");
	tcase_add_test(tc, records_carry_every_field_and_arrive_in_order_through_the_epoll_fd);
	tcase_add_test(tc, records_of_1_byte_to_64k_from_processes_and_threads_never_interleave);
	tcase_add_test(tc, records_survive_sigkill_right_after_the_call_returns);
	tcase_add_test(tc, stdout_and_stderr_lines_are_records_and_a_partial_last_line_is_flushed);
	tcase_add_test(tc, captured_lines_carry_the_task_of_the_last_mark);
	tcase_add_test(tc, garbage_on_one_channel_yields_a_protocol_error_and_spares_the_others);
	tcase_add_test(tc, drop_mode_drops_when_full_and_reports_the_count_in_a_record);
	tcase_add_test(tc, file_sink_reopens_a_rotated_file_on_request);
	tcase_add_test(tc, text_puts_a_value_of_several_lines_below_the_record);
	tcase_add_test(tc, text_shows_what_children_send_escaped_and_cannot_be_given_a_fake_record);
	tcase_add_test(tc, reserved_keys_from_a_child_are_renamed_and_the_parents_kept);
	tcase_add_test(tc, json_lines_parse_back_with_python_and_escape_any_bytes);
	tcase_add_test(tc, records_encoded_on_one_aggregator_and_injected_into_another_keep_every_field_and_their_origin);
	tcase_add_test(tc, an_injected_records_host_and_rank_show_in_the_text_form_and_accessors);
	tcase_add_test(tc, api_rejects_bad_arguments_and_accepts_null_destructors);
	tcase_add_test(tc, aggregator_writer_is_refused_in_a_forked_child);
	tcase_add_test(tc, sinks_and_the_child_filter_by_minimum_level);
	suite_add_tcase(s, tc);
	tc = tcase_create("ring");
	tcase_add_test(tc, sigkill_of_a_child_logging_on_four_threads_loses_no_record_whose_call_returned);
	tcase_add_test(tc, eight_threads_of_a_child_lose_and_mix_no_record_through_its_ring);
	tcase_add_test(tc, a_slow_reader_makes_the_writer_wait_and_loses_nothing);
	tcase_add_test(tc, drop_mode_counts_exactly_what_a_full_ring_dropped);
	tcase_add_test(tc, a_child_scribbling_over_its_ring_is_reported_and_spares_the_parent_and_the_others);
	tcase_add_test(tc, grandchildren_log_through_the_inherited_writer_with_their_own_pids);
	tcase_add_test(tc, a_pipe_of_mplog_pipe_and_a_hand_filled_child_fds_still_carry_records);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(mplog_suite)
