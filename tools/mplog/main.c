/* SPDX-License-Identifier: MIT */
/* mplog: read, filter and follow the JSON-lines logs libmplog writes.
 * Option parsing and the two commands; see mplog(1). */
#include "mplog-tool.h"
#include "pool-client.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

enum {
	OPT_STREAM = 256,
	OPT_STATS,
	OPT_COLOR,
	OPT_UTC,
	OPT_STRICT,
	OPT_HOST,
	OPT_RANK,
};

static const struct option options[] = {
	{"worker", required_argument, NULL, 'w'},
	{"pid", required_argument, NULL, 'p'},
	{"task", required_argument, NULL, 't'},
	{"channel", required_argument, NULL, 'c'},
	{"host", required_argument, NULL, OPT_HOST},
	{"rank", required_argument, NULL, OPT_RANK},
	{"level", required_argument, NULL, 'l'},
	{"grep", required_argument, NULL, 'g'},
	{"ignore-case", no_argument, NULL, 'i'},
	{"since", required_argument, NULL, 'S'},
	{"until", required_argument, NULL, 'U'},
	{"output", required_argument, NULL, 'o'},
	{"reverse", no_argument, NULL, 'r'},
	{"stream", required_argument, NULL, OPT_STREAM},
	{"json", no_argument, NULL, 'j'},
	{"stats", no_argument, NULL, OPT_STATS},
	{"lines", required_argument, NULL, 'n'},
	{"follow", no_argument, NULL, 'f'},
	{"color", optional_argument, NULL, OPT_COLOR},
	{"colour", optional_argument, NULL, OPT_COLOR},
	{"utc", no_argument, NULL, OPT_UTC},
	{"strict", no_argument, NULL, OPT_STRICT},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{0},
};

static void usage(FILE *out)
{
	fputs("Usage: mplog [OPTION]... [cat] [FILE]...\n"
	      "       mplog [OPTION]... tail [-n N] [-f] FILE...\n"
	      "       mplog [OPTION]... live [POOL]\n"
	      "Print the JSON-lines logs of libmplog readably, filtered.\n"
	      "\n"
	      "  cat FILE...         every record of each FILE (\"-\" or none: stdin);\n"
	      "                      \"mplog FILE...\" is the same\n"
	      "  tail FILE...        the last N records of each; with -f, then new ones\n"
	      "                      from all of them\n"
	      "  live [POOL]         a running pool's or supervisor's records as they\n"
	      "                      come, until it ends (POOL: PID or PID.N, see\n"
	      "                      mpattach list; may be left out when one runs);\n"
	      "                      with -n N, its last N records first (it keeps 1000)\n"
	      "\n"
	      "Filters (all must match):\n"
	      "  -w, --worker N[,N]  records of these workers (repeatable)\n"
	      "  -p, --pid P[,P]     records of these processes (repeatable)\n"
	      "  -t, --task T[,T]    records of these tasks (repeatable)\n"
	      "  -c, --channel C[,C] records of these channels: a supervised service's\n"
	      "                      name, or worker-N (repeatable)\n"
	      "      --host H[,H]    records collected on these hosts (the resource's\n"
	      "                      host.name: an MPI job's records by host; repeatable)\n"
	      "      --rank R[,R]    records of these ranks of an MPI job (repeatable)\n"
	      "  -l, --level L       at least this level (trace debug info notice warn\n"
	      "                      error fatal)\n"
	      "  -g, --grep REGEX    message matches this POSIX extended regex\n"
	      "  -i, --ignore-case   --grep ignores case\n"
	      "  -S, --since TIME    at or after TIME, as systemd.time(7) and journalctl:\n"
	      "                      '2026-11-23 10:00[:00][.frac][ UTC|Z|+01:00]',\n"
	      "                      13:11, today, yesterday, now, @EPOCH[.frac],\n"
	      "                      '5 min ago', -10m, +1h, or 90s (ago)\n"
	      "  -U, --until TIME    at or before TIME\n"
	      "      --stream S[,S]  stdout, stderr (captured lines) or log (mplog calls)\n"
	      "Output:\n"
	      "  -o, --output MODE   short (default), short-iso (times in ISO 8601 with\n"
	      "                      their zone), cat (messages alone), json (lines as\n"
	      "                      read), json-pretty\n"
	      "  -j, --json          -o json\n"
	      "  -r, --reverse       newest first\n"
	      "      --stats         counts instead of records (with --json: one object)\n"
	      "      --color[=WHEN]  auto (default: on a tty, unless NO_COLOR), always, never\n"
	      "      --utc           times in UTC instead of local time\n"
	      "      --strict        exit 1 if any line was not a record\n"
	      "  -n, --lines N       tail: how many records (default 10); live: how many\n"
	      "                      past records first (default none)\n"
	      "  -f, --follow        tail: follow the file across rotation and truncation\n"
	      "  -h, --help          this help;  -V, --version  the version\n"
	      "\n"
	      "Exit status: 0 success (even if nothing matched), 1 a file could not be\n"
	      "read (or --strict and a line was skipped), 2 usage error.\n",
	      out);
}

static int usage_error(const char *fmt, const char *arg)
{
	fputs("mplog: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'mplog --help'.\n", stderr);
	return EXIT_USAGE;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool want_color(const char *when, bool *ok)
{
	*ok = true;
	if (!when || !strcmp(when, "auto")) {
		const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
		return isatty(STDOUT_FILENO) && !(no && *no) && !(term && !strcmp(term, "dumb"));
	}
	if (!strcmp(when, "always"))
		return true;
	if (!strcmp(when, "never"))
		return false;
	*ok = false;
	return false;
}

static int parse_output(const char *s, enum mt_mode *ret)
{
	static const struct {
		const char *name;
		enum mt_mode mode;
	} modes[] = {{"short", MT_MODE_TEXT}, {"short-iso", MT_MODE_ISO}, {"cat", MT_MODE_CAT},
		     {"json", MT_MODE_JSON}, {"json-pretty", MT_MODE_PRETTY}};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
		if (!strcmp(s, modes[i].name)) {
			*ret = modes[i].mode;
			return 0;
		}
	return -EINVAL;
}

static int cat_files(struct mt_ctx *c, char **files, int n)
{
	int status = EXIT_OK;
	static char *const dash[] = {"-"};
	if (n == 0) {
		files = (char **)dash;
		n = 1;
	}
	for (int i = 0; i < n; i++) {
		bool is_stdin = !strcmp(files[i], "-");
		int fd = is_stdin ? STDIN_FILENO : open(files[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "mplog: %s: %s\n", files[i], strerror(errno));
			status = EXIT_RUNTIME;
			continue;
		}
		int r = mplog_tool_read_fd(c, fd, is_stdin ? "<stdin>" : files[i]);
		if (r < 0) {
			fprintf(stderr, "mplog: %s: %s\n", files[i], strerror(-r));
			status = EXIT_RUNTIME;
		}
		if (!is_stdin)
			close(fd);
	}
	return status;
}

/* What a command gets besides the context: its operands and options. */
struct cmd_args {
	char **args;
	int nargs;
	const char *lines;
	bool follow, stats;
};

static int cmd_cat(struct mt_ctx *c, const struct cmd_args *a)
{
	if (a->lines || a->follow)
		return usage_error("%s", "-n and -f are for tail");
	if (c->reverse && mt_ctx_ring_start(c, SIZE_MAX) < 0) /* all kept, then reversed */
		return fputs("mplog: out of memory\n", stderr), EXIT_RUNTIME;
	int status = cat_files(c, a->args, a->nargs);
	if (c->reverse && mt_ctx_ring_flush(c) < 0)
		return fputs("mplog: out of memory\n", stderr), EXIT_RUNTIME;
	return status;
}

static int cmd_tail(struct mt_ctx *c, const struct cmd_args *a)
{
	size_t n = 10;
	if (a->nargs < 1)
		return usage_error("%s", "tail takes one FILE or more");
	if (a->follow && a->stats)
		return usage_error("%s", "--stats cannot follow");
	if (a->follow && c->reverse)
		return usage_error("%s", "-r cannot follow");
	if (a->lines) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(a->lines, &end, 10);
		if (errno || !*a->lines || *end || *a->lines == '-' || v > SIZE_MAX)
			return usage_error("-n wants a count, not '%s'", a->lines);
		n = (size_t)v;
	}
	int r = mt_tail(c, a->args, (size_t)a->nargs, n, a->follow);
	return r < 0 ? EXIT_RUNTIME : EXIT_OK; /* said why */
}

/* live [POOL]: a running pool's or supervisor's records as they come,
 * from its control socket (the registry, see mpattach(1)), until it ends. */
static int cmd_live(struct mt_ctx *c, const struct cmd_args *a)
{
	if (a->follow)
		return usage_error("%s", "-f is for tail (live follows)");
	if (a->stats)
		return usage_error("%s", "--stats cannot follow");
	unsigned long long backlog = 0;
	if (a->lines) {
		char *end;
		errno = 0;
		backlog = strtoull(a->lines, &end, 10);
		if (errno || !*a->lines || *end || *a->lines == '-' || backlog > UINT32_MAX)
			return usage_error("-n wants a count, not '%s'", a->lines);
	}
	if (c->reverse)
		return usage_error("%s", "-r cannot follow");
	if (a->nargs > 1)
		return usage_error("live takes at most one POOL, not '%s'", a->args[1]);
	char err[512], name[64];
	struct mpk_pool_ref ref;
	struct mpk_conn conn;
	json_object *reply;
	if (mpk_pool_find(a->nargs ? a->args[0] : NULL, &ref, err, sizeof err) < 0 ||
	    mpk_conn_open(&conn, &ref, err, sizeof err) < 0) {
		fprintf(stderr, "mplog: %s\n", err);
		return EXIT_RUNTIME;
	}
	char req[32];
	snprintf(req, sizeof req, backlog ? "log %llu" : "log", backlog);
	if (mpk_conn_request(&conn, req, &reply, err, sizeof err) != 0) {
		fprintf(stderr, "mplog: pool %d.%u: %s\n", (int)ref.pid, ref.n, err);
		mpk_conn_close(&conn);
		return EXIT_RUNTIME;
	}
	json_object *kind;
	snprintf(name, sizeof name, "%s %d.%u",
		 json_object_object_get_ex(reply, "kind", &kind) ? json_object_get_string(kind) :
								    "pool",
		 (int)ref.pid, ref.n);
	json_object_put(reply);
	/* On stderr, so the records stay alone on stdout. */
	fprintf(stderr, "mplog: following the log of %s until it ends\n", name);
	/* Records that came with the reply are already in the buffer. */
	int r = mplog_tool_read_stream(c, conn.fd, name, conn.buf + conn.used,
				       conn.len - conn.used);
	mpk_conn_close(&conn);
	if (r < 0 && r != -ECONNRESET) {
		fprintf(stderr, "mplog: %s: %s\n", name, strerror(-r));
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

/* A command feeds records from somewhere into the context and returns an
 * exit status. */
static const struct command {
	const char *name;
	int (*run)(struct mt_ctx *c, const struct cmd_args *a);
} commands[] = {
	{"cat", cmd_cat},
	{"tail", cmd_tail},
	{"live", cmd_live},
};

int main(int argc, char **argv)
{
	struct mt_ctx c;
	if (mt_ctx_init(&c, stdout) < 0) {
		fputs("mplog: out of memory\n", stderr);
		return EXIT_RUNTIME;
	}
	const char *color = NULL;
	bool stats = false, json = false, follow = false, strict = false, icase = false;
	const char *grep = NULL, *lines = NULL;
	int status = EXIT_OK, opt;
	char err[256];
	enum mt_mode output = MT_MODE_TEXT;
	while ((opt = getopt_long(argc, argv, "w:p:t:c:l:g:ijn:fFhVS:U:o:r", options, NULL)) != -1) {
		uint64_t *when = NULL;
		switch (opt) {
		case 'w':
		case 'p':
		case 't': {
			struct mt_idset *s = opt == 'w' ? &c.filter.workers
					     : opt == 'p' ? &c.filter.pids
							  : &c.filter.tasks;
			if (mt_idset_add(s, optarg) < 0)
				status = usage_error("not a number or comma list: '%s'", optarg);
			break;
		}
		case 'c': {
			int r = mt_names_add(&c.filter.channels, optarg);
			if (r == -ENOMEM) {
				fputs("mplog: out of memory\n", stderr);
				status = EXIT_RUNTIME;
			} else if (r < 0) {
				status = usage_error("not a channel name or comma list: '%s'", optarg);
			}
			break;
		}
		case 'l':
			if (mplog_level_parse(optarg, &c.filter.min_level) < 0)
				status = usage_error("unknown level '%s'", optarg);
			break;
		case 'g':
			grep = optarg;
			break;
		case 'i':
			icase = true;
			break;
		case 'S':
			when = &c.filter.since;
			c.filter.has_since = true;
			break;
		case 'U':
			when = &c.filter.until;
			c.filter.has_until = true;
			break;
		case 'o':
			if (parse_output(optarg, &output) < 0)
				status = usage_error("-o is short, short-iso, cat, json or json-pretty, "
						     "not '%s'", optarg);
			json = false;
			break;
		case 'r':
			c.reverse = true;
			break;
		case OPT_HOST: {
			int r = mt_names_add(&c.filter.hosts, optarg);
			if (r == -ENOMEM) {
				fputs("mplog: out of memory\n", stderr);
				status = EXIT_RUNTIME;
			} else if (r < 0) {
				status = usage_error("not a host name or comma list: '%s'", optarg);
			}
			break;
		}
		case OPT_RANK:
			if (mt_idset_add(&c.filter.ranks, optarg) < 0)
				status = usage_error("not a number or comma list: '%s'", optarg);
			break;
		case OPT_STREAM:
			if (mt_streams_add(&c.filter.streams, optarg) < 0)
				status = usage_error("unknown stream '%s' (stdout, stderr, log)", optarg);
			break;
		case 'j':
			json = true;
			output = MT_MODE_JSON;
			break;
		case OPT_STATS:
			stats = true;
			break;
		case 'n':
			lines = optarg;
			break;
		case 'f':
		case 'F':
			follow = true;
			break;
		case OPT_COLOR:
			color = optarg ? optarg : "always";
			break;
		case OPT_UTC:
			c.utc = true;
			break;
		case OPT_STRICT:
			strict = true;
			break;
		case 'h':
			usage(stdout);
			mt_ctx_free(&c);
			return EXIT_OK;
		case 'V':
			printf("mplog (mpkit) %s\n", MPKIT_VERSION);
			mt_ctx_free(&c);
			return EXIT_OK;
		default:
			status = EXIT_USAGE; /* getopt said why */
			fputs("Try 'mplog --help'.\n", stderr);
			break;
		}
		if (when && mt_time_parse(optarg, now_ns(), when) < 0)
			status = usage_error("not a time or duration: '%s'", optarg);
		if (status)
			goto out;
	}

	const char *name = optind < argc ? argv[optind] : NULL;
	const struct command *cmd = &commands[0]; /* "mplog FILE": cat, like journalctl */
	for (size_t i = 0; name && i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(name, commands[i].name)) {
			cmd = &commands[i];
			optind++;
		}
	bool color_ok;
	c.color = want_color(color, &color_ok);
	c.mode = stats ? MT_MODE_STATS : json ? MT_MODE_JSON : output;
	if (!name && isatty(STDIN_FILENO))
		status = usage_error("%s", "no FILE, and standard input is a terminal");
	else if (!color_ok)
		status = usage_error("--color is auto, always or never, not '%s'", color);
	else if (grep && mt_filter_set_grep(&c.filter, grep, icase, err, sizeof err) < 0)
		status = usage_error("bad --grep regex: %s", err);
	if (status)
		goto out;

	struct cmd_args args = {argv + optind, argc - optind, lines, follow, stats};
	status = cmd->run(&c, &args);
	if (status == EXIT_USAGE)
		goto out;
	if (stats)
		mt_stats_print(&c.stats, c.invalid, json, stdout);
	if (c.invalid)
		fprintf(stderr, "mplog: %llu line%s skipped\n", (unsigned long long)c.invalid,
			c.invalid == 1 ? "" : "s");
	if (strict && c.invalid && status == EXIT_OK)
		status = EXIT_RUNTIME;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "mplog: write error: %s\n", strerror(errno));
		status = EXIT_RUNTIME;
	}
out:
	mt_ctx_free(&c);
	return status;
}
