/* SPDX-License-Identifier: MIT */
/* Encoding and validating decoding of log record and fragment bodies. The
 * encoder writes into a caller-provided buffer and never allocates, so the
 * writer can build small records on its stack. */
#include "record-int.h"

#include <errno.h>
#include <string.h>

static uint8_t *put(uint8_t *d, const void *p, size_t n)
{
	if (n)
		memcpy(d, p, n);
	return d + n;
}

static uint8_t *put_u32(uint8_t *d, uint32_t v) { return put(d, &v, sizeof v); }

size_t mplog__rec_size(const struct mplog__rec_in *in)
{
	size_t n = MPLOG_REC_FIXED + in->file.n + in->func.n + in->msg.n;
	for (size_t i = 0; i < in->nkv; i++)
		n += 8 + strlen(in->kv[i].key) + strlen(in->kv[i].value);
	return n;
}

void mplog__rec_encode(const struct mplog__rec_in *in, uint8_t *d)
{
	d = put(d, &in->ts, 8);
	uint8_t b[4] = {in->level, in->stream, 0, 0};
	d = put(d, b, 4);
	d = put(d, &in->pid, 4);
	d = put(d, &in->worker, 4);
	d = put(d, &in->task, 8);
	d = put_u32(d, in->line);
	d = put_u32(d, (uint32_t)in->nkv);
	d = put_u32(d, in->file.n);
	d = put_u32(d, in->func.n);
	d = put_u32(d, in->msg.n);
	d = put(d, in->file.p, in->file.n);
	d = put(d, in->func.p, in->func.n);
	d = put(d, in->msg.p, in->msg.n);
	for (size_t i = 0; i < in->nkv; i++) {
		uint32_t kl = (uint32_t)strlen(in->kv[i].key);
		uint32_t vl = (uint32_t)strlen(in->kv[i].value);
		d = put_u32(d, kl);
		d = put_u32(d, vl);
		d = put(d, in->kv[i].key, kl);
		d = put(d, in->kv[i].value, vl);
	}
}

static struct mplog__str get_str(struct mpk_reader *r, uint32_t n)
{
	return (struct mplog__str){.p = mpk_get_bytes(r, n), .n = n};
}

int mplog__rec_decode(const void *body, size_t len, struct mplog__rec *out)
{
	struct mpk_reader r;
	mpk_reader_init(&r, body, len);
	struct mplog__rec x = {0};
	x.ts = mpk_get_u64(&r);
	x.level = mpk_get_u8(&r);
	x.stream = mpk_get_u8(&r);
	uint8_t flags = mpk_get_u8(&r), reserved = mpk_get_u8(&r);
	x.pid = (int32_t)mpk_get_u32(&r);
	x.worker = (int32_t)mpk_get_u32(&r);
	x.task = (int64_t)mpk_get_u64(&r);
	x.line = mpk_get_u32(&r);
	x.nkv = mpk_get_u32(&r);
	uint32_t fl = mpk_get_u32(&r), fnl = mpk_get_u32(&r), ml = mpk_get_u32(&r);
	if (r.err || flags || reserved || x.level > MPLOG_FATAL ||
	    x.stream > MPLOG_STREAM_STDERR || x.nkv > MPLOG_KV_MAX)
		return -EBADMSG;
	x.file = get_str(&r, fl);
	x.func = get_str(&r, fnl);
	x.msg = get_str(&r, ml);
	x.kvs = r.p;
	for (uint32_t i = 0; i < x.nkv && !r.err; i++) {
		uint32_t kl = mpk_get_u32(&r), vl = mpk_get_u32(&r);
		(void)mpk_get_bytes(&r, kl);
		(void)mpk_get_bytes(&r, vl);
	}
	if (r.err || r.left != 0)
		return -EBADMSG;
	x.kvs_len = (size_t)(r.p - x.kvs);
	*out = x;
	return 0;
}

bool mplog__rec_next_kv(const struct mplog__rec *rec, size_t *it, struct mplog__str *key,
			struct mplog__str *value)
{
	if (*it >= rec->kvs_len)
		return false;
	struct mpk_reader r;
	mpk_reader_init(&r, rec->kvs + *it, rec->kvs_len - *it);
	uint32_t kl = mpk_get_u32(&r), vl = mpk_get_u32(&r);
	*key = get_str(&r, kl);
	*value = get_str(&r, vl);
	if (r.err) /* cannot happen: validated by mplog__rec_decode() */
		return false;
	*it = rec->kvs_len - r.left;
	return true;
}

int mplog__frag_decode(const void *body, size_t len, struct mplog__frag *out)
{
	struct mpk_reader r;
	mpk_reader_init(&r, body, len);
	struct mplog__frag f;
	f.pid = mpk_get_u32(&r);
	f.seq = mpk_get_u32(&r);
	f.index = mpk_get_u32(&r);
	f.count = mpk_get_u32(&r);
	f.total = mpk_get_u32(&r);
	if (r.err || f.count < 2 || f.index >= f.count || f.total > MPLOG_RECORD_MAX ||
	    f.total < MPLOG_REC_FIXED || r.left == 0)
		return -EBADMSG;
	f.data = r.p;
	f.len = (uint32_t)r.left;
	*out = f;
	return 0;
}
