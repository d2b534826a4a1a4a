#include "udf/selector.h"

#include <errno.h>
#include <string.h>

#include "kube/rest.h"

static int values_contain(const cJSON *values, const char *v)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, values)
	{
		if (cJSON_IsString(it) && strcmp(it->valuestring, v) == 0)
			return 1;
	}
	return 0;
}

static int values_valid(const cJSON *values)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, values)
	{
		if (!cJSON_IsString(it))
			return 0;
	}
	return 1;
}

/* One matchExpressions entry: 1 holds, 0 does not, -EINVAL malformed. */
static int requirement_holds(const cJSON *req, const cJSON *labels)
{
	const cJSON *key = cJSON_GetObjectItemCaseSensitive(req, "key");
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(req, "operator");
	const cJSON *values = cJSON_GetObjectItemCaseSensitive(req, "values");
	if (!cJSON_IsString(key) || !cJSON_IsString(op))
		return -EINVAL;
	if (values && !cJSON_IsNull(values) && (!cJSON_IsArray(values) || !values_valid(values)))
		return -EINVAL;
	int nvalues = cJSON_IsArray(values) ? cJSON_GetArraySize(values) : 0;
	const cJSON *lv =
	    labels ? cJSON_GetObjectItemCaseSensitive(labels, key->valuestring) : NULL;
	const char *v = cJSON_IsString(lv) ? lv->valuestring : NULL;

	if (strcmp(op->valuestring, "In") == 0 || strcmp(op->valuestring, "NotIn") == 0) {
		if (nvalues == 0)
			return -EINVAL;
		int in = v && values_contain(values, v);
		return op->valuestring[0] == 'I' ? in : !in;
	}
	if (strcmp(op->valuestring, "Exists") == 0 ||
	    strcmp(op->valuestring, "DoesNotExist") == 0) {
		if (nvalues != 0)
			return -EINVAL;
		return op->valuestring[0] == 'E' ? v != NULL : v == NULL;
	}
	return -EINVAL;
}

int udf_selector_matches(const cJSON *selector, const cJSON *labels, int *match)
{
	*match = 0;
	if (!cJSON_IsObject(selector))
		return -EINVAL;
	const cJSON *ml = cJSON_GetObjectItemCaseSensitive(selector, "matchLabels");
	const cJSON *me = cJSON_GetObjectItemCaseSensitive(selector, "matchExpressions");
	if ((ml && !cJSON_IsNull(ml) && !cJSON_IsObject(ml)) ||
	    (me && !cJSON_IsNull(me) && !cJSON_IsArray(me)))
		return -EINVAL;

	int all = 1;
	const cJSON *it;
	if (cJSON_IsObject(ml)) {
		cJSON_ArrayForEach(it, ml)
		{
			if (!cJSON_IsString(it))
				return -EINVAL;
			const cJSON *lv =
			    labels ? cJSON_GetObjectItemCaseSensitive(labels, it->string) : NULL;
			if (!cJSON_IsString(lv) || strcmp(lv->valuestring, it->valuestring) != 0)
				all = 0;
		}
	}
	if (cJSON_IsArray(me)) {
		cJSON_ArrayForEach(it, me)
		{
			/* Read every requirement even after one fails: a malformed one is an
			 * error whatever the labels are. */
			int rc = requirement_holds(it, labels);
			if (rc < 0)
				return rc;
			if (!rc)
				all = 0;
		}
	}
	*match = all;
	return 0;
}

int udf_pool_admits_namespace(const cJSON *pool, const cJSON *ns_obj, int *admitted)
{
	*admitted = 0;
	const cJSON *sel = k8s_get(pool, "spec.functionNamespaceSelector");
	const char *ns = k8s_str(ns_obj, "metadata.name");
	const char *pool_ns = k8s_str(pool, "metadata.namespace");
	if (ns && pool_ns && strcmp(ns, pool_ns) == 0) {
		*admitted = 1; /* a pool always serves its own namespace */
		return 0;
	}
	if (!sel || cJSON_IsNull(sel))
		return 0;
	return udf_selector_matches(sel, k8s_get(ns_obj, "metadata.labels"), admitted);
}
