/* SPDX-License-Identifier: MIT */
/* Client side of a pool's control socket (see libmpguard/src/control.c):
 * find registered pools, connect, send a request, read JSON replies.
 * Shared by mpattach and mplog. */
#pragma once

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct mpk_pool_ref {
	pid_t pid;    /* the process that runs the pool */
	unsigned n;   /* its n-th pool */
	char path[PATH_MAX];
};

struct mpk_conn {
	int fd;
	char *buf;    /* bytes read, starting with the last line returned */
	size_t len, cap;
	size_t used;  /* length of that line, dropped at the next read */
};

/* Registered pools whose process is alive, sorted by pid then n. *ret is
 * malloc'd (free it). Returns 0 or a negative errno, with a message in err. */
int mpk_pools_list(struct mpk_pool_ref **ret, size_t *n, char *err, size_t errlen);

/* The pool named by spec ("PID" or "PID.N"), or with spec NULL the only
 * running pool. Returns 0, or -ENOENT / -EEXIST (several, say which) with
 * a message in err. */
int mpk_pool_find(const char *spec, struct mpk_pool_ref *ret, char *err, size_t errlen);

/* Connect; returns 0 or a negative errno with a message in err. */
int mpk_conn_open(struct mpk_conn *c, const struct mpk_pool_ref *ref, char *err, size_t errlen);
void mpk_conn_close(struct mpk_conn *c);

/* Send a request line and parse the one-line JSON reply: 0 with *reply
 * set (json_object_put() it); 1 when the pool answered "ok": false, with
 * its "error" text in err; or a negative errno with a message in err. */
int mpk_conn_request(struct mpk_conn *c, const char *req, json_object **reply, char *err,
		     size_t errlen);

/* The next line (without '\n', NUL-terminated, valid until the next call);
 * NULL at EOF or on error (errno set, 0 at EOF). */
char *mpk_conn_readline(struct mpk_conn *c);
