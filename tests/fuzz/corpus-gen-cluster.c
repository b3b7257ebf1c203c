/* SPDX-License-Identifier: MIT */
/* Seeds of fuzz-cluster-wire from the real encoders: `ninja -C BUILDDIR
 * fuzz-corpus-cluster` writes them into tests/fuzz/corpus/cluster-wire/. */
#include "cluster-int.h"

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
	return 0;
}
