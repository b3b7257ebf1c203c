/* SPDX-License-Identifier: MIT */
/* Seeds of fuzz-cluster-wire and fuzz-cluster-log from the real
 * encoders: `ninja -C BUILDDIR fuzz-corpus-cluster` writes them into
 * tests/fuzz/corpus/cluster-wire/ and cluster-log/. */
#include "cluster-int.h"
#include "cluster-log-int.h"
#include "mplog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *dir;

static void put(const char *name, uint8_t *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "we");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	free(p);
}

/* Records as an agent's sink encodes them. */
static struct {
	uint8_t *v[8];
	uint32_t len[8];
	int n;
} enc;

static void encode(const mplog_record *r, void *userdata)
{
	(void)userdata;
	ssize_t n = mplog_record_encode(r, 100, NULL, 0);
	if (n <= 0 || enc.n == 8 || !(enc.v[enc.n] = malloc((size_t)n + 1)))
		exit(1);
	mplog_record_encode(r, 100, enc.v[enc.n], (size_t)n + 1);
	enc.len[enc.n++] = (uint32_t)n;
}

/* A LOG message of records [from, to) of enc. */
static void put_batch(const char *name, int from, int to, uint32_t flags, uint64_t dropped)
{
	struct mpg__cl_log_batch b = {.rank = 2, .pid = 4242, .flags = flags, .dropped = dropped,
				      .host = "node7", .nrec = (uint32_t)(to - from)};
	size_t len = mpg__cl_log_header_size(b.host);
	for (int i = from; i < to; i++)
		len += 4 + enc.len[i];
	uint8_t *buf = malloc(len);
	if (!buf)
		exit(1);
	mpg__cl_log_header_encode(&b, buf);
	size_t at = mpg__cl_log_header_size(b.host);
	for (int i = from; i < to; i++) {
		mpg__cl_log_put_record(buf + at, enc.v[i], enc.len[i]);
		at += 4 + enc.len[i];
	}
	put(name, buf, len);
}

static int cluster_log(const char *root)
{
	static char path[4096];
	snprintf(path, sizeof path, "%s/cluster-log", root);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return 1;
	dir = path;
	mplog_aggregator *a;
	mplog_sink *s;
	mplog_writer *w;
	if (mplog_aggregator_new(&a) < 0 || mplog_sink_new_callback(encode, NULL, &s) < 0 ||
	    mplog_aggregator_add_sink(a, s) < 0 || mplog_aggregator_writer(a, &w) < 0)
		return 1;
	mplog_kv kv[] = {{"input", "42"}, {"ran_on", "2"}};
	mplog_writer_log(w, MPLOG_INFO, "test-cluster-log.c", 45, "log_task", kv, 2, "task for input 42");
	mplog_kv fail[] = {{"mpg.kind", "signaled"}, {"mpg.task", "2"}, {"mpg.signal", "SEGV"},
			   {"mpg.backtrace", "#0 0x5561 log_task+0x18c (test-cluster-log.c:51)\n"}};
	mplog_writer_log(w, MPLOG_ERROR, NULL, 0, NULL, fail, 4, "task 2: worker 0 died by SIGSEGV");
	mplog_writer_log(w, MPLOG_WARN, NULL, 0, NULL, NULL, 0, "two\nlines \xff");
	mplog_writer_free(w);
	mplog_aggregator_free(a);
	uint8_t *one = malloc(enc.len[0]);
	if (!one)
		return 1;
	memcpy(one, enc.v[0], enc.len[0]);
	put("record", one, enc.len[0]);
	put_batch("batch", 0, enc.n, 0, 0);
	put_batch("batch-last-dropped", 2, enc.n, MPG__CL_LOG_LAST, 5);
	put_batch("last-empty", 0, 0, MPG__CL_LOG_LAST, 0);
	for (int i = 0; i < enc.n; i++)
		free(enc.v[i]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	static char path[4096];
	snprintf(path, sizeof path, "%s/cluster-wire", argv[1]);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return 1;
	dir = path;
	uint8_t *buf;
	size_t len;
	long in[4] = {1, 2, 3, 4};
	struct mpg__cl_chunk c = {.first = 8, .count = 4, .in_size = sizeof *in,
				  .out_size = 16, .in = (const uint8_t *)in};
	strcpy(c.fn.module, "");
	c.fn.offset = 0x1234;
	c.fn.build_id_len = 20;
	memset(c.fn.build_id, 0xab, 20);
	if (mpg__cl_chunk_encode(&c, &buf, &len) == 0)
		put("chunk-program", buf, len);
	strcpy(c.fn.module, "/usr/lib/libtask.so");
	c.fn.build_id_len = 0;
	if (mpg__cl_chunk_encode(&c, &buf, &len) == 0)
		put("chunk-library", buf, len);

	/* mpg_cluster_map(): inputs of any length, a context, retries. */
	mpg_buf bufs[3] = {{"abc", 3}, {"", 0}, {"hello", 5}};
	struct mpg__cl_chunk b = {.flags = MPG__CL_BUFS, .first = 40, .count = 3, .bufs = bufs,
				  .ctx = (const uint8_t *)"ctx", .ctx_len = 3, .retries = 2,
				  .timeout_ms = 500};
	b.fn = c.fn;
	if (mpg__cl_chunk_encode(&b, &buf, &len) == 0)
		put("chunk-bufs", buf, len);

	long out[4] = {1, 4, 9, 16};
	struct mpg__cl_result r = {.rank = 2, .host = "node7", .first = 8, .count = 4,
				   .out_size = sizeof *out, .out = (const uint8_t *)out};
	if (mpg__cl_result_encode(&r, NULL, &buf, &len) == 0)
		put("result-ok", buf, len);
	struct mpg__cl_wire_error e[2] = {
		{.kind = MPG_ERR_RAISED, .worker = 0, .pid = 4242, .code = 33, .attempts = 1,
		 .task = 9, .message = "input 17 is out of range",
		 .backtrace = "#0 0x5561 faulty_task+0x88 (test-cluster.c:61) [test-cluster]\n"},
		{.kind = MPG_ERR_SIGNALED, .worker = 1, .pid = 4243, .sig = 11, .attempts = 1,
		 .has_fault = 1, .si_code = 1, .addr = 0, .task = 11,
		 .message = "Segmentation fault", .backtrace = ""},
	};
	r.nerrors = 2;
	if (mpg__cl_result_encode(&r, e, &buf, &len) == 0)
		put("result-errors", buf, len);
	struct mpg__cl_result rb = {.rank = 1, .host = "node2", .flags = MPG__CL_BUFS, .first = 40,
				    .count = 3, .bufs = bufs, .nerrors = 1};
	struct mpg__cl_wire_error eb = {.kind = MPG_ERR_RAISED, .worker = 0, .pid = 77, .code = 1,
					.attempts = 3, .task = 41, .message = "no", .backtrace = ""};
	bufs[1] = (mpg_buf){NULL, 0}; /* the failed task's */
	if (mpg__cl_result_encode(&rb, &eb, &buf, &len) == 0)
		put("result-bufs", buf, len);
	r.nerrors = 0;
	r.status = -ESTALE;
	if (mpg__cl_result_encode(&r, NULL, &buf, &len) == 0)
		put("result-stale", buf, len);
	return cluster_log(argv[1]);
}
