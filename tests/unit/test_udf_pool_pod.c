/* udf/pool_pod: the sandbox pod template, runtime classes, control keys and tokens. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kube/rest.h"
#include "udf/labels.h"
#include "udf/pool_pod.h"

static const char pool_json[] =
    "{\"metadata\":{\"name\":\"warm\",\"namespace\":\"sb\",\"uid\":\"u-1\"},"
    "\"spec\":{\"replicas\":2,\"runtime\":{\"runtimeClassName\":\"gvisor\","
    "\"nodeSelector\":{\"zone\":\"a\"},"
    "\"tolerations\":[{\"key\":\"k\",\"operator\":\"Exists\"}],"
    "\"resources\":{\"limits\":{\"memory\":\"1Gi\"},\"requests\":{\"cpu\":\"250m\"}}}}}";

static void runtime_classes(void **state)
{
	(void)state;
	cJSON *p = cJSON_Parse("{\"spec\":{\"runtime\":{}}}");
	const char *rc = NULL;
	assert_int_equal(pool_pod_runtime_class(p, NULL, &rc), 0);
	assert_string_equal(rc, "gvisor");
	cJSON_Delete(p);

	p = cJSON_Parse("{\"spec\":{\"runtime\":{\"runtimeClassName\":\"runc\"}}}");
	assert_int_equal(pool_pod_runtime_class(p, "gvisor", &rc), -EPERM);
	assert_string_equal(rc, "runc");
	assert_int_equal(pool_pod_runtime_class(p, "gvisor,runc", &rc), 0);
	assert_int_equal(pool_pod_runtime_class(p, "runc", &rc), 0);
	/* Whole names only. */
	assert_int_equal(pool_pod_runtime_class(p, "runcx,xrunc,run", &rc), -EPERM);
	cJSON_Delete(p);
}

static void names_and_selector(void **state)
{
	(void)state;
	char a[POOL_POD_NAME_MAX + 1], b[POOL_POD_NAME_MAX + 1];
	assert_int_equal(pool_pod_name("warm", a), 0);
	assert_int_equal(pool_pod_name("warm", b), 0);
	assert_int_equal(strlen(a), 10);
	assert_memory_equal(a, "warm-", 5);
	for (int i = 5; i < 10; i++)
		assert_true((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= '0' && a[i] <= '9'));
	assert_string_not_equal(a, b); /* 36^5 names: a clash here would be news */

	char sel[256];
	assert_int_equal(pool_pod_selector("warm", sel, sizeof(sel)), 0);
	assert_string_equal(sel, "app.kubernetes.io/managed-by=udf-operator,"
				 "udf.sandbox.io/pool=warm,udf.sandbox.io/state=idle");
	assert_int_equal(pool_pod_selector("warm", sel, 10), -ENAMETOOLONG);
}

static void tokens(void **state)
{
	(void)state;
	unsigned char key[POOL_KEY_BYTES];
	memset(key, 0x0b, sizeof(key));
	char t1[POOL_TOKEN_HEX + 1], t2[POOL_TOKEN_HEX + 1], t3[POOL_TOKEN_HEX + 1];
	assert_int_equal(pool_pod_token(key, "warm-abcde", t1), 0);
	assert_int_equal(pool_pod_token(key, "warm-abcde", t2), 0);
	assert_int_equal(pool_pod_token(key, "warm-abcdf", t3), 0);
	assert_string_equal(t1, t2);
	assert_string_not_equal(t1, t3);
	assert_int_equal(strlen(t1), 64);
	/* Another pool's key gives another token for the same name. */
	key[0] ^= 1;
	assert_int_equal(pool_pod_token(key, "warm-abcde", t2), 0);
	assert_string_not_equal(t1, t2);

	char sha[65];
	pool_pod_token_sha256("abc", sha);
	assert_string_equal(sha,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void key_secret_roundtrip(void **state)
{
	(void)state;
	cJSON *pool = cJSON_Parse(pool_json);
	unsigned char key[POOL_KEY_BYTES], back[POOL_KEY_BYTES];
	cJSON *secret = NULL;
	assert_int_equal(pool_key_generate(key), 0);
	assert_int_equal(pool_key_secret_build(pool, key, &secret), 0);
	assert_string_equal(k8s_str(secret, "metadata.name"), "warm-control-key");
	assert_string_equal(k8s_str(secret, "metadata.namespace"), "sb");
	const cJSON *ref = cJSON_GetArrayItem(k8s_get(secret, "metadata.ownerReferences"), 0);
	assert_string_equal(k8s_str(ref, "uid"), "u-1");
	assert_string_equal(k8s_str(ref, "kind"), "UdfWarmPool");
	assert_int_equal(pool_key_from_secret(secret, back), 0);
	assert_memory_equal(key, back, sizeof(key));
	cJSON_Delete(secret);

	secret = cJSON_Parse("{\"data\":{\"key\":\"c2hvcnQ=\"}}");
	assert_int_equal(pool_key_from_secret(secret, back), -EINVAL);
	cJSON_Delete(secret);
	secret = cJSON_Parse("{\"data\":{}}");
	assert_int_equal(pool_key_from_secret(secret, back), -EINVAL);
	cJSON_Delete(secret);
	cJSON_Delete(pool);
}

static const cJSON *find(const cJSON *arr, const char *field, const char *value)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		const char *v = k8s_str(it, field);
		if (v && strcmp(v, value) == 0)
			return it;
	}
	return NULL;
}

static void pod_template(void **state)
{
	(void)state;
	cJSON *pool = cJSON_Parse(pool_json);
	cJSON *pod = NULL;
	assert_int_equal(pool_pod_build(pool, "img:1", "gvisor", "warm-abcde", "ff", &pod), 0);
	assert_string_equal(k8s_str(pod, "metadata.name"), "warm-abcde");
	assert_string_equal(k8s_str(pod, "metadata.namespace"), "sb");
	assert_string_equal(k8s_label(pod, UDF_LABEL_POOL), "warm");
	assert_string_equal(k8s_label(pod, UDF_LABEL_STATE), "idle");
	assert_string_equal(k8s_label(pod, UDF_LABEL_MANAGED_BY), "udf-operator");
	assert_string_equal(k8s_label(pod, UDF_LABEL_NAME), "udf-worker");
	const cJSON *annos = k8s_get(pod, "metadata.annotations");
	assert_string_equal(
	    cJSON_GetObjectItemCaseSensitive(annos, UDF_ANNO_CONTROL_TOKEN_SHA256)->valuestring,
	    "ff");
	const cJSON *ref = cJSON_GetArrayItem(k8s_get(pod, "metadata.ownerReferences"), 0);
	assert_string_equal(k8s_str(ref, "uid"), "u-1");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "blockOwnerDeletion")));

	assert_string_equal(k8s_str(pod, "spec.runtimeClassName"), "gvisor");
	assert_string_equal(k8s_str(pod, "spec.restartPolicy"), "Never");
	assert_true(cJSON_IsFalse(k8s_get(pod, "spec.automountServiceAccountToken")));
	assert_true(cJSON_IsFalse(k8s_get(pod, "spec.enableServiceLinks")));
	assert_true(cJSON_IsTrue(k8s_get(pod, "spec.securityContext.runAsNonRoot")));
	assert_int_equal(k8s_int(pod, "spec.securityContext.runAsUser", 0), 10001);
	assert_int_equal(k8s_int(pod, "spec.securityContext.fsGroup", 0), 10001);
	assert_string_equal(k8s_str(pod, "spec.nodeSelector.zone"), "a");
	assert_int_equal(cJSON_GetArraySize(k8s_get(pod, "spec.tolerations")), 1);

	const cJSON *c = cJSON_GetArrayItem(k8s_get(pod, "spec.containers"), 0);
	assert_string_equal(k8s_str(c, "image"), "img:1");
	assert_string_equal(cJSON_GetArrayItem(k8s_get(c, "args"), 0)->valuestring,
			    "--control-token-sha256-file=/etc/udf-worker/control/token-sha256");
	assert_true(cJSON_IsTrue(k8s_get(c, "securityContext.readOnlyRootFilesystem")));
	assert_true(cJSON_IsFalse(k8s_get(c, "securityContext.allowPrivilegeEscalation")));
	assert_string_equal(
	    cJSON_GetArrayItem(k8s_get(c, "securityContext.capabilities.drop"), 0)->valuestring,
	    "ALL");
	assert_string_equal(k8s_str(c, "readinessProbe.httpGet.path"), "/readyz");
	assert_int_equal(k8s_int(c, "readinessProbe.httpGet.port", 0), 9000);
	/* The pool's own resources win; the CRD's defaults fill the rest. */
	assert_string_equal(k8s_str(c, "resources.limits.memory"), "1Gi");
	assert_string_equal(k8s_str(c, "resources.requests.memory"), "128Mi");
	assert_string_equal(k8s_str(c, "resources.requests.cpu"), "250m");
	assert_string_equal(k8s_str(c, "resources.limits.cpu"), "1");
	assert_string_equal(k8s_str(c, "resources.limits.ephemeral-storage"), "2Gi");

	const cJSON *vols = k8s_get(pod, "spec.volumes");
	assert_string_equal(k8s_str(find(vols, "name", "app"), "emptyDir.sizeLimit"), "1Gi");
	assert_string_equal(k8s_str(find(vols, "name", "tmp"), "emptyDir.sizeLimit"), "256Mi");
	const cJSON *item =
	    cJSON_GetArrayItem(k8s_get(find(vols, "name", "control"), "downwardAPI.items"), 0);
	assert_string_equal(k8s_str(item, "path"), "token-sha256");
	assert_string_equal(k8s_str(item, "fieldRef.fieldPath"),
			    "metadata.annotations['udf.sandbox.io/control-token-sha256']");
	const cJSON *mounts = k8s_get(c, "volumeMounts");
	assert_string_equal(k8s_str(find(mounts, "name", "control"), "mountPath"),
			    "/etc/udf-worker/control");
	assert_string_equal(k8s_str(find(mounts, "name", "app"), "mountPath"), "/app");
	assert_string_equal(k8s_str(find(mounts, "name", "tmp"), "mountPath"), "/tmp");
	cJSON_Delete(pod);

	/* No image in the spec: the operator's --worker-image. */
	assert_string_equal(pool_pod_image(pool, "other:2"), "other:2");
	assert_string_equal(pool_pod_image(pool, NULL), POOL_DEFAULT_IMAGE);
	cJSON *bad = cJSON_Parse("{\"metadata\":{\"name\":\"x\"}}");
	assert_int_equal(pool_pod_build(bad, "i", "gvisor", "x-1", "ff", &pod), -EINVAL);
	cJSON_Delete(bad);
	cJSON_Delete(pool);
}

/* A request is never above its limit: defaults are capped by the pool's limits, and a request
 * above the default limit raises the limit. */
static void resource_defaults(void **state)
{
	(void)state;
	cJSON *pool = cJSON_Parse(
	    "{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"uid\":\"u\"},"
	    "\"spec\":{\"runtime\":{\"workDirSizeLimit\":\"300Mi\",\"tmpSizeLimit\":\"64Mi\","
	    "\"resources\":{\"limits\":{\"cpu\":\"50m\",\"memory\":\"0.1Gi\"},"
	    "\"requests\":{\"ephemeral-storage\":\"3Gi\"}}}}}");
	cJSON *pod = NULL;
	assert_int_equal(pool_pod_build(pool, "i", "gvisor", "p-1", "ff", &pod), 0);
	const cJSON *c = cJSON_GetArrayItem(k8s_get(pod, "spec.containers"), 0);
	assert_string_equal(k8s_str(c, "resources.requests.cpu"), "50m");
	assert_string_equal(k8s_str(c, "resources.requests.memory"), "0.1Gi");
	assert_string_equal(k8s_str(c, "resources.requests.ephemeral-storage"), "3Gi");
	assert_string_equal(k8s_str(c, "resources.limits.ephemeral-storage"), "3Gi");
	const cJSON *vols = k8s_get(pod, "spec.volumes");
	assert_string_equal(k8s_str(find(vols, "name", "app"), "emptyDir.sizeLimit"), "300Mi");
	assert_string_equal(k8s_str(find(vols, "name", "tmp"), "emptyDir.sizeLimit"), "64Mi");
	cJSON_Delete(pod);
	cJSON_Delete(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(runtime_classes), cmocka_unit_test(names_and_selector),
	    cmocka_unit_test(tokens),	       cmocka_unit_test(key_secret_roundtrip),
	    cmocka_unit_test(pod_template),    cmocka_unit_test(resource_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
