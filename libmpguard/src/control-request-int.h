/* SPDX-License-Identifier: MIT */
/* Requests of the control socket (control.c), decoded without any I/O so
 * that the decoder can be tested and fuzzed alone
 * (tests/fuzz/fuzz-control-request.c). Depends on libc only. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* A request line holds at most this many bytes, without its '\n'. */
#define MPG_CTL_MAX_REQUEST 255u

enum mpg__ctl_verb {
	MPG_CTL_INFO = 1, /* "info": the pool or supervisor and its slots */
	MPG_CTL_PTRACE,   /* "ptrace W": let the peer ptrace one slot */
	MPG_CTL_RESUME,   /* "resume W|all": end pauses */
	MPG_CTL_LOG,      /* "log [N]": stream the log, the last N records first */
};

enum mpg__ctl_arg {
	MPG_CTL_NONE = 0, /* info, log */
	MPG_CTL_ALL,      /* "all" (resume only) */
	MPG_CTL_SLOT,     /* a slot number: decimal digits only */
	MPG_CTL_NAME,     /* anything else: a service's name */
	MPG_CTL_COUNT,    /* log's count of records, in slot: decimal digits only */
};

struct mpg__ctl_request {
	enum mpg__ctl_verb verb;
	enum mpg__ctl_arg target;
	uint32_t slot;     /* MPG_CTL_SLOT, MPG_CTL_COUNT */
	/* The argument as sent (after the verb and one space), pointing into
	 * the line; NULL and 0 without one. Never holds a NUL byte. */
	const char *arg;
	size_t arg_len;
	/* On failure: the first word as sent (pointing into the line, maybe
	 * empty), and why, a static string. */
	const char *word;
	size_t word_len;
	const char *error;
};

/* Decode one request line of len bytes (its '\n' left out; a final '\r'
 * is dropped): "VERB" or "VERB ARG", one space between. ARG "all" is
 * MPG_CTL_ALL, a string of decimal digits a slot number, and anything
 * else (but empty) a name; log's optional ARG is a count (digits only). Returns 0 with *req set, or with req->word and
 * req->error set:
 *   -EMSGSIZE  longer than MPG_CTL_MAX_REQUEST
 *   -EBADMSG   a NUL byte in the line
 *   -ENOENT    an unknown verb
 *   -EINVAL    an argument missing, extra or out of range
 * The line need not be NUL-terminated; nothing is written to it. */
int mpg__ctl_request_decode(const void *line, size_t len, struct mpg__ctl_request *req);
