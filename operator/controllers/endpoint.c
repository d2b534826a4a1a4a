#include "controllers/endpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "udf/function_pod.h"

static const struct kube_res res_services = {"api/v1", "services"};
static const struct kube_res res_slices = {"apis/discovery.k8s.io/v1", "endpointslices"};

static int apply(struct kube_client *kube, const struct kube_res *r, const cJSON *obj, cJSON **out,
		 int *requests)
{
	char *body = cJSON_PrintUnformatted(obj);
	if (!body)
		return -ENOMEM;
	(*requests)++;
	int rc =
	    kube_patch(kube, r, k8s_str(obj, "metadata.namespace"), k8s_str(obj, "metadata.name"),
		       NULL, KUBE_PATCH_APPLY, body, "udf-operator", 1, out);
	free(body);
	return rc;
}

int endpoint_service_apply(struct kube_client *kube, const cJSON *fn, char cluster_ip[64],
			   int *requests)
{
	cJSON *svc = NULL, *out = NULL;
	cluster_ip[0] = '\0';
	int rc = fn_service_build(fn, &svc);
	if (rc == 0)
		rc = apply(kube, &res_services, svc, &out, requests);
	const char *ip = out ? k8s_str(out, "spec.clusterIP") : NULL;
	if (rc == 0 && ip && strcmp(ip, "None") != 0)
		snprintf(cluster_ip, 64, "%s", ip);
	cJSON_Delete(svc);
	cJSON_Delete(out);
	return rc;
}

int endpoint_slice_apply(struct kube_client *kube, const cJSON *fn, const char *const *ips,
			 const int *ready, size_t n, int *requests)
{
	cJSON *slice = NULL;
	int rc = fn_endpointslice_build(fn, ips, ready, n, &slice);
	if (rc == 0)
		rc = apply(kube, &res_slices, slice, NULL, requests);
	cJSON_Delete(slice);
	return rc;
}
