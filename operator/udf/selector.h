/*
 * udf/selector: Kubernetes label selectors (metav1.LabelSelector) matched against labels, and
 * the rule for which namespaces' functions may claim from a pool.
 *
 * A selector is the cJSON of {"matchLabels": {...}, "matchExpressions": [{"key", "operator",
 * "values"}]}; every requirement must hold (AND). Operators In, NotIn, Exists, DoesNotExist
 * as in apimachinery: NotIn and DoesNotExist hold when the label is absent; an empty selector
 * ({}) matches everything.
 *
 * Pure functions, thread-safe, nothing allocated.
 */
#ifndef UDF_UDF_SELECTOR_H
#define UDF_UDF_SELECTOR_H

#include <cjson/cJSON.h>

/* *match = 1 when labels (an object of strings, may be NULL: no labels) satisfy selector.
 * Returns 0, or -EINVAL when the selector is malformed (unknown operator, In/NotIn without
 * values, Exists/DoesNotExist with values, non-string values), with *match 0: a selector that
 * cannot be read admits nothing. */
int udf_selector_matches(const cJSON *selector, const cJSON *labels, int *match);

/* May functions in the namespace ns_obj (a Namespace object) claim from pool? The pool's own
 * namespace always may; others when spec.functionNamespaceSelector selects them (absent: none;
 * {}: all). Returns 0 with *admitted, or -EINVAL as above (a malformed selector admits only
 * the pool's own namespace). */
int udf_pool_admits_namespace(const cJSON *pool, const cJSON *ns_obj, int *admitted);

#endif
