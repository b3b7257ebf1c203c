/* SPDX-License-Identifier: MIT */
/* Fuzz target: the bytes a child writes to its log pipe, as the aggregator
 * parses them (mplog__channel_parse on an MPLOG_STREAM_LOG channel):
 * frames checked, long records reassembled from their fragments, garbage
 * skipped to the next magic and reported. Every record that comes out is
 * formatted as each sink would (text, JSON, syslog, journal), the text checked safe
 * (text-check.h), and the JSON line read back by mplog(1)'s parser. Invariants: the same bytes in other read
 * sizes give the same records; between reads the channel keeps less than
 * one frame, at EOF nothing; a JSON line is one line that mplog reads back
 * as the same record (strings compared where they are valid UTF-8). */
#include "channel-fuzz.h"
#include "text-check.h"

#include "json-int.h" /* mpk_utf8_len */
#include "mplog-tool.h"

/* The message as the JSON sink must write it: valid UTF-8 is kept. */
static bool valid_utf8(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = mpk_utf8_len((const unsigned char *)s + i, n - i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

/* Attribute names the JSON sink writes itself: a key-value of the same
 * name makes a duplicate that a reader resolves its own way. */
static bool reserved(const char *k)
{
	static const char *const names[] = {
		"process.pid", "mpkit.worker", "mpkit.task", "mpkit.channel", "code.file.path",
		"code.line.number", "code.function.name", "log.iostream", "exception.type",
		"exception.message", "exception.stacktrace", "code.filepath", "code.lineno",
		"code.function"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcmp(k, names[i]))
			return true;
	return !strncmp(k, "mpg.", 4); /* picked by mplog for failed tasks */
}

static bool same_str(const char *tool, const char *rec)
{
	return !valid_utf8(rec, strlen(rec)) || !strcmp(tool, rec);
}

/* The JSON line, read back by mplog(1)'s parser: the same record. */
static void check_json(const mplog_record *r)
{
	static json_tokener *tok;
	if (!tok)
		tok = json_tokener_new();
	FUZZ_CHECK(tok);
	struct mpk_buf b = {0};
	mplog__format_json(&b, r);
	FUZZ_CHECK(!b.oom && b.len > 1 && b.data[b.len - 1] == '\n');
	/* One line: the only newline is the last byte. */
	FUZZ_CHECK(memchr(b.data, '\n', b.len) == b.data + b.len - 1);
	struct mt_record t;
	const char *why = "";
	if (mt_record_parse(tok, (const char *)b.data, b.len - 1, &t, &why) < 0) {
		fprintf(stderr, "not read back (%s): %.*s", why, (int)b.len, (const char *)b.data);
		FUZZ_CHECK(!"the JSON sink's line is a record");
	}
	FUZZ_CHECK(t.level == r->level);
	FUZZ_CHECK(r->ts > INT64_MAX || t.ts == r->ts);
	FUZZ_CHECK(t.stream == (enum mt_stream)r->stream);
	if (valid_utf8(r->msg, r->msg_len))
		FUZZ_CHECK(t.body_len == r->msg_len && !memcmp(t.body, r->msg, r->msg_len));
	bool plain = true; /* no key-value shadows a field, none repeats */
	for (size_t i = 0; i < r->nkv && plain; i++) {
		plain = !reserved(r->kv[2 * i]);
		for (size_t j = 0; j < i && plain; j++)
			plain = strcmp(r->kv[2 * i], r->kv[2 * j]) != 0;
	}
	if (plain) {
		FUZZ_CHECK(t.pid == (r->pid > 0 ? r->pid : -1));
		FUZZ_CHECK(t.worker == (r->worker >= 0 ? r->worker : -1));
		FUZZ_CHECK(t.task == (r->task >= 0 ? r->task : -1));
		FUZZ_CHECK(t.lineno == (r->line > 0 ? r->line : 0));
		FUZZ_CHECK(same_str(t.channel, r->channel) && same_str(t.file, r->file) &&
			   same_str(t.func, r->func));
		FUZZ_CHECK(t.nkv == r->nkv);
		for (size_t i = 0; i < r->nkv; i++)
			FUZZ_CHECK(same_str(t.kv[i].key, r->kv[2 * i]) &&
				   same_str(t.kv[i].value, r->kv[2 * i + 1]));
	}
	mt_record_clear(&t);
	mpk_buf_free(&b);
}

static void check_formats(const mplog_record *r)
{
	/* Every record here came from a child's channel: no key of the
	 * parent's arrives as it was sent (it is renamed child.KEY). */
	for (size_t i = 0; i < r->nkv; i++)
		FUZZ_CHECK(!reserved(r->kv[2 * i]));
	check_json(r);
	struct mpk_buf b = {0};
	mplog__format_text(&b, r, true);
	FUZZ_CHECK(!b.oom && b.len && b.data[b.len - 1] == '\n');
	mpk_buf_free(&b);
	mplog__format_text(&b, r, false);
	FUZZ_CHECK(!b.oom);
	check_safe_text(b.data, b.len);
	mpk_buf_free(&b);
	mplog__format_syslog(&b, r, 1, "host", "app", NULL);
	FUZZ_CHECK(!b.oom && b.len);
	mpk_buf_free(&b);
	mplog__format_syslog(&b, r, 1, "host", "app", "ex@32473");
	FUZZ_CHECK(!b.oom && b.len);
	mpk_buf_free(&b);
	mplog__format_rfc3164(&b, r, 1, "app");
	FUZZ_CHECK(!b.oom && b.len);
	mpk_buf_free(&b);
	mplog__format_journal(&b, r, -1, "app");
	FUZZ_CHECK(!b.oom && b.len);
	mpk_buf_free(&b);
	for (size_t i = 0; i < r->nkv; i++) { /* every key a name journald takes */
		char name[65];
		mplog__journal_field_name(name, r->kv[2 * i]);
		size_t n = strlen(name);
		FUZZ_CHECK(n >= 1 && n <= 64 && name[0] != '_' && !(name[0] >= '0' && name[0] <= '9') &&
			   strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_on_record = check_formats;
	fuzz_channel(MPLOG_STREAM_LOG, data, size, MPLOG_FRAME_MAX - 1);
	return 0;
}
