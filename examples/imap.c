/* SPDX-License-Identifier: MIT */
/* Results as they complete: mpg_imap_unordered() + mpg_iter_next().
 *
 * Counts the primes below 400 000 in ranges of very different sizes, so the
 * small ranges come back before the big one. One range is malformed: its
 * task raises an error, which arrives through the same iterator, tagged
 * with its input index like every result. The program checks that every
 * range came back exactly once and that the counts add up to pi(400 000).
 *
 *   $ ./imap        exit 0 when all of that held
 */
#include <mpguard.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct range {
	uint32_t lo, hi; /* [lo, hi) */
};

struct count {
	uint64_t primes;
	uint32_t worker; /* which worker counted them, to show the spread */
};

static bool is_prime(uint32_t n)
{
	if (n < 2)
		return false;
	if (n % 2 == 0)
		return n == 2;
	for (uint32_t d = 3; d <= n / d; d += 2)
		if (n % d == 0)
			return false;
	return true;
}

static int count_primes(mpg_task *task, const void *in, size_t len, void *userdata)
{
	(void)userdata;
	struct range r;
	if (len != sizeof r)
		return mpg_raise(EINVAL, "expected a range of %zu bytes, got %zu", sizeof r, len);
	memcpy(&r, in, sizeof r);
	if (r.lo > r.hi) /* ends the task here: the parent gets code, message, backtrace */
		mpg_raise(EINVAL, "malformed range [%" PRIu32 ", %" PRIu32 ")", r.lo, r.hi);
	struct count c = {.worker = mpg_task_worker(task)};
	for (uint32_t n = r.lo; n < r.hi; n++)
		c.primes += is_prime(n);
	return mpg_task_set_result(task, &c, sizeof c);
}

int main(void)
{
	/* The big range first: it is the last one back. Index 3 is malformed. */
	static const struct range ranges[] = {
		{0, 250000},      {250000, 300000}, {300000, 320000}, {5000, 10},
		{320000, 330000}, {330000, 360000}, {360000, 399000}, {399000, 400000},
	};
	enum { N = sizeof ranges / sizeof ranges[0], BAD = 3 };
	const uint64_t expected = 33860; /* pi(400 000) */

	mpg_buf in[N];
	for (size_t i = 0; i < N; i++)
		in[i] = (mpg_buf){&ranges[i], sizeof ranges[i]};

	mpg_options *opts = NULL;
	mpg_pool *pool;
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, 3)) < 0 ||
	    (r = mpg_pool_new(opts, &pool)) < 0) {
		fprintf(stderr, "imap: cannot start the pool: %s\n", strerror(-r));
		mpg_options_free(opts);
		return 1;
	}
	mpg_options_free(opts);

	mpg_iter *it;
	if ((r = mpg_imap_unordered(pool, count_primes, in, N, NULL, &it)) < 0) {
		fprintf(stderr, "imap: mpg_imap_unordered: %s\n", strerror(-r));
		mpg_pool_free(pool);
		return 1;
	}
	printf("counting primes below 400000 in %d ranges, 3 workers; as they complete:\n", N);
	unsigned seen[N] = {0};
	uint64_t total = 0;
	size_t failed = 0, index;
	const void *data;
	size_t len;
	const mpg_error *err;
	bool ok = true;
	while ((r = mpg_iter_next(it, &index, &data, &len, &err)) == 1) {
		seen[index]++;
		if (err) { /* valid until the next mpg_iter_next() */
			failed++;
			printf("  range %zu failed: %s\n", index, mpg_error_describe(err));
			ok &= index == BAD && mpg_error_get_kind(err) == MPG_ERR_RAISED &&
			      mpg_error_code(err) == EINVAL;
			continue;
		}
		struct count c;
		if (len != sizeof c) {
			printf("  range %zu: result of %zu bytes?\n", index, len);
			ok = false;
			continue;
		}
		memcpy(&c, data, sizeof c);
		total += c.primes;
		printf("  range %zu [%6" PRIu32 ", %6" PRIu32 "): %5" PRIu64 " primes (worker %" PRIu32
		       ")\n", index, ranges[index].lo, ranges[index].hi, c.primes, c.worker);
	}
	if (r < 0) {
		fprintf(stderr, "imap: mpg_iter_next: %s\n", strerror(-r));
		ok = false;
	}
	mpg_iter_free(it);
	if ((r = mpg_pool_close(pool)) < 0 || (r = mpg_pool_join(pool)) < 0) {
		fprintf(stderr, "imap: close/join: %s\n", strerror(-r));
		ok = false;
	}
	mpg_pool_free(pool);

	for (size_t i = 0; i < N; i++)
		if (seen[i] != 1) {
			printf("range %zu came back %u times\n", i, seen[i]);
			ok = false;
		}
	printf("%" PRIu64 " primes in the good ranges (expected %" PRIu64 "), %zu range failed\n",
	       total, expected, failed);
	ok &= total == expected && failed == 1;
	printf("%s\n", ok ? "OK" : "UNEXPECTED");
	return ok ? 0 : 1;
}
