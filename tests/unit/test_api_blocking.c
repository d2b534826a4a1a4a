/* api/blocking: per-tenant shares of the threads and the queue bounds. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/blocking.h"

/* A job that holds its thread until released. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int released;
static atomic_int running_a, ran_b, ran_total;

static void slow_a(void *arg)
{
	atomic_fetch_add(&running_a, 1);
	pthread_mutex_lock(&mu);
	while (!released)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	atomic_fetch_add(&ran_total, 1);
}

static void quick_b(void *arg)
{
	atomic_fetch_add(&ran_b, 1);
	atomic_fetch_add(&ran_total, 1);
}

static void wait_until(atomic_int *v, int want)
{
	for (int i = 0; i < 2000 && atomic_load(v) < want; i++)
		usleep(1000);
	assert_int_equal(atomic_load(v), want);
}

/* Tenant A floods with jobs that never end on their own: it gets its running share and its
 * queued share, the rest is refused with -EBUSY, and tenant B's jobs still run at once. */
static void one_tenant_cannot_stall_another(void **state)
{
	struct blocking *b;
	struct blocking_limits lim = {
	    .max_queued = 100, .max_queued_per_tenant = 5, .max_running_per_tenant = 3};
	released = 0;
	atomic_store(&running_a, 0);
	atomic_store(&ran_b, 0);
	atomic_store(&ran_total, 0);
	assert_int_equal(blocking_new(8, &lim, &b), 0);
	assert_int_equal(blocking_start(b), 0);
	int ok = 0, busy = 0;
	for (int i = 0; i < 64; i++) {
		int rc = blocking_submit(b, "a", slow_a, NULL);
		if (rc == 0)
			ok++;
		else if (rc == -EBUSY)
			busy++;
	}
	wait_until(&running_a, 3);
	/* At most 3 running and 5 waiting; the submits raced the threads, so between 5 (no
	 * thread had taken one yet) and 8 got in. */
	assert_true(ok >= 5 && ok <= 8);
	assert_int_equal(ok + busy, 64);
	usleep(20000);
	assert_int_equal(atomic_load(&running_a), 3); /* never more than its share */
	for (int i = 0; i < 5; i++)
		assert_int_equal(blocking_submit(b, "b", quick_b, NULL), 0);
	wait_until(&ran_b, 5);
	pthread_mutex_lock(&mu);
	released = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	blocking_free(b);
	assert_int_equal(atomic_load(&ran_total), ok + 5); /* every accepted job ran once */
}

static void whole_queue_bound(void **state)
{
	struct blocking *b;
	struct blocking_limits lim = {.max_queued = 4, .max_queued_per_tenant = 3};
	atomic_store(&ran_total, 0);
	atomic_store(&ran_b, 0);
	assert_int_equal(blocking_new(2, &lim, &b), 0); /* not started: everything waits */
	assert_int_equal(blocking_submit(b, "x", quick_b, NULL), 0);
	assert_int_equal(blocking_submit(b, "x", quick_b, NULL), 0);
	assert_int_equal(blocking_submit(b, "x", quick_b, NULL), 0);
	assert_int_equal(blocking_submit(b, "x", quick_b, NULL), -EBUSY);
	assert_int_equal(blocking_submit(b, "y", quick_b, NULL), 0);
	assert_int_equal(blocking_submit(b, "z", quick_b, NULL), -EAGAIN);
	struct blocking_limits got;
	blocking_get_limits(b, &got);
	assert_int_equal(got.max_running_per_tenant, 1); /* a quarter of 2, at least 1 */
	blocking_stop(b);				 /* runs what was queued */
	assert_int_equal(atomic_load(&ran_b), 4);
	assert_int_equal(blocking_submit(b, "x", quick_b, NULL), -ESHUTDOWN);
	blocking_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(one_tenant_cannot_stall_another),
	    cmocka_unit_test(whole_queue_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
