/* SPDX-License-Identifier: MIT */
/* The public headers compile alone under -std=c11 -pedantic -Werror. */
#include <mpguard.h>
#include <mplog.h>

#include <errno.h>

/* The logging macros expand to pedantic C11, with and without arguments. */
static int use_log_macros(void)
{
	mplog_kv kv[] = {{"k", "v"}};
	int r = mplog_info("no arguments");
	r |= mplog_warn("%d argument", 1);
	r |= mplog_error_kv(kv, 1, "with %s", "key-values");
	return r == -ENOTCONN || r == 0 ? 0 : 1; /* no default writer here */
}

int main(void)
{
	if (use_log_macros())
		return 1;
	return mplog_level_name(MPLOG_INFO) && mpg_error_kind_name(MPG_ERR_RAISED) ? 0 : 1;
}
