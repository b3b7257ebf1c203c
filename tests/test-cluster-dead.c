/* SPDX-License-Identifier: MIT */
/* A rank that dies: under `mpirun -np 3` (tests/cluster-dead.sh), a task
 * on an agent SIGKILLs its own agent (the rank process, whose pid the
 * worker inherited in the environment). The job must end, not hang, with
 * a message naming the dead rank (checked by the script). With
 * "idle" as argument instead: the CPU time of idle agents and of rank 0
 * waiting in a map (below). */
#include "mpguard-mpi.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds of the other ranks: the processes mpirun's daemon started
 * next to this one (same parent, same name), from /proc/PID/stat. */
static int sibling_cpu(double *cpu, int max)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	char me[64] = "";
	snprintf(me, sizeof me, "/proc/%d/comm", (int)getpid());
	FILE *f = fopen(me, "re");
	if (!f || !fgets(me, sizeof me, f))
		me[0] = '\0';
	if (f)
		fclose(f);
	me[strcspn(me, "\n")] = '\0';
	while (n < max && (de = readdir(d))) {
		int pid = atoi(de->d_name);
		if (pid <= 0 || pid == getpid())
			continue;
		char path[64], buf[1024];
		snprintf(path, sizeof path, "/proc/%d/stat", pid);
		f = fopen(path, "re");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[len] = '\0';
		char *open = strchr(buf, '('), *close = strrchr(buf, ')');
		if (!open || !close)
			continue;
		*close = '\0';
		int ppid = 0;
		unsigned long ut = 0, st = 0;
		/* After "(comm)": state ppid ... utime is field 14, stime 15. */
		if (sscanf(close + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ppid,
			   &ut, &st) != 3 ||
		    ppid != getppid() || strcmp(open + 1, me) != 0)
			continue;
		cpu[n++] = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	}
	closedir(d);
	return n;
}

/* A task that waits: its rank's agent and rank 0 have nothing to do. */
static int nap(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)len, (void)userdata;
	nanosleep(&(struct timespec){1, 0}, NULL);
	return mpg_task_set_result(task, in, sizeof(long));
}

/* The agents wait 1 s for a chunk (rank 0 sleeps: a measuring window,
 * not a synchronization), then rank 0 waits 1 s in a map for their
 * napping tasks. Each rank's own CPU time must stay far below the 1 s
 * a spinning wait costs. */
static int idle(mpg_cluster *cl)
{
	double before[2] = {0}, after[2] = {0};
	int agents = sibling_cpu(before, 2);
	nanosleep(&(struct timespec){1, 0}, NULL);
	int bad = sibling_cpu(after, 2) != agents || agents != 2;
	for (int i = 0; i < agents; i++) {
		printf("test-cluster-dead: an idle agent spent %.3f s of CPU in 1 s\n",
		       after[i] - before[i]);
		bad |= after[i] - before[i] >= 0.25;
	}
	if (agents != 2)
		fprintf(stderr, "test-cluster-dead: found %d agents in /proc\n", agents);
	mpg_cluster_set_local(cl, 0);
	long in[2] = {1, 2}, out[2];
	double t0 = cpu_seconds();
	int r = mpg_cluster_map_array(cl, nap, in, sizeof *in, 2, out, sizeof *out, 1, NULL, NULL);
	double cpu = cpu_seconds() - t0;
	printf("test-cluster-dead: rank 0 spent %.3f s of CPU waiting 1 s for the agents\n", cpu);
	mpg_cluster_free(cl);
	if (r != 0 || out[0] != 1 || out[1] != 2) {
		fprintf(stderr, "test-cluster-dead: idle map returned %d\n", r);
		return 1;
	}
	return cpu < 0.25 && !bad ? 0 : 1;
}

static int kill_own_agent(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)len, (void)userdata;
	long v;
	memcpy(&v, in, sizeof v);
	const char *agent = getenv("TEST_RANK_PID");
	const char *rank = getenv("OMPI_COMM_WORLD_RANK");
	if (v == 7 && agent && rank && strcmp(rank, "0") != 0) {
		printf("test-cluster-dead: task 7 kills rank %s (pid %s)\n", rank, agent);
		fflush(stdout);
		kill((pid_t)atoi(agent), SIGKILL);
	}
	return mpg_task_set_result(task, &v, sizeof v);
}

struct lost {
	int n, ok, task7, rank;
	const char *why; /* in the message: "died", or "silent" */
};

static void on_lost(const mpg_error *err, void *userdata)
{
	struct lost *l = userdata;
	printf("test-cluster-dead: rank 0 got: %s\n", mpg_error_describe(err));
	l->n++;
	if (l->rank < 0)
		l->rank = mpg_error_rank(err);
	l->ok += mpg_error_get_kind(err) == MPG_ERR_CANCELLED && mpg_error_code(err) == EHOSTDOWN &&
		 mpg_error_rank(err) == l->rank && mpg_error_rank(err) > 0 &&
		 mpg_error_host(err) && strstr(mpg_error_message(err), l->why);
	l->task7 += mpg_error_task(err) == 7;
}

/* Under orte_enable_recovery Open MPI lets the job go on: rank 0 must see
 * the agent die, fail the chunks it held (task 7's and at most the one
 * queued behind it) naming it, and finish the map on the other agent. */
static int recover(mpg_cluster *cl, const long *in, long *out, size_t n, const char *why)
{
	struct lost l = {.rank = -1, .why = why};
	int r = mpg_cluster_map_array(cl, kill_own_agent, in, sizeof *in, n, out, sizeof *out, 1,
				      on_lost, &l);
	printf("test-cluster-dead: map returned %d\n", r);
	int bad = !(r == l.n && (r == 1 || r == 2) && l.ok == r && l.task7 == 1);
	if (bad)
		fprintf(stderr, "test-cluster-dead: %d errors, %d as expected, task 7 %d times\n",
			l.n, l.ok, l.task7);
	int done = 0;
	for (size_t i = 0; i < n; i++)
		done += out[i] == (long)i;
	if (done != (int)n - r) {
		fprintf(stderr, "test-cluster-dead: %d tasks done of %zu\n", done, n);
		bad = 1;
	}
	mpg_cluster_free(cl);
	return bad;
}

static int raise7(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	if (mpg_task_index(task) == 7)
		mpg_raise(EDOM, "task 7 fails");
	return mpg_task_set_result(task, in, len);
}

/* MPG_ABORT with abort_exit: rank 0 prints the error and exits 3 (the
 * script checks that the job ends so, not hanging). */
static int abort_exit(mpg_cluster *cl)
{
	mpg_options *o = NULL;
	if (mpg_options_new(&o) < 0 || mpg_options_set_policy(o, MPG_ABORT, 0) < 0 ||
	    mpg_options_set_abort_exit(o, 3) < 0 || mpg_options_set_chunksize(o, 1) < 0)
		return 1;
	mpg_buf in[40];
	for (int i = 0; i < 40; i++)
		in[i] = (mpg_buf){"t", 1};
	int r = mpg_cluster_map(cl, raise7, in, 40, o, NULL);
	fprintf(stderr, "test-cluster-dead: the aborted map returned %d\n", r);
	return 1;
}

int main(int argc, char **argv)
{
	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	setenv("TEST_RANK_PID", pid, 1); /* before the pool: its workers inherit it */
	mpg_options *opts = NULL;
	if (mpg_options_new(&opts) < 0 || mpg_options_set_workers(opts, 1) < 0)
		return 1;
	mpg_cluster *cl = NULL;
	int r = mpg_cluster_init(&argc, &argv, opts, &cl);
	mpg_options_free(opts);
	if (r < 0) {
		fprintf(stderr, "test-cluster-dead: mpg_cluster_init: %s\n", strerror(-r));
		if (r == -ECONNRESET)
			printf("test-cluster-dead: agent %s saw rank 0 die\n",
			       getenv("OMPI_COMM_WORLD_RANK"));
		return r == -ECONNRESET ? 0 : 1;
	}
	if (r > 0) { /* an agent, stopped by rank 0 */
		double cpu = cpu_seconds();
		printf("test-cluster-dead: agent %s spent %.3f s of CPU in all\n",
		       getenv("OMPI_COMM_WORLD_RANK"), cpu);
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "idle") == 0)
		return idle(cl);
	if (argc > 1 && strcmp(argv[1], "abort-exit") == 0) {
		mpg_cluster_set_local(cl, 0);
		return abort_exit(cl);
	}
	if (argc > 1 && (strcmp(argv[1], "rank0") == 0 || strcmp(argv[1], "rank0-silent") == 0)) {
		/* Under recovery the agents must notice and return. */
		printf("test-cluster-dead: rank 0 kills itself\n");
		fflush(stdout);
		raise(SIGKILL);
	}
	mpg_cluster_set_local(cl, 0);
	long in[40], out[40];
	for (long i = 0; i < 40; i++)
		in[i] = i;
	/* Without recovery Open MPI ends the job, rank 0 too, maybe before
	 * the map returns (tests/cluster-dead.sh checks what is printed). */
	/* "silent": no pidfd watch (MPKIT_CLUSTER_PIDFD=0), as for a rank on
	 * another host: the deadline (MPKIT_CLUSTER_DEADLINE_MS) tells. */
	bool silent = argc > 1 && strcmp(argv[1], "silent") == 0;
	return recover(cl, in, out, 40, silent ? "silent" : "died");
}
