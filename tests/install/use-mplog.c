/* SPDX-License-Identifier: MIT */
/* A program built against an installed libmplog alone
 * (tests/check-install.sh), its header included by its installed path:
 * one child's record through an aggregator into a callback sink. */
#include <mpkit/mplog.h>

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int seen;

static void on_record(const mplog_record *r, void *userdata)
{
	(void)userdata;
	seen += strcmp(mplog_record_message(r, NULL), "hello from the child") == 0;
}

int main(void)
{
	mplog_aggregator *agg;
	mplog_sink *sink;
	mplog_child_fds fds;
	if (mplog_aggregator_new(&agg) < 0 || mplog_sink_new_callback(on_record, NULL, &sink) < 0 ||
	    mplog_aggregator_add_sink(agg, sink) < 0 || mplog_aggregator_start(agg) < 0 ||
	    mplog_aggregator_add_child(agg, "child", 0, 0, &fds) < 0)
		return 1;
	pid_t pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0) {
		if (mplog_child_setup(&fds, 0, 0, NULL) < 0 || mplog_info("hello from the child") < 0)
			_exit(1);
		_exit(0);
	}
	mplog_child_fds_close(&fds);
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 3;
	mplog_aggregator_free(agg); /* drains the child's pipe */
	if (seen != 1)
		return 4;
	printf("libmplog %s: 1 record\n", mplog_version());
	return 0;
}
