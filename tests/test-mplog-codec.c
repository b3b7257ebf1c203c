/* SPDX-License-Identifier: MIT */
/* Unit tests of libmplog's record codec (record bodies, fragments), of
 * its JSON string escaping and of the channel parser, against the internal
 * functions. */
#include "mpk-test.h"
#include "aggregator-int.h"
#include "record-int.h"

static const mplog_kv kvs[] = {{"alpha", "1"}, {"", ""}, {"key with spaces", "v\nw"}};

static struct mplog__rec_in sample(void)
{
	return (struct mplog__rec_in){
		.ts = UINT64_C(1732360680123456789),
		.level = MPLOG_NOTICE,
		.stream = MPLOG_STREAM_LOG,
		.pid = 1234,
		.worker = 7,
		.task = INT64_C(1) << 40,
		.line = 99,
		.file = {"src/x.c", 7},
		.func = {"fn", 2},
		.msg = {"hello\0world", 11},
		.kv = kvs,
		.nkv = 3,
	};
}

static uint8_t *encode(const struct mplog__rec_in *in, size_t *len)
{
	*len = mplog__rec_size(in);
	uint8_t *b = malloc(*len);
	ck_assert_ptr_nonnull(b);
	mplog__rec_encode(in, b);
	return b;
}

START_TEST(record_roundtrip_keeps_every_field_and_key_value)
{
	struct mplog__rec_in in = sample();
	size_t len;
	uint8_t *b = encode(&in, &len);
	struct mplog__rec r;
	ck_assert_int_eq(mplog__rec_decode(b, len, &r), 0);
	ck_assert(r.ts == in.ts);
	ck_assert_int_eq(r.level, MPLOG_NOTICE);
	ck_assert_int_eq(r.pid, 1234);
	ck_assert_int_eq(r.worker, 7);
	ck_assert(r.task == INT64_C(1) << 40);
	ck_assert_uint_eq(r.line, 99);
	ck_assert_uint_eq(r.file.n, 7);
	ck_assert_int_eq(memcmp(r.file.p, "src/x.c", 7), 0);
	ck_assert_int_eq(memcmp(r.func.p, "fn", 2), 0);
	ck_assert_uint_eq(r.msg.n, 11);
	ck_assert_int_eq(memcmp(r.msg.p, "hello\0world", 11), 0);
	ck_assert_uint_eq(r.nkv, 3);
	size_t it = 0;
	struct mplog__str k, v;
	for (int i = 0; i < 3; i++) {
		ck_assert(mplog__rec_next_kv(&r, &it, &k, &v));
		ck_assert_uint_eq(k.n, strlen(kvs[i].key));
		ck_assert_int_eq(memcmp(k.p, kvs[i].key, k.n), 0);
		ck_assert_uint_eq(v.n, strlen(kvs[i].value));
		ck_assert_int_eq(memcmp(v.p, kvs[i].value, v.n), 0);
	}
	ck_assert(!mplog__rec_next_kv(&r, &it, &k, &v));
	free(b);
}
END_TEST

START_TEST(record_decode_rejects_every_truncation_and_trailing_bytes)
{
	struct mplog__rec_in in = sample();
	size_t len;
	uint8_t *b = encode(&in, &len);
	struct mplog__rec r;
	for (size_t n = 0; n < len; n++)
		ck_assert_int_eq(mplog__rec_decode(b, n, &r), -EBADMSG);
	uint8_t *longer = calloc(1, len + 1);
	memcpy(longer, b, len);
	ck_assert_int_eq(mplog__rec_decode(longer, len + 1, &r), -EBADMSG);
	free(longer);
	free(b);
}
END_TEST

START_TEST(record_decode_rejects_bad_level_stream_flags_and_lengths)
{
	struct mplog__rec_in in = sample();
	size_t len;
	uint8_t *b = encode(&in, &len);
	struct mplog__rec r;
	static const size_t offsets[] = {8, 9, 10, 11}; /* level, stream, flags, reserved */
	for (size_t i = 0; i < 4; i++) {
		uint8_t saved = b[offsets[i]];
		b[offsets[i]] = 0xee;
		ck_assert_int_eq(mplog__rec_decode(b, len, &r), -EBADMSG);
		b[offsets[i]] = saved;
	}
	for (size_t off = 32; off < MPLOG_REC_FIXED; off += 4) { /* nkv, lengths */
		uint32_t saved, huge = 0xfffffff0u;
		memcpy(&saved, b + off, 4);
		memcpy(b + off, &huge, 4);
		ck_assert_int_eq(mplog__rec_decode(b, len, &r), -EBADMSG);
		memcpy(b + off, &saved, 4);
	}
	ck_assert_int_eq(mplog__rec_decode(b, len, &r), 0);
	free(b);
}
END_TEST

START_TEST(record_decode_survives_random_bytes)
{
	uint8_t buf[256];
	unsigned seed = 12345;
	struct mplog__rec r;
	int accepted = 0;
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(rand_r(&seed) % sizeof buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)rand_r(&seed);
		if (round % 2) { /* plausible header, random rest */
			memset(buf + 8, 0, 4);
			memset(buf + 32, 0, n > 48 ? 16 : 0);
		}
		if (mplog__rec_decode(buf, n, &r) == 0) {
			accepted++;
			ck_assert(r.level <= MPLOG_FATAL);
			ck_assert((size_t)(r.msg.p + r.msg.n - (const char *)buf) <= n);
		}
	}
	(void)accepted;
}
END_TEST

START_TEST(fragment_decode_checks_its_header)
{
	uint8_t b[64] = {0};
	uint32_t h[5] = {42, 7, 1, 3, MPLOG_REC_FIXED + 10};
	memcpy(b, h, sizeof h);
	struct mplog__frag f;
	ck_assert_int_eq(mplog__frag_decode(b, sizeof b, &f), 0);
	ck_assert_uint_eq(f.pid, 42);
	ck_assert_uint_eq(f.seq, 7);
	ck_assert_uint_eq(f.len, sizeof b - MPLOG_FRAG_HDR);
	ck_assert_int_eq(mplog__frag_decode(b, MPLOG_FRAG_HDR, &f), -EBADMSG); /* no data */
	ck_assert_int_eq(mplog__frag_decode(b, 10, &f), -EBADMSG);
	uint32_t bad[][5] = {
		{42, 7, 3, 3, 100},                   /* index >= count */
		{42, 7, 0, 1, 100},                   /* one fragment is no fragment */
		{42, 7, 0, 2, MPLOG_RECORD_MAX + 1},  /* too long */
		{42, 7, 0, 2, 5},                     /* shorter than a record */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memcpy(b, bad[i], sizeof bad[i]);
		ck_assert_int_eq(mplog__frag_decode(b, sizeof b, &f), -EBADMSG);
	}
}
END_TEST

/* Captured output cut into records (mplog__channel_parse on a stdout
 * channel), fed in the reads given; the lengths of the records. */
struct lens {
	size_t v[8], n;
	char msg[8][160];
};

static void add_len(const mplog_record *r, void *userdata)
{
	struct lens *l = userdata;
	ck_assert_uint_lt(l->n, 8);
	snprintf(l->msg[l->n], sizeof l->msg[0], "%s", r->msg);
	l->v[l->n++] = r->msg_len;
}

static struct lens parsed(mplog_stream stream, const char *data, const size_t *reads,
			  size_t nreads)
{
	static struct lens l;
	l = (struct lens){0};
	mplog_aggregator *a;
	mplog_sink *s;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_callback(add_len, &l, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	struct mplog__channel *ch = calloc(1, sizeof *ch);
	ck_assert_ptr_nonnull(ch);
	*ch = (struct mplog__channel){.id = 1, .group = 1, .fd = -1,
				      .stream = stream, .name = strdup("out")};
	for (size_t i = 0, off = 0; i < nreads; off += reads[i++]) {
		mpk_buf_put(&ch->in, data + off, reads[i]);
		mplog__channel_parse(a, ch, false);
	}
	mplog__channel_parse(a, ch, true);
	mplog__channel_free(ch);
	mplog_aggregator_free(a);
	return l;
}

static struct lens lines_of(const char *data, const size_t *reads, size_t nreads)
{
	return parsed(MPLOG_STREAM_STDOUT, data, reads, nreads);
}

/* Found by fuzzing: a line over 64 KiB whose newline came in the same read
 * was one record of any length, and a line of exactly 64 KiB whose newline
 * came in the next read gave an empty record more. */
START_TEST(captured_lines_are_cut_at_64k_however_the_reads_fall)
{
	const size_t max = 64u << 10, len = 70000;
	char *d = malloc(len + 1);
	ck_assert_ptr_nonnull(d);
	memset(d, 'a', len);
	d[len] = '\n';
	size_t whole[] = {len + 1}, two[] = {60000, len + 1 - 60000};
	struct lens l = lines_of(d, whole, 1);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_uint_eq(l.v[0], max);
	ck_assert_uint_eq(l.v[1], len - max);
	l = lines_of(d, two, 2);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_uint_eq(l.v[0], max);
	ck_assert_uint_eq(l.v[1], len - max);
	/* Exactly 64 KiB and its newline, in one read or two: one record. */
	d[max] = '\n';
	size_t one[] = {max + 1}, split[] = {max, 1};
	l = lines_of(d, one, 1);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_uint_eq(l.v[0], max);
	l = lines_of(d, split, 2);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_uint_eq(l.v[0], max);
	free(d);
}
END_TEST

/* A header that is garbage but claims more bytes than came before EOF:
 * the records written after it were thrown away with it (the parser waited
 * for the rest of a frame that can never come). */
START_TEST(records_after_a_garbage_header_are_kept_at_eof)
{
	struct mplog__rec_in in = sample();
	in.nkv = 0;
	size_t blen = mplog__rec_size(&in);
	struct mpk_frame_header fake, h;
	mpk_frame_header_init(&fake, MPLOG_FRAME_RECORD, 4000, 0);
	mpk_frame_header_init(&h, MPLOG_FRAME_RECORD, (uint32_t)blen, 0);
	size_t len = 2 * sizeof h + blen;
	char *d = malloc(len);
	ck_assert_ptr_nonnull(d);
	memcpy(d, &fake, sizeof fake);
	memcpy(d + sizeof fake, &h, sizeof h);
	mplog__rec_encode(&in, (uint8_t *)d + 2 * sizeof h);
	size_t one[] = {len}, bytewise[256];
	ck_assert_uint_le(len, 256);
	for (size_t i = 0; i < len; i++)
		bytewise[i] = 1;
	for (int k = 0; k < 2; k++) {
		struct lens l = k ? parsed(MPLOG_STREAM_LOG, d, bytewise, len)
				  : parsed(MPLOG_STREAM_LOG, d, one, 1);
		ck_assert_uint_eq(l.n, 2);
		ck_assert_ptr_nonnull(strstr(l.msg[0], "invalid bytes skipped (16 bytes)"));
		ck_assert_str_eq(l.msg[1], "hello"); /* "hello\0world" */
	}
	free(d);
}
END_TEST

static Suite *codec_suite(void)
{
	Suite *s = suite_create("mplog-codec");
	TCase *tc = tcase_create("codec");
	tcase_add_test(tc, record_roundtrip_keeps_every_field_and_key_value);
	tcase_add_test(tc, record_decode_rejects_every_truncation_and_trailing_bytes);
	tcase_add_test(tc, record_decode_rejects_bad_level_stream_flags_and_lengths);
	tcase_add_test(tc, record_decode_survives_random_bytes);
	tcase_add_test(tc, fragment_decode_checks_its_header);
	tcase_add_test(tc, captured_lines_are_cut_at_64k_however_the_reads_fall);
	tcase_add_test(tc, records_after_a_garbage_header_are_kept_at_eof);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(codec_suite)
