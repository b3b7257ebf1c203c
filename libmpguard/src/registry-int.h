/* SPDX-License-Identifier: MIT */
/* Where running pools register their control sockets, shared by the
 * library (which creates the entries) and the tools (which read them).
 * Internal: compiled into libmpguard and into each tool. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* An entry is "<pid>.<n>.sock": the n-th pool of process pid. */
#define MPG_REGISTRY_SUFFIX ".sock"

/* The environment variable naming the registry directory outright, for
 * pools and tools alike (tests use it to keep to themselves). */
#define MPG_REGISTRY_ENV "MPKIT_REGISTRY"

/* The registry directory: $MPKIT_REGISTRY, else $XDG_RUNTIME_DIR/mpkit,
 * else /tmp/mpkit-<uid> (a variable counts only if it is an absolute
 * path). With create, made (mode 0700) if missing. Either way it must be a
 * directory (not a symlink) owned by this euid with no group or other
 * access, else -EPERM: a directory someone else controls could hand our
 * tools a socket of theirs.
 * Returns 0, -ENAMETOOLONG, -EPERM, or the errno of mkdir/lstat. */
int mpg__registry_dir(char *buf, size_t size, bool create);

/* The same for a given runtime directory (NULL: /tmp/mpkit-<uid>),
 * ignoring the environment: tools look wherever a pool of theirs may
 * have registered, since a pool started in a login session and a tool run
 * through sudo or cron do not share XDG_RUNTIME_DIR. */
int mpg__registry_dir_in(const char *runtime_dir, char *buf, size_t size, bool create);

/* Parse an entry's file name; returns 0 (pid and n set) or -EINVAL. */
int mpg__registry_parse(const char *name, pid_t *pid, unsigned *n);
