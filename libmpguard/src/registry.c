/* The registry directory of running pools (see registry-int.h). */
#include "registry-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mpg__registry_dir(char *buf, size_t size, bool create)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n = xdg && xdg[0] == '/' ? snprintf(buf, size, "%s/mpkit", xdg) :
				       snprintf(buf, size, "/tmp/mpkit-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	if (create && mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	struct stat st;
	if (lstat(buf, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
		return -EPERM;
	return 0;
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
