/* SPDX-License-Identifier: MIT */
/* libFuzzer target: an agent's LOG message as rank 0 reads it
 * (libmpguard-mpi/src/cluster-log-wire.c), and each record in it as
 * rank 0's aggregator takes it (mplog_aggregator_inject(): libmplog's
 * decoder of an encoded record, then every sink format with the host and
 * rank it carries). The whole input is also given to
 * mplog_aggregator_inject() as one record. Besides the sanitizers'
 * findings, it aborts when a decoded message breaks the decoder's
 * promises (host terminated and bounded, records inside the input) or
 * does not encode back to the same bytes, and when a delivered record
 * cannot be encoded again or formatted.
 *
 * Run: meson test -C build-fuzz fuzz-cluster-log (README, Fuzzing).
 */
#include "cluster-int.h"
#include "cluster-log-int.h"
#include "fuzz-check.h"
#include "mplog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void delivered(const mplog_record *r, void *userdata)
{
	(void)userdata;
	char buf[512];
	FUZZ_CHECK(mplog_record_format(r, MPLOG_FORMAT_TEXT, 0, buf, sizeof buf) > 0);
	FUZZ_CHECK(mplog_record_format(r, MPLOG_FORMAT_JSON, 0, buf, sizeof buf) > 0);
	ssize_t n = mplog_record_encode(r, 7, NULL, 0);
	FUZZ_CHECK(n > 0);
	uint8_t *again = malloc((size_t)n + 1);
	FUZZ_CHECK(again && mplog_record_encode(r, 7, again, (size_t)n + 1) == n);
	free(again);
}

static mplog_aggregator *rank0(void)
{
	static mplog_aggregator *a;
	if (a)
		return a;
	mplog_sink *s;
	FUZZ_CHECK(mplog_aggregator_new(&a) == 0);
	FUZZ_CHECK(mplog_sink_new_callback(delivered, NULL, &s) == 0);
	FUZZ_CHECK(mplog_aggregator_add_sink(a, s) == 0);
	FUZZ_CHECK(mplog_aggregator_set_rank(a, 0) == 0);
	return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mplog_aggregator *a = rank0();
	int r = mplog_aggregator_inject(a, data, size, "fuzzhost", 42, 1);
	FUZZ_CHECK(r == 0 || r == -EBADMSG);

	struct mpg__cl_log_batch b;
	if (mpg__cl_log_decode(data, size, &b) < 0)
		return 0;
	size_t hl = strlen(b.host);
	FUZZ_CHECK(hl < MPG__CL_MAX_HOST && b.rank >= 1 && b.pid >= 0);
	FUZZ_CHECK(b.recs + b.recs_len == data + size);
	/* Encoded again: the same bytes. */
	size_t head = mpg__cl_log_header_size(b.host);
	FUZZ_CHECK(head + b.recs_len == size);
	uint8_t *again = malloc(size);
	FUZZ_CHECK(again);
	mpg__cl_log_header_encode(&b, again);
	size_t off = 0, at = head;
	const uint8_t *rec;
	uint32_t n;
	uint32_t count = 0;
	while (mpg__cl_log_next(&b, &off, &rec, &n)) {
		FUZZ_CHECK(rec >= data && rec + n <= data + size);
		mpg__cl_log_put_record(again + at, rec, n);
		at += 4 + (size_t)n;
		count++;
		r = mplog_aggregator_inject(a, rec, n, b.host, b.pid, b.rank);
		FUZZ_CHECK(r == 0 || r == -EBADMSG);
	}
	FUZZ_CHECK(count == b.nrec && at == size && memcmp(again, data, size) == 0);
	free(again);
	return 0;
}
