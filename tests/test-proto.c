/* SPDX-License-Identifier: MIT */
/* Unit tests of the worker protocol (proto.c) and the result arena
 * (arena.c): each decoder is fed bytes, every truncation of a valid frame,
 * and the crafted frames that once got past the hand-written readers. */
#include "mpk-test.h"
#include "arena-int.h"
#include "proto-int.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#define HDR sizeof(struct mpk_frame_header)

/* Every strict prefix and a one-byte extension of a valid body fail. */
#define ASSERT_TRUNCATIONS_FAIL(decode_call, body, len)                  \
	do {                                                                       \
		for (size_t n = 0; n < (len); n++) {                               \
			uint8_t *tb = malloc(n ? n : 1);                            \
			memcpy(tb, (body), n);                                      \
			ck_assert_msg((decode_call) < 0, "prefix of %zu bytes of %zu decoded", \
				      n, (size_t)(len));                           \
			free(tb);                                                   \
		}                                                                  \
		size_t n = (len) + 1;                                              \
		uint8_t *tb = calloc(1, n);                                         \
		memcpy(tb, (body), (len));                                          \
		ck_assert_msg((decode_call) < 0, "a trailing byte was accepted"); \
		free(tb);                                                           \
	} while (0)

/* ---- results ------------------------------------------------------------ */

static struct mpk_buf generic_result(void)
{
	struct mpk_buf b = {0};
	struct mpg__result_head h = {.job = 7, .first = 100, .count = 3, .elapsed_ns = 5};
	mpk_buf_put(&b, &h, sizeof h);
	struct mpk_buf items = {0};
	memcpy(mpg__item_put_inline(&items, 5), "hello", 5);
	mpg__item_put_shm(&items, 1 << 20);
	uint64_t ips[2] = {0x1234, 0x5678};
	mpg__item_put_error(&items, -3, "it broke", ips, 2);
	mpk_buf_put(&b, items.data, items.len);
	mpk_buf_free(&items);
	return b;
}

START_TEST(generic_result_roundtrips)
{
	struct mpk_buf b = generic_result();
	struct mpg__result r;
	ck_assert_int_eq(mpg__result_decode(b.data, b.len, &r), 0);
	ck_assert_uint_eq(r.h.job, 7);
	ck_assert_uint_eq(r.h.first, 100);
	ck_assert_uint_eq(r.nshm, 1);
	ck_assert_ptr_null(r.fixed);
	struct mpg__item_iter it;
	struct mpg__item item;
	mpg__items_begin(&it, r.items, r.items_len);
	ck_assert(mpg__items_next(&it, &item));
	ck_assert_uint_eq(item.kind, ITEM_INLINE);
	ck_assert_uint_eq(item.len, 5);
	ck_assert_int_eq(memcmp(item.data, "hello", 5), 0);
	ck_assert(mpg__items_next(&it, &item));
	ck_assert_uint_eq(item.kind, ITEM_SHM);
	ck_assert_uint_eq(item.len, 1 << 20);
	ck_assert(mpg__items_next(&it, &item));
	ck_assert_uint_eq(item.kind, ITEM_ERROR);
	ck_assert_int_eq(item.err.code, -3);
	ck_assert_uint_eq(item.err.msg_len, 8);
	ck_assert_int_eq(memcmp(item.err.msg, "it broke", 8), 0);
	uint64_t ips[MPG_MAX_FRAMES];
	mpg__raised_ips(&item.err, ips);
	ck_assert_uint_eq(item.err.nips, 2);
	ck_assert_uint_eq(ips[1], 0x5678);
	ck_assert_uint_eq(it.r.left, 0);
	mpk_buf_free(&b);
}
END_TEST

START_TEST(generic_result_truncations_fail)
{
	struct mpk_buf g = generic_result();
	struct mpg__result r;
	ASSERT_TRUNCATIONS_FAIL(mpg__result_decode(tb, n, &r), g.data, g.len);
	mpk_buf_free(&g);
}
END_TEST

static struct mpk_buf fixed_result(uint32_t nerr_field)
{
	struct mpk_buf b = {0};
	struct mpg__result_head h = {.job = 1, .first = 0, .count = 4, .mode = CHUNK_FIXED_OUT,
				     .out_size = 8};
	mpk_buf_put(&b, &h, sizeof h);
	uint64_t vals[4] = {10, 11, 0, 0};
	mpk_buf_put(&b, vals, sizeof vals);
	mpk_buf_put_u32(&b, nerr_field);
	mpg__fixed_error_put(&b, 2, 5, "two", NULL, 0);
	mpg__fixed_error_put(&b, 3, 6, "three", NULL, 0);
	return b;
}

START_TEST(fixed_result_roundtrips_and_truncations_fail)
{
	struct mpk_buf f = fixed_result(2);
	struct mpg__result r;
	ck_assert_int_eq(mpg__result_decode(f.data, f.len, &r), 0);
	ck_assert_uint_eq(r.nerr, 2);
	uint64_t v;
	memcpy(&v, r.fixed + 8, 8);
	ck_assert_uint_eq(v, 11);
	struct mpk_reader er;
	mpk_reader_init(&er, r.errs, r.errs_len);
	uint32_t rel;
	struct mpg__raised e;
	ck_assert(mpg__fixed_error_next(&er, &rel, &e));
	ck_assert_uint_eq(rel, 2);
	ck_assert(mpg__fixed_error_next(&er, &rel, &e));
	ck_assert_uint_eq(rel, 3);
	ck_assert_int_eq(e.code, 6);
	ASSERT_TRUNCATIONS_FAIL(mpg__result_decode(tb, n, &r), f.data, f.len);
	mpk_buf_free(&f);
}
END_TEST

/* It once kept the validation loop going 2^32 times past a failed read:
 * the pool stalled for minutes. */
START_TEST(fixed_result_with_more_errors_than_tasks_fails)
{
	struct mpk_buf f = fixed_result(0xffffffffu);
	struct mpg__result r;
	ck_assert_int_eq(mpg__result_decode(f.data, f.len, &r), -EBADMSG);
	mpk_buf_free(&f);
	f = fixed_result(3); /* one more than there are */
	ck_assert_int_eq(mpg__result_decode(f.data, f.len, &r), -EBADMSG);
	mpk_buf_free(&f);
}
END_TEST

START_TEST(fixed_result_errors_out_of_order_or_twice_fail)
{
	struct mpk_buf b = {0};
	struct mpg__result_head h = {.count = 4, .mode = CHUNK_FIXED_OUT, .out_size = 8};
	mpk_buf_put(&b, &h, sizeof h);
	mpk_buf_grow(&b, 32);
	mpk_buf_put_u32(&b, 2);
	mpg__fixed_error_put(&b, 3, 1, "x", NULL, 0);
	mpg__fixed_error_put(&b, 3, 1, "x", NULL, 0);
	struct mpg__result r;
	ck_assert_int_eq(mpg__result_decode(b.data, b.len, &r), -EBADMSG);
	mpk_buf_free(&b);
}
END_TEST

START_TEST(result_shapes_that_cannot_be_fail)
{
	struct mpg__result r;
	struct mpg__result_head h = {.count = 0};
	ck_assert_int_eq(mpg__result_decode(&h, sizeof h, &r), -EBADMSG); /* no task */
	h = (struct mpg__result_head){.count = 1, .mode = 1u << 7};
	ck_assert_int_eq(mpg__result_decode(&h, sizeof h, &r), -EBADMSG); /* unknown mode */
	h = (struct mpg__result_head){.count = UINT32_MAX, .mode = CHUNK_FIXED_OUT,
				      .out_size = UINT64_MAX};
	ck_assert_int_eq(mpg__result_decode(&h, sizeof h, &r), -EBADMSG); /* overflow */
	/* An item kind nobody writes. */
	struct mpk_buf b = {0};
	h = (struct mpg__result_head){.count = 1};
	mpk_buf_put(&b, &h, sizeof h);
	mpk_buf_put_u64(&b, 9);
	ck_assert_int_eq(mpg__result_decode(b.data, b.len, &r), -EBADMSG);
	mpk_buf_free(&b);
	/* A message as long as the whole frame says, and more. */
	b = (struct mpk_buf){0};
	mpk_buf_put(&b, &h, sizeof h);
	mpk_buf_put_u64(&b, ITEM_ERROR);
	mpk_buf_put_u32(&b, 1);
	mpk_buf_put_u32(&b, MPG_MAX_MESSAGE);
	mpk_buf_put_u32(&b, 0);
	mpk_buf_grow(&b, MPG_MAX_MESSAGE);
	ck_assert_int_eq(mpg__result_decode(b.data, b.len, &r), -EBADMSG);
	mpk_buf_free(&b);
}
END_TEST

/* ---- chunks --------------------------------------------------------------- */

START_TEST(chunk_roundtrips_and_truncations_fail)
{
	struct mpk_buf b = {0};
	struct mpg__chunk_head h = {.job = 3, .fn = 0x401000, .first = 10,
				    .mode = CHUNK_HAS_CTX, .base = 77};
	mpg__chunk_begin(&b, &h, "ctx", 3);
	mpg__input_put_inline(&b, "abc", 3);
	mpg__input_put_shm(&b, 4096, 1 << 20);
	ck_assert_int_eq(mpg__chunk_finish(&b, 2, 0, 1), 0);
	struct mpk_frame_header fh;
	memcpy(&fh, b.data, HDR);
	ck_assert_int_eq(mpk_frame_header_check(&fh, MPK_FRAME_MAX_BODY), 0);
	ck_assert_uint_eq(fh.length, b.len - HDR);
	struct mpg__chunk c;
	ck_assert_int_eq(mpg__chunk_decode(b.data + HDR, b.len - HDR, &c), 0);
	ck_assert_uint_eq(c.h.count, 2);
	ck_assert_uint_eq(c.h.first, 10);
	ck_assert_uint_eq(c.h.base, 77); /* a submitted task's number */
	ck_assert_uint_eq(c.ctx_len, 3);
	struct mpg__input in;
	ck_assert(mpg__input_next(&c, &in));
	ck_assert(!in.shm);
	ck_assert_int_eq(memcmp(in.data, "abc", 3), 0);
	ck_assert(mpg__input_next(&c, &in));
	ck_assert(in.shm);
	ck_assert_uint_eq(in.off, 4096);
	ck_assert(!mpg__input_next(&c, &in)); /* no third */
	ck_assert_uint_eq(c.nshm, 1);
	ASSERT_TRUNCATIONS_FAIL(mpg__chunk_decode(tb, n, &c), b.data + HDR, b.len - HDR);
	mpk_buf_free(&b);
}
END_TEST

START_TEST(fixed_chunk_needs_exactly_its_inputs)
{
	struct mpk_buf b = {0};
	struct mpg__chunk_head h = {.count = 3, .mode = CHUNK_FIXED_IN | CHUNK_FIXED_OUT,
				    .in_size = 8, .out_size = 8};
	mpg__chunk_begin(&b, &h, NULL, 0);
	mpg__chunk_align_fixed(&b);
	mpk_buf_grow(&b, 24);
	struct mpg__chunk c;
	ck_assert_int_eq(mpg__chunk_decode(b.data + HDR, b.len - HDR, &c), 0);
	ck_assert_int_lt(mpg__chunk_decode(b.data + HDR, b.len - HDR - 1, &c), 0);
	mpk_buf_grow(&b, 1);
	ck_assert_int_lt(mpg__chunk_decode(b.data + HDR, b.len - HDR, &c), 0);
	mpk_buf_free(&b);
}
END_TEST

/* ---- modules -------------------------------------------------------------- */

/* It once decoded with path = NULL, and the next symbolized error crashed
 * the parent. */
START_TEST(module_with_a_65_byte_build_id_fails)
{
	struct mpk_buf b = {0};
	mpk_buf_put_u32(&b, 1);
	mpk_buf_put_u64(&b, 0);
	mpk_buf_put_u64(&b, 0x1000);
	mpk_buf_put_u64(&b, 0x2000);
	mpk_buf_put_u32(&b, 4);
	mpk_buf_put(&b, "/bin", 4);
	mpk_buf_put_u32(&b, 65);
	mpk_buf_grow(&b, 65);
	struct mpg__modlist l = {0};
	ck_assert_int_eq(mpg__modlist_decode(b.data, b.len, &l), -EBADMSG);
	ck_assert_ptr_null(l.m);
	mpk_buf_free(&b);
}
END_TEST

START_TEST(module_list_roundtrips_and_truncations_fail)
{
	struct mpk_buf b = {0};
	mpk_buf_put_u32(&b, 2);
	uint8_t id[20] = {1, 2, 3};
	mpg__module_put(&b, 0x1000, 0x1000, 0x3000, "/usr/lib/libx.so", id, sizeof id);
	mpg__module_put(&b, 0x5000, 0x5000, 0x6000, "/bin/prog", NULL, 0);
	struct mpg__modlist l;
	ck_assert_int_eq(mpg__modlist_decode(b.data, b.len, &l), 0);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_str_eq(l.m[0].path, "/usr/lib/libx.so");
	ck_assert_uint_eq(l.m[0].build_id_len, 20);
	ck_assert_str_eq(l.m[1].path, "/bin/prog");
	mpg__modlist_free(&l);
	ASSERT_TRUNCATIONS_FAIL(mpg__modlist_decode(tb, n, &l), b.data, b.len);
	mpk_buf_free(&b);
	/* A count no frame can hold is refused before anything is allocated. */
	uint32_t many = 60000;
	ck_assert_int_eq(mpg__modlist_decode(&many, sizeof many, &l), -EBADMSG);
}
END_TEST

/* ---- crash, stack, service end, hello, fork server ------------------------ */

START_TEST(crash_and_stack_reports_roundtrip_and_truncations_fail)
{
	struct mpg__crash_frame f = {.c = {.signo = SIGSEGV, .code = 1, .addr = 16, .nips = 3},
				     .ips = {1, 2, 3}};
	size_t len = mpg__crash_frame_seal(&f);
	ck_assert_uint_eq(len, HDR + sizeof f.c + 24);
	struct mpg__crash_head c;
	uint64_t ips[MPG_MAX_FRAMES];
	const uint8_t *body = (const uint8_t *)&f + HDR;
	ck_assert_int_eq(mpg__crash_decode(body, len - HDR, &c, ips), 0);
	ck_assert_uint_eq(ips[2], 3);
	ASSERT_TRUNCATIONS_FAIL(mpg__crash_decode(tb, n, &c, ips), body, len - HDR);
	f.c.nips = MPG_MAX_FRAMES + 1;
	ck_assert_int_lt(mpg__crash_decode(body, sizeof f.c + 8 * f.c.nips, &c, ips), 0);

	struct mpg__stack_frame s = {.nips = 2, .ips = {7, 8}};
	len = mpg__stack_frame_seal(&s);
	uint32_t n2;
	body = (const uint8_t *)&s + HDR;
	ck_assert_int_eq(mpg__stack_decode(body, len - HDR, &n2, ips), 0);
	ck_assert_uint_eq(n2, 2);
	ASSERT_TRUNCATIONS_FAIL(mpg__stack_decode(tb, n, &n2, ips), body, len - HDR);
}
END_TEST

START_TEST(service_end_and_hello_roundtrip)
{
	struct mpk_buf b = {0};
	uint64_t ips[1] = {42};
	ck_assert_int_eq(mpg__service_end_encode(&b, 3, "bye", ips, 1), 0);
	struct mpg__raised e;
	ck_assert_int_eq(mpg__service_end_decode(b.data + HDR, b.len - HDR, &e), 0);
	ck_assert_int_eq(e.code, 3);
	ASSERT_TRUNCATIONS_FAIL(mpg__service_end_decode(tb, n, &e), b.data + HDR, b.len - HDR);
	mpk_buf_free(&b);

	struct mpg__hello_frame h;
	mpg__hello_init(&h, 1);
	ck_assert_int_eq(mpg__hello_decode(&h.version, 8, 1), 0);
	ck_assert_int_lt(mpg__hello_decode(&h.version, 8, 2), 0);
	ck_assert_int_lt(mpg__hello_decode(&h.version, 7, 1), 0);
	h.version = 2;
	ck_assert_int_lt(mpg__hello_decode(&h.version, 8, 1), 0);
}
END_TEST

START_TEST(fork_server_messages_are_checked)
{
	struct mpg__fsmsg m = {.type = FS_EXITED, .slot = 1, .pid = 42}, out;
	ck_assert_int_eq(mpg__fsmsg_decode(&m, sizeof m, false, &out), 0);
	ck_assert_int_eq(out.pid, 42);
	ck_assert_int_eq(mpg__fsmsg_decode(&m, sizeof m, true, &out), -EPROTO);
	ck_assert_int_eq(mpg__fsmsg_decode(&m, sizeof m - 1, false, &out), -EPROTO);
	m.type = 99;
	ck_assert_int_eq(mpg__fsmsg_decode(&m, sizeof m, false, &out), -EPROTO);
}
END_TEST

/* ---- the byte stream ------------------------------------------------------ */

START_TEST(garbage_shows_at_its_first_byte)
{
	size_t len;
	ck_assert_int_eq(mpg__frame_peek((const uint8_t *)"o", 1, 2, 7, &len), -EBADMSG);
	ck_assert_int_eq(mpg__frame_peek((const uint8_t *)"oops\n", 5, 2, 7, &len), -EBADMSG);
	struct mpk_frame_header h;
	mpk_frame_header_init(&h, MSG_RESULT, 4, 0);
	uint8_t buf[HDR + 4 + 8] = {0};
	memcpy(buf, &h, HDR);
	for (size_t n = 0; n < HDR + 4; n++) /* a prefix of a frame: wait for more */
		ck_assert_int_eq(mpg__frame_peek(buf, n, 2, 7, &len), 0);
	ck_assert_int_eq(mpg__frame_peek(buf, HDR + 4, 2, 7, &len), 1);
	ck_assert_uint_eq(len, HDR + 4);
	ck_assert_int_eq(mpg__frame_peek(buf, 6, MSG_CRASH, 7, &len), -EBADMSG); /* its type */
	buf[4] = 9; /* version */
	ck_assert_int_eq(mpg__frame_peek(buf, 5, 2, 7, &len), -EBADMSG);
	/* "oops\n" then a frame: the frame starts 5 bytes in. */
	uint8_t s[5 + HDR];
	memcpy(s, "oops\n", 5);
	memcpy(s + 5, &h, HDR);
	ck_assert_uint_eq(mpg__frame_resync(s, sizeof s), 5);
	ck_assert_uint_eq(mpg__frame_resync((const uint8_t *)"oops\n", 5), 5);
}
END_TEST

/* ---- the arena ------------------------------------------------------------ */

START_TEST(arena_gives_back_what_was_committed)
{
	struct mpg__arena a;
	ck_assert_int_eq(mpg__arena_open(&a), 0);
	struct mpk_buf items = {0};
	memcpy(mpg__item_put_inline(&items, 3), "one", 3);
	memcpy(mpg__item_put_inline(&items, 3), "two", 3);
	size_t two = items.len;
	memcpy(mpg__item_put_inline(&items, 5), "three", 5);
	memcpy(mpg__arena_data(&a), items.data, items.len);
	mpg__arena_reset(&a, 9, 40, 0, 0, 0);
	mpg__arena_commit(&a, 2, two); /* the third was not done */

	struct mpg__result r;
	void *mem;
	ck_assert_int_eq(mpg__arena_rescue(a.fd, &r, &mem), 1);
	ck_assert_uint_eq(r.h.job, 9);
	ck_assert_uint_eq(r.h.first, 40);
	ck_assert_uint_eq(r.h.count, 2);
	struct mpg__item_iter it;
	struct mpg__item item;
	mpg__items_begin(&it, r.items, r.items_len);
	ck_assert(mpg__items_next(&it, &item));
	ck_assert(mpg__items_next(&it, &item));
	ck_assert_int_eq(memcmp(item.data, "two", 3), 0);
	free(mem);

	/* A result whose memfd died with the worker ends the run. */
	mpg__item_put_shm(&items, 1 << 20);
	memcpy(mpg__arena_data(&a), items.data, items.len);
	mpg__arena_commit(&a, 4, items.len);
	ck_assert_int_eq(mpg__arena_rescue(a.fd, &r, &mem), 1);
	ck_assert_uint_eq(r.h.count, 3);
	free(mem);

	/* Nothing committed: nothing to take. */
	mpg__arena_reset(&a, 9, 43, 0, 0, 0);
	ck_assert_int_eq(mpg__arena_rescue(a.fd, &r, &mem), 0);
	ck_assert_ptr_null(mem);

	/* Fixed results, past what earlier frames sent. */
	ck_assert_int_eq(mpg__arena_reserve(&a, 1 << 20), 0);
	uint64_t v[4] = {1, 2, 3, 4};
	memcpy(mpg__arena_data(&a), v, sizeof v);
	mpg__arena_reset(&a, 2, 12, CHUNK_FIXED_OUT, 8, 16);
	mpg__arena_commit(&a, 2, 16);
	ck_assert_int_eq(mpg__arena_rescue(a.fd, &r, &mem), 1);
	ck_assert_ptr_nonnull(r.fixed);
	ck_assert_uint_eq(r.h.count, 2);
	memcpy(v, r.fixed, 16);
	ck_assert_uint_eq(v[0], 3);
	free(mem);
	mpk_buf_free(&items);
	munmap(a.base, a.size);
	close(a.fd);
}
END_TEST

/* A fixed result left in the arena: the frame carries where, not bytes. */
START_TEST(result_in_the_arena_says_where_and_is_bounded)
{
	struct mpk_buf b = {0};
	struct mpg__result_head h = {.job = 3, .first = 8, .count = 4,
				     .mode = CHUNK_FIXED_OUT | RESULT_IN_ARENA, .out_size = 16};
	mpk_buf_put(&b, &h, sizeof h);
	uint64_t off = 4096;
	mpk_buf_put(&b, &off, sizeof off);
	uint32_t nerr = 0;
	mpk_buf_put(&b, &nerr, sizeof nerr);
	struct mpg__result r;
	ck_assert_int_eq(mpg__result_decode(b.data, b.len, &r), 0);
	ck_assert(r.is_fixed && r.in_arena);
	ck_assert_ptr_null(r.fixed);
	ck_assert_uint_eq(r.arena_off, 4096);
	ASSERT_TRUNCATIONS_FAIL(mpg__result_decode(tb, n, &r), b.data, b.len);

	/* Past the biggest arena, or an offset that wraps. */
	struct mpg__result_head *hp = (void *)b.data;
	uint64_t *op = (void *)(b.data + sizeof h);
	*op = MPG_ARENA_MAX - 63;
	ck_assert_int_lt(mpg__result_decode(b.data, b.len, &r), 0);
	*op = UINT64_MAX - 8;
	ck_assert_int_lt(mpg__result_decode(b.data, b.len, &r), 0);
	*op = 0;
	hp->out_size = UINT64_MAX / 2;
	ck_assert_int_lt(mpg__result_decode(b.data, b.len, &r), 0);
	/* Only fixed results can be left there. */
	hp->out_size = 16;
	hp->mode = RESULT_IN_ARENA;
	ck_assert_int_lt(mpg__result_decode(b.data, b.len, &r), 0);
	mpk_buf_free(&b);
}
END_TEST

static void *releases(void *arg)
{
	struct mpg__arena_head *h = arg;
	/* Only once the worker sleeps on it: the wake-up is what is tested. */
	while (!atomic_load(&h->waiting))
		sched_yield();
	mpg__arena_release(h, 2);
	return NULL;
}

/* The worker reuses results sent by reference only once the parent read
 * them all; it sleeps until then, and leaves when the parent hung up. */
START_TEST(arena_results_wait_for_their_release)
{
	struct mpg__arena a;
	ck_assert_int_eq(mpg__arena_open(&a), 0);
	ck_assert_int_eq(ftruncate(a.fd, 100), -1); /* sealed: it never shrinks */
	struct mpg__arena_head *h = mpg__arena_attach(a.fd);
	ck_assert_ptr_nonnull(h);
	int pipefd[2];
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);

	ck_assert_int_eq(mpg__arena_await(&a, 0, pipefd[0]), 0); /* none sent */
	mpg__arena_release(h, 1);
	ck_assert_int_eq(mpg__arena_await(&a, 1, pipefd[0]), 0);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, releases, h), 0);
	ck_assert_int_eq(mpg__arena_await(&a, 2, pipefd[0]), 0);
	pthread_join(t, NULL);
	ck_assert_uint_eq(atomic_load(&mpg__arena_head(&a)->released), 2);

	close(pipefd[1]);
	ck_assert_int_eq(mpg__arena_await(&a, 3, pipefd[0]), -EPIPE);
	close(pipefd[0]);

	/* An fd that is not a sealed memfd is not mapped. */
	ck_assert_ptr_null(mpg__arena_attach(pipefd[0]));
	int plain = memfd_create("plain", MFD_CLOEXEC);
	ck_assert_int_eq(ftruncate(plain, 8192), 0);
	ck_assert_ptr_null(mpg__arena_attach(plain));
	close(plain);
	mpg__arena_detach(h);
	munmap(a.base, a.size);
	close(a.fd);
}
END_TEST

START_TEST(arena_that_is_not_one_is_refused)
{
	struct mpg__result r;
	void *mem;
	int fd = memfd_create("small", MFD_CLOEXEC); /* not even a head page */
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 100), 0);
	ck_assert_int_eq(mpg__arena_rescue(fd, &r, &mem), -EBADMSG);
	close(fd);
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(mpg__arena_rescue(p[0], &r, &mem), -EBADMSG);
	close(p[0]);
	close(p[1]);

	/* Committed lengths beyond the file are refused. */
	struct mpg__arena a;
	ck_assert_int_eq(mpg__arena_open(&a), 0);
	mpg__arena_reset(&a, 1, 0, 0, 0, 0);
	mpg__arena_commit(&a, 1, UINT64_MAX - 8);
	ck_assert_int_eq(mpg__arena_rescue(a.fd, &r, &mem), -EBADMSG);
	mpg__arena_reset(&a, 1, 0, CHUNK_FIXED_OUT, UINT64_MAX, 0);
	mpg__arena_commit(&a, 3, 64);
	ck_assert_int_eq(mpg__arena_rescue(a.fd, &r, &mem), -EBADMSG);
	munmap(a.base, a.size);
	close(a.fd);
}
END_TEST

static Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("decoders");
	tcase_add_test(tc, generic_result_roundtrips);
	tcase_add_test(tc, generic_result_truncations_fail);
	tcase_add_test(tc, fixed_result_roundtrips_and_truncations_fail);
	tcase_add_test(tc, fixed_result_with_more_errors_than_tasks_fails);
	tcase_add_test(tc, fixed_result_errors_out_of_order_or_twice_fail);
	tcase_add_test(tc, result_shapes_that_cannot_be_fail);
	tcase_add_test(tc, chunk_roundtrips_and_truncations_fail);
	tcase_add_test(tc, fixed_chunk_needs_exactly_its_inputs);
	tcase_add_test(tc, module_with_a_65_byte_build_id_fails);
	tcase_add_test(tc, module_list_roundtrips_and_truncations_fail);
	tcase_add_test(tc, crash_and_stack_reports_roundtrip_and_truncations_fail);
	tcase_add_test(tc, service_end_and_hello_roundtrip);
	tcase_add_test(tc, fork_server_messages_are_checked);
	tcase_add_test(tc, garbage_shows_at_its_first_byte);
	tcase_add_test(tc, arena_gives_back_what_was_committed);
	tcase_add_test(tc, arena_that_is_not_one_is_refused);
	tcase_add_test(tc, result_in_the_arena_says_where_and_is_bounded);
	tcase_add_test(tc, arena_results_wait_for_their_release);
	suite_add_tcase(s, tc);
	return s;
}

MPK_TEST_MAIN(proto_suite)
