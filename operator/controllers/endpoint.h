/*
 * controllers/endpoint: --endpoint-mode=service. Instead of a pod IP, a function's
 * status.endpoint names a Service of its own (udf/function_pod.h: selectorless, owned by the
 * function, so it goes with it) whose EndpointSlice lists the function's pods: serving ones
 * ready, the others not (a connection to the Service is refused until one serves, and Databend
 * retries refused connections). A rolled or replaced pod changes the slice, not the endpoint.
 * Both objects are written with server-side apply (one request each, create or update).
 */
#ifndef UDF_CONTROLLERS_ENDPOINT_H
#define UDF_CONTROLLERS_ENDPOINT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "kube/rest.h"

/* Applies the Service, its cluster IP into cluster_ip (NUL when it has none yet).
 * *requests is increased by the requests sent. */
int endpoint_service_apply(struct kube_client *kube, const cJSON *fn, char cluster_ip[64],
			   int *requests);
/* Applies the EndpointSlice with these pods. */
int endpoint_slice_apply(struct kube_client *kube, const cJSON *fn, const char *const *ips,
			 const int *ready, size_t n, int *requests);

#endif
