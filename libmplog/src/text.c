/* SPDX-License-Identifier: MIT */
/* Terminal-safe text from any bytes (see text-int.h). */
#include "text-int.h"
#include "json-int.h" /* mpk_utf8_len */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char hex[] = "0123456789abcdef";

/* The code point of a well-formed sequence of len bytes. */
static uint32_t code_point(const unsigned char *p, size_t len)
{
	if (len == 1)
		return p[0];
	uint32_t c = p[0] & (0x7fu >> len);
	for (size_t i = 1; i < len; i++)
		c = c << 6 | (p[i] & 0x3fu);
	return c;
}

/* Shown as \uXXXX: C1 controls, and what changes lines or their order. */
static int hidden(uint32_t c)
{
	return (c >= 0x80 && c <= 0x9f) || c == 0x61c || c == 0x200e || c == 0x200f ||
	       (c >= 0x2028 && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

void mpk_text_escape(struct mpk_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t run = i; /* copy plain ASCII in one go */
		while (run < n && ((p[run] >= 0x20 && p[run] < 0x7f) || p[run] == '\t'))
			run++;
		if (run > i) {
			mpk_buf_put(b, p + i, run - i);
			i = run;
			continue;
		}
		unsigned char c = p[i];
		if (c == '\n' || c == '\r') {
			mpk_buf_put(b, c == '\n' ? "\\n" : "\\r", 2);
			i++;
			continue;
		}
		size_t len = c < 0x80 ? 0 : mpk_utf8_len(p + i, n - i);
		if (!len) { /* a control character, or not UTF-8 */
			char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
			mpk_buf_put(b, e, 4);
			i++;
			continue;
		}
		uint32_t cp = code_point(p + i, len);
		if (hidden(cp)) {
			char e[6] = {'\\', 'u', hex[cp >> 12], hex[cp >> 8 & 15], hex[cp >> 4 & 15],
				     hex[cp & 15]};
			mpk_buf_put(b, e, 6);
		} else {
			mpk_buf_put(b, p + i, len);
		}
		i += len;
	}
}

size_t mpk_text_prefix(const char *s, size_t n, size_t max)
{
	if (n <= max)
		return n;
	size_t k = max;
	/* Back to the start of the sequence the cut falls in. */
	while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80 && max - k < 3)
		k--;
	return k;
}

bool mpk_term_smart(void)
{
	const char *term = getenv("TERM");
	return !(term && strcmp(term, "dumb") == 0);
}

bool mpk_term_color_ok(void)
{
	const char *no = getenv("NO_COLOR");
	return !(no && *no) && mpk_term_smart();
}
