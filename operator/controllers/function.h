/*
 * controllers/function: the UdfFunction controller. For each function it keeps a token Secret
 * (controllers/token.h), claims warm pods of its pool or cold-starts them (controllers/
 * claim.h), specializes them through the worker's control API (controllers/specialize.h), and
 * writes the status contract the gRPC services read (udf/function.h): status.endpoint and
 * tokenSecretName as soon as a claimed pod has an IP, Ready=True only once a specialized pod
 * serves, and the step that failed (ImportsFetched, PackagesInstalled, CodeLoaded,
 * Specialized) with the worker's own message.
 *
 * Level-triggered on the shared informers; no reconcile waits on a worker: a specialization in
 * progress is read again after a short requeue. Pods live in the pool's namespace without an
 * ownerReference to the function: a finalizer on the function deletes them, and a sweep every
 * minute deletes claimed pods (of this operator's pools) whose function is gone. A new spec
 * hash brings up pods for it before the old ones go; a lost pod is replaced with backoff;
 * replicas 0, a suspended worker record (options.suspended=true) and an idle timeout
 * (spec.idleTimeoutSeconds against status.lastUsedTime) keep no pod.
 *
 * The spec hash that decides which pods run the current spec comes from the cache, which
 * keeps it in place of the code, script, env and import urls (udf/function_pod.h); the
 * specialize body needs those, so the function is read from the API server when a pod is to
 * be specialized (a blocking GET on the worker thread, at most one per reconcile). A served
 * spec whose hash is not the cache's is not used: the reconcile waits for the cache.
 *
 * Handlers only enqueue; workers start with function_controller_start() (leader only).
 */
#ifndef UDF_CONTROLLERS_FUNCTION_H
#define UDF_CONTROLLERS_FUNCTION_H

#include "kube/informer.h"
#include "kube/rest.h"

struct function_controller;

struct function_controller_opts {
	struct kube_client *kube;	  /* borrowed */
	struct kube_informer *functions;  /* UdfFunctions, all namespaces */
	struct kube_informer *pools;	  /* UdfWarmPools this operator reconciles */
	struct kube_informer *pods;	  /* sandbox pods, indexed on pool and function-uid */
	struct kube_informer *namespaces; /* all namespaces */
	const char *default_pool;	  /* "ns/name" */
	const char *worker_image;	  /* NULL: default */
	const char *allowed_runtime_classes;
	/* "k=v,k2=v2": only functions in namespaces with these labels; NULL: every one */
	const char *namespace_selector;
	/* 1: status.endpoint is a Service of the function's (controllers/endpoint.h), not a pod IP
	 */
	int endpoint_service;
	int workers; /* 0: 4 */
};

/* Copies the strings; adds handlers to the informers (before their loop starts). -EINVAL for
 * a namespace selector that is not k=v[,k=v]. */
int function_controller_new(const struct function_controller_opts *o,
			    struct function_controller **out);
int function_controller_start(struct function_controller *fc);
/* Waits until no reconcile runs and starts none until the next function_controller_start()
 * (this replica lost the Lease; the queue keeps its keys). */
void function_controller_pause(struct function_controller *c);
void function_controller_stop(struct function_controller *fc);
void function_controller_free(struct function_controller *fc);

/* Prometheus text (caller frees): claims by pool and kind, claim -> Ready latency, failures
 * by reason, reconciles, API requests. */
char *function_controller_metrics(struct function_controller *fc);

#endif
