/* mplog.h — libmplog, centralized log aggregation for multiprocess programs.
 *
 * This release provides the severity levels shared by libmplog and
 * libmpguard. The record writer and the aggregator land in a later release
 * (see the project's issue tracker); their names are reserved under mplog_.
 */
#ifndef MPLOG_H
#define MPLOG_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MPLOG_EXPORT __attribute__((visibility("default")))
#else
#define MPLOG_EXPORT
#endif

/** Severity levels, in increasing order. Since 0.1. */
typedef enum mplog_level {
	MPLOG_TRACE = 0,
	MPLOG_DEBUG,
	MPLOG_INFO,
	MPLOG_NOTICE,
	MPLOG_WARN,
	MPLOG_ERROR,
	MPLOG_FATAL,
} mplog_level;

/**
 * mplog_level_name - lower-case name of a level ("info", "warn", ...).
 * Returns NULL for a value that is not a level. Since 0.1.
 */
MPLOG_EXPORT const char *mplog_level_name(mplog_level level);

/**
 * mplog_level_parse - parse a level name, case-insensitively; "warning" is
 * accepted for MPLOG_WARN. On success stores the level in *ret and returns 0;
 * returns -EINVAL for NULL arguments or an unknown name (*ret untouched).
 * Since 0.1.
 */
MPLOG_EXPORT int mplog_level_parse(const char *name, mplog_level *ret);

/** mplog_version - the library's version string, e.g. "0.1.0". Since 0.1. */
MPLOG_EXPORT const char *mplog_version(void);

#ifdef __cplusplus
}
#endif

#endif /* MPLOG_H */
