/* SPDX-License-Identifier: MIT */
/* libmplog's syslog sink: the RFC 5424 formatter on its own (severities,
 * structured data escaping, names), address errors, unix datagram and
 * stream sockets, a TCP collector that goes away (reconnect, then counted
 * drops), and the real thing: records from a forked child sent over UDP
 * and TCP to an rsyslogd this test starts on loopback, read back from the
 * file rsyslogd writes. Without rsyslogd the other tests run and the
 * program exits 77 saying why. */
#include "mplog-test.h"
#include "aggregator-int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

extern char **environ;

/* ---- the formatter -------------------------------------------------------- */

static char *fmt_rec(const mplog_record *r, int facility)
{
	struct mpk_buf b = {0};
	mplog__format_syslog(&b, r, facility, "host", "app");
	mpk_buf_put_u8(&b, 0);
	ck_assert(!b.oom);
	return (char *)b.data;
}

START_TEST(formatter_writes_rfc5424_with_escaped_structured_data)
{
	const char *kv[] = {"user", "a\"b]c\\d", "bad key=x\"]", "v", "", "empty name",
			    "a_name_longer_than_thirty_two_characters", "x", "bytes", "ok\xff"};
	mplog_record r = {.ts = 1700000000123456789ull, .level = MPLOG_INFO, .pid = 42, .worker = 3,
			  .task = 17, .stream = MPLOG_STREAM_LOG, .msg = "hello [world]",
			  .msg_len = 13, .nkv = 5, .kv = kv, .channel = "", .file = "", .func = ""};
	char *s = fmt_rec(&r, 1);
	ck_assert_str_eq(s, "<14>1 2023-11-14T22:13:20.123456Z host app 42 - [mpkit@32473 worker=\"3\" "
			    "task=\"17\" user=\"a\\\"b\\]c\\\\d\" bad_key_x__=\"v\" _=\"empty name\" "
			    "a_name_longer_than_thirty_two_ch=\"x\" bytes=\"ok\xef\xbf\xbd\"] hello [world]");
	free(s);

	/* No context, no key-values: "-" for the structured data and the pid. */
	mplog_record bare = {.ts = 999, .level = MPLOG_ERROR, .pid = 0, .worker = -1, .task = -1,
			     .msg = "", .msg_len = 0, .channel = "", .file = "", .func = ""};
	s = fmt_rec(&bare, 16);
	ck_assert_str_eq(s, "<131>1 1970-01-01T00:00:00.000000Z host app - - -");
	free(s);

	mplog_record out = bare;
	out.pid = 7;
	out.worker = 0;
	out.stream = MPLOG_STREAM_STDERR;
	out.level = MPLOG_WARN;
	out.msg = "line";
	out.msg_len = 4;
	s = fmt_rec(&out, 1);
	ck_assert_str_eq(s, "<12>1 1970-01-01T00:00:00.000000Z host app 7 - "
			    "[mpkit@32473 worker=\"0\" stream=\"stderr\"] line");
	free(s);
}
END_TEST

START_TEST(levels_map_to_syslog_severities_and_tokens_are_printable)
{
	static const int want[] = {7, 7, 6, 5, 4, 3, 2};
	for (int l = MPLOG_TRACE; l <= MPLOG_FATAL; l++)
		ck_assert_int_eq(mplog__syslog_severity((mplog_level)l), want[l]);
	char t[8];
	mplog__syslog_token(t, sizeof t, "my app\x01\xc3\xa9xyz");
	ck_assert_str_eq(t, "my_app_");
	mplog__syslog_token(t, sizeof t, "");
	ck_assert_str_eq(t, "-");
	mplog__syslog_token(t, sizeof t, NULL);
	ck_assert_str_eq(t, "-");
}
END_TEST

/* ---- sockets without rsyslogd --------------------------------------------- */

/* A loopback listening socket of type on a free port; the port in *port. */
static int listen_loopback(int type, int *port)
{
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	socklen_t len = sizeof sin;
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	if (type == SOCK_STREAM)
		ck_assert_int_eq(listen(fd, 8), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Every socket of this process is close-on-exec (other fds may come from
 * whoever started the test). */
static void assert_all_cloexec(void)
{
	for (int fd = 3; fd < 1024; fd++) {
		char link[64], what[64] = "";
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		if (readlink(link, what, sizeof what - 1) < 0 || strncmp(what, "socket:", 7) != 0)
			continue;
		ck_assert_msg(fcntl(fd, F_GETFD) & FD_CLOEXEC, "fd %d is not O_CLOEXEC", fd);
	}
}

/* Read one octet-counted frame from a stream: "LEN SP MSG". */
static char *read_frame(int fd)
{
	char len[16];
	size_t n = 0;
	for (;;) {
		ck_assert_int_eq(read(fd, len + n, 1), 1);
		if (len[n] == ' ')
			break;
		ck_assert_uint_lt(++n, sizeof len);
	}
	len[n] = 0;
	size_t want = strtoul(len, NULL, 10), got = 0;
	char *m = calloc(1, want + 1);
	while (got < want) {
		ssize_t k = read(fd, m + got, want - got);
		ck_assert_int_gt(k, 0);
		got += (size_t)k;
	}
	return m;
}

/* Log one record through the aggregator's own writer. */
static void say(mplog_aggregator *a, mplog_level level, const char *msg)
{
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_writer(a, &w), 0);
	ck_assert_int_eq(mplog_writer_log(w, level, NULL, 0, NULL, NULL, 0, "%s", msg), 0);
	mplog_writer_free(w);
}

static const char *after_header(const char *m)
{
	/* Skip PRI VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID. */
	for (int i = 0; i < 6 && m; i++) {
		m = strchr(m, ' ');
		if (m)
			m++;
	}
	ck_assert_ptr_nonnull(m);
	return m;
}

START_TEST(addresses_are_parsed_and_connection_errors_returned)
{
	mplog_sink *s = (mplog_sink *)&s;
	const char *bad[] = {"", "foo", "udp:", "udp:host", "udp::514", "tcp:127.0.0.1:",
			     "tcp:127.0.0.1:0", "tcp:127.0.0.1:70000", "tcp:127.0.0.1:5x",
			     "udp:[::1:514", "unix:", "file:/dev/log"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(mplog_sink_new_syslog(bad[i], 0, &s) == -EINVAL, "%s", bad[i]);
	ck_assert_int_eq(mplog_sink_new_syslog("udp:127.0.0.1:514", 1, &s), -EINVAL);
	ck_assert_int_eq(mplog_sink_new_syslog("udp:127.0.0.1:514", 0, NULL), -EINVAL);
	ck_assert_int_eq(mplog_sink_new_syslog("unix:/nonexistent/log", 0, &s), -ENOENT);
	int port, l = listen_loopback(SOCK_STREAM, &port);
	close(l); /* nobody listens there now */
	char addr[64];
	snprintf(addr, sizeof addr, "tcp:127.0.0.1:%d", port);
	ck_assert_int_eq(mplog_sink_new_syslog(addr, 0, &s), -ECONNREFUSED);
	ck_assert_ptr_eq(s, (mplog_sink *)&s); /* untouched on failure */

	ck_assert_int_eq(mplog_sink_new_syslog("udp:localhost:514", 0, &s), 0);
	ck_assert_int_eq(mplog_sink_set_syslog_facility(s, 24), -EINVAL);
	ck_assert_int_eq(mplog_sink_set_syslog_facility(s, -1), -EINVAL);
	ck_assert_int_eq(mplog_sink_set_syslog_facility(s, 23), 0);
	ck_assert_int_eq(mplog_sink_set_syslog_app_name(s, ""), -EINVAL);
	ck_assert_int_eq(mplog_sink_set_syslog_app_name(s, NULL), -EINVAL);
	ck_assert_uint_eq(mplog_sink_dropped(s), 0);
	assert_all_cloexec();
	mplog_sink_free(s);
	mplog_sink *cb;
	ck_assert_int_eq(mplog_sink_new_callback(collect, NULL, &cb), 0);
	ck_assert_int_eq(mplog_sink_set_syslog_facility(cb, 1), -EINVAL);
	ck_assert_uint_eq(mplog_sink_dropped(cb), 0);
	ck_assert_uint_eq(mplog_sink_dropped(NULL), 0);
	mplog_sink_free(cb);
}
END_TEST

START_TEST(unix_datagram_and_stream_sockets_get_one_message_each)
{
	char dir[] = "/tmp/mplog-syslog-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	int types[] = {SOCK_DGRAM, SOCK_STREAM};
	for (int t = 0; t < 2; t++) {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		snprintf(un.sun_path, sizeof un.sun_path, "%s/log%d", dir, t);
		int srv = socket(AF_UNIX, types[t] | SOCK_CLOEXEC, 0);
		ck_assert_int_eq(bind(srv, (struct sockaddr *)&un, sizeof un), 0);
		if (types[t] == SOCK_STREAM)
			ck_assert_int_eq(listen(srv, 1), 0);
		char addr[128];
		snprintf(addr, sizeof addr, "unix:%s", un.sun_path);
		mplog_aggregator *a;
		mplog_sink *s;
		ck_assert_int_eq(mplog_aggregator_new(&a), 0);
		ck_assert_int_eq(mplog_sink_new_syslog(addr, 0, &s), 0);
		ck_assert_int_eq(mplog_sink_set_syslog_app_name(s, "my app"), 0);
		ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
		say(a, MPLOG_NOTICE, "over unix");
		say(a, MPLOG_DEBUG, "second");
		char *m1, *m2;
		if (types[t] == SOCK_DGRAM) {
			char buf[512];
			ssize_t k = recv(srv, buf, sizeof buf - 1, 0);
			ck_assert_int_gt(k, 0);
			buf[k] = 0;
			m1 = strdup(buf);
			k = recv(srv, buf, sizeof buf - 1, 0);
			ck_assert_int_gt(k, 0);
			buf[k] = 0;
			m2 = strdup(buf);
		} else {
			int c = accept4(srv, NULL, NULL, SOCK_CLOEXEC);
			ck_assert_int_ge(c, 0);
			m1 = read_frame(c);
			m2 = read_frame(c);
			close(c);
		}
		char want[64];
		snprintf(want, sizeof want, " my_app %d - - over unix", (int)getpid());
		ck_assert_msg(strncmp(m1, "<13>1 ", 6) == 0 && strstr(m1, want), "%s", m1);
		ck_assert_str_eq(after_header(m2), "- second");
		ck_assert_msg(strncmp(m2, "<15>1 ", 6) == 0, "%s", m2);
		free(m1);
		free(m2);
		ck_assert_uint_eq(mplog_sink_dropped(s), 0);
		mplog_aggregator_free(a);
		close(srv);
		unlink(un.sun_path);
	}
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(tcp_sink_reconnects_once_then_counts_drops_without_blocking)
{
	int port, l = listen_loopback(SOCK_STREAM, &port);
	char addr[64];
	snprintf(addr, sizeof addr, "tcp:127.0.0.1:%d", port);
	mplog_aggregator *a;
	mplog_sink *s;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_syslog(addr, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(c, 0);
	say(a, MPLOG_INFO, "first");
	char *m = read_frame(c);
	ck_assert_str_eq(after_header(m), "- first");
	free(m);

	/* The collector drops the connection: the sink sees it and reconnects. */
	close(c);
	say(a, MPLOG_INFO, "after reconnect");
	c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(c, 0);
	m = read_frame(c);
	ck_assert_str_eq(after_header(m), "- after reconnect");
	free(m);
	ck_assert_uint_eq(mplog_sink_dropped(s), 0);

	/* The collector is gone for good: messages are counted, not waited on. */
	close(c);
	close(l);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 5; i++)
		say(a, MPLOG_INFO, "lost");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_uint_eq(mplog_sink_dropped(s), 5);
	ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 3);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	assert_all_cloexec();
	mplog_aggregator_free(a);
}
END_TEST

/* ---- a real rsyslogd ------------------------------------------------------ */

static const char *find_rsyslogd(void)
{
	static char path[4096];
	const char *env = getenv("PATH");
	char dirs[4096];
	snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/sbin", env ? env : "/usr/bin:/bin");
	for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(path, sizeof path, "%s/rsyslogd", d);
		if (access(path, X_OK) == 0)
			return path;
	}
	return NULL;
}

struct rsyslog {
	char dir[64];
	char conf[128], pidfile[128], out[128], log[128];
	int udp_port, tcp_port;
	pid_t pid;
};

static int free_port(int type)
{
	int port, fd = listen_loopback(type, &port);
	close(fd);
	return port;
}

static void rsyslog_start(struct rsyslog *rs)
{
	strcpy(rs->dir, "/tmp/mplog-rsyslog-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(rs->dir));
	snprintf(rs->conf, sizeof rs->conf, "%s/rsyslog.conf", rs->dir);
	snprintf(rs->pidfile, sizeof rs->pidfile, "%s/rsyslogd.pid", rs->dir);
	snprintf(rs->out, sizeof rs->out, "%s/messages", rs->dir);
	snprintf(rs->log, sizeof rs->log, "%s/rsyslogd.log", rs->dir);
	rs->udp_port = free_port(SOCK_DGRAM);
	rs->tcp_port = free_port(SOCK_STREAM);
	FILE *f = fopen(rs->conf, "we");
	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"global(workDirectory=\"%s\")\n"
		"module(load=\"imudp\")\n"
		"module(load=\"imtcp\")\n"
		"input(type=\"imudp\" address=\"127.0.0.1\" port=\"%d\")\n"
		"input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\")\n"
		"template(name=\"raw\" type=\"string\" string=\"%%rawmsg%%\\n\")\n"
		"action(type=\"omfile\" file=\"%s\" template=\"raw\")\n",
		rs->dir, rs->udp_port, rs->tcp_port, rs->out);
	ck_assert_int_eq(fclose(f), 0);

	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, rs->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	char *argv[] = {(char *)find_rsyslogd(), "-n", "-f", rs->conf, "-i", rs->pidfile, NULL};
	ck_assert_int_eq(posix_spawn(&rs->pid, argv[0], &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);

	/* Ready when its TCP port accepts (imudp binds in the same activation
	 * step): bounded retries, a short pause between attempts. */
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rs->tcp_port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool ready = false;
	for (int i = 0; i < 500 && !ready; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ready = connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
		close(fd);
		if (!ready) {
			ck_assert_int_eq(waitpid(rs->pid, NULL, WNOHANG), 0); /* still alive */
			nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
		}
	}
	ck_assert_msg(ready, "rsyslogd did not listen on 127.0.0.1:%d within 10 s", rs->tcp_port);
}

static size_t count_lines(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = 0;
	int ch;
	while ((ch = getc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* Wait (inotify on the directory, bounded) until path has n lines. */
static void wait_lines(const char *dir, const char *path, size_t n)
{
	int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	ck_assert_int_ge(in, 0);
	ck_assert_int_ge(inotify_add_watch(in, dir, IN_MODIFY | IN_CREATE | IN_CLOSE_WRITE), 0);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (count_lines(path) < n) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		ck_assert_msg(t.tv_sec - t0.tv_sec < 20, "%s: %zu of %zu lines after 20 s", path,
			      count_lines(path), n);
		struct pollfd p = {.fd = in, .events = POLLIN};
		poll(&p, 1, 1000);
		char buf[4096];
		while (read(in, buf, sizeof buf) > 0)
			;
	}
	close(in);
}

static void rsyslog_stop(struct rsyslog *rs)
{
	int st;
	ck_assert_int_eq(kill(rs->pid, SIGTERM), 0);
	ck_assert_int_eq(waitpid(rs->pid, &st, 0), rs->pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rsyslogd: status 0x%x", st);
}

static void rsyslog_clean(struct rsyslog *rs)
{
	unlink(rs->conf);
	unlink(rs->pidfile);
	unlink(rs->out);
	unlink(rs->log);
	char cmd[160]; /* rsyslogd may leave state files in its work directory */
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", rs->dir);
	ck_assert_int_eq(system(cmd), 0);
}

static int child_logs(int arg)
{
	(void)arg;
	mplog_set_context(3, 17);
	mplog_kv kv[] = {{"user", "a\"b]c\\d"}, {"bad key", "v"}};
	if (mplog_info_kv(kv, 2, "hello %s", "world") || mplog_warn("careful") ||
	    mplog_error("broken") || mplog_fatal("dead") || mplog_debug("detail"))
		return 1;
	printf("to stdout\n");
	return 0;
}

#define RS_LINES 6

START_TEST(rsyslogd_receives_exact_rfc5424_messages_over_udp_and_tcp)
{
	struct rsyslog rs;
	rsyslog_start(&rs);

	/* The child is forked before any thread starts (no aggregator thread
	 * at all here: the test dispatches itself). */
	mplog_aggregator *a;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	char addr[64];
	mplog_sink *udp, *tcp;
	snprintf(addr, sizeof addr, "udp:127.0.0.1:%d", rs.udp_port);
	ck_assert_int_eq(mplog_sink_new_syslog(addr, 0, &udp), 0);
	ck_assert_int_eq(mplog_sink_set_syslog_app_name(udp, "mpk-udp"), 0);
	snprintf(addr, sizeof addr, "tcp:127.0.0.1:%d", rs.tcp_port);
	ck_assert_int_eq(mplog_sink_new_syslog(addr, 0, &tcp), 0);
	ck_assert_int_eq(mplog_sink_set_syslog_app_name(tcp, "mpk-tcp"), 0);
	ck_assert_int_eq(mplog_sink_set_syslog_facility(tcp, 16), 0); /* local0 */
	ck_assert_int_eq(mplog_aggregator_add_sink(a, udp), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, tcp), 0);
	pid_t pid = spawn_child(a, "w3", 3, MPLOG_CAPTURE_STDOUT, child_logs, 0);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	ck_assert_uint_eq(mplog_sink_dropped(udp), 0);
	ck_assert_uint_eq(mplog_sink_dropped(tcp), 0);
	mplog_aggregator_free(a);

	wait_lines(rs.dir, rs.out, 2 * RS_LINES);
	rsyslog_stop(&rs);

	static const struct {
		int sev;
		const char *rest;
	} want[RS_LINES] = {
		{6, "[mpkit@32473 worker=\"3\" task=\"17\" user=\"a\\\"b\\]c\\\\d\" bad_key=\"v\"] hello world"},
		{4, "[mpkit@32473 worker=\"3\" task=\"17\"] careful"},
		{3, "[mpkit@32473 worker=\"3\" task=\"17\"] broken"},
		{2, "[mpkit@32473 worker=\"3\" task=\"17\"] dead"},
		{7, "[mpkit@32473 worker=\"3\" task=\"17\"] detail"},
		{6, "[mpkit@32473 worker=\"3\" stream=\"stdout\"] to stdout"},
	};
	char host[256] = "", hosttok[256];
	gethostname(host, sizeof host - 1);
	mplog__syslog_token(hosttok, sizeof hosttok, host);
	FILE *f = fopen(rs.out, "re");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	size_t nudp = 0, ntcp = 0;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		int pri, year, mon, day, hh, mm, ss, us, off = 0;
		char hostname[256], app[64];
		int procid;
		ck_assert_msg(sscanf(line, "<%d>1 %4d-%2d-%2dT%2d:%2d:%2d.%6dZ %255s %63s %d - %n", &pri,
				     &year, &mon, &day, &hh, &mm, &ss, &us, hostname, app, &procid,
				     &off) == 11 && off > 0,
			      "not RFC 5424: %s", line);
		ck_assert_str_eq(hostname, hosttok);
		ck_assert_int_eq(procid, pid);
		ck_assert_int_ge(year, 2024);
		bool is_udp = strcmp(app, "mpk-udp") == 0;
		ck_assert_msg(is_udp || strcmp(app, "mpk-tcp") == 0, "app %s", app);
		size_t i = is_udp ? nudp++ : ntcp++;
		ck_assert_uint_lt(i, RS_LINES);
		ck_assert_int_eq(pri, (is_udp ? 1 : 16) * 8 + want[i].sev);
		ck_assert_str_eq(line + off, want[i].rest);
	}
	fclose(f);
	ck_assert_uint_eq(nudp, RS_LINES);
	ck_assert_uint_eq(ntcp, RS_LINES);
	rsyslog_clean(&rs);
	mpk_assert_no_children();
}
END_TEST

static Suite *syslog_suite(void)
{
	Suite *s = suite_create("mplog-syslog");
	TCase *tc = tcase_create("syslog");
	tcase_add_test(tc, formatter_writes_rfc5424_with_escaped_structured_data);
	tcase_add_test(tc, levels_map_to_syslog_severities_and_tokens_are_printable);
	tcase_add_test(tc, addresses_are_parsed_and_connection_errors_returned);
	tcase_add_test(tc, unix_datagram_and_stream_sockets_get_one_message_each);
	tcase_add_test(tc, tcp_sink_reconnects_once_then_counts_drops_without_blocking);
	if (find_rsyslogd())
		tcase_add_test(tc, rsyslogd_receives_exact_rfc5424_messages_over_udp_and_tcp);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	struct rlimit nocore = {0, 0};
	setrlimit(RLIMIT_CORE, &nocore);
	SRunner *sr = srunner_create(syslog_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed)
		return EXIT_FAILURE;
	if (!find_rsyslogd()) {
		printf("SKIP: rsyslogd not found in PATH, /usr/sbin or /sbin (apt-get install "
		       "rsyslog): the formatter and socket tests passed, the real-rsyslogd test "
		       "did not run\n");
		return 77;
	}
	return EXIT_SUCCESS;
}
