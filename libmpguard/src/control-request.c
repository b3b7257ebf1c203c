/* SPDX-License-Identifier: MIT */
/* Decoding the control socket's request lines (see control-request-int.h):
 * pure, no I/O, no allocation, for the control thread and the fuzzer. */
#include "control-request-int.h"

#include <errno.h>
#include <string.h>

struct verb {
	const char *name;
	enum mpg__ctl_verb verb;
	int takes; /* 0: no argument, 1: one slot or name, 2: that or "all", 3: an optional count */
};

static const struct verb verbs[] = {
	{"info", MPG_CTL_INFO, 0},
	{"ptrace", MPG_CTL_PTRACE, 1},
	{"resume", MPG_CTL_RESUME, 2},
	{"log", MPG_CTL_LOG, 3},
};

static int fail(struct mpg__ctl_request *req, int err, const char *why)
{
	req->error = why;
	return err;
}

/* Decimal digits only (no sign, no space: strtoul would take both) and no
 * more than fit a slot number; 1 if all digits, 0 if not, -1 if too big. */
static int parse_slot(const char *s, size_t n, uint32_t *ret)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	*ret = (uint32_t)v;
	return 1;
}

int mpg__ctl_request_decode(const void *data, size_t len, struct mpg__ctl_request *req)
{
	const char *line = data;
	*req = (struct mpg__ctl_request){.word = line};
	if (len > MPG_CTL_MAX_REQUEST)
		return fail(req, -EMSGSIZE, "request too long");
	if (len && line[len - 1] == '\r') /* a client that ends lines with CRLF */
		len--;
	if (memchr(line, '\0', len))
		return fail(req, -EBADMSG, "NUL byte in the request");
	const char *space = memchr(line, ' ', len);
	size_t wlen = space ? (size_t)(space - line) : len;
	req->word_len = wlen;
	const struct verb *v = NULL;
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (strlen(verbs[i].name) == wlen && memcmp(verbs[i].name, line, wlen) == 0)
			v = &verbs[i];
	if (!v)
		return fail(req, -ENOENT, "unknown request");
	req->verb = v->verb;
	if (!v->takes || (v->takes == 3 && !space)) {
		if (space)
			return fail(req, -EINVAL, "takes no argument");
		return 0;
	}
	if (v->takes == 3) { /* "log N": the last N records first */
		req->arg = space + 1;
		req->arg_len = len - wlen - 1;
		if (parse_slot(req->arg, req->arg_len, &req->slot) != 1 || !req->arg_len)
			return fail(req, -EINVAL, "takes a count of records");
		req->target = MPG_CTL_COUNT;
		return 0;
	}
	if (!space || wlen + 1 == len)
		return fail(req, -EINVAL, v->takes == 2 ? "needs a worker, a service or all" :
							  "needs a worker or a service");
	req->arg = space + 1;
	req->arg_len = len - wlen - 1;
	if (req->arg_len == 3 && memcmp(req->arg, "all", 3) == 0) {
		if (v->takes != 2)
			return fail(req, -EINVAL, "takes one worker or service, not all");
		req->target = MPG_CTL_ALL;
		return 0;
	}
	int r = parse_slot(req->arg, req->arg_len, &req->slot);
	if (r < 0)
		return fail(req, -EINVAL, "worker number out of range");
	req->target = r ? MPG_CTL_SLOT : MPG_CTL_NAME;
	return 0;
}
