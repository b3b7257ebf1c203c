/* SPDX-License-Identifier: MIT */
/* The text form's promise, for the fuzz targets that make one (the text
 * sink, mplog's human output): whatever the record held, the text without
 * colour is valid UTF-8 with no control character but newlines and tabs,
 * no C1 control, and every line after the first (a continuation) starts
 * with a space, so nothing a child sent can look like a record. */
#pragma once

#include "fuzz-check.h"
#include "json-int.h" /* mpk_utf8_len */

#include <stddef.h>

static inline void check_safe_text(const unsigned char *t, size_t n)
{
	FUZZ_CHECK(n && t[n - 1] == '\n');
	for (size_t i = 0; i < n;) {
		unsigned char c = t[i];
		if (c == '\n') {
			FUZZ_CHECK(i + 1 == n || t[i + 1] == ' ');
			i++;
			continue;
		}
		FUZZ_CHECK(c >= 0x20 || c == '\t');
		FUZZ_CHECK(c != 0x7f);
		size_t k = mpk_utf8_len(t + i, n - i);
		FUZZ_CHECK(k);
		FUZZ_CHECK(!(c == 0xc2 && t[i + 1] <= 0x9f)); /* U+0080 to U+009F */
		i += k;
	}
}
