/* SPDX-License-Identifier: MIT */
/* JSON output of the tools: json-c values written with mpkit's one JSON
 * string writer (libmplog/src/json.c). json-c keeps the bytes of the
 * strings it parsed as they were, invalid UTF-8 included, and writes them
 * back so: what a pool or a log file sent is printed as valid JSON here. */
#pragma once

#include <json-c/json.h>
#include <stdio.h>

/* Write o, then a newline, to f. Returns 0, or -ENOMEM / -EIO (errno of
 * the write in errno). */
int mpk_json_print(FILE *f, json_object *o);
