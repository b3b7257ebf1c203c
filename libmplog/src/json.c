/* SPDX-License-Identifier: MIT */
/* JSON strings from any bytes (see json-int.h). */
#include "json-int.h"

size_t mpk_utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

void mpk_json_string(struct mpk_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	mpk_buf_put_u8(b, '"');
	size_t i = 0;
	while (i < n) {
		size_t run = i; /* copy plain ASCII in one go */
		while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		if (run > i) {
			mpk_buf_put(b, p + i, run - i);
			i = run;
			continue;
		}
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			mpk_buf_put(b, e, 2);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			const char *e = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r"
				      : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
			if (e) {
				mpk_buf_put(b, e, 2);
			} else {
				char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
				mpk_buf_put(b, u, 6);
			}
			i++;
		} else {
			size_t len = mpk_utf8_len(p + i, n - i);
			if (len) {
				mpk_buf_put(b, p + i, len);
				i += len;
			} else {
				mpk_buf_put(b, "\xef\xbf\xbd", 3); /* U+FFFD */
				i++;
			}
		}
	}
	mpk_buf_put_u8(b, '"');
}
