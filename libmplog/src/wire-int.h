/* SPDX-License-Identifier: MIT */
/* Framed records: the one codec every mpkit channel speaks (tasks, results,
 * errors, log records). Internal to mpkit; linked into both libraries with
 * hidden visibility, never installed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MPK_FRAME_MAGIC   0x464b504du /* "MPKF" little-endian */
#define MPK_FRAME_VERSION 1u
/* Frames stay small: large payloads travel in memfds referenced by a frame. */
#define MPK_FRAME_MAX_BODY (64u << 20)
#define MPK_FRAME_MAX_FDS  64u

struct mpk_frame_header {
	uint32_t magic;
	uint8_t version;
	uint8_t type;
	uint16_t nfds;   /* fds sent with this frame (SCM_RIGHTS), in order */
	uint32_t length; /* body bytes following the header */
	uint32_t reserved;
};
_Static_assert(sizeof(struct mpk_frame_header) == 16, "frame header is 16 bytes");

void mpk_frame_header_init(struct mpk_frame_header *h, uint8_t type,
			   uint32_t length, uint16_t nfds);
/* 0, or -EBADMSG (bad magic), -EPROTONOSUPPORT (version), -EMSGSIZE (length
 * over max_body), -EPROTO (too many fds, reserved bits set). */
int mpk_frame_header_check(const struct mpk_frame_header *h, uint32_t max_body);

/* Growable byte buffer used to build frames. On allocation failure it
 * remembers the error (oom) and further puts are no-ops. */
struct mpk_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	bool oom;
	/* Memory not from malloc (a shared mapping): makes data hold at least
	 * cap bytes, 0 or a negative errno; mpk_buf_free() leaves it alone. */
	int (*resize)(struct mpk_buf *b, size_t cap);
};

int mpk_buf_reserve(struct mpk_buf *b, size_t extra);
void *mpk_buf_grow(struct mpk_buf *b, size_t n); /* append n bytes, return them */
void mpk_buf_put(struct mpk_buf *b, const void *p, size_t n);
/* printf() at the end of the buffer (sets oom on failure). */
void mpk_buf_printf(struct mpk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mpk_buf_put_u8(struct mpk_buf *b, uint8_t v);
void mpk_buf_put_u32(struct mpk_buf *b, uint32_t v);
void mpk_buf_put_u64(struct mpk_buf *b, uint64_t v);
void mpk_buf_consume(struct mpk_buf *b, size_t n); /* drop n bytes from the front */
/* Zero-pad so that len - from is a multiple of align (a power of two). */
void mpk_buf_align(struct mpk_buf *b, size_t from, size_t align);
void mpk_buf_free(struct mpk_buf *b);

/* Bounds-checked reader over a received body; any overrun sets err and
 * yields zeroes, so decoders check err once at the end. */
struct mpk_reader {
	const uint8_t *start;
	const uint8_t *p;
	size_t left;
	bool err;
};

void mpk_reader_init(struct mpk_reader *r, const void *p, size_t n);
uint8_t mpk_get_u8(struct mpk_reader *r);
uint32_t mpk_get_u32(struct mpk_reader *r);
uint64_t mpk_get_u64(struct mpk_reader *r);
const void *mpk_get_bytes(struct mpk_reader *r, size_t n);
/* Skip to the next multiple of align (a power of two) from `start`. */
void mpk_get_align(struct mpk_reader *r, size_t align);
/* Restart alignment counting here (a region whose start is aligned). */
void mpk_reader_mark(struct mpk_reader *r);
