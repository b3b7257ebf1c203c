/* SPDX-License-Identifier: MIT */
/* Log record codec: the body of MPLOG_FRAME_RECORD and MPLOG_FRAME_FRAGMENT
 * frames on a log channel, and the decoded view the aggregator and sinks
 * work on. Internal to libmplog, never installed. */
#pragma once

#include "mplog.h"
#include "wire-int.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Frame types on a log channel (other channels use types below 0x40). */
#define MPLOG_FRAME_RECORD   0x40u
#define MPLOG_FRAME_FRAGMENT 0x41u
/* Empty: a writer woke the reader of its ring (ring-int.h). */
#define MPLOG_FRAME_WAKE     0x42u

/* Every frame on a log channel fits one atomic pipe write. */
#define MPLOG_FRAME_MAX   ((size_t)PIPE_BUF)
#define MPLOG_BODY_MAX    (MPLOG_FRAME_MAX - sizeof(struct mpk_frame_header))

/* Record body, host byte order (both ends run on one machine):
 *   u64 timestamp_ns
 *   u8 level, u8 stream, u8 flags (0), u8 reserved (0)
 *   i32 pid, i32 worker, i64 task, u32 line, u32 nkv
 *   u32 file_len, u32 func_len, u32 msg_len
 *   file, func, msg bytes (no NUL)
 *   nkv times: u32 key_len, u32 value_len, key bytes, value bytes */
#define MPLOG_REC_FIXED 48u
#define MPLOG_KV_MAX    65535u

/* Fragment body: u32 pid, u32 seq, u32 index, u32 count, u32 total,
 * then a piece of the encoded record body. */
#define MPLOG_FRAG_HDR   20u
#define MPLOG_FRAG_CHUNK (MPLOG_BODY_MAX - MPLOG_FRAG_HDR)

struct mplog__str {
	const char *p;
	uint32_t n;
};

/* What goes into a record (encoder input). */
struct mplog__rec_in {
	uint64_t ts;
	uint8_t level;
	uint8_t stream;
	int32_t pid;
	int32_t worker;
	int64_t task;
	uint32_t line;
	struct mplog__str file, func, msg;
	const mplog_kv *kv;
	size_t nkv;
};

/* Bytes of the encoded body of in (key/value lengths are strlen()). */
size_t mplog__rec_size(const struct mplog__rec_in *in);
/* Encode in into dst (at least mplog__rec_size(in) bytes). */
void mplog__rec_encode(const struct mplog__rec_in *in, uint8_t *dst);

/* A decoded record; strings point into the body that was decoded. */
struct mplog__rec {
	uint64_t ts;
	uint8_t level;
	uint8_t stream;
	int32_t pid;
	int32_t worker;
	int64_t task;
	uint32_t line;
	uint32_t nkv;
	struct mplog__str file, func, msg;
	const uint8_t *kvs; /* nkv encoded key-values, already validated */
	size_t kvs_len;
};

/* 0, or -EBADMSG when body is not exactly one valid record. */
int mplog__rec_decode(const void *body, size_t len, struct mplog__rec *out);
/* Iterate key-values of a decoded record: *it starts at 0. Returns false
 * at the end. */
bool mplog__rec_next_kv(const struct mplog__rec *r, size_t *it, struct mplog__str *key,
			struct mplog__str *value);

struct mplog__frag {
	uint32_t pid, seq, index, count, total;
	const uint8_t *data;
	uint32_t len;
};
/* 0, or -EBADMSG (short, inconsistent header). */
int mplog__frag_decode(const void *body, size_t len, struct mplog__frag *out);
