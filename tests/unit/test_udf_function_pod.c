/* udf/function_pod: what the function controller writes: claims, tokens, the spec hash, the
 * tenant and the worker's specialize body. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kube/rest.h"
#include "udf/function_pod.h"
#include "udf/labels.h"

static const char fn_json[] =
    "{\"metadata\":{\"name\":\"add-one\",\"namespace\":\"tenant-a\",\"uid\":\"fu-1\"},"
    "\"spec\":{\"functionName\":\"add_one\",\"handler\":\"add_one\","
    "\"inputTypes\":[\"INT NULL\"],\"resultType\":\"INT NULL\","
    "\"code\":\"def add_one(x):\\n    return x + 1\\n\",\"packages\":[\"six\"],"
    "\"imports\":[{\"location\":\"@s/h.py\",\"url\":\"http://old/h.py?sig=1\",\"tag\":\"t1\"}],"
    "\"env\":{\"A\":\"1\"},\"replicas\":1}}";

static const char pod_json[] =
    "{\"metadata\":{\"name\":\"warm-abcde\",\"namespace\":\"sb\",\"resourceVersion\":\"42\","
    "\"labels\":{\"udf.sandbox.io/pool\":\"warm\",\"udf.sandbox.io/state\":\"idle\"},"
    "\"ownerReferences\":[{\"uid\":\"pool-uid\",\"controller\":true,\"kind\":\"UdfWarmPool\"}]},"
    "\"status\":{\"podIP\":\"10.0.0.9\"}}";

static void tenant(void **state)
{
	(void)state;
	cJSON *fn = cJSON_Parse(fn_json);
	cJSON *ns = cJSON_Parse("{\"metadata\":{\"name\":\"tenant-a\",\"annotations\":"
				"{\"udf.sandbox.io/tenant\":\"Tenant_A\"}}}");
	assert_string_equal(fn_tenant(fn, NULL), "tenant-a");
	assert_string_equal(fn_tenant(fn, ns), "Tenant_A");
	cJSON_AddStringToObject(cJSON_GetObjectItem(fn, "spec"), "tenant", "exact");
	assert_string_equal(fn_tenant(fn, ns), "exact");
	char label[64];
	assert_int_equal(fn_tenant_label("Tenant_A", label), 0);
	assert_true(strncmp(label, "t-tenant-a-", 11) == 0);
	char other[64];
	assert_int_equal(fn_tenant_label("tenant-a", other), 0);
	assert_string_not_equal(label, other); /* injective */
	cJSON_Delete(fn);
	cJSON_Delete(ns);
}

static void spec_hash(void **state)
{
	(void)state;
	cJSON *fn = cJSON_Parse(fn_json);
	char a[FN_SPEC_HASH_HEX + 1], b[FN_SPEC_HASH_HEX + 1];
	assert_int_equal(fn_spec_hash(fn, a), 0);
	assert_int_equal((int)strlen(a), FN_SPEC_HASH_HEX);
	/* A new presigned url is not a new spec; a new tag, code or replica count is / is not. */
	cJSON *im = cJSON_GetArrayItem(k8s_get(fn, "spec.imports"), 0);
	cJSON_ReplaceItemInObject(im, "url", cJSON_CreateString("http://new/h.py?sig=2"));
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(fn, "spec"), "replicas",
				  cJSON_CreateNumber(3));
	assert_int_equal(fn_spec_hash(fn, b), 0);
	assert_string_equal(a, b);
	cJSON_ReplaceItemInObject(im, "tag", cJSON_CreateString("t2"));
	assert_int_equal(fn_spec_hash(fn, b), 0);
	assert_string_not_equal(a, b);
	assert_true(fn_runs_code(fn));
	cJSON_Delete(fn);
	fn = cJSON_Parse("{\"spec\":{\"tags\":{}}}");
	assert_false(fn_runs_code(fn)); /* a bare worker record */
	cJSON_Delete(fn);
}

static void tokens(void **state)
{
	(void)state;
	char t1[FN_TOKEN_HEX + 1], t2[FN_TOKEN_HEX + 1], back[128];
	assert_int_equal(fn_token_generate(t1), 0);
	assert_int_equal(fn_token_generate(t2), 0);
	assert_int_equal((int)strlen(t1), FN_TOKEN_HEX);
	assert_string_not_equal(t1, t2);
	cJSON *fn = cJSON_Parse(fn_json), *secret = NULL;
	assert_int_equal(fn_token_secret_build(fn, t1, &secret), 0);
	assert_string_equal(k8s_str(secret, "metadata.name"), "add-one-token");
	assert_string_equal(k8s_str(secret, "stringData.token"), t1);
	const cJSON *ref = cJSON_GetArrayItem(k8s_get(secret, "metadata.ownerReferences"), 0);
	assert_string_equal(k8s_str(ref, "uid"), "fu-1");
	assert_string_equal(k8s_str(ref, "kind"), UDF_KIND_FN);
	cJSON_Delete(secret);
	/* what the API server gives back: base64 under data */
	cJSON *read = cJSON_Parse("{\"data\":{\"token\":\"c2VjcmV0LXRva2VuCg==\"}}");
	assert_int_equal(fn_token_from_secret(read, back, sizeof(back)), 0);
	assert_string_equal(back, "secret-token");
	cJSON_Delete(read);
	read = cJSON_Parse("{\"data\":{\"token\":\"!!\"}}");
	assert_int_equal(fn_token_from_secret(read, back, sizeof(back)), -EINVAL);
	cJSON_Delete(read);
	cJSON_Delete(fn);
}

static void claim(void **state)
{
	(void)state;
	cJSON *fn = cJSON_Parse(fn_json), *pod = cJSON_Parse(pod_json), *out = NULL;
	assert_int_equal(fn_claim_pod(pod, fn, "pool-uid", "t-x", "abc", "warm", &out), 0);
	assert_string_equal(k8s_label(out, UDF_LABEL_STATE), UDF_STATE_CLAIMED);
	assert_string_equal(k8s_label(out, UDF_LABEL_FUNCTION_UID), "fu-1");
	assert_string_equal(k8s_label(out, UDF_LABEL_TENANT), "t-x");
	assert_string_equal(k8s_label(out, UDF_LABEL_POOL), "warm"); /* its token's key */
	assert_string_equal(k8s_annotation(out, UDF_ANNO_FUNCTION), "tenant-a/add-one");
	assert_string_equal(k8s_annotation(out, UDF_ANNO_SPEC_HASH), "abc");
	assert_string_equal(k8s_annotation(out, UDF_ANNO_LAUNCH_TYPE), "warm");
	/* the update is conditional on what was read, and the pool lets go */
	assert_string_equal(k8s_str(out, "metadata.resourceVersion"), "42");
	assert_null(k8s_get(out, "metadata.ownerReferences"));
	/* the cache's copy is untouched */
	assert_string_equal(k8s_label(pod, UDF_LABEL_STATE), UDF_STATE_IDLE);
	cJSON_Delete(out);
	/* the same as the merge patch a warm claim sends */
	assert_int_equal(fn_claim_patch(pod, fn, "pool-uid", "t-x", "abc", "warm", &out), 0);
	assert_string_equal(k8s_str(out, "metadata.resourceVersion"), "42");
	assert_string_equal(k8s_label(out, UDF_LABEL_STATE), UDF_STATE_CLAIMED);
	assert_string_equal(k8s_annotation(out, UDF_ANNO_FUNCTION), "tenant-a/add-one");
	assert_int_equal(cJSON_GetArraySize(k8s_get(out, "metadata.ownerReferences")), 0);
	assert_true(cJSON_IsArray(k8s_get(out, "metadata.ownerReferences")));
	assert_null(k8s_get(out, "status"));
	assert_null(k8s_get(out, "spec"));
	cJSON_Delete(out);
	cJSON_Delete(pod);
	cJSON_Delete(fn);
}

static void specialize_body(void **state)
{
	(void)state;
	cJSON *fn = cJSON_Parse(fn_json);
	cJSON *urls = cJSON_Parse("{\"@s/h.py\":\"http://fresh/h.py?sig=9\"}");
	char *text = NULL;
	assert_int_equal(fn_specialize_body(fn, "tenant-a", "tok", urls, &text), 0);
	cJSON *b = cJSON_Parse(text);
	assert_string_equal(k8s_str(b, "function"), "add_one");
	assert_string_equal(k8s_str(b, "tenant"), "tenant-a");
	assert_string_equal(k8s_str(b, "token"), "tok");
	assert_string_equal(k8s_str(b, "env.A"), "1");
	assert_string_equal(k8s_str(b, "spec.handler"), "add_one");
	assert_string_equal(k8s_str(b, "spec.result_type"), "INT NULL");
	assert_int_equal(cJSON_GetArraySize(k8s_get(b, "spec.input_types")), 1);
	assert_int_equal(cJSON_GetArraySize(k8s_get(b, "spec.packages")), 1);
	const cJSON *im = cJSON_GetArrayItem(k8s_get(b, "spec.imports"), 0);
	assert_string_equal(k8s_str(im, "url"), "http://fresh/h.py?sig=9");
	assert_string_equal(k8s_str(im, "tag"), "t1");
	cJSON_Delete(b);
	free(text);
	/* without fresh urls, the spec's */
	assert_int_equal(fn_specialize_body(fn, "tenant-a", "tok", NULL, &text), 0);
	b = cJSON_Parse(text);
	im = cJSON_GetArrayItem(k8s_get(b, "spec.imports"), 0);
	assert_string_equal(k8s_str(im, "url"), "http://old/h.py?sig=1");
	cJSON_Delete(b);
	free(text);
	/* the script form */
	cJSON *sfn = cJSON_Parse("{\"metadata\":{\"name\":\"r-1\",\"namespace\":\"n\"},"
				 "\"spec\":{\"script\":\"#!/bin/bash\\n\"}}");
	assert_int_equal(fn_specialize_body(sfn, "t", "tok", NULL, &text), 0);
	b = cJSON_Parse(text);
	assert_string_equal(k8s_str(b, "script"), "#!/bin/bash\n");
	assert_string_equal(k8s_str(b, "function"), "r-1");
	assert_null(k8s_get(b, "spec"));
	cJSON_Delete(b);
	free(text);
	cJSON_Delete(sfn);
	cJSON_Delete(urls);
	cJSON_Delete(fn);
}

static void service_objects(void **state)
{
	(void)state;
	cJSON *fn = cJSON_Parse(fn_json), *svc = NULL, *sl = NULL;
	assert_int_equal(fn_service_build(fn, &svc), 0);
	assert_string_equal(k8s_str(svc, "metadata.name"), "add-one");
	assert_string_equal(k8s_str(svc, "metadata.namespace"), "tenant-a");
	assert_null(k8s_get(svc, "spec.selector")); /* the pods are in another namespace */
	const cJSON *port = cJSON_GetArrayItem(k8s_get(svc, "spec.ports"), 0);
	assert_int_equal(k8s_int(port, "port", 0), FN_FLIGHT_PORT);
	const char *ips[] = {"10.0.0.1", "10.0.0.2"};
	const int ready[] = {1, 0};
	assert_int_equal(fn_endpointslice_build(fn, ips, ready, 2, &sl), 0);
	assert_string_equal(k8s_str(sl, "metadata.name"), "add-one-flight");
	assert_string_equal(k8s_label(sl, "kubernetes.io/service-name"), "add-one");
	assert_string_equal(k8s_label(sl, "endpointslice.kubernetes.io/managed-by"), UDF_MANAGER);
	const cJSON *eps = k8s_get(sl, "endpoints");
	assert_int_equal(cJSON_GetArraySize(eps), 2);
	assert_true(cJSON_IsTrue(k8s_get(cJSON_GetArrayItem(eps, 0), "conditions.ready")));
	assert_true(cJSON_IsFalse(k8s_get(cJSON_GetArrayItem(eps, 1), "conditions.ready")));
	cJSON_Delete(sl);
	cJSON_Delete(svc);
	cJSON_Delete(fn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tenant),	       cmocka_unit_test(spec_hash),
	    cmocka_unit_test(tokens),	       cmocka_unit_test(claim),
	    cmocka_unit_test(specialize_body), cmocka_unit_test(service_objects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
