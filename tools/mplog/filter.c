/* SPDX-License-Identifier: MIT */
/* Record filters; all given ones must match (AND). A failed-task record
 * matches --worker/--pid/--task by the failed worker's ids as well as by
 * its sender's; --host and --rank match the resource (where the record
 * was collected: an MPI job's rank). */
#include "mplog-tool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int mt_idset_add(struct mt_idset *s, const char *arg)
{
	const char *p = arg;
	for (;;) {
		char *end;
		errno = 0;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		long long v = strtoll(p, &end, 10);
		if (errno || (*end && *end != ','))
			return -EINVAL;
		long long *nv = realloc(s->v, (s->n + 1) * sizeof *nv);
		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->v[s->n++] = v;
		if (!*end)
			return 0;
		p = end + 1;
	}
}

static bool idset_has(const struct mt_idset *s, long long v)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == v)
			return true;
	return false;
}

/* Empty set: anything; else either id (sender's or failed worker's). */
static bool ids_match(const struct mt_idset *s, long long own, long long mpg)
{
	return !s->n || (own >= 0 && idset_has(s, own)) || (mpg >= 0 && idset_has(s, mpg));
}

int mt_names_add(struct mt_names *s, const char *arg)
{
	const char *p = arg;
	for (;;) {
		size_t n = strcspn(p, ",");
		if (!n)
			return -EINVAL;
		char **nv = realloc(s->v, (s->n + 1) * sizeof *nv);
		if (!nv)
			return -ENOMEM;
		s->v = nv;
		if (!(s->v[s->n] = strndup(p, n)))
			return -ENOMEM;
		s->n++;
		if (!p[n])
			return 0;
		p += n + 1;
	}
}

static bool names_match(const struct mt_names *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], name))
			return true;
	return !s->n;
}

int mt_streams_add(unsigned *streams, const char *arg)
{
	static const char *const names[] = {"log", "stdout", "stderr"};
	const char *p = arg;
	for (;;) {
		size_t n = strcspn(p, ",");
		unsigned i;
		for (i = 0; i < 3; i++)
			if (strlen(names[i]) == n && !strncmp(p, names[i], n))
				break;
		if (i == 3)
			return -EINVAL;
		*streams |= 1u << i;
		if (!p[n])
			return 0;
		p += n + 1;
	}
}

int mt_filter_set_grep(struct mt_filter *f, const char *re, bool icase, char *err, size_t errlen)
{
	if (f->has_grep) {
		regfree(&f->grep);
		f->has_grep = false;
	}
	int r = regcomp(&f->grep, re, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
	if (r) {
		regerror(r, &f->grep, err, errlen);
		regfree(&f->grep);
		return -EINVAL;
	}
	f->has_grep = true;
	return 0;
}

bool mt_filter_match(const struct mt_filter *f, const struct mt_record *r)
{
	if (r->level < f->min_level)
		return false;
	if (f->has_since && r->ts < f->since)
		return false;
	if (f->has_until && r->ts > f->until)
		return false;
	if (f->streams && !(f->streams & (1u << r->stream)))
		return false;
	if (!ids_match(&f->workers, r->worker, r->kind ? r->mpg_worker : -1) ||
	    !ids_match(&f->pids, r->pid, r->kind ? r->mpg_pid : -1) ||
	    !ids_match(&f->tasks, r->task, r->kind ? r->mpg_task : -1))
		return false;
	if (!names_match(&f->channels, r->channel) && !names_match(&f->channels, mt_record_channel(r)))
		return false;
	/* Where it was collected: an MPI job's rank and its host. */
	if (!names_match(&f->hosts, r->res_host) || !ids_match(&f->ranks, r->res_rank, -1))
		return false;
	if (f->has_grep) {
		/* REG_STARTEND: the whole body, NUL bytes included. */
		regmatch_t m = {.rm_so = 0, .rm_eo = (regoff_t)r->body_len};
		if (regexec(&f->grep, r->body, 1, &m, REG_STARTEND) != 0)
			return false;
	}
	return true;
}

void mt_filter_free(struct mt_filter *f)
{
	free(f->workers.v);
	free(f->pids.v);
	free(f->tasks.v);
	for (size_t i = 0; i < f->channels.n; i++)
		free(f->channels.v[i]);
	free(f->channels.v);
	for (size_t i = 0; i < f->hosts.n; i++)
		free(f->hosts.v[i]);
	free(f->hosts.v);
	free(f->ranks.v);
	if (f->has_grep)
		regfree(&f->grep);
	*f = (struct mt_filter){0};
}
