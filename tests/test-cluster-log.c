/* SPDX-License-Identifier: MIT */
/* The agents' log records in rank 0's log, run by tests/cluster-log.sh
 * under `mpirun -np 3`: every task logs a record and prints a line on
 * whichever rank it runs, task 42 logs and then segfaults. With "json
 * FILE", every rank's pool logs into an aggregator of the program's,
 * and rank 0 alone gives it a JSON lines file sink once it knows it is
 * rank 0, and leaves the tasks to the agents; the script reads the file
 * back (every record once, with its host, rank and task index in the
 * call, the crash's last record); then a flood: 24 MiB of records in
 * one map, 6 MiB a chunk, more than an agent queues before it waits for
 * its sends; then, with no call running, an agent's worker killed with
 * an unterminated line, whose record must reach the file. With "stderr",
 * every rank's pool keeps its default log (text on stderr), which agents
 * must not write themselves: the script counts each record once in
 * mpirun's output. Not a Check suite: Check forks, and a process forked after
 * MPI_Init must not use MPI. */
#include "mpguard-mpi.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N 60

static int my_rank(void)
{
	const char *r = getenv("OMPI_COMM_WORLD_RANK");
	return r ? atoi(r) : -1;
}

static volatile int *null_page;

/* UBSan (the sanitized build) must let the NULL load fault as it would. */
__attribute__((no_sanitize("undefined"))) static int log_task(mpg_task *task, const void *in,
							       size_t len, void *userdata)
{
	(void)len, (void)userdata;
	long v;
	memcpy(&v, in, sizeof v);
	char input[24], rank[16];
	snprintf(input, sizeof input, "%ld", v);
	snprintf(rank, sizeof rank, "%d", my_rank());
	mplog_kv kv[] = {{"input", input}, {"ran_on", rank}};
	mplog_info_kv(kv, 2, "task for input %ld", v);
	printf("printed for input %ld\n", v);
	fflush(stdout);
	/* Long enough that every rank takes chunks. */
	nanosleep(&(struct timespec){0, 2000000}, NULL);
	if (v == 42) {
		mplog_warn_kv(kv, 2, "input 42 about to crash");
		return *null_page; /* SIGSEGV */
	}
	return mpg_task_set_result(task, &v, sizeof v);
}

#define FLOOD_TASKS 4
#define FLOOD_RECORDS 6000

/* Many records, more than an agent queues (4 MiB): they must flow to
 * rank 0 while the chunk runs, none dropped. */
static int flood_task(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)len, (void)userdata;
	long v;
	memcpy(&v, in, sizeof v);
	char pad[1024];
	memset(pad, 'x', sizeof pad - 1);
	pad[sizeof pad - 1] = 0;
	mplog_kv kv[] = {{"pad", pad}};
	for (int i = 0; i < FLOOD_RECORDS; i++)
		if (mplog_info_kv(kv, 1, "flood %ld %d", v, i) != 0)
			return mpg_raise(EIO, "record %d not logged", i);
	/* A line without its newline: a record only at the worker's end, at
	 * the agent's pool's end, after the last answer (the LAST message). */
	printf("tail of flood %ld", v);
	fflush(stdout);
	return mpg_task_set_result(task, &v, sizeof v);
}

/* A line without its newline: a record only once its worker dies. */
static int pid_task(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)in, (void)len, (void)userdata;
	long pid = (long)getpid();
	printf("between calls from pid %ld", pid);
	fflush(stdout);
	return mpg_task_set_result(task, &pid, sizeof pid);
}

/* Whether the file at @path holds @want past *@off (moved on). */
static bool file_has(const char *path, const char *want, long *off)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool found = false;
	char line[4096];
	if (fseek(f, *off, SEEK_SET) == 0)
		while (!found && fgets(line, sizeof line, f))
			found = strstr(line, want) != NULL;
	long end = ftell(f);
	if (!found && end > 4096)
		*off = end - 4096; /* a line cut by the last read is read again */
	fclose(f);
	return found;
}

/* Between calls: an agent's worker dies with an unterminated line, which
 * becomes a record then; no call runs, and rank 0's driver thread takes
 * the agent's LOG message as it comes, into the file. */
static int between_calls(mpg_cluster *cl, mplog_aggregator *agg, const char *path)
{
	long in = 0, pid = 0, off = 0;
	if (mpg_cluster_map_array(cl, pid_task, &in, sizeof in, 1, &pid, sizeof pid, 1, NULL,
				  NULL) != 0 || pid <= 0 || kill((pid_t)pid, SIGKILL) < 0) {
		fprintf(stderr, "test-cluster-log: no agent's worker to kill\n");
		return -1;
	}
	char want[64];
	snprintf(want, sizeof want, "between calls from pid %ld", pid);
	/* Waits for the record, 10 s at most: it takes milliseconds. */
	for (int i = 0; i < 1000; i++) {
		(void)mplog_aggregator_flush(agg);
		if (file_has(path, want, &off))
			return 0;
		nanosleep(&(struct timespec){0, 10000000}, NULL);
	}
	fprintf(stderr, "test-cluster-log: \"%s\" not in rank 0's log 10 s after its worker "
		"died, with no call running\n", want);
	return -1;
}

static int quiet_task(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)len, (void)userdata;
	return mpg_task_set_result(task, in, sizeof(long));
}

int main(int argc, char **argv)
{
	bool json = argc == 3 && strcmp(argv[1], "json") == 0;
	if (!json && !(argc == 2 && strcmp(argv[1], "stderr") == 0)) {
		fprintf(stderr, "usage: test-cluster-log json FILE | stderr\n");
		return 2;
	}
	mpg_options *opts = NULL;
	mplog_aggregator *agg = NULL;
	if (mpg_options_new(&opts) < 0 || mpg_options_set_workers(opts, 1) < 0 ||
	    mpg_options_set_capture(opts, MPG_CAPTURE_STDOUT) < 0)
		return 1;
	if (json && (mplog_aggregator_new(&agg) < 0 || mplog_aggregator_start(agg) < 0 ||
		     mpg_options_set_log(opts, agg) < 0))
		return 1;
	mpg_cluster *cl = NULL;
	int r = mpg_cluster_init(&argc, &argv, opts, &cl);
	mpg_options_free(opts);
	if (r != 0) { /* an agent: its records went to rank 0 */
		mplog_aggregator_free(agg);
		if (r < 0)
			fprintf(stderr, "test-cluster-log: mpg_cluster_init: %s\n", strerror(-r));
		return r < 0;
	}
	mplog_sink *sink;
	if (json && (mplog_sink_new_file(argv[2], MPLOG_FORMAT_JSON, 0, &sink) < 0 ||
		     mplog_aggregator_add_sink(agg, sink) < 0)) {
		fprintf(stderr, "test-cluster-log: cannot log to %s\n", argv[2]);
		mpg_cluster_free(cl);
		return 1;
	}
	/* The file's records all come from agents: rank 0 only drives. */
	if (json && mpg_cluster_set_local(cl, 0) < 0) {
		mpg_cluster_free(cl);
		return 1;
	}
	long in[N], out[N];
	for (long i = 0; i < N; i++)
		in[i] = i;
	int failed = mpg_cluster_map_array(cl, log_task, in, sizeof *in, N, out, sizeof *out, 2,
					   NULL, NULL);
	if (json) {
		/* After chunks that logged nothing an agent runs the next one on
		 * its MPI thread (it queues up to 64 MiB), then on a thread of
		 * its own while it sends: the flood goes both ways. */
		if (mpg_cluster_map_array(cl, quiet_task, in, sizeof *in, N, out, sizeof *out, 2,
					  NULL, NULL) != 0)
			failed = -1;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int f = mpg_cluster_map_array(cl, flood_task, in, sizeof *in, FLOOD_TASKS, out,
					      sizeof *out, 1, NULL, NULL);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		printf("test-cluster-log: %d records of 1 KiB from the agents in %.2f s\n",
		       FLOOD_TASKS * FLOOD_RECORDS, s);
		if (f != 0) {
			fprintf(stderr, "test-cluster-log: flood: %d failed tasks\n", f);
			failed = -1;
		}
		if (between_calls(cl, agg, argv[2]) < 0)
			failed = -1;
		else
			printf("test-cluster-log: an agent's record came between calls\n");
	}
	mpg_cluster_free(cl); /* reads every agent's last records */
	mplog_aggregator_free(agg);
	if (failed != 1) {
		fprintf(stderr, "test-cluster-log: %d failed tasks, not 1\n", failed);
		return 1;
	}
	printf("test-cluster-log: map done\n");
	return 0;
}
