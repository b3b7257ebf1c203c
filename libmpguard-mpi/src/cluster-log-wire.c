/* SPDX-License-Identifier: MIT */
/* The LOG message: an agent's log records for rank 0's aggregator (see
 * cluster-log-int.h). Fields in the host's byte order, read through
 * memcpy; the decoder reads nothing outside the message and accepts only
 * what the encoder makes. The records themselves are libmplog's, checked
 * by mplog_aggregator_inject() as it delivers them. */
#include "cluster-log-int.h"
#include "cluster-int.h"

#include <errno.h>
#include <string.h>

#define LOG_MAGIC 0x4c504d4bu /* "KMPL" */
#define FIXED 32u

size_t mpg__cl_log_header_size(const char *host)
{
	return FIXED + strnlen(host, MPG__CL_MAX_HOST - 1) + 1;
}

void mpg__cl_log_header_encode(const struct mpg__cl_log_batch *b, uint8_t *buf)
{
	uint32_t hl = (uint32_t)strnlen(b->host, MPG__CL_MAX_HOST - 1);
	uint32_t head[6] = {LOG_MAGIC, (uint32_t)b->rank, (uint32_t)b->pid, b->flags, hl + 1,
			    b->nrec};
	memcpy(buf, head, sizeof head);
	memcpy(buf + 24, &b->dropped, 8);
	memcpy(buf + FIXED, b->host, hl);
	buf[FIXED + hl] = 0;
}

void mpg__cl_log_put_record(uint8_t *dst, const void *rec, uint32_t len)
{
	memcpy(dst, &len, 4);
	memcpy(dst + 4, rec, len);
}

int mpg__cl_log_decode(const uint8_t *buf, size_t len, struct mpg__cl_log_batch *b)
{
	if (len < FIXED)
		return -EBADMSG;
	uint32_t head[6];
	memcpy(head, buf, sizeof head);
	struct mpg__cl_log_batch x = {
		.rank = (int32_t)head[1], .pid = (int32_t)head[2], .flags = head[3], .nrec = head[5]};
	memcpy(&x.dropped, buf + 24, 8);
	uint32_t hl = head[4];
	if (head[0] != LOG_MAGIC || x.rank < 1 || x.pid < 0 || (x.flags & ~MPG__CL_LOG_LAST) ||
	    hl < 1 || hl > MPG__CL_MAX_HOST || hl > len - FIXED ||
	    memchr(buf + FIXED, 0, hl) != buf + FIXED + hl - 1)
		return -EBADMSG;
	x.host = (const char *)buf + FIXED;
	x.recs = buf + FIXED + hl;
	x.recs_len = len - FIXED - hl;
	size_t off = 0;
	for (uint32_t i = 0; i < x.nrec; i++) {
		uint32_t n;
		if (x.recs_len - off < 4)
			return -EBADMSG;
		memcpy(&n, x.recs + off, 4);
		if (n > x.recs_len - off - 4)
			return -EBADMSG;
		off += 4 + (size_t)n;
	}
	if (off != x.recs_len)
		return -EBADMSG;
	*b = x;
	return 0;
}

bool mpg__cl_log_next(const struct mpg__cl_log_batch *b, size_t *off, const uint8_t **rec,
		      uint32_t *len)
{
	if (*off >= b->recs_len)
		return false;
	memcpy(len, b->recs + *off, 4); /* checked by mpg__cl_log_decode() */
	*rec = b->recs + *off + 4;
	*off += 4 + (size_t)*len;
	return true;
}
