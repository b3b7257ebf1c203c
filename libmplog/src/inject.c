/* SPDX-License-Identifier: MIT */
/* Records across aggregators: a record one aggregator delivered, encoded
 * (mplog_record_encode()) to travel to another process, and delivered
 * there (mplog_aggregator_inject()) stamped with where it was collected.
 * What libmpguard-mpi sends from an agent rank to rank 0. The encoded
 * form wraps the log channels' own record body, so one decoder
 * (mplog__rec_decode()) reads both:
 *   u32 magic "MPLF", u32 flags (0), u64 observed_ns,
 *   u32 channel_len, u32 body_len, channel bytes, record body
 * in the host's byte order (both ends run the same build). */
#include "aggregator-int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FWD_MAGIC 0x464c504du /* "MPLF" little-endian */
#define FWD_FIXED 24u

/* "mpg.task" of a pool's own record is a task index too. */
static bool is_task_key(const char *k) { return strcmp(k, "mpg.task") == 0; }

/* v + base in decimal into num, if v is a decimal index; else NULL. */
static const char *rebase(const char *v, uint64_t base, char num[24])
{
	uint64_t x = 0;
	if (!*v || strlen(v) > 18)
		return NULL;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9')
			return NULL;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	snprintf(num, 24, "%" PRIu64, x + base);
	return num;
}

MPLOG_EXPORT ssize_t mplog_record_encode(const mplog_record *r, uint64_t task_base, void *buf,
					 size_t size)
{
	if (!r || (!buf && size) || r->nkv > MPLOG_KV_MAX || task_base > INT64_MAX)
		return -EINVAL;
	mplog_kv *kv = r->nkv ? calloc(r->nkv, sizeof *kv) : NULL;
	char *nums = r->nkv ? calloc(r->nkv, 24) : NULL;
	if (r->nkv && (!kv || !nums)) {
		free(kv);
		free(nums);
		return -ENOMEM;
	}
	for (size_t i = 0; i < r->nkv; i++) {
		const char *v = r->kv[2 * i + 1];
		const char *nv = task_base && is_task_key(r->kv[2 * i]) ?
					 rebase(v, task_base, nums + 24 * i) :
					 NULL;
		kv[i] = (mplog_kv){r->kv[2 * i], nv ? nv : v};
	}
	size_t chan = strlen(r->channel);
	int64_t task = r->task;
	if (task >= 0 && task_base) /* past INT64_MAX: unknown */
		task = task <= INT64_MAX - (int64_t)task_base ? task + (int64_t)task_base : -1;
	struct mplog__rec_in in = {
		.ts = r->ts,
		.level = (uint8_t)r->level,
		.stream = (uint8_t)r->stream,
		.pid = r->pid,
		.worker = r->worker,
		.task = task,
		.line = r->line > 0 ? (uint32_t)r->line : 0,
		.file = {r->file, (uint32_t)strlen(r->file)},
		.func = {r->func, (uint32_t)strlen(r->func)},
		.msg = {r->msg, (uint32_t)r->msg_len},
		.kv = kv,
		.nkv = r->nkv,
	};
	size_t body = mplog__rec_size(&in);
	ssize_t ret;
	if (chan > UINT32_MAX || body > UINT32_MAX - FWD_FIXED - chan) {
		ret = -EMSGSIZE;
	} else {
		size_t n = FWD_FIXED + chan + body;
		if (n < size) {
			uint8_t *d = buf;
			uint32_t head[2] = {FWD_MAGIC, 0}, lens[2] = {(uint32_t)chan, (uint32_t)body};
			memcpy(d, head, 8);
			memcpy(d + 8, &r->observed, 8);
			memcpy(d + 16, lens, 8);
			memcpy(d + FWD_FIXED, r->channel, chan);
			mplog__rec_encode(&in, d + FWD_FIXED + chan);
		}
		ret = (ssize_t)n;
	}
	free(kv);
	free(nums);
	return ret;
}

/* The parts of an encoded record: 0 or -EBADMSG. */
static int decode(const void *data, size_t len, struct mplog__parts *p, struct mplog__rec *rec)
{
	struct mpk_reader rd;
	mpk_reader_init(&rd, data, len);
	uint32_t magic = mpk_get_u32(&rd), flags = mpk_get_u32(&rd);
	uint64_t observed = mpk_get_u64(&rd);
	uint32_t chan = mpk_get_u32(&rd), body = mpk_get_u32(&rd);
	const char *c = mpk_get_bytes(&rd, chan);
	const void *b = mpk_get_bytes(&rd, body);
	if (rd.err || rd.left || magic != FWD_MAGIC || flags || mplog__rec_decode(b, body, rec) < 0)
		return -EBADMSG;
	*p = mplog__rec_parts(rec, rec->worker);
	p->remote = true;
	p->observed = observed;
	p->channel = (struct mplog__str){c, chan};
	return 0;
}

MPLOG_EXPORT int mplog_aggregator_inject(mplog_aggregator *a, const void *data, size_t len,
					 const char *host, int pid, int rank)
{
	if (!a || (!data && len) || rank < -1 || pid < 0)
		return -EINVAL;
	if (getpid() != a->owner)
		return -ECHILD;
	if (mplog__in_callback == a)
		return -EDEADLK;
	struct mplog__parts p;
	struct mplog__rec rec;
	int r = decode(data, len, &p, &rec);
	size_t hl = host ? strnlen(host, 255) : 0;
	pthread_mutex_lock(&a->lock);
	if (r < 0) {
		char what[320];
		snprintf(what, sizeof what, "malformed record from %.*s rank %d", (int)hl,
			 host ? host : "", rank);
		mplog__protocol_error(a, NULL, what, len);
	} else {
		p.host = (struct mplog__str){host ? host : "", (uint32_t)hl};
		p.host_pid = pid;
		p.rank = rank;
		mplog__emit(a, NULL, &p);
	}
	pthread_mutex_unlock(&a->lock);
	return r;
}

MPLOG_EXPORT int mplog_aggregator_set_rank(mplog_aggregator *a, int rank)
{
	if (!a || rank < -1)
		return -EINVAL;
	if (getpid() != a->owner)
		return -ECHILD;
	if (mplog__in_callback == a)
		return -EDEADLK;
	pthread_mutex_lock(&a->lock);
	a->rank = rank;
	pthread_mutex_unlock(&a->lock);
	return 0;
}
