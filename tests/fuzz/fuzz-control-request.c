/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the control socket's request decoder
 * (libmpguard/src/control-request.c), which every peer of a pool's or a
 * supervisor's control socket reaches with bytes of its choosing. The
 * whole input is one request line. Besides the sanitizers' findings, it
 * aborts when a decoded request breaks the decoder's promises
 * (control-request-int.h), or decodes differently once written back.
 *
 * Run: meson test -C build-fuzz fuzz-control-request (README, Fuzzing).
 */
#include "control-request-int.h"
#include "fuzz-check.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

static const char *verb_name(enum mpg__ctl_verb v)
{
	switch (v) {
	case MPG_CTL_INFO: return "info";
	case MPG_CTL_PTRACE: return "ptrace";
	case MPG_CTL_RESUME: return "resume";
	case MPG_CTL_LOG: return "log";
	}
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	const char *end = line + size;
	struct mpg__ctl_request q;
	int r = mpg__ctl_request_decode(data, size, &q);
	FUZZ_CHECK(q.word == line && q.word_len <= size);
	if (q.arg)
		FUZZ_CHECK(q.arg > line && q.arg + q.arg_len <= end);
	if (r < 0) {
		FUZZ_CHECK(r == -EMSGSIZE || r == -EBADMSG || r == -ENOENT || r == -EINVAL);
		FUZZ_CHECK(q.error && *q.error);
		FUZZ_CHECK(r != -EMSGSIZE || size > MPG_CTL_MAX_REQUEST);
		return 0;
	}
	FUZZ_CHECK(r == 0 && size <= MPG_CTL_MAX_REQUEST);
	FUZZ_CHECK(!memchr(line, '\0', size));
	switch (q.verb) {
	case MPG_CTL_INFO:
		FUZZ_CHECK(q.target == MPG_CTL_NONE && !q.arg && !q.arg_len);
		break;
	case MPG_CTL_LOG:
		FUZZ_CHECK((q.target == MPG_CTL_NONE && !q.arg && !q.arg_len) ||
			   (q.target == MPG_CTL_COUNT && all_digits(q.arg, q.arg_len)));
		break;
	case MPG_CTL_PTRACE:
		FUZZ_CHECK(q.target == MPG_CTL_SLOT || q.target == MPG_CTL_NAME);
		break;
	case MPG_CTL_RESUME:
		FUZZ_CHECK(q.target == MPG_CTL_ALL || q.target == MPG_CTL_SLOT || q.target == MPG_CTL_NAME);
		break;
	default:
		abort();
	}
	if (q.target != MPG_CTL_NONE) {
		FUZZ_CHECK(q.arg && q.arg_len > 0);
		bool is_all = q.arg_len == 3 && memcmp(q.arg, "all", 3) == 0;
		FUZZ_CHECK((q.target == MPG_CTL_ALL) == is_all);
		if (q.verb != MPG_CTL_LOG)
			FUZZ_CHECK((q.target == MPG_CTL_SLOT) == all_digits(q.arg, q.arg_len));
		if (q.target == MPG_CTL_SLOT || q.target == MPG_CTL_COUNT) {
			uint64_t v = 0;
			for (size_t i = 0; i < q.arg_len; i++)
				v = v * 10 + (uint64_t)(q.arg[i] - '0');
			FUZZ_CHECK(v == q.slot);
		}
	}
	/* Written back, it decodes the same: with a CR after an argument that
	 * ends in one (the decoder drops one CR), without one otherwise. */
	char again[MPG_CTL_MAX_REQUEST];
	const char *v = verb_name(q.verb);
	size_t n = strlen(v);
	memcpy(again, v, n);
	if (q.arg) {
		again[n++] = ' ';
		memcpy(again + n, q.arg, q.arg_len);
		n += q.arg_len;
		if (q.arg[q.arg_len - 1] == '\r')
			again[n++] = '\r';
	}
	FUZZ_CHECK(n <= size);
	struct mpg__ctl_request q2;
	FUZZ_CHECK(mpg__ctl_request_decode(again, n, &q2) == 0);
	FUZZ_CHECK(q2.verb == q.verb && q2.target == q.target && q2.slot == q.slot &&
	      q2.arg_len == q.arg_len && (!q.arg || memcmp(q2.arg, q.arg, q.arg_len) == 0));
	return 0;
}
