/* SPDX-License-Identifier: MIT */
/* The one JSON string writer of mpkit: the libraries' JSON lines, the
 * control socket's replies and the tools' JSON output all go through it.
 * Internal; compiled with the frame codec (mpk_wire_src) into both
 * libraries, and linked into the tools. */
#pragma once

#include "wire-int.h"

#include <stddef.h>

/* Append s (n bytes, any bytes at all) to b as a JSON string with its
 * quotes. The result is always valid JSON and valid UTF-8:
 *  - '"' and '\' are escaped with a backslash;
 *  - control characters (U+0000 to U+001F) and DEL are escaped: \n \t \r
 *    \b \f, the others as \u00XX;
 *  - every byte that does not start a well-formed UTF-8 sequence (stray
 *    continuation bytes, overlong forms, surrogates, code points above
 *    U+10FFFF, a sequence cut short) becomes U+FFFD, written as its UTF-8
 *    bytes, one per such byte: the text stays readable and its length in
 *    characters does not shrink;
 *  - everything else, well-formed UTF-8 included, is copied as it is. */
void mpk_json_string(struct mpk_buf *b, const char *s, size_t n);

/* Length of the well-formed UTF-8 sequence at p (n > 0 bytes left), 0 if
 * the byte at p starts none. */
size_t mpk_utf8_len(const unsigned char *p, size_t n);
