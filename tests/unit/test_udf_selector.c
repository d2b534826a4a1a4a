/* udf/selector: label selectors as apimachinery reads them, and which namespaces a pool admits. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "udf/selector.h"

/* Matches selector (JSON) against labels (JSON): 1, 0, or the error code. */
static int match(const char *selector, const char *labels)
{
	cJSON *s = cJSON_Parse(selector);
	cJSON *l = labels ? cJSON_Parse(labels) : NULL;
	assert_non_null(s);
	int m = -1;
	int rc = udf_selector_matches(s, l, &m);
	cJSON_Delete(s);
	cJSON_Delete(l);
	if (rc < 0) {
		assert_int_equal(m, 0);
		return rc;
	}
	return m;
}

static void match_labels(void **state)
{
	(void)state;
	const char *sel = "{\"matchLabels\":{\"a\":\"1\",\"b\":\"2\"}}";
	assert_int_equal(match(sel, "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}"), 1);
	assert_int_equal(match(sel, "{\"a\":\"1\"}"), 0);
	assert_int_equal(match(sel, "{\"a\":\"1\",\"b\":\"3\"}"), 0);
	assert_int_equal(match(sel, NULL), 0);
	/* Empty selector: everything, even no labels. */
	assert_int_equal(match("{}", NULL), 1);
	assert_int_equal(match("{\"matchLabels\":{}}", "{\"x\":\"y\"}"), 1);
}

static void operators(void **state)
{
	(void)state;
	const char *in = "{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"In\","
			 "\"values\":[\"x\",\"y\"]}]}";
	assert_int_equal(match(in, "{\"t\":\"y\"}"), 1);
	assert_int_equal(match(in, "{\"t\":\"z\"}"), 0);
	assert_int_equal(match(in, "{}"), 0);

	const char *notin = "{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"NotIn\","
			    "\"values\":[\"x\"]}]}";
	assert_int_equal(match(notin, "{\"t\":\"y\"}"), 1);
	assert_int_equal(match(notin, "{\"t\":\"x\"}"), 0);
	assert_int_equal(match(notin, "{}"), 1); /* absent is not in */

	const char *exists = "{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"Exists\"}]}";
	assert_int_equal(match(exists, "{\"t\":\"\"}"), 1);
	assert_int_equal(match(exists, "{\"u\":\"1\"}"), 0);

	const char *dne = "{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"DoesNotExist\"}]}";
	assert_int_equal(match(dne, "{\"u\":\"1\"}"), 1);
	assert_int_equal(match(dne, NULL), 1);
	assert_int_equal(match(dne, "{\"t\":\"1\"}"), 0);
}

static void everything_must_hold(void **state)
{
	(void)state;
	const char *sel = "{\"matchLabels\":{\"udf.sandbox.io/tenant-namespace\":\"true\"},"
			  "\"matchExpressions\":["
			  "{\"key\":\"env\",\"operator\":\"In\",\"values\":[\"prod\"]},"
			  "{\"key\":\"blocked\",\"operator\":\"DoesNotExist\"}]}";
	assert_int_equal(
	    match(sel, "{\"udf.sandbox.io/tenant-namespace\":\"true\",\"env\":\"prod\"}"), 1);
	assert_int_equal(match(sel, "{\"udf.sandbox.io/tenant-namespace\":\"true\","
				    "\"env\":\"prod\",\"blocked\":\"1\"}"),
			 0);
	assert_int_equal(match(sel, "{\"env\":\"prod\"}"), 0);
}

static void malformed_admits_nothing(void **state)
{
	(void)state;
	/* Unknown operator, In without values, Exists with values, non-string values. */
	assert_int_equal(
	    match("{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"Gt\",\"values\":[\"1\"]}]}",
		  "{\"t\":\"2\"}"),
	    -EINVAL);
	assert_int_equal(
	    match("{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"In\"}]}", "{\"t\":\"2\"}"),
	    -EINVAL);
	assert_int_equal(match("{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"In\","
			       "\"values\":[]}]}",
			       "{\"t\":\"2\"}"),
			 -EINVAL);
	assert_int_equal(match("{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"Exists\","
			       "\"values\":[\"1\"]}]}",
			       "{\"t\":\"1\"}"),
			 -EINVAL);
	assert_int_equal(match("{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"In\","
			       "\"values\":[1]}]}",
			       "{\"t\":\"1\"}"),
			 -EINVAL);
	assert_int_equal(match("{\"matchLabels\":{\"t\":1}}", "{\"t\":\"1\"}"), -EINVAL);
	assert_int_equal(match("{\"matchLabels\":[]}", NULL), -EINVAL);
	assert_int_equal(match("[]", NULL), -EINVAL);
	/* An error after a failed requirement is still an error. */
	assert_int_equal(match("{\"matchLabels\":{\"a\":\"1\"},\"matchExpressions\":"
			       "[{\"key\":\"t\",\"operator\":\"Nope\"}]}",
			       "{}"),
			 -EINVAL);
}

static int admits(const char *pool, const char *ns)
{
	cJSON *p = cJSON_Parse(pool), *n = cJSON_Parse(ns);
	assert_non_null(p);
	assert_non_null(n);
	int a = -1;
	int rc = udf_pool_admits_namespace(p, n, &a);
	cJSON_Delete(p);
	cJSON_Delete(n);
	return rc < 0 ? rc : a;
}

static void pool_namespaces(void **state)
{
	(void)state;
	const char *own = "{\"metadata\":{\"name\":\"default\",\"namespace\":\"udf-sandboxes\"},"
			  "\"spec\":{}}";
	assert_int_equal(admits(own, "{\"metadata\":{\"name\":\"udf-sandboxes\"}}"), 1);
	assert_int_equal(admits(own, "{\"metadata\":{\"name\":\"udf-t-1\",\"labels\":"
				     "{\"udf.sandbox.io/tenant-namespace\":\"true\"}}}"),
			 0);

	const char *shared = "{\"metadata\":{\"name\":\"default\",\"namespace\":\"udf-sandboxes\"},"
			     "\"spec\":{\"functionNamespaceSelector\":{\"matchLabels\":"
			     "{\"udf.sandbox.io/tenant-namespace\":\"true\"}}}}";
	assert_int_equal(admits(shared, "{\"metadata\":{\"name\":\"udf-t-1\",\"labels\":"
					"{\"udf.sandbox.io/tenant-namespace\":\"true\"}}}"),
			 1);
	assert_int_equal(admits(shared, "{\"metadata\":{\"name\":\"kube-system\"}}"), 0);
	/* The pool's own namespace, selected or not. */
	assert_int_equal(admits(shared, "{\"metadata\":{\"name\":\"udf-sandboxes\"}}"), 1);
	/* An empty selector selects every namespace. */
	assert_int_equal(admits("{\"metadata\":{\"name\":\"p\",\"namespace\":\"a\"},"
				"\"spec\":{\"functionNamespaceSelector\":{}}}",
				"{\"metadata\":{\"name\":\"b\"}}"),
			 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(match_labels),	    cmocka_unit_test(operators),
	    cmocka_unit_test(everything_must_hold), cmocka_unit_test(malformed_admits_nothing),
	    cmocka_unit_test(pool_namespaces),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
