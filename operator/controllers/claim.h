/*
 * controllers/claim: taking a sandbox pod for a function.
 *
 * A warm claim is one conditional write of an idle, Ready pod of the pool (a merge patch
 * carrying the resourceVersion the cache showed, which the API server checks): it moves the
 * pool's controller ownerReference off the pod and relabels it for the function
 * (udf/function_pod.h). 409 means another claimant (or the pool's scale-down) won that pod:
 * the next candidate is tried, so two functions can never own one pod. A cold start creates
 * the function's pod directly from the pool's template, already claimed. Each is counted in
 * the pool's status (warmHits / coldStarts) through the status subresource, read-modify-write
 * with retries on conflict.
 *
 * Stateless; the caller records the claim as an expectation before calling (the name is
 * known first: claim_warm() calls on_try before each update).
 */
#ifndef UDF_CONTROLLERS_CLAIM_H
#define UDF_CONTROLLERS_CLAIM_H

#include <cjson/cJSON.h>

#include "kube/rest.h"
#include "udf/pool_pod.h"

struct claim_req {
	struct kube_client *kube;
	const cJSON *pool;	  /* the UdfWarmPool */
	const cJSON *fn;	  /* the UdfFunction */
	const char *tenant_label; /* fn_tenant_label() */
	const char *spec_hash;
	int *requests; /* API requests sent are added here */
	/* called with each pod name before its update / create is sent (expectations) */
	void (*on_try)(void *arg, const char *pod_name, int sent_ok);
	void *arg;
};

/* Claims one of candidates (pods from the cache; those not idle, not Ready, not controlled by
 * the pool or terminating are skipped), trying them from a random start. 0 with the pod's
 * name in name_out and, when pod_out is not NULL, the pod as the API server answered the
 * update (caller frees; its status is the cache's, so it can be used before the watch shows
 * the claim); -ENOENT when none could be claimed, or a kube error. */
int claim_warm(const struct claim_req *r, const cJSON *candidates,
	       char name_out[POOL_POD_NAME_MAX + 1], cJSON **pod_out);

/* Creates a claimed pod from the pool's template: key is the pool's control key (the pod's
 * control token hash goes into it), image and runtime_class as the pool controller picks
 * them. 0 with the name, or an error; rejected gets the API server's message when it refused
 * the pod itself. */
int claim_cold(const struct claim_req *r, const unsigned char key[POOL_KEY_BYTES],
	       const char *image, const char *runtime_class, char name_out[POOL_POD_NAME_MAX + 1],
	       char *rejected, size_t rlen);

/* Adds one to the pool's status.<counter> (warmHits or coldStarts). */
int claim_count(const struct claim_req *r, const char *counter);

/* Is pod an idle pod of the pool, Ready and not terminating? */
int claim_candidate(const cJSON *pod, const cJSON *pool);

#endif
