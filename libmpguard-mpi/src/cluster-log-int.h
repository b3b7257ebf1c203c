/* SPDX-License-Identifier: MIT */
/* libmpguard-mpi internals: the agents' log records on their way to rank
 * 0's aggregator (cluster-log.c), and the LOG message that carries them
 * (cluster-log-wire.c, pure: no MPI, for the fuzz target too). */
#pragma once

#include "mpguard.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MPI tag of a LOG message (agent -> rank 0), beside cluster-int.h's. */
enum { MPG__TAG_LOG = 4 };

/* LOG flag: the agent's last; it sends nothing more. */
#define MPG__CL_LOG_LAST 1u

/* A batch of records as mplog_record_encode() made them, from one agent
 * rank: magic, rank, pid (the agent's, whose aggregator collected them),
 * flags, records dropped on the agent since its last batch, host length
 * (with its NUL), record count, the host, then per record its length and
 * bytes. Host byte order, like every message between the ranks. */
struct mpg__cl_log_batch {
	int32_t rank, pid;
	uint32_t flags, nrec;
	uint64_t dropped;
	const char *host;       /* NUL-terminated, into the message */
	const uint8_t *recs;    /* nrec times u32 length + bytes */
	size_t recs_len;
};
/* The header (everything but the records) into @buf (at least
 * mpg__cl_log_header_size() bytes); the records follow it as
 * mpg__cl_log_put_record() wrote them. */
size_t mpg__cl_log_header_size(const char *host);
void mpg__cl_log_header_encode(const struct mpg__cl_log_batch *b, uint8_t *buf);
/* One record's entry: 4 + @len bytes at @dst. */
void mpg__cl_log_put_record(uint8_t *dst, const void *rec, uint32_t len);
/* Checks the whole message, every record's length included: 0 or -EBADMSG. */
int mpg__cl_log_decode(const uint8_t *buf, size_t len, struct mpg__cl_log_batch *b);
/* The next record of a decoded batch, from *@off (start at 0): its bytes
 * and length; false after the last. */
bool mpg__cl_log_next(const struct mpg__cl_log_batch *b, size_t *off, const uint8_t **rec,
		      uint32_t *len);

/* ---- the hooks (cluster-log.c) ------------------------------------------ */

typedef struct mpg_cluster mpg_cluster;

/* An agent, once MPI runs: its pool's records go to rank 0 from now on
 * (a callback sink; the pool's own stderr sink taken out). 0, or an
 * error of libmplog (then nothing is forwarded, the LAST mark still is). */
int mpg__cl_log_agent_start(mpg_pool *pool, int rank, const char *host);
/* A chunk's map returned: every record it made is delivered and sent
 * (before its answer). MPI thread. 0 or -EIO, -ENOMEM. */
int mpg__cl_log_chunk_end(void);
/* The agent's wait loop calls it (about every millisecond): sends what
 * is queued. MPI thread. 0 or -EIO, -ENOMEM. */
int mpg__cl_log_pump(void);
/* The agent's end: frees @pool (its last records delivered), then, when
 * @send (it stops cleanly), sends what is left with the LAST mark. */
void mpg__cl_log_agent_end(mpg_pool *pool, bool send);

/* Rank 0: its own records stamped rank 0. */
void mpg__cl_log_rank0(mpg_pool *pool);
/* Rank 0's wait loop got a LOG message from @source: its records into
 * rank 0's aggregator. 1 when it was the agent's last, 0, or -EPROTO. */
int mpg__cl_log_take(mpg_cluster *cl, const uint8_t *msg, size_t len, int source);
/* After STOP, before MPI_Finalize: every live agent's LOG messages until
 * its last. 0 or the first error (-EIO, -ENOMEM, -EPROTO). */
int mpg__cl_log_drain(mpg_cluster *cl);
