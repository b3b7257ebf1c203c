/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the messages between the ranks of a cluster
 * (libmpguard-mpi/src/cluster-wire.c): a chunk as an agent decodes it, a
 * chunk's answer as rank 0 does, of both forms (fixed sizes, and inputs
 * and results of any length, MPG__CL_BUFS). Besides the sanitizers' findings, it
 * aborts when a decoded message breaks the decoder's promises (pointers
 * inside the input, strings terminated, error tasks inside the chunk), or
 * does not encode back to the same bytes.
 *
 * Run: meson test -C build-fuzz fuzz-cluster-wire (README, Fuzzing).
 */
#include "cluster-int.h"
#include "fuzz-check.h"

#include <stdlib.h>
#include <string.h>

static void chunk(const uint8_t *data, size_t size)
{
	struct mpg__cl_chunk c;
	if (mpg__cl_chunk_decode(data, size, &c) < 0)
		return;
	FUZZ_CHECK(strlen(c.fn.module) < MPG__CL_MAX_MODULE);
	FUZZ_CHECK(c.fn.build_id_len <= MPG__CL_MAX_BUILD_ID);
	FUZZ_CHECK(c.out_size <= MPG__CL_MAX_OUT && c.ctx_len <= MPG__CL_MAX_CONTEXT);
	FUZZ_CHECK(c.in >= data && c.in + c.in_bytes == data + size);
	if (c.flags & MPG__CL_BUFS) {
		/* Each input inside the message, one after the other. */
		uint64_t off = 0;
		for (uint64_t i = 0; i < c.count; i++) {
			mpg_buf b = mpg__cl_chunk_input(&c, i, &off);
			FUZZ_CHECK((const uint8_t *)b.data >= c.in && off <= c.in_bytes);
		}
		FUZZ_CHECK(off == c.in_bytes);
	} else {
		FUZZ_CHECK(c.in_bytes == c.count * c.in_size);
	}
	uint8_t *buf = NULL;
	size_t len = 0;
	FUZZ_CHECK(mpg__cl_chunk_encode(&c, &buf, &len) == 0);
	FUZZ_CHECK(len == size && memcmp(buf, data, size) == 0);
	free(buf);
}

static void result(const uint8_t *data, size_t size)
{
	struct mpg__cl_result r;
	if (mpg__cl_result_decode(data, size, &r) < 0)
		return;
	FUZZ_CHECK(r.status <= 0 && (!r.status || !r.nerrors) && r.nerrors <= r.count);
	FUZZ_CHECK(strlen(r.host) < MPG__CL_MAX_HOST);
	FUZZ_CHECK(r.errors >= data && r.errors + r.errors_len == data + size);
	FUZZ_CHECK(r.out + r.out_bytes <= r.errors);
	if (!r.status && (r.flags & MPG__CL_BUFS)) {
		uint64_t off = 0;
		for (uint64_t i = 0; i < r.count; i++) {
			mpg_buf b = mpg__cl_result_output(&r, i, &off);
			FUZZ_CHECK((const uint8_t *)b.data >= r.out && off <= r.out_bytes);
		}
		FUZZ_CHECK(off == r.out_bytes);
	}
	struct mpg__cl_wire_error *errs = calloc(r.nerrors + 1, sizeof *errs);
	FUZZ_CHECK(errs);
	size_t off = 0;
	for (uint32_t i = 0; i < r.nerrors; i++) {
		mpg__cl_result_error(&r, &off, &errs[i]);
		FUZZ_CHECK(off <= r.errors_len);
		FUZZ_CHECK(errs[i].task >= r.first && errs[i].task - r.first < r.count);
		FUZZ_CHECK(errs[i].kind >= MPG_ERR_RAISED && errs[i].kind <= MPG_ERR_CANCELLED);
		FUZZ_CHECK(strlen(errs[i].message) < size && strlen(errs[i].backtrace) < size);
	}
	FUZZ_CHECK(off == r.errors_len);
	uint8_t *buf = NULL;
	size_t len = 0;
	FUZZ_CHECK(mpg__cl_result_encode(&r, errs, &buf, &len) == 0);
	FUZZ_CHECK(len == size && memcmp(buf, data, size) == 0);
	free(buf);
	free(errs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	chunk(data, size);
	result(data, size);
	return 0;
}
