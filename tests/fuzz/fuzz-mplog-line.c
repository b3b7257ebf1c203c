/* SPDX-License-Identifier: MIT */
/* Fuzz target: mplog(1) reading one line of an aggregated log (a JSON
 * sink's line, or anything else a file or a pool's socket holds):
 * mt_record_parse, then what mplog does with a record: filters, the text
 * forms (short, short-iso, cat), the statistics. Invariants: a line is a
 * record or is refused with a reason; a record's strings are readable and
 * its body is body_len bytes; its text forms without colour are safe
 * (text-check.h). */
#include "fuzz-check.h"
#include "mplog-tool.h"
#include "text-check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>


static json_tokener *tok;
static FILE *devnull;
static struct mt_filter filter;

static void init(void)
{
	tok = json_tokener_new();
	devnull = fopen("/dev/null", "w");
	FUZZ_CHECK(tok && devnull);
	/* Every filter on, so that every test of a record runs. */
	filter.min_level = MPLOG_DEBUG;
	FUZZ_CHECK(mt_idset_add(&filter.workers, "0,1,2,7") == 0);
	FUZZ_CHECK(mt_idset_add(&filter.tasks, "3,17") == 0);
	FUZZ_CHECK(mt_names_add(&filter.channels, "worker-1,fetcher") == 0);
	FUZZ_CHECK(mt_streams_add(&filter.streams, "stdout,log") == 0);
	char err[128];
	FUZZ_CHECK(mt_filter_set_grep(&filter, "fail|SEGV", true, err, sizeof err) == 0);
	filter.has_since = filter.has_until = true;
	filter.since = 1000000000ull;
	filter.until = 2000000000000000000ull;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!tok)
		init();
	struct mt_record r;
	const char *why = NULL;
	int ret = mt_record_parse(tok, (const char *)data, size, &r, &why);
	if (ret < 0) {
		FUZZ_CHECK(ret == -EINVAL && why && *why);
		return 0;
	}
	FUZZ_CHECK(ret == 0 && r.root && r.body && r.level <= MPLOG_FATAL);
	FUZZ_CHECK(strlen(r.body) <= r.body_len);
	FUZZ_CHECK(r.channel && r.file && r.func && r.signal && r.backtrace && r.service &&
		   r.res_service && r.res_host);
	FUZZ_CHECK(mt_record_channel(&r));
	for (size_t i = 0; i < r.nkv; i++)
		FUZZ_CHECK(r.kv[i].key && r.kv[i].value);
	(void)mt_filter_match(&filter, &r);
	mt_format_text(devnull, &r, true, true);
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	FUZZ_CHECK(mem);
	mt_format_text(mem, &r, false, false);
	FUZZ_CHECK(fclose(mem) == 0);
	check_safe_text((const unsigned char *)text, len);
	free(text);
	for (int form = 0; form < 2; form++) {
		text = NULL;
		mem = open_memstream(&text, &len);
		FUZZ_CHECK(mem);
		if (form)
			mt_format_cat(mem, &r);
		else
			mt_format_text_iso(mem, &r, false, form);
		FUZZ_CHECK(fclose(mem) == 0);
		check_safe_text((const unsigned char *)text, len);
		free(text);
	}
	struct mt_stats st = {0};
	FUZZ_CHECK(mt_stats_add(&st, &r) == 0);
	mt_stats_print(&st, 1, true, devnull);
	mt_stats_print(&st, 1, false, devnull);
	mt_stats_free(&st);
	mt_record_clear(&r);
	return 0;
}
