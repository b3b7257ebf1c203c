/* SPDX-License-Identifier: MIT */
/* libmplog's journal sink: the native protocol's datagrams as a socket of
 * the test receives them (field names, multi-line values, a record too big
 * for a datagram in a sealed memfd), the default sink's choice between
 * stderr's text and the journal (JOURNAL_STREAM), and the real thing: a
 * pool and a supervisor whose stderr is the journal of a systemd-journald
 * this test starts in a mount namespace of its own (its own /run/systemd,
 * /run/log and /var/log/journal), read back with journalctl -o json
 * MPKIT_WORKER=2. Without the right to make a mount namespace (a container
 * without CAP_SYS_ADMIN) but as root, journald runs as a journal namespace
 * instance of its own (/run/systemd/journal.NS, journalctl --namespace=NS,
 * removed after), and the pool and supervisor log to it through a journal
 * sink of their aggregator, since the default sink's choice needs the
 * journal at its usual path. Where journald cannot start at all (no
 * systemd package, neither), the other tests run and the program exits 77
 * saying why. MPKIT_TEST_JOURNALD=instance chooses the instance where a
 * mount namespace would do. */
#include "mpk-test.h"
#include <mpguard.h>
#include <mplog.h>

#include <endian.h>
#include <json-c/json.h>
#include <sched.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

extern char **environ;

/* ---- datagrams as the journal gets them ------------------------------------ */

/* A unix datagram socket bound at path (its directory there already). */
static int bind_dgram(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof un), 0);
	int big = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
	return fd;
}

/* A unix datagram socket bound at a fresh path (in *path). */
static int listen_dgram(char *path, size_t cap)
{
	char dir[] = "/tmp/mplog-journal-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, cap, "%s/socket", dir);
	return bind_dgram(path);
}

static void unlisten(int fd, const char *path)
{
	close(fd);
	unlink(path);
	char dir[108];
	snprintf(dir, sizeof dir, "%s", path);
	*strrchr(dir, '/') = 0;
	rmdir(dir);
}

struct field {
	char name[80];
	char *value;
	size_t len;
};

/* Parse a native-protocol message into fields; NULL-terminated array. */
static struct field *parse_fields(const char *p, size_t n, size_t *count)
{
	struct field *f = calloc(256, sizeof *f);
	ck_assert_ptr_nonnull(f);
	size_t k = 0, i = 0;
	while (i < n) {
		ck_assert_uint_lt(k, 255);
		const char *nl = memchr(p + i, '\n', n - i);
		const char *eq = memchr(p + i, '=', n - i);
		ck_assert_msg(nl, "a field without its newline");
		if (eq && eq < nl) { /* NAME=value\n */
			snprintf(f[k].name, sizeof f[k].name, "%.*s", (int)(eq - p - i), p + i);
			f[k].len = (size_t)(nl - eq - 1);
			f[k].value = strndup(eq + 1, f[k].len);
			i = (size_t)(nl - p) + 1;
		} else { /* NAME\n le64 value\n */
			snprintf(f[k].name, sizeof f[k].name, "%.*s", (int)(nl - p - i), p + i);
			i = (size_t)(nl - p) + 1;
			ck_assert_uint_le(i + 8, n);
			uint64_t le;
			memcpy(&le, p + i, 8);
			f[k].len = (size_t)le64toh(le);
			i += 8;
			ck_assert_uint_le(i + f[k].len + 1, n);
			f[k].value = malloc(f[k].len + 1);
			memcpy(f[k].value, p + i, f[k].len);
			f[k].value[f[k].len] = 0;
			i += f[k].len;
			ck_assert_int_eq(p[i], '\n');
			i++;
		}
		k++;
	}
	*count = k;
	return f;
}

static const struct field *get(const struct field *f, size_t n, const char *name)
{
	const struct field *found = NULL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(f[i].name, name) == 0) {
			ck_assert_msg(!found, "field %s twice", name);
			found = &f[i];
		}
	return found;
}

static void free_fields(struct field *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(f[i].value);
	free(f);
}

#define ASSERT_FIELD(f, n, name, want)                                                   \
	do {                                                                             \
		const struct field *x_ = get(f, n, name);                                \
		ck_assert_msg(x_, "no field %s", name);                                  \
		ck_assert_str_eq(x_->value, want);                                       \
	} while (0)

/* Receive one datagram, or the memfd an empty datagram carries: its bytes
 * into *buf (malloc'ed), whether it came in a memfd in *memfd_seals (its
 * seals, or -1). */
static size_t recv_message(int fd, char **buf, int *memfd_seals)
{
	size_t cap = 16u << 20;
	*buf = malloc(cap);
	ck_assert_ptr_nonnull(*buf);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = {*buf, cap};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
			    .msg_controllen = sizeof ctl.b};
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	ck_assert_msg(poll(&pf, 1, 10000) == 1, "no message within 10 s");
	ssize_t k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	ck_assert_int_ge(k, 0);
	*memfd_seals = -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (!c)
		return (size_t)k;
	ck_assert_int_eq(k, 0); /* the protocol: an empty datagram and the fd */
	ck_assert_int_eq(c->cmsg_type, SCM_RIGHTS);
	int mfd;
	memcpy(&mfd, CMSG_DATA(c), sizeof mfd);
	*memfd_seals = fcntl(mfd, F_GET_SEALS);
	struct stat st;
	ck_assert_int_eq(fstat(mfd, &st), 0);
	*buf = realloc(*buf, (size_t)st.st_size + 1);
	ck_assert_int_eq(pread(mfd, *buf, (size_t)st.st_size, 0), st.st_size);
	close(mfd);
	return (size_t)st.st_size;
}

START_TEST(records_become_native_protocol_datagrams_with_fields)
{
	char path[108];
	int rx = listen_dgram(path, sizeof path);
	mplog_aggregator *a;
	mplog_sink *s;
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_journal(path, 0, &s), 0);
	ck_assert_int_eq(mplog_sink_set_syslog_app_name(s, "render app"), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	ck_assert_int_eq(mplog_aggregator_writer(a, &w), 0);

	const mplog_kv kv[] = {
		{"mpg.kind", "signaled"},
		{"mpg.backtrace", "#0 crash at x.c:3\n#1 main\n"},
		{"user-id", "42"},
		{"priority", "mine"},       /* the journal's own: renamed */
		{"_trusted", "no"},         /* journald would take it for trusted */
		{"9lives", "cat"},          /* a digit cannot start a name */
		{"MPKIT_WORKER", "forged"}, /* the sink's own: renamed */
	};
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_WARN, "src/a.c", 12, "fn", kv, 7,
					  "two\nlines"), 0);
	ck_assert_int_eq(mplog_aggregator_dispatch(a, 0), 0);
	char *msg;
	int seals;
	size_t n = recv_message(rx, &msg, &seals);
	ck_assert_int_eq(seals, -1);
	size_t nf;
	struct field *f = parse_fields(msg, n, &nf);
	ASSERT_FIELD(f, nf, "MESSAGE", "two\nlines");
	ASSERT_FIELD(f, nf, "PRIORITY", "4");
	ASSERT_FIELD(f, nf, "SYSLOG_IDENTIFIER", "render_app");
	ck_assert_ptr_null(get(f, nf, "SYSLOG_FACILITY")); /* none set */
	ASSERT_FIELD(f, nf, "CODE_FILE", "src/a.c");
	ASSERT_FIELD(f, nf, "CODE_LINE", "12");
	ASSERT_FIELD(f, nf, "CODE_FUNC", "fn");
	char pid[24];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	ASSERT_FIELD(f, nf, "MPKIT_PID", pid);
	ck_assert_ptr_null(get(f, nf, "MPKIT_WORKER")); /* the parent's: no worker */
	ck_assert_ptr_null(get(f, nf, "MPKIT_TASK"));
	ASSERT_FIELD(f, nf, "MPG_KIND", "signaled");
	ASSERT_FIELD(f, nf, "MPG_BACKTRACE", "#0 crash at x.c:3\n#1 main\n");
	ASSERT_FIELD(f, nf, "USER_ID", "42");
	ASSERT_FIELD(f, nf, "MPKIT_KV_PRIORITY", "mine");
	ASSERT_FIELD(f, nf, "MPKIT_KV__TRUSTED", "no");
	ASSERT_FIELD(f, nf, "MPKIT_KV_9LIVES", "cat");
	ASSERT_FIELD(f, nf, "MPKIT_KV_MPKIT_WORKER", "forged");
	for (size_t i = 0; i < nf; i++) { /* every name one journald accepts */
		const char *nm = f[i].name;
		ck_assert_msg(strlen(nm) > 0 && strlen(nm) <= 64 && nm[0] != '_' &&
			      !(nm[0] >= '0' && nm[0] <= '9') &&
			      strspn(nm, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == strlen(nm),
			      "bad field name %s", nm);
	}
	free_fields(f, nf);
	free(msg);

	/* Over what a datagram holds (the socket's send buffer: the sink asks
	 * for 8 MiB, the kernel gives twice that capped by wmem_max): a sealed
	 * memfd, the same fields. */
	long wmem_max = 212992;
	FILE *wf = fopen("/proc/sys/net/core/wmem_max", "re");
	if (wf) {
		if (fscanf(wf, "%ld", &wmem_max) != 1)
			wmem_max = 212992;
		fclose(wf);
	}
	size_t sndbuf = 2 * (size_t)(wmem_max < (8l << 20) ? wmem_max : (8l << 20));
	size_t total = sndbuf + (1u << 20);
	if (total > (15u << 20))
		total = 15u << 20; /* under MPLOG_RECORD_MAX: a datagram may take it */
	size_t big = 60000, nbig = total / big + 1;
	ck_assert_uint_lt(nbig, 255);
	char *v = malloc(big + 1);
	memset(v, 'x', big);
	v[big] = 0;
	mplog_kv *bkv = calloc(nbig, sizeof *bkv);
	char (*names)[8] = calloc(nbig, sizeof *names);
	for (size_t i = 0; i < nbig; i++) {
		snprintf(names[i], sizeof names[i], "big%zu", i);
		bkv[i] = (mplog_kv){names[i], v};
	}
	ck_assert_int_eq(mplog_sink_set_syslog_facility(s, 16), 0);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, bkv, nbig, "big"), 0);
	ck_assert_int_eq(mplog_aggregator_dispatch(a, 0), 0);
	n = recv_message(rx, &msg, &seals);
	if (n > sndbuf) {
		ck_assert_msg(seals >= 0, "a record of %zu bytes came in a datagram", n);
		int want = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
		ck_assert_int_eq(seals & want, want);
	}
	f = parse_fields(msg, n, &nf);
	ASSERT_FIELD(f, nf, "MESSAGE", "big");
	ASSERT_FIELD(f, nf, "SYSLOG_FACILITY", "16");
	for (size_t i = 0; i < nbig; i++) {
		char nm[8];
		snprintf(nm, sizeof nm, "BIG%zu", i);
		ASSERT_FIELD(f, nf, nm, v);
	}
	free_fields(f, nf);
	free(msg);
	free(v);
	free(bkv);
	free(names);
	ck_assert_uint_eq(mplog_sink_dropped(s), 0);

	/* journald gone: records are dropped and counted, flush says why. */
	close(rx);
	unlink(path);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, NULL, 0, "lost"), 0);
	ck_assert_int_eq(mplog_aggregator_dispatch(a, 0), 0);
	ck_assert_uint_eq(mplog_sink_dropped(s), 1);
	ck_assert_int_eq(mplog_aggregator_flush(a), -ENOENT);
	/* For a second, records are dropped without trying: back at once,
	 * the journal still gets nothing of that second. */
	rx = bind_dgram(path);
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, NULL, 0, "skipped"), 0);
	ck_assert_uint_eq(mplog_sink_dropped(s), 2);
	ck_assert_int_eq(mplog_aggregator_flush(a), 0);
	struct pollfd none = {.fd = rx, .events = POLLIN};
	ck_assert_int_eq(poll(&none, 1, 0), 0);
	unlisten(rx, path);
	mplog_writer_free(w);
	mplog_aggregator_free(a);
}
END_TEST

/* A callback sink keeping the last record encoded for another aggregator. */
struct one_encoded {
	uint8_t buf[4096];
	size_t len;
};

static void encode_last(const mplog_record *r, void *userdata)
{
	struct one_encoded *e = userdata;
	ssize_t n = mplog_record_encode(r, 0, e->buf, sizeof e->buf);
	ck_assert_int_gt(n, 0);
	ck_assert_int_lt(n, (ssize_t)sizeof e->buf);
	e->len = (size_t)n;
}

START_TEST(a_record_of_another_rank_carries_its_host_pid_and_rank_as_fields)
{
	struct one_encoded e = {0};
	mplog_aggregator *agent;
	mplog_sink *s;
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_new(&agent), 0);
	ck_assert_int_eq(mplog_sink_new_callback(encode_last, &e, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(agent, s), 0);
	ck_assert_int_eq(mplog_aggregator_writer(agent, &w), 0);
	const mplog_kv kv[] = {{"mpkit.rank", "forged"}, {"MPKIT_HOST", "forged"}};
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, "a.c", 1, "f", kv, 2, "from rank 2"), 0);
	mplog_writer_free(w);
	mplog_aggregator_free(agent);
	ck_assert_uint_gt(e.len, 0);

	char path[108];
	int rx = listen_dgram(path, sizeof path);
	mplog_aggregator *a;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_journal(path, 0, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	ck_assert_int_eq(mplog_aggregator_inject(a, e.buf, e.len, "node2", 4242, 2), 0);
	char *msg;
	int seals;
	size_t n = recv_message(rx, &msg, &seals);
	size_t nf;
	struct field *f = parse_fields(msg, n, &nf);
	ASSERT_FIELD(f, nf, "MESSAGE", "from rank 2");
	ASSERT_FIELD(f, nf, "MPKIT_HOST", "node2");
	ASSERT_FIELD(f, nf, "MPKIT_HOST_PID", "4242");
	ASSERT_FIELD(f, nf, "MPKIT_RANK", "2");
	ASSERT_FIELD(f, nf, "MPKIT_KV_MPKIT_HOST", "forged"); /* a key never takes their place */
	ASSERT_FIELD(f, nf, "MPKIT_KV_MPKIT_RANK", "forged");
	free_fields(f, nf);
	free(msg);
	mplog_aggregator_free(a);
	unlisten(rx, path);
}
END_TEST

START_TEST(journal_sink_arguments_are_checked)
{
	mplog_sink *s = NULL;
	ck_assert_int_eq(mplog_sink_new_journal(NULL, 1, &s), -EINVAL);
	ck_assert_int_eq(mplog_sink_new_journal("", 0, &s), -EINVAL);
	ck_assert_int_eq(mplog_sink_new_journal("/tmp/x", 0, NULL), -EINVAL);
	char longp[200];
	memset(longp, 'a', sizeof longp - 1);
	longp[sizeof longp - 1] = 0;
	ck_assert_int_eq(mplog_sink_new_journal(longp, 0, &s), -EINVAL);
	ck_assert_int_eq(mplog_sink_new_journal("/nonexistent/journal/socket", 0, &s), -ENOENT);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(mplog_sink_new_stderr(MPLOG_SINK_COLOR_NEVER | MPLOG_SINK_COLOR_ALWAYS, &s),
			 -EINVAL);
	ck_assert_int_eq(mplog_sink_new_stderr(0, NULL), -EINVAL);
}
END_TEST

/* Whether s is a journal sink: only syslog and journal sinks take an app
 * name, and mplog_sink_new_stderr() makes no syslog sink. */
static bool is_journal(mplog_sink *s)
{
	return mplog_sink_set_syslog_app_name(s, "probe") == 0;
}

static void set_journal_stream(int fd)
{
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	char v[64];
	snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
}

START_TEST(stderr_sink_is_text_unless_journal_stream_names_fd_2)
{
	mplog_sink *s;
	unsetenv("JOURNAL_STREAM");
	ck_assert_int_eq(mplog_sink_new_stderr(0, &s), 0);
	ck_assert(!is_journal(s));
	mplog_sink_free(s);

	/* Another file's device and inode: a child that redirected stderr. */
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	set_journal_stream(p[1]);
	ck_assert_int_eq(mplog_sink_new_stderr(0, &s), 0);
	ck_assert(!is_journal(s));
	mplog_sink_free(s);
	setenv("JOURNAL_STREAM", "garbage", 1);
	ck_assert_int_eq(mplog_sink_new_stderr(0, &s), 0);
	ck_assert(!is_journal(s));
	mplog_sink_free(s);

	/* fd 2 named, but no journald at /run/systemd/journal/socket (this
	 * test's namespace, if it has one, has none): text all the same. */
	struct stat st;
	int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	ck_assert_int_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	set_journal_stream(STDERR_FILENO);
	if (stat("/run/systemd/journal/socket", &st) != 0) {
		ck_assert_int_eq(mplog_sink_new_stderr(0, &s), 0);
		ck_assert(!is_journal(s));
		mplog_sink_free(s);
	}
	ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);
	unsetenv("JOURNAL_STREAM");
}
END_TEST

/* ---- a real systemd-journald ----------------------------------------------- */

static const char *find_exe(const char *const *cands)
{
	for (size_t i = 0; cands[i]; i++)
		if (access(cands[i], X_OK) == 0)
			return cands[i];
	return NULL;
}

static const char *journald_path(void)
{
	static const char *const c[] = {"/usr/lib/systemd/systemd-journald",
					"/lib/systemd/systemd-journald", NULL};
	return find_exe(c);
}

static const char *journalctl_path(void)
{
	static const char *const c[] = {"/usr/bin/journalctl", "/bin/journalctl", NULL};
	return find_exe(c);
}

/* Make this process's own /run/systemd, /run/log and /var/log/journal:
 * empty tmpfs in a mount namespace of its own, so the journald started
 * here neither sees nor disturbs the machine's. 0 or -errno, with what
 * failed in *what. */
static int private_journal_dirs(const char **what)
{
	*what = "unshare(CLONE_NEWNS)";
	if (unshare(CLONE_NEWNS) < 0)
		return -errno;
	*what = "mount(/, MS_REC | MS_PRIVATE)";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	static const char *const dirs[] = {"/run/systemd", "/run/log", "/var/log/journal"};
	for (size_t i = 0; i < 3; i++) {
		struct stat st;
		if (i == 2 && stat(dirs[i], &st) != 0)
			continue; /* none: journald keeps to /run/log/journal */
		mkdir(dirs[i], 0755);
		*what = dirs[i];
		if (mount("tmpfs", dirs[i], "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
			return -errno;
	}
	return 0;
}

/* How journald runs here: in a mount namespace of the test's own (the
 * journal at its usual paths), or as a journal namespace instance. */
enum jd_mode { JD_NONE, JD_MOUNT_NS, JD_INSTANCE };
static enum jd_mode jd_mode;

/* Why journald cannot run here, or NULL (jd_mode says how it can): the
 * mount namespace is tried in a child, which leaves this process alone. */
static const char *journald_unavailable(void)
{
	static char why[256];
	jd_mode = JD_NONE;
	if (!journald_path())
		return "systemd-journald not found in /usr/lib/systemd or /lib/systemd (apt-get "
		       "install systemd)";
	if (!journalctl_path())
		return "journalctl not found in /usr/bin or /bin (apt-get install systemd)";
	/* MPKIT_TEST_JOURNALD=instance tries the fallback where both work. */
	const char *force = getenv("MPKIT_TEST_JOURNALD");
	if (force && strcmp(force, "instance") == 0 && geteuid() == 0) {
		jd_mode = JD_INSTANCE;
		return NULL;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return "pipe2() failed";
	pid_t pid = fork();
	if (pid == 0) {
		const char *what;
		int r = private_journal_dirs(&what);
		if (r < 0)
			dprintf(p[1], "%s: %s", what, strerror(-r));
		_exit(r < 0);
	}
	close(p[1]);
	ssize_t k = read(p[0], why, sizeof why - 1);
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		jd_mode = JD_MOUNT_NS;
		return NULL;
	}
	if (geteuid() == 0) { /* it may write /run and /var/log/journal */
		jd_mode = JD_INSTANCE;
		return NULL;
	}
	size_t n = k > 0 ? (size_t)k : 0;
	snprintf(why + n, sizeof why - n, " (a mount namespace of its own needs CAP_SYS_ADMIN) "
		 "and not root (a journal namespace instance writes /run/systemd)");
	return why;
}

struct journald {
	pid_t pid;
	int notify;
	char ns[64];      /* JD_INSTANCE: its namespace; else "" */
	char socket[160]; /* its native protocol socket */
	char notify_dir[64];
};

/* Start journald (jd_mode) and wait for its READY=1 on NOTIFY_SOCKET (it
 * has made every socket by then). */
static void journald_start(struct journald *j)
{
	*j = (struct journald){0};
	if (jd_mode == JD_MOUNT_NS) {
		const char *what;
		int r = private_journal_dirs(&what);
		ck_assert_msg(r == 0, "%s: %s", what, strerror(-r));
		snprintf(j->socket, sizeof j->socket, "/run/systemd/journal/socket");
	} else {
		snprintf(j->ns, sizeof j->ns, "mpkit-test-%d", (int)getpid());
		snprintf(j->socket, sizeof j->socket, "/run/systemd/journal.%s/socket", j->ns);
	}
	strcpy(j->notify_dir, "/tmp/mplog-journald-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(j->notify_dir));
	char np[108];
	snprintf(np, sizeof np, "%s/notify", j->notify_dir);
	j->notify = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof un.sun_path, "%s", np);
	ck_assert_int_eq(bind(j->notify, (struct sockaddr *)&un, sizeof un), 0);
	setenv("NOTIFY_SOCKET", np, 1);
	char *argv[] = {(char *)journald_path(), j->ns[0] ? j->ns : NULL, NULL};
	posix_spawn_file_actions_t fa; /* its chatter ("Received SIGTERM") */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	ck_assert_int_eq(posix_spawn(&j->pid, argv[0], &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	unsetenv("NOTIFY_SOCKET");
	for (;;) {
		struct pollfd pf = {.fd = j->notify, .events = POLLIN};
		ck_assert_msg(poll(&pf, 1, 20000) == 1, "journald: no READY=1 within 20 s");
		char buf[4096];
		ssize_t k = recv(j->notify, buf, sizeof buf - 1, 0);
		ck_assert_int_gt(k, 0);
		buf[k] = 0;
		if (strstr(buf, "READY=1"))
			break;
	}
}

static void journald_stop(struct journald *j)
{
	ck_assert_int_eq(kill(j->pid, SIGTERM), 0);
	int st;
	ck_assert_int_eq(waitpid(j->pid, &st, 0), j->pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "journald: status 0x%x", st);
	close(j->notify);
	char path[160];
	snprintf(path, sizeof path, "%s/notify", j->notify_dir);
	unlink(path);
	rmdir(j->notify_dir);
	if (!j->ns[0])
		return; /* the mount namespace's tmpfs go with the test's process */
	char mid[64] = "";
	FILE *f = fopen("/etc/machine-id", "re");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(mid, sizeof mid, f));
	fclose(f);
	mid[strcspn(mid, "\n")] = 0;
	ck_assert_uint_eq(strlen(mid), 32); /* nothing else goes into rm -rf */
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '/run/systemd/journal.%s' '/run/log/journal/%s.%s' "
		 "'/var/log/journal/%s.%s'", j->ns, mid, j->ns, mid, j->ns);
	ck_assert_int_eq(system(cmd), 0);
}

/* Run argv, return its stdout (malloc'ed); its exit status must be 0. */
static char *run_capture(char *const argv[])
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
	pid_t pid;
	ck_assert_int_eq(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	for (;;) {
		if (len + 4096 > cap)
			out = realloc(out, cap *= 2);
		ssize_t k = read(p[0], out + len, cap - len - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	out[len] = 0;
	close(p[0]);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: status 0x%x", argv[0], st);
	return out;
}

/* The entries journalctl -o json prints for match (one JSON object a
 * line); journald has written all it got before (--sync). */
static json_object **journal_read(const struct journald *j, const char *match, size_t *n)
{
	char ns[96] = "--namespace=";
	if (j->ns[0])
		strcat(ns, j->ns);
	else
		strcpy(ns, "--quiet"); /* no namespace: an option that changes nothing */
	char *sync_argv[] = {(char *)journalctl_path(), ns, "--sync", NULL};
	free(run_capture(sync_argv));
	char *argv[] = {(char *)journalctl_path(), ns, "-o", "json", "--all", "--no-pager",
			(char *)match, NULL};
	char *out = run_capture(argv);
	json_object **v = NULL;
	*n = 0;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		v = realloc(v, (*n + 1) * sizeof *v);
		v[*n] = json_tokener_parse(line);
		ck_assert_msg(v[*n], "journalctl printed no JSON: %s", line);
		(*n)++;
	}
	free(out);
	return v;
}

/* A field's value as a string (journalctl prints bytes it does not take
 * for text as an array of numbers); NULL when missing. */
static const char *jfield(json_object *e, const char *name)
{
	static char buf[4][8192];
	static int next;
	json_object *v;
	if (!json_object_object_get_ex(e, name, &v))
		return NULL;
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	ck_assert_msg(json_object_is_type(v, json_type_array), "%s: neither string nor bytes", name);
	char *b = buf[next++ % 4];
	size_t n = json_object_array_length(v);
	ck_assert_uint_lt(n, sizeof buf[0]);
	for (size_t i = 0; i < n; i++)
		b[i] = (char)json_object_get_int(json_object_array_get_idx(v, i));
	b[n] = 0;
	return b;
}

static void journal_free(json_object **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_object_put(v[i]);
	free(v);
}

/* Shared between the test and the workers: worker 2's task logs and dies. */
struct shared {
	atomic_int on_two;
	atomic_int task_on_two;
};
static struct shared *sh;
static int64_t *volatile nowhere;

__attribute__((no_sanitize_undefined))
static int journaled_task(mpg_task *t, const void *in, size_t len, void *ud)
{
	(void)in; (void)len; (void)ud;
	int32_t w = (int32_t)mpg_task_worker(t);
	if (w == 2 && atomic_exchange(&sh->on_two, 1) == 0) {
		atomic_store(&sh->task_on_two, (int)mpg_task_index(t));
		const mplog_kv kv[] = {{"note", "line one\nline two"}};
		if (mplog_log_kv(MPLOG_WARN, __FILE__, __LINE__, __func__, kv, 1,
				 "task %zu on worker 2", mpg_task_index(t)) != 0)
			return 1;
		return (int)*nowhere; /* a crash: the pool's record has a backtrace */
	}
	return mpg_task_set_result(t, &w, sizeof w);
}

static int greeter(void *ud)
{
	(void)ud;
	const mplog_kv kv[] = {{"greeting", "hello\nagain"}};
	return mplog_info_kv(kv, 1, "greeter says hi") != 0;
}

/* stderr connected to journald's stdout stream, as systemd connects a
 * service's: the stream's header, then JOURNAL_STREAM names it. */
static int journal_stderr(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un un = {.sun_family = AF_UNIX, .sun_path = "/run/systemd/journal/stdout"};
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&un, sizeof un), 0);
	/* identifier, unit, priority, level prefix, to syslog, kmsg, console */
	const char hdr[] = "mpkit-test-stderr\n\n6\n0\n0\n0\n0\n";
	ck_assert_int_eq(write(fd, hdr, sizeof hdr - 1), (ssize_t)sizeof hdr - 1);
	shutdown(fd, SHUT_RD);
	int saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	set_journal_stream(STDERR_FILENO);
	return saved;
}

START_TEST(a_pool_under_journald_sends_fields_journalctl_reads_back)
{
	struct journald j;
	journald_start(&j);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(sh, MAP_FAILED);
	bool by_default = jd_mode == JD_MOUNT_NS;
	int saved = -1;
	mplog_aggregator *agg = NULL; /* JD_INSTANCE: the sink is ours */
	if (by_default) {
		saved = journal_stderr();
		mplog_sink *probe;
		ck_assert_int_eq(mplog_sink_new_stderr(0, &probe), 0);
		ck_assert(is_journal(probe));
		mplog_sink_free(probe);
	} else {
		fprintf(stderr, "journald as namespace instance %s (no mount namespace here): "
			"the default sink's choice is not tried\n", j.ns);
		mplog_sink *js;
		ck_assert_int_eq(mplog_aggregator_new(&agg), 0);
		ck_assert_int_eq(mplog_sink_new_journal(j.socket, 0, &js), 0);
		ck_assert_int_eq(mplog_aggregator_add_sink(agg, js), 0);
	}

	/* The pool's default sink: no option says "journal". */
	mpg_options *o;
	mpg_pool *p;
	ck_assert_int_eq(mpg_options_new(&o), 0);
	ck_assert_int_eq(mpg_options_set_workers(o, 3), 0);
	if (agg)
		ck_assert_int_eq(mpg_options_set_log(o, agg), 0);
	ck_assert_int_eq(mpg_pool_new(o, &p), 0);
	mpg_options_free(o);
	if (agg)
		ck_assert_int_eq(mplog_aggregator_start(agg), 0);
	static int64_t in[30];
	static int32_t out[30];
	for (int round = 0; round < 100 && !atomic_load(&sh->on_two); round++) {
		mpg_results *res;
		ck_assert_int_eq(mpg_map_array(p, journaled_task, in, 8, 30, out, 4, NULL, &res), 0);
		mpg_results_free(res);
	}
	ck_assert_msg(atomic_load(&sh->on_two), "no task ran on worker 2 in 100 maps");
	/* A record of 15 MiB (just under MPLOG_RECORD_MAX): over the send
	 * buffer unless wmem_max is 8 MiB or more, so it goes in a sealed
	 * memfd, which journald takes. */
	mplog_writer *w;
	ck_assert_int_eq(mplog_aggregator_writer(mpg_pool_log(p), &w), 0);
	size_t big = 60000, nbig = (15u << 20) / big;
	char *v = malloc(big + 1);
	memset(v, 'y', big);
	v[big] = 0;
	mplog_kv *bkv = calloc(nbig + 1, sizeof *bkv);
	bkv[0] = (mplog_kv){"bigtest", "1"};
	for (size_t i = 1; i <= nbig; i++)
		bkv[i] = (mplog_kv){"big", v}; /* one field many times: journald keeps each */
	ck_assert_int_eq(mplog_writer_log(w, MPLOG_INFO, NULL, 0, NULL, bkv, nbig + 1, "big"), 0);
	mplog_writer_free(w);
	free(bkv);
	mpg_pool_free(p); /* its aggregator drained */

	/* A supervisor's default sink too: its service's record and its own. */
	mpg_supervisor *sup;
	ck_assert_int_eq(mpg_supervisor_new(&sup), 0);
	if (agg)
		ck_assert_int_eq(mpg_supervisor_set_log(sup, agg), 0);
	ck_assert_int_ge(mpg_supervisor_add(sup, "greeter", greeter, NULL, MPG_RESTART_TEMPORARY), 0);
	ck_assert_int_eq(mpg_supervisor_run(sup), 0);
	mpg_supervisor_free(sup);
	if (by_default) {
		ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
		close(saved);
		unsetenv("JOURNAL_STREAM");
	} else {
		mplog_aggregator_free(agg); /* drained */
	}

	/* The syslog sink on journald's /dev/log: the local form, which
	 * journald parses (RFC 5424 there left its header in MESSAGE). */
	char devlog[200];
	snprintf(devlog, sizeof devlog, "unix:%.*s/dev-log",
		 (int)(strrchr(j.socket, '/') - j.socket), j.socket);
	mplog_aggregator *sa;
	mplog_sink *sys;
	mplog_writer *sw;
	ck_assert_int_eq(mplog_aggregator_new(&sa), 0);
	ck_assert_int_eq(mplog_sink_new_syslog(devlog, 0, &sys), 0);
	ck_assert_int_eq(mplog_sink_set_syslog_app_name(sys, "mpk-syslog"), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(sa, sys), 0);
	ck_assert_int_eq(mplog_aggregator_writer(sa, &sw), 0);
	const mplog_kv skv[] = {{"k", "v"}};
	ck_assert_int_eq(mplog_writer_log(sw, MPLOG_WARN, NULL, 0, NULL, skv, 1, "via syslog"), 0);
	mplog_writer_free(sw);
	ck_assert_uint_eq(mplog_sink_dropped(sys), 0);
	mplog_aggregator_free(sa);

	int task = atomic_load(&sh->task_on_two);
	char want[64];
	snprintf(want, sizeof want, "task %d on worker 2", task);
	size_t n;
	json_object **e = journal_read(&j, "MPKIT_WORKER=2", &n);
	ck_assert_msg(n == 1, "%zu entries with MPKIT_WORKER=2", n);
	ck_assert_str_eq(jfield(e[0], "MESSAGE"), want);
	ck_assert_str_eq(jfield(e[0], "PRIORITY"), "4");
	ck_assert_str_eq(jfield(e[0], "SYSLOG_IDENTIFIER"), "test-mplog-journal");
	ck_assert_str_eq(jfield(e[0], "_TRANSPORT"), "journal");
	ck_assert_str_eq(jfield(e[0], "CODE_FUNC"), "journaled_task");
	ck_assert_msg(strstr(jfield(e[0], "CODE_FILE"), "test-mplog-journal.c"), "CODE_FILE");
	ck_assert_int_gt(atoi(jfield(e[0], "CODE_LINE")), 0);
	char num[24];
	snprintf(num, sizeof num, "%d", task);
	ck_assert_str_eq(jfield(e[0], "MPKIT_TASK"), num);
	ck_assert_int_gt(atoi(jfield(e[0], "MPKIT_PID")), 0);
	ck_assert_str_ne(jfield(e[0], "MPKIT_PID"), jfield(e[0], "_PID")); /* the worker's */
	ck_assert_str_eq(jfield(e[0], "NOTE"), "line one\nline two");
	journal_free(e, n);

	/* The pool's record of the crash: one entry, the backtrace one field. */
	e = journal_read(&j, "MPG_KIND=signaled", &n);
	ck_assert_msg(n == 1, "%zu entries with MPG_KIND=signaled", n);
	ck_assert_str_eq(jfield(e[0], "MPG_WORKER"), "2");
	ck_assert_str_eq(jfield(e[0], "PRIORITY"), "3");
	const char *bt = jfield(e[0], "MPG_BACKTRACE");
	ck_assert_msg(bt && strchr(bt, '\n') && strstr(bt, "journaled_task"), "backtrace: %s",
		      bt ? bt : "(none)");
	journal_free(e, n);

	e = journal_read(&j, "BIGTEST=1", &n);
	ck_assert_msg(n == 1, "%zu entries with BIGTEST=1", n);
	ck_assert_str_eq(jfield(e[0], "MESSAGE"), "big");
	json_object *bigv;
	ck_assert(json_object_object_get_ex(e[0], "BIG", &bigv));
	ck_assert_msg(json_object_is_type(bigv, json_type_string) &&
		      strcmp(json_object_get_string(bigv), v) == 0, "BIG is not the value sent");
	journal_free(e, n);
	free(v);

	e = journal_read(&j, "MPKIT_CHANNEL=greeter", &n);
	bool hi = false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(jfield(e[i], "MESSAGE"), "greeter says hi") == 0) {
			ck_assert(!hi);
			hi = true;
			ck_assert_str_eq(jfield(e[i], "GREETING"), "hello\nagain");
			ck_assert_str_eq(jfield(e[i], "_TRANSPORT"), "journal");
		}
	ck_assert_msg(hi, "the service's record is not in the journal (%zu entries)", n);
	journal_free(e, n);

	e = journal_read(&j, "SYSLOG_IDENTIFIER=mpk-syslog", &n);
	ck_assert_msg(n == 1, "%zu entries with SYSLOG_IDENTIFIER=mpk-syslog", n);
	ck_assert_str_eq(jfield(e[0], "MESSAGE"), "via syslog [k=\"v\"]");
	ck_assert_str_eq(jfield(e[0], "PRIORITY"), "4");
	ck_assert_str_eq(jfield(e[0], "SYSLOG_FACILITY"), "1");
	ck_assert_str_eq(jfield(e[0], "_TRANSPORT"), "syslog");
	snprintf(num, sizeof num, "%d", (int)getpid());
	ck_assert_str_eq(jfield(e[0], "SYSLOG_PID"), num);
	journal_free(e, n);

	/* And no text of the pool's reached the stream that is stderr. */
	e = journal_read(&j, "_TRANSPORT=stdout", &n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(!strstr(jfield(e[i], "MESSAGE"), "worker 2") &&
			      !strstr(jfield(e[i], "MESSAGE"), "journaled_task") &&
			      !strstr(jfield(e[i], "MESSAGE"), "greeter"),
			      "text on the stderr stream: %s", jfield(e[i], "MESSAGE"));
	journal_free(e, n);
	journald_stop(&j);
	munmap(sh, sizeof *sh);
	mpk_assert_no_children();
}
END_TEST

static Suite *journal_suite(void)
{
	Suite *s = suite_create("mplog-journal");
	TCase *tc = tcase_create("journal");
	tcase_add_test(tc, records_become_native_protocol_datagrams_with_fields);
	tcase_add_test(tc, a_record_of_another_rank_carries_its_host_pid_and_rank_as_fields);
	tcase_add_test(tc, journal_sink_arguments_are_checked);
	tcase_add_test(tc, stderr_sink_is_text_unless_journal_stream_names_fd_2);
	if (!journald_unavailable())
		tcase_add_test(tc, a_pool_under_journald_sends_fields_journalctl_reads_back);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	struct rlimit nocore = {0, 0};
	setrlimit(RLIMIT_CORE, &nocore);
	SRunner *sr = srunner_create(journal_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed)
		return EXIT_FAILURE;
	const char *why = journald_unavailable();
	if (why) {
		printf("SKIP: journald cannot start here: %s; the protocol and default-sink tests "
		       "passed, the real-journald test did not run\n", why);
		return 77;
	}
	return EXIT_SUCCESS;
}
