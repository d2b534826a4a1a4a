/* The work queue: client-go's ordering, coalescing, delays and rate limits. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kube/workqueue.h"

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fifo_order_and_coalescing(void **state)
{
	struct workqueue *q;
	char *k;
	assert_int_equal(wq_new(NULL, &q), 0);
	wq_add(q, "ns/a");
	wq_add(q, "ns/b");
	wq_add(q, "ns/a");
	wq_add(q, "ns/c");
	assert_int_equal(wq_len(q), 3);
	k = wq_get(q);
	assert_string_equal(k, "ns/a");
	wq_done(q, k);
	k = wq_get(q);
	assert_string_equal(k, "ns/b");
	wq_done(q, k);
	k = wq_get(q);
	assert_string_equal(k, "ns/c");
	wq_done(q, k);
	assert_int_equal(wq_len(q), 0);
	wq_free(q);
}

static void add_during_processing_gives_one_more_pass(void **state)
{
	struct workqueue *q;
	char *k;
	assert_int_equal(wq_new(NULL, &q), 0);
	wq_add(q, "k");
	k = wq_get(q);
	/* Being processed: adds wait, and several coalesce into one more pass. */
	wq_add(q, "k");
	wq_add(q, "k");
	wq_add(q, "k");
	assert_int_equal(wq_len(q), 0);
	wq_done(q, k);
	assert_int_equal(wq_len(q), 1);
	k = wq_get(q);
	assert_string_equal(k, "k");
	wq_done(q, k);
	assert_int_equal(wq_len(q), 0);
	wq_free(q);
}

static void add_after_only_moves_earlier(void **state)
{
	struct workqueue *q;
	uint64_t t0;
	char *k;

	assert_int_equal(wq_new(NULL, &q), 0);
	t0 = now_ms();
	wq_add_after(q, "k", 10 * 1000000ull);
	wq_add_after(q, "k", 50 * 1000ull); /* earlier: wins */
	k = wq_get(q);
	assert_true(now_ms() - t0 >= 50 && now_ms() - t0 < 2000);
	wq_done(q, k);

	t0 = now_ms();
	wq_add_after(q, "k", 50 * 1000ull);
	wq_add_after(q, "k", 10 * 1000000ull); /* later: ignored */
	k = wq_get(q);
	assert_true(now_ms() - t0 < 2000);
	wq_done(q, k);
	assert_int_equal(wq_len(q), 0);

	/* Delayed keys come out in time order. */
	wq_add_after(q, "late", 120 * 1000ull);
	wq_add_after(q, "early", 30 * 1000ull);
	k = wq_get(q);
	assert_string_equal(k, "early");
	wq_done(q, k);
	k = wq_get(q);
	assert_string_equal(k, "late");
	wq_done(q, k);
	wq_free(q);
}

static void per_key_exponential_and_forget(void **state)
{
	struct workqueue *q;
	assert_int_equal(wq_new(NULL, &q), 0);
	assert_int_equal(wq_when(q, "k"), 5000);
	assert_int_equal(wq_when(q, "k"), 10000);
	assert_int_equal(wq_when(q, "k"), 20000);
	assert_int_equal(wq_num_requeues(q, "k"), 3);
	assert_int_equal(wq_when(q, "other"), 5000);
	wq_forget(q, "k");
	assert_int_equal(wq_num_requeues(q, "k"), 0);
	assert_int_equal(wq_when(q, "k"), 5000);
	wq_free(q);

	/* Capped at 1000 s, however many failures. Use a big bucket so it doesn't interfere. */
	struct wq_limits lim = {.qps = 1e9, .burst = 1000000};
	assert_int_equal(wq_new(&lim, &q), 0);
	for (int i = 0; i < 100; i++)
		wq_when(q, "k");
	assert_int_equal(wq_when(q, "k"), 1000ull * 1000000u);
	wq_free(q);
}

static void token_bucket_limits_overall_rate(void **state)
{
	struct workqueue *q;
	char key[32];
	uint64_t d;

	assert_int_equal(wq_new(NULL, &q), 0);
	/* Burst of 100 first failures of distinct keys: only the 5 ms per-key delay. */
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		d = wq_when(q, key);
		assert_true(d == 5000);
	}
	/* Then 10/s: the 101st waits about 100 ms, the 110th about 1 s. */
	d = wq_when(q, "k100");
	assert_true(d > 80000 && d <= 100000);
	for (int i = 101; i < 110; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		d = wq_when(q, key);
	}
	assert_true(d > 900000 && d <= 1000000);
	wq_free(q);
}

static void shutdown_wakes_getters(void **state)
{
	struct workqueue *q;
	assert_int_equal(wq_new(NULL, &q), 0);
	wq_add(q, "left");
	wq_shutdown(q);
	/* Items already queued are still handed out, then NULL. */
	char *k = wq_get(q);
	assert_string_equal(k, "left");
	wq_done(q, k);
	assert_null(wq_get(q));
	assert_true(wq_add(q, "x") < 0);
	wq_free(q);
}

#define NKEYS 20

struct concurrency {
	atomic_int busy[NKEYS];
	atomic_int passes[NKEYS];
	atomic_int overlap;
	atomic_int fail_once[NKEYS];
};

static int handler(void *arg, const char *key)
{
	struct concurrency *c = arg;
	int i = atoi(key + 1);
	if (atomic_fetch_add(&c->busy[i], 1) != 0)
		atomic_store(&c->overlap, 1);
	usleep(200);
	atomic_fetch_add(&c->passes[i], 1);
	atomic_fetch_sub(&c->busy[i], 1);
	/* Each key fails once: it must come back through the rate limiter. */
	return atomic_exchange(&c->fail_once[i], 0);
}

static void workers_never_share_a_key(void **state)
{
	static struct concurrency c;
	struct workqueue *q;
	char key[16];

	for (int i = 0; i < NKEYS; i++)
		atomic_store(&c.fail_once[i], 1);
	assert_int_equal(wq_new(NULL, &q), 0);
	assert_int_equal(wq_run(q, 4, handler, &c), 0);
	for (int round = 0; round < 200; round++) {
		for (int i = 0; i < NKEYS; i++) {
			snprintf(key, sizeof(key), "k%d", i);
			wq_add(q, key);
		}
		usleep(100);
	}
	usleep(300 * 1000);
	assert_int_equal(wq_len(q), 0);
	wq_free(q);
	assert_int_equal(atomic_load(&c.overlap), 0);
	for (int i = 0; i < NKEYS; i++) {
		/* Coalesced: far fewer passes than the 200 adds, but at least 2 (the failure). */
		assert_true(atomic_load(&c.passes[i]) >= 2);
		assert_true(atomic_load(&c.passes[i]) <= 201);
		assert_int_equal(atomic_load(&c.fail_once[i]), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fifo_order_and_coalescing),
	    cmocka_unit_test(add_during_processing_gives_one_more_pass),
	    cmocka_unit_test(add_after_only_moves_earlier),
	    cmocka_unit_test(per_key_exponential_and_forget),
	    cmocka_unit_test(token_bucket_limits_overall_rate),
	    cmocka_unit_test(shutdown_wakes_getters),
	    cmocka_unit_test(workers_never_share_a_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
