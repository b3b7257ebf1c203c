/* SPDX-License-Identifier: MIT */
/* Unit tests of the frame codec shared by every mpkit channel, of the
 * JSON string writer and text escaper shared by the libraries and the
 * tools, and of the log ring's writer and reader (without an aggregator). */
#include "mpk-test.h"
#include "json-int.h"
#include "ring-int.h"
#include "text-int.h"
#include "wire-int.h"

#include <stdint.h>

START_TEST(frame_header_roundtrip_is_valid)
{
	struct mpk_frame_header h;
	mpk_frame_header_init(&h, 7, 1234, 3);
	ck_assert_int_eq(mpk_frame_header_check(&h, MPK_FRAME_MAX_BODY), 0);
	ck_assert_uint_eq(h.type, 7);
	ck_assert_uint_eq(h.length, 1234);
	ck_assert_uint_eq(h.nfds, 3);
}
END_TEST

START_TEST(frame_header_rejects_garbage)
{
	struct mpk_frame_header h;
	mpk_frame_header_init(&h, 1, 10, 0);
	h.magic ^= 1;
	ck_assert_int_eq(mpk_frame_header_check(&h, MPK_FRAME_MAX_BODY), -EBADMSG);
	mpk_frame_header_init(&h, 1, 10, 0);
	h.version = 99;
	ck_assert_int_eq(mpk_frame_header_check(&h, MPK_FRAME_MAX_BODY), -EPROTONOSUPPORT);
	mpk_frame_header_init(&h, 1, MPK_FRAME_MAX_BODY + 1, 0);
	ck_assert_int_eq(mpk_frame_header_check(&h, MPK_FRAME_MAX_BODY), -EMSGSIZE);
	mpk_frame_header_init(&h, 1, 10, MPK_FRAME_MAX_FDS + 1);
	ck_assert_int_eq(mpk_frame_header_check(&h, MPK_FRAME_MAX_BODY), -EPROTO);
	mpk_frame_header_init(&h, 1, 10, 0);
	h.reserved = 1;
	ck_assert_int_eq(mpk_frame_header_check(&h, MPK_FRAME_MAX_BODY), -EPROTO);
}
END_TEST

START_TEST(buffer_and_reader_roundtrip)
{
	struct mpk_buf b = {0};
	mpk_buf_put_u8(&b, 0xab);
	mpk_buf_put_u32(&b, 0xdeadbeef);
	mpk_buf_put_u64(&b, UINT64_C(0x0123456789abcdef));
	for (int i = 0; i < 10000; i++) /* forces several reallocations */
		mpk_buf_put(&b, "xyz", 3);
	ck_assert(!b.oom);
	struct mpk_reader r;
	mpk_reader_init(&r, b.data, b.len);
	ck_assert_uint_eq(mpk_get_u8(&r), 0xab);
	ck_assert_uint_eq(mpk_get_u32(&r), 0xdeadbeef);
	ck_assert(mpk_get_u64(&r) == UINT64_C(0x0123456789abcdef));
	const char *x = mpk_get_bytes(&r, 30000);
	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(memcmp(x, "xyzxyz", 6), 0);
	ck_assert(!r.err);
	ck_assert_uint_eq(r.left, 0);
	mpk_buf_consume(&b, 13);
	ck_assert_uint_eq(b.len, 30000);
	mpk_buf_free(&b);
}
END_TEST

START_TEST(reader_overrun_sets_error_and_yields_zero)
{
	uint8_t bytes[5] = {1, 2, 3, 4, 5};
	struct mpk_reader r;
	mpk_reader_init(&r, bytes, sizeof bytes);
	ck_assert_uint_eq(mpk_get_u32(&r), 0x04030201);
	ck_assert_uint_eq(mpk_get_u32(&r), 0); /* only one byte left */
	ck_assert(r.err);
	ck_assert_ptr_null(mpk_get_bytes(&r, 1)); /* sticky */
	mpk_reader_init(&r, bytes, sizeof bytes);
	ck_assert_ptr_null(mpk_get_bytes(&r, SIZE_MAX));
	ck_assert(r.err);
}
END_TEST


static void json_is(const char *in, size_t n, const char *want)
{
	struct mpk_buf b = {0};
	mpk_json_string(&b, in, n);
	mpk_buf_put_u8(&b, 0);
	ck_assert_str_eq((const char *)b.data, want);
	mpk_buf_free(&b);
}

START_TEST(json_strings_escape_controls_and_replace_invalid_utf8)
{
	json_is("", 0, "\"\"");
	json_is("plain", 5, "\"plain\"");
	json_is("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
	json_is("\n\t\r\b\f\x01\x1f\x7f", 8, "\"\\n\\t\\r\\b\\f\\u0001\\u001f\\u007f\"");
	json_is("nul\0x", 5, "\"nul\\u0000x\"");
	json_is("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
	json_is("\xff", 1, "\"\xef\xbf\xbd\"");
	json_is("op\xe9s", 4, "\"op\xef\xbf\xbds\"");                  /* Latin-1 */
	json_is("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");         /* overlong */
	json_is("\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* surrogate */
	json_is("\xf4\x90\x80\x80", 4,
		"\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* > U+10FFFF */
	json_is("\xe2\x82", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");         /* cut short */
	json_is("ok\xc3", 3, "\"ok\xef\xbf\xbd\"");
}
END_TEST

/* An independent check of the output: a JSON string (RFC 8259) in strict
 * UTF-8 (RFC 3629), decoded to code points rather than matched by ranges.
 * Returns the number of input bytes it stands for, or -1 if it is bad. */
static long json_string_check(const unsigned char *p, size_t n)
{
	if (n < 2 || p[0] != '"' || p[n - 1] != '"')
		return -1;
	long chars = 0;
	for (size_t i = 1; i < n - 1;) {
		unsigned c = p[i];
		if (c < 0x20 || c == '"' || c == 0x7f)
			return -1; /* raw control, quote or DEL: we escape all of them */
		if (c == '\\') {
			if (i + 1 >= n - 1)
				return -1;
			unsigned char e = p[i + 1];
			if (e == 'u') {
				if (i + 6 > n - 1)
					return -1;
				for (int k = 2; k < 6; k++)
					if (!strchr("0123456789abcdef", p[i + k]) || !p[i + k])
						return -1;
				i += 6;
			} else if (strchr("\"\\/bfnrt", e) && e) {
				i += 2;
			} else {
				return -1;
			}
			chars++;
			continue;
		}
		int len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
			  (c & 0xf8) == 0xf0 ? 4 : 0;
		if (!len || i + (size_t)len > n - 1)
			return -1;
		uint32_t cp = len == 1 ? c : c & (0xffu >> (len + 1));
		for (int k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return -1;
			cp = cp << 6 | (p[i + k] & 0x3fu);
		}
		static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
		if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return -1;
		/* U+FFFD stands for one byte of input, unless the input had it */
		i += (size_t)len;
		chars += cp == 0xfffd ? 1 : len;
	}
	return chars;
}

static void check_any(const unsigned char *in, size_t n)
{
	struct mpk_buf b = {0};
	mpk_json_string(&b, (const char *)in, n);
	ck_assert(!b.oom);
	long k = json_string_check(b.data, b.len);
	/* Every input byte is accounted for, except that an input U+FFFD
	 * (3 bytes) counts as one: allow for it. */
	int fffd = 0;
	for (size_t i = 0; i + 2 < n; i++)
		fffd += in[i] == 0xef && in[i + 1] == 0xbf && in[i + 2] == 0xbd;
	ck_assert_msg(k >= 0 && (size_t)k + 2u * (size_t)fffd == n,
		      "bad JSON for %zu bytes %02x %02x %02x %02x: %.*s", n, n > 0 ? in[0] : 0,
		      n > 1 ? in[1] : 0, n > 2 ? in[2] : 0, n > 3 ? in[3] : 0, (int)b.len, b.data);
	mpk_buf_free(&b);
}

START_TEST(json_strings_are_valid_for_any_bytes)
{
	unsigned char in[8];
	/* Every string of one and two bytes; three-byte ones whose lead byte
	 * starts a 3- or 4-byte sequence, around the continuation range. */
	static const unsigned char third[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff};
	for (unsigned a = 0; a < 256; a++) {
		in[0] = (unsigned char)a;
		check_any(in, 1);
		for (unsigned b = 0; b < 256; b++) {
			in[1] = (unsigned char)b;
			check_any(in, 2);
			for (size_t c = 0; a >= 0xe0 && b >= 0x70 && b < 0xc8 && c < sizeof third; c++) {
				in[2] = third[c];
				check_any(in, 3);
			}
		}
	}
	/* Random strings, biased towards bytes of multibyte sequences. */
	uint64_t x = 0x9e3779b97f4a7c15u;
	for (int i = 0; i < 20000; i++) {
		size_t n = 1 + i % 8;
		for (size_t k = 0; k < n; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			in[k] = (unsigned char)(x & 1 ? 0x80 | (x >> 8) : x >> 8);
		}
		check_any(in, n);
	}
}
END_TEST

static void text_is(const char *in, size_t n, const char *want)
{
	struct mpk_buf b = {0};
	mpk_text_escape(&b, in, n);
	mpk_buf_put_u8(&b, 0);
	ck_assert_msg(!b.oom && strcmp((char *)b.data, want) == 0, "got \"%s\", want \"%s\"",
		      (char *)b.data, want);
	mpk_buf_free(&b);
}

START_TEST(text_escape_shows_controls_and_keeps_printable_utf8)
{
	text_is("plain\ttab \\ back", 16, "plain\ttab \\ back");
	text_is("a\nb\rc\033[2J\0d\x7f", 12, "a\\nb\\rc\\x1b[2J\\x00d\\x7f");
	text_is("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	/* C1 (U+009B is a CSI), bidi overrides, line separator. */
	text_is("\xc2\x9b" "1\xc2\xa0\xe2\x80\xae\xe2\x80\xa8\xe2\x81\xa6\xd8\x9c", 16,
		"\\u009b1\xc2\xa0\\u202e\\u2028\\u2066\\u061c");
	/* Not UTF-8: stray continuation, overlong, surrogate, cut short. */
	text_is("\x80\xc0\xaf\xed\xa0\x80\xe2\x82", 8, "\\x80\\xc0\\xaf\\xed\\xa0\\x80\\xe2\\x82");
	ck_assert_uint_eq(mpk_text_prefix("abc", 3, 40), 3);
	ck_assert_uint_eq(mpk_text_prefix("ab\xc3\xa9", 4, 3), 2); /* not inside the é */
	ck_assert_uint_eq(mpk_text_prefix("ab\xc3\xa9", 4, 4), 4);
	ck_assert_uint_eq(mpk_text_prefix("\xe2\x82\xac\xe2\x82\xac", 6, 5), 3);
}
END_TEST

/* ---- the log ring ---------------------------------------------------------- */

/* A ring as the aggregator makes it, a writer's view of it (a second
 * mapping, as a child's), and a reader on the first. */
struct ring_pair {
	struct mplog__ring w;
	struct mplog__ring_reader *r;
	int wake[2]; /* the log pipe: wake-up frames land in wake[0] */
};

static void ring_pair_open(struct ring_pair *p)
{
	struct mplog__ring ring;
	int fd;
	ck_assert_int_eq(mplog__ring_create(&ring, &fd), 0);
	ck_assert_int_eq(mplog__ring_attach(fd, &p->w), 0);
	close(fd);
	p->r = malloc(sizeof *p->r);
	ck_assert_ptr_nonnull(p->r);
	mplog__ring_reader_init(p->r, &ring);
	ck_assert_int_eq(pipe2(p->wake, O_CLOEXEC | O_NONBLOCK), 0);
}

static void ring_pair_close(struct ring_pair *p)
{
	mplog__ring_reader_free(p->r);
	mplog__ring_unmap(&p->w);
	close(p->wake[0]);
	close(p->wake[1]);
}

static void fill_entry(uint8_t *e, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		e[i] = (uint8_t)(seed * 131 + i * 7);
}

static void expect_entry(struct mplog__ring_reader *r, bool eof, unsigned kind, size_t len,
			 unsigned seed)
{
	uint8_t want[MPLOG_BODY_MAX];
	struct mplog__ring_item it;
	ck_assert_int_eq(mplog__ring_next(r, eof, &it), RING_ENTRY);
	ck_assert_uint_eq(it.kind, kind);
	ck_assert_uint_eq(it.len, len);
	fill_entry(want, len, seed);
	ck_assert(memcmp(it.data, want, len) == 0);
}

START_TEST(ring_gives_back_each_entry_whole_and_in_order_lap_after_lap)
{
	struct ring_pair p;
	ring_pair_open(&p);
	uint8_t e[MPLOG_BODY_MAX];
	/* Sizes across slot boundaries, up to the largest, over many laps;
	 * the reader takes a few at a time, so the ring wraps while full. */
	static const size_t sizes[] = {1, 55, 56, 57, 112, 113, 200, 1000, 4079, MPLOG_BODY_MAX};
	unsigned put = 0, got = 0;
	while (got < 20000) {
		for (int k = 0; k < 7; k++, put++) {
			size_t len = sizes[put % 10];
			fill_entry(e, len, put);
			int r = mplog__ring_put(&p.w, p.wake[1], put % 3 ? RING_RECORD : RING_FRAGMENT,
						e, len, true);
			if (r == 1) /* full: the reader catches up first */
				break;
			ck_assert_int_eq(r, 0);
		}
		for (int k = 0; k < 5 && got < put; k++, got++)
			expect_entry(p.r, false, got % 3 ? RING_RECORD : RING_FRAGMENT, sizes[got % 10],
				     got);
		mplog__ring_publish(p.r);
	}
	ring_pair_close(&p);
}
END_TEST

/* The writer's header for pos (as ring.c writes it). */
static uint64_t hdr(uint64_t pos, unsigned kind, uint32_t len)
{
	return (uint64_t)((uint32_t)kind << 24 | len) << 32 | (uint32_t)pos;
}

static void put_ok(struct ring_pair *p, size_t len, unsigned seed)
{
	uint8_t e[MPLOG_BODY_MAX];
	fill_entry(e, len, seed);
	ck_assert_int_eq(mplog__ring_put(&p->w, p->wake[1], RING_RECORD, e, len, false), 0);
}

static void expect_skip(struct mplog__ring_reader *r, bool eof, enum mplog__ring_got got,
			size_t len)
{
	struct mplog__ring_item it;
	ck_assert_int_eq(mplog__ring_next(r, eof, &it), got);
	ck_assert_uint_eq(it.len, len);
}

START_TEST(ring_reader_skips_what_a_writer_scribbled_and_goes_on)
{
	struct ring_pair p;
	ring_pair_open(&p);
	struct mplog__ring_shared *sh = p.w.sh;
	/* Entries 0..5 (3 slots each: 120 bytes), then each one spoiled. */
	for (unsigned i = 0; i < 6; i++)
		put_ok(&p, 120, i);
	put_ok(&p, 10, 99);
	atomic_store(&sh->slot[0].hdr, hdr(0, 7, 120));              /* no such kind */
	atomic_store(&sh->slot[3].hdr, hdr(3, RING_RECORD, 5000));   /* too long */
	atomic_store(&sh->slot[6].hdr, hdr(6, RING_RECORD, 0));      /* empty */
	atomic_store(&sh->slot[10].hdr, hdr(10, RING_RECORD, 120));  /* a start among continuations */
	atomic_store(&sh->slot[12].hdr, hdr(12, RING_RECORD, 1680)); /* longer than its continuations */
	atomic_store(&sh->slot[15].hdr, hdr(15, RING_CONT, 0));      /* a continuation first */
	/* Each spoiled start is one slot of garbage, and so is each slot
	 * after it up to the next valid start: slots 0..17. */
	for (int k = 0; k < 18; k++)
		expect_skip(p.r, false, RING_GARBAGE, MPLOG_RING_SLOT);
	expect_entry(p.r, false, RING_RECORD, 10, 99);
	ck_assert_int_eq(mplog__ring_next(p.r, false, &(struct mplog__ring_item){0}), RING_NONE);
	/* A head out of all bounds at EOF: the reader stays within one lap. */
	atomic_store(&sh->head, UINT64_MAX / 3);
	ck_assert_int_eq(mplog__ring_next(p.r, true, &(struct mplog__ring_item){0}), RING_LOST);
	ck_assert_int_eq(mplog__ring_next(p.r, true, &(struct mplog__ring_item){0}), RING_NONE);
	ring_pair_close(&p);
}
END_TEST

START_TEST(ring_at_eof_gives_what_was_committed_after_a_writer_that_died_mid_entry)
{
	struct ring_pair p;
	ring_pair_open(&p);
	struct mplog__ring_shared *sh = p.w.sh;
	put_ok(&p, 100, 1);
	/* A writer reserves 3 slots and dies before it commits: nothing of
	 * it is written, or only its continuations. */
	atomic_fetch_add(&sh->head, 3);
	put_ok(&p, 300, 2);
	atomic_fetch_add(&sh->head, 2);
	atomic_store(&sh->slot[10].hdr, hdr(10, RING_CONT, 0));
	put_ok(&p, 50, 3);
	/* Alive, the reader waits at the first hole. */
	expect_entry(p.r, false, RING_RECORD, 100, 1);
	ck_assert_int_eq(mplog__ring_next(p.r, false, &(struct mplog__ring_item){0}), RING_NONE);
	ck_assert_int_eq(mplog__ring_next(p.r, false, &(struct mplog__ring_item){0}), RING_NONE);
	/* At EOF: each hole is reported, every committed entry is taken. */
	expect_skip(p.r, true, RING_LOST, 3 * MPLOG_RING_SLOT);
	expect_entry(p.r, true, RING_RECORD, 300, 2);
	expect_skip(p.r, true, RING_LOST, 2 * MPLOG_RING_SLOT);
	expect_entry(p.r, true, RING_RECORD, 50, 3);
	ck_assert_int_eq(mplog__ring_next(p.r, true, &(struct mplog__ring_item){0}), RING_NONE);
	ring_pair_close(&p);
}
END_TEST

START_TEST(ring_wakes_a_sleeping_reader_once_and_an_awake_one_never)
{
	struct ring_pair p;
	ring_pair_open(&p);
	uint8_t f[64];
	/* A new ring's reader counts as asleep: the first entry wakes it. */
	put_ok(&p, 10, 1);
	put_ok(&p, 10, 2);
	ck_assert_int_eq(read(p.wake[0], f, sizeof f), 16);
	mplog__ring_disarm(p.r);
	put_ok(&p, 10, 3);
	ck_assert_int_eq(read(p.wake[0], f, sizeof f), -1); /* awake: no frame */
	ck_assert_int_eq(errno, EAGAIN);
	/* About to sleep with entries there: it knows without a frame. */
	ck_assert(mplog__ring_arm(p.r));
	for (unsigned i = 1; i <= 3; i++)
		expect_entry(p.r, false, RING_RECORD, 10, i);
	ck_assert(!mplog__ring_arm(p.r));
	put_ok(&p, 10, 4);
	put_ok(&p, 10, 5);
	ck_assert_int_eq(read(p.wake[0], f, sizeof f), 16); /* one frame for both */
	struct mpk_frame_header h;
	memcpy(&h, f, sizeof h);
	ck_assert_int_eq(mpk_frame_header_check(&h, 0), 0);
	ck_assert_uint_eq(h.type, MPLOG_FRAME_WAKE);
	/* Gone: writers are told to use the pipe. */
	struct mplog__ring_reader *r = p.r;
	p.r = NULL;
	mplog__ring_reader_free(r);
	ck_assert_int_eq(mplog__ring_put(&p.w, p.wake[1], RING_RECORD, f, 10, false),
			 MPLOG_RING_CLOSED);
	ring_pair_close(&p);
}
END_TEST

START_TEST(ring_positions_count_on_past_2_to_the_64)
{
	struct ring_pair p;
	ring_pair_open(&p);
	struct mplog__ring_shared *sh = p.w.sh;
	/* Positions are 64-bit counters: start the ring just short of their
	 * wrap, as if 2^64 slots had gone by. */
	uint64_t start = UINT64_MAX - 3; /* the hole straddles the wrap */
	atomic_store(&sh->head, start);
	atomic_store(&sh->tail, start);
	p.r->tail = p.r->published = start;
	put_ok(&p, 100, 1);
	atomic_fetch_add(&sh->head, 2); /* a writer died mid-entry */
	put_ok(&p, 200, 2);
	expect_entry(p.r, false, RING_RECORD, 100, 1);
	ck_assert_int_eq(mplog__ring_next(p.r, false, &(struct mplog__ring_item){0}), RING_NONE);
	expect_skip(p.r, true, RING_LOST, 2 * MPLOG_RING_SLOT);
	expect_entry(p.r, true, RING_RECORD, 200, 2);
	ck_assert_int_eq(mplog__ring_next(p.r, true, &(struct mplog__ring_item){0}), RING_NONE);
	ring_pair_close(&p);
}
END_TEST

static Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("codec");
	tcase_add_test(tc, frame_header_roundtrip_is_valid);
	tcase_add_test(tc, frame_header_rejects_garbage);
	tcase_add_test(tc, buffer_and_reader_roundtrip);
	tcase_add_test(tc, reader_overrun_sets_error_and_yields_zero);
	tcase_add_test(tc, json_strings_escape_controls_and_replace_invalid_utf8);
	tcase_add_test(tc, json_strings_are_valid_for_any_bytes);
	tcase_add_test(tc, text_escape_shows_controls_and_keeps_printable_utf8);
	suite_add_tcase(s, tc);
	tc = tcase_create("ring");
	tcase_add_test(tc, ring_gives_back_each_entry_whole_and_in_order_lap_after_lap);
	tcase_add_test(tc, ring_reader_skips_what_a_writer_scribbled_and_goes_on);
	tcase_add_test(tc, ring_at_eof_gives_what_was_committed_after_a_writer_that_died_mid_entry);
	tcase_add_test(tc, ring_wakes_a_sleeping_reader_once_and_an_awake_one_never);
	tcase_add_test(tc, ring_positions_count_on_past_2_to_the_64);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(wire_suite)
