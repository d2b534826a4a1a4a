/* controllers/naming and the status contract of controllers/functions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "functions.h"
#include "naming.h"

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
	assert_int_equal(naming_tenant_valid(t, err, sizeof(err)), 0);
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
	assert_int_equal(naming_tenant_valid("", err, sizeof(err)), -EINVAL);
	assert_int_equal(naming_tenant_valid(NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(naming_tenant_valid(t, err, sizeof(err)), -EINVAL);
	assert_int_equal(naming_tenant_valid("a\tb", err, sizeof(err)), -EINVAL);
	assert_int_equal(naming_tenant_valid("caf\xc3\xa9", err, sizeof(err)), -EINVAL);
	assert_int_equal(naming_tenant_valid("test_tenant", err, sizeof(err)), 0);
	assert_true(naming_prefix_valid("udf-"));
	assert_false(naming_prefix_valid("-udf"));
	assert_false(naming_prefix_valid("Udf"));
	assert_false(naming_prefix_valid(""));
}

static struct fn_status status_of(const char *json)
{
	static cJSON *keep;
	cJSON_Delete(keep);
	keep = cJSON_Parse(json);
	assert_non_null(keep);
	struct fn_status st;
	functions_read_status(keep, &st);
	return st;
}

static void status_contract(void **state)
{
	struct fn_status st =
	    status_of("{\"metadata\":{\"generation\":2},\"status\":{\"observedGeneration\":2,"
		      "\"endpoint\":\"http://e:8815\",\"tokenSecretName\":\"s\",\"conditions\":"
		      "[{\"type\":\"Ready\",\"status\":\"True\"}]}}");
	assert_true(st.ready);
	assert_string_equal(st.endpoint, "http://e:8815");
	assert_string_equal(st.token_secret, "s");

	/* Stale: written for generation 1. */
	st = status_of("{\"metadata\":{\"generation\":2},\"status\":{\"observedGeneration\":1,"
		       "\"endpoint\":\"http://e:8815\",\"tokenSecretName\":\"s\",\"conditions\":"
		       "[{\"type\":\"Ready\",\"status\":\"True\"}]}}");
	assert_false(st.ready);
	assert_null(st.endpoint);

	/* Endpoint known, not ready. */
	st = status_of("{\"metadata\":{\"generation\":1},\"status\":{\"observedGeneration\":1,"
		       "\"endpoint\":\"http://e:8815\",\"conditions\":"
		       "[{\"type\":\"Ready\",\"status\":\"False\",\"reason\":\"Specializing\"}]}}");
	assert_false(st.ready);
	assert_false(st.failed);
	assert_non_null(st.endpoint);

	/* A failed step. */
	st = status_of(
	    "{\"metadata\":{\"generation\":1},\"status\":{\"observedGeneration\":1,"
	    "\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"},"
	    "{\"type\":\"PackagesInstalled\",\"status\":\"False\",\"message\":\"no pkg\"}]}}");
	assert_true(st.failed);
	assert_string_equal(st.message, "no pkg");

	/* Ready False with a *Failed reason. */
	st = status_of("{\"metadata\":{\"generation\":1},\"status\":{\"observedGeneration\":1,"
		       "\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\","
		       "\"reason\":\"ImportFetchFailed\",\"message\":\"404\"}]}}");
	assert_true(st.failed);

	/* Nothing yet. */
	st = status_of("{\"metadata\":{\"generation\":1}}");
	assert_false(st.ready);
	assert_false(st.failed);
	assert_null(st.endpoint);
	status_of("{}");
}

static void function_object(void **state)
{
	const char *types[] = {"INT NULL"};
	struct fn_import im = {"@s/a.py", "https://h/a.py?sig", "\"e\""};
	struct fn_kv tags[] = {{"team", "data"}};
	struct fn_desc d = {.tenant = "test_tenant",
			    .name = "udf-add-one-0123456789",
			    .function_name = "add_one",
			    .content_key = "abc",
			    .protocol = FN_PROTO_UDF,
			    .handler = "add_one",
			    .input_types = types,
			    .n_input_types = 1,
			    .result_type = "INT NULL",
			    .code = "def add_one(x): return x",
			    .imports = &im,
			    .n_imports = 1,
			    .runtime_version = "3.12",
			    .tags = tags,
			    .n_tags = 1};
	cJSON *obj = functions_object(&d, "udf-test-tenant-x");
	assert_non_null(obj);
	char *text = cJSON_PrintUnformatted(obj);
	assert_non_null(strstr(text, "\"tenant\":\"test_tenant\""));
	assert_non_null(strstr(text, "\"udf.sandbox.io/content-key\":\"abc\""));
	assert_non_null(strstr(text, "\"inputTypes\":[\"INT NULL\"]"));
	assert_non_null(strstr(text, "\"tag\":\"\\\"e\\\"\""));
	assert_non_null(strstr(text, "\"tags\":{\"team\":\"data\"}"));
	assert_null(strstr(text, "\"script\""));
	free(text);
	cJSON_Delete(obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tenant_namespaces_are_injective),
	    cmocka_unit_test(tenant_validation),
	    cmocka_unit_test(status_contract),
	    cmocka_unit_test(function_object),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
