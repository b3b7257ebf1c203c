/* SPDX-License-Identifier: MIT */
/* Extra arguments and shared read-only state.
 *
 *  - mpg_options_set_context(): bytes copied at the call and handed to
 *    every task of that call (mpg_task_context()) — the extra arguments of
 *    a starmap, or of functools.partial. Here: a tax rate and a discount,
 *    different for each of two calls.
 *  - mpg_options_set_userdata(): a pointer into memory that exists when the
 *    pool is created; every worker sees its own copy of it as it was then.
 *    Here: a price list, built once, read by every task.
 *
 * Each order (product, quantity) is priced in the workers; the parent
 * prices them again itself and checks that both agree.
 *
 *   $ ./starmap     exit 0 when the workers' totals are the expected ones
 */
#include <mpguard.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum { NPRODUCTS = 64 };

struct price_list {
	int64_t cents[NPRODUCTS];
};

struct order {
	uint32_t product, quantity;
};

struct terms { /* the call's extra arguments */
	int32_t tax_permille;
	int32_t discount_percent;
	char region[8];
};

static int64_t price(const struct price_list *pl, const struct terms *t, struct order o)
{
	int64_t net = pl->cents[o.product] * o.quantity * (100 - t->discount_percent) / 100;
	return net + net * t->tax_permille / 1000;
}

static int price_order(mpg_task *task, const void *in, size_t len, void *userdata)
{
	const struct price_list *pl = userdata; /* the pool's, as at its creation */
	size_t clen;
	const struct terms *t = mpg_task_context(task, &clen);
	struct order o;
	if (!t || clen != sizeof *t)
		return mpg_raise(EINVAL, "this call has no terms (context of %zu bytes)", t ? clen : 0);
	if (len != sizeof o)
		return mpg_raise(EINVAL, "an order is %zu bytes, not %zu", sizeof o, len);
	memcpy(&o, in, sizeof o);
	if (o.product >= NPRODUCTS)
		return mpg_raise(ENOENT, "no product %" PRIu32, o.product);
	int64_t total = price(pl, t, o);
	return mpg_task_set_result(task, &total, sizeof total);
}

int main(void)
{
	/* Built before the pool: the workers get it without any copying of ours. */
	static struct price_list prices;
	for (int i = 0; i < NPRODUCTS; i++)
		prices.cents[i] = 100 + 37 * i;

	mpg_options *opts = NULL;
	mpg_pool *pool = NULL;
	int r;
	if ((r = mpg_options_new(&opts)) < 0 || (r = mpg_options_set_workers(opts, 2)) < 0 ||
	    (r = mpg_options_set_userdata(opts, &prices)) < 0 || (r = mpg_pool_new(opts, &pool)) < 0) {
		fprintf(stderr, "starmap: cannot start the pool: %s\n", strerror(-r));
		mpg_options_free(opts);
		return 1;
	}
	mpg_options_free(opts);

	enum { N = 1000 };
	static struct order orders[N];
	static int64_t totals[N];
	for (uint32_t i = 0; i < N; i++)
		orders[i] = (struct order){.product = (i * 7) % NPRODUCTS, .quantity = 1 + i % 5};

	const struct terms regions[] = {
		{.tax_permille = 200, .discount_percent = 0, .region = "FR"},
		{.tax_permille = 77, .discount_percent = 10, .region = "CH"},
	};
	int ok = 1;
	for (size_t k = 0; k < 2; k++) {
		mpg_options *call = NULL;
		mpg_results *res = NULL;
		if ((r = mpg_options_new(&call)) < 0 ||
		    (r = mpg_options_set_context(call, &regions[k], sizeof regions[k])) < 0 ||
		    (r = mpg_map_array(pool, price_order, orders, sizeof orders[0], N, totals,
				       sizeof totals[0], call, &res)) < 0) {
			fprintf(stderr, "starmap: map for %s: %s\n", regions[k].region, strerror(-r));
			mpg_options_free(call);
			mpg_pool_free(pool);
			return 1;
		}
		mpg_options_free(call);
		int64_t sum = 0, want = 0;
		size_t wrong = 0;
		for (size_t i = 0; i < N; i++) {
			int64_t expect = price(&prices, &regions[k], orders[i]);
			wrong += totals[i] != expect;
			sum += totals[i];
			want += expect;
		}
		const struct terms *t = &regions[k];
		printf("%s (tax %.1f%%, discount %d%%): %d orders, %zu failed, total %" PRId64
		       ".%02" PRId64 " (expected %" PRId64 ".%02" PRId64 ")\n",
		       t->region, t->tax_permille / 10.0, t->discount_percent, N,
		       mpg_results_failed(res), sum / 100, sum % 100, want / 100, want % 100);
		ok &= mpg_results_failed(res) == 0 && wrong == 0;
		mpg_results_free(res);
	}

	/* Without terms, every task refuses: the context belongs to one call. */
	mpg_results *res = NULL;
	if ((r = mpg_map_array(pool, price_order, orders, sizeof orders[0], 1, totals,
			       sizeof totals[0], NULL, &res)) < 0) {
		fprintf(stderr, "starmap: map without terms: %s\n", strerror(-r));
		ok = 0;
	} else {
		const mpg_error *e = mpg_results_error(res, 0);
		printf("a call without terms: %s\n", e ? mpg_error_message(e) : "succeeded?");
		ok &= e && mpg_error_code(e) == EINVAL;
		mpg_results_free(res);
	}
	if ((r = mpg_pool_close(pool)) < 0 || (r = mpg_pool_join(pool)) < 0) {
		fprintf(stderr, "starmap: close/join: %s\n", strerror(-r));
		ok = 0;
	}
	mpg_pool_free(pool);
	printf("%s\n", ok ? "OK" : "UNEXPECTED");
	return ok ? 0 : 1;
}
