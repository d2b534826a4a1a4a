/* controllers/runner: a controller's workers on its workqueue, paused while it does not lead. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "controllers/runner.h"

/* What the reconcile saw: calls per key ("a", "b", "c", "fail-once"), and a hold flag that
 * keeps a reconcile of "slow" running. */
static atomic_int calls_a, calls_b, calls_c, calls_fail, calls_slow, inside, hold;

static int reconcile(void *arg, const char *key)
{
	(void)arg;
	if (strcmp(key, "a") == 0)
		atomic_fetch_add(&calls_a, 1);
	else if (strcmp(key, "b") == 0)
		atomic_fetch_add(&calls_b, 1);
	else if (strcmp(key, "c") == 0)
		atomic_fetch_add(&calls_c, 1);
	else if (strcmp(key, "fail-once") == 0)
		return atomic_fetch_add(&calls_fail, 1) == 0 ? -1 : 0;
	else if (strcmp(key, "slow") == 0) {
		atomic_fetch_add(&calls_slow, 1);
		atomic_fetch_add(&inside, 1);
		while (atomic_load(&hold))
			usleep(1000);
		atomic_fetch_sub(&inside, 1);
	}
	return 0;
}

static void wait_for(atomic_int *v, int want)
{
	for (int i = 0; i < 2000 && atomic_load(v) != want; i++)
		usleep(1000);
	assert_int_equal(atomic_load(v), want);
}

static void reset(struct runner *r, int workers)
{
	atomic_store(&calls_a, 0);
	atomic_store(&calls_b, 0);
	atomic_store(&calls_c, 0);
	atomic_store(&calls_fail, 0);
	atomic_store(&calls_slow, 0);
	atomic_store(&inside, 0);
	atomic_store(&hold, 0);
	memset(r, 0, sizeof(*r));
	assert_int_equal(runner_init(r, "test", "test controller", workers, reconcile, NULL), 0);
}

/* Nothing runs before start; after it every key is reconciled once. */
static void start_runs_every_queued_key(void **state)
{
	(void)state;
	struct runner r;
	reset(&r, 2);
	wq_add(r.wq, "a");
	wq_add(r.wq, "b");
	usleep(20000);
	assert_int_equal(atomic_load(&calls_a), 0);
	assert_false(runner_started(&r));
	assert_int_equal(runner_start(&r), 0);
	assert_true(runner_started(&r));
	wq_add(r.wq, "c");
	wait_for(&calls_a, 1);
	wait_for(&calls_b, 1);
	wait_for(&calls_c, 1);
	runner_destroy(&r);
}

/* A failed reconcile comes back (rate limited), a successful one does not. */
static void failure_requeues_the_key(void **state)
{
	(void)state;
	struct runner r;
	reset(&r, 1);
	assert_int_equal(runner_start(&r), 0);
	wq_add(r.wq, "fail-once");
	wait_for(&calls_fail, 2);
	usleep(50000);
	assert_int_equal(atomic_load(&calls_fail), 2);
	runner_destroy(&r);
}

static void *pauser(void *arg)
{
	runner_pause(arg);
	return NULL;
}

/* Pause waits for the reconcile in progress, then starts none until started again; the
 * queue keeps what was added meanwhile. */
static void pause_holds_keys_until_start(void **state)
{
	(void)state;
	struct runner r;
	pthread_t p;
	reset(&r, 2);
	assert_int_equal(runner_start(&r), 0);
	atomic_store(&hold, 1);
	wq_add(r.wq, "slow");
	wait_for(&inside, 1);
	pthread_create(&p, NULL, pauser, &r);
	usleep(30000);
	assert_int_equal(atomic_load(&inside), 1); /* still running: pause waits for it */
	atomic_store(&hold, 0);
	pthread_join(p, NULL);
	assert_int_equal(atomic_load(&inside), 0);
	wq_add(r.wq, "a");
	usleep(50000);
	assert_int_equal(atomic_load(&calls_a), 0);
	assert_int_equal(runner_start(&r), 0); /* leading again */
	wait_for(&calls_a, 1);
	runner_destroy(&r);
}

/* Stop releases workers held while paused, without a reconcile; destroy is safe on a zeroed
 * runner. */
static void stop_while_paused_and_destroy_zeroed(void **state)
{
	(void)state;
	struct runner r, zero;
	reset(&r, 3);
	assert_int_equal(runner_start(&r), 0);
	runner_pause(&r);
	wq_add(r.wq, "a");
	usleep(20000);
	runner_stop(&r);
	assert_int_equal(atomic_load(&calls_a), 0);
	runner_destroy(&r);
	memset(&zero, 0, sizeof(zero));
	runner_destroy(&zero);
	runner_pause(&zero);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(start_runs_every_queued_key),
	    cmocka_unit_test(failure_requeues_the_key),
	    cmocka_unit_test(pause_holds_keys_until_start),
	    cmocka_unit_test(stop_while_paused_and_destroy_zeroed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
