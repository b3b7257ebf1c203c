/* SPDX-License-Identifier: MIT */
/* The messages between rank 0 and the agents: a chunk of inputs, and a
 * chunk's outputs and failures. Fields in the host's byte order (every
 * rank runs the same build, so the same architecture: a magic of another
 * order is refused), written and read with libmplog's wire buffer and
 * reader (wire-int.h: bounds checked, no alignment assumed). */
#include "cluster-int.h"
#include "wire-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_MAGIC 0x43504d4bu  /* "KMPC" */
#define RESULT_MAGIC 0x52504d4bu /* "KMPR" */

/* A string of @n bytes whose last is its NUL and only one. */
static const char *take_str(struct mpk_reader *r, uint32_t n)
{
	const char *at = n ? mpk_get_bytes(r, n) : NULL;
	if (!at || memchr(at, 0, n) != at + n - 1) {
		r->err = true;
		return NULL;
	}
	return at;
}

/* The bytes of @n lengths and buffers: from bufs, or from lens (u64s). */
static int lens_total(const mpg_buf *bufs, const uint8_t *lens, uint64_t n, uint64_t *total)
{
	uint64_t t = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t l = bufs ? bufs[i].len : mpg__cl_get64(lens + 8 * i);
		if (l > SIZE_MAX / 2 - t)
			return -EMSGSIZE;
		t += l;
	}
	*total = t;
	return 0;
}

/* @n lengths then the bytes, from bufs or from (lens, bytes). */
static void put_bufs(struct mpk_buf *w, const mpg_buf *bufs, const uint8_t *lens,
		     const uint8_t *bytes, uint64_t n, uint64_t total)
{
	if (!bufs) {
		mpk_buf_put(w, lens, 8 * n);
		mpk_buf_put(w, bytes, total);
		return;
	}
	for (uint64_t i = 0; i < n; i++)
		mpk_buf_put_u64(w, bufs[i].len);
	for (uint64_t i = 0; i < n; i++)
		mpk_buf_put(w, bufs[i].data, bufs[i].len);
}

int mpg__cl_chunk_encode(const struct mpg__cl_chunk *c, uint8_t **buf, size_t *len)
{
	size_t mod = strnlen(c->fn.module, MPG__CL_MAX_MODULE);
	bool bufs = c->flags & MPG__CL_BUFS;
	if (mod == MPG__CL_MAX_MODULE || c->fn.build_id_len > MPG__CL_MAX_BUILD_ID ||
	    (c->flags & ~MPG__CL_FLAGS) || c->ctx_len > MPG__CL_MAX_CONTEXT ||
	    c->retries > MPG__CL_MAX_RETRIES || (bufs && (c->in_size || c->out_size)))
		return -EINVAL;
	uint64_t in_bytes;
	if (bufs) {
		if (c->count > SIZE_MAX / 16 || lens_total(c->bufs, c->lens, c->count, &in_bytes) < 0)
			return -EMSGSIZE;
	} else {
		if (c->in_size && c->count > (SIZE_MAX / 2) / c->in_size)
			return -EMSGSIZE;
		in_bytes = c->count * c->in_size;
	}
	size_t total = 4 * 8 + 8 * 5 + mod + 1 + c->fn.build_id_len + c->ctx_len +
		       (bufs ? 8 * c->count : 0) + in_bytes;
	struct mpk_buf w = {0};
	if (mpk_buf_reserve(&w, total) < 0)
		return -ENOMEM;
	mpk_buf_put_u32(&w, CHUNK_MAGIC);
	mpk_buf_put_u32(&w, (uint32_t)mod + 1);
	mpk_buf_put_u32(&w, c->fn.build_id_len);
	mpk_buf_put_u32(&w, c->flags);
	mpk_buf_put_u32(&w, c->retries);
	mpk_buf_put_u32(&w, c->timeout_ms);
	mpk_buf_put_u32(&w, c->ctx_len);
	mpk_buf_put_u32(&w, 0);
	mpk_buf_put_u64(&w, c->fn.offset);
	mpk_buf_put_u64(&w, c->first);
	mpk_buf_put_u64(&w, c->count);
	mpk_buf_put_u64(&w, c->in_size);
	mpk_buf_put_u64(&w, c->out_size);
	mpk_buf_put(&w, c->fn.module, mod + 1);
	mpk_buf_put(&w, c->fn.build_id, c->fn.build_id_len);
	mpk_buf_put(&w, c->ctx, c->ctx_len);
	if (bufs)
		put_bufs(&w, c->bufs, c->lens, c->in, c->count, in_bytes);
	else
		mpk_buf_put(&w, c->in, in_bytes);
	*buf = w.data;
	*len = w.len;
	return 0;
}

int mpg__cl_chunk_decode(const uint8_t *buf, size_t len, struct mpg__cl_chunk *c)
{
	struct mpk_reader r;
	mpk_reader_init(&r, buf, len);
	if (mpk_get_u32(&r) != CHUNK_MAGIC)
		return -EBADMSG;
	uint32_t mod = mpk_get_u32(&r), bid = mpk_get_u32(&r);
	c->flags = mpk_get_u32(&r);
	c->retries = mpk_get_u32(&r);
	c->timeout_ms = mpk_get_u32(&r);
	c->ctx_len = mpk_get_u32(&r);
	if (mpk_get_u32(&r) != 0)
		return -EBADMSG; /* padding: one chunk, one encoding */
	c->fn.offset = mpk_get_u64(&r);
	c->first = mpk_get_u64(&r);
	c->count = mpk_get_u64(&r);
	c->in_size = mpk_get_u64(&r);
	c->out_size = mpk_get_u64(&r);
	bool bufs = c->flags & MPG__CL_BUFS;
	if (r.err || mod > MPG__CL_MAX_MODULE || bid > MPG__CL_MAX_BUILD_ID ||
	    (c->flags & ~MPG__CL_FLAGS) || c->ctx_len > MPG__CL_MAX_CONTEXT ||
	    c->retries > MPG__CL_MAX_RETRIES || (bufs && (c->in_size || c->out_size)) ||
	    c->out_size > MPG__CL_MAX_OUT || c->first > UINT64_MAX - c->count ||
	    c->count > INT32_MAX || (c->out_size && c->count > INT32_MAX / c->out_size))
		return -EBADMSG; /* the outputs go back in one MPI message: int count */
	const char *name = take_str(&r, mod);
	const uint8_t *id = mpk_get_bytes(&r, bid);
	c->ctx = mpk_get_bytes(&r, c->ctx_len);
	c->lens = bufs ? mpk_get_bytes(&r, 8 * c->count) : NULL;
	c->bufs = NULL;
	if (r.err)
		return -EBADMSG;
	memcpy(c->fn.module, name, mod);
	if (bid)
		memcpy(c->fn.build_id, id, bid);
	c->fn.build_id_len = bid;
	/* The inputs are the rest, exactly. */
	uint64_t rest = r.left;
	if (bufs) {
		uint64_t total;
		if (lens_total(NULL, c->lens, c->count, &total) < 0 || total != rest)
			return -EBADMSG;
	} else if (c->in_size ? rest / c->in_size != c->count || rest % c->in_size : rest != 0) {
		return -EBADMSG;
	}
	c->in = r.p;
	c->in_bytes = rest;
	return 0;
}

mpg_buf mpg__cl_chunk_input(const struct mpg__cl_chunk *c, uint64_t i, uint64_t *off)
{
	if (!(c->flags & MPG__CL_BUFS))
		return (mpg_buf){c->in + i * c->in_size, c->in_size};
	uint64_t l = mpg__cl_get64(c->lens + 8 * i);
	mpg_buf b = {c->in + *off, l};
	*off += l;
	return b;
}

static size_t error_bytes(const struct mpg__cl_wire_error *e)
{
	return 4 * 9 + 8 * 2 + 4 * 2 + strlen(e->message) + 1 +
	       strlen(e->backtrace ? e->backtrace : "") + 1;
}

int mpg__cl_result_encode(const struct mpg__cl_result *r, const struct mpg__cl_wire_error *errs,
		       uint8_t **buf, size_t *len)
{
	size_t host = strnlen(r->host, MPG__CL_MAX_HOST - 1);
	bool bufs = r->flags & MPG__CL_BUFS;
	if ((r->flags & ~MPG__CL_FLAGS) || (bufs && r->out_size))
		return -EINVAL;
	uint64_t out_bytes = 0;
	if (!r->status && bufs) {
		if (r->count > SIZE_MAX / 16 || lens_total(r->bufs, r->lens, r->count, &out_bytes) < 0)
			return -EMSGSIZE;
	} else if (!r->status) {
		out_bytes = r->count * r->out_size;
	}
	size_t total = 4 * 6 + 8 * 3 + host + 1 + (!r->status && bufs ? 8 * r->count : 0) +
		       out_bytes;
	for (uint32_t i = 0; i < r->nerrors; i++)
		total += error_bytes(&errs[i]);
	struct mpk_buf w = {0};
	if (mpk_buf_reserve(&w, total) < 0)
		return -ENOMEM;
	mpk_buf_put_u32(&w, RESULT_MAGIC);
	mpk_buf_put_u32(&w, (uint32_t)r->rank);
	mpk_buf_put_u32(&w, (uint32_t)r->status);
	mpk_buf_put_u32(&w, (uint32_t)host + 1);
	mpk_buf_put_u32(&w, r->nerrors);
	mpk_buf_put_u32(&w, r->flags);
	mpk_buf_put_u64(&w, r->first);
	mpk_buf_put_u64(&w, r->count);
	mpk_buf_put_u64(&w, r->out_size);
	mpk_buf_put(&w, r->host, host);
	mpk_buf_put(&w, "", 1);
	if (!r->status && bufs)
		put_bufs(&w, r->bufs, r->lens, r->out, r->count, out_bytes);
	else
		mpk_buf_put(&w, r->out, out_bytes);
	for (uint32_t i = 0; i < r->nerrors; i++) {
		const struct mpg__cl_wire_error *e = &errs[i];
		const char *bt = e->backtrace ? e->backtrace : "";
		mpk_buf_put_u32(&w, e->kind);
		mpk_buf_put_u32(&w, (uint32_t)e->worker);
		mpk_buf_put_u32(&w, (uint32_t)e->pid);
		mpk_buf_put_u32(&w, (uint32_t)e->code);
		mpk_buf_put_u32(&w, (uint32_t)e->sig);
		mpk_buf_put_u32(&w, e->attempts);
		mpk_buf_put_u32(&w, e->has_fault);
		mpk_buf_put_u32(&w, (uint32_t)e->si_code);
		mpk_buf_put_u32(&w, 0);
		mpk_buf_put_u64(&w, e->addr);
		mpk_buf_put_u64(&w, e->task);
		mpk_buf_put_u32(&w, (uint32_t)strlen(e->message) + 1);
		mpk_buf_put_u32(&w, (uint32_t)strlen(bt) + 1);
		mpk_buf_put(&w, e->message, strlen(e->message) + 1);
		mpk_buf_put(&w, bt, strlen(bt) + 1);
	}
	*buf = w.data;
	*len = w.len;
	return 0;
}

/* One error record from @r; r->err when it does not hold. */
static void read_error(struct mpk_reader *r, struct mpg__cl_wire_error *e)
{
	e->kind = mpk_get_u32(r);
	e->worker = (int32_t)mpk_get_u32(r);
	e->pid = (int32_t)mpk_get_u32(r);
	e->code = (int32_t)mpk_get_u32(r);
	e->sig = (int32_t)mpk_get_u32(r);
	e->attempts = mpk_get_u32(r);
	e->has_fault = mpk_get_u32(r);
	e->si_code = (int32_t)mpk_get_u32(r);
	if (mpk_get_u32(r) != 0)
		r->err = true; /* padding: zero, so that one error has one encoding */
	e->addr = mpk_get_u64(r);
	e->task = mpk_get_u64(r);
	uint32_t ml = mpk_get_u32(r), bl = mpk_get_u32(r);
	e->message = take_str(r, ml);
	e->backtrace = take_str(r, bl);
	if (e->kind < MPG_ERR_RAISED || e->kind > MPG_ERR_CANCELLED)
		r->err = true;
}

int mpg__cl_result_decode(const uint8_t *buf, size_t len, struct mpg__cl_result *res)
{
	struct mpk_reader r;
	mpk_reader_init(&r, buf, len);
	if (mpk_get_u32(&r) != RESULT_MAGIC)
		return -EBADMSG;
	res->rank = (int32_t)mpk_get_u32(&r);
	res->status = (int32_t)mpk_get_u32(&r);
	uint32_t host = mpk_get_u32(&r);
	res->nerrors = mpk_get_u32(&r);
	res->flags = mpk_get_u32(&r);
	res->first = mpk_get_u64(&r);
	res->count = mpk_get_u64(&r);
	res->out_size = mpk_get_u64(&r);
	bool bufs = res->flags & MPG__CL_BUFS;
	if (r.err || host > MPG__CL_MAX_HOST || res->status > 0 ||
	    res->out_size > MPG__CL_MAX_OUT || res->nerrors > res->count ||
	    (res->status && res->nerrors) || (res->flags & ~MPG__CL_FLAGS) ||
	    (bufs && res->out_size))
		return -EBADMSG;
	res->host = take_str(&r, host);
	res->lens = NULL;
	res->bufs = NULL;
	uint64_t out_bytes = 0;
	if (!res->status && bufs) {
		if (res->count > SIZE_MAX / 16)
			return -EBADMSG;
		res->lens = mpk_get_bytes(&r, 8 * res->count);
		if (r.err || lens_total(NULL, res->lens, res->count, &out_bytes) < 0)
			return -EBADMSG;
	} else if (!res->status) {
		if (res->out_size && res->count > UINT64_MAX / res->out_size)
			return -EBADMSG;
		out_bytes = res->count * res->out_size;
	}
	res->out = mpk_get_bytes(&r, out_bytes);
	res->out_bytes = out_bytes;
	if (r.err)
		return -EBADMSG;
	res->errors = r.p;
	res->errors_len = r.left;
	for (uint32_t i = 0; i < res->nerrors; i++) {
		struct mpg__cl_wire_error e;
		read_error(&r, &e);
		if (r.err || e.task < res->first || e.task - res->first >= res->count)
			return -EBADMSG;
	}
	return r.left == 0 ? 0 : -EBADMSG;
}

void mpg__cl_result_error(const struct mpg__cl_result *res, size_t *off, struct mpg__cl_wire_error *e)
{
	struct mpk_reader r;
	mpk_reader_init(&r, res->errors + *off, res->errors_len - *off);
	read_error(&r, e); /* checked whole by mpg__cl_result_decode() */
	*off = res->errors_len - r.left;
}

mpg_buf mpg__cl_result_output(const struct mpg__cl_result *r, uint64_t i, uint64_t *off)
{
	uint64_t l = mpg__cl_get64(r->lens + 8 * i);
	mpg_buf b = {r->out + *off, l};
	*off += l;
	return b;
}
