/* Unit tests of the frame codec shared by every mpkit channel. */
#include "mpk-test.h"
#include "wire-int.h"

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

static Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("codec");
	tcase_add_test(tc, frame_header_roundtrip_is_valid);
	tcase_add_test(tc, frame_header_rejects_garbage);
	tcase_add_test(tc, buffer_and_reader_roundtrip);
	tcase_add_test(tc, reader_overrun_sets_error_and_yields_zero);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(wire_suite)
