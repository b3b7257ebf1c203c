/* SPDX-License-Identifier: MIT */
/* Helpers for the libmplog suites: a callback sink that collects records,
 * forking children connected to an aggregator, reaping them. */
#pragma once

#include "mpk-test.h"

#include <mplog.h>
#include <pthread.h>

struct got {
	int level, pid, worker, stream, line;
	int64_t task;
	char *msg;
	size_t len;
	char *channel, *file, *func;
	char *kvs; /* "k=v;k=v;" */
};

struct collector {
	pthread_mutex_t m;
	struct got *v;
	size_t n, cap;
};

static inline char *xstrdup(const char *s)
{
	char *d = strdup(s);
	ck_assert_ptr_nonnull(d);
	return d;
}

static inline void collect(const mplog_record *r, void *userdata)
{
	struct collector *c = userdata;
	pthread_mutex_lock(&c->m);
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->v = realloc(c->v, c->cap * sizeof *c->v);
	}
	struct got *g = &c->v[c->n++];
	size_t len;
	const char *msg = mplog_record_message(r, &len);
	g->msg = malloc(len + 1);
	memcpy(g->msg, msg, len + 1);
	g->len = len;
	g->level = mplog_record_level(r);
	g->pid = mplog_record_pid(r);
	g->worker = mplog_record_worker(r);
	g->task = mplog_record_task(r);
	g->stream = mplog_record_stream(r);
	g->line = mplog_record_line(r);
	g->channel = strdup(mplog_record_channel(r));
	g->file = strdup(mplog_record_file(r));
	g->func = strdup(mplog_record_function(r));
	size_t kl = 1;
	for (size_t i = 0; i < mplog_record_kv_count(r); i++) {
		const char *k, *v;
		mplog_record_kv(r, i, &k, &v);
		kl += strlen(k) + strlen(v) + 2;
	}
	g->kvs = calloc(1, kl);
	for (size_t i = 0; i < mplog_record_kv_count(r); i++) {
		const char *k, *v;
		mplog_record_kv(r, i, &k, &v);
		strcat(strcat(strcat(strcat(g->kvs, k), "="), v), ";");
	}
	pthread_mutex_unlock(&c->m);
}

static inline void collector_free(struct collector *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].msg);
		free(c->v[i].channel);
		free(c->v[i].file);
		free(c->v[i].func);
		free(c->v[i].kvs);
	}
	free(c->v);
	c->v = NULL;
	c->n = c->cap = 0;
}

/* An aggregator with a collecting callback sink. */
static inline mplog_aggregator *new_collecting(struct collector *c)
{
	*c = (struct collector){.m = PTHREAD_MUTEX_INITIALIZER};
	mplog_aggregator *a;
	mplog_sink *s;
	ck_assert_int_eq(mplog_aggregator_new(&a), 0);
	ck_assert_int_eq(mplog_sink_new_callback(collect, c, &s), 0);
	ck_assert_int_eq(mplog_aggregator_add_sink(a, s), 0);
	return a;
}

typedef int (*child_fn)(int arg);

/* Fork a child connected to a: runs fn(arg) and exits with its result. */
static inline pid_t spawn_child(mplog_aggregator *a, const char *name, int worker, unsigned capture,
			 child_fn fn, int arg)
{
	mplog_child_fds fds;
	ck_assert_int_eq(mplog_aggregator_add_child(a, name, worker, capture, &fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (mplog_child_setup(&fds, worker, 0, NULL) < 0)
			_exit(100);
		int r = fn(arg);
		fflush(stdout);
		_exit(r);
	}
	mplog_child_fds_close(&fds);
	ck_assert_int_eq(mplog_aggregator_set_pid(a, fds.id, pid), 0);
	return pid;
}

static inline void reap_ok(pid_t pid)
{
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status 0x%x", pid, st);
}
