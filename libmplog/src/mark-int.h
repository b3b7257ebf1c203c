/* SPDX-License-Identifier: MIT */
/* Output marks: "the lines from here on are task N's", written by a child
 * into its captured stdout and stderr themselves (mplog_mark_output()),
 * where nothing can reorder them with the lines around them (a mark on
 * another pipe could be read before or after them). The aggregator takes
 * them out of the bytes and stamps the lines with the task. The form is
 * an APC string, which no normal output holds and terminals ignore:
 *   ESC _ mpkit:task=N ESC \      (N: -1, or 1 to 19 decimal digits)
 * Internal to libmplog, never installed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MPLOG_MARK_PREFIX     "\033_mpkit:task="
#define MPLOG_MARK_PREFIX_LEN (sizeof MPLOG_MARK_PREFIX - 1)
#define MPLOG_MARK_MAX        (MPLOG_MARK_PREFIX_LEN + 19 + 2)

/* The mark of task into dst (MPLOG_MARK_MAX bytes); its length. */
size_t mplog__mark_format(char *dst, int64_t task);

enum mplog__mark_scan { MARK_NONE, MARK_FOUND, MARK_PARTIAL };
/* Is there a mark at p (n bytes, *p == ESC)? MARK_FOUND: its length in
 * *len and its task in *task; MARK_PARTIAL: the n bytes are the start of
 * one (more bytes decide); MARK_NONE: not a mark. */
enum mplog__mark_scan mplog__mark_at(const uint8_t *p, size_t n, size_t *len, int64_t *task);
