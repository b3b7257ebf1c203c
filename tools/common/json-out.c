/* SPDX-License-Identifier: MIT */
/* JSON output of the tools (see json-out.h). */
#include "json-out.h"
#include "json-int.h"

#include <errno.h>
#include <string.h>

static void put(struct mpk_buf *b, json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_string:
		mpk_json_string(b, json_object_get_string(o), (size_t)json_object_get_string_len(o));
		return;
	case json_type_object: {
		bool first = true;
		mpk_buf_put_u8(b, '{');
		json_object_object_foreach(o, key, val) {
			if (!first)
				mpk_buf_put_u8(b, ',');
			first = false;
			mpk_json_string(b, key, strlen(key));
			mpk_buf_put_u8(b, ':');
			put(b, val);
		}
		mpk_buf_put_u8(b, '}');
		return;
	}
	case json_type_array:
		mpk_buf_put_u8(b, '[');
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			if (i)
				mpk_buf_put_u8(b, ',');
			put(b, json_object_array_get_idx(o, i));
		}
		mpk_buf_put_u8(b, ']');
		return;
	default: { /* null, boolean, numbers: json-c writes them as ASCII */
		const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		mpk_buf_put(b, t, strlen(t));
		return;
	}
	}
}

int mpk_json_print(FILE *f, json_object *o)
{
	struct mpk_buf b = {0};
	put(&b, o);
	mpk_buf_put_u8(&b, '\n');
	int r = 0;
	if (b.oom)
		r = -ENOMEM;
	else if (fwrite(b.data, 1, b.len, f) != b.len)
		r = -EIO;
	mpk_buf_free(&b);
	return r;
}
