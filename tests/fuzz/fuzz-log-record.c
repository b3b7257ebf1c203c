/* SPDX-License-Identifier: MIT */
/* Fuzz target: libmplog's record and fragment bodies (mplog__rec_decode,
 * mplog__frag_decode), what every reader of an encoded record runs first.
 * Invariants: whatever is decoded lies inside the bytes given; a decoded
 * record's key-values iterate exactly nkv times; decode -> encode gives
 * the same bytes back (when no key or value holds a NUL, which the
 * encoder's C strings cannot carry) and decodes to the same record. */
#include "fuzz-check.h"
#include "record-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static bool inside(const void *p, size_t n, const uint8_t *data, size_t size)
{
	return n == 0 || ((const uint8_t *)p >= data && (const uint8_t *)p + n <= data + size);
}

static void check_record(const uint8_t *data, size_t size, const struct mplog__rec *r)
{
	FUZZ_CHECK(inside(r->file.p, r->file.n, data, size));
	FUZZ_CHECK(inside(r->func.p, r->func.n, data, size));
	FUZZ_CHECK(inside(r->msg.p, r->msg.n, data, size));
	FUZZ_CHECK(inside(r->kvs, r->kvs_len, data, size));
	FUZZ_CHECK(r->level <= MPLOG_FATAL && r->stream <= MPLOG_STREAM_STDERR);

	mplog_kv *kv = calloc(r->nkv ? r->nkv : 1, sizeof *kv);
	FUZZ_CHECK(kv);
	size_t it = 0, n = 0;
	bool nul = false;
	struct mplog__str k, v;
	while (mplog__rec_next_kv(r, &it, &k, &v)) {
		FUZZ_CHECK(n < r->nkv);
		FUZZ_CHECK(inside(k.p, k.n, data, size) && inside(v.p, v.n, data, size));
		nul |= (k.n && memchr(k.p, 0, k.n)) || (v.n && memchr(v.p, 0, v.n));
		char *ks = strndup(k.n ? k.p : "", k.n), *vs = strndup(v.n ? v.p : "", v.n);
		FUZZ_CHECK(ks && vs);
		kv[n++] = (mplog_kv){ks, vs};
	}
	FUZZ_CHECK(n == r->nkv && it == r->kvs_len);

	struct mplog__rec_in in = {
		.ts = r->ts, .level = r->level, .stream = r->stream, .pid = r->pid,
		.worker = r->worker, .task = r->task, .line = r->line,
		.file = r->file, .func = r->func, .msg = r->msg, .kv = kv, .nkv = n};
	size_t len = mplog__rec_size(&in);
	FUZZ_CHECK(nul ? len < size : len == size);
	uint8_t *enc = malloc(len);
	FUZZ_CHECK(enc);
	mplog__rec_encode(&in, enc);
	struct mplog__rec again;
	FUZZ_CHECK(mplog__rec_decode(enc, len, &again) == 0);
	FUZZ_CHECK(again.ts == r->ts && again.level == r->level && again.stream == r->stream &&
	      again.pid == r->pid && again.worker == r->worker && again.task == r->task &&
	      again.line == r->line && again.nkv == r->nkv && again.msg.n == r->msg.n);
	if (!nul)
		FUZZ_CHECK(memcmp(enc, data, size) == 0);
	free(enc);
	for (size_t i = 0; i < n; i++) {
		free((char *)kv[i].key);
		free((char *)kv[i].value);
	}
	free(kv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mplog__rec r;
	if (mplog__rec_decode(data, size, &r) == 0)
		check_record(data, size, &r);
	struct mplog__frag f;
	if (mplog__frag_decode(data, size, &f) == 0) {
		FUZZ_CHECK(f.data == data + MPLOG_FRAG_HDR && f.len == size - MPLOG_FRAG_HDR);
		FUZZ_CHECK(f.count >= 2 && f.index < f.count);
		FUZZ_CHECK(f.total >= MPLOG_REC_FIXED && f.total <= MPLOG_RECORD_MAX);
	}
	return 0;
}
