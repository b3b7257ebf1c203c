/* SPDX-License-Identifier: MIT */
/* libmpguard-mpi internals: the messages between rank 0 and the agents,
 * and how a task function is named across processes. */
#pragma once

#include "mpguard.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MPI tags. ABORT (rank 0 -> agents, empty): MPG_ABORT, stop the chunks
 * running now and answer every chunk -ECANCELED from then on. HEARTBEAT
 * (agent -> rank 0, empty): alive, while it holds chunks. */
enum {
	MPG__TAG_CHUNK = 1,
	MPG__TAG_RESULT = 2,
	MPG__TAG_STOP = 3,
	MPG__TAG_ABORT = 4,
	MPG__TAG_HEARTBEAT = 5,
};
#define MPG__CL_DEADLINE_MS 10000 /* MPKIT_CLUSTER_DEADLINE_MS's default under recovery */

#define MPG__CL_MAX_MODULE 4096u /* module path bytes */
#define MPG__CL_MAX_BUILD_ID 64u
#define MPG__CL_MAX_HOST 256u
#define MPG__CL_MAX_OUT (8u << 20)
#define MPG__CL_MAX_CONTEXT (16u << 20) /* as mpg_options_set_context() */
#define MPG__CL_MAX_RETRIES 1000u

/* A task function as another rank can find it: the module it lies in (the
 * dl_iterate_phdr() name, "" for the program), its build ID, and its
 * offset from the module's load address. */
struct mpg__fnref {
	char module[MPG__CL_MAX_MODULE];
	uint8_t build_id[MPG__CL_MAX_BUILD_ID];
	uint32_t build_id_len;
	uint64_t offset;
};
/* 0, or -ENOENT (@fn in no module). */
int mpg__fnref_of(mpg_task_fn fn, struct mpg__fnref *ref);
/* The function in this process: 0, -ENOENT (no such module, or the offset
 * is in none of its executable segments), -ESTALE (another build). */
int mpg__fnref_resolve(const struct mpg__fnref *ref, mpg_task_fn *fn);

/* Flags of a chunk and of its answer. */
enum {
	/* mpg_cluster_map(): inputs and results of any length, each with its
	 * own (u64) length before the bytes; else fixed sizes (map_array). */
	MPG__CL_BUFS = 1u << 0,
};
#define MPG__CL_FLAGS MPG__CL_BUFS

/* A chunk (rank 0 -> agent): tasks [first, first + count) of a call,
 * first also the index in the call of the chunk's task 0 (the agent's
 * mpg_task_index() and error tasks count from it). */
struct mpg__cl_chunk {
	struct mpg__fnref fn;
	uint32_t flags, retries, timeout_ms;
	uint64_t first, count, in_size, out_size; /* sizes 0 with MPG__CL_BUFS */
	const uint8_t *ctx; /* the call's context bytes, into the message */
	uint32_t ctx_len;
	/* MPG__CL_BUFS: count u64 lengths (into the message, unaligned), or
	 * to encode, bufs (count of them) instead when not NULL. */
	const uint8_t *lens;
	const mpg_buf *bufs;
	const uint8_t *in;  /* in_bytes bytes, into the message */
	uint64_t in_bytes;
};
/* Encodes into a malloc()ed buffer: 0 or -ENOMEM, -EMSGSIZE, -EINVAL. */
int mpg__cl_chunk_encode(const struct mpg__cl_chunk *c, uint8_t **buf, size_t *len);
/* 0 or -EBADMSG. */
int mpg__cl_chunk_decode(const uint8_t *buf, size_t len, struct mpg__cl_chunk *c);
/* Input @i of a decoded chunk (checked: inside the message). */
mpg_buf mpg__cl_chunk_input(const struct mpg__cl_chunk *c, uint64_t i, uint64_t *off);

/* One failed task in a result message. */
struct mpg__cl_wire_error {
	uint32_t kind;
	int32_t worker, pid, code, sig;
	uint32_t attempts, has_fault;
	int32_t si_code;
	uint64_t addr, task; /* task: index in the whole call */
	const char *message, *backtrace; /* NUL-terminated, into the message */
};

/* A chunk's outcome (agent -> rank 0). status: 0, or a negative errno that
 * kept the chunk from running at all (then no outputs, no errors). */
struct mpg__cl_result {
	int32_t rank, status;
	uint32_t flags;
	uint64_t first, count, out_size;
	const char *host;
	/* When status is 0: count * out_size bytes; with MPG__CL_BUFS count
	 * u64 lengths (lens; to encode, bufs instead when not NULL; a failed
	 * task's is 0) then out_bytes bytes. */
	const uint8_t *lens;
	const mpg_buf *bufs;
	const uint8_t *out;
	uint64_t out_bytes;
	uint32_t nerrors;
	const uint8_t *errors; /* nerrors records, read with mpg__cl_result_error() */
	size_t errors_len;
};
/* Encodes the header, outputs and @nerrors errors. */
int mpg__cl_result_encode(const struct mpg__cl_result *r, const struct mpg__cl_wire_error *errs,
		       uint8_t **buf, size_t *len);
/* Checks the whole message, errors included: 0 or -EBADMSG. */
int mpg__cl_result_decode(const uint8_t *buf, size_t len, struct mpg__cl_result *r);
/* The next error of a decoded result, from *@off (start at 0). */
void mpg__cl_result_error(const struct mpg__cl_result *r, size_t *off, struct mpg__cl_wire_error *e);
/* Output @i of a decoded MPG__CL_BUFS result, from *@off (start at 0). */
mpg_buf mpg__cl_result_output(const struct mpg__cl_result *r, uint64_t i, uint64_t *off);
/* The u64 at @p, unaligned. */
static inline uint64_t mpg__cl_get64(const uint8_t *p)
{
	uint64_t v;
	__builtin_memcpy(&v, p, 8);
	return v;
}
