/* udf/naming: the names of tenants' namespaces and of UdfFunctions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "udf/naming.h"

static void tenant_namespaces_are_injective(void **state)
{
	char a[64], b[64], c[64];
	assert_int_equal(naming_tenant_namespace("udf-", "a_b", a), 0);
	assert_int_equal(naming_tenant_namespace("udf-", "a-b", b), 0);
	assert_int_equal(naming_tenant_namespace("udf-", "A_B", c), 0);
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, c);
	assert_memory_equal(a, "udf-a-b-", 8);
	assert_int_equal(strlen(a), 8 + NAMING_HASH_HEX);

	char t[129];
	memset(t, 'x', 128);
	t[128] = '\0';
	char err[128];
	assert_int_equal(naming_tenant_check(t, err, sizeof(err)), 0);
	assert_int_equal(naming_tenant_namespace("udf-", t, a), 0);
	assert_true(strlen(a) <= 63);
	t[0] = '_';
	t[1] = '_';
	assert_int_equal(naming_tenant_namespace("udf-", "__", a), 0);
	assert_true(a[strlen("udf-")] != '-');
}

static void tenant_validation(void **state)
{
	char err[128];
	char t[130];
	memset(t, 'x', 129);
	t[129] = '\0';
	assert_int_equal(naming_tenant_check("", err, sizeof(err)), -EINVAL);
	assert_int_equal(naming_tenant_check(NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(naming_tenant_check(t, err, sizeof(err)), -EINVAL);
	assert_int_equal(naming_tenant_check("a\tb", err, sizeof(err)), -EINVAL);
	assert_int_equal(naming_tenant_check("caf\xc3\xa9", err, sizeof(err)), -EINVAL);
	assert_int_equal(naming_tenant_check("test_tenant", err, sizeof(err)), 0);
	assert_true(naming_prefix_valid("udf-"));
	assert_false(naming_prefix_valid("-udf"));
	assert_false(naming_prefix_valid("Udf"));
	assert_false(naming_prefix_valid(""));
}

static void function_name_schemes(void **state)
{
	char a[64], b[64], c[64];
	assert_int_equal(naming_function_udf("add_one", "0123456789abcdef", a), 0);
	assert_string_equal(a, "udf-add-one-0123456789");
	assert_int_equal(naming_function_resource("0123456789abcdef", b), 0);
	assert_string_equal(b, "r-0123456789");
	assert_int_equal(naming_function_record("add_one", c), 0);
	assert_memory_equal(c, "w-add-one-", 10);
	assert_int_equal(strlen(c), 10 + NAMING_HASH_HEX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tenant_namespaces_are_injective),
	    cmocka_unit_test(tenant_validation),
	    cmocka_unit_test(function_name_schemes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
