/* SPDX-License-Identifier: MIT */
/* A pool's merged log: mplog_* in tasks, captured stdout, JSON lines.
 *
 * Every pool logs through libmplog with no extra code: a task's
 * mplog_info() reaches the parent stamped with the worker and the task's
 * index, and every failed task adds an ERROR record with its backtrace.
 * Here the pool also captures what tasks print on stdout
 * (mpg_options_set_capture()), and two sinks are added to its aggregator
 * (mpg_pool_log()): a JSON lines file, which `mplog cat` reads, and a
 * callback that checks the stamps. Records still go to stderr as text, the
 * default.
 *
 *   $ ./pool-log [FILE.jsonl]   the JSON log goes to FILE (kept), or to a
 *                               temporary file removed at the end; exit 0
 *                               when every record arrived, stamped right
 */
#include <mpguard.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N = 8, BROKEN = 5 };

static int thumbnail(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	int32_t size;
	if (len != sizeof size)
		return mpg_raise(EINVAL, "expected an int32, got %zu bytes", len);
	memcpy(&size, in, sizeof size);
	if (mpg_task_index(task) == BROKEN)
		mpg_raise(EBADMSG, "image %zu: truncated JPEG", mpg_task_index(task));
	char w[16];
	snprintf(w, sizeof w, "%d", (int)size / 4);
	const mplog_kv kv[] = {{"width", w}, {"format", "webp"}};
	mplog_info_kv(kv, 2, "thumbnail of image %zu done", mpg_task_index(task));
	printf("image %zu: %d bytes in\n", mpg_task_index(task), (int)size); /* captured */
	int32_t out = size / 16;
	return mpg_task_set_result(task, &out, sizeof out);
}

struct check {
	int info, out, error;
	int stamped; /* info records that carry their task's index and worker */
	int out_of;  /* stdout lines that carry their worker (not the task) */
};

static void check_record(const mplog_record *rec, void *userdata)
{
	struct check *c = userdata; /* on the aggregator's thread */
	int64_t task = mplog_record_task(rec);
	int worker = mplog_record_worker(rec);
	if (mplog_record_stream(rec) == MPLOG_STREAM_STDOUT) {
		c->out++;
		c->out_of += worker >= 0;
	} else if (mplog_record_level(rec) == MPLOG_ERROR) {
		c->error++; /* the pool's own record, from the parent */
	} else if (mplog_record_level(rec) == MPLOG_INFO) {
		c->info++;
		c->stamped += task >= 0 && task < N && task != BROKEN && worker >= 0;
	}
}

int main(int argc, char **argv)
{
	char tmp[4096];
	const char *dir = getenv("TMPDIR");
	snprintf(tmp, sizeof tmp, "%s/pool-log-XXXXXX.jsonl", dir && *dir ? dir : "/tmp");
	const char *path = argc > 1 ? argv[1] : tmp;
	if (argc == 1) {
		int fd = mkostemps(tmp, 6, O_CLOEXEC);
		if (fd < 0) {
			perror("pool-log: mkostemps");
			return 1;
		}
		close(fd); /* the sink opens it by name */
	}

	mpg_options *opts = NULL;
	mpg_pool *pool = NULL;
	mplog_sink *json, *cb;
	struct check c = {0}; /* outlives the pool, whose aggregator calls into it */
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, 2)) < 0 ||
	    (r = mpg_options_set_capture(opts, MPG_CAPTURE_STDOUT)) < 0 ||
	    (r = mpg_pool_new(opts, &pool)) < 0 ||
	    (r = mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &json)) < 0 ||
	    (r = mplog_aggregator_add_sink(mpg_pool_log(pool), json)) < 0 || /* owns it now */
	    (r = mplog_sink_new_callback(check_record, &c, &cb)) < 0 ||
	    (r = mplog_aggregator_add_sink(mpg_pool_log(pool), cb)) < 0) {
		fprintf(stderr, "pool-log: setup: %s\n", strerror(-r));
		mpg_options_free(opts);
		mpg_pool_free(pool);
		return 1;
	}
	mpg_options_free(opts);

	int32_t sizes[N], thumbs[N];
	for (int i = 0; i < N; i++)
		sizes[i] = 100000 + 1000 * i;
	mpg_results *res;
	if ((r = mpg_map_array(pool, thumbnail, sizes, sizeof sizes[0], N, thumbs, sizeof thumbs[0],
			       NULL, &res)) < 0) {
		fprintf(stderr, "pool-log: mpg_map_array: %s\n", strerror(-r));
		mpg_pool_free(pool);
		return 1;
	}
	size_t failed = mpg_results_failed(res);
	mpg_results_free(res);
	int ok = failed == 1;
	if ((r = mpg_pool_close(pool)) < 0 || (r = mpg_pool_join(pool)) < 0) {
		fprintf(stderr, "pool-log: close/join: %s\n", strerror(-r));
		ok = 0;
	}
	mpg_pool_free(pool); /* drains the merged log into every sink */

	int lines = 0;
	FILE *f = fopen(path, "re");
	if (f) {
		for (int ch; (ch = getc(f)) != EOF;)
			lines += ch == '\n';
		fclose(f);
	} else {
		perror("pool-log: reading the JSON log back");
		ok = 0;
	}
	printf("%zu of %d tasks failed; records: %d mplog_info() from tasks (%d stamped with task\n"
	       "and worker), %d stdout lines (%d with their worker), %d ERROR; %d lines in %s\n",
	       failed, N, c.info, c.stamped, c.out, c.out_of, c.error, lines, path);
	if (argc > 1)
		printf("read it with: mplog cat %s   (or mplog --stats cat %s)\n", path, path);
	else
		unlink(tmp);
	ok &= c.info == N - 1 && c.stamped == N - 1 && c.out == N - 1 && c.out_of == N - 1 &&
	      c.error == 1 && lines == c.info + c.out + c.error;
	printf("%s\n", ok ? "OK" : "UNEXPECTED");
	return ok ? 0 : 1;
}
