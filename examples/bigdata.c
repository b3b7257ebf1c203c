/* SPDX-License-Identifier: MIT */
/* Huge inputs without copies: mpg_shm_alloc().
 *
 * A 32 MiB buffer allocated with mpg_shm_alloc() is cut into 8 slices of
 * 4 MiB, one task each. An input of at least 1 MiB (the default shm
 * threshold) goes through shared memory instead of the socket; one that lies
 * inside an mpg_shm_alloc() buffer is handed over as it is (a memfd and an
 * offset), so the pool copies nothing. For contrast, one more call sends a
 * 4 MiB malloc() buffer: the pool copies it once into a sealed memfd.
 * mpg_pool_stats() shows both. Each task checksums its slice; the parent
 * checks the sums.
 *
 *   $ ./bigdata     exit 0 when the sums match and nothing shared was copied
 */
#include <mpguard.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MIB = 1 << 20, SLICE = 4 * MIB, NSLICES = 8, TOTAL = NSLICES * SLICE };

/* FNV-1a over 64-bit words: cheap, and any wrong byte changes it. */
static uint64_t checksum(const void *p, size_t len)
{
	const uint64_t *w = p;
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < len / 8; i++)
		h = (h ^ w[i]) * 0x100000001b3u;
	return h;
}

static int sum_slice(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	uint64_t h = checksum(in, len); /* `in` maps the parent's pages: no copy here either */
	return mpg_task_set_result(task, &h, sizeof h);
}

static void fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;
	for (size_t i = 0; i < len / 8; i++) { /* xorshift64 */
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		w[i] = seed;
	}
}

/* Maps the inputs and compares each sum with the parent's own. */
static int run(mpg_pool *pool, const char *what, const mpg_buf *in, size_t n)
{
	mpg_results *res;
	int r = mpg_map(pool, sum_slice, in, n, NULL, &res);
	if (r < 0) {
		fprintf(stderr, "bigdata: map over %s: %s\n", what, strerror(-r));
		return 0;
	}
	size_t good = 0;
	for (size_t i = 0; i < n; i++) {
		const void *data;
		size_t len;
		uint64_t h;
		if (mpg_results_get(res, i, &data, &len) == 0 && len == sizeof h) {
			memcpy(&h, data, sizeof h);
			good += h == checksum(in[i].data, in[i].len);
		} else if (mpg_results_error(res, i)) {
			printf("  slice %zu: %s\n", i, mpg_error_describe(mpg_results_error(res, i)));
		}
	}
	printf("%s: %zu of %zu checksums match\n", what, good, n);
	mpg_results_free(res);
	return good == n;
}

int main(void)
{
	mpg_options *opts = NULL;
	mpg_pool *pool = NULL;
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, 2)) < 0 ||
	    (r = mpg_pool_new(opts, &pool)) < 0) {
		fprintf(stderr, "bigdata: cannot start the pool: %s\n", strerror(-r));
		mpg_options_free(opts);
		return 1;
	}
	mpg_options_free(opts);

	/* Allocated after the pool, as a program would when the data comes in. */
	void *shared;
	if ((r = mpg_shm_alloc(TOTAL, &shared)) < 0) {
		fprintf(stderr, "bigdata: mpg_shm_alloc(%d MiB): %s\n", TOTAL / MIB, strerror(-r));
		mpg_pool_free(pool);
		return 1;
	}
	fill(shared, TOTAL, 42);
	mpg_buf slices[NSLICES];
	for (size_t i = 0; i < NSLICES; i++)
		slices[i] = (mpg_buf){(char *)shared + i * SLICE, SLICE};
	mpg_stats before = {.size = sizeof before}, after = {.size = sizeof after};
	int ok = mpg_pool_stats(pool, &before) == 0;
	ok &= run(pool, "32 MiB from mpg_shm_alloc() in 8 slices", slices, NSLICES);
	ok &= mpg_pool_stats(pool, &after) == 0;
	uint64_t shm = after.shm_bytes - before.shm_bytes;
	uint64_t copied = after.shm_copied_bytes - before.shm_copied_bytes;
	printf("  handed over in shared memory: %" PRIu64 " MiB, copied by the pool: %" PRIu64 " MiB\n",
	       shm / MIB, copied / MIB);
	ok &= shm == TOTAL && copied == 0;
	mpg_shm_free(shared);

	/* The same with an ordinary buffer: copied once into a memfd. */
	void *plain = malloc(SLICE);
	if (!plain) {
		mpg_pool_free(pool);
		return 1;
	}
	fill(plain, SLICE, 7);
	mpg_buf one = {plain, SLICE};
	before = after;
	ok &= run(pool, "4 MiB from malloc()", &one, 1);
	ok &= mpg_pool_stats(pool, &after) == 0;
	copied = after.shm_copied_bytes - before.shm_copied_bytes;
	printf("  copied by the pool: %" PRIu64 " MiB\n", copied / MIB);
	ok &= copied == SLICE;
	free(plain);

	if ((r = mpg_pool_close(pool)) < 0 || (r = mpg_pool_join(pool)) < 0) {
		fprintf(stderr, "bigdata: close/join: %s\n", strerror(-r));
		ok = 0;
	}
	mpg_pool_free(pool);
	printf("%s\n", ok ? "OK" : "UNEXPECTED");
	return ok ? 0 : 1;
}
