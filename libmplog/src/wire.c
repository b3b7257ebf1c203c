/* SPDX-License-Identifier: MIT */
/* Frame header validation and the byte buffer/reader used by every codec. */
#include "wire-int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mpk_frame_header_init(struct mpk_frame_header *h, uint8_t type,
			   uint32_t length, uint16_t nfds)
{
	*h = (struct mpk_frame_header){
		.magic = MPK_FRAME_MAGIC,
		.version = MPK_FRAME_VERSION,
		.type = type,
		.nfds = nfds,
		.length = length,
	};
}

int mpk_frame_header_check(const struct mpk_frame_header *h, uint32_t max_body)
{
	if (h->magic != MPK_FRAME_MAGIC)
		return -EBADMSG;
	if (h->version != MPK_FRAME_VERSION)
		return -EPROTONOSUPPORT;
	if (h->length > max_body)
		return -EMSGSIZE;
	if (h->nfds > MPK_FRAME_MAX_FDS || h->reserved != 0)
		return -EPROTO;
	return 0;
}

int mpk_buf_reserve(struct mpk_buf *b, size_t extra)
{
	if (b->oom)
		return -ENOMEM;
	if (extra <= b->cap - b->len)
		return 0;
	if (extra > SIZE_MAX / 2 - b->len) {
		b->oom = true;
		return -ENOMEM;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < extra)
		cap *= 2;
	if (b->resize) {
		if (b->resize(b, cap) < 0) {
			b->oom = true;
			return -ENOMEM;
		}
		return 0;
	}
	uint8_t *d = realloc(b->data, cap);
	if (!d) {
		b->oom = true;
		return -ENOMEM;
	}
	b->data = d;
	b->cap = cap;
	return 0;
}

void *mpk_buf_grow(struct mpk_buf *b, size_t n)
{
	if (mpk_buf_reserve(b, n) < 0)
		return NULL;
	void *p = b->data + b->len;
	b->len += n;
	return p;
}

void mpk_buf_put(struct mpk_buf *b, const void *p, size_t n)
{
	void *d = mpk_buf_grow(b, n);
	if (d && n)
		memcpy(d, p, n);
}

void mpk_buf_printf(struct mpk_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *d = n > 0 ? mpk_buf_grow(b, (size_t)n + 1) : NULL;
	if (!d)
		return;
	va_start(ap, fmt);
	vsnprintf(d, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len--; /* not the NUL */
}

void mpk_buf_put_u8(struct mpk_buf *b, uint8_t v) { mpk_buf_put(b, &v, sizeof v); }
void mpk_buf_put_u32(struct mpk_buf *b, uint32_t v) { mpk_buf_put(b, &v, sizeof v); }
void mpk_buf_put_u64(struct mpk_buf *b, uint64_t v) { mpk_buf_put(b, &v, sizeof v); }

void mpk_buf_consume(struct mpk_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void mpk_buf_free(struct mpk_buf *b)
{
	if (b->resize)
		return;
	free(b->data);
	*b = (struct mpk_buf){0};
}

void mpk_reader_init(struct mpk_reader *r, const void *p, size_t n)
{
	*r = (struct mpk_reader){.start = p, .p = p, .left = n};
}

void mpk_reader_mark(struct mpk_reader *r)
{
	r->start = r->p;
}

void mpk_get_align(struct mpk_reader *r, size_t align)
{
	size_t off = (size_t)(r->p - r->start);
	size_t pad = (align - off % align) % align;
	(void)mpk_get_bytes(r, pad);
}

void mpk_buf_align(struct mpk_buf *b, size_t from, size_t align)
{
	size_t pad = (align - (b->len - from) % align) % align;
	void *d = mpk_buf_grow(b, pad);
	if (d && pad)
		memset(d, 0, pad);
}

const void *mpk_get_bytes(struct mpk_reader *r, size_t n)
{
	if (r->err || n > r->left) {
		r->err = true;
		return NULL;
	}
	const void *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

uint8_t mpk_get_u8(struct mpk_reader *r)
{
	const uint8_t *p = mpk_get_bytes(r, 1);
	return p ? *p : 0;
}

uint32_t mpk_get_u32(struct mpk_reader *r)
{
	uint32_t v = 0;
	const void *p = mpk_get_bytes(r, sizeof v);
	if (p)
		memcpy(&v, p, sizeof v);
	return v;
}

uint64_t mpk_get_u64(struct mpk_reader *r)
{
	uint64_t v = 0;
	const void *p = mpk_get_bytes(r, sizeof v);
	if (p)
		memcpy(&v, p, sizeof v);
	return v;
}
