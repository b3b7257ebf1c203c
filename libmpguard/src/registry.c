/* SPDX-License-Identifier: MIT */
/* The registry directory of running pools (see registry-int.h). */
#include "registry-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* dir must be a directory of ours that nobody else may enter. */
static int check_dir(const char *dir, bool create)
{
	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	struct stat st;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return -EPERM;
	return 0;
}

static const char *absolute_env(const char *name)
{
	const char *v = secure_getenv(name); /* none in a setuid program */
	return v && v[0] == '/' ? v : NULL;
}

int mpg__registry_dir(char *buf, size_t size, bool create)
{
	const char *dir = absolute_env(MPG_REGISTRY_ENV);
	if (!dir)
		return mpg__registry_dir_in(absolute_env("XDG_RUNTIME_DIR"), buf, size, create);
	if ((size_t)snprintf(buf, size, "%s", dir) >= size)
		return -ENAMETOOLONG;
	return check_dir(buf, create);
}

int mpg__registry_dir_in(const char *runtime_dir, char *buf, size_t size, bool create)
{
	int n = runtime_dir ? snprintf(buf, size, "%s/mpkit", runtime_dir) :
			      snprintf(buf, size, "/tmp/mpkit-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return check_dir(buf, create);
}

int mpg__registry_parse(const char *name, pid_t *pid, unsigned *n)
{
	char *end;
	errno = 0;
	unsigned long p = strtoul(name, &end, 10);
	if (errno || end == name || *end != '.' || p == 0 || p > 0x7fffffff)
		return -EINVAL;
	const char *second = end + 1;
	unsigned long k = strtoul(second, &end, 10);
	if (errno || end == second || k > 0xffffffffu || strcmp(end, MPG_REGISTRY_SUFFIX) != 0)
		return -EINVAL;
	*pid = (pid_t)p;
	*n = (unsigned)k;
	return 0;
}
