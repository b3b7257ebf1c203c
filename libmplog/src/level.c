/* SPDX-License-Identifier: MIT */
/* Severity level names, shared by the library, its sinks and the tools. */
#include "mplog.h"

#include <errno.h>
#include <stddef.h>
#include <strings.h>

static const char *const level_names[] = {
	[MPLOG_TRACE] = "trace", [MPLOG_DEBUG] = "debug", [MPLOG_INFO] = "info",
	[MPLOG_NOTICE] = "notice", [MPLOG_WARN] = "warn", [MPLOG_ERROR] = "error",
	[MPLOG_FATAL] = "fatal",
};

MPLOG_EXPORT const char *mplog_level_name(mplog_level level)
{
	if ((unsigned)level >= sizeof level_names / sizeof level_names[0])
		return NULL;
	return level_names[level];
}

MPLOG_EXPORT int mplog_level_parse(const char *name, mplog_level *ret)
{
	if (!name || !ret)
		return -EINVAL;
	for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*ret = (mplog_level)i;
			return 0;
		}
	}
	if (strcasecmp(name, "warning") == 0) {
		*ret = MPLOG_WARN;
		return 0;
	}
	return -EINVAL;
}

MPLOG_EXPORT const char *mplog_version(void)
{
	return MPKIT_VERSION;
}
