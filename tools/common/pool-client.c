/* SPDX-License-Identifier: MIT */
/* Client side of a pool's control socket (see pool-client.h). */
#include "pool-client.h"
#include "registry-int.h"

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int by_pid(const void *a, const void *b)
{
	const struct mpk_pool_ref *x = a, *y = b;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->n < y->n ? -1 : x->n > y->n;
}

struct ref_list {
	struct mpk_pool_ref *v;
	size_t n, cap;
};

static bool listed(const struct ref_list *l, pid_t pid, unsigned n)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].pid == pid && l->v[i].n == n)
			return true;
	return false;
}

/* Add the live pools registered in a registry directory: r is what
 * finding dir returned (mpg__registry_dir*); one that does not exist holds
 * none. */
static int scan_registry(int r, const char *dir, struct ref_list *l, char *err, size_t errlen)
{
	if (r == -ENOENT)
		return 0; /* no pool ever ran there */
	if (r < 0) {
		snprintf(err, errlen, "registry %s: %s%s", dir, strerror(-r),
			 r == -EPERM ? " (it must be a directory of yours, mode 0700)" : "");
		return r;
	}
	DIR *d = opendir(dir);
	if (!d) {
		r = -errno;
		snprintf(err, errlen, "registry %s: %s", dir, strerror(-r));
		return r;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		struct mpk_pool_ref ref;
		if (mpg__registry_parse(e->d_name, &ref.pid, &ref.n) < 0)
			continue;
		if (kill(ref.pid, 0) < 0 && errno == ESRCH)
			continue; /* left behind by a crash; the next pool sweeps it */
		if (listed(l, ref.pid, ref.n))
			continue; /* an older entry in another registry */
		if ((size_t)snprintf(ref.path, sizeof ref.path, "%s/%s", dir, e->d_name) >=
		    sizeof ref.path)
			continue;
		if (l->n == l->cap) {
			size_t cap = l->cap ? 2 * l->cap : 8;
			struct mpk_pool_ref *nv = realloc(l->v, cap * sizeof *nv);
			if (!nv) {
				closedir(d);
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
			l->v = nv;
			l->cap = cap;
		}
		l->v[l->n++] = ref;
	}
	closedir(d);
	return 0;
}

int mpk_pools_list(struct mpk_pool_ref **ret, size_t *count, char *err, size_t errlen)
{
	*ret = NULL;
	*count = 0;
	struct ref_list l = {0};
	char dir[PATH_MAX];
	/* This environment's registry must be sound. */
	int r = scan_registry(mpg__registry_dir(dir, sizeof dir, false), dir, &l, err, errlen);
	if (r < 0)
		goto fail;
	/* Unless the registry was named outright, also where a pool of ours
	 * started with another environment registered: the login session's
	 * runtime directory and the fallback. A registry there that is not
	 * sound (someone else's, or open to others) is passed over: nothing
	 * in it can be trusted. */
	const char *named = getenv(MPG_REGISTRY_ENV);
	if (!named || named[0] != '/') {
		char session[64];
		snprintf(session, sizeof session, "/run/user/%u", (unsigned)geteuid());
		const char *elsewhere[] = {session, NULL};
		for (size_t i = 0; i < sizeof elsewhere / sizeof elsewhere[0]; i++) {
			char other[PATH_MAX];
			int found = mpg__registry_dir_in(elsewhere[i], other, sizeof other, false);
			if (strcmp(other, dir) == 0)
				continue;
			r = scan_registry(found, other, &l, err, errlen);
			if (r == -ENOMEM)
				goto fail;
		}
	}
	if (l.n)
		qsort(l.v, l.n, sizeof *l.v, by_pid);
	*ret = l.v;
	*count = l.n;
	return 0;
fail:
	free(l.v);
	return r;
}

/* Why process pid shows no pool of ours: gone, another user's, or none. */
static void explain_missing(pid_t pid, const char *spec, char *err, size_t errlen)
{
	char proc[32], comm[64] = "";
	snprintf(proc, sizeof proc, "/proc/%d", (int)pid);
	struct stat st;
	if (stat(proc, &st) < 0) {
		snprintf(err, errlen, "no running pool %s: no process %d (see mpattach list)", spec,
			 (int)pid);
		return;
	}
	snprintf(proc, sizeof proc, "/proc/%d/comm", (int)pid);
	FILE *f = fopen(proc, "re");
	if (f) {
		if (fgets(comm, sizeof comm, f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	/* Its effective uid, which a pool checks: /proc/PID itself shows root
	 * for a process that is not dumpable. */
	snprintf(proc, sizeof proc, "/proc/%d/status", (int)pid);
	f = fopen(proc, "re");
	char line[256];
	unsigned ruid, euid;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "Uid: %u %u", &ruid, &euid) == 2) {
			st.st_uid = euid;
			break;
		}
	if (f)
		fclose(f);
	if (st.st_uid != geteuid()) {
		struct passwd *pw = getpwuid(st.st_uid);
		char who[64];
		if (pw)
			snprintf(who, sizeof who, "%s", pw->pw_name);
		else
			snprintf(who, sizeof who, "#%u", (unsigned)st.st_uid);
		snprintf(err, errlen,
			 "no pool %s of yours: process %d (%s) belongs to uid %u (%s), and a pool "
			 "answers its own user only; run %s as that user, e.g. sudo -u %s %s ...",
			 spec, (int)pid, comm, (unsigned)st.st_uid, who,
			 program_invocation_short_name, who, program_invocation_short_name);
		return;
	}
	snprintf(err, errlen,
		 "no running pool %s: process %d (%s) has registered none (not an mpkit "
		 "program, MPKIT_CONTROL=0, or no pool yet)",
		 spec, (int)pid, comm);
}

int mpk_pool_find(const char *spec, struct mpk_pool_ref *ret, char *err, size_t errlen)
{
	pid_t pid = 0;
	unsigned k = 0;
	bool want_k = false;
	if (spec) {
		char *end;
		errno = 0;
		long p = strtol(spec, &end, 10);
		if (*end == '.') {
			const char *s = end + 1;
			unsigned long q = strtoul(s, &end, 10);
			want_k = end != s;
			k = (unsigned)q;
		}
		if (errno || end == spec || *end || p <= 0) {
			snprintf(err, errlen, "bad pool \"%s\": expected PID or PID.N", spec);
			return -EINVAL;
		}
		pid = (pid_t)p;
	}
	struct mpk_pool_ref *v;
	size_t n;
	int r = mpk_pools_list(&v, &n, err, errlen);
	if (r < 0)
		return r;
	size_t found = 0, at = 0;
	for (size_t i = 0; i < n; i++)
		if (!spec || (v[i].pid == pid && (!want_k || v[i].n == k))) {
			if (!found)
				at = i;
			found++;
		}
	if (found == 1) {
		*ret = v[at];
	} else if (!found) {
		size_t others = 0;
		for (size_t i = 0; spec && i < n; i++)
			others += v[i].pid == pid;
		if (others) {
			/* PID.N of a process that runs others: name them. */
			int len = snprintf(err, errlen, "no pool %s: process %d has%s", spec,
					   (int)pid, others == 1 ? " only" : "");
			for (size_t i = 0; i < n && len > 0 && (size_t)len < errlen; i++)
				if (v[i].pid == pid)
					len += snprintf(err + len, errlen - (size_t)len, " %d.%u",
							(int)v[i].pid, v[i].n);
			if (len > 0 && (size_t)len < errlen)
				snprintf(err + len, errlen - (size_t)len, " (see mpattach list)");
		} else if (spec) {
			explain_missing(pid, spec, err, errlen);
		} else {
			snprintf(err, errlen, "no running pool or supervisor found");
		}
		r = -ENOENT;
	} else {
		int len = snprintf(err, errlen, "%zu pools are running; name one:", found);
		for (size_t i = 0; i < n && len > 0 && (size_t)len < errlen; i++)
			if (!spec || v[i].pid == pid)
				len += snprintf(err + len, errlen - (size_t)len, " %d.%u",
						(int)v[i].pid, v[i].n);
		r = -EEXIST;
	}
	free(v);
	return r;
}

int mpk_conn_open(struct mpk_conn *c, const struct mpk_pool_ref *ref, char *err, size_t errlen)
{
	*c = (struct mpk_conn){.fd = -1};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(ref->path) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "%s: path too long", ref->path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, ref->path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int r = -errno;
		snprintf(err, errlen, "pool %d.%u (%s): %s", (int)ref->pid, ref->n, ref->path,
			 strerror(-r));
		mpk_conn_close(c);
		return r;
	}
	/* The directory is ours; the socket's owner must be us too. */
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    cred.uid != geteuid()) {
		snprintf(err, errlen, "pool %d.%u (%s): not served by uid %u", (int)ref->pid, ref->n,
			 ref->path, (unsigned)geteuid());
		mpk_conn_close(c);
		return -EPERM;
	}
	return 0;
}

void mpk_conn_close(struct mpk_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	*c = (struct mpk_conn){.fd = -1};
}

char *mpk_conn_readline(struct mpk_conn *c)
{
	if (c->used) { /* the line handed out last */
		memmove(c->buf, c->buf + c->used, c->len - c->used);
		c->len -= c->used;
		c->used = 0;
	}
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			*nl = '\0';
			c->used = (size_t)(nl - c->buf) + 1;
			return c->buf;
		}
		if (c->cap - c->len < 4096) {
			size_t cap = c->cap ? 2 * c->cap : 65536;
			char *b = realloc(c->buf, cap);
			if (!b)
				return NULL;
			c->buf = b;
			c->cap = cap;
		}
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = 0;
			return NULL;
		}
		c->len += (size_t)n;
	}
}

int mpk_conn_request(struct mpk_conn *c, const char *req, json_object **reply, char *err,
		     size_t errlen)
{
	char line[512];
	int n = snprintf(line, sizeof line, "%s\n", req);
	if (n < 0 || (size_t)n >= sizeof line || strchr(req, '\n')) {
		snprintf(err, errlen, "a request is one line of at most %zu bytes", sizeof line - 2);
		return -EINVAL;
	}
	for (const char *p = line; n > 0;) {
		ssize_t w = send(c->fd, p, (size_t)n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int r = -errno;
			snprintf(err, errlen, "sending to the pool: %s", strerror(-r));
			return r;
		}
		p += w;
		n -= (int)w;
	}
	char *text = mpk_conn_readline(c);
	if (!text) {
		int r = errno ? -errno : -ECONNRESET;
		snprintf(err, errlen, "the pool closed the connection%s%s", errno ? ": " : "",
			 errno ? strerror(errno) : "");
		return r;
	}
	json_object *o = json_tokener_parse(text);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		snprintf(err, errlen, "the pool sent a reply that is not JSON");
		return -EPROTO;
	}
	json_object *ok;
	if (!json_object_object_get_ex(o, "ok", &ok) || !json_object_get_boolean(ok)) {
		json_object *e;
		snprintf(err, errlen, "%s",
			 json_object_object_get_ex(o, "error", &e) ? json_object_get_string(e) :
								      "the pool refused");
		json_object_put(o);
		return 1;
	}
	*reply = o;
	return 0;
}
