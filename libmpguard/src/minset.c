/* SPDX-License-Identifier: MIT */
/* The smallest of the values of the jobs in a pool (time limits, progress
 * intervals), kept as jobs come and go rather than found by walking every
 * job at each dispatcher round: with 40 000 submitted tasks queued, that
 * walk was most of the dispatcher's time and held the pool lock meanwhile.
 * Few distinct values are in use at once, so a small array of (value,
 * count) serves. */
#include "pool-int.h"

#include <errno.h>
#include <stdlib.h>

int mpg__minset_add(struct mpg__minset *s, uint64_t v)
{
	for (size_t i = 0; i < s->len; i++) {
		if (s->e[i].v == v) {
			s->e[i].n++;
			return 0;
		}
	}
	if (s->len == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4;
		void *e = realloc(s->e, cap * sizeof *s->e);
		if (!e)
			return -ENOMEM;
		s->e = e;
		s->cap = cap;
	}
	s->e[s->len++] = (struct mpg__minset_entry){v, 1};
	return 0;
}

void mpg__minset_del(struct mpg__minset *s, uint64_t v)
{
	for (size_t i = 0; i < s->len; i++) {
		if (s->e[i].v == v) {
			if (--s->e[i].n == 0)
				s->e[i] = s->e[--s->len];
			return;
		}
	}
}

uint64_t mpg__minset_min(const struct mpg__minset *s)
{
	uint64_t m = 0;
	for (size_t i = 0; i < s->len; i++)
		if (!m || s->e[i].v < m)
			m = s->e[i].v;
	return m;
}

void mpg__minset_free(struct mpg__minset *s)
{
	free(s->e);
	*s = (struct mpg__minset){0};
}
