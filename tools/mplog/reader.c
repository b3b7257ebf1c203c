/* SPDX-License-Identifier: MIT */
/* Any fd as a stream of lines: a file, stdin, a pipe, or a socket that a
 * running pool sends its records on. Lines of any length (the buffer
 * grows); a partial last line is held until its newline comes. */
#include "mplog-tool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64u << 10)

int mt_reader_init(struct mt_reader *rd, const char *name)
{
	*rd = (struct mt_reader){0};
	rd->name = strdup(name);
	return rd->name ? 0 : -ENOMEM;
}

void mt_reader_free(struct mt_reader *rd)
{
	free(rd->name);
	free(rd->buf);
	*rd = (struct mt_reader){0};
}

void mt_reader_reset(struct mt_reader *rd)
{
	rd->len = rd->scanned = 0;
	rd->lineno = 0;
}

bool mt_reader_pending(const struct mt_reader *rd)
{
	return rd->len > 0;
}

/* Hand out every complete line; keep the rest at the start of buf. */
static int split(struct mt_reader *rd, struct mt_ctx *c)
{
	size_t start = 0;
	int ret = 0;
	for (;;) {
		/* Only the new bytes are searched: a huge line costs O(n). */
		char *nl = memchr(rd->buf + rd->scanned, '\n', rd->len - rd->scanned);
		if (!nl)
			break;
		size_t end = (size_t)(nl - rd->buf);
		rd->lineno++;
		ret = mt_ctx_line(c, rd->name, rd->lineno, rd->buf + start, end - start);
		start = rd->scanned = end + 1;
		if (ret < 0)
			break;
	}
	memmove(rd->buf, rd->buf + start, rd->len - start);
	rd->len -= start;
	rd->scanned = ret < 0 ? 0 : rd->len;
	return ret;
}

/* Room for n more bytes. */
static int reserve(struct mt_reader *rd, size_t n)
{
	if (rd->cap - rd->len >= n)
		return 0;
	size_t cap = rd->cap ? rd->cap : CHUNK;
	while (cap - rd->len < n)
		cap *= 2;
	char *nb = realloc(rd->buf, cap);
	if (!nb)
		return -ENOMEM;
	rd->buf = nb;
	rd->cap = cap;
	return 0;
}

ssize_t mt_reader_fill(struct mt_reader *rd, int fd, struct mt_ctx *c)
{
	if (reserve(rd, CHUNK) < 0)
		return -ENOMEM;
	ssize_t n;
	do
		n = read(fd, rd->buf + rd->len, rd->cap - rd->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	rd->len += (size_t)n;
	int ret = split(rd, c);
	return ret < 0 ? ret : n;
}

int mt_reader_finish(struct mt_reader *rd, struct mt_ctx *c)
{
	if (!rd->len)
		return 0;
	rd->lineno++;
	int ret = mt_ctx_line(c, rd->name, rd->lineno, rd->buf, rd->len);
	rd->len = rd->scanned = 0;
	return ret;
}

int mt_reader_feed(struct mt_reader *rd, const void *data, size_t len, struct mt_ctx *c)
{
	if (reserve(rd, len) < 0)
		return -ENOMEM;
	if (len)
		memcpy(rd->buf + rd->len, data, len);
	rd->len += len;
	return split(rd, c);
}

int mplog_tool_read_fd(struct mt_ctx *c, int fd, const char *name)
{
	return mplog_tool_read_stream(c, fd, name, NULL, 0);
}

int mplog_tool_read_stream(struct mt_ctx *c, int fd, const char *name, const void *pre,
			   size_t prelen)
{
	struct mt_reader rd;
	int ret = mt_reader_init(&rd, name);
	if (ret == 0 && prelen)
		ret = mt_reader_feed(&rd, pre, prelen, c);
	while (ret == 0) {
		ssize_t n = mt_reader_fill(&rd, fd, c);
		fflush(c->out);
		if (n <= 0) {
			ret = n < 0 ? (int)n : mt_reader_finish(&rd, c);
			break;
		}
	}
	fflush(c->out);
	mt_reader_free(&rd);
	return ret;
}
