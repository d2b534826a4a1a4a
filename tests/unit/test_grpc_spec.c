/* grpc/udf_spec, grpc/content_key: generation 1's request checks and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/databend_type.h"
#include "grpc/udf_spec.h"

#define SPEC(code, imports)                                                                        \
	"{\"version\":1,\"kind\":\"udf\",\"language\":\"python\",\"handler\":\"add_one\","         \
	"\"input_types\":[\"INT NULL\"],\"result_type\":\"INT NULL\",\"imports\":" imports ","     \
	"\"packages\":[],\"runtime_version\":\"3.12.2\",\"code\":\"" code "\"}"

static const struct udf_import_in helper_a = {"@s/imports/helper.py", "https://h/helper.py?sig=1",
					      "\"etag-a\""};

static int parse(const char *json, const struct udf_import_in *im, size_t n, struct udf_spec *s,
		 char *err)
{
	return udf_spec_parse(json, strlen(json), im, n, s, err, 512);
}

static void types(void **state)
{
	const char *good[] = {"INT",
			      "INT NULL",
			      "int null",
			      "BIGINT NOT NULL",
			      "UINT64",
			      "DECIMAL(38, 10)",
			      "DECIMAL(18,2) NULL",
			      "ARRAY(INT NULL) NULL",
			      "MAP(VARCHAR, ARRAY(INT))",
			      "TUPLE(INT, VARCHAR NULL, DATE)",
			      "VECTOR(128)",
			      "TIMESTAMP",
			      "VARIANT NULL",
			      "BINARY"};
	const char *bad[] = {"",	  "INTEGRAL",	     "ARRAY(INT",
			     "ARRAY()",	  "DECIMAL(10, 11)", "DECIMAL(99, 1)",
			     "MAP(INT)",  "TUPLE()",	     "INT NULL NULL",
			     "INT; DROP", "VECTOR(0)",	     "INT NOT"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!databend_type_valid(good[i]))
			fail_msg("%s should be valid", good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (databend_type_valid(bad[i]))
			fail_msg("%s should be invalid", bad[i]);
	}
	char deep[4096] = "";
	for (int i = 0; i < 40; i++)
		strcat(deep, "ARRAY(");
	strcat(deep, "INT");
	for (int i = 0; i < 40; i++)
		strcat(deep, ")");
	assert_false(databend_type_valid(deep));
}

static void identifiers(void **state)
{
	assert_true(udf_python_identifier("add_one"));
	assert_true(udf_python_identifier("_x9"));
	assert_false(udf_python_identifier("9x"));
	assert_false(udf_python_identifier("def"));
	assert_false(udf_python_identifier("a-b"));
	assert_false(udf_python_identifier(""));
}

static void good_spec_and_key(void **state)
{
	struct udf_spec s, s2;
	char err[512];
	assert_int_equal(
	    parse(SPEC("def add_one(x):\\n    return x\\n", "[\"@s/imports/helper.py\"]"),
		  &helper_a, 1, &s, err),
	    0);
	assert_string_equal(s.handler, "add_one");
	assert_int_equal(s.n_imports, 1);
	assert_string_equal(s.imports[0].tag, "\"etag-a\"");
	assert_int_equal(strlen(s.content_key), 64);

	/* A new presign of the same content: same key. */
	struct udf_import_in b = helper_a;
	b.url = "https://h/helper.py?sig=2";
	assert_int_equal(
	    parse(SPEC("def add_one(x):\\n    return x\\n", "[\"@s/imports/helper.py\"]"), &b, 1,
		  &s2, err),
	    0);
	assert_string_equal(s.content_key, s2.content_key);
	udf_spec_free(&s2);

	/* A changed tag or code: another key. */
	b.tag = "\"etag-b\"";
	assert_int_equal(
	    parse(SPEC("def add_one(x):\\n    return x\\n", "[\"@s/imports/helper.py\"]"), &b, 1,
		  &s2, err),
	    0);
	assert_string_not_equal(s.content_key, s2.content_key);
	udf_spec_free(&s2);
	assert_int_equal(
	    parse(SPEC("def add_one(x):\\n    return x+0\\n", "[\"@s/imports/helper.py\"]"),
		  &helper_a, 1, &s2, err),
	    0);
	assert_string_not_equal(s.content_key, s2.content_key);
	udf_spec_free(&s2);
	udf_spec_free(&s);
}

static void imports_are_multisets(void **state)
{
	struct udf_spec s;
	char err[512];
	struct udf_import_in two[2] = {helper_a, helper_a};
	two[1].url = "https://h/helper.py?sig=9";
	const char *twice = SPEC("x", "[\"@s/imports/helper.py\",\"@s/imports/helper.py\"]");
	assert_int_equal(parse(twice, two, 2, &s, err), 0);
	udf_spec_free(&s);
	assert_int_equal(parse(twice, two, 1, &s, err), -EINVAL);
	assert_non_null(strstr(err, "spec.imports[1]"));
	assert_int_equal(parse(SPEC("x", "[]"), two, 1, &s, err), -EINVAL);
	assert_non_null(strstr(err, "not in spec.imports"));
}

static void bad_fields_are_named(void **state)
{
	static const struct {
		const char *json;
		const char *needle;
	} cases[] = {
	    {"", "empty"},
	    {"[]", "JSON object"},
	    {"{", "not valid JSON"},
	    {"{\"version\":1,\"kind\":\"udf\",\"language\":\"python\"}", "handler"},
	    {"{\"kind\":\"udf\"}", "version"},
	    {"{\"version\":1,\"kind\":\"udf\",\"language\":\"python\",\"handler\":\"f\","
	     "\"input_types\":\"INT\"}",
	     "spec.input_types"},
	    {"{\"version\":1,\"kind\":\"udf\",\"language\":\"python\",\"handler\":\"f\","
	     "\"input_types\":[7]}",
	     "spec.input_types[0]"},
	    {"{\"version\":1,\"kind\":\"udf\",\"language\":\"python\",\"handler\":\"f\","
	     "\"input_types\":[],\"result_type\":\"INT\",\"code\":\"\"}",
	     "spec.code"},
	    {"{\"version\":1,\"kind\":\"udf\",\"language\":\"python\",\"handler\":\"f\","
	     "\"input_types\":[],\"result_type\":\"INT\",\"code\":\"x\",\"packages\":[\"-e .\"]}",
	     "spec.packages[0]"},
	    {"{\"version\":1,\"kind\":\"udf\",\"language\":\"python\",\"handler\":\"f\","
	     "\"input_types\":[],\"result_type\":\"INT\",\"code\":\"x\","
	     "\"runtime_version\":\"3\"}",
	     "spec.runtime_version"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct udf_spec s;
		char err[512] = "";
		int rc = udf_spec_parse(cases[i].json, strlen(cases[i].json), NULL, 0, &s, err,
					sizeof(err));
		if (rc != -EINVAL || !strstr(err, cases[i].needle))
			fail_msg("case %zu: rc %d, err \"%s\", wanted \"%s\"", i, rc, err,
				 cases[i].needle);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(types),
	    cmocka_unit_test(identifiers),
	    cmocka_unit_test(good_spec_and_key),
	    cmocka_unit_test(imports_are_multisets),
	    cmocka_unit_test(bad_fields_are_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
