#include "controllers/claim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "udf/function_pod.h"
#include "udf/labels.h"
#include "util/log.h"

#define COMPONENT     "function"
#define COUNT_RETRIES 8

static const struct kube_res res_pods = {"api/v1", "pods"};
static const struct kube_res res_pools = {"apis/udf.sandbox.io/v1alpha1", "udfwarmpools"};

static int pod_ready(const cJSON *pod)
{
	return k8s_condition_is(pod, "Ready", "True", NULL);
}

int claim_candidate(const cJSON *pod, const cJSON *pool)
{
	const char *pool_uid = k8s_str(pool, "metadata.uid");
	const char *pool_ns = k8s_str(pool, "metadata.namespace");
	const char *state = k8s_label(pod, UDF_LABEL_STATE);
	const char *ns = k8s_str(pod, "metadata.namespace");
	if (!state || strcmp(state, UDF_STATE_IDLE) != 0 || !ns || !pool_ns ||
	    strcmp(ns, pool_ns) != 0 || k8s_get(pod, "metadata.deletionTimestamp") ||
	    !pod_ready(pod) || !k8s_str(pod, "status.podIP"))
		return 0;
	const cJSON *ref;
	cJSON_ArrayForEach(ref, k8s_get(pod, "metadata.ownerReferences"))
	{
		const char *uid = k8s_str(ref, "uid");
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")) && uid &&
		    pool_uid && strcmp(uid, pool_uid) == 0)
			return 1;
	}
	return 0;
}

int claim_warm(const struct claim_req *r, const cJSON *candidates,
	       char name_out[POOL_POD_NAME_MAX + 1], cJSON **pod_out)
{
	int n = cJSON_GetArraySize(candidates);
	unsigned start = 0;
	if (n <= 0)
		return -ENOENT;
	/* Claimants racing for one pool start at different pods, so most first tries win. */
	if (getrandom(&start, sizeof(start), 0) != (ssize_t)sizeof(start))
		start = 0;
	const char *pool_uid = k8s_str(r->pool, "metadata.uid");
	for (int i = 0; i < n; i++) {
		const cJSON *pod =
		    cJSON_GetArrayItem(candidates, (int)((start + (unsigned)i) % (unsigned)n));
		if (!claim_candidate(pod, r->pool))
			continue;
		const char *name = k8s_str(pod, "metadata.name");
		const char *ns = k8s_str(pod, "metadata.namespace");
		cJSON *patch = NULL;
		int rc = fn_claim_patch(pod, r->fn, pool_uid, r->tenant_label, r->spec_hash, "warm",
					&patch);
		char *body = rc == 0 ? cJSON_PrintUnformatted(patch) : NULL;
		cJSON_Delete(patch);
		if (rc < 0)
			return rc;
		if (!body)
			return -ENOMEM;
		if (r->on_try)
			r->on_try(r->arg, name, 1);
		(*r->requests)++;
		rc = kube_patch(r->kube, &res_pods, ns, name, NULL, KUBE_PATCH_MERGE, body, NULL, 0,
				pod_out);
		free(body);
		if (rc == 0) {
			snprintf(name_out, POOL_POD_NAME_MAX + 1, "%s", name);
			return 0;
		}
		if (r->on_try)
			r->on_try(r->arg, name, 0);
		if (rc != KUBE_ECONFLICT && rc != KUBE_ENOTFOUND)
			return rc;
		log_debug(COMPONENT, "claim of %s/%s lost (%s): next pod", ns, name,
			  kube_strerror(rc));
	}
	return -ENOENT;
}

int claim_cold(const struct claim_req *r, const unsigned char key[POOL_KEY_BYTES],
	       const char *image, const char *runtime_class, char name_out[POOL_POD_NAME_MAX + 1],
	       char *rejected, size_t rlen)
{
	const char *pool_name = k8s_str(r->pool, "metadata.name");
	const char *ns = k8s_str(r->pool, "metadata.namespace");
	char name[POOL_POD_NAME_MAX + 1], token[POOL_TOKEN_HEX + 1], sha[65], path[1024];
	cJSON *pod = NULL, *claimed = NULL;
	char *body = NULL;
	struct kube_response resp = {0};
	rejected[0] = '\0';

	int rc = pool_pod_name(pool_name, name);
	if (rc == 0)
		rc = pool_pod_token(key, name, token);
	if (rc < 0)
		return rc;
	pool_pod_token_sha256(token, sha);
	OPENSSL_cleanse(token, sizeof(token));
	rc = pool_pod_build(r->pool, image, runtime_class, name, sha, &pod);
	if (rc == 0)
		rc = fn_claim_pod(pod, r->fn, k8s_str(r->pool, "metadata.uid"), r->tenant_label,
				  r->spec_hash, "cold", &claimed);
	if (rc < 0)
		goto out;
	body = cJSON_PrintUnformatted(claimed);
	rc = body ? kube_path(path, sizeof(path), &res_pods, ns, NULL, NULL) : -ENOMEM;
	if (rc < 0)
		goto out;
	if (r->on_try)
		r->on_try(r->arg, name, 1);
	(*r->requests)++;
	rc = kube_request(r->kube, "POST", path, "application/json", body, strlen(body), &resp);
	if (rc == 0)
		rc = kube_error_from_status(resp.http_status, &resp.status);
	if (rc < 0) {
		if (r->on_try)
			r->on_try(r->arg, name, 0);
		if (rc == KUBE_EFORBIDDEN || rc == KUBE_EINVALID || rc == KUBE_EBADREQUEST)
			snprintf(rejected, rlen, "%s", resp.status.message);
		goto out;
	}
	snprintf(name_out, POOL_POD_NAME_MAX + 1, "%s", name);
out:
	kube_response_free(&resp);
	free(body);
	cJSON_Delete(pod);
	cJSON_Delete(claimed);
	return rc;
}

int claim_count(const struct claim_req *r, const char *counter)
{
	const char *ns = k8s_str(r->pool, "metadata.namespace");
	const char *name = k8s_str(r->pool, "metadata.name");
	char path[64];
	snprintf(path, sizeof(path), "status.%s", counter);
	for (int i = 0; i < COUNT_RETRIES; i++) {
		cJSON *pool = NULL;
		(*r->requests)++;
		int rc = kube_get_object(r->kube, &res_pools, ns, name, &pool);
		if (rc < 0)
			return rc;
		long long v = k8s_int(pool, path, 0);
		char body[512];
		/* The resourceVersion makes the merge patch conditional: a concurrent count (or
		 * the pool's own status write) answers 409 and this one reads again. */
		snprintf(body, sizeof(body),
			 "{\"metadata\":{\"resourceVersion\":\"%s\"},\"status\":{\"%s\":%lld}}",
			 k8s_str(pool, "metadata.resourceVersion"), counter, v + 1);
		cJSON_Delete(pool);
		(*r->requests)++;
		rc = kube_patch(r->kube, &res_pools, ns, name, "status", KUBE_PATCH_MERGE, body,
				NULL, 0, NULL);
		if (rc != KUBE_ECONFLICT)
			return rc;
	}
	return KUBE_ECONFLICT;
}
