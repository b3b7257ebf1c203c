/* SPDX-License-Identifier: MIT */
/* libmplog's syslog sink: the RFC 5424 and RFC 3164 formatters on their
 * own (severities, structured data escaping, names, SD-IDs), address
 * errors, unix datagram and stream sockets, a TCP collector that goes away
 * (reconnect, then counted drops), and the real thing: records from a
 * forked child sent over UDP and TCP to an rsyslogd this test starts on
 * loopback, and to its imuxsock on a /dev/log of its own, parsed as its
 * default configuration parses /dev/log, read back from the files rsyslogd
 * writes. Without rsyslogd the other tests run and the program exits 77
 * saying why. */
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

/* r as RFC 5424 (with sd_id, or the "origin" SD) or, form 3164, as RFC 3164. */
static char *fmt_form(const mplog_record *r, int facility, int form, const char *sd_id)
{
	struct mpk_buf b = {0};
	if (form == 3164)
		mplog__format_rfc3164(&b, r, facility, "app");
	else
		mplog__format_syslog(&b, r, facility, "host", "app", sd_id);
	mpk_buf_put_u8(&b, 0);
	ck_assert(!b.oom);
	return (char *)b.data;
}

static char *fmt_rec(const mplog_record *r, int facility)
{
	return fmt_form(r, facility, 5424, "ex@32473");
}

/* The registered SD-ID "origin" element of RFC 5424 7.2 this mpkit sends. */
static const char *origin(void)
{
	static char o[96];
	snprintf(o, sizeof o, "[origin software=\"mpkit\" swVersion=\"%s\"]", mplog_version());
	return o;
}

START_TEST(formatter_writes_rfc5424_with_escaped_structured_data)
{
	const char *kv[] = {"user", "a\"b]c\\d", "bad key=x\"]", "v", "", "empty name",
			    "a_name_longer_than_thirty_two_characters", "x", "bytes", "ok\xff"};
	mplog_record r = {.ts = 1700000000123456789ull, .level = MPLOG_INFO, .pid = 42, .worker = 3,
			  .task = 17, .stream = MPLOG_STREAM_LOG, .msg = "hello [world]",
			  .msg_len = 13, .nkv = 5, .kv = kv, .channel = "", .file = "", .func = "",
			  .host = "", .rank = -1};
	char *s = fmt_rec(&r, 1);
	ck_assert_str_eq(s, "<14>1 2023-11-14T22:13:20.123456Z host app 42 - [ex@32473 worker=\"3\" "
			    "task=\"17\" user=\"a\\\"b\\]c\\\\d\" bad_key_x__=\"v\" _=\"empty name\" "
			    "a_name_longer_than_thirty_two_ch=\"x\" bytes=\"ok\xef\xbf\xbd\"] hello [world]");
	free(s);

	/* No context, no key-values: "-" for the structured data and the pid. */
	mplog_record bare = {.ts = 999, .level = MPLOG_ERROR, .pid = 0, .worker = -1, .task = -1,
			     .msg = "", .msg_len = 0, .channel = "", .file = "", .func = "",
			     .host = "", .rank = -1};
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
			    "[ex@32473 worker=\"0\" stream=\"stderr\"] line");
	free(s);

	/* No SD-ID of the caller's: the registered "origin", the parameters
	 * after the message. */
	char want[512];
	s = fmt_form(&r, 1, 5424, NULL);
	snprintf(want, sizeof want, "<14>1 2023-11-14T22:13:20.123456Z host app 42 - %s hello [world] "
		 "[worker=\"3\" task=\"17\" user=\"a\\\"b\\]c\\\\d\" bad_key_x__=\"v\" "
		 "_=\"empty name\" a_name_longer_than_thirty_two_ch=\"x\" bytes=\"ok\xef\xbf\xbd\"]",
		 origin());
	ck_assert_str_eq(s, want);
	free(s);
	s = fmt_form(&bare, 16, 5424, NULL);
	snprintf(want, sizeof want, "<131>1 1970-01-01T00:00:00.000000Z host app - - %s", origin());
	ck_assert_str_eq(s, want);
	free(s);

	/* The local form, as glibc's syslog() sends it: local time, no host. */
	setenv("TZ", "UTC", 1);
	tzset();
	s = fmt_form(&r, 1, 3164, NULL);
	ck_assert_str_eq(s, "<14>Nov 14 22:13:20 app[42]: hello [world] [worker=\"3\" task=\"17\" "
			    "user=\"a\\\"b\\]c\\\\d\" bad_key_x__=\"v\" _=\"empty name\" "
			    "a_name_longer_than_thirty_two_ch=\"x\" bytes=\"ok\xef\xbf\xbd\"]");
	free(s);
	s = fmt_form(&bare, 16, 3164, NULL);
	ck_assert_str_eq(s, "<131>Jan  1 00:00:00 app: ");
	free(s);
	s = fmt_form(&out, 1, 3164, NULL);
	ck_assert_str_eq(s, "<12>Jan  1 00:00:00 app[7]: line [worker=\"0\" stream=\"stderr\"]");
	free(s);

	/* A record of another MPI rank (mplog_aggregator_inject()): its host
	 * is RFC 5424's HOSTNAME (a token) and, with its rank, a parameter
	 * (the only place RFC 3164's local form has for it). */
	mplog_record remote = out;
	remote.host = "node 2";
	remote.rank = 2;
	s = fmt_rec(&remote, 1);
	ck_assert_str_eq(s, "<12>1 1970-01-01T00:00:00.000000Z node_2 app 7 - "
			    "[ex@32473 host=\"node 2\" rank=\"2\" worker=\"0\" stream=\"stderr\"] line");
	free(s);
	s = fmt_form(&remote, 1, 3164, NULL);
	ck_assert_str_eq(s, "<12>Jan  1 00:00:00 app[7]: line [host=\"node 2\" rank=\"2\" worker=\"0\" "
			    "stream=\"stderr\"]");
	free(s);
}
END_TEST

START_TEST(sd_ids_are_name_at_enterprise_number)
{
	const char *good[] = {"ex@32473", "mpkit@1.2.3", "a@1", "x_y-z@123456789012345678901"};
	const char *bad[] = {NULL, "", "mpkit", "@32473", "mpkit@", "mp kit@1", "a=b@1", "a]@1",
			     "a\"@1", "a@b@1", "a@x1", "a@.1", "abcdefghijklmnopqrstuvwxyz@1234567"};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		ck_assert_msg(mplog__syslog_sd_id_valid(good[i]), "%s", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(!mplog__syslog_sd_id_valid(bad[i]), "%s", bad[i] ? bad[i] : "NULL");
	mplog_sink *s;
	ck_assert_int_eq(mplog_sink_new_syslog("udp:127.0.0.1:514", 0, &s), 0);
	ck_assert_int_eq(mplog_sink_set_syslog_sd_id(s, "mpkit"), -EINVAL);
	ck_assert_int_eq(mplog_sink_set_syslog_sd_id(s, NULL), -EINVAL);
	ck_assert_int_eq(mplog_sink_set_syslog_sd_id(s, "mine@32473"), 0);
	mplog_sink_free(s);
	ck_assert_int_eq(mplog_sink_set_syslog_sd_id(NULL, "mine@32473"), -EINVAL);
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
	ck_assert_int_eq(mplog_sink_new_syslog("udp:127.0.0.1:514", 4, &s), -EINVAL);
	ck_assert_int_eq(mplog_sink_new_syslog("udp:127.0.0.1:514", MPLOG_SYSLOG_RFC3164 |
						 MPLOG_SYSLOG_RFC5424, &s), -EINVAL);
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
		/* The datagram socket gets the local form by default; the stream
		 * socket asks for RFC 5424. */
		unsigned form = types[t] == SOCK_DGRAM ? 0 : MPLOG_SYSLOG_RFC5424;
		ck_assert_int_eq(mplog_sink_new_syslog(addr, form, &s), 0);
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
		char want[128];
		if (form) {
			snprintf(want, sizeof want, " my_app %d - %s over unix", (int)getpid(), origin());
			ck_assert_msg(strncmp(m1, "<13>1 ", 6) == 0 && strstr(m1, want), "%s", m1);
			snprintf(want, sizeof want, "%s second", origin());
			ck_assert_str_eq(after_header(m2), want);
			ck_assert_msg(strncmp(m2, "<15>1 ", 6) == 0, "%s", m2);
		} else {
			/* "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG", as glibc's syslog() */
			char mon[4], tag[32];
			int day, hh, mm, ss, pid, off = 0;
			ck_assert_msg(sscanf(m1, "<13>%3s %2d %2d:%2d:%2d %31[^[][%d]: %n", mon, &day,
					     &hh, &mm, &ss, tag, &pid, &off) == 7 && off > 0, "%s", m1);
			ck_assert_str_eq(tag, "my_app");
			ck_assert_int_eq(pid, getpid());
			ck_assert_str_eq(m1 + off, "over unix");
			ck_assert_int_eq(m1[19], ' ');
			snprintf(want, sizeof want, "my_app[%d]: second", (int)getpid());
			ck_assert_msg(strncmp(m2, "<15>", 4) == 0 && strcmp(m2 + 20, want) == 0, "%s", m2);
		}
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
	char want[128];
	snprintf(want, sizeof want, "%s first", origin());
	ck_assert_str_eq(after_header(m), want);
	free(m);

	/* The collector drops the connection: the sink sees it and reconnects. */
	close(c);
	say(a, MPLOG_INFO, "after reconnect");
	c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(c, 0);
	m = read_frame(c);
	snprintf(want, sizeof want, "%s after reconnect", origin());
	ck_assert_str_eq(after_header(m), want);
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
	char sock[128], local[128], fields[128]; /* a /dev/log of its own */
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
	snprintf(rs->sock, sizeof rs->sock, "%s/log", rs->dir);
	snprintf(rs->local, sizeof rs->local, "%s/syslog", rs->dir);
	snprintf(rs->fields, sizeof rs->fields, "%s/fields", rs->dir);
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
		"action(type=\"omfile\" file=\"%s\" template=\"raw\")\n"
		/* A /dev/log of its own, read by imuxsock as the default
		 * configuration does (its default parsing; the machine's socket
		 * left alone), written as /var/log/syslog is, and field by field. */
		"module(load=\"imuxsock\" SysSock.Use=\"off\")\n"
		"input(type=\"imuxsock\" Socket=\"%s\" ruleset=\"local\")\n"
		"template(name=\"fields\" type=\"string\" string=\"%%syslogfacility%%|"
		"%%syslogseverity%%|%%programname%%|%%procid%%|%%msg%%\\n\")\n"
		"ruleset(name=\"local\") {\n"
		"  action(type=\"omfile\" file=\"%s\" template=\"RSYSLOG_TraditionalFileFormat\")\n"
		"  action(type=\"omfile\" file=\"%s\" template=\"fields\")\n"
		"}\n",
		rs->dir, rs->udp_port, rs->tcp_port, rs->out, rs->sock, rs->local, rs->fields);
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
	struct stat st; /* imuxsock made it in the same activation step */
	ck_assert_msg(stat(rs->sock, &st) == 0 && S_ISSOCK(st.st_mode), "no socket %s", rs->sock);
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
	ck_assert_int_eq(mplog_sink_set_syslog_sd_id(tcp, "ex@32473"), 0);
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

	/* TCP: the parameters in structured data of the caller's SD-ID; UDP:
	 * the registered "origin", the parameters after the message. */
	static const struct {
		int sev;
		const char *sd, *msg;
	} want[RS_LINES] = {
		{6, "worker=\"3\" task=\"17\" user=\"a\\\"b\\]c\\\\d\" bad_key=\"v\"", "hello world"},
		{4, "worker=\"3\" task=\"17\"", "careful"},
		{3, "worker=\"3\" task=\"17\"", "broken"},
		{2, "worker=\"3\" task=\"17\"", "dead"},
		{7, "worker=\"3\" task=\"17\"", "detail"},
		{6, "worker=\"3\" stream=\"stdout\"", "to stdout"},
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
		char rest[512];
		if (is_udp)
			snprintf(rest, sizeof rest, "%s %s [%s]", origin(), want[i].msg, want[i].sd);
		else
			snprintf(rest, sizeof rest, "[ex@32473 %s] %s", want[i].sd, want[i].msg);
		ck_assert_str_eq(line + off, rest);
	}
	fclose(f);
	ck_assert_uint_eq(nudp, RS_LINES);
	ck_assert_uint_eq(ntcp, RS_LINES);
	rsyslog_clean(&rs);
	mpk_assert_no_children();
}
END_TEST

/* The default address's form: what rsyslogd's default configuration
 * parses on /dev/log (imuxsock): the program, its pid, the severity and
 * the message, nothing of the header left in the message. */
START_TEST(rsyslogd_parses_the_local_form_on_a_dev_log_socket)
{
	struct rsyslog rs;
	rsyslog_start(&rs);
	mplog_aggregator *a;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	char addr[160];
	mplog_sink *local;
	snprintf(addr, sizeof addr, "unix:%s", rs.sock);
	ck_assert_int_eq(mplog_sink_new_syslog(addr, 0, &local), 0);
	ck_assert_int_eq(mplog_sink_set_syslog_app_name(local, "mpk-local"), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, local), 0);
	pid_t pid = spawn_child(a, "w3", 3, MPLOG_CAPTURE_STDOUT, child_logs, 0);
	reap_ok(pid);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	ck_assert_uint_eq(mplog_sink_dropped(local), 0);
	mplog_aggregator_free(a);
	wait_lines(rs.dir, rs.fields, RS_LINES);
	wait_lines(rs.dir, rs.local, RS_LINES);
	rsyslog_stop(&rs);

	static const struct {
		int sev;
		const char *msg;
	} want[RS_LINES] = {
		{6, "hello world [worker=\"3\" task=\"17\" user=\"a\\\"b\\]c\\\\d\" bad_key=\"v\"]"},
		{4, "careful [worker=\"3\" task=\"17\"]"},
		{3, "broken [worker=\"3\" task=\"17\"]"},
		{2, "dead [worker=\"3\" task=\"17\"]"},
		{7, "detail [worker=\"3\" task=\"17\"]"},
		{6, "to stdout [worker=\"3\" stream=\"stdout\"]"},
	};
	FILE *f = fopen(rs.fields, "re");
	ck_assert_ptr_nonnull(f);
	char line[1024], want_line[1024];
	for (size_t i = 0; i < RS_LINES; i++) {
		ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
		line[strcspn(line, "\n")] = 0;
		snprintf(want_line, sizeof want_line, "1|%d|mpk-local|%d| %s", want[i].sev, (int)pid,
			 want[i].msg);
		ck_assert_str_eq(line, want_line);
	}
	fclose(f);
	/* As /var/log/syslog shows it: "TIME HOST mpk-local[PID]: MSG". */
	f = fopen(rs.local, "re");
	ck_assert_ptr_nonnull(f);
	for (size_t i = 0; i < RS_LINES; i++) {
		ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
		line[strcspn(line, "\n")] = 0;
		snprintf(want_line, sizeof want_line, " mpk-local[%d]: %s", (int)pid, want[i].msg);
		size_t n = strlen(line), w = strlen(want_line);
		ck_assert_msg(n > w && strcmp(line + n - w, want_line) == 0, "%s", line);
	}
	fclose(f);
	unlink(rs.sock);
	unlink(rs.local);
	unlink(rs.fields);
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
	tcase_add_test(tc, sd_ids_are_name_at_enterprise_number);
	tcase_add_test(tc, addresses_are_parsed_and_connection_errors_returned);
	tcase_add_test(tc, unix_datagram_and_stream_sockets_get_one_message_each);
	tcase_add_test(tc, tcp_sink_reconnects_once_then_counts_drops_without_blocking);
	if (find_rsyslogd())
		tcase_add_test(tc, rsyslogd_receives_exact_rfc5424_messages_over_udp_and_tcp);
	if (find_rsyslogd())
		tcase_add_test(tc, rsyslogd_parses_the_local_form_on_a_dev_log_socket);
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
