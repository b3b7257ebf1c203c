/* SPDX-License-Identifier: MIT */
/* Writes the seed corpora of the fuzz targets from the real encoders:
 *   fuzz-corpus-gen DIR      (ninja -C BUILDDIR fuzz-corpus: DIR is tests/fuzz/corpus)
 * log-frames: what libmplog's writer puts on a log pipe (short and
 * fragmented records, interleaved fragments, garbage before records, a
 * stream cut short); log-record: the bodies of those frames; log-lines:
 * captured output; log-ring: a child's log ring as its writer leaves it
 * (records, fragments, wrapped round, a writer dead mid-entry); mplog-line:
 * lines of a JSON sink fed by a real pool (a
 * task's records and captured stdout, a crash with its backtrace, a
 * protocol error); mplog-time: --since/--until arguments; worker-frames,
 * arena, fork-server: the worker protocol's frames from its encoders. */
#include "aggregator-int.h" /* MPLOG_MAX_ASSEMBLIES */
#include "arena-int.h"
#include "proto-int.h"
#include "record-int.h"
#include "ring-int.h"
#include "writer-int.h"

#include <errno.h>
#include <fcntl.h>
#include <mpguard.h>
#include <mplog.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *top;

_Noreturn static void die(const char *what)
{
	fprintf(stderr, "fuzz-corpus-gen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void put(const char *target, const char *name, const void *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", top, target);
	if ((mkdir(top, 0755) < 0 && errno != EEXIST) || (mkdir(path, 0755) < 0 && errno != EEXIST))
		die(path);
	snprintf(path, sizeof path, "%s/%s/%s", top, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
		die(path);
}

static void put_str(const char *target, const char *name, const char *s)
{
	put(target, name, s, strlen(s));
}

/* Everything a writer sent to a pipe. */
struct bytes {
	uint8_t *p;
	size_t n;
};

static struct bytes drain(int fd)
{
	struct bytes b = {0};
	size_t cap = 0;
	for (;;) {
		if (cap - b.n < 65536 && !(b.p = realloc(b.p, cap += 65536)))
			die("realloc");
		ssize_t k = read(fd, b.p + b.n, cap - b.n);
		if (k < 0 && errno == EAGAIN)
			return b;
		if (k <= 0)
			die("read");
		b.n += (size_t)k;
	}
}

static void append(struct bytes *b, const void *p, size_t n)
{
	if (!(b->p = realloc(b->p, b->n + n)))
		die("realloc");
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static int rfd, wfd;
static mplog_writer *w;

/* What the records logged by fn look like on the pipe. */
static struct bytes frames(void (*fn)(void))
{
	fn();
	return drain(rfd);
}

static void one_record(void)
{
	mplog_kv kv[] = {{"user", "alice"}, {"attempt", "2"}};
	mplog_writer_log(w, MPLOG_INFO, "src/fetch.c", 42, "fetch_one", kv, 2,
			 "fetched %d bytes from %s", 1234, "https://example.org/");
}

static void several(void)
{
	mplog_set_context(1, 17);
	mplog_writer_log(w, MPLOG_DEBUG, "a.c", 1, "f", NULL, 0, "debug");
	mplog_writer_log(w, MPLOG_WARN, "", 0, "", NULL, 0, "two\nlines, a tab\t, a quote \" and UTF-8 \xc3\xa9");
	mplog_kv kv[] = {{"mpg.backtrace", "#0 0x1 f (a.c:1)\n#1 0x2 main (a.c:9)\n"}, {"", ""}};
	mplog_writer_log(w, MPLOG_ERROR, "b.c", 7, "g", kv, 2, "invalid \xff\xfe bytes");
	mplog_set_context(-1, -1);
	mplog_writer_log(w, MPLOG_FATAL, NULL, 0, NULL, NULL, 0, "%s", "");
}

static char big[9000];

static void long_record(void)
{
	memset(big, 'x', sizeof big - 1);
	mplog_kv kv[] = {{"size", "8999"}};
	mplog_writer_log(w, MPLOG_NOTICE, "long.c", 3, "spill", kv, 1, "%s", big);
}

static void two_long_records(void)
{
	memset(big, 'y', 5000);
	big[5000] = 0;
	mplog_writer_log(w, MPLOG_INFO, "l.c", 1, "a", NULL, 0, "%s", big);
	mplog_writer_log(w, MPLOG_INFO, "l.c", 2, "b", NULL, 0, "%s", big);
}

/* Split a stream of frames (as the writer wrote them) at frame bounds. */
static size_t split(struct bytes b, struct bytes *out, size_t max)
{
	size_t n = 0;
	for (size_t off = 0; off < b.n && n < max; n++) {
		struct mpk_frame_header h;
		memcpy(&h, b.p + off, sizeof h);
		out[n] = (struct bytes){b.p + off, sizeof h + h.length};
		off += sizeof h + h.length;
	}
	return n;
}

static void gen_frames(void)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
		die("pipe");
	rfd = fds[0];
	wfd = fds[1];
	if (mplog_writer_new(wfd, 0, &w) < 0)
		die("writer");

	struct bytes one = frames(one_record), sev = frames(several), lng = frames(long_record),
		     two = frames(two_long_records);
	put("log-frames", "one-record", one.p, one.n);
	put("log-frames", "several-records", sev.p, sev.n);
	put("log-frames", "fragmented-record", lng.p, lng.n);

	/* Two long records, their fragments interleaved (two threads). */
	struct bytes f[8], mix = {0};
	size_t nf = split(two, f, 8);
	for (size_t i = 0; i < nf / 2; i++) {
		append(&mix, f[i].p, f[i].n);
		append(&mix, f[nf / 2 + i].p, f[nf / 2 + i].n);
	}
	put("log-frames", "interleaved-fragments", mix.p, mix.n);

	/* A child that printf()s into its log pipe, then logs. */
	struct bytes g = {0};
	const char junk[] = "oops, printf to the wrong fd\nMPK not a frame MPKF\x01";
	append(&g, junk, sizeof junk - 1);
	append(&g, one.p, one.n);
	append(&g, "\0\0\0", 3);
	append(&g, sev.p, sev.n);
	put("log-frames", "garbage-then-records", g.p, g.n);

	/* Cut short in the middle of a frame, and a lost middle fragment. */
	put("log-frames", "cut-short", sev.p, sev.n - 5);
	struct bytes lost = {0};
	size_t nl = split(lng, f, 8);
	for (size_t i = 0; i < nl; i++)
		if (i != 1)
			append(&lost, f[i].p, f[i].n);
	put("log-frames", "lost-fragment", lost.p, lost.n);

	/* The bodies alone: records and fragments. */
	const struct mpk_frame_header *h = (const void *)one.p;
	put("log-record", "record", one.p + sizeof *h, h->length);
	nf = split(sev, f, 8);
	for (size_t i = 0; i < nf; i++) {
		char name[32];
		snprintf(name, sizeof name, "record-%zu", i);
		put("log-record", name, f[i].p + sizeof *h, f[i].n - sizeof *h);
	}
	nf = split(lng, f, 8);
	put("log-record", "fragment-first", f[0].p + sizeof *h, f[0].n - sizeof *h);
	put("log-record", "fragment-last", f[nf - 1].p + sizeof *h, f[nf - 1].n - sizeof *h);

	free(one.p);
	free(sev.p);
	free(lng.p);
	free(two.p);
	free(mix.p);
	free(g.p);
	free(lost.p);
	mplog_writer_free(w);
	close(rfd);
	close(wfd);
}

/* One fragment frame as the writer builds it, of a tiny record: small
 * enough that a seed can hold many long records in progress at once. */
static void fragment(struct bytes *b, uint32_t seq, uint32_t index, uint32_t count,
		     const uint8_t *body, uint32_t total, uint32_t off, uint32_t n)
{
	struct mpk_frame_header h;
	mpk_frame_header_init(&h, MPLOG_FRAME_FRAGMENT, MPLOG_FRAG_HDR + n, 0);
	uint32_t hdr[5] = {4242, seq, index, count, total};
	append(b, &h, sizeof h);
	append(b, hdr, sizeof hdr);
	append(b, body + off, n);
}

/* Fragments of 48-byte records (the smallest): whole, restarted, too many
 * in progress, unknown, inconsistent, and one that reassembles to an
 * invalid record. */
static void gen_small_fragments(void)
{
	uint8_t rec[MPLOG_REC_FIXED];
	struct mplog__rec_in in = {.ts = 1, .level = MPLOG_INFO, .pid = 4242, .worker = 1,
				   .task = 2, .file = {"", 0}, .func = {"", 0}, .msg = {"", 0}};
	mplog__rec_encode(&in, rec);
	struct bytes b = {0};
	fragment(&b, 1, 0, 2, rec, sizeof rec, 0, 24); /* whole, in two */
	fragment(&b, 1, 1, 2, rec, sizeof rec, 24, 24);
	fragment(&b, 2, 0, 2, rec, sizeof rec, 0, 24); /* restarted */
	fragment(&b, 2, 0, 2, rec, sizeof rec, 0, 24);
	fragment(&b, 2, 1, 2, rec, sizeof rec, 24, 24);
	for (uint32_t seq = 10; seq < 10 + MPLOG_MAX_ASSEMBLIES + 1; seq++) /* too many */
		fragment(&b, seq, 0, 2, rec, sizeof rec, 0, 24);
	fragment(&b, 99, 1, 2, rec, sizeof rec, 24, 24); /* unknown */
	fragment(&b, 3, 0, 3, rec, sizeof rec, 0, 16);   /* inconsistent count */
	fragment(&b, 3, 1, 2, rec, sizeof rec, 16, 16);
	rec[8] = 0x7f; /* level: no such level */
	fragment(&b, 4, 0, 2, rec, sizeof rec, 0, 24);
	fragment(&b, 4, 1, 2, rec, sizeof rec, 24, 24);
	put("log-frames", "small-fragments", b.p, b.n);
	free(b.p);
}

/* log-ring: the reader's start, then the ring's memory (128 slots). */
static void ring_seed(const char *name, uint64_t start, const void *ring, size_t len)
{
	uint8_t *b = malloc(8 + len);
	if (!b)
		die("malloc");
	memcpy(b, &start, 8);
	memcpy(b + 8, ring, len);
	put("log-ring", name, b, 8 + len);
	free(b);
}

static void gen_ring(void)
{
	const uint32_t nslots = 128;
	size_t len = mplog__ring_size(nslots);
	struct mplog__ring_shared *sh = aligned_alloc(64, len);
	int p[2];
	mplog_writer *rw;
	if (!sh || pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0 || mplog_writer_new(p[1], 0, &rw) < 0)
		die("ring");
	rw->ring = (struct mplog__ring){.sh = sh, .map_len = len, .nslots = nslots};
	mplog_kv kv[] = {{"user", "alice"}, {"bt", "#0 a\n#1 b"}};

	memset(sh, 0, len);
	mplog_writer_log(rw, MPLOG_INFO, "a.c", 1, "f", NULL, 0, "hello");
	mplog_writer_log(rw, MPLOG_WARN, "b.c", 2, "g", kv, 2, "with key-values");
	ring_seed("records", 0, sh, len);

	memset(sh, 0, len);
	memset(big, 'x', 5000);
	big[5000] = 0;
	mplog_writer_log(rw, MPLOG_ERROR, "c.c", 3, "h", NULL, 0, "%s", big);
	ring_seed("fragments", 0, sh, len);

	memset(sh, 0, len);
	atomic_store(&sh->head, 100);
	atomic_store(&sh->tail, 100);
	for (int i = 0; i < 4; i++)
		mplog_writer_log(rw, MPLOG_INFO, "d.c", i, "k", kv, 1, "record %d of a wrapped ring", i);
	ring_seed("wrapped", 100, sh, len);

	memset(sh, 0, len);
	mplog_writer_log(rw, MPLOG_INFO, "e.c", 5, "m", NULL, 0, "before the hole");
	atomic_fetch_add(&sh->head, 3); /* reserved by a writer that died */
	mplog_writer_log(rw, MPLOG_INFO, "e.c", 6, "m", NULL, 0, "after the hole");
	ring_seed("died-mid-entry", 0, sh, len);

	rw->ring.sh = NULL; /* not a mapping */
	mplog_writer_free(rw);
	close(p[0]);
	close(p[1]);
	free(sh);
}

static void gen_lines(void)
{
	put_str("log-lines", "lines", "hello\nworld\n");
	put_str("log-lines", "no-last-newline", "progress 10%\rprogress 20%\rdone");
	put_str("log-lines", "empty-lines", "\n\n\nx\n\n");
	put_str("log-lines", "crlf", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	char lng[700];
	memset(lng, 'z', sizeof lng);
	lng[300] = '\n';
	put("log-lines", "long-lines", lng, sizeof lng);
	put("log-lines", "binary", "\x00\x01\xff\n\x1b[31mred\x1b[0m\n", 17);
}

/* Tasks for the pool whose JSON log becomes mplog-line's seeds. */
static int task(mpg_task *t, const void *in, size_t len, void *userdata)
{
	(void)len;
	(void)userdata;
	int x = *(const int *)in;
	if (x == 1) {
		mplog_kv kv[] = {{"x", "1"}, {"note", "a \"quoted\" value\non two lines"}};
		mplog_info_kv(kv, 2, "task %d says hi", x);
		printf("captured stdout of task %d\n", x);
		fflush(stdout);
	}
	if (x == 2)
		mpg_raise(42, "refusing %d", x);
	if (x == 3)
		*(volatile int *)NULL = 0; /* a crash with its backtrace */
	*(int *)mpg_task_alloc_result(t, sizeof x) = x;
	return 0;
}

static void gen_json_lines(void)
{
	char path[] = "/tmp/fuzz-corpus-gen-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		die("mkstemp");
	close(fd);
	mpg_options *opts;
	mpg_pool *pool;
	mpg_results *res;
	mplog_sink *sink;
	if (mpg_options_new(&opts) < 0 || mpg_options_set_workers(opts, 1) < 0 ||
	    mpg_options_set_capture(opts, MPG_CAPTURE_STDOUT) < 0 || mpg_options_set_control(opts, 0) < 0 ||
	    mpg_pool_new(opts, &pool) < 0)
		die("pool");
	if (mplog_sink_new_file(path, MPLOG_FORMAT_JSON, 0, &sink) < 0 ||
	    mplog_aggregator_add_sink(mpg_pool_log(pool), sink) < 0)
		die("sink");
	int in[] = {0, 1, 2, 3}, out[4];
	if (mpg_map_array(pool, task, in, sizeof in[0], 4, out, sizeof out[0], NULL, &res) < 0)
		die("map");
	mpg_results_free(res);
	/* A child writing garbage on its log pipe: a protocol error record. */
	mplog_child_fds cf;
	if (mplog_aggregator_add_child(mpg_pool_log(pool), "rogue", 9, 0, &cf) < 0)
		die("child");
	if (write(cf.log_fd, "garbage\n", 8) != 8)
		die("write");
	mplog_child_fds_close(&cf);
	mpg_pool_close(pool);
	mpg_pool_join(pool);
	mpg_pool_free(pool);
	mpg_options_free(opts);

	FILE *f = fopen(path, "r");
	if (!f)
		die(path);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int i = 0;
	while ((n = getline(&line, &cap, f)) > 0) {
		char name[32];
		snprintf(name, sizeof name, "sink-line-%d", i++);
		put("mplog-line", name, line, (size_t)n - 1); /* without its '\n' */
	}
	free(line);
	fclose(f);
	unlink(path);
	/* Other producers of the same shape: ids as strings, a number level. */
	put_str("mplog-line", "other-producer",
		"{\"timestamp\":\"1732360680000000000\",\"severity_number\":17,\"body\":{\"k\":[1,2]},"
		"\"attributes\":{\"process.pid\":\"77\",\"mpkit.worker\":\"2\",\"mpg.kind\":\"signaled\","
		"\"mpg.worker\":2,\"mpg.signal\":\"SEGV\",\"mpg.service\":\"fetcher\",\"n\":null}}");
	put_str("mplog-line", "not-a-record", "2026-11-23 16:11:34.967496 INFO  [w0 pid 1] text");
}

static void gen_times(void)
{
	const char *t[][2] = {
		{"iso-z", "2026-11-23T10:00:00Z"},
		{"iso-frac-offset", "2026-11-23T10:00:00.123456789+01:00"},
		{"iso-comma-offset", "2026-11-23t10:00:00,5-0530"},
		{"space-minutes", "2026-11-23 10:00"},
		{"date", "2026-02-28"},
		{"leap-second", "2016-12-31T23:59:60Z"},
		{"epoch", "@1732360680"},
		{"seconds", "90s"},
		{"minutes", "10m"},
		{"hours", "2h"},
		{"days", "1d"},
		{"weeks", "1w"},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		put_str("mplog-time", t[i][0], t[i][1]);
}

/* ---- the worker protocol ------------------------------------------------- */

static void frame_to(struct bytes *b, uint8_t type, const void *body, size_t n, uint16_t nfds)
{
	struct mpk_frame_header h;
	mpk_frame_header_init(&h, type, (uint32_t)n, nfds);
	append(b, &h, sizeof h);
	append(b, body, n);
}

static void gen_worker_frames(void)
{
	struct bytes s = {0};
	struct mpg__hello_frame hello;
	mpg__hello_init(&hello, 1);
	append(&s, &hello, sizeof hello);
	struct mpk_buf m = {0};
	mpk_buf_put_u32(&m, 2);
	uint8_t id[20] = {0xde, 0xad};
	mpg__module_put(&m, 0x400000, 0x400000, 0x402000, "/usr/bin/prog", id, sizeof id);
	mpg__module_put(&m, 0x7f0000000000, 0x7f0000000000, 0x7f0000100000, "/lib/libc.so.6", NULL, 0);
	frame_to(&s, MSG_MODULES, m.data, m.len, 0);
	/* A generic result: inline, large, raised. */
	struct mpk_buf r = {0};
	struct mpg__result_head rh = {.job = 1, .first = 0, .count = 3, .elapsed_ns = 1000};
	mpk_buf_put(&r, &rh, sizeof rh);
	struct mpk_buf items = {0};
	memcpy(mpg__item_put_inline(&items, 8), "result!!", 8);
	mpg__item_put_shm(&items, 1 << 20);
	uint64_t ips[3] = {0x401000, 0x401100, 0x7f0000001000};
	mpg__item_put_error(&items, -22, "bad input", ips, 3);
	mpk_buf_put(&r, items.data, items.len);
	frame_to(&s, MSG_RESULT, r.data, r.len, 1);
	/* A fixed-size result with one raised error. */
	struct mpk_buf f = {0};
	struct mpg__result_head fh = {.job = 2, .first = 8, .count = 2, .mode = CHUNK_FIXED_OUT,
				      .out_size = 8};
	mpk_buf_put(&f, &fh, sizeof fh);
	uint64_t vals[2] = {42, 0};
	mpk_buf_put(&f, vals, sizeof vals);
	mpk_buf_put_u32(&f, 1);
	mpg__fixed_error_put(&f, 1, 7, "odd", ips, 1);
	frame_to(&s, MSG_RESULT, f.data, f.len, 0);
	/* Fixed results left in the worker's arena: where they are. */
	struct mpk_buf fa = {0};
	struct mpg__result_head fah = {.job = 2, .first = 10, .count = 4,
				       .mode = CHUNK_FIXED_OUT | RESULT_IN_ARENA, .out_size = 8192};
	mpk_buf_put(&fa, &fah, sizeof fah);
	uint64_t where = 65536;
	mpk_buf_put(&fa, &where, sizeof where);
	mpk_buf_put_u32(&fa, 0);
	frame_to(&s, MSG_RESULT, fa.data, fa.len, 0);
	struct mpg__stack_frame st = {.nips = 2, .ips = {0x401000, 0x401100}};
	append(&s, &st, mpg__stack_frame_seal(&st));
	struct mpg__crash_frame cr = {.c = {.signo = 11, .code = 1, .addr = 16, .nips = 3},
				      .ips = {0x401000, 0x401100, 0x401200}};
	append(&s, &cr, mpg__crash_frame_seal(&cr));
	put("worker-frames", "session", s.p, s.n);
	struct mpk_buf e = {0};
	mpg__service_end_encode(&e, 3, "service gave up", ips, 2);
	put("worker-frames", "service-end", e.data, e.len);
	/* Garbage, then a frame. */
	struct bytes g = {0};
	append(&g, "oops\n", 5);
	frame_to(&g, MSG_RESULT, f.data, f.len, 0);
	put("worker-frames", "garbage-then-result", g.p, g.n);
	/* A chunk body (what a worker decodes). */
	struct mpk_buf c = {0};
	struct mpg__chunk_head ch = {.job = 1, .fn = 0x401000, .first = 0, .mode = CHUNK_HAS_CTX};
	mpg__chunk_begin(&c, &ch, "context", 7);
	mpg__input_put_inline(&c, "abc", 3);
	mpg__input_put_shm(&c, 0, 1 << 20);
	mpg__chunk_finish(&c, 2, 0, 1);
	put("worker-frames", "chunk-body", c.data + sizeof(struct mpk_frame_header),
	    c.len - sizeof(struct mpk_frame_header));
	mpk_buf_free(&m);
	mpk_buf_free(&r);
	mpk_buf_free(&items);
	mpk_buf_free(&f);
	mpk_buf_free(&fa);
	mpk_buf_free(&e);
	mpk_buf_free(&c);
	free(s.p);
	free(g.p);
}

/* Arenas as a worker leaves them: items committed, fixed results. */
static void gen_arena(void)
{
	struct mpg__arena a;
	if (mpg__arena_open(&a) < 0)
		die("memfd");
	struct mpk_buf items = {0};
	memcpy(mpg__item_put_inline(&items, 5), "first", 5);
	mpg__item_put_error(&items, 1, "second failed", NULL, 0);
	memcpy(mpg__item_put_inline(&items, 5), "third", 5);
	memcpy(mpg__arena_data(&a), items.data, items.len);
	mpg__arena_reset(&a, 3, 100, 0, 0, 0);
	mpg__arena_commit(&a, 3, items.len);
	put("arena", "items", a.base, MPG_ARENA_DATA + items.len);
	uint64_t v[4] = {1, 2, 3, 4};
	memcpy(mpg__arena_data(&a), v, sizeof v);
	mpg__arena_reset(&a, 4, 8, CHUNK_FIXED_OUT, 8, 8);
	mpg__arena_commit(&a, 3, 24);
	put("arena", "fixed", a.base, MPG_ARENA_DATA + sizeof v);
	mpk_buf_free(&items);
}

static void gen_fork_server(void)
{
	const struct mpg__fsmsg msgs[] = {
		{.type = FS_SPAWNED, .slot = 1, .pid = 4242},
		{.type = FS_EXITED, .slot = 0, .pid = 4243, .value = 11},
		{.type = FS_SPAWN, .slot = 2, .value = 7},
	};
	for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
		uint8_t b[1 + sizeof msgs[i]] = {0};
		memcpy(b + 1, &msgs[i], sizeof msgs[i]);
		char name[16];
		snprintf(name, sizeof name, "msg-%zu", i);
		put("fork-server", name, b, sizeof b);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz-corpus-gen DIR\n");
		return 2;
	}
	top = argv[1];
	gen_frames();
	gen_small_fragments();
	gen_ring();
	gen_lines();
	gen_times();
	gen_json_lines();
	gen_worker_frames();
	gen_arena();
	gen_fork_server();
	return 0;
}
