#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imports.h"
#include "spec.h"

static int parse(const char *json, struct spec_request *req, char *err, size_t errlen)
{
	return spec_parse(json, strlen(json), req, err, errlen);
}

#define GOOD_SPEC                                                                                  \
	"{\"function\":\"add_one\",\"tenant\":\"t1\",\"token\":\"tok\",\"env\":{\"A\":\"1\"},"     \
	"\"spec\":{\"handler\":\"add_one\",\"input_types\":[\"INT NULL\"],"                        \
	"\"result_type\":\"INT\",\"code\":\"def add_one(x):\\n    return x + 1\\n\","              \
	"\"packages\":[\"numpy==1.26\"],\"imports\":[{\"location\":\"@s/dir/helper.py\","          \
	"\"url\":\"https://h/x?sig=1\",\"tag\":\"e1\",\"headers\":{\"x-h\":\"v\"}}],"              \
	"\"runtime_version\":\"3.12.2\"}}"

static void structured_request_parses(void **state)
{
	struct spec_request req;
	char err[256];

	assert_int_equal(parse(GOOD_SPEC, &req, err, sizeof(err)), 0);
	assert_string_equal(req.function, "add_one");
	assert_string_equal(req.tenant, "t1");
	assert_string_equal(req.token, "tok");
	assert_int_equal(req.n_env, 1);
	assert_string_equal(req.env[0].name, "A");
	assert_string_equal(req.handler, "add_one");
	assert_int_equal(req.n_input_types, 1);
	assert_string_equal(req.input_types[0], "INT NULL");
	assert_string_equal(req.result_type, "INT");
	assert_int_equal(req.n_packages, 1);
	assert_int_equal(req.n_imports, 1);
	assert_string_equal(req.imports[0].location, "@s/dir/helper.py");
	assert_string_equal(req.imports[0].headers[0].name, "x-h");
	assert_null(req.script);
	assert_non_null(req.canonical);
	spec_free(&req);
}

static void canonical_ignores_presigned_urls(void **state)
{
	struct spec_request a, b;
	char err[256], *other = strdup(GOOD_SPEC), *p = strstr(other, "sig=1");

	p[4] = '2';
	assert_int_equal(parse(GOOD_SPEC, &a, err, sizeof(err)), 0);
	assert_int_equal(parse(other, &b, err, sizeof(err)), 0);
	assert_string_equal(a.canonical, b.canonical);
	spec_free(&a);
	spec_free(&b);
	free(other);
}

static void script_request_parses(void **state)
{
	struct spec_request req;
	char err[256];

	assert_int_equal(parse("{\"function\":\"f\",\"tenant\":\"t\",\"token\":\"k\","
			       "\"script\":\"#!/bin/bash\\nexec python /app/server.py\\n\"}",
			       &req, err, sizeof(err)),
			 0);
	assert_non_null(req.script);
	assert_null(req.handler);
	spec_free(&req);
}

static void expect_error(const char *json, const char *field)
{
	struct spec_request req;
	char err[256];

	assert_int_equal(parse(json, &req, err, sizeof(err)), -22);
	if (!strstr(err, field))
		fail_msg("error \"%s\" does not name \"%s\"", err, field);
}

static void bad_requests_name_the_field(void **state)
{
	expect_error("{", "malformed JSON");
	expect_error("[]", "JSON object");
	expect_error("{\"tenant\":\"t\",\"token\":\"k\",\"script\":\"x\"}", "function");
	expect_error("{\"function\":\"\",\"tenant\":\"t\",\"token\":\"k\",\"script\":\"x\"}",
		     "function");
	expect_error("{\"function\":\"f\",\"token\":\"k\",\"script\":\"x\"}", "tenant");
	expect_error("{\"function\":\"f\",\"tenant\":\"t\",\"script\":\"x\"}", "token");
	expect_error("{\"function\":\"f\",\"tenant\":\"t\",\"token\":\"k\"}", "spec");
	expect_error(
	    "{\"function\":\"f\",\"tenant\":\"t\",\"token\":\"k\",\"spec\":{"
	    "\"handler\":\"1x\",\"input_types\":[],\"result_type\":\"INT\",\"code\":\"\"}}",
	    "spec.handler");
	expect_error("{\"function\":\"f\",\"tenant\":\"t\",\"token\":\"k\",\"spec\":{"
		     "\"handler\":\"f\",\"input_types\":[\"INT\",\"FOO\"],\"result_type\":\"INT\","
		     "\"code\":\"x\"}}",
		     "spec.input_types[1]");
	expect_error("{\"function\":\"f\",\"tenant\":\"t\",\"token\":\"k\",\"spec\":{"
		     "\"handler\":\"f\",\"input_types\":[],\"result_type\":\"INT NOT\","
		     "\"code\":\"x\"}}",
		     "spec.result_type");
	expect_error("{\"function\":\"f\",\"tenant\":\"t\",\"token\":\"k\",\"env\":{\"1A\":\"x\"},"
		     "\"script\":\"x\"}",
		     "env");
	expect_error("{\"function\":\"f\",\"tenant\":\"t\",\"token\":\"k\",\"spec\":{"
		     "\"handler\":\"f\",\"input_types\":[],\"result_type\":\"INT\",\"code\":\"x\","
		     "\"imports\":[{\"location\":\"@s/\",\"url\":\"http://h/\"}]}}",
		     "does not name a file");
	expect_error("{\"function\":\"f\",\"tenant\":\"t\",\"token\":\"k\",\"spec\":{"
		     "\"handler\":\"f\",\"input_types\":[],\"result_type\":\"INT\",\"code\":\"x\","
		     "\"imports\":[{\"location\":\"@s/a\",\"url\":\"http://h/\","
		     "\"headers\":{\"a\\nb\":\"v\"}}]}}",
		     "headers");
}

static void code_over_one_mebibyte_is_refused(void **state)
{
	size_t n = (1u << 20) + 1, head;
	const char *prefix = "{\"function\":\"f\",\"tenant\":\"t\",\"token\":\"k\",\"spec\":{"
			     "\"handler\":\"f\",\"input_types\":[],\"result_type\":\"INT\","
			     "\"code\":\"";
	char *json = malloc(strlen(prefix) + n + 8), err[256];
	struct spec_request req;

	head = strlen(prefix);
	memcpy(json, prefix, head);
	memset(json + head, 'x', n);
	strcpy(json + head + n, "\"}}");
	assert_int_equal(spec_parse(json, strlen(json), &req, err, sizeof(err)), -22);
	assert_non_null(strstr(err, "spec.code"));
	free(json);
}

static void types(void **state)
{
	static const char *good[] = {
	    "INT",
	    "INT NULL",
	    "int not null",
	    "VARCHAR NULL",
	    "DECIMAL(10, 2) NULL",
	    "DECIMAL(76,76)",
	    "ARRAY(INT32) NULL",
	    "ARRAY(ARRAY(VARCHAR NULL))",
	    "MAP(VARCHAR, DECIMAL(10, 2) NULL)",
	    "TUPLE(INT, VARCHAR NULL, ARRAY(INT))",
	    "TIMESTAMP NULL",
	    "VECTOR(1024)",
	    "UINT64",
	    "TINYINT UNSIGNED",
	    "VARIANT NULL",
	    "BINARY",
	    "DATE",
	    "BOOLEAN",
	    "DOUBLE NULL",
	    "DECIMAL(10)",
	    "NUMERIC NULL",
	    "REAL",
	    "DOUBLE PRECISION",
	    "BLOB",
	    "CHAR(3)",
	    "INT(11) UNSIGNED NULL",
	    "NULLABLE(ARRAY(NULLABLE(INT)))",
	    "TUPLE(a INT, b MAP(STRING, JSON NULL))",
	};
	static const char *bad[] = {
	    "",
	    "WIBBLE",
	    "INT NOT",
	    "INT NULL NULL",
	    "DECIMAL(0, 0)",
	    "DECIMAL(10, 11)",
	    "ARRAY()",
	    "ARRAY(INT",
	    "MAP(INT)",
	    "TUPLE()",
	    "VECTOR(0)",
	    "INT; DROP TABLE",
	    "INTEGRAL",
	    "INT32X",
	    /* Valid Databend types databend-udf has no Arrow form for. */
	    "GEOMETRY",
	    "GEOGRAPHY NULL",
	    "BITMAP",
	    "INTERVAL",
	    "TIMESTAMP WITH TIME ZONE",
	    "STAGE_LOCATION",
	    "ARRAY(MAP(INT, TUPLE(a BITMAP)))",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!spec_type_servable(good[i]))
			fail_msg("\"%s\" should be valid", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (spec_type_servable(bad[i]))
			fail_msg("\"%s\" should be invalid", bad[i]);
}

/* The stub gets the shared grammar's canonical spelling; types it cannot serve are named. */
static void served_types(void **state)
{
	struct spec_request req;
	char err[256];

	assert_int_equal(
	    parse("{\"function\":\"f\",\"tenant\":\"t\",\"token\":\"k\",\"spec\":{"
		  "\"handler\":\"f\",\"input_types\":[\"int null\",\"NULLABLE(REAL)\","
		  "\"TUPLE(a CHAR(3), b NUMERIC)\"],\"result_type\":\"BIGINT UNSIGNED\","
		  "\"code\":\"x\"}}",
		  &req, err, sizeof(err)),
	    0);
	assert_string_equal(req.input_types[0], "int null");
	assert_string_equal(req.served_input_types[0], "INT32 NULL");
	assert_string_equal(req.served_input_types[1], "FLOAT32 NULL");
	assert_string_equal(req.served_input_types[2], "TUPLE(STRING, DECIMAL(18, 3))");
	assert_string_equal(req.served_result_type, "UINT64");
	spec_free(&req);

	assert_int_equal(
	    parse("{\"function\":\"f\",\"tenant\":\"t\",\"token\":\"k\",\"spec\":{"
		  "\"handler\":\"f\",\"input_types\":[\"INT\",\"ARRAY(GEOMETRY NULL)\"],"
		  "\"result_type\":\"INT\",\"code\":\"x\"}}",
		  &req, err, sizeof(err)),
	    -22);
	assert_non_null(strstr(err, "spec.input_types[1]"));
	assert_non_null(strstr(err, "cannot serve Databend type GEOMETRY"));
	assert_int_equal(
	    parse("{\"function\":\"f\",\"tenant\":\"t\",\"token\":\"k\",\"spec\":{"
		  "\"handler\":\"f\",\"input_types\":[],\"result_type\":\"BITMAP NULL\","
		  "\"code\":\"x\"}}",
		  &req, err, sizeof(err)),
	    -22);
	assert_non_null(strstr(err, "spec.result_type"));
	assert_non_null(strstr(err, "BITMAP"));
}

static void identifiers(void **state)
{
	assert_true(spec_python_identifier("add_one"));
	assert_true(spec_python_identifier("_x9"));
	assert_false(spec_python_identifier("9x"));
	assert_false(spec_python_identifier("a-b"));
	assert_false(spec_python_identifier("lambda"));
	assert_false(spec_python_identifier(""));
	assert_false(spec_python_identifier("é"));
}

static void pep723(void **state)
{
	const char *code = "# /// script\n"
			   "# requires-python = \">=3.11\"\n"
			   "# dependencies = [\n"
			   "#   \"requests<3\",\n"
			   "#   'rich',  # a comment\n"
			   "# ]\n"
			   "# ///\n"
			   "import requests\n";
	char **deps = NULL;
	size_t n = 0, i;

	assert_int_equal(spec_pep723_dependencies(code, &deps, &n, 16), 0);
	assert_int_equal(n, 2);
	assert_string_equal(deps[0], "requests<3");
	assert_string_equal(deps[1], "rich");
	for (i = 0; i < n; i++)
		free(deps[i]);
	free(deps);
	n = 0;
	deps = NULL;
	assert_int_equal(spec_pep723_dependencies("print(1)\n", &deps, &n, 16), 0);
	assert_int_equal(n, 0);
	assert_int_equal(
	    spec_pep723_dependencies("# /// script\n# dependencies = [\n", &deps, &n, 16), -22);
}

static void import_names(void **state)
{
	char a[17], b[17], c[17];

	assert_string_equal(imports_basename("@stage/a/b/helper.py"), "helper.py");
	assert_string_equal(imports_basename("helper.py"), "helper.py");
	imports_cache_key("@s/a.py", "e1", a);
	imports_cache_key("@s/a.py", "e2", b);
	imports_cache_key("@s/a.pye", "1", c);
	assert_int_equal(strlen(a), 16);
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(structured_request_parses),
	    cmocka_unit_test(canonical_ignores_presigned_urls),
	    cmocka_unit_test(script_request_parses),
	    cmocka_unit_test(bad_requests_name_the_field),
	    cmocka_unit_test(code_over_one_mebibyte_is_refused),
	    cmocka_unit_test(types),
	    cmocka_unit_test(served_types),
	    cmocka_unit_test(identifiers),
	    cmocka_unit_test(pep723),
	    cmocka_unit_test(import_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
