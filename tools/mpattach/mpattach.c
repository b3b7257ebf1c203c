/* SPDX-License-Identifier: MIT */
/* mpattach: list the pools and supervisors running on this machine under
 * this user, attach gdb to one of their workers or services, dump every
 * one's stack, resume paused ones. Talks to each over its control socket
 * (pool-client.c). */
#include "json-out.h"
#include "pool-client.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char usage_text[] =
	"Usage: mpattach COMMAND [ARGS]\n"
	"\n"
	"Debug the worker processes of running mpkit pools, and the services of\n"
	"running supervisors.\n"
	"\n"
	"Commands:\n"
	"  list [--json] [POOL]       pools, supervisors and their workers or services\n"
	"                             (pid, state, task or name, restarts, ...)\n"
	"  gdb [POOL] WORKER [-- GDB-ARGS]\n"
	"                             start gdb attached to a worker or service\n"
	"  stacks [POOL]              every one's stack, one listing (gdb batch)\n"
	"  resume [POOL] [WORKER|all] let paused ones go on (default: all)\n"
	"\n"
	"POOL is PID or PID.N (the N-th pool or supervisor of process PID), as\n"
	"`list` shows it; it may be left out when only one is running. WORKER is\n"
	"a worker's or service's number, or a service's name. A lone argument of\n"
	"resume is a POOL when it is PID.N or the pid of a process running pools.\n"
	"\n"
	"Options:\n"
	"  -h, --help     show this help\n"
	"  -V, --version  show the version\n"
	"\n"
	"Exit status: 0 success, 1 failure (no such pool or worker, refused,\n"
	"gdb missing or failed), 2 usage error.\n";

static void die_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "mpattach: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'mpattach --help'.\n");
	exit(EXIT_USAGE);
}

static int fail(const char *msg)
{
	fprintf(stderr, "mpattach: %s\n", msg);
	return EXIT_FAIL;
}

static int64_t get_int(json_object *o, const char *key, int64_t dflt)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : dflt;
}

static const char *get_str(json_object *o, const char *key, const char *dflt)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : dflt;
}

/* Connect to the pool named by spec (NULL: the only one) and ask. */
static int ask(const char *spec, const char *req, struct mpk_conn *conn, json_object **reply,
	       struct mpk_pool_ref *ref)
{
	char err[512];
	struct mpk_pool_ref tmp;
	if (!ref)
		ref = &tmp;
	if (mpk_pool_find(spec, ref, err, sizeof err) < 0 ||
	    mpk_conn_open(conn, ref, err, sizeof err) < 0)
		return fail(err);
	if (mpk_conn_request(conn, req, reply, err, sizeof err) != 0) {
		mpk_conn_close(conn);
		return fail(err);
	}
	return EXIT_OK;
}

static void format_duration(char *buf, size_t size, uint64_t ms)
{
	uint64_t s = ms / 1000;
	if (s < 60)
		snprintf(buf, size, "%" PRIu64 ".%01" PRIu64 "s", s, ms % 1000 / 100);
	else if (s < 3600)
		snprintf(buf, size, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, size, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
}

static bool is_supervisor(json_object *info)
{
	return strcmp(get_str(info, "kind", "pool"), "supervisor") == 0;
}

/* A supervisor: its services by name. */
static void print_services(json_object *info)
{
	printf("\n  %-7s %-16s %-8s %-10s %-8s %s\n", "SERVICE", "NAME", "PID", "STATE", "UPTIME",
	       "RESTARTS");
	json_object *services;
	if (!json_object_object_get_ex(info, "workers", &services))
		return;
	for (size_t i = 0; i < json_object_array_length(services); i++) {
		json_object *w = json_object_array_get_idx(services, i);
		char pid[24] = "-", up[24] = "-";
		if (get_int(w, "pid", 0)) {
			snprintf(pid, sizeof pid, "%" PRId64, get_int(w, "pid", 0));
			format_duration(up, sizeof up, (uint64_t)get_int(w, "uptime_ms", 0));
		}
		printf("  %-7" PRId64 " %-16s %-8s %-10s %-8s %" PRId64 "\n", get_int(w, "worker", 0),
		       get_str(w, "name", "?"), pid, get_str(w, "state", "?"), up,
		       get_int(w, "restarts", 0));
	}
}

static void print_pool(json_object *info)
{
	time_t start = (time_t)(get_int(info, "start_ns", 0) / 1000000000);
	struct tm tm;
	char when[32] = "?";
	if (localtime_r(&start, &tm))
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
	int64_t done = get_int(info, "tasks_done", 0), total = get_int(info, "tasks_total", 0);
	printf("%s %" PRId64 ".%" PRId64 "  %s  started %s  %s", get_str(info, "kind", "pool"),
	       get_int(info, "pid", 0), get_int(info, "pool", 0), get_str(info, "program", "?"), when,
	       get_str(info, "state", "?"));
	if (total)
		printf("  progress %" PRId64 "/%" PRId64 " (%" PRId64 "%%)", done, total,
		       done * 100 / total);
	if (get_int(info, "tasks_failed", 0))
		printf("  failed %" PRId64, get_int(info, "tasks_failed", 0));
	const char *pause = get_str(info, "pause", "");
	if (*pause)
		printf("  pause on %s", pause);
	if (is_supervisor(info)) {
		print_services(info);
		return;
	}
	printf("\n  %-6s %-8s %-8s %-8s %-8s %-10s %s\n", "WORKER", "PID", "STATE", "TASK",
	       "UPTIME", "DONE", "RESTARTS");
	json_object *workers;
	if (!json_object_object_get_ex(info, "workers", &workers))
		return;
	for (size_t i = 0; i < json_object_array_length(workers); i++) {
		json_object *w = json_object_array_get_idx(workers, i);
		char task[24] = "-", up[24] = "-";
		if (get_int(w, "task", -1) >= 0)
			snprintf(task, sizeof task, "%" PRId64, get_int(w, "task", -1));
		if (get_int(w, "pid", 0))
			format_duration(up, sizeof up, (uint64_t)get_int(w, "uptime_ms", 0));
		printf("  %-6" PRId64 " %-8" PRId64 " %-8s %-8s %-8s %-10" PRId64 " %" PRId64 "\n",
		       get_int(w, "worker", 0), get_int(w, "pid", 0), get_str(w, "state", "?"),
		       task, up, get_int(w, "tasks_done", 0), get_int(w, "restarts", 0));
	}
}

static int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {0}};
	bool json = false;
	int c;
	optind = 0; /* glibc: start over, skipping argv[0] */
	while ((c = getopt_long(argc, argv, "+j", opts, NULL)) != -1) {
		if (c != 'j')
			exit(EXIT_USAGE);
		json = true;
	}
	if (argc - optind > 1)
		die_usage("list: too many arguments: %s", argv[optind + 1]);
	const char *spec = optind < argc ? argv[optind] : NULL;
	char err[512];
	struct mpk_pool_ref *refs, one;
	size_t n;
	if (spec) {
		if (mpk_pool_find(spec, &one, err, sizeof err) < 0)
			return fail(err);
		refs = malloc(sizeof *refs);
		if (!refs)
			return fail("out of memory");
		refs[0] = one;
		n = 1;
	} else if (mpk_pools_list(&refs, &n, err, sizeof err) < 0) {
		return fail(err);
	}
	int rc = EXIT_OK;
	json_object *all = json ? json_object_new_array() : NULL;
	for (size_t i = 0; i < n; i++) {
		struct mpk_conn conn;
		json_object *info;
		if (mpk_conn_open(&conn, &refs[i], err, sizeof err) < 0 ||
		    mpk_conn_request(&conn, "info", &info, err, sizeof err) != 0) {
			/* A pool may end while we ask: say so, list the others. */
			fprintf(stderr, "mpattach: %s\n", err);
			mpk_conn_close(&conn);
			if (spec)
				rc = EXIT_FAIL;
			continue;
		}
		mpk_conn_close(&conn);
		if (json) {
			json_object_object_del(info, "ok");
			json_object_array_add(all, info);
		} else {
			print_pool(info);
			json_object_put(info);
		}
	}
	if (json) {
		int r = mpk_json_print(stdout, all);
		json_object_put(all);
		if (r < 0)
			rc = fail(r == -ENOMEM ? "out of memory" : "cannot write the listing");
	} else if (!n) {
		fprintf(stderr, "mpattach: no running pool or supervisor\n");
	}
	free(refs);
	return rc;
}

/* Yama's ptrace_scope, or -1 without Yama. */
static int ptrace_scope(void)
{
	FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	int scope = -1;
	if (f) {
		if (fscanf(f, "%d", &scope) != 1)
			scope = -1;
		fclose(f);
	}
	return scope;
}

/* May this process ptrace what it does not own or descend from? Under
 * Yama's scope 2, only with CAP_SYS_PTRACE in its effective set. */
static bool can_ptrace_any(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long eff = 0;
	bool found = false;
	while (f && !found && fgets(line, sizeof line, f))
		found = sscanf(line, "CapEff: %llx", &eff) == 1;
	if (f)
		fclose(f);
	return found && (eff >> 19 & 1); /* CAP_SYS_PTRACE */
}

/* Why a debugger may still be refused, from Yama's setting; pid: the one
 * it would attach to, or 0. */
static void explain_ptrace_scope(pid_t pid)
{
	int scope = ptrace_scope();
	if (scope == 2) {
		fprintf(stderr, "mpattach: kernel.yama.ptrace_scope is 2: only a process with "
				"CAP_SYS_PTRACE (root) may attach a debugger, and a pool answers its "
				"own user only; lower it with sysctl kernel.yama.ptrace_scope=1");
		if (pid > 0)
			fprintf(stderr, ", or attach as root: sudo gdb -p %d", (int)pid);
		fputc('\n', stderr);
	} else if (scope == 3) {
		fprintf(stderr, "mpattach: ptrace is disabled on this machine "
				"(kernel.yama.ptrace_scope is 3, until reboot): no debugger can "
				"attach\n");
	}
}

/* Yama's scope 2 for a process without CAP_SYS_PTRACE, or 3: no grant
 * helps, so no gdb is started only to print "Operation not permitted". */
static bool ptrace_refused(void)
{
	int scope = ptrace_scope();
	return scope == 3 || (scope == 2 && !can_ptrace_any());
}

/* gdb on PATH? */
static bool have_gdb(void)
{
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/bin:/bin";
	char buf[4096];
	for (const char *p = path; *p;) {
		size_t len = strcspn(p, ":");
		if (snprintf(buf, sizeof buf, "%.*s/gdb", (int)len, p) < (int)sizeof buf &&
		    access(buf, X_OK) == 0)
			return true;
		p += len;
		if (*p == ':')
			p++;
	}
	return false;
}

static int check_debugger(void)
{
	if (!have_gdb())
		return fail("gdb not found on PATH (install the gdb package)");
	return EXIT_OK;
}

/* The pid of the worker or service a WORKER argument names in an info
 * reply, or 0. */
static pid_t slot_pid(json_object *info, const char *worker)
{
	json_object *slots;
	if (!json_object_object_get_ex(info, "workers", &slots))
		return 0;
	bool number = *worker && worker[strspn(worker, "0123456789")] == '\0';
	for (size_t i = 0; i < json_object_array_length(slots); i++) {
		json_object *w = json_object_array_get_idx(slots, i);
		char slot[24];
		snprintf(slot, sizeof slot, "%" PRId64, get_int(w, "worker", -1));
		if (number ? strtoull(worker, NULL, 10) == strtoull(slot, NULL, 10)
			   : strcmp(get_str(w, "name", ""), worker) == 0)
			return (pid_t)get_int(w, "pid", 0);
	}
	return 0;
}

/* Ask the pool to let us (and so the gdb we become or start) ptrace the
 * worker. Returns its pid, or 0 after printing why not. */
static pid_t grant(struct mpk_conn *conn, const char *worker)
{
	char req[300], err[512];
	json_object *r;
	if ((size_t)snprintf(req, sizeof req, "ptrace %s", worker) >= sizeof req) {
		fail("worker name too long");
		return 0;
	}
	if (mpk_conn_request(conn, req, &r, err, sizeof err) != 0) {
		fail(err);
		return 0;
	}
	pid_t pid = (pid_t)get_int(r, "pid", 0);
	json_object_put(r);
	return pid;
}

static int cmd_gdb(int argc, char **argv)
{
	int dashdash = argc;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			dashdash = i;
			break;
		}
	int npos = dashdash - 1;
	if (npos < 1 || npos > 2)
		die_usage("gdb: expected [POOL] WORKER%s", "");
	const char *spec = npos == 2 ? argv[1] : NULL;
	const char *worker = argv[npos];
	int rc = check_debugger();
	if (rc)
		return rc;
	struct mpk_conn conn;
	json_object *info;
	if ((rc = ask(spec, "info", &conn, &info, NULL)))
		return rc;
	if (ptrace_refused()) {
		explain_ptrace_scope(slot_pid(info, worker));
		json_object_put(info);
		mpk_conn_close(&conn);
		return EXIT_FAIL;
	}
	json_object_put(info);
	pid_t pid = grant(&conn, worker);
	mpk_conn_close(&conn);
	if (!pid)
		return EXIT_FAIL;
	/* exec keeps our pid, which the worker named its ptracer. */
	int nextra = argc - dashdash - (dashdash < argc);
	char **args = calloc((size_t)nextra + 5, sizeof *args);
	char pidbuf[16];
	if (!args)
		return fail("out of memory");
	snprintf(pidbuf, sizeof pidbuf, "%d", (int)pid);
	int k = 0;
	args[k++] = "gdb";
	args[k++] = "-q";
	args[k++] = "-p";
	args[k++] = pidbuf;
	for (int i = dashdash + 1; i < argc; i++)
		args[k++] = argv[i];
	args[k] = NULL;
	fflush(NULL);
	execvp("gdb", args);
	fprintf(stderr, "mpattach: cannot run gdb: %s\n", strerror(errno));
	free(args);
	return EXIT_FAIL;
}

/* Lines of gdb's output worth showing: frames, thread headers, our
 * headers, and why an attach failed. */
static bool keep_line(const char *l)
{
	return l[0] == '#' || strncmp(l, "Thread ", 7) == 0 || strncmp(l, "=== ", 4) == 0 ||
	       strstr(l, "ptrace:") || strstr(l, "Could not attach") ||
	       strstr(l, "Operation not permitted");
}

static int cmd_stacks(int argc, char **argv)
{
	if (argc > 2)
		die_usage("stacks: too many arguments: %s", argv[2]);
	const char *spec = argc == 2 ? argv[1] : NULL;
	int rc = check_debugger();
	if (rc)
		return rc;
	if (ptrace_refused()) {
		explain_ptrace_scope(0);
		return EXIT_FAIL;
	}
	struct mpk_conn conn;
	json_object *info, *workers;
	if ((rc = ask(spec, "info", &conn, &info, NULL)))
		return rc;
	if (!json_object_object_get_ex(info, "workers", &workers)) {
		json_object_put(info);
		mpk_conn_close(&conn);
		return fail("the pool sent no worker list");
	}
	bool services = is_supervisor(info);
	size_t n = json_object_array_length(workers);
	/* One gdb for all: attach, print, detach, in turn. */
	char **args = calloc(8 * n + 8, sizeof *args);
	char **owned = calloc(3 * n + 1, sizeof *owned);
	if (!args || !owned)
		return fail("out of memory");
	int k = 0, nown = 0, nattached = 0;
	args[k++] = "gdb";
	args[k++] = "-q";
	args[k++] = "-batch";
	args[k++] = "-nx";
	args[k++] = "-ex";
	args[k++] = "set pagination off";
	for (size_t i = 0; i < n; i++) {
		json_object *w = json_object_array_get_idx(workers, i);
		char slot[16], who[96];
		snprintf(slot, sizeof slot, "%" PRId64, get_int(w, "worker", 0));
		/* gdb's echo takes C escapes: a name is shown up to its first
		 * backslash. */
		if (services)
			snprintf(who, sizeof who, "service %s %.*s", slot,
				 (int)strcspn(get_str(w, "name", ""), "\\"), get_str(w, "name", ""));
		else
			snprintf(who, sizeof who, "worker %s", slot);
		if (!get_int(w, "pid", 0)) {
			printf("=== %s: not running (%s)\n", who, get_str(w, "state", "?"));
			continue;
		}
		pid_t pid = grant(&conn, slot);
		if (!pid)
			continue;
		char *hdr, *att;
		char task[32] = "";
		if (get_int(w, "task", -1) >= 0)
			snprintf(task, sizeof task, ", task %" PRId64, get_int(w, "task", -1));
		if (asprintf(&hdr, "echo === %s (pid %d, %s%s)\\n", who, (int)pid,
			     get_str(w, "state", "?"), task) < 0 ||
		    asprintf(&att, "attach %d", (int)pid) < 0)
			return fail("out of memory");
		owned[nown++] = hdr;
		owned[nown++] = att;
		args[k++] = "-ex";
		args[k++] = hdr;
		args[k++] = "-ex";
		args[k++] = att;
		args[k++] = "-ex";
		args[k++] = "thread apply all bt";
		args[k++] = "-ex";
		args[k++] = "detach";
		nattached++;
	}
	args[k] = NULL;
	json_object_put(info);
	mpk_conn_close(&conn);
	if (!nattached) {
		rc = fail(services ? "no service to attach to" : "no worker to attach to");
		goto out;
	}
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		rc = fail("pipe failed");
		goto out;
	}
	fflush(NULL);
	pid_t child = fork();
	if (child == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execvp("gdb", args);
		_exit(127);
	}
	close(pfd[1]);
	FILE *out = child > 0 ? fdopen(pfd[0], "r") : NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	bool denied = false;
	while (out && (len = getline(&line, &cap, out)) > 0) {
		if (!keep_line(line))
			continue;
		denied |= strstr(line, "ptrace:") || strstr(line, "not permitted");
		fputs(line, stdout);
	}
	free(line);
	if (out)
		fclose(out);
	else
		close(pfd[0]);
	int status = 0;
	while (child > 0 && waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (child < 0 || !WIFEXITED(status) || WEXITSTATUS(status) == 127) {
		rc = fail("gdb failed to run");
	} else if (denied) {
		explain_ptrace_scope(0);
		rc = EXIT_FAIL;
	}
out:
	for (int i = 0; i < nown; i++)
		free(owned[i]);
	free(owned);
	free(args);
	return rc;
}

/* A lone argument of resume: a POOL (PID.N, or the pid of a process
 * running pools of ours), else a WORKER. */
static bool names_a_pool(const char *arg)
{
	size_t digits = strspn(arg, "0123456789");
	if (!digits)
		return false;
	if (arg[digits] == '.')
		return arg[digits + 1] && arg[digits + 1 + strspn(arg + digits + 1, "0123456789")] == '\0';
	if (arg[digits])
		return false;
	struct mpk_pool_ref *v;
	size_t n;
	char err[512];
	bool found = false;
	if (mpk_pools_list(&v, &n, err, sizeof err) < 0)
		return false;
	for (size_t i = 0; i < n && !found; i++)
		found = v[i].pid == (pid_t)strtol(arg, NULL, 10);
	free(v);
	return found;
}

static int cmd_resume(int argc, char **argv)
{
	if (argc > 3)
		die_usage("resume: too many arguments: %s", argv[3]);
	const char *spec = argc == 3 ? argv[1] : NULL;
	const char *worker = argc >= 2 ? argv[argc - 1] : "all";
	if (argc == 2 && names_a_pool(argv[1])) {
		spec = argv[1];
		worker = "all";
	}
	char req[300];
	if ((size_t)snprintf(req, sizeof req, "resume %s", worker) >= sizeof req)
		return fail("worker name too long");
	struct mpk_conn conn;
	json_object *r;
	int rc = ask(spec, req, &conn, &r, NULL);
	if (rc)
		return rc;
	int64_t n = get_int(r, "resumed", 0);
	printf("resumed %" PRId64 " %s%s\n", n, is_supervisor(r) ? "service" : "worker",
	       n == 1 ? "" : "s");
	json_object_put(r);
	mpk_conn_close(&conn);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		case 'V':
			printf("mpattach (mpkit) %s\n", MPKIT_VERSION);
			return EXIT_OK;
		default:
			fputs("Try 'mpattach --help'.\n", stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		die_usage("missing command (list, gdb, stacks, resume)%s", "");
	const char *cmd = argv[optind];
	argc -= optind;
	argv += optind;
	if (strcmp(cmd, "list") == 0)
		return cmd_list(argc, argv);
	if (strcmp(cmd, "gdb") == 0)
		return cmd_gdb(argc, argv);
	if (strcmp(cmd, "stacks") == 0)
		return cmd_stacks(argc, argv);
	if (strcmp(cmd, "resume") == 0)
		return cmd_resume(argc, argv);
	die_usage("unknown command \"%s\"", cmd);
	return EXIT_USAGE;
}
