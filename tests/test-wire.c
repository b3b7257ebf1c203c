/* SPDX-License-Identifier: MIT */
/* Unit tests of the frame codec shared by every mpkit channel, and of the
 * JSON string writer and text escaper shared by the libraries and the
 * tools. */
#include "mpk-test.h"
#include "json-int.h"
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
	return s;
}

MPK_TEST_MAIN(wire_suite)
