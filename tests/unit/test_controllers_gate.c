/* controllers/gate: a replica that loses the Lease pauses its workers between reconciles. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "controllers/gate.h"

static struct gate g;
static atomic_int inside, entered, refused, hold;

/* One worker's reconcile: enters, stays while hold is set, leaves. */
static void *worker(void *arg)
{
	(void)arg;
	if (gate_enter(&g) < 0) {
		atomic_fetch_add(&refused, 1);
		return NULL;
	}
	atomic_fetch_add(&entered, 1);
	atomic_fetch_add(&inside, 1);
	while (atomic_load(&hold))
		usleep(1000);
	atomic_fetch_sub(&inside, 1);
	gate_leave(&g);
	return NULL;
}

static void *closer(void *arg)
{
	gate_close(&g);
	atomic_store((atomic_int *)arg, 1);
	return NULL;
}

static void wait_for(atomic_int *v, int want)
{
	for (int i = 0; i < 2000 && atomic_load(v) != want; i++)
		usleep(1000);
	assert_int_equal(atomic_load(v), want);
}

static void reset(void)
{
	gate_init(&g);
	atomic_store(&inside, 0);
	atomic_store(&entered, 0);
	atomic_store(&refused, 0);
	atomic_store(&hold, 0);
}

/* gate_close() returns only once the reconcile in progress has ended. */
static void close_waits_for_the_running_reconcile(void **state)
{
	(void)state;
	reset();
	atomic_store(&hold, 1);
	pthread_t w, c;
	atomic_int closed = 0;
	pthread_create(&w, NULL, worker, NULL);
	wait_for(&inside, 1);
	pthread_create(&c, NULL, closer, &closed);
	usleep(50000);
	assert_int_equal(atomic_load(&closed), 0);
	atomic_store(&hold, 0);
	pthread_join(c, NULL);
	assert_int_equal(atomic_load(&closed), 1);
	assert_int_equal(atomic_load(&inside), 0);
	pthread_join(w, NULL);
	gate_destroy(&g);
}

/* While closed no reconcile starts; opening lets the waiting worker go on. */
static void closed_gate_holds_workers_until_open(void **state)
{
	(void)state;
	reset();
	gate_close(&g);
	pthread_t w;
	pthread_create(&w, NULL, worker, NULL);
	usleep(50000);
	assert_int_equal(atomic_load(&entered), 0);
	gate_open(&g);
	pthread_join(w, NULL);
	assert_int_equal(atomic_load(&entered), 1);
	gate_destroy(&g);
}

/* A shutdown releases workers held at a closed gate without letting them reconcile. */
static void abort_releases_held_workers(void **state)
{
	(void)state;
	reset();
	gate_close(&g);
	pthread_t w[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&w[i], NULL, worker, NULL);
	usleep(20000);
	gate_abort(&g);
	for (int i = 0; i < 3; i++)
		pthread_join(w[i], NULL);
	assert_int_equal(atomic_load(&refused), 3);
	assert_int_equal(atomic_load(&entered), 0);
	gate_destroy(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(close_waits_for_the_running_reconcile),
	    cmocka_unit_test(closed_gate_holds_workers_until_open),
	    cmocka_unit_test(abort_releases_held_workers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
