/* controllers/expectations: creates and deletes in flight, settled by name, expiring. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "controllers/expectations.h"

static void settle_by_name(void **state)
{
	(void)state;
	struct expectations *e;
	assert_int_equal(exp_new(0, &e), 0);
	assert_int_equal(exp_expect(e, "ns/p", EXP_CREATE, "p-1"), 0);
	assert_int_equal(exp_expect(e, "ns/p", EXP_CREATE, "p-2"), 0);
	assert_int_equal(exp_expect(e, "ns/p", EXP_DELETE, "p-0"), 0);
	assert_int_equal(exp_expect(e, "ns/q", EXP_CREATE, "q-1"), 0);
	assert_int_equal(exp_pending(e, "ns/p", EXP_CREATE), 2);
	assert_int_equal(exp_pending(e, "ns/p", EXP_DELETE), 1);
	assert_true(exp_has(e, "ns/p", EXP_DELETE, "p-0"));
	assert_false(exp_has(e, "ns/p", EXP_CREATE, "p-0"));

	/* An event for another name, kind or owner settles nothing. */
	exp_observe(e, "ns/p", EXP_CREATE, "p-3");
	exp_observe(e, "ns/p", EXP_DELETE, "p-1");
	exp_observe(e, "ns/q", EXP_CREATE, "p-1");
	assert_int_equal(exp_pending(e, "ns/p", EXP_CREATE), 2);

	exp_observe(e, "ns/p", EXP_CREATE, "p-1");
	exp_observe(e, "ns/p", EXP_CREATE, "p-1"); /* twice: no harm */
	assert_int_equal(exp_pending(e, "ns/p", EXP_CREATE), 1);
	exp_observe(e, "ns/p", EXP_CREATE, "p-2");
	exp_observe(e, "ns/p", EXP_DELETE, "p-0");
	assert_int_equal(exp_pending(e, "ns/p", EXP_CREATE), 0);
	assert_int_equal(exp_pending(e, "ns/p", EXP_DELETE), 0);
	assert_int_equal(exp_pending(e, "ns/q", EXP_CREATE), 1);
	exp_forget(e, "ns/q");
	assert_int_equal(exp_pending(e, "ns/q", EXP_CREATE), 0);
	exp_free(e);
}

static void expire(void **state)
{
	(void)state;
	struct expectations *e;
	assert_int_equal(exp_new(50, &e), 0);
	assert_int_equal(exp_expect(e, "ns/p", EXP_CREATE, "p-1"), 0);
	assert_int_equal(exp_pending(e, "ns/p", EXP_CREATE), 1);
	struct timespec ts = {0, 80 * 1000 * 1000};
	nanosleep(&ts, NULL);
	assert_int_equal(exp_pending(e, "ns/p", EXP_CREATE), 0);
	assert_false(exp_has(e, "ns/p", EXP_CREATE, "p-1"));
	exp_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(settle_by_name),
	    cmocka_unit_test(expire),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
