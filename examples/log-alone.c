/* SPDX-License-Identifier: MIT */
/* libmplog without libmpguard: one merged log for children forked by hand.
 *
 * The parent makes an aggregator with three sinks: text on stderr (coloured
 * on a terminal), JSON lines in a file (what `mplog cat` reads), and a
 * callback that counts records so this program can check itself. It forks
 * three children; each logs with mplog_info()/mplog_warn() (key-values
 * too) and prints one line on stdout and one on stderr, which the
 * aggregator captures as records. Child 2 then dies by SIGKILL: what it
 * logged before is in the log anyway (one write(2) per record). The parent
 * logs into the same stream through mplog_aggregator_writer().
 *
 *   $ ./log-alone [FILE.jsonl]   the JSON log goes to FILE (kept), or to a
 *                                temporary file removed at the end; exit 0
 *                                when every record arrived
 */
#include <mplog.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { NCHILDREN = 3, KILLED = 2 };

struct counts {
	int log, out, err, parent;
};

static void count(const mplog_record *rec, void *userdata)
{
	struct counts *c = userdata; /* on the aggregator's thread */
	if (mplog_record_stream(rec) == MPLOG_STREAM_STDOUT)
		c->out++;
	else if (mplog_record_stream(rec) == MPLOG_STREAM_STDERR)
		c->err++;
	else if (mplog_record_pid(rec) == getpid())
		c->parent++;
	else
		c->log++;
}

/* In the child: connect to the channels, log, print, end. */
static _Noreturn void child_main(const mplog_child_fds *fds, int i)
{
	if (mplog_child_setup(fds, i, 0, NULL) < 0)
		_exit(127);
	char n[16];
	snprintf(n, sizeof n, "%d", i * 100);
	const mplog_kv kv[] = {{"items", n}, {"stage", "parse"}};
	int bad = mplog_info_kv(kv, 2, "child %d (pid %d) parsed its items", i, (int)getpid()) < 0;
	bad |= mplog_warn("child %d: 3 items were malformed", i) < 0;
	printf("child %d: a plain line on stdout\n", i); /* line-buffered since setup */
	fprintf(stderr, "child %d: a plain line on stderr\n", i);
	if (i == KILLED)
		raise(SIGKILL); /* as the OOM killer would */
	_exit(bad);
}

int main(int argc, char **argv)
{
	char tmp[4096];
	const char *dir = getenv("TMPDIR");
	snprintf(tmp, sizeof tmp, "%s/log-alone-XXXXXX.jsonl", dir && *dir ? dir : "/tmp");
	const char *path = argc > 1 ? argv[1] : tmp;
	if (argc == 1) {
		int fd = mkostemps(tmp, 6, O_CLOEXEC);
		if (fd < 0) {
			perror("log-alone: mkostemps");
			return 1;
		}
		close(fd); /* the sink opens it by name */
	}

	mplog_aggregator *agg;
	mplog_sink *text, *json, *counter;
	struct counts c = {0};
	int r;
	if ((r = mplog_aggregator_new(&agg)) < 0) {
		fprintf(stderr, "log-alone: mplog_aggregator_new: %s\n", strerror(-r));
		return 1;
	}
	/* add_sink() owns the sink from then on, even when it fails. */
	if ((r = mplog_sink_new_fd(STDERR_FILENO, MPLOG_FORMAT_TEXT, MPLOG_SINK_COLOR_AUTO,
				   &text)) < 0 ||
	    (r = mplog_aggregator_add_sink(agg, text)) < 0 ||
	    (r = mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &json)) < 0 ||
	    (r = mplog_aggregator_add_sink(agg, json)) < 0 ||
	    (r = mplog_sink_new_callback(count, &c, &counter)) < 0 ||
	    (r = mplog_aggregator_add_sink(agg, counter)) < 0 ||
	    (r = mplog_aggregator_start(agg)) < 0) { /* or mplog_aggregator_fd() + _dispatch() */
		fprintf(stderr, "log-alone: setting up the aggregator: %s\n", strerror(-r));
		mplog_aggregator_free(agg);
		return 1;
	}

	/* The parent's own records join the same stream. */
	mplog_writer *self;
	if ((r = mplog_aggregator_writer(agg, &self)) < 0) {
		fprintf(stderr, "log-alone: mplog_aggregator_writer: %s\n", strerror(-r));
		mplog_aggregator_free(agg);
		return 1;
	}
	mplog_set_default_writer(self);

	pid_t pids[NCHILDREN];
	int nforked = 0, ok = 1;
	for (int i = 0; i < NCHILDREN; i++) {
		mplog_child_fds fds;
		char name[16];
		snprintf(name, sizeof name, "child-%d", i);
		/* Add one child, fork it, then the next: no child holds a sibling's pipes. */
		unsigned capture = MPLOG_CAPTURE_STDOUT | MPLOG_CAPTURE_STDERR;
		if ((r = mplog_aggregator_add_child(agg, name, i, capture, &fds)) < 0) {
			fprintf(stderr, "log-alone: add_child: %s\n", strerror(-r));
			ok = 0;
			break;
		}
		fflush(NULL); /* the child must not inherit unwritten output */
		pid_t pid = fork();
		if (pid == 0)
			child_main(&fds, i);
		if (pid < 0) {
			perror("log-alone: fork");
			mplog_child_fds_close(&fds);
			ok = 0;
			break;
		}
		pids[nforked++] = pid;
		if ((r = mplog_aggregator_set_pid(agg, fds.id, pid)) < 0) { /* for its stdout lines */
			fprintf(stderr, "log-alone: mplog_aggregator_set_pid: %s\n", strerror(-r));
			ok = 0;
		}
		mplog_child_fds_close(&fds); /* so the aggregator sees EOF when it ends */
	}
	if (mplog_info("parent: %d children forked", nforked) < 0)
		ok = 0;

	for (int i = 0; i < nforked; i++) {
		int status = 0;
		while ((r = waitpid(pids[i], &status, 0)) < 0 && errno == EINTR)
			;
		if (r < 0)
			perror("log-alone: waitpid");
		int expected = i == KILLED ? WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL
					   : WIFEXITED(status) && WEXITSTATUS(status) == 0;
		if (r < 0 || !expected) {
			fprintf(stderr, "log-alone: child %d ended with status %#x\n", i, status);
			ok = 0;
		}
	}
	if (mplog_info("parent: every child reaped") < 0)
		ok = 0;
	mplog_set_default_writer(NULL);
	mplog_writer_free(self); /* before the aggregator */
	/* Stop drains every pipe and flushes the sinks: the counts are final. */
	if ((r = mplog_aggregator_stop(agg)) < 0) {
		fprintf(stderr, "log-alone: mplog_aggregator_stop: %s\n", strerror(-r));
		ok = 0;
	}
	uint64_t garbage = mplog_aggregator_protocol_errors(agg);
	mplog_aggregator_free(agg);

	/* The JSON file has one line per record. */
	int lines = 0;
	FILE *f = fopen(path, "re");
	if (f) {
		for (int ch; (ch = getc(f)) != EOF;)
			lines += ch == '\n';
		fclose(f);
	} else {
		perror("log-alone: reading the JSON log back");
		ok = 0;
	}
	int total = c.log + c.out + c.err + c.parent;
	printf("records: %d logged by children, %d stdout and %d stderr lines captured, %d from "
	       "the parent; %d lines in %s\n", c.log, c.out, c.err, c.parent, lines, path);
	printf("protocol errors: %llu\n", (unsigned long long)garbage);
	if (argc > 1)
		printf("read it with: mplog cat %s\n", path);
	else
		unlink(tmp);
	ok &= c.log == 2 * NCHILDREN && c.out == NCHILDREN && c.err == NCHILDREN && c.parent == 2 &&
	      lines == total && garbage == 0;
	printf("%s\n", ok ? "OK" : "UNEXPECTED");
	return ok ? 0 : 1;
}
