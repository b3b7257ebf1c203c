/* SPDX-License-Identifier: MIT */
/* Text that is safe to show on a terminal: the one escaper of the text
 * sink (format-text.c) and of mplog(1)'s human output. Internal; compiled
 * with the JSON string writer (mpk_wire_src) into both libraries, and
 * linked into the tools. */
#pragma once

#include "wire-int.h"

#include <stdbool.h>
#include <stddef.h>

/* Append s (n bytes, any bytes at all) to b so that nothing in it drives
 * a terminal or starts a line, the way journalctl shows what a process
 * wrote; printable text, tabs and well-formed UTF-8 are copied as they are:
 *  - newline and carriage return become \n and \r, the other control
 *    characters (U+0000 to U+001F, DEL) \xNN;
 *  - C1 controls (U+0080 to U+009F: a terminal may take U+009B for an
 *    escape sequence), line and paragraph separators and the bidi
 *    controls that reorder what is shown (U+061C, U+200E, U+200F, U+2028
 *    to U+202E, U+2066 to U+2069) become \uXXXX;
 *  - every byte that does not start a well-formed UTF-8 sequence becomes
 *    \xNN.
 * So the result is valid UTF-8, one line, with no control character. A
 * backslash is copied as it is: the escapes are for a reader's eyes. */
void mpk_text_escape(struct mpk_buf *b, const char *s, size_t n);

/* The length of the longest prefix of s (n bytes) of at most max bytes
 * that does not cut a UTF-8 sequence in two. */
size_t mpk_text_prefix(const char *s, size_t n, size_t max);

/* Whether the environment lets a terminal be coloured: not when NO_COLOR
 * is set and not empty (no-color.org), nor when TERM is "dumb". */
bool mpk_term_color_ok(void);
/* Whether a terminal may be driven with escape sequences (erase a line):
 * not when TERM is "dumb". */
bool mpk_term_smart(void);
