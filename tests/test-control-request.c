/* SPDX-License-Identifier: MIT */
/* Unit tests of the control socket's request decoder
 * (libmpguard/src/control-request.c): valid requests, every truncation of
 * them, and garbage. Each input sits in a buffer of exactly its length,
 * so that a read past it shows under ASan and valgrind. */
#include "mpk-test.h"
#include "control-request-int.h"

#include <stdint.h>

/* Decode the first len bytes of s from a copy of exactly that size. */
static int decode(const char *s, size_t len, struct mpg__ctl_request *req)
{
	char *copy = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, s, len);
	int r = mpg__ctl_request_decode(copy, len, req);
	/* What the request points to lies within the line. */
	if (req->arg)
		ck_assert(req->arg >= copy && req->arg + req->arg_len <= copy + len);
	ck_assert(req->word == copy && req->word_len <= len);
	if (r < 0) {
		ck_assert_ptr_nonnull(req->error);
	} else {
		ck_assert(req->verb >= MPG_CTL_INFO && req->verb <= MPG_CTL_LOG);
		ck_assert(!req->arg || !memchr(req->arg, '\0', req->arg_len));
		/* Rebased on the caller's string, for the checks below. */
		if (req->arg)
			req->arg = s + (req->arg - copy);
	}
	req->word = s;
	free(copy);
	return r;
}

static int decode_str(const char *s, struct mpg__ctl_request *req)
{
	return decode(s, strlen(s), req);
}

START_TEST(valid_requests_decode)
{
	struct mpg__ctl_request q;
	ck_assert_int_eq(decode_str("info", &q), 0);
	ck_assert_int_eq(q.verb, MPG_CTL_INFO);
	ck_assert_int_eq(q.target, MPG_CTL_NONE);
	ck_assert_ptr_null(q.arg);
	ck_assert_int_eq(decode_str("log", &q), 0);
	ck_assert_int_eq(q.verb, MPG_CTL_LOG);
	ck_assert_int_eq(decode_str("info\r", &q), 0); /* CRLF clients */
	ck_assert_int_eq(q.verb, MPG_CTL_INFO);

	ck_assert_int_eq(decode_str("ptrace 0", &q), 0);
	ck_assert_int_eq(q.verb, MPG_CTL_PTRACE);
	ck_assert_int_eq(q.target, MPG_CTL_SLOT);
	ck_assert_uint_eq(q.slot, 0);
	ck_assert_int_eq(decode_str("ptrace 007", &q), 0);
	ck_assert_uint_eq(q.slot, 7);
	ck_assert_int_eq(decode_str("ptrace 4294967295\r", &q), 0);
	ck_assert_int_eq(q.target, MPG_CTL_SLOT);
	ck_assert_uint_eq(q.slot, UINT32_MAX);
	ck_assert_int_eq(decode_str("resume all", &q), 0);
	ck_assert_int_eq(q.verb, MPG_CTL_RESUME);
	ck_assert_int_eq(q.target, MPG_CTL_ALL);
	ck_assert_int_eq(decode_str("resume 12", &q), 0);
	ck_assert_int_eq(q.target, MPG_CTL_SLOT);
	ck_assert_uint_eq(q.slot, 12);

	/* Anything else is a service's name, spaces and any bytes included. */
	static const char *const names[] = {"fetcher", "my service", "x.y", "-1", "+1", " 1",
					    "1 ", "all ", "ALL", "op\xe9s", "\x01\x7f\xff"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char line[64];
		snprintf(line, sizeof line, "ptrace %s", names[i]);
		ck_assert_int_eq(decode_str(line, &q), 0);
		ck_assert_int_eq(q.target, MPG_CTL_NAME);
		ck_assert_uint_eq(q.arg_len, strlen(names[i]));
		ck_assert_int_eq(memcmp(q.arg, names[i], q.arg_len), 0);
	}
	/* The longest line there may be. */
	char longest[MPG_CTL_MAX_REQUEST + 1];
	memcpy(longest, "resume ", 7);
	memset(longest + 7, 'n', MPG_CTL_MAX_REQUEST - 7);
	ck_assert_int_eq(decode(longest, MPG_CTL_MAX_REQUEST, &q), 0);
	ck_assert_uint_eq(q.arg_len, MPG_CTL_MAX_REQUEST - 7);
}
END_TEST

START_TEST(every_truncation_is_an_error_or_a_shorter_request)
{
	static const char *const valid[] = {"info", "log", "ptrace 12", "resume all", "resume 3",
					    "ptrace fetcher", "resume my service\r"};
	struct mpg__ctl_request q;
	for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
		const char *v = valid[i];
		size_t len = strlen(v), wlen = strcspn(v, " \r");
		ck_assert_int_eq(decode(v, len, &q), 0);
		for (size_t k = 0; k < len; k++) {
			int r = decode(v, k, &q);
			if (k < wlen) {
				/* a part of a verb is none */
				ck_assert_msg(r == -ENOENT, "\"%.*s\": %d", (int)k, v, r);
			} else if (k <= wlen + 1) {
				/* the verb alone, or with its space: well-formed only
				 * for a verb without an argument */
				bool needs_arg = strncmp(v, "ptrace", 6) == 0 ||
						 strncmp(v, "resume", 6) == 0;
				ck_assert_msg(needs_arg ? r == -EINVAL : r == 0, "\"%.*s\": %d", (int)k,
					      v, r);
			} else {
				/* a shorter argument, or "al" as a name */
				ck_assert_msg(r == 0, "\"%.*s\": %d", (int)k, v, r);
				ck_assert_uint_eq(q.arg_len, k - wlen - 1 - (v[k - 1] == '\r'));
				if (strncmp(v + wlen + 1, "all", k - wlen - 1) == 0 && k - wlen - 1 < 3)
					ck_assert_int_eq(q.target, MPG_CTL_NAME);
			}
		}
	}
}
END_TEST

START_TEST(garbage_is_refused_with_a_reason)
{
	struct mpg__ctl_request q;
	static const struct {
		const char *line;
		size_t len;
		int err;
	} bad[] = {
		{"", 0, -ENOENT},
		{"\r", 1, -ENOENT},
		{"INFO", 4, -ENOENT},
		{" info", 5, -ENOENT},
		{"inf", 3, -ENOENT},
		{"infos", 5, -ENOENT},
		{"info ", 5, -EINVAL},       /* takes no argument */
		{"info x", 6, -EINVAL},
		{"log all", 7, -EINVAL},
		{"ptrace", 6, -EINVAL},      /* needs one */
		{"ptrace ", 7, -EINVAL},
		{"ptrace \r", 8, -EINVAL},
		{"resume", 6, -EINVAL},
		{"ptrace all", 10, -EINVAL}, /* one at a time */
		{"ptrace 4294967296", 17, -EINVAL},
		{"resume 99999999999999999999999", 30, -EINVAL},
		{"info\0", 5, -EBADMSG},
		{"ptrace 1\0", 9, -EBADMSG},
		{"ptrace a\0b", 10, -EBADMSG},
		{"\0info", 5, -EBADMSG},
		{"info\r\r", 6, -ENOENT},    /* one CR only */
		{"info\n", 5, -ENOENT},      /* the framing's, not the line's */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int r = decode(bad[i].line, bad[i].len, &q);
		ck_assert_msg(r == bad[i].err, "case %zu: %d, not %d", i, r, bad[i].err);
		ck_assert_ptr_nonnull(q.error);
		ck_assert_uint_le(q.word_len, bad[i].len);
	}
	/* Too long, even if well-formed. */
	char big[MPG_CTL_MAX_REQUEST + 2];
	memcpy(big, "resume ", 7);
	memset(big + 7, '1', sizeof big - 7);
	ck_assert_int_eq(decode(big, MPG_CTL_MAX_REQUEST + 1, &q), -EMSGSIZE);
	ck_assert_int_eq(decode(big, sizeof big, &q), -EMSGSIZE);
	/* The word of an unknown request is what the reply echoes. */
	ck_assert_int_eq(decode_str("frob nicate", &q), -ENOENT);
	ck_assert_uint_eq(q.word_len, 4);
}
END_TEST

START_TEST(random_bytes_never_upset_it)
{
	uint64_t x = 0x2545f4914f6cdd1du;
	char line[MPG_CTL_MAX_REQUEST + 8];
	static const char *const starts[] = {"", "info", "log", "ptrace ", "resume "};
	for (int i = 0; i < 20000; i++) {
		const char *st = starts[i % 5];
		size_t n = strlen(st);
		memcpy(line, st, n);
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t len = n + x % 16;
		for (size_t k = n; k < len; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* digits, spaces, CR, NUL and others, often */
			static const char pick[] = "0123456789 \r\0al\xff";
			line[k] = x & 1 ? pick[(x >> 1) % (sizeof pick - 1)] : (char)(x >> 8);
		}
		struct mpg__ctl_request q;
		(void)decode(line, len, &q);
	}
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("control-request");
	TCase *tc = tcase_create("decode");
	tcase_add_test(tc, valid_requests_decode);
	tcase_add_test(tc, every_truncation_is_an_error_or_a_shorter_request);
	tcase_add_test(tc, garbage_is_refused_with_a_reason);
	tcase_add_test(tc, random_bytes_never_upset_it);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(make_suite)
