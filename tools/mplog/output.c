/* SPDX-License-Identifier: MIT */
/* What happens to each input line: parsed, filtered, then printed as text,
 * passed through as JSON, counted, or kept for tail -n. */
#include "mplog-tool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int mt_ctx_init(struct mt_ctx *c, FILE *out)
{
	*c = (struct mt_ctx){.out = out, .filter.min_level = MPLOG_TRACE};
	c->tok = json_tokener_new();
	return c->tok ? 0 : -ENOMEM;
}

static void ring_free(struct mt_ctx *c)
{
	for (size_t i = 0; i < c->ring_alloc; i++)
		free(c->ring[i]);
	free(c->ring);
	free(c->ring_len);
	c->ring = NULL;
	c->ring_len = NULL;
	c->ring_cap = c->ring_alloc = c->ring_n = c->ring_next = 0;
}

void mt_ctx_free(struct mt_ctx *c)
{
	ring_free(c);
	mt_filter_free(&c->filter);
	mt_stats_free(&c->stats);
	if (c->tok)
		json_tokener_free(c->tok);
	c->tok = NULL;
}

/* A matching record: printed or counted. */
static int emit(struct mt_ctx *c, const struct mt_record *r, const char *line, size_t len)
{
	switch (c->mode) {
	case MT_MODE_TEXT:
		mt_format_text(c->out, r, c->color, c->utc);
		return 0;
	case MT_MODE_ISO:
		mt_format_text_iso(c->out, r, c->color, c->utc);
		return 0;
	case MT_MODE_CAT:
		mt_format_cat(c->out, r);
		return 0;
	case MT_MODE_PRETTY:
		fputs(json_object_to_json_string_ext(r->root, JSON_C_TO_STRING_PRETTY |
								      JSON_C_TO_STRING_SPACED |
								      JSON_C_TO_STRING_NOSLASHESCAPE),
		      c->out);
		fputc('\n', c->out);
		return 0;
	case MT_MODE_JSON: /* passed through as written: nothing lost */
		fwrite(line, 1, len, c->out);
		fputc('\n', c->out);
		return 0;
	case MT_MODE_STATS:
		return mt_stats_add(&c->stats, r);
	}
	return 0;
}

/* Grown as lines come, so a large -n costs only what the file holds. */
static int ring_grow(struct mt_ctx *c)
{
	size_t n = c->ring_alloc ? 2 * c->ring_alloc : 64;
	if (n > c->ring_cap)
		n = c->ring_cap;
	char **ring = realloc(c->ring, (n ? n : 1) * sizeof *ring);
	if (!ring)
		return -ENOMEM;
	c->ring = ring;
	size_t *len = realloc(c->ring_len, (n ? n : 1) * sizeof *len);
	if (!len)
		return -ENOMEM;
	c->ring_len = len;
	for (size_t i = c->ring_alloc; i < n; i++)
		c->ring[i] = NULL;
	c->ring_alloc = n;
	return 0;
}

static int keep(struct mt_ctx *c, const char *line, size_t len)
{
	/* Not full yet: appended at ring_n; full (ring_alloc == ring_cap): wraps. */
	if (c->ring_next == c->ring_alloc && c->ring_alloc < c->ring_cap && ring_grow(c) < 0)
		return -ENOMEM;
	char *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, line, len);
	free(c->ring[c->ring_next]);
	c->ring[c->ring_next] = copy;
	c->ring_len[c->ring_next] = len;
	c->ring_next = (c->ring_next + 1) % c->ring_cap;
	if (c->ring_n < c->ring_cap)
		c->ring_n++;
	return 0;
}

int mt_ctx_line(struct mt_ctx *c, const char *name, uint64_t lineno, const char *line,
		size_t len)
{
	struct mt_record r;
	const char *why;
	if (len == 0)
		return 0; /* blank lines are not records, nor errors */
	int ret = mt_record_parse(c->tok, line, len, &r, &why);
	if (ret == -EINVAL) {
		c->invalid++;
		fprintf(stderr, "mplog: %s:%llu: not a record, skipped: %s\n", name,
			(unsigned long long)lineno, why);
		return 0;
	}
	if (ret < 0)
		return ret;
	if (mt_filter_match(&c->filter, &r)) {
		if (c->ring)
			ret = c->ring_cap ? keep(c, line, len) : 0;
		else
			ret = emit(c, &r, line, len);
	}
	mt_record_clear(&r);
	return ret;
}

int mt_ctx_ring_start(struct mt_ctx *c, size_t n)
{
	ring_free(c);
	c->ring_cap = n;
	/* Non-NULL even for n == 0: it means "keep, don't print". */
	return ring_grow(c) < 0 ? (ring_free(c), -ENOMEM) : 0;
}

/* Print what the ring kept, oldest first (newest first with -r), and
 * stop keeping. */
int mt_ctx_ring_flush(struct mt_ctx *c)
{
	size_t n = c->ring_n, cap = c->ring_cap, first = (c->ring_next + cap - n) % (cap ? cap : 1);
	char **ring = c->ring;
	size_t *ring_len = c->ring_len;
	int ret = 0;
	c->ring = NULL; /* lines below go to the output */
	for (size_t i = 0; i < n && ret == 0; i++) {
		size_t k = (first + (c->reverse ? n - 1 - i : i)) % cap;
		struct mt_record r;
		const char *why;
		ret = mt_record_parse(c->tok, ring[k], ring_len[k], &r, &why);
		if (ret == 0) {
			ret = emit(c, &r, ring[k], ring_len[k]);
			mt_record_clear(&r);
		}
	}
	c->ring = ring;
	c->ring_len = ring_len;
	ring_free(c);
	return ret;
}
