/* SPDX-License-Identifier: MIT */
/* --stats: records per level and per worker, errors, and the pool's failed
 * tasks by kind and by signal; as text or as one JSON object. */
#include "mplog-tool.h"
#include "json-out.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[MT_NKINDS] = {
	"raised", "exited", "signaled", "killed", "timeout", "protocol", "other"};

/* Count one under (name, id) in a small array kept sorted by id/name. */
static int bump(struct mt_count **v, size_t *n, const char *name, long long id)
{
	size_t i = 0;
	for (; i < *n; i++) {
		int c = name ? strcmp((*v)[i].name, name) : ((*v)[i].id > id) - ((*v)[i].id < id);
		if (c == 0) {
			(*v)[i].n++;
			return 0;
		}
		if (c > 0)
			break;
	}
	char num[24];
	if (!name) {
		snprintf(num, sizeof num, "%lld", id);
		name = num;
	}
	char *copy = strdup(name);
	struct mt_count *nv = copy ? realloc(*v, (*n + 1) * sizeof *nv) : NULL;
	if (!nv) {
		free(copy);
		return -ENOMEM;
	}
	memmove(&nv[i + 1], &nv[i], (*n - i) * sizeof *nv);
	nv[i] = (struct mt_count){copy, id, 1};
	*v = nv;
	(*n)++;
	return 0;
}

int mt_stats_add(struct mt_stats *s, const struct mt_record *r)
{
	s->records++;
	s->levels[r->level]++;
	if (r->level >= MPLOG_ERROR)
		s->errors++;
	long long w = mt_record_worker(r);
	int ret = 0;
	if (w >= 0)
		ret = bump(&s->workers, &s->nworkers, NULL, w);
	else
		s->no_worker++;
	if (r->kind) {
		unsigned k = 0;
		while (k < MT_KIND_OTHER && strcmp(kind_names[k], r->kind))
			k++;
		s->kinds[k]++;
		s->failed++;
		if (*r->signal && ret == 0)
			ret = bump(&s->signals, &s->nsignals, r->signal, 0);
	}
	return ret;
}

static void print_json(const struct mt_stats *s, uint64_t invalid, FILE *out)
{
	json_object *o = json_object_new_object(), *levels = json_object_new_object(),
		    *workers = json_object_new_object(), *failed = json_object_new_object(),
		    *signals = json_object_new_object();
	json_object_object_add(o, "records", json_object_new_uint64(s->records));
	json_object_object_add(o, "invalid_lines", json_object_new_uint64(invalid));
	json_object_object_add(o, "errors", json_object_new_uint64(s->errors));
	for (int l = MPLOG_TRACE; l <= MPLOG_FATAL; l++)
		json_object_object_add(levels, mplog_level_name((mplog_level)l),
				       json_object_new_uint64(s->levels[l]));
	json_object_object_add(o, "levels", levels);
	for (size_t i = 0; i < s->nworkers; i++)
		json_object_object_add(workers, s->workers[i].name,
				       json_object_new_uint64(s->workers[i].n));
	json_object_object_add(workers, "none", json_object_new_uint64(s->no_worker));
	json_object_object_add(o, "workers", workers);
	json_object_object_add(failed, "total", json_object_new_uint64(s->failed));
	for (int k = 0; k < MT_NKINDS; k++)
		json_object_object_add(failed, kind_names[k], json_object_new_uint64(s->kinds[k]));
	json_object_object_add(o, "failed_tasks", failed);
	for (size_t i = 0; i < s->nsignals; i++)
		json_object_object_add(signals, s->signals[i].name,
				       json_object_new_uint64(s->signals[i].n));
	json_object_object_add(o, "signals", signals);
	/* A write error shows in ferror(out), which main() checks. */
	if (mpk_json_print(out, o) == -ENOMEM)
		fprintf(stderr, "mplog: out of memory\n");
	json_object_put(o);
}

void mt_stats_print(const struct mt_stats *s, uint64_t invalid, bool json, FILE *out)
{
	if (json) {
		print_json(s, invalid, out);
		return;
	}
	fprintf(out, "records        %llu\n", (unsigned long long)s->records);
	fprintf(out, "invalid lines  %llu\n", (unsigned long long)invalid);
	fprintf(out, "errors         %llu (error and fatal records)\n",
		(unsigned long long)s->errors);
	fputs("by level\n", out);
	for (int l = MPLOG_TRACE; l <= MPLOG_FATAL; l++)
		fprintf(out, "  %-12s %llu\n", mplog_level_name((mplog_level)l),
			(unsigned long long)s->levels[l]);
	fputs("by worker\n", out);
	for (size_t i = 0; i < s->nworkers; i++)
		fprintf(out, "  %-12s %llu\n", s->workers[i].name,
			(unsigned long long)s->workers[i].n);
	fprintf(out, "  %-12s %llu\n", "none", (unsigned long long)s->no_worker);
	fprintf(out, "failed tasks   %llu\n", (unsigned long long)s->failed);
	for (int k = 0; k < MT_NKINDS; k++)
		fprintf(out, "  %-12s %llu\n", kind_names[k], (unsigned long long)s->kinds[k]);
	if (s->nsignals)
		fputs("by signal\n", out);
	for (size_t i = 0; i < s->nsignals; i++)
		fprintf(out, "  %-12s %llu\n", s->signals[i].name,
			(unsigned long long)s->signals[i].n);
}

void mt_stats_free(struct mt_stats *s)
{
	for (size_t i = 0; i < s->nworkers; i++)
		free(s->workers[i].name);
	for (size_t i = 0; i < s->nsignals; i++)
		free(s->signals[i].name);
	free(s->workers);
	free(s->signals);
	*s = (struct mt_stats){0};
}
