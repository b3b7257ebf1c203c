/* SPDX-License-Identifier: MIT */
/* Fuzz target: a child's captured stdout (or stderr) as the aggregator
 * cuts it into records (mplog__channel_parse on an MPLOG_STREAM_STDOUT
 * channel). Invariants: every record is one line without its '\n' and at
 * most MPLOG_LINE_MAX bytes (lowered in the fuzz build so that it is
 * reached); the records, the newlines and the output marks taken out
 * (mark-int.h) add up to every byte written; the same bytes in other read
 * sizes give the same records. */
#include "channel-fuzz.h"
#include "mark-int.h"

static size_t line_bytes;

static void check_line(const mplog_record *r)
{
	FUZZ_CHECK(r->stream == MPLOG_STREAM_STDOUT && r->level == MPLOG_INFO);
	FUZZ_CHECK(r->msg_len <= MPLOG_LINE_MAX);
	FUZZ_CHECK(!memchr(r->msg, '\n', r->msg_len));
	line_bytes += r->msg_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_on_record = check_line;
	line_bytes = 0;
	/* A line waits for a mark cut by a read: it may hold that much more. */
	fuzz_channel(MPLOG_STREAM_STDOUT, data, size, MPLOG_LINE_MAX + MPLOG_MARK_MAX);
	size_t newlines = 0, marks = 0;
	for (size_t i = 0; i < size;) {
		newlines += data[i] == '\n';
		const uint8_t *nl = memchr(data + i, '\n', size - i);
		size_t n = (nl ? (size_t)(nl - data) : size) - i, mlen;
		int64_t task;
		if (data[i] == '\033' && mplog__mark_at(data + i, n, &mlen, &task) == MARK_FOUND) {
			marks += mlen;
			i += mlen;
		} else {
			i++;
		}
	}
	/* Nothing lost, nothing added. */
	FUZZ_CHECK(line_bytes + newlines + marks == size);
	return 0;
}
