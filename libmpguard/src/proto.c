/* SPDX-License-Identifier: MIT */
/* The worker protocol's encoders and total decoders (see proto-int.h). A
 * decoder reads through a bounds-checked mpk_reader, checks every count
 * against what remains before it loops, and reports a malformed frame
 * without side effects. */
#include "proto-int.h"
#include "arena-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_SIZE sizeof(struct mpk_frame_header)

/* ---- frame stream ------------------------------------------------------ */

int mpg__frame_peek(const uint8_t *p, size_t avail, unsigned first_type, unsigned last_type,
		    size_t *len)
{
	struct mpk_frame_header h = {0};
	memcpy(&h, p, avail < HEADER_SIZE ? avail : HEADER_SIZE);
	/* A prefix of a header must be a prefix of a valid one: the magic's
	 * bytes, the version, a known type, as far as they have arrived. */
	const uint32_t magic = MPK_FRAME_MAGIC;
	if (memcmp(p, &magic, avail < 4 ? avail : 4) != 0)
		return -EBADMSG;
	if (avail >= 5 && h.version != MPK_FRAME_VERSION)
		return -EBADMSG;
	if (avail >= 6 && (h.type < first_type || h.type > last_type))
		return -EBADMSG;
	if (avail < HEADER_SIZE)
		return 0;
	if (mpk_frame_header_check(&h, MPK_FRAME_MAX_BODY) < 0)
		return -EBADMSG;
	if (avail - HEADER_SIZE < h.length)
		return 0;
	*len = HEADER_SIZE + h.length;
	return 1;
}

size_t mpg__frame_resync(const uint8_t *p, size_t avail)
{
	const uint32_t magic = MPK_FRAME_MAGIC;
	for (size_t i = 1; i < avail; i++) {
		size_t n = avail - i < 4 ? avail - i : 4;
		if (memcmp(p + i, &magic, n) == 0)
			return i;
	}
	return avail;
}

/* ---- a raised error ---------------------------------------------------- */

void mpg__raised_put(struct mpk_buf *b, int32_t code, const char *msg, const uint64_t *ips,
		     uint32_t nips)
{
	uint32_t mlen = (uint32_t)strnlen(msg, MPG_MAX_MESSAGE - 1);
	if (nips > MPG_MAX_FRAMES)
		nips = MPG_MAX_FRAMES;
	mpk_buf_put_u32(b, (uint32_t)code);
	mpk_buf_put_u32(b, mlen);
	mpk_buf_put_u32(b, nips);
	mpk_buf_put(b, msg, mlen);
	mpk_buf_put(b, ips, nips * sizeof *ips);
}

bool mpg__raised_get(struct mpk_reader *r, struct mpg__raised *e)
{
	e->code = (int32_t)mpk_get_u32(r);
	e->msg_len = mpk_get_u32(r);
	e->nips = mpk_get_u32(r);
	if (e->msg_len >= MPG_MAX_MESSAGE || e->nips > MPG_MAX_FRAMES)
		r->err = true;
	e->msg = mpk_get_bytes(r, e->msg_len);
	e->ips = mpk_get_bytes(r, (size_t)e->nips * 8);
	if (r->err) {
		*e = (struct mpg__raised){0};
		return false;
	}
	return true;
}

void mpg__raised_ips(const struct mpg__raised *e, uint64_t ips[MPG_MAX_FRAMES])
{
	if (e->nips)
		memcpy(ips, e->ips, (size_t)e->nips * 8);
}

/* ---- MSG_CHUNK --------------------------------------------------------- */

void mpg__chunk_begin(struct mpk_buf *b, const struct mpg__chunk_head *h, const void *ctx,
		      size_t ctx_len)
{
	mpk_buf_grow(b, HEADER_SIZE);
	mpk_buf_put(b, h, sizeof *h);
	if (h->mode & CHUNK_HAS_CTX) {
		mpk_buf_put_u64(b, ctx_len);
		mpk_buf_put(b, ctx, ctx_len);
	}
}

/* Inputs start 16-aligned from the body start (the worker's receive
 * buffer is malloc-aligned), so tasks get inputs aligned like malloc's. */
void mpg__chunk_align_fixed(struct mpk_buf *b)
{
	mpk_buf_align(b, HEADER_SIZE, 16);
}

void mpg__input_put_inline(struct mpk_buf *b, const void *data, size_t len)
{
	mpk_buf_align(b, HEADER_SIZE, 16);
	mpk_buf_put_u64(b, ITEM_INLINE);
	mpk_buf_put_u64(b, len);
	mpk_buf_put(b, data, len);
}

void mpg__input_put_shm(struct mpk_buf *b, uint64_t off, uint64_t len)
{
	mpk_buf_align(b, HEADER_SIZE, 16);
	mpk_buf_put_u64(b, ITEM_SHM);
	mpk_buf_put_u64(b, off);
	mpk_buf_put_u64(b, len);
}

int mpg__chunk_finish(struct mpk_buf *b, uint32_t count, size_t ext_len, uint16_t nfds)
{
	if (b->oom || b->len < HEADER_SIZE + sizeof(struct mpg__chunk_head) ||
	    b->len - HEADER_SIZE + ext_len > MPK_FRAME_MAX_BODY)
		return -ENOMEM;
	memcpy(b->data + HEADER_SIZE + offsetof(struct mpg__chunk_head, count), &count, sizeof count);
	mpk_frame_header_init((struct mpk_frame_header *)b->data, MSG_CHUNK,
			      (uint32_t)(b->len - HEADER_SIZE + ext_len), nfds);
	return 0;
}

int mpg__chunk_decode(const void *body, size_t len, struct mpg__chunk *c)
{
	struct mpk_reader r;
	mpk_reader_init(&r, body, len);
	const void *h = mpk_get_bytes(&r, sizeof c->h);
	if (!h)
		return -EBADMSG;
	memcpy(&c->h, h, sizeof c->h);
	c->ctx = NULL;
	c->ctx_len = 0;
	if (c->h.mode & CHUNK_HAS_CTX) {
		c->ctx_len = mpk_get_u64(&r);
		c->ctx = mpk_get_bytes(&r, c->ctx_len);
	}
	mpk_get_align(&r, 16);
	if (r.err || c->h.count == 0 || (c->h.mode & ~(uint32_t)CHUNK_MODES))
		return -EBADMSG;
	if (c->h.mode & CHUNK_FIXED_IN) {
		/* Exactly count inputs of in_size bytes, no overflow. */
		if (c->h.in_size == 0 || c->h.in_size > r.left / c->h.count ||
		    c->h.in_size * c->h.count != r.left)
			return -EBADMSG;
	}
	if ((c->h.mode & CHUNK_FIXED_OUT) &&
	    (c->h.out_size == 0 || c->h.out_size > MPK_FRAME_MAX_BODY / c->h.count))
		return -EBADMSG;
	c->inputs = r;
	c->nshm = 0;
	if (c->h.mode & CHUNK_FIXED_IN)
		return 0;
	/* Every input whole, and nothing after them, before a task runs. */
	struct mpg__input in;
	for (uint32_t i = 0; i < c->h.count; i++) {
		if (!mpg__input_next(c, &in))
			return -EBADMSG;
		c->nshm += in.shm;
	}
	if (c->inputs.left)
		return -EBADMSG;
	c->inputs = r;
	return 0;
}

bool mpg__input_next(struct mpg__chunk *c, struct mpg__input *in)
{
	struct mpk_reader *r = &c->inputs;
	*in = (struct mpg__input){0};
	if (c->h.mode & CHUNK_FIXED_IN) {
		in->data = mpk_get_bytes(r, c->h.in_size);
		in->len = c->h.in_size;
		return !r->err;
	}
	mpk_get_align(r, 16);
	uint64_t kind = mpk_get_u64(r);
	if (kind == ITEM_INLINE) {
		in->len = mpk_get_u64(r);
		in->data = mpk_get_bytes(r, in->len);
	} else if (kind == ITEM_SHM) {
		in->shm = true;
		in->off = mpk_get_u64(r);
		in->len = mpk_get_u64(r);
	} else {
		r->err = true;
	}
	return !r->err;
}

/* ---- MSG_RESULT -------------------------------------------------------- */

/* Result items are 16-aligned from the start of the items region, which
 * the worker's buffer starts and the parent keeps (a blob, an arena). */
void *mpg__item_put_inline(struct mpk_buf *b, size_t len)
{
	mpk_buf_align(b, 0, 16);
	mpk_buf_put_u64(b, ITEM_INLINE);
	mpk_buf_put_u64(b, len);
	return mpk_buf_grow(b, len);
}

void mpg__item_put_shm(struct mpk_buf *b, uint64_t len)
{
	mpk_buf_align(b, 0, 16);
	mpk_buf_put_u64(b, ITEM_SHM);
	mpk_buf_put_u64(b, len);
}

void mpg__item_put_error(struct mpk_buf *b, int32_t code, const char *msg, const uint64_t *ips,
			 uint32_t nips)
{
	mpk_buf_align(b, 0, 16);
	mpk_buf_put_u64(b, ITEM_ERROR);
	mpg__raised_put(b, code, msg, ips, nips);
}

void mpg__fixed_error_put(struct mpk_buf *b, uint32_t rel, int32_t code, const char *msg,
			  const uint64_t *ips, uint32_t nips)
{
	mpk_buf_put_u32(b, rel);
	mpg__raised_put(b, code, msg, ips, nips);
}

void mpg__items_begin(struct mpg__item_iter *it, const uint8_t *items, size_t len)
{
	mpk_reader_init(&it->r, items, len);
}

bool mpg__items_next(struct mpg__item_iter *it, struct mpg__item *item)
{
	struct mpk_reader *r = &it->r;
	*item = (struct mpg__item){0};
	mpk_get_align(r, 16);
	item->kind = mpk_get_u64(r);
	switch (r->err ? UINT64_MAX : item->kind) {
	case ITEM_INLINE:
		item->len = mpk_get_u64(r);
		item->data = mpk_get_bytes(r, item->len);
		break;
	case ITEM_SHM:
		item->len = mpk_get_u64(r);
		break;
	case ITEM_ERROR:
		(void)mpg__raised_get(r, &item->err);
		break;
	default:
		r->err = true;
		break;
	}
	return !r->err;
}

bool mpg__fixed_error_next(struct mpk_reader *r, uint32_t *rel, struct mpg__raised *e)
{
	*rel = mpk_get_u32(r);
	return mpg__raised_get(r, e);
}

int mpg__result_decode(const void *body, size_t len, struct mpg__result *res)
{
	struct mpk_reader r;
	mpk_reader_init(&r, body, len);
	const void *h = mpk_get_bytes(&r, sizeof res->h);
	if (!h)
		return -EBADMSG;
	*res = (struct mpg__result){0};
	memcpy(&res->h, h, sizeof res->h);
	uint32_t count = res->h.count;
	uint32_t mode = res->h.mode;
	if (count == 0 || (mode & ~(uint32_t)(CHUNK_FIXED_OUT | RESULT_IN_ARENA)) ||
	    mode == RESULT_IN_ARENA)
		return -EBADMSG;
	if (mode & CHUNK_FIXED_OUT) {
		res->is_fixed = true;
		res->in_arena = mode & RESULT_IN_ARENA;
		if (res->h.out_size == 0)
			return -EBADMSG;
		if (res->in_arena) {
			res->arena_off = mpk_get_u64(&r);
			if (res->h.out_size > MPG_ARENA_MAX / count ||
			    res->arena_off > MPG_ARENA_MAX - count * res->h.out_size)
				return -EBADMSG;
		} else {
			if (res->h.out_size > r.left / count)
				return -EBADMSG;
			res->fixed = mpk_get_bytes(&r, count * res->h.out_size);
		}
		res->nerr = mpk_get_u32(&r);
		if (r.err || res->nerr > count)
			return -EBADMSG;
		res->errs = r.p;
		res->errs_len = r.left;
		/* Each error once, for a task of the frame, in order. */
		int64_t last = -1;
		for (uint32_t e = 0; e < res->nerr; e++) {
			uint32_t rel;
			struct mpg__raised err;
			if (!mpg__fixed_error_next(&r, &rel, &err) || rel >= count || (int64_t)rel <= last)
				return -EBADMSG;
			last = rel;
		}
		return r.left ? -EBADMSG : 0;
	}
	mpk_reader_mark(&r);
	res->items = r.p;
	res->items_len = r.left;
	struct mpg__item_iter it;
	mpg__items_begin(&it, res->items, res->items_len);
	for (uint32_t i = 0; i < count; i++) {
		struct mpg__item item;
		if (!mpg__items_next(&it, &item))
			return -EBADMSG;
		res->nshm += item.kind == ITEM_SHM;
	}
	return it.r.left ? -EBADMSG : 0;
}

/* ---- MSG_CRASH, MSG_STACK ---------------------------------------------- */

size_t mpg__crash_frame_seal(struct mpg__crash_frame *f)
{
	size_t body = sizeof f->c + f->c.nips * sizeof f->ips[0];
	mpk_frame_header_init(&f->h, MSG_CRASH, (uint32_t)body, 0);
	return sizeof f->h + body;
}

size_t mpg__stack_frame_seal(struct mpg__stack_frame *f)
{
	f->pad = 0;
	size_t body = 8 + f->nips * sizeof f->ips[0];
	mpk_frame_header_init(&f->h, MSG_STACK, (uint32_t)body, 0);
	return sizeof f->h + body;
}

int mpg__crash_decode(const void *body, size_t len, struct mpg__crash_head *c,
		      uint64_t ips[MPG_MAX_FRAMES])
{
	struct mpg__crash_head h;
	if (len < sizeof h)
		return -EBADMSG;
	memcpy(&h, body, sizeof h);
	if (h.nips > MPG_MAX_FRAMES || len != sizeof h + h.nips * 8u || h.signo == 0 ||
	    h.signo >= 65)
		return -EBADMSG;
	*c = h;
	memcpy(ips, (const uint8_t *)body + sizeof h, h.nips * 8u);
	return 0;
}

int mpg__stack_decode(const void *body, size_t len, uint32_t *nips, uint64_t ips[MPG_MAX_FRAMES])
{
	uint32_t n;
	if (len < 8)
		return -EBADMSG;
	memcpy(&n, body, 4);
	if (n > MPG_MAX_FRAMES || len != 8 + n * 8u)
		return -EBADMSG;
	memcpy(ips, (const uint8_t *)body + 8, n * 8u);
	*nips = n;
	return 0;
}

/* ---- MSG_MODULES ------------------------------------------------------- */

void mpg__module_put(struct mpk_buf *b, uint64_t bias, uint64_t lo, uint64_t hi,
		     const char *path, const uint8_t *id, uint32_t idlen)
{
	uint32_t plen = (uint32_t)strlen(path);
	if (idlen > sizeof ((struct mpg__module *)0)->build_id)
		idlen = 0;
	mpk_buf_put_u64(b, bias);
	mpk_buf_put_u64(b, lo);
	mpk_buf_put_u64(b, hi);
	mpk_buf_put_u32(b, plen);
	mpk_buf_put(b, path, plen);
	mpk_buf_put_u32(b, idlen);
	mpk_buf_put(b, id, idlen);
}

int mpg__modlist_decode(const void *body, size_t len, struct mpg__modlist *out)
{
	struct mpk_reader r;
	mpk_reader_init(&r, body, len);
	uint32_t n = mpk_get_u32(&r);
	/* Each module takes at least 32 bytes: a count beyond is a lie. */
	if (r.err || n > MPG_MAX_MODULES || n > r.left / 32)
		return -EBADMSG;
	struct mpg__module *m = calloc(n ? n : 1, sizeof *m);
	if (!m)
		return -ENOMEM;
	struct mpg__modlist l = {m, n};
	for (uint32_t i = 0; i < n; i++) {
		m[i].bias = mpk_get_u64(&r);
		m[i].lo = mpk_get_u64(&r);
		m[i].hi = mpk_get_u64(&r);
		uint32_t pl = mpk_get_u32(&r);
		const char *p = mpk_get_bytes(&r, pl);
		uint32_t il = mpk_get_u32(&r);
		if (il > sizeof m[i].build_id)
			r.err = true;
		const void *id = mpk_get_bytes(&r, il);
		if (r.err)
			break;
		m[i].path = strndup(p, pl);
		if (!m[i].path) {
			mpg__modlist_free(&l);
			return -ENOMEM;
		}
		memcpy(m[i].build_id, id, il);
		m[i].build_id_len = il;
	}
	if (r.err || r.left) {
		mpg__modlist_free(&l);
		return -EBADMSG;
	}
	*out = l;
	return 0;
}

void mpg__modlist_free(struct mpg__modlist *l)
{
	if (!l || !l->m)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->m[i].path);
	free(l->m);
	*l = (struct mpg__modlist){0};
}

/* ---- MSG_SERVICE_END, MSG_HELLO ---------------------------------------- */

int mpg__service_end_encode(struct mpk_buf *b, int32_t code, const char *msg,
			    const uint64_t *ips, uint32_t nips)
{
	mpk_buf_grow(b, HEADER_SIZE);
	mpg__raised_put(b, code, msg, ips, nips);
	if (b->oom)
		return -ENOMEM;
	mpk_frame_header_init((struct mpk_frame_header *)b->data, MSG_SERVICE_END,
			      (uint32_t)(b->len - HEADER_SIZE), 0);
	return 0;
}

int mpg__service_end_decode(const void *body, size_t len, struct mpg__raised *e)
{
	struct mpk_reader r;
	mpk_reader_init(&r, body, len);
	if (!mpg__raised_get(&r, e) || r.left)
		return -EBADMSG;
	return 0;
}

void mpg__hello_init(struct mpg__hello_frame *f, unsigned nfds)
{
	f->version = MPG_HELLO_VERSION;
	f->pad = 0;
	mpk_frame_header_init(&f->h, MSG_HELLO, sizeof *f - sizeof f->h, (uint16_t)nfds);
}

int mpg__hello_decode(const void *body, size_t len, unsigned nfds)
{
	uint32_t v[2];
	if (len != sizeof v || nfds > 1)
		return -EBADMSG;
	memcpy(v, body, sizeof v);
	return v[0] == MPG_HELLO_VERSION && v[1] == 0 ? 0 : -EBADMSG;
}

/* ---- fork server ------------------------------------------------------- */

int mpg__fsmsg_decode(const void *p, size_t len, bool truncated, struct mpg__fsmsg *m)
{
	struct mpg__fsmsg v;
	if (truncated || len != sizeof v)
		return -EPROTO;
	memcpy(&v, p, sizeof v);
	if (v.type < FS_SPAWN || v.type > FS_KILL)
		return -EPROTO;
	*m = v;
	return 0;
}
