/* SPDX-License-Identifier: MIT */
/* Parsing what arrives on one channel: framed records (validated, with
 * resynchronization on the next magic after garbage, and reassembly of
 * fragmented long records), the entries of its ring, or raw stdout/stderr
 * bytes cut into lines. Nothing here trusts the child: every length is
 * bounded, every frame is checked, and a bad channel never affects another
 * one. */
#include "aggregator-int.h"
#include "ring-int.h"
#include "mark-int.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint8_t magic[4] = {'M', 'P', 'K', 'F'};
_Static_assert(MPK_FRAME_MAGIC == 0x464b504du, "magic spells MPKF in memory");

void mplog__channel_free(struct mplog__channel *ch)
{
	if (!ch)
		return;
	mpk_fdreg_close(&ch->fd);
	mplog__ring_reader_free(ch->ring);
	for (size_t i = 0; i < ch->nasm; i++)
		mpk_buf_free(&ch->asm_[i].buf);
	free(ch->asm_);
	mpk_buf_free(&ch->in);
	free(ch->name);
	free(ch);
}

void mplog__channel_report_garbage(mplog_aggregator *a, struct mplog__channel *ch)
{
	if (!ch->garbage)
		return;
	mplog__protocol_error(a, ch, "invalid bytes skipped", ch->garbage);
	ch->garbage = 0;
}

static void drop_assembly(struct mplog__channel *ch, size_t i)
{
	mpk_buf_free(&ch->asm_[i].buf);
	ch->asm_[i] = ch->asm_[--ch->nasm];
}

static void on_fragment(mplog_aggregator *a, struct mplog__channel *ch,
			const struct mplog__frag *f, size_t frame_len)
{
	size_t i;
	for (i = 0; i < ch->nasm; i++)
		if (ch->asm_[i].pid == f->pid && ch->asm_[i].seq == f->seq)
			break;
	if (f->index == 0) {
		if (i < ch->nasm) {
			mplog__protocol_error(a, ch, "long record restarted before its end",
					      ch->asm_[i].buf.len);
			drop_assembly(ch, i);
		}
		if (ch->nasm == MPLOG_MAX_ASSEMBLIES) {
			mplog__protocol_error(a, ch, "too many long records in progress",
					      ch->asm_[0].buf.len);
			drop_assembly(ch, 0);
		}
		if (!ch->asm_) {
			ch->asm_ = calloc(MPLOG_MAX_ASSEMBLIES, sizeof *ch->asm_);
			if (!ch->asm_) {
				mplog__protocol_error(a, ch, "out of memory for a long record",
						      frame_len);
				return;
			}
		}
		i = ch->nasm++;
		ch->asm_[i] = (struct mplog__assembly){
			.pid = f->pid, .seq = f->seq, .count = f->count, .total = f->total};
	} else if (i == ch->nasm) {
		mplog__protocol_error(a, ch, "fragment of an unknown long record", frame_len);
		return;
	}
	struct mplog__assembly *as = &ch->asm_[i];
	if (f->index != as->next || f->count != as->count || f->total != as->total ||
	    f->len > as->total - as->buf.len ||
	    (f->index + 1 == f->count && as->buf.len + f->len != as->total)) {
		mplog__protocol_error(a, ch, "inconsistent fragment", as->buf.len + frame_len);
		drop_assembly(ch, i);
		return;
	}
	mpk_buf_put(&as->buf, f->data, f->len);
	if (as->buf.oom) {
		mplog__protocol_error(a, ch, "out of memory for a long record", as->total);
		drop_assembly(ch, i);
		return;
	}
	if (++as->next < as->count)
		return;
	struct mplog__rec rec;
	if (mplog__rec_decode(as->buf.data, as->buf.len, &rec) < 0) {
		mplog__protocol_error(a, ch, "invalid long record", as->buf.len);
	} else {
		ch->pid = rec.pid;
		mplog__emit_rec(a, ch, &rec);
	}
	drop_assembly(ch, i);
}

/* Decode and deliver the body of one record or fragment (blen bytes of a
 * frame or entry of flen): 0, or -1 when it is not valid (nothing done). */
static int take(mplog_aggregator *a, struct mplog__channel *ch, unsigned type, const uint8_t *body,
		size_t blen, size_t flen)
{
	struct mplog__rec rec;
	struct mplog__frag frag;
	bool is_rec = type == MPLOG_FRAME_RECORD;
	if ((is_rec ? mplog__rec_decode(body, blen, &rec) : mplog__frag_decode(body, blen, &frag)) < 0)
		return -1;
	mplog__channel_report_garbage(a, ch);
	if (is_rec) {
		ch->pid = rec.pid;
		mplog__emit_rec(a, ch, &rec);
	} else {
		on_fragment(a, ch, &frag, flen);
	}
	return 0;
}

/* Is there a valid frame at d (left bytes)? 1 yes (*flen set), 0 need more
 * bytes, -1 not a frame. */
static int frame_at(const uint8_t *d, size_t left, size_t *flen)
{
	struct mpk_frame_header h;
	if (left < sizeof h)
		return 0;
	memcpy(&h, d, sizeof h);
	if (mpk_frame_header_check(&h, MPLOG_BODY_MAX) < 0 || h.nfds != 0 ||
	    (h.type != MPLOG_FRAME_RECORD && h.type != MPLOG_FRAME_FRAGMENT &&
	     (h.type != MPLOG_FRAME_WAKE || h.length != 0)))
		return -1;
	if (left < sizeof h + h.length)
		return 0;
	*flen = sizeof h + h.length;
	return 1;
}

static void parse_frames(mplog_aggregator *a, struct mplog__channel *ch, bool eof)
{
	const uint8_t *d = ch->in.data;
	size_t len = ch->in.len, pos = 0;
	while (pos < len) {
		size_t left = len - pos;
		size_t cmp = left < sizeof magic ? left : sizeof magic;
		if (memcmp(d + pos, magic, cmp) != 0) {
			/* Garbage: skip to the next magic, or keep only a tail
			 * that may be the start of one. */
			const uint8_t *m = memmem(d + pos + 1, left - 1, magic, sizeof magic);
			if (m) {
				ch->garbage += (size_t)(m - (d + pos));
				pos = (size_t)(m - d);
				continue;
			}
			size_t keep = left - 1 < 3 ? left - 1 : 3;
			while (keep && memcmp(d + len - keep, magic, keep) != 0)
				keep--;
			ch->garbage += left - keep;
			pos = len - keep;
			break;
		}
		size_t flen = 0;
		int r = frame_at(d + pos, left, &flen);
		if (r == 0 && !eof)
			break;
		if (r == 0) {
			/* At EOF no frame is cut short (one write each): this
			 * header is garbage, and the frames in what it claims
			 * are found by resyncing past it. */
			ch->garbage += 1;
			pos += 1;
			continue;
		}
		const uint8_t *body = d + pos + sizeof(struct mpk_frame_header);
		size_t blen = flen - sizeof(struct mpk_frame_header);
		uint8_t type = d[pos + 5];
		if (r > 0 && type == MPLOG_FRAME_WAKE) {
			pos += flen; /* a ring's writer woke us: nothing more */
			continue;
		}
		if (r < 0 || take(a, ch, type, body, blen, flen) < 0) {
			/* A magic inside garbage, or a corrupt frame: skip
			 * its first byte and look for the next magic. */
			ch->garbage += 1;
			pos += 1;
			continue;
		}
		pos += flen;
	}
	if (eof && pos < len) {
		ch->garbage += len - pos; /* a frame cut short: never written so */
		pos = len;
	}
	mpk_buf_consume(&ch->in, pos);
	if (eof) {
		mplog__channel_report_garbage(a, ch);
		while (ch->nasm) {
			mplog__protocol_error(a, ch, "long record cut short by EOF",
					      ch->asm_[0].buf.len);
			drop_assembly(ch, 0);
		}
	}
}

size_t mplog__channel_ring(mplog_aggregator *a, struct mplog__channel *ch, size_t budget,
			  bool eof)
{
	struct mplog__ring_reader *r = ch->ring;
	size_t got = 0;
	struct mplog__ring_item it;
	enum mplog__ring_got g;
	while ((eof || got < budget) && (g = mplog__ring_next(r, eof, &it)) != RING_NONE) {
		if (g == RING_ENTRY) {
			unsigned type = it.kind == RING_RECORD ? MPLOG_FRAME_RECORD : MPLOG_FRAME_FRAGMENT;
			if (take(a, ch, type, it.data, it.len, it.len) < 0)
				ch->garbage += MPLOG_RING_SLOTS_OF(it.len) * MPLOG_RING_SLOT;
		} else if (g == RING_GARBAGE) {
			ch->garbage += it.len;
		} else {
			mplog__channel_report_garbage(a, ch);
			mplog__protocol_error(a, ch, "record begun but never committed: its writer "
					      "died while logging", it.len);
		}
		got += it.len;
		/* Writers waiting for room get it a quarter at a time. */
		if (r->tail - r->published >= r->ring.nslots / 4)
			mplog__ring_publish(r);
	}
	mplog__ring_publish(r);
	if (eof)
		mplog__channel_report_garbage(a, ch);
	return got;
}

static void emit_line(mplog_aggregator *a, struct mplog__channel *ch, const uint8_t *p,
		      size_t n)
{
	/* Pid not given yet: the sender of the child's records knows it. */
	for (size_t i = 0; ch->pid == 0 && i < a->nch; i++)
		if (a->ch[i]->group == ch->group && a->ch[i]->stream == MPLOG_STREAM_LOG)
			ch->pid = a->ch[i]->pid;
	struct mplog__parts parts = {
		.ts = 0, /* now */
		.level = ch->stream == MPLOG_STREAM_STDERR ? MPLOG_WARN : MPLOG_INFO,
		.stream = ch->stream,
		.pid = ch->pid,
		.worker = ch->worker,
		.task = ch->task, /* of the last mark (mark-int.h) */
		.msg = {(const char *)p, (uint32_t)n},
	};
	mplog__emit(a, ch, &parts);
}

/* Take the marks out of the line at pos in ch->in, from ch->clean on, up
 * to its newline or MPLOG_LINE_MAX bytes (where it is cut): each one sets
 * the task of the line, or of the piece of a longer one, it is in (its
 * end comes after the mark). Scanning never goes back before clean, so
 * bytes joined by taking a mark out are not a mark, and where marks and
 * cuts fall does not depend on the read sizes. Returns false when the
 * bytes end in what may be the start of a mark (more bytes decide; at EOF
 * it is plain bytes). */
static bool take_marks(struct mplog__channel *ch, size_t pos, bool eof)
{
	if (ch->clean < pos)
		ch->clean = pos;
	for (;;) {
		uint8_t *d = ch->in.data;
		size_t len = ch->in.len;
		const uint8_t *nl = memchr(d + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - d) : len; /* a mark holds no newline */
		size_t stop = end - pos > MPLOG_LINE_MAX ? pos + MPLOG_LINE_MAX : end;
		if (ch->clean >= stop)
			return true;
		const uint8_t *esc = memchr(d + ch->clean, '\033', stop - ch->clean);
		if (!esc) {
			ch->clean = stop;
			return true;
		}
		size_t at = (size_t)(esc - d), mlen = 0;
		int64_t task = -1;
		enum mplog__mark_scan m = mplog__mark_at(esc, end - at, &mlen, &task);
		if (m == MARK_PARTIAL && !nl && !eof) {
			ch->clean = at;
			return false;
		}
		if (m != MARK_FOUND) {
			ch->clean = at + 1;
			continue;
		}
		memmove(d + at, d + at + mlen, len - at - mlen);
		ch->in.len -= mlen;
		ch->task = task;
		ch->clean = at;
	}
}

static void parse_lines(mplog_aggregator *a, struct mplog__channel *ch, bool eof)
{
	const uint8_t *d = ch->in.data;
	size_t len = ch->in.len, pos = 0;
	while (pos < len) {
		if (!take_marks(ch, pos, eof))
			break; /* a mark may be coming: the line waits for it */
		len = ch->in.len;
		/* A line over MPLOG_LINE_MAX is cut there, wherever its
		 * newline is, and only once a byte past the limit shows it
		 * is longer: the records do not depend on how reads fell. */
		size_t look = len - pos < MPLOG_LINE_MAX + 1 ? len - pos : MPLOG_LINE_MAX + 1;
		const uint8_t *nl = memchr(d + pos, '\n', look);
		size_t n;
		if (nl)
			n = (size_t)(nl - (d + pos));
		else if (len - pos > MPLOG_LINE_MAX || eof)
			n = len - pos < MPLOG_LINE_MAX ? len - pos : MPLOG_LINE_MAX;
		else
			break;
		emit_line(a, ch, d + pos, n);
		pos += n + (nl ? 1 : 0);
	}
	mpk_buf_consume(&ch->in, pos);
	ch->clean = ch->clean > pos ? ch->clean - pos : 0;
}

void mplog__channel_parse(mplog_aggregator *a, struct mplog__channel *ch, bool eof)
{
	if (ch->stream == MPLOG_STREAM_LOG)
		parse_frames(a, ch, eof);
	else
		parse_lines(a, ch, eof);
}
