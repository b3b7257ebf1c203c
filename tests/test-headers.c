/* The public headers compile alone under -std=c11 -pedantic -Werror. */
#include <mpguard.h>
#include <mplog.h>

int main(void)
{
	return mplog_level_name(MPLOG_INFO) && mpg_error_kind_name(MPG_ERR_RAISED) ? 0 : 1;
}
