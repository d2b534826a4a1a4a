/* udf/function: the UdfFunction object and the status contract. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "udf/function.h"

static struct fn_status status_of(const char *json)
{
	static cJSON *keep;
	cJSON_Delete(keep);
	keep = cJSON_Parse(json);
	assert_non_null(keep);
	struct fn_status st;
	fn_read_status(keep, &st);
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
			    .protocol = FN_PROTO_UDF_SERVICE,
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
	cJSON *obj = NULL;
	assert_int_equal(fn_object(&d, "udf-test-tenant-x", &obj), 0);
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
	    cmocka_unit_test(status_contract),
	    cmocka_unit_test(function_object),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
